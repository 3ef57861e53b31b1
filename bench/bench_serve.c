/*
 * bench_serve.c - the serving runtime under a Poisson load: one coordinator and three workers
 * (threads of this process, real ZeroMQ over 127.0.0.1) on a heterogeneous placement - "full"
 * holds all 6 layers of the bundled model, "p1" -> "p2" is a two-stage pipeline - driven by
 * the same seeded arrival sequence once per scheduler (maxflow, swarm, random). Prints
 * throughput (generated tokens/s), time to first token and time per output token (p50/p95)
 * for each, and every figure as a ratio to maxflow's.
 *
 * Node capacities (the max-flow's, hence IWRR's weights) come from a profile measured first
 * (rt_profile_measure: one layer, 1 thread, ~1 s; KV constants of the workers' 16 MiB) through
 * Helix's throughput model: capacity = TP(k) for the node's k layers, as `helix run --local`
 * and `helix serve --model-profile` use them. --placement planned replaces the fixed layout by
 * the planner's (`auto` on that profile, three nodes of that type).
 *
 * --curve on|both runs the coordinator and workers with ZeroMQ CURVE (both: each scheduler's run
 * plain, then with CURVE, on the same arrivals) and first measures one data-plane hop each way
 * (serve_hop.c): DECODE latency and PREFILL bandwidth.
 *
 * Usage: bench_serve [--rate R req/s (default 6)] [--seconds S per scheduler (default 6)]
 *                    [--tokens N per request (default 32)] [--placement fixed|planned]
 *                    [--curve off|on|both (default off)] [--sched all|maxflow|swarm|random]
 * Output lines are "key value" pairs, machine-readable.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "core/model.h"
#include "runtime/runtime.h"
#include "serve_hop.h"

#define MODEL "models/kjv-llama-6m"
#define MAX_REQ 4096

struct wthread {
    pthread_t t;
    struct worker_opts o;
    char name[RT_NAME_MAX + 1];
    volatile int stop;
    struct hx_diag d;
};

static void *wmain(void *arg)
{
    struct wthread *w = arg;
    worker_run(&w->o, &w->d);
    return NULL;
}

struct req {
    double t_submit;
    double t_first;
    double t_done;
    int n_tokens;
    int ok;
    struct coord_stream *s;
};

struct result {
    double tput;
    double ttft50, ttft95, tpot50, tpot95;
    int done;
    int failed;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    if (n == 0) {
        return NAN;
    }
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    int i = (int)ceil(p * n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static uint64_t rng_state;

static double uniform01(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static struct coord_node_spec g_nodes[3] = {
    {"full", 0, 6, 1.0 / 6}, {"p1", 0, 3, 1.0 / 3}, {"p2", 3, 6, 1.0 / 3}};
static int g_n = 3;

/*
 * Measure a 1-thread profile, give every node its throughput-model capacity TP(k) (all three
 * nodes are of one type: 1 thread, 16 MiB of KV); with planned, also the planner's ranges.
 */
