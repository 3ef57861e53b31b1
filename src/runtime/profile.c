/*
 * profile.c - `helix profile`'s measuring and writing: one transformer layer of a model run by
 * the real engine (CPU backend, or the one given) on this machine, for prefill batches of growing
 * total token counts and decode batches of growing sequence counts, turned into our "model x node
 * type" profile (docs/formats.md: models/<name>.ini +
 * profiles/<name>/<type>/{prompt,decode}_bs2time.csv) so that the planner, `helix flow` and `helix
 * simulate` work from real numbers. Also rt_plan_local: the planning step of `helix run --local`.
 *
 * Derived constants (documented in docs/serving.md):
 *   avg_input_len = clamp(max_pos / 4, 1, 750), avg_output_len = clamp(max_pos / 16, 1, 240),
 *   max_input_len = clamp(max_pos / 2, 1, 2048), decode_per_token_max_context = min(1000,
 *   max_pos), kv_block_size = 16, kv_cache_hwm = 0.3, iterations = 10 (Helix's);
 *   kv_blocks[k] = KV budget / (k x one layer's block bytes) (the worker's default budget when
 *   none is given: RT_MAX_SEQS full contexts, capped at 1 GiB, as the engine does; with a
 *   memory cap M (--mem-bytes) the budget for k layers is M - k x layer_bytes - the activation
 *   scratch - the embedding and LM head, so a quantized model's smaller layers leave room for
 *   more of them);
 *   max_layers = the largest k whose blocks still hold one full-context sequence;
 *   prompt_max_requests = the worker's tokens per step / max_input_len (>= 1);
 *   decode_max_tokens[k] = min(RT_MAX_SEQS, sequences of the decode context that fit);
 *   typical_layers = ceil(2/3 max_layers), typical_layers_large = max_layers;
 *   initial_perf = layer tokens/s of the decode batch nearest avg_output_len.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "core/cfg.h"
#include "core/cluster.h"
#include "core/layout.h"
#include "core/model.h"
#include "engine/engine.h"
#include "plan/plan.h"
#include "runtime/runtime.h"

#define PROF_KV_CAP ((uint64_t)1 << 30) /* the engine's default KV cap */
#define PROF_MAX_POINTS 24

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void type_release(struct rt_prof_type *t)
{
    xfree(t->kv_blocks);
    xfree(t->prompt_max_requests);
    xfree(t->decode_max_tokens);
    xfree(t->prompt_x);
    xfree(t->prompt_ms);
    xfree(t->decode_x);
    xfree(t->decode_ms);
    memset(t, 0, sizeof(*t));
}

void rt_profile_free(struct rt_prof *p)
{
    if (!p) {
        return;
    }
    for (int i = 0; i < p->n_types; i++) {
        type_release(&p->types[i]);
    }
    xfree(p->types);
    xfree(p);
}

static int valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* Read and parse dir/config.json. */
static int read_config(const char *dir, struct eng_config *cfg, struct hx_diag *diag)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    struct strbuf sb;
    strbuf_init(&sb);
    if (strbuf_read_file(&sb, path) != 0) {
        strbuf_release(&sb);
        return hx_diag_set(diag, HX_EIO, "%s: cannot read: %s", path, strerror(errno));
    }
    int rc = eng_config_parse(sb.buf, sb.len, path, cfg, diag);
    strbuf_release(&sb);
    return rc;
}

void rt_profile_model_name(const char *dir, char *out, size_t n)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') {
        len--;
    }
    size_t b = len;
    while (b > 0 && dir[b - 1] != '/') {
        b--;
    }
    size_t k = 0;
    for (size_t i = b; i < len && k + 1 < n; i++) {
        char c = dir[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        out[k++] = ok ? c : '_';
    }
    out[k] = 0;
    if (k == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0) {
        snprintf(out, n, "model");
    }
}

/* Add x to pts (strictly increasing) when larger than the last. */
static void add_point(int *pts, int *n, int x)
{
    if (*n < PROF_MAX_POINTS && (*n == 0 || x > pts[*n - 1])) {
        pts[(*n)++] = x;
    }
}

struct meas {
    struct eng_engine *e;
    const struct rt_profile_opts *o;
    int first_stage;
    int hidden;
    int32_t *tok;
    float *act_in;
    float *act_out;
    struct eng_seq_step *steps;
    int64_t next_id;
    double deadline_per_point;
};

/* Run one step of n sequences (ids[i], positions from the engine, tokens each[i]); seconds. */
static int timed_step(struct meas *ms, const int64_t *ids, const int *each, int n, double *secs,
                      struct hx_diag *diag)
{
    int off = 0;
    for (int i = 0; i < n; i++) {
        ms->steps[i].seq_id = ids[i];
        ms->steps[i].pos = eng_seq_len(ms->e, ids[i]);
        ms->steps[i].n_tokens = each[i];
        ms->steps[i].tokens = ms->first_stage ? ms->tok + off : NULL;
        ms->steps[i].act_in =
            ms->first_stage ? NULL : ms->act_in + (size_t)off * (size_t)ms->hidden;
        off += each[i];
    }
    struct eng_step_out out;
    memset(&out, 0, sizeof(out));
    out.act = ms->act_out;
    double t0 = hx_clock_now();
    int rc = eng_engine_step(ms->e, ms->steps, n, &out, diag);
    *secs = hx_clock_now() - t0;
    return rc;
}

