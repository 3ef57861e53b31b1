/*
 * test_engine_golden.c - the engine against transformers' own float32 outputs for the bundled
 * kjv-llama-6m (models/kjv-llama-6m/golden*): logits of three prompts, the hidden state after
 * every layer (one pass, and a chain of separate layer ranges as pipeline workers would run
 * them), greedy continuations, batching equivalence and the KV-full error.
 */
#include <cjson/cJSON.h>
#include <stdint.h>

#include "base/alloc.h"
#include "engine/engine.h"
#include "test.h"

#define MODEL_DIR "models/kjv-llama-6m"
#define N_PROMPTS 3
#define N_GREEDY 48

struct golden {
    int n_ids[N_PROMPTS];
    int32_t ids[N_PROMPTS][64];
    long logits_off[N_PROMPTS];
    int greedy[N_PROMPTS][N_GREEDY];
    float *logits;
    size_t n_logits;
    float *hidden;
    size_t n_hidden;
};

static float *read_f32(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ASSERT_MSG(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *buf = xmalloc((size_t)len);
    ASSERT_EQ(fread(buf, 1, (size_t)len, f), len);
    fclose(f);
    *n = (size_t)len / sizeof(float);
    return buf;
}

static void load_golden(struct golden *g)
{
    memset(g, 0, sizeof(*g));
    FILE *f = fopen(MODEL_DIR "/golden.json", "rb");
    ASSERT(f != NULL);
    char buf[65536];
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    cJSON *root = cJSON_ParseWithLength(buf, len);
    ASSERT(root != NULL);
    cJSON *prompts = cJSON_GetObjectItem(root, "prompts");
    ASSERT_EQ(cJSON_GetArraySize(prompts), N_PROMPTS);
    for (int p = 0; p < N_PROMPTS; p++) {
        cJSON *pr = cJSON_GetArrayItem(prompts, p);
        cJSON *ids = cJSON_GetObjectItem(pr, "input_ids");
        g->n_ids[p] = cJSON_GetArraySize(ids);
        for (int i = 0; i < g->n_ids[p]; i++) {
            g->ids[p][i] = cJSON_GetArrayItem(ids, i)->valueint;
        }
        g->logits_off[p] = (long)cJSON_GetObjectItem(pr, "logits_offset_floats")->valuedouble;
        cJSON *gr = cJSON_GetObjectItem(pr, "greedy_ids");
        ASSERT_EQ(cJSON_GetArraySize(gr), N_GREEDY);
        for (int i = 0; i < N_GREEDY; i++) {
            g->greedy[p][i] = cJSON_GetArrayItem(gr, i)->valueint;
        }
    }
    cJSON_Delete(root);
    g->logits = read_f32(MODEL_DIR "/golden_logits.f32", &g->n_logits);
    g->hidden = read_f32(MODEL_DIR "/golden_hidden.f32", &g->n_hidden);
}

static void free_golden(struct golden *g)
{
    xfree(g->logits);
    xfree(g->hidden);
}

struct rig {
    struct eng_backend *be;
    struct eng_model *m;
    struct eng_engine *e;
};

static void rig_open(struct rig *r, int begin, int end, const struct eng_engine_opts *o)
{
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(eng_cpu_backend_new(2, &r->be, &d), &d);
    ASSERT_OK_DIAG(eng_model_load(MODEL_DIR, begin, end, r->be, &r->m, &d), &d);
    ASSERT_OK_DIAG(eng_engine_new(r->m, o, &r->e, &d), &d);
}

static void rig_close(struct rig *r)
{
    eng_engine_free(r->e);
    eng_model_free(r->m);
    eng_backend_free(r->be);
}

TEST(engine_golden_logits)
{
    struct golden g;
    load_golden(&g);
    struct rig r;
    rig_open(&r, 0, -1, NULL);
    const struct eng_config *c = eng_model_config(r.m);
    ASSERT_EQ(c->vocab, 4096);
    for (int p = 0; p < N_PROMPTS; p++) {
        struct hx_diag d = {0};
        int n = g.n_ids[p];
        float *logits = xmalloc((size_t)n * 4096 * sizeof(float));
        ASSERT_OK(eng_seq_add(r.e, p, &d));
        struct eng_seq_step st = {p, 0, n, g.ids[p], NULL};
        struct eng_step_out out = {.logits = logits, .all_logits = 1};
        ASSERT_OK_DIAG(eng_engine_step(r.e, &st, 1, &out, &d), &d);
        const float *want = g.logits + g.logits_off[p];
        double err = test_rel_l2(logits, want, (size_t)n * 4096);
        printf("# prompt %d: logits rel L2 %.3g\n", p, err);
        ASSERT_LE(err, 1e-4);
        for (int t = 0; t < n; t++) { /* and position by position */
            ASSERT_LE(test_rel_l2(logits + (size_t)t * 4096, want + (size_t)t * 4096, 4096), 1e-4);
        }
        /* last-position-only logits are the same row */
        ASSERT_OK(eng_seq_remove(r.e, p));
        ASSERT_OK(eng_seq_add(r.e, p, &d));
        float *last = xmalloc(4096 * sizeof(float));
        struct eng_step_out out1 = {.logits = last};
        ASSERT_OK_DIAG(eng_engine_step(r.e, &st, 1, &out1, &d), &d);
        ASSERT_LE(test_rel_l2(last, want + (size_t)(n - 1) * 4096, 4096), 1e-4);
        ASSERT_OK(eng_seq_remove(r.e, p));
        xfree(last);
        xfree(logits);
    }
    rig_close(&r);
    free_golden(&g);
}

/* Compare entry k (0 = embedding, 1..5 = after layer k, 6 = after the final norm). */
static void check_hidden(const struct golden *g, int k, const float *got, int n_pos)
{
    size_t sz = (size_t)n_pos * 256;
    double err = test_rel_l2(got, g->hidden + (size_t)k * sz, sz);
    printf("# hidden[%d] rel L2 %.3g\n", k, err);
    ASSERT_LE(err, 1e-4);
}

TEST(engine_golden_hidden_one_pass)
{
    struct golden g;
    load_golden(&g);
    int n = g.n_ids[0];
    ASSERT_EQ(g.n_hidden, (size_t)7 * (size_t)n * 256);
    struct rig r;
    rig_open(&r, 0, -1, NULL);
    struct hx_diag d = {0};
    float *layers = xmalloc(7 * (size_t)n * 256 * sizeof(float));
    float *normed = xmalloc((size_t)n * 256 * sizeof(float));
    ASSERT_OK(eng_seq_add(r.e, 7, &d));
    struct eng_seq_step st = {7, 0, n, g.ids[0], NULL};
    struct eng_step_out out = {.layer_hidden = layers, .norm_hidden = normed};
    ASSERT_OK_DIAG(eng_engine_step(r.e, &st, 1, &out, &d), &d);
    for (int k = 0; k < 6; k++) {
        check_hidden(&g, k, layers + (size_t)k * (size_t)n * 256, n);
    }
    check_hidden(&g, 6, normed, n);
    xfree(layers);
    xfree(normed);
    rig_close(&r);
    free_golden(&g);
}

/* Pipeline: [0,2) -> [2,5) -> [5,6), each its own model, engine and KV cache. */
TEST(engine_golden_hidden_chained_ranges)
{
    struct golden g;
    load_golden(&g);
    int n = g.n_ids[0];
    size_t sz = (size_t)n * 256;
    const int cuts[4] = {0, 2, 5, 6};
    float *act = xmalloc(sz * sizeof(float));
    float *layers = xmalloc(4 * sz * sizeof(float));
    float *normed = xmalloc(sz * sizeof(float));
    float *logits = xmalloc(4096 * sizeof(float));
    for (int s = 0; s < 3; s++) {
        struct rig r;
        rig_open(&r, cuts[s], cuts[s + 1], NULL);
        ASSERT_EQ(eng_model_layer_begin(r.m), cuts[s]);
        struct hx_diag d = {0};
        ASSERT_OK(eng_seq_add(r.e, 42, &d));
        struct eng_seq_step st = {42, 0, n, s == 0 ? g.ids[0] : NULL, s == 0 ? NULL : act};
        struct eng_step_out out = {.act = act, .layer_hidden = layers};
        if (s == 2) {
            out.norm_hidden = normed;
            out.logits = logits;
        } else {
            /* a middle stage cannot produce logits */
            struct eng_step_out bad = {.logits = logits};
            ASSERT_ERR(eng_engine_step(r.e, &st, 1, &bad, &d), HX_EINVAL);
        }
        ASSERT_OK_DIAG(eng_engine_step(r.e, &st, 1, &out, &d), &d);
        int n_local = cuts[s + 1] - cuts[s];
        for (int k = (s == 0 ? 0 : 1); k <= n_local; k++) {
            if (cuts[s] + k < 6) {
                check_hidden(&g, cuts[s] + k, layers + (size_t)k * sz, n);
            }
        }
        if (s == 2) {
            check_hidden(&g, 6, normed, n);
            ASSERT_LE(test_rel_l2(logits, g.logits + (size_t)(n - 1) * 4096, 4096), 1e-4);
        }
        rig_close(&r);
    }
    xfree(act);
    xfree(layers);
    xfree(normed);
    xfree(logits);
    free_golden(&g);
}

TEST(engine_golden_greedy_continuations)
{
    struct golden g;
    load_golden(&g);
    struct rig r;
    struct eng_engine_opts o = {.max_seqs = 2, .max_tokens = 64, .max_ctx = 128};
    rig_open(&r, 0, -1, &o);
    struct eng_sampler *s;
    struct eng_sampler_params sp = {0};
    ASSERT_OK(eng_sampler_new(&sp, 4096, &s));
    for (int p = 0; p < N_PROMPTS; p++) {
        struct hx_diag d = {0};
        int32_t out[N_GREEDY];
        int n_out = 0;
        ASSERT_OK_DIAG(eng_generate(r.e, p, g.ids[p], g.n_ids[p], s, N_GREEDY, 1, out, &n_out, &d),
                       &d);
        ASSERT_EQ(n_out, N_GREEDY);
        for (int i = 0; i < N_GREEDY; i++) {
            ASSERT_MSG(out[i] == g.greedy[p][i], "prompt %d token %d: %d != %d", p, i, out[i],
                       g.greedy[p][i]);
        }
        int used = -1;
        int total = 0;
        eng_kv_usage(r.e, &used, &total);
        ASSERT_EQ(used, 0); /* the sequence was removed */
    }
    eng_sampler_free(s);
    rig_close(&r);
    free_golden(&g);
}

/* Logits of the last token of seq after a solo run of ids[0..n). */
static void solo_logits(struct rig *r, const int32_t *ids, int n, float *out)
{
    struct hx_diag d = {0};
    ASSERT_OK(eng_seq_add(r->e, 1000, &d));
    struct eng_seq_step st = {1000, 0, n, ids, NULL};
    struct eng_step_out o = {.logits = out};
    ASSERT_OK_DIAG(eng_engine_step(r->e, &st, 1, &o, &d), &d);
    ASSERT_OK(eng_seq_remove(r->e, 1000));
}

TEST(engine_mixed_batch_equals_solo)
{
    struct golden g;
    load_golden(&g);
    struct rig r;
    struct eng_engine_opts o = {.max_seqs = 8, .max_tokens = 64, .max_ctx = 64};
    rig_open(&r, 0, -1, &o);
    struct hx_diag d = {0};
    /* sequence A: prompt 0 then its greedy tokens; B: prompt 1; C: prompt 2 in two chunks */
    int32_t a_ids[64];
    int na = g.n_ids[0];
    memcpy(a_ids, g.ids[0], (size_t)na * sizeof(int32_t));
    a_ids[na] = g.greedy[0][0];
    a_ids[na + 1] = g.greedy[0][1];
    int32_t b_ids[64];
    int nb = g.n_ids[1];
    memcpy(b_ids, g.ids[1], (size_t)nb * sizeof(int32_t));
    b_ids[nb] = g.greedy[1][0];
    int nc = g.n_ids[2];
    int half = nc / 2;

    ASSERT_OK(eng_seq_add(r.e, 1, &d));
    ASSERT_OK(eng_seq_add(r.e, 2, &d));
    ASSERT_OK(eng_seq_add(r.e, 3, &d));
    struct eng_seq_step warm = {1, 0, na, a_ids, NULL};
    ASSERT_OK_DIAG(eng_engine_step(r.e, &warm, 1, NULL, &d), &d);

    float batch[3 * 4096];
    float solo[4096];
    /* step 1: A decodes, B prefills all, C prefills its first half */
    struct eng_seq_step s1[3] = {
        {1, na, 1, a_ids + na, NULL},
        {2, 0, nb, b_ids, NULL},
        {3, 0, half, g.ids[2], NULL},
    };
    struct eng_step_out out = {.logits = batch};
    ASSERT_OK_DIAG(eng_engine_step(r.e, s1, 3, &out, &d), &d);
    solo_logits(&r, a_ids, na + 1, solo);
    ASSERT_LE(test_rel_l2(batch, solo, 4096), 1e-5);
    solo_logits(&r, b_ids, nb, solo);
    ASSERT_LE(test_rel_l2(batch + 4096, solo, 4096), 1e-5);
    solo_logits(&r, g.ids[2], half, solo);
    ASSERT_LE(test_rel_l2(batch + 2 * 4096, solo, 4096), 1e-5);
    /* step 2, in another order: C finishes its prompt, B and A decode */
    struct eng_seq_step s2[3] = {
        {3, half, nc - half, g.ids[2] + half, NULL},
        {2, nb, 1, b_ids + nb, NULL},
        {1, na + 1, 1, a_ids + na + 1, NULL},
    };
    ASSERT_OK_DIAG(eng_engine_step(r.e, s2, 3, &out, &d), &d);
    ASSERT_LE(test_rel_l2(batch, g.logits + g.logits_off[2] + (size_t)(nc - 1) * 4096, 4096), 1e-4);
    solo_logits(&r, g.ids[2], nc, solo);
    ASSERT_LE(test_rel_l2(batch, solo, 4096), 1e-5);
    solo_logits(&r, b_ids, nb + 1, solo);
    ASSERT_LE(test_rel_l2(batch + 4096, solo, 4096), 1e-5);
    solo_logits(&r, a_ids, na + 2, solo);
    ASSERT_LE(test_rel_l2(batch + 2 * 4096, solo, 4096), 1e-5);
    /* wrong position and unknown sequence are refused without side effects */
    struct eng_seq_step bad = {1, 0, 1, a_ids, NULL};
    ASSERT_ERR(eng_engine_step(r.e, &bad, 1, &out, &d), HX_EINVAL);
    ASSERT_CONTAINS(d.msg, "pos 0");
    hx_diag_clear(&d);
    bad.seq_id = 99;
    ASSERT_ERR(eng_engine_step(r.e, &bad, 1, &out, &d), HX_ENOTFOUND);
    ASSERT_EQ(eng_seq_len(r.e, 1), na + 2);
    rig_close(&r);
    free_golden(&g);
}

TEST(engine_kv_full_is_a_clear_error)
{
    struct rig r;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(eng_cpu_backend_new(1, &r.be, &d), &d);
    ASSERT_OK_DIAG(eng_model_load(MODEL_DIR, 0, -1, r.be, &r.m, &d), &d);
    /* one block = 6 layers x K,V x 16 tokens x 64 floats x 4 bytes = 49152 bytes */
    struct eng_engine_opts o = {.max_seqs = 4, .max_tokens = 64, .max_ctx = 128};
    o.kv_bytes = 2 * 49152 + 100;
    ASSERT_OK_DIAG(eng_engine_new(r.m, &o, &r.e, &d), &d);
    ASSERT_EQ(eng_kv_block_bytes(r.e), 49152);
    int used;
    int total;
    eng_kv_usage(r.e, &used, &total);
    ASSERT_EQ(total, 2);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) {
        ids[i] = i + 5;
    }
    ASSERT_OK(eng_seq_add(r.e, 1, &d));
    ASSERT_OK(eng_seq_add(r.e, 2, &d));
    struct eng_seq_step st = {1, 0, 40, ids, NULL}; /* 3 blocks */
    ASSERT_ERR(eng_engine_step(r.e, &st, 1, NULL, &d), HX_EFULL);
    ASSERT_CONTAINS(d.msg, "KV cache full");
    eng_kv_usage(r.e, &used, &total);
    ASSERT_EQ(used, 0);
    ASSERT_EQ(eng_seq_len(r.e, 1), 0);
    st.n_tokens = 17; /* 2 blocks: fits */
    ASSERT_OK_DIAG(eng_engine_step(r.e, &st, 1, NULL, &d), &d);
    eng_kv_usage(r.e, &used, &total);
    ASSERT_EQ(used, 2);
    struct eng_seq_step st2 = {2, 0, 1, ids, NULL};
    hx_diag_clear(&d);
    ASSERT_ERR(eng_engine_step(r.e, &st2, 1, NULL, &d), HX_EFULL);
    ASSERT_OK(eng_seq_remove(r.e, 1)); /* frees its blocks */
    ASSERT_OK_DIAG(eng_engine_step(r.e, &st2, 1, NULL, &d), &d);
    eng_kv_usage(r.e, &used, &total);
    ASSERT_EQ(used, 1);
    /* a budget below one block is refused at creation */
    struct eng_engine *e2 = NULL;
    o.kv_bytes = 1000;
    hx_diag_clear(&d);
    ASSERT_ERR(eng_engine_new(r.m, &o, &e2, &d), HX_EINVAL);
    ASSERT_CONTAINS(d.msg, "below one block");
    rig_close(&r);
}

