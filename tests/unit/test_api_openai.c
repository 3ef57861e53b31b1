/*
 * test_api_openai.c - the HTTP-free half of the API: request parsing and validation, the
 * default chat template, UTF-8 repair, and the generation state (stop sequences split across
 * tokens, max_tokens, errors, OpenAI JSON shapes).
 */
#include <cJSON.h>
#include <string.h>

#include "api/api.h"
#include "api/api_int.h"
#include "base/alloc.h"
#include "base/strbuf.h"
#include "test.h"

static int parse(enum api_kind kind, const char *body, struct api_request *r, struct api_error *e)
{
    return api_request_parse(kind, body, strlen(body), r, e);
}

TEST(api_parse_completion_all_fields)
{
    struct api_request r;
    struct api_error e;
    const char *body = "{\"model\":\"m\",\"prompt\":\"In the beginning\",\"max_tokens\":7,"
                       "\"temperature\":0.25,\"top_p\":0.5,\"seed\":-1,\"stop\":[\"\\n\",\"END\"],"
                       "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":1,"
                       "\"user\":\"ignored\",\"presence_penalty\":0}";
    ASSERT_OK(parse(API_KIND_COMPLETION, body, &r, &e));
    ASSERT_EQ(r.kind, API_KIND_COMPLETION);
    ASSERT_STR_EQ(r.model, "m");
    ASSERT_STR_EQ(r.prompt, "In the beginning");
    ASSERT_EQ(r.max_tokens, 7);
    ASSERT_DBL_NEAR(r.temperature, 0.25, 0);
    ASSERT_DBL_NEAR(r.top_p, 0.5, 0);
    ASSERT_EQ(r.has_seed, 1);
    ASSERT(r.seed == UINT64_MAX); /* -1 wraps */
    ASSERT_EQ(r.n_stop, 2);
    ASSERT_STR_EQ(r.stop[0], "\n");
    ASSERT_STR_EQ(r.stop[1], "END");
    ASSERT_EQ(r.stream, 1);
    ASSERT_EQ(r.include_usage, 1);
    api_request_release(&r);
    ASSERT(r.model == NULL);

    /* Defaults, a single-string stop, a one-element prompt array, nulls as "not given". */
    ASSERT_OK(parse(API_KIND_COMPLETION,
                    "{\"model\":\"m\",\"prompt\":[\"p\"],\"stop\":\"x\",\"max_tokens\":null,"
                    "\"temperature\":null}",
                    &r, &e));
    ASSERT_STR_EQ(r.prompt, "p");
    ASSERT_EQ(r.max_tokens, 0);
    ASSERT_DBL_NEAR(r.temperature, 1.0, 0);
    ASSERT_DBL_NEAR(r.top_p, 1.0, 0);
    ASSERT_EQ(r.has_seed, 0);
    ASSERT_EQ(r.n_stop, 1);
    ASSERT_EQ(r.stream, 0);
    api_request_release(&r);
    api_request_release(NULL);
}

TEST(api_parse_chat_messages_and_template)
{
    struct api_request r;
    struct api_error e;
    ASSERT_OK(
        parse(API_KIND_CHAT,
              "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
              "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Who \"},"
              "{\"type\":\"text\",\"text\":\"begat?\"}]},{\"role\":\"assistant\","
              "\"content\":null}],\"max_completion_tokens\":9}",
              &r, &e));
    ASSERT_EQ(r.n_messages, 3);
    ASSERT_STR_EQ(r.messages[1].role, "user");
    ASSERT_STR_EQ(r.messages[1].content, "Who begat?");
    ASSERT_STR_EQ(r.messages[2].content, "");
    ASSERT_EQ(r.max_tokens, 9);
    ASSERT(r.prompt == NULL);
    struct strbuf sb;
    strbuf_init(&sb);
    ASSERT_OK(api_chat_render_default(r.messages, r.n_messages, &sb, NULL));
    ASSERT_STR_EQ(sb.buf, "System: Be brief.\nUser: Who begat?\nAssistant: \nAssistant:");
    strbuf_release(&sb);
    api_request_release(&r);
}

