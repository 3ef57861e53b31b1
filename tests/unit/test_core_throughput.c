/*
 * test_core_throughput.c - the throughput model (§1.7) against Appendix A of the spec: every
 * TP(k) and KV value listed, both models, compositions computed from the bundled cluster files.
 */
#include <string.h>

#include "base/alloc.h"
#include "core/core.h"
#include "test.h"

struct tp_fixture {
    struct model_profile *m;
    struct cluster *c;
    struct model_throughput *t;
};

static void fx_open(struct tp_fixture *fx, const char *model, const char *cluster)
{
    struct hx_diag d = {0};
    char path[256];
    snprintf(path, sizeof(path), "data/models/%s.ini", model);
    ASSERT_OK_DIAG(model_profile_read_file(path, &fx->m, &d), &d);
    snprintf(path, sizeof(path), "data/clusters/%s.ini", cluster);
    ASSERT_OK_DIAG(cluster_read_file(path, &fx->c, &d), &d);
    ASSERT_OK_DIAG(model_throughput_for_cluster(fx->m, fx->c, &fx->t, &d), &d);
}

static void fx_close(struct tp_fixture *fx)
{
    model_throughput_free(fx->t);
    cluster_free(fx->c);
    model_profile_free(fx->m);
}

/* Compare TP(1..n) of a type with values printed to 2 decimals. */
static void check_tp(const struct tp_fixture *fx, const char *type, const double *want, int n)
{
    int g = model_gpu_index(fx->m, type);
    ASSERT(g >= 0);
    ASSERT_EQ(fx->m->gpus[g].max_layers, n);
    for (int k = 1; k <= n; k++) {
        double tp = model_throughput_tp(fx->t, g, k);
        ASSERT_MSG(fabs(tp - want[k - 1]) <= 0.0051, "%s k=%d: %.4f vs %.2f", type, k, tp,
                   want[k - 1]);
    }
}

static void check_kv(const struct tp_fixture *fx, const char *type, const long *want, int n)
{
    int g = model_gpu_index(fx->m, type);
    ASSERT(g >= 0);
    for (int k = 1; k <= n; k++) {
        ASSERT_EQ(model_kv_capacity(fx->m, &fx->m->gpus[g], k), want[k - 1]);
    }
}

static void check_perf(const struct tp_fixture *fx, const char *type, double want)
{
    int g = model_gpu_index(fx->m, type);
    ASSERT(g >= 0);
    ASSERT_DBL_NEAR(fx->t->perf[g], want, 0.0051);
}

TEST(core_tp_70b_single24)
{
    struct tp_fixture fx = {0};
    fx_open(&fx, "llama2_70b", "single24");
    ASSERT_EQ(fx.t->large_table, 0);
    check_perf(&fx, "T4", 3962.36);
    check_perf(&fx, "L4", 5811.49);
    check_perf(&fx, "A100", 20509.09);
    static const double a100[] = {23833.87, 11384.25, 7201.41, 5264.62, 4096.65, 3124.14,
                                  2595.68,  2045.64,  1754.38, 1392.63, 1212.18, 952.11};
    static const double l4[] = {7557.86, 3625.71, 2171.88, 1476.08, 1017.57, 747.79, 531.70};
    static const double t4[] = {5709.21, 2434.37, 1347.87, 757.85};
    check_tp(&fx, "A100", a100, 12);
    check_tp(&fx, "L4", l4, 7);
    check_tp(&fx, "T4", t4, 4);
    static const long kv_a100[] = {7973216, 7555424, 7137600, 6719808, 6302000, 5884224,
                                   5466384, 5048576, 4630752, 4212960, 3795264, 3377472};
    static const long kv_l4[] = {4258336, 3872544, 3422208, 3004416, 2586640, 2168832, 1751008};
    static const long kv_t4[] = {2485120, 2031488, 1577856, 1124224};
    check_kv(&fx, "A100", kv_a100, 12);
    check_kv(&fx, "L4", kv_l4, 7);
    check_kv(&fx, "T4", kv_t4, 4);
    /* (R, P, D) at k = 1 and 12 for A100 */
    int g = model_gpu_index(fx.m, "A100");
    const struct model_settings *s1 = &fx.t->settings[g][0];
    const struct model_settings *s12 = &fx.t->settings[g][11];
    ASSERT_DBL_NEAR(s1->R, 0.0383, 0.00005);
    ASSERT_EQ(s1->P, 29);
    ASSERT_EQ(s1->D, 9);
    ASSERT_DBL_NEAR(s12->R, 0.0180, 0.00005);
    ASSERT_EQ(s12->P, 13);
    ASSERT_EQ(s12->D, 4);
    ASSERT_EQ(s1->prompt_max_tokens, 3 * 2048);
    ASSERT_EQ(s1->decode_max_context, 480 * 1000);
    /* worked example: T4 k=4 -> R 0.026966, P 20, D 6 */
    g = model_gpu_index(fx.m, "T4");
    ASSERT_DBL_NEAR(fx.t->settings[g][3].R, 0.026966, 0.000001); /* spec prints ~0.026966 */
    ASSERT_EQ(fx.t->settings[g][3].P, 20);
    ASSERT_EQ(fx.t->settings[g][3].D, 6);
    fx_close(&fx);
}

