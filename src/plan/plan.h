/*
 * plan.h - model placement: Helix's baselines (spec §3), Helix's MILP (§2, through
 * milp_helix.h), our own planner ("auto"), an independent validity checker and renderers for
 * the outputs of `helix plan` (plan.json, placement.svg).
 *
 * A problem is a cluster, a model, its throughput table (§1.7) and the machine profiles
 * (node capacity = min(TP(k), NIC / activation), §2.1). Every placement is scored by the
 * exact max-flow of the planner graph (flow.h) under the chosen connectivity (strict, as in
 * every shipped Helix run, or partial). The module does no I/O and never reads the clock:
 * time limits use the clock the caller injects (struct plan_options.now).
 *
 * auto, in one line: binary search on a target throughput F with a per-F assignment of
 * nodes to pipeline stages (each stage a group of nodes sharing a layer range whose summed
 * capacity reaches F), region-aware ordering of stages, then local search over groups and
 * stage order scored by the exact max-flow; baselines are candidates; small clusters are
 * finished by CBC on Helix's formulation, warm-started, which can prove optimality. The upper
 * bound is the flow-clamped work bound (docs/planning.md), or the MILP bound when proven.
 */
#ifndef HX_PLAN_PLAN_H
#define HX_PLAN_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/layout.h"

struct hx_diag;
struct strbuf;
struct cluster;
struct model_profile;
struct model_throughput;
struct machine_profiles;
struct flow_report;

/* Placement methods of `helix plan --method`. */
enum plan_method {
    PLAN_METHOD_AUTO = 0,    /* our planner (default) */
    PLAN_METHOD_PETALS,      /* §3.1, byte-equal to Helix's petals_sol.ini */
    PLAN_METHOD_SWARM,       /* §3.2, byte-equal to Helix's swarm_sol.ini */
    PLAN_METHOD_HOMOGENEOUS, /* §3.3 */
    PLAN_METHOD_SEPARATE,    /* §3.4: one pipeline per GPU type (+ one mixed of the rest) */
    PLAN_METHOD_MEMORY,      /* one pipeline, layers proportional to memory (llama.cpp RPC) */
    PLAN_METHOD_RAM_RING,    /* ring ordered and partitioned by memory (exo) */
    PLAN_METHOD_MILP,        /* Helix's MILP on CBC, warm-started from the best baseline */
    PLAN_METHOD_COUNT
};

/* "auto", "petals", ...; never NULL. */
const char *plan_method_name(enum plan_method m);
/* Parse a method name; HX_EINVAL (diag lists the valid names) if unknown. */
int plan_method_parse(const char *name, enum plan_method *out, struct hx_diag *diag);

/* The problem (all borrowed; must outlive every call that uses it). mp may be NULL. */
struct plan_problem {
    const struct cluster *cluster;
    const struct model_profile *model;
    const struct model_throughput *tp;
    const struct machine_profiles *mp;
    enum layout_connectivity conn;
};

/* What plan_solve maximises. */
enum plan_objective {
    PLAN_OBJECTIVE_MAXFLOW = 0, /* Helix's objective: planner-graph max-flow (tokens/s) */
    PLAN_OBJECTIVE_SERVED,      /* served decode tokens/s, as scored by plan_options.served */
};

/* "maxflow", "served"; never NULL. */
const char *plan_objective_name(enum plan_objective o);
/* Parse an objective name; HX_EINVAL (diag lists the valid names) if unknown. */
int plan_objective_parse(const char *name, enum plan_objective *out, struct hx_diag *diag);

/*
 * Served-throughput scorer for PLAN_OBJECTIVE_SERVED (the plan module cannot include the
 * simulator; the CLI passes one that simulates the placement). Fills *value with served
 * decode tokens/s (higher is better; 0 if the placement serves nothing) and returns HX_OK,
 * or an error code (the candidate is then skipped).
 */
typedef int (*plan_served_fn)(void *user, const struct plan_problem *p, const struct layout *l,
                              double *value, struct hx_diag *diag);

