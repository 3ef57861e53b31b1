/*
 * tokenizer.c - loading a Hugging Face tokenizer.json, id/string lookups, decoding and the
 * streaming decoder. Encoding (added tokens, pre-tokenizers, BPE merges) is in tok_encode.c, the
 * normalizers in tok_normalize.c.
 *
 * Loading turns the JSON into flat tables (tok_int.h): per-id vocabulary strings and decoded
 * bytes in two pools, a string->id hash, a (left,right)->(rank,merged) hash, the added tokens,
 * and a few flags saying which of the supported normalizer / pre-tokenizer / decoder shapes the
 * file uses. Anything not understood is refused with HX_ENOTSUP naming the key, so a tokenizer
 * never silently encodes differently from Hugging Face's.
 *
 * Decoding concatenates the per-id bytes, strips the decoder's leading space(s), and repairs
 * invalid UTF-8 the way Rust's String::from_utf8_lossy does (one U+FFFD per maximal invalid
 * subsequence). The stream applies the same steps incrementally, holding back at most 3 bytes
 * of an incomplete character.
 */
#include "engine/tokenizer.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "engine/tok_int.h"

#define MAX_VOCAB_ID (1 << 22) // ids above this are refused as corrupt (largest real: ~256k)

/* ---- hashing ----------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; // FNV-1a 64
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n) {
        c *= 2;
    }
    return c;
}

static const char *tok_str(const struct eng_tok *tok, int32_t id, size_t *len)
{
    size_t a = tok->str_off[id];
    *len = tok->str_off[id + 1] - a - 1; // minus the NUL
    return tok->str_pool + a;
}

int32_t eng_tok_strmap_get(const struct eng_tok *tok, const char *s, size_t len)
{
    const struct tok_strmap *m = &tok->vocab;
    if (m->cap == 0) {
        return -1;
    }
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        int32_t id = m->slots[i];
        if (id < 0) {
            return -1;
        }
        size_t l = 0;
        const char *t = tok_str(tok, id, &l);
        if (l == len && memcmp(t, s, len) == 0) {
            return id;
        }
    }
}

/* Insert id under its own string (already in the pool); an existing equal string is replaced. */
static void strmap_put(struct eng_tok *tok, int32_t id)
{
    struct tok_strmap *m = &tok->vocab;
    size_t len = 0;
    const char *s = tok_str(tok, id, &len);
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        int32_t cur = m->slots[i];
        if (cur < 0) {
            m->slots[i] = id;
            return;
        }
        size_t l = 0;
        const char *t = tok_str(tok, cur, &l);
        if (l == len && memcmp(t, s, len) == 0) {
            m->slots[i] = id;
            return;
        }
    }
}

const struct tok_merge *eng_tok_merge_get(const struct eng_tok *tok, int32_t left, int32_t right)
{
    const struct tok_mergemap *m = &tok->merges;
    if (m->cap == 0) {
        return NULL;
    }
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (m->slots[i].key == key) {
            return &m->slots[i];
        }
        if (m->slots[i].key == UINT64_MAX) {
            return NULL;
        }
    }
}

/* Later duplicates overwrite earlier ones, as in Hugging Face's HashMap collect. */
static void merge_put(struct tok_mergemap *m, int32_t left, int32_t right, int32_t rank,
                      int32_t new_id)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (m->slots[i].key == UINT64_MAX || m->slots[i].key == key) {
            m->slots[i].key = key;
            m->slots[i].rank = rank;
            m->slots[i].new_id = new_id;
            return;
        }
    }
}

/* ---- UTF-8 ------------------------------------------------------------------------------- */

/*
 * Length of the valid UTF-8 prefix of a sequence starting at s[0] that is available in s[0..n):
 * returns the full length (1..4) of a complete valid character, or sets *incomplete when the
 * n bytes are a valid but unfinished prefix, or returns 0 with *bad = number of bytes forming
 * the maximal invalid subpart (>= 1).
 */
static size_t utf8_check(const unsigned char *s, size_t n, int *incomplete, size_t *bad)
{
    *incomplete = 0;
    *bad = 0;
    unsigned char b = s[0];
    if (b < 0x80) {
        return 1;
    }
    size_t need = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        lo = b == 0xE0 ? 0xA0 : 0x80;
        hi = b == 0xED ? 0x9F : 0xBF;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        lo = b == 0xF0 ? 0x90 : 0x80;
        hi = b == 0xF4 ? 0x8F : 0xBF;
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t k = 1; k <= need; k++) {
        if (k >= n) {
            *incomplete = 1;
            return 0;
        }
        unsigned char c = s[k];
        unsigned char l = k == 1 ? lo : 0x80;
        unsigned char h = k == 1 ? hi : 0xBF;
        if (c < l || c > h) {
            *bad = k;
            return 0;
        }
    }
    return need + 1;
}

size_t eng_tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    int incomplete = 0;
    size_t bad = 0;
    size_t len = utf8_check(s, n, &incomplete, &bad);
    if (len == 0) {
        *cp = TOK_CP_INVALID;
        return 1;
    }
    if (len == 1) {
        *cp = s[0];
    } else if (len == 2) {
        *cp = (uint32_t)(s[0] & 0x1F) << 6 | (uint32_t)(s[1] & 0x3F);
    } else if (len == 3) {
        *cp =
            (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (uint32_t)(s[2] & 0x3F);
    } else {
        *cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
              (uint32_t)(s[2] & 0x3F) << 6 | (uint32_t)(s[3] & 0x3F);
    }
    return len;
}

static size_t utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * Lossy UTF-8 repair of in[0..n) into out (room for 3*n bytes). If !final, an incomplete valid
 * character at the end is not consumed. Returns bytes written; *consumed = bytes of in used.
 */
