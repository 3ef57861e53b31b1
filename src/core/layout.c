/*
 * layout.c - placement files (spec §1.8), simulator cluster files (§1.9) and Helix's
 * generate_simulator_cluster (§2.9).
 *
 * Writers reproduce Helix's bytes: floats go through cfg_format_pyfloat (Python repr) after
 * dividing by the unit, exactly as Helix's f"{x / mbps} * mbps" does, so a file we read and
 * write back is identical to the one Helix wrote.
 */
#include "core/layout.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "core/cfg.h"
#include "core/cluster.h"
#include "core/model.h"

#define LAYOUT_MAX_NODES 100000
#define LAYOUT_MAX_LAYER 1000000

/* ---- layouts ----------------------------------------------------------------------------- */

struct layout *layout_new(int n_nodes)
{
    struct layout *l = xcalloc(1, sizeof(*l));
    l->offset = 2;
    l->n_nodes = n_nodes > 0 ? n_nodes : 0;
    l->nodes = xcalloc((size_t)l->n_nodes + 1, sizeof(*l->nodes));
    return l;
}

void layout_free(struct layout *l)
{
    if (!l) {
        return;
    }
    xfree(l->path);
    xfree(l->nodes);
    xfree(l);
}

struct layout *layout_clone(const struct layout *l)
{
    struct layout *c = layout_new(l->n_nodes);
    c->offset = l->offset;
    c->path = l->path ? xstrdup(l->path) : NULL;
    memcpy(c->nodes, l->nodes, (size_t)l->n_nodes * sizeof(*l->nodes));
    return c;
}

/* "compute_node_<int>" -> int, or -1. */
static long parse_node_key(const char *key)
{
    static const char pre[] = "compute_node_";
    if (strncmp(key, pre, sizeof(pre) - 1) != 0) {
        return -1;
    }
    const char *p = key + sizeof(pre) - 1;
    if (*p < '0' || *p > '9' || strlen(p) > 9) {
        return -1;
    }
    long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        v = v * 10 + (*p - '0');
    }
    return v;
}

