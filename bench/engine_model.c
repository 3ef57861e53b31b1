/*
 * engine_model.c - bench_engine's random Llama-2-7B-shaped model on disk: config.json,
 * model.safetensors (random bf16) and the Llama-2 tokenizer files, a Hugging Face directory the
 * peers read too.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "engine/engine.h"
#ifdef HX_HAVE_CUDA
#include "engine/cuda/cuda.h"
#endif
#include "bench_engine.h"

/* ---- a random Llama-2-7B-shaped model (or range of it) on disk ------------------------ */

/*
 * Random bf16 weights, 4 per splitmix64 output (cheap: 13.5 GB in seconds): a random sign, a
 * magnitude in [2^-10, 2^-6) (one of 4 exponents, 7 random mantissa bits; RMS about 0.007, so
 * activations neither vanish nor blow up through 32 layers of width 4096).
 */
HOT static void fill_bf16(uint16_t *p, size_t n, uint64_t *ctr)
{
    uint64_t c = *ctr;
    size_t q = (n + 3) / 4;
    for (size_t j = 0; j < q; j++) {
        uint64_t z = (c + j) * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        for (size_t k = 0; k < 4 && 4 * j + k < n; k++) {
            uint32_t r = (uint32_t)(z >> (16 * k)) & 0xFFFFu;
            p[4 * j + k] = (uint16_t)((r & 0x807Fu) | ((0x75u + ((r >> 7) & 3u)) << 7));
        }
    }
    *ctr = c + q;
}

struct tensor_spec {
    char name[96];
    long rows;
    long cols; /* 0: vector */
};

/* config.json of the model: a complete Hugging Face LlamaForCausalLM config when full. */
static void config_text(char *buf, size_t cap, int full, int n_layers)
{
    if (!full) {
        snprintf(buf, cap,
                 "{\"model_type\":\"llama\",\"num_hidden_layers\":%d,\"hidden_size\":%d,"
                 "\"num_attention_heads\":32,\"num_key_value_heads\":32,\"intermediate_size\":%d,"
                 "\"vocab_size\":%d,\"max_position_embeddings\":4096,\"rms_norm_eps\":1e-5,"
                 "\"rope_theta\":10000.0,\"tie_word_embeddings\":false}\n",
                 LAYERS7, H7, FFN7, VOCAB7);
        return;
    }
    snprintf(buf, cap,
             "{\n \"architectures\": [\"LlamaForCausalLM\"],\n \"model_type\": \"llama\",\n"
             " \"torch_dtype\": \"bfloat16\",\n \"num_hidden_layers\": %d,\n \"hidden_size\": %d,\n"
             " \"num_attention_heads\": 32,\n \"num_key_value_heads\": 32,\n"
             " \"intermediate_size\": %d,\n \"vocab_size\": %d,\n"
             " \"max_position_embeddings\": 4096,\n \"rms_norm_eps\": 1e-05,\n"
             " \"rope_theta\": 10000.0,\n \"hidden_act\": \"silu\",\n"
             " \"tie_word_embeddings\": false,\n \"bos_token_id\": 1,\n \"eos_token_id\": 2,\n"
             " \"initializer_range\": 0.02,\n \"use_cache\": true\n}\n",
             n_layers, H7, FFN7, VOCAB7);
}

/* Whole file path's contents equal text (and nothing more). */
static int file_equals(const char *path, const char *text)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return 0;
    }
    size_t n = strlen(text);
    char *buf = xmalloc(n + 2);
    size_t got = fread(buf, 1, n + 1, f);
    fclose(f);
    int eq = got == n && memcmp(buf, text, n) == 0;
    xfree(buf);
    return eq;
}

