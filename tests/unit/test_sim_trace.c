/*
 * test_sim_trace.c - Helix's trace generator (spec §7) against its check vectors.
 *
 * The spec's vectors (1293 queries, the first three, 688.49 tok/s, the offline lengths) are
 * recomputed here from data/traces. Vectors beyond the spec were produced once with Python 3.11
 * running a transcription of Helix's LengthSampler / ArrivalRateSampler / TraceGenerator over the
 * same CSV files (docs/traces.md shows the script; e.g.
 *   g = TraceGenerator(AzureConv, AzureConversation, 700, 0); t = g.generate_trace(20, 1800)
 *   len(t), t[:3], t[-1], sum(i+o for _,i,o in t), sum(a for a,_,_ in t), random.getrandbits(32)
 * ); times are compared bit for bit (Python repr round-trips doubles).
 */
#include "sim/trace.h"

#include <stdint.h>

#include "base/alloc.h"
#include "base/pyrand.h"
#include "test.h"

#define TRACE_DIR "data/traces"

static void load_data(const char *name, struct sim_trace_data *d)
{
    struct hx_diag diag = {0};
    ASSERT_OK_DIAG(sim_trace_data_load(TRACE_DIR, name, d, &diag), &diag);
}

/* Python's sum() over arrival times: left to right. */
static double sum_times(const struct sim_trace *t)
{
    double s = 0.0;
    for (size_t i = 0; i < t->n; i++) {
        s += t->q[i].arrival_s;
    }
    return s;
}

static void assert_sorted(const struct sim_trace *t)
{
    for (size_t i = 1; i < t->n; i++) {
        ASSERT(t->q[i - 1].arrival_s <= t->q[i].arrival_s);
    }
}

TEST(trace_load_tables_and_average)
{
    struct sim_trace_data conv;
    struct sim_trace_data code;
    load_data("azure_conv", &conv);
    load_data("azure_code", &code);
    /* spec §7: conv n = 16657, Σin = 12710598, Σout = 3871908, average length 995.528 */
    ASSERT_EQ(conv.lengths.n, 16657);
    ASSERT_EQ(conv.lengths.sum_input, 12710598);
    ASSERT_EQ(conv.lengths.sum_output, 3871908);
    ASSERT(sim_trace_lengths_average(&conv.lengths) == 995.5277661043406); // Python repr
    ASSERT_EQ(conv.arrivals.n, 1200);
    double total = 0.0;
    for (size_t i = 0; i < conv.arrivals.n; i++) {
        total += conv.arrivals.counts[i];
    }
    ASSERT(total == 16657.0); // one arrival per length record
    ASSERT_EQ(code.lengths.n, 7574);
    ASSERT(sim_trace_lengths_average(&code.lengths) == 1406.581858991286);
    ASSERT_EQ(code.arrivals.n, 1200);
    sim_trace_data_release(&conv);
    sim_trace_data_release(&code);
}

