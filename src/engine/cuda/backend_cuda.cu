/*
 * backend_cuda.cu - the CUDA backend of backend.h (built by `make CUDA=1`).
 *
 * Weights stay in their stored dtype (bf16 for the models this serves) in device memory,
 * uploaded once; q/k/v and gate/up are uploaded as one merged weight each
 * (weight_upload_cat). Activations are float32; the paged KV cache is bf16 (kv_dtype), half
 * the bytes decode attention streams. Accumulation is float32 everywhere.
 *
 * A decode layer is 8 launches (ops_fused below): rmsnorm, the merged QKV GEMV, rope + KV
 * store, decode attention (+ a combine when the context is split), the output projection
 * with the residual add fused, rmsnorm, the gate/up GEMV with SwiGLU fused, the down
 * projection with the residual add fused.
 *  - matmuls of up to GEMV_MAX_M rows: a GEMV that reads every weight byte once, 16-byte
 *    streaming loads, four in flight per lane, one warp per output row (two for SwiGLU);
 *  - more rows: cuBLAS (bf16 tensor cores, fp32 accumulation) after converting x to bf16;
 *  - decode attention: one block per (split of the context, KV head, token), the KV head read
 *    once for all its query heads (GQA), lanes in groups of D/8 each holding 8 dims of a
 *    position; long contexts split over blocks and combined (flash-decoding);
 *  - prefill runs (>= PREFILL_MIN tokens of one sequence): the sequence's K/V gathered from the
 *    pages, then Q K^T and P V as batched cuBLAS GEMMs with a causal softmax between;
 *  - decode steps are recorded as CUDA graphs (graph_begin/graph_end) and replayed.
 *
 * Errors: launches and copies record the first CUDA error (sticky); eng_cuda_backend_error
 * reports it. Allocation failures return HX_ENOMEM with the bytes asked and free.
 */
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
#define PREFILL_MIN 64                       /* tokens of one sequence that take the GEMM path */
#define ATT_S_BYTES ((size_t)192 << 20)      /* score + probability scratch of prefill runs */
#define BLAS_WS_BYTES ((size_t)32 << 20)     /* cuBLAS workspace (fixed: graph capture safe) */

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
    int *cnt; /* per (token, KV head group): splits done, for the combine (zeroed) */
    size_t cnt_n;
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

static void note(struct eng_cuda_backend *cb, cudaError_t e, const char *where)
{
    if (e != cudaSuccess && cb->err == cudaSuccess) {
        cb->err = e;
        snprintf(cb->err_where, sizeof(cb->err_where), "%s", where);
    }
}

static void note_blas(struct eng_cuda_backend *cb, cublasStatus_t s, const char *where)
{
    if (s != CUBLAS_STATUS_SUCCESS && cb->err == cudaSuccess) {
        cb->err = cudaErrorUnknown;
        snprintf(cb->err_where, sizeof(cb->err_where), "%s (cuBLAS status %d)", where, (int)s);
    }
}

#define LAUNCHED(cb, where) note((cb), cudaGetLastError(), (where))

static struct eng_cuda_backend *CB(struct eng_backend *be)
{
    return (struct eng_cuda_backend *)be;
}

/* Launch kernel k on the backend's stream, as a programmatic dependent launch where the card
 * has them (the kernel calls pdl_trigger / pdl_wait). */
template <typename... P, typename... A>
static void launch(struct eng_cuda_backend *cb, void (*k)(P...), dim3 grid, dim3 block,
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

/* ---- profile: events around ops ----------------------------------------------------------- */

static cudaEvent_t prof_event(struct eng_cuda_backend *cb)
{
    if (cb->n_ev < 2 * MAX_PROF) {
        cudaEvent_t e = cb->ev_pool[cb->n_ev];
        if (!e) {
            cudaEventCreate(&cb->ev_pool[cb->n_ev]);
            e = cb->ev_pool[cb->n_ev];
        }
        cb->n_ev++;
        return e;
    }
    return NULL;
}

static void prof_begin(struct eng_cuda_backend *cb, const char *name, double bytes)
{
    if (!cb->prof_on || cb->n_prof >= MAX_PROF) {
        return;
    }
    struct prof_rec *r = &cb->prof[cb->n_prof];
    r->name = name;
    r->bytes = bytes;
    r->a = prof_event(cb);
    r->b = prof_event(cb);
    if (r->a && r->b) {
        cudaEventRecord(r->a, cb->stream);
    }
}

static void prof_end(struct eng_cuda_backend *cb)
{
    if (!cb->prof_on || cb->n_prof >= MAX_PROF) {
        return;
    }
    struct prof_rec *r = &cb->prof[cb->n_prof];
    if (r->a && r->b) {
        cudaEventRecord(r->b, cb->stream);
        cb->n_prof++;
    }
}

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

/* ---- buffers ------------------------------------------------------------------------------- */

static int oom(struct eng_cuda_backend *cb, size_t n, const char *what, struct hx_diag *diag)
{
    size_t free_b = 0, total = 0;
    cudaGetLastError(); /* clear the failed allocation's error */
    cudaMemGetInfo(&free_b, &total);
    return hx_diag_set(diag, HX_ENOMEM,
                       "cuda:%d: out of device memory: %s asked %zu bytes, %zu of %zu free",
                       cb->device, what, n, free_b, total);
}

/* cudaMalloc, counted for the peak. */
static cudaError_t dev_alloc(struct eng_cuda_backend *cb, void **p, size_t n)
{
    cudaError_t e = cudaMalloc(p, n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return e;
    }
    if (cb->n_allocs == cb->cap_allocs) {
        int cap = cb->cap_allocs ? 2 * cb->cap_allocs : 256;
        struct alloc_rec *a = (struct alloc_rec *)realloc(cb->allocs, (size_t)cap * sizeof(*a));
        if (!a) {
            cudaFree(*p);
            *p = NULL;
            return cudaErrorMemoryAllocation;
        }
        cb->allocs = a;
        cb->cap_allocs = cap;
    }
    cb->allocs[cb->n_allocs++] = (struct alloc_rec){*p, n};
    cb->cur_bytes += n;
    if (cb->cur_bytes > cb->peak_bytes) {
        cb->peak_bytes = cb->cur_bytes;
    }
    return cudaSuccess;
}

static void dev_free(struct eng_cuda_backend *cb, void *p)
{
    if (!p) {
        return;
    }
    for (int i = cb->n_allocs - 1; i >= 0; i--) {
        if (cb->allocs[i].p == p) {
            cb->cur_bytes -= cb->allocs[i].n;
            cb->allocs[i] = cb->allocs[--cb->n_allocs];
            break;
        }
    }
    note(cb, cudaFree(p), "free");
}

static int cuda_buf_alloc(struct eng_backend *be, size_t n, void **out)
{
    struct eng_cuda_backend *cb = CB(be);
    if (dev_alloc(cb, out, n) != cudaSuccess) {
        return HX_ENOMEM;
    }
    note(cb, cudaMemsetAsync(*out, 0, n, cb->stream), "buf_alloc memset");
    return HX_OK;
}

static void cuda_buf_free(struct eng_backend *be, void *p)
{
    dev_free(CB(be), p);
}

static size_t wsize(const struct eng_weight *w)
{
    size_t esz = w->dtype == ENG_DTYPE_F32 ? 4 : 2;
    return (size_t)w->rows * (size_t)w->cols * esz;
}

static int cuda_weight_upload_cat(struct eng_backend *be, const struct eng_weight *parts, int n,
                                  struct eng_weight *out, struct hx_diag *diag)
{
    struct eng_cuda_backend *cb = CB(be);
    int vectors = 1;
    size_t total = 0;
    int rows = 0, cols = 0;
    for (int i = 0; i < n; i++) {
        vectors &= parts[i].rows == 1;
        total += wsize(&parts[i]);
        rows += parts[i].rows;
        cols += parts[i].cols;
        if (parts[i].dtype != parts[0].dtype || (!vectors && parts[i].cols != parts[0].cols)) {
            return hx_diag_set(diag, HX_EINVAL, "cuda: merged weights need one dtype and width");
        }
    }
    void *d = NULL;
    if (dev_alloc(cb, &d, total) != cudaSuccess) {
        return oom(cb, total, "a weight", diag);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t b = wsize(&parts[i]);
        cudaError_t e = cudaMemcpy((char *)d + off, parts[i].data, b, cudaMemcpyHostToDevice);
        if (e != cudaSuccess) {
            dev_free(cb, d);
            return hx_diag_set(diag, HX_EDEVICE, "cuda:%d: weight upload of %zu bytes: %s",
                               cb->device, b, cudaGetErrorString(e));
        }
        off += b;
    }
    out->dtype = parts[0].dtype;
    out->rows = vectors ? 1 : rows;
    out->cols = vectors ? cols : parts[0].cols;
    out->data = d;
    return HX_OK;
}

static int cuda_weight_upload(struct eng_backend *be, const struct eng_weight *host,
                              struct eng_weight *out, struct hx_diag *diag)
{
    return cuda_weight_upload_cat(be, host, 1, out, diag);
}

static void cuda_weight_release(struct eng_backend *be, struct eng_weight *w)
{
    dev_free(CB(be), (void *)w->data);
    w->data = NULL;
}

static void cuda_to_device(struct eng_backend *be, void *dst, const void *src, size_t n)
{
    struct eng_cuda_backend *cb = CB(be);
    if (n) {
        note(cb, cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, cb->stream), "to_device");
    }
}

