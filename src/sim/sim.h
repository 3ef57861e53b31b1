/*
 * sim.h - Helix's discrete-event cluster simulator (spec §6), restated in C.
 *
 * Events are ordered by (time, sequence number), the sequence being the creation order, exactly
 * as Helix's PriorityQueue of (time, Event) with increasing event uids; so a seeded run is
 * bit-identical across runs and its tie-breaking follows Helix's. Nodes execute layer by layer
 * (one event per layer batch, batching policy §6.4, cyclic march over layer queues), links have
 * latency and bandwidth reserved on sender NIC, link and receiver NIC for the sending time
 * (§6.2), KV caches are tracked per node in token·layers (§6.5), model loading happens first
 * (§6.6), online and offline feeders follow §6.7 and metrics §6.8.
 *
 * Simulated time is a double in seconds (not the project's int64 µs): Helix's float arithmetic
 * decides tie orders and floor()ed bandwidths, and reproducing its numbers needs the same.
 * The module is pure: no I/O, no clock; progress is reported through a callback.
 */
#ifndef HX_SIM_SIM_H
#define HX_SIM_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/layout.h"
#include "sched/sched.h"

struct hx_diag;
struct model_profile;
struct model_throughput;
struct sim_cluster;
struct layout;
struct sim_trace_data;

enum sim_policy {
    SIM_POLICY_MAXFLOW = 0,
    SIM_POLICY_SWARM = 1,
    SIM_POLICY_RANDOM = 2,
    SIM_POLICY_SHORTEST_QUEUE = 3,
};

enum sim_mode {
    SIM_MODE_ONLINE = 0,
    SIM_MODE_OFFLINE = 1,
};

/*
 * Helix behaviours that change results (spec §11). SIM_FIDELITY_HELIX sets all to 1;
 * SIM_FIDELITY_DEFAULT fixes the ones documented in docs/simulator.md.
 */
struct sim_quirks {
    int decode_double;      /* §11.4: per-layer decode time doubled when the batch has D == 1 */
    int cpu_overhead_act;   /* §11.5: overhead charges activation bytes also for token inputs */
    int offline_drop;       /* §11.7: offline KV-rejected queries are dropped (else retried) */
    int one_request_per_tx; /* §11.10: max-flow sends one request per link transmission (else
                               every request queued for a free link goes in one transmission) */
};

enum sim_fidelity {
    SIM_FIDELITY_HELIX = 0,
    SIM_FIDELITY_DEFAULT = 1,
};

void sim_quirks_set(struct sim_quirks *q, enum sim_fidelity f);

/* Everything one run needs. Pointers are borrowed for the duration of sim_run. */
struct sim_config {
    const struct model_profile *model;
    const struct model_throughput *tp; /* TP and inference settings for the composition */
    const struct sim_cluster *cluster;
    const struct layout *layout; /* indexed by cluster node index (sim_node.node) */
    const struct sim_trace_data *trace_data;
    enum sim_policy policy;
    enum sim_mode mode;
    int64_t seed; /* trace / length sampler seed; also Python's global stream for random */
    struct sim_quirks quirks;
    struct sched_params sched; /* KV expectation parameters (max-flow) */
    /* online */
    double rate_tok_s;  /* target token throughput of the trace */
    int64_t duration_s; /* trace length and measurement window (multiple of 3) */
    /* offline */
    int initial_queries;
    double warmup_s;  /* 60 */
    double measure_s; /* 600 */
    double feed_hwm;  /* 0.8 */
    /* instrumentation */
    int check_invariants; /* count violations of the invariants (cheap; on by default) */
    double series_dt_s;   /* throughput-over-time bucket (10 s) */
    void (*progress)(void *ctx, double sim_time_s, uint64_t events);
    void *progress_ctx;
};

/*
 * Defaults = Helix's experiment parameters (§6.7): online 1800 s window, hwm 0.9 / ratio 0.6;
 * offline 60 + 600 s, hwm 0.85 / ratio 1.0, feed_hwm 0.8; seed 0; fidelity helix; initial
 * query count and rate left 0 (callers choose them per setting).
 */
void sim_config_defaults(struct sim_config *c, enum sim_mode mode, enum sim_policy policy);

struct sim_latency {
    size_t n;
    double mean;
    double p50;
    double p95;
    double p99;
};

/* Percentiles as Helix takes them: sorted[int(n * p)]. Sorts vals in place. */
void sim_latency_stats(double *vals, size_t n, struct sim_latency *out);

