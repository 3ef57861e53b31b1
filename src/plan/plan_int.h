/*
 * plan_int.h - shared internals of the plan module: a dense per-node capacity table and the
 * link capacities of the planner graph (§2.1), built once per problem, so the search loops of
 * auto.c never touch the cluster/model structures.
 */
#ifndef HX_PLAN_PLAN_INT_H
#define HX_PLAN_PLAN_INT_H

#include "plan/plan.h"

struct plan_tab {
    int n;       /* compute nodes */
    int L;       /* model layers */
    int kmax;    /* largest max_layers over nodes */
    int *maxk;   /* [n] max layers (0 = unknown type) */
    int *gpu;    /* [n] model gpu index */
    double *cap; /* [n * (kmax + 1)]: cap(i, k) at i * (kmax + 1) + k; k = 0 unused */
    double *lc;  /* [n * n] compute link capacity i->j (tokens/s), 0 if no link */
    double *src; /* [n] source -> i capacity, 0 if no link */
    double *snk; /* [n] i -> sink capacity, 0 if no link */
};

int plan_tab_init(struct plan_tab *t, const struct plan_problem *p, struct hx_diag *diag);
void plan_tab_release(struct plan_tab *t);

static inline double plan_tab_cap(const struct plan_tab *t, int i, int k)
{
    if (k < 1 || k > t->maxk[i]) {
        return -1.0;
    }
    return t->cap[(size_t)i * (size_t)(t->kmax + 1) + (size_t)k];
}

/* Best baseline layouts as candidates (owned by caller): returns count written to out[]. */
int plan_baselines_all(const struct plan_problem *p, int64_t seed, struct layout **out,
                       enum plan_method *which, int max_out);

/* auto (auto.c). */
int plan_auto(const struct plan_problem *p, const struct plan_options *o, struct plan_result *r,
              struct hx_diag *diag);
/* objective served (served.c): auto over depth bounds x layer caps, scored by o->served. */
int plan_served(const struct plan_problem *p, const struct plan_options *o, struct plan_result *r,
                struct hx_diag *diag);
/* milp (in auto.c: shares the warm-start code). */
int plan_milp(const struct plan_problem *p, const struct plan_options *o, const struct layout *warm,
              double elapsed0, struct plan_result *r, struct hx_diag *diag);

double plan_now(const struct plan_options *o);

/*
 * Exact decision in the link-free relaxation, strict connectivity (exact.c): *answer = 0 if no
 * placement reaches throughput F (then F is an upper bound), 1 if one does (*out, may be NULL,
 * receives it), -1 if the search budget (DFS steps) or the time (o->now past deadline; o may be
 * NULL) ran out. HX_ENOTSUP for clusters it does
 * not handle (more than 24 nodes, partial connectivity).
 */
int plan_exact_decide(const struct plan_problem *p, double F, long budget,
                      const struct plan_options *o, double deadline, struct layout **out,
                      int *answer, struct hx_diag *diag);

#endif
