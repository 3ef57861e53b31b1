/*
 * cpus.c - cpulist parsing and formatting, the online CPUs, and pinning every thread of the
 * process (see cpus.h).
 *
 * sched_setaffinity on one thread leaves the others where they were, and libraries start
 * threads before main (OpenBLAS's pool, for one), so rt_cpus_pin walks /proc/self/task and
 * sets each thread's mask; threads started afterwards (the engine's pool, ZeroMQ's I/O
 * threads) inherit it from the thread that starts them.
 */
#define _GNU_SOURCE /* sched_setaffinity, cpu_set_t */
#include "runtime/cpus.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/status.h"

void rt_cpus_add(struct rt_cpus *c, int cpu)
{
    if (cpu >= 0 && cpu < RT_CPUS_MAX) {
        c->bits[cpu / 64] |= (uint64_t)1 << (cpu % 64);
    }
}

int rt_cpus_has(const struct rt_cpus *c, int cpu)
{
    return cpu >= 0 && cpu < RT_CPUS_MAX && ((c->bits[cpu / 64] >> (cpu % 64)) & 1);
}

int rt_cpus_count(const struct rt_cpus *c)
{
    int n = 0;
    for (int i = 0; i < RT_CPUS_MAX / 64; i++) {
        n += __builtin_popcountll(c->bits[i]);
    }
    return n;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A CPU number: decimal digits, < RT_CPUS_MAX. Advances *p. 0, or -1 (no digits, too big). */
static int cpu_number(const char **p, const char *end, int *out)
{
    const char *s = *p;
    long v = 0;
    int digits = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v >= RT_CPUS_MAX) {
            return -1;
        }
        s++;
        digits++;
    }
    if (!digits) {
        return -1;
    }
    *p = s;
    *out = (int)v;
    return 0;
}

int rt_cpus_parse(const char *list, struct rt_cpus *out, struct hx_diag *d)
{
    memset(out, 0, sizeof(*out));
    if (!list) {
        return hx_diag_set(d, HX_EINVAL, "cpu list: NULL");
    }
    const char *p = list;
    int item = 0;
    for (;;) {
        item++;
        const char *end = strchr(p, ',');
        if (!end) {
            end = p + strlen(p);
        }
        const char *a = p;
        const char *b = end;
        while (a < b && is_blank(*a)) {
            a++;
        }
        while (b > a && is_blank(b[-1])) {
            b--;
        }
        const char *s = a;
        int lo = 0;
        int hi = 0;
        const char *why = NULL;
        if (a == b) {
            why = item == 1 && !*end ? "empty (want CPU numbers such as 0-3,8)" : "empty item";
        } else if (cpu_number(&s, b, &lo) != 0) {
            why = "not a CPU number (0..1023) or range N-M";
        } else if (s == b) {
            hi = lo;
        } else if (*s != '-' || (s++, cpu_number(&s, b, &hi) != 0) || s != b) {
            why = "not a CPU number (0..1023) or range N-M";
        } else if (hi < lo) {
            why = "range N-M with M < N";
        }
        if (why) {
            memset(out, 0, sizeof(*out));
            return hx_diag_set(d, HX_EINVAL, "cpu list \"%.64s\": item %d \"%.*s\": %s", list, item,
                               (int)(b - a > 32 ? 32 : b - a), a, why);
        }
        for (int c = lo; c <= hi; c++) {
            rt_cpus_add(out, c);
        }
        if (!*end) {
            return HX_OK;
        }
        p = end + 1;
    }
}

char *rt_cpus_format(const struct rt_cpus *c, char *buf, size_t n)
{
    if (n == 0) {
        return buf;
    }
    buf[0] = '\0';
    size_t len = 0;
    int first = 1;
    for (int i = 0; i < RT_CPUS_MAX; i++) {
        if (!rt_cpus_has(c, i)) {
            continue;
        }
        int j = i;
        while (j + 1 < RT_CPUS_MAX && rt_cpus_has(c, j + 1)) {
            j++;
        }
        char item[32];
        if (j == i) {
            snprintf(item, sizeof(item), "%s%d", first ? "" : ",", i);
        } else {
            snprintf(item, sizeof(item), "%s%d-%d", first ? "" : ",", i, j);
        }
        size_t il = strlen(item);
        if (len + il + 1 > n) {
            /* cut: end in "..." where it fits */
            size_t at = n >= 4 ? (len + 4 <= n ? len : n - 4) : 0;
            snprintf(buf + at, n - at, "%s", n >= 4 ? "..." : "");
            return buf;
        }
        memcpy(buf + len, item, il + 1);
        len += il;
        first = 0;
        i = j;
    }
    return buf;
}

