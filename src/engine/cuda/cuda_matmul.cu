/*
 * cuda_matmul.cu - the CUDA backend's matmuls: out = x W^T with the residual add, the q|k|v
 * split or SwiGLU fused. Up to GEMV_MAX_M rows of x: a GEMV that reads every weight byte once
 * (16-byte streaming loads, 8 in flight per lane, one warp per output row, the first loads
 * issued before waiting on the previous kernel); more rows: cuBLAS on bf16 tensor cores after
 * converting x to the weight's 16-bit type.
 */
#include "engine/cuda/cuda_int.cuh"

/* ---- matmul --------------------------------------------------------------------------------- */

/* bias[r] as float (0 without a bias), in its stored dtype. */
__device__ __forceinline__ float bias_at(const void *bias, int dt, int r)
{
    if (!bias) {
        return 0.0f;
    }
    return dt == ENG_DTYPE_F32   ? ((const float *)bias)[r]
           : dt == ENG_DTYPE_F16 ? f16f(((const uint16_t *)bias)[r])
                                 : bf16f(((const uint16_t *)bias)[r]);
}

#define GEMV_MAX_M 8
#define GEMV_WARPS 4

enum { EPI_PLAIN = 0, EPI_ADD = 1, EPI_QKV = 2, EPI_SWIGLU = 3 };

/* Where a GEMV / GEMM writes: plain out [m x rows] (+ bias); acc += ; q|k|v split by rows;
 * or SwiGLU of row pairs (r, r + rows) of a 2 x rows weight. */
struct gemv_out {
    float *out; /* PLAIN, ADD, SWIGLU: [m x rows]; QKV: q */
    float *k;
    float *v;
    int q_rows;
    int kv_rows;
    const void *bias;
    int bias_dt;
};

template <int EPI>
__device__ __forceinline__ void gemv_store(const struct gemv_out &o, int i, int r, int rows,
                                           float v)
{
    if (EPI == EPI_PLAIN) {
        o.out[(size_t)i * rows + r] = v + bias_at(o.bias, o.bias_dt, r);
    } else if (EPI == EPI_ADD) {
        o.out[(size_t)i * rows + r] += v;
    } else if (EPI == EPI_QKV) {
        v += bias_at(o.bias, o.bias_dt, r);
        if (r < o.q_rows) {
            o.out[(size_t)i * o.q_rows + r] = v;
        } else if (r < o.q_rows + o.kv_rows) {
            o.k[(size_t)i * o.kv_rows + (r - o.q_rows)] = v;
        } else {
            o.v[(size_t)i * o.kv_rows + (r - o.q_rows - o.kv_rows)] = v;
        }
    }
}

/* acc[i] += w8 . x[i, k .. k+8) for the M rows of x. */
template <int M>
__device__ __forceinline__ void fma8(float acc[M], const float w[8], const float *x, int cols,
                                     int k)
{
#pragma unroll
    for (int i = 0; i < M; i++) {
        const float4 *xp = (const float4 *)(x + (size_t)i * cols + k);
        float4 a = __ldg(xp);
        float4 b = __ldg(xp + 1);
        acc[i] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y +
                  w[6] * b.z + w[7] * b.w;
    }
}

/*
 * out = x W^T for M <= GEMV_MAX_M rows of x: one warp per output row (SWIGLU: per row pair),
 * every weight byte read once (16-byte streaming loads, four in flight per lane) and used for
 * all M rows; x comes through L1. Needs cols % 8 == 0 and 16-byte aligned rows (else k_gemv1).
 */
template <int DT, int M, int EPI>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    k_gemv(const float *x, const void *w, int rows, int cols, struct gemv_out o)
{
    pdl_trigger();
    int r = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) {
        pdl_wait();
        return;
    }
    constexpr int NW = EPI == EPI_SWIGLU ? 2 : 1;
    float acc[NW][M];
