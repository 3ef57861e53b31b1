/*
 * cfg.c - Helix's value grammar and an INI document layer on libinih.
 *
 * libinih splits lines (sections, key=value, comments) but has a fixed 200-byte line buffer
 * and does not report empty sections or line numbers. We feed it through ini_parse_stream with
 * our own line reader, which counts lines, records section headers itself, and replaces the
 * value of an over-long line by a short marker whose real text it keeps aside.
 */
#include "core/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "base/strbuf.h"

/* ---- values ------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    double mult;
} units[] = {
    {"kbps", 1e3}, {"mbps", 1e6}, {"gbps", 1e9}, {"Byte", 1.0},      {"KB", 1e3},
    {"MB", 1e6},   {"GB", 1e9},   {"Sec", 1.0},  {"MilliSec", 1e-3},
};

int cfg_unit_multiplier(const char *unit, double *mult)
{
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(units[i].name, unit) == 0) {
            *mult = units[i].mult;
            return HX_OK;
        }
    }
    return HX_ENOTFOUND;
}

static int strcasecmp_ascii(const char *a, const char *b)
{
    for (;; a++, b++) {
        int ca = tolower((unsigned char)*a);
        int cb = tolower((unsigned char)*b);
        if (ca != cb || ca == 0) {
            return ca - cb;
        }
    }
}

static const char *wh(const char *where)
{
    return where ? where : "value";
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
        p++;
    }
    return p;
}

/*
 * Parse a number (with optional "* UNIT") starting at *pp; stops at the first character that
 * cannot continue it (',' ']' or end). Python literal digits only: no hex, inf, nan.
 */
static int parse_number_at(const char **pp, const char *where, double *out, char *unit_out,
                           size_t unit_n, struct hx_diag *diag)
{
    const char *p = *pp;
    const char *begin = p;
    if (*p == '+' || *p == '-') {
        p++;
    }
    int digits = 0;
    while (isdigit((unsigned char)*p) || *p == '.') {
        digits += isdigit((unsigned char)*p) ? 1 : 0;
        p++;
    }
    if (digits > 0 && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        if (*q == '+' || *q == '-') {
            q++;
        }
        if (isdigit((unsigned char)*q)) {
            while (isdigit((unsigned char)*q)) {
                q++;
            }
            p = q;
        }
    }
    char buf[64];
    size_t len = (size_t)(p - begin);
    if (digits == 0 || len >= sizeof(buf)) {
        return hx_diag_set(diag, HX_EPARSE, "%s: bad number '%.40s'", wh(where), begin);
    }
    memcpy(buf, begin, len);
    buf[len] = '\0';
    char *end = NULL;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + len || errno == ERANGE || !isfinite(v)) {
        return hx_diag_set(diag, HX_EPARSE, "%s: bad number '%s'", wh(where), buf);
    }
    const char *q = skip_ws(p);
    if (unit_out && unit_n) {
        unit_out[0] = '\0';
    }
    if (*q == '*') {
        q = skip_ws(q + 1);
        const char *u = q;
        while (isalnum((unsigned char)*q) || *q == '_') {
            q++;
        }
        char ubuf[32];
        size_t ulen = (size_t)(q - u);
        if (ulen == 0) {
            return hx_diag_set(diag, HX_EPARSE, "%s: missing unit after '*' in '%.40s'", wh(where),
                               begin);
        }
        if (ulen >= sizeof(ubuf)) {
            ulen = sizeof(ubuf) - 1;
        }
        memcpy(ubuf, u, ulen);
        ubuf[ulen] = '\0';
        double mult = 0;
        if (cfg_unit_multiplier(ubuf, &mult) != HX_OK) {
            return hx_diag_set(diag, HX_EPARSE,
                               "%s: unknown unit '%s' (kbps mbps gbps Byte KB MB GB Sec MilliSec)",
                               wh(where), ubuf);
        }
        v *= mult;
        if (!isfinite(v)) {
            return hx_diag_set(diag, HX_EPARSE, "%s: number '%s * %s' overflows", wh(where), buf,
                               ubuf);
        }
        if (unit_out && unit_n) {
            size_t un = strlen(ubuf) < unit_n - 1 ? strlen(ubuf) : unit_n - 1; /* units are short */
            memcpy(unit_out, ubuf, un);
            unit_out[un] = '\0';
        }
        p = q;
    }
    *pp = p;
    *out = v;
    return HX_OK;
}

