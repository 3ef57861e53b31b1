/*
 * test_base_pyrand.c - pyrand against CPython 3.11's `random`.
 *
 * The vectors below were produced once with Python 3.11 (random.Random(seed), the one-liners
 * are quoted next to each table); the tests recompute every value with pyrand and compare.
 * Many vectors end with one extra getrandbits(32): it checks that we consumed exactly as many
 * 32-bit words as Python did (rejections and redraws included).
 */
#include "base/pyrand.h"

#include <stdint.h>

#include "base/alloc.h"
#include "test.h"

/* spec §0.3 check vectors */
TEST(pyrand_spec_vectors)
{
    struct pyrand r;
    pyrand_seed(&r, 0);
    ASSERT(pyrand_random(&r) == 0.8444218515250481);
    ASSERT(pyrand_random(&r) == 0.7579544029403025);
    ASSERT(pyrand_random(&r) == 0.420571580830845);
    pyrand_seed(&r, 0);
    ASSERT_EQ(pyrand_randint(&r, 0, 16656), 12623);
    ASSERT_EQ(pyrand_randint(&r, 0, 16656), 13781);
    ASSERT_EQ(pyrand_randint(&r, 0, 16656), 1326);
}

/*
 * Per seed, from python3.11 (R = random.Random):
 *   r=R(s); [r.getrandbits(32) for _ in range(3)]
 *   r=R(s); [r.random() for _ in range(2)]
 *   r=R(s); [r.getrandbits(k) for k in (1,7,31,32,33,40,53,64)]
 *   r=R(s); [r.randint(0,16656) for _ in range(3)] + [r.randint(-5,5), r.randint(0,2**40)]
 *   r=R(s); r.uniform(1.5, 3.0)
 */
struct seed_vec {
    int64_t seed;
    uint32_t w32[3];
    double rnd[2];
    uint64_t bits[8];
    int64_t ri[5];
    double uni;
};

static const int bits_k[8] = {1, 7, 31, 32, 33, 40, 53, 64};

static const struct seed_vec seed_vecs[] = {
    {0,
     {3626764237U, 1654615998U, 3255389356U},
     {0.8444218515250481, 0.7579544029403025},
     {1, 49, 1627694678, 3823568514U, 1806341205, 1061968961082ULL, 4376848748439138ULL,
      16938433693753131896ULL},
     {12623, 13781, 1326, -1, 891145273829LL},
     2.766632777287572},
    {1,
     {577090037U, 2444712010U, 3639700191U},
     {0.13436424411240122, 0.8474337369372327},
     {0, 72, 1819850095, 3445702192U, 3280387012U, 129944532028ULL, 6854138572100987ULL,
      8711387064946514083ULL},
     {4402, 2067, 8358, -4, 1037017667747LL},
     1.7015463661686019},
    {42,
     {2746317213U, 478163327U, 107420369U},
     {0.6394267984578837, 0.025010755222666936},
     {1, 14, 53710184, 3184935163U, 1181241943, 151282538206ULL, 923193498493097ULL,
      13662908291426823533ULL},
     {3648, 819, 9012, -2, 305901360862LL},
     2.4591401976868257},
    {1099511627776LL, // 2**40: a two-word key
     {445128065U, 1517081360U, 2880015531U},
     {0.1036394562812375, 0.6705558677439764},
     {0, 45, 1440007765, 282029048, 1832466665, 439751955173ULL, 5048053847385826ULL,
      13206636033052012546ULL},
     {3396, 11574, 2151, 1, 850612183688LL},
     1.6554591844218562},
    {-7, // Python seeds with |s|
     {1390851128U, 4071050724U, 647892279U},
     {0.32383276483316237, 0.15084917392450192},
     {0, 121, 323946139, 1695753998, 2795742288U, 902254243635ULL, 847850320662571ULL,
      10750541312280087032ULL},
     {10611, 4943, 12937, 5, 159121178576LL},
     1.9857491472497435},
};

TEST(pyrand_seeds_words_bits_randint)
{
    for (size_t v = 0; v < sizeof(seed_vecs) / sizeof(seed_vecs[0]); v++) {
        const struct seed_vec *sv = &seed_vecs[v];
        struct pyrand r;
        pyrand_seed(&r, sv->seed);
        for (int i = 0; i < 3; i++) {
            ASSERT_EQ(pyrand_getrandbits(&r, 32), sv->w32[i]);
        }
        pyrand_seed(&r, sv->seed);
        for (int i = 0; i < 2; i++) {
            ASSERT_MSG(pyrand_random(&r) == sv->rnd[i], "seed %lld random #%d", (long long)sv->seed,
                       i);
        }
        pyrand_seed(&r, sv->seed);
        for (int i = 0; i < 8; i++) {
            uint64_t got = pyrand_getrandbits(&r, bits_k[i]);
            ASSERT_MSG(got == sv->bits[i], "seed %lld getrandbits(%d) = %llu, want %llu",
                       (long long)sv->seed, bits_k[i], (unsigned long long)got,
                       (unsigned long long)sv->bits[i]);
        }
        pyrand_seed(&r, sv->seed);
        for (int i = 0; i < 3; i++) {
            ASSERT_EQ(pyrand_randint(&r, 0, 16656), sv->ri[i]);
        }
        ASSERT_EQ(pyrand_randint(&r, -5, 5), sv->ri[3]);
        ASSERT_EQ(pyrand_randint(&r, 0, 1099511627776LL), sv->ri[4]);
        pyrand_seed(&r, sv->seed);
        ASSERT(pyrand_uniform(&r, 1.5, 3.0) == sv->uni);
    }
}

