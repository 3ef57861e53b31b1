/*
 * gguf.c - GGUF files (llama.cpp's format): the parser, the LLaMA configuration from the
 * metadata, llama.cpp's tensor names, and a tokenizer built from the file's vocabulary.
 *
 * A file is: magic "GGUF", version (2 or 3), tensor count, metadata count (u64 each), the
 * metadata (key string, u32 type, value; strings are u64 length + bytes, arrays u32 element
 * type + u64 count + elements), the tensor infos (name, u32 n_dims, n_dims u64 ne with ne[0]
 * the fastest, u32 ggml type, u64 offset), padding to general.alignment (default 32), then
 * the data. Every length and count is checked against the bytes left before it is used (the
 * file is external input and a libFuzzer target drives this code).
 */
#include "engine/engine_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/status.h"
#include "engine/tokenizer.h"

enum {
    GGUF_U8 = 0,
    GGUF_I8 = 1,
    GGUF_U16 = 2,
    GGUF_I16 = 3,
    GGUF_U32 = 4,
    GGUF_I32 = 5,
    GGUF_F32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_U64 = 10,
    GGUF_I64 = 11,
    GGUF_F64 = 12,
};

#define GGUF_MAX_DIMS 4

struct rd {
    const unsigned char *p;
    size_t len;
    size_t off;
    const char *path;
    struct hx_diag *diag;
};

static int truncated(struct rd *r, const char *what)
{
    return hx_diag_set(r->diag, HX_EPARSE, "%s: truncated at byte %zu reading %s (file has %zu)",
                       r->path, r->off, what, r->len);
}

static int rd_bytes(struct rd *r, size_t n, const unsigned char **out, const char *what)
{
    if (n > r->len - r->off) {
        return truncated(r, what);
    }
    *out = r->p + r->off;
    r->off += n;
    return HX_OK;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what)
{
    const unsigned char *b = NULL;
    int rc = rd_bytes(r, 4, &b, what);
    if (rc == HX_OK) {
        memcpy(v, b, 4);
    }
    return rc;
}

static int rd_u64(struct rd *r, uint64_t *v, const char *what)
{
    const unsigned char *b = NULL;
    int rc = rd_bytes(r, 8, &b, what);
    if (rc == HX_OK) {
        memcpy(v, b, 8);
    }
    return rc;
}

static int rd_str(struct rd *r, const char **s, size_t *n, const char *what)
{
    uint64_t len;
    const unsigned char *b = NULL;
    int rc = rd_u64(r, &len, what);
    if (rc != HX_OK) {
        return rc;
    }
    if (len > r->len - r->off) {
        return hx_diag_set(r->diag, HX_EPARSE,
                           "%s: %s at byte %zu: string of %llu bytes runs past the end of the file",
                           r->path, what, r->off, (unsigned long long)len);
    }
    rd_bytes(r, (size_t)len, &b, what);
    *s = (const char *)b;
    *n = (size_t)len;
    return HX_OK;
}

/* Bytes of a scalar value type; 0 for string, array and unknown types. */
static size_t scalar_size(uint32_t t)
{
    static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < sizeof(sz) / sizeof(sz[0]) ? sz[t] : 0;
}

/* Skip one value of type t (arrays: one level, of scalars or strings). */
static int skip_value(struct rd *r, uint32_t t, struct eng_gguf_kv *kv, const char *key, int klen)
{
    const unsigned char *b = NULL;
    if (t == GGUF_STRING) {
        const char *s;
        size_t n;
        return rd_str(r, &s, &n, "a string value");
    }
    if (t == GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        int rc;
        if ((rc = rd_u32(r, &et, "an array type")) != HX_OK ||
            (rc = rd_u64(r, &n, "an array length")) != HX_OK) {
            return rc;
        }
        kv->arr_type = et;
        kv->arr_n = n;
        kv->val = r->p + r->off;
        if (et == GGUF_STRING) {
            if (n > (r->len - r->off) / 8) {
                return truncated(r, "an array of strings");
            }
            for (uint64_t i = 0; i < n; i++) {
                const char *s;
                size_t sl;
                if ((rc = rd_str(r, &s, &sl, "an array string")) != HX_OK) {
                    return rc;
                }
            }
            return HX_OK;
        }
        size_t es = scalar_size(et);
        if (es == 0) {
            return hx_diag_set(r->diag, HX_EPARSE,
                               "%s: metadata '%.*s': array of element type %u (not a scalar or "
                               "string)",
                               r->path, klen, key, et);
        }
        if (n > (r->len - r->off) / es) {
            return hx_diag_set(r->diag, HX_EPARSE,
                               "%s: metadata '%.*s': array of %llu elements runs past the end of "
                               "the file",
                               r->path, klen, key, (unsigned long long)n);
        }
        return rd_bytes(r, (size_t)n * es, &b, "an array");
    }
    size_t es = scalar_size(t);
    if (es == 0) {
        return hx_diag_set(r->diag, HX_EPARSE, "%s: metadata '%.*s': unknown value type %u",
                           r->path, klen, key, t);
    }
    return rd_bytes(r, es, &b, "a value");
}

