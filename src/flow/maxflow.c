/*
 * maxflow.c - Dinic's maximum flow on a capacitated digraph with double capacities.
 *
 * Edge e is stored as two arcs, 2e (u -> v, capacity cap) and 2e+1 (v -> u, capacity 0), with
 * flow[2e+1] = -flow[2e]. Adjacency is rebuilt as CSR at each solve, so adding edges is O(1) and
 * flow_graph_clear keeps every buffer for the next graph (the planner scores many placements).
 * A residual counts as positive only above eps_e = 1e-9 · max(1, cap_e), which keeps the
 * floating-point search finite and the cut well defined.
 */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "flow/flow.h"

struct flow_graph {
    int n;
    int m;
    int cap_n;
    int cap_m;
    int *eu; /* [cap_m] tail of edge */
    int *ev; /* [cap_m] head of edge */
    double *ecap;
    /* solve state */
    double *flow;   /* [2 cap_m] per arc */
    double *eps;    /* [cap_m] */
    int *adj_start; /* [cap_n + 1] */
    int *adj;       /* [2 cap_m] arc ids grouped by tail */
    int *level;     /* [cap_n] */
    int *it;        /* [cap_n] current-arc position into adj */
    int *queue;     /* [cap_n] */
    int *stack;     /* [cap_n] arcs of the current path */
    char *side;     /* [cap_n] source side of the min cut */
    int solved;
};

struct flow_graph *flow_graph_new(void)
{
    return xcalloc(1, sizeof(struct flow_graph));
}

void flow_graph_free(struct flow_graph *g)
{
    if (!g) {
        return;
    }
    xfree(g->eu);
    xfree(g->ev);
    xfree(g->ecap);
    xfree(g->flow);
    xfree(g->eps);
    xfree(g->adj_start);
    xfree(g->adj);
    xfree(g->level);
    xfree(g->it);
    xfree(g->queue);
    xfree(g->stack);
    xfree(g->side);
    xfree(g);
}

void flow_graph_clear(struct flow_graph *g)
{
    g->n = 0;
    g->m = 0;
    g->solved = 0;
}

static void grow_vertices(struct flow_graph *g, int need)
{
    if (need <= g->cap_n) {
        return;
    }
    int c = g->cap_n ? g->cap_n : 16;
    while (c < need) {
        c *= 2;
    }
    g->adj_start = xrealloc(g->adj_start, ((size_t)c + 1) * sizeof(int));
    g->level = xrealloc(g->level, (size_t)c * sizeof(int));
    g->it = xrealloc(g->it, (size_t)c * sizeof(int));
    g->queue = xrealloc(g->queue, (size_t)c * sizeof(int));
    g->stack = xrealloc(g->stack, (size_t)c * sizeof(int));
    g->side = xrealloc(g->side, (size_t)c);
    g->cap_n = c;
}

int flow_graph_add_vertices(struct flow_graph *g, int n)
{
    int first = g->n;
    grow_vertices(g, g->n + n);
    g->n += n;
    g->solved = 0;
    return first;
}

int flow_graph_add_vertex(struct flow_graph *g)
{
    return flow_graph_add_vertices(g, 1);
}

int flow_graph_add_edge(struct flow_graph *g, int u, int v, double cap)
{
    if (g->m == g->cap_m) {
        int c = g->cap_m ? g->cap_m * 2 : 64;
        g->eu = xrealloc(g->eu, (size_t)c * sizeof(int));
        g->ev = xrealloc(g->ev, (size_t)c * sizeof(int));
        g->ecap = xrealloc(g->ecap, (size_t)c * sizeof(double));
        g->eps = xrealloc(g->eps, (size_t)c * sizeof(double));
        g->flow = xrealloc(g->flow, 2 * (size_t)c * sizeof(double));
        g->adj = xrealloc(g->adj, 2 * (size_t)c * sizeof(int));
        g->cap_m = c;
    }
    int e = g->m++;
    g->eu[e] = u;
    g->ev[e] = v;
    g->ecap[e] = (cap > 0) ? cap : 0; /* also maps NaN to 0 */
    g->solved = 0;
    return e;
}

int flow_graph_n_vertices(const struct flow_graph *g)
{
    return g->n;
}

int flow_graph_n_edges(const struct flow_graph *g)
{
    return g->m;
}

double flow_graph_edge_capacity(const struct flow_graph *g, int e)
{
    return (e >= 0 && e < g->m) ? g->ecap[e] : 0;
}

double flow_graph_edge_flow(const struct flow_graph *g, int e)
{
    if (!g->solved || e < 0 || e >= g->m) {
        return 0;
    }
    double f = g->flow[2 * e];
    if (f < 0) {
        f = 0;
    }
    if (f > g->ecap[e]) {
        f = g->ecap[e];
    }
    return f;
}

int flow_graph_source_side(const struct flow_graph *g, int v)
{
    if (!g->solved || v < 0 || v >= g->n) {
        return 0;
    }
    return g->side[v];
}

int flow_graph_edge_tail(const struct flow_graph *g, int e)
{
    return (e >= 0 && e < g->m) ? g->eu[e] : -1;
}

int flow_graph_edge_head(const struct flow_graph *g, int e)
{
    return (e >= 0 && e < g->m) ? g->ev[e] : -1;
}

