/*
 * test_api_server.c - the OpenAI HTTP server over real HTTP on loopback, with a canned test
 * backend (below, tests only) and a minimal raw-socket HTTP/1.1 client. Covers completions,
 * chat, SSE chunk format and [DONE], usage counts, stop sequences and UTF-8 repair end to end,
 * every error status, API keys, body limits, client disconnects (backend cancel), shutdown
 * with open streams, metrics, and that malformed requests never disturb a concurrent good one.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <cJSON.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "test.h"

/* ---- the test backend ------------------------------------------------------------------ */

static const char *const pieces[] = {"Hello", ",", " world", "!", " In", " the", " beginning", "."};
#define N_PIECES 8

struct tb {
    pthread_mutex_t mu;
    pthread_t threads[64];
    int n_threads;
    atomic_int submits;
    atomic_int cancels;
    atomic_int hang_ended;
    char last_prompt[512];
    uint32_t last_max_tokens;
};

struct job {
    struct api_stream *s;
    char prompt[512];
    uint32_t max_tokens;
    struct tb *tb;
};

static uint32_t count_words(const char *s)
{
    uint32_t n = 0;
    int in = 0;
    for (; *s; s++) {
        int sp = isspace((unsigned char)*s);
        n += (!sp && !in);
        in = !sp;
    }
    return n;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *producer(void *arg)
{
    struct job *j = arg;
    struct api_stream *s = j->s;
    api_stream_set_prompt_tokens(s, count_words(j->prompt));
    if (strstr(j->prompt, "FAILFIRST")) {
        api_stream_fail(s, HX_ECLOSED, "no route covers all layers");
    } else if (strstr(j->prompt, "FAIL")) {
        api_stream_push(s, "Hello", 5);
        sleep_ms(20);
        api_stream_fail(s, HX_EDEVICE, "worker w2 died");
    } else if (strstr(j->prompt, "UTF8")) {
        const char *u[] = {"caf", "\xc3", "\xa9", " ok", "\xff", "!"};
        for (int i = 0; i < 6; i++) {
            api_stream_push(s, u[i], strlen(u[i]));
        }
        api_stream_finish(s, API_FINISH_STOP);
    } else if (strstr(j->prompt, "STOPTEST")) {
        const char *u[] = {"one", " two", " th", "ree", " four"};
        for (int i = 0; i < 5; i++) {
            if (api_stream_push(s, u[i], strlen(u[i])) != HX_OK) {
                break;
            }
            sleep_ms(5);
        }
        api_stream_finish(s, API_FINISH_STOP);
    } else if (strstr(j->prompt, "PAUSE")) {
        api_stream_push(s, "a", 1);
        sleep_ms(300);
        api_stream_push(s, "b", 1);
        api_stream_finish(s, API_FINISH_STOP);
    } else if (strstr(j->prompt, "HANG")) {
        api_stream_push(s, "x", 1);
        int64_t end = hx_clock_now_us() + 10 * 1000000;
        while (!api_stream_cancelled(s) && hx_clock_now_us() < end) {
            sleep_ms(5);
        }
        atomic_fetch_add(&j->tb->hang_ended, 1);
    } else {
        int slow = strstr(j->prompt, "VERYSLOW") ? 200 : strstr(j->prompt, "SLOW") ? 30 : 0;
        uint32_t n = j->max_tokens < N_PIECES ? j->max_tokens : N_PIECES;
        for (uint32_t i = 0; i < n; i++) {
            if (slow) {
                sleep_ms(slow);
            }
            if (api_stream_push(s, pieces[i], strlen(pieces[i])) != HX_OK) {
                break;
            }
        }
        api_stream_finish(s, n == j->max_tokens ? API_FINISH_LENGTH : API_FINISH_STOP);
    }
    api_stream_unref(s);
    free(j);
    return NULL;
}

static int tb_submit(void *ctx, const struct api_request *req, struct api_stream *s,
                     struct hx_diag *d)
{
    struct tb *tb = ctx;
    atomic_fetch_add(&tb->submits, 1);
    pthread_mutex_lock(&tb->mu);
    snprintf(tb->last_prompt, sizeof(tb->last_prompt), "%s", req->prompt);
    tb->last_max_tokens = req->max_tokens;
    pthread_mutex_unlock(&tb->mu);
    if (strstr(req->prompt, "BUSY")) {
        return hx_diag_set(d, HX_EFULL, "all workers are busy");
    }
    struct job *j = calloc(1, sizeof(*j));
    j->s = s;
    j->tb = tb;
    snprintf(j->prompt, sizeof(j->prompt), "%s", req->prompt);
    j->max_tokens = req->max_tokens;
    api_stream_ref(s);
    pthread_mutex_lock(&tb->mu);
    if (tb->n_threads == 64 || pthread_create(&tb->threads[tb->n_threads], NULL, producer, j)) {
        pthread_mutex_unlock(&tb->mu);
        api_stream_unref(s);
        free(j);
        return hx_diag_set(d, HX_EFULL, "test backend: too many threads");
    }
    tb->n_threads++;
    pthread_mutex_unlock(&tb->mu);
    return HX_OK;
}

static void tb_cancel(void *ctx, struct api_stream *s)
{
    (void)s;
    struct tb *tb = ctx;
    atomic_fetch_add(&tb->cancels, 1);
}

static void tb_metrics(void *ctx, struct strbuf *out)
{
    struct tb *tb = ctx;
    strbuf_addf(out, "# TYPE helix_test_submits counter\nhelix_test_submits %d\n",
                atomic_load(&tb->submits));
}

static void tb_cluster(void *ctx, struct strbuf *out)
{
    struct tb *tb = ctx;
    strbuf_addf(out, "{\"workers\":[{\"name\":\"w0\"}],\"submits\":%d}", atomic_load(&tb->submits));
}

static char tb_drained[64]; /* the last node tb_drain was asked to drain */

static int tb_drain(void *ctx, const char *node, struct hx_diag *diag)
{
    (void)ctx;
    if (strcmp(node, "nobody") == 0) {
        return hx_diag_set(diag, HX_ENOTFOUND, "no worker named '%s' in the plan", node);
    }
    snprintf(tb_drained, sizeof(tb_drained), "%s", node);
    return 0;
}

static const struct api_backend_ops tb_ops = {.submit = tb_submit,
                                              .cancel = tb_cancel,
                                              .metrics = tb_metrics,
                                              .cluster = tb_cluster,
                                              .drain = tb_drain};

struct fixture {
    struct tb tb;
    struct api_server *srv;
    uint16_t port;
};

/* Disconnects must be noticed without a keep-alive write, so keep-alives are rare by default. */
static unsigned fx_keepalive_ms = 5000;

static void fx_start(struct fixture *f, const char *api_key, size_t max_body)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->tb.mu, NULL);
    struct api_config cfg = {0};
    cfg.model_id = "kjv-llama-6m";
    cfg.api_key = api_key;
    cfg.max_body_bytes = max_body;
    cfg.max_tokens_limit = 1000;
    cfg.keepalive_ms = fx_keepalive_ms;
    cfg.idle_timeout_s = 1; /* generation time must not count (VERYSLOW takes 1.6 s) */
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(api_server_start(&cfg, &tb_ops, &f->tb, &f->srv, &d), &d);
    f->port = api_server_port(f->srv);
    ASSERT(f->port != 0);
}

