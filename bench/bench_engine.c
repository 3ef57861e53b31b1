/*
 * bench_engine.c - engine throughput, each figure printed next to its anchor as a ratio.
 *
 * On the CPU (default; --range on any device):
 *   1. memory read bandwidth of this machine, measured in this run (threads summing a buffer
 *      much larger than the caches): the anchor for decode, which streams every weight once;
 *   2. the bundled kjv-llama-6m: prefill and decode tokens/s (batch 1 and 16);
 *   3. a Llama-2-7B-shaped range of layers (hidden 4096, 32 heads, FFN 11008, bf16) with random
 *      weights written by this program to a temporary model directory and loaded through the
 *      normal mmap path as a middle pipeline stage: prefill tokens/s, decode time per layer at
 *      batch 1 against the memory floor (layer bytes / bandwidth; goal <= 1.5x), and batch-32
 *      decode tokens/s against batch 1 (goal >= 8x);
 *   4. peak memory (RSS, which counts the mapped weights touched, and engine allocations).
 *
 * With --device cuda (a `make CUDA=1` build; --full on the CPU runs the same code):
 *   1. the card's device-memory read bandwidth (the decode anchor) and dense bf16 GEMM rate
 *      (cuBLAS 8192^3, the prefill anchor), both measured in this run; the bundled model;
 *   2. a whole Llama-2-7B-shaped model (32 layers, embedding 32000 x 4096, final norm, lm_head;
 *      random bf16) written as a Hugging Face LLaMA directory the peers read too (--model-dir
 *      DIR reuses or creates it there, --keep keeps it; the Llama-2 tokenizer files are copied
 *      in for llama.cpp's converter);
 *   3. decode ms per step at each batch (--batches 1,16,64) and context (--ctx 512,2048): every
 *      sequence prefilled to ctx, then --warmup + --steps timed steps of one token per sequence
 *      with logits; median; floor = (weight bytes + KV bytes read that step) / read bandwidth.
 *      A case whose KV cache does not fit in free device memory prints "skipped (needs X GB,
 *      Y GB free)";
 *   4. prefill of --prefill 512,2048 tokens (batch 1, one step, logits of the last token):
 *      ms, tokens/s and FLOP/s (2 x layer params x tokens + 2 x lm_head params for the one
 *      token with logits + causal attention 2 x layers x tokens^2 x q width) as a fraction
 *      of the GEMM rate;
 *   5. the backend's peak device allocations and the device-wide used memory;
 *   6. with --profile, the CUDA backend's per-op table for one b1 and one b64 decode step at
 *      the first context and one prefill step of the longest prefill.
 *   A final table repeats the figures with their anchors.
 *
 * Output lines are "key value" pairs, machine-readable (bench/gpu_bench.sh parses them);
 * comments start with "#", table rows with "|".
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "engine/engine.h"
#ifdef HX_HAVE_CUDA
#include "engine/cuda/cuda.h"
#endif

#include "bench_engine.h"

/* ---- memory bandwidth ----------------------------------------------------------------- */

struct bw_arg {
    const float *p;
    size_t n;
    float sum;
};

HOT static float sum_floats(const float *p, size_t n)
{
    float acc[32] = {0};
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int u = 0; u < 32; u++) {
            acc[u] += p[i + u];
        }
    }
    float s = 0;
    for (int u = 0; u < 32; u++) {
        s += acc[u];
    }
    return s;
}

static void *bw_thread(void *arg)
{
    struct bw_arg *a = arg;
    a->sum = sum_floats(a->p, a->n);
    return NULL;
}

#define BW_FLOATS (((size_t)512 << 20) / sizeof(float)) /* 512 MiB, far beyond the caches */

