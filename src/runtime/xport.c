/*
 * xport.c - ZeroMQ sockets carrying proto.h messages (see xport.h for the pattern).
 *
 * Invariant: xport_recv hands out only messages that passed proto_msg_decode, whose payload
 * length equals the header's payload_bytes, and (on a ROUTER) whose sender identity is a valid
 * proto name. Everything else is drained frame by frame, counted and logged, and the wait
 * continues; one bad peer can neither crash the process nor desynchronise the frame stream
 * (ZeroMQ delivers multipart messages atomically, so dropping a whole message is enough).
 */
#include "runtime/xport.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "runtime/shape.h"

#define MAX_FRAMES 3 /* identity + header + payload */

struct xport_ctx {
    void *zctx;
};

struct xport {
    void *sock;
    int is_router;
    int is_curve;
    xport_peer_check_fn check;
    void *check_arg;
    char endpoint[PROTO_ENDPOINT_MAX + 1];
    struct xport_stats stats;
    struct xport_shaper *shaper; /* NULL unless HELIX_LINK_SHAPE shapes a link into here */
};

int xport_ctx_new(struct xport_ctx **out, struct hx_diag *d)
{
    *out = NULL;
    void *z = zmq_ctx_new();
    if (!z) {
        return hx_diag_set(d, HX_EIO, "xport: zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    }
    struct xport_ctx *c = xcalloc(1, sizeof(*c));
    c->zctx = z;
    *out = c;
    return HX_OK;
}

void xport_ctx_free(struct xport_ctx *c)
{
    if (!c) {
        return;
    }
    while (zmq_ctx_term(c->zctx) != 0 && zmq_errno() == EINTR) {
    }
    xfree(c);
}

static int zerr(struct hx_diag *d, const char *what)
{
    int e = zmq_errno();
    int code = HX_EIO;
    if (e == EAGAIN) {
        code = HX_ETIMEDOUT;
    } else if (e == EHOSTUNREACH) {
        code = HX_ECLOSED;
    } else if (e == ETERM || e == ENOTSOCK) {
        code = HX_ECLOSED;
    } else if (e == EINVAL || e == EPROTONOSUPPORT || e == ENOCOMPATPROTO) {
        code = HX_EINVAL;
    }
    return hx_diag_set(d, code, "xport: %s: %s", what, zmq_strerror(e));
}

static int setopt_int(void *s, int opt, int v, const char *name, struct hx_diag *d)
{
    if (zmq_setsockopt(s, opt, &v, sizeof(v)) != 0) {
        return zerr(d, name);
    }
    return HX_OK;
}

/* Options common to both socket kinds. */
static int common_opts(void *s, struct hx_diag *d)
{
    int64_t maxmsg = (int64_t)PROTO_MAX_PAYLOAD_BYTES;
    int rc;
    if ((rc = setopt_int(s, ZMQ_LINGER, 100, "ZMQ_LINGER", d)) ||
        (rc = setopt_int(s, ZMQ_SNDTIMEO, XPORT_SEND_TIMEOUT_MS, "ZMQ_SNDTIMEO", d)) ||
        (rc = setopt_int(s, ZMQ_HEARTBEAT_IVL, XPORT_ZMTP_HEARTBEAT_MS, "ZMQ_HEARTBEAT_IVL", d)) ||
        (rc = setopt_int(s, ZMQ_HEARTBEAT_TIMEOUT, XPORT_ZMTP_TIMEOUT_MS, "ZMQ_HEARTBEAT_TIMEOUT",
                         d))) {
        return rc;
    }
    if (zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0) {
        return zerr(d, "ZMQ_MAXMSGSIZE");
    }
    return HX_OK;
}

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > PROTO_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

static void record_endpoint(struct xport *x, const char *fallback)
{
    size_t len = sizeof(x->endpoint);
    if (zmq_getsockopt(x->sock, ZMQ_LAST_ENDPOINT, x->endpoint, &len) != 0 || !x->endpoint[0]) {
        snprintf(x->endpoint, sizeof(x->endpoint), "%s", fallback);
    }
}

static int setopt_key(void *s, int opt, const char *key, const char *name, struct hx_diag *d)
{
    if (!key || strlen(key) != PROTO_CURVE_KEY_LEN) {
        return hx_diag_set(d, HX_EINVAL, "xport: %s is not a %d-character Z85 CURVE key", name,
                           PROTO_CURVE_KEY_LEN);
    }
    if (zmq_setsockopt(s, opt, key, PROTO_CURVE_KEY_LEN) != 0) {
        return zerr(d, name);
    }
    return HX_OK;
}

/* CURVE server (ROUTER) or client (DEALER) options; before bind/connect. */
static int curve_opts(struct xport *x, const struct xport_curve *cv, struct hx_diag *d)
{
    if (!zmq_has("curve")) {
        return hx_diag_set(d, HX_ENOTSUP,
                           "xport: CURVE requested but this libzmq was built without it (no "
                           "libsodium/tweetnacl); use a libzmq with CURVE, or --curve off on "
                           "loopback");
    }
    int rc;
    if ((rc = setopt_key(x->sock, ZMQ_CURVE_PUBLICKEY, cv->public_key, "ZMQ_CURVE_PUBLICKEY", d)) ||
        (rc = setopt_key(x->sock, ZMQ_CURVE_SECRETKEY, cv->secret_key, "ZMQ_CURVE_SECRETKEY", d))) {
        return rc;
    }
    if (x->is_router) {
        rc = setopt_int(x->sock, ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER", d);
        /* the ZAP handler (xsec.c) learns which socket asks from the domain */
        if (rc == 0 && zmq_setsockopt(x->sock, ZMQ_ZAP_DOMAIN, "helix", 5) != 0) {
            rc = zerr(d, "ZMQ_ZAP_DOMAIN");
        }
    } else {
        rc = setopt_key(x->sock, ZMQ_CURVE_SERVERKEY, cv->server_key, "ZMQ_CURVE_SERVERKEY", d);
    }
    if (rc == 0) {
        x->is_curve = 1;
    }
    return rc;
}

int xport_router_bind(struct xport_ctx *c, const char *endpoint, struct xport **out,
                      struct hx_diag *d)
{
    return xport_router_bind_curve(c, endpoint, NULL, out, d);
}

int xport_router_bind_curve(struct xport_ctx *c, const char *endpoint, const struct xport_curve *cv,
                            struct xport **out, struct hx_diag *d)
{
    *out = NULL;
    if (!c || !endpoint) {
        return hx_diag_set(d, HX_EINVAL, "xport: router_bind: NULL argument");
    }
    struct xport *x = xcalloc(1, sizeof(*x));
    x->is_router = 1;
    int rc;
    x->sock = zmq_socket(c->zctx, ZMQ_ROUTER);
    if (!x->sock) {
        rc = zerr(d, "zmq_socket(ROUTER)");
        goto fail;
    }
    if ((rc = common_opts(x->sock, d)) ||
        (rc = setopt_int(x->sock, ZMQ_ROUTER_MANDATORY, 1, "ZMQ_ROUTER_MANDATORY", d)) ||
        (cv && (rc = curve_opts(x, cv, d)))) {
        goto fail;
    }
    if (zmq_bind(x->sock, endpoint) != 0) {
        char what[PROTO_ENDPOINT_MAX + 32];
        snprintf(what, sizeof(what), "bind %s", endpoint);
        rc = zerr(d, what);
        goto fail;
    }
    record_endpoint(x, endpoint);
    *out = x;
    return HX_OK;
fail:
    xport_free(x);
    return rc;
}

int xport_dealer_connect(struct xport_ctx *c, const char *endpoint, const char *identity,
                         unsigned flags, struct xport **out, struct hx_diag *d)
{
    return xport_dealer_connect_curve(c, endpoint, identity, flags, NULL, out, d);
}

int xport_dealer_connect_curve(struct xport_ctx *c, const char *endpoint, const char *identity,
                               unsigned flags, const struct xport_curve *cv, struct xport **out,
                               struct hx_diag *d)
{
    *out = NULL;
    if (!c || !endpoint || !identity) {
        return hx_diag_set(d, HX_EINVAL, "xport: dealer_connect: NULL argument");
    }
    size_t idlen = strlen(identity);
    if (!name_ok(identity, idlen)) {
        return hx_diag_set(d, HX_EINVAL,
                           "xport: identity \"%.64s\" is not a name ([A-Za-z0-9._-]{1,63})",
                           identity);
    }
    struct xport *x = xcalloc(1, sizeof(*x));
    int rc;
    x->sock = zmq_socket(c->zctx, ZMQ_DEALER);
    if (!x->sock) {
        rc = zerr(d, "zmq_socket(DEALER)");
        goto fail;
    }
    if ((rc = common_opts(x->sock, d)) ||
        (rc = setopt_int(x->sock, ZMQ_IMMEDIATE, (flags & XPORT_DEALER_IMMEDIATE) ? 1 : 0,
                         "ZMQ_IMMEDIATE", d)) ||
        (cv && (rc = curve_opts(x, cv, d)))) {
        goto fail;
    }
    if (zmq_setsockopt(x->sock, ZMQ_ROUTING_ID, identity, idlen) != 0) {
        rc = zerr(d, "ZMQ_ROUTING_ID");
        goto fail;
    }
    if (zmq_connect(x->sock, endpoint) != 0) {
        char what[PROTO_ENDPOINT_MAX + 32];
        snprintf(what, sizeof(what), "connect %s", endpoint);
        rc = zerr(d, what);
        goto fail;
    }
    record_endpoint(x, endpoint);
    *out = x;
    return HX_OK;
fail:
    xport_free(x);
    return rc;
}

void xport_free(struct xport *x)
{
    if (!x) {
        return;
    }
    xport_shaper_free(x->shaper);
    if (x->sock) {
        zmq_close(x->sock);
    }
    xfree(x);
}

const char *xport_endpoint(const struct xport *x)
{
    return x->endpoint;
}

void xport_set_peer_check(struct xport *x, xport_peer_check_fn fn, void *arg)
{
    x->check = fn;
    x->check_arg = arg;
}

void *xport_ctx_zmq(struct xport_ctx *c)
{
    return c->zctx;
}

int xport_monitor(struct xport *x, const char *endpoint, int events, struct hx_diag *d)
{
    if (zmq_socket_monitor(x->sock, endpoint, events) != 0) {
        return zerr(d, "zmq_socket_monitor");
    }
    return HX_OK;
}

int xport_set_send_timeout(struct xport *x, int timeout_ms, struct hx_diag *d)
{
    return setopt_int(x->sock, ZMQ_SNDTIMEO, timeout_ms, "ZMQ_SNDTIMEO", d);
}

/* ---- send ------------------------------------------------------------------------------ */

/* Wraps the caller's free callback so a failed send never runs it (libuv's rule). */
struct zc_hint {
    xport_free_fn fn;
    void *hint;
    int cancelled;
};

static void zc_free(void *data, void *hint)
{
    struct zc_hint *z = hint;
    if (!z->cancelled && z->fn) {
        z->fn(data, z->hint);
    }
    xfree(z);
}

static int send_frame(void *sock, const void *buf, size_t len, int more, struct hx_diag *d)
{
    for (;;) {
        if (zmq_send(sock, buf, len, more ? ZMQ_SNDMORE : 0) >= 0) {
            return HX_OK;
        }
        if (zmq_errno() != EINTR) {
            return zerr(d, "send");
        }
    }
}

int xport_send(struct xport *x, const char *peer, const struct proto_header *h, void *payload,
               size_t len, xport_free_fn free_fn, void *hint, struct hx_diag *d)
{
    if (x->is_router != (peer != NULL)) {
        return hx_diag_set(d, HX_EINVAL, "xport: send: %s",
                           x->is_router ? "a ROUTER needs a peer name"
                                        : "a DEALER takes no peer name");
    }
    if (peer && !name_ok(peer, strlen(peer))) {
        return hx_diag_set(d, HX_EINVAL, "xport: send: bad peer name \"%.64s\"", peer);
    }
    if (len && !payload) {
        return hx_diag_set(d, HX_EINVAL, "xport: send: NULL payload of %zu bytes", len);
    }
    if (h->payload_bytes != len) {
        return hx_diag_set(d, HX_EPROTO, "xport: send %s: payload of %zu bytes, header says %llu",
                           proto_type_name(h->type), len, (unsigned long long)h->payload_bytes);
    }
    uint8_t hdr[PROTO_HEADER_BYTES];
    int rc = proto_header_encode(h, hdr, d);
    if (rc) {
        return rc;
    }
    zmq_msg_t body;
    struct zc_hint *z = NULL;
    if (free_fn) {
        z = xmalloc(sizeof(*z));
        z->fn = free_fn;
        z->hint = hint;
        z->cancelled = 0;
        /* zmq asserts data != NULL || size == 0; a zero-length buffer may still be owned. */
        if (zmq_msg_init_data(&body, payload, len, zc_free, z) != 0) {
            xfree(z);
            return zerr(d, "zmq_msg_init_data");
        }
    } else {
        if (zmq_msg_init_size(&body, len) != 0) {
            return zerr(d, "zmq_msg_init_size");
        }
        if (len) {
            memcpy(zmq_msg_data(&body), payload, len);
        }
    }
    if (peer && (rc = send_frame(x->sock, peer, strlen(peer), 1, d))) {
        if (rc == HX_ECLOSED) {
            hx_diag_clear(d);
            rc = hx_diag_set(d, HX_ECLOSED, "xport: peer \"%s\" is not connected", peer);
        }
        goto fail;
    }
    if ((rc = send_frame(x->sock, hdr, sizeof(hdr), 1, d))) {
        goto fail;
    }
    for (;;) {
        if (zmq_msg_send(&body, x->sock, 0) >= 0) {
            x->stats.sent++;
            return HX_OK; /* zmq owns body now */
        }
        if (zmq_errno() != EINTR) {
            rc = zerr(d, "send payload");
            goto fail;
        }
    }
fail:
    if (z) {
        z->cancelled = 1;
    }
    zmq_msg_close(&body); /* runs zc_free synchronously: body never left this thread */
    return rc;
}

static void free_strbuf_data(void *data, void *hint)
{
    (void)hint;
    xfree(data);
}

int xport_send_body(struct xport *x, const char *peer, struct proto_header *h,
                    const union proto_body *body, struct hx_diag *d)
{
    if (!proto_type_has_body(h->type)) {
        return hx_diag_set(d, HX_EINVAL, "xport: send_body: %s has no body",
                           proto_type_name(h->type));
    }
    struct strbuf sb;
    strbuf_init(&sb);
    int rc = proto_body_encode(h->type, body, &sb, d);
    if (rc) {
        strbuf_release(&sb);
        return rc;
    }
    h->dtype = PROTO_DTYPE_BYTES;
    h->payload_bytes = sb.len;
    size_t len = 0;
    char *buf = strbuf_detach(&sb, &len);
    rc = xport_send(x, peer, h, buf, len, free_strbuf_data, NULL, d);
    if (rc) {
        xfree(buf);
    }
    return rc;
}

int xport_send_raw(struct xport *x, const void *const *frames, const size_t *lens, size_t n_frames,
                   struct hx_diag *d)
{
    for (size_t i = 0; i < n_frames; i++) {
        int rc = send_frame(x->sock, frames[i], lens[i], i + 1 < n_frames, d);
        if (rc) {
            return rc;
        }
    }
    return HX_OK;
}

/* ---- receive --------------------------------------------------------------------------- */

static void drop(struct xport *x, const char *peer, const char *why)
{
    x->stats.dropped++;
    snprintf(x->stats.last_drop, sizeof(x->stats.last_drop), "%.255s", why);
    /* First 10 drops, then every 1000th: a flooding peer cannot flood the log. */
    if (x->stats.dropped <= 10 || x->stats.dropped % 1000 == 0) {
        log_warn("xport %s: dropped malformed message from %s (%llu so far): %s", x->endpoint,
                 peer && peer[0] ? peer : "peer", (unsigned long long)x->stats.dropped, why);
    }
}

static void refuse(struct xport *x, const char *peer, const char *why)
{
    x->stats.refused++;
    snprintf(x->stats.last_drop, sizeof(x->stats.last_drop), "%.255s", why);
    if (x->stats.refused <= 10 || x->stats.refused % 1000 == 0) {
        log_warn("xport %s: refused a message from %s (%llu so far): %s", x->endpoint,
                 peer && peer[0] ? peer : "peer", (unsigned long long)x->stats.refused, why);
    }
}

/* Receive one whole multipart message (without blocking), validating it. */
static int recv_one(struct xport *x, struct xport_msg *out, struct hx_diag *d)
{
    zmq_msg_t frames[MAX_FRAMES];
    size_t n = 0;
    int extra = 0;
    int more = 1;
    while (more) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, x->sock, ZMQ_DONTWAIT) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&f);
            if (n == 0 && (e == EAGAIN || e == EINTR)) {
                for (size_t i = 0; i < n; i++) {
                    zmq_msg_close(&frames[i]);
                }
                return HX_ETIMEDOUT; /* nothing there */
            }
            if (e == EINTR) {
                continue;
            }
            for (size_t i = 0; i < n; i++) {
                zmq_msg_close(&frames[i]);
            }
            return zerr(d, "recv");
        }
        more = zmq_msg_more(&f);
        if (n < MAX_FRAMES) {
            frames[n++] = f;
        } else {
            extra++;
            zmq_msg_close(&f);
        }
    }
    size_t want = x->is_router ? 3 : 2;
    char why[512];
    why[0] = '\0';
    const char *peer = "";
    char peerbuf[PROTO_NAME_MAX + 1] = "";
    size_t base = 0;
    if (x->is_router) {
        size_t idlen = zmq_msg_size(&frames[0]);
        const char *id = zmq_msg_data(&frames[0]);
        if (!name_ok(id, idlen)) {
            snprintf(why, sizeof(why), "sender has no valid name identity (%zu bytes)", idlen);
            goto bad;
        }
        memcpy(peerbuf, id, idlen);
        peerbuf[idlen] = '\0';
        peer = peerbuf;
        base = 1;
    }
    char keybuf[PROTO_CURVE_KEY_LEN + 1] = "";
    if (x->is_curve && x->is_router && n > 1) {
        /* xsec's ZAP handler sets the User-Id of a connection to its client's public key */
        const char *uid = zmq_msg_gets(&frames[1], "User-Id");
        if (uid && strlen(uid) == PROTO_CURVE_KEY_LEN) {
            memcpy(keybuf, uid, PROTO_CURVE_KEY_LEN + 1);
        }
    }
    if (x->check && x->check(x->check_arg, peer, keybuf, why, sizeof(why)) != 0) {
        for (size_t i = 0; i < n; i++) {
            zmq_msg_close(&frames[i]);
        }
        memset(out, 0, sizeof(*out));
        refuse(x, peer, why);
        return HX_EPROTO;
    }
    if (n + (size_t)extra != want) {
        snprintf(why, sizeof(why), "%zu frames, expected 2 (header + payload)",
                 n + (size_t)extra - base);
        goto bad;
    }
    struct hx_diag pd = {0};
    memset(out, 0, sizeof(*out));
    if (proto_msg_decode(zmq_msg_data(&frames[base]), zmq_msg_size(&frames[base]),
                         zmq_msg_data(&frames[base + 1]), zmq_msg_size(&frames[base + 1]),
                         &out->hdr, &out->body, &pd) != HX_OK) {
        snprintf(why, sizeof(why), "%s", pd.msg);
        goto bad;
    }
    snprintf(out->peer, sizeof(out->peer), "%s", peer);
    memcpy(out->peer_key, keybuf, sizeof(out->peer_key));
    zmq_msg_t *keep = xmalloc(sizeof(*keep));
    *keep = frames[base + 1];
    out->frame_ = keep;
    out->payload = zmq_msg_data(keep);
    out->payload_len = zmq_msg_size(keep);
    for (size_t i = 0; i < base + 1; i++) {
        zmq_msg_close(&frames[i]);
    }
    x->stats.received++;
    return HX_OK;
