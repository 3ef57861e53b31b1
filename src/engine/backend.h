/*
 * backend.h - the backend seam (ggml's ggml_backend_i shape): a vtable of buffer functions and
 * a fixed set of transformer ops. forward.c is written once against this table; the CPU
 * backend (cpu/backend_cpu.c) is the readable reference and the oracle for the CUDA one.
 *
 * Every float/int pointer an op receives is backend memory (from buf_alloc, or a weight from
 * weight_upload). Host data reaches it only through to_device / to_host. Ops are queued in
 * order; sync waits for them (the CPU backend runs each op to completion). No CUDA types here.
 */
#ifndef HX_ENGINE_BACKEND_H
#define HX_ENGINE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct hx_diag;

/* A weight matrix [rows x cols] (row-major, as stored by PyTorch: out_features x in_features),
 * or a vector (rows = 1). data is backend memory, in the tensor's dtype: as on disk, or a
 * block format (Q8_0, Q4_0: each row cols / 32 blocks, eng_dtype_row_bytes) quantized at load. */
struct eng_weight {
    enum eng_dtype dtype;
    int rows;
    int cols;
    const void *data;
};

/*
 * The paged KV cache of one layer and where a step's tokens go in it. Token t belongs to
 * step sequence tok_seq[t], sits at position tok_pos[t]; sequence s's blocks are
 * block_tables[s * max_blocks + i] (block i holds positions [16 i, 16 i + 16)). A block
 * holds ENG_KV_BLOCK x n_kv_heads x head_dim elements of the backend's kv_dtype in k_cache
 * and in v_cache. A step's tokens come sequence by sequence (tok_seq is non-decreasing);
 * h_tok_seq / h_tok_pos are host copies of tok_seq / tok_pos, so a backend can plan launches
 * (prefill runs, decode ranges) without reading device memory.
 */
struct eng_attn_batch {
    int n_tokens;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int max_blocks;
    const int32_t *tok_pos;      /* [n_tokens], backend memory */
    const int32_t *tok_seq;      /* [n_tokens], backend memory */
    const int32_t *block_tables; /* [n_seqs x max_blocks], backend memory */
    void *k_cache;               /* this layer's K blocks */
    void *v_cache;               /* this layer's V blocks */
    const int32_t *h_tok_pos;    /* [n_tokens], host memory */
    const int32_t *h_tok_seq;    /* [n_tokens], host memory */
};

struct eng_backend;

struct eng_backend_ops {
    const char *name;
    /* The KV cache element types this backend can keep: bit (1 << enum eng_dtype). */
    unsigned kv_dtypes;
    /* The weight element types its ops compute with (same bits); the loader refuses others
     * naming the tensor, so an op never meets a dtype it lacks. */
    unsigned weight_dtypes;
    void (*destroy)(struct eng_backend *be);

    /* ---- buffers ---- */
    /* Allocate n bytes of backend memory (zeroed). 0 or HX_ENOMEM. */
    int (*buf_alloc)(struct eng_backend *be, size_t n, void **out);
    void (*buf_free)(struct eng_backend *be, void *p);
    /* Make a host weight (mmap'd file bytes, borrowed and kept mapped by the model) usable
     * by ops. The CPU backend points at the mapping (zero copy); a GPU uploads. */
    int (*weight_upload)(struct eng_backend *be, const struct eng_weight *host,
                         struct eng_weight *out, struct hx_diag *diag);
    void (*weight_release)(struct eng_backend *be, struct eng_weight *w);
    void (*to_device)(struct eng_backend *be, void *dst, const void *src, size_t n);
    void (*to_host)(struct eng_backend *be, void *dst, const void *src, size_t n);
    void (*copy)(struct eng_backend *be, void *dst, const void *src, size_t n);
    void (*sync)(struct eng_backend *be);
    /* Optional (NULL: none needed): size per-op scratch for at most max_rows input rows and
     * max_cols columns, before serving. 0 or HX_ENOMEM. */
    int (*reserve)(struct eng_backend *be, int max_rows, int max_cols, struct hx_diag *diag);

