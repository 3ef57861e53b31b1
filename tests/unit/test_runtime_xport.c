/*
 * test_runtime_xport.c - the ZeroMQ transport on loopback (tcp://127.0.0.1, ephemeral ports):
 * 2-frame round trips with zero-copy payloads, a 4 MiB activation payload, malformed frames
 * dropped while the next good frame is delivered, the registration handshake (wrong token
 * rejected), and the pure liveness tracker and constant-time token comparison.
 * Every wait is bounded (2 s at most), so a broken transport fails instead of hanging.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <zmq.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/strbuf.h"
#include "runtime/xport.h"
#include "test.h"

#define WAIT_MS 2000

struct pair {
    struct xport_ctx *ctx;
    struct xport *router;
    struct xport *dealer;
};

static void pair_open(struct pair *p, const char *name, unsigned flags)
{
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(xport_ctx_new(&p->ctx, &d), &d);
    ASSERT_OK_DIAG(xport_router_bind(p->ctx, "tcp://127.0.0.1:*", &p->router, &d), &d);
    ASSERT(strncmp(xport_endpoint(p->router), "tcp://127.0.0.1:", 16) == 0);
    ASSERT(strcmp(xport_endpoint(p->router), "tcp://127.0.0.1:*") != 0); /* port resolved */
    ASSERT_OK_DIAG(
        xport_dealer_connect(p->ctx, xport_endpoint(p->router), name, flags, &p->dealer, &d), &d);
}

static void pair_close(struct pair *p)
{
    xport_free(p->dealer);
    xport_free(p->router);
    xport_ctx_free(p->ctx);
}

static atomic_int freed_count;

static void count_free(void *data, void *hint)
{
    (void)hint;
    xfree(data);
    atomic_fetch_add(&freed_count, 1);
}

static void wait_freed(int want)
{
    int64_t end = hx_clock_now_us() + WAIT_MS * 1000;
    while (atomic_load(&freed_count) < want && hx_clock_now_us() < end) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ(atomic_load(&freed_count), want);
}

static struct proto_header tokens_header(uint64_t rid, uint32_t n)
{
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_PREFILL);
    h.request_id = rid;
    h.n_hops = 2;
    h.hops[0] = (struct proto_hop){0, 0, 3};
    h.hops[1] = (struct proto_hop){1, 3, 6};
    h.n_tokens = n;
    h.dtype = PROTO_DTYPE_I32;
    h.payload_bytes = 4ull * n;
    h.temperature = 1.0f;
    h.top_p = 1.0f;
    return h;
}

TEST(runtime_xport_two_frame_roundtrip)
{
    struct pair p;
    pair_open(&p, "worker-1", 0);
    struct hx_diag d = {0};

    /* worker -> coordinator: a control message with a body. */
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_HEARTBEAT);
    union proto_body b;
    memset(&b, 0, sizeof(b));
    b.heartbeat.n_active = 3;
    b.heartbeat.kv_used_bytes = 1000;
    ASSERT_OK_DIAG(xport_send_body(p.dealer, NULL, &h, &b, &d), &d);
    struct xport_msg m;
    ASSERT_OK_DIAG(xport_recv(p.router, WAIT_MS, &m, &d), &d);
    ASSERT_STR_EQ(m.peer, "worker-1");
    ASSERT_EQ(m.hdr.type, PROTO_TYPE_HEARTBEAT);
    ASSERT_EQ(m.body.heartbeat.n_active, 3);
    ASSERT_EQ(m.body.heartbeat.kv_used_bytes, 1000);
    ASSERT_EQ(m.payload_len, m.hdr.payload_bytes);
    xport_msg_release(&m);

    /* coordinator -> worker by name: tokens, zero-copy. */
    atomic_store(&freed_count, 0);
    int32_t *toks = xmalloc(7 * sizeof(*toks));
    for (int i = 0; i < 7; i++) {
        toks[i] = 1000 + i * i;
    }
    struct proto_header th = tokens_header(42, 7);
    ASSERT_OK_DIAG(xport_send(p.router, "worker-1", &th, toks, 28, count_free, NULL, &d), &d);
    ASSERT_OK_DIAG(xport_recv(p.dealer, WAIT_MS, &m, &d), &d);
    ASSERT_STR_EQ(m.peer, "");
    ASSERT_EQ(m.hdr.type, PROTO_TYPE_PREFILL);
    ASSERT_EQ(m.hdr.request_id, 42);
    ASSERT_EQ(m.payload_len, 28);
    for (int i = 0; i < 7; i++) {
        int32_t v;
        memcpy(&v, (const char *)m.payload + 4 * i, 4);
        ASSERT_EQ(v, 1000 + i * i);
    }
    xport_msg_release(&m);
    wait_freed(1); /* the transport released our buffer exactly once */

    /* Copying send (no free callback): the caller keeps the buffer. */
    int32_t stack_toks[2] = {5, 6};
    th = tokens_header(43, 2);
    ASSERT_OK(xport_send(p.router, "worker-1", &th, stack_toks, 8, NULL, NULL, &d));
    ASSERT_OK(xport_recv(p.dealer, WAIT_MS, &m, &d));
    ASSERT_EQ(m.hdr.request_id, 43);
    xport_msg_release(&m);
    xport_msg_release(&m); /* idempotent */

    struct xport_stats st;
    xport_stats_get(p.router, &st);
    ASSERT_EQ(st.sent, 2);
    ASSERT_EQ(st.received, 1);
    ASSERT_EQ(st.dropped, 0);
    pair_close(&p);
}

