/*
 * test_plan_prune.c - Helix's graph pruning (§2.5): pruning the geo 24-node and the 42-node
 * clusters with min_keep = max_keep = 12, threshold 1 must give exactly the node and link sets
 * (bandwidths, latencies) of Helix's own pruned_cluster.ini files; plus the tie-break and
 * threshold rules on small hand-made clusters.
 */
#include <stdbool.h>

#include "base/status.h"
#include "base/strbuf.h"
#include "core/cluster.h"
#include "plan/prune.h"
#include "test.h"

/* Same nodes and types, and the same undirected links with the same values. */
static void assert_same_cluster(const struct cluster *a, const struct cluster *b)
{
    ASSERT_EQ(a->n_nodes, b->n_nodes);
    for (int i = 0; i < a->n_nodes; i++) {
        ASSERT_STR_EQ(a->nodes[i].type, b->nodes[i].type);
        ASSERT_EQ(a->nodes[i].from_source, b->nodes[i].from_source);
        ASSERT_EQ(a->nodes[i].to_sink, b->nodes[i].to_sink);
    }
    ASSERT_EQ(a->n_links, b->n_links);
    for (int li = 0; li < a->n_links; li++) {
        const struct cluster_link *x = &a->links[li];
        int lj = cluster_link_index(b, x->a, x->b);
        ASSERT_MSG(lj >= 0, "link %d-%d missing", x->a, x->b);
        ASSERT_DBL_NEAR(b->links[lj].bandwidth, x->bandwidth, 1e-9 * x->bandwidth);
        ASSERT_DBL_NEAR(b->links[lj].latency_s, x->latency_s, 1e-12);
    }
}

static void count_links(const struct cluster *c, int *src, int *snk, int *cmp)
{
    *src = *snk = *cmp = 0;
    for (int li = 0; li < c->n_links; li++) {
        if (c->links[li].a == CLUSTER_SOURCE) {
            (*src)++;
        } else if (c->links[li].b == CLUSTER_SINK) {
            (*snk)++;
        } else {
            (*cmp)++;
        }
    }
}

static void check_pruned(const char *full, const char *want_path, int want_src, int want_snk,
                         int want_cmp)
{
    struct hx_diag d = {0};
    struct cluster *c = NULL, *want = NULL, *got = NULL;
    ASSERT_MSG(cluster_read_file(full, &c, &d) == 0, "%s", d.msg);
    ASSERT_MSG(cluster_read_file(want_path, &want, &d) == 0, "%s", d.msg);
    struct plan_prune_params p = {.min_keep = 12, .max_keep = 12, .threshold = 1};
    ASSERT_MSG(plan_prune_cluster(c, &p, &got, &d) == 0, "%s", d.msg);
    int s, k, m;
    count_links(got, &s, &k, &m);
    ASSERT_EQ(s, want_src);
    ASSERT_EQ(k, want_snk);
    ASSERT_EQ(m, want_cmp);
    assert_same_cluster(got, want);
    assert_same_cluster(want, got);
    cluster_free(c);
    cluster_free(want);
    cluster_free(got);
}

TEST(plan_prune_geo24_matches_helix)
{
    check_pruned("data/clusters/geo24.ini", "data/clusters/geo24_pruned12.ini", 12, 12, 163);
}

TEST(plan_prune_cluster42_matches_helix)
{
    check_pruned("data/clusters/cluster42.ini", "data/clusters/cluster42_pruned12.ini", 12, 12,
                 426);
}

/*
 * 12 compute nodes, every link at the same bandwidth: ties decide. Source and sink ties go
 * to the largest node indices; compute ties to the largest link names ("Link-0-9" >
 * "Link-0-8" > ... > "Link-0-2" > "Link-0-11" > "Link-0-10" > "Link-0-1").
 */
