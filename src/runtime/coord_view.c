/*
 * coord_view.c - what an operator sees of the coordinator: the Prometheus text of GET /metrics
 * and the JSON of GET /v1/cluster (the dashboard's source), both rendered on the loop thread
 * every 250 ms and handed to HTTP threads under the coordinator's mutex.
 *
 * /v1/cluster holds the workers (device, range, state, KV use, planned and achieved tokens/s),
 * the links (planned and achieved), the bottleneck, request counters, a 5-minute history of
 * 1 s samples (request rate, tokens/s, queue, TTFT, per-token latency) and the last membership
 * events. The bottleneck is a minimum cut of the live placement's flow graph (live nodes,
 * capacity = each node's planned throughput, links at their bandwidth) on the residual
 * capacities left by the achieved rates: under no load it is the plan's own cut, and under
 * load it moves to the nodes and links whose headroom ran out. docs/dashboard.md says more.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/strbuf.h"
#include "flow/flow.h"
#include "runtime/coord_int.h"
#include "runtime/proto.h"
#include "runtime/runtime.h"
#include "runtime/xport.h"
#include "runtime/xsec.h"
#include "sched/sched.h"

const char *coord_node_state_name(int s)
{
    static const char *names[] = {"waiting", "loading", "ready", "dead"};
    return s >= 0 && s <= 3 ? names[s] : "?";
}

/* ---- events and latency samples ---------------------------------------------------------- */

void coord_view_event(struct coord *c, const char *node, const char *kind, const char *fmt, ...)
{
    struct coord_view_event *e = &c->view.events[c->view.n_events % COORD_EVENTS];
    memset(e, 0, sizeof(*e));
    e->t_us = hx_clock_now_us();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e->unix_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    snprintf(e->node, sizeof(e->node), "%s", node ? node : "");
    snprintf(e->kind, sizeof(e->kind), "%s", kind);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
    c->view.n_events++;
}

void coord_view_token(struct coord *c, struct creq *r, int64_t now_us)
{
    struct coord_view_state *v = &c->view;
    if (r->last_tok_us == 0) {
        double ms = (double)(now_us - r->submit_us) * 1e-3;
        v->win_ttft_sum_ms += ms;
        v->win_ttft_n++;
        v->ttft_sum_s += ms * 1e-3;
        v->ttft_n++;
    } else {
        double ms = (double)(now_us - r->last_tok_us) * 1e-3;
        v->win_tpot_sum_ms += ms;
        v->win_tpot_n++;
        v->tpot_sum_s += ms * 1e-3;
        v->tpot_n++;
    }
    r->last_tok_us = now_us;
    v->gen_tokens++;
}

/* ---- the bottleneck ------------------------------------------------------------------------ */

/*
 * Minimum cut of the live flow graph on residual capacities (capacity - achieved, at least 0).
 * node_cut[i] / link_cut[k] set to 1 for the cut's elements; *headroom = the residual max-flow
 * (tokens/s the live placement could still add). Nodes not READY are left out.
 */
