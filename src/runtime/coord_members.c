/*
 * coord_members.c - the coordinator's membership: workers registering (the shared secret, the
 * plan's name, CURVE keys), loading and becoming READY, heartbeats and the dead (no heartbeat,
 * a closed connection), and draining (DRAIN from a worker on SIGTERM, or coord_drain from the
 * admin endpoint): out of routing at once, its requests finish in place, then SHUTDOWN
 * "drained". A node that goes is removed from every live worker's peer table, which revokes its
 * key (CURVE), and the requests it carried are re-routed. The loop (coordinator.c) calls in
 * through coord_int.h: coord_handle_register / coord_handle_ready / coord_node_drain for the
 * messages, coord_members_tick every iteration, coord_ping_workers every heartbeat period.
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "runtime/coord_int.h"
#include "runtime/proto.h"
#include "runtime/runtime.h"
#include "runtime/xport.h"
#include "runtime/xsec.h"
#include "sched/sched.h"

void coord_send_assign(struct coord *c, int node)
{
    struct proto_peer *peers = xcalloc((size_t)c->n_nodes, sizeof(*peers));
    uint32_t n = 0;
    for (int i = 0; i < c->n_nodes; i++) {
        if (c->nodes[i].state == NODE_READY || c->nodes[i].state == NODE_LOADING) {
            snprintf(peers[n].name, sizeof(peers[n].name), "%s", c->nodes[i].spec.name);
            snprintf(peers[n].endpoint, sizeof(peers[n].endpoint), "%s", c->nodes[i].endpoint);
            snprintf(peers[n].curve_key, sizeof(peers[n].curve_key), "%s", c->nodes[i].curve_key);
            peers[n].node = (uint32_t)i;
            n++;
        }
    }
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_ASSIGN);
    union proto_body b;
    memset(&b, 0, sizeof(b));
    b.assign.node = (uint32_t)node;
    b.assign.layer_start = (uint32_t)c->nodes[node].spec.layer_start;
    b.assign.layer_end = (uint32_t)c->nodes[node].spec.layer_end;
    b.assign.n_layers = (uint32_t)c->n_layers;
    snprintf(b.assign.model, sizeof(b.assign.model), "%s", c->model_dir);
    b.assign.n_peers = n;
    b.assign.peers = peers;
    coord_send_ctrl(c, node, &h, &b);
    xfree(peers);
}

void coord_node_down(struct coord *c, int i, const char *why)
{
    struct cnode *n = &c->nodes[i];
    if (n->state == NODE_DEAD || n->state == NODE_WAITING) {
        return;
    }
    log_warn("coordinator: node %s is down (%s)", n->spec.name, why);
    n->state = NODE_DEAD;
    n->draining = 0;
    n->silent = 0;
    coord_view_event(c, n->spec.name, "down", "%s", why);
    xport_live_forget(c->live, n->spec.name);
    coord_sched_sync(c);
    for (int k = 0; k < c->n_reqs; k++) {
        struct creq *r = c->reqs[k];
        if (r->state != REQ_RUNNING) {
            continue;
        }
        int hit = 0;
        for (int h = 0; h < r->n_hops; h++) {
            hit |= r->hops[h].node == i;
        }
        if (hit) {
            log_info("coordinator: request %llu re-routed after %d tokens",
                     (unsigned long long)r->id, r->n_gen);
            coord_req_requeue(c, r, 0);
        }
    }
    n->kv_blocks_used = 0;
    n->n_active = 0;
    /*
     * Revoke its key: every live worker gets the peer table without it, which is also the set
     * of keys its data socket admits (with CURVE; without, it just stops using the node).
     */
    for (int k = 0; k < c->n_nodes; k++) {
        if (c->nodes[k].state == NODE_READY) {
            coord_send_assign(c, k);
        }
    }
    if (c->curve) {
        log_info("coordinator: key of %s revoked (%.8s...)", n->spec.name, n->curve_key);
    }
    n->curve_key[0] = '\0';
}

/* Requests running with a hop on node i. */
static int running_through(const struct coord *c, int i)
{
    int running = 0;
    for (int k = 0; k < c->n_reqs; k++) {
        const struct creq *r = c->reqs[k];
        for (int h = 0; r->state == REQ_RUNNING && h < r->n_hops; h++) {
            running += r->hops[h].node == i;
        }
    }
    return running;
}

