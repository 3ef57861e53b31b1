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

/* ---- a random Llama-2-7B-shaped model (or range of it) on disk ------------------------ */

#define H7 4096
#define FFN7 11008
#define VOCAB7 32000
#define LAYERS7 32

/*
 * Random bf16 weights, 4 per splitmix64 output (cheap: 13.5 GB in seconds): a random sign, a
 * magnitude in [2^-10, 2^-6) (one of 4 exponents, 7 random mantissa bits; RMS about 0.007, so
 * activations neither vanish nor blow up through 32 layers of width 4096).
 */
HOT static void fill_bf16(uint16_t *p, size_t n, uint64_t *ctr)
{
    uint64_t c = *ctr;
    size_t q = (n + 3) / 4;
    for (size_t j = 0; j < q; j++) {
        uint64_t z = (c + j) * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        for (size_t k = 0; k < 4 && 4 * j + k < n; k++) {
            uint32_t r = (uint32_t)(z >> (16 * k)) & 0xFFFFu;
            p[4 * j + k] = (uint16_t)((r & 0x807Fu) | ((0x75u + ((r >> 7) & 3u)) << 7));
        }
    }
    *ctr = c + q;
}

struct tensor_spec {
    char name[96];
    long rows;
    long cols; /* 0: vector */
};

/* config.json of the model: a complete Hugging Face LlamaForCausalLM config when full. */
static void config_text(char *buf, size_t cap, int full, int n_layers)
{
    if (!full) {
        snprintf(buf, cap,
                 "{\"model_type\":\"llama\",\"num_hidden_layers\":%d,\"hidden_size\":%d,"
                 "\"num_attention_heads\":32,\"num_key_value_heads\":32,\"intermediate_size\":%d,"
                 "\"vocab_size\":%d,\"max_position_embeddings\":4096,\"rms_norm_eps\":1e-5,"
                 "\"rope_theta\":10000.0,\"tie_word_embeddings\":false}\n",
                 LAYERS7, H7, FFN7, VOCAB7);
        return;
    }
    snprintf(buf, cap,
             "{\n \"architectures\": [\"LlamaForCausalLM\"],\n \"model_type\": \"llama\",\n"
             " \"torch_dtype\": \"bfloat16\",\n \"num_hidden_layers\": %d,\n \"hidden_size\": %d,\n"
             " \"num_attention_heads\": 32,\n \"num_key_value_heads\": 32,\n"
             " \"intermediate_size\": %d,\n \"vocab_size\": %d,\n"
             " \"max_position_embeddings\": 4096,\n \"rms_norm_eps\": 1e-05,\n"
             " \"rope_theta\": 10000.0,\n \"hidden_act\": \"silu\",\n"
             " \"tie_word_embeddings\": false,\n \"bos_token_id\": 1,\n \"eos_token_id\": 2,\n"
             " \"initializer_range\": 0.02,\n \"use_cache\": true\n}\n",
             n_layers, H7, FFN7, VOCAB7);
}

/* Whole file path's contents equal text (and nothing more). */
static int file_equals(const char *path, const char *text)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return 0;
    }
    size_t n = strlen(text);
    char *buf = xmalloc(n + 2);
    size_t got = fread(buf, 1, n + 1, f);
    fclose(f);
    int eq = got == n && memcmp(buf, text, n) == 0;
    xfree(buf);
    return eq;
}

static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/*
 * Write a Llama-2-7B-shaped model to dir: full = 0, layers [first, first + n_layers) of the
 * 32-layer model (a middle pipeline stage: no embedding, norm or head); full = 1, a whole
 * model of n_layers layers with embed_tokens, the final norm and lm_head (a Hugging Face
 * LLaMA directory that transformers and llama.cpp's converter read too). With reuse, a
 * directory already holding exactly this model (same config.json, same file size) is kept.
 * Returns 0, 1 when reused, -1 on error.
 */