TEST(pyrand_seed_u64_matches_signed_and_is_deterministic)
{
    struct pyrand a;
    struct pyrand b;
    pyrand_seed(&a, 1099511627776LL);
    pyrand_seed_u64(&b, 1099511627776ULL);
    for (int i = 0; i < 2000; i++) { // crosses a 624-word regeneration
        ASSERT_EQ(pyrand_next32(&a), pyrand_next32(&b));
    }
    /* seed(-s) == seed(s) */
    pyrand_seed(&a, -123456789012LL);
    pyrand_seed(&b, 123456789012LL);
    ASSERT_EQ(pyrand_next32(&a), pyrand_next32(&b));
    /* getrandbits(0) and randbelow(0) draw nothing; randbelow(1) is always 0 */
    pyrand_seed(&a, 5);
    pyrand_seed(&b, 5);
    ASSERT_EQ(pyrand_getrandbits(&a, 0), 0);
    ASSERT_EQ(pyrand_randbelow(&a, 0), 0);
    ASSERT_EQ(pyrand_next32(&a), pyrand_next32(&b));
    for (int i = 0; i < 20; i++) {
        ASSERT_EQ(pyrand_randbelow(&a, 1), 0);
    }
    /* randbelow(1) redraws getrandbits(1) until 0:
     * r=R(5); r.getrandbits(32); [r._randbelow(1) for _ in range(20)]; r.getrandbits(32)
     * -> 685494878 */
    ASSERT_EQ(pyrand_next32(&a), 685494878U);
    pyrand_seed(&a, 5);
    pyrand_seed(&b, 5);
    /* randint with b < a draws nothing */
    ASSERT_EQ(pyrand_randint(&a, 3, 2), 3);
    ASSERT_EQ(pyrand_next32(&a), pyrand_next32(&b));
}

/*
 * r=R(0); p=list(range(10)); r.shuffle(p)   -> [7, 8, 1, 5, 3, 4, 2, 0, 9, 6]
 * r=R(42); p=list(range(10)); r.shuffle(p)  -> [7, 3, 2, 8, 5, 6, 9, 4, 0, 1]
 */
TEST(pyrand_shuffle_10)
{
    static const int want0[10] = {7, 8, 1, 5, 3, 4, 2, 0, 9, 6};
    static const int want42[10] = {7, 3, 2, 8, 5, 6, 9, 4, 0, 1};
    struct pyrand r;
    int p[10];
    for (int i = 0; i < 10; i++) {
        p[i] = i;
    }
    pyrand_seed(&r, 0);
    pyrand_shuffle(&r, p, 10, sizeof(p[0]));
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(p[i], want0[i]);
    }
    /* generic element size: a struct of 3 doubles carries its payload along */
    struct {
        double a, b, c;
    } q[10];
    for (int i = 0; i < 10; i++) {
        q[i].a = i;
        q[i].b = -i;
        q[i].c = 0.5 * i;
    }
    pyrand_seed(&r, 42);
    pyrand_shuffle(&r, q, 10, sizeof(q[0]));
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ((int)q[i].a, want42[i]);
        ASSERT(q[i].b == -q[i].a && q[i].c == 0.5 * q[i].a);
    }
}

/*
 * r=R(s); p=list(range(1000)); r.shuffle(p)
 * p[:8], p[-1], sum(i*x for i,x in enumerate(p)), r.getrandbits(32)
 *   s=0:  [439, 621, 160, 549, 237, 389, 658, 507] 864 251292570 1835197452
 *   s=42: [776, 507, 895, 922, 33, 483, 85, 750] 654 250181598 1754569613
 */
