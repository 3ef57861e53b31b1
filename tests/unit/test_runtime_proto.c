/*
 * test_runtime_proto.c - the wire format: round trips of every message type, the exact
 * little-endian layout, and every malformed case the decoders must reject with HX_EPROTO.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "runtime/proto.h"
#include "test.h"

/* A valid 3-hop route over 32 layers: node 4 [0,10), node 7 [10,20), node 2 [20,32). */
static void route3(struct proto_header *h)
{
    h->n_hops = 3;
    h->hops[0] = (struct proto_hop){4, 0, 10};
    h->hops[1] = (struct proto_hop){7, 10, 20};
    h->hops[2] = (struct proto_hop){2, 20, 32};
}

static struct proto_header prefill_tokens(void)
{
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_PREFILL);
    route3(&h);
    h.request_id = 0x0102030405060708ull;
    h.seq = 0;
    h.n_tokens = 5;
    h.position = 0;
    h.dtype = PROTO_DTYPE_I32;
    h.payload_bytes = 5 * 4;
    h.temperature = 0.7f;
    h.top_p = 0.9f;
    h.seed = 1234567890123ull;
    h.send_time_us = -42;
    return h;
}

static struct proto_header prefill_act(void)
{
    struct proto_header h = prefill_tokens();
    h.cur_hop = 1;
    h.dtype = PROTO_DTYPE_F16;
    h.hidden = 288;
    h.payload_bytes = 5ull * 288 * 2;
    return h;
}

static void assert_header_eq(const struct proto_header *a, const struct proto_header *b)
{
    ASSERT_EQ(a->version, b->version);
    ASSERT_EQ(a->type, b->type);
    ASSERT_EQ(a->flags, b->flags);
    ASSERT_EQ(a->request_id, b->request_id);
    ASSERT_EQ(a->seq, b->seq);
    ASSERT_EQ(a->n_tokens, b->n_tokens);
    ASSERT_EQ(a->position, b->position);
    ASSERT_EQ(a->hidden, b->hidden);
    ASSERT_EQ(a->payload_bytes, b->payload_bytes);
    ASSERT_EQ(a->send_time_us, b->send_time_us);
    ASSERT(memcmp(&a->temperature, &b->temperature, 4) == 0);
    ASSERT(memcmp(&a->top_p, &b->top_p, 4) == 0);
    ASSERT_EQ(a->seed, b->seed);
    ASSERT_EQ(a->dtype, b->dtype);
    ASSERT_EQ(a->n_hops, b->n_hops);
    ASSERT_EQ(a->cur_hop, b->cur_hop);
    for (int i = 0; i < PROTO_MAX_HOPS; i++) {
        ASSERT_EQ(a->hops[i].node, b->hops[i].node);
        ASSERT_EQ(a->hops[i].layer_start, b->hops[i].layer_start);
        ASSERT_EQ(a->hops[i].layer_end, b->hops[i].layer_end);
    }
}

static void header_roundtrip(const struct proto_header *h)
{
    uint8_t buf[PROTO_HEADER_BYTES];
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(proto_header_encode(h, buf, &d), &d);
    struct proto_header back;
    ASSERT_OK_DIAG(proto_header_decode(buf, sizeof(buf), &back, &d), &d);
    assert_header_eq(h, &back);
}

TEST(runtime_proto_forward_roundtrip)
{
    struct proto_header h = prefill_tokens();
    header_roundtrip(&h);
    h = prefill_act();
    header_roundtrip(&h);
    h.dtype = PROTO_DTYPE_F32;
    h.payload_bytes = 5ull * 288 * 4;
    header_roundtrip(&h);
    h.dtype = PROTO_DTYPE_BF16;
    h.payload_bytes = 5ull * 288 * 2;
    header_roundtrip(&h);
    /* DECODE at the last hop, one activation row, deep into the sequence. */
    struct proto_header dec = prefill_act();
    dec.type = PROTO_TYPE_DECODE;
    dec.cur_hop = 2;
    dec.seq = 77;
    dec.n_tokens = 1;
    dec.position = 4096;
    dec.payload_bytes = 288 * 2;
    header_roundtrip(&dec);
    /* A full-length route of PROTO_MAX_HOPS one-layer hops. */
    struct proto_header full = prefill_tokens();
    full.n_hops = PROTO_MAX_HOPS;
    for (int i = 0; i < PROTO_MAX_HOPS; i++) {
        full.hops[i] = (struct proto_hop){(uint16_t)(100 + i), (uint16_t)i, (uint16_t)(i + 1)};
    }
    full.cur_hop = PROTO_MAX_HOPS - 1;
    full.dtype = PROTO_DTYPE_F32;
    full.hidden = 16;
    full.payload_bytes = 5 * 16 * 4;
    header_roundtrip(&full);
    /* RELEASE with and without a route. */
    struct proto_header rel;
    proto_header_init(&rel, PROTO_TYPE_RELEASE);
    rel.request_id = 9;
    header_roundtrip(&rel);
    route3(&rel);
    header_roundtrip(&rel);
}

TEST(runtime_proto_header_is_little_endian_at_fixed_offsets)
{
    struct proto_header h = prefill_act();
    uint8_t buf[PROTO_HEADER_BYTES];
    ASSERT_OK(proto_header_encode(&h, buf, NULL));
    ASSERT(memcmp(buf, "HLXP", 4) == 0);
    ASSERT_EQ(buf[4], PROTO_VERSION & 0xff);
    ASSERT_EQ(buf[5], PROTO_VERSION >> 8);
    ASSERT_EQ(buf[6], PROTO_TYPE_PREFILL);
    for (int i = 0; i < 8; i++) {
        ASSERT_EQ(buf[8 + i], (h.request_id >> (8 * i)) & 0xff);
        ASSERT_EQ(buf[32 + i], (h.payload_bytes >> (8 * i)) & 0xff);
        ASSERT_EQ(buf[56 + i], (h.seed >> (8 * i)) & 0xff);
    }
    uint32_t tbits;
    memcpy(&tbits, &h.temperature, 4);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(buf[48 + i], (tbits >> (8 * i)) & 0xff);
        ASSERT_EQ(buf[28 + i], (h.hidden >> (8 * i)) & 0xff);
    }
    ASSERT_EQ(buf[64], PROTO_DTYPE_F16);
    ASSERT_EQ(buf[65], 3);
    ASSERT_EQ(buf[66], 1);
    /* hop 1 = node 7, layers [10, 20) at 72 + 6 */
    ASSERT_EQ(buf[78], 7);
    ASSERT_EQ(buf[79], 0);
    ASSERT_EQ(buf[80], 10);
    ASSERT_EQ(buf[82], 20);
    /* everything after the last hop is zero */
    for (int i = 72 + 3 * 6; i < PROTO_HEADER_BYTES; i++) {
        ASSERT_EQ(buf[i], 0);
    }
}