/* Prefill of `total` prompt tokens split into sequences of at most chunk tokens: min ms. */
static int measure_prompt(struct meas *ms, int total, int chunk, double *out_ms,
                          struct hx_diag *diag)
{
    int64_t ids[RT_MAX_SEQS * 4];
    int each[RT_MAX_SEQS * 4];
    int n = (total + chunk - 1) / chunk;
    if (n > RT_MAX_SEQS * 4) {
        return hx_diag_set(diag, HX_EINVAL, "profile: %d prompt tokens need too many sequences",
                           total);
    }
    double best = INFINITY;
    double start = hx_clock_now();
    for (int rep = 0; rep < 9; rep++) {
        int left = total;
        for (int i = 0; i < n; i++) {
            ids[i] = ms->next_id++;
            each[i] = left < chunk ? left : chunk;
            left -= each[i];
            int rc = eng_seq_add(ms->e, ids[i], diag);
            if (rc != 0) {
                for (int j = 0; j < i; j++) {
                    eng_seq_remove(ms->e, ids[j]);
                }
                return rc;
            }
        }
        double s = 0;
        int rc = timed_step(ms, ids, each, n, &s, diag);
        for (int i = 0; i < n; i++) {
            eng_seq_remove(ms->e, ids[i]);
        }
        if (rc != 0) {
            return rc;
        }
        best = s < best ? s : best;
        if (rep >= 1 && hx_clock_now() - start > ms->deadline_per_point) {
            break;
        }
    }
    *out_ms = best * 1e3;
    return 0;
}

/* Decode step of n sequences (pool ids[0..n), each at about ctx tokens): min ms. */
static int measure_decode(struct meas *ms, const int64_t *ids, int n, double *out_ms,
                          struct hx_diag *diag)
{
    int each[RT_MAX_SEQS];
    for (int i = 0; i < n; i++) {
        each[i] = 1;
    }
    double best = INFINITY;
    double start = hx_clock_now();
    for (int rep = 0; rep < 5; rep++) {
        double s = 0;
        int rc = timed_step(ms, ids, each, n, &s, diag);
        if (rc != 0) {
            return rc;
        }
        best = s < best ? s : best;
        if (rep >= 1 && hx_clock_now() - start > ms->deadline_per_point) {
            break;
        }
    }
    *out_ms = best * 1e3;
    return 0;
}

/* Block bytes of one layer's KV (K and V, ENG_KV_BLOCK tokens, f32), as the engine sizes it. */
static size_t kv_block_bytes(const struct eng_config *cfg)
{
    return (size_t)2 * ENG_KV_BLOCK * (size_t)cfg->n_kv_heads * (size_t)cfg->head_dim *
           sizeof(float);
}

/* Typical decode context of the profile: avg_input_len + avg_output_len / 2 (<= max_pos - 40). */
static int decode_ctx(const struct rt_prof *p, int max_pos)
{
    int ctx = p->avg_input_len + p->avg_output_len / 2;
    return ctx > max_pos - 40 ? max_pos - 40 : ctx;
}

/* Prompts per worker step: the worker's tokens per step (worker.c) / max_input_len, >= 1. */
static int prompt_requests(const struct eng_config *cfg, int max_input_len)
{
    int worker_tokens = cfg->max_pos < 256 ? 256 : cfg->max_pos;
    return worker_tokens / max_input_len > 1 ? worker_tokens / max_input_len : 1;
}

/* A worker's memory cap (--mem-bytes) as the KV constants see it: per k layers the KV budget
 * is mem_bytes - k x layer_bytes - act_bytes, as worker_mem_budget computes it at load;
 * act_bytes includes the embedding and LM head (ends_bytes). */
struct mem_cap {
    uint64_t mem_bytes;
    uint64_t layer_bytes;
    uint64_t act_bytes;
};

/*
 * The embedding and LM head a stage holds when it is the first and the last (a profile does not
 * know which a node will be, so a capped type keeps room for both): vocab x hidden elements
 * each (one matrix when tied), at the bytes per element of the measured layer, at least bf16's.
 */
static uint64_t ends_bytes(const struct eng_config *cfg, double layer_bytes)
{
    double hd = cfg->head_dim > 0 ? cfg->head_dim : (double)cfg->hidden / cfg->n_heads;
    double h = cfg->hidden;
    double params =
        h * hd * cfg->n_heads * 2 + 2 * h * hd * cfg->n_kv_heads + 3 * h * cfg->ffn + 2 * h;
    double per = params > 0 ? layer_bytes / params : 2;
    if (per < 2) {
        per = 2; /* quantized layers (--weights q8_0/q4_0): the embedding stays bf16 */
    }
    return (uint64_t)((cfg->tied ? 1 : 2) * (double)cfg->vocab * h * per + h * per);
}

/*
 * The KV-derived constants of a type with this budget (0: the worker default): kv_blocks,
 * prompt_max_requests, decode_max_tokens per k, max_layers, typical layers. *d_max = the
 * largest decode_max_tokens.
 */