static int profile_capacities(int planned)
{
    struct hx_diag d;
    struct rt_prof *meas = NULL;
    struct rt_prof *kind = NULL;
    struct model_profile *m = NULL;
    struct model_throughput *tp = NULL;
    char dir[] = "/tmp/bench_serve_XXXXXX";
    char ini[512];
    struct rt_profile_opts o;
    memset(&o, 0, sizeof(o));
    o.model_dir = MODEL;
    o.type = "cpu-t1";
    o.threads = 1;
    o.max_seconds = 1;
    int rc = -1;
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_serve: mkdtemp failed\n");
        return -1;
    }
    if (rt_profile_measure(&o, &meas, &d) != 0 ||
        rt_profile_derive(meas, "cpu-t1", MODEL, "cpu-t1-kv16", 16u << 20, &kind, &d) != 0 ||
        rt_profile_write(kind, dir, ini, sizeof(ini), &d) != 0 ||
        model_profile_read_file(ini, &m, &d) != 0) {
        fprintf(stderr, "bench_serve: profile: %s\n", d.msg);
        goto out;
    }
    if (planned) {
        const char *types[3] = {"cpu-t1-kv16", "cpu-t1-kv16", "cpu-t1-kv16"};
        const char *names[3] = {"n0", "n1", "n2"};
        struct coord_node_spec plan[3];
        double obj = 0;
        if (rt_plan_local(m, 3, types, names, 2, plan, &obj, &d) != 0) {
            fprintf(stderr, "bench_serve: plan: %s\n", d.msg);
            goto out;
        }
        g_n = 0;
        for (int i = 0; i < 3; i++) {
            if (plan[i].layer_end > plan[i].layer_start) {
                g_nodes[g_n++] = plan[i];
            }
        }
        printf("planned_max_flow_tokens_per_second %.1f\n", obj);
    }
    int counts[1] = {3};
    if (model_throughput_new(m, counts, &tp, &d) != 0) {
        fprintf(stderr, "bench_serve: throughput model: %s\n", d.msg);
        goto out;
    }
    for (int i = 0; i < g_n; i++) {
        g_nodes[i].capacity =
            model_node_capacity(tp, NULL, 0, g_nodes[i].layer_end - g_nodes[i].layer_start);
        printf("node %s [%d,%d) capacity %.1f tokens/s\n", g_nodes[i].name, g_nodes[i].layer_start,
               g_nodes[i].layer_end, g_nodes[i].capacity);
    }
    rc = 0;
out:
    model_throughput_free(tp);
    model_profile_free(m);
    rt_profile_free(kind);
    rt_profile_free(meas);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_serve: cannot remove %s\n", dir);
    }
    return rc;
}