static size_t utf8_lossy(const unsigned char *in, size_t n, int final, char *out, size_t *consumed)
{
    size_t i = 0;
    size_t o = 0;
    while (i < n) {
        int incomplete = 0;
        size_t bad = 0;
        size_t len = utf8_check(in + i, n - i, &incomplete, &bad);
        if (len > 0) {
            memcpy(out + o, in + i, len);
            o += len;
            i += len;
        } else if (incomplete && !final) {
            break;
        } else {
            o += utf8_put(out + o, 0xFFFD);
            i += incomplete ? n - i : bad;
        }
    }
    *consumed = i;
    return o;
}

/* ---- the GPT-2 byte-level alphabet ------------------------------------------------------- */

/* Code point standing for byte b (GPT-2's bytes_to_unicode). */
static uint32_t byte_to_cp(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        return b;
    }
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++) {
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) {
            n++;
        }
    }
    return 256 + n;
}

/* ---- JSON helpers ------------------------------------------------------------------------ */

struct loader {
    const char *name;
    struct hx_diag *diag;
    cJSON *root;
    struct eng_tok *tok;
};

static const char *jstr(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Boolean key: 1/0, or dflt if absent or null. */
static int jbool(const cJSON *obj, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsBool(v)) {
        return cJSON_IsTrue(v);
    }
    return dflt;
}

static int jnull(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v == NULL || cJSON_IsNull(v);
}

/* A JSON number that is an integer in [0, MAX_VOCAB_ID). */
static int jid(const cJSON *v, int32_t *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble >= MAX_VOCAB_ID ||
        v->valuedouble != (double)(int32_t)v->valuedouble) {
        return 0;
    }
    *out = (int32_t)v->valuedouble;
    return 1;
}

static int unsupported(struct loader *L, const char *what, const char *type)
{
    return hx_diag_set(L->diag, HX_ENOTSUP, "%s: unsupported %s%s%s", L->name, what,
                       type ? " type " : "", type ? type : "");
}

/* Copy a JSON string into a new allocation (owned by the tokenizer). */
static char *dup_str(const char *s, size_t *len)
{
    *len = strlen(s);
    return xstrndup(s, *len);
}

/* ---- loading: vocabulary ----------------------------------------------------------------- */

static int load_vocab(struct loader *L, const cJSON *model, const cJSON *added)
{
    struct eng_tok *tok = L->tok;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: model.vocab: missing or not an object",
                           L->name);
    }
    int32_t max_id = -1;
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, vocab)
    {
        int32_t id = 0;
        if (!jid(e, &id)) {
            return hx_diag_set(L->diag, HX_EPARSE, "%s: model.vocab[\"%.64s\"]: bad id", L->name,
                               e->string ? e->string : "");
        }
        max_id = id > max_id ? id : max_id;
    }
    if (added != NULL && !cJSON_IsNull(added) && !cJSON_IsArray(added)) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: added_tokens: not an array", L->name);
    }
    size_t n_added = 0;
    cJSON_ArrayForEach(e, added)
    {
        int32_t id = 0;
        if (!cJSON_IsObject(e) || !jid(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) ||
            jstr(e, "content") == NULL) {
            return hx_diag_set(L->diag, HX_EPARSE, "%s: added_tokens[%zu]: needs id and content",
                               L->name, n_added);
        }
        max_id = id > max_id ? id : max_id;
        n_added++;
    }
    if (max_id < 0) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: model.vocab: empty", L->name);
    }
    tok->n_vocab = max_id + 1;
    size_t n = (size_t)tok->n_vocab;

    /* Each id's string: the added token's content if any, else the vocab key (else empty). */
    const char **strs = hx_calloc(n, sizeof(*strs));
    tok->str_off = hx_calloc(n + 1, sizeof(*tok->str_off));
    tok->is_special = hx_calloc(n, 1);
    tok->added = hx_calloc(n_added ? n_added : 1, sizeof(*tok->added));
    if (!strs || !tok->str_off || !tok->is_special || !tok->added) {
        xfree(strs);
        return hx_diag_set(L->diag, HX_ENOMEM, "%s: out of memory for %zu ids", L->name, n);
    }
    cJSON_ArrayForEach(e, vocab)
    {
        int32_t id = 0;
        jid(e, &id);
        strs[id] = e->string;
    }
    cJSON_ArrayForEach(e, added)
    {
        struct tok_added *a = &tok->added[tok->n_added++];
        jid(cJSON_GetObjectItemCaseSensitive(e, "id"), &a->id);
        a->content = dup_str(jstr(e, "content"), &a->len);
        a->special = jbool(e, "special", 0);
        a->lstrip = jbool(e, "lstrip", 0);
        a->rstrip = jbool(e, "rstrip", 0);
        a->single_word = jbool(e, "single_word", 0);
        a->normalized = jbool(e, "normalized", !a->special); // AddedToken::from's default
        strs[a->id] = a->content;
        tok->is_special[a->id] = (unsigned char)(a->special ? 1 : 0);
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += (strs[i] ? strlen(strs[i]) : 0) + 1;
    }
    tok->str_pool = hx_malloc(total);
    tok->vocab.cap = pow2_at_least(2 * n + 2);
    tok->vocab.slots = hx_malloc(tok->vocab.cap * sizeof(int32_t));
    if (!tok->str_pool || !tok->vocab.slots) {
        xfree(strs);
        return hx_diag_set(L->diag, HX_ENOMEM, "%s: out of memory for the vocabulary", L->name);
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strs[i] ? strlen(strs[i]) : 0;
        tok->str_off[i] = off;
        if (l) {
            memcpy(tok->str_pool + off, strs[i], l);
        }
        tok->str_pool[off + l] = '\0';
        off += l + 1;
    }
    tok->str_off[n] = off;
    memset(tok->vocab.slots, 0xff, tok->vocab.cap * sizeof(int32_t));
    /* Model vocab first, then added tokens, so an added token wins a shared string. */
    for (size_t i = 0; i < n; i++) {
        if (strs[i] != NULL) {
            strmap_put(tok, (int32_t)i);
        }
    }
    for (size_t i = 0; i < tok->n_added; i++) {
        strmap_put(tok, tok->added[i].id);
    }
    xfree(strs);
    return HX_OK;
}

