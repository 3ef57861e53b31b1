/*
 * cuda_attention.cu - the CUDA backend's RoPE, KV cache stores and attention: split-context
 * GQA decode attention over the paged cache (bf16 or f32), flash attention on tensor cores for
 * prefill runs (head_dim 64/128), and a cuBLAS Q K^T / softmax / P V path for other widths.
 */
#include "engine/cuda/cuda_int.cuh"

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
__global__ void k_rope(float *x, int n, int n_heads, int head_dim, const int32_t *pos, double theta)
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

void cuda_rope(struct eng_backend *be, float *x, int n, int n_heads, int head_dim,
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

template <typename KV>
__global__ void k_kv_store(struct eng_attn_batch b, const float *k, const float *v)
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

void cuda_kv_store(struct eng_backend *be, const struct eng_attn_batch *b, const float *k,
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

void cuda_rope_kv_store(struct eng_backend *be, const struct eng_attn_batch *b, float *q, float *k,
                        const float *v, double theta)
{
    if (b->n_tokens <= 0) {
        return;
    }
    struct eng_cuda_backend *cb = CB(be);
    prof_begin(cb, "rope_kv_store", 0);
    size_t pairs = (size_t)b->n_tokens * (b->head_dim / 2);
    /* few tokens (decode): a thread per pair and head, for latency; many: cos/sin shared by
     * ROPE_HG heads' worth of threads */
    unsigned hg = pairs < 16384 ? (unsigned)(b->n_heads + b->n_kv_heads) : ROPE_HG;
    dim3 grid(pair_blocks(pairs), hg);
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
                  int n_hgroups)
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
}

/* out[t, h] from the n_splits partials of (t, h): one block per (token, head). */
__global__ void k_attn_combine(const float *part, int n_heads, int D, int n_splits, int t0,
                               float *out)
{
    pdl_trigger();
    pdl_wait();
    int tl = blockIdx.x / n_heads;
    int h = blockIdx.x % n_heads;
    const float *pp = part + ((size_t)tl * n_heads + h) * n_splits * (D + 2);
    float M = -INFINITY;
    for (int s = 0; s < n_splits; s++) {
        M = fmaxf(M, pp[(size_t)s * (D + 2)]);
    }
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float L = 0.0f, A = 0.0f;
        for (int s = 0; s < n_splits; s++) {
            const float *q = pp + (size_t)s * (D + 2);
            float f = q[0] == -INFINITY ? 0.0f : __expf(q[0] - M);
            L += q[1] * f;
            A += q[2 + i] * f;
        }
        out[((size_t)(t0 + tl) * n_heads + h) * D + i] = A / L;
    }
}

/* The general attention (head_dim not a multiple of 8, or > 256): one block per (token,
 * head), a chunk of 64 positions at a time with an online softmax. */

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
    float *qs = sh;              /* [d] */
    float *ps = sh + d;          /* [ATT_CHUNK] */
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
    launch(cb, k_attn_decode<KV, LP, GM>, grid, dim3(ATT_WARPS * 32), 0, *b, q, out, cb->part, t0,
           n_hgroups);
    if (splits > 1) {
        launch(cb, k_attn_combine, dim3(nt * b->n_heads), dim3(128), 0, (const float *)cb->part,
               b->n_heads, b->head_dim, splits, t0, out);
    }
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
static void attn_decode(struct eng_cuda_backend *cb, const struct eng_attn_batch *b, const float *q,
                        float *out, int t0, int nt)
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
    Tile *Ks = (Tile *)fa_sm;     /* [2] */
    Tile *Vs = (Tile *)fa_sm + 2; /* [2] */
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
                ldsm_x4(
                    b,
                    &Ks[st][j * 8 + (lane / 16) * 8 + (lane % 8)][kk * 16 + ((lane / 8) % 2) * 8]);
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
                ldsm_x4_t(
                    b,
                    &Vs[st][kk * 16 + ((lane / 8) % 2) * 8 + (lane % 8)][j * 8 + (lane / 16) * 8]);
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
                cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, Le, rr, D, &alpha, cb->kc, CUDA_R_16BF, kv_dim,
                D, Qg, CUDA_R_16BF, q_dim, (long long)G * D, &zero, cb->S, CUDA_R_32F, Le,
                (long long)rr * Le, nkv, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            note_blas(cb, st, "attention QK^T");
            dim3 sg((unsigned)rr, (unsigned)nkv);
            k_softmax_causal<<<sg, 256, 0, s>>>(cb->S, rr, Le, pos0 + r0, cb->P);
            float *O = out + (size_t)(t0 + r0) * q_dim + (size_t)g * D;
            st = cublasGemmStridedBatchedEx(
                cb->blas, CUBLAS_OP_N, CUBLAS_OP_N, D, rr, Le, &one, cb->vc, CUDA_R_16BF, kv_dim, D,
                cb->P, CUDA_R_16BF, Le, (long long)rr * Le, &zero, O, CUDA_R_32F, q_dim,
                (long long)G * D, nkv, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            note_blas(cb, st, "attention PV");
        }
    }
}

void cuda_attention(struct eng_backend *be, const struct eng_attn_batch *b, const float *q,
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

void cuda_attention_init(struct eng_cuda_backend *cb)
{
    note(cb,
         cudaFuncSetAttribute(k_flash_prefill<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              (int)FA_SMEM(128)),
         "flash attention smem");
    note(cb,
         cudaFuncSetAttribute(k_flash_prefill<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              (int)FA_SMEM(64)),
         "flash attention smem");
}
