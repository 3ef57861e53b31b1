/*
 * output.c - renderers for `helix plan`'s outputs: plan.json (cJSON) and placement.svg
 * (hand-written SVG: the layer axis, one bar per node coloured by GPU type, flow-carrying
 * links as curves whose width is proportional to their flow, source on the left, sink on the
 * right, the min cut's nodes and links outlined in red). The serving dashboard
 * (src/api/dashboard.html) draws a live cluster with the same geometry, palette, row order
 * and bottleneck marking, so a plan and the cluster serving it look alike. Pure: both render
 * into a strbuf; the CLI writes the files.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "base/strbuf.h"
#include "core/cluster.h"
#include "core/model.h"
#include "flow/flow.h"
#include "plan/plan.h"

static cJSON *endpoint(int v)
{
    if (v == CLUSTER_SOURCE) {
        return cJSON_CreateString("source");
    }
    if (v == CLUSTER_SINK) {
        return cJSON_CreateString("sink");
    }
    return cJSON_CreateNumber(v);
}

static double num_or_null_guard(double v)
{
    return isfinite(v) ? v : -1.0;
}

int plan_render_json(const struct plan_problem *p, const struct plan_result *r, struct strbuf *out,
                     struct hx_diag *diag)
{
    struct flow_report rep;
    memset(&rep, 0, sizeof(rep));
    double v = 0.0;
    int rc = flow_planner_max_flow(p->cluster, r->layout, p->model, p->tp, p->mp, p->conn, &v, &rep,
                                   diag);
    if (rc != HX_OK) {
        return rc;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "method", plan_method_name(r->method));
    cJSON_AddStringToObject(j, "model", p->model->name);
    cJSON_AddStringToObject(j, "cluster", p->cluster->path ? p->cluster->path : "");
    cJSON_AddStringToObject(j, "connectivity", p->conn == LAYOUT_STRICT ? "strict" : "partial");
    cJSON_AddNumberToObject(j, "objective", r->objective);
    cJSON_AddNumberToObject(j, "upper_bound", num_or_null_guard(r->upper_bound));
    if (isfinite(r->gap)) {
        cJSON_AddNumberToObject(j, "gap", r->gap);
    } else {
        cJSON_AddNullToObject(j, "gap");
    }
    cJSON_AddNumberToObject(j, "solve_seconds", r->solve_s);
    cJSON_AddBoolToObject(j, "proven", r->proven);
    cJSON_AddStringToObject(j, "bound_kind", r->bound_kind);
    cJSON_AddStringToObject(j, "detail", r->detail);
    if (r->candidates > 0) {
        cJSON_AddNumberToObject(j, "served_decode_tok_s", r->served);
        cJSON_AddNumberToObject(j, "served_candidates", r->candidates);
    }
    cJSON *nodes = cJSON_AddArrayToObject(j, "nodes");
    for (int i = 0; i < r->layout->n_nodes; i++) {
        const struct layout_node *ln = &r->layout->nodes[i];
        cJSON *o = cJSON_CreateObject();
        char name[32];
        snprintf(name, sizeof(name), "compute_node_%d", i + r->layout->offset);
        cJSON_AddNumberToObject(o, "node", i);
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "type", p->cluster->nodes[i].type);
        cJSON_AddNumberToObject(o, "start", ln->start);
        cJSON_AddNumberToObject(o, "end", ln->start + ln->n_layers);
        cJSON_AddNumberToObject(o, "n_layers", ln->n_layers);
        double cap = 0.0;
        double fl = 0.0;
        for (int a = 0; a < rep.n_nodes; a++) {
            if (rep.nodes[a].node == i) {
                cap = rep.nodes[a].capacity;
                fl = rep.nodes[a].flow;
            }
        }
        cJSON_AddNumberToObject(o, "capacity", cap);
        cJSON_AddNumberToObject(o, "flow", fl);
        cJSON_AddItemToArray(nodes, o);
    }
    cJSON *edges = cJSON_AddArrayToObject(j, "edges");
    for (int a = 0; a < rep.n_links; a++) {
        if (rep.links[a].flow <= 1e-9) {
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "from", endpoint(rep.links[a].from));
        cJSON_AddItemToObject(o, "to", endpoint(rep.links[a].to));
        cJSON_AddNumberToObject(o, "flow", rep.links[a].flow);
        cJSON_AddNumberToObject(o, "capacity", rep.links[a].capacity);
        cJSON_AddItemToArray(edges, o);
    }
    char *s = cJSON_Print(j);
    strbuf_adds(out, s);
    strbuf_addc(out, '\n');
    cJSON_free(s);
    cJSON_Delete(j);
    flow_report_release(&rep);
    return HX_OK;
}

#define BOTTLENECK "#b00020" /* the min cut, as on the dashboard */

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

