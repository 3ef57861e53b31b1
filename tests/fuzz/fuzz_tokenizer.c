/*
 * fuzz_tokenizer.c - libFuzzer target for the tokenizer (src/engine/tokenizer.h).
 *
 * Input: byte 0 picks the mode, the rest is the payload.
 *  - encode with the bundled byte-level tokenizer (loaded once) and with a small
 *    SentencePiece-style one (byte fallback), with and without special-token matching; decode
 *    and stream-decode the ids. Invariants (abort if broken): ids in range; decode output is
 *    valid UTF-8 and equals the streamed text; byte-level decode(encode(x)) == x for valid UTF-8.
 *  - load the payload as a tokenizer.json (must fail cleanly or load; then encode a string).
 * Run from the repository root (make fuzz), so the bundled model's path resolves.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "engine/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct eng_tok *g_bytelevel;
static struct eng_tok *g_spm;

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
    if (lossless && valid_utf8((const unsigned char *)text, len) &&
        (out_len != len || memcmp(out, text, len) != 0)) {
        abort();
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
    return 0;
}
