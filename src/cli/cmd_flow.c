/*
 * cmd_flow.c - `helix flow`: the max-flow throughput of a placement (Helix's objective, spec
 * §2.1/§4). Reads a model profile, a complete cluster and a layout file, builds the throughput
 * table for the cluster's composition, and prints the flow, the compute-only upper bound, a
 * per-node table and the bottleneck (the saturated nodes and links of a minimum cut).
 * --simulator-cluster evaluates the simulator's graph (§4) instead of the planner's.
 * Invalid input (unreadable, malformed or inconsistent files) exits 2 with the file:line:key.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "cli/cli.h"
#include "core/core.h"
#include "flow/flow.h"

#define DEFAULT_PROFILES "data/machine_profiles.ini"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: helix flow --model NAME --cluster FILE --layout FILE [options]\n"
            "\n"
            "Max-flow throughput (tokens/s) of a model placement on a cluster, as Helix's\n"
            "planner scores it, with the compute-only upper bound, per-node utilisation and\n"
            "the bottleneck (saturated nodes and links of a minimum cut).\n"
            "\n"
            "  --model NAME               model profile: a name (llama2_70b, llama1_30b ->\n"
            "                             data/models/NAME.ini) or a path   (required)\n"
            "  --cluster FILE             complete cluster file, or a bundled name\n"
            "                             (single24 -> data/clusters/single24.ini) (required)\n"
            "  --layout FILE              layout solution file (compute_node_N=[...]), or a\n"
            "                             bundled name (single24_70b/ilp ->\n"
            "                             data/layouts/single24_70b/ilp_sol.ini)   (required)\n"
            "  --partial                  partial connectivity: i->j valid iff s_j <= e_i < e_j\n"
            "                             (default: strict, e_i == s_j, as every Helix ILP run)\n"
            "  --simulator-cluster FILE   evaluate the simulator's graph on this\n"
            "                             simulator_cluster.ini (NIC split nodes, token +\n"
            "                             activation bytes) instead of the planner graph\n"
            "  --machine-profiles FILE    GPU NIC/VRAM profiles (default %s)\n"
            "  --json                     print one JSON object instead of the table\n"
            "  -h, --help                 show this help\n"
            "\n"
            "Exit status: 0 ok, 2 usage error or invalid input (message names file:line:key),\n"
            "1 other failure.\n",
            DEFAULT_PROFILES);
}

/* Exit code for a library error: bad input -> 2, anything else -> 1. */
static int fail_with(const struct hx_diag *d, int rc)
{
    fprintf(stderr, "hx: error: %s\n", d->msg[0] ? d->msg : hx_strerror(rc));
    return (rc == HX_ENOMEM) ? CLI_EXIT_RUNTIME : CLI_EXIT_USAGE;
}

/*
 * A path as given (or relative to the bundled data), else a bundled name: "single24" ->
 * data/clusters/single24.ini, "single24_70b/ilp" -> data/layouts/single24_70b/ilp_sol.ini.
 * Unresolvable arguments are passed on as given, so the reader reports them.
 */
static void resolve_named(const char *arg, const char *prefix, const char *suffix, char *out,
                          size_t n)
{
    if (cli_resolve_data(arg, out, n) == 0) {
        return;
    }
    if (!strstr(arg, ".ini")) {
        char rel[PATH_MAX];
        snprintf(rel, sizeof(rel), "%s%s%s", prefix, arg, suffix);
        if (cli_resolve_data(rel, out, n) == 0) {
            return;
        }
    }
    snprintf(out, n, "%s", arg);
}

static const char *ep_name(int v, char *buf, size_t n)
{
    return cluster_endpoint_name(v, buf, n);
}

static void print_text(const struct cluster *c, const struct model_profile *m,
                       const struct flow_report *r, double ub, const char *graph, const char *conn)
{
    printf("model        %s (%d layers)\n", m->name, m->n_layers);
    printf("cluster      %s (%d nodes, %d links)\n", c->path, c->n_nodes, c->n_links);
    printf("graph        %s, %s connectivity\n", graph, conn);
    printf("throughput   %.4f tokens/s\n", r->value);
    printf("upper bound  %.4f tokens/s (compute only)\n\n", ub);
    printf("%5s  %-6s  %-9s  %12s  %12s  %6s\n", "node", "type", "layers", "capacity", "flow",
           "util");
    for (int i = 0; i < r->n_nodes; i++) {
        const struct flow_node_result *n = &r->nodes[i];
        char layers[32];
        if (n->n_layers > 0) {
            snprintf(layers, sizeof(layers), "%d-%d", n->start, n->start + n->n_layers - 1);
        } else {
            snprintf(layers, sizeof(layers), "-");
        }
        double util = n->capacity > 0 ? 100.0 * n->flow / n->capacity : 0;
        printf("%5d  %-6s  %-9s  %12.4f  %12.4f  %5.1f%%%s\n", n->node,
               n->node < c->n_nodes ? c->nodes[n->node].type : "?", layers, n->capacity, n->flow,
               util, n->in_cut ? "  *" : "");
    }
    printf("\nbottleneck (minimum cut, capacity = throughput):\n");
    int any = 0;
    for (int i = 0; i < r->n_nodes; i++) {
        const struct flow_node_result *n = &r->nodes[i];
        if (n->in_cut) {
            printf("  node %d (%s, %d layers): %.4f tokens/s\n", n->node,
                   n->node < c->n_nodes ? c->nodes[n->node].type : "?", n->n_layers, n->capacity);
            any = 1;
        }
    }
    for (int e = 0; e < r->n_links; e++) {
        const struct flow_link_result *l = &r->links[e];
        if (l->in_cut) {
            char a[16];
            char b[16];
            printf("  link %s -> %s: %.4f tokens/s\n", ep_name(l->from, a, sizeof(a)),
                   ep_name(l->to, b, sizeof(b)), l->capacity);
            any = 1;
        }
    }
    if (r->source_nic_in_cut) {
        printf("  coordinator outbound NIC\n");
        any = 1;
    }
    if (r->sink_nic_in_cut) {
        printf("  coordinator inbound NIC\n");
        any = 1;
    }
    if (!any) {
        printf("  (none: no path from source to sink; every placement edge is invalid)\n");
    }
}

