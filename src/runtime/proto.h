/*
 * proto.h - helix's versioned binary wire format (coordinator <-> workers, worker -> worker).
 *
 * Every message is two ZeroMQ frames: a fixed-size header frame (PROTO_HEADER_BYTES, explicit
 * little-endian fields at fixed offsets, no packed structs) and a payload frame (possibly
 * empty). Control messages carry a small length-prefixed binary body in the payload; forward
 * messages (PREFILL/DECODE) carry token ids or activations, described entirely by the header
 * so a receiver can check the payload size before touching it. docs/protocol.md has the
 * offset table and the versioning rule: any layout change bumps PROTO_VERSION, and a peer
 * speaking another version is rejected at REGISTER.
 *
 * Every decoder validates everything (lengths, enum ranges, hop counts, route contiguity,
 * payload size vs header, string charsets) and returns HX_EPROTO with a diag message on bad
 * input; encoders run the same checks so we never send what a peer would reject.
 * All functions are pure and thread-safe.
 */
#ifndef HX_RUNTIME_PROTO_H
#define HX_RUNTIME_PROTO_H

#include <stddef.h>
#include <stdint.h>

struct hx_diag;
struct strbuf;

#define PROTO_MAGIC 0x50584C48u /* bytes "HLXP" on the wire */
#define PROTO_VERSION 2 /* 2: CURVE keys in REGISTER/ASSIGN, refusal counters in HEARTBEAT */
#define PROTO_HEADER_BYTES 264
#define PROTO_MAX_HOPS 32

#define PROTO_MAX_TOKENS 65536               /* tokens in one forward message */
#define PROTO_MAX_HIDDEN 65536               /* activation width */
#define PROTO_MAX_PAYLOAD_BYTES (1ull << 32) /* 4 GiB: any forward payload */
#define PROTO_MAX_BODY_BYTES (1u << 20)      /* 1 MiB: any control body */
#define PROTO_MAX_TEMPERATURE 100.0f

/* String field limits (bytes, excluding the C terminator). */
#define PROTO_NAME_MAX 63
#define PROTO_AUTH_MAX 255
#define PROTO_BACKEND_MAX 15
#define PROTO_ENDPOINT_MAX 255
#define PROTO_TEXT_MAX 1023
#define PROTO_DEVICE_MAX 127
#define PROTO_MAX_PEERS 256
#define PROTO_CURVE_KEY_LEN 40 /* a CURVE public key in Z85 (32 bytes); "" = plain mode */

enum proto_type {
    PROTO_TYPE_INVALID = 0,
    PROTO_TYPE_REGISTER = 1,     /* worker -> coord: name, auth token, capabilities */
    PROTO_TYPE_REGISTER_ACK = 2, /* coord -> worker: node index, heartbeat period */
    PROTO_TYPE_REJECT = 3,       /* coord -> worker: reason; the worker must exit */
    PROTO_TYPE_ASSIGN = 4,       /* coord -> worker: layer range, model, peer table */
    PROTO_TYPE_READY = 5,        /* worker -> coord: weights loaded, KV capacity */
    PROTO_TYPE_HEARTBEAT = 6,    /* both ways: liveness and load */
    PROTO_TYPE_PREFILL = 7,      /* forward: a prompt's tokens/activations along a route */
    PROTO_TYPE_DECODE = 8,       /* forward: one decode step along a route */
    PROTO_TYPE_TOKEN = 9,        /* last stage -> coord: the sampled token */
    PROTO_TYPE_RELEASE = 10,     /* coord -> worker: free a request's KV */
    PROTO_TYPE_ERROR = 11,       /* either way: a request (or the node) failed */
    PROTO_TYPE_SHUTDOWN = 12,    /* coord -> worker: exit cleanly */
    PROTO_TYPE_DRAIN = 13,       /* worker -> coord: route nothing new to me; I leave when my
                                    requests are done (SHUTDOWN "drained") */
    PROTO_TYPE_COUNT_
};

enum proto_dtype {
    PROTO_DTYPE_NONE = 0,  /* empty payload */
    PROTO_DTYPE_BYTES = 1, /* a control body (see the proto_* body structs) */
    PROTO_DTYPE_I32 = 2,   /* token ids */
    PROTO_DTYPE_F32 = 3,   /* activations */
    PROTO_DTYPE_F16 = 4,
    PROTO_DTYPE_BF16 = 5,
    PROTO_DTYPE_COUNT_
};

enum proto_flags {
    PROTO_FLAG_HAS_LOGPROB = 1 << 0, /* TOKEN only: the body's logprob is meaningful */
    PROTO_FLAGS_KNOWN_ = PROTO_FLAG_HAS_LOGPROB
};

/* One stage of a route: node `node` runs layers [layer_start, layer_end). */
struct proto_hop {
    uint16_t node;
    uint16_t layer_start;
    uint16_t layer_end;
};

