/*
 * test_core_parse.c - the value grammar, the INI layer and every reader's error paths: each
 * malformed input fails with the right code and a message naming file, line and key.
 */
#include <string.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "core/core.h"
#include "test.h"

/* rc must be code and d->msg must contain each of the NULL-terminated needles. */
static void expect(int rc, int code, const struct hx_diag *d, const char *n1, const char *n2,
                   const char *n3)
{
    if (rc != code) {
        TEST_FAIL_("expected %s, got %s: %s", hx_errname(code), hx_errname(rc), d->msg);
    }
    const char *n[] = {n1, n2, n3};
    for (int i = 0; i < 3; i++) {
        if (n[i] && !strstr(d->msg, n[i])) {
            TEST_FAIL_("message \"%s\" lacks \"%s\"", d->msg, n[i]);
        }
    }
}

TEST(core_value_grammar)
{
    struct hx_diag d = {0};
    struct cfg_value v;
    ASSERT_OK(cfg_value_parse("1000 * mbps", "w", &v, &d));
    ASSERT_EQ(v.kind, CFG_VALUE_NUMBER);
    ASSERT_DBL_NEAR(v.number, 1e9, 0);
    ASSERT_STR_EQ(v.unit, "mbps");
    cfg_value_release(&v);
    double x = 0;
    ASSERT_OK(cfg_number_parse("12.5*gbps", "w", &x, &d));
    ASSERT_DBL_NEAR(x, 12.5e9, 0);
    ASSERT_OK(cfg_number_parse(" 1.53e9 ", "w", &x, &d));
    ASSERT_DBL_NEAR(x, 1.53e9, 0);
    ASSERT_OK(cfg_number_parse("-1", "w", &x, &d));
    ASSERT_DBL_NEAR(x, -1, 0);
    ASSERT_OK(cfg_number_parse("55 * MilliSec", "w", &x, &d));
    ASSERT_DBL_NEAR(x, 55 * 0.001, 0);
    static const struct {
        const char *u;
        double mult;
    } units[] = {{"kbps", 1e3}, {"mbps", 1e6}, {"gbps", 1e9}, {"Byte", 1},       {"KB", 1e3},
                 {"MB", 1e6},   {"GB", 1e9},   {"Sec", 1},    {"MilliSec", 1e-3}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "3 * %s", units[i].u);
        ASSERT_OK(cfg_number_parse(buf, "w", &x, &d));
        ASSERT_DBL_NEAR(x, 3 * units[i].mult, 0);
    }
    ASSERT_OK(cfg_value_parse("[0, 1, 'source', 'sink']", "w", &v, &d));
    ASSERT_EQ(v.kind, CFG_VALUE_LIST);
    ASSERT_EQ(v.n_items, 4);
    ASSERT_DBL_NEAR(v.items[1].number, 1, 0);
    ASSERT_STR_EQ(v.items[3].str, "sink");
    cfg_value_release(&v);
    ASSERT_OK(cfg_value_parse("[]", "w", &v, &d));
    ASSERT_EQ(v.n_items, 0);
    cfg_value_release(&v);
    ASSERT_OK(cfg_value_parse("\"A100\"", "w", &v, &d));
    ASSERT(v.kind == CFG_VALUE_STRING && v.quoted);
    ASSERT_STR_EQ(v.str, "A100");
    cfg_value_release(&v);
    ASSERT_OK(cfg_value_parse("L4", "w", &v, &d));
    ASSERT(v.kind == CFG_VALUE_STRING && !v.quoted);
    ASSERT_STR_EQ(v.str, "L4");
    cfg_value_release(&v);

    expect(cfg_number_parse("1.2.3", "f.ini:3: [S] k", &x, &d), HX_EPARSE, &d, "f.ini:3: [S] k",
           "bad number", NULL);
    hx_diag_clear(&d);
    expect(cfg_number_parse("1000 * mbit", "f.ini:4: [S] bandwidth", &x, &d), HX_EPARSE, &d,
           "f.ini:4: [S] bandwidth", "unknown unit 'mbit'", NULL);
    hx_diag_clear(&d);
    expect(cfg_number_parse("12 *", "w", &x, &d), HX_EPARSE, &d, "missing unit", NULL, NULL);
    hx_diag_clear(&d);
    expect(cfg_number_parse("0x10", "w", &x, &d), HX_EPARSE, &d, "bad number", NULL, NULL);
    hx_diag_clear(&d);
    expect(cfg_number_parse("inf", "w", &x, &d), HX_EPARSE, &d, "bad number", NULL, NULL);
    hx_diag_clear(&d);
    expect(cfg_number_parse("1e999", "w", &x, &d), HX_EPARSE, &d, "bad number", NULL, NULL);
    hx_diag_clear(&d);
    expect(cfg_value_parse("[0, 1", "f.ini:9: [S] l", &v, &d), HX_EPARSE, &d, "f.ini:9: [S] l",
           "unterminated list", NULL);
    hx_diag_clear(&d);
    expect(cfg_value_parse("[0 1]", "w", &v, &d), HX_EPARSE, &d, "expected ','", NULL, NULL);
    hx_diag_clear(&d);
    expect(cfg_value_parse("[[0]]", "w", &v, &d), HX_EPARSE, &d, "nested", NULL, NULL);
    hx_diag_clear(&d);
    expect(cfg_value_parse("['a, 1]", "w", &v, &d), HX_EPARSE, &d, "unterminated string", NULL,
           NULL);
    hx_diag_clear(&d);
    expect(cfg_value_parse("[x]", "w", &v, &d), HX_EPARSE, &d, "bad list item", NULL, NULL);
    hx_diag_clear(&d);
    expect(cfg_value_parse("12 abc", "w", &v, &d), HX_EPARSE, &d, "after value", NULL, NULL);
    hx_diag_clear(&d);
    expect(cfg_value_parse("   ", "w", &v, &d), HX_EPARSE, &d, "empty value", NULL, NULL);
}

