/*
 * serve_hop.c - one data-plane hop, plain or CURVE (see serve_hop.h). The receiving ROUTER
 * runs in its own context with an xsec ZAP handler that admits the sender's key and the
 * per-message peer check a worker's data socket runs (xsec_peer_check), so the figures include
 * everything a CURVE hop costs: encryption, decryption and the admission lookup.
 */
#include "serve_hop.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "runtime/proto.h"
#include "runtime/xport.h"
#include "runtime/xsec.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void fwd_header(struct proto_header *h, int type, int n_tokens, int hidden, uint64_t id)
{
    proto_header_init(h, (enum proto_type)type);
    h->request_id = id;
    h->n_tokens = (uint32_t)n_tokens;
    h->position = type == PROTO_TYPE_DECODE ? 10 : 0;
    h->hidden = (uint32_t)hidden;
    h->dtype = PROTO_DTYPE_F32;
    h->payload_bytes = (uint64_t)n_tokens * (uint64_t)hidden * 4;
    h->n_hops = 2;
    h->cur_hop = 1;
    h->hops[0] = (struct proto_hop){0, 0, 3};
    h->hops[1] = (struct proto_hop){1, 3, 6};
}

static void no_free(void *data, void *hint)
{
    (void)data;
    (void)hint;
}

int hop_bench_run(int curve, int hidden, int n_rt, int prefill_tokens, int n_prefill,
                  struct hop_result *out)
{
    memset(out, 0, sizeof(*out));
    struct hx_diag d = {0};
    struct xport_ctx *sctx = NULL;
    struct xport_ctx *cctx = NULL;
    struct xsec *sec = NULL;
    struct xport *r = NULL;
    struct xport *s = NULL;
    double *lat = xcalloc((size_t)n_rt, sizeof(double));
    size_t big = (size_t)prefill_tokens * (size_t)hidden * 4;
    float *buf = xcalloc(big / 4 + (size_t)hidden, sizeof(float));
    int rc = -1;
    struct xsec_keypair ks;
    struct xsec_keypair kc;
    if (xport_ctx_new(&sctx, &d) != 0 || xport_ctx_new(&cctx, &d) != 0) {
        goto out;
    }
    if (curve) {
        if (xsec_keypair_new(&ks, &d) != 0 || xsec_keypair_new(&kc, &d) != 0 ||
            xsec_new(sctx, "bench", 0, &sec, &d) != 0) {
            goto out;
        }
        struct xsec_peer p;
        memset(&p, 0, sizeof(p));
        snprintf(p.name, sizeof(p.name), "p1");
        snprintf(p.key, sizeof(p.key), "%s", kc.public_key);
        xsec_admit_set(sec, &p, 1);
    }
    struct xport_curve scv = {ks.public_key, ks.secret_key, NULL};
    struct xport_curve ccv = {kc.public_key, kc.secret_key, ks.public_key};
    if (xport_router_bind_curve(sctx, "tcp://127.0.0.1:*", curve ? &scv : NULL, &r, &d) != 0 ||
        xport_dealer_connect_curve(cctx, xport_endpoint(r), "p1", XPORT_DEALER_IMMEDIATE,
                                   curve ? &ccv : NULL, &s, &d) != 0) {
        goto out;
    }
    if (curve) {
        xport_set_peer_check(r, xsec_peer_check, sec);
    }
    xport_set_send_timeout(s, 5000, &d);
    xport_set_send_timeout(r, 5000, &d);
    struct proto_header h;
    size_t row = (size_t)hidden * 4;
    /* warm-up (and wait for the handshake) */
    for (int i = 0; i < 50 + n_rt; i++) {
        fwd_header(&h, PROTO_TYPE_DECODE, 1, hidden, (uint64_t)i + 1);
        int64_t t0 = hx_clock_now_us();
        struct xport_msg m;
        if (xport_send(s, NULL, &h, buf, row, NULL, NULL, &d) != 0 ||
            xport_recv(r, 5000, &m, &d) != 0) {
            goto out;
        }
        /* the reply goes back the same way, a DECODE-sized message as well */
        int e = xport_send(r, m.peer, &m.hdr, (void *)m.payload, m.payload_len, NULL, NULL, &d);
        xport_msg_release(&m);
        if (e != 0 || xport_recv(s, 5000, &m, &d) != 0) {
            goto out;
        }
        xport_msg_release(&m);
        if (i >= 50) {
            lat[i - 50] = (double)(hx_clock_now_us() - t0) / 2.0;
        }
    }
    qsort(lat, (size_t)n_rt, sizeof(double), cmp_double);
    out->decode_us_p50 = lat[n_rt / 2];
    out->decode_us_p95 = lat[(int)ceil(0.95 * n_rt) - 1];
    /* prefill: n one-way messages, zero-copy from one buffer */
    int64_t t0 = hx_clock_now_us();
    int sent = 0;
    int got = 0;
    while (got < n_prefill) {
        while (sent < n_prefill && sent - got < 4) {
            fwd_header(&h, PROTO_TYPE_PREFILL, prefill_tokens, hidden, (uint64_t)sent + 1);
            if (xport_send(s, NULL, &h, buf, big, no_free, NULL, &d) != 0) {
                goto out;
            }
            sent++;
        }
        struct xport_msg m;
        if (xport_recv(r, 10000, &m, &d) != 0) {
            goto out;
        }
        xport_msg_release(&m);
        got++;
    }
    double secs = (double)(hx_clock_now_us() - t0) * 1e-6;
    out->prefill_mb_s = (double)big * n_prefill / secs / 1e6;
    rc = 0;
out:
    if (rc != 0) {
        fprintf(stderr, "bench_serve: hop (%s): %s\n", curve ? "curve" : "plain", d.msg);
    }
    xport_free(s);
    xport_free(r);
    xsec_free(sec);
    xport_ctx_free(cctx);
    xport_ctx_free(sctx);
    xfree(lat);
    xfree(buf);
    return rc;
}
