/*
 * http_server.c - the libmicrohttpd glue: routing, API-key auth, body limits, OpenAI errors,
 * non-streaming and SSE responses, and /metrics.
 *
 * MHD runs with one thread per connection (MHD_USE_THREAD_PER_CONNECTION). A non-streaming
 * request waits for its generation inside the access handler; a streaming one returns a
 * callback response whose reader waits for the next token. Either way only the connection's
 * own thread waits, in 100 ms slices, so other clients are never blocked, shutdown is noticed
 * within 100 ms, an idle stream sends an SSE comment every keepalive_ms (which also detects a
 * vanished client: the write fails, MHD frees the response, and the backend's cancel runs),
 * and a generation that makes no progress for request_timeout_s ends with an error.
 * Bad requests (404, 405, 401, 413 by Content-Length) are answered on the first call, before
 * any body is read.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "api/api.h"
#include "api/api_int.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "base/strbuf.h"

#define SLICE_MS 100

enum route {
    R_COMPLETIONS,
    R_CHAT,
    R_MODELS,
    R_HEALTH,
    R_METRICS,
    R_CLUSTER,
    R_DASHBOARD,
    R_DRAIN,
    R_OTHER,
    N_ROUTES
};

static const char *const route_paths[N_ROUTES] = {
    "/v1/completions", "/v1/chat/completions", "/v1/models",   "/health", "/metrics",
    "/v1/cluster",     "/dashboard",           "/admin/drain", "other",
};

static const int metric_codes[] = {200, 202, 400, 401, 404, 405, 413, 500, 503};
#define N_CODES (sizeof(metric_codes) / sizeof(metric_codes[0]))

struct api_server {
    struct MHD_Daemon *daemon;
    const struct api_backend_ops *ops;
    void *ctx;
    char *model_id;
    char *api_key; /* NULL = no auth */
    size_t max_body;
    uint32_t default_max_tokens;
    uint32_t max_tokens_limit;
    int64_t timeout_us;
    int64_t keepalive_us;
    unsigned idle_timeout_s;
    uint16_t port;
    int64_t started; /* unix seconds, for /v1/models */
    atomic_int stopping;
    atomic_ullong next_id;
    /* metrics */
    atomic_ullong requests[N_ROUTES][N_CODES + 1]; /* last column: other codes */
    atomic_llong active_streams;
    atomic_llong active_gens; /* generations not yet freed (both kinds) */
    atomic_ullong completion_tokens;
    atomic_ullong prompt_tokens;
    atomic_ullong gen_count;
    atomic_ullong gen_us_sum;
};

/* Per-request state, from the first access-handler call to MHD's completion notice. */
struct conn {
    enum route route;
    char *body; /* request body (fallible allocation: bodies are client-controlled) */
    size_t body_len;
    size_t body_cap;
    int too_big;
    int no_mem;
};

/* One generation, owned by the handler (non-streaming) or by the SSE response. */
struct gen_ctx {
    struct api_server *srv;
    struct api_stream *stream;
    struct api_take take;
    struct api_gen g;
    int64_t t0_us;
    int64_t last_progress_us;
    int64_t last_write_us;
    size_t out_pos;
    int done; /* everything including [DONE] handed to MHD */
    int fd;   /* the client's socket, to notice a disconnect while waiting */
};

/* ---- helpers --------------------------------------------------------------------------- */

static void count_request(struct api_server *s, enum route r, int status)
{
    size_t col = N_CODES;
    for (size_t i = 0; i < N_CODES; i++) {
        if (metric_codes[i] == status) {
            col = i;
        }
    }
    atomic_fetch_add(&s->requests[r][col], 1);
}

static enum MHD_Result respond(struct MHD_Connection *mc, struct api_server *s, enum route r,
                               int status, const char *ctype, const struct strbuf *body,
                               const char *allow)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(body->len, body->buf, MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == 401) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    }
    if (status == 503) { /* no route, overloaded, not ready: worth trying again soon */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    }
    if (allow) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    }
    enum MHD_Result ret = MHD_queue_response(mc, (unsigned)status, resp);
    MHD_destroy_response(resp);
    count_request(s, r, status);
    return ret;
}

