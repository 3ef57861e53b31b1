/*
 * cmd_plan.c - `helix plan`: place a model on a cluster. Reads the model profile, the
 * complete cluster and the machine profiles, runs the chosen method (our planner by default,
 * Helix's baselines, or Helix's MILP on CBC), checks the result with the independent checker,
 * and writes DIR/placement.ini (Helix's layout format), DIR/simulator_cluster.ini (§2.9),
 * DIR/plan.json and DIR/placement.svg. Progress goes to stderr while it solves; the summary
 * line (method, objective, bound, gap, seconds) to stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "cli/cli.h"
#include "core/core.h"
#include "flow/flow.h"
#include "plan/plan.h"
#include "plan/prune.h"
#include "sim/sim.h"
#include "sim/trace.h"

#define DEFAULT_PROFILES "data/machine_profiles.ini"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: helix plan --model NAME --cluster FILE --out DIR [options]\n"
        "\n"
        "Place a model's layers on a cluster to maximise Helix's objective, the max-flow\n"
        "token throughput (tokens/s), and write DIR/placement.ini, DIR/simulator_cluster.ini,\n"
        "DIR/plan.json and DIR/placement.svg.\n"
        "\n"
        "  --model NAME             model profile: llama2_70b, llama1_30b or a path (required)\n"
        "  --cluster FILE           complete cluster file or bundled name (geo24)  (required)\n"
        "  --out DIR                output directory (created)                     (required)\n"
        "  --method M               auto | petals | swarm | homogeneous | separate |\n"
        "                           memory | ram-ring | milp                 (default auto)\n"
        "  --time-limit S           wall seconds for auto and milp               (default 60)\n"
        "  --threads N              CBC threads for milp / auto's MILP stage      (default 1)\n"
        "  --jobs N                 served: candidates planned and simulated at once,\n"
        "                           one thread each, 1..8        (default: online CPUs)\n"
        "  --seed N                 seed (Helix's baselines use 0; auto's search)  (default 0)\n"
        "  --max-stages N           at most N nodes on any source->sink pipeline (default none)\n"
        "  --objective O            served | maxflow                      (default served)\n"
        "                           served: auto over depth bounds and layer caps, each\n"
        "                           candidate simulated offline (Helix's workload, 20\n"
        "                           queries, 60 + 600 s, trace seed 1); the most decode\n"
        "                           tokens/s wins.\n"
        "                           maxflow: Helix's objective (max-flow of the planner graph)\n"
        "  --layer-cap PCT          auto, maxflow: each node holds at most PCT%% of its\n"
        "                           type's max layers (memory left to the KV cache)\n"
        "  --kv-depth-exp E         auto, maxflow: anneal max-flow x (KV tokens of the\n"
        "                           scarcest layer / depth)^E instead of max-flow\n"
        "  --kv-sizing              with --kv-depth-exp: stage sizes keep the most KV\n"
        "  --partial                partial connectivity (s_j <= e_i < e_j); default strict\n"
        "  --machine-profiles FILE  GPU NIC/VRAM profiles        (default %s)\n"
        "  --traces DIR             served: the workload's trace tables, DIR/azure_conv_\n"
        "                           {lengths,arrivals}.csv        (default data/traces)\n"
        "  -q, --quiet              no progress on stderr\n"
        "  -h, --help               show this help\n"
        "\n"
        "Exit status: 0 ok, 2 usage error or invalid input, 1 no feasible placement or other\n"
        "failure.\n",
        DEFAULT_PROFILES);
}

static double wall_now(void *user)
{
    (void)user;
    return hx_clock_now();
}

static void progress(void *user, double elapsed, double incumbent, double bound, const char *phase)
{
    (void)user;
    fprintf(stderr, "plan: %7.2f s  incumbent %10.2f  bound %10.2f  [%s]\n", elapsed, incumbent,
            bound, phase);
}

static int write_text(const char *dir, const char *name, const struct strbuf *sb, char *err,
                      size_t errn)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errn, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    size_t w = fwrite(sb->buf, 1, sb->len, f);
    if (fclose(f) != 0 || w != sb->len) {
        snprintf(err, errn, "cannot write %s", path);
        return -1;
    }
    return 0;
}

/* A path as given (or relative to the bundled data), else a bundled cluster name ("geo24"). */
static void resolve_cluster(const char *arg, char *out, size_t n)
{
    if (cli_resolve_data(arg, out, n) == 0) {
        return;
    }
    if (!strstr(arg, ".ini")) {
        char rel[PATH_MAX];
        snprintf(rel, sizeof(rel), "data/clusters/%s.ini", arg);
        if (cli_resolve_data(rel, out, n) == 0) {
            return;
        }
    }
    snprintf(out, n, "%s", arg);
}