TEST(core_pyfloat_repr)
{
    static const struct {
        double x;
        const char *want;
    } cases[] = {{10000.0, "10000.0"},
                 {0.001, "0.001"},
                 {1.0, "1.0"},
                 {51.00000000000001, "51.00000000000001"},
                 {14.1, "14.1"},
                 {1e16, "1e+16"},
                 {1.5e-7, "1.5e-07"},
                 {0.0001, "0.0001"},
                 {-2.5, "-2.5"},
                 {123456789012345.0, "123456789012345.0"},
                 {0.1 + 0.2, "0.30000000000000004"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct strbuf sb;
        strbuf_init(&sb);
        cfg_format_pyfloat(&sb, cases[i].x);
        ASSERT_STR_EQ(sb.buf, cases[i].want);
        strbuf_release(&sb);
    }
}

TEST(core_ini_layer)
{
    struct hx_diag d = {0};
    struct cfg_ini *ini = NULL;
    /* a 6000-byte value line (libinih's buffer is 200), comments, case-folded keys */
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_adds(&sb, "# comment\n; another\n[A]\nKey = 1 * KB\n[B]\nnames=[");
    for (int i = 0; i < 600; i++) {
        strbuf_addf(&sb, "%s'n%04d'", i ? ", " : "", i);
    }
    strbuf_adds(&sb, "]\n[Empty]\n");
    ASSERT_OK_DIAG(cfg_ini_parse_string(sb.buf, "t.ini", &ini, &d), &d);
    strbuf_release(&sb);
    ASSERT_EQ(ini->n_sections, 3);
    const struct cfg_section *a = cfg_ini_section(ini, "A");
    ASSERT(a && a->line == 3);
    ASSERT_STR_EQ(a->entries[0].key, "key");
    ASSERT_EQ(a->entries[0].line, 4);
    double x = 0;
    ASSERT_OK(cfg_ini_get_number(ini, "A", "KEY", &x, &d));
    ASSERT_DBL_NEAR(x, 1000, 0);
    struct cfg_value v;
    ASSERT_OK_DIAG(cfg_ini_get_value(ini, "B", "names", &v, &d), &d);
    ASSERT_EQ(v.n_items, 600);
    ASSERT_STR_EQ(v.items[599].str, "n0599");
    cfg_value_release(&v);
    ASSERT(cfg_ini_section(ini, "Empty") != NULL);
    expect(cfg_ini_get_number(ini, "A", "missing", &x, &d), HX_ENOTFOUND, &d, "t.ini:3: [A]",
           "missing key 'missing'", NULL);
    hx_diag_clear(&d);
    expect(cfg_ini_get_number(ini, "Nope", "k", &x, &d), HX_ENOTFOUND, &d, "t.ini",
           "missing section [Nope]", NULL);
    hx_diag_clear(&d);
    cfg_ini_free(ini);

    expect(cfg_ini_parse_string("k=1\n[A]\n", "t.ini", &ini, &d), HX_EPARSE, &d,
           "t.ini:1:", "before any [section]", NULL);
    hx_diag_clear(&d);
    expect(cfg_ini_parse_string("[A]\nk=1\nK=2\n", "t.ini", &ini, &d), HX_EPARSE, &d,
           "t.ini:3: [A] k", "duplicate key", NULL);
    hx_diag_clear(&d);
    expect(cfg_ini_parse_string("[A]\n[B]\n[A]\n", "t.ini", &ini, &d), HX_EPARSE, &d,
           "t.ini:3:", "duplicate section [A]", NULL);
    hx_diag_clear(&d);
    expect(cfg_ini_parse_string("[A]\nk=1\njunk line\n", "t.ini", &ini, &d), HX_EPARSE, &d,
           "t.ini:3:", "expected", NULL);
    hx_diag_clear(&d);
    expect(cfg_ini_parse_string("[A]\n[]\n", "t.ini", &ini, &d), HX_EPARSE, &d,
           "t.ini:2:", "empty section", NULL);
    ASSERT(ini == NULL);
}

static const char good_cluster[] = "[NodeNames]\n"                                 /* 1 */
                                   "total_compute_nodes=2\n"                       /* 2 */
                                   "[SourceNode]\n"                                /* 3 */
                                   "connected_nodes=[0]\n"                         /* 4 */
                                   "[SinkNode]\n"                                  /* 5 */
                                   "connected_nodes=[1]\n"                         /* 6 */
                                   "[ComputeNode-0]\n"                             /* 7 */
                                   "type=A100\n"                                   /* 8 */
                                   "connected_nodes=['source', 1]\n"               /* 9 */
                                   "[ComputeNode-1]\n"                             /* 10 */
                                   "type=L4\n"                                     /* 11 */
                                   "connected_nodes=[0, 'sink']\n"                 /* 12 */
                                   "[Link-source-0]\n"                             /* 13 */
                                   "bandwidth=10 * mbps\nlatency=1 * MilliSec\n"   /* 14,15 */
                                   "[Link-0-1]\n"                                  /* 16 */
                                   "bandwidth=1000 * mbps\nlatency=1 * MilliSec\n" /* 17,18 */
                                   "[Link-1-sink]\n"                               /* 19 */
                                   "bandwidth=10 * mbps\nlatency=2 * MilliSec\n";  /* 20,21 */

/* good_cluster with the first occurrence of `from` replaced by `to`. */
static char *patched(const char *from, const char *to)
{
    const char *p = strstr(good_cluster, from);
    ASSERT(p != NULL);
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_add(&sb, good_cluster, (size_t)(p - good_cluster));
    strbuf_adds(&sb, to);
    strbuf_adds(&sb, p + strlen(from));
    return strbuf_detach(&sb, NULL);
}

static void cluster_err(const char *from, const char *to, int code, const char *n1, const char *n2)
{
    struct hx_diag d = {0};
    struct cluster *c = NULL;
    char *text = patched(from, to);
    expect(cluster_parse_string(text, "c.ini", &c, &d), code, &d, n1, n2, NULL);
    ASSERT(c == NULL);
    xfree(text);
}

TEST(core_cluster_parse)
{
    struct hx_diag d = {0};
    struct cluster *c = NULL;
    ASSERT_OK_DIAG(cluster_parse_string(good_cluster, "c.ini", &c, &d), &d);
    ASSERT_EQ(c->n_nodes, 2);
    ASSERT_EQ(c->n_links, 3);
    ASSERT_STR_EQ(c->nodes[1].type, "L4");
    ASSERT(c->nodes[0].from_source && !c->nodes[0].to_sink && c->nodes[1].to_sink);
    int li = cluster_link_index(c, 1, CLUSTER_SINK);
    ASSERT(li == 2);
    ASSERT_DBL_NEAR(c->links[li].latency_s, 0.002, 0);
    ASSERT_EQ(cluster_link_index(c, 1, 0), 1);
    ASSERT_EQ(cluster_link_index(c, CLUSTER_SOURCE, 1), -1);
    cluster_free(c);

    cluster_err("total_compute_nodes=2", "total_compute_nodes=two", HX_EPARSE,
                "c.ini:2: [NodeNames] total_compute_nodes", "bad number");
    cluster_err("total_compute_nodes=2", "total_compute_nodes=0", HX_ERANGE,
                "c.ini:2: [NodeNames] total_compute_nodes", "outside");
    cluster_err("total_compute_nodes=2", "total_compute_nodes=3", HX_ENOTFOUND,
                "missing section [ComputeNode-2]", NULL);
    cluster_err("type=L4\n", "", HX_ENOTFOUND, "c.ini:10: [ComputeNode-1] type",
                "missing key 'type'");
    cluster_err("[Link-0-1]", "[Link-0-9]", HX_ERANGE, "c.ini:16: [Link-0-9]", "node out of range");
    cluster_err("[ComputeNode-1]", "[ComputeNode-5]", HX_ENOTFOUND,
                "missing section [ComputeNode-1]", NULL);
    cluster_err("[Link-0-1]", "[Link-0-x]", HX_EPARSE, "c.ini:16: [Link-0-x]", "link name");
    cluster_err("[Link-0-1]", "[Link-sink-0]", HX_EPARSE, "c.ini:16: [Link-sink-0]", NULL);
    cluster_err("bandwidth=1000 * mbps", "bandwidth=1000 * mbit", HX_EPARSE,
                "c.ini:17: [Link-0-1] bandwidth", "unknown unit");
    cluster_err("bandwidth=1000 * mbps", "bandwidth=0 * mbps", HX_ERANGE,
                "c.ini:17: [Link-0-1] bandwidth", NULL);
    cluster_err("latency=2 * MilliSec\n", "", HX_ENOTFOUND, "c.ini:19: [Link-1-sink] latency",
                NULL);
    cluster_err("connected_nodes=[0]", "connected_nodes=[0, 1]", HX_ENOTFOUND,
                "c.ini:4: [SourceNode] connected_nodes", "no [Link-...]");
    cluster_err("connected_nodes=['source', 1]", "connected_nodes=['source']", HX_EPARSE,
                "c.ini:9: [ComputeNode-0] connected_nodes", "not listed");
    cluster_err("connected_nodes=['source', 1]", "connected_nodes=['source', 1, 1]", HX_EPARSE,
                "c.ini:9: [ComputeNode-0] connected_nodes", "twice");
    cluster_err("connected_nodes=['source', 1]", "connected_nodes=['source', 7]", HX_ERANGE,
                "c.ini:9: [ComputeNode-0] connected_nodes", NULL);
    cluster_err("connected_nodes=[0, 'sink']", "connected_nodes=[0, 'sink'", HX_EPARSE,
                "c.ini:12: [ComputeNode-1] connected_nodes", "unterminated list");
    cluster_err("[Link-1-sink]", "[Link-0-1]", HX_EPARSE, "c.ini:19:", "duplicate section");
}

TEST(core_cluster_bundled_all_read)
{
    static const char *files[] = {"single24",    "single24_a100", "single24_l4",
                                  "single24_t4", "geo24",         "geo24_a100",
                                  "geo24_l4",    "geo24_t4",      "geo24_pruned12",
                                  "cluster42",   "cluster10",     "cluster42_pruned12"};
    static const int nodes[] = {24, 4, 8, 12, 24, 4, 8, 12, 24, 42, 10, 42};
    static const int links[] = {324, 14, 44, 90, 324, 14, 44, 90, 187, 945, 65, 450};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct hx_diag d = {0};
        struct cluster *c = NULL;
        char path[128];
        snprintf(path, sizeof(path), "data/clusters/%s.ini", files[i]);
        ASSERT_OK_DIAG(cluster_read_file(path, &c, &d), &d);
        ASSERT_EQ(c->n_nodes, nodes[i]);
        ASSERT_MSG(c->n_links == links[i], "%s: %d links", files[i], c->n_links);
        cluster_free(c);
    }
}