/* Best-of-reps read bandwidth in bytes/s over buf (BW_FLOATS) with n_threads threads. */
static double measure_bandwidth(const float *buf, int n_threads, int reps)
{
    size_t n = BW_FLOATS;
    double best = 0;
    float sink = 0;
    for (int rep = 0; rep < reps; rep++) {
        pthread_t th[64];
        struct bw_arg args[64];
        size_t per = n / (size_t)n_threads;
        double t0 = hx_clock_now();
        for (int i = 0; i < n_threads; i++) {
            args[i] = (struct bw_arg){buf + (size_t)i * per, per, 0};
            pthread_create(&th[i], NULL, bw_thread, &args[i]);
        }
        for (int i = 0; i < n_threads; i++) {
            pthread_join(th[i], NULL);
            sink += args[i].sum;
        }
        double dt = hx_clock_now() - t0;
        double bw = (double)(per * (size_t)n_threads * sizeof(float)) / dt;
        best = bw > best ? bw : best;
    }
    if (sink == 12345.0f) {
        printf("# (sink)\n");
    }
    return best;
}

/* ---- helpers ---------------------------------------------------------------------------- */

void die(const char *what, const struct hx_diag *d)
{
    fprintf(stderr, "bench_engine: %s: %s\n", what, d->msg);
    exit(1);
}

/* Prefill n_seqs sequences of plen tokens each (ids or activations), in chunks. */
static void prefill(struct eng_engine *e, int first, int n_seqs, int plen, const int32_t *ids,
                    const float *act, int max_tokens)
{
    struct hx_diag d = {0};
    struct eng_seq_step st[64];
    int per_step = max_tokens / plen;
    per_step = per_step < 1 ? 1 : per_step > 64 ? 64 : per_step;
    for (int s0 = 0; s0 < n_seqs; s0 += per_step) {
        int k = 0;
        for (int s = s0; s < n_seqs && s < s0 + per_step; s++, k++) {
            if (eng_seq_add(e, s, &d) != HX_OK) {
                die("seq_add", &d);
            }
            st[k] = (struct eng_seq_step){s, 0, plen, first ? ids : NULL, first ? NULL : act};
        }
        if (eng_engine_step(e, st, k, NULL, &d) != HX_OK) {
            die("prefill", &d);
        }
    }
}

/* Time n_steps decode steps over sequences 0..n_seqs-1 (all at position pos0). s/step. */
static double decode(struct eng_engine *e, int first, int n_seqs, int pos0, int n_steps,
                     const float *act, float *logits)
{
    struct hx_diag d = {0};
    struct eng_seq_step st[64];
    int32_t tok = 5;
    struct eng_step_out out = {.logits = logits};
    double t0 = hx_clock_now();
    for (int i = 0; i < n_steps; i++) {
        for (int s = 0; s < n_seqs; s++) {
            st[s] = (struct eng_seq_step){s, pos0 + i, 1, first ? &tok : NULL, first ? NULL : act};
        }
        if (eng_engine_step(e, st, n_seqs, &out, &d) != HX_OK) {
            die("decode", &d);
        }
        if (logits) {
            tok = eng_argmax(logits, 16); /* keep a data dependence on the output */
        }
    }
    return (hx_clock_now() - t0) / n_steps;
}

static void remove_all(struct eng_engine *e, int n)
{
    for (int s = 0; s < n; s++) {
        eng_seq_remove(e, s);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_engine [--device cpu|cuda[:N]] [--threads N] [--layers N] [--keep]\n"
            "                    [--full | --range] [--model-dir DIR] [--tokenizer DIR]\n"
            "                    [--ctx 512,2048] [--batches 1,16,64] [--prefill 512,2048]\n"
            "                    [--steps N] [--warmup N] [--prefill-reps N] [--max-tokens N]\n"
            "                    [--gemm-n N] [--mem-gb X] [--profile]\n"
            "       bench_engine --write-only --model-dir DIR [--layers N] [--tokenizer DIR]\n"
            "       bench_engine --vs-llamacpp [--llamacpp-lib SO] [--work DIR] [--python PY]\n"
            "                    [--layers 4] [--threads 1,2] [--formats bf16,q8_0,q4_0]\n"
            "                    [--reps 3] [--steps 16] [--prefill 512] [--batch 16]\n"
            "                    [--tokenizer DIR] [--rewrite] [--correctness-only]\n"
            "                    [--no-correctness]\n");
}

