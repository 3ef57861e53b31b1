/*
 * test_sim_run.c - the discrete-event simulator on Helix's single24 70B placements: invariants
 * (every request runs every layer once, in order, before the sink; KV never above capacity;
 * no link or NIC oversubscribed) for all four schedulers in both modes and both fidelities,
 * bit-identical seeded runs, Helix's percentile rule, layout derivation, config errors, and one
 * fidelity check against Helix's published simulation (single24 offline, 252.1 tok/s, §9.3).
 */
#include <string.h>

#include "base/alloc.h"
#include "core/core.h"
#include "sim/sim.h"
#include "sim/trace.h"
#include "test.h"

struct fixture {
    struct model_profile *m;
    struct model_throughput *tp;
    struct sim_cluster *sc;
    struct layout *l;
    struct sim_trace_data td;
};

static void fx_load(struct fixture *f, const char *method)
{
    char sc_path[256];
    char l_path[256];
    snprintf(sc_path, sizeof(sc_path), "data/layouts/single24_70b/%s_simulator_cluster.ini",
             method);
    snprintf(l_path, sizeof(l_path), "data/layouts/single24_70b/%s_sol.ini", method);
    struct hx_diag d = {0};
    memset(f, 0, sizeof(*f));
    ASSERT_OK_DIAG(model_profile_read_file("data/models/llama2_70b.ini", &f->m, &d), &d);
    ASSERT_OK_DIAG(sim_cluster_read_file(sc_path, &f->sc, &d), &d);
    ASSERT_OK_DIAG(layout_read_file(l_path, 24, &f->l, &d), &d);
    int counts[16] = {0};
    for (int i = 0; i < f->sc->n_nodes; i++) {
        int g = model_gpu_index(f->m, f->sc->nodes[i].machine_type);
        ASSERT(g >= 0 && g < 16);
        counts[g]++;
    }
    ASSERT_OK_DIAG(model_throughput_new(f->m, counts, &f->tp, &d), &d);
    ASSERT_OK_DIAG(sim_trace_data_load("data/traces", "azure_conv", &f->td, &d), &d);
}

static void fx_free(struct fixture *f)
{
    sim_trace_data_release(&f->td);
    model_throughput_free(f->tp);
    layout_free(f->l);
    sim_cluster_free(f->sc);
    model_profile_free(f->m);
}

static void fx_config(struct fixture *f, struct sim_config *c, enum sim_mode mode,
                      enum sim_policy pol)
{
    sim_config_defaults(c, mode, pol);
    c->model = f->m;
    c->tp = f->tp;
    c->cluster = f->sc;
    c->layout = f->l;
    c->trace_data = &f->td;
}

static void assert_invariants(const struct sim_result *r)
{
    ASSERT_EQ(r->bad_layer_order, 0);
    ASSERT_EQ(r->kv_overflow, 0);
    ASSERT_EQ(r->bw_oversubscribed, 0);
    ASSERT(r->queries_finished > 0);
    ASSERT(r->n_decode > 0);
    ASSERT(r->n_prompt > 0);
    ASSERT(r->max_kv_used_permille <= 1000);
}

TEST(sim_percentiles_helix_rule)
{
    double v[100];
    for (int i = 0; i < 100; i++) {
        v[i] = (double)((i * 37) % 100 + 1); /* 1..100 permuted */
    }
    struct sim_latency l;
    sim_latency_stats(v, 100, &l);
    ASSERT_EQ(l.n, 100);
    ASSERT_DBL_NEAR(l.mean, 50.5, 1e-12);
    ASSERT_DBL_NEAR(l.p50, 51, 0);  /* sorted[int(100 * 0.5)] */
    ASSERT_DBL_NEAR(l.p95, 96, 0);  /* sorted[95] */
    ASSERT_DBL_NEAR(l.p99, 100, 0); /* sorted[99] */
    for (int i = 1; i < 100; i++) {
        ASSERT(v[i - 1] <= v[i]);
    }
    double w[3] = {3, 1, 2};
    sim_latency_stats(w, 3, &l);
    ASSERT_DBL_NEAR(l.p50, 2, 0); /* int(1.5) = 1 */
    ASSERT_DBL_NEAR(l.p99, 3, 0); /* int(2.97) = 2 */
}

