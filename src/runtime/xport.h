/*
 * xport.h - a thin ZeroMQ transport for proto.h messages.
 *
 * Pattern (docs/protocol.md explains why):
 *   control plane: the coordinator binds one ROUTER; each worker connects one DEALER whose
 *     routing identity is its name, so the coordinator addresses workers by name, never by IP;
 *   data plane: each worker binds one ROUTER for activations and connects one DEALER (identity
 *     = its own name) to each successor it was told about in ASSIGN. The first hop's input and
 *     the last hop's TOKEN travel over the control pair.
 * Every message is 2 frames, header + payload (ROUTER sockets add the identity frame in front);
 * payloads are sent zero-copy (zmq_msg_init_data with a free callback) and received zero-copy
 * (the payload pointer stays valid until xport_msg_release). Malformed input (wrong frame
 * count, bad header, payload size that disagrees with the header, bad body, nameless peer)
 * is logged, counted and dropped; xport_recv then keeps waiting for the next good message.
 *
 * Threading: a struct xport belongs to one thread at a time (ZeroMQ sockets are not
 * thread-safe); an xport_ctx may be shared by all threads. The liveness tracker and the token
 * comparison are pure and need no sockets.
 */
#ifndef HX_RUNTIME_XPORT_H
#define HX_RUNTIME_XPORT_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/proto.h"

struct hx_diag;
struct xport_ctx;
struct xport;

/* Defaults (each overridable per socket where noted). */
#define XPORT_SEND_TIMEOUT_MS 2000   /* a blocked send fails with HX_ETIMEDOUT after this */
#define XPORT_ZMTP_HEARTBEAT_MS 1000 /* transport-level pings, so dead TCP peers are reaped */
#define XPORT_ZMTP_TIMEOUT_MS 5000

/* Create/free the ZeroMQ context (one per process; inproc:// endpoints need the same one). */
int xport_ctx_new(struct xport_ctx **out, struct hx_diag *diag);
/* Frees the context; every xport made from it must have been freed. NULL is fine. */
void xport_ctx_free(struct xport_ctx *ctx);

/*
 * Bind a ROUTER at endpoint ("tcp://127.0.0.1:*" picks an ephemeral port; see
 * xport_endpoint). Incoming messages carry the sender's identity in msg->peer; senders
 * without a valid name identity are dropped. Sending to a peer that is not connected fails
 * with HX_ECLOSED (ROUTER_MANDATORY), never silently.
 */
int xport_router_bind(struct xport_ctx *ctx, const char *endpoint, struct xport **out,
                      struct hx_diag *diag);

enum xport_dealer_flags {
    /*
     * Queue messages only to a completed connection: a send to a peer that is down fails
     * (HX_ETIMEDOUT after the send timeout) instead of queueing activations into the void.
     * Use for the data plane; leave off for the control DEALER so REGISTER can be sent
     * before the coordinator is up.
     */
    XPORT_DEALER_IMMEDIATE = 1 << 0,
};

/*
 * Connect a DEALER to endpoint with routing identity `identity` (a proto name:
 * [A-Za-z0-9._-]{1,63}). `flags` is a set of enum xport_dealer_flags.
 */
int xport_dealer_connect(struct xport_ctx *ctx, const char *endpoint, const char *identity,
                         unsigned flags, struct xport **out, struct hx_diag *diag);

/*
 * ZeroMQ CURVE for one socket (xsec.h makes the keys and runs the ZAP handler that decides
 * which client keys a server admits). Keys are Z85 strings of PROTO_CURVE_KEY_LEN characters.
 * A ROUTER with curve is a CURVE server: it needs a ZAP handler in its context (xsec_new)
 * before it binds, or libzmq would admit every client key. A DEALER with curve is a CURVE
 * client of the server whose public key is server_key.
 */
struct xport_curve {
    const char *public_key; /* this socket's key pair */
    const char *secret_key;
    const char *server_key; /* DEALER only: the ROUTER's public key */
};

/*
 * xport_router_bind / xport_dealer_connect with CURVE (curve == NULL: plain, exactly those).
 * HX_ENOTSUP (diag says so) when libzmq was built without CURVE, HX_EINVAL for a bad key.
 * Messages received on a CURVE ROUTER carry the sender's public key in msg->peer_key.
 */
int xport_router_bind_curve(struct xport_ctx *ctx, const char *endpoint,
                            const struct xport_curve *curve, struct xport **out,
                            struct hx_diag *diag);
int xport_dealer_connect_curve(struct xport_ctx *ctx, const char *endpoint, const char *identity,
                               unsigned flags, const struct xport_curve *curve, struct xport **out,
                               struct hx_diag *diag);

