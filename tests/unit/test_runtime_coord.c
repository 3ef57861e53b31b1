/*
 * test_runtime_coord.c - the coordinator and workers in one process (workers on threads, real
 * ZeroMQ over 127.0.0.1): a pipeline's greedy text equals eng_generate's on the whole model,
 * concurrent requests each match, a worker that disappears mid-generation is routed around
 * (same text) or, with no route left, the request ends with an error; plus the stop-string
 * scanner and a wrong token being refused.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "engine/engine.h"
#include "engine/tokenizer.h"
#include "runtime/proto.h"
#include "runtime/runtime.h"
#include "runtime/xport.h"
#include "test.h"

#define MODEL "models/kjv-llama-6m"

static void quiet(enum log_level l)
{
    if (!getenv("HX_LOG")) {
        log_set_level(l);
    }
}

struct wthread {
    pthread_t t;
    struct worker_opts o;
    char name[32];
    volatile int stop;
    int rc;
    struct hx_diag d;
};

static void *wmain(void *arg)
{
    struct wthread *w = arg;
    w->rc = worker_run(&w->o, &w->d);
    return NULL;
}

static void wstart_ep(struct wthread *w, const char *coord, const char *name, const char *token,
                      const char *data_ep)
{
    memset(w, 0, sizeof(*w));
    w->o.data_endpoint = data_ep;
    snprintf(w->name, sizeof(w->name), "%s", name);
    w->o.coordinator = coord;
    w->o.name = w->name;
    w->o.token = token;
    w->o.threads = 1;
    w->o.kv_bytes = 4u << 20;
    w->o.stop = &w->stop;
    ASSERT(pthread_create(&w->t, NULL, wmain, w) == 0);
}

static void wstart(struct wthread *w, const char *coord, const char *name, const char *token)
{
    wstart_ep(w, coord, name, token, NULL);
}

static void wjoin(struct wthread *w)
{
    w->stop = 1;
    pthread_join(w->t, NULL);
}

/* Greedy reference: the whole model in one engine, decoded with the tokenizer. */
static char *reference(const char *prompt, int max_new)
{
    struct hx_diag d;
    struct eng_backend *be = NULL;
    struct eng_model *m = NULL;
    struct eng_engine *e = NULL;
    struct eng_sampler *s = NULL;
    struct eng_tok *tok = NULL;
    ASSERT(eng_cpu_backend_new(1, &be, &d) == 0);
    ASSERT_MSG(eng_model_load(MODEL, 0, -1, be, &m, &d) == 0, "%s", d.msg);
    ASSERT(eng_engine_new(m, NULL, &e, &d) == 0);
    struct eng_sampler_params sp = {0};
    ASSERT(eng_sampler_new(&sp, eng_model_config(m)->vocab, &s) == 0);
    ASSERT(eng_tok_load(MODEL "/tokenizer.json", &tok, &d) == 0);
    int32_t *ids = NULL;
    size_t n = 0;
    ASSERT(eng_tok_encode(tok, prompt, strlen(prompt), ENG_TOK_ADD_BOS, &ids, &n, &d) == 0);
    int32_t out[512];
    int n_out = 0;
    ASSERT(eng_generate(e, 1, ids, (int)n, s, max_new, eng_model_config(m)->eos_id, out, &n_out,
                        &d) == 0);
    if (n_out > 0 && out[n_out - 1] == eng_model_config(m)->eos_id) {
        n_out--;
    }
    char *text = NULL;
    size_t tl = 0;
    ASSERT(eng_tok_decode(tok, out, (size_t)n_out, ENG_TOK_SKIP_SPECIAL, &text, &tl, &d) == 0);
    xfree(ids);
    eng_tok_free(tok);
    eng_sampler_free(s);
    eng_engine_free(e);
    eng_model_free(m);
    eng_backend_free(be);
    return text;
}

