/*
 * test_flow_random.c - Dinic against two independent oracles on seeded random graphs:
 * Edmonds-Karp on an adjacency matrix (a few thousand graphs) and brute-force enumeration of
 * every s-t cut (tiny graphs). Also checks conservation, capacity bounds and that the reported
 * minimum cut's capacity equals the flow value.
 */
#include <string.h>

#include "flow/flow.h"
#include "test.h"

#define MAXV 12

/* xorshift64*: deterministic, independent of libc rand() */
static unsigned long long rng_state;
static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (unsigned)((rng_state * 2685821657736338717ULL) >> 33) % n;
}

struct rgraph {
    int n;
    int m;
    int u[64];
    int v[64];
    double cap[64];
};

static void random_graph(struct rgraph *r, int maxv, int integral)
{
    r->n = 2 + (int)rnd((unsigned)maxv - 1);
    r->m = (int)rnd(40);
    if (r->m > 64) {
        r->m = 64;
    }
    for (int e = 0; e < r->m; e++) {
        r->u[e] = (int)rnd((unsigned)r->n);
        r->v[e] = (int)rnd((unsigned)r->n);
        if (integral) {
            r->cap[e] = (double)rnd(20);
        } else {
            /* mix scales as Helix does (tokens/s from 1e2 to 5e8) */
            double scale = rnd(3) == 0 ? 1e6 : 1.0;
            r->cap[e] = scale * ((double)rnd(100000) / 97.0);
        }
    }
}

/* Edmonds-Karp on a dense matrix (parallel edges summed, self-loops ignored). */
static double edmonds_karp(const struct rgraph *r, int s, int t)
{
    double res[MAXV][MAXV];
    memset(res, 0, sizeof(res));
    for (int e = 0; e < r->m; e++) {
        if (r->u[e] != r->v[e]) {
            res[r->u[e]][r->v[e]] += r->cap[e];
        }
    }
    double total = 0;
    for (;;) {
        int prev[MAXV];
        for (int i = 0; i < r->n; i++) {
            prev[i] = -1;
        }
        prev[s] = s;
        int q[MAXV];
        int qh = 0;
        int qt = 0;
        q[qt++] = s;
        while (qh < qt && prev[t] < 0) {
            int x = q[qh++];
            for (int y = 0; y < r->n; y++) {
                if (prev[y] < 0 && res[x][y] > 1e-9) {
                    prev[y] = x;
                    q[qt++] = y;
                }
            }
        }
        if (prev[t] < 0) {
            break;
        }
        double b = INFINITY;
        for (int y = t; y != s; y = prev[y]) {
            b = fmin(b, res[prev[y]][y]);
        }
        for (int y = t; y != s; y = prev[y]) {
            res[prev[y]][y] -= b;
            res[y][prev[y]] += b;
        }
        total += b;
    }
    return total;
}

/* Minimum over all 2^(n-2) s-t cuts of the capacity crossing from the s side. */
static double brute_min_cut(const struct rgraph *r, int s, int t)
{
    double best = INFINITY;
    int others[MAXV];
    int k = 0;
    for (int i = 0; i < r->n; i++) {
        if (i != s && i != t) {
            others[k++] = i;
        }
    }
    for (unsigned mask = 0; mask < (1u << k); mask++) {
        char side[MAXV] = {0};
        side[s] = 1;
        for (int j = 0; j < k; j++) {
            if (mask & (1u << j)) {
                side[others[j]] = 1;
            }
        }
        double c = 0;
        for (int e = 0; e < r->m; e++) {
            if (side[r->u[e]] && !side[r->v[e]]) {
                c += r->cap[e];
            }
        }
        best = fmin(best, c);
    }
    return best;
}