int flow_graph_edge_in_cut(const struct flow_graph *g, int e)
{
    if (!g->solved || e < 0 || e >= g->m) {
        return 0;
    }
    return g->side[g->eu[e]] && !g->side[g->ev[e]];
}

static inline int arc_head(const struct flow_graph *g, int a)
{
    return (a & 1) ? g->eu[a >> 1] : g->ev[a >> 1];
}

static inline double arc_residual(const struct flow_graph *g, int a)
{
    int e = a >> 1;
    return (a & 1) ? g->flow[a - 1] : g->ecap[e] - g->flow[a];
}

static inline int arc_open(const struct flow_graph *g, int a)
{
    return arc_residual(g, a) > g->eps[a >> 1];
}

/* BFS levels from s over open arcs; returns 1 if t is reached. */
static int bfs(struct flow_graph *g, int s, int t)
{
    for (int i = 0; i < g->n; i++) {
        g->level[i] = -1;
    }
    int qh = 0;
    int qt = 0;
    g->level[s] = 0;
    g->queue[qt++] = s;
    while (qh < qt) {
        int u = g->queue[qh++];
        for (int p = g->adj_start[u]; p < g->adj_start[u + 1]; p++) {
            int a = g->adj[p];
            int v = arc_head(g, a);
            if (g->level[v] < 0 && arc_open(g, a)) {
                g->level[v] = g->level[u] + 1;
                g->queue[qt++] = v;
            }
        }
    }
    return g->level[t] >= 0;
}

static void push(struct flow_graph *g, int a, double f)
{
    g->flow[a] += f;
    g->flow[a ^ 1] -= f;
}

/* One blocking flow by iterative DFS with current-arc pointers; returns the amount pushed. */
static double blocking_flow(struct flow_graph *g, int s, int t)
{
    double total = 0;
    for (int i = 0; i < g->n; i++) {
        g->it[i] = g->adj_start[i];
    }
    int depth = 0;
    int u = s;
    for (;;) {
        if (u == t) {
            double b = INFINITY;
            for (int i = 0; i < depth; i++) {
                double r = arc_residual(g, g->stack[i]);
                if (r < b) {
                    b = r;
                }
            }
            if (isinf(b)) {
                return INFINITY;
            }
            int cut = -1;
            for (int i = 0; i < depth; i++) {
                push(g, g->stack[i], b);
                if (cut < 0 && !arc_open(g, g->stack[i])) {
                    cut = i;
                }
            }
            total += b;
            if (cut < 0) {
                cut = 0; /* rounding left every arc open: restart from s */
            }
            depth = cut;
            u = depth == 0 ? s : arc_head(g, g->stack[depth - 1]);
            continue;
        }
        int advanced = 0;
        for (; g->it[u] < g->adj_start[u + 1]; g->it[u]++) {
            int a = g->adj[g->it[u]];
            int v = arc_head(g, a);
            if (g->level[v] == g->level[u] + 1 && arc_open(g, a)) {
                g->stack[depth++] = a;
                u = v;
                advanced = 1;
                break;
            }
        }
        if (advanced) {
            continue;
        }
        /* dead end: retreat */
        g->level[u] = -1;
        if (depth == 0) {
            break;
        }
        int a = g->stack[--depth];
        u = arc_head(g, a ^ 1);
        g->it[u]++;
    }
    return total;
}

int flow_graph_max_flow(struct flow_graph *g, int s, int t, double *value)
{
    *value = 0;
    if (s < 0 || t < 0 || s >= g->n || t >= g->n || s == t) {
        return HX_EINVAL;
    }
    /* CSR adjacency of the 2m arcs by tail */
    memset(g->adj_start, 0, ((size_t)g->n + 1) * sizeof(int));
    for (int e = 0; e < g->m; e++) {
        g->adj_start[g->eu[e] + 1]++;
        g->adj_start[g->ev[e] + 1]++;
        g->flow[2 * e] = 0;
        g->flow[2 * e + 1] = 0;
        double c = g->ecap[e];
        g->eps[e] = 1e-9 * (isinf(c) ? 1.0 : fmax(1.0, c));
    }
    for (int v = 0; v < g->n; v++) {
        g->adj_start[v + 1] += g->adj_start[v];
    }
    for (int v = 0; v < g->n; v++) {
        g->it[v] = g->adj_start[v];
    }
    for (int e = 0; e < g->m; e++) {
        g->adj[g->it[g->eu[e]]++] = 2 * e;
        g->adj[g->it[g->ev[e]]++] = 2 * e + 1;
    }
    double total = 0;
    while (bfs(g, s, t)) {
        double f = blocking_flow(g, s, t);
        if (isinf(f)) {
            total = INFINITY;
            break;
        }
        if (!(f > 0)) {
            break;
        }
        total += f;
    }
    /* min cut: residual reachability from s */
    memset(g->side, 0, (size_t)g->n);
    if (!isinf(total)) {
        int qh = 0;
        int qt = 0;
        g->side[s] = 1;
        g->queue[qt++] = s;
        while (qh < qt) {
            int u = g->queue[qh++];
            for (int p = g->adj_start[u]; p < g->adj_start[u + 1]; p++) {
                int a = g->adj[p];
                int v = arc_head(g, a);
                if (!g->side[v] && arc_open(g, a)) {
                    g->side[v] = 1;
                    g->queue[qt++] = v;
                }
            }
        }
    }
    g->solved = 1;
    *value = total;
    return HX_OK;
}
