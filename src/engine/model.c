/*
 * model.c - load a layer range of a Hugging Face model directory: config.json, then
 * model.safetensors or the shards named by model.safetensors.index.json. Shards are mmap'd
 * (read-only, private) and only when the range needs one of their tensors; tensors are used in
 * place (the CPU backend's weight_upload is zero-copy), so pages of other layers are never
 * read. Every needed tensor is checked for presence, dtype and shape against the config.
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

#define MAX_JSON_BYTES ((size_t)64 << 20)

/* Read a whole (small) file into a NUL-terminated buffer. */
static int read_small_file(const char *path, char **out, size_t *len, struct hx_diag *diag)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        return hx_diag_set(diag, HX_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t n = 0;
    size_t cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_JSON_BYTES) {
                fclose(f);
                xfree(buf);
                return hx_diag_set(diag, HX_EPARSE, "%s: larger than %zu bytes", path,
                                   MAX_JSON_BYTES);
            }
            cap = cap ? cap * 2 : 4096;
            buf = xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        xfree(buf);
        return hx_diag_set(diag, HX_EIO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return HX_OK;
}

/* mmap one shard (or a GGUF file: gguf) and parse its header. */
static int map_file(const char *path, int gguf, struct eng_mapped *m, struct hx_diag *diag)
{
    memset(m, 0, sizeof(*m));
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return hx_diag_set(diag, HX_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return hx_diag_set(diag, HX_EIO, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    if (len < 8) {
        close(fd);
        return hx_diag_set(diag, HX_EPARSE,
                           "%s: %zu bytes, too short for a safetensors header (truncated?)", path,
                           len);
    }
    void *base = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        return hx_diag_set(diag, HX_EIO, "%s: mmap failed: %s", path, strerror(errno));
    }
    int rc = gguf ? eng_gguf_parse(base, len, path, &m->gguf, diag)
                  : eng_st_parse(base, len, path, &m->st, diag);
    if (rc != HX_OK) {
        munmap(base, len);
        return rc;
    }
    if (gguf) {
        m->st = m->gguf.st; /* the tensor table, in the same shape as a safetensors one */
    }
    m->path = xstrdup(path);
    m->base = base;
    m->len = len;
    return HX_OK;
}

struct loader {
    const char *dir;
    struct eng_model *m;
    cJSON *index; /* weight_map of a sharded model, else NULL */
    int cap_files;
    int gguf;                         /* dir is a GGUF file (files[0]) */
    const struct eng_model_opts *opt; /* never NULL */
    struct hx_diag *diag;
};

/* The mapped file that holds tensor name (maps its shard on first use). */
static int file_for(struct loader *L, const char *name, struct eng_mapped **out)
{
    struct eng_model *m = L->m;
    char path[4096];
    if (!L->index) {
        *out = &m->files[0];
        return HX_OK;
    }
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(L->index, name);
    if (!cJSON_IsString(fn)) {
        return hx_diag_set(L->diag, HX_EPARSE,
                           "%s/model.safetensors.index.json: missing tensor '%s' in weight_map",
                           L->dir, name);
    }
    if (strchr(fn->valuestring, '/') || fn->valuestring[0] == '.') {
        return hx_diag_set(L->diag, HX_EPARSE,
                           "%s/model.safetensors.index.json: bad shard name '%.64s' for '%s'",
                           L->dir, fn->valuestring, name);
    }
    if (snprintf(path, sizeof(path), "%s/%s", L->dir, fn->valuestring) >= (int)sizeof(path)) {
        return hx_diag_set(L->diag, HX_EINVAL, "%s: path too long", L->dir);
    }
    for (int i = 0; i < m->n_files; i++) {
        if (strcmp(m->files[i].path, path) == 0) {
            *out = &m->files[i];
            return HX_OK;
        }
    }
    if (m->n_files == L->cap_files) {
        L->cap_files = L->cap_files ? 2 * L->cap_files : 8;
        m->files = xrealloc(m->files, (size_t)L->cap_files * sizeof(*m->files));
    }
    int rc = map_file(path, 0, &m->files[m->n_files], L->diag);
    if (rc != HX_OK) {
        return rc;
    }
    *out = &m->files[m->n_files++];
    return HX_OK;
}

/* Find tensor name, check dtype and shape [rows, cols] (cols = 0: a vector of rows); *host
 * views its bytes in the mapping. */
static int find_tensor(struct loader *L, const char *name, int rows, int cols,
                       struct eng_weight *host)
{
    struct eng_mapped *f;
    int rc = file_for(L, name, &f);
    if (rc != HX_OK) {
        return rc;
    }
    char gname[160];
    if (L->gguf) {
        eng_gguf_tensor_name(name, gname, sizeof(gname));
        name = gname;
    }
    const struct eng_st_tensor *t = eng_st_find(&f->st, name);
    if (!t) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: missing tensor '%s'", f->path, name);
    }
    if (t->dtype == ENG_DTYPE_OTHER) {
        return hx_diag_set(L->diag, HX_ENOTSUP,
                           "%s: tensor '%s' has dtype %s; supported: BF16, F16, F32, Q8_0, Q4_0",
                           f->path, name, t->dtype_name);
    }
    int ok = cols ? (t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols)
                  : (t->n_dims == 1 && t->shape[0] == rows);
    if (!ok) {
        char got[128] = "";
        size_t used = 0;
        for (int d = 0; d < t->n_dims && used < sizeof(got) - 24; d++) {
            used += (size_t)snprintf(got + used, sizeof(got) - used, "%s%lld", d ? ", " : "",
                                     (long long)t->shape[d]);
        }
        if (cols) {
            return hx_diag_set(L->diag, HX_EPARSE,
                               "%s: tensor '%s' has shape [%s], config.json implies [%d, %d]",
                               f->path, name, got, rows, cols);
        }
        return hx_diag_set(L->diag, HX_EPARSE,
                           "%s: tensor '%s' has shape [%s], config.json implies [%d]", f->path,
                           name, got, rows);
    }
    size_t esize = eng_dtype_is_quant(t->dtype) ? 2 : eng_dtype_size(t->dtype);
    const unsigned char *data = (const unsigned char *)f->base + t->begin;
    if ((uintptr_t)data % esize != 0) {
        return hx_diag_set(L->diag, HX_ENOTSUP,
                           "%s: tensor '%s' is not aligned to its element size in the file",
                           f->path, name);
    }
    *host = (struct eng_weight){t->dtype, cols ? rows : 1, cols ? cols : rows, data};
    return HX_OK;
}