static void bottleneck(struct coord *c, unsigned char *node_cut, unsigned char *link_cut,
                       double *headroom)
{
    memset(node_cut, 0, (size_t)c->n_nodes);
    memset(link_cut, 0, (size_t)(c->n_links ? c->n_links : 1));
    *headroom = 0;
    struct flow_graph *g = flow_graph_new();
    int s = flow_graph_add_vertex(g);
    int t = flow_graph_add_vertex(g);
    int base = flow_graph_add_vertices(g, 2 * c->n_nodes); /* in_i = base + 2i, out_i + 1 */
    int *node_edge = xcalloc((size_t)c->n_nodes, sizeof(int));
    int *link_edge = xcalloc((size_t)(c->n_links ? c->n_links : 1), sizeof(int));
    for (int i = 0; i < c->n_nodes; i++) {
        node_edge[i] = -1;
        const struct cnode *n = &c->nodes[i];
        if (n->state != NODE_READY) {
            continue;
        }
        double cap = n->spec.capacity > 0 ? n->spec.capacity : 1.0;
        node_edge[i] =
            flow_graph_add_edge(g, base + 2 * i, base + 2 * i + 1, fmax(0.0, cap - n->rate_tokens));
    }
    for (int k = 0; k < c->n_links; k++) {
        link_edge[k] = -1;
        const struct sched_link_desc *ld = &c->link_desc[k];
        if ((ld->from >= 0 && node_edge[ld->from] < 0) || (ld->to >= 0 && node_edge[ld->to] < 0)) {
            continue;
        }
        double bw = c->sched ? sched_link_bandwidth(c->sched, k) : ld->bandwidth;
        double per_tok = ld->from >= 0 && ld->to >= 0 ? (double)c->hidden * 4 + 4 : 4;
        double cap = bw / per_tok;
        int u = ld->from < 0 ? s : base + 2 * ld->from + 1;
        int w = ld->to < 0 ? t : base + 2 * ld->to;
        link_edge[k] = flow_graph_add_edge(g, u, w, fmax(0.0, cap - c->links[k].rate_tokens));
    }
    double v = 0;
    if (flow_graph_max_flow(g, s, t, &v) == 0 && isfinite(v)) {
        *headroom = v;
        for (int i = 0; i < c->n_nodes; i++) {
            node_cut[i] = node_edge[i] >= 0 && flow_graph_edge_in_cut(g, node_edge[i]);
        }
        for (int k = 0; k < c->n_links; k++) {
            link_cut[k] = link_edge[k] >= 0 && flow_graph_edge_in_cut(g, link_edge[k]);
        }
    }
    xfree(node_edge);
    xfree(link_edge);
    flow_graph_free(g);
}

/* ---- GET /v1/cluster ---------------------------------------------------------------------- */

static const char *endpoint_name(const struct coord *c, int v)
{
    return v == SCHED_SOURCE ? "source" : v == SCHED_SINK ? "sink" : c->nodes[v].spec.name;
}

/* A finite number, or null (JSON has no NaN). */
static void add_num(cJSON *o, const char *k, double x)
{
    if (isfinite(x)) {
        cJSON_AddNumberToObject(o, k, x);
    } else {
        cJSON_AddNullToObject(o, k);
    }
}

