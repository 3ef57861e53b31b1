/*
 * forward.c - the engine: paged KV cache, sequence table, and the forward pass of a layer
 * range over a batch that mixes prefill chunks and decodes. Written once against the backend
 * vtable (backend.h); it never touches tensor data itself.
 *
 * Invariants: every buffer (KV blocks, activations for max_tokens tokens, metadata) is
 * allocated in eng_engine_new; eng_engine_step validates the whole batch and reserves its KV
 * blocks before it changes anything, so a failed step leaves every sequence as it was.
 * The batch is flattened: the T tokens of all sequences form one [T x hidden] matrix, so the
 * projections of every sequence share one matmul per weight (what makes batched decode pay);
 * only attention looks at sequences, through per-token (sequence, position) and block tables.
 */
#include "engine/engine_int.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"

#define DEFAULT_MAX_SEQS 16
#define DEFAULT_MAX_TOKENS 256
#define DEFAULT_KV_CAP ((size_t)1 << 30)

struct seq_slot {
    int64_t id;
    int used;
    int len;      /* tokens cached */
    int n_blocks; /* blocks held */
    int32_t *blocks;
};

struct eng_engine {
    struct eng_model *m;
    struct eng_backend *be;
    struct eng_engine_opts opt;
    int n_local;
    int first;
    int last;
    int q_dim;
    int kv_dim;
    int max_blocks; /* per sequence */
    int n_blocks;   /* in the cache */
    int n_free;
    int32_t *free_blocks;  /* stack of free block ids */
    size_t kv_esize;       /* bytes per KV element: the backend's kv_dtype */
    size_t layer_kv_bytes; /* one layer's K (or V) blocks */
    char *kv;              /* [n_local][K, V][n_blocks x 16 x kv_dim], backend memory */
    struct seq_slot *slots;
    int *step_slot; /* [max_seqs]: slot of each step sequence */
    /* host staging of the step's metadata */
    int32_t *h_pos, *h_seq, *h_tables;
    /* backend memory */
    int32_t *d_pos, *d_seq, *d_tables, *d_ids;
    float *x, *xn, *q, *k, *v, *att, *o, *g, *u, *logits;
    float *host_logits; /* [vocab], for eng_generate */
};

static int engine_alloc(struct eng_engine *e, size_t n, void *out, struct hx_diag *diag)
{
    void **p = out;
    int rc = e->be->ops->buf_alloc(e->be, n ? n : 1, p);
    if (rc != HX_OK) {
        if (e->be->ops->mem_info) {
            size_t free_b = 0, total_b = 0;
            e->be->ops->mem_info(e->be, &free_b, &total_b);
            return hx_diag_set(diag, HX_ENOMEM,
                               "engine: cannot allocate %zu bytes of %s memory (%zu of %zu bytes "
                               "free)",
                               n, e->be->ops->name, free_b, total_b);
        }
        return hx_diag_set(diag, HX_ENOMEM, "engine: cannot allocate %zu bytes of %s memory", n,
                           e->be->ops->name);
    }
    return HX_OK;
}