/* Steps allocate nothing: an armed allocation failure is still pending after them. */
TEST(engine_step_allocates_nothing)
{
    struct golden g;
    load_golden(&g);
    struct rig r;
    struct eng_engine_opts o = {.max_seqs = 4, .max_tokens = 64, .max_ctx = 128};
    rig_open(&r, 0, -1, &o);
    struct hx_diag d = {0};
    float *logits = xmalloc(2 * 4096 * sizeof(float));
    struct eng_sampler *s;
    struct eng_sampler_params sp = {.temperature = 0.8f, .top_k = 50, .top_p = 0.9f, .seed = 1};
    ASSERT_OK(eng_sampler_new(&sp, 4096, &s));
    ASSERT_OK(eng_seq_add(r.e, 1, &d));
    ASSERT_OK(eng_seq_add(r.e, 2, &d));
    size_t live = hx_alloc_live_bytes();
    hx_alloc_fail_nth(1);
    struct eng_seq_step st[2] = {{1, 0, g.n_ids[0], g.ids[0], NULL},
                                 {2, 0, g.n_ids[1], g.ids[1], NULL}};
    struct eng_step_out out = {.logits = logits};
    ASSERT_OK_DIAG(eng_engine_step(r.e, st, 2, &out, &d), &d);
    for (int i = 0; i < 20; i++) {
        int32_t t1 = eng_sampler_sample(s, logits);
        int32_t t2 = eng_sampler_sample(s, logits + 4096);
        struct eng_seq_step dec[2] = {{1, g.n_ids[0] + i, 1, &t1, NULL},
                                      {2, g.n_ids[1] + i, 1, &t2, NULL}};
        ASSERT_OK_DIAG(eng_engine_step(r.e, dec, 2, &out, &d), &d);
    }
    void *probe = hx_malloc(16);
    ASSERT(probe == NULL); /* the armed failure was not consumed by the steps */
    hx_alloc_fail_nth(0);
    ASSERT_EQ(hx_alloc_live_bytes(), live);
    eng_sampler_free(s);
    xfree(logits);
    rig_close(&r);
    free_golden(&g);
}
