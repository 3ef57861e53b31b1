/*
 * net.c - Helix's two flow graphs over a placement: the planner graph (spec §2.1, the MILP's
 * objective) and the simulator graph (§4). Each graph edge remembers what it stands for (a
 * node's compute, a node's NIC, a link direction, the coordinator's NIC) so the flow and the
 * minimum cut can be reported per node and per link.
 */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "core/cluster.h"
#include "core/layout.h"
#include "core/model.h"
#include "flow/flow.h"

enum edge_kind {
    EDGE_NODE = 0,     /* a node's compute (planner: in -> out; sim: start -> end) */
    EDGE_NODE_NIC = 1, /* sim only: in -> start, end -> out */
    EDGE_LINK = 2,
    EDGE_COORD_OUT = 3, /* sim only: source -> src_out */
    EDGE_COORD_IN = 4,  /* sim only: sink_in -> sink */
};

struct edge_info {
    int kind;
    int idx;  /* node index (report slot) or link index */
    int from; /* link endpoints in cluster terms */
    int to;
};

struct flow_net {
    int is_sim;
    const struct cluster *c;
    const struct sim_cluster *sc;
    const struct model_profile *m;
    const struct model_throughput *tp;
    const struct machine_profiles *mp;
    enum layout_connectivity conn;
    int n_nodes;     /* report slots */
    int *gpu;        /* model gpu index per node slot */
    int *node_index; /* cluster index per slot */
    int *start;      /* layout of the last solve */
    int *k;
    double *node_cap;
    struct flow_graph *g;
    struct edge_info *info;
    int cap_info;
    double value;
    int solved;
};

void flow_report_release(struct flow_report *r)
{
    if (!r) {
        return;
    }
    xfree(r->nodes);
    xfree(r->links);
    memset(r, 0, sizeof(*r));
}

void flow_net_free(struct flow_net *net)
{
    if (!net) {
        return;
    }
    xfree(net->gpu);
    xfree(net->node_index);
    xfree(net->start);
    xfree(net->k);
    xfree(net->node_cap);
    xfree(net->info);
    flow_graph_free(net->g);
    xfree(net);
}

static int add_edge(struct flow_net *net, int u, int v, double cap, int kind, int idx, int from,
                    int to)
{
    int e = flow_graph_add_edge(net->g, u, v, cap);
    if (e >= net->cap_info) {
        net->cap_info = net->cap_info ? net->cap_info * 2 : 256;
        while (net->cap_info <= e) {
            net->cap_info *= 2;
        }
        net->info = xrealloc(net->info, (size_t)net->cap_info * sizeof(*net->info));
    }
    net->info[e] = (struct edge_info){.kind = kind, .idx = idx, .from = from, .to = to};
    return e;
}

static struct flow_net *net_alloc(int n_nodes)
{
    struct flow_net *net = xcalloc(1, sizeof(*net));
    net->n_nodes = n_nodes;
    net->gpu = xcalloc((size_t)n_nodes + 1, sizeof(int));
    net->node_index = xcalloc((size_t)n_nodes + 1, sizeof(int));
    net->start = xcalloc((size_t)n_nodes + 1, sizeof(int));
    net->k = xcalloc((size_t)n_nodes + 1, sizeof(int));
    net->node_cap = xcalloc((size_t)n_nodes + 1, sizeof(double));
    net->g = flow_graph_new();
    return net;
}

/* ---- planner graph ----------------------------------------------------------------------- */

int flow_net_planner_new(const struct cluster *c, const struct model_profile *m,
                         const struct model_throughput *tp, const struct machine_profiles *mp,
                         enum layout_connectivity conn, struct flow_net **out, struct hx_diag *diag)
{
    *out = NULL;
    struct flow_net *net = net_alloc(c->n_nodes);
    net->c = c;
    net->m = m;
    net->tp = tp;
    net->mp = mp;
    net->conn = conn;
    for (int i = 0; i < c->n_nodes; i++) {
        int g = model_gpu_index(m, c->nodes[i].type);
        if (g < 0 || tp->model != m || !tp->tp[g]) {
            flow_net_free(net);
            return hx_diag_set(diag, HX_ENOTFOUND,
                               "%s:%d: [ComputeNode-%d] type: '%s' is not in model %s or its "
                               "throughput table",
                               c->path, c->nodes[i].line, i, c->nodes[i].type, m->path);
        }
        net->gpu[i] = g;
        net->node_index[i] = i;
    }
    *out = net;
    return HX_OK;
}

