/*
 * sched.c - Helix's global max-flow request scheduler (spec §4, §5.1): the simulator's flow
 * graph, IWRR per sending node over the per-link flows, the three masks, KV expectations,
 * routes. Endpoints are indexed 0 = source, 1 + i = compute node i, n + 1 = sink.
 */
#include "sched/sched.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "flow/flow.h"

struct sched {
    struct sched_topology t; /* arrays below are owned copies */
    struct sched_node_desc *nodes;
    struct sched_link_desc *links;
    struct sched_params p;
    unsigned char *alive; /* per node */
    /* per link */
    double *cap;  /* token capacity (tokens/s) */
    double *flow; /* flow (tokens/s) of the last solve */
    double *hop_bw;
    int *pos; /* position in the sender's out-list */
    /* per endpoint (n + 2) */
    int *out_start; /* CSR of out-links in link order */
    int *out_links;
    int *in_start;
    int *in_links;
    double *loads; /* per out-list slot (same indexing as out_links) */
    double flow_value;
    /* KV expectation per node */
    long *kv_avail;
};

static int ep(const struct sched *s, int v)
{
    if (v == SCHED_SOURCE) {
        return 0;
    }
    if (v == SCHED_SINK) {
        return s->t.n_nodes + 1;
    }
    return v + 1;
}

void sched_params_helix(struct sched_params *p, int offline)
{
    p->kv_hwm = offline ? 0.85 : 0.9;
    p->kv_output_ratio = offline ? 1.0 : 0.6;
    p->avg_output_len = 240;
    p->min_flow_frac = 0.05;
}

/* ---- routes ------------------------------------------------------------------------------ */

void sched_route_release(struct sched_route *r)
{
    if (r == NULL) {
        return;
    }
    xfree(r->stage);
    memset(r, 0, sizeof(*r));
}

void sched_route_push(struct sched_route *r, const struct sched_stage *st)
{
    if (r->n_stages == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 8;
        r->stage = xrealloc(r->stage, (size_t)r->cap * sizeof(*r->stage));
    }
    r->stage[r->n_stages++] = *st;
}

void sched_route_copy(struct sched_route *dst, const struct sched_route *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->prompt_len = src->prompt_len;
    for (int i = 0; i < src->n_stages; i++) {
        sched_route_push(dst, &src->stage[i]);
    }
}

int sched_route_complete(const struct sched_route *r, int n_layers)
{
    int next = 0;
    if (r->n_stages == 0 || r->stage[r->n_stages - 1].node != SCHED_SINK) {
        return 0;
    }
    for (int i = 0; i + 1 < r->n_stages; i++) {
        const struct sched_stage *st = &r->stage[i];
        if (st->node < 0 || st->layer_start != next || st->layer_end <= st->layer_start) {
            return 0;
        }
        next = st->layer_end;
    }
    return next == n_layers;
}

/* ---- IWRR -------------------------------------------------------------------------------- */

int sched_iwrr_choose(const double *caps, double *loads, const unsigned char *mask, int n,
                      double workload)
{
    int best = -1;
    double best_after = INFINITY;
    for (int i = 0; i < n; i++) {
        if (mask != NULL && !mask[i]) {
            continue;
        }
        double after = loads[i] + workload / caps[i];
        if (after < best_after) {
            best = i;
            best_after = after;
        }
    }
    if (best >= 0) {
        loads[best] += workload / caps[best];
    }
    return best;
}

/* ---- flow -------------------------------------------------------------------------------- */

static int link_alive(const struct sched *s, int i)
{
    const struct sched_link_desc *l = &s->links[i];
    if (l->from >= 0 && !s->alive[l->from]) {
        return 0;
    }
    if (l->to >= 0 && !s->alive[l->to]) {
        return 0;
    }
    return 1;
}

/* Bytes per token over link i: token bytes at the coordinator, token + activation otherwise. */
static double link_size(const struct sched *s, int i)
{
    const struct sched_link_desc *l = &s->links[i];
    if (l->from == SCHED_SOURCE || l->to == SCHED_SINK) {
        return s->t.token_bytes;
    }
    return s->t.token_bytes + s->t.activation_bytes;
}