/* Memory the model owns (converted or reordered weights), freed with it. */
static void *model_own(struct eng_model *m, size_t n)
{
    void *p = hx_malloc(n ? n : 1);
    if (p) {
        m->owned = xrealloc(m->owned, (size_t)(m->n_owned + 1) * sizeof(*m->owned));
        m->owned[m->n_owned++] = p;
    }
    return p;
}

/* Whether a tensor is a matmul weight (what --weights converts): a matrix other than the
 * embedding. */
static int is_matmul_weight(const char *name, int cols)
{
    return cols > 0 && strcmp(name, "model.embed_tokens.weight") != 0;
}

/* GGUF writers (llama.cpp's convert_hf_to_gguf.py) reorder the rows of each head of q_proj
 * and k_proj for ggml's interleaved RoPE: HF row s * hd/2 + i is stored as row 2 i + s. */
static int is_permuted_in_gguf(const char *name)
{
    static const char *const suffix[2] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight"};
    size_t n = strlen(name);
    for (int i = 0; i < 2; i++) {
        size_t k = strlen(suffix[i]);
        if (n >= k && strcmp(name + n - k, suffix[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* host, converted to dtype `to` (any supported one) in owned memory. */
static int convert_weight(struct loader *L, const char *name, struct eng_weight *host,
                          enum eng_dtype to)
{
    size_t k = (size_t)host->cols;
    if (eng_dtype_is_quant(to) && k % ENG_QBLOCK != 0) {
        return hx_diag_set(L->diag, HX_ENOTSUP,
                           "%s: tensor '%s' has %zu columns; %s needs a multiple of %d", L->dir,
                           name, k, eng_dtype_name(to), ENG_QBLOCK);
    }
    size_t in_rb = eng_dtype_row_bytes(host->dtype, host->cols);
    size_t out_rb = eng_dtype_row_bytes(to, host->cols);
    unsigned char *dst = model_own(L->m, out_rb * (size_t)host->rows);
    float *tmp = hx_malloc(k * sizeof(float));
    if (!dst || !tmp) {
        xfree(tmp);
        return hx_diag_set(L->diag, HX_ENOMEM, "%s: cannot allocate %zu bytes to convert '%s'",
                           L->dir, out_rb * (size_t)host->rows, name);
    }
    for (size_t r = 0; r < (size_t)host->rows; r++) {
        eng_dequant_row(host->dtype, (const unsigned char *)host->data + r * in_rb, tmp, k);
        unsigned char *o = dst + r * out_rb;
        if (eng_quant_row(to, tmp, o, k) == 0) {
            continue;
        }
        for (size_t j = 0; j < k; j++) {
            if (to == ENG_DTYPE_F32) {
                memcpy(o + 4 * j, &tmp[j], 4);
            } else {
                uint16_t h =
                    to == ENG_DTYPE_BF16 ? eng_f32_to_bf16(tmp[j]) : eng_f32_to_f16(tmp[j]);
                memcpy(o + 2 * j, &h, 2);
            }
        }
    }
    xfree(tmp);
    host->dtype = to;
    host->data = dst;
    return HX_OK;
}

/* Undo the GGUF row order of q_proj / k_proj (heads of head_dim rows) in owned memory. */
static int unpermute_rows(struct loader *L, const char *name, struct eng_weight *host, int n_heads)
{
    size_t rb = eng_dtype_row_bytes(host->dtype, host->cols);
    int hd = host->rows / n_heads;
    unsigned char *dst = model_own(L->m, rb * (size_t)host->rows);
    if (!dst) {
        return hx_diag_set(L->diag, HX_ENOMEM, "%s: cannot allocate %zu bytes to reorder '%s'",
                           L->dir, rb * (size_t)host->rows, name);
    }
    const unsigned char *src = host->data;
    for (int h = 0; h < n_heads; h++) {
        for (int s = 0; s < 2; s++) {
            for (int i = 0; i < hd / 2; i++) {
                size_t to = (size_t)h * (size_t)hd + (size_t)s * (size_t)(hd / 2) + (size_t)i;
                size_t from = (size_t)h * (size_t)hd + 2 * (size_t)i + (size_t)s;
                memcpy(dst + to * rb, src + from * rb, rb);
            }
        }
    }
    host->data = dst;
    return HX_OK;
}

/* find_tensor; reorder (GGUF q/k) and convert (--weights) where asked; check the backend
 * computes with the dtype; upload. */
static int load_tensor(struct loader *L, const char *name, int rows, int cols,
                       struct eng_weight *out)
{
    struct eng_weight host;
    int rc = find_tensor(L, name, rows, cols, &host);
    if (rc != HX_OK) {
        return rc;
    }
    const struct eng_config *c = &L->m->cfg;
    if (L->gguf && is_permuted_in_gguf(name)) {
        int heads = strstr(name, "q_proj") ? c->n_heads : c->n_kv_heads;
        if ((rc = unpermute_rows(L, name, &host, heads)) != HX_OK) {
            return rc;
        }
    }
    enum eng_dtype want = L->opt->weights;
    if (want != ENG_DTYPE_OTHER && want != host.dtype && is_matmul_weight(name, cols) &&
        !(eng_dtype_is_quant(host.dtype) && !eng_dtype_is_quant(want)) &&
        (rc = convert_weight(L, name, &host, want)) != HX_OK) {
        return rc;
    }
    struct eng_backend *be = L->m->be;
    if (!(be->ops->weight_dtypes & (1u << host.dtype))) {
        return hx_diag_set(L->diag, HX_ENOTSUP,
                           "%s: tensor '%s' is %s; the %s backend has no %s kernels (use the cpu "
                           "backend, or a bf16/f16 checkpoint)",
                           L->dir, name, eng_dtype_name(host.dtype), be->ops->name,
                           eng_dtype_name(host.dtype));
    }
    return be->ops->weight_upload(be, &host, out, L->diag);
}

/* Where the backend can, upload n tensors of one dtype as one row-concatenated weight (*cat)
 * and leave the parts empty; else upload each part. */
static int load_cat(struct loader *L, int layer, const char *const *suffix, const int *rows,
                    int cols, int n, struct eng_weight *parts, struct eng_weight *cat)
{
    char name[160];
    struct eng_weight host[3];
    int rc;
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "model.layers.%d.%s", layer, suffix[i]);
        if ((rc = find_tensor(L, name, rows[i], cols, &host[i])) != HX_OK) {
            return rc;
        }
    }
    int same = 1;
    for (int i = 1; i < n; i++) {
        same &= host[i].dtype == host[0].dtype;
    }
    struct eng_backend *be = L->m->be;
    same &= L->opt->weights == ENG_DTYPE_OTHER || L->opt->weights == host[0].dtype;
    same &= !L->gguf && (be->ops->weight_dtypes & (1u << host[0].dtype)) != 0;
    if (be->ops->weight_upload_cat && same) {
        return be->ops->weight_upload_cat(be, host, n, cat, L->diag);
    }
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "model.layers.%d.%s", layer, suffix[i]);
        if ((rc = load_tensor(L, name, rows[i], cols, &parts[i])) != HX_OK) {
            return rc;
        }
    }
    return HX_OK;
}

static int load_layer(struct loader *L, int layer, struct eng_layer_weights *w)
{
    const struct eng_config *c = &L->m->cfg;
    int q_out = c->n_heads * c->head_dim;
    int kv_out = c->n_kv_heads * c->head_dim;
    char name[160];
    int rc;
#define LOAD(suffix, rows, cols, dst)                                                              \
    do {                                                                                           \
        snprintf(name, sizeof(name), "model.layers.%d.%s", layer, suffix);                         \
        if ((rc = load_tensor(L, name, rows, cols, dst)) != HX_OK) {                               \
            return rc;                                                                             \
        }                                                                                          \
    } while (0)
    LOAD("input_layernorm.weight", c->hidden, 0, &w->attn_norm);
    static const char *const qkv[3] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                       "self_attn.v_proj.weight"};
    static const char *const qkv_b[3] = {"self_attn.q_proj.bias", "self_attn.k_proj.bias",
                                         "self_attn.v_proj.bias"};
    static const char *const gu[2] = {"mlp.gate_proj.weight", "mlp.up_proj.weight"};
    const int qkv_rows[3] = {q_out, kv_out, kv_out};
    const int ffn_rows[2] = {c->ffn, c->ffn};
    struct eng_weight parts[3] = {{0}};
    if ((rc = load_cat(L, layer, qkv, qkv_rows, c->hidden, 3, parts, &w->wqkv)) != HX_OK) {
        return rc;
    }
    w->wq = parts[0];
    w->wk = parts[1];
    w->wv = parts[2];
    LOAD("self_attn.o_proj.weight", c->hidden, q_out, &w->wo);
    if (c->qkv_bias) {
        struct eng_weight bp[3] = {{0}};
        if ((rc = load_cat(L, layer, qkv_b, qkv_rows, 0, 3, bp, &w->bqkv)) != HX_OK) {
            return rc;
        }
        w->bq = bp[0];
        w->bk = bp[1];
        w->bv = bp[2];
    }
    LOAD("post_attention_layernorm.weight", c->hidden, 0, &w->ffn_norm);
    struct eng_weight gp[2] = {{0}};
    if ((rc = load_cat(L, layer, gu, ffn_rows, c->hidden, 2, gp, &w->wgu)) != HX_OK) {
        return rc;
    }
    w->wg = gp[0];
    w->wu = gp[1];
    LOAD("mlp.down_proj.weight", c->hidden, c->ffn, &w->wd);
#undef LOAD
    return HX_OK;
}