int eng_engine_new(struct eng_model *m, const struct eng_engine_opts *opts, struct eng_engine **out,
                   struct hx_diag *diag)
{
    *out = NULL;
    const struct eng_config *c = &m->cfg;
    struct eng_engine *e = xcalloc(1, sizeof(*e));
    e->m = m;
    e->be = m->be;
    if (opts) {
        e->opt = *opts;
    }
    if (e->opt.max_seqs <= 0) {
        e->opt.max_seqs = DEFAULT_MAX_SEQS;
    }
    if (e->opt.max_tokens <= 0) {
        e->opt.max_tokens = DEFAULT_MAX_TOKENS;
    }
    if (e->opt.max_ctx <= 0) {
        e->opt.max_ctx = c->max_pos;
    }
    e->n_local = m->end - m->begin;
    e->first = m->begin == 0;
    e->last = m->end == c->n_layers;
    e->q_dim = c->n_heads * c->head_dim;
    e->kv_dim = c->n_kv_heads * c->head_dim;
    e->max_blocks = (e->opt.max_ctx + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    e->kv_esize = eng_dtype_size(e->be->kv_dtype);
    size_t block_bytes = eng_kv_block_bytes(e);
    if (e->opt.kv_bytes == 0) {
        e->opt.kv_bytes = (size_t)e->opt.max_seqs * (size_t)e->max_blocks * block_bytes;
        if (e->opt.kv_bytes > DEFAULT_KV_CAP) {
            e->opt.kv_bytes = DEFAULT_KV_CAP;
        }
    }
    int rc;
    if (e->opt.max_seqs > 1 << 16 || e->opt.max_tokens > 1 << 20 || e->opt.max_ctx > 1 << 24) {
        rc = hx_diag_set(diag, HX_EINVAL, "engine: options out of range");
        goto fail;
    }
    size_t n_blocks = e->opt.kv_bytes / block_bytes;
    if (n_blocks == 0) {
        rc = hx_diag_set(diag, HX_EINVAL,
                         "engine: KV budget of %zu bytes is below one block (%zu bytes)",
                         e->opt.kv_bytes, block_bytes);
        goto fail;
    }
    if (n_blocks > (size_t)1 << 24) {
        n_blocks = (size_t)1 << 24;
    }
    e->n_blocks = (int)n_blocks;
    e->n_free = e->n_blocks;
    e->free_blocks = xmalloc(n_blocks * sizeof(int32_t));
    for (int i = 0; i < e->n_blocks; i++) {
        e->free_blocks[i] = e->n_blocks - 1 - i; /* pop order 0, 1, 2, ... */
    }
    e->layer_kv_bytes = n_blocks * ENG_KV_BLOCK * (size_t)e->kv_dim * e->kv_esize;
    size_t ms = (size_t)e->opt.max_seqs;
    size_t mb = (size_t)e->max_blocks;
    e->slots = xcalloc(ms, sizeof(*e->slots));
    for (size_t i = 0; i < ms; i++) {
        e->slots[i].blocks = xcalloc(mb, sizeof(int32_t));
    }
    e->step_slot = xcalloc(ms, sizeof(int));
    size_t T = (size_t)e->opt.max_tokens;
    e->h_pos = xcalloc(T, sizeof(int32_t));
    e->h_seq = xcalloc(T, sizeof(int32_t));
    e->h_tables = xcalloc(ms * mb, sizeof(int32_t));
    size_t f = sizeof(float);
    size_t hid = (size_t)c->hidden;
    if ((rc = engine_alloc(e, (size_t)e->n_local * 2 * e->layer_kv_bytes, &e->kv, diag)) ||
        (rc = engine_alloc(e, T * sizeof(int32_t), &e->d_pos, diag)) ||
        (rc = engine_alloc(e, T * sizeof(int32_t), &e->d_seq, diag)) ||
        (rc = engine_alloc(e, T * sizeof(int32_t), &e->d_ids, diag)) ||
        (rc = engine_alloc(e, ms * mb * sizeof(int32_t), &e->d_tables, diag)) ||
        (rc = engine_alloc(e, T * hid * f, &e->x, diag)) ||
        (rc = engine_alloc(e, T * hid * f, &e->xn, diag)) ||
        (rc = engine_alloc(e, T * (size_t)e->q_dim * f, &e->q, diag)) ||
        (rc = engine_alloc(e, T * (size_t)e->kv_dim * f, &e->k, diag)) ||
        (rc = engine_alloc(e, T * (size_t)e->kv_dim * f, &e->v, diag)) ||
        (rc = engine_alloc(e, T * (size_t)e->q_dim * f, &e->att, diag)) ||
        (rc = engine_alloc(e, T * hid * f, &e->o, diag)) ||
        (rc = engine_alloc(e, T * (size_t)c->ffn * f, &e->g, diag)) ||
        (rc = engine_alloc(e, T * (size_t)c->ffn * f, &e->u, diag)) ||
        (rc = engine_alloc(e, e->last ? T * (size_t)c->vocab * f : f, &e->logits, diag))) {
        goto fail;
    }
    if (e->last) {
        e->host_logits = hx_malloc((size_t)c->vocab * f);
        if (!e->host_logits) {
            rc = hx_diag_set(diag, HX_ENOMEM, "engine: cannot allocate the logits buffer");
            goto fail;
        }
    }
    if (e->be->ops->reserve) {
        int max_cols = c->hidden;
        if (c->ffn > max_cols) {
            max_cols = c->ffn;
        }
        if (e->q_dim > max_cols) {
            max_cols = e->q_dim;
        }
        if ((rc = e->be->ops->reserve(e->be, e->opt.max_tokens, max_cols, diag)) != HX_OK) {
            goto fail;
        }
    }
    if (e->be->ops->reserve_attn &&
        (rc = e->be->ops->reserve_attn(e->be, e->opt.max_tokens, e->opt.max_ctx, c->n_heads,
                                       c->n_kv_heads, c->head_dim, diag)) != HX_OK) {
        goto fail;
    }
    *out = e;
    return HX_OK;
fail:
    eng_engine_free(e);
    return rc;
}

void eng_engine_free(struct eng_engine *e)
{
    if (!e) {
        return;
    }
    if (e->be->ops->graph_forget) {
        e->be->ops->graph_forget(e->be, e);
    }
    if (e->kv) {
        e->be->ops->buf_free(e->be, e->kv);
    }
    float *bufs[] = {e->x, e->xn, e->q, e->k, e->v, e->att, e->o, e->g, e->u, e->logits};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        if (bufs[i]) {
            e->be->ops->buf_free(e->be, bufs[i]);
        }
    }
    int32_t *ibufs[] = {e->d_pos, e->d_seq, e->d_ids, e->d_tables};
    for (size_t i = 0; i < sizeof(ibufs) / sizeof(ibufs[0]); i++) {
        if (ibufs[i]) {
            e->be->ops->buf_free(e->be, ibufs[i]);
        }
    }
    if (e->slots) {
        for (int i = 0; i < e->opt.max_seqs; i++) {
            xfree(e->slots[i].blocks);
        }
    }
    xfree(e->slots);
    xfree(e->free_blocks);
    xfree(e->step_slot);
    xfree(e->h_pos);
    xfree(e->h_seq);
    xfree(e->h_tables);
    xfree(e->host_logits);
    xfree(e);
}

