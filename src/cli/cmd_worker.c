/*
 * cmd_worker.c - `helix worker`: join a coordinator under a name, load the layer range it
 * assigns, and serve until it says SHUTDOWN. SIGTERM or SIGINT drains (no new requests are
 * routed here; exit when those in flight are done); a second signal exits at once.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/status.h"
#include "cli/cli.h"
#include "engine/engine.h"
#include "runtime/runtime.h"
#include "runtime/xsec.h"

static volatile int g_stop;
static volatile int g_drain;

/* The first SIGTERM/SIGINT drains, the second stops. */
static void on_signal(int sig)
{
    (void)sig;
    if (g_drain) {
        g_stop = 1;
    }
    g_drain = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: helix worker --coordinator tcp://HOST:PORT --name NODE [options]\n"
            "\n"
            "Join a helix coordinator as node NODE (the name the plan gives it), load the\n"
            "layers it assigns, and serve them until the coordinator shuts down. SIGTERM or\n"
            "SIGINT drains: the coordinator routes nothing new here and the worker exits when\n"
            "the requests in flight are done; a second signal exits at once.\n"
            "\n"
            "options:\n"
            "  --coordinator EP   the coordinator's worker endpoint (required)\n"
            "  --name NODE        node name, [A-Za-z0-9._-]{1,63} (required)\n"
            "  --token T          shared secret (default: $HELIX_TOKEN; required)\n"
            "  --device D         cpu, cuda or cuda:N (GPU N; needs a `make CUDA=1` build)\n"
            "                     (default cpu); exit status 2 when it cannot be opened\n"
            "  --kv-dtype T       KV cache elements: bf16 (the GPU's default) or f32 (the CPU's)\n"
            "  --cpus LIST        pin the worker (all its threads) to these CPUs, Linux cpulist\n"
            "                     syntax such as 0-3,8,10-11 (default: not pinned); exit status\n"
            "                     2 for a bad list or a CPU that is not online; the device it\n"
            "                     reports becomes e.g. \"cpu (cpus 0-3)\"\n"
            "  --threads N        CPU threads for the engine (default: the number of --cpus,\n"
            "                     else all online CPUs)\n"
            "  --kv-bytes B       KV cache budget in bytes (default: the engine's)\n"
            "  --mem-bytes N      cap weights + activations + KV cache at N bytes (suffix K, M,\n"
            "                     G, T: powers of 1024, e.g. 40G), so a big card can stand in\n"
            "                     for a smaller one: the KV budget is N minus the weights of\n"
            "                     the assigned layers minus the activation scratch; exit status\n"
            "                     2 when the weights do not fit (--kv-bytes, if given,\n"
            "                     lowers the KV budget further)\n"
            "  --listen EP        data endpoint to bind (default tcp://127.0.0.1:*); other\n"
            "                     workers connect here, so use a reachable address across hosts\n"
            "  --model DIR        model directory on this host (default: the coordinator's path)\n"
            "  --curve M          on, off or auto (default auto: on unless --coordinator is\n"
            "                     loopback): ZeroMQ CURVE on the control and data sockets;\n"
            "                     must match the coordinator's mode\n"
            "  --coordinator-key K  the coordinator's CURVE public key (Z85, 40 characters;\n"
            "                     default: derived from the shared secret, as a coordinator\n"
            "                     without --key-file does)\n"
            "  --key-file F       this worker's CURVE secret key (`helix keygen`; default: a\n"
            "                     fresh key pair at every start), for a coordinator that admits\n"
            "                     workers from --worker-keys\n"
            "  --drain-timeout S  after SIGTERM/SIGINT, exit after S seconds even if requests\n"
            "                     are still in flight (default 60; they are then re-routed)\n");
}