TEST(trace_online_conv_spec_vector)
{
    struct sim_trace_data conv;
    load_data("azure_conv", &conv);
    struct sim_trace t;
    struct hx_diag diag = {0};
    struct pyrand rng;
    ASSERT_OK_DIAG(sim_trace_generate_online(&conv, 700.0, 20.0, 1800, 0, &rng, &t, &diag), &diag);
    /* spec §7 check vector */
    ASSERT_EQ(t.n, 1293);
    ASSERT_DBL_NEAR(t.q[0].arrival_s, 21.2617, 5e-5);
    ASSERT_EQ(t.q[0].input_len, 405);
    ASSERT_EQ(t.q[0].output_len, 103);
    ASSERT_DBL_NEAR(t.q[1].arrival_s, 22.2739, 5e-5);
    ASSERT_EQ(t.q[1].input_len, 120);
    ASSERT_EQ(t.q[1].output_len, 12);
    ASSERT_DBL_NEAR(t.q[2].arrival_s, 25.4896, 5e-5);
    ASSERT_EQ(t.q[2].input_len, 1039);
    ASSERT_EQ(t.q[2].output_len, 401);
    double realized = (double)sim_trace_total_tokens(&t) / 1800.0;
    ASSERT_DBL_NEAR(realized, 688.49, 5e-3);
    /* bit-exact against Python (see the file comment) */
    ASSERT(t.q[0].arrival_s == 21.261714742492536);
    ASSERT(t.q[1].arrival_s == 22.273863208820906);
    ASSERT(t.q[2].arrival_s == 25.489558710976976);
    ASSERT(t.q[1292].arrival_s == 1818.6733301168465);
    ASSERT_EQ(t.q[1292].input_len, 406);
    ASSERT_EQ(t.q[1292].output_len, 114);
    ASSERT_EQ(sim_trace_total_tokens(&t), 1239285);
    ASSERT(realized == 688.4916666666667);
    ASSERT(sum_times(&t) == 1186432.1185917696);
    assert_sorted(&t);
    ASSERT(t.q[0].arrival_s >= 20.0 && t.q[t.n - 1].arrival_s < 1820.0);
    /* the shared stream is left where Python's global one is: random.getrandbits(32) */
    ASSERT_EQ(pyrand_next32(&rng), 3850371279U);
    sim_trace_release(&t);

    /* a private stream (rng NULL) gives the same trace */
    ASSERT_OK_DIAG(sim_trace_generate_online(&conv, 700.0, 20.0, 1800, 0, NULL, &t, &diag), &diag);
    ASSERT_EQ(t.n, 1293);
    ASSERT(sum_times(&t) == 1186432.1185917696);
    sim_trace_release(&t);
    sim_trace_data_release(&conv);
}

TEST(trace_online_code_and_other_seed)
{
    struct sim_trace_data code;
    struct sim_trace_data conv;
    load_data("azure_code", &code);
    load_data("azure_conv", &conv);
    struct sim_trace t;
    struct hx_diag diag = {0};
    struct pyrand rng;
    /* azure_code, 700 tok/s, seed 0, start 20, 1800 s (same code path) */
    ASSERT_OK_DIAG(sim_trace_generate_online(&code, 700.0, 20.0, 1800, 0, &rng, &t, &diag), &diag);
    ASSERT_EQ(t.n, 963);
    ASSERT(t.q[0].arrival_s == 26.77675025087889);
    ASSERT_EQ(t.q[0].input_len, 2294);
    ASSERT_EQ(t.q[0].output_len, 13);
    ASSERT(t.q[2].arrival_s == 26.909938178236782);
    ASSERT_EQ(t.q[2].input_len, 534);
    ASSERT(t.q[962].arrival_s == 1812.2958087425395);
    ASSERT_EQ(sim_trace_total_tokens(&t), 1348844);
    ASSERT((double)sim_trace_total_tokens(&t) / 1800.0 == 749.3577777777778);
    ASSERT(sum_times(&t) == 797558.3892997208);
    ASSERT_EQ(pyrand_next32(&rng), 845284136U);
    assert_sorted(&t);
    sim_trace_release(&t);
    /* azure_conv, 350 tok/s, seed 42, start 20.5, 600 s */
    ASSERT_OK_DIAG(sim_trace_generate_online(&conv, 350.0, 20.5, 600, 42, &rng, &t, &diag), &diag);
    ASSERT_EQ(t.n, 212);
    ASSERT(t.q[0].arrival_s == 20.575032265668);
    ASSERT_EQ(t.q[0].input_len, 197);
    ASSERT_EQ(t.q[0].output_len, 217);
    ASSERT(t.q[1].arrival_s == 21.325087955107357);
    ASSERT_EQ(t.q[1].input_len, 1300);
    ASSERT(t.q[211].arrival_s == 618.224068151118);
    ASSERT_EQ(sim_trace_total_tokens(&t), 200620);
    ASSERT(sum_times(&t) == 69168.05117726984);
    ASSERT_EQ(pyrand_next32(&rng), 2098425880U);
    sim_trace_release(&t);
    sim_trace_data_release(&code);
    sim_trace_data_release(&conv);
}

