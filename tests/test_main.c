/*
 * test_main.c - the test runner. The build generates test_list.h (one TEST_ENTRY(name) per
 * TEST() found in tests/unit). Each test runs in a forked child, up to HX_TEST_JOBS at a time
 * (default 2), each with a timeout (HX_TEST_TIMEOUT seconds, default 300). Output is TAP,
 * and the last line is "N passed, N failed, N skipped", which CI reads.
 * Usage: test_runner [substring...]   (runs tests whose name contains any substring)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define TEST_ENTRY(name) void test_##name(void);
#include "test_list.h"
#undef TEST_ENTRY

struct test_case {
    const char *name;
    void (*fn)(void);
};

static const struct test_case all_tests[] = {
#define TEST_ENTRY(name) {#name, test_##name},
#include "test_list.h"
#undef TEST_ENTRY
};

#define N_TESTS (sizeof(all_tests) / sizeof(all_tests[0]))

struct running {
    pid_t pid;
    size_t idx;
    double start;
    char log[64];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int selected(const char *name, int argc, char **argv)
{
    if (argc <= 1) {
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (strstr(name, argv[i])) {
            return 1;
        }
    }
    return 0;
}

static void dump_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return;
    }
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        fprintf(stdout, "#   %s", line);
        size_t n = strlen(line);
        if (n && line[n - 1] != '\n') {
            fputc('\n', stdout);
        }
    }
    fclose(f);
}

static const char *skip_reason(const char *path, char *buf, size_t n)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) {
        return buf;
    }
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "# SKIP ", 7) == 0) {
            snprintf(buf, n, "%s", line + 7);
            buf[strcspn(buf, "\n")] = '\0';
        }
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    const char *jobs_env = getenv("HX_TEST_JOBS");
    const char *timeout_env = getenv("HX_TEST_TIMEOUT");
    int jobs = jobs_env ? (int)strtol(jobs_env, NULL, 10) : 2;
    double timeout = timeout_env ? strtod(timeout_env, NULL) : 300.0;
    if (jobs < 1) {
        jobs = 1;
    }
    char tmpdir[] = "/tmp/hx-test-XXXXXX";
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    size_t todo[N_TESTS > 0 ? N_TESTS : 1];
    size_t n_todo = 0;
    for (size_t i = 0; i < N_TESTS; i++) {
        if (selected(all_tests[i].name, argc, argv)) {
            todo[n_todo++] = i;
        }
    }
    printf("TAP version 13\n1..%zu\n", n_todo);
    fflush(stdout);

    struct running run[64];
    if (jobs > 64) {
        jobs = 64;
    }
    int n_run = 0;
    size_t next = 0;
    int passed = 0;
    int failed = 0;
    int skipped = 0;
    size_t reported = 0;
    double t0 = now_s();
    while (next < n_todo || n_run > 0) {
        while (n_run < jobs && next < n_todo) {
            struct running *r = &run[n_run];
            r->idx = next;
            snprintf(r->log, sizeof(r->log), "%s/%zu.log", tmpdir, next);
            fflush(stdout);
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                return 1;
            }
            if (pid == 0) {
                FILE *lf = freopen(r->log, "w", stderr);
                if (lf) {
                    dup2(fileno(stderr), STDOUT_FILENO);
                }
                setvbuf(stdout, NULL, _IONBF, 0);
                all_tests[todo[next]].fn();
                fflush(stdout);
                _exit(0);
            }
            r->pid = pid;
            r->start = now_s();
            n_run++;
            next++;
        }
        int status = 0;
        pid_t done = waitpid(-1, &status, WNOHANG);
        if (done == 0) {
            /* Nothing finished: enforce timeouts, then sleep briefly. */
            for (int i = 0; i < n_run; i++) {
                if (now_s() - run[i].start > timeout) {
                    kill(run[i].pid, SIGKILL);
                }
            }
            usleep(2000);
            continue;
        }
        if (done < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        for (int i = 0; i < n_run; i++) {
            if (run[i].pid != done) {
                continue;
            }
            struct running r = run[i];
            run[i] = run[--n_run];
            const char *name = all_tests[todo[r.idx]].name;
            double secs = now_s() - r.start;
            reported++;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                passed++;
                printf("ok %zu - %s (%.2fs)\n", reported, name, secs);
                if (getenv("HX_TEST_SHOW")) { /* what the passing test printed */
                    dump_file(r.log);
                }
            } else if (WIFEXITED(status) && WEXITSTATUS(status) == TEST_SKIP_CODE) {
                char why[512];
                skipped++;
                printf("ok %zu - %s # SKIP %s\n", reported, name,
                       skip_reason(r.log, why, sizeof(why)));
            } else {
                failed++;
                if (WIFSIGNALED(status)) {
                    printf("not ok %zu - %s (signal %d%s, %.2fs)\n", reported, name,
                           WTERMSIG(status), secs > timeout ? ", timeout" : "", secs);
                } else {
                    printf("not ok %zu - %s (exit %d, %.2fs)\n", reported, name,
                           WEXITSTATUS(status), secs);
                }
                dump_file(r.log);
            }
            fflush(stdout);
            unlink(r.log);
            break;
        }
    }
    rmdir(tmpdir);
    printf("# unit tests took %.1fs\n", now_s() - t0);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
