/*
 * test_engine_weights.c - loading weights: the safetensors header parser on malformed input
 * (truncated header, bad offsets, unknown or unusable dtype, missing tensor, wrong shape,
 * truncated file), the fp16 and fp32 paths (the bundled bf16 model rewritten in those dtypes
 * must give the same logits), and sharded checkpoints (a 2-shard split with
 * model.safetensors.index.json; a range reads only the shards it needs).
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/alloc.h"
#include "engine/engine.h"
#include "engine/engine_int.h"
#include "test.h"

#define MODEL_DIR "models/kjv-llama-6m"

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ASSERT_MSG(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = xmalloc((size_t)n + 1);
    ASSERT_EQ(fread(buf, 1, (size_t)n, f), n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_all(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    ASSERT_EQ(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* A safetensors file from a JSON header text and a data blob. */
static unsigned char *make_st(const char *header, const void *data, size_t data_len, size_t *len)
{
    size_t h = strlen(header);
    size_t padded = (h + 7) & ~(size_t)7;
    *len = 8 + padded + data_len;
    unsigned char *buf = xcalloc(1, *len);
    for (int i = 0; i < 8; i++) {
        buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    }
    memset(buf + 8, ' ', padded);
    memcpy(buf + 8, header, h);
    if (data_len) {
        memcpy(buf + 8 + padded, data, data_len);
    }
    return buf;
}

static int parse_hdr(const char *header, size_t data_len, struct hx_diag *d)
{
    unsigned char zeros[256] = {0};
    size_t len;
    unsigned char *buf = make_st(header, zeros, data_len, &len);
    struct eng_st_file f;
    int rc = eng_st_parse(buf, len, "t.safetensors", &f, d);
    if (rc == HX_OK) {
        eng_st_release(&f);
    }
    xfree(buf);
    return rc;
}

TEST(engine_safetensors_header_errors)
{
    struct hx_diag d = {0};
    /* a good one first */
    ASSERT_OK_DIAG(parse_hdr("{\"__metadata__\":{\"format\":\"pt\"},"
                             "\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                             "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[12,28]}}",
                             28, &d),
                   &d);
    /* shorter than the 8-byte length */
    struct eng_st_file f;
    ASSERT_ERR(eng_st_parse("abc", 3, "t.safetensors", &f, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "too short");
    /* header length beyond the file (truncated header) */
    unsigned char trunc[16] = {0x00, 0x10, 0, 0, 0, 0, 0, 0, '{', '"', 'a'};
    hx_diag_clear(&d);
    ASSERT_ERR(eng_st_parse(trunc, sizeof(trunc), "t.safetensors", &f, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "exceeds the file");
    /* header that is not JSON */
    hx_diag_clear(&d);
    ASSERT_ERR(parse_hdr("{\"a\": [1, 2", 0, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "not a JSON object");
    /* offsets past the end of the data (truncated data) */
    hx_diag_clear(&d);
    ASSERT_ERR(
        parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", 16, &d),
        HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "past the end");
    ASSERT_CONTAINS(d.msg, "'a'");
    /* offsets that do not match dtype x shape */
    hx_diag_clear(&d);
    ASSERT_ERR(
        parse_hdr("{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,4]}}", 16, &d),
        HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "needs 8");
    /* begin > end, negative, fractional */
    hx_diag_clear(&d);
    ASSERT_ERR(
        parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 16, &d),
        HX_EPARSE);
    ASSERT_ERR(
        parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 16, &d),
        HX_EPARSE);
    ASSERT_ERR(
        parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 16, &d),
        HX_EPARSE);
    /* unknown dtype */
    hx_diag_clear(&d);
    ASSERT_ERR(
        parse_hdr("{\"a\":{\"dtype\":\"Q4_K\",\"shape\":[1],\"data_offsets\":[0,4]}}", 16, &d),
        HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "unknown dtype 'Q4_K'");
    /* a shape whose byte size overflows */
    hx_diag_clear(&d);
    ASSERT_ERR(parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                         "\"data_offsets\":[0,4]}}",
                         16, &d),
               HX_EPARSE);
    /* missing keys */
    ASSERT_ERR(parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 16, &d), HX_EPARSE);
    ASSERT_ERR(parse_hdr("{\"a\":5}", 16, &d), HX_EPARSE);
}

/* ---- synthetic model directories ------------------------------------------------------- */

enum conv { CONV_SAME, CONV_F32, CONV_F16 };