TEST(core_tp_70b_geo24_same_as_single)
{
    struct tp_fixture a = {0};
    struct tp_fixture b = {0};
    fx_open(&a, "llama2_70b", "single24");
    fx_open(&b, "llama2_70b", "geo24");
    for (size_t g = 0; g < a.m->n_gpus; g++) {
        for (int k = 1; k <= a.m->gpus[g].max_layers; k++) {
            ASSERT_DBL_NEAR(model_throughput_tp(a.t, (int)g, k),
                            model_throughput_tp(b.t, (int)g, k), 1e-9);
        }
    }
    fx_close(&a);
    fx_close(&b);
}

TEST(core_tp_70b_cluster42)
{
    struct tp_fixture fx = {0};
    fx_open(&fx, "llama2_70b", "cluster42");
    check_perf(&fx, "T4", 4868.18);
    check_perf(&fx, "T4x2", 9760.30);
    check_perf(&fx, "T4x4", 16661.47);
    check_perf(&fx, "L4", 7056.46);
    check_perf(&fx, "L4x2", 13053.12);
    check_perf(&fx, "V100", 10318.46);
    check_perf(&fx, "A100", 23321.76);
    static const double a100[] = {31327.49, 15363.28, 9918.07, 7039.20, 5430.02, 4251.28,
                                  3405.79,  2847.02,  2339.85, 1931.11, 1652.86, 1363.71};
    static const double v100[] = {14014.13, 5890.15, 3342.48, 1982.19};
    static const double l4[] = {9111.48, 4239.10, 2563.31, 1812.26, 1285.17, 916.81, 655.73};
    static const double l4x2[] = {17269.02, 8426.92, 5441.14, 3929.42, 3061.02, 2461.63, 2030.42,
                                  1712.86,  1450.18, 1290.53, 1107.22, 964.26,  838.51,  727.69};
    static const double t4[] = {6179.85, 2911.52, 1622.37, 927.62};
    static const double t4x2[] = {12194.22, 5813.74, 3663.69, 2706.10, 2121.35,
                                  1626.96,  1271.80, 1021.91, 783.45};
    static const double t4x4[] = {20503.53, 10085.51, 6640.71, 4892.24, 3841.24, 3136.81,
                                  2651.22,  2268.51,  1981.14, 1738.63, 1548.73, 1388.97,
                                  1281.52,  1180.02,  1071.19, 973.64,  872.89,  781.27};
    check_tp(&fx, "A100", a100, 12);
    check_tp(&fx, "V100", v100, 4);
    check_tp(&fx, "L4", l4, 7);
    check_tp(&fx, "L4x2", l4x2, 14);
    check_tp(&fx, "T4", t4, 4);
    check_tp(&fx, "T4x2", t4x2, 9);
    check_tp(&fx, "T4x4", t4x4, 18);
    static const long kv_v100[] = {2756096, 2302464, 1848816, 1395200};
    check_kv(&fx, "V100", kv_v100, 4);
    fx_close(&fx);
}

