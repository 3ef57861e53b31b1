/*
 * test_sched_core.c - the max-flow scheduler (spec §5.1): the IWRR rule, the three masks, route
 * construction and hop bandwidths, offline rejection restoring the loads, KV expectation
 * release, node failure, and the Swarm baseline's priority queue (§5.2).
 */
#include <math.h>

#include "base/alloc.h"
#include "sched/sched.h"
#include "test.h"

/* IWRR picks argmin(load + w/cap), first index on ties, and charges w/cap to the winner. */
TEST(sched_iwrr_rule)
{
    double caps[3] = {1, 2, 1};
    double loads[3] = {0, 0, 0};
    /* after: 1, 0.5, 1 -> index 1 */
    ASSERT_EQ(sched_iwrr_choose(caps, loads, NULL, 3, 1.0), 1);
    ASSERT_DBL_NEAR(loads[1], 0.5, 1e-12);
    /* after: 1, 1, 1 -> tie -> first index 0 */
    ASSERT_EQ(sched_iwrr_choose(caps, loads, NULL, 3, 1.0), 0);
    /* after: 2, 1, 1 -> tie between 1 and 2 -> 1 */
    ASSERT_EQ(sched_iwrr_choose(caps, loads, NULL, 3, 1.0), 1);
    /* long run: picks are proportional to the capacities */
    double c2[3] = {3, 1, 6};
    double l2[3] = {0, 0, 0};
    int cnt[3] = {0, 0, 0};
    for (int i = 0; i < 1000; i++) {
        cnt[sched_iwrr_choose(c2, l2, NULL, 3, 1.0)]++;
    }
    ASSERT_LE(abs(cnt[0] - 300), 1);
    ASSERT_LE(abs(cnt[1] - 100), 1);
    ASSERT_LE(abs(cnt[2] - 600), 1);
}

TEST(sched_iwrr_mask)
{
    double caps[3] = {10, 1, 10};
    double loads[3] = {0, 0, 0};
    unsigned char mask[3] = {0, 1, 1};
    ASSERT_EQ(sched_iwrr_choose(caps, loads, mask, 3, 5.0), 2); /* 0 would win but is masked */
    ASSERT_DBL_NEAR(loads[0], 0, 0);
    unsigned char none[3] = {0, 0, 0};
    double before[3] = {loads[0], loads[1], loads[2]};
    ASSERT_EQ(sched_iwrr_choose(caps, loads, none, 3, 5.0), -1);
    for (int i = 0; i < 3; i++) {
        ASSERT_DBL_NEAR(loads[i], before[i], 0);
    }
}

/*
 * Toy placement, L = 4: node 0 holds [0,2), node 1 holds [2,4), node 2 holds [0,4) (a second
 * pipeline), node 3 holds [0,2) behind a very slow source link (its flow is < 5 %).
 * Links: 0 src->0, 1 0->1, 2 1->sink, 3 src->2, 4 2->sink, 5 src->3, 6 3->1.
 */
static struct sched_node_desc toy_nodes[4] = {
    {.start = 0,
     .n_layers = 2,
     .tp = 100,
     .nic_in = 1e9,
     .nic_out = 1e9,
     .kv_capacity = 100000,
     .prompt_max_tokens = 2048},
    {.start = 2,
     .n_layers = 2,
     .tp = 1000,
     .nic_in = 1e9,
     .nic_out = 1e9,
     .kv_capacity = 50000,
     .prompt_max_tokens = 2048},
    {.start = 0,
     .n_layers = 4,
     .tp = 100,
     .nic_in = 1e9,
     .nic_out = 1e9,
     .kv_capacity = 10000,
     .prompt_max_tokens = 1024},
    {.start = 0,
     .n_layers = 2,
     .tp = 1000,
     .nic_in = 1e9,
     .nic_out = 1e9,
     .kv_capacity = 100000,
     .prompt_max_tokens = 2048},
};
static struct sched_link_desc toy_links[7] = {
    {SCHED_SOURCE, 0, 1e9, 1e-3},
    {0, 1, 1e9, 1e-3},
    {1, SCHED_SINK, 1e9, 1e-3},
    {SCHED_SOURCE, 2, 1e9, 1e-3},
    {2, SCHED_SINK, 1e9, 1e-3},
    {SCHED_SOURCE, 3, 8, 1e-3},
    {3, 1, 1e9, 1e-3},
};

