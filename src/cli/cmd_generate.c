/*
 * cmd_generate.c - `helix generate`: run the model in one process. Tokenizes the prompt
 * (models/<dir>/tokenizer.json), prefills it, decodes with the sampler and streams the text;
 * --json prints prompt_ids, generated_ids, text and tokens_per_second instead.
 * `--layers S:E` runs one layer range over the prompt as a pipeline worker would (first stage:
 * token ids; later stages: activations from --hidden-in) and writes its output activations to
 * --dump-hidden, so a split pipeline can be checked against the whole model from the shell.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "cli/cli.h"
#include "engine/engine.h"
#include "engine/tokenizer.h"

#define DEFAULT_MODEL "models/kjv-llama-6m"

struct gen_opts {
    const char *model;
    const char *prompt;
    const char *prompt_ids;
    long n;
    double temperature;
    long top_k;
    double top_p;
    long seed;
    long threads;
    const char *device;
    const char *kv_dtype; /* NULL: the backend's default */
    int json;
    int layer_begin;
    int layer_end; /* -1: all */
    const char *dump_hidden;
    const char *hidden_in;
    long max_tokens;
    enum eng_dtype weights; /* ENG_DTYPE_OTHER: as stored */
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: helix generate [--model DIR] (--prompt TEXT | --prompt-ids I,J,...) [options]\n"
        "\n"
        "  --model DIR|FILE     Hugging Face model directory, or a GGUF file (LLaMA)\n"
        "                       (default %s)\n"
        "  --weights FMT        q8_0 or q4_0: quantize the matmul weights at load;\n"
        "                       bf16, f16, f32: convert them (default: as stored)\n"
        "  --prompt TEXT        prompt text (BOS is prepended)\n"
        "  --prompt-ids LIST    prompt as comma-separated token ids (no tokenizer needed)\n"
        "  -n, --max-new N      tokens to generate               (default 48)\n"
        "  --temperature T      0 = greedy                       (default 0)\n"
        "  --top-k K            0 = off                          (default 0)\n"
        "  --top-p P            1 = off                          (default 1)\n"
        "  --seed S             sampler seed                     (default 0)\n"
        "  --threads N          CPU threads, 0 = all online CPUs (default 0)\n"
        "  --device D           cpu, cuda or cuda:N (GPU N; needs a `make CUDA=1` build)\n"
        "  --kv-dtype T         KV cache elements: bf16 (the GPU's default) or f32 (the CPU's)\n"
        "                       (default cpu)\n"
        "  --max-tokens N       tokens per forward step (prefill chunk) (default 256)\n"
        "  --json               print prompt_ids, generated_ids, text, tokens_per_second\n"
        "  --layers S:E         run only layers [S, E) over the prompt, as a worker would\n"
        "  --dump-hidden FILE   with --layers: write the range's output activations\n"
        "                       (float32 [tokens x hidden], little-endian)\n"
        "  --hidden-in FILE     with --layers S:E, S > 0: the input activations (a previous\n"
        "                       range's --dump-hidden)\n"
        "  -h, --help           this text\n",
        DEFAULT_MODEL);
}

static int parse_ids(const char *s, int32_t **out, int *n_out)
{
    int cap = 16;
    int n = 0;
    int32_t *ids = xmalloc((size_t)cap * sizeof(int32_t));
    const char *p = s;
    while (*p) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX || (*end != ',' && *end != '\0')) {
            xfree(ids);
            return -1;
        }
        if (n == cap) {
            cap *= 2;
            ids = xrealloc(ids, (size_t)cap * sizeof(int32_t));
        }
        ids[n++] = (int32_t)v;
        p = *end == ',' ? end + 1 : end;
    }
    if (n == 0) {
        xfree(ids);
        return -1;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

static int parse_layers(const char *s, int *begin, int *end)
{
    char *colon = NULL;
    long b = strtol(s, &colon, 10);
    if (colon == s || *colon != ':') {
        return -1;
    }
    char *tail = NULL;
    long e = strtol(colon + 1, &tail, 10);
    if (tail == colon + 1 || *tail != '\0' || b < 0 || e <= b || e > 100000) {
        return -1;
    }
    *begin = (int)b;
    *end = (int)e;
    return 0;
}

static cJSON *ids_json(const int32_t *ids, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    }
    return arr;
}

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        return -1;
    }
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static float *read_floats(const char *path, size_t *n_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len <= 0 || len % 4 != 0) {
        fclose(f);
        return NULL;
    }
    float *buf = xmalloc((size_t)len);
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    if (got != (size_t)len) {
        xfree(buf);
        return NULL;
    }
    *n_out = (size_t)len / 4;
    return buf;
}

