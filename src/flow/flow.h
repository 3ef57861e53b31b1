/*
 * flow.h - exact maximum flow (Dinic) on a generic capacitated digraph, plus the two flow
 * graphs Helix builds for a placement:
 *
 *   planner graph (§2.1, the MILP's objective): node i = in_i -> out_i with capacity
 *     min(TP(k_i), NIC/activation); source -> in_i (bandwidth/token_bytes) iff s_i = 0;
 *     out_i -> sink (bandwidth/token_bytes) iff e_i = L; out_i -> in_j (bandwidth /
 *     activation_bytes) for each direction of a compute link that is valid under the
 *     connectivity rule (strict e_i = s_j, or partial s_j <= e_i < e_j).
 *   simulator graph (§4, what the scheduler uses): from a simulator cluster file; coordinator
 *     NIC edges, each node split into in -> start -> end -> out (NIC in / s_in, TP(k), NIC out /
 *     s_out, with s = token_bytes when the node's only inbound (outbound) link is the source
 *     (sink), else token + activation bytes), link a -> b with bandwidth / token_bytes at the
 *     coordinator and bandwidth / (token + activation bytes) between compute nodes.
 *
 * Capacities are tokens/s. Results map back to cluster nodes and links (struct flow_report),
 * including a minimum cut (the saturated node and link edges from the source side of the
 * residual graph to the sink side) to name the bottleneck. Objects are not thread-safe; use
 * one flow_net per thread (they share the read-only cluster/model/throughput).
 */
#ifndef HX_FLOW_FLOW_H
#define HX_FLOW_FLOW_H

#include <stddef.h>

#include "core/layout.h"

struct hx_diag;
struct cluster;
struct model_profile;
struct model_throughput;
struct machine_profiles;

/* ---- generic max-flow -------------------------------------------------------------------- */

struct flow_graph; /* opaque; vertices 0..n-1, directed edges with capacity >= 0 */

/* New empty graph (create/free pair). Never fails (aborting allocator). */
struct flow_graph *flow_graph_new(void);
void flow_graph_free(struct flow_graph *g);

/* Drop every vertex and edge but keep the allocations (for re-building many graphs fast). */
void flow_graph_clear(struct flow_graph *g);

/* Add a vertex; returns its id (0, 1, 2, ...). */
int flow_graph_add_vertex(struct flow_graph *g);
/* Add n vertices; returns the first id. */
int flow_graph_add_vertices(struct flow_graph *g, int n);

/*
 * Add a directed edge u -> v with capacity cap (tokens/s; negative is clamped to 0, +INFINITY
 * allowed). Returns the edge id (0, 1, 2, ... in insertion order).
 */
int flow_graph_add_edge(struct flow_graph *g, int u, int v, double cap);

int flow_graph_n_vertices(const struct flow_graph *g);
int flow_graph_n_edges(const struct flow_graph *g);
double flow_graph_edge_capacity(const struct flow_graph *g, int e);

/*
 * Maximum s-t flow by Dinic's algorithm (exact up to floating-point rounding; residuals below
 * 1e-9 · max(1, cap) are treated as zero). Resets previous flows first. Returns 0 and *value,
 * or HX_EINVAL (bad s/t, s == t). If the value is unbounded (an infinite path) *value = INFINITY.
 */
int flow_graph_max_flow(struct flow_graph *g, int s, int t, double *value);

/* Flow on edge e after flow_graph_max_flow (0 <= flow <= cap). */
double flow_graph_edge_flow(const struct flow_graph *g, int e);

/*
 * After flow_graph_max_flow: 1 if v is on the source side of the minimum cut (reachable from s
 * in the residual graph), else 0. Edges u -> v with u on the source side and v not are the
 * (saturated) cut edges; their capacities sum to the flow value.
 */
int flow_graph_source_side(const struct flow_graph *g, int v);

/* Endpoints of edge e (-1 if out of range). */
int flow_graph_edge_tail(const struct flow_graph *g, int e);
int flow_graph_edge_head(const struct flow_graph *g, int e);

