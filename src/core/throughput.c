/*
 * throughput.c - Helix's "typical token throughput" of a node with k layers (spec §1.7).
 *
 * A node's throughput depends on how much of a request's round trip it holds, which depends on
 * the speed of the other GPU types in the cluster; Helix resolves this with a fixed number of
 * Jacobi iterations over a per-type normalised performance. Python's rounding (half to even)
 * and int() truncation are reproduced so P and D match bit for bit (Appendix A).
 */
#include "core/model.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/pymath.h"
#include "base/status.h"
#include "core/cluster.h"

/* Per-type context of one evaluation: the average layer time over the cluster. */
struct tp_ctx {
    const struct model_profile *m;
    const int *counts;
    const int *typical;
    const double *perf;
    double avg_layer_time;
};

static void ctx_avg(struct tp_ctx *cx)
{
    double num = 0;
    double den = 0;
    for (size_t u = 0; u < cx->m->n_gpus; u++) {
        if (cx->counts[u] > 0) {
            double w = (double)cx->counts[u] * (double)cx->typical[u];
            num += w * (1.0 / cx->perf[u]);
            den += w;
        }
    }
    cx->avg_layer_time = num / den;
}

/* TP of type g with k layers under cx (§1.7 step 4); fills *st. */
static int tp_eval(const struct tp_ctx *cx, size_t g, int k, double *tp_out,
                   struct model_settings *st, struct hx_diag *diag)
{
    const struct model_profile *m = cx->m;
    const struct model_gpu *gpu = &m->gpus[g];
    int L = m->n_layers;
    double lt = 1.0 / cx->perf[g];
    double rtt = (double)(L - k) * cx->avg_layer_time + (double)k * lt;
    double batch = (double)k * lt;
    double ratio = batch / rtt;
    double kv_cap = (double)model_kv_capacity(m, gpu, k);
    double avail = py_int(m->kv_cache_hwm * kv_cap / (double)k);
    double in_len = (double)m->avg_input_len;
    double out_len = (double)m->avg_output_len;
    double tot = in_len + out_len;
    double R = avail / tot * ratio / out_len;
    double P = py_round(R * in_len);
    double D = py_round(avail / tot * ratio);
    if (R > 1) {
        R = 1;
        P = in_len;
        D = out_len;
    }
    memset(st, 0, sizeof(*st));
    st->prompt_max_requests = gpu->prompt_max_requests[k - 1];
    st->prompt_max_tokens = st->prompt_max_requests * m->max_input_len;
    st->decode_max_tokens = gpu->decode_max_tokens[k - 1];
    st->decode_max_context = st->decode_max_tokens * m->decode_per_token_max_context;
    st->R = R;
    st->P = (int)P;
    st->D = (int)D;
    if (D > (double)gpu->decode_max_tokens[k - 1]) {
        return hx_diag_set(diag, HX_ERANGE,
                           "%s: %s with %d layers: typical decode tokens %g exceed "
                           "decode_max_tokens %d (Helix asserts here)",
                           m->path, gpu->type, k, D, gpu->decode_max_tokens[k - 1]);
    }
    if (!(R > 0)) {
        return hx_diag_set(diag, HX_ERANGE,
                           "%s: %s with %d layers: no typical requests fit (R = %g; Helix divides "
                           "by zero here)",
                           m->path, gpu->type, k, R);
    }
    double pt = 0;
    double dt = 0;
    double tp;
    int rc;
    if (P == 0 && D == 0) {
        /* not one token of the typical request rounds into a batch (a small KV at this k, or
         * a pipeline so slow that requests rarely sit here): Helix divides 0 by 0. Take the
         * smallest real batch instead, one decode token, so the node's capacity is what it
         * serves at batch 1 (helix profile --mem-bytes types reach this at their largest k). */
        D = 1;
        rc = model_decode_time(gpu, D, &dt);
        if (rc == HX_OK && dt > 0) {
            *tp_out = D / ((double)k * dt);
            st->D = 1;
            return HX_OK;
        }
    }
    if (R >= 1) {
        rc = model_prompt_time(gpu, P, &pt);
        if (rc == HX_OK) {
            rc = model_decode_time(gpu, D, &dt);
        }
        tp = (P + D) / ((double)k * (pt + dt));
    } else {
        double r = 1.0 / R;
        double pin = py_int(P * r);
        rc = model_prompt_time(gpu, pin, &pt);
        if (rc == HX_OK) {
            rc = model_decode_time(gpu, D, &dt);
        }
        tp = r * (P + D) / ((double)k * (pt + r * dt));
    }
    if (rc == HX_ENOTFOUND) {
        return hx_diag_set(diag, rc, "%s: %s: profile curves not loaded", m->path, gpu->type);
    }
    if (rc != HX_OK) {
        return hx_diag_set(diag, HX_ERANGE,
                           "%s: %s with %d layers: batch (P=%g, D=%g) is beyond the profile CSV "
                           "(Helix asserts here)",
                           m->path, gpu->type, k, P, D);
    }
    if (!isfinite(tp) || tp < 0) {
        return hx_diag_set(diag, HX_ERANGE, "%s: %s with %d layers: throughput is not finite",
                           m->path, gpu->type, k);
    }
    *tp_out = tp;
    return HX_OK;
}

