/*
 * bench_hetero.c - one placement of a real heterogeneous cluster under load: the coordinator
 * in this process, one `helix worker` child process per node the placement uses, each started
 * as the workers file says (a GPU worker with its MPS share and memory cap, a CPU worker
 * pinned to its cores with its memory cap), then two phases on the same cluster:
 *
 *   offline: --offline N requests kept in flight (Helix's offline setting); decode tokens/s
 *            counted over --seconds after --warmup seconds;
 *   online:  Poisson arrivals at --online R requests/s for --warmup + --seconds; time to first
 *            token and time per output token (p50/p95) of the requests that arrived in the
 *            window, and the decode tokens/s sustained in it.
 *
 * Request lengths are drawn (seeded, with replacement) from a lengths table in the trace
 * format (docs/traces.md: "input,output" per line), the same table `helix simulate --traces`
 * reads, so the simulator's prediction and this measurement see one workload. A prompt of n
 * tokens is n words "a" (one token each with the Llama tokenizers); generation ignores EOS and
 * stops at the drawn output length.
 *
 * bench/hetero.sh builds the cluster, profiles every worker, plans each method and calls this
 * once per placement and scheduler; its table compares them.
 *
 * Workers file: one line per compute node of the cluster, in cluster order:
 *   NAME DEVICE MPS_PERCENT CPUS THREADS MEM_BYTES
 * e.g. "a100 cuda:0 25 - 0 12G" or "cpu1 cpu 0 0-3 4 4G" ('-' or 0: not set).
 *
 * Output: "key value" lines (machine-readable); comments start with "#".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "core/cluster.h"
#include "core/layout.h"
#include "core/model.h"
#include "runtime/runtime.h"

#define MAX_NODES 64
#define MAX_REQ 65536

struct wspec {
    char name[RT_NAME_MAX + 1];
    char device[32];
    int mps;
    char cpus[64];
    int threads;
    char mem[32];
    pid_t pid;
};

struct req {
    double t_submit;
    _Atomic double t_first;
    _Atomic double t_done;
    atomic_int n_tokens;
    atomic_int state; /* 0 running, 1 done, 2 failed */
    atomic_int released;
    int in_window; /* online: arrived inside the measuring window */
};

static struct req *g_req;
static atomic_long g_tokens; /* decode tokens emitted so far, all requests */
static atomic_int g_cancel;  /* 1: drop every request still running */

static int sk_token(void *user, const char *text, size_t len)
{
    (void)text;
    (void)len;
    struct req *r = user;
    double now = hx_clock_now();
    if (atomic_load(&r->n_tokens) == 0) {
        atomic_store(&r->t_first, now);
    }
    atomic_fetch_add(&r->n_tokens, 1);
    atomic_fetch_add(&g_tokens, 1);
    return atomic_load(&g_cancel);
}

static void sk_done(void *user, const char *finish, int pt, int ct)
{
    (void)finish;
    (void)pt;
    (void)ct;
    struct req *r = user;
    atomic_store(&r->t_done, hx_clock_now());
    atomic_store(&r->state, 1);
}

static void sk_error(void *user, int code, const char *message)
{
    struct req *r = user;
    if (!atomic_load(&g_cancel)) {
        fprintf(stderr, "# request failed (%s): %s\n", hx_strerror(code), message);
    }
    atomic_store(&r->t_done, hx_clock_now());
    atomic_store(&r->state, 2);
}

static int sk_cancelled(void *user)
{
    (void)user;
    return atomic_load(&g_cancel);
}

static void sk_release(void *user)
{
    struct req *r = user;
    atomic_store(&r->released, 1);
}

static const struct coord_sink g_sink = {sk_token,     sk_done,    sk_error,
                                         sk_cancelled, sk_release, NULL};

/* ---- workload ----------------------------------------------------------------------------- */

struct lengths {
    int n;
    int *in;
    int *out;
};

