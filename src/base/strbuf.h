/*
 * strbuf.h - a growable, always NUL-terminated byte string (git's strbuf).
 * Invariant: buf is never NULL after strbuf_init; buf[len] == '\0'.
 */
#ifndef HX_BASE_STRBUF_H
#define HX_BASE_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
    char *buf;
    size_t len;
    size_t cap;
};

void strbuf_init(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);
void strbuf_reset(struct strbuf *sb);
void strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_add(struct strbuf *sb, const void *data, size_t n);
void strbuf_adds(struct strbuf *sb, const char *s);
void strbuf_addc(struct strbuf *sb, char c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Hand the buffer to the caller (free with xfree); sb is re-initialised. */
char *strbuf_detach(struct strbuf *sb, size_t *len_out);

/* Read a whole file into sb (appending). Returns 0 or HX_EIO. */
int strbuf_read_file(struct strbuf *sb, const char *path);

#endif
