/*
 * sim.c - the discrete-event simulator (spec §6) following Helix's cluster_simulator.py event by
 * event: the same event kinds, created in the same order, popped by (time, creation sequence).
 *
 * A query has at most one iteration (request) in flight, so the request state lives in the
 * query (index = request id). Endpoints: 0 = source, 1 + i = compute node i, n + 1 = sink.
 * Invariant counters (layer order, KV capacity, bandwidth) are kept on every run.
 */
#include "sim/sim.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/pyrand.h"
#include "base/status.h"
#include "base/vec.h"
#include "core/cluster.h"
#include "core/layout.h"
#include "core/model.h"
#include "sched/sched.h"
#include "sim/trace.h"

/* ---- defaults ---------------------------------------------------------------------------- */

void sim_quirks_set(struct sim_quirks *q, enum sim_fidelity f)
{
    int h = f == SIM_FIDELITY_HELIX;
    q->decode_double = h;
    q->cpu_overhead_act = h;
    q->offline_drop = h;
    q->one_request_per_tx = h;
}

void sim_config_defaults(struct sim_config *c, enum sim_mode mode, enum sim_policy policy)
{
    memset(c, 0, sizeof(*c));
    c->mode = mode;
    c->policy = policy;
    c->seed = 0;
    sim_quirks_set(&c->quirks, SIM_FIDELITY_HELIX);
    sched_params_helix(&c->sched, mode == SIM_MODE_OFFLINE);
    c->duration_s = 1800;
    c->warmup_s = 60;
    c->measure_s = 600;
    c->feed_hwm = 0.8;
    c->check_invariants = 1;
    c->series_dt_s = 10;
}

void sim_latency_stats(double *vals, size_t n, struct sim_latency *out)
{
    memset(out, 0, sizeof(*out));
    out->n = n;
    if (n == 0) {
        return;
    }
    /* insertion into a sorted copy would be slow; a plain heap sort keeps this dependency-free */
    for (size_t i = n / 2; i-- > 0;) {
        size_t r = i;
        for (;;) {
            size_t c = 2 * r + 1;
            if (c >= n) {
                break;
            }
            if (c + 1 < n && vals[c + 1] > vals[c]) {
                c++;
            }
            if (vals[r] >= vals[c]) {
                break;
            }
            double t = vals[r];
            vals[r] = vals[c];
            vals[c] = t;
            r = c;
        }
    }
    for (size_t end = n - 1; end > 0; end--) {
        double t = vals[0];
        vals[0] = vals[end];
        vals[end] = t;
        size_t r = 0;
        for (;;) {
            size_t c = 2 * r + 1;
            if (c >= end) {
                break;
            }
            if (c + 1 < end && vals[c + 1] > vals[c]) {
                c++;
            }
            if (vals[r] >= vals[c]) {
                break;
            }
            double u = vals[r];
            vals[r] = vals[c];
            vals[c] = u;
            r = c;
        }
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += vals[i];
    }
    out->mean = sum / (double)n;
    out->p50 = vals[(size_t)((double)n * 0.5)];
    out->p95 = vals[(size_t)((double)n * 0.95)];
    out->p99 = vals[(size_t)((double)n * 0.99)];
}

void sim_result_release(struct sim_result *r)
{
    if (r == NULL) {
        return;
    }
    xfree(r->node_util);
    xfree(r->prompt_samples);
    xfree(r->decode_samples);
    xfree(r->series);
    memset(r, 0, sizeof(*r));
}

/* ---- topology ---------------------------------------------------------------------------- */

int sim_topology_build(const struct model_profile *m, const struct model_throughput *tp,
                       const struct sim_cluster *sc, const struct layout *l,
                       struct sched_topology *out, struct sched_node_desc **nodes_out,
                       struct sched_link_desc **links_out, struct hx_diag *diag)
{
    *nodes_out = NULL;
    *links_out = NULL;
    struct sched_node_desc *nodes = xcalloc((size_t)sc->n_nodes + 1, sizeof(*nodes));
    struct sched_link_desc *links = xcalloc((size_t)sc->n_links + 1, sizeof(*links));
    for (int i = 0; i < sc->n_nodes; i++) {
        const struct sim_node *sn = &sc->nodes[i];
        struct sched_node_desc *d = &nodes[i];
        if (sn->node < 0 || sn->node >= l->n_nodes) {
            xfree(nodes);
            xfree(links);
            return hx_diag_set(diag, HX_EINVAL, "%s:%d: %s: no layout entry for this node",
                               sc->path ? sc->path : "sim cluster", sn->line, sn->name);
        }
        d->start = l->nodes[sn->node].start;
        d->n_layers = l->nodes[sn->node].n_layers;
        d->nic_in = sn->nic_in;
        d->nic_out = sn->nic_out;
        d->kv_capacity = sn->kv_cache_capacity;
        if (d->n_layers == 0) {
            continue;
        }
        int g = model_gpu_index(m, sn->machine_type);
        if (g < 0) {
            xfree(nodes);
            xfree(links);
            return hx_diag_set(diag, HX_ENOTFOUND, "%s:%d: %s: machine type %s not in model %s",
                               sc->path ? sc->path : "sim cluster", sn->line, sn->name,
                               sn->machine_type, m->name);
        }
        double t = model_throughput_tp(tp, g, d->n_layers);
        if (!(t > 0) || tp->settings[g] == NULL) {
            xfree(nodes);
            xfree(links);
            return hx_diag_set(diag, HX_ERANGE,
                               "%s: %s: no throughput for %d layers (max %d for %s)",
                               sc->path ? sc->path : "sim cluster", sn->name, d->n_layers,
                               m->gpus[g].max_layers, sn->machine_type);
        }
        d->tp = t;
        d->prompt_max_tokens = tp->settings[g][d->n_layers - 1].prompt_max_tokens;
    }
    for (int i = 0; i < sc->n_links; i++) {
        links[i].from = sc->links[i].from;
        links[i].to = sc->links[i].to;
        links[i].bandwidth = sc->links[i].bandwidth;
        links[i].latency_s = sc->links[i].latency_s;
    }
    memset(out, 0, sizeof(*out));
    out->n_layers = m->n_layers;
    out->token_bytes = m->token_bytes;
    out->activation_bytes = m->activation_bytes;
    out->coord_nic_in = sc->coord_nic_in;
    out->coord_nic_out = sc->coord_nic_out;
    out->n_nodes = sc->n_nodes;
    out->nodes = nodes;
    out->n_links = sc->n_links;
    out->links = links;
    *nodes_out = nodes;
    *links_out = links;
    return HX_OK;
}