static int layout_from_ini(const struct cfg_ini *ini, int n_nodes, struct layout **out,
                           struct hx_diag *diag)
{
    int offset = 0;
    int rc = cfg_ini_get_int(ini, "Settings", "offset", &offset, diag);
    if (rc != HX_OK) {
        return rc;
    }
    if (offset < 0 || offset > 1000) {
        const struct cfg_section *s = cfg_ini_section(ini, "Settings");
        return hx_diag_set(diag, HX_ERANGE, "%s:%d: [Settings] offset: %d is out of range",
                           ini->path, cfg_section_entry(s, "offset")->line, offset);
    }
    const struct cfg_section *sol = cfg_ini_section(ini, "Solution");
    if (!sol) {
        return hx_diag_set(diag, HX_ENOTFOUND, "%s: missing section [Solution]", ini->path);
    }
    int size = n_nodes;
    if (size <= 0) {
        size = 0;
        for (size_t i = 0; i < sol->n_entries; i++) {
            long idx = parse_node_key(sol->entries[i].key) - offset;
            if (idx >= 0 && idx < LAYOUT_MAX_NODES && idx + 1 > size) {
                size = (int)idx + 1;
            }
        }
    }
    struct layout *l = layout_new(size);
    l->offset = offset;
    l->path = xstrdup(ini->path);
    for (size_t i = 0; i < sol->n_entries; i++) {
        const struct cfg_entry *e = &sol->entries[i];
        char where[256];
        cfg_entry_where(ini, sol, e, where, sizeof(where));
        long num = parse_node_key(e->key);
        if (num < 0) {
            rc = hx_diag_set(diag, HX_EPARSE, "%s: key must be compute_node_<number>", where);
            goto fail;
        }
        long idx = num - offset;
        if (idx < 0 || idx >= size) {
            rc = hx_diag_set(diag, HX_ERANGE,
                             "%s: node out of range (cluster nodes are compute_node_%d.."
                             "compute_node_%d)",
                             where, offset, offset + size - 1);
            goto fail;
        }
        struct layout_node *nd = &l->nodes[idx];
        if (nd->line) {
            rc = hx_diag_set(diag, HX_EPARSE, "%s: node listed twice (first at line %d)", where,
                             nd->line);
            goto fail;
        }
        struct cfg_value v;
        rc = cfg_value_parse(e->value, where, &v, diag);
        if (rc != HX_OK) {
            goto fail;
        }
        if (v.kind != CFG_VALUE_LIST) {
            cfg_value_release(&v);
            rc = hx_diag_set(diag, HX_EPARSE, "%s: expected a list of layer ids like [0, 1, 2]",
                             where);
            goto fail;
        }
        nd->line = e->line;
        for (size_t j = 0; j < v.n_items && rc == HX_OK; j++) {
            const struct cfg_value *it = &v.items[j];
            if (it->kind != CFG_VALUE_NUMBER || it->unit[0] || it->number < 0 ||
                it->number > LAYOUT_MAX_LAYER || it->number != floor(it->number)) {
                rc = hx_diag_set(diag, HX_EPARSE, "%s: item %zu is not a layer id (integer >= 0)",
                                 where, j);
                break;
            }
            int layer = (int)it->number;
            if (j == 0) {
                nd->start = layer;
            } else if (layer != nd->start + (int)j) {
                int prev = nd->start + (int)j - 1;
                if (layer <= prev) {
                    rc = hx_diag_set(diag, HX_EPARSE,
                                     "%s: layers overlap: layer %d repeats or goes backwards "
                                     "(item %zu)",
                                     where, layer, j);
                } else {
                    rc = hx_diag_set(diag, HX_EPARSE,
                                     "%s: layers not contiguous: %d follows %d (item %zu)", where,
                                     layer, prev, j);
                }
                break;
            }
        }
        if (rc == HX_OK) {
            nd->n_layers = (int)v.n_items;
            if (nd->n_layers == 0) {
                nd->start = 0;
            }
        }
        cfg_value_release(&v);
        if (rc != HX_OK) {
            goto fail;
        }
    }
    *out = l;
    return HX_OK;
fail:
    layout_free(l);
    return rc;
}

int layout_parse_string(const char *text, const char *name, int n_nodes, struct layout **out,
                        struct hx_diag *diag)
{
    *out = NULL;
    struct cfg_ini *ini = NULL;
    int rc = cfg_ini_parse_string(text, name, &ini, diag);
    if (rc == HX_OK) {
        rc = layout_from_ini(ini, n_nodes, out, diag);
    }
    cfg_ini_free(ini);
    return rc;
}

int layout_read_file(const char *path, int n_nodes, struct layout **out, struct hx_diag *diag)
{
    *out = NULL;
    struct cfg_ini *ini = NULL;
    int rc = cfg_ini_parse_file(path, &ini, diag);
    if (rc == HX_OK) {
        rc = layout_from_ini(ini, n_nodes, out, diag);
    }
    cfg_ini_free(ini);
    return rc;
}

/* "file:line: [Solution] compute_node_X" or "layout: compute_node_X" for built layouts. */
static void node_where(const struct layout *l, int i, char *buf, size_t n)
{
    if (l->path && l->nodes[i].line > 0) {
        snprintf(buf, n, "%s:%d: [Solution] compute_node_%d", l->path, l->nodes[i].line,
                 i + l->offset);
    } else {
        snprintf(buf, n, "%s: [Solution] compute_node_%d", l->path ? l->path : "layout",
                 i + l->offset);
    }
}

