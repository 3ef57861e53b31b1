/*
 * cmd_run.c - `helix run --local [SPEC]` (what `make run` calls): a small heterogeneous
 * cluster on this machine. Starts the coordinator in this process and one `helix worker`
 * child process per SPEC entry (threads and KV budget differ), plans the bundled model on
 * them from real numbers, serves the OpenAI API and prints the URL and a curl line; Ctrl-C
 * stops everything.
 *
 * Planning: each distinct thread count is profiled (src/runtime/profile.c: one layer, the real
 * engine, about --profile-seconds) or its cached profile reused ($XDG_CACHE_HOME/helix, else
 * build/profile-cache, keyed by the model's files and the thread count); every worker kind
 * THREADS:KV_MB becomes a node type with those curves and its own KV constants; the cluster
 * (every pair linked over loopback) is planned with `auto` (src/plan) and the plan printed.
 * The coordinator's max-flow uses the planner's node capacities (the throughput model's TP(k)).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "cli/cli.h"
#include "cli/serve_int.h"
#include "core/model.h"
#include "engine/engine.h"
#include "runtime/runtime.h"

#define RUN_MAX_WORKERS 8

struct lworker {
    char name[32];
    int threads;
    long kv_mb;
    int gpu; /* 1: a GPU worker (cuda:0) under a memory cap of kv_mb MiB (--mem-bytes) */
    pid_t pid;
    int node; /* index among the coordinator's nodes, -1 if the plan leaves it unused */
};

static volatile int g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: helix run --local [SPEC] [options]\n"
               "\n"
               "Run a coordinator and local workers as a small heterogeneous cluster serving the\n"
               "bundled model, with the OpenAI API on 127.0.0.1.\n"
               "\n"
               "SPEC: comma-separated workers THREADS:KV_MB (a CPU worker) or gpu:MEM_MB (a\n"
               "GPU worker on cuda:0 whose weights + activations + KV are capped at MEM_MB MiB).\n"
               "Default: gpu:24,2:32,1:16 where this binary sees a GPU (the 24 MiB cap holds\n"
               "4 of the bundled model's 6 layers, so the model is split), else 2:32,1:16,1:8.\n"
               "\n"
               "options:\n"
               "  --port P       HTTP port (default 8000; 0 = any free port)\n"
               "  --model DIR    model directory (default: the bundled models/kjv-llama-6m)\n"
               "  --sched S      maxflow (default), random or swarm\n"
               "  --api-key K    require 'Authorization: Bearer K'\n"
               "  --profile-seconds S  measuring time per thread count (default 1)\n"
               "  --plan-seconds S     planner time limit (default 2)\n"
               "  --reprofile    measure again even if a cached profile exists\n"
               "  --curve M      on or off (default off: everything is on loopback) - ZeroMQ\n"
               "                 CURVE between the coordinator and the workers\n"
               "\n"
               "Profiles are cached in $XDG_CACHE_HOME/helix (else build/profile-cache).\n");
}

static int parse_spec(const char *spec, struct lworker *w, int *n)
{
    *n = 0;
    const char *p = spec;
    while (*p) {
        if (*n >= RUN_MAX_WORKERS) {
            return -1;
        }
        char *end = NULL;
        int gpu = strncmp(p, "gpu:", 4) == 0;
        long t = 1;
        if (gpu) {
            p += 4;
        } else {
            t = strtol(p, &end, 10);
            if (end == p || t < 1 || t > 64 || *end != ':') {
                return -1;
            }
            p = end + 1;
        }
        long kv = strtol(p, &end, 10);
        if (end == p || kv < 1 || kv > 1 << 20) {
            return -1;
        }
        p = end;
        w[*n].threads = (int)t;
        w[*n].kv_mb = kv;
        w[*n].gpu = gpu;
        (*n)++;
        if (*p == ',') {
            p++;
        } else if (*p) {
            return -1;
        }
    }
    return *n > 0 ? 0 : -1;
}

