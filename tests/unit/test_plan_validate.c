/*
 * test_plan_validate.c - the independent checker: it accepts Helix's own stored placements
 * with their recomputed flows, and rejects each kind of broken plan (range, max layers,
 * uncovered layer, wrong objective, edge over capacity, invalid edge, conservation).
 */
#include "test.h"
#include "test_plan_util.h"

struct vcase {
    struct tp_problem t;
    struct plan_result r;
    struct plan_edge_flow *e;
    int ne;
};

static void vcase_load(struct vcase *v, const char *model, const char *cluster, const char *layout)
{
    struct hx_diag d = {0};
    memset(v, 0, sizeof(*v));
    ASSERT_OK_DIAG(tp_load(&v->t, model, cluster, NULL, LAYOUT_STRICT, &d), &d);
    ASSERT_OK_DIAG(layout_read_file(layout, v->t.c->n_nodes, &v->r.layout, &d), &d);
    double val = 0.0;
    ASSERT_OK_DIAG(plan_edge_flows(&v->t.p, v->r.layout, &v->e, &v->ne, &val, &d), &d);
    v->r.objective = val;
}

static void vcase_release(struct vcase *v)
{
    xfree(v->e);
    plan_result_release(&v->r);
    tp_release(&v->t);
}

static int check(struct vcase *v, struct hx_diag *d)
{
    return plan_validate(&v->t.p, v->r.layout, v->e, v->ne, v->r.objective, 0, d);
}

TEST(plan_validate_accepts_helix_ilp_layouts)
{
    struct {
        const char *model;
        const char *cluster;
        const char *layout;
        double want;
    } cases[] = {
        {"data/models/llama2_70b.ini", "data/clusters/single24.ini",
         "data/layouts/single24_70b/ilp_sol.ini", 1289.5558},
        {"data/models/llama2_70b.ini", "data/clusters/geo24.ini",
         "data/layouts/geo24_70b/ilp_sol.ini", 1212.1768},
        {"data/models/llama2_70b.ini", "data/clusters/cluster42.ini",
         "data/layouts/cluster42_70b/ilp_sol.ini", 4137.5476},
        {"data/models/llama1_30b.ini", "data/clusters/cluster10.ini",
         "data/layouts/cluster10_30b/ilp_sol.ini", 286.5874},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct vcase v;
        struct hx_diag d = {0};
        vcase_load(&v, cases[c].model, cases[c].cluster, cases[c].layout);
        ASSERT_DBL_NEAR(v.r.objective, cases[c].want, 1e-3);
        ASSERT_OK_DIAG(check(&v, &d), &d);
        vcase_release(&v);
    }
}

TEST(plan_validate_rejects_broken_plans)
{
    struct vcase v;
    struct hx_diag d = {0};
    vcase_load(&v, "data/models/llama2_70b.ini", "data/clusters/single24.ini",
               "data/layouts/single24_70b/ilp_sol.ini");
    ASSERT_OK_DIAG(check(&v, &d), &d);

    /* wrong objective */
    double obj = v.r.objective;
    v.r.objective = obj * 1.01;
    ASSERT_ERR(check(&v, &d), HX_EINFEASIBLE);
    ASSERT_CONTAINS(d.msg, "objective");
    v.r.objective = obj;

    /* an edge over its link capacity (and so over the objective) */
    int fe = -1;
    for (int e = 0; e < v.ne; e++) {
        if (v.e[e].flow > 1 && v.e[e].from >= 0 && v.e[e].to >= 0) {
            fe = e;
            break;
        }
    }
    ASSERT(fe >= 0);
    double f0 = v.e[fe].flow;
    v.e[fe].flow = 1e9;
    memset(&d, 0, sizeof(d));
    ASSERT_ERR(check(&v, &d), HX_EINFEASIBLE);
    ASSERT_CONTAINS(d.msg, "capacity");
    /* conservation: shift flow off one edge */
    v.e[fe].flow = f0 * 0.5;
    memset(&d, 0, sizeof(d));
    ASSERT_ERR(check(&v, &d), HX_EINFEASIBLE);
    v.e[fe].flow = f0;

    /* an edge that is not valid under strict connectivity */
    struct plan_edge_flow *e2 = xcalloc((size_t)v.ne + 1, sizeof(*e2));
    memcpy(e2, v.e, sizeof(*e2) * (size_t)v.ne);
    int a = e2[fe].from;
    int b = -1;
    for (int j = 0; j < v.t.c->n_nodes; j++) {
        int ea = v.r.layout->nodes[a].start + v.r.layout->nodes[a].n_layers;
        if (j != a && v.r.layout->nodes[j].start != ea) {
            b = j;
            break;
        }
    }
    e2[v.ne].from = a;
    e2[v.ne].to = b;
    e2[v.ne].flow = 1.0;
    memset(&d, 0, sizeof(d));
    ASSERT_ERR(plan_validate(&v.t.p, v.r.layout, e2, v.ne + 1, v.r.objective, 0, &d),
               HX_EINFEASIBLE);
    ASSERT_CONTAINS(d.msg, "not valid");
    xfree(e2);

    /* too many layers, range beyond L, an uncovered layer */
    struct layout *l = v.r.layout;
    struct layout_node keep = l->nodes[0];
    l->nodes[0].n_layers = plan_node_max_layers(&v.t.p, 0) + 1;
    memset(&d, 0, sizeof(d));
    ASSERT_ERR(check(&v, &d), HX_EINFEASIBLE);
    l->nodes[0] = keep;
    l->nodes[0].start = 79;
    l->nodes[0].n_layers = 2;
    memset(&d, 0, sizeof(d));
    ASSERT_ERR(check(&v, &d), HX_EINFEASIBLE);
    ASSERT_CONTAINS(d.msg, "outside");
    l->nodes[0] = keep;
    for (int i = 0; i < l->n_nodes; i++) {
        if (l->nodes[i].start == 0) {
            l->nodes[i].n_layers = 0;
        }
    }
    memset(&d, 0, sizeof(d));
    ASSERT_ERR(check(&v, &d), HX_EINFEASIBLE);
    vcase_release(&v);
}

/* The depth bound: Helix's single24 ILP layout has long pipelines. */
TEST(plan_validate_depth_bound)
{
    struct vcase v;
    struct hx_diag d = {0};
    vcase_load(&v, "data/models/llama2_70b.ini", "data/clusters/single24.ini",
               "data/layouts/single24_70b/ilp_sol.ini");
    int depth = plan_depth(&v.t.p, v.r.layout, NULL);
    ASSERT_GE(depth, 7); /* 80 layers, at most 12 per node */
    ASSERT_OK_DIAG(plan_validate(&v.t.p, v.r.layout, v.e, v.ne, v.r.objective, depth, &d), &d);
    ASSERT_ERR(plan_validate(&v.t.p, v.r.layout, v.e, v.ne, v.r.objective, depth - 1, &d),
               HX_EINFEASIBLE);
    vcase_release(&v);
}
