/*
 * test_engine_gguf.c - GGUF input. The bundled model is written here as a GGUF file with
 * llama.cpp's conventions (llama.* metadata, the gpt2 tokenizer's tokens / merges / types,
 * q_proj and k_proj rows reordered for ggml's interleaved RoPE, F32 norms; BF16 or Q8_0
 * matrices) and must give the logits of the safetensors directory and the same tokens; then
 * malformed files, each a clear error naming the file and the field or tensor.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "engine/engine_int.h"
#include "engine/tokenizer.h"
#include "test.h"

#define MODEL_DIR "models/kjv-llama-6m"

struct gbuf {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct gbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 1024;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_u32(struct gbuf *b, uint32_t v)
{
    put(b, &v, 4);
}

static void put_u64(struct gbuf *b, uint64_t v)
{
    put(b, &v, 8);
}

static void put_str(struct gbuf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

static void kv_u32(struct gbuf *b, const char *k, uint32_t v)
{
    put_str(b, k);
    put_u32(b, 4);
    put_u32(b, v);
}

static void kv_f32(struct gbuf *b, const char *k, float v)
{
    put_str(b, k);
    put_u32(b, 6);
    put(b, &v, 4);
}

static void kv_str(struct gbuf *b, const char *k, const char *v)
{
    put_str(b, k);
    put_u32(b, 8);
    put_str(b, v);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ASSERT(f != NULL);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = xmalloc((size_t)n + 1);
    ASSERT_EQ(fread(p, 1, (size_t)n, f), n);
    fclose(f);
    p[n] = 0;
    *len = (size_t)n;
    return p;
}

/* Options for the writer: matrices as Q8_0; a broken variant. */
struct wopts {
    int q8;
    const char *arch;     /* default "llama" */
    int skip_block_count; /* no llama.block_count */
    const char *drop;     /* a tensor left out */
};