/* Solve the §4 graph over the live nodes; fill cap, flow, hop_bw; reset loads. */
static void solve(struct sched *s)
{
    int n = s->t.n_nodes;
    struct flow_graph *g = flow_graph_new();
    int src = flow_graph_add_vertex(g);
    int src_out = flow_graph_add_vertex(g);
    int sink_in = flow_graph_add_vertex(g);
    int sink = flow_graph_add_vertex(g);
    flow_graph_add_edge(g, src, src_out, s->t.coord_nic_out / s->t.token_bytes);
    flow_graph_add_edge(g, sink_in, sink, s->t.coord_nic_in / s->t.token_bytes);
    int *vin = xcalloc((size_t)n + 1, sizeof(int));
    int *vout = xcalloc((size_t)n + 1, sizeof(int));
    for (int v = 0; v < n; v++) {
        vin[v] = vout[v] = -1;
        if (!s->alive[v]) {
            continue;
        }
        const struct sched_node_desc *d = &s->nodes[v];
        /* size per direction: token bytes iff the only live in-link is from the source */
        int n_in = 0;
        int only_src = 1;
        int n_out = 0;
        int only_sink = 1;
        for (int k = s->in_start[v + 1]; k < s->in_start[v + 2]; k++) {
            int li = s->in_links[k];
            if (!link_alive(s, li)) {
                continue;
            }
            n_in++;
            only_src &= s->links[li].from == SCHED_SOURCE;
        }
        for (int k = s->out_start[v + 1]; k < s->out_start[v + 2]; k++) {
            int li = s->out_links[k];
            if (!link_alive(s, li)) {
                continue;
            }
            n_out++;
            only_sink &= s->links[li].to == SCHED_SINK;
        }
        double tb = s->t.token_bytes;
        double ab = s->t.token_bytes + s->t.activation_bytes;
        double s_in = (n_in == 1 && only_src) ? tb : ab;
        double s_out = (n_out == 1 && only_sink) ? tb : ab;
        int a = flow_graph_add_vertices(g, 4);
        flow_graph_add_edge(g, a, a + 1, d->nic_in / s_in);
        flow_graph_add_edge(g, a + 1, a + 2, d->tp);
        flow_graph_add_edge(g, a + 2, a + 3, d->nic_out / s_out);
        vin[v] = a;
        vout[v] = a + 3;
    }
    int *edge = xcalloc((size_t)s->t.n_links + 1, sizeof(int));
    for (int i = 0; i < s->t.n_links; i++) {
        const struct sched_link_desc *l = &s->links[i];
        edge[i] = -1;
        s->cap[i] = l->bandwidth / link_size(s, i);
        s->flow[i] = 0;
        if (!link_alive(s, i)) {
            continue;
        }
        int u = l->from == SCHED_SOURCE ? src_out : vout[l->from];
        int w = l->to == SCHED_SINK ? sink_in : vin[l->to];
        edge[i] = flow_graph_add_edge(g, u, w, s->cap[i]);
    }
    double value = 0;
    if (flow_graph_max_flow(g, src, sink, &value) != HX_OK) {
        value = 0;
    }
    s->flow_value = value;
    for (int i = 0; i < s->t.n_links; i++) {
        s->flow[i] = edge[i] >= 0 ? flow_graph_edge_flow(g, edge[i]) : 0;
    }
    flow_graph_free(g);
    xfree(vin);
    xfree(vout);
    xfree(edge);

    /* per-hop bandwidth: min(link, out-NIC share, in-NIC share) by used speed (§5.1 step 5) */
    int n_ep = n + 2;
    double *sum_out = xcalloc((size_t)n_ep, sizeof(double));
    double *sum_in = xcalloc((size_t)n_ep, sizeof(double));
    for (int i = 0; i < s->t.n_links; i++) {
        const struct sched_link_desc *l = &s->links[i];
        double used = l->bandwidth * s->flow[i] / s->cap[i];
        sum_out[ep(s, l->from)] += used;
        sum_in[ep(s, l->to)] += used;
    }
    for (int i = 0; i < s->t.n_links; i++) {
        const struct sched_link_desc *l = &s->links[i];
        double used = l->bandwidth * s->flow[i] / s->cap[i];
        double nic_out = l->from == SCHED_SOURCE ? s->t.coord_nic_out : s->nodes[l->from].nic_out;
        double nic_in = l->to == SCHED_SINK ? s->t.coord_nic_in : s->nodes[l->to].nic_in;
        double bw = 0;
        if (used > 0) {
            double a = nic_out * (used / sum_out[ep(s, l->from)]);
            double b = (used / sum_in[ep(s, l->to)]) * nic_in;
            bw = fmin(l->bandwidth, fmin(a, b));
        }
        s->hop_bw[i] = bw;
    }
    xfree(sum_out);
    xfree(sum_in);
    memset(s->loads, 0, (size_t)s->t.n_links * sizeof(double));
}

/* ---- construction ------------------------------------------------------------------------ */

