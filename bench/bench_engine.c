/*
 * bench_engine.c - CPU engine throughput, each figure printed next to its anchor as a ratio.
 *
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
 * Usage: bench_engine [--layers N (default 4)] [--threads N (default all CPUs)] [--keep]
 *                     [--device cpu|cuda[:N]]
 * With --device cuda (a `make CUDA=1` build) the engine runs on the GPU and the anchor is the
 * GPU's device-memory read bandwidth, measured here by the CUDA backend.
 * Output lines are "key value" pairs, machine-readable.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "engine/engine.h"
#ifdef HX_HAVE_CUDA
#include "engine/cuda/cuda.h"
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HOT                                                                                        \
    __attribute__((optimize("O3"), target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT
#endif

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

/* ---- a random Llama-2-7B-shaped range on disk ----------------------------------------- */

#define H7 4096
#define FFN7 11008
#define VOCAB7 32000
#define LAYERS7 32

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint16_t rand_bf16(float scale)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    float f = ((float)(rng >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * scale;
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return (uint16_t)(bits >> 16);
}

struct tensor_spec {
    char name[96];
    long rows;
    long cols; /* 0: vector */
};

static int write_7b_range(const char *dir, int first, int n_layers)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        return -1;
    }
    fprintf(f,
            "{\"model_type\":\"llama\",\"num_hidden_layers\":%d,\"hidden_size\":%d,"
            "\"num_attention_heads\":32,\"num_key_value_heads\":32,\"intermediate_size\":%d,"
            "\"vocab_size\":%d,\"max_position_embeddings\":4096,\"rms_norm_eps\":1e-5,"
            "\"rope_theta\":10000.0,\"tie_word_embeddings\":false}\n",
            LAYERS7, H7, FFN7, VOCAB7);
    fclose(f);
    int n_t = n_layers * 9;
    struct tensor_spec *ts = xcalloc((size_t)n_t, sizeof(*ts));
    static const struct {
        const char *suffix;
        long rows;
        long cols;
    } per_layer[9] = {
        {"input_layernorm.weight", H7, 0},   {"self_attn.q_proj.weight", H7, H7},
        {"self_attn.k_proj.weight", H7, H7}, {"self_attn.v_proj.weight", H7, H7},
        {"self_attn.o_proj.weight", H7, H7}, {"post_attention_layernorm.weight", H7, 0},
        {"mlp.gate_proj.weight", FFN7, H7},  {"mlp.up_proj.weight", FFN7, H7},
        {"mlp.down_proj.weight", H7, FFN7},
    };
    for (int l = 0; l < n_layers; l++) {
        for (int k = 0; k < 9; k++) {
            struct tensor_spec *t = &ts[l * 9 + k];
            snprintf(t->name, sizeof(t->name), "model.layers.%d.%s", first + l,
                     per_layer[k].suffix);
            t->rows = per_layer[k].rows;
            t->cols = per_layer[k].cols;
        }
    }
    /* header */
    size_t cap = 256 + (size_t)n_t * 200;
    char *hdr = xmalloc(cap);
    size_t hl = (size_t)snprintf(hdr, cap, "{");
    uint64_t off = 0;
    for (int i = 0; i < n_t; i++) {
        uint64_t bytes = (uint64_t)ts[i].rows * (uint64_t)(ts[i].cols ? ts[i].cols : 1) * 2;
        if (ts[i].cols) {
            hl += (size_t)snprintf(hdr + hl, cap - hl,
                                   "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%ld,%ld],"
                                   "\"data_offsets\":[%llu,%llu]}",
                                   i ? "," : "", ts[i].name, ts[i].rows, ts[i].cols,
                                   (unsigned long long)off, (unsigned long long)(off + bytes));
        } else {
            hl += (size_t)snprintf(hdr + hl, cap - hl,
                                   "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%ld],"
                                   "\"data_offsets\":[%llu,%llu]}",
                                   i ? "," : "", ts[i].name, ts[i].rows, (unsigned long long)off,
                                   (unsigned long long)(off + bytes));
        }
        off += bytes;
    }
    hl += (size_t)snprintf(hdr + hl, cap - hl, "}");
    while (hl % 8) {
        hdr[hl++] = ' ';
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    f = fopen(path, "wb");
    if (!f) {
        xfree(hdr);
        xfree(ts);
        return -1;
    }
    uint64_t hlen = hl;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) {
        le[i] = (unsigned char)(hlen >> (8 * i));
    }
    fwrite(le, 1, 8, f);
    fwrite(hdr, 1, hl, f);
    size_t chunk = (size_t)1 << 22;
    uint16_t *buf = xmalloc(chunk * sizeof(uint16_t));
    for (int i = 0; i < n_t; i++) {
        size_t n = (size_t)ts[i].rows * (size_t)(ts[i].cols ? ts[i].cols : 1);
        float scale = ts[i].cols ? 1.0f / 64.0f : 0.0f;
        for (size_t done = 0; done < n;) {
            size_t m = n - done < chunk ? n - done : chunk;
            for (size_t j = 0; j < m; j++) {
                buf[j] = ts[i].cols ? rand_bf16(scale) : (uint16_t)0x3f80; /* norms: 1.0 */
            }
            fwrite(buf, sizeof(uint16_t), m, f);
            done += m;
        }
    }
    int rc = fclose(f);
    xfree(buf);
    xfree(hdr);
    xfree(ts);
    return rc;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static void die(const char *what, const struct hx_diag *d)
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

int main(int argc, char **argv)
{
    int n_layers = 4;
    int threads = 0;
    int keep = 0;
    const char *device = "cpu";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--layers") == 0 && i + 1 < argc) {
            n_layers = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            device = argv[++i];
        } else if (strcmp(argv[i], "--keep") == 0) {
            keep = 1;
        } else {
            fprintf(stderr,
                    "usage: bench_engine [--layers N] [--threads N] [--keep] [--device D]\n");
            return 2;
        }
    }
    if (n_layers < 1 || n_layers > 32) {
        fprintf(stderr, "bench_engine: --layers must be 1..32\n");
        return 2;
    }
    struct hx_diag d = {0};
    struct eng_backend *be;
    if (eng_backend_open(device, threads, &be, &d) != HX_OK) {
        die("backend", &d);
    }
    int on_gpu = strcmp(eng_backend_name(be), "cuda") == 0;
    (void)on_gpu;
    printf("device %s\n", device);
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

    /* ---- Llama-2-7B-shaped middle range ---- */
    char dir[] = "/tmp/hx_bench_engine_XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_engine: mkdtemp failed\n");
        return 1;
    }
    int first = 8; /* a middle stage: layers [8, 8 + n_layers), no embedding or head */
    double t0 = hx_clock_now();
    if (write_7b_range(dir, first, n_layers) != 0) {
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
