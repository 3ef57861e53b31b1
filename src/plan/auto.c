/*
 * auto.c - our planner (`--method auto`) and the MILP method.
 *
 * Search space: a set of chains; a chain is an ordered list of stages; a stage is a group of
 * nodes that all hold the same layer range. Given the groups, each chain's stage sizes are
 * derived exactly: the largest F such that sizes q_j with sum L exist and every stage's
 * summed capacity sum_{i in G_j} cap_i(q_j) >= F (bitset subset-sum DP over the allowed
 * sizes, binary search over the candidate F values; exact also for the non-monotone 30B
 * throughput curves). The layout that results is scored by the exact max-flow of the planner
 * graph, so links (slow cross-region ones included), and edges between chains that happen to
 * share boundaries, are accounted for exactly.
 *
 * Seeds: every node its own stage (a plain chain), per-type groups from a knapsack DP at the
 * best target throughput, region-aware orders (regions = components of links fast enough to
 * carry the target alone), Swarm's stages; then simulated annealing over moves (move / swap a
 * node, move a stage, merge / split stages, split / merge chains, drop / add a node). On small
 * clusters the best placement warm-starts CBC on Helix's formulation (milp_helix.h) with the
 * strengthenings on, which improves it or proves it optimal. Determinism: the search is driven
 * by a seeded xorshift and an evaluation budget; the clock only cuts it short.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "core/cluster.h"
#include "core/model.h"
#include "flow/flow.h"
#include "plan/milp.h"
#include "plan/milp_helix.h"
#include "plan/plan.h"
#include "plan/plan_int.h"

/* ---- RNG (xorshift64*) -------------------------------------------------------------------- */

static uint64_t rnd_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int rnd_int(uint64_t *s, int n)
{
    return n <= 1 ? 0 : (int)(rnd_next(s) % (uint64_t)n);
}

