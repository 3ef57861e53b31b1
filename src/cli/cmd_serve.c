/*
 * cmd_serve.c - `helix serve`: the coordinator of a real deployment. Reads the cluster and a
 * placement (a `helix plan` output directory, or plans now with --method), waits for the
 * workers the placement names, and serves the OpenAI API (src/api) with the coordinator
 * (src/runtime) plugged in as the api backend. Also home of serve_http_run(), which
 * `helix run --local` shares: the glue from struct api_backend_ops to struct coord.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "api/api.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "cli/cli.h"
#include "cli/serve_int.h"
#include "core/cluster.h"
#include "core/layout.h"
#include "core/model.h"
#include "plan/plan.h"
#include "runtime/runtime.h"
#include "runtime/xsec.h"

/* ---- the api backend: requests go to the coordinator, tokens come back via a sink -------- */

static int sink_token(void *user, const char *text, size_t len)
{
    return api_stream_push(user, text, len) != 0;
}

static void sink_done(void *user, const char *finish, int prompt_tokens, int completion_tokens)
{
    (void)completion_tokens;
    api_stream_set_prompt_tokens(user, (uint32_t)prompt_tokens);
    api_stream_finish(user, strcmp(finish, "length") == 0 ? API_FINISH_LENGTH : API_FINISH_STOP);
}

static void sink_error(void *user, int code, const char *message)
{
    api_stream_fail(user, code, "%s", message);
}

static int sink_cancelled(void *user)
{
    return api_stream_cancelled(user);
}

static void sink_release(void *user)
{
    api_stream_unref(user);
}

static void sink_prompt_tokens(void *user, int n)
{
    api_stream_set_prompt_tokens(user, (uint32_t)n);
}

static const struct coord_sink g_sink = {sink_token,     sink_done,    sink_error,
                                         sink_cancelled, sink_release, sink_prompt_tokens};

static int be_submit(void *ctx, const struct api_request *req, struct api_stream *stream,
                     struct hx_diag *diag)
{
    struct coord *c = ctx;
    struct coord_request q;
    memset(&q, 0, sizeof(q));
    q.sink = &g_sink;
    q.sink_user = stream;
    q.prompt = req->prompt ? req->prompt : "";
    q.prompt_len = strlen(q.prompt);
    q.max_tokens = req->max_tokens > 0 ? (int)req->max_tokens : 16;
    q.temperature = (float)req->temperature;
    q.top_p = req->top_p > 0 ? (float)req->top_p : 1.0f;
    static _Atomic uint64_t unseeded;
    /* no seed given: a different one per request (OpenAI's behaviour), else reproducible */
    q.seed = req->has_seed ? req->seed
                           : (uint64_t)hx_clock_now_us() * 0x9E3779B97F4A7C15ull + ++unseeded;
    /* stop sequences are applied by the api server on the text it streams */
    api_stream_ref(stream);
    struct coord_stream *unused = NULL;
    int rc = coord_submit(c, &q, &unused, diag);
    if (rc != 0) {
        api_stream_unref(stream);
    }
    return rc;
}

static int be_health(void *ctx, struct hx_diag *diag)
{
    int covered = 0;
    int ready = coord_ready_count(ctx, &covered);
    if (!covered) {
        return hx_diag_set(diag, HX_EFULL,
                           "%d workers ready; their layers do not cover the model yet", ready);
    }
    return 0;
}

static void be_metrics(void *ctx, struct strbuf *out)
{
    coord_metrics(ctx, out);
}

static void be_cluster(void *ctx, struct strbuf *out)
{
    coord_cluster_json(ctx, out);
}

static int be_drain(void *ctx, const char *node, struct hx_diag *diag)
{
    return coord_drain(ctx, node, diag);
}

static const struct api_backend_ops g_ops = {be_submit,  NULL,       NULL,    be_health,
                                             be_metrics, be_cluster, be_drain};

