/*
 * layout.h - model placements ("layout solution" files, spec §1.8), the simulator cluster file
 * (§1.9) and Helix's generate_simulator_cluster (§2.9), which derives the second from a
 * complete cluster plus a placement.
 *
 * A placement gives each compute node i a contiguous half-open layer range
 * [start, start + n_layers); n_layers = 0 means the node is unused. Files name nodes
 * compute_node_{i+offset} with offset 2 ([Settings] offset). Different nodes may hold
 * overlapping ranges (replicas); one node's list may not repeat or skip layers.
 */
#ifndef HX_CORE_LAYOUT_H
#define HX_CORE_LAYOUT_H

#include <stddef.h>

struct hx_diag;
struct strbuf;
struct cluster;
struct model_profile;
struct machine_profiles;

/* ---- layouts ----------------------------------------------------------------------------- */

struct layout_node {
    int start;    /* first layer (0-based); 0 when n_layers == 0 */
    int n_layers; /* k; 0 = node holds nothing */
    int line;     /* line of compute_node_X in the file (0 if not from a file / not listed) */
};

struct layout {
    char *path; /* name for messages (may be NULL for built layouts) */
    int offset; /* 2 in every Helix file */
    int n_nodes;
    struct layout_node *nodes;
};

/* Allocate an all-empty layout for n_nodes (offset 2). Free with layout_free. */
struct layout *layout_new(int n_nodes);
void layout_free(struct layout *l);
struct layout *layout_clone(const struct layout *l);

/*
 * Read a layout file. n_nodes is the cluster size (nodes not listed are empty); pass 0 to size
 * the layout by the largest node named. Checks: [Settings] offset and [Solution] present; keys
 * are compute_node_<int>; node index (number - offset) in 0..n_nodes-1 (HX_ERANGE); value is a
 * list of ints, non-negative, contiguous ascending without repeats (HX_EPARSE, "not
 * contiguous"/"repeats layer"); no node listed twice. Messages name file:line:key.
 */
int layout_read_file(const char *path, int n_nodes, struct layout **out, struct hx_diag *diag);
int layout_parse_string(const char *text, const char *name, int n_nodes, struct layout **out,
                        struct hx_diag *diag);

/* Flags for layout_validate. */
enum layout_flags {
    LAYOUT_ALLOW_OVER_MAX = 1 << 0, /* accept k > max_layers (Helix's separate-pipeline files) */
    LAYOUT_REQUIRE_ALL = 1 << 1,    /* every node must hold >= 1 layer */
};

/*
 * Validate against a cluster and model: n_nodes equals the cluster's, every range ends at or
 * before L (HX_ERANGE "layers beyond model"), every node's type is in the model and k <=
 * max_layers for it (HX_ERANGE "exceeds max layers", unless LAYOUT_ALLOW_OVER_MAX). Messages
 * name file:line:key when the layout came from a file.
 */
int layout_validate(const struct layout *l, const struct cluster *c, const struct model_profile *m,
                    unsigned flags, struct hx_diag *diag);

/*
 * Write Helix's format exactly:
 *   [Settings]\noffset=2\n\n[Solution]\ncompute_node_2=[7, 8, 9, 10]\n...   (empty nodes "[]")
 * Every node 0..n_nodes-1 is written.
 */
void layout_write(const struct layout *l, struct strbuf *out);
int layout_write_file(const struct layout *l, const char *path, struct hx_diag *diag);

/* Connectivity rule between consecutive pipeline nodes (§2.3, §2.9). */
enum layout_connectivity {
    LAYOUT_STRICT = 0,  /* i -> j valid iff e_i == s_j (every shipped Helix ILP run) */
    LAYOUT_PARTIAL = 1, /* i -> j valid iff s_j <= e_i < e_j (overlap-tolerant) */
};