static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/*
 * Write a Llama-2-7B-shaped model to dir: full = 0, layers [first, first + n_layers) of the
 * 32-layer model (a middle pipeline stage: no embedding, norm or head); full = 1, a whole
 * model of n_layers layers with embed_tokens, the final norm and lm_head (a Hugging Face
 * LLaMA directory that transformers and llama.cpp's converter read too). With reuse, a
 * directory already holding exactly this model (same config.json, same file size) is kept.
 * Returns 0, 1 when reused, -1 on error.
 */
int write_7b(const char *dir, int full, int first, int n_layers, int reuse)
{
    char path[600];
    char cfg[2048];
    config_text(cfg, sizeof(cfg), full, n_layers);
    int n_t = n_layers * 9 + (full ? 3 : 0);
    struct tensor_spec *ts = xcalloc((size_t)n_t, sizeof(*ts));
    static const struct {
        const char *suffix;
        long rows;
        long cols;
    } per_layer[9] = {
        {"input_layernorm.weight", H7, 0},   {"self_attn.q_proj.weight", H7, H7},
        {"self_attn.k_proj.weight", H7, H7}, {"self_attn.v_proj.weight", H7, H7},
        {"self_attn.o_proj.weight", H7, H7}, {"post_attention_layernorm.weight", H7, 0},
        {"mlp.gate_proj.weight", FFN7, H7},  {"mlp.up_proj.weight", FFN7, H7},
        {"mlp.down_proj.weight", H7, FFN7},
    };
    int t = 0;
    if (full) {
        ts[t++] = (struct tensor_spec){"model.embed_tokens.weight", VOCAB7, H7};
    }
    for (int l = 0; l < n_layers; l++) {
        for (int k = 0; k < 9; k++, t++) {
            snprintf(ts[t].name, sizeof(ts[t].name), "model.layers.%d.%s", first + l,
                     per_layer[k].suffix);
            ts[t].rows = per_layer[k].rows;
            ts[t].cols = per_layer[k].cols;
        }
    }
    if (full) {
        ts[t++] = (struct tensor_spec){"model.norm.weight", H7, 0};
        ts[t++] = (struct tensor_spec){"lm_head.weight", VOCAB7, H7};
    }
    /* header */
    size_t cap = 256 + (size_t)n_t * 200;
    char *hdr = xmalloc(cap);
    size_t hl =
        (size_t)snprintf(hdr, cap, "{%s", full ? "\"__metadata__\":{\"format\":\"pt\"}" : "");
    uint64_t off = 0;
    for (int i = 0; i < n_t; i++) {
        uint64_t bytes = (uint64_t)ts[i].rows * (uint64_t)(ts[i].cols ? ts[i].cols : 1) * 2;
        const char *sep = i || full ? "," : "";
        if (ts[i].cols) {
            hl += (size_t)snprintf(hdr + hl, cap - hl,
                                   "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%ld,%ld],"
                                   "\"data_offsets\":[%llu,%llu]}",
                                   sep, ts[i].name, ts[i].rows, ts[i].cols, (unsigned long long)off,
                                   (unsigned long long)(off + bytes));
        } else {
            hl += (size_t)snprintf(hdr + hl, cap - hl,
                                   "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%ld],"
                                   "\"data_offsets\":[%llu,%llu]}",
                                   sep, ts[i].name, ts[i].rows, (unsigned long long)off,
                                   (unsigned long long)(off + bytes));
        }
        off += bytes;
    }
    hl += (size_t)snprintf(hdr + hl, cap - hl, "}");
    while (hl % 8) {
        hdr[hl++] = ' ';
    }
    snprintf(path, sizeof(path), "%s/config.json", dir);
    char st_path[600];
    snprintf(st_path, sizeof(st_path), "%s/model.safetensors", dir);
    if (reuse && file_equals(path, cfg) && file_size(st_path) == (long long)(8 + hl + off)) {
        xfree(hdr);
        xfree(ts);
        return 1;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        xfree(hdr);
        xfree(ts);
        return -1;
    }
    fputs(cfg, f);
    if (fclose(f) != 0) {
        xfree(hdr);
        xfree(ts);
        return -1;
    }
    f = fopen(st_path, "wb");
    if (!f) {
        xfree(hdr);
        xfree(ts);
        return -1;
    }
    uint64_t hlen = hl;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) {
        le[i] = (unsigned char)(hlen >> (8 * i));
    }
    int bad = fwrite(le, 1, 8, f) != 8 || fwrite(hdr, 1, hl, f) != hl;
    size_t chunk = (size_t)32 << 20; /* elements: 64 MiB per fwrite */
    uint16_t *buf = xmalloc(chunk * sizeof(uint16_t));
    uint64_t ctr = 0x243F6A8885A308D3ULL;
    uint64_t written = 0;
    uint64_t next_report = (uint64_t)2 << 30;
    double t0 = hx_clock_now();
    for (int i = 0; i < n_t && !bad; i++) {
        size_t n = (size_t)ts[i].rows * (size_t)(ts[i].cols ? ts[i].cols : 1);
        if (!ts[i].cols) { /* norms: 1.0 */
            for (size_t j = 0; j < n && j < chunk; j++) {
                buf[j] = (uint16_t)0x3f80;
            }
        }
        for (size_t done = 0; done < n && !bad;) {
            size_t m = n - done < chunk ? n - done : chunk;
            if (ts[i].cols) {
                fill_bf16(buf, m, &ctr);
            }
            bad = fwrite(buf, sizeof(uint16_t), m, f) != m;
            done += m;
            written += m * sizeof(uint16_t);
            if (full && written >= next_report) {
                double dt = hx_clock_now() - t0;
                fprintf(stderr, "# writing %s: %.1f / %.1f GB (%.1f GB/s)\n", st_path,
                        (double)written / 1e9, (double)off / 1e9, (double)written / 1e9 / dt);
                next_report += (uint64_t)2 << 30;
            }
        }
    }
    int rc = fclose(f);
    xfree(buf);
    xfree(hdr);
    xfree(ts);
    return bad || rc != 0 ? -1 : 0;
}

