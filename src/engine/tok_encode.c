/*
 * tok_encode.c - text to ids: added-token splitting, pre-tokenizers, BPE (the normalizer steps
 * are in tok_normalize.c).
 *
 * The pipeline follows Hugging Face tokenizers: (1) find the added tokens marked
 * normalized=false in the raw text (leftmost-longest, non-overlapping); (2) normalize each
 * piece of text between them, and find the normalized=true added tokens (as normalized
 * themselves) in it; (3) pre-tokenize each remaining piece (the GPT-2, Llama-3 or Qwen-2 regex,
 * matched by hand-written code equivalent to the backtracking regex; or Metaspace), map to the
 * byte-level alphabet where applicable; (4) BPE each word: repeatedly merge the adjacent pair
 * with the lowest merge rank, leftmost first (a min-heap keyed (rank, position), stale entries
 * skipped - Hugging Face's Word::merge_all). Invalid UTF-8 bytes count as one-byte characters
 * of class "other".
 */
#include <string.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "engine/tok_int.h"
#include "engine/tokenizer.h"

/* ---- scratch ----------------------------------------------------------------------------- */

struct sym {
    int32_t id;
    int32_t prev;
    int32_t next;
    int32_t alive;
};

struct hent {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
};

struct enc {
    const struct eng_tok *tok;
    struct hx_diag *diag;
    int32_t *ids;
    size_t n_ids;
    size_t cap_ids;
    struct sym *syms;
    size_t cap_syms;
    struct hent *heap;
    size_t n_heap;
    size_t cap_heap;
    struct strbuf word; // byte-level string of a word (ignore_merges lookups)
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return HX_OK;
    }
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) {
            return HX_ENOMEM;
        }
        c *= 2;
    }
    void *q = hx_realloc(*p, c * elem);
    if (q == NULL) {
        return HX_ENOMEM;
    }
    *p = q;
    *cap = c;
    return HX_OK;
}

static int push_id(struct enc *e, int32_t id)
{
    if (grow((void **)&e->ids, &e->cap_ids, e->n_ids + 1, sizeof(int32_t))) {
        return hx_diag_set(e->diag, HX_ENOMEM, "encode: out of memory");
    }
    e->ids[e->n_ids++] = id;
    return HX_OK;
}

/* ---- character classes ------------------------------------------------------------------- */

static int cls_at(const unsigned char *s, size_t n, size_t i, size_t *len)
{
    if (s[i] < 0x80) {
        *len = 1;
        unsigned char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            return TOK_CP_LETTER;
        }
        if (c >= '0' && c <= '9') {
            return TOK_CP_NUMBER;
        }
        if (c == ' ' || (c >= 0x09 && c <= 0x0D)) {
            return TOK_CP_SPACE;
        }
        return TOK_CP_OTHER;
    }
    uint32_t cp = 0;
    *len = eng_tok_utf8_next(s + i, n - i, &cp);
    return cp == TOK_CP_INVALID ? TOK_CP_OTHER : eng_tok_cp_class(cp);
}

/* End of the run of characters of class cls starting at i (at most max chars; 0 = no limit). */
static size_t run_end(const unsigned char *s, size_t n, size_t i, int cls, size_t max)
{
    size_t count = 0;
    while (i < n && (max == 0 || count < max)) {
        size_t l = 0;
        if (cls_at(s, n, i, &l) != cls) {
            break;
        }
        i += l;
        count++;
    }
    return i;
}

static int is_crlf(unsigned char c)
{
    return c == '\r' || c == '\n';
}

