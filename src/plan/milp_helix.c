/*
 * milp_helix.c - Helix's placement MILP (spec §2.2-§2.3) built on milp.h.
 *
 * Column order: s_i for every node, then b_ik (k = 1..max_i) node by node, then per directed
 * edge (cluster link order; a compute link gives i->j then j->i) f and d, then, in partial
 * mode, c1 and c2 per directed compute edge. Row order: per node one-hot, range,
 * conservation, capacity; per edge the switch rows, then the edge capacity rows; then the
 * optional strengthenings. Equation numbers in comments refer to spec §2.3.
 */
#include "plan/milp_helix.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "core/cluster.h"
#include "core/layout.h"
#include "core/model.h"
#include "flow/flow.h"
#include "plan/milp.h"

struct milp_helix {
    const struct cluster *c;
    const struct model_profile *m;
    const struct model_throughput *tp;
    const struct machine_profiles *mp;
    struct milp_helix_options opt;
    int L;
    int n;
    int *maxk;    /* max layers per node */
    double **cap; /* cap[i][k-1] = T_i(k) */
    double *capmax;
    int *col_s;
    int *col_b; /* column of b_i1; b_ik = col_b[i] + k - 1 */
    size_t n_edges;
    struct milp_helix_edge *edges;
    int *col_f, *col_d, *col_c1, *col_c2; /* c1/c2: -1 unless partial compute edge */
    int *edge_fwd, *edge_rev;             /* per cluster link: edge index or -1 */
    int *sym_class;                       /* per node: class id (= smallest member index) */
    int *col_g;                           /* path_work: column of g_i1 per node, or NULL */
    int *col_x;                           /* arc_flow: column of x_i,0,1 per node, or NULL */
    int *col_y;                           /* arc_flow: column of y_i,0,1 per node */
    size_t n_tau;                         /* cover_cuts: thresholds and their z columns */
    double *tau;
    int *col_z;
    double ub; /* compute-only upper bound sum_i max_k k T_i(k) / L */
    struct milp_model *model;
};

void milp_helix_options_init(struct milp_helix_options *o)
{
    memset(o, 0, sizeof(*o));
    o->conn = LAYOUT_STRICT;
    o->remove_redundant = true;
}

/* A small sparse row under construction. */
struct rowbuf {
    size_t n, cap;
    int *idx;
    double *val;
};

static void rb_clear(struct rowbuf *r)
{
    r->n = 0;
}

static void rb_add(struct rowbuf *r, int col, double v)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->idx = xrealloc(r->idx, r->cap * sizeof(int));
        r->val = xrealloc(r->val, r->cap * sizeof(double));
    }
    r->idx[r->n] = col;
    r->val[r->n] = v;
    r->n++;
}

static void rb_free(struct rowbuf *r)
{
    xfree(r->idx);
    xfree(r->val);
}

/* Add sum_k coef * k * b_ik (the size term of e_i). */
static void rb_add_size(struct rowbuf *r, const struct milp_helix *h, int i, double coef)
{
    for (int k = 1; k <= h->maxk[i]; k++) {
        rb_add(r, h->col_b[i] + k - 1, coef * k);
    }
}

static void ep_name(int v, char *buf, size_t n)
{
    if (v == CLUSTER_SOURCE) {
        snprintf(buf, n, "source");
    } else if (v == CLUSTER_SINK) {
        snprintf(buf, n, "sink");
    } else {
        snprintf(buf, n, "%d", v);
    }
}

/* Add a row from rb; returns HX_OK or the error from milp_row_add. */
static int rb_emit(struct milp_helix *h, struct rowbuf *r, double lo, double hi, const char *name)
{
    int rc = milp_row_add(h->model, r->n, r->idx, r->val, lo, hi, name);
    rb_clear(r);
    return rc < 0 ? rc : HX_OK;
}

/* Interchangeable nodes: same type, same link (presence and bandwidth) to every endpoint. */
static bool nodes_identical(const struct cluster *c, int i, int j)
{
    if (strcmp(c->nodes[i].type, c->nodes[j].type) != 0) {
        return false;
    }
    for (int v = -2; v < c->n_nodes; v++) {
        if (v == i || v == j) {
            continue;
        }
        int a = cluster_link_index(c, i, v);
        int b = cluster_link_index(c, j, v);
        if ((a < 0) != (b < 0)) {
            return false;
        }
        if (a >= 0 && c->links[a].bandwidth != c->links[b].bandwidth) {
            return false;
        }
    }
    return true;
}

void milp_helix_free(struct milp_helix *h)
{
    if (!h) {
        return;
    }
    for (int i = 0; h->cap && i < h->n; i++) {
        xfree(h->cap[i]);
    }
    xfree(h->cap);
    xfree(h->capmax);
    xfree(h->maxk);
    xfree(h->col_s);
    xfree(h->col_b);
    xfree(h->edges);
    xfree(h->col_f);
    xfree(h->col_d);
    xfree(h->col_c1);
    xfree(h->col_c2);
    xfree(h->edge_fwd);
    xfree(h->edge_rev);
    xfree(h->sym_class);
    xfree(h->col_g);
    xfree(h->col_x);
    xfree(h->col_y);
    xfree(h->tau);
    xfree(h->col_z);
    milp_model_free(h->model);
    xfree(h);
}

static int add_edge(struct milp_helix *h, int from, int to, int link, double cap)
{
    size_t e = h->n_edges++;
    h->edges[e] = (struct milp_helix_edge){.from = from, .to = to, .link = link, .capacity = cap};
    return (int)e;
}