static void cuda_to_host(struct eng_backend *be, void *dst, const void *src, size_t n)
{
    struct eng_cuda_backend *cb = CB(be);
    if (n) {
        note(cb, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, cb->stream), "to_host");
        note(cb, cudaStreamSynchronize(cb->stream), "to_host sync");
    }
}

static void cuda_copy(struct eng_backend *be, void *dst, const void *src, size_t n)
{
    struct eng_cuda_backend *cb = CB(be);
    if (n) {
        note(cb, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, cb->stream), "copy");
    }
}

static void cuda_sync(struct eng_backend *be)
{
    struct eng_cuda_backend *cb = CB(be);
    note(cb, cudaStreamSynchronize(cb->stream), "sync");
}

/* Grow a scratch buffer to at least n bytes (before serving: reserve / reserve_attn). */
static int grow(struct eng_cuda_backend *cb, void **p, size_t *cap, size_t n, const char *what,
                struct hx_diag *diag)
{
    if (n <= *cap) {
        return HX_OK;
    }
    dev_free(cb, *p);
    *p = NULL;
    *cap = 0;
    if (dev_alloc(cb, p, n) != cudaSuccess) {
        return oom(cb, n, what, diag);
    }
    *cap = n;
    return HX_OK;
}

static int cuda_reserve(struct eng_backend *be, int max_rows, int max_cols, struct hx_diag *diag)
{
    struct eng_cuda_backend *cb = CB(be);
    size_t n = (size_t)max_rows * (size_t)max_cols;
    int rc = grow(cb, (void **)&cb->xh, &cb->xh_cap, n * 2, "matmul scratch", diag);
    if (rc == HX_OK) {
        rc = grow(cb, (void **)&cb->gu, &cb->gu_cap, 2 * n * sizeof(float), "gate/up scratch",
                  diag);
    }
    return rc;
}

#define ATT_TARGET_BLOCKS(cb) ((cb)->sms * 4)
#define ATT_MAX_SPLITS 64

static int cuda_reserve_attn(struct eng_backend *be, int max_tokens, int max_ctx, int n_heads,
                             int n_kv_heads, int head_dim, struct hx_diag *diag)
{
    struct eng_cuda_backend *cb = CB(be);
    /* split partials: splits are used only while (tokens x KV heads) < the target, so at most
     * target x splits... bounded by target blocks x their query heads */
    int g = n_heads / (n_kv_heads > 0 ? n_kv_heads : 1);
    size_t part = (size_t)ATT_TARGET_BLOCKS(cb) * 2 * (size_t)(g > 8 ? g : 8) *
                  (size_t)(head_dim + 2) * sizeof(float);
    int rc = grow(cb, (void **)&cb->part, &cb->part_cap, part, "attention scratch", diag);
    size_t cn = (size_t)max_tokens * (size_t)n_heads;
    if (rc == HX_OK && cn > cb->cnt_n) {
        size_t cap = cb->cnt_n * sizeof(int);
        rc = grow(cb, (void **)&cb->cnt, &cap, cn * sizeof(int), "attention counters", diag);
        if (rc == HX_OK) {
            note(cb, cudaMemsetAsync(cb->cnt, 0, cn * sizeof(int), cb->stream), "counters");
            cb->cnt_n = cn;
        }
    }
    size_t kv = (size_t)max_ctx * (size_t)n_kv_heads * (size_t)head_dim * 2;
    if (rc == HX_OK) {
        rc = grow(cb, (void **)&cb->kc, &cb->kvc_cap, kv, "prefill attention scratch", diag);
    }
    if (rc == HX_OK) {
        size_t cap = cb->kvc_cap;
        cb->kvc_cap = 0; /* vc shares the size */
        void *v = cb->vc;
        rc = grow(cb, &v, &cb->kvc_cap, cap, "prefill attention scratch", diag);
        cb->vc = (uint16_t *)v;
        cb->kvc_cap = cap;
    }
    if (rc == HX_OK && !cb->S) {
        size_t n = ATT_S_BYTES / 6;
        size_t c1 = 0, c2 = 0;
        rc = grow(cb, (void **)&cb->S, &c1, n * 4, "prefill score scratch", diag);
        if (rc == HX_OK) {
            rc = grow(cb, (void **)&cb->P, &c2, n * 2, "prefill score scratch", diag);
        }
        cb->s_cap = rc == HX_OK ? n : 0;
    }
    return rc;
}

/* ---- embed, rmsnorm ------------------------------------------------------------------------ */

template <int DT>
__global__ void k_embed(const void *table, const int32_t *ids, int dim, float *out)
{
    pdl_trigger();
    pdl_wait();
    size_t base = (size_t)ids[blockIdx.x] * (size_t)dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) {
        out[(size_t)blockIdx.x * dim + j] = wload<DT>(table, base + j);
    }
}

static void cuda_embed(struct eng_backend *be, const struct eng_weight *t, const int32_t *ids,
                       int n, float *out)
{
    if (n <= 0) {
        return;
    }
    struct eng_cuda_backend *cb = CB(be);
    prof_begin(cb, "embed", (double)n * t->cols * 2);
    cudaStream_t s = cb->stream;
    switch (t->dtype) {
    case ENG_DTYPE_BF16:
        k_embed<ENG_DTYPE_BF16><<<n, 256, 0, s>>>(t->data, ids, t->cols, out);
        break;
    case ENG_DTYPE_F16:
        k_embed<ENG_DTYPE_F16><<<n, 256, 0, s>>>(t->data, ids, t->cols, out);
        break;
    default:
        k_embed<ENG_DTYPE_F32><<<n, 256, 0, s>>>(t->data, ids, t->cols, out);
        break;
    }
    LAUNCHED(cb, "embed");
    prof_end(cb);
}

template <int DT>
__global__ void k_rmsnorm(const float *x, const void *w, int dim, float eps, float *out)
{
    pdl_trigger();
    pdl_wait();
    const float *xi = x + (size_t)blockIdx.x * dim;
    float *oi = out + (size_t)blockIdx.x * dim;
    __shared__ float part[32];
    float ss = 0.0f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) {
        ss += xi[j] * xi[j];
    }
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) {
        part[threadIdx.x >> 5] = ss;
    }
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.0f;
        v = warp_sum(v);
        if (threadIdx.x == 0) {
            part[0] = v;
        }
    }
    __syncthreads();
    float scale = rsqrtf(part[0] / (float)dim + eps);
    for (int j = threadIdx.x; j < dim; j += blockDim.x) {
        oi[j] = wload<DT>(w, j) * (xi[j] * scale);
    }
}

static void cuda_rmsnorm(struct eng_backend *be, const float *x, const struct eng_weight *w, int n,
                         float eps, float *out)
{
    if (n <= 0) {
        return;
    }
    struct eng_cuda_backend *cb = CB(be);
    prof_begin(cb, "rmsnorm", (double)n * w->cols * 8);
    switch (w->dtype) {
    case ENG_DTYPE_BF16:
        launch(cb, k_rmsnorm<ENG_DTYPE_BF16>, dim3(n), dim3(512), 0, x, w->data, w->cols, eps, out);
        break;
    case ENG_DTYPE_F16:
        launch(cb, k_rmsnorm<ENG_DTYPE_F16>, dim3(n), dim3(512), 0, x, w->data, w->cols, eps, out);
        break;
    default:
        launch(cb, k_rmsnorm<ENG_DTYPE_F32>, dim3(n), dim3(512), 0, x, w->data, w->cols, eps, out);
        break;
    }
    LAUNCHED(cb, "rmsnorm");
    prof_end(cb);
}

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
        launch(cb, k_gemv<DT, M, EPI>, g, dim3(T), 0, x, w->data, rows, w->cols, o);              \
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
static void gemv_any(struct eng_cuda_backend *cb, const float *x, int m,
                     const struct eng_weight *w, int rows, const struct gemv_out &o)
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

