/*
 * op_matmul.c - out[m x N] = x[m x K] W^T (+ bias) for W [N x K] in BF16, F16 or F32.
 *
 * One row of input (a decode at batch 1) is memory-bound: each weight row is streamed once
 * and dotted with x in its stored dtype (bf16 -> f32 is a shift), rows split over threads.
 * Several rows (prefill, batched decode) are compute-bound: the weight is cut into tiles of
 * R rows, each converted to float32 into the thread's scratch (L2-sized) and multiplied with
 * OpenBLAS sgemm, so the weight is still read from memory once per call.
 */
#include <cblas.h>
#include <string.h>

#include "engine/cpu/cpu_int.h"
#include "engine/engine_int.h"

#define GEMV_ROWS_PER_TASK 64
#define TILE_TARGET_FLOATS 65536 /* 256 KiB per thread */

int cpu_tile_rows(int k)
{
    int r = TILE_TARGET_FLOATS / (k > 0 ? k : 1);
    r = r < 16 ? 16 : r > 256 ? 256 : r;
    return r & ~7;
}

CPU_HOT static float dot_f32(const float *w, const float *x, int n)
{
    float acc[16] = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        for (int u = 0; u < 16; u++) {
            acc[u] += w[j + u] * x[j + u];
        }
    }
    float s = 0.0f;
    for (int u = 0; u < 16; u++) {
        s += acc[u];
    }
    for (; j < n; j++) {
        s += w[j] * x[j];
    }
    return s;
}

CPU_HOT static float dot_bf16(const uint16_t *w, const float *x, int n)
{
    float acc[16] = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        for (int u = 0; u < 16; u++) {
            uint32_t bits = (uint32_t)w[j + u] << 16;
            float f;
            memcpy(&f, &bits, sizeof(f));
            acc[u] += f * x[j + u];
        }
    }
    float s = 0.0f;
    for (int u = 0; u < 16; u++) {
        s += acc[u];
    }
    for (; j < n; j++) {
        s += eng_bf16_to_f32(w[j]) * x[j];
    }
    return s;
}

CPU_HOT static void bf16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        uint32_t bits = (uint32_t)src[j] << 16;
        memcpy(&dst[j], &bits, sizeof(float));
    }
}

static void f16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        dst[j] = eng_f16_to_f32(src[j]);
    }
}

struct mm_ctx {
    struct eng_cpu_backend *cb;
    const float *x;
    int m;
    const struct eng_weight *w;
    const struct eng_weight *bias;
    float *out;
    int rows_per_task;
};

/* Rows [r0, r1) of W as float32: the weight itself (F32) or a converted copy in scratch. */
static const float *weight_rows(const struct mm_ctx *c, int r0, int r1, int thread)
{
    const struct eng_weight *w = c->w;
    size_t k = (size_t)w->cols;
    if (w->dtype == ENG_DTYPE_F32) {
        return (const float *)w->data + (size_t)r0 * k;
    }
    float *tile = c->cb->scratch[thread];
    const uint16_t *src = (const uint16_t *)w->data + (size_t)r0 * k;
    size_t n = (size_t)(r1 - r0) * k;
    if (w->dtype == ENG_DTYPE_BF16) {
        bf16_to_f32_row(src, tile, n);
    } else {
        f16_to_f32_row(src, tile, n);
    }
    return tile;
}

static void gemv_task(void *ctx, int task, int thread)
{
    const struct mm_ctx *c = ctx;
    const struct eng_weight *w = c->w;
    int k = w->cols;
    int r0 = task * c->rows_per_task;
    int r1 = r0 + c->rows_per_task < w->rows ? r0 + c->rows_per_task : w->rows;
    for (int r = r0; r < r1; r++) {
        float v;
        if (w->dtype == ENG_DTYPE_BF16) {
            v = dot_bf16((const uint16_t *)w->data + (size_t)r * (size_t)k, c->x, k);
        } else {
            v = dot_f32(weight_rows(c, r, r + 1, thread), c->x, k);
        }
        c->out[r] = v + (c->bias ? eng_weight_get(c->bias, (size_t)r) : 0.0f);
    }
}

static void gemm_task(void *ctx, int task, int thread)
{
    const struct mm_ctx *c = ctx;
    const struct eng_weight *w = c->w;
    int k = w->cols;
    int n = w->rows;
    int r0 = task * c->rows_per_task;
    int r1 = r0 + c->rows_per_task < n ? r0 + c->rows_per_task : n;
    const float *tile = weight_rows(c, r0, r1, thread);
    /* out[:, r0:r1] = x [m x k] . tile[r1-r0 x k]^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->m, r1 - r0, k, 1.0f, c->x, k, tile, k,
                0.0f, c->out + r0, n);
    if (c->bias) {
        for (int i = 0; i < c->m; i++) {
            for (int r = r0; r < r1; r++) {
                c->out[(size_t)i * (size_t)n + (size_t)r] += eng_weight_get(c->bias, (size_t)r);
            }
        }
    }
}

void cpu_op_matmul(struct eng_backend *be, const float *x, int m, const struct eng_weight *w,
                   const struct eng_weight *bias, float *out)
{
    struct eng_cpu_backend *cb = (struct eng_cpu_backend *)be;
    struct mm_ctx c = {cb, x, m, w, bias, out, 0};
    if (m == 1) {
        if (w->dtype == ENG_DTYPE_F16) {
            cpu_scratch_reserve(cb, (size_t)w->cols); /* no-op once reserved */
        }
        c.rows_per_task = GEMV_ROWS_PER_TASK;
        cpu_pool_run(&cb->pool, gemv_task, &c, (w->rows + c.rows_per_task - 1) / c.rows_per_task);
        return;
    }
    c.rows_per_task = cpu_tile_rows(w->cols);
    if (w->dtype != ENG_DTYPE_F32) {
        cpu_scratch_reserve(cb, (size_t)c.rows_per_task * (size_t)w->cols);
    }
    cpu_pool_run(&cb->pool, gemm_task, &c, (w->rows + c.rows_per_task - 1) / c.rows_per_task);
}
