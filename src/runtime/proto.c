/*
 * proto.c - encode/decode of the wire format in proto.h.
 *
 * Fields are written byte by byte in little-endian order at fixed offsets (see the table in
 * docs/protocol.md), so the format is independent of the host's endianness, alignment and
 * struct padding. Control bodies are sequences of u8/u16/u32/u64 and strings (u16 length,
 * bytes, no terminator) read through a bounds-checked cursor. Decoders never trust a length
 * before checking it against what remains, so no input can make them read out of bounds or
 * allocate more than PROTO_MAX_PEERS entries.
 */
#include "runtime/proto.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "base/strbuf.h"

/* Header offsets (bytes). */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 4,
    OFF_TYPE = 6,
    OFF_FLAGS = 7,
    OFF_REQUEST_ID = 8,
    OFF_SEQ = 16,
    OFF_N_TOKENS = 20,
    OFF_POSITION = 24,
    OFF_HIDDEN = 28,
    OFF_PAYLOAD_BYTES = 32,
    OFF_SEND_TIME = 40,
    OFF_TEMPERATURE = 48,
    OFF_TOP_P = 52,
    OFF_SEED = 56,
    OFF_DTYPE = 64,
    OFF_N_HOPS = 65,
    OFF_CUR_HOP = 66,
    OFF_RESERVED0 = 67, /* 1 byte, must be 0 */
    OFF_RESERVED1 = 68, /* 4 bytes, must be 0 */
    OFF_HOPS = 72,      /* PROTO_MAX_HOPS x (u16 node, u16 start, u16 end) */
    HOP_BYTES = 6,
};

_Static_assert(OFF_HOPS + PROTO_MAX_HOPS * HOP_BYTES == PROTO_HEADER_BYTES,
               "header layout and PROTO_HEADER_BYTES disagree");

/* ---- little-endian primitives ---------------------------------------------------------- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xffu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)(p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* ---- names ----------------------------------------------------------------------------- */

static const char *const type_names[PROTO_TYPE_COUNT_] = {
    "INVALID", "REGISTER", "REGISTER_ACK", "REJECT",  "ASSIGN", "READY",    "HEARTBEAT",
    "PREFILL", "DECODE",   "TOKEN",        "RELEASE", "ERROR",  "SHUTDOWN", "DRAIN",
};

const char *proto_type_name(int type)
{
    if (type <= 0 || type >= PROTO_TYPE_COUNT_) {
        return "?";
    }
    return type_names[type];
}

size_t proto_dtype_size(int dtype)
{
    switch (dtype) {
    case PROTO_DTYPE_I32:
    case PROTO_DTYPE_F32:
        return 4;
    case PROTO_DTYPE_F16:
    case PROTO_DTYPE_BF16:
        return 2;
    default:
        return 0;
    }
}

int proto_type_has_body(int type)
{
    switch (type) {
    case PROTO_TYPE_REGISTER:
    case PROTO_TYPE_REGISTER_ACK:
    case PROTO_TYPE_REJECT:
    case PROTO_TYPE_ASSIGN:
    case PROTO_TYPE_READY:
    case PROTO_TYPE_HEARTBEAT:
    case PROTO_TYPE_TOKEN:
    case PROTO_TYPE_ERROR:
    case PROTO_TYPE_SHUTDOWN:
    case PROTO_TYPE_DRAIN:
        return 1;
    default:
        return 0;
    }
}

static int is_forward(int type)
{
    return type == PROTO_TYPE_PREFILL || type == PROTO_TYPE_DECODE;
}

void proto_header_init(struct proto_header *h, enum proto_type type)
{
    memset(h, 0, sizeof(*h));
    h->version = PROTO_VERSION;
    h->type = (uint8_t)type;
    if (proto_type_has_body(type)) {
        h->dtype = PROTO_DTYPE_BYTES;
    }
}

/* ---- header validation ----------------------------------------------------------------- */

static int check_route(const struct proto_header *h, struct hx_diag *d)
{
    const char *t = proto_type_name(h->type);
    if (h->n_hops > PROTO_MAX_HOPS) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: n_hops %u > %d", t, (unsigned)h->n_hops,
                           PROTO_MAX_HOPS);
    }
    if (h->n_hops == 0) {
        if (h->cur_hop != 0) {
            return hx_diag_set(d, HX_EPROTO, "proto: %s: cur_hop %u without a route", t,
                               (unsigned)h->cur_hop);
        }
        return HX_OK;
    }
    if (h->cur_hop >= h->n_hops) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: cur_hop %u >= n_hops %u", t,
                           (unsigned)h->cur_hop, (unsigned)h->n_hops);
    }
    if (h->hops[0].layer_start != 0) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: route starts at layer %u, not 0", t,
                           (unsigned)h->hops[0].layer_start);
    }
    for (unsigned i = 0; i < h->n_hops; i++) {
        const struct proto_hop *hp = &h->hops[i];
        if (hp->layer_start >= hp->layer_end) {
            return hx_diag_set(d, HX_EPROTO, "proto: %s: hop %u has empty layer range [%u, %u)", t,
                               i, (unsigned)hp->layer_start, (unsigned)hp->layer_end);
        }
        if (i > 0 && hp->layer_start != h->hops[i - 1].layer_end) {
            return hx_diag_set(
                d, HX_EPROTO, "proto: %s: hop %u starts at layer %u but hop %u ends at %u", t, i,
                (unsigned)hp->layer_start, i - 1, (unsigned)h->hops[i - 1].layer_end);
        }
    }
    return HX_OK;
}