/* Short runs of every scheduler, both modes, both fidelities: all invariants hold. */
TEST(sim_invariants_all_schedulers)
{
    static const struct {
        const char *layout;
        enum sim_policy pol;
        int initial;
        double rate;
    } runs[] = {
        {"ilp", SIM_POLICY_MAXFLOW, 20, 700},    {"swarm", SIM_POLICY_SWARM, 120, 350},
        {"ilp", SIM_POLICY_RANDOM, 100, 300},    {"ilp", SIM_POLICY_SHORTEST_QUEUE, 100, 300},
        {"petals", SIM_POLICY_MAXFLOW, 20, 500},
    };
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        struct fixture f;
        fx_load(&f, runs[i].layout);
        for (int fid = 0; fid < 2; fid++) {
            for (int mode = 0; mode < 2; mode++) {
                struct sim_config c;
                fx_config(&f, &c, mode ? SIM_MODE_OFFLINE : SIM_MODE_ONLINE, runs[i].pol);
                sim_quirks_set(&c.quirks, fid ? SIM_FIDELITY_DEFAULT : SIM_FIDELITY_HELIX);
                c.initial_queries = runs[i].initial;
                c.warmup_s = 10;
                c.measure_s = 30;
                c.rate_tok_s = runs[i].rate;
                c.duration_s = 30;
                struct sim_result r;
                struct hx_diag d = {0};
                ASSERT_OK_DIAG(sim_run(&c, &r, &d), &d);
                assert_invariants(&r);
                if (mode == 0) {
                    /* online runs to completion: every query of the trace finished */
                    ASSERT_EQ(r.queries_finished, r.queries_issued);
                }
                sim_result_release(&r);
            }
        }
        fx_free(&f);
    }
}

/* The checkers can fail: Swarm has no KV protection; overload it and Helix would assert. */
TEST(sim_kv_checker_fires)
{
    struct fixture f;
    fx_load(&f, "swarm");
    struct sim_config c;
    for (int i = 0; i < f.sc->n_nodes; i++) {
        f.sc->nodes[i].kv_cache_capacity /= 20; /* a cluster with little KV memory */
    }
    fx_config(&f, &c, SIM_MODE_OFFLINE, SIM_POLICY_SWARM);
    c.initial_queries = 180;
    c.warmup_s = 5;
    c.measure_s = 40;
    struct sim_result r;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(sim_run(&c, &r, &d), &d);
    ASSERT(r.kv_overflow > 0);
    ASSERT(r.max_kv_used_permille > 1000);
    ASSERT_EQ(r.bad_layer_order, 0);
    sim_result_release(&r);
    fx_free(&f);
}

static void run_twice_identical(enum sim_mode mode, enum sim_policy pol)
{
    struct fixture f;
    fx_load(&f, "ilp");
    struct sim_result r[2];
    for (int k = 0; k < 2; k++) {
        struct sim_config c;
        fx_config(&f, &c, mode, pol);
        c.seed = 3;
        c.rate_tok_s = 400;
        c.duration_s = 60;
        c.initial_queries = 80;
        c.warmup_s = 10;
        c.measure_s = 40;
        struct hx_diag d = {0};
        ASSERT_OK_DIAG(sim_run(&c, &r[k], &d), &d);
    }
    ASSERT_EQ(r[0].events, r[1].events);
    ASSERT_EQ(r[0].n_decode, r[1].n_decode);
    ASSERT_EQ(r[0].n_prompt, r[1].n_prompt);
    ASSERT(r[0].n_decode > 0);
    ASSERT(memcmp(r[0].decode_samples, r[1].decode_samples,
                  r[0].n_decode * sizeof(struct sim_sample)) == 0);
    ASSERT(memcmp(r[0].prompt_samples, r[1].prompt_samples,
                  r[0].n_prompt * sizeof(struct sim_sample)) == 0);
    ASSERT(memcmp(&r[0].decode, &r[1].decode, sizeof(r[0].decode)) == 0);
    sim_result_release(&r[0]);
    sim_result_release(&r[1]);
    fx_free(&f);
}

TEST(sim_seeded_runs_bit_identical)
{
    run_twice_identical(SIM_MODE_ONLINE, SIM_POLICY_RANDOM);
    run_twice_identical(SIM_MODE_OFFLINE, SIM_POLICY_MAXFLOW);
}

/* A different seed gives a different trace, hence different samples. */
TEST(sim_seed_matters)
{
    struct fixture f;
    fx_load(&f, "ilp");
    size_t n[2];
    for (int k = 0; k < 2; k++) {
        struct sim_config c;
        fx_config(&f, &c, SIM_MODE_ONLINE, SIM_POLICY_MAXFLOW);
        c.seed = k;
        c.rate_tok_s = 400;
        c.duration_s = 60;
        struct sim_result r;
        struct hx_diag d = {0};
        ASSERT_OK_DIAG(sim_run(&c, &r, &d), &d);
        n[k] = r.n_decode;
        sim_result_release(&r);
    }
    ASSERT_NE(n[0], n[1]);
    fx_free(&f);
}

TEST(sim_layout_derived_from_cluster)
{
    struct fixture f;
    fx_load(&f, "ilp");
    struct layout *l = NULL;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(sim_layout_derive(f.m, f.sc, &l, &d), &d);
    ASSERT_EQ(l->n_nodes, 24);
    for (int i = 0; i < 24; i++) {
        ASSERT_EQ(l->nodes[i].start, f.l->nodes[i].start);
        ASSERT_EQ(l->nodes[i].n_layers, f.l->nodes[i].n_layers);
    }
    layout_free(l);
    fx_free(&f);
}