int sim_layout_derive(const struct model_profile *m, const struct sim_cluster *sc,
                      struct layout **out, struct hx_diag *diag)
{
    *out = NULL;
    int max_idx = -1;
    for (int i = 0; i < sc->n_nodes; i++) {
        if (sc->nodes[i].node < 0) {
            return hx_diag_set(diag, HX_EINVAL,
                               "%s: node %s is not named compute_node_<i>; pass --layout",
                               sc->path ? sc->path : "sim cluster", sc->nodes[i].name);
        }
        if (sc->nodes[i].node > max_idx) {
            max_idx = sc->nodes[i].node;
        }
    }
    struct layout *l = layout_new(max_idx + 1);
    int *start = xcalloc((size_t)sc->n_nodes + 1, sizeof(int));
    int *k = xcalloc((size_t)sc->n_nodes + 1, sizeof(int));
    int *linked = xcalloc((size_t)sc->n_nodes + 1, sizeof(int));
    int rc = HX_OK;
    for (int i = 0; i < sc->n_links; i++) {
        if (sc->links[i].from >= 0) {
            linked[sc->links[i].from] = 1;
        }
        if (sc->links[i].to >= 0) {
            linked[sc->links[i].to] = 1;
        }
    }
    for (int i = 0; i < sc->n_nodes && rc == HX_OK; i++) {
        start[i] = -1;
        if (!linked[i]) {
            continue;
        }
        const struct sim_node *sn = &sc->nodes[i];
        int g = model_gpu_index(m, sn->machine_type);
        if (g < 0) {
            rc = hx_diag_set(diag, HX_ENOTFOUND, "%s: %s: machine type %s not in model %s",
                             sc->path ? sc->path : "sim cluster", sn->name, sn->machine_type,
                             m->name);
            break;
        }
        int found = 0;
        for (int kk = 1; kk <= m->gpus[g].max_layers; kk++) {
            if (model_kv_capacity(m, &m->gpus[g], kk) == sn->kv_cache_capacity) {
                k[i] = kk;
                found++;
            }
        }
        if (found != 1) {
            rc = hx_diag_set(diag, HX_EINVAL,
                             "%s: %s: kv_cache_capacity %ld matches no unique layer count of %s; "
                             "pass --layout",
                             sc->path ? sc->path : "sim cluster", sn->name, sn->kv_cache_capacity,
                             sn->machine_type);
        }
    }
    for (int i = 0; i < sc->n_links && rc == HX_OK; i++) {
        if (sc->links[i].from == CLUSTER_SOURCE && sc->links[i].to >= 0) {
            start[sc->links[i].to] = 0;
        }
    }
    for (int changed = 1; changed && rc == HX_OK;) {
        changed = 0;
        for (int i = 0; i < sc->n_links; i++) {
            int a = sc->links[i].from;
            int b = sc->links[i].to;
            if (a < 0 || b < 0 || start[a] < 0) {
                continue;
            }
            int e = start[a] + k[a];
            if (start[b] < 0) {
                start[b] = e;
                changed = 1;
            } else if (start[b] != e && start[b] > e) {
                /* overlapping (partial) links cannot be resolved from the file alone */
                rc = hx_diag_set(
                    diag, HX_EINVAL, "%s: %s: inconsistent starts (%d vs %d); pass --layout",
                    sc->path ? sc->path : "sim cluster", sc->links[i].name, start[b], e);
                break;
            }
        }
    }
    for (int i = 0; i < sc->n_nodes && rc == HX_OK; i++) {
        if (!linked[i]) {
            continue;
        }
        if (start[i] < 0 || start[i] + k[i] > m->n_layers) {
            rc = hx_diag_set(diag, HX_EINVAL, "%s: %s: cannot place its layers; pass --layout",
                             sc->path ? sc->path : "sim cluster", sc->nodes[i].name);
            break;
        }
        l->nodes[sc->nodes[i].node].start = start[i];
        l->nodes[sc->nodes[i].node].n_layers = k[i];
    }
    xfree(start);
    xfree(k);
    xfree(linked);
    if (rc != HX_OK) {
        layout_free(l);
        return rc;
    }
    *out = l;
    return HX_OK;
}

/* ---- simulator state --------------------------------------------------------------------- */

enum ev_type {
    EV_LOAD_DONE = 0,
    EV_NEW_REQUEST,
    EV_START_TX,
    EV_FINISH_SEND,
    EV_FINISH_TX,
    EV_START_EXEC,
    EV_FINISH_EXEC,
    EV_GATHER,
};

struct event {
    double t;
    uint64_t seq;
    int type;
    int a;
};

typedef HX_VEC(int) ivec;

struct query {
    int input;
    int output;
    int iter;  /* iterations finished so far (0 = prompt in flight) */
    int len;   /* tokens of the iteration in flight (prompt length or 1) */
    long prev; /* tokens before this iteration */
    double t_create;
    struct sched_route route;
    int stage;            /* stages traversed (or being traversed) by the iteration in flight */
    int next_layer;       /* next layer the iteration must run */
    double t_link;        /* when the current hop's transmission started */
    int from_ep;          /* sender of the current hop */
    int link;             /* link of the current hop */
    unsigned char logged; /* swarm: EMA updated for this hop */
    unsigned char cached; /* swarm: waiting in a link FIFO */
    unsigned char in_batch;
    unsigned char from_source;
};

struct cnode {
    int start;
    int k;
    const struct model_gpu *gpu;
    struct model_settings set;
    int cur;
    int busy;
    ivec *queues; /* [k]: requests waiting to run layer start + j */
    ivec batch;
    double cpu_bytes; /* overhead buffer: bytes received since the last first-layer run */
    double cpu_tokens;
    int cpu_n;
    long kv_used;
    long kv_cap;
    double busy_time;
    long dec_batches; /* layer batches with decode tokens started inside the window */
    long dec_tokens;  /* their decode tokens */
};

struct link {
    int from; /* endpoint */
    int to;
    double bw;
    double avail;
    double lat;
    int n_sending;
    int pos;                   /* position in the sender's out list */
    ivec fifo;                 /* requests waiting for this link (swarm, max-flow) */
    HX_VEC(uint64_t) fifo_seq; /* max-flow: arrival sequence of each waiting request */
    size_t fifo_head;
    double size; /* bytes per token on this link */
};

struct tx {
    int link;
    double bw;
    ivec reqs;
    int next_free;
};

struct sim {
    const struct sim_config *cfg;
    struct hx_diag *diag;
    int rc;
    int n;    /* compute nodes */
    int n_ep; /* n + 2 */
    int L;
    double token_bytes;
    double act_bytes;
    struct cnode *nodes;
    struct link *links;
    int n_links;
    int *out_start;
    int *out_links;
    double *nic_out;
    double *nic_in;
    double *out_avail;
    double *in_avail;
    ivec *outbound; /* per endpoint (source, nodes); max-flow uses the link FIFOs instead */
    uint64_t outbound_seq;
    ivec sink_queue;
    /* events */
    struct event *heap;
    size_t heap_n;
    size_t heap_cap;
    uint64_t seq;
    uint64_t events;
    double now;
    /* queries */
    struct query *q;
    size_t n_q;
    size_t cap_q;
    ivec retry; /* offline rejected queries (when not dropped) */
    /* transmissions */
    struct tx *tx;
    int n_tx;
    int free_tx;
    /* scheduling */
    struct sched *sched;
    struct sched_swarm *swarm;
    struct pyrand rng;
    struct sim_length_sampler lengths;
    /* scratch */
    int *scratch;
    int *assigned;
    /* metrics */
    struct sim_result *res;
    double start;
    double until; /* offline stop time (INFINITY online) */
    double feed_end;
    size_t cap_prompt;
    size_t cap_decode;
};