/* --layers S:E: one range over the whole prompt, as a worker. */
static int run_range(const struct gen_opts *o, struct eng_engine *e, const struct eng_model *m,
                     const int32_t *ids, int n_ids)
{
    const struct eng_config *c = eng_model_config(m);
    int first = o->layer_begin == 0;
    int last = o->layer_end == c->n_layers;
    float *act_in = NULL;
    int n = n_ids;
    if (!first) {
        size_t nf = 0;
        act_in = read_floats(o->hidden_in, &nf);
        if (!act_in || nf % (size_t)c->hidden != 0) {
            xfree(act_in);
            return cli_error("%s: cannot read float32 activations of width %d", o->hidden_in,
                             c->hidden);
        }
        n = (int)(nf / (size_t)c->hidden);
    }
    struct eng_engine_opts eo;
    eng_engine_get_opts(e, &eo);
    if (n > eo.max_tokens) {
        xfree(act_in);
        return cli_error("%d tokens exceed --max-tokens %d", n, eo.max_tokens);
    }
    float *act = xmalloc((size_t)n * (size_t)c->hidden * sizeof(float));
    float *logits = last ? xmalloc((size_t)c->vocab * sizeof(float)) : NULL;
    struct hx_diag d = {0};
    int rc = eng_seq_add(e, 0, &d);
    struct eng_seq_step st = {0, 0, n, first ? ids : NULL, act_in};
    struct eng_step_out out = {.act = act, .logits = logits};
    double t0 = hx_clock_now();
    if (rc == HX_OK) {
        rc = eng_engine_step(e, &st, 1, &out, &d);
    }
    double dt = hx_clock_now() - t0;
    int ret = CLI_EXIT_OK;
    if (rc != HX_OK) {
        ret = cli_error("%s", d.msg);
    } else if (o->dump_hidden &&
               write_file(o->dump_hidden, act, (size_t)n * (size_t)c->hidden * sizeof(float))) {
        ret = cli_error("%s: cannot write", o->dump_hidden);
    } else {
        cJSON *j = cJSON_CreateObject();
        cJSON *layers = cJSON_AddArrayToObject(j, "layers");
        cJSON_AddItemToArray(layers, cJSON_CreateNumber(o->layer_begin));
        cJSON_AddItemToArray(layers, cJSON_CreateNumber(o->layer_end));
        cJSON_AddNumberToObject(j, "n_tokens", n);
        cJSON_AddNumberToObject(j, "hidden", c->hidden);
        cJSON_AddNumberToObject(j, "seconds", dt);
        if (last) {
            cJSON_AddNumberToObject(j, "next_id", eng_argmax(logits, c->vocab));
        }
        char *s = cJSON_PrintUnformatted(j);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(j);
    }
    xfree(act_in);
    xfree(act);
    xfree(logits);
    return ret;
}

