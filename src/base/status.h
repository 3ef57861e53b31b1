/*
 * status.h - the project-wide error table and the diagnostic record.
 *
 * Every function that can fail returns int: HX_OK (0) or one of the negative codes below.
 * Detail (which file, line, key; which constraint) goes into a caller-owned struct hx_diag,
 * so library modules never print. The table is an X-macro (libuv's UV_ERRNO_MAP) so the enum,
 * the names and the messages cannot drift apart.
 */
#ifndef HX_BASE_STATUS_H
#define HX_BASE_STATUS_H

#include <stddef.h>

#define HX_ERRORS(X)                                                                               \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EIO, -3, "input/output error")                                                               \
    X(EPARSE, -4, "parse error")                                                                   \
    X(EINFEASIBLE, -5, "infeasible")                                                               \
    X(EPROTO, -6, "protocol error")                                                                \
    X(ETIMEDOUT, -7, "timed out")                                                                  \
    X(ECLOSED, -8, "connection closed")                                                            \
    X(EDEVICE, -9, "device error")                                                                 \
    X(ENOTFOUND, -10, "not found")                                                                 \
    X(ERANGE, -11, "value out of range")                                                           \
    X(EFULL, -12, "capacity exhausted")                                                            \
    X(ENOTSUP, -13, "not supported")                                                               \
    X(EAUTH, -14, "authentication failed")                                                         \
    X(ESOLVER, -15, "solver failure")

enum hx_status {
    HX_OK = 0,
#define HX_ERR_ENUM(name, val, msg) HX_##name = (val),
    HX_ERRORS(HX_ERR_ENUM)
#undef HX_ERR_ENUM
};

/* Human-readable message for a status code; never NULL. */
const char *hx_strerror(int code);
/* Symbolic name ("HX_EPARSE") for a status code; never NULL. */
const char *hx_errname(int code);

/*
 * Caller-owned error detail. A failing library call fills msg with one line that names
 * the file, line and key (or the object) at fault. Zero-initialise before use.
 */
struct hx_diag {
    int code;
    char msg[512];
};

/*
 * Record an error in diag (diag may be NULL) and return code, so callers can write
 * `return hx_diag_set(d, HX_EPARSE, "%s:%d: bad value", file, line);`.
 * A diag that already holds an error keeps the first one unless it is cleared.
 */
int hx_diag_set(struct hx_diag *diag, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Clear diag (NULL is fine). */
void hx_diag_clear(struct hx_diag *diag);

#endif