static int read_lengths(const char *path, int max_in, int max_total, struct lengths *L)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_hetero: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[256];
    int cap = 0;
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == 0) {
            continue;
        }
        int a = 0;
        int b = 0;
        if (sscanf(p, "%d , %d", &a, &b) != 2 || a < 1 || b < 1) {
            fprintf(stderr, "bench_hetero: %s:%d: expected 'input,output' token counts\n", path,
                    lineno);
            fclose(f);
            return -1;
        }
        a = a > max_in ? max_in : a;
        b = a + b > max_total ? max_total - a : b;
        if (b < 1) {
            continue;
        }
        if (L->n == cap) {
            cap = cap ? 2 * cap : 1024;
            L->in = xrealloc(L->in, (size_t)cap * sizeof(int));
            L->out = xrealloc(L->out, (size_t)cap * sizeof(int));
        }
        L->in[L->n] = a;
        L->out[L->n] = b;
        L->n++;
    }
    fclose(f);
    if (L->n == 0) {
        fprintf(stderr, "bench_hetero: %s: no lengths\n", path);
        return -1;
    }
    return 0;
}

static uint64_t g_rng = 88172645463325252ull;

static double uniform01(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return ((double)(g_rng >> 11) + 0.5) / 9007199254740992.0;
}

static char *prompt_of(int n)
{
    char *s = xmalloc((size_t)n * 2 + 1);
    for (int i = 0; i < n; i++) {
        s[2 * i] = 'a';
        s[2 * i + 1] = ' ';
    }
    s[n > 0 ? 2 * n - 1 : 0] = 0;
    return s;
}

/* ---- workers ------------------------------------------------------------------------------ */

static int parse_cpus(const char *s, cpu_set_t *set)
{
    CPU_ZERO(set);
    const char *p = s;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10);
        if (end == p || a < 0 || a >= CPU_SETSIZE) {
            return -1;
        }
        long b = a;
        if (*end == '-') {
            p = end + 1;
            b = strtol(p, &end, 10);
            if (end == p || b < a || b >= CPU_SETSIZE) {
                return -1;
            }
        }
        for (long c = a; c <= b; c++) {
            CPU_SET((int)c, set);
        }
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            return -1;
        }
    }
    return CPU_COUNT(set) > 0 ? 0 : -1;
}

static int read_workers(const char *path, struct wspec *w, int max)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_hetero: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[512];
    int n = 0;
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') {
            continue;
        }
        if (n == max) {
            fprintf(stderr, "bench_hetero: %s: more than %d workers\n", path, max);
            fclose(f);
            return -1;
        }
        struct wspec *s = &w[n];
        memset(s, 0, sizeof(*s));
        if (sscanf(line, "%63s %31s %d %63s %d %31s", s->name, s->device, &s->mps, s->cpus,
                   &s->threads, s->mem) != 6) {
            fprintf(stderr,
                    "bench_hetero: %s:%d: expected NAME DEVICE MPS_PERCENT CPUS THREADS "
                    "MEM_BYTES\n",
                    path, lineno);
            fclose(f);
            return -1;
        }
        cpu_set_t set;
        if (strcmp(s->cpus, "-") != 0 && parse_cpus(s->cpus, &set) != 0) {
            fprintf(stderr, "bench_hetero: %s:%d: bad CPU list '%s'\n", path, lineno, s->cpus);
            fclose(f);
            return -1;
        }
        n++;
    }
    fclose(f);
    return n;
}

static pid_t spawn_worker(const char *helix, const char *endpoint, const char *token,
                          const char *model, const struct wspec *w, const char *log_dir)
{
    pid_t pid = fork();
    if (pid != 0) {
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (log_dir) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/worker-%s.log", log_dir, w->name);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
    }
    if (w->mps > 0) {
        char pct[16];
        snprintf(pct, sizeof(pct), "%d", w->mps);
        setenv("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", pct, 1);
    } else {
        unsetenv("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE");
    }
    if (strcmp(w->cpus, "-") != 0) {
        cpu_set_t set;
        if (parse_cpus(w->cpus, &set) == 0 && sched_setaffinity(0, sizeof(set), &set) != 0) {
            fprintf(stderr, "bench_hetero: sched_setaffinity(%s): %s\n", w->cpus, strerror(errno));
            _exit(126);
        }
    }
    char threads[16];
    snprintf(threads, sizeof(threads), "%d", w->threads);
    char *argv[24];
    int a = 0;
    argv[a++] = (char *)helix;
    argv[a++] = strdup("worker");
    argv[a++] = strdup("--coordinator");
    argv[a++] = (char *)endpoint;
    argv[a++] = strdup("--name");
    argv[a++] = (char *)w->name;
    argv[a++] = strdup("--token");
    argv[a++] = (char *)token;
    argv[a++] = strdup("--device");
    argv[a++] = (char *)w->device;
    argv[a++] = strdup("--model");
    argv[a++] = (char *)model;
    if (w->threads > 0) {
        argv[a++] = strdup("--threads");
        argv[a++] = threads;
    }
    if (strcmp(w->mem, "-") != 0 && strcmp(w->mem, "0") != 0) {
        argv[a++] = strdup("--mem-bytes");
        argv[a++] = (char *)w->mem;
    }
    argv[a] = NULL;
    execv(helix, argv);
    fprintf(stderr, "bench_hetero: exec %s: %s\n", helix, strerror(errno));
    _exit(127);
}

