/*
 * coordinator.c - helix's coordinator: the source and sink of every request (spec §8).
 *
 * One loop thread owns the control ROUTER and all request state. It admits workers (shared
 * secret, name from the plan), assigns their layer ranges and peer tables, routes each
 * prompt with the scheduler library (sched.h: max-flow + IWRR, §5.1) under an exact KV
 * admission check (a request reserves ceil((prompt + max_new) / 16) KV blocks on every node of
 * its route; when no route fits it waits in a FIFO queue), sends the PREFILL to the first hop,
 * turns each TOKEN from the last hop into the next DECODE along the same route, detokenises
 * with the streaming decoder and applies stop strings, max_tokens and EOS.
 *
 * A worker unheard for dead_ms (or whose hop reports it unreachable) is declared dead: the
 * scheduler recomputes the flow without it, and each affected request is re-prefilled (prompt
 * plus the tokens generated so far) along a new route, so its client sees one stream; if no
 * route covers all layers any more, the request ends with an error event. A restarted worker
 * registers again under its name and rejoins.
 *
 * Client threads (HTTP) talk to the loop only through the locked inbox and per-request
 * streams (mutex + condition variable).
 *
 * This file is the loop: requests, routing and the messages of a request's life. Workers
 * joining, dying and draining are coord_members.c; what operators see (/metrics, /v1/cluster)
 * is coord_view.c; the state they share is coord_int.h.
 */
#include "runtime/runtime.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "engine/engine.h"
#include "engine/tokenizer.h"
#include "runtime/coord_int.h"
#include "runtime/proto.h"
#include "runtime/xport.h"
#include "runtime/xsec.h"
#include "sched/sched.h"

/* ---- streams ----------------------------------------------------------------------------- */

static struct coord_stream *stream_new(void)
{
    struct coord_stream *s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->refs = 2; /* the client and the loop */
    strbuf_init(&s->pending);
    strbuf_init(&s->out);
    return s;
}

static void stream_unref(struct coord_stream *s)
{
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left == 0) {
        strbuf_release(&s->pending);
        strbuf_release(&s->out);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        xfree(s);
    }
}

