/*
 * test_runtime_shape.c - the link shaper (runtime/shape.h): the shape file's parser on good
 * and bad input (each error names FILE:LINE and the field), the hold queue's due times with
 * the clock injected, and shaped sockets on loopback: a 100 KB message over 1 MB/s + 20 ms
 * arrives after ~0.12 s, one peer's messages keep their order, an unshaped peer is not held
 * up, xport_poll wakes when a message is due, and a bad HELIX_LINK_SHAPE stops a worker.
 * Upper bounds on real time are loose (a loaded 2-core machine must not flake them).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "runtime/runtime.h"
#include "runtime/shape.h"
#include "runtime/xport.h"
#include "test.h"

static struct xport_shape *parse_ok(const char *text)
{
    struct hx_diag d = {0};
    struct xport_shape *s = NULL;
    ASSERT_OK_DIAG(xport_shape_parse(text, strlen(text), "t.shape", &s, &d), &d);
    ASSERT(s != NULL);
    return s;
}

static void parse_bad(const char *text, const char *want)
{
    struct hx_diag d = {0};
    struct xport_shape *s = NULL;
    ASSERT_ERR(xport_shape_parse(text, strlen(text), "t.shape", &s, &d), HX_EPARSE);
    ASSERT(s == NULL);
    ASSERT_CONTAINS(d.msg, want);
}

TEST(runtime_shape_parse_good)
{
    struct xport_shape *s = parse_ok("# a cluster's links\n"
                                     "\n"
                                     "coordinator gpu-0 10gbps 0.002   # 1.25e9 B/s\n"
                                     "  gpu-0\tgpu-1 1000000 20ms\r\n"
                                     "gpu-1 coordinator 100Mbps 500us\n"
                                     "cpu.a gpu-0 inf 0\n"
                                     "gpu-0 cpu.a 2.5e6 1e-3s");
    ASSERT_EQ(xport_shape_count(s), 5);
    double bw = 0;
    double lat = 0;
    ASSERT_EQ(xport_shape_link(s, "coordinator", "gpu-0", &bw, &lat), 1);
    ASSERT_DBL_NEAR(bw, 1.25e9, 1);
    ASSERT_DBL_NEAR(lat, 0.002, 1e-12);
    ASSERT_EQ(xport_shape_link(s, "gpu-0", "gpu-1", &bw, &lat), 1);
    ASSERT_DBL_NEAR(bw, 1e6, 1e-6);
    ASSERT_DBL_NEAR(lat, 0.020, 1e-12);
    ASSERT_EQ(xport_shape_link(s, "gpu-1", "coordinator", &bw, &lat), 1);
    ASSERT_DBL_NEAR(bw, 12.5e6, 1e-6);
    ASSERT_DBL_NEAR(lat, 500e-6, 1e-12);
    ASSERT_EQ(xport_shape_link(s, "cpu.a", "gpu-0", &bw, &lat), 1);
    ASSERT_DBL_NEAR(bw, 0, 0); /* inf: no rate limit */
    ASSERT_DBL_NEAR(lat, 0, 0);
    ASSERT_EQ(xport_shape_link(s, "gpu-0", "cpu.a", &bw, &lat), 1);
    ASSERT_DBL_NEAR(bw, 2.5e6, 1e-6);
    ASSERT_DBL_NEAR(lat, 1e-3, 1e-12);
    /* links are directed */
    ASSERT_EQ(xport_shape_link(s, "gpu-0", "coordinator", &bw, &lat), 0);
    ASSERT_DBL_NEAR(bw, 0, 0);
    xport_shape_free(s);

    s = parse_ok("# nothing but comments\n\n   \n");
    ASSERT_EQ(xport_shape_count(s), 0);
    xport_shape_free(s);
    xport_shape_free(NULL);
}

