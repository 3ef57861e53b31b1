/*
 * probe.cu - the card's own figures that bench_engine prints next to the engine's: the dense
 * bf16 GEMM rate (cuBLAS, the anchor of prefill) and free/total device memory (what decides
 * which benchmark cases fit). They run on the current device, which eng_cuda_backend_new sets
 * (the backend's private state is not visible here), on a stream of their own, and leave no
 * allocation and no pending CUDA error behind.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>

extern "C" {
#include "engine/cuda/cuda.h"
}

/* bf16 values uniform in [-1, 1) from a hash of (index, seed): no zeros, no pattern. */
__global__ void k_fill_bf16(__nv_bfloat16 *p, size_t n, uint64_t seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (uint64_t)i + seed * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        float f = (float)(uint32_t)(z >> 40) * (1.0f / 8388608.0f) - 1.0f;
        p[i] = __float2bfloat16(f);
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a;
    float y = *(const float *)b;
    return (x > y) - (x < y);
}

extern "C" double eng_cuda_gemm_rate(struct eng_backend *be, int n, int reps)
{
    (void)be; /* the backend made its device current */
    if (n <= 0 || reps <= 0) {
        return 0.0;
    }
    size_t elems = (size_t)n * (size_t)n;
    __nv_bfloat16 *a = NULL;
    __nv_bfloat16 *b = NULL;
    __nv_bfloat16 *c = NULL;
    cudaStream_t st = NULL;
    cudaEvent_t e0 = NULL;
    cudaEvent_t e1 = NULL;
    cublasHandle_t h = NULL;
    float *ms = (float *)calloc((size_t)reps, sizeof(float));
    double rate = 0.0;
    int ok = ms != NULL;
    ok = ok && cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess;
    ok = ok && cudaMalloc(&a, elems * sizeof(*a)) == cudaSuccess;
    ok = ok && cudaMalloc(&b, elems * sizeof(*b)) == cudaSuccess;
    ok = ok && cudaMalloc(&c, elems * sizeof(*c)) == cudaSuccess;
    ok = ok && cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess;
    ok = ok && cublasCreate(&h) == CUBLAS_STATUS_SUCCESS;
    ok = ok && cublasSetStream(h, st) == CUBLAS_STATUS_SUCCESS;
    if (ok) {
        k_fill_bf16<<<1024, 256, 0, st>>>(a, elems, 1);
        k_fill_bf16<<<1024, 256, 0, st>>>(b, elems, 2);
        ok = cudaGetLastError() == cudaSuccess;
    }
    const float alpha = 1.0f;
    const float beta = 0.0f;
    for (int r = -2; ok && r < reps; r++) { /* r < 0: warm-up (cuBLAS picks its kernel) */
        ok = cudaEventRecord(e0, st) == cudaSuccess;
        ok = ok && cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b,
                                CUDA_R_16BF, n, &beta, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS;
        ok = ok && cudaEventRecord(e1, st) == cudaSuccess;
        ok = ok && cudaEventSynchronize(e1) == cudaSuccess;
        float t = 0.0f;
        ok = ok && cudaEventElapsedTime(&t, e0, e1) == cudaSuccess;
        if (ok && r >= 0) {
            ms[r] = t;
        }
    }
    if (ok) {
        qsort(ms, (size_t)reps, sizeof(float), cmp_float);
        if (ms[0] > 0.0f) {
            rate = 2.0 * (double)n * (double)n * (double)n / ((double)ms[0] * 1e-3);
        }
    }
    if (st) {
        cudaStreamSynchronize(st);
    }
    if (h) {
        cublasDestroy(h);
    }
    if (e0) {
        cudaEventDestroy(e0);
    }
    if (e1) {
        cudaEventDestroy(e1);
    }
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    if (st) {
        cudaStreamDestroy(st);
    }
    free(ms);
    cudaGetLastError(); /* leave no (non-sticky) error for the backend's next check */
    return rate;
}

extern "C" void eng_cuda_mem_info(struct eng_backend *be, size_t *free_b, size_t *total_b)
{
    (void)be;
    size_t f = 0;
    size_t t = 0;
    if (cudaMemGetInfo(&f, &t) != cudaSuccess) {
        cudaGetLastError();
        f = 0;
        t = 0;
    }
    if (free_b) {
        *free_b = f;
    }
    if (total_b) {
        *total_b = t;
    }
}
