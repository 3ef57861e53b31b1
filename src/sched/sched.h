/*
 * sched.h - Helix's per-request scheduler (spec §5.1) and the state of its baselines (§5.2).
 *
 * A pure library: no I/O, no clock, no globals. The simulator drives it now and the live
 * coordinator later; times and random draws are injected by the caller.
 *
 * Max-flow scheduling: the placement's flow graph (§4) is solved once; every source or compute
 * node then splits its requests over its out-links in proportion to the flow they carry, with
 * Helix's "interleaved weighted round robin" (IWRR): among the candidates that pass the masks,
 * pick argmin(load_j + len/flow_j) (first index on ties) and add len/flow_j to its load. Masks
 * (in this order): Fail-Flow (flow_j < 5 % of the node's out-flow, zero-flow links included),
 * Fail-Length (prompt longer than the next node's prompt_max_tokens), Fail-KV (the next node's
 * KV expectation would cross its high-water mark, counting the node's full layer count). A
 * route is the list of hops (link, node, layer range, bandwidth) from the source to the sink;
 * decode iterations reuse their prompt's route and only add 1/flow to each hop's load; the KV
 * expectation int(len + avg_output * ratio) * layers is registered per hop and released when
 * the query finishes.
 *
 * Node failure: sched_node_set_alive() removes (or restores) a node, recomputes the flow and the
 * IWRR weights (loads restart at 0) and keeps the KV expectations of routes in flight.
 */
#ifndef HX_SCHED_SCHED_H
#define HX_SCHED_SCHED_H

#include <stddef.h>

struct hx_diag;

/* Endpoint ids in links and stages (compute nodes are 0..n_nodes-1). */
#define SCHED_SOURCE (-1)
#define SCHED_SINK (-2)

/* ---- topology ---------------------------------------------------------------------------- */

/* One compute node as the scheduler sees it. */
struct sched_node_desc {
    int start;             /* first layer held */
    int n_layers;          /* layers held; 0 = node unused (never routed to) */
    double tp;             /* inference throughput with n_layers layers, tokens/s (TP(k), §1.7) */
    double nic_in;         /* bytes/s */
    double nic_out;        /* bytes/s */
    long kv_capacity;      /* token·layers (simulator cluster file) */
    int prompt_max_tokens; /* longest prompt batch the node accepts (Fail-Length) */
};

/* A directed link; from = SCHED_SOURCE or a node, to = SCHED_SINK or a node. */
struct sched_link_desc {
    int from;
    int to;
    double bandwidth; /* bytes/s */
    double latency_s;
};

/* Everything the scheduler needs; borrowed by sched_new (copied). */
struct sched_topology {
    int n_layers;            /* model layers L */
    double token_bytes;      /* bytes per token at the coordinator */
    double activation_bytes; /* bytes per token between compute nodes (sent with token bytes) */
    double coord_nic_in;     /* sink-side NIC, bytes/s */
    double coord_nic_out;    /* source-side NIC, bytes/s */
    int n_nodes;
    const struct sched_node_desc *nodes;
    int n_links;
    const struct sched_link_desc *links; /* link order = the node's candidate order */
};

/* Scheduling parameters (Helix's KVParameters and constants). */
struct sched_params {
    double kv_hwm;          /* expected KV high-water mark: online 0.9, offline 0.85 */
    double kv_output_ratio; /* expected output length ratio: online 0.6, offline 1.0 */
    int avg_output_len;     /* 240 */
    double min_flow_frac;   /* Fail-Flow threshold: 0.05 */
};

/* Helix's experiment values for online (offline = 0) or offline (offline = 1) runs. */
void sched_params_helix(struct sched_params *p, int offline);

/* ---- routes ------------------------------------------------------------------------------ */

/* One hop: over link `link` to `node` (SCHED_SINK for the last hop), running [layer_start,
 * layer_end) there (empty for the sink), at `bandwidth` bytes/s (Helix's per-hop share). */
struct sched_stage {
    int link;
    int node;
    int layer_start;
    int layer_end;
    double bandwidth;
};

/* A route from the source to the sink. Owns stage[]; release with sched_route_release. */
struct sched_route {
    int n_stages;
    int cap;
    struct sched_stage *stage;
    int prompt_len; /* length the KV expectation was registered with (0 = none registered) */
};

void sched_route_release(struct sched_route *r);
/* Append a stage (grows the array). */
void sched_route_push(struct sched_route *r, const struct sched_stage *st);
/* Deep copy into *dst (dst is overwritten, not released). */
void sched_route_copy(struct sched_route *dst, const struct sched_route *src);
/*
 * Check a route covers layers 0..L-1 exactly once, contiguously, and ends at the sink:
 * returns 1 if so, else 0.
 */
int sched_route_complete(const struct sched_route *r, int n_layers);

/* ---- IWRR (exposed for tests and for other callers) ------------------------------------- */

/*
 * Helix's IWRR choice: among i with mask[i] != 0 (mask NULL = all), the first index minimising
 * loads[i] + workload / caps[i]; adds workload / caps[i] to loads[i] and returns i, or -1 when
 * no candidate is unmasked (nothing changes). caps of unmasked candidates must be > 0.
 */