static void fx_stop(struct fixture *f)
{
    api_server_stop(f->srv);
    for (int i = 0; i < f->tb.n_threads; i++) {
        pthread_join(f->tb.threads[i], NULL);
    }
}

/* ---- a minimal HTTP/1.1 client ---------------------------------------------------------- */

struct resp {
    int status;
    char head[4096];
    struct strbuf body; /* de-chunked */
};

static int connect_port(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return; /* the server may close early (413); reading tells the rest */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, struct strbuf *raw)
{
    char buf[8192];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0) {
            break;
        }
        strbuf_add(raw, buf, (size_t)r);
    }
}

/* Split a raw response into status, head and (de-chunked) body. */
static void parse_resp(const struct strbuf *raw, struct resp *r)
{
    strbuf_init(&r->body);
    r->status = 0;
    r->head[0] = '\0';
    const char *sep = strstr(raw->buf, "\r\n\r\n");
    ASSERT_MSG(sep != NULL, "no end of headers in %zu bytes", raw->len);
    size_t hl = (size_t)(sep - raw->buf);
    snprintf(r->head, sizeof(r->head), "%.*s", (int)hl, raw->buf);
    ASSERT_EQ(sscanf(raw->buf, "HTTP/1.%*d %d", &r->status), 1);
    const char *b = sep + 4;
    size_t bl = raw->len - (size_t)(b - raw->buf);
    if (strcasestr(r->head, "transfer-encoding: chunked")) {
        while (bl) {
            char *end;
            unsigned long n = strtoul(b, &end, 16);
            const char *crlf = strstr(b, "\r\n");
            ASSERT(crlf != NULL);
            b = crlf + 2;
            (void)end;
            if (n == 0) {
                break;
            }
            ASSERT(n + 2 <= (size_t)(raw->buf + raw->len - b));
            strbuf_add(&r->body, b, n);
            b += n + 2;
            bl = raw->len - (size_t)(b - raw->buf);
        }
    } else {
        strbuf_add(&r->body, b, bl);
    }
}

static void http(uint16_t port, const char *method, const char *path, const char *headers,
                 const char *body, struct resp *r)
{
    int fd = connect_port(port);
    struct strbuf req;
    strbuf_init(&req);
    strbuf_addf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path,
                headers ? headers : "");
    if (body) {
        strbuf_addf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                    strlen(body));
    }
    strbuf_adds(&req, "\r\n");
    if (body) {
        strbuf_adds(&req, body);
    }
    send_all(fd, req.buf, req.len);
    struct strbuf raw;
    strbuf_init(&raw);
    read_all(fd, &raw);
    close(fd);
    parse_resp(&raw, r);
    strbuf_release(&raw);
    strbuf_release(&req);
}

static void post(uint16_t port, const char *path, const char *body, struct resp *r)
{
    http(port, "POST", path, NULL, body, r);
}