static int kv_constants(const struct eng_config *cfg, int pmr, int ctx, uint64_t kv_bytes,
                        const struct mem_cap *mc, size_t bb, struct rt_prof_type *t, int *d_max,
                        struct hx_diag *diag)
{
    int L = cfg->n_layers;
    int full_blocks = (cfg->max_pos + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    t->kv_blocks = xcalloc((size_t)L, sizeof(int));
    t->prompt_max_requests = xcalloc((size_t)L, sizeof(int));
    t->decode_max_tokens = xcalloc((size_t)L, sizeof(int));
    t->max_layers = 0;
    *d_max = 1;
    for (int k = 1; k <= L; k++) {
        uint64_t blocks;
        if (mc && mc->mem_bytes > 0) {
            /* what a worker under --mem-bytes keeps for KV with k layers (worker_mem_budget) */
            uint64_t used = (uint64_t)k * mc->layer_bytes + mc->act_bytes;
            if (used >= mc->mem_bytes) {
                break;
            }
            uint64_t kv = mc->mem_bytes - used;
            if (kv_bytes > 0 && kv_bytes < kv) {
                kv = kv_bytes;
            }
            blocks = kv / ((uint64_t)k * bb);
        } else if (kv_bytes > 0) {
            blocks = kv_bytes / ((uint64_t)k * bb);
        } else {
            blocks = (uint64_t)RT_MAX_SEQS * (uint64_t)full_blocks;
            uint64_t cap = PROF_KV_CAP / ((uint64_t)k * bb);
            blocks = blocks < cap ? blocks : cap;
        }
        if (blocks < (uint64_t)full_blocks) {
            break;
        }
        if (blocks > 1000000000u) {
            blocks = 1000000000u;
        }
        t->max_layers = k;
        t->kv_blocks[k - 1] = (int)blocks;
        t->prompt_max_requests[k - 1] = pmr;
        uint64_t fit = blocks * ENG_KV_BLOCK / (uint64_t)ctx;
        int dm = fit < RT_MAX_SEQS ? (int)fit : RT_MAX_SEQS;
        t->decode_max_tokens[k - 1] = dm > 1 ? dm : 1;
        *d_max = t->decode_max_tokens[k - 1] > *d_max ? t->decode_max_tokens[k - 1] : *d_max;
    }
    if (t->max_layers == 0 && mc && mc->mem_bytes > 0) {
        return hx_diag_set(diag, HX_EINVAL,
                           "profile: a memory cap of %llu bytes cannot hold one layer (%llu "
                           "bytes), the activation scratch (%llu) and one %d-token sequence's KV "
                           "(%zu bytes per 16-token block)",
                           (unsigned long long)mc->mem_bytes, (unsigned long long)mc->layer_bytes,
                           (unsigned long long)mc->act_bytes, cfg->max_pos, bb);
    }
    if (t->max_layers == 0) {
        return hx_diag_set(diag, HX_EINVAL,
                           "profile: a KV budget of %llu bytes cannot hold one %d-token sequence "
                           "with one layer (%zu bytes per 16-token block)",
                           (unsigned long long)kv_bytes, cfg->max_pos, bb);
    }
    t->typical_layers = (2 * t->max_layers + 2) / 3;
    t->typical_layers_large = t->max_layers;
    return 0;
}

/* A new, empty profile of the model described by cfg. */
static struct rt_prof *prof_new(const char *dir, const struct eng_config *cfg, double layer_bytes)
{
    struct rt_prof *p = xcalloc(1, sizeof(*p));
    rt_profile_model_name(dir, p->name, sizeof(p->name));
    p->n_layers = cfg->n_layers;
    p->layer_bytes = layer_bytes;
    p->token_bytes = 4;
    p->activation_bytes = 4.0 * (double)cfg->hidden;
    p->hidden = cfg->hidden;
    p->heads = cfg->n_heads;
    p->kv_heads = cfg->n_kv_heads;
    p->ffn = cfg->ffn;
    p->avg_input_len = clampi(cfg->max_pos / 4, 1, 750);
    p->avg_output_len = clampi(cfg->max_pos / 16, 1, 240);
    p->max_input_len = clampi(cfg->max_pos / 2, 1, 2048);
    p->kv_block_size = ENG_KV_BLOCK;
    p->decode_per_token_max_context = clampi(cfg->max_pos, 1, 1000);
    p->kv_cache_hwm = 0.3;
    p->iterations = 10;
    return p;
}

/* Put t (moved) into p, replacing a type of the same name. */
static void prof_put_type(struct rt_prof *p, struct rt_prof_type *t)
{
    for (int i = 0; i < p->n_types; i++) {
        if (strcmp(p->types[i].type, t->type) == 0) {
            type_release(&p->types[i]);
            p->types[i] = *t;
            memset(t, 0, sizeof(*t));
            return;
        }
    }
    p->types = xrealloc(p->types, (size_t)(p->n_types + 1) * sizeof(*p->types));
    p->types[p->n_types++] = *t;
    memset(t, 0, sizeof(*t));
}

int rt_profile_measure(const struct rt_profile_opts *o, struct rt_prof **inout,
                       struct hx_diag *diag)
{
    hx_diag_clear(diag);
    if (!o || !o->model_dir || !inout) {
        return hx_diag_set(diag, HX_EINVAL, "profile: no model directory");
    }
    char tname[32];
    long online = o->threads > 0 ? o->threads : sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = online > 0 && online < 100000 ? (int)online : 1;
    if (o->type) {
        if (!valid_name(o->type, sizeof(tname) - 1)) {
            return hx_diag_set(diag, HX_EINVAL,
                               "profile: type name '%s' wants 1..31 of [A-Za-z0-9._-]", o->type);
        }
        snprintf(tname, sizeof(tname), "%s", o->type);
    } else {
        snprintf(tname, sizeof(tname), "cpu-t%d", nthreads);
    }
    struct eng_config cfg;
    int rc = read_config(o->model_dir, &cfg, diag);
    if (rc != 0) {
        return rc;
    }
    if (cfg.n_layers < 1 || cfg.max_pos < 32 || cfg.hidden < 1) {
        return hx_diag_set(diag, HX_EINVAL,
                           "profile: %s: need >= 1 layer and a context of >= 32 tokens",
                           o->model_dir);
    }
    struct eng_backend *be = NULL;
    struct eng_model *m = NULL;
    struct eng_engine *e = NULL;
    struct rt_prof *fresh = NULL;
    struct rt_prof_type t;
    memset(&t, 0, sizeof(t));
    struct meas ms;
    memset(&ms, 0, sizeof(ms));
    int64_t pool[RT_MAX_SEQS];
    int n_pool = 0;