/* Run a stream to its end; returns the text (xfree) and the final event type. */
static char *drain(struct coord_stream *s, int *final_type, char *err, size_t errn)
{
    struct strbuf sb;
    strbuf_init(&sb);
    for (;;) {
        struct coord_event ev;
        int rc = coord_stream_next(s, 20000, &ev);
        ASSERT_MSG(rc == 0, "stream timed out");
        if (ev.type == COORD_EVENT_TEXT) {
            strbuf_add(&sb, ev.text, ev.len);
            continue;
        }
        *final_type = ev.type;
        if (ev.type == COORD_EVENT_ERROR && err) {
            snprintf(err, errn, "%s", ev.text);
        }
        break;
    }
    strbuf_addc(&sb, 0);
    return strbuf_detach(&sb, NULL);
}

static struct coord *start_coord(const struct coord_node_spec *nodes, int n, const char *token)
{
    struct coord_opts o;
    memset(&o, 0, sizeof(o));
    o.model_dir = MODEL;
    o.workers = "tcp://127.0.0.1:*";
    o.token = token;
    o.n_nodes = n;
    o.nodes = nodes;
    o.heartbeat_ms = 100;
    o.dead_ms = 1500;
    struct coord *c = NULL;
    struct hx_diag d;
    ASSERT_MSG(coord_new(&o, &c, &d) == 0, "%s", d.msg);
    ASSERT(coord_start(c, &d) == 0);
    return c;
}

static struct coord_request greedy(const char *prompt, int max_tokens)
{
    struct coord_request q;
    memset(&q, 0, sizeof(q));
    q.prompt = prompt;
    q.prompt_len = strlen(prompt);
    q.max_tokens = max_tokens;
    q.top_p = 1;
    return q;
}

TEST(runtime_coord_pipeline_matches_generate)
{
    quiet(LOG_LEVEL_WARN);
    struct coord_node_spec nodes[3] = {{"a", 0, 2, 1.0}, {"b", 2, 4, 1.0}, {"c", 4, 6, 1.0}};
    struct coord *c = start_coord(nodes, 3, "s3cret");
    struct wthread w[3];
    wstart(&w[0], coord_endpoint(c), "a", "s3cret");
    wstart(&w[1], coord_endpoint(c), "b", "s3cret");
    wstart(&w[2], coord_endpoint(c), "c", "s3cret");
    struct hx_diag d;
    ASSERT_MSG(coord_wait_ready(c, 20000, &d) == 0, "%s", d.msg);
    const char *prompts[4] = {"In the beginning", "And God said", "The LORD is my shepherd",
                              "Jesus wept."};
    struct coord_stream *s[4];
    for (int i = 0; i < 4; i++) {
        struct coord_request q = greedy(prompts[i], 24);
        ASSERT_MSG(coord_submit(c, &q, &s[i], &d) == 0, "%s", d.msg);
    }
    for (int i = 0; i < 4; i++) {
        int type = 0;
        char *got = drain(s[i], &type, NULL, 0);
        char *want = reference(prompts[i], 24);
        ASSERT_EQ(type, COORD_EVENT_DONE);
        ASSERT_MSG(strcmp(got, want) == 0, "prompt %d: got '%s' want '%s'", i, got, want);
        ASSERT(strlen(want) > 0);
        xfree(got);
        xfree(want);
        coord_stream_free(s[i]);
    }
    /* every finished request's KV was released on every worker (heartbeats report it) */
    const char *zero[3] = {"helix_node_kv_used_bytes{node=\"a\"} 0\n",
                           "helix_node_kv_used_bytes{node=\"b\"} 0\n",
                           "helix_node_kv_used_bytes{node=\"c\"} 0\n"};
    struct strbuf m;
    strbuf_init(&m);
    for (int tries = 0; tries < 50; tries++) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        strbuf_reset(&m);
        coord_metrics(c, &m);
        if (strstr(m.buf, zero[0]) && strstr(m.buf, zero[1]) && strstr(m.buf, zero[2])) {
            break;
        }
    }
    ASSERT_MSG(strstr(m.buf, zero[0]) && strstr(m.buf, zero[1]) && strstr(m.buf, zero[2]),
               "KV not released:\n%s", m.buf);
    ASSERT(strstr(m.buf, "helix_node_up{node=\"b\",state=\"ready\"} 1"));
    strbuf_release(&m);
    coord_free(c);
    for (int i = 0; i < 3; i++) {
        wjoin(&w[i]);
        ASSERT_MSG(w[i].rc == 0, "worker %d: %s", i, w[i].d.msg);
    }
}