void model_throughput_free(struct model_throughput *t)
{
    if (!t) {
        return;
    }
    for (size_t g = 0; g < t->n_gpus; g++) {
        if (t->tp) {
            xfree(t->tp[g]);
        }
        if (t->settings) {
            xfree(t->settings[g]);
        }
    }
    xfree(t->tp);
    xfree(t->settings);
    xfree(t->counts);
    xfree(t->typical);
    xfree(t->perf);
    xfree(t);
}

int model_throughput_new(const struct model_profile *m, const int *counts,
                         struct model_throughput **out, struct hx_diag *diag)
{
    *out = NULL;
    size_t n = m->n_gpus;
    struct model_throughput *t = xcalloc(1, sizeof(*t));
    t->model = m;
    t->n_gpus = n;
    t->counts = xcalloc(n, sizeof(int));
    t->typical = xcalloc(n, sizeof(int));
    t->perf = xcalloc(n, sizeof(double));
    t->tp = xcalloc(n, sizeof(double *));
    t->settings = xcalloc(n, sizeof(struct model_settings *));
    double *next = xcalloc(n, sizeof(double));
    int rc = HX_OK;
    long total = 0;
    double sum_typ = 0;
    for (size_t g = 0; g < n; g++) {
        if (counts[g] < 0) {
            rc = hx_diag_set(diag, HX_EINVAL, "negative count for %s", m->gpus[g].type);
            goto fail;
        }
        t->counts[g] = counts[g];
        total += counts[g];
        if (counts[g] > 0) {
            if (m->gpus[g].typical_layers <= 0 || m->gpus[g].typical_layers_large <= 0 ||
                !(m->gpus[g].initial_perf > 0)) {
                rc = hx_diag_set(diag, HX_ENOTFOUND,
                                 "%s: [throughput_model] has no typical_layers / "
                                 "typical_layers_large / initial_perf for %s",
                                 m->path, m->gpus[g].type);
                goto fail;
            }
            sum_typ += (double)counts[g] * (double)m->gpus[g].typical_layers;
        }
    }
    if (total == 0) {
        rc = hx_diag_set(diag, HX_EINVAL, "%s: empty cluster composition", m->path);
        goto fail;
    }
    t->large_table = sum_typ < 1.2 * (double)m->n_layers;
    for (size_t g = 0; g < n; g++) {
        if (counts[g] > 0) {
            const struct model_gpu *gpu = &m->gpus[g];
            t->typical[g] = t->large_table ? gpu->typical_layers_large : gpu->typical_layers;
            if (t->typical[g] > gpu->max_layers) {
                rc = hx_diag_set(diag, HX_ERANGE, "%s: %s: typical layers %d exceed max_layers %d",
                                 m->path, gpu->type, t->typical[g], gpu->max_layers);
                goto fail;
            }
            t->perf[g] = gpu->initial_perf;
        }
    }
    struct tp_ctx cx = {.m = m, .counts = t->counts, .typical = t->typical, .perf = t->perf};
    struct model_settings st;
    for (int it = 0; it < m->iterations; it++) {
        ctx_avg(&cx);
        for (size_t g = 0; g < n; g++) {
            if (counts[g] > 0) {
                double tp = 0;
                rc = tp_eval(&cx, g, t->typical[g], &tp, &st, diag);
                if (rc != HX_OK) {
                    goto fail;
                }
                next[g] = (double)t->typical[g] * tp;
                if (!(next[g] > 0)) {
                    rc = hx_diag_set(diag, HX_ERANGE, "%s: %s: zero throughput", m->path,
                                     m->gpus[g].type);
                    goto fail;
                }
            }
        }
        memcpy(t->perf, next, n * sizeof(double));
    }
    ctx_avg(&cx);
    for (size_t g = 0; g < n; g++) {
        if (counts[g] <= 0) {
            continue;
        }
        int mx = m->gpus[g].max_layers;
        t->tp[g] = xcalloc((size_t)mx, sizeof(double));
        t->settings[g] = xcalloc((size_t)mx, sizeof(struct model_settings));
        for (int k = 1; k <= mx; k++) {
            rc = tp_eval(&cx, g, k, &t->tp[g][k - 1], &t->settings[g][k - 1], diag);
            if (rc != HX_OK) {
                goto fail;
            }
        }
    }
    xfree(next);
    *out = t;
    return HX_OK;
fail:
    xfree(next);
    model_throughput_free(t);
    return rc;
}

