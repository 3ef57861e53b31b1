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

/* A parsed GGUF file (gguf.c): its tensor table (names as in the file, shapes in PyTorch's
 * order [rows, cols], absolute byte ranges) and its metadata, read in place from the mapping. */
struct eng_gguf_kv {
    const char *key; /* points into the file: key_len bytes, not NUL-terminated */
    size_t key_len;
    uint32_t type;            /* GGUF value type */
    const unsigned char *val; /* the value's bytes in the file */
    uint32_t arr_type;        /* arrays: element type */
    uint64_t arr_n;           /* arrays: element count */
};

struct eng_gguf {
    struct eng_st_file st;
    struct eng_gguf_kv *kv;
    int n_kv;
    uint32_t version;
    const unsigned char *base;
    size_t len;
};

/* Parse a GGUF file held in memory (buf, len bytes: the whole file; borrowed, must outlive
 * out). Validates magic, version (2, 3), every length, string, array and tensor entry, and
 * that each tensor's bytes lie in the file. HX_EPARSE naming path and the field, HX_ENOTSUP
 * for a GGUF version we do not read. Safe on arbitrary input (a libFuzzer target). */
int eng_gguf_parse(const void *buf, size_t len, const char *path, struct eng_gguf *out,
                   struct hx_diag *diag);
void eng_gguf_release(struct eng_gguf *g);
/* The key's entry, or NULL. */
const struct eng_gguf_kv *eng_gguf_find(const struct eng_gguf *g, const char *key);
/* The LLaMA block's configuration from the metadata (general.architecture "llama"). */
int eng_gguf_config(const struct eng_gguf *g, const char *path, struct eng_config *out,
                    struct hx_diag *diag);
/* The GGUF name (llama.cpp's) of a Hugging Face tensor name: blk.N.attn_q.weight ... */
void eng_gguf_tensor_name(const char *hf, char *out, size_t cap);

/* One mmap'd file (a shard, or a GGUF file: then gguf holds its parse and st its tensors). */
struct eng_mapped {
    char *path;
    void *base;
    size_t len;
    struct eng_st_file st;
    struct eng_gguf gguf;
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
    void **owned; /* weights converted or reordered at load */
    int n_owned;
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

/* ggml's blocks (quant.c), packed as ggml packs them: 34 and 18 bytes, 2-byte aligned. */
struct eng_block_q8_0 {
    uint16_t d; /* fp16 scale */
    int8_t qs[ENG_QBLOCK];
};

struct eng_block_q4_0 {
    uint16_t d;                 /* fp16 scale */
    uint8_t qs[ENG_QBLOCK / 2]; /* element j: low nibble of qs[j], j + 16: high nibble */
};

_Static_assert(sizeof(struct eng_block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(struct eng_block_q4_0) == 18, "q4_0 block is 18 bytes");

/* Quantize n floats (a multiple of ENG_QBLOCK) to n / 32 blocks, rounding as ggml's reference
 * quantizers. eng_quant_row: 0, or -1 when dt is not a block format. */
void eng_quant_row_q8_0(const float *x, struct eng_block_q8_0 *y, size_t n);
void eng_quant_row_q4_0(const float *x, struct eng_block_q4_0 *y, size_t n);
int eng_quant_row(enum eng_dtype dt, const float *x, void *dst, size_t n);
/* n elements of a row in dtype dt (any supported one) as float. */
void eng_dequant_row(enum eng_dtype dt, const void *src, float *dst, size_t n);

/* Element i of a weight in any supported dtype, as float. */
static inline float eng_weight_get(const struct eng_weight *w, size_t i)
{
    switch (w->dtype) {
    case ENG_DTYPE_Q8_0: {
        const struct eng_block_q8_0 *b = (const struct eng_block_q8_0 *)w->data + i / ENG_QBLOCK;
        return eng_f16_to_f32(b->d) * (float)b->qs[i % ENG_QBLOCK];
    }
    case ENG_DTYPE_Q4_0: {
        const struct eng_block_q4_0 *b = (const struct eng_block_q4_0 *)w->data + i / ENG_QBLOCK;
        size_t j = i % ENG_QBLOCK;
        int u = j < 16 ? (b->qs[j] & 0x0f) : (b->qs[j - 16] >> 4);
        return eng_f16_to_f32(b->d) * (float)(u - 8);
    }
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