TEST(trace_generator_continues_stream_and_scales_rates)
{
    struct sim_trace_data conv;
    load_data("azure_conv", &conv);
    struct pyrand rng;
    struct sim_trace_gen g;
    struct hx_diag diag = {0};
    ASSERT_OK_DIAG(sim_trace_gen_init(&g, &conv, 700.0, 0, &rng, &diag), &diag);
    /* Python: 700 / avg; rates = (3 * rate / (16657/1200)) * count */
    ASSERT(g.target_req_s == 0.7031446272354733);
    ASSERT_EQ(g.arrivals.n, 1200);
    ASSERT(g.arrivals.rates[0] == 0.15196738056358913);
    ASSERT(g.arrivals.rates[3] == 1.063771663945124);
    double mean = 0.0;
    for (size_t i = 0; i < g.arrivals.n; i++) {
        mean += g.arrivals.rates[i];
    }
    mean /= (double)g.arrivals.n;
    ASSERT_DBL_NEAR(mean, 3.0 * g.target_req_s, 1e-12); // rescaled to the target per 3 s
    struct sim_trace a;
    struct sim_trace b;
    ASSERT_OK_DIAG(sim_trace_gen_generate(&g, 20.0, 1800, &a, &diag), &diag);
    ASSERT_EQ(a.n, 1293);
    /* a second generate_trace(1820, 30) continues the stream (Python: 22 queries, first
     * (1820.1529622535152, 1020, 388), 24023 tokens) */
    ASSERT_OK_DIAG(sim_trace_gen_generate(&g, 1820.0, 30, &b, &diag), &diag);
    ASSERT_EQ(b.n, 22);
    ASSERT(b.q[0].arrival_s == 1820.1529622535152);
    ASSERT_EQ(b.q[0].input_len, 1020);
    ASSERT_EQ(b.q[0].output_len, 388);
    ASSERT_EQ(sim_trace_total_tokens(&b), 24023);
    sim_trace_release(&a);
    sim_trace_release(&b);
    /* bad durations */
    ASSERT_ERR(sim_trace_gen_generate(&g, 20.0, 1801, &a, &diag), HX_EINVAL);
    ASSERT_CONTAINS(diag.msg, "multiple of 3");
    hx_diag_clear(&diag);
    ASSERT_ERR(sim_trace_gen_generate(&g, 20.0, -3, &a, &diag), HX_EINVAL);
    ASSERT(a.q == NULL && a.n == 0);
    /* zero duration and zero throughput give empty traces (Helix would assert) */
    ASSERT_OK(sim_trace_gen_generate(&g, 20.0, 0, &a, NULL));
    ASSERT_EQ(a.n, 0);
    sim_trace_gen_release(&g);
    ASSERT_OK(sim_trace_generate_online(&conv, 0.0, 20.0, 300, 0, NULL, &a, NULL));
    ASSERT_EQ(a.n, 0);
    hx_diag_clear(&diag);
    ASSERT_ERR(sim_trace_generate_online(&conv, -1.0, 20.0, 300, 0, NULL, &a, &diag), HX_EINVAL);
    ASSERT_ERR(sim_trace_generate_online(&conv, NAN, 20.0, 300, 0, NULL, &a, NULL), HX_EINVAL);
    sim_trace_data_release(&conv);
}