    int on_cpu = !o->device || !o->device[0] || strcmp(o->device, "cpu") == 0;
    if (o->backend) {
        be = o->backend;
    } else {
        rc = eng_cpu_backend_new(nthreads, &be, diag);
        if (rc != 0) {
            goto out;
        }
    }
    /* a middle layer: activations in, activations out, like most pipeline stages */
    int mid = cfg.n_layers > 1 ? cfg.n_layers / 2 : 0;
    struct eng_model_opts mo = {mid, mid + 1, ENG_DTYPE_OTHER};
    if (o->weights && eng_weight_format_parse(o->weights, &mo.weights) != 0) {
        rc = hx_diag_set(diag, HX_EINVAL,
                         "profile: weight format '%s' (q8_0, q4_0, bf16, f16 or f32)", o->weights);
        goto out;
    }
    rc = eng_model_open(o->model_dir, &mo, be, &m, diag);
    if (rc != 0) {
        goto out;
    }
    fresh = prof_new(o->model_dir, &cfg, (double)eng_model_layer_bytes(m));
    {
        char fmt[16];
        snprintf(fmt, sizeof(fmt), "%s", eng_dtype_name(eng_model_weight_dtype(m)));
        for (char *c = fmt; *c; c++) {
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        }
        snprintf(fresh->weight_format, sizeof(fresh->weight_format), "%s", fmt);
        if (o->weights) { /* one layer_bytes per model INI: the format is part of the name */
            size_t nl = strlen(fresh->name);
            snprintf(fresh->name + nl, sizeof(fresh->name) - nl, "-%s", fmt);
        }
    }
    struct rt_prof *p = *inout ? *inout : fresh;
    if (p != fresh && p->weight_format[0] && strcmp(p->weight_format, fresh->weight_format) != 0) {
        rc = hx_diag_set(diag, HX_EINVAL,
                         "profile: the existing profile '%s' is of %s weights, not %s (use "
                         "--weights %s, or another --out)",
                         p->name, p->weight_format, fresh->weight_format, p->weight_format);
        goto out;
    }
    if (p->n_layers != cfg.n_layers || p->hidden != cfg.hidden) {
        rc = hx_diag_set(diag, HX_EINVAL,
                         "profile: the existing profile '%s' is of another model (%d layers, "
                         "hidden %d; %s has %d, %d)",
                         p->name, p->n_layers, p->hidden, o->model_dir, cfg.n_layers, cfg.hidden);
        goto out;
    }
    if (o->avg_input_len < 0 || o->avg_input_len >= cfg.max_pos || o->avg_output_len < 0 ||
        o->avg_output_len >= cfg.max_pos) {
        rc = hx_diag_set(diag, HX_EINVAL,
                         "profile: average input/output lengths %d/%d outside 1..%d (the context)",
                         o->avg_input_len, o->avg_output_len, cfg.max_pos - 1);
        goto out;
    }
    if (o->avg_input_len > 0) {
        fresh->avg_input_len = o->avg_input_len;
    }
    if (o->avg_output_len > 0) {
        fresh->avg_output_len = o->avg_output_len;
    }
    if (*inout && ((*inout)->avg_input_len != fresh->avg_input_len ||
                   (*inout)->avg_output_len != fresh->avg_output_len)) {
        rc = hx_diag_set(diag, HX_EINVAL,
                         "profile: the existing profile '%s' has average lengths %d/%d, not %d/%d",
                         p->name, (*inout)->avg_input_len, (*inout)->avg_output_len,
                         fresh->avg_input_len, fresh->avg_output_len);
        goto out;
    }
    int avg_in = fresh->avg_input_len;
    int avg_out = fresh->avg_output_len;
    if (o->max_input_len > 0) {
        if (o->max_input_len > 65536) {
            rc = hx_diag_set(diag, HX_EINVAL, "profile: max_input_len %d too large",
                             o->max_input_len);
            goto out;
        }
        fresh->max_input_len = o->max_input_len;
    }
    if (*inout && (*inout)->max_input_len != fresh->max_input_len) {
        rc = hx_diag_set(diag, HX_EINVAL,
                         "profile: the existing profile '%s' has max_input_len %d, not %d", p->name,
                         (*inout)->max_input_len, fresh->max_input_len);
        goto out;
    }
    int mil = fresh->max_input_len;
    /* a prompt longer than the context is measured as several sequences of <= chunk */
    int chunk = mil < cfg.max_pos ? mil : cfg.max_pos;
    int pmr = prompt_requests(&cfg, mil);
    int p_max = pmr * mil;
    if (p_max < 2 * avg_in + 2) {
        p_max = 2 * avg_in + 2; /* Helix's typical prompt batch int(P / R) reaches < 2 avg_in */
    }
    int ctx = decode_ctx(fresh, cfg.max_pos);

    /* per-layer KV block bytes, then the type's constants */
    struct eng_engine_opts eo;
    memset(&eo, 0, sizeof(eo));
    eo.max_seqs = RT_MAX_SEQS * 4;
    eo.max_ctx = cfg.max_pos;
    eo.max_tokens = p_max > RT_MAX_SEQS ? p_max : RT_MAX_SEQS;
    size_t bb = kv_block_bytes(&cfg);
    int blocks_per_seq_dec = (ctx + 40 + ENG_KV_BLOCK - 1) / ENG_KV_BLOCK;
    size_t need = (size_t)RT_MAX_SEQS * (size_t)blocks_per_seq_dec +
                  (size_t)(p_max / ENG_KV_BLOCK + RT_MAX_SEQS * 4);
    eo.kv_bytes = need * bb;
    rc = eng_engine_new(m, &eo, &e, diag);
    if (rc != 0) {
        goto out;
    }
    if (eng_kv_block_bytes(e) != bb) {
        bb = eng_kv_block_bytes(e);
    }

    snprintf(t.type, sizeof(t.type), "%s", tname);
    t.threads = nthreads;
    t.kv_bytes = o->kv_bytes;
    t.mem_bytes = o->mem_bytes;
    if (!on_cpu) {
        snprintf(t.device, sizeof(t.device), "%s", o->device);
    }
    int d_max = 1;
    struct mem_cap mc = {o->mem_bytes, (uint64_t)fresh->layer_bytes,
                         worker_act_bytes(&cfg, cfg.max_pos < 256 ? 256 : cfg.max_pos, 1) +
                             ends_bytes(&cfg, fresh->layer_bytes)};
    rc = kv_constants(&cfg, pmr, ctx, o->kv_bytes, &mc, bb, &t, &d_max, diag);
    if (rc != 0) {
        goto out;
    }

    /* measuring points */
    static const int pfrac[] = {1, 2, 4, 6, 8, 12, 16, 20, 24, 28, 32}; /* of p_max / 32 */
    int ppts[PROF_MAX_POINTS];
    int np = 0;
    add_point(ppts, &np, 0);
    for (size_t i = 0; i < sizeof(pfrac) / sizeof(pfrac[0]); i++) {
        add_point(ppts, &np, (p_max * pfrac[i] + 31) / 32);
    }
    static const int dpts_all[] = {1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64};
    int dpts[PROF_MAX_POINTS];
    int nd = 0;
    add_point(dpts, &nd, 0);
    for (size_t i = 0; i < sizeof(dpts_all) / sizeof(dpts_all[0]); i++) {
        if (dpts_all[i] < d_max) {
            add_point(dpts, &nd, dpts_all[i]);
        }
    }
    add_point(dpts, &nd, d_max);

