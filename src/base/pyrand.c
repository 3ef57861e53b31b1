/*
 * pyrand.c - CPython 3.11's Mersenne Twister and the parts of random.py that Helix uses.
 *
 * MT19937 and init_by_array follow Matsumoto & Nishimura's reference code as CPython's
 * _randommodule.c embeds it; the higher-level functions restate random.py (3.11) so that
 * the sequence of 32-bit draws, and therefore every later number, is the same as Python's.
 */
#include "base/pyrand.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"

#define MT_M 397
#define MT_MATRIX_A 0x9908b0dfU
#define MT_UPPER_MASK 0x80000000U
#define MT_LOWER_MASK 0x7fffffffU

static void init_genrand(struct pyrand *r, uint32_t s)
{
    r->mt[0] = s;
    for (int i = 1; i < PYRAND_N; i++) {
        uint32_t prev = r->mt[i - 1];
        r->mt[i] = 1812433253U * (prev ^ (prev >> 30)) + (uint32_t)i;
    }
    r->index = PYRAND_N;
}

static void init_by_array(struct pyrand *r, const uint32_t *key, int key_len)
{
    init_genrand(r, 19650218U);
    int i = 1;
    int j = 0;
    for (int k = (PYRAND_N > key_len ? PYRAND_N : key_len); k > 0; k--) {
        uint32_t prev = r->mt[i - 1];
        r->mt[i] = (r->mt[i] ^ ((prev ^ (prev >> 30)) * 1664525U)) + key[j] + (uint32_t)j;
        i++;
        j++;
        if (i >= PYRAND_N) {
            r->mt[0] = r->mt[PYRAND_N - 1];
            i = 1;
        }
        if (j >= key_len) {
            j = 0;
        }
    }
    for (int k = PYRAND_N - 1; k > 0; k--) {
        uint32_t prev = r->mt[i - 1];
        r->mt[i] = (r->mt[i] ^ ((prev ^ (prev >> 30)) * 1566083941U)) - (uint32_t)i;
        i++;
        if (i >= PYRAND_N) {
            r->mt[0] = r->mt[PYRAND_N - 1];
            i = 1;
        }
    }
    r->mt[0] = 0x80000000U; // MSB is 1, assuring a non-zero initial array
    r->index = PYRAND_N;
}

void pyrand_seed_u64(struct pyrand *r, uint64_t seed)
{
    uint32_t key[2];
    int key_len = 0;
    key[key_len++] = (uint32_t)(seed & 0xffffffffU);
    if (seed >> 32) {
        key[key_len++] = (uint32_t)(seed >> 32);
    }
    init_by_array(r, key, key_len);
}

void pyrand_seed(struct pyrand *r, int64_t seed)
{
    /* |seed| computed in unsigned arithmetic so that INT64_MIN maps to 2**63 */
    uint64_t mag = seed < 0 ? (uint64_t)0 - (uint64_t)seed : (uint64_t)seed;
    pyrand_seed_u64(r, mag);
}

uint32_t pyrand_next32(struct pyrand *r)
{
    static const uint32_t mag01[2] = {0x0U, MT_MATRIX_A};
    if (r->index >= PYRAND_N) {
        int kk;
        uint32_t y;
        for (kk = 0; kk < PYRAND_N - MT_M; kk++) {
            y = (r->mt[kk] & MT_UPPER_MASK) | (r->mt[kk + 1] & MT_LOWER_MASK);
            r->mt[kk] = r->mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 0x1U];
        }
        for (; kk < PYRAND_N - 1; kk++) {
            y = (r->mt[kk] & MT_UPPER_MASK) | (r->mt[kk + 1] & MT_LOWER_MASK);
            r->mt[kk] = r->mt[kk + (MT_M - PYRAND_N)] ^ (y >> 1) ^ mag01[y & 0x1U];
        }
        y = (r->mt[PYRAND_N - 1] & MT_UPPER_MASK) | (r->mt[0] & MT_LOWER_MASK);
        r->mt[PYRAND_N - 1] = r->mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 0x1U];
        r->index = 0;
    }
    uint32_t y = r->mt[r->index++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= (y >> 18);
    return y;
}