static int build_arc_columns(struct milp_helix *h);

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* cover_cuts: one binary z per distinct node capacity below the compute-only bound. */
static int build_cover_columns(struct milp_helix *h)
{
    size_t cnt = 0;
    for (int i = 0; i < h->n; i++) {
        cnt += (size_t)h->maxk[i];
    }
    h->tau = xmalloc((cnt ? cnt : 1) * sizeof(double));
    size_t q = 0;
    for (int i = 0; i < h->n; i++) {
        for (int k = 1; k <= h->maxk[i]; k++) {
            h->tau[q++] = h->cap[i][k - 1];
        }
    }
    qsort(h->tau, q, sizeof(double), cmp_double);
    size_t w = 0;
    for (size_t r = 0; r < q; r++) {
        if (h->tau[r] > 0 && h->tau[r] < h->ub && (w == 0 || h->tau[r] != h->tau[w - 1])) {
            h->tau[w++] = h->tau[r];
        }
    }
    h->n_tau = w;
    h->col_z = xmalloc((w ? w : 1) * sizeof(int));
    char name[64];
    for (size_t t = 0; t < w; t++) {
        snprintf(name, sizeof(name), "above_%zu", t);
        h->col_z[t] = milp_col_add(h->model, 0, 1, 0, MILP_VAR_BINARY, name);
        if (h->col_z[t] < 0) {
            return h->col_z[t];
        }
    }
    return HX_OK;
}

static int build_columns(struct milp_helix *h)
{
    char name[64];
    const bool partial = h->opt.conn == LAYOUT_PARTIAL;
    double s_ub = h->opt.remove_redundant ? INFINITY : (double)(h->L - 1);
    for (int i = 0; i < h->n; i++) {
        snprintf(name, sizeof(name), "start_%d", i);
        h->col_s[i] = milp_col_add(h->model, 0, s_ub, 0, MILP_VAR_INTEGER, name);
        if (h->col_s[i] < 0) {
            return h->col_s[i];
        }
    }
    for (int i = 0; i < h->n; i++) {
        for (int k = 1; k <= h->maxk[i]; k++) {
            snprintf(name, sizeof(name), "hold_%d_%d", i, k);
            int col = milp_col_add(h->model, 0, 1, 0, MILP_VAR_BINARY, name);
            if (col < 0) {
                return col;
            }
            if (k == 1) {
                h->col_b[i] = col;
            }
        }
    }
    for (size_t e = 0; e < h->n_edges; e++) {
        char a[16], b[16];
        ep_name(h->edges[e].from, a, sizeof(a));
        ep_name(h->edges[e].to, b, sizeof(b));
        double obj = h->edges[e].from == CLUSTER_SOURCE ? 1.0 : 0.0;
        snprintf(name, sizeof(name), "flow_%s_%s", a, b);
        h->col_f[e] = milp_col_add(h->model, 0, INFINITY, obj, MILP_VAR_CONTINUOUS, name);
        snprintf(name, sizeof(name), "switch_%s_%s", a, b);
        h->col_d[e] = milp_col_add(h->model, 0, 1, 0, MILP_VAR_BINARY, name);
        if (h->col_f[e] < 0 || h->col_d[e] < 0) {
            return HX_EINVAL;
        }
        h->col_c1[e] = h->col_c2[e] = -1;
    }
    if (partial) {
        for (size_t e = 0; e < h->n_edges; e++) {
            const struct milp_helix_edge *ed = &h->edges[e];
            if (ed->from < 0 || ed->to < 0) {
                continue;
            }
            snprintf(name, sizeof(name), "edge_cond1_%d_%d", ed->from, ed->to);
            h->col_c1[e] = milp_col_add(h->model, 0, 1, 0, MILP_VAR_BINARY, name);
            snprintf(name, sizeof(name), "edge_cond2_%d_%d", ed->from, ed->to);
            h->col_c2[e] = milp_col_add(h->model, 0, 1, 0, MILP_VAR_BINARY, name);
            if (h->col_c1[e] < 0 || h->col_c2[e] < 0) {
                return HX_EINVAL;
            }
        }
    }
    if (h->opt.cover_cuts) {
        int rc = build_cover_columns(h);
        if (rc != HX_OK) {
            return rc;
        }
    }
    if (h->opt.arc_flow && h->opt.conn == LAYOUT_STRICT) {
        int rc = build_arc_columns(h);
        if (rc != HX_OK) {
            return rc;
        }
    }
    if (h->opt.path_work && h->opt.conn == LAYOUT_STRICT) {
        h->col_g = xcalloc((size_t)h->n, sizeof(int));
        for (int i = 0; i < h->n; i++) {
            for (int k = 1; k <= h->maxk[i]; k++) {
                snprintf(name, sizeof(name), "pathflow_%d_%d", i, k);
                int col = milp_col_add(h->model, 0, INFINITY, 0, MILP_VAR_CONTINUOUS, name);
                if (col < 0) {
                    return col;
                }
                if (k == 1) {
                    h->col_g[i] = col;
                }
            }
        }
    }
    return HX_OK;
}

/* Offset of arc (p, k) within a node's block: sizes 1..k-1 come first, L-q+1 starts each. */
static int arc_off(int L, int k, int p)
{
    return (k - 1) * (L + 1) - (k - 1) * k / 2 + p;
}

static int build_arc_columns(struct milp_helix *h)
{
    char name[64];
    h->col_x = xcalloc((size_t)h->n, sizeof(int));
    h->col_y = xcalloc((size_t)h->n, sizeof(int));
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < h->n; i++) {
            for (int k = 1; k <= h->maxk[i]; k++) {
                for (int p = 0; p + k <= h->L; p++) {
                    snprintf(name, sizeof(name), "%s_%d_%d_%d", pass ? "arcflow" : "arc", i, p, k);
                    int col =
                        pass ? milp_col_add(h->model, 0, INFINITY, 0, MILP_VAR_CONTINUOUS, name)
                             : milp_col_add(h->model, 0, 1, 0, MILP_VAR_BINARY, name);
                    if (col < 0) {
                        return col;
                    }
                    if (k == 1 && p == 0) {
                        (pass ? h->col_y : h->col_x)[i] = col;
                    }
                }
            }
        }
    }
    return HX_OK;
}

/* Add inflow_i (sum of flows into node i) times coef. */
static void rb_add_inflow(struct rowbuf *r, const struct milp_helix *h, int i, double coef)
{
    for (size_t e = 0; e < h->n_edges; e++) {
        if (h->edges[e].to == i) {
            rb_add(r, h->col_f[e], coef);
        }
    }
}