struct tdir {
    char path[64];
};

static void tdir_make(struct tdir *t)
{
    snprintf(t->path, sizeof(t->path), "/tmp/hx_engine_XXXXXX");
    ASSERT(mkdtemp(t->path) != NULL);
}

static void tdir_file(const struct tdir *t, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", t->path, name);
}

static void tdir_remove(struct tdir *t)
{
    const char *names[] = {"config.json", "model.safetensors", "model-1.safetensors",
                           "model-2.safetensors", "model.safetensors.index.json"};
    char p[128];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        tdir_file(t, names[i], p, sizeof(p));
        unlink(p);
    }
    rmdir(t->path);
}

static void copy_config(const struct tdir *t)
{
    size_t n;
    unsigned char *cfg = read_all(MODEL_DIR "/config.json", &n);
    char p[128];
    tdir_file(t, "config.json", p, sizeof(p));
    write_all(p, cfg, n);
    xfree(cfg);
}

/* layer index of a tensor name, or -1 (embed), 99 (norm, head) */
static int tensor_layer(const char *name)
{
    if (strncmp(name, "model.layers.", 13) == 0) {
        return (int)strtol(name + 13, NULL, 10);
    }
    return strstr(name, "embed") ? -1 : 99;
}

/* When not NaN, rewrite_model adds F32 q/k/v biases of this value to every layer. */
static float g_bias = NAN;

/*
 * Rewrite the bundled model into dir: dtype conversion, skip one tensor (or NULL), re-dtype
 * one tensor as I32 (or NULL), split into shards when split_layer > 0 (layers < split_layer,
 * and the embedding, go to shard 1).
 */
static void rewrite_model(const struct tdir *t, enum conv conv, const char *skip,
                          const char *as_i32, int split_layer)
{
    size_t len;
    unsigned char *src = read_all(MODEL_DIR "/model.safetensors", &len);
    struct eng_st_file st;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(eng_st_parse(src, len, "bundled", &st, &d), &d);
    copy_config(t);
    int n_shards = split_layer > 0 ? 2 : 1;
    cJSON *index = cJSON_CreateObject();
    cJSON *wmap = cJSON_AddObjectToObject(index, "weight_map");
    for (int s = 0; s < n_shards; s++) {
        cJSON *hdr = cJSON_CreateObject();
        unsigned char *data = xmalloc(len * 2 + 16);
        size_t off = 0;
        for (int i = 0; i < st.n_tensors; i++) {
            const struct eng_st_tensor *ten = &st.tensors[i];
            if (skip && strcmp(ten->name, skip) == 0) {
                continue;
            }
            int shard = (n_shards == 2 && tensor_layer(ten->name) >= split_layer) ? 1 : 0;
            if (shard != s) {
                continue;
            }
            ASSERT_EQ(ten->dtype, ENG_DTYPE_BF16);
            size_t numel = (ten->end - ten->begin) / 2;
            const uint16_t *in = (const uint16_t *)(src + ten->begin);
            const char *dt = "BF16";
            size_t bytes = numel * 2;
            if (conv == CONV_F32) {
                dt = "F32";
                bytes = numel * 4;
                for (size_t j = 0; j < numel; j++) {
                    float v = eng_bf16_to_f32(in[j]);
                    memcpy(data + off + 4 * j, &v, 4);
                }
            } else if (conv == CONV_F16) {
                dt = "F16";
                for (size_t j = 0; j < numel; j++) {
                    uint16_t h = eng_f32_to_f16(eng_bf16_to_f32(in[j]));
                    memcpy(data + off + 2 * j, &h, 2);
                }
            } else {
                memcpy(data + off, in, bytes);
            }
            if (as_i32 && strcmp(ten->name, as_i32) == 0) {
                dt = "I32";
                ASSERT_EQ(bytes % 4, 0);
            }
            cJSON *e = cJSON_AddObjectToObject(hdr, ten->name);
            cJSON_AddStringToObject(e, "dtype", dt);
            cJSON *shape = cJSON_AddArrayToObject(e, "shape");
            int64_t numel_i32 = (int64_t)(bytes / 4);
            for (int k = 0; k < ten->n_dims; k++) {
                int64_t v = ten->shape[k];
                if (as_i32 && strcmp(ten->name, as_i32) == 0) { /* same bytes, I32 elements */
                    v = k == 0 ? numel_i32 : 1;
                }
                cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)v));
            }
            cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes)));
            off += bytes;
            cJSON_AddStringToObject(wmap, ten->name,
                                    n_shards == 2
                                        ? (s ? "model-2.safetensors" : "model-1.safetensors")
                                        : "model.safetensors");
        }
        if (!isnan(g_bias) && s == 0) {
            const char *which[3] = {"q", "k", "v"};
            const int dims[3] = {256, 64, 64};
            for (int l = 0; l < 6; l++) {
                for (int b = 0; b < 3; b++) {
                    char name[96];
                    snprintf(name, sizeof(name), "model.layers.%d.self_attn.%s_proj.bias", l,
                             which[b]);
                    for (int j = 0; j < dims[b]; j++) {
                        memcpy(data + off + 4 * (size_t)j, &g_bias, 4);
                    }
                    cJSON *e = cJSON_AddObjectToObject(hdr, name);
                    cJSON_AddStringToObject(e, "dtype", "F32");
                    cJSON *shape = cJSON_AddArrayToObject(e, "shape");
                    cJSON_AddItemToArray(shape, cJSON_CreateNumber(dims[b]));
                    cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
                    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
                    off += 4 * (size_t)dims[b];
                    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
                }
            }
        }
        char *htxt = cJSON_PrintUnformatted(hdr);
        size_t flen;
        unsigned char *file = make_st(htxt, data, off, &flen);
        char p[128];
        tdir_file(t,
                  n_shards == 2 ? (s ? "model-2.safetensors" : "model-1.safetensors")
                                : "model.safetensors",
                  p, sizeof(p));
        write_all(p, file, flen);
        xfree(file);
        cJSON_free(htxt);
        cJSON_Delete(hdr);
        xfree(data);
    }
    if (n_shards == 2) {
        char *itxt = cJSON_Print(index);
        char p[128];
        tdir_file(t, "model.safetensors.index.json", p, sizeof(p));
        write_all(p, itxt, strlen(itxt));
        cJSON_free(itxt);
    }
    cJSON_Delete(index);
    eng_st_release(&st);
    xfree(src);
}