/* ---- measuring ---------------------------------------------------------------------------- */

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
    int i = (int)(p * n);
    return v[i < n ? i : n - 1];
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&ts, NULL);
}

static int submit(struct coord *c, int id, const struct lengths *L, double t_submit)
{
    int k = (int)(uniform01() * L->n);
    k = k < L->n ? k : L->n - 1;
    char *p = prompt_of(L->in[k]);
    struct coord_request q;
    memset(&q, 0, sizeof(q));
    q.sink = &g_sink;
    q.sink_user = &g_req[id];
    q.prompt = p;
    q.prompt_len = strlen(p);
    q.max_tokens = L->out[k];
    q.top_p = 1;
    q.ignore_eos = 1;
    g_req[id].t_submit = t_submit;
    struct hx_diag d;
    struct coord_stream *none = NULL; /* with a sink there is no stream */
    int rc = coord_submit(c, &q, &none, &d);
    xfree(p);
    if (rc != 0) {
        fprintf(stderr, "# submit: %s\n", d.msg);
        atomic_store(&g_req[id].state, 2);
        atomic_store(&g_req[id].released, 1);
    }
    return rc;
}

/* Cancel what still runs and wait until the coordinator let go of every request. */
static void drain(int n, double timeout_s)
{
    atomic_store(&g_cancel, 1);
    double t0 = hx_clock_now();
    for (;;) {
        int open = 0;
        for (int i = 0; i < n; i++) {
            open += !atomic_load(&g_req[i].released);
        }
        if (open == 0 || hx_clock_now() - t0 > timeout_s) {
            if (open) {
                fprintf(stderr, "# %d requests not released after %.0f s\n", open, timeout_s);
            }
            break;
        }
        sleep_s(0.01);
    }
    atomic_store(&g_cancel, 0);
}

static int count_failed(int a, int b)
{
    int f = 0;
    for (int i = a; i < b; i++) {
        f += atomic_load(&g_req[i].state) == 2;
    }
    return f;
}

/* Offline: keep n_flight requests running; decode tokens/s over [warmup, warmup + secs]. */
static int run_offline(struct coord *c, const struct lengths *L, int n_flight, double warmup,
                       double secs, int *n_used)
{
    int n = *n_used;
    int first = n;
    double t0 = hx_clock_now();
    long tok_a = -1;
    double t_a = 0;
    for (;;) {
        double now = hx_clock_now();
        if (tok_a < 0 && now - t0 >= warmup) {
            tok_a = atomic_load(&g_tokens);
            t_a = now;
        }
        if (now - t0 >= warmup + secs) {
            break;
        }
        int running = 0;
        for (int i = first; i < n; i++) {
            running += atomic_load(&g_req[i].state) == 0;
        }
        while (running < n_flight && n < MAX_REQ) {
            if (submit(c, n, L, now) == 0) {
                running++;
            }
            n++;
        }
        sleep_s(0.002);
    }
    long tok_b = atomic_load(&g_tokens);
    double t_b = hx_clock_now();
    int done = 0;
    for (int i = first; i < n; i++) {
        done += atomic_load(&g_req[i].state) == 1;
    }
    int failed = count_failed(first, n);
    drain(n, 60);
    *n_used = n;
    printf("offline_in_flight %d\n", n_flight);
    printf("offline_window_s %.2f\n", t_b - t_a);
    printf("offline_tokens_per_s %.2f\n", (double)(tok_b - tok_a) / (t_b - t_a));
    printf("offline_requests_done %d\n", done);
    printf("offline_failed %d\n", failed);
    fflush(stdout);
    return failed;
}