int cfg_number_parse(const char *text, const char *where, double *out, struct hx_diag *diag)
{
    const char *p = skip_ws(text);
    double v = 0;
    int rc = parse_number_at(&p, where, &v, NULL, 0, diag);
    if (rc != HX_OK) {
        return rc;
    }
    p = skip_ws(p);
    if (*p != '\0') {
        return hx_diag_set(diag, HX_EPARSE, "%s: bad number '%.40s' (junk after number)", wh(where),
                           skip_ws(text));
    }
    *out = v;
    return HX_OK;
}

/* Parse a quoted string at *pp (quote char first). */
static int parse_quoted_at(const char **pp, const char *where, char **out, struct hx_diag *diag)
{
    const char *p = *pp;
    char q = *p++;
    const char *s = p;
    while (*p && *p != q && *p != '\n') {
        p++;
    }
    if (*p != q) {
        return hx_diag_set(diag, HX_EPARSE, "%s: unterminated string %.40s", wh(where), *pp);
    }
    *out = xstrndup(s, (size_t)(p - s));
    *pp = p + 1;
    return HX_OK;
}

static int looks_numeric(const char *p)
{
    if (*p == '+' || *p == '-') {
        p++;
    }
    return isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]));
}

static int parse_list_at(const char **pp, const char *where, struct cfg_value *out,
                         struct hx_diag *diag)
{
    const char *p = *pp + 1; /* after '[' */
    size_t cap = 0;
    for (;;) {
        p = skip_ws(p);
        if (*p == ']') {
            p++;
            break;
        }
        if (*p == '\0') {
            return hx_diag_set(diag, HX_EPARSE, "%s: unterminated list (missing ']')", wh(where));
        }
        if (out->n_items == cap) {
            cap = cap ? cap * 2 : 8;
            out->items = xrealloc(out->items, cap * sizeof(*out->items));
        }
        struct cfg_value *it = &out->items[out->n_items];
        memset(it, 0, sizeof(*it));
        int rc;
        if (*p == '\'' || *p == '"') {
            it->kind = CFG_VALUE_STRING;
            it->quoted = 1;
            rc = parse_quoted_at(&p, where, &it->str, diag);
        } else if (*p == '[') {
            return hx_diag_set(diag, HX_EPARSE, "%s: nested lists are not supported", wh(where));
        } else if (looks_numeric(p)) {
            it->kind = CFG_VALUE_NUMBER;
            rc = parse_number_at(&p, where, &it->number, it->unit, sizeof(it->unit), diag);
        } else {
            return hx_diag_set(diag, HX_EPARSE,
                               "%s: bad list item '%.20s' (numbers and quoted strings only)",
                               wh(where), p);
        }
        if (rc != HX_OK) {
            return rc;
        }
        out->n_items++;
        p = skip_ws(p);
        if (*p == ',') {
            p++;
        } else if (*p != ']') {
            if (*p == '\0') {
                return hx_diag_set(diag, HX_EPARSE, "%s: unterminated list (missing ']')",
                                   wh(where));
            }
            return hx_diag_set(diag, HX_EPARSE, "%s: expected ',' or ']' in list at '%.20s'",
                               wh(where), p);
        }
    }
    *pp = p;
    return HX_OK;
}

int cfg_value_parse(const char *text, const char *where, struct cfg_value *out,
                    struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    const char *p = skip_ws(text);
    int rc = HX_OK;
    if (*p == '[') {
        out->kind = CFG_VALUE_LIST;
        rc = parse_list_at(&p, where, out, diag);
    } else if (*p == '\'' || *p == '"') {
        out->kind = CFG_VALUE_STRING;
        out->quoted = 1;
        rc = parse_quoted_at(&p, where, &out->str, diag);
    } else if (looks_numeric(p)) {
        out->kind = CFG_VALUE_NUMBER;
        rc = parse_number_at(&p, where, &out->number, out->unit, sizeof(out->unit), diag);
    } else {
        /* raw string: the whole trimmed text */
        out->kind = CFG_VALUE_STRING;
        size_t n = strlen(p);
        while (n > 0 && isspace((unsigned char)p[n - 1])) {
            n--;
        }
        if (n == 0) {
            return hx_diag_set(diag, HX_EPARSE, "%s: empty value", wh(where));
        }
        out->str = xstrndup(p, n);
        return HX_OK;
    }
    if (rc == HX_OK) {
        p = skip_ws(p);
        if (*p != '\0') {
            rc = hx_diag_set(diag, HX_EPARSE, "%s: unexpected text after value: '%.30s'", wh(where),
                             p);
        }
    }
    if (rc != HX_OK) {
        cfg_value_release(out);
    }
    return rc;
}

