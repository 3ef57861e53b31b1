/*
 * cmd_simulate.c - `helix simulate`: run Helix's discrete-event simulation (spec §6) of a
 * placement under an online trace or an offline feeder and report decode throughput, prompt
 * and decode latency, per-node utilisation. Reads the model profile, the simulator cluster
 * (from --plan DIR or --sim-cluster FILE) and the placement (--plan DIR/placement.ini,
 * --layout FILE, or derived from the simulator cluster), builds the throughput table for the
 * cluster's composition and calls sim_run. Progress goes to stderr; results to stdout.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "cli/cli.h"
#include "core/core.h"
#include "sim/sim.h"
#include "sim/trace.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: helix simulate --model NAME (--plan DIR | --sim-cluster FILE [--layout FILE])\n"
        "                      [--scheduler maxflow|swarm|random|shortest-queue]\n"
        "                      [--mode online|offline] [--rate TOK_S --duration S |\n"
        "                      --initial-queries N] [--seed N] [--fidelity helix|default]\n"
        "                      [--json] [--plot DIR]\n"
        "\n"
        "Discrete-event simulation of a placement, as Helix's simulator runs it.\n"
        "\n"
        "  --model NAME            model profile name (llama2_70b, llama1_30b) or path (required)\n"
        "  --plan DIR              DIR/simulator_cluster.ini + DIR/placement.ini (helix plan)\n"
        "  --sim-cluster FILE      simulator cluster file (e.g.\n"
        "                          data/layouts/single24_70b/ilp_simulator_cluster.ini)\n"
        "  --layout FILE           placement for --sim-cluster (default: derived from the\n"
        "                          file's KV capacities and links)\n"
        "  --scheduler NAME        maxflow (default), swarm, random, shortest-queue\n"
        "  --mode MODE             online (default) or offline\n"
        "  --rate TOK_S            online: target tokens/s of the trace (required online)\n"
        "  --duration S            online: trace length and window, multiple of 3 (1800)\n"
        "  --initial-queries N     offline: initial queries (required offline)\n"
        "  --warmup S, --measure S offline: warm-up and window (60, 600)\n"
        "  --seed N                trace / sampler seed (0)\n"
        "  --fidelity F            helix: reproduce Helix's quirks; default: fix the ones\n"
        "                          listed in docs/simulator.md (default: default)\n"
        "  --kv-hwm X, --kv-ratio X  KV expectation (online 0.9/0.6, offline 0.85/1.0)\n"
        "  --traces DIR            trace tables (data/traces, dataset azure_conv)\n"
        "  --json                  one JSON object on stdout instead of the table\n"
        "  --plot DIR              write DIR/latency_cdf.svg and DIR/throughput.svg (gnuplot)\n"
        "  -q, --quiet             no progress on stderr\n"
        "  -h, --help              show this help\n"
        "\n"
        "Exit status: 0 ok, 2 usage error or invalid input, 1 simulation failure.\n");
}

struct opts {
    const char *model;
    const char *plan;
    const char *sim_cluster;
    const char *layout;
    const char *traces;
    const char *plot;
    enum sim_policy policy;
    enum sim_mode mode;
    enum sim_fidelity fidelity;
    double rate;
    long duration;
    long initial;
    double warmup;
    double measure;
    long seed;
    double kv_hwm;
    double kv_ratio;
    int json;
    int quiet;
    const char *quirks; /* NAME=0|1,... applied after --fidelity */
};

/* Apply "decode_double=0,offline_drop=1" to q; returns 0 or -1 on junk. */
static int apply_quirks(const char *spec, struct sim_quirks *q)
{
    static const struct {
        const char *name;
        size_t off;
    } tab[] = {
        {"decode_double", offsetof(struct sim_quirks, decode_double)},
        {"cpu_overhead_act", offsetof(struct sim_quirks, cpu_overhead_act)},
        {"offline_drop", offsetof(struct sim_quirks, offline_drop)},
        {"one_request_per_tx", offsetof(struct sim_quirks, one_request_per_tx)},
    };
    const char *p = spec;
    while (*p) {
        const char *eq = strchr(p, '=');
        if (eq == NULL || (eq[1] != '0' && eq[1] != '1') || (eq[2] != 0 && eq[2] != ',')) {
            return -1;
        }
        size_t n = (size_t)(eq - p);
        int found = 0;
        for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
            if (strlen(tab[i].name) == n && strncmp(p, tab[i].name, n) == 0) {
                *(int *)((char *)q + tab[i].off) = eq[1] - '0';
                found = 1;
            }
        }
        if (!found) {
            return -1;
        }
        p = eq[2] == ',' ? eq + 3 : eq + 2;
    }
    return 0;
}

