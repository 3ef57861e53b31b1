/*
 * cuda_int.cuh - what the CUDA backend's files share (backend_cuda.cu: buffers, graphs, the
 * backend; cuda_matmul.cu: GEMV and cuBLAS matmuls; cuda_attention.cu: RoPE, the KV cache and
 * attention): the backend's state, error notes, the launch helper and device-side loads.
 * Included only by the .cu files of src/engine/cuda.
 */
#ifndef HX_ENGINE_CUDA_CUDA_INT_CUH
#define HX_ENGINE_CUDA_CUDA_INT_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "base/status.h"
#include "engine/backend.h"
#include "engine/cuda/cuda.h"
}

#define MAX_GRAPHS 64
#define MAX_PROF 16384
#define PREFILL_MIN 64                   /* tokens of one sequence that take the GEMM path */
#define ATT_S_BYTES ((size_t)192 << 20)  /* score + probability scratch of prefill runs */
#define BLAS_WS_BYTES ((size_t)32 << 20) /* cuBLAS workspace (fixed: graph capture safe) */

struct alloc_rec {
    void *p;
    size_t n;
};

struct graph_rec {
    const void *owner;
    uint64_t key;
    cudaGraphExec_t exec;
    uint64_t used;
};

struct prof_rec {
    const char *name;
    cudaEvent_t a, b;
    double bytes;
};

struct eng_cuda_backend {
    struct eng_backend base;
    int device;
    int sms;
    cudaStream_t stream;
    cudaError_t err; /* first error seen (sticky) */
    char err_where[64];
    char name[256];
    cublasHandle_t blas;
    void *blas_ws;
    /* allocations, for the peak */
    struct alloc_rec *allocs;
    int n_allocs, cap_allocs;
    size_t cur_bytes, peak_bytes;
    /* scratch */
    uint16_t *xh; /* x as 16-bit for cuBLAS (elements) */
    size_t xh_cap;
    float *gu; /* gate | up of a cuBLAS SwiGLU (floats) */
    size_t gu_cap;
    float *part; /* split-attention partials (floats) */
    size_t part_cap;
    uint16_t *kc, *vc; /* a prefill run's gathered K, V (elements) */
    size_t kvc_cap;
    float *S; /* scores of a prefill chunk (floats) */
    uint16_t *P;
    size_t s_cap; /* elements of S and of P */
    /* graphs */
    struct graph_rec graphs[MAX_GRAPHS];
    int n_graphs;
    uint64_t tick;
    int capturing;
    const void *cap_owner;
    uint64_t cap_key;
    int graph_failures;
    int graphs_off;
    int pdl; /* launch with programmatic stream serialization (sm_90+) */
    /* profile */
    int prof_on;
    struct prof_rec *prof;
    int n_prof;
    cudaEvent_t *ev_pool;
    int n_ev;
};

static inline void note(struct eng_cuda_backend *cb, cudaError_t e, const char *where)
{
    if (e != cudaSuccess && cb->err == cudaSuccess) {
        cb->err = e;
        snprintf(cb->err_where, sizeof(cb->err_where), "%s", where);
    }
}

static inline void note_blas(struct eng_cuda_backend *cb, cublasStatus_t s, const char *where)
{
    if (s != CUBLAS_STATUS_SUCCESS && cb->err == cudaSuccess) {
        cb->err = cudaErrorUnknown;
        snprintf(cb->err_where, sizeof(cb->err_where), "%s (cuBLAS status %d)", where, (int)s);
    }
}

#define LAUNCHED(cb, where) note((cb), cudaGetLastError(), (where))

static inline struct eng_cuda_backend *CB(struct eng_backend *be)
{
    return (struct eng_cuda_backend *)be;
}

/* Launch kernel k on the backend's stream, as a programmatic dependent launch where the card
 * has them (the kernel calls pdl_trigger / pdl_wait). */
template <typename... P, typename... A>
static inline void launch(struct eng_cuda_backend *cb, void (*k)(P...), dim3 grid, dim3 block,
                          size_t smem, A... args)
{
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = cb->stream;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = cb->pdl ? 1 : 0;
    note(cb, cudaLaunchKernelEx(&cfg, k, ((P)args)...), "launch");
}

#define ATT_TARGET_BLOCKS(cb) ((cb)->sms * 8) /* decode attention: split contexts up to this */
#define ATT_MAX_SPLITS 64

static inline size_t wsize(const struct eng_weight *w)
{
    size_t esz = w->dtype == ENG_DTYPE_F32 ? 4 : 2;
    return (size_t)w->rows * (size_t)w->cols * esz;
}

static inline unsigned ew_blocks(size_t n)
{
    size_t b = (n + 255) / 256;
    return (unsigned)(b < 65535 ? (b ? b : 1) : 65535);
}

/* per-op device time (eng_cuda_profile): events around an op when profiling is on */
void prof_begin(struct eng_cuda_backend *cb, const char *name, double bytes);
void prof_end(struct eng_cuda_backend *cb);

/* ---- element loads ------------------------------------------------------------------------ */

__device__ __forceinline__ float bf16f(uint16_t h)
{
    return __uint_as_float((uint32_t)h << 16);
}

