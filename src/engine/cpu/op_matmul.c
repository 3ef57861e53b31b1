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

#include "base/status.h"
#include "engine/cpu/cpu_int.h"
#include "engine/engine_int.h"

#define GEMV_ROWS_PER_TASK 64

int cpu_tile_rows(int k)
{
    int r = CPU_TILE_TARGET_FLOATS / (k > 0 ? k : 1);
    r = r < 16 ? 16 : r > 1024 ? 1024 : r;
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

/*
 * Register-blocked bf16 kernels, written with GCC/Clang vector types (8 floats; plain C
 * arithmetic on them, no intrinsics) so the accumulators stay in registers: 4 weight rows
 * against 4 input rows (every converted weight vector feeds 4 FMAs, every x vector 4), and
 * 4 weight rows against 1 input row (decode). k must be a multiple of 8; callers fall back to
 * dot_bf16 otherwise. out[b * ldo + a] gets weight row a's dot with x row b.
 */
typedef float v8f __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef uint16_t v8h __attribute__((vector_size(16)));

/* (helpers take pointers: returning a vector type by value would depend on the ISA's ABI) */
static inline __attribute__((always_inline)) void load8(v8f *v, const float *p)
{
    memcpy(v, p, sizeof(*v));
}

static inline __attribute__((always_inline)) void load8_bf16(v8f *f, const uint16_t *p)
{
    v8h h;
    memcpy(&h, p, sizeof(h));
    v8u u = __builtin_convertvector(h, v8u) << 16;
    memcpy(f, &u, sizeof(*f));
}

static inline __attribute__((always_inline)) float hsum8(const v8f *v)
{
    return (((*v)[0] + (*v)[4]) + ((*v)[1] + (*v)[5])) +
           (((*v)[2] + (*v)[6]) + ((*v)[3] + (*v)[7]));
}

CPU_HOT static void kern_bf16_4x4(const uint16_t *w, const float *x, int k, float *out, size_t ldo)
{
    size_t kk = (size_t)k;
    v8f a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0};
    v8f a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0};
    v8f a20 = {0}, a21 = {0}, a22 = {0}, a23 = {0};
    v8f a30 = {0}, a31 = {0}, a32 = {0}, a33 = {0};
    for (size_t j = 0; j < kk; j += 8) {
        v8f w0;
        load8_bf16(&w0, w + j);
        v8f w1;
        load8_bf16(&w1, w + kk + j);
        v8f w2;
        load8_bf16(&w2, w + 2 * kk + j);
        v8f w3;
        load8_bf16(&w3, w + 3 * kk + j);
        v8f x0;
        load8(&x0, x + j);
        a00 += w0 * x0;
        a10 += w1 * x0;
        a20 += w2 * x0;
        a30 += w3 * x0;
        v8f x1;
        load8(&x1, x + kk + j);
        a01 += w0 * x1;
        a11 += w1 * x1;
        a21 += w2 * x1;
        a31 += w3 * x1;
        v8f x2;
        load8(&x2, x + 2 * kk + j);
        a02 += w0 * x2;
        a12 += w1 * x2;
        a22 += w2 * x2;
        a32 += w3 * x2;
        v8f x3;
        load8(&x3, x + 3 * kk + j);
        a03 += w0 * x3;
        a13 += w1 * x3;
        a23 += w2 * x3;
        a33 += w3 * x3;
    }
    out[0] = hsum8(&a00);
    out[1] = hsum8(&a10);
    out[2] = hsum8(&a20);
    out[3] = hsum8(&a30);
    out[ldo + 0] = hsum8(&a01);
    out[ldo + 1] = hsum8(&a11);
    out[ldo + 2] = hsum8(&a21);
    out[ldo + 3] = hsum8(&a31);
    out[2 * ldo + 0] = hsum8(&a02);
    out[2 * ldo + 1] = hsum8(&a12);
    out[2 * ldo + 2] = hsum8(&a22);
    out[2 * ldo + 3] = hsum8(&a32);
    out[3 * ldo + 0] = hsum8(&a03);
    out[3 * ldo + 1] = hsum8(&a13);
    out[3 * ldo + 2] = hsum8(&a23);
    out[3 * ldo + 3] = hsum8(&a33);
}

