/*
 * trace.h - request traces as Helix generates them (spec §6.7, §7; docs/traces.md).
 *
 * Two inputs: a length table (input,output token counts of real requests) and an arrival
 * histogram (requests per 3-s bucket). Helix's LengthSampler, ArrivalRateSampler and
 * TraceGenerator are restated here draw for draw: each re-seeds Python's *global* RNG, so our
 * samplers borrow one caller-owned struct pyrand that plays that global stream (the simulator
 * keeps drawing from it afterwards, as Helix's random schedulers do). Everything here is pure
 * except the two *_load functions, which read a file and report errors as "path:line: ...".
 * Times are seconds as doubles, exactly as Python computes them (the simulator converts).
 */
#ifndef HX_SIM_TRACE_H
#define HX_SIM_TRACE_H

#include <stddef.h>
#include <stdint.h>

struct hx_diag;
struct pyrand;

/* Seconds per arrival-histogram bucket (Helix: 1200 buckets of 3 s = one hour). */
#define SIM_TRACE_BUCKET_S 3

/* ---- data tables ------------------------------------------------------------------------- */

/* A length table: record i is (input[i], output[i]) tokens; both arrays hold n entries. */
struct sim_trace_lengths {
    int32_t *input;
    int32_t *output;
    size_t n;
    int64_t sum_input; // Σ input, Σ output (exact)
    int64_t sum_output;
};

/* An arrival histogram: counts[b] requests arrived in 3-s bucket b. */
struct sim_trace_arrivals {
    double *counts;
    size_t n;
};

/*
 * Parse a length table from text[0..len) (`input,output` per line; blank lines and lines
 * starting with '#' are skipped; both values integers in [1, 2**31-1]). name is used in
 * messages ("name:line: ..."). On success *out owns its arrays (release with
 * sim_trace_lengths_release); on failure *out is zeroed. Returns HX_OK, HX_EPARSE (bad line or
 * no records; diag names name:line) or HX_ENOMEM.
 */
int sim_trace_lengths_parse(const char *text, size_t len, const char *name,
                            struct sim_trace_lengths *out, struct hx_diag *diag);
/* Read the file at path and parse it as above; HX_EIO if it cannot be read. */
int sim_trace_lengths_load(const char *path, struct sim_trace_lengths *out, struct hx_diag *diag);
/* Free the arrays and zero *l (NULL and zeroed structs are fine). */
void sim_trace_lengths_release(struct sim_trace_lengths *l);
/*
 * LengthSampler.get_average_length(): Σin/n + Σout/n (two divisions, as Python does).
 * 995.5277661043406 for azure_conv. 0 for an empty table.
 */
double sim_trace_lengths_average(const struct sim_trace_lengths *l);

/*
 * Parse an arrival histogram: one finite number >= 0 per line (requests in that 3-s bucket),
 * '#' comments and blank lines skipped; at least one bucket and a positive total are required.
 * Same ownership and codes as sim_trace_lengths_parse. Helix asserts exactly 1200 buckets; we
 * accept any positive count.
 */
int sim_trace_arrivals_parse(const char *text, size_t len, const char *name,
                             struct sim_trace_arrivals *out, struct hx_diag *diag);
int sim_trace_arrivals_load(const char *path, struct sim_trace_arrivals *out, struct hx_diag *diag);
void sim_trace_arrivals_release(struct sim_trace_arrivals *a);

/* Both tables of one dataset, e.g. azure_conv or azure_code. */
struct sim_trace_data {
    struct sim_trace_lengths lengths;
    struct sim_trace_arrivals arrivals;
};

/*
 * Load <dir>/<name>_lengths.csv and <dir>/<name>_arrivals.csv (e.g. dir "data/traces", name
 * "azure_conv" or "azure_code"). On failure nothing is kept and *out is zeroed.
 */
int sim_trace_data_load(const char *dir, const char *name, struct sim_trace_data *out,
                        struct hx_diag *diag);
void sim_trace_data_release(struct sim_trace_data *d);

/* ---- samplers (each borrows the caller's RNG; the tables must outlive the sampler) -------- */

/* Helix's LengthSampler. */
struct sim_length_sampler {
    const struct sim_trace_lengths *data; // borrowed
    struct pyrand *rng;                   // borrowed: the "global" stream
    double avg_len;                       // sim_trace_lengths_average(data)
};

/*
 * LengthSampler(dataset, seed): re-seeds rng with seed (random.seed(seed)). data must have at
 * least one record (the parsers guarantee it).
 */
void sim_length_sampler_init(struct sim_length_sampler *s, const struct sim_trace_lengths *data,
                             int64_t seed, struct pyrand *rng);
/* sample_length(): record randint(0, n-1); one draw from s->rng. */
void sim_length_sampler_sample(struct sim_length_sampler *s, int32_t *input_len,
                               int32_t *output_len);