/* ggml tensor types: (block elements, block bytes, our dtype, name). */
static const struct {
    uint32_t type;
    uint32_t blck;
    uint32_t bytes;
    enum eng_dtype dt;
    const char *name;
} ggml_types[] = {
    {0, 1, 4, ENG_DTYPE_F32, "F32"},         {1, 1, 2, ENG_DTYPE_F16, "F16"},
    {2, 32, 18, ENG_DTYPE_Q4_0, "Q4_0"},     {3, 32, 20, ENG_DTYPE_OTHER, "Q4_1"},
    {6, 32, 22, ENG_DTYPE_OTHER, "Q5_0"},    {7, 32, 24, ENG_DTYPE_OTHER, "Q5_1"},
    {8, 32, 34, ENG_DTYPE_Q8_0, "Q8_0"},     {9, 32, 36, ENG_DTYPE_OTHER, "Q8_1"},
    {10, 256, 84, ENG_DTYPE_OTHER, "Q2_K"},  {11, 256, 110, ENG_DTYPE_OTHER, "Q3_K"},
    {12, 256, 144, ENG_DTYPE_OTHER, "Q4_K"}, {13, 256, 176, ENG_DTYPE_OTHER, "Q5_K"},
    {14, 256, 210, ENG_DTYPE_OTHER, "Q6_K"}, {15, 256, 292, ENG_DTYPE_OTHER, "Q8_K"},
    {24, 1, 1, ENG_DTYPE_OTHER, "I8"},       {25, 1, 2, ENG_DTYPE_OTHER, "I16"},
    {26, 1, 4, ENG_DTYPE_OTHER, "I32"},      {27, 1, 8, ENG_DTYPE_OTHER, "I64"},
    {28, 1, 8, ENG_DTYPE_OTHER, "F64"},      {30, 1, 2, ENG_DTYPE_BF16, "BF16"},
};

static int parse_tensor(struct rd *r, struct eng_st_tensor *t, uint64_t *rel_off)
{
    const char *name;
    size_t nlen;
    uint32_t n_dims;
    int rc;
    if ((rc = rd_str(r, &name, &nlen, "a tensor name")) != HX_OK) {
        return rc;
    }
    t->name = xmalloc(nlen + 1);
    memcpy(t->name, name, nlen);
    t->name[nlen] = '\0';
    if (nlen == 0 || memchr(name, '\0', nlen)) {
        return hx_diag_set(r->diag, HX_EPARSE, "%s: tensor at byte %zu: empty or bad name", r->path,
                           r->off);
    }
    if ((rc = rd_u32(r, &n_dims, "a tensor's dimension count")) != HX_OK) {
        return rc;
    }
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) {
        return hx_diag_set(r->diag, HX_EPARSE, "%s: tensor '%.64s': %u dimensions (1 to %d)",
                           r->path, t->name, n_dims, GGUF_MAX_DIMS);
    }
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t elems = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if ((rc = rd_u64(r, &ne[d], "a tensor dimension")) != HX_OK) {
            return rc;
        }
        if (ne[d] == 0 || ne[d] > ((uint64_t)1 << 40) || elems > (((uint64_t)1 << 50) / ne[d])) {
            return hx_diag_set(r->diag, HX_EPARSE, "%s: tensor '%.64s': bad dimension %llu",
                               r->path, t->name, (unsigned long long)ne[d]);
        }
        elems *= ne[d];
    }
    uint32_t type;
    if ((rc = rd_u32(r, &type, "a tensor type")) != HX_OK ||
        (rc = rd_u64(r, rel_off, "a tensor offset")) != HX_OK) {
        return rc;
    }
    t->n_dims = (int)n_dims;
    for (uint32_t d = 0; d < n_dims; d++) {
        t->shape[d] = (int64_t)ne[n_dims - 1 - d]; /* PyTorch order: rows first */
    }
    t->dtype = ENG_DTYPE_OTHER;
    snprintf(t->dtype_name, sizeof(t->dtype_name), "type%u", type);
    uint64_t bytes = 0;
    for (size_t i = 0; i < sizeof(ggml_types) / sizeof(ggml_types[0]); i++) {
        if (ggml_types[i].type == type) {
            if (ne[0] % ggml_types[i].blck != 0) {
                return hx_diag_set(r->diag, HX_EPARSE,
                                   "%s: tensor '%.64s': %s rows of %llu elements (not whole "
                                   "blocks of %u)",
                                   r->path, t->name, ggml_types[i].name, (unsigned long long)ne[0],
                                   ggml_types[i].blck);
            }
            bytes = elems / ggml_types[i].blck * ggml_types[i].bytes;
            t->dtype = ggml_types[i].dt;
            snprintf(t->dtype_name, sizeof(t->dtype_name), "%s", ggml_types[i].name);
        }
    }
    t->end = bytes; /* relative until the data start is known */
    return HX_OK;
}

