/*
 * engine_race.c - bench_engine --vs-llamacpp: helix against llama.cpp (a CPU build, through
 * engine_llamacpp.c) on the same GGUF files, the same token ids and thread counts, the two
 * engines alternating rep by rep in one process, best of --reps.
 *
 * Correctness first, on the bundled model: the GGUF this bench writes (bench/gguf_write.py,
 * gguf-py) loads in llama.cpp and helix and both continue the golden prompts greedily as helix
 * does on the safetensors; llama.cpp quantizes it to Q8_0 / Q4_0 (llama_model_quantize, pure:
 * every matrix, embedding kept) and the mean KL divergence of next-token distributions from
 * bf16 is printed for helix (--weights, quantized at load) next to llama.cpp's. Then speed on a
 * Llama-2-7B-width model of --layers layers (random bf16): decode at batch 1, a prefill of
 * --prefill tokens, and --batch sequences decoding together, tokens/s and the ratio
 * helix / llama.cpp.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "bench_engine.h"
#include "engine/engine.h"
#include "engine_llamacpp.h"

#ifndef HX_LLAMA_CPP_SRC
#define HX_LLAMA_CPP_SRC "build/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp"
#endif

#define N_GOLDEN 3
#define GOLDEN_NEW 48

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && st.st_size > 0;
}

static int write_gguf(const struct race_opts *o, const char *dir, const char *out)
{
    if (file_exists(out) && !o->rewrite) {
        return 0;
    }
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "PYTHONPATH=%s/gguf-py %s bench/gguf_write.py %s %s.tmp && mv %s.tmp %s",
             HX_LLAMA_CPP_SRC, o->python, dir, out, out, out);
    double t0 = hx_clock_now();
    int rc = system(cmd);
    printf("# wrote %s (%.1f s)\n", out, hx_clock_now() - t0);
    return rc == 0 ? 0 : -1;
}

static int quantize(const struct race_opts *o, const char *in, const char *fmt, char *out,
                    size_t cap)
{
    snprintf(out, cap, "%.*s-%s.gguf", (int)(strlen(in) - 10), in, fmt); /* x-bf16.gguf */
    if (file_exists(out) && !o->rewrite) {
        return 0;
    }
    double t0 = hx_clock_now();
    if (lc_quantize(in, out, fmt, 2) != 0) {
        fprintf(stderr, "bench_engine: %s\n", lc_error());
        return -1;
    }
    printf("# llama.cpp quantized %s (%.1f s)\n", out, hx_clock_now() - t0);
    return 0;
}

struct hx_side {
    struct eng_backend *be;
    struct eng_model *m;
    struct eng_engine *e;
};

static void hx_open(struct hx_side *h, const char *path, enum eng_dtype fmt, int threads,
                    int max_seqs, int max_tokens, int max_ctx)
{
    struct hx_diag d = {0};
    if (eng_cpu_backend_new(threads, &h->be, &d) != HX_OK) {
        die("backend", &d);
    }
    struct eng_model_opts mo = {0, -1, fmt};
    if (eng_model_open(path, &mo, h->be, &h->m, &d) != HX_OK) {
        die("model", &d);
    }
    struct eng_engine_opts eo = {
        .max_seqs = max_seqs, .max_tokens = max_tokens, .max_ctx = max_ctx};
    if (eng_engine_new(h->m, &eo, &h->e, &d) != HX_OK) {
        die("engine", &d);
    }
}

static void hx_close(struct hx_side *h)
{
    eng_engine_free(h->e);
    eng_model_free(h->m);
    eng_backend_free(h->be);
}

/* Logits of every position of ids (one step). */
static void hx_all_logits(struct hx_side *h, const int32_t *ids, int n, float *out)
{
    struct hx_diag d = {0};
    struct eng_seq_step s = {999, 0, n, ids, NULL};
    struct eng_step_out so = {.logits = out, .all_logits = 1};
    if (eng_seq_add(h->e, 999, &d) != HX_OK || eng_engine_step(h->e, &s, 1, &so, &d) != HX_OK) {
        die("step", &d);
    }
    eng_seq_remove(h->e, 999);
}