static unsigned char lower(unsigned char c)
{
    return (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

/*
 * The whitespace alternatives at i (s[i] is whitespace): `\s+(?!\S)|\s+`, and with crlf set
 * first `\s*[\r\n]+` (Llama-3). Returns the match end.
 */
static size_t match_space(const unsigned char *s, size_t n, size_t i, int crlf)
{
    size_t j = i;
    size_t last = i;          // start of the last whitespace char in the run
    size_t nl_end = SIZE_MAX; // end of the last \r or \n in the run
    size_t count = 0;
    while (j < n) {
        size_t l = 0;
        if (cls_at(s, n, j, &l) != TOK_CP_SPACE) {
            break;
        }
        if (is_crlf(s[j])) {
            nl_end = j + 1;
        }
        last = j;
        j += l;
        count++;
    }
    if (crlf && nl_end != SIZE_MAX) {
        return nl_end;
    }
    if (j == n || count == 1) {
        return j;
    }
    return last; // leave the last whitespace char to prefix the next word
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
size_t eng_tok_match_gpt2(const unsigned char *s, size_t n, size_t i)
{
    if (s[i] == '\'' && i + 1 < n) {
        unsigned char a = s[i + 1];
        if (a == 's' || a == 't' || a == 'm' || a == 'd') {
            return i + 2;
        }
        if (i + 2 < n && ((a == 'r' && s[i + 2] == 'e') || (a == 'v' && s[i + 2] == 'e') ||
                          (a == 'l' && s[i + 2] == 'l'))) {
            return i + 3;
        }
    }
    size_t j = s[i] == ' ' ? i + 1 : i;
    if (j < n) {
        size_t l = 0;
        int c = cls_at(s, n, j, &l);
        if (c != TOK_CP_SPACE) {
            return run_end(s, n, j, c, 0);
        }
    }
    return match_space(s, n, i, 0);
}

/*
 * Llama-3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * and Qwen 2/3, the same with \p{N} for \p{N}{1,3} (max_digits 3 or 1).
 */
static size_t match_llama3_family(const unsigned char *s, size_t n, size_t i, size_t max_digits)
{
    if (s[i] == '\'' && i + 1 < n) {
        unsigned char a = lower(s[i + 1]);
        if (a == 's' || a == 't' || a == 'm' || a == 'd') {
            return i + 2;
        }
        if (a == 0xC5 && i + 2 < n && s[i + 2] == 0xBF) {
            return i + 3; // U+017F LATIN SMALL LETTER LONG S case-folds to s
        }
        if (i + 2 < n) {
            unsigned char b = lower(s[i + 2]);
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
                return i + 3;
            }
        }
    }
    size_t l = 0;
    int c = cls_at(s, n, i, &l);
    if (c == TOK_CP_LETTER) {
        return run_end(s, n, i, TOK_CP_LETTER, 0);
    }
    if (c != TOK_CP_NUMBER && !is_crlf(s[i]) && i + l < n) {
        size_t l2 = 0;
        if (cls_at(s, n, i + l, &l2) == TOK_CP_LETTER) {
            return run_end(s, n, i + l, TOK_CP_LETTER, 0);
        }
    }
    if (c == TOK_CP_NUMBER) {
        return run_end(s, n, i, TOK_CP_NUMBER, max_digits);
    }
    size_t j = s[i] == ' ' ? i + 1 : i;
    if (j < n) {
        size_t l3 = 0;
        if (cls_at(s, n, j, &l3) == TOK_CP_OTHER) {
            size_t k = run_end(s, n, j, TOK_CP_OTHER, 0);
            while (k < n && is_crlf(s[k])) {
                k++;
            }
            return k;
        }
    }
    return match_space(s, n, i, 1);
}

size_t eng_tok_match_llama3(const unsigned char *s, size_t n, size_t i)
{
    return match_llama3_family(s, n, i, 3);
}

size_t eng_tok_match_qwen2(const unsigned char *s, size_t n, size_t i)
{
    return match_llama3_family(s, n, i, 1);
}

/* The configured Split pattern's match end at i (split != TOK_SPLIT_NONE). */
static size_t match_split(const struct eng_tok *tok, const unsigned char *s, size_t n, size_t i)
{
    size_t j = tok->split == TOK_SPLIT_GPT2     ? eng_tok_match_gpt2(s, n, i)
               : tok->split == TOK_SPLIT_LLAMA3 ? eng_tok_match_llama3(s, n, i)
                                                : eng_tok_match_qwen2(s, n, i);
    return j > i ? j : i + 1; // always > i: every character matches some alternative
}

/* ---- BPE --------------------------------------------------------------------------------- */

static int hless(const struct hent *a, const struct hent *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(struct enc *e, int32_t pos, int32_t left, int32_t right)
{
    const struct tok_merge *m = eng_tok_merge_get(e->tok, left, right);
    if (m == NULL) {
        return HX_OK;
    }
    if (grow((void **)&e->heap, &e->cap_heap, e->n_heap + 1, sizeof(struct hent))) {
        return hx_diag_set(e->diag, HX_ENOMEM, "encode: out of memory");
    }
    size_t i = e->n_heap++;
    struct hent x = {m->rank, pos, m->new_id};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&x, &e->heap[p])) {
            break;
        }
        e->heap[i] = e->heap[p];
        i = p;
    }
    e->heap[i] = x;
    return HX_OK;
}