/* ---- loading: merges --------------------------------------------------------------------- */

static int load_merges(struct loader *L, const cJSON *model)
{
    struct eng_tok *tok = L->tok;
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (merges == NULL || cJSON_IsNull(merges)) {
        return HX_OK; // a BPE with no merges: every symbol stays a character
    }
    if (!cJSON_IsArray(merges)) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: model.merges: not an array", L->name);
    }
    size_t n = (size_t)cJSON_GetArraySize(merges);
    tok->merges.cap = pow2_at_least(2 * n + 2);
    tok->merges.slots = hx_malloc(tok->merges.cap * sizeof(*tok->merges.slots));
    if (!tok->merges.slots) {
        return hx_diag_set(L->diag, HX_ENOMEM, "%s: out of memory for %zu merges", L->name, n);
    }
    memset(tok->merges.slots, 0xff, tok->merges.cap * sizeof(*tok->merges.slots));
    struct strbuf sb;
    strbuf_init(&sb);
    size_t rank = 0;
    int rc = HX_OK;
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, merges)
    {
        const char *a = NULL;
        size_t a_len = 0;
        const char *b = NULL;
        size_t b_len = 0;
        if (cJSON_IsString(e)) {
            /* "a b": exactly one space (Hugging Face splits on ' ' and wants two parts). */
            const char *s = e->valuestring;
            const char *sp = strchr(s, ' ');
            if (sp != NULL && strchr(sp + 1, ' ') == NULL) {
                a = s;
                a_len = (size_t)(sp - s);
                b = sp + 1;
                b_len = strlen(b);
            }
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            a_len = strlen(a);
            b = cJSON_GetArrayItem(e, 1)->valuestring;
            b_len = strlen(b);
        }
        if (a == NULL) {
            rc = hx_diag_set(L->diag, HX_EPARSE,
                             "%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", L->name,
                             rank);
            break;
        }
        int32_t ia = eng_tok_strmap_get(tok, a, a_len);
        int32_t ib = eng_tok_strmap_get(tok, b, b_len);
        strbuf_reset(&sb);
        strbuf_add(&sb, a, a_len);
        strbuf_add(&sb, b, b_len);
        int32_t im = eng_tok_strmap_get(tok, sb.buf, sb.len);
        if (ia < 0 || ib < 0 || im < 0) {
            rc = hx_diag_set(L->diag, HX_EPARSE,
                             "%s: model.merges[%zu]: \"%.40s\" + \"%.40s\": token not in vocab",
                             L->name, rank, a, b);
            break;
        }
        merge_put(&tok->merges, ia, ib, (int32_t)rank, im);
        rank++;
    }
    strbuf_release(&sb);
    return rc;
}

/* ---- loading: normalizer, pre-tokenizer ------------------------------------------------- */

static int add_norm(struct loader *L, enum tok_norm_kind kind, const char *a, const char *b)
{
    struct eng_tok *tok = L->tok;
    if (a == NULL || (kind == TOK_NORM_REPLACE && b == NULL) || (a[0] == '\0' && kind == 2)) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: normalizer: bad Prepend/Replace", L->name);
    }
    tok->norm = xrealloc(tok->norm, (tok->n_norm + 1) * sizeof(*tok->norm));
    struct tok_norm *n = &tok->norm[tok->n_norm++];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->a = dup_str(a, &n->a_len); // "" for NFC / NFD
    if (b != NULL) {
        n->b = dup_str(b, &n->b_len);
    }
    return HX_OK;
}

static int load_normalizer(struct loader *L, const cJSON *nz, int depth)
{
    if (nz == NULL || cJSON_IsNull(nz)) {
        return HX_OK;
    }
    const char *type = jstr(nz, "type");
    if (type == NULL || depth > 4) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: normalizer: missing type", L->name);
    }
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e = NULL;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(nz, "normalizers"))
        {
            int rc = load_normalizer(L, e, depth + 1);
            if (rc) {
                return rc;
            }
        }
        return HX_OK;
    }
    if (strcmp(type, "Prepend") == 0) {
        return add_norm(L, TOK_NORM_PREPEND, jstr(nz, "prepend"), NULL);
    }
    if (strcmp(type, "Replace") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(nz, "pattern");
        if (jstr(pat, "String") == NULL) {
            return unsupported(L, "normalizer Replace pattern (only String)", NULL);
        }
        return add_norm(L, TOK_NORM_REPLACE, jstr(pat, "String"), jstr(nz, "content"));
    }
    if (strcmp(type, "NFC") == 0 || strcmp(type, "NFD") == 0) {
        return add_norm(L, type[2] == 'C' ? TOK_NORM_NFC : TOK_NORM_NFD, "", NULL);
    }
    return unsupported(L, "normalizer", type);
}

/*
 * After the normalizer is known: the normalized form of each normalized=true added token (what
 * it is matched as), and each set's first bytes.
 */
static int load_added_norms(struct loader *L)
{
    struct eng_tok *tok = L->tok;
    struct strbuf sb;
    strbuf_init(&sb);
    for (size_t i = 0; i < tok->n_added; i++) {
        struct tok_added *a = &tok->added[i];
        if (a->normalized) {
            if (eng_tok_normalize(tok, a->content, a->len, &sb) != HX_OK) {
                strbuf_release(&sb);
                return hx_diag_set(L->diag, HX_ENOMEM, "%s: out of memory", L->name);
            }
            a->norm = strbuf_detach(&sb, &a->norm_len);
        }
        const char *c = a->normalized ? a->norm : a->content;
        size_t len = a->normalized ? a->norm_len : a->len;
        if (len > 0) {
            tok->added_first[a->normalized ? 1 : 0][(unsigned char)c[0]] = 1;
        }
    }
    strbuf_release(&sb);
    return HX_OK;
}

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct pretok_seen {
    int bytelevel;
    int bytelevel_regex;
    int split;
};

