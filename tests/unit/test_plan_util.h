/*
 * test_plan_util.h - helpers shared by the plan tests (and bench/bench_plan.c): load a Helix
 * problem from the bundled data, generate random clusters (mixes of the profiled GPU types,
 * complete graphs or regions joined by slow links), run a method and check the result with the
 * independent checker. Everything is static so each test file stands alone.
 */
#ifndef HX_TESTS_PLAN_UTIL_H
#define HX_TESTS_PLAN_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "core/core.h"
#include "flow/flow.h"
#include "plan/plan.h"

struct tp_problem {
    struct model_profile *m;
    struct cluster *c;
    struct machine_profiles *mp;
    struct model_throughput *tp;
    struct plan_problem p;
};

static void tp_release(struct tp_problem *t)
{
    model_throughput_free(t->tp);
    machine_profiles_free(t->mp);
    cluster_free(t->c);
    model_profile_free(t->m);
    memset(t, 0, sizeof(*t));
}

/* Load model (path) + cluster (path or NULL with text) + data/machine_profiles.ini. */
static int tp_load(struct tp_problem *t, const char *model_path, const char *cluster_path,
                   const char *cluster_text, enum layout_connectivity conn, struct hx_diag *d)
{
    memset(t, 0, sizeof(*t));
    int rc = model_profile_read_file(model_path, &t->m, d);
    if (rc == HX_OK) {
        rc = cluster_path ? cluster_read_file(cluster_path, &t->c, d)
                          : cluster_parse_string(cluster_text, "generated", &t->c, d);
    }
    if (rc == HX_OK) {
        rc = machine_profiles_read_file("data/machine_profiles.ini", &t->mp, d);
    }
    if (rc == HX_OK) {
        rc = model_throughput_for_cluster(t->m, t->c, &t->tp, d);
    }
    if (rc != HX_OK) {
        tp_release(t);
        return rc;
    }
    t->p.cluster = t->c;
    t->p.model = t->m;
    t->p.tp = t->tp;
    t->p.mp = t->mp;
    t->p.conn = conn;
    return HX_OK;
}

__attribute__((unused)) static uint64_t tp_rng(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/*
 * A random cluster: n nodes of types drawn from types[0..nt), `regions` regions (1 = complete
 * graph of fast links); in-region links 1000-1500 mbps, cross-region 10-15 mbps (about 600-900
 * tokens/s of activations per link), every node linked to the source and the sink.
 */
__attribute__((unused)) static void tp_gen_cluster(struct strbuf *sb, uint64_t seed, int n,
                                                   int regions, const char *const *types, int nt)
{
    uint64_t s = seed * 2654435761ULL + 12345;
    int *reg = xcalloc((size_t)n, sizeof(int));
    strbuf_addf(sb, "[NodeNames]\ntotal_compute_nodes=%d\n\n[SourceNode]\nconnected_nodes=[", n);
    for (int i = 0; i < n; i++) {
        strbuf_addf(sb, "%s%d", i ? ", " : "", i);
    }
    strbuf_adds(sb, "]\n\n[SinkNode]\nconnected_nodes=[");
    for (int i = 0; i < n; i++) {
        strbuf_addf(sb, "%s%d", i ? ", " : "", i);
    }
    strbuf_adds(sb, "]\n\n");
    for (int i = 0; i < n; i++) {
        reg[i] = (int)(tp_rng(&s) % (uint64_t)regions);
        strbuf_addf(sb, "[ComputeNode-%d]\ntype=%s\nconnected_nodes=['source'", i,
                    types[tp_rng(&s) % (uint64_t)nt]);
        for (int j = 0; j < n; j++) {
            if (j != i) {
                strbuf_addf(sb, ", %d", j);
            }
        }
        strbuf_adds(sb, ", 'sink']\n\n");
    }
    for (int i = 0; i < n; i++) {
        strbuf_addf(sb, "[Link-source-%d]\nbandwidth=%d * mbps\nlatency=1 * MilliSec\n\n", i,
                    1000 + (int)(tp_rng(&s) % 500));
    }
    for (int i = 0; i < n; i++) {
        strbuf_addf(sb, "[Link-%d-sink]\nbandwidth=%d * mbps\nlatency=1 * MilliSec\n\n", i,
                    1000 + (int)(tp_rng(&s) % 500));
    }
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            int bw = reg[i] == reg[j] ? 1000 + (int)(tp_rng(&s) % 500) : 10 + (int)(tp_rng(&s) % 6);
            strbuf_addf(sb, "[Link-%d-%d]\nbandwidth=%d * mbps\nlatency=1 * MilliSec\n\n", i, j,
                        bw);
        }
    }
    xfree(reg);
}

/* Load a random cluster (first seed >= seed0 whose nodes can hold the model at all). */
__attribute__((unused)) static void tp_load_random(struct tp_problem *t, const char *model,
                                                   uint64_t seed0, int n, int regions,
                                                   const char *const *types, int nt)
{
    for (uint64_t seed = seed0;; seed++) {
        struct strbuf sb;
        struct hx_diag d = {0};
        strbuf_init(&sb);
        tp_gen_cluster(&sb, seed, n, regions, types, nt);
        int rc = tp_load(t, model, NULL, sb.buf, LAYOUT_STRICT, &d);
        strbuf_release(&sb);
        if (rc != HX_OK) {
            continue;
        }
        int sum = 0;
        for (int i = 0; i < t->c->n_nodes; i++) {
            sum += plan_node_max_layers(&t->p, i);
        }
        if (sum >= t->m->n_layers) {
            return;
        }
        tp_release(t);
    }
}

/* Run the independent checker on a result; 0 if valid. */
__attribute__((unused)) static int tp_check(const struct plan_problem *p,
                                            const struct plan_result *r, int max_stages,
                                            struct hx_diag *d)
{
    struct plan_edge_flow *e = NULL;
    int ne = 0;
    double v = 0.0;
    int rc = plan_edge_flows(p, r->layout, &e, &ne, &v, d);
    if (rc == HX_OK) {
        rc = plan_validate(p, r->layout, e, ne, r->objective, max_stages, d);
    }
    xfree(e);
    return rc;
}

__attribute__((unused)) static double tp_clock(void *u)
{
    (void)u;
    return hx_clock_now();
}

#endif
