/*
 * test_runtime_worker.c - the worker's pure helpers: `--mem-bytes` parsing (rt_size_parse),
 * the KV budget a memory cap leaves (worker_mem_budget) and the activation allowance
 * (worker_act_bytes).
 */
#include <stdint.h>
#include <string.h>

#include "base/status.h"
#include "engine/engine.h"
#include "runtime/runtime.h"
#include "test.h"

TEST(runtime_worker_size_parse)
{
    uint64_t v = 1;
    ASSERT_OK(rt_size_parse("0", &v));
    ASSERT_EQ(v, 0);
    ASSERT_OK(rt_size_parse("4096", &v));
    ASSERT_EQ(v, 4096);
    ASSERT_OK(rt_size_parse("4096B", &v));
    ASSERT_EQ(v, 4096);
    ASSERT_OK(rt_size_parse("512M", &v));
    ASSERT_EQ(v, 512ull << 20);
    ASSERT_OK(rt_size_parse("40G", &v));
    ASSERT_EQ(v, 40ull << 30);
    ASSERT_OK(rt_size_parse("40g", &v));
    ASSERT_EQ(v, 40ull << 30);
    ASSERT_OK(rt_size_parse("1GiB", &v));
    ASSERT_EQ(v, 1ull << 30);
    ASSERT_OK(rt_size_parse("8KB", &v));
    ASSERT_EQ(v, 8192);
    ASSERT_OK(rt_size_parse("2T", &v));
    ASSERT_EQ(v, 2ull << 40);
    ASSERT_OK(rt_size_parse("18446744073709551615", &v));
    ASSERT_EQ(v, UINT64_MAX);
    ASSERT_OK(rt_size_parse("16777215T", &v));
    ASSERT_EQ(v, 16777215ull << 40);
    static const char *bad[] = {
        "",         "G",   "-1",  "+5",  " 5",   "5 ",  "1.5G",
        "5Q",       "5GG", "5Gi", "5iB", "0x10", "1e9", "18446744073709551616",
        "16777216T"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 7;
        ASSERT_MSG(rt_size_parse(bad[i], &v) == HX_EINVAL, "accepted '%s'", bad[i]);
        ASSERT_EQ(v, 0);
    }
    ASSERT_ERR(rt_size_parse(NULL, &v), HX_EINVAL);
}

TEST(runtime_worker_mem_budget)
{
    uint64_t kv = 1;
    struct hx_diag d = {0};
    ASSERT_OK(worker_mem_budget(1000, 600, 100, 0, 4, &kv, &d));
    ASSERT_EQ(kv, 300);
    /* the weights alone do not fit: both numbers in the message */
    ASSERT_ERR(worker_mem_budget(1000, 1500, 100, 2, 6, &kv, &d), HX_ERANGE);
    ASSERT_EQ(kv, 0);
    ASSERT_CONTAINS(d.msg, "--mem-bytes 1000");
    ASSERT_CONTAINS(d.msg, "1500 bytes");
    ASSERT_CONTAINS(d.msg, "[2, 6)");
    hx_diag_clear(&d);
    ASSERT_ERR(worker_mem_budget(1000, 1000, 0, 0, 1, &kv, &d), HX_ERANGE);
    /* weights fit, activations leave nothing */
    hx_diag_clear(&d);
    ASSERT_ERR(worker_mem_budget(1000, 600, 400, 0, 4, &kv, &d), HX_ERANGE);
    ASSERT_CONTAINS(d.msg, "weights 600");
    ASSERT_CONTAINS(d.msg, "activations 400");
    ASSERT_OK(worker_mem_budget(UINT64_MAX, UINT64_MAX - 2, 1, 0, 1, &kv, NULL));
    ASSERT_EQ(kv, 1);
}

TEST(runtime_worker_act_bytes)
{
    struct eng_config c;
    memset(&c, 0, sizeof(c));
    c.hidden = 288;
    c.n_heads = 6;
    c.n_kv_heads = 2;
    c.head_dim = 48;
    c.ffn = 768;
    c.vocab = 512;
    /* per token: 3*288 + 2*288 + 2*96 + 2*768 floats (+ 512 logits on the last stage) */
    uint64_t mid = 4ull * 256 * (3 * 288 + 2 * 288 + 2 * 96 + 2 * 768);
    ASSERT_EQ(worker_act_bytes(&c, 256, 0), mid);
    ASSERT_EQ(worker_act_bytes(&c, 256, 1), mid + 4ull * 256 * 512);
    ASSERT_EQ(worker_act_bytes(&c, 0, 1), 0);
}
