/*
 * test_runtime_profile.c - `helix profile`'s measuring (rt_profile_measure) on the bundled
 * model, written in our model-profile format and read back by model_profile_read_file: sane
 * curves, a throughput table with positive throughput, and a planned local cluster.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/status.h"
#include "core/model.h"
#include "runtime/runtime.h"
#include "test.h"

#define MODEL "models/kjv-llama-6m"

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", dir);
    }
}

/* Profile two node types (1 thread; 16 MiB and 2 MiB of KV) briefly into dir. */
static struct model_profile *profile_two(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/hx_prof_XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    struct rt_prof *p = NULL;
    struct hx_diag d;
    struct rt_profile_opts o;
    memset(&o, 0, sizeof(o));
    o.model_dir = MODEL;
    o.threads = 1;
    o.max_seconds = 0.6;
    o.type = "big";
    o.kv_bytes = 16u << 20;
    ASSERT_MSG(rt_profile_measure(&o, &p, &d) == 0, "%s", d.msg);
    o.type = "small";
    o.kv_bytes = 2u << 20;
    ASSERT_MSG(rt_profile_measure(&o, &p, &d) == 0, "%s", d.msg);
    ASSERT_EQ(p->n_types, 2);
    char ini[512];
    ASSERT_MSG(rt_profile_write(p, dir, ini, sizeof(ini), &d) == 0, "%s", d.msg);
    rt_profile_free(p);
    struct model_profile *m = NULL;
    ASSERT_MSG(model_profile_read_file(ini, &m, &d) == 0, "%s", d.msg);
    return m;
}

TEST(runtime_profile_measure_write_read)
{
    char dir[64];
    struct model_profile *m = profile_two(dir, sizeof(dir));
    ASSERT_EQ(m->n_layers, 6);
    ASSERT_EQ(m->hidden_size, 256);
    ASSERT(m->layer_bytes > 0);
    ASSERT_EQ((int)m->n_gpus, 2);
    int g_big = model_gpu_index(m, "big");
    int g_small = model_gpu_index(m, "small");
    ASSERT(g_big >= 0 && g_small >= 0);
    const struct model_gpu *big = &m->gpus[g_big];
    const struct model_gpu *small = &m->gpus[g_small];
    /* KV blocks: budget / (k x one layer's block bytes); 2 x 64 x 32 bytes x 16 tokens */
    double bb = 2.0 * 2 * 32 * 4 * 16;
    ASSERT_EQ(big->max_layers, 6);
    for (int k = 1; k <= big->max_layers; k++) {
        ASSERT_EQ(big->kv_blocks[k - 1], (int)((16u << 20) / ((double)k * bb)));
    }
    /* 2 MiB hold 256 blocks of one layer; a full 512-token context needs 32 blocks -> k <= 8 */
    ASSERT_EQ(small->kv_blocks[0], 256);
    ASSERT(small->decode_max_tokens[5] <= big->decode_max_tokens[5]);
    /* curves: start at (0, 0), grow with the batch (the largest batch is clearly slower) */
    for (int gi = 0; gi < 2; gi++) {
        const struct model_gpu *g = &m->gpus[gi];
        ASSERT(g->prompt.n >= 6 && g->decode.n >= 6);
        ASSERT(g->prompt.x[0] == 0 && g->decode.x[0] == 0);
        ASSERT(g->prompt.t_s[g->prompt.n - 1] > 2 * g->prompt.t_s[1]);
        ASSERT(g->decode.t_s[g->decode.n - 1] > g->decode.t_s[1]);
        ASSERT(g->prompt.x[g->prompt.n - 1] >= 2 * m->avg_input_len);
        /* monotone-ish: no point below a third of an earlier one */
        for (size_t i = 2; i < g->prompt.n; i++) {
            ASSERT(g->prompt.t_s[i] > g->prompt.t_s[i - 1] / 3);
        }
        ASSERT(g->initial_perf > 0);
    }
    /* the throughput model works from it: positive TP for every k */
    int counts[2];
    counts[g_big] = 1;
    counts[g_small] = 2;
    struct model_throughput *tp = NULL;
    struct hx_diag d;
    ASSERT_MSG(model_throughput_new(m, counts, &tp, &d) == 0, "%s", d.msg);
    for (int g = 0; g < 2; g++) {
        for (int k = 1; k <= m->gpus[g].max_layers; k++) {
            double v = model_throughput_tp(tp, g, k);
            ASSERT_MSG(v > 0 && isfinite(v), "type %d k %d tp %g", g, k, v);
        }
    }
    /* more layers per node -> fewer tokens/s through it */
    ASSERT(model_throughput_tp(tp, g_big, 6) < model_throughput_tp(tp, g_big, 1));
    model_throughput_free(tp);

    /* plan a local cluster of one big and two small nodes from it */
    const char *types[3] = {"big", "small", "small"};
    const char *names[3] = {"a", "b", "c"};
    struct coord_node_spec nodes[3];
    double obj = 0;
    ASSERT_MSG(rt_plan_local(m, 3, types, names, 1.0, nodes, &obj, &d) == 0, "%s", d.msg);
    ASSERT(obj > 0);
    int covered[6] = {0};
    for (int i = 0; i < 3; i++) {
        ASSERT_STR_EQ(nodes[i].name, names[i]);
        if (nodes[i].layer_end > nodes[i].layer_start) {
            ASSERT(nodes[i].capacity > 0);
            for (int l = nodes[i].layer_start; l < nodes[i].layer_end; l++) {
                covered[l] = 1;
            }
        }
    }
    for (int l = 0; l < 6; l++) {
        ASSERT(covered[l]);
    }

    /* merging: read back, add a third type, both old types kept */
    struct rt_prof *p = NULL;
    ASSERT_MSG(rt_profile_from_model(m, &p, &d) == 0, "%s", d.msg);
    ASSERT_EQ(p->n_types, 2);
    ASSERT(fabs(p->types[g_big].prompt_ms[1] - big->prompt.t_s[1] * 1e3) < 1e-9);
    /* a worker kind that computes like "big" with 4 MiB of KV: same curves, its own blocks */
    struct rt_prof *kinds = NULL;
    ASSERT_MSG(rt_profile_derive(p, "big", MODEL, "big-kv4", 4u << 20, &kinds, &d) == 0, "%s",
               d.msg);
    ASSERT_EQ(kinds->n_types, 1);
    ASSERT_STR_EQ(kinds->types[0].type, "big-kv4");
    ASSERT_EQ(kinds->types[0].kv_blocks[0], (int)((4u << 20) / bb));
    ASSERT_EQ(kinds->types[0].kv_blocks[2], (int)((4u << 20) / (3 * bb)));
    ASSERT_EQ(kinds->types[0].n_decode, (int)big->decode.n);
    ASSERT(kinds->types[0].decode_ms[2] == p->types[g_big].decode_ms[2]);
    ASSERT_EQ(rt_profile_derive(p, "nosuch", MODEL, "x", 0, &kinds, &d), HX_ENOTFOUND);
    rt_profile_free(kinds);
    model_profile_free(m);
    rt_profile_free(p);
    rm_rf(dir);
}

