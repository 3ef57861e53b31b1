/*
 * tok_int.h - the tokenizer's internal layout, shared by tokenizer.c (loading, lookups,
 * decoding, streaming), tok_encode.c (added tokens, pre-tokenizers, BPE), tok_normalize.c
 * (normalizers), and the generated Unicode tables tok_unicode.c (code point classes) and
 * tok_unidata.c (decompositions, compositions, combining classes, \w). Not for use outside the
 * tokenizer.
 *
 * Invariant after a successful load: every id in [0, n_vocab) has a string (possibly empty for
 * an id no entry names) and its decoded bytes; the hash tables only point at valid ids.
 */
#ifndef HX_ENGINE_TOK_INT_H
#define HX_ENGINE_TOK_INT_H

#include <stddef.h>
#include <stdint.h>

#include "base/strbuf.h"
#include "engine/tokenizer.h"

/* Code point classes (eng_tok_cp_class). An invalid UTF-8 byte counts as TOK_CP_OTHER. */
enum tok_cp {
    TOK_CP_OTHER = 0,
    TOK_CP_LETTER = 1, // \p{L}
    TOK_CP_NUMBER = 2, // \p{N}
    TOK_CP_SPACE = 3,  // \s (Unicode White_Space)
};

/* Class of code point cp (tok_unicode.c, generated). */
int eng_tok_cp_class(uint32_t cp);

/* Canonical_Combining_Class of cp (0 for starters; tok_unidata.c, generated). */
int eng_tok_ccc(uint32_t cp);

/* 1 if cp is \w as Rust's regex crate defines it (Alphabetic, M, Nd, Pc, Join_Control). */
int eng_tok_is_word(uint32_t cp);

/*
 * One level of cp's canonical decomposition (Hangul syllables excluded: they are algorithmic):
 * returns 0 (none), 1 (a singleton, out[0]) or 2 (out[0] out[1]).
 */
size_t eng_tok_decompose1(uint32_t cp, uint32_t out[2]);

/* The primary composite of a + b (NFC recomposes it), or 0. Hangul excluded. */
uint32_t eng_tok_compose(uint32_t a, uint32_t b);

/*
 * Decode one UTF-8 character at s[0..n) (n >= 1). Returns its length (1..4) and sets *cp; an
 * invalid or truncated sequence yields length 1 and *cp = TOK_CP_INVALID.
 */
#define TOK_CP_INVALID 0xFFFFFFFFu
size_t eng_tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

/*
 * Pre-tokenizer matchers: the end of the regex match that starts at byte i of s[0..n) (i < n),
 * for the GPT-2 and the Llama-3 split patterns (tok_encode.c). Always > i.
 */
size_t eng_tok_match_gpt2(const unsigned char *s, size_t n, size_t i);
size_t eng_tok_match_llama3(const unsigned char *s, size_t n, size_t i);
/* Qwen 2/3: the Llama-3 pattern with \p{N} (single digits) instead of \p{N}{1,3}. */
size_t eng_tok_match_qwen2(const unsigned char *s, size_t n, size_t i);

enum tok_model {
    TOK_MODEL_BYTELEVEL = 1, // GPT-2 byte-to-unicode alphabet
    TOK_MODEL_SPM = 2,       // SentencePiece-style: ▁ for space, optional <0xNN> byte fallback
};

enum tok_split {
    TOK_SPLIT_NONE = 0,
    TOK_SPLIT_GPT2 = 1,
    TOK_SPLIT_LLAMA3 = 2,
    TOK_SPLIT_QWEN2 = 3,
};

enum tok_prepend {
    TOK_PREPEND_NEVER = 0,
    TOK_PREPEND_ALWAYS = 1,
    TOK_PREPEND_FIRST = 2,
};

/*
 * One normalizer step: prepend a (if the text is non-empty), replace every a with b, or the
 * Unicode normalization forms NFC / NFD (canonical; no compatibility mappings).
 */
enum tok_norm_kind {
    TOK_NORM_PREPEND = 1,
    TOK_NORM_REPLACE = 2,
    TOK_NORM_NFC = 3,
    TOK_NORM_NFD = 4,
};

struct tok_norm {
    enum tok_norm_kind kind;
    char *a;
    size_t a_len;
    char *b;
    size_t b_len;
};