static struct sched *toy(void)
{
    struct sched_topology t = {
        .n_layers = 4,
        .token_bytes = 2,
        .activation_bytes = 16384,
        .coord_nic_in = 1e10,
        .coord_nic_out = 1e10,
        .n_nodes = 4,
        .nodes = toy_nodes,
        .n_links = 7,
        .links = toy_links,
    };
    struct sched_params p;
    sched_params_helix(&p, 1);
    struct sched *s = NULL;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(sched_new(&t, &p, &s, &d), &d);
    return s;
}

TEST(sched_flow_and_masks)
{
    struct sched *s = toy();
    /* flow: 100 through node 0 (its TP), 100 through node 2, 4 tokens/s via node 3 (8 B/s / 2) */
    ASSERT_DBL_NEAR(sched_flow_value(s), 204, 1e-6);
    ASSERT_DBL_NEAR(sched_link_flow(s, 5), 4, 1e-6);
    int links[8];
    enum sched_verdict v[8];
    ASSERT_EQ(sched_candidates(s, SCHED_SOURCE, 100, links, v, 8), 3);
    ASSERT_EQ(links[0], 0);
    ASSERT_EQ(v[0], SCHED_PASS);
    ASSERT_EQ(v[1], SCHED_PASS);
    ASSERT_EQ(v[2], SCHED_FAIL_FLOW); /* 4 < 0.05 * 204 */
    /* node 2 accepts prompts up to 1024 tokens */
    sched_candidates(s, SCHED_SOURCE, 1500, links, v, 8);
    ASSERT_EQ(v[1], SCHED_FAIL_LENGTH);
    ASSERT_EQ(v[0], SCHED_PASS);
    /* KV: node 2 has 10000 token-layers, hwm 0.85 -> a prompt needs int(l + 240) * 4 to fit
     * above 1500 left: l = 1000 -> 4960 ok; after two such routes avail = 10000 - 9920 */
    sched_candidates(s, SCHED_SOURCE, 1000, links, v, 8);
    ASSERT_EQ(v[1], SCHED_PASS);
    sched_free(s);
}

TEST(sched_route_and_bandwidth)
{
    struct sched *s = toy();
    struct sched_route r = {0};
    /* IWRR at the source: flows 100 and 100 -> first pick link 0 (tie, first index) */
    ASSERT_OK(sched_route_prompt(s, 100, 0, &r));
    ASSERT_EQ(r.n_stages, 3);
    ASSERT(sched_route_complete(&r, 4));
    ASSERT_EQ(r.stage[0].node, 0);
    ASSERT_EQ(r.stage[0].layer_start, 0);
    ASSERT_EQ(r.stage[0].layer_end, 2);
    ASSERT_EQ(r.stage[1].node, 1);
    ASSERT_EQ(r.stage[1].layer_start, 2);
    ASSERT_EQ(r.stage[2].node, SCHED_SINK);
    /* hop bandwidth = min(link, out-NIC share, in-NIC share) by used speed; source link 0 uses
     * 1e9 * 100/5e8 = 200 B/s of the 1e10 NIC; shares: links 0 and 3 at 200 B/s each, link 5
     * at 8 B/s -> 1e10 * 200/408 > 1e9 -> limited by the 1e9 link */
    ASSERT_DBL_NEAR(r.stage[0].bandwidth, 1e9, 1e-3);
    /* second prompt goes to the other pipeline (node 2 runs all 4 layers) */
    struct sched_route r2 = {0};
    ASSERT_OK(sched_route_prompt(s, 100, 0, &r2));
    ASSERT_EQ(r2.n_stages, 2);
    ASSERT_EQ(r2.stage[0].node, 2);
    ASSERT(sched_route_complete(&r2, 4));
    /* KV expectation: int(100 + 240 * 1.0) * 4 layers on node 2 */
    long avail = 0;
    long total = 0;
    ASSERT_OK(sched_node_kv(s, 2, &avail, &total));
    ASSERT_EQ(total - avail, 340L * 4);
    sched_route_finish(s, &r2);
    ASSERT_OK(sched_node_kv(s, 2, &avail, &total));
    ASSERT_EQ(avail, total);
    sched_route_release(&r);
    sched_route_release(&r2);
    sched_free(s);
}

