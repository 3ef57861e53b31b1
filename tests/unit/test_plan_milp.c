/*
 * test_plan_milp.c - the solver-neutral MILP API on both backends (CBC, GLPK): random
 * knapsacks against brute force, mixed models with a hand-derived optimum, infeasible and
 * unbounded models, start solutions, time limits, the GLPK progress callback.
 */
#include <math.h>
#include <stdint.h>

#include "base/status.h"
#include "plan/milp.h"
#include "test.h"

static const enum milp_backend backends[] = {MILP_BACKEND_CBC, MILP_BACKEND_GLPK};

static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* 0/1 knapsack with n items, optionally a second (volume) constraint. */
struct knap {
    int n;
    double w[16], v[16], u[16];
    double cap, vcap;
    int two;
};

static void knap_random(struct knap *k, uint64_t *s, int n, int two)
{
    k->n = n;
    k->two = two;
    double tw = 0, tu = 0;
    for (int i = 0; i < n; i++) {
        k->w[i] = (double)(1 + rng_next(s) % 30);
        k->v[i] = (double)(1 + rng_next(s) % 50);
        k->u[i] = (double)(1 + rng_next(s) % 20);
        tw += k->w[i];
        tu += k->u[i];
    }
    k->cap = floor(tw * 0.4);
    k->vcap = floor(tu * 0.5);
}

static double knap_brute(const struct knap *k)
{
    double best = 0;
    for (unsigned mask = 0; mask < (1u << k->n); mask++) {
        double w = 0, v = 0, u = 0;
        for (int i = 0; i < k->n; i++) {
            if (mask & (1u << i)) {
                w += k->w[i];
                v += k->v[i];
                u += k->u[i];
            }
        }
        if (w <= k->cap && (!k->two || u <= k->vcap) && v > best) {
            best = v;
        }
    }
    return best;
}

static struct milp_model *knap_model(const struct knap *k)
{
    struct milp_model *m = NULL;
    ASSERT_OK(milp_model_new(MILP_SENSE_MAXIMIZE, &m));
    int idx[16];
    for (int i = 0; i < k->n; i++) {
        idx[i] = milp_col_add(m, 0, 1, k->v[i], MILP_VAR_BINARY, NULL);
        ASSERT_EQ(idx[i], i);
    }
    ASSERT_EQ(milp_row_add(m, (size_t)k->n, idx, k->w, -INFINITY, k->cap, "weight"), 0);
    if (k->two) {
        ASSERT_EQ(milp_row_add(m, (size_t)k->n, idx, k->u, -INFINITY, k->vcap, "volume"), 1);
    }
    return m;
}

TEST(plan_milp_knapsack_matches_bruteforce)
{
    uint64_t s = 12345;
    for (int t = 0; t < 24; t++) {
        struct knap k;
        knap_random(&k, &s, 6 + t % 9, t % 2);
        double want = knap_brute(&k);
        struct milp_model *m = knap_model(&k);
        for (size_t b = 0; b < 2; b++) {
            struct milp_result r;
            struct hx_diag d = {0};
            ASSERT_OK(milp_solve(m, backends[b], NULL, &r, &d));
            ASSERT_MSG(r.status == MILP_STATUS_OPTIMAL, "%s: %s", milp_backend_name(backends[b]),
                       milp_status_name(r.status));
            ASSERT_DBL_NEAR(r.objective, want, 1e-6);
            ASSERT_DBL_NEAR(r.bound, want, 1e-6 * (1 + want));
            ASSERT_LE(r.gap, 1e-6);
            ASSERT_EQ(r.n_cols, (size_t)k.n);
            double obj = 0;
            ASSERT_OK(milp_model_check(m, r.x, 1e-6, &obj, NULL));
            ASSERT_DBL_NEAR(obj, want, 1e-6);
            milp_result_release(&r);
        }
        milp_model_free(m);
    }
}

/*
 * min  x + 2y - 3z   with x continuous in [-5, 5], y integer >= 0, z binary,
 *      x + y + z == 2.5, y - x >= 1, x + 4z <= 3.
 * z = 1: x <= -1, y = 1.5 - x integer and >= 1 + x: x in {-1.5, -2.5, ...} (x >= -5);
 *        objective x + 2(1.5 - x) - 3 = -x: minimised at x = -1.5 -> 1.5.
 * z = 0: y = 2.5 - x, y >= 1 + x -> x <= 0.75, x <= 3; y integer -> x = 0.5 - ... ;
 *        objective x + 5 - 2x = 5 - x, minimised at the largest x = 0.5 -> 4.5.
 * Optimum 1.5 at (x, y, z) = (-1.5, 3, 1).
 */
