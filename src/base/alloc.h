/*
 * alloc.h - the one allocation choke point.
 *
 * Control-plane allocations use x*alloc, which abort on failure (git, redis): a coordinator
 * that cannot allocate a few hundred bytes cannot do anything useful. Data-plane allocations
 * (weights, KV cache, request bodies, solver matrices) use hx_malloc/hx_calloc, which return
 * NULL so the caller can propagate HX_ENOMEM. Every byte is counted; tests can make the
 * Nth fallible allocation fail (SQLite's test_malloc.c).
 */
#ifndef HX_BASE_ALLOC_H
#define HX_BASE_ALLOC_H

#include <stddef.h>

/* Aborting allocators (never return NULL). xfree(NULL) does nothing. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void xfree(void *p);

/* Fallible allocators: NULL on failure (or on an injected failure). Free with xfree. */
void *hx_malloc(size_t n);
void *hx_calloc(size_t count, size_t size);
void *hx_realloc(void *p, size_t n);

/* Bytes currently allocated through this module, and the high-water mark. Thread-safe. */
size_t hx_alloc_live_bytes(void);
size_t hx_alloc_peak_bytes(void);

/*
 * Fault injection for tests: the nth fallible allocation from now (1 = the next one) fails;
 * 0 disables. Aborting allocators are never failed.
 */
void hx_alloc_fail_nth(long nth);

#endif
