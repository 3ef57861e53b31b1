/*
 * test_engine_sampler.c - sampling on small logit vectors whose probabilities are computed
 * here: greedy, seed determinism, top-k keeps exactly the k best, top-p keeps the smallest
 * prefix reaching p and samples it in proportion, temperature sharpens.
 */
#include <stdint.h>

#include "engine/engine.h"
#include "test.h"

#define V 6
static const float LOGITS[V] = {1.0f, 3.0f, 0.5f, 2.0f, -1.0f, 2.5f};
/* order by logit: 1 (3.0), 5 (2.5), 3 (2.0), 0 (1.0), 2 (0.5), 4 (-1.0) */

static void draw(const struct eng_sampler_params *p, int n, int counts[V])
{
    struct eng_sampler *s;
    ASSERT_OK(eng_sampler_new(p, V, &s));
    memset(counts, 0, V * sizeof(int));
    for (int i = 0; i < n; i++) {
        int32_t t = eng_sampler_sample(s, LOGITS);
        ASSERT(t >= 0 && t < V);
        counts[t]++;
    }
    eng_sampler_free(s);
}

TEST(engine_sampler_greedy_and_seed)
{
    struct eng_sampler_params g = {0};
    int c[V];
    draw(&g, 10, c);
    ASSERT_EQ(c[1], 10);
    ASSERT_EQ(eng_argmax(LOGITS, V), 1);
    float ties[4] = {1, 5, 5, 2};
    ASSERT_EQ(eng_argmax(ties, 4), 1);
    /* same seed, same draws; another seed, other draws */
    struct eng_sampler_params p = {.temperature = 1.0f, .seed = 1234};
    struct eng_sampler *a;
    struct eng_sampler *b;
    struct eng_sampler *other;
    ASSERT_OK(eng_sampler_new(&p, V, &a));
    ASSERT_OK(eng_sampler_new(&p, V, &b));
    p.seed = 99;
    ASSERT_OK(eng_sampler_new(&p, V, &other));
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        int32_t x = eng_sampler_sample(a, LOGITS);
        ASSERT_EQ(x, eng_sampler_sample(b, LOGITS));
        differ += x != eng_sampler_sample(other, LOGITS);
    }
    ASSERT(differ > 20);
    eng_sampler_free(a);
    eng_sampler_free(b);
    eng_sampler_free(other);
    ASSERT_ERR(eng_sampler_new(&p, 0, &a), HX_EINVAL);
}

TEST(engine_sampler_temperature_distribution)
{
    /* T = 1: frequencies match softmax(LOGITS) */
    struct eng_sampler_params p = {.temperature = 1.0f, .seed = 7};
    int n = 60000;
    int c[V];
    draw(&p, n, c);
    double z = 0;
    for (int i = 0; i < V; i++) {
        z += exp(LOGITS[i]);
    }
    for (int i = 0; i < V; i++) {
        double want = exp(LOGITS[i]) / z;
        ASSERT_DBL_NEAR((double)c[i] / n, want, 4 * sqrt(want * (1 - want) / n) + 1e-3);
    }
    /* T = 0.5 squares the odds: p1/p5 = e^(2 * 0.5) */
    p.temperature = 0.5f;
    draw(&p, n, c);
    ASSERT_DBL_NEAR((double)c[1] / c[5], exp(1.0), 0.15);
}

TEST(engine_sampler_top_k)
{
    struct eng_sampler_params p = {.temperature = 1.0f, .top_k = 3, .seed = 3};
    int c[V];
    int n = 30000;
    draw(&p, n, c);
    ASSERT_EQ(c[0] + c[2] + c[4], 0); /* only 1, 5, 3 */
    double z = exp(3.0) + exp(2.5) + exp(2.0);
    ASSERT_DBL_NEAR((double)c[1] / n, exp(3.0) / z, 0.02);
    ASSERT_DBL_NEAR((double)c[3] / n, exp(2.0) / z, 0.02);
    p.top_k = 1;
    draw(&p, 100, c);
    ASSERT_EQ(c[1], 100);
    /* top-k on a larger vocabulary with many ties picks exactly k distinct ids */
    float big[1000];
    for (int i = 0; i < 1000; i++) {
        big[i] = (float)((i * 37) % 100); /* each value 0..99 is held by exactly 10 ids */
    }
    struct eng_sampler_params q = {.temperature = 100.0f, .top_k = 20, .seed = 5};
    struct eng_sampler *s;
    ASSERT_OK(eng_sampler_new(&q, 1000, &s));
    int seen[1000] = {0};
    for (int i = 0; i < 20000; i++) {
        int32_t t = eng_sampler_sample(s, big);
        ASSERT(big[t] >= 98.0f); /* the 20 best are the ten 99s and ten 98s */
        seen[t] = 1;
    }
    int distinct = 0;
    for (int i = 0; i < 1000; i++) {
        distinct += seen[i];
    }
    ASSERT_EQ(distinct, 20);
    eng_sampler_free(s);
}

TEST(engine_sampler_top_p)
{
    /* probabilities 0.5, 0.3, 0.15, 0.05 (logits = log p) */
    float lg[4] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    struct eng_sampler_params p = {.temperature = 1.0f, .top_p = 0.7f, .seed = 11};
    struct eng_sampler *s;
    ASSERT_OK(eng_sampler_new(&p, 4, &s));
    int c[4] = {0};
    int n = 40000;
    for (int i = 0; i < n; i++) {
        c[eng_sampler_sample(s, lg)]++;
    }
    eng_sampler_free(s);
    /* 0.5 < 0.7 <= 0.5 + 0.3: keep ids 1 and 3, renormalised to 5/8 and 3/8 */
    ASSERT_EQ(c[0] + c[2], 0);
    ASSERT_DBL_NEAR((double)c[1] / n, 0.625, 0.015);
    /* p = 0.9: 0.5 + 0.3 = 0.8 < 0.9, so id 0 joins */
    p.top_p = 0.9f;
    ASSERT_OK(eng_sampler_new(&p, 4, &s));
    memset(c, 0, sizeof(c));
    for (int i = 0; i < n; i++) {
        c[eng_sampler_sample(s, lg)]++;
    }
    eng_sampler_free(s);
    ASSERT_EQ(c[2], 0);
    ASSERT_DBL_NEAR((double)c[0] / n, 0.15 / 0.95, 0.015);
}
