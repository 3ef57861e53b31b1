/*
 * fuzz_tokenizer.c - libFuzzer target for the tokenizer (src/engine/tokenizer.h).
 *
 * Input: byte 0 picks the mode, the rest is the payload.
 *  - encode with the bundled byte-level tokenizer (loaded once), with a small
 *    SentencePiece-style one (byte fallback), and with a Qwen-like variant of the bundled one
 *    (NFC normalizer, the Qwen-2 Split pattern, normalized added tokens), with and without
 *    special-token matching; decode and stream-decode the ids. Invariants (abort if broken):
 *    ids in range; decode output is valid UTF-8 and equals the streamed text; for valid UTF-8
 *    x, byte-level decode(encode(x)) == x, and == NFC(x) for the NFC variant (when x has no
 *    '<' or '>', so no raw-matched added token splits it); NFC and NFD are
 *    idempotent, NFC(NFD(x)) == NFC(x), NFD(NFC(x)) == NFD(x), and keep valid UTF-8 valid.
 *  - load the payload as a tokenizer.json (must fail cleanly or load; then encode a string).
 * Run from the repository root (make fuzz), so the bundled model's path resolves.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "engine/tok_int.h"
#include "engine/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct eng_tok *g_bytelevel;
static struct eng_tok *g_spm;
static struct eng_tok *g_nfc; // the bundled vocabulary, Qwen-style pipeline
static struct eng_tok *g_nfd; // the bundled vocabulary, NFD normalizer

static struct eng_tok *load_spm(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_adds(&sb, "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
                     "{\"id\":1,\"content\":\"<s>\",\"special\":true},"
                     "{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
                     "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":["
                     "{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},{\"type\":\"Replace\","
                     "\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
                     "\"pre_tokenizer\":null,"
                     "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\","
                     "\"pattern\":{\"String\":\"\\u2581\"},\"content\":\" \"},{\"type\":"
                     "\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
                     "\"start\":1,\"stop\":0}]},"
                     "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,"
                     "\"byte_fallback\":true,\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2");
    for (int b = 0; b < 256; b++) {
        strbuf_addf(&sb, ",\"<0x%02X>\":%d", b, 3 + b);
    }
    strbuf_adds(&sb, ",\"\\u2581\":259,\"a\":260,\"b\":261,\"\\u2581a\":262,\"ab\":263,"
                     "\"\\u2581ab\":264,\"\\u00e9\":265},\"merges\":[\"\\u2581 a\",\"a b\","
                     "[\"\\u2581a\",\"b\"]]}}");
    struct hx_diag d = {0};
    struct eng_tok *tok = NULL;
    if (eng_tok_load_mem(sb.buf, sb.len, "fuzz-spm", &tok, &d) != HX_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", d.msg);
        abort();
    }
    strbuf_release(&sb);
    return tok;
}

/* The bundled tokenizer.json with normalizer (and, if set, pre_tokenizer and added_tokens). */
static struct eng_tok *load_variant(const char *normalizer, const char *pre_tokenizer,
                                    const char *added)
{
    struct strbuf sb;
    strbuf_init(&sb);
    if (strbuf_read_file(&sb, "models/kjv-llama-6m/tokenizer.json") != HX_OK) {
        fprintf(stderr, "fuzz_tokenizer: run from the repository root\n");
        abort();
    }
    cJSON *root = cJSON_ParseWithLength(sb.buf, sb.len);
    strbuf_release(&sb);
    cJSON_ReplaceItemInObject(root, "normalizer", cJSON_Parse(normalizer));
    if (pre_tokenizer != NULL) {
        cJSON_ReplaceItemInObject(root, "pre_tokenizer", cJSON_Parse(pre_tokenizer));
    }
    if (added != NULL) {
        cJSON_ReplaceItemInObject(root, "added_tokens", cJSON_Parse(added));
    }
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    struct hx_diag d = {0};
    struct eng_tok *tok = NULL;
    if (eng_tok_load_mem(js, strlen(js), "fuzz-variant", &tok, &d) != HX_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", d.msg);
        abort();
    }
    cJSON_free(js);
    return tok;
}

static void init(void)
{
    if (g_bytelevel != NULL) {
        return;
    }
    struct hx_diag d = {0};
    if (eng_tok_load("models/kjv-llama-6m/tokenizer.json", &g_bytelevel, &d) != HX_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s (run from the repository root)\n", d.msg);
        abort();
    }
    g_spm = load_spm();
    /* Added tokens whose decoded bytes are their text (ASCII, or outside the byte alphabet),
     * so decode(encode(x)) == NFC(x) still holds; U+1EC7 is normalized (matches NFD input). */
    g_nfc = load_variant(
        "{\"type\":\"NFC\"}",
        "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{"
        "\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
        "\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
        "\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}",
        "[{\"id\":0,\"content\":\"<|begin_of_text|>\",\"special\":true,\"normalized\":false},"
        "{\"id\":1,\"content\":\"<|end_of_text|>\",\"special\":true,\"normalized\":false},"
        "{\"id\":4096,\"content\":\"\\u1ec7\",\"special\":false,\"normalized\":true},"
        "{\"id\":4097,\"content\":\"<w>\",\"single_word\":true,\"normalized\":false},"
        "{\"id\":4098,\"content\":\"<w>!\",\"special\":true,\"normalized\":true}]");
    g_nfd = load_variant("{\"type\":\"NFD\"}", NULL, NULL);
}

