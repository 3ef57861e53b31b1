/*
 * validate.c - an independent validity checker for plans. It re-derives everything from the
 * cluster, the model and the throughput table, without the planner's own tables or search
 * code: ranges, max layers, memory, layer coverage, link existence and capacity, edge
 * validity under the connectivity rule, conservation, node capacity, and a fresh exact
 * max-flow (flow.h) of the layout that must equal the reported objective.
 */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "core/cluster.h"
#include "core/model.h"
#include "flow/flow.h"
#include "plan/plan.h"

static int rel_eq(double a, double b, double tol)
{
    return fabs(a - b) <= tol * fmax(1.0, fmax(fabs(a), fabs(b)));
}

int plan_validate(const struct plan_problem *p, const struct layout *l,
                  const struct plan_edge_flow *edges, int n_edges, double objective, int max_stages,
                  struct hx_diag *diag)
{
    const struct cluster *c = p->cluster;
    const struct model_profile *m = p->model;
    int L = m->n_layers;
    int n = c->n_nodes;
    if (!l || l->n_nodes != n) {
        return hx_diag_set(diag, HX_EINFEASIBLE, "layout has %d nodes, cluster has %d",
                           l ? l->n_nodes : -1, n);
    }
    char *covered = xcalloc((size_t)L + 1, 1);
    double *in = xcalloc((size_t)n, sizeof(double));
    double *out = xcalloc((size_t)n, sizeof(double));
    int rc = HX_OK;
    for (int i = 0; i < n; i++) {
        int s = l->nodes[i].start;
        int k = l->nodes[i].n_layers;
        if (k == 0) {
            continue;
        }
        if (k < 0 || s < 0 || s + k > L) {
            rc = hx_diag_set(diag, HX_EINFEASIBLE, "node %d: range [%d, %d) outside [0, %d)", i, s,
                             s + k, L);
            goto done;
        }
        int g = model_gpu_index(m, c->nodes[i].type);
        if (g < 0) {
            rc = hx_diag_set(diag, HX_EINFEASIBLE, "node %d: type %s not in model %s", i,
                             c->nodes[i].type, m->name);
            goto done;
        }
        if (k > m->gpus[g].max_layers) {
            rc = hx_diag_set(diag, HX_EINFEASIBLE, "node %d (%s): %d layers > max %d", i,
                             c->nodes[i].type, k, m->gpus[g].max_layers);
            goto done;
        }
        const struct machine_profile *mp =
            p->mp ? machine_profiles_find(p->mp, c->nodes[i].type) : NULL;
        if (mp && mp->vram_bytes > 0 && k * m->layer_bytes > mp->vram_bytes) {
            rc = hx_diag_set(diag, HX_EINFEASIBLE,
                             "node %d (%s): %d layers need %.0f bytes > "
                             "VRAM %.0f",
                             i, c->nodes[i].type, k, k * m->layer_bytes, mp->vram_bytes);
            goto done;
        }
        for (int x = s; x < s + k; x++) {
            covered[x] = 1;
        }
    }
    if (objective > 0) {
        for (int x = 0; x < L; x++) {
            if (!covered[x]) {
                rc = hx_diag_set(diag, HX_EINFEASIBLE, "layer %d is held by no node", x);
                goto done;
            }
        }
    }
    double from_source = 0.0;
    for (int e = 0; e < n_edges; e++) {
        int a = edges[e].from;
        int b = edges[e].to;
        double f = edges[e].flow;
        if (f < -1e-9) {
            rc = hx_diag_set(diag, HX_EINFEASIBLE, "edge %d->%d: negative flow %g", a, b, f);
            goto done;
        }
        if (f <= 1e-12) {
            continue;
        }
        if ((a != CLUSTER_SOURCE && (a < 0 || a >= n)) ||
            (b != CLUSTER_SINK && (b < 0 || b >= n)) || a == b) {
            rc = hx_diag_set(diag, HX_EINFEASIBLE, "edge %d->%d: bad endpoints", a, b);
            goto done;
        }
        int li = cluster_link_index(c, a, b);
        if (li < 0) {
            rc = hx_diag_set(diag, HX_EINFEASIBLE, "edge %d->%d: no such link", a, b);
            goto done;
        }
        /* validity, recomputed from the ranges (§2.3 item 5) */
        int ok;
        if (a == CLUSTER_SOURCE) {
            ok = l->nodes[b].n_layers > 0 && l->nodes[b].start == 0;
        } else if (b == CLUSTER_SINK) {
            ok = l->nodes[a].n_layers > 0 && l->nodes[a].start + l->nodes[a].n_layers == L;
        } else {
            int ea = l->nodes[a].start + l->nodes[a].n_layers;
            int sb = l->nodes[b].start;
            int eb = sb + l->nodes[b].n_layers;
            ok = l->nodes[a].n_layers > 0 && l->nodes[b].n_layers > 0 &&
                 (p->conn == LAYOUT_STRICT ? ea == sb : (sb <= ea && ea < eb));
        }
        if (!ok) {
            rc = hx_diag_set(diag, HX_EINFEASIBLE, "edge %d->%d carries %g but is not valid", a, b,
                             f);
            goto done;
        }
        double bytes =
            (a == CLUSTER_SOURCE || b == CLUSTER_SINK) ? m->token_bytes : m->activation_bytes;
        double cap = c->links[li].bandwidth / bytes;
        if (f > cap * (1 + 1e-6) + 1e-9) {
            rc = hx_diag_set(diag, HX_EINFEASIBLE, "edge %d->%d: flow %g > link capacity %g", a, b,
                             f, cap);
            goto done;
        }
        if (a == CLUSTER_SOURCE) {
            from_source += f;
        } else {
            out[a] += f;
        }
        if (b != CLUSTER_SINK) {
            in[b] += f;
        }
    }
    for (int i = 0; i < n; i++) {
        if (!rel_eq(in[i], out[i], 1e-6)) {
            rc = hx_diag_set(diag, HX_EINFEASIBLE, "node %d: inflow %g != outflow %g", i, in[i],
                             out[i]);
            goto done;
        }
        if (in[i] > 1e-9) {
            int g = model_gpu_index(m, c->nodes[i].type);
            double tp = model_throughput_tp(p->tp, g, l->nodes[i].n_layers);
            if (tp < 0 || in[i] > tp * (1 + 1e-6) + 1e-9) {
                rc = hx_diag_set(diag, HX_EINFEASIBLE, "node %d: flow %g > throughput %g", i, in[i],
                                 tp);
                goto done;
            }
        }
    }
    if (!rel_eq(from_source, objective, 1e-6)) {
        rc = hx_diag_set(diag, HX_EINFEASIBLE, "flow out of the source %g != objective %g",
                         from_source, objective);
        goto done;
    }
    double v = 0.0;
    struct hx_diag d2;
    memset(&d2, 0, sizeof(d2));
    if (flow_planner_max_flow(c, l, m, p->tp, p->mp, p->conn, &v, NULL, &d2) != HX_OK) {
        rc = hx_diag_set(diag, HX_EINFEASIBLE, "max-flow failed: %s", d2.msg);
        goto done;
    }
    if (!rel_eq(v, objective, 1e-6)) {
        rc = hx_diag_set(diag, HX_EINFEASIBLE, "max-flow of the layout %.6f != objective %.6f", v,
                         objective);
        goto done;
    }
    if (max_stages > 0) {
        int d = plan_depth(p, l, NULL);
        if (d > max_stages) {
            rc = hx_diag_set(diag, HX_EINFEASIBLE, "a pipeline has %d stages > max %d", d,
                             max_stages);
            goto done;
        }
    }
done:
    xfree(covered);
    xfree(in);
    xfree(out);
    return rc;
}