int eng_gguf_parse(const void *buf, size_t len, const char *path, struct eng_gguf *out,
                   struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    struct rd r = {buf, len, 0, path, diag};
    const unsigned char *magic = NULL;
    uint32_t version;
    uint64_t n_tensors;
    uint64_t n_kv;
    int rc;
    if ((rc = rd_bytes(&r, 4, &magic, "the magic")) != HX_OK) {
        return rc;
    }
    if (memcmp(magic, "GGUF", 4) != 0) {
        return hx_diag_set(diag, HX_EPARSE, "%s: not a GGUF file (no GGUF magic)", path);
    }
    if ((rc = rd_u32(&r, &version, "the version")) != HX_OK) {
        return rc;
    }
    if (version != 2 && version != 3) {
        return hx_diag_set(diag, HX_ENOTSUP, "%s: GGUF version %u (helix reads 2 and 3)", path,
                           version);
    }
    if ((rc = rd_u64(&r, &n_tensors, "the tensor count")) != HX_OK ||
        (rc = rd_u64(&r, &n_kv, "the metadata count")) != HX_OK) {
        return rc;
    }
    /* each metadata entry takes at least 13 bytes, each tensor info at least 29 */
    if (n_kv > (len - r.off) / 13 || n_tensors > (len - r.off) / 29) {
        return hx_diag_set(diag, HX_EPARSE,
                           "%s: %llu tensors and %llu metadata entries cannot fit in %zu bytes",
                           path, (unsigned long long)n_tensors, (unsigned long long)n_kv, len);
    }
    out->version = version;
    out->base = buf;
    out->len = len;
    out->kv = xcalloc(n_kv ? (size_t)n_kv : 1, sizeof(*out->kv));
    uint64_t alignment = 32;
    for (uint64_t i = 0; i < n_kv; i++) {
        struct eng_gguf_kv *kv = &out->kv[i];
        if ((rc = rd_str(&r, &kv->key, &kv->key_len, "a metadata key")) != HX_OK ||
            (rc = rd_u32(&r, &kv->type, "a metadata type")) != HX_OK) {
            goto fail;
        }
        out->n_kv = (int)i + 1;
        kv->val = r.p + r.off;
        if ((rc = skip_value(&r, kv->type, kv, kv->key,
                             (int)(kv->key_len > 200 ? 200 : kv->key_len))) != HX_OK) {
            goto fail;
        }
        if (kv->key_len == 17 && memcmp(kv->key, "general.alignment", 17) == 0) {
            uint32_t a = 0;
            if (kv->type == GGUF_U32) {
                memcpy(&a, kv->val, 4);
            }
            if (a == 0 || (a & (a - 1)) != 0) {
                rc = hx_diag_set(diag, HX_EPARSE,
                                 "%s: general.alignment must be a u32 power of two", path);
                goto fail;
            }
            alignment = a;
        }
    }
    out->st.tensors = xcalloc(n_tensors ? (size_t)n_tensors : 1, sizeof(*out->st.tensors));
    uint64_t *rel = xcalloc(n_tensors ? (size_t)n_tensors : 1, sizeof(*rel));
    for (uint64_t i = 0; i < n_tensors; i++) {
        out->st.n_tensors = (int)i + 1;
        if ((rc = parse_tensor(&r, &out->st.tensors[i], &rel[i])) != HX_OK) {
            xfree(rel);
            goto fail;
        }
    }
    uint64_t data_start = ((uint64_t)r.off + alignment - 1) / alignment * alignment;
    out->st.data_start = data_start;
    for (int i = 0; i < out->st.n_tensors; i++) {
        struct eng_st_tensor *t = &out->st.tensors[i];
        uint64_t bytes = t->end;
        if (rel[i] % alignment != 0 || rel[i] > len || data_start > len - rel[i] ||
            bytes > len - data_start - rel[i]) {
            rc = hx_diag_set(diag, HX_EPARSE,
                             "%s: tensor '%.64s': offset %llu (+%llu bytes) is misaligned or "
                             "past the end of the file: truncated?",
                             path, t->name, (unsigned long long)rel[i], (unsigned long long)bytes);
            xfree(rel);
            goto fail;
        }
        t->begin = data_start + rel[i];
        t->end = t->begin + bytes;
        for (int j = 0; j < i && out->st.n_tensors <= 4096; j++) {
            if (strcmp(out->st.tensors[j].name, t->name) == 0) {
                rc =
                    hx_diag_set(diag, HX_EPARSE, "%s: tensor '%.64s' appears twice", path, t->name);
                xfree(rel);
                goto fail;
            }
        }
    }
    xfree(rel);
    return HX_OK;
fail:
    eng_gguf_release(out);
    return rc;
}

