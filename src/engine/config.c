/*
 * config.c - config.json of the LLaMA family (llama, mistral, qwen2). Reads the shapes, GQA,
 * rope_theta (top level, or rope_parameters.rope_theta as transformers 5 writes it),
 * rms_norm_eps, tied embeddings and q/k/v bias; refuses what the forward pass does not
 * implement (other activations, rope scaling) rather than computing something else.
 */
#include "engine/engine.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "base/status.h"

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* Required positive integer key. */
static int need_int(const cJSON *root, const char *key, const char *path, int *out,
                    struct hx_diag *diag)
{
    const cJSON *n = get(root, key);
    if (!n) {
        return hx_diag_set(diag, HX_EPARSE, "%s: missing key '%s'", path, key);
    }
    if (!cJSON_IsNumber(n) || !(n->valuedouble >= 1.0) || n->valuedouble > 1e9 ||
        n->valuedouble != (double)(int)n->valuedouble) {
        return hx_diag_set(diag, HX_EPARSE, "%s: key '%s' must be a positive integer", path, key);
    }
    *out = (int)n->valuedouble;
    return HX_OK;
}

/* Optional token id: a number, or the first of a list; -1 when absent or null. */
static int token_id(const cJSON *n)
{
    if (cJSON_IsArray(n)) {
        n = cJSON_GetArrayItem(n, 0);
    }
    if (cJSON_IsNumber(n) && n->valuedouble >= 0 && n->valuedouble < 1e9) {
        return (int)n->valuedouble;
    }
    return -1;
}

/* Rope scaling other than "default" changes the angles: refuse it. */
static int check_rope_type(const cJSON *o, const char *path, struct hx_diag *diag)
{
    if (!cJSON_IsObject(o)) {
        return HX_OK;
    }
    const cJSON *t = get(o, "rope_type");
    if (!t) {
        t = get(o, "type");
    }
    if (cJSON_IsString(t) && strcmp(t->valuestring, "default") != 0) {
        return hx_diag_set(diag, HX_ENOTSUP,
                           "%s: rope_type '%.32s' is not supported (only default)", path,
                           t->valuestring);
    }
    return HX_OK;
}

int eng_config_parse(const char *json, size_t len, const char *path, struct eng_config *out,
                     struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    cJSON *root = cJSON_ParseWithLength(json, len);
    int rc = HX_OK;
    if (!root || !cJSON_IsObject(root)) {
        rc = hx_diag_set(diag, HX_EPARSE, "%s: not a JSON object", path);
        goto fail;
    }
    const cJSON *mt = get(root, "model_type");
    if (!cJSON_IsString(mt)) {
        rc = hx_diag_set(diag, HX_EPARSE, "%s: missing key 'model_type'", path);
        goto fail;
    }
    if (strcmp(mt->valuestring, "llama") != 0 && strcmp(mt->valuestring, "mistral") != 0 &&
        strcmp(mt->valuestring, "qwen2") != 0) {
        rc = hx_diag_set(diag, HX_ENOTSUP,
                         "%s: model_type '%.32s' is not supported (llama, mistral, qwen2)", path,
                         mt->valuestring);
        goto fail;
    }
    snprintf(out->model_type, sizeof(out->model_type), "%s", mt->valuestring);
    if ((rc = need_int(root, "num_hidden_layers", path, &out->n_layers, diag)) ||
        (rc = need_int(root, "hidden_size", path, &out->hidden, diag)) ||
        (rc = need_int(root, "num_attention_heads", path, &out->n_heads, diag)) ||
        (rc = need_int(root, "intermediate_size", path, &out->ffn, diag)) ||
        (rc = need_int(root, "vocab_size", path, &out->vocab, diag))) {
        goto fail;
    }
    out->n_kv_heads = out->n_heads;
    if (get(root, "num_key_value_heads") &&
        (rc = need_int(root, "num_key_value_heads", path, &out->n_kv_heads, diag))) {
        goto fail;
    }
    out->head_dim = out->hidden / out->n_heads;
    const cJSON *hd = get(root, "head_dim");
    if (hd && !cJSON_IsNull(hd) && (rc = need_int(root, "head_dim", path, &out->head_dim, diag))) {
        goto fail;
    }
    out->max_pos = 2048;
    if (get(root, "max_position_embeddings") &&
        (rc = need_int(root, "max_position_embeddings", path, &out->max_pos, diag))) {
        goto fail;
    }
    if (out->n_heads % out->n_kv_heads != 0) {
        rc = hx_diag_set(diag, HX_EPARSE,
                         "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                         path, out->n_heads, out->n_kv_heads);
        goto fail;
    }
    if (out->head_dim > 1024) {
        rc = hx_diag_set(diag, HX_ENOTSUP, "%s: head_dim %d exceeds 1024", path, out->head_dim);
        goto fail;
    }
    if (out->head_dim % 2 != 0) {
        rc = hx_diag_set(diag, HX_EPARSE, "%s: head_dim %d must be even for RoPE", path,
                         out->head_dim);
        goto fail;
    }
    const cJSON *act = get(root, "hidden_act");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "silu") != 0) {
        rc = hx_diag_set(diag, HX_ENOTSUP, "%s: hidden_act '%.32s' is not supported (silu)", path,
                         act->valuestring);
        goto fail;
    }
    out->rope_theta = 10000.0;
    const cJSON *rp = get(root, "rope_parameters");
    const cJSON *theta = get(root, "rope_theta");
    if (cJSON_IsObject(rp) && get(rp, "rope_theta")) {
        theta = get(rp, "rope_theta");
    }
    if (theta) {
        if (!cJSON_IsNumber(theta) || !(theta->valuedouble > 0)) {
            rc = hx_diag_set(diag, HX_EPARSE, "%s: rope_theta must be a positive number", path);
            goto fail;
        }
        out->rope_theta = theta->valuedouble;
    }
    if ((rc = check_rope_type(rp, path, diag)) ||
        (rc = check_rope_type(get(root, "rope_scaling"), path, diag))) {
        goto fail;
    }
    out->rms_eps = 1e-6;
    const cJSON *eps = get(root, "rms_norm_eps");
    if (eps) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0) || eps->valuedouble > 1) {
            rc = hx_diag_set(diag, HX_EPARSE, "%s: rms_norm_eps must be in (0, 1]", path);
            goto fail;
        }
        out->rms_eps = eps->valuedouble;
    }
    const cJSON *tie = get(root, "tie_word_embeddings");
    out->tied = cJSON_IsTrue(tie); /* LlamaConfig, MistralConfig and Qwen2Config default false */
    out->qkv_bias =
        strcmp(out->model_type, "qwen2") == 0 || cJSON_IsTrue(get(root, "attention_bias"));
    out->bos_id = token_id(get(root, "bos_token_id"));
    out->eos_id = token_id(get(root, "eos_token_id"));
    cJSON_Delete(root);
    return HX_OK;
fail:
    cJSON_Delete(root);
    memset(out, 0, sizeof(*out));
    return rc;
}