bad:
    for (size_t i = 0; i < n; i++) {
        zmq_msg_close(&frames[i]);
    }
    memset(out, 0, sizeof(*out));
    drop(x, peer, why);
    return HX_EPROTO;
}

static int shaped_recv(struct xport *x, int timeout_ms, struct xport_msg *out, struct hx_diag *d);
static int shaped_poll(struct xport *const *xs, size_t n, int timeout_ms, unsigned char *readable,
                       struct hx_diag *d);

int xport_recv(struct xport *x, int timeout_ms, struct xport_msg *out, struct hx_diag *d)
{
    memset(out, 0, sizeof(*out));
    if (x->shaper) {
        return shaped_recv(x, timeout_ms, out, d);
    }
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : hx_clock_now_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        int rc = recv_one(x, out, d);
        if (rc == HX_OK) {
            return HX_OK;
        }
        if (rc == HX_EPROTO) {
            continue; /* dropped; look at the next message */
        }
        if (rc != HX_ETIMEDOUT) {
            return rc;
        }
        long wait_ms = -1;
        if (deadline != INT64_MAX) {
            int64_t left_us = deadline - hx_clock_now_us();
            if (left_us <= 0) {
                return hx_diag_set(d, HX_ETIMEDOUT, "xport %s: no message within %d ms",
                                   x->endpoint, timeout_ms);
            }
            wait_ms = (long)((left_us + 999) / 1000);
        }
        zmq_pollitem_t it = {x->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, wait_ms) < 0 && zmq_errno() != EINTR) {
            return zerr(d, "poll");
        }
    }
}