TEST(runtime_xport_large_payload_4mib)
{
    /* The data-plane shape: worker A's DEALER -> worker B's ROUTER, 4 MiB of f32 activations. */
    struct pair p;
    pair_open(&p, "A", XPORT_DEALER_IMMEDIATE);
    struct hx_diag d = {0};
    const uint32_t n_tok = 1024;
    const uint32_t hidden = 1024;
    size_t bytes = (size_t)n_tok * hidden * 4;
    ASSERT_EQ(bytes, 4u << 20);
    struct proto_header h = tokens_header(7, n_tok);
    h.cur_hop = 1;
    h.dtype = PROTO_DTYPE_F32;
    h.hidden = hidden;
    h.payload_bytes = bytes;
    atomic_store(&freed_count, 0);
    const int reps = 8;
    int64_t t0 = hx_clock_now_us();
    for (int r = 0; r < reps; r++) {
        uint32_t *act = xmalloc(bytes);
        for (size_t i = 0; i < bytes / 4; i++) {
            act[i] = (uint32_t)(i * 2654435761u) ^ (uint32_t)r;
        }
        h.seq = (uint32_t)r;
        /* IMMEDIATE: the first send may wait for the connection to complete. */
        ASSERT_OK_DIAG(xport_send(p.dealer, NULL, &h, act, bytes, count_free, NULL, &d), &d);
        struct xport_msg m;
        ASSERT_OK_DIAG(xport_recv(p.router, WAIT_MS, &m, &d), &d);
        ASSERT_STR_EQ(m.peer, "A");
        ASSERT_EQ(m.hdr.seq, r);
        ASSERT_EQ(m.payload_len, bytes);
        const uint8_t *pl = m.payload;
        for (size_t i = 0; i < bytes / 4; i += 4099) {
            uint32_t v;
            memcpy(&v, pl + 4 * i, 4);
            ASSERT_EQ(v, (uint32_t)(i * 2654435761u) ^ (uint32_t)r);
        }
        xport_msg_release(&m);
    }
    double secs = (double)(hx_clock_now_us() - t0) * 1e-6;
    printf("# xport loopback: %d x 4 MiB (incl. fill+check) in %.3f s = %.2f GB/s\n", reps, secs,
           (double)reps * (double)bytes / secs / 1e9);
    wait_freed(reps);
    pair_close(&p);
}