static int load_metaspace(struct loader *L, const cJSON *pt)
{
    struct eng_tok *tok = L->tok;
    const char *repl = jstr(pt, "replacement");
    if (repl == NULL || strlen(repl) == 0 || strlen(repl) >= sizeof(tok->ms_repl)) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: pre_tokenizer Metaspace: bad replacement",
                           L->name);
    }
    tok->ms_enabled = 1;
    tok->ms_repl_len = strlen(repl);
    memcpy(tok->ms_repl, repl, tok->ms_repl_len + 1);
    const char *scheme = jstr(pt, "prepend_scheme");
    if (scheme == NULL) {
        tok->ms_prepend = jbool(pt, "add_prefix_space", 1) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
    } else if (strcmp(scheme, "always") == 0) {
        tok->ms_prepend = TOK_PREPEND_ALWAYS;
    } else if (strcmp(scheme, "first") == 0) {
        tok->ms_prepend = TOK_PREPEND_FIRST;
    } else if (strcmp(scheme, "never") == 0) {
        tok->ms_prepend = TOK_PREPEND_NEVER;
    } else {
        return unsupported(L, "Metaspace prepend_scheme", scheme);
    }
    tok->ms_split = jbool(pt, "split", 1);
    return HX_OK;
}

static int load_pretok(struct loader *L, const cJSON *pt, struct pretok_seen *seen, int depth)
{
    struct eng_tok *tok = L->tok;
    if (pt == NULL || cJSON_IsNull(pt)) {
        return HX_OK;
    }
    const char *type = jstr(pt, "type");
    if (type == NULL || depth > 4) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: pre_tokenizer: missing type", L->name);
    }
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e = NULL;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers"))
        {
            int rc = load_pretok(L, e, seen, depth + 1);
            if (rc) {
                return rc;
            }
        }
        return HX_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        seen->bytelevel = 1;
        seen->bytelevel_regex = jbool(pt, "use_regex", 1);
        tok->bl_add_prefix_space = jbool(pt, "add_prefix_space", 0);
        return HX_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *re = jstr(cJSON_GetObjectItemCaseSensitive(pt, "pattern"), "Regex");
        const char *behavior = jstr(pt, "behavior");
        if (re == NULL || behavior == NULL || strcmp(behavior, "Isolated") != 0 ||
            jbool(pt, "invert", 0) || seen->split || seen->bytelevel) {
            return unsupported(
                L, "pre_tokenizer Split (need one Regex, Isolated, no invert, before ByteLevel)",
                NULL);
        }
        if (strcmp(re, GPT2_PATTERN) == 0) {
            tok->split = TOK_SPLIT_GPT2;
        } else if (strcmp(re, LLAMA3_PATTERN) == 0) {
            tok->split = TOK_SPLIT_LLAMA3;
        } else if (strcmp(re, QWEN2_PATTERN) == 0) {
            tok->split = TOK_SPLIT_QWEN2;
        } else {
            return hx_diag_set(L->diag, HX_ENOTSUP,
                               "%s: pre_tokenizer Split: regex is not the GPT-2, Llama-3 or "
                               "Qwen-2 pattern: %.200s",
                               L->name, re);
        }
        seen->split = 1;
        return HX_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        return load_metaspace(L, pt);
    }
    return unsupported(L, "pre_tokenizer", type);
}

/* ---- loading: post-processor ------------------------------------------------------------- */

static int template_id(struct loader *L, const cJSON *pp, const char *name, int32_t *id)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(pp, "special_tokens"), name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids");
    if (cJSON_IsArray(ids)) {
        if (cJSON_GetArraySize(ids) != 1 || !jid(cJSON_GetArrayItem(ids, 0), id) ||
            *id >= L->tok->n_vocab) {
            return unsupported(L, "post_processor special token (need exactly one valid id)", NULL);
        }
        return HX_OK;
    }
    *id = eng_tok_strmap_get(L->tok, name, strlen(name));
    if (*id < 0) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: post_processor: unknown token \"%.64s\"",
                           L->name, name);
    }
    return HX_OK;
}

static int load_postproc(struct loader *L, const cJSON *pp, int depth)
{
    struct eng_tok *tok = L->tok;
    if (pp == NULL || cJSON_IsNull(pp)) {
        return HX_OK;
    }
    const char *type = jstr(pp, "type");
    if (type == NULL || depth > 4) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: post_processor: missing type", L->name);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        return HX_OK; // offsets only
    }
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e = NULL;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pp, "processors"))
        {
            int rc = load_postproc(L, e, depth + 1);
            if (rc) {
                return rc;
            }
        }
        return HX_OK;
    }
    if (strcmp(type, "TemplateProcessing") != 0) {
        return unsupported(L, "post_processor", type);
    }
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    if (!cJSON_IsArray(single)) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: post_processor.single: not an array", L->name);
    }
    int seen_seq = 0;
    tok->n_prefix = tok->n_suffix = 0;
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, single)
    {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(e, "Sequence") != NULL) {
            seen_seq = 1;
            continue;
        }
        const char *name = jstr(sp, "id");
        if (name == NULL) {
            return hx_diag_set(L->diag, HX_EPARSE, "%s: post_processor.single: bad item", L->name);
        }
        int32_t id = 0;
        int rc = template_id(L, pp, name, &id);
        if (rc) {
            return rc;
        }
        int32_t **arr = seen_seq ? &tok->suffix_ids : &tok->prefix_ids;
        size_t *cnt = seen_seq ? &tok->n_suffix : &tok->n_prefix;
        *arr = xrealloc(*arr, (*cnt + 1) * sizeof(int32_t));
        (*arr)[(*cnt)++] = id;
    }
    return HX_OK;
}