static unsigned ew_blocks(size_t n)
{
    size_t b = (n + 255) / 256;
    return (unsigned)(b < 65535 ? (b ? b : 1) : 65535);
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
                      const struct eng_weight *w, int r0, int n_rows, float beta, float *C,
                      int ldc)
{
    size_t esz = w->dtype == ENG_DTYPE_F32 ? 4 : 2;
    const char *A = (const char *)w->data + (size_t)r0 * (size_t)w->cols * esz;
    float alpha = 1.0f;
    cudaDataType_t t = blas_type(w->dtype);
    cublasStatus_t st = cublasGemmEx(cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, n_rows, m, w->cols,
                                     &alpha, A, t, w->cols, xb, t, w->cols, &beta, C, CUDA_R_32F,
                                     ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
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

static void cuda_matmul(struct eng_backend *be, const float *x, int m, const struct eng_weight *w,
                        const struct eng_weight *bias, float *out)
{
    struct gemv_out o = {out, NULL, NULL, 0, 0, bias ? bias->data : NULL,
                         bias ? (int)bias->dtype : 0};
    matmul_epi(CB(be), EPI_PLAIN, x, m, w, o, "matmul");
}

static void cuda_matmul_qkv(struct eng_backend *be, const float *x, int m,
                            const struct eng_weight *wqkv, const struct eng_weight *bqkv,
                            int q_rows, int kv_rows, float *q, float *k, float *v)
{
    struct gemv_out o = {q, k, v, q_rows, kv_rows, bqkv ? bqkv->data : NULL,
                         bqkv ? (int)bqkv->dtype : 0};
    matmul_epi(CB(be), EPI_QKV, x, m, wqkv, o, "matmul_qkv");
}

static void cuda_matmul_swiglu(struct eng_backend *be, const float *x, int m,
                               const struct eng_weight *wgu, float *out)
{
    struct gemv_out o = {out, NULL, NULL, 0, 0, NULL, 0};
    matmul_epi(CB(be), EPI_SWIGLU, x, m, wgu, o, "matmul_swiglu");
}

static void cuda_matmul_add(struct eng_backend *be, const float *x, int m,
                            const struct eng_weight *w, float *acc)
{
    struct gemv_out o = {acc, NULL, NULL, 0, 0, NULL, 0};
    matmul_epi(CB(be), EPI_ADD, x, m, w, o, "matmul_add");
}

/* ---- rope, KV ------------------------------------------------------------------------------- */

/* Rotate pair (j, j + half) of vector v by position p (transformers' float32 inv_freq and
 * angle; the CPU backend's double sin/cos of that angle). */
__device__ __forceinline__ void rope_pair(float *v, int j, int half, int head_dim, int p,
                                          double theta, float *a_out, float *b_out)
{
    float inv_freq = (float)(1.0 / pow(theta, (double)(2 * j) / (double)head_dim));
    float angle = (float)p * inv_freq;
    double sv, cv;
    sincos((double)angle, &sv, &cv);
    float a = v[j];
    float b = v[j + half];
    *a_out = a * (float)cv - b * (float)sv;
    *b_out = b * (float)cv + a * (float)sv;
}

/* One thread per rotated pair: n tokens x n_heads x head_dim/2. */
__global__ void k_rope(float *x, int n, int n_heads, int head_dim, const int32_t *pos,
                       double theta)
{
    pdl_trigger();
    pdl_wait();
    int half = head_dim / 2;
    size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (e >= (size_t)n * n_heads * half) {
        return;
    }
    int j = (int)(e % half);
    size_t th = e / half; /* token * n_heads + head */
    int t = (int)(th / n_heads);
    float *v = x + th * head_dim;
    float a, b;
    rope_pair(v, j, half, head_dim, pos[t], theta, &a, &b);
    v[j] = a;
    v[j + half] = b;
}

static unsigned pair_blocks(size_t n)
{
    return (unsigned)((n + 127) / 128);
}

static void cuda_rope(struct eng_backend *be, float *x, int n, int n_heads, int head_dim,
                      const int32_t *pos, double theta)
{
    if (n <= 0) {
        return;
    }
    struct eng_cuda_backend *cb = CB(be);
    prof_begin(cb, "rope", 0);
    size_t pairs = (size_t)n * n_heads * (head_dim / 2);
    launch(cb, k_rope, dim3(pair_blocks(pairs)), dim3(128), 0, x, n, n_heads, head_dim, pos, theta);
    prof_end(cb);
}

__device__ __forceinline__ size_t slot_off(const struct eng_attn_batch &b, int s, int p)
{
    int block = b.block_tables[(size_t)s * b.max_blocks + p / ENG_KV_BLOCK];
    return ((size_t)block * ENG_KV_BLOCK + (size_t)(p % ENG_KV_BLOCK)) * (size_t)b.n_kv_heads *
           (size_t)b.head_dim;
}

template <typename KV> __global__ void k_kv_store(struct eng_attn_batch b, const float *k, const float *v)
{
    pdl_trigger();
    pdl_wait();
    int t = blockIdx.x;
    int kv_dim = b.n_kv_heads * b.head_dim;
    size_t off = slot_off(b, b.tok_seq[t], b.tok_pos[t]);
    KV *kc = (KV *)b.k_cache;
    KV *vc = (KV *)b.v_cache;
    for (int j = threadIdx.x; j < kv_dim; j += blockDim.x) {
        kv_put(kc, off + j, k[(size_t)t * kv_dim + j]);
        kv_put(vc, off + j, v[(size_t)t * kv_dim + j]);
    }
}

static void cuda_kv_store(struct eng_backend *be, const struct eng_attn_batch *b, const float *k,
                          const float *v)
{
    if (b->n_tokens <= 0) {
        return;
    }
    struct eng_cuda_backend *cb = CB(be);
    prof_begin(cb, "kv_store", 0);
    if (be->kv_dtype == ENG_DTYPE_BF16) {
        launch(cb, k_kv_store<uint16_t>, dim3(b->n_tokens), dim3(128), 0, *b, k, v);
    } else {
        launch(cb, k_kv_store<float>, dim3(b->n_tokens), dim3(128), 0, *b, k, v);
    }
    prof_end(cb);
}

/* rope of q and k (in place), then k and v into the cache. Thread (token, pair j) of head
 * group blockIdx.y: cos/sin of the pair's angle once (the CPU's double sin/cos of the float32
 * angle), applied to the group's heads of the token's n_heads + n_kv_heads; a K head's thread
 * also stores that pair of V. */
#define ROPE_HG 8
template <typename KV>
__global__ void k_rope_kv_store(struct eng_attn_batch b, float *q, float *k, const float *v,
                                double theta)
{
    pdl_trigger();
    pdl_wait();
    int d = b.head_dim;
    int half = d / 2;
    size_t e0 = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (e0 >= (size_t)b.n_tokens * half) {
        return;
    }
    int t = (int)(e0 / half);
    int j = (int)(e0 % half);
    int p = b.tok_pos[t];
    float inv_freq = (float)(1.0 / pow(theta, (double)(2 * j) / (double)d));
    float angle = (float)p * inv_freq;
    double sd, cd;
    sincos((double)angle, &sd, &cd);
    float sv = (float)sd, cv = (float)cd;
    int nh = b.n_heads + b.n_kv_heads;
    size_t off = slot_off(b, b.tok_seq[t], p);
    KV *kc = (KV *)b.k_cache;
    KV *vc = (KV *)b.v_cache;
    for (int h = blockIdx.y; h < nh; h += gridDim.y) {
        float *x = h < b.n_heads ? q + ((size_t)t * b.n_heads + h) * d
                                 : k + ((size_t)t * b.n_kv_heads + (h - b.n_heads)) * d;
        float x0 = x[j];
        float x1 = x[j + half];
        float r0 = x0 * cv - x1 * sv;
        float r1 = x1 * cv + x0 * sv;
        x[j] = r0;
        x[j + half] = r1;
        if (h >= b.n_heads) {
            int kh = h - b.n_heads;
            size_t o = off + (size_t)kh * d;
            const float *vv = v + ((size_t)t * b.n_kv_heads + kh) * d;
            kv_put(kc, o + j, r0);
            kv_put(kc, o + j + half, r1);
            kv_put(vc, o + j, vv[j]);
            kv_put(vc, o + j + half, vv[j + half]);
        }
    }
}

static void cuda_rope_kv_store(struct eng_backend *be, const struct eng_attn_batch *b, float *q,
                               float *k, const float *v, double theta)
{
    if (b->n_tokens <= 0) {
        return;
    }
    struct eng_cuda_backend *cb = CB(be);
    prof_begin(cb, "rope_kv_store", 0);
    size_t pairs = (size_t)b->n_tokens * (b->head_dim / 2);
    dim3 grid(pair_blocks(pairs), ROPE_HG);
    if (be->kv_dtype == ENG_DTYPE_BF16) {
        launch(cb, k_rope_kv_store<uint16_t>, grid, dim3(128), 0, *b, q, k, v, theta);
    } else {
        launch(cb, k_rope_kv_store<float>, grid, dim3(128), 0, *b, q, k, v, theta);
    }
    prof_end(cb);
}

/* ---- decode attention ------------------------------------------------------------------------ */

#define ATT_WARPS 4
#define ATT_MAX_D 256

/*
 * Attention of tokens [t0, t0 + gridDim.z) over the paged bf16 cache. Block (split, kv head
 * x head group, token): the positions of its split of the token's context, read once for the
 * GM query heads of the group. Lanes in groups of LP (= D/8 rounded up to a power of two) hold
 * 8 dims of one position each; every group keeps its own online softmax, merged at the end
 * across the warp (shuffles) and the block's warps (shared memory). One split: the output;
 * several: partials (max, sum, unnormalised accumulator) for k_attn_combine.
 */
template <typename KV, int LP, int GM>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    k_attn_decode(struct eng_attn_batch b, const float *q, float *out, float *part, int t0,
                  int n_hgroups, int *counters)
{
    pdl_trigger();
    pdl_wait();
    constexpr int PPW = 32 / LP; /* positions per warp per step */
    int t = t0 + blockIdx.z;
    int kvh = blockIdx.y / n_hgroups;
    int hg = blockIdx.y % n_hgroups;
    int G = b.n_heads / b.n_kv_heads;
    int h0 = kvh * G + hg * GM;
    int gn = G - hg * GM < GM ? G - hg * GM : GM;
    int D = b.head_dim;
    int n_splits = gridDim.x;
    int split = blockIdx.x;
    int seq = b.tok_seq[t];
    int n_pos = b.tok_pos[t] + 1;
    int per = ((n_pos + n_splits - 1) / n_splits + 15) & ~15;
    int p_begin = split * per;
    int p_end = p_begin + per < n_pos ? p_begin + per : n_pos;
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int sub = lane % LP;
    int grp = lane / LP;
    bool on = sub * 8 < D;
    float scale = rsqrtf((float)D);
    float qv[GM][8];
#pragma unroll
    for (int g = 0; g < GM; g++) {
#pragma unroll
        for (int i = 0; i < 8; i++) {
            qv[g][i] = 0.0f;
        }
        if (g < gn && on) {
            const float4 *qp = (const float4 *)(q + ((size_t)t * b.n_heads + h0 + g) * D + sub * 8);
            float4 a = qp[0];
            float4 c = qp[1];
            qv[g][0] = a.x * scale;
            qv[g][1] = a.y * scale;
            qv[g][2] = a.z * scale;
            qv[g][3] = a.w * scale;
            qv[g][4] = c.x * scale;
            qv[g][5] = c.y * scale;
            qv[g][6] = c.z * scale;
            qv[g][7] = c.w * scale;
        }
    }
    float mx[GM], sm[GM], acc[GM][8];
#pragma unroll
    for (int g = 0; g < GM; g++) {
        mx[g] = -INFINITY;
        sm[g] = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            acc[g][i] = 0.0f;
        }
    }
    const KV *kc = (const KV *)b.k_cache;
    const KV *vc = (const KV *)b.v_cache;
    size_t head_off = (size_t)kvh * D + (size_t)sub * 8;
#pragma unroll 2
    for (int pb = p_begin + warp * PPW; pb < p_end; pb += ATT_WARPS * PPW) {
        int p = pb + grp;
        bool valid = p < p_end;
        size_t off = valid ? slot_off(b, seq, p) + head_off : 0;
        float kf[8], vf[8];
        kv_load8(kc, off, valid && on, kf);
        kv_load8(vc, off, valid && on, vf);
#pragma unroll
        for (int g = 0; g < GM; g++) {
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                s += qv[g][i] * kf[i];
            }
#pragma unroll
            for (int o = LP / 2; o > 0; o >>= 1) {
                s += __shfl_xor_sync(0xffffffffu, s, o);
            }
            if (valid && g < gn) {
                float nm = fmaxf(mx[g], s);
                float r = __expf(mx[g] - nm);
                float e = __expf(s - nm);
                sm[g] = sm[g] * r + e;
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    acc[g][i] = acc[g][i] * r + e * vf[i];
                }
                mx[g] = nm;
            }
        }
    }
    /* merge the position groups of the warp (lanes sub, sub + LP, ...) */