TEST(trace_offline_feeder_lengths)
{
    struct sim_trace_data conv;
    load_data("azure_conv", &conv);
    struct pyrand rng;
    struct sim_length_sampler s;
    sim_length_sampler_init(&s, &conv.lengths, 0, &rng);
    ASSERT(s.avg_len == 995.5277661043406);
    struct sim_trace t;
    ASSERT_OK(sim_trace_offline_initial(&s, 20.0, 5, &t, NULL));
    /* spec §6.7 / §7 offline check vector */
    static const int32_t want[5][2] = {{194, 96}, {420, 124}, {1136, 375}, {405, 103}, {120, 12}};
    ASSERT_EQ(t.n, 5);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(t.q[i].input_len, want[i][0]);
        ASSERT_EQ(t.q[i].output_len, want[i][1]);
        ASSERT(t.q[i].arrival_s == 20.0 + (double)i * 0.1);
    }
    /* then: random.getrandbits(32) -> 1739178872 (the stream continues for the simulator) */
    ASSERT_EQ(pyrand_next32(&rng), 1739178872U);
    sim_trace_release(&t);
    /* the sampler continues: the 6th pair equals the 6th draw after a fresh seed */
    struct pyrand ref;
    pyrand_seed(&ref, 0);
    for (int i = 0; i < 6; i++) {
        pyrand_randint(&ref, 0, 16656);
    }
    int64_t idx = pyrand_randint(&ref, 0, 16656);
    sim_length_sampler_init(&s, &conv.lengths, 0, &rng);
    int32_t in = 0;
    int32_t out = 0;
    for (int i = 0; i < 7; i++) {
        sim_length_sampler_sample(&s, &in, &out);
    }
    ASSERT_EQ(in, conv.lengths.input[idx]);
    ASSERT_EQ(out, conv.lengths.output[idx]);
    ASSERT_OK(sim_trace_offline_initial(&s, 0.0, 0, &t, NULL));
    ASSERT(t.q == NULL && t.n == 0);
    sim_trace_data_release(&conv);
}

static void expect_parse_error(int lengths, const char *text, const char *want)
{
    struct hx_diag diag = {0};
    int rc;
    if (lengths) {
        struct sim_trace_lengths l;
        rc = sim_trace_lengths_parse(text, strlen(text), "x.csv", &l, &diag);
        ASSERT(l.input == NULL && l.n == 0);
    } else {
        struct sim_trace_arrivals a;
        rc = sim_trace_arrivals_parse(text, strlen(text), "x.csv", &a, &diag);
        ASSERT(a.counts == NULL && a.n == 0);
    }
    ASSERT_MSG(rc == HX_EPARSE, "text '%s' gave %d", text, rc);
    ASSERT_CONTAINS(diag.msg, want);
}