/*
 * Is the directed edge a -> b usable for a placement with L layers? a may be CLUSTER_SOURCE
 * (valid iff s_b == 0), b may be CLUSTER_SINK (valid iff e_a == L); compute -> compute follows
 * conn. Empty nodes have no valid edges. (CLUSTER_* come from cluster.h.)
 */
int layout_edge_valid(const struct layout *l, int n_layers_model, enum layout_connectivity conn,
                      int a, int b);

/* ---- simulator cluster files (§1.9) ------------------------------------------------------ */

struct sim_node {
    char name[48];         /* section name, e.g. "compute_node_17" */
    int node;              /* cluster index = number in the name - 2, or -1 if not that form */
    char machine_type[32]; /* machine_type="L4" */
    double vram_bytes;
    double nic_in;  /* bytes/s */
    double nic_out; /* bytes/s */
    double disk_speed;
    long kv_cache_capacity; /* token·layers; taken from the file (may be -1 in Helix files) */
    double activation_backup_capacity;
    int line;
};

/* A directed link; from/to index sim_cluster.nodes, or CLUSTER_SOURCE / CLUSTER_SINK. */
struct sim_link {
    char name[112]; /* e.g. "link_compute_node_2_compute_node_18" */
    int from;
    int to;
    double latency_s;
    double bandwidth; /* bytes/s */
    int line;
};

struct sim_cluster {
    char *path;
    double coord_nic_in;  /* [Coordinator] inbound_nic_speed (sink side) */
    double coord_nic_out; /* [Coordinator] outbound_nic_speed (source side) */
    size_t n_types;
    char (*types)[32]; /* [MachineTypes] types */
    int n_nodes;
    struct sim_node *nodes; /* in [ComputeNodes] names order */
    int n_links;
    struct sim_link *links; /* in [Links] names order */
};

/*
 * Read a simulator cluster file: [Coordinator], [MachineTypes], [ComputeNodes] names (each a
 * section with the 7 keys), [Links] names (each a section with in/out/latency/bandwidth; in/out
 * must be "source", "sink" or a listed node). Errors name file:line:key.
 */
int sim_cluster_read_file(const char *path, struct sim_cluster **out, struct hx_diag *diag);
int sim_cluster_parse_string(const char *text, const char *name, struct sim_cluster **out,
                             struct hx_diag *diag);
void sim_cluster_free(struct sim_cluster *sc);

/* Index of the node whose cluster index is `node` (compute_node_{node+2}), or -1. */
int sim_cluster_node_by_index(const struct sim_cluster *sc, int node);

/*
 * Write Helix's format (header comment, sections in Helix's order, floats as Python repr of
 * value/unit: NICs and disk "* mbps", vram "* MB", latency "* MilliSec").
 */
void sim_cluster_write(const struct sim_cluster *sc, struct strbuf *out);
int sim_cluster_write_file(const struct sim_cluster *sc, const char *path, struct hx_diag *diag);

/*
 * Helix's generate_simulator_cluster (§2.9): coordinator NICs from [SinkNode] inbound /
 * [SourceNode] outbound, machine types = every profile type section in file order, every
 * cluster node as compute_node_{i+2} (vram, NICs, disk from its profile; kv capacity =
 * model_kv_capacity for its k, 0 for an empty node or k > max_layers; backup 0). Links: every
 * valid directed edge (layout_edge_valid with conn) in cluster link order, forward direction
 * first, then reverse; then ONE pass dropping links into nodes (not the sink) without a valid
 * outgoing link, then ONE pass dropping links out of nodes (not the source) left without an
 * incoming link (not iterated to a fixed point: Helix quirk 12). Errors: HX_ENOTFOUND for a
 * type missing from the profiles, HX_EINVAL for a layout/cluster size mismatch.
 */
int sim_cluster_generate(const struct cluster *c, const struct layout *l,
                         const struct model_profile *m, const struct machine_profiles *mp,
                         enum layout_connectivity conn, struct sim_cluster **out,
                         struct hx_diag *diag);

#endif
