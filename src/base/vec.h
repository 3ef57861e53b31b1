/*
 * vec.h - a typed growable array as macros (ggml/stb style). Storage through alloc.h.
 *   HX_VEC(int) v = {0}; hx_vec_push(&v, 3); ... hx_vec_free(&v);
 */
#ifndef HX_BASE_VEC_H
#define HX_BASE_VEC_H

#include <stddef.h>

#include "base/alloc.h"

#define HX_VEC(T)                                                                                  \
    struct {                                                                                       \
        T *data;                                                                                   \
        size_t len;                                                                                \
        size_t cap;                                                                                \
    }

#define hx_vec_reserve(v, n)                                                                       \
    do {                                                                                           \
        if ((n) > (v)->cap) {                                                                      \
            size_t hx_c_ = (v)->cap ? (v)->cap : 8;                                                \
            while (hx_c_ < (n)) {                                                                  \
                hx_c_ *= 2;                                                                        \
            }                                                                                      \
            (v)->data = xrealloc((v)->data, hx_c_ * sizeof(*(v)->data));                           \
            (v)->cap = hx_c_;                                                                      \
        }                                                                                          \
    } while (0)

#define hx_vec_push(v, x)                                                                          \
    do {                                                                                           \
        hx_vec_reserve((v), (v)->len + 1);                                                         \
        (v)->data[(v)->len++] = (x);                                                               \
    } while (0)

#define hx_vec_free(v)                                                                             \
    do {                                                                                           \
        xfree((v)->data);                                                                          \
        (v)->data = NULL;                                                                          \
        (v)->len = (v)->cap = 0;                                                                   \
    } while (0)

#endif