CPU_HOT static void kern_bf16_4x1(const uint16_t *w, const float *x, int k, float *out)
{
    size_t kk = (size_t)k;
    v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    v8f b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
    v8f t;
    for (size_t j = 0; j < kk; j += 16) {
        v8f x0;
        load8(&x0, x + j);
        v8f x1;
        load8(&x1, x + j + 8);
        load8_bf16(&t, w + j);
        a0 += t * x0;
        load8_bf16(&t, w + j + 8);
        b0 += t * x1;
        load8_bf16(&t, w + kk + j);
        a1 += t * x0;
        load8_bf16(&t, w + kk + j + 8);
        b1 += t * x1;
        load8_bf16(&t, w + 2 * kk + j);
        a2 += t * x0;
        load8_bf16(&t, w + 2 * kk + j + 8);
        b2 += t * x1;
        load8_bf16(&t, w + 3 * kk + j);
        a3 += t * x0;
        load8_bf16(&t, w + 3 * kk + j + 8);
        b3 += t * x1;
    }
    a0 += b0;
    a1 += b1;
    a2 += b2;
    a3 += b3;
    out[0] = hsum8(&a0);
    out[1] = hsum8(&a1);
    out[2] = hsum8(&a2);
    out[3] = hsum8(&a3);
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
/*
 * The same 4x4 block with 16-float vectors, compiled only for x86-64-v4 (AVX-512: 32 vector
 * registers hold the 16 accumulators) and chosen at run time when the CPU has it; on CPUs with
 * two 512-bit FMA units it doubles the batched-decode rate. k must be a multiple of 16.
 */
#define CPU_HAVE_V16 1
typedef float v16f __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));
typedef uint16_t v16h __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) void load16(v16f *v, const float *p)
{
    memcpy(v, p, sizeof(*v));
}

static inline __attribute__((always_inline)) void load16_bf16(v16f *f, const uint16_t *p)
{
    v16h h;
    memcpy(&h, p, sizeof(h));
    v16u u = __builtin_convertvector(h, v16u) << 16;
    memcpy(f, &u, sizeof(*f));
}

static inline __attribute__((always_inline)) float hsum16(const v16f *v)
{
    float s = 0.0f;
    for (int i = 0; i < 16; i++) {
        s += (*v)[i];
    }
    return s;
}

__attribute__((optimize("O3", "fp-contract=fast"), target("arch=x86-64-v4"))) static void
kern_bf16_4x4_v16(const uint16_t *w, const float *x, int k, float *out, size_t ldo)
{
    size_t kk = (size_t)k;
    v16f acc[4][4];
    memset(acc, 0, sizeof(acc));
    for (size_t j = 0; j < kk; j += 16) {
        v16f wv[4];
        for (int a = 0; a < 4; a++) {
            load16_bf16(&wv[a], w + (size_t)a * kk + j);
        }
        for (int b = 0; b < 4; b++) {
            v16f xv;
            load16(&xv, x + (size_t)b * kk + j);
            for (int a = 0; a < 4; a++) {
                acc[a][b] += wv[a] * xv;
            }
        }
    }
    for (int b = 0; b < 4; b++) {
        for (int a = 0; a < 4; a++) {
            out[(size_t)b * ldo + (size_t)a] = hsum16(&acc[a][b]);
        }
    }
}

/*
 * The 4x4 block on pair-split input: k in chunks of 32, each chunk of x stored as its 16 even
 * then its 16 odd elements (see split_pairs). A chunk of a bf16 weight row read as 16 uint32
 * holds the even elements in the low halves and the odd ones in the high halves, so
 * "u << 16" and "u & 0xffff0000" are the two float vectors: two instructions unpack 32
 * weights, against about twelve for a widening conversion. k must be a multiple of 32.
 */