#pragma unroll
    for (int j = 0; j < NW; j++) {
#pragma unroll
        for (int i = 0; i < M; i++) {
            acc[j][i] = 0.0f;
        }
    }
    const uint4 *wr[NW];
    wr[0] = (const uint4 *)((const uint16_t *)w + (size_t)r * cols);
    if (NW == 2) {
        wr[NW - 1] = (const uint4 *)((const uint16_t *)w + (size_t)(r + rows) * cols);
    }
    int n8 = cols / 8;
    int k8 = lane;
    /* U 16-byte loads per weight row in flight per lane; the first batch is issued before
     * waiting on the previous kernel (weights are not its output) */
    constexpr int U = NW == 2 ? 4 : 8;
    uint4 q[NW][U];
    bool full = k8 + 32 * (U - 1) < n8;
    if (full) {
#pragma unroll
        for (int j = 0; j < NW; j++) {
#pragma unroll
            for (int u = 0; u < U; u++) {
                q[j][u] = __ldcs(wr[j] + k8 + 32 * u);
            }
        }
    }
    pdl_wait();
    while (full) {
#pragma unroll
        for (int u = 0; u < U; u++) {
#pragma unroll
            for (int j = 0; j < NW; j++) {
                float wv[8];
                unpack8<DT>(q[j][u], wv);
                fma8<M>(acc[j], wv, x, cols, (k8 + 32 * u) * 8);
            }
        }
        k8 += 32 * U;
        full = k8 + 32 * (U - 1) < n8;
        if (full) {
#pragma unroll
            for (int j = 0; j < NW; j++) {
#pragma unroll
                for (int u = 0; u < U; u++) {
                    q[j][u] = __ldcs(wr[j] + k8 + 32 * u);
                }
            }
        }
    }
    for (; k8 < n8; k8 += 32) {
#pragma unroll
        for (int j = 0; j < NW; j++) {
            float wv[8];
            unpack8<DT>(__ldcs(wr[j] + k8), wv);
            fma8<M>(acc[j], wv, x, cols, k8 * 8);
        }
    }
#pragma unroll
    for (int i = 0; i < M; i++) {
        float v0 = warp_sum(acc[0][i]);
        if (EPI == EPI_SWIGLU) {
            float v1 = warp_sum(acc[NW - 1][i]);
            if (lane == 0) {
                o.out[(size_t)i * rows + r] = v0 / (1.0f + expf(-v0)) * v1;
            }
        } else if (lane == 0) {
            gemv_store<EPI>(o, i, r, rows, v0);
        }
    }
}

/* The general GEMV (any dtype, any width, any alignment): one warp per row, scalar loads. */
template <int DT, int EPI>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    k_gemv1(const float *x, int m, const void *w, int rows, int cols, struct gemv_out o)
{
    pdl_trigger();
    pdl_wait();
    int r = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) {
        return;
    }
    for (int i = 0; i < m; i++) {
        float a0 = 0.0f, a1 = 0.0f;
        for (int k = lane; k < cols; k += 32) {
            float xv = x[(size_t)i * cols + k];
            a0 += wload<DT>(w, (size_t)r * cols + k) * xv;
            if (EPI == EPI_SWIGLU) {
                a1 += wload<DT>(w, (size_t)(r + rows) * cols + k) * xv;
            }
        }
        a0 = warp_sum(a0);
        if (EPI == EPI_SWIGLU) {
            a1 = warp_sum(a1);
            if (lane == 0) {
                o.out[(size_t)i * rows + r] = a0 / (1.0f + expf(-a0)) * a1;
            }
        } else if (lane == 0) {
            gemv_store<EPI>(o, i, r, rows, a0);
        }
    }
}

template <int DT, int EPI>
static void gemv_launch(struct eng_cuda_backend *cb, const float *x, int m,
                        const struct eng_weight *w, int rows, const struct gemv_out &o)
{
    dim3 g((unsigned)((rows + GEMV_WARPS - 1) / GEMV_WARPS));
    const int T = GEMV_WARPS * 32;
    bool vec = DT != ENG_DTYPE_F32 && w->cols % 8 == 0 && ((uintptr_t)w->data % 16) == 0 &&
               ((uintptr_t)x % 16) == 0;
    if (!vec) {
        launch(cb, k_gemv1<DT, EPI>, g, dim3(T), 0, x, m, w->data, rows, w->cols, o);
        return;
    }
    switch (m) {
#define CASE(M)                                                                                    \
    case M:                                                                                        \
        launch(cb, k_gemv<DT, M, EPI>, g, dim3(T), 0, x, w->data, rows, w->cols, o);               \
        break;
        CASE(1)
        CASE(2)
        CASE(3)
        CASE(4)
        CASE(5)
        CASE(6)
        CASE(7)
        CASE(8)
#undef CASE
    default:
        break;
    }
}

