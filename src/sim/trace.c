/*
 * trace.c - Helix's trace generator (simulator/trace_generator/), restated draw for draw.
 *
 * Invariant that makes the output bit-identical to Python's: every random number comes from
 * the one borrowed struct pyrand, in Python's order (re-seed in LengthSampler, re-seed in
 * ArrivalRateSampler; per bucket: one randint for the rate, `count` random() for the times,
 * then `count` randint for the lengths), and every float is computed with Python's operation
 * order (see the comments at each formula). The CSV parsers are the only I/O-adjacent code;
 * they never trust the file and name file:line in every error.
 */
#include "sim/trace.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/pymath.h"
#include "base/pyrand.h"
#include "base/status.h"
#include "base/strbuf.h"

/* ---- line scanning ----------------------------------------------------------------------- */

struct line_iter {
    const char *p;
    const char *end;
    long lineno;
};

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Next meaningful line (trimmed; blank and '#' lines skipped) as [*b, *e); 0 at the end.
 * A NUL byte inside the text ends nothing: it is reported by the field parsers as garbage.
 */
static int next_line(struct line_iter *it, const char **b, const char **e)
{
    while (it->p < it->end) {
        const char *s = it->p;
        const char *nl = memchr(s, '\n', (size_t)(it->end - s));
        const char *t = nl ? nl : it->end;
        it->p = nl ? nl + 1 : it->end;
        it->lineno++;
        while (s < t && is_blank(*s)) {
            s++;
        }
        while (t > s && is_blank(t[-1])) {
            t--;
        }
        if (s == t || *s == '#') {
            continue;
        }
        *b = s;
        *e = t;
        return 1;
    }
    return 0;
}

/* Parse a decimal integer in [1, INT32_MAX] at *p (< e); advance *p. 0 on success. */
static int parse_count(const char **p, const char *e, int32_t *out)
{
    const char *s = *p;
    int64_t v = 0;
    if (s >= e || *s < '0' || *s > '9') {
        return -1;
    }
    while (s < e && *s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > INT32_MAX) {
            return -1;
        }
        s++;
    }
    if (v < 1) {
        return -1;
    }
    *out = (int32_t)v;
    *p = s;
    return 0;
}

static void skip_blanks(const char **p, const char *e)
{
    while (*p < e && is_blank(**p)) {
        (*p)++;
    }
}

/* The offending line, shortened for messages. */
static int line_snippet(const char *b, const char *e)
{
    return (int)(e - b > 40 ? 40 : e - b);
}

/* ---- length tables ----------------------------------------------------------------------- */

int sim_trace_lengths_parse(const char *text, size_t len, const char *name,
                            struct sim_trace_lengths *out, struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    struct sim_trace_lengths l = {0};
    size_t cap = 0;
    struct line_iter it = {text, text + len, 0};
    const char *b;
    const char *e;
    int rc;
    while (next_line(&it, &b, &e)) {
        const char *p = b;
        int32_t in;
        int32_t outl;
        int ok = parse_count(&p, e, &in) == 0;
        if (ok) {
            skip_blanks(&p, e);
            ok = p < e && *p == ',';
            p++;
        }
        if (ok) {
            skip_blanks(&p, e);
            ok = parse_count(&p, e, &outl) == 0 && p == e;
        }
        if (!ok) {
            rc = hx_diag_set(diag, HX_EPARSE,
                             "%s:%ld: expected 'input,output' token counts (integers >= 1), "
                             "got '%.*s'",
                             name, it.lineno, line_snippet(b, e), b);
            goto fail;
        }
        if (l.n == cap) {
            size_t ncap = cap ? 2 * cap : 1024;
            int32_t *ni = hx_realloc(l.input, ncap * sizeof(*ni));
            if (!ni) {
                goto oom;
            }
            l.input = ni;
            int32_t *no = hx_realloc(l.output, ncap * sizeof(*no));
            if (!no) {
                goto oom;
            }
            l.output = no;
            cap = ncap;
        }
        l.input[l.n] = in;
        l.output[l.n] = outl;
        l.sum_input += in;
        l.sum_output += outl;
        l.n++;
    }
    if (l.n == 0) {
        rc = hx_diag_set(diag, HX_EPARSE, "%s: no 'input,output' records", name);
        goto fail;
    }
    *out = l;
    return HX_OK;
oom:
    rc = hx_diag_set(diag, HX_ENOMEM, "%s: out of memory at line %ld", name, it.lineno);
fail:
    sim_trace_lengths_release(&l);
    return rc;
}