struct bad_case {
    enum api_kind kind;
    const char *body;
    int rc;
    const char *param; /* "" = null */
    const char *needle;
};

TEST(api_parse_rejects_bad_requests)
{
    static const struct bad_case cases[] = {
        {API_KIND_COMPLETION, "", HX_EPARSE, "", "empty"},
        {API_KIND_COMPLETION, "{", HX_EPARSE, "", "could not parse"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\"} x", HX_EPARSE, "", "parse"},
        {API_KIND_COMPLETION, "[1,2]", HX_EPARSE, "", "must be a JSON object, not an array"},
        {API_KIND_COMPLETION, "{\"prompt\":\"p\"}", HX_EINVAL, "model", "model parameter"},
        {API_KIND_COMPLETION, "{\"model\":5,\"prompt\":\"p\"}", HX_EINVAL, "model", "string"},
        {API_KIND_COMPLETION, "{\"model\":\"m\"}", HX_EINVAL, "prompt", "required"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":5}", HX_EINVAL, "prompt", "a number"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":[]}", HX_EINVAL, "prompt", "empty"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", HX_ENOTSUP, "prompt",
         "only one prompt"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":[1,2]}", HX_ENOTSUP, "prompt",
         "token-id"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"max_tokens\":\"5\"}", HX_EINVAL,
         "max_tokens", "integer"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"max_tokens\":0}", HX_EINVAL,
         "max_tokens", ">= 1"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"max_tokens\":1.5}", HX_EINVAL,
         "max_tokens", "integer"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"temperature\":2.5}", HX_EINVAL,
         "temperature", "between 0 and 2"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"temperature\":\"hot\"}",
         HX_EINVAL, "temperature", "number"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"top_p\":-0.1}", HX_EINVAL,
         "top_p", "between 0 and 1"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"seed\":1.5}", HX_EINVAL, "seed",
         "integer"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"seed\":1e300}", HX_EINVAL,
         "seed", "integer"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"stop\":7}", HX_EINVAL, "stop",
         "string"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"stop\":\"\"}", HX_EINVAL, "stop",
         "1 to"},
        {API_KIND_COMPLETION,
         "{\"model\":\"m\",\"prompt\":\"p\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", HX_EINVAL,
         "stop", "at most 4"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"stop\":[\"a\",3]}", HX_EINVAL,
         "stop", "each"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"stream\":1}", HX_EINVAL,
         "stream", "boolean"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"stream_options\":true}",
         HX_EINVAL, "stream_options", "object"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"n\":2}", HX_ENOTSUP, "n", "n=1"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"n\":0}", HX_EINVAL, "n", ">= 1"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"best_of\":3}", HX_ENOTSUP,
         "best_of", "best_of"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"echo\":true}", HX_ENOTSUP,
         "echo", "echo"},
        {API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"logprobs\":2}", HX_ENOTSUP,
         "logprobs", "logprobs"},
        {API_KIND_CHAT, "{\"model\":\"m\"}", HX_EINVAL, "messages", "required"},
        {API_KIND_CHAT, "{\"model\":\"m\",\"messages\":{}}", HX_EINVAL, "messages", "array"},
        {API_KIND_CHAT, "{\"model\":\"m\",\"messages\":[]}", HX_EINVAL, "messages", "at least"},
        {API_KIND_CHAT, "{\"model\":\"m\",\"messages\":[\"hi\"]}", HX_EINVAL, "messages",
         "messages[0] must be an object"},
        {API_KIND_CHAT, "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", HX_EINVAL,
         "messages", "role"},
        {API_KIND_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"god\",\"content\":\"x\"}]}",
         HX_EINVAL, "messages", "\"god\""},
        {API_KIND_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", HX_EINVAL,
         "messages", "content is required"},
        {API_KIND_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":3}]}",
         HX_EINVAL, "messages", "content must be"},
        {API_KIND_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}"
         "]}",
         HX_ENOTSUP, "messages", "image_url"},
        {API_KIND_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{}]}",
         HX_ENOTSUP, "tools", "tools"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *c = &cases[i];
        struct api_request r;
        struct api_error e;
        int rc = parse(c->kind, c->body, &r, &e);
        ASSERT_MSG(rc == c->rc, "case %zu (%s): rc %s", i, c->body, hx_errname(rc));
        ASSERT_EQ(e.status, 400);
        ASSERT_STR_EQ(e.type, "invalid_request_error");
        ASSERT_MSG(strcmp(e.param, c->param) == 0, "case %zu: param \"%s\"", i, e.param);
        ASSERT_CONTAINS(e.message, c->needle);
        ASSERT(r.model == NULL && r.prompt == NULL && r.messages == NULL && r.n_stop == 0);
    }
    /* A NUL byte inside the body. */
    struct api_request r;
    struct api_error e;
    const char nul[] = "{\"model\":\"m\",\"prompt\":\"a\0b\"}";
    ASSERT_ERR(api_request_parse(API_KIND_COMPLETION, nul, sizeof(nul) - 1, &r, &e), HX_EPARSE);
    ASSERT_CONTAINS(e.message, "NUL");
    /* Invalid UTF-8 anywhere in the body (JSON must be UTF-8): rejected, position named. */
    ASSERT_ERR(parse(API_KIND_COMPLETION, "{\"model\":\"m\xff\",\"prompt\":\"p\"}", &r, &e),
               HX_EPARSE);
    ASSERT_CONTAINS(e.message, "not valid UTF-8 (byte 11)");
    ASSERT_ERR(parse(API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"\xed\xa0\x80\"}", &r, &e),
               HX_EPARSE);
    /* An error message that quotes request text cut mid-character is repaired in JSON. */
    ASSERT_ERR(
        parse(API_KIND_CHAT,
              "{\"model\":\"m\",\"messages\":[{\"role\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
              "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
              "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\",\"content\":\"x\"}]}",
              &r, &e),
        HX_EINVAL);
    struct strbuf js;
    strbuf_init(&js);
    api_error_json(&e, &js);
    struct strbuf fixed;
    strbuf_init(&fixed);
    api_utf8_append_repaired(&fixed, js.buf, js.len);
    ASSERT_STR_EQ(fixed.buf, js.buf); /* the JSON is valid UTF-8 */
    ASSERT(cJSON_Parse(js.buf) != NULL);
    strbuf_release(&js);
    strbuf_release(&fixed);
    /* A body that is not NUL-terminated is read only up to len. */
    const char *unterminated = "{\"model\":\"m\",\"prompt\":\"p\"}GARBAGE";
    ASSERT_OK(api_request_parse(API_KIND_COMPLETION, unterminated, 26, &r, &e));
    api_request_release(&r);
}