/*
 * The decoded header. Fields that a message type does not use must be zero (the route for
 * control messages, the sampling fields outside PREFILL/DECODE are not checked).
 */
struct proto_header {
    uint16_t version;    /* PROTO_VERSION; set by proto_header_init */
    uint8_t type;        /* enum proto_type */
    uint8_t flags;       /* enum proto_flags */
    uint64_t request_id; /* 0 = not about a request; required for forward/TOKEN/RELEASE */
    uint32_t seq;        /* decode step (0 = prefill), or a control sequence number */
    uint32_t n_tokens;   /* tokens in this forward message */
    uint32_t position;   /* position of the first of those tokens in the sequence */
    uint32_t hidden;     /* activation width (0 for token ids) */
    uint64_t payload_bytes;
    int64_t send_time_us; /* sender's clock, for latency accounting only */
    float temperature;    /* sampling (used by the last stage): >= 0, 0 = greedy */
    float top_p;          /* [0, 1] */
    uint64_t seed;
    uint8_t dtype;   /* enum proto_dtype */
    uint8_t n_hops;  /* route length, <= PROTO_MAX_HOPS */
    uint8_t cur_hop; /* index of the hop that must process this message */
    struct proto_hop hops[PROTO_MAX_HOPS];
};

/* ---- control bodies (fixed-capacity strings: no allocation except the ASSIGN peers) ---- */

struct proto_register {
    char name[PROTO_NAME_MAX + 1];         /* [A-Za-z0-9._-]{1,63}; the ZeroMQ identity */
    char token[PROTO_AUTH_MAX + 1];        /* shared secret, printable ASCII, 1..255 */
    char backend[PROTO_BACKEND_MAX + 1];   /* [a-z0-9_]{1,15}: "cpu", "cuda" */
    char endpoint[PROTO_ENDPOINT_MAX + 1]; /* where this worker's data socket listens */
    uint32_t threads;
    uint64_t kv_bytes;  /* memory the worker can give to KV cache */
    uint64_t mem_bytes; /* total memory for weights + KV (the --mem-bytes cap; 0: none) */
    /* v2: the worker's CURVE public key, Z85 (PROTO_CURVE_KEY_LEN chars), which must be the
     * key its control connection was made with; "" in plain mode. */
    char curve_key[PROTO_CURVE_KEY_LEN + 1];
    /* Optional trailing field: what the worker computes on, printable ASCII (0x20..0x7e),
     * 1..127 bytes ("cpu", "cuda:0 NVIDIA H100 80GB HBM3"). "" = absent: not on the wire
     * (a body without it is a worker from before the field). */
    char device[PROTO_DEVICE_MAX + 1];
};

struct proto_register_ack {
    uint32_t node;         /* the node index the coordinator assigned */
    uint32_t heartbeat_ms; /* send a HEARTBEAT at least this often */
};

enum proto_reject_reason {
    PROTO_REJECT_AUTH = 1,       /* wrong shared secret */
    PROTO_REJECT_VERSION = 2,    /* wire version mismatch */
    PROTO_REJECT_NAME_TAKEN = 3, /* a live worker already has this name */
    PROTO_REJECT_INVALID = 4,    /* malformed or unacceptable registration */
    PROTO_REJECT_FULL = 5,       /* the coordinator takes no more workers */
    PROTO_REJECT_COUNT_
};

struct proto_reject {
    uint32_t reason; /* enum proto_reject_reason */
    char message[PROTO_TEXT_MAX + 1];
};

struct proto_peer {
    char name[PROTO_NAME_MAX + 1];
    char endpoint[PROTO_ENDPOINT_MAX + 1];
    uint32_t node;
    /* v2: the peer's CURVE public key (Z85) as the coordinator admitted it: the server key to
     * connect to its data socket, and the only key its data socket accepts from it. "" in
     * plain mode. The peer table is the admitted set: a worker missing from it is revoked. */
    char curve_key[PROTO_CURVE_KEY_LEN + 1];
};

struct proto_assign {
    uint32_t node;
    uint32_t layer_start; /* this worker runs [layer_start, layer_end) of n_layers */
    uint32_t layer_end;
    uint32_t n_layers;
    char model[PROTO_TEXT_MAX + 1]; /* model path or id, non-empty */
    uint32_t n_peers;               /* <= PROTO_MAX_PEERS */
    struct proto_peer *peers;       /* encode: borrowed; decode: owned, free with
                                       proto_body_release */
};

struct proto_ready {
    uint32_t node;
    uint32_t layer_start;
    uint32_t layer_end;
    uint64_t kv_bytes; /* KV capacity after loading weights */
};