void eng_gguf_release(struct eng_gguf *g)
{
    for (int i = 0; g->st.tensors && i < g->st.n_tensors; i++) {
        xfree(g->st.tensors[i].name);
    }
    xfree(g->st.tensors);
    xfree(g->kv);
    memset(g, 0, sizeof(*g));
}

const struct eng_gguf_kv *eng_gguf_find(const struct eng_gguf *g, const char *key)
{
    size_t n = strlen(key);
    for (int i = 0; i < g->n_kv; i++) {
        if (g->kv[i].key_len == n && memcmp(g->kv[i].key, key, n) == 0) {
            return &g->kv[i];
        }
    }
    return NULL;
}

/* ---- typed metadata ---- */

/* An integer value of any integer type: 1, 0 absent, -1 wrong type. */
static int kv_int(const struct eng_gguf *g, const char *key, int64_t *out)
{
    const struct eng_gguf_kv *kv = eng_gguf_find(g, key);
    if (!kv) {
        return 0;
    }
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
    } v;
    size_t sz = scalar_size(kv->type);
    if (sz == 0 || kv->type == GGUF_F32 || kv->type == GGUF_F64) {
        return -1;
    }
    memcpy(&v, kv->val, sz);
    switch (kv->type) {
    case GGUF_U8:
    case GGUF_BOOL:
        *out = v.u8;
        break;
    case GGUF_I8:
        *out = v.i8;
        break;
    case GGUF_U16:
        *out = v.u16;
        break;
    case GGUF_I16:
        *out = v.i16;
        break;
    case GGUF_U32:
        *out = v.u32;
        break;
    case GGUF_I32:
        *out = v.i32;
        break;
    case GGUF_U64:
        *out = v.u64 > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v.u64;
        break;
    default:
        *out = v.i64;
        break;
    }
    return 1;
}

static int kv_float(const struct eng_gguf *g, const char *key, double *out)
{
    const struct eng_gguf_kv *kv = eng_gguf_find(g, key);
    if (!kv) {
        return 0;
    }
    if (kv->type == GGUF_F32) {
        float f;
        memcpy(&f, kv->val, 4);
        *out = f;
        return 1;
    }
    if (kv->type == GGUF_F64) {
        memcpy(out, kv->val, 8);
        return 1;
    }
    int64_t i;
    int rc = kv_int(g, key, &i);
    *out = (double)i;
    return rc;
}

/* A string value (not NUL-terminated): 1, 0 absent, -1 wrong type. */
static int kv_str(const struct eng_gguf *g, const char *key, const char **s, size_t *n)
{
    const struct eng_gguf_kv *kv = eng_gguf_find(g, key);
    if (!kv) {
        return 0;
    }
    if (kv->type != GGUF_STRING) {
        return -1;
    }
    uint64_t len;
    memcpy(&len, kv->val, 8);
    *s = (const char *)kv->val + 8;
    *n = (size_t)len;
    return 1;
}