/* ---- loading: decoder and per-id bytes --------------------------------------------------- */

struct dec_cfg {
    int bytelevel;
    int byte_fallback;
    int metaspace;
    int metaspace_first; // the Metaspace decoder drops every replacement of the first token
    int fused;           // a Fuse (or ByteLevel, which fuses too) came: steps now see one string
    int none;            // no decoder: Hugging Face joins the tokens with spaces
    char repl[8];
    size_t repl_len;
    /* Replace steps (String pattern -> content). */
    const char *rep_from[4];
    const char *rep_to[4];
    size_t n_rep;
};

static int load_decoder(struct loader *L, const cJSON *d, struct dec_cfg *cfg, int depth)
{
    if (d == NULL || cJSON_IsNull(d)) {
        return HX_OK;
    }
    const char *type = jstr(d, "type");
    if (type == NULL || depth > 4) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: decoder: missing type", L->name);
    }
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e = NULL;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "decoders"))
        {
            int rc = load_decoder(L, e, cfg, depth + 1);
            if (rc) {
                return rc;
            }
        }
        return HX_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        cfg->bytelevel = 1;
        cfg->fused = 1;
        return HX_OK;
    }
    if (strcmp(type, "ByteFallback") == 0) {
        cfg->byte_fallback = 1;
        return HX_OK;
    }
    if (strcmp(type, "Fuse") == 0) {
        cfg->fused = 1; // we always fuse in the end
        return HX_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        const char *from = jstr(cJSON_GetObjectItemCaseSensitive(d, "pattern"), "String");
        const char *to = jstr(d, "content");
        if (from == NULL || from[0] == '\0' || to == NULL || cfg->n_rep == 4) {
            return unsupported(L, "decoder Replace (only non-empty String patterns)", NULL);
        }
        cfg->rep_from[cfg->n_rep] = from;
        cfg->rep_to[cfg->n_rep++] = to;
        return HX_OK;
    }
    if (strcmp(type, "Strip") == 0) {
        const char *content = jstr(d, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(d, "stop");
        if (content == NULL || strcmp(content, " ") != 0 || !cJSON_IsNumber(start) ||
            start->valuedouble < 0 || start->valuedouble > 64 ||
            (stop != NULL && (!cJSON_IsNumber(stop) || stop->valuedouble != 0))) {
            return unsupported(L, "decoder Strip (only leading spaces)", NULL);
        }
        if (!cfg->fused) {
            return unsupported(L, "decoder Strip before Fuse (it would strip every token)", NULL);
        }
        L->tok->strip_start = (size_t)start->valuedouble;
        return HX_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *repl = jstr(d, "replacement");
        if (repl == NULL || strlen(repl) == 0 || strlen(repl) >= sizeof(cfg->repl)) {
            return hx_diag_set(L->diag, HX_EPARSE, "%s: decoder Metaspace: bad replacement",
                               L->name);
        }
        if (cfg->fused) {
            return unsupported(L, "decoder Metaspace after Fuse", NULL);
        }
        cfg->metaspace = 1;
        cfg->repl_len = strlen(repl);
        memcpy(cfg->repl, repl, cfg->repl_len + 1);
        const char *scheme = jstr(d, "prepend_scheme");
        /* Hugging Face: unless "never", the first token's replacements are all dropped. */
        cfg->metaspace_first =
            scheme ? strcmp(scheme, "never") != 0 : jbool(d, "add_prefix_space", 1);
        return HX_OK;
    }
    return unsupported(L, "decoder", type);
}