static int validate(const struct sched_topology *t, struct hx_diag *diag)
{
    if (t->n_layers <= 0 || t->n_nodes < 0 || t->n_links < 0 || !(t->token_bytes > 0) ||
        !(t->activation_bytes >= 0) || !(t->coord_nic_in > 0) || !(t->coord_nic_out > 0)) {
        return hx_diag_set(diag, HX_EINVAL,
                           "sched: bad topology (layers, sizes or coordinator NICs)");
    }
    for (int v = 0; v < t->n_nodes; v++) {
        const struct sched_node_desc *d = &t->nodes[v];
        if (d->n_layers < 0 || d->start < 0 || d->start + d->n_layers > t->n_layers) {
            return hx_diag_set(diag, HX_EINVAL,
                               "sched: node %d: layer range [%d, %d) outside 0..%d", v, d->start,
                               d->start + d->n_layers, t->n_layers);
        }
        if (d->n_layers > 0 && (!(d->tp > 0) || !(d->nic_in > 0) || !(d->nic_out > 0))) {
            return hx_diag_set(diag, HX_EINVAL,
                               "sched: node %d: throughput and NICs must be positive", v);
        }
    }
    for (int i = 0; i < t->n_links; i++) {
        const struct sched_link_desc *l = &t->links[i];
        int bad_from = l->from != SCHED_SOURCE && (l->from < 0 || l->from >= t->n_nodes);
        int bad_to = l->to != SCHED_SINK && (l->to < 0 || l->to >= t->n_nodes);
        if (bad_from || bad_to || l->from == l->to || !(l->bandwidth > 0)) {
            return hx_diag_set(diag, HX_EINVAL,
                               "sched: link %d (%d -> %d): bad endpoints or bandwidth", i, l->from,
                               l->to);
        }
        if ((l->from >= 0 && t->nodes[l->from].n_layers == 0) ||
            (l->to >= 0 && t->nodes[l->to].n_layers == 0)) {
            return hx_diag_set(diag, HX_EINVAL, "sched: link %d touches a node without layers", i);
        }
    }
    return HX_OK;
}

int sched_new(const struct sched_topology *t, const struct sched_params *p, struct sched **out,
              struct hx_diag *diag)
{
    *out = NULL;
    int rc = validate(t, diag);
    if (rc != HX_OK) {
        return rc;
    }
    struct sched *s = xcalloc(1, sizeof(*s));
    s->t = *t;
    s->p = *p;
    int n = t->n_nodes;
    int m = t->n_links;
    s->nodes = xcalloc((size_t)n + 1, sizeof(*s->nodes));
    s->links = xcalloc((size_t)m + 1, sizeof(*s->links));
    if (n > 0) {
        memcpy(s->nodes, t->nodes, (size_t)n * sizeof(*s->nodes));
    }
    if (m > 0) {
        memcpy(s->links, t->links, (size_t)m * sizeof(*s->links));
    }
    s->t.nodes = s->nodes;
    s->t.links = s->links;
    s->alive = xcalloc((size_t)n + 1, 1);
    for (int v = 0; v < n; v++) {
        s->alive[v] = s->nodes[v].n_layers > 0;
    }
    s->cap = xcalloc((size_t)m + 1, sizeof(double));
    s->flow = xcalloc((size_t)m + 1, sizeof(double));
    s->hop_bw = xcalloc((size_t)m + 1, sizeof(double));
    s->pos = xcalloc((size_t)m + 1, sizeof(int));
    s->loads = xcalloc((size_t)m + 1, sizeof(double));
    int n_ep = n + 2;
    s->out_start = xcalloc((size_t)n_ep + 1, sizeof(int));
    s->in_start = xcalloc((size_t)n_ep + 1, sizeof(int));
    s->out_links = xcalloc((size_t)m + 1, sizeof(int));
    s->in_links = xcalloc((size_t)m + 1, sizeof(int));
    for (int i = 0; i < m; i++) {
        s->out_start[ep(s, s->links[i].from) + 1]++;
        s->in_start[ep(s, s->links[i].to) + 1]++;
    }
    for (int e = 0; e < n_ep; e++) {
        s->out_start[e + 1] += s->out_start[e];
        s->in_start[e + 1] += s->in_start[e];
    }
    int *fo = xcalloc((size_t)n_ep, sizeof(int));
    int *fi = xcalloc((size_t)n_ep, sizeof(int));
    for (int i = 0; i < m; i++) {
        int a = ep(s, s->links[i].from);
        int b = ep(s, s->links[i].to);
        s->pos[i] = fo[a];
        s->out_links[s->out_start[a] + fo[a]++] = i;
        s->in_links[s->in_start[b] + fi[b]++] = i;
    }
    xfree(fo);
    xfree(fi);
    s->kv_avail = xcalloc((size_t)n + 1, sizeof(long));
    for (int v = 0; v < n; v++) {
        s->kv_avail[v] = s->nodes[v].kv_capacity;
    }
    solve(s);
    *out = s;
    return HX_OK;
}