static int split_host_port(const char *listen, char *host, size_t hn, uint16_t *port)
{
    const char *colon = strrchr(listen, ':');
    long p = 0;
    if (!colon || cli_parse_long(colon + 1, &p) != 0 || p < 0 || p > 65535) {
        return -1;
    }
    size_t n = (size_t)(colon - listen);
    if (n == 0) {
        snprintf(host, hn, "127.0.0.1");
    } else if (n < hn) {
        memcpy(host, listen, n);
        host[n] = 0;
    } else {
        return -1;
    }
    *port = (uint16_t)p;
    return 0;
}

int serve_http_run(struct coord *c, const char *listen, const char *api_key, volatile int *stop,
                   void (*on_ready)(const char *url, void *user), void *user)
{
    char host[128];
    uint16_t port = 0;
    if (split_host_port(listen, host, sizeof(host), &port) != 0) {
        return cli_usage_error("serve", "--listen wants HOST:PORT, not '%s'", listen);
    }
    struct api_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.host = host;
    cfg.port = port;
    cfg.model_id = coord_model_name(c);
    cfg.api_key = api_key;
    cfg.max_tokens_limit = (uint32_t)coord_max_context(c);
    struct api_server *srv = NULL;
    struct hx_diag d;
    if (api_server_start(&cfg, &g_ops, c, &srv, &d) != 0) {
        return cli_error("cannot serve HTTP on %s: %s", listen, d.msg);
    }
    char url[256];
    snprintf(url, sizeof(url), "http://%s:%u", host, (unsigned)api_server_port(srv));
    if (on_ready) {
        on_ready(url, user);
    }
    while (!*stop) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    api_server_stop(srv);
    return CLI_EXIT_OK;
}

/* ---- helix serve ------------------------------------------------------------------------- */

static volatile int g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: helix serve --cluster FILE (--plan DIR | --method M) --model DIR [options]\n"
            "\n"
            "Coordinate the workers a placement names and serve the OpenAI API (/v1/...),\n"
            "/metrics, the dashboard (/dashboard, its JSON /v1/cluster) and POST\n"
            "/admin/drain/NODE (take a worker out gracefully).\n"
            "Worker i of the cluster registers as node<i> (or the i-th of --names).\n"
            "\n"
            "options:\n"
            "  --cluster FILE        cluster INI (Helix format)\n"
            "  --plan DIR|FILE       a `helix plan` output directory (DIR/placement.ini, or\n"
            "                        Helix's ilp_sol.ini), or a layout file\n"
            "  --method M            plan now with this method (needs --model-profile)\n"
            "  --model-profile P     model profile for planning and node capacities\n"
            "                        (llama2_70b, llama1_30b or a path); without it every\n"
            "                        node's capacity is taken as 1/k for k layers\n"
            "  --model DIR           Hugging Face model directory (config, tokenizer, weights)\n"
            "  --listen HOST:PORT    HTTP address (default 127.0.0.1:8000)\n"
            "  --workers EP          ZeroMQ endpoint for workers (default tcp://127.0.0.1:5555)\n"
            "  --token T             worker shared secret (default $HELIX_TOKEN; required)\n"
            "  --api-key K           require 'Authorization: Bearer K' on HTTP\n"
            "  --names a,b,...       node names in cluster order\n"
            "  --sched S             maxflow (default), random or swarm\n"
            "  --wait-s N            give up if the workers are not all ready after N s (300)\n"
            "  --dead-ms N           declare a silent worker dead after N ms (3000)\n"
            "  --route-wait S        when no live workers cover every layer, let requests wait\n"
            "                        S seconds for one to come back before failing them with\n"
            "                        503 (default 0: fail at once)\n"
            "  --curve M             on, off or auto (default auto: on unless --workers is a\n"
            "                        loopback address): ZeroMQ CURVE on every socket\n"
            "  --key-file F          the coordinator's CURVE secret key (`helix keygen`;\n"
            "                        default: derived from the shared secret); workers then\n"
            "                        need --coordinator-key with its public key\n"
            "  --worker-keys F       admit only these workers' keys: lines 'NAME PUBLIC_KEY'\n"
            "                        (default: any worker holding the shared secret)\n");
}