static const char *policy_name(enum sim_policy p)
{
    switch (p) {
    case SIM_POLICY_MAXFLOW:
        return "maxflow";
    case SIM_POLICY_SWARM:
        return "swarm";
    case SIM_POLICY_RANDOM:
        return "random";
    case SIM_POLICY_SHORTEST_QUEUE:
        return "shortest-queue";
    }
    return "?";
}

static void progress(void *ctx, double t, uint64_t events)
{
    (void)ctx;
    fprintf(stderr, "\rhx: simulate: t = %.1f s, %llu events", t, (unsigned long long)events);
    fflush(stderr);
}

static cJSON *lat_json(const struct sim_latency *l)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", (double)l->n);
    cJSON_AddNumberToObject(o, "mean", l->mean);
    cJSON_AddNumberToObject(o, "p50", l->p50);
    cJSON_AddNumberToObject(o, "p95", l->p95);
    cJSON_AddNumberToObject(o, "p99", l->p99);
    return o;
}

static int write_plots(const char *dir, const struct sim_result *r)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        return cli_error("cannot create %s: %s", dir, strerror(errno));
    }
    char path[PATH_MAX];
    /* data files: sorted latencies (CDF) and the decode throughput series */
    const struct sim_sample *sets[2] = {r->prompt_samples, r->decode_samples};
    size_t ns[2] = {r->n_prompt, r->n_decode};
    const char *names[2] = {"prompt", "decode"};
    for (int k = 0; k < 2; k++) {
        double *v = xmalloc((ns[k] + 1) * sizeof(double));
        for (size_t i = 0; i < ns[k]; i++) {
            v[i] = sets[k][i].latency;
        }
        struct sim_latency tmp;
        sim_latency_stats(v, ns[k], &tmp);
        snprintf(path, sizeof(path), "%s/%s_latency.dat", dir, names[k]);
        FILE *f = fopen(path, "w");
        if (f == NULL) {
            xfree(v);
            return cli_error("cannot write %s: %s", path, strerror(errno));
        }
        size_t step = ns[k] > 5000 ? ns[k] / 5000 : 1;
        for (size_t i = 0; i < ns[k]; i += step) {
            fprintf(f, "%.6f %.6f\n", v[i], (double)(i + 1) / (double)ns[k]);
        }
        fclose(f);
        xfree(v);
    }
    snprintf(path, sizeof(path), "%s/throughput.dat", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return cli_error("cannot write %s: %s", path, strerror(errno));
    }
    for (size_t b = 0; b < r->n_series; b++) {
        fprintf(f, "%.3f %.6f\n", (double)b * r->series_dt, r->series[b] / r->series_dt);
    }
    fclose(f);
    FILE *gp = popen("gnuplot", "w");
    if (gp == NULL) {
        return cli_error("cannot run gnuplot: %s", strerror(errno));
    }
    fprintf(gp, "set terminal svg size 800,500\n");
    fprintf(gp, "set output '%s/latency_cdf.svg'\n", dir);
    fprintf(gp, "set title 'Latency CDF'\nset xlabel 'latency (s)'\nset ylabel 'fraction'\n");
    fprintf(gp, "set key bottom right\nset grid\n");
    fprintf(gp,
            "plot '%s/prompt_latency.dat' using 1:2 with lines title 'prompt', "
            "'%s/decode_latency.dat' using 1:2 with lines title 'decode (per token)'\n",
            dir, dir);
    fprintf(gp, "set output '%s/throughput.svg'\n", dir);
    fprintf(gp, "set title 'Decode throughput over time'\nset xlabel 'time since start (s)'\n");
    fprintf(gp, "set ylabel 'tokens/s'\nset key top right\n");
    fprintf(gp, "plot '%s/throughput.dat' using 1:2 with steps title 'decode tokens/s'\n", dir);
    int st = pclose(gp);
    if (st != 0) {
        return cli_error("gnuplot failed (status %d)", st);
    }
    return CLI_EXIT_OK;
}

