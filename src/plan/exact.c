/*
 * exact.c - an exact decision procedure for small clusters: "can any placement reach
 * throughput F?", in the relaxation that ignores links (every node linked to every node, the
 * source and the sink, with unlimited bandwidth) under strict connectivity. Links only remove
 * flow, so "no" proves F is an upper bound for the real cluster; "yes" comes with a placement
 * (exactly optimal where links do not bind, as in cluster10).
 *
 * Normalise the flow to 1: node i holding k layers carries a share x_i <= a_i(k) =
 * min(cap_i(k) / F, 1); on a layer the shares of the nodes holding it sum to 1; so
 * sum_i k_i a_i(k_i) >= L is necessary (the flow-clamped work bound). Step 1 enumerates the
 * layer counts per node (multisets per GPU type, so identical nodes are not permuted) that
 * pass that test. Step 2 places them: a depth-first sweep over layer boundaries, where the
 * nodes starting at a boundary are chosen as a sub-multiset of the remaining (type, k)
 * classes. WLOG every node carries flow, so nodes start only at 0 or where others end, and
 * every boundary where a node ends starts another. Pruning: the flow that can reach each
 * layer from layer 0 through the placed nodes (a tiny max-flow) must be >= 1, and the
 * remaining work must cover the remaining layers. A full placement is accepted when its
 * max-flow from boundary 0 to L is >= 1.
 */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "plan/plan.h"
#include "plan/plan_int.h"

#define EX_EPS 1e-9
#define EX_MAXN 24

struct ex_class {
    int slot; /* type slot */
    int k;
    double a; /* share cap */
    int rem;  /* nodes of this class not placed yet */
};

struct ex_node {
    int s;
    int e;
    double a;
    int cls;
};

struct ex {
    const struct plan_tab *t;
    int L;
    double F;
    int nslot;
    int slot_rep[EX_MAXN];
    int slot_cnt[EX_MAXN];
    int kcount[EX_MAXN][64]; /* chosen multiset: nodes of slot with k layers */
    struct ex_class cls[EX_MAXN];
    int ncls;
    struct ex_node placed[EX_MAXN];
    int nplaced;
    long work_budget; /* DFS nodes left (safety) */
    const struct plan_options *o;
    double deadline;
    int found;
    int aborted;
};

static double share(const struct ex *x, int slot, int k)
{
    double c = plan_tab_cap(x->t, x->slot_rep[slot], k);
    if (c <= 0) {
        return 0.0;
    }
    double a = c / x->F;
    return a < 1.0 ? a : 1.0;
}

/* Max flow from boundary 0 to the layer `p` (or to L when p == L) through placed nodes. */
static double reach_flow(const struct ex *x, int p)
{
    /* points: distinct boundaries among placed nodes, plus a super sink */
    int pts[2 * EX_MAXN + 2];
    int np = 0;
    pts[np++] = 0;
    for (int i = 0; i < x->nplaced; i++) {
        int v[2] = {x->placed[i].s, x->placed[i].e};
        for (int q = 0; q < 2; q++) {
            int f = 0;
            for (int r = 0; r < np; r++) {
                f |= pts[r] == v[q];
            }
            if (!f) {
                pts[np++] = v[q];
            }
        }
    }
    int V = np + 1;
    int T = np;
    double cap[2 * EX_MAXN + 3][2 * EX_MAXN + 3];
    memset(cap, 0, sizeof(cap));
    for (int i = 0; i < x->nplaced; i++) {
        const struct ex_node *nd = &x->placed[i];
        int u = 0;
        int w = 0;
        for (int r = 0; r < np; r++) {
            if (pts[r] == nd->s) {
                u = r;
            }
            if (pts[r] == nd->e) {
                w = r;
            }
        }
        int to;
        if (p == x->L) {
            to = nd->e == x->L ? T : w;
        } else {
            to = (nd->s <= p && p < nd->e) ? T : w;
        }
        if (nd->e <= p || (nd->s <= p && p < nd->e) || p == x->L) {
            cap[u][to] += nd->a;
        }
    }
    double flow = 0.0;
    for (;;) {
        int prev[2 * EX_MAXN + 3];
        int q[2 * EX_MAXN + 3];
        for (int r = 0; r < V; r++) {
            prev[r] = -1;
        }
        int h = 0;
        int tl = 0;
        q[tl++] = 0;
        prev[0] = 0;
        while (h < tl && prev[T] < 0) {
            int u = q[h++];
            for (int w = 0; w < V; w++) {
                if (prev[w] < 0 && cap[u][w] > EX_EPS) {
                    prev[w] = u;
                    q[tl++] = w;
                }
            }
        }
        if (prev[T] < 0) {
            break;
        }
        double b = INFINITY;
        for (int w = T; w != 0; w = prev[w]) {
            b = fmin(b, cap[prev[w]][w]);
        }
        for (int w = T; w != 0; w = prev[w]) {
            cap[prev[w]][w] -= b;
            cap[w][prev[w]] += b;
        }
        flow += b;
        if (flow >= 1.0 - EX_EPS) {
            break;
        }
    }
    return flow;
}

