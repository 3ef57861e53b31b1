/*
 * sampler.c - next-token sampling: greedy (temperature <= 0), else softmax at temperature T,
 * restricted to the top_k largest logits and then to the smallest prefix (by descending
 * probability) whose mass reaches top_p, renormalised and drawn with a seeded splitmix64
 * generator. Scratch for the vocabulary is allocated once in eng_sampler_new.
 */
#include "engine/engine.h"

#include <math.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/status.h"

struct cand {
    float logit;
    int32_t id;
};

struct eng_sampler {
    struct eng_sampler_params p;
    int vocab;
    uint64_t state;
    struct cand *cands; /* [vocab] */
    double *probs;      /* [vocab] */
};

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int eng_sampler_new(const struct eng_sampler_params *p, int vocab, struct eng_sampler **out)
{
    *out = NULL;
    if (vocab < 1 || !(p->temperature == p->temperature) || !(p->top_p == p->top_p)) {
        return HX_EINVAL;
    }
    struct eng_sampler *s = hx_calloc(1, sizeof(*s));
    if (!s) {
        return HX_ENOMEM;
    }
    s->p = *p;
    s->vocab = vocab;
    s->state = p->seed;
    s->cands = hx_malloc((size_t)vocab * sizeof(*s->cands));
    s->probs = hx_malloc((size_t)vocab * sizeof(*s->probs));
    if (!s->cands || !s->probs) {
        eng_sampler_free(s);
        return HX_ENOMEM;
    }
    *out = s;
    return HX_OK;
}

void eng_sampler_free(struct eng_sampler *s)
{
    if (!s) {
        return;
    }
    xfree(s->cands);
    xfree(s->probs);
    xfree(s);
}

int32_t eng_argmax(const float *logits, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++) {
        if (logits[i] > logits[best]) {
            best = i;
        }
    }
    return best;
}

/* Descending by logit, ascending id on ties (a total order, so the result is deterministic). */
static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a;
    const struct cand *y = b;
    if (x->logit != y->logit) {
        return x->logit > y->logit ? -1 : 1;
    }
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* Move the k best candidates to the front (quickselect), in no particular order. */
static void select_top(struct cand *c, int n, int k)
{
    int lo = 0;
    int hi = n - 1;
    while (lo < hi) {
        struct cand pivot = c[(lo + hi) / 2];
        int i = lo;
        int j = hi;
        while (i <= j) {
            while (cand_cmp(&c[i], &pivot) < 0) {
                i++;
            }
            while (cand_cmp(&c[j], &pivot) > 0) {
                j--;
            }
            if (i <= j) {
                struct cand tmp = c[i];
                c[i] = c[j];
                c[j] = tmp;
                i++;
                j--;
            }
        }
        if (k - 1 <= j) {
            hi = j;
        } else if (k - 1 >= i) {
            lo = i;
        } else {
            break;
        }
    }
}

int32_t eng_sampler_sample(struct eng_sampler *s, const float *logits)
{
    int n = s->vocab;
    if (!(s->p.temperature > 0.0f)) {
        return eng_argmax(logits, n);
    }
    for (int i = 0; i < n; i++) {
        s->cands[i].logit = logits[i];
        s->cands[i].id = i;
    }
    int k = n;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        k = s->p.top_k;
        select_top(s->cands, n, k);
    }
    qsort(s->cands, (size_t)k, sizeof(*s->cands), cand_cmp);
    double inv_t = 1.0 / (double)s->p.temperature;
    double max = (double)s->cands[0].logit;
    double sum = 0.0;
    for (int i = 0; i < k; i++) {
        s->probs[i] = exp(((double)s->cands[i].logit - max) * inv_t);
        sum += s->probs[i];
    }
    if (s->p.top_p > 0.0f && s->p.top_p < 1.0f) {
        double mass = 0.0;
        int keep = 0;
        while (keep < k) {
            mass += s->probs[keep] / sum;
            keep++;
            if (mass >= (double)s->p.top_p) {
                break;
            }
        }
        k = keep;
        sum = 0.0;
        for (int i = 0; i < k; i++) {
            sum += s->probs[i];
        }
    }
    double r = (double)(splitmix64(&s->state) >> 11) * 0x1.0p-53 * sum;
    for (int i = 0; i < k; i++) {
        r -= s->probs[i];
        if (r < 0.0) {
            return s->cands[i].id;
        }
    }
    return s->cands[k - 1].id;
}
