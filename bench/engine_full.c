/*
 * engine_full.c - bench_engine's whole-model benchmark (the GPU one): decode at batch and
 * context pairs against the bandwidth floor, prefill against the GEMM rate, peak memory, the
 * per-op profile; a table last.
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ---- the whole Llama-2-7B-shaped model (the GPU benchmark) ------------------------------ */

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

int parse_list(const char *s, int *out, int max)
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

int run_full(struct eng_backend *be, int on_gpu, double bw, const struct full_opts *fo)
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