__attribute__((optimize("O3", "fp-contract=fast"), target("arch=x86-64-v4"))) static void
kern_bf16_4x4_pairs(const uint16_t *w, const float *xs, size_t kk, float *out, size_t ldo)
{
    v16f acc[4][4];
    memset(acc, 0, sizeof(acc));
    for (size_t j = 0; j < kk; j += 32) {
        v16f we[4];
        v16f wo[4];
        for (int a = 0; a < 4; a++) {
            v16u u;
            memcpy(&u, w + (size_t)a * kk + j, sizeof(u));
            v16u lo = u << 16;
            v16u hi = u & 0xffff0000u;
            memcpy(&we[a], &lo, sizeof(lo));
            memcpy(&wo[a], &hi, sizeof(hi));
        }
        for (int b = 0; b < 4; b++) {
            v16f xe;
            v16f xo;
            load16(&xe, xs + (size_t)b * kk + j);
            load16(&xo, xs + (size_t)b * kk + j + 16);
            for (int a = 0; a < 4; a++) {
                acc[a][b] += we[a] * xe;
                acc[a][b] += wo[a] * xo;
            }
        }
    }
    for (int b = 0; b < 4; b++) {
        for (int a = 0; a < 4; a++) {
            out[(size_t)b * ldo + (size_t)a] = hsum16(&acc[a][b]);
        }
    }
}

/* 4 weight rows against one pair-split input row (decode at batch 1). */
__attribute__((optimize("O3", "fp-contract=fast"), target("arch=x86-64-v4"))) static void
kern_bf16_4x1_pairs(const uint16_t *w, const float *xs, size_t kk, float *out)
{
    v16f acc[4][2];
    memset(acc, 0, sizeof(acc));
    for (size_t j = 0; j < kk; j += 32) {
        v16f xe;
        v16f xo;
        load16(&xe, xs + j);
        load16(&xo, xs + j + 16);
        for (int a = 0; a < 4; a++) {
            v16u u;
            memcpy(&u, w + (size_t)a * kk + j, sizeof(u));
            v16u lo = u << 16;
            v16u hi = u & 0xffff0000u;
            v16f we;
            v16f wo;
            memcpy(&we, &lo, sizeof(lo));
            memcpy(&wo, &hi, sizeof(hi));
            acc[a][0] += we * xe;
            acc[a][1] += wo * xo;
        }
    }
    for (int a = 0; a < 4; a++) {
        acc[a][0] += acc[a][1];
        out[a] = hsum16(&acc[a][0]);
    }
}

