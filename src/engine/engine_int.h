/*
 * engine_int.h - layouts shared inside the engine module only: the loaded model (weights of a
 * layer range, on a backend) and the helpers that read on-disk element types.
 */
#ifndef HX_ENGINE_ENGINE_INT_H
#define HX_ENGINE_ENGINE_INT_H

#include <stdint.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/engine.h"

/* One decoder layer's weights (backend memory). Biases have data == NULL when absent. Where
 * the backend has weight_upload_cat, q/k/v (and their biases) and gate/up are uploaded as one
 * weight each (wqkv, bqkv, wgu) and the parts are empty; else the merged ones are. */
struct eng_layer_weights {
    struct eng_weight attn_norm;
    struct eng_weight wq, wk, wv, wo;
    struct eng_weight bq, bk, bv;
    struct eng_weight ffn_norm;
    struct eng_weight wg, wu, wd;
    struct eng_weight wqkv, bqkv, wgu;
};

/* One mmap'd file (a shard). */
struct eng_mapped {
    char *path;
    void *base;
    size_t len;
    struct eng_st_file st;
};

struct eng_model {
    struct eng_config cfg;
    int begin;
    int end;
    struct eng_backend *be;
    struct eng_layer_weights *layers; /* [end - begin] */
    struct eng_weight embed;          /* first stage only (data NULL otherwise) */
    struct eng_weight norm;           /* last stage only */
    struct eng_weight head;           /* last stage only */
    struct eng_mapped *files;
    int n_files;
    size_t weight_bytes;
    size_t layer_bytes;
};

static inline float eng_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* IEEE binary16 to float32 (subnormals, inf and NaN included). */
static inline float eng_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while ((mant & 0x400u) == 0) {
                mant <<= 1;
                exp--;
            }
            mant &= 0x3ffu;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* float32 to bf16 / f16 with round-to-nearest-even (used by tests and the benchmark). */
static inline uint16_t eng_f32_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)((bits + rounding) >> 16);
}

uint16_t eng_f32_to_f16(float f);

/* Element i of a weight in any supported dtype, as float. */
static inline float eng_weight_get(const struct eng_weight *w, size_t i)
{
    switch (w->dtype) {
    case ENG_DTYPE_F32:
        return ((const float *)w->data)[i];
    case ENG_DTYPE_F16:
        return eng_f16_to_f32(((const uint16_t *)w->data)[i]);
    case ENG_DTYPE_BF16:
        return eng_bf16_to_f32(((const uint16_t *)w->data)[i]);
    default:
        return 0.0f;
    }
}

#endif