/* A rejected prompt (no candidate at some hop) restores the loads of earlier hops. */
TEST(sched_reject_restores_loads)
{
    struct sched *s = toy();
    struct sched_route r = {0};
    /* 1500 tokens: node 2 fails the length mask; node 0 passes; node 1 too -> routable */
    ASSERT_OK(sched_route_prompt(s, 1500, 0, &r));
    ASSERT_EQ(r.stage[0].node, 0);
    /* exhaust node 1's KV expectation (2 layers, 50000; hwm 0.85 keeps 7500 free) while node 0
     * (100000) still accepts */
    struct sched_route fill[40];
    int n_fill = 0;
    memset(fill, 0, sizeof(fill));
    while (n_fill < 40) {
        int links[8];
        enum sched_verdict v[8];
        ASSERT_EQ(sched_candidates(s, 0, 2000, links, v, 8), 1);
        if (v[0] != SCHED_PASS) {
            break;
        }
        /* route through pipeline 0 only: 1500 tokens skip node 2 by length */
        ASSERT_OK(sched_route_prompt(s, 2000, 0, &fill[n_fill]));
        ASSERT_EQ(fill[n_fill].stage[0].node, 0);
        n_fill++;
    }
    ASSERT_EQ(n_fill, 8); /* 46520 - 4480 n >= 11980 */
    /* now a 2000-token prompt: source -> node 0 passes, node 0 -> node 1 fails KV -> reject */
    struct sched_route rej = {0};
    ASSERT_EQ(sched_route_prompt(s, 2000, 0, &rej), HX_EFULL);
    ASSERT_EQ(rej.n_stages, 0);
    /* loads restored: prompts now pick exactly what a twin scheduler with the same accepted
     * history picks (without the restore, link 0 would carry 2000/100 = 20 more load and the
     * choices would part after ~175 prompts) */
    struct sched *t = toy();
    struct sched_route tr = {0};
    ASSERT_OK(sched_route_prompt(t, 1500, 0, &tr));
    for (int i = 0; i < n_fill; i++) {
        struct sched_route x = {0};
        ASSERT_OK(sched_route_prompt(t, 2000, 0, &x));
        sched_route_release(&x);
    }
    struct sched_route a = {0};
    struct sched_route b = {0};
    for (int i = 0; i < 220; i++) {
        ASSERT_OK(sched_route_prompt(s, 100, SCHED_ROUTE_IGNORE_KV, &a));
        ASSERT_OK(sched_route_prompt(t, 100, SCHED_ROUTE_IGNORE_KV, &b));
        ASSERT_EQ(a.stage[0].link, b.stage[0].link);
    }
    /* ignoring KV routes even when the mask would reject */
    ASSERT_OK(sched_route_prompt(s, 2000, SCHED_ROUTE_IGNORE_KV, &rej));
    sched_route_release(&rej);
    sched_route_release(&a);
    sched_route_release(&b);
    sched_route_release(&tr);
    sched_route_release(&r);
    for (int i = 0; i < n_fill; i++) {
        sched_route_release(&fill[i]);
    }
    sched_free(t);
    sched_free(s);
}