#pragma unroll
    for (int o = LP; o < 32; o <<= 1) {
#pragma unroll
        for (int g = 0; g < GM; g++) {
            float om = __shfl_xor_sync(0xffffffffu, mx[g], o);
            float os = __shfl_xor_sync(0xffffffffu, sm[g], o);
            float nm = fmaxf(mx[g], om);
            float r0 = mx[g] == -INFINITY ? 0.0f : __expf(mx[g] - nm);
            float r1 = om == -INFINITY ? 0.0f : __expf(om - nm);
            sm[g] = sm[g] * r0 + os * r1;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                float oa = __shfl_xor_sync(0xffffffffu, acc[g][i], o);
                acc[g][i] = acc[g][i] * r0 + oa * r1;
            }
            mx[g] = nm;
        }
    }
    /* merge the warps through shared memory */
    __shared__ float s_acc[ATT_WARPS][GM][ATT_MAX_D];
    __shared__ float s_m[ATT_WARPS][GM];
    __shared__ float s_s[ATT_WARPS][GM];
    if (grp == 0) {
#pragma unroll
        for (int g = 0; g < GM; g++) {
            if (on) {
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    s_acc[warp][g][sub * 8 + i] = acc[g][i];
                }
            }
            if (sub == 0) {
                s_m[warp][g] = mx[g];
                s_s[warp][g] = sm[g];
            }
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < gn * D; idx += ATT_WARPS * 32) {
        int g = idx / D;
        int i = idx % D;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < ATT_WARPS; w++) {
            M = fmaxf(M, s_m[w][g]);
        }
        float L = 0.0f, A = 0.0f;
#pragma unroll
        for (int w = 0; w < ATT_WARPS; w++) {
            float f = s_m[w][g] == -INFINITY ? 0.0f : __expf(s_m[w][g] - M);
            L += s_s[w][g] * f;
            A += s_acc[w][g][i] * f;
        }
        int h = h0 + g;
        if (n_splits == 1) {
            out[((size_t)t * b.n_heads + h) * D + i] = A / L;
        } else {
            float *pp = part + (((size_t)blockIdx.z * b.n_heads + h) * n_splits + split) * (D + 2);
            pp[2 + i] = A;
            if (i == 0) {
                pp[0] = M;
                pp[1] = L;
            }
        }
    }
    if (n_splits == 1) {
        return;
    }
    /* the last split of (token, head group) to finish combines the partials (and resets the
     * counter for the next launch) */
    __shared__ int s_last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int ci = blockIdx.z * gridDim.y + blockIdx.y;
        int old = atomicAdd(&counters[ci], 1);
        s_last = old == n_splits - 1;
        if (s_last) {
            counters[ci] = 0;
        }
    }
    __syncthreads();
    if (!s_last) {
        return;
    }
    __threadfence();
    for (int idx = threadIdx.x; idx < gn * D; idx += ATT_WARPS * 32) {
        int g = idx / D;
        int i = idx % D;
        int h = h0 + g;
        const float *pp = part + ((size_t)blockIdx.z * b.n_heads + h) * n_splits * (D + 2);
        float M = -INFINITY;
        for (int sp = 0; sp < n_splits; sp++) {
            M = fmaxf(M, __ldcg(pp + (size_t)sp * (D + 2)));
        }
        float L = 0.0f, A = 0.0f;
        for (int sp = 0; sp < n_splits; sp++) {
            const float *qq = pp + (size_t)sp * (D + 2);
            float m = __ldcg(qq);
            float f = m == -INFINITY ? 0.0f : __expf(m - M);
            L += __ldcg(qq + 1) * f;
            A += __ldcg(qq + 2 + i) * f;
        }
        out[((size_t)t * b.n_heads + h) * D + i] = A / L;
    }
}

/* The general attention (head_dim not a multiple of 8, or > 256): one block per (token,
 * head), a chunk of 64 positions at a time with an online softmax. */
