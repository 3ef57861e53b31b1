/*
 * test_flow_helix.c - the max-flow of Helix's placements (spec §4, §9.1, §9.2) on both the
 * planner graph (complete cluster + layout) and the simulator graph (stored
 * *_simulator_cluster.ini), and the report's cut / per-node bookkeeping.
 */
#include <string.h>

#include "base/alloc.h"
#include "core/core.h"
#include "flow/flow.h"
#include "test.h"

struct fx {
    struct cluster *c;
    struct model_profile *m;
    struct model_throughput *t;
    struct machine_profiles *mp;
    struct layout *l;
};

static void fx_open(struct fx *f, const char *cluster, const char *model, const char *layout)
{
    struct hx_diag d = {0};
    char path[256];
    snprintf(path, sizeof(path), "data/clusters/%s.ini", cluster);
    ASSERT_OK_DIAG(cluster_read_file(path, &f->c, &d), &d);
    snprintf(path, sizeof(path), "data/models/%s.ini", model);
    ASSERT_OK_DIAG(model_profile_read_file(path, &f->m, &d), &d);
    ASSERT_OK_DIAG(model_throughput_for_cluster(f->m, f->c, &f->t, &d), &d);
    ASSERT_OK_DIAG(machine_profiles_read_file("data/machine_profiles.ini", &f->mp, &d), &d);
    snprintf(path, sizeof(path), "data/layouts/%s_sol.ini", layout);
    ASSERT_OK_DIAG(layout_read_file(path, f->c->n_nodes, &f->l, &d), &d);
}

static void fx_close(struct fx *f)
{
    layout_free(f->l);
    machine_profiles_free(f->mp);
    model_throughput_free(f->t);
    model_profile_free(f->m);
    cluster_free(f->c);
}

static double planner_flow(struct fx *f, enum layout_connectivity conn)
{
    struct hx_diag d = {0};
    double v = -1;
    ASSERT_OK_DIAG(flow_planner_max_flow(f->c, f->l, f->m, f->t, f->mp, conn, &v, NULL, &d), &d);
    return v;
}

static double sim_flow(struct fx *f, const char *layout)
{
    struct hx_diag d = {0};
    char path[256];
    struct sim_cluster *sc = NULL;
    snprintf(path, sizeof(path), "data/layouts/%s_simulator_cluster.ini", layout);
    ASSERT_OK_DIAG(sim_cluster_read_file(path, &sc, &d), &d);
    struct flow_net *net = NULL;
    double v = -1;
    ASSERT_OK_DIAG(flow_net_sim_new(sc, f->l, f->m, f->t, &net, &v, &d), &d);
    flow_net_free(net);
    sim_cluster_free(sc);
    return v;
}

static const struct {
    const char *cluster;
    const char *model;
    const char *layout;
    double strict;  /* planner graph, strict connectivity (< 0: not given) */
    double partial; /* planner graph, partial connectivity */
    double sim;     /* simulator graph on the stored simulator cluster */
    double tol;
} cases[] = {
    {"single24", "llama2_70b", "single24_70b/ilp", 1289.5558, -1, 1289.556, 0.00006},
    {"geo24_pruned12", "llama2_70b", "geo24_70b/ilp", 1212.1768, -1, 1212.177, 0.00006},
    {"cluster42_pruned12", "llama2_70b", "cluster42_70b/ilp", 4137.5476, -1, 4137.548, 0.00006},
    {"cluster10", "llama1_30b", "cluster10_30b/ilp", 286.5874, -1, 286.5874, 0.00006},
    {"single24_a100", "llama1_30b", "single24_30b/ilp_a100", 1044.5333, -1, 1044.5333, 0.00006},
    {"single24_l4", "llama1_30b", "single24_30b/ilp_l4", 214.9814, -1, 214.9814, 0.00006},
    {"single24_t4", "llama1_30b", "single24_30b/ilp_t4", 397.6851, -1, 397.6851, 0.00006},
    {"single24", "llama2_70b", "single24_70b/petals", 531.703, 952.107, 952.107, 0.0006},
    {"single24", "llama2_70b", "single24_70b/swarm", 757.853, 757.853, 757.853, 0.0006},
    {"single24", "llama1_30b", "single24_30b/petals", 0, 898.570, 898.570, 0.0006},
    {"single24", "llama1_30b", "single24_30b/swarm", 889.834, -1, 889.834, 0.0006},
    {"geo24", "llama2_70b", "geo24_70b/petals", 0, 952.107, 952.107, 0.0006},
    {"geo24", "llama2_70b", "geo24_70b/swarm", 616.455, -1, 616.380, 0.0006},
    {"cluster42", "llama2_70b", "cluster42_70b/petals", 655.730, 3292.244, 3292.244, 0.0006},
    {"cluster42", "llama2_70b", "cluster42_70b/swarm", 4892.2424, -1, 4892.242, 0.0006},
};

TEST(flow_helix_reference_values)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fx f = {0};
        fx_open(&f, cases[i].cluster, cases[i].model, cases[i].layout);
        double tol = cases[i].tol;
        if (cases[i].strict >= 0) {
            double v = planner_flow(&f, LAYOUT_STRICT);
            ASSERT_MSG(fabs(v - cases[i].strict) <= tol, "%s strict: %.5f vs %.5f", cases[i].layout,
                       v, cases[i].strict);
        }
        if (cases[i].partial >= 0) {
            double v = planner_flow(&f, LAYOUT_PARTIAL);
            ASSERT_MSG(fabs(v - cases[i].partial) <= tol, "%s partial: %.5f vs %.5f",
                       cases[i].layout, v, cases[i].partial);
        }
        double v = sim_flow(&f, cases[i].layout);
        double stol = cases[i].sim == 1289.556 || cases[i].sim == 1212.177 ||
                              cases[i].sim == 4137.548 || cases[i].sim == 4892.242
                          ? 0.0006
                          : tol;
        ASSERT_MSG(fabs(v - cases[i].sim) <= stol, "%s sim: %.5f vs %.5f", cases[i].layout, v,
                   cases[i].sim);
        fx_close(&f);
    }
}