template <int EPI>
static void gemv_any(struct eng_cuda_backend *cb, const float *x, int m, const struct eng_weight *w,
                     int rows, const struct gemv_out &o)
{
    switch (w->dtype) {
    case ENG_DTYPE_BF16:
        gemv_launch<ENG_DTYPE_BF16, EPI>(cb, x, m, w, rows, o);
        break;
    case ENG_DTYPE_F16:
        gemv_launch<ENG_DTYPE_F16, EPI>(cb, x, m, w, rows, o);
        break;
    default:
        gemv_launch<ENG_DTYPE_F32, EPI>(cb, x, m, w, rows, o);
        break;
    }
}

/* x (float32) to the weight's 16-bit type, 8 per thread where aligned. */
__global__ void k_to16(const float *x, size_t n, int bf, uint16_t *out)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        out[i] = bf ? f2bf(x[i]) : f2h(x[i]);
    }
}

/* y[m x n] += bias (a vector of n, stored dtype). */
__global__ void k_bias(float *y, size_t m, int n, const void *bias, int dt)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < m * (size_t)n;
         i += (size_t)gridDim.x * blockDim.x) {
        y[i] += bias_at(bias, dt, (int)(i % (size_t)n));
    }
}

/* out[m x F] = silu(gu[:, :F]) * gu[:, F:] */
__global__ void k_swiglu_rows(const float *gu, size_t m, int F, float *out)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < m * (size_t)F;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / (size_t)F;
        size_t c = i % (size_t)F;
        float a = gu[row * 2 * F + c];
        out[i] = a / (1.0f + expf(-a)) * gu[row * 2 * F + F + c];
    }
}

static cudaDataType_t blas_type(int dt)
{
    return dt == ENG_DTYPE_BF16 ? CUDA_R_16BF : dt == ENG_DTYPE_F16 ? CUDA_R_16F : CUDA_R_32F;
}

/* C[m x n_rows] (ldc) = alpha x W[r0 .. r0 + n_rows)^T + beta C, through cuBLAS; xb is x in the
 * weight's type (converted once per matmul by the caller). */
