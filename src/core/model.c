/*
 * model.c - model x GPU profiles (our models/NAME.ini + the profile CSVs, spec §1.4-§1.6).
 *
 * The INI keeps Helix's per-GPU Python constants as plain whitespace-separated arrays indexed by
 * k = 1..max_layers, and the per-type tables of §1.7 as "TYPE value, TYPE value" pairs. Curves
 * are converted from ms to seconds on load; interpolation follows Helix's linear_interpolate.
 */
#include "core/model.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "core/cfg.h"

#define MODEL_MAX_LAYERS_PER_GPU 4096

/* ---- curves ------------------------------------------------------------------------------ */

void model_curve_release(struct model_curve *c)
{
    if (!c) {
        return;
    }
    xfree(c->x);
    xfree(c->t_s);
    memset(c, 0, sizeof(*c));
}

static int parse_csv_number(const char *s, size_t n, double *out)
{
    char buf[64];
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        n--;
    }
    if (n == 0 || n >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!(isdigit((unsigned char)buf[i]) || buf[i] == '.' || buf[i] == '-' || buf[i] == '+' ||
              buf[i] == 'e' || buf[i] == 'E')) {
            return -1;
        }
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v)) {
        return -1;
    }
    *out = v;
    return 0;
}

int model_curve_parse_string(const char *text, const char *name, struct model_curve *out,
                             struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    const char *nm = name ? name : "<csv>";
    size_t cap = 0;
    int line = 0;
    const char *p = text;
    int rc = HX_OK;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        line++;
        const char *l = p;
        p += len + (nl ? 1 : 0);
        size_t blank = 0;
        while (blank < len && isspace((unsigned char)l[blank])) {
            blank++;
        }
        if (blank == len) {
            continue;
        }
        const char *comma = memchr(l, ',', len);
        double x = 0;
        double ms = 0;
        if (!comma) {
            rc = hx_diag_set(diag, HX_EPARSE,
                             "%s:%d: truncated line: expected 'batch_tokens,time_ms'", nm, line);
            goto fail;
        }
        if (parse_csv_number(l, (size_t)(comma - l), &x) != 0 ||
            parse_csv_number(comma + 1, len - (size_t)(comma + 1 - l), &ms) != 0) {
            rc = hx_diag_set(diag, HX_EPARSE, "%s:%d: bad number in '%.*s'", nm, line,
                             (int)(len > 60 ? 60 : len), l);
            goto fail;
        }
        if (x < 0 || ms < 0) {
            rc = hx_diag_set(diag, HX_ERANGE, "%s:%d: negative value", nm, line);
            goto fail;
        }
        if (out->n > 0 && !(x > out->x[out->n - 1])) {
            rc = hx_diag_set(diag, HX_EPARSE,
                             "%s:%d: batch_tokens %g not strictly increasing (after %g)", nm, line,
                             x, out->x[out->n - 1]);
            goto fail;
        }
        if (out->n == cap) {
            cap = cap ? cap * 2 : 32;
            out->x = xrealloc(out->x, cap * sizeof(double));
            out->t_s = xrealloc(out->t_s, cap * sizeof(double));
        }
        out->x[out->n] = x;
        out->t_s[out->n] = ms * 1e-3;
        out->n++;
    }
    if (out->n == 0) {
        rc =
            hx_diag_set(diag, HX_EPARSE, "%s: empty profile (no 'batch_tokens,time_ms' lines)", nm);
        goto fail;
    }
    return HX_OK;
fail:
    model_curve_release(out);
    return rc;
}

