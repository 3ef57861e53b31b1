/*
 * model.h - a model x GPU-type profile (our models/NAME.ini + profile CSVs, spec §1.4-§1.6) and
 * Helix's "typical token throughput" model (§1.7).
 *
 * Layer counts k are 1-based everywhere (k = layers a node holds, 1..max_layers); per-k arrays
 * are stored at index k-1. Profile curves map batch tokens to seconds per layer (the CSVs are in
 * ms and converted on load). The throughput table TP_t(k) depends on the whole cluster
 * composition (count per GPU type), so it is a separate object built per composition.
 */
#ifndef HX_CORE_MODEL_H
#define HX_CORE_MODEL_H

#include <stddef.h>

struct hx_diag;
struct cluster;
struct machine_profiles;

/* A profile curve: strictly increasing x (batch tokens) -> seconds per layer. */
struct model_curve {
    size_t n;
    double *x;
    double *t_s;
};

/* Constants of one GPU type for this model ([gpu TYPE] section). */
struct model_gpu {
    char type[32];
    int max_layers;
    int *kv_blocks;            /* [max_layers], vLLM blocks with k layers */
    int *prompt_max_requests;  /* [max_layers] */
    int *decode_max_tokens;    /* [max_layers] */
    int typical_layers;        /* from typical_layers (0 if the type is not listed) */
    int typical_layers_large;  /* from typical_layers_large */
    double initial_perf;       /* from initial_perf */
    struct model_curve prompt; /* empty (n = 0) when parsed without a base directory */
    struct model_curve decode;
};

struct model_profile {
    char *path;
    char name[64];
    int n_layers;            /* L */
    double layer_bytes;      /* parameter bytes per layer */
    double token_bytes;      /* bytes per token source->node, node->sink */
    double activation_bytes; /* bytes per token between compute nodes */
    int hidden_size;
    int num_heads;
    int num_kv_heads;
    int ffn_size;
    /* [throughput_model] constants (§1.4) */
    int avg_input_len;                /* 750 */
    int avg_output_len;               /* 240 */
    int max_input_len;                /* 2048 */
    int kv_block_size;                /* 16 */
    int decode_per_token_max_context; /* 1000 */
    double kv_cache_hwm;              /* 0.3 */
    int iterations;                   /* 10 */
    size_t n_gpus;
    struct model_gpu *gpus; /* in file order */
};

/*
 * Read a model profile INI and its CSVs. Profile paths in the INI are resolved relative to the
 * INI's directory, then relative to its parent (data/models/x.ini names profiles/... under
 * data/). Errors: HX_EIO, HX_EPARSE, HX_ENOTFOUND, HX_ERANGE (array length != max_layers,
 * non-positive values, CSV x not strictly increasing or not starting at 0, truncated CSV line).
 */
int model_profile_read_file(const char *path, struct model_profile **out, struct hx_diag *diag);

/*
 * Parse from memory. base_dir (may be NULL) is where profile paths are resolved; with NULL the
 * curves are left empty and model_prompt_time/decode_time fail with HX_ENOTFOUND.
 */
int model_profile_parse_string(const char *text, const char *name, const char *base_dir,
                               struct model_profile **out, struct hx_diag *diag);
void model_profile_free(struct model_profile *m);

/* Parse a 2-column CSV "batch_tokens,time_ms" (no header) into *out (ms -> s). */
int model_curve_parse_string(const char *text, const char *name, struct model_curve *out,
                             struct hx_diag *diag);
void model_curve_release(struct model_curve *c);

/* Index of a GPU type in m->gpus, or -1. */
int model_gpu_index(const struct model_profile *m, const char *type);

/*
 * Helix's linear_interpolate (§1.6): exact point if x is one; else linear between the largest
 * point <= x and the smallest point >= x. x below the first or above the last point ->
 * HX_ERANGE (Helix asserts). decode_time(0) = 0 through the (0,0) point. Seconds per layer.
 */
int model_curve_eval(const struct model_curve *c, double x, double *out_s);
int model_prompt_time(const struct model_gpu *g, double tokens, double *out_s);
int model_decode_time(const struct model_gpu *g, double tokens, double *out_s);

/* KV capacity in token·layers with k layers: kv_block_size · blocks[k] · k (0 if k out of range).
 */
long model_kv_capacity(const struct model_profile *m, const struct model_gpu *g, int k);

/* ---- throughput model (§1.7) ------------------------------------------------------------- */

/* Typical inference settings of one (type, k) (§1.7 step 5). */
struct model_settings {
    int prompt_max_requests;
    int prompt_max_tokens; /* prompt_max_requests · max_input_len */
    double R;              /* prompt_typical_requests (may be < 1) */
    int P;                 /* prompt_typical_tokens */
    int decode_max_context;
    int decode_max_tokens;
    int D; /* decode_typical_tokens */
};

/*
 * Throughput table for one cluster composition. counts[g] = nodes of model GPU g (0 = absent).
 * tp[g][k-1] = TP_g(k) in tokens/s and settings[g][k-1] for types present; NULL rows for absent
 * types. Immutable after construction: safe to share between threads.
 */
struct model_throughput {
    const struct model_profile *model; /* borrowed; must outlive this */
    size_t n_gpus;
    int *counts;
    int *typical;    /* typical layers used per type (0 if absent) */
    int large_table; /* 1 if the "large" typical table was chosen */
    double *perf;    /* final normalised perf per type (0 if absent) */
    double **tp;
    struct model_settings **settings;
};

/*
 * Build the table (§1.7: typical table choice, 10 Jacobi iterations, then TP and settings for
 * every k of every present type), with Python rounding (py_round/py_int). counts has m->n_gpus
 * entries. Errors: HX_EINVAL (no nodes), HX_ERANGE (a profile lookup beyond the CSV, or D >
 * decode_max_tokens[k], where Helix would assert; diag names type and k), HX_ENOTFOUND (no
 * curves loaded, or a present type without typical_layers/initial_perf).
 */
int model_throughput_new(const struct model_profile *m, const int *counts,
                         struct model_throughput **out, struct hx_diag *diag);
void model_throughput_free(struct model_throughput *t);

/* TP_g(k) in tokens/s; -1 if g is absent or k is outside 1..max_layers. */
double model_throughput_tp(const struct model_throughput *t, int g, int k);

/*
 * Count nodes per model GPU type: counts[g] (m->n_gpus entries, zeroed first). HX_ENOTFOUND
 * (naming the node and type) if a node's type is not in the model.
 */
int model_count_types(const struct model_profile *m, const struct cluster *c, int *counts,
                      struct hx_diag *diag);

/*
 * Convenience: model_count_types + model_throughput_new for a cluster's own composition.
 */
int model_throughput_for_cluster(const struct model_profile *m, const struct cluster *c,
                                 struct model_throughput **out, struct hx_diag *diag);

/*
 * Planner node capacity (§2.1): min(TP_g(k), min(nic_in, nic_out) / activation_bytes), where the
 * NICs come from machine profile of the type (mp may be NULL, or lack the type: TP alone).
 * Returns -1 if TP is undefined for (g, k).
 */
double model_node_capacity(const struct model_throughput *t, const struct machine_profiles *mp,
                           int g, int k);

/*
 * Compute-only upper bound (§2.4): sum over cluster nodes of max_k(k · cap_i(k)) / L, with
 * cap_i = model_node_capacity. (24-node 70B: 2803.861; cluster42 70B: 7104.258.) Errors as for
 * model_count_types.
 */
int model_upper_bound(const struct model_throughput *t, const struct machine_profiles *mp,
                      const struct cluster *c, double *out, struct hx_diag *diag);

#endif