static cJSON *endpoint_json(int v)
{
    if (v == CLUSTER_SOURCE) {
        return cJSON_CreateString("source");
    }
    if (v == CLUSTER_SINK) {
        return cJSON_CreateString("sink");
    }
    return cJSON_CreateNumber(v);
}

static int print_json(const struct cluster *c, const struct model_profile *m,
                      const struct flow_report *r, double ub, const char *graph, const char *conn)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", m->name);
    cJSON_AddStringToObject(o, "cluster", c->path);
    cJSON_AddStringToObject(o, "graph", graph);
    cJSON_AddStringToObject(o, "connectivity", conn);
    cJSON_AddNumberToObject(o, "throughput", r->value);
    cJSON_AddNumberToObject(o, "upper_bound", ub);
    cJSON *nodes = cJSON_AddArrayToObject(o, "nodes");
    cJSON *bn = cJSON_CreateArray();
    for (int i = 0; i < r->n_nodes; i++) {
        const struct flow_node_result *n = &r->nodes[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "node", n->node);
        cJSON_AddStringToObject(j, "type", n->node < c->n_nodes ? c->nodes[n->node].type : "?");
        cJSON_AddNumberToObject(j, "start", n->start);
        cJSON_AddNumberToObject(j, "layers", n->n_layers);
        cJSON_AddNumberToObject(j, "capacity", n->capacity);
        cJSON_AddNumberToObject(j, "flow", n->flow);
        cJSON_AddNumberToObject(j, "utilization", n->capacity > 0 ? n->flow / n->capacity : 0);
        cJSON_AddBoolToObject(j, "bottleneck", n->in_cut);
        cJSON_AddItemToArray(nodes, j);
        if (n->in_cut) {
            cJSON_AddItemToArray(bn, cJSON_CreateNumber(n->node));
        }
    }
    cJSON *links = cJSON_AddArrayToObject(o, "links");
    cJSON *bl = cJSON_CreateArray();
    for (int e = 0; e < r->n_links; e++) {
        const struct flow_link_result *l = &r->links[e];
        if (l->flow <= 0 && !l->in_cut) {
            continue; /* only links that carry flow or bind */
        }
        cJSON *j = cJSON_CreateObject();
        cJSON_AddItemToObject(j, "from", endpoint_json(l->from));
        cJSON_AddItemToObject(j, "to", endpoint_json(l->to));
        cJSON_AddNumberToObject(j, "capacity", l->capacity);
        cJSON_AddNumberToObject(j, "flow", l->flow);
        cJSON_AddItemToArray(links, j);
        if (l->in_cut) {
            cJSON *k = cJSON_CreateObject();
            cJSON_AddItemToObject(k, "from", endpoint_json(l->from));
            cJSON_AddItemToObject(k, "to", endpoint_json(l->to));
            cJSON_AddNumberToObject(k, "capacity", l->capacity);
            cJSON_AddItemToArray(bl, k);
        }
    }
    cJSON *b = cJSON_AddObjectToObject(o, "bottleneck");
    cJSON_AddItemToObject(b, "nodes", bn);
    cJSON_AddItemToObject(b, "links", bl);
    cJSON_AddBoolToObject(b, "coordinator_out", r->source_nic_in_cut);
    cJSON_AddBoolToObject(b, "coordinator_in", r->sink_nic_in_cut);
    char *s = cJSON_Print(o);
    int rc = CLI_EXIT_OK;
    if (!s) {
        rc = cli_error("out of memory printing JSON");
    } else {
        printf("%s\n", s);
        cJSON_free(s);
    }
    cJSON_Delete(o);
    return rc;
}

