/*
 * fuzz_ini.c - libFuzzer target for Helix's configuration readers: the value grammar, the INI
 * layer (including over-long lines), complete clusters, machine profiles, model profiles (no
 * CSVs), profile CSVs, layouts and simulator cluster files, all from memory. Whatever parses is
 * also written back and re-read, and a parsed cluster + layout pair is validated and turned
 * into a simulator cluster, so the writers and the generator see fuzzed shapes too.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "core/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char machine_profiles[] =
    "[SourceNode]\ninbound_nic_speed = -1\noutbound_nic_speed = 10 * gbps\ndisk_speed = -1\n"
    "vram_size = -1\n[SinkNode]\ninbound_nic_speed = 10 * gbps\noutbound_nic_speed = -1\n"
    "disk_speed = -1\nvram_size = -1\n[A100]\ninbound_nic_speed = 10 * gbps\n"
    "outbound_nic_speed = 10 * gbps\ndisk_speed = 1 * gbps\nvram_size = 40 * GB\n"
    "[L4]\ninbound_nic_speed = 10 * gbps\noutbound_nic_speed = 10 * gbps\n"
    "disk_speed = 1 * gbps\nvram_size = 24 * GB\n";

static const char model_text[] =
    "[model]\nname = m\nnum_layers = 8\nlayer_bytes = 1e9\ntoken_bytes = 2\n"
    "activation_bytes = 16\nhidden_size = 8\nnum_heads = 1\nnum_kv_heads = 1\nffn_size = 8\n"
    "[throughput_model]\ntypical_layers = A100 4, L4 2\ntypical_layers_large = A100 8, L4 4\n"
    "initial_perf = A100 80, L4 20\navg_input_len = 750\navg_output_len = 240\n"
    "max_input_len = 2048\nkv_block_size = 16\ndecode_per_token_max_context = 1000\n"
    "kv_cache_hwm = 0.3\niterations = 10\n"
    "[gpu A100]\nmax_layers = 8\nkv_blocks = 8 7 6 5 4 3 2 1\n"
    "prompt_max_requests = 1 1 1 1 1 1 1 1\ndecode_max_tokens = 9 9 9 9 9 9 9 9\n"
    "prompt_profile = a.csv\ndecode_profile = b.csv\n"
    "[gpu L4]\nmax_layers = 4\nkv_blocks = 4 3 2 1\nprompt_max_requests = 1 1 1 1\n"
    "decode_max_tokens = 9 9 9 9\nprompt_profile = a.csv\ndecode_profile = b.csv\n";

static void roundtrip_layout(const struct layout *l)
{
    struct strbuf sb;
    strbuf_init(&sb);
    layout_write(l, &sb);
    struct hx_diag d = {0};
    struct layout *back = NULL;
    if (layout_parse_string(sb.buf, "rt.ini", l->n_nodes, &back, &d) != HX_OK) {
        __builtin_trap(); /* what we write must read back */
    }
    for (int i = 0; i < l->n_nodes; i++) {
        if (back->nodes[i].n_layers != l->nodes[i].n_layers ||
            (l->nodes[i].n_layers && back->nodes[i].start != l->nodes[i].start)) {
            __builtin_trap();
        }
    }
    layout_free(back);
    strbuf_release(&sb);
}

static void roundtrip_sim(const struct sim_cluster *sc)
{
    struct strbuf sb;
    strbuf_init(&sb);
    sim_cluster_write(sc, &sb);
    struct hx_diag d = {0};
    struct sim_cluster *back = NULL;
    /* names with quotes or brackets cannot be written back as Python literals: skip those */
    if (sim_cluster_parse_string(sb.buf, "rt.ini", &back, &d) == HX_OK) {
        if (back->n_nodes != sc->n_nodes || back->n_links != sc->n_links) {
            __builtin_trap();
        }
        sim_cluster_free(back);
    }
    strbuf_release(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct hx_diag d = {0};

    struct cfg_value v;
    if (cfg_value_parse(text, "fuzz", &v, &d) == HX_OK) {
        if (v.kind == CFG_VALUE_NUMBER) {
            struct strbuf sb;
            strbuf_init(&sb);
            cfg_format_pyfloat(&sb, v.number);
            strbuf_release(&sb);
        }
        cfg_value_release(&v);
    }

    struct cfg_ini *ini = NULL;
    if (cfg_ini_parse_string(text, "fuzz.ini", &ini, &d) == HX_OK) {
        cfg_ini_free(ini);
    }

    struct model_curve cv;
    if (model_curve_parse_string(text, "fuzz.csv", &cv, &d) == HX_OK) {
        double t = 0;
        (void)model_curve_eval(&cv, cv.x[cv.n - 1] / 2, &t);
        model_curve_release(&cv);
    }

    struct machine_profiles *mp = NULL;
    if (machine_profiles_parse_string(text, "fuzz.ini", &mp, &d) == HX_OK) {
        machine_profiles_free(mp);
    }
    struct model_profile *m = NULL;
    if (model_profile_parse_string(text, "fuzz.ini", NULL, &m, &d) == HX_OK) {
        model_profile_free(m);
    }

    struct sim_cluster *sc = NULL;
    if (sim_cluster_parse_string(text, "fuzz.ini", &sc, &d) == HX_OK) {
        roundtrip_sim(sc);
        sim_cluster_free(sc);
    }

    /* a cluster and a layout: the input may hold both (a layout's sections are disjoint) */
    struct cluster *c = NULL;
    struct layout *l = NULL;
    if (layout_parse_string(text, "fuzz.ini", 0, &l, &d) == HX_OK) {
        roundtrip_layout(l);
    }
    if (cluster_parse_string(text, "fuzz.ini", &c, &d) == HX_OK && l && l->n_nodes <= c->n_nodes) {
        struct layout *full = layout_new(c->n_nodes);
        memcpy(full->nodes, l->nodes, (size_t)l->n_nodes * sizeof(*l->nodes));
        struct machine_profiles *mpf = NULL;
        struct model_profile *mf = NULL;
        if (machine_profiles_parse_string(machine_profiles, "mp.ini", &mpf, &d) == HX_OK &&
            model_profile_parse_string(model_text, "m.ini", NULL, &mf, &d) == HX_OK) {
            (void)layout_validate(full, c, mf, LAYOUT_ALLOW_OVER_MAX, &d);
            struct sim_cluster *gen = NULL;
            if (sim_cluster_generate(c, full, mf, mpf, (enum layout_connectivity)(size & 1), &gen,
                                     &d) == HX_OK) {
                roundtrip_sim(gen);
                sim_cluster_free(gen);
            }
        }
        model_profile_free(mf);
        machine_profiles_free(mpf);
        layout_free(full);
    }
    cluster_free(c);
    layout_free(l);
    xfree(text);
    return 0;
}