static void stream_text(struct coord_stream *s, const char *text, size_t len)
{
    if (len == 0) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    strbuf_add(&s->pending, text, len);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void stream_finish(struct coord_stream *s, int ok, const char *finish, int code,
                          const char *err, int prompt_tokens, int completion_tokens)
{
    pthread_mutex_lock(&s->mu);
    if (!s->done) {
        s->done = ok ? 1 : 2;
        snprintf(s->finish, sizeof(s->finish), "%s", finish ? finish : "");
        s->code = code;
        snprintf(s->err, sizeof(s->err), "%s", err ? err : "");
        s->prompt_tokens = prompt_tokens;
        s->completion_tokens = completion_tokens;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int coord_stream_next(struct coord_stream *s, int timeout_ms, struct coord_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    pthread_mutex_lock(&s->mu);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    if (timeout_ms > 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    while (s->pending.len == 0 && !s->done) {
        if (timeout_ms == 0) {
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->cv, &s->mu);
        } else if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) != 0) {
            break;
        }
    }
    int rc = 0;
    if (s->pending.len > 0) {
        strbuf_reset(&s->out);
        strbuf_add(&s->out, s->pending.buf, s->pending.len);
        strbuf_reset(&s->pending);
        ev->type = COORD_EVENT_TEXT;
        ev->text = s->out.buf;
        ev->len = s->out.len;
    } else if (s->done == 1) {
        ev->type = COORD_EVENT_DONE;
        ev->finish_reason = s->finish;
        ev->prompt_tokens = s->prompt_tokens;
        ev->completion_tokens = s->completion_tokens;
    } else if (s->done == 2) {
        ev->type = COORD_EVENT_ERROR;
        ev->text = s->err;
        ev->len = strlen(s->err);
        ev->code = s->code;
        ev->prompt_tokens = s->prompt_tokens;
        ev->completion_tokens = s->completion_tokens;
    } else {
        rc = HX_ETIMEDOUT;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void coord_stream_free(struct coord_stream *s)
{
    if (!s) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->cancelled = 1;
    pthread_mutex_unlock(&s->mu);
    stream_unref(s);
}

static int stream_cancelled(struct coord_stream *s)
{
    pthread_mutex_lock(&s->mu);
    int c = s->cancelled;
    pthread_mutex_unlock(&s->mu);
    return c;
}

/* ---- stop strings ------------------------------------------------------------------------ */

size_t coord_stop_scan(const char *text, size_t len, size_t emitted, const char *const *stop,
                       int n_stop, int *stopped)
{
    *stopped = 0;
    size_t best = len; /* earliest stop match */
    for (int i = 0; i < n_stop; i++) {
        size_t sl = strlen(stop[i]);
        if (sl == 0 || sl > len) {
            continue;
        }
        /* a match may start before `emitted` only if it was held back, i.e. never emitted */
        size_t from = emitted >= sl ? emitted - sl + 1 : 0;
        for (size_t p = from; p + sl <= len; p++) {
            if (memcmp(text + p, stop[i], sl) == 0) {
                if (p < best) {
                    best = p;
                }
                break;
            }
        }
    }
    if (best < len) {
        *stopped = 1;
        return best > emitted ? best - emitted : 0;
    }
    /* hold back the longest suffix that is a proper prefix of some stop string */
    size_t hold = 0;
    for (int i = 0; i < n_stop; i++) {
        size_t sl = strlen(stop[i]);
        for (size_t k = sl > 0 ? sl - 1 : 0; k > hold; k--) {
            if (k <= len && memcmp(text + len - k, stop[i], k) == 0) {
                hold = k;
                break;
            }
        }
    }
    size_t can = len - hold;
    return can > emitted ? can - emitted : 0;
}

/* ---- helpers ----------------------------------------------------------------------------- */

int coord_sched_parse(const char *s, enum coord_sched *out)
{
    if (strcmp(s, "maxflow") == 0 || strcmp(s, "helix") == 0) {
        *out = COORD_SCHED_MAXFLOW;
    } else if (strcmp(s, "random") == 0) {
        *out = COORD_SCHED_RANDOM;
    } else if (strcmp(s, "swarm") == 0) {
        *out = COORD_SCHED_SWARM;
    } else {
        return HX_EINVAL;
    }
    return 0;
}

const char *coord_sched_name(enum coord_sched s)
{
    switch (s) {
    case COORD_SCHED_MAXFLOW:
        return "maxflow";
    case COORD_SCHED_RANDOM:
        return "random";
    case COORD_SCHED_SWARM:
        return "swarm";
    }
    return "?";
}

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int coord_node_by_name(const struct coord *c, const char *name)
{
    for (int i = 0; i < c->n_nodes; i++) {
        if (strcmp(c->nodes[i].spec.name, name) == 0) {
            return i;
        }
    }
    return -1;
}

static long blocks_for(int tokens)
{
    return (tokens + COORD_KV_BLOCK - 1) / COORD_KV_BLOCK;
}

size_t coord_node_block_bytes(const struct coord *c, int i)
{
    int k = c->nodes[i].spec.layer_end - c->nodes[i].spec.layer_start;
    return (size_t)k * 2 * COORD_KV_BLOCK * (size_t)c->kv_dim * sizeof(float);
}

static int link_index(const struct coord *c, int from, int to)
{
    for (int i = 0; i < c->n_links; i++) {
        if (c->link_desc[i].from == from && c->link_desc[i].to == to) {
            return i;
        }
    }
    return -1;
}

/* ---- sending ----------------------------------------------------------------------------- */

int coord_send_ctrl(struct coord *c, int node, struct proto_header *h, const union proto_body *b)
{
    struct hx_diag d;
    h->send_time_us = hx_clock_now_us();
    int rc = xport_send_body(c->ctrl, c->nodes[node].spec.name, h, b, &d);
    if (rc != 0) {
        log_warn("coordinator: %s to %s failed: %s", proto_type_name(h->type),
                 c->nodes[node].spec.name, d.msg);
    }
    return rc;
}

static void send_release(struct coord *c, int node, uint64_t wire_id)
{
    if (c->nodes[node].state != NODE_READY) {
        return;
    }
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_RELEASE); /* no body: dtype NONE, empty payload */
    h.request_id = wire_id;
    h.send_time_us = hx_clock_now_us();
    struct hx_diag d;
    if (xport_send(c->ctrl, c->nodes[node].spec.name, &h, NULL, 0, NULL, NULL, &d) != 0) {
        log_warn("coordinator: RELEASE of %llu to %s failed: %s", (unsigned long long)wire_id,
                 c->nodes[node].spec.name, d.msg);
    }
}

static void publish_state(struct coord *c)
{
    int ready = 0;
    for (int i = 0; i < c->n_nodes; i++) {
        ready += c->nodes[i].state == NODE_READY;
    }
    int covered = c->sched && sched_flow_value(c->sched) > 0;
    int queued = 0;
    for (int i = 0; i < c->n_reqs; i++) {
        queued += c->reqs[i]->state != REQ_RUNNING;
    }
    pthread_mutex_lock(&c->mu);
    c->n_ready_shared = ready;
    c->covered_shared = covered;
    c->n_queued_shared = queued + c->n_inbox;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ---- requests ---------------------------------------------------------------------------- */

static void emit_text(struct creq *r, const char *text, size_t len)
{
    stream_text(r->stream, text, len);
    if (r->sink && r->sink->token(r->sink_user, text, len) != 0) {
        pthread_mutex_lock(&r->stream->mu);
        r->stream->cancelled = 1;
        pthread_mutex_unlock(&r->stream->mu);
    }
}

static void emit_finish(struct creq *r, int ok, const char *finish, int code, const char *err)
{
    stream_finish(r->stream, ok, finish, code, err, r->n_prompt, r->n_gen);
    if (r->sink && ok) {
        r->sink->done(r->sink_user, finish, r->n_prompt, r->n_gen);
    } else if (r->sink) {
        r->sink->error(r->sink_user, code, err);
    }
}

static int req_cancelled(struct creq *r)
{
    return stream_cancelled(r->stream) ||
           (r->sink && r->sink->cancelled && r->sink->cancelled(r->sink_user));
}

static void req_free(struct creq *r)
{
    if (!r) {
        return;
    }
    if (r->stream) {
        stream_unref(r->stream);
    }
    if (r->sink && r->sink->release) {
        r->sink->release(r->sink_user);
    }
    xfree(r->prompt);
    xfree(r->gen);
    eng_tok_stream_free(r->detok);
    strbuf_release(&r->text);
    xfree(r);
}

/* Give back a running request's reservations and free its KV on the workers. */
static void req_unroute(struct coord *c, struct creq *r)
{
    if (r->n_hops == 0) {
        return;
    }
    for (int i = 0; i < r->n_hops; i++) {
        struct cnode *n = &c->nodes[r->hops[i].node];
        n->kv_blocks_used -= r->reserve_blocks;
        n->n_active--;
        send_release(c, r->hops[i].node, r->wire_id);
    }
    r->n_hops = 0;
}

static void req_remove(struct coord *c, int idx)
{
    struct creq *r = c->reqs[idx];
    req_unroute(c, r);
    memmove(&c->reqs[idx], &c->reqs[idx + 1], (size_t)(c->n_reqs - idx - 1) * sizeof(*c->reqs));
    c->n_reqs--;
    req_free(r);
}

static void req_fail(struct coord *c, int idx, int code, const char *msg)
{
    struct creq *r = c->reqs[idx];
    log_warn("coordinator: request %llu failed: %s", (unsigned long long)r->id, msg);
    emit_finish(r, 0, NULL, code, msg);
    c->failed++;
    req_remove(c, idx);
}

static void req_done(struct coord *c, int idx, const char *finish)
{
    struct creq *r = c->reqs[idx];
    const char *t = NULL;
    size_t tl = 0;
    if (strcmp(finish, "stop_string") != 0) {
        eng_tok_stream_flush(r->detok, &t, &tl);
        if (tl > 0) {
            strbuf_add(&r->text, t, tl);
        }
        int stopped = 0;
        const char *stops[RT_MAX_STOP];
        for (int i = 0; i < r->n_stop; i++) {
            stops[i] = r->stop[i];
        }
        /* release held-back bytes: no more text can complete a stop string */
        size_t n = coord_stop_scan(r->text.buf ? r->text.buf : "", r->text.len, r->emitted, stops,
                                   r->n_stop, &stopped);
        if (!stopped) {
            n = r->text.len - r->emitted;
        }
        if (n > 0) {
            emit_text(r, r->text.buf + r->emitted, n);
        }
        r->emitted += n;
    } else {
        finish = "stop";
    }
    emit_finish(r, 1, finish, 0, NULL);
    c->completed++;
    req_remove(c, idx);
}

/* Requeue a request whose route broke: re-prefill later along a new route. */
void coord_req_requeue(struct coord *c, struct creq *r, int64_t delay_us)
{
    req_unroute(c, r);
    r->state = delay_us > 0 ? REQ_RETRY : REQ_QUEUED;
    r->retry_at_us = hx_clock_now_us() + delay_us;
    r->attempts++;
    r->wait_start_us = hx_clock_now_us();
    c->rerouted++;
}

/* Send the PREFILL (prompt + tokens so far) or the next DECODE of r to its first hop. */
static int req_send_forward(struct coord *c, struct creq *r, int prefill)
{
    struct proto_header h;
    proto_header_init(&h, prefill ? PROTO_TYPE_PREFILL : PROTO_TYPE_DECODE);
    h.request_id = r->wire_id;
    h.temperature = r->temperature;
    h.top_p = r->top_p;
    h.seed = r->seed;
    h.dtype = PROTO_DTYPE_I32;
    h.n_hops = (uint8_t)r->n_hops;
    h.cur_hop = 0;
    for (int i = 0; i < r->n_hops; i++) {
        h.hops[i].node = (uint16_t)r->hops[i].node;
        h.hops[i].layer_start = (uint16_t)r->hops[i].layer_start;
        h.hops[i].layer_end = (uint16_t)r->hops[i].layer_end;
    }
    int32_t *buf;
    int n;
    int32_t one;
    if (prefill) {
        n = r->n_prompt + r->n_gen;
        buf = xmalloc((size_t)n * sizeof(int32_t));
        memcpy(buf, r->prompt, (size_t)r->n_prompt * sizeof(int32_t));
        if (r->n_gen > 0) {
            memcpy(buf + r->n_prompt, r->gen, (size_t)r->n_gen * sizeof(int32_t));
        }
        h.position = 0;
    } else {
        one = r->gen[r->n_gen - 1];
        buf = &one;
        n = 1;
        h.position = (uint32_t)(r->n_prompt + r->n_gen - 1);
    }
    h.n_tokens = (uint32_t)n;
    h.seq = (uint32_t)r->n_gen;
    h.payload_bytes = (uint64_t)n * sizeof(int32_t);
    h.send_time_us = hx_clock_now_us();
    r->expect_seq = h.seq;
    r->sent_tokens = n;
    r->sent_us = h.send_time_us;
    struct hx_diag d;
    int rc = xport_send(c->ctrl, c->nodes[r->hops[0].node].spec.name, &h, buf,
                        (size_t)n * sizeof(int32_t), NULL, NULL, &d);
    if (prefill) {
        xfree(buf);
    }
    if (rc != 0) {
        log_warn("coordinator: request %llu: send to %s failed: %s", (unsigned long long)r->id,
                 c->nodes[r->hops[0].node].spec.name, d.msg);
        return rc;
    }
    int ln = r->hop_link[0];
    if (ln >= 0) {
        c->links[ln].bytes += (uint64_t)n * sizeof(int32_t);
        c->links[ln].tokens += (uint64_t)n;
    }
    return 0;
}

/*
 * Sending r's next message to its first hop failed. HX_ECLOSED from the ROUTER means the
 * worker's connection is gone (ROUTER_MANDATORY): it is dead now, no need to wait for
 * heartbeats; node_down re-routes r with the others. Anything else: retry shortly.
 */
static void forward_failed(struct coord *c, struct creq *r, int rc)
{
    if (rc == HX_ECLOSED) {
        coord_node_down(c, r->hops[0].node, "connection closed");
    }
    if (r->state == REQ_RUNNING) {
        coord_req_requeue(c, r, COORD_RETRY_DELAY_US);
    }
}

/* ---- routing ----------------------------------------------------------------------------- */

/* A node may take a new request: ready, not draining or silent, room for its KV. */
static int node_fits(const struct coord *c, int node, long blocks)
{
    const struct cnode *n = &c->nodes[node];
    return coord_node_routable(n) && n->n_active < RT_MAX_SEQS &&
           n->kv_blocks_used + blocks <= n->kv_blocks_total;
}

static int sender_index(int from)
{
    return from == SCHED_SOURCE ? 0 : 1 + from;
}

/*
 * Choose a route for r: walk from the source; at each sender take its out-links in link order
 * and keep those into a live node that starts exactly at the next layer (plus, for maxflow,
 * Helix's Fail-Flow mask: flow >= 5 % of the sender's out-flow). Among those, the ones whose
 * node has room for the request's KV reservation are candidates: maxflow picks by IWRR over
 * the link flows (sched_iwrr_choose), random uniformly, swarm by its priority queue.
 * Returns the hop count (> 0), 0 when a route exists but none fits now, -1 when no live
 * route covers all layers.
 */
static int pick_route(struct coord *c, struct creq *r, long blocks)
{
    if (!c->sched || sched_flow_value(c->sched) <= 0) {
        return -1;
    }
    int from = SCHED_SOURCE;
    int layer = 0;
    int n = 0;
    int full = 0;
    int links_used[PROTO_MAX_HOPS];
    double work = (double)(r->n_prompt + r->n_gen);
    /* live nodes from which a chain of live nodes reaches the last layer: random and swarm
     * must not walk into a dead end (maxflow's flow > 0 already implies it) */
    unsigned char reach[RT_MAX_NODES];
    memset(reach, 0, sizeof(reach));
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < c->n_nodes; i++) {
            const struct cnode *a = &c->nodes[i];
            if (reach[i] || !coord_node_routable(a)) {
                continue;
            }
            int ok = a->spec.layer_end == c->n_layers;
            for (int j = 0; j < c->n_nodes && !ok; j++) {
                ok = reach[j] && c->nodes[j].spec.layer_start == a->spec.layer_end;
            }
            if (ok) {
                reach[i] = 1;
                changed = 1;
            }
        }
    }
    while (layer < c->n_layers) {
        if (n >= PROTO_MAX_HOPS) {
            return -1;
        }
        int cand[RT_MAX_NODES];
        double caps[RT_MAX_NODES];
        double loads[RT_MAX_NODES];
        unsigned char mask[RT_MAX_NODES];
        int nc = 0;
        double out_flow = 0;
        double max_flow_out = 0;
        for (int i = 0; i < c->n_links; i++) {
            if (c->link_desc[i].from == from) {
                double f = sched_link_flow(c->sched, i);
                out_flow += f;
                max_flow_out = f > max_flow_out ? f : max_flow_out;
            }
        }
        /*
         * Helix's Fail-Flow mask drops links under 5 % of the sender's out-flow; with more
         * than 20 links sharing the flow evenly it would drop them all (found with 64 workers:
         * 21 first stages at 4.8 % each, and no request could be routed). Where it would, the
         * threshold becomes 5 % of the largest out-link's flow, which keeps the rule's intent
         * (ignore links the flow barely uses) at any fan-out.
         */
        double min_flow = 0.05 * out_flow;
        if (max_flow_out < min_flow) {
            min_flow = 0.05 * max_flow_out;
        }
        for (int i = 0; i < c->n_links && nc < RT_MAX_NODES; i++) {
            const struct sched_link_desc *l = &c->link_desc[i];
            if (l->from != from || l->to < 0) {
                continue;
            }
            const struct cnode *nd = &c->nodes[l->to];
            if (!coord_node_routable(nd) || nd->spec.layer_start != layer || !reach[l->to]) {
                continue;
            }
            double f = sched_link_flow(c->sched, i);
            if (c->o.sched == COORD_SCHED_MAXFLOW && !(f > 0 && f >= min_flow)) {
                continue;
            }
            cand[nc] = i;
            caps[nc] = c->o.sched == COORD_SCHED_MAXFLOW ? f : 1.0;
            loads[nc] = c->iwrr_load[i];
            mask[nc] = (unsigned char)node_fits(c, l->to, blocks);
            nc++;
        }
        if (nc == 0) {
            return -1;
        }
        int any = 0;
        for (int k = 0; k < nc; k++) {
            any |= mask[k];
        }
        if (!any) {
            full = 1;
            break;
        }
        int pick = -1;
        if (c->o.sched == COORD_SCHED_MAXFLOW) {
            pick = sched_iwrr_choose(caps, loads, mask, nc, work);
            if (pick >= 0) {
                c->iwrr_load[cand[pick]] = loads[pick];
            }
        } else if (c->o.sched == COORD_SCHED_SWARM && c->swarm) {
            int s = sender_index(from);
            for (int tries = 0; tries < c->swarm_n_out[s] && pick < 0; tries++) {
                int pos = sched_swarm_choose(c->swarm, s);
                int li = c->swarm_links[s][pos];
                for (int k = 0; k < nc; k++) {
                    if (cand[k] == li && mask[k]) {
                        pick = k;
                    }
                }
            }
        } else {
            int ok = 0;
            for (int k = 0; k < nc; k++) {
                ok += mask[k];
            }
            int want = (int)(rng_next(&c->rng) % (uint64_t)ok);
            for (int k = 0; k < nc && pick < 0; k++) {
                if (mask[k] && want-- == 0) {
                    pick = k;
                }
            }
        }
        if (pick < 0) {
            full = 1;
            break;
        }
        const struct sched_link_desc *l = &c->link_desc[cand[pick]];
        const struct cnode *nd = &c->nodes[l->to];
        r->hops[n].node = l->to;
        r->hops[n].layer_start = nd->spec.layer_start;
        r->hops[n].layer_end = nd->spec.layer_end;
        links_used[n] = cand[pick];
        n++;
        layer = nd->spec.layer_end;
        from = l->to;
    }
    if (full) {
        return 0;
    }
    for (int k = 0; k < n; k++) {
        r->hop_link[k] = links_used[k];
    }
    r->hop_link[n] = link_index(c, from, SCHED_SINK);
    r->n_hops = n;
    return n;
}

/* Rebuild the scheduler's liveness from node states (recomputes the flow; loads restart). */
void coord_sched_sync(struct coord *c)
{
    if (!c->sched) {
        return;
    }
    for (int i = 0; i < c->n_nodes; i++) {
        struct hx_diag d;
        const struct cnode *n = &c->nodes[i];
        sched_node_set_alive(c->sched, i, coord_node_routable(n), &d);
    }
    for (int i = 0; i < c->n_links; i++) {
        c->iwrr_load[i] = 0;
    }
    log_info("coordinator: max-flow over live nodes = %.3f tokens/s", sched_flow_value(c->sched));
}

/* Try to admit queued requests, oldest first; stop at the first that must wait (FIFO). */
static void admit(struct coord *c)
{
    int64_t now = hx_clock_now_us();
    for (int i = 0; i < c->n_reqs; i++) {
        struct creq *r = c->reqs[i];
        if (r->state == REQ_RETRY && now >= r->retry_at_us) {
            r->state = REQ_QUEUED;
        }
        if (r->state != REQ_QUEUED) {
            continue;
        }
        int rc = pick_route(c, r, r->reserve_blocks);
        if (rc == 0) {
            break; /* FIFO: later requests wait too */
        }
        if (rc < 0) {
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "no route of live workers covers all %d layers (after %d tokens)", c->n_layers,
                     r->n_gen);
            int any_loading = 0;
            int any_silent = 0;
            for (int k = 0; k < c->n_nodes; k++) {
                any_loading |= c->nodes[k].state == NODE_LOADING;
                any_silent |= c->nodes[k].state == NODE_READY && c->nodes[k].silent;
            }
            if (r->n_gen == 0 && r->attempts == 0 && any_loading) {
                continue; /* workers still loading: wait for them */
            }
            if (any_silent) {
                continue; /* a silent worker speaks again (back in the flow) or is declared dead */
            }
            int64_t waited_us = now - r->wait_start_us;
            if (waited_us < (int64_t)c->o.route_wait_ms * 1000) {
                continue; /* --route-wait: a worker for the missing layers may come back */
            }
            if (c->o.route_wait_ms > 0) {
                size_t ml = strlen(msg);
                snprintf(msg + ml, sizeof(msg) - ml, "; waited %.1f s for one",
                         (double)waited_us * 1e-6);
            }
            req_fail(c, i, HX_ECLOSED, msg); /* "unavailable" (HTTP 503), not a bad request */
            i--;
            continue;
        }
        for (int k = 0; k < r->n_hops; k++) {
            c->nodes[r->hops[k].node].kv_blocks_used += r->reserve_blocks;
            c->nodes[r->hops[k].node].n_active++;
        }
        r->wire_id = ++c->next_wire;
        r->state = REQ_RUNNING;
        int frc = req_send_forward(c, r, 1);
        if (frc != 0) {
            forward_failed(c, r, frc);
            if (r->attempts > COORD_RETRY_MAX) {
                req_fail(c, i, HX_ECLOSED, "route unreachable after retries");
                i--;
            }
        }
    }
}

