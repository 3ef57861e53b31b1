/*
 * worker.c - a helix worker: registers by name with the coordinator, loads only the layer
 * range it is assigned, then loops: gather every PREFILL/DECODE that has arrived (from the
 * coordinator for the first hop, from the previous worker otherwise), run ONE batched
 * eng_engine_step over them all (continuous batching at layer-range granularity), and pass
 * each request on: activations to the next hop of its route (a DEALER per successor, zero
 * queueing to dead peers), or, on the last hop, the sampled token to the coordinator.
 * Heartbeats carry KV use; RELEASE frees a request's KV. Errors about one request go back to
 * the coordinator as an ERROR message for that request; the loop itself never stops on them.
 */
#include "runtime/runtime.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "engine/engine.h"
#include "runtime/proto.h"
#include "runtime/xport.h"
#include "runtime/xsec.h"

#define WORKER_DATA_SEND_TIMEOUT_MS 300
#define WORKER_REGISTER_TIMEOUT_MS 2000
#define WORKER_CTRL_SEND_TIMEOUT_MS 200        /* never stall the loop on a dead coordinator */
#define WORKER_COORD_SILENCE_US (10 * 1000000) /* coordinator presumed gone after this */

struct peer_conn {
    uint32_t node;
    char name[PROTO_NAME_MAX + 1];
    char endpoint[PROTO_ENDPOINT_MAX + 1];
    char curve_key[PROTO_CURVE_KEY_LEN + 1]; /* its data socket's key ("" in plain mode) */
    struct xport *dealer;                    /* connected lazily */
};

struct wseq {
    uint64_t id;
    struct eng_sampler *sampler; /* last stage only */
    float temperature;
    float top_p;
    uint64_t seed;
};

struct worker {
    const struct worker_opts *o;
    struct xport_ctx *ctx;
    struct xport *ctrl;
    struct xport *data;
    /* CURVE: our key pair, the coordinator's public key, the ZAP handler admitting the
     * coordinator's peer table on our data socket */
    int curve;
    struct xsec_keypair kp;
    char coord_key[PROTO_CURVE_KEY_LEN + 1];
    struct xsec *sec;
    uint32_t node;
    int heartbeat_ms;
    int serving;    /* in the serving loop (not registering or loading) */
    int drain_sent; /* DRAIN sent: serving what is in flight, then leaving */
    int64_t drain_start_us;
    /* assignment */
    int assigned;
    int layer_start;
    int layer_end;
    int n_layers;
    int first;
    int last;
    struct peer_conn *peers;
    int n_peers;
    /* what we report in REGISTER and heartbeats ("cpu", "cuda:0 <GPU name>") */
    char device[PROTO_DEVICE_MAX + 1];
    /* engine */
    struct eng_backend *be;
    int own_be; /* be was opened here (no o->backend): free it */
    struct eng_model *model;
    struct eng_engine *eng;
    int hidden;
    int vocab;
    int max_tokens;
    float *act_out;
    float *logits;
    /* aligned copies of the step's inputs (ZeroMQ payloads need not be 4-byte aligned) */
    int32_t *tok_in;
    float *act_in;
    struct eng_seq_step *steps;
    /* sequences alive here */
    struct wseq seqs[RT_MAX_SEQS];
    int n_seqs;
    /* forward messages waiting for a step (received, not yet processed) */
    struct xport_msg *pending;
    int n_pending;
    int cap_pending;
    /* stats for heartbeats */
    uint64_t steps_done;
    int64_t last_coord_us; /* last message from the coordinator */
};

static struct wseq *seq_find(struct worker *w, uint64_t id)
{
    for (int i = 0; i < w->n_seqs; i++) {
        if (w->seqs[i].id == id) {
            return &w->seqs[i];
        }
    }
    return NULL;
}

static void seq_drop(struct worker *w, uint64_t id)
{
    for (int i = 0; i < w->n_seqs; i++) {
        if (w->seqs[i].id == id) {
            eng_sampler_free(w->seqs[i].sampler);
            eng_seq_remove(w->eng, (int64_t)id);
            w->seqs[i] = w->seqs[w->n_seqs - 1];
            w->n_seqs--;
            return;
        }
    }
}

static void send_error(struct worker *w, uint64_t request_id, uint32_t seq, int code,
                       const char *msg)
{
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_ERROR);
    h.request_id = request_id;
    h.seq = seq;
    h.send_time_us = hx_clock_now_us();
    union proto_body b;
    memset(&b, 0, sizeof(b));
    b.error.code = code < 0 ? code : HX_EIO;
    snprintf(b.error.message, sizeof(b.error.message), "%s: %s", w->o->name, msg);
    struct hx_diag d;
    if (xport_send_body(w->ctrl, NULL, &h, &b, &d) != 0) {
        log_warn("worker %s: cannot report error for request %llu: %s", w->o->name,
                 (unsigned long long)request_id, d.msg);
    }
}

