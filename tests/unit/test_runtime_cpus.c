/*
 * test_runtime_cpus.c - CPU lists (runtime/cpus.h): the cpulist parser on good and bad input,
 * the canonical format (and its cut), the online check, and pinning the whole process: a
 * thread started before the pin and one started after both end up on the list.
 * Each test runs in its own forked child, so a pin does not leak into other tests.
 */
#define _GNU_SOURCE /* pthread_getaffinity_np */
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "runtime/cpus.h"
#include "test.h"

static struct rt_cpus parse_ok(const char *s)
{
    struct rt_cpus c;
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(rt_cpus_parse(s, &c, &d), &d);
    return c;
}

static void parse_bad(const char *s, const char *want)
{
    struct rt_cpus c;
    struct hx_diag d = {0};
    ASSERT_ERR(rt_cpus_parse(s, &c, &d), HX_EINVAL);
    ASSERT_EQ(rt_cpus_count(&c), 0);
    ASSERT_CONTAINS(d.msg, want);
}

TEST(runtime_cpus_parse_and_format)
{
    char buf[64];
    struct rt_cpus c = parse_ok("0-3,8,10-11");
    ASSERT_EQ(rt_cpus_count(&c), 7);
    ASSERT(rt_cpus_has(&c, 0) && rt_cpus_has(&c, 3) && rt_cpus_has(&c, 8));
    ASSERT(!rt_cpus_has(&c, 4) && !rt_cpus_has(&c, 9) && !rt_cpus_has(&c, 12));
    ASSERT(!rt_cpus_has(&c, -1) && !rt_cpus_has(&c, RT_CPUS_MAX));
    ASSERT_STR_EQ(rt_cpus_format(&c, buf, sizeof(buf)), "0-3,8,10-11");

    c = parse_ok("7");
    ASSERT_EQ(rt_cpus_count(&c), 1);
    ASSERT_STR_EQ(rt_cpus_format(&c, buf, sizeof(buf)), "7");
    /* overlaps, unsorted items, blanks and sysfs's trailing newline; canonical on output */
    c = parse_ok(" 5, 2-4 ,3,1023, 0-1\n");
    ASSERT_EQ(rt_cpus_count(&c), 7);
    ASSERT_STR_EQ(rt_cpus_format(&c, buf, sizeof(buf)), "0-5,1023");
    c = parse_ok("63-64");
    ASSERT_STR_EQ(rt_cpus_format(&c, buf, sizeof(buf)), "63-64"); /* across a word */

    /* a list too long for the buffer is cut and says so */
    c = parse_ok("0,2,4,6,8,10,12,14,16,18");
    ASSERT_STR_EQ(rt_cpus_format(&c, buf, 12), "0,2,4,6,...");
    ASSERT(strlen(buf) < 12);
    struct rt_cpus empty;
    memset(&empty, 0, sizeof(empty));
    ASSERT_STR_EQ(rt_cpus_format(&empty, buf, sizeof(buf)), "");
}

TEST(runtime_cpus_parse_bad)
{
    parse_bad("", "cpu list \"\": item 1 \"\": empty");
    parse_bad("  \n", "item 1");
    parse_bad("0-3,", "item 2 \"\": empty item");
    parse_bad(",1", "item 1 \"\": empty item");
    parse_bad("0,,2", "item 2");
    parse_bad("0-3,x", "cpu list \"0-3,x\": item 2 \"x\": not a CPU number");
    parse_bad("3-1", "item 1 \"3-1\": range N-M with M < N");
    parse_bad("1-", "item 1 \"1-\": not a CPU number");
    parse_bad("-1", "item 1 \"-1\"");
    parse_bad("1-2-3", "item 1 \"1-2-3\"");
    parse_bad("1024", "item 1 \"1024\": not a CPU number (0..1023)");
    parse_bad("0-99999999999999999999", "item 1");
    parse_bad("1 2", "item 1 \"1 2\"");
    parse_bad("0x1", "item 1");
    parse_bad("+1", "item 1");
    struct rt_cpus c;
    ASSERT_ERR(rt_cpus_parse(NULL, &c, NULL), HX_EINVAL);
}