TEST(sim_config_errors)
{
    struct fixture f;
    fx_load(&f, "ilp");
    struct sim_config c;
    fx_config(&f, &c, SIM_MODE_ONLINE, SIM_POLICY_MAXFLOW);
    struct sim_result r;
    struct hx_diag d = {0};
    ASSERT_ERR(sim_run(&c, &r, &d), HX_EINVAL); /* no rate */
    c.rate_tok_s = 100;
    c.duration_s = 100; /* not a multiple of 3 */
    ASSERT_ERR(sim_run(&c, &r, &d), HX_EINVAL);
    fx_config(&f, &c, SIM_MODE_OFFLINE, SIM_POLICY_MAXFLOW);
    ASSERT_ERR(sim_run(&c, &r, &d), HX_EINVAL); /* no initial queries */
    /* a layout that does not match the cluster's links cannot be routed */
    struct layout *bad = layout_clone(f.l);
    bad->nodes[0].n_layers = 0;
    fx_config(&f, &c, SIM_MODE_OFFLINE, SIM_POLICY_MAXFLOW);
    c.layout = bad;
    c.initial_queries = 5;
    hx_diag_clear(&d);
    ASSERT(sim_run(&c, &r, &d) != HX_OK);
    ASSERT(d.msg[0] != 0);
    layout_free(bad);
    fx_free(&f);
}

/* Fidelity: Helix's single24 70B offline run with its ILP layout gives 252.1 decode tok/s. */
TEST(sim_fidelity_single24_offline)
{
    struct fixture f;
    fx_load(&f, "ilp");
    struct sim_config c;
    fx_config(&f, &c, SIM_MODE_OFFLINE, SIM_POLICY_MAXFLOW);
    c.initial_queries = 20;
    struct sim_result r;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(sim_run(&c, &r, &d), &d);
    ASSERT_DBL_NEAR(r.start_s, 20.0, 0); /* ceil(12 * 1.53e9 / 1e9) + 1 */
    ASSERT_DBL_NEAR(r.flow_value, 1289.5558, 1e-3);
    ASSERT(r.decode_throughput > 252.1 * 0.95 && r.decode_throughput < 252.1 * 1.05);
    /* Helix's example README for the same run: prompt 3.094 s, decode 1.457 s */
    ASSERT(r.decode.mean > 1.457 * 0.9 && r.decode.mean < 1.457 * 1.1);
    assert_invariants(&r);
    sim_result_release(&r);
    fx_free(&f);
}

/*
 * Timing model, by hand: a 2-layer model on two A100 nodes in parallel, each holding both
 * layers, behind a coordinator whose outbound NIC (1 MB/s) is shared by the two source links.
 * The flow splits evenly, so each source hop gets half the NIC (5e5 B/s, §5.1 step 5); sink
 * hops get min(link 1e9, node NIC, half the sink NIC 1e10). The first offline query (194, 96)
 * runs alone: its prompt and first decode latencies follow §6.2-§6.3 exactly.
 */
static const char TINY_MODEL[] =
    "[model]\nname = tiny\nnum_layers = 2\nlayer_bytes = 1.53e9\ntoken_bytes = 2\n"
    "activation_bytes = 16384\nhidden_size = 8192\nnum_heads = 64\nnum_kv_heads = 8\n"
    "ffn_size = 28672\n\n[throughput_model]\ntypical_layers = A100 2\n"
    "typical_layers_large = A100 2\ninitial_perf = A100 80\navg_input_len = 750\n"
    "avg_output_len = 240\nmax_input_len = 2048\nkv_block_size = 16\n"
    "decode_per_token_max_context = 1000\nkv_cache_hwm = 0.3\niterations = 10\n\n"
    "[gpu A100]\nmax_layers = 2\nkv_blocks = 498326 236107\nprompt_max_requests = 3 3\n"
    "decode_max_tokens = 480 480\n"
    "prompt_profile = profiles/llama2_70b/a100/prompt_bs2time.csv\n"
    "decode_profile = profiles/llama2_70b/a100/decode_bs2time.csv\n";