int sched_iwrr_choose(const double *caps, double *loads, const unsigned char *mask, int n,
                      double workload);

/* ---- the max-flow scheduler -------------------------------------------------------------- */

struct sched; /* opaque */

/* Why a candidate hop was masked (sched_candidates). */
enum sched_verdict {
    SCHED_PASS = 0,
    SCHED_FAIL_FLOW = 1,   /* flow < min_flow_frac of the node's out-flow (or dead node) */
    SCHED_FAIL_LENGTH = 2, /* prompt longer than the next node's prompt_max_tokens */
    SCHED_FAIL_KV = 3,     /* next node's KV expectation would cross kv_hwm */
};

/* Flags for sched_route_prompt. */
enum sched_route_flags {
    SCHED_ROUTE_IGNORE_KV = 1 << 0, /* skip the Fail-KV mask (still registers the expectation) */
};

/*
 * Build the flow graph of §4 (coordinator NIC edges; node in -> start -> end -> out with
 * NIC/size, TP, NIC/size, where size is token bytes when the node's only in-link (out-link) is
 * the source (sink) and token + activation bytes otherwise; links at bandwidth / size), solve
 * it, and set up IWRR and KV expectations. Errors: HX_EINVAL (bad ids, ranges, non-positive
 * NICs or sizes; diag names the node or link).
 */
int sched_new(const struct sched_topology *t, const struct sched_params *p, struct sched **out,
              struct hx_diag *diag);
void sched_free(struct sched *s);

/* Max-flow value (tokens/s) of the current graph, and the flow on link i (0 if dead). */
double sched_flow_value(const struct sched *s);
double sched_link_flow(const struct sched *s, int link);
/* Bandwidth (bytes/s) a hop over link i would use: min(link, out-NIC share, in-NIC share). */
double sched_link_bandwidth(const struct sched *s, int link);

/*
 * Route a prompt of prompt_len tokens (§5.1): hop by hop from the source, masks then IWRR;
 * layers on the next node = all of them from the source, otherwise those after the current
 * node's last layer. On success fills *out (released first if it held stages), registers the
 * KV expectation and returns HX_OK. If some hop has no candidate, every IWRR load added on
 * earlier hops is restored, *out is left empty and HX_EFULL is returned (Helix's offline
 * rejection; online callers may retry with SCHED_ROUTE_IGNORE_KV). HX_EINFEASIBLE: a chosen
 * hop leaves no layer to run (a layout the scheduler cannot route).
 */
int sched_route_prompt(struct sched *s, int prompt_len, unsigned flags, struct sched_route *out);

/* A decode iteration along r: add 1/flow to the IWRR load of every hop (Helix update_loads). */
void sched_route_decode(struct sched *s, const struct sched_route *r);

/* The query of route r finished: release its KV expectation (no-op if none registered). */
void sched_route_finish(struct sched *s, struct sched_route *r);

/*
 * The candidates of `from` (SCHED_SOURCE or a node) for a prompt of prompt_len: writes up to
 * max entries of (link index, verdict) in link order; returns the number of out-links.
 */
int sched_candidates(const struct sched *s, int from, int prompt_len, int *links,
                     enum sched_verdict *verdicts, int max);

/*
 * Expected KV bottleneck usage (Helix KVExpectation.bottleneck_usage): per layer, 1 - Σ avail /
 * Σ total over the live nodes holding it, each node spreading its avail/total evenly over its
 * layers; the maximum over layers. Used by the offline feeder.
 */
double sched_kv_bottleneck(const struct sched *s);

/* Expected KV of a node: *avail and *total (token·layers). HX_EINVAL for a bad node. */
int sched_node_kv(const struct sched *s, int node, long *avail, long *total);

/*
 * Mark a node dead (alive = 0) or alive again and recompute the flow and IWRR weights (all
 * loads restart at 0). Routes in flight keep their KV expectations; new prompts avoid dead
 * nodes. Errors: HX_EINVAL (bad node).
 */
int sched_node_set_alive(struct sched *s, int node, int alive, struct hx_diag *diag);

/* ---- Swarm baseline state (§5.2) --------------------------------------------------------- */

struct sched_swarm; /* per sender: EMA per out-link and a min-heap of (priority, link) */

/*
 * Swarm state for n_senders senders (index 0 = source, 1 + i = node i); sender s has
 * n_out[s] out-links with ids out_links[s][0..n_out[s]) (ids order ties, smaller first).
 * eps = initial priority and EMA (0.05), gamma = smoothing (0.8).
 */
struct sched_swarm *sched_swarm_new(int n_senders, const int *n_out, const int *const *out_links,
                                    double eps, double gamma);
void sched_swarm_free(struct sched_swarm *sw);
/* choose_server(): pop the min (priority, link id), push it back with priority + ema; returns
 * the position of the chosen link in the sender's list. */
int sched_swarm_choose(struct sched_swarm *sw, int sender);
/* update_weights(): ema = gamma * dt + (1 - gamma) * ema for the sender's link at position pos. */
void sched_swarm_update(struct sched_swarm *sw, int sender, int pos, double dt);
double sched_swarm_ema(const struct sched_swarm *sw, int sender, int pos);

#endif