static size_t weight_bytes(const struct eng_weight *w)
{
    return w->data ? (size_t)w->rows * eng_dtype_row_bytes(w->dtype, w->cols) : 0;
}

static size_t layer_bytes(const struct eng_layer_weights *w)
{
    const struct eng_weight *all[] = {&w->attn_norm, &w->wq, &w->wk,   &w->wv,       &w->wo,
                                      &w->bq,        &w->bk, &w->bv,   &w->ffn_norm, &w->wg,
                                      &w->wu,        &w->wd, &w->wqkv, &w->bqkv,     &w->wgu};
    size_t sum = 0;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        sum += weight_bytes(all[i]);
    }
    return sum;
}

int eng_model_load(const char *dir, int layer_begin, int layer_end, struct eng_backend *be,
                   struct eng_model **out, struct hx_diag *diag)
{
    struct eng_model_opts o = {layer_begin, layer_end, ENG_DTYPE_OTHER};
    return eng_model_open(dir, &o, be, out, diag);
}

int eng_model_open(const char *dir, const struct eng_model_opts *opts, struct eng_backend *be,
                   struct eng_model **out, struct hx_diag *diag)
{
    *out = NULL;
    static const struct eng_model_opts defaults = {0, -1, ENG_DTYPE_OTHER};
    const struct eng_model_opts *o = opts ? opts : &defaults;
    int layer_begin = o->layer_begin;
    int layer_end = o->layer_end;
    char path[4096];
    char *json = NULL;
    size_t json_len = 0;
    struct loader L = {dir, NULL, NULL, 0, eng_gguf_is_file(dir), o, diag};
    cJSON *index_root = NULL;
    struct eng_model *m = xcalloc(1, sizeof(*m));
    m->be = be;
    int rc;
    if (L.gguf) {
        m->files = xcalloc(1, sizeof(*m->files));
        L.cap_files = 1;
        if ((rc = map_file(dir, 1, &m->files[0], diag)) != HX_OK) {
            goto fail;
        }
        m->n_files = 1;
        if ((rc = eng_gguf_config(&m->files[0].gguf, dir, &m->cfg, diag)) != HX_OK) {
            goto fail;
        }
    } else {
        if (snprintf(path, sizeof(path), "%s/config.json", dir) >= (int)sizeof(path)) {
            rc = hx_diag_set(diag, HX_EINVAL, "%s: path too long", dir);
            goto fail;
        }
        if ((rc = read_small_file(path, &json, &json_len, diag)) != HX_OK ||
            (rc = eng_config_parse(json, json_len, path, &m->cfg, diag)) != HX_OK) {
            goto fail;
        }
        xfree(json);
        json = NULL;
    }
    if (layer_end < 0) {
        layer_end = m->cfg.n_layers;
    }
    if (layer_begin < 0 || layer_begin >= layer_end || layer_end > m->cfg.n_layers) {
        rc = hx_diag_set(diag, HX_EINVAL, "layer range [%d, %d) is not within [0, %d)", layer_begin,
                         layer_end, m->cfg.n_layers);
        goto fail;
    }
    m->begin = layer_begin;
    m->end = layer_end;
    L.m = m;

    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    if (L.gguf) {
        /* mapped above */
    } else if (access(path, F_OK) == 0) {
        if ((rc = read_small_file(path, &json, &json_len, diag)) != HX_OK) {
            goto fail;
        }
        index_root = cJSON_ParseWithLength(json, json_len);
        L.index = index_root ? cJSON_GetObjectItemCaseSensitive(index_root, "weight_map") : NULL;
        if (!cJSON_IsObject(L.index)) {
            rc = hx_diag_set(diag, HX_EPARSE, "%s: needs an object 'weight_map'", path);
            goto fail;
        }
    } else {
        snprintf(path, sizeof(path), "%s/model.safetensors", dir);
        m->files = xcalloc(1, sizeof(*m->files));
        L.cap_files = 1;
        if ((rc = map_file(path, 0, &m->files[0], diag)) != HX_OK) {
            goto fail;
        }
        m->n_files = 1;
    }