static pid_t spawn_worker(const char *self, const char *endpoint, const struct lworker *w,
                          const char *model, int curve)
{
    pid_t pid = fork();
    if (pid != 0) {
        return pid;
    }
    /* never outlive `helix run`, even if it is killed (SIGKILL: SIGTERM would drain, and the
     * coordinator it would drain from is gone) */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char threads[16];
    char kv[32];
    snprintf(threads, sizeof(threads), "%d", w->threads);
    snprintf(kv, sizeof(kv), "%ld", w->kv_mb * 1024 * 1024);
    char a_worker[] = "worker";
    char a_coord[] = "--coordinator";
    char a_name[] = "--name";
    char a_threads[] = "--threads";
    char a_kv[] = "--kv-bytes";
    char a_mem[] = "--mem-bytes";
    char a_model[] = "--model";
    char a_device[] = "--device";
    char v_device[] = "cuda:0";
    char a_curve[] = "--curve";
    char a_on[] = "on";
    char a_off[] = "off";
    char *args[] = {
        (char *)self,    a_worker,      a_coord, (char *)endpoint,      a_name,
        (char *)w->name, a_threads,     threads, w->gpu ? a_mem : a_kv, kv,
        a_model,         (char *)model, a_curve, curve ? a_on : a_off,  w->gpu ? a_device : NULL,
        v_device,        NULL};
    execv(self, args);
    fprintf(stderr, "hx: error: cannot start %s: %s\n", self, strerror(errno));
    _exit(127);
}