TEST(runtime_shape_parse_bad_names_line_and_field)
{
    parse_bad("a b 1 0\nb\n", "t.shape:2: TO: missing");
    parse_bad("a b\n", "t.shape:1: BANDWIDTH: missing");
    parse_bad("# x\na b 100\n", "t.shape:2: LATENCY: missing");
    parse_bad("a b 1 0 extra\n", "t.shape:1: LATENCY: extra field \"extra\"");
    parse_bad("\n\na/b c 1 0\n", "t.shape:3: FROM: \"a/b\" is not a node name");
    parse_bad("a c*d 1 0\n", "t.shape:1: TO: \"c*d\"");
    parse_bad("a a 1 0\n", "t.shape:1: TO: \"a\" is FROM too");
    parse_bad("a b 10xbps 0\n", "t.shape:1: BANDWIDTH: \"10xbps\" is not a rate");
    parse_bad("a b 0 0\n", "t.shape:1: BANDWIDTH: \"0\"");
    parse_bad("a b -5 0\n", "t.shape:1: BANDWIDTH");
    parse_bad("a b nan 0\n", "t.shape:1: BANDWIDTH");
    parse_bad("a b 0x10 0\n", "t.shape:1: BANDWIDTH");
    parse_bad("a b 1e999 0\n", "t.shape:1: BANDWIDTH");
    parse_bad("a b 1 fast\n", "t.shape:1: LATENCY: \"fast\" is not a delay");
    parse_bad("a b 1 -0.1\n", "t.shape:1: LATENCY");
    parse_bad("a b 1 2h\n", "t.shape:1: LATENCY");
    parse_bad("a b 1 7200\n", "t.shape:1: LATENCY");
    parse_bad("a b 1 0\nx y 2 0\na b 3 0\n", "t.shape:3: TO: link a -> b given again (first at "
                                             "line 1)");
    parse_bad("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b 1 0\n",
              "t.shape:1: FROM: longer than 63 characters");
    /* a NUL byte inside a field */
    struct hx_diag d = {0};
    struct xport_shape *s = NULL;
    const char nul[] = "a b 1\0 0\n";
    ASSERT_ERR(xport_shape_parse(nul, sizeof(nul) - 1, "t.shape", &s, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "t.shape:1: BANDWIDTH: holds a NUL byte");
}

TEST(runtime_shape_load_file_errors)
{
    struct hx_diag d = {0};
    struct xport_shape *s = NULL;
    ASSERT_ERR(xport_shape_load("/nonexistent/links.shape", &s, &d), HX_EIO);
    ASSERT_CONTAINS(d.msg, "/nonexistent/links.shape: cannot open");
    char path[] = "/tmp/hx-shape-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    const char text[] = "coordinator w1 1gbps 0.001\nw1 coordinator 1gbps 1x\n";
    ASSERT_EQ(write(fd, text, sizeof(text) - 1), (long)sizeof(text) - 1);
    close(fd);
    hx_diag_clear(&d);
    ASSERT_ERR(xport_shape_load(path, &s, &d), HX_EPARSE);
    char want[128];
    snprintf(want, sizeof(want), "%s:2: LATENCY: \"1x\"", path);
    ASSERT_CONTAINS(d.msg, want);
    unlink(path);
}

static struct xport_msg fake_msg(const char *peer, uint32_t seq)
{
    struct xport_msg m;
    memset(&m, 0, sizeof(m));
    m.hdr.type = PROTO_TYPE_PREFILL;
    m.hdr.seq = seq;
    snprintf(m.peer, sizeof(m.peer), "%s", peer);
    return m;
}

TEST(runtime_shape_shaper_due_times)
{
    struct xport_shape *t = parse_ok("a me 1000000 0.020\nb me inf 0.005\nme a 1 0\n");
    struct xport_shaper *s = NULL;
    xport_shaper_new(t, "nobody", NULL, &s);
    ASSERT(s == NULL); /* no link ends at "nobody" */
    xport_shaper_new(t, "a", "b", &s);
    ASSERT(s == NULL); /* a DEALER of a whose peer b has no link into a */
    xport_shaper_new(t, "me", NULL, &s);
    ASSERT(s != NULL);
    ASSERT_EQ(xport_shaper_next_due(s), INT64_MAX);

    /* 100 KB at t = 1 s over 1 MB/s + 20 ms: due 1.12 s; another right behind waits its turn */
    struct xport_msg m = fake_msg("a", 1);
    xport_shaper_push(s, &m, 100000, 1000000);
    ASSERT_EQ(m.hdr.seq, 0); /* taken */
    m = fake_msg("a", 2);
    xport_shaper_push(s, &m, 50000, 1000000);
    /* from b (no rate limit, 5 ms) and from c (unshaped) */
    m = fake_msg("b", 3);
    xport_shaper_push(s, &m, 1000000, 1010000);
    m = fake_msg("c", 4);
    xport_shaper_push(s, &m, 10, 1010000);
    ASSERT_EQ(xport_shaper_held(s), 4);
    ASSERT_EQ(xport_shaper_next_due(s), 1010000);

    struct xport_msg out;
    ASSERT_EQ(xport_shaper_pop(s, 1009999, &out), 0);
    ASSERT_EQ(xport_shaper_pop(s, 1010000, &out), 1);
    ASSERT_EQ(out.hdr.seq, 4); /* unshaped: due on arrival */
    xport_msg_release(&out);
    ASSERT_EQ(xport_shaper_next_due(s), 1015000);
    ASSERT_EQ(xport_shaper_pop(s, 1015000, &out), 1);
    ASSERT_EQ(out.hdr.seq, 3);
    ASSERT_EQ(xport_shaper_next_due(s), 1120000);
    ASSERT_EQ(xport_shaper_pop(s, 1119999, &out), 0);
    ASSERT_EQ(xport_shaper_pop(s, 1120000, &out), 1);
    ASSERT_EQ(out.hdr.seq, 1);
    ASSERT_EQ(xport_shaper_next_due(s), 1170000); /* 1.0 + 0.1 + 0.05 + 0.02 */
    ASSERT_EQ(xport_shaper_pop(s, 2000000, &out), 1);
    ASSERT_EQ(out.hdr.seq, 2);
    ASSERT_EQ(xport_shaper_pop(s, 2000000, &out), 0);

    /* an idle link starts afresh: free_at = max(now, free_at) */
    m = fake_msg("a", 5);
    xport_shaper_push(s, &m, 1000, 3000000);
    ASSERT_EQ(xport_shaper_next_due(s), 3021000);
    xport_shaper_free(s); /* releases what it still holds */
    xport_shape_free(t);
}

/* ---- on sockets -------------------------------------------------------------------------- */

struct net {
    struct xport_ctx *ctx;
    struct xport *router; /* node "B" */
    struct xport *a;      /* DEALER "A": shaped A -> B */
    struct xport *c;      /* DEALER "C": unshaped */
    struct xport_shape *table;
};

static void net_open(struct net *n, const char *text)
{
    struct hx_diag d = {0};
    memset(n, 0, sizeof(*n));
    n->table = parse_ok(text);
    ASSERT_OK_DIAG(xport_ctx_new(&n->ctx, &d), &d);
    ASSERT_OK_DIAG(xport_router_bind(n->ctx, "tcp://127.0.0.1:*", &n->router, &d), &d);
    ASSERT_OK_DIAG(xport_set_shape(n->router, n->table, "B", NULL, &d), &d);
    ASSERT_OK_DIAG(xport_dealer_connect(n->ctx, xport_endpoint(n->router), "A", 0, &n->a, &d), &d);
    ASSERT_OK_DIAG(xport_dealer_connect(n->ctx, xport_endpoint(n->router), "C", 0, &n->c, &d), &d);
}

static void net_close(struct net *n)
{
    xport_free(n->a);
    xport_free(n->c);
    xport_free(n->router);
    xport_ctx_free(n->ctx);
    xport_shape_free(n->table);
}

static void send_bytes(struct xport *x, const char *peer, uint32_t seq, size_t len)
{
    struct hx_diag d = {0};
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_PREFILL);
    h.request_id = 9;
    h.seq = seq;
    h.n_hops = 1;
    h.hops[0] = (struct proto_hop){0, 0, 1};
    h.n_tokens = (uint32_t)(len / 4);
    h.dtype = PROTO_DTYPE_I32;
    h.payload_bytes = len;
    h.temperature = 1.0f;
    h.top_p = 1.0f;
    void *buf = xcalloc(1, len);
    ASSERT_OK_DIAG(xport_send(x, peer, &h, buf, len, NULL, NULL, &d), &d);
    xfree(buf);
}

