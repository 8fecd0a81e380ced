/*
 * json_read.c - the JSON reader (RFC 8259): a recursive-descent parser, bounded in depth,
 * values, string length and input size, into a tree held in one arena. See json_read.h.
 */
#include "json/json_read.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

#define DEFAULT_MAX_DEPTH  32
#define DEFAULT_MAX_SIZE   (16u << 20)
#define DEFAULT_MAX_VALUES 1000000
#define DEFAULT_MAX_STRING (16u << 20)
#define ARENA_BLOCK        65536

/* A block of the arena; allocations are bumped from data. */
typedef struct arena_block {
    struct arena_block *next; /* the previous block */
    size_t used, cap;         /* octets used and available in data */
    max_align_t align[];      /* the memory (aligned for any value) */
} arena_block;

struct pg_json_doc {
    arena_block *blocks; /* the newest block first */
    size_t first_hint;   /* size for the first block: about what the input needs */
    pg_json_value *root; /* the document's value */
};

/* The parser's state over one input. */
typedef struct parser {
    const char *p, *end, *start; /* input: cursor, end, beginning */
    pg_json_doc *doc;            /* where values go */
    pg_json_limits lim;          /* bounds, defaults applied */
    size_t depth, values;        /* current nesting, values so far */
    pigeon_err err;              /* the first error */
    pg_json_error *out;          /* where it is reported (may be NULL) */
} parser;

static pg_json_value *parse_value(parser *ps);

static void *arena_alloc(pg_json_doc *doc, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    arena_block *b = doc->blocks;
    if (b == NULL || b->cap - b->used < n) {
        /* The first block is sized for the document (a small request need not fault in
         * a whole block); later ones are full blocks. */
        size_t want = b == NULL && doc->first_hint < ARENA_BLOCK ? doc->first_hint : ARENA_BLOCK;
        size_t cap = n > want ? n : want;
        b = malloc(sizeof *b + cap);
        if (b == NULL)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = doc->blocks;
        doc->blocks = b;
    }
    void *r = (char *)b->align + b->used;
    b->used += n;
    return r;
}