int sim_trace_lengths_load(const char *path, struct sim_trace_lengths *out, struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    struct strbuf sb;
    strbuf_init(&sb);
    if (strbuf_read_file(&sb, path) != HX_OK) {
        int err = errno;
        strbuf_release(&sb);
        return hx_diag_set(diag, HX_EIO, "%s: cannot read: %s", path, strerror(err));
    }
    int rc = sim_trace_lengths_parse(sb.buf, sb.len, path, out, diag);
    strbuf_release(&sb);
    return rc;
}

void sim_trace_lengths_release(struct sim_trace_lengths *l)
{
    if (!l) {
        return;
    }
    xfree(l->input);
    xfree(l->output);
    memset(l, 0, sizeof(*l));
}

double sim_trace_lengths_average(const struct sim_trace_lengths *l)
{
    if (!l || l->n == 0) {
        return 0.0;
    }
    /* Python: sum(in)/len(in) + sum(out)/len(out); sums are exact integers (< 2**53) */
    return (double)l->sum_input / (double)l->n + (double)l->sum_output / (double)l->n;
}

/* ---- arrival histograms ------------------------------------------------------------------ */

int sim_trace_arrivals_parse(const char *text, size_t len, const char *name,
                             struct sim_trace_arrivals *out, struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    struct sim_trace_arrivals a = {0};
    size_t cap = 0;
    double total = 0.0;
    struct line_iter it = {text, text + len, 0};
    const char *b;
    const char *e;
    int rc;
    while (next_line(&it, &b, &e)) {
        char buf[64];
        size_t n = (size_t)(e - b);
        int ok = n < sizeof(buf);
        double v = 0.0;
        if (ok) {
            memcpy(buf, b, n);
            buf[n] = '\0';
            char *endp = NULL;
            errno = 0;
            v = strtod(buf, &endp);
            /* digits only at the start: rejects "nan", "inf", hex floats and signs */
            ok = ((buf[0] >= '0' && buf[0] <= '9') || buf[0] == '.') && endp == buf + n &&
                 errno == 0 && isfinite(v) && v >= 0.0 && memchr(buf, 'x', n) == NULL &&
                 memchr(buf, 'X', n) == NULL;
        }
        if (!ok) {
            rc = hx_diag_set(diag, HX_EPARSE,
                             "%s:%ld: expected a request count per 3-s bucket (number >= 0), "
                             "got '%.*s'",
                             name, it.lineno, line_snippet(b, e), b);
            goto fail;
        }
        if (a.n == cap) {
            size_t ncap = cap ? 2 * cap : 1024;
            double *nc = hx_realloc(a.counts, ncap * sizeof(*nc));
            if (!nc) {
                rc = hx_diag_set(diag, HX_ENOMEM, "%s: out of memory at line %ld", name, it.lineno);
                goto fail;
            }
            a.counts = nc;
            cap = ncap;
        }
        a.counts[a.n++] = v;
        total += v;
    }
    if (a.n == 0 || !(total > 0.0)) {
        rc = hx_diag_set(diag, HX_EPARSE, "%s: no buckets with arrivals", name);
        goto fail;
    }
    *out = a;
    return HX_OK;
fail:
    sim_trace_arrivals_release(&a);
    return rc;
}

int sim_trace_arrivals_load(const char *path, struct sim_trace_arrivals *out, struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    struct strbuf sb;
    strbuf_init(&sb);
    if (strbuf_read_file(&sb, path) != HX_OK) {
        int err = errno;
        strbuf_release(&sb);
        return hx_diag_set(diag, HX_EIO, "%s: cannot read: %s", path, strerror(err));
    }
    int rc = sim_trace_arrivals_parse(sb.buf, sb.len, path, out, diag);
    strbuf_release(&sb);
    return rc;
}

void sim_trace_arrivals_release(struct sim_trace_arrivals *a)
{
    if (!a) {
        return;
    }
    xfree(a->counts);
    memset(a, 0, sizeof(*a));
}

int sim_trace_data_load(const char *dir, const char *name, struct sim_trace_data *out,
                        struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    struct strbuf path;
    strbuf_init(&path);
    strbuf_addf(&path, "%s/%s_lengths.csv", dir, name);
    int rc = sim_trace_lengths_load(path.buf, &out->lengths, diag);
    if (rc == HX_OK) {
        strbuf_reset(&path);
        strbuf_addf(&path, "%s/%s_arrivals.csv", dir, name);
        rc = sim_trace_arrivals_load(path.buf, &out->arrivals, diag);
    }
    strbuf_release(&path);
    if (rc != HX_OK) {
        sim_trace_data_release(out);
    }
    return rc;
}