/* ---- node lifecycle ---------------------------------------------------------------------- */

static int find_req(const struct coord *c, uint64_t wire_id)
{
    for (int i = 0; i < c->n_reqs; i++) {
        if (c->reqs[i]->state == REQ_RUNNING && c->reqs[i]->wire_id == wire_id) {
            return i;
        }
    }
    return -1;
}

static void count_route(struct coord *c, struct creq *r, int n_tokens)
{
    for (int k = 0; k < r->n_hops; k++) {
        struct cnode *n = &c->nodes[r->hops[k].node];
        n->tokens += (uint64_t)n_tokens;
        n->steps++;
        int ln = r->hop_link[k + 1];
        if (ln >= 0) {
            c->links[ln].tokens += (uint64_t)n_tokens;
            c->links[ln].bytes += k + 1 < r->n_hops
                                      ? (uint64_t)n_tokens * (uint64_t)c->hidden * sizeof(float)
                                      : (uint64_t)sizeof(int32_t);
        }
    }
}

static void handle_token(struct coord *c, const struct xport_msg *m)
{
    int idx = find_req(c, m->hdr.request_id);
    if (idx < 0) {
        return; /* a request that ended or was re-routed */
    }
    struct creq *r = c->reqs[idx];
    if (m->hdr.seq != r->expect_seq) {
        log_warn("coordinator: request %llu: TOKEN seq %u, expected %u (dropped)",
                 (unsigned long long)r->id, m->hdr.seq, r->expect_seq);
        return;
    }
    count_route(c, r, r->sent_tokens);
    coord_view_token(c, r, hx_clock_now_us());
    if (c->swarm) {
        double dt = (double)(hx_clock_now_us() - r->sent_us) * 1e-6;
        int from = SCHED_SOURCE;
        for (int k = 0; k < r->n_hops; k++) {
            int s = sender_index(from);
            for (int p = 0; p < c->swarm_n_out[s]; p++) {
                if (c->swarm_links[s][p] == r->hop_link[k]) {
                    sched_swarm_update(c->swarm, s, p, dt);
                }
            }
            from = r->hops[k].node;
        }
    }
    if (c->o.sched == COORD_SCHED_MAXFLOW) {
        for (int k = 0; k < r->n_hops; k++) {
            double f = sched_link_flow(c->sched, r->hop_link[k]);
            if (f > 0) {
                c->iwrr_load[r->hop_link[k]] += 1.0 / f; /* Helix update_loads */
            }
        }
    }
    int32_t tok = m->body.token.token_id;
    if (r->n_gen >= r->max_new) {
        return; /* cannot happen (seq is checked); never write past gen[] */
    }
    r->gen[r->n_gen++] = tok;
    if (tok == c->eos_id && !r->ignore_eos) {
        req_done(c, idx, "stop");
        return;
    }
    const char *t = NULL;
    size_t tl = 0;
    if (eng_tok_stream_feed(r->detok, tok, &t, &tl) == 0 && tl > 0) {
        strbuf_add(&r->text, t, tl);
    }
    const char *stops[RT_MAX_STOP];
    for (int i = 0; i < r->n_stop; i++) {
        stops[i] = r->stop[i];
    }
    int stopped = 0;
    size_t emit = coord_stop_scan(r->text.buf ? r->text.buf : "", r->text.len, r->emitted, stops,
                                  r->n_stop, &stopped);
    emit_text(r, r->text.buf + r->emitted, emit);
    r->emitted += emit;
    if (stopped) {
        req_done(c, idx, "stop_string");
        return;
    }
    if (r->n_gen >= r->max_new) {
        req_done(c, idx, "length");
        return;
    }
    int frc = req_send_forward(c, r, 0);
    if (frc != 0) {
        forward_failed(c, r, frc);
    }
}