static void stop_children(struct lworker *w, int n)
{
    /* the coordinator already sent SHUTDOWN; give them a moment, then insist */
    for (int round = 0; round < 3; round++) {
        int alive = 0;
        for (int i = 0; i < n; i++) {
            if (w[i].pid > 0) {
                if (waitpid(w[i].pid, NULL, WNOHANG) == w[i].pid) {
                    w[i].pid = 0;
                } else {
                    alive++;
                    if (round == 1) {
                        kill(w[i].pid, SIGTERM);
                    } else if (round == 2) {
                        kill(w[i].pid, SIGKILL);
                        waitpid(w[i].pid, NULL, 0);
                        w[i].pid = 0;
                    }
                }
            }
        }
        if (!alive) {
            return;
        }
        struct timespec ts = {0, 500 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

struct ready_info {
    const char *model;
};

static void print_ready(const char *url, void *user)
{
    const struct ready_info *ri = user;
    printf("\nhelix is serving %s on a local heterogeneous cluster.\n", ri->model);
    printf("  OpenAI API:  %s/v1   (metrics: %s/metrics)\n", url, url);
    printf("  dashboard:   %s/dashboard   (the cluster live: placement, flow, bottleneck)\n", url);
    printf("  try:\n    curl -s %s/v1/completions -H 'Content-Type: application/json' "
           "-d '{\"model\": \"%s\", \"prompt\": \"In the beginning\", \"max_tokens\": 32, "
           "\"temperature\": 0}'\n",
           url, ri->model);
    printf("  Ctrl-C stops the coordinator and its workers.\n");
    fflush(stdout);
}

/* FNV-1a of the model's identity: its path and its files' sizes and times. */
static uint64_t model_key(const char *model)
{
    uint64_t h = 1469598103934665603ull;
    char buf[8192];
    const char *dir = model;
    static const char *files[] = {"config.json", "model.safetensors",
                                  "model.safetensors.index.json", "tokenizer.json"};
    snprintf(buf, sizeof(buf), "%s", dir);
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, files[f]);
        if (stat(path, &st) == 0) {
            size_t l = strlen(buf);
            snprintf(buf + l, sizeof(buf) - l, "|%s:%lld:%lld", files[f], (long long)st.st_size,
                     (long long)st.st_mtime);
        }
    }
    for (const char *p = buf; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ull;
    }
    return h;
}

/* The profile cache of this model: $XDG_CACHE_HOME/helix/profiles/<name>-<key>, else
 * <helix home>/build/profile-cache/<name>-<key>. */
static int cache_dir(const char *model, char *out, size_t n)
{
    char base[64];
    rt_profile_model_name(model, base, sizeof(base));
    const char *xdg = getenv("XDG_CACHE_HOME");
    char root[4096];
    if (xdg && xdg[0] == '/') {
        snprintf(root, sizeof(root), "%s/helix/profiles", xdg);
    } else {
        char home[4000];
        if (cli_home_dir(home, sizeof(home)) != 0) {
            return -1;
        }
        snprintf(root, sizeof(root), "%s/build/profile-cache", home);
    }
    int len = snprintf(out, n, "%s/%s-%016llx", root, base, (unsigned long long)model_key(model));
    return len > 0 && (size_t)len < n ? 0 : -1;
}

static void run_progress(void *user, const char *what, double x, double ms, int i, int n)
{
    (void)user;
    (void)x;
    (void)ms;
    if (i == n) {
        fprintf(stderr, " %s", what);
    }
}

/*
 * Profile (or load the cached profile of) every thread count of the SPEC, derive one node
 * type per worker kind (threads, KV budget), write the local profile, plan the cluster.
 * Prints what it does; returns 0 or -1 after printing the error.
 */
static int plan_local(const char *model, struct lworker *w, int n, double prof_secs,
                      double plan_secs, int reprofile, struct coord_node_spec *nodes,
                      double *objective, double *t_plan, char *prof_ini, size_t prof_ini_n)
{
    char cdir[4096];
    if (cache_dir(model, cdir, sizeof(cdir)) != 0) {
        cli_error("cannot name a profile cache directory");
        return -1;
    }
    struct hx_diag d = {0};
    struct rt_prof *local = NULL;
    char types[RUN_MAX_WORKERS][32];
    const char *type_p[RUN_MAX_WORKERS];
    const char *name_p[RUN_MAX_WORKERS];
    int ret = -1;
    for (int i = 0; i < n; i++) {
        if (w[i].gpu) {
            snprintf(types[i], sizeof(types[i]), "gpu-mem%ld", w[i].kv_mb);
        } else {
            snprintf(types[i], sizeof(types[i]), "cpu-t%d-kv%ld", w[i].threads, w[i].kv_mb);
        }
        type_p[i] = types[i];
        name_p[i] = w[i].name;
    }
    for (int i = 0; i < n; i++) {
        if (!w[i].gpu) {
            continue;
        }
        /* a GPU worker: measured now with the real CUDA engine under its memory cap (about
         * a second; not cached, the card may differ from run to run) */
        int seen = 0;
        for (int j = 0; j < i; j++) {
            seen |= w[j].gpu && w[j].kv_mb == w[i].kv_mb;
        }
        if (seen) {
            continue;
        }
        struct eng_backend *be = NULL;
        if (eng_backend_open("cuda:0", 1, &be, &d) != 0) {
            cli_error("worker %s: %s", w[i].name, d.msg);
            goto out;
        }
        fprintf(stderr, "hx: profiling one layer of the model on cuda:0 under %ld MiB (%.3g s):",
                w[i].kv_mb, prof_secs);
        struct rt_profile_opts o;
        memset(&o, 0, sizeof(o));
        o.model_dir = model;
        o.type = types[i];
        o.threads = 1;
        o.backend = be;
        o.device = "cuda:0";
        o.mem_bytes = (uint64_t)w[i].kv_mb * 1024 * 1024;
        o.max_seconds = prof_secs;
        o.progress = run_progress;
        int prc = rt_profile_measure(&o, &local, &d);
        eng_backend_free(be);
        if (prc != 0) {
            fprintf(stderr, "\n");
            cli_error("profiling worker %s: %s", w[i].name, d.msg);
            goto out;
        }
        fprintf(stderr, " done\n");
        printf("profile %s: measured on cuda:0\n", types[i]);
    }
    for (int i = 0; i < n; i++) {
        int seen = w[i].gpu;
        for (int j = 0; j < i; j++) {
            seen |= !w[j].gpu && w[j].threads == w[i].threads;
        }
        if (seen) {
            continue;
        }
        /* the measured curves of this thread count: cached, or measured now */
        char tdir[4200];
        char ini[4400];
        char tname[32];
        snprintf(tdir, sizeof(tdir), "%s/t%d", cdir, w[i].threads);
        snprintf(tname, sizeof(tname), "cpu-t%d", w[i].threads);
        struct rt_prof *meas = NULL;
        struct model_profile *mp = NULL;
        char base[64];
        rt_profile_model_name(model, base, sizeof(base));
        snprintf(ini, sizeof(ini), "%.4200s/%s.ini", tdir, base);
        struct stat st;
        if (!reprofile && stat(ini, &st) == 0 && model_profile_read_file(ini, &mp, &d) == 0 &&
            rt_profile_from_model(mp, &meas, &d) == 0) {
            printf("profile %s: cached %s\n", tname, ini);
        } else {
            rt_profile_free(meas);
            meas = NULL;
            fprintf(stderr, "hx: profiling one layer of %s with %d threads (%.3g s):", base,
                    w[i].threads, prof_secs);
            struct rt_profile_opts o;
            memset(&o, 0, sizeof(o));
            o.model_dir = model;
            o.type = tname;
            o.threads = w[i].threads;
            o.max_seconds = prof_secs;
            o.progress = run_progress;
            double t0 = hx_clock_now();
            if (rt_profile_measure(&o, &meas, &d) != 0 ||
                rt_profile_write(meas, tdir, ini, sizeof(ini), &d) != 0) {
                fprintf(stderr, "\n");
                model_profile_free(mp);
                rt_profile_free(meas);
                cli_error("profiling: %s", d.msg);
                goto out;
            }
            fprintf(stderr, " done\n");
            printf("profile %s: measured in %.1f s -> %s\n", tname, hx_clock_now() - t0, ini);
        }
        model_profile_free(mp);
        for (int j = i; j < n; j++) {
            if (!w[j].gpu && w[j].threads == w[i].threads &&
                rt_profile_derive(meas, tname, model, types[j], (uint64_t)w[j].kv_mb * 1024 * 1024,
                                  &local, &d) != 0) {
                rt_profile_free(meas);
                cli_error("worker %s: %s", w[j].name, d.msg);
                goto out;
            }
        }
        rt_profile_free(meas);
    }
    char ldir[4200];
    snprintf(ldir, sizeof(ldir), "%s/local", cdir);
    struct model_profile *m = NULL;
    if (rt_profile_write(local, ldir, prof_ini, prof_ini_n, &d) != 0 ||
        model_profile_read_file(prof_ini, &m, &d) != 0) {
        cli_error("local profile: %s", d.msg);
        goto out;
    }
    double t0 = hx_clock_now();
    int rc = rt_plan_local(m, n, type_p, name_p, plan_secs, nodes, objective, &d);
    *t_plan = hx_clock_now() - t0;
    model_profile_free(m);
    if (rc != 0) {
        cli_error("planning the local cluster: %s", d.msg);
        goto out;
    }
    ret = 0;
out:
    rt_profile_free(local);
    return ret;
}

int cmd_run(int argc, char **argv)
{
    int local = 0;
    const char *spec = NULL;
    const char *port = "8000";
    const char *model_arg = "models/kjv-llama-6m";
    const char *sched = "maxflow";
    const char *api_key = NULL;
    double prof_secs = 1;
    double plan_secs = 2;
    int reprofile = 0;
    int curve = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--local") == 0) {
            local = 1;
        } else if (strcmp(a, "--port") == 0 && v) {
            port = v;
            i++;
        } else if (strcmp(a, "--model") == 0 && v) {
            model_arg = v;
            i++;
        } else if (strcmp(a, "--sched") == 0 && v) {
            sched = v;
            i++;
        } else if (strcmp(a, "--profile-seconds") == 0 && v) {
            if (cli_parse_double(v, &prof_secs) != 0 || !(prof_secs > 0) || prof_secs > 600) {
                return cli_usage_error("run", "--profile-seconds wants (0, 600]");
            }
            i++;
        } else if (strcmp(a, "--plan-seconds") == 0 && v) {
            if (cli_parse_double(v, &plan_secs) != 0 || !(plan_secs > 0) || plan_secs > 600) {
                return cli_usage_error("run", "--plan-seconds wants (0, 600]");
            }
            i++;
        } else if (strcmp(a, "--reprofile") == 0) {
            reprofile = 1;
        } else if (strcmp(a, "--curve") == 0 && v) {
            if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
                return cli_usage_error("run", "--curve wants on or off, not '%s'", v);
            }
            curve = strcmp(v, "on") == 0;
            i++;
        } else if (strcmp(a, "--api-key") == 0 && v) {
            api_key = v;
            i++;
        } else if (a[0] != '-') {
            spec = a;
        } else {
            return cli_usage_error("run", "unknown or incomplete option '%s'", a);
        }
    }
    if (!local) {
        return cli_usage_error("run", "only --local is supported (use `helix serve` and "
                                      "`helix worker` for a real cluster)");
    }
    if (!spec) {
        spec = eng_cuda_available() > 0 ? "gpu:24,2:32,1:16" : "2:32,1:16,1:8";
    }
    struct lworker w[RUN_MAX_WORKERS];
    memset(w, 0, sizeof(w));
    int n = 0;
    if (parse_spec(spec, w, &n) != 0) {
        return cli_usage_error(
            "run", "SPEC wants THREADS:KV_MB or gpu:MEM_MB[,...] (at most %d), not '%s'",
            RUN_MAX_WORKERS, spec);
    }
    enum coord_sched cs;
    if (coord_sched_parse(sched, &cs) != 0) {
        return cli_usage_error("run", "--sched wants maxflow, random or swarm");
    }
    char model[4096];
    if (cli_resolve_data(model_arg, model, sizeof(model)) != 0) {
        return cli_error("model directory %s not found", model_arg);
    }
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%s", port);

    /* profile every thread count (or reuse the cache), derive each worker kind, plan */
    struct coord_node_spec nodes[RUN_MAX_WORKERS];
    memset(nodes, 0, sizeof(nodes));
    for (int i = 0; i < n; i++) {
        if (w[i].gpu) {
            snprintf(w[i].name, sizeof(w[i].name), "w%d-gpu", i);
        } else {
            snprintf(w[i].name, sizeof(w[i].name), "w%d-t%d", i, w[i].threads);
        }
    }
    double objective = 0;
    double t_plan = 0;
    char prof_ini[4400];
    if (plan_local(model, w, n, prof_secs, plan_secs, reprofile, nodes, &objective, &t_plan,
                   prof_ini, sizeof(prof_ini)) != 0) {
        return CLI_EXIT_RUNTIME;
    }

    char token[33];
    {
        unsigned char raw[16] = {0};
        FILE *f = fopen("/dev/urandom", "rb");
        if (!f || fread(raw, 1, sizeof(raw), f) != sizeof(raw)) {
            if (f) {
                fclose(f);
            }
            return cli_error("cannot read /dev/urandom for the worker secret");
        }
        fclose(f);
        for (int i = 0; i < 16; i++) {
            snprintf(token + 2 * i, 3, "%02x", raw[i]);
        }
    }
    struct coord_opts co;
    memset(&co, 0, sizeof(co));
    co.model_dir = model;
    co.workers = "tcp://127.0.0.1:*";
    co.token = token;
    /* the coordinator gets the nodes the plan uses */
    struct coord_node_spec used[RUN_MAX_WORKERS];
    int n_used = 0;
    for (int i = 0; i < n; i++) {
        w[i].node = -1;
        if (nodes[i].layer_end > nodes[i].layer_start) {
            w[i].node = n_used;
            used[n_used++] = nodes[i];
        }
    }
    co.n_nodes = n_used;
    co.nodes = used;
    co.sched = cs;
    co.curve = curve ? RT_CURVE_ON : RT_CURVE_OFF;
    struct coord *c = NULL;
    struct hx_diag d;
    if (coord_new(&co, &c, &d) != 0 || coord_start(c, &d) != 0) {
        coord_free(c);
        return cli_error("%s", d.msg);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    setenv("HELIX_TOKEN", token, 1); /* children read the secret from the environment */
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (sl <= 0) {
        coord_free(c);
        return cli_error("cannot find the helix binary (/proc/self/exe)");
    }
    self[sl] = 0;
    printf("plan (auto over the profile %s, %.2f s): predicted max-flow %.1f tokens/s\n", prof_ini,
           t_plan, objective);
    printf("helix run --local: coordinator on %s; %d workers:\n", coord_endpoint(c), n_used);
    for (int i = 0; i < n; i++) {
        char what[64];
        if (w[i].gpu) {
            snprintf(what, sizeof(what), "cuda:0 mem=%ld MiB", w[i].kv_mb);
        } else {
            snprintf(what, sizeof(what), "threads=%d kv=%ld MiB", w[i].threads, w[i].kv_mb);
        }
        if (w[i].node < 0) {
            printf("  %-8s %s unused by the plan (not started)\n", w[i].name, what);
            continue;
        }
        const struct coord_node_spec *ns = &used[w[i].node];
        printf("  %-8s %s layers [%d, %d) capacity %.1f tokens/s\n", w[i].name, what,
               ns->layer_start, ns->layer_end, ns->capacity);
        w[i].pid = spawn_worker(self, coord_endpoint(c), &w[i], model, curve);
        if (w[i].pid < 0) {
            g_stop = 1;
        }
    }
    fflush(stdout);
    int ret = CLI_EXIT_OK;
    for (int waited = 0; !g_stop; waited++) {
        if (coord_wait_ready(c, 500, &d) == 0) {
            break;
        }
        if (waited > 120) {
            ret = cli_error("workers did not come up: %s", d.msg);
            g_stop = 1;
        }
    }
    if (!g_stop) {
        struct ready_info ri = {coord_model_name(c)};
        ret = serve_http_run(c, listen, api_key, &g_stop, print_ready, &ri);
    }
    coord_free(c); /* sends SHUTDOWN */
    stop_children(w, n);
    return ret;
}