    double budget = o->max_seconds > 0 ? o->max_seconds : 3.0;
    ms.e = e;
    ms.o = o;
    ms.first_stage = mid == 0;
    ms.hidden = cfg.hidden;
    size_t max_tok = (size_t)eo.max_tokens;
    ms.tok = xcalloc(max_tok, sizeof(int32_t));
    ms.act_in = xcalloc(max_tok * (size_t)cfg.hidden, sizeof(float));
    ms.act_out = xcalloc(max_tok * (size_t)cfg.hidden, sizeof(float));
    ms.steps = xcalloc((size_t)RT_MAX_SEQS * 4, sizeof(struct eng_seq_step));
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < max_tok * (size_t)cfg.hidden; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ms.act_in[i] = (float)((double)(x >> 40) / (double)(1u << 24) - 0.5);
    }
    for (size_t i = 0; i < max_tok; i++) {
        ms.tok[i] = (int32_t)(i % (size_t)(cfg.vocab > 2 ? cfg.vocab - 2 : 1)) + 1;
    }
    ms.next_id = 1;
    ms.deadline_per_point = 0.45 * budget / (double)np;

    t.n_prompt = np;
    t.prompt_x = xcalloc((size_t)np, sizeof(double));
    t.prompt_ms = xcalloc((size_t)np, sizeof(double));
    {
        /* warm up (page in the weights, start the threads) */
        double w = 0;
        rc = measure_prompt(&ms, ppts[1], chunk, &w, diag);
        if (rc != 0) {
            goto out;
        }
    }
    for (int i = 0; i < np; i++) {
        t.prompt_x[i] = ppts[i];
        if (ppts[i] > 0) {
            rc = measure_prompt(&ms, ppts[i], chunk, &t.prompt_ms[i], diag);
            if (rc != 0) {
                goto out;
            }
        }
        if (o->progress) {
            o->progress(o->progress_user, "prompt", t.prompt_x[i], t.prompt_ms[i], i + 1, np);
        }
    }

    ms.deadline_per_point = 0.45 * budget / (double)nd;
    t.n_decode = nd;
    t.decode_x = xcalloc((size_t)nd, sizeof(double));
    t.decode_ms = xcalloc((size_t)nd, sizeof(double));
    for (int i = 0; i < nd; i++) {
        t.decode_x[i] = dpts[i];
        /* grow the pool to dpts[i] sequences, each prefilled with ctx tokens */
        while (n_pool < dpts[i]) {
            int64_t add[RT_MAX_SEQS];
            int each[RT_MAX_SEQS];
            int k = 0;
            while (n_pool + k < dpts[i] && (k + 1) * ctx <= eo.max_tokens) {
                add[k] = ms.next_id++;
                each[k] = ctx;
                rc = eng_seq_add(e, add[k], diag);
                if (rc != 0) {
                    goto out;
                }
                pool[n_pool + k] = add[k];
                k++;
            }
            if (k == 0) {
                rc = hx_diag_set(diag, HX_EINVAL, "profile: context %d exceeds a step", ctx);
                goto out;
            }
            n_pool += k;
            double s = 0;
            rc = timed_step(&ms, add, each, k, &s, diag);
            if (rc != 0) {
                goto out;
            }
        }
        if (dpts[i] > 0) {
            rc = measure_decode(&ms, pool, dpts[i], &t.decode_ms[i], diag);
            if (rc != 0) {
                goto out;
            }
        }
        if (o->progress) {
            o->progress(o->progress_user, "decode", t.decode_x[i], t.decode_ms[i], i + 1, nd);
        }
    }
    /* initial perf: layer tokens/s at the decode batch nearest avg_output_len */
    {
        int best = nd - 1;
        for (int i = 1; i < nd; i++) {
            if (fabs(t.decode_x[i] - avg_out) < fabs(t.decode_x[best] - avg_out)) {
                best = i;
            }
        }
        double msv = t.decode_ms[best] > 1e-6 ? t.decode_ms[best] : 1e-6;
        t.initial_perf = t.decode_x[best] / (msv * 1e-3);
    }
    /* times must be positive after x = 0 (a step that rounds to 0 ms is clamped) */
    for (int i = 1; i < np; i++) {
        t.prompt_ms[i] = t.prompt_ms[i] > 1e-4 ? t.prompt_ms[i] : 1e-4;
    }
    for (int i = 1; i < nd; i++) {
        t.decode_ms[i] = t.decode_ms[i] > 1e-4 ? t.decode_ms[i] : 1e-4;
    }
    prof_put_type(p, &t);
    if (!*inout) {
        *inout = fresh;
        fresh = NULL;
    }
    rc = 0;
out:
    for (int i = 0; i < n_pool && e; i++) {
        eng_seq_remove(e, pool[i]);
    }
    xfree(ms.tok);
    xfree(ms.act_in);
    xfree(ms.act_out);
    xfree(ms.steps);
    type_release(&t);
    rt_profile_free(fresh);
    eng_engine_free(e);
    eng_model_free(m);
    if (be != o->backend) {
        eng_backend_free(be);
    }
    return rc;
}