/*
 * Drain node i: no new request is routed to it from now on (the flow is recomputed without
 * it), the requests running through it finish in place, and drains_check() says SHUTDOWN
 * ("drained") once none is left, or takes it down after drain_timeout_ms (its requests are
 * then re-routed, as for a dead node).
 */
void coord_node_drain(struct coord *c, int i, const char *why)
{
    struct cnode *n = &c->nodes[i];
    if (n->state != NODE_READY && n->state != NODE_LOADING) {
        log_info("coordinator: drain of %s ignored: it is %s", n->spec.name,
                 coord_node_state_name(n->state));
        return;
    }
    if (n->draining) {
        return;
    }
    n->draining = 1;
    n->drain_start_us = hx_clock_now_us();
    snprintf(n->drain_why, sizeof(n->drain_why), "%s", why);
    if (n->state == NODE_LOADING) {
        return; /* nothing runs on it yet: drains_check lets it go at once */
    }
    int running = running_through(c, i);
    log_info("coordinator: draining %s (%s): routing nothing new to it, %d requests finish in "
             "place",
             n->spec.name, why, running);
    coord_view_event(c, n->spec.name, "draining", "%s; %d requests in flight finish in place", why,
                     running);
    coord_sched_sync(c);
}

static void drains_check(struct coord *c)
{
    int64_t now = hx_clock_now_us();
    for (int i = 0; i < c->n_nodes; i++) {
        struct cnode *n = &c->nodes[i];
        if (!n->draining) {
            continue;
        }
        int running = running_through(c, i);
        int timed_out = now - n->drain_start_us > (int64_t)c->o.drain_timeout_ms * 1000;
        if (running > 0 && !timed_out) {
            continue;
        }
        char why[256];
        snprintf(why, sizeof(why), "%s after %.2f s: %s", running ? "drain timed out" : "drained",
                 (double)(now - n->drain_start_us) * 1e-6, n->drain_why);
        struct proto_header h;
        proto_header_init(&h, PROTO_TYPE_SHUTDOWN);
        union proto_body b;
        memset(&b, 0, sizeof(b));
        snprintf(b.shutdown.reason, sizeof(b.shutdown.reason), "%s",
                 running ? "drain timed out" : "drained");
        coord_send_ctrl(c, i, &h, &b);
        if (running == 0) {
            log_info("coordinator: %s left (%s)", n->spec.name, why);
            coord_view_event(c, n->spec.name, "left", "%s", why);
        }
        coord_node_down(c, i, why); /* re-routes what is left (nothing, unless it timed out) */
        n->left = running == 0;
    }
}

static void take_drains(struct coord *c)
{
    pthread_mutex_lock(&c->mu);
    for (int k = 0; k < c->n_drain_inbox; k++) {
        int i = coord_node_by_name(c, c->drain_inbox[k]);
        if (i >= 0) {
            coord_node_drain(c, i, "drain requested by an operator");
        }
    }
    c->n_drain_inbox = 0;
    pthread_mutex_unlock(&c->mu);
}