int model_curve_eval(const struct model_curve *c, double x, double *out_s)
{
    if (c->n == 0) {
        return HX_ENOTFOUND;
    }
    if (!(x >= c->x[0]) || x > c->x[c->n - 1]) {
        return HX_ERANGE;
    }
    /* binary search: the first point >= x */
    size_t lo = 0;
    size_t hi = c->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->x[mid] < x) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (c->x[lo] == x) {
        *out_s = c->t_s[lo];
        return HX_OK;
    }
    /* c->x[lo-1] < x < c->x[lo] */
    double x0 = c->x[lo - 1];
    double x1 = c->x[lo];
    double y0 = c->t_s[lo - 1];
    double y1 = c->t_s[lo];
    *out_s = y0 + (y1 - y0) * (x - x0) / (x1 - x0);
    return HX_OK;
}

int model_prompt_time(const struct model_gpu *g, double tokens, double *out_s)
{
    return model_curve_eval(&g->prompt, tokens, out_s);
}

int model_decode_time(const struct model_gpu *g, double tokens, double *out_s)
{
    return model_curve_eval(&g->decode, tokens, out_s);
}

/* ---- model profile ----------------------------------------------------------------------- */

int model_gpu_index(const struct model_profile *m, const char *type)
{
    for (size_t i = 0; i < m->n_gpus; i++) {
        if (strcmp(m->gpus[i].type, type) == 0) {
            return (int)i;
        }
    }
    return -1;
}

long model_kv_capacity(const struct model_profile *m, const struct model_gpu *g, int k)
{
    if (k < 1 || k > g->max_layers) {
        return 0;
    }
    return (long)m->kv_block_size * (long)g->kv_blocks[k - 1] * (long)k;
}

void model_profile_free(struct model_profile *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->n_gpus; i++) {
        struct model_gpu *g = &m->gpus[i];
        xfree(g->kv_blocks);
        xfree(g->prompt_max_requests);
        xfree(g->decode_max_tokens);
        model_curve_release(&g->prompt);
        model_curve_release(&g->decode);
    }
    xfree(m->gpus);
    xfree(m->path);
    xfree(m);
}

/* Whitespace-separated positive ints, exactly n of them. */
static int get_int_array(const struct cfg_ini *ini, const struct cfg_section *sec, const char *key,
                         int n, int **out, struct hx_diag *diag)
{
    const struct cfg_entry *e = cfg_section_entry(sec, key);
    if (!e) {
        return hx_diag_set(diag, HX_ENOTFOUND, "%s:%d: [%s] %s: missing key '%s'", ini->path,
                           sec->line, sec->name, key, key);
    }
    char where[256];
    cfg_entry_where(ini, sec, e, where, sizeof(where));
    int *a = xcalloc((size_t)n, sizeof(int));
    int count = 0;
    const char *p = e->value;
    for (;;) {
        while (isspace((unsigned char)*p) || *p == ',') {
            p++;
        }
        if (!*p) {
            break;
        }
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && !isspace((unsigned char)*end) && *end != ',') || errno || v < -1 ||
            v > 1000000000L) {
            xfree(a);
            return hx_diag_set(diag, HX_EPARSE, "%s: bad integer at '%.20s'", where, p);
        }
        if (count == n) {
            xfree(a);
            return hx_diag_set(diag, HX_ERANGE, "%s: more than max_layers = %d values", where, n);
        }
        a[count++] = (int)v;
        p = end;
    }
    if (count != n) {
        xfree(a);
        return hx_diag_set(diag, HX_ERANGE, "%s: %d values, expected max_layers = %d", where, count,
                           n);
    }
    for (int i = 0; i < n; i++) {
        if (a[i] <= 0) {
            int bad = a[i];
            xfree(a);
            return hx_diag_set(diag, HX_ERANGE, "%s: value %d (k=%d) must be positive", where, bad,
                               i + 1);
        }
    }
    *out = a;
    return HX_OK;
}