void cfg_value_release(struct cfg_value *v)
{
    if (!v) {
        return;
    }
    for (size_t i = 0; i < v->n_items; i++) {
        cfg_value_release(&v->items[i]);
    }
    xfree(v->items);
    xfree(v->str);
    memset(v, 0, sizeof(*v));
}

void cfg_format_pyfloat(struct strbuf *sb, double x)
{
    if (isnan(x)) {
        strbuf_adds(sb, "nan");
        return;
    }
    if (isinf(x)) {
        strbuf_adds(sb, x < 0 ? "-inf" : "inf");
        return;
    }
    if (x == 0) {
        strbuf_adds(sb, signbit(x) ? "-0.0" : "0.0");
        return;
    }
    char buf[64];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, x);
        if (strtod(buf, NULL) == x) {
            break;
        }
    }
    /* buf = [-]d[.ddd]e[+-]XX */
    const char *p = buf;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    char digits[32];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++) {
        if (isdigit((unsigned char)*p) && nd < sizeof(digits) - 1) {
            digits[nd++] = *p;
        }
    }
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    digits[nd] = '\0';
    int exp10 = (int)strtol(p + 1, NULL, 10);
    if (neg) {
        strbuf_addc(sb, '-');
    }
    if (exp10 < -4 || exp10 >= 16) {
        strbuf_addc(sb, digits[0]);
        if (nd > 1) {
            strbuf_addc(sb, '.');
            strbuf_add(sb, digits + 1, nd - 1);
        }
        strbuf_addf(sb, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    } else if (exp10 < 0) {
        strbuf_adds(sb, "0.");
        for (int i = 0; i < -exp10 - 1; i++) {
            strbuf_addc(sb, '0');
        }
        strbuf_add(sb, digits, nd);
    } else {
        size_t ip = (size_t)exp10 + 1;
        for (size_t i = 0; i < ip; i++) {
            strbuf_addc(sb, i < nd ? digits[i] : '0');
        }
        strbuf_addc(sb, '.');
        if (nd > ip) {
            strbuf_add(sb, digits + ip, nd - ip);
        } else {
            strbuf_addc(sb, '0');
        }
    }
}

/* ---- INI documents ----------------------------------------------------------------------- */

#define LONG_MARK "\x01HXLONG"

struct ini_state {
    const char *text;
    size_t pos;
    int line;
    int indented;  /* current line starts with whitespace and is not a comment */
    int have_prev; /* a key was seen in the current section (inih's prev_name) */
    int rc;
    struct hx_diag *diag;
    struct cfg_ini *ini;
    size_t sec_cap;
    size_t *entry_cap; /* per section */
    char **longs;      /* values of over-long lines */
    size_t n_longs;
    size_t cap_longs;
};

static const char *ini_name(const struct cfg_ini *ini)
{
    return ini->path ? ini->path : "<string>";
}

static int add_section(struct ini_state *st, const char *name, size_t n)
{
    struct cfg_ini *ini = st->ini;
    for (size_t i = 0; i < ini->n_sections; i++) {
        if (strlen(ini->sections[i].name) == n && memcmp(ini->sections[i].name, name, n) == 0) {
            return hx_diag_set(st->diag, HX_EPARSE,
                               "%s:%d: duplicate section [%.*s] (first at line %d)", ini_name(ini),
                               st->line, (int)n, name, ini->sections[i].line);
        }
    }
    if (ini->n_sections == st->sec_cap) {
        st->sec_cap = st->sec_cap ? st->sec_cap * 2 : 16;
        ini->sections = xrealloc(ini->sections, st->sec_cap * sizeof(*ini->sections));
        st->entry_cap = xrealloc(st->entry_cap, st->sec_cap * sizeof(*st->entry_cap));
    }
    struct cfg_section *sec = &ini->sections[ini->n_sections];
    memset(sec, 0, sizeof(*sec));
    sec->name = xstrndup(name, n);
    sec->line = st->line;
    st->entry_cap[ini->n_sections] = 0;
    ini->n_sections++;
    st->have_prev = 0;
    return HX_OK;
}