void sim_trace_data_release(struct sim_trace_data *d)
{
    if (!d) {
        return;
    }
    sim_trace_lengths_release(&d->lengths);
    sim_trace_arrivals_release(&d->arrivals);
}

/* ---- samplers ---------------------------------------------------------------------------- */

void sim_length_sampler_init(struct sim_length_sampler *s, const struct sim_trace_lengths *data,
                             int64_t seed, struct pyrand *rng)
{
    s->data = data;
    s->rng = rng;
    pyrand_seed(rng, seed);
    s->avg_len = sim_trace_lengths_average(data);
}

void sim_length_sampler_sample(struct sim_length_sampler *s, int32_t *input_len,
                               int32_t *output_len)
{
    size_t i = (size_t)pyrand_randint(s->rng, 0, (int64_t)s->data->n - 1);
    *input_len = s->data->input[i];
    *output_len = s->data->output[i];
}

int sim_arrival_sampler_init(struct sim_arrival_sampler *s, const struct sim_trace_arrivals *data,
                             double target_req_s, int64_t seed, struct pyrand *rng,
                             struct hx_diag *diag)
{
    memset(s, 0, sizeof(*s));
    if (!isfinite(target_req_s) || target_req_s < 0.0) {
        return hx_diag_set(diag, HX_EINVAL, "arrival sampler: bad target rate %g req/s",
                           target_req_s);
    }
    double total = 0.0;
    for (size_t b = 0; b < data->n; b++) {
        total += data->counts[b]; // Python's sum(): left to right
    }
    if (data->n == 0 || !(total > 0.0)) {
        return hx_diag_set(diag, HX_EINVAL, "arrival sampler: histogram has no arrivals");
    }
    double *rates = hx_malloc(data->n * sizeof(*rates));
    if (!rates) {
        return hx_diag_set(diag, HX_ENOMEM, "arrival sampler: out of memory");
    }
    pyrand_seed(rng, seed);
    /* Python: orig = sum/len; rescale = 3 * target / orig; rates = [rescale * r for r in ...] */
    double orig = total / (double)data->n;
    double rescale = 3.0 * target_req_s / orig;
    for (size_t b = 0; b < data->n; b++) {
        rates[b] = rescale * data->counts[b];
    }
    s->rates = rates;
    s->n = data->n;
    s->rng = rng;
    return HX_OK;
}

double sim_arrival_sampler_sample(struct sim_arrival_sampler *s)
{
    size_t i = (size_t)pyrand_randint(s->rng, 0, (int64_t)s->n - 1);
    return s->rates[i];
}

void sim_arrival_sampler_release(struct sim_arrival_sampler *s)
{
    if (!s) {
        return;
    }
    xfree(s->rates);
    memset(s, 0, sizeof(*s));
}

/* ---- traces ------------------------------------------------------------------------------ */

void sim_trace_release(struct sim_trace *t)
{
    if (!t) {
        return;
    }
    xfree(t->q);
    t->q = NULL;
    t->n = 0;
}

int64_t sim_trace_total_tokens(const struct sim_trace *t)
{
    int64_t sum = 0;
    for (size_t i = 0; i < t->n; i++) {
        sum += (int64_t)t->q[i].input_len + t->q[i].output_len;
    }
    return sum;
}

int sim_trace_gen_init(struct sim_trace_gen *g, const struct sim_trace_data *data,
                       double target_tok_s, int64_t seed, struct pyrand *rng, struct hx_diag *diag)
{
    memset(g, 0, sizeof(*g));
    if (!isfinite(target_tok_s) || target_tok_s < 0.0) {
        return hx_diag_set(diag, HX_EINVAL, "trace generator: bad target throughput %g tok/s",
                           target_tok_s);
    }
    if (data->lengths.n == 0) {
        return hx_diag_set(diag, HX_EINVAL, "trace generator: empty length table");
    }
    g->rng = rng;
    g->target_tok_s = target_tok_s;
    pyrand_seed(rng, seed); // TraceGenerator.__init__: random.seed(seed)
    sim_length_sampler_init(&g->lengths, &data->lengths, seed, rng);
    g->target_req_s = target_tok_s / g->lengths.avg_len;
    int rc =
        sim_arrival_sampler_init(&g->arrivals, &data->arrivals, g->target_req_s, seed, rng, diag);
    if (rc != HX_OK) {
        memset(g, 0, sizeof(*g));
    }
    return rc;
}