/* Add F (sum of flows out of the source) times coef. */
static void rb_add_total(struct rowbuf *r, const struct milp_helix *h, double coef)
{
    for (size_t e = 0; e < h->n_edges; e++) {
        if (h->edges[e].from == CLUSTER_SOURCE) {
            rb_add(r, h->col_f[e], coef);
        }
    }
}

/* Add sum_k x_i,p-k,k (node i ends at boundary p) times coef. */
static void rb_add_ends(struct rowbuf *r, const struct milp_helix *h, int i, int p, double coef)
{
    for (int k = 1; k <= h->maxk[i] && k <= p; k++) {
        rb_add(r, h->col_x[i] + arc_off(h->L, k, p - k), coef);
    }
}

/* Add sum_k x_i,p,k (node i starts at boundary p) times coef. */
static void rb_add_starts(struct rowbuf *r, const struct milp_helix *h, int i, int p, double coef)
{
    for (int k = 1; k <= h->maxk[i] && p + k <= h->L; k++) {
        rb_add(r, h->col_x[i] + arc_off(h->L, k, p), coef);
    }
}

/* The arc_flow strengthening (strict connectivity). */
static int build_arc_rows(struct milp_helix *h, struct rowbuf *r)
{
    char name[64];
    const int L = h->L;
    int rc = HX_OK;
    for (int i = 0; i < h->n && rc == HX_OK; i++) {
        /* sum_p x_ipk = b_ik; sum_p,k p x_ipk = s_i; y_ipk <= T_i(k) x_ipk; sum y = inflow_i */
        for (int k = 1; k <= h->maxk[i] && rc == HX_OK; k++) {
            for (int p = 0; p + k <= L; p++) {
                rb_add(r, h->col_x[i] + arc_off(L, k, p), 1.0);
            }
            rb_add(r, h->col_b[i] + k - 1, -1.0);
            snprintf(name, sizeof(name), "arcsize_%d_%d", i, k);
            rc = rb_emit(h, r, 0, 0, name);
        }
        for (int k = 1; k <= h->maxk[i]; k++) {
            for (int p = 1; p + k <= L; p++) {
                rb_add(r, h->col_x[i] + arc_off(L, k, p), (double)p);
            }
        }
        rb_add(r, h->col_s[i], -1.0);
        snprintf(name, sizeof(name), "arcstart_%d", i);
        rc = rc ? rc : rb_emit(h, r, 0, 0, name);
        for (int k = 1; k <= h->maxk[i] && rc == HX_OK; k++) {
            for (int p = 0; p + k <= L && rc == HX_OK; p++) {
                rb_add(r, h->col_y[i] + arc_off(L, k, p), 1.0);
                rb_add(r, h->col_x[i] + arc_off(L, k, p), -h->cap[i][k - 1]);
                snprintf(name, sizeof(name), "arccap_%d_%d_%d", i, p, k);
                rc = rb_emit(h, r, -INFINITY, 0, name);
            }
        }
        for (int k = 1; k <= h->maxk[i]; k++) {
            for (int p = 0; p + k <= L; p++) {
                rb_add(r, h->col_y[i] + arc_off(L, k, p), 1.0);
            }
        }
        rb_add_inflow(r, h, i, -1.0);
        snprintf(name, sizeof(name), "arcsum_%d", i);
        rc = rc ? rc : rb_emit(h, r, 0, 0, name);
    }
    /* conservation at boundary p: flow of arcs ending at p = flow of arcs starting at p;
     * F at p = 0 and p = L */
    for (int p = 0; p <= L && rc == HX_OK; p++) {
        for (int i = 0; i < h->n; i++) {
            for (int k = 1; k <= h->maxk[i]; k++) {
                if (p - k >= 0) {
                    rb_add(r, h->col_y[i] + arc_off(L, k, p - k), 1.0);
                }
                if (p + k <= L) {
                    rb_add(r, h->col_y[i] + arc_off(L, k, p), -1.0);
                }
            }
        }
        if (p == 0) {
            rb_add_total(r, h, 1.0);
        } else if (p == L) {
            rb_add_total(r, h, -1.0);
        }
        snprintf(name, sizeof(name), "boundary_%d", p);
        rc = rb_emit(h, r, 0, 0, name);
    }
    /* edges: source only into arcs starting at 0, sink only from arcs ending at L, and a
     * compute switch only where i ends exactly where j starts */
    for (size_t e = 0; e < h->n_edges && rc == HX_OK; e++) {
        const struct milp_helix_edge *ed = &h->edges[e];
        if (ed->from == CLUSTER_SOURCE || ed->to == CLUSTER_SINK) {
            int i = ed->from == CLUSTER_SOURCE ? ed->to : ed->from;
            rb_add(r, h->col_d[e], 1.0);
            if (ed->from == CLUSTER_SOURCE) {
                rb_add_starts(r, h, i, 0, -1.0);
            } else {
                rb_add_ends(r, h, i, L, -1.0);
            }
            snprintf(name, sizeof(name), "arcend_%zu", e);
            rc = rb_emit(h, r, -INFINITY, 0, name);
            continue;
        }
        for (int p = 1; p < L && rc == HX_OK; p++) {
            rb_add(r, h->col_d[e], 1.0);
            rb_add_ends(r, h, ed->from, p, 1.0);
            rb_add_starts(r, h, ed->to, p, -1.0);
            snprintf(name, sizeof(name), "arclink_%zu_%d", e, p);
            rc = rb_emit(h, r, -INFINITY, 1, name);
        }
    }
    return rc;
}