static int parse(int argc, char **argv, struct opts *o)
{
    enum {
        O_MODEL = 256,
        O_PLAN,
        O_SIMC,
        O_LAYOUT,
        O_SCHED,
        O_MODE,
        O_RATE,
        O_DUR,
        O_INIT,
        O_SEED,
        O_FID,
        O_JSON,
        O_PLOT,
        O_TRACES,
        O_HWM,
        O_RATIO,
        O_WARM,
        O_MEAS,
        O_QUIRKS,
    };
    static const struct option lo[] = {
        {"model", required_argument, 0, O_MODEL},
        {"plan", required_argument, 0, O_PLAN},
        {"sim-cluster", required_argument, 0, O_SIMC},
        {"layout", required_argument, 0, O_LAYOUT},
        {"scheduler", required_argument, 0, O_SCHED},
        {"mode", required_argument, 0, O_MODE},
        {"rate", required_argument, 0, O_RATE},
        {"duration", required_argument, 0, O_DUR},
        {"initial-queries", required_argument, 0, O_INIT},
        {"seed", required_argument, 0, O_SEED},
        {"fidelity", required_argument, 0, O_FID},
        {"json", no_argument, 0, O_JSON},
        {"plot", required_argument, 0, O_PLOT},
        {"traces", required_argument, 0, O_TRACES},
        {"kv-hwm", required_argument, 0, O_HWM},
        {"kv-ratio", required_argument, 0, O_RATIO},
        {"warmup", required_argument, 0, O_WARM},
        {"measure", required_argument, 0, O_MEAS},
        {"quirks", required_argument, 0, O_QUIRKS},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
        switch (c) {
        case O_MODEL:
            o->model = optarg;
            break;
        case O_PLAN:
            o->plan = optarg;
            break;
        case O_SIMC:
            o->sim_cluster = optarg;
            break;
        case O_LAYOUT:
            o->layout = optarg;
            break;
        case O_SCHED:
            if (strcmp(optarg, "maxflow") == 0) {
                o->policy = SIM_POLICY_MAXFLOW;
            } else if (strcmp(optarg, "swarm") == 0) {
                o->policy = SIM_POLICY_SWARM;
            } else if (strcmp(optarg, "random") == 0) {
                o->policy = SIM_POLICY_RANDOM;
            } else if (strcmp(optarg, "shortest-queue") == 0) {
                o->policy = SIM_POLICY_SHORTEST_QUEUE;
            } else {
                return cli_usage_error("simulate", "unknown --scheduler '%s'", optarg);
            }
            break;
        case O_MODE:
            if (strcmp(optarg, "online") == 0) {
                o->mode = SIM_MODE_ONLINE;
            } else if (strcmp(optarg, "offline") == 0) {
                o->mode = SIM_MODE_OFFLINE;
            } else {
                return cli_usage_error("simulate", "unknown --mode '%s'", optarg);
            }
            break;
        case O_RATE:
            if (cli_parse_double(optarg, &o->rate) != 0 || !(o->rate > 0)) {
                return cli_usage_error("simulate", "bad --rate '%s'", optarg);
            }
            break;
        case O_DUR:
            if (cli_parse_long(optarg, &o->duration) != 0 || o->duration <= 0 ||
                o->duration % 3 != 0) {
                return cli_usage_error("simulate", "bad --duration '%s' (a positive multiple of 3)",
                                       optarg);
            }
            break;
        case O_INIT:
            if (cli_parse_long(optarg, &o->initial) != 0 || o->initial <= 0 ||
                o->initial > 10000000) {
                return cli_usage_error("simulate", "bad --initial-queries '%s'", optarg);
            }
            break;
        case O_SEED:
            if (cli_parse_long(optarg, &o->seed) != 0) {
                return cli_usage_error("simulate", "bad --seed '%s'", optarg);
            }
            break;
        case O_FID:
            if (strcmp(optarg, "helix") == 0) {
                o->fidelity = SIM_FIDELITY_HELIX;
            } else if (strcmp(optarg, "default") == 0) {
                o->fidelity = SIM_FIDELITY_DEFAULT;
            } else {
                return cli_usage_error("simulate", "unknown --fidelity '%s'", optarg);
            }
            break;
        case O_JSON:
            o->json = 1;
            break;
        case O_PLOT:
            o->plot = optarg;
            break;
        case O_TRACES:
            o->traces = optarg;
            break;
        case O_HWM:
            if (cli_parse_double(optarg, &o->kv_hwm) != 0 || !(o->kv_hwm > 0) || o->kv_hwm > 1) {
                return cli_usage_error("simulate", "bad --kv-hwm '%s'", optarg);
            }
            break;
        case O_RATIO:
            if (cli_parse_double(optarg, &o->kv_ratio) != 0 || !(o->kv_ratio >= 0)) {
                return cli_usage_error("simulate", "bad --kv-ratio '%s'", optarg);
            }
            break;
        case O_WARM:
            if (cli_parse_double(optarg, &o->warmup) != 0 || !(o->warmup >= 0)) {
                return cli_usage_error("simulate", "bad --warmup '%s'", optarg);
            }
            break;
        case O_MEAS:
            if (cli_parse_double(optarg, &o->measure) != 0 || !(o->measure > 0)) {
                return cli_usage_error("simulate", "bad --measure '%s'", optarg);
            }
            break;
        case O_QUIRKS: {
            struct sim_quirks tmp;
            if (apply_quirks(optarg, &tmp) != 0) {
                return cli_usage_error("simulate", "bad --quirks '%s'", optarg);
            }
            o->quirks = optarg;
            break;
        }
        case 'q':
            o->quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            return cli_usage_error("simulate", "bad option");
        }
    }
    if (optind < argc) {
        return cli_usage_error("simulate", "unexpected argument '%s'", argv[optind]);
    }
    if (o->model == NULL) {
        return cli_usage_error("simulate", "--model is required");
    }
    if ((o->plan == NULL) == (o->sim_cluster == NULL)) {
        return cli_usage_error("simulate", "give exactly one of --plan DIR and --sim-cluster FILE");
    }
    if (o->plan != NULL && o->layout != NULL) {
        return cli_usage_error("simulate", "--layout goes with --sim-cluster, not --plan");
    }
    if (o->mode == SIM_MODE_ONLINE && o->rate <= 0) {
        return cli_usage_error("simulate", "online mode needs --rate TOK_S");
    }
    if (o->mode == SIM_MODE_OFFLINE && o->initial <= 0) {
        return cli_usage_error("simulate", "offline mode needs --initial-queries N");
    }
    return 0;
}