static size_t keep_long(struct ini_state *st, const char *s, size_t n)
{
    if (st->n_longs == st->cap_longs) {
        st->cap_longs = st->cap_longs ? st->cap_longs * 2 : 8;
        st->longs = xrealloc(st->longs, st->cap_longs * sizeof(*st->longs));
    }
    /* strip an inline " ;" comment and surrounding whitespace, as inih would */
    for (size_t i = 1; i < n; i++) {
        if (s[i] == ';' && isspace((unsigned char)s[i - 1])) {
            n = i;
            break;
        }
    }
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        n--;
    }
    st->longs[st->n_longs] = xstrndup(s, n);
    return st->n_longs++;
}

/* fgets-style reader for ini_parse_stream: one source line per call. */
static char *ini_read_line(char *str, int num, void *stream)
{
    struct ini_state *st = stream;
    if (st->rc != HX_OK || st->text[st->pos] == '\0' || num < 64) {
        return NULL;
    }
    const char *l = st->text + st->pos;
    const char *nl = strchr(l, '\n');
    size_t len = nl ? (size_t)(nl - l) + 1 : strlen(l);
    st->pos += len;
    st->line++;
    size_t clen = len;
    while (clen > 0 && (l[clen - 1] == '\n' || l[clen - 1] == '\r')) {
        clen--;
    }
    size_t i = 0;
    while (i < clen && (l[i] == ' ' || l[i] == '\t')) {
        i++;
    }
    char c = i < clen ? l[i] : '\0';
    int comment = (c == '#' || c == ';');
    st->indented = (i > 0 && c != '\0' && !comment);
    int continuation = st->indented && st->have_prev;
    if (!continuation && c == '[') {
        const char *close = memchr(l + i, ']', clen - i);
        if (close && close > l + i + 1) {
            if (add_section(st, l + i + 1, (size_t)(close - (l + i + 1))) != HX_OK) {
                st->rc = HX_EPARSE;
                return NULL;
            }
            snprintf(str, (size_t)num, "[s]\n");
            return str;
        }
        if (close) {
            st->rc = hx_diag_set(st->diag, HX_EPARSE, "%s:%d: empty section name",
                                 ini_name(st->ini), st->line);
            return NULL;
        }
    }
    if (clen + 2 < (size_t)num) {
        memcpy(str, l, clen);
        str[clen] = '\n';
        str[clen + 1] = '\0';
        return str;
    }
    /* over-long line: hand inih a short stand-in */
    if (comment || c == '\0') {
        snprintf(str, (size_t)num, "#\n");
        return str;
    }
    if (continuation) {
        size_t idx = keep_long(st, l + i, clen - i);
        snprintf(str, (size_t)num, " " LONG_MARK "%zu\n", idx);
        return str;
    }
    size_t sep = i;
    while (sep < clen && l[sep] != '=' && l[sep] != ':') {
        sep++;
    }
    if (sep == clen || sep - i > 48) {
        st->rc = hx_diag_set(st->diag, HX_EPARSE,
                             "%s:%d: expected 'key = value' (line of %zu bytes, no '=' near the "
                             "start)",
                             ini_name(st->ini), st->line, clen);
        return NULL;
    }
    size_t idx = keep_long(st, l + sep + 1, clen - sep - 1);
    snprintf(str, (size_t)num, "%.*s=" LONG_MARK "%zu\n", (int)(sep - i), l + i, idx);
    return str;
}