static double rnd_unit(uint64_t *s)
{
    return (double)(rnd_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- solution encoding -------------------------------------------------------------------- */

/*
 * A sequence of the used nodes; brk[a] says how ord[a] relates to ord[a-1]: 0 same stage,
 * 1 next stage of the same chain, 2 first stage of a new chain (brk[0] is 2). Unused nodes
 * are not in the sequence.
 */
struct sol {
    int len;
    int *ord;
    unsigned char *brk;
};

static void sol_init(struct sol *s, int n)
{
    s->len = 0;
    s->ord = xcalloc((size_t)n + 1, sizeof(int));
    s->brk = xcalloc((size_t)n + 1, 1);
}

static void sol_release(struct sol *s)
{
    xfree(s->ord);
    xfree(s->brk);
    s->ord = NULL;
    s->brk = NULL;
}

static void sol_copy(struct sol *d, const struct sol *s)
{
    d->len = s->len;
    memcpy(d->ord, s->ord, sizeof(int) * (size_t)s->len);
    memcpy(d->brk, s->brk, (size_t)s->len);
}

static void sol_remove(struct sol *s, int a)
{
    unsigned char b = s->brk[a];
    if (a + 1 < s->len && b > s->brk[a + 1]) {
        s->brk[a + 1] = b;
    }
    memmove(s->ord + a, s->ord + a + 1, sizeof(int) * (size_t)(s->len - a - 1));
    memmove(s->brk + a, s->brk + a + 1, (size_t)(s->len - a - 1));
    s->len--;
    if (s->len > 0) {
        s->brk[0] = 2;
    }
}

/* Insert node v before position a (a == len appends) with break flag b. */
static void sol_insert(struct sol *s, int a, int v, unsigned char b)
{
    memmove(s->ord + a + 1, s->ord + a, sizeof(int) * (size_t)(s->len - a));
    memmove(s->brk + a + 1, s->brk + a, (size_t)(s->len - a));
    s->ord[a] = v;
    s->brk[a] = b;
    s->len++;
    s->brk[0] = 2;
}

/* ---- the search context --------------------------------------------------------------------- */

struct ctx {
    const struct plan_problem *p;
    const struct plan_options *o;
    struct plan_tab t;
    struct flow_net *net;
    struct layout *lay; /* scratch layout */
    int W;              /* 64-bit words of the subset-sum bitsets */
    uint64_t *reach;    /* [(S + 1) * W] */
    double *vals;       /* candidate F values */
    int *gstart;        /* stage starts in sol.ord, scratch */
    int *gq;            /* stage sizes, scratch */
    int *gmaxq;
    long evals;
    long budget;
    double t0;
    double deadline;
    uint64_t rng;
    double best;
    double ub;
    struct layout *best_lay;
    char best_from[64];
    double last_report;
    long last_improve; /* evals at the last improvement of best */
    /* served search (plan_options.kv_depth_exp > 0): the annealing maximises
     * flow x (min over layers of KV tokens / depth)^exp; stop_ub is then infinite */
    double stop_ub;
    double *kvtok;   /* [n * (kmax + 1)]: KV tokens of node i holding k layers */
    double *lay_tok; /* [2 (L + 2)] scratch */
    int *gq2;        /* [n + 2] scratch sizes */
};

static int time_up(struct ctx *c)
{
    if (c->best >= c->stop_ub * (1 - 1e-9)) {
        return 1; /* the bound proves the incumbent optimal */
    }
    if (c->evals >= c->budget) {
        return 1;
    }
    if (c->o->now && (c->evals & 15) == 0 && plan_now(c->o) >= c->deadline) {
        return 1;
    }
    return 0;
}

static void report(struct ctx *c, const char *phase, int force)
{
    if (!c->o->progress || !c->o->now) {
        return;
    }
    double now = plan_now(c->o);
    if (force || now - c->last_report >= 1.0) {
        c->last_report = now;
        c->o->progress(c->o->progress_user, now - c->t0, c->best, c->ub, phase);
    }
}

/* Stage capacity of the group ord[s0..s1) with q layers (-1 if some member cannot hold q). */
static double stage_cap(const struct ctx *c, const struct sol *s, int s0, int s1, int q)
{
    double v = 0.0;
    for (int a = s0; a < s1; a++) {
        double x = plan_tab_cap(&c->t, s->ord[a], q);
        if (x < 0) {
            return -1.0;
        }
        v += x;
    }
    return v;
}

static int cmp_dbl_desc(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Subset-sum feasibility at F for stages 0..S-1; fills reach rows. */
static int sizes_feasible(struct ctx *c, const struct sol *s, int S, double F)
{
    int W = c->W;
    int L = c->t.L;
    uint64_t *r = c->reach;
    memset(r, 0, sizeof(uint64_t) * (size_t)W);
    r[0] = 1;
    for (int j = 0; j < S; j++) {
        uint64_t *in = r + (size_t)j * (size_t)W;
        uint64_t *o = r + (size_t)(j + 1) * (size_t)W;
        memset(o, 0, sizeof(uint64_t) * (size_t)W);
        int s0 = c->gstart[j];
        int s1 = c->gstart[j + 1];
        for (int q = 1; q <= c->gmaxq[j]; q++) {
            if (stage_cap(c, s, s0, s1, q) < F) {
                continue;
            }
            /* o |= in << q */
            int ws = q / 64;
            int bs = q % 64;
            for (int w = W - 1; w >= ws; w--) {
                uint64_t v = in[w - ws] << bs;
                if (bs && w - ws - 1 >= 0) {
                    v |= in[w - ws - 1] >> (64 - bs);
                }
                o[w] |= v;
            }
        }
    }
    uint64_t *last = r + (size_t)S * (size_t)W;
    return (int)((last[L / 64] >> (L % 64)) & 1u);
}

/* KV tokens a stage of the chain admits with q layers per member: requests split in proportion
 * to throughput, so min over members of KV tokens / share (0 if some member cannot hold q). */
static double stage_kv(const struct ctx *c, const struct sol *s, int s0, int s1, int q)
{
    double sum = 0.0;
    double mn = INFINITY;
    size_t st = (size_t)(c->t.kmax + 1);
    for (int a = s0; a < s1; a++) {
        int i = s->ord[a];
        double cp = plan_tab_cap(&c->t, i, q);
        if (!(cp > 0)) {
            return 0.0;
        }
        double tok = c->kvtok[(size_t)i * st + (size_t)q];
        sum += cp;
        if (tok / cp < mn) {
            mn = tok / cp;
        }
    }
    return sum * mn;
}

/*
 * Served search: sizes of one chain (stages at c->gstart[0..S]) with every stage's capacity
 * >= F that maximise the smallest stage KV (water-filling: one layer at a time to the stage
 * that keeps the most KV). Writes c->gq and returns the chain's throughput, or 0 (c->gq
 * untouched) if the layers do not fit.
 */
static double kv_sizes(struct ctx *c, const struct sol *s, int S, double F)
{
    int *q = c->gq2;
    int tot = 0;
    for (int j = 0; j < S; j++) {
        q[j] = 1;
        tot++;
        if (stage_cap(c, s, c->gstart[j], c->gstart[j + 1], 1) < F) {
            return 0.0;
        }
    }
    while (tot < c->t.L) {
        int bj = -1;
        double bv = -1.0;
        for (int j = 0; j < S; j++) {
            if (q[j] + 1 > c->gmaxq[j] ||
                stage_cap(c, s, c->gstart[j], c->gstart[j + 1], q[j] + 1) < F) {
                continue;
            }
            double v = stage_kv(c, s, c->gstart[j], c->gstart[j + 1], q[j] + 1);
            if (v > bv) {
                bv = v;
                bj = j;
            }
        }
        if (bj < 0) {
            return 0.0;
        }
        q[bj]++;
        tot++;
    }
    double fmin = INFINITY;
    for (int j = 0; j < S; j++) {
        c->gq[j] = q[j];
        double v = stage_cap(c, s, c->gstart[j], c->gstart[j + 1], q[j]);
        if (v < fmin) {
            fmin = v;
        }
    }
    return fmin;
}

/*
 * Derive the sizes of one chain (stages at c->gstart[0..S]); returns the chain's compute
 * throughput F (0 if infeasible) and writes c->gq.
 */
static double chain_sizes(struct ctx *c, const struct sol *s, int S)
{
    int L = c->t.L;
    if (S > L || S <= 0) {
        return 0.0;
    }
    if (c->o->max_stages > 0 && S > c->o->max_stages) {
        return 0.0;
    }
    int nv = 0;
    long summax = 0;
    for (int j = 0; j < S; j++) {
        int mq = c->t.kmax;
        for (int a = c->gstart[j]; a < c->gstart[j + 1]; a++) {
            int m = c->t.maxk[s->ord[a]];
            if (m < mq) {
                mq = m;
            }
        }
        c->gmaxq[j] = mq;
        summax += mq;
        for (int q = 1; q <= mq; q++) {
            c->vals[nv++] = stage_cap(c, s, c->gstart[j], c->gstart[j + 1], q);
        }
    }
    if (summax < L) {
        return 0.0;
    }
    qsort(c->vals, (size_t)nv, sizeof(double), cmp_dbl_desc);
    /* largest feasible F: feasibility is monotone (allowed sets shrink as F grows) */
    int lo = 0;
    int hi = nv - 1;
    if (!sizes_feasible(c, s, S, c->vals[hi])) {
        return 0.0;
    }
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (sizes_feasible(c, s, S, c->vals[mid])) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    double F = c->vals[lo];
    sizes_feasible(c, s, S, F);
    /* backtrack: prefer the largest size at each stage from the end */
    int rem = L;
    int W = c->W;
    for (int j = S - 1; j >= 0; j--) {
        const uint64_t *in = c->reach + (size_t)j * (size_t)W;
        int chosen = 0;
        for (int q = c->gmaxq[j]; q >= 1; q--) {
            if (q > rem || stage_cap(c, s, c->gstart[j], c->gstart[j + 1], q) < F) {
                continue;
            }
            int b = rem - q;
            if ((in[b / 64] >> (b % 64)) & 1u) {
                chosen = q;
                break;
            }
        }
        if (chosen == 0) {
            return 0.0; /* cannot happen when feasible */
        }
        c->gq[j] = chosen;
        rem -= chosen;
    }
    if (c->kvtok && c->o->kv_sizing) {
        double F2 = kv_sizes(c, s, S, F);
        if (F2 > 0) {
            return F2;
        }
    }
    return F;
}

/* Turn a solution into c->lay (sizes derived per chain). Returns the sum of chain F's. */
static double decode(struct ctx *c, const struct sol *s)
{
    struct layout *l = c->lay;
    for (int i = 0; i < l->n_nodes; i++) {
        l->nodes[i].start = 0;
        l->nodes[i].n_layers = 0;
    }
    double total = 0.0;
    int a = 0;
    while (a < s->len) {
        int b = a + 1;
        while (b < s->len && s->brk[b] != 2) {
            b++;
        }
        /* chain ord[a..b): stages */
        int S = 0;
        for (int x = a; x < b; x++) {
            if (x == a || s->brk[x] >= 1) {
                c->gstart[S++] = x;
            }
        }
        c->gstart[S] = b;
        double F = chain_sizes(c, s, S);
        if (F > 0) {
            total += F;
            int cur = 0;
            for (int j = 0; j < S; j++) {
                for (int x = c->gstart[j]; x < c->gstart[j + 1]; x++) {
                    l->nodes[s->ord[x]].start = cur;
                    l->nodes[s->ord[x]].n_layers = c->gq[j];
                }
                cur += c->gq[j];
            }
        }
        a = b;
    }
    return total;
}

/* The KV/depth factor of the served search: served decode tokens ~ requests in flight (bounded
 * by the KV tokens of the scarcest layer) / per-token latency (~ depth). 1 when off. */
static double kv_factor(struct ctx *c, const struct layout *l)
{
    if (!c->kvtok || c->o->kv_depth_exp <= 0) {
        return 1.0;
    }
    /* requests split over the nodes holding a layer in proportion to their throughput, so
     * the layer admits min over them of (KV tokens / share) requests' tokens */
    int L = c->t.L;
    double *sum = c->lay_tok;
    double *mnr = c->lay_tok + L + 1;
    for (int x = 0; x <= L; x++) {
        sum[x] = 0.0;
        mnr[x] = INFINITY;
    }
    size_t st = (size_t)(c->t.kmax + 1);
    for (int i = 0; i < l->n_nodes; i++) {
        int k = l->nodes[i].n_layers;
        int s0 = l->nodes[i].start;
        if (k <= 0 || k > c->t.kmax || s0 < 0 || s0 + k > L) {
            continue;
        }
        double tok = c->kvtok[(size_t)i * st + (size_t)k];
        double cp = c->t.cap[(size_t)i * st + (size_t)k];
        if (!(cp > 0)) {
            continue;
        }
        for (int x = s0; x < s0 + k; x++) {
            sum[x] += cp;
            if (tok / cp < mnr[x]) {
                mnr[x] = tok / cp;
            }
        }
    }
    double mn = INFINITY;
    for (int x = 0; x < L; x++) {
        double b = sum[x] * mnr[x];
        if (!(b < mn)) {
            continue;
        }
        mn = b;
    }
    int depth = plan_depth(c->p, l, NULL);
    if (!(mn > 0) || depth <= 0) {
        return 0.0;
    }
    return pow(mn / (double)depth, c->o->kv_depth_exp);
}

static void keep_best(struct ctx *c, const struct layout *l, double v, const char *from)
{
    if (v > c->best * (1 + 1e-12) || !c->best_lay) {
        if (c->o->max_stages > 0 && plan_depth(c->p, l, NULL) > c->o->max_stages) {
            return;
        }
        c->best = v;
        c->last_improve = c->evals;
        layout_free(c->best_lay);
        c->best_lay = layout_clone(l);
        snprintf(c->best_from, sizeof(c->best_from), "%s", from);
        report(c, from, 1);
    }
}

/* Exact score of a solution (max-flow); -1 if it violates the depth bound. */
static double evaluate(struct ctx *c, const struct sol *s, const char *from)
{
    c->evals++;
    decode(c, s);
    double v = 0.0;
    if (flow_net_planner_eval(c->net, c->lay, &v, NULL) != HX_OK) {
        return -1.0;
    }
    if (c->o->max_stages > 0 && v > c->best && plan_depth(c->p, c->lay, NULL) > c->o->max_stages) {
        return -1.0;
    }
    v *= kv_factor(c, c->lay);
    keep_best(c, c->lay, v, from);
    return v;
}

static double eval_layout(struct ctx *c, const struct layout *l, const char *from)
{
    double v = 0.0;
    c->evals++;
    if (flow_net_planner_eval(c->net, l, &v, NULL) != HX_OK) {
        return -1.0;
    }
    v *= kv_factor(c, l);
    keep_best(c, l, v, from);
    return v;
}

/* ---- seeds ------------------------------------------------------------------------------- */

/* Regions: components of compute links with capacity >= thr (union-find). */
static void regions(const struct ctx *c, double thr, int *reg)
{
    int n = c->t.n;
    for (int i = 0; i < n; i++) {
        reg[i] = i;
    }
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            if (c->t.lc[(size_t)i * (size_t)n + (size_t)j] >= thr) {
                int a = i;
                int b = j;
                while (reg[a] != a) {
                    a = reg[a];
                }
                while (reg[b] != b) {
                    b = reg[b];
                }
                if (a != b) {
                    reg[a > b ? a : b] = a < b ? a : b;
                }
            }
        }
    }
    for (int i = 0; i < n; i++) {
        int a = i;
        while (reg[a] != a) {
            a = reg[a];
        }
        reg[i] = a;
    }
}

/* Node order: by region (regions by decreasing work), inside by decreasing max-k work. */
static void region_order(const struct ctx *c, const int *reg, int *ord, int rev)
{
    int n = c->t.n;
    double *rw = xcalloc((size_t)n, sizeof(double));
    double *nw = xcalloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++) {
        nw[i] = plan_tab_cap(&c->t, i, 1);
        rw[reg[i]] += nw[i];
    }
    for (int i = 0; i < n; i++) {
        ord[i] = i;
    }
    for (int a = 1; a < n; a++) {
        int v = ord[a];
        int b = a - 1;
        while (b >= 0) {
            int u = ord[b];
            int before;
            if (reg[u] != reg[v]) {
                before = rev ? rw[reg[u]] < rw[reg[v]] : rw[reg[u]] > rw[reg[v]];
                if (rw[reg[u]] == rw[reg[v]]) {
                    before = reg[u] < reg[v];
                }
            } else {
                before = nw[u] > nw[v] || (nw[u] == nw[v] && u < v);
            }
            if (before) {
                break;
            }
            ord[b + 1] = u;
            b--;
        }
        ord[b + 1] = v;
    }
    xfree(rw);
    xfree(nw);
}

