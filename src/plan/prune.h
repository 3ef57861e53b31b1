/*
 * prune.h - Helix's graph pruning (spec §2.5, fake_cluster_generator.py: prune_cluster).
 *
 * Keeps, for the coordinator's source and sink roles and for every compute node, only its
 * best links by bandwidth, which shrinks the MILP (§2.3 sizes) at the price of losing links
 * good placements may need. Rules, reproduced exactly (including Helix's quirks):
 *   source links: sort (bandwidth, ("source", i)) descending; keep the first min_keep, and
 *     those at positions [min_keep, max_keep) with bandwidth  > threshold;
 *   sink links:   sort (bandwidth, (i, "sink")) descending; same, but bandwidth >= threshold;
 *   compute links: per node, its incident compute links as (bandwidth, "Link-a-b") sorted
 *     descending (ties: link name strings descending, "Link-0-9" > "Link-0-41" > "Link-0-4");
 *     keep the first min_keep and those in [min_keep, max_keep) with bandwidth >= threshold;
 *     a link survives if EITHER endpoint keeps it.
 * Bandwidths and threshold are bytes/s as written (§0.1).
 */
#ifndef HX_PLAN_PRUNE_H
#define HX_PLAN_PRUNE_H

struct hx_diag;
struct cluster;
struct strbuf;

struct plan_prune_params {
    int min_keep;     /* links always kept per node (12 in every Helix run) */
    int max_keep;     /* links kept at most per node's own choice (12) */
    double threshold; /* bandwidth threshold for positions [min_keep, max_keep) (1) */
};

/*
 * Prune c into a new cluster *out (same nodes and types; surviving links in c's link order,
 * connected_nodes rebuilt). c is borrowed. Errors: HX_EINVAL (min_keep < 0, max_keep <
 * min_keep, NaN threshold), or the cluster parser's error if the result cannot be rebuilt.
 */
int plan_prune_cluster(const struct cluster *c, const struct plan_prune_params *p,
                       struct cluster **out, struct hx_diag *diag);

/*
 * Write cluster c as a complete-cluster INI (§1.2 layout: [NodeNames], [SourceNode],
 * [SinkNode], [ComputeNode-i], then [Link-...] sections in c's link order). Bandwidth and
 * latency are written as plain numbers (bytes/s, seconds) with 17 significant digits, so
 * reading the text back gives the same doubles. Used to build the pruned cluster.
 */
void plan_prune_write_cluster(const struct cluster *c, struct strbuf *out);

#endif