TEST(sched_decode_updates_loads)
{
    struct sched *s = toy();
    struct sched_route r = {0};
    ASSERT_OK(sched_route_prompt(s, 100, 0, &r)); /* node 0 pipeline, load 1.0 at source */
    /* 150 decode iterations on that route add 150/100 = 1.5 -> next two prompts of 100 go
     * to node 2 (load 0 + 1 < 2.5 + 1), then (1 + 1 = 2 < 3.5) again node 2 */
    for (int i = 0; i < 150; i++) {
        sched_route_decode(s, &r);
    }
    struct sched_route x = {0};
    ASSERT_OK(sched_route_prompt(s, 100, 0, &x));
    ASSERT_EQ(x.stage[0].node, 2);
    ASSERT_OK(sched_route_prompt(s, 100, 0, &x));
    ASSERT_EQ(x.stage[0].node, 2);
    sched_route_release(&x);
    sched_route_release(&r);
    sched_free(s);
}

TEST(sched_node_failure)
{
    struct sched *s = toy();
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(sched_node_set_alive(s, 2, 0, &d), &d);
    ASSERT_DBL_NEAR(sched_flow_value(s), 104, 1e-6);
    for (int i = 0; i < 10; i++) {
        struct sched_route r = {0};
        ASSERT_OK(sched_route_prompt(s, 100, 0, &r));
        for (int k = 0; k < r.n_stages; k++) {
            ASSERT_NE(r.stage[k].node, 2);
        }
        ASSERT(sched_route_complete(&r, 4));
        sched_route_release(&r);
    }
    ASSERT_OK_DIAG(sched_node_set_alive(s, 2, 1, &d), &d);
    ASSERT_DBL_NEAR(sched_flow_value(s), 204, 1e-6);
    ASSERT_ERR(sched_node_set_alive(s, 9, 0, &d), HX_EINVAL);
    sched_free(s);
}

TEST(sched_rejects_bad_topology)
{
    struct sched_link_desc bad[1] = {{SCHED_SOURCE, 7, 1e9, 0}};
    struct sched_topology t = {
        .n_layers = 4,
        .token_bytes = 2,
        .activation_bytes = 16384,
        .coord_nic_in = 1e10,
        .coord_nic_out = 1e10,
        .n_nodes = 4,
        .nodes = toy_nodes,
        .n_links = 1,
        .links = bad,
    };
    struct sched_params p;
    sched_params_helix(&p, 0);
    struct sched *s = NULL;
    struct hx_diag d = {0};
    ASSERT_ERR(sched_new(&t, &p, &s, &d), HX_EINVAL);
    ASSERT(s == NULL);
    ASSERT_CONTAINS(d.msg, "link 0");
}

TEST(sched_swarm_queue)
{
    int n_out[2] = {3, 1};
    int l0[3] = {7, 4, 9};
    int l1[1] = {2};
    const int *lists[2] = {l0, l1};
    struct sched_swarm *sw = sched_swarm_new(2, n_out, lists, 0.05, 0.8);
    /* all priorities 0.05: ties -> smallest link id first: 4 (pos 1), 7 (pos 0), 9 (pos 2) */
    ASSERT_EQ(sched_swarm_choose(sw, 0), 1);
    ASSERT_EQ(sched_swarm_choose(sw, 0), 0);
    ASSERT_EQ(sched_swarm_choose(sw, 0), 2);
    /* link 9 becomes fast: ema = 0.8 * 0.001 + 0.2 * 0.05 */
    sched_swarm_update(sw, 0, 2, 0.001);
    ASSERT_DBL_NEAR(sched_swarm_ema(sw, 0, 2), 0.0108, 1e-12);
    /* priorities now 0.1 (4), 0.1 (7), 0.1 (9): 4, 7, then 9 at 0.1 -> next 9 at 0.1108 first */
    ASSERT_EQ(sched_swarm_choose(sw, 0), 1);
    ASSERT_EQ(sched_swarm_choose(sw, 0), 0);
    ASSERT_EQ(sched_swarm_choose(sw, 0), 2);
    ASSERT_EQ(sched_swarm_choose(sw, 0), 2);
    ASSERT_EQ(sched_swarm_choose(sw, 1), 0);
    sched_swarm_free(sw);
}