TEST(runtime_coord_wrong_token_refused)
{
    quiet(LOG_LEVEL_OFF);
    struct coord_node_spec nodes[1] = {{"a", 0, 6, 1.0}};
    struct coord *c = start_coord(nodes, 1, "right");
    struct wthread w;
    wstart(&w, coord_endpoint(c), "a", "wrong");
    pthread_join(w.t, NULL);
    ASSERT_EQ(w.rc, HX_EAUTH);
    struct wthread u;
    wstart(&u, coord_endpoint(c), "stranger", "right");
    pthread_join(u.t, NULL);
    ASSERT_EQ(u.rc, HX_EINVAL);
    int covered = 1;
    ASSERT_EQ(coord_ready_count(c, &covered), 0);
    coord_free(c);
}

TEST(runtime_coord_survives_worker_loss)
{
    quiet(LOG_LEVEL_OFF);
    /* "full" holds every layer; "p1" -> "p2" is a second route. */
    struct coord_node_spec nodes[3] = {{"full", 0, 6, 1.0}, {"p1", 0, 3, 2.0}, {"p2", 3, 6, 2.0}};
    struct coord *c = start_coord(nodes, 3, "tok");
    struct wthread w[3];
    wstart(&w[0], coord_endpoint(c), "full", "tok");
    wstart(&w[1], coord_endpoint(c), "p1", "tok");
    wstart(&w[2], coord_endpoint(c), "p2", "tok");
    struct hx_diag d;
    ASSERT_MSG(coord_wait_ready(c, 20000, &d) == 0, "%s", d.msg);
    const char *prompt = "In the beginning God created";
    struct coord_stream *s[6];
    for (int i = 0; i < 6; i++) {
        struct coord_request q = greedy(prompt, 60);
        q.ignore_eos = 1;
        ASSERT(coord_submit(c, &q, &s[i], &d) == 0);
    }
    /* let generation start, then take p2 away without a goodbye */
    struct coord_event ev;
    ASSERT(coord_stream_next(s[0], 10000, &ev) == 0);
    ASSERT_EQ(ev.type, COORD_EVENT_TEXT);
    char first[256];
    snprintf(first, sizeof(first), "%.*s", (int)ev.len, ev.text);
    wjoin(&w[2]);
    char *want = NULL;
    for (int i = 0; i < 6; i++) {
        int type = 0;
        char *rest = drain(s[i], &type, NULL, 0);
        struct strbuf sb;
        strbuf_init(&sb);
        strbuf_adds(&sb, i == 0 ? first : "");
        strbuf_adds(&sb, rest);
        xfree(rest);
        char *got = strbuf_detach(&sb, NULL);
        ASSERT_EQ(type, COORD_EVENT_DONE);
        if (!want) {
            /* the reference with EOS ignored: compare prefixes of equal length */
            want = got;
        } else {
            ASSERT_MSG(strcmp(got, want) == 0, "request %d diverged:\n%s\n%s", i, got, want);
            xfree(got);
        }
        coord_stream_free(s[i]);
    }
    /* the whole text is also the single-process text (EOS is not hit in 60 tokens or ignored) */
    char *ref = reference(prompt, 60);
    ASSERT_MSG(strncmp(ref, want, strlen(ref)) == 0, "ref '%s' got '%s'", ref, want);
    xfree(ref);
    xfree(want);
    /* some requests were on p1 -> p2 (IWRR gives that route 2/3 of the flow): re-routed */
    struct timespec ts = {0, 400 * 1000000L};
    nanosleep(&ts, NULL);
    struct strbuf m;
    strbuf_init(&m);
    coord_metrics(c, &m);
    ASSERT_MSG(strstr(m.buf, "helix_requests_rerouted_total 0\n") == NULL, "%s", m.buf);
    ASSERT(strstr(m.buf, "helix_node_up{node=\"p2\",state=\"dead\"} 0") != NULL);
    strbuf_release(&m);
    /* now lose "full" too: no route covers layers 3..5, requests end with an error */
    struct coord_request q = greedy(prompt, 200);
    q.ignore_eos = 1;
    struct coord_stream *x = NULL;
    ASSERT(coord_submit(c, &q, &x, &d) == 0);
    ASSERT(coord_stream_next(x, 10000, &ev) == 0);
    wjoin(&w[0]);
    int type = 0;
    char err[512] = "";
    char *got = drain(x, &type, err, sizeof(err));
    ASSERT_EQ(type, COORD_EVENT_ERROR);
    ASSERT_MSG(strstr(err, "no route") != NULL, "%s", err);
    xfree(got);
    coord_stream_free(x);
    coord_free(c);
    wjoin(&w[1]);
}