static int check_forward(const struct proto_header *h, struct hx_diag *d)
{
    const char *t = proto_type_name(h->type);
    if (h->n_hops == 0) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: no route", t);
    }
    if (h->n_tokens == 0 || h->n_tokens > PROTO_MAX_TOKENS) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: n_tokens %u not in [1, %d]", t,
                           (unsigned)h->n_tokens, PROTO_MAX_TOKENS);
    }
    if (h->type == PROTO_TYPE_DECODE && h->n_tokens != 1) {
        return hx_diag_set(d, HX_EPROTO, "proto: DECODE: n_tokens %u != 1", (unsigned)h->n_tokens);
    }
    if (h->position > UINT32_MAX - h->n_tokens) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: position %u + n_tokens overflows", t,
                           (unsigned)h->position);
    }
    if (!isfinite(h->temperature) || h->temperature < 0.0f ||
        h->temperature > PROTO_MAX_TEMPERATURE) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: temperature %g not in [0, %g]", t,
                           (double)h->temperature, (double)PROTO_MAX_TEMPERATURE);
    }
    if (!(h->top_p >= 0.0f && h->top_p <= 1.0f)) { /* also rejects NaN */
        return hx_diag_set(d, HX_EPROTO, "proto: %s: top_p %g not in [0, 1]", t, (double)h->top_p);
    }
    /* The hop that receives this message gets tokens iff it starts at layer 0. */
    int wants_tokens = h->hops[h->cur_hop].layer_start == 0;
    uint64_t elems;
    if (wants_tokens) {
        if (h->dtype != PROTO_DTYPE_I32 || h->hidden != 0) {
            return hx_diag_set(d, HX_EPROTO,
                               "proto: %s: hop %u starts at layer 0 and needs token ids "
                               "(dtype I32, hidden 0), got dtype %u hidden %u",
                               t, (unsigned)h->cur_hop, (unsigned)h->dtype, (unsigned)h->hidden);
        }
        elems = h->n_tokens;
    } else {
        if (h->dtype != PROTO_DTYPE_F32 && h->dtype != PROTO_DTYPE_F16 &&
            h->dtype != PROTO_DTYPE_BF16) {
            return hx_diag_set(d, HX_EPROTO, "proto: %s: activations need a float dtype, got %u", t,
                               (unsigned)h->dtype);
        }
        if (h->hidden == 0 || h->hidden > PROTO_MAX_HIDDEN) {
            return hx_diag_set(d, HX_EPROTO, "proto: %s: hidden %u not in [1, %d]", t,
                               (unsigned)h->hidden, PROTO_MAX_HIDDEN);
        }
        elems = (uint64_t)h->n_tokens * h->hidden; /* <= 2^32: no overflow */
    }
    uint64_t want = elems * proto_dtype_size(h->dtype);
    if (want > PROTO_MAX_PAYLOAD_BYTES) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: payload of %llu bytes exceeds the limit", t,
                           (unsigned long long)want);
    }
    if (h->payload_bytes != want) {
        return hx_diag_set(d, HX_EPROTO,
                           "proto: %s: payload_bytes %llu != n_tokens %u x hidden %u x %zu", t,
                           (unsigned long long)h->payload_bytes, (unsigned)h->n_tokens,
                           (unsigned)h->hidden, proto_dtype_size(h->dtype));
    }
    return HX_OK;
}

int proto_header_check(const struct proto_header *h, struct hx_diag *d)
{
    if (h->version != PROTO_VERSION) {
        return hx_diag_set(d, HX_EPROTO, "proto: version %u, this build speaks %d",
                           (unsigned)h->version, PROTO_VERSION);
    }
    if (h->type == PROTO_TYPE_INVALID || h->type >= PROTO_TYPE_COUNT_) {
        return hx_diag_set(d, HX_EPROTO, "proto: unknown message type %u", (unsigned)h->type);
    }
    const char *t = proto_type_name(h->type);
    if (h->flags & ~(unsigned)PROTO_FLAGS_KNOWN_) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: unknown flag bits 0x%02x", t,
                           (unsigned)h->flags);
    }
    if ((h->flags & PROTO_FLAG_HAS_LOGPROB) && h->type != PROTO_TYPE_TOKEN) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: HAS_LOGPROB flag outside TOKEN", t);
    }
    if (h->dtype >= PROTO_DTYPE_COUNT_) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: unknown dtype %u", t, (unsigned)h->dtype);
    }
    int rc = check_route(h, d);
    if (rc) {
        return rc;
    }
    int needs_request =
        is_forward(h->type) || h->type == PROTO_TYPE_TOKEN || h->type == PROTO_TYPE_RELEASE;
    if (needs_request && h->request_id == 0) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: request_id 0", t);
    }
    if (is_forward(h->type)) {
        return check_forward(h, d);
    }
    if (h->type == PROTO_TYPE_RELEASE) {
        if (h->dtype != PROTO_DTYPE_NONE || h->payload_bytes != 0) {
            return hx_diag_set(d, HX_EPROTO,
                               "proto: RELEASE carries no payload (dtype %u, %llu "
                               "bytes)",
                               (unsigned)h->dtype, (unsigned long long)h->payload_bytes);
        }
        return HX_OK;
    }
    /* Control messages: a body, and no route. */
    if (h->n_hops != 0) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: control message with a route", t);
    }
    if (h->dtype != PROTO_DTYPE_BYTES) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: dtype %u, control messages use BYTES", t,
                           (unsigned)h->dtype);
    }
    if (h->payload_bytes > PROTO_MAX_BODY_BYTES) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: body of %llu bytes exceeds %u", t,
                           (unsigned long long)h->payload_bytes, PROTO_MAX_BODY_BYTES);
    }
    return HX_OK;
}