int rt_cpus_online(struct rt_cpus *out, struct hx_diag *d)
{
    memset(out, 0, sizeof(*out));
    FILE *f = fopen("/sys/devices/system/cpu/online", "r");
    if (f) {
        char line[4096];
        int ok = fgets(line, sizeof(line), f) != NULL;
        fclose(f);
        if (ok && rt_cpus_parse(line, out, NULL) == HX_OK) {
            return HX_OK;
        }
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) {
        return hx_diag_set(d, HX_EIO, "cannot tell which CPUs are online");
    }
    for (long i = 0; i < n && i < RT_CPUS_MAX; i++) {
        rt_cpus_add(out, (int)i);
    }
    return HX_OK;
}

/* The CPUs of want that are not in have, or none. */
static int missing(const struct rt_cpus *want, const struct rt_cpus *have, struct rt_cpus *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < RT_CPUS_MAX / 64; i++) {
        out->bits[i] = want->bits[i] & ~have->bits[i];
    }
    return rt_cpus_count(out);
}

int rt_cpus_check_online(const struct rt_cpus *want, const struct rt_cpus *online,
                         struct hx_diag *d)
{
    struct rt_cpus off;
    int n = missing(want, online, &off);
    if (n == 0) {
        return HX_OK;
    }
    char a[128];
    char b[128];
    return hx_diag_set(d, HX_EINVAL, "CPU%s %s %s not online (online: %s)", n > 1 ? "s" : "",
                       rt_cpus_format(&off, a, sizeof(a)), n > 1 ? "are" : "is",
                       rt_cpus_format(online, b, sizeof(b)));
}

static void to_set(const struct rt_cpus *c, cpu_set_t *s)
{
    CPU_ZERO(s);
    for (int i = 0; i < RT_CPUS_MAX && i < CPU_SETSIZE; i++) {
        if (rt_cpus_has(c, i)) {
            CPU_SET(i, s);
        }
    }
}

static void from_set(const cpu_set_t *s, struct rt_cpus *c)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < RT_CPUS_MAX && i < CPU_SETSIZE; i++) {
        if (CPU_ISSET(i, s)) {
            rt_cpus_add(c, i);
        }
    }
}

int rt_cpus_pin(const struct rt_cpus *c, struct hx_diag *d)
{
    if (rt_cpus_count(c) == 0) {
        return hx_diag_set(d, HX_EINVAL, "cpu list is empty");
    }
    struct rt_cpus online;
    int rc = rt_cpus_online(&online, d);
    if (rc == HX_OK) {
        rc = rt_cpus_check_online(c, &online, d);
    }
    if (rc != HX_OK) {
        return rc;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0) {
        return hx_diag_set(d, HX_EIO, "sched_getaffinity: %s", strerror(errno));
    }
    struct rt_cpus allowed;
    from_set(&set, &allowed);
    struct rt_cpus denied;
    int n = missing(c, &allowed, &denied);
    if (n > 0) {
        char a[128];
        char b[128];
        return hx_diag_set(d, HX_EINVAL,
                           "CPU%s %s %s online but not allowed to this process (allowed: %s)",
                           n > 1 ? "s" : "", rt_cpus_format(&denied, a, sizeof(a)),
                           n > 1 ? "are" : "is", rt_cpus_format(&allowed, b, sizeof(b)));
    }
    to_set(c, &set);
    /* this thread first: threads it starts from now on inherit the mask */
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
        return hx_diag_set(d, HX_EIO, "sched_setaffinity: %s", strerror(errno));
    }
    DIR *dir = opendir("/proc/self/task");
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            char *endp = NULL;
            long tid = strtol(e->d_name, &endp, 10);
            if (tid <= 0 || !endp || *endp) {
                continue;
            }
            /* a thread that has exited meanwhile (ESRCH) needs no mask */
            if (sched_setaffinity((pid_t)tid, sizeof(set), &set) != 0 && errno != ESRCH) {
                int e2 = errno;
                closedir(dir);
                return hx_diag_set(d, HX_EIO, "sched_setaffinity(thread %ld): %s", tid,
                                   strerror(e2));
            }
        }
        closedir(dir);
    }
    cpu_set_t got;
    if (sched_getaffinity(0, sizeof(got), &got) != 0) {
        return hx_diag_set(d, HX_EIO, "sched_getaffinity: %s", strerror(errno));
    }
    if (!CPU_EQUAL(&got, &set)) {
        struct rt_cpus now;
        from_set(&got, &now);
        char a[128];
        char b[128];
        return hx_diag_set(d, HX_EIO, "asked for CPUs %s, the kernel kept %s",
                           rt_cpus_format(c, a, sizeof(a)), rt_cpus_format(&now, b, sizeof(b)));
    }
    return HX_OK;
}
