/*
 * log.c - stderr logger with a wall-clock timestamp. The level is the only process-wide
 * state, set once by the CLI (an atomic, so readers in worker threads are safe).
 */
#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_int level_now = -1;

static int env_level(void)
{
    const char *e = getenv("HX_LOG");
    if (!e) {
        return LOG_LEVEL_INFO;
    }
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(e, names[i]) == 0) {
            return i;
        }
    }
    return LOG_LEVEL_INFO;
}

void log_set_level(enum log_level level)
{
    atomic_store(&level_now, (int)level);
}

enum log_level log_get_level(void)
{
    int l = atomic_load(&level_now);
    if (l < 0) {
        l = env_level();
        atomic_store(&level_now, l);
    }
    return (enum log_level)l;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level < (int)log_get_level()) {
        return;
    }
    static const char *tags[] = {"debug", "info", "warn", "error", ""};
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld hx: %s: ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L, tags[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line)) {
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    }
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