/* Check an OpenAI error body and return its parsed "error" object's field. */
static void assert_error(const struct resp *r, int status, const char *param, const char *needle)
{
    ASSERT_MSG(r->status == status, "status %d, body %s", r->status, r->body.buf);
    ASSERT(strcasestr(r->head, "content-type: application/json") != NULL);
    cJSON *j = cJSON_Parse(r->body.buf);
    ASSERT_MSG(j != NULL, "not JSON: %s", r->body.buf);
    cJSON *e = cJSON_GetObjectItem(j, "error");
    ASSERT(cJSON_IsObject(e));
    ASSERT(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
    ASSERT(cJSON_IsString(cJSON_GetObjectItem(e, "type")));
    cJSON *p = cJSON_GetObjectItem(e, "param");
    cJSON *c = cJSON_GetObjectItem(e, "code");
    ASSERT(p != NULL && c != NULL);
    if (param) {
        ASSERT_STR_EQ(p->valuestring, param);
    } else {
        ASSERT(cJSON_IsNull(p));
    }
    ASSERT_CONTAINS(cJSON_GetObjectItem(e, "message")->valuestring, needle);
    cJSON_Delete(j);
}

/* SSE: the JSON events in order; *done set if the stream ended with exactly one [DONE]. */
static size_t sse_events(const char *body, cJSON **ev, size_t max, int *done)
{
    size_t n = 0;
    *done = 0;
    const char *p = body;
    while (*p) {
        if (*p == ':') { /* comment (keep-alive) */
            const char *e = strstr(p, "\n\n");
            ASSERT(e != NULL);
            p = e + 2;
            continue;
        }
        ASSERT_MSG(strncmp(p, "data: ", 6) == 0, "bad SSE line at: %.40s", p);
        const char *e = strstr(p, "\n\n");
        ASSERT_MSG(e != NULL, "unterminated event: %.40s", p);
        ASSERT(!*done); /* nothing after [DONE] */
        if (strncmp(p + 6, "[DONE]", 6) == 0 && e == p + 12) {
            *done = 1;
        } else {
            ASSERT(n < max);
            char tmp[8192];
            snprintf(tmp, sizeof(tmp), "%.*s", (int)(e - p - 6), p + 6);
            ev[n] = cJSON_Parse(tmp);
            ASSERT_MSG(ev[n] != NULL, "event is not JSON: %s", tmp);
            n++;
        }
        p = e + 2;
    }
    return n;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    ASSERT_MSG(cJSON_IsNumber(v), "%s is not a number", k);
    return v->valuedouble;
}

static void expected_text(uint32_t n, struct strbuf *out)
{
    for (uint32_t i = 0; i < n && i < N_PIECES; i++) {
        strbuf_adds(out, pieces[i]);
    }
}

/* ---- tests ----------------------------------------------------------------------------- */

TEST(api_server_completion_nonstream)
{
    struct fixture f;
    fx_start(&f, NULL, 0);
    struct resp r;
    const char *prompt = "In the beginning God";
    char body[256];
    snprintf(body, sizeof(body), "{\"model\":\"kjv-llama-6m\",\"prompt\":\"%s\",\"max_tokens\":5}",
             prompt);
    post(f.port, "/v1/completions", body, &r);
    ASSERT_MSG(r.status == 200, "%d %s", r.status, r.body.buf);
    cJSON *j = cJSON_Parse(r.body.buf);
    ASSERT(j != NULL);
    ASSERT_STR_EQ(jstr(j, "object"), "text_completion");
    ASSERT_STR_EQ(jstr(j, "model"), "kjv-llama-6m");
    ASSERT(strncmp(jstr(j, "id"), "cmpl-", 5) == 0);
    ASSERT(jnum(j, "created") > 1.6e9);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    struct strbuf want;
    strbuf_init(&want);
    expected_text(5, &want);
    ASSERT_STR_EQ(jstr(c0, "text"), want.buf);
    ASSERT_EQ(jnum(c0, "index"), 0);
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(c0, "logprobs")));
    ASSERT_STR_EQ(jstr(c0, "finish_reason"), "length");
    cJSON *u = cJSON_GetObjectItem(j, "usage");
    ASSERT_EQ(jnum(u, "prompt_tokens"), count_words(prompt));
    ASSERT_EQ(jnum(u, "completion_tokens"), 5);
    ASSERT_EQ(jnum(u, "total_tokens"), count_words(prompt) + 5);
    cJSON_Delete(j);
    strbuf_release(&want);
    /* The default max_tokens (16) reached the backend; here all 8 pieces end with "stop". */
    post(f.port, "/v1/completions", "{\"model\":\"kjv-llama-6m\",\"prompt\":\"x\"}", &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(f.tb.last_max_tokens, 16);
    ASSERT_CONTAINS(r.body.buf, "\"finish_reason\":\"stop\"");
    fx_stop(&f);
}

TEST(api_server_chat_nonstream)
{
    struct fixture f;
    fx_start(&f, NULL, 0);
    struct resp r;
    post(f.port, "/v1/chat/completions",
         "{\"model\":\"kjv-llama-6m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be "
         "kind.\"},{\"role\":\"user\",\"content\":\"hi there\"}],\"max_tokens\":100}",
         &r);
    ASSERT_MSG(r.status == 200, "%d %s", r.status, r.body.buf);
    /* The backend received the default template's rendering. */
    struct api_message msgs[2] = {{(char *)"system", (char *)"Be kind."},
                                  {(char *)"user", (char *)"hi there"}};
    struct strbuf rendered;
    strbuf_init(&rendered);
    api_chat_render_default(msgs, 2, &rendered, NULL);
    ASSERT_STR_EQ(f.tb.last_prompt, rendered.buf);
    cJSON *j = cJSON_Parse(r.body.buf);
    ASSERT_STR_EQ(jstr(j, "object"), "chat.completion");
    ASSERT(strncmp(jstr(j, "id"), "chatcmpl-", 9) == 0);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *m = cJSON_GetObjectItem(c0, "message");
    ASSERT_STR_EQ(jstr(m, "role"), "assistant");
    struct strbuf want;
    strbuf_init(&want);
    expected_text(N_PIECES, &want);
    ASSERT_STR_EQ(jstr(m, "content"), want.buf);
    ASSERT_STR_EQ(jstr(c0, "finish_reason"), "stop");
    cJSON *u = cJSON_GetObjectItem(j, "usage");
    ASSERT_EQ(jnum(u, "prompt_tokens"), count_words(rendered.buf));
    ASSERT_EQ(jnum(u, "completion_tokens"), N_PIECES);
    cJSON_Delete(j);
    strbuf_release(&want);
    strbuf_release(&rendered);
    fx_stop(&f);
}

TEST(api_server_completion_stream_chunks_usage_done)
{
    struct fixture f;
    fx_start(&f, NULL, 0);
    struct resp r;
    post(f.port, "/v1/completions",
         "{\"model\":\"kjv-llama-6m\",\"prompt\":\"a b c\",\"max_tokens\":6,\"stream\":true,"
         "\"stream_options\":{\"include_usage\":true}}",
         &r);
    ASSERT_EQ(r.status, 200);
    ASSERT(strcasestr(r.head, "content-type: text/event-stream") != NULL);
    cJSON *ev[64];
    int done;
    size_t n = sse_events(r.body.buf, ev, 64, &done);
    ASSERT(done);
    ASSERT(n >= 3); /* >= 1 text chunk, the final chunk, the usage chunk */
    struct strbuf got;
    strbuf_init(&got);
    const char *id = jstr(ev[0], "id");
    for (size_t i = 0; i < n; i++) {
        ASSERT_STR_EQ(jstr(ev[i], "object"), "text_completion");
        ASSERT_STR_EQ(jstr(ev[i], "id"), id);
        ASSERT_STR_EQ(jstr(ev[i], "model"), "kjv-llama-6m");
        cJSON *choices = cJSON_GetObjectItem(ev[i], "choices");
        if (i == n - 1) { /* usage chunk: no choices */
            ASSERT_EQ(cJSON_GetArraySize(choices), 0);
            cJSON *u = cJSON_GetObjectItem(ev[i], "usage");
            ASSERT_EQ(jnum(u, "prompt_tokens"), 3);
            ASSERT_EQ(jnum(u, "completion_tokens"), 6);
            ASSERT_EQ(jnum(u, "total_tokens"), 9);
            continue;
        }
        cJSON *c0 = cJSON_GetArrayItem(choices, 0);
        ASSERT(cJSON_GetObjectItem(ev[i], "usage") == NULL);
        strbuf_adds(&got, jstr(c0, "text"));
        if (i == n - 2) {
            ASSERT_STR_EQ(jstr(c0, "finish_reason"), "length");
            ASSERT_STR_EQ(jstr(c0, "text"), "");
        } else {
            ASSERT(cJSON_IsNull(cJSON_GetObjectItem(c0, "finish_reason")));
        }
    }
    struct strbuf want;
    strbuf_init(&want);
    expected_text(6, &want);
    ASSERT_STR_EQ(got.buf, want.buf);
    for (size_t i = 0; i < n; i++) {
        cJSON_Delete(ev[i]);
    }
    strbuf_release(&got);
    strbuf_release(&want);
    fx_stop(&f);
}