int layout_validate(const struct layout *l, const struct cluster *c, const struct model_profile *m,
                    unsigned flags, struct hx_diag *diag)
{
    if (l->n_nodes != c->n_nodes) {
        return hx_diag_set(diag, HX_EINVAL, "%s: layout has %d nodes but cluster %s has %d",
                           l->path ? l->path : "layout", l->n_nodes, c->path, c->n_nodes);
    }
    char where[320];
    int used = 0;
    for (int i = 0; i < l->n_nodes; i++) {
        const struct layout_node *nd = &l->nodes[i];
        if (nd->n_layers == 0) {
            if (flags & LAYOUT_REQUIRE_ALL) {
                node_where(l, i, where, sizeof(where));
                return hx_diag_set(diag, HX_EINVAL, "%s: node holds no layers", where);
            }
            continue;
        }
        used++;
        if (nd->start < 0 || nd->n_layers < 0 || nd->start + nd->n_layers > m->n_layers) {
            node_where(l, i, where, sizeof(where));
            return hx_diag_set(diag, HX_ERANGE,
                               "%s: layers beyond model: [%d, %d) but %s has %d layers", where,
                               nd->start, nd->start + nd->n_layers, m->name, m->n_layers);
        }
        int g = model_gpu_index(m, c->nodes[i].type);
        if (g < 0) {
            node_where(l, i, where, sizeof(where));
            return hx_diag_set(diag, HX_ENOTFOUND, "%s: GPU type '%s' of node %d is not in %s",
                               where, c->nodes[i].type, i, m->path);
        }
        if (!(flags & LAYOUT_ALLOW_OVER_MAX) && nd->n_layers > m->gpus[g].max_layers) {
            node_where(l, i, where, sizeof(where));
            return hx_diag_set(diag, HX_ERANGE, "%s: %d layers exceed max layers %d of a %s for %s",
                               where, nd->n_layers, m->gpus[g].max_layers, c->nodes[i].type,
                               m->name);
        }
    }
    if (used == 0) {
        return hx_diag_set(diag, HX_EINVAL, "%s: no node holds any layer",
                           l->path ? l->path : "layout");
    }
    return HX_OK;
}

void layout_write(const struct layout *l, struct strbuf *out)
{
    strbuf_addf(out, "[Settings]\noffset=%d\n\n[Solution]\n", l->offset);
    for (int i = 0; i < l->n_nodes; i++) {
        strbuf_addf(out, "compute_node_%d=[", i + l->offset);
        for (int j = 0; j < l->nodes[i].n_layers; j++) {
            strbuf_addf(out, "%s%d", j ? ", " : "", l->nodes[i].start + j);
        }
        strbuf_adds(out, "]\n");
    }
}

