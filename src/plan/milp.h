/*
 * milp.h - a small solver-neutral mixed-integer linear programming API.
 *
 * A model is built once in solver-neutral storage (columns with bounds, objective coefficient
 * and integrality; rows as sparse coefficient lists with a lower and an upper bound), then
 * handed to one backend: CBC (COIN-OR, C API, multi-threaded) or GLPK (single-threaded).
 * Nothing in the rest of the project includes a solver header: everything goes through here.
 *
 * Infinite bounds are written as +/-INFINITY (math.h). A binary column is an integer column
 * with bounds [0, 1]. Solve options are in struct milp_params: the time limit is in WALL
 * seconds (CBC's default of CPU time is switched off), threads apply to CBC only.
 *
 * The backends are the only place in src/plan that reads a clock (the time limit and the
 * reported solve time are wall time by nature); the model itself stays pure data.
 */
#ifndef HX_PLAN_MILP_H
#define HX_PLAN_MILP_H

#include <stdbool.h>
#include <stddef.h>

struct hx_diag;

/* Direction of the objective. */
enum milp_sense {
    MILP_SENSE_MAXIMIZE = 0,
    MILP_SENSE_MINIMIZE = 1,
};

/* Kind of a column. MILP_VAR_BINARY forces the bounds to [0, 1]. */
enum milp_var {
    MILP_VAR_CONTINUOUS = 0,
    MILP_VAR_INTEGER = 1,
    MILP_VAR_BINARY = 2,
};

/* Which solver runs the model. */
enum milp_backend {
    MILP_BACKEND_CBC = 0,
    MILP_BACKEND_GLPK = 1,
};

/* Outcome of a solve. */
enum milp_status {
    MILP_STATUS_NOT_SOLVED = 0, /* solve not run (or failed before the search) */
    MILP_STATUS_OPTIMAL,        /* incumbent proven optimal (within rel_gap) */
    MILP_STATUS_FEASIBLE,       /* a limit (time, user stop) hit with an incumbent */
    MILP_STATUS_INFEASIBLE,     /* proven infeasible */
    MILP_STATUS_UNBOUNDED,      /* the relaxation is unbounded */
    MILP_STATUS_NO_SOLUTION,    /* a limit hit before any integer solution was found */
    MILP_STATUS_ERROR,          /* the solver failed (numerics, internal error) */
};

struct milp_model;

/*
 * Progress report, called from the solver while it searches (only by backends that can:
 * GLPK calls it at every branch-and-bound event; CBC 2.10's C API offers no incumbent
 * callback, so CBC never calls it). elapsed_s is wall time since the solve began;
 * incumbent and bound are in the model's sense (incumbent is NAN while none exists).
 * Return nonzero to ask the solver to stop (honoured by GLPK).
 */
typedef int (*milp_progress_fn)(void *user, double elapsed_s, double incumbent, double bound);

/* Solve options. Initialise with milp_params_init, then override fields. */
struct milp_params {
    double time_limit_s; /* wall-clock limit; <= 0 means none */
    int threads;         /* CBC worker threads (>= 1); ignored by GLPK */
    int seed;            /* CBC random seed; ignored by GLPK */
    double rel_gap;      /* stop when |best - bound| <= rel_gap * |best|; 0 = prove optimality */
    int verbosity;       /* 0 = silent (default), 1 = solver summary, 2+ = full solver log */
    milp_progress_fn progress;
    void *progress_user;
};

/* Defaults: no time limit, 1 thread, seed 0, rel_gap 0, silent, no callback. */
void milp_params_init(struct milp_params *p);

/* Result of a solve; release with milp_result_release. */
struct milp_result {
    enum milp_status status;
    double objective; /* value of the incumbent in the model's sense; NAN if none */
    double bound;     /* best proven bound on the optimum (model's sense); NAN if unknown */
    double gap;       /* |objective - bound| / max(|objective|, 1e-10); NAN if unknown */
    double solve_s;   /* wall seconds spent in the solver (model transfer included) */
    double *x;        /* incumbent values, n_cols entries; NULL if none (owned) */
    size_t n_cols;
    bool start_used; /* a start solution was given and the backend accepted it */
};