/* Encode a control message (header + body) and decode it back through proto_msg_decode. */
static void control_roundtrip(int type, const union proto_body *b, uint8_t flags,
                              union proto_body *out)
{
    struct strbuf sb;
    strbuf_init(&sb);
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(proto_body_encode(type, b, &sb, &d), &d);
    struct proto_header h;
    proto_header_init(&h, (enum proto_type)type);
    h.flags = flags;
    if (type == PROTO_TYPE_TOKEN) {
        h.request_id = 99;
    }
    h.payload_bytes = sb.len;
    uint8_t hb[PROTO_HEADER_BYTES];
    ASSERT_OK_DIAG(proto_header_encode(&h, hb, &d), &d);
    struct proto_header back;
    ASSERT_OK_DIAG(proto_msg_decode(hb, sizeof(hb), sb.buf, sb.len, &back, out, &d), &d);
    ASSERT_EQ(back.type, type);
    ASSERT_EQ(back.payload_bytes, sb.len);
    /* Every strict prefix of the body is truncated and must be rejected. */
    for (size_t n = 0; n < sb.len; n++) {
        union proto_body tmp;
        struct hx_diag dd = {0};
        ASSERT_ERR(proto_body_decode(type, sb.buf, n, &tmp, &dd), HX_EPROTO);
        ASSERT(dd.msg[0] != '\0');
    }
    /* One trailing byte is rejected too. */
    strbuf_addc(&sb, 0);
    union proto_body tmp;
    struct hx_diag dd = {0};
    ASSERT_ERR(proto_body_decode(type, sb.buf, sb.len, &tmp, &dd), HX_EPROTO);
    ASSERT_CONTAINS(dd.msg, "trailing");
    strbuf_release(&sb);
}