void sim_trace_gen_release(struct sim_trace_gen *g)
{
    if (!g) {
        return;
    }
    sim_arrival_sampler_release(&g->arrivals);
    memset(g, 0, sizeof(*g));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

int sim_trace_gen_generate(struct sim_trace_gen *g, double start_s, int64_t duration_s,
                           struct sim_trace *out, struct hx_diag *diag)
{
    out->q = NULL;
    out->n = 0;
    if (duration_s < 0 || duration_s % SIM_TRACE_BUCKET_S != 0) {
        return hx_diag_set(diag, HX_EINVAL,
                           "trace generator: duration %lld s is not a non-negative multiple of 3",
                           (long long)duration_s);
    }
    struct sim_trace t = {0};
    size_t cap = 0;
    double *times = NULL;
    size_t times_cap = 0;
    double carry = 0.0;
    int64_t n_buckets = duration_s / SIM_TRACE_BUCKET_S;
    for (int64_t b = 0; b < n_buckets; b++) {
        double x = sim_arrival_sampler_sample(&g->arrivals) + carry; // raw + prev_interval_diff
        double c = py_round(x);
        carry = x - c;
        if (!(c >= 0.0 && c < 1e9)) { // rates are >= 0 and carry > -1, so c >= 0 always
            goto oom;
        }
        size_t count = (size_t)c;
        if (count == 0) {
            continue;
        }
        if (count > times_cap) {
            double *nt = hx_realloc(times, count * sizeof(*nt));
            if (!nt) {
                goto oom;
            }
            times = nt;
            times_cap = count;
        }
        /* Python: start_time + interval_idx * 3 + 3 * random.random(), left to right */
        double base = start_s + (double)(b * SIM_TRACE_BUCKET_S);
        for (size_t i = 0; i < count; i++) {
            times[i] = base + 3.0 * pyrand_random(g->rng);
        }
        qsort(times, count, sizeof(*times), cmp_double);
        if (t.n + count > cap) {
            size_t ncap = cap ? cap : 1024;
            while (ncap < t.n + count) {
                ncap *= 2;
            }
            struct sim_trace_query *nq = hx_realloc(t.q, ncap * sizeof(*nq));
            if (!nq) {
                goto oom;
            }
            t.q = nq;
            cap = ncap;
        }
        for (size_t i = 0; i < count; i++) {
            struct sim_trace_query *q = &t.q[t.n++];
            q->arrival_s = times[i];
            sim_length_sampler_sample(&g->lengths, &q->input_len, &q->output_len);
        }
    }
    xfree(times);
    *out = t;
    return HX_OK;
oom:
    xfree(times);
    sim_trace_release(&t);
    return hx_diag_set(diag, HX_ENOMEM, "trace generator: out of memory (%.0f tok/s target)",
                       g->target_tok_s);
}

int sim_trace_generate_online(const struct sim_trace_data *data, double target_tok_s,
                              double start_s, int64_t duration_s, int64_t seed, struct pyrand *rng,
                              struct sim_trace *out, struct hx_diag *diag)
{
    out->q = NULL;
    out->n = 0;
    struct pyrand *own = NULL;
    if (!rng) {
        own = hx_malloc(sizeof(*own));
        if (!own) {
            return hx_diag_set(diag, HX_ENOMEM, "trace generator: out of memory");
        }
        rng = own;
    }
    struct sim_trace_gen g;
    int rc = sim_trace_gen_init(&g, data, target_tok_s, seed, rng, diag);
    if (rc == HX_OK) {
        rc = sim_trace_gen_generate(&g, start_s, duration_s, out, diag);
        sim_trace_gen_release(&g);
    }
    xfree(own);
    return rc;
}

int sim_trace_offline_initial(struct sim_length_sampler *s, double start_s, size_t count,
                              struct sim_trace *out, struct hx_diag *diag)
{
    out->q = NULL;
    out->n = 0;
    if (count == 0) {
        return HX_OK;
    }
    struct sim_trace_query *q = hx_malloc(count * sizeof(*q));
    if (!q) {
        return hx_diag_set(diag, HX_ENOMEM, "offline feeder: out of memory for %zu queries", count);
    }
    for (size_t i = 0; i < count; i++) {
        sim_length_sampler_sample(s, &q[i].input_len, &q[i].output_len);
        q[i].arrival_s = start_s + (double)i * 0.1; // Python: start_time + i * 0.1
    }
    out->q = q;
    out->n = count;
    return HX_OK;
}