/* --vs-llamacpp: its own options (engine_race.c). */
static int race_main(int argc, char **argv)
{
    struct race_opts o = {.lib = "build/llamacpp-cpu/b/bin/libllama.so",
                          .work = "/tmp/helix-race",
                          .python = "build/venv-gguf/bin/python",
                          .n_layers = 4,
                          .threads = {1, 2},
                          .n_threads = 2,
                          .fmts = {"bf16", "q8_0", "q4_0"},
                          .n_fmts = 3,
                          .reps = 3,
                          .steps = 16,
                          .prefill = 512,
                          .batch = 16};
    static char fmt_buf[64];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (strcmp(a, "--vs-llamacpp") == 0) {
            continue;
        } else if (strcmp(a, "--rewrite") == 0) {
            o.rewrite = 1;
        } else if (strcmp(a, "--correctness-only") == 0) {
            o.correctness_only = 1;
        } else if (strcmp(a, "--no-correctness") == 0) {
            o.skip_correctness = 1;
        } else if (!v) {
            ok = 0;
        } else if (strcmp(a, "--llamacpp-lib") == 0) {
            o.lib = argv[++i];
        } else if (strcmp(a, "--work") == 0) {
            o.work = argv[++i];
        } else if (strcmp(a, "--python") == 0) {
            o.python = argv[++i];
        } else if (strcmp(a, "--tokenizer") == 0) {
            o.tokenizer = argv[++i];
        } else if (strcmp(a, "--layers") == 0) {
            o.n_layers = (int)strtol(argv[++i], NULL, 10);
            ok = o.n_layers >= 1 && o.n_layers <= 32;
        } else if (strcmp(a, "--threads") == 0) {
            ok = (o.n_threads = parse_list(argv[++i], o.threads, 4)) > 0;
        } else if (strcmp(a, "--formats") == 0) {
            snprintf(fmt_buf, sizeof(fmt_buf), "%s", argv[++i]);
            o.n_fmts = 0;
            for (char *t = fmt_buf; t && *t && o.n_fmts < 3;) {
                char *comma = strchr(t, ',');
                if (comma) {
                    *comma = '\0';
                }
                ok &= strcmp(t, "bf16") == 0 || strcmp(t, "q8_0") == 0 || strcmp(t, "q4_0") == 0;
                o.fmts[o.n_fmts++] = t;
                t = comma ? comma + 1 : NULL;
            }
        } else if (strcmp(a, "--reps") == 0) {
            ok = (o.reps = (int)strtol(argv[++i], NULL, 10)) >= 1;
        } else if (strcmp(a, "--steps") == 0) {
            ok = (o.steps = (int)strtol(argv[++i], NULL, 10)) >= 1;
        } else if (strcmp(a, "--prefill") == 0) {
            o.prefill = (int)strtol(argv[++i], NULL, 10);
            ok = o.prefill >= 0 && o.prefill <= 4096;
        } else if (strcmp(a, "--batch") == 0) {
            o.batch = (int)strtol(argv[++i], NULL, 10);
            ok = o.batch >= 1 && o.batch <= 64;
        } else {
            ok = 0;
        }
        if (!ok) {
            usage();
            return 2;
        }
    }
    return run_vs_llamacpp(&o);
}

