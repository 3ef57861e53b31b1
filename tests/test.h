/*
 * test.h - the C test harness (libuv's task.h shape). A test is
 *
 *     TEST(flow_matches_bruteforce) { ... ASSERT_EQ(a, b); ... }
 *
 * in any file under tests/unit; the build collects every TEST(name) into the runner's list,
 * so adding a test needs no registration. Each test runs in its own forked child with a
 * timeout; a failed assert prints both values with file:line and ends the child.
 * Tests run from the repository root, so data paths are relative to it.
 */
#ifndef HX_TESTS_TEST_H
#define HX_TESTS_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"

#define TEST(name)                                                                                 \
    void test_##name(void);                                                                        \
    void test_##name(void)

/* Exit code a child uses to report a skip (automake's convention). */
#define TEST_SKIP_CODE 77

#define TEST_FAIL_(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);                                     \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        fflush(stderr);                                                                            \
        exit(1);                                                                                   \
    } while (0)

/* Skip the current test with a reason (for missing optional tools, never to hide failures). */
#define TEST_SKIP(...)                                                                             \
    do {                                                                                           \
        fprintf(stdout, "# SKIP ");                                                                \
        fprintf(stdout, __VA_ARGS__);                                                              \
        fprintf(stdout, "\n");                                                                     \
        fflush(stdout);                                                                            \
        exit(TEST_SKIP_CODE);                                                                      \
    } while (0)

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            TEST_FAIL_("assertion failed: %s", #cond);                                             \
        }                                                                                          \
    } while (0)

#define ASSERT_MSG(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  note: ");                                                           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            TEST_FAIL_("assertion failed: %s", #cond);                                             \
        }                                                                                          \
    } while (0)

#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a);                                                             \
        long long b_ = (long long)(b);                                                             \
        if (a_ != b_) {                                                                            \
            TEST_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);                                  \
        }                                                                                          \
    } while (0)

#define ASSERT_NE(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a);                                                             \
        long long b_ = (long long)(b);                                                             \
        if (a_ == b_) {                                                                            \
            TEST_FAIL_("%s != %s: both %lld", #a, #b, a_);                                         \
        }                                                                                          \
    } while (0)

#define ASSERT_LE(a, b)                                                                            \
    do {                                                                                           \
        double a_ = (double)(a);                                                                   \
        double b_ = (double)(b);                                                                   \
        if (!(a_ <= b_)) {                                                                         \
            TEST_FAIL_("%s <= %s: %.10g > %.10g", #a, #b, a_, b_);                                 \
        }                                                                                          \
    } while (0)

#define ASSERT_GE(a, b) ASSERT_LE(b, a)

#define ASSERT_DBL_NEAR(a, b, tol)                                                                 \
    do {                                                                                           \
        double a_ = (double)(a);                                                                   \
        double b_ = (double)(b);                                                                   \
        if (!(fabs(a_ - b_) <= (double)(tol))) {                                                   \
            TEST_FAIL_("%s ~= %s: %.10g vs %.10g (tol %g)", #a, #b, a_, b_, (double)(tol));        \
        }                                                                                          \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a);                                                                      \
        const char *b_ = (b);                                                                      \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                   \
            TEST_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",                   \
                       b_ ? b_ : "(null)");                                                        \
        }                                                                                          \
    } while (0)

/* expr returns an hx status; it must be HX_OK. */
#define ASSERT_OK(expr)                                                                            \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0) {                                                                            \
            TEST_FAIL_("%s: %s (%d)", #expr, hx_errname(rc_), rc_);                                \
        }                                                                                          \
    } while (0)

/* Like ASSERT_OK, and prints the diag message on failure. */
#define ASSERT_OK_DIAG(expr, diag)                                                                 \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0) {                                                                            \
            TEST_FAIL_("%s: %s (%d): %s", #expr, hx_errname(rc_), rc_, (diag)->msg);               \
        }                                                                                          \
    } while (0)

/* expr must fail with exactly code. */
#define ASSERT_ERR(expr, code)                                                                     \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != (code)) {                                                                       \
            TEST_FAIL_("%s: expected %s, got %s (%d)", #expr, hx_errname(code), hx_errname(rc_),   \
                       rc_);                                                                       \
        }                                                                                          \
    } while (0)

/* haystack must contain needle (for checking that error messages name file/line/key). */
#define ASSERT_CONTAINS(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack);                                                               \
        const char *n_ = (needle);                                                                 \
        if (!h_ || !strstr(h_, n_)) {                                                              \
            TEST_FAIL_("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_);                  \
        }                                                                                          \
    } while (0)

/* ||a - b|| / ||b|| over n floats, in double (the engine tests' error measure). */
static inline double test_rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0.0;
    double den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return sqrt(num / (den > 0 ? den : 1e-300));
}

#endif