static int write_7b(const char *dir, int full, int first, int n_layers, int reuse)
{
    char path[600];
    char cfg[2048];
    config_text(cfg, sizeof(cfg), full, n_layers);
    int n_t = n_layers * 9 + (full ? 3 : 0);
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
    int t = 0;
    if (full) {
        ts[t++] = (struct tensor_spec){"model.embed_tokens.weight", VOCAB7, H7};
    }
    for (int l = 0; l < n_layers; l++) {
        for (int k = 0; k < 9; k++, t++) {
            snprintf(ts[t].name, sizeof(ts[t].name), "model.layers.%d.%s", first + l,
                     per_layer[k].suffix);
            ts[t].rows = per_layer[k].rows;
            ts[t].cols = per_layer[k].cols;
        }
    }
    if (full) {
        ts[t++] = (struct tensor_spec){"model.norm.weight", H7, 0};
        ts[t++] = (struct tensor_spec){"lm_head.weight", VOCAB7, H7};
    }
    /* header */
    size_t cap = 256 + (size_t)n_t * 200;
    char *hdr = xmalloc(cap);
    size_t hl =
        (size_t)snprintf(hdr, cap, "{%s", full ? "\"__metadata__\":{\"format\":\"pt\"}" : "");
    uint64_t off = 0;
    for (int i = 0; i < n_t; i++) {
        uint64_t bytes = (uint64_t)ts[i].rows * (uint64_t)(ts[i].cols ? ts[i].cols : 1) * 2;
        const char *sep = i || full ? "," : "";
        if (ts[i].cols) {
            hl += (size_t)snprintf(hdr + hl, cap - hl,
                                   "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%ld,%ld],"
                                   "\"data_offsets\":[%llu,%llu]}",
                                   sep, ts[i].name, ts[i].rows, ts[i].cols, (unsigned long long)off,
                                   (unsigned long long)(off + bytes));
        } else {
            hl += (size_t)snprintf(hdr + hl, cap - hl,
                                   "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%ld],"
                                   "\"data_offsets\":[%llu,%llu]}",
                                   sep, ts[i].name, ts[i].rows, (unsigned long long)off,
                                   (unsigned long long)(off + bytes));
        }
        off += bytes;
    }
    hl += (size_t)snprintf(hdr + hl, cap - hl, "}");
    while (hl % 8) {
        hdr[hl++] = ' ';
    }
    snprintf(path, sizeof(path), "%s/config.json", dir);
    char st_path[600];
    snprintf(st_path, sizeof(st_path), "%s/model.safetensors", dir);
    if (reuse && file_equals(path, cfg) && file_size(st_path) == (long long)(8 + hl + off)) {
        xfree(hdr);
        xfree(ts);
        return 1;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        xfree(hdr);
        xfree(ts);
        return -1;
    }
    fputs(cfg, f);
    if (fclose(f) != 0) {
        xfree(hdr);
        xfree(ts);
        return -1;
    }
    f = fopen(st_path, "wb");
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
    int bad = fwrite(le, 1, 8, f) != 8 || fwrite(hdr, 1, hl, f) != hl;
    size_t chunk = (size_t)32 << 20; /* elements: 64 MiB per fwrite */
    uint16_t *buf = xmalloc(chunk * sizeof(uint16_t));
    uint64_t ctr = 0x243F6A8885A308D3ULL;
    uint64_t written = 0;
    uint64_t next_report = (uint64_t)2 << 30;
    double t0 = hx_clock_now();
    for (int i = 0; i < n_t && !bad; i++) {
        size_t n = (size_t)ts[i].rows * (size_t)(ts[i].cols ? ts[i].cols : 1);
        if (!ts[i].cols) { /* norms: 1.0 */
            for (size_t j = 0; j < n && j < chunk; j++) {
                buf[j] = (uint16_t)0x3f80;
            }
        }
        for (size_t done = 0; done < n && !bad;) {
            size_t m = n - done < chunk ? n - done : chunk;
            if (ts[i].cols) {
                fill_bf16(buf, m, &ctr);
            }
            bad = fwrite(buf, sizeof(uint16_t), m, f) != m;
            done += m;
            written += m * sizeof(uint16_t);
            if (full && written >= next_report) {
                double dt = hx_clock_now() - t0;
                fprintf(stderr, "# writing %s: %.1f / %.1f GB (%.1f GB/s)\n", st_path,
                        (double)written / 1e9, (double)off / 1e9, (double)written / 1e9 / dt);
                next_report += (uint64_t)2 << 30;
            }
        }
    }
    int rc = fclose(f);
    xfree(buf);
    xfree(hdr);
    xfree(ts);
    return bad || rc != 0 ? -1 : 0;
}

/* Copy src to dst (small files). 0 or -1. */
static int copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb");
    if (!in) {
        return -1;
    }
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[1 << 16];
    size_t n;
    int bad = 0;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        bad |= fwrite(buf, 1, n, out) != n;
    }
    fclose(in);
    bad |= fclose(out) != 0;
    return bad ? -1 : 0;
}