TEST(runtime_proto_control_roundtrip_every_type)
{
    union proto_body b;
    union proto_body o;

    memset(&b, 0, sizeof(b));
    snprintf(b.reg.name, sizeof(b.reg.name), "gpu-a100.node_3");
    snprintf(b.reg.token, sizeof(b.reg.token), "s3cr3t!#$");
    snprintf(b.reg.backend, sizeof(b.reg.backend), "cuda");
    snprintf(b.reg.endpoint, sizeof(b.reg.endpoint), "tcp://10.0.0.3:6001");
    b.reg.threads = 16;
    b.reg.kv_bytes = 40ull << 30;
    b.reg.mem_bytes = 80ull << 30;
    snprintf(b.reg.curve_key, sizeof(b.reg.curve_key),
             "rq:rM>}U?@Lns47E1%%kR.o@n%%FcmmsL/@{H8]yf7");
    control_roundtrip(PROTO_TYPE_REGISTER, &b, 0, &o);
    ASSERT_STR_EQ(o.reg.curve_key, b.reg.curve_key);
    ASSERT_STR_EQ(o.reg.name, b.reg.name);
    ASSERT_STR_EQ(o.reg.token, b.reg.token);
    ASSERT_STR_EQ(o.reg.backend, "cuda");
    ASSERT_STR_EQ(o.reg.endpoint, b.reg.endpoint);
    ASSERT_EQ(o.reg.threads, 16);
    ASSERT_EQ(o.reg.kv_bytes, 40ull << 30);
    ASSERT_EQ(o.reg.mem_bytes, 80ull << 30);

    memset(&b, 0, sizeof(b));
    b.ack.node = 12;
    b.ack.heartbeat_ms = 500;
    control_roundtrip(PROTO_TYPE_REGISTER_ACK, &b, 0, &o);
    ASSERT_EQ(o.ack.node, 12);
    ASSERT_EQ(o.ack.heartbeat_ms, 500);

    memset(&b, 0, sizeof(b));
    b.reject.reason = PROTO_REJECT_AUTH;
    snprintf(b.reject.message, sizeof(b.reject.message), "wrong token\tfor \xc3\xa9");
    control_roundtrip(PROTO_TYPE_REJECT, &b, 0, &o);
    ASSERT_EQ(o.reject.reason, PROTO_REJECT_AUTH);
    ASSERT_STR_EQ(o.reject.message, b.reject.message);

    struct proto_peer peers[3] = {
        {"w0", "tcp://h0:6000", 0, ""},
        {"w1", "tcp://h1:6000", 1, "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"},
        {"w2.x", "ipc:///tmp/w2", 2, ""}};
    memset(&b, 0, sizeof(b));
    b.assign.node = 1;
    b.assign.layer_start = 10;
    b.assign.layer_end = 20;
    b.assign.n_layers = 32;
    snprintf(b.assign.model, sizeof(b.assign.model), "models/kjv-llama-6m");
    b.assign.n_peers = 3;
    b.assign.peers = peers;
    control_roundtrip(PROTO_TYPE_ASSIGN, &b, 0, &o);
    ASSERT_EQ(o.assign.layer_start, 10);
    ASSERT_EQ(o.assign.layer_end, 20);
    ASSERT_EQ(o.assign.n_layers, 32);
    ASSERT_STR_EQ(o.assign.model, "models/kjv-llama-6m");
    ASSERT_EQ(o.assign.n_peers, 3);
    for (int i = 0; i < 3; i++) {
        ASSERT_STR_EQ(o.assign.peers[i].name, peers[i].name);
        ASSERT_STR_EQ(o.assign.peers[i].endpoint, peers[i].endpoint);
        ASSERT_EQ(o.assign.peers[i].node, peers[i].node);
        ASSERT_STR_EQ(o.assign.peers[i].curve_key, peers[i].curve_key);
    }
    proto_body_release(PROTO_TYPE_ASSIGN, &o);
    ASSERT(o.assign.peers == NULL);
    /* An ASSIGN without peers (single-node deployment). */
    b.assign.n_peers = 0;
    b.assign.peers = NULL;
    control_roundtrip(PROTO_TYPE_ASSIGN, &b, 0, &o);
    ASSERT_EQ(o.assign.n_peers, 0);
    proto_body_release(PROTO_TYPE_ASSIGN, &o);

    memset(&b, 0, sizeof(b));
    b.ready.node = 3;
    b.ready.layer_start = 0;
    b.ready.layer_end = 6;
    b.ready.kv_bytes = 123456789;
    control_roundtrip(PROTO_TYPE_READY, &b, 0, &o);
    ASSERT_EQ(o.ready.layer_end, 6);
    ASSERT_EQ(o.ready.kv_bytes, 123456789);

    memset(&b, 0, sizeof(b));
    b.heartbeat.time_us = -5;
    b.heartbeat.n_active = 17;
    b.heartbeat.kv_used_bytes = 1ull << 40;
    b.heartbeat.kv_total_bytes = (1ull << 41) + 3;
    b.heartbeat.refused_handshakes = 1;
    b.heartbeat.refused_keys = 2;
    b.heartbeat.refused_messages = 3;
    b.heartbeat.dropped_malformed = 1ull << 50;
    control_roundtrip(PROTO_TYPE_HEARTBEAT, &b, 0, &o);
    ASSERT_EQ(o.heartbeat.refused_handshakes, 1);
    ASSERT_EQ(o.heartbeat.refused_keys, 2);
    ASSERT_EQ(o.heartbeat.refused_messages, 3);
    ASSERT_EQ(o.heartbeat.dropped_malformed, 1ull << 50);
    ASSERT_EQ(o.heartbeat.time_us, -5);
    ASSERT_EQ(o.heartbeat.n_active, 17);
    ASSERT_EQ(o.heartbeat.kv_total_bytes, (1ull << 41) + 3);

    memset(&b, 0, sizeof(b));
    b.token.token_id = 31999;
    b.token.logprob = -0.25f;
    control_roundtrip(PROTO_TYPE_TOKEN, &b, PROTO_FLAG_HAS_LOGPROB, &o);
    ASSERT_EQ(o.token.token_id, 31999);
    ASSERT_DBL_NEAR(o.token.logprob, -0.25, 0);

    memset(&b, 0, sizeof(b));
    b.error.code = HX_EDEVICE;
    snprintf(b.error.message, sizeof(b.error.message), "cuda: out of memory on layer 12");
    control_roundtrip(PROTO_TYPE_ERROR, &b, 0, &o);
    ASSERT_EQ(o.error.code, HX_EDEVICE);
    ASSERT_STR_EQ(o.error.message, b.error.message);

    memset(&b, 0, sizeof(b));
    control_roundtrip(PROTO_TYPE_SHUTDOWN, &b, 0, &o); /* empty reason is fine */
    ASSERT_STR_EQ(o.shutdown.reason, "");

    memset(&b, 0, sizeof(b));
    snprintf(b.drain.reason, sizeof(b.drain.reason), "SIGTERM: maintenance");
    control_roundtrip(PROTO_TYPE_DRAIN, &b, 0, &o);
    ASSERT_STR_EQ(o.drain.reason, "SIGTERM: maintenance");
    ASSERT_STR_EQ(proto_type_name(PROTO_TYPE_DRAIN), "DRAIN");
}

/* Apply `mutate` to a valid encoded header and check the decoder rejects it. */
static void expect_bad_bytes(uint8_t *buf, size_t len, const char *needle)
{
    struct proto_header h;
    struct hx_diag d = {0};
    ASSERT_ERR(proto_header_decode(buf, len, &h, &d), HX_EPROTO);
    ASSERT_CONTAINS(d.msg, needle);
    ASSERT_EQ(h.type, 0); /* cleared on failure */
}

static void encoded(const struct proto_header *h, uint8_t *buf)
{
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(proto_header_encode(h, buf, &d), &d);
}

TEST(runtime_proto_header_malformed_bytes)
{
    uint8_t ok[PROTO_HEADER_BYTES + 1];
    struct proto_header base = prefill_act();
    encoded(&base, ok);
    uint8_t b[PROTO_HEADER_BYTES + 1];

    memcpy(b, ok, sizeof(b));
    expect_bad_bytes(b, PROTO_HEADER_BYTES - 1, "header frame");
    expect_bad_bytes(b, PROTO_HEADER_BYTES + 1, "header frame");
    expect_bad_bytes(b, 0, "header frame");
    {
        struct proto_header h;
        ASSERT_ERR(proto_header_decode(NULL, PROTO_HEADER_BYTES, &h, NULL), HX_EPROTO);
    }
    memcpy(b, ok, sizeof(b));
    b[0] ^= 1;
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "magic");
    memcpy(b, ok, sizeof(b));
    b[4] = 1; /* a peer of before CURVE keys */
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "version 1");
    memcpy(b, ok, sizeof(b));
    b[4] = 3;
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "version 3");
    memcpy(b, ok, sizeof(b));
    b[6] = 0;
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "unknown message type 0");
    b[6] = PROTO_TYPE_COUNT_;
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "unknown message type");
    memcpy(b, ok, sizeof(b));
    b[7] = 0x80;
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "flag");
    b[7] = PROTO_FLAG_HAS_LOGPROB;
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "HAS_LOGPROB");
    memcpy(b, ok, sizeof(b));
    b[64] = PROTO_DTYPE_COUNT_;
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "dtype");
    memcpy(b, ok, sizeof(b));
    b[67] = 1;
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "reserved");
    memcpy(b, ok, sizeof(b));
    b[70] = 1;
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "reserved");
    memcpy(b, ok, sizeof(b));
    b[PROTO_HEADER_BYTES - 1] = 1; /* last byte of the last (unused) hop */
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "unused hop 31");
    memcpy(b, ok, sizeof(b));
    b[65] = PROTO_MAX_HOPS + 1;
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "n_hops");
    memcpy(b, ok, sizeof(b));
    b[65] = 255;
    expect_bad_bytes(b, PROTO_HEADER_BYTES, "n_hops");
}