static void sweep(struct ex *x, int p);

/* Choose how many of class c.. start at p; then check and continue the sweep. */
static void choose(struct ex *x, int p, int c, int any)
{
    if (x->found || x->aborted) {
        return;
    }
    if (--x->work_budget < 0) {
        x->aborted = 1;
        return;
    }
    if ((x->work_budget & 0xffff) == 0 && x->o && x->o->now && plan_now(x->o) > x->deadline) {
        x->aborted = 1;
        return;
    }
    if (c == x->ncls) {
        if (!any) {
            return;
        }
        /* coverage of layer p, suffix work */
        double cov = 0.0;
        double work = 0.0;
        int next = x->L;
        for (int i = 0; i < x->nplaced; i++) {
            const struct ex_node *nd = &x->placed[i];
            if (nd->s <= p && p < nd->e) {
                cov += nd->a;
                work += (nd->e - p) * nd->a;
                if (nd->e < next) {
                    next = nd->e;
                }
            }
        }
        if (cov < 1.0 - EX_EPS) {
            return;
        }
        for (int k = 0; k < x->ncls; k++) {
            work += x->cls[k].rem * x->cls[k].k * x->cls[k].a;
        }
        if (work < x->L - p - 1e-7) {
            return;
        }
        if (reach_flow(x, p) < 1.0 - EX_EPS) {
            return;
        }
        sweep(x, next);
        return;
    }
    struct ex_class *cl = &x->cls[c];
    int maxc = cl->rem;
    if (p + cl->k > x->L) {
        maxc = 0;
    }
    for (int n = maxc; n >= 0; n--) {
        for (int j = 0; j < n; j++) {
            struct ex_node *nd = &x->placed[x->nplaced++];
            nd->s = p;
            nd->e = p + cl->k;
            nd->a = cl->a;
            nd->cls = c;
        }
        cl->rem -= n;
        choose(x, p, c + 1, any || n > 0);
        if (x->found || x->aborted) {
            return; /* keep the placement of a success */
        }
        cl->rem += n;
        x->nplaced -= n;
    }
}

static void sweep(struct ex *x, int p)
{
    if (x->found || x->aborted) {
        return;
    }
    if (p == x->L) {
        for (int k = 0; k < x->ncls; k++) {
            if (x->cls[k].rem > 0) {
                return;
            }
        }
        if (reach_flow(x, x->L) >= 1.0 - EX_EPS) {
            x->found = 1;
        }
        return;
    }
    choose(x, p, 0, 0);
}

