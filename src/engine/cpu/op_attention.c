/*
 * op_attention.c - causal grouped-query attention over the paged KV cache, and the store of
 * new K/V into it. One task per (token, query head): the token attends to positions
 * 0..pos of its own sequence, reading K/V block by block through the sequence's block table,
 * with a one-pass (online) softmax so no score buffer is needed. Query head h reads KV head
 * h / (n_heads / n_kv_heads).
 */
#include <math.h>
#include <string.h>

#include "engine/cpu/cpu_int.h"

#define MAX_HEAD_DIM 1024

/* Offset in floats of position pos of step sequence s in a layer's K (or V) cache. */
static size_t slot_offset(const struct eng_attn_batch *b, int s, int pos)
{
    int block = b->block_tables[(size_t)s * (size_t)b->max_blocks + (size_t)(pos / ENG_KV_BLOCK)];
    size_t slot = (size_t)block * ENG_KV_BLOCK + (size_t)(pos % ENG_KV_BLOCK);
    return slot * (size_t)b->n_kv_heads * (size_t)b->head_dim;
}

void cpu_op_kv_store(struct eng_backend *be, const struct eng_attn_batch *b, const float *k,
                     const float *v)
{
    (void)be;
    size_t kv_dim = (size_t)b->n_kv_heads * (size_t)b->head_dim;
    for (int t = 0; t < b->n_tokens; t++) {
        size_t off = slot_offset(b, b->tok_seq[t], b->tok_pos[t]);
        memcpy((float *)b->k_cache + off, k + (size_t)t * kv_dim, kv_dim * sizeof(float));
        memcpy((float *)b->v_cache + off, v + (size_t)t * kv_dim, kv_dim * sizeof(float));
    }
}

struct attn_ctx {
    const struct eng_attn_batch *b;
    const float *q;
    float *out;
};

CPU_HOT static void attn_task(void *ctx, int task, int thread)
{
    (void)thread;
    const struct attn_ctx *c = ctx;
    const struct eng_attn_batch *b = c->b;
    int t = task / b->n_heads;
    int h = task % b->n_heads;
    int d = b->head_dim;
    int kvh = h / (b->n_heads / b->n_kv_heads);
    const float *q = c->q + ((size_t)t * (size_t)b->n_heads + (size_t)h) * (size_t)d;
    float *o = c->out + ((size_t)t * (size_t)b->n_heads + (size_t)h) * (size_t)d;
    float scale = 1.0f / sqrtf((float)d);
    float acc[MAX_HEAD_DIM];
    memset(acc, 0, (size_t)d * sizeof(float));
    float max = -INFINITY;
    float sum = 0.0f;
    int seq = b->tok_seq[t];
    for (int p = 0; p <= b->tok_pos[t]; p++) {
        size_t off = slot_offset(b, seq, p) + (size_t)kvh * (size_t)d;
        const float *kp = (const float *)b->k_cache + off;
        const float *vp = (const float *)b->v_cache + off;
        float s = 0.0f;
        for (int i = 0; i < d; i++) {
            s += q[i] * kp[i];
        }
        s *= scale;
        if (s > max) { /* rescale what was accumulated under the old maximum */
            float r = expf(max - s);
            sum *= r;
            for (int i = 0; i < d; i++) {
                acc[i] *= r;
            }
            max = s;
        }
        float e = expf(s - max);
        sum += e;
        for (int i = 0; i < d; i++) {
            acc[i] += e * vp[i];
        }
    }
    for (int i = 0; i < d; i++) {
        o[i] = acc[i] / sum;
    }
}

void cpu_op_attention(struct eng_backend *be, const struct eng_attn_batch *b, const float *q,
                      float *out)
{
    struct eng_cpu_backend *cb = (struct eng_cpu_backend *)be;
    struct attn_ctx c = {b, q, out};
    size_t work = 0; /* multiply-adds: (positions attended) x heads x 2 head_dim */
    for (int t = 0; t < b->n_tokens; t++) {
        work += (size_t)(b->tok_pos[t] + 1);
    }
    work *= (size_t)b->n_heads * 2 * (size_t)b->head_dim;
    cpu_pool_run_sized(&cb->pool, attn_task, &c, b->n_tokens * b->n_heads, work);
}