static struct milp_model *mixed_model(enum milp_sense sense)
{
    struct milp_model *m = NULL;
    ASSERT_OK(milp_model_new(sense, &m));
    double sg = sense == MILP_SENSE_MINIMIZE ? 1.0 : -1.0;
    ASSERT_EQ(milp_col_add(m, -5, 5, sg * 1, MILP_VAR_CONTINUOUS, "x"), 0);
    ASSERT_EQ(milp_col_add(m, 0, INFINITY, sg * 2, MILP_VAR_INTEGER, "y"), 1);
    ASSERT_EQ(milp_col_add(m, 0, 1, sg * -3, MILP_VAR_BINARY, "z"), 2);
    int i3[3] = {0, 1, 2};
    double a1[3] = {1, 1, 1};
    ASSERT_EQ(milp_row_add(m, 3, i3, a1, 2.5, 2.5, "sum"), 0);
    int i2[2] = {1, 0};
    double a2[2] = {1, -1};
    ASSERT_EQ(milp_row_add(m, 2, i2, a2, 1, INFINITY, "gap"), 1);
    int i4[3] = {0, 2, 2}; /* duplicate index: 2z + 2z = 4z */
    double a4[3] = {1, 2, 2};
    ASSERT_EQ(milp_row_add(m, 3, i4, a4, -INFINITY, 3, "cap"), 2);
    return m;
}

TEST(plan_milp_mixed_model_both_senses)
{
    for (int sense = 0; sense < 2; sense++) {
        struct milp_model *m = mixed_model(sense ? MILP_SENSE_MINIMIZE : MILP_SENSE_MAXIMIZE);
        ASSERT_EQ(milp_model_n_cols(m), 3);
        ASSERT_EQ(milp_model_n_rows(m), 3);
        ASSERT_EQ(milp_model_n_int(m), 2);
        ASSERT_EQ(milp_model_n_bin(m), 1);
        ASSERT_STR_EQ(milp_col_name(m, 1), "y");
        ASSERT_STR_EQ(milp_row_name(m, 2), "cap");
        double want = sense ? 1.5 : -1.5;
        for (size_t b = 0; b < 2; b++) {
            struct milp_result r;
            ASSERT_OK(milp_solve(m, backends[b], NULL, &r, NULL));
            ASSERT_EQ(r.status, MILP_STATUS_OPTIMAL);
            ASSERT_DBL_NEAR(r.objective, want, 1e-7);
            ASSERT_DBL_NEAR(r.bound, want, 1e-6);
            ASSERT_DBL_NEAR(r.x[0], -1.5, 1e-7);
            ASSERT_DBL_NEAR(r.x[1], 3, 1e-7);
            ASSERT_DBL_NEAR(r.x[2], 1, 1e-7);
            milp_result_release(&r);
        }
        milp_model_free(m);
    }
}

TEST(plan_milp_infeasible_and_unbounded)
{
    /* x + y >= 3 with x, y binary: infeasible (the LP relaxation too). */
    struct milp_model *m = NULL;
    ASSERT_OK(milp_model_new(MILP_SENSE_MAXIMIZE, &m));
    milp_col_add(m, 0, 1, 1, MILP_VAR_BINARY, "x");
    milp_col_add(m, 0, 1, 1, MILP_VAR_BINARY, "y");
    int idx[2] = {0, 1};
    double one[2] = {1, 1};
    milp_row_add(m, 2, idx, one, 3, INFINITY, NULL);
    /* 2x + 2y == 1 is LP-feasible but integer-infeasible. */
    struct milp_model *m2 = NULL;
    ASSERT_OK(milp_model_new(MILP_SENSE_MAXIMIZE, &m2));
    milp_col_add(m2, 0, 5, 1, MILP_VAR_INTEGER, "x");
    milp_col_add(m2, 0, 5, 1, MILP_VAR_INTEGER, "y");
    double two[2] = {2, 2};
    milp_row_add(m2, 2, idx, two, 1, 1, NULL);
    /* max x + y with x - y <= 1, x, y >= 0 integer: unbounded. */
    struct milp_model *m3 = NULL;
    ASSERT_OK(milp_model_new(MILP_SENSE_MAXIMIZE, &m3));
    milp_col_add(m3, 0, INFINITY, 1, MILP_VAR_INTEGER, "x");
    milp_col_add(m3, 0, INFINITY, 1, MILP_VAR_INTEGER, "y");
    double pm[2] = {1, -1};
    milp_row_add(m3, 2, idx, pm, -INFINITY, 1, NULL);
    for (size_t b = 0; b < 2; b++) {
        struct milp_result r;
        ASSERT_OK(milp_solve(m, backends[b], NULL, &r, NULL));
        ASSERT_EQ(r.status, MILP_STATUS_INFEASIBLE);
        ASSERT(r.x == NULL);
        ASSERT(isnan(r.objective));
        ASSERT_OK(milp_solve(m2, backends[b], NULL, &r, NULL));
        ASSERT_MSG(r.status == MILP_STATUS_INFEASIBLE, "%s: %s", milp_backend_name(backends[b]),
                   milp_status_name(r.status));
        ASSERT(r.x == NULL);
        ASSERT_OK(milp_solve(m3, backends[b], NULL, &r, NULL));
        ASSERT_MSG(r.status == MILP_STATUS_UNBOUNDED, "%s: %s", milp_backend_name(backends[b]),
                   milp_status_name(r.status));
        milp_result_release(&r);
    }
    milp_model_free(m);
    milp_model_free(m2);
    milp_model_free(m3);
}

