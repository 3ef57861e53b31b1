/*
 * shape.c - the link shaper's file parser and its receive-side hold queue (see shape.h).
 *
 * Invariant: a held message's due time is free_at + latency of its peer's link, and free_at
 * only grows, so ordering the queue by (due, arrival) keeps each peer's messages in order
 * while a fast link's message may overtake a slow one's, as on a real network. Queues are
 * short (a worker's in-flight activations), so the queue is a plain array scanned per pop.
 * The process-wide table from HELIX_LINK_SHAPE is written once (pthread_once) and then only
 * read; it is the one global here and is immutable after that.
 */
#include "runtime/shape.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/status.h"
#include "runtime/proto.h"
#include "runtime/xport.h"

#define FIELD_MAX 63    /* longest field: a name, or a number with its suffix */
#define DUE_MAX_US 4e18 /* due times are capped here (~127,000 years), well inside int64 */

struct shape_link {
    char from[PROTO_NAME_MAX + 1];
    char to[PROTO_NAME_MAX + 1];
    double bytes_per_s; /* 0: no rate limit */
    double latency_s;
    int line;
};

struct xport_shape {
    struct shape_link *links;
    size_t n;
    size_t cap;
};

/* ---- parsing ----------------------------------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/*
 * Split off the numeric prefix of s ([0-9]*(.[0-9]*)?([eE][+-]?[0-9]+)?, at least one digit)
 * into *v; *suffix points past it. 0, or -1 when there is no number.
 */
static int number_prefix(const char *s, double *v, const char **suffix)
{
    const char *p = s;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            digits++;
        }
    }
    if (!digits) {
        return -1;
    }
    if (*p == 'e' || *p == 'E') {
        const char *q = p + 1;
        if (*q == '+' || *q == '-') {
            q++;
        }
        if (*q >= '0' && *q <= '9') {
            while (*q >= '0' && *q <= '9') {
                q++;
            }
            p = q;
        }
    }
    char buf[FIELD_MAX + 1];
    size_t n = (size_t)(p - s);
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    *v = strtod(buf, NULL);
    if (errno == ERANGE || !isfinite(*v)) {
        return -1;
    }
    *suffix = p;
    return 0;
}

/* BANDWIDTH: bytes/s, or bits/s with a decimal suffix, or "inf" (0 = no limit). */
static int parse_rate(const char *s, double *out)
{
    if (strcasecmp(s, "inf") == 0) {
        *out = 0;
        return 0;
    }
    double v = 0;
    const char *suf = NULL;
    if (number_prefix(s, &v, &suf) != 0) {
        return -1;
    }
    static const struct {
        const char *name;
        double bytes;
    } units[] = {{"", 1},           {"bps", 1.0 / 8},  {"kbps", 1e3 / 8},
                 {"mbps", 1e6 / 8}, {"gbps", 1e9 / 8}, {"tbps", 1e12 / 8}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(suf, units[i].name) == 0) {
            double b = v * units[i].bytes;
            if (!(b > 0) || b > 1e18) {
                return -1;
            }
            *out = b;
            return 0;
        }
    }
    return -1;
}

/* LATENCY: seconds, or with a suffix s, ms or us; 0 .. 3600 s. */
static int parse_latency(const char *s, double *out)
{
    double v = 0;
    const char *suf = NULL;
    if (number_prefix(s, &v, &suf) != 0) {
        return -1;
    }
    double scale;
    if (!*suf || strcmp(suf, "s") == 0) {
        scale = 1;
    } else if (strcmp(suf, "ms") == 0) {
        scale = 1e-3;
    } else if (strcmp(suf, "us") == 0) {
        scale = 1e-6;
    } else {
        return -1;
    }
    v *= scale;
    if (v < 0 || v > 3600) {
        return -1;
    }
    *out = v;
    return 0;
}

static const char *const field_names[4] = {"FROM", "TO", "BANDWIDTH", "LATENCY"};

/* Check and store one line's four fields. */
static int parse_line(struct xport_shape *s, char fields[4][FIELD_MAX + 1], const char *file,
                      int line, struct hx_diag *d)
{
    for (int f = 0; f < 2; f++) {
        for (const char *p = fields[f]; *p; p++) {
            if (!name_char(*p)) {
                return hx_diag_set(d, HX_EPARSE,
                                   "%s:%d: %s: \"%s\" is not a node name ([A-Za-z0-9._-]{1,63}) "
                                   "or \"coordinator\"",
                                   file, line, field_names[f], fields[f]);
            }
        }
    }
    if (strcmp(fields[0], fields[1]) == 0) {
        return hx_diag_set(d, HX_EPARSE, "%s:%d: TO: \"%s\" is FROM too; a link joins two nodes",
                           file, line, fields[1]);
    }
    struct shape_link l;
    memset(&l, 0, sizeof(l));
    memcpy(l.from, fields[0], sizeof(l.from));
    memcpy(l.to, fields[1], sizeof(l.to));
    l.line = line;
    if (parse_rate(fields[2], &l.bytes_per_s) != 0) {
        return hx_diag_set(d, HX_EPARSE,
                           "%s:%d: BANDWIDTH: \"%s\" is not a rate (bytes/s as a plain number "
                           "> 0, bits/s with bps, kbps, mbps, gbps or tbps, or inf)",
                           file, line, fields[2]);
    }
    if (parse_latency(fields[3], &l.latency_s) != 0) {
        return hx_diag_set(d, HX_EPARSE,
                           "%s:%d: LATENCY: \"%s\" is not a delay (seconds, 0 to 3600, as a "
                           "plain number or with s, ms or us)",
                           file, line, fields[3]);
    }
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->links[i].from, l.from) == 0 && strcmp(s->links[i].to, l.to) == 0) {
            return hx_diag_set(d, HX_EPARSE,
                               "%s:%d: TO: link %s -> %s given again (first at line %d)", file,
                               line, l.from, l.to, s->links[i].line);
        }
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->links = xrealloc(s->links, s->cap * sizeof(*s->links));
    }
    s->links[s->n++] = l;
    return HX_OK;
}