/* "TYPE value, TYPE value" -> the matching model_gpu field (which = 0 typical, 1 large, 2 perf). */
static int get_type_table(const struct cfg_ini *ini, struct model_profile *m, const char *key,
                          int which, struct hx_diag *diag)
{
    const struct cfg_section *sec = cfg_ini_section(ini, "throughput_model");
    const struct cfg_entry *e = sec ? cfg_section_entry(sec, key) : NULL;
    if (!e) {
        return hx_diag_set(diag, HX_ENOTFOUND, "%s:%d: [throughput_model] %s: missing key '%s'",
                           ini->path, sec ? sec->line : 0, key, key);
    }
    char where[256];
    cfg_entry_where(ini, sec, e, where, sizeof(where));
    const char *p = e->value;
    while (*p) {
        while (isspace((unsigned char)*p) || *p == ',') {
            p++;
        }
        if (!*p) {
            break;
        }
        const char *t = p;
        while (*p && !isspace((unsigned char)*p) && *p != ',') {
            p++;
        }
        size_t tn = (size_t)(p - t);
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        char *end = NULL;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || !isfinite(v) || v <= 0 ||
            (*end && *end != ',' && !isspace((unsigned char)*end))) {
            return hx_diag_set(diag, HX_EPARSE, "%s: expected 'TYPE number' pairs at '%.20s'",
                               where, t);
        }
        p = end;
        int g = -1;
        for (size_t i = 0; i < m->n_gpus; i++) {
            if (strlen(m->gpus[i].type) == tn && memcmp(m->gpus[i].type, t, tn) == 0) {
                g = (int)i;
            }
        }
        if (g < 0) {
            return hx_diag_set(diag, HX_ENOTFOUND, "%s: type '%.*s' has no [gpu %.*s] section",
                               where, (int)tn, t, (int)tn, t);
        }
        if (which == 2) {
            m->gpus[g].initial_perf = v;
        } else if (v != floor(v) || v > MODEL_MAX_LAYERS_PER_GPU) {
            return hx_diag_set(diag, HX_EPARSE, "%s: '%.*s %g' is not a layer count", where,
                               (int)tn, t, v);
        } else if (which == 0) {
            m->gpus[g].typical_layers = (int)v;
        } else {
            m->gpus[g].typical_layers_large = (int)v;
        }
    }
    return HX_OK;
}

static int load_curve(const struct cfg_ini *ini, const struct cfg_section *sec, const char *key,
                      const char *base_dir, struct model_curve *out, struct hx_diag *diag)
{
    const struct cfg_entry *e = cfg_section_entry(sec, key);
    if (!e) {
        return hx_diag_set(diag, HX_ENOTFOUND, "%s:%d: [%s] %s: missing key '%s'", ini->path,
                           sec->line, sec->name, key, key);
    }
    if (!base_dir) {
        return HX_OK;
    }
    char where[256];
    cfg_entry_where(ini, sec, e, where, sizeof(where));
    struct strbuf path;
    struct strbuf text;
    strbuf_init(&path);
    strbuf_init(&text);
    int rc = HX_OK;
    /* absolute as is; else base_dir/rel, then base_dir/../rel */
    if (e->value[0] == '/') {
        strbuf_adds(&path, e->value);
        rc = strbuf_read_file(&text, path.buf);
    } else {
        strbuf_addf(&path, "%s/%s", base_dir, e->value);
        rc = strbuf_read_file(&text, path.buf);
        if (rc != HX_OK) {
            strbuf_reset(&path);
            strbuf_reset(&text);
            strbuf_addf(&path, "%s/../%s", base_dir, e->value);
            rc = strbuf_read_file(&text, path.buf);
        }
    }
    if (rc != HX_OK) {
        rc = hx_diag_set(diag, HX_EIO, "%s: cannot read profile '%s' (looked in %s and %s/..)",
                         where, e->value, base_dir, base_dir);
    } else {
        rc = model_curve_parse_string(text.buf, path.buf, out, diag);
    }
    strbuf_release(&path);
    strbuf_release(&text);
    return rc;
}