/* Prefill, then decode token by token, streaming text (unless --json). */
static int run_generate(const struct gen_opts *o, struct eng_engine *e, const struct eng_model *m,
                        struct eng_tok *tok, const int32_t *ids, int n_ids)
{
    const struct eng_config *c = eng_model_config(m);
    struct eng_sampler_params sp = {(float)o->temperature, (int)o->top_k, (float)o->top_p,
                                    (uint64_t)o->seed};
    struct eng_sampler *s = NULL;
    struct eng_tok_stream *ts = NULL;
    struct hx_diag d = {0};
    if (eng_sampler_new(&sp, c->vocab, &s) != HX_OK) {
        return cli_error("bad sampler parameters");
    }
    if (tok && !o->json && eng_tok_stream_new(tok, ENG_TOK_SKIP_SPECIAL, &ts, &d) != HX_OK) {
        eng_sampler_free(s);
        return cli_error("%s", d.msg);
    }
    int32_t *gen = xmalloc((size_t)(o->n > 0 ? o->n : 1) * sizeof(int32_t));
    float *logits = xmalloc((size_t)c->vocab * sizeof(float));
    struct eng_engine_opts eo;
    eng_engine_get_opts(e, &eo);
    int n_gen = 0;
    int rc = eng_seq_add(e, 0, &d);
    struct eng_step_out out = {.logits = logits};
    double t0 = hx_clock_now();
    for (int off = 0; rc == HX_OK && off < n_ids; off += eo.max_tokens) {
        int n = n_ids - off < eo.max_tokens ? n_ids - off : eo.max_tokens;
        struct eng_seq_step st = {0, off, n, ids + off, NULL};
        rc = eng_engine_step(e, &st, 1, &out, &d);
    }
    double t_prefill = hx_clock_now() - t0;
    double t1 = hx_clock_now();
    while (rc == HX_OK && n_gen < o->n) {
        int32_t next = eng_sampler_sample(s, logits);
        gen[n_gen++] = next;
        if (ts) {
            const char *txt;
            size_t len;
            if (eng_tok_stream_feed(ts, next, &txt, &len) == HX_OK && len) {
                fwrite(txt, 1, len, stdout);
                fflush(stdout);
            }
        }
        if (next == c->eos_id || n_gen == o->n) {
            break;
        }
        struct eng_seq_step st = {0, n_ids + n_gen - 1, 1, &next, NULL};
        rc = eng_engine_step(e, &st, 1, &out, &d);
    }
    double t_decode = hx_clock_now() - t1;
    int ret = CLI_EXIT_OK;
    /* the first token comes from the prefill's logits: decode rate counts the later steps */
    double tps = n_gen > 1 ? (double)(n_gen - 1) / t_decode : 0.0;
    if (rc != HX_OK) {
        ret = cli_error("%s", d.msg);
    } else if (o->json) {
        char *text = NULL;
        size_t text_len = 0;
        if (tok && eng_tok_decode(tok, gen, (size_t)n_gen, ENG_TOK_SKIP_SPECIAL, &text, &text_len,
                                  &d) != HX_OK) {
            ret = cli_error("%s", d.msg);
        }
        cJSON *j = cJSON_CreateObject();
        cJSON_AddItemToObject(j, "prompt_ids", ids_json(ids, n_ids));
        cJSON_AddItemToObject(j, "generated_ids", ids_json(gen, n_gen));
        if (text) {
            cJSON_AddStringToObject(j, "text", text);
        } else {
            cJSON_AddNullToObject(j, "text");
        }
        cJSON_AddStringToObject(j, "device", o->device ? o->device : "cpu");
        cJSON_AddNumberToObject(j, "tokens_per_second", tps);
        cJSON_AddNumberToObject(j, "prefill_tokens_per_second",
                                t_prefill > 0 ? (double)n_ids / t_prefill : 0.0);
        char *str = cJSON_PrintUnformatted(j);
        printf("%s\n", str);
        cJSON_free(str);
        cJSON_Delete(j);
        xfree(text);
    } else {
        if (ts) {
            const char *txt;
            size_t len;
            eng_tok_stream_flush(ts, &txt, &len);
            fwrite(txt, 1, len, stdout);
            printf("\n");
        } else {
            for (int i = 0; i < n_gen; i++) {
                printf("%s%d", i ? "," : "", gen[i]);
            }
            printf("\n");
        }
        fprintf(stderr,
                "hx: %d prompt tokens (%.1f tok/s prefill), %d generated (%.1f tok/s decode)\n",
                n_ids, t_prefill > 0 ? (double)n_ids / t_prefill : 0.0, n_gen, tps);
    }
    eng_seq_remove(e, 0);
    eng_tok_stream_free(ts);
    eng_sampler_free(s);
    xfree(gen);
    xfree(logits);
    return ret;
}

