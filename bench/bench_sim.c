/*
 * bench_sim.c - speed and fidelity of the simulator against Helix's own (spec §9.3).
 *
 *   build/release/bench_sim [speed|fidelity|all]     (default all; run from the repo root)
 *
 * speed: single24 70B, Helix ILP layout, max-flow, offline (Helix: 13.0 M events, 623 s wall,
 * 15.7 GB peak RSS) and cluster42 70B online at 2150 tok/s; each run in a forked child so the
 * peak RSS (getrusage) is that run's alone. fidelity: every published setting we can rebuild
 * from the bundled data, with --fidelity helix and --fidelity default side by side. Output is
 * one "key=value" line per run, then a table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/status.h"
#include "core/core.h"
#include "sim/sim.h"
#include "sim/trace.h"

/*
 * Helix's request-scheduling ablation ran on artifact_evaluation/request_scheduling/
 * layout_distributed, a geo24 ILP solution with the same max-flow (1212.18) as the bundled
 * data/layouts/geo24_70b/ilp_* but a different node assignment; it is not in data/, so it is
 * embedded here (values copied from the artifact files).
 */
static const char RS_SOL[] = "[Settings]\noffset=2\n\n[Solution]\n"
                             "compute_node_2=[59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69]\n"
                             "compute_node_3=[70, 71, 72, 73, 74, 75, 76, 77, 78, 79]\n"
                             "compute_node_4=[48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58]\n"
                             "compute_node_5=[37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47]\n"
                             "compute_node_6=[19, 20, 21, 22, 23, 24, 25]\n"
                             "compute_node_7=[26, 27, 28, 29, 30, 31]\n"
                             "compute_node_8=[15, 16, 17, 18]\n"
                             "compute_node_9=[26, 27, 28, 29]\n"
                             "compute_node_10=[32]\ncompute_node_11=[0]\n"
                             "compute_node_12=[18, 19, 20, 21]\n"
                             "compute_node_13=[0]\ncompute_node_14=[0]\n"
                             "compute_node_15=[33, 34, 35, 36]\n"
                             "compute_node_16=[1, 2, 3, 4, 5, 6]\n"
                             "compute_node_17=[7, 8, 9, 10]\n"
                             "compute_node_18=[1, 2, 3, 4, 5, 6, 7]\n"
                             "compute_node_19=[30, 31, 32, 33, 34, 35, 36]\n"
                             "compute_node_20=[8, 9, 10, 11, 12, 13, 14]\n"
                             "compute_node_21=[0]\n"
                             "compute_node_22=[22, 23, 24, 25]\n"
                             "compute_node_23=[11, 12, 13, 14]\n"
                             "compute_node_24=[15, 16, 17]\n"
                             "compute_node_25=[20]\n";

static const struct {
    int idx;
    const char *type;
    long kv;
} RS_NODES[] = {
    {2, "A100", 3795264}, {3, "A100", 4212960}, {4, "A100", 3795264}, {5, "A100", 3795264},
    {6, "L4", 1751008},   {7, "L4", 2168832},   {8, "T4", 1124224},   {9, "T4", 1124224},
    {10, "T4", 2485120},  {11, "T4", 2485120},  {12, "T4", 1124224},  {13, "T4", 2485120},
    {14, "T4", 2485120},  {15, "T4", 1124224},  {16, "L4", 2168832},  {17, "L4", 3004416},
    {18, "L4", 1751008},  {19, "L4", 1751008},  {20, "L4", 1751008},  {21, "L4", 4258336},
    {22, "T4", 1124224},  {23, "T4", 1124224},  {24, "T4", 1577856},  {25, "T4", 2485120},
};

/* (from, to, latency ms, bandwidth mbps); -1 = source, -2 = sink */
static const struct {
    int a;
    int b;
    double lat_ms;
    double mbps;
} RS_LINKS[] = {
    {-1, 13, 53.0, 14.5},
    {-1, 21, 53.0, 14.1},
    {3, -2, 48.0, 14.0},
    {2, 3, 1.0, 1323.0},
    {4, 2, 1.0, 1278.0},
    {12, 22, 58.0, 14.6},
    {24, 12, 54.0, 13.9},
    {13, 16, 41.0, 13.6},
    {14, 18, 47.0, 14.8},
    {16, 17, 1.0, 1227.0},
    {21, 16, 1.0, 1324.0},
    {17, 23, 1.0, 1126.0},
    {18, 20, 1.0, 1294.0},
    {21, 18, 1.0, 1183.0},
    {20, 24, 1.0, 1268.0},
    {5, 4, 1.0, 1125.0},
    {23, 24, 1.0, 1243.0},
    {15, 5, 45.0, 14.4},
    {19, 5, 40.0, 14.5},
    {6, 7, 1.0, 1208.0},
    {8, 6, 1.0, 1304.0},
    {6, 9, 1.0, 1280.0},
    {22, 7, 44.0, 14.7},
    {7, 10, 1.0, 1126.0},
    {20, 8, 51.00000000000001, 14.2},
    {23, 8, 40.0, 14.3},
    {9, 19, 49.0, 14.1},
    {10, 15, 1.0, 1332.0},
};