enum {
    OPT_MODEL = 256,
    OPT_CLUSTER,
    OPT_OUT,
    OPT_METHOD,
    OPT_TIME,
    OPT_THREADS,
    OPT_SEED,
    OPT_STAGES,
    OPT_PARTIAL,
    OPT_PROFILES,
    OPT_EVALS,
    OPT_PRUNE,
    OPT_OBJECTIVE,
    OPT_TRACES,
    OPT_LAYER_CAP,
    OPT_KV_EXP,
    OPT_JOBS,
    OPT_KV_SIZING
};

/* The served objective's scorer: simulate the placement offline (sim_served_offline). */
struct served_ctx {
    struct sim_trace_data td;
    int loaded;
    char tdir[PATH_MAX];
};

static int served_score(void *user, const struct plan_problem *p, const struct layout *l,
                        double *value, struct hx_diag *diag)
{
    struct served_ctx *s = user;
    if (!s->loaded) {
        int rc = sim_trace_data_load(s->tdir, "azure_conv", &s->td, diag);
        if (rc != HX_OK) {
            return rc;
        }
        s->loaded = 1;
    }
    return sim_served_offline(p->model, p->tp, p->mp, p->cluster, l, p->conn, &s->td,
                              SIM_FIDELITY_HELIX, 20, 0.0, 1, value, diag);
}

