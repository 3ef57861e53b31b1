/*
 * swarm.c - the Swarm baseline's per-sender state (spec §5.2, Helix swarm_scheduler.py):
 * an EMA of the observed per-hop delay per out-link and a min-heap of (priority, link id).
 * Choosing pops the minimum and pushes it back with priority + ema, so a link is chosen again
 * after "ema" more units of virtual time; ties go to the smaller link id (Python tuple order).
 */
#include "sched/sched.h"

#include "base/alloc.h"

struct swarm_item {
    double prio;
    int id;  /* link id (tie-break) */
    int pos; /* position in the sender's list */
};

struct swarm_sender {
    int n;
    double *ema;
    struct swarm_item *heap;
};

struct sched_swarm {
    int n_senders;
    double gamma;
    struct swarm_sender *s;
};

static int item_less(const struct swarm_item *a, const struct swarm_item *b)
{
    if (a->prio != b->prio) {
        return a->prio < b->prio;
    }
    return a->id < b->id;
}

static void sift_down(struct swarm_item *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1;
        int r = l + 1;
        int m = i;
        if (l < n && item_less(&h[l], &h[m])) {
            m = l;
        }
        if (r < n && item_less(&h[r], &h[m])) {
            m = r;
        }
        if (m == i) {
            return;
        }
        struct swarm_item t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

struct sched_swarm *sched_swarm_new(int n_senders, const int *n_out, const int *const *out_links,
                                    double eps, double gamma)
{
    struct sched_swarm *sw = xcalloc(1, sizeof(*sw));
    sw->n_senders = n_senders;
    sw->gamma = gamma;
    sw->s = xcalloc((size_t)n_senders + 1, sizeof(*sw->s));
    for (int i = 0; i < n_senders; i++) {
        struct swarm_sender *s = &sw->s[i];
        s->n = n_out[i];
        s->ema = xcalloc((size_t)s->n + 1, sizeof(double));
        s->heap = xcalloc((size_t)s->n + 1, sizeof(*s->heap));
        for (int k = 0; k < s->n; k++) {
            s->ema[k] = eps;
            s->heap[k] = (struct swarm_item){.prio = eps, .id = out_links[i][k], .pos = k};
        }
        for (int k = s->n / 2 - 1; k >= 0; k--) {
            sift_down(s->heap, s->n, k);
        }
    }
    return sw;
}

void sched_swarm_free(struct sched_swarm *sw)
{
    if (sw == NULL) {
        return;
    }
    for (int i = 0; i < sw->n_senders; i++) {
        xfree(sw->s[i].ema);
        xfree(sw->s[i].heap);
    }
    xfree(sw->s);
    xfree(sw);
}

int sched_swarm_choose(struct sched_swarm *sw, int sender)
{
    struct swarm_sender *s = &sw->s[sender];
    if (s->n == 0) {
        return -1;
    }
    /* pop the min and push it back with a larger priority == raise the root and sift down */
    int pos = s->heap[0].pos;
    s->heap[0].prio += s->ema[pos];
    sift_down(s->heap, s->n, 0);
    return pos;
}

void sched_swarm_update(struct sched_swarm *sw, int sender, int pos, double dt)
{
    struct swarm_sender *s = &sw->s[sender];
    s->ema[pos] = sw->gamma * dt + (1.0 - sw->gamma) * s->ema[pos];
}

double sched_swarm_ema(const struct sched_swarm *sw, int sender, int pos)
{
    return sw->s[sender].ema[pos];
}