/* Online: Poisson arrivals; latencies of the requests that arrived in the window. */
static int run_online(struct coord *c, const struct lengths *L, double rate, double warmup,
                      double secs, double drain_s, int *n_used)
{
    int n = *n_used;
    int first = n;
    double t0 = hx_clock_now();
    double next = t0 - log(uniform01()) / rate;
    long tok_a = -1;
    double t_a = 0;
    long tok_b = -1;
    double t_b = 0;
    for (;;) {
        double now = hx_clock_now();
        if (tok_a < 0 && now - t0 >= warmup) {
            tok_a = atomic_load(&g_tokens);
            t_a = now;
        }
        if (tok_b < 0 && now - t0 >= warmup + secs) {
            tok_b = atomic_load(&g_tokens);
            t_b = now;
        }
        while (now >= next && next - t0 < warmup + secs && n < MAX_REQ) {
            g_req[n].in_window = next - t0 >= warmup;
            submit(c, n, L, next);
            n++;
            next += -log(uniform01()) / rate;
        }
        if (now - t0 >= warmup + secs) {
            int open = 0;
            for (int i = first; i < n; i++) {
                open += g_req[i].in_window && atomic_load(&g_req[i].state) == 0;
            }
            if (open == 0 || now - t0 >= warmup + secs + drain_s) {
                break;
            }
        }
        sleep_s(0.001);
    }
    double *ttft = xcalloc((size_t)(n - first) + 1, sizeof(double));
    double *tpot = xcalloc((size_t)(n - first) + 1, sizeof(double));
    int nt = 0;
    int unfinished = 0;
    int arrived = 0;
    for (int i = first; i < n; i++) {
        struct req *r = &g_req[i];
        if (!r->in_window) {
            continue;
        }
        arrived++;
        if (atomic_load(&r->state) != 1) {
            unfinished += atomic_load(&r->state) == 0;
            continue;
        }
        double tf = atomic_load(&r->t_first);
        double td = atomic_load(&r->t_done);
        int k = atomic_load(&r->n_tokens);
        ttft[nt] = tf - r->t_submit;
        tpot[nt] = k > 1 ? (td - tf) / (k - 1) : 0;
        nt++;
    }
    int failed = count_failed(first, n);
    drain(n, 60);
    *n_used = n;
    printf("online_rate_req_s %.3f\n", rate);
    printf("online_arrived %d\n", arrived);
    printf("online_finished %d\n", nt);
    printf("online_unfinished %d\n", unfinished);
    printf("online_failed %d\n", failed);
    printf("online_tokens_per_s %.2f\n", (double)(tok_b - tok_a) / (t_b - t_a));
    printf("online_ttft_p50_s %.4f\nonline_ttft_p95_s %.4f\n", pct(ttft, nt, 0.5),
           pct(ttft, nt, 0.95));
    printf("online_tpot_p50_s %.4f\nonline_tpot_p95_s %.4f\n", pct(tpot, nt, 0.5),
           pct(tpot, nt, 0.95));
    fflush(stdout);
    xfree(ttft);
    xfree(tpot);
    return failed;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_hetero --helix BIN --model DIR --cluster INI --plan DIR\n"
            "                    --model-profile INI --workers FILE --lengths CSV [options]\n"
            "  --machine-profiles INI  NICs for the node capacities (default: none)\n"
            "  --sched S          maxflow (default), swarm or random\n"
            "  --offline N        requests in flight in the offline phase (default 32; 0: skip)\n"
            "  --online R         Poisson requests/s of the online phase (default 0: skip)\n"
            "  --warmup S         seconds before each phase's window (default 10)\n"
            "  --seconds S        each phase's measuring window (default 30)\n"
            "  --max-input N      prompts longer than N tokens are cut to N (default 1024)\n"
            "  --seed N           workload seed (default 1)\n"
            "  --log-dir DIR      worker logs (default: inherit stderr)\n"
            "  --ready-s S        give up if the workers are not ready after S s (default 900)\n");
}