void sched_free(struct sched *s)
{
    if (s == NULL) {
        return;
    }
    xfree(s->nodes);
    xfree(s->links);
    xfree(s->alive);
    xfree(s->cap);
    xfree(s->flow);
    xfree(s->hop_bw);
    xfree(s->pos);
    xfree(s->loads);
    xfree(s->out_start);
    xfree(s->in_start);
    xfree(s->out_links);
    xfree(s->in_links);
    xfree(s->kv_avail);
    xfree(s);
}

double sched_flow_value(const struct sched *s)
{
    return s->flow_value;
}

double sched_link_flow(const struct sched *s, int link)
{
    return (link >= 0 && link < s->t.n_links) ? s->flow[link] : 0;
}

double sched_link_bandwidth(const struct sched *s, int link)
{
    return (link >= 0 && link < s->t.n_links) ? s->hop_bw[link] : 0;
}

/* ---- routing ----------------------------------------------------------------------------- */

static long kv_expected_len(const struct sched *s, int prompt_len)
{
    return (long)((double)prompt_len + (double)s->p.avg_output_len * s->p.kv_output_ratio);
}

static enum sched_verdict verdict(const struct sched *s, int li, double sum_flow, int prompt_len,
                                  unsigned flags)
{
    const struct sched_link_desc *l = &s->links[li];
    double f = s->flow[li];
    if (!link_alive(s, li) || !(f > 0) || f < s->p.min_flow_frac * sum_flow) {
        return SCHED_FAIL_FLOW;
    }
    if (l->to >= 0) {
        const struct sched_node_desc *d = &s->nodes[l->to];
        if (prompt_len > d->prompt_max_tokens) {
            return SCHED_FAIL_LENGTH;
        }
        if (!(flags & SCHED_ROUTE_IGNORE_KV)) {
            long need = kv_expected_len(s, prompt_len) * (long)d->n_layers;
            double left = (double)(s->kv_avail[l->to] - need);
            if (!(left >= (1.0 - s->p.kv_hwm) * (double)d->kv_capacity)) {
                return SCHED_FAIL_KV;
            }
        }
    }
    return SCHED_PASS;
}

static double out_flow_sum(const struct sched *s, int e)
{
    double sum = 0;
    for (int k = s->out_start[e]; k < s->out_start[e + 1]; k++) {
        sum += s->flow[s->out_links[k]];
    }
    return sum;
}

int sched_candidates(const struct sched *s, int from, int prompt_len, int *links,
                     enum sched_verdict *verdicts, int max)
{
    int e = ep(s, from);
    double sum = out_flow_sum(s, e);
    int cnt = 0;
    for (int k = s->out_start[e]; k < s->out_start[e + 1]; k++, cnt++) {
        if (cnt < max) {
            links[cnt] = s->out_links[k];
            verdicts[cnt] = verdict(s, s->out_links[k], sum, prompt_len, 0);
        }
    }
    return cnt;
}