/*
 * An added token. One with normalized = 0 is matched in the raw text (content); one with
 * normalized = 1 in the normalized text of the pieces between the former, as its own
 * normalized form (norm: content put through the normalizer), as Hugging Face does.
 */
struct tok_added {
    int32_t id;
    char *content;
    size_t len;
    char *norm; // normalized = 1: the normalized content (owned), else NULL
    size_t norm_len;
    int special;
    int lstrip;
    int rstrip;
    int single_word;
    int normalized;
};

/* Open-addressing hash from byte string to id; slots hold id or -1. */
struct tok_strmap {
    int32_t *slots;
    size_t cap; // power of two
};

/* Open-addressing hash from (left id, right id) to (rank, merged id). */
struct tok_merge {
    uint64_t key; // (uint64_t)left << 32 | right; UINT64_MAX = empty
    int32_t rank;
    int32_t new_id;
};

struct tok_mergemap {
    struct tok_merge *slots;
    size_t cap; // power of two
};

struct eng_tok {
    enum tok_model model;
    int32_t n_vocab;

    /* Vocabulary strings (as in tokenizer.json) and decoded bytes, per id, in one pool each. */
    char *str_pool;
    size_t *str_off; // n_vocab + 1 offsets; strings are NUL-terminated in the pool
    char *bytes_pool;
    size_t *bytes_off; // n_vocab + 1 offsets
    size_t max_token_bytes;
    struct tok_strmap vocab; // model.vocab and added tokens, string -> id

    struct tok_mergemap merges;
    int ignore_merges;

    /* Added tokens: matched in the raw text, or (normalized = 1) in the normalized text. */
    struct tok_added *added;
    size_t n_added;
    unsigned char added_first[2][256]; // [normalized][b]: 1 if such a token starts with byte b
    unsigned char *is_special;         // n_vocab flags

    /* Normalizer steps, applied in order. */
    struct tok_norm *norm;
    size_t n_norm;

    /* Pre-tokenizer. */
    enum tok_split split;
    int bl_add_prefix_space; // ByteLevel add_prefix_space
    int bl_split_first;      // a Split ran before ByteLevel: the prefix space goes on each word
    int ms_enabled;          // Metaspace pre-tokenizer
    char ms_repl[8];
    size_t ms_repl_len;
    enum tok_prepend ms_prepend;
    int ms_split;

    /* Model details. */
    int32_t byte_id[256];     // byte-level: id of each byte's alphabet character (-1 if missing)
    int32_t fallback_id[256]; // byte fallback: id of "<0xNN>" (-1 if missing)
    int byte_fallback;
    int32_t unk_id; // -1 if none
    int fuse_unk;

    /* Post-processor template: ids added before / after the text by ENG_TOK_ADD_BOS. */
    int32_t *prefix_ids;
    size_t n_prefix;
    int32_t *suffix_ids;
    size_t n_suffix;
    int32_t bos_id;
    int32_t eos_id;

    /* Decoder: up to strip_start leading spaces of the whole output are removed (Strip). */
    size_t strip_start;
    /*
     * Each id's bytes when it is the first token of the output, where that differs: after a
     * Metaspace decoder (its replacement characters dropped, not turned into spaces), or with
     * no decoder (no separating space in front); else NULL.
     */
    char *first_pool;
    size_t *first_off; // n_vocab + 1 offsets
    /* n_vocab flags: ENG_TOK_SKIP_SPECIAL drops the id (its string is a special token's). */
    unsigned char *skip_dec;
};

/*
 * Run tok's normalizer over s[0..n) into out (reset first). Invalid UTF-8 bytes pass through
 * NFC/NFD unchanged, as starters. Returns HX_OK or HX_ENOMEM (tok_normalize.c).
 */
int eng_tok_normalize(const struct eng_tok *tok, const char *s, size_t n, struct strbuf *out);

/* Id of the len bytes at s in map, or -1. */
int32_t eng_tok_strmap_get(const struct eng_tok *tok, const char *s, size_t len);

/* Merge of (left, right), or NULL. */
const struct tok_merge *eng_tok_merge_get(const struct eng_tok *tok, int32_t left, int32_t right);

/* Append s[0..n) to out with every occurrence of from[0..fl) replaced by to[0..tl)
 * (tok_normalize.c; the Replace normalizer and the Metaspace pre-tokenizer). */
void tok_replace_into(struct strbuf *out, const char *s, size_t n, const char *from, size_t fl,
                      const char *to, size_t tl);

#endif
