/*
 * test_engine_quant.c - ggml's Q8_0 / Q4_0 block formats: the quantizers against hand-worked
 * blocks and error bounds, the CPU backend's quantized matmul (every kernel this CPU runs,
 * decode rows and the dequantized prefill path) against double loops, and the bundled model
 * quantized at load (--weights) against its bf16 self: weight bytes, next-token KL divergence
 * over the golden prompts, and the greedy continuation.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/backend.h"
#include "engine/cpu/cpu_int.h"
#include "engine/engine_int.h"
#include "test.h"

#define MODEL_DIR "models/kjv-llama-6m"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

TEST(engine_quant_blocks_by_hand)
{
    float x[32];
    for (int j = 0; j < 32; j++) {
        x[j] = (float)(j - 16) * 0.25f; /* -4 .. 3.75 */
    }
    struct eng_block_q8_0 b8;
    eng_quant_row_q8_0(x, &b8, 32);
    float d8 = eng_f16_to_f32(b8.d);
    ASSERT_DBL_NEAR(d8, 4.0 / 127.0, 1e-5);
    ASSERT_EQ(b8.qs[0], -127);                                /* -4 / d */
    ASSERT_EQ(b8.qs[16], 0);                                  /* 0 */
    ASSERT_EQ(b8.qs[31], (int)roundf(3.75f * 127.0f / 4.0f)); /* 119 */
    struct eng_block_q4_0 b4;
    eng_quant_row_q4_0(x, &b4, 32);
    /* the largest magnitude is -4: d = -4 / -8 = 0.5, u = x / d + 8.5 truncated */
    ASSERT_DBL_NEAR(eng_f16_to_f32(b4.d), 0.5, 0);
    ASSERT_EQ(b4.qs[0] & 0x0f, 0); /* x[0] = -4: u 0 */
    ASSERT_EQ(b4.qs[0] >> 4, 8);   /* x[16] = 0: u 8 */
    ASSERT_EQ(b4.qs[15] >> 4, 15); /* x[31] = 3.75: 7.5 + 8.5 = 16 -> clamped 15 */
    ASSERT_EQ(b4.qs[2] & 0x0f, 1); /* x[2] = -3.5: -7 + 8.5 = 1.5 -> 1 */
    float back[32];
    eng_dequant_row(ENG_DTYPE_Q4_0, &b4, back, 32);
    ASSERT_DBL_NEAR(back[2], -3.5, 0);
    ASSERT_DBL_NEAR(back[31], 3.5, 0);
    /* all zeros: d = 0, values 0 (no division by zero) */
    float z[32] = {0};
    eng_quant_row_q8_0(z, &b8, 32);
    eng_quant_row_q4_0(z, &b4, 32);
    ASSERT_EQ(b8.d, 0);
    ASSERT_EQ(b4.qs[3], 0x88);
    ASSERT_EQ(eng_dtype_row_bytes(ENG_DTYPE_Q8_0, 4096), 4096 / 32 * 34);
    ASSERT_EQ(eng_dtype_row_bytes(ENG_DTYPE_Q4_0, 4096), 4096 / 32 * 18);
    enum eng_dtype dt;
    ASSERT_EQ(eng_weight_format_parse("Q4_0", &dt), 0);
    ASSERT_EQ(dt, ENG_DTYPE_Q4_0);
    ASSERT_EQ(eng_weight_format_parse("q5_k", &dt), -1);
}

TEST(engine_quant_roundtrip_error_bounds)
{
    size_t n = 32 * 64;
    float *x = xmalloc(n * sizeof(float));
    float *y = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        x[i] = frand() * (float)(1 + i % 7);
    }
    struct eng_block_q8_0 *b8 = xmalloc(n / 32 * sizeof(*b8));
    struct eng_block_q4_0 *b4 = xmalloc(n / 32 * sizeof(*b4));
    eng_quant_row_q8_0(x, b8, n);
    eng_quant_row_q4_0(x, b4, n);
    eng_dequant_row(ENG_DTYPE_Q8_0, b8, y, n);
    for (size_t i = 0; i < n; i++) {
        float d = eng_f16_to_f32(b8[i / 32].d);
        /* half a step, plus the fp16 rounding of d (q was rounded with the float scale) */
        ASSERT_MSG(fabsf(x[i] - y[i]) <= 0.57f * d + 1e-7f, "q8 %zu: %g vs %g", i, x[i], y[i]);
        struct eng_weight w = {ENG_DTYPE_Q8_0, 1, (int)n, b8};
        ASSERT_DBL_NEAR(eng_weight_get(&w, i), y[i], 0);
    }
    eng_dequant_row(ENG_DTYPE_Q4_0, b4, y, n);
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(eng_f16_to_f32(b4[i / 32].d));
        ASSERT_MSG(fabsf(x[i] - y[i]) <= d * 1.01f + 1e-7f, "q4 %zu: %g vs %g", i, x[i], y[i]);
        struct eng_weight w = {ENG_DTYPE_Q4_0, 1, (int)n, b4};
        ASSERT_DBL_NEAR(eng_weight_get(&w, i), y[i], 0);
    }
    xfree(x);
    xfree(y);
    xfree(b8);
    xfree(b4);
}