/*
 * A check of each message's sender on a ROUTER, run after its identity frame is read and
 * before anything else is decoded: peer is its name, key its CURVE public key ("" on a plain
 * socket). Return 0 to accept, or nonzero with a reason in why (n bytes): the message is then
 * dropped, counted in xport_stats.refused and logged (rate-limited like malformed drops).
 * Runs on the thread calling xport_recv. fn == NULL removes the check.
 */
typedef int (*xport_peer_check_fn)(void *arg, const char *peer, const char *key, char *why,
                                   size_t n);
void xport_set_peer_check(struct xport *x, xport_peer_check_fn fn, void *arg);

/* For xsec.c only: the ZeroMQ context, and zmq_socket_monitor(x's socket, endpoint, events). */
void *xport_ctx_zmq(struct xport_ctx *ctx);
int xport_monitor(struct xport *x, const char *endpoint, int events, struct hx_diag *diag);

/* Close the socket (pending outgoing messages are dropped after 100 ms). NULL is fine. */
void xport_free(struct xport *x);

/* The endpoint actually bound/connected (wildcard ports resolved). Owned by x. */
const char *xport_endpoint(const struct xport *x);

/* Override the send timeout (ms; -1 blocks forever, 0 never blocks). */
int xport_set_send_timeout(struct xport *x, int timeout_ms, struct hx_diag *diag);

/* Called once the transport is done with a zero-copy payload; may run on a ZeroMQ thread. */
typedef void (*xport_free_fn)(void *data, void *hint);

/*
 * Send h (validated and encoded) and a payload of len bytes as one 2-frame message.
 * `peer` is the destination's name on a ROUTER and must be NULL on a DEALER.
 * h->payload_bytes must equal len.
 * Ownership: with free_fn == NULL the payload is copied and stays the caller's. With free_fn,
 * the payload is sent zero-copy: on success the transport owns it and calls
 * free_fn(payload, hint) exactly once when done (possibly from another thread); on failure
 * free_fn is never called and the payload stays the caller's.
 * Returns 0, HX_EPROTO (bad header), HX_EINVAL (peer misuse), HX_ECLOSED (peer not
 * connected), HX_ETIMEDOUT (send timeout) or HX_EIO.
 */
int xport_send(struct xport *x, const char *peer, const struct proto_header *h, void *payload,
               size_t len, xport_free_fn free_fn, void *hint, struct hx_diag *diag);

/*
 * Send a control message: encode body for h->type, set h->dtype/payload_bytes, and send.
 * h is updated in place. Same returns as xport_send.
 */
int xport_send_body(struct xport *x, const char *peer, struct proto_header *h,
                    const union proto_body *body, struct hx_diag *diag);

/*
 * Send arbitrary frames, unvalidated (tests and fault injection only: this is how a
 * malformed peer is simulated). On a ROUTER, frames[0] must be the destination identity.
 */
int xport_send_raw(struct xport *x, const void *const *frames, const size_t *lens, size_t n_frames,
                   struct hx_diag *diag);

/* A received, validated message. */
struct xport_msg {
    struct proto_header hdr;
    union proto_body body;                  /* decoded iff proto_type_has_body(hdr.type) */
    char peer[PROTO_NAME_MAX + 1];          /* sender's identity on a ROUTER; "" on a DEALER */
    char peer_key[PROTO_CURVE_KEY_LEN + 1]; /* sender's CURVE key on a CURVE ROUTER, else "" */
    const void *payload;                    /* zero-copy; valid until xport_msg_release */
    size_t payload_len;                     /* == hdr.payload_bytes */
    void *frame_;                           /* private: the payload frame */
};

/*
 * Wait up to timeout_ms (-1 = forever, 0 = poll once) for the next valid message. Malformed
 * messages are dropped (logged at WARN, counted in stats) and the wait goes on with the time
 * left. Returns 0 with *out filled (release it with xport_msg_release), HX_ETIMEDOUT,
 * HX_ECLOSED (context terminated) or HX_EIO.
 */
int xport_recv(struct xport *x, int timeout_ms, struct xport_msg *out, struct hx_diag *diag);

/* Free a received message's payload frame and body. Safe on a zeroed or released msg. */
void xport_msg_release(struct xport_msg *m);

/*
 * Wait until at least one of xs[0..n) has input, up to timeout_ms (-1 = forever).
 * readable[i] is set to 1 or 0. Returns the number of readable sockets (0 on timeout) or a
 * negative HX_E* code. A readable socket may still yield HX_ETIMEDOUT from xport_recv(.., 0)
 * if all it had was malformed.
 */