/* tok's normalizer over s[0..n), into a new strbuf (caller releases). */
static struct strbuf normalized(const struct eng_tok *tok, const char *s, size_t n)
{
    struct strbuf sb;
    strbuf_init(&sb);
    if (eng_tok_normalize(tok, s, n, &sb) != HX_OK) {
        abort();
    }
    return sb;
}

static int same(const struct strbuf *a, const struct strbuf *b)
{
    return a->len == b->len && memcmp(a->buf, b->buf, a->len) == 0;
}

static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n) {
            return 0;
        }
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += len;
    }
    return 1;
}

static int valid_utf8(const unsigned char *s, size_t n);

/* NFC / NFD laws on any bytes (valid UTF-8 in, valid UTF-8 out). */
static void check_forms(const char *text, size_t len)
{
    struct strbuf c = normalized(g_nfc, text, len);
    struct strbuf dd = normalized(g_nfd, text, len);
    struct strbuf cc = normalized(g_nfc, c.buf, c.len);
    struct strbuf ddd = normalized(g_nfd, dd.buf, dd.len);
    struct strbuf cd = normalized(g_nfc, dd.buf, dd.len);
    struct strbuf dc = normalized(g_nfd, c.buf, c.len);
    if (!same(&c, &cc) || !same(&dd, &ddd) || !same(&c, &cd) || !same(&dd, &dc)) {
        abort();
    }
    if (valid_utf8((const unsigned char *)text, len) &&
        (!valid_utf8((const unsigned char *)c.buf, c.len) ||
         !valid_utf8((const unsigned char *)dd.buf, dd.len))) {
        abort();
    }
    strbuf_release(&c);
    strbuf_release(&dd);
    strbuf_release(&cc);
    strbuf_release(&ddd);
    strbuf_release(&cd);
    strbuf_release(&dc);
}

/* lossless: 1 = decode(encode(x)) == x for valid UTF-8 x; 2 = == NFC(x). */
static void check_tok(const struct eng_tok *tok, const char *text, size_t len, unsigned flags,
                      int lossless)
{
    struct hx_diag d = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (eng_tok_encode(tok, text, len, flags, &ids, &n, &d) != HX_OK) {
        abort(); // both tokenizers can encode any bytes
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= eng_tok_vocab_size(tok)) {
            abort();
        }
    }
    char *out = NULL;
    size_t out_len = 0;
    if (eng_tok_decode(tok, ids, n, 0, &out, &out_len, &d) != HX_OK ||
        !valid_utf8((const unsigned char *)out, out_len)) {
        abort();
    }
    if (lossless && valid_utf8((const unsigned char *)text, len)) {
        struct strbuf want;
        strbuf_init(&want);
        if (lossless == 2) {
            want = normalized(tok, text, len);
        } else {
            strbuf_add(&want, text, len);
        }
        if (out_len != want.len || memcmp(out, want.buf, want.len) != 0) {
            abort();
        }
        strbuf_release(&want);
    }
    struct eng_tok_stream *st = NULL;
    if (eng_tok_stream_new(tok, 0, &st, &d) != HX_OK) {
        abort();
    }
    struct strbuf sb;
    strbuf_init(&sb);
    for (size_t i = 0; i < n; i++) {
        const char *piece = NULL;
        size_t pl = 0;
        if (eng_tok_stream_feed(st, ids[i], &piece, &pl) != HX_OK ||
            !valid_utf8((const unsigned char *)piece, pl)) {
            abort();
        }
        strbuf_add(&sb, piece, pl);
    }
    const char *piece = NULL;
    size_t pl = 0;
    eng_tok_stream_flush(st, &piece, &pl);
    strbuf_add(&sb, piece, pl);
    if (sb.len != out_len || memcmp(sb.buf, out, out_len) != 0) {
        abort();
    }
    strbuf_release(&sb);
    eng_tok_stream_free(st);
    xfree(out);
    xfree(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    if (size == 0) {
        return 0;
    }
    unsigned mode = data[0] % 4;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (mode == 3) {
        struct hx_diag d = {0};
        struct eng_tok *tok = NULL;
        if (eng_tok_load_mem(text, len, "fuzz", &tok, &d) == HX_OK) {
            int32_t *ids = NULL;
            size_t n = 0;
            if (eng_tok_encode(tok, "Hello, world! 123", 17, ENG_TOK_ADD_BOS, &ids, &n, &d) ==
                HX_OK) {
                char *out = NULL;
                size_t out_len = 0;
                if (eng_tok_decode(tok, ids, n, 0, &out, &out_len, &d) == HX_OK) {
                    xfree(out);
                }
                xfree(ids);
            }
            eng_tok_free(tok);
        }
        return 0;
    }
    unsigned flags = mode == 1 ? ENG_TOK_NO_SPECIAL : mode == 2 ? ENG_TOK_ADD_BOS : 0;
    check_tok(g_bytelevel, text, len, flags, mode != 2);
    check_tok(g_spm, text, len, flags, 0);
    /* Each piece between raw-matched added tokens (all of which contain '<') is normalized on
     * its own, as in Hugging Face: decode == NFC(x) only when none can match. */
    int plain = memchr(text, '<', len) == NULL && memchr(text, '>', len) == NULL;
    check_tok(g_nfc, text, len, flags, mode != 2 && plain ? 2 : 0);
    check_forms(text, len);
    return 0;
}