int flow_net_planner_eval(struct flow_net *net, const struct layout *l, double *value,
                          struct hx_diag *diag)
{
    *value = 0;
    net->solved = 0;
    if (net->is_sim) {
        return hx_diag_set(diag, HX_EINVAL, "flow_net_planner_eval on a simulator net");
    }
    const struct cluster *c = net->c;
    const struct model_profile *m = net->m;
    int L = m->n_layers;
    if (l->n_nodes != c->n_nodes) {
        return hx_diag_set(diag, HX_EINVAL, "layout has %d nodes but cluster %s has %d", l->n_nodes,
                           c->path, c->n_nodes);
    }
    struct flow_graph *g = net->g;
    flow_graph_clear(g);
    flow_graph_add_vertices(g, 2 + 2 * c->n_nodes); /* 0 source, 1 sink, 2+2i in, 3+2i out */
    for (int i = 0; i < c->n_nodes; i++) {
        int k = l->nodes[i].n_layers;
        int s = l->nodes[i].start;
        net->start[i] = s;
        net->k[i] = k;
        net->node_cap[i] = 0;
        if (k == 0) {
            continue;
        }
        if (k < 0 || s < 0 || s + k > L || k > m->gpus[net->gpu[i]].max_layers) {
            return hx_diag_set(diag, HX_ERANGE,
                               "compute_node_%d: layers [%d, %d) invalid for a %s (max %d "
                               "layers, model has %d)",
                               i + 2, s, s + k, c->nodes[i].type, m->gpus[net->gpu[i]].max_layers,
                               L);
        }
        net->node_cap[i] = model_node_capacity(net->tp, net->mp, net->gpu[i], k);
        add_edge(net, 2 + 2 * i, 3 + 2 * i, net->node_cap[i], EDGE_NODE, i, i, i);
    }
    double tok = m->token_bytes;
    double act = m->activation_bytes;
    for (int e = 0; e < c->n_links; e++) {
        const struct cluster_link *lk = &c->links[e];
        int a = lk->a;
        int b = lk->b;
        if (a == CLUSTER_SOURCE) {
            if (layout_edge_valid(l, L, net->conn, a, b)) {
                add_edge(net, 0, 2 + 2 * b, lk->bandwidth / tok, EDGE_LINK, e, a, b);
            }
        } else if (b == CLUSTER_SINK) {
            if (layout_edge_valid(l, L, net->conn, a, b)) {
                add_edge(net, 3 + 2 * a, 1, lk->bandwidth / tok, EDGE_LINK, e, a, b);
            }
        } else {
            if (layout_edge_valid(l, L, net->conn, a, b)) {
                add_edge(net, 3 + 2 * a, 2 + 2 * b, lk->bandwidth / act, EDGE_LINK, e, a, b);
            }
            if (layout_edge_valid(l, L, net->conn, b, a)) {
                add_edge(net, 3 + 2 * b, 2 + 2 * a, lk->bandwidth / act, EDGE_LINK, e, b, a);
            }
        }
    }
    int rc = flow_graph_max_flow(g, 0, 1, value);
    if (rc != HX_OK) {
        return hx_diag_set(diag, rc, "max-flow failed");
    }
    net->value = *value;
    net->solved = 1;
    return HX_OK;
}

/* ---- simulator graph --------------------------------------------------------------------- */

