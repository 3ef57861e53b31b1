/*
 * xsec.h - CURVE keys and peer admission for xport sockets (docs/protocol.md §8).
 *
 * Every process that runs a CURVE server socket (the coordinator's control ROUTER, each
 * worker's data ROUTER) has one struct xsec: a ZAP handler thread (inproc://zeromq.zap.01 in
 * that process's ZeroMQ context) that admits a client's public key only if it is in the
 * admitted set (or, for the coordinator with a shared secret, any key: REGISTER then checks
 * the secret), and counts what it refuses. It tags each admitted connection with its key
 * (ZAP User-Id), so xport_msg.peer_key tells who sent each message and xsec_peer_check can
 * drop messages from a key that was revoked after its connection was made. Handshakes that
 * fail before ZAP (no key, wrong server key, a plain peer, junk) are counted through a socket
 * monitor.
 *
 * Keys are Z85 strings of PROTO_CURVE_KEY_LEN characters. The pure helpers (SHA-256, key
 * derivation, file parsing, endpoint classification) need no sockets and are thread-safe.
 */
#ifndef HX_RUNTIME_XSEC_H
#define HX_RUNTIME_XSEC_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/proto.h"

struct hx_diag;
struct xport_ctx;
struct xport;

struct xsec_keypair {
    char public_key[PROTO_CURVE_KEY_LEN + 1];
    char secret_key[PROTO_CURVE_KEY_LEN + 1];
};

/* One admitted peer: a node name and its public key. */
struct xsec_peer {
    char name[PROTO_NAME_MAX + 1];
    char key[PROTO_CURVE_KEY_LEN + 1];
};

/* 0 if this libzmq has CURVE, else HX_ENOTSUP with a diag that says what to do. */
int xsec_available(struct hx_diag *diag);

/* A fresh random key pair (zmq_curve_keypair). 0, HX_ENOTSUP or HX_EIO. */
int xsec_keypair_new(struct xsec_keypair *out, struct hx_diag *diag);
/* The key pair of a Z85 secret key. 0, HX_EINVAL (not a key) or HX_ENOTSUP. */
int xsec_keypair_from_secret(const char *secret_key, struct xsec_keypair *out,
                             struct hx_diag *diag);
/*
 * The coordinator's key pair derived from the shared secret: secret key =
 * SHA-256("helix coordinator CURVE key v1\n" || token). Anyone holding the token can compute
 * it, which is the point (workers need nothing else) and the limit (docs/protocol.md §8).
 */
int xsec_keypair_from_token(const char *token, struct xsec_keypair *out, struct hx_diag *diag);

/* SHA-256 (FIPS 180-4) of len bytes. */
void xsec_sha256(const void *data, size_t len, uint8_t out[32]);

/*
 * Read a secret key file: the first line that is not empty or a '#' comment holds a Z85
 * secret key (surrounding blanks ignored). 0, HX_EIO (cannot read) or HX_EPARSE (diag names
 * path:line).
 */
int xsec_key_file_read(const char *path, struct xsec_keypair *out, struct hx_diag *diag);
/*
 * Read a keys file of admitted workers: one "NAME PUBLIC_KEY" per line ('#' comments and
 * blank lines ignored; a name at most once). *out (free with xfree) gets *n entries.
 * 0, HX_EIO or HX_EPARSE (diag names path:line).
 */
int xsec_keys_file_read(const char *path, struct xsec_peer **out, size_t *n, struct hx_diag *diag);

/*
 * 1 if a ZeroMQ endpoint stays on this host: inproc://, ipc://, or tcp:// to 127.0.0.0/8,
 * localhost or [::1]. Decides --curve auto (plain only on loopback).
 */
int xsec_endpoint_is_loopback(const char *endpoint);

/* ---- the per-process authority ------------------------------------------------------------ */

struct xsec;

/*
 * Start the ZAP handler in ctx (one per context; before any CURVE ROUTER of ctx binds).
 * admit_any: admit every client key that completes the handshake (the coordinator with a
 * shared secret); else only keys in the admitted set (xsec_admit_set; empty at first).
 * name is for log lines ("coordinator", a worker's name). 0 or HX_EIO.
 */
int xsec_new(struct xport_ctx *ctx, const char *name, int admit_any, struct xsec **out,
             struct hx_diag *diag);
/* Stop the handler and close its sockets; before xport_ctx_free. NULL is fine. */
void xsec_free(struct xsec *s);

/* Replace the admitted set (copied). Thread-safe; new handshakes see it at once. */
void xsec_admit_set(struct xsec *s, const struct xsec_peer *peers, size_t n);
/* Whether `key` is admitted; the name it was admitted under goes to name (may be NULL). */
int xsec_admitted(struct xsec *s, const char *key, char name[PROTO_NAME_MAX + 1]);

/*
 * Count failed CURVE handshakes on x (a socket monitor read by the handler thread): on a
 * server (is_server) as refused_handshakes, on a client as failed_handshakes. Call on x's
 * thread right after creating x (a handshake cannot complete sooner). 0 or HX_EIO.
 */
int xsec_watch(struct xsec *s, struct xport *x, int is_server, struct hx_diag *diag);

struct xsec_stats {
    uint64_t admitted_keys;      /* handshakes ZAP admitted */
    uint64_t refused_keys;       /* handshakes ZAP refused: key not (or no longer) admitted */
    uint64_t refused_handshakes; /* server side: handshakes that failed before ZAP */
    uint64_t failed_handshakes;  /* client side: our own connections' failed handshakes */
};
void xsec_stats_get(struct xsec *s, struct xsec_stats *out);

/*
 * An xport_peer_check_fn (arg = the struct xsec): accepts a message only if key is admitted
 * under exactly the sender's name. For a worker's data ROUTER.
 */
int xsec_peer_check(void *arg, const char *peer, const char *key, char *why, size_t n);

#endif