TEST(runtime_coord_stop_scan)
{
    const char *stops[2] = {"END", "xy"};
    int stopped = 0;
    /* "abcE" : E may start END -> hold it back */
    ASSERT_EQ(coord_stop_scan("abcE", 4, 0, stops, 2, &stopped), (size_t)3);
    ASSERT_EQ(stopped, 0);
    /* "abcEN" then "abcEND!" : stop at 3, nothing more to emit past 3 */
    ASSERT_EQ(coord_stop_scan("abcEN", 5, 3, stops, 2, &stopped), (size_t)0);
    ASSERT_EQ(stopped, 0);
    ASSERT_EQ(coord_stop_scan("abcEND!", 7, 3, stops, 2, &stopped), (size_t)0);
    ASSERT_EQ(stopped, 1);
    /* earliest of two matches wins */
    ASSERT_EQ(coord_stop_scan("a xy END", 8, 0, stops, 2, &stopped), (size_t)2);
    ASSERT_EQ(stopped, 1);
    /* no stops: everything */
    ASSERT_EQ(coord_stop_scan("hello", 5, 2, stops, 0, &stopped), (size_t)3);
    ASSERT_EQ(stopped, 0);
}

/* Send each of a few malformed messages from a DEALER named `ident` to endpoint. */
static void send_garbage(const char *endpoint, const char *ident)
{
    struct xport_ctx *ctx = NULL;
    struct xport *x = NULL;
    struct hx_diag d;
    ASSERT(xport_ctx_new(&ctx, &d) == 0);
    ASSERT(xport_dealer_connect(ctx, endpoint, ident, 0, &x, &d) == 0);
    unsigned char junk[PROTO_HEADER_BYTES];
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (unsigned char)(i * 37 + 11);
    }
    const void *f1[1] = {junk};
    size_t l1[1] = {7};
    xport_send_raw(x, f1, l1, 1, &d); /* one short frame */
    const void *f2[2] = {junk, junk};
    size_t l2[2] = {sizeof(junk), 5};
    xport_send_raw(x, f2, l2, 2, &d); /* a header of noise */
    /* a well-formed DECODE for a request nobody knows, and one whose payload lies */
    struct proto_header h;
    proto_header_init(&h, PROTO_TYPE_DECODE);
    h.request_id = 987654;
    h.n_tokens = 1;
    h.position = 3;
    h.dtype = PROTO_DTYPE_I32;
    h.payload_bytes = 4;
    h.n_hops = 1;
    h.hops[0].node = 0;
    h.hops[0].layer_start = 0;
    h.hops[0].layer_end = 3;
    int32_t tok = 5;
    uint8_t hb[PROTO_HEADER_BYTES];
    ASSERT(proto_header_encode(&h, hb, &d) == 0);
    const void *f3[2] = {hb, &tok};
    size_t l3[2] = {sizeof(hb), sizeof(tok)};
    xport_send_raw(x, f3, l3, 2, &d);
    size_t l4[2] = {sizeof(hb), 3};
    xport_send_raw(x, f3, l4, 2, &d);
    const void *f5[3] = {hb, &tok, &tok};
    size_t l5[3] = {sizeof(hb), sizeof(tok), sizeof(tok)};
    xport_send_raw(x, f5, l5, 3, &d); /* three frames */
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
    xport_free(x);
    xport_ctx_free(ctx);
}