/* The generated simulator cluster gives the same flow as the stored one. */
TEST(flow_helix_generated_sim_cluster)
{
    struct fx f = {0};
    fx_open(&f, "single24", "llama2_70b", "single24_70b/ilp");
    struct hx_diag d = {0};
    struct sim_cluster *sc = NULL;
    ASSERT_OK_DIAG(sim_cluster_generate(f.c, f.l, f.m, f.mp, LAYOUT_STRICT, &sc, &d), &d);
    struct flow_net *net = NULL;
    double v = 0;
    ASSERT_OK_DIAG(flow_net_sim_new(sc, f.l, f.m, f.t, &net, &v, &d), &d);
    ASSERT_DBL_NEAR(v, 1289.5558, 0.00006);
    flow_net_free(net);
    sim_cluster_free(sc);
    fx_close(&f);
}

/* Report invariants: node flows and cut capacities both sum to the value; magic numbers. */
TEST(flow_helix_report_and_cut)
{
    struct fx f = {0};
    fx_open(&f, "single24", "llama2_70b", "single24_70b/ilp");
    struct hx_diag d = {0};
    struct flow_report r;
    double v = 0;
    ASSERT_OK_DIAG(flow_planner_max_flow(f.c, f.l, f.m, f.t, f.mp, LAYOUT_STRICT, &v, &r, &d), &d);
    ASSERT_DBL_NEAR(r.value, v, 0);
    ASSERT_EQ(r.n_nodes, 24);
    double cut = 0;
    double src = 0;
    int cut_nodes = 0;
    for (int i = 0; i < r.n_nodes; i++) {
        ASSERT_LE(r.nodes[i].flow, r.nodes[i].capacity + 1e-6);
        if (r.nodes[i].in_cut) {
            cut += r.nodes[i].capacity;
            cut_nodes++;
            ASSERT_DBL_NEAR(r.nodes[i].flow, r.nodes[i].capacity, 1e-6);
        }
    }
    for (int e = 0; e < r.n_links; e++) {
        ASSERT_LE(r.links[e].flow, r.links[e].capacity + 1e-6);
        if (r.links[e].in_cut) {
            cut += r.links[e].capacity;
        }
        if (r.links[e].from == CLUSTER_SOURCE) {
            src += r.links[e].flow;
        }
    }
    ASSERT_DBL_NEAR(cut, v, 1e-6);
    ASSERT_DBL_NEAR(src, v, 1e-6);
    /* 1289.556 = 757.853 (T4 holding 4) + 531.703 (L4 holding 7): two saturated nodes */
    ASSERT_EQ(cut_nodes, 2);
    flow_report_release(&r);
    fx_close(&f);
}

/* Evaluating many placements on one net reuses it and gives the same values. */
TEST(flow_helix_net_reuse)
{
    struct fx f = {0};
    fx_open(&f, "single24", "llama2_70b", "single24_70b/ilp");
    struct hx_diag d = {0};
    struct layout *swarm = NULL;
    ASSERT_OK_DIAG(layout_read_file("data/layouts/single24_70b/swarm_sol.ini", 24, &swarm, &d), &d);
    struct flow_net *net = NULL;
    ASSERT_OK_DIAG(flow_net_planner_new(f.c, f.m, f.t, f.mp, LAYOUT_STRICT, &net, &d), &d);
    for (int rep = 0; rep < 50; rep++) {
        double v = 0;
        ASSERT_OK_DIAG(flow_net_planner_eval(net, rep % 2 ? swarm : f.l, &v, &d), &d);
        ASSERT_DBL_NEAR(v, rep % 2 ? 757.853 : 1289.5558, 0.0006);
    }
    /* a node over its max layers is an error, not a crash */
    struct layout *bad = layout_clone(f.l);
    bad->nodes[0].n_layers = 20;
    double v = 0;
    ASSERT_ERR(flow_net_planner_eval(net, bad, &v, &d), HX_ERANGE);
    layout_free(bad);
    flow_net_free(net);
    layout_free(swarm);
    fx_close(&f);
}

/* Separate pipelines exceed max layers: the simulator graph cannot be built (spec §4). */
TEST(flow_helix_separate_pipeline_refused)
{
    struct fx f = {0};
    fx_open(&f, "single24_a100", "llama2_70b", "single24_70b/separate_a100");
    struct hx_diag d = {0};
    struct sim_cluster *sc = NULL;
    ASSERT_OK_DIAG(sim_cluster_read_file(
                       "data/layouts/single24_70b/separate_a100_simulator_cluster.ini", &sc, &d),
                   &d);
    struct flow_net *net = NULL;
    double v = 0;
    ASSERT_ERR(flow_net_sim_new(sc, f.l, f.m, f.t, &net, &v, &d), HX_ERANGE);
    ASSERT_CONTAINS(d.msg, "compute_node_2");
    ASSERT(net == NULL);
    sim_cluster_free(sc);
    fx_close(&f);
}
