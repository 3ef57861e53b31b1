/*
 * bench_plan_sim.c - close the loop between the planner and the simulator: place llama2_70b
 * with `helix plan` (objective served, the default; objective maxflow, Helix's; Helix's
 * Petals and Swarm baselines), derive the simulator cluster (sim_cluster_generate) and
 * measure, next to Helix's stored ILP layout, what each placement serves:
 *
 *   offline  decode tokens/s with Helix's initial-query setting (20 queries, KV-fed,
 *            60 s warm-up + 600 s window);
 *   online   at Helix's rate for the cluster (single24 700, geo24 320, cluster42 2150 tok/s,
 *            1800 s): decode tokens/s, p50 / p95 prompt and decode latency;
 *   sustained the highest online rate the placement sustains: median (p50) decode latency
 *            within 2x of its light-load value (rate 0.1x Helix's), scanning 0.25x, 0.5x,
 *            0.75x, 1x, 1.25x, 1.5x, 2x, 2.5x, 3x Helix's rate (600 s traces) up to the first
 *            failure, then three bisection steps between the last pass and the first failure.
 *            (p95 is no capacity signal here: prompt batches that delay decode iterations
 *            double it between 0.1x and 0.25x load, far below capacity; docs/planning.md.)
 *   at SLO    the same scan against one absolute limit per cluster, 2x the light-load p50
 *            decode latency of Helix's placement: a placement that is faster at light load
 *            is not held to a tighter bound than the placement it is compared with.
 *
 * Max-flow scheduling, `--fidelity helix`, seed 0 everywhere; ratios are to helix-ilp*. The
 * served search plans with as many jobs as `helix plan` uses by default (online CPUs, <= 8).
 *
 *   build/release/bench_plan_sim [time_limit_s] [cluster...]    (run from the repo root)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "core/core.h"
#include "flow/flow.h"
#include "plan/plan.h"
#include "sim/sim.h"
#include "sim/trace.h"

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

static const double SCAN[] = {0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0};
#define N_SCAN ((int)(sizeof(SCAN) / sizeof(SCAN[0])))
#define BISECT 3

struct env {
    const struct model_profile *m;
    const struct model_throughput *tp;
    const struct machine_profiles *mp;
    const struct sim_trace_data *td;
};

struct row {
    int ok;
    double flow;
    int depth;
    double plan_s;
    double off_tps, off_decode_mean;
    double on_tps;
    struct sim_latency on_prompt, on_decode;
    double light_p50;
    double sustained;     /* p50 decode <= 2x its own light-load value */
    double slo;           /* the cluster's absolute SLO: 2x Helix's light-load p50 */
    double sustained_slo; /* p50 decode <= slo */
};

static int run_sim(const struct env *e, const struct sim_cluster *sc, const struct layout *l,
                   enum sim_mode mode, double rate, int64_t duration, struct sim_result *res)
{
    struct sim_config c;
    sim_config_defaults(&c, mode, SIM_POLICY_MAXFLOW);
    sim_quirks_set(&c.quirks, SIM_FIDELITY_HELIX);
    c.model = e->m;
    c.tp = e->tp;
    c.cluster = sc;
    c.layout = l;
    c.trace_data = e->td;
    c.rate_tok_s = rate;
    if (duration > 0) {
        c.duration_s = duration;
    }
    c.initial_queries = 20;
    struct hx_diag d = {0};
    int rc = sim_run(&c, res, &d);
    if (rc != HX_OK) {
        fprintf(stderr, "bench_plan_sim: %s\n", d.msg);
    }
    return rc;
}

/* p50 decode latencies already simulated for one placement (the two sustained rules share
 * most of their runs) */
struct memo {
    int n;
    double rate[64];
    double p50[64];
};

/* p50 decode latency at rate (600 s trace); INFINITY if the run fails. */
static double p50_at(const struct env *e, const struct sim_cluster *sc, const struct layout *l,
                     double rate, struct memo *mm)
{
    for (int i = 0; i < mm->n; i++) {
        if (fabs(mm->rate[i] - rate) < 1e-9 * rate) {
            return mm->p50[i];
        }
    }
    struct sim_result res;
    double v = INFINITY;
    if (run_sim(e, sc, l, SIM_MODE_ONLINE, rate, 600, &res) == HX_OK) {
        v = res.decode.n > 0 ? res.decode.p50 : INFINITY;
        sim_result_release(&res);
    }
    if (mm->n < 64) {
        mm->rate[mm->n] = rate;
        mm->p50[mm->n] = v;
        mm->n++;
    }
    return v;
}