void xport_msg_release(struct xport_msg *m)
{
    if (!m) {
        return;
    }
    if (m->frame_) {
        zmq_msg_close(m->frame_);
        xfree(m->frame_);
    }
    proto_body_release(m->hdr.type, &m->body);
    memset(m, 0, sizeof(*m));
}

int xport_poll(struct xport *const *xs, size_t n, int timeout_ms, unsigned char *readable,
               struct hx_diag *d)
{
    if (n == 0 || n > 64) {
        return hx_diag_set(d, HX_EINVAL, "xport: poll over %zu sockets (1..64)", n);
    }
    for (size_t i = 0; i < n; i++) {
        if (xs[i]->shaper) {
            return shaped_poll(xs, n, timeout_ms, readable, d);
        }
    }
    zmq_pollitem_t items[64];
    for (size_t i = 0; i < n; i++) {
        items[i] = (zmq_pollitem_t){xs[i]->sock, 0, ZMQ_POLLIN, 0};
    }
    int rc;
    do {
        rc = zmq_poll(items, (int)n, timeout_ms);
    } while (rc < 0 && zmq_errno() == EINTR);
    if (rc < 0) {
        return zerr(d, "poll");
    }
    for (size_t i = 0; i < n; i++) {
        readable[i] = (items[i].revents & ZMQ_POLLIN) ? 1 : 0;
    }
    return rc;
}