static int hx_greedy(struct hx_side *h, const int32_t *ids, int n, int n_new, int32_t *out)
{
    struct hx_diag d = {0};
    struct eng_sampler_params sp = {0};
    struct eng_sampler *s;
    int n_out = 0;
    eng_sampler_new(&sp, eng_model_config(h->m)->vocab, &s);
    if (eng_generate(h->e, 998, ids, n, s, n_new, -1, out, &n_out, &d) != HX_OK) {
        die("generate", &d);
    }
    eng_sampler_free(s);
    return n_out;
}

static int lc_greedy(struct lc_model *m, const int32_t *ids, int n, int n_new, int32_t *out)
{
    lc_clear(m);
    if (lc_eval(m, 0, ids, n, 0, 0, NULL) != 0) {
        return -1;
    }
    for (int i = 0; i < n_new; i++) {
        out[i] = eng_argmax(lc_logits(m, -1), lc_vocab(m));
        if (i + 1 < n_new && lc_eval(m, 0, &out[i], 1, n + i, 0, NULL) != 0) {
            return -1;
        }
    }
    return n_new;
}

static double kl_mean(const float *p, const float *q, int n_pos, int vocab)
{
    double sum = 0.0;
    for (int t = 0; t < n_pos; t++) {
        const float *a = p + (size_t)t * (size_t)vocab;
        const float *b = q + (size_t)t * (size_t)vocab;
        double ma = a[0], mb = b[0];
        for (int i = 1; i < vocab; i++) {
            ma = a[i] > ma ? a[i] : ma;
            mb = b[i] > mb ? b[i] : mb;
        }
        double za = 0.0, zb = 0.0;
        for (int i = 0; i < vocab; i++) {
            za += exp(a[i] - ma);
            zb += exp(b[i] - mb);
        }
        double kl = 0.0;
        for (int i = 0; i < vocab; i++) {
            double la = a[i] - ma - log(za);
            double lb = b[i] - mb - log(zb);
            kl += exp(la) * (la - lb);
        }
        sum += kl;
    }
    return sum / n_pos;
}

static int first_diff(const int32_t *a, const int32_t *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return i;
        }
    }
    return -1;
}

/* The golden prompts of the bundled model (models/kjv-llama-6m/golden.json). */
static const int32_t GOLDEN[N_GOLDEN][9] = {{0, 1147, 260, 2085, 388, 3364},
                                            {0, 297, 260, 342, 389, 322, 689, 13},
                                            {0, 2580, 420, 260, 1437, 288, 973, 27, 319}};
static const int GOLDEN_N[N_GOLDEN] = {6, 8, 9};