TEST(trace_csv_parse_errors_name_file_line)
{
    expect_parse_error(1, "# header\n1,2\n3;4\n", "x.csv:3:");
    expect_parse_error(1, "1,2\n\n  # indented comment\n5,\n", "x.csv:4:");
    expect_parse_error(1, "input,output\n1,2\n", "x.csv:1:");
    expect_parse_error(1, "1,2,3\n", "x.csv:1:");
    expect_parse_error(1, "0,5\n", "x.csv:1:");
    expect_parse_error(1, "-1,5\n", "x.csv:1:");
    expect_parse_error(1, "3000000000,5\n", "x.csv:1:");
    expect_parse_error(1, "1.5,5\n", "x.csv:1:");
    expect_parse_error(1, "# only comments\n\n", "no 'input,output' records");
    expect_parse_error(1, "", "no 'input,output' records");
    expect_parse_error(0, "1\n2\nthree\n", "x.csv:3:");
    expect_parse_error(0, "1\n-2\n", "x.csv:2:");
    expect_parse_error(0, "nan\n", "x.csv:1:");
    expect_parse_error(0, "inf\n", "x.csv:1:");
    expect_parse_error(0, "0x10\n", "x.csv:1:");
    expect_parse_error(0, "1e999\n", "x.csv:1:");
    expect_parse_error(0, "1 2\n", "x.csv:1:");
    expect_parse_error(0, "0\n0\n", "no buckets with arrivals");
    expect_parse_error(
        0, "1234567890123456789012345678901234567890123456789012345678901234567890\n", "x.csv:1:");

    /* accepted: CRLF, blanks around fields, no final newline, fractional counts */
    struct sim_trace_lengths l;
    struct hx_diag diag = {0};
    const char *ok = "# c\r\n 10 , 20 \r\n\r\n3,4";
    ASSERT_OK_DIAG(sim_trace_lengths_parse(ok, strlen(ok), "ok.csv", &l, &diag), &diag);
    ASSERT_EQ(l.n, 2);
    ASSERT_EQ(l.input[0], 10);
    ASSERT_EQ(l.output[0], 20);
    ASSERT_EQ(l.input[1], 3);
    ASSERT_EQ(l.output[1], 4);
    ASSERT(sim_trace_lengths_average(&l) == 13.0 / 2.0 + 24.0 / 2.0);
    sim_trace_lengths_release(&l);
    sim_trace_lengths_release(&l); // idempotent
    sim_trace_lengths_release(NULL);
    struct sim_trace_arrivals a;
    const char *ok2 = "0\n2.5\n 7 \n";
    ASSERT_OK_DIAG(sim_trace_arrivals_parse(ok2, strlen(ok2), "ok.csv", &a, &diag), &diag);
    ASSERT_EQ(a.n, 3);
    ASSERT(a.counts[1] == 2.5);
    sim_trace_arrivals_release(&a);
}

TEST(trace_load_errors)
{
    struct hx_diag diag = {0};
    struct sim_trace_lengths l;
    ASSERT_ERR(sim_trace_lengths_load("data/traces/no_such.csv", &l, &diag), HX_EIO);
    ASSERT_CONTAINS(diag.msg, "data/traces/no_such.csv");
    hx_diag_clear(&diag);
    struct sim_trace_data d;
    ASSERT_ERR(sim_trace_data_load(TRACE_DIR, "alpaca", &d, &diag), HX_EIO);
    ASSERT_CONTAINS(diag.msg, "alpaca_lengths.csv");
    ASSERT(d.lengths.input == NULL && d.arrivals.counts == NULL);
    hx_diag_clear(&diag);
    /* a length file given as an arrival file: line 2 "374,44" is not a number */
    struct sim_trace_arrivals a;
    ASSERT_ERR(sim_trace_arrivals_load(TRACE_DIR "/azure_conv_lengths.csv", &a, &diag), HX_EPARSE);
    ASSERT_CONTAINS(diag.msg, "azure_conv_lengths.csv:2:");
    hx_diag_clear(&diag);
    /* out of memory while parsing is reported, not fatal */
    hx_alloc_fail_nth(1);
    ASSERT_ERR(sim_trace_lengths_parse("1,2\n", 4, "m.csv", &l, &diag), HX_ENOMEM);
    hx_alloc_fail_nth(0);
}

TEST(trace_arrival_sampler_rejects_bad_input)
{
    struct pyrand rng;
    struct sim_arrival_sampler s;
    struct hx_diag diag = {0};
    double zeros[3] = {0, 0, 0};
    struct sim_trace_arrivals a = {zeros, 3};
    ASSERT_ERR(sim_arrival_sampler_init(&s, &a, 1.0, 0, &rng, &diag), HX_EINVAL);
    ASSERT(s.rates == NULL);
    double one[1] = {4};
    a.counts = one;
    a.n = 1;
    ASSERT_ERR(sim_arrival_sampler_init(&s, &a, -1.0, 0, &rng, NULL), HX_EINVAL);
    ASSERT_OK(sim_arrival_sampler_init(&s, &a, 2.0, 0, &rng, NULL));
    ASSERT(sim_arrival_sampler_sample(&s) == 6.0); // 3 s * 2 req/s
    sim_arrival_sampler_release(&s);
    sim_arrival_sampler_release(&s);
}