int cmd_flow(int argc, char **argv)
{
    enum {
        OPT_MODEL = 256,
        OPT_CLUSTER,
        OPT_LAYOUT,
        OPT_PARTIAL,
        OPT_JSON,
        OPT_PROFILES,
        OPT_SIMCLUSTER,
    };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, OPT_MODEL},
        {"cluster", required_argument, NULL, OPT_CLUSTER},
        {"layout", required_argument, NULL, OPT_LAYOUT},
        {"partial", no_argument, NULL, OPT_PARTIAL},
        {"json", no_argument, NULL, OPT_JSON},
        {"machine-profiles", required_argument, NULL, OPT_PROFILES},
        {"simulator-cluster", required_argument, NULL, OPT_SIMCLUSTER},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model_arg = NULL;
    const char *cluster_arg = NULL;
    const char *layout_arg = NULL;
    const char *profiles_arg = DEFAULT_PROFILES;
    const char *sim_arg = NULL;
    int partial = 0;
    int json = 0;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case OPT_MODEL:
            model_arg = optarg;
            break;
        case OPT_CLUSTER:
            cluster_arg = optarg;
            break;
        case OPT_LAYOUT:
            layout_arg = optarg;
            break;
        case OPT_PARTIAL:
            partial = 1;
            break;
        case OPT_JSON:
            json = 1;
            break;
        case OPT_PROFILES:
            profiles_arg = optarg;
            break;
        case OPT_SIMCLUSTER:
            sim_arg = optarg;
            break;
        case ':':
            return cli_usage_error("flow", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("flow", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return cli_usage_error("flow", "unexpected argument '%s'", argv[optind]);
    }
    if (!model_arg || !cluster_arg || !layout_arg) {
        return cli_usage_error("flow", "--model, --cluster and --layout are required");
    }
    char model_path[PATH_MAX];
    char cluster_path[PATH_MAX];
    char layout_path[PATH_MAX];
    char profiles_path[PATH_MAX];
    char sim_path[PATH_MAX];
    if (cli_resolve_model_profile(model_arg, model_path, sizeof(model_path)) != 0) {
        return cli_usage_error("flow", "model profile '%s' not found (tried %s)", model_arg,
                               model_path);
    }
    /* paths that do not resolve are passed on as given: the reader reports them */
    resolve_named(cluster_arg, "data/clusters/", ".ini", cluster_path, sizeof(cluster_path));
    resolve_named(layout_arg, "data/layouts/", "_sol.ini", layout_path, sizeof(layout_path));
    if (cli_resolve_data(profiles_arg, profiles_path, sizeof(profiles_path)) != 0) {
        snprintf(profiles_path, sizeof(profiles_path), "%s", profiles_arg);
    }
    if (sim_arg && cli_resolve_data(sim_arg, sim_path, sizeof(sim_path)) != 0) {
        snprintf(sim_path, sizeof(sim_path), "%s", sim_arg);
    }

    struct hx_diag d = {0};
    struct model_profile *m = NULL;
    struct cluster *c = NULL;
    struct machine_profiles *mp = NULL;
    struct layout *l = NULL;
    struct model_throughput *tp = NULL;
    struct sim_cluster *sc = NULL;
    struct flow_net *net = NULL;
    struct flow_report r = {0};
    double value = 0;
    double ub = 0;
    int exit_code = CLI_EXIT_OK;
    enum layout_connectivity conn = partial ? LAYOUT_PARTIAL : LAYOUT_STRICT;
    int rc = model_profile_read_file(model_path, &m, &d);
    if (rc == HX_OK) {
        rc = cluster_read_file(cluster_path, &c, &d);
    }
    if (rc == HX_OK) {
        rc = machine_profiles_read_file(profiles_path, &mp, &d);
    }
    if (rc == HX_OK) {
        rc = layout_read_file(layout_path, c->n_nodes, &l, &d);
    }
    if (rc == HX_OK) {
        rc = layout_validate(l, c, m, 0, &d);
    }
    if (rc == HX_OK) {
        rc = model_throughput_for_cluster(m, c, &tp, &d);
    }
    if (rc == HX_OK) {
        rc = model_upper_bound(tp, mp, c, &ub, &d);
    }
    if (rc == HX_OK && sim_arg) {
        rc = sim_cluster_read_file(sim_path, &sc, &d);
        if (rc == HX_OK) {
            rc = flow_net_sim_new(sc, l, m, tp, &net, &value, &d);
        }
    } else if (rc == HX_OK) {
        rc = flow_net_planner_new(c, m, tp, mp, conn, &net, &d);
        if (rc == HX_OK) {
            rc = flow_net_planner_eval(net, l, &value, &d);
        }
    }
    if (rc == HX_OK) {
        rc = flow_net_report(net, &r);
    }
    if (rc != HX_OK) {
        exit_code = fail_with(&d, rc);
    } else {
        const char *graph = sim_arg ? "simulator" : "planner";
        const char *cs = sim_arg ? "file" : (partial ? "partial" : "strict");
        if (json) {
            exit_code = print_json(c, m, &r, ub, graph, cs);
        } else {
            print_text(c, m, &r, ub, graph, cs);
        }
    }
    flow_report_release(&r);
    flow_net_free(net);
    sim_cluster_free(sc);
    model_throughput_free(tp);
    layout_free(l);
    machine_profiles_free(mp);
    cluster_free(c);
    model_profile_free(m);
    return exit_code;
}