static int correctness(const struct race_opts *o)
{
    const char *dir = "models/kjv-llama-6m";
    char g16[1024], gq[2][1024];
    snprintf(g16, sizeof(g16), "%s/kjv-bf16.gguf", o->work);
    static const char *const fmts[2] = {"q8_0", "q4_0"};
    const enum eng_dtype dts[2] = {ENG_DTYPE_Q8_0, ENG_DTYPE_Q4_0};
    if (write_gguf(o, dir, g16) != 0 || quantize(o, g16, fmts[0], gq[0], sizeof(gq[0])) != 0 ||
        quantize(o, g16, fmts[1], gq[1], sizeof(gq[1])) != 0) {
        return -1;
    }
    int ok = 1;
    struct hx_side hs, hg;
    hx_open(&hs, dir, ENG_DTYPE_OTHER, 2, 4, 64, 128);
    hx_open(&hg, g16, ENG_DTYPE_OTHER, 2, 4, 64, 128);
    struct lc_model *lm = lc_load(g16, 2, 256, 1, 64, 1);
    if (!lm) {
        fprintf(stderr, "bench_engine: %s\n", lc_error());
        return -1;
    }
    /* positions for KL: each prompt and the start of its greedy continuation */
    int32_t seqs[N_GOLDEN][64];
    int seq_n[N_GOLDEN];
    for (int p = 0; p < N_GOLDEN; p++) {
        int32_t a[GOLDEN_NEW], b[GOLDEN_NEW], c[GOLDEN_NEW];
        hx_greedy(&hs, GOLDEN[p], GOLDEN_N[p], GOLDEN_NEW, a);
        hx_greedy(&hg, GOLDEN[p], GOLDEN_N[p], GOLDEN_NEW, b);
        if (lc_greedy(lm, GOLDEN[p], GOLDEN_N[p], GOLDEN_NEW, c) < 0) {
            fprintf(stderr, "bench_engine: %s\n", lc_error());
            return -1;
        }
        int d1 = first_diff(a, b, GOLDEN_NEW);
        int d2 = first_diff(a, c, GOLDEN_NEW);
        printf("greedy prompt %d (%d new): helix gguf %s, llama.cpp gguf %s (vs helix "
               "safetensors)\n",
               p, GOLDEN_NEW, d1 < 0 ? "identical" : "DIFFERS", d2 < 0 ? "identical" : "DIFFERS");
        if (d1 >= 0 || d2 >= 0) {
            printf("  first difference at token %d / %d\n", d1, d2);
            ok = 0;
        }
        memcpy(seqs[p], GOLDEN[p], (size_t)GOLDEN_N[p] * sizeof(int32_t));
        memcpy(seqs[p] + GOLDEN_N[p], a, 24 * sizeof(int32_t));
        seq_n[p] = GOLDEN_N[p] + 24;
    }
    int vocab = eng_model_config(hs.m)->vocab;
    size_t per = 64 * (size_t)vocab;
    float *ref_h = xmalloc(N_GOLDEN * per * sizeof(float));
    float *ref_l = xmalloc(N_GOLDEN * per * sizeof(float));
    float *q = xmalloc(N_GOLDEN * per * sizeof(float));
    int n_pos = 0;
    for (int p = 0; p < N_GOLDEN; p++) {
        hx_all_logits(&hs, seqs[p], seq_n[p], ref_h + (size_t)n_pos * (size_t)vocab);
        lc_clear(lm);
        lc_eval(lm, 0, seqs[p], seq_n[p], 0, 1, ref_l + (size_t)n_pos * (size_t)vocab);
        n_pos += seq_n[p];
    }
    printf("bf16: helix vs llama.cpp logits, mean KL %.3g over %d positions\n",
           kl_mean(ref_h, ref_l, n_pos, vocab), n_pos);
    lc_free(lm);
    hx_close(&hg);
    for (int f = 0; f < 2; f++) {
        struct hx_side hq, hf;
        hx_open(&hq, dir, dts[f], 2, 4, 64, 128);            /* quantized at load */
        hx_open(&hf, gq[f], ENG_DTYPE_OTHER, 2, 4, 64, 128); /* llama.cpp's file */
        struct lc_model *lq = lc_load(gq[f], 2, 256, 1, 64, 1);
        if (!lq) {
            fprintf(stderr, "bench_engine: %s\n", lc_error());
            return -1;
        }
        double kh = 0, kf = 0, kl = 0;
        int at = 0;
        for (int p = 0; p < N_GOLDEN; p++) {
            size_t off = (size_t)at * (size_t)vocab;
            hx_all_logits(&hq, seqs[p], seq_n[p], q);
            kh += kl_mean(ref_h + off, q, seq_n[p], vocab) * seq_n[p];
            hx_all_logits(&hf, seqs[p], seq_n[p], q);
            kf += kl_mean(ref_h + off, q, seq_n[p], vocab) * seq_n[p];
            lc_clear(lq);
            lc_eval(lq, 0, seqs[p], seq_n[p], 0, 1, q);
            kl += kl_mean(ref_l + off, q, seq_n[p], vocab) * seq_n[p];
            at += seq_n[p];
        }
        kh /= n_pos;
        kf /= n_pos;
        kl /= n_pos;
        int pass = kh <= kl * 1.10;
        ok &= pass;
        printf("%s: mean KL from bf16: helix (quantized at load) %.4g, helix on llama.cpp's file "
               "%.4g, llama.cpp %.4g: helix/llama.cpp %.3f (%s, goal <= 1.10)\n",
               fmts[f], kh, kf, kl, kh / kl, pass ? "ok" : "NOT MET");
        lc_free(lq);
        hx_close(&hq);
        hx_close(&hf);
    }
    hx_close(&hs);
    xfree(ref_h);
    xfree(ref_l);
    xfree(q);
    return ok ? 0 : 1;
}