static int input_error(const struct hx_diag *d, int rc)
{
    fprintf(stderr, "hx: error: %s\n", d->msg[0] ? d->msg : hx_strerror(rc));
    return rc == HX_ENOMEM ? CLI_EXIT_RUNTIME : CLI_EXIT_USAGE;
}

int cmd_simulate(int argc, char **argv)
{
    struct opts o = {
        .policy = SIM_POLICY_MAXFLOW,
        .mode = SIM_MODE_ONLINE,
        .fidelity = SIM_FIDELITY_DEFAULT,
        .duration = 1800,
        .warmup = 60,
        .measure = 600,
        .kv_hwm = -1,
        .kv_ratio = -1,
    };
    int prc = parse(argc, argv, &o);
    if (prc < 0) {
        return CLI_EXIT_OK;
    }
    if (prc > 0) {
        return prc;
    }
    struct hx_diag d = {0};
    char mpath[PATH_MAX];
    char scpath[PATH_MAX];
    char lpath[PATH_MAX];
    char tdir[PATH_MAX];
    if (cli_resolve_model_profile(o.model, mpath, sizeof(mpath)) != 0) {
        return cli_usage_error("simulate", "no model profile %s", mpath);
    }
    if (o.plan != NULL) {
        snprintf(scpath, sizeof(scpath), "%s/simulator_cluster.ini", o.plan);
        snprintf(lpath, sizeof(lpath), "%s/placement.ini", o.plan);
    } else {
        if (cli_resolve_data(o.sim_cluster, scpath, sizeof(scpath)) != 0) {
            return cli_usage_error("simulate", "no simulator cluster file %s", o.sim_cluster);
        }
        lpath[0] = 0;
        if (o.layout != NULL && cli_resolve_data(o.layout, lpath, sizeof(lpath)) != 0) {
            return cli_usage_error("simulate", "no layout file %s", o.layout);
        }
    }
    if (cli_resolve_data(o.traces ? o.traces : "data/traces", tdir, sizeof(tdir)) != 0) {
        return cli_usage_error("simulate", "no trace directory %s", tdir);
    }
    struct model_profile *m = NULL;
    struct sim_cluster *sc = NULL;
    struct layout *l = NULL;
    struct model_throughput *tp = NULL;
    struct sim_trace_data td = {0};
    int *counts = NULL;
    int ret = CLI_EXIT_OK;
    int rc = model_profile_read_file(mpath, &m, &d);
    if (rc == HX_OK) {
        rc = sim_cluster_read_file(scpath, &sc, &d);
    }
    if (rc == HX_OK) {
        int max_idx = -1;
        for (int i = 0; i < sc->n_nodes; i++) {
            if (sc->nodes[i].node > max_idx) {
                max_idx = sc->nodes[i].node;
            }
        }
        if (lpath[0]) {
            rc = layout_read_file(lpath, max_idx + 1, &l, &d);
        } else {
            rc = sim_layout_derive(m, sc, &l, &d);
        }
    }
    if (rc == HX_OK) {
        counts = xcalloc(m->n_gpus + 1, sizeof(int));
        for (int i = 0; i < sc->n_nodes && rc == HX_OK; i++) {
            int g = model_gpu_index(m, sc->nodes[i].machine_type);
            if (g < 0) {
                rc = hx_diag_set(&d, HX_ENOTFOUND, "%s: %s: machine type %s not in model %s",
                                 scpath, sc->nodes[i].name, sc->nodes[i].machine_type, m->name);
            } else {
                counts[g]++;
            }
        }
    }
    if (rc == HX_OK) {
        rc = model_throughput_new(m, counts, &tp, &d);
    }
    if (rc == HX_OK) {
        rc = sim_trace_data_load(tdir, "azure_conv", &td, &d);
    }
    if (rc != HX_OK) {
        ret = input_error(&d, rc);
        goto out;
    }
    struct sim_config cfg;
    sim_config_defaults(&cfg, o.mode, o.policy);
    sim_quirks_set(&cfg.quirks, o.fidelity);
    if (o.quirks != NULL) {
        apply_quirks(o.quirks, &cfg.quirks);
    }
    cfg.model = m;
    cfg.tp = tp;
    cfg.cluster = sc;
    cfg.layout = l;
    cfg.trace_data = &td;
    cfg.seed = o.seed;
    cfg.rate_tok_s = o.rate;
    cfg.duration_s = o.duration;
    cfg.initial_queries = (int)o.initial;
    cfg.warmup_s = o.warmup;
    cfg.measure_s = o.measure;
    if (o.kv_hwm > 0) {
        cfg.sched.kv_hwm = o.kv_hwm;
    }
    if (o.kv_ratio >= 0) {
        cfg.sched.kv_output_ratio = o.kv_ratio;
    }
    if (!o.quiet) {
        cfg.progress = progress;
    }
    struct sim_result r;
    double t0 = hx_clock_now();
    rc = sim_run(&cfg, &r, &d);
    double wall = hx_clock_now() - t0;
    if (!o.quiet) {
        fprintf(stderr, "\r%60s\r", "");
    }
    if (rc != HX_OK) {
        fprintf(stderr, "hx: error: %s\n", d.msg[0] ? d.msg : hx_strerror(rc));
        ret = rc == HX_EINVAL || rc == HX_ENOTFOUND ? CLI_EXIT_USAGE : CLI_EXIT_RUNTIME;
        goto out;
    }
    if (o.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "scheduler", policy_name(o.policy));
        cJSON_AddStringToObject(j, "mode", o.mode == SIM_MODE_ONLINE ? "online" : "offline");
        cJSON_AddStringToObject(j, "fidelity",
                                o.fidelity == SIM_FIDELITY_HELIX ? "helix" : "default");
        cJSON *qj = cJSON_CreateObject();
        cJSON_AddBoolToObject(qj, "decode_double", cfg.quirks.decode_double);
        cJSON_AddBoolToObject(qj, "cpu_overhead_act", cfg.quirks.cpu_overhead_act);
        cJSON_AddBoolToObject(qj, "offline_drop", cfg.quirks.offline_drop);
        cJSON_AddBoolToObject(qj, "one_request_per_tx", cfg.quirks.one_request_per_tx);
        cJSON_AddItemToObject(j, "quirks", qj);
        cJSON_AddNumberToObject(j, "decode_throughput", r.decode_throughput);
        cJSON_AddItemToObject(j, "prompt_latency", lat_json(&r.prompt));
        cJSON_AddItemToObject(j, "decode_latency", lat_json(&r.decode));
        cJSON_AddNumberToObject(j, "events", (double)r.events);
        cJSON_AddNumberToObject(j, "wall_seconds", wall);
        cJSON_AddNumberToObject(j, "max_flow", r.flow_value);
        cJSON_AddNumberToObject(j, "start_s", r.start_s);
        cJSON_AddNumberToObject(j, "window_start_s", r.window_a);
        cJSON_AddNumberToObject(j, "window_end_s", r.window_b);
        cJSON_AddNumberToObject(j, "queries_issued", (double)r.queries_issued);
        cJSON_AddNumberToObject(j, "queries_finished", (double)r.queries_finished);
        cJSON_AddNumberToObject(j, "queries_rejected", (double)r.queries_rejected);
        cJSON_AddNumberToObject(j, "kv_overcommits", (double)r.kv_overcommits);
        cJSON_AddNumberToObject(j, "mean_decode_batch", r.mean_decode_batch);
        cJSON_AddNumberToObject(j, "typical_decode_batch", r.typical_decode_batch);
        cJSON *u = cJSON_CreateObject();
        for (int i = 0; i < sc->n_nodes; i++) {
            cJSON_AddNumberToObject(u, sc->nodes[i].name, r.node_util[i]);
        }
        cJSON_AddItemToObject(j, "node_utilisation", u);
        cJSON *inv = cJSON_CreateObject();
        cJSON_AddNumberToObject(inv, "bad_layer_order", (double)r.bad_layer_order);
        cJSON_AddNumberToObject(inv, "kv_overflow", (double)r.kv_overflow);
        cJSON_AddNumberToObject(inv, "bw_oversubscribed", (double)r.bw_oversubscribed);
        cJSON_AddNumberToObject(inv, "max_kv_used", (double)r.max_kv_used_permille / 1000.0);
        cJSON_AddItemToObject(j, "invariants", inv);
        char *txt = cJSON_Print(j);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(j);
    } else {
        printf("scheduler          %s (%s, fidelity %s)\n", policy_name(o.policy),
               o.mode == SIM_MODE_ONLINE ? "online" : "offline",
               o.fidelity == SIM_FIDELITY_HELIX ? "helix" : "default");
        printf("max-flow           %.1f tokens/s\n", r.flow_value);
        printf("window             [%.1f, %.1f] s\n", r.window_a, r.window_b);
        printf("decode throughput  %.1f tokens/s\n", r.decode_throughput);
        printf("%-18s %8s %8s %8s %8s %8s\n", "latency (s)", "n", "mean", "p50", "p95", "p99");
        printf("%-18s %8zu %8.3f %8.3f %8.3f %8.3f\n", "prompt", r.prompt.n, r.prompt.mean,
               r.prompt.p50, r.prompt.p95, r.prompt.p99);
        printf("%-18s %8zu %8.3f %8.3f %8.3f %8.3f\n", "decode (per token)", r.decode.n,
               r.decode.mean, r.decode.p50, r.decode.p95, r.decode.p99);
        printf("queries            %ld issued, %ld finished, %ld rejected\n", r.queries_issued,
               r.queries_finished, r.queries_rejected);
        printf("events             %llu in %.2f s wall\n", (unsigned long long)r.events, wall);
        printf("node utilisation  ");
        for (int i = 0; i < sc->n_nodes; i++) {
            printf(" %s:%.2f",
                   sc->nodes[i].name +
                       (strncmp(sc->nodes[i].name, "compute_node_", 13) == 0 ? 13 : 0),
                   r.node_util[i]);
        }
        printf("\n");
        if (r.bad_layer_order || r.kv_overflow || r.bw_oversubscribed) {
            printf("invariants         VIOLATED: layer order %ld, KV overflow %ld, bandwidth %ld\n",
                   r.bad_layer_order, r.kv_overflow, r.bw_oversubscribed);
        }
    }
    if (o.plot != NULL) {
        ret = write_plots(o.plot, &r);
    }
    sim_result_release(&r);
out:
    xfree(counts);
    sim_trace_data_release(&td);
    model_throughput_free(tp);
    layout_free(l);
    sim_cluster_free(sc);
    model_profile_free(m);
    return ret;
}
