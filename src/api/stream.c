/*
 * stream.c - struct api_stream: a reference-counted, mutex+condvar queue of token pieces from
 * one producer (the backend, any thread) to one consumer (an HTTP connection thread).
 *
 * Invariants: once `ended` or `cancelled` is set, pushes fail with HX_ECLOSED and the state
 * never changes back; the backend's cancel runs at most once, and never after the backend
 * itself ended the stream; the last api_stream_unref frees the stream, whichever side drops
 * last.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/api_int.h"
#include "base/alloc.h"
#include "base/status.h"
#include "base/strbuf.h"

struct api_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int refs;
    uint64_t id;
    void *user;
    void (*cancel_fn)(void *, struct api_stream *);
    void *cancel_ctx;
    /* protected by mu: */
    struct strbuf text;
    size_t *lens;
    size_t n_pieces;
    size_t cap_pieces;
    int ended;
    enum api_finish reason;
    int err_code;
    char err_msg[512];
    uint32_t prompt_tokens;
    int cancelled;
    int cancel_called;
};

void api_take_init(struct api_take *t)
{
    memset(t, 0, sizeof(*t));
    strbuf_init(&t->text);
}

void api_take_release(struct api_take *t)
{
    strbuf_release(&t->text);
    xfree(t->lens);
    memset(t, 0, sizeof(*t));
    strbuf_init(&t->text);
}

struct api_stream *api_stream_new(uint64_t id, void (*cancel_fn)(void *, struct api_stream *),
                                  void *cancel_ctx)
{
    struct api_stream *s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->refs, 1);
    s->id = id;
    s->cancel_fn = cancel_fn;
    s->cancel_ctx = cancel_ctx;
    strbuf_init(&s->text);
    return s;
}

void api_stream_ref(struct api_stream *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void api_stream_unref(struct api_stream *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1) {
        return;
    }
    strbuf_release(&s->text);
    xfree(s->lens);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    xfree(s);
}

uint64_t api_stream_id(const struct api_stream *s)
{
    return s->id;
}

void api_stream_set_user(struct api_stream *s, void *user)
{
    pthread_mutex_lock(&s->mu);
    s->user = user;
    pthread_mutex_unlock(&s->mu);
}

void *api_stream_get_user(const struct api_stream *s)
{
    struct api_stream *m = (struct api_stream *)s; /* the mutex is not part of the value */
    pthread_mutex_lock(&m->mu);
    void *u = m->user;
    pthread_mutex_unlock(&m->mu);
    return u;
}

void api_stream_set_prompt_tokens(struct api_stream *s, uint32_t n)
{
    pthread_mutex_lock(&s->mu);
    s->prompt_tokens = n;
    pthread_mutex_unlock(&s->mu);
}

int api_stream_push(struct api_stream *s, const char *text, size_t len)
{
    pthread_mutex_lock(&s->mu);
    if (s->ended || s->cancelled) {
        pthread_mutex_unlock(&s->mu);
        return HX_ECLOSED;
    }
    if (s->n_pieces == s->cap_pieces) {
        s->cap_pieces = s->cap_pieces ? 2 * s->cap_pieces : 16;
        s->lens = xrealloc(s->lens, s->cap_pieces * sizeof(*s->lens));
    }
    s->lens[s->n_pieces++] = len;
    if (len) {
        strbuf_add(&s->text, text, len);
    }
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return HX_OK;
}

int api_stream_finish(struct api_stream *s, enum api_finish reason)
{
    pthread_mutex_lock(&s->mu);
    if (s->ended || s->cancelled) {
        pthread_mutex_unlock(&s->mu);
        return HX_ECLOSED;
    }
    s->ended = 1;
    s->reason = reason == API_FINISH_LENGTH ? API_FINISH_LENGTH : API_FINISH_STOP;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return HX_OK;
}

int api_stream_fail(struct api_stream *s, int code, const char *fmt, ...)
{
    pthread_mutex_lock(&s->mu);
    if (s->ended || s->cancelled) {
        pthread_mutex_unlock(&s->mu);
        return HX_ECLOSED;
    }
    s->ended = 1;
    s->err_code = code < 0 ? code : HX_EIO;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err_msg, sizeof(s->err_msg), fmt, ap);
    va_end(ap);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return HX_OK;
}

int api_stream_cancelled(const struct api_stream *s)
{
    struct api_stream *m = (struct api_stream *)s;
    pthread_mutex_lock(&m->mu);
    int c = m->cancelled;
    pthread_mutex_unlock(&m->mu);
    return c;
}

int api_stream_take(struct api_stream *s, int wait_ms, struct api_take *t)
{
    t->text.len = 0;
    if (t->text.cap) {
        t->text.buf[0] = '\0';
    }
    t->n_pieces = 0;
    pthread_mutex_lock(&s->mu);
    if (s->n_pieces == 0 && !s->ended && wait_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (s->n_pieces == 0 && !s->ended) {
            if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0) {
                break; /* timed out */
            }
        }
    }
    /* Swap buffers: the producer keeps appending into t's old (emptied) storage. */
    struct strbuf tmp = t->text;
    t->text = s->text;
    s->text = tmp;
    size_t *tl = t->lens;
    size_t tc = t->cap_pieces;
    t->lens = s->lens;
    t->cap_pieces = s->cap_pieces;
    t->n_pieces = s->n_pieces;
    s->lens = tl;
    s->cap_pieces = tc;
    s->n_pieces = 0;
    t->ended = s->ended;
    t->reason = s->reason;
    t->err_code = s->err_code;
    memcpy(t->err_msg, s->err_msg, sizeof(t->err_msg));
    t->prompt_tokens = s->prompt_tokens;
    pthread_mutex_unlock(&s->mu);
    return t->n_pieces > 0 || t->ended;
}

void api_stream_cancel(struct api_stream *s)
{
    pthread_mutex_lock(&s->mu);
    int call = !s->ended && !s->cancel_called && s->cancel_fn;
    s->cancelled = 1;
    s->cancel_called = 1;
    pthread_mutex_unlock(&s->mu);
    if (call) {
        s->cancel_fn(s->cancel_ctx, s);
    }
}
