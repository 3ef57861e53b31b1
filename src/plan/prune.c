/*
 * prune.c - Helix's prune_cluster (spec §2.5), reproduced with its tie-breaks and its
 * inconsistent '>' (source) versus '>=' (sink, compute) threshold tests.
 *
 * The pruned cluster is produced as complete-cluster INI text and read back with the core
 * parser, so the result is an ordinary struct cluster that passed the same validation as a
 * file (connected_nodes agree with the links, and so on).
 */
#include "plan/prune.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "core/cluster.h"

/* One candidate link of a ranking. */
struct cand {
    double bw;
    int link;      /* index into cluster.links */
    int key;       /* source/sink: the compute node index (tie-break) */
    char name[40]; /* compute: "Link-a-b" (tie-break) */
};

/* Descending by (bw, key): Python sorts (bw, ("source", i)) / (bw, (i, "sink")) reversed. */
static int cmp_desc_key(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    if (a->bw != b->bw) {
        return a->bw > b->bw ? -1 : 1;
    }
    return a->key > b->key ? -1 : a->key < b->key;
}

/* Descending by (bw, name): ties by descending code-point order of the link name. */
static int cmp_desc_name(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    if (a->bw != b->bw) {
        return a->bw > b->bw ? -1 : 1;
    }
    return -strcmp(a->name, b->name);
}

/* Mark kept entries of a sorted ranking in keep[] (by link index). strict: '>' test. */
static void keep_ranked(const struct cand *v, int n, const struct plan_prune_params *p, bool strict,
                        bool *keep)
{
    for (int q = 0; q < n; q++) {
        bool k = false;
        if (q < p->min_keep) {
            k = true;
        } else if (q < p->max_keep) {
            k = strict ? v[q].bw > p->threshold : v[q].bw >= p->threshold;
        }
        if (k) {
            keep[v[q].link] = true;
        }
    }
}

static void link_name(const struct cluster_link *lk, char *buf, size_t n)
{
    char a[16], b[16];
    snprintf(buf, n, "Link-%s-%s", cluster_endpoint_name(lk->a, a, sizeof(a)),
             cluster_endpoint_name(lk->b, b, sizeof(b)));
}

int plan_prune_cluster(const struct cluster *c, const struct plan_prune_params *p,
                       struct cluster **out, struct hx_diag *diag)
{
    if (out) {
        *out = NULL;
    }
    if (!c || !p || !out) {
        return hx_diag_set(diag, HX_EINVAL, "prune: missing argument");
    }
    if (p->min_keep < 0 || p->max_keep < p->min_keep || isnan(p->threshold)) {
        return hx_diag_set(diag, HX_EINVAL, "prune: bad parameters min_keep %d max_keep %d",
                           p->min_keep, p->max_keep);
    }
    size_t nl = c->n_links > 0 ? (size_t)c->n_links : 1;
    bool *keep = xcalloc(nl, sizeof(bool));
    struct cand *v = xcalloc(nl, sizeof(*v));
    /* Source links. */
    int n = 0;
    for (int li = 0; li < c->n_links; li++) {
        if (c->links[li].a == CLUSTER_SOURCE && c->links[li].b >= 0) {
            v[n++] = (struct cand){.bw = c->links[li].bandwidth, .link = li, .key = c->links[li].b};
        }
    }
    qsort(v, (size_t)n, sizeof(*v), cmp_desc_key);
    keep_ranked(v, n, p, true, keep);
    /* Sink links. */
    n = 0;
    for (int li = 0; li < c->n_links; li++) {
        if (c->links[li].b == CLUSTER_SINK && c->links[li].a >= 0) {
            v[n++] = (struct cand){.bw = c->links[li].bandwidth, .link = li, .key = c->links[li].a};
        }
    }
    qsort(v, (size_t)n, sizeof(*v), cmp_desc_key);
    keep_ranked(v, n, p, false, keep);
    /* Compute links, per node; kept if either endpoint keeps it. */
    for (int i = 0; i < c->n_nodes; i++) {
        n = 0;
        for (int li = 0; li < c->n_links; li++) {
            const struct cluster_link *lk = &c->links[li];
            if (lk->a >= 0 && lk->b >= 0 && (lk->a == i || lk->b == i)) {
                v[n] = (struct cand){.bw = lk->bandwidth, .link = li};
                link_name(lk, v[n].name, sizeof(v[n].name));
                n++;
            }
        }
        qsort(v, (size_t)n, sizeof(*v), cmp_desc_name);
        keep_ranked(v, n, p, false, keep);
    }
    xfree(v);

