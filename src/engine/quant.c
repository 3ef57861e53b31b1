/*
 * quant.c - ggml's Q8_0 and Q4_0 block formats: sizes, names, and the reference quantizers
 * and dequantizers. The quantizers round exactly as ggml's quantize_row_q8_0_ref /
 * quantize_row_q4_0_ref (what llama.cpp's llama_model_quantize runs without an importance
 * matrix), so a checkpoint quantized at load holds the bytes llama.cpp would have written.
 */
#include "engine/engine_int.h"

#include <math.h>
#include <strings.h>

size_t eng_dtype_row_bytes(enum eng_dtype dt, int64_t cols)
{
    size_t n = cols > 0 ? (size_t)cols : 0;
    switch (dt) {
    case ENG_DTYPE_Q8_0:
        return n / ENG_QBLOCK * sizeof(struct eng_block_q8_0);
    case ENG_DTYPE_Q4_0:
        return n / ENG_QBLOCK * sizeof(struct eng_block_q4_0);
    default:
        return n * eng_dtype_size(dt);
    }
}

int eng_dtype_is_quant(enum eng_dtype dt)
{
    return dt == ENG_DTYPE_Q8_0 || dt == ENG_DTYPE_Q4_0;
}

int eng_weight_format_parse(const char *name, enum eng_dtype *out)
{
    static const struct {
        const char *name;
        enum eng_dtype dt;
    } formats[] = {{"bf16", ENG_DTYPE_BF16},
                   {"f16", ENG_DTYPE_F16},
                   {"f32", ENG_DTYPE_F32},
                   {"q8_0", ENG_DTYPE_Q8_0},
                   {"q4_0", ENG_DTYPE_Q4_0}};
    for (size_t i = 0; name && i < sizeof(formats) / sizeof(formats[0]); i++) {
        if (strcasecmp(name, formats[i].name) == 0) {
            *out = formats[i].dt;
            return 0;
        }
    }
    return -1;
}

void eng_quant_row_q8_0(const float *x, struct eng_block_q8_0 *y, size_t n)
{
    for (size_t b = 0; b < n / ENG_QBLOCK; b++) {
        const float *xb = x + b * ENG_QBLOCK;
        float amax = 0.0f;
        for (int j = 0; j < ENG_QBLOCK; j++) {
            float a = fabsf(xb[j]);
            amax = a > amax ? a : amax;
        }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = eng_f32_to_f16(d);
        for (int j = 0; j < ENG_QBLOCK; j++) {
            y[b].qs[j] = (int8_t)roundf(xb[j] * id);
        }
    }
}

void eng_quant_row_q4_0(const float *x, struct eng_block_q4_0 *y, size_t n)
{
    for (size_t b = 0; b < n / ENG_QBLOCK; b++) {
        const float *xb = x + b * ENG_QBLOCK;
        float amax = 0.0f;
        float max = 0.0f;
        for (int j = 0; j < ENG_QBLOCK; j++) {
            if (amax < fabsf(xb[j])) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = eng_f32_to_f16(d);
        for (int j = 0; j < ENG_QBLOCK / 2; j++) {
            int8_t u0 = (int8_t)(xb[j] * id + 8.5f); /* truncation, as ggml */
            int8_t u1 = (int8_t)(xb[j + ENG_QBLOCK / 2] * id + 8.5f);
            uint8_t q0 = (uint8_t)(u0 < 15 ? u0 : 15);
            uint8_t q1 = (uint8_t)(u1 < 15 ? u1 : 15);
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

int eng_quant_row(enum eng_dtype dt, const float *x, void *dst, size_t n)
{
    switch (dt) {
    case ENG_DTYPE_Q8_0:
        eng_quant_row_q8_0(x, dst, n);
        return 0;
    case ENG_DTYPE_Q4_0:
        eng_quant_row_q4_0(x, dst, n);
        return 0;
    default:
        return -1;
    }
}

void eng_dequant_row(enum eng_dtype dt, const void *src, float *dst, size_t n)
{
    if (dt == ENG_DTYPE_Q8_0) {
        const struct eng_block_q8_0 *b = src;
        for (size_t i = 0; i < n / ENG_QBLOCK; i++) {
            float d = eng_f16_to_f32(b[i].d);
            for (int j = 0; j < ENG_QBLOCK; j++) {
                dst[i * ENG_QBLOCK + (size_t)j] = d * (float)b[i].qs[j];
            }
        }
    } else if (dt == ENG_DTYPE_Q4_0) {
        const struct eng_block_q4_0 *b = src;
        for (size_t i = 0; i < n / ENG_QBLOCK; i++) {
            float d = eng_f16_to_f32(b[i].d);
            for (int j = 0; j < ENG_QBLOCK / 2; j++) {
                dst[i * ENG_QBLOCK + (size_t)j] = d * (float)((b[i].qs[j] & 0x0f) - 8);
                dst[i * ENG_QBLOCK + (size_t)j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
            }
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            struct eng_weight w = {dt, 1, (int)n, src};
            dst[i] = eng_weight_get(&w, i);
        }
    }
}