static void handle_error(struct coord *c, const struct xport_msg *m)
{
    const struct proto_error *e = &m->body.error;
    if (m->hdr.request_id == 0) {
        log_warn("coordinator: worker %s reports: %s", m->peer, e->message);
        int i = coord_node_by_name(c, m->peer);
        if (i >= 0) {
            coord_node_down(c, i, e->message);
        }
        return;
    }
    int idx = find_req(c, m->hdr.request_id);
    if (idx < 0) {
        return;
    }
    struct creq *r = c->reqs[idx];
    if ((e->code == HX_ECLOSED || e->code == HX_ETIMEDOUT || e->code == HX_EFULL) &&
        r->attempts < COORD_RETRY_MAX) {
        log_info("coordinator: request %llu: %s; retrying", (unsigned long long)r->id, e->message);
        if (e->code != HX_EFULL) {
            /* the hop after the sender is unreachable: if it has also gone quiet, it is dead */
            int from = coord_node_by_name(c, m->peer);
            for (int k = 0; k + 1 < r->n_hops; k++) {
                int next = r->hops[k + 1].node;
                if (r->hops[k].node == from && hx_clock_now_us() - c->nodes[next].last_seen_us >
                                                   2 * (int64_t)c->o.heartbeat_ms * 1000) {
                    coord_node_down(c, next, "unreachable from its predecessor and silent");
                    break;
                }
            }
        }
        if (r->state == REQ_RUNNING) {
            coord_req_requeue(c, r, e->code == HX_EFULL ? 50000 : COORD_RETRY_DELAY_US);
        }
        return;
    }
    req_fail(c, idx, e->code, e->message);
}