/* (finish time, latency) of one finished iteration. */
struct sim_sample {
    double t;
    double latency;
};

struct sim_result {
    double start_s;  /* models loaded, traffic starts */
    double window_a; /* measurement window [a, b] */
    double window_b;
    double end_s; /* simulated time at the end */
    double decode_throughput;
    struct sim_latency prompt;
    struct sim_latency decode;
    uint64_t events;
    double flow_value; /* max-flow of the placement (all policies), tokens/s */
    long queries_issued;
    long queries_finished;
    long queries_rejected; /* offline max-flow KV rejections */
    long kv_overcommits;   /* online max-flow prompts routed ignoring the KV mask */
    /* per compute node (sim cluster order): busy time / window length */
    int n_nodes;
    double *node_util;
    /* every finished iteration inside the window, in finish order */
    size_t n_prompt;
    struct sim_sample *prompt_samples;
    size_t n_decode;
    struct sim_sample *decode_samples;
    /* decode tokens finished per series_dt bucket from start_s */
    size_t n_series;
    double series_dt;
    double *series;
    /* invariant checks (all 0 in a correct run) */
    long bad_layer_order;   /* a layer run out of order, twice, or a sink arrival missing layers */
    long kv_overflow;       /* a node's KV use exceeded its capacity */
    long bw_oversubscribed; /* a reservation exceeded a link's or NIC's available bandwidth */
    long max_kv_used_permille; /* max over nodes of 1000 * used / capacity */
    /* batch sizes: decode tokens per layer batch (batches with any, started in the window,
     * all nodes) vs the mean over used nodes of the typical-batch model's D (spec 1.7) */
    double mean_decode_batch;
    double typical_decode_batch;
};

void sim_result_release(struct sim_result *r);

/*
 * Run one simulation. Returns HX_OK and fills *out (caller releases), or: HX_EINVAL (bad
 * config: missing trace data, rate/duration/initial count, layout size), HX_ENOTFOUND (a
 * machine type not in the model), HX_ERANGE (a batch beyond a profile curve, where Helix
 * asserts), HX_EINFEASIBLE (max-flow cannot route: no path through the placement). diag names
 * the cause.
 */
int sim_run(const struct sim_config *cfg, struct sim_result *out, struct hx_diag *diag);

/*
 * Scheduler topology of a simulator cluster + layout (§4 inputs): node TP(k), NICs, KV
 * capacity, prompt_max_tokens; links in file order. Arrays are allocated into *nodes / *links
 * (caller frees with xfree). Errors: HX_ENOTFOUND (type), HX_EINVAL (layout mismatch),
 * HX_ERANGE (k beyond max layers).
 */
int sim_topology_build(const struct model_profile *m, const struct model_throughput *tp,
                       const struct sim_cluster *sc, const struct layout *l,
                       struct sched_topology *out, struct sched_node_desc **nodes,
                       struct sched_link_desc **links, struct hx_diag *diag);

/*
 * Derive a layout from a simulator cluster alone: k from each node's kv_cache_capacity
 * (= model_kv_capacity(k)), starts from the source links (start 0) propagated along links with
 * e_i = s_j. Nodes without links hold nothing. HX_EINVAL when the capacities or links are
 * ambiguous or inconsistent (diag says to pass a layout file). *out is sized by the largest
 * cluster node index + 1.
 */
int sim_layout_derive(const struct model_profile *m, const struct sim_cluster *sc,
                      struct layout **out, struct hx_diag *diag);

/*
 * Served-throughput score of a planner placement (the `helix plan --objective served`
 * scorer): derive the simulator cluster of (c, l) under conn (sim_cluster_generate), run it
 * offline with max-flow scheduling, `fidelity` and Helix's offline workload (initial_queries
 * queries, KV-fed; 60 s warm-up, measure_s window (<= 0: Helix's 600 s), the trace seed)
 * and return the decode tokens/s in
 * *value. A placement the simulator cannot route scores 0 (HX_OK). Other errors as sim_run.
 */
struct cluster;
struct machine_profiles;
int sim_served_offline(const struct model_profile *m, const struct model_throughput *tp,
                       const struct machine_profiles *mp, const struct cluster *c,
                       const struct layout *l, enum layout_connectivity conn,
                       const struct sim_trace_data *td, enum sim_fidelity fidelity,
                       int initial_queries, double measure_s, int64_t seed, double *value,
                       struct hx_diag *diag);

#endif