TEST(api_error_json_shape)
{
    struct api_error e;
    api_error_set(&e, 400, "invalid_request_error", "max_tokens", "", "bad \"quote\"");
    struct strbuf sb;
    strbuf_init(&sb);
    api_error_json(&e, &sb);
    cJSON *j = cJSON_Parse(sb.buf);
    ASSERT(j != NULL);
    cJSON *err = cJSON_GetObjectItem(j, "error");
    ASSERT_STR_EQ(cJSON_GetObjectItem(err, "message")->valuestring, "bad \"quote\"");
    ASSERT_STR_EQ(cJSON_GetObjectItem(err, "type")->valuestring, "invalid_request_error");
    ASSERT_STR_EQ(cJSON_GetObjectItem(err, "param")->valuestring, "max_tokens");
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(err, "code")));
    cJSON_Delete(j);
    strbuf_release(&sb);
    api_error_from_code(&e, HX_EFULL, "busy");
    ASSERT_EQ(e.status, 503);
    ASSERT_STR_EQ(e.code, "overloaded");
    api_error_from_code(&e, HX_ENOTFOUND, "x");
    ASSERT_EQ(e.status, 404);
    api_error_from_code(&e, HX_EDEVICE, "x");
    ASSERT_EQ(e.status, 500);
}