static double solve_and_check(struct flow_graph *g, const struct rgraph *r, int s, int t)
{
    flow_graph_clear(g);
    flow_graph_add_vertices(g, r->n);
    for (int e = 0; e < r->m; e++) {
        ASSERT_EQ(flow_graph_add_edge(g, r->u[e], r->v[e], r->cap[e]), e);
    }
    double v = -1;
    ASSERT_OK(flow_graph_max_flow(g, s, t, &v));
    /* capacity bounds and conservation */
    double bal[MAXV] = {0};
    double cut = 0;
    for (int e = 0; e < r->m; e++) {
        double f = flow_graph_edge_flow(g, e);
        ASSERT(f >= 0 && f <= r->cap[e]);
        bal[r->u[e]] -= f;
        bal[r->v[e]] += f;
        if (flow_graph_edge_in_cut(g, e)) {
            cut += r->cap[e];
            ASSERT(fabs(f - r->cap[e]) <= 1e-9 * fmax(1, r->cap[e]) + 1e-9);
        }
    }
    double tol = 1e-7 * fmax(1, v);
    for (int i = 0; i < r->n; i++) {
        if (i != s && i != t) {
            ASSERT_MSG(fabs(bal[i]) <= tol, "vertex %d imbalance %g", i, bal[i]);
        }
    }
    ASSERT_DBL_NEAR(bal[t], v, tol);
    ASSERT_DBL_NEAR(cut, v, tol);
    ASSERT(flow_graph_source_side(g, s) == 1 && flow_graph_source_side(g, t) == 0);
    return v;
}

TEST(flow_random_vs_edmonds_karp)
{
    rng_state = 0x9E3779B97F4A7C15ULL;
    struct flow_graph *g = flow_graph_new();
    for (int it = 0; it < 3000; it++) {
        struct rgraph r;
        random_graph(&r, MAXV, it % 2);
        int s = (int)rnd((unsigned)r.n);
        int t = (int)rnd((unsigned)r.n);
        if (s == t) {
            t = (s + 1) % r.n;
        }
        double v = solve_and_check(g, &r, s, t);
        double want = edmonds_karp(&r, s, t);
        ASSERT_MSG(fabs(v - want) <= 1e-7 * fmax(1, want), "graph %d: dinic %.9g ek %.9g", it, v,
                   want);
    }
    flow_graph_free(g);
}

TEST(flow_random_vs_brute_force_cut)
{
    rng_state = 12345;
    struct flow_graph *g = flow_graph_new();
    for (int it = 0; it < 2000; it++) {
        struct rgraph r;
        random_graph(&r, 9, it % 3 == 0);
        double v = solve_and_check(g, &r, 0, r.n - 1);
        double want = brute_min_cut(&r, 0, r.n - 1);
        ASSERT_MSG(fabs(v - want) <= 1e-7 * fmax(1, want), "graph %d: dinic %.9g cut %.9g", it, v,
                   want);
    }
    flow_graph_free(g);
}

TEST(flow_graph_edge_cases)
{
    struct flow_graph *g = flow_graph_new();
    double v = 0;
    ASSERT_ERR(flow_graph_max_flow(g, 0, 1, &v), HX_EINVAL); /* no vertices */
    flow_graph_add_vertices(g, 3);
    ASSERT_ERR(flow_graph_max_flow(g, 1, 1, &v), HX_EINVAL);
    ASSERT_OK(flow_graph_max_flow(g, 0, 2, &v)); /* disconnected */
    ASSERT_DBL_NEAR(v, 0, 0);
    flow_graph_add_edge(g, 0, 1, INFINITY);
    flow_graph_add_edge(g, 1, 2, 5);
    flow_graph_add_edge(g, 0, 2, -3);  /* clamped to 0 */
    flow_graph_add_edge(g, 0, 2, NAN); /* clamped to 0 */
    ASSERT_OK(flow_graph_max_flow(g, 0, 2, &v));
    ASSERT_DBL_NEAR(v, 5, 0);
    ASSERT(flow_graph_edge_in_cut(g, 1));
    ASSERT(!flow_graph_edge_in_cut(g, 0));
    flow_graph_add_edge(g, 1, 2, INFINITY);
    ASSERT_OK(flow_graph_max_flow(g, 0, 2, &v));
    ASSERT(isinf(v));
    flow_graph_free(g);
}