TEST(api_server_chat_stream_role_first_finish_last)
{
    struct fixture f;
    fx_start(&f, NULL, 0);
    struct resp r;
    post(f.port, "/v1/chat/completions",
         "{\"model\":\"kjv-llama-6m\",\"messages\":[{\"role\":\"user\",\"content\":\"SLOW\"}],"
         "\"stream\":true,\"max_tokens\":50}",
         &r);
    ASSERT_EQ(r.status, 200);
    cJSON *ev[64];
    int done;
    size_t n = sse_events(r.body.buf, ev, 64, &done);
    ASSERT(done);
    ASSERT(n >= N_PIECES + 2); /* SLOW: each token arrives separately, plus role and final */
    struct strbuf got;
    strbuf_init(&got);
    for (size_t i = 0; i < n; i++) {
        ASSERT_STR_EQ(jstr(ev[i], "object"), "chat.completion.chunk");
        ASSERT(cJSON_GetObjectItem(ev[i], "usage") == NULL); /* not asked for */
        cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(ev[i], "choices"), 0);
        cJSON *delta = cJSON_GetObjectItem(c0, "delta");
        ASSERT(cJSON_IsObject(delta));
        if (i == 0) {
            ASSERT_STR_EQ(jstr(delta, "role"), "assistant");
            ASSERT_STR_EQ(jstr(delta, "content"), "");
        } else {
            ASSERT(cJSON_GetObjectItem(delta, "role") == NULL);
        }
        if (i == n - 1) {
            ASSERT_EQ(cJSON_GetArraySize(delta), 0); /* {} */
            ASSERT_STR_EQ(jstr(c0, "finish_reason"), "stop");
        } else {
            ASSERT(cJSON_IsNull(cJSON_GetObjectItem(c0, "finish_reason")));
            strbuf_adds(&got, jstr(delta, "content"));
        }
    }
    struct strbuf want;
    strbuf_init(&want);
    expected_text(N_PIECES, &want);
    ASSERT_STR_EQ(got.buf, want.buf);
    for (size_t i = 0; i < n; i++) {
        cJSON_Delete(ev[i]);
    }
    strbuf_release(&got);
    strbuf_release(&want);
    fx_stop(&f);
}

/* Concatenate the text of a completions SSE body. */
static void sse_text(const char *body, struct strbuf *out, const char **finish)
{
    cJSON *ev[64];
    int done;
    size_t n = sse_events(body, ev, 64, &done);
    ASSERT(done);
    static char fin[16];
    fin[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(ev[i], "choices"), 0);
        strbuf_adds(out, jstr(c0, "text"));
        if (jstr(c0, "finish_reason")) {
            snprintf(fin, sizeof(fin), "%s", jstr(c0, "finish_reason"));
        }
        cJSON_Delete(ev[i]);
    }
    *finish = fin;
}

TEST(api_server_stop_sequences_and_utf8_end_to_end)
{
    struct fixture f;
    fx_start(&f, NULL, 0);
    struct resp r;
    post(f.port, "/v1/completions",
         "{\"model\":\"kjv-llama-6m\",\"prompt\":\"STOPTEST\",\"stop\":\"three\"}", &r);
    ASSERT_EQ(r.status, 200);
    cJSON *j = cJSON_Parse(r.body.buf);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ASSERT_STR_EQ(jstr(c0, "text"), "one two ");
    ASSERT_STR_EQ(jstr(c0, "finish_reason"), "stop");
    ASSERT_EQ(jnum(cJSON_GetObjectItem(j, "usage"), "completion_tokens"), 4);
    cJSON_Delete(j);
    /* Streaming: the held-back " th" never shows. */
    post(f.port, "/v1/completions",
         "{\"model\":\"kjv-llama-6m\",\"prompt\":\"STOPTEST\",\"stop\":[\"zz\",\"three\"],"
         "\"stream\":true}",
         &r);
    ASSERT_EQ(r.status, 200);
    struct strbuf t;
    strbuf_init(&t);
    const char *fin;
    sse_text(r.body.buf, &t, &fin);
    ASSERT_STR_EQ(t.buf, "one two ");
    ASSERT_STR_EQ(fin, "stop");
    /* The producer saw its push refused after the match (cancel ran at most once). */
    ASSERT_LE(atomic_load(&f.tb.cancels), 2);
    /* UTF-8 split across tokens is joined; an invalid byte becomes U+FFFD. */
    strbuf_reset(&t);
    post(f.port, "/v1/completions",
         "{\"model\":\"kjv-llama-6m\",\"prompt\":\"UTF8\",\"stream\":true}", &r);
    sse_text(r.body.buf, &t, &fin);
    ASSERT_STR_EQ(t.buf, "caf\xc3\xa9 ok\xef\xbf\xbd!");
    strbuf_release(&t);
    fx_stop(&f);
}

