/*
 * test_plan_auto.c - our planner (`--method auto`): the targets on Helix's clusters,
 * scored by the exact max-flow and checked by the independent checker; honest bounds (never
 * below a placement we can score); never worse than the best baseline on random clusters;
 * 96 nodes; determinism; the depth bound; the exact small-cluster
 * search agreeing with what the search finds.
 */
#include "test.h"
#include "test_plan_util.h"

/*
 * Time limits here are generous (600 s) and never asserted: the search is bounded by its
 * evaluation budget, so results do not depend on the machine's speed or on sanitizers.
 * Wall-clock figures (60 s targets, cluster10 proven in <= 10 s) are measured by
 * bench/bench_plan, which prints them next to Helix's anchors.
 */

static const char *const types70[] = {"A100", "V100", "L4", "L4x2", "T4", "T4x2", "T4x4"};

static void run_auto_evals(struct tp_problem *t, double limit, int max_stages, long evals,
                           struct plan_result *r, double *secs)
{
    struct hx_diag d = {0};
    struct plan_options o;
    plan_options_init(&o);
    o.time_limit_s = limit;
    o.max_evals = evals;
    o.now = tp_clock;
    o.max_stages = max_stages;
    double t0 = hx_clock_now();
    ASSERT_OK_DIAG(plan_solve(&t->p, &o, r, &d), &d);
    *secs = hx_clock_now() - t0;
    ASSERT_OK_DIAG(tp_check(&t->p, r, max_stages, &d), &d);
    ASSERT_GE(r->upper_bound, r->objective * (1 - 1e-9));
}

/* Default settings (the evaluation budget chosen by cluster size). */
static void run_auto(struct tp_problem *t, double limit, int max_stages, struct plan_result *r,
                     double *secs)
{
    run_auto_evals(t, limit, max_stages, 0, r, secs);
}

/* The bound must be >= the flow of every placement we know (Helix's ILP, baselines). */
static void bound_dominates(struct tp_problem *t, const struct plan_result *r, const char *ilp_path)
{
    struct hx_diag d = {0};
    struct layout *l = NULL;
    if (ilp_path) {
        ASSERT_OK_DIAG(layout_read_file(ilp_path, t->c->n_nodes, &l, &d), &d);
        double v = 0.0;
        ASSERT_OK(plan_score(&t->p, l, &v, &d));
        ASSERT_LE(v, r->upper_bound * (1 + 1e-9));
        ASSERT_LE(v, r->objective * (1 + 1e-9)); /* and we beat or match Helix */
        layout_free(l);
    }
    struct layout *b[8];
    enum plan_method w[8];
    for (int m = PLAN_METHOD_PETALS; m <= PLAN_METHOD_RAM_RING; m++) {
        struct plan_options o;
        plan_options_init(&o);
        o.method = (enum plan_method)m;
        struct plan_result br;
        if (plan_solve(&t->p, &o, &br, &d) == HX_OK) {
            ASSERT_LE(br.objective, r->objective * (1 + 1e-9));
            ASSERT_LE(br.objective, r->upper_bound * (1 + 1e-9));
            plan_result_release(&br);
        }
    }
    (void)b;
    (void)w;
}

TEST(plan_auto_single24_70b_optimal)
{
    struct tp_problem t;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(tp_load(&t, "data/models/llama2_70b.ini", "data/clusters/single24.ini", NULL,
                           LAYOUT_STRICT, &d),
                   &d);
    struct plan_result r;
    double s = 0;
    run_auto(&t, 600, 0, &r, &s);
    ASSERT_GE(r.objective, 2045.6);
    /* the flow-clamped work bound proves the chain optimal */
    ASSERT(r.proven);
    ASSERT_DBL_NEAR(r.upper_bound, r.objective, 1e-6 * r.objective);
    bound_dominates(&t, &r, "data/layouts/single24_70b/ilp_sol.ini");
    plan_result_release(&r);
    tp_release(&t);
}