/*
 * The peers need the Llama-2 tokenizer next to the weights (llama.cpp's converter reads
 * tokenizer.json; vocab 32000 matches the model). Copied from the first of: dir_opt
 * (--tokenizer), $HX_LLAMA2_TOKENIZER, ../shared/data/tokenizers/llama2,
 * build/peers/tokenizer/llama2 (the peers' carry folder). Returns the source used or NULL.
 */
static const char *copy_tokenizer(const char *model_dir, const char *dir_opt)
{
    const char *cands[] = {dir_opt, getenv("HX_LLAMA2_TOKENIZER"),
                           "../shared/data/tokenizers/llama2", "build/peers/tokenizer/llama2"};
    static const char *files[] = {"tokenizer.json", "tokenizer_config.json", "tokenizer.model"};
    for (size_t c = 0; c < sizeof(cands) / sizeof(cands[0]); c++) {
        if (!cands[c]) {
            continue;
        }
        char src[600];
        char dst[600];
        snprintf(src, sizeof(src), "%s/tokenizer.json", cands[c]);
        if (file_size(src) <= 0) {
            continue;
        }
        for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
            snprintf(src, sizeof(src), "%s/%s", cands[c], files[k]);
            snprintf(dst, sizeof(dst), "%s/%s", model_dir, files[k]);
            if (file_size(src) > 0 && file_size(dst) != file_size(src)) {
                if (copy_file(src, dst) != 0) {
                    return NULL;
                }
            }
        }
        return cands[c];
    }
    return NULL;
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

/* ---- the whole Llama-2-7B-shaped model (the GPU benchmark) ------------------------------ */

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

/* One figure of the final table. */
struct row {
    char name[48];
    char value[96];
    char anchor[64];
    char ratio[32];
};

static struct row rows[64];
static int n_rows;

static void add_row(const char *name, const char *value, const char *anchor, const char *ratio)
{
    if (n_rows < (int)(sizeof(rows) / sizeof(rows[0]))) {
        struct row *r = &rows[n_rows++];
        snprintf(r->name, sizeof(r->name), "%s", name);
        snprintf(r->value, sizeof(r->value), "%s", value);
        snprintf(r->anchor, sizeof(r->anchor), "%s", anchor);
        snprintf(r->ratio, sizeof(r->ratio), "%s", ratio);
    }
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0 || v > 1 << 20) {
            return -1;
        }
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            return -1;
        }
    }
    return *s ? -1 : n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Free and total memory where the engine's buffers live: the GPU's, or the host's available. */
static void mem_info(struct eng_backend *be, int on_gpu, double mem_gb, size_t *free_b,
                     size_t *total_b)
{
    *free_b = 0;
    *total_b = 0;
#ifdef HX_HAVE_CUDA
    if (on_gpu) {
        eng_cuda_mem_info(be, free_b, total_b);
    }
#endif
    (void)be;
    if (!on_gpu) {
        FILE *f = fopen("/proc/meminfo", "r");
        char line[256];
        while (f && fgets(line, sizeof(line), f)) {
            unsigned long long kb;
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
                *total_b = (size_t)kb * 1024;
            } else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                *free_b = (size_t)kb * 1024;
            }
        }
        if (f) {
            fclose(f);
        }
    }
    if (mem_gb > 0) {
        *free_b = (size_t)(mem_gb * 1e9);
        *total_b = *total_b > *free_b ? *total_b : *free_b;
    }
}

static size_t peak_used; /* device-wide used memory, the most seen after a case */

static void note_used(struct eng_backend *be, int on_gpu, double mem_gb)
{
    size_t fr;
    size_t tot;
    (void)mem_gb; /* the real figure, also under --mem-gb */
    mem_info(be, on_gpu, 0, &fr, &tot);
    if (tot - fr > peak_used) {
        peak_used = tot - fr;
    }
}

/*
 * Device memory an engine needs beyond its KV budget: the activations and logits for
 * max_tokens tokens (float32, as forward.c sizes them) plus room for the backend's scratch,
 * cuBLAS workspaces and the CUDA context's growth. An estimate: the engine's creation is
 * still tried, and a failure is reported as a skip.
 */