int rt_profile_derive(const struct rt_prof *src, const char *src_type, const char *model_dir,
                      const char *type, uint64_t kv_bytes, struct rt_prof **inout,
                      struct hx_diag *diag)
{
    hx_diag_clear(diag);
    const struct rt_prof_type *s = NULL;
    for (int i = 0; i < src->n_types; i++) {
        if (strcmp(src->types[i].type, src_type) == 0) {
            s = &src->types[i];
        }
    }
    if (!s) {
        return hx_diag_set(diag, HX_ENOTFOUND, "profile '%s' has no type '%s'", src->name,
                           src_type);
    }
    if (!valid_name(type, sizeof(s->type) - 1)) {
        return hx_diag_set(diag, HX_EINVAL, "profile: type name '%s' wants 1..31 of [A-Za-z0-9._-]",
                           type);
    }
    struct eng_config cfg;
    int rc = read_config(model_dir, &cfg, diag);
    if (rc != 0) {
        return rc;
    }
    if (cfg.n_layers != src->n_layers || cfg.hidden != src->hidden || cfg.max_pos < 64) {
        return hx_diag_set(diag, HX_EINVAL, "profile '%s' is not of the model in %s", src->name,
                           model_dir);
    }
    if (*inout &&
        ((*inout)->n_layers != src->n_layers || (*inout)->max_input_len != src->max_input_len)) {
        return hx_diag_set(diag, HX_EINVAL, "profile: cannot merge '%s' into '%s'", src->name,
                           (*inout)->name);
    }
    struct rt_prof_type t;
    memset(&t, 0, sizeof(t));
    int d_max = 1;
    rc = kv_constants(&cfg, prompt_requests(&cfg, src->max_input_len), decode_ctx(src, cfg.max_pos),
                      kv_bytes, NULL, kv_block_bytes(&cfg), &t, &d_max, diag);
    if (rc != 0) {
        type_release(&t);
        return rc;
    }
    snprintf(t.type, sizeof(t.type), "%s", type);
    t.threads = s->threads;
    t.kv_bytes = kv_bytes;
    t.initial_perf = s->initial_perf;
    double d_last = s->n_decode > 0 ? s->decode_x[s->n_decode - 1] : 0;
    for (int k = 0; k < t.max_layers; k++) {
        if ((double)t.decode_max_tokens[k] > d_last) {
            t.decode_max_tokens[k] = d_last >= 1 ? (int)d_last : 1; /* what was measured */
        }
    }
    t.n_prompt = s->n_prompt;
    t.n_decode = s->n_decode;
    size_t np = (size_t)(s->n_prompt > 0 ? s->n_prompt : 1);
    size_t nd = (size_t)(s->n_decode > 0 ? s->n_decode : 1);
    t.prompt_x = xcalloc(np, sizeof(double));
    t.prompt_ms = xcalloc(np, sizeof(double));
    t.decode_x = xcalloc(nd, sizeof(double));
    t.decode_ms = xcalloc(nd, sizeof(double));
    memcpy(t.prompt_x, s->prompt_x, (size_t)s->n_prompt * sizeof(double));
    memcpy(t.prompt_ms, s->prompt_ms, (size_t)s->n_prompt * sizeof(double));
    memcpy(t.decode_x, s->decode_x, (size_t)s->n_decode * sizeof(double));
    memcpy(t.decode_ms, s->decode_ms, (size_t)s->n_decode * sizeof(double));
    if (!*inout) {
        struct rt_prof *p = xcalloc(1, sizeof(*p));
        *p = *src;
        p->n_types = 0;
        p->types = NULL;
        *inout = p;
    }
    prof_put_type(*inout, &t);
    return 0;
}

static double *curve_ms(const struct model_curve *c, int *n, double **x)
{
    *n = (int)c->n;
    *x = xcalloc(c->n ? c->n : 1, sizeof(double));
    double *ms = xcalloc(c->n ? c->n : 1, sizeof(double));
    for (size_t i = 0; i < c->n; i++) {
        (*x)[i] = c->x[i];
        ms[i] = c->t_s[i] * 1e3;
    }
    return ms;
}

int rt_profile_from_model(const struct model_profile *m, struct rt_prof **out, struct hx_diag *diag)
{
    hx_diag_clear(diag);
    struct rt_prof *p = xcalloc(1, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", m->name);
    p->n_layers = m->n_layers;
    p->layer_bytes = m->layer_bytes;
    p->token_bytes = m->token_bytes;
    p->activation_bytes = m->activation_bytes;
    p->hidden = m->hidden_size;
    p->heads = m->num_heads;
    p->kv_heads = m->num_kv_heads;
    p->ffn = m->ffn_size;
    p->avg_input_len = m->avg_input_len;
    p->avg_output_len = m->avg_output_len;
    p->max_input_len = m->max_input_len;
    p->kv_block_size = m->kv_block_size;
    p->decode_per_token_max_context = m->decode_per_token_max_context;
    p->kv_cache_hwm = m->kv_cache_hwm;
    p->iterations = m->iterations;
    p->n_types = (int)m->n_gpus;
    p->types = xcalloc(m->n_gpus ? m->n_gpus : 1, sizeof(*p->types));
    for (size_t g = 0; g < m->n_gpus; g++) {
        const struct model_gpu *s = &m->gpus[g];
        struct rt_prof_type *t = &p->types[g];
        if (s->prompt.n == 0 || s->decode.n == 0) {
            rt_profile_free(p);
            return hx_diag_set(diag, HX_ENOTFOUND, "%s: [gpu %s] has no profile curves loaded",
                               m->path ? m->path : m->name, s->type);
        }
        snprintf(t->type, sizeof(t->type), "%s", s->type);
        t->max_layers = s->max_layers;
        size_t k = (size_t)s->max_layers;
        t->kv_blocks = xcalloc(k, sizeof(int));
        t->prompt_max_requests = xcalloc(k, sizeof(int));
        t->decode_max_tokens = xcalloc(k, sizeof(int));
        memcpy(t->kv_blocks, s->kv_blocks, k * sizeof(int));
        memcpy(t->prompt_max_requests, s->prompt_max_requests, k * sizeof(int));
        memcpy(t->decode_max_tokens, s->decode_max_tokens, k * sizeof(int));
        t->typical_layers = s->typical_layers;
        t->typical_layers_large = s->typical_layers_large;
        t->initial_perf = s->initial_perf;
        t->prompt_ms = curve_ms(&s->prompt, &t->n_prompt, &t->prompt_x);
        t->decode_ms = curve_ms(&s->decode, &t->n_decode, &t->decode_x);
    }
    *out = p;
    return 0;
}

static int mkdirs(const char *path, struct hx_diag *diag)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        return hx_diag_set(diag, HX_EIO, "%s: path too long", path);
    }
    for (char *s = buf + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                return hx_diag_set(diag, HX_EIO, "%s: cannot create: %s", buf, strerror(errno));
            }
            *s = '/';
        }
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
        return hx_diag_set(diag, HX_EIO, "%s: cannot create: %s", buf, strerror(errno));
    }
    return 0;
}