static void seed_chain(struct sol *s, const int *ord, int n)
{
    s->len = n;
    for (int a = 0; a < n; a++) {
        s->ord[a] = ord[a];
        s->brk[a] = a == 0 ? 2 : 1;
    }
}

/*
 * Per-type groups at target F: for each GPU type, an unbounded-knapsack DP over group sizes g
 * (g nodes of the type share q_t(g) = max q with g * cap(q) >= F layers). Returns the layers
 * covered; fills s (stages in node order `ord`) when s != NULL.
 */
static int typed_groups(struct ctx *c, double F, const int *ord, struct sol *s)
{
    int n = c->t.n;
    int *done = xcalloc((size_t)n, sizeof(int));
    int total = 0;
    int *best = xcalloc((size_t)n + 1, sizeof(int));
    int *choice = xcalloc((size_t)n + 1, sizeof(int));
    int *qg = xcalloc((size_t)n + 1, sizeof(int));
    int *members = xcalloc((size_t)n, sizeof(int));
    if (s) {
        s->len = 0;
    }
    for (int a0 = 0; a0 < n; a0++) {
        int i0 = ord[a0];
        if (done[i0]) {
            continue;
        }
        /* members of this type, in `ord` order, same region as i0 not required */
        int m = 0;
        for (int a = a0; a < n; a++) {
            int i = ord[a];
            if (!done[i] && c->t.gpu[i] == c->t.gpu[i0]) {
                members[m++] = i;
                done[i] = 1;
            }
        }
        for (int g = 1; g <= m; g++) {
            qg[g] = 0;
            for (int q = c->t.maxk[i0]; q >= 1; q--) {
                if (g * plan_tab_cap(&c->t, i0, q) >= F) {
                    qg[g] = q;
                    break;
                }
            }
        }
        best[0] = 0;
        for (int x = 1; x <= m; x++) {
            best[x] = best[x - 1];
            choice[x] = 0;
            for (int g = 1; g <= x; g++) {
                if (qg[g] > 0 && best[x - g] + qg[g] > best[x]) {
                    best[x] = best[x - g] + qg[g];
                    choice[x] = g;
                }
            }
        }
        total += best[m];
        if (s) {
            int x = m;
            int used = 0;
            while (x > 0) {
                int g = choice[x];
                if (g == 0) {
                    x--;
                    continue;
                }
                for (int k = 0; k < g; k++) {
                    s->ord[s->len] = members[used + k];
                    s->brk[s->len] = k == 0 ? 1 : 0;
                    s->len++;
                }
                used += g;
                x -= g;
            }
        }
    }
    if (s && s->len > 0) {
        s->brk[0] = 2;
    }
    xfree(done);
    xfree(best);
    xfree(choice);
    xfree(qg);
    xfree(members);
    return total;
}