static const int32_t PROMPT[] = {0, 297, 260, 342, 389, 322, 689, 13};
#define PROMPT_N 8

/* Logits [PROMPT_N x 4096] of the model in dir, or the load error. */
static int model_logits(const char *dir, float *logits, struct hx_diag *d)
{
    struct eng_backend *be;
    struct eng_model *m = NULL;
    struct eng_engine *e = NULL;
    ASSERT_OK(eng_cpu_backend_new(1, &be, d));
    int rc = eng_model_load(dir, 0, -1, be, &m, d);
    if (rc == HX_OK) {
        ASSERT_OK_DIAG(eng_engine_new(m, NULL, &e, d), d);
        ASSERT_OK(eng_seq_add(e, 1, d));
        struct eng_seq_step st = {1, 0, PROMPT_N, PROMPT, NULL};
        struct eng_step_out out = {.logits = logits, .all_logits = 1};
        ASSERT_OK_DIAG(eng_engine_step(e, &st, 1, &out, d), d);
    }
    eng_engine_free(e);
    eng_model_free(m);
    eng_backend_free(be);
    return rc;
}

static double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0.0;
    double den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = (double)a[i] - (double)b[i];
        num += x * x;
        den += (double)b[i] * (double)b[i];
    }
    return sqrt(num / den);
}

#define NLOG ((size_t)PROMPT_N * 4096)

TEST(engine_weights_f32_and_f16_paths)
{
    struct hx_diag d = {0};
    float *ref = xmalloc(NLOG * sizeof(float));
    float *got = xmalloc(NLOG * sizeof(float));
    ASSERT_OK_DIAG(model_logits(MODEL_DIR, ref, &d), &d);
    struct tdir t;
    tdir_make(&t);
    rewrite_model(&t, CONV_F32, NULL, NULL, 0);
    ASSERT_OK_DIAG(model_logits(t.path, got, &d), &d);
    ASSERT_LE(rel_l2(got, ref, NLOG), 1e-6); /* bf16 -> f32 is exact */
    rewrite_model(&t, CONV_F16, NULL, NULL, 0);
    ASSERT_OK_DIAG(model_logits(t.path, got, &d), &d);
    double err = rel_l2(got, ref, NLOG);
    ASSERT_LE(err, 1e-3); /* exact for all but tiny (subnormal in f16) weights */
    tdir_remove(&t);
    /* the f16 decoder itself, on values that cover normal, subnormal, inf */
    const float vals[] = {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.1f};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        float back = eng_f16_to_f32(eng_f32_to_f16(vals[i]));
        ASSERT_DBL_NEAR(back, vals[i], fabs(vals[i]) * 1e-3);
    }
    ASSERT(isinf(eng_f16_to_f32(0x7c00)));
    ASSERT_EQ(eng_f32_to_f16(1.0f), 0x3c00);
    ASSERT_EQ(eng_f32_to_bf16(1.0f), 0x3f80);
    xfree(ref);
    xfree(got);
}