static int run_one(enum coord_sched sched, double rate, double seconds, int tokens, int curve,
                   struct result *res)
{
    static const char *prompts[] = {
        "In the beginning",     "And God said", "The LORD is my shepherd",
        "Blessed are the meek", "Jesus wept.",  "And it came to pass"};
    const struct coord_node_spec *nodes = g_nodes;
    struct coord_opts o;
    memset(&o, 0, sizeof(o));
    o.model_dir = MODEL;
    o.workers = "tcp://127.0.0.1:*";
    o.token = "bench";
    o.n_nodes = g_n;
    o.nodes = nodes;
    o.sched = sched;
    o.seed = 1;
    o.curve = curve ? RT_CURVE_ON : RT_CURVE_OFF;
    struct coord *c = NULL;
    struct hx_diag d;
    if (coord_new(&o, &c, &d) != 0 || coord_start(c, &d) != 0) {
        fprintf(stderr, "bench_serve: %s\n", d.msg);
        coord_free(c);
        return 1;
    }
    struct wthread w[3];
    for (int i = 0; i < g_n; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        memcpy(w[i].name, nodes[i].name, sizeof(w[i].name));
        w[i].o.coordinator = coord_endpoint(c);
        w[i].o.name = w[i].name;
        w[i].o.token = "bench";
        w[i].o.threads = 1;
        w[i].o.curve = o.curve;
        w[i].o.kv_bytes = 16u << 20;
        w[i].o.stop = &w[i].stop;
        pthread_create(&w[i].t, NULL, wmain, &w[i]);
    }
    if (coord_wait_ready(c, 30000, &d) != 0) {
        fprintf(stderr, "bench_serve: %s\n", d.msg);
        return 1;
    }
    rng_state = 42; /* the same arrivals for every scheduler */
    struct req *rq = xcalloc(MAX_REQ, sizeof(*rq));
    int n = 0;
    double t0 = hx_clock_now();
    double next = t0 - log(uniform01()) / rate;
    int open = 0;
    for (;;) {
        double now = hx_clock_now();
        while (now >= next && now - t0 < seconds && n < MAX_REQ) {
            struct coord_request q;
            memset(&q, 0, sizeof(q));
            q.prompt = prompts[n % 6];
            q.prompt_len = strlen(q.prompt);
            q.max_tokens = tokens;
            q.top_p = 1;
            q.ignore_eos = 1;
            rq[n].t_submit = next;
            if (coord_submit(c, &q, &rq[n].s, &d) == 0) {
                open++;
            }
            n++;
            next += -log(uniform01()) / rate;
        }
        for (int i = 0; i < n; i++) {
            struct coord_event ev;
            while (rq[i].s && coord_stream_next(rq[i].s, 0, &ev) == 0) {
                double t = hx_clock_now();
                if (ev.type == COORD_EVENT_TEXT) {
                    if (rq[i].t_first == 0) {
                        rq[i].t_first = t;
                    }
                    continue;
                }
                rq[i].t_done = t;
                rq[i].ok = ev.type == COORD_EVENT_DONE;
                rq[i].n_tokens = ev.completion_tokens;
                coord_stream_free(rq[i].s);
                rq[i].s = NULL;
                open--;
                break;
            }
        }
        if (hx_clock_now() - t0 >= seconds && open == 0) {
            break;
        }
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
    double t_end = 0;
    double *ttft = xcalloc((size_t)n + 1, sizeof(double));
    double *tpot = xcalloc((size_t)n + 1, sizeof(double));
    int nt = 0;
    long gen = 0;
    memset(res, 0, sizeof(*res));
    for (int i = 0; i < n; i++) {
        if (!rq[i].ok) {
            res->failed++;
            continue;
        }
        res->done++;
        gen += rq[i].n_tokens;
        t_end = rq[i].t_done > t_end ? rq[i].t_done : t_end;
        double first = rq[i].t_first > 0 ? rq[i].t_first : rq[i].t_done;
        ttft[nt] = first - rq[i].t_submit;
        tpot[nt] = rq[i].n_tokens > 1 ? (rq[i].t_done - first) / (rq[i].n_tokens - 1) : 0;
        nt++;
    }
    res->tput = t_end > t0 ? (double)gen / (t_end - t0) : 0;
    res->ttft50 = pct(ttft, nt, 0.5);
    res->ttft95 = pct(ttft, nt, 0.95);
    res->tpot50 = pct(tpot, nt, 0.5);
    res->tpot95 = pct(tpot, nt, 0.95);
    xfree(ttft);
    xfree(tpot);
    xfree(rq);
    coord_free(c);
    for (int i = 0; i < g_n; i++) {
        w[i].stop = 1;
        pthread_join(w[i].t, NULL);
    }
    return 0;
}

/* One hop each way, plain and/or CURVE: a decode row and a prefill of the bundled model's
 * width and of Llama-2-7B's (4096). */
static int hop_figures(int mode_first, int mode_last)
{
    static const int widths[2] = {256, 4096};
    for (int k = 0; k < 2; k++) {
        for (int curve = mode_first; curve <= mode_last; curve++) {
            struct hop_result hr;
            if (hop_bench_run(curve, widths[k], 2000, 256, 64, &hr) != 0) {
                return 1;
            }
            const char *m = curve ? "curve" : "plain";
            printf("hop_%s_hidden%d_decode_us_p50 %.1f\n", m, widths[k], hr.decode_us_p50);
            printf("hop_%s_hidden%d_decode_us_p95 %.1f\n", m, widths[k], hr.decode_us_p95);
            printf("hop_%s_hidden%d_prefill256_mb_per_s %.0f\n", m, widths[k], hr.prefill_mb_s);
            fflush(stdout);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    double rate = 6;
    double seconds = 6;
    int tokens = 32;
    int planned = 0;
    int mode_first = 0; /* 0 plain, 1 CURVE */
    int mode_last = 0;
    const char *only = "all";
    static const char usage[] =
        "usage: bench_serve [--rate R req/s (6)] [--seconds S per scheduler (6)]\n"
        "                   [--tokens N >= 2 (32)] [--placement fixed|planned]\n"
        "                   [--curve off|on|both (off)] [--sched all|maxflow|swarm|random]\n";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
    }
    if (argc % 2 == 0) {
        fprintf(stderr, "bench_serve: every option takes a value\n%s", usage);
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rate") == 0) {
            rate = strtod(argv[i + 1], NULL);
        } else if (strcmp(argv[i], "--seconds") == 0) {
            seconds = strtod(argv[i + 1], NULL);
        } else if (strcmp(argv[i], "--placement") == 0) {
            planned = strcmp(argv[i + 1], "planned") == 0;
            if (!planned && strcmp(argv[i + 1], "fixed") != 0) {
                fprintf(stderr, "bench_serve: --placement wants fixed or planned\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--tokens") == 0) {
            tokens = (int)strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--curve") == 0) {
            const char *v = argv[i + 1];
            mode_first = strcmp(v, "on") == 0;
            mode_last = strcmp(v, "off") != 0;
            if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0 && strcmp(v, "both") != 0) {
                fprintf(stderr, "bench_serve: --curve wants off, on or both\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--sched") == 0) {
            enum coord_sched cs;
            only = argv[i + 1];
            if (strcmp(only, "all") != 0 && coord_sched_parse(only, &cs) != 0) {
                fprintf(stderr, "bench_serve: --sched wants all, maxflow, swarm or random\n");
                return 2;
            }
        } else {
            fprintf(stderr, "bench_serve: unknown option '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!(rate > 0) || !(seconds > 0) || tokens < 2) {
        fprintf(stderr, "usage: bench_serve [--rate R] [--seconds S] [--tokens N >= 2]\n");
        return 2;
    }
    log_set_level(LOG_LEVEL_WARN);
    const enum coord_sched scheds[3] = {COORD_SCHED_MAXFLOW, COORD_SCHED_SWARM, COORD_SCHED_RANDOM};
    struct result r[3][2];
    int both = mode_first != mode_last;
    if (mode_last && hop_figures(mode_first, mode_last) != 0) {
        return 1;
    }
    if (profile_capacities(planned) != 0) {
        return 1;
    }
    printf("placement %s, 1 thread each; poisson %.3g req/s for %.3g s, %d tokens each\n",
           planned ? "planned" : "full[0,6) p1[0,3)->p2[3,6)", rate, seconds, tokens);
    int ran = 0;
    for (int k = 0; k < 3; k++) {
        const char *nm = coord_sched_name(scheds[k]);
        if (strcmp(only, "all") != 0 && strcmp(only, nm) != 0) {
            continue;
        }
        ran++;
        for (int curve = mode_first; curve <= mode_last; curve++) {
            struct result *x = &r[k][curve];
            if (run_one(scheds[k], rate, seconds, tokens, curve, x) != 0) {
                return 1;
            }
            char pre[32];
            snprintf(pre, sizeof(pre), "%s%s", nm, both ? (curve ? "_curve" : "_plain") : "");
            printf("%s_requests_done %d\n%s_requests_failed %d\n", pre, x->done, pre, x->failed);
            printf("%s_tokens_per_second %.2f\n", pre, x->tput);
            printf("%s_ttft_p50_ms %.2f\n%s_ttft_p95_ms %.2f\n", pre, x->ttft50 * 1e3, pre,
                   x->ttft95 * 1e3);
            printf("%s_tpot_p50_ms %.2f\n%s_tpot_p95_ms %.2f\n", pre, x->tpot50 * 1e3, pre,
                   x->tpot95 * 1e3);
            fflush(stdout);
        }
        if (both) {
            printf("%s_ratio_tokens_per_second_curve_over_plain %.3f\n", nm,
                   r[k][1].tput / r[k][0].tput);
            printf("%s_ratio_tpot_p50_curve_over_plain %.3f\n", nm,
                   r[k][1].tpot50 / r[k][0].tpot50);
        }
    }
    if (ran < 3 || both) {
        return 0;
    }
    int m = mode_first;
    for (int k = 1; k < 3; k++) {
        const char *nm = coord_sched_name(scheds[k]);
        printf("ratio_throughput_maxflow_over_%s %.3f\n", nm, r[0][m].tput / r[k][m].tput);
        printf("ratio_ttft_p50_%s_over_maxflow %.3f\n", nm, r[k][m].ttft50 / r[0][m].ttft50);
        printf("ratio_ttft_p95_%s_over_maxflow %.3f\n", nm, r[k][m].ttft95 / r[0][m].ttft95);
        printf("ratio_tpot_p50_%s_over_maxflow %.3f\n", nm, r[k][m].tpot50 / r[0][m].tpot50);
        printf("ratio_tpot_p95_%s_over_maxflow %.3f\n", nm, r[k][m].tpot95 / r[0][m].tpot95);
    }
    return 0;
}