/* A numeric flag's value in [lo, hi], or a message naming the flag. */
static int num_arg(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || end == v || *end || errno || !(x >= lo && x <= hi)) {
        fprintf(stderr, "bench_hetero: %s wants a number in [%g, %g], not '%s'\n", flag, lo, hi,
                v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

int main(int argc, char **argv)
{
    const char *helix = NULL, *model = NULL, *cluster_path = NULL, *plan = NULL;
    const char *profile = NULL, *mprof = NULL, *workers = NULL, *lengths = NULL;
    const char *sched = "maxflow", *log_dir = NULL;
    int offline = 32;
    double online = 0, warmup = 10, secs = 30, ready_s = 900;
    long max_input = 1024;
    unsigned long long seed = 1;
    double x = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(a, "--helix")) {
            helix = v;
        } else if (!strcmp(a, "--model")) {
            model = v;
        } else if (!strcmp(a, "--cluster")) {
            cluster_path = v;
        } else if (!strcmp(a, "--plan")) {
            plan = v;
        } else if (!strcmp(a, "--model-profile")) {
            profile = v;
        } else if (!strcmp(a, "--machine-profiles")) {
            mprof = v;
        } else if (!strcmp(a, "--workers")) {
            workers = v;
        } else if (!strcmp(a, "--lengths")) {
            lengths = v;
        } else if (!strcmp(a, "--sched")) {
            sched = v;
        } else if (!strcmp(a, "--log-dir")) {
            log_dir = v;
        } else if (!strcmp(a, "--offline")) {
            if (num_arg(a, v, 0, 100000, &x) != 0) {
                return 2;
            }
            offline = (int)x;
        } else if (!strcmp(a, "--online")) {
            if (num_arg(a, v, 0, 1e6, &online) != 0) {
                return 2;
            }
        } else if (!strcmp(a, "--warmup")) {
            if (num_arg(a, v, 0, 3600, &warmup) != 0) {
                return 2;
            }
        } else if (!strcmp(a, "--seconds")) {
            if (num_arg(a, v, 0, 36000, &secs) != 0) {
                return 2;
            }
        } else if (!strcmp(a, "--max-input")) {
            if (num_arg(a, v, 1, 1 << 20, &x) != 0) {
                return 2;
            }
            max_input = (long)x;
        } else if (!strcmp(a, "--seed")) {
            if (num_arg(a, v, 0, 1e15, &x) != 0) {
                return 2;
            }
            seed = (unsigned long long)x;
        } else if (!strcmp(a, "--ready-s")) {
            if (num_arg(a, v, 0, 3600, &ready_s) != 0) {
                return 2;
            }
        } else {
            usage();
            return 2;
        }
        i++;
    }
    if (!helix || !model || !cluster_path || !plan || !profile || !workers || !lengths ||
        offline < 0 || online < 0 || secs <= 0 || warmup < 0 || max_input < 1) {
        usage();
        return 2;
    }
    enum coord_sched cs;
    if (coord_sched_parse(sched, &cs) != 0) {
        fprintf(stderr, "bench_hetero: --sched wants maxflow, swarm or random\n");
        return 2;
    }
    log_set_level(LOG_LEVEL_WARN);
    g_rng ^= seed * 0x9E3779B97F4A7C15ull;
    struct hx_diag d;
    struct cluster *cl = NULL;
    struct layout *l = NULL;
    struct model_profile *m = NULL;
    struct model_throughput *tp = NULL;
    struct machine_profiles *mp = NULL;
    if (cluster_read_file(cluster_path, &cl, &d) != 0 ||
        model_profile_read_file(profile, &m, &d) != 0 ||
        model_throughput_for_cluster(m, cl, &tp, &d) != 0 ||
        (mprof && machine_profiles_read_file(mprof, &mp, &d) != 0)) {
        fprintf(stderr, "bench_hetero: %s\n", d.msg);
        return 1;
    }
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/placement.ini", plan);
    if (stat(path, &st) != 0) {
        snprintf(path, sizeof(path), "%s", plan);
    }
    if (layout_read_file(path, cl->n_nodes, &l, &d) != 0) {
        fprintf(stderr, "bench_hetero: %s\n", d.msg);
        return 1;
    }
    static struct wspec ws[MAX_NODES];
    int nw = read_workers(workers, ws, MAX_NODES);
    if (nw < 0) {
        return 1;
    }
    if (nw != cl->n_nodes) {
        fprintf(stderr, "bench_hetero: %s has %d workers, the cluster %d nodes\n", workers, nw,
                cl->n_nodes);
        return 1;
    }
    struct lengths L = {0};
    if (read_lengths(lengths, (int)max_input, 1 << 30, &L) != 0) {
        return 1;
    }
    struct coord_node_spec nodes[MAX_NODES];
    int map[MAX_NODES];
    int n_used = 0;
    for (int i = 0; i < cl->n_nodes; i++) {
        int k = l->nodes[i].n_layers;
        if (k <= 0) {
            continue;
        }
        struct coord_node_spec *s = &nodes[n_used];
        memset(s, 0, sizeof(*s));
        snprintf(s->name, sizeof(s->name), "%s", ws[i].name);
        s->layer_start = l->nodes[i].start;
        s->layer_end = l->nodes[i].start + k;
        int g = model_gpu_index(m, cl->nodes[i].type);
        double cap = g >= 0 ? model_node_capacity(tp, mp, g, k) : -1;
        s->capacity = cap > 0 ? cap : 1e-9;
        map[n_used++] = i;
        printf("# node %s (%s) layers [%d,%d) capacity %.1f tokens/s\n", s->name, cl->nodes[i].type,
               s->layer_start, s->layer_end, s->capacity);
    }
    char token[40];
    snprintf(token, sizeof(token), "bench-%ld-%d", (long)time(NULL), (int)getpid());
    struct coord_opts co;
    memset(&co, 0, sizeof(co));
    co.model_dir = model;
    co.workers = "tcp://127.0.0.1:*";
    co.token = token;
    co.n_nodes = n_used;
    co.nodes = nodes;
    co.sched = cs;
    co.seed = seed;
    co.dead_ms = 10000; /* a GPU worker under load may answer heartbeats late */
    co.max_queue = MAX_REQ;
    struct coord *c = NULL;
    if (coord_new(&co, &c, &d) != 0 || coord_start(c, &d) != 0) {
        fprintf(stderr, "bench_hetero: %s\n", d.msg);
        return 1;
    }
    int rc = 1;
    double t_load = hx_clock_now();
    for (int j = 0; j < n_used; j++) {
        struct wspec *w = &ws[map[j]];
        w->pid = spawn_worker(helix, coord_endpoint(c), token, model, w, log_dir);
        if (w->pid < 0) {
            fprintf(stderr, "bench_hetero: fork: %s\n", strerror(errno));
            goto out;
        }
    }
    for (double waited = 0;; waited += 1) {
        if (coord_wait_ready(c, 1000, &d) == 0) {
            break;
        }
        for (int j = 0; j < n_used; j++) {
            struct wspec *w = &ws[map[j]];
            int status;
            if (w->pid > 0 && waitpid(w->pid, &status, WNOHANG) == w->pid) {
                fprintf(stderr, "bench_hetero: worker %s exited (status %d) before ready\n",
                        w->name, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
                w->pid = 0;
                goto out;
            }
        }
        if (waited >= ready_s) {
            fprintf(stderr, "bench_hetero: %s after %.0f s\n", d.msg, ready_s);
            goto out;
        }
    }
    printf("load_s %.2f\n", hx_clock_now() - t_load);
    printf("nodes_used %d\n", n_used);
    fflush(stdout);
    g_req = xcalloc(MAX_REQ, sizeof(*g_req));
    int n = 0;
    int failed = 0;
    if (offline > 0) {
        failed += run_offline(c, &L, offline, warmup, secs, &n);
    }
    if (online > 0) {
        failed += run_online(c, &L, online, warmup, secs, 2 * secs, &n);
    }
    printf("failed %d\n", failed);
    rc = 0;
out:
    coord_free(c); /* SHUTDOWN to every worker */
    for (int j = 0; j < n_used; j++) {
        struct wspec *w = &ws[map[j]];
        if (w->pid <= 0) {
            continue;
        }
        int status;
        double t0 = hx_clock_now();
        while (waitpid(w->pid, &status, WNOHANG) == 0) {
            if (hx_clock_now() - t0 > 10) {
                kill(w->pid, SIGKILL);
                waitpid(w->pid, &status, 0);
                break;
            }
            sleep_s(0.02);
        }
    }
    layout_free(l);
    machine_profiles_free(mp);
    model_throughput_free(tp);
    model_profile_free(m);
    cluster_free(cl);
    xfree(L.in);
    xfree(L.out);
    xfree(g_req);
    return rc;
}
