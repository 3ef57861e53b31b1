/*
 * milp.c - solver-neutral model storage, checking and backend dispatch for milp.h.
 *
 * Rows are kept as compressed sparse rows in one growing coefficient array; duplicate
 * column indices in a row are merged when the row is added, so backends see a clean matrix.
 */
#include "plan/milp.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/status.h"
#include "plan/milp_int.h"

#define MILP_NAME_MAX 255

void milp_params_init(struct milp_params *p)
{
    memset(p, 0, sizeof(*p));
    p->time_limit_s = 0;
    p->threads = 1;
    p->seed = 0;
    p->rel_gap = 0;
    p->verbosity = 0;
}

double milp_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double milp_gap_compute(double objective, double bound)
{
    if (!isfinite(objective) || !isfinite(bound)) {
        return NAN;
    }
    double den = fabs(objective) > 1e-10 ? fabs(objective) : 1e-10;
    return fabs(objective - bound) / den;
}

int milp_model_new(enum milp_sense sense, struct milp_model **out)
{
    struct milp_model *m = xcalloc(1, sizeof(*m));
    m->sense = sense;
    m->row_start = xmalloc(sizeof(size_t));
    m->row_start[0] = 0;
    m->cap_rows = 0;
    *out = m;
    return HX_OK;
}

void milp_model_free(struct milp_model *m)
{
    if (!m) {
        return;
    }
    xfree(m->col_lb);
    xfree(m->col_ub);
    xfree(m->col_obj);
    xfree(m->col_kind);
    xfree(m->col_name);
    xfree(m->row_lo);
    xfree(m->row_hi);
    xfree(m->row_start);
    xfree(m->row_name);
    xfree(m->nz_idx);
    xfree(m->nz_val);
    xfree(m->names);
    xfree(m->start);
    xfree(m);
}

/* Append a NUL-terminated name to the pool; returns its offset. */
static size_t name_push(struct milp_model *m, const char *name)
{
    size_t len = strlen(name) + 1;
    if (m->names_len + len > m->names_cap) {
        size_t cap = m->names_cap ? m->names_cap : 1024;
        while (cap < m->names_len + len) {
            cap *= 2;
        }
        m->names = xrealloc(m->names, cap);
        m->names_cap = cap;
    }
    memcpy(m->names + m->names_len, name, len);
    size_t off = m->names_len;
    m->names_len += len;
    return off;
}

int milp_col_add(struct milp_model *m, double lb, double ub, double obj, enum milp_var kind,
                 const char *name)
{
    if (!m || isnan(lb) || isnan(ub) || !isfinite(obj) || lb > ub || lb == INFINITY ||
        ub == -INFINITY) {
        return HX_EINVAL;
    }
    if (kind != MILP_VAR_CONTINUOUS && kind != MILP_VAR_INTEGER && kind != MILP_VAR_BINARY) {
        return HX_EINVAL;
    }
    if (name && strlen(name) > MILP_NAME_MAX) {
        return HX_EINVAL;
    }
    if (m->n_cols >= (size_t)0x7fffffff) {
        return HX_ERANGE;
    }
    if (kind == MILP_VAR_BINARY) {
        lb = lb < 0 ? 0 : lb;
        ub = ub > 1 ? 1 : ub;
        if (lb > ub) {
            return HX_EINVAL;
        }
    }
    if (m->n_cols == m->cap_cols) {
        size_t cap = m->cap_cols ? m->cap_cols * 2 : 64;
        m->col_lb = xrealloc(m->col_lb, cap * sizeof(double));
        m->col_ub = xrealloc(m->col_ub, cap * sizeof(double));
        m->col_obj = xrealloc(m->col_obj, cap * sizeof(double));
        m->col_kind = xrealloc(m->col_kind, cap);
        m->col_name = xrealloc(m->col_name, cap * sizeof(size_t));
        m->cap_cols = cap;
    }
    size_t j = m->n_cols;
    char buf[32];
    if (!name) {
        snprintf(buf, sizeof(buf), "c%zu", j);
        name = buf;
    }
    m->col_lb[j] = lb;
    m->col_ub[j] = ub;
    m->col_obj[j] = obj;
    m->col_kind[j] = (unsigned char)kind;
    m->col_name[j] = name_push(m, name);
    m->n_cols++;
    if (m->start) {
        /* A start given before more columns were added no longer fits: drop it. */
        xfree(m->start);
        m->start = NULL;
    }
    return (int)j;
}