double model_throughput_tp(const struct model_throughput *t, int g, int k)
{
    if (g < 0 || (size_t)g >= t->n_gpus || !t->tp[g] || k < 1 || k > t->model->gpus[g].max_layers) {
        return -1;
    }
    return t->tp[g][k - 1];
}

int model_count_types(const struct model_profile *m, const struct cluster *c, int *counts,
                      struct hx_diag *diag)
{
    memset(counts, 0, m->n_gpus * sizeof(int));
    for (int i = 0; i < c->n_nodes; i++) {
        int g = model_gpu_index(m, c->nodes[i].type);
        if (g < 0) {
            return hx_diag_set(diag, HX_ENOTFOUND,
                               "%s:%d: [ComputeNode-%d] type: GPU type '%s' is not in model "
                               "profile %s",
                               c->path, c->nodes[i].line, i, c->nodes[i].type, m->path);
        }
        counts[g]++;
    }
    return HX_OK;
}

int model_throughput_for_cluster(const struct model_profile *m, const struct cluster *c,
                                 struct model_throughput **out, struct hx_diag *diag)
{
    *out = NULL;
    int *counts = xcalloc(m->n_gpus, sizeof(int));
    int rc = model_count_types(m, c, counts, diag);
    if (rc == HX_OK) {
        rc = model_throughput_new(m, counts, out, diag);
    }
    xfree(counts);
    return rc;
}

double model_node_capacity(const struct model_throughput *t, const struct machine_profiles *mp,
                           int g, int k)
{
    double tp = model_throughput_tp(t, g, k);
    if (tp < 0) {
        return -1;
    }
    const struct machine_profile *p = mp ? machine_profiles_find(mp, t->model->gpus[g].type) : NULL;
    if (p && p->nic_in > 0 && p->nic_out > 0) {
        double nic = fmin(p->nic_in, p->nic_out) / t->model->activation_bytes;
        if (nic < tp) {
            return nic;
        }
    }
    return tp;
}

int model_upper_bound(const struct model_throughput *t, const struct machine_profiles *mp,
                      const struct cluster *c, double *out, struct hx_diag *diag)
{
    const struct model_profile *m = t->model;
    double sum = 0;
    for (int i = 0; i < c->n_nodes; i++) {
        int g = model_gpu_index(m, c->nodes[i].type);
        if (g < 0 || !t->tp[g]) {
            return hx_diag_set(diag, HX_ENOTFOUND,
                               "%s:%d: [ComputeNode-%d] type: '%s' has no throughput in this "
                               "composition",
                               c->path, c->nodes[i].line, i, c->nodes[i].type);
        }
        double best = 0;
        for (int k = 1; k <= m->gpus[g].max_layers; k++) {
            double v = (double)k * model_node_capacity(t, mp, g, k);
            if (v > best) {
                best = v;
            }
        }
        sum += best;
    }
    *out = sum / (double)m->n_layers;
    return HX_OK;
}
