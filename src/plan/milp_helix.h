/*
 * milp_helix.h - Helix's model-placement MILP (spec §2.2-§2.3) on the solver-neutral milp.h.
 *
 * For a cluster (usually pruned, §2.5), a model and its throughput table, the model has per
 * compute node i: s_i (first layer, integer), b_ik (binary, "holds exactly k layers"); per
 * usable directed edge a->b: flow f_ab >= 0 and switch d_ab (binary); with partial
 * connectivity also c1_ij, c2_ij per directed compute edge. The objective is the token
 * throughput, the flow out of the source. With every option below off except the Helix ones
 * (connectivity, remove_redundant) the model is exactly Helix's, row for row (§2.3 sizes).
 *
 * Optional strengthenings (each keeps the optimum; see docs/milp.md for the arguments):
 *   tight_caps   f_ab <= min(c_ab, Tmax_a, Tmax_b) d_ab instead of c_ab d_ab (Tmax = a node's
 *                largest capacity over k; flow into or out of a node never exceeds it);
 *   work_bound   L * F <= sum_i sum_k k T_i(k) b_ik (every token crosses L layers; node i
 *                does at most k_i T_i(k_i) layer-tokens per second);
 *   symmetry     nodes that are interchangeable (same GPU type, same bandwidth to source,
 *                sink and every other node) are ordered: (k_max+1) s_i + k_i <= same for j;
 *   path_work    (strict only) per-size node flows g_ik <= T_i(k) b_ik with sum_k g_ik =
 *                inflow_i, inflow_i <= F, and sum_i sum_k k g_ik = L F: in a strict pipeline
 *                every token path visits a node at most once and its sizes sum to exactly L;
 *   arc_flow     (strict only) position-indexed binaries x_ipk ("node i holds [p, p+k)")
 *                linked to s and b, arc flows y_ipk <= T_i(k) x_ipk summing to inflow_i,
 *                flow conservation at every layer boundary, source/sink edges only from/to
 *                arcs starting at 0 / ending at L, and d_ij <= 1 - ends_i(p) + starts_j(p).
 *                All hold in every integer solution of Helix's model (the arc of node i is
 *                its placement), so the optimum is unchanged;
 *   cover_cuts   for each distinct node capacity tau below the compute-only bound UB: a
 *                binary z (F <= tau + (UB - tau) z) and sum_i sum_k w_ik k b_ik >= L z with
 *                w_ik = 1 if T_i(k) > tau else 1/2. If F > tau, every layer is crossed by
 *                flow F, so it is covered by one node with T > tau or by at least two nodes;
 *                summing the covering weights over the L layers gives the row.
 * Index conventions: nodes are cluster indices, endpoints CLUSTER_SOURCE / CLUSTER_SINK.
 */
#ifndef HX_PLAN_MILP_HELIX_H
#define HX_PLAN_MILP_HELIX_H

#include <stdbool.h>
#include <stddef.h>

#include "core/layout.h"
#include "plan/milp.h"

struct hx_diag;
struct cluster;
struct model_profile;
struct model_throughput;
struct machine_profiles;

struct milp_helix_options {
    enum layout_connectivity conn; /* LAYOUT_STRICT (every shipped Helix run) or PARTIAL */
    bool remove_redundant;         /* drop the "enable" halves of the switch constraints */
    bool tight_caps;               /* strengthenings, off in Helix (see above) */
    bool work_bound;
    bool symmetry;
    bool path_work;
    bool arc_flow;
    bool cover_cuts;
};

/* Helix's defaults for its 70B runs: strict, remove_redundant on, no strengthening. */
void milp_helix_options_init(struct milp_helix_options *o);

/* A usable directed edge of the formulation (one flow and one switch column each). */
struct milp_helix_edge {
    int from;        /* CLUSTER_SOURCE or node index */
    int to;          /* CLUSTER_SINK or node index */
    int link;        /* index into cluster.links */
    double capacity; /* c_ab, tokens/s (bandwidth / token or activation bytes, §2.1) */
};

struct milp_helix;