TEST(api_utf8_tail_and_repair)
{
    ASSERT_EQ(api_utf8_incomplete_tail("ab\xe2\x82", 4), 2);
    ASSERT_EQ(api_utf8_incomplete_tail("ab\xe2\x82\xac", 5), 0);
    ASSERT_EQ(api_utf8_incomplete_tail("\xf0\x9f\x98", 3), 3);
    ASSERT_EQ(api_utf8_incomplete_tail("\xc3", 1), 1);
    ASSERT_EQ(api_utf8_incomplete_tail("\xff", 1), 0);     /* invalid, not incomplete */
    ASSERT_EQ(api_utf8_incomplete_tail("\xe2\x28", 2), 0); /* broken already */
    ASSERT_EQ(api_utf8_incomplete_tail("", 0), 0);
    struct strbuf sb;
    strbuf_init(&sb);
    api_utf8_append_repaired(&sb, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10);
    ASSERT_STR_EQ(sb.buf, "caf\xc3\xa9 \xf0\x9f\x98\x80"); /* valid text unchanged */
    strbuf_reset(&sb);
    api_utf8_append_repaired(&sb, "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xff", 13);
    /* overlong (2), surrogate (3), > U+10FFFF (4), 0xff (1): one U+FFFD per byte */
    ASSERT_STR_EQ(sb.buf, "\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
                          "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd");
    strbuf_release(&sb);
}

static void gen_with(struct api_gen *g, int stream, uint32_t max_tokens, const char *stop0,
                     const char *stop1)
{
    struct api_request r;
    memset(&r, 0, sizeof(r));
    r.kind = API_KIND_COMPLETION;
    r.model = (char *)"m";
    r.max_tokens = max_tokens;
    r.stream = stream;
    char *stops[2] = {(char *)stop0, (char *)stop1};
    for (int i = 0; i < 2; i++) {
        if (stops[i]) {
            r.stop[r.n_stop++] = stops[i];
        }
    }
    api_gen_init(g, &r, 0xabcull, 1700000000);
}

TEST(api_gen_stop_sequences_split_across_tokens)
{
    struct api_gen g;
    gen_with(&g, 0, 100, "three", NULL);
    ASSERT_STR_EQ(g.id, "cmpl-0000000000000abc");
    ASSERT_EQ(api_gen_piece(&g, "one", 3), 0);
    ASSERT_EQ(api_gen_piece(&g, " two", 4), 0);
    ASSERT_EQ(api_gen_piece(&g, " th", 3), 0);
    ASSERT_STR_EQ(g.result.buf, "one two "); /* "th" held back: it may start "three" */
    ASSERT_EQ(api_gen_piece(&g, "ree four", 8), 1);
    ASSERT_STR_EQ(g.result.buf, "one two ");
    ASSERT_EQ(g.finish, API_FINISH_STOP);
    ASSERT_EQ(g.completion_tokens, 4);
    ASSERT_EQ(api_gen_piece(&g, "more", 4), 0); /* ignored once finished */
    ASSERT_EQ(g.completion_tokens, 4);
    api_gen_release(&g);

    /* A held prefix that turns out not to match is released. */
    gen_with(&g, 0, 100, "three", NULL);
    api_gen_piece(&g, "th", 2);
    ASSERT_STR_EQ(g.result.buf, "");
    api_gen_piece(&g, "en", 2);
    ASSERT_STR_EQ(g.result.buf, "then");
    api_gen_end(&g, API_FINISH_STOP);
    ASSERT_STR_EQ(g.result.buf, "then");
    api_gen_release(&g);

    /* Two stop sequences: the earliest match wins even if found by the later one. */
    gen_with(&g, 0, 100, "cd", "b");
    ASSERT_EQ(api_gen_piece(&g, "abcd", 4), 1);
    ASSERT_STR_EQ(g.result.buf, "a");
    api_gen_release(&g);

    /* Held text is flushed when the backend ends. */
    gen_with(&g, 0, 100, "three", NULL);
    api_gen_piece(&g, "x th", 4);
    ASSERT_STR_EQ(g.result.buf, "x ");
    api_gen_end(&g, API_FINISH_LENGTH);
    ASSERT_STR_EQ(g.result.buf, "x th");
    ASSERT_EQ(g.finish, API_FINISH_LENGTH);
    api_gen_release(&g);
}