TEST(pyrand_shuffle_1000)
{
    struct {
        int64_t seed;
        size_t head[8];
        size_t last;
        uint64_t dot;
        uint32_t next;
    } want[2] = {
        {0, {439, 621, 160, 549, 237, 389, 658, 507}, 864, 251292570, 1835197452U},
        {42, {776, 507, 895, 922, 33, 483, 85, 750}, 654, 250181598, 1754569613U},
    };
    for (int v = 0; v < 2; v++) {
        size_t *p = xmalloc(1000 * sizeof(*p));
        for (size_t i = 0; i < 1000; i++) {
            p[i] = i;
        }
        struct pyrand r;
        pyrand_seed(&r, want[v].seed);
        pyrand_shuffle(&r, p, 1000, sizeof(*p));
        uint64_t dot = 0;
        for (size_t i = 0; i < 1000; i++) {
            dot += (uint64_t)i * p[i];
        }
        for (int i = 0; i < 8; i++) {
            ASSERT_EQ(p[i], want[v].head[i]);
        }
        ASSERT_EQ(p[999], want[v].last);
        ASSERT_EQ(dot, want[v].dot);
        ASSERT_EQ(pyrand_next32(&r), want[v].next);
        xfree(p);
    }
}

TEST(pyrand_sample_setsize_thresholds)
{
    /* setsize = 21 + (k > 5 ? 4**ceil(log(3k, 4)) : 0) */
    ASSERT_EQ(pyrand_sample_setsize(0), 21);
    ASSERT_EQ(pyrand_sample_setsize(5), 21);
    ASSERT_EQ(pyrand_sample_setsize(6), 21 + 64);    // 3k = 18 -> 4**3
    ASSERT_EQ(pyrand_sample_setsize(21), 21 + 64);   // 3k = 63
    ASSERT_EQ(pyrand_sample_setsize(22), 21 + 256);  // 3k = 66
    ASSERT_EQ(pyrand_sample_setsize(50), 21 + 256);  // 3k = 150
    ASSERT_EQ(pyrand_sample_setsize(86), 21 + 1024); // 3k = 258
}

/*
 * r=R(s); x=r.sample(range(n), k); x, r.getrandbits(32)
 */
TEST(pyrand_sample_both_regimes)
{
    struct {
        int64_t seed;
        size_t n;
        size_t k;
        size_t want[10];
        uint32_t next;
    } cases[] = {
        /* pool regime (n <= setsize) */
        {0, 10, 4, {6, 9, 0, 2}, 4146640122U},
        {0, 10, 10, {6, 9, 0, 2, 4, 3, 5, 1, 8, 7}, 2505606783U},
        {1, 30, 10, {4, 18, 27, 25, 24, 2, 8, 3, 15, 14}, 2028277857U}, // setsize 85
        {0, 40, 6, {24, 26, 2, 16, 32, 31}, 1739178872U},               // setsize 85
        /* set regime (n > setsize) */
        {42, 25, 5, {20, 3, 0, 23, 8}, 1051802512U},
        {0, 1000, 5, {864, 394, 776, 911, 430}, 173879092U},
        {2, 22, 5, {1, 2, 11, 5, 21}, 3667190760U},   // one redraw of a duplicate
        {11, 22, 5, {14, 17, 16, 18, 6}, 793110136U}, // two redraws
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct pyrand r;
        size_t got[10];
        pyrand_seed(&r, cases[c].seed);
        ASSERT_OK(pyrand_sample(&r, cases[c].n, cases[c].k, got));
        for (size_t i = 0; i < cases[c].k; i++) {
            ASSERT_MSG(got[i] == cases[c].want[i], "case %zu index %zu: %zu != %zu", c, i, got[i],
                       cases[c].want[i]);
        }
        ASSERT_EQ(pyrand_next32(&r), cases[c].next);
    }
}

/*
 * r=R(2**40); x=r.sample(range(100000), 50); x[:10], sum(x), r.getrandbits(32)
 *   -> [13584, 46297, 87891, 8606, 55922, 6367, 50820, 52316, 82114, 73458] 2555199 2911360069
 */
TEST(pyrand_sample_large_population)
{
    static const size_t head[10] = {13584, 46297, 87891, 8606,  55922,
                                    6367,  50820, 52316, 82114, 73458};
    struct pyrand r;
    size_t got[50];
    pyrand_seed(&r, 1099511627776LL);
    ASSERT_OK(pyrand_sample(&r, 100000, 50, got));
    size_t sum = 0;
    for (int i = 0; i < 50; i++) {
        sum += got[i];
        for (int j = 0; j < i; j++) {
            ASSERT_NE(got[i], got[j]);
        }
    }
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(got[i], head[i]);
    }
    ASSERT_EQ(sum, 2555199);
    ASSERT_EQ(pyrand_next32(&r), 2911360069U);
}

TEST(pyrand_sample_errors)
{
    struct pyrand r;
    struct pyrand ref;
    size_t got[4];
    pyrand_seed(&r, 3);
    pyrand_seed(&ref, 3);
    ASSERT_ERR(pyrand_sample(&r, 3, 4, got), HX_EINVAL);
    ASSERT_OK(pyrand_sample(&r, 0, 0, got));
    ASSERT_EQ(pyrand_next32(&r), pyrand_next32(&ref)); // nothing drawn
    hx_alloc_fail_nth(1);
    ASSERT_ERR(pyrand_sample(&r, 10, 3, got), HX_ENOMEM);
    hx_alloc_fail_nth(0);
}