int main(int argc, char **argv)
{
    int n_layers = 0;
    int threads = 0;
    int keep = 0;
    int full = -1; /* -1: on the GPU, the whole model; on the CPU, the middle range */
    int write_only = 0;
    const char *device = "cpu";
    struct full_opts fo = {.steps = 10,
                           .warmup = 3,
                           .prefill_reps = 3,
                           .max_tokens = 2048,
                           .gemm_n = 8192,
                           .ctx = {512, 2048},
                           .n_ctx = 2,
                           .batch = {1, 16, 64},
                           .n_batch = 3,
                           .pre = {512, 2048},
                           .n_pre = 2};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--vs-llamacpp") == 0) {
            return race_main(argc, argv);
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int list_ok = 1;
        if (strcmp(a, "--layers") == 0 && v) {
            n_layers = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(a, "--threads") == 0 && v) {
            threads = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(a, "--device") == 0 && v) {
            device = argv[++i];
        } else if (strcmp(a, "--keep") == 0) {
            keep = 1;
        } else if (strcmp(a, "--full") == 0) {
            full = 1;
        } else if (strcmp(a, "--range") == 0) {
            full = 0;
        } else if (strcmp(a, "--write-only") == 0) {
            write_only = 1;
        } else if (strcmp(a, "--profile") == 0) {
            fo.profile = 1;
        } else if (strcmp(a, "--model-dir") == 0 && v) {
            fo.model_dir = argv[++i];
        } else if (strcmp(a, "--tokenizer") == 0 && v) {
            fo.tokenizer = argv[++i];
        } else if (strcmp(a, "--ctx") == 0 && v) {
            list_ok = (fo.n_ctx = parse_list(argv[++i], fo.ctx, MAX_LIST)) > 0;
        } else if (strcmp(a, "--batches") == 0 && v) {
            list_ok = (fo.n_batch = parse_list(argv[++i], fo.batch, MAX_LIST)) > 0;
            for (int k = 0; list_ok && k < fo.n_batch; k++) {
                list_ok = fo.batch[k] <= MAX_BATCH;
            }
        } else if (strcmp(a, "--prefill") == 0 && v) {
            list_ok = (fo.n_pre = parse_list(argv[++i], fo.pre, MAX_LIST)) >= 0;
        } else if (strcmp(a, "--steps") == 0 && v) {
            fo.steps = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(a, "--warmup") == 0 && v) {
            fo.warmup = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(a, "--prefill-reps") == 0 && v) {
            fo.prefill_reps = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(a, "--max-tokens") == 0 && v) {
            fo.max_tokens = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(a, "--gemm-n") == 0 && v) {
            fo.gemm_n = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(a, "--mem-gb") == 0 && v) {
            fo.mem_gb = strtod(argv[++i], NULL);
        } else {
            usage();
            return 2;
        }
        if (!list_ok) {
            fprintf(stderr,
                    "bench_engine: bad list for %s (positive integers, comma-separated; "
                    "batches <= %d)\n",
                    a, MAX_BATCH);
            return 2;
        }
    }
    if (fo.steps < 1 || fo.warmup < 0 || fo.prefill_reps < 1 || fo.max_tokens < 1 ||
        fo.gemm_n < 64) {
        fprintf(stderr, "bench_engine: --steps, --prefill-reps, --max-tokens must be >= 1, "
                        "--warmup >= 0, --gemm-n >= 64\n");
        return 2;
    }
    if (write_only) { /* only the whole model, for the peers: no backend, no timing */
        if (!fo.model_dir) {
            fprintf(stderr, "bench_engine: --write-only needs --model-dir DIR\n");
            return 2;
        }
        if (n_layers < 0 || n_layers > 32) {
            fprintf(stderr, "bench_engine: --layers must be 1..32\n");
            return 2;
        }
        mkdir(fo.model_dir, 0755);
        double t0 = hx_clock_now();
        int wr = write_7b(fo.model_dir, 1, 0, n_layers ? n_layers : LAYERS7, 1);
        if (wr < 0) {
            fprintf(stderr, "bench_engine: cannot write the model to %s\n", fo.model_dir);
            return 1;
        }
        const char *tok_src = copy_tokenizer(fo.model_dir, fo.tokenizer);
        printf("# %s the model in %s (%.1f s); tokenizer from %s\n", wr == 1 ? "reused" : "wrote",
               fo.model_dir, hx_clock_now() - t0,
               tok_src ? tok_src : "nowhere (not found: --tokenizer DIR)");
        return tok_src ? 0 : 1;
    }
    struct hx_diag d = {0};
    struct eng_backend *be;
    if (eng_backend_open(device, threads, &be, &d) != HX_OK) {
        die("backend", &d);
    }
    int on_gpu = strcmp(eng_backend_name(be), "cuda") == 0;
    if (full < 0) {
        full = on_gpu;
    }
    if (n_layers == 0) {
        n_layers = full ? LAYERS7 : 4;
    }
    if (n_layers < 1 || n_layers > 32) {
        fprintf(stderr, "bench_engine: --layers must be 1..32\n");
        return 2;
    }
    fo.n_layers = n_layers;
    fo.keep = keep;
    printf("device %s\n", device);
#ifdef HX_HAVE_CUDA
    if (on_gpu) {
        printf("gpu_name %s\n", eng_cuda_device_name(be));
    }
