/*
 * served.c - the served-throughput objective (docs/planning.md, "Served throughput").
 *
 * Max-flow is a proxy: deeper pipelines add per-token latency, and layers packed onto a node
 * take the memory its KV cache needs, so the placement with the highest max-flow can serve
 * fewer tokens (KV-bounded concurrency / per-token latency). The search: auto (which
 * maximises max-flow) run under restrictions that trade max-flow for served tokens - a
 * pipeline depth bound (plan_options.max_stages) and a per-node layer cap
 * (plan_options.layer_cap_pct) - and every resulting placement scored by the caller's scorer
 * (the CLI simulates it). First a coarse grid (depth = fractions of the unrestricted depth x
 * caps), then a hill climb over neighbouring (depth, cap, auto seed) of the best. The
 * unrestricted max-flow placement is always a candidate, so served never loses to it under
 * the scorer.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "core/cluster.h"
#include "plan/plan.h"
#include "plan/plan_int.h"

static const double DEPTH_FRAC[] = {1.0, 0.85, 0.7, 0.6, 0.5, 0.4, 0.3};
static const int LAYER_CAP[] = {100, 75};
#define N_DEPTH ((int)(sizeof(DEPTH_FRAC) / sizeof(DEPTH_FRAC[0])))
#define N_CAP ((int)(sizeof(LAYER_CAP) / sizeof(LAYER_CAP[0])))
#define MAX_TRIED 64
#define MAX_REFINE 14

struct served_search {
    const struct plan_problem *p;
    const struct plan_options *o;
    double t0;
    double deadline; /* for the auto runs (the last one may overrun by its share) */
    int tried_d[MAX_TRIED];
    int tried_c[MAX_TRIED];
    int tried_s[MAX_TRIED];
    int n_tried;
    int scored;
    struct layout *best;
    double best_v;
    double best_flow;
    int best_depth; /* measured depth of best */
    int best_ms;    /* the bound it was found under (0 = none) */
    int best_cap;
    int best_seed; /* offset added to o->seed */
    int last_rc;
    struct hx_diag last;
};

static int tried(const struct served_search *s, int ms, int cap, int seed)
{
    for (int a = 0; a < s->n_tried; a++) {
        if (s->tried_d[a] == ms && s->tried_c[a] == cap && s->tried_s[a] == seed) {
            return 1;
        }
    }
    return 0;
}

/* One candidate: auto under (ms, cap) with seed o->seed + seed, scored. Returns its
 * measured depth (0 if none). */
static int try_one(struct served_search *s, int ms, int cap, int seed, int runs_left)
{
    if (s->n_tried >= MAX_TRIED || tried(s, ms, cap, seed)) {
        return 0;
    }
    s->tried_d[s->n_tried] = ms;
    s->tried_c[s->n_tried] = cap;
    s->tried_s[s->n_tried] = seed;
    s->n_tried++;
    const struct plan_options *o = s->o;
    struct plan_options ao = *o;
    ao.objective = PLAN_OBJECTIVE_MAXFLOW;
    ao.method = PLAN_METHOD_AUTO;
    ao.layer_cap_pct = cap;
    ao.max_stages = ms;
    ao.seed = o->seed + seed;
    ao.progress = NULL;
    if (o->max_evals <= 0) {
        /* a fraction of auto's default budget (scaled as in auto.c): the max-flow optimum
         * under each restriction matters less than trying many restrictions */
        double n = (double)s->p->cluster->n_nodes;
        long b = (long)(2.0e9 / (n * n + 200.0 * n)) / 8;
        ao.max_evals = b < 2000 ? 2000 : b;
    }
    if (o->now) {
        double left = s->deadline - plan_now(o);
        if (left <= 0.2) {
            return 0;
        }
        /* runs normally end on their evaluation budget; the time limit only guards a slow
         * (loaded) machine: a fair share, but never less than a third of what is left */
        double share = left / (double)(runs_left > 0 ? runs_left : 1);
        ao.time_limit_s = share > left / 3 ? share : left / 3;
    }
    struct plan_result ar;
    memset(&ar, 0, sizeof(ar));
    struct hx_diag d2 = {0};
    int rc = plan_auto(s->p, &ao, &ar, &d2);
    if (rc != HX_OK) {
        s->last = d2;
        s->last_rc = rc;
        plan_result_release(&ar);
        return 0;
    }
    int depth = plan_depth(s->p, ar.layout, NULL);
    double v = 0.0;
    rc = o->served(o->served_user, s->p, ar.layout, &v, &d2);
    if (rc == HX_OK) {
        s->scored++;
        if (o->progress) {
            char ph[80];
            snprintf(ph, sizeof(ph),
                     "served: max-stages %d, cap %d%%, seed +%d: depth %d, %.1f tok/s", ms, cap,
                     seed, depth, v);
            o->progress(o->progress_user, plan_now(o) - s->t0, ar.objective, v, ph);
        }
        if (v > s->best_v * (1 + 1e-9)) {
            layout_free(s->best);
            s->best = ar.layout;
            ar.layout = NULL;
            s->best_v = v;
            s->best_flow = ar.objective;
            s->best_depth = depth;
            s->best_ms = ms;
            s->best_cap = cap;
            s->best_seed = seed;
        }
    } else {
        s->last = d2;
        s->last_rc = rc;
    }
    plan_result_release(&ar);
    return depth;
}

