/*
 * cmd_run.c - `helix run --local [SPEC]` (what `make run` calls): a small heterogeneous
 * cluster on this machine. Starts the coordinator in this process and one `helix worker`
 * child process per SPEC entry (threads and KV budget differ), places the bundled model on
 * them, serves the OpenAI API and prints the URL and a curl line; Ctrl-C stops everything.
 *
 * Placement (documented minimal path, see docs/serving.md): the planner needs a model profile
 * per GPU type and there is none for the bundled model on CPU workers, so the local cluster
 * uses a fixed heterogeneous layout: the largest worker holds every layer (a one-stage
 * pipeline) and the others form a second pipeline, layers split in proportion to threads.
 * Node capacities (tokens/s, for the max-flow and IWRR) are threads / layers held.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/status.h"
#include "cli/cli.h"
#include "cli/serve_int.h"
#include "runtime/runtime.h"

#define RUN_MAX_WORKERS 8

struct lworker {
    char name[32];
    int threads;
    long kv_mb;
    pid_t pid;
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
               "SPEC: comma-separated workers THREADS:KV_MB (default 2:32,1:16,1:8).\n"
               "\n"
               "options:\n"
               "  --port P       HTTP port (default 8000; 0 = any free port)\n"
               "  --model DIR    model directory (default: the bundled models/kjv-llama-6m)\n"
               "  --sched S      maxflow (default), random or swarm\n"
               "  --api-key K    require 'Authorization: Bearer K'\n");
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
        long t = strtol(p, &end, 10);
        if (end == p || t < 1 || t > 64 || *end != ':') {
            return -1;
        }
        p = end + 1;
        long kv = strtol(p, &end, 10);
        if (end == p || kv < 1 || kv > 1 << 20) {
            return -1;
        }
        p = end;
        w[*n].threads = (int)t;
        w[*n].kv_mb = kv;
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
                          const char *model)
{
    pid_t pid = fork();
    if (pid != 0) {
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive `helix run`, even if it is killed */
    char threads[16];
    char kv[32];
    snprintf(threads, sizeof(threads), "%d", w->threads);
    snprintf(kv, sizeof(kv), "%ld", w->kv_mb * 1024 * 1024);
    char a_worker[] = "worker";
    char a_coord[] = "--coordinator";
    char a_name[] = "--name";
    char a_threads[] = "--threads";
    char a_kv[] = "--kv-bytes";
    char a_model[] = "--model";
    char *args[] = {(char *)self, a_worker,
                    a_coord,      (char *)endpoint,
                    a_name,       (char *)w->name,
                    a_threads,    threads,
                    a_kv,         kv,
                    a_model,      (char *)model,
                    NULL};
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
    printf("  try:\n    curl -s %s/v1/completions -H 'Content-Type: application/json' "
           "-d '{\"model\": \"%s\", \"prompt\": \"In the beginning\", \"max_tokens\": 32, "
           "\"temperature\": 0}'\n",
           url, ri->model);
    printf("  Ctrl-C stops the coordinator and its workers.\n");
    fflush(stdout);
}

int cmd_run(int argc, char **argv)
{
    int local = 0;
    const char *spec = "2:32,1:16,1:8";
    const char *port = "8000";
    const char *model_arg = "models/kjv-llama-6m";
    const char *sched = "maxflow";
    const char *api_key = NULL;
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
    struct lworker w[RUN_MAX_WORKERS];
    memset(w, 0, sizeof(w));
    int n = 0;
    if (parse_spec(spec, w, &n) != 0) {
        return cli_usage_error("run", "SPEC wants THREADS:KV_MB[,...] (at most %d), not '%s'",
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

    /* placement: the largest worker holds everything, the rest form one pipeline */
    int big = 0;
    for (int i = 1; i < n; i++) {
        if (w[i].threads > w[big].threads) {
            big = i;
        }
    }
    struct coord_node_spec nodes[RUN_MAX_WORKERS];
    memset(nodes, 0, sizeof(nodes));
    int n_layers = 6; /* read from config.json below */
    {
        char cfgp[4200];
        snprintf(cfgp, sizeof(cfgp), "%s/config.json", model);
        FILE *f = fopen(cfgp, "r");
        if (f) {
            char buf[8192];
            size_t len = fread(buf, 1, sizeof(buf) - 1, f);
            buf[len] = 0;
            fclose(f);
            const char *k = strstr(buf, "\"num_hidden_layers\"");
            if (k && (k = strchr(k, ':')) != NULL) {
                n_layers = (int)strtol(k + 1, NULL, 10);
            }
        }
    }
    int rest_threads = 0;
    for (int i = 0; i < n; i++) {
        if (i != big) {
            rest_threads += w[i].threads;
        }
    }
    int layer = 0;
    int rest_seen = 0;
    int n_rest = n - 1;
    int rest_done = 0;
    for (int i = 0; i < n; i++) {
        snprintf(w[i].name, sizeof(w[i].name), "w%d-t%d", i, w[i].threads);
        snprintf(nodes[i].name, sizeof(nodes[i].name), "%.31s", w[i].name);
        if (i == big || n_rest == 0 || n_rest > n_layers) {
            nodes[i].layer_start = 0;
            nodes[i].layer_end = n_layers;
        } else {
            rest_seen += w[i].threads;
            rest_done++;
            int end = rest_done == n_rest ? n_layers : (n_layers * rest_seen) / rest_threads;
            int min_end = layer + 1;
            int max_end = n_layers - (n_rest - rest_done);
            end = end < min_end ? min_end : end > max_end ? max_end : end;
            nodes[i].layer_start = layer;
            nodes[i].layer_end = end;
            layer = end;
        }
        nodes[i].capacity =
            (double)w[i].threads / (double)(nodes[i].layer_end - nodes[i].layer_start);
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
    co.n_nodes = n;
    co.nodes = nodes;
    co.sched = cs;
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
    printf("helix run --local: coordinator on %s; %d workers:\n", coord_endpoint(c), n);
    for (int i = 0; i < n; i++) {
        printf("  %-8s threads=%d kv=%ld MiB layers [%d, %d) capacity %.3g\n", w[i].name,
               w[i].threads, w[i].kv_mb, nodes[i].layer_start, nodes[i].layer_end,
               nodes[i].capacity);
        w[i].pid = spawn_worker(self, coord_endpoint(c), &w[i], model);
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