    const struct eng_config *c = &m->cfg;
    m->layers = xcalloc((size_t)(layer_end - layer_begin), sizeof(*m->layers));
    for (int l = layer_begin; l < layer_end; l++) {
        if ((rc = load_layer(&L, l, &m->layers[l - layer_begin])) != HX_OK) {
            goto fail;
        }
        m->layer_bytes = layer_bytes(&m->layers[l - layer_begin]);
        m->weight_bytes += m->layer_bytes;
    }
    int first = layer_begin == 0;
    int last = layer_end == c->n_layers;
    if ((first || (last && c->tied)) && (rc = load_tensor(&L, "model.embed_tokens.weight", c->vocab,
                                                          c->hidden, &m->embed)) != HX_OK) {
        goto fail;
    }
    if (last) {
        if ((rc = load_tensor(&L, "model.norm.weight", c->hidden, 0, &m->norm)) != HX_OK) {
            goto fail;
        }
        if (c->tied) {
            m->head = m->embed;
        } else if ((rc = load_tensor(&L, "lm_head.weight", c->vocab, c->hidden, &m->head)) !=
                   HX_OK) {
            goto fail;
        }
        m->weight_bytes += weight_bytes(&m->norm) + weight_bytes(&m->head);
    }
    cJSON_Delete(index_root);
    xfree(json);
    *out = m;
    return HX_OK;
fail:
    cJSON_Delete(index_root);
    xfree(json);
    eng_model_free(m);
    return rc;
}