TEST(api_gen_max_tokens_and_json)
{
    struct api_gen g;
    gen_with(&g, 0, 3, NULL, NULL);
    ASSERT_EQ(api_gen_piece(&g, "a", 1), 0);
    ASSERT_EQ(api_gen_piece(&g, "b", 1), 0);
    ASSERT_EQ(api_gen_piece(&g, "c\xc3", 2), 1); /* limit reached: flush, repaired */
    ASSERT_EQ(g.finish, API_FINISH_LENGTH);
    g.prompt_tokens = 11;
    struct strbuf sb;
    strbuf_init(&sb);
    api_gen_response_json(&g, &sb);
    cJSON *j = cJSON_Parse(sb.buf);
    ASSERT(j != NULL);
    ASSERT_STR_EQ(cJSON_GetObjectItem(j, "object")->valuestring, "text_completion");
    ASSERT_EQ(cJSON_GetObjectItem(j, "created")->valuedouble, 1700000000);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ASSERT_STR_EQ(cJSON_GetObjectItem(c0, "text")->valuestring, "abc\xef\xbf\xbd");
    ASSERT_STR_EQ(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "length");
    cJSON *u = cJSON_GetObjectItem(j, "usage");
    ASSERT_EQ(cJSON_GetObjectItem(u, "prompt_tokens")->valuedouble, 11);
    ASSERT_EQ(cJSON_GetObjectItem(u, "completion_tokens")->valuedouble, 3);
    ASSERT_EQ(cJSON_GetObjectItem(u, "total_tokens")->valuedouble, 14);
    cJSON_Delete(j);
    strbuf_release(&sb);
    api_gen_release(&g);

    /* Streaming: an error after output becomes an error event, then [DONE]. */
    gen_with(&g, 1, 0, NULL, NULL);
    api_gen_sse_open(&g); /* completions: no role chunk */
    ASSERT_EQ(g.out.len, 0);
    api_gen_piece(&g, "hi", 2);
    api_gen_fail(&g, HX_ECLOSED, "worker lost");
    api_gen_sse_close(&g);
    api_gen_sse_close(&g); /* idempotent */
    ASSERT_CONTAINS(g.out.buf, "\"text\":\"hi\"");
    ASSERT_CONTAINS(g.out.buf, "data: {\"error\":{\"message\":\"worker lost\"");
    size_t n = strlen("data: [DONE]\n\n");
    ASSERT(g.out.len >= n && strcmp(g.out.buf + g.out.len - n, "data: [DONE]\n\n") == 0);
    ASSERT(strstr(g.out.buf, "[DONE]") == g.out.buf + g.out.len - n + 6); /* exactly once */
    api_gen_release(&g);
}

TEST(api_parse_out_of_memory_is_an_error)
{
    struct api_request r;
    struct api_error e;
    hx_alloc_fail_nth(1); /* the body copy */
    ASSERT_ERR(parse(API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\"}", &r, &e), HX_ENOMEM);
    hx_alloc_fail_nth(0);
    ASSERT_EQ(e.status, 500);
    ASSERT_CONTAINS(e.message, "out of memory");
    ASSERT(r.model == NULL);
    ASSERT_OK(parse(API_KIND_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\"}", &r, &e));
    api_request_release(&r);
}