void xport_stats_get(const struct xport *x, struct xport_stats *out)
{
    *out = x->stats;
}

/* ---- link shaping (tests and benches only; shape.h) ----------------------------------- */

int xport_set_shape(struct xport *x, const struct xport_shape *table, const char *self,
                    const char *peer, struct hx_diag *d)
{
    if (!self || !name_ok(self, strlen(self)) || (peer && !name_ok(peer, strlen(peer)))) {
        return hx_diag_set(d, HX_EINVAL, "xport: set_self: bad node name");
    }
    if (x->is_router != (peer == NULL)) {
        return hx_diag_set(d, HX_EINVAL, "xport: set_self: %s",
                           x->is_router ? "a ROUTER's peers are named by their identities"
                                        : "a DEALER needs its peer's name");
    }
    xport_shaper_free(x->shaper);
    xport_shaper_new(table, self, peer, &x->shaper);
    if (x->shaper) {
        log_info("xport %s: shaping links into %s (%s)", x->endpoint, self, XPORT_SHAPE_ENV);
    }
    return HX_OK;
}

int xport_set_self(struct xport *x, const char *self, const char *peer, struct hx_diag *d)
{
    const struct xport_shape *table = NULL;
    int rc = xport_shape_env(&table, d);
    return rc ? rc : xport_set_shape(x, table, self, peer, d);
}