static int get_double(const struct cfg_ini *ini, const char *sec, const char *key, double *out,
                      int positive, struct hx_diag *diag)
{
    int rc = cfg_ini_get_number(ini, sec, key, out, diag);
    if (rc == HX_OK && positive && !(*out > 0)) {
        const struct cfg_entry *e = cfg_section_entry(cfg_ini_section(ini, sec), key);
        rc = hx_diag_set(diag, HX_ERANGE, "%s:%d: [%s] %s: must be > 0", ini->path, e->line, sec,
                         key);
    }
    return rc;
}

static int get_pos_int(const struct cfg_ini *ini, const char *sec, const char *key, int *out,
                       struct hx_diag *diag)
{
    int rc = cfg_ini_get_int(ini, sec, key, out, diag);
    if (rc == HX_OK && *out <= 0) {
        const struct cfg_entry *e = cfg_section_entry(cfg_ini_section(ini, sec), key);
        rc = hx_diag_set(diag, HX_ERANGE, "%s:%d: [%s] %s: must be a positive integer", ini->path,
                         e->line, sec, key);
    }
    return rc;
}

static int model_from_ini(const struct cfg_ini *ini, const char *base_dir,
                          struct model_profile **out, struct hx_diag *diag)
{
    struct model_profile *m = xcalloc(1, sizeof(*m));
    m->path = xstrdup(ini->path);
    int rc = cfg_ini_get_string(ini, "model", "name", m->name, sizeof(m->name), diag);
    const char *tm = "throughput_model";
    if (rc == HX_OK) {
        rc = get_pos_int(ini, "model", "num_layers", &m->n_layers, diag);
    }
    if (rc == HX_OK && m->n_layers > MODEL_MAX_LAYERS_PER_GPU) {
        rc = hx_diag_set(diag, HX_ERANGE, "%s: [model] num_layers: %d is too large", ini->path,
                         m->n_layers);
    }
    if (rc == HX_OK) {
        rc = get_double(ini, "model", "layer_bytes", &m->layer_bytes, 1, diag);
    }
    if (rc == HX_OK) {
        rc = get_double(ini, "model", "token_bytes", &m->token_bytes, 1, diag);
    }
    if (rc == HX_OK) {
        rc = get_double(ini, "model", "activation_bytes", &m->activation_bytes, 1, diag);
    }
    if (rc == HX_OK) {
        rc = get_pos_int(ini, "model", "hidden_size", &m->hidden_size, diag);
    }
    if (rc == HX_OK) {
        rc = get_pos_int(ini, "model", "num_heads", &m->num_heads, diag);
    }
    if (rc == HX_OK) {
        rc = get_pos_int(ini, "model", "num_kv_heads", &m->num_kv_heads, diag);
    }
    if (rc == HX_OK) {
        rc = get_pos_int(ini, "model", "ffn_size", &m->ffn_size, diag);
    }
    if (rc == HX_OK) {
        rc = get_pos_int(ini, tm, "avg_input_len", &m->avg_input_len, diag);
    }
    if (rc == HX_OK) {
        rc = get_pos_int(ini, tm, "avg_output_len", &m->avg_output_len, diag);
    }
    if (rc == HX_OK) {
        rc = get_pos_int(ini, tm, "max_input_len", &m->max_input_len, diag);
    }
    if (rc == HX_OK) {
        rc = get_pos_int(ini, tm, "kv_block_size", &m->kv_block_size, diag);
    }
    if (rc == HX_OK) {
        rc = get_pos_int(ini, tm, "decode_per_token_max_context", &m->decode_per_token_max_context,
                         diag);
    }
    if (rc == HX_OK) {
        rc = get_double(ini, tm, "kv_cache_hwm", &m->kv_cache_hwm, 1, diag);
    }
    if (rc == HX_OK) {
        rc = get_pos_int(ini, tm, "iterations", &m->iterations, diag);
    }
    if (rc == HX_OK && m->iterations > 1000) {
        rc = hx_diag_set(diag, HX_ERANGE, "%s: [throughput_model] iterations: %d is too large",
                         ini->path, m->iterations);
    }
    if (rc != HX_OK) {
        goto fail;
    }
    m->gpus = xcalloc(ini->n_sections + 1, sizeof(*m->gpus));
    for (size_t s = 0; s < ini->n_sections; s++) {
        const struct cfg_section *sec = &ini->sections[s];
        if (strncmp(sec->name, "gpu ", 4) != 0) {
            continue;
        }
        struct model_gpu *g = &m->gpus[m->n_gpus];
        const char *type = sec->name + 4;
        if (!*type || strlen(type) >= sizeof(g->type) || strchr(type, ' ')) {
            rc = hx_diag_set(diag, HX_EPARSE, "%s:%d: [%s]: bad GPU type name", ini->path,
                             sec->line, sec->name);
            goto fail;
        }
        if (model_gpu_index(m, type) >= 0) {
            rc = hx_diag_set(diag, HX_EPARSE, "%s:%d: [%s]: GPU type defined twice", ini->path,
                             sec->line, sec->name);
            goto fail;
        }
        snprintf(g->type, sizeof(g->type), "%s", type);
        m->n_gpus++;
        rc = get_pos_int(ini, sec->name, "max_layers", &g->max_layers, diag);
        if (rc == HX_OK && g->max_layers > MODEL_MAX_LAYERS_PER_GPU) {
            rc = hx_diag_set(diag, HX_ERANGE, "%s: [%s] max_layers: %d is too large", ini->path,
                             sec->name, g->max_layers);
        }
        if (rc == HX_OK) {
            rc = get_int_array(ini, sec, "kv_blocks", g->max_layers, &g->kv_blocks, diag);
        }
        if (rc == HX_OK) {
            rc = get_int_array(ini, sec, "prompt_max_requests", g->max_layers,
                               &g->prompt_max_requests, diag);
        }
        if (rc == HX_OK) {
            rc = get_int_array(ini, sec, "decode_max_tokens", g->max_layers, &g->decode_max_tokens,
                               diag);
        }
        if (rc == HX_OK) {
            rc = load_curve(ini, sec, "prompt_profile", base_dir, &g->prompt, diag);
        }
        if (rc == HX_OK) {
            rc = load_curve(ini, sec, "decode_profile", base_dir, &g->decode, diag);
        }
        if (rc != HX_OK) {
            goto fail;
        }
    }
    if (m->n_gpus == 0) {
        rc = hx_diag_set(diag, HX_ENOTFOUND, "%s: no [gpu TYPE] section", ini->path);
        goto fail;
    }
    rc = get_type_table(ini, m, "typical_layers", 0, diag);
    if (rc == HX_OK) {
        rc = get_type_table(ini, m, "typical_layers_large", 1, diag);
    }
    if (rc == HX_OK) {
        rc = get_type_table(ini, m, "initial_perf", 2, diag);
    }
    if (rc != HX_OK) {
        goto fail;
    }
    *out = m;
    return HX_OK;
fail:
    model_profile_free(m);
    return rc;
}

int model_profile_parse_string(const char *text, const char *name, const char *base_dir,
                               struct model_profile **out, struct hx_diag *diag)
{
    *out = NULL;
    struct cfg_ini *ini = NULL;
    int rc = cfg_ini_parse_string(text, name, &ini, diag);
    if (rc == HX_OK) {
        rc = model_from_ini(ini, base_dir, out, diag);
    }
    cfg_ini_free(ini);
    return rc;
}

int model_profile_read_file(const char *path, struct model_profile **out, struct hx_diag *diag)
{
    *out = NULL;
    struct cfg_ini *ini = NULL;
    int rc = cfg_ini_parse_file(path, &ini, diag);
    if (rc != HX_OK) {
        return rc;
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash) {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
        if (dir[0] == '\0') {
            snprintf(dir, sizeof(dir), "/");
        }
    } else {
        snprintf(dir, sizeof(dir), ".");
    }
    rc = model_from_ini(ini, dir, out, diag);
    cfg_ini_free(ini);
    return rc;
}