TEST(runtime_xport_malformed_frames_dropped_next_good_delivered)
{
    struct pair p;
    pair_open(&p, "w-bad", 0);
    struct hx_diag d = {0};
    uint8_t good_hdr[PROTO_HEADER_BYTES];
    struct proto_header th = tokens_header(5, 2);
    ASSERT_OK(proto_header_encode(&th, good_hdr, NULL));
    int32_t toks[2] = {1, 2};

    /* 1: a lone frame. */
    const void *f1[1] = {"junk"};
    size_t l1[1] = {4};
    ASSERT_OK(xport_send_raw(p.dealer, f1, l1, 1, &d));
    /* 2: three frames. */
    const void *f3[3] = {good_hdr, toks, toks};
    size_t l3[3] = {sizeof(good_hdr), 8, 8};
    ASSERT_OK(xport_send_raw(p.dealer, f3, l3, 3, &d));
    /* 3: a header with a bad magic. */
    uint8_t bad_hdr[PROTO_HEADER_BYTES];
    memcpy(bad_hdr, good_hdr, sizeof(bad_hdr));
    bad_hdr[0] = 'X';
    const void *f2[2] = {bad_hdr, toks};
    size_t l2[2] = {sizeof(bad_hdr), 8};
    ASSERT_OK(xport_send_raw(p.dealer, f2, l2, 2, &d));
    /* 4: a good header with a payload of the wrong size. */
    f2[0] = good_hdr;
    l2[1] = 4;
    ASSERT_OK(xport_send_raw(p.dealer, f2, l2, 2, &d));
    /* 5: a control header whose body does not decode. */
    struct proto_header ch;
    proto_header_init(&ch, PROTO_TYPE_REGISTER_ACK);
    ch.payload_bytes = 3;
    uint8_t ctl_hdr[PROTO_HEADER_BYTES];
    ASSERT_OK(proto_header_encode(&ch, ctl_hdr, NULL));
    f2[0] = ctl_hdr;
    l2[1] = 3;
    ASSERT_OK(xport_send_raw(p.dealer, f2, l2, 2, &d));
    /* 6: a truncated header. */
    f2[0] = good_hdr;
    l2[0] = 100;
    l2[1] = 8;
    ASSERT_OK(xport_send_raw(p.dealer, f2, l2, 2, &d));
    /* 7: a message from a peer without a name identity (a raw ZeroMQ DEALER). */
    void *zctx = zmq_ctx_new();
    void *anon = zmq_socket(zctx, ZMQ_DEALER);
    ASSERT(anon != NULL);
    int linger = 0;
    zmq_setsockopt(anon, ZMQ_LINGER, &linger, sizeof(linger));
    ASSERT_EQ(zmq_connect(anon, xport_endpoint(p.router)), 0);
    ASSERT_EQ(zmq_send(anon, good_hdr, sizeof(good_hdr), ZMQ_SNDMORE), (int)sizeof(good_hdr));
    ASSERT_EQ(zmq_send(anon, toks, 8, 0), 8);

    /* Then, on the same connection, a good message. */
    ASSERT_OK(xport_send(p.dealer, NULL, &th, toks, 8, NULL, NULL, &d));
    struct xport_msg m;
    ASSERT_OK_DIAG(xport_recv(p.router, WAIT_MS, &m, &d), &d);
    ASSERT_STR_EQ(m.peer, "w-bad");
    ASSERT_EQ(m.hdr.request_id, 5);
    xport_msg_release(&m);
    /* The anonymous message may arrive after the good one: give it time, then count. */
    ASSERT_ERR(xport_recv(p.router, 200, &m, NULL), HX_ETIMEDOUT);
    struct xport_stats st;
    xport_stats_get(p.router, &st);
    ASSERT_EQ(st.dropped, 7);
    ASSERT_EQ(st.received, 1);
    ASSERT(st.last_drop[0] != '\0');
    /* The connection still works in the other direction too. */
    ASSERT_OK(xport_send(p.router, "w-bad", &th, toks, 8, NULL, NULL, &d));
    ASSERT_OK(xport_recv(p.dealer, WAIT_MS, &m, &d));
    xport_msg_release(&m);
    zmq_close(anon);
    zmq_ctx_term(zctx);
    pair_close(&p);
}

