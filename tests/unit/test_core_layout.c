/*
 * test_core_layout.c - placements and simulator cluster files: every bundled file reads,
 * validates against its cluster and model, and writes back byte-identical; our
 * generate_simulator_cluster reproduces the stored ILP simulator clusters.
 */
#include <string.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "core/core.h"
#include "test.h"

/* layout file, cluster file, model, flags for layout_validate */
static const struct {
    const char *layout;
    const char *cluster;
    const char *model;
    unsigned flags;
} cases[] = {
    {"single24_70b/ilp", "single24", "llama2_70b", LAYOUT_REQUIRE_ALL},
    {"single24_70b/petals", "single24", "llama2_70b", LAYOUT_REQUIRE_ALL},
    {"single24_70b/swarm", "single24", "llama2_70b", LAYOUT_REQUIRE_ALL},
    {"single24_70b/separate_a100", "single24_a100", "llama2_70b", LAYOUT_ALLOW_OVER_MAX},
    {"single24_70b/separate_l4", "single24_l4", "llama2_70b", LAYOUT_ALLOW_OVER_MAX},
    {"single24_70b/separate_t4", "single24_t4", "llama2_70b", LAYOUT_ALLOW_OVER_MAX},
    {"single24_30b/ilp_a100", "single24_a100", "llama1_30b", LAYOUT_REQUIRE_ALL},
    {"single24_30b/ilp_l4", "single24_l4", "llama1_30b", LAYOUT_REQUIRE_ALL},
    {"single24_30b/ilp_t4", "single24_t4", "llama1_30b", LAYOUT_REQUIRE_ALL},
    {"single24_30b/petals", "single24", "llama1_30b", LAYOUT_REQUIRE_ALL},
    {"single24_30b/swarm", "single24", "llama1_30b", LAYOUT_REQUIRE_ALL},
    {"geo24_70b/ilp", "geo24_pruned12", "llama2_70b", LAYOUT_REQUIRE_ALL},
    {"geo24_70b/petals", "geo24", "llama2_70b", LAYOUT_REQUIRE_ALL},
    {"geo24_70b/swarm", "geo24", "llama2_70b", LAYOUT_REQUIRE_ALL},
    {"cluster42_70b/ilp", "cluster42_pruned12", "llama2_70b", LAYOUT_REQUIRE_ALL},
    {"cluster42_70b/petals", "cluster42", "llama2_70b", LAYOUT_REQUIRE_ALL},
    {"cluster42_70b/swarm", "cluster42", "llama2_70b", LAYOUT_REQUIRE_ALL},
    {"cluster10_30b/ilp", "cluster10", "llama1_30b", LAYOUT_REQUIRE_ALL},
};

static char *slurp(const char *path)
{
    struct strbuf sb;
    strbuf_init(&sb);
    ASSERT_OK(strbuf_read_file(&sb, path));
    return strbuf_detach(&sb, NULL);
}

TEST(core_layout_bundled_roundtrip)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hx_diag d = {0};
        char path[256];
        struct cluster *c = NULL;
        struct model_profile *m = NULL;
        struct layout *l = NULL;
        snprintf(path, sizeof(path), "data/clusters/%s.ini", cases[i].cluster);
        ASSERT_OK_DIAG(cluster_read_file(path, &c, &d), &d);
        snprintf(path, sizeof(path), "data/models/%s.ini", cases[i].model);
        ASSERT_OK_DIAG(model_profile_read_file(path, &m, &d), &d);
        snprintf(path, sizeof(path), "data/layouts/%s_sol.ini", cases[i].layout);
        ASSERT_OK_DIAG(layout_read_file(path, c->n_nodes, &l, &d), &d);
        ASSERT_OK_DIAG(layout_validate(l, c, m, cases[i].flags, &d), &d);
        struct strbuf sb;
        strbuf_init(&sb);
        layout_write(l, &sb);
        char *orig = slurp(path);
        ASSERT_STR_EQ(sb.buf, orig);
        xfree(orig);
        strbuf_release(&sb);

        /* simulator cluster: read, write back identical */
        struct sim_cluster *sc = NULL;
        snprintf(path, sizeof(path), "data/layouts/%s_simulator_cluster.ini", cases[i].layout);
        ASSERT_OK_DIAG(sim_cluster_read_file(path, &sc, &d), &d);
        ASSERT_EQ(sc->n_nodes, c->n_nodes);
        strbuf_init(&sb);
        sim_cluster_write(sc, &sb);
        orig = slurp(path);
        /* the first line names the synthesizer; compare from the first section on */
        const char *a = strstr(sb.buf, "[Coordinator]");
        const char *b = strstr(orig, "[Coordinator]");
        ASSERT(a && b);
        /* the hand-written SP files lack the final blank line Helix's generator writes */
        size_t na = strlen(a);
        size_t nb = strlen(b);
        while (na > 0 && a[na - 1] == '\n') {
            na--;
        }
        while (nb > 0 && b[nb - 1] == '\n') {
            nb--;
        }
        ASSERT_MSG(na == nb && memcmp(a, b, na) == 0, "%s differs after write-back", path);
        xfree(orig);
        strbuf_release(&sb);
        /* every node's kv capacity is the model's for its k (except hand-set SP files) */
        if (!(cases[i].flags & LAYOUT_ALLOW_OVER_MAX)) {
            for (int j = 0; j < sc->n_nodes; j++) {
                int node = sc->nodes[j].node;
                int g = model_gpu_index(m, sc->nodes[j].machine_type);
                ASSERT(node >= 0 && node < l->n_nodes && g >= 0);
                ASSERT_STR_EQ(sc->nodes[j].machine_type, c->nodes[node].type);
                ASSERT_EQ(sc->nodes[j].kv_cache_capacity,
                          model_kv_capacity(m, &m->gpus[g], l->nodes[node].n_layers));
            }
        }
        sim_cluster_free(sc);
        layout_free(l);
        model_profile_free(m);
        cluster_free(c);
    }
}

