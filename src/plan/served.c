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
 * caps, and auto's KV/depth score modes: plan_options.kv_depth_exp, kv_sizing), then a hill
 * climb over neighbouring (auto seed, depth, cap, mode) of the best, drawing further seeds at
 * a local optimum while time is left. A deeper candidate must win by DEPTH_MARGIN per extra
 * stage (online latency grows with depth; docs/planning.md). The unrestricted max-flow
 * placement is always a candidate, so served never loses to it under the scorer by more than
 * that margin. Candidates run plan_options.jobs at a time, one thread each, and are committed
 * in a fixed order (deterministic without a clock, whatever jobs is).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "core/cluster.h"
#include "plan/plan.h"
#include "plan/plan_int.h"

/* auto's annealing score per mode: max-flow (0), or max-flow x (KV of the scarcest layer /
 * depth)^exp, with or without KV-maximising stage sizes (plan.h, kv_depth_exp, kv_sizing) */
static const double MODE_EXP[] = {0.0, 1.0, 1.0, 2.0};
static const int MODE_SIZING[] = {0, 0, 1, 0};
#define N_MODE ((int)(sizeof(MODE_EXP) / sizeof(MODE_EXP[0])))
/* the grid after the unrestricted max-flow placement: {mode, depth fraction, layer cap};
 * depth fraction 1 = no depth bound */
static const struct {
    int mode;
    double frac;
    int cap;
} GRID[] = {
    {0, 0.85, 100}, {0, 0.7, 100}, {0, 0.6, 100}, {0, 0.5, 100}, {0, 0.4, 100},
    {0, 0.3, 100},  {0, 1.0, 75},  {0, 0.7, 75},  {0, 0.5, 75},  {0, 0.4, 75},
    {1, 1.0, 100},  {2, 1.0, 100}, {3, 1.0, 100},
};
#define N_GRID ((int)(sizeof(GRID) / sizeof(GRID[0])))
#define MAX_TRIED 160
#define DEPTH_MARGIN 0.02
#define MAX_REFINE 20
#define MAX_JOBS 8

struct served_search {
    const struct plan_problem *p;
    const struct plan_options *o;
    double t0;
    double deadline; /* for the auto runs (the last one may overrun by its share) */
    int tried_d[MAX_TRIED];
    int tried_c[MAX_TRIED];
    int tried_s[MAX_TRIED];
    int tried_m[MAX_TRIED];
    int n_tried;
    int scored;
    struct layout *best;
    double best_v;
    double best_flow;
    int best_depth; /* measured depth of best */
    int best_ms;    /* the bound it was found under (0 = none) */
    int best_cap;
    int best_seed; /* offset added to o->seed */
    int best_mode; /* index into MODE_EXP */
    int last_rc;
    struct hx_diag last;
};

static int tried(const struct served_search *s, int ms, int cap, int seed, int mode)
{
    for (int a = 0; a < s->n_tried; a++) {
        if (s->tried_d[a] == ms && s->tried_c[a] == cap && s->tried_s[a] == seed &&
            s->tried_m[a] == mode) {
            return 1;
        }
    }
    return 0;
}

/* One candidate: auto in mode `mode` under (ms, cap) with seed o->seed + seed, scored. Prepared
 * and committed on the calling thread, run (auto + scorer) on its own thread when the batch
 * has several. */
struct cand {
    int ms, cap, seed, mode;
    struct plan_options ao;
    struct layout *lay;
    double flow;
    double v;
    int depth;
    int rc; /* of auto, or of the scorer */
    int scored_ok;
    struct hx_diag d;
};

/* Fill c for (ms, cap, seed, mode); 0 if it was tried already, the table is full or the
 * deadline has passed. share_runs: how many runs the time left is shared among. */