/* x quantized as the kernels quantize their input rows: int8 blocks with an fp16-rounded
 * scale (Q4_0 weights), int16 blocks with scale amax / 32767 (Q8_0). */
static void ref_quant_input(const float *x, size_t k, int wide, float *xr)
{
    for (size_t i = 0; i < k; i += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            amax = fmaxf(amax, fabsf(x[i + (size_t)j]));
        }
        float qmax = wide ? 32767.0f : 127.0f;
        float d = amax / qmax;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        float dr = wide ? d : eng_f16_to_f32(eng_f32_to_f16(d));
        for (int j = 0; j < 32; j++) {
            xr[i + (size_t)j] = dr * roundf(x[i + (size_t)j] * id);
        }
    }
}

static void check_qmatmul(struct eng_backend *be, enum eng_dtype dt, int m, int rows, int cols,
                          int with_bias)
{
    size_t n = (size_t)rows * (size_t)cols;
    float *wf = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        wf[i] = frand() * 0.5f;
    }
    size_t rb = eng_dtype_row_bytes(dt, cols);
    unsigned char *wq = xmalloc(rb * (size_t)rows);
    for (int r = 0; r < rows; r++) {
        ASSERT_EQ(
            eng_quant_row(dt, wf + (size_t)r * (size_t)cols, wq + (size_t)r * rb, (size_t)cols), 0);
        eng_dequant_row(dt, wq + (size_t)r * rb, wf + (size_t)r * (size_t)cols, (size_t)cols);
    }
    float bias_v[300];
    for (int r = 0; r < rows; r++) {
        bias_v[r] = frand();
    }
    struct eng_weight w = {dt, rows, cols, wq};
    struct eng_weight b = {ENG_DTYPE_F32, 1, rows, bias_v};
    float *x = xmalloc((size_t)m * (size_t)cols * sizeof(float));
    float *xr = xmalloc((size_t)m * (size_t)cols * sizeof(float));
    float *out = xmalloc((size_t)m * (size_t)rows * sizeof(float));
    for (int i = 0; i < m * cols; i++) {
        x[i] = frand();
    }
    /* decode rows quantize x (as ggml); the prefill path multiplies float x */
    int quantized_x = m <= CPU_SMALL_M;
    for (int i = 0; i < m; i++) {
        if (quantized_x) {
            ref_quant_input(x + (size_t)i * (size_t)cols, (size_t)cols, dt == ENG_DTYPE_Q8_0,
                            xr + (size_t)i * (size_t)cols);
        } else {
            memcpy(xr + (size_t)i * (size_t)cols, x + (size_t)i * (size_t)cols,
                   (size_t)cols * sizeof(float));
        }
    }
    ASSERT_OK(be->ops->reserve(be, m, cols, NULL));
    be->ops->matmul(be, x, m, &w, with_bias ? &b : NULL, out);
    for (int i = 0; i < m; i++) {
        for (int r = 0; r < rows; r++) {
            double want = with_bias ? bias_v[r] : 0.0;
            double mag = 0.0;
            for (int k = 0; k < cols; k++) {
                double p = (double)wf[(size_t)r * (size_t)cols + (size_t)k] *
                           (double)xr[(size_t)i * (size_t)cols + (size_t)k];
                want += p;
                mag += fabs(p);
            }
            double got = out[(size_t)i * (size_t)rows + (size_t)r];
            ASSERT_MSG(fabs(got - want) <= 1e-5 * mag + 1e-6, "%s m=%d %dx%d [%d,%d]: %g vs %g",
                       eng_dtype_name(dt), m, rows, cols, i, r, got, want);
        }
    }
    xfree(wf);
    xfree(wq);
    xfree(x);
    xfree(xr);
    xfree(out);
}

TEST(engine_quant_matmul_every_kernel)
{
    int best = cpu_quant_kind();
    for (int threads = 1; threads <= 2; threads++) {
        struct eng_backend *be;
        ASSERT_OK(eng_cpu_backend_new(threads, &be, NULL));
        struct eng_cpu_backend *cb = (struct eng_cpu_backend *)be;
        for (int kind = CPU_QK_PORTABLE; kind <= best; kind++) {
            cb->quant_kind = kind;
            enum eng_dtype dts[2] = {ENG_DTYPE_Q8_0, ENG_DTYPE_Q4_0};
            for (int d = 0; d < 2; d++) {
                check_qmatmul(be, dts[d], 1, 70, 64, 0);   /* 4-row blocks and a row tail */
                check_qmatmul(be, dts[d], 1, 300, 256, 1); /* several tasks, bias */
                check_qmatmul(be, dts[d], 3, 36, 96, 0);   /* 2 + 1 input rows */
                check_qmatmul(be, dts[d], 7, 70, 64, 1);   /* 4 + 2 + 1 input rows */
                check_qmatmul(be, dts[d], 16, 64, 544, 0); /* batched decode */
                check_qmatmul(be, dts[d], 70, 40, 64, 1);  /* prefill: dequantized tiles */
            }
        }
        eng_backend_free(be);
    }
}