int sched_route_prompt(struct sched *s, int prompt_len, unsigned flags, struct sched_route *out)
{
    sched_route_release(out);
    int cur = SCHED_SOURCE;
    int cur_end = 0;
    unsigned char mask[256];
    unsigned char *mbuf = NULL;
    int rc = HX_OK;
    while (cur != SCHED_SINK) {
        int e = ep(s, cur);
        int n_out = s->out_start[e + 1] - s->out_start[e];
        unsigned char *mk = mask;
        if (n_out > (int)sizeof(mask)) {
            mbuf = xrealloc(mbuf, (size_t)n_out);
            mk = mbuf;
        }
        double sum = out_flow_sum(s, e);
        int any = 0;
        for (int k = 0; k < n_out; k++) {
            int li = s->out_links[s->out_start[e] + k];
            mk[k] = verdict(s, li, sum, prompt_len, flags) == SCHED_PASS;
            any |= mk[k];
        }
        if (!any) {
            rc = HX_EFULL;
            break;
        }
        /* loads of this sender live at the same CSR slots as its out-links */
        double caps_buf[256];
        double *caps = caps_buf;
        double *cbuf = NULL;
        if (n_out > 256) {
            cbuf = xmalloc((size_t)n_out * sizeof(double));
            caps = cbuf;
        }
        for (int k = 0; k < n_out; k++) {
            caps[k] = s->flow[s->out_links[s->out_start[e] + k]];
        }
        int k = sched_iwrr_choose(caps, s->loads + s->out_start[e], mk, n_out, (double)prompt_len);
        xfree(cbuf);
        int li = s->out_links[s->out_start[e] + k];
        const struct sched_link_desc *l = &s->links[li];
        struct sched_stage st = {.link = li, .node = l->to, .bandwidth = s->hop_bw[li]};
        if (l->to >= 0) {
            const struct sched_node_desc *d = &s->nodes[l->to];
            int lo = d->start;
            if (cur != SCHED_SOURCE && cur_end > lo) {
                lo = cur_end;
            }
            st.layer_start = lo;
            st.layer_end = d->start + d->n_layers;
            if (st.layer_end <= lo) {
                sched_route_push(out, &st);
                rc = HX_EINFEASIBLE;
                break;
            }
            cur_end = st.layer_end;
        }
        sched_route_push(out, &st);
        cur = l->to;
    }
    xfree(mbuf);
    if (rc != HX_OK) {
        /* restore_one on every hop chosen so far */
        for (int i = 0; i < out->n_stages; i++) {
            int li = out->stage[i].link;
            int e = ep(s, s->links[li].from);
            s->loads[s->out_start[e] + s->pos[li]] -= (double)prompt_len / s->flow[li];
        }
        sched_route_release(out);
        return rc;
    }
    long len = kv_expected_len(s, prompt_len);
    for (int i = 0; i + 1 < out->n_stages; i++) {
        const struct sched_stage *st = &out->stage[i];
        s->kv_avail[st->node] -= len * (long)(st->layer_end - st->layer_start);
    }
    out->prompt_len = prompt_len;
    return HX_OK;
}

void sched_route_decode(struct sched *s, const struct sched_route *r)
{
    for (int i = 0; i < r->n_stages; i++) {
        int li = r->stage[i].link;
        if (li < 0 || li >= s->t.n_links || !(s->flow[li] > 0)) {
            continue; /* a hop whose flow vanished after a failure carries no weight */
        }
        int e = ep(s, s->links[li].from);
        s->loads[s->out_start[e] + s->pos[li]] += 1.0 / s->flow[li];
    }
}

void sched_route_finish(struct sched *s, struct sched_route *r)
{
    if (r->prompt_len <= 0) {
        return;
    }
    long len = kv_expected_len(s, r->prompt_len);
    for (int i = 0; i + 1 < r->n_stages; i++) {
        const struct sched_stage *st = &r->stage[i];
        if (st->node >= 0 && st->node < s->t.n_nodes) {
            s->kv_avail[st->node] += len * (long)(st->layer_end - st->layer_start);
        }
    }
    r->prompt_len = 0;
}

double sched_kv_bottleneck(const struct sched *s)
{
    int L = s->t.n_layers;
    double *fr = xcalloc((size_t)L, sizeof(double));
    double *tot = xcalloc((size_t)L, sizeof(double));
    for (int v = 0; v < s->t.n_nodes; v++) {
        const struct sched_node_desc *d = &s->nodes[v];
        if (!s->alive[v] || d->n_layers <= 0) {
            continue;
        }
        double f = (double)s->kv_avail[v] / (double)d->n_layers;
        double t = (double)d->kv_capacity / (double)d->n_layers;
        for (int l = d->start; l < d->start + d->n_layers; l++) {
            fr[l] += f;
            tot[l] += t;
        }
    }
    double worst = 0;
    int any = 0;
    for (int l = 0; l < L; l++) {
        if (tot[l] > 0) {
            double u = 1.0 - fr[l] / tot[l];
            if (!any || u > worst) {
                worst = u;
            }
            any = 1;
        }
    }
    xfree(fr);
    xfree(tot);
    return any ? worst : 1.0;
}

int sched_node_kv(const struct sched *s, int node, long *avail, long *total)
{
    if (node < 0 || node >= s->t.n_nodes) {
        return HX_EINVAL;
    }
    *avail = s->kv_avail[node];
    *total = s->nodes[node].kv_capacity;
    return HX_OK;
}

int sched_node_set_alive(struct sched *s, int node, int alive, struct hx_diag *diag)
{
    if (node < 0 || node >= s->t.n_nodes) {
        return hx_diag_set(diag, HX_EINVAL, "sched: no node %d", node);
    }
    if (alive && s->nodes[node].n_layers == 0) {
        return hx_diag_set(diag, HX_EINVAL, "sched: node %d holds no layers", node);
    }
    s->alive[node] = alive ? 1 : 0;
    solve(s);
    return HX_OK;
}