TEST(core_layout_generate_matches_helix)
{
    struct hx_diag d = {0};
    struct machine_profiles *mp = NULL;
    ASSERT_OK_DIAG(machine_profiles_read_file("data/machine_profiles.ini", &mp, &d), &d);
    int checked = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (!strstr(cases[i].layout, "/ilp")) {
            continue;
        }
        char path[256];
        struct cluster *c = NULL;
        struct model_profile *m = NULL;
        struct layout *l = NULL;
        struct sim_cluster *want = NULL;
        struct sim_cluster *got = NULL;
        snprintf(path, sizeof(path), "data/clusters/%s.ini", cases[i].cluster);
        ASSERT_OK_DIAG(cluster_read_file(path, &c, &d), &d);
        snprintf(path, sizeof(path), "data/models/%s.ini", cases[i].model);
        ASSERT_OK_DIAG(model_profile_read_file(path, &m, &d), &d);
        snprintf(path, sizeof(path), "data/layouts/%s_sol.ini", cases[i].layout);
        ASSERT_OK_DIAG(layout_read_file(path, c->n_nodes, &l, &d), &d);
        snprintf(path, sizeof(path), "data/layouts/%s_simulator_cluster.ini", cases[i].layout);
        ASSERT_OK_DIAG(sim_cluster_read_file(path, &want, &d), &d);
        ASSERT_OK_DIAG(sim_cluster_generate(c, l, m, mp, LAYOUT_STRICT, &got, &d), &d);
        /* same node set and link set (names, endpoints, bandwidth, latency), same order */
        ASSERT_EQ(got->n_nodes, want->n_nodes);
        ASSERT_MSG(got->n_links == want->n_links, "%s: %d links generated, %d stored",
                   cases[i].layout, got->n_links, want->n_links);
        for (int k = 0; k < got->n_links; k++) {
            ASSERT_STR_EQ(got->links[k].name, want->links[k].name);
            ASSERT_EQ(got->links[k].from, want->links[k].from);
            ASSERT_EQ(got->links[k].to, want->links[k].to);
            ASSERT_DBL_NEAR(got->links[k].bandwidth, want->links[k].bandwidth, 0);
            ASSERT_DBL_NEAR(got->links[k].latency_s, want->links[k].latency_s, 1e-15);
        }
        /* and the whole file is byte-identical */
        struct strbuf sb;
        strbuf_init(&sb);
        sim_cluster_write(got, &sb);
        char *orig = slurp(path);
        ASSERT_STR_EQ(sb.buf, orig);
        xfree(orig);
        strbuf_release(&sb);
        checked++;
        sim_cluster_free(got);
        sim_cluster_free(want);
        layout_free(l);
        model_profile_free(m);
        cluster_free(c);
    }
    ASSERT_EQ(checked, 7);
    machine_profiles_free(mp);
}

TEST(core_layout_edge_valid)
{
    struct layout *l = layout_new(3);
    l->nodes[0] = (struct layout_node){.start = 0, .n_layers = 4};
    l->nodes[1] = (struct layout_node){.start = 2, .n_layers = 4};
    l->nodes[2] = (struct layout_node){.start = 4, .n_layers = 4};
    ASSERT(layout_edge_valid(l, 8, LAYOUT_STRICT, CLUSTER_SOURCE, 0));
    ASSERT(!layout_edge_valid(l, 8, LAYOUT_STRICT, CLUSTER_SOURCE, 1));
    ASSERT(layout_edge_valid(l, 8, LAYOUT_STRICT, 0, 2));
    ASSERT(!layout_edge_valid(l, 8, LAYOUT_STRICT, 0, 1));
    ASSERT(layout_edge_valid(l, 8, LAYOUT_PARTIAL, 0, 1));  /* 2 <= 4 < 6 */
    ASSERT(layout_edge_valid(l, 8, LAYOUT_PARTIAL, 1, 2));  /* 4 <= 6 < 8 */
    ASSERT(!layout_edge_valid(l, 8, LAYOUT_PARTIAL, 2, 1)); /* 2 <= 8 but 8 >= 6 */
    ASSERT(layout_edge_valid(l, 8, LAYOUT_STRICT, 2, CLUSTER_SINK));
    ASSERT(!layout_edge_valid(l, 8, LAYOUT_STRICT, 1, CLUSTER_SINK));
    l->nodes[1].n_layers = 0;
    ASSERT(!layout_edge_valid(l, 8, LAYOUT_PARTIAL, 0, 1));
    layout_free(l);
}