TEST(api_server_error_statuses)
{
    struct fixture f;
    fx_start(&f, NULL, 0);
    struct resp r;
    post(f.port, "/v1/completions", "{\"model\":\"kjv-llama-6m\",\"prompt\":", &r);
    assert_error(&r, 400, NULL, "could not parse");
    post(f.port, "/v1/completions",
         "{\"model\":\"kjv-llama-6m\",\"prompt\":\"p\",\"max_tokens\":\"5\"}", &r);
    assert_error(&r, 400, "max_tokens", "integer");
    post(f.port, "/v1/completions", "{\"model\":\"kjv-llama-6m\"}", &r);
    assert_error(&r, 400, "prompt", "required");
    post(f.port, "/v1/chat/completions", "{\"model\":\"kjv-llama-6m\",\"messages\":[]}", &r);
    assert_error(&r, 400, "messages", "at least one");
    post(f.port, "/v1/completions", "{\"model\":\"kjv-llama-6m\",\"prompt\":\"p\",\"n\":3}", &r);
    assert_error(&r, 400, "n", "n=1");
    post(f.port, "/v1/completions",
         "{\"model\":\"kjv-llama-6m\",\"prompt\":\"p\",\"max_tokens\":1001}", &r);
    assert_error(&r, 400, "max_tokens", "limit of 1000");
    post(f.port, "/v1/completions", "{\"model\":\"gpt-4\",\"prompt\":\"p\"}", &r);
    assert_error(&r, 404, "model", "gpt-4");
    http(f.port, "GET", "/v1/completions", NULL, NULL, &r);
    assert_error(&r, 405, NULL, "GET is not allowed");
    ASSERT(strcasestr(r.head, "allow: POST") != NULL);
    http(f.port, "POST", "/v1/models", NULL, "{}", &r);
    assert_error(&r, 405, NULL, "not allowed");
    http(f.port, "GET", "/v1/nothing", NULL, NULL, &r);
    assert_error(&r, 404, NULL, "Unknown request URL");
    post(f.port, "/v1/completions", "{\"model\":\"kjv-llama-6m\",\"prompt\":\"BUSY\"}", &r);
    assert_error(&r, 503, NULL, "busy");
    ASSERT_CONTAINS(r.body.buf, "\"code\":\"overloaded\"");
    post(f.port, "/v1/completions", "{\"model\":\"kjv-llama-6m\",\"prompt\":\"FAILFIRST\"}", &r);
    assert_error(&r, 503, NULL, "no route");
    ASSERT(strcasestr(r.head, "retry-after: 1") != NULL); /* 503s say when to try again */
    post(f.port, "/v1/completions", "{\"model\":\"kjv-llama-6m\",\"prompt\":\"FAIL\"}", &r);
    assert_error(&r, 500, NULL, "worker w2 died");
    /* Streaming: the error arrives as an event after the partial output, then [DONE]. */
    post(f.port, "/v1/completions",
         "{\"model\":\"kjv-llama-6m\",\"prompt\":\"FAIL\",\"stream\":true}", &r);
    ASSERT_EQ(r.status, 200);
    cJSON *ev[16];
    int done;
    size_t n = sse_events(r.body.buf, ev, 16, &done);
    ASSERT(done);
    ASSERT(n >= 2);
    cJSON *err = cJSON_GetObjectItem(ev[n - 1], "error");
    ASSERT(cJSON_IsObject(err));
    ASSERT_CONTAINS(jstr(err, "message"), "worker w2 died");
    for (size_t i = 0; i < n; i++) {
        cJSON_Delete(ev[i]);
    }
    /* GET routes. */
    http(f.port, "GET", "/v1/models", NULL, NULL, &r);
    ASSERT_EQ(r.status, 200);
    cJSON *j = cJSON_Parse(r.body.buf);
    ASSERT_STR_EQ(jstr(j, "object"), "list");
    cJSON *m0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0);
    ASSERT_STR_EQ(jstr(m0, "id"), "kjv-llama-6m");
    ASSERT_STR_EQ(jstr(m0, "object"), "model");
    cJSON_Delete(j);
    http(f.port, "GET", "/health", NULL, NULL, &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body.buf, "\"status\":\"ok\"");
    fx_stop(&f);
}

TEST(api_server_api_key)
{
    struct fixture f;
    fx_start(&f, "sk-helix-test", 0);
    struct resp r;
    const char *body = "{\"model\":\"kjv-llama-6m\",\"prompt\":\"p\",\"max_tokens\":2}";
    http(f.port, "POST", "/v1/completions", NULL, body, &r);
    assert_error(&r, 401, NULL, "API key");
    ASSERT(strcasestr(r.head, "www-authenticate: Bearer") != NULL);
    http(f.port, "POST", "/v1/completions", "Authorization: Bearer sk-helix-tesT\r\n", body, &r);
    assert_error(&r, 401, NULL, "API key");
    http(f.port, "POST", "/v1/completions", "Authorization: Bearer sk-helix-test-more\r\n", body,
         &r);
    assert_error(&r, 401, NULL, "API key");
    http(f.port, "POST", "/v1/completions", "Authorization: Basic sk-helix-test\r\n", body, &r);
    assert_error(&r, 401, NULL, "API key");
    http(f.port, "GET", "/v1/models", NULL, NULL, &r);
    ASSERT_EQ(r.status, 401);
    ASSERT_EQ(atomic_load(&f.tb.submits), 0); /* nothing reached the backend */
    http(f.port, "POST", "/v1/completions", "Authorization: Bearer sk-helix-test\r\n", body, &r);
    ASSERT_MSG(r.status == 200, "%d %s", r.status, r.body.buf);
    http(f.port, "POST", "/v1/completions", "authorization: bearer sk-helix-test\r\n", body, &r);
    ASSERT_EQ(r.status, 200);
    http(f.port, "GET", "/health", NULL, NULL, &r); /* probes need no key */
    ASSERT_EQ(r.status, 200);
    fx_stop(&f);
}

/* http() into r, releasing r's previous body first (r starts zeroed) */
static void hreq(uint16_t port, const char *method, const char *path, const char *headers,
                 const char *body, struct resp *r)
{
    strbuf_release(&r->body);
    http(port, method, path, headers, body, r);
}