__device__ __forceinline__ float f16f(uint16_t h)
{
    __half_raw r;
    r.x = h;
    return __half2float(__half(r));
}

/* float -> bf16, round to nearest even (NaN kept a NaN): the CPU's eng_f32_to_bf16. */
__device__ __forceinline__ uint16_t f2bf(float f)
{
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

__device__ __forceinline__ uint16_t f2h(float f)
{
    return __half_as_ushort(__float2half_rn(f));
}

template <int DT> __device__ __forceinline__ float wload(const void *p, size_t i);
template <> __device__ __forceinline__ float wload<ENG_DTYPE_F32>(const void *p, size_t i)
{
    return ((const float *)p)[i];
}
template <> __device__ __forceinline__ float wload<ENG_DTYPE_F16>(const void *p, size_t i)
{
    return f16f(((const uint16_t *)p)[i]);
}
template <> __device__ __forceinline__ float wload<ENG_DTYPE_BF16>(const void *p, size_t i)
{
    return bf16f(((const uint16_t *)p)[i]);
}

/* 8 16-bit values of a uint4 as floats. */
template <int DT> __device__ __forceinline__ void unpack8(uint4 v, float out[8])
{
    uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        uint16_t lo = (uint16_t)(w[j] & 0xffffu);
        uint16_t hi = (uint16_t)(w[j] >> 16);
        out[2 * j] = DT == ENG_DTYPE_BF16 ? bf16f(lo) : f16f(lo);
        out[2 * j + 1] = DT == ENG_DTYPE_BF16 ? bf16f(hi) : f16f(hi);
    }
}

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

/* KV cache elements: bf16 (the default) or float32 (--kv-dtype f32). */
__device__ __forceinline__ void kv_put(uint16_t *c, size_t i, float v)
{
    c[i] = f2bf(v);
}
__device__ __forceinline__ void kv_put(float *c, size_t i, float v)
{
    c[i] = v;
}
__device__ __forceinline__ float kv_get(const uint16_t *c, size_t i)
{
    return bf16f(c[i]);
}
__device__ __forceinline__ float kv_get(const float *c, size_t i)
{
    return c[i];
}
__device__ __forceinline__ uint16_t kv_bf16(const uint16_t *c, size_t i)
{
    return c[i];
}
__device__ __forceinline__ uint16_t kv_bf16(const float *c, size_t i)
{
    return f2bf(c[i]);
}
/* 8 consecutive elements at a 16-byte (bf16) / 32-byte (f32) aligned offset; zeros if !on. */
__device__ __forceinline__ void kv_load8(const uint16_t *c, size_t off, bool on, float out[8])
{
    uint4 v = on ? *(const uint4 *)(c + off) : make_uint4(0, 0, 0, 0);
    unpack8<ENG_DTYPE_BF16>(v, out);
}
__device__ __forceinline__ void kv_load8(const float *c, size_t off, bool on, float out[8])
{
    float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
    if (on) {
        a = *(const float4 *)(c + off);
        b = *(const float4 *)(c + off + 4);
    }
    out[0] = a.x;
    out[1] = a.y;
    out[2] = a.z;
    out[3] = a.w;
    out[4] = b.x;
    out[5] = b.y;
    out[6] = b.z;
    out[7] = b.w;
}

/* Programmatic dependent launch (sm_90): a kernel lets the next one in the stream start
 * (pdl_trigger, at its top) and waits for the previous one's results (pdl_wait) only where
 * it first touches them, so weight loads and launch latency overlap the previous kernel's
 * tail. No-ops below sm_90 and for plain launches. */
__device__ __forceinline__ void pdl_trigger()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/* x (float32) to 16-bit (bf16 if bf, else fp16), elementwise (cuda_matmul.cu). */
__global__ void k_to16(const float *x, size_t n, int bf, uint16_t *out);

/* the ops of cuda_matmul.cu */
void cuda_matmul(struct eng_backend *be, const float *x, int m, const struct eng_weight *w,
                 const struct eng_weight *bias, float *out);
void cuda_matmul_qkv(struct eng_backend *be, const float *x, int m, const struct eng_weight *wqkv,
                     const struct eng_weight *bqkv, int q_rows, int kv_rows, float *q, float *k,
                     float *v);
void cuda_matmul_swiglu(struct eng_backend *be, const float *x, int m, const struct eng_weight *wgu,
                        float *out);
void cuda_matmul_add(struct eng_backend *be, const float *x, int m, const struct eng_weight *w,
                     float *acc);
/* the ops of cuda_attention.cu */
void cuda_rope(struct eng_backend *be, float *x, int n, int n_heads, int head_dim,
               const int32_t *pos, double theta);
void cuda_kv_store(struct eng_backend *be, const struct eng_attn_batch *b, const float *k,
                   const float *v);
void cuda_rope_kv_store(struct eng_backend *be, const struct eng_attn_batch *b, float *q, float *k,
                        const float *v, double theta);
void cuda_attention(struct eng_backend *be, const struct eng_attn_batch *b, const float *q,
                    float *out);
/* once per backend: kernel attributes (flash attention's shared memory) */
void cuda_attention_init(struct eng_cuda_backend *cb);

#endif