static int write_text_file(const char *path, const struct strbuf *sb, struct hx_diag *diag)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        return hx_diag_set(diag, HX_EIO, "%s: cannot write: %s", path, strerror(errno));
    }
    size_t w = fwrite(sb->buf, 1, sb->len, f);
    int bad = (w != sb->len);
    if (fclose(f) != 0) {
        bad = 1;
    }
    if (bad) {
        return hx_diag_set(diag, HX_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    return HX_OK;
}

int layout_write_file(const struct layout *l, const char *path, struct hx_diag *diag)
{
    struct strbuf sb;
    strbuf_init(&sb);
    layout_write(l, &sb);
    int rc = write_text_file(path, &sb, diag);
    strbuf_release(&sb);
    return rc;
}

int layout_edge_valid(const struct layout *l, int n_layers_model, enum layout_connectivity conn,
                      int a, int b)
{
    if (a == CLUSTER_SOURCE) {
        if (b < 0 || b >= l->n_nodes) {
            return 0;
        }
        return l->nodes[b].n_layers > 0 && l->nodes[b].start == 0;
    }
    if (a < 0 || a >= l->n_nodes || l->nodes[a].n_layers <= 0) {
        return 0;
    }
    int ea = l->nodes[a].start + l->nodes[a].n_layers;
    if (b == CLUSTER_SINK) {
        return ea == n_layers_model;
    }
    if (b < 0 || b >= l->n_nodes || b == a || l->nodes[b].n_layers <= 0) {
        return 0;
    }
    int sb = l->nodes[b].start;
    int eb = sb + l->nodes[b].n_layers;
    if (conn == LAYOUT_PARTIAL) {
        return sb <= ea && ea < eb;
    }
    return ea == sb;
}

/* ---- simulator cluster files ------------------------------------------------------------- */

void sim_cluster_free(struct sim_cluster *sc)
{
    if (!sc) {
        return;
    }
    xfree(sc->path);
    xfree(sc->types);
    xfree(sc->nodes);
    xfree(sc->links);
    xfree(sc);
}

int sim_cluster_node_by_index(const struct sim_cluster *sc, int node)
{
    for (int i = 0; i < sc->n_nodes; i++) {
        if (sc->nodes[i].node == node) {
            return i;
        }
    }
    return -1;
}

/* Get a list of quoted strings; *out owned by caller. */
static int get_string_list(const struct cfg_ini *ini, const char *section, const char *key,
                           struct cfg_value *out, struct hx_diag *diag)
{
    int rc = cfg_ini_get_value(ini, section, key, out, diag);
    if (rc != HX_OK) {
        return rc;
    }
    const struct cfg_section *sec = cfg_ini_section(ini, section);
    const struct cfg_entry *e = cfg_section_entry(sec, key);
    char where[256];
    cfg_entry_where(ini, sec, e, where, sizeof(where));
    if (out->kind != CFG_VALUE_LIST) {
        cfg_value_release(out);
        return hx_diag_set(diag, HX_EPARSE, "%s: expected a list of quoted names", where);
    }
    for (size_t i = 0; i < out->n_items; i++) {
        if (out->items[i].kind != CFG_VALUE_STRING || out->items[i].str[0] == '\0') {
            cfg_value_release(out);
            return hx_diag_set(diag, HX_EPARSE, "%s: item %zu is not a quoted name", where, i);
        }
    }
    return HX_OK;
}

static int sim_endpoint(const struct sim_cluster *sc, const char *name)
{
    if (strcmp(name, "source") == 0) {
        return CLUSTER_SOURCE;
    }
    if (strcmp(name, "sink") == 0) {
        return CLUSTER_SINK;
    }
    for (int i = 0; i < sc->n_nodes; i++) {
        if (strcmp(sc->nodes[i].name, name) == 0) {
            return i;
        }
    }
    return -3;
}

static int sim_from_ini(const struct cfg_ini *ini, struct sim_cluster **out, struct hx_diag *diag)
{
    struct sim_cluster *sc = xcalloc(1, sizeof(*sc));
    sc->path = xstrdup(ini->path);
    struct cfg_value types = {0};
    struct cfg_value names = {0};
    struct cfg_value links = {0};
    int rc = cfg_ini_get_number(ini, "Coordinator", "inbound_nic_speed", &sc->coord_nic_in, diag);
    if (rc == HX_OK) {
        rc = cfg_ini_get_number(ini, "Coordinator", "outbound_nic_speed", &sc->coord_nic_out, diag);
    }
    if (rc == HX_OK) {
        rc = get_string_list(ini, "MachineTypes", "types", &types, diag);
    }
    if (rc == HX_OK) {
        rc = get_string_list(ini, "ComputeNodes", "names", &names, diag);
    }
    if (rc == HX_OK) {
        rc = get_string_list(ini, "Links", "names", &links, diag);
    }
    if (rc != HX_OK) {
        goto fail;
    }
    sc->n_types = types.n_items;
    sc->types = xcalloc(types.n_items + 1, sizeof(*sc->types));
    for (size_t i = 0; i < types.n_items; i++) {
        if (strlen(types.items[i].str) >= sizeof(sc->types[0])) {
            rc = hx_diag_set(diag, HX_ERANGE, "%s: [MachineTypes] types: name too long", ini->path);
            goto fail;
        }
        snprintf(sc->types[i], sizeof(sc->types[i]), "%s", types.items[i].str);
    }
    sc->nodes = xcalloc(names.n_items + 1, sizeof(*sc->nodes));
    for (size_t i = 0; i < names.n_items; i++) {
        const char *nm = names.items[i].str;
        struct sim_node *nd = &sc->nodes[i];
        const struct cfg_section *sec = cfg_ini_section(ini, nm);
        if (strlen(nm) >= sizeof(nd->name)) {
            rc = hx_diag_set(diag, HX_ERANGE, "%s: [ComputeNodes] names: '%.40s...' too long",
                             ini->path, nm);
            goto fail;
        }
        if (sim_endpoint(sc, nm) != -3) {
            rc = hx_diag_set(diag, HX_EPARSE, "%s: [ComputeNodes] names: '%s' listed twice",
                             ini->path, nm);
            goto fail;
        }
        if (!sec) {
            rc = hx_diag_set(diag, HX_ENOTFOUND,
                             "%s: missing section [%s] (listed in [ComputeNodes] names)", ini->path,
                             nm);
            goto fail;
        }
        snprintf(nd->name, sizeof(nd->name), "%s", nm);
        long num = parse_node_key(nm);
        nd->node = num >= 2 ? (int)(num - 2) : -1;
        nd->line = sec->line;
        sc->n_nodes++;
        double kv = 0;
        rc = cfg_ini_get_number(ini, nm, "vram_size", &nd->vram_bytes, diag);
        if (rc == HX_OK) {
            rc = cfg_ini_get_number(ini, nm, "inbound_nic_speed", &nd->nic_in, diag);
        }
        if (rc == HX_OK) {
            rc = cfg_ini_get_number(ini, nm, "outbound_nic_speed", &nd->nic_out, diag);
        }
        if (rc == HX_OK) {
            rc = cfg_ini_get_number(ini, nm, "disk_speed", &nd->disk_speed, diag);
        }
        if (rc == HX_OK) {
            rc = cfg_ini_get_string(ini, nm, "machine_type", nd->machine_type,
                                    sizeof(nd->machine_type), diag);
        }
        if (rc == HX_OK) {
            rc = cfg_ini_get_number(ini, nm, "kv_cache_capacity", &kv, diag);
        }
        if (rc == HX_OK) {
            rc = cfg_ini_get_number(ini, nm, "activation_backup_capacity",
                                    &nd->activation_backup_capacity, diag);
        }
        if (rc != HX_OK) {
            goto fail;
        }
        if (!(kv >= -1 && kv <= 1e15) || kv != floor(kv)) {
            rc = hx_diag_set(diag, HX_EPARSE,
                             "%s:%d: [%s] kv_cache_capacity: expected an integer >= -1", ini->path,
                             cfg_section_entry(sec, "kv_cache_capacity")->line, nm);
            goto fail;
        }
        nd->kv_cache_capacity = (long)kv;
    }
    sc->links = xcalloc(links.n_items + 1, sizeof(*sc->links));
    for (size_t i = 0; i < links.n_items; i++) {
        const char *nm = links.items[i].str;
        struct sim_link *lk = &sc->links[i];
        const struct cfg_section *sec = cfg_ini_section(ini, nm);
        if (strlen(nm) >= sizeof(lk->name)) {
            rc = hx_diag_set(diag, HX_ERANGE, "%s: [Links] names: '%.40s...' too long", ini->path,
                             nm);
            goto fail;
        }
        if (!sec) {
            rc = hx_diag_set(diag, HX_ENOTFOUND,
                             "%s: missing section [%s] (listed in [Links] names)", ini->path, nm);
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(sc->links[j].name, nm) == 0) {
                rc = hx_diag_set(diag, HX_EPARSE, "%s: [Links] names: '%s' listed twice", ini->path,
                                 nm);
                goto fail;
            }
        }
        snprintf(lk->name, sizeof(lk->name), "%s", nm);
        lk->line = sec->line;
        sc->n_links++;
        char in[64];
        char outn[64];
        rc = cfg_ini_get_string(ini, nm, "in", in, sizeof(in), diag);
        if (rc == HX_OK) {
            rc = cfg_ini_get_string(ini, nm, "out", outn, sizeof(outn), diag);
        }
        if (rc == HX_OK) {
            rc = cfg_ini_get_number(ini, nm, "latency", &lk->latency_s, diag);
        }
        if (rc == HX_OK) {
            rc = cfg_ini_get_number(ini, nm, "bandwidth", &lk->bandwidth, diag);
        }
        if (rc != HX_OK) {
            goto fail;
        }
        lk->from = sim_endpoint(sc, in);
        lk->to = sim_endpoint(sc, outn);
        if (lk->from == -3 || lk->from == CLUSTER_SINK) {
            rc = hx_diag_set(diag, HX_ENOTFOUND,
                             "%s:%d: [%s] in: '%s' is not 'source' or a listed compute node",
                             ini->path, cfg_section_entry(sec, "in")->line, nm, in);
            goto fail;
        }
        if (lk->to == -3 || lk->to == CLUSTER_SOURCE || lk->to == lk->from) {
            rc = hx_diag_set(diag, HX_ENOTFOUND,
                             "%s:%d: [%s] out: '%s' is not 'sink' or another listed compute "
                             "node",
                             ini->path, cfg_section_entry(sec, "out")->line, nm, outn);
            goto fail;
        }
        if (!(lk->bandwidth > 0) || lk->latency_s < 0) {
            rc = hx_diag_set(diag, HX_ERANGE,
                             "%s:%d: [%s] bandwidth: must be > 0 (and latency >= 0)", ini->path,
                             cfg_section_entry(sec, "bandwidth")->line, nm);
            goto fail;
        }
    }
    cfg_value_release(&types);
    cfg_value_release(&names);
    cfg_value_release(&links);
    *out = sc;
    return HX_OK;
fail:
    cfg_value_release(&types);
    cfg_value_release(&names);
    cfg_value_release(&links);
    sim_cluster_free(sc);
    return rc;
}