static void send_heartbeat(struct worker *w)
{
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_HEARTBEAT);
    h.send_time_us = hx_clock_now_us();
    union proto_body b;
    memset(&b, 0, sizeof(b));
    b.heartbeat.time_us = h.send_time_us;
    b.heartbeat.n_active = (uint32_t)w->n_seqs;
    if (w->eng) {
        int used = 0;
        int total = 0;
        eng_kv_usage(w->eng, &used, &total);
        size_t bb = eng_kv_block_bytes(w->eng);
        b.heartbeat.kv_used_bytes = (uint64_t)used * bb;
        b.heartbeat.kv_total_bytes = (uint64_t)total * bb;
    }
    snprintf(b.heartbeat.device, sizeof(b.heartbeat.device), "%s", w->device);
    if (w->sec) {
        struct xsec_stats ss;
        xsec_stats_get(w->sec, &ss);
        b.heartbeat.refused_handshakes = ss.refused_handshakes;
        b.heartbeat.refused_keys = ss.refused_keys;
    }
    struct xport_stats xs;
    xport_stats_get(w->data, &xs);
    b.heartbeat.refused_messages = xs.refused;
    b.heartbeat.dropped_malformed = xs.dropped;
    xport_stats_get(w->ctrl, &xs);
    b.heartbeat.dropped_malformed += xs.dropped;
    struct hx_diag d;
    if (xport_send_body(w->ctrl, NULL, &h, &b, &d) != 0) {
        log_debug("worker %s: heartbeat not sent: %s", w->o->name, d.msg);
    }
}

static void peers_free(struct worker *w)
{
    for (int i = 0; i < w->n_peers; i++) {
        xport_free(w->peers[i].dealer);
    }
    xfree(w->peers);
    w->peers = NULL;
    w->n_peers = 0;
}

/*
 * Replace the peer table, keeping connections whose endpoint and key did not change. With
 * CURVE the table is also the admitted set of our data socket: a peer that left it (revoked
 * by the coordinator) can no longer handshake, and what it sends over an old connection is
 * refused (xsec_peer_check).
 */
static void peers_update(struct worker *w, const struct proto_assign *a)
{
    struct peer_conn *np = xcalloc(a->n_peers ? a->n_peers : 1, sizeof(*np));
    struct xsec_peer *adm = xcalloc(a->n_peers ? a->n_peers : 1, sizeof(*adm));
    size_t n_adm = 0;
    for (uint32_t i = 0; i < a->n_peers; i++) {
        np[i].node = a->peers[i].node;
        snprintf(np[i].name, sizeof(np[i].name), "%s", a->peers[i].name);
        snprintf(np[i].endpoint, sizeof(np[i].endpoint), "%s", a->peers[i].endpoint);
        snprintf(np[i].curve_key, sizeof(np[i].curve_key), "%s", a->peers[i].curve_key);
        if (np[i].curve_key[0]) {
            snprintf(adm[n_adm].name, sizeof(adm[n_adm].name), "%s", np[i].name);
            snprintf(adm[n_adm].key, sizeof(adm[n_adm].key), "%s", np[i].curve_key);
            n_adm++;
        }
        for (int j = 0; j < w->n_peers; j++) {
            if (w->peers[j].dealer && w->peers[j].node == np[i].node &&
                strcmp(w->peers[j].endpoint, np[i].endpoint) == 0 &&
                strcmp(w->peers[j].curve_key, np[i].curve_key) == 0 &&
                strcmp(w->peers[j].name, np[i].name) == 0) {
                np[i].dealer = w->peers[j].dealer;
                w->peers[j].dealer = NULL;
            }
        }
    }
    peers_free(w);
    w->peers = np;
    w->n_peers = (int)a->n_peers;
    if (w->sec) {
        xsec_admit_set(w->sec, adm, n_adm);
    }
    xfree(adm);
}

static struct xport *peer_dealer(struct worker *w, uint32_t node, struct hx_diag *diag)
{
    for (int i = 0; i < w->n_peers; i++) {
        struct peer_conn *p = &w->peers[i];
        if (p->node != node) {
            continue;
        }
        if (!p->dealer) {
            if (w->curve && !p->curve_key[0]) {
                hx_diag_set(diag, HX_EAUTH, "the coordinator gave no CURVE key for peer %s",
                            p->name);
                return NULL;
            }
            struct xport_curve cv = {w->kp.public_key, w->kp.secret_key, p->curve_key};
            int rc =
                xport_dealer_connect_curve(w->ctx, p->endpoint, w->o->name, XPORT_DEALER_IMMEDIATE,
                                           w->curve ? &cv : NULL, &p->dealer, diag);
            if (rc != 0) {
                return NULL;
            }
            xport_set_send_timeout(p->dealer, WORKER_DATA_SEND_TIMEOUT_MS, NULL);
        }
        return p->dealer;
    }
    hx_diag_set(diag, HX_ENOTFOUND, "no peer for node %u", node);
    return NULL;
}