int proto_header_advance(struct proto_header *h, int dtype, uint32_t hidden, struct hx_diag *d)
{
    if (!is_forward(h->type)) {
        return hx_diag_set(d, HX_EPROTO, "proto: advance: %s is not a forward message",
                           proto_type_name(h->type));
    }
    if ((unsigned)h->cur_hop + 1 >= h->n_hops) {
        return hx_diag_set(d, HX_EPROTO,
                           "proto: advance: hop %u is the last of %u (send a TOKEN instead)",
                           (unsigned)h->cur_hop, (unsigned)h->n_hops);
    }
    if (dtype != PROTO_DTYPE_F32 && dtype != PROTO_DTYPE_F16 && dtype != PROTO_DTYPE_BF16) {
        return hx_diag_set(d, HX_EPROTO, "proto: advance: activations need a float dtype, got %d",
                           dtype);
    }
    struct proto_header next = *h;
    next.cur_hop = (uint8_t)(h->cur_hop + 1);
    next.dtype = (uint8_t)dtype;
    next.hidden = hidden;
    next.payload_bytes = (uint64_t)h->n_tokens * hidden * proto_dtype_size(dtype);
    int rc = proto_header_check(&next, d);
    if (rc) {
        return rc;
    }
    *h = next;
    return HX_OK;
}

int proto_header_encode(const struct proto_header *h, uint8_t out[PROTO_HEADER_BYTES],
                        struct hx_diag *d)
{
    int rc = proto_header_check(h, d);
    if (rc) {
        return rc;
    }
    memset(out, 0, PROTO_HEADER_BYTES);
    put_u32(out + OFF_MAGIC, PROTO_MAGIC);
    put_u16(out + OFF_VERSION, h->version);
    out[OFF_TYPE] = h->type;
    out[OFF_FLAGS] = h->flags;
    put_u64(out + OFF_REQUEST_ID, h->request_id);
    put_u32(out + OFF_SEQ, h->seq);
    put_u32(out + OFF_N_TOKENS, h->n_tokens);
    put_u32(out + OFF_POSITION, h->position);
    put_u32(out + OFF_HIDDEN, h->hidden);
    put_u64(out + OFF_PAYLOAD_BYTES, h->payload_bytes);
    put_u64(out + OFF_SEND_TIME, (uint64_t)h->send_time_us);
    put_u32(out + OFF_TEMPERATURE, f32_bits(h->temperature));
    put_u32(out + OFF_TOP_P, f32_bits(h->top_p));
    put_u64(out + OFF_SEED, h->seed);
    out[OFF_DTYPE] = h->dtype;
    out[OFF_N_HOPS] = h->n_hops;
    out[OFF_CUR_HOP] = h->cur_hop;
    for (unsigned i = 0; i < h->n_hops; i++) {
        uint8_t *p = out + OFF_HOPS + i * HOP_BYTES;
        put_u16(p, h->hops[i].node);
        put_u16(p + 2, h->hops[i].layer_start);
        put_u16(p + 4, h->hops[i].layer_end);
    }
    return HX_OK;
}

int proto_header_decode(const void *buf, size_t len, struct proto_header *out, struct hx_diag *d)
{
    memset(out, 0, sizeof(*out));
    if (!buf || len != PROTO_HEADER_BYTES) {
        return hx_diag_set(d, HX_EPROTO, "proto: header frame of %zu bytes, expected %d", len,
                           PROTO_HEADER_BYTES);
    }
    const uint8_t *p = buf;
    uint32_t magic = get_u32(p + OFF_MAGIC);
    if (magic != PROTO_MAGIC) {
        return hx_diag_set(d, HX_EPROTO, "proto: bad magic 0x%08x", (unsigned)magic);
    }
    struct proto_header h;
    memset(&h, 0, sizeof(h));
    h.version = get_u16(p + OFF_VERSION);
    h.type = p[OFF_TYPE];
    h.flags = p[OFF_FLAGS];
    h.request_id = get_u64(p + OFF_REQUEST_ID);
    h.seq = get_u32(p + OFF_SEQ);
    h.n_tokens = get_u32(p + OFF_N_TOKENS);
    h.position = get_u32(p + OFF_POSITION);
    h.hidden = get_u32(p + OFF_HIDDEN);
    h.payload_bytes = get_u64(p + OFF_PAYLOAD_BYTES);
    h.send_time_us = (int64_t)get_u64(p + OFF_SEND_TIME);
    h.temperature = bits_f32(get_u32(p + OFF_TEMPERATURE));
    h.top_p = bits_f32(get_u32(p + OFF_TOP_P));
    h.seed = get_u64(p + OFF_SEED);
    h.dtype = p[OFF_DTYPE];
    h.n_hops = p[OFF_N_HOPS];
    h.cur_hop = p[OFF_CUR_HOP];
    if (p[OFF_RESERVED0] != 0 || get_u32(p + OFF_RESERVED1) != 0) {
        return hx_diag_set(d, HX_EPROTO, "proto: reserved header bytes are not zero");
    }
    if (h.n_hops > PROTO_MAX_HOPS) {
        return hx_diag_set(d, HX_EPROTO, "proto: n_hops %u > %d", (unsigned)h.n_hops,
                           PROTO_MAX_HOPS);
    }
    for (unsigned i = 0; i < PROTO_MAX_HOPS; i++) {
        const uint8_t *q = p + OFF_HOPS + i * HOP_BYTES;
        if (i < h.n_hops) {
            h.hops[i].node = get_u16(q);
            h.hops[i].layer_start = get_u16(q + 2);
            h.hops[i].layer_end = get_u16(q + 4);
        } else if (get_u16(q) || get_u16(q + 2) || get_u16(q + 4)) {
            return hx_diag_set(d, HX_EPROTO, "proto: unused hop %u is not zero", i);
        }
    }
    int rc = proto_header_check(&h, d);
    if (rc) {
        return rc;
    }
    *out = h;
    return HX_OK;
}