static void print_url(const char *url, void *user)
{
    (void)user;
    printf("helix serve: all workers ready; OpenAI API on %s/v1, dashboard on %s/dashboard\n", url,
           url);
    fflush(stdout);
}

/* Node capacities (tokens/s) from the profile's throughput model, or 1/k. */
static void capacities(const struct cluster *cl, const struct layout *l,
                       const struct model_profile *m, const struct model_throughput *tp,
                       const struct machine_profiles *mp, struct coord_node_spec *nodes)
{
    for (int i = 0; i < cl->n_nodes; i++) {
        int k = l->nodes[i].n_layers;
        double cap = k > 0 ? 1.0 / k : 0;
        if (m && tp) {
            int g = model_gpu_index(m, cl->nodes[i].type);
            if (g >= 0) {
                cap = model_node_capacity(tp, mp, g, k);
            }
        }
        nodes[i].capacity = cap > 0 ? cap : 1e-9;
    }
}

int cmd_serve(int argc, char **argv)
{
    const char *cluster_arg = NULL;
    const char *plan_dir = NULL;
    const char *method = NULL;
    const char *profile_arg = NULL;
    const char *model_dir = NULL;
    const char *listen = "127.0.0.1:8000";
    const char *workers = "tcp://127.0.0.1:5555";
    const char *token = getenv("HELIX_TOKEN");
    const char *api_key = NULL;
    const char *names = NULL;
    const char *sched = "maxflow";
    long wait_s = 300;
    long dead_ms = 3000;
    int route_wait_ms = 0;
    enum rt_curve curve = RT_CURVE_AUTO;
    const char *key_file = NULL;
    const char *worker_keys_file = NULL;
    struct xsec_peer *wkeys = NULL;
    size_t n_wkeys = 0;
    struct xsec_keypair ckp;
    memset(&ckp, 0, sizeof(ckp));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        if (!v) {
            return cli_usage_error("serve", "unknown or incomplete option '%s'", a);
        }
        if (strcmp(a, "--cluster") == 0) {
            cluster_arg = v;
        } else if (strcmp(a, "--plan") == 0) {
            plan_dir = v;
        } else if (strcmp(a, "--method") == 0) {
            method = v;
        } else if (strcmp(a, "--model-profile") == 0) {
            profile_arg = v;
        } else if (strcmp(a, "--model") == 0) {
            model_dir = v;
        } else if (strcmp(a, "--listen") == 0) {
            listen = v;
        } else if (strcmp(a, "--workers") == 0) {
            workers = v;
        } else if (strcmp(a, "--token") == 0) {
            token = v;
        } else if (strcmp(a, "--api-key") == 0) {
            api_key = v;
        } else if (strcmp(a, "--names") == 0) {
            names = v;
        } else if (strcmp(a, "--sched") == 0) {
            sched = v;
        } else if (strcmp(a, "--wait-s") == 0) {
            if (cli_parse_long(v, &wait_s) != 0 || wait_s < 1) {
                return cli_usage_error("serve", "--wait-s wants seconds, not '%s'", v);
            }
        } else if (strcmp(a, "--route-wait") == 0) {
            double sec = 0;
            if (cli_parse_double(v, &sec) != 0 || !(sec >= 0) || sec > 3600) {
                return cli_usage_error("serve", "--route-wait wants seconds in [0, 3600], not '%s'",
                                       v);
            }
            route_wait_ms = (int)(sec * 1000 + 0.5);
        } else if (strcmp(a, "--dead-ms") == 0) {
            if (cli_parse_long(v, &dead_ms) != 0 || dead_ms < 100 || dead_ms > 600000) {
                return cli_usage_error("serve", "--dead-ms wants 100..600000, not '%s'", v);
            }
        } else if (strcmp(a, "--curve") == 0) {
            if (rt_curve_parse(v, &curve) != 0) {
                return cli_usage_error("serve", "--curve wants on, off or auto, not '%s'", v);
            }
        } else if (strcmp(a, "--key-file") == 0) {
            key_file = v;
        } else if (strcmp(a, "--worker-keys") == 0) {
            worker_keys_file = v;
        } else {
            return cli_usage_error("serve", "unknown option '%s'", a);
        }
        i++;
    }
    if (!cluster_arg || !model_dir || (!plan_dir == !method)) {
        return cli_usage_error("serve",
                               "--cluster, --model and one of --plan/--method are required");
    }
    if (!token || !token[0]) {
        return cli_usage_error("serve",
                               "a worker shared secret is required (--token or HELIX_TOKEN)");
    }
    enum coord_sched cs;
    if (coord_sched_parse(sched, &cs) != 0) {
        return cli_usage_error("serve", "--sched wants maxflow, random or swarm, not '%s'", sched);
    }
    if (method && !profile_arg) {
        return cli_usage_error("serve", "--method needs --model-profile (what to plan for)");
    }
    if ((key_file || worker_keys_file) && curve == RT_CURVE_OFF) {
        return cli_usage_error("serve",
                               "--key-file and --worker-keys need CURVE (not --curve off)");
    }
    if (key_file || worker_keys_file) {
        struct hx_diag kd = {0};
        if (key_file && xsec_key_file_read(key_file, &ckp, &kd) != 0) {
            fprintf(stderr, "hx: error: --key-file: %s\n", kd.msg);
            return CLI_EXIT_USAGE;
        }
        if (worker_keys_file && xsec_keys_file_read(worker_keys_file, &wkeys, &n_wkeys, &kd) != 0) {
            fprintf(stderr, "hx: error: --worker-keys: %s\n", kd.msg);
            memset(&ckp, 0, sizeof(ckp));
            return CLI_EXIT_USAGE;
        }
        if (worker_keys_file && n_wkeys == 0) {
            fprintf(stderr, "hx: error: --worker-keys: %s lists no workers\n", worker_keys_file);
            xfree(wkeys);
            return CLI_EXIT_USAGE;
        }
        curve = RT_CURVE_ON; /* key files mean CURVE, whatever the address */
    }
    int ret = CLI_EXIT_RUNTIME;
    struct hx_diag d;
    struct cluster *cl = NULL;
    struct layout *l = NULL;
    struct model_profile *m = NULL;
    struct model_throughput *tp = NULL;
    struct machine_profiles *mp = NULL;
    struct coord *c = NULL;
    struct coord_node_spec *nodes = NULL;
    char path[4096];
    if (cli_resolve_data(cluster_arg, path, sizeof(path)) != 0 ||
        cluster_read_file(path, &cl, &d) != 0) {
        ret = cli_error("%s", cl ? d.msg : d.msg);
        goto out;
    }
    if (profile_arg) {
        if (cli_resolve_model_profile(profile_arg, path, sizeof(path)) != 0 ||
            model_profile_read_file(path, &m, &d) != 0 ||
            model_throughput_for_cluster(m, cl, &tp, &d) != 0) {
            ret = cli_error("model profile %s: %s", path, d.msg);
            goto out;
        }
        if (cli_resolve_data("data/machine_profiles.ini", path, sizeof(path)) == 0) {
            machine_profiles_read_file(path, &mp, &d);
        }
    }
    if (plan_dir) {
        /* a layout file, or a directory holding placement.ini (helix plan) or ilp_sol.ini */
        struct stat st;
        snprintf(path, sizeof(path), "%s", plan_dir);
        if (stat(plan_dir, &st) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(path, sizeof(path), "%s/placement.ini", plan_dir);
            if (stat(path, &st) != 0) {
                snprintf(path, sizeof(path), "%s/ilp_sol.ini", plan_dir);
            }
            if (stat(path, &st) != 0) {
                snprintf(path, sizeof(path), "%s/placement.ini", plan_dir);
            }
        }
        if (layout_read_file(path, cl->n_nodes, &l, &d) != 0) {
            ret = cli_error("%s", d.msg);
            goto out;
        }
    } else {
        struct plan_problem p = {cl, m, tp, mp, LAYOUT_STRICT};
        struct plan_options po;
        plan_options_init(&po);
        if (plan_method_parse(method, &po.method, &d) != 0) {
            ret = cli_usage_error("serve", "%s", d.msg);
            goto out;
        }
        po.time_limit_s = 30;
        struct plan_result pr;
        if (plan_solve(&p, &po, &pr, &d) != 0) {
            ret = cli_error("planning failed: %s", d.msg);
            goto out;
        }
        l = pr.layout;
        pr.layout = NULL;
        fprintf(stderr, "hx: planned with %s: max-flow %.3f tokens/s\n", method, pr.objective);
        plan_result_release(&pr);
    }
    nodes = xcalloc((size_t)cl->n_nodes, sizeof(*nodes));
    int n_used = 0;
    const char *np = names;
    for (int i = 0; i < cl->n_nodes; i++) {
        char nm[RT_NAME_MAX + 1];
        snprintf(nm, sizeof(nm), "node%d", i);
        if (np && *np) {
            const char *comma = strchr(np, ',');
            size_t len = comma ? (size_t)(comma - np) : strlen(np);
            snprintf(nm, sizeof(nm), "%.*s", (int)(len < RT_NAME_MAX ? len : RT_NAME_MAX), np);
            np = comma ? comma + 1 : np + len;
        }
        if (l->nodes[i].n_layers <= 0) {
            continue; /* unused by the placement */
        }
        snprintf(nodes[n_used].name, sizeof(nodes[n_used].name), "%s", nm);
        nodes[n_used].layer_start = l->nodes[i].start;
        nodes[n_used].layer_end = l->nodes[i].start + l->nodes[i].n_layers;
        n_used++;
    }
    {
        /* capacities are computed over cluster indices, then compacted like nodes[] */
        struct coord_node_spec *all = xcalloc((size_t)cl->n_nodes, sizeof(*all));
        capacities(cl, l, m, tp, mp, all);
        int k = 0;
        for (int i = 0; i < cl->n_nodes; i++) {
            if (l->nodes[i].n_layers > 0) {
                nodes[k++].capacity = all[i].capacity;
            }
        }
        xfree(all);
    }
    struct coord_opts co;
    memset(&co, 0, sizeof(co));
    co.model_dir = model_dir;
    co.workers = workers;
    co.token = token;
    co.n_nodes = n_used;
    co.nodes = nodes;
    co.sched = cs;
    co.dead_ms = (int)dead_ms;
    co.route_wait_ms = route_wait_ms;
    co.curve = curve;
    co.secret_key = key_file ? ckp.secret_key : NULL;
    co.worker_keys = wkeys;
    co.n_worker_keys = (int)n_wkeys;
    if (coord_new(&co, &c, &d) != 0 || coord_start(c, &d) != 0) {
        ret = cli_error("%s", d.msg);
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "hx: waiting for %d workers on %s:", n_used, coord_endpoint(c));
    for (int i = 0; i < n_used; i++) {
        fprintf(stderr, " %s[%d,%d)", nodes[i].name, nodes[i].layer_start, nodes[i].layer_end);
    }
    fprintf(stderr, "\n");
    for (long waited = 0; !g_stop; waited++) {
        if (coord_wait_ready(c, 1000, &d) == 0) {
            break;
        }
        if (waited >= wait_s) {
            ret = cli_error("%s after %ld s", d.msg, wait_s);
            goto out;
        }
    }
    ret = serve_http_run(c, listen, api_key, &g_stop, print_url, NULL);
out:
    coord_free(c);
    xfree(wkeys);
    memset(&ckp, 0, sizeof(ckp));
    xfree(nodes);
    layout_free(l);
    machine_profiles_free(mp);
    model_throughput_free(tp);
    model_profile_free(m);
    cluster_free(cl);
    return ret;
}
