/*
 * milp_glpk.c - the GLPK backend of milp.h (GLPK 5.0, <glpk.h>, single-threaded).
 *
 * The LP relaxation is solved first with the simplex method (no presolver), so that
 * infeasible and unbounded relaxations are reported precisely and the branch-and-bound
 * tree works on the original columns. That lets the search callback offer the start
 * solution through glp_ios_heur_sol (GLPK does not check it, so milp_model_check vets it
 * first) and report progress (wall time, incumbent, best bound) to the caller, who may
 * ask the search to stop.
 */
#include <glpk.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "plan/milp.h"
#include "plan/milp_int.h"

struct glpk_cb {
    const struct milp_params *p;
    const struct milp_model *m;
    double t0;
    double *start1; /* 1-based start vector, NULL if none */
    bool offered;
    bool accepted;
    bool stopped;
    double last_bound;
};

static void glpk_set_bounds(glp_prob *lp, int j, bool is_col, double lo, double hi)
{
    int type;
    if (lo == -INFINITY && hi == INFINITY) {
        type = GLP_FR;
    } else if (hi == INFINITY) {
        type = GLP_LO;
    } else if (lo == -INFINITY) {
        type = GLP_UP;
    } else if (lo == hi) {
        type = GLP_FX;
    } else {
        type = GLP_DB;
    }
    double l = isfinite(lo) ? lo : 0.0;
    double h = isfinite(hi) ? hi : 0.0;
    if (is_col) {
        glp_set_col_bnds(lp, j, type, l, h);
    } else {
        glp_set_row_bnds(lp, j, type, l, h);
    }
}

static void glpk_callback(glp_tree *tree, void *info)
{
    struct glpk_cb *cb = info;
    int reason = glp_ios_reason(tree);
    if (reason == GLP_IHEUR && cb->start1 && !cb->offered) {
        cb->offered = true;
        cb->accepted = glp_ios_heur_sol(tree, cb->start1) == 0;
    }
    int node = glp_ios_best_node(tree);
    if (node != 0) {
        cb->last_bound = glp_ios_node_bound(tree, node);
    }
    if (cb->p->progress && (reason == GLP_IBINGO || reason == GLP_ISELECT)) {
        glp_prob *lp = glp_ios_get_prob(tree);
        double inc = glp_mip_status(lp) == GLP_FEAS ? glp_mip_obj_val(lp) : NAN;
        double bound = node != 0 ? cb->last_bound : NAN;
        if (cb->p->progress(cb->p->progress_user, milp_wall_now() - cb->t0, inc, bound) != 0) {
            cb->stopped = true;
            glp_ios_terminate(tree);
        }
    }
}

/* Remaining wall milliseconds for GLPK's tm_lim (INT_MAX-ish when there is no limit). */
static int glpk_ms_left(const struct milp_params *p, double t0)
{
    if (p->time_limit_s <= 0) {
        return 0x7fffffff;
    }
    double left = p->time_limit_s - (milp_wall_now() - t0);
    if (left <= 0.001) {
        return 1;
    }
    if (left > 2e6) {
        return 0x7fffffff;
    }
    return (int)(left * 1000.0);
}

int milp_glpk_solve(const struct milp_model *m, const struct milp_params *p,
                    struct milp_result *res, struct hx_diag *diag)
{
    double t0 = milp_wall_now();
    int rc = HX_OK;
    int old_term = glp_term_out(p->verbosity > 0 ? GLP_ON : GLP_OFF);
    glp_prob *lp = glp_create_prob();
    int *ind = hx_malloc((m->n_cols + 1) * sizeof(int));
    double *val = hx_malloc((m->n_cols + 1) * sizeof(double));
    struct glpk_cb cb = {.p = p, .m = m, .t0 = t0, .last_bound = NAN};
    if (!ind || !val) {
        rc = hx_diag_set(diag, HX_ENOMEM, "glpk: model copy");
        goto done;
    }
    glp_set_obj_dir(lp, m->sense == MILP_SENSE_MAXIMIZE ? GLP_MAX : GLP_MIN);
    glp_add_cols(lp, (int)m->n_cols);
    for (size_t j = 0; j < m->n_cols; j++) {
        int c = (int)j + 1;
        glp_set_col_name(lp, c, m->names + m->col_name[j]);
        if (m->col_kind[j] != MILP_VAR_CONTINUOUS) {
            glp_set_col_kind(lp, c, GLP_IV);
        }
        glpk_set_bounds(lp, c, true, m->col_lb[j], m->col_ub[j]);
        glp_set_obj_coef(lp, c, m->col_obj[j]);
    }
    if (m->n_rows > 0) {
        glp_add_rows(lp, (int)m->n_rows);
    }
    for (size_t i = 0; i < m->n_rows; i++) {
        int r = (int)i + 1;
        glp_set_row_name(lp, r, m->names + m->row_name[i]);
        glpk_set_bounds(lp, r, false, m->row_lo[i], m->row_hi[i]);
        int len = 0;
        for (size_t k = m->row_start[i]; k < m->row_start[i + 1]; k++) {
            len++;
            ind[len] = m->nz_idx[k] + 1;
            val[len] = m->nz_val[k];
        }
        glp_set_mat_row(lp, r, len, ind, val);
    }
    if (m->start) {
        if (milp_model_check(m, m->start, 1e-6, NULL, NULL) == HX_OK) {
            cb.start1 = hx_malloc((m->n_cols + 1) * sizeof(double));
            if (!cb.start1) {
                rc = hx_diag_set(diag, HX_ENOMEM, "glpk: start vector");
                goto done;
            }
            cb.start1[0] = 0;
            memcpy(cb.start1 + 1, m->start, m->n_cols * sizeof(double));
        }
    }

