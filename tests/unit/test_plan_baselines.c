/*
 * test_plan_baselines.c - Helix's baselines (spec §3): Petals and Swarm byte-equal to the
 * stored artifact files, their max-flows equal to §4/§9.2's figures, and the other baselines
 * (homogeneous, separate, memory, ram-ring) valid by the independent checker with the
 * properties their definitions promise.
 */
#include "test.h"
#include "test_plan_util.h"

static void check_equal_file(const char *model, const char *cluster, int64_t seed,
                             enum plan_method method, const char *expect_path)
{
    struct tp_problem t;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(tp_load(&t, model, cluster, NULL, LAYOUT_STRICT, &d), &d);
    struct layout *l = NULL;
    if (method == PLAN_METHOD_PETALS) {
        ASSERT_OK_DIAG(plan_petals(&t.p, seed, &l, &d), &d);
    } else {
        ASSERT_OK_DIAG(plan_swarm(&t.p, &l, &d), &d);
    }
    struct strbuf got;
    struct strbuf want;
    strbuf_init(&got);
    strbuf_init(&want);
    layout_write(l, &got);
    ASSERT_EQ(strbuf_read_file(&want, expect_path), 0);
    ASSERT_EQ(got.len, want.len);
    ASSERT(memcmp(got.buf, want.buf, got.len) == 0);
    strbuf_release(&got);
    strbuf_release(&want);
    layout_free(l);
    tp_release(&t);
}

TEST(plan_petals_byte_equal_helix)
{
    check_equal_file("data/models/llama2_70b.ini", "data/clusters/single24.ini", 0,
                     PLAN_METHOD_PETALS, "data/layouts/single24_70b/petals_sol.ini");
    check_equal_file("data/models/llama2_70b.ini", "data/clusters/geo24.ini", 0, PLAN_METHOD_PETALS,
                     "data/layouts/geo24_70b/petals_sol.ini");
    check_equal_file("data/models/llama2_70b.ini", "data/clusters/cluster42.ini", 0,
                     PLAN_METHOD_PETALS, "data/layouts/cluster42_70b/petals_sol.ini");
    check_equal_file("data/models/llama1_30b.ini", "data/clusters/single24.ini", 0,
                     PLAN_METHOD_PETALS, "data/layouts/single24_30b/petals_sol.ini");
}

TEST(plan_swarm_byte_equal_helix)
{
    check_equal_file("data/models/llama2_70b.ini", "data/clusters/single24.ini", 0,
                     PLAN_METHOD_SWARM, "data/layouts/single24_70b/swarm_sol.ini");
    check_equal_file("data/models/llama2_70b.ini", "data/clusters/geo24.ini", 0, PLAN_METHOD_SWARM,
                     "data/layouts/geo24_70b/swarm_sol.ini");
    check_equal_file("data/models/llama2_70b.ini", "data/clusters/cluster42.ini", 0,
                     PLAN_METHOD_SWARM, "data/layouts/cluster42_70b/swarm_sol.ini");
    check_equal_file("data/models/llama1_30b.ini", "data/clusters/single24.ini", 0,
                     PLAN_METHOD_SWARM, "data/layouts/single24_30b/swarm_sol.ini");
}

/* A different seed must change Petals (the shuffle is real, not a stored answer). */
TEST(plan_petals_seed_matters)
{
    struct tp_problem t;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(tp_load(&t, "data/models/llama2_70b.ini", "data/clusters/single24.ini", NULL,
                           LAYOUT_STRICT, &d),
                   &d);
    struct layout *a = NULL;
    struct layout *b = NULL;
    ASSERT_OK(plan_petals(&t.p, 0, &a, &d));
    ASSERT_OK(plan_petals(&t.p, 1, &b, &d));
    int differ = 0;
    for (int i = 0; i < a->n_nodes; i++) {
        differ |= a->nodes[i].start != b->nodes[i].start;
    }
    ASSERT(differ);
    layout_free(a);
    layout_free(b);
    tp_release(&t);
}

/* §4 table: strict / partial planner-graph flows of the Helix baselines. */
TEST(plan_baseline_flows_match_spec)
{
    struct {
        const char *model;
        const char *cluster;
        enum plan_method m;
        enum layout_connectivity conn;
        double want;
    } cases[] = {
        {"data/models/llama2_70b.ini", "data/clusters/single24.ini", PLAN_METHOD_PETALS,
         LAYOUT_STRICT, 531.703},
        {"data/models/llama2_70b.ini", "data/clusters/single24.ini", PLAN_METHOD_PETALS,
         LAYOUT_PARTIAL, 952.107},
        {"data/models/llama2_70b.ini", "data/clusters/single24.ini", PLAN_METHOD_SWARM,
         LAYOUT_STRICT, 757.853},
        {"data/models/llama2_70b.ini", "data/clusters/geo24.ini", PLAN_METHOD_SWARM, LAYOUT_STRICT,
         616.455},
        {"data/models/llama2_70b.ini", "data/clusters/cluster42.ini", PLAN_METHOD_SWARM,
         LAYOUT_STRICT, 4892.242},
        {"data/models/llama2_70b.ini", "data/clusters/cluster42.ini", PLAN_METHOD_PETALS,
         LAYOUT_STRICT, 655.730},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct tp_problem t;
        struct hx_diag d = {0};
        ASSERT_OK_DIAG(tp_load(&t, cases[c].model, cases[c].cluster, NULL, cases[c].conn, &d), &d);
        struct plan_options o;
        plan_options_init(&o);
        o.method = cases[c].m;
        struct plan_result r;
        ASSERT_OK_DIAG(plan_solve(&t.p, &o, &r, &d), &d);
        ASSERT_DBL_NEAR(r.objective, cases[c].want, 1e-3);
        ASSERT_OK_DIAG(tp_check(&t.p, &r, 0, &d), &d);
        ASSERT_GE(r.upper_bound, r.objective);
        plan_result_release(&r);
        tp_release(&t);
    }
}