    /* Rebuild as a cluster with only the kept links. */
    struct cluster sub = *c;
    sub.links = xcalloc(nl, sizeof(*sub.links));
    sub.n_links = 0;
    for (int li = 0; li < c->n_links; li++) {
        if (keep[li]) {
            sub.links[sub.n_links++] = c->links[li];
        }
    }
    xfree(keep);
    sub.link_of = NULL; /* not used by the writer */
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_addf(&sb, "# pruned from %s: min_keep %d, max_keep %d, threshold %.17g\n",
                c->path ? c->path : "cluster", p->min_keep, p->max_keep, p->threshold);
    plan_prune_write_cluster(&sub, &sb);
    xfree(sub.links);
    char name[600];
    snprintf(name, sizeof(name), "%s (pruned)", c->path ? c->path : "cluster");
    int rc = cluster_parse_string(sb.buf, name, out, diag);
    strbuf_release(&sb);
    return rc;
}

/* Write "[a, b, 'sink']"-style connected_nodes for endpoint v. */
static void write_connected(const struct cluster *c, int v, struct strbuf *sb)
{
    bool first = true;
    strbuf_addc(sb, '[');
    /* 'source' first, then compute indices ascending, 'sink' last (Helix's sorted lists). */
    if (v >= 0) {
        for (int li = 0; li < c->n_links; li++) {
            if (c->links[li].a == CLUSTER_SOURCE && c->links[li].b == v) {
                strbuf_adds(sb, "'source'");
                first = false;
                break;
            }
        }
    }
    for (int u = 0; u < c->n_nodes; u++) {
        bool linked = false;
        for (int li = 0; li < c->n_links && !linked; li++) {
            const struct cluster_link *lk = &c->links[li];
            linked = (lk->a == v && lk->b == u) || (lk->a == u && lk->b == v);
        }
        if (linked && u != v) {
            strbuf_addf(sb, "%s%d", first ? "" : ", ", u);
            first = false;
        }
    }
    if (v >= 0) {
        for (int li = 0; li < c->n_links; li++) {
            if (c->links[li].b == CLUSTER_SINK && c->links[li].a == v) {
                strbuf_addf(sb, "%s'sink'", first ? "" : ", ");
                break;
            }
        }
    }
    strbuf_adds(sb, "]\n");
}

void plan_prune_write_cluster(const struct cluster *c, struct strbuf *out)
{
    strbuf_addf(out, "\n[NodeNames]\ntotal_compute_nodes=%d\n\n", c->n_nodes);
    strbuf_adds(out, "[SourceNode]\nconnected_nodes=");
    write_connected(c, CLUSTER_SOURCE, out);
    strbuf_adds(out, "\n[SinkNode]\nconnected_nodes=");
    write_connected(c, CLUSTER_SINK, out);
    for (int i = 0; i < c->n_nodes; i++) {
        strbuf_addf(out, "\n[ComputeNode-%d]\ntype=%s\nconnected_nodes=", i, c->nodes[i].type);
        write_connected(c, i, out);
    }
    for (int li = 0; li < c->n_links; li++) {
        char name[40];
        link_name(&c->links[li], name, sizeof(name));
        strbuf_addf(out, "\n[%s]\nbandwidth=%.17g\nlatency=%.17g\n", name, c->links[li].bandwidth,
                    c->links[li].latency_s);
    }
}