static int build_rows(struct milp_helix *h)
{
    struct rowbuf r = {0};
    char name[64];
    const double L = (double)h->L;
    const bool rr = h->opt.remove_redundant;
    int rc = HX_OK;
    for (int i = 0; i < h->n && rc == HX_OK; i++) {
        /* (1) one-hot size: sum_k b_ik = 1 */
        for (int k = 1; k <= h->maxk[i]; k++) {
            rb_add(&r, h->col_b[i] + k - 1, 1.0);
        }
        snprintf(name, sizeof(name), "onehot_%d", i);
        rc = rb_emit(h, &r, 1, 1, name);
        /* (2) range: e_i = s_i + sum_k k b_ik <= L */
        rb_add(&r, h->col_s[i], 1.0);
        rb_add_size(&r, h, i, 1.0);
        snprintf(name, sizeof(name), "range_%d", i);
        rc = rc ? rc : rb_emit(h, &r, -INFINITY, L, name);
        /* (3) conservation: inflow (not from sink) = outflow (not to source) */
        for (size_t e = 0; e < h->n_edges; e++) {
            if (h->edges[e].to == i) {
                rb_add(&r, h->col_f[e], 1.0);
            } else if (h->edges[e].from == i) {
                rb_add(&r, h->col_f[e], -1.0);
            }
        }
        snprintf(name, sizeof(name), "conserve_%d", i);
        rc = rc ? rc : rb_emit(h, &r, 0, 0, name);
        /* (4) node capacity: inflow <= sum_k T_i(k) b_ik */
        for (size_t e = 0; e < h->n_edges; e++) {
            if (h->edges[e].to == i) {
                rb_add(&r, h->col_f[e], 1.0);
            }
        }
        for (int k = 1; k <= h->maxk[i]; k++) {
            rb_add(&r, h->col_b[i] + k - 1, -h->cap[i][k - 1]);
        }
        snprintf(name, sizeof(name), "nodecap_%d", i);
        rc = rc ? rc : rb_emit(h, &r, -INFINITY, 0, name);
    }
    /* (5) edge validity (switch semantics) */
    for (size_t e = 0; e < h->n_edges && rc == HX_OK; e++) {
        const struct milp_helix_edge *ed = &h->edges[e];
        int d = h->col_d[e];
        char a[16], b[16];
        ep_name(ed->from, a, sizeof(a));
        ep_name(ed->to, b, sizeof(b));
        if (ed->from == CLUSTER_SOURCE) {
            int j = ed->to;
            /* s_j <= L (1 - d)  ->  s_j + L d <= L */
            rb_add(&r, h->col_s[j], 1.0);
            rb_add(&r, d, L);
            snprintf(name, sizeof(name), "valid_%s_%s", a, b);
            rc = rb_emit(h, &r, -INFINITY, L, name);
            if (!rr && rc == HX_OK) {
                /* d >= 1 - s_j */
                rb_add(&r, d, 1.0);
                rb_add(&r, h->col_s[j], 1.0);
                snprintf(name, sizeof(name), "enable_%s_%s", a, b);
                rc = rb_emit(h, &r, 1, INFINITY, name);
            }
        } else if (ed->to == CLUSTER_SINK) {
            int i = ed->from;
            /* L d <= e_i */
            rb_add(&r, d, L);
            rb_add(&r, h->col_s[i], -1.0);
            rb_add_size(&r, h, i, -1.0);
            snprintf(name, sizeof(name), "valid_%s_%s", a, b);
            rc = rb_emit(h, &r, -INFINITY, 0, name);
            if (!rr && rc == HX_OK) {
                /* (L-1)(d+1) >= e_i  ->  (L-1) d - e_i >= -(L-1) */
                rb_add(&r, d, L - 1);
                rb_add(&r, h->col_s[i], -1.0);
                rb_add_size(&r, h, i, -1.0);
                snprintf(name, sizeof(name), "enable_%s_%s", a, b);
                rc = rb_emit(h, &r, -(L - 1), INFINITY, name);
            }
        } else if (h->opt.conn == LAYOUT_STRICT) {
            int i = ed->from, j = ed->to;
            /* L d <= L + (s_j - e_i)  ->  L d - s_j + e_i <= L */
            rb_add(&r, d, L);
            rb_add(&r, h->col_s[j], -1.0);
            rb_add(&r, h->col_s[i], 1.0);
            rb_add_size(&r, h, i, 1.0);
            snprintf(name, sizeof(name), "valid1_%s_%s", a, b);
            rc = rb_emit(h, &r, -INFINITY, L, name);
            /* L d <= L - (s_j - e_i)  ->  L d + s_j - e_i <= L */
            rb_add(&r, d, L);
            rb_add(&r, h->col_s[j], 1.0);
            rb_add(&r, h->col_s[i], -1.0);
            rb_add_size(&r, h, i, -1.0);
            snprintf(name, sizeof(name), "valid2_%s_%s", a, b);
            rc = rc ? rc : rb_emit(h, &r, -INFINITY, L, name);
        } else {
            int i = ed->from, j = ed->to;
            int c1 = h->col_c1[e], c2 = h->col_c2[e];
            const double M = L + 1;
            /* c1 = [e_i - s_j >= 0]: (L+1)(1 - c1) >= s_j - e_i */
            rb_add(&r, c1, M);
            rb_add(&r, h->col_s[j], 1.0);
            rb_add(&r, h->col_s[i], -1.0);
            rb_add_size(&r, h, i, -1.0);
            snprintf(name, sizeof(name), "cond1_%s_%s", a, b);
            rc = rb_emit(h, &r, -INFINITY, M, name);
            if (!rr && rc == HX_OK) {
                /* (L+1) c1 >= e_i - s_j + 1 */
                rb_add(&r, c1, M);
                rb_add(&r, h->col_s[i], -1.0);
                rb_add_size(&r, h, i, -1.0);
                rb_add(&r, h->col_s[j], 1.0);
                snprintf(name, sizeof(name), "cond1en_%s_%s", a, b);
                rc = rb_emit(h, &r, 1, INFINITY, name);
            }
            /* c2 = [e_j - e_i > 0]: e_j - e_i >= 1 - (L+1)(1 - c2) */
            if (rc == HX_OK) {
                rb_add(&r, h->col_s[j], 1.0);
                rb_add_size(&r, h, j, 1.0);
                rb_add(&r, h->col_s[i], -1.0);
                rb_add_size(&r, h, i, -1.0);
                rb_add(&r, c2, -M);
                snprintf(name, sizeof(name), "cond2_%s_%s", a, b);
                rc = rb_emit(h, &r, 1 - M, INFINITY, name);
            }
            if (!rr && rc == HX_OK) {
                /* (L+1) c2 >= e_j - e_i */
                rb_add(&r, c2, M);
                rb_add(&r, h->col_s[j], -1.0);
                rb_add_size(&r, h, j, -1.0);
                rb_add(&r, h->col_s[i], 1.0);
                rb_add_size(&r, h, i, 1.0);
                snprintf(name, sizeof(name), "cond2en_%s_%s", a, b);
                rc = rb_emit(h, &r, 0, INFINITY, name);
            }
            /* d = c1 and c2: 2d <= c1 + c2 (+ c1 + c2 - d <= 1) */
            if (rc == HX_OK) {
                rb_add(&r, d, 2.0);
                rb_add(&r, c1, -1.0);
                rb_add(&r, c2, -1.0);
                snprintf(name, sizeof(name), "and_%s_%s", a, b);
                rc = rb_emit(h, &r, -INFINITY, 0, name);
            }
            if (!rr && rc == HX_OK) {
                rb_add(&r, c1, 1.0);
                rb_add(&r, c2, 1.0);
                rb_add(&r, d, -1.0);
                snprintf(name, sizeof(name), "anden_%s_%s", a, b);
                rc = rb_emit(h, &r, -INFINITY, 1, name);
            }
        }
    }
    /* (6) edge capacity: f <= c d (tight_caps: c capped by the endpoints' largest capacity) */
    for (size_t e = 0; e < h->n_edges && rc == HX_OK; e++) {
        const struct milp_helix_edge *ed = &h->edges[e];
        double c = ed->capacity;
        if (h->opt.tight_caps) {
            if (ed->from >= 0 && h->capmax[ed->from] < c) {
                c = h->capmax[ed->from];
            }
            if (ed->to >= 0 && h->capmax[ed->to] < c) {
                c = h->capmax[ed->to];
            }
        }
        char a[16], b[16];
        ep_name(ed->from, a, sizeof(a));
        ep_name(ed->to, b, sizeof(b));
        rb_add(&r, h->col_f[e], 1.0);
        rb_add(&r, h->col_d[e], -c);
        snprintf(name, sizeof(name), "edgecap_%s_%s", a, b);
        rc = rb_emit(h, &r, -INFINITY, 0, name);
    }
    /* Strengthening: L * sum_source f <= sum_i sum_k k T_i(k) b_ik */
    if (h->opt.work_bound && rc == HX_OK) {
        for (size_t e = 0; e < h->n_edges; e++) {
            if (h->edges[e].from == CLUSTER_SOURCE) {
                rb_add(&r, h->col_f[e], L);
            }
        }
        for (int i = 0; i < h->n; i++) {
            for (int k = 1; k <= h->maxk[i]; k++) {
                rb_add(&r, h->col_b[i] + k - 1, -(double)k * h->cap[i][k - 1]);
            }
        }
        rc = rb_emit(h, &r, -INFINITY, 0, "work_bound");
    }
    /* Strengthening: order interchangeable nodes by (s, k) */
    if (h->opt.symmetry && rc == HX_OK) {
        for (int j = 0; j < h->n && rc == HX_OK; j++) {
            /* previous member of j's class */
            int i = -1;
            for (int q = j - 1; q >= 0; q--) {
                if (h->sym_class[q] == h->sym_class[j]) {
                    i = q;
                    break;
                }
            }
            if (i < 0) {
                continue;
            }
            double K = (double)h->maxk[i] + 1;
            rb_add(&r, h->col_s[i], K);
            rb_add_size(&r, h, i, 1.0);
            rb_add(&r, h->col_s[j], -K);
            rb_add_size(&r, h, j, -1.0);
            snprintf(name, sizeof(name), "sym_%d_%d", i, j);
            rc = rb_emit(h, &r, -INFINITY, 0, name);
        }
    }
    /* Strengthening: per-size path flows (strict mode only). */
    for (int i = 0; h->col_g && i < h->n && rc == HX_OK; i++) {
        for (int k = 1; k <= h->maxk[i] && rc == HX_OK; k++) {
            /* g_ik <= T_i(k) b_ik */
            rb_add(&r, h->col_g[i] + k - 1, 1.0);
            rb_add(&r, h->col_b[i] + k - 1, -h->cap[i][k - 1]);
            snprintf(name, sizeof(name), "pathcap_%d_%d", i, k);
            rc = rb_emit(h, &r, -INFINITY, 0, name);
        }
        /* sum_k g_ik = inflow_i */
        for (int k = 1; k <= h->maxk[i]; k++) {
            rb_add(&r, h->col_g[i] + k - 1, 1.0);
        }
        rb_add_inflow(&r, h, i, -1.0);
        snprintf(name, sizeof(name), "pathsum_%d", i);
        rc = rc ? rc : rb_emit(h, &r, 0, 0, name);
        /* inflow_i <= F */
        rb_add_inflow(&r, h, i, 1.0);
        rb_add_total(&r, h, -1.0);
        snprintf(name, sizeof(name), "pathonce_%d", i);
        rc = rc ? rc : rb_emit(h, &r, -INFINITY, 0, name);
    }
    if (h->col_g && rc == HX_OK) {
        /* sum_i sum_k k g_ik = L F */
        for (int i = 0; i < h->n; i++) {
            for (int k = 1; k <= h->maxk[i]; k++) {
                rb_add(&r, h->col_g[i] + k - 1, (double)k);
            }
        }
        rb_add_total(&r, h, -L);
        rc = rb_emit(h, &r, 0, 0, "pathwork");
    }
    if (h->col_x && rc == HX_OK) {
        rc = build_arc_rows(h, &r);
    }
    /* cover cuts: F <= tau + (UB - tau) z;  sum_i sum_k w_ik k b_ik >= L z */
    for (size_t t = 0; t < h->n_tau && rc == HX_OK; t++) {
        double tau = h->tau[t];
        rb_add_total(&r, h, 1.0);
        rb_add(&r, h->col_z[t], -(h->ub - tau));
        snprintf(name, sizeof(name), "above_%zu", t);
        rc = rb_emit(h, &r, -INFINITY, tau, name);
        for (int i = 0; i < h->n && rc == HX_OK; i++) {
            for (int k = 1; k <= h->maxk[i]; k++) {
                double wgt = h->cap[i][k - 1] > tau ? 1.0 : 0.5;
                rb_add(&r, h->col_b[i] + k - 1, wgt * k);
            }
        }
        rb_add(&r, h->col_z[t], -L);
        snprintf(name, sizeof(name), "cover_%zu", t);
        rc = rc ? rc : rb_emit(h, &r, 0, INFINITY, name);
    }
    rb_free(&r);
    return rc;
}

