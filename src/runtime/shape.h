/*
 * shape.h - per-link rate and delay shaping for the transport, for tests and benches only
 * (docs/serving.md, "Link shaping"): one host stands in for a cluster whose links have the
 * bandwidth and latency of a cluster file, without `tc`.
 *
 * HELIX_LINK_SHAPE=FILE turns it on (read once per process). FILE has one link per line,
 *     FROM TO BANDWIDTH LATENCY
 * FROM and TO are node names ([A-Za-z0-9._-]{1,63}) or "coordinator"; BANDWIDTH is bytes/s
 * as a plain number, bits/s with a suffix bps, kbps, mbps, gbps or tbps (decimal, any case),
 * or "inf" (no rate limit); LATENCY is seconds as a plain number, or with a suffix s, ms or
 * us. '#' starts a comment; blank lines are skipped; a link may be given once.
 *
 * The link is modelled at the receiver, so senders never block and the wire is unchanged:
 * a message of B bytes (all frames) that arrives at `now` from a shaped peer P gets
 * free_at[P] = max(now, free_at[P]) + B / bandwidth and is delivered at free_at[P] + latency.
 * Messages of one peer keep their order; those of unshaped peers are due when they arrive.
 * The shaper is pure (time is injected); xport.c feeds it and polls on its next due time.
 */
#ifndef HX_RUNTIME_SHAPE_H
#define HX_RUNTIME_SHAPE_H

#include <stddef.h>
#include <stdint.h>

struct hx_diag;
struct xport_msg;
struct xport_shape;
struct xport_shaper;

/* The name that stands for the coordinator (source and sink) in a shape file. */
#define XPORT_SHAPE_COORDINATOR "coordinator"
/* The environment variable that names the shape file. */
#define XPORT_SHAPE_ENV "HELIX_LINK_SHAPE"

/* ---- the shape file ---------------------------------------------------------------------- */

/*
 * Parse a shape file held in text[0..len) (need not be NUL-terminated); `file` names it in
 * errors. Returns 0 with *out set (free with xport_shape_free), or HX_EPARSE with diag
 * "FILE:LINE: FIELD: what is wrong" (FIELD is FROM, TO, BANDWIDTH or LATENCY) and *out NULL.
 * A file without links parses to an empty table.
 */
int xport_shape_parse(const char *text, size_t len, const char *file, struct xport_shape **out,
                      struct hx_diag *diag);
/* Read and parse the file at path. HX_EIO when it cannot be read; else as xport_shape_parse. */
int xport_shape_load(const char *path, struct xport_shape **out, struct hx_diag *diag);
/* NULL is fine. */
void xport_shape_free(struct xport_shape *s);

/* Number of links in s. */
size_t xport_shape_count(const struct xport_shape *s);
/*
 * The link from -> to: 1 with *bytes_per_s (0 = no rate limit) and *latency_s filled, or 0
 * when the file does not shape it (then both are 0).
 */
int xport_shape_link(const struct xport_shape *s, const char *from, const char *to,
                     double *bytes_per_s, double *latency_s);

/*
 * The process's table: on the first call (thread-safe) HELIX_LINK_SHAPE is read and its
 * file loaded; later calls return the same result. Unset or empty: 0 with *out NULL (no
 * shaping). A bad file: its error (HX_EIO / HX_EPARSE, diag naming FILE:LINE:field) on every
 * call, so no socket can run unshaped when shaping was asked for. The table lives until exit.
 */
int xport_shape_env(const struct xport_shape **out, struct hx_diag *diag);

/* ---- the receive-side shaper of one socket ----------------------------------------------- */

/*
 * A shaper for the socket of node `self` whose inbound links `table` describes (borrowed:
 * must outlive the shaper). `peer` is the one node at the other end of a DEALER (every
 * message is then from it), NULL on a ROUTER (messages carry their sender's name). *out is
 * NULL when no link of the table ends at self (from peer, on a DEALER): nothing to shape.
 */
void xport_shaper_new(const struct xport_shape *table, const char *self, const char *peer,
                      struct xport_shaper **out);
/* Releases every message still held. NULL is fine. */
void xport_shaper_free(struct xport_shaper *s);

/*
 * Hold m (takes ownership of its frames; *m is zeroed), which arrived at now_us and was
 * `bytes` long on the wire, until it is due. Its sender is m->peer, or the shaper's peer.
 */
void xport_shaper_push(struct xport_shaper *s, struct xport_msg *m, size_t bytes, int64_t now_us);
/*
 * Move the earliest message due at now_us into *out (the caller releases it with
 * xport_msg_release): 1, or 0 when none is due yet. Messages of one peer leave in order.
 */
int xport_shaper_pop(struct xport_shaper *s, int64_t now_us, struct xport_msg *out);
/* When the earliest held message is due (monotonic microseconds), INT64_MAX if none held. */
int64_t xport_shaper_next_due(const struct xport_shaper *s);
/* Number of messages held. */
size_t xport_shaper_held(const struct xport_shaper *s);

#endif