void eng_model_free(struct eng_model *m)
{
    if (!m) {
        return;
    }
    if (m->layers) {
        for (int l = 0; l < m->end - m->begin; l++) {
            struct eng_layer_weights *w = &m->layers[l];
            struct eng_weight *all[] = {&w->attn_norm, &w->wq, &w->wk,   &w->wv,       &w->wo,
                                        &w->bq,        &w->bk, &w->bv,   &w->ffn_norm, &w->wg,
                                        &w->wu,        &w->wd, &w->wqkv, &w->bqkv,     &w->wgu};
            for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
                if (all[i]->data) {
                    m->be->ops->weight_release(m->be, all[i]);
                }
            }
        }
        xfree(m->layers);
    }
    if (m->head.data && m->head.data != m->embed.data) {
        m->be->ops->weight_release(m->be, &m->head);
    }
    if (m->embed.data) {
        m->be->ops->weight_release(m->be, &m->embed);
    }
    if (m->norm.data) {
        m->be->ops->weight_release(m->be, &m->norm);
    }
    for (int i = 0; i < m->n_files; i++) {
        munmap(m->files[i].base, m->files[i].len);
        if (m->files[i].gguf.st.tensors) {
            eng_gguf_release(&m->files[i].gguf);
        } else {
            eng_st_release(&m->files[i].st);
        }
        xfree(m->files[i].path);
    }
    xfree(m->files);
    for (int i = 0; i < m->n_owned; i++) {
        xfree(m->owned[i]);
    }
    xfree(m->owned);
    xfree(m);
}

