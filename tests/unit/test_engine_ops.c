/*
 * test_engine_ops.c - the CPU backend's ops against values computed here by hand or by naive
 * double-precision loops: matmul in F32/BF16/F16 (single row and tiled batch, with bias, odd
 * sizes that exercise the tails, 1 and 2 threads), RMSNorm, RoPE, SwiGLU, and attention over a
 * paged cache whose blocks are out of order.
 */
#include <stdint.h>

#include "base/alloc.h"
#include "engine/backend.h"
#include "engine/engine_int.h"
#include "test.h"

static uint64_t rng_state = 88172645463325252ULL;

static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

static void check_matmul(struct eng_backend *be, enum eng_dtype dt, int m, int rows, int cols,
                         int with_bias)
{
    size_t n = (size_t)rows * (size_t)cols;
    float *wf = xmalloc(n * sizeof(float));
    uint16_t *wh = xmalloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        float v = frand() * 0.5f;
        if (dt == ENG_DTYPE_BF16) {
            wh[i] = eng_f32_to_bf16(v);
            v = eng_bf16_to_f32(wh[i]);
        } else if (dt == ENG_DTYPE_F16) {
            wh[i] = eng_f32_to_f16(v);
            v = eng_f16_to_f32(wh[i]);
        }
        wf[i] = v;
    }
    float bias_v[300];
    for (int r = 0; r < rows; r++) {
        bias_v[r] = frand();
    }
    struct eng_weight w = {dt, rows, cols, dt == ENG_DTYPE_F32 ? (void *)wf : (void *)wh};
    struct eng_weight b = {ENG_DTYPE_F32, 1, rows, bias_v};
    float *x = xmalloc((size_t)m * (size_t)cols * sizeof(float));
    float *out = xmalloc((size_t)m * (size_t)rows * sizeof(float));
    for (int i = 0; i < m * cols; i++) {
        x[i] = frand();
    }
    ASSERT_OK(be->ops->reserve(be, m, cols, NULL));
    be->ops->matmul(be, x, m, &w, with_bias ? &b : NULL, out);
    for (int i = 0; i < m; i++) {
        for (int r = 0; r < rows; r++) {
            double want = with_bias ? bias_v[r] : 0.0;
            for (int k = 0; k < cols; k++) {
                want += (double)wf[(size_t)r * (size_t)cols + (size_t)k] *
                        (double)x[(size_t)i * (size_t)cols + (size_t)k];
            }
            ASSERT_DBL_NEAR(out[(size_t)i * (size_t)rows + (size_t)r], want, 1e-4);
        }
    }
    xfree(wf);
    xfree(wh);
    xfree(x);
    xfree(out);
}

TEST(engine_op_matmul_dtypes_and_shapes)
{
    for (int threads = 1; threads <= 2; threads++) {
        struct eng_backend *be;
        ASSERT_OK(eng_cpu_backend_new(threads, &be, NULL));
        enum eng_dtype dts[3] = {ENG_DTYPE_F32, ENG_DTYPE_BF16, ENG_DTYPE_F16};
        for (int d = 0; d < 3; d++) {
            check_matmul(be, dts[d], 1, 70, 37, 0);   /* gemv, tails */
            check_matmul(be, dts[d], 1, 300, 64, 1);  /* several tasks, bias */
            check_matmul(be, dts[d], 5, 70, 37, 1);   /* tiled sgemm */
            check_matmul(be, dts[d], 33, 300, 48, 0); /* bf16: 4x4 and 4x1 blocks */
            check_matmul(be, dts[d], 6, 70, 40, 1);   /* k % 16 != 0, row tail */
            check_matmul(be, dts[d], 13, 70, 40, 0);  /* 4x4 blocks and an m tail */
            check_matmul(be, dts[d], 9, 70, 96, 1);   /* bf16 pair-split path (k % 32 == 0) */
            check_matmul(be, dts[d], 5, 36, 544, 0);  /* pair-split over several k slices */
            check_matmul(be, dts[d], 80, 130, 64, 1); /* tiled sgemm for every dtype */
        }
        eng_backend_free(be);
    }
}