TEST(core_tp_30b_single24)
{
    struct tp_fixture fx = {0};
    fx_open(&fx, "llama1_30b", "single24");
    check_perf(&fx, "T4", 1804.13);
    check_perf(&fx, "L4", 1923.99);
    check_perf(&fx, "A100", 10617.89);
    static const double a100[] = {7555.88, 3778.50, 4200.10, 3150.87, 2127.26, 1771.61,
                                  1517.74, 1327.22, 1178.97, 1061.08, 964.93,  884.82,
                                  817.04,  614.71,  573.28,  537.06,  505.05,  477.03};
    static const double l4[] = {3379.93, 1598.58, 1066.28, 717.64, 535.78, 414.25,
                                327.19,  240.50,  213.90,  172.02, 137.55};
    static const double t4[] = {2320.61, 1072.19, 601.44, 451.03, 323.39, 237.79, 283.99};
    check_tp(&fx, "A100", a100, 18);
    check_tp(&fx, "L4", l4, 11);
    check_tp(&fx, "T4", t4, 7);
    static const long kv_l4[] = {659056, 618720, 578400, 538048, 497680, 457344,
                                 417088, 376704, 336384, 296000, 255728};
    static const long kv_t4[] = {429584, 389248, 348912, 308544, 268240, 227904, 187600};
    check_kv(&fx, "L4", kv_l4, 11);
    check_kv(&fx, "T4", kv_t4, 7);
    int g = model_gpu_index(fx.m, "A100");
    ASSERT_EQ(model_kv_capacity(fx.m, &fx.m->gpus[g], 1), 1289808);
    ASSERT_EQ(model_kv_capacity(fx.m, &fx.m->gpus[g], 18), 603936);
    fx_close(&fx);
}

TEST(core_tp_30b_subclusters)
{
    struct tp_fixture fx = {0};
    fx_open(&fx, "llama1_30b", "single24_a100");
    ASSERT_EQ(fx.t->large_table, 1);
    static const double a100[] = {24422.68, 11751.67, 7569.13, 5481.22, 4380.95, 3525.20,
                                  3021.84,  2535.88,  2158.99, 1942.71, 1678.98, 1462.93,
                                  1349.65,  1185.81,  1044.53, 912.99,  802.56,  758.11};
    check_tp(&fx, "A100", a100, 18);
    fx_close(&fx);
    fx_open(&fx, "llama1_30b", "single24_l4");
    static const double l4[] = {2678.28, 1339.63, 828.49, 572.54, 458.17, 320.68,
                                275.02,  214.98,  168.10, 252.65, 193.31};
    check_tp(&fx, "L4", l4, 11);
    fx_close(&fx);
    fx_open(&fx, "llama1_30b", "single24_t4");
    static const double t4[] = {1804.00, 808.50, 539.02, 356.67, 397.69, 331.37, 230.99};
    check_tp(&fx, "T4", t4, 7);
    fx_close(&fx);
    fx_open(&fx, "llama1_30b", "cluster10");
    static const double l4q[] = {2485.54, 1145.04, 763.52, 480.99, 384.90, 286.59,
                                 245.73,  189.11,  168.17, 212.64, 193.50};
    static const double t4q[] = {1987.97, 901.94, 539.04, 404.26, 285.34, 331.34, 231.06};
    check_tp(&fx, "L4", l4q, 11);
    check_tp(&fx, "T4", t4q, 7);
    fx_close(&fx);
}

TEST(core_tp_upper_bound)
{
    struct hx_diag d = {0};
    struct machine_profiles *mp = NULL;
    ASSERT_OK_DIAG(machine_profiles_read_file("data/machine_profiles.ini", &mp, &d), &d);
    struct tp_fixture fx = {0};
    double ub = 0;
    fx_open(&fx, "llama2_70b", "single24");
    ASSERT_OK_DIAG(model_upper_bound(fx.t, mp, fx.c, &ub, &d), &d);
    ASSERT_DBL_NEAR(ub, 2803.861, 0.0006);
    fx_close(&fx);
    fx_open(&fx, "llama2_70b", "cluster42");
    ASSERT_OK_DIAG(model_upper_bound(fx.t, mp, fx.c, &ub, &d), &d);
    ASSERT_DBL_NEAR(ub, 7104.258, 0.0006);
    fx_close(&fx);
    fx_open(&fx, "llama1_30b", "cluster10");
    ASSERT_OK_DIAG(model_upper_bound(fx.t, mp, fx.c, &ub, &d), &d);
    ASSERT_DBL_NEAR(ub, 364.51, 0.006);
    fx_close(&fx);
    static const struct {
        const char *cl;
        double ub;
    } subs[] = {{"single24_a100", 1628.18}, {"single24_l4", 357.24}, {"single24_t4", 397.69}};
    for (size_t i = 0; i < 3; i++) {
        fx_open(&fx, "llama1_30b", subs[i].cl);
        ASSERT_OK_DIAG(model_upper_bound(fx.t, mp, fx.c, &ub, &d), &d);
        ASSERT_DBL_NEAR(ub, subs[i].ub, 0.006);
        fx_close(&fx);
    }
    machine_profiles_free(mp);
}