const struct eng_config *eng_model_config(const struct eng_model *m)
{
    return &m->cfg;
}

int eng_model_layer_begin(const struct eng_model *m)
{
    return m->begin;
}

int eng_model_layer_end(const struct eng_model *m)
{
    return m->end;
}

size_t eng_model_weight_bytes(const struct eng_model *m)
{
    return m->weight_bytes;
}

size_t eng_model_layer_bytes(const struct eng_model *m)
{
    return m->layer_bytes;
}

enum eng_dtype eng_model_weight_dtype(const struct eng_model *m)
{
    return m->layers[0].wd.dtype;
}

uint16_t eng_f32_to_f16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    uint32_t sign = (bits >> 16) & 0x8000u;
    uint32_t exp = (bits >> 23) & 0xffu;
    uint32_t mant = bits & 0x7fffffu;
    if (exp == 0xffu) { /* inf, NaN */
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0u));
    }
    int e = (int)exp - 127 + 15;
    if (e >= 31) {
        return (uint16_t)(sign | 0x7c00u);
    }
    if (e <= 0) { /* subnormal or zero */
        if (e < -10) {
            return (uint16_t)sign;
        }
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1u);
        uint32_t mid = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (half & 1u))) {
            half++;
        }
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) {
        half++; /* may carry into the exponent: still correct rounding */
    }
    return (uint16_t)half;
}
