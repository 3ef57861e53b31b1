/*
 * tok_dump.c - test-only driver for tests/integration/t0200-tokenizer.sh: runs helix's
 * tokenizer over a JSON array of inputs so compare.py / split_check.py can check it against
 * Hugging Face tokenizers and the real regexes. Output: one JSON value per line, per input.
 *
 *   tok_dump encode TOKENIZER.json STRINGS.json
 *       {"ids": encode(s, 0), "ids_special": encode(s, ENG_TOK_ADD_BOS),
 *        "ids_nosplit": encode(s, ENG_TOK_NO_SPECIAL), then for ids_special:
 *        "decode": decode(SKIP_SPECIAL), "decode_keep": decode(0),
 *        "stream": [the text of each eng_tok_stream_feed (SKIP_SPECIAL), ..., the flush]}
 *       or {"error": "..."} if an encode/decode call failed.
 *   tok_dump decode TOKENIZER.json IDLISTS.json
 *       per JSON array of ids: {"decode": ..., "decode_keep": ..., "stream": [...]} as above.
 *   tok_dump split gpt2|llama3|qwen2 STRINGS.json
 *       a JSON array of the pre-tokenizer's pieces.
 *
 * Built by the test script: cc -std=c11 -Isrc tests/tokenizer/tok_dump.c build/.../libhelix.a ...
 * Exit status: 0, or 1 with a message on stderr (unreadable input, tokenizer load failure).
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "engine/tok_int.h"
#include "engine/tokenizer.h"

static void print_line(cJSON *j)
{
    char *p = cJSON_PrintUnformatted(j);
    puts(p);
    cJSON_free(p);
    cJSON_Delete(j);
}

static cJSON *json_str(const char *s, size_t n)
{
    char *z = xstrndup(s, n);
    cJSON *j = cJSON_CreateString(z);
    xfree(z);
    return j;
}

static cJSON *json_ids(const int32_t *ids, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)ids[i]));
    }
    return a;
}

static int error_line(const char *what, const struct hx_diag *diag)
{
    cJSON *o = cJSON_CreateObject();
    char msg[600];
    snprintf(msg, sizeof(msg), "%s: %s", what, diag->msg);
    cJSON_AddStringToObject(o, "error", msg);
    print_line(o);
    return 0;
}

/* Add "decode", "decode_keep" and "stream" for ids to o; 0 or -1 after an error line. */
static int add_decodes(cJSON *o, const struct eng_tok *tok, struct eng_tok_stream *st,
                       const int32_t *ids, size_t n)
{
    struct hx_diag diag = {0};
    static const char *const keys[2] = {"decode", "decode_keep"};
    for (int k = 0; k < 2; k++) {
        char *text = NULL;
        size_t len = 0;
        if (eng_tok_decode(tok, ids, n, k == 0 ? ENG_TOK_SKIP_SPECIAL : 0, &text, &len, &diag) !=
            HX_OK) {
            cJSON_Delete(o);
            error_line("decode", &diag);
            return -1;
        }
        cJSON_AddItemToObject(o, keys[k], json_str(text, len));
        xfree(text);
    }
    cJSON *chunks = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        const char *piece = NULL;
        size_t pl = 0;
        if (eng_tok_stream_feed(st, ids[i], &piece, &pl) != HX_OK) {
            pl = 0;
            piece = "<ERANGE>";
            pl = strlen(piece);
        }
        cJSON_AddItemToArray(chunks, json_str(piece, pl));
    }
    const char *piece = NULL;
    size_t pl = 0;
    eng_tok_stream_flush(st, &piece, &pl);
    cJSON_AddItemToArray(chunks, json_str(piece, pl));
    cJSON_AddItemToObject(o, "stream", chunks);
    return 0;
}