/* The bundled model as GGUF bytes (the whole file in *out). */
static void write_gguf(const struct wopts *o, struct gbuf *out)
{
    size_t st_len;
    unsigned char *st_bytes = slurp(MODEL_DIR "/model.safetensors", &st_len);
    struct eng_st_file st;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(eng_st_parse(st_bytes, st_len, "model.safetensors", &st, &d), &d);
    size_t tj_len;
    char *tj = (char *)slurp(MODEL_DIR "/tokenizer.json", &tj_len);
    cJSON *tok = cJSON_Parse(tj);
    ASSERT(tok != NULL);
    cJSON *vocab = cJSON_GetObjectItem(cJSON_GetObjectItem(tok, "model"), "vocab");
    cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(tok, "model"), "merges");
    int n_vocab = 4096;
    const char **names = xcalloc((size_t)n_vocab, sizeof(char *));
    int32_t *types = xcalloc((size_t)n_vocab, sizeof(int32_t));
    cJSON *e;
    cJSON_ArrayForEach(e, vocab)
    {
        names[(int)e->valuedouble] = e->string;
        types[(int)e->valuedouble] = 1;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(tok, "added_tokens"))
    {
        int id = cJSON_GetObjectItem(e, "id")->valueint;
        names[id] = cJSON_GetObjectItem(e, "content")->valuestring;
        types[id] = 3;
    }
    /* tensors, in llama.cpp's names */
    static const char *const per[9][2] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
    };
    char hf[64][96], gg[64][96];
    int nt = 0;
    snprintf(hf[nt], 96, "model.embed_tokens.weight");
    snprintf(gg[nt++], 96, "token_embd.weight");
    for (int l = 0; l < 6; l++) {
        for (int k = 0; k < 9; k++, nt++) {
            snprintf(hf[nt], 96, "model.layers.%d.%s", l, per[k][0]);
            snprintf(gg[nt], 96, "blk.%d.%s", l, per[k][1]);
        }
    }
    snprintf(hf[nt], 96, "model.norm.weight");
    snprintf(gg[nt++], 96, "output_norm.weight");
    snprintf(hf[nt], 96, "lm_head.weight");
    snprintf(gg[nt++], 96, "output.weight");
    /* data of each tensor, converted */
    struct gbuf data = {0};
    uint64_t offs[64];
    uint32_t gtype[64];
    int64_t shape[64][2];
    int kept = 0;
    int keep_idx[64];
    for (int i = 0; i < nt; i++) {
        if (o->drop && strcmp(o->drop, gg[i]) == 0) {
            continue;
        }
        const struct eng_st_tensor *t = eng_st_find(&st, hf[i]);
        ASSERT(t != NULL);
        while (data.n % 32) {
            put(&data, "", 1);
        }
        offs[kept] = data.n;
        size_t rows = (size_t)t->shape[0];
        size_t cols = t->n_dims == 2 ? (size_t)t->shape[1] : 0;
        shape[kept][0] = (int64_t)rows;
        shape[kept][1] = (int64_t)cols;
        const uint16_t *src = (const uint16_t *)(st_bytes + t->begin);
        if (!cols) { /* norms: F32 */
            gtype[kept] = 0;
            for (size_t j = 0; j < rows; j++) {
                float f = eng_bf16_to_f32(src[j]);
                put(&data, &f, 4);
            }
        } else {
            int heads = strstr(hf[i], "q_proj") ? 8 : strstr(hf[i], "k_proj") ? 2 : 0;
            int q8 = o->q8 && i != 0; /* not the embedding */
            gtype[kept] = q8 ? 8 : 30;
            float *row = xmalloc(cols * sizeof(float));
            struct eng_block_q8_0 *blk = xmalloc(cols / 32 * sizeof(*blk));
            for (size_t r = 0; r < rows; r++) {
                size_t from = r;
                if (heads) { /* GGUF row 2i + s holds HF row s * hd/2 + i */
                    size_t hd = rows / (size_t)heads, h = r / hd, j = r % hd;
                    from = h * hd + (j % 2) * (hd / 2) + j / 2;
                }
                if (q8) {
                    for (size_t c = 0; c < cols; c++) {
                        row[c] = eng_bf16_to_f32(src[from * cols + c]);
                    }
                    eng_quant_row_q8_0(row, blk, cols);
                    put(&data, blk, cols / 32 * sizeof(*blk));
                } else {
                    put(&data, src + from * cols, cols * 2);
                }
            }
            xfree(row);
            xfree(blk);
        }
        keep_idx[kept++] = i;
    }
    /* header */
    struct gbuf *b = out;
    memset(b, 0, sizeof(*b));
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, (uint64_t)kept);
    put_u64(b, o->skip_block_count ? 15 : 16);
    kv_str(b, "general.architecture", o->arch ? o->arch : "llama");
    if (!o->skip_block_count) {
        kv_u32(b, "llama.block_count", 6);
    }
    kv_u32(b, "llama.context_length", 512);
    kv_u32(b, "llama.embedding_length", 256);
    kv_u32(b, "llama.feed_forward_length", 704);
    kv_u32(b, "llama.attention.head_count", 8);
    kv_u32(b, "llama.attention.head_count_kv", 2);
    kv_f32(b, "llama.rope.freq_base", 10000.0f);
    kv_f32(b, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    kv_str(b, "tokenizer.ggml.model", "gpt2");
    kv_str(b, "tokenizer.ggml.pre", "gpt-2");
    put_str(b, "tokenizer.ggml.tokens");
    put_u32(b, 9);
    put_u32(b, 8);
    put_u64(b, (uint64_t)n_vocab);
    for (int i = 0; i < n_vocab; i++) {
        put_str(b, names[i] ? names[i] : "");
    }
    put_str(b, "tokenizer.ggml.token_type");
    put_u32(b, 9);
    put_u32(b, 5);
    put_u64(b, (uint64_t)n_vocab);
    put(b, types, (size_t)n_vocab * 4);
    put_str(b, "tokenizer.ggml.merges");
    put_u32(b, 9);
    put_u32(b, 8);
    put_u64(b, (uint64_t)cJSON_GetArraySize(merges));
    cJSON_ArrayForEach(e, merges)
    {
        char m[256];
        snprintf(m, sizeof(m), "%s %s", cJSON_GetArrayItem(e, 0)->valuestring,
                 cJSON_GetArrayItem(e, 1)->valuestring);
        put_str(b, m);
    }
    kv_u32(b, "tokenizer.ggml.bos_token_id", 0);
    put_str(b, "tokenizer.ggml.add_bos_token");
    put_u32(b, 7);
    put(b, "\1", 1);
    for (int k = 0; k < kept; k++) {
        put_str(b, gg[keep_idx[k]]);
        int nd = shape[k][1] ? 2 : 1;
        put_u32(b, (uint32_t)nd);
        if (nd == 2) {
            put_u64(b, (uint64_t)shape[k][1]); /* ne[0]: the columns */
        }
        put_u64(b, (uint64_t)shape[k][0]);
        put_u32(b, gtype[k]);
        put_u64(b, offs[k]);
    }
    while (b->n % 32) {
        put(b, "", 1);
    }
    put(b, data.p, data.n);
    xfree(data.p);
    xfree(names);
    xfree(types);
    cJSON_Delete(tok);
    xfree(tj);
    eng_st_release(&st);
    xfree(st_bytes);
}