static int need_int(const struct eng_gguf *g, const char *path, const char *key, int64_t *out,
                    struct hx_diag *diag)
{
    int rc = kv_int(g, key, out);
    if (rc == 0) {
        return hx_diag_set(diag, HX_EPARSE, "%s: missing metadata '%s'", path, key);
    }
    if (rc < 0 || *out < 1 || *out > 1000000000) {
        return hx_diag_set(diag, HX_EPARSE, "%s: metadata '%s' must be a positive integer", path,
                           key);
    }
    return HX_OK;
}

int eng_gguf_config(const struct eng_gguf *g, const char *path, struct eng_config *out,
                    struct hx_diag *diag)
{
    const char *arch;
    size_t alen;
    int rc = kv_str(g, "general.architecture", &arch, &alen);
    if (rc <= 0) {
        return hx_diag_set(diag, HX_EPARSE, "%s: missing string metadata 'general.architecture'",
                           path);
    }
    if (alen != 5 || memcmp(arch, "llama", 5) != 0) {
        return hx_diag_set(diag, HX_ENOTSUP,
                           "%s: general.architecture '%.*s' is not supported (only llama)", path,
                           (int)(alen > 32 ? 32 : alen), arch);
    }
    char key[96];
    int64_t n_layers, hidden, ffn, heads, kv_heads, head_dim, ctx = 2048, vocab = 0;
#define KEY(k) (snprintf(key, sizeof(key), "llama.%s", k), key)
    if ((rc = need_int(g, path, KEY("block_count"), &n_layers, diag)) != HX_OK ||
        (rc = need_int(g, path, KEY("embedding_length"), &hidden, diag)) != HX_OK ||
        (rc = need_int(g, path, KEY("feed_forward_length"), &ffn, diag)) != HX_OK ||
        (rc = need_int(g, path, KEY("attention.head_count"), &heads, diag)) != HX_OK) {
        return rc;
    }
    kv_heads = heads;
    if (kv_int(g, KEY("attention.head_count_kv"), &kv_heads) != 0 &&
        (rc = need_int(g, path, key, &kv_heads, diag)) != HX_OK) {
        return rc;
    }
    head_dim = hidden / heads;
    if (kv_int(g, KEY("attention.key_length"), &head_dim) != 0 &&
        (rc = need_int(g, path, key, &head_dim, diag)) != HX_OK) {
        return rc;
    }
    int64_t rot = head_dim;
    if (kv_int(g, KEY("rope.dimension_count"), &rot) != 0 && rot != head_dim) {
        return hx_diag_set(diag, HX_ENOTSUP,
                           "%s: metadata '%s' = %lld, not the head dimension %lld (partial "
                           "rotary embeddings are not supported)",
                           path, key, (long long)rot, (long long)head_dim);
    }
    if (kv_int(g, KEY("context_length"), &ctx) != 0 &&
        (rc = need_int(g, path, key, &ctx, diag)) != HX_OK) {
        return rc;
    }
    double eps;
    if (kv_float(g, KEY("attention.layer_norm_rms_epsilon"), &eps) <= 0 || !(eps > 0) || eps > 1) {
        return hx_diag_set(diag, HX_EPARSE, "%s: metadata '%s' missing or not in (0, 1]", path,
                           key);
    }
    double theta = 10000.0;
    if (kv_float(g, KEY("rope.freq_base"), &theta) < 0 || !(theta > 1)) {
        return hx_diag_set(diag, HX_EPARSE, "%s: metadata '%s' must be a number > 1", path, key);
    }
    const char *st;
    size_t stl;
    if (kv_str(g, KEY("rope.scaling.type"), &st, &stl) > 0 &&
        !(stl == 4 && memcmp(st, "none", 4) == 0)) {
        return hx_diag_set(diag, HX_ENOTSUP, "%s: %s '%.*s' is not supported (only none)", path,
                           key, (int)(stl > 32 ? 32 : stl), st);
    }
    const struct eng_gguf_kv *toks = eng_gguf_find(g, "tokenizer.ggml.tokens");
    if (kv_int(g, KEY("vocab_size"), &vocab) == 0 && toks && toks->type == GGUF_ARRAY) {
        vocab = (int64_t)toks->arr_n;
    }
    const struct eng_st_tensor *emb = eng_st_find(&g->st, "token_embd.weight");
    if (vocab <= 0 && emb && emb->n_dims == 2) {
        vocab = emb->shape[0];
    }
    if (vocab <= 0 || vocab > 100000000) {
        return hx_diag_set(diag, HX_EPARSE,
                           "%s: no vocabulary size (llama.vocab_size, tokenizer.ggml.tokens or "
                           "token_embd.weight)",
                           path);
    }
#undef KEY
    int64_t bos = -1, eos = -1;
    kv_int(g, "tokenizer.ggml.bos_token_id", &bos);
    kv_int(g, "tokenizer.ggml.eos_token_id", &eos);
    /* the rest of the checks are config.json's: write one and parse it */
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "model_type", "llama");
    cJSON_AddNumberToObject(c, "num_hidden_layers", (double)n_layers);
    cJSON_AddNumberToObject(c, "hidden_size", (double)hidden);
    cJSON_AddNumberToObject(c, "intermediate_size", (double)ffn);
    cJSON_AddNumberToObject(c, "num_attention_heads", (double)heads);
    cJSON_AddNumberToObject(c, "num_key_value_heads", (double)kv_heads);
    cJSON_AddNumberToObject(c, "head_dim", (double)head_dim);
    cJSON_AddNumberToObject(c, "vocab_size", (double)vocab);
    cJSON_AddNumberToObject(c, "max_position_embeddings", (double)ctx);
    cJSON_AddNumberToObject(c, "rms_norm_eps", eps);
    cJSON_AddNumberToObject(c, "rope_theta", theta);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", eng_st_find(&g->st, "output.weight") == NULL);
    if (bos >= 0) {
        cJSON_AddNumberToObject(c, "bos_token_id", (double)bos);
    }
    if (eos >= 0) {
        cJSON_AddNumberToObject(c, "eos_token_id", (double)eos);
    }
    char *json = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    if (!json) {
        return hx_diag_set(diag, HX_ENOMEM, "%s: out of memory", path);
    }
    char name[4200];
    snprintf(name, sizeof(name), "%s (metadata)", path);
    rc = eng_config_parse(json, strlen(json), name, out, diag);
    cJSON_free(json);
    return rc;
}