static int ini_handler_fn(void *user, const char *section, const char *name, const char *value)
{
    (void)section;
    struct ini_state *st = user;
    struct cfg_ini *ini = st->ini;
    if (st->rc != HX_OK) {
        return 0;
    }
    if (ini->n_sections == 0) {
        st->rc = hx_diag_set(st->diag, HX_EPARSE, "%s:%d: key '%s' before any [section]",
                             ini_name(ini), st->line, name);
        return 0;
    }
    if (strncmp(value, LONG_MARK, strlen(LONG_MARK)) == 0) {
        size_t idx = (size_t)strtoul(value + strlen(LONG_MARK), NULL, 10);
        if (idx < st->n_longs) {
            value = st->longs[idx];
        }
    }
    size_t si = ini->n_sections - 1;
    struct cfg_section *sec = &ini->sections[si];
    char key[64];
    size_t kn = 0;
    for (; name[kn] && kn < sizeof(key) - 1; kn++) {
        key[kn] = (char)tolower((unsigned char)name[kn]);
    }
    key[kn] = '\0';
    if (st->indented && st->have_prev && sec->n_entries > 0) {
        struct cfg_entry *e = &sec->entries[sec->n_entries - 1];
        struct strbuf sb;
        strbuf_init(&sb);
        strbuf_adds(&sb, e->value);
        strbuf_addc(&sb, '\n');
        strbuf_adds(&sb, value);
        xfree(e->value);
        e->value = strbuf_detach(&sb, NULL);
        return 1;
    }
    for (size_t i = 0; i < sec->n_entries; i++) {
        if (strcmp(sec->entries[i].key, key) == 0) {
            st->rc =
                hx_diag_set(st->diag, HX_EPARSE, "%s:%d: [%s] %s: duplicate key (first at line %d)",
                            ini_name(ini), st->line, sec->name, key, sec->entries[i].line);
            return 0;
        }
    }
    if (sec->n_entries == st->entry_cap[si]) {
        st->entry_cap[si] = st->entry_cap[si] ? st->entry_cap[si] * 2 : 8;
        sec->entries = xrealloc(sec->entries, st->entry_cap[si] * sizeof(*sec->entries));
    }
    struct cfg_entry *e = &sec->entries[sec->n_entries++];
    e->key = xstrdup(key);
    e->value = xstrdup(value);
    e->line = st->line;
    st->have_prev = 1;
    return 1;
}