#define ATT_CHUNK 64
template <typename KV>
__global__ void __launch_bounds__(ATT_CHUNK)
    k_attention_any(struct eng_attn_batch b, const float *q, float *out, int t0)
{
    pdl_trigger();
    pdl_wait();
    int t = t0 + blockIdx.x / b.n_heads;
    int h = blockIdx.x % b.n_heads;
    int d = b.head_dim;
    int kvh = h / (b.n_heads / b.n_kv_heads);
    extern __shared__ float sh[];
    float *qs = sh;      /* [d] */
    float *ps = sh + d;  /* [ATT_CHUNK] */
    float *acc = ps + ATT_CHUNK; /* [d] */
    __shared__ float red[ATT_CHUNK / 32];
    const float *qp = q + ((size_t)t * b.n_heads + h) * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        qs[i] = qp[i];
        acc[i] = 0.0f;
    }
    __syncthreads();
    const KV *kc = (const KV *)b.k_cache;
    const KV *vc = (const KV *)b.v_cache;
    float scale = rsqrtf((float)d);
    int seq = b.tok_seq[t];
    int n_pos = b.tok_pos[t] + 1;
    float mx = -INFINITY;
    float sum = 0.0f;
    for (int p0 = 0; p0 < n_pos; p0 += ATT_CHUNK) {
        int p = p0 + (int)threadIdx.x;
        float s = -INFINITY;
        if (p < n_pos) {
            size_t kp = slot_off(b, seq, p) + (size_t)kvh * d;
            float dot = 0.0f;
            for (int i = 0; i < d; i++) {
                dot += qs[i] * kv_get(kc, kp + i);
            }
            s = dot * scale;
        }
        float cm = s;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            cm = fmaxf(cm, __shfl_xor_sync(0xffffffffu, cm, o));
        }
        if ((threadIdx.x & 31) == 0) {
            red[threadIdx.x >> 5] = cm;
        }
        __syncthreads();
        cm = fmaxf(red[0], red[1]);
        float nm = fmaxf(mx, cm);
        float r = expf(mx - nm);
        ps[threadIdx.x] = p < n_pos ? expf(s - nm) : 0.0f;
        __syncthreads();
        float cs = 0.0f;
        for (int j = 0; j < ATT_CHUNK; j++) {
            cs += ps[j];
        }
        sum = sum * r + cs;
        int n_here = n_pos - p0 < ATT_CHUNK ? n_pos - p0 : ATT_CHUNK;
        for (int i = threadIdx.x; i < d; i += blockDim.x) {
            float v = acc[i] * r;
            for (int j = 0; j < n_here; j++) {
                v += ps[j] * kv_get(vc, slot_off(b, seq, p0 + j) + (size_t)kvh * d + i);
            }
            acc[i] = v;
        }
        mx = nm;
        __syncthreads();
    }
    float *op = out + ((size_t)t * b.n_heads + h) * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        op[i] = acc[i] / sum;
    }
}

template <typename KV, int LP, int GM>
static void attn_decode_launch(struct eng_cuda_backend *cb, const struct eng_attn_batch *b,
                               const float *q, float *out, int t0, int nt)
{
    int G = b->n_heads / b->n_kv_heads;
    int n_hgroups = (G + GM - 1) / GM;
    int base = nt * b->n_kv_heads * n_hgroups;
    int target = ATT_TARGET_BLOCKS(cb);
    int splits = base >= target ? 1 : target / base;
    int max_ctx = b->max_blocks * ENG_KV_BLOCK;
    int cap_ctx = (max_ctx + 31) / 32;
    splits = splits > cap_ctx ? cap_ctx : splits;
    splits = splits > ATT_MAX_SPLITS ? ATT_MAX_SPLITS : splits;
    size_t need = (size_t)nt * b->n_heads * (size_t)(b->head_dim + 2) * sizeof(float);
    while (splits > 1 && need * (size_t)splits > cb->part_cap) {
        splits--;
    }
    splits = splits < 1 ? 1 : splits;
    dim3 grid((unsigned)splits, (unsigned)(b->n_kv_heads * n_hgroups), (unsigned)nt);
    if (splits > 1 && (size_t)nt * b->n_kv_heads * n_hgroups > cb->cnt_n) {
        splits = 1; /* more tokens than reserved counters: no split */
        grid.x = 1;
    }
    launch(cb, k_attn_decode<KV, LP, GM>, grid, dim3(ATT_WARPS * 32), 0, *b, q, out, cb->part,
           t0, n_hgroups, cb->cnt);
}

template <typename KV, int LP>
static void attn_decode_g(struct eng_cuda_backend *cb, const struct eng_attn_batch *b,
                          const float *q, float *out, int t0, int nt)
{
    int G = b->n_heads / b->n_kv_heads;
    if (G <= 1) {
        attn_decode_launch<KV, LP, 1>(cb, b, q, out, t0, nt);
    } else if (G <= 2) {
        attn_decode_launch<KV, LP, 2>(cb, b, q, out, t0, nt);
    } else if (G <= 4) {
        attn_decode_launch<KV, LP, 4>(cb, b, q, out, t0, nt);
    } else {
        attn_decode_launch<KV, LP, 8>(cb, b, q, out, t0, nt);
    }
}

template <typename KV>
static void attn_decode_kv(struct eng_cuda_backend *cb, const struct eng_attn_batch *b,
                           const float *q, float *out, int t0, int nt)
{
    int D = b->head_dim;
    if (D % 8 != 0 || D > ATT_MAX_D || ((uintptr_t)q % 16) != 0) {
        size_t sh = ((size_t)2 * D + ATT_CHUNK) * sizeof(float);
        launch(cb, k_attention_any<KV>, dim3(nt * b->n_heads), dim3(ATT_CHUNK), sh, *b, q, out, t0);
        return;
    }
    int l8 = D / 8;
    if (l8 <= 4) {
        attn_decode_g<KV, 4>(cb, b, q, out, t0, nt);
    } else if (l8 <= 8) {
        attn_decode_g<KV, 8>(cb, b, q, out, t0, nt);
    } else if (l8 <= 16) {
        attn_decode_g<KV, 16>(cb, b, q, out, t0, nt);
    } else {
        attn_decode_g<KV, 32>(cb, b, q, out, t0, nt);
    }
}

/* Attention of the tokens [t0, t0 + nt) by the decode kernels. */
static void attn_decode(struct eng_cuda_backend *cb, const struct eng_attn_batch *b,
                        const float *q, float *out, int t0, int nt)
{
    if (nt <= 0) {
        return;
    }
    if (cb->base.kv_dtype == ENG_DTYPE_BF16) {
        attn_decode_kv<uint16_t>(cb, b, q, out, t0, nt);
    } else {
        attn_decode_kv<float>(cb, b, q, out, t0, nt);
    }
}

/* ---- prefill attention: gathered K/V, cuBLAS Q K^T and P V -------------------------------- */

/* K and V of positions [0, L) of step sequence seq, gathered to [L x kv_dim] bf16. */
template <typename KV>
__global__ void k_gather_kv(struct eng_attn_batch b, int seq, uint16_t *kc, uint16_t *vc)
{
    int p = blockIdx.x;
    int kv_dim = b.n_kv_heads * b.head_dim;
    size_t off = slot_off(b, seq, p);
    const KV *ks = (const KV *)b.k_cache + off;
    const KV *vs = (const KV *)b.v_cache + off;
    for (int j = threadIdx.x; j < kv_dim; j += blockDim.x) {
        kc[(size_t)p * kv_dim + j] = kv_bf16(ks, j);
        vc[(size_t)p * kv_dim + j] = kv_bf16(vs, j);
    }
}

/* Row i of S [rows x L] (batch z): causal softmax over columns <= pos0 + i into P (bf16,
 * zeros beyond). */
__global__ void k_softmax_causal(const float *S, int rows, int L, int pos0, uint16_t *P)
{
    int i = blockIdx.x;
    size_t base = ((size_t)blockIdx.y * rows + i) * (size_t)L;
    const float *s = S + base;
    uint16_t *p = P + base;
    int n = pos0 + i + 1 < L ? pos0 + i + 1 : L;
    __shared__ float red[32];
    float m = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        m = fmaxf(m, s[j]);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    }
    if ((threadIdx.x & 31) == 0) {
        red[threadIdx.x >> 5] = m;
    }
    __syncthreads();
    m = red[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); w++) {
        m = fmaxf(m, red[w]);
    }
    __syncthreads();
    float sum = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        sum += __expf(s[j] - m);
    }
    sum = warp_sum(sum);
    if ((threadIdx.x & 31) == 0) {
        red[threadIdx.x >> 5] = sum;
    }
    __syncthreads();
    sum = 0.0f;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) {
        sum += red[w];
    }
    float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        p[j] = j < n ? f2bf(__expf(s[j] - m) * inv) : (uint16_t)0;
    }
}

/*
 * Flash attention of a prefill run on tensor cores (mma.sync m16n8k16, bf16 in, fp32
 * accumulate), never materialising the scores: block (query tile of 64 rows, head), 4 warps
 * of 16 query rows; K/V tiles of 64 positions through shared memory (rows padded by 16 bytes:
 * ldmatrix without bank conflicts); S = Q K^T in registers, an online softmax per row (log2
 * domain), P reused in registers as the A operand of P V. Causal: tiles past the query tile's
 * last position are skipped, the diagonal ones masked. Q [n x q_dim], K/V [L x kv_dim] bf16
 * (rows = positions 0 .. L-1), out [n x q_dim] float32.
 */
#define FA_ROWS 64
#define FA_COLS 64

__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void *p)
{
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const void *p)
{
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

__device__ __forceinline__ void cp_async16(void *smem, const void *g, bool valid)
{
    uint32_t sa = (uint32_t)__cvta_generic_to_shared(smem);
    int sz = valid ? 16 : 0; /* 0: zero-fill */
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(sa), "l"(g), "r"(sz));
}
__device__ __forceinline__ void cp_async_commit()
{
    asm volatile("cp.async.commit_group;" ::);
}
template <int N> __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

/* rows [r0, r0 + 64) of a [rows x ld] bf16 matrix (columns c0 .. c0 + D) into smem [64][D + 8],
 * asynchronously; rows >= n_rows are zeros. */
