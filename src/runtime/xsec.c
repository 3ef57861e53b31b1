/*
 * xsec.c - CURVE keys, the ZAP handler that admits peers' keys, and handshake accounting
 * (see xsec.h).
 *
 * Invariant: a CURVE server socket in a context with an xsec admits a client only if the
 * handler thread answered its ZAP request with 200, which it does only for a key in the
 * admitted set at that moment (or any key in admit_any mode); the reply's User-Id is the key,
 * so every message from that connection carries it. Revoking a key (a new admitted set
 * without it) refuses its future handshakes at once; messages over its existing connection
 * are refused by xsec_peer_check on the receiving thread.
 */
#include "runtime/xsec.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/status.h"
#include "runtime/runtime.h"
#include "runtime/xport.h"

#define XSEC_MAX_WATCH 8
#define XSEC_POLL_MS 50
#define XSEC_LOG_FIRST 10 /* log the first N refusals of each kind, then every 1000th */

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------------------------ */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror32(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha_block(uint32_t st[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha_k[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    st[0] += a;
    st[1] += b;
    st[2] += c;
    st[3] += d;
    st[4] += e;
    st[5] += f;
    st[6] += g;
    st[7] += h;
}

void xsec_sha256(const void *data, size_t len, uint8_t out[32])
{
    uint32_t st[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const uint8_t *p = data;
    size_t left = len;
    while (left >= 64) {
        sha_block(st, p);
        p += 64;
        left -= 64;
    }
    uint8_t tail[128];
    memset(tail, 0, sizeof(tail));
    if (left) {
        memcpy(tail, p, left);
    }
    tail[left] = 0x80;
    size_t tn = left + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) {
        tail[tn - 1 - (size_t)i] = (uint8_t)(bits >> (8 * i));
    }
    sha_block(st, tail);
    if (tn == 128) {
        sha_block(st, tail + 64);
    }
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(st[i] >> 24);
        out[4 * i + 1] = (uint8_t)(st[i] >> 16);
        out[4 * i + 2] = (uint8_t)(st[i] >> 8);
        out[4 * i + 3] = (uint8_t)st[i];
    }
}

/* ---- keys ---------------------------------------------------------------------------------- */

int xsec_available(struct hx_diag *d)
{
    if (!zmq_has("curve")) {
        return hx_diag_set(d, HX_ENOTSUP,
                           "CURVE requested but this libzmq was built without it (no libsodium); "
                           "install a libzmq with CURVE (Debian's libzmq5 has it), or use "
                           "--curve off on loopback");
    }
    return HX_OK;
}

int xsec_keypair_new(struct xsec_keypair *out, struct hx_diag *d)
{
    memset(out, 0, sizeof(*out));
    int rc = xsec_available(d);
    if (rc) {
        return rc;
    }
    if (zmq_curve_keypair(out->public_key, out->secret_key) != 0) {
        return hx_diag_set(d, HX_EIO, "xsec: zmq_curve_keypair: %s", zmq_strerror(zmq_errno()));
    }
    return HX_OK;
}

int xsec_keypair_from_secret(const char *secret_key, struct xsec_keypair *out, struct hx_diag *d)
{
    memset(out, 0, sizeof(*out));
    int rc = xsec_available(d);
    if (rc) {
        return rc;
    }
    if (!proto_curve_key_ok(secret_key)) {
        return hx_diag_set(d, HX_EINVAL, "xsec: not a Z85 CURVE key (%d characters)",
                           PROTO_CURVE_KEY_LEN);
    }
    memcpy(out->secret_key, secret_key, PROTO_CURVE_KEY_LEN);
    if (zmq_curve_public(out->public_key, out->secret_key) != 0) {
        memset(out, 0, sizeof(*out));
        return hx_diag_set(d, HX_EINVAL, "xsec: zmq_curve_public: %s", zmq_strerror(zmq_errno()));
    }
    return HX_OK;
}

int xsec_keypair_from_token(const char *token, struct xsec_keypair *out, struct hx_diag *d)
{
    memset(out, 0, sizeof(*out));
    if (!token || !token[0]) {
        return hx_diag_set(d, HX_EINVAL, "xsec: no shared secret to derive the coordinator key");
    }
    static const char label[] = "helix coordinator CURVE key v1\n";
    size_t tl = strnlen(token, PROTO_AUTH_MAX + 1);
    uint8_t buf[sizeof(label) + PROTO_AUTH_MAX + 1];
    memcpy(buf, label, sizeof(label) - 1);
    memcpy(buf + sizeof(label) - 1, token, tl);
    uint8_t sec[32];
    xsec_sha256(buf, sizeof(label) - 1 + tl, sec);
    char z85[PROTO_CURVE_KEY_LEN + 1];
    if (!zmq_z85_encode(z85, sec, sizeof(sec))) {
        return hx_diag_set(d, HX_EIO, "xsec: zmq_z85_encode failed");
    }
    memset(sec, 0, sizeof(sec));
    memset(buf, 0, sizeof(buf));
    return xsec_keypair_from_secret(z85, out, d);
}

/* Next significant line of f (comments and blank lines skipped), trimmed. NULL at the end. */
static char *next_line(FILE *f, char *buf, size_t n, int *lineno)
{
    while (fgets(buf, (int)n, f)) {
        (*lineno)++;
        char *p = buf;
        while (*p && isspace((unsigned char)*p)) {
            p++;
        }
        size_t len = strlen(p);
        while (len && isspace((unsigned char)p[len - 1])) {
            p[--len] = '\0';
        }
        if (*p && *p != '#') {
            return p;
        }
    }
    return NULL;
}

int xsec_key_file_read(const char *path, struct xsec_keypair *out, struct hx_diag *d)
{
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "r");
    if (!f) {
        return hx_diag_set(d, HX_EIO, "%s: cannot read the key file", path);
    }
    char buf[512];
    int lineno = 0;
    char *p = next_line(f, buf, sizeof(buf), &lineno);
    fclose(f);
    if (!p) {
        return hx_diag_set(d, HX_EPARSE, "%s: no secret key in the file", path);
    }
    if (!proto_curve_key_ok(p) || strlen(p) != PROTO_CURVE_KEY_LEN) {
        return hx_diag_set(d, HX_EPARSE, "%s:%d: not a Z85 CURVE secret key (%d characters)", path,
                           lineno, PROTO_CURVE_KEY_LEN);
    }
    int rc = xsec_keypair_from_secret(p, out, d);
    memset(buf, 0, sizeof(buf));
    return rc;
}

int xsec_keys_file_read(const char *path, struct xsec_peer **out, size_t *n, struct hx_diag *d)
{
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        return hx_diag_set(d, HX_EIO, "%s: cannot read the keys file", path);
    }
    struct xsec_peer *v = NULL;
    size_t cnt = 0;
    size_t cap = 0;
    char buf[512];
    int lineno = 0;
    int rc = HX_OK;
    char *p;
    while ((p = next_line(f, buf, sizeof(buf), &lineno))) {
        char *sp = p;
        while (*sp && !isspace((unsigned char)*sp)) {
            sp++;
        }
        char *key = sp;
        while (*key && isspace((unsigned char)*key)) {
            key++;
        }
        size_t nl = (size_t)(sp - p);
        int name_ok = nl >= 1 && nl <= PROTO_NAME_MAX;
        for (size_t i = 0; i < nl && name_ok; i++) {
            unsigned char c = (unsigned char)p[i];
            name_ok = isalnum(c) || c == '.' || c == '_' || c == '-';
        }
        if (!name_ok || !*key) {
            rc = hx_diag_set(d, HX_EPARSE, "%s:%d: want \"NAME PUBLIC_KEY\" (NAME [A-Za-z0-9._-])",
                             path, lineno);
            break;
        }
        if (!proto_curve_key_ok(key) || strlen(key) != PROTO_CURVE_KEY_LEN) {
            rc = hx_diag_set(d, HX_EPARSE, "%s:%d: key of %.*s is not a Z85 CURVE key (%d chars)",
                             path, lineno, (int)nl, p, PROTO_CURVE_KEY_LEN);
            break;
        }
        int dup = 0;
        for (size_t i = 0; i < cnt; i++) {
            dup |= strlen(v[i].name) == nl && memcmp(v[i].name, p, nl) == 0;
        }
        if (dup) {
            rc = hx_diag_set(d, HX_EPARSE, "%s:%d: %.*s is listed twice", path, lineno, (int)nl, p);
            break;
        }
        if (cnt == cap) {
            cap = cap ? 2 * cap : 16;
            v = xrealloc(v, cap * sizeof(*v));
        }
        memset(&v[cnt], 0, sizeof(v[cnt]));
        memcpy(v[cnt].name, p, nl);
        memcpy(v[cnt].key, key, PROTO_CURVE_KEY_LEN);
        cnt++;
    }
    fclose(f);
    if (rc) {
        xfree(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return HX_OK;
}

int xsec_endpoint_is_loopback(const char *ep)
{
    if (!ep) {
        return 0;
    }
    if (strncmp(ep, "inproc://", 9) == 0 || strncmp(ep, "ipc://", 6) == 0) {
        return 1;
    }
    if (strncmp(ep, "tcp://", 6) != 0) {
        return 0;
    }
    const char *h = ep + 6;
    /* "tcp://IFACE;HOST:PORT" names a source interface: judge the destination */
    const char *semi = strchr(h, ';');
    if (semi) {
        h = semi + 1;
    }
    return strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost:", 10) == 0 ||
           strncmp(h, "[::1]:", 6) == 0;
}

/* ---- the authority ------------------------------------------------------------------------- */

struct xsec {
    void *zctx;
    void *zap; /* REP at inproc://zeromq.zap.01: the handler thread's */
    char name[PROTO_NAME_MAX + 1];
    pthread_t thread;
    int started;
    pthread_mutex_t mu; /* guards everything below */
    int stop;
    int admit_any;
    struct xsec_peer *set;
    size_t n_set;
    void *mons[XSEC_MAX_WATCH]; /* monitor PAIRs, read by the thread once handed over */
    int mon_server[XSEC_MAX_WATCH];
    int n_mons;
    struct xsec_stats stats;
};

static int often(uint64_t n)
{
    return n <= XSEC_LOG_FIRST || n % 1000 == 0;
}

static long set_find(const struct xsec *s, const char *key)
{
    for (size_t i = 0; i < s->n_set; i++) {
        if (strcmp(s->set[i].key, key) == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* Answer one ZAP request (all its frames are read; a REP must answer each). */
static void zap_serve(struct xsec *s)
{
    zmq_msg_t f[8];
    int n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->zap, 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n; i++) {
                zmq_msg_close(&f[i]);
            }
            return;
        }
        more = zmq_msg_more(&m);
        if (n < 8) {
            f[n++] = m;
        } else {
            zmq_msg_close(&m);
        }
    }
    /* version, request id, domain, address, routing id, mechanism, credentials... */
    const char *status = "400";
    const char *text = "malformed ZAP request";
    char key[PROTO_CURVE_KEY_LEN + 1] = "";
    char addr[64] = "?";
    if (n >= 4) {
        snprintf(addr, sizeof(addr), "%.*s", (int)zmq_msg_size(&f[3]),
                 (const char *)zmq_msg_data(&f[3]));
    }
    if (n >= 7 && zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
        zmq_msg_size(&f[6]) == 32 && zmq_z85_encode(key, zmq_msg_data(&f[6]), 32)) {
        pthread_mutex_lock(&s->mu);
        int ok = s->admit_any || set_find(s, key) >= 0;
        uint64_t cnt;
        if (ok) {
            cnt = ++s->stats.admitted_keys;
            status = "200";
            text = "OK";
        } else {
            cnt = ++s->stats.refused_keys;
            text = "key not admitted";
        }
        pthread_mutex_unlock(&s->mu);
        if (!ok && often(cnt)) {
            log_warn("%s: refused a CURVE handshake from %s: key %.8s... is not admitted (%llu "
                     "so far)",
                     s->name, addr, key, (unsigned long long)cnt);
        }
    } else if (n >= 6) {
        text = "mechanism not allowed";
    }
    const char *reply[6] = {"1.0", NULL, status, text, status[0] == '2' ? key : "", ""};
    for (int i = 0; i < 6; i++) {
        int flags = i < 5 ? ZMQ_SNDMORE : 0;
        if (i == 1) {
            if (n >= 2) {
                zmq_send(s->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), flags);
            } else {
                zmq_send(s->zap, "", 0, flags);
            }
        } else {
            zmq_send(s->zap, reply[i], strlen(reply[i]), flags);
        }
    }
    for (int i = 0; i < n; i++) {
        zmq_msg_close(&f[i]);
    }
}

/* Read one monitor event (2 frames: u16 event + u32 value, then the endpoint). */
static void monitor_serve(struct xsec *s, void *mon, int is_server)
{
    zmq_msg_t ev;
    zmq_msg_init(&ev);
    if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&ev);
        return;
    }
    uint16_t event = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&ev) >= 6) {
        memcpy(&event, zmq_msg_data(&ev), 2);
        memcpy(&value, (const char *)zmq_msg_data(&ev) + 2, 4);
    }
    int more = zmq_msg_more(&ev);
    zmq_msg_close(&ev);
    char where[128] = "";
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, mon, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        snprintf(where, sizeof(where), "%.*s", (int)zmq_msg_size(&m),
                 (const char *)zmq_msg_data(&m));
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    /* HANDSHAKE_FAILED_AUTH is a ZAP refusal, already counted by zap_serve */
    if (!(event & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL))) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    uint64_t cnt = is_server ? ++s->stats.refused_handshakes : ++s->stats.failed_handshakes;
    pthread_mutex_unlock(&s->mu);
    if (often(cnt)) {
        log_warn("%s: CURVE handshake %s %s failed (%s, code 0x%x; %llu so far)%s", s->name,
                 is_server ? "of a peer on" : "with", where,
                 event & ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error" : "no detail",
                 (unsigned)value, (unsigned long long)cnt,
                 is_server ? ""
                           : ": wrong --coordinator-key or shared secret, or a peer without "
                             "CURVE (--curve)?");
    }
}