int cmd_generate(int argc, char **argv)
{
    struct gen_opts o = {
        .n = 48, .top_p = 1.0, .layer_end = -1, .max_tokens = 256, .weights = ENG_DTYPE_OTHER};
    enum {
        OPT_MODEL = 256,
        OPT_PROMPT,
        OPT_PROMPT_IDS,
        OPT_TEMP,
        OPT_TOPK,
        OPT_TOPP,
        OPT_SEED,
        OPT_THREADS,
        OPT_JSON,
        OPT_LAYERS,
        OPT_DUMP,
        OPT_HIDDEN_IN,
        OPT_MAX_TOKENS,
        OPT_WEIGHTS,
        OPT_DEVICE,
        OPT_KV_DTYPE,
    };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, OPT_MODEL},
        {"prompt", required_argument, NULL, OPT_PROMPT},
        {"prompt-ids", required_argument, NULL, OPT_PROMPT_IDS},
        {"max-new", required_argument, NULL, 'n'},
        {"temperature", required_argument, NULL, OPT_TEMP},
        {"top-k", required_argument, NULL, OPT_TOPK},
        {"top-p", required_argument, NULL, OPT_TOPP},
        {"seed", required_argument, NULL, OPT_SEED},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"json", no_argument, NULL, OPT_JSON},
        {"layers", required_argument, NULL, OPT_LAYERS},
        {"dump-hidden", required_argument, NULL, OPT_DUMP},
        {"hidden-in", required_argument, NULL, OPT_HIDDEN_IN},
        {"max-tokens", required_argument, NULL, OPT_MAX_TOKENS},
        {"weights", required_argument, NULL, OPT_WEIGHTS},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"kv-dtype", required_argument, NULL, OPT_KV_DTYPE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int ch;
    int idx = -1;
    while ((ch = getopt_long(argc, argv, "n:h", longopts, &idx)) != -1) {
        int bad = 0;
        const char *name = ch == 'n' ? "n" : idx >= 0 ? longopts[idx].name : "?";
        idx = -1;
        switch (ch) {
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case OPT_MODEL:
            o.model = optarg;
            break;
        case OPT_PROMPT:
            o.prompt = optarg;
            break;
        case OPT_PROMPT_IDS:
            o.prompt_ids = optarg;
            break;
        case 'n':
            bad = cli_parse_long(optarg, &o.n) || o.n < 0 || o.n > 1000000;
            break;
        case OPT_TEMP:
            bad = cli_parse_double(optarg, &o.temperature) || o.temperature < 0;
            break;
        case OPT_TOPK:
            bad = cli_parse_long(optarg, &o.top_k) || o.top_k < 0 || o.top_k > INT_MAX;
            break;
        case OPT_TOPP:
            bad = cli_parse_double(optarg, &o.top_p) || !(o.top_p > 0) || o.top_p > 1;
            break;
        case OPT_SEED:
            bad = cli_parse_long(optarg, &o.seed);
            break;
        case OPT_THREADS:
            bad = cli_parse_long(optarg, &o.threads) || o.threads < 0 || o.threads > 256;
            break;
        case OPT_JSON:
            o.json = 1;
            break;
        case OPT_DEVICE: {
            int is_cuda = 0;
            int index = 0;
            bad = eng_device_parse(optarg, &is_cuda, &index, NULL) != HX_OK;
            o.device = optarg;
            break;
        }
        case OPT_KV_DTYPE: {
            enum eng_dtype kv_dt;
            bad = eng_kv_dtype_parse(optarg, &kv_dt) != 0;
            o.kv_dtype = optarg;
            break;
        }
        case OPT_LAYERS:
            bad = parse_layers(optarg, &o.layer_begin, &o.layer_end);
            break;
        case OPT_DUMP:
            o.dump_hidden = optarg;
            break;
        case OPT_HIDDEN_IN:
            o.hidden_in = optarg;
            break;
        case OPT_WEIGHTS:
            bad = eng_weight_format_parse(optarg, &o.weights) != 0;
            break;
        case OPT_MAX_TOKENS:
            bad = cli_parse_long(optarg, &o.max_tokens) || o.max_tokens < 1 || o.max_tokens > 65536;
            break;
        default:
            return cli_usage_error("generate", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
        }
        if (bad) {
            return cli_usage_error("generate", "bad value '%s' for -%s%s", optarg,
                                   strlen(name) > 1 ? "-" : "", name);
        }
    }
    if (optind < argc) {
        return cli_usage_error("generate", "unexpected argument '%s'", argv[optind]);
    }
    int ranged = o.layer_end >= 0;
    if ((o.dump_hidden || o.hidden_in) && !ranged) {
        return cli_usage_error("generate", "--dump-hidden and --hidden-in need --layers S:E");
    }
    if (ranged && o.layer_begin > 0 && !o.hidden_in) {
        return cli_usage_error("generate", "--layers %d:%d needs --hidden-in FILE", o.layer_begin,
                               o.layer_end);
    }
    int need_prompt = !ranged || o.layer_begin == 0;
    if (need_prompt && !o.prompt == !o.prompt_ids) {
        return cli_usage_error("generate", "give exactly one of --prompt and --prompt-ids");
    }

    char model_dir[PATH_MAX];
    if (cli_resolve_data(o.model ? o.model : DEFAULT_MODEL, model_dir, sizeof(model_dir)) != 0) {
        return cli_error("model directory '%s' not found", o.model ? o.model : DEFAULT_MODEL);
    }
    struct hx_diag d = {0};
    struct eng_tok *tok = NULL;
    int32_t *ids = NULL;
    int n_ids = 0;
    struct eng_backend *be = NULL;
    struct eng_model *m = NULL;
    struct eng_engine *e = NULL;
    int ret = CLI_EXIT_RUNTIME;
    if (o.prompt || !ranged) { /* the tokenizer decodes the output even for --prompt-ids */
        char tok_path[PATH_MAX + 32];
        snprintf(tok_path, sizeof(tok_path), "%s/tokenizer.json", model_dir);
        int gguf = eng_gguf_is_file(model_dir);
        if ((gguf ? eng_tok_load_gguf(model_dir, &tok, &d) : eng_tok_load(tok_path, &tok, &d)) !=
            HX_OK) {
            if (o.prompt) {
                ret = cli_error("%s", d.msg);
                goto done;
            }
            tok = NULL; /* --prompt-ids works without one; the output is ids */
            hx_diag_clear(&d);
        }
    }
    if (o.prompt) {
        size_t n = 0;
        if (eng_tok_encode(tok, o.prompt, strlen(o.prompt), ENG_TOK_ADD_BOS, &ids, &n, &d) !=
            HX_OK) {
            ret = cli_error("%s", d.msg);
            goto done;
        }
        n_ids = (int)n;
    } else if (o.prompt_ids && parse_ids(o.prompt_ids, &ids, &n_ids) != 0) {
        ret = cli_usage_error("generate", "bad --prompt-ids '%s' (want 0,12,55)", o.prompt_ids);
        goto done;
    }
    if (need_prompt && n_ids == 0) {
        ret = cli_error("the prompt encodes to no tokens");
        goto done;
    }
    if (eng_backend_open(o.device, (int)o.threads, &be, &d) != HX_OK) {
        /* no GPU, no such GPU, or a binary without CUDA: the request cannot be served here */
        fprintf(stderr, "hx: error: %s\n", d.msg);
        ret = CLI_EXIT_USAGE;
        goto done;
    }
    if (o.kv_dtype && eng_backend_set_kv_dtype(be, o.kv_dtype, &d) != HX_OK) {
        fprintf(stderr, "hx: error: --kv-dtype %s: %s\n", o.kv_dtype, d.msg);
        ret = CLI_EXIT_USAGE;
        goto done;
    }
    struct eng_model_opts mo = {o.layer_begin, o.layer_end, o.weights};
    if (eng_model_open(model_dir, &mo, be, &m, &d) != HX_OK) {
        ret = cli_error("%s", d.msg);
        goto done;
    }
    const struct eng_config *c = eng_model_config(m);
    struct eng_engine_opts eo = {.max_seqs = 1, .max_tokens = (int)o.max_tokens};
    eo.max_ctx = n_ids + (int)o.n + 1;
    if (eo.max_ctx < (int)o.max_tokens) {
        eo.max_ctx = (int)o.max_tokens;
    }
    if (eo.max_ctx > c->max_pos) {
        eo.max_ctx = c->max_pos;
    }
    if (eng_engine_new(m, &eo, &e, &d) != HX_OK) {
        ret = cli_error("%s", d.msg);
        goto done;
    }
    if (need_prompt && n_ids + (ranged ? 0 : (int)o.n) > c->max_pos) {
        ret = cli_error("%d prompt tokens + %ld new exceed the model's context of %d", n_ids, o.n,
                        c->max_pos);
        goto done;
    }
    ret = ranged ? run_range(&o, e, m, ids, n_ids) : run_generate(&o, e, m, tok, ids, n_ids);
done:
    eng_engine_free(e);
    eng_model_free(m);
    eng_backend_free(be);
    eng_tok_free(tok);
    xfree(ids);
    return ret;
}