TEST(plan_milp_rejects_bad_input)
{
    struct milp_model *m = NULL;
    ASSERT_OK(milp_model_new(MILP_SENSE_MINIMIZE, &m));
    ASSERT_EQ(milp_col_add(m, 1, 0, 0, MILP_VAR_CONTINUOUS, NULL), HX_EINVAL);
    ASSERT_EQ(milp_col_add(m, NAN, 0, 0, MILP_VAR_CONTINUOUS, NULL), HX_EINVAL);
    ASSERT_EQ(milp_col_add(m, 0, 1, INFINITY, MILP_VAR_CONTINUOUS, NULL), HX_EINVAL);
    ASSERT_EQ(milp_col_add(m, 2, 3, 0, MILP_VAR_BINARY, NULL), HX_EINVAL);
    struct milp_result r;
    ASSERT_EQ(milp_solve(m, MILP_BACKEND_CBC, NULL, &r, NULL), HX_EINVAL); /* no columns */
    ASSERT_EQ(r.status, MILP_STATUS_NOT_SOLVED);
    ASSERT_EQ(milp_col_add(m, 0, 1, 1, MILP_VAR_CONTINUOUS, NULL), 0);
    ASSERT_STR_EQ(milp_col_name(m, 0), "c0");
    int bad = 1;
    double one = 1;
    ASSERT_EQ(milp_row_add(m, 1, &bad, &one, 0, 1, NULL), HX_EINVAL);
    int good = 0;
    ASSERT_EQ(milp_row_add(m, 1, &good, &one, -INFINITY, INFINITY, NULL), HX_EINVAL);
    ASSERT_EQ(milp_row_add(m, 1, &good, &one, 2, 1, NULL), HX_EINVAL);
    double x2[2] = {0, 0};
    ASSERT_EQ(milp_start_set(m, x2, 2), HX_EINVAL);
    struct milp_params p;
    milp_params_init(&p);
    p.threads = 0;
    struct hx_diag d = {0};
    ASSERT_EQ(milp_solve(m, MILP_BACKEND_GLPK, &p, &r, &d), HX_EINVAL);
    ASSERT(strstr(d.msg, "threads") != NULL);
    enum milp_backend be;
    ASSERT_OK(milp_backend_parse("glpk", &be));
    ASSERT_EQ(be, MILP_BACKEND_GLPK);
    ASSERT_EQ(milp_backend_parse("gurobi", &be), HX_EINVAL);
    milp_model_free(m);
}

/*
 * A multi-constraint knapsack with 60 items: big enough that neither solver proves it in a
 * few milliseconds. The optimum is first found with a generous limit; then, under a tiny
 * limit, a start equal to that optimum must come back (the start is honoured).
 */
static struct milp_model *hard_model(uint64_t seed, int n)
{
    uint64_t s = seed;
    struct milp_model *m = NULL;
    ASSERT_OK(milp_model_new(MILP_SENSE_MAXIMIZE, &m));
    int idx[64];
    for (int i = 0; i < n; i++) {
        idx[i] = milp_col_add(m, 0, 1, (double)(20 + rng_next(&s) % 80), MILP_VAR_BINARY, NULL);
    }
    for (int c = 0; c < 5; c++) {
        double w[64], tw = 0;
        for (int i = 0; i < n; i++) {
            w[i] = (double)(5 + rng_next(&s) % 60);
            tw += w[i];
        }
        milp_row_add(m, (size_t)n, idx, w, -INFINITY, floor(tw / 3), NULL);
    }
    return m;
}