TEST(runtime_shape_socket_timing_order_unshaped)
{
    struct net n;
    net_open(&n, "A B 1000000 0.020\n");
    struct hx_diag d = {0};
    struct xport_msg m;
    /* warm both connections up so connect time is not counted */
    send_bytes(n.a, NULL, 0, 4);
    send_bytes(n.c, NULL, 0, 4);
    for (int i = 0; i < 2; i++) {
        ASSERT_OK_DIAG(xport_recv(n.router, 2000, &m, &d), &d);
        xport_msg_release(&m);
    }

    int64_t t0 = hx_clock_now_us();
    send_bytes(n.a, NULL, 1, 100000); /* ~0.1 s on the wire + 20 ms */
    send_bytes(n.a, NULL, 2, 4000);   /* behind it: ~4 ms more */
    send_bytes(n.c, NULL, 3, 100000); /* unshaped: right away */
    ASSERT_OK_DIAG(xport_recv(n.router, 2000, &m, &d), &d);
    double t = (double)(hx_clock_now_us() - t0) * 1e-6;
    ASSERT_STR_EQ(m.peer, "C");
    ASSERT_EQ(m.hdr.seq, 3);
    ASSERT_MSG(t < 0.1, "unshaped message took %.3f s", t);
    xport_msg_release(&m);

    ASSERT_OK_DIAG(xport_recv(n.router, 2000, &m, &d), &d);
    t = (double)(hx_clock_now_us() - t0) * 1e-6;
    ASSERT_STR_EQ(m.peer, "A");
    ASSERT_EQ(m.hdr.seq, 1);
    ASSERT_EQ(m.payload_len, 100000);
    printf("# 100 KB over 1 MB/s + 20 ms arrived after %.3f s\n", t);
    ASSERT_MSG(t >= 0.119 && t < 0.5, "took %.3f s", t);
    xport_msg_release(&m);
    ASSERT_OK_DIAG(xport_recv(n.router, 2000, &m, &d), &d);
    double t2 = (double)(hx_clock_now_us() - t0) * 1e-6;
    ASSERT_EQ(m.hdr.seq, 2);
    ASSERT_MSG(t2 >= 0.123 && t2 < 0.6, "second took %.3f s", t2);
    xport_msg_release(&m);
    ASSERT_ERR(xport_recv(n.router, 0, &m, &d), HX_ETIMEDOUT);
    net_close(&n);
}

