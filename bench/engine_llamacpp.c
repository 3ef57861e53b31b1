/*
 * engine_llamacpp.c - llama.cpp for bench_engine --vs-llamacpp (engine_llamacpp.h): dlopen of
 * libllama.so, with the function types taken from its own llama.h (so a mismatched header is
 * a compile error, not a crash). Without llama.h at build time every call fails, saying so.
 */
#define _GNU_SOURCE
#include "engine_llamacpp.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err_buf[512];

const char *lc_error(void)
{
    return err_buf;
}

#if defined(HX_HAVE_LLAMA_H)
#include "llama.h"

#define FN(name) static __typeof__(&name) p_##name;
#define FNS(X)                                                                                     \
    X(llama_backend_init)                                                                          \
    X(llama_model_default_params)                                                                  \
    X(llama_context_default_params)                                                                \
    X(llama_model_quantize_default_params)                                                         \
    X(llama_model_load_from_file)                                                                  \
    X(llama_model_free)                                                                            \
    X(llama_init_from_model)                                                                       \
    X(llama_free)                                                                                  \
    X(llama_model_quantize)                                                                        \
    X(llama_batch_init)                                                                            \
    X(llama_batch_free)                                                                            \
    X(llama_decode)                                                                                \
    X(llama_get_logits_ith)                                                                        \
    X(llama_get_memory)                                                                            \
    X(llama_memory_clear)                                                                          \
    X(llama_memory_seq_rm)                                                                         \
    X(llama_set_n_threads)                                                                         \
    X(llama_synchronize)                                                                           \
    X(llama_model_get_vocab)                                                                       \
    X(llama_vocab_n_tokens)                                                                        \
    X(llama_log_set)
FNS(FN)

struct lc_model {
    struct llama_model *model;
    struct llama_context *ctx;
    struct llama_batch batch;
    int n_batch;
    int vocab;
};

static void quiet_log(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

int lc_open(const char *lib)
{
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err_buf, sizeof(err_buf), "dlopen %s: %s", lib, dlerror());
        return -1;
    }
#define SYM(name)                                                                                  \
    if (!(p_##name = (__typeof__(p_##name))dlsym(h, #name))) {                                     \
        snprintf(err_buf, sizeof(err_buf), "%s: no symbol %s", lib, #name);                        \
        return -1;                                                                                 \
    }
    FNS(SYM)
    p_llama_log_set(quiet_log, NULL);
    p_llama_backend_init();
    return 0;
}

int lc_quantize(const char *in, const char *out, const char *ftype, int threads)
{
    struct llama_model_quantize_params qp = p_llama_model_quantize_default_params();
    qp.nthread = threads;
    if (strcmp(ftype, "q8_0") == 0) {
        qp.ftype = LLAMA_FTYPE_MOSTLY_Q8_0;
    } else if (strcmp(ftype, "q4_0") == 0) {
        qp.ftype = LLAMA_FTYPE_MOSTLY_Q4_0;
    } else {
        snprintf(err_buf, sizeof(err_buf), "unknown ftype %s", ftype);
        return -1;
    }
    qp.pure = true;                           /* every matrix in ftype (output.weight too) */
    qp.token_embedding_type = GGML_TYPE_BF16; /* the embedding as stored, as helix keeps it */
    if (p_llama_model_quantize(in, out, &qp) != 0) {
        snprintf(err_buf, sizeof(err_buf), "llama_model_quantize %s -> %s failed", in, out);
        return -1;
    }
    return 0;
}

struct lc_model *lc_load(const char *gguf, int threads, int n_ctx, int n_seq, int n_batch,
                         int kv_f32)
{
    struct llama_model_params mp = p_llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = p_llama_model_load_from_file(gguf, mp);
    if (!model) {
        snprintf(err_buf, sizeof(err_buf), "llama.cpp cannot load %s", gguf);
        return NULL;
    }
    struct llama_context_params cp = p_llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)n_batch;
    cp.n_ubatch = (uint32_t)n_batch;
    cp.n_seq_max = (uint32_t)n_seq;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.kv_unified = true;
    if (kv_f32) {
        cp.type_k = GGML_TYPE_F32;
        cp.type_v = GGML_TYPE_F32;
    }
    cp.no_perf = true;
    struct llama_context *ctx = p_llama_init_from_model(model, cp);
    if (!ctx) {
        p_llama_model_free(model);
        snprintf(err_buf, sizeof(err_buf), "llama.cpp cannot make a context for %s", gguf);
        return NULL;
    }
    struct lc_model *m = calloc(1, sizeof(*m));
    m->model = model;
    m->ctx = ctx;
    m->n_batch = n_batch;
    m->batch = p_llama_batch_init(n_batch, 0, 1);
    m->vocab = p_llama_vocab_n_tokens(p_llama_model_get_vocab(model));
    return m;
}