static struct hent heap_pop(struct enc *e)
{
    struct hent top = e->heap[0];
    struct hent x = e->heap[--e->n_heap];
    size_t n = e->n_heap;
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && hless(&e->heap[c + 1], &e->heap[c])) {
            c++;
        }
        if (!hless(&e->heap[c], &x)) {
            break;
        }
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n > 0) {
        e->heap[i] = x;
    }
    return top;
}

/* Merge the n symbols in e->syms (ids set) and append the surviving ids. */
static int bpe_merge(struct enc *e, size_t n)
{
    struct sym *sy = e->syms;
    for (size_t i = 0; i < n; i++) {
        sy[i].prev = (int32_t)i - 1;
        sy[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
        sy[i].alive = 1;
    }
    e->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        int rc = heap_push(e, (int32_t)i, sy[i].id, sy[i + 1].id);
        if (rc) {
            return rc;
        }
    }
    while (e->n_heap > 0) {
        struct hent top = heap_pop(e);
        struct sym *a = &sy[top.pos];
        if (!a->alive || a->next < 0) {
            continue;
        }
        struct sym *b = &sy[a->next];
        const struct tok_merge *m = eng_tok_merge_get(e->tok, a->id, b->id);
        if (m == NULL || m->new_id != top.new_id) {
            continue; // stale entry
        }
        a->id = top.new_id;
        b->alive = 0;
        a->next = b->next;
        if (b->next >= 0) {
            sy[b->next].prev = top.pos;
        }
        int rc = HX_OK;
        if (a->prev >= 0) {
            rc = heap_push(e, a->prev, sy[a->prev].id, a->id);
        }
        if (!rc && a->next >= 0) {
            rc = heap_push(e, top.pos, a->id, sy[a->next].id);
        }
        if (rc) {
            return rc;
        }
    }
    for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = sy[i].next) {
        int rc = push_id(e, sy[i].id);
        if (rc) {
            return rc;
        }
    }
    return HX_OK;
}

static int syms_reserve(struct enc *e, size_t n)
{
    if (n > (size_t)INT32_MAX - 1 || grow((void **)&e->syms, &e->cap_syms, n, sizeof(struct sym))) {
        return hx_diag_set(e->diag, HX_ENOMEM, "encode: out of memory for %zu symbols", n);
    }
    return HX_OK;
}

/* A byte-level word: raw bytes s[0..n), each one an alphabet character. */
static int bpe_bytes(struct enc *e, const unsigned char *s, size_t n)
{
    const struct eng_tok *tok = e->tok;
    if (n == 0) {
        return HX_OK;
    }
    if (tok->ignore_merges) {
        strbuf_reset(&e->word);
        for (size_t i = 0; i < n; i++) {
            size_t l = 0;
            const char *b = eng_tok_id_to_token(tok, tok->byte_id[s[i]], &l);
            if (b == NULL) {
                break;
            }
            strbuf_add(&e->word, b, l);
        }
        int32_t id = eng_tok_strmap_get(tok, e->word.buf, e->word.len);
        if (id >= 0) {
            return push_id(e, id);
        }
    }
    int rc = syms_reserve(e, n);
    if (rc) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (tok->byte_id[s[i]] < 0) {
            return hx_diag_set(e->diag, HX_ENOTFOUND,
                               "encode: byte 0x%02X has no token in the byte-level vocabulary",
                               s[i]);
        }
        e->syms[i].id = tok->byte_id[s[i]];
    }
    return bpe_merge(e, n);
}