TEST(engine_op_elementwise)
{
    struct eng_backend *be;
    ASSERT_OK(eng_cpu_backend_new(1, &be, NULL));
    const struct eng_backend_ops *op = be->ops;
    /* RMSNorm: [3, 4] has mean square 12.5 */
    float x[2] = {3.0f, 4.0f};
    float wv[2] = {1.0f, 2.0f};
    struct eng_weight w = {ENG_DTYPE_F32, 1, 2, wv};
    float out[2];
    op->rmsnorm(be, x, &w, 1, 0.0f, out);
    ASSERT_DBL_NEAR(out[0], 3.0 / sqrt(12.5), 1e-6);
    ASSERT_DBL_NEAR(out[1], 2.0 * 4.0 / sqrt(12.5), 1e-6);
    uint16_t wb[2] = {eng_f32_to_bf16(1.0f), eng_f32_to_bf16(2.0f)};
    struct eng_weight w16 = {ENG_DTYPE_BF16, 1, 2, wb};
    op->rmsnorm(be, x, &w16, 1, 0.5f, out);
    ASSERT_DBL_NEAR(out[1], 8.0 / sqrt(13.0), 1e-6);
    /* RoPE, head_dim 4: pairs (0,2) at angle pos, (1,3) at pos / 100 (theta 1e4) */
    float q[8] = {1, 2, 3, 4, 1, 0, 0, 1};
    int32_t pos[1] = {2};
    op->rope(be, q, 1, 2, 4, pos, 10000.0);
    ASSERT_DBL_NEAR(q[0], 1 * cos(2.0) - 3 * sin(2.0), 1e-6);
    ASSERT_DBL_NEAR(q[2], 3 * cos(2.0) + 1 * sin(2.0), 1e-6);
    ASSERT_DBL_NEAR(q[1], 2 * cos(0.02) - 4 * sin(0.02), 1e-6);
    ASSERT_DBL_NEAR(q[3], 4 * cos(0.02) + 2 * sin(0.02), 1e-6);
    ASSERT_DBL_NEAR(q[4], cos(2.0), 1e-6); /* second head, same angles */
    ASSERT_DBL_NEAR(q[7], cos(0.02), 1e-6);
    /* position 0 is the identity */
    float r[4] = {1, 2, 3, 4};
    int32_t p0 = 0;
    op->rope(be, r, 1, 1, 4, &p0, 10000.0);
    ASSERT_DBL_NEAR(r[3], 4.0, 0);
    /* SwiGLU and add */
    float g[2] = {1.0f, -2.0f};
    float u[2] = {2.0f, 3.0f};
    op->swiglu(be, g, u, 2, out);
    ASSERT_DBL_NEAR(out[0], 2.0 / (1.0 + exp(-1.0)), 1e-6);
    ASSERT_DBL_NEAR(out[1], 3.0 * -2.0 / (1.0 + exp(2.0)), 1e-6);
    op->add(be, g, u, 2);
    ASSERT_DBL_NEAR(g[1], 1.0, 0);
    /* embed reads rows of any dtype */
    uint16_t table[6];
    for (int i = 0; i < 6; i++) {
        table[i] = eng_f32_to_f16((float)i * 0.5f);
    }
    struct eng_weight t = {ENG_DTYPE_F16, 3, 2, table};
    int32_t ids[2] = {2, 0};
    float e[4];
    op->embed(be, &t, ids, 2, e);
    ASSERT_DBL_NEAR(e[0], 2.0, 0);
    ASSERT_DBL_NEAR(e[1], 2.5, 0);
    ASSERT_DBL_NEAR(e[2], 0.0, 0);
    eng_backend_free(be);
}