int flow_net_sim_new(const struct sim_cluster *sc, const struct layout *l,
                     const struct model_profile *m, const struct model_throughput *tp,
                     struct flow_net **out, double *value, struct hx_diag *diag)
{
    *out = NULL;
    *value = 0;
    int n = sc->n_nodes;
    struct flow_net *net = net_alloc(n);
    net->is_sim = 1;
    net->sc = sc;
    net->m = m;
    net->tp = tp;
    int rc = HX_OK;
    int *in_deg = xcalloc((size_t)n + 1, sizeof(int));
    int *out_deg = xcalloc((size_t)n + 1, sizeof(int));
    int *in_src = xcalloc((size_t)n + 1, sizeof(int));
    int *out_sink = xcalloc((size_t)n + 1, sizeof(int));
    for (int e = 0; e < sc->n_links; e++) {
        const struct sim_link *lk = &sc->links[e];
        if (lk->to >= 0) {
            in_deg[lk->to]++;
            in_src[lk->to] += lk->from == CLUSTER_SOURCE;
        }
        if (lk->from >= 0) {
            out_deg[lk->from]++;
            out_sink[lk->from] += lk->to == CLUSTER_SINK;
        }
    }
    struct flow_graph *g = net->g;
    /* 0 source, 1 sink, 2 src_out, 3 sink_in, node j: 4+4j in, +1 start, +2 end, +3 out */
    flow_graph_add_vertices(g, 4 + 4 * n);
    double tok = m->token_bytes;
    double act = m->activation_bytes;
    add_edge(net, 0, 2, sc->coord_nic_out / tok, EDGE_COORD_OUT, -1, CLUSTER_SOURCE,
             CLUSTER_SOURCE);
    add_edge(net, 3, 1, sc->coord_nic_in / tok, EDGE_COORD_IN, -1, CLUSTER_SINK, CLUSTER_SINK);
    for (int j = 0; j < n; j++) {
        const struct sim_node *nd = &sc->nodes[j];
        net->node_index[j] = nd->node >= 0 ? nd->node : j;
        int gi = model_gpu_index(m, nd->machine_type);
        if (gi < 0 || tp->model != m || !tp->tp[gi]) {
            rc = hx_diag_set(diag, HX_ENOTFOUND,
                             "%s:%d: [%s] machine_type: '%s' is not in model %s or its "
                             "throughput table",
                             sc->path, nd->line, nd->name, nd->machine_type, m->path);
            goto fail;
        }
        net->gpu[j] = gi;
        if (nd->node < 0 || nd->node >= l->n_nodes) {
            rc = hx_diag_set(diag, HX_ENOTFOUND,
                             "%s:%d: [%s]: no layout entry for this node (layout has %d nodes)",
                             sc->path, nd->line, nd->name, l->n_nodes);
            goto fail;
        }
        int k = l->nodes[nd->node].n_layers;
        net->k[j] = k;
        net->start[j] = l->nodes[nd->node].start;
        double cap = 0;
        if (in_deg[j] + out_deg[j] > 0) {
            cap = model_throughput_tp(tp, gi, k);
            if (cap < 0) {
                rc = hx_diag_set(diag, HX_ERANGE,
                                 "%s:%d: [%s]: %d layers is outside 1..%d for a %s (Helix cannot "
                                 "build this flow graph either)",
                                 sc->path, nd->line, nd->name, k, m->gpus[gi].max_layers,
                                 nd->machine_type);
                goto fail;
            }
        }
        net->node_cap[j] = cap;
        double s_in = (in_deg[j] == 1 && in_src[j] == 1) ? tok : tok + act;
        double s_out = (out_deg[j] == 1 && out_sink[j] == 1) ? tok : tok + act;
        int base = 4 + 4 * j;
        add_edge(net, base, base + 1, nd->nic_in / s_in, EDGE_NODE_NIC, j, j, j);
        add_edge(net, base + 1, base + 2, cap, EDGE_NODE, j, j, j);
        add_edge(net, base + 2, base + 3, nd->nic_out / s_out, EDGE_NODE_NIC, j, j, j);
    }
    for (int e = 0; e < sc->n_links; e++) {
        const struct sim_link *lk = &sc->links[e];
        int u = lk->from == CLUSTER_SOURCE ? 2 : 4 + 4 * lk->from + 3;
        int v = lk->to == CLUSTER_SINK ? 3 : 4 + 4 * lk->to;
        int coord = lk->from == CLUSTER_SOURCE || lk->to == CLUSTER_SINK;
        int from = lk->from >= 0 ? net->node_index[lk->from] : lk->from;
        int to = lk->to >= 0 ? net->node_index[lk->to] : lk->to;
        add_edge(net, u, v, lk->bandwidth / (coord ? tok : tok + act), EDGE_LINK, e, from, to);
    }
    rc = flow_graph_max_flow(g, 0, 1, value);
    if (rc != HX_OK) {
        rc = hx_diag_set(diag, rc, "max-flow failed");
        goto fail;
    }
    net->value = *value;
    net->solved = 1;
    xfree(in_deg);
    xfree(out_deg);
    xfree(in_src);
    xfree(out_sink);
    *out = net;
    return HX_OK;
fail:
    xfree(in_deg);
    xfree(out_deg);
    xfree(in_src);
    xfree(out_sink);
    flow_net_free(net);
    return rc;
}