/* Check that proto_header_check (and so both encode and decode) rejects h. */
static void expect_bad(const struct proto_header *h, const char *needle)
{
    struct hx_diag d = {0};
    ASSERT_ERR(proto_header_check(h, &d), HX_EPROTO);
    ASSERT_CONTAINS(d.msg, needle);
    uint8_t buf[PROTO_HEADER_BYTES];
    ASSERT_ERR(proto_header_encode(h, buf, NULL), HX_EPROTO);
}

TEST(runtime_proto_header_malformed_fields)
{
    struct proto_header h;
    h = prefill_tokens();
    h.cur_hop = 3;
    expect_bad(&h, "cur_hop 3 >= n_hops 3");
    h = prefill_tokens();
    h.hops[0].layer_start = 1;
    expect_bad(&h, "route starts at layer 1");
    h = prefill_tokens();
    h.hops[1].layer_start = 11;
    expect_bad(&h, "hop 1 starts at layer 11 but hop 0 ends at 10");
    h = prefill_tokens();
    h.hops[2].layer_end = 20;
    expect_bad(&h, "empty layer range");
    h = prefill_tokens();
    h.n_hops = 0;
    memset(h.hops, 0, sizeof(h.hops));
    expect_bad(&h, "no route");
    h = prefill_tokens();
    h.n_hops = 0;
    h.cur_hop = 1;
    expect_bad(&h, "cur_hop 1 without a route");
    h = prefill_tokens();
    h.n_tokens = 0;
    h.payload_bytes = 0;
    expect_bad(&h, "n_tokens 0");
    h = prefill_tokens();
    h.n_tokens = PROTO_MAX_TOKENS + 1;
    h.payload_bytes = 4ull * h.n_tokens;
    expect_bad(&h, "n_tokens");
    h = prefill_tokens();
    h.type = PROTO_TYPE_DECODE;
    expect_bad(&h, "DECODE: n_tokens 5 != 1");
    h = prefill_tokens();
    h.payload_bytes = 21;
    expect_bad(&h, "payload_bytes 21");
    h = prefill_tokens();
    h.request_id = 0;
    expect_bad(&h, "request_id 0");
    h = prefill_tokens();
    h.position = UINT32_MAX - 2;
    expect_bad(&h, "overflows");
    h = prefill_tokens();
    h.hidden = 8; /* tokens carry no hidden size */
    expect_bad(&h, "needs token ids");
    h = prefill_tokens();
    h.dtype = PROTO_DTYPE_F32;
    expect_bad(&h, "needs token ids");
    h = prefill_act();
    h.dtype = PROTO_DTYPE_I32;
    expect_bad(&h, "activations need a float dtype");
    h = prefill_act();
    h.hidden = 0;
    expect_bad(&h, "hidden 0");
    h = prefill_act();
    h.hidden = PROTO_MAX_HIDDEN + 1;
    expect_bad(&h, "hidden");
    h = prefill_act();
    h.payload_bytes -= 2;
    expect_bad(&h, "payload_bytes");
    h = prefill_tokens();
    h.temperature = NAN;
    expect_bad(&h, "temperature");
    h.temperature = -0.5f;
    expect_bad(&h, "temperature");
    h.temperature = INFINITY;
    expect_bad(&h, "temperature");
    h = prefill_tokens();
    h.top_p = 1.5f;
    expect_bad(&h, "top_p");
    h.top_p = NAN;
    expect_bad(&h, "top_p");

    struct proto_header c;
    proto_header_init(&c, PROTO_TYPE_HEARTBEAT);
    ASSERT_OK(proto_header_check(&c, NULL));
    route3(&c);
    expect_bad(&c, "control message with a route");
    proto_header_init(&c, PROTO_TYPE_HEARTBEAT);
    c.dtype = PROTO_DTYPE_I32;
    expect_bad(&c, "control messages use BYTES");
    proto_header_init(&c, PROTO_TYPE_ASSIGN);
    c.payload_bytes = PROTO_MAX_BODY_BYTES + 1ull;
    expect_bad(&c, "exceeds");
    proto_header_init(&c, PROTO_TYPE_TOKEN);
    expect_bad(&c, "request_id 0");
    proto_header_init(&c, PROTO_TYPE_RELEASE);
    c.request_id = 1;
    c.dtype = PROTO_DTYPE_BYTES;
    expect_bad(&c, "RELEASE carries no payload");
    proto_header_init(&c, PROTO_TYPE_RELEASE);
    c.request_id = 1;
    c.payload_bytes = 4;
    expect_bad(&c, "RELEASE carries no payload");
    proto_header_init(&c, PROTO_TYPE_SHUTDOWN);
    c.version = 0;
    expect_bad(&c, "version 0");
}

TEST(runtime_proto_msg_payload_must_match_header)
{
    struct proto_header h = prefill_tokens();
    uint8_t hb[PROTO_HEADER_BYTES];
    encoded(&h, hb);
    int32_t toks[6] = {1, 2, 3, 4, 5, 6};
    struct proto_header out;
    struct hx_diag d = {0};
    ASSERT_OK(proto_msg_decode(hb, sizeof(hb), toks, 20, &out, NULL, &d));
    ASSERT_ERR(proto_msg_decode(hb, sizeof(hb), toks, 24, &out, NULL, &d), HX_EPROTO);
    ASSERT_CONTAINS(d.msg, "payload frame of 24 bytes, header says 20");
    ASSERT_EQ(out.type, 0);
    hx_diag_clear(&d);
    ASSERT_ERR(proto_msg_decode(hb, sizeof(hb), toks, 0, &out, NULL, &d), HX_EPROTO);
    /* A control header whose body does not decode fails the whole message. */
    struct proto_header c;
    proto_header_init(&c, PROTO_TYPE_REGISTER_ACK);
    c.payload_bytes = 8;
    encoded(&c, hb);
    uint8_t body[8] = {1, 0, 0, 0, 0, 0, 0, 0}; /* heartbeat_ms 0 */
    union proto_body pb;
    hx_diag_clear(&d);
    ASSERT_ERR(proto_msg_decode(hb, sizeof(hb), body, 8, &out, &pb, &d), HX_EPROTO);
    ASSERT_CONTAINS(d.msg, "heartbeat_ms 0");
    body[4] = 100;
    ASSERT_OK(proto_msg_decode(hb, sizeof(hb), body, 8, &out, &pb, NULL));
    ASSERT_EQ(pb.ack.node, 1);
    ASSERT_EQ(pb.ack.heartbeat_ms, 100);
}