TEST(api_server_dashboard_and_cluster_view)
{
    size_t n = 0;
    const char *page = api_dashboard_page(&n);
    ASSERT(n > 1000 && page[n] == '\0' && strlen(page) == n);
    ASSERT(strstr(page, "<svg id=\"graph\"") != NULL && strstr(page, "/v1/cluster") != NULL);
    struct fixture f;
    fx_start(&f, NULL, 0);
    struct resp r = {0};
    hreq(f.port, "GET", "/dashboard", NULL, NULL, &r);
    ASSERT_MSG(r.status == 200, "%d", r.status);
    ASSERT(strcasestr(r.head, "content-type: text/html") != NULL);
    ASSERT(strcasestr(r.head, "content-security-policy: default-src 'self'") != NULL);
    ASSERT_EQ(r.body.len, n);
    ASSERT(memcmp(r.body.buf, page, n) == 0);
    hreq(f.port, "GET", "/", NULL, NULL, &r); /* the root is the dashboard too */
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body.len, n);
    hreq(f.port, "GET", "/v1/cluster", NULL, NULL, &r);
    ASSERT_EQ(r.status, 200);
    ASSERT(strcasestr(r.head, "content-type: application/json") != NULL);
    ASSERT_STR_EQ(r.body.buf, "{\"workers\":[{\"name\":\"w0\"}],\"submits\":0}");
    hreq(f.port, "POST", "/v1/cluster", NULL, "{}", &r);
    ASSERT_EQ(r.status, 405);
    fx_stop(&f);

    /* with a key: the header, or ?key= on the dashboard's two routes only */
    fx_start(&f, "sk-dash", 0);
    hreq(f.port, "GET", "/dashboard", NULL, NULL, &r);
    assert_error(&r, 401, NULL, "/dashboard?key=");
    hreq(f.port, "GET", "/dashboard?key=sk-dasH", NULL, NULL, &r);
    ASSERT_EQ(r.status, 401);
    hreq(f.port, "GET", "/dashboard?key=sk-dash", NULL, NULL, &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body.len, n);
    hreq(f.port, "GET", "/v1/cluster", NULL, NULL, &r);
    ASSERT_EQ(r.status, 401);
    hreq(f.port, "GET", "/v1/cluster", "Authorization: Bearer sk-dash\r\n", NULL, &r);
    ASSERT_EQ(r.status, 200);
    hreq(f.port, "GET", "/v1/cluster?key=sk-dash", NULL, NULL, &r);
    ASSERT_EQ(r.status, 200);
    hreq(f.port, "GET", "/v1/models?key=sk-dash", NULL, NULL, &r); /* not for the API itself */
    ASSERT_EQ(r.status, 401);
    fx_stop(&f);

    /* a backend without a cluster view */
    struct api_backend_ops ops = tb_ops;
    ops.cluster = NULL;
    struct api_config cfg = {0};
    cfg.model_id = "kjv-llama-6m";
    struct tb tb;
    memset(&tb, 0, sizeof(tb));
    pthread_mutex_init(&tb.mu, NULL);
    struct api_server *srv = NULL;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(api_server_start(&cfg, &ops, &tb, &srv, &d), &d);
    hreq(api_server_port(srv), "GET", "/v1/cluster", NULL, NULL, &r);
    assert_error(&r, 404, NULL, "no cluster view");
    api_server_stop(srv);
    pthread_mutex_destroy(&tb.mu);
    strbuf_release(&r.body);
}

TEST(api_server_admin_drain)
{
    struct fixture f;
    fx_start(&f, "sk-adm", 0);
    struct resp r = {0};
    hreq(f.port, "POST", "/admin/drain/w1", NULL, "", &r);
    assert_error(&r, 401, NULL, "API key"); /* guarded by the key */
    ASSERT_STR_EQ(tb_drained, "");
    hreq(f.port, "POST", "/admin/drain/w1?key=sk-adm", NULL, "", &r);
    ASSERT_EQ(r.status, 401); /* the query key is only for the dashboard */
    hreq(f.port, "POST", "/admin/drain/w1", "Authorization: Bearer sk-adm\r\n", "", &r);
    ASSERT_MSG(r.status == 202, "%d %s", r.status, r.body.buf);
    ASSERT_STR_EQ(r.body.buf, "{\"draining\":\"w1\"}\n");
    ASSERT_STR_EQ(tb_drained, "w1");
    hreq(f.port, "POST", "/admin/drain/nobody", "Authorization: Bearer sk-adm\r\n", "", &r);
    assert_error(&r, 404, "node", "no worker named 'nobody'");
    hreq(f.port, "GET", "/admin/drain/w1", "Authorization: Bearer sk-adm\r\n", NULL, &r);
    ASSERT_EQ(r.status, 405);
    strbuf_release(&r.body);
    fx_stop(&f);
}

TEST(api_server_body_limits)
{
    struct fixture f;
    fx_start(&f, NULL, 64 * 1024);
    /* Declared too large: answered from the headers alone, before any body is sent. */
    int fd = connect_port(f.port);
    const char *head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n";
    send_all(fd, head, strlen(head));
    struct strbuf raw;
    strbuf_init(&raw);
    read_all(fd, &raw);
    close(fd);
    struct resp r;
    parse_resp(&raw, &r);
    assert_error(&r, 413, NULL, "exceeds the limit");
    /* Chunked (no length): read and discarded up to the end, then 413. */
    fd = connect_port(f.port);
    const char *chead = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
    send_all(fd, chead, strlen(chead));
    char chunk[8192 + 16];
    int hl = snprintf(chunk, sizeof(chunk), "2000\r\n");
    memset(chunk + hl, 'a', 8192);
    memcpy(chunk + hl + 8192, "\r\n", 2);
    for (int i = 0; i < 20; i++) { /* 160 KiB */
        send_all(fd, chunk, (size_t)hl + 8192 + 2);
    }
    send_all(fd, "0\r\n\r\n", 5);
    strbuf_reset(&raw);
    read_all(fd, &raw);
    close(fd);
    parse_resp(&raw, &r);
    assert_error(&r, 413, NULL, "exceeds the limit");
    /* Just under the limit is fine. */
    struct strbuf big;
    strbuf_init(&big);
    strbuf_adds(&big, "{\"model\":\"kjv-llama-6m\",\"max_tokens\":1,\"prompt\":\"");
    while (big.len < 60 * 1024) {
        strbuf_adds(&big, "and ");
    }
    strbuf_adds(&big, "\"}");
    post(f.port, "/v1/completions", big.buf, &r);
    ASSERT_MSG(r.status == 200, "%d %s", r.status, r.body.buf);
    strbuf_release(&big);
    strbuf_release(&raw);
    fx_stop(&f);
}