TEST(engine_weights_sharded_index)
{
    struct hx_diag d = {0};
    float *ref = xmalloc(NLOG * sizeof(float));
    float *got = xmalloc(NLOG * sizeof(float));
    ASSERT_OK_DIAG(model_logits(MODEL_DIR, ref, &d), &d);
    struct tdir t;
    tdir_make(&t);
    rewrite_model(&t, CONV_SAME, NULL, NULL, 3);
    ASSERT_OK_DIAG(model_logits(t.path, got, &d), &d);
    ASSERT_LE(rel_l2(got, ref, NLOG), 1e-7);
    /* ranges map only the shards they need: corrupt shard 2, then [0,3) still loads */
    char p[128];
    tdir_file(&t, "model-2.safetensors", p, sizeof(p));
    write_all(p, "garbage!garbage!", 16);
    struct eng_backend *be;
    struct eng_model *m = NULL;
    ASSERT_OK(eng_cpu_backend_new(1, &be, &d));
    ASSERT_OK_DIAG(eng_model_load(t.path, 0, 3, be, &m, &d), &d);
    ASSERT_EQ(m->n_files, 1);
    eng_model_free(m);
    hx_diag_clear(&d);
    ASSERT_ERR(eng_model_load(t.path, 2, 6, be, &m, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "model-2.safetensors");
    ASSERT(m == NULL);
    eng_backend_free(be);
    tdir_remove(&t);
    xfree(ref);
    xfree(got);
}

TEST(engine_weights_model_errors)
{
    struct hx_diag d = {0};
    float *got = xmalloc(NLOG * sizeof(float));
    struct tdir t;
    tdir_make(&t);
    /* missing tensor */
    rewrite_model(&t, CONV_SAME, "model.layers.4.mlp.up_proj.weight", NULL, 0);
    ASSERT_ERR(model_logits(t.path, got, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "missing tensor 'model.layers.4.mlp.up_proj.weight'");
    /* a tensor in a dtype we cannot compute with */
    hx_diag_clear(&d);
    rewrite_model(&t, CONV_SAME, NULL, "model.layers.1.self_attn.k_proj.weight", 0);
    ASSERT_ERR(model_logits(t.path, got, &d), HX_ENOTSUP);
    ASSERT_CONTAINS(d.msg, "dtype I32");
    /* truncated file */
    rewrite_model(&t, CONV_SAME, NULL, NULL, 0);
    char p[128];
    tdir_file(&t, "model.safetensors", p, sizeof(p));
    ASSERT_EQ(truncate(p, 5000000), 0);
    hx_diag_clear(&d);
    ASSERT_ERR(model_logits(t.path, got, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "truncated");
    /* wrong shape: config says more heads than the weights have */
    rewrite_model(&t, CONV_SAME, NULL, NULL, 0);
    tdir_file(&t, "config.json", p, sizeof(p));
    const char *cfg = "{\"model_type\":\"llama\",\"num_hidden_layers\":6,\"hidden_size\":256,"
                      "\"num_attention_heads\":8,\"num_key_value_heads\":4,"
                      "\"intermediate_size\":704,\"vocab_size\":4096}";
    write_all(p, cfg, strlen(cfg));
    hx_diag_clear(&d);
    ASSERT_ERR(model_logits(t.path, got, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "k_proj.weight' has shape [64, 256], config.json implies [128, 256]");
    /* no weights at all */
    tdir_file(&t, "model.safetensors", p, sizeof(p));
    unlink(p);
    hx_diag_clear(&d);
    ASSERT_ERR(model_logits(t.path, got, &d), HX_EIO);
    ASSERT_CONTAINS(d.msg, "model.safetensors");
    tdir_remove(&t);
    /* bad range */
    struct eng_backend *be;
    struct eng_model *m;
    ASSERT_OK(eng_cpu_backend_new(1, &be, &d));
    ASSERT_ERR(eng_model_load(MODEL_DIR, 4, 9, be, &m, &d), HX_EINVAL);
    ASSERT_ERR(eng_model_load(MODEL_DIR, 3, 3, be, &m, &d), HX_EINVAL);
    eng_backend_free(be);
    xfree(got);
}

TEST(engine_config_parse)
{
    struct eng_config c;
    struct hx_diag d = {0};
    size_t n;
    unsigned char *txt = read_all(MODEL_DIR "/config.json", &n);
    ASSERT_OK_DIAG(eng_config_parse((const char *)txt, n, "config.json", &c, &d), &d);
    xfree(txt);
    ASSERT_EQ(c.n_layers, 6);
    ASSERT_EQ(c.n_kv_heads, 2);
    ASSERT_EQ(c.head_dim, 32);
    ASSERT_DBL_NEAR(c.rope_theta, 10000.0, 0);
    ASSERT_DBL_NEAR(c.rms_eps, 1e-5, 1e-12);
    ASSERT_EQ(c.tied, 0);
    ASSERT_EQ(c.eos_id, 1);
    /* qwen2: top-level rope_theta, bias, tied, eos list, no head_dim */
    const char *qwen = "{\"model_type\":\"qwen2\",\"num_hidden_layers\":24,\"hidden_size\":896,"
                       "\"num_attention_heads\":14,\"num_key_value_heads\":2,"
                       "\"intermediate_size\":4864,\"vocab_size\":151936,\"rope_theta\":1000000.0,"
                       "\"rms_norm_eps\":1e-6,\"tie_word_embeddings\":true,"
                       "\"eos_token_id\":[151645,151643]}";
    ASSERT_OK_DIAG(eng_config_parse(qwen, strlen(qwen), "q.json", &c, &d), &d);
    ASSERT_EQ(c.qkv_bias, 1);
    ASSERT_EQ(c.tied, 1);
    ASSERT_EQ(c.head_dim, 64);
    ASSERT_EQ(c.eos_id, 151645);
    ASSERT_DBL_NEAR(c.rope_theta, 1e6, 0);
    /* refusals name the key */
    const char *gelu = "{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"hidden_size\":64,"
                       "\"num_attention_heads\":4,\"intermediate_size\":128,\"vocab_size\":10,"
                       "\"hidden_act\":\"gelu\"}";
    ASSERT_ERR(eng_config_parse(gelu, strlen(gelu), "g.json", &c, &d), HX_ENOTSUP);
    ASSERT_CONTAINS(d.msg, "hidden_act");
    hx_diag_clear(&d);
    const char *scaled = "{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"hidden_size\":64,"
                         "\"num_attention_heads\":4,\"intermediate_size\":128,\"vocab_size\":10,"
                         "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0}}";
    ASSERT_ERR(eng_config_parse(scaled, strlen(scaled), "s.json", &c, &d), HX_ENOTSUP);
    ASSERT_CONTAINS(d.msg, "llama3");
    hx_diag_clear(&d);
    const char *missing = "{\"model_type\":\"mistral\",\"num_hidden_layers\":2}";
    ASSERT_ERR(eng_config_parse(missing, strlen(missing), "m.json", &c, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "m.json: missing key 'hidden_size'");
    hx_diag_clear(&d);
    const char *gqa = "{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"hidden_size\":64,"
                      "\"num_attention_heads\":4,\"num_key_value_heads\":3,"
                      "\"intermediate_size\":128,\"vocab_size\":10}";
    ASSERT_ERR(eng_config_parse(gqa, strlen(gqa), "k.json", &c, &d), HX_EPARSE);
    ASSERT_ERR(eng_config_parse("[1,2]", 5, "x.json", &c, &d), HX_EPARSE);
    ASSERT_ERR(eng_config_parse("{\"model_type\":\"gpt2\"}", 21, "x.json", &c, &d), HX_ENOTSUP);
}

/* Rewrite config.json of dir: the bundled one with "key": value pairs replaced or added. */
static void set_config(const struct tdir *t, const char *key, cJSON *value)
{
    size_t n;
    unsigned char *txt = read_all(MODEL_DIR "/config.json", &n);
    cJSON *root = cJSON_ParseWithLength((const char *)txt, n);
    xfree(txt);
    char p[128];
    tdir_file(t, "config.json", p, sizeof(p));
    FILE *f = fopen(p, "rb");
    if (f) { /* start from the current one */
        fclose(f);
        txt = read_all(p, &n);
        cJSON_Delete(root);
        root = cJSON_ParseWithLength((const char *)txt, n);
        xfree(txt);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    cJSON_AddItemToObject(root, key, value);
    char *out = cJSON_Print(root);
    write_all(p, out, strlen(out));
    cJSON_free(out);
    cJSON_Delete(root);
}

TEST(engine_weights_qwen2_bias_and_tied_head)
{
    struct hx_diag d = {0};
    float *ref = xmalloc(NLOG * sizeof(float));
    float *got = xmalloc(NLOG * sizeof(float));
    float *other = xmalloc(NLOG * sizeof(float));
    ASSERT_OK_DIAG(model_logits(MODEL_DIR, ref, &d), &d);
    struct tdir t;
    tdir_make(&t);
    /* qwen2 with zero q/k/v biases is the same model */
    g_bias = 0.0f;
    rewrite_model(&t, CONV_SAME, NULL, NULL, 0);
    set_config(&t, "model_type", cJSON_CreateString("qwen2"));
    ASSERT_OK_DIAG(model_logits(t.path, got, &d), &d);
    ASSERT_LE(rel_l2(got, ref, NLOG), 1e-6);
    /* non-zero biases change it; llama with attention_bias reads them the same way */
    g_bias = 0.05f;
    rewrite_model(&t, CONV_SAME, NULL, NULL, 0);
    set_config(&t, "model_type", cJSON_CreateString("qwen2"));
    ASSERT_OK_DIAG(model_logits(t.path, got, &d), &d);
    ASSERT_GE(rel_l2(got, ref, NLOG), 1e-3);
    set_config(&t, "model_type", cJSON_CreateString("llama"));
    set_config(&t, "attention_bias", cJSON_CreateTrue());
    ASSERT_OK_DIAG(model_logits(t.path, other, &d), &d);
    ASSERT_LE(rel_l2(other, got, NLOG), 1e-7);
    /* and without the bias tensors that config is refused */
    g_bias = NAN;
    rewrite_model(&t, CONV_SAME, NULL, NULL, 0);
    set_config(&t, "attention_bias", cJSON_CreateTrue());
    hx_diag_clear(&d);
    ASSERT_ERR(model_logits(t.path, got, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "q_proj.bias");
    /* tied head: no lm_head.weight; logits = final hidden . embedding^T */
    rewrite_model(&t, CONV_SAME, "lm_head.weight", NULL, 0);
    hx_diag_clear(&d);
    ASSERT_ERR(model_logits(t.path, got, &d), HX_EPARSE); /* untied needs lm_head */
    ASSERT_CONTAINS(d.msg, "lm_head.weight");
    set_config(&t, "tie_word_embeddings", cJSON_CreateTrue());
    struct eng_backend *be;
    struct eng_model *m;
    struct eng_engine *e;
    ASSERT_OK(eng_cpu_backend_new(1, &be, &d));
    ASSERT_OK_DIAG(eng_model_load(t.path, 0, -1, be, &m, &d), &d);
    ASSERT_OK_DIAG(eng_engine_new(m, NULL, &e, &d), &d);
    ASSERT_OK(eng_seq_add(e, 1, &d));
    float *normed = xmalloc((size_t)PROMPT_N * 256 * sizeof(float));
    struct eng_seq_step st = {1, 0, PROMPT_N, PROMPT, NULL};
    struct eng_step_out out = {.logits = got, .all_logits = 1, .norm_hidden = normed};
    ASSERT_OK_DIAG(eng_engine_step(e, &st, 1, &out, &d), &d);
    const struct eng_weight *emb = &m->embed;
    for (int tpos = 0; tpos < PROMPT_N; tpos += 3) {
        for (int v = 0; v < 4096; v += 7) {
            double want = 0;
            for (int j = 0; j < 256; j++) {
                want += (double)eng_weight_get(emb, (size_t)v * 256 + (size_t)j) *
                        (double)normed[tpos * 256 + j];
            }
            ASSERT_DBL_NEAR(got[(size_t)tpos * 4096 + (size_t)v], want, 1e-4);
        }
    }
    xfree(normed);
    eng_engine_free(e);
    eng_model_free(m);
    eng_backend_free(be);
    tdir_remove(&t);
    xfree(ref);
    xfree(got);
    xfree(other);
}