/* Progress while solving: elapsed wall seconds, incumbent and bound (tokens/s). */
typedef void (*plan_progress_fn)(void *user, double elapsed_s, double incumbent, double bound,
                                 const char *phase);

struct plan_options {
    enum plan_method method;
    double time_limit_s; /* wall seconds for auto / milp (default 60) */
    int threads;         /* CBC threads (default 1) */
    /* SERVED: candidates planned and scored at once, one thread each (1..8; default 1); the
     * scorer is then called from several threads at a time and must be thread-safe */
    int jobs;
    int64_t seed;   /* Helix's seed for petals/swarm/homogeneous (0); auto's RNG seed */
    int max_stages; /* pipeline depth bound: nodes on any source->sink path; 0 = none */
    long max_evals; /* auto's search budget in max-flow evaluations; 0 = by cluster size */
    double (*now)(void *user); /* wall clock in seconds (injected; NULL = no time limit) */
    void *now_user;
    plan_progress_fn progress; /* may be NULL */
    void *progress_user;
    /* objective (method auto only). SERVED runs auto over a grid of depth bounds and layer
     * caps (each maximising max-flow) and keeps the candidate that `served` scores best. */
    enum plan_objective objective;
    plan_served_fn served; /* required for SERVED */
    /* auto's search-space restriction: each node holds at most ceil(pct % of its type's max
     * layers), leaving the rest of its memory to the KV cache (baselines, exact and MILP
     * stages are not restricted); 0 or 100 = none. Set per candidate by SERVED. */
    int layer_cap_pct;
    void *served_user;
    /* auto's annealing score: 0 = max-flow; e > 0 = max-flow x (KV tokens of the scarcest
     * layer / pipeline depth)^e, a Little's-law stand-in for served tokens (in flight bounded
     * by KV, per-token latency by depth). Set per candidate by SERVED. */
    double kv_depth_exp;
    /* with kv_depth_exp > 0: a chain's stage sizes (all stages still >= its max-flow
     * throughput) maximise the smallest stage KV instead of favouring late stages */
    int kv_sizing;
};

/* Defaults: auto, maxflow objective, 60 s, 1 thread, seed 0, no depth bound, no clock, no
 * progress, no scorer. */
void plan_options_init(struct plan_options *o);

/* Result of plan_solve. Release with plan_result_release. */
struct plan_result {
    enum plan_method method;
    struct layout *layout; /* owned */
    double objective;      /* planner-graph max-flow of layout (tokens/s) */
    double upper_bound;    /* proven bound on the best objective of this problem */
    double gap;            /* (upper_bound - objective) / objective; INFINITY if objective 0 */
    double solve_s;        /* wall seconds (0 without a clock) */
    bool proven;           /* upper_bound == objective (within 1e-6 relative) */
    double served;         /* SERVED objective: the scorer's value of layout (else 0) */
    int candidates;        /* SERVED objective: candidates scored (else 0) */
    char bound_kind[32];   /* "compute", "clamped-work", "milp", ... */
    char detail[256];      /* how the result was found (for plan.json / logs) */
};

void plan_result_release(struct plan_result *r);

/*
 * Plan with o->method. Returns 0 and fills *out, or: HX_EINVAL (bad arguments, size mismatch),
 * HX_EINFEASIBLE (no placement satisfies the constraints, e.g. --max-stages too small, or
 * the nodes cannot hold every layer; diag says why), HX_ENOTFOUND (a node type missing from
 * the model), HX_ESOLVER (the MILP solver failed). Deterministic for a given seed (auto's
 * search is, apart from where the time limit cuts it).
 */
int plan_solve(const struct plan_problem *p, const struct plan_options *o, struct plan_result *out,
               struct hx_diag *diag);

/* ---- baselines (spec §3); each returns a new layout (*out) or an error ------------------ */

int plan_petals(const struct plan_problem *p, int64_t seed, struct layout **out,
                struct hx_diag *diag);
