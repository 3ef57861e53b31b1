/*
 * plan.c - the plan module's common parts: method names, the per-problem capacity table,
 * scoring by exact max-flow (flow.h), the upper bounds, pipeline depth and the plan_solve
 * dispatcher. See plan.h for the contracts.
 */
#include "plan/plan.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "core/cluster.h"
#include "core/model.h"
#include "flow/flow.h"
#include "plan/plan_int.h"

static const char *const method_names[PLAN_METHOD_COUNT] = {
    "auto", "petals", "swarm", "homogeneous", "separate", "memory", "ram-ring", "milp",
};

const char *plan_method_name(enum plan_method m)
{
    if ((int)m < 0 || m >= PLAN_METHOD_COUNT) {
        return "unknown";
    }
    return method_names[m];
}

int plan_method_parse(const char *name, enum plan_method *out, struct hx_diag *diag)
{
    for (int i = 0; i < PLAN_METHOD_COUNT; i++) {
        if (name && strcmp(name, method_names[i]) == 0) {
            *out = (enum plan_method)i;
            return HX_OK;
        }
    }
    return hx_diag_set(diag, HX_EINVAL,
                       "unknown method '%s' (use auto, petals, swarm, homogeneous, separate, "
                       "memory, ram-ring or milp)",
                       name ? name : "(null)");
}

void plan_options_init(struct plan_options *o)
{
    memset(o, 0, sizeof(*o));
    o->method = PLAN_METHOD_AUTO;
    o->time_limit_s = 60.0;
    o->threads = 1;
    o->jobs = 1;
}

const char *plan_objective_name(enum plan_objective o)
{
    return o == PLAN_OBJECTIVE_SERVED ? "served" : "maxflow";
}

int plan_objective_parse(const char *name, enum plan_objective *out, struct hx_diag *diag)
{
    if (name && !strcmp(name, "maxflow")) {
        *out = PLAN_OBJECTIVE_MAXFLOW;
        return HX_OK;
    }
    if (name && !strcmp(name, "served")) {
        *out = PLAN_OBJECTIVE_SERVED;
        return HX_OK;
    }
    return hx_diag_set(diag, HX_EINVAL, "unknown objective '%s' (valid: maxflow, served)",
                       name ? name : "");
}

double plan_now(const struct plan_options *o)
{
    return (o && o->now) ? o->now(o->now_user) : 0.0;
}

void plan_result_release(struct plan_result *r)
{
    if (!r) {
        return;
    }
    layout_free(r->layout);
    r->layout = NULL;
}

int plan_node_max_layers(const struct plan_problem *p, int node)
{
    if (node < 0 || node >= p->cluster->n_nodes) {
        return 0;
    }
    int g = model_gpu_index(p->model, p->cluster->nodes[node].type);
    return g < 0 ? 0 : p->model->gpus[g].max_layers;
}

double plan_node_capacity(const struct plan_problem *p, int node, int k)
{
    if (node < 0 || node >= p->cluster->n_nodes) {
        return -1.0;
    }
    int g = model_gpu_index(p->model, p->cluster->nodes[node].type);
    if (g < 0 || k < 1 || k > p->model->gpus[g].max_layers) {
        return -1.0;
    }
    return model_node_capacity(p->tp, p->mp, g, k);
}

int plan_tab_init(struct plan_tab *t, const struct plan_problem *p, struct hx_diag *diag)
{
    memset(t, 0, sizeof(*t));
    const struct cluster *c = p->cluster;
    int n = c->n_nodes;
    if (n <= 0) {
        return hx_diag_set(diag, HX_EINVAL, "%s: cluster has no compute nodes",
                           c->path ? c->path : "cluster");
    }
    t->n = n;
    t->L = p->model->n_layers;
    t->maxk = xcalloc((size_t)n, sizeof(int));
    t->gpu = xcalloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) {
        int g = model_gpu_index(p->model, c->nodes[i].type);
        if (g < 0 || model_throughput_tp(p->tp, g, 1) < 0) {
            plan_tab_release(t);
            return hx_diag_set(diag, HX_ENOTFOUND,
                               "%s: node %d has GPU type '%s', which model %s does not profile",
                               c->path ? c->path : "cluster", i, c->nodes[i].type, p->model->name);
        }
        t->gpu[i] = g;
        t->maxk[i] = p->model->gpus[g].max_layers;
        if (t->maxk[i] > t->kmax) {
            t->kmax = t->maxk[i];
        }
    }
    size_t stride = (size_t)t->kmax + 1;
    t->cap = xcalloc((size_t)n * stride, sizeof(double));
    for (int i = 0; i < n; i++) {
        for (int k = 1; k <= t->maxk[i]; k++) {
            double v = model_node_capacity(p->tp, p->mp, t->gpu[i], k);
            t->cap[(size_t)i * stride + (size_t)k] = v > 0 ? v : 0.0;
        }
    }
    t->lc = xcalloc((size_t)n * (size_t)n, sizeof(double));
    t->src = xcalloc((size_t)n, sizeof(double));
    t->snk = xcalloc((size_t)n, sizeof(double));
    for (int e = 0; e < c->n_links; e++) {
        const struct cluster_link *lk = &c->links[e];
        if (lk->a == CLUSTER_SOURCE && lk->b >= 0) {
            t->src[lk->b] = lk->bandwidth / p->model->token_bytes;
        } else if (lk->b == CLUSTER_SINK && lk->a >= 0) {
            t->snk[lk->a] = lk->bandwidth / p->model->token_bytes;
        } else if (lk->a >= 0 && lk->b >= 0) {
            double v = lk->bandwidth / p->model->activation_bytes;
            t->lc[(size_t)lk->a * (size_t)n + (size_t)lk->b] = v;
            t->lc[(size_t)lk->b * (size_t)n + (size_t)lk->a] = v;
        }
    }
    return HX_OK;
}