static void handle_msg(struct coord *c, struct xport_msg *m)
{
    int i = coord_node_by_name(c, m->peer);
    if (m->hdr.type == PROTO_TYPE_REGISTER) {
        coord_handle_register(c, m);
        return;
    }
    if (i < 0 || c->nodes[i].state == NODE_WAITING || c->nodes[i].state == NODE_DEAD) {
        log_debug("coordinator: %s from unregistered '%s' dropped", proto_type_name(m->hdr.type),
                  m->peer);
        int64_t now = hx_clock_now_us();
        if (i >= 0 && now - c->nodes[i].last_reject_us > 200000) {
            /* a worker we declared dead is still talking: ask it to register again */
            c->nodes[i].last_reject_us = now;
            struct proto_header h;
            proto_header_init(&h, PROTO_TYPE_REJECT);
            union proto_body b;
            memset(&b, 0, sizeof(b));
            b.reject.reason = PROTO_REJECT_INVALID;
            snprintf(b.reject.message, sizeof(b.reject.message),
                     "node %s was declared dead; register again", m->peer);
            struct hx_diag d;
            xport_send_body(c->ctrl, m->peer, &h, &b, &d);
        }
        return;
    }
    if (c->curve && strcmp(m->peer_key, c->nodes[i].curve_key) != 0) {
        /* a connection under a registered name whose key is not the one it registered */
        c->refused_messages++;
        if (c->refused_messages <= 10 || c->refused_messages % 1000 == 0) {
            log_warn("coordinator: %s claiming to be %s refused: its key %.8s... is not the "
                     "node's (%llu so far)",
                     proto_type_name(m->hdr.type), m->peer, m->peer_key,
                     (unsigned long long)c->refused_messages);
        }
        return;
    }
    xport_live_seen(c->live, m->peer, hx_clock_now_us());
    c->nodes[i].last_seen_us = hx_clock_now_us();
    if (c->nodes[i].silent) {
        coord_node_heard(c, i);
    }
    switch (m->hdr.type) {
    case PROTO_TYPE_READY:
        coord_handle_ready(c, i, &m->body.ready);
        break;
    case PROTO_TYPE_HEARTBEAT:
        c->nodes[i].hb_active = m->body.heartbeat.n_active;
        c->nodes[i].hb_kv_used = m->body.heartbeat.kv_used_bytes;
        c->nodes[i].hb_kv_total = m->body.heartbeat.kv_total_bytes;
        c->nodes[i].hb_refused[0] = m->body.heartbeat.refused_handshakes;
        c->nodes[i].hb_refused[1] = m->body.heartbeat.refused_keys;
        c->nodes[i].hb_refused[2] = m->body.heartbeat.refused_messages;
        c->nodes[i].hb_refused[3] = m->body.heartbeat.dropped_malformed;
        if (m->body.heartbeat.device[0]) {
            snprintf(c->nodes[i].device, sizeof(c->nodes[i].device), "%s",
                     m->body.heartbeat.device);
        }
        break;
    case PROTO_TYPE_TOKEN:
        handle_token(c, m);
        break;
    case PROTO_TYPE_ERROR:
        handle_error(c, m);
        break;
    case PROTO_TYPE_DRAIN:
        coord_node_drain(c, i, m->body.drain.reason);
        break;
    default:
        log_warn("coordinator: unexpected %s from %s dropped", proto_type_name(m->hdr.type),
                 m->peer);
        break;
    }
}