/* ---- speed ---- */

#define B_SEQ0 0              /* batch sequences 0 .. batch-1 */
#define DECODE_SEQ (o->batch) /* llama.cpp's sequence ids must be < n_seq_max */
#define PREFILL_SEQ (o->batch + 1)
#define CTX0 16

struct race_row {
    char fmt[8];
    int threads;
    const char *what;
    double lc;
    double hx;
};

static int32_t rid(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (int32_t)(3 + (*s >> 33) % (VOCAB7 - 3));
}

/* helix: tokens/s of one rep of a case */
static double hx_rep(struct hx_side *h, int what, const struct race_opts *o, int *pos,
                     int32_t *bpos)
{
    struct hx_diag d = {0};
    static int32_t ids[4096];
    static float logits[64 * VOCAB7];
    uint64_t s = 7;
    for (int i = 0; i < 4096; i++) {
        ids[i] = rid(&s);
    }
    struct eng_step_out out = {.logits = logits};
    if (what == 0) { /* decode, batch 1 */
        double t0 = 0;
        for (int i = -2; i < o->steps; i++) {
            if (i == 0) {
                t0 = hx_clock_now();
            }
            struct eng_seq_step st = {DECODE_SEQ, *pos, 1, &ids[*pos], NULL};
            if (eng_engine_step(h->e, &st, 1, &out, &d) != HX_OK) {
                die("step", &d);
            }
            (*pos)++;
        }
        return o->steps / (hx_clock_now() - t0);
    }
    if (what == 1) { /* prefill */
        eng_seq_add(h->e, PREFILL_SEQ, &d);
        struct eng_seq_step st = {PREFILL_SEQ, 0, o->prefill, ids, NULL};
        double t0 = hx_clock_now();
        if (eng_engine_step(h->e, &st, 1, &out, &d) != HX_OK) {
            die("prefill", &d);
        }
        double t = hx_clock_now() - t0;
        eng_seq_remove(h->e, PREFILL_SEQ);
        return o->prefill / t;
    }
    struct eng_seq_step st[64];
    double t0 = 0;
    for (int i = -1; i < o->steps; i++) {
        if (i == 0) {
            t0 = hx_clock_now();
        }
        for (int b = 0; b < o->batch; b++) {
            st[b] = (struct eng_seq_step){B_SEQ0 + b, bpos[b], 1, &ids[bpos[b] + b], NULL};
            bpos[b]++;
        }
        if (eng_engine_step(h->e, st, o->batch, &out, &d) != HX_OK) {
            die("batch step", &d);
        }
    }
    return (double)o->batch * o->steps / (hx_clock_now() - t0);
}

