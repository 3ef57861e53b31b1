/*
 * safetensors.c - the safetensors header parser. A file is an 8-byte little-endian header
 * length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__},
 * then the data; offsets are relative to the end of the header. Every number is checked
 * before use (the file is external input and a libFuzzer target drives this code): the
 * header must fit the file, each byte range must match dtype x shape and lie in the file.
 */
#include "engine/engine.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"

#define MAX_HEADER_BYTES ((uint64_t)1 << 30)
#define MAX_EXACT_DOUBLE 9007199254740992.0 /* 2^53: larger doubles are not exact integers */

size_t eng_dtype_size(enum eng_dtype dt)
{
    switch (dt) {
    case ENG_DTYPE_F32:
        return 4;
    case ENG_DTYPE_F16:
    case ENG_DTYPE_BF16:
        return 2;
    default:
        return 0;
    }
}

const char *eng_dtype_name(enum eng_dtype dt)
{
    switch (dt) {
    case ENG_DTYPE_F32:
        return "F32";
    case ENG_DTYPE_F16:
        return "F16";
    case ENG_DTYPE_BF16:
        return "BF16";
    case ENG_DTYPE_Q8_0:
        return "Q8_0";
    case ENG_DTYPE_Q4_0:
        return "Q4_0";
    default:
        return "other";
    }
}

/* Known safetensors dtypes and their element sizes; 0 = unknown. */
static size_t st_dtype(const char *s, enum eng_dtype *dt)
{
    static const struct {
        const char *name;
        size_t size;
        enum eng_dtype dt;
    } table[] = {
        {"F32", 4, ENG_DTYPE_F32},       {"F16", 2, ENG_DTYPE_F16},
        {"BF16", 2, ENG_DTYPE_BF16},     {"F64", 8, ENG_DTYPE_OTHER},
        {"I64", 8, ENG_DTYPE_OTHER},     {"U64", 8, ENG_DTYPE_OTHER},
        {"I32", 4, ENG_DTYPE_OTHER},     {"U32", 4, ENG_DTYPE_OTHER},
        {"I16", 2, ENG_DTYPE_OTHER},     {"U16", 2, ENG_DTYPE_OTHER},
        {"I8", 1, ENG_DTYPE_OTHER},      {"U8", 1, ENG_DTYPE_OTHER},
        {"BOOL", 1, ENG_DTYPE_OTHER},    {"F8_E4M3", 1, ENG_DTYPE_OTHER},
        {"F8_E5M2", 1, ENG_DTYPE_OTHER},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(s, table[i].name) == 0) {
            *dt = table[i].dt;
            return table[i].size;
        }
    }
    return 0;
}