/* ---- event heap -------------------------------------------------------------------------- */

static int ev_less(const struct event *a, const struct event *b)
{
    if (a->t != b->t) {
        return a->t < b->t;
    }
    return a->seq < b->seq;
}

static void push_event(struct sim *s, double t, int type, int a)
{
    if (s->heap_n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? 2 * s->heap_cap : 1024;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof(*s->heap));
    }
    struct event e = {.t = t, .seq = s->seq++, .type = type, .a = a};
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_less(&e, &s->heap[p])) {
            break;
        }
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
}

static struct event pop_event(struct sim *s)
{
    struct event top = s->heap[0];
    struct event last = s->heap[--s->heap_n];
    size_t n = s->heap_n;
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && ev_less(&s->heap[c + 1], &s->heap[c])) {
            c++;
        }
        if (!ev_less(&s->heap[c], &last)) {
            break;
        }
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) {
        s->heap[i] = last;
    }
    return top;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static int fail(struct sim *s, int rc)
{
    if (s->rc == HX_OK) {
        s->rc = rc;
    }
    return rc;
}

static int new_query(struct sim *s, int input, int output, double t)
{
    if (s->n_q == s->cap_q) {
        s->cap_q = s->cap_q ? 2 * s->cap_q : 1024;
        s->q = xrealloc(s->q, s->cap_q * sizeof(*s->q));
    }
    int id = (int)s->n_q++;
    struct query *q = &s->q[id];
    memset(q, 0, sizeof(*q));
    q->input = input;
    q->output = output;
    q->len = input;
    q->t_create = t;
    s->res->queries_issued++;
    push_event(s, t, EV_NEW_REQUEST, id);
    return id;
}

static int alloc_tx(struct sim *s)
{
    if (s->free_tx >= 0) {
        int id = s->free_tx;
        s->free_tx = s->tx[id].next_free;
        s->tx[id].reqs.len = 0;
        return id;
    }
    s->tx = xrealloc(s->tx, ((size_t)s->n_tx + 1) * sizeof(*s->tx));
    memset(&s->tx[s->n_tx], 0, sizeof(s->tx[0]));
    return s->n_tx++;
}

static void bw_take(struct sim *s, double *avail, double bw)
{
    if (s->cfg->check_invariants && bw > *avail + 1e-6 * fmax(1.0, bw)) {
        s->res->bw_oversubscribed++;
    }
    *avail -= bw;
}

/* Start sending the requests of tx (already filled) over its link at tx->bw. */
static void start_tx(struct sim *s, int id)
{
    struct tx *t = &s->tx[id];
    struct link *l = &s->links[t->link];
    double tokens = 0;
    for (size_t i = 0; i < t->reqs.len; i++) {
        struct query *q = &s->q[t->reqs.data[i]];
        tokens += (double)q->len;
        q->t_link = s->now;
        q->from_ep = l->from;
        q->link = t->link;
        q->logged = 0;
    }
    bw_take(s, &s->out_avail[l->from], t->bw);
    bw_take(s, &l->avail, t->bw);
    bw_take(s, &s->in_avail[l->to], t->bw);
    l->n_sending++;
    double duration = l->lat + tokens * l->size / t->bw;
    push_event(s, s->now + duration - l->lat, EV_FINISH_SEND, id);
}

/* Layers a prompt runs on the next node (Helix: all from the source, else those after ours). */
static void next_layers(struct sim *s, int from_ep, int to, int *lo, int *hi)
{
    struct cnode *d = &s->nodes[to];
    *lo = d->start;
    *hi = d->start + d->k;
    if (from_ep != 0) {
        struct cnode *c = &s->nodes[from_ep - 1];
        int e = c->start + c->k;
        if (e > *lo) {
            *lo = e;
        }
    }
}

/* Append the stage over link li to a baseline prompt's route. */
static void route_hop(struct sim *s, struct query *q, int li)
{
    struct link *l = &s->links[li];
    struct sched_stage st = {.link = li, .bandwidth = -1};
    if (l->to == s->n + 1) {
        st.node = SCHED_SINK;
    } else {
        st.node = l->to - 1;
        next_layers(s, l->from, l->to - 1, &st.layer_start, &st.layer_end);
        if (st.layer_end <= st.layer_start) {
            hx_diag_set(s->diag, HX_EINFEASIBLE,
                        "sim: link %d leads to a node with no layer left to run", li);
            fail(s, HX_EINFEASIBLE);
        }
    }
    sched_route_push(&q->route, &st);
}

/* Drop the requests marked in_batch (or scheduled) from a vector, keeping order. */
static void remove_marked(struct sim *s, ivec *v)
{
    size_t w = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (!s->q[v->data[i]].in_batch) {
            v->data[w++] = v->data[i];
        }
    }
    v->len = w;
}

/* ---- transmission scheduling ------------------------------------------------------------- */

/*
 * Max-flow transmission (Helix GlobalFlowScheduler.schedule_transmission): walk the sender's
 * outbound requests in arrival order; the first request bound for a link is sent if that link
 * is not sending. Requests wait in per-link FIFOs tagged with their arrival sequence, so the
 * walk is over the sender's links (O(links), not O(queued requests)); heads are sent in arrival
 * order, as Helix creates the transmissions.
 */
static void tx_maxflow(struct sim *s, int e)
{
    int n_cand = 0;
    int *cand = s->scratch;
    for (int k = s->out_start[e]; k < s->out_start[e + 1]; k++) {
        int li = s->out_links[k];
        struct link *l = &s->links[li];
        if (l->n_sending == 0 && l->fifo_head < l->fifo.len) {
            /* insertion by arrival sequence of the link's head (few links per node) */
            uint64_t sq = l->fifo_seq.data[l->fifo_head];
            int j = n_cand++;
            while (j > 0 &&
                   s->links[cand[j - 1]].fifo_seq.data[s->links[cand[j - 1]].fifo_head] > sq) {
                cand[j] = cand[j - 1];
                j--;
            }
            cand[j] = li;
        }
    }
    int batched = !s->cfg->quirks.one_request_per_tx;
    for (int j = 0; j < n_cand; j++) {
        int li = cand[j];
        struct link *l = &s->links[li];
        int id = alloc_tx(s);
        struct tx *t = &s->tx[id];
        t->link = li;
        size_t end = batched ? l->fifo.len : l->fifo_head + 1; /* fix of §11.10: all queued */
        for (size_t i = l->fifo_head; i < end; i++) {
            int qid = l->fifo.data[i];
            struct query *q = &s->q[qid];
            if (t->reqs.len == 0) {
                t->bw = floor(q->route.stage[q->stage].bandwidth);
            }
            q->stage++;
            hx_vec_push(&t->reqs, qid);
        }
        l->fifo_head = end;
        if (l->fifo_head == l->fifo.len) {
            l->fifo.len = 0;
            l->fifo_seq.len = 0;
            l->fifo_head = 0;
        }
        start_tx(s, id);
    }
}

