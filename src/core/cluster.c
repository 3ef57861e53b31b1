/*
 * cluster.c - complete cluster files (spec §1.2) and machine profiles (§1.3).
 *
 * The cluster reader cross-checks the two descriptions Helix keeps of the same graph (the
 * connected_nodes lists and the [Link-a-b] sections) so a hand-edited file cannot silently
 * disagree with itself.
 */
#include "core/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "core/cfg.h"

/* Largest cluster accepted (the link lookup table is (N+2)^2 ints). */
#define CLUSTER_MAX_NODES 2048

const char *cluster_endpoint_name(int v, char *buf, size_t n)
{
    if (v == CLUSTER_SOURCE) {
        return "source";
    }
    if (v == CLUSTER_SINK) {
        return "sink";
    }
    snprintf(buf, n, "%d", v);
    return buf;
}

int cluster_link_index(const struct cluster *c, int a, int b)
{
    int n = c->n_nodes + 2;
    if (a < -2 || b < -2 || a >= c->n_nodes || b >= c->n_nodes) {
        return -1;
    }
    return c->link_of[(a + 2) * n + (b + 2)];
}

void cluster_free(struct cluster *c)
{
    if (!c) {
        return;
    }
    xfree(c->path);
    xfree(c->nodes);
    xfree(c->links);
    xfree(c->link_of);
    xfree(c);
}