TEST(runtime_coord_malformed_frames_drop_only_themselves)
{
    quiet(LOG_LEVEL_OFF);
    struct coord_node_spec nodes[2] = {{"a", 0, 3, 1.0}, {"b", 3, 6, 1.0}};
    struct coord *c = start_coord(nodes, 2, "tok");
    char ep[128];
    snprintf(ep, sizeof(ep), "ipc:///tmp/hx-test-coord-%d-a", (int)getpid());
    struct wthread w[2];
    wstart_ep(&w[0], coord_endpoint(c), "a", "tok", ep);
    wstart(&w[1], coord_endpoint(c), "b", "tok");
    struct hx_diag d;
    ASSERT_MSG(coord_wait_ready(c, 20000, &d) == 0, "%s", d.msg);
    /* noise to the coordinator (as a stranger and as a registered name's lookalike) */
    send_garbage(coord_endpoint(c), "mallory");
    /* and to worker a's data port, where its predecessors' activations arrive */
    send_garbage(ep, "mallory");
    const char *prompt = "In the beginning";
    struct coord_request q = greedy(prompt, 20);
    struct coord_stream *s = NULL;
    ASSERT(coord_submit(c, &q, &s, &d) == 0);
    int type = 0;
    char *got = drain(s, &type, NULL, 0);
    char *want = reference(prompt, 20);
    ASSERT_EQ(type, COORD_EVENT_DONE);
    ASSERT_MSG(strcmp(got, want) == 0, "got '%s' want '%s'", got, want);
    xfree(got);
    coord_stream_free(s);
    coord_free(c);
    wjoin(&w[0]);
    wjoin(&w[1]);
    xfree(want);
}

TEST(runtime_coord_random_and_swarm_schedulers_route)
{
    quiet(LOG_LEVEL_OFF);
    const enum coord_sched scheds[2] = {COORD_SCHED_RANDOM, COORD_SCHED_SWARM};
    char *want = reference("And God said", 16);
    for (int k = 0; k < 2; k++) {
        /* "dead" [0,4) leads nowhere (nobody starts at layer 4): random and swarm must
         * never route into it (they once did, failing those requests) */
        struct coord_node_spec nodes[4] = {
            {"full", 0, 6, 1.0}, {"p1", 0, 3, 1.0}, {"p2", 3, 6, 1.0}, {"dead", 0, 4, 1.0}};
        struct coord_opts o;
        memset(&o, 0, sizeof(o));
        o.model_dir = MODEL;
        o.workers = "tcp://127.0.0.1:*";
        o.token = "tok";
        o.n_nodes = 4;
        o.nodes = nodes;
        o.sched = scheds[k];
        o.seed = 7;
        struct coord *c = NULL;
        struct hx_diag d;
        ASSERT_MSG(coord_new(&o, &c, &d) == 0, "%s", d.msg);
        ASSERT(coord_start(c, &d) == 0);
        struct wthread w[4];
        for (int i = 0; i < 4; i++) {
            wstart(&w[i], coord_endpoint(c), nodes[i].name, "tok");
        }
        ASSERT_MSG(coord_wait_ready(c, 20000, &d) == 0, "%s", d.msg);
        struct coord_stream *s[8];
        for (int i = 0; i < 8; i++) {
            struct coord_request q = greedy("And God said", 16);
            ASSERT(coord_submit(c, &q, &s[i], &d) == 0);
        }
        for (int i = 0; i < 8; i++) {
            int type = 0;
            char *got = drain(s[i], &type, NULL, 0);
            ASSERT_EQ(type, COORD_EVENT_DONE);
            ASSERT_MSG(strcmp(got, want) == 0, "%s: got '%s'", coord_sched_name(scheds[k]), got);
            xfree(got);
            coord_stream_free(s[i]);
        }
        coord_free(c);
        for (int i = 0; i < 4; i++) {
            wjoin(&w[i]);
        }
    }
    xfree(want);
    enum coord_sched p;
    ASSERT_EQ(coord_sched_parse("swarm", &p), 0);
    ASSERT_EQ(p, COORD_SCHED_SWARM);
    ASSERT_EQ(coord_sched_parse("fastest", &p), HX_EINVAL);
}