/* Helix's ArrivalRateSampler: the histogram rescaled to a target request rate. */
struct sim_arrival_sampler {
    double *rates; // owned: rescale * counts[b], requests per 3-s bucket
    size_t n;
    struct pyrand *rng; // borrowed
};

/*
 * ArrivalRateSampler(source, target_req_s, seed): re-seeds rng; rates[b] = rescale * counts[b]
 * with rescale = 3 * target_req_s / (Σcounts / n). Returns HX_OK, HX_EINVAL (target_req_s
 * negative or not finite; empty or all-zero histogram) or HX_ENOMEM; on failure *s is zeroed and
 * rng is untouched.
 */
int sim_arrival_sampler_init(struct sim_arrival_sampler *s, const struct sim_trace_arrivals *data,
                             double target_req_s, int64_t seed, struct pyrand *rng,
                             struct hx_diag *diag);
/* sample_arrival_rate(): rates[randint(0, n-1)]; i.i.d. resampling of the histogram. */
double sim_arrival_sampler_sample(struct sim_arrival_sampler *s);
void sim_arrival_sampler_release(struct sim_arrival_sampler *s);

/* ---- traces ------------------------------------------------------------------------------ */

/* One query of a trace. */
struct sim_trace_query {
    double arrival_s; // absolute simulator time, seconds
    int32_t input_len;
    int32_t output_len;
};

/* A trace: q[0..n) in arrival order (non-decreasing arrival_s). Owned by whoever filled it. */
struct sim_trace {
    struct sim_trace_query *q;
    size_t n;
};

void sim_trace_release(struct sim_trace *t);
/* Σ (input_len + output_len) over the trace. */
int64_t sim_trace_total_tokens(const struct sim_trace *t);

/* Helix's TraceGenerator. */
struct sim_trace_gen {
    struct pyrand *rng; // borrowed
    struct sim_length_sampler lengths;
    struct sim_arrival_sampler arrivals;
    double target_tok_s;
    double target_req_s; // target_tok_s / average length
};

/*
 * TraceGenerator(arrivals, lengths, target_tok_s, seed): random.seed(seed); LengthSampler(seed)
 * (re-seeds); target_req_s = target_tok_s / average length; ArrivalRateSampler(target_req_s,
 * seed) (re-seeds). The tables and rng are borrowed and must outlive g. Returns HX_OK,
 * HX_EINVAL (target_tok_s negative/not finite, empty tables) or HX_ENOMEM.
 */
int sim_trace_gen_init(struct sim_trace_gen *g, const struct sim_trace_data *data,
                       double target_tok_s, int64_t seed, struct pyrand *rng, struct hx_diag *diag);
void sim_trace_gen_release(struct sim_trace_gen *g);

/*
 * generate_trace(start_s, duration_s): duration_s must be a non-negative multiple of 3.
 * carry = 0; for each 3-s bucket b: x = sampled rate; count = round_half_even(x + carry);
 * carry = (x + carry) - count; draw count times start_s + 3b + 3*random(), sort them; then one
 * length pair per time. Draws continue the stream (a second call continues where the first
 * stopped, as in Python). *out is filled (owned by the caller) or zeroed on failure.
 * Returns HX_OK, HX_EINVAL (bad duration) or HX_ENOMEM. An empty trace is returned as n = 0
 * (Helix asserts instead).
 */
int sim_trace_gen_generate(struct sim_trace_gen *g, double start_s, int64_t duration_s,
                           struct sim_trace *out, struct hx_diag *diag);

/*
 * The online feeder's trace in one call: TraceGenerator(data, target_tok_s, seed) then
 * generate_trace(start_s, duration_s). rng may be NULL (a private stream is used); otherwise it
 * plays Python's global stream and is left where Helix's would be after generation.
 * Check vector: azure_conv, 700 tok/s, seed 0, start 20, 1800 s -> 1293 queries, first
 * (21.2617, 405, 103); total tokens / 1800 = 688.49.
 */
int sim_trace_generate_online(const struct sim_trace_data *data, double target_tok_s,
                              double start_s, int64_t duration_s, int64_t seed, struct pyrand *rng,
                              struct sim_trace *out, struct hx_diag *diag);

/*
 * The offline feeder's initial queries: count draws from s (a LengthSampler; Helix uses
 * azure_conv lengths, seed 0), query i at start_s + i * 0.1. Later feeder queries come from
 * sim_length_sampler_sample on the same sampler. Returns HX_OK or HX_ENOMEM (*out zeroed).
 * Check vector (seed 0): (194, 96), (420, 124), (1136, 375), (405, 103), (120, 12).
 */
int sim_trace_offline_initial(struct sim_length_sampler *s, double start_s, size_t count,
                              struct sim_trace *out, struct hx_diag *diag);

#endif