int cfg_ini_parse_string(const char *text, const char *name, struct cfg_ini **out,
                         struct hx_diag *diag)
{
    *out = NULL;
    struct cfg_ini *ini = xcalloc(1, sizeof(*ini));
    ini->path = xstrdup(name ? name : "<string>");
    struct ini_state st;
    memset(&st, 0, sizeof(st));
    st.text = text;
    st.ini = ini;
    st.diag = diag;
    /* skip a UTF-8 BOM ourselves so line 1 is handled like any other */
    if ((unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
        (unsigned char)text[2] == 0xBF) {
        st.pos = 3;
    }
    int ret = ini_parse_stream(ini_read_line, &st, ini_handler_fn, &st);
    int rc = st.rc;
    if (rc == HX_OK && ret > 0) {
        rc = hx_diag_set(diag, HX_EPARSE, "%s:%d: expected '[section]' or 'key = value'", ini->path,
                         ret);
    } else if (rc == HX_OK && ret < 0) {
        rc = hx_diag_set(diag, HX_ENOMEM, "%s: out of memory while reading", ini->path);
    }
    for (size_t i = 0; i < st.n_longs; i++) {
        xfree(st.longs[i]);
    }
    xfree(st.longs);
    xfree(st.entry_cap);
    if (rc != HX_OK) {
        cfg_ini_free(ini);
        return rc;
    }
    *out = ini;
    return HX_OK;
}

int cfg_ini_parse_file(const char *path, struct cfg_ini **out, struct hx_diag *diag)
{
    *out = NULL;
    struct strbuf sb;
    strbuf_init(&sb);
    if (strbuf_read_file(&sb, path) != HX_OK) {
        strbuf_release(&sb);
        return hx_diag_set(diag, HX_EIO, "%s: cannot read file: %s", path, strerror(errno));
    }
    int rc = cfg_ini_parse_string(sb.buf, path, out, diag);
    strbuf_release(&sb);
    return rc;
}

void cfg_ini_free(struct cfg_ini *ini)
{
    if (!ini) {
        return;
    }
    for (size_t i = 0; i < ini->n_sections; i++) {
        struct cfg_section *s = &ini->sections[i];
        for (size_t j = 0; j < s->n_entries; j++) {
            xfree(s->entries[j].key);
            xfree(s->entries[j].value);
        }
        xfree(s->entries);
        xfree(s->name);
    }
    xfree(ini->sections);
    xfree(ini->path);
    xfree(ini);
}

const struct cfg_section *cfg_ini_section(const struct cfg_ini *ini, const char *name)
{
    for (size_t i = 0; i < ini->n_sections; i++) {
        if (strcmp(ini->sections[i].name, name) == 0) {
            return &ini->sections[i];
        }
    }
    return NULL;
}

const struct cfg_entry *cfg_section_entry(const struct cfg_section *sec, const char *key)
{
    for (size_t i = 0; i < sec->n_entries; i++) {
        if (strcasecmp_ascii(sec->entries[i].key, key) == 0) {
            return &sec->entries[i];
        }
    }
    return NULL;
}

void cfg_entry_where(const struct cfg_ini *ini, const struct cfg_section *sec,
                     const struct cfg_entry *e, char *buf, size_t n)
{
    snprintf(buf, n, "%s:%d: [%s] %s", ini_name(ini), e ? e->line : sec->line, sec->name,
             e ? e->key : "");
}

static int find_entry(const struct cfg_ini *ini, const char *section, const char *key,
                      const struct cfg_section **sec_out, const struct cfg_entry **e_out,
                      struct hx_diag *diag)
{
    const struct cfg_section *sec = cfg_ini_section(ini, section);
    if (!sec) {
        return hx_diag_set(diag, HX_ENOTFOUND, "%s: missing section [%s] (needed for key '%s')",
                           ini_name(ini), section, key);
    }
    const struct cfg_entry *e = cfg_section_entry(sec, key);
    if (!e) {
        return hx_diag_set(diag, HX_ENOTFOUND, "%s:%d: [%s] %s: missing key '%s'", ini_name(ini),
                           sec->line, section, key, key);
    }
    *sec_out = sec;
    *e_out = e;
    return HX_OK;
}

int cfg_ini_get_number(const struct cfg_ini *ini, const char *section, const char *key, double *out,
                       struct hx_diag *diag)
{
    const struct cfg_section *sec = NULL;
    const struct cfg_entry *e = NULL;
    int rc = find_entry(ini, section, key, &sec, &e, diag);
    if (rc != HX_OK) {
        return rc;
    }
    char where[256];
    cfg_entry_where(ini, sec, e, where, sizeof(where));
    return cfg_number_parse(e->value, where, out, diag);
}

int cfg_ini_get_int(const struct cfg_ini *ini, const char *section, const char *key, int *out,
                    struct hx_diag *diag)
{
    double v = 0;
    int rc = cfg_ini_get_number(ini, section, key, &v, diag);
    if (rc != HX_OK) {
        return rc;
    }
    if (v != floor(v) || v < -2147483647.0 || v > 2147483647.0) {
        const struct cfg_section *sec = cfg_ini_section(ini, section);
        const struct cfg_entry *e = cfg_section_entry(sec, key);
        return hx_diag_set(diag, HX_EPARSE, "%s:%d: [%s] %s: expected an integer, got %.17g",
                           ini_name(ini), e->line, section, key, v);
    }
    *out = (int)v;
    return HX_OK;
}

int cfg_ini_get_value(const struct cfg_ini *ini, const char *section, const char *key,
                      struct cfg_value *out, struct hx_diag *diag)
{
    memset(out, 0, sizeof(*out));
    const struct cfg_section *sec = NULL;
    const struct cfg_entry *e = NULL;
    int rc = find_entry(ini, section, key, &sec, &e, diag);
    if (rc != HX_OK) {
        return rc;
    }
    char where[256];
    cfg_entry_where(ini, sec, e, where, sizeof(where));
    return cfg_value_parse(e->value, where, out, diag);
}

int cfg_ini_get_string(const struct cfg_ini *ini, const char *section, const char *key, char *out,
                       size_t n, struct hx_diag *diag)
{
    struct cfg_value v;
    int rc = cfg_ini_get_value(ini, section, key, &v, diag);
    if (rc != HX_OK) {
        return rc;
    }
    const struct cfg_section *sec = cfg_ini_section(ini, section);
    const struct cfg_entry *e = cfg_section_entry(sec, key);
    if (v.kind != CFG_VALUE_STRING) {
        rc = hx_diag_set(diag, HX_EPARSE, "%s:%d: [%s] %s: expected a string", ini_name(ini),
                         e->line, section, key);
    } else if (strlen(v.str) >= n || v.str[0] == '\0') {
        rc = hx_diag_set(diag, HX_ERANGE, "%s:%d: [%s] %s: string '%.40s' is empty or too long",
                         ini_name(ini), e->line, section, key, v.str);
    } else {
        snprintf(out, n, "%s", v.str);
    }
    cfg_value_release(&v);
    return rc;
}