int sim_cluster_parse_string(const char *text, const char *name, struct sim_cluster **out,
                             struct hx_diag *diag)
{
    *out = NULL;
    struct cfg_ini *ini = NULL;
    int rc = cfg_ini_parse_string(text, name, &ini, diag);
    if (rc == HX_OK) {
        rc = sim_from_ini(ini, out, diag);
    }
    cfg_ini_free(ini);
    return rc;
}

int sim_cluster_read_file(const char *path, struct sim_cluster **out, struct hx_diag *diag)
{
    *out = NULL;
    struct cfg_ini *ini = NULL;
    int rc = cfg_ini_parse_file(path, &ini, diag);
    if (rc == HX_OK) {
        rc = sim_from_ini(ini, out, diag);
    }
    cfg_ini_free(ini);
    return rc;
}

static void add_unit(struct strbuf *sb, const char *key, double v, double mult, const char *unit)
{
    strbuf_addf(sb, "%s=", key);
    cfg_format_pyfloat(sb, v / mult);
    strbuf_addf(sb, " * %s\n", unit);
}

static const char *sim_endpoint_name(const struct sim_cluster *sc, int v)
{
    if (v == CLUSTER_SOURCE) {
        return "source";
    }
    if (v == CLUSTER_SINK) {
        return "sink";
    }
    return sc->nodes[v].name;
}