/* Hand-build a body with a cursor, for the malformed-body cases. */
struct bb {
    uint8_t b[4096];
    size_t n;
};

static void bb_u32(struct bb *w, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        w->b[w->n++] = (uint8_t)(v >> (8 * i));
    }
}

static void bb_u64(struct bb *w, uint64_t v)
{
    bb_u32(w, (uint32_t)v);
    bb_u32(w, (uint32_t)(v >> 32));
}

static void bb_str(struct bb *w, const char *s, size_t n)
{
    w->b[w->n++] = (uint8_t)(n & 0xff);
    w->b[w->n++] = (uint8_t)(n >> 8);
    memcpy(w->b + w->n, s, n);
    w->n += n;
}

static void bb_reg(struct bb *w, const char *name, size_t name_len, const char *token,
                   uint32_t threads)
{
    w->n = 0;
    bb_str(w, name, name_len);
    bb_str(w, token, strlen(token));
    bb_str(w, "cpu", 3);
    bb_str(w, "tcp://x:1", 9);
    bb_u32(w, threads);
    bb_u64(w, 1);
    bb_u64(w, 2);
    bb_str(w, "", 0); /* curve_key: plain mode */
}

static void expect_bad_body(int type, const struct bb *w, const char *needle)
{
    union proto_body o;
    struct hx_diag d = {0};
    ASSERT_ERR(proto_body_decode(type, w->b, w->n, &o, &d), HX_EPROTO);
    ASSERT_CONTAINS(d.msg, needle);
}

TEST(runtime_proto_body_malformed)
{
    struct bb w;
    union proto_body o;
    bb_reg(&w, "w1", 2, "tok", 4);
    ASSERT_OK(proto_body_decode(PROTO_TYPE_REGISTER, w.b, w.n, &o, NULL));
    bb_reg(&w, "w 1", 3, "tok", 4);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "name is empty or has bad characters");
    bb_reg(&w, "", 0, "tok", 4);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "name");
    char longname[80];
    memset(longname, 'a', sizeof(longname));
    bb_reg(&w, longname, 64, "tok", 4);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "name of 64 bytes exceeds 63");
    bb_reg(&w, longname, 63, "tok", 4);
    ASSERT_OK(proto_body_decode(PROTO_TYPE_REGISTER, w.b, w.n, &o, NULL));
    bb_reg(&w, "w\0", 2, "tok", 4);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "name");
    bb_reg(&w, "w1", 2, "", 4);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "token");
    bb_reg(&w, "w1", 2, "to k", 4);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "token");
    bb_reg(&w, "w1", 2, "tok", 0);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "threads 0");
    /* A string length pointing past the end. */
    w.n = 0;
    w.b[w.n++] = 0xff;
    w.b[w.n++] = 0xff;
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "exceeds");
    w.n = 0;
    bb_str(&w, "abc", 3);
    w.b[0] = 40; /* claims 40 bytes, has 3 */
    expect_bad_body(PROTO_TYPE_SHUTDOWN, &w, "truncated");

    w.n = 0;
    bb_u32(&w, 0);
    bb_str(&w, "x", 1);
    expect_bad_body(PROTO_TYPE_REJECT, &w, "unknown reason 0");
    w.n = 0;
    bb_u32(&w, PROTO_REJECT_COUNT_);
    bb_str(&w, "x", 1);
    expect_bad_body(PROTO_TYPE_REJECT, &w, "unknown reason");
    w.n = 0;
    bb_u32(&w, PROTO_REJECT_AUTH);
    bb_str(&w, "bell\a", 5);
    expect_bad_body(PROTO_TYPE_REJECT, &w, "message");

    /* ASSIGN: a peer count that cannot fit must fail before allocating. */
    w.n = 0;
    bb_u32(&w, 0);
    bb_u32(&w, 0);
    bb_u32(&w, 4);
    bb_u32(&w, 8);
    bb_str(&w, "m", 1);
    size_t at_count = w.n;
    bb_u32(&w, 0xffffffffu);
    expect_bad_body(PROTO_TYPE_ASSIGN, &w, "peers do not fit");
    w.n = at_count;
    bb_u32(&w, PROTO_MAX_PEERS + 1);
    for (int i = 0; i < PROTO_MAX_PEERS + 1 && w.n + 16 < sizeof(w.b); i++) {
        bb_str(&w, "p", 1);
        bb_str(&w, "e", 1);
        bb_u32(&w, 0);
        bb_str(&w, "", 0);
    }
    expect_bad_body(PROTO_TYPE_ASSIGN, &w, "peers do not fit");
    w.n = at_count;
    bb_u32(&w, 2);
    bb_str(&w, "p", 1);
    bb_str(&w, "e", 1);
    bb_u32(&w, 0);
    bb_str(&w, "", 0);
    bb_str(&w, "bad name", 8);
    bb_str(&w, "e", 1);
    bb_u32(&w, 0);
    bb_str(&w, "", 0);
    expect_bad_body(PROTO_TYPE_ASSIGN, &w, "peer.name");
    /* Layer range outside the model, and an empty model. */
    w.n = 0;
    bb_u32(&w, 0);
    bb_u32(&w, 4);
    bb_u32(&w, 9);
    bb_u32(&w, 8);
    bb_str(&w, "m", 1);
    bb_u32(&w, 0);
    expect_bad_body(PROTO_TYPE_ASSIGN, &w, "bad layer range [4, 9) of 8");
    w.n = 0;
    bb_u32(&w, 0);
    bb_u32(&w, 0);
    bb_u32(&w, 8);
    bb_u32(&w, 8);
    bb_str(&w, "", 0);
    bb_u32(&w, 0);
    expect_bad_body(PROTO_TYPE_ASSIGN, &w, "model");

    w.n = 0;
    bb_u32(&w, 0xffffffffu); /* token id -1 */
    bb_u32(&w, 0);
    expect_bad_body(PROTO_TYPE_TOKEN, &w, "negative token id");
    float pos = 0.5f;
    uint32_t bits;
    memcpy(&bits, &pos, 4);
    w.n = 0;
    bb_u32(&w, 5);
    bb_u32(&w, bits);
    expect_bad_body(PROTO_TYPE_TOKEN, &w, "logprob");
    w.n = 0;
    bb_u32(&w, 5);
    bb_u32(&w, 0x7fc00000u); /* NaN */
    expect_bad_body(PROTO_TYPE_TOKEN, &w, "logprob");

    w.n = 0;
    bb_u32(&w, 0);
    bb_str(&w, "ok", 2);
    expect_bad_body(PROTO_TYPE_ERROR, &w, "not an error");

    w.n = 0;
    expect_bad_body(PROTO_TYPE_PREFILL, &w, "has no body");
    expect_bad_body(0, &w, "has no body");
    expect_bad_body(200, &w, "has no body");
}

