/*
 * test_runtime_xsec.c - CURVE on the wire (xsec.h, docs/protocol.md §8): SHA-256 vectors, the
 * coordinator key derived from the shared secret, key and keys-file parsing; a CURVE ROUTER
 * whose ZAP handler admits only listed keys (unlisted, plain and wrong-server-key clients get
 * nothing; a revoked key's old connection is refused, its new ones too); and, with a real
 * coordinator and workers on threads: an impostor without the key learns nothing, frames
 * injected into a worker's data socket leave streams in flight identical to an undisturbed
 * run, and a worker whose key the coordinator revoked can no longer send to its former peer.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "engine/engine.h"
#include "runtime/proto.h"
#include "runtime/runtime.h"
#include "runtime/xport.h"
#include "runtime/xsec.h"
#include "test.h"

#define MODEL "models/kjv-llama-6m"

static void quiet(enum log_level l)
{
    if (!getenv("HX_LOG")) {
        log_set_level(l);
    }
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    }
}

TEST(runtime_xsec_sha256_vectors)
{
    uint8_t h[32];
    char s[65];
    xsec_sha256("", 0, h);
    hex(h, 32, s);
    ASSERT_STR_EQ(s, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    xsec_sha256("abc", 3, h);
    hex(h, 32, s);
    ASSERT_STR_EQ(s, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes */
    xsec_sha256(m, strlen(m), h);
    hex(h, 32, s);
    ASSERT_STR_EQ(s, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char big[1000];
    memset(big, 'a', sizeof(big));
    xsec_sha256(big, sizeof(big), h);
    hex(h, 32, s);
    ASSERT_STR_EQ(s, "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

TEST(runtime_xsec_keys_and_files)
{
    struct hx_diag d = {0};
    if (xsec_available(&d) != 0) {
        TEST_SKIP("%s", d.msg);
    }
    struct xsec_keypair a, b, c;
    ASSERT_OK(xsec_keypair_from_token("s3cret", &a, &d));
    ASSERT_OK(xsec_keypair_from_token("s3cret", &b, &d));
    ASSERT_OK(xsec_keypair_from_token("s3cres", &c, &d));
    ASSERT_STR_EQ(a.public_key, b.public_key);
    ASSERT(strcmp(a.public_key, c.public_key) != 0);
    ASSERT(proto_curve_key_ok(a.public_key) && proto_curve_key_ok(a.secret_key));
    ASSERT_ERR(xsec_keypair_from_token("", &a, &d), HX_EINVAL);
    struct xsec_keypair n1, n2;
    ASSERT_OK(xsec_keypair_new(&n1, &d));
    ASSERT_OK(xsec_keypair_from_secret(n1.secret_key, &n2, &d));
    ASSERT_STR_EQ(n1.public_key, n2.public_key);
    ASSERT_ERR(xsec_keypair_from_secret("short", &n2, &d), HX_EINVAL);
    /* the wire's key rule: 40 Z85 characters, each group a 32-bit value */
    char k[64];
    snprintf(k, sizeof(k), "%s", n1.public_key);
    ASSERT(proto_curve_key_ok(k));
    k[39] = '\0';
    ASSERT(!proto_curve_key_ok(k));
    snprintf(k, sizeof(k), "%sX", n1.public_key);
    ASSERT(!proto_curve_key_ok(k));
    snprintf(k, sizeof(k), "%s", n1.public_key);
    k[3] = ',';
    ASSERT(!proto_curve_key_ok(k));
    memcpy(k, "#####", 5); /* 85^5 - 1 > 2^32 - 1: no 4 bytes encode to it */
    ASSERT(!proto_curve_key_ok(k));
    ASSERT(!proto_curve_key_ok(""));
    ASSERT(!proto_curve_key_ok(NULL));
    /* endpoints */
    ASSERT(xsec_endpoint_is_loopback("tcp://127.0.0.1:5555"));
    ASSERT(xsec_endpoint_is_loopback("tcp://localhost:1"));
    ASSERT(xsec_endpoint_is_loopback("tcp://[::1]:1"));
    ASSERT(xsec_endpoint_is_loopback("ipc:///tmp/x"));
    ASSERT(!xsec_endpoint_is_loopback("tcp://0.0.0.0:5555"));
    ASSERT(!xsec_endpoint_is_loopback("tcp://10.0.0.7:5555"));
    ASSERT(!xsec_endpoint_is_loopback("tcp://127.0.0.1;10.0.0.7:5555"));
    ASSERT_EQ(rt_curve_on(RT_CURVE_AUTO, "tcp://127.0.0.1:*"), 0);
    ASSERT_EQ(rt_curve_on(RT_CURVE_AUTO, "tcp://0.0.0.0:5555"), 1);
    ASSERT_EQ(rt_curve_on(RT_CURVE_ON, "tcp://127.0.0.1:*"), 1);
    ASSERT_EQ(rt_curve_on(RT_CURVE_OFF, "tcp://0.0.0.0:1"), 0);
    enum rt_curve mode;
    ASSERT_OK(rt_curve_parse("on", &mode));
    ASSERT_EQ(mode, RT_CURVE_ON);
    ASSERT_ERR(rt_curve_parse("yes", &mode), HX_EINVAL);
    /* files */
    char path[128];
    snprintf(path, sizeof(path), "/tmp/hx-test-xsec-%d.keys", (int)getpid());
    FILE *f = fopen(path, "w");
    ASSERT(f);
    fprintf(f, "# workers\n\n  a %s \nb\t%s\n", n1.public_key, b.public_key);
    fclose(f);
    struct xsec_peer *v = NULL;
    size_t nv = 0;
    hx_diag_clear(&d);
    ASSERT_OK_DIAG(xsec_keys_file_read(path, &v, &nv, &d), &d);
    ASSERT_EQ(nv, 2);
    ASSERT_STR_EQ(v[0].name, "a");
    ASSERT_STR_EQ(v[0].key, n1.public_key);
    ASSERT_STR_EQ(v[1].name, "b");
    xfree(v);
    f = fopen(path, "w");
    fprintf(f, "a %s\nb notakey\n", n1.public_key);
    fclose(f);
    hx_diag_clear(&d);
    ASSERT_ERR(xsec_keys_file_read(path, &v, &nv, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, ":2:");
    f = fopen(path, "w");
    fprintf(f, "a %s\na %s\n", n1.public_key, b.public_key);
    fclose(f);
    hx_diag_clear(&d);
    ASSERT_ERR(xsec_keys_file_read(path, &v, &nv, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "twice");
    f = fopen(path, "w");
    fprintf(f, "# secret\n%s\n", n1.secret_key);
    fclose(f);
    hx_diag_clear(&d);
    ASSERT_OK(xsec_key_file_read(path, &n2, &d));
    ASSERT_STR_EQ(n2.public_key, n1.public_key);
    f = fopen(path, "w");
    fprintf(f, "%s\n", "x");
    fclose(f);
    hx_diag_clear(&d);
    ASSERT_ERR(xsec_key_file_read(path, &n2, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, ":1:");
    unlink(path);
    ASSERT_ERR(xsec_key_file_read(path, &n2, &d), HX_EIO);
}

static void send_hb(struct xport *x)
{
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_HEARTBEAT);
    union proto_body b;
    memset(&b, 0, sizeof(b));
    b.heartbeat.n_active = 7;
    struct hx_diag d;
    ASSERT_OK_DIAG(xport_send_body(x, NULL, &h, &b, &d), &d);
}

/* A message within timeout_ms on the server? 1 (released) or 0. */
static int got_one(struct xport *srv, int timeout_ms, char *peer_key)
{
    struct xport_msg m;
    struct hx_diag d;
    if (xport_recv(srv, timeout_ms, &m, &d) != 0) {
        return 0;
    }
    if (peer_key) {
        snprintf(peer_key, PROTO_CURVE_KEY_LEN + 1, "%s", m.peer_key);
    }
    xport_msg_release(&m);
    return 1;
}

TEST(runtime_xsec_zap_admits_only_listed_keys)
{
    quiet(LOG_LEVEL_OFF);
    struct hx_diag d = {0};
    if (xsec_available(&d) != 0) {
        TEST_SKIP("%s", d.msg);
    }
    struct xport_ctx *sctx = NULL;
    struct xport_ctx *cctx = NULL;
    ASSERT_OK(xport_ctx_new(&sctx, &d));
    ASSERT_OK(xport_ctx_new(&cctx, &d)); /* clients in another context: no ZAP there */
    struct xsec *sec = NULL;
    ASSERT_OK_DIAG(xsec_new(sctx, "test", 0, &sec, &d), &d);
    struct xsec_keypair srv, ka, kb;
    ASSERT_OK(xsec_keypair_new(&srv, &d));
    ASSERT_OK(xsec_keypair_new(&ka, &d));
    ASSERT_OK(xsec_keypair_new(&kb, &d));
    struct xsec_peer adm = {"a", ""};
    snprintf(adm.key, sizeof(adm.key), "%s", ka.public_key);
    xsec_admit_set(sec, &adm, 1);
    struct xport_curve scv = {srv.public_key, srv.secret_key, NULL};
    struct xport *r = NULL;
    ASSERT_OK_DIAG(xport_router_bind_curve(sctx, "tcp://127.0.0.1:*", &scv, &r, &d), &d);
    xport_set_peer_check(r, xsec_peer_check, sec);
    ASSERT_OK(xsec_watch(sec, r, 1, &d));
    const char *ep = xport_endpoint(r);

    /* admitted: delivered, tagged with its key */
    struct xport_curve acv = {ka.public_key, ka.secret_key, srv.public_key};
    struct xport *a = NULL;
    ASSERT_OK(xport_dealer_connect_curve(cctx, ep, "a", 0, &acv, &a, &d));
    send_hb(a);
    char key[PROTO_CURVE_KEY_LEN + 1];
    ASSERT(got_one(r, 3000, key));
    ASSERT_STR_EQ(key, ka.public_key);

    /* an unlisted key, a plain client, a client with the wrong server key: nothing */
    struct xport_curve bcv = {kb.public_key, kb.secret_key, srv.public_key};
    struct xport *b = NULL;
    ASSERT_OK(xport_dealer_connect_curve(cctx, ep, "b", 0, &bcv, &b, &d));
    send_hb(b);
    struct xport *p = NULL;
    ASSERT_OK(xport_dealer_connect(cctx, ep, "a2", 0, &p, &d));
    send_hb(p);
    struct xport_curve wcv = {ka.public_key, ka.secret_key, kb.public_key};
    struct xport *w = NULL;
    ASSERT_OK(xport_dealer_connect_curve(cctx, ep, "a3", 0, &wcv, &w, &d));
    send_hb(w);
    /* the admitted key under another name is refused message by message */
    struct xport *x = NULL;
    ASSERT_OK(xport_dealer_connect_curve(cctx, ep, "x", 0, &acv, &x, &d));
    send_hb(x);
    ASSERT(!got_one(r, 800, NULL));
    struct xsec_stats st;
    xsec_stats_get(sec, &st);
    ASSERT_GE(st.refused_keys, 1);
    ASSERT_GE(st.refused_handshakes, 2);
    struct xport_stats xs;
    xport_stats_get(r, &xs);
    ASSERT_EQ(xs.refused, 1);
    ASSERT_CONTAINS(xs.last_drop, "admitted for \"a\"");

    /* revoke a: its old connection is refused, a new one cannot handshake */
    xsec_admit_set(sec, NULL, 0);
    send_hb(a);
    ASSERT(!got_one(r, 300, NULL));
    xport_stats_get(r, &xs);
    ASSERT_EQ(xs.refused, 2);
    ASSERT_CONTAINS(xs.last_drop, "not admitted");
    uint64_t before = st.refused_keys;
    struct xport *a2 = NULL;
    ASSERT_OK(xport_dealer_connect_curve(cctx, ep, "a", 0, &acv, &a2, &d));
    send_hb(a2);
    ASSERT(!got_one(r, 500, NULL));
    xsec_stats_get(sec, &st);
    ASSERT_GE(st.refused_keys, before + 1);
    /* admitted again: a new connection gets through, once the old ones under the name "a" are
     * gone (ZeroMQ ignores a second live connection claiming a connected name, and on a loaded
     * machine the router may take a while to see the old ones close: retry for up to 10 s) */
    xport_free(a);
    xport_free(a2);
    a = a2 = NULL;
    sleep_ms(200);
    xsec_admit_set(sec, &adm, 1);
    int through = 0;
    for (int t = 0; t < 20 && !through; t++) {
        struct xport *a3 = NULL;
        ASSERT_OK(xport_dealer_connect_curve(cctx, ep, "a", 0, &acv, &a3, &d));
        send_hb(a3);
        through = got_one(r, 500, NULL);
        xport_free(a3);
    }
    ASSERT_MSG(through, "a re-admitted key never got a message through in 10 s");

    xport_free(a);
    xport_free(a2);
    xport_free(b);
    xport_free(p);
    xport_free(w);
    xport_free(x);
    xport_free(r);
    xsec_free(sec);
    xport_ctx_free(sctx);
    xport_ctx_free(cctx);
}

/* ---- with a coordinator and workers ---------------------------------------------------------- */

struct wthread {
    pthread_t t;
    struct worker_opts o;
    char name[32];
    char ep[128];
    volatile int stop;
    int rc;
    struct hx_diag d;
};

static void *wmain(void *arg)
{
    struct wthread *w = arg;
    w->rc = worker_run(&w->o, &w->d);
    return NULL;
}

static void wstart_key(struct wthread *w, const char *coord, const char *name, const char *token,
                       const char *ep, const char *secret_key)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->name, sizeof(w->name), "%s", name);
    if (ep) {
        snprintf(w->ep, sizeof(w->ep), "%s", ep);
        w->o.data_endpoint = w->ep;
    }
    w->o.coordinator = coord;
    w->o.name = w->name;
    w->o.token = token;
    w->o.threads = 1;
    w->o.kv_bytes = 4u << 20;
    w->o.stop = &w->stop;
    w->o.curve = RT_CURVE_ON;
    w->o.secret_key = secret_key;
    ASSERT(pthread_create(&w->t, NULL, wmain, w) == 0);
}

static void wstart(struct wthread *w, const char *coord, const char *name, const char *token,
                   const char *ep)
{
    wstart_key(w, coord, name, token, ep, NULL);
}

static void wjoin(struct wthread *w)
{
    w->stop = 1;
    pthread_join(w->t, NULL);
}

static struct coord *start_coord(const struct coord_node_spec *nodes, int n, const char *token,
                                 int dead_ms)
{
    struct coord_opts o;
    memset(&o, 0, sizeof(o));
    o.model_dir = MODEL;
    o.workers = "tcp://127.0.0.1:*";
    o.token = token;
    o.n_nodes = n;
    o.nodes = nodes;
    o.heartbeat_ms = 100;
    o.dead_ms = dead_ms;
    o.curve = RT_CURVE_ON;
    struct coord *c = NULL;
    struct hx_diag d;
    ASSERT_MSG(coord_new(&o, &c, &d) == 0, "%s", d.msg);
    ASSERT(coord_start(c, &d) == 0);
    return c;
}

/* The value of one /metrics series (0 if absent). */
static unsigned long long metric(struct coord *c, const char *series)
{
    struct strbuf m;
    strbuf_init(&m);
    coord_metrics(c, &m);
    const char *p = m.buf ? strstr(m.buf, series) : NULL;
    unsigned long long v = p ? strtoull(p + strlen(series) + 1, NULL, 10) : 0;
    strbuf_release(&m);
    return v;
}

static int metrics_has(struct coord *c, const char *text)
{
    struct strbuf m;
    strbuf_init(&m);
    coord_metrics(c, &m);
    int has = m.buf && strstr(m.buf, text);
    strbuf_release(&m);
    return has;
}

/* Wait (up to 5 s: heartbeats carry workers' counters) until series >= want. */
static unsigned long long metric_at_least(struct coord *c, const char *series,
                                          unsigned long long want)
{
    unsigned long long v = 0;
    for (int i = 0; i < 100 && (v = metric(c, series)) < want; i++) {
        sleep_ms(50);
    }
    return v;
}

static char *run_stream(struct coord *c, const char *prompt, int n)
{
    struct coord_request q;
    memset(&q, 0, sizeof(q));
    q.prompt = prompt;
    q.prompt_len = strlen(prompt);
    q.max_tokens = n;
    q.top_p = 1;
    struct coord_stream *s = NULL;
    struct hx_diag d;
    ASSERT_MSG(coord_submit(c, &q, &s, &d) == 0, "%s", d.msg);
    struct strbuf sb;
    strbuf_init(&sb);
    for (;;) {
        struct coord_event ev;
        ASSERT_MSG(coord_stream_next(s, 30000, &ev) == 0, "stream timed out");
        if (ev.type == COORD_EVENT_TEXT) {
            strbuf_add(&sb, ev.text, ev.len);
            continue;
        }
        ASSERT_MSG(ev.type == COORD_EVENT_DONE, "stream failed: %s", ev.text);
        break;
    }
    coord_stream_free(s);
    strbuf_addc(&sb, 0);
    return strbuf_detach(&sb, NULL);
}

TEST(runtime_curve_impostor_gets_nothing)
{
    quiet(LOG_LEVEL_OFF);
    struct hx_diag d = {0};
    if (xsec_available(&d) != 0) {
        TEST_SKIP("%s", d.msg);
    }
    struct coord_node_spec nodes[1] = {{"a", 0, 6, 1.0}};
    struct coord *c = start_coord(nodes, 1, "right", 1500);
    ASSERT_EQ(strlen(coord_public_key(c)), PROTO_CURVE_KEY_LEN);
    /* the right name, no key (a plain DEALER), and a CURVE client that derived the
     * coordinator's key from a wrong secret: neither gets a single message back */
    struct xport_ctx *ctx = NULL;
    ASSERT_OK(xport_ctx_new(&ctx, &d));
    struct xport *plain = NULL;
    ASSERT_OK(xport_dealer_connect(ctx, coord_endpoint(c), "a", 0, &plain, &d));
    struct xsec_keypair mine, guess;
    ASSERT_OK(xsec_keypair_new(&mine, &d));
    ASSERT_OK(xsec_keypair_from_token("wrong", &guess, &d));
    struct xport_curve cv = {mine.public_key, mine.secret_key, guess.public_key};
    struct xport *cur = NULL;
    ASSERT_OK(xport_dealer_connect_curve(ctx, coord_endpoint(c), "a", 0, &cv, &cur, &d));
    struct proto_register reg;
    memset(&reg, 0, sizeof(reg));
    snprintf(reg.name, sizeof(reg.name), "a");
    snprintf(reg.token, sizeof(reg.token), "right"); /* even the right token does not help */
    snprintf(reg.backend, sizeof(reg.backend), "cpu");
    snprintf(reg.endpoint, sizeof(reg.endpoint), "tcp://127.0.0.1:1");
    reg.threads = 1;
    struct proto_register_ack ack;
    ASSERT_ERR(xport_register(plain, &reg, 700, &ack, &d), HX_ETIMEDOUT);
    snprintf(reg.curve_key, sizeof(reg.curve_key), "%s", mine.public_key);
    ASSERT_ERR(xport_register(cur, &reg, 700, &ack, &d), HX_ETIMEDOUT);
    struct xport_stats xs;
    xport_stats_get(plain, &xs);
    ASSERT_EQ(xs.received, 0);
    xport_stats_get(cur, &xs);
    ASSERT_EQ(xs.received, 0);
    ASSERT_GE(metric_at_least(c, "helix_refused_total{at=\"coordinator\",reason=\"handshake\"}", 2),
              2);
    int covered = 1;
    ASSERT_EQ(coord_ready_count(c, &covered), 0);
    /* the real worker (the shared secret gives it the coordinator's key) still joins */
    xport_free(plain);
    xport_free(cur);
    xport_ctx_free(ctx);
    struct wthread w;
    wstart(&w, coord_endpoint(c), "a", "right", NULL);
    ASSERT_MSG(coord_wait_ready(c, 20000, &d) == 0, "%s", d.msg);
    char *got = run_stream(c, "In the beginning", 8);
    ASSERT(strlen(got) > 0);
    xfree(got);
    ASSERT_EQ(metric(c, "helix_curve_enabled"), 1);
    coord_free(c);
    wjoin(&w);
    ASSERT_MSG(w.rc == 0, "%s", w.d.msg);
}

struct injector {
    pthread_t t;
    char ep[128];
    char server_key[PROTO_CURVE_KEY_LEN + 1];
    volatile int stop;
    int rounds;
};

/* A forged DECODE as the first hop would send it: activations for node 1, layers [3, 6). */
static void forged_decode(struct xport *x)
{
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_DECODE);
    h.request_id = 1;
    h.seq = 1;
    h.n_tokens = 1;
    h.position = 5;
    h.hidden = 64;
    h.dtype = PROTO_DTYPE_F32;
    h.payload_bytes = 64 * 4;
    h.n_hops = 2;
    h.cur_hop = 1;
    h.hops[0] = (struct proto_hop){0, 0, 3};
    h.hops[1] = (struct proto_hop){1, 3, 6};
    float act[64];
    memset(act, 0, sizeof(act));
    struct hx_diag d;
    xport_send(x, NULL, &h, act, sizeof(act), NULL, NULL, &d);
    unsigned char junk[7] = {1, 2, 3, 4, 5, 6, 7};
    const void *f[1] = {junk};
    size_t l[1] = {sizeof(junk)};
    xport_send_raw(x, f, l, 1, &d);
}

/* An unadmitted process: plain and CURVE (unadmitted key) DEALERs named like the real
 * predecessor, sending forged activations and junk, reconnecting every round. */
static void *inject_main(void *arg)
{
    struct injector *in = arg;
    struct xport_ctx *ctx = NULL;
    struct hx_diag d;
    ASSERT(xport_ctx_new(&ctx, &d) == 0);
    struct xsec_keypair kp;
    ASSERT(xsec_keypair_new(&kp, &d) == 0);
    struct xport_curve cv = {kp.public_key, kp.secret_key, in->server_key};
    while (!in->stop) {
        struct xport *p = NULL;
        struct xport *q = NULL;
        if (xport_dealer_connect(ctx, in->ep, "p1", 0, &p, &d) == 0) {
            xport_set_send_timeout(p, 50, &d);
            forged_decode(p);
        }
        if (xport_dealer_connect_curve(ctx, in->ep, "p1", 0, &cv, &q, &d) == 0) {
            xport_set_send_timeout(q, 50, &d);
            forged_decode(q);
        }
        sleep_ms(30);
        xport_free(p);
        xport_free(q);
        in->rounds++;
    }
    xport_ctx_free(ctx);
    return NULL;
}

TEST(runtime_curve_injected_frames_leave_streams_identical)
{
    quiet(LOG_LEVEL_OFF);
    struct hx_diag d = {0};
    if (xsec_available(&d) != 0) {
        TEST_SKIP("%s", d.msg);
    }
    struct coord_node_spec nodes[2] = {{"p1", 0, 3, 1.0}, {"p2", 3, 6, 1.0}};
    struct coord *c = start_coord(nodes, 2, "tok", 3000);
    char ep[128];
    snprintf(ep, sizeof(ep), "ipc:///tmp/hx-test-xsec-%d-p2", (int)getpid());
    struct wthread w[2];
    static struct xsec_keypair kp2; /* p2's key pair (its --key-file), read by its thread */
    ASSERT_OK(xsec_keypair_new(&kp2, &d));
    wstart(&w[0], coord_endpoint(c), "p1", "tok", NULL);
    wstart_key(&w[1], coord_endpoint(c), "p2", "tok", ep, kp2.secret_key);
    ASSERT_MSG(coord_wait_ready(c, 20000, &d) == 0, "%s", d.msg);
    const char *prompts[3] = {"In the beginning", "And God said", "The LORD is my shepherd"};
    char *want[3];
    for (int i = 0; i < 3; i++) {
        want[i] = run_stream(c, prompts[i], 24); /* undisturbed */
    }
    /* the worst case: the injector knows p2's public key, so its CURVE handshakes get as far
     * as the ZAP handler, which refuses its key */
    struct injector in;
    memset(&in, 0, sizeof(in));
    snprintf(in.ep, sizeof(in.ep), "%s", ep);
    snprintf(in.server_key, sizeof(in.server_key), "%s", kp2.public_key);
    ASSERT(pthread_create(&in.t, NULL, inject_main, &in) == 0);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3; i++) {
            char *got = run_stream(c, prompts[i], 24);
            ASSERT_MSG(strcmp(got, want[i]) == 0, "prompt %d under injection: '%s' != '%s'", i, got,
                       want[i]);
            xfree(got);
        }
    }
    in.stop = 1;
    pthread_join(in.t, NULL);
    ASSERT_GE(in.rounds, 1);
    ASSERT_GE(metric_at_least(c, "helix_refused_total{at=\"p2\",reason=\"handshake\"}", 1), 1);
    ASSERT_GE(metric_at_least(c, "helix_refused_total{at=\"p2\",reason=\"key\"}", 1), 1);
    ASSERT_EQ(metric(c, "helix_refused_total{at=\"p2\",reason=\"malformed\"}"), 0);
    ASSERT_EQ(metric(c, "helix_requests_failed_total"), 0);
    for (int i = 0; i < 3; i++) {
        xfree(want[i]);
    }
    coord_free(c);
    wjoin(&w[0]);
    wjoin(&w[1]);
}