TEST(plan_milp_start_solution_is_honoured)
{
    struct milp_model *m = hard_model(7, 60);
    struct milp_params p;
    milp_params_init(&p);
    p.time_limit_s = 5;
    p.rel_gap = 1e-3;
    struct milp_result ref;
    ASSERT_OK(milp_solve(m, MILP_BACKEND_CBC, &p, &ref, NULL));
    ASSERT(ref.x != NULL);
    double start_obj = 0;
    ASSERT_OK(milp_model_check(m, ref.x, 1e-6, &start_obj, NULL));
    /* Round the binaries so the start is exactly integral. */
    for (size_t j = 0; j < ref.n_cols; j++) {
        ref.x[j] = nearbyint(ref.x[j]);
    }
    ASSERT_OK(milp_start_set(m, ref.x, ref.n_cols));
    for (size_t b = 0; b < 2; b++) {
        milp_params_init(&p);
        p.time_limit_s = 0.05;
        struct milp_result r;
        ASSERT_OK(milp_solve(m, backends[b], &p, &r, NULL));
        ASSERT(r.status == MILP_STATUS_FEASIBLE || r.status == MILP_STATUS_OPTIMAL);
        ASSERT(r.start_used);
        ASSERT_GE(r.objective, start_obj - 1e-6);
        ASSERT_LE(r.solve_s, 5.0);
        milp_result_release(&r);
    }
    /* An infeasible start is refused by the GLPK backend (it would take it unchecked). */
    for (size_t j = 0; j < ref.n_cols; j++) {
        ref.x[j] = 1;
    }
    ASSERT_OK(milp_start_set(m, ref.x, ref.n_cols));
    struct hx_diag d = {0};
    ASSERT_EQ(milp_model_check(m, ref.x, 1e-6, NULL, &d), HX_EINFEASIBLE);
    ASSERT(strstr(d.msg, "row r0") != NULL);
    milp_params_init(&p);
    p.time_limit_s = 2;
    struct milp_result r;
    ASSERT_OK(milp_solve(m, MILP_BACKEND_GLPK, &p, &r, NULL));
    ASSERT(!r.start_used);
    if (r.x) {
        ASSERT_OK(milp_model_check(m, r.x, 1e-6, NULL, NULL));
    }
    milp_result_release(&r);
    milp_result_release(&ref);
    milp_model_free(m);
}

struct progress_log {
    int calls;
    int stop_after;
    double last_elapsed;
    double last_inc;
};

static int on_progress(void *user, double elapsed_s, double incumbent, double bound)
{
    struct progress_log *pl = user;
    pl->calls++;
    ASSERT_GE(elapsed_s, pl->last_elapsed);
    pl->last_elapsed = elapsed_s;
    if (!isnan(incumbent)) {
        pl->last_inc = incumbent;
        if (!isnan(bound)) {
            ASSERT_GE(bound, incumbent - 1e-6); /* maximisation: bound above incumbent */
        }
    }
    return pl->stop_after > 0 && pl->calls >= pl->stop_after;
}

TEST(plan_milp_glpk_progress_and_stop)
{
    struct milp_model *m = hard_model(11, 60);
    struct milp_params p;
    milp_params_init(&p);
    p.time_limit_s = 10;
    struct progress_log pl = {.stop_after = 3};
    p.progress = on_progress;
    p.progress_user = &pl;
    struct milp_result r;
    ASSERT_OK(milp_solve(m, MILP_BACKEND_GLPK, &p, &r, NULL));
    ASSERT_EQ(pl.calls, 3);
    ASSERT(r.status == MILP_STATUS_FEASIBLE || r.status == MILP_STATUS_NO_SOLUTION);
    milp_result_release(&r);
    milp_model_free(m);
}

TEST(plan_milp_time_limit_is_wall_clock)
{
    /* 2 threads on CBC: a CPU-time limit would expire after about half the wall time. */
    struct milp_model *m = hard_model(3, 64);
    struct milp_params p;
    milp_params_init(&p);
    p.time_limit_s = 0.5;
    p.threads = 2;
    for (size_t b = 0; b < 2; b++) {
        struct milp_result r;
        ASSERT_OK(milp_solve(m, backends[b], &p, &r, NULL));
        ASSERT_LE(r.solve_s, 3.0);
        if (r.status == MILP_STATUS_FEASIBLE) {
            /* stopped by the limit: not before 0.5 s of wall time (a CPU-time limit with two
             * busy threads would stop at about 0.25 s) */
            ASSERT_GE(r.solve_s, 0.45);
            ASSERT_GE(r.bound, r.objective - 1e-6);
            ASSERT(r.gap >= 0);
        } else {
            ASSERT_EQ(r.status, MILP_STATUS_OPTIMAL);
        }
        milp_result_release(&r);
    }
    milp_model_free(m);
}