TEST(runtime_profile_rejects_bad_input)
{
    struct rt_prof *p = NULL;
    struct hx_diag d;
    struct rt_profile_opts o;
    memset(&o, 0, sizeof(o));
    o.model_dir = "no/such/model";
    ASSERT(rt_profile_measure(&o, &p, &d) != 0);
    ASSERT(p == NULL);
    o.model_dir = MODEL;
    o.type = "bad type/";
    ASSERT_EQ(rt_profile_measure(&o, &p, &d), HX_EINVAL);
    o.type = "tiny";
    o.kv_bytes = 4096; /* less than one full-context sequence of one layer */
    ASSERT_EQ(rt_profile_measure(&o, &p, &d), HX_EINVAL);
    ASSERT(strstr(d.msg, "KV budget") != NULL);
    ASSERT(p == NULL);
}

/* A memory cap (--mem-bytes): with k layers the KV budget is the cap minus k layers' weights
 * minus the activation scratch, so max_layers and kv_blocks shrink with the cap. */
TEST(runtime_profile_memory_cap)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/hx_prof_XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    struct rt_prof *p = NULL;
    struct hx_diag d;
    struct rt_profile_opts o;
    memset(&o, 0, sizeof(o));
    o.model_dir = MODEL;
    o.threads = 1;
    o.max_seconds = 0.3;
    o.type = "capped";
    o.mem_bytes = 24u << 20;
    o.avg_input_len = 190; /* a trace's typical request (--avg-input-len/--avg-output-len) */
    o.avg_output_len = 57;
    ASSERT_MSG(rt_profile_measure(&o, &p, &d) == 0, "%s", d.msg);
    const struct rt_prof_type *t = &p->types[0];
    double bb = 2.0 * 2 * 32 * 4 * 16; /* f32 K and V of one layer, 16 tokens */
    double lb = p->layer_bytes;
    ASSERT(t->max_layers >= 1 && t->max_layers < 6); /* the cap binds: 6 layers do not fit */
    ASSERT_EQ(t->mem_bytes, (uint64_t)(24u << 20));
    for (int k = 1; k <= t->max_layers; k++) {
        double kv = (double)t->kv_blocks[k - 1] * k * bb;
        ASSERT(kv + k * lb < (double)(24u << 20));
        ASSERT(t->kv_blocks[k - 1] >= 32); /* one full 512-token sequence */
        if (k > 1) {
            ASSERT(t->kv_blocks[k - 1] < t->kv_blocks[k - 2]);
        }
    }
    /* the same budget minus one layer's weights holds more KV than with two layers */
    ASSERT(t->max_layers < 2 || (double)t->kv_blocks[0] * bb > (double)t->kv_blocks[1] * 2 * bb);
    char ini[512];
    ASSERT_MSG(rt_profile_write(p, dir, ini, sizeof(ini), &d) == 0, "%s", d.msg);
    struct model_profile *m = NULL;
    ASSERT_MSG(model_profile_read_file(ini, &m, &d) == 0, "%s", d.msg);
    ASSERT_EQ(m->gpus[0].max_layers, t->max_layers);
    ASSERT_EQ(m->avg_input_len, 190);
    ASSERT_EQ(m->avg_output_len, 57);
    /* every k up to the cap has a finite, positive throughput (the largest k may hold so little
     * KV that Helix's typical batch rounds to nothing: the model then takes batch 1) */
    int one = 1;
    struct model_throughput *tp = NULL;
    ASSERT_MSG(model_throughput_new(m, &one, &tp, &d) == 0, "%s", d.msg);
    for (int k = 1; k <= t->max_layers; k++) {
        double x = model_throughput_tp(tp, 0, k);
        ASSERT_MSG(isfinite(x) && x > 0, "k=%d: %g", k, x);
    }
    model_throughput_free(tp);
    model_profile_free(m);
    /* another type measured into this profile must share its average lengths */
    o.type = "other";
    o.avg_input_len = 100;
    ASSERT_EQ(rt_profile_measure(&o, &p, &d), HX_EINVAL);
    ASSERT_MSG(strstr(d.msg, "average lengths 190/57, not 100/57") != NULL, "%s", d.msg);
    ASSERT_EQ(p->n_types, 1);
    rt_profile_free(p);
    p = NULL;
    o.avg_input_len = 190;
    o.mem_bytes = 1u << 20; /* not even one layer and the scratch */
    ASSERT_EQ(rt_profile_measure(&o, &p, &d), HX_EINVAL);
    ASSERT(strstr(d.msg, "memory cap") != NULL);
    rm_rf(dir);
}