void plan_tab_release(struct plan_tab *t)
{
    xfree(t->maxk);
    xfree(t->gpu);
    xfree(t->cap);
    xfree(t->lc);
    xfree(t->src);
    xfree(t->snk);
    memset(t, 0, sizeof(*t));
}

int plan_score(const struct plan_problem *p, const struct layout *l, double *value,
               struct hx_diag *diag)
{
    return flow_planner_max_flow(p->cluster, l, p->model, p->tp, p->mp, p->conn, value, NULL, diag);
}

/* h(F) = sum_i max_k k * min(cap_i(k), F) / F: nonincreasing in F. */
static double clamped_layers(const struct plan_tab *t, double F)
{
    double s = 0.0;
    for (int i = 0; i < t->n; i++) {
        double best = 0.0;
        for (int k = 1; k <= t->maxk[i]; k++) {
            double c = plan_tab_cap(t, i, k);
            double w = (double)k * (c < F ? c : F);
            if (w > best) {
                best = w;
            }
        }
        s += best;
    }
    return s / F;
}

double plan_upper_bound(const struct plan_problem *p, char *kind, size_t kind_n)
{
    struct plan_tab t;
    double ub = 0.0;
    if (plan_tab_init(&t, p, NULL) != HX_OK) {
        if (kind) {
            snprintf(kind, kind_n, "none");
        }
        return INFINITY;
    }
    const char *k = "compute";
    /* compute-only (§2.4) */
    for (int i = 0; i < t.n; i++) {
        double best = 0.0;
        for (int kk = 1; kk <= t.maxk[i]; kk++) {
            double w = kk * plan_tab_cap(&t, i, kk);
            if (w > best) {
                best = w;
            }
        }
        ub += best;
    }
    ub /= t.L;
    /* flow-clamped work bound: largest F with h(F) >= L (h nonincreasing) */
    if (clamped_layers(&t, ub) < t.L * (1 - 1e-12)) {
        double lo = 0.0;
        double hi = ub;
        for (int it = 0; it < 200 && hi - lo > 1e-9 * hi; it++) {
            double mid = 0.5 * (lo + hi);
            if (mid > 0 && clamped_layers(&t, mid) >= t.L * (1 - 1e-12)) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        ub = hi;
        k = "clamped-work";
    }
    /* source and sink cuts */
    double s = 0.0;
    double z = 0.0;
    for (int i = 0; i < t.n; i++) {
        s += t.src[i];
        z += t.snk[i];
    }
    if (s < ub) {
        ub = s;
        k = "source-cut";
    }
    if (z < ub) {
        ub = z;
        k = "sink-cut";
    }
    if (kind) {
        snprintf(kind, kind_n, "%s", k);
    }
    plan_tab_release(&t);
    return ub;
}

int plan_depth(const struct plan_problem *p, const struct layout *l,
               const struct flow_report *report)
{
    int n = l->n_nodes;
    int L = p->model->n_layers;
    char *use = xcalloc((size_t)n + 1, 1);
    for (int i = 0; i < n; i++) {
        use[i] = l->nodes[i].n_layers > 0;
    }
    if (report) {
        for (int i = 0; i < report->n_nodes; i++) {
            int v = report->nodes[i].node;
            if (v >= 0 && v < n && report->nodes[i].flow <= 1e-9) {
                use[v] = 0;
            }
        }
    }
    /* longest path in the DAG of valid edges; edges go from lower end to higher end, so
     * process nodes by increasing start (ends strictly increase along a path). */
    int *ord = xmalloc(sizeof(int) * (size_t)(n + 1));
    int *depth = xcalloc((size_t)n + 1, sizeof(int));
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (use[i]) {
            ord[m++] = i;
        }
    }
    for (int a = 1; a < m; a++) { /* insertion sort by (start, end) */
        int v = ord[a];
        int b = a - 1;
        while (b >= 0 && (l->nodes[ord[b]].start > l->nodes[v].start ||
                          (l->nodes[ord[b]].start == l->nodes[v].start &&
                           l->nodes[ord[b]].n_layers > l->nodes[v].n_layers))) {
            ord[b + 1] = ord[b];
            b--;
        }
        ord[b + 1] = v;
    }
    int best = 0;
    for (int a = 0; a < m; a++) {
        int v = ord[a];
        int d = 0;
        if (layout_edge_valid(l, L, p->conn, CLUSTER_SOURCE, v) &&
            cluster_link_index(p->cluster, CLUSTER_SOURCE, v) >= 0) {
            d = 1;
        }
        for (int b = 0; b < a; b++) {
            int u = ord[b];
            if (depth[u] > 0 && depth[u] + 1 > d && layout_edge_valid(l, L, p->conn, u, v) &&
                cluster_link_index(p->cluster, u, v) >= 0) {
                d = depth[u] + 1;
            }
        }
        depth[v] = d;
        if (d > 0 && layout_edge_valid(l, L, p->conn, v, CLUSTER_SINK) &&
            cluster_link_index(p->cluster, v, CLUSTER_SINK) >= 0 && d > best) {
            best = d;
        }
    }
    xfree(ord);
    xfree(depth);
    xfree(use);
    return best;
}

