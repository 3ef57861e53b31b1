/*
 * pyrand.h - CPython's `random` module, bit for bit (spec §0.3).
 *
 * Helix's samplers, heuristic placements and random schedulers draw from Python's global
 * MT19937 stream; to reproduce their numbers we replicate CPython 3.11 exactly: seeding by
 * init_by_array over the 32-bit chunks of |seed|, random() from two 32-bit words,
 * getrandbits(k) word order, _randbelow_with_getrandbits's rejection loop, shuffle and
 * sample's set/pool algorithms. There are no globals: the state lives in a caller-owned
 * struct pyrand, and code that shares Python's global stream shares one struct. Not
 * thread-safe per struct (neither is the Python stream it models).
 */
#ifndef HX_BASE_PYRAND_H
#define HX_BASE_PYRAND_H

#include <stddef.h>
#include <stdint.h>

#define PYRAND_N 624

/* MT19937 state. Callers may allocate it (on the stack); fields are private. */
struct pyrand {
    uint32_t mt[PYRAND_N];
    int index; // next word to use; PYRAND_N means "regenerate first"
};

/*
 * random.seed(seed) for a Python int: init_by_array with the little-endian 32-bit chunks
 * of |seed| (seed 0 -> key [0]). INT64_MIN is handled (|seed| = 2**63).
 */
void pyrand_seed(struct pyrand *r, int64_t seed);
/* random.seed(seed) for a non-negative seed up to 2**64-1. */
void pyrand_seed_u64(struct pyrand *r, uint64_t seed);

/* The next raw 32-bit MT19937 output (genrand_uint32). */
uint32_t pyrand_next32(struct pyrand *r);

/* random.random(): a 53-bit double in [0, 1) built from two 32-bit words. */
double pyrand_random(struct pyrand *r);

/*
 * random.getrandbits(k) for 0 <= k <= 64 (k > 64 is clamped to 64). k == 0 draws nothing and
 * returns 0. k <= 32: one word, top k bits. k > 32: words filled least significant first; the
 * last (most significant) word keeps its top (k mod 32) bits, as CPython does.
 */
uint64_t pyrand_getrandbits(struct pyrand *r, int k);

/*
 * random._randbelow(n) (= _randbelow_with_getrandbits): k = bit_length(n); draw getrandbits(k)
 * until the value is < n. Returns a value in [0, n). n == 0 returns 0 and draws nothing
 * (Python would loop forever; callers never pass 0).
 */
uint64_t pyrand_randbelow(struct pyrand *r, uint64_t n);

/*
 * random.randint(a, b) = a + _randbelow(b - a + 1), for a <= b (any int64 range). If b < a
 * (Python raises ValueError) it returns a and draws nothing.
 */
int64_t pyrand_randint(struct pyrand *r, int64_t a, int64_t b);

/* random.uniform(a, b) = a + (b - a) * random(). */
double pyrand_uniform(struct pyrand *r, double a, double b);

/*
 * random.shuffle(x) over n elements of elem_size bytes at base (modified in place): for i from
 * n-1 down to 1, j = _randbelow(i + 1), swap x[i] and x[j]. Works for any element type, e.g. an
 * index array. n <= 1 draws nothing.
 */
void pyrand_shuffle(struct pyrand *r, void *base, size_t n, size_t elem_size);

/*
 * The `setsize` threshold of CPython 3.11's random.sample for sample size k:
 * 21, plus 4**ceil(log(3k, 4)) when k > 5. sample() uses the pool algorithm when
 * n <= setsize and the set algorithm otherwise.
 */
uint64_t pyrand_sample_setsize(size_t k);

/*
 * random.sample(range(n), k) (CPython 3.11, no counts): writes the k chosen indices into
 * out_idx[0..k-1] (caller-owned, k entries), in Python's result order; population[out_idx[i]]
 * is Python's result[i] for any sequence population of length n.
 * Pool regime (n <= setsize): j = _randbelow(n - i), take pool[j], pool[j] = pool[n-i-1].
 * Set regime: j = _randbelow(n), redrawn while already selected.
 * Returns HX_OK, HX_EINVAL when k > n (Python's ValueError; nothing drawn), or HX_ENOMEM
 * (scratch space; nothing drawn).
 */
int pyrand_sample(struct pyrand *r, size_t n, size_t k, size_t *out_idx);

#endif