int coord_drain(struct coord *c, const char *name, struct hx_diag *diag)
{
    if (!name || coord_node_by_name(c, name) < 0) {
        return hx_diag_set(diag, HX_ENOTFOUND, "no worker named '%s' in the plan",
                           name ? name : "");
    }
    pthread_mutex_lock(&c->mu);
    if (c->n_drain_inbox == c->cap_drain_inbox) {
        c->cap_drain_inbox = c->cap_drain_inbox ? 2 * c->cap_drain_inbox : 8;
        c->drain_inbox =
            xrealloc(c->drain_inbox, (size_t)c->cap_drain_inbox * sizeof(*c->drain_inbox));
    }
    snprintf(c->drain_inbox[c->n_drain_inbox++], sizeof(c->drain_inbox[0]), "%s", name);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/*
 * CURVE checks of a REGISTER: the body's key must be the connection's (so a worker cannot
 * register a key it does not hold) and, with a keys file, the one listed for the name.
 * 0, or HX_EAUTH/HX_EINVAL with rej filled.
 */
static int register_key_check(const struct coord *c, const struct xport_msg *m,
                              struct proto_reject *rej)
{
    if (!c->curve) {
        return 0;
    }
    const char *key = m->body.reg.curve_key;
    if (!key[0]) {
        rej->reason = PROTO_REJECT_INVALID;
        snprintf(rej->message, sizeof(rej->message),
                 "this coordinator runs CURVE: REGISTER must carry the worker's public key");
        return HX_EINVAL;
    }
    if (strcmp(key, m->peer_key) != 0) {
        rej->reason = PROTO_REJECT_AUTH;
        snprintf(rej->message, sizeof(rej->message),
                 "REGISTER's key differs from the key of its connection");
        return HX_EAUTH;
    }
    if (c->n_worker_keys > 0) {
        for (int i = 0; i < c->n_worker_keys; i++) {
            if (strcmp(c->worker_keys[i].name, m->peer) == 0) {
                if (strcmp(c->worker_keys[i].key, key) == 0) {
                    return 0;
                }
                break;
            }
        }
        rej->reason = PROTO_REJECT_AUTH;
        snprintf(rej->message, sizeof(rej->message),
                 "key %.8s... is not the one the keys file lists for '%s'", key, m->peer);
        return HX_EAUTH;
    }
    return 0;
}

void coord_handle_register(struct coord *c, struct xport_msg *m)
{
    struct proto_reject rej;
    memset(&rej, 0, sizeof(rej));
    struct proto_header h;
    int rc = xport_register_check(m, c->token, &rej);
    if (rc == 0) {
        rc = register_key_check(c, m, &rej);
    }
    int i = coord_node_by_name(c, m->peer);
    if (rc == 0 && i < 0) {
        rej.reason = PROTO_REJECT_INVALID;
        snprintf(rej.message, sizeof(rej.message), "no node named '%s' in the plan", m->peer);
        rc = HX_EINVAL;
    }
    if (rc != 0) {
        log_warn("coordinator: refused worker '%s': %s", m->peer, rej.message);
        coord_view_event(c, m->peer, "refused", "%s", rej.message);
        proto_header_init(&h, PROTO_TYPE_REJECT);
        union proto_body b;
        memset(&b, 0, sizeof(b));
        b.reject = rej;
        struct hx_diag d;
        xport_send_body(c->ctrl, m->peer, &h, &b, &d);
        return;
    }
    struct cnode *n = &c->nodes[i];
    if (n->state == NODE_READY || n->state == NODE_LOADING) {
        coord_node_down(c, i, "registered again: restarted");
    }
    snprintf(n->endpoint, sizeof(n->endpoint), "%s", m->body.reg.endpoint);
    snprintf(n->backend, sizeof(n->backend), "%s", m->body.reg.backend);
    /* a worker from before the device field says only its backend */
    snprintf(n->device, sizeof(n->device), "%s",
             m->body.reg.device[0] ? m->body.reg.device : m->body.reg.backend);
    n->mem_cap_bytes = m->body.reg.mem_bytes;
    snprintf(n->curve_key, sizeof(n->curve_key), "%s", c->curve ? m->body.reg.curve_key : "");
    n->state = NODE_LOADING;
    n->draining = 0;
    n->silent = 0;
    n->left = 0;
    n->joins++;
    xport_live_seen(c->live, n->spec.name, hx_clock_now_us());
    n->last_seen_us = hx_clock_now_us();
    proto_header_init(&h, PROTO_TYPE_REGISTER_ACK);
    union proto_body b;
    memset(&b, 0, sizeof(b));
    b.ack.node = (uint32_t)i;
    b.ack.heartbeat_ms = (uint32_t)c->o.heartbeat_ms;
    coord_send_ctrl(c, i, &h, &b);
    log_info("coordinator: worker %s registered (%s, %s), assigning layers [%d, %d)", n->spec.name,
             n->endpoint, n->device, n->spec.layer_start, n->spec.layer_end);
    coord_view_event(c, n->spec.name, "register", "%s on %s, assigned layers [%d, %d)", n->endpoint,
                     n->device, n->spec.layer_start, n->spec.layer_end);
    coord_send_assign(c, i);
}

void coord_handle_ready(struct coord *c, int i, const struct proto_ready *rd)
{
    struct cnode *n = &c->nodes[i];
    if (n->state != NODE_LOADING) {
        return;
    }
    n->kv_blocks_total = (long)(rd->kv_bytes / coord_node_block_bytes(c, i));
    n->kv_blocks_used = 0;
    n->n_active = 0;
    n->state = NODE_READY;
    n->ready_us = hx_clock_now_us();
    log_info("coordinator: worker %s ready: layers [%u, %u), %ld KV blocks", n->spec.name,
             rd->layer_start, rd->layer_end, n->kv_blocks_total);
    coord_view_event(c, n->spec.name, "ready", "layers [%u, %u), %ld KV blocks", rd->layer_start,
                     rd->layer_end, n->kv_blocks_total);
    /* every live worker (this one included) learns the new peer table */
    for (int k = 0; k < c->n_nodes; k++) {
        if (c->nodes[k].state == NODE_READY) {
            coord_send_assign(c, k);
        }
    }
    coord_sched_sync(c);
}

static void reap(struct coord *c)
{
    char dead[RT_MAX_NODES][PROTO_NAME_MAX + 1];
    size_t n = xport_live_reap(c->live, hx_clock_now_us(), dead, RT_MAX_NODES);
    for (size_t k = 0; k < n && k < RT_MAX_NODES; k++) {
        int i = coord_node_by_name(c, dead[k]);
        if (i >= 0) {
            coord_node_down(c, i, "no heartbeat");
        }
    }
}

/*
 * Heartbeat every registered worker. Besides telling workers we are alive, this detects a
 * worker whose process died at once: the ROUTER (ROUTER_MANDATORY) refuses to send to a
 * peer whose connection is gone, long before its heartbeats are overdue.
 */
void coord_ping_workers(struct coord *c)
{
    for (int i = 0; i < c->n_nodes; i++) {
        if (c->nodes[i].state != NODE_READY && c->nodes[i].state != NODE_LOADING) {
            continue;
        }
        struct proto_header h;
        proto_header_init(&h, PROTO_TYPE_HEARTBEAT);
        union proto_body b;
        memset(&b, 0, sizeof(b));
        b.heartbeat.time_us = hx_clock_now_us();
        h.send_time_us = b.heartbeat.time_us;
        struct hx_diag d;
        if (xport_send_body(c->ctrl, c->nodes[i].spec.name, &h, &b, &d) == HX_ECLOSED) {
            coord_node_down(c, i, "connection closed");
        }
    }
}

/*
 * A READY node unheard for three heartbeat periods is silent: out of the flow (the max-flow is
 * recomputed without it) until it speaks again, its requests left where they are. Without this
 * a hung worker (SIGSTOP, a stuck device) drew nearly every new request before it was declared
 * dead: IWRR charges a route's decode tokens as they come back, so a route that returns
 * nothing looks ever less loaded (bench_churn: the healthy route fell to 35 tokens/s).
 */
static void silence_check(struct coord *c)
{
    int64_t now = hx_clock_now_us();
    int changed = 0;
    for (int i = 0; i < c->n_nodes; i++) {
        struct cnode *n = &c->nodes[i];
        int64_t quiet = now - n->last_seen_us;
        if (n->state == NODE_READY && !n->silent && quiet > 3 * (int64_t)c->o.heartbeat_ms * 1000) {
            n->silent = 1;
            changed = 1;
            log_warn("coordinator: %s silent for %.1f s: routing around it until it speaks (dead "
                     "at %.1f s)",
                     n->spec.name, (double)quiet * 1e-6, c->o.dead_ms * 1e-3);
            coord_view_event(c, n->spec.name, "silent", "unheard for %.1f s: routed around",
                             (double)quiet * 1e-6);
        }
    }
    if (changed) {
        coord_sched_sync(c);
    }
}

void coord_node_heard(struct coord *c, int i)
{
    struct cnode *n = &c->nodes[i];
    n->silent = 0;
    if (n->state == NODE_READY) {
        log_info("coordinator: %s speaks again: back in the flow", n->spec.name);
        coord_view_event(c, n->spec.name, "back", "heard again");
        coord_sched_sync(c);
    }
}

void coord_members_tick(struct coord *c)
{
    silence_check(c);
    reap(c);
    take_drains(c);
    drains_check(c);
}