static int load_assignment(struct worker *w, const struct proto_assign *a, struct hx_diag *diag)
{
    if (w->eng) {
        if ((int)a->layer_start != w->layer_start || (int)a->layer_end != w->layer_end) {
            return hx_diag_set(diag, HX_ENOTSUP,
                               "re-assigned layers [%u, %u) but this worker runs [%d, %d); "
                               "restart it to change its range",
                               a->layer_start, a->layer_end, w->layer_start, w->layer_end);
        }
        w->assigned = 1;
        return 0;
    }
    const char *model = w->o->model_dir ? w->o->model_dir : a->model;
    int rc = HX_OK;
    if (!w->be && w->o->backend) {
        w->be = w->o->backend;
    } else if (!w->be) {
        rc = eng_cpu_backend_new(w->o->threads, &w->be, diag);
        if (rc != 0) {
            return rc;
        }
        w->own_be = 1;
    }
    eng_model_free(w->model); /* a load that failed before the engine existed */
    w->model = NULL;
    rc = eng_model_load(model, (int)a->layer_start, (int)a->layer_end, w->be, &w->model, diag);
    if (rc != 0) {
        return rc;
    }
    const struct eng_config *cfg = eng_model_config(w->model);
    if (cfg->n_layers != (int)a->n_layers) {
        return hx_diag_set(diag, HX_EINVAL, "model %s has %d layers, the plan says %u", model,
                           cfg->n_layers, a->n_layers);
    }
    struct eng_engine_opts eo;
    memset(&eo, 0, sizeof(eo));
    eo.max_seqs = RT_MAX_SEQS;
    eo.max_ctx = cfg->max_pos;
    eo.max_tokens = cfg->max_pos < 256 ? 256 : cfg->max_pos; /* one whole prompt per message */
    eo.kv_bytes = (size_t)w->o->kv_bytes;
    uint64_t weights = (uint64_t)eng_model_weight_bytes(w->model);
    uint64_t act = 0;
    if (w->o->mem_bytes > 0) {
        int last = (int)a->layer_end == cfg->n_layers;
        act = worker_act_bytes(cfg, eo.max_tokens, last);
        uint64_t kv = 0;
        rc = worker_mem_budget(w->o->mem_bytes, weights, act, (int)a->layer_start,
                               (int)a->layer_end, &kv, diag);
        if (rc != 0) {
            return rc;
        }
        if (w->o->kv_bytes > 0 && w->o->kv_bytes < kv) {
            kv = w->o->kv_bytes; /* --kv-bytes lowers it further */
        }
        eo.kv_bytes = (size_t)kv;
        log_info("worker %s: --mem-bytes %llu: weights %llu + activations %llu + KV %llu bytes",
                 w->o->name, (unsigned long long)w->o->mem_bytes, (unsigned long long)weights,
                 (unsigned long long)act, (unsigned long long)kv);
    }
    rc = eng_engine_new(w->model, &eo, &w->eng, diag);
    if (rc != 0) {
        if (w->o->mem_bytes > 0) {
            /* e.g. a KV budget below one block: still the cap's fault */
            char why[sizeof(diag->msg)];
            snprintf(why, sizeof(why), "%s", diag->msg);
            hx_diag_clear(diag);
            return hx_diag_set(diag, HX_ERANGE,
                               "--mem-bytes %llu leaves %llu bytes for the KV cache after the "
                               "weights (%llu bytes) and activations (%llu bytes) of layers "
                               "[%u, %u): %s",
                               (unsigned long long)w->o->mem_bytes, (unsigned long long)eo.kv_bytes,
                               (unsigned long long)weights, (unsigned long long)act, a->layer_start,
                               a->layer_end, why);
        }
        return rc;
    }
    eng_engine_get_opts(w->eng, &eo);
    w->max_tokens = eo.max_tokens;
    w->hidden = cfg->hidden;
    w->vocab = cfg->vocab;
    w->layer_start = (int)a->layer_start;
    w->layer_end = (int)a->layer_end;
    w->n_layers = (int)a->n_layers;
    w->first = w->layer_start == 0;
    w->last = w->layer_end == w->n_layers;
    w->act_out = hx_calloc((size_t)w->max_tokens * (size_t)w->hidden, sizeof(float));
    w->logits = hx_calloc((size_t)RT_MAX_SEQS * (size_t)w->vocab, sizeof(float));
    w->steps = xcalloc(RT_MAX_SEQS, sizeof(*w->steps));
    w->tok_in = hx_calloc((size_t)w->max_tokens, sizeof(int32_t));
    w->act_in = hx_calloc((size_t)w->max_tokens * (size_t)w->hidden, sizeof(float));
    if (!w->act_out || !w->logits || !w->tok_in || !w->act_in) {
        return hx_diag_set(diag, HX_ENOMEM, "worker scratch buffers");
    }
    w->assigned = 1;
    return 0;
}

static int send_ready(struct worker *w, struct hx_diag *diag)
{
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_READY);
    h.send_time_us = hx_clock_now_us();
    union proto_body b;
    memset(&b, 0, sizeof(b));
    b.ready.node = w->node;
    b.ready.layer_start = (uint32_t)w->layer_start;
    b.ready.layer_end = (uint32_t)w->layer_end;
    int used = 0;
    int total = 0;
    eng_kv_usage(w->eng, &used, &total);
    b.ready.kv_bytes = (uint64_t)total * eng_kv_block_bytes(w->eng);
    return xport_send_body(w->ctrl, NULL, &h, &b, diag);
}

/* Check a forward message against what this worker runs. 0 or an error message in diag. */
static int check_forward(struct worker *w, const struct proto_header *h, struct hx_diag *diag)
{
    if (!w->assigned) {
        return hx_diag_set(diag, HX_EINVAL, "not assigned yet");
    }
    const struct proto_hop *hop = &h->hops[h->cur_hop];
    if (hop->node != w->node) {
        return hx_diag_set(diag, HX_EINVAL, "hop %u is for node %u, I am node %u", h->cur_hop,
                           hop->node, w->node);
    }
    if (hop->layer_start != w->layer_start || hop->layer_end != w->layer_end) {
        return hx_diag_set(diag, HX_ENOTSUP, "hop asks layers [%u, %u), I run [%d, %d)",
                           hop->layer_start, hop->layer_end, w->layer_start, w->layer_end);
    }
    if (h->n_tokens == 0 || (int)h->n_tokens > w->max_tokens) {
        return hx_diag_set(diag, HX_ERANGE, "%u tokens in one message (max %d)", h->n_tokens,
                           w->max_tokens);
    }
    if (w->first) {
        if (h->dtype != PROTO_DTYPE_I32 || h->hidden != 0) {
            return hx_diag_set(diag, HX_EPROTO, "first stage expects token ids");
        }
    } else if (h->dtype != PROTO_DTYPE_F32 || (int)h->hidden != w->hidden) {
        return hx_diag_set(diag, HX_EPROTO, "expects f32 activations of width %d", w->hidden);
    }
    if (h->type == PROTO_TYPE_PREFILL) {
        if (h->position != 0) {
            return hx_diag_set(diag, HX_ENOTSUP, "prefill must start at position 0");
        }
    } else {
        if (h->n_tokens != 1) {
            return hx_diag_set(diag, HX_EPROTO, "a decode carries one token");
        }
    }
    return 0;
}