int plan_edge_flows(const struct plan_problem *p, const struct layout *l,
                    struct plan_edge_flow **out, int *n, double *value, struct hx_diag *diag)
{
    struct flow_report rep;
    memset(&rep, 0, sizeof(rep));
    *out = NULL;
    *n = 0;
    int rc =
        flow_planner_max_flow(p->cluster, l, p->model, p->tp, p->mp, p->conn, value, &rep, diag);
    if (rc != HX_OK) {
        return rc;
    }
    struct plan_edge_flow *e = xcalloc((size_t)rep.n_links + 1, sizeof(*e));
    for (int i = 0; i < rep.n_links; i++) {
        e[i].from = rep.links[i].from;
        e[i].to = rep.links[i].to;
        e[i].flow = rep.links[i].flow;
    }
    *out = e;
    *n = rep.n_links;
    flow_report_release(&rep);
    return HX_OK;
}

static void finish(const struct plan_problem *p, const struct plan_options *o,
                   struct plan_result *r, double t0)
{
    char kind[32];
    double ub = plan_upper_bound(p, kind, sizeof(kind));
    if (r->upper_bound <= 0 || !(r->upper_bound < ub)) {
        r->upper_bound = ub;
        snprintf(r->bound_kind, sizeof(r->bound_kind), "%s", kind);
    }
    if (r->upper_bound < r->objective) { /* numerical noise of a proof */
        r->upper_bound = r->objective;
    }
    r->gap = r->objective > 0 ? (r->upper_bound - r->objective) / r->objective : INFINITY;
    r->proven = r->objective > 0 && r->gap <= 1e-6;
    r->solve_s = o->now ? plan_now(o) - t0 : 0.0;
}

int plan_solve(const struct plan_problem *p, const struct plan_options *o, struct plan_result *out,
               struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    if (!p || !p->cluster || !p->model || !p->tp || !o) {
        return hx_diag_set(diag, HX_EINVAL, "plan: missing cluster, model or throughput table");
    }
    double t0 = plan_now(o);
    out->method = o->method;
    struct layout *l = NULL;
    int rc = HX_OK;
    switch (o->method) {
    case PLAN_METHOD_PETALS:
        rc = plan_petals(p, o->seed, &l, diag);
        break;
    case PLAN_METHOD_SWARM:
        rc = plan_swarm(p, &l, diag);
        break;
    case PLAN_METHOD_HOMOGENEOUS:
        rc = plan_homogeneous(p, o->seed, &l, diag);
        break;
    case PLAN_METHOD_SEPARATE:
        rc = plan_separate(p, &l, diag);
        break;
    case PLAN_METHOD_MEMORY:
        rc = plan_memory(p, &l, diag);
        break;
    case PLAN_METHOD_RAM_RING:
        rc = plan_ram_ring(p, &l, diag);
        break;
    case PLAN_METHOD_AUTO:
        if (o->objective == PLAN_OBJECTIVE_SERVED) {
            rc = plan_served(p, o, out, diag);
            if (rc == HX_OK) {
                finish(p, o, out, t0);
            }
            return rc;
        }
        rc = plan_auto(p, o, out, diag);
        if (rc == HX_OK) {
            finish(p, o, out, t0);
        }
        return rc;
    case PLAN_METHOD_MILP:
        rc = plan_milp(p, o, NULL, t0, out, diag);
        if (rc == HX_OK) {
            finish(p, o, out, t0);
        }
        return rc;
    default:
        return hx_diag_set(diag, HX_EINVAL, "unknown method %d", (int)o->method);
    }
    if (rc != HX_OK) {
        return rc;
    }
    rc = plan_score(p, l, &out->objective, diag);
    if (rc != HX_OK) {
        layout_free(l);
        return rc;
    }
    if (o->max_stages > 0 && plan_depth(p, l, NULL) > o->max_stages) {
        int d = plan_depth(p, l, NULL);
        layout_free(l);
        return hx_diag_set(diag, HX_EINFEASIBLE,
                           "%s placement has pipelines of %d stages, above --max-stages %d",
                           plan_method_name(o->method), d, o->max_stages);
    }
    out->layout = l;
    snprintf(out->detail, sizeof(out->detail), "%s baseline (spec section 3)",
             plan_method_name(o->method));
    finish(p, o, out, t0);
    return HX_OK;
}