static enum MHD_Result respond_error(struct MHD_Connection *mc, struct api_server *s, enum route r,
                                     const struct api_error *e, const char *allow)
{
    struct strbuf sb;
    strbuf_init(&sb);
    api_error_json(e, &sb);
    strbuf_addc(&sb, '\n');
    enum MHD_Result ret = respond(mc, s, r, e->status, "application/json", &sb, allow);
    strbuf_release(&sb);
    return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *mc, struct api_server *s, enum route r,
                                    int status, struct strbuf *sb)
{
    strbuf_addc(sb, '\n');
    return respond(mc, s, r, status, "application/json", sb, NULL);
}

/* Constant-time string comparison (time depends only on the lengths). */
static int ct_equal(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    size_t n = la > lb ? la : lb;
    volatile unsigned diff = (unsigned)(la != lb);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < la ? (unsigned char)a[i] : 0;
        unsigned char y = i < lb ? (unsigned char)b[i] : 0;
        diff |= (unsigned)(x ^ y);
    }
    return diff == 0;
}

static int authorized(struct api_server *s, struct MHD_Connection *mc, enum route r)
{
    if (!s->api_key) {
        return 1;
    }
    if (r == R_DASHBOARD || r == R_CLUSTER) {
        /* a browser cannot send a header on navigation: the page takes ?key= and its script
         * sends the key as a Bearer header on every /v1/cluster fetch */
        const char *q = MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "key");
        if (q && ct_equal(s->api_key, q)) {
            return 1;
        }
    }
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        return 0;
    }
    h += 7;
    while (*h == ' ') {
        h++;
    }
    return ct_equal(s->api_key, h);
}

static void cancel_trampoline(void *ctx, struct api_stream *stream)
{
    struct api_server *s = ctx;
    if (s->ops->cancel) {
        s->ops->cancel(s->ctx, stream);
    }
}

/*
 * 1 if the client closed its side of the connection (EOF pending). Data pending means a
 * pipelined request, not a disconnect. Peeking does not consume anything MHD will read.
 */