static void pending_push(struct worker *w, struct xport_msg *m)
{
    if (w->n_pending == w->cap_pending) {
        w->cap_pending = w->cap_pending ? 2 * w->cap_pending : 32;
        w->pending = xrealloc(w->pending, (size_t)w->cap_pending * sizeof(*w->pending));
    }
    w->pending[w->n_pending++] = *m;
    memset(m, 0, sizeof(*m));
}

/* Handle one message; forward messages are queued for the next step. Returns 1 on SHUTDOWN. */
static int handle_msg(struct worker *w, struct xport_msg *m)
{
    struct hx_diag d;
    switch (m->hdr.type) {
    case PROTO_TYPE_PREFILL:
    case PROTO_TYPE_DECODE:
        if (check_forward(w, &m->hdr, &d) != 0) {
            log_warn("worker %s: request %llu dropped: %s", w->o->name,
                     (unsigned long long)m->hdr.request_id, d.msg);
            send_error(w, m->hdr.request_id, m->hdr.seq, d.code, d.msg);
            break;
        }
        pending_push(w, m);
        return 0;
    case PROTO_TYPE_RELEASE:
        seq_drop(w, m->hdr.request_id);
        /* also drop queued messages of that request */
        for (int i = 0; i < w->n_pending; i++) {
            if (w->pending[i].hdr.request_id == m->hdr.request_id) {
                xport_msg_release(&w->pending[i]);
                w->pending[i] = w->pending[--w->n_pending];
                i--;
            }
        }
        break;
    case PROTO_TYPE_ASSIGN:
        if (w->assigned && ((int)m->body.assign.layer_start != w->layer_start ||
                            (int)m->body.assign.layer_end != w->layer_end)) {
            log_warn("worker %s: re-assignment to another range is not supported; keeping [%d, %d)",
                     w->o->name, w->layer_start, w->layer_end);
        }
        peers_update(w, &m->body.assign);
        log_info("worker %s: peer table updated (%u peers)", w->o->name, m->body.assign.n_peers);
        break;
    case PROTO_TYPE_SHUTDOWN:
        log_info("worker %s: shutdown: %s", w->o->name, m->body.shutdown.reason);
        xport_msg_release(m);
        return 1;
    case PROTO_TYPE_REJECT:
        /* the coordinator declared us dead (e.g. heartbeats late under load): rejoin */
        log_warn("worker %s: coordinator says: %s; registering again", w->o->name,
                 m->body.reject.message);
        xport_msg_release(m);
        return 2;
    case PROTO_TYPE_HEARTBEAT:
    case PROTO_TYPE_REGISTER_ACK:
        break;
    default:
        log_warn("worker %s: unexpected %s from '%s' dropped", w->o->name,
                 proto_type_name(m->hdr.type), m->peer);
        break;
    }
    xport_msg_release(m);
    return 0;
}

/* Post-step delivery of one sequence's output. act points at its n_tokens x hidden rows. */
static void deliver(struct worker *w, const struct xport_msg *m, const float *act,
                    const float *logits)
{
    const struct proto_header *in = &m->hdr;
    struct hx_diag d;
    if (w->last) {
        struct wseq *s = seq_find(w, in->request_id);
        int32_t tok =
            s && s->sampler ? eng_sampler_sample(s->sampler, logits) : eng_argmax(logits, w->vocab);
        struct proto_header h;
        proto_header_init(&h, PROTO_TYPE_TOKEN);
        h.request_id = in->request_id;
        h.seq = in->seq;
        h.send_time_us = hx_clock_now_us();
        union proto_body b;
        memset(&b, 0, sizeof(b));
        b.token.token_id = tok;
        if (xport_send_body(w->ctrl, NULL, &h, &b, &d) != 0) {
            log_warn("worker %s: TOKEN for request %llu not sent: %s", w->o->name,
                     (unsigned long long)in->request_id, d.msg);
        }
        return;
    }
    struct proto_header h = *in;
    h.cur_hop = (uint8_t)(in->cur_hop + 1);
    h.dtype = PROTO_DTYPE_F32;
    h.hidden = (uint32_t)w->hidden;
    size_t bytes = (size_t)in->n_tokens * (size_t)w->hidden * sizeof(float);
    h.payload_bytes = bytes;
    h.send_time_us = hx_clock_now_us();
    uint32_t next = h.hops[h.cur_hop].node;
    struct xport *dealer = peer_dealer(w, next, &d);
    int rc = dealer ? xport_send(dealer, NULL, &h, (void *)act, bytes, NULL, NULL, &d) : d.code;
    if (rc != 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "next hop node %u unreachable: %s", next, d.msg);
        log_warn("worker %s: request %llu: %s", w->o->name, (unsigned long long)in->request_id,
                 msg);
        send_error(w, in->request_id, in->seq, HX_ECLOSED, msg);
    }
}

/*
 * Prepare message m as a step entry (adds the sequence for a PREFILL), its input copied to
 * the staging buffers at token offset `off`. 0 or error.
 */