/* Create an empty model. *out is freed with milp_model_free. Returns HX_OK. */
int milp_model_new(enum milp_sense sense, struct milp_model **out);
/* Free a model (NULL does nothing). */
void milp_model_free(struct milp_model *m);

/*
 * Add a column: bounds lb <= x <= ub (+/-INFINITY allowed), objective coefficient obj, kind,
 * and an optional name (copied; NULL gives "c<index>"). Returns the new column's index (>= 0)
 * or a negative HX_* code: HX_EINVAL on a NaN bound, lb > ub, a non-finite obj, or a name
 * longer than 255 characters.
 */
int milp_col_add(struct milp_model *m, double lb, double ub, double obj, enum milp_var kind,
                 const char *name);

/*
 * Add a row lo <= sum_k val[k] * x[idx[k]] <= hi. lo may be -INFINITY, hi +INFINITY (not
 * both); lo == hi is an equality. idx/val are copied; duplicate indices are summed; zero
 * coefficients are dropped. name may be NULL ("r<index>"). Returns the row's index or a
 * negative HX_* code (HX_EINVAL for an index out of range, a NaN, lo > hi).
 */
int milp_row_add(struct milp_model *m, size_t nz, const int *idx, const double *val, double lo,
                 double hi, const char *name);

/*
 * Change the bounds of column j (e.g. to fix integer columns to a placement). Same checks as
 * milp_col_add; a binary column stays within [0, 1]. HX_EINVAL if j is out of range.
 */
int milp_col_set_bounds(struct milp_model *m, size_t j, double lb, double ub);
/* Bounds of column j (NAN if out of range). */
double milp_col_lb(const struct milp_model *m, size_t j);
double milp_col_ub(const struct milp_model *m, size_t j);

size_t milp_model_n_cols(const struct milp_model *m);
size_t milp_model_n_rows(const struct milp_model *m);
/* Number of integer (including binary) columns and of binary columns. */
size_t milp_model_n_int(const struct milp_model *m);
size_t milp_model_n_bin(const struct milp_model *m);
/* Name of column j / row i (borrowed; valid until the model is freed); NULL if out of range. */
const char *milp_col_name(const struct milp_model *m, size_t j);
const char *milp_row_name(const struct milp_model *m, size_t i);

/*
 * Give a start solution: x has exactly n == milp_model_n_cols values (copied). Backends
 * offer it as the first incumbent: CBC fixes the integer columns to it and recomputes the
 * continuous ones by LP (so a start whose integers are feasible is always accepted); GLPK
 * takes the vector as is, so it is checked first with milp_model_check (tolerance 1e-6)
 * and dropped if infeasible. Returns HX_EINVAL if n differs.
 */
int milp_start_set(struct milp_model *m, const double *x, size_t n);
/* Forget the start solution. */
void milp_start_clear(struct milp_model *m);

/*
 * Check x (n_cols values) against bounds, integrality and rows with absolute tolerance tol.
 * Returns HX_OK, or HX_EINFEASIBLE with diag naming the first violated column/row.
 * If obj is non-NULL it receives the objective value of x.
 */
int milp_model_check(const struct milp_model *m, const double *x, double tol, double *obj,
                     struct hx_diag *diag);

/*
 * Solve m with the chosen backend. params may be NULL (defaults). res is always
 * initialised (status NOT_SOLVED on early failure). Returns HX_OK when the solver ran
 * (inspect res->status: infeasible/unbounded models are not errors), HX_EINVAL on bad
 * arguments, HX_ENOTSUP for a backend not compiled in, HX_ESOLVER if the solver failed,
 * HX_ENOMEM. The model is not modified and can be solved again.
 */
int milp_solve(const struct milp_model *m, enum milp_backend backend,
               const struct milp_params *params, struct milp_result *res, struct hx_diag *diag);

/* Free the solution vector of res (res itself is caller storage). */
void milp_result_release(struct milp_result *res);

/* "optimal", "feasible", ...; never NULL. */
const char *milp_status_name(enum milp_status s);
/* "cbc" / "glpk"; and the reverse (HX_EINVAL for an unknown name). */
const char *milp_backend_name(enum milp_backend b);
int milp_backend_parse(const char *name, enum milp_backend *out);

#endif