static const char good_layout[] = "[Settings]\noffset=2\n\n[Solution]\n" /* 1-4 */
                                  "compute_node_2=[0, 1, 2]\n"           /* 5 */
                                  "compute_node_3=[3, 4, 5, 6]\n";       /* 6 */

static void layout_err(const char *text, int n, int code, const char *n1, const char *n2)
{
    struct hx_diag d = {0};
    struct layout *l = NULL;
    expect(layout_parse_string(text, "l.ini", n, &l, &d), code, &d, n1, n2, NULL);
    ASSERT(l == NULL);
}

TEST(core_layout_parse_errors)
{
    struct hx_diag d = {0};
    struct layout *l = NULL;
    ASSERT_OK_DIAG(layout_parse_string(good_layout, "l.ini", 2, &l, &d), &d);
    ASSERT_EQ(l->nodes[1].start, 3);
    ASSERT_EQ(l->nodes[1].n_layers, 4);
    ASSERT_EQ(l->nodes[1].line, 6);
    layout_free(l);
    ASSERT_OK(layout_parse_string(good_layout, "l.ini", 0, &l, &d)); /* sized by the file */
    ASSERT_EQ(l->n_nodes, 2);
    layout_free(l);

    layout_err("[Settings]\noffset=2\n[Solution]\ncompute_node_2=[0, 2]\n", 2, HX_EPARSE,
               "l.ini:4: [Solution] compute_node_2", "not contiguous");
    layout_err("[Settings]\noffset=2\n[Solution]\ncompute_node_2=[0, 1, 1]\n", 2, HX_EPARSE,
               "l.ini:4: [Solution] compute_node_2", "overlap");
    layout_err("[Settings]\noffset=2\n[Solution]\ncompute_node_2=[3, 2]\n", 2, HX_EPARSE,
               "l.ini:4: [Solution] compute_node_2", "overlap");
    layout_err("[Settings]\noffset=2\n[Solution]\ncompute_node_9=[0]\n", 2, HX_ERANGE,
               "l.ini:4: [Solution] compute_node_9", "node out of range");
    layout_err("[Settings]\noffset=2\n[Solution]\ncompute_node_1=[0]\n", 2, HX_ERANGE,
               "l.ini:4: [Solution] compute_node_1", "node out of range");
    layout_err("[Settings]\noffset=2\n[Solution]\nnode_2=[0]\n", 2, HX_EPARSE,
               "l.ini:4: [Solution] node_2", "compute_node_<number>");
    layout_err("[Settings]\noffset=2\n[Solution]\ncompute_node_2=[0, -1]\n", 2, HX_EPARSE,
               "l.ini:4: [Solution] compute_node_2", "not a layer id");
    layout_err("[Settings]\noffset=2\n[Solution]\ncompute_node_2=[0, 'a']\n", 2, HX_EPARSE,
               "l.ini:4: [Solution] compute_node_2", "not a layer id");
    layout_err("[Settings]\noffset=2\n[Solution]\ncompute_node_2=0\n", 2, HX_EPARSE,
               "l.ini:4: [Solution] compute_node_2", "expected a list");
    layout_err("[Settings]\noffset=2\n[Solution]\ncompute_node_2=[0, 1\n", 2, HX_EPARSE,
               "l.ini:4: [Solution] compute_node_2", "unterminated list");
    layout_err("[Settings]\noffset=2\n", 2, HX_ENOTFOUND, "l.ini", "missing section [Solution]");
    layout_err("[Settings]\n[Solution]\n", 2, HX_ENOTFOUND, "l.ini:1: [Settings] offset",
               "missing key");
    layout_err("[Settings]\noffset=2\n[Solution]\ncompute_node_2=[0]\ncompute_node_02=[1]\n", 2,
               HX_EPARSE, "l.ini:5: [Solution] compute_node_02", "listed twice");

    /* validation against a cluster and model */
    struct cluster *c = NULL;
    struct model_profile *m = NULL;
    ASSERT_OK_DIAG(cluster_parse_string(good_cluster, "c.ini", &c, &d), &d);
    ASSERT_OK_DIAG(model_profile_read_file("data/models/llama2_70b.ini", &m, &d), &d);
    ASSERT_OK_DIAG(layout_parse_string(good_layout, "l.ini", 2, &l, &d), &d);
    ASSERT_OK_DIAG(layout_validate(l, c, m, 0, &d), &d);
    layout_free(l);
    ASSERT_OK(layout_parse_string(
        "[Settings]\noffset=2\n[Solution]\ncompute_node_2=[0]\ncompute_node_3=[78, 79, 80]\n",
        "l.ini", 2, &l, &d));
    expect(layout_validate(l, c, m, 0, &d), HX_ERANGE, &d, "l.ini:5: [Solution] compute_node_3",
           "layers beyond model", NULL);
    hx_diag_clear(&d);
    layout_free(l);
    ASSERT_OK(layout_parse_string("[Settings]\noffset=2\n[Solution]\ncompute_node_2=[0]\n"
                                  "compute_node_3=[0, 1, 2, 3, 4, 5, 6, 7]\n",
                                  "l.ini", 2, &l, &d));
    expect(layout_validate(l, c, m, 0, &d), HX_ERANGE, &d, "l.ini:5: [Solution] compute_node_3",
           "exceed max layers 7", NULL);
    hx_diag_clear(&d);
    ASSERT_OK(layout_validate(l, c, m, LAYOUT_ALLOW_OVER_MAX, &d));
    layout_free(l);
    ASSERT_OK(layout_parse_string("[Settings]\noffset=2\n[Solution]\ncompute_node_2=[0]\n", "l.ini",
                                  2, &l, &d));
    expect(layout_validate(l, c, m, LAYOUT_REQUIRE_ALL, &d), HX_EINVAL, &d,
           "[Solution] compute_node_3", "no layers", NULL);
    hx_diag_clear(&d);
    layout_free(l);
    ASSERT_OK(layout_parse_string("[Settings]\noffset=2\n[Solution]\ncompute_node_2=[0]\n", "l.ini",
                                  3, &l, &d));
    expect(layout_validate(l, c, m, 0, &d), HX_EINVAL, &d, "3 nodes", "has 2", NULL);
    layout_free(l);
    model_profile_free(m);
    cluster_free(c);
}

