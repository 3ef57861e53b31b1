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
#include "engine/cuda/cuda_int.cuh"

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

void prof_begin(struct eng_cuda_backend *cb, const char *name, double bytes)
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

void prof_end(struct eng_cuda_backend *cb)
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

static void cuda_mem_info(struct eng_backend *be, size_t *free_b, size_t *total_b)
{
    (void)be;
    *free_b = 0;
    *total_b = 0;
    if (cudaMemGetInfo(free_b, total_b) != cudaSuccess) {
        cudaGetLastError();
    }
}

static void cuda_buf_free(struct eng_backend *be, void *p)
{
    dev_free(CB(be), p);
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
        rc =
            grow(cb, (void **)&cb->gu, &cb->gu_cap, 2 * n * sizeof(float), "gate/up scratch", diag);
    }
    return rc;
}

static int cuda_reserve_attn(struct eng_backend *be, int max_tokens, int max_ctx, int n_heads,
                             int n_kv_heads, int head_dim, struct hx_diag *diag)
{
    struct eng_cuda_backend *cb = CB(be);
    (void)max_tokens; /* splits are bounded by blocks, not tokens */
    /* split partials: splits are used only while (tokens x KV heads) < the target, so at most
     * target x splits... bounded by target blocks x their query heads */
    int g = n_heads / (n_kv_heads > 0 ? n_kv_heads : 1);
    size_t part = (size_t)ATT_TARGET_BLOCKS(cb) * 2 * (size_t)(g > 8 ? g : 8) *
                  (size_t)(head_dim + 2) * sizeof(float);
    int rc = grow(cb, (void **)&cb->part, &cb->part_cap, part, "attention scratch", diag);
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

/* RMSNorm of rows of dim % 4 == 0 floats, dim <= 256 x 4 x RMS_PER: 256 threads, each holding
 * up to RMS_PER float4 of x in registers (one read of x), the norm weights loaded before
 * waiting on the previous kernel; the same products as k_rmsnorm. */
#define RMS_PER 8
template <int DT>
__global__ void __launch_bounds__(256)
    k_rmsnorm4(const float *x, const void *w, int dim, float eps, float *out)
{
    pdl_trigger();
    float wv[RMS_PER][4];
#pragma unroll
    for (int r = 0; r < RMS_PER; r++) {
        int j = (threadIdx.x + r * 256) * 4;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            wv[r][e] = j < dim ? wload<DT>(w, (size_t)j + e) : 0.0f;
        }
    }
    pdl_wait();
    const float4 *xi = (const float4 *)(x + (size_t)blockIdx.x * dim);
    float4 xv[RMS_PER];
    float ss = 0.0f;
#pragma unroll
    for (int r = 0; r < RMS_PER; r++) {
        int j = (threadIdx.x + r * 256) * 4;
        xv[r] = j < dim ? xi[j / 4] : make_float4(0.f, 0.f, 0.f, 0.f);
        ss += xv[r].x * xv[r].x + xv[r].y * xv[r].y + xv[r].z * xv[r].z + xv[r].w * xv[r].w;
    }
    __shared__ float part[8];
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) {
        part[threadIdx.x >> 5] = ss;
    }
    __syncthreads();
    float tot = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        tot += part[i];
    }
    float scale = rsqrtf(tot / (float)dim + eps);
    float4 *oi = (float4 *)(out + (size_t)blockIdx.x * dim);
#pragma unroll
    for (int r = 0; r < RMS_PER; r++) {
        int j = (threadIdx.x + r * 256) * 4;
        if (j < dim) {
            oi[j / 4] = make_float4(wv[r][0] * (xv[r].x * scale), wv[r][1] * (xv[r].y * scale),
                                    wv[r][2] * (xv[r].z * scale), wv[r][3] * (xv[r].w * scale));
        }
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
    bool fast = w->cols % 4 == 0 && w->cols <= 256 * 4 * RMS_PER && ((uintptr_t)x % 16) == 0 &&
                ((uintptr_t)out % 16) == 0;
    switch (w->dtype) {
    case ENG_DTYPE_BF16:
        if (fast) {
            launch(cb, k_rmsnorm4<ENG_DTYPE_BF16>, dim3(n), dim3(256), 0, x, w->data, w->cols, eps,
                   out);
        } else {
            launch(cb, k_rmsnorm<ENG_DTYPE_BF16>, dim3(n), dim3(512), 0, x, w->data, w->cols, eps,
                   out);
        }
        break;
    case ENG_DTYPE_F16:
        if (fast) {
            launch(cb, k_rmsnorm4<ENG_DTYPE_F16>, dim3(n), dim3(256), 0, x, w->data, w->cols, eps,
                   out);
        } else {
            launch(cb, k_rmsnorm<ENG_DTYPE_F16>, dim3(n), dim3(512), 0, x, w->data, w->cols, eps,
                   out);
        }
        break;
    default:
        if (fast) {
            launch(cb, k_rmsnorm4<ENG_DTYPE_F32>, dim3(n), dim3(256), 0, x, w->data, w->cols, eps,
                   out);
        } else {
            launch(cb, k_rmsnorm<ENG_DTYPE_F32>, dim3(n), dim3(512), 0, x, w->data, w->cols, eps,
                   out);
        }
        break;
    }
    LAUNCHED(cb, "rmsnorm");
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
    void *scratch[] = {cb->xh, cb->gu, cb->part, cb->kc, cb->vc, cb->S, cb->P, cb->blas_ws};
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
    .kv_dtypes = 1u << ENG_DTYPE_F32 | 1u << ENG_DTYPE_BF16,
    .weight_dtypes =
        1u << ENG_DTYPE_F32 | 1u << ENG_DTYPE_F16 | 1u << ENG_DTYPE_BF16, /* no block formats yet */
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
    .mem_info = cuda_mem_info,
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
    cuda_attention_init(cb);
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