/* ---- reports ----------------------------------------------------------------------------- */

const struct flow_graph *flow_net_graph(const struct flow_net *net)
{
    return net->g;
}

int flow_net_report(const struct flow_net *net, struct flow_report *out)
{
    memset(out, 0, sizeof(*out));
    if (!net->solved) {
        return HX_EINVAL;
    }
    const struct flow_graph *g = net->g;
    out->value = net->value;
    out->n_nodes = net->n_nodes;
    out->nodes = xcalloc((size_t)net->n_nodes + 1, sizeof(*out->nodes));
    for (int i = 0; i < net->n_nodes; i++) {
        struct flow_node_result *r = &out->nodes[i];
        r->node = net->node_index[i];
        r->start = net->k[i] > 0 ? net->start[i] : 0;
        r->n_layers = net->k[i];
        r->capacity = net->node_cap[i];
    }
    int n_edges = flow_graph_n_edges(g);
    int n_links = 0;
    for (int e = 0; e < n_edges; e++) {
        n_links += net->info[e].kind == EDGE_LINK;
    }
    out->links = xcalloc((size_t)n_links + 1, sizeof(*out->links));
    for (int e = 0; e < n_edges; e++) {
        const struct edge_info *in = &net->info[e];
        double f = flow_graph_edge_flow(g, e);
        int cut = 0;
        if (!isinf(net->value)) {
            cut = flow_graph_edge_in_cut(g, e);
        }
        switch (in->kind) {
        case EDGE_NODE:
            out->nodes[in->idx].flow = f;
            out->nodes[in->idx].in_cut |= cut;
            break;
        case EDGE_NODE_NIC:
            out->nodes[in->idx].in_cut |= cut;
            break;
        case EDGE_COORD_OUT:
            out->source_nic_in_cut = cut;
            break;
        case EDGE_COORD_IN:
            out->sink_nic_in_cut = cut;
            break;
        default: {
            struct flow_link_result *lr = &out->links[out->n_links++];
            lr->from = in->from;
            lr->to = in->to;
            lr->link = in->idx;
            lr->capacity = flow_graph_edge_capacity(g, e);
            lr->flow = f;
            lr->in_cut = cut;
            break;
        }
        }
    }
    return HX_OK;
}

int flow_planner_max_flow(const struct cluster *c, const struct layout *l,
                          const struct model_profile *m, const struct model_throughput *tp,
                          const struct machine_profiles *mp, enum layout_connectivity conn,
                          double *value, struct flow_report *report, struct hx_diag *diag)
{
    *value = 0;
    if (report) {
        memset(report, 0, sizeof(*report));
    }
    struct flow_net *net = NULL;
    int rc = flow_net_planner_new(c, m, tp, mp, conn, &net, diag);
    if (rc == HX_OK) {
        rc = flow_net_planner_eval(net, l, value, diag);
    }
    if (rc == HX_OK && report) {
        rc = flow_net_report(net, report);
    }
    flow_net_free(net);
    return rc;
}