/* Move everything ZeroMQ has for x into its shaper, stamped with the time it was taken. */
static int shape_ingest(struct xport *x, struct hx_diag *d)
{
    for (;;) {
        struct xport_msg m;
        int rc = recv_one(x, &m, d);
        if (rc == HX_ETIMEDOUT) {
            return HX_OK;
        }
        if (rc == HX_EPROTO) {
            continue;
        }
        if (rc) {
            return rc;
        }
        size_t bytes = strlen(m.peer) + PROTO_HEADER_BYTES + m.payload_len; /* all frames */
        xport_shaper_push(x->shaper, &m, bytes, hx_clock_now_us());
    }
}

/* ms to wait from now until wake (INT64_MAX: forever), rounded up so a wait never ends early. */
static long wait_ms_until(int64_t wake, int64_t now)
{
    if (wake == INT64_MAX) {
        return -1;
    }
    return wake <= now ? 0 : (long)((wake - now + 999) / 1000);
}

static int shaped_recv(struct xport *x, int timeout_ms, struct xport_msg *out, struct hx_diag *d)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : hx_clock_now_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        int rc = shape_ingest(x, d);
        if (rc) {
            return rc;
        }
        int64_t now = hx_clock_now_us();
        if (xport_shaper_pop(x->shaper, now, out)) {
            return HX_OK;
        }
        if (now >= deadline) {
            return hx_diag_set(d, HX_ETIMEDOUT, "xport %s: no message within %d ms", x->endpoint,
                               timeout_ms);
        }
        int64_t due = xport_shaper_next_due(x->shaper);
        zmq_pollitem_t it = {x->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, wait_ms_until(due < deadline ? due : deadline, now)) < 0 &&
            zmq_errno() != EINTR) {
            return zerr(d, "poll");
        }
    }
}