/* Append s with every from replaced by to. */
static void replace_all(struct strbuf *out, const char *s, size_t n, const char *from, size_t fl,
                        const char *to, size_t tl)
{
    size_t i = 0;
    while (i < n) {
        if (i + fl <= n && memcmp(s + i, from, fl) == 0) {
            strbuf_add(out, to, tl);
            i += fl;
        } else {
            strbuf_addc(out, s[i]);
            i++;
        }
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/*
 * Bytes of one token under the decoder cfg, appended to out; first: as the first token of the
 * output (the Metaspace decoder then drops its replacement characters instead of spacing them).
 */
static void token_bytes(const struct dec_cfg *cfg, const int16_t *cp_byte, const char *s, size_t n,
                        int first, struct strbuf *out)
{
    if (cfg->bytelevel) {
        /* Every character must be in the byte alphabet; otherwise the token's own UTF-8. */
        size_t start = out->len;
        size_t i = 0;
        while (i < n) {
            uint32_t cp = 0;
            size_t l = eng_tok_utf8_next((const unsigned char *)s + i, n - i, &cp);
            if (cp >= 324 || cp_byte[cp] < 0) {
                out->len = start;
                out->buf[start] = '\0';
                strbuf_add(out, s, n);
                return;
            }
            strbuf_addc(out, (char)cp_byte[cp]);
            i += l;
        }
        return;
    }
    if (cfg->byte_fallback && n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' &&
        hexval(s[3]) >= 0 && hexval(s[4]) >= 0) {
        strbuf_addc(out, (char)(hexval(s[3]) * 16 + hexval(s[4])));
        return;
    }
    struct strbuf a;
    struct strbuf b;
    strbuf_init(&a);
    strbuf_init(&b);
    strbuf_add(&a, s, n);
    for (size_t k = 0; k < cfg->n_rep; k++) {
        strbuf_reset(&b);
        replace_all(&b, a.buf, a.len, cfg->rep_from[k], strlen(cfg->rep_from[k]), cfg->rep_to[k],
                    strlen(cfg->rep_to[k]));
        struct strbuf t = a;
        a = b;
        b = t;
    }
    if (cfg->metaspace) {
        strbuf_reset(&b);
        replace_all(&b, a.buf, a.len, cfg->repl, cfg->repl_len, " ", first ? 0 : 1);
        struct strbuf t = a;
        a = b;
        b = t;
    }
    strbuf_add(out, a.buf, a.len);
    strbuf_release(&a);
    strbuf_release(&b);
}

/*
 * What Hugging Face's decode puts through the decoder for id: a normalized=true added token's
 * normalized form where that differs from its content (AddedVocabulary::simple_id_to_token),
 * else the id's string.
 */
static const char *decode_str(const struct eng_tok *tok, const struct tok_added **by_id, int32_t id,
                              size_t *len)
{
    const struct tok_added *a = by_id[id];
    if (a != NULL && a->normalized && a->norm != NULL &&
        (a->norm_len != a->len || memcmp(a->norm, a->content, a->len) != 0)) {
        *len = a->norm_len;
        return a->norm;
    }
    return tok_str(tok, id, len);
}

/*
 * Per id: its decoded bytes (and, for a Metaspace decoder, its bytes as the first token), and
 * whether SKIP_SPECIAL drops it - Hugging Face drops a token whose decode string is the
 * content of a special added token.
 */
static int build_token_bytes(struct loader *L, const struct dec_cfg *cfg)
{
    struct eng_tok *tok = L->tok;
    int16_t cp_byte[324];
    for (size_t i = 0; i < 324; i++) {
        cp_byte[i] = -1;
    }
    for (unsigned b = 0; b < 256; b++) {
        cp_byte[byte_to_cp(b)] = (int16_t)b;
    }
    size_t n = (size_t)tok->n_vocab;
    const struct tok_added **by_id = hx_calloc(n, sizeof(*by_id));
    tok->bytes_off = hx_malloc((n + 1) * sizeof(size_t));
    tok->skip_dec = hx_calloc(n, 1);
    int firsts = cfg->metaspace_first || cfg->none;
    if (firsts) {
        tok->first_off = hx_malloc((n + 1) * sizeof(size_t));
    }
    if (!by_id || !tok->bytes_off || !tok->skip_dec || (firsts && !tok->first_off)) {
        xfree(by_id);
        return hx_diag_set(L->diag, HX_ENOMEM, "%s: out of memory", L->name);
    }
    for (size_t k = 0; k < tok->n_added; k++) {
        by_id[tok->added[k].id] = &tok->added[k];
    }
    struct strbuf pool;
    struct strbuf first;
    strbuf_init(&pool);
    strbuf_init(&first);
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *s = decode_str(tok, by_id, (int32_t)i, &len);
        tok->bytes_off[i] = pool.len;
        if (cfg->none && len > 0) {
            strbuf_addc(&pool, ' '); // the separator before every token but the first
        }
        token_bytes(cfg, cp_byte, s, len, 0, &pool);
        size_t bl = pool.len - tok->bytes_off[i];
        tok->max_token_bytes = bl > tok->max_token_bytes ? bl : tok->max_token_bytes;
        if (tok->first_off) {
            tok->first_off[i] = first.len;
            token_bytes(cfg, cp_byte, s, len, 1, &first);
        }
        int32_t j = len > 0 ? eng_tok_strmap_get(tok, s, len) : -1; // an added token wins
        tok->skip_dec[i] = (unsigned char)(j >= 0 && tok->is_special[j] ? 1 : 0);
    }
    tok->bytes_off[n] = pool.len;
    tok->bytes_pool = strbuf_detach(&pool, NULL);
    if (tok->first_off) {
        tok->first_off[n] = first.len;
        tok->first_pool = strbuf_detach(&first, NULL);
    }
    strbuf_release(&first);
    xfree(by_id);
    return HX_OK;
}

/* ---- loading: putting it together -------------------------------------------------------- */

static int32_t find_added(const struct eng_tok *tok, const char *const *names)
{
    for (size_t k = 0; names[k] != NULL; k++) {
        for (size_t i = 0; i < tok->n_added; i++) {
            if (strcmp(tok->added[i].content, names[k]) == 0) {
                return tok->added[i].id;
            }
        }
    }
    return -1;
}

static int load_root(struct loader *L)
{
    struct eng_tok *tok = L->tok;
    const cJSON *root = L->root;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        return hx_diag_set(L->diag, HX_EPARSE, "%s: model: missing or not an object", L->name);
    }
    const char *mtype = jstr(model, "type");
    if (mtype != NULL && strcmp(mtype, "BPE") != 0) {
        return unsupported(L, "model", mtype);
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0) {
        return unsupported(L, "model.dropout (BPE dropout)", NULL);
    }
    if (!jnull(model, "continuing_subword_prefix") &&
        strcmp(jstr(model, "continuing_subword_prefix") ? jstr(model, "continuing_subword_prefix")
                                                        : "x",
               "") != 0) {
        return unsupported(L, "model.continuing_subword_prefix", NULL);
    }
    if (!jnull(model, "end_of_word_suffix") &&
        strcmp(jstr(model, "end_of_word_suffix") ? jstr(model, "end_of_word_suffix") : "x", "") !=
            0) {
        return unsupported(L, "model.end_of_word_suffix", NULL);
    }
    int rc = load_vocab(L, model, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"));
    if (rc) {
        return rc;
    }
    rc = load_merges(L, model);
    if (rc) {
        return rc;
    }
    tok->ignore_merges = jbool(model, "ignore_merges", 0);
    tok->byte_fallback = jbool(model, "byte_fallback", 0);
    tok->fuse_unk = jbool(model, "fuse_unk", 0);
    tok->unk_id = -1;
    const char *unk = jstr(model, "unk_token");
    if (unk != NULL) {
        tok->unk_id = eng_tok_strmap_get(tok, unk, strlen(unk));
        if (tok->unk_id < 0) {
            return hx_diag_set(L->diag, HX_EPARSE, "%s: model.unk_token \"%.64s\" not in vocab",
                               L->name, unk);
        }
    }
    for (unsigned b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        tok->fallback_id[b] = eng_tok_strmap_get(tok, name, 6);
        char enc[4];
        size_t l = utf8_put(enc, byte_to_cp(b));
        tok->byte_id[b] = eng_tok_strmap_get(tok, enc, l);
    }

    rc = load_normalizer(L, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0);
    if (rc == HX_OK) {
        rc = load_added_norms(L);
    }
    if (rc) {
        return rc;
    }
    struct pretok_seen seen = {0};
    rc = load_pretok(L, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &seen, 0);
    if (rc) {
        return rc;
    }
    if (seen.bytelevel) {
        tok->model = TOK_MODEL_BYTELEVEL;
        if (seen.bytelevel_regex && seen.split) {
            return unsupported(L, "pre_tokenizer (Split followed by ByteLevel use_regex=true)",
                               NULL);
        }
        if (seen.bytelevel_regex) {
            tok->split = TOK_SPLIT_GPT2;
        }
        tok->bl_split_first = seen.split;
        if (tok->ms_enabled) {
            return unsupported(L, "pre_tokenizer Metaspace together with ByteLevel", NULL);
        }
    } else {
        tok->model = TOK_MODEL_SPM;
        if (seen.split) {
            return unsupported(L, "pre_tokenizer Split without ByteLevel", NULL);
        }
    }

    rc = load_postproc(L, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), 0);
    if (rc) {
        return rc;
    }
    struct dec_cfg dec = {0};
    dec.none = jnull(root, "decoder");
    rc = load_decoder(L, cJSON_GetObjectItemCaseSensitive(root, "decoder"), &dec, 0);
    if (rc) {
        return rc;
    }
    if (dec.bytelevel != (tok->model == TOK_MODEL_BYTELEVEL)) {
        return unsupported(L, "decoder (ByteLevel decoder and pre_tokenizer must go together)",
                           NULL);
    }
    rc = build_token_bytes(L, &dec);
    if (rc) {
        return rc;
    }

    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<bos>", NULL};
    static const char *const eos_names[] = {"<|end_of_text|>", "</s>", "<|endoftext|>", "<eos>",
                                            NULL};
    tok->bos_id = tok->n_prefix > 0 ? tok->prefix_ids[0] : find_added(tok, bos_names);
    tok->eos_id = find_added(tok, eos_names);
    return HX_OK;
}