TEST(runtime_xport_send_errors_and_timeouts)
{
    struct pair p;
    pair_open(&p, "w", 0);
    struct hx_diag d = {0};
    struct proto_header th = tokens_header(1, 1);
    int32_t tok = 3;
    /* Unknown peer on a ROUTER: refused (ROUTER_MANDATORY), and a zero-copy payload stays
     * ours: the free callback must not run. */
    atomic_store(&freed_count, 0);
    int32_t *heap = xmalloc(4);
    ASSERT_ERR(xport_send(p.router, "nobody", &th, heap, 4, count_free, NULL, &d), HX_ECLOSED);
    ASSERT_CONTAINS(d.msg, "nobody");
    ASSERT_EQ(atomic_load(&freed_count), 0);
    xfree(heap);
    /* Misuse. */
    ASSERT_ERR(xport_send(p.router, NULL, &th, &tok, 4, NULL, NULL, NULL), HX_EINVAL);
    ASSERT_ERR(xport_send(p.dealer, "x", &th, &tok, 4, NULL, NULL, NULL), HX_EINVAL);
    ASSERT_ERR(xport_send(p.dealer, NULL, &th, &tok, 3, NULL, NULL, NULL), HX_EPROTO);
    th.top_p = 2.0f;
    ASSERT_ERR(xport_send(p.dealer, NULL, &th, &tok, 4, NULL, NULL, NULL), HX_EPROTO);
    struct xport *bad = NULL;
    ASSERT_ERR(xport_dealer_connect(p.ctx, "tcp://127.0.0.1:1", "bad name", 0, &bad, &d),
               HX_EINVAL);
    ASSERT(bad == NULL);
    hx_diag_clear(&d);
    ASSERT_ERR(xport_router_bind(p.ctx, "nonsense://x", &bad, &d), HX_EINVAL);
    /* Receive timeouts are honoured. */
    struct xport_msg m;
    int64_t t0 = hx_clock_now_us();
    ASSERT_ERR(xport_recv(p.router, 50, &m, NULL), HX_ETIMEDOUT);
    int64_t el = hx_clock_now_us() - t0;
    ASSERT_GE(el, 45000);
    ASSERT_LE(el, 1000000);
    ASSERT_ERR(xport_recv(p.router, 0, &m, NULL), HX_ETIMEDOUT);
    /* Poll sees which socket has input. */
    th.top_p = 1.0f;
    ASSERT_OK(xport_send(p.dealer, NULL, &th, &tok, 4, NULL, NULL, NULL));
    struct xport *both[2] = {p.dealer, p.router};
    unsigned char rd[2];
    ASSERT_EQ(xport_poll(both, 2, WAIT_MS, rd, NULL), 1);
    ASSERT_EQ(rd[0], 0);
    ASSERT_EQ(rd[1], 1);
    ASSERT_OK(xport_recv(p.router, 0, &m, NULL));
    xport_msg_release(&m);
    ASSERT_EQ(xport_poll(both, 2, 20, rd, NULL), 0);
    pair_close(&p);
}

/* A coordinator thread that answers REGISTER messages. */
struct coord_args {
    struct xport *router;
    int n_expected;
    int n_rejected;
};

static void *coord_main(void *arg)
{
    struct coord_args *a = arg;
    for (int i = 0; i < a->n_expected; i++) {
        struct xport_msg m;
        if (xport_recv(a->router, WAIT_MS, &m, NULL) != HX_OK) {
            return NULL;
        }
        struct proto_reject rej;
        struct proto_header h;
        union proto_body b;
        memset(&b, 0, sizeof(b));
        if (xport_register_check(&m, "correct-horse", &rej) == HX_OK) {
            proto_header_init(&h, PROTO_TYPE_REGISTER_ACK);
            b.ack.node = (uint32_t)(10 + i);
            b.ack.heartbeat_ms = 250;
        } else {
            proto_header_init(&h, PROTO_TYPE_REJECT);
            b.reject = rej;
            a->n_rejected++;
        }
        xport_send_body(a->router, m.peer, &h, &b, NULL);
        xport_msg_release(&m);
    }
    return NULL;
}

static void make_reg(struct proto_register *r, const char *name, const char *token)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->token, sizeof(r->token), "%s", token);
    snprintf(r->backend, sizeof(r->backend), "cpu");
    snprintf(r->endpoint, sizeof(r->endpoint), "tcp://127.0.0.1:7000");
    r->threads = 2;
}

