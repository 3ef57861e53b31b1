/*
 * cpus.h - CPU lists in Linux cpulist syntax ("0-3,8,10-11", as in
 * /sys/devices/system/cpu/online and `taskset -c`) and pinning a process to one, for
 * `helix worker --cpus` and `helix profile --cpus`: CPU workers of one host on disjoint cores.
 *
 * A list is a set of CPU numbers 0 .. RT_CPUS_MAX-1 (glibc's CPU_SETSIZE). Parsing is pure;
 * rt_cpus_online reads sysfs and rt_cpus_pin changes the affinity of every thread of the
 * process (so pin before starting threads that should be pinned from birth: later threads
 * inherit the mask anyway).
 */
#ifndef HX_RUNTIME_CPUS_H
#define HX_RUNTIME_CPUS_H

#include <stddef.h>
#include <stdint.h>

struct hx_diag;

#define RT_CPUS_MAX 1024

/* A set of CPUs (callers allocate it; zero-initialised = empty). */
struct rt_cpus {
    uint64_t bits[RT_CPUS_MAX / 64];
};

/*
 * Parse a cpulist: comma-separated items, each a CPU number N or an inclusive range N-M
 * (N <= M), decimal; blanks around items and a trailing newline are allowed; items may
 * overlap. Returns 0 with *out filled (never empty), or HX_EINVAL with diag naming the item
 * ("cpu list \"0-3,x\": item 2 \"x\": ...") and *out empty.
 */
int rt_cpus_parse(const char *list, struct rt_cpus *out, struct hx_diag *diag);

/* Number of CPUs in c. */
int rt_cpus_count(const struct rt_cpus *c);
/* 1 if cpu is in c (0 for numbers out of range). */
int rt_cpus_has(const struct rt_cpus *c, int cpu);
/* Add cpu (ignored out of range). */
void rt_cpus_add(struct rt_cpus *c, int cpu);
/*
 * Write c in canonical cpulist form ("0-3,8,10-11"; "" when empty) into buf[0..n), cut to
 * fit (a cut list ends in "..."). Returns buf.
 */
char *rt_cpus_format(const struct rt_cpus *c, char *buf, size_t n);

/*
 * The online CPUs (/sys/devices/system/cpu/online; where that cannot be read, 0 ..
 * sysconf(_SC_NPROCESSORS_ONLN)-1). Returns 0, or HX_EIO when neither says anything.
 */
int rt_cpus_online(struct rt_cpus *out, struct hx_diag *diag);

/*
 * Check that every CPU of want is in online. Returns 0, or HX_EINVAL with diag naming the
 * CPUs that are not ("CPUs 8,9 are not online (online: 0-7)").
 */
int rt_cpus_check_online(const struct rt_cpus *want, const struct rt_cpus *online,
                         struct hx_diag *diag);

/*
 * Pin the whole process to c: every existing thread (/proc/self/task) gets the affinity
 * mask c, and threads started later inherit it. Checks first that c is online and allowed to
 * this process (its cgroup cpuset / an outer taskset); afterwards that the kernel kept exactly
 * c. Returns 0, HX_EINVAL (not online, not allowed: diag names the CPUs) or HX_EIO.
 */
int rt_cpus_pin(const struct rt_cpus *c, struct hx_diag *diag);

#endif