/* The golden prompts (models/kjv-llama-6m/golden.json) and the start of their greedy
 * continuations: next-token distributions at 36 positions. */
static const int32_t PROMPTS[3][12] = {
    {0, 1147, 260, 2085, 388, 3364, 13, 269, 260, 388, 270, 361},
    {0, 297, 260, 342, 389, 322, 689, 13, 1428, 322, 260, 1031},
    {0, 2580, 420, 260, 1437, 288, 973, 27, 319, 361, 260, 886},
};

static void model_logits(enum eng_dtype fmt, float *logits, size_t *layer_bytes)
{
    struct hx_diag d = {0};
    struct eng_backend *be;
    struct eng_model *m;
    struct eng_engine *e;
    ASSERT_OK_DIAG(eng_cpu_backend_new(2, &be, &d), &d);
    struct eng_model_opts o = {0, -1, fmt};
    ASSERT_OK_DIAG(eng_model_open(MODEL_DIR, &o, be, &m, &d), &d);
    *layer_bytes = eng_model_layer_bytes(m);
    ASSERT_EQ(eng_model_weight_dtype(m), fmt == ENG_DTYPE_OTHER ? ENG_DTYPE_BF16 : fmt);
    struct eng_engine_opts eo = {.max_seqs = 1, .max_tokens = 16, .max_ctx = 32};
    ASSERT_OK_DIAG(eng_engine_new(m, &eo, &e, &d), &d);
    for (int p = 0; p < 3; p++) {
        ASSERT_OK(eng_seq_add(e, p, &d));
        /* one token a step: every matmul runs the decode kernels */
        for (int t = 0; t < 12; t++) {
            struct eng_seq_step s = {p, t, 1, &PROMPTS[p][t], NULL};
            struct eng_step_out out = {.logits = logits + ((size_t)p * 12 + (size_t)t) * 4096};
            ASSERT_OK_DIAG(eng_engine_step(e, &s, 1, &out, &d), &d);
        }
        ASSERT_OK(eng_seq_remove(e, p));
    }
    eng_engine_free(e);
    eng_model_free(m);
    eng_backend_free(be);
}

static double mean_kl(const float *p_logits, const float *q_logits, int n_pos, int vocab)
{
    double sum = 0.0;
    for (int t = 0; t < n_pos; t++) {
        const float *a = p_logits + (size_t)t * (size_t)vocab;
        const float *b = q_logits + (size_t)t * (size_t)vocab;
        double ma = -INFINITY, mb = -INFINITY;
        for (int i = 0; i < vocab; i++) {
            ma = fmax(ma, a[i]);
            mb = fmax(mb, b[i]);
        }
        double za = 0.0, zb = 0.0;
        for (int i = 0; i < vocab; i++) {
            za += exp(a[i] - ma);
            zb += exp(b[i] - mb);
        }
        double kl = 0.0;
        for (int i = 0; i < vocab; i++) {
            double la = a[i] - ma - log(za);
            double lb = b[i] - mb - log(zb);
            kl += exp(la) * (la - lb);
        }
        sum += kl;
    }
    return sum / n_pos;
}

TEST(engine_quant_model_on_load)
{
    size_t n = 3 * 12 * 4096;
    float *ref = xmalloc(n * sizeof(float));
    float *q8 = xmalloc(n * sizeof(float));
    float *q4 = xmalloc(n * sizeof(float));
    size_t b_bf16, b_q8, b_q4;
    model_logits(ENG_DTYPE_OTHER, ref, &b_bf16);
    model_logits(ENG_DTYPE_Q8_0, q8, &b_q8);
    model_logits(ENG_DTYPE_Q4_0, q4, &b_q4);
    /* a layer: 2 bf16 norms of 256 and 4 x 256 x 256 / 4 ... matrices of 2 bytes an element;
     * quantized: 34 / 18 bytes per 32 elements of the matrices, norms unchanged */
    size_t norms = 2 * 256 * 2;
    size_t mat = (b_bf16 - norms) / 2;
    ASSERT_EQ(b_q8, norms + mat / 32 * 34);
    ASSERT_EQ(b_q4, norms + mat / 32 * 18);
    double kl8 = mean_kl(ref, q8, 36, 4096);
    double kl4 = mean_kl(ref, q4, 36, 4096);
    printf("# mean KL from bf16: q8_0 %.3g, q4_0 %.3g\n", kl8, kl4);
    ASSERT_MSG(kl8 > 0 && kl8 < 4e-3, "q8_0 KL %g", kl8);
    ASSERT_MSG(kl4 > kl8 && kl4 < 0.5, "q4_0 KL %g (q8_0 %g)", kl4, kl8);
    /* q8_0 keeps the argmax of nearly every position */
    int same = 0;
    for (int t = 0; t < 36; t++) {
        same += eng_argmax(ref + (size_t)t * 4096, 4096) == eng_argmax(q8 + (size_t)t * 4096, 4096);
    }
    ASSERT_GE(same, 30);
    xfree(ref);
    xfree(q8);
    xfree(q4);
}