static double lc_rep(struct lc_model *m, int what, const struct race_opts *o, int *pos,
                     int32_t *bpos)
{
    static int32_t ids[4096];
    uint64_t s = 7;
    for (int i = 0; i < 4096; i++) {
        ids[i] = rid(&s);
    }
    if (what == 0) {
        double t0 = 0;
        for (int i = -2; i < o->steps; i++) {
            if (i == 0) {
                t0 = hx_clock_now();
            }
            if (lc_eval(m, DECODE_SEQ, &ids[*pos], 1, *pos, 0, NULL) != 0) {
                return -1;
            }
            (*pos)++;
        }
        return o->steps / (hx_clock_now() - t0);
    }
    if (what == 1) {
        double t0 = hx_clock_now();
        if (lc_eval(m, PREFILL_SEQ, ids, o->prefill, 0, 0, NULL) != 0) {
            return -1;
        }
        double t = hx_clock_now() - t0;
        lc_seq_rm(m, PREFILL_SEQ);
        return o->prefill / t;
    }
    int32_t tok[64];
    double t0 = 0;
    for (int i = -1; i < o->steps; i++) {
        if (i == 0) {
            t0 = hx_clock_now();
        }
        for (int b = 0; b < o->batch; b++) {
            tok[b] = ids[bpos[b] + b];
        }
        if (lc_step_batch(m, tok, bpos, o->batch, NULL) != 0) {
            return -1;
        }
        for (int b = 0; b < o->batch; b++) {
            bpos[b]++;
        }
    }
    return (double)o->batch * o->steps / (hx_clock_now() - t0);
}

static int speed(const struct race_opts *o, struct race_row *rows, int *n_rows)
{
    char dir[1024], g16[1100];
    snprintf(dir, sizeof(dir), "%s/llama7w-%d", o->work, o->n_layers);
    snprintf(g16, sizeof(g16), "%s-bf16.gguf", dir);
    mkdir(dir, 0755);
    int wr = write_7b(dir, 1, 0, o->n_layers, 1);
    if (wr < 0 || !copy_tokenizer(dir, o->tokenizer)) {
        fprintf(stderr, "bench_engine: cannot write the model (or find the Llama-2 tokenizer: "
                        "--tokenizer DIR)\n");
        return -1;
    }
    if (write_gguf(o, dir, g16) != 0) {
        return -1;
    }
    char paths[3][1100];
    snprintf(paths[0], sizeof(paths[0]), "%s", g16);
    for (int f = 0; f < o->n_fmts; f++) {
        if (strcmp(o->fmts[f], "bf16") == 0) {
            continue;
        }
        char q[1100];
        if (quantize(o, g16, o->fmts[f], q, sizeof(q)) != 0) {
            return -1;
        }
    }
    /* the greedy ids of the two engines on the bf16 file */
    {
        struct hx_side h;
        hx_open(&h, g16, ENG_DTYPE_OTHER, 2, 2, 64, 128);
        struct lc_model *lm = lc_load(g16, 2, 128, 1, 64, 1);
        if (!lm) {
            fprintf(stderr, "bench_engine: %s\n", lc_error());
            return -1;
        }
        int32_t p[8] = {1, 450, 4996, 310, 278, 3186, 338, 263};
        int32_t a[16], b[16];
        hx_greedy(&h, p, 8, 16, a);
        lc_greedy(lm, p, 8, 16, b);
        int dpos = first_diff(a, b, 16);
        printf("7B-width bf16 greedy, 16 new ids: %s", dpos < 0 ? "identical\n" : "DIFFER");
        if (dpos >= 0) {
            printf(" from token %d\n", dpos);
        }
        lc_free(lm);
        hx_close(&h);
    }
    static const char *const what_name[3] = {"decode_b1", "prefill", "batch"};
    for (int f = 0; f < o->n_fmts; f++) {
        char path[1100];
        if (strcmp(o->fmts[f], "bf16") == 0) {
            snprintf(path, sizeof(path), "%s", g16);
        } else {
            snprintf(path, sizeof(path), "%s-%s.gguf", dir, o->fmts[f]);
        }
        for (int ti = 0; ti < o->n_threads; ti++) {
            int t = o->threads[ti];
            int max_tok = o->prefill > 64 ? o->prefill : 64;
            struct hx_side h;
            hx_open(&h, path, ENG_DTYPE_OTHER, t, o->batch + 2, max_tok, 1024);
            struct lc_model *lm = lc_load(path, t, 4096, o->batch + 2, max_tok, 0);
            if (!lm) {
                fprintf(stderr, "bench_engine: %s\n", lc_error());
                return -1;
            }
            /* the contexts: CTX0 tokens in each batch sequence and the decode sequence */
            struct hx_diag d = {0};
            int32_t ctx[CTX0];
            for (int i = 0; i < CTX0; i++) {
                ctx[i] = 1000 + i;
            }
            int hpos = CTX0, lpos = CTX0;
            int32_t hb[64], lb[64];
            eng_seq_add(h.e, DECODE_SEQ, &d);
            struct eng_seq_step st = {DECODE_SEQ, 0, CTX0, ctx, NULL};
            eng_engine_step(h.e, &st, 1, &(struct eng_step_out){0}, &d);
            lc_eval(lm, DECODE_SEQ, ctx, CTX0, 0, 0, NULL);
            for (int b = 0; b < o->batch; b++) {
                eng_seq_add(h.e, B_SEQ0 + b, &d);
                st = (struct eng_seq_step){B_SEQ0 + b, 0, CTX0, ctx, NULL};
                if (eng_engine_step(h.e, &st, 1, &(struct eng_step_out){0}, &d) != HX_OK) {
                    die("context", &d);
                }
                lc_eval(lm, B_SEQ0 + b, ctx, CTX0, 0, 0, NULL);
                hb[b] = lb[b] = CTX0;
            }
            for (int w = 0; w < 3; w++) {
                if ((w == 1 && o->prefill <= 0) || (w == 2 && o->batch <= 1)) {
                    continue;
                }
                double best_h = 0, best_l = 0;
                for (int r = 0; r < o->reps; r++) { /* alternating, best of reps */
                    double vh = hx_rep(&h, w, o, &hpos, hb);
                    double vl = lc_rep(lm, w, o, &lpos, lb);
                    best_h = vh > best_h ? vh : best_h;
                    best_l = vl > best_l ? vl : best_l;
                }
                struct race_row *row = &rows[(*n_rows)++];
                snprintf(row->fmt, sizeof(row->fmt), "%s", o->fmts[f]);
                row->threads = t;
                row->what = what_name[w];
                row->lc = best_l;
                row->hx = best_h;
                printf("race %s threads=%d %s%s llama.cpp %.2f tok/s helix %.2f tok/s ratio %.3f\n",
                       o->fmts[f], t, what_name[w], w == 2 ? "16" : "", best_l, best_h,
                       best_h / best_l);
                fflush(stdout);
            }
            lc_free(lm);
            hx_close(&h);
        }
    }
    return 0;
}