/*
 * Merge stages of a single-chain solution until it has at most S stages: repeatedly merge
 * the two smallest stages whose first members share a GPU type (any two smallest if none),
 * so a depth bound (--max-stages) starts from a feasible shape.
 */
static void reduce_stages(const struct ctx *c, struct sol *s, int S)
{
    int n = c->t.n;
    int *gid = xcalloc((size_t)n + 1, sizeof(int));
    for (;;) {
        int ng = 0;
        for (int a = 0; a < s->len; a++) {
            if (a == 0 || s->brk[a] >= 1) {
                ng++;
            }
            gid[a] = ng - 1;
        }
        if (ng <= S || ng <= 1) {
            break;
        }
        /* stage sizes and first members */
        int *size = xcalloc((size_t)ng, sizeof(int));
        int *first = xcalloc((size_t)ng, sizeof(int));
        for (int a = s->len - 1; a >= 0; a--) {
            size[gid[a]]++;
            first[gid[a]] = a;
        }
        int ba = -1;
        int bb = -1;
        for (int pass = 0; pass < 2 && ba < 0; pass++) {
            int best = 1 << 30;
            for (int x = 0; x < ng; x++) {
                for (int y = x + 1; y < ng; y++) {
                    int same = c->t.gpu[s->ord[first[x]]] == c->t.gpu[s->ord[first[y]]];
                    if ((pass == 0 && !same) || size[x] + size[y] >= best) {
                        continue;
                    }
                    best = size[x] + size[y];
                    ba = x;
                    bb = y;
                }
            }
        }
        /* rebuild: stage bb's members appended to stage ba */
        struct sol t;
        sol_init(&t, n);
        for (int g = 0; g < ng; g++) {
            if (g == bb) {
                continue;
            }
            int firstm = 1;
            for (int a = 0; a < s->len; a++) {
                if (gid[a] == g || (g == ba && gid[a] == bb)) {
                    t.ord[t.len] = s->ord[a];
                    t.brk[t.len] = firstm ? 1 : 0;
                    t.len++;
                    firstm = 0;
                }
            }
        }
        if (t.len > 0) {
            t.brk[0] = 2;
        }
        sol_copy(s, &t);
        sol_release(&t);
        xfree(size);
        xfree(first);
    }
    xfree(gid);
}

/*
 * A chain of single-node stages along links that exist: start at a node linked to the source
 * (the `pick`-th such node by capacity), walk to the unvisited neighbour with the fastest link
 * (ties: the more capable node), stop when stuck, then cut back to the last node linked to the
 * sink. For sparse (pruned) clusters, where random orders have no valid edge at all.
 */
static int seed_link_path(const struct ctx *c, struct sol *s, int pick)
{
    int n = c->t.n;
    char *seen = xcalloc((size_t)n, 1);
    int *path = xcalloc((size_t)n, sizeof(int));
    int len = 0;
    /* the pick-th source-linked node, by capacity at 1 layer, descending */
    int start = -1;
    for (int r = 0; r <= pick; r++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            if (!seen[i] && c->t.src[i] > 0 &&
                (best < 0 || plan_tab_cap(&c->t, i, 1) > plan_tab_cap(&c->t, best, 1))) {
                best = i;
            }
        }
        if (best < 0) {
            break;
        }
        seen[best] = 1;
        start = best;
    }
    memset(seen, 0, (size_t)n);
    if (start < 0) {
        xfree(seen);
        xfree(path);
        return 0;
    }
    int cur = start;
    seen[cur] = 1;
    path[len++] = cur;
    for (;;) {
        int nx = -1;
        for (int j = 0; j < n; j++) {
            double lc = c->t.lc[(size_t)cur * (size_t)n + (size_t)j];
            if (seen[j] || lc <= 0) {
                continue;
            }
            if (nx < 0) {
                nx = j;
                continue;
            }
            double lb = c->t.lc[(size_t)cur * (size_t)n + (size_t)nx];
            if (lc > lb * 1.05 ||
                (lc >= lb * 0.95 && plan_tab_cap(&c->t, j, 1) > plan_tab_cap(&c->t, nx, 1))) {
                nx = j;
            }
        }
        if (nx < 0) {
            break;
        }
        seen[nx] = 1;
        path[len++] = nx;
        cur = nx;
    }
    while (len > 0 && c->t.snk[path[len - 1]] <= 0) {
        len--;
    }
    s->len = len;
    for (int a = 0; a < len; a++) {
        s->ord[a] = path[a];
        s->brk[a] = a == 0 ? 2 : 1;
    }
    xfree(seen);
    xfree(path);
    return len > 0;
}