/* ---- bodies ---------------------------------------------------------------------------- */

enum str_kind {
    STR_NAME,    /* [A-Za-z0-9._-], non-empty */
    STR_BACKEND, /* [a-z0-9_], non-empty */
    STR_PRINT,   /* 0x21..0x7e, non-empty (tokens, endpoints) */
    STR_TEXT,    /* any byte except control characters other than \t \n; may be empty */
    STR_TEXT_NE, /* STR_TEXT, non-empty */
    STR_DEVICE,  /* 0x20..0x7e (printable, space allowed), non-empty */
    STR_KEY,     /* "" (plain mode) or a CURVE key: proto_curve_key_ok */
};

static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                ".-:+=^!/*?&<>()[]{}@%$#";

static int z85_key_ok(const char *s, size_t n)
{
    if (n != PROTO_CURVE_KEY_LEN) {
        return 0;
    }
    for (size_t g = 0; g < n; g += 5) {
        uint64_t v = 0;
        for (size_t i = g; i < g + 5; i++) {
            const char *q = s[i] ? strchr(z85_chars, s[i]) : NULL;
            if (!q) {
                return 0;
            }
            v = v * 85 + (uint64_t)(q - z85_chars);
        }
        if (v > UINT32_MAX) {
            return 0; /* not canonical: no 4 bytes encode to this group */
        }
    }
    return 1;
}

int proto_curve_key_ok(const char *s)
{
    return s && z85_key_ok(s, strnlen(s, PROTO_CURVE_KEY_LEN + 1));
}