void eng_engine_get_opts(const struct eng_engine *e, struct eng_engine_opts *out)
{
    *out = e->opt;
}

const struct eng_model *eng_engine_model(const struct eng_engine *e)
{
    return e->m;
}

size_t eng_kv_block_bytes(const struct eng_engine *e)
{
    return (size_t)e->n_local * 2 * ENG_KV_BLOCK * (size_t)e->kv_dim * e->kv_esize;
}

void eng_kv_usage(const struct eng_engine *e, int *used_blocks, int *total_blocks)
{
    *used_blocks = e->n_blocks - e->n_free;
    *total_blocks = e->n_blocks;
}

static struct seq_slot *find_slot(const struct eng_engine *e, int64_t id)
{
    for (int i = 0; i < e->opt.max_seqs; i++) {
        if (e->slots[i].used && e->slots[i].id == id) {
            return &e->slots[i];
        }
    }
    return NULL;
}

int eng_seq_add(struct eng_engine *e, int64_t seq_id, struct hx_diag *diag)
{
    if (find_slot(e, seq_id)) {
        return hx_diag_set(diag, HX_EINVAL, "sequence %lld already exists", (long long)seq_id);
    }
    for (int i = 0; i < e->opt.max_seqs; i++) {
        struct seq_slot *s = &e->slots[i];
        if (!s->used) {
            s->used = 1;
            s->id = seq_id;
            s->len = 0;
            s->n_blocks = 0;
            return HX_OK;
        }
    }
    return hx_diag_set(diag, HX_EFULL, "all %d sequence slots are in use", e->opt.max_seqs);
}