/* Best F for typed groups by bisection. */
static double typed_groups_best(struct ctx *c, const int *ord)
{
    double lo = 0.0;
    double hi = c->ub > 0 ? c->ub * 1.0001 : 1e7;
    for (int it = 0; it < 60; it++) {
        double mid = 0.5 * (lo + hi);
        if (typed_groups(c, mid, ord, NULL) >= c->t.L) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Convert a layout whose used ranges tile [0, L) into one chain of stages; 0 if it does not. */
static int sol_from_layout(const struct ctx *c, const struct layout *l, struct sol *s)
{
    int L = c->t.L;
    int cur = 0;
    s->len = 0;
    while (cur < L) {
        int q = 0;
        for (int i = 0; i < l->n_nodes; i++) {
            if (l->nodes[i].n_layers > 0 && l->nodes[i].start == cur) {
                if (q == 0) {
                    q = l->nodes[i].n_layers;
                } else if (l->nodes[i].n_layers != q) {
                    return 0;
                }
            }
        }
        if (q == 0) {
            return 0;
        }
        int first = 1;
        for (int i = 0; i < l->n_nodes; i++) {
            if (l->nodes[i].n_layers > 0 && l->nodes[i].start == cur) {
                s->ord[s->len] = i;
                s->brk[s->len] = first ? 1 : 0;
                s->len++;
                first = 0;
            }
        }
        cur += q;
    }
    for (int i = 0; i < l->n_nodes; i++) {
        if (l->nodes[i].n_layers > 0 && (l->nodes[i].start + l->nodes[i].n_layers > L)) {
            return 0;
        }
    }
    if (s->len > 0) {
        s->brk[0] = 2;
    }
    return s->len > 0;
}

/* ---- local search ------------------------------------------------------------------------ */

static void chain_bounds(const struct sol *s, int a, int *c0, int *c1)
{
    int x = a;
    while (x > 0 && s->brk[x] != 2) {
        x--;
    }
    int y = a + 1;
    while (y < s->len && s->brk[y] != 2) {
        y++;
    }
    *c0 = x;
    *c1 = y;
}

static void stage_bounds(const struct sol *s, int a, int *g0, int *g1)
{
    int x = a;
    while (x > 0 && s->brk[x] == 0) {
        x--;
    }
    int y = a + 1;
    while (y < s->len && s->brk[y] == 0) {
        y++;
    }
    *g0 = x;
    *g1 = y;
}

/* One random move applied to s (in place). used[] marks nodes in the sequence. */
static void mutate(struct ctx *c, struct sol *s, char *used)
{
    int n = c->t.n;
    uint64_t *r = &c->rng;
    int kind = rnd_int(r, 100);
    if (s->len == 0) {
        kind = 95;
    }
    if (kind < 30) { /* move a node to a random place: join a stage or form a new one */
        int a = rnd_int(r, s->len);
        int v = s->ord[a];
        sol_remove(s, a);
        if (s->len == 0) {
            sol_insert(s, 0, v, 2);
            return;
        }
        int b = rnd_int(r, s->len + 1);
        unsigned char br = (unsigned char)(rnd_int(r, 2));
        if (b == s->len) {
            br = 1;
        }
        if (br == 0 && b < s->len) { /* join the stage of ord[b]: insert right after it */
            sol_insert(s, b + 1, v, 0);
        } else {
            sol_insert(s, b, v, 1);
        }
    } else if (kind < 50) { /* swap two nodes */
        if (s->len < 2) {
            return;
        }
        int a = rnd_int(r, s->len);
        int b = rnd_int(r, s->len);
        int t = s->ord[a];
        s->ord[a] = s->ord[b];
        s->ord[b] = t;
    } else if (kind < 60) { /* swap a used node with an unused one */
        int cand = rnd_int(r, n);
        if (used[cand] || s->len == 0) {
            return;
        }
        int a = rnd_int(r, s->len);
        used[s->ord[a]] = 0;
        s->ord[a] = cand;
        used[cand] = 1;
    } else if (kind < 70) { /* move a whole stage to another position of its chain */
        int a = rnd_int(r, s->len);
        int g0;
        int g1;
        stage_bounds(s, a, &g0, &g1);
        int m = g1 - g0;
        int tmp[512];
        if (m > 512) {
            return;
        }
        for (int x = 0; x < m; x++) {
            tmp[x] = s->ord[g0];
            sol_remove(s, g0);
        }
        if (s->len == 0) {
            for (int x = 0; x < m; x++) {
                sol_insert(s, x, tmp[x], x == 0 ? 2 : 0);
            }
            return;
        }
        /* target: the start of a random stage, or the end */
        int b = rnd_int(r, s->len + 1);
        if (b < s->len) {
            int h0;
            int h1;
            stage_bounds(s, b, &h0, &h1);
            b = h0;
        }
        unsigned char first = 1;
        if (b < s->len && s->brk[b] == 2 && rnd_int(r, 2) == 0) {
            first = 2; /* become the new head of that chain */
            s->brk[b] = 1;
        }
        for (int x = 0; x < m; x++) {
            sol_insert(s, b + x, tmp[x], x == 0 ? first : 0);
        }
    } else if (kind < 78) { /* merge a stage with the next one */
        int a = rnd_int(r, s->len);
        int g0;
        int g1;
        stage_bounds(s, a, &g0, &g1);
        if (g1 < s->len && s->brk[g1] == 1) {
            s->brk[g1] = 0;
        }
    } else if (kind < 86) { /* split a stage */
        int a = rnd_int(r, s->len);
        if (s->brk[a] == 0) {
            s->brk[a] = 1;
        }
    } else if (kind < 90) { /* split a chain / merge two chains */
        int a = rnd_int(r, s->len);
        if (s->brk[a] == 1) {
            s->brk[a] = 2;
        } else if (s->brk[a] == 2 && a > 0) {
            s->brk[a] = 1;
        }
    } else if (kind < 94) { /* drop a node */
        if (s->len <= 1) {
            return;
        }
        int a = rnd_int(r, s->len);
        used[s->ord[a]] = 0;
        sol_remove(s, a);
    } else { /* add an unused node */
        int cand = rnd_int(r, n);
        if (used[cand]) {
            return;
        }
        int b = rnd_int(r, s->len + 1);
        unsigned char br = (unsigned char)(b == s->len ? 1 : rnd_int(r, 2));
        if (s->len == 0) {
            br = 2;
        }
        if (br == 0) {
            sol_insert(s, b + 1 <= s->len ? b + 1 : s->len, cand, 0);
        } else {
            sol_insert(s, b, cand, br);
        }
        used[cand] = 1;
    }
    (void)chain_bounds;
}

/* Simulated annealing from s over `budget` evaluations; returns the best score found. */
static double anneal(struct ctx *c, struct sol *s, long budget, const char *tag)
{
    int n = c->t.n;
    struct sol cur;
    struct sol cand;
    sol_init(&cur, n);
    sol_init(&cand, n);
    sol_copy(&cur, s);
    char *used = xcalloc((size_t)n, 1);
    char *used_c = xcalloc((size_t)n, 1);
    for (int a = 0; a < cur.len; a++) {
        used[cur.ord[a]] = 1;
    }
    double fc = evaluate(c, &cur, tag);
    double fbest = fc;
    long start = c->evals;
    long end = start + budget;
    if (end > c->budget) {
        end = c->budget;
    }
    double T0 = 0.01 * (fc > 0 ? fc : 1.0);
    while (c->evals < end && !time_up(c)) {
        double frac = (double)(c->evals - start) / (double)(end - start > 0 ? end - start : 1);
        double T = T0 * (1.0 - frac) * (1.0 - frac);
        sol_copy(&cand, &cur);
        memcpy(used_c, used, (size_t)n);
        int nm = 1 + (rnd_int(&c->rng, 4) == 0);
        for (int k = 0; k < nm; k++) {
            mutate(c, &cand, used_c);
        }
        double f = evaluate(c, &cand, tag);
        if (f < 0) {
            continue;
        }
        if (f >= fc || (T > 0 && rnd_unit(&c->rng) < exp((f - fc) / T))) {
            sol_copy(&cur, &cand);
            memcpy(used, used_c, (size_t)n);
            fc = f;
            if (f > fbest) {
                fbest = f;
                sol_copy(s, &cur);
            }
        }
        report(c, tag, 0);
    }
    sol_release(&cur);
    sol_release(&cand);
    xfree(used);
    xfree(used_c);
    return fbest;
}

/* ---- MILP (Helix's formulation on CBC) --------------------------------------------------- */

struct milp_prog {
    const struct plan_options *o;
    double t0;
    double ub_known;
};

int plan_milp(const struct plan_problem *p, const struct plan_options *o, const struct layout *warm,
              double elapsed0, struct plan_result *r, struct hx_diag *diag)
{
    struct milp_helix_options mo;
    milp_helix_options_init(&mo);
    mo.conn = p->conn;
    int strong = warm != NULL; /* auto's finishing solve: strengthened model */
    if (strong) {
        mo.tight_caps = true;
        mo.work_bound = true;
        mo.symmetry = true;
        mo.path_work = p->conn == LAYOUT_STRICT;
    }
    struct milp_helix *h = NULL;
    int rc = milp_helix_new(p->cluster, p->model, p->tp, p->mp, &mo, &h, diag);
    if (rc != HX_OK) {
        return rc;
    }
    struct layout *start = NULL;
    if (warm) {
        start = layout_clone(warm);
    } else {
        /* Helix warm-starts from a heuristic (§2.6); we take the better of Petals and Swarm
         * whose every node holds layers (the formulation needs that) */
        struct layout *cand[8];
        enum plan_method which[8];
        int nc = plan_baselines_all(p, o->seed, cand, which, 8);
        double bestv = -1.0;
        for (int a = 0; a < nc; a++) {
            int full = 1;
            for (int i = 0; i < cand[a]->n_nodes; i++) {
                full &= cand[a]->nodes[i].n_layers > 0;
            }
            double v = 0.0;
            if (full && plan_score(p, cand[a], &v, NULL) == HX_OK && v > bestv) {
                bestv = v;
                layout_free(start);
                start = layout_clone(cand[a]);
            }
            layout_free(cand[a]);
        }
    }
    int full = start != NULL;
    for (int i = 0; full && i < start->n_nodes; i++) {
        full &= start->nodes[i].n_layers > 0;
    }
    if (full) {
        struct hx_diag d2;
        memset(&d2, 0, sizeof(d2));
        if (milp_helix_start_from_layout(h, start, NULL, &d2) != HX_OK) {
            full = 0;
        }
    }
    struct milp_params mp;
    milp_params_init(&mp);
    double left = o->time_limit_s;
    if (o->now) {
        left = o->time_limit_s - (plan_now(o) - elapsed0);
    }
    mp.time_limit_s = left > 0.5 ? left : 0.5;
    mp.threads = o->threads > 0 ? o->threads : 1;
    mp.seed = (int)(o->seed & 0x7fffffff);
    struct milp_helix_result res;
    memset(&res, 0, sizeof(res));
    rc = milp_helix_solve(h, MILP_BACKEND_CBC, &mp, &res, diag);
    if (rc != HX_OK) {
        layout_free(start);
        milp_helix_free(h);
        return rc;
    }
    r->method = o->method;
    r->objective = 0.0;
    if (res.layout) {
        double v = 0.0;
        if (plan_score(p, res.layout, &v, NULL) == HX_OK &&
            (o->max_stages <= 0 || plan_depth(p, res.layout, NULL) <= o->max_stages)) {
            r->layout = res.layout;
            r->objective = v;
            res.layout = NULL;
        }
    }
    if (!r->layout && start) {
        double v = 0.0;
        if (plan_score(p, start, &v, NULL) == HX_OK) {
            r->layout = layout_clone(start);
            r->objective = v;
        }
    }
    if (!r->layout) {
        r->layout = layout_new(p->cluster->n_nodes);
    }
    if (isfinite(res.bound) && res.bound > 0) {
        r->upper_bound = res.bound;
        snprintf(r->bound_kind, sizeof(r->bound_kind), "milp");
        if (res.status == MILP_STATUS_OPTIMAL) {
            r->upper_bound = r->objective > res.objective ? r->objective : res.objective;
            if (r->upper_bound < r->objective) {
                r->upper_bound = r->objective;
            }
        }
    }
    snprintf(r->detail, sizeof(r->detail), "CBC on Helix's MILP: %s, start %s, %.1f s",
             milp_status_name(res.status), full ? (res.start_used ? "used" : "rejected") : "none",
             res.solve_s);
    milp_helix_result_release(&res);
    layout_free(start);
    milp_helix_free(h);
    return HX_OK;
}

/* ---- auto -------------------------------------------------------------------------------- */

int plan_auto(const struct plan_problem *p, const struct plan_options *o, struct plan_result *r,
              struct hx_diag *diag)
{
    struct ctx c;
    memset(&c, 0, sizeof(c));
    c.p = p;
    c.o = o;
    int rc = plan_tab_init(&c.t, p, diag);
    if (rc != HX_OK) {
        return rc;
    }
    if (o->layer_cap_pct > 0 && o->layer_cap_pct < 100) {
        /* served objective: keep memory for the KV cache (capacities stay those of k) */
        for (int i = 0; i < c.t.n; i++) {
            int cap = (c.t.maxk[i] * o->layer_cap_pct + 99) / 100;
            c.t.maxk[i] = cap < 1 ? 1 : cap;
        }
    }
    rc = flow_net_planner_new(p->cluster, p->model, p->tp, p->mp, p->conn, &c.net, diag);
    if (rc != HX_OK) {
        plan_tab_release(&c.t);
        return rc;
    }
    int n = c.t.n;
    int L = c.t.L;
    c.lay = layout_new(n);
    c.W = L / 64 + 1;
    c.reach = xcalloc((size_t)(n + 2) * (size_t)c.W, sizeof(uint64_t));
    c.vals = xcalloc((size_t)n * (size_t)(c.t.kmax + 1) + 1, sizeof(double));
    c.gstart = xcalloc((size_t)n + 2, sizeof(int));
    c.gq = xcalloc((size_t)n + 2, sizeof(int));
    c.gmaxq = xcalloc((size_t)n + 2, sizeof(int));
    c.t0 = plan_now(o);
    c.deadline = c.t0 + (o->time_limit_s > 0 ? o->time_limit_s : 60.0);
    c.rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)o->seed;
    if (c.rng == 0) {
        c.rng = 1;
    }
    char kind[32];
    c.ub = plan_upper_bound(p, kind, sizeof(kind));
    c.stop_ub = c.ub;
    int kvmode = o->kv_depth_exp > 0;
    if (kvmode) {
        c.stop_ub = INFINITY;
        c.kvtok = xcalloc((size_t)n * (size_t)(c.t.kmax + 1) + 1, sizeof(double));
        c.lay_tok = xcalloc(2 * (size_t)L + 4, sizeof(double));
        c.gq2 = xcalloc((size_t)n + 2, sizeof(int));
        for (int i = 0; i < n; i++) {
            if (c.t.maxk[i] <= 0) {
                continue;
            }
            for (int k = 1; k <= c.t.kmax; k++) {
                long kv = model_kv_capacity(p->model, &p->model->gpus[c.t.gpu[i]], k);
                c.kvtok[(size_t)i * (size_t)(c.t.kmax + 1) + (size_t)k] =
                    kv > 0 ? (double)kv / (double)k : 0.0;
            }
        }
    }
    /* evaluation budget: scales down with cluster size (each max-flow costs ~n^2) */
    c.budget = (long)(2.0e9 / ((double)n * (double)n + 200.0 * n));
    if (c.budget > 1000000) {
        c.budget = 1000000;
    }
    c.best = -1.0;
    int small = n <= 16;
    if (small) {
        c.budget = c.budget / 4 < 30000 ? c.budget / 4 : 30000; /* the exact stage follows */
    }
    if (o->max_evals > 0) {
        c.budget = o->max_evals;
    }

    /* 1. baselines */
    struct layout *base[8];
    enum plan_method which[8];
    int nb = plan_baselines_all(p, o->seed, base, which, 8);
    for (int a = 0; a < nb; a++) {
        char tag[48];
        snprintf(tag, sizeof(tag), "baseline %s", plan_method_name(which[a]));
        eval_layout(&c, base[a], tag);
    }

    /* 2. seeds */
    int nseeds = 0;
    struct sol seeds[20];
    int *ord = xcalloc((size_t)n, sizeof(int));
    int *reg = xcalloc((size_t)n, sizeof(int));
    double thr_list[3] = {INFINITY, 0.0, 0.0};
    thr_list[1] = c.ub > 0 ? c.ub : 1.0;
    thr_list[2] = c.ub > 0 ? 0.35 * c.ub : 1.0;
    for (int ti = 0; ti < 3 && nseeds + 4 <= 20; ti++) {
        double thr = thr_list[ti];
        if (ti == 0) {
            for (int i = 0; i < n; i++) {
                reg[i] = 0;
            }
        } else {
            regions(&c, thr, reg);
        }
        for (int rev = 0; rev < 2; rev++) {
            region_order(&c, reg, ord, rev);
            sol_init(&seeds[nseeds], n);
            seed_chain(&seeds[nseeds], ord, n);
            nseeds++;
            double F = typed_groups_best(&c, ord);
            sol_init(&seeds[nseeds], n);
            typed_groups(&c, F, ord, &seeds[nseeds]);
            if (o->max_stages > 0) {
                reduce_stages(&c, &seeds[nseeds], o->max_stages);
                reduce_stages(&c, &seeds[nseeds - 1], o->max_stages);
            }
            if (seeds[nseeds].len == 0) {
                sol_release(&seeds[nseeds]);
            } else {
                nseeds++;
            }
        }
    }
    for (int pick = 0; pick < 3 && nseeds < 20; pick++) {
        sol_init(&seeds[nseeds], n);
        if (seed_link_path(&c, &seeds[nseeds], pick)) {
            if (o->max_stages > 0) {
                reduce_stages(&c, &seeds[nseeds], o->max_stages);
            }
            nseeds++;
        } else {
            sol_release(&seeds[nseeds]);
        }
    }
    for (int a = 0; a < nb && nseeds < 20; a++) {
        sol_init(&seeds[nseeds], n);
        if (sol_from_layout(&c, base[a], &seeds[nseeds])) {
            nseeds++;
        } else {
            sol_release(&seeds[nseeds]);
        }
    }
    double *seed_score = xcalloc((size_t)nseeds + 1, sizeof(double));
    for (int a = 0; a < nseeds; a++) {
        seed_score[a] = evaluate(&c, &seeds[a], "seed");
    }
    report(&c, "seeds", 1);

    /* 3. annealing: a short run from every seed, then the rest from the best two */
    long per = (c.budget - c.evals) / (2 * (nseeds > 0 ? nseeds : 1));
    for (int a = 0; a < nseeds && !time_up(&c); a++) {
        seed_score[a] = anneal(&c, &seeds[a], per, "anneal");
    }
    int b1 = -1;
    for (int a = 0; a < nseeds; a++) {
        if (b1 < 0 || seed_score[a] > seed_score[b1]) {
            b1 = a;
        }
    }
    /* iterated annealing: perturb the best chain structure, re-anneal, keep improvements */
    if (b1 >= 0) {
        struct sol base_sol;
        struct sol trial;
        sol_init(&base_sol, n);
        sol_init(&trial, n);
        sol_copy(&base_sol, &seeds[b1]);
        double fbase = seed_score[b1];
        char *used = xcalloc((size_t)n, 1);
        long budget0 = c.budget;
        int extensions = 0;
        for (int round = 0;; round++) {
            if (c.evals >= c.budget) {
                /* still improving late: extend (deterministically, by evaluations) */
                if (o->max_evals > 0 || extensions >= 4 || c.last_improve < c.evals - budget0 / 3) {
                    break;
                }
                c.budget += budget0 / 2;
                extensions++;
            }
            if ((o->now && plan_now(o) >= c.deadline) || c.best >= c.stop_ub * (1 - 1e-9)) {
                break;
            }
            long left = c.budget - c.evals;
            long chunk = left / 4 > 2000 ? left / 4 : left;
            sol_copy(&trial, &base_sol);
            if (round > 0) {
                memset(used, 0, (size_t)n);
                for (int a = 0; a < trial.len; a++) {
                    used[trial.ord[a]] = 1;
                }
                int kicks = 2 + rnd_int(&c.rng, 5);
                for (int k = 0; k < kicks; k++) {
                    mutate(&c, &trial, used);
                }
            }
            double f = anneal(&c, &trial, chunk, "anneal-best");
            if (f >= fbase) {
                fbase = f;
                sol_copy(&base_sol, &trial);
            }
        }
        xfree(used);
        sol_release(&base_sol);
        sol_release(&trial);
    }

    /* 4. small clusters, strict connectivity: the exact decision procedure (exact.c) in the
     * link-free relaxation. "No placement reaches best * (1 + 1e-7)" proves optimality; a
     * placement that does is taken if its real max-flow (links included) is better. */
    double exact_ub = INFINITY;
    char milp_detail[300] = "";
    int proven_exact = 0;
    if (!kvmode && small && p->conn == LAYOUT_STRICT && c.best_lay && c.best > 0) {
        report(&c, "exact", 1);
        for (int round = 0; round < 20; round++) {
            double F = c.best * (1 + 1e-7);
            if (F >= c.ub) {
                break;
            }
            struct layout *fl = NULL;
            int ans = -1;
            if (plan_exact_decide(p, F, 300000000L, o, c.deadline, &fl, &ans, NULL) != HX_OK ||
                ans < 0) {
                layout_free(fl);
                snprintf(milp_detail, sizeof(milp_detail), "; exact search: budget exhausted");
                break;
            }
            if (ans == 0) {
                exact_ub = F;
                proven_exact = 1;
                snprintf(milp_detail, sizeof(milp_detail),
                         "; exact search: no placement reaches %.6f", F);
                break;
            }
            double before = c.best;
            eval_layout(&c, fl, "exact");
            layout_free(fl);
            if (!(c.best > before)) {
                snprintf(milp_detail, sizeof(milp_detail),
                         "; exact search: link-free optimum not reachable with these links");
                break;
            }
        }
    }

    /* 5. small clusters that the exact search cannot settle: CBC on Helix's formulation,
     * warm-started with the best placement, strengthened (improve or prove) */
    double milp_ub = INFINITY;
    int all_used = c.best_lay != NULL;
    for (int i = 0; all_used && i < n; i++) {
        all_used &= c.best_lay->nodes[i].n_layers > 0;
    }
    if (!kvmode && !proven_exact && n <= 10 && c.best_lay && c.best < c.ub * (1 - 1e-9) &&
        (!o->now || plan_now(o) < c.deadline - 1.0)) {
        struct layout *warm = layout_clone(c.best_lay);
        if (!all_used) {
            /* the formulation needs every node placed: give unused nodes a harmless range
             * (their edges then stay switched off or carry nothing) */
            for (int i = 0; i < n; i++) {
                if (warm->nodes[i].n_layers == 0) {
                    warm->nodes[i].start = 0;
                    warm->nodes[i].n_layers = 1;
                }
            }
            double v = 0.0;
            if (plan_score(p, warm, &v, NULL) != HX_OK || v < c.best) {
                layout_free(warm);
                warm = NULL;
            }
        }
        if (warm) {
            struct plan_options mo = *o;
            mo.method = PLAN_METHOD_MILP;
            struct plan_result mr;
            memset(&mr, 0, sizeof(mr));
            struct hx_diag d2;
            memset(&d2, 0, sizeof(d2));
            report(&c, "milp", 1);
            if (plan_milp(p, &mo, warm, c.t0, &mr, &d2) == HX_OK) {
                if (mr.layout) {
                    eval_layout(&c, mr.layout, "milp");
                }
                if (mr.upper_bound > 0 && !strcmp(mr.bound_kind, "milp")) {
                    milp_ub = mr.upper_bound;
                }
                snprintf(milp_detail, sizeof(milp_detail), "; %.250s", mr.detail);
            }
            plan_result_release(&mr);
            layout_free(warm);
        }
    }

    for (int a = 0; a < nseeds; a++) {
        sol_release(&seeds[a]);
    }
    for (int a = 0; a < nb; a++) {
        layout_free(base[a]);
    }
    xfree(seed_score);
    xfree(ord);
    xfree(reg);
    int out_rc = HX_OK;
    if (!c.best_lay || c.best <= 0) {
        out_rc = hx_diag_set(diag, HX_EINFEASIBLE,
                             o->max_stages > 0
                                 ? "no placement with at most %d stages carries any flow "
                                   "(the nodes cannot hold %d layers in so few stages)"
                                 : "no placement carries any flow%.0d (%d layers cannot be "
                                   "covered by a connected pipeline)",
                             o->max_stages, L);
        layout_free(c.best_lay);
    } else {
        r->layout = c.best_lay;
        r->objective = c.best;
        if (kvmode) { /* the flow of the layout, not the annealing's score */
            double v = 0.0;
            r->objective = flow_net_planner_eval(c.net, c.best_lay, &v, NULL) == HX_OK ? v : 0.0;
        }
        r->upper_bound = c.ub;
        snprintf(r->bound_kind, sizeof(r->bound_kind), "%s", kind);
        if (milp_ub < r->upper_bound) {
            r->upper_bound = milp_ub < c.best ? c.best : milp_ub;
            snprintf(r->bound_kind, sizeof(r->bound_kind), "milp");
        }
        if (exact_ub < r->upper_bound) {
            r->upper_bound = exact_ub;
            snprintf(r->bound_kind, sizeof(r->bound_kind), "exact");
        }
        snprintf(r->detail, sizeof(r->detail), "best from %.60s after %ld evaluations%.150s",
                 c.best_from, c.evals, milp_detail);
    }
    r->method = PLAN_METHOD_AUTO;
    layout_free(c.lay);
    xfree(c.reach);
    xfree(c.vals);
    xfree(c.gstart);
    xfree(c.gq);
    xfree(c.gmaxq);
    xfree(c.kvtok);
    xfree(c.lay_tok);
    xfree(c.gq2);
    flow_net_free(c.net);
    plan_tab_release(&c.t);
    return out_rc;
}