/*
 * Build the model. All arguments are borrowed and must outlive the object; mp may be NULL
 * (node capacity = TP alone). Errors: HX_EINVAL (empty cluster, NULL args), HX_ENOTFOUND (a
 * node's GPU type has no throughput for this model; diag names node and type).
 */
int milp_helix_new(const struct cluster *c, const struct model_profile *m,
                   const struct model_throughput *tp, const struct machine_profiles *mp,
                   const struct milp_helix_options *opt, struct milp_helix **out,
                   struct hx_diag *diag);
void milp_helix_free(struct milp_helix *h);

/* The underlying model (borrowed), e.g. for sizes or a custom solve. */
const struct milp_model *milp_helix_model(const struct milp_helix *h);
struct milp_model *milp_helix_model_mut(struct milp_helix *h);

/* Directed edges, in column order (cluster link order, forward direction first). */
size_t milp_helix_n_edges(const struct milp_helix *h);
const struct milp_helix_edge *milp_helix_edge(const struct milp_helix *h, size_t e);

/* Column indices (for tests and custom constraints); -1 if out of range. */
int milp_helix_col_start(const struct milp_helix *h, int node);
int milp_helix_col_hold(const struct milp_helix *h, int node, int k);
int milp_helix_col_flow(const struct milp_helix *h, size_t e);
int milp_helix_col_switch(const struct milp_helix *h, size_t e);

/*
 * A complete solution vector for placement l (every node must hold 1..max_i layers within
 * L): positions, one-hot sizes, switches (1 on every edge valid under the connectivity rule,
 * c1/c2 as defined), and flows from an exact max-flow on the planner graph (flow.h). x has
 * milp_model_n_cols entries. *objective (may be NULL) gets the flow value. With `symmetry`
 * on, placements of interchangeable nodes are first permuted into the required order (the
 * objective is unchanged); *used (may be NULL, n_nodes entries) receives the layout that the
 * vector encodes. Errors: HX_EINVAL (size mismatch, empty node, range beyond L, k > max).
 */
int milp_helix_vector_from_layout(const struct milp_helix *h, const struct layout *l, double *x,
                                  double *objective, struct layout **used, struct hx_diag *diag);

/*
 * milp_helix_vector_from_layout + milp_start_set: warm-start the model with a complete
 * solution (Helix sets only s and b, §2.6; a complete vector is what CBC needs to accept it).
 */
int milp_helix_start_from_layout(struct milp_helix *h, const struct layout *l, double *objective,
                                 struct hx_diag *diag);

/*
 * Fix (fix = true) the placement columns to layout l, or release them (fix = false, l may be
 * NULL), so that a solve computes the flow of a given placement (§2.6 check). Same errors as
 * milp_helix_vector_from_layout.
 */
int milp_helix_fix_layout(struct milp_helix *h, const struct layout *l, bool fix,
                          struct hx_diag *diag);

/* Result of milp_helix_solve; release with milp_helix_result_release. */
struct milp_helix_result {
    enum milp_status status;
    double objective; /* tokens/s; NAN without a solution */
    double bound;
    double gap;
    double solve_s;
    struct layout *layout; /* placement of the incumbent (owned), NULL without one */
    double *flows;         /* per directed edge (milp_helix_n_edges), owned, NULL without one */
    size_t n_edges;
    bool start_used;
};

/*
 * Solve with the given backend and parameters (time limit, threads, gap...; NULL = defaults)
 * and extract the incumbent. Returns HX_OK when the solver ran (see out->status); errors as
 * for milp_solve, or HX_ESOLVER when the incumbent cannot be decoded.
 */
int milp_helix_solve(struct milp_helix *h, enum milp_backend backend,
                     const struct milp_params *params, struct milp_helix_result *out,
                     struct hx_diag *diag);
void milp_helix_result_release(struct milp_helix_result *r);

/*
 * Decode a solution vector: layout (s_i rounded, k = the b_ik set to 1) and flows per edge
 * (flows may be NULL). HX_ESOLVER if a node has no or several sizes set or s is fractional.
 */
int milp_helix_extract(const struct milp_helix *h, const double *x, struct layout **layout,
                       double *flows, struct hx_diag *diag);

#endif