static int prepare(struct worker *w, const struct xport_msg *m, int off, struct eng_seq_step *st,
                   struct hx_diag *d)
{
    const struct proto_header *h = &m->hdr;
    if (h->type == PROTO_TYPE_PREFILL) {
        if (seq_find(w, h->request_id)) {
            seq_drop(w, h->request_id);
        }
        if (w->n_seqs >= RT_MAX_SEQS) {
            return hx_diag_set(d, HX_EFULL, "too many sequences (%d)", RT_MAX_SEQS);
        }
        int rc = eng_seq_add(w->eng, (int64_t)h->request_id, d);
        if (rc != 0) {
            return rc;
        }
        struct wseq *s = &w->seqs[w->n_seqs++];
        memset(s, 0, sizeof(*s));
        s->id = h->request_id;
        if (w->last) {
            struct eng_sampler_params sp;
            memset(&sp, 0, sizeof(sp));
            sp.temperature = h->temperature;
            sp.top_p = h->top_p;
            sp.seed = h->seed;
            if (eng_sampler_new(&sp, w->vocab, &s->sampler) != 0) {
                seq_drop(w, h->request_id);
                return hx_diag_set(d, HX_ENOMEM, "sampler");
            }
        }
    } else {
        if (!seq_find(w, h->request_id)) {
            return hx_diag_set(d, HX_ENOTFOUND, "decode for unknown request");
        }
        int len = eng_seq_len(w->eng, (int64_t)h->request_id);
        if (len != (int)h->position) {
            return hx_diag_set(d, HX_EINVAL, "decode at position %u, cached %d", h->position, len);
        }
    }
    st->seq_id = (int64_t)h->request_id;
    st->pos = (int)h->position;
    st->n_tokens = (int)h->n_tokens;
    if (w->first) {
        memcpy(w->tok_in + off, m->payload, (size_t)h->n_tokens * sizeof(int32_t));
        st->tokens = w->tok_in + off;
        st->act_in = NULL;
    } else {
        memcpy(w->act_in + (size_t)off * (size_t)w->hidden, m->payload,
               (size_t)h->n_tokens * (size_t)w->hidden * sizeof(float));
        st->tokens = NULL;
        st->act_in = w->act_in + (size_t)off * (size_t)w->hidden;
    }
    return 0;
}

static int run_step(struct worker *w, struct xport_msg *batch, int n, struct hx_diag *d)
{
    struct eng_step_out out;
    memset(&out, 0, sizeof(out));
    if (w->last) {
        out.logits = w->logits;
    } else {
        out.act = w->act_out;
    }
    int rc = eng_engine_step(w->eng, w->steps, n, &out, d);
    if (rc != 0) {
        return rc;
    }
    w->steps_done++;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        deliver(w, &batch[i], w->act_out + off * (size_t)w->hidden,
                w->logits + (size_t)i * (size_t)w->vocab);
        off += batch[i].hdr.n_tokens;
    }
    return 0;
}

/* One continuous-batching iteration over the pending messages. */
static void step_pending(struct worker *w)
{
    if (w->n_pending == 0) {
        return;
    }
    struct xport_msg batch[RT_MAX_SEQS];
    int n = 0;
    int tokens = 0;
    int i = 0;
    while (i < w->n_pending && n < RT_MAX_SEQS) {
        struct xport_msg *m = &w->pending[i];
        int dup = 0;
        for (int j = 0; j < n; j++) {
            dup |= batch[j].hdr.request_id == m->hdr.request_id;
        }
        if (dup || tokens + (int)m->hdr.n_tokens > w->max_tokens) {
            i++;
            continue;
        }
        struct hx_diag d;
        if (prepare(w, m, tokens, &w->steps[n], &d) != 0) {
            send_error(w, m->hdr.request_id, m->hdr.seq, d.code, d.msg);
            xport_msg_release(m);
        } else {
            tokens += (int)m->hdr.n_tokens;
            batch[n++] = *m;
        }
        w->pending[i] = w->pending[--w->n_pending];
    }
    if (n == 0) {
        return;
    }
    struct hx_diag d;
    int rc = run_step(w, batch, n, &d);
    if (rc != 0 && n > 1) {
        /* One of them does not fit (KV full): run them one by one so the rest go on. */
        for (int k = 0; k < n; k++) {
            w->steps[0] = w->steps[k];
            if (run_step(w, &batch[k], 1, &d) != 0) {
                send_error(w, batch[k].hdr.request_id, batch[k].hdr.seq, d.code, d.msg);
                if (batch[k].hdr.type == PROTO_TYPE_PREFILL) {
                    seq_drop(w, batch[k].hdr.request_id);
                }
            }
        }
    } else if (rc != 0) {
        send_error(w, batch[0].hdr.request_id, batch[0].hdr.seq, d.code, d.msg);
        if (batch[0].hdr.type == PROTO_TYPE_PREFILL) {
            seq_drop(w, batch[0].hdr.request_id);
        }
    }
    for (int k = 0; k < n; k++) {
        xport_msg_release(&batch[k]);
    }
}

/* Drain everything readable on s (without blocking). 1 on SHUTDOWN, 2 to rejoin, <0 error. */
static int drain(struct worker *w, struct xport *s)
{
    for (;;) {
        struct xport_msg m;
        struct hx_diag d;
        int rc = xport_recv(s, 0, &m, &d);
        if (rc == HX_ETIMEDOUT) {
            return 0;
        }
        if (rc != 0) {
            return rc;
        }
        int r = handle_msg(w, &m);
        if (r != 0) {
            return r;
        }
    }
}

