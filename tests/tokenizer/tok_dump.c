/*
 * tok_dump.c - test-only driver for tests/integration/t0200-tokenizer-llama2.sh: runs helix's
 * tokenizer over a JSON array of strings so scripts can compare it with other implementations.
 *
 *   tok_dump encode TOKENIZER.json STRINGS.json [--bos]
 *       one line per string: the ids (space-separated), a TAB, then the JSON-quoted
 *       eng_tok_decode(ids, ENG_TOK_SKIP_SPECIAL), then a TAB and the JSON-quoted text the
 *       streaming decoder produced (feeding ids one by one), for checking both decoders.
 *   tok_dump split gpt2|llama3 STRINGS.json
 *       one line per string: a JSON array of the pre-tokenizer's pieces.
 *
 * Built by the test script: cc -std=c11 -Isrc tests/tokenizer/tok_dump.c build/.../libhelix.a ...
 * Exit status: 0, or 1 with a message on stderr.
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "engine/tok_int.h"
#include "engine/tokenizer.h"

static void print_json_string(const char *s, size_t n)
{
    char *z = xstrndup(s, n);
    cJSON *j = cJSON_CreateString(z);
    char *p = cJSON_PrintUnformatted(j);
    fputs(p, stdout);
    cJSON_free(p);
    cJSON_Delete(j);
    xfree(z);
}

static int do_encode(const char *tok_path, const cJSON *arr, unsigned flags)
{
    struct hx_diag diag = {0};
    struct eng_tok *tok = NULL;
    if (eng_tok_load(tok_path, &tok, &diag) != HX_OK) {
        fprintf(stderr, "tok_dump: %s\n", diag.msg);
        return 1;
    }
    struct eng_tok_stream *st = NULL;
    if (eng_tok_stream_new(tok, ENG_TOK_SKIP_SPECIAL, &st, &diag) != HX_OK) {
        fprintf(stderr, "tok_dump: %s\n", diag.msg);
        eng_tok_free(tok);
        return 1;
    }
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, arr)
    {
        const char *s = cJSON_IsString(e) ? e->valuestring : "";
        int32_t *ids = NULL;
        size_t n = 0;
        if (eng_tok_encode(tok, s, strlen(s), flags, &ids, &n, &diag) != HX_OK) {
            fprintf(stderr, "tok_dump: encode: %s\n", diag.msg);
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            printf(i ? " %ld" : "%ld", (long)ids[i]);
        }
        char *text = NULL;
        size_t len = 0;
        if (eng_tok_decode(tok, ids, n, ENG_TOK_SKIP_SPECIAL, &text, &len, &diag) != HX_OK) {
            fprintf(stderr, "tok_dump: decode: %s\n", diag.msg);
            return 1;
        }
        putchar('\t');
        print_json_string(text, len);
        struct strbuf sb;
        strbuf_init(&sb);
        for (size_t i = 0; i < n; i++) {
            const char *piece = NULL;
            size_t pl = 0;
            eng_tok_stream_feed(st, ids[i], &piece, &pl);
            strbuf_add(&sb, piece, pl);
        }
        const char *piece = NULL;
        size_t pl = 0;
        eng_tok_stream_flush(st, &piece, &pl);
        strbuf_add(&sb, piece, pl);
        putchar('\t');
        print_json_string(sb.buf, sb.len);
        putchar('\n');
        strbuf_release(&sb);
        xfree(text);
        xfree(ids);
    }
    eng_tok_stream_free(st);
    eng_tok_free(tok);
    return 0;
}

static int do_split(const char *which, const cJSON *arr)
{
    int llama3 = strcmp(which, "llama3") == 0;
    if (!llama3 && strcmp(which, "gpt2") != 0) {
        fprintf(stderr, "tok_dump: split: unknown pattern %s\n", which);
        return 1;
    }
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, arr)
    {
        const unsigned char *s = (const unsigned char *)(cJSON_IsString(e) ? e->valuestring : "");
        size_t n = strlen((const char *)s);
        putchar('[');
        for (size_t i = 0; i < n;) {
            size_t j = llama3 ? eng_tok_match_llama3(s, n, i) : eng_tok_match_gpt2(s, n, i);
            if (i > 0) {
                putchar(',');
            }
            print_json_string((const char *)s + i, j - i);
            i = j;
        }
        puts("]");
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: tok_dump encode TOKENIZER.json STRINGS.json [--bos]\n"
                        "       tok_dump split gpt2|llama3 STRINGS.json\n");
        return 2;
    }
    struct strbuf sb;
    strbuf_init(&sb);
    if (strbuf_read_file(&sb, argv[3]) != HX_OK) {
        fprintf(stderr, "tok_dump: cannot read %s\n", argv[3]);
        return 1;
    }
    cJSON *arr = cJSON_ParseWithLength(sb.buf, sb.len);
    strbuf_release(&sb);
    if (!cJSON_IsArray(arr)) {
        fprintf(stderr, "tok_dump: %s: not a JSON array\n", argv[3]);
        return 1;
    }
    int rc = 2;
    if (strcmp(argv[1], "encode") == 0) {
        unsigned flags = argc > 4 && strcmp(argv[4], "--bos") == 0 ? ENG_TOK_ADD_BOS : 0;
        rc = do_encode(argv[2], arr, flags);
    } else if (strcmp(argv[1], "split") == 0) {
        rc = do_split(argv[2], arr);
    } else {
        fprintf(stderr, "tok_dump: unknown mode %s\n", argv[1]);
    }
    cJSON_Delete(arr);
    return rc;
}