/* A request is ready to leave endpoint e (max-flow: into its next link's FIFO). */
static void outbound_add(struct sim *s, int e, int qid)
{
    if (s->cfg->policy == SIM_POLICY_MAXFLOW) {
        struct query *q = &s->q[qid];
        struct link *l = &s->links[q->route.stage[q->stage].link];
        hx_vec_push(&l->fifo, qid);
        hx_vec_push(&l->fifo_seq, s->outbound_seq++);
        return;
    }
    hx_vec_push(&s->outbound[e], qid);
}

/* Free out-links of endpoint e with their available bandwidth (baselines, §5.2). */
static int free_links(struct sim *s, int e, int *ids, double *avail)
{
    int n_out = s->out_start[e + 1] - s->out_start[e];
    int cnt = 0;
    for (int k = s->out_start[e]; k < s->out_start[e + 1]; k++) {
        int li = s->out_links[k];
        struct link *l = &s->links[li];
        double flow_control = s->nic_out[e] / (double)n_out - (l->bw - l->avail);
        double a = fmin(s->out_avail[e], fmin(l->avail, s->in_avail[l->to]));
        a = fmin(flow_control, a);
        if (a > 10.0) {
            ids[cnt] = li;
            avail[cnt] = a;
            cnt++;
        }
    }
    return cnt;
}

static void send_one(struct sim *s, int li, double bw, int qid)
{
    int id = alloc_tx(s);
    s->tx[id].link = li;
    s->tx[id].bw = bw;
    hx_vec_push(&s->tx[id].reqs, qid);
    s->q[qid].in_batch = 1;
    start_tx(s, id);
}

static void tx_random(struct sim *s, int e, int shortest)
{
    int n_out = s->out_start[e + 1] - s->out_start[e];
    int *ids = s->scratch;
    double *avail = xmalloc(((size_t)n_out + 1) * sizeof(double));
    int n_free = free_links(s, e, ids, avail);
    int *assigned = s->assigned; /* per free-link slot: query id or -1 */
    for (int j = 0; j < n_free; j++) {
        assigned[j] = -1;
    }
    unsigned char *ok = NULL;
    if (shortest) {
        /* next nodes with the shortest first-layer queue (sink link ends the scan) */
        ok = xcalloc((size_t)n_free + 1, 1);
        size_t best = SIZE_MAX;
        int *cand = xmalloc(((size_t)n_out + 1) * sizeof(int));
        int n_cand = 0;
        for (int k = s->out_start[e]; k < s->out_start[e + 1]; k++) {
            int li = s->out_links[k];
            int to = s->links[li].to;
            if (to == s->n + 1) {
                cand[n_cand++] = li;
                break;
            }
            size_t qlen = s->nodes[to - 1].queues[0].len;
            if (qlen < best) {
                best = qlen;
                n_cand = 0;
                cand[n_cand++] = li;
            } else if (qlen == best) {
                cand[n_cand++] = li;
            }
        }
        for (int j = 0; j < n_free; j++) {
            for (int c = 0; c < n_cand; c++) {
                if (cand[c] == ids[j]) {
                    ok[j] = 1;
                }
            }
        }
        xfree(cand);
    }
    int *perm = xmalloc(((size_t)n_free + 1) * sizeof(int));
    ivec *ob = &s->outbound[e];
    for (size_t i = 0; i < ob->len; i++) {
        int qid = ob->data[i];
        struct query *q = &s->q[qid];
        if (q->iter == 0) {
            for (int j = 0; j < n_free; j++) {
                perm[j] = j;
            }
            pyrand_shuffle(&s->rng, perm, (size_t)n_free, sizeof(int));
            for (int j = 0; j < n_free; j++) {
                int slot = perm[j];
                if (ok != NULL && !ok[slot]) {
                    continue;
                }
                if (assigned[slot] < 0) {
                    route_hop(s, q, ids[slot]);
                    assigned[slot] = qid;
                    break;
                }
            }
        } else {
            int li = q->route.stage[q->stage].link;
            for (int j = 0; j < n_free; j++) {
                if (ids[j] == li) {
                    if (assigned[j] < 0) {
                        assigned[j] = qid;
                    }
                    break;
                }
            }
        }
    }
    for (int j = 0; j < n_free; j++) {
        if (assigned[j] >= 0) {
            s->q[assigned[j]].stage++;
            send_one(s, ids[j], avail[j], assigned[j]);
        }
    }
    remove_marked(s, ob);
    xfree(perm);
    xfree(ok);
    xfree(avail);
}

static void tx_swarm(struct sim *s, int e)
{
    ivec *ob = &s->outbound[e];
    unsigned char *re = NULL; /* senders to re-trigger (Helix: after the new sends) */
    if (e != 0) {
        /* EMA update of the previous sender for each request seen here for the first time */
        for (size_t i = 0; i < ob->len; i++) {
            struct query *q = &s->q[ob->data[i]];
            if (q->logged) {
                continue;
            }
            q->logged = 1;
            double dt = s->now - q->t_link;
            sched_swarm_update(s->swarm, q->from_ep, s->links[q->link].pos, dt);
            if (re == NULL) {
                re = xcalloc((size_t)s->n_ep, 1);
            }
            re[q->from_ep] = 1;
        }
    }
    for (size_t i = 0; i < ob->len; i++) {
        int qid = ob->data[i];
        struct query *q = &s->q[qid];
        if (q->cached) {
            continue;
        }
        int li;
        if (q->iter == 0) {
            int pos = sched_swarm_choose(s->swarm, e);
            li = s->out_links[s->out_start[e] + pos];
        } else {
            li = q->route.stage[q->stage].link;
        }
        q->cached = 1;
        hx_vec_push(&s->links[li].fifo, qid);
    }
    int n_out = s->out_start[e + 1] - s->out_start[e];
    int *ids = s->scratch;
    double *avail = xmalloc(((size_t)n_out + 1) * sizeof(double));
    int n_free = free_links(s, e, ids, avail);
    for (int j = 0; j < n_free; j++) {
        struct link *l = &s->links[ids[j]];
        if (l->fifo_head >= l->fifo.len) {
            continue;
        }
        int qid = l->fifo.data[l->fifo_head++];
        if (l->fifo_head == l->fifo.len) {
            l->fifo.len = 0;
            l->fifo_head = 0;
        }
        struct query *q = &s->q[qid];
        q->cached = 0;
        if (q->iter == 0) {
            route_hop(s, q, ids[j]);
        }
        q->stage++;
        send_one(s, ids[j], avail[j], qid);
    }
    remove_marked(s, ob);
    xfree(avail);
    if (re != NULL) {
        for (int u = 0; u < s->n_ep; u++) {
            if (re[u]) {
                push_event(s, s->now, EV_START_TX, u);
            }
        }
        xfree(re);
    }
}