int xport_shape_parse(const char *text, size_t len, const char *file, struct xport_shape **out,
                      struct hx_diag *d)
{
    *out = NULL;
    if (!file) {
        file = "shape";
    }
    struct xport_shape *s = xcalloc(1, sizeof(*s));
    size_t pos = 0;
    int line = 0;
    while (pos < len) {
        line++;
        size_t end = pos;
        while (end < len && text[end] != '\n') {
            end++;
        }
        size_t stop = pos;
        while (stop < end && text[stop] != '#') {
            stop++;
        }
        char fields[4][FIELD_MAX + 1];
        int n_fields = 0;
        size_t p = pos;
        while (p < stop) {
            while (p < stop && is_space(text[p])) {
                p++;
            }
            if (p == stop) {
                break;
            }
            size_t q = p;
            while (q < stop && !is_space(text[q])) {
                q++;
            }
            if (n_fields == 4) {
                int rc =
                    hx_diag_set(d, HX_EPARSE,
                                "%s:%d: LATENCY: extra field \"%.*s\" after it (a line is "
                                "FROM TO BANDWIDTH LATENCY)",
                                file, line, (int)(q - p > FIELD_MAX ? FIELD_MAX : q - p), text + p);
                xport_shape_free(s);
                return rc;
            }
            size_t n = q - p;
            int nul = memchr(text + p, '\0', n) != NULL;
            if (n > FIELD_MAX || nul) {
                int rc =
                    hx_diag_set(d, HX_EPARSE, "%s:%d: %s: %s", file, line, field_names[n_fields],
                                nul ? "holds a NUL byte" : "longer than 63 characters");
                xport_shape_free(s);
                return rc;
            }
            memcpy(fields[n_fields], text + p, n);
            fields[n_fields][n] = '\0';
            n_fields++;
            p = q;
        }
        if (n_fields > 0 && n_fields < 4) {
            int rc = hx_diag_set(d, HX_EPARSE,
                                 "%s:%d: %s: missing (a line is FROM TO BANDWIDTH LATENCY)", file,
                                 line, field_names[n_fields]);
            xport_shape_free(s);
            return rc;
        }
        if (n_fields == 4) {
            int rc = parse_line(s, fields, file, line, d);
            if (rc != HX_OK) {
                xport_shape_free(s);
                return rc;
            }
        }
        pos = end + 1;
    }
    *out = s;
    return HX_OK;
}

int xport_shape_load(const char *path, struct xport_shape **out, struct hx_diag *d)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        return hx_diag_set(d, HX_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    size_t cap = 4096;
    size_t len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap) {
            break;
        }
        cap *= 2;
        buf = xrealloc(buf, cap);
    }
    int bad = ferror(f);
    fclose(f);
    int rc = bad ? hx_diag_set(d, HX_EIO, "%s: read error", path)
                 : xport_shape_parse(buf, len, path, out, d);
    xfree(buf);
    return rc;
}

void xport_shape_free(struct xport_shape *s)
{
    if (!s) {
        return;
    }
    xfree(s->links);
    xfree(s);
}

size_t xport_shape_count(const struct xport_shape *s)
{
    return s ? s->n : 0;
}

static const struct shape_link *find_link(const struct xport_shape *s, const char *from,
                                          const char *to)
{
    for (size_t i = 0; s && i < s->n; i++) {
        if (strcmp(s->links[i].from, from) == 0 && strcmp(s->links[i].to, to) == 0) {
            return &s->links[i];
        }
    }
    return NULL;
}

int xport_shape_link(const struct xport_shape *s, const char *from, const char *to,
                     double *bytes_per_s, double *latency_s)
{
    const struct shape_link *l = find_link(s, from, to);
    *bytes_per_s = l ? l->bytes_per_s : 0;
    *latency_s = l ? l->latency_s : 0;
    return l != NULL;
}

/* ---- the process's table ----------------------------------------------------------------- */

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static struct xport_shape *env_table;
static int env_rc;
static struct hx_diag env_diag;