int run_vs_llamacpp(const struct race_opts *o)
{
    if (lc_open(o->lib) != 0) {
        fprintf(stderr, "bench_engine: %s\n", lc_error());
        return 1;
    }
    mkdir(o->work, 0755);
    printf("# helix vs llama.cpp (%s), work dir %s, best of %d alternating reps\n", o->lib, o->work,
           o->reps);
    int c = o->skip_correctness ? 0 : correctness(o);
    if (c < 0) {
        return 1;
    }
    struct race_row rows[64];
    int n = 0;
    if (!o->correctness_only && speed(o, rows, &n) != 0) {
        return 1;
    }
    if (n) {
        printf("\n| format | threads | case | llama.cpp tok/s | helix tok/s | helix / llama.cpp |\n"
               "|---|---|---|---|---|---|\n");
        for (int i = 0; i < n; i++) {
            printf("| %s | %d | %s%s | %.2f | %.2f | **%.2fx** |\n", rows[i].fmt, rows[i].threads,
                   rows[i].what,
                   strcmp(rows[i].what, "batch") == 0     ? "16"
                   : strcmp(rows[i].what, "prefill") == 0 ? ""
                                                          : "",
                   rows[i].lc, rows[i].hx, rows[i].hx / rows[i].lc);
        }
    }
    return c;
}