int cmd_worker(int argc, char **argv)
{
    struct worker_opts o;
    memset(&o, 0, sizeof(o));
    o.token = getenv("HELIX_TOKEN");
    const char *device = "cpu";
    const char *kv_dtype = NULL; /* the backend's default */
    const char *cpus = NULL;     /* --cpus: not pinned */
    const char *key_file = NULL;
    struct xsec_keypair kp;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        if (!v) {
            return cli_usage_error("worker", "unknown or incomplete option '%s'", a);
        }
        long n = 0;
        if (strcmp(a, "--coordinator") == 0) {
            o.coordinator = v;
        } else if (strcmp(a, "--name") == 0) {
            o.name = v;
        } else if (strcmp(a, "--token") == 0) {
            o.token = v;
        } else if (strcmp(a, "--listen") == 0) {
            o.data_endpoint = v;
        } else if (strcmp(a, "--model") == 0) {
            o.model_dir = v;
        } else if (strcmp(a, "--curve") == 0) {
            if (rt_curve_parse(v, &o.curve) != 0) {
                return cli_usage_error("worker", "--curve wants on, off or auto, not '%s'", v);
            }
        } else if (strcmp(a, "--coordinator-key") == 0) {
            if (!proto_curve_key_ok(v)) {
                return cli_usage_error("worker",
                                       "--coordinator-key wants a Z85 CURVE public key (%d "
                                       "characters), not '%s'",
                                       PROTO_CURVE_KEY_LEN, v);
            }
            o.coordinator_key = v;
        } else if (strcmp(a, "--key-file") == 0) {
            key_file = v;
        } else if (strcmp(a, "--device") == 0) {
            int is_cuda = 0;
            int index = 0;
            if (eng_device_parse(v, &is_cuda, &index, NULL) != 0) {
                return cli_usage_error("worker", "bad value '%s' for --device", v);
            }
            device = v;
        } else if (strcmp(a, "--cpus") == 0) {
            cpus = v;
        } else if (strcmp(a, "--kv-dtype") == 0) {
            enum eng_dtype kv_dt;
            if (eng_kv_dtype_parse(v, &kv_dt) != 0) {
                return cli_usage_error("worker", "--kv-dtype wants bf16 or f32, not '%s'", v);
            }
            kv_dtype = v;
        } else if (strcmp(a, "--mem-bytes") == 0) {
            if (rt_size_parse(v, &o.mem_bytes) != 0 || o.mem_bytes == 0) {
                return cli_usage_error(
                    "worker", "--mem-bytes wants a byte count such as 40G or 512M, not '%s'", v);
            }
        } else if (strcmp(a, "--threads") == 0) {
            if (cli_parse_long(v, &n) != 0 || n < 1 || n > 1024) {
                return cli_usage_error("worker", "--threads wants 1..1024, not '%s'", v);
            }
            o.threads = (int)n;
        } else if (strcmp(a, "--drain-timeout") == 0) {
            double sec = 0;
            if (cli_parse_double(v, &sec) != 0 || !(sec > 0) || sec > 86400) {
                return cli_usage_error("worker",
                                       "--drain-timeout wants seconds in (0, 86400], not '%s'", v);
            }
            o.drain_timeout_ms = (int)(sec * 1000 + 0.5);
        } else if (strcmp(a, "--kv-bytes") == 0) {
            double b = 0;
            if (cli_parse_double(v, &b) != 0 || b < 1 || b > 1e15) {
                return cli_usage_error("worker", "--kv-bytes wants a byte count, not '%s'", v);
            }
            o.kv_bytes = (uint64_t)b;
        } else {
            return cli_usage_error("worker", "unknown option '%s'", a);
        }
        i++;
    }
    if (!o.coordinator || !o.name) {
        return cli_usage_error("worker", "--coordinator and --name are required");
    }
    if (!o.token || !o.token[0]) {
        return cli_usage_error("worker", "a shared secret is required (--token or HELIX_TOKEN)");
    }
    /* pin before any engine or ZeroMQ thread starts: they inherit the mask */
    char cpu_list[96] = "";
    if (cpus) {
        int n_cpus = 0;
        int prc = cli_cpus_pin("worker", cpus, &n_cpus, cpu_list, sizeof(cpu_list));
        if (prc != 0) {
            return prc;
        }
        if (o.threads == 0) {
            o.threads = n_cpus;
        }
    }
    if (key_file) {
        struct hx_diag kd = {0};
        if (xsec_key_file_read(key_file, &kp, &kd) != 0) {
            fprintf(stderr, "hx: error: --key-file: %s\n", kd.msg);
            return CLI_EXIT_USAGE;
        }
        o.secret_key = kp.secret_key;
    }
    /* open the device before joining: a worker that cannot compute should not register */
    struct eng_backend *be = NULL;
    char desc[160];
    char hw[128];
    int urc = cli_backend_open(device, o.threads, &be, desc, sizeof(desc), hw, sizeof(hw));
    if (urc != 0) {
        return urc;
    }
    if (cpus) {
        size_t dl = strlen(desc);
        snprintf(desc + dl, sizeof(desc) - dl, " (cpus %s)", cpu_list);
        log_info("worker %s: pinned to cpus %s, %d engine threads", o.name, cpu_list, o.threads);
    }
    if (kv_dtype) {
        struct hx_diag kd = {0};
        if (eng_backend_set_kv_dtype(be, kv_dtype, &kd) != HX_OK) {
            fprintf(stderr, "hx: error: --kv-dtype %s: %s\n", kv_dtype, kd.msg);
            eng_backend_free(be);
            return CLI_EXIT_USAGE;
        }
    }
    o.backend = be;
    o.device = desc;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.stop = &g_stop;
    o.drain = &g_drain;
    o.drain_reason = "signal";
    struct hx_diag d;
    int rc = worker_run(&o, &d);
    eng_backend_free(be);
    if (rc == HX_ERANGE) {
        /* --mem-bytes cannot hold the assigned layers: the flag's value is wrong */
        fprintf(stderr, "hx: error: worker %s: %s\n", o.name, d.msg);
        return CLI_EXIT_USAGE;
    }
    if (rc != 0) {
        return cli_error("worker %s: %s", o.name, d.msg);
    }
    return CLI_EXIT_OK;
}