static void xml_escape(struct strbuf *sb, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            strbuf_adds(sb, "&lt;");
            break;
        case '>':
            strbuf_adds(sb, "&gt;");
            break;
        case '&':
            strbuf_adds(sb, "&amp;");
            break;
        case '"':
            strbuf_adds(sb, "&quot;");
            break;
        default:
            strbuf_addc(sb, *s);
        }
    }
}

int plan_render_svg(const struct plan_problem *p, const struct plan_result *r, struct strbuf *out,
                    struct hx_diag *diag)
{
    struct flow_report rep;
    memset(&rep, 0, sizeof(rep));
    double v = 0.0;
    int rc = flow_planner_max_flow(p->cluster, r->layout, p->model, p->tp, p->mp, p->conn, &v, &rep,
                                   diag);
    if (rc != HX_OK) {
        return rc;
    }
    const struct layout *l = r->layout;
    int n = l->n_nodes;
    int L = p->model->n_layers;
    /* rows: used nodes sorted by (start, end, type, index), unused nodes last */
    int *row_of = xcalloc((size_t)n, sizeof(int));
    int *ord = xcalloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) {
        ord[i] = i;
    }
    for (int a = 1; a < n; a++) {
        int x = ord[a];
        int b = a - 1;
        while (b >= 0) {
            int y = ord[b];
            const struct layout_node *lx = &l->nodes[x];
            const struct layout_node *ly = &l->nodes[y];
            long kx = lx->n_layers ? (long)lx->start * 1000 + lx->start + lx->n_layers : 1000000;
            long ky = ly->n_layers ? (long)ly->start * 1000 + ly->start + ly->n_layers : 1000000;
            int cmp = (ky > kx) - (ky < kx);
            if (cmp == 0) {
                cmp = strcmp(p->cluster->nodes[y].type, p->cluster->nodes[x].type);
            }
            if (cmp == 0) {
                cmp = y > x;
            }
            if (cmp <= 0) {
                break;
            }
            ord[b + 1] = y;
            b--;
        }
        ord[b + 1] = x;
    }
    for (int a = 0; a < n; a++) {
        row_of[ord[a]] = a;
    }
    /* type colours, in first-appearance order */
    const char *types[16];
    int nt = 0;
    for (int i = 0; i < n; i++) {
        int f = -1;
        for (int t = 0; t < nt; t++) {
            if (!strcmp(types[t], p->cluster->nodes[i].type)) {
                f = t;
            }
        }
        if (f < 0 && nt < 16) {
            types[nt++] = p->cluster->nodes[i].type;
        }
    }
    /* the dashboard's geometry (src/api/dashboard.html drawGraph) below the title and legend */
    double W = 1400.0;
    double x0 = 260.0;
    double x1 = W - 110.0;
    double rowh = n > 40 ? 16.0 : 28.0;
    double y0 = 90.0;
    double H = y0 + rowh * n + 70.0;
    double sx = (x1 - x0) / L;
    double maxf = 0.0;
    for (int a = 0; a < rep.n_links; a++) {
        maxf = fmax(maxf, rep.links[a].flow);
    }
    strbuf_addf(out,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n",
                W, H, W, H);
    strbuf_addf(out, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", W, H);
    strbuf_adds(out, "<text x=\"20\" y=\"28\" font-size=\"18\" font-weight=\"bold\">");
    xml_escape(out, p->model->name);
    strbuf_adds(out, " on ");
    xml_escape(out, p->cluster->path ? p->cluster->path : "cluster");
    strbuf_addf(out, " - %s: %.2f tokens/s (upper bound %.2f)</text>\n",
                plan_method_name(r->method), r->objective, r->upper_bound);
    /* legend */
    double lx = 20.0;
    for (int t = 0; t < nt; t++) {
        strbuf_addf(out,
                    "<rect x=\"%.0f\" y=\"40\" width=\"14\" height=\"14\" fill=\"%s\"/>"
                    "<text x=\"%.0f\" y=\"52\" font-size=\"13\">",
                    lx, palette[t % 10], lx + 18);
        xml_escape(out, types[t]);
        strbuf_adds(out, "</text>\n");
        lx += 30 + 9.0 * (double)strlen(types[t]);
    }
    strbuf_addf(out,
                "<rect x=\"%.0f\" y=\"40\" width=\"14\" height=\"14\" fill=\"white\" "
                "stroke=\"%s\" stroke-width=\"3\"/><text x=\"%.0f\" y=\"52\" "
                "font-size=\"13\">bottleneck (min cut)</text>\n",
                lx, BOTTLENECK, lx + 20);
    lx += 170;
    strbuf_addf(out,
                "<text x=\"%.0f\" y=\"52\" font-size=\"13\">grey curves: planned flow, width "
                "proportional to it (max %.1f tokens/s)</text>\n",
                lx + 20, maxf);
    /* layer axis with grid */
    double ya = y0 - 12;
    strbuf_addf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                x0, ya, x1, ya);
    int step = L > 40 ? 10 : 5;
    for (int k = 0; k <= L; k += (k + step > L && k != L ? L - k : step)) {
        double x = x0 + k * sx;
        strbuf_addf(out,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%d"
                    "</text>\n",
                    x, ya, x, y0 + rowh * n, x, ya - 4, k);
        if (k == L) {
            break;
        }
    }
    strbuf_addf(out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">layer</text>\n", x1 + 8, ya);
    double ysrc = y0 + rowh * n / 2.0;
    strbuf_addf(out,
                "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"9\" fill=\"#222\"/><text x=\"%.1f\" "
                "y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">source</text>\n"
                "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"9\" fill=\"#222\"/><text x=\"%.1f\" "
                "y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">sink</text>\n",
                x0 - 45, ysrc, x0 - 45, ysrc - 14, x1 + 45, ysrc, x1 + 45, ysrc - 14);
    /* bars */
    for (int i = 0; i < n; i++) {
        const struct layout_node *ln = &l->nodes[i];
        double y = y0 + rowh * row_of[i];
        int t = 0;
        for (int a = 0; a < nt; a++) {
            if (!strcmp(types[a], p->cluster->nodes[i].type)) {
                t = a;
            }
        }
        double fl = 0.0;
        for (int a = 0; a < rep.n_nodes; a++) {
            if (rep.nodes[a].node == i) {
                fl = rep.nodes[a].flow;
            }
        }
        double cap = 0.0;
        int cut = 0;
        for (int a = 0; a < rep.n_nodes; a++) {
            if (rep.nodes[a].node == i) {
                cap = rep.nodes[a].capacity;
                cut = rep.nodes[a].in_cut;
            }
        }
        if (rowh > 20) {
            strbuf_addf(out,
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\" "
                        "font-weight=\"bold\">node %d (",
                        x0 - 70, y + 12, i);
            xml_escape(out, p->cluster->nodes[i].type);
            strbuf_addf(out,
                        ")</text>\n<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" "
                        "text-anchor=\"end\" fill=\"%s\">flow %.1f of %.1f tok/s%s</text>\n",
                        x0 - 70, y + 24, cut ? BOTTLENECK : "#555", fl, cap, cut ? " (cut)" : "");
        } else {
            strbuf_addf(out,
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\" "
                        "fill=\"%s\">node %d (",
                        x0 - 70, y + rowh * 0.72, cut ? BOTTLENECK : "#222", i);
            xml_escape(out, p->cluster->nodes[i].type);
            strbuf_addf(out, ") %.1f tok/s</text>\n", fl);
        }
        if (ln->n_layers > 0) {
            strbuf_addf(out,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                        "opacity=\"%s\" stroke=\"%s\" stroke-width=\"%s\"><title>node %d "
                        "layers %d-%d, flow %.1f of %.1f%s</title></rect>\n",
                        x0 + ln->start * sx, y + 2, ln->n_layers * sx, rowh - 4, palette[t % 10],
                        fl > 1e-9 ? "0.9" : "0.35", cut ? BOTTLENECK : "#222", cut ? "3" : "0.5", i,
                        ln->start, ln->start + ln->n_layers - 1, fl, cap,
                        cut ? ", bottleneck" : "");
            strbuf_addf(out,
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" fill=\"white\">"
                        "[%d, %d)</text>\n",
                        x0 + ln->start * sx + 4, y + rowh * 0.68, rowh > 20 ? 11 : 9, ln->start,
                        ln->start + ln->n_layers);
        } else {
            strbuf_addf(out,
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#999\">unused"
                        "</text>\n",
                        x0 + 4, y + rowh * 0.7);
        }
    }
    /* links */
    for (int a = 0; a < rep.n_links; a++) {
        const struct flow_link_result *lk = &rep.links[a];
        if (lk->flow <= 1e-9 || maxf <= 0) {
            continue;
        }
        double w = 0.6 + 7.0 * lk->flow / maxf;
        double xa;
        double ya2;
        double xb;
        double yb;
        if (lk->from == CLUSTER_SOURCE) {
            xa = x0 - 45;
            ya2 = ysrc;
        } else {
            const struct layout_node *ln = &l->nodes[lk->from];
            xa = x0 + (ln->start + ln->n_layers) * sx;
            ya2 = y0 + rowh * row_of[lk->from] + rowh / 2;
        }
        if (lk->to == CLUSTER_SINK) {
            xb = x1 + 45;
            yb = ysrc;
        } else {
            xb = x0 + l->nodes[lk->to].start * sx;
            yb = y0 + rowh * row_of[lk->to] + rowh / 2;
        }
        double dx = fmax(12.0, fabs(xb - xa) / 2);
        strbuf_addf(out,
                    "<path d=\"M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f\" fill=\"none\" "
                    "stroke=\"%s\" stroke-opacity=\"0.4\" stroke-dasharray=\"%s\" "
                    "stroke-width=\"%.2f\"><title>%d -> %d: planned %.1f tokens/s%s</title>"
                    "</path>\n",
                    xa, ya2, xa + dx, ya2, xb - dx, yb, xb, yb, lk->in_cut ? BOTTLENECK : "#999",
                    lk->in_cut ? "6 3" : "none", w, lk->from, lk->to, lk->flow,
                    lk->in_cut ? ", bottleneck" : "");
    }
    strbuf_addf(out,
                "<text x=\"20\" y=\"%.1f\" font-size=\"12\" fill=\"#555\">%s connectivity; gap "
                "%.2f%% (%s bound); ",
                H - 20, p->conn == LAYOUT_STRICT ? "strict" : "partial",
                isfinite(r->gap) ? 100 * r->gap : -1.0, r->bound_kind);
    xml_escape(out, r->detail);
    strbuf_adds(out, "</text>\n</svg>\n");
    xfree(row_of);
    xfree(ord);
    flow_report_release(&rep);
    return HX_OK;
}