struct proto_heartbeat {
    int64_t time_us; /* sender's monotonic clock */
    uint32_t n_active;
    uint64_t kv_used_bytes;
    uint64_t kv_total_bytes;
    /* v2: peers this node refused since it started (worker -> coordinator; 0 the other way):
     * failed CURVE handshakes, handshakes whose key was not admitted, messages over a valid
     * handshake whose key is no longer (or never was) admitted for the sender's name, and
     * malformed messages dropped. */
    uint64_t refused_handshakes;
    uint64_t refused_keys;
    uint64_t refused_messages;
    uint64_t dropped_malformed;
    char device[PROTO_DEVICE_MAX + 1]; /* optional trailing field, as in proto_register */
};

struct proto_token {
    int32_t token_id; /* >= 0 */
    float logprob;    /* finite and <= 0 when PROTO_FLAG_HAS_LOGPROB, else 0 */
};

struct proto_error {
    int32_t code; /* an HX_E* status (negative) */
    char message[PROTO_TEXT_MAX + 1];
};

struct proto_shutdown {
    char reason[PROTO_TEXT_MAX + 1];
};

struct proto_drain {
    char reason[PROTO_TEXT_MAX + 1]; /* why the worker leaves, for the coordinator's log */
};

/* The body of a control message, selected by the header's type. */
union proto_body {
    struct proto_register reg;
    struct proto_register_ack ack;
    struct proto_reject reject;
    struct proto_assign assign;
    struct proto_ready ready;
    struct proto_heartbeat heartbeat;
    struct proto_token token;
    struct proto_error error;
    struct proto_shutdown shutdown;
    struct proto_drain drain;
};

/* Name of a type ("PREFILL"), or "?" if out of range. Never NULL. */
const char *proto_type_name(int type);
/*
 * 1 if s is a CURVE public key as the wire carries it: exactly PROTO_CURVE_KEY_LEN characters
 * of the Z85 alphabet whose 5-character groups each encode a 32-bit value (so the encoding of
 * a key is canonical). "" and NULL are not keys.
 */
int proto_curve_key_ok(const char *s);
/* Element size of a dtype in bytes (0 for NONE/BYTES or out of range). */
size_t proto_dtype_size(int dtype);
/* Whether the type carries a control body (dtype BYTES) rather than tokens/activations. */
int proto_type_has_body(int type);

/* Zero h and set version and type. */
void proto_header_init(struct proto_header *h, enum proto_type type);

/*
 * Check every invariant of a header (ranges, route, payload size vs n_tokens/hidden/dtype).
 * Returns 0 or HX_EPROTO with a diag naming the field.
 */
int proto_header_check(const struct proto_header *h, struct hx_diag *diag);

/*
 * Turn a forward header (PREFILL/DECODE) received by hop cur_hop into the one to send to the
 * next hop: cur_hop + 1, activations of `dtype` (F32/F16/BF16) and width `hidden`, and the
 * matching payload_bytes. Everything else (route, request, sampling) is kept. Returns 0, or
 * HX_EPROTO if h is not a forward message, is already at its last hop (the last hop sends a
 * TOKEN instead), or the result would be invalid; h is unchanged on failure.
 */
int proto_header_advance(struct proto_header *h, int dtype, uint32_t hidden, struct hx_diag *diag);

/* Validate h and write it into out (exactly PROTO_HEADER_BYTES). 0 or HX_EPROTO. */
int proto_header_encode(const struct proto_header *h, uint8_t out[PROTO_HEADER_BYTES],
                        struct hx_diag *diag);

/*
 * Parse and validate a header frame of len bytes (must equal PROTO_HEADER_BYTES; reserved
 * bytes and unused hops must be zero). On failure *out is zeroed and HX_EPROTO returned.
 */
int proto_header_decode(const void *buf, size_t len, struct proto_header *out,
                        struct hx_diag *diag);

/*
 * Append the encoded body of a control message of `type` to out. The body is validated
 * first (string charsets and lengths, counts, enum ranges). 0, or HX_EPROTO (out unchanged).
 */
int proto_body_encode(int type, const union proto_body *body, struct strbuf *out,
                      struct hx_diag *diag);

/*
 * Decode and validate a control body of `type` from len bytes (all bytes must be consumed).
 * On success an ASSIGN's peers array is allocated (release with proto_body_release); on
 * failure *out holds nothing to release. 0 or HX_EPROTO.
 */
int proto_body_decode(int type, const void *buf, size_t len, union proto_body *out,
                      struct hx_diag *diag);

/* Free what proto_body_decode allocated (ASSIGN peers). Safe on a zeroed body. */
void proto_body_release(int type, union proto_body *body);

/*
 * Decode one whole 2-frame message: header, payload size against the header, and, for
 * control types, the body into *body (may be NULL to skip body decoding). Forward payloads
 * are left to the caller (the header already guarantees their size). 0 or HX_EPROTO.
 */
int proto_msg_decode(const void *hdr, size_t hdr_len, const void *payload, size_t payload_len,
                     struct proto_header *h, union proto_body *body, struct hx_diag *diag);

#endif
