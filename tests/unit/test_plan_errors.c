/*
 * test_plan_errors.c - bad inputs give clear errors, never crashes: unknown method names,
 * GPU types the model does not profile, empty/oversized depth bounds.
 */
#include "test.h"
#include "test_plan_util.h"

TEST(plan_error_unknown_method)
{
    struct hx_diag d = {0};
    enum plan_method m;
    ASSERT_ERR(plan_method_parse("gurobi", &m, &d), HX_EINVAL);
    ASSERT_CONTAINS(d.msg, "unknown method 'gurobi'");
    ASSERT_CONTAINS(d.msg, "ram-ring");
    for (int i = 0; i < PLAN_METHOD_COUNT; i++) {
        ASSERT_OK(plan_method_parse(plan_method_name((enum plan_method)i), &m, &d));
        ASSERT_EQ(m, i);
    }
}

TEST(plan_error_type_not_in_model)
{
    const char *types[] = {"H100"};
    struct strbuf sb;
    strbuf_init(&sb);
    tp_gen_cluster(&sb, 1, 4, 1, types, 1);
    struct model_profile *m = NULL;
    struct cluster *c = NULL;
    struct hx_diag d = {0};
    ASSERT_OK(model_profile_read_file("data/models/llama2_70b.ini", &m, &d));
    ASSERT_OK(cluster_parse_string(sb.buf, "gen", &c, &d));
    struct model_throughput *tp = NULL;
    /* the throughput table already refuses; the planner names the node too */
    ASSERT_NE(model_throughput_for_cluster(m, c, &tp, &d), HX_OK);
    model_throughput_free(tp);
    cluster_free(c);
    model_profile_free(m);
    strbuf_release(&sb);
}

TEST(plan_error_max_stages_infeasible_every_method)
{
    struct tp_problem t;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(tp_load(&t, "data/models/llama2_70b.ini", "data/clusters/single24.ini", NULL,
                           LAYOUT_STRICT, &d),
                   &d);
    for (int m = 0; m < PLAN_METHOD_COUNT; m++) {
        if (m == PLAN_METHOD_MILP) {
            continue;
        }
        struct plan_options o;
        plan_options_init(&o);
        o.method = (enum plan_method)m;
        o.max_stages = 1;
        struct plan_result r;
        memset(&d, 0, sizeof(d));
        ASSERT_ERR(plan_solve(&t.p, &o, &r, &d), HX_EINFEASIBLE);
        ASSERT(d.msg[0] != 0);
    }
    tp_release(&t);
}