static void worker_release(struct worker *w)
{
    for (int i = 0; i < w->n_pending; i++) {
        xport_msg_release(&w->pending[i]);
    }
    xfree(w->pending);
    while (w->n_seqs > 0) {
        seq_drop(w, w->seqs[0].id);
    }
    peers_free(w);
    eng_engine_free(w->eng);
    eng_model_free(w->model);
    if (w->own_be) {
        eng_backend_free(w->be);
    }
    xfree(w->act_out);
    xfree(w->logits);
    xfree(w->tok_in);
    xfree(w->act_in);
    xfree(w->steps);
    xport_free(w->data);
    xport_free(w->ctrl);
    xsec_free(w->sec); /* after its sockets, before the context */
    xport_ctx_free(w->ctx);
}

/* Stop now: *stop, or a drain request while not serving (registering, waiting for ASSIGN,
 * loading): with nothing in flight, draining is leaving. */
static int stopped(const struct worker *w)
{
    return (w->o->stop && *w->o->stop) || (!w->serving && w->o->drain && *w->o->drain);
}

/* Register (retrying while nobody answers), then wait for ASSIGN. */
static int join_once(struct worker *w, struct hx_diag *diag)
{
    struct proto_register reg;
    memset(&reg, 0, sizeof(reg));
    snprintf(reg.name, sizeof(reg.name), "%s", w->o->name);
    snprintf(reg.token, sizeof(reg.token), "%s", w->o->token);
    snprintf(reg.backend, sizeof(reg.backend), "%s",
             strncmp(w->device, "cuda", 4) == 0 ? "cuda" : "cpu");
    snprintf(reg.device, sizeof(reg.device), "%s", w->device);
    reg.mem_bytes = w->o->mem_bytes;
    snprintf(reg.endpoint, sizeof(reg.endpoint), "%s", xport_endpoint(w->data));
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    reg.threads = (uint32_t)(w->o->threads > 0 ? w->o->threads : online > 0 ? online : 1);
    reg.kv_bytes = w->o->kv_bytes;
    if (w->curve) {
        snprintf(reg.curve_key, sizeof(reg.curve_key), "%s", w->kp.public_key);
    }
    struct proto_register_ack ack;
    for (;;) {
        if (stopped(w)) {
            return hx_diag_set(diag, HX_ECLOSED, "stopped before registering");
        }
        int rc = xport_register(w->ctrl, &reg, WORKER_REGISTER_TIMEOUT_MS, &ack, diag);
        if (rc == 0) {
            break;
        }
        if (rc != HX_ETIMEDOUT) {
            return rc;
        }
        log_info("worker %s: no answer from %s yet, retrying (is it up? a live worker with the "
                 "same name also goes unanswered%s)",
                 w->o->name, w->o->coordinator,
                 w->curve ? "; with CURVE on, so does a wrong --coordinator-key or shared "
                            "secret, or a coordinator with --curve off"
                          : "; a coordinator with CURVE on does not answer a plain worker: "
                            "--curve on");
    }
    w->node = ack.node;
    w->heartbeat_ms = ack.heartbeat_ms > 0 ? (int)ack.heartbeat_ms : 200;
    log_info("worker %s: registered as node %u", w->o->name, w->node);
    int64_t last_hb = 0;
    while (!w->assigned) {
        if (stopped(w)) {
            return hx_diag_set(diag, HX_ECLOSED, "stopped before assignment");
        }
        int64_t now = hx_clock_now_us();
        if (now - last_hb >= (int64_t)w->heartbeat_ms * 1000) {
            send_heartbeat(w);
            last_hb = now;
        }
        struct xport_msg m;
        int rc = xport_recv(w->ctrl, 50, &m, diag);
        if (rc == HX_ETIMEDOUT) {
            continue;
        }
        if (rc != 0) {
            return rc;
        }
        if (m.hdr.type == PROTO_TYPE_ASSIGN) {
            log_info("worker %s: assigned layers [%u, %u) of %u", w->o->name,
                     m.body.assign.layer_start, m.body.assign.layer_end, m.body.assign.n_layers);
            peers_update(w, &m.body.assign);
            rc = load_assignment(w, &m.body.assign, diag);
            xport_msg_release(&m);
            if (rc != 0) {
                send_error(w, 0, 0, rc, diag->msg);
                return rc;
            }
            rc = send_ready(w, diag);
            if (rc != 0) {
                return rc;
            }
        } else if (m.hdr.type == PROTO_TYPE_SHUTDOWN) {
            xport_msg_release(&m);
            return hx_diag_set(diag, HX_ECLOSED, "shut down before assignment");
        } else if (m.hdr.type == PROTO_TYPE_REJECT) {
            int code = m.body.reject.reason == PROTO_REJECT_AUTH ? HX_EAUTH : HX_EINVAL;
            hx_diag_set(diag, code, "coordinator rejected us: %s", m.body.reject.message);
            xport_msg_release(&m);
            return code;
        } else {
            xport_msg_release(&m);
        }
    }
    return 0;
}

/*
 * join_once, retried a few times on HX_EINVAL: a "register again" REJECT answering one of our
 * heartbeats from before (queued while the coordinator was away) may arrive first. A truly
 * invalid registration (a name the plan lacks) is refused every time and still fails.
 */
static int join(struct worker *w, struct hx_diag *diag)
{
    int rc = join_once(w, diag);
    for (int t = 0; t < 3 && rc == HX_EINVAL && !stopped(w); t++) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        rc = join_once(w, diag);
    }
    return rc;
}