void sim_cluster_write(const struct sim_cluster *sc, struct strbuf *sb)
{
    strbuf_adds(sb, "# Simulator cluster file generated by ILP layout synthesizer.\n\n");
    strbuf_adds(sb, "[Coordinator]\n");
    add_unit(sb, "inbound_nic_speed", sc->coord_nic_in, 1e6, "mbps");
    add_unit(sb, "outbound_nic_speed", sc->coord_nic_out, 1e6, "mbps");
    strbuf_adds(sb, "\n[MachineTypes]\ntypes=[");
    for (size_t i = 0; i < sc->n_types; i++) {
        strbuf_addf(sb, "%s'%s'", i ? ", " : "", sc->types[i]);
    }
    strbuf_adds(sb, "]\n\n[ComputeNodes]\nnames=[");
    for (int i = 0; i < sc->n_nodes; i++) {
        strbuf_addf(sb, "%s'%s'", i ? ", " : "", sc->nodes[i].name);
    }
    strbuf_adds(sb, "]\n\n");
    for (int i = 0; i < sc->n_nodes; i++) {
        const struct sim_node *nd = &sc->nodes[i];
        strbuf_addf(sb, "[%s]\n", nd->name);
        add_unit(sb, "vram_size", nd->vram_bytes, 1e6, "MB");
        add_unit(sb, "inbound_nic_speed", nd->nic_in, 1e6, "mbps");
        add_unit(sb, "outbound_nic_speed", nd->nic_out, 1e6, "mbps");
        add_unit(sb, "disk_speed", nd->disk_speed, 1e6, "mbps");
        strbuf_addf(sb, "machine_type=\"%s\"\n", nd->machine_type);
        strbuf_addf(sb, "kv_cache_capacity=%ld\n", nd->kv_cache_capacity);
        if (fabs(nd->activation_backup_capacity) < 1e15 &&
            nd->activation_backup_capacity == floor(nd->activation_backup_capacity)) {
            strbuf_addf(sb, "activation_backup_capacity=%ld\n\n",
                        (long)nd->activation_backup_capacity);
        } else {
            strbuf_adds(sb, "activation_backup_capacity=");
            cfg_format_pyfloat(sb, nd->activation_backup_capacity);
            strbuf_adds(sb, "\n\n");
        }
    }
    strbuf_adds(sb, "[Links]\nnames=[");
    for (int i = 0; i < sc->n_links; i++) {
        strbuf_addf(sb, "%s'%s'", i ? ", " : "", sc->links[i].name);
    }
    strbuf_adds(sb, "]\n\n");
    for (int i = 0; i < sc->n_links; i++) {
        const struct sim_link *lk = &sc->links[i];
        strbuf_addf(sb, "[%s]\nin=%s\nout=%s\n", lk->name, sim_endpoint_name(sc, lk->from),
                    sim_endpoint_name(sc, lk->to));
        add_unit(sb, "latency", lk->latency_s, 1e-3, "MilliSec");
        add_unit(sb, "bandwidth", lk->bandwidth, 1e6, "mbps");
        strbuf_addc(sb, '\n');
    }
}