/* A fake worker driven by the test: registers with a key, as a worker would. */
struct fake {
    struct xport_ctx *ctx;
    struct xport *ctrl;
    struct xsec_keypair kp;
    uint32_t node;
    struct proto_peer peer; /* the other node, from ASSIGN */
};

static void fake_send(struct fake *f, struct proto_header *h, union proto_body *b)
{
    struct hx_diag d;
    h->send_time_us = hx_clock_now_us();
    ASSERT_OK_DIAG(xport_send_body(f->ctrl, NULL, h, b, &d), &d);
}

static void fake_heartbeat(struct fake *f)
{
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_HEARTBEAT);
    union proto_body b;
    memset(&b, 0, sizeof(b));
    fake_send(f, &h, &b);
}

/* Wait for an ASSIGN whose peer table holds `name` (present = 1) or lacks it (present = 0),
 * heartbeating meanwhile if `alive`. */
static void fake_wait_assign(struct fake *f, const char *name, int present, int alive)
{
    int64_t deadline = hx_clock_now_us() + 10 * 1000000;
    while (hx_clock_now_us() < deadline) {
        if (alive) {
            fake_heartbeat(f);
        }
        struct xport_msg m;
        struct hx_diag d;
        if (xport_recv(f->ctrl, 100, &m, &d) != 0) {
            continue;
        }
        if (m.hdr.type == PROTO_TYPE_ASSIGN) {
            int found = 0;
            for (uint32_t i = 0; i < m.body.assign.n_peers; i++) {
                if (strcmp(m.body.assign.peers[i].name, name) == 0) {
                    found = 1;
                    f->peer = m.body.assign.peers[i];
                }
            }
            if (found == present) {
                xport_msg_release(&m);
                return;
            }
        }
        xport_msg_release(&m);
    }
    TEST_FAIL_("no ASSIGN %s %s", present ? "with" : "without", name);
}

