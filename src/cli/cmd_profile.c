/*
 * cmd_profile.c - `helix profile --model DIR [--device D] [--cpus LIST] [--threads N] [--type NAME]
 * [--kv-bytes B] [--out DIR] [--max-seconds S]`: measure one transformer layer of the model on
 * this machine's CPU or GPU (src/runtime/profile.c) and write a "model x node type" profile that
 * `helix flow`, `helix plan` and `helix simulate` accept. An existing profile of the same model in
 * --out is kept and the type added (or replaced), so several node types can be measured one after
 * another.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/status.h"
#include "cli/cli.h"
#include "core/model.h"
#include "engine/engine.h"
#include "runtime/runtime.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: helix profile --model DIR [options]\n"
               "\n"
               "Measure one transformer layer of the model on this machine (the engine on\n"
               "--device) for prefill batches of growing token counts and decode batches of\n"
               "growing sequence counts, and write the model profile the planner reads\n"
               "(OUT/<model>.ini and OUT/profiles/<model>/<type>/{prompt,decode}_bs2time.csv,\n"
               "times in ms per layer). A profile already in OUT for the same model keeps its\n"
               "other types.\n"
               "\n"
               "options:\n"
               "  --model DIR        model directory (default: the bundled models/kjv-llama-6m)\n"
               "  --device D         cpu, cuda or cuda:N (GPU N; needs a `make CUDA=1` build)\n"
               "                     (default cpu); exit status 2 when it cannot be opened\n"
               "  --cpus LIST        pin the profiler (all its threads) to these CPUs, Linux\n"
               "                     cpulist syntax such as 0-3,8 (default: not pinned); exit\n"
               "                     status 2 for a bad list or a CPU that is not online\n"
               "  --threads N        CPU threads of the node type (default: the number of\n"
               "                     --cpus, else all online CPUs)\n"
               "  --type NAME        node type name (default cpu-t<N> on cpu; on a GPU its name\n"
               "                     with [^A-Za-z0-9._-] as '_', e.g. NVIDIA_H100_80GB_HBM3)\n"
               "  --kv-bytes B       KV budget of a worker of this type (default: the worker's)\n"
               "  --weights FMT      measure the layer in q8_0 or q4_0 (quantized at load), bf16,\n"
               "                     f16 or f32 (default: as stored); the profile's model name\n"
               "                     gets -FMT and records weight_format and its layer_bytes\n"
               "  --mem-bytes N      the type's memory cap, as `helix worker --mem-bytes N`\n"
               "                     (suffix K, M, G, T): with k layers its KV budget is N\n"
               "                     minus k layers' weights minus the activation scratch,\n"
               "                     so max_layers and kv_blocks follow the cap\n"
               "  --out DIR          output directory (default profile)\n"
               "  --max-seconds S    measuring time budget (default 3)\n"
               "  --avg-input-len N, --avg-output-len N  the workload's average prompt and\n"
               "                     output lengths (the typical request; default a quarter\n"
               "                     and a sixteenth of the context, at most Helix's 750, 240)\n"
               "  --max-input-len N  longest prompt of the workload (default: half the model's\n"
               "                     context; 2048 to simulate the bundled Azure traces)\n"
               "  --quiet            no progress on stderr\n");
}

struct progress {
    int quiet;
};

static void on_progress(void *user, const char *what, double x, double ms, int i, int n)
{
    const struct progress *pg = user;
    if (!pg->quiet) {
        fprintf(stderr, "  %-6s %2d/%-2d  batch %6.0f  %9.4f ms/layer\n", what, i, n, x, ms);
    }
}

static int run_profile(const char *model, const char *out, const char *type, int threads,
                       struct eng_backend *be, const char *desc, double kv, uint64_t mem,
                       double secs, long mil, const long *avg, const char *weights,
                       struct progress *pg_in);

int cmd_profile(int argc, char **argv)
{
    const char *model_arg = "models/kjv-llama-6m";
    const char *out = "profile";
    const char *type = NULL;
    const char *device = "cpu";
    long threads = 0;
    const char *cpus = NULL;
    double kv = 0;
    uint64_t mem = 0;
    const char *weights = NULL;
    double secs = 3;
    long mil = 0;
    long avg[2] = {0, 0};
    struct progress pg = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--quiet") == 0) {
            pg.quiet = 1;
            continue;
        } else if (!v) {
            return cli_usage_error("profile", "unknown or incomplete option '%s'", a);
        }
        i++;
        if (strcmp(a, "--model") == 0) {
            model_arg = v;
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--type") == 0) {
            type = v;
        } else if (strcmp(a, "--device") == 0) {
            int is_cuda = 0;
            int index = 0;
            if (eng_device_parse(v, &is_cuda, &index, NULL) != 0) {
                return cli_usage_error("profile", "bad value '%s' for --device", v);
            }
            device = v;
        } else if (strcmp(a, "--cpus") == 0) {
            cpus = v;
        } else if (strcmp(a, "--threads") == 0) {
            if (cli_parse_long(v, &threads) != 0 || threads < 1 || threads > 1024) {
                return cli_usage_error("profile", "--threads wants 1..1024, not '%s'", v);
            }
        } else if (strcmp(a, "--kv-bytes") == 0) {
            if (cli_parse_double(v, &kv) != 0 || kv < 1 || kv > 1e15) {
                return cli_usage_error("profile", "--kv-bytes wants a positive size, not '%s'", v);
            }
        } else if (strcmp(a, "--weights") == 0) {
            enum eng_dtype wd;
            if (eng_weight_format_parse(v, &wd) != 0) {
                return cli_usage_error("profile",
                                       "--weights wants q8_0, q4_0, bf16, f16 or f32, "
                                       "not '%s'",
                                       v);
            }
            weights = v;
        } else if (strcmp(a, "--mem-bytes") == 0) {
            if (rt_size_parse(v, &mem) != 0 || mem == 0) {
                return cli_usage_error(
                    "profile", "--mem-bytes wants a size such as 12G or 4096M, not '%s'", v);
            }
        } else if (strcmp(a, "--max-input-len") == 0) {
            if (cli_parse_long(v, &mil) != 0 || mil < 1 || mil > 65536) {
                return cli_usage_error("profile", "--max-input-len wants 1..65536, not '%s'", v);
            }
        } else if (strcmp(a, "--avg-input-len") == 0 || strcmp(a, "--avg-output-len") == 0) {
            long *dst = &avg[a[6] == 'o'];
            if (cli_parse_long(v, dst) != 0 || *dst < 1 || *dst > 65536) {
                return cli_usage_error("profile", "%s wants 1..65536, not '%s'", a, v);
            }
        } else if (strcmp(a, "--max-seconds") == 0) {
            if (cli_parse_double(v, &secs) != 0 || !(secs > 0) || secs > 3600) {
                return cli_usage_error("profile", "--max-seconds wants (0, 3600], not '%s'", v);
            }
        } else {
            return cli_usage_error("profile", "unknown option '%s'", a);
        }
    }
    char model[4096];
    if (cli_resolve_data(model_arg, model, sizeof(model)) != 0) {
        return cli_error("model directory %s not found", model_arg);
    }
    if (cpus) {
        /* before the engine's threads start: they inherit the mask */
        char cpu_list[96];
        int n_cpus = 0;
        int prc = cli_cpus_pin("profile", cpus, &n_cpus, cpu_list, sizeof(cpu_list));
        if (prc != 0) {
            return prc;
        }
        threads = threads == 0 ? n_cpus : threads;
        if (!pg.quiet) {
            fprintf(stderr, "hx: pinned to cpus %s\n", cpu_list);
        }
    }
    if (threads == 0) {
        threads = sysconf(_SC_NPROCESSORS_ONLN);
        threads = threads > 0 && threads <= 1024 ? threads : 1;
    }
    struct eng_backend *be = NULL;
    char desc[160];
    char hw[128];
    int urc = cli_backend_open(device, (int)threads, &be, desc, sizeof(desc), hw, sizeof(hw));
    if (urc != 0) {
        return urc;
    }
    int on_cpu = strcmp(desc, "cpu") == 0;
    char tname[32];
    if (on_cpu) {
        snprintf(tname, sizeof(tname), "cpu-t%ld", threads);
    } else {
        /* the GPU type is the card's name, as a profile type name */
        snprintf(tname, sizeof(tname), "%.31s", hw);
        for (char *q = tname; *q; q++) {
            int ok = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                     (*q >= '0' && *q <= '9') || *q == '.' || *q == '_' || *q == '-';
            *q = ok ? *q : '_';
        }
    }
    if (!type) {
        type = tname;
    }
    int ret = run_profile(model, out, type, (int)threads, be, desc, kv, mem, secs, mil, avg,
                          weights, &pg);
    eng_backend_free(be);
    return ret;
}