static int fd_gone(int fd)
{
    if (fd < 0) {
        return 0;
    }
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int connection_fd(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? (int)ci->connect_fd : -1;
}

/* ---- generation ------------------------------------------------------------------------ */

static void gen_free(struct gen_ctx *gc)
{
    if (!gc) {
        return;
    }
    if (!gc->g.finished) {
        api_stream_cancel(gc->stream); /* client gone or server stopping */
    }
    atomic_fetch_sub(&gc->srv->active_gens, 1);
    api_stream_unref(gc->stream);
    api_take_release(&gc->take);
    api_gen_release(&gc->g);
    xfree(gc);
}

/* Pull from the stream (waiting up to wait_ms) into the generation. 1 if anything arrived. */
static int pump(struct gen_ctx *gc, int wait_ms)
{
    if (!api_stream_take(gc->stream, wait_ms, &gc->take)) {
        return 0;
    }
    struct api_take *t = &gc->take;
    gc->g.prompt_tokens = t->prompt_tokens;
    size_t off = 0;
    for (size_t i = 0; i < t->n_pieces && !gc->g.finished; i++) {
        if (api_gen_piece(&gc->g, t->text.buf + off, t->lens[i])) {
            api_stream_cancel(gc->stream); /* stop matched or max_tokens: stop the backend */
        }
        off += t->lens[i];
    }
    if (t->ended && !gc->g.finished) {
        if (t->err_code) {
            api_gen_fail(&gc->g, t->err_code, t->err_msg);
        } else {
            api_gen_end(&gc->g, t->reason);
        }
    }
    gc->last_progress_us = hx_clock_now_us();
    return 1;
}

/* One step of waiting: pump, and end the generation on shutdown or lack of progress. */
static void gen_step(struct gen_ctx *gc)
{
    struct api_server *s = gc->srv;
    if (atomic_load(&s->stopping)) {
        api_gen_fail(&gc->g, HX_ECLOSED, "the server is shutting down");
        api_stream_cancel(gc->stream);
        return;
    }
    if (!pump(gc, SLICE_MS) && hx_clock_now_us() - gc->last_progress_us > s->timeout_us) {
        api_gen_fail(&gc->g, HX_ETIMEDOUT, "generation timed out: no token within the limit");
        api_stream_cancel(gc->stream);
    }
}

static void gen_account(struct gen_ctx *gc)
{
    struct api_server *s = gc->srv;
    atomic_fetch_add(&s->completion_tokens, gc->g.completion_tokens);
    atomic_fetch_add(&s->prompt_tokens, gc->g.prompt_tokens);
    atomic_fetch_add(&s->gen_count, 1);
    atomic_fetch_add(&s->gen_us_sum, (unsigned long long)(hx_clock_now_us() - gc->t0_us));
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct gen_ctx *gc = cls;
    struct api_gen *g = &gc->g;
    while (gc->out_pos == g->out.len) {
        strbuf_reset(&g->out);
        gc->out_pos = 0;
        if (gc->done) {
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (g->finished) {
            api_gen_sse_close(g);
            gen_account(gc);
            gc->done = 1;
            break;
        }
        gen_step(gc);
        if (!g->finished && fd_gone(gc->fd)) {
            return MHD_CONTENT_READER_END_WITH_ERROR; /* MHD closes; sse_free cancels */
        }
        if (g->out.len == 0 && !g->finished &&
            hx_clock_now_us() - gc->last_write_us >= gc->srv->keepalive_us) {
            strbuf_adds(&g->out, ": keep-alive\n\n");
        }
    }
    size_t n = g->out.len - gc->out_pos;
    if (n > max) {
        n = max;
    }
    memcpy(buf, g->out.buf + gc->out_pos, n);
    gc->out_pos += n;
    gc->last_write_us = hx_clock_now_us();
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    struct gen_ctx *gc = cls;
    atomic_fetch_sub(&gc->srv->active_streams, 1);
    gen_free(gc);
}

static enum MHD_Result handle_generate(struct MHD_Connection *mc, struct api_server *s,
                                       struct conn *c)
{
    enum api_kind kind = c->route == R_CHAT ? API_KIND_CHAT : API_KIND_COMPLETION;
    struct api_request req;
    struct api_error err;
    if (api_request_parse(kind, c->body, c->body_len, &req, &err) != HX_OK) {
        return respond_error(mc, s, c->route, &err, NULL);
    }
    if (strcmp(req.model, s->model_id) != 0) {
        api_error_set(&err, 404, "invalid_request_error", "model", "model_not_found",
                      "The model `%.200s` does not exist (this server serves `%.200s`)", req.model,
                      s->model_id);
        api_request_release(&req);
        return respond_error(mc, s, c->route, &err, NULL);
    }
    if (req.max_tokens == 0) {
        req.max_tokens = s->default_max_tokens;
    }
    if (s->max_tokens_limit && req.max_tokens > s->max_tokens_limit) {
        api_error_set(&err, 400, "invalid_request_error", "max_tokens", "invalid_value",
                      "max_tokens %u exceeds this server's limit of %u", (unsigned)req.max_tokens,
                      (unsigned)s->max_tokens_limit);
        api_request_release(&req);
        return respond_error(mc, s, c->route, &err, NULL);
    }
    struct hx_diag d = {0};
    if (kind == API_KIND_CHAT) {
        struct strbuf sb;
        strbuf_init(&sb);
        int rc = s->ops->render_chat
                     ? s->ops->render_chat(s->ctx, req.messages, req.n_messages, &sb, &d)
                     : api_chat_render_default(req.messages, req.n_messages, &sb, &d);
        if (rc) {
            api_error_from_code(&err, rc, d.msg[0] ? d.msg : "the chat template failed");
            strbuf_release(&sb);
            api_request_release(&req);
            return respond_error(mc, s, c->route, &err, NULL);
        }
        req.prompt = strbuf_detach(&sb, NULL);
    }

    struct gen_ctx *gc = xcalloc(1, sizeof(*gc));
    gc->srv = s;
    atomic_fetch_add(&s->active_gens, 1);
    uint64_t id = atomic_fetch_add(&s->next_id, 1);
    gc->stream = api_stream_new(id, cancel_trampoline, s);
    api_take_init(&gc->take);
    api_gen_init(&gc->g, &req, id, (int64_t)time(NULL));
    gc->t0_us = hx_clock_now_us();
    gc->last_progress_us = gc->t0_us;
    gc->last_write_us = gc->t0_us;
    gc->fd = connection_fd(mc);
    int rc = s->ops->submit(s->ctx, &req, gc->stream, &d);
    api_request_release(&req);
    if (rc) {
        api_error_from_code(&err, rc, d.msg[0] ? d.msg : hx_strerror(rc));
        gc->g.finished = 1; /* nothing to cancel: the backend keeps no reference */
        gen_free(gc);
        return respond_error(mc, s, c->route, &err, NULL);
    }

    if (!gc->g.stream) {
        /* MHD's idle timeout must not fire while the generation runs: suspend it, and
         * restore it (which restarts its clock) before answering. */
        MHD_set_connection_option(mc, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
        while (!gc->g.finished) {
            gen_step(gc);
            if (!gc->g.finished && fd_gone(gc->fd)) {
                gen_free(gc);                    /* cancels the backend */
                count_request(s, c->route, 499); /* "client closed request" */
                return MHD_NO;                   /* close the connection */
            }
        }
        MHD_set_connection_option(mc, MHD_CONNECTION_OPTION_TIMEOUT, s->idle_timeout_s);
        enum MHD_Result ret;
        if (gc->g.err.status) {
            ret = respond_error(mc, s, c->route, &gc->g.err, NULL);
        } else {
            struct strbuf sb;
            strbuf_init(&sb);
            api_gen_response_json(&gc->g, &sb);
            ret = respond_json(mc, s, c->route, 200, &sb);
            strbuf_release(&sb);
        }
        gen_account(gc);
        gen_free(gc);
        return ret;
    }

    api_gen_sse_open(&gc->g);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, gc, sse_free);
    if (!resp) {
        gen_free(gc);
        return MHD_NO;
    }
    atomic_fetch_add(&s->active_streams, 1);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(mc, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp); /* frees gc through sse_free when MHD is done */
    count_request(s, c->route, 200);
    return ret;
}

/* ---- simple routes --------------------------------------------------------------------- */

static enum MHD_Result handle_models(struct MHD_Connection *mc, struct api_server *s)
{
    struct strbuf sb;
    strbuf_init(&sb);
    api_models_json(s->model_id, s->started, &sb);
    enum MHD_Result ret = respond_json(mc, s, R_MODELS, 200, &sb);
    strbuf_release(&sb);
    return ret;
}

static enum MHD_Result handle_health(struct MHD_Connection *mc, struct api_server *s)
{
    struct hx_diag d = {0};
    int rc = s->ops->health ? s->ops->health(s->ctx, &d) : HX_OK;
    if (atomic_load(&s->stopping)) {
        rc = hx_diag_set(&d, HX_ECLOSED, "shutting down");
    }
    if (rc) {
        struct api_error e;
        api_error_set(&e, 503, "server_error", NULL, "unhealthy", "%s",
                      d.msg[0] ? d.msg : "not ready");
        return respond_error(mc, s, R_HEALTH, &e, NULL);
    }
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_adds(&sb, "{\"status\":\"ok\"}");
    enum MHD_Result ret = respond_json(mc, s, R_HEALTH, 200, &sb);
    strbuf_release(&sb);
    return ret;
}

static enum MHD_Result handle_metrics(struct MHD_Connection *mc, struct api_server *s)
{
    struct strbuf sb;
    strbuf_init(&sb);
    /* Count this scrape first so it shows up in its own output. */
    count_request(s, R_METRICS, 200);
    strbuf_adds(&sb, "# HELP helix_http_requests_total HTTP requests by route and status.\n"
                     "# TYPE helix_http_requests_total counter\n");
    for (int r = 0; r < N_ROUTES; r++) {
        for (size_t c = 0; c <= N_CODES; c++) {
            unsigned long long v = atomic_load(&s->requests[r][c]);
            if (v) {
                if (c < N_CODES) {
                    strbuf_addf(&sb, "helix_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                                route_paths[r], metric_codes[c], v);
                } else {
                    strbuf_addf(&sb,
                                "helix_http_requests_total{route=\"%s\",code=\"other\"} %llu\n",
                                route_paths[r], v);
                }
            }
        }
    }
    strbuf_addf(&sb,
                "# HELP helix_http_active_streams Streaming responses in progress.\n"
                "# TYPE helix_http_active_streams gauge\n"
                "helix_http_active_streams %lld\n"
                "# HELP helix_completion_tokens_total Tokens generated (as seen by the API).\n"
                "# TYPE helix_completion_tokens_total counter\n"
                "helix_completion_tokens_total %llu\n"
                "# HELP helix_prompt_tokens_total Prompt tokens of finished requests.\n"
                "# TYPE helix_prompt_tokens_total counter\n"
                "helix_prompt_tokens_total %llu\n"
                "# HELP helix_request_duration_seconds Time from submit to the last token.\n"
                "# TYPE helix_request_duration_seconds summary\n"
                "helix_request_duration_seconds_sum %.6f\n"
                "helix_request_duration_seconds_count %llu\n",
                (long long)atomic_load(&s->active_streams),
                (unsigned long long)atomic_load(&s->completion_tokens),
                (unsigned long long)atomic_load(&s->prompt_tokens),
                (double)atomic_load(&s->gen_us_sum) * 1e-6,
                (unsigned long long)atomic_load(&s->gen_count));
    if (s->ops->metrics) {
        s->ops->metrics(s->ctx, &sb);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sb.len, sb.buf, MHD_RESPMEM_MUST_COPY);
    strbuf_release(&sb);
    if (!resp) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(mc, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result handle_cluster(struct MHD_Connection *mc, struct api_server *s)
{
    if (!s->ops->cluster) {
        struct api_error e;
        api_error_set(&e, 404, "invalid_request_error", NULL, "no_cluster",
                      "this server has no cluster view (its backend is not a coordinator)");
        return respond_error(mc, s, R_CLUSTER, &e, NULL);
    }
    struct strbuf sb;
    strbuf_init(&sb);
    s->ops->cluster(s->ctx, &sb);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sb.len, sb.buf, MHD_RESPMEM_MUST_COPY);
    strbuf_release(&sb);
    if (!resp) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(mc, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    count_request(s, R_CLUSTER, 200);
    return ret;
}

static enum MHD_Result handle_drain(struct MHD_Connection *mc, struct api_server *s,
                                    const char *url)
{
    struct api_error e;
    const char *node = url + 13; /* after "/admin/drain/" */
    if (!s->ops->drain) {
        api_error_set(&e, 404, "invalid_request_error", NULL, "no_drain",
                      "this server's backend has no workers to drain");
        return respond_error(mc, s, R_DRAIN, &e, NULL);
    }
    struct hx_diag d = {0};
    int rc = s->ops->drain(s->ctx, node, &d);
    if (rc == HX_ENOTFOUND) {
        api_error_set(&e, 404, "invalid_request_error", "node", "unknown_node", "%s", d.msg);
        return respond_error(mc, s, R_DRAIN, &e, NULL);
    }
    if (rc != HX_OK) {
        api_error_set(&e, 500, "server_error", NULL, "internal_error", "%s",
                      d.msg[0] ? d.msg : "drain failed");
        return respond_error(mc, s, R_DRAIN, &e, NULL);
    }
    struct strbuf sb;
    strbuf_init(&sb);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "draining", node);
    char *txt = cJSON_PrintUnformatted(j);
    strbuf_adds(&sb, txt ? txt : "{}");
    cJSON_free(txt);
    cJSON_Delete(j);
    enum MHD_Result ret = respond_json(mc, s, R_DRAIN, 202, &sb);
    strbuf_release(&sb);
    return ret;
}

static enum MHD_Result handle_dashboard(struct MHD_Connection *mc, struct api_server *s)
{
    size_t n = 0;
    const char *page = api_dashboard_page(&n);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n, (void *)(uintptr_t)page, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    /* everything the page needs is in it: no other origin may serve it anything */
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; script-src 'unsafe-inline'; style-src "
                            "'unsafe-inline'; img-src 'self' data:");
    enum MHD_Result ret = MHD_queue_response(mc, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    count_request(s, R_DASHBOARD, 200);
    return ret;
}

/* ---- MHD callbacks --------------------------------------------------------------------- */

static enum route route_of(const char *url)
{
    if (strcmp(url, "/") == 0) {
        return R_DASHBOARD;
    }
    if (strncmp(url, "/admin/drain/", 13) == 0) {
        return R_DRAIN;
    }
    for (int r = 0; r < R_OTHER; r++) {
        if (strcmp(url, route_paths[r]) == 0) {
            return (enum route)r;
        }
    }
    return R_OTHER;
}

/* First call for a request: everything decidable from the request line and headers. */
static enum MHD_Result first_call(struct MHD_Connection *mc, struct api_server *s, struct conn *c,
                                  const char *method)
{
    struct api_error e;
    if (c->route == R_OTHER) {
        api_error_set(&e, 404, "invalid_request_error", NULL, "unknown_url",
                      "Unknown request URL. Routes: POST /v1/completions, POST "
                      "/v1/chat/completions, GET /v1/models, GET /health, GET /metrics, GET "
                      "/v1/cluster, GET /dashboard, POST /admin/drain/<node>");
        return respond_error(mc, s, c->route, &e, NULL);
    }
    int is_post = c->route == R_COMPLETIONS || c->route == R_CHAT || c->route == R_DRAIN;
    int ok = is_post ? strcmp(method, "POST") == 0
                     : (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
    if (!ok) {
        api_error_set(&e, 405, "invalid_request_error", NULL, "method_not_allowed",
                      "%s is not allowed on %s (use %s)", method, route_paths[c->route],
                      is_post ? "POST" : "GET");
        return respond_error(mc, s, c->route, &e, is_post ? "POST" : "GET, HEAD");
    }
    if ((c->route == R_COMPLETIONS || c->route == R_CHAT || c->route == R_MODELS ||
         c->route == R_CLUSTER || c->route == R_DASHBOARD || c->route == R_DRAIN) &&
        !authorized(s, mc, c->route)) {
        api_error_set(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
                      c->route == R_DASHBOARD
                          ? "Incorrect or missing API key: open /dashboard?key=<key>"
                          : "Incorrect or missing API key: send 'Authorization: Bearer <key>'");
        return respond_error(mc, s, c->route, &e, NULL);
    }
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end = NULL;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end != cl && n > s->max_body) {
            api_error_set(&e, 413, "invalid_request_error", NULL, "request_too_large",
                          "the request body of %llu bytes exceeds the limit of %zu bytes", n,
                          s->max_body);
            return respond_error(mc, s, c->route, &e, NULL);
        }
    }
    return MHD_YES;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *mc, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct api_server *s = cls;
    struct conn *c = *con_cls;
    if (!c) {
        c = xcalloc(1, sizeof(*c));
        c->route = route_of(url);
        *con_cls = c;
        return first_call(mc, s, c, method);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        if (!c->too_big && !c->no_mem) {
            if (c->body_len + n > s->max_body) {
                c->too_big = 1;
            } else {
                if (c->body_len + n > c->body_cap) {
                    size_t cap = c->body_cap ? c->body_cap : 4096;
                    while (cap < c->body_len + n) {
                        cap *= 2;
                    }
                    char *nb = hx_realloc(c->body, cap);
                    if (!nb) {
                        c->no_mem = 1;
                    } else {
                        c->body = nb;
                        c->body_cap = cap;
                    }
                }
                if (!c->no_mem) {
                    memcpy(c->body + c->body_len, upload_data, n);
                    c->body_len += n;
                }
            }
            if (c->too_big || c->no_mem) {
                xfree(c->body);
                c->body = NULL;
                c->body_len = c->body_cap = 0;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->no_mem) {
        struct api_error e;
        api_error_set(&e, 500, "server_error", NULL, "internal_error",
                      "out of memory reading the request body");
        return respond_error(mc, s, c->route, &e, NULL);
    }
    if (c->too_big) {
        struct api_error e;
        api_error_set(&e, 413, "invalid_request_error", NULL, "request_too_large",
                      "the request body exceeds the limit of %zu bytes", s->max_body);
        return respond_error(mc, s, c->route, &e, NULL);
    }
    switch (c->route) {
    case R_COMPLETIONS:
    case R_CHAT:
        return handle_generate(mc, s, c);
    case R_MODELS:
        return handle_models(mc, s);
    case R_HEALTH:
        return handle_health(mc, s);
    case R_METRICS:
        return handle_metrics(mc, s);
    case R_CLUSTER:
        return handle_cluster(mc, s);
    case R_DASHBOARD:
        return handle_dashboard(mc, s);
    case R_DRAIN:
        return handle_drain(mc, s, url);
    default:
        return MHD_NO;
    }
}

static void completed_cb(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)mc;
    (void)toe;
    struct conn *c = *con_cls;
    if (c) {
        xfree(c->body);
        xfree(c);
        *con_cls = NULL;
    }
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }
    log_debug("http: %s", line);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

int api_server_start(const struct api_config *cfg, const struct api_backend_ops *ops,
                     void *backend_ctx, struct api_server **out, struct hx_diag *d)
{
    *out = NULL;
    if (!cfg || !ops || !ops->submit) {
        return hx_diag_set(d, HX_EINVAL, "api: a backend with a submit callback is required");
    }
    if (!cfg->model_id || !cfg->model_id[0]) {
        return hx_diag_set(d, HX_EINVAL, "api: model_id is required");
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(cfg->port);
    const char *host = cfg->host ? cfg->host : "127.0.0.1";
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        return hx_diag_set(d, HX_EINVAL, "api: host \"%s\" is not an IPv4 address", host);
    }
    struct api_server *s = xcalloc(1, sizeof(*s));
    s->ops = ops;
    s->ctx = backend_ctx;
    s->model_id = xstrdup(cfg->model_id);
    s->api_key = cfg->api_key && cfg->api_key[0] ? xstrdup(cfg->api_key) : NULL;
    s->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : (size_t)1 << 20;
    s->default_max_tokens = cfg->default_max_tokens ? cfg->default_max_tokens : 16;
    s->max_tokens_limit = cfg->max_tokens_limit;
    s->timeout_us = (int64_t)(cfg->request_timeout_s ? cfg->request_timeout_s : 600) * 1000000;
    s->keepalive_us = (int64_t)(cfg->keepalive_ms ? cfg->keepalive_ms : 15000) * 1000;
    s->idle_timeout_s = cfg->idle_timeout_s ? cfg->idle_timeout_s : 120;
    s->started = (int64_t)time(NULL);
    /* Ids: start time in the high bits so ids differ across restarts. */
    atomic_init(&s->next_id, ((unsigned long long)s->started << 24) | 1u);
    unsigned limit = cfg->max_connections ? cfg->max_connections : 256;
    s->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0, NULL,
        NULL, access_cb, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT, s->idle_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, completed_cb, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_END);
    if (!s->daemon) {
        int rc = hx_diag_set(d, HX_EIO, "api: cannot listen on %s:%u (in use or not permitted)",
                             host, (unsigned)cfg->port);
        xfree(s->model_id);
        xfree(s->api_key);
        xfree(s);
        return rc;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    *out = s;
    return HX_OK;
}

uint16_t api_server_port(const struct api_server *s)
{
    return s->port;
}

void api_server_stop(struct api_server *s)
{
    if (!s) {
        return;
    }
    atomic_store(&s->stopping, 1);
    /* Let open generations notice (within one slice) and send their error event and [DONE]
     * before MHD closes the sockets; bounded, in case a client stopped reading. */
    int64_t deadline = hx_clock_now_us() + 2 * 1000000;
    while (atomic_load(&s->active_gens) > 0 && hx_clock_now_us() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->daemon); /* joins every connection thread */
    xfree(s->model_id);
    xfree(s->api_key);
    xfree(s);
}
