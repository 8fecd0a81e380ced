/*
 * param.c - MIME header parameters (RFC 2045 5.1), with RFC 2231 extended and continued
 * values for text that is not ASCII or too long for a line, and the non-standard
 * quoted encoded-word form (name="=?UTF-8?B?...?=") that QQ Mail and Outlook read.
 *
 * Lines stay within 78 columns (RFC 5322 2.1.1): a parameter that does not fit goes on a
 * folded line of its own, and RFC 2231 3 sections split long values between whole UTF-8
 * characters, one section per line.
 */
#include "codec/rfc2047.h"

#include <stdio.h>
#include <string.h>

/* RFC 5322 2.1.1: lines SHOULD be at most 78 characters, CRLF excluded. */
#define FOLD_AT 78
/* Room kept at the end of a parameter's line for the ';' before the next one. */
#define NEXT_SEMI 1
/* Room the first encoded-word of the quoted form needs on the parameter's line. */
#define EW_FIRST_MIN 24

static const char hex_upper[] = "0123456789ABCDEF";

/* RFC 2045 5.1 tspecials. */
static int is_tspecial(unsigned char c)
{
    return c != 0 && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* RFC 2045 5.1 token: printable ASCII but space and tspecials. */
static int is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 32 || c >= 127 || is_tspecial(c))
            return 0;
    }
    return 1;
}

/* RFC 5987 3.2.1 attr-char, the conservative subset of RFC 2231 attribute-char that may
 * stand bare in an extended value. */