struct slow_args {
    uint16_t port;
    struct resp r;
};

static void *slow_client(void *arg)
{
    struct slow_args *a = arg;
    post(a->port, "/v1/completions",
         "{\"model\":\"kjv-llama-6m\",\"prompt\":\"SLOW\",\"stream\":true,\"max_tokens\":8}",
         &a->r);
    return NULL;
}

TEST(api_server_malformed_never_affects_concurrent_request)
{
    struct fixture f;
    fx_start(&f, NULL, 4096);
    struct slow_args a = {f.port, {0}};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, slow_client, &a), 0);
    sleep_ms(20); /* let it start */
    int64_t t0 = hx_clock_now_us();
    int n_bad = 0;
    while (hx_clock_now_us() - t0 < 200000) { /* the slow stream takes ~240 ms */
        struct resp r;
        post(f.port, "/v1/completions", "{\"model\":", &r);
        ASSERT_EQ(r.status, 400);
        post(f.port, "/v1/chat/completions", "[[[[[[[[[[[[[[[[[[[[", &r);
        ASSERT_EQ(r.status, 400);
        /* Not HTTP at all, and a request cut off mid-headers. */
        int fd = connect_port(f.port);
        send_all(fd, "\x16\x03\x01garbage\r\n\r\n", 14);
        struct strbuf raw;
        strbuf_init(&raw);
        read_all(fd, &raw);
        close(fd);
        fd = connect_port(f.port);
        send_all(fd, "POST /v1/completions HTTP/1.1\r\nContent-Len", 42);
        close(fd);
        strbuf_release(&raw);
        n_bad += 4;
    }
    pthread_join(th, NULL);
    ASSERT(n_bad >= 8);
    ASSERT_EQ(a.r.status, 200);
    struct strbuf t;
    strbuf_init(&t);
    const char *fin;
    sse_text(a.r.body.buf, &t, &fin);
    struct strbuf want;
    strbuf_init(&want);
    expected_text(8, &want);
    ASSERT_STR_EQ(t.buf, want.buf);
    ASSERT_STR_EQ(fin, "length");
    /* And the server still serves. */
    struct resp r;
    post(f.port, "/v1/completions",
         "{\"model\":\"kjv-llama-6m\",\"prompt\":\"p\",\"max_tokens\":1}", &r);
    ASSERT_EQ(r.status, 200);
    strbuf_release(&t);
    strbuf_release(&want);
    fx_stop(&f);
}

TEST(api_server_client_disconnect_cancels_backend)
{
    struct fixture f;
    fx_start(&f, NULL, 0);
    int fd = connect_port(f.port);
    const char *body = "{\"model\":\"kjv-llama-6m\",\"prompt\":\"HANG\",\"stream\":true}";
    char req[512];
    snprintf(req, sizeof(req),
             "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    send_all(fd, req, strlen(req));
    char buf[4096];
    ssize_t got = recv(fd, buf, sizeof(buf) - 1, 0); /* headers and the first chunk */
    ASSERT(got > 0);
    buf[got] = '\0';
    ASSERT_CONTAINS(buf, "200");
    close(fd);
    /* The reader notices the EOF within a slice; MHD frees the response, cancel runs. */
    int64_t end = hx_clock_now_us() + 3000000;
    while (atomic_load(&f.tb.cancels) == 0 && hx_clock_now_us() < end) {
        sleep_ms(10);
    }
    ASSERT_EQ(atomic_load(&f.tb.cancels), 1);
    while (atomic_load(&f.tb.hang_ended) == 0 && hx_clock_now_us() < end) {
        sleep_ms(10);
    }
    ASSERT_EQ(atomic_load(&f.tb.hang_ended), 1);
    fx_stop(&f);
}

struct hang_args {
    uint16_t port;
    struct resp r;
};

static void *hang_client(void *arg)
{
    struct hang_args *a = arg;
    post(a->port, "/v1/completions",
         "{\"model\":\"kjv-llama-6m\",\"prompt\":\"HANG\",\"stream\":true}", &a->r);
    return NULL;
}

TEST(api_server_stop_ends_open_streams)
{
    struct fixture f;
    fx_start(&f, NULL, 0);
    struct hang_args a = {f.port, {0}};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, hang_client, &a), 0);
    int64_t end = hx_clock_now_us() + 3000000;
    while (atomic_load(&f.tb.submits) == 0 && hx_clock_now_us() < end) {
        sleep_ms(5);
    }
    sleep_ms(50);
    int64_t t0 = hx_clock_now_us();
    fx_stop(&f);
    ASSERT_LE(hx_clock_now_us() - t0, 2000000);
    pthread_join(th, NULL);
    ASSERT_EQ(atomic_load(&f.tb.cancels), 1);
    ASSERT_EQ(atomic_load(&f.tb.hang_ended), 1);
    ASSERT_EQ(a.r.status, 200);
    ASSERT_CONTAINS(a.r.body.buf, "shutting down");
    ASSERT_CONTAINS(a.r.body.buf, "data: [DONE]");
}