static int str_ok(const char *s, size_t n, enum str_kind kind)
{
    if (n == 0) {
        return kind == STR_TEXT || kind == STR_KEY;
    }
    if (kind == STR_KEY) {
        return z85_key_ok(s, n);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok;
        switch (kind) {
        case STR_NAME:
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
            break;
        case STR_BACKEND:
            ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
            break;
        case STR_PRINT:
            ok = c >= 0x21 && c <= 0x7e;
            break;
        case STR_DEVICE:
            ok = c >= 0x20 && c <= 0x7e;
            break;
        default:
            ok = (c >= 0x20 && c != 0x7f) || c == '\t' || c == '\n';
            break;
        }
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

struct wr {
    struct strbuf *out;
    size_t start;
};

static void w_u16(struct wr *w, uint16_t v)
{
    uint8_t b[2];
    put_u16(b, v);
    strbuf_add(w->out, b, 2);
}

static void w_u32(struct wr *w, uint32_t v)
{
    uint8_t b[4];
    put_u32(b, v);
    strbuf_add(w->out, b, 4);
}

static void w_u64(struct wr *w, uint64_t v)
{
    uint8_t b[8];
    put_u64(b, v);
    strbuf_add(w->out, b, 8);
}

/* Strings were validated (length <= max <= 1023) before writing. */
static void w_str(struct wr *w, const char *s)
{
    size_t n = strlen(s);
    w_u16(w, (uint16_t)n);
    strbuf_add(w->out, s, n);
}

/* Validate a C string field of a body being encoded. */
static int enc_str(const char *field, const char *s, size_t max, enum str_kind kind,
                   struct hx_diag *d)
{
    size_t n = strnlen(s, max + 1);
    if (n > max) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s longer than %zu bytes", field, max);
    }
    if (!str_ok(s, n, kind)) {
        if (kind == STR_KEY) {
            return hx_diag_set(d, HX_EPROTO,
                               "proto: %s \"%.*s\" is not a Z85 CURVE key (%d characters)", field,
                               (int)n, s, PROTO_CURVE_KEY_LEN);
        }
        return hx_diag_set(d, HX_EPROTO, "proto: %s \"%.*s\" is empty or has bad characters", field,
                           (int)n, s);
    }
    return HX_OK;
}

struct rd {
    const uint8_t *p;
    size_t left;
    const char *type;
    struct hx_diag *d;
};

static int r_need(struct rd *r, size_t n, const char *field)
{
    if (r->left < n) {
        return hx_diag_set(r->d, HX_EPROTO, "proto: %s body truncated at %s (need %zu, have %zu)",
                           r->type, field, n, r->left);
    }
    return HX_OK;
}

static int r_u32(struct rd *r, const char *field, uint32_t *v)
{
    int rc = r_need(r, 4, field);
    if (rc) {
        return rc;
    }
    *v = get_u32(r->p);
    r->p += 4;
    r->left -= 4;
    return HX_OK;
}

static int r_u64(struct rd *r, const char *field, uint64_t *v)
{
    int rc = r_need(r, 8, field);
    if (rc) {
        return rc;
    }
    *v = get_u64(r->p);
    r->p += 8;
    r->left -= 8;
    return HX_OK;
}

/* Read a string into dst (capacity max + 1), validating length and charset. */
static int r_str(struct rd *r, const char *field, char *dst, size_t max, enum str_kind kind)
{
    int rc = r_need(r, 2, field);
    if (rc) {
        return rc;
    }
    size_t n = get_u16(r->p);
    r->p += 2;
    r->left -= 2;
    if (n > max) {
        return hx_diag_set(r->d, HX_EPROTO, "proto: %s: %s of %zu bytes exceeds %zu", r->type,
                           field, n, max);
    }
    rc = r_need(r, n, field);
    if (rc) {
        return rc;
    }
    if (!str_ok((const char *)r->p, n, kind)) {
        if (kind == STR_KEY) {
            return hx_diag_set(r->d, HX_EPROTO,
                               "proto: %s: %s of %zu bytes is not a Z85 CURVE key (%d characters)",
                               r->type, field, n, PROTO_CURVE_KEY_LEN);
        }
        return hx_diag_set(r->d, HX_EPROTO, "proto: %s: %s is empty or has bad characters", r->type,
                           field);
    }
    memcpy(dst, r->p, n);
    dst[n] = '\0';
    r->p += n;
    r->left -= n;
    return HX_OK;
}

/*
 * An optional trailing string (REGISTER.device, HEARTBEAT.device): absent when no bytes are
 * left (dst = ""), else a non-empty string of its kind, so that absent and present encode
 * differently and the encoding stays canonical.
 */
static int r_str_opt(struct rd *r, const char *field, char *dst, size_t max, enum str_kind kind)
{
    dst[0] = '\0';
    if (r->left == 0) {
        return HX_OK;
    }
    if (r->left < 2) {
        return hx_diag_set(r->d, HX_EPROTO,
                           "proto: %s body has %zu trailing bytes (too short for the optional %s)",
                           r->type, r->left, field);
    }
    return r_str(r, field, dst, max, kind);
}

static int check_layers(const char *t, uint32_t start, uint32_t end, uint32_t n_layers,
                        struct hx_diag *d)
{
    if (start >= end || end > 65535 || (n_layers && end > n_layers)) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s: bad layer range [%u, %u) of %u", t,
                           (unsigned)start, (unsigned)end, (unsigned)n_layers);
    }
    return HX_OK;
}

static int check_logprob(const struct proto_token *tk, struct hx_diag *d)
{
    if (tk->token_id < 0) {
        return hx_diag_set(d, HX_EPROTO, "proto: TOKEN: negative token id %d", (int)tk->token_id);
    }
    if (!isfinite(tk->logprob) || tk->logprob > 0.0f) {
        return hx_diag_set(d, HX_EPROTO, "proto: TOKEN: logprob %g is not finite and <= 0",
                           (double)tk->logprob);
    }
    return HX_OK;
}