TEST(runtime_curve_revoked_worker_cannot_send_to_peers)
{
    quiet(LOG_LEVEL_OFF);
    struct hx_diag d = {0};
    if (xsec_available(&d) != 0) {
        TEST_SKIP("%s", d.msg);
    }
    struct coord_node_spec nodes[2] = {{"p1", 0, 3, 1.0}, {"p2", 3, 6, 1.0}};
    struct coord *c = start_coord(nodes, 2, "tok", 600);
    struct wthread w;
    wstart(&w, coord_endpoint(c), "p2", "tok", NULL);
    /* p1 is the test: it joins properly, with the token and a key of its own */
    struct fake f;
    memset(&f, 0, sizeof(f));
    ASSERT_OK(xport_ctx_new(&f.ctx, &d));
    ASSERT_OK(xsec_keypair_new(&f.kp, &d));
    struct xsec_keypair ck;
    ASSERT_OK(xsec_keypair_from_token("tok", &ck, &d));
    struct xport_curve cv = {f.kp.public_key, f.kp.secret_key, ck.public_key};
    ASSERT_OK(xport_dealer_connect_curve(f.ctx, coord_endpoint(c), "p1", 0, &cv, &f.ctrl, &d));
    struct proto_register reg;
    memset(&reg, 0, sizeof(reg));
    snprintf(reg.name, sizeof(reg.name), "p1");
    snprintf(reg.token, sizeof(reg.token), "tok");
    snprintf(reg.backend, sizeof(reg.backend), "cpu");
    snprintf(reg.endpoint, sizeof(reg.endpoint), "tcp://127.0.0.1:1");
    snprintf(reg.curve_key, sizeof(reg.curve_key), "%s", f.kp.public_key);
    reg.threads = 1;
    struct proto_register_ack ack;
    ASSERT_OK_DIAG(xport_register(f.ctrl, &reg, 5000, &ack, &d), &d);
    f.node = ack.node;
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_READY);
    union proto_body b;
    memset(&b, 0, sizeof(b));
    b.ready.node = f.node;
    b.ready.layer_start = 0;
    b.ready.layer_end = 3;
    b.ready.kv_bytes = 1u << 20;
    fake_send(&f, &h, &b);
    ASSERT_MSG(coord_wait_ready(c, 20000, &d) == 0, "%s", d.msg);
    fake_wait_assign(&f, "p2", 1, 1);
    ASSERT_EQ(strlen(f.peer.curve_key), PROTO_CURVE_KEY_LEN);
    /* admitted: p2's data socket takes our frames (a malformed one is decoded, and dropped) */
    struct xport_curve dcv = {f.kp.public_key, f.kp.secret_key, f.peer.curve_key};
    struct xport *data = NULL;
    unsigned char junk[5] = {9, 9, 9, 9, 9};
    const void *fr[1] = {junk};
    size_t fl[1] = {sizeof(junk)};
    /* p2 learns our key from its own ASSIGN, which on a loaded machine may come after we
     * connect (the handshake is then refused): retry on a new connection until one frame
     * got through to p2's decoder */
    unsigned long long seen = 0;
    for (int t = 0; t < 10 && seen == 0; t++) {
        xport_free(data);
        data = NULL;
        ASSERT_OK(xport_dealer_connect_curve(f.ctx, f.peer.endpoint, "p1", 0, &dcv, &data, &d));
        ASSERT_OK(xport_send_raw(data, fr, fl, 1, &d));
        for (int i = 0; i < 20 && seen == 0; i++) {
            fake_heartbeat(&f);
            sleep_ms(50);
            seen = metric(c, "helix_refused_total{at=\"p2\",reason=\"malformed\"}");
        }
    }
    ASSERT_EQ(seen, 1);
    ASSERT_EQ(metric(c, "helix_refused_total{at=\"p2\",reason=\"message\"}"), 0);
    /* we go silent: the coordinator declares p1 dead and revokes its key at p2 */
    for (int i = 0; i < 100 && !metrics_has(c, "helix_node_up{node=\"p1\",state=\"dead\"}"); i++) {
        sleep_ms(50);
    }
    ASSERT(metrics_has(c, "helix_node_up{node=\"p1\",state=\"dead\"}"));
    sleep_ms(300); /* p2 gets the peer table without p1 */
    /* the old connection: refused before decoding (malformed count stays 1) */
    ASSERT_OK(xport_send_raw(data, fr, fl, 1, &d));
    forged_decode(data);
    ASSERT_GE(metric_at_least(c, "helix_refused_total{at=\"p2\",reason=\"message\"}", 2), 2);
    ASSERT_EQ(metric(c, "helix_refused_total{at=\"p2\",reason=\"malformed\"}"), 1);
    /* a new connection with the revoked key cannot even handshake */
    struct xport *again = NULL;
    ASSERT_OK(xport_dealer_connect_curve(f.ctx, f.peer.endpoint, "p1", 0, &dcv, &again, &d));
    xport_set_send_timeout(again, 100, &d);
    forged_decode(again);
    ASSERT_GE(metric_at_least(c, "helix_refused_total{at=\"p2\",reason=\"key\"}", 1), 1);
    ASSERT_EQ(metric(c, "helix_refused_total{at=\"p2\",reason=\"malformed\"}"), 1);
    xport_free(again);
    xport_free(data);
    xport_free(f.ctrl);
    xport_ctx_free(f.ctx);
    coord_free(c);
    wjoin(&w);
    ASSERT_MSG(w.rc == 0, "%s", w.d.msg);
}