/* A SentencePiece-style word: UTF-8 characters, byte fallback or unk for unknown ones. */
static int bpe_chars(struct enc *e, const unsigned char *s, size_t n)
{
    const struct eng_tok *tok = e->tok;
    if (n == 0) {
        return HX_OK;
    }
    if (tok->ignore_merges) {
        int32_t id = eng_tok_strmap_get(tok, (const char *)s, n);
        if (id >= 0) {
            return push_id(e, id);
        }
    }
    int rc = syms_reserve(e, n); // at most one symbol per byte
    if (rc) {
        return rc;
    }
    size_t k = 0;
    int prev_unk = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t l = eng_tok_utf8_next(s + i, n - i, &cp);
        int32_t id = eng_tok_strmap_get(tok, (const char *)s + i, l);
        if (id >= 0) {
            e->syms[k++].id = id;
            prev_unk = 0;
        } else {
            int all = tok->byte_fallback;
            for (size_t b = 0; all && b < l; b++) {
                all = tok->fallback_id[s[i + b]] >= 0;
            }
            if (all) {
                for (size_t b = 0; b < l; b++) {
                    e->syms[k++].id = tok->fallback_id[s[i + b]];
                }
                prev_unk = 0;
            } else if (tok->unk_id >= 0) {
                if (!(tok->fuse_unk && prev_unk)) {
                    e->syms[k++].id = tok->unk_id;
                }
                prev_unk = 1;
            } else {
                return hx_diag_set(e->diag, HX_ENOTFOUND,
                                   "encode: character at byte %zu has no token, no byte "
                                   "fallback and no unk token",
                                   i);
            }
        }
        i += l;
    }
    return bpe_merge(e, k);
}

/* ---- pre-tokenizing one piece ---------------------------------------------------------- */

/*
 * Byte-level: ByteLevel's prefix space (if configured) on the piece - or, after a Split, on
 * every word of it, since Hugging Face's ByteLevel runs on each split - then the words.
 */
static int bytelevel_words(struct enc *e, const unsigned char *s, size_t n)
{
    const struct eng_tok *tok = e->tok;
    struct strbuf w;
    strbuf_init(&w);
    int rc = HX_OK;
    if (tok->bl_split_first && tok->bl_add_prefix_space) {
        for (size_t i = 0; i < n && rc == HX_OK;) {
            size_t j = match_split(tok, s, n, i);
            strbuf_reset(&w);
            if (s[i] != ' ') {
                strbuf_addc(&w, ' ');
            }
            strbuf_add(&w, s + i, j - i);
            rc = bpe_bytes(e, (const unsigned char *)w.buf, w.len);
            i = j;
        }
        strbuf_release(&w);
        return rc;
    }
    if (tok->bl_add_prefix_space && s[0] != ' ') {
        strbuf_addc(&w, ' ');
        strbuf_add(&w, s, n);
        s = (const unsigned char *)w.buf;
        n = w.len;
    }
    if (tok->split == TOK_SPLIT_NONE) {
        rc = bpe_bytes(e, s, n);
    }
    for (size_t i = 0; tok->split != TOK_SPLIT_NONE && i < n && rc == HX_OK;) {
        size_t j = match_split(tok, s, n, i);
        rc = bpe_bytes(e, s + i, j - i);
        i = j;
    }
    strbuf_release(&w);
    return rc;
}