static void ep_name(int v, char *buf, size_t n)
{
    if (v == -1) {
        snprintf(buf, n, "source");
    } else if (v == -2) {
        snprintf(buf, n, "sink");
    } else {
        snprintf(buf, n, "compute_node_%d", v);
    }
}

/* Write the embedded request-scheduling layout into dir; returns 0 or -1. */
static int write_rs_layout(const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/rs_sol.ini", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    fputs(RS_SOL, f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/rs_simulator_cluster.ini", dir);
    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    size_t nn = sizeof(RS_NODES) / sizeof(RS_NODES[0]);
    size_t nl = sizeof(RS_LINKS) / sizeof(RS_LINKS[0]);
    fprintf(f, "[Coordinator]\ninbound_nic_speed=10000.0 * mbps\noutbound_nic_speed=10000.0 * "
               "mbps\n\n[MachineTypes]\ntypes=['T4', 'T4x2', 'T4x4', 'L4', 'L4x2', 'V100', "
               "'A100']\n\n[ComputeNodes]\nnames=[");
    for (size_t i = 0; i < nn; i++) {
        fprintf(f, "%s'compute_node_%d'", i ? ", " : "", RS_NODES[i].idx);
    }
    fprintf(f, "]\n\n");
    for (size_t i = 0; i < nn; i++) {
        double vram = strcmp(RS_NODES[i].type, "A100") == 0 ? 40000.0
                      : strcmp(RS_NODES[i].type, "L4") == 0 ? 24000.0
                                                            : 16000.0;
        fprintf(f,
                "[compute_node_%d]\nvram_size=%.1f * MB\ninbound_nic_speed=10000.0 * mbps\n"
                "outbound_nic_speed=10000.0 * mbps\ndisk_speed=1000.0 * mbps\n"
                "machine_type=\"%s\"\nkv_cache_capacity=%ld\nactivation_backup_capacity=0\n\n",
                RS_NODES[i].idx, vram, RS_NODES[i].type, RS_NODES[i].kv);
    }
    fprintf(f, "[Links]\nnames=[");
    for (size_t i = 0; i < nl; i++) {
        char a[32];
        char b[32];
        ep_name(RS_LINKS[i].a, a, sizeof(a));
        ep_name(RS_LINKS[i].b, b, sizeof(b));
        fprintf(f, "%s'link_%s_%s'", i ? ", " : "", a, b);
    }
    fprintf(f, "]\n\n");
    for (size_t i = 0; i < nl; i++) {
        char a[32];
        char b[32];
        ep_name(RS_LINKS[i].a, a, sizeof(a));
        ep_name(RS_LINKS[i].b, b, sizeof(b));
        fprintf(f,
                "[link_%s_%s]\nin=%s\nout=%s\nlatency=%.17g * MilliSec\nbandwidth=%.17g * mbps\n\n",
                a, b, a, b, RS_LINKS[i].lat_ms, RS_LINKS[i].mbps);
    }
    fclose(f);
    return 0;
}

struct setting {
    const char *name;
    const char *model;
    const char *sim_cluster;
    const char *layout;
    enum sim_policy pol;
    enum sim_mode mode;
    double rate; /* online */
    int initial; /* offline */
    double helix_tput;
    double helix_prompt; /* 0 = not published */
    double helix_decode;
};

struct outcome {
    int rc;
    double tput;
    double prompt;
    double decode;
    double wall;
    double events;
    double rss_mb;
    double flow;
};