int milp_row_add(struct milp_model *m, size_t nz, const int *idx, const double *val, double lo,
                 double hi, const char *name)
{
    if (!m || (nz > 0 && (!idx || !val)) || isnan(lo) || isnan(hi) || lo > hi || lo == INFINITY ||
        hi == -INFINITY || (lo == -INFINITY && hi == INFINITY)) {
        return HX_EINVAL;
    }
    if (name && strlen(name) > MILP_NAME_MAX) {
        return HX_EINVAL;
    }
    if (m->n_rows >= (size_t)0x7fffffff) {
        return HX_ERANGE;
    }
    for (size_t k = 0; k < nz; k++) {
        if (idx[k] < 0 || (size_t)idx[k] >= m->n_cols || !isfinite(val[k])) {
            return HX_EINVAL;
        }
    }
    if (m->nnz + nz > m->cap_nnz) {
        size_t cap = m->cap_nnz ? m->cap_nnz : 256;
        while (cap < m->nnz + nz) {
            cap *= 2;
        }
        m->nz_idx = xrealloc(m->nz_idx, cap * sizeof(int));
        m->nz_val = xrealloc(m->nz_val, cap * sizeof(double));
        m->cap_nnz = cap;
    }
    /* Append, merging duplicates (quadratic in the row length, rows here are short; fall
     * back to the same loop for long rows: correctness over speed). */
    size_t base = m->nnz;
    size_t len = 0;
    for (size_t k = 0; k < nz; k++) {
        size_t q = 0;
        while (q < len && m->nz_idx[base + q] != idx[k]) {
            q++;
        }
        if (q < len) {
            m->nz_val[base + q] += val[k];
        } else {
            m->nz_idx[base + len] = idx[k];
            m->nz_val[base + len] = val[k];
            len++;
        }
    }
    size_t w = 0;
    for (size_t q = 0; q < len; q++) {
        if (m->nz_val[base + q] != 0.0) {
            m->nz_idx[base + w] = m->nz_idx[base + q];
            m->nz_val[base + w] = m->nz_val[base + q];
            w++;
        }
    }
    if (m->n_rows == m->cap_rows) {
        size_t cap = m->cap_rows ? m->cap_rows * 2 : 64;
        m->row_lo = xrealloc(m->row_lo, cap * sizeof(double));
        m->row_hi = xrealloc(m->row_hi, cap * sizeof(double));
        m->row_name = xrealloc(m->row_name, cap * sizeof(size_t));
        m->row_start = xrealloc(m->row_start, (cap + 1) * sizeof(size_t));
        m->cap_rows = cap;
    }
    size_t i = m->n_rows;
    char buf[32];
    if (!name) {
        snprintf(buf, sizeof(buf), "r%zu", i);
        name = buf;
    }
    m->nnz = base + w;
    m->row_lo[i] = lo;
    m->row_hi[i] = hi;
    m->row_name[i] = name_push(m, name);
    m->row_start[i + 1] = m->nnz;
    m->n_rows++;
    return (int)i;
}

int milp_col_set_bounds(struct milp_model *m, size_t j, double lb, double ub)
{
    if (!m || j >= m->n_cols || isnan(lb) || isnan(ub) || lb > ub || lb == INFINITY ||
        ub == -INFINITY) {
        return HX_EINVAL;
    }
    if (m->col_kind[j] == MILP_VAR_BINARY && (lb < 0 || ub > 1)) {
        return HX_EINVAL;
    }
    m->col_lb[j] = lb;
    m->col_ub[j] = ub;
    return HX_OK;
}

double milp_col_lb(const struct milp_model *m, size_t j)
{
    return m && j < m->n_cols ? m->col_lb[j] : NAN;
}

double milp_col_ub(const struct milp_model *m, size_t j)
{
    return m && j < m->n_cols ? m->col_ub[j] : NAN;
}

size_t milp_model_n_cols(const struct milp_model *m)
{
    return m ? m->n_cols : 0;
}

size_t milp_model_n_rows(const struct milp_model *m)
{
    return m ? m->n_rows : 0;
}

size_t milp_model_n_int(const struct milp_model *m)
{
    size_t n = 0;
    for (size_t j = 0; m && j < m->n_cols; j++) {
        n += m->col_kind[j] != MILP_VAR_CONTINUOUS;
    }
    return n;
}

size_t milp_model_n_bin(const struct milp_model *m)
{
    size_t n = 0;
    for (size_t j = 0; m && j < m->n_cols; j++) {
        n += m->col_kind[j] == MILP_VAR_BINARY ||
             (m->col_kind[j] == MILP_VAR_INTEGER && m->col_lb[j] == 0 && m->col_ub[j] == 1);
    }
    return n;
}

const char *milp_col_name(const struct milp_model *m, size_t j)
{
    return m && j < m->n_cols ? m->names + m->col_name[j] : NULL;
}

const char *milp_row_name(const struct milp_model *m, size_t i)
{
    return m && i < m->n_rows ? m->names + m->row_name[i] : NULL;
}