/* Paged attention vs a naive softmax over a contiguous copy. */
TEST(engine_op_paged_attention)
{
    struct eng_backend *be;
    ASSERT_OK(eng_cpu_backend_new(2, &be, NULL));
    enum { NH = 4, NKV = 2, D = 8, T = 21, NB = 4 };
    size_t kvd = NKV * D;
    float *kc = xcalloc(NB * ENG_KV_BLOCK * kvd, sizeof(float));
    float *vc = xcalloc(NB * ENG_KV_BLOCK * kvd, sizeof(float));
    float k[T * NKV * D];
    float v[T * NKV * D];
    float q[T * NH * D];
    float out[T * NH * D];
    for (int i = 0; i < T * NKV * D; i++) {
        k[i] = frand();
        v[i] = frand();
    }
    for (int i = 0; i < T * NH * D; i++) {
        q[i] = frand() * 2.0f;
    }
    int32_t tables[2] = {3, 1}; /* positions 0..15 in block 3, 16..20 in block 1 */
    int32_t tpos[T];
    int32_t tseq[T];
    for (int t = 0; t < T; t++) {
        tpos[t] = t;
        tseq[t] = 0;
    }
    struct eng_attn_batch b = {T, NH, NKV, D, 2, tpos, tseq, tables, kc, vc, tpos, tseq};
    be->ops->kv_store(be, &b, k, v);
    /* the cache holds position 17's K at block 1, slot 1 */
    ASSERT_DBL_NEAR(kc[(1 * ENG_KV_BLOCK + 1) * kvd + 3], k[17 * kvd + 3], 0);
    be->ops->attention(be, &b, q, out);
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < NH; h++) {
            int kvh = h / (NH / NKV);
            double sc[T];
            double mx = -1e300;
            for (int p = 0; p <= t; p++) {
                double s = 0;
                for (int i = 0; i < D; i++) {
                    s += (double)q[(t * NH + h) * D + i] * (double)k[p * kvd + kvh * D + i];
                }
                sc[p] = s / sqrt((double)D);
                mx = sc[p] > mx ? sc[p] : mx;
            }
            double z = 0;
            for (int p = 0; p <= t; p++) {
                sc[p] = exp(sc[p] - mx);
                z += sc[p];
            }
            for (int i = 0; i < D; i++) {
                double want = 0;
                for (int p = 0; p <= t; p++) {
                    want += sc[p] / z * (double)v[p * kvd + kvh * D + i];
                }
                ASSERT_DBL_NEAR(out[(t * NH + h) * D + i], want, 1e-5);
            }
        }
    }
    xfree(kc);
    xfree(vc);
    eng_backend_free(be);
}

/* The elementwise ops split large inputs over the pool: same results as by hand. */
TEST(engine_op_elementwise_threaded)
{
    struct eng_backend *be;
    ASSERT_OK(eng_cpu_backend_new(2, &be, NULL));
    size_t n = 300000;
    float *g = xmalloc(n * sizeof(float));
    float *u = xmalloc(n * sizeof(float));
    float *o = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        g[i] = frand() * 4.0f;
        u[i] = frand();
    }
    be->ops->swiglu(be, g, u, n, o);
    for (size_t i = 0; i < n; i += 997) {
        ASSERT_DBL_NEAR(o[i], g[i] / (1.0 + exp(-(double)g[i])) * u[i], 1e-5);
    }
    ASSERT_DBL_NEAR(o[n - 1], g[n - 1] / (1.0 + exp(-(double)g[n - 1])) * u[n - 1], 1e-5);
    be->ops->add(be, o, u, n);
    ASSERT_DBL_NEAR(o[n - 1], g[n - 1] / (1.0 + exp(-(double)g[n - 1])) * u[n - 1] + u[n - 1],
                    1e-5);
    /* RMSNorm over 150 rows of 2000 */
    float wv[2000];
    for (int j = 0; j < 2000; j++) {
        wv[j] = 1.0f + (float)j * 1e-3f;
    }
    struct eng_weight w = {ENG_DTYPE_F32, 1, 2000, wv};
    be->ops->rmsnorm(be, g, &w, 150, 1e-5f, o);
    for (int i = 0; i < 150; i += 7) {
        double ss = 0;
        for (int j = 0; j < 2000; j++) {
            ss += (double)g[i * 2000 + j] * g[i * 2000 + j];
        }
        double sc = 1.0 / sqrt(ss / 2000 + 1e-5);
        for (int j = 0; j < 2000; j += 111) {
            ASSERT_DBL_NEAR(o[i * 2000 + j], wv[j] * g[i * 2000 + j] * sc, 1e-5);
        }
    }
    xfree(g);
    xfree(u);
    xfree(o);
    eng_backend_free(be);
}
