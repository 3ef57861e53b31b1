/*
 * cluster.h - the complete cluster file (spec §1.2) and the machine profile file (§1.3).
 *
 * A cluster is N compute nodes 0..N-1 (each with a GPU type name), a coordinator that plays
 * two roles, source and sink, and undirected links with a bandwidth (bytes/s, the number as
 * written times its unit, §0.1) and a latency (seconds). The source and sink have fixed
 * negative indices so one int can name any endpoint. Links are normalised so that a is the
 * source or the smaller compute index and b is the sink or the larger compute index; they are
 * kept in file order (generate_simulator_cluster's output order depends on it, §2.9).
 */
#ifndef HX_CORE_CLUSTER_H
#define HX_CORE_CLUSTER_H

#include <stddef.h>

struct hx_diag;

/* Endpoint indices for the coordinator's two roles (compute nodes are 0..n_nodes-1). */
#define CLUSTER_SOURCE (-1)
#define CLUSTER_SINK (-2)

/* Longest GPU type name accepted ("T4x4", "A100", ...), including the NUL. */
#define CLUSTER_TYPE_MAX 32

struct cluster_node {
    char type[CLUSTER_TYPE_MAX]; /* GPU type, as written in `type=` */
    int from_source;             /* 1 if a link source->node exists */
    int to_sink;                 /* 1 if a link node->sink exists */
    int line;                    /* line of [ComputeNode-i] */
};

/*
 * An undirected link. a = CLUSTER_SOURCE or a compute index; b = CLUSTER_SINK or a compute
 * index > a. A source link is usable only source->b, a sink link only a->sink, a compute link
 * in both directions.
 */
struct cluster_link {
    int a;
    int b;
    double bandwidth; /* bytes/s (as written, §0.1) */
    double latency_s;
    int line; /* line of the [Link-a-b] header */
};

struct cluster {
    char *path; /* name used in messages */
    int n_nodes;
    struct cluster_node *nodes;
    int n_links;
    struct cluster_link *links;
    /*
     * link_of[(a+2)*(n_nodes+2) + (b+2)] = index into links of the link joining a and b (either
     * order), or -1. Use cluster_link_index() rather than indexing directly.
     */
    int *link_of;
};

/*
 * Read a complete cluster file. Validates: [NodeNames] total_compute_nodes, one
 * [ComputeNode-i] per i with `type` and `connected_nodes`, [SourceNode]/[SinkNode]
 * connected_nodes, every [Link-a-b] (a/b = source, sink or 0..N-1) with bandwidth and latency,
 * no duplicate links, and that connected_nodes agree with the links. Errors: HX_EIO,
 * HX_EPARSE, HX_ENOTFOUND, HX_ERANGE (node out of range); diag names file:line:key.
 */
int cluster_read_file(const char *path, struct cluster **out, struct hx_diag *diag);
int cluster_parse_string(const char *text, const char *name, struct cluster **out,
                         struct hx_diag *diag);
void cluster_free(struct cluster *c);

/* Index of the link joining endpoints a and b (order-free, CLUSTER_SOURCE/SINK allowed), or -1. */
int cluster_link_index(const struct cluster *c, int a, int b);

/* Name of an endpoint for messages: "source", "sink" or the decimal index (buf of >= 16). */
const char *cluster_endpoint_name(int v, char *buf, size_t n);

/* ---- machine profiles (§1.3) ------------------------------------------------------------ */

struct machine_profile {
    char name[CLUSTER_TYPE_MAX]; /* section name: "SourceNode", "SinkNode", "A100", ... */
    double nic_in;               /* bytes/s; -1 where Helix writes -1 */
    double nic_out;
    double disk_speed;
    double vram_bytes;
    int line;
};

/* source/sink are the [SourceNode]/[SinkNode] sections; types[] every other section, file order. */
struct machine_profiles {
    char *path;
    struct machine_profile source;
    struct machine_profile sink;
    size_t n_types;
    struct machine_profile *types;
};

/* Read machine_profiles.ini; every section needs all four keys. Errors as for clusters. */
int machine_profiles_read_file(const char *path, struct machine_profiles **out,
                               struct hx_diag *diag);
int machine_profiles_parse_string(const char *text, const char *name, struct machine_profiles **out,
                                  struct hx_diag *diag);
void machine_profiles_free(struct machine_profiles *mp);

/* The profile of a GPU type, or NULL. */
const struct machine_profile *machine_profiles_find(const struct machine_profiles *mp,
                                                    const char *type);

#endif
