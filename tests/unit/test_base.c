/*
 * test_base.c - base module: error table, diag, allocator accounting and fault injection,
 * strbuf, Python rounding.
 */
#include "base/alloc.h"
#include "base/pymath.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "test.h"

TEST(base_status_names)
{
    ASSERT_STR_EQ(hx_errname(HX_EPARSE), "HX_EPARSE");
    ASSERT_STR_EQ(hx_strerror(HX_OK), "success");
    ASSERT_STR_EQ(hx_errname(12345), "HX_UNKNOWN");
}

TEST(base_diag_keeps_first_error)
{
    struct hx_diag d = {0};
    ASSERT_EQ(hx_diag_set(&d, HX_EPARSE, "a.ini:%d: key '%s'", 3, "type"), HX_EPARSE);
    hx_diag_set(&d, HX_EIO, "second");
    ASSERT_EQ(d.code, HX_EPARSE);
    ASSERT_STR_EQ(d.msg, "a.ini:3: key 'type'");
    hx_diag_clear(&d);
    ASSERT_EQ(d.code, 0);
}

TEST(base_alloc_counts_and_injects)
{
    size_t before = hx_alloc_live_bytes();
    char *p = xmalloc(1000);
    ASSERT_EQ(hx_alloc_live_bytes() - before, 1000);
    p = xrealloc(p, 3000);
    ASSERT_EQ(hx_alloc_live_bytes() - before, 3000);
    xfree(p);
    ASSERT_EQ(hx_alloc_live_bytes(), before);
    hx_alloc_fail_nth(2);
    void *a = hx_malloc(8);
    void *b = hx_malloc(8);
    void *c = hx_malloc(8);
    ASSERT(a != NULL);
    ASSERT(b == NULL);
    ASSERT(c != NULL);
    xfree(a);
    xfree(c);
    xfree(NULL);
}

TEST(base_strbuf)
{
    struct strbuf sb;
    strbuf_init(&sb);
    ASSERT_STR_EQ(sb.buf, "");
    for (int i = 0; i < 100; i++) {
        strbuf_addf(&sb, "%d,", i);
    }
    ASSERT_EQ(sb.len, 290);
    ASSERT(strncmp(sb.buf, "0,1,2,", 6) == 0);
    size_t len = 0;
    char *s = strbuf_detach(&sb, &len);
    ASSERT_EQ(len, 290);
    ASSERT_EQ(sb.len, 0);
    xfree(s);
    strbuf_release(&sb);
}

TEST(base_py_round_half_even)
{
    ASSERT_DBL_NEAR(py_round(0.5), 0.0, 0);
    ASSERT_DBL_NEAR(py_round(1.5), 2.0, 0);
    ASSERT_DBL_NEAR(py_round(2.5), 2.0, 0);
    ASSERT_DBL_NEAR(py_round(-2.5), -2.0, 0);
    ASSERT_DBL_NEAR(py_round(2.6), 3.0, 0);
    ASSERT_DBL_NEAR(py_round(4503599627370497.0), 4503599627370497.0, 0);
    ASSERT_DBL_NEAR(py_int(-2.7), -2.0, 0);
}