TEST(runtime_proto_encoder_refuses_invalid_bodies)
{
    union proto_body b;
    memset(&b, 0, sizeof(b));
    snprintf(b.reg.name, sizeof(b.reg.name), "has space");
    snprintf(b.reg.token, sizeof(b.reg.token), "t");
    snprintf(b.reg.backend, sizeof(b.reg.backend), "cpu");
    snprintf(b.reg.endpoint, sizeof(b.reg.endpoint), "tcp://a:1");
    b.reg.threads = 1;
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_adds(&sb, "keep");
    struct hx_diag d = {0};
    ASSERT_ERR(proto_body_encode(PROTO_TYPE_REGISTER, &b, &sb, &d), HX_EPROTO);
    ASSERT_CONTAINS(d.msg, "REGISTER.name");
    ASSERT_STR_EQ(sb.buf, "keep"); /* unchanged on failure */
    snprintf(b.reg.name, sizeof(b.reg.name), "ok");
    snprintf(b.reg.backend, sizeof(b.reg.backend), "CUDA");
    ASSERT_ERR(proto_body_encode(PROTO_TYPE_REGISTER, &b, &sb, NULL), HX_EPROTO);
    memset(&b, 0, sizeof(b));
    b.assign.layer_start = 0;
    b.assign.layer_end = 4;
    b.assign.n_layers = 4;
    snprintf(b.assign.model, sizeof(b.assign.model), "m");
    b.assign.n_peers = 2; /* but no array */
    ASSERT_ERR(proto_body_encode(PROTO_TYPE_ASSIGN, &b, &sb, NULL), HX_EPROTO);
    b.assign.n_peers = 0;
    ASSERT_OK(proto_body_encode(PROTO_TYPE_ASSIGN, &b, &sb, NULL));
    memset(&b, 0, sizeof(b));
    b.error.code = 0;
    ASSERT_ERR(proto_body_encode(PROTO_TYPE_ERROR, &b, &sb, NULL), HX_EPROTO);
    ASSERT_ERR(proto_body_encode(PROTO_TYPE_DECODE, &b, &sb, NULL), HX_EPROTO);
    strbuf_release(&sb);
}

/* Deterministic xorshift for the mutation test. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

TEST(runtime_proto_random_mutations_never_crash)
{
    /* Mutate valid messages at random; decoding must succeed or fail cleanly, and any
     * header it accepts must re-encode to the same bytes. */
    struct proto_header seeds[3] = {prefill_tokens(), prefill_act(), prefill_act()};
    seeds[2].type = PROTO_TYPE_DECODE;
    seeds[2].n_tokens = 1;
    seeds[2].payload_bytes = 288 * 2;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    long accepted = 0;
    for (int iter = 0; iter < 30000; iter++) {
        uint8_t buf[PROTO_HEADER_BYTES];
        encoded(&seeds[iter % 3], buf);
        int flips = 1 + (int)(rng_next(&s) % 3);
        for (int k = 0; k < flips; k++) {
            buf[rng_next(&s) % PROTO_HEADER_BYTES] = (uint8_t)rng_next(&s);
        }
        struct proto_header h;
        if (proto_header_decode(buf, sizeof(buf), &h, NULL) == HX_OK) {
            accepted++;
            uint8_t again[PROTO_HEADER_BYTES];
            ASSERT_OK(proto_header_encode(&h, again, NULL));
            ASSERT(memcmp(again, buf, sizeof(buf)) == 0);
        }
    }
    ASSERT(accepted > 0); /* some flips hit free fields (seed, send time) */
    ASSERT(accepted < 30000);
}

TEST(runtime_proto_header_advance_along_route)
{
    struct proto_header h = prefill_tokens(); /* hop 0 receives 5 token ids */
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(proto_header_advance(&h, PROTO_DTYPE_F16, 288, &d), &d);
    ASSERT_EQ(h.cur_hop, 1);
    ASSERT_EQ(h.dtype, PROTO_DTYPE_F16);
    ASSERT_EQ(h.hidden, 288);
    ASSERT_EQ(h.payload_bytes, 5ull * 288 * 2);
    ASSERT_EQ(h.request_id, 0x0102030405060708ull); /* kept */
    ASSERT_OK(proto_header_check(&h, NULL));
    ASSERT_OK(proto_header_advance(&h, PROTO_DTYPE_F32, 288, NULL));
    ASSERT_EQ(h.cur_hop, 2);
    ASSERT_EQ(h.payload_bytes, 5ull * 288 * 4);
    struct proto_header before = h;
    ASSERT_ERR(proto_header_advance(&h, PROTO_DTYPE_F32, 288, &d), HX_EPROTO);
    ASSERT_CONTAINS(d.msg, "last of 3");
    assert_header_eq(&before, &h); /* unchanged on failure */
    h = prefill_tokens();
    ASSERT_ERR(proto_header_advance(&h, PROTO_DTYPE_I32, 288, NULL), HX_EPROTO);
    ASSERT_ERR(proto_header_advance(&h, PROTO_DTYPE_F32, 0, NULL), HX_EPROTO);
    ASSERT_EQ(h.cur_hop, 0);
    struct proto_header c;
    proto_header_init(&c, PROTO_TYPE_TOKEN);
    ASSERT_ERR(proto_header_advance(&c, PROTO_DTYPE_F32, 8, NULL), HX_EPROTO);
}

