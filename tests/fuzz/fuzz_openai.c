/*
 * fuzz_openai.c - libFuzzer target for the OpenAI request parser (src/api/api.h) and the
 * generation pipeline behind it (stop sequences, max_tokens, UTF-8 repair, SSE/JSON output).
 *
 * Input: byte 0 bit 0 picks completions or chat; the rest is the request body. A body that
 * parses is then "generated" from its own prompt (split into pieces of 1..4 bytes, so UTF-8
 * sequences and stop strings straddle pieces) with its stop strings and max_tokens.
 * Invariants (abort if broken): no crash or leak; a failed parse fills a 400 error with a
 * message; every emitted text is valid UTF-8 (repairing it again changes nothing); a stop
 * string never appears in the output; at most max_tokens pieces are consumed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/api_int.h"
#include "base/status.h"
#include "base/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_utf8(const struct strbuf *s)
{
    struct strbuf again;
    strbuf_init(&again);
    api_utf8_append_repaired(&again, s->buf, s->len);
    if (again.len != s->len || memcmp(again.buf, s->buf, s->len) != 0) {
        abort();
    }
    strbuf_release(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    enum api_kind kind = (data[0] & 1) ? API_KIND_CHAT : API_KIND_COMPLETION;
    struct api_request r;
    struct api_error e;
    int rc = api_request_parse(kind, (const char *)data + 1, size - 1, &r, &e);
    if (rc != HX_OK) {
        if (e.status != 400 || e.message[0] == '\0') {
            abort();
        }
        return 0;
    }
    if (kind == API_KIND_CHAT) {
        struct strbuf sb;
        strbuf_init(&sb);
        api_chat_render_default(r.messages, r.n_messages, &sb, NULL);
        r.prompt = strbuf_detach(&sb, NULL);
    }
    if (r.max_tokens == 0 || r.max_tokens > 64) {
        r.max_tokens = 64;
    }
    struct api_gen g;
    api_gen_init(&g, &r, 1, 0);
    api_gen_sse_open(&g);
    size_t plen = strlen(r.prompt);
    size_t off = 0;
    uint32_t pieces = 0;
    while (off < plen && !g.finished) {
        size_t n = 1 + (off * 7 + plen) % 4;
        if (n > plen - off) {
            n = plen - off;
        }
        api_gen_piece(&g, r.prompt + off, n);
        pieces++;
        off += n;
    }
    api_gen_end(&g, API_FINISH_STOP);
    if (g.completion_tokens > r.max_tokens || g.completion_tokens > pieces) {
        abort();
    }
    if (g.stream) {
        api_gen_sse_close(&g);
        check_utf8(&g.out);
    } else {
        check_utf8(&g.result);
        for (size_t i = 0; i < g.n_stop; i++) {
            /* (a stop string containing U+FFFD may match repaired text: skip those) */
            if (!strstr(g.stop[i], "\xef\xbf\xbd") && strstr(g.result.buf, g.stop[i])) {
                abort();
            }
        }
        struct strbuf js;
        strbuf_init(&js);
        api_gen_response_json(&g, &js);
        strbuf_release(&js);
    }
    api_gen_release(&g);
    api_request_release(&r);
    return 0;
}