static void save(const char *path, const struct gbuf *b)
{
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    ASSERT_EQ(fwrite(b->p, 1, b->n, f), b->n);
    fclose(f);
}

static const int32_t PROMPT[] = {0, 2580, 420, 260, 1437, 288, 973, 27, 319};
#define N_PROMPT 9

static void logits_of(const char *path, enum eng_dtype fmt, float *out)
{
    struct hx_diag d = {0};
    struct eng_backend *be;
    struct eng_model *m;
    struct eng_engine *e;
    ASSERT_OK_DIAG(eng_cpu_backend_new(2, &be, &d), &d);
    struct eng_model_opts mo = {0, -1, fmt};
    ASSERT_OK_DIAG(eng_model_open(path, &mo, be, &m, &d), &d);
    struct eng_engine_opts eo = {.max_seqs = 1, .max_tokens = 16, .max_ctx = 32};
    ASSERT_OK_DIAG(eng_engine_new(m, &eo, &e, &d), &d);
    ASSERT_OK(eng_seq_add(e, 1, &d));
    struct eng_seq_step s = {1, 0, N_PROMPT, PROMPT, NULL};
    struct eng_step_out so = {.logits = out, .all_logits = 1};
    ASSERT_OK_DIAG(eng_engine_step(e, &s, 1, &so, &d), &d);
    eng_engine_free(e);
    eng_model_free(m);
    eng_backend_free(be);
}

TEST(engine_gguf_equals_safetensors)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/hx_gguf_%d.gguf", (int)getpid());
    struct gbuf b;
    struct wopts o = {0};
    write_gguf(&o, &b);
    save(path, &b);
    ASSERT(eng_gguf_is_file(path));
    ASSERT(!eng_gguf_is_file(MODEL_DIR));
    size_t n = (size_t)N_PROMPT * 4096;
    float *a = xmalloc(n * sizeof(float));
    float *g = xmalloc(n * sizeof(float));
    logits_of(MODEL_DIR, ENG_DTYPE_OTHER, a);
    logits_of(path, ENG_DTYPE_OTHER, g);
    /* the same bf16 values, norms widened to f32 exactly, q/k rows put back: equal logits */
    for (size_t i = 0; i < n; i++) {
        ASSERT_DBL_NEAR(g[i], a[i], 1e-5 * (1 + fabs(a[i])));
    }
    /* Q8_0 matrices in the file = the safetensors quantized at load, bit for bit */
    struct wopts q = {.q8 = 1};
    xfree(b.p);
    write_gguf(&q, &b);
    save(path, &b);
    logits_of(MODEL_DIR, ENG_DTYPE_Q8_0, a);
    logits_of(path, ENG_DTYPE_OTHER, g);
    ASSERT_EQ(memcmp(a, g, n * sizeof(float)), 0);
    /* the tokenizer the file carries encodes as tokenizer.json does */
    struct hx_diag d = {0};
    struct eng_tok *t1, *t2;
    ASSERT_OK_DIAG(eng_tok_load(MODEL_DIR "/tokenizer.json", &t1, &d), &d);
    ASSERT_OK_DIAG(eng_tok_load_gguf(path, &t2, &d), &d);
    const char *text = "In the beginning God created the heaven and the earth. 1:2 And, lo!";
    int32_t *i1, *i2;
    size_t n1, n2;
    ASSERT_OK(eng_tok_encode(t1, text, strlen(text), ENG_TOK_ADD_BOS, &i1, &n1, &d));
    ASSERT_OK(eng_tok_encode(t2, text, strlen(text), ENG_TOK_ADD_BOS, &i2, &n2, &d));
    ASSERT_EQ(n1, n2);
    ASSERT_EQ(i2[0], 0); /* BOS from add_bos_token */
    ASSERT_EQ(memcmp(i1, i2, n1 * sizeof(int32_t)), 0);
    ASSERT_EQ(eng_tok_eos_id(t2), eng_tok_eos_id(t1));
    xfree(i1);
    xfree(i2);
    eng_tok_free(t1);
    eng_tok_free(t2);
    xfree(a);
    xfree(g);
    xfree(b.p);
    unlink(path);
}