TEST(core_layout_write_roundtrip_random)
{
    struct layout *l = layout_new(5);
    l->nodes[0] = (struct layout_node){.start = 0, .n_layers = 3};
    l->nodes[2] = (struct layout_node){.start = 3, .n_layers = 1};
    l->nodes[4] = (struct layout_node){.start = 4, .n_layers = 76};
    struct strbuf sb;
    strbuf_init(&sb);
    layout_write(l, &sb);
    ASSERT(strstr(sb.buf, "compute_node_3=[]\n") != NULL);
    struct hx_diag d = {0};
    struct layout *back = NULL;
    ASSERT_OK_DIAG(layout_parse_string(sb.buf, "w.ini", 5, &back, &d), &d);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(back->nodes[i].start, l->nodes[i].start);
        ASSERT_EQ(back->nodes[i].n_layers, l->nodes[i].n_layers);
    }
    layout_free(back);
    layout_free(l);
    strbuf_release(&sb);
}

TEST(core_model_parse_errors)
{
    struct hx_diag d = {0};
    struct model_curve cv;
    ASSERT_OK(model_curve_parse_string("0,0\n2,1.4\n4,2\n", "p.csv", &cv, &d));
    double t = 0;
    ASSERT_OK(model_curve_eval(&cv, 3, &t));
    ASSERT_DBL_NEAR(t, 1.7e-3, 1e-15);
    ASSERT_OK(model_curve_eval(&cv, 2, &t));
    ASSERT_DBL_NEAR(t, 1.4e-3, 0);
    ASSERT_ERR(model_curve_eval(&cv, 4.5, &t), HX_ERANGE);
    ASSERT_ERR(model_curve_eval(&cv, -1, &t), HX_ERANGE);
    ASSERT_ERR(model_curve_eval(&cv, NAN, &t), HX_ERANGE);
    model_curve_release(&cv);
    expect(model_curve_parse_string("0,0\n250\n", "p.csv", &cv, &d), HX_EPARSE, &d,
           "p.csv:2:", "truncated", NULL);
    hx_diag_clear(&d);
    expect(model_curve_parse_string("0,0\n250,1\n200,2\n", "p.csv", &cv, &d), HX_EPARSE, &d,
           "p.csv:3:", "not strictly increasing", NULL);
    hx_diag_clear(&d);
    expect(model_curve_parse_string("0,0\n250,x\n", "p.csv", &cv, &d), HX_EPARSE, &d,
           "p.csv:2:", "bad number", NULL);
    hx_diag_clear(&d);
    expect(model_curve_parse_string("", "p.csv", &cv, &d), HX_EPARSE, &d, "p.csv", "empty", NULL);
    hx_diag_clear(&d);

    /* the model INI: take the bundled one and break one line at a time */
    struct strbuf sb;
    strbuf_init(&sb);
    ASSERT_OK(strbuf_read_file(&sb, "data/models/llama2_70b.ini"));
    struct model_profile *m = NULL;
    ASSERT_OK_DIAG(model_profile_parse_string(sb.buf, "m.ini", "data/models", &m, &d), &d);
    ASSERT_EQ(m->n_gpus, 7);
    ASSERT_EQ(m->gpus[model_gpu_index(m, "T4x4")].max_layers, 18);
    model_profile_free(m);
    ASSERT_OK_DIAG(model_profile_parse_string(sb.buf, "m.ini", NULL, &m, &d), &d);
    ASSERT_EQ(m->gpus[0].prompt.n, 0);
    double tt = 0;
    ASSERT_ERR(model_prompt_time(&m->gpus[0], 10, &tt), HX_ENOTFOUND);
    struct model_throughput *tp = NULL;
    int counts[7] = {1, 0, 0, 0, 0, 0, 0};
    ASSERT_ERR(model_throughput_new(m, counts, &tp, &d), HX_ENOTFOUND);
    model_profile_free(m);
    static const struct {
        const char *from;
        const char *to;
        int code;
        const char *n1;
        const char *n2;
    } breaks[] = {
        {"num_layers = 80", "num_layers = eighty", HX_EPARSE, "m.ini:6: [model] num_layers",
         "bad number"},
        {"num_layers = 80", "num_layers = 80.5", HX_EPARSE, "m.ini:6: [model] num_layers",
         "integer"},
        {"token_bytes = 2\n", "", HX_ENOTFOUND, "[model] token_bytes", "missing key"},
        {"kv_blocks = 498326 236107", "kv_blocks = 498326", HX_ERANGE, "[gpu A100] kv_blocks",
         "expected max_layers = 12"},
        {"kv_blocks = 498326 236107", "kv_blocks = 498326 x", HX_EPARSE, "[gpu A100] kv_blocks",
         "bad integer"},
        {"decode_max_tokens = 300 300 300 300", "decode_max_tokens = 300 300 300 0", HX_ERANGE,
         "[gpu T4] decode_max_tokens", "k=4"},
        {"prompt_profile = profiles/llama2_70b/a100/prompt_bs2time.csv",
         "prompt_profile = profiles/nope.csv", HX_EIO, "[gpu A100] prompt_profile", "cannot read"},
        {"typical_layers = A100 8,", "typical_layers = A200 8,", HX_ENOTFOUND,
         "[throughput_model] typical_layers", "A200"},
        {"initial_perf = A100 80,", "initial_perf = A100 -80,", HX_EPARSE,
         "[throughput_model] initial_perf", "TYPE number"},
    };
    for (size_t i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
        const char *p = strstr(sb.buf, breaks[i].from);
        ASSERT_MSG(p != NULL, "%s", breaks[i].from);
        struct strbuf t2;
        strbuf_init(&t2);
        strbuf_add(&t2, sb.buf, (size_t)(p - sb.buf));
        strbuf_adds(&t2, breaks[i].to);
        strbuf_adds(&t2, p + strlen(breaks[i].from));
        hx_diag_clear(&d);
        expect(model_profile_parse_string(t2.buf, "m.ini", "data/models", &m, &d), breaks[i].code,
               &d, breaks[i].n1, breaks[i].n2, NULL);
        ASSERT(m == NULL);
        /* every message carries a line number */
        ASSERT_MSG(strstr(d.msg, "m.ini:") != NULL, "%s", d.msg);
        strbuf_release(&t2);
    }
    strbuf_release(&sb);
}