TEST(runtime_shape_poll_wakes_when_due)
{
    struct net n;
    net_open(&n, "A B 1000000 0.020\n");
    struct hx_diag d = {0};
    struct xport_msg m;
    send_bytes(n.a, NULL, 0, 4);
    ASSERT_OK_DIAG(xport_recv(n.router, 2000, &m, &d), &d);
    xport_msg_release(&m);

    int64_t t0 = hx_clock_now_us();
    send_bytes(n.a, NULL, 1, 100000);
    struct xport *socks[2] = {n.router, n.c};
    unsigned char rd[2] = {0, 0};
    /* poll reports nothing while the message is on the emulated wire ... */
    int64_t quiet = hx_clock_now_us();
    ASSERT_EQ(xport_poll(socks, 2, 50, rd, &d), 0);
    ASSERT_EQ(rd[0], 0);
    ASSERT(hx_clock_now_us() - quiet >= 49000);
    /* ... and wakes once it is due */
    int got = xport_poll(socks, 2, 2000, rd, &d);
    double t = (double)(hx_clock_now_us() - t0) * 1e-6;
    ASSERT_EQ(got, 1);
    ASSERT_EQ(rd[0], 1);
    ASSERT_EQ(rd[1], 0);
    ASSERT_MSG(t >= 0.119 && t < 0.5, "poll woke after %.3f s", t);
    ASSERT_OK_DIAG(xport_recv(n.router, 0, &m, &d), &d);
    ASSERT_EQ(m.hdr.seq, 1);
    xport_msg_release(&m);
    net_close(&n);
}

