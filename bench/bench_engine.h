/*
 * bench_engine.h - what the parts of bench_engine share: bench_engine.c (main, the memory
 * bandwidth anchor, the CPU range benchmark), engine_model.c (writing a random
 * Llama-2-7B-shaped model as a Hugging Face directory), engine_full.c (the whole-model
 * benchmark, the GPU one).
 */
#ifndef HX_BENCH_BENCH_ENGINE_H
#define HX_BENCH_BENCH_ENGINE_H

#include <stddef.h>

#include "base/status.h"
#include "engine/engine.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HOT                                                                                        \
    __attribute__((optimize("O3"), target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT
#endif

/* the Llama-2-7B shape */
#define H7 4096
#define FFN7 11008
#define VOCAB7 32000
#define LAYERS7 32

#define MAX_LIST 8
#define MAX_BATCH 256

struct full_opts {
    const char *model_dir; /* NULL: a temporary directory */
    const char *tokenizer;
    int n_layers;
    int keep;
    int ctx[MAX_LIST], n_ctx;
    int batch[MAX_LIST], n_batch;
    int pre[MAX_LIST], n_pre;
    int steps, warmup, prefill_reps, max_tokens, profile, gemm_n;
    double mem_gb; /* > 0: pretend this much memory is free (to test the skip path) */
};

/* Write the model (full: all 32 layers with embedding, norm and lm_head, as a Hugging Face
 * directory; else layers [first, first + n_layers)) to dir; reuse: keep a matching one.
 * 0, 1 when reused, -1 on error. */
int write_7b(const char *dir, int full, int first, int n_layers, int reuse);
/* Copy the Llama-2 tokenizer files into model_dir (from dir_opt, else the known places);
 * the source directory, or NULL. */
const char *copy_tokenizer(const char *model_dir, const char *dir_opt);
/* A comma-separated list of positive ints into out (at most max); the count, -1 if bad. */
int parse_list(const char *s, int *out, int max);
/* Print "bench_engine: what: message" and exit 1. */
void die(const char *what, const struct hx_diag *d);
/* bench_engine --vs-llamacpp (engine_race.c). */
struct race_opts {
    const char *lib;    /* llama.cpp's libllama.so */
    const char *work;   /* where the models and GGUF files go (kept, reused) */
    const char *python; /* a Python with numpy, for bench/gguf_write.py */
    const char *tokenizer;
    int n_layers;
    int threads[4], n_threads;
    const char *fmts[3];
    int n_fmts;
    int reps, steps, prefill, batch;
    int rewrite, correctness_only, skip_correctness;
};
int run_vs_llamacpp(const struct race_opts *o);

/* The whole-model benchmark on be (bw: the read bandwidth measured, bytes/s). */
int run_full(struct eng_backend *be, int on_gpu, double bw, const struct full_opts *fo);

#endif
