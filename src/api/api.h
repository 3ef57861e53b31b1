/*
 * api.h - helix's OpenAI-compatible HTTP front end (libmicrohttpd + cJSON).
 *
 * Routes: POST /v1/completions, POST /v1/chat/completions (SSE streaming or not), GET
 * /v1/models, GET /health, GET /metrics (Prometheus text), GET /v1/cluster (the backend's
 * cluster view as JSON), GET /dashboard (also GET /: a self-contained page that draws it) and
 * POST /admin/drain/<node> (take a worker out gracefully; API key if one is set).
 * docs/api.md documents fields and errors. The server knows nothing about models or workers: the
 * coordinator plugs in through struct api_backend_ops, and produces each request's output into a
 * struct api_stream, a thread-safe queue of token text pieces ending in a finish reason or an
 * error. The server owns everything OpenAI-specific: request validation, chat rendering (via the
 * backend's template), stop sequences, max_tokens, UTF-8 repair of split tokens, the exact JSON and
 * SSE chunk shapes, usage counts, errors and metrics.
 *
 * Threading: the server runs MHD with one thread per connection (see docs/api.md), so a
 * streaming response may wait for tokens without blocking other clients; every wait is sliced
 * (100 ms) so shutdown and client disconnects are noticed promptly. Backend callbacks run on
 * those connection threads; stream producer functions may be called from any thread.
 */
#ifndef HX_API_API_H
#define HX_API_API_H

#include <stddef.h>
#include <stdint.h>

struct hx_diag;
struct strbuf;

#define API_MAX_STOP 4         /* OpenAI's limit on stop sequences */
#define API_MAX_STOP_BYTES 256 /* per stop sequence */

enum api_kind {
    API_KIND_COMPLETION = 1, /* POST /v1/completions */
    API_KIND_CHAT = 2,       /* POST /v1/chat/completions */
};

struct api_message {
    char *role;    /* system, developer, user, assistant or tool */
    char *content; /* text parts concatenated */
};

/* A parsed and validated request. All strings are owned (api_request_release). */
struct api_request {
    enum api_kind kind;
    char *model;
    /* Completions: the prompt. Chat: the messages rendered by the chat template (filled by
     * the server before submit; NULL straight out of api_request_parse). */
    char *prompt;
    struct api_message *messages; /* chat only */
    size_t n_messages;
    uint32_t max_tokens; /* 0 = not given (the server applies its default before submit) */
    double temperature;  /* [0, 2], default 1; 0 = greedy */
    double top_p;        /* [0, 1], default 1 */
    uint64_t seed;       /* valid iff has_seed (negative JSON seeds wrap) */
    int has_seed;
    char *stop[API_MAX_STOP]; /* handled by the server; the backend may ignore them */
    size_t n_stop;
    int stream;        /* SSE */
    int include_usage; /* stream_options.include_usage */
};

/* An OpenAI-shaped error: {"error":{"message","type","param","code"}} with an HTTP status. */
struct api_error {
    int status;     /* 400, 401, 404, 405, 413, 500, 503, ... */
    char type[32];  /* invalid_request_error, authentication_error, server_error, ... */
    char param[64]; /* offending field, "" = null */
    char code[48];  /* machine-readable code, "" = null */
    char message[512];
};

/*
 * Parse and validate a request body (len bytes, not necessarily NUL-terminated) for `kind`.
 * Unknown fields are ignored; known but unsupported ones (n != 1, best_of, echo, logprobs,
 * suffix, tools, multiple prompts, token-id prompts, non-text content parts) are a 400.
 * Returns 0 with *out filled, or HX_EPARSE / HX_EINVAL / HX_ENOTSUP with *err filled (status
 * 400), or HX_ENOMEM (status 500), and *out empty. Pure and thread-safe (the fuzz target).
 */
int api_request_parse(enum api_kind kind, const char *body, size_t len, struct api_request *out,
                      struct api_error *err);
/* Free everything in r and zero it. NULL and zeroed requests are fine. */
void api_request_release(struct api_request *r);

/*
 * The default chat template: "System: ...\nUser: ...\nAssistant: ...\n" for each message,
 * then "Assistant:" to cue the reply. Appends to out. Always 0.
 */
int api_chat_render_default(const struct api_message *msgs, size_t n, struct strbuf *out,
                            struct hx_diag *diag);

/* ---- streams: how a backend delivers one request's output -------------------------------- */

struct api_stream;

enum api_finish {
    API_FINISH_NONE = 0,
    API_FINISH_STOP = 1,   /* end of sequence, or a stop sequence (finish_reason "stop") */
    API_FINISH_LENGTH = 2, /* max_tokens or the context limit ("length") */
};

/* Take/drop a reference. The stream is freed when the last reference goes. Thread-safe. */
void api_stream_ref(struct api_stream *s);
void api_stream_unref(struct api_stream *s);

/* A unique id for logs and the response id ("cmpl-<hex>"). */
uint64_t api_stream_id(const struct api_stream *s);

/* Backend-private pointer (e.g. its request record), for use in cancel. Thread-safe. */
void api_stream_set_user(struct api_stream *s, void *user);
void *api_stream_get_user(const struct api_stream *s);