int plan_swarm(const struct plan_problem *p, struct layout **out, struct hx_diag *diag);
int plan_homogeneous(const struct plan_problem *p, int64_t seed, struct layout **out,
                     struct hx_diag *diag);
int plan_separate(const struct plan_problem *p, struct layout **out, struct hx_diag *diag);
int plan_memory(const struct plan_problem *p, struct layout **out, struct hx_diag *diag);
int plan_ram_ring(const struct plan_problem *p, struct layout **out, struct hx_diag *diag);

/* Node capacity of cluster node i holding k layers (§2.1); -1 if undefined. */
double plan_node_capacity(const struct plan_problem *p, int node, int k);
/* Max layers of cluster node i's type for this model (0 if the type is unknown). */
int plan_node_max_layers(const struct plan_problem *p, int node);

/* Planner-graph max flow of l (tokens/s) under p->conn. */
int plan_score(const struct plan_problem *p, const struct layout *l, double *value,
               struct hx_diag *diag);

/*
 * Upper bound on the optimum for this problem: min of the compute-only bound (§2.4) and the
 * flow-clamped work bound: F * L <= sum_i max_k k * min(cap_i(k), F) (each token crosses L
 * layers; node i carries at most min(cap_i(k_i), F)), and of the source / sink cut.
 */
double plan_upper_bound(const struct plan_problem *p, char *kind, size_t kind_n);

/*
 * Longest source->sink path, counted in nodes, of the valid-edge graph of l restricted to
 * nodes that carry flow in `report` (report may be NULL: all used nodes). 0 if no path.
 */
int plan_depth(const struct plan_problem *p, const struct layout *l,
               const struct flow_report *report);

/* ---- independent checker ---------------------------------------------------------------- */

/* A directed edge with its flow, as reported in plan.json. */
struct plan_edge_flow {
    int from; /* CLUSTER_SOURCE or node index */
    int to;   /* CLUSTER_SINK or node index */
    double flow;
};

/*
 * Check a plan without the planner's own code paths: every node's range lies in [0, L) and is
 * contiguous, k <= max layers, k * layer_bytes <= VRAM (when mp has the type), every layer is
 * held by some node, each edge joins a linked pair and is valid under the connectivity rule,
 * edge flow <= link capacity (bandwidth / bytes, recomputed here), conservation at every node,
 * node inflow <= TP(k), flow out of the source == objective, and a fresh max-flow (flow.h) of
 * the layout == objective (relative tolerance 1e-6). With max_stages > 0 also the depth bound.
 * Returns 0 or HX_EINFEASIBLE with diag naming the first violation.
 */
int plan_validate(const struct plan_problem *p, const struct layout *l,
                  const struct plan_edge_flow *edges, int n_edges, double objective, int max_stages,
                  struct hx_diag *diag);

/* Per-edge flows of a layout's max-flow (owned array in *out, count in *n). */
int plan_edge_flows(const struct plan_problem *p, const struct layout *l,
                    struct plan_edge_flow **out, int *n, double *value, struct hx_diag *diag);

/* ---- outputs ---------------------------------------------------------------------------- */

/*
 * plan.json: {"method", "model", "cluster", "connectivity", "objective", "upper_bound", "gap",
 * "solve_seconds", "proven", "bound_kind", "detail", "nodes": [{"node", "name", "type",
 * "start", "end", "n_layers", "capacity", "flow"}], "edges": [{"from", "to", "flow",
 * "capacity"}]} (flows > 0 only; endpoints "source", "sink" or node indices).
 */
int plan_render_json(const struct plan_problem *p, const struct plan_result *r, struct strbuf *out,
                     struct hx_diag *diag);

/* placement.svg: layer axis, one bar per node coloured by GPU type, links width ∝ flow. */
int plan_render_svg(const struct plan_problem *p, const struct plan_result *r, struct strbuf *out,
                    struct hx_diag *diag);

#endif
