/*
 * cfg.h - Helix's configuration syntax: the Python-style value grammar (spec §1.1) and an
 * INI document layer on libinih that keeps every key's line number.
 *
 * Helix reads its INI files with configparser + eval(), so values are Python literals:
 *   number          1.53e9, -1, 12.5
 *   number * UNIT   1000 * mbps, 10000.0 * mbps, 1 * MilliSec, 24000.0 * MB
 *   list            [0, 1, 'source', 'sink']   (numbers and quoted strings; [] allowed)
 *   quoted string   "A100" or 'A100' (quotes stripped)
 *   raw string      L4 (anything else that is not a number: kept verbatim)
 * Units are plain multipliers (spec §0.1): kbps 1e3, mbps 1e6, gbps 1e9, Byte 1, KB 1e3,
 * MB 1e6, GB 1e9, Sec 1, MilliSec 1e-3. A bandwidth "1000 * mbps" is the number 1e9, which
 * Helix (and we) treat as bytes/s.
 *
 * Every error goes into a struct hx_diag whose message starts with "file:line: [section] key:",
 * so a user can find the offending line. Nothing here prints.
 */
#ifndef HX_CORE_CFG_H
#define HX_CORE_CFG_H

#include <stddef.h>

struct hx_diag;
struct strbuf;

/* ---- values ------------------------------------------------------------------------------ */

enum cfg_value_kind {
    CFG_VALUE_NUMBER = 0, /* number, already multiplied by its unit */
    CFG_VALUE_STRING = 1, /* quoted string (quotes stripped) or raw string */
    CFG_VALUE_LIST = 2,   /* list of NUMBER and STRING items (no nesting) */
};

/*
 * A parsed value. Owns str and items; release with cfg_value_release.
 * For NUMBER: number is the value times the unit multiplier, unit is the unit name as written
 * ("" when none). For STRING: str is the text, quoted is 1 if it was quoted. For LIST: items.
 */
struct cfg_value {
    enum cfg_value_kind kind;
    double number;
    char unit[12];
    int quoted;
    char *str;
    struct cfg_value *items;
    size_t n_items;
};

/*
 * Parse one value (spec §1.1). text is borrowed; *out is filled (caller releases it) and
 * cleared on failure. `where` prefixes error messages (e.g. "a.ini:12: [Link-0-1] bandwidth";
 * NULL is fine). Errors: HX_EPARSE (bad number, unknown unit, unterminated list or string,
 * nested list, trailing junk).
 */
int cfg_value_parse(const char *text, const char *where, struct cfg_value *out,
                    struct hx_diag *diag);

/* Free what a value owns and zero it (NULL is fine). */
void cfg_value_release(struct cfg_value *v);

/*
 * Parse a number with an optional "* UNIT" (no lists, no strings): *out = number × unit.
 * Returns 0 or HX_EPARSE with `where` in the message.
 */
int cfg_number_parse(const char *text, const char *where, double *out, struct hx_diag *diag);

/* Multiplier of a Helix unit name ("mbps" -> 1e6); returns 0 and sets *mult, or HX_ENOTFOUND. */
int cfg_unit_multiplier(const char *unit, double *mult);

/*
 * Append a double formatted like Python's repr(float) (shortest round-trip digits, ".0" for
 * integral values, exponent form below 1e-4 and from 1e16), e.g. 10000.0, 0.001, 1e+20.
 * Used by the writers so files read back bit-identically and match Helix's output.
 */
void cfg_format_pyfloat(struct strbuf *sb, double x);

/* ---- INI documents ----------------------------------------------------------------------- */

/* One key = value. key is lower-cased (configparser); value is the raw text, whitespace-trimmed. */
struct cfg_entry {
    char *key;
    char *value;
    int line;
};

/* One [section]; name is case-sensitive. Entries in file order. */
struct cfg_section {
    char *name;
    int line;
    struct cfg_entry *entries;
    size_t n_entries;
};

/* A whole INI document; sections in file order. path is the name used in messages. */
struct cfg_ini {
    char *path;
    struct cfg_section *sections;
    size_t n_sections;
};

/*
 * Split INI text (borrowed) into a new document (*out, free with cfg_ini_free). `name` is the
 * file name used in messages ("<string>" if NULL). Lines of any length are accepted (libinih's
 * 200-byte limit is worked around). Comments: full-line '#' or ';', inline " ;". Errors:
 * HX_EPARSE for a line that is not a section, key=value, comment or blank ("file:line: ..."),
 * a key before any section, a duplicate section or a duplicate key in one section.
 */
int cfg_ini_parse_string(const char *text, const char *name, struct cfg_ini **out,
                         struct hx_diag *diag);

/* Same, reading path. HX_EIO if it cannot be read. */
int cfg_ini_parse_file(const char *path, struct cfg_ini **out, struct hx_diag *diag);

void cfg_ini_free(struct cfg_ini *ini);

/* Lookups (NULL if absent). Section names are exact; keys are matched case-insensitively. */
const struct cfg_section *cfg_ini_section(const struct cfg_ini *ini, const char *name);
const struct cfg_entry *cfg_section_entry(const struct cfg_section *sec, const char *key);

/*
 * Typed getters. Each fails with HX_ENOTFOUND if the section or key is missing ("file:line:
 * [section] missing key 'k'" or "file: missing section [s]") and HX_EPARSE if the value has
 * the wrong shape; messages always name file, line and key. Out-params are untouched on failure
 * except where noted.
 */
int cfg_ini_get_number(const struct cfg_ini *ini, const char *section, const char *key, double *out,
                       struct hx_diag *diag);
/* The number must be integral and fit an int. */
int cfg_ini_get_int(const struct cfg_ini *ini, const char *section, const char *key, int *out,
                    struct hx_diag *diag);
/* Any value; *out is owned by the caller (cfg_value_release). */
int cfg_ini_get_value(const struct cfg_ini *ini, const char *section, const char *key,
                      struct cfg_value *out, struct hx_diag *diag);
/* A string (quoted or raw) copied into out (size n); HX_ERANGE if it does not fit. */
int cfg_ini_get_string(const struct cfg_ini *ini, const char *section, const char *key, char *out,
                       size_t n, struct hx_diag *diag);

/* Write "file:line: [section] key" for an entry into buf (for callers' own messages). */
void cfg_entry_where(const struct cfg_ini *ini, const struct cfg_section *sec,
                     const struct cfg_entry *e, char *buf, size_t n);

#endif