void eng_gguf_tensor_name(const char *hf, char *out, size_t cap)
{
    static const char *const map[][2] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.bias", "attn_v.bias"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
    };
    int layer;
    int used = 0;
    if (strcmp(hf, "model.embed_tokens.weight") == 0) {
        snprintf(out, cap, "token_embd.weight");
    } else if (strcmp(hf, "model.norm.weight") == 0) {
        snprintf(out, cap, "output_norm.weight");
    } else if (strcmp(hf, "lm_head.weight") == 0) {
        snprintf(out, cap, "output.weight");
    } else if (sscanf(hf, "model.layers.%d.%n", &layer, &used) == 1 && used > 0) {
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
            if (strcmp(hf + used, map[i][0]) == 0) {
                snprintf(out, cap, "blk.%d.%s", layer, map[i][1]);
                return;
            }
        }
        snprintf(out, cap, "%s", hf);
    } else {
        snprintf(out, cap, "%s", hf);
    }
}

int eng_gguf_is_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        return 0;
    }
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    size_t got = f ? fread(magic, 1, 4, f) : 0;
    if (f) {
        fclose(f);
    }
    return got == 4 && memcmp(magic, "GGUF", 4) == 0;
}

/* ---- the tokenizer a GGUF file carries ---- */

/* String element i of array kv, walking from element *cur at *pos (sequential access). */
static void arr_str_next(const struct eng_gguf_kv *kv, const unsigned char **pos, const char **s,
                         size_t *n)
{
    uint64_t len;
    memcpy(&len, *pos, 8);
    *s = (const char *)*pos + 8;
    *n = (size_t)len;
    *pos += 8 + len;
    (void)kv;
}

static cJSON *json_str_n(const char *s, size_t n)
{
    char *tmp = xmalloc(n + 1);
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    cJSON *j = cJSON_CreateString(tmp);
    xfree(tmp);
    return j;
}

/* GPT-2 (byte-level BPE) tokenizers: a tokenizer.json equivalent of the file's vocabulary,
 * merges, control tokens and BOS. */