int eng_tok_load_mem(const char *json, size_t len, const char *name, struct eng_tok **out,
                     struct hx_diag *diag)
{
    *out = NULL;
    struct loader L = {.name = name ? name : "tokenizer.json", .diag = diag};
    if (json == NULL) {
        return hx_diag_set(diag, HX_EINVAL, "%s: no JSON text", L.name);
    }
    L.root = cJSON_ParseWithLength(json, len);
    if (L.root == NULL) {
        return hx_diag_set(diag, HX_EPARSE, "%s: invalid JSON", L.name);
    }
    if (!cJSON_IsObject(L.root)) {
        cJSON_Delete(L.root);
        return hx_diag_set(diag, HX_EPARSE, "%s: top level is not an object", L.name);
    }
    L.tok = xcalloc(1, sizeof(*L.tok));
    int rc = load_root(&L);
    cJSON_Delete(L.root);
    if (rc) {
        eng_tok_free(L.tok);
        return rc;
    }
    *out = L.tok;
    return HX_OK;
}

int eng_tok_load(const char *path, struct eng_tok **out, struct hx_diag *diag)
{
    *out = NULL;
    struct strbuf sb;
    strbuf_init(&sb);
    if (strbuf_read_file(&sb, path) != HX_OK) {
        strbuf_release(&sb);
        return hx_diag_set(diag, HX_EIO, "%s: cannot read tokenizer", path);
    }
    int rc = eng_tok_load_mem(sb.buf, sb.len, path, out, diag);
    strbuf_release(&sb);
    return rc;
}

void eng_tok_free(struct eng_tok *tok)
{
    if (tok == NULL) {
        return;
    }
    xfree(tok->str_pool);
    xfree(tok->str_off);
    xfree(tok->bytes_pool);
    xfree(tok->bytes_off);
    xfree(tok->first_pool);
    xfree(tok->first_off);
    xfree(tok->skip_dec);
    xfree(tok->vocab.slots);
    xfree(tok->merges.slots);
    for (size_t i = 0; i < tok->n_added; i++) {
        xfree(tok->added[i].content);
        xfree(tok->added[i].norm);
    }
    xfree(tok->added);
    xfree(tok->is_special);
    for (size_t i = 0; i < tok->n_norm; i++) {
        xfree(tok->norm[i].a);
        xfree(tok->norm[i].b);
    }
    xfree(tok->norm);
    xfree(tok->prefix_ids);
    xfree(tok->suffix_ids);
    xfree(tok);
}

/* ---- lookups ----------------------------------------------------------------------------- */

int32_t eng_tok_vocab_size(const struct eng_tok *tok)
{
    return tok->n_vocab;
}

int32_t eng_tok_bos_id(const struct eng_tok *tok)
{
    return tok->bos_id;
}

int32_t eng_tok_eos_id(const struct eng_tok *tok)
{
    return tok->eos_id;
}

int eng_tok_is_special(const struct eng_tok *tok, int32_t id)
{
    return id >= 0 && id < tok->n_vocab && tok->is_special[id];
}

int32_t eng_tok_token_to_id(const struct eng_tok *tok, const char *token, size_t len)
{
    if (token == NULL) {
        return -1;
    }
    return eng_tok_strmap_get(tok, token, len);
}

const char *eng_tok_id_to_token(const struct eng_tok *tok, int32_t id, size_t *len_out)
{
    if (id < 0 || id >= tok->n_vocab) {
        return NULL;
    }
    size_t len = 0;
    const char *s = tok_str(tok, id, &len);
    if (len_out) {
        *len_out = len;
    }
    return s;
}