/* Report the prompt's token count for usage (any time before finishing). */
void api_stream_set_prompt_tokens(struct api_stream *s, uint32_t n);

/*
 * Deliver one generated token's text (len bytes, any bytes: UTF-8 split across tokens is
 * reassembled by the server). Each call counts as one completion token.
 * Returns 0, or HX_ECLOSED once the stream is cancelled or finished: stop generating.
 */
int api_stream_push(struct api_stream *s, const char *text, size_t len);

/* End the stream normally. Returns 0, or HX_ECLOSED if it had already ended/cancelled. */
int api_stream_finish(struct api_stream *s, enum api_finish reason);

/*
 * End the stream with an error: code is an HX_E* status (it picks the HTTP status when no
 * output was sent yet: HX_EFULL/HX_ECLOSED 503, HX_EINVAL 400, HX_ENOTFOUND 404, else 500),
 * message is shown to the client. Streaming clients get an error event, then [DONE].
 */
int api_stream_fail(struct api_stream *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 once the consumer cancelled (client gone, stop sequence, max_tokens, timeout). */
int api_stream_cancelled(const struct api_stream *s);

/* ---- the backend vtable ----------------------------------------------------------------- */

struct api_backend_ops {
    /*
     * Required. Start generating req (borrowed for the call only: copy what you keep; prompt
     * is already rendered and max_tokens filled). To produce output, take a reference
     * (api_stream_ref) and push/finish/fail from any thread, then api_stream_unref. Return 0,
     * or an HX_E* code with diag: HX_EFULL / HX_ECLOSED -> 503, HX_EINVAL -> 400,
     * HX_ENOTFOUND -> 404, anything else -> 500. On error the backend keeps no reference.
     */
    int (*submit)(void *ctx, const struct api_request *req, struct api_stream *stream,
                  struct hx_diag *diag);
    /*
     * Optional. The consumer stopped reading before the backend finished (client gone, stop
     * sequence matched, max_tokens reached, timeout): stop generating and free the request's
     * KV. Called at most once per stream, on an HTTP thread; must not block for long.
     * Pushes after it return HX_ECLOSED. The backend still drops its reference as usual.
     */
    void (*cancel)(void *ctx, struct api_stream *stream);
    /* Optional. Render chat messages into a prompt (NULL: api_chat_render_default). */
    int (*render_chat)(void *ctx, const struct api_message *msgs, size_t n, struct strbuf *out,
                       struct hx_diag *diag);
    /* Optional. 0 if ready to serve; otherwise /health answers 503 with diag's message. */
    int (*health)(void *ctx, struct hx_diag *diag);
    /* Optional. Append backend metrics in Prometheus text format to /metrics. */
    void (*metrics)(void *ctx, struct strbuf *out);
    /* Optional. Append the cluster view as one JSON object to GET /v1/cluster (NULL: that route
     * answers 404). The dashboard (GET /dashboard) draws it. */
    void (*cluster)(void *ctx, struct strbuf *out);
    /* Optional. Drain worker `node` (POST /admin/drain/<node>): route nothing new to it, let
     * its requests finish, then let it go. 0 -> 202; HX_ENOTFOUND -> 404; else 500. NULL: the
     * route answers 404. */
    int (*drain)(void *ctx, const char *node, struct hx_diag *diag);
};

/* The dashboard page (src/api/dashboard.html, built in): n bytes, NUL-terminated. */
const char *api_dashboard_page(size_t *n);

/* ---- the server ------------------------------------------------------------------------- */

struct api_config {
    const char *host;            /* IPv4 address to bind; NULL = "127.0.0.1" */
    uint16_t port;               /* 0 = an ephemeral port (see api_server_port) */
    const char *model_id;        /* required: the id /v1/models lists and requests must name */
    const char *api_key;         /* NULL or "" = no auth; else "Authorization: Bearer <key>" */
    size_t max_body_bytes;       /* 0 = 1 MiB; larger bodies get 413 */
    unsigned max_connections;    /* 0 = 256 concurrent connections (= threads) */
    uint32_t default_max_tokens; /* 0 = 16 (OpenAI's completions default) */
    uint32_t max_tokens_limit;   /* 0 = none; larger max_tokens get 400 */
    unsigned request_timeout_s;  /* 0 = 600: max time without a token before giving up */
    unsigned keepalive_ms;       /* 0 = 15000: SSE comment sent when a stream is idle */
    unsigned idle_timeout_s;     /* 0 = 120: close connections idle this long (not counting
                                    time spent generating) */
};

struct api_server;

/*
 * Start serving on cfg->host:cfg->port with the given backend (ops and ctx borrowed; they must
 * outlive the server). Strings in cfg are copied. Returns 0, HX_EINVAL (bad config) or
 * HX_EIO (bind failed) with diag.
 */
int api_server_start(const struct api_config *cfg, const struct api_backend_ops *ops,
                     void *backend_ctx, struct api_server **out, struct hx_diag *diag);

/* The bound TCP port. */
uint16_t api_server_port(const struct api_server *s);

/*
 * Stop accepting, end open streams (clients get an error event, then [DONE]; the backend's
 * cancel runs for unfinished ones), join all threads and free the server. NULL is fine.
 */
void api_server_stop(struct api_server *s);

#endif