int sim_cluster_write_file(const struct sim_cluster *sc, const char *path, struct hx_diag *diag)
{
    struct strbuf sb;
    strbuf_init(&sb);
    sim_cluster_write(sc, &sb);
    int rc = write_text_file(path, &sb, diag);
    strbuf_release(&sb);
    return rc;
}

/* ---- generate_simulator_cluster ---------------------------------------------------------- */

static void add_sim_link(struct sim_cluster *sc, int from, int to, const struct cluster_link *cl)
{
    struct sim_link *lk = &sc->links[sc->n_links++];
    memset(lk, 0, sizeof(*lk));
    lk->from = from;
    lk->to = to;
    /*
     * Helix writes a generated link's latency as latency * 1000 (e.g. 51 ms -> 51.00000000000001
     * MilliSec); store the value that reading such a file gives, so that the writer (which
     * divides by the unit, exact for round trips) reproduces Helix's bytes.
     */
    lk->latency_s = (cl->latency_s * 1000.0) * 1e-3;
    lk->bandwidth = cl->bandwidth;
    snprintf(lk->name, sizeof(lk->name), "link_%s_%s", sim_endpoint_name(sc, from),
             sim_endpoint_name(sc, to));
}

int sim_cluster_generate(const struct cluster *c, const struct layout *l,
                         const struct model_profile *m, const struct machine_profiles *mp,
                         enum layout_connectivity conn, struct sim_cluster **out,
                         struct hx_diag *diag)
{
    *out = NULL;
    if (l->n_nodes != c->n_nodes) {
        return hx_diag_set(diag, HX_EINVAL, "layout has %d nodes but cluster %s has %d", l->n_nodes,
                           c->path, c->n_nodes);
    }
    struct sim_cluster *sc = xcalloc(1, sizeof(*sc));
    sc->path = xstrdup("simulator_cluster.ini");
    sc->coord_nic_in = mp->sink.nic_in;
    sc->coord_nic_out = mp->source.nic_out;
    sc->n_types = mp->n_types;
    sc->types = xcalloc(mp->n_types + 1, sizeof(*sc->types));
    for (size_t i = 0; i < mp->n_types; i++) {
        snprintf(sc->types[i], sizeof(sc->types[i]), "%s", mp->types[i].name);
    }
    sc->nodes = xcalloc((size_t)c->n_nodes + 1, sizeof(*sc->nodes));
    for (int i = 0; i < c->n_nodes; i++) {
        const struct machine_profile *p = machine_profiles_find(mp, c->nodes[i].type);
        if (!p) {
            sim_cluster_free(sc);
            return hx_diag_set(diag, HX_ENOTFOUND,
                               "%s:%d: [ComputeNode-%d] type: '%s' has no section in machine "
                               "profiles %s",
                               c->path, c->nodes[i].line, i, c->nodes[i].type, mp->path);
        }
        struct sim_node *nd = &sc->nodes[i];
        snprintf(nd->name, sizeof(nd->name), "compute_node_%d", i + 2);
        nd->node = i;
        snprintf(nd->machine_type, sizeof(nd->machine_type), "%s", c->nodes[i].type);
        nd->vram_bytes = p->vram_bytes;
        nd->nic_in = p->nic_in;
        nd->nic_out = p->nic_out;
        nd->disk_speed = p->disk_speed;
        int g = model_gpu_index(m, c->nodes[i].type);
        nd->kv_cache_capacity =
            g >= 0 ? model_kv_capacity(m, &m->gpus[g], l->nodes[i].n_layers) : 0;
        nd->activation_backup_capacity = 0;
    }
    sc->n_nodes = c->n_nodes;
    sc->links = xcalloc((size_t)c->n_links * 2 + 1, sizeof(*sc->links));
    int L = m->n_layers;
    for (int k = 0; k < c->n_links; k++) {
        const struct cluster_link *cl = &c->links[k];
        if (layout_edge_valid(l, L, conn, cl->a, cl->b)) {
            add_sim_link(sc, cl->a, cl->b, cl);
        }
        if (cl->a >= 0 && cl->b >= 0 && layout_edge_valid(l, L, conn, cl->b, cl->a)) {
            add_sim_link(sc, cl->b, cl->a, cl);
        }
    }
    /* one pass: drop links into compute nodes that have no outgoing link */
    char *has = xcalloc((size_t)c->n_nodes + 1, 1);
    for (int k = 0; k < sc->n_links; k++) {
        if (sc->links[k].from >= 0) {
            has[sc->links[k].from] = 1;
        }
    }
    int w = 0;
    for (int k = 0; k < sc->n_links; k++) {
        int to = sc->links[k].to;
        if (to < 0 || has[to]) {
            sc->links[w++] = sc->links[k];
        }
    }
    sc->n_links = w;
    /* one pass: drop links out of compute nodes that have no incoming link */
    memset(has, 0, (size_t)c->n_nodes + 1);
    for (int k = 0; k < sc->n_links; k++) {
        if (sc->links[k].to >= 0) {
            has[sc->links[k].to] = 1;
        }
    }
    w = 0;
    for (int k = 0; k < sc->n_links; k++) {
        int from = sc->links[k].from;
        if (from < 0 || has[from]) {
            sc->links[w++] = sc->links[k];
        }
    }
    sc->n_links = w;
    xfree(has);
    *out = sc;
    return HX_OK;
}