static void blas_rows(struct eng_cuda_backend *cb, const void *xb, int m,
                      const struct eng_weight *w, int r0, int n_rows, float beta, float *C, int ldc)
{
    size_t esz = w->dtype == ENG_DTYPE_F32 ? 4 : 2;
    const char *A = (const char *)w->data + (size_t)r0 * (size_t)w->cols * esz;
    float alpha = 1.0f;
    cudaDataType_t t = blas_type(w->dtype);
    cublasStatus_t st = cublasGemmEx(cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, n_rows, m, w->cols, &alpha,
                                     A, t, w->cols, xb, t, w->cols, &beta, C, CUDA_R_32F, ldc,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    note_blas(cb, st, "cublasGemmEx");
}

/* x in the weight's type for cuBLAS: the xh scratch (16-bit weights) or x itself (f32). */
static const void *blas_x(struct eng_cuda_backend *cb, const float *x, int m, int cols, int dt)
{
    if (dt == ENG_DTYPE_F32) {
        return x;
    }
    size_t n = (size_t)m * (size_t)cols;
    if (n * 2 > cb->xh_cap) {
        note(cb, cudaErrorInvalidValue, "matmul: more rows than reserved");
        return NULL;
    }
    k_to16<<<ew_blocks(n), 256, 0, cb->stream>>>(x, n, dt == ENG_DTYPE_BF16, cb->xh);
    LAUNCHED(cb, "matmul convert");
    return cb->xh;
}

static void matmul_epi(struct eng_cuda_backend *cb, int epi, const float *x, int m,
                       const struct eng_weight *w, const struct gemv_out &o, const char *name)
{
    if (m <= 0) {
        return;
    }
    int rows = epi == EPI_SWIGLU ? w->rows / 2 : w->rows;
    prof_begin(cb, name, (double)wsize(w));
    cudaStream_t s = cb->stream;
    if (m <= GEMV_MAX_M) {
        switch (epi) {
        case EPI_PLAIN:
            gemv_any<EPI_PLAIN>(cb, x, m, w, rows, o);
            break;
        case EPI_ADD:
            gemv_any<EPI_ADD>(cb, x, m, w, rows, o);
            break;
        case EPI_QKV:
            gemv_any<EPI_QKV>(cb, x, m, w, rows, o);
            break;
        default:
            gemv_any<EPI_SWIGLU>(cb, x, m, w, rows, o);
            break;
        }
        LAUNCHED(cb, name);
        prof_end(cb);
        return;
    }
    const void *xb = blas_x(cb, x, m, w->cols, w->dtype);
    if (!xb) {
        prof_end(cb);
        return;
    }
    switch (epi) {
    case EPI_PLAIN:
        blas_rows(cb, xb, m, w, 0, rows, 0.0f, o.out, rows);
        if (o.bias) {
            k_bias<<<ew_blocks((size_t)m * rows), 256, 0, s>>>(o.out, (size_t)m, rows, o.bias,
                                                               o.bias_dt);
        }
        break;
    case EPI_ADD:
        blas_rows(cb, xb, m, w, 0, rows, 1.0f, o.out, rows);
        break;
    case EPI_QKV: {
        float *dst[3] = {o.out, o.k, o.v};
        int n[3] = {o.q_rows, o.kv_rows, o.kv_rows};
        int r0 = 0;
        for (int i = 0; i < 3; i++) {
            blas_rows(cb, xb, m, w, r0, n[i], 0.0f, dst[i], n[i]);
            if (o.bias) {
                size_t esz = o.bias_dt == ENG_DTYPE_F32 ? 4 : 2;
                k_bias<<<ew_blocks((size_t)m * n[i]), 256, 0, s>>>(
                    dst[i], (size_t)m, n[i], (const char *)o.bias + (size_t)r0 * esz, o.bias_dt);
            }
            r0 += n[i];
        }
        break;
    }
    default:
        if ((size_t)m * (size_t)w->rows * sizeof(float) > cb->gu_cap) {
            note(cb, cudaErrorInvalidValue, "matmul_swiglu: more rows than reserved");
            break;
        }
        blas_rows(cb, xb, m, w, 0, w->rows, 0.0f, cb->gu, w->rows);
        k_swiglu_rows<<<ew_blocks((size_t)m * rows), 256, 0, s>>>(cb->gu, (size_t)m, rows, o.out);
        break;
    }
    LAUNCHED(cb, name);
    prof_end(cb);
}

void cuda_matmul(struct eng_backend *be, const float *x, int m, const struct eng_weight *w,
                 const struct eng_weight *bias, float *out)
{
    struct gemv_out o = {
        out, NULL, NULL, 0, 0, bias ? bias->data : NULL, bias ? (int)bias->dtype : 0};
    matmul_epi(CB(be), EPI_PLAIN, x, m, w, o, "matmul");
}

void cuda_matmul_qkv(struct eng_backend *be, const float *x, int m, const struct eng_weight *wqkv,
                     const struct eng_weight *bqkv, int q_rows, int kv_rows, float *q, float *k,
                     float *v)
{
    struct gemv_out o = {
        q, k, v, q_rows, kv_rows, bqkv ? bqkv->data : NULL, bqkv ? (int)bqkv->dtype : 0};
    matmul_epi(CB(be), EPI_QKV, x, m, wqkv, o, "matmul_qkv");
}

void cuda_matmul_swiglu(struct eng_backend *be, const float *x, int m, const struct eng_weight *wgu,
                        float *out)
{
    struct gemv_out o = {out, NULL, NULL, 0, 0, NULL, 0};
    matmul_epi(CB(be), EPI_SWIGLU, x, m, wgu, o, "matmul_swiglu");
}

void cuda_matmul_add(struct eng_backend *be, const float *x, int m, const struct eng_weight *w,
                     float *acc)
{
    struct gemv_out o = {acc, NULL, NULL, 0, 0, NULL, 0};
    matmul_epi(CB(be), EPI_ADD, x, m, w, o, "matmul_add");
}