TEST(plan_auto_geo24_70b_target)
{
    struct tp_problem t;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(tp_load(&t, "data/models/llama2_70b.ini", "data/clusters/geo24.ini", NULL,
                           LAYOUT_STRICT, &d),
                   &d);
    struct plan_result r;
    double s = 0;
    run_auto(&t, 600, 0, &r, &s);
    ASSERT_GE(r.objective, 1576.0); /* 1.3x Helix's 1212.18 */
    bound_dominates(&t, &r, "data/layouts/geo24_70b/ilp_sol.ini");
    plan_result_release(&r);
    tp_release(&t);
}

TEST(plan_auto_cluster42_70b_target)
{
    struct tp_problem t;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(tp_load(&t, "data/models/llama2_70b.ini", "data/clusters/cluster42.ini", NULL,
                           LAYOUT_STRICT, &d),
                   &d);
    struct plan_result r;
    double s = 0;
    run_auto(&t, 600, 0, &r, &s);
    ASSERT_GE(r.objective, 5441.0);
    bound_dominates(&t, &r, "data/layouts/cluster42_70b/ilp_sol.ini");
    plan_result_release(&r);
    tp_release(&t);
}

TEST(plan_auto_cluster10_30b_proven_fast)
{
    struct tp_problem t;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(tp_load(&t, "data/models/llama1_30b.ini", "data/clusters/cluster10.ini", NULL,
                           LAYOUT_STRICT, &d),
                   &d);
    struct plan_result r;
    double s = 0;
    run_auto(&t, 600, 0, &r, &s); /* budget-bound, not clock-bound */
    ASSERT_DBL_NEAR(r.objective, 286.5874, 1e-3);
    ASSERT(r.proven);
    ASSERT_LE(r.upper_bound, r.objective * (1 + 1e-6));
    bound_dominates(&t, &r, "data/layouts/cluster10_30b/ilp_sol.ini");
    plan_result_release(&r);
    tp_release(&t);
}

/* Random clusters: never below the best baseline, checked, bound honest. */
TEST(plan_auto_random_clusters_beat_baselines)
{
    int sizes[] = {8, 12, 16, 24, 32, 48};
    int regions[] = {1, 3, 2, 1, 3, 2};
    for (int c = 0; c < 6; c++) {
        struct tp_problem t;
        tp_load_random(&t, "data/models/llama2_70b.ini", (uint64_t)(100 + 10 * c), sizes[c],
                       regions[c], types70, 7);
        struct plan_result r;
        double s = 0;
        run_auto_evals(&t, 600, 0, 15000, &r, &s); /* a short search keeps the test fast */
        bound_dominates(&t, &r, NULL);
        plan_result_release(&r);
        tp_release(&t);
    }
}

TEST(plan_auto_96_nodes_within_limit)
{
    /* default settings; the multi-region cluster is the slower one */
    for (int regions = 4; regions <= 4; regions++) {
        struct strbuf sb;
        strbuf_init(&sb);
        tp_gen_cluster(&sb, (uint64_t)(7 + regions), 96, regions, types70, 7);
        struct tp_problem t;
        struct hx_diag d = {0};
        int rc = tp_load(&t, "data/models/llama2_70b.ini", NULL, sb.buf, LAYOUT_STRICT, &d);
        strbuf_release(&sb);
        ASSERT_OK_DIAG(rc, &d);
        struct plan_result r;
        double s = 0;
        run_auto(&t, 600, 0, &r, &s);
        bound_dominates(&t, &r, NULL);
        plan_result_release(&r);
        tp_release(&t);
    }
}

TEST(plan_auto_deterministic)
{
    struct tp_problem t;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(tp_load(&t, "data/models/llama2_70b.ini", "data/clusters/geo24.ini", NULL,
                           LAYOUT_STRICT, &d),
                   &d);
    struct plan_options o;
    plan_options_init(&o);
    o.seed = 3;
    o.max_evals = 5000; /* no clock: the evaluation budget alone ends the search */
    struct plan_result a;
    struct plan_result b;
    ASSERT_OK_DIAG(plan_solve(&t.p, &o, &a, &d), &d);
    ASSERT_OK_DIAG(plan_solve(&t.p, &o, &b, &d), &d);
    ASSERT_EQ(a.objective == b.objective, 1);
    for (int i = 0; i < a.layout->n_nodes; i++) {
        ASSERT_EQ(a.layout->nodes[i].start, b.layout->nodes[i].start);
        ASSERT_EQ(a.layout->nodes[i].n_layers, b.layout->nodes[i].n_layers);
    }
    plan_result_release(&a);
    plan_result_release(&b);
    tp_release(&t);
}

