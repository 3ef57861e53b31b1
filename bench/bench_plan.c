/*
 * bench_plan.c - `helix plan`'s methods on Helix's four planning problems, in one run, as a
 * markdown table: per cluster and method the objective (planner-graph max-flow, tokens/s),
 * the wall time, the reported upper bound and gap, and the ratio to Helix's Gurobi placement,
 * whose flow is recomputed here from the stored ilp_sol.ini (the anchor). Every plan is also
 * passed through the independent checker (plan_validate); a failure is printed in the row.
 *
 *   build/release/bench_plan [auto_limit_s (60)] [milp_limit_s (20)] [threads (2)]
 *
 * Run from the repository root. milp is Helix's formulation on CBC, warm-started from the
 * better of Helix's heuristics (as Helix did), with the short limit given.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "core/core.h"
#include "flow/flow.h"
#include "plan/plan.h"

struct bcase {
    const char *name;
    const char *model;
    const char *cluster;
    const char *ilp;
    double gurobi; /* Helix's reported figure (spec §9.1) */
};

static double now_cb(void *u)
{
    (void)u;
    return hx_clock_now();
}

int main(int argc, char **argv)
{
    double auto_limit = argc > 1 ? atof(argv[1]) : 60.0;
    double milp_limit = argc > 2 ? atof(argv[2]) : 20.0;
    int threads = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 2;
    const struct bcase cases[] = {
        {"single24", "data/models/llama2_70b.ini", "data/clusters/single24.ini",
         "data/layouts/single24_70b/ilp_sol.ini", 1289.56},
        {"geo24", "data/models/llama2_70b.ini", "data/clusters/geo24.ini",
         "data/layouts/geo24_70b/ilp_sol.ini", 1212.18},
        {"cluster42", "data/models/llama2_70b.ini", "data/clusters/cluster42.ini",
         "data/layouts/cluster42_70b/ilp_sol.ini", 4137.55},
        {"cluster10 (30B)", "data/models/llama1_30b.ini", "data/clusters/cluster10.ini",
         "data/layouts/cluster10_30b/ilp_sol.ini", 286.59},
        /* Helix solved geo24 and cluster42 on its pruned graphs (12 links per node, §2.5) */
        {"geo24 pruned12", "data/models/llama2_70b.ini", "data/clusters/geo24_pruned12.ini",
         "data/layouts/geo24_70b/ilp_sol.ini", 1212.18},
        {"cluster42 pruned12", "data/models/llama2_70b.ini", "data/clusters/cluster42_pruned12.ini",
         "data/layouts/cluster42_70b/ilp_sol.ini", 4137.55},
    };
    printf("| cluster | method | objective (tok/s) | time (s) | upper bound | gap | vs Helix "
           "Gurobi | check |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---|\n");
    double total0 = hx_clock_now();
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct hx_diag d = {0};
        struct model_profile *m = NULL;
        struct cluster *cl = NULL;
        struct machine_profiles *mp = NULL;
        struct model_throughput *tp = NULL;
        struct layout *ilp = NULL;
        if (model_profile_read_file(cases[c].model, &m, &d) ||
            cluster_read_file(cases[c].cluster, &cl, &d) ||
            machine_profiles_read_file("data/machine_profiles.ini", &mp, &d) ||
            model_throughput_for_cluster(m, cl, &tp, &d) ||
            layout_read_file(cases[c].ilp, cl->n_nodes, &ilp, &d)) {
            fprintf(stderr, "bench_plan: %s\n", d.msg);
            return 1;
        }
        struct plan_problem p = {cl, m, tp, mp, LAYOUT_STRICT};
        double anchor = 0.0;
        if (plan_score(&p, ilp, &anchor, &d) != HX_OK) {
            fprintf(stderr, "bench_plan: %s\n", d.msg);
            return 1;
        }
        printf("| %s | Helix ILP (Gurobi, stored) | %.2f | - | - | - | 1.00x (reported %.2f) | "
               "- |\n",
               cases[c].name, anchor, cases[c].gurobi);
        for (int mi = PLAN_METHOD_PETALS; mi <= PLAN_METHOD_COUNT; mi++) {
            /* the baselines and milp, then auto last */
            int meth = mi == PLAN_METHOD_COUNT ? PLAN_METHOD_AUTO : mi;
            struct plan_options o;
            plan_options_init(&o);
            o.method = (enum plan_method)meth;
            o.now = now_cb;
            o.threads = threads;
            o.time_limit_s = meth == PLAN_METHOD_MILP ? milp_limit : auto_limit;
            struct plan_result r;
            memset(&d, 0, sizeof(d));
            double t0 = hx_clock_now();
            int rc = plan_solve(&p, &o, &r, &d);
            double secs = hx_clock_now() - t0;
            if (rc != HX_OK) {
                printf("| %s | %s | - | %.2f | - | - | - | %s |\n", cases[c].name,
                       plan_method_name(o.method), secs, d.msg);
                continue;
            }
            struct plan_edge_flow *e = NULL;
            int ne = 0;
            double v = 0.0;
            const char *check = "ok";
            if (plan_edge_flows(&p, r.layout, &e, &ne, &v, &d) != HX_OK ||
                plan_validate(&p, r.layout, e, ne, r.objective, 0, &d) != HX_OK) {
                check = d.msg;
            }
            char gap[32];
            if (isfinite(r.gap)) {
                snprintf(gap, sizeof(gap), "%.2f%%%s", 100 * r.gap, r.proven ? " (proven)" : "");
            } else {
                snprintf(gap, sizeof(gap), "inf");
            }
            printf("| %s | %s | %.2f | %.2f | %.2f (%s) | %s | %.2fx | %s |\n", cases[c].name,
                   plan_method_name(o.method), r.objective, secs, r.upper_bound, r.bound_kind, gap,
                   anchor > 0 ? r.objective / anchor : 0.0, check);
            fflush(stdout);
            xfree(e);
            plan_result_release(&r);
        }
        layout_free(ilp);
        model_throughput_free(tp);
        machine_profiles_free(mp);
        cluster_free(cl);
        model_profile_free(m);
    }
    printf("\ntotal %.1f s (auto limit %.0f s, milp limit %.0f s, %d threads)\n",
           hx_clock_now() - total0, auto_limit, milp_limit, threads);
    return 0;
}