/* ---- metrics ----------------------------------------------------------------------------- */

/* A Prometheus label value: backslash, double quote and newline escaped. */
/* ---- the loop ---------------------------------------------------------------------------- */

static void take_inbox(struct coord *c)
{
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n_inbox; i++) {
        if (c->n_reqs == c->cap_reqs) {
            c->cap_reqs = c->cap_reqs ? 2 * c->cap_reqs : 64;
            c->reqs = xrealloc(c->reqs, (size_t)c->cap_reqs * sizeof(*c->reqs));
        }
        c->reqs[c->n_reqs++] = c->inbox[i];
    }
    c->n_inbox = 0;
    pthread_mutex_unlock(&c->mu);
}

static void *loop_main(void *arg)
{
    struct coord *c = arg;
    int64_t last_metrics = 0;
    int64_t last_ping = 0;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        int stop = c->stopping;
        pthread_mutex_unlock(&c->mu);
        if (stop) {
            break;
        }
        struct xport *socks[1] = {c->ctrl};
        unsigned char rd[1] = {0};
        int busy = 0;
        for (int i = 0; i < c->n_reqs && !busy; i++) {
            busy = c->reqs[i]->state != REQ_RUNNING;
        }
        struct hx_diag d;
        xport_poll(socks, 1, busy ? 2 : 5, rd, &d);
        for (int k = 0; k < 256; k++) {
            struct xport_msg m;
            int rc = xport_recv(c->ctrl, 0, &m, &d);
            if (rc != 0) {
                break;
            }
            handle_msg(c, &m);
            xport_msg_release(&m);
        }
        take_inbox(c);
        for (int i = 0; i < c->n_reqs; i++) {
            if (req_cancelled(c->reqs[i])) {
                c->cancelled++;
                req_remove(c, i);
                i--;
            }
        }
        coord_members_tick(c);
        int64_t now = hx_clock_now_us();
        if (now - last_ping >= (int64_t)c->o.heartbeat_ms * 1000) {
            coord_ping_workers(c);
            last_ping = now;
        }
        admit(c);
        now = hx_clock_now_us();
        if (now - last_metrics > 250000) {
            coord_view_render(c);
            last_metrics = now;
        }
        publish_state(c);
    }
    /* shutting down: fail what is left, tell workers to exit */
    while (c->n_reqs > 0) {
        req_fail(c, c->n_reqs - 1, HX_ECLOSED, "coordinator shutting down");
    }
    for (int i = 0; i < c->n_nodes; i++) {
        if (c->nodes[i].state == NODE_READY || c->nodes[i].state == NODE_LOADING) {
            struct proto_header h;
            proto_header_init(&h, PROTO_TYPE_SHUTDOWN);
            union proto_body b;
            memset(&b, 0, sizeof(b));
            snprintf(b.shutdown.reason, sizeof(b.shutdown.reason), "coordinator exiting");
            coord_send_ctrl(c, i, &h, &b);
        }
    }
    return NULL;
}

/* ---- public API -------------------------------------------------------------------------- */

static int build_sched(struct coord *c, struct hx_diag *diag)
{
    struct sched_node_desc *nd = xcalloc((size_t)c->n_nodes, sizeof(*nd));
    int cap_links = (c->n_nodes + 2) * (c->n_nodes + 2);
    c->link_desc = xcalloc((size_t)cap_links, sizeof(*c->link_desc));
    c->n_links = 0;
    for (int i = 0; i < c->n_nodes; i++) {
        const struct coord_node_spec *s = &c->nodes[i].spec;
        nd[i].start = s->layer_start;
        nd[i].n_layers = s->layer_end - s->layer_start;
        nd[i].tp = s->capacity > 0 ? s->capacity : 1.0;
        nd[i].nic_in = 1e12; /* loopback/LAN: the network is not the bottleneck we model */
        nd[i].nic_out = 1e12;
        nd[i].kv_capacity = 1L << 40;
        nd[i].prompt_max_tokens = c->max_ctx;
    }
    for (int i = 0; i < c->n_nodes; i++) {
        if (c->nodes[i].spec.layer_start == 0) {
            c->link_desc[c->n_links++] = (struct sched_link_desc){SCHED_SOURCE, i, 1e12, 0};
        }
    }
    for (int i = 0; i < c->n_nodes; i++) {
        for (int j = 0; j < c->n_nodes; j++) {
            if (i != j && c->nodes[i].spec.layer_end == c->nodes[j].spec.layer_start) {
                c->link_desc[c->n_links++] = (struct sched_link_desc){i, j, 1e12, 0};
            }
        }
    }
    for (int i = 0; i < c->n_nodes; i++) {
        if (c->nodes[i].spec.layer_end == c->n_layers) {
            c->link_desc[c->n_links++] = (struct sched_link_desc){i, SCHED_SINK, 1e12, 0};
        }
    }
    struct sched_topology t;
    memset(&t, 0, sizeof(t));
    t.n_layers = c->n_layers;
    t.token_bytes = 4;
    t.activation_bytes = (double)c->hidden * 4;
    t.coord_nic_in = 1e12;
    t.coord_nic_out = 1e12;
    t.n_nodes = c->n_nodes;
    t.nodes = nd;
    t.n_links = c->n_links;
    t.links = c->link_desc;
    struct sched_params p;
    sched_params_helix(&p, 0);
    int rc = sched_new(&t, &p, &c->sched, diag);
    xfree(nd);
    if (rc != 0) {
        return rc;
    }
    c->links = xcalloc((size_t)(c->n_links ? c->n_links : 1), sizeof(*c->links));
    c->iwrr_load = xcalloc((size_t)(c->n_links ? c->n_links : 1), sizeof(double));
    for (int i = 0; i < c->n_links; i++) {
        c->links[i].from = c->link_desc[i].from;
        c->links[i].to = c->link_desc[i].to;
    }
    /* swarm: per sender, its out-links in link order */
    int n_senders = c->n_nodes + 1;
    c->swarm_n_out = xcalloc((size_t)n_senders, sizeof(int));
    c->swarm_links = xcalloc((size_t)n_senders, sizeof(int *));
    for (int s = 0; s < n_senders; s++) {
        c->swarm_links[s] = xcalloc((size_t)(c->n_links ? c->n_links : 1), sizeof(int));
        int from = s == 0 ? SCHED_SOURCE : s - 1;
        for (int i = 0; i < c->n_links; i++) {
            if (c->link_desc[i].from == from && c->link_desc[i].to >= 0) {
                c->swarm_links[s][c->swarm_n_out[s]++] = i;
            }
        }
    }
    if (c->o.sched == COORD_SCHED_SWARM) {
        c->swarm = sched_swarm_new(n_senders, c->swarm_n_out, (const int *const *)c->swarm_links,
                                   0.05, 0.8);
    }
    /* nobody is alive until READY */
    for (int i = 0; i < c->n_nodes; i++) {
        sched_node_set_alive(c->sched, i, 0, diag);
    }
    hx_diag_clear(diag);
    return 0;
}

