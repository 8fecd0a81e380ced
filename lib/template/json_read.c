/*
 * json_read.c - a strict JSON reader (RFC 8259) into a pigeon_vars tree, for --vars
 * files, JSON Lines merge rows and reports read back by --resume.
 *
 * Strict where the RFC is: the grammar of section 2-7 exactly (no comments, trailing
 * commas, single quotes, leading zeros, NaN or Infinity), strings valid UTF-8 (section 8.1)
 * with surrogate escapes in pairs, control characters escaped. Bounded: the document's
 * size, the nesting depth (the recursion is bounded by it) and the number of values.
 *
 * Numbers keep their JSON spelling when integral; others are written back in the
 * shortest form that reads as the same double ("1.210" -> "1.21"), as a JavaScript
 * Mustache would show them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/vars.h"
#include "util/buf.h"
#include "util/utf8.h"

/* The reader's state. */
typedef struct reader {
    const char *s;          /* the document */
    size_t len;             /* its length */
    size_t pos;             /* the next byte */
    unsigned depth;         /* current nesting */
    size_t items;           /* values read so far */
    pigeon_json_limits lim; /* limits in force */
    pigeon_json_error *err; /* where to report (may be NULL) */
    pigeon_err code;        /* the first error */
    pg_buf scratch;         /* string being unescaped */
} reader;

static pigeon_vars *value(reader *r);

static pigeon_vars *fail(reader *r, pigeon_err code, const char *msg)
{
    if (r->code == PIGEON_OK) {
        r->code = code;
        if (r->err != NULL) {
            unsigned line = 1;
            size_t at = r->pos < r->len ? r->pos : r->len;
            for (size_t i = 0; i < at; i++)
                line += r->s[i] == '\n';
            r->err->offset = at;
            r->err->line = line;
            snprintf(r->err->message, sizeof r->err->message, "%s", msg);
        }
    }
    return NULL;
}

