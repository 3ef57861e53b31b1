/*
 * alloc.c - counting allocator. Each block carries a 16-byte header holding its size so
 * live/peak counts are exact; counters are atomics so worker threads can allocate freely.
 */
#include "base/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HDR 16

static atomic_size_t live_bytes;
static atomic_size_t peak_bytes;
static atomic_long fail_countdown;

static void account(size_t add, size_t sub)
{
    size_t now = atomic_fetch_add(&live_bytes, add) + add;
    atomic_fetch_sub(&live_bytes, sub);
    now -= sub;
    size_t peak = atomic_load(&peak_bytes);
    while (now > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, now)) {
    }
}

static void *raw_alloc(size_t n, int zero)
{
    if (n > SIZE_MAX - HDR) {
        return NULL;
    }
    unsigned char *p = zero ? calloc(1, n + HDR) : malloc(n + HDR);
    if (!p) {
        return NULL;
    }
    memcpy(p, &n, sizeof(n));
    account(n, 0);
    return p + HDR;
}

static void *raw_realloc(void *old, size_t n)
{
    if (!old) {
        return raw_alloc(n, 0);
    }
    if (n > SIZE_MAX - HDR) {
        return NULL;
    }
    unsigned char *base = (unsigned char *)old - HDR;
    size_t was;
    memcpy(&was, base, sizeof(was));
    unsigned char *p = realloc(base, n + HDR);
    if (!p) {
        return NULL;
    }
    memcpy(p, &n, sizeof(n));
    account(n, was);
    return p + HDR;
}

static int injected_failure(void)
{
    long c = atomic_load(&fail_countdown);
    if (c <= 0) {
        return 0;
    }
    return atomic_fetch_sub(&fail_countdown, 1) == 1;
}

static void oom(size_t n)
{
    fprintf(stderr, "hx: fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = raw_alloc(n, 0);
    if (!p) {
        oom(n);
    }
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) {
        oom(SIZE_MAX);
    }
    void *p = raw_alloc(count * size, 1);
    if (!p) {
        oom(count * size);
    }
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = raw_realloc(p, n);
    if (!q) {
        oom(n);
    }
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = xmalloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void xfree(void *p)
{
    if (!p) {
        return;
    }
    unsigned char *base = (unsigned char *)p - HDR;
    size_t was;
    memcpy(&was, base, sizeof(was));
    account(0, was);
    free(base);
}

void *hx_malloc(size_t n)
{
    return injected_failure() ? NULL : raw_alloc(n, 0);
}

void *hx_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) {
        return NULL;
    }
    return injected_failure() ? NULL : raw_alloc(count * size, 1);
}

void *hx_realloc(void *p, size_t n)
{
    return injected_failure() ? NULL : raw_realloc(p, n);
}

size_t hx_alloc_live_bytes(void)
{
    return atomic_load(&live_bytes);
}

size_t hx_alloc_peak_bytes(void)
{
    return atomic_load(&peak_bytes);
}

void hx_alloc_fail_nth(long nth)
{
    atomic_store(&fail_countdown, nth);
}