/* Keys and the ZAP handler of the control socket when CURVE is on. */
static int curve_setup(struct coord *c, const struct coord_opts *o, struct hx_diag *diag)
{
    c->curve = rt_curve_on(o->curve, o->workers);
    if (!c->curve) {
        return 0;
    }
    int rc = o->secret_key ? xsec_keypair_from_secret(o->secret_key, &c->kp, diag)
                           : xsec_keypair_from_token(o->token, &c->kp, diag);
    if (rc != 0) {
        return rc;
    }
    if (o->n_worker_keys > 0) {
        c->n_worker_keys = o->n_worker_keys;
        c->worker_keys = xmalloc((size_t)o->n_worker_keys * sizeof(*c->worker_keys));
        memcpy(c->worker_keys, o->worker_keys, (size_t)o->n_worker_keys * sizeof(*c->worker_keys));
    }
    rc = xsec_new(c->ctx, "coordinator", c->n_worker_keys == 0, &c->sec, diag);
    if (rc == 0 && c->n_worker_keys > 0) {
        xsec_admit_set(c->sec, c->worker_keys, (size_t)c->n_worker_keys);
    }
    return rc;
}

int coord_new(const struct coord_opts *o, struct coord **out, struct hx_diag *diag)
{
    *out = NULL;
    hx_diag_clear(diag);
    if (!o || !o->model_dir || !o->workers || !o->token || !o->token[0] || o->n_nodes < 1 ||
        o->n_nodes > RT_MAX_NODES || !o->nodes) {
        return hx_diag_set(diag, HX_EINVAL,
                           "coordinator: model, workers endpoint, token and 1..%d nodes needed",
                           RT_MAX_NODES);
    }
    struct coord *c = xcalloc(1, sizeof(*c));
    c->o = *o;
    c->o.heartbeat_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : 200;
    c->o.dead_ms = o->dead_ms > 0 ? o->dead_ms : 3000;
    c->o.drain_timeout_ms = o->drain_timeout_ms > 0 ? o->drain_timeout_ms : 60000;
    c->o.max_queue = o->max_queue > 0 ? o->max_queue : 1024;
    c->model_dir = xstrdup(o->model_dir);
    c->token = xstrdup(o->token);
    c->o.model_dir = c->model_dir;
    c->o.token = c->token;
    c->o.nodes = NULL;
    c->o.secret_key = NULL;  /* used by coord_new only (curve_setup reads o) */
    c->o.worker_keys = NULL; /* copied into c->worker_keys */
    c->rng = o->seed ? o->seed : 0x5eed;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    strbuf_init(&c->metrics);
    strbuf_init(&c->cluster_json);
    c->start_us = hx_clock_now_us();
    c->n_nodes = o->n_nodes;
    c->nodes = xcalloc((size_t)o->n_nodes, sizeof(*c->nodes));
    int rc = 0;
    struct strbuf sb;
    strbuf_init(&sb);
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", o->model_dir);
    struct eng_config cfg;
    if (strbuf_read_file(&sb, path) != 0) {
        rc = hx_diag_set(diag, HX_EIO, "%s: cannot read", path);
        goto fail;
    }
    rc = eng_config_parse(sb.buf, sb.len, path, &cfg, diag);
    if (rc != 0) {
        goto fail;
    }
    c->n_layers = cfg.n_layers;
    c->hidden = cfg.hidden;
    c->max_ctx = cfg.max_pos;
    c->kv_dim = cfg.n_kv_heads * cfg.head_dim;
    snprintf(path, sizeof(path), "%s/tokenizer.json", o->model_dir);
    rc = eng_tok_load(path, &c->tok, diag);
    if (rc != 0) {
        goto fail;
    }
    c->eos_id = cfg.eos_id >= 0 ? cfg.eos_id : eng_tok_eos_id(c->tok);
    {
        const char *base = strrchr(o->model_dir, '/');
        base = base && base[1] ? base + 1 : o->model_dir;
        snprintf(c->model_name, sizeof(c->model_name), "%s", base);
    }
    for (int i = 0; i < o->n_nodes; i++) {
        const struct coord_node_spec *s = &o->nodes[i];
        if (s->layer_start < 0 || s->layer_end <= s->layer_start || s->layer_end > c->n_layers) {
            rc = hx_diag_set(diag, HX_EINVAL, "node %s: layers [%d, %d) outside 0..%d", s->name,
                             s->layer_start, s->layer_end, c->n_layers);
            goto fail;
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(o->nodes[j].name, s->name) == 0) {
                rc = hx_diag_set(diag, HX_EINVAL, "node name %s used twice", s->name);
                goto fail;
            }
        }
        c->nodes[i].spec = *s;
    }
    rc = build_sched(c, diag);
    if (rc != 0) {
        goto fail;
    }
    xport_live_new((int64_t)c->o.dead_ms * 1000, &c->live);
    rc = xport_ctx_new(&c->ctx, diag);
    if (rc == 0) {
        rc = curve_setup(c, o, diag);
    }
    struct xport_curve cv = {c->kp.public_key, c->kp.secret_key, NULL};
    if (rc == 0) {
        rc = xport_router_bind_curve(c->ctx, o->workers, c->curve ? &cv : NULL, &c->ctrl, diag);
    }
    if (rc == 0 && c->curve) {
        rc = xsec_watch(c->sec, c->ctrl, 1, diag);
    }
    if (rc == 0) {
        rc = xport_set_self(c->ctrl, "coordinator", NULL, diag); /* HELIX_LINK_SHAPE */
    }
    if (rc != 0) {
        goto fail;
    }
    if (c->curve) {
        log_info("coordinator: CURVE on %s: public key %s (%s); admitting %s",
                 xport_endpoint(c->ctrl), c->kp.public_key,
                 o->secret_key ? "from its key file" : "derived from the shared secret",
                 c->n_worker_keys ? "only the keys file's workers"
                                  : "any worker holding the shared secret");
    } else {
        /* a warning where it matters: plain on an address other hosts can reach */
        log_msg(xsec_endpoint_is_loopback(xport_endpoint(c->ctrl)) ? LOG_LEVEL_INFO
                                                                   : LOG_LEVEL_WARN,
                "coordinator: plain ZeroMQ on %s (--curve off%s): control and data traffic "
                "unencrypted and workers' data sockets open to anyone who reaches them; for "
                "loopback development only",
                xport_endpoint(c->ctrl), o->curve == RT_CURVE_AUTO ? ", loopback endpoint" : "");
    }
    strbuf_release(&sb);
    c->win_start_us = hx_clock_now_us();
    coord_view_render(c);
    *out = c;
    return 0;
fail:
    strbuf_release(&sb);
    coord_free(c);
    return rc;
}