/* After flow_graph_max_flow: 1 if edge e crosses the minimum cut (tail on the source side, head
 * not), i.e. it is a saturated bottleneck edge. */
int flow_graph_edge_in_cut(const struct flow_graph *g, int e);

/* ---- Helix's flow graphs ----------------------------------------------------------------- */

/* Per compute node result (index = cluster node index). */
struct flow_node_result {
    int node;  /* cluster index */
    int start; /* first layer; n_layers 0 = unused node */
    int n_layers;
    double capacity; /* throughput capacity of the node edge (tokens/s); 0 if unused */
    double flow;     /* flow through the node */
    int in_cut; /* 1 if its node edge (planner) or any of its split edges (sim) is in the cut */
};

/* Per usable directed link (only edges present in the graph are reported). */
struct flow_link_result {
    int from;        /* CLUSTER_SOURCE or cluster node index */
    int to;          /* CLUSTER_SINK or cluster node index */
    int link;        /* planner: index into cluster.links; sim: index into sim_cluster.links */
    double capacity; /* tokens/s */
    double flow;
    int in_cut;
};

/*
 * A report of the last solve. Owned arrays; release with flow_report_release. For the
 * simulator graph, source_nic_in_cut / sink_nic_in_cut say whether the coordinator's NIC edges
 * are in the cut (always 0 for the planner graph, which has no coordinator NIC).
 */
struct flow_report {
    double value;
    int n_nodes;
    struct flow_node_result *nodes;
    int n_links;
    struct flow_link_result *links;
    int source_nic_in_cut;
    int sink_nic_in_cut;
};

void flow_report_release(struct flow_report *r);

struct flow_net; /* a Helix flow graph bound to a cluster (opaque) */

/*
 * Planner graph for cluster c (§2.1). All arguments are borrowed and must outlive the net; mp
 * may be NULL (no NIC term in node capacities). Build once, then evaluate many placements with
 * flow_net_planner_eval, which reuses every allocation. Errors: HX_ENOTFOUND (a node's type is
 * not in the model/throughput table).
 */
int flow_net_planner_new(const struct cluster *c, const struct model_profile *m,
                         const struct model_throughput *tp, const struct machine_profiles *mp,
                         enum layout_connectivity conn, struct flow_net **out,
                         struct hx_diag *diag);

/*
 * Max-flow value of placement l on a planner net (tokens/s). l must have the cluster's node
 * count; nodes with k > max_layers or ranges beyond L give HX_ERANGE (validate first with
 * layout_validate for line-numbered messages). Fast: no allocation after the first call.
 */
int flow_net_planner_eval(struct flow_net *net, const struct layout *l, double *value,
                          struct hx_diag *diag);

/*
 * Simulator graph (§4) for simulator cluster sc with placement l (l gives each node's k; its
 * node indices are cluster indices, matched via sim_node.node). Builds and solves; the value is
 * in *value. Errors: HX_ENOTFOUND (machine type not in the model or throughput table, or a sim
 * node without a layout entry), HX_ERANGE (k outside 1..max_layers for a node with links).
 */
int flow_net_sim_new(const struct sim_cluster *sc, const struct layout *l,
                     const struct model_profile *m, const struct model_throughput *tp,
                     struct flow_net **out, double *value, struct hx_diag *diag);

void flow_net_free(struct flow_net *net);

/* Report of the last solve (planner eval or sim build): per node, per link, min cut. */
int flow_net_report(const struct flow_net *net, struct flow_report *out);

/* The underlying graph of the last solve (read-only), e.g. for IWRR weights. */
const struct flow_graph *flow_net_graph(const struct flow_net *net);

/*
 * Convenience: planner-graph max flow of one placement (builds and frees a net). Fills *report
 * if report is non-NULL (caller releases it).
 */
int flow_planner_max_flow(const struct cluster *c, const struct layout *l,
                          const struct model_profile *m, const struct model_throughput *tp,
                          const struct machine_profiles *mp, enum layout_connectivity conn,
                          double *value, struct flow_report *report, struct hx_diag *diag);

#endif