/* Every baseline on every bundled 70B cluster passes the independent checker. */
TEST(plan_baselines_valid)
{
    const char *clusters[] = {"data/clusters/single24.ini", "data/clusters/geo24.ini",
                              "data/clusters/cluster42.ini"};
    for (int ci = 0; ci < 3; ci++) {
        struct tp_problem t;
        struct hx_diag d = {0};
        ASSERT_OK_DIAG(
            tp_load(&t, "data/models/llama2_70b.ini", clusters[ci], NULL, LAYOUT_STRICT, &d), &d);
        for (int m = PLAN_METHOD_PETALS; m <= PLAN_METHOD_RAM_RING; m++) {
            struct plan_options o;
            plan_options_init(&o);
            o.method = (enum plan_method)m;
            struct plan_result r;
            int rc = plan_solve(&t.p, &o, &r, &d);
            ASSERT_MSG(rc == HX_OK, "%s on %s: %s", plan_method_name(o.method), clusters[ci],
                       d.msg);
            ASSERT_OK_DIAG(tp_check(&t.p, &r, 0, &d), &d);
            plan_result_release(&r);
        }
        tp_release(&t);
    }
}

/* memory: one pipeline in node order, layers tracking VRAM; ram-ring: sorted by VRAM. */
TEST(plan_memory_and_ram_ring_shapes)
{
    struct tp_problem t;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(tp_load(&t, "data/models/llama2_70b.ini", "data/clusters/cluster42.ini", NULL,
                           LAYOUT_STRICT, &d),
                   &d);
    struct layout *l = NULL;
    ASSERT_OK_DIAG(plan_memory(&t.p, &l, &d), &d);
    int cur = 0;
    for (int i = 0; i < l->n_nodes; i++) {
        if (l->nodes[i].n_layers > 0) {
            ASSERT_EQ(l->nodes[i].start, cur); /* one chain in node order */
            cur += l->nodes[i].n_layers;
        }
        ASSERT_LE(l->nodes[i].n_layers, plan_node_max_layers(&t.p, i));
    }
    ASSERT_EQ(cur, 80);
    layout_free(l);
    ASSERT_OK_DIAG(plan_ram_ring(&t.p, &l, &d), &d);
    /* ring order: starts increase with decreasing VRAM */
    for (int i = 0; i < l->n_nodes; i++) {
        for (int j = 0; j < l->n_nodes; j++) {
            const struct machine_profile *pi = machine_profiles_find(t.mp, t.c->nodes[i].type);
            const struct machine_profile *pj = machine_profiles_find(t.mp, t.c->nodes[j].type);
            if (l->nodes[i].n_layers > 0 && l->nodes[j].n_layers > 0 &&
                pi->vram_bytes > pj->vram_bytes) {
                ASSERT(l->nodes[i].start < l->nodes[j].start);
            }
        }
    }
    layout_free(l);
    tp_release(&t);
}

/* separate (§3.4): single24 30B splits every type into its own even pipeline. */
TEST(plan_separate_even_split)
{
    struct tp_problem t;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(tp_load(&t, "data/models/llama1_30b.ini", "data/clusters/single24.ini", NULL,
                           LAYOUT_STRICT, &d),
                   &d);
    struct layout *l = NULL;
    ASSERT_OK_DIAG(plan_separate(&t.p, &l, &d), &d);
    /* per type: sizes differ by at most one, sum to L, the longer ones last */
    const char *types[] = {"A100", "L4", "T4"};
    for (int ty = 0; ty < 3; ty++) {
        int sum = 0;
        int lo = 1000;
        int hi = 0;
        int last = 0;
        for (int i = 0; i < l->n_nodes; i++) {
            if (strcmp(t.c->nodes[i].type, types[ty]) == 0) {
                int k = l->nodes[i].n_layers;
                sum += k;
                lo = k < lo ? k : lo;
                hi = k > hi ? k : hi;
                ASSERT_GE(k, last);
                last = k;
            }
        }
        ASSERT_EQ(sum, 60);
        ASSERT_LE(hi - lo, 1);
    }
    layout_free(l);
    tp_release(&t);
}