int xport_poll(struct xport *const *xs, size_t n, int timeout_ms, unsigned char *readable,
               struct hx_diag *diag);

/*
 * Link shaping (tests and benches only; runtime/shape.h, docs/serving.md "Link shaping").
 * Tell x which node it belongs to: `self` is a node name or "coordinator"; on a DEALER,
 * `peer` names the one node at the other end (a worker's control DEALER: "coordinator"); on
 * a ROUTER it must be NULL (senders are named by their identities). When HELIX_LINK_SHAPE
 * names a file (read once per process), each message on a link PEER -> self that the file
 * shapes is held until it is due: xport_recv returns it and xport_poll reports x readable
 * only then. Unset: nothing changes. Call before receiving on x (held messages are dropped).
 * Returns 0, HX_EINVAL (bad names, or peer given on a ROUTER / missing on a DEALER), or the
 * file's error (HX_EIO, HX_EPARSE; diag names FILE:LINE:FIELD): the caller must then fail,
 * never run unshaped.
 */
int xport_set_self(struct xport *x, const char *self, const char *peer, struct hx_diag *diag);

struct xport_shape;
/* As xport_set_self with an explicit table (borrowed: must outlive x; NULL: no shaping). */
int xport_set_shape(struct xport *x, const struct xport_shape *table, const char *self,
                    const char *peer, struct hx_diag *diag);

struct xport_stats {
    uint64_t sent;       /* messages sent */
    uint64_t received;   /* valid messages returned by xport_recv */
    uint64_t dropped;    /* malformed messages dropped */
    uint64_t refused;    /* messages the peer check refused (xport_set_peer_check) */
    char last_drop[256]; /* why the last one was dropped */
};

void xport_stats_get(const struct xport *x, struct xport_stats *out);

/*
 * Constant-time comparison of two secrets (NUL-terminated, up to PROTO_AUTH_MAX bytes are
 * considered): the time taken depends on neither content nor where they differ. Returns 1 if
 * equal, 0 otherwise (also when either is NULL or longer than PROTO_AUTH_MAX).
 */
int xport_token_equal(const char *expected, const char *presented);

/* ---- registration handshake ------------------------------------------------------------- */

/*
 * Worker side: send REGISTER over the control DEALER and wait up to timeout_ms for the
 * answer. Returns 0 with *ack filled; on REJECT a diag with the coordinator's message and
 * HX_EAUTH (wrong token), HX_EPROTO (version), HX_EFULL (name taken / no room) or HX_EINVAL;
 * HX_ETIMEDOUT if nobody answers. Other messages arriving first are dropped (logged).
 */
int xport_register(struct xport *dealer, const struct proto_register *reg, int timeout_ms,
                   struct proto_register_ack *ack, struct hx_diag *diag);

/*
 * Coordinator side: check a REGISTER received from `peer` (msg->peer) against the expected
 * shared secret (compared in constant time) and the identity rule (the name in the body must
 * equal the routing identity). Returns 0, or HX_EAUTH / HX_EINVAL with *reject filled, ready
 * to send with xport_send_body.
 */
int xport_register_check(const struct xport_msg *msg, const char *expected_token,
                         struct proto_reject *reject);

/* ---- liveness (pure logic, no sockets, time injected) ----------------------------------- */

struct xport_live;

/* A tracker in which a peer is dead once timeout_us passes without xport_live_seen. */
void xport_live_new(int64_t timeout_us, struct xport_live **out);
void xport_live_free(struct xport_live *l);

/* Record that `name` was heard from at now_us (adds it if new). */
void xport_live_seen(struct xport_live *l, const char *name, int64_t now_us);
/* Stop tracking `name`. Returns 1 if it was tracked. */
int xport_live_forget(struct xport_live *l, const char *name);
/* 1 if `name` is tracked and heard from within the timeout at now_us. */
int xport_live_alive(const struct xport_live *l, const char *name, int64_t now_us);
/* Number of tracked peers. */
size_t xport_live_count(const struct xport_live *l);
/*
 * Remove every peer whose deadline has passed at now_us and copy up to max of their names
 * into dead[] (each reported exactly once). Returns how many were removed (may exceed max:
 * the extra names are not copied).
 */
size_t xport_live_reap(struct xport_live *l, int64_t now_us, char (*dead)[PROTO_NAME_MAX + 1],
                       size_t max);
/* The earliest deadline among tracked peers, or INT64_MAX if none (for poll timeouts). */
int64_t xport_live_next_deadline(const struct xport_live *l);

#endif