static void cluster_json(struct coord *c, const unsigned char *ncut, const unsigned char *lcut,
                         double headroom, struct strbuf *dst)
{
    int64_t now = hx_clock_now_us();
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", c->model_name);
    cJSON_AddNumberToObject(j, "n_layers", c->n_layers);
    cJSON_AddStringToObject(j, "scheduler", coord_sched_name(c->o.sched));
    cJSON_AddBoolToObject(j, "curve", c->curve);
    cJSON_AddNumberToObject(j, "heartbeat_ms", c->o.heartbeat_ms);
    cJSON_AddNumberToObject(j, "dead_ms", c->o.dead_ms);
    add_num(j, "uptime_s", (double)(now - c->start_us) * 1e-6);
    add_num(j, "planned_tokens_per_s", c->sched ? sched_flow_value(c->sched) : 0);
    double achieved = 0;
    int ready = 0;
    cJSON *ws = cJSON_AddArrayToObject(j, "workers");
    for (int i = 0; i < c->n_nodes; i++) {
        const struct cnode *n = &c->nodes[i];
        double planned = 0;
        for (int k = 0; k < c->n_links && c->sched; k++) {
            if (c->link_desc[k].to == i) {
                planned += sched_link_flow(c->sched, k);
            }
        }
        ready += n->state == NODE_READY;
        cJSON *w = cJSON_CreateObject();
        cJSON_AddStringToObject(w, "name", n->spec.name);
        cJSON_AddStringToObject(w, "state", coord_node_state_name(n->state));
        cJSON_AddBoolToObject(w, "up", n->state == NODE_READY);
        cJSON_AddStringToObject(w, "device", n->device);
        cJSON_AddStringToObject(w, "backend", n->backend);
        cJSON_AddNumberToObject(w, "layer_start", n->spec.layer_start);
        cJSON_AddNumberToObject(w, "layer_end", n->spec.layer_end);
        add_num(w, "capacity_tokens_per_s", n->spec.capacity);
        add_num(w, "planned_tokens_per_s", planned);
        add_num(w, "achieved_tokens_per_s", n->state == NODE_READY ? n->rate_tokens : 0);
        add_num(w, "utilisation",
                n->spec.capacity > 0 && n->state == NODE_READY ? n->rate_tokens / n->spec.capacity
                                                               : 0);
        cJSON_AddNumberToObject(w, "active_sequences", n->hb_active);
        cJSON_AddNumberToObject(w, "kv_used_bytes", (double)n->hb_kv_used);
        cJSON_AddNumberToObject(w, "kv_total_bytes", (double)n->hb_kv_total);
        add_num(w, "kv_frac", n->hb_kv_total ? (double)n->hb_kv_used / (double)n->hb_kv_total : 0);
        cJSON_AddNumberToObject(w, "mem_cap_bytes", (double)n->mem_cap_bytes);
        cJSON_AddNumberToObject(w, "joins", (double)n->joins);
        add_num(w, "last_seen_ms_ago",
                n->last_seen_us ? (double)(now - n->last_seen_us) * 1e-3 : -1.0);
        cJSON_AddBoolToObject(w, "draining", n->draining);
        cJSON_AddBoolToObject(w, "left", n->state == NODE_DEAD && n->left);
        /* up, but its heartbeats stopped: it will be declared dead at dead_ms */
        cJSON_AddBoolToObject(w, "silent", n->silent);
        cJSON_AddBoolToObject(w, "bottleneck", ncut[i]);
        cJSON_AddItemToArray(ws, w);
        if (n->state == NODE_READY && n->spec.layer_end == c->n_layers) {
            achieved += n->rate_tokens;
        }
    }
    cJSON_AddNumberToObject(j, "workers_ready", ready);
    add_num(j, "achieved_tokens_per_s", achieved);
    cJSON *ls = cJSON_AddArrayToObject(j, "links");
    for (int k = 0; k < c->n_links; k++) {
        const struct sched_link_desc *ld = &c->link_desc[k];
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "from", endpoint_name(c, ld->from));
        cJSON_AddStringToObject(l, "to", endpoint_name(c, ld->to));
        add_num(l, "planned_tokens_per_s", c->sched ? sched_link_flow(c->sched, k) : 0);
        add_num(l, "achieved_tokens_per_s", c->links[k].rate_tokens);
        add_num(l, "bytes_per_s", c->links[k].rate_bytes);
        cJSON_AddBoolToObject(l, "bottleneck", lcut[k]);
        cJSON_AddItemToArray(ls, l);
    }
    cJSON *bn = cJSON_AddObjectToObject(j, "bottleneck");
    add_num(bn, "headroom_tokens_per_s", headroom);
    cJSON *bnn = cJSON_AddArrayToObject(bn, "nodes");
    for (int i = 0; i < c->n_nodes; i++) {
        if (ncut[i]) {
            cJSON_AddItemToArray(bnn, cJSON_CreateString(c->nodes[i].spec.name));
        }
    }
    cJSON *bnl = cJSON_AddArrayToObject(bn, "links");
    for (int k = 0; k < c->n_links; k++) {
        if (lcut[k]) {
            cJSON *l = cJSON_CreateObject();
            cJSON_AddStringToObject(l, "from", endpoint_name(c, c->link_desc[k].from));
            cJSON_AddStringToObject(l, "to", endpoint_name(c, c->link_desc[k].to));
            cJSON_AddItemToArray(bnl, l);
        }
    }
    int queued = 0;
    int running = 0;
    for (int i = 0; i < c->n_reqs; i++) {
        running += c->reqs[i]->state == REQ_RUNNING;
        queued += c->reqs[i]->state != REQ_RUNNING;
    }
    cJSON *rq = cJSON_AddObjectToObject(j, "requests");
    cJSON_AddNumberToObject(rq, "queued", queued);
    cJSON_AddNumberToObject(rq, "running", running);
    cJSON_AddNumberToObject(rq, "completed", (double)c->completed);
    cJSON_AddNumberToObject(rq, "failed", (double)c->failed);
    cJSON_AddNumberToObject(rq, "rerouted", (double)c->rerouted);
    cJSON_AddNumberToObject(rq, "cancelled", (double)c->cancelled);
    cJSON_AddNumberToObject(rq, "tokens_generated", (double)c->view.gen_tokens);
    /* history: columns, oldest first */
    cJSON *h = cJSON_AddObjectToObject(j, "history");
    cJSON_AddNumberToObject(h, "interval_s", 1);
    static const char *const cols[] = {"t_s",     "req_per_s", "tokens_per_s", "queued",
                                       "running", "ttft_ms",   "tpot_ms",      "failed"};
    cJSON *arr[8];
    for (int k = 0; k < 8; k++) {
        arr[k] = cJSON_AddArrayToObject(h, cols[k]);
    }
    uint64_t nh = c->view.n_hist;
    uint64_t first = nh > COORD_HISTORY ? nh - COORD_HISTORY : 0;
    for (uint64_t q = first; q < nh; q++) {
        const struct coord_view_sample *sm = &c->view.hist[q % COORD_HISTORY];
        double vals[8] = {sm->t_s,     sm->req_per_s, sm->tokens_per_s, sm->queued,
                          sm->running, sm->ttft_ms,   sm->tpot_ms,      (double)sm->failed};
        for (int k = 0; k < 8; k++) {
            cJSON_AddItemToArray(arr[k], vals[k] < 0 && (k == 5 || k == 6)
                                             ? cJSON_CreateNull()
                                             : cJSON_CreateNumber(isfinite(vals[k]) ? vals[k] : 0));
        }
    }
    /* events, newest first */
    cJSON *ev = cJSON_AddArrayToObject(j, "events");
    uint64_t ne = c->view.n_events;
    for (uint64_t q = ne; q > (ne > COORD_EVENTS ? ne - COORD_EVENTS : 0); q--) {
        const struct coord_view_event *e = &c->view.events[(q - 1) % COORD_EVENTS];
        cJSON *o = cJSON_CreateObject();
        add_num(o, "t_s", (double)(e->t_us - c->start_us) * 1e-6);
        cJSON_AddNumberToObject(o, "unix_ms", (double)e->unix_ms);
        cJSON_AddStringToObject(o, "node", e->node);
        cJSON_AddStringToObject(o, "kind", e->kind);
        cJSON_AddStringToObject(o, "detail", e->detail);
        cJSON_AddItemToArray(ev, o);
    }
    /* the placement is the plan's, fixed at start: no re-plans happen in this version */
    cJSON_AddArrayToObject(j, "replans");
    char *txt = cJSON_PrintUnformatted(j);
    if (txt) {
        strbuf_adds(dst, txt);
        cJSON_free(txt);
    } else {
        strbuf_adds(dst, "{\"error\":\"out of memory rendering the cluster view\"}");
    }
    cJSON_Delete(j);
}