/* Highest rate with p50 decode latency <= limit: the SCAN grid up to the first failure, then
 * BISECT bisection steps between the last pass and the first failure. */
static double sustained(const struct env *e, const struct sim_cluster *sc, const struct layout *l,
                        double helix_rate, double limit, struct memo *mm)
{
    double pass = 0.0;
    double fail = 0.0;
    for (int a = 0; a < N_SCAN; a++) {
        double rate = SCAN[a] * helix_rate;
        if (p50_at(e, sc, l, rate, mm) <= limit) {
            pass = rate;
        } else {
            fail = rate;
            break;
        }
    }
    for (int b = 0; b < BISECT && fail > 0 && pass > 0; b++) {
        double mid = 0.5 * (pass + fail);
        if (p50_at(e, sc, l, mid, mm) <= limit) {
            pass = mid;
        } else {
            fail = mid;
        }
    }
    return pass;
}

/* slo: the absolute p50 decode SLO of the cluster (2x Helix's placement's light-load p50);
 * <= 0 for Helix's own row, which sets it */
static void measure(const struct env *e, const struct sim_cluster *sc, const struct layout *l,
                    double helix_rate, double slo, struct row *r)
{
    struct sim_result res;
    r->ok = 1;
    if (run_sim(e, sc, l, SIM_MODE_OFFLINE, 0, 0, &res) != HX_OK) {
        r->ok = 0;
        return;
    }
    r->off_tps = res.decode_throughput;
    r->off_decode_mean = res.decode.mean;
    sim_result_release(&res);
    if (run_sim(e, sc, l, SIM_MODE_ONLINE, helix_rate, 0, &res) != HX_OK) {
        r->ok = 0;
        return;
    }
    r->on_tps = res.decode_throughput;
    r->on_prompt = res.prompt;
    r->on_decode = res.decode;
    sim_result_release(&res);
    struct memo mm;
    memset(&mm, 0, sizeof(mm));
    r->light_p50 = p50_at(e, sc, l, 0.1 * helix_rate, &mm);
    r->sustained = sustained(e, sc, l, helix_rate, 2.0 * r->light_p50, &mm);
    r->slo = slo > 0 ? slo : 2.0 * r->light_p50;
    r->sustained_slo = slo > 0 ? sustained(e, sc, l, helix_rate, slo, &mm) : r->sustained;
}