int cpu_matmul_wide_ok(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
#else
int cpu_matmul_wide_ok(void)
{
    return 0;
}
#endif

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
    const float *xs; /* x with each 32-chunk split into even and odd halves, or NULL */
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
    if (eng_dtype_is_quant(w->dtype)) {
        size_t rb = eng_dtype_row_bytes(w->dtype, w->cols);
        eng_dequant_row(w->dtype, (const unsigned char *)w->data + (size_t)r0 * rb, tile, n);
    } else if (w->dtype == ENG_DTYPE_BF16) {
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

/* BF16 weights, few input rows (decode): blocked kernels straight from the stored weights. */
static void bf16_small_task(void *ctx, int task, int thread)
{
    (void)thread;
    const struct mm_ctx *c = ctx;
    const struct eng_weight *w = c->w;
    int k = w->cols;
    size_t kk = (size_t)k;
    size_t n = (size_t)w->rows;
    const uint16_t *wd = w->data;
    int r0 = task * c->rows_per_task;
    int r1 = r0 + c->rows_per_task < w->rows ? r0 + c->rows_per_task : w->rows;
    int r = r0;
    for (; r + 4 <= r1; r += 4) {
        const uint16_t *wr = wd + (size_t)r * kk;
        int i = 0;
#ifdef CPU_HAVE_V16
        if (c->xs) {
            for (; i + 4 <= c->m; i += 4) {
                kern_bf16_4x4_pairs(wr, c->xs + (size_t)i * kk, kk,
                                    c->out + (size_t)i * n + (size_t)r, n);
            }
        }
        if (k % 16 == 0 && c->cb->wide) {
            for (; i + 4 <= c->m; i += 4) {
                kern_bf16_4x4_v16(wr, c->x + (size_t)i * kk, k, c->out + (size_t)i * n + (size_t)r,
                                  n);
            }
        }
#endif
        if (k % 8 == 0) {
            for (; i + 4 <= c->m; i += 4) {
                kern_bf16_4x4(wr, c->x + (size_t)i * kk, k, c->out + (size_t)i * n + (size_t)r, n);
            }
        }
        for (; i < c->m; i++) {
            float *o = c->out + (size_t)i * n + (size_t)r;
#ifdef CPU_HAVE_V16
            if (c->xs) {
                kern_bf16_4x1_pairs(wr, c->xs + (size_t)i * kk, kk, o);
                continue;
            }
#endif
            if (k % 16 == 0) {
                kern_bf16_4x1(wr, c->x + (size_t)i * kk, k, o);
            } else {
                for (int a = 0; a < 4; a++) {
                    o[a] = dot_bf16(wr + (size_t)a * kk, c->x + (size_t)i * kk, k);
                }
            }
        }
    }
    for (; r < r1; r++) {
        for (int i = 0; i < c->m; i++) {
            c->out[(size_t)i * n + (size_t)r] =
                dot_bf16(wd + (size_t)r * kk, c->x + (size_t)i * kk, k);
        }
    }
    if (c->bias) {
        for (int i = 0; i < c->m; i++) {
            for (r = r0; r < r1; r++) {
                c->out[(size_t)i * n + (size_t)r] += eng_weight_get(c->bias, (size_t)r);
            }
        }
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

/* xs[i] = x[i] with each chunk of 32 reordered as its 16 even then its 16 odd elements. */
static void split_pairs(const float *x, int m, size_t k, float *xs)
{
    for (size_t i = 0; i < (size_t)m; i++) {
        const float *src = x + i * k;
        float *dst = xs + i * k;
        for (size_t j = 0; j < k; j += 32) {
            for (size_t t = 0; t < 16; t++) {
                dst[j + t] = src[j + 2 * t];
                dst[j + 16 + t] = src[j + 2 * t + 1];
            }
        }
    }
}

/* Without scratch (reserve was never called and memory ran out): element by element. */
static void matmul_unbuffered(const struct mm_ctx *c)
{
    const struct eng_weight *w = c->w;
    size_t k = (size_t)w->cols;
    for (int i = 0; i < c->m; i++) {
        for (int r = 0; r < w->rows; r++) {
            float s = c->bias ? eng_weight_get(c->bias, (size_t)r) : 0.0f;
            for (size_t j = 0; j < k; j++) {
                s += eng_weight_get(w, (size_t)r * k + j) * c->x[(size_t)i * k + j];
            }
            c->out[(size_t)i * (size_t)w->rows + (size_t)r] = s;
        }
    }
}

void cpu_op_matmul(struct eng_backend *be, const float *x, int m, const struct eng_weight *w,
                   const struct eng_weight *bias, float *out)
{
    struct eng_cpu_backend *cb = (struct eng_cpu_backend *)be;
    struct mm_ctx c = {cb, x, m, w, bias, out, 0, NULL};
    size_t work = (size_t)m * (size_t)w->rows * (size_t)w->cols;
    if (eng_dtype_is_quant(w->dtype) && cpu_matmul_quant(cb, x, m, w, bias, out) == 0) {
        return;
    }
    if (w->dtype == ENG_DTYPE_BF16 && m <= CPU_SMALL_M) {
        c.rows_per_task = m == 1 ? GEMV_ROWS_PER_TASK : 16;
        size_t kk = (size_t)w->cols;
        if (cb->wide && kk % 32 == 0 && cb->xsplit_floats >= (size_t)m * kk) {
            split_pairs(x, m, kk, cb->xsplit);
            c.xs = cb->xsplit;
        }
        cpu_pool_run_sized(&cb->pool, bf16_small_task, &c,
                           (w->rows + c.rows_per_task - 1) / c.rows_per_task, work);
        return;
    }
    /* scratch was sized by reserve before serving; growing here is the fallback for callers
     * that skipped it */
    size_t rows = m == 1 ? 1 : (size_t)cpu_tile_rows(w->cols);
    if (w->dtype != ENG_DTYPE_F32 && cpu_scratch_reserve(cb, rows * (size_t)w->cols) != HX_OK) {
        matmul_unbuffered(&c);
        return;
    }
    if (m == 1) {
        c.rows_per_task = GEMV_ROWS_PER_TASK;
        cpu_pool_run_sized(&cb->pool, gemv_task, &c,
                           (w->rows + c.rows_per_task - 1) / c.rows_per_task, work);
        return;
    }
    c.rows_per_task = (int)rows;
    cpu_pool_run_sized(&cb->pool, gemm_task, &c, (w->rows + c.rows_per_task - 1) / c.rows_per_task,
                       work);
}
