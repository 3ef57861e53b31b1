/*
 * baselines.c - Helix's heuristic placements (spec §3: Petals, Swarm, homogeneous,
 * separate pipelines) and what users of other systems get (llama.cpp RPC's memory-
 * proportional split, exo's memory-weighted ring). Petals and Swarm reproduce Helix's files
 * byte for byte; that needs Python's MT19937 shuffle (base/pyrand.h) and Python's tuple
 * sort orders, kept below exactly.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/pyrand.h"
#include "base/status.h"
#include "core/cluster.h"
#include "core/model.h"
#include "plan/plan.h"
#include "plan/plan_int.h"

struct perf_idx {
    double perf;
    int i;
};

/* Python sorted(list of (perf, i), reverse=True): descending perf, then descending i. */
static int cmp_perf_desc(const void *a, const void *b)
{
    const struct perf_idx *x = a;
    const struct perf_idx *y = b;
    if (x->perf != y->perf) {
        return x->perf < y->perf ? 1 : -1;
    }
    return (x->i < y->i) - (x->i > y->i);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

int plan_petals(const struct plan_problem *p, int64_t seed, struct layout **out,
                struct hx_diag *diag)
{
    struct plan_tab t;
    *out = NULL;
    int rc = plan_tab_init(&t, p, diag);
    if (rc != HX_OK) {
        return rc;
    }
    int n = t.n;
    int m = t.L;
    struct perf_idx *list = xmalloc(sizeof(*list) * (size_t)n);
    for (int i = 0; i < n; i++) {
        list[i].perf = plan_tab_cap(&t, i, t.maxk[i]);
        list[i].i = i;
    }
    struct pyrand rng;
    pyrand_seed(&rng, seed);
    pyrand_shuffle(&rng, list, (size_t)n, sizeof(*list));
    double *layer_tp = xcalloc((size_t)m, sizeof(double));
    double *best = xmalloc(sizeof(double) * (size_t)(t.kmax + 1));
    double *cand = xmalloc(sizeof(double) * (size_t)(t.kmax + 1));
    struct layout *l = layout_new(n);
    for (int a = 0; a < n; a++) {
        int i = list[a].i;
        int w = t.maxk[i];
        int ww = w < m ? w : m;
        int best_s = 0;
        memcpy(best, layer_tp, sizeof(double) * (size_t)ww);
        qsort(best, (size_t)ww, sizeof(double), cmp_dbl);
        for (int s = 0; s <= m - w; s++) {
            memcpy(cand, layer_tp + s, sizeof(double) * (size_t)w);
            qsort(cand, (size_t)w, sizeof(double), cmp_dbl);
            int less = 0;
            for (int j = 0; j < w; j++) {
                if (cand[j] != best[j]) {
                    less = cand[j] < best[j];
                    break;
                }
            }
            if (less) {
                best_s = s;
                memcpy(best, cand, sizeof(double) * (size_t)w);
            }
        }
        int e = best_s + w < m ? best_s + w : m;
        l->nodes[i].start = best_s;
        l->nodes[i].n_layers = e - best_s;
        for (int j = best_s; j < e; j++) {
            layer_tp[j] += list[a].perf;
        }
    }
    xfree(best);
    xfree(cand);
    xfree(layer_tp);
    xfree(list);
    plan_tab_release(&t);
    *out = l;
    return HX_OK;
}

int plan_swarm(const struct plan_problem *p, struct layout **out, struct hx_diag *diag)
{
    struct plan_tab t;
    *out = NULL;
    int rc = plan_tab_init(&t, p, diag);
    if (rc != HX_OK) {
        return rc;
    }
    int minmax = t.kmax;
    for (int i = 0; i < t.n; i++) {
        if (t.maxk[i] < minmax) {
            minmax = t.maxk[i];
        }
    }
    /* stage size: the largest divisor of L that every node can hold (70B: 4, 30B: 6) */
    int q = 0;
    for (int d = minmax; d >= 1; d--) {
        if (t.L % d == 0) {
            q = d;
            break;
        }
    }
    int S = t.L / q;
    struct perf_idx *list = xmalloc(sizeof(*list) * (size_t)t.n);
    for (int i = 0; i < t.n; i++) {
        list[i].perf = plan_tab_cap(&t, i, q);
        list[i].i = i;
    }
    qsort(list, (size_t)t.n, sizeof(*list), cmp_perf_desc);
    double *stage = xcalloc((size_t)S, sizeof(double));
    struct layout *l = layout_new(t.n);
    for (int a = 0; a < t.n; a++) {
        int s = 0;
        for (int j = 1; j < S; j++) {
            if (stage[j] < stage[s]) {
                s = j;
            }
        }
        stage[s] += list[a].perf;
        l->nodes[list[a].i].start = s * q;
        l->nodes[list[a].i].n_layers = q;
    }
    xfree(stage);
    xfree(list);
    plan_tab_release(&t);
    *out = l;
    return HX_OK;
}

int plan_homogeneous(const struct plan_problem *p, int64_t seed, struct layout **out,
                     struct hx_diag *diag)
{
    struct plan_tab t;
    *out = NULL;
    int rc = plan_tab_init(&t, p, diag);
    if (rc != HX_OK) {
        return rc;
    }
    size_t ng = p->model->n_gpus;
    /* types present, in model order, stably sorted by TP(max) * max descending */
    int *types = xmalloc(sizeof(int) * ng);
    double *key = xmalloc(sizeof(double) * ng);
    int nt = 0;
    for (size_t g = 0; g < ng; g++) {
        for (int i = 0; i < t.n; i++) {
            if (t.gpu[i] == (int)g) {
                types[nt] = (int)g;
                key[nt] = plan_tab_cap(&t, i, t.maxk[i]) * t.maxk[i];
                nt++;
                break;
            }
        }
    }
    for (int a = 1; a < nt; a++) { /* stable insertion sort, descending key */
        int ty = types[a];
        double k = key[a];
        int b = a - 1;
        while (b >= 0 && key[b] < k) {
            types[b + 1] = types[b];
            key[b + 1] = key[b];
            b--;
        }
        types[b + 1] = ty;
        key[b + 1] = k;
    }
    struct pyrand rng;
    pyrand_seed(&rng, seed);
    struct layout *l = layout_new(t.n);
    int *nodes = xmalloc(sizeof(int) * (size_t)t.n);
    int cur = 0;
    int *pending = xmalloc(sizeof(int) * (size_t)t.n);
    int npend = 0;
    for (int a = 0; a < nt; a++) {
        int cnt = 0;
        for (int i = 0; i < t.n; i++) {
            if (t.gpu[i] == types[a]) {
                nodes[cnt++] = i;
            }
        }
        pyrand_shuffle(&rng, nodes, (size_t)cnt, sizeof(int));
        for (int b = 0; b < cnt; b++) {
            int i = nodes[b];
            int e = cur + t.maxk[i] < t.L ? cur + t.maxk[i] : t.L;
            l->nodes[i].start = cur;
            l->nodes[i].n_layers = e - cur;
            pending[npend++] = i;
            cur = e;
            if (cur == t.L) {
                cur = 0;
                npend = 0; /* pipeline closed */
            }
        }
    }
    for (int b = 0; b < npend; b++) { /* unfinished tail: unused */
        l->nodes[pending[b]].start = 0;
        l->nodes[pending[b]].n_layers = 0;
    }
    xfree(pending);
    xfree(nodes);
    xfree(types);
    xfree(key);
    plan_tab_release(&t);
    *out = l;
    return HX_OK;
}

/*
 * Split L layers over the nodes of ord[0..m) in order, proportionally to weight, capped by
 * max layers (water-filling: a capped node's excess goes to the others by weight), at least
 * one layer each. Largest remainders get the extra layers (ties: later nodes, as §3.4's
 * "6x6 + 6x7" puts the longer stages last). Returns 0 or -1 if sum of max < L.
 */
static int split_layers(const struct plan_tab *t, const int *ord, int m, const double *weight,
                        struct layout *l, int cumulative)
{
    long summax = 0;
    for (int a = 0; a < m; a++) {
        summax += t->maxk[ord[a]];
    }
    if (m == 0 || summax < t->L || m > t->L) {
        return -1;
    }
    int *k = xcalloc((size_t)m, sizeof(int));
    char *capped = xcalloc((size_t)m, 1);
    int left = t->L;
    for (int round = 0; round < m + 1 && left > 0; round++) {
        double wsum = 0.0;
        int free_n = 0;
        for (int a = 0; a < m; a++) {
            if (!capped[a]) {
                wsum += weight[a];
                free_n++;
            }
        }
        if (free_n == 0) {
            break;
        }
        /* tentative shares of `left` layers among the uncapped */
        int newly = 0;
        double *share = xcalloc((size_t)m, sizeof(double));
        for (int a = 0; a < m; a++) {
            if (!capped[a]) {
                share[a] = (double)left * weight[a] / wsum;
                if (k[a] + share[a] > t->maxk[ord[a]]) {
                    left -= t->maxk[ord[a]] - k[a];
                    k[a] = t->maxk[ord[a]];
                    capped[a] = 1;
                    newly = 1;
                }
            }
        }
        if (!newly) {
            int given = 0;
            if (cumulative) {
                /* exo: boundaries at floor(cumulative fraction * left) */
                double acc = 0.0;
                int prev = 0;
                for (int a = 0; a < m; a++) {
                    if (capped[a]) {
                        continue;
                    }
                    acc += share[a];
                    int b = (int)floor(acc + 1e-9);
                    k[a] += b - prev;
                    given += b - prev;
                    prev = b;
                }
                for (int a = m - 1; a >= 0 && given < left; a--) {
                    if (!capped[a] && k[a] < t->maxk[ord[a]]) {
                        k[a]++;
                        given++;
                    }
                }
            } else {
                for (int a = 0; a < m; a++) {
                    if (!capped[a]) {
                        int f = (int)floor(share[a] + 1e-9);
                        k[a] += f;
                        given += f;
                        share[a] -= f;
                    }
                }
                while (given < left) {
                    int best = -1;
                    for (int a = m - 1; a >= 0; a--) {
                        if (!capped[a] && k[a] < t->maxk[ord[a]] &&
                            (best < 0 || share[a] > share[best] + 1e-12)) {
                            best = a;
                        }
                    }
                    if (best < 0) {
                        break;
                    }
                    k[best]++;
                    share[best] = -1.0;
                    given++;
                }
            }
            left -= given;
        }
        xfree(share);
    }
    /* every node at least one layer: take from the largest */
    for (int a = 0; a < m; a++) {
        while (k[a] == 0) {
            int big = 0;
            for (int b = 1; b < m; b++) {
                if (k[b] > k[big]) {
                    big = b;
                }
            }
            if (k[big] <= 1) {
                break;
            }
            k[big]--;
            k[a]++;
        }
    }
    int cur = 0;
    int ok = left == 0;
    for (int a = 0; a < m; a++) {
        l->nodes[ord[a]].start = k[a] > 0 ? cur : 0;
        l->nodes[ord[a]].n_layers = k[a];
        cur += k[a];
    }
    xfree(k);
    xfree(capped);
    return ok && cur == t->L ? 0 : -1;
}

int plan_separate(const struct plan_problem *p, struct layout **out, struct hx_diag *diag)
{
    struct plan_tab t;
    *out = NULL;
    int rc = plan_tab_init(&t, p, diag);
    if (rc != HX_OK) {
        return rc;
    }
    struct layout *l = layout_new(t.n);
    int *ord = xmalloc(sizeof(int) * (size_t)t.n);
    double *w = xmalloc(sizeof(double) * (size_t)t.n);
    int *rest = xmalloc(sizeof(int) * (size_t)t.n);
    int nrest = 0;
    for (size_t g = 0; g < p->model->n_gpus; g++) {
        int m = 0;
        for (int i = 0; i < t.n; i++) {
            if (t.gpu[i] == (int)g) {
                ord[m] = i;
                w[m] = 1.0;
                m++;
            }
        }
        if (m == 0) {
            continue;
        }
        if ((long)m * t.maxk[ord[0]] >= t.L && m <= t.L) {
            /* even split, the extra layers on the last nodes (§3.4: T4 6x6 + 6x7) */
            int base = t.L / m;
            int extra = t.L % m;
            int cur = 0;
            for (int a = 0; a < m; a++) {
                int k = base + (a >= m - extra ? 1 : 0);
                l->nodes[ord[a]].start = cur;
                l->nodes[ord[a]].n_layers = k;
                cur += k;
            }
        } else {
            for (int a = 0; a < m; a++) {
                rest[nrest++] = ord[a];
            }
        }
    }
    /* SP+: the types that cannot form a pipeline alone share one mixed pipeline */
    if (nrest > 0) {
        for (int a = 0; a < nrest; a++) {
            w[a] = t.maxk[rest[a]];
        }
        struct layout *tmp = layout_clone(l);
        if (split_layers(&t, rest, nrest, w, tmp, 0) == 0) {
            layout_free(l);
            l = tmp;
        } else {
            layout_free(tmp);
        }
    }
    xfree(ord);
    xfree(w);
    xfree(rest);
    plan_tab_release(&t);
    *out = l;
    return HX_OK;
}

static double node_vram(const struct plan_problem *p, int i)
{
    const struct machine_profile *mp =
        p->mp ? machine_profiles_find(p->mp, p->cluster->nodes[i].type) : NULL;
    return mp && mp->vram_bytes > 0 ? mp->vram_bytes : 1.0;
}

int plan_memory(const struct plan_problem *p, struct layout **out, struct hx_diag *diag)
{
    struct plan_tab t;
    *out = NULL;
    int rc = plan_tab_init(&t, p, diag);
    if (rc != HX_OK) {
        return rc;
    }
    int *ord = xmalloc(sizeof(int) * (size_t)t.n);
    double *w = xmalloc(sizeof(double) * (size_t)t.n);
    for (int i = 0; i < t.n; i++) {
        ord[i] = i;
        w[i] = node_vram(p, i);
    }
    struct layout *l = layout_new(t.n);
    int ok = split_layers(&t, ord, t.n, w, l, 0);
    xfree(ord);
    xfree(w);
    plan_tab_release(&t);
    if (ok != 0) {
        layout_free(l);
        return hx_diag_set(diag, HX_EINFEASIBLE,
                           "memory: the nodes cannot hold the %d layers of %s in one pipeline",
                           p->model->n_layers, p->model->name);
    }
    *out = l;
    return HX_OK;
}

int plan_ram_ring(const struct plan_problem *p, struct layout **out, struct hx_diag *diag)
{
    struct plan_tab t;
    *out = NULL;
    int rc = plan_tab_init(&t, p, diag);
    if (rc != HX_OK) {
        return rc;
    }
    struct perf_idx *list = xmalloc(sizeof(*list) * (size_t)t.n);
    for (int i = 0; i < t.n; i++) {
        list[i].perf = node_vram(p, i);
        list[i].i = -i; /* ties: lower index first */
    }
    qsort(list, (size_t)t.n, sizeof(*list), cmp_perf_desc);
    int *ord = xmalloc(sizeof(int) * (size_t)t.n);
    double *w = xmalloc(sizeof(double) * (size_t)t.n);
    for (int a = 0; a < t.n; a++) {
        ord[a] = -list[a].i;
        w[a] = list[a].perf;
    }
    struct layout *l = layout_new(t.n);
    int ok = split_layers(&t, ord, t.n, w, l, 1);
    xfree(list);
    xfree(ord);
    xfree(w);
    plan_tab_release(&t);
    if (ok != 0) {
        layout_free(l);
        return hx_diag_set(diag, HX_EINFEASIBLE,
                           "ram-ring: the nodes cannot hold the %d layers of %s in one ring",
                           p->model->n_layers, p->model->name);
    }
    *out = l;
    return HX_OK;
}

int plan_baselines_all(const struct plan_problem *p, int64_t seed, struct layout **out,
                       enum plan_method *which, int max_out)
{
    int n = 0;
    for (int m = PLAN_METHOD_PETALS; m <= PLAN_METHOD_RAM_RING && n < max_out; m++) {
        struct layout *l = NULL;
        int rc = HX_EINVAL;
        switch (m) {
        case PLAN_METHOD_PETALS:
            rc = plan_petals(p, seed, &l, NULL);
            break;
        case PLAN_METHOD_SWARM:
            rc = plan_swarm(p, &l, NULL);
            break;
        case PLAN_METHOD_HOMOGENEOUS:
            rc = plan_homogeneous(p, seed, &l, NULL);
            break;
        case PLAN_METHOD_SEPARATE:
            rc = plan_separate(p, &l, NULL);
            break;
        case PLAN_METHOD_MEMORY:
            rc = plan_memory(p, &l, NULL);
            break;
        case PLAN_METHOD_RAM_RING:
            rc = plan_ram_ring(p, &l, NULL);
            break;
        default:
            break;
        }
        if (rc == HX_OK && l) {
            out[n] = l;
            which[n] = (enum plan_method)m;
            n++;
        }
    }
    return n;
}