#endif
    if (threads <= 0) {
        threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    printf("threads %d\n", threads);
    float *bw_buf = xmalloc(BW_FLOATS * sizeof(float));
    for (size_t i = 0; i < BW_FLOATS; i++) {
        bw_buf[i] = (float)(i & 7);
    }
    double bw = measure_bandwidth(bw_buf, threads, 5);
#ifdef HX_HAVE_CUDA
    if (on_gpu) {
        bw = eng_cuda_read_bandwidth(be, (size_t)4 << 30, 5);
    }
#endif
    printf("mem_read_bandwidth_GBps %.2f (%s)\n", bw / 1e9, on_gpu ? "GPU device memory" : "host");
    fflush(stdout);

    /* ---- bundled model ---- */
    {
        struct eng_model *m;
        struct eng_engine *e;
        if (eng_model_load("models/kjv-llama-6m", 0, -1, be, &m, &d) != HX_OK) {
            die("load kjv-llama-6m (run from the repository root)", &d);
        }
        struct eng_engine_opts o = {.max_seqs = 16, .max_tokens = 256, .max_ctx = 512};
        if (eng_engine_new(m, &o, &e, &d) != HX_OK) {
            die("engine", &d);
        }
        int32_t ids[256];
        for (int i = 0; i < 256; i++) {
            ids[i] = (int32_t)(7 + (i * 131) % 4000);
        }
        float *logits = xmalloc(16 * 4096 * sizeof(float));
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = hx_clock_now();
            prefill(e, 1, 1, 256, ids, NULL, 256);
            double dt = hx_clock_now() - t0;
            best = dt < best ? dt : best;
            remove_all(e, 1);
        }
        printf("kjv6m_prefill_tok_s %.0f\n", 256 / best);
        prefill(e, 1, 1, 32, ids, NULL, 256);
        double b1 = decode(e, 1, 1, 32, 128, NULL, logits);
        remove_all(e, 1);
        prefill(e, 1, 16, 32, ids, NULL, 256);
        double b16 = decode(e, 1, 16, 32, 64, NULL, logits);
        remove_all(e, 16);
        printf("kjv6m_decode_b1_tok_s %.0f\n", 1 / b1);
        printf("kjv6m_decode_b16_tok_s %.0f ratio_to_b1 %.2f\n", 16 / b16, b1 * 16 / b16);
        xfree(logits);
        eng_engine_free(e);
        eng_model_free(m);
    }

    if (full) {
        xfree(bw_buf);
        int rc = run_full(be, on_gpu, bw, &fo);
        eng_backend_free(be);
        return rc;
    }

    /* ---- Llama-2-7B-shaped middle range ---- */
    char dir[] = "/tmp/hx_bench_engine_XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_engine: mkdtemp failed\n");
        return 1;
    }
    int first = 8; /* a middle stage: layers [8, 8 + n_layers), no embedding or head */
    double t0 = hx_clock_now();
    if (write_7b(dir, 0, first, n_layers, 0) != 0) {
        fprintf(stderr, "bench_engine: cannot write %s\n", dir);
        return 1;
    }
    printf("# wrote %d random bf16 layers of a Llama-2-7B shape to %s in %.1f s\n", n_layers, dir,
           hx_clock_now() - t0);
    struct eng_model *m;
    struct eng_engine *e;
    if (eng_model_load(dir, first, first + n_layers, be, &m, &d) != HX_OK) {
        die("load 7B range", &d);
    }
    size_t layer_bytes = eng_model_layer_bytes(m);
    struct eng_engine_opts o = {.max_seqs = 33, .max_tokens = 128, .max_ctx = 128};
    o.kv_bytes = (size_t)512 << 20;
    if (eng_engine_new(m, &o, &e, &d) != HX_OK) {
        die("engine", &d);
    }
    float *act = xmalloc((size_t)128 * H7 * sizeof(float));
    for (size_t i = 0; i < (size_t)128 * H7; i++) {
        act[i] = (float)((int)(i * 2654435761u % 2001) - 1000) / 1000.0f;
    }
    /* warm the page cache mapping (first touch of the mmap) */
    prefill(e, 0, 1, 1, NULL, act, 128);
    remove_all(e, 1);
    double best = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        double ts = hx_clock_now();
        prefill(e, 0, 1, 128, NULL, act, 128);
        double dt = hx_clock_now() - ts;
        best = dt < best ? dt : best;
        remove_all(e, 1);
    }
    printf("llama7b_range_layers %d\n", n_layers);
    printf("llama7b_layer_MB %.1f\n", (double)layer_bytes / 1e6);
    printf("llama7b_prefill_tok_s %.1f (per layer %.1f)\n", 128 / best, 128 / best * n_layers);

    /*
     * Decode, in rounds that each re-measure the bandwidth right before timing batch 1 and
     * batch 32, so every ratio compares figures taken under the same conditions (this machine
     * may be shared); the summary uses the best of each.
     */
    prefill(e, 0, 33, 16, NULL, act, 128); /* sequence 32 decodes alone, 0..31 together */
    int pos1 = 16;
    int pos32 = 16;
    double best_b1 = 1e9;
    double best_b32 = 1e9;
    for (int round = 0; round < 3; round++) {
        double bw_r = measure_bandwidth(bw_buf, threads, 2);
#ifdef HX_HAVE_CUDA
        if (on_gpu) {
            bw_r = eng_cuda_read_bandwidth(be, (size_t)4 << 30, 3);
        }
#endif
        bw = bw_r > bw ? bw_r : bw;
        struct hx_diag dd = {0};
        struct eng_seq_step one = {32, pos1++, 1, NULL, act};
        if (eng_engine_step(e, &one, 1, NULL, &dd) != HX_OK) { /* warm */
            die("decode", &dd);
        }
        double t1 = 1e9;
        for (int i = 0; i < 6; i++) {
            one.pos = pos1++;
            double ts = hx_clock_now();
            if (eng_engine_step(e, &one, 1, NULL, &dd) != HX_OK) {
                die("decode", &dd);
            }
            double dt = hx_clock_now() - ts;
            t1 = dt < t1 ? dt : t1;
        }
        double t32 = decode(e, 0, 32, pos32, 2, act, NULL);
        pos32 += 2;
        best_b1 = t1 < best_b1 ? t1 : best_b1;
        best_b32 = t32 < best_b32 ? t32 : best_b32;
        double floor_r = (double)layer_bytes / bw_r;
        printf("# round %d: bandwidth %.1f GB/s, b1 %.2f ms/layer (%.2fx floor), b32 %.2fx b1\n",
               round, bw_r / 1e9, t1 / n_layers * 1e3, t1 / n_layers / floor_r, t1 * 32 / t32);
    }
    double per_layer = best_b1 / n_layers;
    double floor_s = (double)layer_bytes / bw;
    printf("llama7b_decode_b1_ms_per_layer %.2f floor_ms %.2f ratio %.2f goal<=1.5\n",
           per_layer * 1e3, floor_s * 1e3, per_layer / floor_s);
    printf("llama7b_decode_b1_tok_s %.2f (per layer %.1f)\n", 1 / best_b1, n_layers / best_b1);
    printf("llama7b_decode_b32_tok_s %.2f ratio_to_b1 %.2f goal>=8\n", 32 / best_b32,
           best_b1 * 32 / best_b32);
    remove_all(e, 33);
    int used;
    int total;
    eng_kv_usage(e, &used, &total);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak_rss_MB %.1f (includes %.1f MB of mapped weights)\n", (double)ru.ru_maxrss / 1024,
           (double)eng_model_weight_bytes(m) / 1e6);
    printf("peak_alloc_MB %.1f (KV cache %.1f MB, activations, scratch)\n",
           (double)hx_alloc_peak_bytes() / 1e6, (double)o.kv_bytes / 1e6);
    xfree(act);
    xfree(bw_buf);
    eng_engine_free(e);
    eng_model_free(m);
    eng_backend_free(be);
    if (!keep) {
        char p[600];
        snprintf(p, sizeof(p), "%s/model.safetensors", dir);
        unlink(p);
        snprintf(p, sizeof(p), "%s/config.json", dir);
        unlink(p);
        rmdir(dir);
    }
    return 0;
}