static int gpt2_json(const struct eng_gguf *g, const char *path, cJSON *root, struct hx_diag *diag)
{
    const struct eng_gguf_kv *toks = eng_gguf_find(g, "tokenizer.ggml.tokens");
    const struct eng_gguf_kv *merges = eng_gguf_find(g, "tokenizer.ggml.merges");
    const struct eng_gguf_kv *types = eng_gguf_find(g, "tokenizer.ggml.token_type");
    if (!toks || toks->type != GGUF_ARRAY || toks->arr_type != GGUF_STRING || !merges ||
        merges->type != GGUF_ARRAY || merges->arr_type != GGUF_STRING) {
        return hx_diag_set(diag, HX_EPARSE,
                           "%s: tokenizer.ggml.tokens and tokenizer.ggml.merges must be string "
                           "arrays",
                           path);
    }
    if (types && (types->type != GGUF_ARRAY || types->arr_n != toks->arr_n ||
                  (types->arr_type != GGUF_I32 && types->arr_type != GGUF_U32))) {
        return hx_diag_set(diag, HX_EPARSE,
                           "%s: tokenizer.ggml.token_type must be an i32 array, one per token",
                           path);
    }
    const char *pre = "default";
    size_t pre_n = 7;
    kv_str(g, "tokenizer.ggml.pre", &pre, &pre_n);
    const char *pattern = NULL;
    if ((pre_n == 5 && memcmp(pre, "gpt-2", 5) == 0) ||
        (pre_n == 7 && memcmp(pre, "default", 7) == 0)) {
        pattern = NULL; /* ByteLevel's own (GPT-2) regex */
    } else if ((pre_n == 9 && memcmp(pre, "llama-bpe", 9) == 0) ||
               (pre_n == 6 && memcmp(pre, "llama3", 6) == 0)) {
        pattern = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    } else if (pre_n == 5 && memcmp(pre, "qwen2", 5) == 0) {
        pattern = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    } else {
        return hx_diag_set(diag, HX_ENOTSUP,
                           "%s: tokenizer.ggml.pre '%.*s' is not supported (gpt-2, default, "
                           "llama-bpe, qwen2)",
                           path, (int)(pre_n > 40 ? 40 : pre_n), pre);
    }
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    const unsigned char *pos = toks->val;
    for (uint64_t i = 0; i < toks->arr_n; i++) {
        const char *s;
        size_t n;
        arr_str_next(toks, &pos, &s, &n);
        cJSON *name = json_str_n(s, n);
        if (!cJSON_GetObjectItemCaseSensitive(vocab, name->valuestring)) {
            cJSON_AddNumberToObject(vocab, name->valuestring, (double)i);
        }
        int32_t tt = 1;
        if (types) {
            memcpy(&tt, types->val + 4 * i, 4);
        }
        if (tt == 3 || tt == 4) { /* control, user-defined: added tokens */
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", name->valuestring);
            cJSON_AddBoolToObject(a, "single_word", 0);
            cJSON_AddBoolToObject(a, "lstrip", 0);
            cJSON_AddBoolToObject(a, "rstrip", 0);
            cJSON_AddBoolToObject(a, "normalized", 0);
            cJSON_AddBoolToObject(a, "special", tt == 3);
            cJSON_AddItemToArray(added, a);
        }
        cJSON_Delete(name);
    }
    cJSON *jm = cJSON_AddArrayToObject(model, "merges");
    pos = merges->val;
    for (uint64_t i = 0; i < merges->arr_n; i++) {
        const char *s;
        size_t n;
        arr_str_next(merges, &pos, &s, &n);
        const char *sp = memchr(s, ' ', n);
        if (!sp) {
            return hx_diag_set(diag, HX_EPARSE, "%s: tokenizer.ggml.merges[%llu] has no space",
                               path, (unsigned long long)i);
        }
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, json_str_n(s, (size_t)(sp - s)));
        cJSON_AddItemToArray(pair, json_str_n(sp + 1, n - (size_t)(sp - s) - 1));
        cJSON_AddItemToArray(jm, pair);
    }
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", 0);
    cJSON_AddBoolToObject(bl, "trim_offsets", 1);
    cJSON_AddBoolToObject(bl, "use_regex", pattern == NULL);
    if (pattern) {
        cJSON *seq = cJSON_AddObjectToObject(root, "pre_tokenizer");
        cJSON_AddStringToObject(seq, "type", "Sequence");
        cJSON *list = cJSON_AddArrayToObject(seq, "pretokenizers");
        cJSON *split = cJSON_CreateObject();
        cJSON_AddStringToObject(split, "type", "Split");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", pattern);
        cJSON_AddStringToObject(split, "behavior", "Isolated");
        cJSON_AddBoolToObject(split, "invert", 0);
        cJSON_AddItemToArray(list, split);
        cJSON_AddItemToArray(list, bl);
    } else {
        cJSON_AddItemToObject(root, "pre_tokenizer", bl);
    }
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddBoolToObject(dec, "add_prefix_space", 1);
    cJSON_AddBoolToObject(dec, "trim_offsets", 1);
    cJSON_AddBoolToObject(dec, "use_regex", 1);
    return HX_OK;
}