static int do_encode(const struct eng_tok *tok, struct eng_tok_stream *st, const cJSON *arr)
{
    static const char *const keys[3] = {"ids", "ids_special", "ids_nosplit"};
    static const unsigned flags[3] = {0, ENG_TOK_ADD_BOS, ENG_TOK_NO_SPECIAL};
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, arr)
    {
        const char *s = cJSON_IsString(e) ? e->valuestring : "";
        cJSON *o = cJSON_CreateObject();
        int32_t *special = NULL;
        size_t n_special = 0;
        int failed = 0;
        for (int k = 0; k < 3 && !failed; k++) {
            struct hx_diag diag = {0};
            int32_t *ids = NULL;
            size_t n = 0;
            if (eng_tok_encode(tok, s, strlen(s), flags[k], &ids, &n, &diag) != HX_OK) {
                cJSON_Delete(o);
                error_line("encode", &diag);
                failed = 1;
                break;
            }
            cJSON_AddItemToObject(o, keys[k], json_ids(ids, n));
            if (k == 1) {
                special = ids;
                n_special = n;
            } else {
                xfree(ids);
            }
        }
        if (!failed && add_decodes(o, tok, st, special, n_special) == 0) {
            print_line(o);
        }
        xfree(special);
    }
    return 0;
}

static int do_decode(const struct eng_tok *tok, struct eng_tok_stream *st, const cJSON *arr)
{
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, arr)
    {
        size_t n = (size_t)cJSON_GetArraySize(e);
        int32_t *ids = xcalloc(n ? n : 1, sizeof(int32_t));
        size_t k = 0;
        const cJSON *v = NULL;
        cJSON_ArrayForEach(v, e)
        {
            ids[k++] = cJSON_IsNumber(v) ? (int32_t)v->valuedouble : -1;
        }
        cJSON *o = cJSON_CreateObject();
        if (add_decodes(o, tok, st, ids, n) == 0) {
            print_line(o);
        }
        xfree(ids);
    }
    return 0;
}

static int do_split(const char *which, const cJSON *arr)
{
    size_t (*match)(const unsigned char *, size_t, size_t) = NULL;
    if (strcmp(which, "gpt2") == 0) {
        match = eng_tok_match_gpt2;
    } else if (strcmp(which, "llama3") == 0) {
        match = eng_tok_match_llama3;
    } else if (strcmp(which, "qwen2") == 0) {
        match = eng_tok_match_qwen2;
    } else {
        fprintf(stderr, "tok_dump: split: unknown pattern %s\n", which);
        return 1;
    }
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, arr)
    {
        const unsigned char *s = (const unsigned char *)(cJSON_IsString(e) ? e->valuestring : "");
        size_t n = strlen((const char *)s);
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < n;) {
            size_t j = match(s, n, i);
            cJSON_AddItemToArray(a, json_str((const char *)s + i, j - i));
            i = j;
        }
        print_line(a);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: tok_dump encode|decode TOKENIZER.json INPUTS.json\n"
                        "       tok_dump split gpt2|llama3|qwen2 STRINGS.json\n");
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
    if (strcmp(argv[1], "split") == 0) {
        rc = do_split(argv[2], arr);
    } else if (strcmp(argv[1], "encode") == 0 || strcmp(argv[1], "decode") == 0) {
        struct hx_diag diag = {0};
        struct eng_tok *tok = NULL;
        struct eng_tok_stream *st = NULL;
        if (eng_tok_load(argv[2], &tok, &diag) != HX_OK ||
            eng_tok_stream_new(tok, ENG_TOK_SKIP_SPECIAL, &st, &diag) != HX_OK) {
            fprintf(stderr, "tok_dump: %s\n", diag.msg);
            rc = 1;
        } else if (strcmp(argv[1], "encode") == 0) {
            rc = do_encode(tok, st, arr);
        } else {
            rc = do_decode(tok, st, arr);
        }
        eng_tok_stream_free(st);
        eng_tok_free(tok);
    } else {
        fprintf(stderr, "tok_dump: unknown mode %s\n", argv[1]);
    }
    cJSON_Delete(arr);
    return rc;
}