/* A valid REGISTER with the optional trailing device string (or without when dev is NULL). */
static void bb_reg_dev(struct bb *w, const char *dev, size_t dev_len)
{
    bb_reg(w, "w1", 2, "tok", 4);
    if (dev) {
        bb_str(w, dev, dev_len);
    }
}

static void bb_hb(struct bb *w, const char *dev, size_t dev_len)
{
    w->n = 0;
    bb_u64(w, 7);
    bb_u32(w, 1);
    bb_u64(w, 100);
    bb_u64(w, 200);
    for (int i = 0; i < 4; i++) {
        bb_u64(w, (uint64_t)i); /* refusal counters */
    }
    if (dev) {
        bb_str(w, dev, dev_len);
    }
}

/* Re-encoding a decoded body gives the same bytes (the encoding stays canonical). */
static void expect_reencodes(int type, const struct bb *w, union proto_body *o)
{
    ASSERT_OK(proto_body_decode(type, w->b, w->n, o, NULL));
    struct strbuf sb;
    strbuf_init(&sb);
    ASSERT_OK(proto_body_encode(type, o, &sb, NULL));
    ASSERT_EQ(sb.len, w->n);
    ASSERT(memcmp(sb.buf, w->b, w->n) == 0);
    strbuf_release(&sb);
}

TEST(runtime_proto_device_field_roundtrip_and_old_bodies)
{
    union proto_body b;
    union proto_body o;
    memset(&b, 0, sizeof(b));
    snprintf(b.reg.name, sizeof(b.reg.name), "h100-0");
    snprintf(b.reg.token, sizeof(b.reg.token), "tok");
    snprintf(b.reg.backend, sizeof(b.reg.backend), "cuda");
    snprintf(b.reg.endpoint, sizeof(b.reg.endpoint), "tcp://10.0.0.3:6001");
    b.reg.threads = 1;
    b.reg.mem_bytes = 24ull << 30;
    snprintf(b.reg.device, sizeof(b.reg.device), "cuda:0 NVIDIA H100 80GB HBM3");
    struct strbuf sb;
    strbuf_init(&sb);
    ASSERT_OK(proto_body_encode(PROTO_TYPE_REGISTER, &b, &sb, NULL));
    ASSERT_OK(proto_body_decode(PROTO_TYPE_REGISTER, sb.buf, sb.len, &o, NULL));
    ASSERT_STR_EQ(o.reg.device, "cuda:0 NVIDIA H100 80GB HBM3");
    ASSERT_EQ(o.reg.mem_bytes, 24ull << 30);
    /* the field is the last 2 + 28 bytes: without them it is a body of before the field */
    size_t old_len = sb.len - 2 - strlen(b.reg.device);
    ASSERT_OK(proto_body_decode(PROTO_TYPE_REGISTER, sb.buf, old_len, &o, NULL));
    ASSERT_STR_EQ(o.reg.device, "");
    ASSERT_STR_EQ(o.reg.backend, "cuda");
    /* and a body without the field encodes without it */
    b.reg.device[0] = '\0';
    struct strbuf sb2;
    strbuf_init(&sb2);
    ASSERT_OK(proto_body_encode(PROTO_TYPE_REGISTER, &b, &sb2, NULL));
    ASSERT_EQ(sb2.len, old_len);
    ASSERT(memcmp(sb2.buf, sb.buf, old_len) == 0);
    strbuf_release(&sb2);
    strbuf_release(&sb);

    memset(&b, 0, sizeof(b));
    b.heartbeat.time_us = -5;
    b.heartbeat.n_active = 3;
    b.heartbeat.kv_used_bytes = 10;
    b.heartbeat.kv_total_bytes = 20;
    snprintf(b.heartbeat.device, sizeof(b.heartbeat.device), "cpu");
    strbuf_init(&sb);
    ASSERT_OK(proto_body_encode(PROTO_TYPE_HEARTBEAT, &b, &sb, NULL));
    ASSERT_EQ(sb.len, 60 + 2 + 3); /* v2: 4 counters (32 bytes) after kv_total_bytes */
    ASSERT_OK(proto_body_decode(PROTO_TYPE_HEARTBEAT, sb.buf, sb.len, &o, NULL));
    ASSERT_STR_EQ(o.heartbeat.device, "cpu");
    ASSERT_EQ(o.heartbeat.n_active, 3);
    ASSERT_EQ(o.heartbeat.time_us, -5);
    ASSERT_OK(proto_body_decode(PROTO_TYPE_HEARTBEAT, sb.buf, 60, &o, NULL));
    ASSERT_STR_EQ(o.heartbeat.device, "");
    strbuf_release(&sb);

    /* the longest device string fits; hand-built bodies re-encode byte for byte */
    char dev[PROTO_DEVICE_MAX + 8];
    memset(dev, 'x', sizeof(dev));
    struct bb w;
    bb_reg_dev(&w, dev, PROTO_DEVICE_MAX);
    expect_reencodes(PROTO_TYPE_REGISTER, &w, &o);
    ASSERT_EQ(strlen(o.reg.device), PROTO_DEVICE_MAX);
    bb_reg_dev(&w, NULL, 0);
    expect_reencodes(PROTO_TYPE_REGISTER, &w, &o);
    bb_hb(&w, "cuda:3 NVIDIA L4", 16);
    expect_reencodes(PROTO_TYPE_HEARTBEAT, &w, &o);
    ASSERT_STR_EQ(o.heartbeat.device, "cuda:3 NVIDIA L4");
}

