/*
 * milp_cbc.c - the CBC backend of milp.h (COIN-OR CBC 2.10 through <coin/Cbc_C_Interface.h>).
 *
 * The solver-neutral model is copied into a fresh Cbc_Model as one column-major matrix
 * (Cbc_loadProblem), so every solve starts from a clean CBC object (CBC's C API does not
 * support re-solving a model). Time is wall time ("timeMode elapsed"); CBC's default would
 * be CPU time, which with threads runs out early. Logs are off unless verbosity > 0.
 * CBC 2.10's C API has no incumbent callback, so params->progress is never called here.
 */
#include <coin/Cbc_C_Interface.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "plan/milp.h"
#include "plan/milp_int.h"

static double cbc_bound(double v)
{
    if (v == INFINITY) {
        return DBL_MAX;
    }
    if (v == -INFINITY) {
        return -DBL_MAX;
    }
    return v;
}

/* Build a column-major copy of the row-major matrix and load it into c. */
static int cbc_load(Cbc_Model *c, const struct milp_model *m)
{
    size_t n = m->n_cols;
    CoinBigIndex *start = hx_calloc(n + 1, sizeof(CoinBigIndex));
    int *rowidx = hx_malloc((m->nnz ? m->nnz : 1) * sizeof(int));
    double *vals = hx_malloc((m->nnz ? m->nnz : 1) * sizeof(double));
    double *lb = hx_malloc(n * sizeof(double));
    double *ub = hx_malloc(n * sizeof(double));
    double *rlo = hx_malloc((m->n_rows ? m->n_rows : 1) * sizeof(double));
    double *rhi = hx_malloc((m->n_rows ? m->n_rows : 1) * sizeof(double));
    size_t *fill = hx_calloc(n + 1, sizeof(size_t));
    int rc = HX_OK;
    if (!start || !rowidx || !vals || !lb || !ub || !rlo || !rhi || !fill) {
        rc = HX_ENOMEM;
        goto done;
    }
    for (size_t k = 0; k < m->nnz; k++) {
        start[m->nz_idx[k] + 1]++;
    }
    for (size_t j = 0; j < n; j++) {
        start[j + 1] += start[j];
        fill[j] = (size_t)start[j];
    }
    for (size_t i = 0; i < m->n_rows; i++) {
        for (size_t k = m->row_start[i]; k < m->row_start[i + 1]; k++) {
            size_t pos = fill[m->nz_idx[k]]++;
            rowidx[pos] = (int)i;
            vals[pos] = m->nz_val[k];
        }
        rlo[i] = cbc_bound(m->row_lo[i]);
        rhi[i] = cbc_bound(m->row_hi[i]);
    }
    for (size_t j = 0; j < n; j++) {
        lb[j] = cbc_bound(m->col_lb[j]);
        ub[j] = cbc_bound(m->col_ub[j]);
    }
    Cbc_loadProblem(c, (int)n, (int)m->n_rows, start, rowidx, vals, lb, ub, m->col_obj, rlo, rhi);
    for (size_t j = 0; j < n; j++) {
        Cbc_setColName(c, (int)j, m->names + m->col_name[j]);
        if (m->col_kind[j] != MILP_VAR_CONTINUOUS) {
            Cbc_setInteger(c, (int)j);
        }
    }
    for (size_t i = 0; i < m->n_rows; i++) {
        Cbc_setRowName(c, (int)i, m->names + m->row_name[i]);
    }
    Cbc_setObjSense(c, m->sense == MILP_SENSE_MAXIMIZE ? -1.0 : 1.0);
done:
    xfree(start);
    xfree(rowidx);
    xfree(vals);
    xfree(lb);
    xfree(ub);
    xfree(rlo);
    xfree(rhi);
    xfree(fill);
    return rc;
}