static int cand_prepare(struct served_search *s, struct cand *c, int ms, int cap, int seed,
                        int mode, int share_runs)
{
    if (s->n_tried >= MAX_TRIED || tried(s, ms, cap, seed, mode)) {
        return 0;
    }
    const struct plan_options *o = s->o;
    memset(c, 0, sizeof(*c));
    c->ms = ms;
    c->cap = cap;
    c->seed = seed;
    c->mode = mode;
    struct plan_options *ao = &c->ao;
    *ao = *o;
    ao->objective = PLAN_OBJECTIVE_MAXFLOW;
    ao->method = PLAN_METHOD_AUTO;
    ao->layer_cap_pct = cap;
    ao->max_stages = ms;
    ao->seed = o->seed + seed;
    ao->kv_depth_exp = MODE_EXP[mode];
    ao->kv_sizing = MODE_SIZING[mode];
    ao->progress = NULL;
    if (o->max_evals <= 0) {
        /* a fraction of auto's default budget (scaled as in auto.c): the max-flow optimum
         * under each restriction matters less than trying many restrictions */
        double n = (double)s->p->cluster->n_nodes;
        long b = (long)(2.0e9 / (n * n + 200.0 * n)) / 8;
        ao->max_evals = b < 2000 ? 2000 : b;
    }
    if (o->now) {
        double left = s->deadline - plan_now(o);
        if (left <= 0.2) {
            return 0;
        }
        /* runs normally end on their evaluation budget; the time limit only guards a slow
         * (loaded) machine: a fair share, but never less than a third of what is left */
        double share = left / (double)(share_runs > 0 ? share_runs : 1);
        ao->time_limit_s = share > left / 3 ? share : left / 3;
    }
    s->tried_d[s->n_tried] = ms;
    s->tried_c[s->n_tried] = cap;
    s->tried_s[s->n_tried] = seed;
    s->tried_m[s->n_tried] = mode;
    s->n_tried++;
    return 1;
}

struct cand_job {
    const struct plan_problem *p;
    const struct plan_options *o;
    struct cand *c;
};

/* auto + scorer; touches only c (and what the scorer's contract allows: plan.h) */
static void *cand_run(void *arg)
{
    struct cand_job *j = arg;
    struct cand *c = j->c;
    struct plan_result ar;
    memset(&ar, 0, sizeof(ar));
    c->rc = plan_auto(j->p, &c->ao, &ar, &c->d);
    if (c->rc == HX_OK) {
        c->depth = plan_depth(j->p, ar.layout, NULL);
        c->flow = ar.objective;
        c->rc = j->o->served(j->o->served_user, j->p, ar.layout, &c->v, &c->d);
        if (c->rc == HX_OK) {
            c->scored_ok = 1;
            c->lay = ar.layout;
            ar.layout = NULL;
        }
    }
    plan_result_release(&ar);
    return NULL;
}

/* Progress line and best-so-far update, in candidate order; frees what is not kept. */
static void cand_commit(struct served_search *s, struct cand *c)
{
    const struct plan_options *o = s->o;
    if (!c->scored_ok) {
        s->last = c->d;
        s->last_rc = c->rc;
        return;
    }
    s->scored++;
    if (o->progress) {
        char ph[80];
        snprintf(ph, sizeof(ph),
                 "served: mode %d, max-stages %d, cap %d%%, seed +%d: depth %d, %.1f tok/s",
                 c->mode, c->ms, c->cap, c->seed, c->depth, c->v);
        o->progress(o->progress_user, plan_now(o) - s->t0, c->flow, c->v, ph);
    }
    /* a deeper placement must win by DEPTH_MARGIN per extra stage (a shallower one may lose
     * as much): its per-token latency under online load grows with depth, which the offline
     * score does not see */
    double need = s->best_v * (1 + 1e-9 + DEPTH_MARGIN * (double)(c->depth - s->best_depth));
    if (!s->best || c->v > need) {
        layout_free(s->best);
        s->best = c->lay;
        c->lay = NULL;
        s->best_v = c->v;
        s->best_flow = c->flow;
        s->best_depth = c->depth;
        s->best_ms = c->ms;
        s->best_cap = c->cap;
        s->best_seed = c->seed;
        s->best_mode = c->mode;
    }
    layout_free(c->lay);
    c->lay = NULL;
}

/* Run n prepared candidates, up to o->jobs at once (the scorer must be thread-safe then:
 * plan.h), and commit them in order. */
static void run_batch(struct served_search *s, struct cand *cs, int n)
{
    struct cand_job jobs[MAX_JOBS];
    pthread_t th[MAX_JOBS];
    int started[MAX_JOBS] = {0};
    for (int i = 0; i < n; i++) {
        jobs[i].p = s->p;
        jobs[i].o = s->o;
        jobs[i].c = &cs[i];
    }
    for (int i = 1; i < n; i++) {
        started[i] = pthread_create(&th[i], NULL, cand_run, &jobs[i]) == 0;
        if (!started[i]) {
            cand_run(&jobs[i]); /* no thread to be had: run it here */
        }
    }
    if (n > 0) {
        cand_run(&jobs[0]);
    }
    for (int i = 1; i < n; i++) {
        if (started[i]) {
            pthread_join(th[i], NULL);
        }
    }
    for (int i = 0; i < n; i++) {
        cand_commit(s, &cs[i]);
    }
}