double pyrand_random(struct pyrand *r)
{
    uint32_t a = pyrand_next32(r) >> 5;
    uint32_t b = pyrand_next32(r) >> 6;
    return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

uint64_t pyrand_getrandbits(struct pyrand *r, int k)
{
    if (k <= 0) {
        return 0;
    }
    if (k > 64) {
        k = 64;
    }
    if (k <= 32) {
        return (uint64_t)(pyrand_next32(r) >> (32 - k));
    }
    /* two words, least significant first; the second keeps its top k-32 bits */
    uint64_t lo = pyrand_next32(r);
    uint64_t hi = pyrand_next32(r) >> (64 - k);
    return (hi << 32) | lo;
}

static int bit_length(uint64_t n)
{
    int k = 0;
    while (n) {
        k++;
        n >>= 1;
    }
    return k;
}

uint64_t pyrand_randbelow(struct pyrand *r, uint64_t n)
{
    if (n == 0) {
        return 0;
    }
    int k = bit_length(n);
    uint64_t v = pyrand_getrandbits(r, k);
    while (v >= n) {
        v = pyrand_getrandbits(r, k);
    }
    return v;
}

int64_t pyrand_randint(struct pyrand *r, int64_t a, int64_t b)
{
    if (b < a) {
        return a;
    }
    /* width = b - a + 1 in unsigned arithmetic; 0 means the full 2**64 range */
    uint64_t width = (uint64_t)b - (uint64_t)a + 1U;
    uint64_t off = width == 0 ? pyrand_getrandbits(r, 64) : pyrand_randbelow(r, width);
    return (int64_t)((uint64_t)a + off);
}

double pyrand_uniform(struct pyrand *r, double a, double b)
{
    return a + (b - a) * pyrand_random(r);
}

void pyrand_shuffle(struct pyrand *r, void *base, size_t n, size_t elem_size)
{
    unsigned char *p = base;
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)pyrand_randbelow(r, (uint64_t)i + 1U);
        if (j == i) {
            continue;
        }
        unsigned char *x = p + i * elem_size;
        unsigned char *y = p + j * elem_size;
        for (size_t b = 0; b < elem_size; b++) {
            unsigned char t = x[b];
            x[b] = y[b];
            y[b] = t;
        }
    }
}

uint64_t pyrand_sample_setsize(size_t k)
{
    uint64_t setsize = 21;
    if (k > 5) {
        /* math.log(k * 3, 4) = log(3k) / log(4) in C doubles, then ceil, then 4 ** that */
        double e = ceil(log((double)k * 3.0) / log(4.0));
        if (e >= 31.0) {
            return UINT64_MAX; // 4**31 overflows; any real n is below it anyway
        }
        setsize += (uint64_t)1 << (2 * (int)e);
    }
    return setsize;
}

/* a tiny open-addressing set of size_t (stored +1; 0 marks an empty slot) */
static size_t set_slot(const size_t *tab, size_t mask, size_t v)
{
    size_t h = (v * (size_t)0x9E3779B97F4A7C15ULL) & mask;
    while (tab[h] != 0 && tab[h] != v + 1) {
        h = (h + 1) & mask;
    }
    return h;
}

int pyrand_sample(struct pyrand *r, size_t n, size_t k, size_t *out_idx)
{
    if (k > n) {
        return HX_EINVAL;
    }
    if ((uint64_t)n <= pyrand_sample_setsize(k)) {
        /* pool regime: an n-length list is smaller than a k-length set */
        size_t *pool = hx_malloc((n ? n : 1) * sizeof(*pool));
        if (!pool) {
            return HX_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            pool[i] = i;
        }
        for (size_t i = 0; i < k; i++) {
            size_t j = (size_t)pyrand_randbelow(r, (uint64_t)(n - i));
            out_idx[i] = pool[j];
            pool[j] = pool[n - i - 1]; // move the non-selected item into the vacancy
        }
        xfree(pool);
        return HX_OK;
    }
    /* set regime: redraw while the index is already selected */
    size_t cap = 8;
    while (cap < 2 * k) {
        cap *= 2;
    }
    size_t *tab = hx_calloc(cap, sizeof(*tab));
    if (!tab) {
        return HX_ENOMEM;
    }
    for (size_t i = 0; i < k; i++) {
        size_t j = (size_t)pyrand_randbelow(r, (uint64_t)n);
        size_t h = set_slot(tab, cap - 1, j);
        while (tab[h] != 0) {
            j = (size_t)pyrand_randbelow(r, (uint64_t)n);
            h = set_slot(tab, cap - 1, j);
        }
        tab[h] = j + 1;
        out_idx[i] = j;
    }
    xfree(tab);
    return HX_OK;
}
