/*
 * status.c - messages for the error table and the diagnostic setter.
 */
#include "base/status.h"

#include <stdarg.h>
#include <stdio.h>

const char *hx_strerror(int code)
{
    switch (code) {
    case HX_OK:
        return "success";
#define HX_ERR_MSG(name, val, msg)                                                                 \
    case HX_##name:                                                                                \
        return msg;
        HX_ERRORS(HX_ERR_MSG)
#undef HX_ERR_MSG
    default:
        return "unknown error";
    }
}

const char *hx_errname(int code)
{
    switch (code) {
    case HX_OK:
        return "HX_OK";
#define HX_ERR_NAME(name, val, msg)                                                                \
    case HX_##name:                                                                                \
        return "HX_" #name;
        HX_ERRORS(HX_ERR_NAME)
#undef HX_ERR_NAME
    default:
        return "HX_UNKNOWN";
    }
}

int hx_diag_set(struct hx_diag *diag, int code, const char *fmt, ...)
{
    if (diag && diag->code == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
        va_end(ap);
        diag->code = code;
    }
    return code;
}

void hx_diag_clear(struct hx_diag *diag)
{
    if (diag) {
        diag->code = 0;
        diag->msg[0] = '\0';
    }
}