static void env_load(void)
{
    const char *path = getenv(XPORT_SHAPE_ENV);
    if (!path || !path[0]) {
        return;
    }
    struct hx_diag d = {0};
    env_rc = xport_shape_load(path, &env_table, &d);
    if (env_rc != HX_OK) {
        hx_diag_set(&env_diag, env_rc, XPORT_SHAPE_ENV "=%s: %s", path, d.msg);
    }
}

int xport_shape_env(const struct xport_shape **out, struct hx_diag *d)
{
    pthread_once(&env_once, env_load);
    *out = env_table;
    if (env_rc != HX_OK) {
        return hx_diag_set(d, env_rc, "%s", env_diag.msg);
    }
    return HX_OK;
}

/* ---- the shaper -------------------------------------------------------------------------- */

struct peer_state {
    char name[PROTO_NAME_MAX + 1];
    const struct shape_link *link; /* NULL: unshaped */
    double free_at_us;             /* when the link has sent everything pushed so far */
};

struct held {
    struct xport_msg m;
    int64_t due_us;
};

struct xport_shaper {
    const struct xport_shape *table;
    char self[PROTO_NAME_MAX + 1];
    char peer[PROTO_NAME_MAX + 1]; /* "" on a ROUTER */
    struct peer_state *peers;
    size_t n_peers;
    size_t cap_peers;
    struct held *q; /* in arrival order */
    size_t n_q;
    size_t cap_q;
};

void xport_shaper_new(const struct xport_shape *table, const char *self, const char *peer,
                      struct xport_shaper **out)
{
    *out = NULL;
    if (!table || !self) {
        return;
    }
    int any = 0;
    for (size_t i = 0; i < table->n && !any; i++) {
        any = strcmp(table->links[i].to, self) == 0 &&
              (!peer || strcmp(table->links[i].from, peer) == 0);
    }
    if (!any) {
        return;
    }
    struct xport_shaper *s = xcalloc(1, sizeof(*s));
    s->table = table;
    snprintf(s->self, sizeof(s->self), "%s", self);
    snprintf(s->peer, sizeof(s->peer), "%s", peer ? peer : "");
    *out = s;
}

void xport_shaper_free(struct xport_shaper *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->n_q; i++) {
        xport_msg_release(&s->q[i].m);
    }
    xfree(s->q);
    xfree(s->peers);
    xfree(s);
}

static struct peer_state *peer_get(struct xport_shaper *s, const char *name)
{
    for (size_t i = 0; i < s->n_peers; i++) {
        if (strcmp(s->peers[i].name, name) == 0) {
            return &s->peers[i];
        }
    }
    if (s->n_peers == s->cap_peers) {
        s->cap_peers = s->cap_peers ? s->cap_peers * 2 : 8;
        s->peers = xrealloc(s->peers, s->cap_peers * sizeof(*s->peers));
    }
    struct peer_state *p = &s->peers[s->n_peers++];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->link = find_link(s->table, name, s->self);
    return p;
}

void xport_shaper_push(struct xport_shaper *s, struct xport_msg *m, size_t bytes, int64_t now_us)
{
    struct peer_state *p = peer_get(s, s->peer[0] ? s->peer : m->peer);
    int64_t due = now_us;
    if (p->link) {
        double start = p->free_at_us > (double)now_us ? p->free_at_us : (double)now_us;
        double send_us = p->link->bytes_per_s > 0 ? (double)bytes * 1e6 / p->link->bytes_per_s : 0;
        p->free_at_us = start + send_us;
        if (!(p->free_at_us < DUE_MAX_US)) {
            p->free_at_us = DUE_MAX_US; /* a link so slow it never delivers: keep it finite */
        }
        double due_us = ceil(p->free_at_us + p->link->latency_s * 1e6);
        due = due_us < DUE_MAX_US ? (int64_t)due_us : (int64_t)DUE_MAX_US;
    }
    if (s->n_q == s->cap_q) {
        s->cap_q = s->cap_q ? s->cap_q * 2 : 16;
        s->q = xrealloc(s->q, s->cap_q * sizeof(*s->q));
    }
    struct held *h = &s->q[s->n_q++];
    h->m = *m;
    h->due_us = due;
    memset(m, 0, sizeof(*m));
}

/* Index of the earliest due message, the first to arrive among equals; -1 if none. */
static long earliest(const struct xport_shaper *s)
{
    long best = -1;
    for (size_t i = 0; i < s->n_q; i++) {
        if (best < 0 || s->q[i].due_us < s->q[best].due_us) {
            best = (long)i;
        }
    }
    return best;
}

int xport_shaper_pop(struct xport_shaper *s, int64_t now_us, struct xport_msg *out)
{
    long i = earliest(s);
    if (i < 0 || s->q[i].due_us > now_us) {
        return 0;
    }
    *out = s->q[i].m;
    memmove(&s->q[i], &s->q[i + 1], (s->n_q - (size_t)i - 1) * sizeof(*s->q));
    s->n_q--;
    return 1;
}

int64_t xport_shaper_next_due(const struct xport_shaper *s)
{
    long i = earliest(s);
    return i < 0 ? INT64_MAX : s->q[i].due_us;
}

size_t xport_shaper_held(const struct xport_shaper *s)
{
    return s ? s->n_q : 0;
}