static void *fail(parser *ps, pigeon_err err, const char *reason)
{
    if (ps->err == PIGEON_OK) {
        ps->err = err;
        if (ps->out != NULL) {
            ps->out->offset = (size_t)(ps->p - ps->start);
            snprintf(ps->out->reason, sizeof ps->out->reason, "%s", reason);
        }
    }
    return NULL;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static pg_json_value *new_value(parser *ps, pg_json_type type)
{
    if (++ps->values > ps->lim.max_values)
        return fail(ps, PIGEON_ERR_TOO_LARGE, "too many values");
    pg_json_value *v = arena_alloc(ps->doc, sizeof *v);
    if (v == NULL)
        return fail(ps, PIGEON_ERR_NOMEM, "out of memory");
    memset(v, 0, sizeof *v);
    v->type = type;
    return v;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A \uXXXX escape (and its low surrogate when it is a high one) at ps->p (after "\u"). */
static int unicode_escape(parser *ps, unsigned *cp)
{
    if (ps->end - ps->p < 4 || !hex4(ps->p, cp))
        return fail(ps, PIGEON_ERR_PROTOCOL, "bad \\u escape"), 0;
    ps->p += 4;
    if (*cp >= 0xdc00 && *cp <= 0xdfff)
        return fail(ps, PIGEON_ERR_CHARSET, "lone low surrogate in \\u escape"), 0;
    if (*cp < 0xd800 || *cp > 0xdbff)
        return 1;
    unsigned lo;
    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' || !hex4(ps->p + 2, &lo) ||
        lo < 0xdc00 || lo > 0xdfff)
        return fail(ps, PIGEON_ERR_CHARSET, "lone high surrogate in \\u escape"), 0;
    ps->p += 6;
    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    return 1;
}

/* A string at ps->p (on the opening quote): decoded into the arena. */
/* The closing quote of the string starting at s: the first '"' not escaped, that is not
 * after an odd run of backslashes ("\\" is one escaped backslash). memchr finds it in
 * the bulk of the text at memory speed instead of a branch per byte. NULL: none. */
static const char *string_end(const char *s, const char *end)
{
    for (const char *q = s; q < end; q++) {
        q = memchr(q, '"', (size_t)(end - q));
        if (q == NULL)
            return NULL;
        size_t bs = 0;
        while (q - bs > s && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (bs % 2 == 0)
            return q;
    }
    return NULL;
}

/* One escape after the backslash at ps->p (which it moves past), written at *o. */
static int string_escape(parser *ps, char **o)
{
    unsigned cp;
    ps->p++;
    char e = *ps->p++;
    static const char plain[] = "\"\\/bfnrt", value[] = "\"\\/\b\f\n\r\t";
    const char *k = e != '\0' ? strchr(plain, e) : NULL;
    if (k != NULL) {
        *(*o)++ = value[k - plain];
        return 1;
    }
    if (e != 'u') {
        ps->p--;
        return fail(ps, PIGEON_ERR_PROTOCOL, "bad escape in string"), 0;
    }
    if (!unicode_escape(ps, &cp))
        return 0;
    *o += put_utf8(*o, cp);
    return 1;
}

static char *parse_string(parser *ps, size_t *len)
{
    const char *s = ++ps->p;
    /* The decoded form is never longer than the raw one. */
    const char *q = string_end(s, ps->end);
    if (q == NULL)
        return fail(ps, PIGEON_ERR_PROTOCOL, "unterminated string");
    if ((size_t)(q - s) > ps->lim.max_string)
        return fail(ps, PIGEON_ERR_TOO_LARGE, "string too long");
    char *out = arena_alloc(ps->doc, (size_t)(q - s) + 1), *o = out;
    if (out == NULL)
        return fail(ps, PIGEON_ERR_NOMEM, "out of memory");
    const char *p = s;
    while (p < q) {
        /* Printable ASCII, the bulk of most strings: copied as is, a run at a time. */
        const char *run = p;
        while (p < q && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80 && *p != '\\')
            p++;
        memcpy(o, run, (size_t)(p - run));
        o += p - run;
        if (p == q)
            break;
        unsigned char c = (unsigned char)*p;
        ps->p = p;
        if (c < 0x20)
            return fail(ps, PIGEON_ERR_PROTOCOL, "unescaped control character in string");
        if (c == '\\') {
            if (!string_escape(ps, &o))
                return NULL;
            p = ps->p;
            continue;
        }
        size_t n = pg_utf8_char_len(c);
        uint32_t cp;
        if (n == 0 || (size_t)(ps->end - p) < n ||
            pg_utf8_decode((const unsigned char *)p, n, &cp) != n)
            return fail(ps, PIGEON_ERR_CHARSET, "string is not valid UTF-8");
        memcpy(o, p, n);
        o += n;
        p += n;
    }
    ps->p = q + 1;
    *o = '\0';
    *len = (size_t)(o - out);
    return out;
}

/* RFC 8259 6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static pg_json_value *parse_number(parser *ps)
{
    const char *s = ps->p, *p = s, *e = ps->end;
    if (p < e && *p == '-')
        p++;
    if (p < e && *p == '0')
        p++;
    else if (p < e && *p >= '1' && *p <= '9')
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    else
        return fail(ps, PIGEON_ERR_PROTOCOL, "invalid value");
    if (p < e && *p == '.') {
        if (++p >= e || *p < '0' || *p > '9')
            return fail(ps, PIGEON_ERR_PROTOCOL, "bad number");
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9')
            return fail(ps, PIGEON_ERR_PROTOCOL, "bad number");
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if ((size_t)(p - s) > 64)
        return fail(ps, PIGEON_ERR_TOO_LARGE, "number too long");
    pg_json_value *v = new_value(ps, PG_JSON_NUMBER);
    char *text = v != NULL ? arena_alloc(ps->doc, (size_t)(p - s) + 1) : NULL;
    if (text == NULL)
        return v == NULL ? NULL : fail(ps, PIGEON_ERR_NOMEM, "out of memory");
    memcpy(text, s, (size_t)(p - s));
    text[p - s] = '\0';
    v->str = text;
    v->len = (size_t)(p - s);
    v->num = strtod(text, NULL);
    ps->p = p;
    return v;
}

static pg_json_value *parse_literal(parser *ps, const char *word, pg_json_type type)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, PIGEON_ERR_PROTOCOL, "invalid value");
    ps->p += n;
    return new_value(ps, type);
}

static int key_seen(const pg_json_value *obj, const char *key, size_t len)
{
    for (const pg_json_value *m = obj->head; m != NULL; m = m->next) {
        if (m->key_len == len && memcmp(m->key, key, len) == 0)
            return 1;
    }
    return 0;
}

/* An array or object at ps->p (on '[' or '{'). Members are checked for duplicate keys,
 * which is quadratic in the member count: objects we read have a handful of members, and
 * max_values bounds the rest. */
static pg_json_value *parse_container(parser *ps, int is_object)
{
    if (++ps->depth > ps->lim.max_depth)
        return fail(ps, PIGEON_ERR_TOO_LARGE, "nesting too deep");
    pg_json_value *v = new_value(ps, is_object ? PG_JSON_OBJECT : PG_JSON_ARRAY), *last = NULL;
    if (v == NULL)
        return NULL;
    char close = is_object ? '}' : ']';
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return v;
    }
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        skip_ws(ps);
        if (is_object) {
            if (ps->p >= ps->end || *ps->p != '"')
                return fail(ps, PIGEON_ERR_PROTOCOL, "expected a member name");
            const char *at = ps->p;
            if ((key = parse_string(ps, &key_len)) == NULL)
                return NULL;
            if (key_seen(v, key, key_len)) {
                ps->p = at;
                return fail(ps, PIGEON_ERR_PROTOCOL, "duplicate member name");
            }
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return fail(ps, PIGEON_ERR_PROTOCOL, "expected ':'");
            ps->p++;
        }
        pg_json_value *item = parse_value(ps);
        if (item == NULL)
            return NULL;
        item->key = key;
        item->key_len = key_len;
        if (last == NULL)
            v->head = item;
        else
            last->next = item;
        last = item;
        v->count++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            ps->depth--;
            return v;
        }
        return fail(ps, PIGEON_ERR_PROTOCOL,
                    is_object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static pg_json_value *parse_value(parser *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, PIGEON_ERR_PROTOCOL, "unexpected end of input");
    switch (*ps->p) {
    case '{':
        return parse_container(ps, 1);
    case '[':
        return parse_container(ps, 0);
    case 't':
        return parse_literal(ps, "true", PG_JSON_TRUE);
    case 'f':
        return parse_literal(ps, "false", PG_JSON_FALSE);
    case 'n':
        return parse_literal(ps, "null", PG_JSON_NULL);
    case '"': {
        pg_json_value *v = new_value(ps, PG_JSON_STRING);
        if (v == NULL)
            return NULL;
        v->str = parse_string(ps, &v->len);
        return v->str != NULL ? v : NULL;
    }
    default:
        return parse_number(ps);
    }
}

pigeon_err pg_json_parse(const char *buf, size_t len, const pg_json_limits *limits,
                         pg_json_doc **out, pg_json_error *err)
{
    if (out == NULL || (buf == NULL && len > 0))
        return PIGEON_ERR_INVALID;
    *out = NULL;
    parser ps = {.p = buf, .end = buf + len, .start = buf, .out = err};
    ps.lim.max_depth = limits && limits->max_depth ? limits->max_depth : DEFAULT_MAX_DEPTH;
    ps.lim.max_size = limits && limits->max_size ? limits->max_size : DEFAULT_MAX_SIZE;
    ps.lim.max_values = limits && limits->max_values ? limits->max_values : DEFAULT_MAX_VALUES;
    ps.lim.max_string = limits && limits->max_string ? limits->max_string : DEFAULT_MAX_STRING;
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (len > ps.lim.max_size) {
        fail(&ps, PIGEON_ERR_TOO_LARGE, "document too large");
        return ps.err;
    }
    ps.doc = calloc(1, sizeof *ps.doc);
    if (ps.doc == NULL)
        return PIGEON_ERR_NOMEM;
    /* Decoded strings are never longer than the input; values take a node each. */
    ps.doc->first_hint = len + len / 2 + 1024;
    ps.doc->root = parse_value(&ps);
    if (ps.doc->root != NULL) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            fail(&ps, PIGEON_ERR_PROTOCOL, "unexpected data after the value");
    }
    if (ps.err != PIGEON_OK) {
        pg_json_free(ps.doc);
        return ps.err;
    }
    *out = ps.doc;
    return PIGEON_OK;
}

const pg_json_value *pg_json_root(const pg_json_doc *doc)
{
    return doc != NULL ? doc->root : NULL;
}

void pg_json_free(pg_json_doc *doc)
{
    if (doc == NULL)
        return;
    while (doc->blocks != NULL) {
        arena_block *b = doc->blocks;
        doc->blocks = b->next;
        free(b);
    }
    free(doc);
}

const pg_json_value *pg_json_get(const pg_json_value *obj, const char *key)
{
    if (obj == NULL || obj->type != PG_JSON_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (const pg_json_value *m = obj->head; m != NULL; m = m->next) {
        if (m->key_len == n && memcmp(m->key, key, n) == 0)
            return m;
    }
    return NULL;
}

char *pg_json_pointer_escape(const char *segment, char *out, size_t size)
{
    size_t o = 0;
    for (const char *s = segment; *s != '\0' && o + 3 < size; s++) {
        if (*s == '~' || *s == '/') {
            out[o++] = '~';
            out[o++] = *s == '~' ? '0' : '1';
        } else {
            out[o++] = *s;
        }
    }
    if (size > 0)
        out[o < size ? o : size - 1] = '\0';
    return out;
}