static void on_start_tx(struct sim *s, int e)
{
    switch (s->cfg->policy) {
    case SIM_POLICY_MAXFLOW:
        tx_maxflow(s, e);
        break;
    case SIM_POLICY_SWARM:
        tx_swarm(s, e);
        break;
    case SIM_POLICY_RANDOM:
        tx_random(s, e, 0);
        break;
    case SIM_POLICY_SHORTEST_QUEUE:
        tx_random(s, e, 1);
        break;
    }
}

static void on_finish_send(struct sim *s, int id)
{
    struct tx *t = &s->tx[id];
    struct link *l = &s->links[t->link];
    s->out_avail[l->from] += t->bw;
    l->avail += t->bw;
    s->in_avail[l->to] += t->bw;
    l->n_sending--;
    for (size_t i = 0; i < t->reqs.len; i++) {
        s->q[t->reqs.data[i]].in_batch = 0;
    }
    push_event(s, s->now, EV_START_TX, l->from);
    push_event(s, s->now + l->lat, EV_FINISH_TX, id);
}

static void on_finish_tx(struct sim *s, int id)
{
    struct tx *t = &s->tx[id];
    struct link *l = &s->links[t->link];
    int to = l->to;
    for (size_t i = 0; i < t->reqs.len; i++) {
        int qid = t->reqs.data[i];
        struct query *q = &s->q[qid];
        if (to == s->n + 1) {
            hx_vec_push(&s->sink_queue, qid);
            continue;
        }
        struct cnode *c = &s->nodes[to - 1];
        const struct sched_stage *st = &q->route.stage[q->stage - 1];
        int j = st->layer_start - c->start;
        if (j < 0 || j >= c->k) {
            s->res->bad_layer_order++;
            j = 0;
        }
        if (s->cfg->check_invariants && q->next_layer != st->layer_start) {
            s->res->bad_layer_order++;
        }
        q->from_source = l->from == 0;
        hx_vec_push(&c->queues[j], qid);
        double per_tok = s->act_bytes;
        if (!s->cfg->quirks.cpu_overhead_act && q->from_source) {
            per_tok = s->token_bytes;
        }
        c->cpu_tokens += (double)q->len;
        c->cpu_bytes += (double)q->len * per_tok;
        c->cpu_n++;
    }
    if (to == s->n + 1) {
        push_event(s, s->now, EV_GATHER, 0);
    } else {
        push_event(s, s->now, EV_START_EXEC, to - 1);
    }
    s->tx[id].next_free = s->free_tx;
    s->free_tx = id;
}

/* ---- execution --------------------------------------------------------------------------- */

static void march(struct cnode *c)
{
    for (int off = 1; off < c->k; off++) {
        int j = (c->cur + off) % c->k;
        if (c->queues[j].len > 0) {
            c->cur = j;
            return;
        }
    }
}

static void on_start_exec(struct sim *s, int v)
{
    struct cnode *c = &s->nodes[v];
    if (c->busy || c->k == 0) {
        return;
    }
    if (c->queues[c->cur].len == 0) {
        march(c);
    }
    ivec *qu = &c->queues[c->cur];
    if (qu->len == 0) {
        return;
    }
    /* batching policy §6.4: FIFO scan, skip what does not fit */
    int n_p = 0;
    int n_d = 0;
    long p_tok = 0;
    long d_ctx = 0;
    c->batch.len = 0;
    for (size_t i = 0; i < qu->len; i++) {
        struct query *q = &s->q[qu->data[i]];
        if (q->iter == 0) {
            if (n_p + 1 <= c->set.prompt_max_requests &&
                p_tok + q->len <= (long)c->set.prompt_max_tokens) {
                n_p++;
                p_tok += q->len;
                q->in_batch = 1;
                hx_vec_push(&c->batch, qu->data[i]);
            }
        } else {
            if (n_d + 1 <= c->set.decode_max_tokens &&
                d_ctx + q->prev <= (long)c->set.decode_max_context) {
                n_d++;
                d_ctx += q->prev;
                q->in_batch = 1;
                hx_vec_push(&c->batch, qu->data[i]);
            }
        }
    }
    if (c->batch.len == 0) {
        return;
    }
    remove_marked(s, qu);
    for (size_t i = 0; i < c->batch.len; i++) {
        s->q[c->batch.data[i]].in_batch = 0;
    }
    double pt = 0;
    double dt = 0;
    int rc = model_prompt_time(c->gpu, (double)p_tok, &pt);
    if (rc == HX_OK) {
        rc = model_decode_time(c->gpu, (double)n_d, &dt);
    }
    if (rc != HX_OK) {
        hx_diag_set(s->diag, rc,
                    "sim: %s batch of %ld prompt / %d decode tokens is beyond its profile",
                    c->gpu->type, p_tok, n_d);
        fail(s, rc);
        return;
    }
    if (n_d == 1 && s->cfg->quirks.decode_double) {
        dt *= 2;
    }
    double dur = pt + dt;
    if (c->cur == 0) {
        /* CPU overhead (§6.3): concat at 4e9 B/s plus transfer at 5e9 B/s */
        double bytes = c->cpu_bytes;
        dur += bytes / 4e9 + bytes / 5e9;
        c->cpu_bytes = 0;
        c->cpu_tokens = 0;
        c->cpu_n = 0;
    }
    c->busy = 1;
    /* utilisation inside the measurement window */
    double a = fmax(s->now, s->res->window_a);
    double b = fmin(s->now + dur, s->res->window_b);
    if (b > a) {
        c->busy_time += b - a;
    }
    if (n_d > 0 && s->now >= s->res->window_a && s->now < s->res->window_b) {
        c->dec_batches++;
        c->dec_tokens += n_d;
    }
    push_event(s, s->now + dur, EV_FINISH_EXEC, v);
}

static void on_finish_exec(struct sim *s, int v)
{
    struct cnode *c = &s->nodes[v];
    int layer = c->start + c->cur;
    int last = c->cur == c->k - 1;
    c->busy = 0;
    for (size_t i = 0; i < c->batch.len; i++) {
        int qid = c->batch.data[i];
        struct query *q = &s->q[qid];
        if (s->cfg->check_invariants && q->next_layer != layer) {
            s->res->bad_layer_order++;
        }
        q->next_layer = layer + 1;
        c->kv_used += q->iter == 0 ? q->len : 1;
        if (s->cfg->check_invariants && c->kv_used > c->kv_cap) {
            s->res->kv_overflow++;
        }
        if (c->kv_cap > 0) {
            long pm = (long)(1000.0 * (double)c->kv_used / (double)c->kv_cap);
            if (pm > s->res->max_kv_used_permille) {
                s->res->max_kv_used_permille = pm;
            }
        }
        if (last) {
            outbound_add(s, v + 1, qid);
        } else {
            hx_vec_push(&c->queues[c->cur + 1], qid);
        }
    }
    c->batch.len = 0;
    march(c);
    if (last) {
        push_event(s, s->now, EV_START_TX, v + 1);
    }
    push_event(s, s->now, EV_START_EXEC, v);
}