int milp_helix_new(const struct cluster *c, const struct model_profile *m,
                   const struct model_throughput *tp, const struct machine_profiles *mp,
                   const struct milp_helix_options *opt, struct milp_helix **out,
                   struct hx_diag *diag)
{
    if (out) {
        *out = NULL;
    }
    if (!c || !m || !tp || !out || c->n_nodes <= 0 || m->n_layers <= 0) {
        return hx_diag_set(diag, HX_EINVAL, "milp_helix_new: empty cluster or missing argument");
    }
    struct milp_helix *h = xcalloc(1, sizeof(*h));
    h->c = c;
    h->m = m;
    h->tp = tp;
    h->mp = mp;
    if (opt) {
        h->opt = *opt;
    } else {
        milp_helix_options_init(&h->opt);
    }
    h->L = m->n_layers;
    h->n = c->n_nodes;
    int n = h->n;
    int rc = HX_OK;
    h->maxk = xcalloc((size_t)n, sizeof(int));
    h->cap = xcalloc((size_t)n, sizeof(double *));
    h->capmax = xcalloc((size_t)n, sizeof(double));
    h->col_s = xcalloc((size_t)n, sizeof(int));
    h->col_b = xcalloc((size_t)n, sizeof(int));
    h->sym_class = xcalloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) {
        int g = model_gpu_index(m, c->nodes[i].type);
        if (g < 0 || g >= (int)tp->n_gpus) {
            rc = hx_diag_set(diag, HX_ENOTFOUND, "%s: node %d: GPU type %s not in model %s",
                             c->path ? c->path : "cluster", i, c->nodes[i].type, m->name);
            goto fail;
        }
        int K = m->gpus[g].max_layers;
        if (K <= 0) {
            rc = hx_diag_set(diag, HX_ENOTFOUND, "node %d: type %s holds no layers", i,
                             c->nodes[i].type);
            goto fail;
        }
        h->maxk[i] = K;
        h->cap[i] = xcalloc((size_t)K, sizeof(double));
        for (int k = 1; k <= K; k++) {
            double v = model_node_capacity(tp, mp, g, k);
            if (!(v >= 0)) {
                rc = hx_diag_set(diag, HX_ENOTFOUND,
                                 "node %d: no throughput for type %s with %d layers", i,
                                 c->nodes[i].type, k);
                goto fail;
            }
            h->cap[i][k - 1] = v;
            if (v > h->capmax[i]) {
                h->capmax[i] = v;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        double best = 0;
        for (int k = 1; k <= h->maxk[i]; k++) {
            if (k * h->cap[i][k - 1] > best) {
                best = k * h->cap[i][k - 1];
            }
        }
        h->ub += best / h->L;
    }
    for (int j = 0; j < n; j++) {
        h->sym_class[j] = j;
        for (int i = 0; i < j; i++) {
            if (h->sym_class[i] == i && nodes_identical(c, i, j)) {
                h->sym_class[j] = i;
                break;
            }
        }
    }
    /* Directed edges in cluster link order, forward first. */
    size_t max_edges = 2 * (size_t)c->n_links;
    h->edges = xcalloc(max_edges ? max_edges : 1, sizeof(*h->edges));
    h->edge_fwd = xmalloc((c->n_links ? (size_t)c->n_links : 1) * sizeof(int));
    h->edge_rev = xmalloc((c->n_links ? (size_t)c->n_links : 1) * sizeof(int));
    for (int li = 0; li < c->n_links; li++) {
        const struct cluster_link *lk = &c->links[li];
        h->edge_fwd[li] = h->edge_rev[li] = -1;
        if (lk->a == CLUSTER_SOURCE && lk->b >= 0 && lk->b < n) {
            h->edge_fwd[li] =
                add_edge(h, CLUSTER_SOURCE, lk->b, li, lk->bandwidth / m->token_bytes);
        } else if (lk->b == CLUSTER_SINK && lk->a >= 0 && lk->a < n) {
            h->edge_fwd[li] = add_edge(h, lk->a, CLUSTER_SINK, li, lk->bandwidth / m->token_bytes);
        } else if (lk->a >= 0 && lk->b >= 0 && lk->a < n && lk->b < n && lk->a != lk->b) {
            double cap = lk->bandwidth / m->activation_bytes;
            h->edge_fwd[li] = add_edge(h, lk->a, lk->b, li, cap);
            h->edge_rev[li] = add_edge(h, lk->b, lk->a, li, cap);
        }
        /* source-sink links carry no model flow and are ignored, as in Helix */
    }
    size_t ne = h->n_edges ? h->n_edges : 1;
    h->col_f = xmalloc(ne * sizeof(int));
    h->col_d = xmalloc(ne * sizeof(int));
    h->col_c1 = xmalloc(ne * sizeof(int));
    h->col_c2 = xmalloc(ne * sizeof(int));
    milp_model_new(MILP_SENSE_MAXIMIZE, &h->model);
    rc = build_columns(h);
    if (rc == HX_OK) {
        rc = build_rows(h);
    }
    if (rc != HX_OK) {
        hx_diag_set(diag, rc, "milp_helix_new: cannot build the model");
        goto fail;
    }
    *out = h;
    return HX_OK;
fail:
    milp_helix_free(h);
    return rc;
}

const struct milp_model *milp_helix_model(const struct milp_helix *h)
{
    return h ? h->model : NULL;
}

struct milp_model *milp_helix_model_mut(struct milp_helix *h)
{
    return h ? h->model : NULL;
}

size_t milp_helix_n_edges(const struct milp_helix *h)
{
    return h ? h->n_edges : 0;
}

const struct milp_helix_edge *milp_helix_edge(const struct milp_helix *h, size_t e)
{
    return h && e < h->n_edges ? &h->edges[e] : NULL;
}

int milp_helix_col_start(const struct milp_helix *h, int node)
{
    return h && node >= 0 && node < h->n ? h->col_s[node] : -1;
}

int milp_helix_col_hold(const struct milp_helix *h, int node, int k)
{
    if (!h || node < 0 || node >= h->n || k < 1 || k > h->maxk[node]) {
        return -1;
    }
    return h->col_b[node] + k - 1;
}

int milp_helix_col_flow(const struct milp_helix *h, size_t e)
{
    return h && e < h->n_edges ? h->col_f[e] : -1;
}

int milp_helix_col_switch(const struct milp_helix *h, size_t e)
{
    return h && e < h->n_edges ? h->col_d[e] : -1;
}

/* Check that l assigns every node 1..max layers within L. */
static int check_layout(const struct milp_helix *h, const struct layout *l, struct hx_diag *diag)
{
    if (!l || l->n_nodes != h->n) {
        return hx_diag_set(diag, HX_EINVAL, "layout has %d nodes, cluster %d", l ? l->n_nodes : -1,
                           h->n);
    }
    for (int i = 0; i < h->n; i++) {
        const struct layout_node *ln = &l->nodes[i];
        if (ln->n_layers < 1 || ln->n_layers > h->maxk[i] || ln->start < 0 ||
            ln->start + ln->n_layers > h->L) {
            return hx_diag_set(diag, HX_EINVAL,
                               "%s: node %d: layers [%d, %d) not usable by the MILP (needs 1..%d "
                               "layers within %d)",
                               l->path ? l->path : "layout", i, ln->start, ln->start + ln->n_layers,
                               h->maxk[i], h->L);
        }
    }
    return HX_OK;
}

static int cmp_pair(const void *a, const void *b)
{
    const int *x = a, *y = b;
    if (x[0] != y[0]) {
        return x[0] < y[0] ? -1 : 1;
    }
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

int milp_helix_vector_from_layout(const struct milp_helix *h, const struct layout *l, double *x,
                                  double *objective, struct layout **used, struct hx_diag *diag)
{
    if (used) {
        *used = NULL;
    }
    if (!h || !x) {
        return HX_EINVAL;
    }
    int rc = check_layout(h, l, diag);
    if (rc != HX_OK) {
        return rc;
    }
    struct layout *lay = layout_clone(l);
    if (h->opt.symmetry) {
        /* Sort the (start, k) pairs within each class of interchangeable nodes. */
        int *pairs = xmalloc(2 * (size_t)h->n * sizeof(int));
        int *members = xmalloc((size_t)h->n * sizeof(int));
        for (int cls = 0; cls < h->n; cls++) {
            int cnt = 0;
            for (int i = 0; i < h->n; i++) {
                if (h->sym_class[i] == cls) {
                    members[cnt] = i;
                    pairs[2 * cnt] = lay->nodes[i].start;
                    pairs[2 * cnt + 1] = lay->nodes[i].n_layers;
                    cnt++;
                }
            }
            if (cnt < 2) {
                continue;
            }
            qsort(pairs, (size_t)cnt, 2 * sizeof(int), cmp_pair);
            for (int q = 0; q < cnt; q++) {
                lay->nodes[members[q]].start = pairs[2 * q];
                lay->nodes[members[q]].n_layers = pairs[2 * q + 1];
            }
        }
        xfree(pairs);
        xfree(members);
    }
    size_t ncol = milp_model_n_cols(h->model);
    memset(x, 0, ncol * sizeof(double));
    for (int i = 0; i < h->n; i++) {
        x[h->col_s[i]] = lay->nodes[i].start;
        x[h->col_b[i] + lay->nodes[i].n_layers - 1] = 1;
    }
    for (size_t e = 0; e < h->n_edges; e++) {
        const struct milp_helix_edge *ed = &h->edges[e];
        x[h->col_d[e]] = layout_edge_valid(lay, h->L, h->opt.conn, ed->from, ed->to) ? 1 : 0;
        if (h->col_c1[e] >= 0) {
            int ei = lay->nodes[ed->from].start + lay->nodes[ed->from].n_layers;
            int ej = lay->nodes[ed->to].start + lay->nodes[ed->to].n_layers;
            int sj = lay->nodes[ed->to].start;
            x[h->col_c1[e]] = ei >= sj ? 1 : 0;
            x[h->col_c2[e]] = ej > ei ? 1 : 0;
        }
    }
    double value = 0;
    struct flow_report rep = {0};
    rc = flow_planner_max_flow(h->c, lay, h->m, h->tp, h->mp, h->opt.conn, &value, &rep, diag);
    if (rc != HX_OK) {
        layout_free(lay);
        return rc;
    }
    for (int q = 0; q < rep.n_links; q++) {
        const struct flow_link_result *fl = &rep.links[q];
        if (fl->link < 0 || fl->link >= h->c->n_links) {
            continue;
        }
        int e = h->edge_fwd[fl->link];
        if (e >= 0 && !(h->edges[e].from == fl->from && h->edges[e].to == fl->to)) {
            e = h->edge_rev[fl->link];
        }
        if (e < 0 || h->edges[e].from != fl->from || h->edges[e].to != fl->to) {
            continue;
        }
        double f = fl->flow;
        /* Clip rounding noise so the vector satisfies f <= c d exactly. */
        if (x[h->col_d[e]] == 0) {
            f = 0;
        }
        x[h->col_f[e]] = f > 0 ? f : 0;
    }
    flow_report_release(&rep);
    if (h->col_z) {
        double total = 0;
        for (size_t e = 0; e < h->n_edges; e++) {
            if (h->edges[e].from == CLUSTER_SOURCE) {
                total += x[h->col_f[e]];
            }
        }
        for (size_t t = 0; t < h->n_tau; t++) {
            x[h->col_z[t]] = total > h->tau[t] ? 1 : 0;
        }
    }
    if (h->col_x) {
        for (int i = 0; i < h->n; i++) {
            double in = 0;
            for (size_t e = 0; e < h->n_edges; e++) {
                if (h->edges[e].to == i) {
                    in += x[h->col_f[e]];
                }
            }
            int off = arc_off(h->L, lay->nodes[i].n_layers, lay->nodes[i].start);
            x[h->col_x[i] + off] = 1;
            x[h->col_y[i] + off] = in;
        }
    }
    if (h->col_g) {
        for (int i = 0; i < h->n; i++) {
            double in = 0;
            for (size_t e = 0; e < h->n_edges; e++) {
                if (h->edges[e].to == i) {
                    in += x[h->col_f[e]];
                }
            }
            x[h->col_g[i] + lay->nodes[i].n_layers - 1] = in;
        }
    }
    if (objective) {
        double z = 0;
        for (size_t e = 0; e < h->n_edges; e++) {
            if (h->edges[e].from == CLUSTER_SOURCE) {
                z += x[h->col_f[e]];
            }
        }
        *objective = z;
    }
    if (used) {
        *used = lay;
    } else {
        layout_free(lay);
    }
    return HX_OK;
}

int milp_helix_start_from_layout(struct milp_helix *h, const struct layout *l, double *objective,
                                 struct hx_diag *diag)
{
    if (!h) {
        return HX_EINVAL;
    }
    size_t ncol = milp_model_n_cols(h->model);
    double *x = xmalloc(ncol * sizeof(double));
    int rc = milp_helix_vector_from_layout(h, l, x, objective, NULL, diag);
    if (rc == HX_OK) {
        rc = milp_start_set(h->model, x, ncol);
    }
    xfree(x);
    return rc;
}

int milp_helix_fix_layout(struct milp_helix *h, const struct layout *l, bool fix,
                          struct hx_diag *diag)
{
    if (!h) {
        return HX_EINVAL;
    }
    if (fix) {
        int rc = check_layout(h, l, diag);
        if (rc != HX_OK) {
            return rc;
        }
    }
    double s_ub = h->opt.remove_redundant ? INFINITY : (double)(h->L - 1);
    for (int i = 0; i < h->n; i++) {
        if (fix) {
            double s = l->nodes[i].start;
            milp_col_set_bounds(h->model, (size_t)h->col_s[i], s, s);
        } else {
            milp_col_set_bounds(h->model, (size_t)h->col_s[i], 0, s_ub);
        }
        for (int k = 1; k <= h->maxk[i]; k++) {
            double v = fix && l->nodes[i].n_layers == k ? 1 : 0;
            milp_col_set_bounds(h->model, (size_t)(h->col_b[i] + k - 1), fix ? v : 0, fix ? v : 1);
        }
    }
    return HX_OK;
}

int milp_helix_extract(const struct milp_helix *h, const double *x, struct layout **layout,
                       double *flows, struct hx_diag *diag)
{
    if (layout) {
        *layout = NULL;
    }
    if (!h || !x) {
        return HX_EINVAL;
    }
    struct layout *l = layout_new(h->n);
    for (int i = 0; i < h->n; i++) {
        double s = x[h->col_s[i]];
        if (fabs(s - nearbyint(s)) > 1e-3) {
            layout_free(l);
            return hx_diag_set(diag, HX_ESOLVER, "node %d: fractional start %g", i, s);
        }
        int k = 0;
        for (int q = 1; q <= h->maxk[i]; q++) {
            double b = x[h->col_b[i] + q - 1];
            if (fabs(b - nearbyint(b)) > 1e-3) {
                layout_free(l);
                return hx_diag_set(diag, HX_ESOLVER, "node %d: fractional hold_%d = %g", i, q, b);
            }
            if (b > 0.5) {
                if (k != 0) {
                    layout_free(l);
                    return hx_diag_set(diag, HX_ESOLVER, "node %d holds %d and %d layers", i, k, q);
                }
                k = q;
            }
        }
        if (k == 0) {
            layout_free(l);
            return hx_diag_set(diag, HX_ESOLVER, "node %d holds no size", i);
        }
        l->nodes[i].start = (int)nearbyint(s);
        l->nodes[i].n_layers = k;
    }
    if (flows) {
        for (size_t e = 0; e < h->n_edges; e++) {
            flows[e] = x[h->col_f[e]];
        }
    }
    if (layout) {
        *layout = l;
    } else {
        layout_free(l);
    }
    return HX_OK;
}

int milp_helix_solve(struct milp_helix *h, enum milp_backend backend,
                     const struct milp_params *params, struct milp_helix_result *out,
                     struct hx_diag *diag)
{
    if (!out) {
        return HX_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    out->objective = out->bound = out->gap = NAN;
    if (!h) {
        return HX_EINVAL;
    }
    struct milp_result r;
    int rc = milp_solve(h->model, backend, params, &r, diag);
    out->status = r.status;
    out->objective = r.objective;
    out->bound = r.bound;
    out->gap = r.gap;
    out->solve_s = r.solve_s;
    out->start_used = r.start_used;
    if (rc == HX_OK && r.x) {
        out->flows = xmalloc((h->n_edges ? h->n_edges : 1) * sizeof(double));
        out->n_edges = h->n_edges;
        rc = milp_helix_extract(h, r.x, &out->layout, out->flows, diag);
        if (rc != HX_OK) {
            xfree(out->flows);
            out->flows = NULL;
            out->n_edges = 0;
        }
    }
    milp_result_release(&r);
    return rc;
}

void milp_helix_result_release(struct milp_helix_result *r)
{
    if (r) {
        layout_free(r->layout);
        r->layout = NULL;
        xfree(r->flows);
        r->flows = NULL;
        r->n_edges = 0;
    }
}