/* --max-stages: respected, and infeasible depths fail with a clear error. */
TEST(plan_auto_max_stages)
{
    struct tp_problem t;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(tp_load(&t, "data/models/llama2_70b.ini", "data/clusters/single24.ini", NULL,
                           LAYOUT_STRICT, &d),
                   &d);
    struct plan_result r;
    double s = 0;
    run_auto(&t, 60, 12, &r, &s);
    ASSERT_LE(plan_depth(&t.p, r.layout, NULL), 12);
    ASSERT_GE(r.objective, 952.0);
    plan_result_release(&r);
    /* 8 stages hold at most 4 x 12 (A100) + 4 x 7 (L4) = 76 < 80 layers */
    struct plan_options o;
    plan_options_init(&o);
    o.max_stages = 8;
    ASSERT_ERR(plan_solve(&t.p, &o, &r, &d), HX_EINFEASIBLE);
    ASSERT_CONTAINS(d.msg, "8 stages");
    tp_release(&t);
}

/* Exact search vs the annealer on small random clusters: the proof never undercuts a
 * placement the annealer finds, and on cluster10 it separates 286.58 from 286.5875. */
TEST(plan_exact_consistent)
{
    struct tp_problem t;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(tp_load(&t, "data/models/llama1_30b.ini", "data/clusters/cluster10.ini", NULL,
                           LAYOUT_STRICT, &d),
                   &d);
    struct plan_result r;
    double s = 0;
    run_auto(&t, 600, 0, &r, &s);
    ASSERT(r.proven);
    plan_result_release(&r);
    tp_release(&t);
    const char *const types30[] = {"L4", "T4", "A100"};
    for (int c = 0; c < 3; c++) {
        tp_load_random(&t, "data/models/llama1_30b.ini", (uint64_t)(40 + 10 * c), 6 + c, 1, types30,
                       3);
        /* search + exact stage under a short limit: bound honest, plan valid */
        struct plan_options o;
        plan_options_init(&o);
        o.max_evals = 20000;
        o.time_limit_s = 4;
        o.now = tp_clock;
        ASSERT_OK_DIAG(plan_solve(&t.p, &o, &r, &d), &d);
        ASSERT_OK_DIAG(tp_check(&t.p, &r, 0, &d), &d);
        ASSERT_GE(r.upper_bound, r.objective * (1 - 1e-9));
        plan_result_release(&r);
        tp_release(&t);
    }
}

/* Sparse clusters: Helix's pruned geo24 / cluster42 (12 links per node, 12 source and sink
 * links), where random orders have no valid edge: auto still beats Helix's ILP placements,
 * which were computed on these very clusters. */
TEST(plan_auto_pruned_clusters)
{
    struct {
        const char *cluster;
        const char *ilp;
    } cases[] = {
        {"data/clusters/geo24_pruned12.ini", "data/layouts/geo24_70b/ilp_sol.ini"},
        {"data/clusters/cluster42_pruned12.ini", "data/layouts/cluster42_70b/ilp_sol.ini"},
    };
    for (int c = 0; c < 2; c++) {
        struct tp_problem t;
        struct hx_diag d = {0};
        ASSERT_OK_DIAG(
            tp_load(&t, "data/models/llama2_70b.ini", cases[c].cluster, NULL, LAYOUT_STRICT, &d),
            &d);
        struct plan_result r;
        double s = 0;
        run_auto_evals(&t, 60, 0, 60000, &r, &s);
        bound_dominates(&t, &r, cases[c].ilp);
        plan_result_release(&r);
        tp_release(&t);
    }
}