static int sc_depth(const struct sim_cluster *sc)
{
    int n = sc->n_nodes;
    int *best = xcalloc((size_t)n + 1, sizeof(int));
    int changed = 1;
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

static double now_fn(void *user)
{
    (void)user;
    return hx_clock_now();
}

static int served_fn(void *user, const struct plan_problem *p, const struct layout *l,
                     double *value, struct hx_diag *diag)
{
    const struct env *e = user;
    return sim_served_offline(p->model, p->tp, p->mp, p->cluster, l, p->conn, e->td,
                              SIM_FIDELITY_HELIX, 20, 0.0, 1, value, diag);
}

static void print_row(const char *cl, const char *method, const struct row *r, const struct row *h)
{
    if (!r->ok) {
        printf("| %s | %s | simulation failed |\n", cl, method);
        return;
    }
    printf("| %s | %s | %.1f | %d | %.1f | %.2f× | %.1f | %.2f / %.2f | %.3f / %.3f | %.0f | "
           "%.2f× | %.0f | %.2f× | %.1f |\n",
           cl, method, r->flow, r->depth, r->off_tps,
           h && h->off_tps > 0 ? r->off_tps / h->off_tps : 1.0, r->on_tps, r->on_prompt.p50,
           r->on_prompt.p95, r->on_decode.p50, r->on_decode.p95, r->sustained,
           h && h->sustained > 0 ? r->sustained / h->sustained : 1.0, r->sustained_slo,
           h && h->sustained_slo > 0 ? r->sustained_slo / h->sustained_slo : 1.0, r->plan_s);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    double limit = argc > 1 ? atof(argv[1]) : 60.0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int jobs = ncpu < 1 ? 1 : (ncpu > 8 ? 8 : (int)ncpu); /* as helix plan's --jobs default */
    double t_start = hx_clock_now();
    char slo_line[512] = "";
    size_t slo_len = 0;
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
    printf("# llama2_70b, max-flow scheduling, fidelity helix, seed 0; plan time limit %.0f s\n",
           limit);
    printf("# offline: 20 initial queries, 60 + 600 s; online: Helix's rate, 1800 s; "
           "sustained: highest rate with p50 decode <= 2x its value at 0.1x Helix's rate; "
           "at SLO: p50 decode <= 2x Helix's placement's value at 0.1x (600 s traces, scan + "
           "%d bisections); plan: %d jobs\n\n",
           BISECT, jobs);
    printf("| cluster | method | max-flow | depth | offline tok/s | × helix | online tok/s | "
           "prompt p50 / p95 s | decode p50 / p95 s | sustained tok/s | × helix | at SLO tok/s | "
           "× helix | plan s |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
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
        struct env e = {m, tp, mp, &td};
        struct row h;
        memset(&h, 0, sizeof(h));
        /* Helix's stored ILP layout (sets the cluster's SLO) */
        {
            char scp[256];
            char lp[256];
            snprintf(scp, sizeof(scp), "%s/ilp_simulator_cluster.ini", cc->stored);
            snprintf(lp, sizeof(lp), "%s/ilp_sol.ini", cc->stored);
            struct sim_cluster *sc = NULL;
            struct layout *l = NULL;
            if (sim_cluster_read_file(scp, &sc, &d) == HX_OK &&
                layout_read_file(lp, c->n_nodes, &l, &d) == HX_OK) {
                flow_planner_max_flow(c, l, m, tp, mp, LAYOUT_STRICT, &h.flow, NULL, &d);
                h.depth = sc_depth(sc);
                measure(&e, sc, l, cc->rate, 0.0, &h);
                print_row(cc->name, "helix-ilp*", &h, NULL);
                int w = snprintf(slo_line + slo_len, sizeof(slo_line) - slo_len, "%s%s %.3f s",
                                 slo_len ? ", " : "", cc->name, h.slo);
                if (w > 0 && (size_t)w < sizeof(slo_line) - slo_len) {
                    slo_len += (size_t)w;
                }
            } else {
                fprintf(stderr, "bench_plan_sim: %s\n", d.msg);
            }
            sim_cluster_free(sc);
            layout_free(l);
        }
        static const struct {
            const char *name;
            enum plan_method method;
            enum plan_objective obj;
        } methods[] = {
            {"auto served", PLAN_METHOD_AUTO, PLAN_OBJECTIVE_SERVED},
            {"auto maxflow", PLAN_METHOD_AUTO, PLAN_OBJECTIVE_MAXFLOW},
            {"petals", PLAN_METHOD_PETALS, PLAN_OBJECTIVE_MAXFLOW},
            {"swarm", PLAN_METHOD_SWARM, PLAN_OBJECTIVE_MAXFLOW},
        };
        for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]); k++) {
            enum layout_connectivity conn =
                methods[k].method == PLAN_METHOD_PETALS ? LAYOUT_PARTIAL : LAYOUT_STRICT;
            struct plan_problem p = {.cluster = c, .model = m, .tp = tp, .mp = mp, .conn = conn};
            struct plan_options o;
            plan_options_init(&o);
            o.method = methods[k].method;
            o.objective = methods[k].obj;
            o.served = served_fn;
            o.served_user = &e;
            o.time_limit_s = limit;
            o.now = now_fn;
            o.jobs = jobs;
            struct plan_result pr;
            memset(&pr, 0, sizeof(pr));
            hx_diag_clear(&d);
            double t0 = hx_clock_now();
            if (plan_solve(&p, &o, &pr, &d) != HX_OK) {
                printf("| %s | %s | plan failed: %s |\n", cc->name, methods[k].name, d.msg);
                continue;
            }
            struct row r;
            memset(&r, 0, sizeof(r));
            r.plan_s = hx_clock_now() - t0;
            struct sim_cluster *sc = NULL;
            if (sim_cluster_generate(c, pr.layout, m, mp, conn, &sc, &d) != HX_OK) {
                printf("| %s | %s | sim cluster failed: %s |\n", cc->name, methods[k].name, d.msg);
                plan_result_release(&pr);
                continue;
            }
            r.flow = pr.objective;
            r.depth = sc_depth(sc);
            measure(&e, sc, pr.layout, cc->rate, h.ok ? h.slo : 0.0, &r);
            print_row(cc->name, methods[k].name, &r, &h);
            sim_cluster_free(sc);
            plan_result_release(&pr);
        }
        model_throughput_free(tp);
        cluster_free(c);
    }
    printf("\n# at SLO: p50 decode limit = 2x Helix's placement's light-load value: %s\n",
           slo_line);
    printf("# helix-ilp*: Helix's stored ILP solution (data/layouts/<cluster>_70b/ilp_*); "
           "plan s: wall seconds of plan_solve on this (shared) machine; total %.0f s\n",
           hx_clock_now() - t_start);
    sim_trace_data_release(&td);
    machine_profiles_free(mp);
    model_profile_free(m);
    return 0;
}
