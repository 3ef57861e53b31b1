/*
 * bench_plan_sim.c - close the loop between the planner and the simulator: place the model
 * with each `helix plan` method (plan.h), derive the simulator cluster (sim_cluster_generate),
 * simulate it offline and online with max-flow scheduling, and print decode throughput and
 * latencies side by side with Helix's stored ILP layout. Answers: does a higher planner
 * max-flow turn into more served tokens, and what do deeper pipelines cost in latency?
 *
 *   build/release/bench_plan_sim [time_limit_s] [cluster...]    (run from the repo root)
 *
 * Clusters: single24, geo24, cluster42 (70B). Online rates are Helix's for its own layout on
 * that cluster (700, 320, 2150 tok/s); offline starts 20 queries (Helix's max-flow setting).
 * Fidelity "default" (docs/simulator.md). Without plan.h only the stored layouts run.
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
#include "sim/sim.h"
#include "sim/trace.h"

#if defined(__has_include)
#if __has_include("plan/plan.h")
#include "plan/plan.h"
#define HAVE_PLAN 1
#endif
#endif

struct cluster_case {
    const char *name;
    const char *cluster;
    const char *stored; /* data/layouts/<x>_70b */
    double rate;
};

static const struct cluster_case CASES[] = {
    {"single24", "data/clusters/single24.ini", "data/layouts/single24_70b", 700},
    {"geo24", "data/clusters/geo24.ini", "data/layouts/geo24_70b", 320},
    {"cluster42", "data/clusters/cluster42.ini", "data/layouts/cluster42_70b", 2150},
};

/* Longest source -> sink path in nodes of a simulator cluster (its pipeline depth). */
static int sc_depth(const struct sim_cluster *sc)
{
    int n = sc->n_nodes;
    int *best = xcalloc((size_t)n + 1, sizeof(int));
    int changed = 1;
    for (int v = 0; v < n; v++) {
        best[v] = 0;
    }
    for (int it = 0; it < n + 1 && changed; it++) {
        changed = 0;
        for (int i = 0; i < sc->n_links; i++) {
            int a = sc->links[i].from;
            int b = sc->links[i].to;
            if (b < 0) {
                continue;
            }
            int da = a == CLUSTER_SOURCE ? 0 : best[a];
            if (a != CLUSTER_SOURCE && da == 0) {
                continue;
            }
            if (da + 1 > best[b]) {
                best[b] = da + 1;
                changed = 1;
            }
        }
    }
    int d = 0;
    for (int i = 0; i < sc->n_links; i++) {
        if (sc->links[i].to == CLUSTER_SINK && sc->links[i].from >= 0 &&
            best[sc->links[i].from] > d) {
            d = best[sc->links[i].from];
        }
    }
    xfree(best);
    return d;
}

struct row {
    double tput[2];
    double prompt_mean[2];
    double prompt_p95[2];
    double decode_mean[2];
    double decode_p95[2];
    double flow;
    int depth;
    int ok[2];
};

static void simulate(const struct model_profile *m, const struct model_throughput *tp,
                     const struct sim_cluster *sc, const struct layout *l,
                     const struct sim_trace_data *td, double rate, struct row *r)
{
    r->depth = sc_depth(sc);
    for (int mode = 0; mode < 2; mode++) {
        struct sim_config c;
        sim_config_defaults(&c, mode ? SIM_MODE_OFFLINE : SIM_MODE_ONLINE, SIM_POLICY_MAXFLOW);
        sim_quirks_set(&c.quirks, SIM_FIDELITY_DEFAULT);
        c.model = m;
        c.tp = tp;
        c.cluster = sc;
        c.layout = l;
        c.trace_data = td;
        c.rate_tok_s = rate;
        c.initial_queries = 20;
        struct sim_result res;
        struct hx_diag d = {0};
        int rc = sim_run(&c, &res, &d);
        r->ok[mode] = rc == HX_OK;
        if (rc != HX_OK) {
            fprintf(stderr, "bench_plan_sim: %s\n", d.msg);
            continue;
        }
        r->flow = res.flow_value;
        r->tput[mode] = res.decode_throughput;
        r->prompt_mean[mode] = res.prompt.mean;
        r->prompt_p95[mode] = res.prompt.p95;
        r->decode_mean[mode] = res.decode.mean;
        r->decode_p95[mode] = res.decode.p95;
        sim_result_release(&res);
    }
}

static void print_row(const char *cl, const char *method, double plan_flow, const struct row *r)
{
    printf("%-10s %-12s %9.1f %9.1f %5d", cl, method, plan_flow, r->flow, r->depth);
    for (int mode = 1; mode >= 0; mode--) {
        if (r->ok[mode]) {
            printf(" | %7.1f %6.2f %6.2f %6.3f %6.3f", r->tput[mode], r->prompt_mean[mode],
                   r->prompt_p95[mode], r->decode_mean[mode], r->decode_p95[mode]);
        } else {
            printf(" | %7s %6s %6s %6s %6s", "fail", "-", "-", "-", "-");
        }
    }
    printf("\n");
    fflush(stdout);
}

#ifdef HAVE_PLAN
static double now_fn(void *user)
{
    (void)user;
    return hx_clock_now();
}
#endif

