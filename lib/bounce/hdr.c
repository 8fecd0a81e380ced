/*
 * hdr.c - a lenient header-block reader for bounces (see hdr.h).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bounce/hdr.h"
#include "codec/encode.h"

static size_t line_end(const char *in, size_t len, size_t pos, size_t *next);
static int is_field_name(const char *s, size_t n);

/* The end of the line at pos (before CR LF or LF), and where the next one starts. */
static size_t line_end(const char *in, size_t len, size_t pos, size_t *next)
{
    const char *nl = memchr(in + pos, '\n', len - pos);
    size_t end = nl != NULL ? (size_t)(nl - in) : len;
    *next = nl != NULL ? end + 1 : len;
    if (end > pos && in[end - 1] == '\r')
        end--;
    return end;
}

/* RFC 5322 3.6.8 ftext: printable ASCII but ':'. */
static int is_field_name(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] <= ' ' || s[i] > '~' || s[i] == ':')
            return 0;
    }
    return 1;
}

void pg_bhdr_begin(pg_bhdr_iter *it, const char *in, size_t len)
{
    memset(it, 0, sizeof *it);
    it->in = in;
    it->len = len;
}

int pg_bhdr_next(pg_bhdr_iter *it, pg_bhdr_field *f)
{
    while (!it->done) {
        size_t next, end = line_end(it->in, it->len, it->pos, &next);
        const char *line = it->in + it->pos;
        size_t n = end - it->pos;
        if (it->pos >= it->len || n == 0) {
            it->pos = next;
            it->done = 1;
            return 0;
        }
        it->pos = next;
        const char *colon = memchr(line, ':', n);
        size_t nlen = colon != NULL ? (size_t)(colon - line) : 0;
        while (nlen > 0 && (line[nlen - 1] == ' ' || line[nlen - 1] == '\t'))
            nlen--; /* RFC 822 allowed white space before the colon */
        if (colon == NULL || !is_field_name(line, nlen))
            continue; /* a stray line (or a continuation without a field): skipped */
        /* Continuation lines start with white space (RFC 5322 2.2.3). */
        while (it->pos < it->len && (it->in[it->pos] == ' ' || it->in[it->pos] == '\t')) {
            end = line_end(it->in, it->len, it->pos, &next);
            it->pos = next;
        }
        f->name = line;
        f->nlen = nlen;
        f->value = colon + 1;
        f->vlen = (size_t)(it->in + end - (colon + 1));
        if (++it->fields > PG_BHDR_FIELDS_MAX) {
            it->done = 2; /* bounded: the rest of the block is not read */
            return 0;
        }
        return 1;
    }
    return 0;
}

size_t pg_bhdr_body(const char *in, size_t len)
{
    pg_bhdr_iter it;
    pg_bhdr_field f;
    pg_bhdr_begin(&it, in, len);
    while (pg_bhdr_next(&it, &f))
        ;
    /* Past the field bound, skip to the empty line all the same. */
    while (it.done == 2 && it.pos < it.len) {
        size_t next, end = line_end(in, len, it.pos, &next);
        if (end == it.pos) {
            it.pos = next;
            break;
        }
        it.pos = next;
    }
    return it.pos < len ? it.pos : len;
}

int pg_bhdr_is(const pg_bhdr_field *f, const char *name)
{
    return strlen(name) == f->nlen && strncasecmp(f->name, name, f->nlen) == 0;
}

size_t pg_bhdr_unfold(const char *v, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    int space = 1; /* drops leading white space */
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '\r' || c == '\n' || c == ' ' || c == '\t') {
            if (!space)
                out[o++] = ' ';
            space = 1;
        } else if (c != 0) {
            out[o++] = (char)c;
            space = 0;
        }
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    return o;
}