/* xport_poll where a socket is shaped: readable once a held message is due, not on arrival. */
static int shaped_poll(struct xport *const *xs, size_t n, int timeout_ms, unsigned char *readable,
                       struct hx_diag *d)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : hx_clock_now_us() + (int64_t)timeout_ms * 1000;
    zmq_pollitem_t items[64];
    for (;;) {
        int64_t now = hx_clock_now_us();
        int64_t wake = deadline;
        int n_ready = 0;
        for (size_t i = 0; i < n; i++) {
            readable[i] = 0;
            items[i] = (zmq_pollitem_t){xs[i]->sock, 0, ZMQ_POLLIN, 0};
            if (xs[i]->shaper) {
                int rc = shape_ingest(xs[i], d);
                if (rc) {
                    return rc;
                }
                int64_t due = xport_shaper_next_due(xs[i]->shaper);
                if (due <= now) {
                    readable[i] = 1;
                    n_ready++;
                } else if (due < wake) {
                    wake = due;
                }
            }
        }
        int rc;
        do {
            rc = zmq_poll(items, (int)n, n_ready ? 0 : wait_ms_until(wake, now));
        } while (rc < 0 && zmq_errno() == EINTR);
        if (rc < 0) {
            return zerr(d, "poll");
        }
        for (size_t i = 0; i < n; i++) {
            if (!xs[i]->shaper && (items[i].revents & ZMQ_POLLIN)) {
                readable[i] = 1;
                n_ready++;
            }
        }
        if (n_ready || hx_clock_now_us() >= deadline) {
            return n_ready;
        }
    }
}