TEST(runtime_shape_dealer_side)
{
    /* a worker's control DEALER: its only peer is the coordinator */
    struct xport_shape *t = parse_ok("coordinator w1 inf 0.05\n");
    struct hx_diag d = {0};
    struct xport_ctx *ctx = NULL;
    struct xport *coord = NULL;
    struct xport *w = NULL;
    ASSERT_OK_DIAG(xport_ctx_new(&ctx, &d), &d);
    ASSERT_OK_DIAG(xport_router_bind(ctx, "tcp://127.0.0.1:*", &coord, &d), &d);
    ASSERT_OK_DIAG(xport_set_shape(coord, t, XPORT_SHAPE_COORDINATOR, NULL, &d), &d);
    ASSERT_OK_DIAG(xport_dealer_connect(ctx, xport_endpoint(coord), "w1", 0, &w, &d), &d);
    ASSERT_ERR(xport_set_shape(w, t, "w1", NULL, &d), HX_EINVAL); /* a DEALER needs its peer */
    hx_diag_clear(&d);
    ASSERT_ERR(xport_set_shape(coord, t, "coordinator", "w1", &d), HX_EINVAL);
    hx_diag_clear(&d);
    ASSERT_ERR(xport_set_shape(w, t, "w/1", "coordinator", &d), HX_EINVAL);
    hx_diag_clear(&d);
    ASSERT_OK_DIAG(xport_set_shape(w, t, "w1", "coordinator", &d), &d);

    struct xport_msg m;
    send_bytes(w, NULL, 1, 8); /* w1 -> coordinator: unshaped, so the router learns w1 */
    ASSERT_OK_DIAG(xport_recv(coord, 2000, &m, &d), &d);
    ASSERT_STR_EQ(m.peer, "w1");
    xport_msg_release(&m);
    int64_t t0 = hx_clock_now_us();
    send_bytes(coord, "w1", 2, 8);
    ASSERT_ERR(xport_recv(w, 20, &m, &d), HX_ETIMEDOUT);
    hx_diag_clear(&d);
    ASSERT_OK_DIAG(xport_recv(w, 2000, &m, &d), &d);
    double secs = (double)(hx_clock_now_us() - t0) * 1e-6;
    ASSERT_EQ(m.hdr.seq, 2);
    ASSERT_MSG(secs >= 0.049 && secs < 0.5, "took %.3f s", secs);
    xport_msg_release(&m);
    xport_free(w);
    xport_free(coord);
    xport_ctx_free(ctx);
    xport_shape_free(t);
}

TEST(runtime_shape_env_bad_file_refuses)
{
    /* each test is its own process, so the once-per-process read happens here */
    char path[] = "/tmp/hx-shape-env-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    const char text[] = "coordinator w1 1gbps 0.001\nw1 coordinator lots 0.001\n";
    ASSERT_EQ(write(fd, text, sizeof(text) - 1), (long)sizeof(text) - 1);
    close(fd);
    ASSERT_OK(setenv(XPORT_SHAPE_ENV, path, 1));
    struct hx_diag d = {0};
    const struct xport_shape *t = NULL;
    ASSERT_ERR(xport_shape_env(&t, &d), HX_EPARSE);
    char want[160];
    snprintf(want, sizeof(want), "HELIX_LINK_SHAPE=%s: %s:2: BANDWIDTH: \"lots\"", path, path);
    ASSERT_CONTAINS(d.msg, want);
    unlink(path); /* read once: the file is not read again */
    hx_diag_clear(&d);
    ASSERT_ERR(xport_shape_env(&t, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, want);

    /* a worker refuses to start rather than run unshaped */
    struct worker_opts o;
    memset(&o, 0, sizeof(o));
    o.coordinator = "tcp://127.0.0.1:1";
    o.name = "w1";
    o.token = "secret";
    hx_diag_clear(&d);
    ASSERT_ERR(worker_run(&o, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, want);
}

TEST(runtime_shape_env_unset_or_good)
{
    ASSERT_OK(unsetenv(XPORT_SHAPE_ENV));
    struct hx_diag d = {0};
    const struct xport_shape *t = (const struct xport_shape *)&d;
    ASSERT_OK(xport_shape_env(&t, &d));
    ASSERT(t == NULL);
}