/* Validate a body of `type` (used by the encoder; the decoder validates as it reads). */
static int body_check(int type, const union proto_body *b, struct hx_diag *d)
{
    int rc = HX_OK;
    switch (type) {
    case PROTO_TYPE_REGISTER:
        if ((rc = enc_str("REGISTER.name", b->reg.name, PROTO_NAME_MAX, STR_NAME, d)) ||
            (rc = enc_str("REGISTER.token", b->reg.token, PROTO_AUTH_MAX, STR_PRINT, d)) ||
            (rc = enc_str("REGISTER.backend", b->reg.backend, PROTO_BACKEND_MAX, STR_BACKEND, d)) ||
            (rc =
                 enc_str("REGISTER.endpoint", b->reg.endpoint, PROTO_ENDPOINT_MAX, STR_PRINT, d)) ||
            (rc = enc_str("REGISTER.curve_key", b->reg.curve_key, PROTO_CURVE_KEY_LEN, STR_KEY,
                          d)) ||
            (b->reg.device[0] &&
             (rc = enc_str("REGISTER.device", b->reg.device, PROTO_DEVICE_MAX, STR_DEVICE, d)))) {
            return rc;
        }
        if (b->reg.threads == 0) {
            return hx_diag_set(d, HX_EPROTO, "proto: REGISTER: threads 0");
        }
        return HX_OK;
    case PROTO_TYPE_REGISTER_ACK:
        if (b->ack.heartbeat_ms == 0) {
            return hx_diag_set(d, HX_EPROTO, "proto: REGISTER_ACK: heartbeat_ms 0");
        }
        return HX_OK;
    case PROTO_TYPE_REJECT:
        if (b->reject.reason == 0 || b->reject.reason >= PROTO_REJECT_COUNT_) {
            return hx_diag_set(d, HX_EPROTO, "proto: REJECT: unknown reason %u",
                               (unsigned)b->reject.reason);
        }
        return enc_str("REJECT.message", b->reject.message, PROTO_TEXT_MAX, STR_TEXT, d);
    case PROTO_TYPE_ASSIGN: {
        const struct proto_assign *a = &b->assign;
        if ((rc = check_layers("ASSIGN", a->layer_start, a->layer_end, a->n_layers, d)) ||
            (rc = enc_str("ASSIGN.model", a->model, PROTO_TEXT_MAX, STR_TEXT_NE, d))) {
            return rc;
        }
        if (a->n_layers == 0) {
            return hx_diag_set(d, HX_EPROTO, "proto: ASSIGN: n_layers 0");
        }
        if (a->n_peers > PROTO_MAX_PEERS || (a->n_peers && !a->peers)) {
            return hx_diag_set(d, HX_EPROTO, "proto: ASSIGN: bad peer table (%u peers)",
                               (unsigned)a->n_peers);
        }
        for (uint32_t i = 0; i < a->n_peers; i++) {
            if ((rc = enc_str("ASSIGN.peer.name", a->peers[i].name, PROTO_NAME_MAX, STR_NAME, d)) ||
                (rc = enc_str("ASSIGN.peer.endpoint", a->peers[i].endpoint, PROTO_ENDPOINT_MAX,
                              STR_PRINT, d)) ||
                (rc = enc_str("ASSIGN.peer.curve_key", a->peers[i].curve_key, PROTO_CURVE_KEY_LEN,
                              STR_KEY, d))) {
                return rc;
            }
        }
        return HX_OK;
    }
    case PROTO_TYPE_READY:
        return check_layers("READY", b->ready.layer_start, b->ready.layer_end, 0, d);
    case PROTO_TYPE_HEARTBEAT:
        return b->heartbeat.device[0] ? enc_str("HEARTBEAT.device", b->heartbeat.device,
                                                PROTO_DEVICE_MAX, STR_DEVICE, d)
                                      : HX_OK;
    case PROTO_TYPE_TOKEN:
        return check_logprob(&b->token, d);
    case PROTO_TYPE_ERROR:
        if (b->error.code >= 0) {
            return hx_diag_set(d, HX_EPROTO, "proto: ERROR: code %d is not an error",
                               (int)b->error.code);
        }
        return enc_str("ERROR.message", b->error.message, PROTO_TEXT_MAX, STR_TEXT, d);
    case PROTO_TYPE_SHUTDOWN:
        return enc_str("SHUTDOWN.reason", b->shutdown.reason, PROTO_TEXT_MAX, STR_TEXT, d);
    case PROTO_TYPE_DRAIN:
        return enc_str("DRAIN.reason", b->drain.reason, PROTO_TEXT_MAX, STR_TEXT, d);
    default:
        return hx_diag_set(d, HX_EPROTO, "proto: type %d (%s) has no body", type,
                           proto_type_name(type));
    }
}

int proto_body_encode(int type, const union proto_body *b, struct strbuf *out, struct hx_diag *d)
{
    int rc = body_check(type, b, d);
    if (rc) {
        return rc;
    }
    struct wr w = {out, out->len};
    switch (type) {
    case PROTO_TYPE_REGISTER:
        w_str(&w, b->reg.name);
        w_str(&w, b->reg.token);
        w_str(&w, b->reg.backend);
        w_str(&w, b->reg.endpoint);
        w_u32(&w, b->reg.threads);
        w_u64(&w, b->reg.kv_bytes);
        w_u64(&w, b->reg.mem_bytes);
        w_str(&w, b->reg.curve_key);
        if (b->reg.device[0]) {
            w_str(&w, b->reg.device);
        }
        break;
    case PROTO_TYPE_REGISTER_ACK:
        w_u32(&w, b->ack.node);
        w_u32(&w, b->ack.heartbeat_ms);
        break;
    case PROTO_TYPE_REJECT:
        w_u32(&w, b->reject.reason);
        w_str(&w, b->reject.message);
        break;
    case PROTO_TYPE_ASSIGN:
        w_u32(&w, b->assign.node);
        w_u32(&w, b->assign.layer_start);
        w_u32(&w, b->assign.layer_end);
        w_u32(&w, b->assign.n_layers);
        w_str(&w, b->assign.model);
        w_u32(&w, b->assign.n_peers);
        for (uint32_t i = 0; i < b->assign.n_peers; i++) {
            w_str(&w, b->assign.peers[i].name);
            w_str(&w, b->assign.peers[i].endpoint);
            w_u32(&w, b->assign.peers[i].node);
            w_str(&w, b->assign.peers[i].curve_key);
        }
        break;
    case PROTO_TYPE_READY:
        w_u32(&w, b->ready.node);
        w_u32(&w, b->ready.layer_start);
        w_u32(&w, b->ready.layer_end);
        w_u64(&w, b->ready.kv_bytes);
        break;
    case PROTO_TYPE_HEARTBEAT:
        w_u64(&w, (uint64_t)b->heartbeat.time_us);
        w_u32(&w, b->heartbeat.n_active);
        w_u64(&w, b->heartbeat.kv_used_bytes);
        w_u64(&w, b->heartbeat.kv_total_bytes);
        w_u64(&w, b->heartbeat.refused_handshakes);
        w_u64(&w, b->heartbeat.refused_keys);
        w_u64(&w, b->heartbeat.refused_messages);
        w_u64(&w, b->heartbeat.dropped_malformed);
        if (b->heartbeat.device[0]) {
            w_str(&w, b->heartbeat.device);
        }
        break;
    case PROTO_TYPE_TOKEN:
        w_u32(&w, (uint32_t)b->token.token_id);
        w_u32(&w, f32_bits(b->token.logprob));
        break;
    case PROTO_TYPE_ERROR:
        w_u32(&w, (uint32_t)b->error.code);
        w_str(&w, b->error.message);
        break;
    case PROTO_TYPE_SHUTDOWN:
        w_str(&w, b->shutdown.reason);
        break;
    case PROTO_TYPE_DRAIN:
        w_str(&w, b->drain.reason);
        break;
    default:
        break;
    }
    if (out->len - w.start > PROTO_MAX_BODY_BYTES) {
        out->len = w.start;
        out->buf[out->len] = '\0';
        return hx_diag_set(d, HX_EPROTO, "proto: %s body exceeds %u bytes", proto_type_name(type),
                           PROTO_MAX_BODY_BYTES);
    }
    return HX_OK;
}