/* Run one setting in this process. */
static int run_setting(const struct setting *st, enum sim_fidelity fid, struct outcome *o)
{
    struct hx_diag d = {0};
    struct model_profile *m = NULL;
    struct sim_cluster *sc = NULL;
    struct layout *l = NULL;
    struct model_throughput *tp = NULL;
    struct sim_trace_data td = {0};
    char mpath[256];
    snprintf(mpath, sizeof(mpath), "data/models/%s.ini", st->model);
    int rc = model_profile_read_file(mpath, &m, &d);
    if (rc == HX_OK) {
        rc = sim_cluster_read_file(st->sim_cluster, &sc, &d);
    }
    if (rc == HX_OK) {
        int max_idx = -1;
        for (int i = 0; i < sc->n_nodes; i++) {
            max_idx = sc->nodes[i].node > max_idx ? sc->nodes[i].node : max_idx;
        }
        rc = layout_read_file(st->layout, max_idx + 1, &l, &d);
    }
    int counts[32] = {0};
    for (int i = 0; rc == HX_OK && i < sc->n_nodes; i++) {
        int g = model_gpu_index(m, sc->nodes[i].machine_type);
        if (g < 0 || g >= 32) {
            rc = HX_ENOTFOUND;
        } else {
            counts[g]++;
        }
    }
    if (rc == HX_OK) {
        rc = model_throughput_new(m, counts, &tp, &d);
    }
    if (rc == HX_OK) {
        rc = sim_trace_data_load("data/traces", "azure_conv", &td, &d);
    }
    if (rc == HX_OK) {
        struct sim_config c;
        sim_config_defaults(&c, st->mode, st->pol);
        sim_quirks_set(&c.quirks, fid);
        c.model = m;
        c.tp = tp;
        c.cluster = sc;
        c.layout = l;
        c.trace_data = &td;
        c.rate_tok_s = st->rate;
        c.initial_queries = st->initial;
        struct sim_result r;
        double t0 = hx_clock_now();
        rc = sim_run(&c, &r, &d);
        o->wall = hx_clock_now() - t0;
        if (rc == HX_OK) {
            o->tput = r.decode_throughput;
            o->prompt = r.prompt.mean;
            o->decode = r.decode.mean;
            o->events = (double)r.events;
            o->flow = r.flow_value;
            sim_result_release(&r);
        }
    }
    if (rc != HX_OK) {
        fprintf(stderr, "bench_sim: %s: %s\n", st->name, d.msg[0] ? d.msg : hx_strerror(rc));
    }
    sim_trace_data_release(&td);
    model_throughput_free(tp);
    layout_free(l);
    sim_cluster_free(sc);
    model_profile_free(m);
    o->rc = rc;
    return rc;
}

/* Run in a forked child; the child's own peak RSS comes back through a pipe. */
static int run_forked(const struct setting *st, enum sim_fidelity fid, struct outcome *o)
{
    int fd[2];
    memset(o, 0, sizeof(*o));
    if (pipe(fd) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        close(fd[0]);
        struct outcome mine;
        memset(&mine, 0, sizeof(mine));
        run_setting(st, fid, &mine);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        mine.rss_mb = (double)ru.ru_maxrss / 1024.0;
        ssize_t w = write(fd[1], &mine, sizeof(mine));
        _exit(w == (ssize_t)sizeof(mine) ? 0 : 1);
    }
    close(fd[1]);
    ssize_t n = read(fd[0], o, sizeof(*o));
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (n != (ssize_t)sizeof(*o)) {
        o->rc = -1;
        return -1;
    }
    return o->rc;
}

#define S24 "data/layouts/single24_70b/"
#define C42 "data/layouts/cluster42_70b/"
#define G24 "data/layouts/geo24_70b/"
#define RS "build/bench_sim_rs/"

static const struct setting SETTINGS[] = {
    {"single24 offline Helix", "llama2_70b", S24 "ilp_simulator_cluster.ini", S24 "ilp_sol.ini",
     SIM_POLICY_MAXFLOW, SIM_MODE_OFFLINE, 0, 20, 252.1, 3.094, 1.457},
    {"single24 offline Swarm", "llama2_70b", S24 "swarm_simulator_cluster.ini", S24 "swarm_sol.ini",
     SIM_POLICY_SWARM, SIM_MODE_OFFLINE, 0, 180, 124.7, 0, 0},
    {"single24 online Helix", "llama2_70b", S24 "ilp_simulator_cluster.ini", S24 "ilp_sol.ini",
     SIM_POLICY_MAXFLOW, SIM_MODE_ONLINE, 700, 0, 141.6, 2.501, 1.355},
    {"single24 online Swarm", "llama2_70b", S24 "swarm_simulator_cluster.ini", S24 "swarm_sol.ini",
     SIM_POLICY_SWARM, SIM_MODE_ONLINE, 350, 0, 69.8, 3.013, 1.262},
    {"cluster42 online Helix", "llama2_70b", C42 "ilp_simulator_cluster.ini", C42 "ilp_sol.ini",
     SIM_POLICY_MAXFLOW, SIM_MODE_ONLINE, 2150, 0, 459.8, 0, 0},
    {"cluster42 online Swarm", "llama2_70b", C42 "swarm_simulator_cluster.ini", C42 "swarm_sol.ini",
     SIM_POLICY_SWARM, SIM_MODE_ONLINE, 1450, 0, 309.6, 0, 0},
    {"cluster42 offline Swarm", "llama2_70b", C42 "swarm_simulator_cluster.ini",
     C42 "swarm_sol.ini", SIM_POLICY_SWARM, SIM_MODE_OFFLINE, 0, 500, 473.2, 0, 0},
    {"geo24 offline Helix", "llama2_70b", G24 "ilp_simulator_cluster.ini", G24 "ilp_sol.ini",
     SIM_POLICY_MAXFLOW, SIM_MODE_OFFLINE, 0, 20, 98.0, 0, 0},
    {"geo24 online Helix", "llama2_70b", G24 "ilp_simulator_cluster.ini", G24 "ilp_sol.ini",
     SIM_POLICY_MAXFLOW, SIM_MODE_ONLINE, 320, 0, 59.3, 5.24, 2.20},
    {"geo24 offline Swarm", "llama2_70b", G24 "swarm_simulator_cluster.ini", G24 "swarm_sol.ini",
     SIM_POLICY_SWARM, SIM_MODE_OFFLINE, 0, 180, 51.9, 0, 0},
    {"ablation maxflow", "llama2_70b", RS "rs_simulator_cluster.ini", RS "rs_sol.ini",
     SIM_POLICY_MAXFLOW, SIM_MODE_OFFLINE, 0, 20, 99.8, 0, 0},
    {"ablation swarm", "llama2_70b", RS "rs_simulator_cluster.ini", RS "rs_sol.ini",
     SIM_POLICY_SWARM, SIM_MODE_OFFLINE, 0, 180, 81.7, 0, 0},
    {"ablation random", "llama2_70b", RS "rs_simulator_cluster.ini", RS "rs_sol.ini",
     SIM_POLICY_RANDOM, SIM_MODE_OFFLINE, 0, 180, 87.4, 0, 0},
    {"ablation shortest-queue", "llama2_70b", RS "rs_simulator_cluster.ini", RS "rs_sol.ini",
     SIM_POLICY_SHORTEST_QUEUE, SIM_MODE_OFFLINE, 0, 180, 83.6, 0, 0},
};