int main(int argc, char **argv)
{
    double limit = argc > 1 ? atof(argv[1]) : 30.0;
    struct hx_diag d = {0};
    struct model_profile *m = NULL;
    struct machine_profiles *mp = NULL;
    struct sim_trace_data td = {0};
    if (model_profile_read_file("data/models/llama2_70b.ini", &m, &d) != HX_OK ||
        machine_profiles_read_file("data/machine_profiles.ini", &mp, &d) != HX_OK ||
        sim_trace_data_load("data/traces", "azure_conv", &td, &d) != HX_OK) {
        fprintf(stderr, "bench_plan_sim: %s\n", d.msg);
        return 1;
    }
#ifndef HAVE_PLAN
    printf("# plan/plan.h not available: only Helix's stored layouts are simulated\n");
#endif
    printf("# llama2_70b, max-flow scheduling, fidelity default; plan time limit %.0f s\n", limit);
    printf("# plan_flow: planner-graph max-flow; sim_flow: simulator-graph max-flow; depth: "
           "longest pipeline in nodes\n");
    printf("%-10s %-12s %9s %9s %5s | %7s %6s %6s %6s %6s | %7s %6s %6s %6s %6s\n", "cluster",
           "method", "plan_flow", "sim_flow", "depth", "off_tps", "p_mean", "p_p95", "d_mean",
           "d_p95", "on_tps", "p_mean", "p_p95", "d_mean", "d_p95");
    for (size_t ci = 0; ci < sizeof(CASES) / sizeof(CASES[0]); ci++) {
        const struct cluster_case *cc = &CASES[ci];
        if (argc > 2) {
            int want = 0;
            for (int a = 2; a < argc; a++) {
                want |= strcmp(argv[a], cc->name) == 0;
            }
            if (!want) {
                continue;
            }
        }
        struct cluster *c = NULL;
        struct model_throughput *tp = NULL;
        if (cluster_read_file(cc->cluster, &c, &d) != HX_OK ||
            model_throughput_for_cluster(m, c, &tp, &d) != HX_OK) {
            fprintf(stderr, "bench_plan_sim: %s\n", d.msg);
            cluster_free(c);
            continue;
        }
        /* Helix's stored ILP layout */
        {
            char scp[256];
            char lp[256];
            snprintf(scp, sizeof(scp), "%s/ilp_simulator_cluster.ini", cc->stored);
            snprintf(lp, sizeof(lp), "%s/ilp_sol.ini", cc->stored);
            struct sim_cluster *sc = NULL;
            struct layout *l = NULL;
            if (sim_cluster_read_file(scp, &sc, &d) == HX_OK &&
                layout_read_file(lp, c->n_nodes, &l, &d) == HX_OK) {
                double pf = 0;
                flow_planner_max_flow(c, l, m, tp, mp, LAYOUT_STRICT, &pf, NULL, &d);
                struct row r;
                memset(&r, 0, sizeof(r));
                simulate(m, tp, sc, l, &td, cc->rate, &r);
                print_row(cc->name, "helix-ilp*", pf, &r);
            }
            sim_cluster_free(sc);
            layout_free(l);
        }
#ifdef HAVE_PLAN
        static const enum plan_method methods[] = {
            PLAN_METHOD_AUTO,     PLAN_METHOD_PETALS, PLAN_METHOD_SWARM,
            PLAN_METHOD_SEPARATE, PLAN_METHOD_MEMORY, PLAN_METHOD_RAM_RING,
        };
        for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]); k++) {
            enum layout_connectivity conn =
                methods[k] == PLAN_METHOD_PETALS ? LAYOUT_PARTIAL : LAYOUT_STRICT;
            struct plan_problem p = {.cluster = c, .model = m, .tp = tp, .mp = mp, .conn = conn};
            struct plan_options o;
            plan_options_init(&o);
            o.method = methods[k];
            o.time_limit_s = limit;
            o.now = now_fn;
            struct plan_result pr;
            memset(&pr, 0, sizeof(pr));
            hx_diag_clear(&d);
            if (plan_solve(&p, &o, &pr, &d) != HX_OK) {
                printf("%-10s %-12s plan failed: %s\n", cc->name, plan_method_name(methods[k]),
                       d.msg);
                continue;
            }
            struct sim_cluster *sc = NULL;
            if (sim_cluster_generate(c, pr.layout, m, mp, conn, &sc, &d) != HX_OK) {
                printf("%-10s %-12s sim cluster failed: %s\n", cc->name,
                       plan_method_name(methods[k]), d.msg);
                plan_result_release(&pr);
                continue;
            }
            struct row r;
            memset(&r, 0, sizeof(r));
            simulate(m, tp, sc, pr.layout, &td, cc->rate, &r);
            print_row(cc->name, plan_method_name(methods[k]), pr.objective, &r);
            sim_cluster_free(sc);
            plan_result_release(&pr);
        }
#endif
        model_throughput_free(tp);
        cluster_free(c);
    }
    printf("# helix-ilp*: Helix's stored ILP solution (data/layouts/<cluster>_70b/ilp_*)\n");
    sim_trace_data_release(&td);
    machine_profiles_free(mp);
    model_profile_free(m);
    return 0;
}