static int open_bytes(const char *path, const struct gbuf *b, struct hx_diag *d)
{
    save(path, b);
    struct eng_backend *be;
    struct eng_model *m = NULL;
    ASSERT_OK(eng_cpu_backend_new(1, &be, NULL));
    hx_diag_clear(d);
    int rc = eng_model_open(path, NULL, be, &m, d);
    eng_model_free(m);
    eng_backend_free(be);
    return rc;
}

TEST(engine_gguf_errors)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/hx_gguf_e%d.gguf", (int)getpid());
    struct hx_diag d = {0};
    struct gbuf good;
    struct wopts o = {0};
    write_gguf(&o, &good);
    /* every truncation of the header and tensor table is an error, never a crash */
    struct eng_gguf g;
    size_t hdr_end = 0;
    ASSERT_OK(eng_gguf_parse(good.p, good.n, "x.gguf", &g, &d));
    hdr_end = (size_t)g.st.data_start;
    eng_gguf_release(&g);
    for (size_t n = 0; n < hdr_end; n += n < 64 ? 1 : 997) {
        hx_diag_clear(&d);
        ASSERT_NE(eng_gguf_parse(good.p, n, "x.gguf", &g, &d), HX_OK);
        ASSERT(d.msg[0] != '\0');
    }
    /* a file cut in the data: the tensor that no longer fits is named */
    struct gbuf cut = good;
    cut.n = good.n - 100;
    ASSERT_ERR(open_bytes(path, &cut, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "output.weight");
    ASSERT_CONTAINS(d.msg, "truncated");
    /* magic and version */
    struct gbuf bad = {0};
    put(&bad, good.p, good.n);
    bad.p[0] = 'X';
    hx_diag_clear(&d);
    ASSERT_ERR(eng_gguf_parse(bad.p, bad.n, "x.gguf", &g, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "magic");
    bad.p[0] = 'G';
    bad.p[4] = 4;
    hx_diag_clear(&d);
    ASSERT_ERR(eng_gguf_parse(bad.p, bad.n, "x.gguf", &g, &d), HX_ENOTSUP);
    ASSERT_CONTAINS(d.msg, "version 4");
    bad.p[4] = 3;
    /* an absurd metadata count */
    uint64_t huge = (uint64_t)1 << 40;
    memcpy(bad.p + 16, &huge, 8);
    hx_diag_clear(&d);
    ASSERT_ERR(eng_gguf_parse(bad.p, bad.n, "x.gguf", &g, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "cannot fit");
    /* a value type that does not exist (the first key's type: after 24 + 8 + 20 bytes) */
    memcpy(bad.p, good.p, good.n);
    bad.p[24 + 8 + 20] = 99;
    hx_diag_clear(&d);
    ASSERT_ERR(eng_gguf_parse(bad.p, bad.n, "x.gguf", &g, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "general.architecture");
    ASSERT_CONTAINS(d.msg, "unknown value type 99");
    xfree(bad.p);
    /* architecture, missing metadata, missing tensor */
    struct gbuf b;
    struct wopts arch = {.arch = "gpt2"};
    write_gguf(&arch, &b);
    ASSERT_ERR(open_bytes(path, &b, &d), HX_ENOTSUP);
    ASSERT_CONTAINS(d.msg, "architecture 'gpt2'");
    xfree(b.p);
    struct wopts nobc = {.skip_block_count = 1};
    write_gguf(&nobc, &b);
    ASSERT_ERR(open_bytes(path, &b, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "llama.block_count");
    xfree(b.p);
    struct wopts drop = {.drop = "blk.3.ffn_up.weight"};
    write_gguf(&drop, &b);
    ASSERT_ERR(open_bytes(path, &b, &d), HX_EPARSE);
    ASSERT_CONTAINS(d.msg, "missing tensor 'blk.3.ffn_up.weight'");
    ASSERT_CONTAINS(d.msg, path);
    xfree(b.p);
    xfree(good.p);
    unlink(path);
}