static const char TINY_CLUSTER[] =
    "[Coordinator]\ninbound_nic_speed=10000.0 * mbps\noutbound_nic_speed=1.0 * mbps\n\n"
    "[MachineTypes]\ntypes=['A100']\n\n[ComputeNodes]\nnames=['compute_node_2', "
    "'compute_node_3']\n\n"
    "[compute_node_2]\nvram_size=40000.0 * MB\ninbound_nic_speed=10000.0 * mbps\n"
    "outbound_nic_speed=10000.0 * mbps\ndisk_speed=1000.0 * mbps\nmachine_type=\"A100\"\n"
    "kv_cache_capacity=7555424\nactivation_backup_capacity=0\n\n"
    "[compute_node_3]\nvram_size=40000.0 * MB\ninbound_nic_speed=10000.0 * mbps\n"
    "outbound_nic_speed=10000.0 * mbps\ndisk_speed=1000.0 * mbps\nmachine_type=\"A100\"\n"
    "kv_cache_capacity=7555424\nactivation_backup_capacity=0\n\n"
    "[Links]\nnames=['link_source_compute_node_2', 'link_source_compute_node_3', "
    "'link_compute_node_2_sink', 'link_compute_node_3_sink']\n\n"
    "[link_source_compute_node_2]\nin=source\nout=compute_node_2\nlatency=1.0 * MilliSec\n"
    "bandwidth=1000.0 * mbps\n\n"
    "[link_source_compute_node_3]\nin=source\nout=compute_node_3\nlatency=1.0 * MilliSec\n"
    "bandwidth=1000.0 * mbps\n\n"
    "[link_compute_node_2_sink]\nin=compute_node_2\nout=sink\nlatency=1.0 * MilliSec\n"
    "bandwidth=1000.0 * mbps\n\n"
    "[link_compute_node_3_sink]\nin=compute_node_3\nout=sink\nlatency=1.0 * MilliSec\n"
    "bandwidth=1000.0 * mbps\n";

TEST(sim_timing_by_hand)
{
    struct hx_diag d = {0};
    struct model_profile *m = NULL;
    struct sim_cluster *sc = NULL;
    struct layout *l = NULL;
    struct model_throughput *tp = NULL;
    struct sim_trace_data td = {0};
    ASSERT_OK_DIAG(model_profile_parse_string(TINY_MODEL, "tiny.ini", "data/models", &m, &d), &d);
    ASSERT_OK_DIAG(sim_cluster_parse_string(TINY_CLUSTER, "tiny_sc.ini", &sc, &d), &d);
    ASSERT_OK_DIAG(sim_layout_derive(m, sc, &l, &d), &d);
    ASSERT_EQ(l->nodes[0].n_layers, 2);
    int counts[1] = {2};
    ASSERT_OK_DIAG(model_throughput_new(m, counts, &tp, &d), &d);
    ASSERT_OK_DIAG(sim_trace_data_load("data/traces", "azure_conv", &td, &d), &d);
    const struct model_gpu *g = &m->gpus[0];
    for (int fid = 0; fid < 2; fid++) {
        struct sim_config c;
        sim_config_defaults(&c, SIM_MODE_OFFLINE, SIM_POLICY_MAXFLOW);
        sim_quirks_set(&c.quirks, fid ? SIM_FIDELITY_DEFAULT : SIM_FIDELITY_HELIX);
        c.model = m;
        c.tp = tp;
        c.cluster = sc;
        c.layout = l;
        c.trace_data = &td;
        c.initial_queries = 2;
        c.warmup_s = 0;
        c.measure_s = 3;
        struct sim_result r;
        ASSERT_OK_DIAG(sim_run(&c, &r, &d), &d);
        assert_invariants(&r);
        ASSERT_DBL_NEAR(r.start_s, 5.0, 0); /* ceil(2 * 1.53) + 1 */
        double pt = 0;
        double dt = 0;
        ASSERT_OK(model_prompt_time(g, 194, &pt));
        ASSERT_OK(model_decode_time(g, 1, &dt));
        if (!fid) {
            dt *= 2; /* §11.4: one decode token in the batch */
        }
        /* the first query's input comes from the source: Helix charges activation bytes */
        double per_tok_in = fid ? 2.0 : 16384.0;
        double up = 5e5;   /* half of the 1 MB/s coordinator NIC */
        double down = 1e9; /* sink hop: link-bound */
        double overhead_p = 194 * per_tok_in / 4e9 + 194 * per_tok_in / 5e9;
        double want_p = 388 / up + 0.001 + (pt + overhead_p) + pt + 388 / down + 0.001;
        ASSERT(r.n_prompt >= 1);
        ASSERT_DBL_NEAR(r.prompt_samples[0].latency, want_p, 1e-9);
        double overhead_d = per_tok_in / 4e9 + per_tok_in / 5e9;
        double want_d = 2 / up + 0.001 + (dt + overhead_d) + dt + 2 / down + 0.001;
        ASSERT(r.n_decode >= 1);
        ASSERT_DBL_NEAR(r.decode_samples[0].latency, want_d, 1e-9);
        sim_result_release(&r);
    }
    sim_trace_data_release(&td);
    model_throughput_free(tp);
    layout_free(l);
    sim_cluster_free(sc);
    model_profile_free(m);
}