int eng_tok_load_gguf(const char *path, struct eng_tok **out, struct hx_diag *diag)
{
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return hx_diag_set(diag, HX_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 24) {
        close(fd);
        return hx_diag_set(diag, HX_EIO, "%s: not a GGUF file", path);
    }
    size_t len = (size_t)st.st_size;
    void *base = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        return hx_diag_set(diag, HX_EIO, "%s: mmap failed: %s", path, strerror(errno));
    }
    struct eng_gguf g;
    int rc = eng_gguf_parse(base, len, path, &g, diag);
    if (rc != HX_OK) {
        munmap(base, len);
        return rc;
    }
    const char *model;
    size_t mlen;
    cJSON *root = cJSON_CreateObject();
    if (kv_str(&g, "tokenizer.ggml.model", &model, &mlen) <= 0) {
        rc = hx_diag_set(diag, HX_EPARSE, "%s: missing string metadata 'tokenizer.ggml.model'",
                         path);
    } else if (mlen == 4 && memcmp(model, "gpt2", 4) == 0) {
        rc = gpt2_json(&g, path, root, diag);
    } else {
        rc = hx_diag_set(diag, HX_ENOTSUP,
                         "%s: tokenizer.ggml.model '%.*s' is not supported (only gpt2, byte-level "
                         "BPE); give the prompt as --prompt-ids",
                         path, (int)(mlen > 32 ? 32 : mlen), model);
    }
    int64_t bos = -1;
    int64_t add_bos = 0;
    kv_int(&g, "tokenizer.ggml.bos_token_id", &bos);
    kv_int(&g, "tokenizer.ggml.add_bos_token", &add_bos);
    const struct eng_gguf_kv *toks = eng_gguf_find(&g, "tokenizer.ggml.tokens");
    if (rc == HX_OK && add_bos && bos >= 0 && (uint64_t)bos < toks->arr_n) {
        const unsigned char *pos = toks->val;
        const char *s = NULL;
        size_t n = 0;
        for (int64_t i = 0; i <= bos; i++) {
            arr_str_next(toks, &pos, &s, &n);
        }
        cJSON *name = json_str_n(s, n);
        cJSON *pp = cJSON_AddObjectToObject(root, "post_processor");
        cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
        cJSON *single = cJSON_AddArrayToObject(pp, "single");
        cJSON *st1 = cJSON_CreateObject();
        cJSON *sp = cJSON_AddObjectToObject(st1, "SpecialToken");
        cJSON_AddStringToObject(sp, "id", name->valuestring);
        cJSON_AddNumberToObject(sp, "type_id", 0);
        cJSON_AddItemToArray(single, st1);
        cJSON *st2 = cJSON_CreateObject();
        cJSON *sq = cJSON_AddObjectToObject(st2, "Sequence");
        cJSON_AddStringToObject(sq, "id", "A");
        cJSON_AddNumberToObject(sq, "type_id", 0);
        cJSON_AddItemToArray(single, st2);
        cJSON *spt = cJSON_AddObjectToObject(pp, "special_tokens");
        cJSON *e = cJSON_AddObjectToObject(spt, name->valuestring);
        cJSON_AddStringToObject(e, "id", name->valuestring);
        cJSON_AddItemToObject(e, "ids", cJSON_CreateIntArray((const int[]){(int)bos}, 1));
        cJSON_AddItemToObject(e, "tokens",
                              cJSON_CreateStringArray((const char *const[]){name->valuestring}, 1));
        cJSON_Delete(name);
    }
    char *json = rc == HX_OK ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    eng_gguf_release(&g);
    munmap(base, len);
    if (rc == HX_OK) {
        rc = eng_tok_load_mem(json, strlen(json), path, out, diag);
    }
    cJSON_free(json);
    return rc;
}