static int decode_assign(struct rd *r, struct proto_assign *a)
{
    int rc;
    if ((rc = r_u32(r, "node", &a->node)) || (rc = r_u32(r, "layer_start", &a->layer_start)) ||
        (rc = r_u32(r, "layer_end", &a->layer_end)) || (rc = r_u32(r, "n_layers", &a->n_layers)) ||
        (rc = r_str(r, "model", a->model, PROTO_TEXT_MAX, STR_TEXT_NE)) ||
        (rc = r_u32(r, "n_peers", &a->n_peers))) {
        return rc;
    }
    if (a->n_layers == 0) {
        return hx_diag_set(r->d, HX_EPROTO, "proto: ASSIGN: n_layers 0");
    }
    if ((rc = check_layers("ASSIGN", a->layer_start, a->layer_end, a->n_layers, r->d))) {
        return rc;
    }
    /* Each peer takes at least 2 + 1 + 2 + 1 + 4 + 2 bytes: check before allocating. */
    if (a->n_peers > PROTO_MAX_PEERS || (uint64_t)a->n_peers * 12 > r->left) {
        return hx_diag_set(r->d, HX_EPROTO,
                           "proto: ASSIGN: %u peers do not fit (max %d, %zu "
                           "bytes left)",
                           (unsigned)a->n_peers, PROTO_MAX_PEERS, r->left);
    }
    uint32_t n = a->n_peers;
    a->n_peers = 0;
    a->peers = n ? xcalloc(n, sizeof(*a->peers)) : NULL;
    for (uint32_t i = 0; i < n; i++) {
        struct proto_peer *p = &a->peers[i];
        if ((rc = r_str(r, "peer.name", p->name, PROTO_NAME_MAX, STR_NAME)) ||
            (rc = r_str(r, "peer.endpoint", p->endpoint, PROTO_ENDPOINT_MAX, STR_PRINT)) ||
            (rc = r_u32(r, "peer.node", &p->node)) ||
            (rc = r_str(r, "peer.curve_key", p->curve_key, PROTO_CURVE_KEY_LEN, STR_KEY))) {
            xfree(a->peers);
            a->peers = NULL;
            return rc;
        }
    }
    a->n_peers = n;
    return HX_OK;
}