/* Forget every request (their KV is freed) before registering again. */
static void forget_all(struct worker *w)
{
    for (int i = 0; i < w->n_pending; i++) {
        xport_msg_release(&w->pending[i]);
    }
    w->n_pending = 0;
    while (w->n_seqs > 0) {
        seq_drop(w, w->seqs[0].id);
    }
    w->assigned = 0;
}

/* The device description as sent: printable ASCII, at most PROTO_DEVICE_MAX bytes. */
static void device_copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src && src[0] ? src : "cpu");
    for (char *p = dst; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
            *p = '?';
        }
    }
}

uint64_t worker_act_bytes(const struct eng_config *cfg, int max_tokens, int last)
{
    uint64_t t = max_tokens > 0 ? (uint64_t)max_tokens : 0;
    uint64_t hd = cfg->head_dim > 0 ? (uint64_t)cfg->head_dim : 0;
    uint64_t q = (uint64_t)(cfg->n_heads > 0 ? cfg->n_heads : 0) * hd;
    uint64_t kv = (uint64_t)(cfg->n_kv_heads > 0 ? cfg->n_kv_heads : 0) * hd;
    uint64_t per_token = 3 * (uint64_t)(cfg->hidden > 0 ? cfg->hidden : 0) + 2 * q + 2 * kv +
                         2 * (uint64_t)(cfg->ffn > 0 ? cfg->ffn : 0) +
                         (last ? (uint64_t)(cfg->vocab > 0 ? cfg->vocab : 0) : 0);
    return 4 * t * per_token;
}

int worker_mem_budget(uint64_t mem_bytes, uint64_t weight_bytes, uint64_t act_bytes,
                      int layer_start, int layer_end, uint64_t *kv_bytes, struct hx_diag *diag)
{
    *kv_bytes = 0;
    if (weight_bytes >= mem_bytes) {
        return hx_diag_set(diag, HX_ERANGE,
                           "--mem-bytes %llu cannot hold the weights of layers [%d, %d): %llu "
                           "bytes",
                           (unsigned long long)mem_bytes, layer_start, layer_end,
                           (unsigned long long)weight_bytes);
    }
    if (act_bytes >= mem_bytes - weight_bytes) {
        return hx_diag_set(diag, HX_ERANGE,
                           "--mem-bytes %llu leaves no KV cache for layers [%d, %d): weights %llu "
                           "+ activations %llu bytes",
                           (unsigned long long)mem_bytes, layer_start, layer_end,
                           (unsigned long long)weight_bytes, (unsigned long long)act_bytes);
    }
    *kv_bytes = mem_bytes - weight_bytes - act_bytes;
    return HX_OK;
}

int rt_size_parse(const char *s, uint64_t *out)
{
    *out = 0;
    if (!s || !(*s >= '0' && *s <= '9')) {
        return HX_EINVAL;
    }
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return HX_EINVAL;
        }
        v = v * 10 + d;
    }
    int shift = 0;
    switch (*s) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    case 't':
    case 'T':
        shift = 40;
        break;
    default:
        break;
    }
    if (shift) {
        s++;
        if (s[0] == 'i' && s[1] == 'B') {
            s += 2;
        } else if (s[0] == 'B') {
            s++;
        }
    } else if (s[0] == 'B') {
        s++;
    }
    if (*s != '\0' || (shift && v > (UINT64_MAX >> shift))) {
        return HX_EINVAL;
    }
    *out = v << shift;
    return HX_OK;
}

/* Keys and the ZAP handler when CURVE is on; logs the mode either way. */
static int curve_setup(struct worker *w, struct hx_diag *diag)
{
    const struct worker_opts *o = w->o;
    w->curve = rt_curve_on(o->curve, o->coordinator);
    if (!w->curve) {
        log_info("worker %s: plain ZeroMQ (--curve off%s): control and data traffic unencrypted, "
                 "data socket open to any process that reaches it; for loopback development only",
                 o->name, o->curve == RT_CURVE_AUTO ? ", the coordinator is on loopback" : "");
        return HX_OK;
    }
    int rc = o->secret_key ? xsec_keypair_from_secret(o->secret_key, &w->kp, diag)
                           : xsec_keypair_new(&w->kp, diag);
    if (rc != 0) {
        return rc;
    }
    if (o->coordinator_key) {
        if (!proto_curve_key_ok(o->coordinator_key)) {
            return hx_diag_set(diag, HX_EINVAL,
                               "--coordinator-key: not a Z85 CURVE public key (%d characters)",
                               PROTO_CURVE_KEY_LEN);
        }
        snprintf(w->coord_key, sizeof(w->coord_key), "%s", o->coordinator_key);
    } else {
        struct xsec_keypair ck;
        rc = xsec_keypair_from_token(o->token, &ck, diag);
        if (rc != 0) {
            return rc;
        }
        snprintf(w->coord_key, sizeof(w->coord_key), "%s", ck.public_key);
        memset(&ck, 0, sizeof(ck));
    }
    rc = xsec_new(w->ctx, o->name, 0, &w->sec, diag);
    if (rc != 0) {
        return rc;
    }
    log_info("worker %s: CURVE on: public key %s, coordinator key %s (%s)", o->name,
             w->kp.public_key, w->coord_key,
             o->coordinator_key ? "--coordinator-key" : "from the shared secret");
    return HX_OK;
}