/* The weight format: under the same memory cap a q4_0 layer of the bundled model (0.40 MB
 * against bf16's 1.41) leaves room for more layers and, at each k, (bf16 - q4_0 layer bytes) /
 * block bytes more KV blocks; the profile records the format and its layer bytes, and the
 * planner reads them back. */
TEST(runtime_profile_weight_format_packs_layers)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/hx_profw_XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    struct hx_diag d;
    struct rt_profile_opts o;
    memset(&o, 0, sizeof(o));
    o.model_dir = MODEL;
    o.threads = 1;
    o.max_seconds = 0.3;
    o.type = "node24m";
    o.mem_bytes = 24u << 20;
    struct rt_prof *pb = NULL, *pq = NULL;
    ASSERT_MSG(rt_profile_measure(&o, &pb, &d) == 0, "%s", d.msg);
    o.weights = "q4_0";
    ASSERT_MSG(rt_profile_measure(&o, &pq, &d) == 0, "%s", d.msg);
    ASSERT_STR_EQ(pb->weight_format, "bf16");
    ASSERT_STR_EQ(pq->weight_format, "q4_0");
    ASSERT_STR_EQ(pq->name, "kjv-llama-6m-q4_0");
    /* 704512 matrix elements a layer: 2 bytes each, or 18 bytes per 32; norms 2 x 256 bf16 */
    ASSERT_DBL_NEAR(pb->layer_bytes, 704512.0 * 2 + 1024, 0);
    ASSERT_DBL_NEAR(pq->layer_bytes, 704512.0 / 32 * 18 + 1024, 0);
    ASSERT(pb->types[0].max_layers < 6); /* the cap binds for bf16 */
    ASSERT(pq->types[0].max_layers > pb->types[0].max_layers);
    double bb = 2.0 * 2 * 32 * 4 * 16; /* f32 K and V of one layer, 16 tokens */
    double more = (pb->layer_bytes - pq->layer_bytes) / bb;
    for (int k = 1; k <= pb->types[0].max_layers; k++) {
        double got = pq->types[0].kv_blocks[k - 1] - pb->types[0].kv_blocks[k - 1];
        ASSERT_MSG(fabs(got - more) < 1.0, "k=%d: %g more blocks, want %g", k, got, more);
    }
    char ini[512];
    ASSERT_MSG(rt_profile_write(pq, dir, ini, sizeof(ini), &d) == 0, "%s", d.msg);
    ASSERT_CONTAINS(ini, "kjv-llama-6m-q4_0.ini");
    struct model_profile *m = NULL;
    ASSERT_MSG(model_profile_read_file(ini, &m, &d) == 0, "%s", d.msg);
    ASSERT_DBL_NEAR(m->layer_bytes, pq->layer_bytes, 0);
    FILE *f = fopen(ini, "r");
    char text[4096] = {0};
    ASSERT(fread(text, 1, sizeof(text) - 1, f) > 0);
    fclose(f);
    ASSERT_CONTAINS(text, "weight_format = q4_0");
    /* a profile of another format is not merged into */
    o.weights = NULL;
    ASSERT_EQ(rt_profile_measure(&o, &pq, &d), HX_EINVAL);
    ASSERT_CONTAINS(d.msg, "q4_0 weights, not bf16");
    model_profile_free(m);
    rt_profile_free(pb);
    rt_profile_free(pq);
    rm_rf(dir);
}