TEST(runtime_xport_register_wrong_token_rejected)
{
    struct hx_diag d = {0};
    struct xport_ctx *ctx;
    ASSERT_OK(xport_ctx_new(&ctx, &d));
    struct xport *router;
    ASSERT_OK(xport_router_bind(ctx, "tcp://127.0.0.1:*", &router, &d));
    struct coord_args args = {router, 3, 0};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, coord_main, &args), 0);

    const char *names[3] = {"intruder", "w-good", "w-liar"};
    struct xport *dealers[3];
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(xport_dealer_connect(ctx, xport_endpoint(router), names[i], 0, &dealers[i], &d));
    }
    struct proto_register reg;
    struct proto_register_ack ack;
    make_reg(&reg, "intruder", "correct-horsE");
    hx_diag_clear(&d);
    ASSERT_ERR(xport_register(dealers[0], &reg, WAIT_MS, &ack, &d), HX_EAUTH);
    ASSERT_CONTAINS(d.msg, "authentication failed");
    ASSERT_CONTAINS(d.msg, "intruder");
    make_reg(&reg, "w-good", "correct-horse");
    hx_diag_clear(&d);
    ASSERT_OK_DIAG(xport_register(dealers[1], &reg, WAIT_MS, &ack, &d), &d);
    ASSERT_EQ(ack.heartbeat_ms, 250);
    ASSERT_EQ(ack.node, 11);
    /* Right token, but the body claims another name than the connection identity. */
    make_reg(&reg, "w-good", "correct-horse");
    hx_diag_clear(&d);
    ASSERT_ERR(xport_register(dealers[2], &reg, WAIT_MS, &ack, &d), HX_EINVAL);
    ASSERT_CONTAINS(d.msg, "identity");
    pthread_join(th, NULL);
    ASSERT_EQ(args.n_rejected, 2);
    /* Nobody answers: a bounded timeout. */
    hx_diag_clear(&d);
    ASSERT_ERR(xport_register(dealers[1], &reg, 100, &ack, &d), HX_ETIMEDOUT);
    for (int i = 0; i < 3; i++) {
        xport_free(dealers[i]);
    }
    xport_free(router);
    xport_ctx_free(ctx);
}

TEST(runtime_xport_token_equal)
{
    ASSERT_EQ(xport_token_equal("secret", "secret"), 1);
    ASSERT_EQ(xport_token_equal("secret", "secreT"), 0);
    ASSERT_EQ(xport_token_equal("secret", "Secret"), 0);
    ASSERT_EQ(xport_token_equal("secret", "secre"), 0);
    ASSERT_EQ(xport_token_equal("secre", "secret"), 0);
    ASSERT_EQ(xport_token_equal("secret", ""), 0);
    ASSERT_EQ(xport_token_equal(NULL, "x"), 0);
    ASSERT_EQ(xport_token_equal("x", NULL), 0);
    char a[PROTO_AUTH_MAX + 2];
    char b[PROTO_AUTH_MAX + 2];
    memset(a, 'k', sizeof(a));
    memset(b, 'k', sizeof(b));
    a[PROTO_AUTH_MAX] = b[PROTO_AUTH_MAX] = '\0'; /* the longest valid token */
    ASSERT_EQ(xport_token_equal(a, b), 1);
    b[PROTO_AUTH_MAX - 1] = 'j';
    ASSERT_EQ(xport_token_equal(a, b), 0);
    a[PROTO_AUTH_MAX] = b[PROTO_AUTH_MAX] = 'k'; /* one byte too long: never equal */
    a[PROTO_AUTH_MAX + 1] = b[PROTO_AUTH_MAX + 1] = '\0';
    b[PROTO_AUTH_MAX - 1] = 'k';
    ASSERT_EQ(xport_token_equal(a, b), 0);
}