/* ---- queries ----------------------------------------------------------------------------- */

static void feed_check(struct sim *s, int was_prompt)
{
    if (s->cfg->mode != SIM_MODE_OFFLINE || s->now > s->feed_end) {
        return;
    }
    int launch;
    if (s->cfg->policy == SIM_POLICY_MAXFLOW) {
        launch = sched_kv_bottleneck(s->sched) <= s->cfg->feed_hwm;
    } else {
        launch = !was_prompt;
    }
    if (!launch) {
        return;
    }
    if (s->retry.len > 0) {
        /* fix of §11.7: a rejected query is tried again before any new one */
        int old = s->retry.data[0];
        memmove(s->retry.data, s->retry.data + 1, (s->retry.len - 1) * sizeof(int));
        s->retry.len--;
        new_query(s, s->q[old].input, s->q[old].output, s->now + 0.1);
        s->res->queries_issued--; /* the same query, not a new one */
        return;
    }
    int32_t in = 0;
    int32_t out = 0;
    sim_length_sampler_sample(&s->lengths, &in, &out);
    new_query(s, in, out, s->now + 0.1);
}

static void record(struct sim *s, struct query *q)
{
    struct sim_result *r = s->res;
    double lat = s->now - q->t_create;
    int decode = q->iter > 0;
    if (decode && r->series_dt > 0 && s->now >= s->start) {
        size_t b = (size_t)((s->now - s->start) / r->series_dt);
        if (b >= r->n_series) {
            size_t nn = b + 64;
            r->series = xrealloc(r->series, nn * sizeof(double));
            memset(r->series + r->n_series, 0, (nn - r->n_series) * sizeof(double));
            r->n_series = nn;
        }
        r->series[b] += 1;
    }
    if (s->now < r->window_a || s->now > r->window_b) {
        return;
    }
    struct sim_sample smp = {.t = s->now, .latency = lat};
    if (decode) {
        if (r->n_decode == s->cap_decode) {
            s->cap_decode = s->cap_decode ? 2 * s->cap_decode : 4096;
            r->decode_samples = xrealloc(r->decode_samples, s->cap_decode * sizeof(smp));
        }
        r->decode_samples[r->n_decode++] = smp;
    } else {
        if (r->n_prompt == s->cap_prompt) {
            s->cap_prompt = s->cap_prompt ? 2 * s->cap_prompt : 1024;
            r->prompt_samples = xrealloc(r->prompt_samples, s->cap_prompt * sizeof(smp));
        }
        r->prompt_samples[r->n_prompt++] = smp;
    }
}

static void on_gather(struct sim *s)
{
    for (size_t i = 0; i < s->sink_queue.len; i++) {
        int qid = s->sink_queue.data[i];
        struct query *q = &s->q[qid];
        if (s->cfg->check_invariants && q->next_layer != s->L) {
            s->res->bad_layer_order++;
        }
        record(s, q);
        int was_prompt = q->iter == 0;
        q->prev += q->len;
        q->iter++;
        int finished = q->iter > q->output;
        if (!finished) {
            q->len = 1;
            q->t_create = s->now;
            q->stage = 0;
            q->next_layer = 0;
            push_event(s, s->now, EV_NEW_REQUEST, qid);
        } else {
            long tokens = (long)q->input + (long)q->output;
            for (int k = 0; k + 1 < q->route.n_stages; k++) {
                const struct sched_stage *st = &q->route.stage[k];
                s->nodes[st->node].kv_used -= tokens * (st->layer_end - st->layer_start);
            }
            if (s->sched != NULL) {
                sched_route_finish(s->sched, &q->route);
            }
            sched_route_release(&q->route);
            s->res->queries_finished++;
        }
        if (was_prompt || finished) {
            feed_check(s, was_prompt);
        }
    }
    s->sink_queue.len = 0;
}

static void on_new_request(struct sim *s, int qid)
{
    struct query *q = &s->q[qid];
    if (s->cfg->policy == SIM_POLICY_MAXFLOW) {
        if (q->iter == 0) {
            int rc = sched_route_prompt(s->sched, q->len, 0, &q->route);
            if (rc == HX_EFULL && s->cfg->mode == SIM_MODE_OFFLINE) {
                s->res->queries_rejected++;
                if (!s->cfg->quirks.offline_drop) {
                    hx_vec_push(&s->retry, qid);
                }
                return;
            }
            if (rc == HX_EFULL) {
                /* Helix asserts here (online); we route ignoring the KV mask and count it */
                s->res->kv_overcommits++;
                rc = sched_route_prompt(s->sched, q->len, SCHED_ROUTE_IGNORE_KV, &q->route);
            }
            if (rc != HX_OK) {
                hx_diag_set(s->diag, HX_EINFEASIBLE,
                            "sim: max-flow scheduler cannot route a %d-token prompt (%s)", q->len,
                            hx_errname(rc));
                fail(s, HX_EINFEASIBLE);
                return;
            }
        } else {
            sched_route_decode(s->sched, &q->route);
        }
    }
    outbound_add(s, 0, qid);
    push_event(s, s->now, EV_START_TX, 0);
}

static void on_load_done(struct sim *s, int v)
{
    push_event(s, s->now, EV_START_EXEC, v);
}

static void dispatch(struct sim *s, const struct event *e)
{
    s->now = e->t;
    s->events++;
    switch (e->type) {
    case EV_LOAD_DONE:
        on_load_done(s, e->a);
        break;
    case EV_NEW_REQUEST:
        on_new_request(s, e->a);
        break;
    case EV_START_TX:
        on_start_tx(s, e->a);
        break;
    case EV_FINISH_SEND:
        on_finish_send(s, e->a);
        break;
    case EV_FINISH_TX:
        on_finish_tx(s, e->a);
        break;
    case EV_START_EXEC:
        on_start_exec(s, e->a);
        break;
    case EV_FINISH_EXEC:
        on_finish_exec(s, e->a);
        break;
    case EV_GATHER:
        on_gather(s);
        break;
    default:
        break;
    }
}

/* ---- setup and run ----------------------------------------------------------------------- */

static int setup(struct sim *s, const struct sim_config *cfg, struct sim_result *res,
                 struct hx_diag *diag)
{
    const struct sim_cluster *sc = cfg->cluster;
    const struct model_profile *m = cfg->model;
    s->cfg = cfg;
    s->diag = diag;
    s->res = res;
    s->n = sc->n_nodes;
    s->n_ep = s->n + 2;
    s->L = m->n_layers;
    s->token_bytes = m->token_bytes;
    s->act_bytes = m->activation_bytes;
    s->free_tx = -1;