TEST(api_server_metrics_prometheus)
{
    struct fixture f;
    fx_start(&f, NULL, 0);
    struct resp r;
    for (int i = 0; i < 3; i++) {
        post(f.port, "/v1/completions",
             "{\"model\":\"kjv-llama-6m\",\"prompt\":\"one two\",\"max_tokens\":4}", &r);
        ASSERT_EQ(r.status, 200);
    }
    post(f.port, "/v1/completions", "{", &r);
    ASSERT_EQ(r.status, 400);
    http(f.port, "GET", "/metrics", NULL, NULL, &r);
    ASSERT_EQ(r.status, 200);
    ASSERT(strcasestr(r.head, "content-type: text/plain; version=0.0.4") != NULL);
    const char *m = r.body.buf;
    ASSERT_CONTAINS(m, "# TYPE helix_http_requests_total counter\n");
    ASSERT_CONTAINS(m, "helix_http_requests_total{route=\"/v1/completions\",code=\"200\"} 3\n");
    ASSERT_CONTAINS(m, "helix_http_requests_total{route=\"/v1/completions\",code=\"400\"} 1\n");
    ASSERT_CONTAINS(m, "helix_http_requests_total{route=\"/metrics\",code=\"200\"} 1\n");
    char line[128];
    snprintf(line, sizeof(line), "helix_completion_tokens_total %d\n", 3 * 4);
    ASSERT_CONTAINS(m, line);
    snprintf(line, sizeof(line), "helix_prompt_tokens_total %d\n", 3 * 2);
    ASSERT_CONTAINS(m, line);
    ASSERT_CONTAINS(m, "helix_request_duration_seconds_count 3\n");
    ASSERT_CONTAINS(m, "helix_http_active_streams 0\n");
    ASSERT_CONTAINS(m, "helix_test_submits 3\n"); /* backend metrics appended */
    /* Every non-comment line is "name{labels} value" or "name value". */
    for (const char *p = m; *p;) {
        const char *nl = strchr(p, '\n');
        ASSERT(nl != NULL);
        if (*p != '#') {
            const char *sp = memchr(p, ' ', (size_t)(nl - p));
            ASSERT(sp != NULL);
            char *end;
            strtod(sp + 1, &end);
            ASSERT(end == nl);
        }
        p = nl + 1;
    }
    fx_stop(&f);
}

TEST(api_server_start_rejects_bad_config)
{
    struct api_server *s = NULL;
    struct api_config cfg = {0};
    struct hx_diag d = {0};
    ASSERT_ERR(api_server_start(&cfg, &tb_ops, NULL, &s, &d), HX_EINVAL);
    ASSERT_CONTAINS(d.msg, "model_id");
    cfg.model_id = "m";
    cfg.host = "not-an-ip";
    hx_diag_clear(&d);
    ASSERT_ERR(api_server_start(&cfg, &tb_ops, NULL, &s, &d), HX_EINVAL);
    struct api_backend_ops none = {0};
    cfg.host = NULL;
    ASSERT_ERR(api_server_start(&cfg, &none, NULL, &s, NULL), HX_EINVAL);
    ASSERT(s == NULL);
    /* A port already in use. */
    struct fixture f;
    fx_start(&f, NULL, 0);
    cfg.port = f.port;
    hx_diag_clear(&d);
    ASSERT_ERR(api_server_start(&cfg, &tb_ops, &f.tb, &s, &d), HX_EIO);
    ASSERT_CONTAINS(d.msg, "cannot listen");
    fx_stop(&f);
    api_server_stop(NULL);
}

TEST(api_server_nonstream_longer_than_idle_timeout)
{
    struct fixture f;
    fx_start(&f, NULL, 0);
    struct resp r;
    int64_t t0 = hx_clock_now_us();
    post(f.port, "/v1/completions",
         "{\"model\":\"kjv-llama-6m\",\"prompt\":\"VERYSLOW\",\"max_tokens\":8}", &r);
    ASSERT_GE(hx_clock_now_us() - t0, 1500000); /* longer than the 1 s idle timeout */
    ASSERT_MSG(r.status == 200, "%d %s", r.status, r.body.buf);
    struct strbuf want;
    strbuf_init(&want);
    expected_text(8, &want);
    ASSERT_CONTAINS(r.body.buf, want.buf);
    strbuf_release(&want);
    fx_stop(&f);
}

TEST(api_server_nonstream_client_disconnect_cancels_backend)
{
    struct fixture f;
    fx_start(&f, NULL, 0);
    int fd = connect_port(f.port);
    const char *body = "{\"model\":\"kjv-llama-6m\",\"prompt\":\"HANG\"}";
    char req[512];
    snprintf(req, sizeof(req),
             "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    send_all(fd, req, strlen(req));
    int64_t end = hx_clock_now_us() + 3000000;
    while (atomic_load(&f.tb.submits) == 0 && hx_clock_now_us() < end) {
        sleep_ms(5);
    }
    close(fd);
    while (atomic_load(&f.tb.cancels) == 0 && hx_clock_now_us() < end) {
        sleep_ms(10);
    }
    ASSERT_EQ(atomic_load(&f.tb.cancels), 1);
    while (atomic_load(&f.tb.hang_ended) == 0 && hx_clock_now_us() < end) {
        sleep_ms(10);
    }
    ASSERT_EQ(atomic_load(&f.tb.hang_ended), 1);
    struct resp r;
    http(f.port, "GET", "/metrics", NULL, NULL, &r);
    ASSERT_CONTAINS(r.body.buf,
                    "helix_http_requests_total{route=\"/v1/completions\",code=\"other\"} 1");
    fx_stop(&f);
}

TEST(api_server_stream_keepalive_comments)
{
    fx_keepalive_ms = 50;
    struct fixture f;
    fx_start(&f, NULL, 0);
    struct resp r;
    post(f.port, "/v1/completions",
         "{\"model\":\"kjv-llama-6m\",\"prompt\":\"PAUSE\",\"stream\":true}", &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body.buf, "\n\n: keep-alive\n\n"); /* during the 300 ms pause */
    struct strbuf t;
    strbuf_init(&t);
    const char *fin;
    sse_text(r.body.buf, &t, &fin); /* comments are skipped like an SSE client does */
    ASSERT_STR_EQ(t.buf, "ab");
    ASSERT_STR_EQ(fin, "stop");
    strbuf_release(&t);
    fx_stop(&f);
}

TEST(api_server_body_out_of_memory_is_500)
{
    struct fixture f;
    fx_start(&f, NULL, 0);
    struct resp r;
    hx_alloc_fail_nth(1); /* the next fallible allocation: this request's body buffer */
    post(f.port, "/v1/completions", "{\"model\":\"kjv-llama-6m\",\"prompt\":\"p\"}", &r);
    hx_alloc_fail_nth(0);
    assert_error(&r, 500, NULL, "out of memory");
    post(f.port, "/v1/completions", "{\"model\":\"kjv-llama-6m\",\"prompt\":\"p\"}", &r);
    ASSERT_EQ(r.status, 200); /* and the server goes on */
    fx_stop(&f);
}