static void skip_ws(reader *r)
{
    while (r->pos < r->len) {
        char c = r->s[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        r->pos++;
    }
}

static int literal(reader *r, const char *word)
{
    size_t n = strlen(word);
    if (r->len - r->pos < n || memcmp(r->s + r->pos, word, n) != 0)
        return 0;
    r->pos += n;
    return 1;
}

static int hex4(reader *r, unsigned *out)
{
    unsigned v = 0;
    if (r->len - r->pos < 4)
        return 0;
    for (int i = 0; i < 4; i++) {
        char c = r->s[r->pos++];
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

static void put_utf8(pg_buf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    pg_buf_append(b, u, n);
}

/* \uXXXX, and its low surrogate when it is a high one (RFC 8259 7). */
static int unicode_escape(reader *r)
{
    unsigned cp, lo;
    if (!hex4(r, &cp))
        return 0;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return 0;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (!literal(r, "\\u") || !hex4(r, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return 0;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    put_utf8(&r->scratch, cp);
    return 1;
}

static int escape(reader *r)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (r->pos >= r->len)
        return 0;
    char c = r->s[r->pos++];
    if (c == 'u')
        return unicode_escape(r);
    const char *p = strchr(from, c);
    if (p == NULL || c == '\0')
        return 0;
    pg_buf_putc(&r->scratch, to[p - from]);
    return 1;
}

/* A string after its opening quote, unescaped into r->scratch. */
static int string_body(reader *r)
{
    pg_buf_reset(&r->scratch);
    while (r->pos < r->len) {
        unsigned char c = (unsigned char)r->s[r->pos];
        if (c == '"') {
            r->pos++;
            return r->scratch.err == PIGEON_OK;
        }
        if (c == '\\') {
            r->pos++;
            if (!escape(r))
                return fail(r, PIGEON_ERR_INVALID, "invalid escape in a string"), 0;
            continue;
        }
        if (c < 0x20)
            return fail(r, PIGEON_ERR_INVALID, "control character in a string"), 0;
        size_t n =
            c < 0x80 ? 1
                     : pg_utf8_decode((const unsigned char *)r->s + r->pos, r->len - r->pos, NULL);
        if (n == 0)
            return fail(r, PIGEON_ERR_CHARSET, "invalid UTF-8 in a string"), 0;
        pg_buf_append(&r->scratch, r->s + r->pos, n);
        r->pos += n;
    }
    return fail(r, PIGEON_ERR_INVALID, "unterminated string"), 0;
}

static size_t digits(reader *r)
{
    size_t start = r->pos;
    while (r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9')
        r->pos++;
    return r->pos - start;
}

/* RFC 8259 6: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static pigeon_vars *number(reader *r)
{
    size_t start = r->pos;
    int integral = 1;
    if (r->s[r->pos] == '-')
        r->pos++;
    if (r->pos < r->len && r->s[r->pos] == '0')
        r->pos++;
    else if (digits(r) == 0)
        return fail(r, PIGEON_ERR_INVALID, "invalid number");
    if (r->pos < r->len && r->s[r->pos] == '.') {
        r->pos++;
        integral = 0;
        if (digits(r) == 0)
            return fail(r, PIGEON_ERR_INVALID, "invalid number");
    }
    if (r->pos < r->len && (r->s[r->pos] == 'e' || r->s[r->pos] == 'E')) {
        r->pos++;
        integral = 0;
        if (r->pos < r->len && (r->s[r->pos] == '+' || r->s[r->pos] == '-'))
            r->pos++;
        if (digits(r) == 0)
            return fail(r, PIGEON_ERR_INVALID, "invalid number");
    }
    size_t n = r->pos - start;
    if (integral || n > 64)
        return pg_vars_new_text(PIGEON_VAR_NUMBER, r->s + start, n);
    char text[72], shortest[40];
    memcpy(text, r->s + start, n);
    text[n] = '\0';
    double d = strtod(text, NULL);
    /* Integral values print as integers (-0.5e2 is -50), as JavaScript does below 1e21. */
    if (d == (double)(long long)d && d > -1e18 && d < 1e18) {
        snprintf(shortest, sizeof shortest, "%lld", (long long)d);
        return pg_vars_new_text(PIGEON_VAR_NUMBER, shortest, strlen(shortest));
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(shortest, sizeof shortest, "%.*g", prec, d);
        if (strtod(shortest, NULL) == d)
            break;
    }
    return pg_vars_new_text(PIGEON_VAR_NUMBER, shortest, strlen(shortest));
}

static pigeon_vars *nomem(reader *r, pigeon_vars *v)
{
    pigeon_vars_free(v);
    return fail(r, PIGEON_ERR_NOMEM, "out of memory");
}

/* The members of an object or items of a list, after the opening bracket. */
static pigeon_vars *container(reader *r, int object)
{
    char end = object ? '}' : ']';
    pigeon_vars *v = pg_vars_new(object ? PIGEON_VAR_OBJECT : PIGEON_VAR_LIST);
    if (v == NULL)
        return nomem(r, NULL);
    if (++r->depth > r->lim.depth) {
        pigeon_vars_free(v);
        return fail(r, PIGEON_ERR_TOO_LARGE, "nested too deeply");
    }
    skip_ws(r);
    if (r->pos < r->len && r->s[r->pos] == end) {
        r->pos++;
        r->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        size_t key_len = 0;
        skip_ws(r);
        if (object) {
            if (r->pos >= r->len || r->s[r->pos] != '"') {
                pigeon_vars_free(v);
                return fail(r, PIGEON_ERR_INVALID, "expected a member name");
            }
            r->pos++;
            if (!string_body(r) || (key = pg_buf_detach(&r->scratch, &key_len)) == NULL) {
                pigeon_vars_free(v);
                return r->code ? NULL : nomem(r, NULL);
            }
            skip_ws(r);
            if (r->pos >= r->len || r->s[r->pos] != ':') {
                free(key);
                pigeon_vars_free(v);
                return fail(r, PIGEON_ERR_INVALID, "expected ':'");
            }
            r->pos++;
        }
        pigeon_vars *item = value(r);
        if (item == NULL || pg_vars_add(v, key, key_len, item) != PIGEON_OK) {
            free(key);
            return item == NULL ? (pigeon_vars_free(v), NULL) : nomem(r, v);
        }
        free(key);
        skip_ws(r);
        if (r->pos < r->len && r->s[r->pos] == ',') {
            r->pos++;
            continue;
        }
        if (r->pos < r->len && r->s[r->pos] == end) {
            r->pos++;
            r->depth--;
            return v;
        }
        pigeon_vars_free(v);
        return fail(r, PIGEON_ERR_INVALID, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static pigeon_vars *value(reader *r)
{
    skip_ws(r);
    if (r->pos >= r->len)
        return fail(r, PIGEON_ERR_INVALID, "unexpected end of input");
    if (++r->items > r->lim.max_items)
        return fail(r, PIGEON_ERR_TOO_LARGE, "too many values");
    char c = r->s[r->pos];
    pigeon_vars *v = NULL;
    if (c == '{' || c == '[') {
        r->pos++;
        return container(r, c == '{');
    }
    if (c == '"') {
        r->pos++;
        if (!string_body(r))
            return r->code ? NULL : nomem(r, NULL);
        v = pg_vars_new_text(PIGEON_VAR_STRING, r->scratch.data ? r->scratch.data : "",
                             r->scratch.len);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        v = number(r);
        if (v == NULL && r->code)
            return NULL;
    } else if (literal(r, "true") || literal(r, "false")) {
        if ((v = pg_vars_new(PIGEON_VAR_BOOL)) != NULL)
            v->boolean = c == 't';
    } else if (literal(r, "null")) {
        v = pg_vars_new(PIGEON_VAR_NULL);
    } else {
        return fail(r, PIGEON_ERR_INVALID, "unexpected character");
    }
    return v != NULL ? v : nomem(r, NULL);
}

pigeon_err pigeon_vars_parse_json(const char *json, size_t len, const pigeon_json_limits *limits,
                                  pigeon_vars **out, pigeon_json_error *err)
{
    reader r;
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (out == NULL || (json == NULL && len > 0))
        return PIGEON_ERR_INVALID;
    *out = NULL;
    memset(&r, 0, sizeof r);
    r.s = json;
    r.len = len;
    r.err = err;
    r.lim.max_size = limits && limits->max_size ? limits->max_size : (size_t)16 << 20;
    r.lim.depth = limits && limits->depth ? limits->depth : 64;
    r.lim.max_items = limits && limits->max_items ? limits->max_items : 1000000;
    if (len > r.lim.max_size) {
        fail(&r, PIGEON_ERR_TOO_LARGE, "document too large");
        return r.code;
    }
    pg_buf_init(&r.scratch);
    if (len >= 3 && memcmp(json, "\xEF\xBB\xBF", 3) == 0)
        r.pos = 3;
    pigeon_vars *v = value(&r);
    if (v != NULL) {
        skip_ws(&r);
        if (r.pos != r.len) {
            pigeon_vars_free(v);
            v = fail(&r, PIGEON_ERR_INVALID, "unexpected data after the value");
        }
    }
    pg_buf_cleanup(&r.scratch);
    *out = v;
    return v != NULL ? PIGEON_OK : r.code;
}