int plan_served(const struct plan_problem *p, const struct plan_options *o, struct plan_result *r,
                struct hx_diag *diag)
{
    if (!o->served) {
        return hx_diag_set(diag, HX_EINVAL,
                           "objective 'served' needs a served-throughput scorer (helix plan "
                           "passes the simulator); use objective 'maxflow' without one");
    }
    struct served_search s;
    memset(&s, 0, sizeof(s));
    s.p = p;
    s.o = o;
    s.t0 = plan_now(o);
    s.best_v = -1.0;
    double total = o->time_limit_s > 0 ? o->time_limit_s : 60.0;
    /* leave ~10 % for the scorer of the last candidates and the caller's checks */
    s.deadline = s.t0 + 0.9 * total;
    int grid = N_DEPTH * N_CAP;
    int budget_runs = grid + MAX_REFINE;
    /* 1. coarse grid: depth bounds as fractions of the unrestricted depth x layer caps */
    int d0 = 0;
    for (int ci = 0; ci < N_CAP; ci++) {
        for (int di = 0; di < N_DEPTH; di++) {
            int run = ci * N_DEPTH + di;
            int ms = o->max_stages;
            if (di > 0) {
                if (d0 <= 0) {
                    break;
                }
                ms = (int)floor(DEPTH_FRAC[di] * d0);
                if (o->max_stages > 0 && ms > o->max_stages) {
                    ms = o->max_stages;
                }
                if (ms < 1) {
                    break;
                }
            }
            int depth = try_one(&s, ms, LAYER_CAP[ci], 0, budget_runs - run);
            if (ci == 0 && di == 0) {
                d0 = depth;
            }
        }
    }
    /* 2. hill climb over neighbouring restrictions of the best (depth +-1, +-2, cap +-12 %)
     * and other seeds of auto under the best restriction (its placements differ) */
    int refine = 0;
    int improved = 1;
    while (improved && s.best && refine < MAX_REFINE) {
        improved = 0;
        int bd = s.best_ms > 0 ? s.best_ms : s.best_depth;
        int bc = s.best_cap;
        int bs = s.best_seed;
        const int nd[8][3] = {{bd - 1, bc, bs}, {bd + 1, bc, bs},  {bd, bc, bs + 1},
                              {bd - 2, bc, bs}, {bd, bc - 12, bs}, {bd, bc + 12, bs},
                              {bd, bc, bs + 2}, {bd + 2, bc, bs}};
        for (int a = 0; a < 8 && refine < MAX_REFINE; a++) {
            int ms = nd[a][0];
            int cap = nd[a][1];
            int seed = nd[a][2];
            if (ms < 1 || cap < 25 || cap > 100 || (o->max_stages > 0 && ms > o->max_stages) ||
                tried(&s, ms, cap, seed)) {
                continue;
            }
            if (o->now && plan_now(o) >= s.deadline - 0.2) {
                break;
            }
            double before = s.best_v;
            refine++;
            try_one(&s, ms, cap, seed, MAX_REFINE - refine + 1);
            if (s.best_v > before) {
                improved = 1;
                break;
            }
        }
    }
    if (!s.best) {
        if (s.last_rc != HX_OK) {
            if (diag) {
                *diag = s.last;
            }
            return s.last_rc;
        }
        return hx_diag_set(diag, HX_EINFEASIBLE, "served: no candidate placement found");
    }
    r->method = PLAN_METHOD_AUTO;
    r->layout = s.best;
    r->objective = s.best_flow;
    r->served = s.best_v;
    r->candidates = s.scored;
    snprintf(r->detail, sizeof(r->detail),
             "objective served: best of %d candidates (auto under depth bounds x layer caps): "
             "max-stages %d, layer cap %d%%, seed +%d, depth %d, served %.2f tok/s",
             s.scored, s.best_ms, s.best_cap, s.best_seed, s.best_depth, s.best_v);
    return HX_OK;
}