int eng_seq_remove(struct eng_engine *e, int64_t seq_id)
{
    struct seq_slot *s = find_slot(e, seq_id);
    if (!s) {
        return HX_ENOTFOUND;
    }
    for (int i = 0; i < s->n_blocks; i++) {
        e->free_blocks[e->n_free++] = s->blocks[i];
    }
    s->used = 0;
    s->n_blocks = 0;
    s->len = 0;
    return HX_OK;
}

int eng_seq_len(const struct eng_engine *e, int64_t seq_id)
{
    const struct seq_slot *s = find_slot(e, seq_id);
    return s ? s->len : -1;
}

/* Check the whole batch; fill e->step_slot. Changes nothing. */
static int validate_step(struct eng_engine *e, const struct eng_seq_step *seqs, int n_seqs,
                         const struct eng_step_out *out, int *total_tokens, int *new_blocks,
                         struct hx_diag *diag)
{
    const struct eng_config *c = &e->m->cfg;
    if (n_seqs < 1 || n_seqs > e->opt.max_seqs) {
        return hx_diag_set(diag, HX_EINVAL, "step: %d sequences (1..%d)", n_seqs, e->opt.max_seqs);
    }
    if (!e->last && (out->logits || out->norm_hidden)) {
        return hx_diag_set(diag, HX_EINVAL,
                           "step: logits asked of layers [%d, %d), which is not the last stage",
                           e->m->begin, e->m->end);
    }
    long T = 0;
    int need = 0;
    for (int i = 0; i < n_seqs; i++) {
        const struct eng_seq_step *st = &seqs[i];
        struct seq_slot *s = find_slot(e, st->seq_id);
        if (!s) {
            return hx_diag_set(diag, HX_ENOTFOUND, "step: unknown sequence %lld",
                               (long long)st->seq_id);
        }
        for (int j = 0; j < i; j++) {
            if (seqs[j].seq_id == st->seq_id) {
                return hx_diag_set(diag, HX_EINVAL, "step: sequence %lld appears twice",
                                   (long long)st->seq_id);
            }
        }
        if (st->pos != s->len) {
            return hx_diag_set(diag, HX_EINVAL,
                               "step: sequence %lld: pos %d but %d tokens are cached",
                               (long long)st->seq_id, st->pos, s->len);
        }
        if (st->n_tokens < 1 || st->n_tokens > e->opt.max_ctx - s->len) {
            return hx_diag_set(diag, HX_ERANGE,
                               "step: sequence %lld: %d tokens at position %d exceed the context "
                               "of %d",
                               (long long)st->seq_id, st->n_tokens, st->pos, e->opt.max_ctx);
        }
        if (e->first) {
            if (!st->tokens) {
                return hx_diag_set(diag, HX_EINVAL, "step: the first stage needs token ids");
            }
            for (int j = 0; j < st->n_tokens; j++) {
                if (st->tokens[j] < 0 || st->tokens[j] >= c->vocab) {
                    return hx_diag_set(diag, HX_ERANGE,
                                       "step: sequence %lld: token id %d outside [0, %d)",
                                       (long long)st->seq_id, (int)st->tokens[j], c->vocab);
                }
            }
        } else if (!st->act_in) {
            return hx_diag_set(diag, HX_EINVAL, "step: layers [%d, %d) need input activations",
                               e->m->begin, e->m->end);
        }
        T += st->n_tokens;
        int blocks = (s->len + st->n_tokens + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
        need += blocks - s->n_blocks;
        e->step_slot[i] = (int)(s - e->slots);
    }
    if (T > e->opt.max_tokens) {
        return hx_diag_set(diag, HX_ERANGE, "step: %ld tokens exceed max_tokens %d", T,
                           e->opt.max_tokens);
    }
    if (need > e->n_free) {
        return hx_diag_set(diag, HX_EFULL,
                           "KV cache full: the step needs %d more blocks, %d of %d are free "
                           "(%zu bytes each)",
                           need, e->n_free, e->n_blocks, eng_kv_block_bytes(e));
    }
    *total_tokens = (int)T;
    *new_blocks = need;
    return HX_OK;
}

/* One decoder layer over the T tokens in e->x (in place). */
static void layer_forward(struct eng_engine *e, int local, int T, const struct eng_attn_batch *ab)
{
    struct eng_backend *be = e->be;
    const struct eng_backend_ops *op = be->ops;
    const struct eng_config *c = &e->m->cfg;
    const struct eng_layer_weights *w = &e->m->layers[local];
    float eps = (float)c->rms_eps;
    struct eng_attn_batch b = *ab;
    b.k_cache = e->kv + (size_t)(2 * local) * e->layer_kv_bytes;
    b.v_cache = e->kv + (size_t)(2 * local + 1) * e->layer_kv_bytes;

    if (op->matmul_qkv && op->matmul_swiglu && op->matmul_add && op->rope_kv_store &&
        w->wqkv.data && w->wgu.data) { /* the fused path: 7 ops and attention */
        op->rmsnorm(be, e->x, &w->attn_norm, T, eps, e->xn);
        op->matmul_qkv(be, e->xn, T, &w->wqkv, w->bqkv.data ? &w->bqkv : NULL, e->q_dim, e->kv_dim,
                       e->q, e->k, e->v);
        op->rope_kv_store(be, &b, e->q, e->k, e->v, c->rope_theta);
        op->attention(be, &b, e->q, e->att);
        op->matmul_add(be, e->att, T, &w->wo, e->x);
        op->rmsnorm(be, e->x, &w->ffn_norm, T, eps, e->xn);
        op->matmul_swiglu(be, e->xn, T, &w->wgu, e->g);
        op->matmul_add(be, e->g, T, &w->wd, e->x);
        return;
    }
    op->rmsnorm(be, e->x, &w->attn_norm, T, eps, e->xn);
    op->matmul(be, e->xn, T, &w->wq, w->bq.data ? &w->bq : NULL, e->q);
    op->matmul(be, e->xn, T, &w->wk, w->bk.data ? &w->bk : NULL, e->k);
    op->matmul(be, e->xn, T, &w->wv, w->bv.data ? &w->bv : NULL, e->v);
    op->rope(be, e->q, T, c->n_heads, c->head_dim, e->d_pos, c->rope_theta);
    op->rope(be, e->k, T, c->n_kv_heads, c->head_dim, e->d_pos, c->rope_theta);
    op->kv_store(be, &b, e->k, e->v);
    op->attention(be, &b, e->q, e->att);
    op->matmul(be, e->att, T, &w->wo, NULL, e->o);
    op->add(be, e->x, e->o, (size_t)T * (size_t)c->hidden);

    op->rmsnorm(be, e->x, &w->ffn_norm, T, eps, e->xn);
    op->matmul(be, e->xn, T, &w->wg, NULL, e->g);
    op->matmul(be, e->xn, T, &w->wu, NULL, e->u);
    op->swiglu(be, e->g, e->u, (size_t)T * (size_t)c->ffn, e->g);
    op->matmul(be, e->g, T, &w->wd, NULL, e->o);
    op->add(be, e->x, e->o, (size_t)T * (size_t)c->hidden);
}

/* The step's device work after its inputs are uploaded: embedding, the layers, the final
 * norm and the head. Only device-side ops (recordable as a graph), except layer_hidden. */
static void forward_ops(struct eng_engine *e, const struct eng_seq_step *seqs, int n_seqs, int T,
                        const struct eng_step_out *out, int rows)
{
    struct eng_backend *be = e->be;
    const struct eng_backend_ops *op = be->ops;
    const struct eng_config *c = &e->m->cfg;
    size_t hid = (size_t)c->hidden;
    size_t row_bytes = hid * sizeof(float);
    size_t act_bytes = (size_t)T * row_bytes;
    if (e->first) {
        op->embed(be, &e->m->embed, e->d_ids, T, e->x);
    }
    if (out->layer_hidden) {
        op->to_host(be, out->layer_hidden, e->x, act_bytes);
    }
    struct eng_attn_batch ab = {
        .n_tokens = T,
        .n_heads = c->n_heads,
        .n_kv_heads = c->n_kv_heads,
        .head_dim = c->head_dim,
        .max_blocks = e->max_blocks,
        .tok_pos = e->d_pos,
        .tok_seq = e->d_seq,
        .block_tables = e->d_tables,
        .h_tok_pos = e->h_pos,
        .h_tok_seq = e->h_seq,
    };
    for (int l = 0; l < e->n_local; l++) {
        layer_forward(e, l, T, &ab);
        if (out->layer_hidden) {
            op->to_host(be, (char *)out->layer_hidden + (size_t)(l + 1) * act_bytes, e->x,
                        act_bytes);
        }
    }
    if (rows > 0) {
        op->rmsnorm(be, e->x, &e->m->norm, T, (float)c->rms_eps, e->xn);
        if (out->logits) {
            const float *src = e->xn;
            if (!out->all_logits) { /* gather each sequence's last token */
                int t = 0;
                for (int i = 0; i < n_seqs; i++) {
                    t += seqs[i].n_tokens;
                    op->copy(be, e->o + (size_t)i * hid, e->xn + (size_t)(t - 1) * hid, row_bytes);
                }
                src = e->o;
            }
            op->matmul(be, src, rows, &e->m->head, NULL, e->logits);
        }
    }
}

int eng_engine_step(struct eng_engine *e, const struct eng_seq_step *seqs, int n_seqs,
                    const struct eng_step_out *out, struct hx_diag *diag)
{
    static const struct eng_step_out none;
    if (!out) {
        out = &none;
    }
    int T = 0;
    int need = 0;
    int rc = validate_step(e, seqs, n_seqs, out, &T, &need, diag);
    if (rc != HX_OK) {
        return rc;
    }
    struct eng_backend *be = e->be;
    const struct eng_backend_ops *op = be->ops;
    const struct eng_config *c = &e->m->cfg;
    size_t hid = (size_t)c->hidden;
    size_t row_bytes = hid * sizeof(float);

    /* Reserve blocks and lay out the step's metadata. */
    int t = 0;
    for (int i = 0; i < n_seqs; i++) {
        struct seq_slot *s = &e->slots[e->step_slot[i]];
        int blocks = (s->len + seqs[i].n_tokens + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
        while (s->n_blocks < blocks) {
            s->blocks[s->n_blocks++] = e->free_blocks[--e->n_free];
        }
        memcpy(e->h_tables + (size_t)i * (size_t)e->max_blocks, s->blocks,
               (size_t)s->n_blocks * sizeof(int32_t));
        for (int j = 0; j < seqs[i].n_tokens; j++, t++) {
            e->h_pos[t] = s->len + j;
            e->h_seq[t] = i;
        }
    }
    size_t ti = (size_t)T * sizeof(int32_t);
    op->to_device(be, e->d_pos, e->h_pos, ti);
    op->to_device(be, e->d_seq, e->h_seq, ti);
    op->to_device(be, e->d_tables, e->h_tables,
                  (size_t)n_seqs * (size_t)e->max_blocks * sizeof(int32_t));

    /* Input: token embeddings on the first stage, else the previous stage's activations. */
    t = 0;
    int decode_only = 1;
    for (int i = 0; i < n_seqs; i++) {
        size_t n = (size_t)seqs[i].n_tokens;
        decode_only &= seqs[i].n_tokens == 1;
        if (e->first) {
            op->to_device(be, e->d_ids + t, seqs[i].tokens, n * sizeof(int32_t));
        } else {
            op->to_device(be, e->x + (size_t)t * hid, seqs[i].act_in, n * row_bytes);
        }
        t += seqs[i].n_tokens;
    }
    size_t act_bytes = (size_t)T * row_bytes;
    int want_logits = e->last && (out->logits || out->norm_hidden);
    int rows = !want_logits ? 0 : out->all_logits ? T : n_seqs;

    /*
     * A decode step (one token per sequence) with no per-layer output is the same launches
     * every time for a given batch size: where the backend records graphs, the first such
     * step records them and later ones replay them (the metadata above is uploaded outside).
     */
    int graph = -1;
    if (op->graph_begin && decode_only && !out->layer_hidden) {
        uint64_t key = (uint64_t)T | (uint64_t)(out->logits != NULL) << 32 |
                       (uint64_t)(out->norm_hidden != NULL) << 33 |
                       (uint64_t)(out->all_logits != 0) << 34;
        graph = op->graph_begin(be, e, key);
    }
    if (graph != 1) {
        forward_ops(e, seqs, n_seqs, T, out, rows);
        if (graph == 0 && op->graph_end(be) != HX_OK) {
            forward_ops(e, seqs, n_seqs, T, out, rows); /* the recording failed: run plainly */
        }
    }
    if (out->act) {
        op->to_host(be, out->act, e->x, act_bytes);
    }
    if (out->norm_hidden) {
        op->to_host(be, out->norm_hidden, e->xn, act_bytes);
    }
    if (out->logits) {
        op->to_host(be, out->logits, e->logits, (size_t)rows * (size_t)c->vocab * sizeof(float));
    }
    op->sync(be);
    if (op->error && (rc = op->error(be, diag)) != HX_OK) {
        return rc; /* the device is in an unknown state: the caller drops the engine */
    }
    for (int i = 0; i < n_seqs; i++) {
        e->slots[e->step_slot[i]].len += seqs[i].n_tokens;
    }
    return HX_OK;
}

int eng_generate(struct eng_engine *e, int64_t seq_id, const int32_t *prompt, int n_prompt,
                 struct eng_sampler *s, int max_new, int eos_id, int32_t *out_ids, int *n_out,
                 struct hx_diag *diag)
{
    *n_out = 0;
    if (!e->first || !e->last) {
        return hx_diag_set(diag, HX_EINVAL, "generate needs the whole model, not layers [%d, %d)",
                           e->m->begin, e->m->end);
    }
    if (n_prompt < 1) {
        return hx_diag_set(diag, HX_EINVAL, "generate: empty prompt");
    }
    int rc = eng_seq_add(e, seq_id, diag);
    if (rc != HX_OK) {
        return rc;
    }
    struct eng_step_out out = {.logits = e->host_logits};
    for (int off = 0; off < n_prompt; off += e->opt.max_tokens) {
        int n = n_prompt - off < e->opt.max_tokens ? n_prompt - off : e->opt.max_tokens;
        struct eng_seq_step st = {seq_id, off, n, prompt + off, NULL};
        if ((rc = eng_engine_step(e, &st, 1, &out, diag)) != HX_OK) {
            goto done;
        }
    }
    for (int i = 0; i < max_new; i++) {
        int32_t tok = eng_sampler_sample(s, e->host_logits);
        out_ids[(*n_out)++] = tok;
        if (tok == eos_id || i + 1 == max_new) {
            break;
        }
        struct eng_seq_step st = {seq_id, n_prompt + i, 1, &tok, NULL};
        if ((rc = eng_engine_step(e, &st, 1, &out, diag)) != HX_OK) {
            goto done;
        }
    }
done:
    eng_seq_remove(e, seq_id);
    return rc;
}