static struct cluster *uniform_cluster(int n, double bw)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_addf(&sb, "[NodeNames]\ntotal_compute_nodes=%d\n[SourceNode]\nconnected_nodes=[", n);
    for (int i = 0; i < n; i++) {
        strbuf_addf(&sb, "%s%d", i ? ", " : "", i);
    }
    strbuf_adds(&sb, "]\n[SinkNode]\nconnected_nodes=[");
    for (int i = 0; i < n; i++) {
        strbuf_addf(&sb, "%s%d", i ? ", " : "", i);
    }
    strbuf_adds(&sb, "]\n");
    for (int i = 0; i < n; i++) {
        strbuf_addf(&sb, "[ComputeNode-%d]\ntype=T4\nconnected_nodes=['source'", i);
        for (int j = 0; j < n; j++) {
            if (j != i) {
                strbuf_addf(&sb, ", %d", j);
            }
        }
        strbuf_adds(&sb, ", 'sink']\n");
    }
    for (int i = 0; i < n; i++) {
        strbuf_addf(&sb, "[Link-source-%d]\nbandwidth=%g\nlatency=0.001\n", i, bw);
        strbuf_addf(&sb, "[Link-%d-sink]\nbandwidth=%g\nlatency=0.001\n", i, bw);
        for (int j = i + 1; j < n; j++) {
            strbuf_addf(&sb, "[Link-%d-%d]\nbandwidth=%g\nlatency=0.001\n", i, j, bw);
        }
    }
    struct cluster *c = NULL;
    struct hx_diag d = {0};
    ASSERT_MSG(cluster_parse_string(sb.buf, "uniform", &c, &d) == 0, "%s", d.msg);
    strbuf_release(&sb);
    return c;
}

TEST(plan_prune_ties_and_thresholds)
{
    struct cluster *c = uniform_cluster(12, 5);
    struct cluster *got = NULL;
    struct hx_diag d = {0};
    /* keep 2 per node: source/sink keep nodes 11 and 10. */
    struct plan_prune_params p = {.min_keep = 2, .max_keep = 2, .threshold = 1};
    ASSERT_MSG(plan_prune_cluster(c, &p, &got, &d) == 0, "%s", d.msg);
    ASSERT(cluster_link_index(got, CLUSTER_SOURCE, 11) >= 0);
    ASSERT(cluster_link_index(got, CLUSTER_SOURCE, 10) >= 0);
    ASSERT(cluster_link_index(got, CLUSTER_SOURCE, 9) < 0);
    ASSERT(cluster_link_index(got, 10, CLUSTER_SINK) >= 0);
    ASSERT(cluster_link_index(got, 9, CLUSTER_SINK) < 0);
    /* node 0's top 2 by name: Link-0-9, Link-0-8 ("Link-0-9" > "Link-0-8" > "Link-0-11"). */
    ASSERT(cluster_link_index(got, 0, 9) >= 0);
    ASSERT(cluster_link_index(got, 0, 8) >= 0);
    /* node 11's own top 2: Link-9-11, Link-8-11; node 0 ranks it low -> 0-11 not kept. */
    ASSERT(cluster_link_index(got, 9, 11) >= 0);
    ASSERT(cluster_link_index(got, 0, 11) < 0);
    cluster_free(got);
    /* Threshold equal to the bandwidth: '>' drops source links, '>=' keeps sink links. */
    p = (struct plan_prune_params){.min_keep = 0, .max_keep = 12, .threshold = 5};
    ASSERT_MSG(plan_prune_cluster(c, &p, &got, &d) == 0, "%s", d.msg);
    int s, k, m;
    count_links(got, &s, &k, &m);
    ASSERT_EQ(s, 0);
    ASSERT_EQ(k, 12);
    ASSERT_EQ(m, 66);
    cluster_free(got);
    p = (struct plan_prune_params){.min_keep = 3, .max_keep = 1, .threshold = 1};
    ASSERT_EQ(plan_prune_cluster(c, &p, &got, &d), HX_EINVAL);
    ASSERT(got == NULL);
    cluster_free(c);
}

TEST(plan_prune_written_cluster_reads_back)
{
    struct cluster *c = NULL, *back = NULL;
    struct hx_diag d = {0};
    ASSERT_MSG(cluster_read_file("data/clusters/geo24.ini", &c, &d) == 0, "%s", d.msg);
    struct strbuf sb;
    strbuf_init(&sb);
    plan_prune_write_cluster(c, &sb);
    ASSERT_MSG(cluster_parse_string(sb.buf, "written", &back, &d) == 0, "%s", d.msg);
    assert_same_cluster(c, back);
    for (int li = 0; li < c->n_links; li++) {
        ASSERT(back->links[li].bandwidth == c->links[li].bandwidth); /* exact round trip */
    }
    strbuf_release(&sb);
    cluster_free(c);
    cluster_free(back);
}