int milp_start_set(struct milp_model *m, const double *x, size_t n)
{
    if (!m || !x || n != m->n_cols) {
        return HX_EINVAL;
    }
    for (size_t j = 0; j < n; j++) {
        if (!isfinite(x[j])) {
            return HX_EINVAL;
        }
    }
    if (!m->start) {
        m->start = xmalloc((n ? n : 1) * sizeof(double));
    }
    memcpy(m->start, x, n * sizeof(double));
    return HX_OK;
}

void milp_start_clear(struct milp_model *m)
{
    if (m) {
        xfree(m->start);
        m->start = NULL;
    }
}

int milp_model_check(const struct milp_model *m, const double *x, double tol, double *obj,
                     struct hx_diag *diag)
{
    if (!m || !x) {
        return HX_EINVAL;
    }
    double z = 0;
    for (size_t j = 0; j < m->n_cols; j++) {
        double v = x[j];
        if (!isfinite(v) || v < m->col_lb[j] - tol || v > m->col_ub[j] + tol) {
            return hx_diag_set(diag, HX_EINFEASIBLE, "column %s = %g outside [%g, %g]",
                               milp_col_name(m, j), v, m->col_lb[j], m->col_ub[j]);
        }
        if (m->col_kind[j] != MILP_VAR_CONTINUOUS && fabs(v - nearbyint(v)) > tol) {
            return hx_diag_set(diag, HX_EINFEASIBLE, "integer column %s = %g is fractional",
                               milp_col_name(m, j), v);
        }
        z += m->col_obj[j] * v;
    }
    for (size_t i = 0; i < m->n_rows; i++) {
        double a = 0;
        for (size_t k = m->row_start[i]; k < m->row_start[i + 1]; k++) {
            a += m->nz_val[k] * x[m->nz_idx[k]];
        }
        /* Scale the tolerance with the row's magnitude (big-M rows). */
        double t = tol * (1.0 + fabs(a));
        if (a < m->row_lo[i] - t || a > m->row_hi[i] + t) {
            return hx_diag_set(diag, HX_EINFEASIBLE, "row %s: activity %.9g outside [%g, %g]",
                               milp_row_name(m, i), a, m->row_lo[i], m->row_hi[i]);
        }
    }
    if (obj) {
        *obj = z;
    }
    return HX_OK;
}

int milp_solve(const struct milp_model *m, enum milp_backend backend,
               const struct milp_params *params, struct milp_result *res, struct hx_diag *diag)
{
    if (!res) {
        return HX_EINVAL;
    }
    memset(res, 0, sizeof(*res));
    res->status = MILP_STATUS_NOT_SOLVED;
    res->objective = NAN;
    res->bound = NAN;
    res->gap = NAN;
    if (!m) {
        return hx_diag_set(diag, HX_EINVAL, "milp_solve: no model");
    }
    struct milp_params defaults;
    if (!params) {
        milp_params_init(&defaults);
        params = &defaults;
    }
    if (isnan(params->time_limit_s) || params->threads < 1 || params->threads > 1024 ||
        !(params->rel_gap >= 0)) {
        return hx_diag_set(diag, HX_EINVAL, "milp_solve: bad parameters (threads %d, gap %g)",
                           params->threads, params->rel_gap);
    }
    if (m->n_cols == 0) {
        return hx_diag_set(diag, HX_EINVAL, "milp_solve: model has no columns");
    }
    switch (backend) {
    case MILP_BACKEND_CBC:
        return milp_cbc_solve(m, params, res, diag);
    case MILP_BACKEND_GLPK:
        return milp_glpk_solve(m, params, res, diag);
    }
    return hx_diag_set(diag, HX_ENOTSUP, "milp_solve: unknown backend %d", (int)backend);
}

void milp_result_release(struct milp_result *res)
{
    if (res) {
        xfree(res->x);
        res->x = NULL;
        res->n_cols = 0;
    }
}

const char *milp_status_name(enum milp_status s)
{
    switch (s) {
    case MILP_STATUS_NOT_SOLVED:
        return "not-solved";
    case MILP_STATUS_OPTIMAL:
        return "optimal";
    case MILP_STATUS_FEASIBLE:
        return "feasible";
    case MILP_STATUS_INFEASIBLE:
        return "infeasible";
    case MILP_STATUS_UNBOUNDED:
        return "unbounded";
    case MILP_STATUS_NO_SOLUTION:
        return "no-solution";
    case MILP_STATUS_ERROR:
        return "error";
    }
    return "unknown";
}

const char *milp_backend_name(enum milp_backend b)
{
    return b == MILP_BACKEND_GLPK ? "glpk" : b == MILP_BACKEND_CBC ? "cbc" : "unknown";
}

int milp_backend_parse(const char *name, enum milp_backend *out)
{
    if (name && strcmp(name, "cbc") == 0) {
        *out = MILP_BACKEND_CBC;
        return HX_OK;
    }
    if (name && strcmp(name, "glpk") == 0) {
        *out = MILP_BACKEND_GLPK;
        return HX_OK;
    }
    return HX_EINVAL;
}