int cmd_plan(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, OPT_MODEL},
        {"cluster", required_argument, NULL, OPT_CLUSTER},
        {"out", required_argument, NULL, OPT_OUT},
        {"method", required_argument, NULL, OPT_METHOD},
        {"time-limit", required_argument, NULL, OPT_TIME},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"jobs", required_argument, NULL, OPT_JOBS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"max-stages", required_argument, NULL, OPT_STAGES},
        {"partial", no_argument, NULL, OPT_PARTIAL},
        {"max-evals", required_argument, NULL, OPT_EVALS},
        {"prune", required_argument, NULL, OPT_PRUNE},
        {"objective", required_argument, NULL, OPT_OBJECTIVE},
        {"layer-cap", required_argument, NULL, OPT_LAYER_CAP},
        {"kv-depth-exp", required_argument, NULL, OPT_KV_EXP},
        {"kv-sizing", no_argument, NULL, OPT_KV_SIZING},
        {"machine-profiles", required_argument, NULL, OPT_PROFILES},
        {"traces", required_argument, NULL, OPT_TRACES},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model_arg = NULL;
    const char *cluster_arg = NULL;
    const char *out_dir = NULL;
    const char *profiles_arg = DEFAULT_PROFILES;
    int quiet = 0;
    struct plan_options o;
    plan_options_init(&o);
    o.objective = PLAN_OBJECTIVE_SERVED;
    int objective_set = 0;
    int jobs_set = 0;
    struct served_ctx served;
    memset(&served, 0, sizeof(served));
    struct hx_diag d = {0};
    int partial = 0;
    int prune_keep = 0;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        double x = 0;
        long v = 0;
        switch (ch) {
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case 'q':
            quiet = 1;
            break;
        case OPT_MODEL:
            model_arg = optarg;
            break;
        case OPT_CLUSTER:
            cluster_arg = optarg;
            break;
        case OPT_OUT:
            out_dir = optarg;
            break;
        case OPT_PROFILES:
            profiles_arg = optarg;
            break;
        case OPT_TRACES:
            if (strlen(optarg) >= sizeof(served.tdir)) {
                return cli_usage_error("plan", "--traces: path too long");
            }
            snprintf(served.tdir, sizeof(served.tdir), "%s", optarg);
            break;
        case OPT_PARTIAL:
            partial = 1;
            break;
        case OPT_METHOD:
            if (plan_method_parse(optarg, &o.method, &d) != HX_OK) {
                return cli_usage_error("plan", "%s", d.msg);
            }
            break;
        case OPT_TIME:
            if (cli_parse_double(optarg, &x) != 0 || x <= 0) {
                return cli_usage_error("plan", "--time-limit needs a positive number of seconds");
            }
            o.time_limit_s = x;
            break;
        case OPT_THREADS:
            if (cli_parse_long(optarg, &v) != 0 || v < 1 || v > 256) {
                return cli_usage_error("plan", "--threads needs an integer in 1..256");
            }
            o.threads = (int)v;
            break;
        case OPT_JOBS:
            if (cli_parse_long(optarg, &v) != 0 || v < 1 || v > 8) {
                return cli_usage_error("plan", "--jobs needs an integer in 1..8");
            }
            o.jobs = (int)v;
            jobs_set = 1;
            break;
        case OPT_SEED:
            if (cli_parse_long(optarg, &v) != 0) {
                return cli_usage_error("plan", "--seed needs an integer");
            }
            o.seed = v;
            break;
        case OPT_STAGES:
            if (cli_parse_long(optarg, &v) != 0 || v < 1 || v > 100000) {
                return cli_usage_error("plan", "--max-stages needs a positive integer");
            }
            o.max_stages = (int)v;
            break;
        case OPT_PRUNE:
            if (cli_parse_long(optarg, &v) != 0 || v < 1 || v > 100000) {
                return cli_usage_error("plan", "--prune needs a positive integer");
            }
            prune_keep = (int)v;
            break;
        case OPT_OBJECTIVE:
            if (plan_objective_parse(optarg, &o.objective, &d) != HX_OK) {
                return cli_usage_error("plan", "%s", d.msg);
            }
            objective_set = 1;
            break;
        case OPT_KV_SIZING:
            o.kv_sizing = 1;
            break;
        case OPT_KV_EXP: {
            double e = 0.0;
            if (cli_parse_double(optarg, &e) != 0 || e < 0 || e > 8) {
                return cli_usage_error("plan", "--kv-depth-exp needs a number in 0..8");
            }
            o.kv_depth_exp = e;
            break;
        }
        case OPT_LAYER_CAP:
            if (cli_parse_long(optarg, &v) != 0 || v < 1 || v > 100) {
                return cli_usage_error("plan", "--layer-cap needs a percentage in 1..100");
            }
            o.layer_cap_pct = (int)v;
            break;
        case OPT_EVALS:
            if (cli_parse_long(optarg, &v) != 0 || v < 1) {
                return cli_usage_error("plan", "--max-evals needs a positive integer");
            }
            o.max_evals = v;
            break;
        case ':':
            return cli_usage_error("plan", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("plan", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return cli_usage_error("plan", "unexpected argument '%s'", argv[optind]);
    }
    if (!model_arg || !cluster_arg || !out_dir) {
        return cli_usage_error("plan", "--model, --cluster and --out are required");
    }
    char model_path[PATH_MAX];
    char cluster_path[PATH_MAX];
    char profiles_path[PATH_MAX];
    if (cli_resolve_model_profile(model_arg, model_path, sizeof(model_path)) != 0) {
        return cli_usage_error("plan", "model profile '%s' not found (tried %s)", model_arg,
                               model_path);
    }
    resolve_cluster(cluster_arg, cluster_path, sizeof(cluster_path));
    if (cli_resolve_data(profiles_arg, profiles_path, sizeof(profiles_path)) != 0) {
        snprintf(profiles_path, sizeof(profiles_path), "%s", profiles_arg);
    }
    struct model_profile *m = NULL;
    struct cluster *c = NULL;
    struct machine_profiles *mp = NULL;
    struct model_throughput *tp = NULL;
    struct sim_cluster *sc = NULL;
    struct plan_result res = {0};
    struct plan_edge_flow *edges = NULL;
    struct strbuf sb;
    strbuf_init(&sb);
    int exit_code = CLI_EXIT_OK;
    int rc = model_profile_read_file(model_path, &m, &d);
    if (rc == HX_OK) {
        rc = cluster_read_file(cluster_path, &c, &d);
    }
    if (rc == HX_OK) {
        rc = machine_profiles_read_file(profiles_path, &mp, &d);
    }
    if (rc == HX_OK && prune_keep > 0) {
        /* Helix's pruning (spec 2.5): keep each node's best links; plan on the result */
        struct plan_prune_params pp = {prune_keep, prune_keep, 1.0};
        struct cluster *pc = NULL;
        rc = plan_prune_cluster(c, &pp, &pc, &d);
        if (rc == HX_OK) {
            cluster_free(c);
            c = pc;
        }
    }
    if (rc == HX_OK) {
        rc = model_throughput_for_cluster(m, c, &tp, &d);
    }
    if (rc != HX_OK) {
        fprintf(stderr, "hx: error: %s\n", d.msg[0] ? d.msg : hx_strerror(rc));
        exit_code = rc == HX_ENOMEM ? CLI_EXIT_RUNTIME : CLI_EXIT_USAGE;
        goto done;
    }
    struct plan_problem p = {c, m, tp, mp, partial ? LAYOUT_PARTIAL : LAYOUT_STRICT};
    if (o.method != PLAN_METHOD_AUTO) {
        if (objective_set && o.objective == PLAN_OBJECTIVE_SERVED) {
            exit_code = cli_usage_error("plan", "--objective served needs --method auto");
            goto done;
        }
        o.objective = PLAN_OBJECTIVE_MAXFLOW;
    }
    if (o.objective == PLAN_OBJECTIVE_SERVED) {
        if (!served.tdir[0] && cli_resolve_data("traces", served.tdir, sizeof(served.tdir)) != 0) {
            snprintf(served.tdir, sizeof(served.tdir), "data/traces");
        }
        o.served = served_score;
        o.served_user = &served;
        /* the scorer runs on several threads at once (--jobs): load the traces here */
        rc = sim_trace_data_load(served.tdir, "azure_conv", &served.td, &d);
        if (rc != HX_OK) {
            exit_code = cli_error("%s", d.msg[0] ? d.msg : hx_strerror(rc));
            goto done;
        }
        served.loaded = 1;
        if (!jobs_set) {
            long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
            o.jobs = ncpu < 1 ? 1 : (ncpu > 8 ? 8 : (int)ncpu);
        }
    }
    o.now = wall_now;
    if (!quiet) {
        o.progress = progress;
    }
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        exit_code = cli_error("cannot create %s: %s", out_dir, strerror(errno));
        goto done;
    }
    rc = plan_solve(&p, &o, &res, &d);
    if (rc != HX_OK) {
        exit_code = cli_error("%s", d.msg[0] ? d.msg : hx_strerror(rc));
        goto done;
    }
    int n_edges = 0;
    double v = 0;
    rc = plan_edge_flows(&p, res.layout, &edges, &n_edges, &v, &d);
    if (rc == HX_OK) {
        rc = plan_validate(&p, res.layout, edges, n_edges, res.objective, o.max_stages, &d);
    }
    if (rc != HX_OK) {
        exit_code = cli_error("plan check failed: %s", d.msg);
        goto done;
    }
    char err[PATH_MAX + 64];
    layout_write(res.layout, &sb);
    if (write_text(out_dir, "placement.ini", &sb, err, sizeof(err)) != 0) {
        exit_code = cli_error("%s", err);
        goto done;
    }
    strbuf_reset(&sb);
    rc = sim_cluster_generate(c, res.layout, m, mp, p.conn, &sc, &d);
    if (rc == HX_OK) {
        sim_cluster_write(sc, &sb);
        if (write_text(out_dir, "simulator_cluster.ini", &sb, err, sizeof(err)) != 0) {
            exit_code = cli_error("%s", err);
            goto done;
        }
    } else {
        exit_code = cli_error("simulator cluster: %s", d.msg);
        goto done;
    }
    strbuf_reset(&sb);
    rc = plan_render_json(&p, &res, &sb, &d);
    if (rc != HX_OK || write_text(out_dir, "plan.json", &sb, err, sizeof(err)) != 0) {
        exit_code = cli_error("plan.json: %s", rc != HX_OK ? d.msg : err);
        goto done;
    }
    strbuf_reset(&sb);
    rc = plan_render_svg(&p, &res, &sb, &d);
    if (rc != HX_OK || write_text(out_dir, "placement.svg", &sb, err, sizeof(err)) != 0) {
        exit_code = cli_error("placement.svg: %s", rc != HX_OK ? d.msg : err);
        goto done;
    }
    char gap[32];
    if (res.objective > 0 && isfinite(res.gap)) {
        snprintf(gap, sizeof(gap), "%.2f%%", 100.0 * res.gap);
    } else {
        snprintf(gap, sizeof(gap), "inf");
    }
    printf("method %s  objective %.4f tokens/s  upper_bound %.4f (%s)  gap %s%s  %.2f s\n",
           plan_method_name(res.method), res.objective, res.upper_bound, res.bound_kind, gap,
           res.proven ? "  proven optimal" : "", res.solve_s);
    if (o.objective == PLAN_OBJECTIVE_SERVED) {
        printf("objective served  %.2f decode tokens/s offline (simulated)  depth %d  %d "
               "candidates\n",
               res.served, plan_depth(&p, res.layout, NULL), res.candidates);
    }
done:
    if (served.loaded) {
        sim_trace_data_release(&served.td);
    }
    strbuf_release(&sb);
    xfree(edges);
    plan_result_release(&res);
    sim_cluster_free(sc);
    model_throughput_free(tp);
    machine_profiles_free(mp);
    cluster_free(c);
    model_profile_free(m);
    return exit_code;
}