void coord_cluster_json(struct coord *c, struct strbuf *out)
{
    pthread_mutex_lock(&c->mu);
    strbuf_add(out, c->cluster_json.buf ? c->cluster_json.buf : "{}",
               c->cluster_json.len ? c->cluster_json.len : 2);
    pthread_mutex_unlock(&c->mu);
}

/* ---- rendering ----------------------------------------------------------------------------- */

static void history_sample(struct coord *c, int64_t now, double dt)
{
    struct coord_view_state *v = &c->view;
    struct coord_view_sample *sm = &v->hist[v->n_hist % COORD_HISTORY];
    memset(sm, 0, sizeof(*sm));
    sm->t_s = (double)(now - c->start_us) * 1e-6;
    uint64_t done = c->completed + c->failed;
    sm->req_per_s = (double)(done - v->win_completed) / dt;
    sm->failed = c->failed - v->win_failed;
    sm->tokens_per_s = (double)(v->gen_tokens - v->win_gen_tokens) / dt;
    for (int i = 0; i < c->n_reqs; i++) {
        sm->running += c->reqs[i]->state == REQ_RUNNING;
        sm->queued += c->reqs[i]->state != REQ_RUNNING;
    }
    sm->ttft_ms = v->win_ttft_n ? v->win_ttft_sum_ms / (double)v->win_ttft_n : -1;
    sm->tpot_ms = v->win_tpot_n ? v->win_tpot_sum_ms / (double)v->win_tpot_n : -1;
    v->n_hist++;
    v->win_completed = done;
    v->win_failed = c->failed;
    v->win_gen_tokens = v->gen_tokens;
    v->win_ttft_sum_ms = v->win_tpot_sum_ms = 0;
    v->win_ttft_n = v->win_tpot_n = 0;
}