static void *zap_main(void *arg)
{
    struct xsec *s = arg;
    for (;;) {
        zmq_pollitem_t it[1 + XSEC_MAX_WATCH];
        int srv[1 + XSEC_MAX_WATCH];
        pthread_mutex_lock(&s->mu);
        int stop = s->stop;
        int nm = s->n_mons;
        it[0] = (zmq_pollitem_t){s->zap, 0, ZMQ_POLLIN, 0};
        for (int i = 0; i < nm; i++) {
            it[1 + i] = (zmq_pollitem_t){s->mons[i], 0, ZMQ_POLLIN, 0};
            srv[1 + i] = s->mon_server[i];
        }
        pthread_mutex_unlock(&s->mu);
        if (stop) {
            return NULL;
        }
        int rc = zmq_poll(it, 1 + nm, XSEC_POLL_MS);
        if (rc < 0) {
            if (zmq_errno() == ETERM) {
                return NULL;
            }
            continue;
        }
        if (it[0].revents & ZMQ_POLLIN) {
            zap_serve(s);
        }
        for (int i = 0; i < nm; i++) {
            if (it[1 + i].revents & ZMQ_POLLIN) {
                monitor_serve(s, it[1 + i].socket, srv[1 + i]);
            }
        }
    }
}

int xsec_new(struct xport_ctx *ctx, const char *name, int admit_any, struct xsec **out,
             struct hx_diag *d)
{
    *out = NULL;
    int rc = xsec_available(d);
    if (rc) {
        return rc;
    }
    struct xsec *s = xcalloc(1, sizeof(*s));
    s->zctx = xport_ctx_zmq(ctx);
    s->admit_any = admit_any;
    snprintf(s->name, sizeof(s->name), "%s", name ? name : "xsec");
    pthread_mutex_init(&s->mu, NULL);
    s->zap = zmq_socket(s->zctx, ZMQ_REP);
    int linger = 0;
    if (!s->zap || zmq_setsockopt(s->zap, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
        zmq_bind(s->zap, "inproc://zeromq.zap.01") != 0) {
        rc = hx_diag_set(d, HX_EIO, "xsec %s: ZAP handler: %s", s->name, zmq_strerror(zmq_errno()));
        xsec_free(s);
        return rc;
    }
    if (pthread_create(&s->thread, NULL, zap_main, s) != 0) {
        xsec_free(s);
        return hx_diag_set(d, HX_EIO, "xsec %s: cannot start the ZAP thread", name);
    }
    s->started = 1;
    *out = s;
    return HX_OK;
}

void xsec_free(struct xsec *s)
{
    if (!s) {
        return;
    }
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    for (int i = 0; i < s->n_mons; i++) {
        zmq_close(s->mons[i]);
    }
    if (s->zap) {
        zmq_close(s->zap);
    }
    pthread_mutex_destroy(&s->mu);
    xfree(s->set);
    xfree(s);
}

void xsec_admit_set(struct xsec *s, const struct xsec_peer *peers, size_t n)
{
    struct xsec_peer *v = n ? xmalloc(n * sizeof(*v)) : NULL;
    if (n) {
        memcpy(v, peers, n * sizeof(*v));
    }
    pthread_mutex_lock(&s->mu);
    struct xsec_peer *old = s->set;
    s->set = v;
    s->n_set = n;
    pthread_mutex_unlock(&s->mu);
    xfree(old);
}

int xsec_admitted(struct xsec *s, const char *key, char name[PROTO_NAME_MAX + 1])
{
    pthread_mutex_lock(&s->mu);
    long i = key && key[0] ? set_find(s, key) : -1;
    if (i >= 0 && name) {
        memcpy(name, s->set[i].name, PROTO_NAME_MAX + 1);
    }
    pthread_mutex_unlock(&s->mu);
    return i >= 0;
}

int xsec_watch(struct xsec *s, struct xport *x, int is_server, struct hx_diag *d)
{
    pthread_mutex_lock(&s->mu);
    int idx = s->n_mons;
    pthread_mutex_unlock(&s->mu);
    if (idx >= XSEC_MAX_WATCH) {
        return hx_diag_set(d, HX_EINVAL, "xsec %s: more than %d watched sockets", s->name,
                           XSEC_MAX_WATCH);
    }
    char ep[96];
    snprintf(ep, sizeof(ep), "inproc://hx-xsec-mon-%p-%d", (void *)s, idx);
    int rc =
        xport_monitor(x, ep,
                      ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                          ZMQ_EVENT_HANDSHAKE_FAILED_AUTH,
                      d);
    if (rc) {
        return rc;
    }
    void *mon = zmq_socket(s->zctx, ZMQ_PAIR);
    int linger = 0;
    if (!mon || zmq_setsockopt(mon, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
        zmq_connect(mon, ep) != 0) {
        if (mon) {
            zmq_close(mon);
        }
        return hx_diag_set(d, HX_EIO, "xsec %s: monitor: %s", s->name, zmq_strerror(zmq_errno()));
    }
    /* handed to the thread under the mutex (a full barrier, as ZeroMQ requires) */
    pthread_mutex_lock(&s->mu);
    s->mons[s->n_mons] = mon;
    s->mon_server[s->n_mons] = is_server;
    s->n_mons++;
    pthread_mutex_unlock(&s->mu);
    return HX_OK;
}

void xsec_stats_get(struct xsec *s, struct xsec_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

int xsec_peer_check(void *arg, const char *peer, const char *key, char *why, size_t n)
{
    struct xsec *s = arg;
    if (!key || !key[0]) {
        snprintf(why, n, "sender \"%s\" has no CURVE key", peer);
        return HX_EAUTH;
    }
    char name[PROTO_NAME_MAX + 1];
    if (!xsec_admitted(s, key, name)) {
        snprintf(why, n, "sender \"%s\": key %.8s... is not admitted (revoked or never admitted)",
                 peer, key);
        return HX_EAUTH;
    }
    if (strcmp(name, peer) != 0) {
        snprintf(why, n, "sender says it is \"%s\" but has the key admitted for \"%s\"", peer,
                 name);
        return HX_EAUTH;
    }
    return HX_OK;
}

/* ---- modes ---------------------------------------------------------------------------------- */

int rt_curve_parse(const char *s, enum rt_curve *out)
{
    if (s && strcmp(s, "auto") == 0) {
        *out = RT_CURVE_AUTO;
    } else if (s && strcmp(s, "on") == 0) {
        *out = RT_CURVE_ON;
    } else if (s && strcmp(s, "off") == 0) {
        *out = RT_CURVE_OFF;
    } else {
        return HX_EINVAL;
    }
    return HX_OK;
}

int rt_curve_on(enum rt_curve mode, const char *endpoint)
{
    if (mode == RT_CURVE_ON) {
        return 1;
    }
    if (mode == RT_CURVE_OFF) {
        return 0;
    }
    return !xsec_endpoint_is_loopback(endpoint);
}
