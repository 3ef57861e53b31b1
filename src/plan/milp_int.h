/*
 * milp_int.h - the model layout shared by milp.c and the solver backends (not public).
 *
 * Columns are parallel arrays; rows are compressed sparse rows (row_start has n_rows + 1
 * entries). Names are stored in one character pool, addressed by offsets.
 */
#ifndef HX_PLAN_MILP_INT_H
#define HX_PLAN_MILP_INT_H

#include <stddef.h>

#include "plan/milp.h"

struct milp_model {
    enum milp_sense sense;
    size_t n_cols, cap_cols;
    double *col_lb, *col_ub, *col_obj;
    unsigned char *col_kind; /* enum milp_var */
    size_t *col_name;        /* offsets into names */
    size_t n_rows, cap_rows;
    double *row_lo, *row_hi;
    size_t *row_start; /* n_rows + 1 */
    size_t *row_name;
    size_t nnz, cap_nnz;
    int *nz_idx;
    double *nz_val;
    char *names;
    size_t names_len, names_cap;
    double *start; /* NULL or n_cols values */
};

/* Backends: fill res (already initialised by milp_solve, start_used false). */
int milp_cbc_solve(const struct milp_model *m, const struct milp_params *p, struct milp_result *res,
                   struct hx_diag *diag);
int milp_glpk_solve(const struct milp_model *m, const struct milp_params *p,
                    struct milp_result *res, struct hx_diag *diag);

/* Wall seconds from CLOCK_MONOTONIC (backends only). */
double milp_wall_now(void);

/* Gap as documented in milp.h, NAN if either value is not finite. */
double milp_gap_compute(double objective, double bound);

#endif