static void speed(void)
{
    printf("# speed (release build, one core; Helix: 13.0 M events, 623 s, 15.7 GB)\n");
    const struct setting *runs[2] = {&SETTINGS[0], &SETTINGS[4]};
    for (int i = 0; i < 2; i++) {
        struct outcome o;
        if (run_forked(runs[i], SIM_FIDELITY_HELIX, &o) != 0) {
            printf("speed run=\"%s\" failed\n", runs[i]->name);
            continue;
        }
        printf("speed run=\"%s\" events=%.0f wall_s=%.3f events_per_s=%.0f peak_rss_mb=%.1f "
               "decode_tput=%.1f",
               runs[i]->name, o.events, o.wall, o.events / o.wall, o.rss_mb, o.tput);
        if (i == 0) {
            printf(" speedup_vs_helix=%.0fx rss_ratio_vs_helix=%.0fx", 623.0 / o.wall,
                   15.7e3 / o.rss_mb);
        }
        printf("\n");
    }
}

static void fidelity(void)
{
    printf("# fidelity: decode tok/s (and mean prompt / decode latency, s) vs Helix (§9.3)\n");
    printf("%-26s %8s %9s %7s %16s %16s %9s %8s\n", "setting", "Helix", "ours", "dev",
           "prompt ours/Hx", "decode ours/Hx", "default", "wall_s");
    for (size_t i = 0; i < sizeof(SETTINGS) / sizeof(SETTINGS[0]); i++) {
        const struct setting *st = &SETTINGS[i];
        struct outcome h;
        struct outcome dflt;
        if (run_forked(st, SIM_FIDELITY_HELIX, &h) != 0) {
            printf("%-26s failed\n", st->name);
            continue;
        }
        run_forked(st, SIM_FIDELITY_DEFAULT, &dflt);
        char pl[32] = "-";
        char dl[32] = "-";
        if (st->helix_prompt > 0) {
            snprintf(pl, sizeof(pl), "%.3f/%.3f", h.prompt, st->helix_prompt);
            snprintf(dl, sizeof(dl), "%.3f/%.3f", h.decode, st->helix_decode);
        } else {
            snprintf(pl, sizeof(pl), "%.3f/-", h.prompt);
            snprintf(dl, sizeof(dl), "%.3f/-", h.decode);
        }
        printf("%-26s %8.1f %9.1f %+6.1f%% %16s %16s %9.1f %8.2f\n", st->name, st->helix_tput,
               h.tput, 100.0 * (h.tput - st->helix_tput) / st->helix_tput, pl, dl,
               dflt.rc == 0 ? dflt.tput : -1.0, h.wall);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    if (system("mkdir -p " RS) != 0 || write_rs_layout(RS) != 0) {
        fprintf(stderr, "bench_sim: cannot write %s\n", RS);
        return 1;
    }
    if (strcmp(what, "speed") == 0 || strcmp(what, "all") == 0) {
        speed();
    }
    if (strcmp(what, "fidelity") == 0 || strcmp(what, "all") == 0) {
        fidelity();
    }
    return 0;
}