/* The coordinator's cluster view as a JSON object, polled until pred holds (5 s at most). */
static cJSON *view_until(struct coord *c, int (*pred)(const cJSON *))
{
    for (int i = 0; i < 100; i++) {
        struct strbuf sb;
        strbuf_init(&sb);
        coord_cluster_json(c, &sb);
        cJSON *j = cJSON_Parse(sb.buf);
        ASSERT_MSG(j != NULL, "not JSON: %s", sb.buf);
        strbuf_release(&sb);
        if (pred(j)) {
            return j;
        }
        cJSON_Delete(j);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ASSERT_MSG(0, "the cluster view never reached the state waited for");
    return NULL;
}

static const cJSON *view_worker(const cJSON *j, const char *name)
{
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItem(j, "workers"))
    {
        if (strcmp(cJSON_GetObjectItem(w, "name")->valuestring, name) == 0) {
            return w;
        }
    }
    return NULL;
}

static int both_ready(const cJSON *j)
{
    return cJSON_GetObjectItem(j, "workers_ready")->valueint == 2;
}

static int has_history(const cJSON *j)
{
    const cJSON *h = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "history"), "tokens_per_s");
    const cJSON *x;
    cJSON_ArrayForEach(x, h)
    {
        if (x->valuedouble > 0) {
            return 1;
        }
    }
    return 0;
}

static int b_down(const cJSON *j)
{
    const cJSON *b = view_worker(j, "b");
    return b && strcmp(cJSON_GetObjectItem(b, "state")->valuestring, "dead") == 0;
}

TEST(runtime_coord_cluster_view)
{
    quiet(LOG_LEVEL_OFF);
    /* a can do 5 tokens/s, b only 1: the planned flow is 1 and b is the plan's bottleneck */
    struct coord_node_spec nodes[2] = {{"a", 0, 3, 5.0}, {"b", 3, 6, 1.0}};
    struct coord *c = start_coord(nodes, 2, "tok");
    struct wthread w[2];
    wstart(&w[0], coord_endpoint(c), "a", "tok");
    wstart(&w[1], coord_endpoint(c), "b", "tok");
    struct hx_diag d;
    ASSERT_MSG(coord_wait_ready(c, 20000, &d) == 0, "%s", d.msg);
    cJSON *j = view_until(c, both_ready);
    ASSERT_EQ(cJSON_GetObjectItem(j, "n_layers")->valueint, 6);
    ASSERT(fabs(cJSON_GetObjectItem(j, "planned_tokens_per_s")->valuedouble - 1.0) < 1e-9);
    const cJSON *a = view_worker(j, "a");
    const cJSON *b = view_worker(j, "b");
    ASSERT(a && b);
    ASSERT_EQ(cJSON_GetObjectItem(a, "layer_start")->valueint, 0);
    ASSERT_EQ(cJSON_GetObjectItem(a, "layer_end")->valueint, 3);
    ASSERT_EQ(cJSON_GetObjectItem(b, "layer_start")->valueint, 3);
    ASSERT_STR_EQ(cJSON_GetObjectItem(a, "device")->valuestring, "cpu");
    ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(a, "up")));
    /* idle: the cut of the plan itself, b's node edge */
    ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(b, "bottleneck")));
    ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(a, "bottleneck")));
    const cJSON *bn = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "bottleneck"), "nodes");
    ASSERT_EQ(cJSON_GetArraySize(bn), 1);
    ASSERT_STR_EQ(cJSON_GetArrayItem(bn, 0)->valuestring, "b");
    int n_reg = 0;
    int n_ready = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "events"))
    {
        n_reg += strcmp(cJSON_GetObjectItem(e, "kind")->valuestring, "register") == 0;
        n_ready += strcmp(cJSON_GetObjectItem(e, "kind")->valuestring, "ready") == 0;
    }
    ASSERT_EQ(n_reg, 2);
    ASSERT_EQ(n_ready, 2);
    cJSON_Delete(j);
    /* load: two requests of 40 tokens; the history shows the tokens, TTFT and per-token times */
    struct coord_stream *s[2];
    for (int i = 0; i < 2; i++) {
        struct coord_request q = greedy("In the beginning", 40);
        q.ignore_eos = 1;
        ASSERT(coord_submit(c, &q, &s[i], &d) == 0);
    }
    for (int i = 0; i < 2; i++) {
        int type = 0;
        xfree(drain(s[i], &type, NULL, 0));
        ASSERT_EQ(type, COORD_EVENT_DONE);
        coord_stream_free(s[i]);
    }
    j = view_until(c, has_history);
    const cJSON *rq = cJSON_GetObjectItem(j, "requests");
    ASSERT_EQ(cJSON_GetObjectItem(rq, "completed")->valueint, 2);
    ASSERT_EQ(cJSON_GetObjectItem(rq, "tokens_generated")->valueint, 80);
    const cJSON *h = cJSON_GetObjectItem(j, "history");
    int n_ttft = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(h, "ttft_ms"))
    {
        n_ttft += cJSON_IsNumber(e) && e->valuedouble > 0;
    }
    ASSERT(n_ttft >= 1);
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(h, "t_s")),
              cJSON_GetArraySize(cJSON_GetObjectItem(h, "tpot_ms")));
    cJSON_Delete(j);
    struct strbuf m;
    strbuf_init(&m);
    coord_metrics(c, &m);
    ASSERT_MSG(strstr(m.buf, "helix_time_to_first_token_seconds_count 2\n") != NULL, "%s", m.buf);
    ASSERT(strstr(m.buf, "helix_time_per_output_token_seconds_count 78\n") != NULL);
    strbuf_release(&m);
    /* b goes away: shown dead, with a "down" event; the bottleneck drops it */
    wjoin(&w[1]);
    j = view_until(c, b_down);
    b = view_worker(j, "b");
    ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(b, "up")));
    ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(b, "bottleneck")));
    e = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "events"), 0); /* newest first */
    ASSERT_STR_EQ(cJSON_GetObjectItem(e, "kind")->valuestring, "down");
    ASSERT_STR_EQ(cJSON_GetObjectItem(e, "node")->valuestring, "b");
    cJSON_Delete(j);
    coord_free(c);
    wjoin(&w[0]);
}