static int write_file(const char *path, const struct strbuf *sb, struct hx_diag *diag)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        return hx_diag_set(diag, HX_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    }
    size_t w = fwrite(sb->buf, 1, sb->len, f);
    int bad = fclose(f) != 0 || w != sb->len;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        return hx_diag_set(diag, HX_EIO, "%s: cannot write: %s", path, strerror(errno));
    }
    return 0;
}

static void add_ints(struct strbuf *sb, const char *key, const int *v, int n)
{
    strbuf_addf(sb, "%s =", key);
    for (int i = 0; i < n; i++) {
        strbuf_addf(sb, " %d", v[i]);
    }
    strbuf_adds(sb, "\n");
}

static void add_curve(struct strbuf *sb, const double *x, const double *ms, int n)
{
    for (int i = 0; i < n; i++) {
        strbuf_addf(sb, "%.0f,%.6g\n", x[i], ms[i]);
    }
}

int rt_profile_write(const struct rt_prof *p, const char *dir, char *ini_path, size_t n,
                     struct hx_diag *diag)
{
    hx_diag_clear(diag);
    if (!p || p->n_types < 1) {
        return hx_diag_set(diag, HX_EINVAL, "profile: nothing measured to write");
    }
    int rc = mkdirs(dir, diag);
    if (rc != 0) {
        return rc;
    }
    struct strbuf sb;
    strbuf_init(&sb);
    char path[4200];
    for (int i = 0; i < p->n_types; i++) {
        const struct rt_prof_type *t = &p->types[i];
        snprintf(path, sizeof(path), "%s/profiles/%s/%s", dir, p->name, t->type);
        rc = mkdirs(path, diag);
        if (rc != 0) {
            goto out;
        }
        strbuf_reset(&sb);
        add_curve(&sb, t->prompt_x, t->prompt_ms, t->n_prompt);
        snprintf(path, sizeof(path), "%s/profiles/%s/%s/prompt_bs2time.csv", dir, p->name, t->type);
        rc = write_file(path, &sb, diag);
        if (rc != 0) {
            goto out;
        }
        strbuf_reset(&sb);
        add_curve(&sb, t->decode_x, t->decode_ms, t->n_decode);
        snprintf(path, sizeof(path), "%s/profiles/%s/%s/decode_bs2time.csv", dir, p->name, t->type);
        rc = write_file(path, &sb, diag);
        if (rc != 0) {
            goto out;
        }
    }
    strbuf_reset(&sb);
    int on_gpu = 0;
    for (int i = 0; i < p->n_types; i++) {
        on_gpu |= p->types[i].device[0] && strcmp(p->types[i].device, "cpu") != 0;
    }
    strbuf_addf(&sb,
                "# %s: measured by `helix profile` (one layer, %s, this machine).\n"
                "# Sizes in bytes; profile CSVs: batch_tokens,ms per layer.\n\n[model]\n",
                p->name, on_gpu ? "the backend noted per type" : "CPU backend");
    strbuf_addf(&sb, "name = %s\nnum_layers = %d\nlayer_bytes = ", p->name, p->n_layers);
    cfg_format_pyfloat(&sb, p->layer_bytes);
    if (p->weight_format[0]) {
        strbuf_addf(&sb, "\nweight_format = %s", p->weight_format);
    }
    strbuf_adds(&sb, "\ntoken_bytes = ");
    cfg_format_pyfloat(&sb, p->token_bytes);
    strbuf_adds(&sb, "\nactivation_bytes = ");
    cfg_format_pyfloat(&sb, p->activation_bytes);
    strbuf_addf(&sb, "\nhidden_size = %d\nnum_heads = %d\nnum_kv_heads = %d\nffn_size = %d\n",
                p->hidden, p->heads, p->kv_heads, p->ffn);
    strbuf_adds(&sb, "\n[throughput_model]\ntypical_layers =");
    for (int i = 0; i < p->n_types; i++) {
        strbuf_addf(&sb, "%s %s %d", i ? "," : "", p->types[i].type, p->types[i].typical_layers);
    }
    strbuf_adds(&sb, "\ntypical_layers_large =");
    for (int i = 0; i < p->n_types; i++) {
        strbuf_addf(&sb, "%s %s %d", i ? "," : "", p->types[i].type,
                    p->types[i].typical_layers_large);
    }
    strbuf_adds(&sb, "\ninitial_perf =");
    for (int i = 0; i < p->n_types; i++) {
        strbuf_addf(&sb, "%s %s ", i ? "," : "", p->types[i].type);
        cfg_format_pyfloat(&sb, p->types[i].initial_perf);
    }
    strbuf_addf(&sb,
                "\navg_input_len = %d\navg_output_len = %d\nmax_input_len = %d\n"
                "kv_block_size = %d\ndecode_per_token_max_context = %d\nkv_cache_hwm = ",
                p->avg_input_len, p->avg_output_len, p->max_input_len, p->kv_block_size,
                p->decode_per_token_max_context);
    cfg_format_pyfloat(&sb, p->kv_cache_hwm);
    strbuf_addf(&sb, "\niterations = %d\n", p->iterations);
    for (int i = 0; i < p->n_types; i++) {
        const struct rt_prof_type *t = &p->types[i];
        strbuf_addf(&sb, "\n[gpu %s]\n", t->type);
        if (t->mem_bytes > 0) {
            strbuf_addf(&sb,
                        "# measured on %s (%d threads), memory cap %llu bytes (weights + "
                        "activations + KV), KV budget %llu bytes (0: what the cap leaves)\n",
                        t->device[0] ? t->device : "cpu", t->threads,
                        (unsigned long long)t->mem_bytes, (unsigned long long)t->kv_bytes);
        } else if (t->device[0] && strcmp(t->device, "cpu") != 0) {
            strbuf_addf(&sb, "# measured on %s, KV budget %llu bytes (0: default)\n", t->device,
                        (unsigned long long)t->kv_bytes);
        } else if (t->threads > 0 || t->kv_bytes > 0) {
            strbuf_addf(&sb, "# measured with %d threads, KV budget %llu bytes (0: default)\n",
                        t->threads, (unsigned long long)t->kv_bytes);
        }
        strbuf_addf(&sb, "max_layers = %d\n", t->max_layers);
        add_ints(&sb, "kv_blocks", t->kv_blocks, t->max_layers);
        add_ints(&sb, "prompt_max_requests", t->prompt_max_requests, t->max_layers);
        add_ints(&sb, "decode_max_tokens", t->decode_max_tokens, t->max_layers);
        strbuf_addf(&sb, "prompt_profile = profiles/%s/%s/prompt_bs2time.csv\n", p->name, t->type);
        strbuf_addf(&sb, "decode_profile = profiles/%s/%s/decode_bs2time.csv\n", p->name, t->type);
    }
    snprintf(path, sizeof(path), "%s/%s.ini", dir, p->name);
    rc = write_file(path, &sb, diag);
    if (rc != 0) {
        goto out;
    }
    if (ini_path) {
        snprintf(ini_path, n, "%s", path);
    }
    /* machine profiles for `helix plan/simulate --machine-profiles`: loopback NICs (not
     * measured), "VRAM" = twice the weights of max_layers (Helix's half-memory rule) */
    strbuf_reset(&sb);
    strbuf_adds(&sb, "# Node types measured by `helix profile`; NIC speeds assume loopback.\n"
                     "[SourceNode]\ninbound_nic_speed = -1\noutbound_nic_speed = 10 * gbps\n"
                     "disk_speed = -1\nvram_size = -1\n\n[SinkNode]\n"
                     "inbound_nic_speed = 10 * gbps\noutbound_nic_speed = -1\n"
                     "disk_speed = -1\nvram_size = -1\n");
    for (int i = 0; i < p->n_types; i++) {
        strbuf_addf(&sb,
                    "\n[%s]\ninbound_nic_speed = 10 * gbps\noutbound_nic_speed = 10 * gbps\n"
                    "disk_speed = 1 * gbps\nvram_size = ",
                    p->types[i].type);
        cfg_format_pyfloat(&sb, ceil(2.0 * p->types[i].max_layers * p->layer_bytes));
        strbuf_adds(&sb, "\n");
    }
    snprintf(path, sizeof(path), "%s/machine_profiles.ini", dir);
    rc = write_file(path, &sb, diag);
out:
    strbuf_release(&sb);
    return rc;
}