static int decode_body(int type, struct rd *r, union proto_body *b)
{
    int rc = HX_OK;
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    switch (type) {
    case PROTO_TYPE_REGISTER:
        if ((rc = r_str(r, "name", b->reg.name, PROTO_NAME_MAX, STR_NAME)) ||
            (rc = r_str(r, "token", b->reg.token, PROTO_AUTH_MAX, STR_PRINT)) ||
            (rc = r_str(r, "backend", b->reg.backend, PROTO_BACKEND_MAX, STR_BACKEND)) ||
            (rc = r_str(r, "endpoint", b->reg.endpoint, PROTO_ENDPOINT_MAX, STR_PRINT)) ||
            (rc = r_u32(r, "threads", &b->reg.threads)) ||
            (rc = r_u64(r, "kv_bytes", &b->reg.kv_bytes)) ||
            (rc = r_u64(r, "mem_bytes", &b->reg.mem_bytes)) ||
            (rc = r_str(r, "curve_key", b->reg.curve_key, PROTO_CURVE_KEY_LEN, STR_KEY))) {
            return rc;
        }
        if (b->reg.threads == 0) {
            return hx_diag_set(r->d, HX_EPROTO, "proto: REGISTER: threads 0");
        }
        return r_str_opt(r, "device", b->reg.device, PROTO_DEVICE_MAX, STR_DEVICE);
    case PROTO_TYPE_REGISTER_ACK:
        if ((rc = r_u32(r, "node", &b->ack.node)) ||
            (rc = r_u32(r, "heartbeat_ms", &b->ack.heartbeat_ms))) {
            return rc;
        }
        if (b->ack.heartbeat_ms == 0) {
            return hx_diag_set(r->d, HX_EPROTO, "proto: REGISTER_ACK: heartbeat_ms 0");
        }
        return HX_OK;
    case PROTO_TYPE_REJECT:
        if ((rc = r_u32(r, "reason", &b->reject.reason))) {
            return rc;
        }
        if (b->reject.reason == 0 || b->reject.reason >= PROTO_REJECT_COUNT_) {
            return hx_diag_set(r->d, HX_EPROTO, "proto: REJECT: unknown reason %u",
                               (unsigned)b->reject.reason);
        }
        return r_str(r, "message", b->reject.message, PROTO_TEXT_MAX, STR_TEXT);
    case PROTO_TYPE_ASSIGN:
        return decode_assign(r, &b->assign);
    case PROTO_TYPE_READY:
        if ((rc = r_u32(r, "node", &b->ready.node)) ||
            (rc = r_u32(r, "layer_start", &b->ready.layer_start)) ||
            (rc = r_u32(r, "layer_end", &b->ready.layer_end)) ||
            (rc = r_u64(r, "kv_bytes", &b->ready.kv_bytes))) {
            return rc;
        }
        return check_layers("READY", b->ready.layer_start, b->ready.layer_end, 0, r->d);
    case PROTO_TYPE_HEARTBEAT:
        if ((rc = r_u64(r, "time_us", &u64)) ||
            (rc = r_u32(r, "n_active", &b->heartbeat.n_active)) ||
            (rc = r_u64(r, "kv_used_bytes", &b->heartbeat.kv_used_bytes)) ||
            (rc = r_u64(r, "kv_total_bytes", &b->heartbeat.kv_total_bytes)) ||
            (rc = r_u64(r, "refused_handshakes", &b->heartbeat.refused_handshakes)) ||
            (rc = r_u64(r, "refused_keys", &b->heartbeat.refused_keys)) ||
            (rc = r_u64(r, "refused_messages", &b->heartbeat.refused_messages)) ||
            (rc = r_u64(r, "dropped_malformed", &b->heartbeat.dropped_malformed))) {
            return rc;
        }
        b->heartbeat.time_us = (int64_t)u64;
        return r_str_opt(r, "device", b->heartbeat.device, PROTO_DEVICE_MAX, STR_DEVICE);
    case PROTO_TYPE_TOKEN:
        if ((rc = r_u32(r, "token_id", &u32))) {
            return rc;
        }
        b->token.token_id = (int32_t)u32;
        if ((rc = r_u32(r, "logprob", &u32))) {
            return rc;
        }
        b->token.logprob = bits_f32(u32);
        return check_logprob(&b->token, r->d);
    case PROTO_TYPE_ERROR:
        if ((rc = r_u32(r, "code", &u32))) {
            return rc;
        }
        b->error.code = (int32_t)u32;
        if (b->error.code >= 0) {
            return hx_diag_set(r->d, HX_EPROTO, "proto: ERROR: code %d is not an error",
                               (int)b->error.code);
        }
        return r_str(r, "message", b->error.message, PROTO_TEXT_MAX, STR_TEXT);
    case PROTO_TYPE_SHUTDOWN:
        return r_str(r, "reason", b->shutdown.reason, PROTO_TEXT_MAX, STR_TEXT);
    case PROTO_TYPE_DRAIN:
        return r_str(r, "reason", b->drain.reason, PROTO_TEXT_MAX, STR_TEXT);
    default:
        return hx_diag_set(r->d, HX_EPROTO, "proto: type %d (%s) has no body", type,
                           proto_type_name(type));
    }
}

int proto_body_decode(int type, const void *buf, size_t len, union proto_body *out,
                      struct hx_diag *d)
{
    memset(out, 0, sizeof(*out));
    if (len > PROTO_MAX_BODY_BYTES || (len && !buf)) {
        return hx_diag_set(d, HX_EPROTO, "proto: %s body of %zu bytes exceeds %u",
                           proto_type_name(type), len, PROTO_MAX_BODY_BYTES);
    }
    struct rd r = {buf, len, proto_type_name(type), d};
    int rc = decode_body(type, &r, out);
    if (rc == HX_OK && r.left != 0) {
        rc = hx_diag_set(d, HX_EPROTO, "proto: %s body has %zu trailing bytes",
                         proto_type_name(type), r.left);
    }
    if (rc) {
        proto_body_release(type, out);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

void proto_body_release(int type, union proto_body *b)
{
    if (b && type == PROTO_TYPE_ASSIGN) {
        xfree(b->assign.peers);
        b->assign.peers = NULL;
        b->assign.n_peers = 0;
    }
}

int proto_msg_decode(const void *hdr, size_t hdr_len, const void *payload, size_t payload_len,
                     struct proto_header *h, union proto_body *body, struct hx_diag *d)
{
    if (body) {
        memset(body, 0, sizeof(*body));
    }
    int rc = proto_header_decode(hdr, hdr_len, h, d);
    if (rc) {
        return rc;
    }
    if (h->payload_bytes != payload_len) {
        rc = hx_diag_set(d, HX_EPROTO, "proto: %s: payload frame of %zu bytes, header says %llu",
                         proto_type_name(h->type), payload_len,
                         (unsigned long long)h->payload_bytes);
        memset(h, 0, sizeof(*h));
        return rc;
    }
    if (body && proto_type_has_body(h->type)) {
        rc = proto_body_decode(h->type, payload, payload_len, body, d);
        if (rc) {
            memset(h, 0, sizeof(*h));
            return rc;
        }
    }
    return HX_OK;
}