/* Parse "source", "sink" or a decimal node index; -3 on junk. */
static int parse_endpoint(const char *s, size_t n)
{
    if (n == 6 && memcmp(s, "source", 6) == 0) {
        return CLUSTER_SOURCE;
    }
    if (n == 4 && memcmp(s, "sink", 4) == 0) {
        return CLUSTER_SINK;
    }
    if (n == 0 || n > 9) {
        return -3;
    }
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -3;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Endpoint from a connected_nodes list item. */
static int item_endpoint(const struct cfg_value *it)
{
    if (it->kind == CFG_VALUE_STRING) {
        return parse_endpoint(it->str, strlen(it->str));
    }
    if (it->kind == CFG_VALUE_NUMBER && it->unit[0] == '\0' && it->number >= 0 &&
        it->number < 1e9 && it->number == (double)(int)it->number) {
        return (int)it->number;
    }
    return -3;
}

/*
 * Check that a connected_nodes list of endpoint `self` names exactly the links incident to it
 * (with the usable direction). Sets seen[] scratch (n_nodes + 2 entries).
 */
static int check_connected(struct cluster *c, const struct cfg_ini *ini, const char *section,
                           int self, char *seen, struct hx_diag *diag)
{
    struct cfg_value v;
    int rc = cfg_ini_get_value(ini, section, "connected_nodes", &v, diag);
    if (rc != HX_OK) {
        return rc;
    }
    const struct cfg_section *sec = cfg_ini_section(ini, section);
    const struct cfg_entry *e = cfg_section_entry(sec, "connected_nodes");
    char where[256];
    cfg_entry_where(ini, sec, e, where, sizeof(where));
    memset(seen, 0, (size_t)c->n_nodes + 2);
    char b1[16];
    if (v.kind != CFG_VALUE_LIST) {
        rc = hx_diag_set(diag, HX_EPARSE, "%s: expected a list like [0, 1, 'sink']", where);
        goto out;
    }
    for (size_t i = 0; i < v.n_items; i++) {
        int u = item_endpoint(&v.items[i]);
        if (u == -3 || u >= c->n_nodes || u == self) {
            rc = hx_diag_set(diag, HX_ERANGE,
                             "%s: item %zu is not 'source', 'sink' or another node 0..%d", where, i,
                             c->n_nodes - 1);
            goto out;
        }
        if ((self == CLUSTER_SOURCE && u < 0) || (self == CLUSTER_SINK && u < 0)) {
            rc = hx_diag_set(diag, HX_ERANGE, "%s: the coordinator lists '%s'", where,
                             cluster_endpoint_name(u, b1, sizeof(b1)));
            goto out;
        }
        if (seen[u + 2]) {
            rc = hx_diag_set(diag, HX_EPARSE, "%s: '%s' listed twice", where,
                             cluster_endpoint_name(u, b1, sizeof(b1)));
            goto out;
        }
        seen[u + 2] = 1;
        if (cluster_link_index(c, self, u) < 0) {
            rc = hx_diag_set(diag, HX_ENOTFOUND, "%s: no [Link-...] section joins %s and %s", where,
                             section, cluster_endpoint_name(u, b1, sizeof(b1)));
            goto out;
        }
    }
    for (int u = -2; u < c->n_nodes; u++) {
        if (u == self || seen[u + 2]) {
            continue;
        }
        int li = cluster_link_index(c, self, u);
        if (li >= 0) {
            rc = hx_diag_set(diag, HX_EPARSE,
                             "%s: link section at line %d joins it to %s, which is not listed",
                             where, c->links[li].line, cluster_endpoint_name(u, b1, sizeof(b1)));
            goto out;
        }
    }
out:
    cfg_value_release(&v);
    return rc;
}

static int cluster_from_ini(const struct cfg_ini *ini, struct cluster **out, struct hx_diag *diag)
{
    int rc;
    int n = 0;
    char *seen = NULL;
    struct cluster *c = xcalloc(1, sizeof(*c));
    c->path = xstrdup(ini->path);
    rc = cfg_ini_get_int(ini, "NodeNames", "total_compute_nodes", &n, diag);
    if (rc != HX_OK) {
        goto fail;
    }
    if (n < 1 || n > CLUSTER_MAX_NODES) {
        const struct cfg_section *sec = cfg_ini_section(ini, "NodeNames");
        const struct cfg_entry *e = cfg_section_entry(sec, "total_compute_nodes");
        rc = hx_diag_set(diag, HX_ERANGE,
                         "%s:%d: [NodeNames] total_compute_nodes: %d is outside 1..%d", ini->path,
                         e->line, n, CLUSTER_MAX_NODES);
        goto fail;
    }
    c->n_nodes = n;
    c->nodes = xcalloc((size_t)n, sizeof(*c->nodes));
    size_t tab = (size_t)(n + 2) * (size_t)(n + 2);
    c->link_of = xmalloc(tab * sizeof(int));
    for (size_t i = 0; i < tab; i++) {
        c->link_of[i] = -1;
    }
    for (int i = 0; i < n; i++) {
        char sname[48];
        snprintf(sname, sizeof(sname), "ComputeNode-%d", i);
        const struct cfg_section *sec = cfg_ini_section(ini, sname);
        if (!sec) {
            rc =
                hx_diag_set(diag, HX_ENOTFOUND, "%s: missing section [%s] (total_compute_nodes=%d)",
                            ini->path, sname, n);
            goto fail;
        }
        c->nodes[i].line = sec->line;
        rc = cfg_ini_get_string(ini, sname, "type", c->nodes[i].type, sizeof(c->nodes[i].type),
                                diag);
        if (rc != HX_OK) {
            goto fail;
        }
    }
    /* sections other than the node ones: links, and nodes out of range */
    for (size_t s = 0; s < ini->n_sections; s++) {
        const struct cfg_section *sec = &ini->sections[s];
        if (strncmp(sec->name, "ComputeNode-", 12) == 0) {
            int idx = parse_endpoint(sec->name + 12, strlen(sec->name + 12));
            if (idx < 0 || idx >= n) {
                rc = hx_diag_set(diag, HX_ERANGE,
                                 "%s:%d: [%s]: node out of range (total_compute_nodes=%d)",
                                 ini->path, sec->line, sec->name, n);
                goto fail;
            }
            continue;
        }
        if (strncmp(sec->name, "Link-", 5) != 0) {
            continue;
        }
        const char *p = sec->name + 5;
        const char *dash = strchr(p, '-');
        int a = dash ? parse_endpoint(p, (size_t)(dash - p)) : -3;
        int b = dash ? parse_endpoint(dash + 1, strlen(dash + 1)) : -3;
        if (a == -3 || b == -3) {
            rc = hx_diag_set(diag, HX_EPARSE,
                             "%s:%d: [%s]: link name must be Link-<a>-<b> with a, b = source, "
                             "sink or a node index",
                             ini->path, sec->line, sec->name);
            goto fail;
        }
        if (a >= n || b >= n) {
            rc = hx_diag_set(diag, HX_ERANGE, "%s:%d: [%s]: node out of range (0..%d)", ini->path,
                             sec->line, sec->name, n - 1);
            goto fail;
        }
        if (a == b || a == CLUSTER_SINK || b == CLUSTER_SOURCE ||
            (a == CLUSTER_SOURCE && b == CLUSTER_SINK)) {
            rc = hx_diag_set(diag, HX_EPARSE,
                             "%s:%d: [%s]: a link goes source->node, node->sink or node-node "
                             "(distinct)",
                             ini->path, sec->line, sec->name);
            goto fail;
        }
        if (a >= 0 && b >= 0 && a > b) {
            int t = a;
            a = b;
            b = t;
        }
        if (cluster_link_index(c, a, b) >= 0) {
            rc = hx_diag_set(diag, HX_EPARSE, "%s:%d: [%s]: duplicate link (first at line %d)",
                             ini->path, sec->line, sec->name,
                             c->links[cluster_link_index(c, a, b)].line);
            goto fail;
        }
        struct cluster_link lk = {.a = a, .b = b, .line = sec->line};
        rc = cfg_ini_get_number(ini, sec->name, "bandwidth", &lk.bandwidth, diag);
        if (rc == HX_OK) {
            rc = cfg_ini_get_number(ini, sec->name, "latency", &lk.latency_s, diag);
        }
        if (rc != HX_OK) {
            goto fail;
        }
        if (!(lk.bandwidth > 0) || lk.latency_s < 0) {
            const struct cfg_entry *e = cfg_section_entry(sec, "bandwidth");
            rc = hx_diag_set(diag, HX_ERANGE,
                             "%s:%d: [%s] bandwidth/latency: bandwidth must be > 0 and latency "
                             ">= 0",
                             ini->path, e->line, sec->name);
            goto fail;
        }
        if ((c->n_links & (c->n_links - 1)) == 0) {
            c->links =
                xrealloc(c->links, (size_t)(c->n_links ? c->n_links * 2 : 1) * sizeof(*c->links));
        }
        c->links[c->n_links] = lk;
        int w = n + 2;
        c->link_of[(a + 2) * w + (b + 2)] = c->n_links;
        c->link_of[(b + 2) * w + (a + 2)] = c->n_links;
        c->n_links++;
        if (a == CLUSTER_SOURCE) {
            c->nodes[b].from_source = 1;
        }
        if (b == CLUSTER_SINK) {
            c->nodes[a].to_sink = 1;
        }
    }
    seen = xmalloc((size_t)n + 2);
    rc = check_connected(c, ini, "SourceNode", CLUSTER_SOURCE, seen, diag);
    if (rc == HX_OK) {
        rc = check_connected(c, ini, "SinkNode", CLUSTER_SINK, seen, diag);
    }
    for (int i = 0; i < n && rc == HX_OK; i++) {
        char sname[48];
        snprintf(sname, sizeof(sname), "ComputeNode-%d", i);
        rc = check_connected(c, ini, sname, i, seen, diag);
    }
    if (rc != HX_OK) {
        goto fail;
    }
    xfree(seen);
    *out = c;
    return HX_OK;
fail:
    xfree(seen);
    cluster_free(c);
    return rc;
}

int cluster_parse_string(const char *text, const char *name, struct cluster **out,
                         struct hx_diag *diag)
{
    *out = NULL;
    struct cfg_ini *ini = NULL;
    int rc = cfg_ini_parse_string(text, name, &ini, diag);
    if (rc == HX_OK) {
        rc = cluster_from_ini(ini, out, diag);
    }
    cfg_ini_free(ini);
    return rc;
}

int cluster_read_file(const char *path, struct cluster **out, struct hx_diag *diag)
{
    *out = NULL;
    struct cfg_ini *ini = NULL;
    int rc = cfg_ini_parse_file(path, &ini, diag);
    if (rc == HX_OK) {
        rc = cluster_from_ini(ini, out, diag);
    }
    cfg_ini_free(ini);
    return rc;
}

/* ---- machine profiles -------------------------------------------------------------------- */

static int read_profile(const struct cfg_ini *ini, const struct cfg_section *sec,
                        struct machine_profile *p, struct hx_diag *diag)
{
    memset(p, 0, sizeof(*p));
    if (strlen(sec->name) >= sizeof(p->name)) {
        return hx_diag_set(diag, HX_ERANGE, "%s:%d: [%.40s]: section name too long", ini->path,
                           sec->line, sec->name);
    }
    snprintf(p->name, sizeof(p->name), "%s", sec->name);
    p->line = sec->line;
    int rc = cfg_ini_get_number(ini, sec->name, "inbound_nic_speed", &p->nic_in, diag);
    if (rc == HX_OK) {
        rc = cfg_ini_get_number(ini, sec->name, "outbound_nic_speed", &p->nic_out, diag);
    }
    if (rc == HX_OK) {
        rc = cfg_ini_get_number(ini, sec->name, "disk_speed", &p->disk_speed, diag);
    }
    if (rc == HX_OK) {
        rc = cfg_ini_get_number(ini, sec->name, "vram_size", &p->vram_bytes, diag);
    }
    return rc;
}

static int profiles_from_ini(const struct cfg_ini *ini, struct machine_profiles **out,
                             struct hx_diag *diag)
{
    struct machine_profiles *mp = xcalloc(1, sizeof(*mp));
    mp->path = xstrdup(ini->path);
    int rc = HX_OK;
    int have_src = 0;
    int have_sink = 0;
    mp->types = xcalloc(ini->n_sections + 1, sizeof(*mp->types));
    for (size_t s = 0; s < ini->n_sections && rc == HX_OK; s++) {
        const struct cfg_section *sec = &ini->sections[s];
        if (strcmp(sec->name, "SourceNode") == 0) {
            rc = read_profile(ini, sec, &mp->source, diag);
            have_src = 1;
        } else if (strcmp(sec->name, "SinkNode") == 0) {
            rc = read_profile(ini, sec, &mp->sink, diag);
            have_sink = 1;
        } else {
            rc = read_profile(ini, sec, &mp->types[mp->n_types], diag);
            mp->n_types++;
        }
    }
    if (rc == HX_OK && (!have_src || !have_sink)) {
        rc = hx_diag_set(diag, HX_ENOTFOUND, "%s: missing section [%s]", ini->path,
                         have_src ? "SinkNode" : "SourceNode");
    }
    if (rc != HX_OK) {
        machine_profiles_free(mp);
        return rc;
    }
    *out = mp;
    return HX_OK;
}

int machine_profiles_parse_string(const char *text, const char *name, struct machine_profiles **out,
                                  struct hx_diag *diag)
{
    *out = NULL;
    struct cfg_ini *ini = NULL;
    int rc = cfg_ini_parse_string(text, name, &ini, diag);
    if (rc == HX_OK) {
        rc = profiles_from_ini(ini, out, diag);
    }
    cfg_ini_free(ini);
    return rc;
}

int machine_profiles_read_file(const char *path, struct machine_profiles **out,
                               struct hx_diag *diag)
{
    *out = NULL;
    struct cfg_ini *ini = NULL;
    int rc = cfg_ini_parse_file(path, &ini, diag);
    if (rc == HX_OK) {
        rc = profiles_from_ini(ini, out, diag);
    }
    cfg_ini_free(ini);
    return rc;
}

void machine_profiles_free(struct machine_profiles *mp)
{
    if (!mp) {
        return;
    }
    xfree(mp->path);
    xfree(mp->types);
    xfree(mp);
}

const struct machine_profile *machine_profiles_find(const struct machine_profiles *mp,
                                                    const char *type)
{
    for (size_t i = 0; i < mp->n_types; i++) {
        if (strcmp(mp->types[i].name, type) == 0) {
            return &mp->types[i];
        }
    }
    return NULL;
}