int worker_run(const struct worker_opts *o, struct hx_diag *diag)
{
    hx_diag_clear(diag);
    if (!o || !o->coordinator || !o->name || !o->token || !o->token[0]) {
        return hx_diag_set(diag, HX_EINVAL, "worker: coordinator, name and token are required");
    }
    struct worker w;
    memset(&w, 0, sizeof(w));
    w.o = o;
    device_copy(w.device, sizeof(w.device), o->device);
    int rc = xport_ctx_new(&w.ctx, diag);
    if (rc == 0) {
        rc = curve_setup(&w, diag);
    }
    struct xport_curve dcv = {w.kp.public_key, w.kp.secret_key, NULL};
    struct xport_curve ccv = {w.kp.public_key, w.kp.secret_key, w.coord_key};
    if (rc == 0) {
        rc = xport_router_bind_curve(w.ctx,
                                     o->data_endpoint ? o->data_endpoint : "tcp://127.0.0.1:*",
                                     w.curve ? &dcv : NULL, &w.data, diag);
    }
    if (rc == 0 && w.curve) {
        xport_set_peer_check(w.data, xsec_peer_check, w.sec);
        rc = xsec_watch(w.sec, w.data, 1, diag);
    }
    if (rc == 0) {
        rc = xport_dealer_connect_curve(w.ctx, o->coordinator, o->name, 0, w.curve ? &ccv : NULL,
                                        &w.ctrl, diag);
    }
    if (rc == 0 && w.curve) {
        rc = xsec_watch(w.sec, w.ctrl, 0, diag);
    }
    if (rc == 0) {
        rc = xport_set_send_timeout(w.ctrl, WORKER_CTRL_SEND_TIMEOUT_MS, diag);
    }
    if (rc == 0) {
        rc = xport_set_self(w.data, o->name, NULL, diag); /* HELIX_LINK_SHAPE: upstream -> us */
    }
    if (rc == 0) {
        rc = xport_set_self(w.ctrl, o->name, "coordinator", diag);
    }
    if (rc == 0) {
        rc = join(&w, diag);
    }
    if (rc != 0) {
        worker_release(&w);
        return rc;
    }
    log_info("worker %s: serving layers [%d, %d) on %s", o->name, w.layer_start, w.layer_end,
             xport_endpoint(w.data));
    w.serving = 1;
    int64_t last_hb = 0;
    w.last_coord_us = hx_clock_now_us();
    struct xport *socks[2] = {w.ctrl, w.data};
    int64_t drain_limit_us =
        (int64_t)(o->drain_timeout_ms > 0 ? o->drain_timeout_ms : 60000) * 1000;
    while (!stopped(&w)) {
        int64_t now = hx_clock_now_us();
        if (o->drain && *o->drain && !w.drain_sent) {
            struct proto_header h;
            proto_header_init(&h, PROTO_TYPE_DRAIN);
            union proto_body b;
            memset(&b, 0, sizeof(b));
            snprintf(b.drain.reason, sizeof(b.drain.reason), "%s",
                     o->drain_reason ? o->drain_reason : "the worker is leaving");
            struct hx_diag dd;
            if (xport_send_body(w.ctrl, NULL, &h, &b, &dd) != 0) {
                log_warn("worker %s: cannot send DRAIN: %s", o->name, dd.msg);
            }
            w.drain_sent = 1;
            w.drain_start_us = now;
            log_info("worker %s: draining (%s): nothing new is routed here; exiting when the "
                     "requests in flight are done (at most %.0f s)",
                     o->name, b.drain.reason, (double)drain_limit_us * 1e-6);
        }
        if (w.drain_sent && now - w.drain_start_us > drain_limit_us) {
            log_warn("worker %s: drain not finished after %.0f s; exiting", o->name,
                     (double)drain_limit_us * 1e-6);
            break;
        }
        if (now - last_hb >= (int64_t)w.heartbeat_ms * 1000) {
            send_heartbeat(&w);
            last_hb = now;
        }
        int timeout = w.n_pending > 0 ? 0 : 50;
        unsigned char rd[2] = {0, 0};
        int n = xport_poll(socks, 2, timeout, rd, diag);
        if (n < 0) {
            rc = n;
            break;
        }
        int done = 0;
        if (rd[0]) {
            w.last_coord_us = hx_clock_now_us();
        }
        int64_t silent_us = hx_clock_now_us() - w.last_coord_us;
        if (silent_us > WORKER_COORD_SILENCE_US) {
            /* the coordinator pings every heartbeat period: it is gone; wait for it anew */
            if (w.drain_sent) {
                log_warn("worker %s: coordinator silent while draining; exiting", o->name);
                break;
            }
            log_warn("worker %s: coordinator silent for %.1f s; registering again", o->name,
                     (double)silent_us * 1e-6);
            forget_all(&w);
            w.serving = 0;
            rc = join(&w, diag);
            w.serving = 1;
            if (rc != 0) {
                break;
            }
            w.last_coord_us = hx_clock_now_us();
            continue;
        }
        for (int i = 0; i < 2 && !done; i++) {
            if (rd[i]) {
                int r = drain(&w, socks[i]);
                if (r < 0) {
                    rc = r;
                    done = 1;
                } else if (r == 1) {
                    done = 1;
                } else if (r == 2 && w.drain_sent) {
                    done = 1; /* declared dead while draining: nothing left to finish */
                } else if (r == 2) {
                    forget_all(&w);
                    w.serving = 0;
                    rc = join(&w, diag);
                    w.serving = 1;
                    if (rc != 0) {
                        done = 1;
                    }
                    break;
                }
            }
        }
        if (done) {
            break;
        }
        step_pending(&w);
    }
    worker_release(&w);
    return rc;
}