static int run_profile(const char *model, const char *out, const char *type, int threads,
                       struct eng_backend *be, const char *desc, double kv, uint64_t mem,
                       double secs, long mil, const long *avg, const char *weights,
                       struct progress *pg_in)
{
    struct progress pg = *pg_in;
    struct rt_profile_opts o;
    memset(&o, 0, sizeof(o));
    o.model_dir = model;
    o.type = type;
    o.threads = threads;
    o.backend = be;
    o.device = desc;
    o.kv_bytes = (uint64_t)kv;
    o.mem_bytes = mem;
    o.weights = weights;
    o.max_seconds = secs;
    o.max_input_len = (int)mil;
    o.avg_input_len = (int)avg[0];
    o.avg_output_len = (int)avg[1];
    o.progress = on_progress;
    o.progress_user = &pg;

    struct hx_diag d;
    struct rt_prof *p = NULL;
    /* merge into an existing profile of the same model in --out */
    {
        struct rt_prof *probe = NULL;
        char base[80];
        rt_profile_model_name(model, base, sizeof(base));
        if (weights) {
            size_t bl = strlen(base);
            snprintf(base + bl, sizeof(base) - bl, "-%s", weights);
            for (char *c = base + bl; *c; c++) {
                *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
            }
        }
        char ini[4400];
        snprintf(ini, sizeof(ini), "%s/%s.ini", out, base);
        struct stat st;
        if (stat(ini, &st) == 0) {
            struct model_profile *mp = NULL;
            if (model_profile_read_file(ini, &mp, &d) != 0 ||
                rt_profile_from_model(mp, &probe, &d) != 0) {
                model_profile_free(mp);
                return cli_error("existing profile %s: %s (remove it or choose another --out)", ini,
                                 d.msg);
            }
            model_profile_free(mp);
            p = probe;
        }
    }
    if (!pg.quiet && strcmp(desc, "cpu") == 0) {
        fprintf(stderr, "hx: profiling %s (type %s, %d threads, %.3g s) ...\n", model, type,
                threads, secs);
    } else if (!pg.quiet) {
        fprintf(stderr, "hx: profiling %s (type %s, on %s, %.3g s) ...\n", model, type, desc, secs);
    }
    if (rt_profile_measure(&o, &p, &d) != 0) {
        rt_profile_free(p);
        return cli_error("%s", d.msg);
    }
    char ini[4400];
    if (rt_profile_write(p, out, ini, sizeof(ini), &d) != 0) {
        rt_profile_free(p);
        return cli_error("%s", d.msg);
    }
    /* read it back: what the planner will see */
    struct model_profile *mp = NULL;
    if (model_profile_read_file(ini, &mp, &d) != 0) {
        rt_profile_free(p);
        return cli_error("wrote %s but cannot read it back: %s", ini, d.msg);
    }
    const struct rt_prof_type *t = &p->types[p->n_types - 1];
    for (int i = 0; i < p->n_types; i++) {
        if (strcmp(p->types[i].type, type) == 0) {
            t = &p->types[i];
        }
    }
    printf("%s\n", ini);
    printf("type %s: max_layers %d, kv_blocks(1) %d, prompt %d points up to %.0f tokens "
           "(%.3f ms), decode %d points up to %.0f sequences (%.3f ms)\n",
           t->type, t->max_layers, t->kv_blocks[0], t->n_prompt, t->prompt_x[t->n_prompt - 1],
           t->prompt_ms[t->n_prompt - 1], t->n_decode, t->decode_x[t->n_decode - 1],
           t->decode_ms[t->n_decode - 1]);
    model_profile_free(mp);
    rt_profile_free(p);
    return CLI_EXIT_OK;
}