const char *eng_tok_token_bytes(const struct eng_tok *tok, int32_t id, size_t *len_out)
{
    if (id < 0 || id >= tok->n_vocab) {
        return NULL;
    }
    if (len_out) {
        *len_out = tok->bytes_off[id + 1] - tok->bytes_off[id];
    }
    return tok->bytes_pool + tok->bytes_off[id];
}

size_t eng_tok_max_token_bytes(const struct eng_tok *tok)
{
    return tok->max_token_bytes;
}

/* ---- decoding ---------------------------------------------------------------------------- */

/*
 * The bytes id adds to a decode's output; *first: no token has been output yet (cleared by any
 * id with a string: Hugging Face's decoders never see the ids that have none).
 */
static const unsigned char *out_bytes(const struct eng_tok *tok, int32_t id, int *first,
                                      size_t *len)
{
    int had_first = *first;
    if (tok->str_off[id + 1] - tok->str_off[id] > 1) {
        *first = 0;
    }
    if (had_first && tok->first_off != NULL) {
        *len = tok->first_off[id + 1] - tok->first_off[id];
        return (const unsigned char *)tok->first_pool + tok->first_off[id];
    }
    return (const unsigned char *)eng_tok_token_bytes(tok, id, len);
}

int eng_tok_decode(const struct eng_tok *tok, const int32_t *ids, size_t n, unsigned flags,
                   char **text_out, size_t *len_out, struct hx_diag *diag)
{
    *text_out = NULL;
    *len_out = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab) {
            return hx_diag_set(diag, HX_ERANGE, "decode: ids[%zu] = %ld out of range [0, %ld)", i,
                               (long)ids[i], (long)tok->n_vocab);
        }
        total += tok->bytes_off[ids[i] + 1] - tok->bytes_off[ids[i]];
    }
    unsigned char *raw = hx_malloc(total + 1);
    char *text = hx_malloc(3 * total + 1);
    if (!raw || !text) {
        xfree(raw);
        xfree(text);
        return hx_diag_set(diag, HX_ENOMEM, "decode: out of memory for %zu bytes", total);
    }
    size_t r = 0;
    size_t stripped = 0;
    int at_start = 1;
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if ((flags & ENG_TOK_SKIP_SPECIAL) && tok->skip_dec[ids[i]]) {
            continue;
        }
        size_t l = 0;
        const unsigned char *b = out_bytes(tok, ids[i], &first, &l);
        for (size_t k = 0; k < l; k++) {
            if (at_start && b[k] == ' ' && stripped < tok->strip_start) {
                stripped++;
                continue;
            }
            at_start = 0;
            raw[r++] = b[k];
        }
    }
    size_t used = 0;
    size_t o = utf8_lossy(raw, r, 1, text, &used);
    text[o] = '\0';
    xfree(raw);
    *text_out = text;
    *len_out = o;
    return HX_OK;
}

/* ---- streaming --------------------------------------------------------------------------- */

struct eng_tok_stream {
    const struct eng_tok *tok;
    unsigned flags;
    int at_start; // no byte output yet (Strip)
    int first;    // no token output yet (Metaspace)
    size_t stripped;
    unsigned char pending[4]; // an incomplete character (at most 3 bytes)
    size_t n_pending;
    unsigned char *raw; // pending + one token
    char *out;          // 3x raw
};

int eng_tok_stream_new(const struct eng_tok *tok, unsigned flags, struct eng_tok_stream **out,
                       struct hx_diag *diag)
{
    *out = NULL;
    struct eng_tok_stream *s = hx_calloc(1, sizeof(*s));
    size_t cap = tok->max_token_bytes + 4;
    if (s) {
        s->raw = hx_malloc(cap);
        s->out = hx_malloc(3 * cap + 1);
    }
    if (!s || !s->raw || !s->out) {
        eng_tok_stream_free(s);
        return hx_diag_set(diag, HX_ENOMEM, "tokenizer stream: out of memory");
    }
    s->tok = tok;
    s->flags = flags;
    eng_tok_stream_reset(s);
    *out = s;
    return HX_OK;
}

void eng_tok_stream_free(struct eng_tok_stream *s)
{
    if (s == NULL) {
        return;
    }
    xfree(s->raw);
    xfree(s->out);
    xfree(s);
}

void eng_tok_stream_reset(struct eng_tok_stream *s)
{
    s->at_start = 1;
    s->first = 1;
    s->stripped = 0;
    s->n_pending = 0;
}

int eng_tok_stream_feed(struct eng_tok_stream *s, int32_t id, const char **text, size_t *len)
{
    const struct eng_tok *tok = s->tok;
    *text = s->out;
    *len = 0;
    s->out[0] = '\0';
    if (id < 0 || id >= tok->n_vocab) {
        return HX_ERANGE;
    }
    if ((s->flags & ENG_TOK_SKIP_SPECIAL) && tok->skip_dec[id]) {
        return HX_OK;
    }
    memcpy(s->raw, s->pending, s->n_pending);
    size_t r = s->n_pending;
    size_t l = 0;
    const unsigned char *b = out_bytes(tok, id, &s->first, &l);
    for (size_t k = 0; k < l; k++) {
        if (s->at_start && b[k] == ' ' && s->stripped < tok->strip_start) {
            s->stripped++;
            continue;
        }
        s->at_start = 0;
        s->raw[r++] = b[k];
    }
    size_t used = 0;
    size_t o = utf8_lossy(s->raw, r, 0, s->out, &used);
    s->n_pending = r - used;
    memcpy(s->pending, s->raw + used, s->n_pending);
    s->out[o] = '\0';
    *len = o;
    return HX_OK;
}

void eng_tok_stream_flush(struct eng_tok_stream *s, const char **text, size_t *len)
{
    size_t used = 0;
    size_t o = utf8_lossy(s->pending, s->n_pending, 1, s->out, &used);
    s->out[o] = '\0';
    *text = s->out;
    *len = o;
    eng_tok_stream_reset(s);
}