int pg_bhdr_param(const char *value, const char *name, char *out, size_t cap, int lower)
{
    size_t nlen = strlen(name);
    const char *p = strchr(value, ';');
    while (p != NULL) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, name, nlen) == 0) {
            const char *q = p + nlen;
            while (*q == ' ')
                q++;
            if (*q == '=') {
                q++;
                while (*q == ' ')
                    q++;
                size_t o = 0;
                int quoted = *q == '"';
                for (q += quoted; *q != '\0' && o + 1 < cap; q++) {
                    if (quoted ? *q == '"' : (*q == ';' || *q == ' ' || *q == '\t'))
                        break;
                    if (quoted && *q == '\\' && q[1] != '\0')
                        q++;
                    out[o++] = lower ? (char)tolower((unsigned char)*q) : *q;
                }
                out[o] = '\0';
                return 1;
            }
        }
        /* The next ';' outside a quoted-string. */
        int inq = 0;
        while (*p != '\0' && (inq || *p != ';')) {
            if (*p == '"')
                inq = !inq;
            else if (*p == '\\' && p[1] != '\0')
                p++;
            p++;
        }
        p = *p == ';' ? p : NULL;
    }
    return 0;
}

void pg_bhdr_mediatype(const char *value, char *out, size_t cap)
{
    size_t o = 0;
    while (*value == ' ')
        value++;
    for (; *value != '\0' && *value != ';' && *value != ' ' && o + 1 < cap; value++)
        out[o++] = (char)tolower((unsigned char)*value);
    out[o] = '\0';
}

/* RFC 5322 3.4.1 addr-spec characters (dot-atom), RFC 6532 UTF-8 included. */
static int addr_char(unsigned char c)
{
    return isalnum(c) || c >= 0x80 || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~.@", c) != NULL);
}

/* Whether a CJK or full-width punctuation mark (U+3000..U+303F, U+FF00..U+FF65: "：",
 * "，", "（") starts at s: Chinese notices write "收件人：addr" without a space. */
static int cjk_punct(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    return n >= 3 &&
           ((u[0] == 0xe3 && u[1] == 0x80) || (u[0] == 0xef && (u[1] == 0xbc || u[1] == 0xbd)));
}

char *pg_bhdr_addr(const char *text, size_t n)
{
    /* First an address in angle brackets. */
    for (size_t i = 0; i < n; i++) {
        if (text[i] != '<')
            continue;
        size_t j = i + 1;
        while (j < n && j - i < 400 && addr_char((unsigned char)text[j]))
            j++;
        if (j < n && text[j] == '>' && memchr(text + i + 1, '@', j - i - 1) != NULL &&
            text[i + 1] != '@' && text[j - 1] != '@')
            return strndup(text + i + 1, j - i - 1);
    }
    /* Then the first bare word holding '@'. */
    for (size_t i = 0; i < n; i++) {
        if (text[i] != '@')
            continue;
        size_t s = i, e = i + 1;
        while (s > 0 && i - s < 256 && addr_char((unsigned char)text[s - 1]) &&
               !(s >= 3 && cjk_punct(text + s - 3, 3)))
            s--;
        while (e < n && e - i < 256 && addr_char((unsigned char)text[e]) && text[e] != '@' &&
               !cjk_punct(text + e, n - e))
            e++;
        while (e > i + 1 && (text[e - 1] == '.' || text[e - 1] == '-'))
            e--;
        while (s < i && text[s] == '.')
            s++;
        if (s < i && e > i + 1)
            return strndup(text + s, e - s);
    }
    return NULL;
}

void pg_bhdr_decode_words(pg_buf *out, const char *value)
{
    size_t start = out->len;
    if (strstr(value, "=?") == NULL) {
        pg_buf_puts(out, value);
        return;
    }
    if (pg_ew_decode(out, value, strlen(value)) != PIGEON_OK) {
        /* An unknown charset or a failed conversion: the value as written. */
        pigeon_err err = out->err == PIGEON_ERR_NOMEM ? PIGEON_ERR_NOMEM : PIGEON_OK;
        out->len = start;
        out->err = err;
        if (out->data != NULL)
            out->data[start] = '\0';
        pg_buf_puts(out, value);
    }
}