static int is_attr_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$&+-.^_`|~", c) != NULL);
}

/* Printable ASCII and space, with no "=?" (which some readers decode as an encoded-word
 * even inside a quoted-string), can be a quoted-string. */
static int quotable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 32 || c > 126 || (c == '=' && i + 1 < n && s[i + 1] == '?'))
            return 0;
    }
    return 1;
}

static int all_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 128)
            return 0;
    return 1;
}

/* Writes "; " or ";" CRLF " " before a parameter of len characters, whichever fits. */
static void put_semi(pg_buf *out, size_t *col, size_t len)
{
    if (*col + 2 + len + NEXT_SEMI <= FOLD_AT) {
        pg_buf_append(out, "; ", 2);
        *col += 2;
    } else {
        pg_buf_append(out, ";\r\n ", 4);
        *col = 1;
    }
}

static void put_text(pg_buf *out, size_t *col, const char *s, size_t n)
{
    pg_buf_append(out, s, n);
    *col += n;
}

/* Width of the RFC 2231 percent-encoding of the character at s. */
static size_t pct_width(const unsigned char *s)
{
    size_t cl = pg_utf8_char_len(s[0]);
    return cl == 1 && is_attr_char(s[0]) ? 1 : 3 * cl;
}

static void put_pct(pg_buf *out, const unsigned char *s, size_t n)
{
    if (pg_buf_reserve(out, 3 * n) != PIGEON_OK)
        return;
    char *d = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        if (is_attr_char(s[i])) {
            *d++ = (char)s[i];
        } else {
            d[0] = '%';
            d[1] = hex_upper[s[i] >> 4];
            d[2] = hex_upper[s[i] & 15];
            d += 3;
        }
    }
    out->len = (size_t)(d - out->data);
    out->data[out->len] = '\0';
}

static size_t pct_len(const unsigned char *s, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i += pg_utf8_char_len(s[i]))
        len += pct_width(s + i);
    return len;
}

/* RFC 2231 3 and 4: name*0*=UTF-8''...; name*1*=... each section on its own line,
 * split between whole characters. */
static void put_sections(pg_buf *out, size_t *col, const char *name, const unsigned char *s,
                         size_t n)
{
    size_t i = 0;
    for (unsigned k = 0; i < n && out->err == PIGEON_OK; k++) {
        char head[32];
        int hl = snprintf(head, sizeof head, "*%u*=%s", k, k == 0 ? "UTF-8''" : "");
        size_t used = 1 + strlen(name) + (size_t)hl + NEXT_SEMI, j = i, width = 0;
        /* At least one character per section, even when the name leaves no room. */
        do {
            width += pct_width(s + j);
            j += pg_utf8_char_len(s[j]);
        } while (j < n && used + width + pct_width(s + j) <= FOLD_AT);
        pg_buf_append(out, ";\r\n ", 4);
        *col = 1;
        put_text(out, col, name, strlen(name));
        put_text(out, col, head, (size_t)hl);
        put_pct(out, s + i, j - i);
        *col += width;
        i = j;
    }
}

/* RFC 2231 4: name*=UTF-8''%E4%B8%AD on one line when it fits, else continued. */
static void put_extended(pg_buf *out, size_t *col, const char *name, const char *v, size_t n)
{
    const unsigned char *s = (const unsigned char *)v;
    size_t len = strlen(name) + strlen("*=UTF-8''") + pct_len(s, n);
    if (1 + len + NEXT_SEMI > FOLD_AT) {
        put_sections(out, col, name, s, n);
        return;
    }
    put_semi(out, col, len);
    put_text(out, col, name, strlen(name));
    put_text(out, col, "*=UTF-8''", 9);
    put_pct(out, s, n);
    *col += len - strlen(name) - 9;
}

/* Checks the arguments common to both forms. */
static pigeon_err check_param(pg_buf *out, size_t *col, const char *name, const char *utf8)
{
    if (out->err != PIGEON_OK)
        return out->err;
    if (col == NULL || name == NULL || utf8 == NULL)
        return out->err = PIGEON_ERR_INVALID;
    size_t n = strlen(utf8);
    if (!is_token(name, strlen(name)) || strchr(name, '*') != NULL || strchr(name, '\'') ||
        strchr(name, '%'))
        return out->err = PIGEON_ERR_HEADER;
    if (pg_has_ctl_breaks(utf8, n))
        return out->err = PIGEON_ERR_HEADER;
    if (!pg_utf8_valid(utf8, n))
        return out->err = PIGEON_ERR_CHARSET;
    return PIGEON_OK;
}

pigeon_err pg_param_append(pg_buf *out, size_t *col, const char *name, const char *utf8)
{
    if (check_param(out, col, name, utf8) != PIGEON_OK)
        return out->err;
    size_t n = strlen(utf8), nl = strlen(name);
    if (is_token(utf8, n) && 1 + nl + 1 + n + NEXT_SEMI <= FOLD_AT) {
        put_semi(out, col, nl + 1 + n);
        put_text(out, col, name, nl);
        put_text(out, col, "=", 1);
        put_text(out, col, utf8, n);
        return out->err;
    }
    if (quotable(utf8, n)) {
        pg_buf q;
        pg_buf_init(&q);
        pg_buf_printf(&q, "%s=\"", name);
        for (size_t i = 0; i < n; i++) {
            if (utf8[i] == '"' || utf8[i] == '\\')
                pg_buf_putc(&q, '\\'); /* RFC 5322 3.2.4 quoted-pair */
            pg_buf_putc(&q, utf8[i]);
        }
        pg_buf_putc(&q, '"');
        int fits = 1 + q.len + NEXT_SEMI <= FOLD_AT;
        if (q.err != PIGEON_OK) {
            out->err = q.err;
        } else if (fits) {
            put_semi(out, col, q.len);
            put_text(out, col, q.data, q.len);
        }
        pg_buf_cleanup(&q);
        if (fits || out->err != PIGEON_OK)
            return out->err;
    }
    put_extended(out, col, name, utf8, n);
    return out->err;
}

pigeon_err pg_param_append_ew(pg_buf *out, size_t *col, const char *name, const char *utf8)
{
    if (check_param(out, col, name, utf8) != PIGEON_OK)
        return out->err;
    size_t n = strlen(utf8), nl = strlen(name);
    if (all_ascii(utf8, n))
        return pg_param_append(out, col, name, utf8);
    /* Rather fold before the parameter than split a name that fits one encoded-word on
     * a line of its own: clients that read only name= (QQ Mail, Outlook) are not all
     * good at joining encoded-words. The B form's length bounds the shorter one's. */
    size_t b_len = 12 + 4 * ((n + 2) / 3); /* "=?UTF-8?B?" + base64 + "?=" */
    size_t whole = nl + 2 + b_len + 1;     /* name="<word>" */
    put_semi(out, col, 1 + whole + NEXT_SEMI <= FOLD_AT ? whole : nl + 2 + EW_FIRST_MIN);
    put_text(out, col, name, nl);
    put_text(out, col, "=\"", 2);
    /* The encoded-words' text (B, or Q with RFC 2047 5(3)'s phrase characters) never
     * holds '"' or '\', so it needs no quoting; the closing quote and a ';' follow. */
    pg_ew_encode_run(out, col, utf8, n, PG_EW_PHRASE, 1 + NEXT_SEMI);
    put_text(out, col, "\"", 1);
    return out->err;
}