    glp_smcp smcp;
    glp_init_smcp(&smcp);
    smcp.msg_lev = p->verbosity >= 2 ? GLP_MSG_ALL : p->verbosity == 1 ? GLP_MSG_ERR : GLP_MSG_OFF;
    smcp.presolve = GLP_OFF;
    smcp.tm_lim = glpk_ms_left(p, t0);
    int sret = glp_simplex(lp, &smcp);
    int lpst = glp_get_status(lp);
    if (sret == GLP_ETMLIM) {
        res->status = MILP_STATUS_NO_SOLUTION;
        goto done;
    }
    if (sret != 0 && sret != GLP_ENOPFS && sret != GLP_ENODFS) {
        res->status = MILP_STATUS_ERROR;
        rc = hx_diag_set(diag, HX_ESOLVER, "glpk: simplex failed (code %d)", sret);
        goto done;
    }
    if (lpst == GLP_NOFEAS || sret == GLP_ENOPFS) {
        res->status = MILP_STATUS_INFEASIBLE;
        goto done;
    }
    if (lpst == GLP_UNBND || sret == GLP_ENODFS) {
        res->status = MILP_STATUS_UNBOUNDED;
        goto done;
    }
    if (lpst != GLP_OPT) {
        res->status = MILP_STATUS_ERROR;
        rc = hx_diag_set(diag, HX_ESOLVER, "glpk: relaxation not solved (status %d)", lpst);
        goto done;
    }

    glp_iocp iocp;
    glp_init_iocp(&iocp);
    iocp.msg_lev = smcp.msg_lev;
    iocp.presolve = GLP_OFF;
    iocp.tm_lim = glpk_ms_left(p, t0);
    iocp.mip_gap = p->rel_gap;
    iocp.mir_cuts = GLP_ON;
    iocp.gmi_cuts = GLP_ON;
    iocp.cov_cuts = GLP_ON;
    iocp.clq_cuts = GLP_ON;
    iocp.cb_func = glpk_callback;
    iocp.cb_info = &cb;
    int iret = glp_intopt(lp, &iocp);
    int mst = glp_mip_status(lp);
    bool have = mst == GLP_OPT || mst == GLP_FEAS;
    res->start_used = cb.accepted;
    if (have) {
        res->x = hx_malloc(m->n_cols * sizeof(double));
        if (!res->x) {
            rc = hx_diag_set(diag, HX_ENOMEM, "glpk: solution vector");
            goto done;
        }
        res->n_cols = m->n_cols;
        double z = 0;
        for (size_t j = 0; j < m->n_cols; j++) {
            res->x[j] = glp_mip_col_val(lp, (int)j + 1);
            z += m->col_obj[j] * res->x[j];
        }
        res->objective = z;
    }
    if (iret == 0 && mst == GLP_OPT) {
        res->status = MILP_STATUS_OPTIMAL;
        res->bound = res->objective;
    } else if (iret == 0 && mst == GLP_NOFEAS) {
        res->status = MILP_STATUS_INFEASIBLE;
    } else if (iret == GLP_EMIPGAP && have) {
        res->status = MILP_STATUS_OPTIMAL;
        res->bound = cb.last_bound;
    } else if (iret == GLP_ETMLIM || iret == GLP_ESTOP || iret == GLP_EMIPGAP) {
        res->status = have ? MILP_STATUS_FEASIBLE : MILP_STATUS_NO_SOLUTION;
        res->bound = cb.last_bound;
    } else if (iret == GLP_ENOPFS) {
        res->status = MILP_STATUS_INFEASIBLE;
    } else if (iret == GLP_ENODFS) {
        res->status = MILP_STATUS_UNBOUNDED;
    } else {
        res->status = MILP_STATUS_ERROR;
        rc = hx_diag_set(diag, HX_ESOLVER, "glpk: branch-and-bound failed (code %d)", iret);
    }
    res->gap = milp_gap_compute(res->objective, res->bound);
done:
    glp_delete_prob(lp);
    glp_term_out(old_term);
    xfree(ind);
    xfree(val);
    xfree(cb.start1);
    res->solve_s = milp_wall_now() - t0;
    return rc;
}