void lc_free(struct lc_model *m)
{
    if (m) {
        p_llama_batch_free(m->batch);
        p_llama_free(m->ctx);
        p_llama_model_free(m->model);
        free(m);
    }
}

void lc_set_threads(struct lc_model *m, int threads)
{
    p_llama_set_n_threads(m->ctx, threads, threads);
}

int lc_vocab(const struct lc_model *m)
{
    return m->vocab;
}

void lc_clear(struct lc_model *m)
{
    p_llama_memory_clear(p_llama_get_memory(m->ctx), true);
}

void lc_seq_rm(struct lc_model *m, int seq)
{
    p_llama_memory_seq_rm(p_llama_get_memory(m->ctx), seq, -1, -1);
}

int lc_eval(struct lc_model *m, int seq, const int32_t *ids, int n, int pos0, int all,
            float *logits_out)
{
    for (int done = 0; done < n;) {
        int k = n - done < m->n_batch ? n - done : m->n_batch;
        struct llama_batch *b = &m->batch;
        b->n_tokens = k;
        for (int i = 0; i < k; i++) {
            b->token[i] = ids[done + i];
            b->pos[i] = pos0 + done + i;
            b->n_seq_id[i] = 1;
            b->seq_id[i][0] = seq;
            b->logits[i] = (int8_t)(all || done + i == n - 1);
        }
        if (p_llama_decode(m->ctx, *b) != 0) {
            snprintf(err_buf, sizeof(err_buf), "llama_decode failed");
            return -1;
        }
        if (all && logits_out) {
            for (int i = 0; i < k; i++) {
                memcpy(logits_out + (size_t)(done + i) * (size_t)m->vocab,
                       p_llama_get_logits_ith(m->ctx, i), (size_t)m->vocab * sizeof(float));
            }
        }
        done += k;
    }
    p_llama_synchronize(m->ctx);
    return 0;
}

int lc_step_batch(struct lc_model *m, const int32_t *ids, const int32_t *pos, int n, int32_t *next)
{
    struct llama_batch *b = &m->batch;
    b->n_tokens = n;
    for (int i = 0; i < n; i++) {
        b->token[i] = ids[i];
        b->pos[i] = pos[i];
        b->n_seq_id[i] = 1;
        b->seq_id[i][0] = i;
        b->logits[i] = 1;
    }
    if (p_llama_decode(m->ctx, *b) != 0) {
        snprintf(err_buf, sizeof(err_buf), "llama_decode failed");
        return -1;
    }
    p_llama_synchronize(m->ctx);
    for (int i = 0; next && i < n; i++) {
        const float *l = p_llama_get_logits_ith(m->ctx, i);
        int best = 0;
        for (int v = 1; v < m->vocab; v++) {
            best = l[v] > l[best] ? v : best;
        }
        next[i] = best;
    }
    return 0;
}

const float *lc_logits(struct lc_model *m, int i)
{
    return p_llama_get_logits_ith(m->ctx, i);
}

#else /* no llama.h at build time */

static int missing(void)
{
    snprintf(err_buf, sizeof(err_buf),
             "bench_engine was built without llama.h (make LLAMA_CPP_SRC=<llama.cpp source>)");
    return -1;
}

int lc_open(const char *lib)
{
    (void)lib;
    return missing();
}

int lc_quantize(const char *in, const char *out, const char *ftype, int threads)
{
    (void)in, (void)out, (void)ftype, (void)threads;
    return missing();
}

struct lc_model *lc_load(const char *gguf, int threads, int n_ctx, int n_seq, int n_batch,
                         int kv_f32)
{
    (void)gguf, (void)threads, (void)n_ctx, (void)n_seq, (void)n_batch, (void)kv_f32;
    missing();
    return NULL;
}

void lc_free(struct lc_model *m)
{
    (void)m;
}

void lc_set_threads(struct lc_model *m, int threads)
{
    (void)m, (void)threads;
}

int lc_vocab(const struct lc_model *m)
{
    (void)m;
    return 0;
}

void lc_clear(struct lc_model *m)
{
    (void)m;
}

void lc_seq_rm(struct lc_model *m, int seq)
{
    (void)m, (void)seq;
}

int lc_eval(struct lc_model *m, int seq, const int32_t *ids, int n, int pos0, int all,
            float *logits_out)
{
    (void)m, (void)seq, (void)ids, (void)n, (void)pos0, (void)all, (void)logits_out;
    return missing();
}

int lc_step_batch(struct lc_model *m, const int32_t *ids, const int32_t *pos, int n, int32_t *next)
{
    (void)m, (void)ids, (void)pos, (void)n, (void)next;
    return missing();
}

const float *lc_logits(struct lc_model *m, int i)
{
    (void)m, (void)i;
    return NULL;
}
#endif