static void latency_metrics(struct coord *c, struct strbuf *sb)
{
    const struct coord_view_state *v = &c->view;
    strbuf_addf(sb,
                "# HELP helix_time_to_first_token_seconds Time from submit to a request's first "
                "token, at the coordinator.\n"
                "# TYPE helix_time_to_first_token_seconds summary\n"
                "helix_time_to_first_token_seconds_sum %.6f\n"
                "helix_time_to_first_token_seconds_count %llu\n"
                "# HELP helix_time_per_output_token_seconds Time between a request's tokens.\n"
                "# TYPE helix_time_per_output_token_seconds summary\n"
                "helix_time_per_output_token_seconds_sum %.6f\n"
                "helix_time_per_output_token_seconds_count %llu\n",
                v->ttft_sum_s, (unsigned long long)v->ttft_n, v->tpot_sum_s,
                (unsigned long long)v->tpot_n);
}

static void add_label_value(struct strbuf *sb, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            strbuf_addc(sb, '\\');
            strbuf_addc(sb, *s);
        } else if (*s == '\n') {
            strbuf_adds(sb, "\\n");
        } else {
            strbuf_addc(sb, *s);
        }
    }
}

static void metrics_text(struct coord *c, const unsigned char *ncut, double headroom,
                         struct strbuf *dst)
{
    struct strbuf sb;
    strbuf_init(&sb);
    int queued = 0;
    int running = 0;
    for (int i = 0; i < c->n_reqs; i++) {
        if (c->reqs[i]->state == REQ_RUNNING) {
            running++;
        } else {
            queued++;
        }
    }
    strbuf_addf(&sb,
                "# HELP helix_requests_queued Requests waiting for admission.\n"
                "# TYPE helix_requests_queued gauge\nhelix_requests_queued %d\n",
                queued);
    strbuf_addf(&sb, "# TYPE helix_requests_running gauge\nhelix_requests_running %d\n", running);
    strbuf_addf(&sb,
                "# TYPE helix_requests_completed_total counter\n"
                "helix_requests_completed_total %llu\n"
                "# TYPE helix_requests_failed_total counter\nhelix_requests_failed_total %llu\n"
                "# TYPE helix_requests_rerouted_total counter\n"
                "helix_requests_rerouted_total %llu\n"
                "# TYPE helix_requests_cancelled_total counter\n"
                "helix_requests_cancelled_total %llu\n",
                (unsigned long long)c->completed, (unsigned long long)c->failed,
                (unsigned long long)c->rerouted, (unsigned long long)c->cancelled);
    double fv = c->sched ? sched_flow_value(c->sched) : 0;
    strbuf_addf(&sb,
                "# HELP helix_planned_flow_tokens_per_second Max-flow of the live placement.\n"
                "# TYPE helix_planned_flow_tokens_per_second gauge\n"
                "helix_planned_flow_tokens_per_second %.6g\n",
                fv);
    strbuf_adds(&sb, "# TYPE helix_node_up gauge\n# TYPE helix_node_tokens_per_second gauge\n"
                     "# TYPE helix_node_planned_tokens_per_second gauge\n"
                     "# TYPE helix_node_tokens_total counter\n"
                     "# TYPE helix_node_active_sequences gauge\n"
                     "# TYPE helix_node_kv_used_bytes gauge\n"
                     "# TYPE helix_node_kv_total_bytes gauge\n"
                     "# TYPE helix_node_kv_reserved_blocks gauge\n");
    for (int i = 0; i < c->n_nodes; i++) {
        struct cnode *n = &c->nodes[i];
        double planned = 0;
        for (int k = 0; k < c->n_links && c->sched; k++) {
            if (c->link_desc[k].to == i) {
                planned += sched_link_flow(c->sched, k);
            }
        }
        const char *nm = n->spec.name;
        strbuf_addf(&sb, "helix_node_up{node=\"%s\",state=\"%s\"} %d\n", nm,
                    coord_node_state_name(n->state), n->state == NODE_READY);
        strbuf_addf(&sb, "helix_node_tokens_per_second{node=\"%s\"} %.6g\n", nm, n->rate_tokens);
        strbuf_addf(&sb, "helix_node_planned_tokens_per_second{node=\"%s\"} %.6g\n", nm, planned);
        strbuf_addf(&sb, "helix_node_tokens_total{node=\"%s\"} %llu\n", nm,
                    (unsigned long long)n->tokens);
        strbuf_addf(&sb, "helix_node_active_sequences{node=\"%s\"} %u\n", nm, n->hb_active);
        strbuf_addf(&sb, "helix_node_kv_used_bytes{node=\"%s\"} %llu\n", nm,
                    (unsigned long long)n->hb_kv_used);
        strbuf_addf(&sb, "helix_node_kv_total_bytes{node=\"%s\"} %llu\n", nm,
                    (unsigned long long)n->hb_kv_total);
        strbuf_addf(&sb, "helix_node_kv_reserved_blocks{node=\"%s\"} %ld\n", nm, n->kv_blocks_used);
    }
    strbuf_adds(&sb, "# HELP helix_node_bottleneck 1 if the node is in the minimum cut of the live "
                     "placement on residual capacities (docs/dashboard.md).\n"
                     "# TYPE helix_node_bottleneck gauge\n");
    for (int i = 0; i < c->n_nodes; i++) {
        strbuf_addf(&sb, "helix_node_bottleneck{node=\"%s\"} %d\n", c->nodes[i].spec.name, ncut[i]);
    }
    strbuf_addf(&sb,
                "# HELP helix_headroom_tokens_per_second Tokens/s the live placement could add "
                "over the achieved rates (max-flow on residual capacities).\n"
                "# TYPE helix_headroom_tokens_per_second gauge\n"
                "helix_headroom_tokens_per_second %.6g\n",
                headroom);
    strbuf_adds(&sb, "# HELP helix_node_info What each worker that registered computes on.\n"
                     "# TYPE helix_node_info gauge\n"
                     "# HELP helix_node_mem_cap_bytes The worker's --mem-bytes cap (0: none).\n"
                     "# TYPE helix_node_mem_cap_bytes gauge\n");
    for (int i = 0; i < c->n_nodes; i++) {
        const struct cnode *n = &c->nodes[i];
        if (!n->device[0]) {
            continue; /* never registered */
        }
        strbuf_addf(&sb, "helix_node_info{node=\"%s\",backend=\"", n->spec.name);
        add_label_value(&sb, n->backend);
        strbuf_adds(&sb, "\",device=\"");
        add_label_value(&sb, n->device);
        strbuf_adds(&sb, "\"} 1\n");
        strbuf_addf(&sb, "helix_node_mem_cap_bytes{node=\"%s\"} %llu\n", n->spec.name,
                    (unsigned long long)n->mem_cap_bytes);
    }
    {
        static const char *const reasons[4] = {"handshake", "key", "message", "malformed"};
        uint64_t mine[4] = {0, 0, c->refused_messages, 0};
        if (c->sec) {
            struct xsec_stats ss;
            xsec_stats_get(c->sec, &ss);
            mine[0] = ss.refused_handshakes;
            mine[1] = ss.refused_keys;
        }
        struct xport_stats xs;
        xport_stats_get(c->ctrl, &xs);
        mine[3] = xs.dropped;
        strbuf_adds(&sb, "# HELP helix_refused_total Peers and messages refused, by where and why "
                         "(handshake: failed CURVE handshake; key: key not admitted; message: "
                         "sender's key not admitted for its name; malformed: bad frames).\n"
                         "# TYPE helix_refused_total counter\n");
        strbuf_addf(&sb, "helix_curve_enabled %d\n", c->curve);
        for (int r = 0; r < 4; r++) {
            strbuf_addf(&sb, "helix_refused_total{at=\"coordinator\",reason=\"%s\"} %llu\n",
                        reasons[r], (unsigned long long)mine[r]);
        }
        for (int i = 0; i < c->n_nodes; i++) {
            for (int r = 0; r < 4; r++) {
                strbuf_addf(&sb, "helix_refused_total{at=\"%s\",reason=\"%s\"} %llu\n",
                            c->nodes[i].spec.name, reasons[r],
                            (unsigned long long)c->nodes[i].hb_refused[r]);
            }
        }
    }
    strbuf_adds(&sb, "# TYPE helix_link_bytes_per_second gauge\n"
                     "# TYPE helix_link_tokens_per_second gauge\n"
                     "# TYPE helix_link_planned_tokens_per_second gauge\n");
    for (int i = 0; i < c->n_links; i++) {
        const struct sched_link_desc *ld = &c->link_desc[i];
        char a[RT_NAME_MAX + 1];
        char b[RT_NAME_MAX + 1];
        snprintf(a, sizeof(a), "%s", ld->from < 0 ? "source" : c->nodes[ld->from].spec.name);
        snprintf(b, sizeof(b), "%s", ld->to < 0 ? "sink" : c->nodes[ld->to].spec.name);
        strbuf_addf(&sb, "helix_link_bytes_per_second{from=\"%s\",to=\"%s\"} %.6g\n", a, b,
                    c->links[i].rate_bytes);
        strbuf_addf(&sb, "helix_link_tokens_per_second{from=\"%s\",to=\"%s\"} %.6g\n", a, b,
                    c->links[i].rate_tokens);
        strbuf_addf(&sb, "helix_link_planned_tokens_per_second{from=\"%s\",to=\"%s\"} %.6g\n", a, b,
                    c->sched ? sched_link_flow(c->sched, i) : 0.0);
    }
    strbuf_add(dst, sb.buf, sb.len);
    strbuf_release(&sb);
}