TEST(runtime_cpus_online_check)
{
    struct rt_cpus online = parse_ok("0-7");
    struct hx_diag d = {0};
    struct rt_cpus want = parse_ok("2-5");
    ASSERT_OK(rt_cpus_check_online(&want, &online, &d));
    want = parse_ok("6-9");
    ASSERT_ERR(rt_cpus_check_online(&want, &online, &d), HX_EINVAL);
    ASSERT_CONTAINS(d.msg, "CPUs 8-9 are not online (online: 0-7)");
    hx_diag_clear(&d);
    want = parse_ok("12");
    ASSERT_ERR(rt_cpus_check_online(&want, &online, &d), HX_EINVAL);
    ASSERT_CONTAINS(d.msg, "CPU 12 is not online");

    /* this machine: at least one CPU, and every CPU we may run on is online */
    struct rt_cpus here;
    ASSERT_OK(rt_cpus_online(&here, &d));
    ASSERT(rt_cpus_count(&here) >= 1);
    cpu_set_t set;
    ASSERT_OK(sched_getaffinity(0, sizeof(set), &set));
    for (int i = 0; i < RT_CPUS_MAX && i < CPU_SETSIZE; i++) {
        if (CPU_ISSET(i, &set)) {
            ASSERT(rt_cpus_has(&here, i));
        }
    }
}

static void *idle_thread(void *arg)
{
    pthread_barrier_t *b = arg;
    pthread_barrier_wait(b); /* started */
    pthread_barrier_wait(b); /* checked */
    return NULL;
}

static int thread_on_only(pthread_t t, int cpu)
{
    cpu_set_t s;
    if (pthread_getaffinity_np(t, sizeof(s), &s) != 0) {
        return 0;
    }
    return CPU_COUNT(&s) == 1 && CPU_ISSET(cpu, &s);
}

TEST(runtime_cpus_pin_all_threads)
{
    cpu_set_t set;
    ASSERT_OK(sched_getaffinity(0, sizeof(set), &set));
    int cpu = -1; /* the highest CPU we may use: not CPU 0 where there are several */
    for (int i = 0; i < CPU_SETSIZE; i++) {
        if (CPU_ISSET(i, &set)) {
            cpu = i;
        }
    }
    ASSERT(cpu >= 0);
    pthread_barrier_t b_before;
    pthread_barrier_init(&b_before, NULL, 2);
    pthread_t before;
    ASSERT_OK(pthread_create(&before, NULL, idle_thread, &b_before));
    pthread_barrier_wait(&b_before);

    struct rt_cpus c;
    memset(&c, 0, sizeof(c));
    rt_cpus_add(&c, cpu);
    struct hx_diag d = {0};
    ASSERT_OK_DIAG(rt_cpus_pin(&c, &d), &d);
    ASSERT(thread_on_only(pthread_self(), cpu));
    ASSERT(thread_on_only(before, cpu)); /* a thread that was already running */

    pthread_barrier_t b_after;
    pthread_barrier_init(&b_after, NULL, 2);
    pthread_t after;
    ASSERT_OK(pthread_create(&after, NULL, idle_thread, &b_after));
    pthread_barrier_wait(&b_after);
    ASSERT(thread_on_only(after, cpu)); /* inherited */
    pthread_barrier_wait(&b_before);
    pthread_barrier_wait(&b_after);
    pthread_join(before, NULL);
    pthread_join(after, NULL);
    pthread_barrier_destroy(&b_before);
    pthread_barrier_destroy(&b_after);

    /* a CPU that is not online (no machine here has 1024) is refused, the mask unchanged */
    memset(&c, 0, sizeof(c));
    rt_cpus_add(&c, RT_CPUS_MAX - 1);
    ASSERT_ERR(rt_cpus_pin(&c, &d), HX_EINVAL);
    ASSERT_CONTAINS(d.msg, "CPU 1023 is not online");
    ASSERT(thread_on_only(pthread_self(), cpu));
    memset(&c, 0, sizeof(c));
    hx_diag_clear(&d);
    ASSERT_ERR(rt_cpus_pin(&c, &d), HX_EINVAL);
}