/* ---- auth ------------------------------------------------------------------------------ */

int xport_token_equal(const char *expected, const char *presented)
{
    if (!expected || !presented) {
        return 0;
    }
    /*
     * Walk a fixed PROTO_AUTH_MAX + 1 bytes of both, never stopping early: reads past a
     * terminator see 0 (via the `ended` masks), so timing depends on neither content nor length.
     */
    volatile unsigned diff = 0;
    unsigned end_a = 0;
    unsigned end_b = 0;
    for (size_t i = 0; i <= PROTO_AUTH_MAX; i++) {
        unsigned char a = 0;
        unsigned char b = 0;
        if (!end_a) {
            a = (unsigned char)expected[i];
        }
        if (!end_b) {
            b = (unsigned char)presented[i];
        }
        end_a |= (a == 0);
        end_b |= (b == 0);
        diff |= (unsigned)(a ^ b);
    }
    /* Longer than the limit: not a valid token. */
    return diff == 0 && end_a && end_b;
}

/* ---- handshake ------------------------------------------------------------------------- */

int xport_register(struct xport *dealer, const struct proto_register *reg, int timeout_ms,
                   struct proto_register_ack *ack, struct hx_diag *d)
{
    memset(ack, 0, sizeof(*ack));
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_REGISTER);
    h.send_time_us = hx_clock_now_us();
    union proto_body b;
    memset(&b, 0, sizeof(b));
    b.reg = *reg;
    int rc = xport_send_body(dealer, NULL, &h, &b, d);
    if (rc) {
        return rc;
    }
    int64_t deadline = hx_clock_now_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        int64_t left = (deadline - hx_clock_now_us()) / 1000;
        if (left <= 0) {
            return hx_diag_set(d, HX_ETIMEDOUT, "xport: no answer to REGISTER from %s within %d ms",
                               dealer->endpoint, timeout_ms);
        }
        struct xport_msg m;
        rc = xport_recv(dealer, (int)left, &m, d);
        if (rc == HX_ETIMEDOUT) {
            hx_diag_clear(d);
            continue;
        }
        if (rc) {
            return rc;
        }
        if (m.hdr.type == PROTO_TYPE_REGISTER_ACK) {
            *ack = m.body.ack;
            xport_msg_release(&m);
            return HX_OK;
        }
        if (m.hdr.type == PROTO_TYPE_REJECT) {
            int code;
            switch (m.body.reject.reason) {
            case PROTO_REJECT_AUTH:
                code = HX_EAUTH;
                break;
            case PROTO_REJECT_VERSION:
                code = HX_EPROTO;
                break;
            case PROTO_REJECT_NAME_TAKEN:
            case PROTO_REJECT_FULL:
                code = HX_EFULL;
                break;
            default:
                code = HX_EINVAL;
                break;
            }
            rc = hx_diag_set(d, code, "xport: coordinator %s rejected worker \"%s\": %s",
                             dealer->endpoint, reg->name, m.body.reject.message);
            xport_msg_release(&m);
            return rc;
        }
        log_warn("xport %s: ignoring %s while waiting for REGISTER_ACK", dealer->endpoint,
                 proto_type_name(m.hdr.type));
        xport_msg_release(&m);
    }
}