/* SentencePiece-style: Metaspace (replace spaces, prepend, split before each ▁), or one word. */
static int spm_words(struct enc *e, const unsigned char *s, size_t n, int at_origin)
{
    const struct eng_tok *tok = e->tok;
    if (!tok->ms_enabled) {
        return bpe_chars(e, s, n);
    }
    struct strbuf a;
    struct strbuf b;
    strbuf_init(&a);
    strbuf_init(&b);
    tok_replace_into(&b, (const char *)s, n, " ", 1, tok->ms_repl, tok->ms_repl_len);
    int starts = b.len >= tok->ms_repl_len && memcmp(b.buf, tok->ms_repl, tok->ms_repl_len) == 0;
    int prepend = !starts && (tok->ms_prepend == TOK_PREPEND_ALWAYS ||
                              (tok->ms_prepend == TOK_PREPEND_FIRST && at_origin));
    if (prepend) {
        strbuf_add(&a, tok->ms_repl, tok->ms_repl_len);
    }
    strbuf_add(&a, b.buf, b.len);
    const unsigned char *t = (const unsigned char *)a.buf;
    size_t m = a.len;
    size_t rl = tok->ms_repl_len;
    size_t w = 0;
    int rc = HX_OK;
    for (size_t i = 1; tok->ms_split && i + rl <= m && rc == HX_OK; i++) {
        if (memcmp(t + i, tok->ms_repl, rl) == 0) {
            rc = bpe_chars(e, t + w, i - w);
            w = i;
            i += rl - 1;
        }
    }
    if (rc == HX_OK) {
        rc = bpe_chars(e, t + w, m - w);
    }
    strbuf_release(&a);
    strbuf_release(&b);
    return rc;
}

/*
 * Pre-tokenize and BPE one piece of normalized text with no added token in it. at_origin: the
 * piece starts at offset 0 of the input (Metaspace's prepend_scheme "first").
 */
static int encode_words(struct enc *e, const unsigned char *s, size_t n, int at_origin)
{
    if (n == 0) {
        return HX_OK;
    }
    if (e->tok->model == TOK_MODEL_BYTELEVEL) {
        return bytelevel_words(e, s, n);
    }
    return spm_words(e, s, n, at_origin);
}

/* ---- added tokens ------------------------------------------------------------------------ */

/* \w (Rust regex, which Hugging Face's single_word uses) at byte i; invalid bytes are not. */
static int is_word_char(const unsigned char *s, size_t n, size_t i)
{
    if (s[i] < 0x80) {
        unsigned char c = s[i];
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
    }
    uint32_t cp = 0;
    eng_tok_utf8_next(s + i, n - i, &cp);
    return cp != TOK_CP_INVALID && eng_tok_is_word(cp);
}

/* Start of the character that ends at byte i (i > 0). */
static size_t char_before(const unsigned char *s, size_t i)
{
    size_t k = i - 1;
    while (k > 0 && i - k < 4 && (s[k] & 0xC0) == 0x80) {
        k--;
    }
    return k;
}

/*
 * The next accepted added token of one set (normalized = 0: raw contents matched in the raw
 * text; 1: normalized contents in normalized text) in s[from..n), as Hugging Face's
 * AddedVocabulary::find_matches: a leftmost-longest scan over the set's non-overlapping
 * matches, skipping (the scan going on after it) a special one under ENG_TOK_NO_SPECIAL and a
 * single_word one touching a \w character; lstrip / rstrip widen the match over White_Space,
 * lstrip never before lo (the end of the previous accepted match). On a hit set *ms, *me, *id
 * and return 1, else 0.
 */
static int find_added(const struct eng_tok *tok, int normalized, const unsigned char *s, size_t n,
                      size_t from, size_t lo, unsigned flags, size_t *ms, size_t *me, int32_t *id)
{
    if (tok->n_added == 0) {
        return 0;
    }
    const unsigned char *first = tok->added_first[normalized ? 1 : 0];
    for (size_t i = from; i < n; i++) {
        if (!first[s[i]]) {
            continue;
        }
        const struct tok_added *best = NULL;
        size_t best_len = 0;
        for (size_t k = 0; k < tok->n_added; k++) {
            const struct tok_added *a = &tok->added[k];
            if (a->normalized != normalized) {
                continue;
            }
            const char *c = normalized ? a->norm : a->content;
            size_t len = normalized ? a->norm_len : a->len;
            if (len == 0 || len > n - i || len <= best_len || (unsigned char)c[0] != s[i] ||
                memcmp(s + i, c, len) != 0) {
                continue;
            }
            best = a;
            best_len = len;
        }
        if (best == NULL) {
            continue;
        }
        size_t st = i;
        size_t en = i + best_len;
        if ((best->special && (flags & ENG_TOK_NO_SPECIAL)) ||
            (best->single_word && ((st > 0 && is_word_char(s, n, char_before(s, st))) ||
                                   (en < n && is_word_char(s, n, en))))) {
            i = en - 1; // the scan goes on after this match
            continue;
        }
        while (best->lstrip && st > lo) {
            size_t p = char_before(s, st);
            size_t l = 0;
            if (p < lo || cls_at(s, n, p, &l) != TOK_CP_SPACE || p + l != st) {
                break;
            }
            st = p;
        }
        while (best->rstrip && en < n) {
            size_t l = 0;
            if (cls_at(s, n, en, &l) != TOK_CP_SPACE) {
                break;
            }
            en += l;
        }
        *ms = st;
        *me = en;
        *id = best->id;
        return 1;
    }
    return 0;
}