/* Enumerate per-slot multisets of k (k = 0: unused) with the work test, then place. */
static void enum_slots(struct ex *x, int slot, double work, const double *best_rest)
{
    if (x->found || x->aborted) {
        return;
    }
    if (work + best_rest[slot] < x->L - 1e-7) {
        return;
    }
    if (slot == x->nslot) {
        x->ncls = 0;
        for (int s = 0; s < x->nslot; s++) {
            for (int k = x->t->maxk[x->slot_rep[s]]; k >= 1; k--) {
                if (x->kcount[s][k] > 0) {
                    struct ex_class *c = &x->cls[x->ncls++];
                    c->slot = s;
                    c->k = k;
                    c->a = share(x, s, k);
                    c->rem = x->kcount[s][k];
                }
            }
        }
        x->nplaced = 0;
        sweep(x, 0);
        return;
    }
    /* multisets of size slot_cnt over k = 0..maxk, generated by k descending */
    int mk = x->t->maxk[x->slot_rep[slot]];
    int n = x->slot_cnt[slot];
    int stack_k[EX_MAXN + 1];
    (void)stack_k;
    /* recursive helper via explicit loops: distribute n nodes over k = mk..0 */
    int cnt[64];
    memset(cnt, 0, sizeof(cnt));
    /* iterate compositions with an odometer over k descending */
    int k = mk;
    int left = n;
    /* simple recursion emulation */
    struct {
        int k;
        int left;
        int c;
        double w;
    } st[70];
    int sp = 0;
    st[0].k = k;
    st[0].left = left;
    st[0].c = left; /* try the most nodes at the highest k first */
    st[0].w = work;
    while (sp >= 0 && !x->found && !x->aborted) {
        if (st[sp].c < 0) {
            sp--;
            if (sp >= 0) {
                st[sp].c--;
            }
            continue;
        }
        int kk = st[sp].k;
        int c = st[sp].c;
        double w = st[sp].w + c * (kk > 0 ? kk * share(x, slot, kk) : 0.0);
        cnt[kk] = c;
        int rest = st[sp].left - c;
        if (kk == 0) {
            if (rest == 0) {
                for (int q = 0; q <= mk; q++) {
                    x->kcount[slot][q] = cnt[q];
                }
                enum_slots(x, slot + 1, w, best_rest);
            }
            st[sp].c--;
            continue;
        }
        /* bound: the rest of this slot at its best k, plus later slots */
        double bestk = 0.0;
        for (int q = 1; q < kk; q++) {
            bestk = fmax(bestk, q * share(x, slot, q));
        }
        if (w + rest * bestk + best_rest[slot + 1] < x->L - 1e-7) {
            st[sp].c--;
            continue;
        }
        sp++;
        st[sp].k = kk - 1;
        st[sp].left = rest;
        st[sp].c = rest;
        st[sp].w = w;
    }
}

int plan_exact_decide(const struct plan_problem *p, double F, long budget,
                      const struct plan_options *o, double deadline, struct layout **out,
                      int *answer, struct hx_diag *diag)
{
    struct plan_tab t;
    *answer = -1;
    if (out) {
        *out = NULL;
    }
    int rc = plan_tab_init(&t, p, diag);
    if (rc != HX_OK) {
        return rc;
    }
    if (t.n > EX_MAXN || t.kmax >= 63 || p->conn != LAYOUT_STRICT || !(F > 0)) {
        plan_tab_release(&t);
        return HX_ENOTSUP;
    }
    struct ex *x = xcalloc(1, sizeof(*x));
    x->t = &t;
    x->L = t.L;
    x->F = F;
    for (int i = 0; i < t.n; i++) {
        int f = -1;
        for (int s = 0; s < x->nslot; s++) {
            if (t.gpu[x->slot_rep[s]] == t.gpu[i]) {
                f = s;
            }
        }
        if (f < 0) {
            f = x->nslot++;
            x->slot_rep[f] = i;
        }
        x->slot_cnt[f]++;
    }
    double best_rest[EX_MAXN + 1];
    best_rest[x->nslot] = 0.0;
    for (int s = x->nslot - 1; s >= 0; s--) {
        double b = 0.0;
        for (int k = 1; k <= t.maxk[x->slot_rep[s]]; k++) {
            b = fmax(b, k * share(x, s, k));
        }
        best_rest[s] = best_rest[s + 1] + x->slot_cnt[s] * b;
    }
    x->work_budget = budget;
    x->o = o;
    x->deadline = deadline;
    enum_slots(x, 0, 0.0, best_rest);
    if (x->found) {
        *answer = 1;
        if (out) {
            struct layout *l = layout_new(t.n);
            int used[EX_MAXN];
            memset(used, 0, sizeof(used));
            for (int i = 0; i < x->nplaced; i++) {
                int slot = x->cls[x->placed[i].cls].slot;
                for (int v = 0; v < t.n; v++) {
                    if (!used[v] && t.gpu[v] == t.gpu[x->slot_rep[slot]]) {
                        used[v] = 1;
                        l->nodes[v].start = x->placed[i].s;
                        l->nodes[v].n_layers = x->placed[i].e - x->placed[i].s;
                        break;
                    }
                }
            }
            *out = l;
        }
    } else if (!x->aborted) {
        *answer = 0;
    }
    xfree(x);
    plan_tab_release(&t);
    return HX_OK;
}
