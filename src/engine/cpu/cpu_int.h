/*
 * cpu_int.h - shared inside the CPU backend: its state (thread pool, per-thread scratch) and
 * the op entry points implemented in op_*.c. The ops are plain C; the few hot loops
 * (bf16/f16 row dot products) are compiled for several x86-64 levels with gcc's
 * target_clones and picked at load time, with no intrinsics in the source.
 */
#ifndef HX_ENGINE_CPU_CPU_INT_H
#define HX_ENGINE_CPU_CPU_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"

/* Not under ThreadSanitizer: the ifunc resolvers target_clones generates are instrumented
 * and run at load time, before the TSan runtime is up, and the binary crashes on start. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#define CPU_HOT                                                                                    \
    __attribute__((optimize("O3", "fp-contract=fast"),                                             \
                   target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CPU_HOT
#endif

/* Runs fn(ctx, task, thread) for task in [0, n_tasks) on the caller plus the pool's threads. */
typedef void cpu_task_fn(void *ctx, int task, int thread);

struct cpu_pool;

struct cpu_worker {
    struct cpu_pool *pool;
    int id;
};

struct cpu_pool {
    int n_threads; /* including the caller */
    pthread_t *threads;
    struct cpu_worker *workers;
    pthread_mutex_t mu;
    pthread_cond_t start;
    pthread_cond_t done;
    unsigned long gen;
    int pending;
    int stop;
    cpu_task_fn *fn;
    void *ctx;
    int n_tasks;
    atomic_int next;
};

int cpu_pool_init(struct cpu_pool *p, int n_threads);
void cpu_pool_release(struct cpu_pool *p);
void cpu_pool_run(struct cpu_pool *p, cpu_task_fn *fn, void *ctx, int n_tasks);
/*
 * Same, for an op of about work multiply-adds: below CPU_POOL_MIN_WORK the caller runs every
 * task itself (waking the pool costs more than it saves; small models decode faster so).
 */
#define CPU_POOL_MIN_WORK ((size_t)1 << 18)
void cpu_pool_run_sized(struct cpu_pool *p, cpu_task_fn *fn, void *ctx, int n_tasks, size_t work);

struct eng_cpu_backend {
    struct eng_backend base;
    struct cpu_pool pool;
    float **scratch;       /* [n_threads] tile buffers for bf16/f16 -> f32 weight tiles */
    size_t scratch_floats; /* floats in each */
    int wide;              /* the CPU runs the AVX-512 (x86-64-v4) kernels */
    float *xsplit;         /* pair-split copy of a matmul's input rows (op_matmul.c) */
    size_t xsplit_floats;
    int quant_kind; /* CPU_QK_*: the Q8_0/Q4_0 kernels this CPU runs (op_quant.c) */
    int8_t *xq;     /* input rows quantized to int8 blocks, [CPU_SMALL_M x max_cols] */
    int16_t *x16;   /* or as int16 (against Q8_0 weights), same shape */
    float *xqd;     /* their scales */
    int32_t *xqs;   /* -sum of each block's values */
    size_t xq_elems;
};

/* The quantized-matmul kernels: plain C, AVX2, AVX-512 VNNI. */
enum { CPU_QK_PORTABLE = 0, CPU_QK_AVX2 = 1, CPU_QK_VNNI = 2 };
/* The best kind this CPU runs. */
int cpu_quant_kind(void);
/* out = x W^T (+ bias) for a Q8_0/Q4_0 W and m <= CPU_SMALL_M rows (op_quant.c). 0, or -1 when
 * it does not apply (too many rows, no scratch): the caller dequantizes instead. */
int cpu_matmul_quant(struct eng_cpu_backend *cb, const float *x, int m, const struct eng_weight *w,
                     const struct eng_weight *bias, float *out);

/* Whether this CPU can run the 16-float (x86-64-v4) matmul kernels. */
int cpu_matmul_wide_ok(void);

/* Grow each thread's scratch to n floats (called by reserve, before serving). */
int cpu_scratch_reserve(struct eng_cpu_backend *cb, size_t n);

void cpu_op_matmul(struct eng_backend *be, const float *x, int m, const struct eng_weight *w,
                   const struct eng_weight *bias, float *out);
void cpu_op_attention(struct eng_backend *be, const struct eng_attn_batch *b, const float *q,
                      float *out);
void cpu_op_kv_store(struct eng_backend *be, const struct eng_attn_batch *b, const float *k,
                     const float *v);
/* Tile rows of a matmul with k columns (the scratch each thread needs is rows x k floats). */
#define CPU_TILE_TARGET_FLOATS 1048576 /* 4 MiB of float32 weights per thread and tile */
#define CPU_SMALL_M 64 /* up to this many input rows, bf16 weights are used in place */
int cpu_tile_rows(int k);

#endif