static int n_jobs(const struct plan_options *o)
{
    int j = o->jobs;
    return j < 1 ? 1 : (j > MAX_JOBS ? MAX_JOBS : j);
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
    int nj = n_jobs(o);
    /* with a clock the time limit ends the search (seeds keep being drawn while time is
     * left); without one (tests), the candidate budget does */
    int max_refine = (o->now ? 3 : 1) * MAX_REFINE * nj;
    int budget_runs = 1 + N_GRID + max_refine;
    struct cand cs[MAX_JOBS];
    /* 1. the unrestricted max-flow placement (always a candidate; alone: the grid is relative
     * to its depth), then the grid: depth bounds as fractions of the unrestricted depth,
     * layer caps, auto's KV/depth score modes; nj candidates at a time */
    if (cand_prepare(&s, &cs[0], o->max_stages, 100, 0, 0, budget_runs)) {
        run_batch(&s, cs, 1);
    }
    int d0 = s.best ? s.best_depth : 0;
    int nb = 0;
    for (int g = 0; g < N_GRID && d0 > 0; g++) {
        int ms = o->max_stages;
        if (GRID[g].frac < 1.0) {
            ms = (int)floor(GRID[g].frac * d0);
            if (o->max_stages > 0 && ms > o->max_stages) {
                ms = o->max_stages;
            }
            if (ms < 1) {
                continue;
            }
        }
        int share = (budget_runs - 1 - g) / nj;
        nb += cand_prepare(&s, &cs[nb], ms, GRID[g].cap, 0, GRID[g].mode, share);
        if (nb == nj || g == N_GRID - 1) {
            run_batch(&s, cs, nb);
            nb = 0;
        }
    }
    run_batch(&s, cs, nb);
    /* 2. hill climb around the best: other seeds of auto (its placements under one
     * restriction differ by 10-15 % in served tokens), depth +-1, +-2, cap +-12 %, the other
     * score modes; the first nj untried neighbours at a time, moving to the best when one
     * improves */
    int refine = 0;
    int extra = 0;
    while (s.best && refine < max_refine) {
        if (o->now && plan_now(o) >= s.deadline - 0.2) {
            break;
        }
        int bd = s.best_ms > 0 ? s.best_ms : s.best_depth;
        int bc = s.best_cap;
        int bs = s.best_seed;
        int bm = s.best_mode;
        const int nd[11][4] = {
            {bd, bc, bs + 1, bm},
            {bd - 1, bc, bs, bm},
            {bd, bc, bs + 2, bm},
            {bd + 1, bc, bs, bm},
            {bd, bc, bs + 3, bm},
            {bd - 2, bc, bs, bm},
            {bd, bc - 12, bs, bm},
            {bd, bc + 12, bs, bm},
            {bd + 2, bc, bs, bm},
            {bd, bc, bs, (bm + 1) % N_MODE},
            {bd, bc, bs, (bm + 2) % N_MODE},
        };
        nb = 0;
        for (int a = 0; a < 11 && nb < nj && refine + nb < max_refine; a++) {
            int ms = nd[a][0];
            int cap = nd[a][1];
            int seed = nd[a][2];
            int mode = nd[a][3];
            if (s.best_ms <= 0 && a != 1 && a != 3 && a != 5 && a != 8) {
                ms = s.best_ms; /* keep "no bound" when only the seed, cap or mode moves */
            }
            if ((ms < 1 && !(ms == 0 && s.best_ms <= 0)) || cap < 25 || cap > 100 ||
                (o->max_stages > 0 && ms > o->max_stages)) {
                continue;
            }
            nb += cand_prepare(&s, &cs[nb], ms, cap, seed, mode,
                               (max_refine - refine - nb + nj - 1) / nj);
        }
        /* a local optimum (every neighbour tried): while time is left, further seeds of the
         * best restriction (auto's seeds are the largest source of spread) */
        while (nb < nj && refine + nb < max_refine) {
            extra++;
            if (extra > MAX_TRIED) {
                break;
            }
            nb += cand_prepare(&s, &cs[nb], s.best_ms, bc, bs + 3 + extra, bm,
                               (max_refine - refine - nb + nj - 1) / nj);
            if (s.n_tried >= MAX_TRIED) {
                break;
            }
        }
        if (nb == 0) {
            break;
        }
        refine += nb;
        run_batch(&s, cs, nb);
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
             "objective served: best of %d candidates (auto under score modes x depth bounds x "
             "layer caps): mode %d (kv exp %.1f%s), max-stages %d, layer cap %d%%, seed +%d, "
             "depth %d, served %.2f tok/s",
             s.scored, s.best_mode, MODE_EXP[s.best_mode],
             MODE_SIZING[s.best_mode] ? ", kv sizing" : "", s.best_ms, s.best_cap, s.best_seed,
             s.best_depth, s.best_v);
    return HX_OK;
}
