/*
 * engine_llamacpp.h - llama.cpp's C API, reached through dlopen of a CPU build's libllama.so
 * (types from its llama.h, found at build time), for bench_engine --vs-llamacpp: load a GGUF,
 * quantize one (llama_model_quantize), time decode, prefill and batched decode, greedy ids and
 * logits. Functions return 0 / a pointer, or -1 / NULL with a message in lc_error().
 */
#ifndef HX_BENCH_ENGINE_LLAMACPP_H
#define HX_BENCH_ENGINE_LLAMACPP_H

#include <stdint.h>

struct lc_model;

/* Load the library (path to libllama.so). */
int lc_open(const char *lib);
const char *lc_error(void);
/* Quantize in (a GGUF) to out: ftype "q8_0" or "q4_0", every matrix but the token embedding
 * (kept as stored, as helix's --weights keeps it): llama.cpp's pure mode. */
int lc_quantize(const char *in, const char *out, const char *ftype, int threads);
/* A model and a context of n_ctx positions over n_seq sequences (unified KV), batches of up
 * to n_batch tokens; the KV cache in f32 (kv_f32, as helix's CPU backend) or llama.cpp's
 * default f16. */
struct lc_model *lc_load(const char *gguf, int threads, int n_ctx, int n_seq, int n_batch,
                         int kv_f32);
void lc_free(struct lc_model *m);
void lc_set_threads(struct lc_model *m, int threads);
int lc_vocab(const struct lc_model *m);
/* Forget every sequence's cache / one sequence's. */
void lc_clear(struct lc_model *m);
void lc_seq_rm(struct lc_model *m, int seq);
/* Decode n tokens of sequence seq at positions pos0.., logits of the last (all: every token,
 * copied to logits_out [n x vocab] when not NULL). */
int lc_eval(struct lc_model *m, int seq, const int32_t *ids, int n, int pos0, int all,
            float *logits_out);
/* One token for each of n sequences 0..n-1 at position pos[i]; logits of all, argmax in
 * next[i] (may be NULL). */
int lc_step_batch(struct lc_model *m, const int32_t *ids, const int32_t *pos, int n, int32_t *next);
/* Logits of the last eval's token i (-1: last). */
const float *lc_logits(struct lc_model *m, int i);

#endif