TEST(core_sim_cluster_and_profiles_errors)
{
    struct hx_diag d = {0};
    struct strbuf sb;
    strbuf_init(&sb);
    ASSERT_OK(
        strbuf_read_file(&sb, "data/layouts/single24_70b/separate_a100_simulator_cluster.ini"));
    struct sim_cluster *sc = NULL;
    ASSERT_OK_DIAG(sim_cluster_parse_string(sb.buf, "s.ini", &sc, &d), &d);
    ASSERT_EQ(sc->n_nodes, 4);
    ASSERT_EQ(sc->n_links, 5);
    ASSERT_EQ(sc->links[0].from, CLUSTER_SOURCE);
    ASSERT_EQ(sc->links[4].to, CLUSTER_SINK);
    ASSERT_EQ(sc->nodes[0].kv_cache_capacity, 491900);
    ASSERT_EQ(sim_cluster_node_by_index(sc, 3), 3);
    sim_cluster_free(sc);
    static const struct {
        const char *from;
        const char *to;
        int code;
        const char *n1;
    } breaks[] = {
        {"out=compute_node_3\n", "out=compute_node_9\n", HX_ENOTFOUND,
         "[link_compute_node_2_compute_node_3] out"},
        {"in=source", "in=sink", HX_ENOTFOUND, "[link_source_compute_node_2] in"},
        {"machine_type=\"A100\"\nkv_cache_capacity=491900", "kv_cache_capacity=491900",
         HX_ENOTFOUND, "[compute_node_2] machine_type"},
        {"kv_cache_capacity=491900", "kv_cache_capacity=4.5", HX_EPARSE,
         "[compute_node_2] kv_cache_capacity"},
        {"[link_compute_node_5_sink]", "[link_compute_node_5_sonk]", HX_ENOTFOUND,
         "[link_compute_node_5_sink]"},
        {"latency=1.0 * MilliSec", "latency=1.0 * MiliSec", HX_EPARSE, "latency"},
    };
    for (size_t i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
        const char *p = strstr(sb.buf, breaks[i].from);
        ASSERT_MSG(p != NULL, "%s", breaks[i].from);
        struct strbuf t2;
        strbuf_init(&t2);
        strbuf_add(&t2, sb.buf, (size_t)(p - sb.buf));
        strbuf_adds(&t2, breaks[i].to);
        strbuf_adds(&t2, p + strlen(breaks[i].from));
        hx_diag_clear(&d);
        expect(sim_cluster_parse_string(t2.buf, "s.ini", &sc, &d), breaks[i].code, &d, "s.ini",
               breaks[i].n1, NULL);
        ASSERT(sc == NULL);
        strbuf_release(&t2);
    }
    strbuf_release(&sb);

    hx_diag_clear(&d);
    struct machine_profiles *mp = NULL;
    ASSERT_OK_DIAG(machine_profiles_read_file("data/machine_profiles.ini", &mp, &d), &d);
    ASSERT_EQ(mp->n_types, 7);
    ASSERT_DBL_NEAR(mp->source.nic_out, 10e9, 0);
    ASSERT_DBL_NEAR(machine_profiles_find(mp, "T4x4")->vram_bytes, 64e9, 0);
    machine_profiles_free(mp);
    expect(machine_profiles_parse_string("[SourceNode]\ninbound_nic_speed=-1\n", "p.ini", &mp, &d),
           HX_ENOTFOUND, &d, "p.ini:1: [SourceNode] outbound_nic_speed", "missing key", NULL);
    hx_diag_clear(&d);
    expect(machine_profiles_parse_string(
               "[SourceNode]\ninbound_nic_speed=-1\noutbound_nic_speed=1\ndisk_speed=1\n"
               "vram_size=1\n",
               "p.ini", &mp, &d),
           HX_ENOTFOUND, &d, "p.ini", "missing section [SinkNode]", NULL);
}