int xport_register_check(const struct xport_msg *msg, const char *expected_token,
                         struct proto_reject *reject)
{
    memset(reject, 0, sizeof(*reject));
    if (msg->hdr.type != PROTO_TYPE_REGISTER) {
        reject->reason = PROTO_REJECT_INVALID;
        snprintf(reject->message, sizeof(reject->message), "expected REGISTER, got %s",
                 proto_type_name(msg->hdr.type));
        return HX_EINVAL;
    }
    /* Compare the secret first and always, so timing does not reveal the identity check. */
    int token_ok = xport_token_equal(expected_token, msg->body.reg.token);
    if (!token_ok) {
        reject->reason = PROTO_REJECT_AUTH;
        snprintf(reject->message, sizeof(reject->message),
                 "authentication failed: wrong shared secret (--token / HELIX_TOKEN)");
        return HX_EAUTH;
    }
    if (strcmp(msg->peer, msg->body.reg.name) != 0) {
        reject->reason = PROTO_REJECT_INVALID;
        snprintf(reject->message, sizeof(reject->message),
                 "worker name \"%s\" differs from its connection identity \"%s\"",
                 msg->body.reg.name, msg->peer);
        return HX_EINVAL;
    }
    return HX_OK;
}

/* ---- liveness -------------------------------------------------------------------------- */

struct live_entry {
    char name[PROTO_NAME_MAX + 1];
    int64_t last_us;
};

struct xport_live {
    int64_t timeout_us;
    struct live_entry *v;
    size_t n;
    size_t cap;
};

void xport_live_new(int64_t timeout_us, struct xport_live **out)
{
    struct xport_live *l = xcalloc(1, sizeof(*l));
    l->timeout_us = timeout_us > 0 ? timeout_us : 1;
    *out = l;
}

void xport_live_free(struct xport_live *l)
{
    if (!l) {
        return;
    }
    xfree(l->v);
    xfree(l);
}

static long live_find(const struct xport_live *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i].name, name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

void xport_live_seen(struct xport_live *l, const char *name, int64_t now_us)
{
    long i = live_find(l, name);
    if (i >= 0) {
        if (now_us > l->v[i].last_us) {
            l->v[i].last_us = now_us; /* time never goes backwards for a peer */
        }
        return;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    snprintf(l->v[l->n].name, sizeof(l->v[l->n].name), "%s", name);
    l->v[l->n].last_us = now_us;
    l->n++;
}

int xport_live_forget(struct xport_live *l, const char *name)
{
    long i = live_find(l, name);
    if (i < 0) {
        return 0;
    }
    l->v[i] = l->v[l->n - 1];
    l->n--;
    return 1;
}

int xport_live_alive(const struct xport_live *l, const char *name, int64_t now_us)
{
    long i = live_find(l, name);
    return i >= 0 && now_us - l->v[i].last_us <= l->timeout_us;
}

size_t xport_live_count(const struct xport_live *l)
{
    return l->n;
}

size_t xport_live_reap(struct xport_live *l, int64_t now_us, char (*dead)[PROTO_NAME_MAX + 1],
                       size_t max)
{
    size_t n_dead = 0;
    size_t i = 0;
    while (i < l->n) {
        if (now_us - l->v[i].last_us > l->timeout_us) {
            if (n_dead < max && dead) {
                memcpy(dead[n_dead], l->v[i].name, sizeof(dead[n_dead]));
            }
            n_dead++;
            l->v[i] = l->v[l->n - 1];
            l->n--;
        } else {
            i++;
        }
    }
    return n_dead;
}

int64_t xport_live_next_deadline(const struct xport_live *l)
{
    int64_t best = INT64_MAX;
    for (size_t i = 0; i < l->n; i++) {
        int64_t dl = l->v[i].last_us + l->timeout_us;
        if (dl < best) {
            best = dl;
        }
    }
    return best;
}