int milp_cbc_solve(const struct milp_model *m, const struct milp_params *p, struct milp_result *res,
                   struct hx_diag *diag)
{
    double t0 = milp_wall_now();
    Cbc_Model *c = Cbc_newModel();
    if (!c) {
        return hx_diag_set(diag, HX_ENOMEM, "cbc: cannot create a model");
    }
    int rc = cbc_load(c, m);
    if (rc != HX_OK) {
        Cbc_deleteModel(c);
        return hx_diag_set(diag, rc, "cbc: cannot copy the model");
    }
    char buf[64];
    int log = p->verbosity <= 0 ? 0 : p->verbosity == 1 ? 1 : 3;
    Cbc_setLogLevel(c, log);
    snprintf(buf, sizeof(buf), "%d", log);
    Cbc_setParameter(c, "log", buf);
    Cbc_setParameter(c, "slog", p->verbosity >= 2 ? "1" : "0");
    Cbc_setParameter(c, "timeMode", "elapsed");
    if (p->time_limit_s > 0) {
        snprintf(buf, sizeof(buf), "%.3f", p->time_limit_s);
        Cbc_setParameter(c, "seconds", buf);
    }
    if (p->threads > 1) {
        snprintf(buf, sizeof(buf), "%d", p->threads);
        Cbc_setParameter(c, "threads", buf);
    }
    snprintf(buf, sizeof(buf), "%d", p->seed > 0 ? p->seed : 1);
    Cbc_setParameter(c, "randomCbcSeed", buf);
    snprintf(buf, sizeof(buf), "%.12g", p->rel_gap);
    Cbc_setParameter(c, "ratioGap", buf);
    if (p->rel_gap == 0) {
        /* CBC's default absolute gap (1e-10) stays; make sure the relative one is exact. */
        Cbc_setAllowableFractionGap(c, 0.0);
    }
    if (m->start) {
        int *idx = hx_malloc(m->n_cols * sizeof(int));
        if (!idx) {
            Cbc_deleteModel(c);
            return hx_diag_set(diag, HX_ENOMEM, "cbc: start solution");
        }
        for (size_t j = 0; j < m->n_cols; j++) {
            idx[j] = (int)j;
        }
        Cbc_setMIPStartI(c, (int)m->n_cols, idx, m->start);
        xfree(idx);
        res->start_used = true;
    }

    Cbc_solve(c);

    int status = Cbc_status(c);
    int secondary = Cbc_secondaryStatus(c);
    const double *best = Cbc_bestSolution(c);
    if (best) {
        res->x = hx_malloc(m->n_cols * sizeof(double));
        if (!res->x) {
            Cbc_deleteModel(c);
            return hx_diag_set(diag, HX_ENOMEM, "cbc: solution vector");
        }
        memcpy(res->x, best, m->n_cols * sizeof(double));
        res->n_cols = m->n_cols;
        /* Recompute the objective from the vector: exact in the model's own sense. */
        double z = 0;
        for (size_t j = 0; j < m->n_cols; j++) {
            z += m->col_obj[j] * best[j];
        }
        res->objective = z;
    }
    if (Cbc_isProvenOptimal(c) && best) {
        res->status = MILP_STATUS_OPTIMAL;
    } else if (Cbc_isProvenInfeasible(c) && !best) {
        res->status = MILP_STATUS_INFEASIBLE;
    } else if (Cbc_isContinuousUnbounded(c) || secondary == 7) {
        res->status = MILP_STATUS_UNBOUNDED;
    } else if (status == 2 || Cbc_isAbandoned(c)) {
        res->status = best ? MILP_STATUS_FEASIBLE : MILP_STATUS_ERROR;
    } else {
        res->status = best ? MILP_STATUS_FEASIBLE : MILP_STATUS_NO_SOLUTION;
    }
    /* The C API reports the bound in the model's own sense (checked by the tests). */
    double bound = Cbc_getBestPossibleObjValue(c);
    if (isfinite(bound) && fabs(bound) < 1e50) {
        res->bound = bound;
    }
    if (res->status == MILP_STATUS_OPTIMAL) {
        /* A proven optimum: the bound is the objective (CBC's can be off by its tolerance). */
        if (!isfinite(res->bound) ||
            (m->sense == MILP_SENSE_MAXIMIZE ? res->bound < res->objective
                                             : res->bound > res->objective)) {
            res->bound = res->objective;
        }
    }
    res->gap = milp_gap_compute(res->objective, res->bound);
    Cbc_deleteModel(c);
    res->solve_s = milp_wall_now() - t0;
    if (res->status == MILP_STATUS_ERROR) {
        return hx_diag_set(diag, HX_ESOLVER, "cbc: search abandoned (status %d/%d)", status,
                           secondary);
    }
    return HX_OK;
}