/* Copy src to dst (small files). 0 or -1. */
static int copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb");
    if (!in) {
        return -1;
    }
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[1 << 16];
    size_t n;
    int bad = 0;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        bad |= fwrite(buf, 1, n, out) != n;
    }
    fclose(in);
    bad |= fclose(out) != 0;
    return bad ? -1 : 0;
}

/*
 * The peers need the Llama-2 tokenizer next to the weights (llama.cpp's converter reads
 * tokenizer.json; vocab 32000 matches the model). Copied from the first of: dir_opt
 * (--tokenizer), $HX_LLAMA2_TOKENIZER, ../shared/data/tokenizers/llama2,
 * build/peers/tokenizer/llama2 (the peers' carry folder). Returns the source used or NULL.
 */
const char *copy_tokenizer(const char *model_dir, const char *dir_opt)
{
    const char *cands[] = {dir_opt, getenv("HX_LLAMA2_TOKENIZER"),
                           "../shared/data/tokenizers/llama2", "build/peers/tokenizer/llama2"};
    static const char *files[] = {"tokenizer.json", "tokenizer_config.json", "tokenizer.model"};
    for (size_t c = 0; c < sizeof(cands) / sizeof(cands[0]); c++) {
        if (!cands[c]) {
            continue;
        }
        char src[600];
        char dst[600];
        snprintf(src, sizeof(src), "%s/tokenizer.json", cands[c]);
        if (file_size(src) <= 0) {
            continue;
        }
        for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
            snprintf(src, sizeof(src), "%s/%s", cands[c], files[k]);
            snprintf(dst, sizeof(dst), "%s/%s", model_dir, files[k]);
            if (file_size(src) > 0 && file_size(dst) != file_size(src)) {
                if (copy_file(src, dst) != 0) {
                    return NULL;
                }
            }
        }
        return cands[c];
    }
    return NULL;
}