TEST(runtime_proto_device_field_malformed)
{
    struct bb w;
    char dev[PROTO_DEVICE_MAX + 8];
    memset(dev, 'x', sizeof(dev));
    /* oversized */
    bb_reg_dev(&w, dev, PROTO_DEVICE_MAX + 1);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "device of 128 bytes exceeds 127");
    bb_hb(&w, dev, PROTO_DEVICE_MAX + 1);
    expect_bad_body(PROTO_TYPE_HEARTBEAT, &w, "device of 128 bytes exceeds 127");
    /* present but empty: not canonical (absent is how "no device" is said) */
    bb_reg_dev(&w, "", 0);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "device is empty or has bad characters");
    bb_hb(&w, "", 0);
    expect_bad_body(PROTO_TYPE_HEARTBEAT, &w, "device is empty or has bad characters");
    /* control characters, DEL, bytes >= 0x80 */
    bb_reg_dev(&w, "cuda:0\nX", 8);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "device");
    bb_reg_dev(&w, "cpu\x7f", 4);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "device");
    bb_hb(&w, "GPU \xc3\xa9", 6);
    expect_bad_body(PROTO_TYPE_HEARTBEAT, &w, "device");
    bb_hb(&w, "a\0b", 3);
    expect_bad_body(PROTO_TYPE_HEARTBEAT, &w, "device");
    /* one stray byte after mem_bytes, a length past the end, bytes after the field */
    bb_reg_dev(&w, NULL, 0);
    w.b[w.n++] = 3;
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "trailing");
    bb_hb(&w, "cpu", 3);
    w.b[60] = 9; /* claims 9 bytes, has 3 */
    expect_bad_body(PROTO_TYPE_HEARTBEAT, &w, "truncated at device");
    bb_hb(&w, "cpu", 3);
    w.b[w.n++] = 0;
    expect_bad_body(PROTO_TYPE_HEARTBEAT, &w, "trailing");
    bb_reg_dev(&w, "cpu", 3);
    bb_str(&w, "cpu", 3);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "trailing");

    /* the encoder refuses what the decoder would */
    union proto_body b;
    memset(&b, 0, sizeof(b));
    snprintf(b.reg.name, sizeof(b.reg.name), "w1");
    snprintf(b.reg.token, sizeof(b.reg.token), "tok");
    snprintf(b.reg.backend, sizeof(b.reg.backend), "cpu");
    snprintf(b.reg.endpoint, sizeof(b.reg.endpoint), "tcp://x:1");
    b.reg.threads = 1;
    snprintf(b.reg.device, sizeof(b.reg.device), "cpu\tx");
    struct strbuf sb;
    strbuf_init(&sb);
    struct hx_diag d = {0};
    ASSERT_ERR(proto_body_encode(PROTO_TYPE_REGISTER, &b, &sb, &d), HX_EPROTO);
    ASSERT_CONTAINS(d.msg, "REGISTER.device");
    memset(b.reg.device, 'x', sizeof(b.reg.device)); /* no terminator within 128 bytes */
    hx_diag_clear(&d);
    ASSERT_ERR(proto_body_encode(PROTO_TYPE_REGISTER, &b, &sb, &d), HX_EPROTO);
    ASSERT_CONTAINS(d.msg, "REGISTER.device longer than 127");
    memset(&b, 0, sizeof(b));
    snprintf(b.heartbeat.device, sizeof(b.heartbeat.device), "\x01");
    hx_diag_clear(&d);
    ASSERT_ERR(proto_body_encode(PROTO_TYPE_HEARTBEAT, &b, &sb, &d), HX_EPROTO);
    ASSERT_CONTAINS(d.msg, "HEARTBEAT.device");
    ASSERT_EQ(sb.len, 0);
    strbuf_release(&sb);
}

TEST(runtime_proto_curve_key_fields)
{
    /* REGISTER: a key of 40 Z85 characters, or empty (plain mode); nothing else */
    struct bb w;
    union proto_body o;
    const char *key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    bb_reg(&w, "w1", 2, "tok", 4);
    w.n -= 2;
    bb_str(&w, key, 40);
    ASSERT_OK(proto_body_decode(PROTO_TYPE_REGISTER, w.b, w.n, &o, NULL));
    ASSERT_STR_EQ(o.reg.curve_key, key);
    w.n -= 42;
    bb_str(&w, key, 39);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "not a Z85 CURVE key");
    w.n -= 41;
    bb_str(&w, "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{h\\\"", 40);
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "curve_key of 40 bytes is not a Z85 CURVE key");
    w.n -= 42;
    bb_str(&w, "#####w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID", 40); /* a group past 2^32 */
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "not a Z85 CURVE key");
    /* a body of version 1 (no key field) is truncated now */
    bb_reg(&w, "w1", 2, "tok", 4);
    w.n -= 2;
    expect_bad_body(PROTO_TYPE_REGISTER, &w, "truncated at curve_key");
    /* the encoder refuses a bad key too, naming the field */
    union proto_body b;
    memset(&b, 0, sizeof(b));
    b.assign.layer_start = 0;
    b.assign.layer_end = 1;
    b.assign.n_layers = 1;
    snprintf(b.assign.model, sizeof(b.assign.model), "m");
    struct proto_peer p = {"w", "tcp://h:1", 0, "short"};
    b.assign.n_peers = 1;
    b.assign.peers = &p;
    struct strbuf sb;
    strbuf_init(&sb);
    struct hx_diag d = {0};
    ASSERT_ERR(proto_body_encode(PROTO_TYPE_ASSIGN, &b, &sb, &d), HX_EPROTO);
    ASSERT_CONTAINS(d.msg, "ASSIGN.peer.curve_key");
    ASSERT_EQ(sb.len, 0);
    strbuf_release(&sb);
    ASSERT(proto_curve_key_ok(key));
}