/* A JSON number that is an exact non-negative integer. */
static int json_u64(const cJSON *n, uint64_t *out)
{
    if (!cJSON_IsNumber(n)) {
        return -1;
    }
    double v = n->valuedouble;
    if (!(v >= 0.0) || v > MAX_EXACT_DOUBLE || v != (double)(uint64_t)v) {
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

void eng_st_release(struct eng_st_file *f)
{
    if (!f) {
        return;
    }
    for (int i = 0; i < f->n_tensors; i++) {
        xfree(f->tensors[i].name);
    }
    xfree(f->tensors);
    memset(f, 0, sizeof(*f));
}

const struct eng_st_tensor *eng_st_find(const struct eng_st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++) {
        if (strcmp(f->tensors[i].name, name) == 0) {
            return &f->tensors[i];
        }
    }
    return NULL;
}

static int parse_tensor(const cJSON *item, const char *path, uint64_t data_start, uint64_t file_len,
                        struct eng_st_tensor *t, struct hx_diag *diag)
{
    const char *name = item->string;
    if (!cJSON_IsObject(item)) {
        return hx_diag_set(diag, HX_EPARSE, "%s: tensor '%s': entry is not an object", path, name);
    }
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs)) {
        return hx_diag_set(diag, HX_EPARSE,
                           "%s: tensor '%s': needs string 'dtype', arrays 'shape' and "
                           "'data_offsets'",
                           path, name);
    }
    size_t esize = st_dtype(dtype->valuestring, &t->dtype);
    if (esize == 0) {
        return hx_diag_set(diag, HX_EPARSE, "%s: tensor '%s': unknown dtype '%.16s'", path, name,
                           dtype->valuestring);
    }
    snprintf(t->dtype_name, sizeof(t->dtype_name), "%s", dtype->valuestring);
    int n_dims = cJSON_GetArraySize(shape);
    if (n_dims > 8) {
        return hx_diag_set(diag, HX_EPARSE, "%s: tensor '%s': %d dimensions (at most 8)", path,
                           name, n_dims);
    }
    t->n_dims = n_dims;
    uint64_t numel = 1;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape)
    {
        uint64_t v;
        if (json_u64(dim, &v) != 0) {
            return hx_diag_set(diag, HX_EPARSE, "%s: tensor '%s': bad shape entry %d", path, name,
                               d);
        }
        if (v != 0 && numel > file_len / v) {
            return hx_diag_set(diag, HX_EPARSE, "%s: tensor '%s': shape larger than the file", path,
                               name);
        }
        numel *= v;
        t->shape[d++] = (int64_t)v;
    }
    uint64_t begin;
    uint64_t end;
    if (cJSON_GetArraySize(offs) != 2 || json_u64(cJSON_GetArrayItem(offs, 0), &begin) != 0 ||
        json_u64(cJSON_GetArrayItem(offs, 1), &end) != 0 || begin > end) {
        return hx_diag_set(diag, HX_EPARSE,
                           "%s: tensor '%s': data_offsets must be [begin, end], 0 <= begin <= end",
                           path, name);
    }
    if (numel > UINT64_MAX / esize || end - begin != numel * esize) {
        return hx_diag_set(diag, HX_EPARSE,
                           "%s: tensor '%s': data_offsets span %llu bytes but %s x shape needs "
                           "%llu",
                           path, name, (unsigned long long)(end - begin), t->dtype_name,
                           (unsigned long long)(numel * esize));
    }
    if (end > file_len - data_start) {
        return hx_diag_set(diag, HX_EPARSE,
                           "%s: tensor '%s': data_offsets end %llu is past the end of the data "
                           "(%llu bytes): file truncated?",
                           path, name, (unsigned long long)end,
                           (unsigned long long)(file_len - data_start));
    }
    t->begin = data_start + begin;
    t->end = data_start + end;
    return HX_OK;
}

int eng_st_parse(const void *buf, size_t len, const char *path, struct eng_st_file *out,
                 struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    const unsigned char *p = buf;
    if (len < 8) {
        return hx_diag_set(diag, HX_EPARSE,
                           "%s: %zu bytes, too short for a safetensors header (truncated?)", path,
                           len);
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) {
        hlen = (hlen << 8) | p[i];
    }
    if (hlen > MAX_HEADER_BYTES || hlen > (uint64_t)len - 8) {
        return hx_diag_set(diag, HX_EPARSE,
                           "%s: header length %llu exceeds the file (%zu bytes): truncated or "
                           "not safetensors",
                           path, (unsigned long long)hlen, len);
    }
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return hx_diag_set(diag, HX_EPARSE, "%s: header is not a JSON object", path);
    }
    int n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        n++;
    }
    out->tensors = xcalloc((size_t)n + 1, sizeof(*out->tensors));
    out->data_start = 8 + hlen;
    int rc = HX_OK;
    cJSON_ArrayForEach(item, root)
    {
        if (!item->string) {
            continue;
        }
        if (strcmp(item->string, "__metadata__") == 0) {
            continue;
        }
        struct eng_st_tensor *t = &out->tensors[out->n_tensors];
        memset(t, 0, sizeof(*t));
        rc = parse_tensor(item, path, out->data_start, (uint64_t)len, t, diag);
        if (rc != HX_OK) {
            goto fail;
        }
        t->name = xstrdup(item->string);
        out->n_tensors++;
    }
    cJSON_Delete(root);
    return HX_OK;
fail:
    cJSON_Delete(root);
    eng_st_release(out);
    return rc;
}