    struct sched_topology topo;
    struct sched_node_desc *nd = NULL;
    struct sched_link_desc *ld = NULL;
    int rc = sim_topology_build(m, cfg->tp, sc, cfg->layout, &topo, &nd, &ld, diag);
    if (rc != HX_OK) {
        return rc;
    }
    rc = sched_new(&topo, &cfg->sched, &s->sched, diag);
    if (rc != HX_OK) {
        xfree(nd);
        xfree(ld);
        return rc;
    }
    res->flow_value = sched_flow_value(s->sched);

    s->nodes = xcalloc((size_t)s->n + 1, sizeof(*s->nodes));
    s->nic_out = xcalloc((size_t)s->n_ep, sizeof(double));
    s->nic_in = xcalloc((size_t)s->n_ep, sizeof(double));
    s->out_avail = xcalloc((size_t)s->n_ep, sizeof(double));
    s->in_avail = xcalloc((size_t)s->n_ep, sizeof(double));
    s->outbound = xcalloc((size_t)s->n_ep, sizeof(ivec));
    s->nic_out[0] = sc->coord_nic_out;
    s->nic_in[s->n + 1] = sc->coord_nic_in;
    double max_load = 0;
    for (int v = 0; v < s->n; v++) {
        struct cnode *c = &s->nodes[v];
        const struct sim_node *sn = &sc->nodes[v];
        c->start = nd[v].start;
        c->k = nd[v].n_layers;
        c->kv_cap = sn->kv_cache_capacity;
        s->nic_out[v + 1] = sn->nic_out;
        s->nic_in[v + 1] = sn->nic_in;
        if (c->k == 0) {
            continue;
        }
        int g = model_gpu_index(m, sn->machine_type);
        c->gpu = &m->gpus[g];
        c->set = cfg->tp->settings[g][c->k - 1];
        c->queues = xcalloc((size_t)c->k, sizeof(ivec));
        double load = (double)c->k * m->layer_bytes / sn->disk_speed;
        if (load > max_load) {
            max_load = load;
        }
    }
    for (int e = 0; e < s->n_ep; e++) {
        s->out_avail[e] = s->nic_out[e];
        s->in_avail[e] = s->nic_in[e];
    }
    s->n_links = sc->n_links;
    s->links = xcalloc((size_t)s->n_links + 1, sizeof(*s->links));
    s->out_start = xcalloc((size_t)s->n_ep + 1, sizeof(int));
    s->out_links = xcalloc((size_t)s->n_links + 1, sizeof(int));
    for (int i = 0; i < s->n_links; i++) {
        struct link *l = &s->links[i];
        const struct sim_link *sl = &sc->links[i];
        l->from = sl->from == CLUSTER_SOURCE ? 0 : sl->from + 1;
        l->to = sl->to == CLUSTER_SINK ? s->n + 1 : sl->to + 1;
        l->bw = sl->bandwidth;
        l->avail = sl->bandwidth;
        l->lat = sl->latency_s;
        l->size = (l->from == 0 || l->to == s->n + 1) ? m->token_bytes
                                                      : m->token_bytes + m->activation_bytes;
        s->out_start[l->from + 1]++;
    }
    for (int e = 0; e < s->n_ep; e++) {
        s->out_start[e + 1] += s->out_start[e];
    }
    int *fill = xcalloc((size_t)s->n_ep, sizeof(int));
    for (int i = 0; i < s->n_links; i++) {
        int e = s->links[i].from;
        s->links[i].pos = fill[e];
        s->out_links[s->out_start[e] + fill[e]++] = i;
    }
    xfree(fill);
    s->scratch = xcalloc((size_t)s->n_links + 1, sizeof(int));
    s->assigned = xcalloc((size_t)s->n_links + 1, sizeof(int));
    xfree(nd);
    xfree(ld);

    if (cfg->policy == SIM_POLICY_SWARM) {
        int *n_out = xcalloc((size_t)s->n_ep, sizeof(int));
        const int **lists = xcalloc((size_t)s->n_ep, sizeof(int *));
        for (int e = 0; e < s->n_ep; e++) {
            n_out[e] = s->out_start[e + 1] - s->out_start[e];
            lists[e] = s->out_links + s->out_start[e];
        }
        s->swarm = sched_swarm_new(s->n_ep, n_out, lists, 0.05, 0.8);
        xfree(n_out);
        xfree(lists);
    }

    /* model loading (§6.6): every node loads its layers at t = 0; traffic starts after */
    s->start = ceil(max_load) + 1;
    for (int v = 0; v < s->n; v++) {
        if (s->nodes[v].k > 0) {
            double load = (double)s->nodes[v].k * m->layer_bytes / sc->nodes[v].disk_speed;
            push_event(s, load, EV_LOAD_DONE, v);
        }
    }
    res->start_s = s->start;
    res->n_nodes = s->n;
    res->series_dt = cfg->series_dt_s;
    if (cfg->mode == SIM_MODE_ONLINE) {
        res->window_a = s->start;
        res->window_b = s->start + (double)cfg->duration_s;
        s->until = INFINITY;
    } else {
        res->window_a = s->start + cfg->warmup_s;
        res->window_b = s->start + cfg->warmup_s + cfg->measure_s;
        s->until = res->window_b;
        s->feed_end = res->window_b;
    }
    return HX_OK;
}

static void teardown(struct sim *s)
{
    for (int v = 0; s->nodes != NULL && v < s->n; v++) {
        struct cnode *c = &s->nodes[v];
        for (int j = 0; j < c->k; j++) {
            hx_vec_free(&c->queues[j]);
        }
        xfree(c->queues);
        hx_vec_free(&c->batch);
    }
    xfree(s->nodes);
    for (int i = 0; s->links != NULL && i < s->n_links; i++) {
        hx_vec_free(&s->links[i].fifo);
        hx_vec_free(&s->links[i].fifo_seq);
    }
    xfree(s->links);
    xfree(s->out_start);
    xfree(s->out_links);
    xfree(s->nic_out);
    xfree(s->nic_in);
    xfree(s->out_avail);
    xfree(s->in_avail);
    if (s->outbound != NULL) {
        for (int e = 0; e < s->n_ep; e++) {
            hx_vec_free(&s->outbound[e]);
        }
    }
    xfree(s->outbound);
    hx_vec_free(&s->sink_queue);
    hx_vec_free(&s->retry);
    xfree(s->heap);
    for (size_t i = 0; i < s->n_q; i++) {
        sched_route_release(&s->q[i].route);
    }
    xfree(s->q);
    for (int i = 0; i < s->n_tx; i++) {
        hx_vec_free(&s->tx[i].reqs);
    }
    xfree(s->tx);
    sched_free(s->sched);
    sched_swarm_free(s->swarm);
    xfree(s->scratch);
    xfree(s->assigned);
}