int coord_start(struct coord *c, struct hx_diag *diag)
{
    if (pthread_create(&c->thread, NULL, loop_main, c) != 0) {
        return hx_diag_set(diag, HX_EIO, "cannot start the coordinator thread");
    }
    c->started = 1;
    return 0;
}

const char *coord_endpoint(const struct coord *c)
{
    return xport_endpoint(c->ctrl);
}

const char *coord_public_key(const struct coord *c)
{
    return c->curve ? c->kp.public_key : "";
}

const char *coord_model_name(const struct coord *c)
{
    return c->model_name;
}

int coord_max_context(const struct coord *c)
{
    return c->max_ctx;
}

int coord_ready_count(struct coord *c, int *covered)
{
    pthread_mutex_lock(&c->mu);
    int n = c->n_ready_shared;
    if (covered) {
        *covered = c->covered_shared;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

int coord_wait_ready(struct coord *c, int timeout_ms, struct hx_diag *diag)
{
    int64_t deadline = hx_clock_now_us() + (int64_t)timeout_ms * 1000;
    pthread_mutex_lock(&c->mu);
    while (c->n_ready_shared < c->n_nodes) {
        if (timeout_ms >= 0 && hx_clock_now_us() >= deadline) {
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    int ready = c->n_ready_shared;
    pthread_mutex_unlock(&c->mu);
    if (ready < c->n_nodes) {
        return hx_diag_set(diag, HX_ETIMEDOUT, "only %d of %d workers ready", ready, c->n_nodes);
    }
    return 0;
}

int coord_submit(struct coord *c, const struct coord_request *q, struct coord_stream **out,
                 struct hx_diag *diag)
{
    *out = NULL;
    hx_diag_clear(diag);
    if (!q || (!q->prompt && q->prompt_len > 0) || q->max_tokens < 1 || q->n_stop < 0 ||
        q->n_stop > RT_MAX_STOP || !(q->temperature >= 0) || q->temperature > 100 ||
        !(q->top_p > 0) || q->top_p > 1) {
        return hx_diag_set(diag, HX_EINVAL,
                           "bad request: need max_tokens >= 1, 0 <= temperature <= 100, "
                           "0 < top_p <= 1, at most %d stop strings",
                           RT_MAX_STOP);
    }
    for (int i = 0; i < q->n_stop; i++) {
        if (!q->stop[i] || strlen(q->stop[i]) > RT_STOP_MAX_BYTES) {
            return hx_diag_set(diag, HX_EINVAL, "stop string %d missing or longer than %d bytes", i,
                               RT_STOP_MAX_BYTES);
        }
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = eng_tok_encode(c->tok, q->prompt ? q->prompt : "", q->prompt_len, ENG_TOK_ADD_BOS,
                            &ids, &n, diag);
    if (rc != 0) {
        return rc;
    }
    if (n == 0 || (int)n >= c->max_ctx) {
        xfree(ids);
        return hx_diag_set(diag, HX_EINVAL, "prompt of %zu tokens; the context holds %d", n,
                           c->max_ctx);
    }
    struct creq *r = xcalloc(1, sizeof(*r));
    r->prompt = ids;
    r->n_prompt = (int)n;
    r->max_new = q->max_tokens;
    if (r->n_prompt + r->max_new > c->max_ctx) {
        r->max_new = c->max_ctx - r->n_prompt;
    }
    r->gen = xcalloc((size_t)r->max_new, sizeof(int32_t));
    r->temperature = q->temperature;
    r->top_p = q->top_p;
    r->seed = q->seed;
    r->n_stop = q->n_stop;
    for (int i = 0; i < q->n_stop; i++) {
        snprintf(r->stop[i], sizeof(r->stop[i]), "%s", q->stop[i]);
    }
    r->ignore_eos = q->ignore_eos;
    r->submit_us = hx_clock_now_us();
    r->wait_start_us = r->submit_us;
    r->reserve_blocks = blocks_for(r->n_prompt + r->max_new);
    strbuf_init(&r->text);
    rc = eng_tok_stream_new(c->tok, ENG_TOK_SKIP_SPECIAL, &r->detok, diag);
    if (rc != 0) {
        req_free(r);
        return rc;
    }
    r->stream = stream_new();
    r->sink = q->sink;
    r->sink_user = q->sink_user;
    if (r->sink) {
        r->stream->refs = 1; /* the loop's only */
    }
    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        rc = hx_diag_set(diag, HX_ECLOSED, "coordinator shutting down");
    } else if (c->n_queued_shared + c->n_inbox >= c->o.max_queue) {
        rc = hx_diag_set(diag, HX_EFULL, "admission queue full (%d requests waiting)",
                         c->o.max_queue);
    } else {
        r->id = ++c->next_id;
        if (c->n_inbox == c->cap_inbox) {
            c->cap_inbox = c->cap_inbox ? 2 * c->cap_inbox : 64;
            c->inbox = xrealloc(c->inbox, (size_t)c->cap_inbox * sizeof(*c->inbox));
        }
        if (r->sink && r->sink->prompt_tokens) {
            r->sink->prompt_tokens(r->sink_user, r->n_prompt); /* before the loop sees r */
        }
        c->inbox[c->n_inbox++] = r;
        *out = r->sink ? NULL : r->stream;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc != 0) {
        if (!r->sink) {
            stream_unref(r->stream); /* the client's reference; req_free drops the loop's */
        }
        r->sink = NULL; /* on failure the sink is never called */
        req_free(r);
    }
    return rc;
}

void coord_free(struct coord *c)
{
    if (!c) {
        return;
    }
    if (c->started) {
        pthread_mutex_lock(&c->mu);
        c->stopping = 1;
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    for (int i = 0; i < c->n_inbox; i++) {
        emit_finish(c->inbox[i], 0, NULL, HX_ECLOSED, "coordinator shutting down");
        req_free(c->inbox[i]);
    }
    while (c->n_reqs > 0) {
        req_fail(c, c->n_reqs - 1, HX_ECLOSED, "coordinator shutting down");
    }
    xfree(c->inbox);
    xfree(c->reqs);
    xport_free(c->ctrl);
    xsec_free(c->sec); /* after its socket, before the context */
    xport_ctx_free(c->ctx);
    xfree(c->worker_keys);
    xport_live_free(c->live);
    sched_free(c->sched);
    sched_swarm_free(c->swarm);
    if (c->swarm_links) {
        for (int s = 0; s < c->n_nodes + 1; s++) {
            xfree(c->swarm_links[s]);
        }
    }
    xfree(c->swarm_links);
    xfree(c->swarm_n_out);
    xfree(c->link_desc);
    xfree(c->links);
    xfree(c->iwrr_load);
    eng_tok_free(c->tok);
    xfree(c->nodes);
    xfree(c->model_dir);
    xfree(c->token);
    strbuf_release(&c->metrics);
    strbuf_release(&c->cluster_json);
    xfree(c->drain_inbox);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    xfree(c);
}
