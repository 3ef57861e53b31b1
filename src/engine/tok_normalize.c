/*
 * tok_normalize.c - the tokenizer's normalizer steps: Prepend, Replace (String patterns), and
 * the canonical Unicode normalization forms NFC and NFD (UAX #15), from the generated tables
 * of tok_unidata.c plus the algorithmic Hangul syllables.
 *
 * NFD: every character replaced by its full canonical decomposition, then each run of
 * non-starters stably sorted by combining class. NFC: NFD, then canonical composition - each
 * character that is not blocked from the last starter (no character between them of class 0
 * or of a class >= its own) and forms a primary composite with it replaces it. Invalid UTF-8
 * bytes (which Hugging Face never sees: its input is a Rust str) pass through as starters
 * that compose with nothing.
 */
#include <string.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "engine/tok_int.h"

#define INVALID_BYTE 0x80000000u // code point slot holding an invalid byte (low 8 bits)

/* Hangul syllables (Unicode ch. 3.12). */
#define S_BASE 0xAC00u
#define L_BASE 0x1100u
#define V_BASE 0x1161u
#define T_BASE 0x11A7u
#define L_COUNT 19u
#define V_COUNT 21u
#define T_COUNT 28u
#define N_COUNT (V_COUNT * T_COUNT)
#define S_COUNT (L_COUNT * N_COUNT)

/* Largest full canonical decomposition of one code point, in code points. */
#define MAX_DECOMP 4

static void decompose(uint32_t cp, uint32_t *out, size_t *n, int depth)
{
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE;
        out[(*n)++] = L_BASE + s / N_COUNT;
        out[(*n)++] = V_BASE + (s % N_COUNT) / T_COUNT;
        if (s % T_COUNT != 0) {
            out[(*n)++] = T_BASE + s % T_COUNT;
        }
        return;
    }
    uint32_t d[2];
    size_t k = (cp & INVALID_BYTE) || depth >= MAX_DECOMP ? 0 : eng_tok_decompose1(cp, d);
    if (k == 0) {
        out[(*n)++] = cp;
        return;
    }
    decompose(d[0], out, n, depth + 1);
    if (k == 2) {
        decompose(d[1], out, n, depth + 1);
    }
}

static int ccc_of(uint32_t cp)
{
    return (cp & INVALID_BYTE) ? 0 : eng_tok_ccc(cp);
}

static uint32_t compose(uint32_t a, uint32_t b)
{
    if ((a & INVALID_BYTE) || (b & INVALID_BYTE)) {
        return 0;
    }
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT) {
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    }
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE &&
        b < T_BASE + T_COUNT) {
        return a + (b - T_BASE);
    }
    return eng_tok_compose(a, b);
}

static void put_cp(struct strbuf *out, uint32_t cp)
{
    char b[4];
    size_t n = 0;
    if (cp & INVALID_BYTE) {
        b[n++] = (char)(cp & 0xFF);
    } else if (cp < 0x80) {
        b[n++] = (char)cp;
    } else if (cp < 0x800) {
        b[n++] = (char)(0xC0 | (cp >> 6));
        b[n++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        b[n++] = (char)(0xE0 | (cp >> 12));
        b[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[n++] = (char)(0x80 | (cp & 0x3F));
    } else {
        b[n++] = (char)(0xF0 | (cp >> 18));
        b[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[n++] = (char)(0x80 | (cp & 0x3F));
    }
    strbuf_add(out, b, n);
}

/* NFC (compose = 1) or NFD of s[0..n), appended to out. */
static int unicode_normalize(const unsigned char *s, size_t n, int compose_too, struct strbuf *out)
{
    size_t i = 0;
    while (i < n && s[i] < 0x80) {
        i++;
    }
    if (i == n) {
        strbuf_add(out, s, n); // ASCII is in every normalization form
        return HX_OK;
    }
    if (n > SIZE_MAX / sizeof(uint32_t) / MAX_DECOMP - 1) {
        return HX_ENOMEM;
    }
    uint32_t *cps = hx_malloc((n * MAX_DECOMP + 1) * sizeof(uint32_t));
    if (cps == NULL) {
        return HX_ENOMEM;
    }
    size_t m = 0;
    for (i = 0; i < n;) {
        uint32_t cp = 0;
        size_t l = eng_tok_utf8_next(s + i, n - i, &cp);
        decompose(cp == TOK_CP_INVALID ? (INVALID_BYTE | s[i]) : cp, cps, &m, 0);
        i += l;
    }
    /* Canonical ordering: stable insertion sort of each run of non-starters by class. */
    for (size_t k = 1; k < m; k++) {
        int c = ccc_of(cps[k]);
        if (c == 0) {
            continue;
        }
        uint32_t x = cps[k];
        size_t j = k;
        while (j > 0 && ccc_of(cps[j - 1]) > c) {
            cps[j] = cps[j - 1];
            j--;
        }
        cps[j] = x;
    }
    if (compose_too && m > 0) {
        size_t starter = 0;
        int last = ccc_of(cps[0]) != 0 ? 256 : 0; // a leading non-starter composes with nothing
        size_t w = 1;
        for (size_t k = 1; k < m; k++) {
            uint32_t ch = cps[k];
            int c = ccc_of(ch);
            uint32_t comp = last < 256 ? compose(cps[starter], ch) : 0;
            if (comp != 0 && (last < c || last == 0)) {
                cps[starter] = comp;
                continue;
            }
            if (c == 0) {
                starter = w;
            }
            last = c;
            cps[w++] = ch;
        }
        m = w;
    }
    for (size_t k = 0; k < m; k++) {
        put_cp(out, cps[k]);
    }
    xfree(cps);
    return HX_OK;
}

void tok_replace_into(struct strbuf *out, const char *s, size_t n, const char *from, size_t fl,
                      const char *to, size_t tl)
{
    size_t i = 0;
    while (i < n) {
        if (fl > 0 && i + fl <= n && memcmp(s + i, from, fl) == 0) {
            strbuf_add(out, to, tl);
            i += fl;
        } else {
            strbuf_addc(out, s[i]);
            i++;
        }
    }
}

int eng_tok_normalize(const struct eng_tok *tok, const char *s, size_t n, struct strbuf *out)
{
    strbuf_reset(out);
    strbuf_add(out, s, n);
    if (tok->n_norm == 0) {
        return HX_OK;
    }
    struct strbuf tmp;
    strbuf_init(&tmp);
    int rc = HX_OK;
    for (size_t k = 0; k < tok->n_norm && rc == HX_OK; k++) {
        const struct tok_norm *nm = &tok->norm[k];
        strbuf_reset(&tmp);
        switch (nm->kind) {
        case TOK_NORM_PREPEND:
            if (out->len > 0) {
                strbuf_add(&tmp, nm->a, nm->a_len);
            }
            strbuf_add(&tmp, out->buf, out->len);
            break;
        case TOK_NORM_REPLACE:
            tok_replace_into(&tmp, out->buf, out->len, nm->a, nm->a_len, nm->b, nm->b_len);
            break;
        case TOK_NORM_NFC:
        case TOK_NORM_NFD:
            rc = unicode_normalize((const unsigned char *)out->buf, out->len,
                                   nm->kind == TOK_NORM_NFC, &tmp);
            break;
        }
        struct strbuf t = *out;
        *out = tmp;
        tmp = t;
    }
    strbuf_release(&tmp);
    return rc;
}