    /* ---- ops ---- */
    /* out[i] = table row ids[i] as float32, i < n; ids in [0, table->rows). */
    void (*embed)(struct eng_backend *be, const struct eng_weight *table, const int32_t *ids, int n,
                  float *out);
    /* out[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w, for n rows of w->cols floats. */
    void (*rmsnorm)(struct eng_backend *be, const float *x, const struct eng_weight *w, int n,
                    float eps, float *out);
    /* out[m x w->rows] = x[m x w->cols] W^T (+ bias, a vector of w->rows; may be NULL). */
    void (*matmul)(struct eng_backend *be, const float *x, int m, const struct eng_weight *w,
                   const struct eng_weight *bias, float *out);
    /* Rotate x [n x n_heads x head_dim] in place by position pos[i] (rotate-half convention of
     * Hugging Face LLaMA): pairs (j, j + head_dim/2), angle pos * theta^(-2j/head_dim). */
    void (*rope)(struct eng_backend *be, float *x, int n, int n_heads, int head_dim,
                 const int32_t *pos, double theta);
    /* Write k, v [n_tokens x n_kv_heads x head_dim] into the cache slots of b. */
    void (*kv_store)(struct eng_backend *be, const struct eng_attn_batch *b, const float *k,
                     const float *v);
    /* Causal GQA attention: out[t, h] = softmax(q[t,h] . K[0..pos_t] / sqrt(d)) V over the
     * token's sequence in the cache; q, out [n_tokens x n_heads x head_dim]. */
    void (*attention)(struct eng_backend *be, const struct eng_attn_batch *b, const float *q,
                      float *out);
    /* out[i] = silu(gate[i]) * up[i], i < n. */
    void (*swiglu)(struct eng_backend *be, const float *gate, const float *up, size_t n,
                   float *out);
    /* x[i] += y[i], i < n. */
    void (*add)(struct eng_backend *be, float *x, const float *y, size_t n);

    /* Optional (NULL: ops cannot fail): the first error an op met since the backend was made
     * (a GPU's launches are asynchronous, so errors surface late and stay). 0 or an HX_E*. */
    int (*error)(struct eng_backend *be, struct hx_diag *diag);

    /* Optional: free and total bytes of the backend's memory (for out-of-memory messages). */
    void (*mem_info)(struct eng_backend *be, size_t *free_b, size_t *total_b);
    /* Optional: size attention scratch for steps of at most max_tokens tokens over contexts
     * of at most max_ctx positions, before serving. 0 or HX_ENOMEM. */
    int (*reserve_attn)(struct eng_backend *be, int max_tokens, int max_ctx, int n_heads,
                        int n_kv_heads, int head_dim, struct hx_diag *diag);

    /* ---- optional fused ops (NULL: forward.c composes them from the ops above) ---- */
    /* Upload the row concatenation of n host weights of one dtype and one column count (or of
     * n vectors) as one weight: [wq; wk; wv], [wg; wu]. */
    int (*weight_upload_cat)(struct eng_backend *be, const struct eng_weight *parts, int n,
                             struct eng_weight *out, struct hx_diag *diag);
    /* q | k | v = x Wqkv^T (+ bqkv), Wqkv = [wq; wk; wv] with q_rows + 2 kv_rows rows: the
     * first q_rows output columns go to q [m x q_rows], the next kv_rows to k, the last to v. */
    void (*matmul_qkv)(struct eng_backend *be, const float *x, int m, const struct eng_weight *wqkv,
                       const struct eng_weight *bqkv, int q_rows, int kv_rows, float *q, float *k,
                       float *v);
    /* out[m x F] = silu(x Wg^T) * (x Wu^T), Wgu = [wg; wu] with 2F rows. */
    void (*matmul_swiglu)(struct eng_backend *be, const float *x, int m,
                          const struct eng_weight *wgu, float *out);
    /* acc[m x w->rows] += x[m x w->cols] W^T (the residual add fused). */
    void (*matmul_add)(struct eng_backend *be, const float *x, int m, const struct eng_weight *w,
                       float *acc);
    /* rope on q and k (as rope), then kv_store of k and v (as kv_store), in one op. */
    void (*rope_kv_store)(struct eng_backend *be, const struct eng_attn_batch *b, float *q,
                          float *k, const float *v, double theta);
    /* Record the ops of a step once and replay them (CUDA graphs). graph_begin: 1 = a
     * recording under key exists and was launched (issue no ops), 0 = recording now (issue
     * the ops, then graph_end), -1 = not now (issue the ops). graph_end: HX_OK once the
     * recording is made and launched; an error = nothing ran, issue the ops again.
     * graph_forget drops every recording made for owner (its buffers are about to go). */
    int (*graph_begin)(struct eng_backend *be, const void *owner, uint64_t key);
    int (*graph_end)(struct eng_backend *be);
    void (*graph_forget)(struct eng_backend *be, const void *owner);
};

/* Every backend starts with this header (its private state follows). kv_dtype: the element
 * type of KV caches made from now on (ENG_DTYPE_F32 or ENG_DTYPE_BF16; eng_backend_set_kv_dtype).
 */
struct eng_backend {
    const struct eng_backend_ops *ops;
    enum eng_dtype kv_dtype;
};

#endif