TEST(runtime_xport_liveness_tracker)
{
    struct xport_live *l;
    xport_live_new(3000000, &l); /* 3 s */
    ASSERT_EQ(xport_live_next_deadline(l), INT64_MAX);
    xport_live_seen(l, "a", 1000000);
    xport_live_seen(l, "b", 2000000);
    xport_live_seen(l, "c", 2500000);
    ASSERT_EQ(xport_live_count(l), 3);
    ASSERT_EQ(xport_live_next_deadline(l), 4000000);
    ASSERT_EQ(xport_live_alive(l, "a", 4000000), 1); /* exactly at the deadline: alive */
    ASSERT_EQ(xport_live_alive(l, "a", 4000001), 0);
    ASSERT_EQ(xport_live_alive(l, "zz", 0), 0);
    xport_live_seen(l, "a", 3900000); /* a heartbeat arrives in time */
    xport_live_seen(l, "a", 3000000); /* a late, reordered one does not move time back */
    ASSERT_EQ(xport_live_next_deadline(l), 5000000);
    char dead[4][PROTO_NAME_MAX + 1];
    ASSERT_EQ(xport_live_reap(l, 5000000, dead, 4), 0);
    ASSERT_EQ(xport_live_reap(l, 5600000, dead, 4), 2); /* b (5.0 s) and c (5.5 s) */
    int saw_b = 0;
    int saw_c = 0;
    for (int i = 0; i < 2; i++) {
        saw_b |= strcmp(dead[i], "b") == 0;
        saw_c |= strcmp(dead[i], "c") == 0;
    }
    ASSERT(saw_b && saw_c);
    ASSERT_EQ(xport_live_count(l), 1);
    ASSERT_EQ(xport_live_reap(l, 5600000, dead, 4), 0); /* each death reported once */
    ASSERT_EQ(xport_live_forget(l, "a"), 1);
    ASSERT_EQ(xport_live_forget(l, "a"), 0);
    /* Many peers, more dead than the output array holds. */
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        xport_live_seen(l, name, i < 30 ? 0 : 10000000);
    }
    ASSERT_EQ(xport_live_reap(l, 4000000, dead, 4), 30);
    ASSERT_EQ(xport_live_count(l), 10);
    xport_live_free(l);
    xport_live_free(NULL);
}

TEST(runtime_xport_dead_peer_surfaces_as_send_errors)
{
    /* Control plane: once a worker's connection is gone, the coordinator's sends to its name
     * fail with HX_ECLOSED (ROUTER_MANDATORY), they are not silently dropped. */
    struct pair p;
    pair_open(&p, "doomed", 0);
    struct hx_diag d = {0};
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_HEARTBEAT);
    union proto_body b;
    memset(&b, 0, sizeof(b));
    ASSERT_OK(xport_send_body(p.dealer, NULL, &h, &b, &d));
    struct xport_msg m;
    ASSERT_OK(xport_recv(p.router, WAIT_MS, &m, &d));
    xport_msg_release(&m);
    proto_header_init(&h, PROTO_TYPE_HEARTBEAT);
    ASSERT_OK(xport_send_body(p.router, "doomed", &h, &b, &d));
    xport_free(p.dealer); /* the worker dies */
    p.dealer = NULL;
    int rc = HX_OK;
    int64_t end = hx_clock_now_us() + WAIT_MS * 1000;
    while (rc == HX_OK && hx_clock_now_us() < end) {
        proto_header_init(&h, PROTO_TYPE_HEARTBEAT);
        hx_diag_clear(&d);
        rc = xport_send_body(p.router, "doomed", &h, &b, &d);
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_ERR(rc, HX_ECLOSED);
    ASSERT_CONTAINS(d.msg, "doomed");

    /* Data plane: an IMMEDIATE DEALER to a successor that is gone fails with HX_ETIMEDOUT
     * after the send timeout instead of queueing activations forever. */
    struct xport *data = NULL;
    ASSERT_OK(xport_router_bind(p.ctx, "tcp://127.0.0.1:*", &data, &d));
    char ep[PROTO_ENDPOINT_MAX + 1];
    snprintf(ep, sizeof(ep), "%s", xport_endpoint(data));
    struct xport *to_next = NULL;
    ASSERT_OK(xport_dealer_connect(p.ctx, ep, "prev", XPORT_DEALER_IMMEDIATE, &to_next, &d));
    ASSERT_OK(xport_set_send_timeout(to_next, 100, &d));
    struct proto_header th = tokens_header(9, 1);
    int32_t tok = 1;
    ASSERT_OK(xport_send(to_next, NULL, &th, &tok, 4, NULL, NULL, &d)); /* alive: fine */
    ASSERT_OK(xport_recv(data, WAIT_MS, &m, &d));
    xport_msg_release(&m);
    xport_free(data); /* the successor dies */
    rc = HX_OK;
    end = hx_clock_now_us() + WAIT_MS * 1000;
    while (rc == HX_OK && hx_clock_now_us() < end) {
        hx_diag_clear(&d);
        rc = xport_send(to_next, NULL, &th, &tok, 4, NULL, NULL, &d);
    }
    ASSERT_ERR(rc, HX_ETIMEDOUT);
    xport_free(to_next);
    pair_close(&p);
}