/* ---- planning a local cluster ------------------------------------------------------------- */

static double plan_clock(void *user)
{
    (void)user;
    return hx_clock_now();
}

int rt_plan_local(const struct model_profile *m, int n, const char *const *types,
                  const char *const *names, double time_limit_s, struct coord_node_spec *nodes,
                  double *objective, struct hx_diag *diag)
{
    hx_diag_clear(diag);
    if (n < 1 || n > RT_MAX_NODES) {
        return hx_diag_set(diag, HX_EINVAL, "plan: %d nodes (want 1..%d)", n, RT_MAX_NODES);
    }
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_addf(&sb, "[NodeNames]\ntotal_compute_nodes=%d\n\n[SourceNode]\nconnected_nodes=[", n);
    for (int i = 0; i < n; i++) {
        strbuf_addf(&sb, "%s%d", i ? ", " : "", i);
    }
    strbuf_adds(&sb, "]\n\n[SinkNode]\nconnected_nodes=[");
    for (int i = 0; i < n; i++) {
        strbuf_addf(&sb, "%s%d", i ? ", " : "", i);
    }
    strbuf_adds(&sb, "]\n");
    for (int i = 0; i < n; i++) {
        strbuf_addf(&sb, "\n[ComputeNode-%d]\ntype=%s\nconnected_nodes=['source'", i, types[i]);
        for (int j = 0; j < n; j++) {
            if (j != i) {
                strbuf_addf(&sb, ", %d", j);
            }
        }
        strbuf_adds(&sb, ", 'sink']\n");
    }
    const char *link = "bandwidth=10000 * mbps\nlatency=0.1 * MilliSec\n";
    for (int i = 0; i < n; i++) {
        strbuf_addf(&sb, "\n[Link-source-%d]\n%s\n[Link-%d-sink]\n%s", i, link, i, link);
        for (int j = i + 1; j < n; j++) {
            strbuf_addf(&sb, "\n[Link-%d-%d]\n%s", i, j, link);
        }
    }
    struct cluster *cl = NULL;
    struct model_throughput *tp = NULL;
    struct plan_result pr;
    memset(&pr, 0, sizeof(pr));
    int rc = cluster_parse_string(sb.buf, "local cluster", &cl, diag);
    strbuf_release(&sb);
    if (rc != 0) {
        return rc;
    }
    rc = model_throughput_for_cluster(m, cl, &tp, diag);
    if (rc != 0) {
        goto out;
    }
    struct plan_problem pp = {cl, m, tp, NULL, LAYOUT_STRICT};
    struct plan_options po;
    plan_options_init(&po);
    po.method = PLAN_METHOD_AUTO;
    po.time_limit_s = time_limit_s > 0 ? time_limit_s : 2;
    po.now = plan_clock;
    rc = plan_solve(&pp, &po, &pr, diag);
    if (rc != 0) {
        goto out;
    }
    for (int i = 0; i < n; i++) {
        memset(&nodes[i], 0, sizeof(nodes[i]));
        snprintf(nodes[i].name, sizeof(nodes[i].name), "%s", names[i]);
        int k = pr.layout->nodes[i].n_layers;
        if (k > 0) {
            nodes[i].layer_start = pr.layout->nodes[i].start;
            nodes[i].layer_end = nodes[i].layer_start + k;
            int g = model_gpu_index(m, types[i]);
            double cap = g >= 0 ? model_node_capacity(tp, NULL, g, k) : -1;
            nodes[i].capacity = cap > 0 ? cap : 1e-9;
        }
    }
    *objective = pr.objective;
out:
    plan_result_release(&pr);
    model_throughput_free(tp);
    cluster_free(cl);
    return rc;
}