void coord_metrics(struct coord *c, struct strbuf *out)
{
    pthread_mutex_lock(&c->mu);
    strbuf_add(out, c->metrics.buf ? c->metrics.buf : "", c->metrics.len);
    pthread_mutex_unlock(&c->mu);
}

void coord_view_render(struct coord *c)
{
    int64_t now = hx_clock_now_us();
    double dt = (double)(now - c->win_start_us) * 1e-6;
    if (dt >= 1.0) {
        for (int i = 0; i < c->n_nodes; i++) {
            struct cnode *n = &c->nodes[i];
            n->rate_tokens = (double)(n->tokens - n->win_tokens) / dt;
            n->win_tokens = n->tokens;
        }
        for (int i = 0; i < c->n_links; i++) {
            struct clink *l = &c->links[i];
            l->rate_bytes = (double)(l->bytes - l->win_bytes) / dt;
            l->rate_tokens = (double)(l->tokens - l->win_tokens) / dt;
            l->win_bytes = l->bytes;
            l->win_tokens = l->tokens;
        }
        history_sample(c, now, dt);
        c->win_start_us = now;
    }
    unsigned char *ncut = xcalloc((size_t)c->n_nodes, 1);
    unsigned char *lcut = xcalloc((size_t)(c->n_links ? c->n_links : 1), 1);
    double headroom = 0;
    bottleneck(c, ncut, lcut, &headroom);
    struct strbuf m;
    strbuf_init(&m);
    metrics_text(c, ncut, headroom, &m);
    latency_metrics(c, &m);
    struct strbuf js;
    strbuf_init(&js);
    cluster_json(c, ncut, lcut, headroom, &js);
    xfree(ncut);
    xfree(lcut);
    pthread_mutex_lock(&c->mu);
    strbuf_reset(&c->metrics);
    strbuf_add(&c->metrics, m.buf ? m.buf : "", m.len);
    strbuf_reset(&c->cluster_json);
    strbuf_add(&c->cluster_json, js.buf ? js.buf : "", js.len);
    pthread_mutex_unlock(&c->mu);
    strbuf_release(&m);
    strbuf_release(&js);
}