/*
 * 22 equal replicas share the flow evenly, 4.5 % each: Helix's Fail-Flow rule (under 5 % of the
 * sender's out-flow) alone would mask every one and no request could be routed (found with 64
 * workers on the dashboard). Requests must be served, and by more than one replica.
 */
TEST(runtime_coord_wide_fanout_routes)
{
    quiet(LOG_LEVEL_OFF);
    enum { N = 22 };
    struct coord_node_spec nodes[N];
    for (int i = 0; i < N; i++) {
        snprintf(nodes[i].name, sizeof(nodes[i].name), "r%d", i);
        nodes[i].layer_start = 0;
        nodes[i].layer_end = 6;
        nodes[i].capacity = 1.0;
    }
    struct coord *c = start_coord(nodes, N, "tok");
    struct wthread *w = xcalloc(N, sizeof(*w));
    for (int i = 0; i < N; i++) {
        wstart(&w[i], coord_endpoint(c), nodes[i].name, "tok");
    }
    struct hx_diag d;
    ASSERT_MSG(coord_wait_ready(c, 30000, &d) == 0, "%s", d.msg);
    struct coord_stream *s[8];
    for (int i = 0; i < 8; i++) {
        struct coord_request q = greedy("In the beginning", 8);
        ASSERT(coord_submit(c, &q, &s[i], &d) == 0);
    }
    for (int i = 0; i < 8; i++) {
        int type = 0;
        char err[512] = "";
        xfree(drain(s[i], &type, err, sizeof(err)));
        ASSERT_MSG(type == COORD_EVENT_DONE, "request %d: %s", i, err);
        coord_stream_free(s[i]);
    }
    struct timespec ts = {0, 400 * 1000000L};
    nanosleep(&ts, NULL);
    struct strbuf m;
    strbuf_init(&m);
    coord_metrics(c, &m);
    int used = 0;
    for (int i = 0; i < N; i++) {
        char key[64];
        snprintf(key, sizeof(key), "helix_node_tokens_total{node=\"r%d\"} 0\n", i);
        used += strstr(m.buf, key) == NULL;
    }
    ASSERT_MSG(used >= 2, "only %d replicas served", used);
    strbuf_release(&m);
    coord_free(c);
    for (int i = 0; i < N; i++) {
        wjoin(&w[i]);
    }
    xfree(w);
}