static size_t engine_extra_bytes(const struct eng_config *c, int max_tokens, int on_gpu)
{
    size_t T = (size_t)max_tokens;
    size_t per_tok = (size_t)(6 * c->hidden + 2 * c->ffn + c->vocab) * sizeof(float);
    size_t margin = on_gpu ? (size_t)1 << 30 : (size_t)256 << 20;
    return T * per_tok + T * (size_t)c->ffn * sizeof(float) + margin;
}

/* Prefill sequences seq0..seq0+n-1 (already added) to ctx tokens, packing steps of at most
 * max_tokens tokens (one sequence split over steps when ctx > max_tokens). */
static int prefill_full(struct eng_engine *e, int n, int ctx, const int32_t *ids, int max_tokens,
                        struct hx_diag *d)
{
    struct eng_seq_step st[MAX_BATCH];
    int s = 0;
    int pos = 0;
    while (s < n) {
        int k = 0;
        int tok = 0;
        while (s < n && tok < max_tokens && k < MAX_BATCH) {
            int take = ctx - pos < max_tokens - tok ? ctx - pos : max_tokens - tok;
            st[k++] = (struct eng_seq_step){s, pos, take, ids + pos, NULL};
            tok += take;
            pos += take;
            if (pos == ctx) {
                s++;
                pos = 0;
            }
        }
        int rc = eng_engine_step(e, st, k, NULL, d);
        if (rc != HX_OK) {
            return rc;
        }
    }
    return HX_OK;
}

/* One decode step of sequences 0..n-1, all at position pos, with logits. */
static int decode_step(struct eng_engine *e, int n, int pos, int32_t *tok, float *logits,
                       struct hx_diag *d)
{
    struct eng_seq_step st[MAX_BATCH];
    for (int s = 0; s < n; s++) {
        st[s] = (struct eng_seq_step){s, pos, 1, tok, NULL};
    }
    struct eng_step_out out = {.logits = logits};
    int rc = eng_engine_step(e, st, n, &out, d);
    if (rc == HX_OK) {
        *tok = 3 + eng_argmax(logits, 64); /* a data dependence on the output */
    }
    return rc;
}

static int profile_on(struct eng_backend *be, int on_gpu, int on)
{
#ifdef HX_HAVE_CUDA
    if (on_gpu) {
        eng_cuda_profile(be, on);
        return 1;
    }
#endif
    (void)be;
    (void)on_gpu;
    (void)on;
    return 0;
}

static void profile_report(struct eng_backend *be, int on_gpu, const char *what)
{
    printf("# profile %s\n", what);
#ifdef HX_HAVE_CUDA
    if (on_gpu) {
        fflush(stdout);
        eng_cuda_profile_report(be, stdout);
        fflush(stdout);
        return;
    }
#endif
    (void)be;
    (void)on_gpu;
    printf("# (no per-op profile in this build)\n");
}

/* Dense GEMM anchor: cuBLAS bf16 on the GPU, OpenBLAS sgemm on the CPU. FLOP/s. */
static double gemm_anchor(struct eng_backend *be, int on_gpu, int n, const char **what)
{
#ifdef HX_HAVE_CUDA
    if (on_gpu) {
        *what = "cuBLAS bf16 in, fp32 accumulate";
        return eng_cuda_gemm_rate(be, n, 10);
    }
#endif
    (void)be;
    (void)on_gpu;
    *what = "OpenBLAS sgemm, fp32";
    int m = n > 2048 ? 2048 : n;
    float *a = xmalloc((size_t)m * (size_t)m * sizeof(float));
    float *b = xmalloc((size_t)m * (size_t)m * sizeof(float));
    float *c = xmalloc((size_t)m * (size_t)m * sizeof(float));
    for (size_t i = 0; i < (size_t)m * (size_t)m; i++) {
        a[i] = (float)((int)(i * 2654435761u % 2001) - 1000) / 1000.0f;
        b[i] = (float)((int)(i * 40503u % 2001) - 1000) / 1000.0f;
    }
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = hx_clock_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1.0f, a, m, b, m, 0.0f, c,
                    m);
        double dt = hx_clock_now() - t0;
        best = r > 0 && dt < best ? dt : best; /* r = 0: warm-up */
    }
    xfree(a);
    xfree(b);
    xfree(c);
    return 2.0 * (double)m * (double)m * (double)m / best;
}