template <int D>
__device__ __forceinline__ void fa_load_tile(uint16_t (*sm)[D + 8], const uint16_t *g, size_t ld,
                                             int r0, int n_rows, int c0)
{
    constexpr int CH = D / 8; /* 16-byte chunks per row */
    for (int i = threadIdx.x; i < FA_ROWS * CH; i += blockDim.x) {
        int r = i / CH;
        int c = (i % CH) * 8;
        bool ok = r0 + r < n_rows;
        cp_async16(&sm[r][c], ok ? g + (size_t)(r0 + r) * ld + c0 + c : g, ok);
    }
}

/* dynamic shared memory of k_flash_prefill<D>: K and V, two stages each */
#define FA_SMEM(D) ((size_t)4 * FA_COLS * ((D) + 8) * sizeof(uint16_t))

template <int D>
__global__ void __launch_bounds__(128)
    k_flash_prefill(const uint16_t *Q, const uint16_t *K, const uint16_t *V, float *out, int n,
                    int pos0, int n_heads, int n_kv, float scale_log2)
{
    extern __shared__ __align__(16) uint16_t fa_sm[];
    typedef uint16_t Tile[FA_COLS][D + 8];
    Tile *Ks = (Tile *)fa_sm;      /* [2] */
    Tile *Vs = (Tile *)fa_sm + 2;  /* [2] */
    int q0 = blockIdx.x * FA_ROWS;
    int h = blockIdx.y;
    int kvh = h / (n_heads / n_kv);
    int q_dim = n_heads * D;
    int kv_dim = n_kv * D;
    int L = pos0 + n;
    int warp = threadIdx.x >> 5;
    int lane = threadIdx.x & 31;
    int g = lane >> 2;
    int t = lane & 3;
    int last = pos0 + q0 + FA_ROWS - 1; /* the tile's last query position */
    int n_tiles = ((last < L - 1 ? last : L - 1) + FA_COLS) / FA_COLS;
    /* Q through stage 1 of K, tile 0 into stage 0 */
    fa_load_tile<D>(Ks[1], Q, q_dim, q0, n, h * D);
    cp_async_commit();
    fa_load_tile<D>(Ks[0], K, kv_dim, 0, L, kvh * D);
    fa_load_tile<D>(Vs[0], V, kv_dim, 0, L, kvh * D);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    uint32_t qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        ldsm_x4(qf[kk], &Ks[1][warp * 16 + (lane % 16)][kk * 16 + (lane / 16) * 8]);
    }
    __syncthreads();
    float o[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    }
    float m_r[2] = {-INFINITY, -INFINITY};
    float l_r[2] = {0.0f, 0.0f};
    int row_pos[2] = {pos0 + q0 + warp * 16 + g, pos0 + q0 + warp * 16 + g + 8};
    for (int kt = 0; kt < n_tiles; kt++) {
        int st = kt & 1;
        if (kt + 1 < n_tiles) {
            fa_load_tile<D>(Ks[st ^ 1], K, kv_dim, (kt + 1) * FA_COLS, L, kvh * D);
            fa_load_tile<D>(Vs[st ^ 1], V, kv_dim, (kt + 1) * FA_COLS, L, kvh * D);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        int p0 = kt * FA_COLS;
        float sc[FA_COLS / 8][4];
#pragma unroll
        for (int j = 0; j < FA_COLS / 8; j++) {
            sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.0f;
        }
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int j = 0; j < FA_COLS / 8; j += 2) {
                uint32_t b[4];
                ldsm_x4(b, &Ks[st][j * 8 + (lane / 16) * 8 + (lane % 8)]
                               [kk * 16 + ((lane / 8) % 2) * 8]);
                mma_bf16(sc[j], qf[kk], b[0], b[1]);
                mma_bf16(sc[j + 1], qf[kk], b[2], b[3]);
            }
        }
        /* mask, row maxima */
        bool diag = p0 + FA_COLS - 1 > pos0 + q0;
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int j = 0; j < FA_COLS / 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int col = p0 + j * 8 + 2 * t + (e & 1);
                int r = e >> 1;
                float v = sc[j][e] * scale_log2;
                if (diag && col > row_pos[r]) {
                    v = -INFINITY;
                }
                sc[j][e] = v;
                mx[r] = fmaxf(mx[r], v);
            }
        }
        float corr[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            float nm = fmaxf(m_r[r], mx[r]);
            corr[r] = m_r[r] == -INFINITY ? 0.0f : exp2f(m_r[r] - nm);
            m_r[r] = nm;
            l_r[r] *= corr[r];
        }
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            o[j][0] *= corr[0];
            o[j][1] *= corr[0];
            o[j][2] *= corr[1];
            o[j][3] *= corr[1];
        }
        /* P = exp2(s - m), row sums, then O += P V */
#pragma unroll
        for (int j = 0; j < FA_COLS / 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = e >> 1;
                float pv = m_r[r] == -INFINITY ? 0.0f : exp2f(sc[j][e] - m_r[r]);
                sc[j][e] = pv;
                l_r[r] += pv;
            }
        }
#pragma unroll
        for (int kk = 0; kk < FA_COLS / 16; kk++) {
            uint32_t a[4];
            a[0] = pack_bf16(sc[2 * kk][0], sc[2 * kk][1]);
            a[1] = pack_bf16(sc[2 * kk][2], sc[2 * kk][3]);
            a[2] = pack_bf16(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
            a[3] = pack_bf16(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
#pragma unroll
            for (int j = 0; j < D / 8; j += 2) {
                uint32_t b[4];
                ldsm_x4_t(b, &Vs[st][kk * 16 + ((lane / 8) % 2) * 8 + (lane % 8)]
                                 [j * 8 + (lane / 16) * 8]);
                mma_bf16(o[j], a, b[0], b[1]);
                mma_bf16(o[j + 1], a, b[2], b[3]);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l_r[r] += __shfl_xor_sync(0xffffffffu, l_r[r], 1);
        l_r[r] += __shfl_xor_sync(0xffffffffu, l_r[r], 2);
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int row = q0 + warp * 16 + g + 8 * r;
        if (row >= n) {
            continue;
        }
        float inv = 1.0f / l_r[r];
        float *op = out + (size_t)row * q_dim + (size_t)h * D;
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            float2 v = make_float2(o[j][2 * r] * inv, o[j][2 * r + 1] * inv);
            *(float2 *)(op + j * 8 + 2 * t) = v;
        }
    }
}

/* Attention of the n tokens [t0, t0 + n) of one sequence, at positions pos0 .. pos0 + n - 1
 * (its K/V for positions < pos0 + n already stored), through tensor-core GEMMs. */
static void attn_prefill(struct eng_cuda_backend *cb, const struct eng_attn_batch *b,
                         const float *q, float *out, int t0, int n, int seq, int pos0)
{
    int D = b->head_dim;
    int nkv = b->n_kv_heads;
    int G = b->n_heads / nkv;
    int kv_dim = nkv * D;
    int q_dim = b->n_heads * D;
    int L = pos0 + n;
    cudaStream_t s = cb->stream;
    if (cb->base.kv_dtype == ENG_DTYPE_BF16) {
        k_gather_kv<uint16_t><<<L, 128, 0, s>>>(*b, seq, cb->kc, cb->vc);
    } else {
        k_gather_kv<float><<<L, 128, 0, s>>>(*b, seq, cb->kc, cb->vc);
    }
    size_t nq = (size_t)n * q_dim;
    k_to16<<<ew_blocks(nq), 256, 0, s>>>(q + (size_t)t0 * q_dim, nq, 1, cb->xh);
    const char *env = getenv("HELIX_CUDA_FLASH");
    if ((D == 64 || D == 128) && !(env && strcmp(env, "0") == 0)) {
        dim3 grid((unsigned)((n + FA_ROWS - 1) / FA_ROWS), (unsigned)b->n_heads);
        float sl2 = rsqrtf((float)D) * 1.4426950408889634f;
        if (D == 128) {
            k_flash_prefill<128><<<grid, 128, FA_SMEM(128), s>>>(
                cb->xh, cb->kc, cb->vc, out + (size_t)t0 * q_dim, n, pos0, b->n_heads, nkv, sl2);
        } else {
            k_flash_prefill<64><<<grid, 128, FA_SMEM(64), s>>>(
                cb->xh, cb->kc, cb->vc, out + (size_t)t0 * q_dim, n, pos0, b->n_heads, nkv, sl2);
        }
        return;
    }
    int R = (int)(cb->s_cap / ((size_t)nkv * (size_t)L));
    R = R >= 64 ? R / 64 * 64 : R;
    float alpha = rsqrtf((float)D);
    float one = 1.0f, zero = 0.0f;
    for (int r0 = 0; r0 < n; r0 += R) {
        int rr = n - r0 < R ? n - r0 : R;
        int Le = pos0 + r0 + rr; /* causal: later columns are masked for every row */
        for (int g = 0; g < G; g++) {
            const uint16_t *Qg = cb->xh + (size_t)r0 * q_dim + (size_t)g * D;
            cublasStatus_t st = cublasGemmStridedBatchedEx(
                cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, Le, rr, D, &alpha, cb->kc, CUDA_R_16BF,
                kv_dim, D, Qg, CUDA_R_16BF, q_dim, (long long)G * D, &zero, cb->S, CUDA_R_32F, Le,
                (long long)rr * Le, nkv, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            note_blas(cb, st, "attention QK^T");
            dim3 sg((unsigned)rr, (unsigned)nkv);
            k_softmax_causal<<<sg, 256, 0, s>>>(cb->S, rr, Le, pos0 + r0, cb->P);
            float *O = out + (size_t)(t0 + r0) * q_dim + (size_t)g * D;
            st = cublasGemmStridedBatchedEx(cb->blas, CUBLAS_OP_N, CUBLAS_OP_N, D, rr, Le, &one,
                                            cb->vc, CUDA_R_16BF, kv_dim, D, cb->P, CUDA_R_16BF, Le,
                                            (long long)rr * Le, &zero, O, CUDA_R_32F, q_dim,
                                            (long long)G * D, nkv, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT);
            note_blas(cb, st, "attention PV");
        }
    }
}

static void cuda_attention(struct eng_backend *be, const struct eng_attn_batch *b, const float *q,
                           float *out)
{
    struct eng_cuda_backend *cb = CB(be);
    if (b->n_tokens <= 0) {
        return;
    }
    if (b->n_heads % b->n_kv_heads != 0) {
        note(cb, cudaErrorInvalidValue, "attention: n_heads % n_kv_heads != 0");
        return;
    }
    prof_begin(cb, "attention", 0);
    /* runs of one sequence's tokens: long ones (prefill) by GEMMs, the rest by the decode
     * kernels in contiguous ranges */
    int D = b->head_dim;
    bool gemm_ok = b->h_tok_seq && b->h_tok_pos && cb->S && D % 8 == 0;
    int dec0 = 0;
    int t = 0;
    while (t < b->n_tokens) {
        int e = t + 1;
        if (b->h_tok_seq) {
            while (e < b->n_tokens && b->h_tok_seq[e] == b->h_tok_seq[t]) {
                e++;
            }
        } else {
            e = b->n_tokens;
        }
        int L = gemm_ok ? b->h_tok_pos[e - 1] + 1 : 0;
        bool fits = gemm_ok && (size_t)L * b->n_kv_heads * (size_t)D * 2 <= cb->kvc_cap &&
                    cb->s_cap / ((size_t)b->n_kv_heads * L) >= 16;
        if (e - t >= PREFILL_MIN && fits) {
            attn_decode(cb, b, q, out, dec0, t - dec0);
            attn_prefill(cb, b, q, out, t, e - t, b->h_tok_seq[t], b->h_tok_pos[t]);
            dec0 = e;
        }
        t = e;
    }
    attn_decode(cb, b, q, out, dec0, b->n_tokens - dec0);
    LAUNCHED(cb, "attention");
    prof_end(cb);
}

/* ---- elementwise ----------------------------------------------------------------------------- */

__global__ void k_swiglu(const float *g, const float *u, size_t n, float *out)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float a = g[i];
        out[i] = a / (1.0f + expf(-a)) * u[i];
    }
}