/*
 * One piece of raw text between raw-matched added tokens; offset = where it starts in the
 * input. Normalized, then split at the normalized added tokens, then pre-tokenized.
 */
static int encode_piece(struct enc *e, const char *text, size_t len, size_t offset, unsigned flags)
{
    const struct eng_tok *tok = e->tok;
    if (len == 0) {
        return HX_OK;
    }
    struct strbuf nb;
    strbuf_init(&nb);
    int rc = eng_tok_normalize(tok, text, len, &nb);
    if (rc) {
        strbuf_release(&nb);
        return hx_diag_set(e->diag, rc, "encode: out of memory normalizing %zu bytes", len);
    }
    const unsigned char *s = (const unsigned char *)nb.buf;
    size_t n = nb.len;
    size_t seg = 0;
    while (rc == HX_OK) {
        size_t ms = 0;
        size_t me = 0;
        int32_t id = -1;
        if (!find_added(tok, 1, s, n, seg, seg, flags, &ms, &me, &id)) {
            rc = encode_words(e, s + seg, n - seg, offset == 0 && seg == 0);
            break;
        }
        rc = encode_words(e, s + seg, ms - seg, offset == 0 && seg == 0);
        if (rc == HX_OK) {
            rc = push_id(e, id);
        }
        seg = me;
    }
    strbuf_release(&nb);
    return rc;
}

/* ---- the entry point --------------------------------------------------------------------- */

int eng_tok_encode(const struct eng_tok *tok, const char *text, size_t len, unsigned flags,
                   int32_t **ids_out, size_t *n_out, struct hx_diag *diag)
{
    *ids_out = NULL;
    *n_out = 0;
    if (text == NULL && len > 0) {
        return hx_diag_set(diag, HX_EINVAL, "encode: NULL text");
    }
    struct enc e = {.tok = tok, .diag = diag};
    strbuf_init(&e.word);
    int rc = grow((void **)&e.ids, &e.cap_ids, 16, sizeof(int32_t));
    if (rc) {
        rc = hx_diag_set(diag, HX_ENOMEM, "encode: out of memory");
    }
    for (size_t k = 0; rc == HX_OK && (flags & ENG_TOK_ADD_BOS) && k < tok->n_prefix; k++) {
        rc = push_id(&e, tok->prefix_ids[k]);
    }
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    size_t seg = 0;
    while (rc == HX_OK) {
        size_t ms = 0;
        size_t me = 0;
        int32_t id = -1;
        if (!find_added(tok, 0, s, len, seg, seg, flags, &ms, &me, &id)) {
            rc = encode_piece(&e, (const char *)s + seg, len - seg, seg, flags);
            break;
        }
        rc = encode_piece(&e, (const char *)s + seg, ms - seg, seg, flags);
        if (rc == HX_OK) {
            rc = push_id(&e, id);
        }
        seg = me;
    }
    for (size_t k = 0; rc == HX_OK && (flags & ENG_TOK_ADD_BOS) && k < tok->n_suffix; k++) {
        rc = push_id(&e, tok->suffix_ids[k]);
    }
    xfree(e.syms);
    xfree(e.heap);
    strbuf_release(&e.word);
    if (rc) {
        xfree(e.ids);
        return rc;
    }
    *ids_out = e.ids;
    *n_out = e.n_ids;
    return HX_OK;
}