/* Parameters of the decoder layers and the final norm (lm_head and embedding apart). */
static double params_layers(const struct eng_config *c)
{
    double h = c->hidden;
    double q = (double)c->n_heads * c->head_dim;
    double kv = (double)c->n_kv_heads * c->head_dim;
    double layer = h * q + 2 * h * kv + q * h + 3 * h * c->ffn + 2 * h;
    return c->n_layers * layer + h;
}

static int run_full(struct eng_backend *be, int on_gpu, double bw, const struct full_opts *fo)
{
    struct hx_diag d = {0};
    char tmpl[] = "/tmp/hx_bench_llama7b_XXXXXX";
    const char *dir = fo->model_dir;
    if (!dir) {
        if (!mkdtemp(tmpl)) {
            fprintf(stderr, "bench_engine: mkdtemp failed\n");
            return 1;
        }
        dir = tmpl;
    } else {
        mkdir(dir, 0755);
    }
    const char *gemm_what = "";
    double gemm = gemm_anchor(be, on_gpu, fo->gemm_n, &gemm_what);
    printf("gemm_%s_TFLOPs %.2f (%s, %d^3, best of 10)\n", on_gpu ? "bf16" : "f32", gemm / 1e12,
           gemm_what, on_gpu ? fo->gemm_n : (fo->gemm_n > 2048 ? 2048 : fo->gemm_n));
    char buf[192];
    char buf2[96];
    snprintf(buf, sizeof(buf), "%.0f GB/s", bw / 1e9);
    add_row(on_gpu ? "HBM read bandwidth" : "host read bandwidth", buf, "", "");
    snprintf(buf, sizeof(buf), "%.1f TFLOP/s", gemm / 1e12);
    add_row(on_gpu ? "bf16 GEMM (cuBLAS)" : "f32 GEMM (OpenBLAS)", buf, "", "");

    double t0 = hx_clock_now();
    int wr = write_7b(dir, 1, 0, fo->n_layers, 1);
    if (wr < 0) {
        fprintf(stderr, "bench_engine: cannot write the model to %s\n", dir);
        return 1;
    }
    printf("# %s %d-layer Llama-2-7B-shaped bf16 model (embedding, lm_head) in %s (%.1f s)\n",
           wr == 1 ? "reusing the" : "wrote a random", fo->n_layers, dir, hx_clock_now() - t0);
    const char *tok_src = copy_tokenizer(dir, fo->tokenizer);
    if (tok_src) {
        printf("# tokenizer files from %s\n", tok_src);
    } else {
        printf("# no Llama-2 tokenizer found (--tokenizer DIR): the peers' GGUF conversion needs "
               "tokenizer.json in %s\n",
               dir);
    }
    fflush(stdout);

    t0 = hx_clock_now();
    struct eng_model *m;
    if (eng_model_load(dir, 0, -1, be, &m, &d) != HX_OK) {
        die("load the 7B-shaped model", &d);
    }
    const struct eng_config *c = eng_model_config(m);
    size_t wbytes = eng_model_weight_bytes(m);
    double P_layers = params_layers(c);
    double P_head = (double)c->vocab * c->hidden;
    double P = P_layers + P_head;
    printf("llama7b_layers %d\n", c->n_layers);
    printf("llama7b_weight_GB %.2f (read per step: layers, final norm, lm_head)\n",
           (double)wbytes / 1e9);
    printf("llama7b_weight_bytes %zu\n", wbytes);
    printf("llama7b_params_B %.3f (without the embedding)\n", P / 1e9);
    printf("# loaded in %.1f s\n", hx_clock_now() - t0);

    /* KV bytes per token, from the engine itself (the backend picks the KV dtype). */
    size_t block_bytes;
    {
        struct eng_engine *pe;
        struct eng_engine_opts po = {.max_seqs = 1, .max_tokens = 16, .max_ctx = ENG_KV_BLOCK};
        if (eng_engine_new(m, &po, &pe, &d) != HX_OK) {
            die("engine (probe)", &d);
        }
        block_bytes = eng_kv_block_bytes(pe);
        eng_engine_free(pe);
    }
    size_t kv_tok = block_bytes / ENG_KV_BLOCK;
    size_t kv_elems = (size_t)c->n_layers * 2 * (size_t)c->n_kv_heads * (size_t)c->head_dim;
    printf("kv_bytes_per_token %zu (%.1f bytes per element)\n", kv_tok,
           (double)kv_tok / (double)kv_elems);
    size_t fr;
    size_t tot;
    mem_info(be, on_gpu, fo->mem_gb, &fr, &tot);
    printf("device_mem_GB free %.1f total %.1f (after loading the weights)\n", (double)fr / 1e9,
           (double)tot / 1e9);
    note_used(be, on_gpu, fo->mem_gb);

    int max_b = 1;
    for (int i = 0; i < fo->n_batch; i++) {
        max_b = fo->batch[i] > max_b ? fo->batch[i] : max_b;
    }
    int max_ctx_all = 1;
    for (int i = 0; i < fo->n_ctx; i++) {
        max_ctx_all = fo->ctx[i] > max_ctx_all ? fo->ctx[i] : max_ctx_all;
    }
    for (int i = 0; i < fo->n_pre; i++) {
        max_ctx_all = fo->pre[i] > max_ctx_all ? fo->pre[i] : max_ctx_all;
    }
    int32_t *ids = xmalloc(((size_t)max_ctx_all + 16) * sizeof(int32_t));
    for (int i = 0; i < max_ctx_all + 16; i++) {
        ids[i] = (int32_t)(3 + (uint32_t)(i * 2654435761u) % (uint32_t)(c->vocab - 3));
    }
    float *logits = xmalloc((size_t)max_b * (size_t)c->vocab * sizeof(float));
    int n_timed = fo->warmup + fo->steps;
    double *times = xmalloc((size_t)(n_timed + 1) * sizeof(double));

    /* ---- decode ---- */
    for (int ci = 0; ci < fo->n_ctx; ci++) {
        int ctx = fo->ctx[ci];
        int max_ctx = ctx + n_timed + 2; /* + the profiled step */
        size_t per_seq = (size_t)((max_ctx + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK) * block_bytes;
        size_t extra = engine_extra_bytes(c, fo->max_tokens, on_gpu);
        mem_info(be, on_gpu, fo->mem_gb, &fr, &tot);
        /* the largest batch whose KV fits, tried in descending order */
        int sorted[MAX_LIST];
        int ns = fo->n_batch;
        memcpy(sorted, fo->batch, sizeof(int) * (size_t)ns);
        for (int i = 1; i < ns; i++) {
            for (int j = i; j > 0 && sorted[j] > sorted[j - 1]; j--) {
                int tmp = sorted[j];
                sorted[j] = sorted[j - 1];
                sorted[j - 1] = tmp;
            }
        }
        struct eng_engine *e = NULL;
        int fit = 0;
        char why[MAX_LIST][128];
        for (int i = 0; i < ns; i++) {
            int b = sorted[i];
            size_t need = (size_t)b * per_seq + extra;
            snprintf(why[i], sizeof(why[i]), "needs %.2f GB, %.2f GB free", (double)need / 1e9,
                     (double)fr / 1e9);
            if (e || need > fr) {
                continue;
            }
            struct eng_engine_opts o = {.max_seqs = max_b,
                                        .max_tokens = fo->max_tokens,
                                        .max_ctx = max_ctx,
                                        .kv_bytes = (size_t)b * per_seq};
            struct hx_diag de = {0};
            if (eng_engine_new(m, &o, &e, &de) == HX_OK) {
                fit = b;
            } else {
                e = NULL;
                snprintf(why[i], sizeof(why[i]), "needs %.2f GB, %.2f GB free: %.60s",
                         (double)need / 1e9, (double)fr / 1e9, de.msg);
            }
        }
        for (int bi = 0; bi < fo->n_batch; bi++) {
            int b = fo->batch[bi];
            char name[64];
            snprintf(name, sizeof(name), "decode_b%d_ctx%d", b, ctx);
            if (b > fit) {
                int k = 0;
                while (k < ns && sorted[k] != b) {
                    k++;
                }
                printf("%s skipped (%s)\n", name, why[k]);
                snprintf(buf, sizeof(buf), "skipped (%s)", why[k]);
                add_row(name, buf, "", "");
                fflush(stdout);
                continue;
            }
            struct hx_diag dc = {0};
            double tp = hx_clock_now();
            int rc = HX_OK;
            for (int s = 0; s < b && rc == HX_OK; s++) {
                rc = eng_seq_add(e, s, &dc);
            }
            if (rc == HX_OK) {
                rc = prefill_full(e, b, ctx, ids, fo->max_tokens, &dc);
            }
            tp = hx_clock_now() - tp;
            int32_t tok = 5;
            int pos = ctx;
            for (int i = 0; i < n_timed && rc == HX_OK; i++) {
                double ts = hx_clock_now();
                rc = decode_step(e, b, pos++, &tok, logits, &dc);
                times[i] = hx_clock_now() - ts;
            }
            if (rc == HX_OK) {
                note_used(be, on_gpu, fo->mem_gb);
            }
            if (rc == HX_OK && fo->profile && ci == 0 && (bi == 0 || b == fit)) {
                if (profile_on(be, on_gpu, 1)) {
                    rc = decode_step(e, b, pos++, &tok, logits, &dc);
                    profile_on(be, on_gpu, 0);
                }
                profile_report(be, on_gpu, name);
            }
            for (int s = 0; s < b; s++) {
                eng_seq_remove(e, s);
            }
            if (rc != HX_OK) {
                printf("%s failed (%s)\n", name, dc.msg);
                snprintf(buf, sizeof(buf), "failed (%.80s)", dc.msg);
                add_row(name, buf, "", "");
                fflush(stdout);
                continue;
            }
            double ms = median(times + fo->warmup, fo->steps) * 1e3;
            double floor_ms = ((double)wbytes + (double)b * ctx * (double)kv_tok) / bw * 1e3;
            printf("%s_ms %.3f tok_s %.1f floor_ms %.3f ratio %.2f (prefill %.1f s)\n", name, ms,
                   b * 1e3 / ms, floor_ms, ms / floor_ms, tp);
            snprintf(buf, sizeof(buf), "%.2f ms/step, %.0f tok/s", ms, b * 1e3 / ms);
            snprintf(buf2, sizeof(buf2), "floor %.2f ms", floor_ms);
            char rb[32];
            snprintf(rb, sizeof(rb), "%.2fx floor", ms / floor_ms);
            add_row(name, buf, buf2, rb);
            fflush(stdout);
        }
        eng_engine_free(e);
    }

    /* ---- prefill: batch 1, one step, logits of the last token ---- */
    int max_pre = 1;
    for (int i = 0; i < fo->n_pre; i++) {
        max_pre = fo->pre[i] > max_pre ? fo->pre[i] : max_pre;
    }
    if (fo->n_pre > 0) {
        struct eng_engine *e = NULL;
        int mt = fo->max_tokens > max_pre ? fo->max_tokens : max_pre;
        size_t kvb = (size_t)((max_pre + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK) * block_bytes;
        size_t need = kvb + engine_extra_bytes(c, mt, on_gpu);
        mem_info(be, on_gpu, fo->mem_gb, &fr, &tot);
        struct eng_engine_opts o = {
            .max_seqs = 1, .max_tokens = mt, .max_ctx = max_pre, .kv_bytes = kvb};
        struct hx_diag de = {0};
        if (need > fr || eng_engine_new(m, &o, &e, &de) != HX_OK) {
            e = NULL;
            for (int i = 0; i < fo->n_pre; i++) {
                char name[48];
                snprintf(name, sizeof(name), "prefill_%d", fo->pre[i]);
                snprintf(buf, sizeof(buf), "skipped (needs %.2f GB, %.2f GB free%s%.60s)",
                         (double)need / 1e9, (double)fr / 1e9, de.msg[0] ? ": " : "", de.msg);
                printf("%s %s\n", name, buf);
                add_row(name, buf, "", "");
            }
        }
        for (int i = 0; e && i < fo->n_pre; i++) {
            int n = fo->pre[i];
            int reps = fo->prefill_reps;
            struct hx_diag dp = {0};
            int rc = HX_OK;
            int do_prof = fo->profile && n == max_pre;
            for (int r = 0; r < 1 + reps + do_prof && rc == HX_OK; r++) {
                int prof = do_prof && r == 1 + reps;
                struct eng_seq_step st = {0, 0, n, ids, NULL};
                struct eng_step_out out = {.logits = logits};
                rc = eng_seq_add(e, 0, &dp);
                if (prof) {
                    prof = profile_on(be, on_gpu, 1);
                }
                double ts = hx_clock_now();
                if (rc == HX_OK) {
                    rc = eng_engine_step(e, &st, 1, &out, &dp);
                }
                double dt = hx_clock_now() - ts;
                if (prof) {
                    profile_on(be, on_gpu, 0);
                }
                if (r > 0 && r <= reps) {
                    times[r - 1] = dt;
                }
                if (rc == HX_OK && r == 0) {
                    note_used(be, on_gpu, fo->mem_gb);
                }
                eng_seq_remove(e, 0);
            }
            char name[48];
            snprintf(name, sizeof(name), "prefill_%d", n);
            if (rc != HX_OK) {
                printf("%s failed (%s)\n", name, dp.msg);
                snprintf(buf, sizeof(buf), "failed (%.80s)", dp.msg);
                add_row(name, buf, "", "");
                continue;
            }
            if (do_prof) {
                char pn[64];
                snprintf(pn, sizeof(pn), "prefill_%d", n);
                profile_report(be, on_gpu, pn);
            }
            double s = median(times, reps);
            /* the layers for every token, lm_head for the last one only, causal attention
             * (QK^T and PV: 2 x 2 x n^2/2 x q width per layer) */
            double flops = 2.0 * P_layers * n + 2.0 * P_head +
                           2.0 * c->n_layers * (double)n * n * ((double)c->n_heads * c->head_dim);
            printf("%s_ms %.2f tok_s %.0f TFLOPs %.1f gemm_frac %.3f\n", name, s * 1e3, n / s,
                   flops / s / 1e12, flops / s / gemm);
            snprintf(buf, sizeof(buf), "%.1f ms, %.0f tok/s, %.1f TFLOP/s", s * 1e3, n / s,
                     flops / s / 1e12);
            snprintf(buf2, sizeof(buf2), "GEMM %.1f TFLOP/s", gemm / 1e12);
            char rb[32];
            snprintf(rb, sizeof(rb), "%.2f of GEMM", flops / s / gemm);
            add_row(name, buf, buf2, rb);
            fflush(stdout);
        }
        eng_engine_free(e);
    }

    /* ---- memory ---- */
    size_t peak = 0;
#ifdef HX_HAVE_CUDA
    if (on_gpu) {
        peak = eng_cuda_peak_bytes(be);
    }
#endif
    if (!on_gpu) {
        peak = hx_alloc_peak_bytes();
    }
    if (peak) {
        printf("peak_alloc_MB %.1f (%s: weights, KV, activations, scratch)\n", (double)peak / 1e6,
               on_gpu ? "the CUDA backend's device allocations" : "engine allocations");
        snprintf(buf, sizeof(buf), "%.2f GB", (double)peak / 1e9);
    } else {
        printf("peak_alloc_MB n/a (eng_cuda_peak_bytes not in this build)\n");
        snprintf(buf, sizeof(buf), "n/a");
    }
    add_row(on_gpu ? "peak device allocations" : "peak engine allocations", buf, "", "");
    printf("device_used_max_MB %.1f (%s, the most seen after a case)\n", (double)peak_used / 1e6,
           on_gpu ? "device-wide, cudaMemGetInfo" : "host, MemTotal - MemAvailable");
    snprintf(buf, sizeof(buf), "%.2f GB of %.1f GB", (double)peak_used / 1e9, (double)tot / 1e9);
    add_row(on_gpu ? "device memory used (max)" : "host memory used (max)", buf, "", "");

    printf("\n| figure | value | anchor | ratio |\n|---|---|---|---|\n");
    for (int i = 0; i < n_rows; i++) {
        printf("| %s | %s | %s | %s |\n", rows[i].name, rows[i].value, rows[i].anchor,
               rows[i].ratio);
    }
    xfree(times);
    xfree(logits);
    xfree(ids);
    eng_model_free(m);
    if (!fo->keep) {
        static const char *files[] = {"model.safetensors", "config.json", "tokenizer.json",
                                      "tokenizer_config.json", "tokenizer.model"};
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            char p[700];
            snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
            unlink(p);
        }
        rmdir(dir);
    } else {
        printf("# kept the model in %s\n", dir);
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_engine [--device cpu|cuda[:N]] [--threads N] [--layers N] [--keep]\n"
            "                    [--full | --range] [--model-dir DIR] [--tokenizer DIR]\n"
            "                    [--ctx 512,2048] [--batches 1,16,64] [--prefill 512,2048]\n"
            "                    [--steps N] [--warmup N] [--prefill-reps N] [--max-tokens N]\n"
            "                    [--gemm-n N] [--mem-gb X] [--profile]\n"
            "       bench_engine --write-only --model-dir DIR [--layers N] [--tokenizer DIR]\n");
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