__global__ void k_add(float *x, const float *y, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        x[i] += y[i];
    }
}

static void cuda_swiglu(struct eng_backend *be, const float *gate, const float *up, size_t n,
                        float *out)
{
    if (n) {
        struct eng_cuda_backend *cb = CB(be);
        prof_begin(cb, "swiglu", 0);
        k_swiglu<<<ew_blocks(n), 256, 0, cb->stream>>>(gate, up, n, out);
        LAUNCHED(cb, "swiglu");
        prof_end(cb);
    }
}

static void cuda_add(struct eng_backend *be, float *x, const float *y, size_t n)
{
    if (n) {
        struct eng_cuda_backend *cb = CB(be);
        prof_begin(cb, "add", 0);
        k_add<<<ew_blocks(n), 256, 0, cb->stream>>>(x, y, n);
        LAUNCHED(cb, "add");
        prof_end(cb);
    }
}

/* ---- graphs ---------------------------------------------------------------------------------- */

static int cuda_graph_begin(struct eng_backend *be, const void *owner, uint64_t key)
{
    struct eng_cuda_backend *cb = CB(be);
    const char *env = getenv("HELIX_CUDA_GRAPHS");
    if (cb->graphs_off || cb->prof_on || cb->capturing || cb->err != cudaSuccess ||
        (env && strcmp(env, "0") == 0)) {
        return -1;
    }
    for (int i = 0; i < cb->n_graphs; i++) {
        struct graph_rec *g = &cb->graphs[i];
        if (g->owner == owner && g->key == key) {
            g->used = ++cb->tick;
            note(cb, cudaGraphLaunch(g->exec, cb->stream), "graph launch");
            return 1;
        }
    }
    if (cudaStreamBeginCapture(cb->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        cudaGetLastError();
        cb->graphs_off = 1;
        return -1;
    }
    cb->capturing = 1;
    cb->cap_owner = owner;
    cb->cap_key = key;
    return 0;
}

static int cuda_graph_end(struct eng_backend *be)
{
    struct eng_cuda_backend *cb = CB(be);
    cudaGraph_t graph = NULL;
    cb->capturing = 0;
    cudaError_t e = cudaStreamEndCapture(cb->stream, &graph);
    cudaGraphExec_t exec = NULL;
    if (e == cudaSuccess && cb->err == cudaSuccess) {
        e = cudaGraphInstantiate(&exec, graph, 0);
    }
    if (graph) {
        cudaGraphDestroy(graph);
    }
    if (e != cudaSuccess || cb->err != cudaSuccess || !exec) {
        cudaGetLastError();
        if (exec) {
            cudaGraphExecDestroy(exec);
        }
        if (++cb->graph_failures >= 2) {
            cb->graphs_off = 1;
        }
        /* nothing ran: an op's error while recording is the recording's (a launch error
         * recurs, and is kept, when the step runs plainly) */
        cb->err = cudaSuccess;
        cb->graphs_off = 1;
        return HX_EDEVICE;
    }
    int slot = cb->n_graphs;
    if (slot == MAX_GRAPHS) { /* evict the least recently used */
        slot = 0;
        for (int i = 1; i < MAX_GRAPHS; i++) {
            if (cb->graphs[i].used < cb->graphs[slot].used) {
                slot = i;
            }
        }
        cudaGraphExecDestroy(cb->graphs[slot].exec);
    } else {
        cb->n_graphs++;
    }
    cb->graphs[slot] = (struct graph_rec){cb->cap_owner, cb->cap_key, exec, ++cb->tick};
    note(cb, cudaGraphLaunch(exec, cb->stream), "graph launch");
    return HX_OK;
}

static void cuda_graph_forget(struct eng_backend *be, const void *owner)
{
    struct eng_cuda_backend *cb = CB(be);
    for (int i = 0; i < cb->n_graphs;) {
        if (cb->graphs[i].owner == owner) {
            cudaGraphExecDestroy(cb->graphs[i].exec);
            cb->graphs[i] = cb->graphs[--cb->n_graphs];
        } else {
            i++;
        }
    }
}

/* ---- the backend ------------------------------------------------------------------------------
 */

static void cuda_destroy(struct eng_backend *be)
{
    struct eng_cuda_backend *cb = CB(be);
    if (cb->stream) {
        cudaStreamSynchronize(cb->stream);
    }
    for (int i = 0; i < cb->n_graphs; i++) {
        cudaGraphExecDestroy(cb->graphs[i].exec);
    }
    void *scratch[] = {cb->xh, cb->gu, cb->part, cb->cnt, cb->kc, cb->vc, cb->S, cb->P, cb->blas_ws};
    for (size_t i = 0; i < sizeof(scratch) / sizeof(scratch[0]); i++) {
        dev_free(cb, scratch[i]);
    }
    if (cb->blas) {
        cublasDestroy(cb->blas);
    }
    if (cb->ev_pool) {
        for (int i = 0; i < 2 * MAX_PROF; i++) {
            if (cb->ev_pool[i]) {
                cudaEventDestroy(cb->ev_pool[i]);
            }
        }
    }
    free(cb->ev_pool);
    free(cb->prof);
    free(cb->allocs);
    if (cb->stream) {
        cudaStreamDestroy(cb->stream);
    }
    free(cb);
}

extern "C" int eng_cuda_backend_error(struct eng_backend *be, struct hx_diag *diag);

static const struct eng_backend_ops cuda_ops = {
    .name = "cuda",
    .destroy = cuda_destroy,
    .buf_alloc = cuda_buf_alloc,
    .buf_free = cuda_buf_free,
    .weight_upload = cuda_weight_upload,
    .weight_release = cuda_weight_release,
    .to_device = cuda_to_device,
    .to_host = cuda_to_host,
    .copy = cuda_copy,
    .sync = cuda_sync,
    .reserve = cuda_reserve,
    .embed = cuda_embed,
    .rmsnorm = cuda_rmsnorm,
    .matmul = cuda_matmul,
    .rope = cuda_rope,
    .kv_store = cuda_kv_store,
    .attention = cuda_attention,
    .swiglu = cuda_swiglu,
    .add = cuda_add,
    .error = eng_cuda_backend_error,
    .reserve_attn = cuda_reserve_attn,
    .weight_upload_cat = cuda_weight_upload_cat,
    .matmul_qkv = cuda_matmul_qkv,
    .matmul_swiglu = cuda_matmul_swiglu,
    .matmul_add = cuda_matmul_add,
    .rope_kv_store = cuda_rope_kv_store,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_forget = cuda_graph_forget,
};

extern "C" int eng_cuda_device_count(int *n, struct hx_diag *diag)
{
    *n = 0;
    cudaError_t e = cudaGetDeviceCount(n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *n = 0;
        return hx_diag_set(diag, HX_EDEVICE,
                           "cuda: no usable GPU on this machine (the CUDA runtime says: %s, %s)",
                           cudaGetErrorString(e), cudaGetErrorName(e));
    }
    return HX_OK;
}

extern "C" int eng_cuda_backend_new(int device, struct eng_backend **out, struct hx_diag *diag)
{
    *out = NULL;
    int n = 0;
    int rc = eng_cuda_device_count(&n, diag);
    if (rc != HX_OK) {
        return rc;
    }
    if (n == 0) {
        return hx_diag_set(diag, HX_EDEVICE, "cuda: no GPU found");
    }
    if (device < 0 || device >= n) {
        return hx_diag_set(diag, HX_EINVAL, "cuda:%d: no such device (%d GPU%s present)", device, n,
                           n == 1 ? "" : "s");
    }
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) {
        return hx_diag_set(diag, HX_EDEVICE, "cuda:%d: %s", device, cudaGetErrorString(e));
    }
    struct eng_cuda_backend *cb = (struct eng_cuda_backend *)calloc(1, sizeof(*cb));
    if (!cb) {
        return hx_diag_set(diag, HX_ENOMEM, "cuda backend: out of host memory");
    }
    cb->base.ops = &cuda_ops;
    cb->base.kv_dtype = ENG_DTYPE_BF16;
    cb->device = device;
    e = cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        free(cb);
        return hx_diag_set(diag, HX_EDEVICE, "cuda:%d: cannot create a stream: %s", device,
                           cudaGetErrorString(e));
    }
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, device) == cudaSuccess) {
        snprintf(cb->name, sizeof(cb->name), "%s", p.name);
        cb->sms = p.multiProcessorCount;
        const char *env = getenv("HELIX_CUDA_PDL");
        cb->pdl = p.major >= 9 && !(env && strcmp(env, "0") == 0);
    }
    cb->sms = cb->sms > 0 ? cb->sms : 32;
    cublasStatus_t bs = cublasCreate(&cb->blas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        cb->blas = NULL;
        cuda_destroy(&cb->base);
        return hx_diag_set(diag, HX_EDEVICE, "cuda:%d: cuBLAS did not start (status %d)", device,
                           (int)bs);
    }
    cublasSetStream(cb->blas, cb->stream);
    note(cb,
         cudaFuncSetAttribute(k_flash_prefill<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              (int)FA_SMEM(128)),
         "flash attention smem");
    note(cb,
         cudaFuncSetAttribute(k_flash_prefill<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              (int)FA_SMEM(64)),
         "flash attention smem");
    if (dev_alloc(cb, &cb->blas_ws, BLAS_WS_BYTES) != cudaSuccess) {
        rc = oom(cb, BLAS_WS_BYTES, "the cuBLAS workspace", diag);
        cuda_destroy(&cb->base);
        return rc;
    }
    cublasSetWorkspace(cb->blas, cb->blas_ws, BLAS_WS_BYTES);
    *out = &cb->base;
    return HX_OK;
}