static int check_config(const struct sim_config *cfg, struct hx_diag *diag)
{
    if (cfg->model == NULL || cfg->tp == NULL || cfg->cluster == NULL || cfg->layout == NULL ||
        cfg->trace_data == NULL) {
        return hx_diag_set(diag, HX_EINVAL,
                           "sim: model, throughput, cluster, layout and trace "
                           "data are all required");
    }
    if (cfg->mode == SIM_MODE_ONLINE) {
        if (!(cfg->rate_tok_s > 0) || cfg->duration_s <= 0 || cfg->duration_s % 3 != 0) {
            return hx_diag_set(diag, HX_EINVAL,
                               "sim: online mode needs a positive rate and a duration that is a "
                               "positive multiple of 3 s (got %g tok/s, %lld s)",
                               cfg->rate_tok_s, (long long)cfg->duration_s);
        }
    } else if (cfg->initial_queries <= 0 || !(cfg->measure_s > 0) || !(cfg->warmup_s >= 0)) {
        return hx_diag_set(diag, HX_EINVAL,
                           "sim: offline mode needs a positive initial query count and window");
    }
    return HX_OK;
}

int sim_run(const struct sim_config *cfg, struct sim_result *out, struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    int rc = check_config(cfg, diag);
    if (rc != HX_OK) {
        return rc;
    }
    struct sim s;
    memset(&s, 0, sizeof(s));
    rc = setup(&s, cfg, out, diag);
    if (rc != HX_OK) {
        teardown(&s);
        sim_result_release(out);
        return rc;
    }
    /* run the loading phase up to the start time (Helix: simulate(until=start)) */
    while (s.heap_n > 0 && s.heap[0].t < s.start) {
        struct event e = pop_event(&s);
        dispatch(&s, &e);
    }
    s.now = s.start;

    struct sim_trace trace = {0};
    size_t next = 0;
    if (cfg->mode == SIM_MODE_ONLINE) {
        rc = sim_trace_generate_online(cfg->trace_data, cfg->rate_tok_s, s.start, cfg->duration_s,
                                       cfg->seed, &s.rng, &trace, diag);
        if (rc == HX_OK && trace.n == 0) {
            rc = hx_diag_set(diag, HX_EINVAL, "sim: the trace is empty (rate too low)");
        }
    } else {
        sim_length_sampler_init(&s.lengths, &cfg->trace_data->lengths, cfg->seed, &s.rng);
        rc = sim_trace_offline_initial(&s.lengths, s.start, (size_t)cfg->initial_queries, &trace,
                                       diag);
        for (size_t i = 0; rc == HX_OK && i < trace.n; i++) {
            new_query(&s, trace.q[i].input_len, trace.q[i].output_len, trace.q[i].arrival_s);
        }
        next = trace.n;
    }
    if (rc == HX_OK && cfg->mode == SIM_MODE_ONLINE) {
        new_query(&s, trace.q[0].input_len, trace.q[0].output_len, trace.q[0].arrival_s);
        next = 1;
    }
    uint64_t next_progress = 1u << 20;
    while (rc == HX_OK && s.rc == HX_OK) {
        /* online feeder: the next arrival is issued once every earlier event has run */
        if (next < trace.n && (s.heap_n == 0 || s.heap[0].t >= trace.q[next].arrival_s)) {
            s.now = trace.q[next].arrival_s;
            new_query(&s, trace.q[next].input_len, trace.q[next].output_len,
                      trace.q[next].arrival_s);
            next++;
            continue;
        }
        if (s.heap_n == 0 || s.heap[0].t >= s.until) {
            break;
        }
        struct event e = pop_event(&s);
        dispatch(&s, &e);
        if (cfg->progress != NULL && s.events >= next_progress) {
            cfg->progress(cfg->progress_ctx, s.now, s.events);
            next_progress += 1u << 20;
        }
    }
    if (rc == HX_OK) {
        rc = s.rc;
    }
    sim_trace_release(&trace);
    if (rc != HX_OK) {
        teardown(&s);
        sim_result_release(out);
        return rc;
    }
    out->end_s = isfinite(s.until) ? s.until : s.now;
    out->events = s.events;
    double window = cfg->mode == SIM_MODE_ONLINE ? (double)cfg->duration_s : cfg->measure_s;
    out->decode_throughput = (double)out->n_decode / window;
    double *tmp = xmalloc((out->n_decode + out->n_prompt + 1) * sizeof(double));
    for (size_t i = 0; i < out->n_prompt; i++) {
        tmp[i] = out->prompt_samples[i].latency;
    }
    sim_latency_stats(tmp, out->n_prompt, &out->prompt);
    for (size_t i = 0; i < out->n_decode; i++) {
        tmp[i] = out->decode_samples[i].latency;
    }
    sim_latency_stats(tmp, out->n_decode, &out->decode);
    xfree(tmp);
    out->node_util = xcalloc((size_t)s.n + 1, sizeof(double));
    double wl = out->window_b - out->window_a;
    long nb = 0;
    long nt = 0;
    double dtyp = 0.0;
    int nused = 0;
    for (int v = 0; v < s.n; v++) {
        out->node_util[v] = wl > 0 ? s.nodes[v].busy_time / wl : 0;
        nb += s.nodes[v].dec_batches;
        nt += s.nodes[v].dec_tokens;
        if (s.nodes[v].k > 0) {
            dtyp += s.nodes[v].set.D;
            nused++;
        }
    }
    out->mean_decode_batch = nb > 0 ? (double)nt / (double)nb : 0.0;
    out->typical_decode_batch = nused > 0 ? dtyp / nused : 0.0;
    if (out->series != NULL) {
        size_t used = 0;
        for (size_t b = 0; b < out->n_series; b++) {
            if (out->series[b] > 0) {
                used = b + 1;
            }
        }
        out->n_series = used;
    }
    teardown(&s);
    return HX_OK;
}

int sim_served_offline(const struct model_profile *m, const struct model_throughput *tp,
                       const struct machine_profiles *mp, const struct cluster *c,
                       const struct layout *l, enum layout_connectivity conn,
                       const struct sim_trace_data *td, enum sim_fidelity fidelity,
                       int initial_queries, double measure_s, int64_t seed, double *value,
                       struct hx_diag *diag)
{
    *value = 0.0;
    struct sim_cluster *sc = NULL;
    int rc = sim_cluster_generate(c, l, m, mp, conn, &sc, diag);
    if (rc != HX_OK) {
        return rc;
    }
    struct sim_config cfg;
    sim_config_defaults(&cfg, SIM_MODE_OFFLINE, SIM_POLICY_MAXFLOW);
    sim_quirks_set(&cfg.quirks, fidelity);
    cfg.model = m;
    cfg.tp = tp;
    cfg.cluster = sc;
    cfg.layout = l;
    cfg.trace_data = td;
    cfg.initial_queries = initial_queries;
    cfg.seed = seed;
    if (measure_s > 0) {
        cfg.measure_s = measure_s;
    }
    struct sim_result res;
    rc = sim_run(&cfg, &res, diag);
    if (rc == HX_OK) {
        *value = res.decode_throughput;
        sim_result_release(&res);
    } else if (rc == HX_EINFEASIBLE) {
        rc = HX_OK; /* no path: serves nothing */
    }
    sim_cluster_free(sc);
    return rc;
}