extern "C" int eng_cuda_backend_error(struct eng_backend *be, struct hx_diag *diag)
{
    struct eng_cuda_backend *cb = CB(be);
    if (cb->err == cudaSuccess) {
        return HX_OK;
    }
    return hx_diag_set(diag, HX_EDEVICE, "cuda:%d: %s failed: %s", cb->device, cb->err_where,
                       cudaGetErrorString(cb->err));
}

extern "C" const char *eng_cuda_device_name(const struct eng_backend *be)
{
    return ((const struct eng_cuda_backend *)be)->name;
}

extern "C" size_t eng_cuda_peak_bytes(const struct eng_backend *be)
{
    return ((const struct eng_cuda_backend *)be)->peak_bytes;
}

extern "C" void eng_cuda_profile(struct eng_backend *be, int on)
{
    struct eng_cuda_backend *cb = CB(be);
    if (on && !cb->prof) {
        cb->prof = (struct prof_rec *)calloc(MAX_PROF, sizeof(*cb->prof));
        cb->ev_pool = (cudaEvent_t *)calloc(2 * MAX_PROF, sizeof(cudaEvent_t));
        if (!cb->prof || !cb->ev_pool) {
            free(cb->prof);
            free(cb->ev_pool);
            cb->prof = NULL;
            cb->ev_pool = NULL;
            return;
        }
    }
    cb->prof_on = on && cb->prof;
}

extern "C" void eng_cuda_profile_report(struct eng_backend *be, void *fp)
{
    struct eng_cuda_backend *cb = CB(be);
    FILE *f = (FILE *)fp;
    cudaStreamSynchronize(cb->stream);
    struct agg {
        const char *name;
        int calls;
        double ms;
        double bytes;
    } ag[32];
    int n = 0;
    double total = 0.0;
    for (int i = 0; i < cb->n_prof; i++) {
        float ms = 0.0f;
        cudaEventElapsedTime(&ms, cb->prof[i].a, cb->prof[i].b);
        int j = 0;
        while (j < n && strcmp(ag[j].name, cb->prof[i].name) != 0) {
            j++;
        }
        if (j == n) {
            if (n == 32) {
                continue;
            }
            ag[n++] = (struct agg){cb->prof[i].name, 0, 0.0, 0.0};
        }
        ag[j].calls++;
        ag[j].ms += ms;
        ag[j].bytes += cb->prof[i].bytes;
        total += ms;
    }
    fprintf(f, "# %-16s %7s %10s %7s %12s\n", "op", "calls", "ms", "share", "weights GB/s");
    for (int j = 0; j < n; j++) {
        fprintf(f, "# %-16s %7d %10.3f %6.1f%% %12.0f\n", ag[j].name, ag[j].calls, ag[j].ms,
                total > 0 ? 100.0 * ag[j].ms / total : 0.0,
                ag[j].ms > 0 ? ag[j].bytes / (ag[j].ms * 1e-3) / 1e9 : 0.0);
    }
    fprintf(f, "# %-16s %7s %10.3f (sum of op times, events between ops included)\n", "total", "",
            total);
    cb->n_prof = 0;
    cb->n_ev = 0;
}

/* Sum n floats (vectorised, grid-stride) into one value per block: a pure read of the buffer. */
__global__ void k_read(const float4 *p, size_t n4, float *sink)
{
    float acc = 0.0f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4;
         i += (size_t)gridDim.x * blockDim.x) {
        float4 v = p[i];
        acc += v.x + v.y + v.z + v.w;
    }
    acc = warp_sum(acc);
    if ((threadIdx.x & 31) == 0 && acc == 12345.678f) {
        sink[0] = acc; /* never true on the data below; keeps the loads */
    }
}

__global__ void k_fill(float *p, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        p[i] = (float)((i * 2654435761u) & 1023) * (1.0f / 1024.0f);
    }
}

extern "C" double eng_cuda_read_bandwidth(struct eng_backend *be, size_t bytes, int reps)
{
    struct eng_cuda_backend *cb = CB(be);
    float *buf = NULL;
    if (cudaMalloc(&buf, bytes + 16) != cudaSuccess) {
        cudaGetLastError();
        return 0.0;
    }
    k_fill<<<cb->sms * 8, 256, 0, cb->stream>>>(buf, bytes / 4); /* not zeros */
    int sms = cb->sms;
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    size_t n4 = bytes / 16;
    double best = 0.0;
    for (int r = 0; r < reps + 1; r++) {
        cudaEventRecord(a, cb->stream);
        k_read<<<sms * 8, 512, 0, cb->stream>>>((const float4 *)buf, n4, buf + bytes / 4);
        cudaEventRecord(b, cb->stream);
        cudaEventSynchronize(b);
        float ms = 0.0f;
        cudaEventElapsedTime(&ms, a, b);
        double bw = (double)(n4 * 16) / ((double)ms * 1e-3);
        if (r > 0 && bw > best) { /* the first run is the warm-up */
            best = bw;
        }
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    cudaFree(buf);
    return best;
}
