/*
 * css_tok.c - the CSS tokenizer of CSS Syntax Level 3, section 4.
 *
 * A pure function of (buf, len): every input is some sequence of tokens, so there is no
 * error path. Comments are consumed between tokens (4.3.2), an unterminated comment or
 * string runs to the end of input (4.3.5: a string cut by a newline is a bad-string), and
 * url( with an unquoted argument is one token (4.3.6). Preprocessing (4.2: CR LF and FF
 * as LF, NUL as U+FFFD) is done by treating those bytes alike where it matters rather
 * than copying the input.
 */
#include <string.h>

#include "html/html_int.h"
#include "util/utf8.h"

static int is_nl(int c)
{
    return c == '\n' || c == '\r' || c == '\f';
}

static int is_ws(int c)
{
    return c == ' ' || c == '\t' || is_nl(c);
}

static int is_hex(int c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* 4.2 "ident-start code point": a letter, non-ASCII or '_'. */
static int is_name_start(int c)
{
    return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c >= 0x80 || c == '_';
}

static int is_name(int c)
{
    return is_name_start(c) || (c >= '0' && c <= '9') || c == '-';
}

static int at(const pg_css_lexer *lx, size_t off)
{
    size_t p = lx->pos + off;
    return p < lx->n ? (unsigned char)lx->s[p] : -1;
}

/* 4.3.8: a backslash not followed by a newline starts an escape. */
static int valid_escape(int c1, int c2)
{
    return c1 == '\\' && c2 != -1 && !is_nl(c2);
}

/* 4.3.9: would the next three code points start an identifier? */
static int starts_ident(const pg_css_lexer *lx, size_t off)
{
    int c = at(lx, off);
    if (c == '-') {
        int d = at(lx, off + 1);
        return is_name_start(d) || d == '-' || valid_escape(d, at(lx, off + 2));
    }
    if (is_name_start(c))
        return 1;
    return valid_escape(c, at(lx, off + 1));
}

/* 4.3.10: would they start a number? */
static int starts_number(const pg_css_lexer *lx)
{
    int c = at(lx, 0);
    size_t off = (c == '+' || c == '-') ? 1 : 0;
    int d = at(lx, off);
    if (d >= '0' && d <= '9')
        return 1;
    return d == '.' && at(lx, off + 1) >= '0' && at(lx, off + 1) <= '9';
}

/* 4.3.7: consumes an escape (the backslash already consumed). */
static void skip_escape(pg_css_lexer *lx)
{
    int c = at(lx, 0);
    if (c == -1)
        return;
    if (is_hex(c)) {
        for (int i = 0; i < 6 && is_hex(at(lx, 0)); i++)
            lx->pos++;
        if (at(lx, 0) == '\r' && at(lx, 1) == '\n')
            lx->pos += 2;
        else if (is_ws(at(lx, 0)))
            lx->pos++;
        return;
    }
    lx->pos += pg_utf8_char_len((unsigned char)c);
    if (lx->pos > lx->n)
        lx->pos = lx->n;
}

/* 4.3.11: consumes a name. The run of plain name bytes, the bulk of every stylesheet, is
 * taken in one loop before the general step. */
static void skip_name(pg_css_lexer *lx)
{
    for (;;) {
        const unsigned char *s = (const unsigned char *)lx->s;
        size_t p = lx->pos;
        while (p < lx->n && is_name(s[p]))
            p++;
        lx->pos = p;
        int c = at(lx, 0);
        if (is_name(c)) {
            lx->pos++;
        } else if (valid_escape(c, at(lx, 1))) {
            lx->pos++;
            skip_escape(lx);
        } else {
            return;
        }
    }
}

static void skip_digits(pg_css_lexer *lx)
{
    while (at(lx, 0) >= '0' && at(lx, 0) <= '9')
        lx->pos++;
}

/* 4.3.12: consumes a number. */
static void skip_number(pg_css_lexer *lx)
{
    if (at(lx, 0) == '+' || at(lx, 0) == '-')
        lx->pos++;
    skip_digits(lx);
    if (at(lx, 0) == '.' && at(lx, 1) >= '0' && at(lx, 1) <= '9') {
        lx->pos++;
        skip_digits(lx);
    }
    int e = at(lx, 0);
    if ((e == 'e' || e == 'E')) {
        int s = at(lx, 1);
        size_t off = (s == '+' || s == '-') ? 2 : 1;
        if (at(lx, off) >= '0' && at(lx, off) <= '9') {
            lx->pos += off;
            skip_digits(lx);
        }
    }
}

/* 4.3.5: consumes a string token after its opening quote. */
static void lex_string(pg_css_lexer *lx, pg_css_tok *t, int quote)
{
    t->type = PG_CSS_STRING;
    t->vstart = lx->pos;
    for (;;) {
        int c = at(lx, 0);
        if (c == -1) {
            t->vlen = lx->pos - t->vstart;
            return;
        }
        if (c == quote) {
            t->vlen = lx->pos - t->vstart;
            lx->pos++;
            return;
        }
        if (is_nl(c)) {
            /* A newline ends the string as a bad-string; the newline is not consumed. */
            t->type = PG_CSS_BAD_STRING;
            t->vlen = lx->pos - t->vstart;
            return;
        }
        lx->pos++;
        if (c == '\\' && at(lx, 0) != -1) {
            if (at(lx, 0) == '\r' && at(lx, 1) == '\n')
                lx->pos += 2;
            else if (is_nl(at(lx, 0)))
                lx->pos++;
            else
                skip_escape(lx);
        }
    }
}

/* 4.3.14: the remnants of a bad url up to ')' or the end. */
static void skip_bad_url(pg_css_lexer *lx)
{
    for (;;) {
        int c = at(lx, 0);
        if (c == -1)
            return;
        lx->pos++;
        if (c == ')')
            return;
        if (valid_escape(c, at(lx, 0)))
            skip_escape(lx);
    }
}

/* 4.3.6: consumes an unquoted url after "url(" and its whitespace. */
static void lex_url(pg_css_lexer *lx, pg_css_tok *t)
{
    t->type = PG_CSS_URL;
    t->vstart = lx->pos;
    for (;;) {
        int c = at(lx, 0);
        if (c == -1 || c == ')') {
            t->vlen = lx->pos - t->vstart;
            if (c == ')')
                lx->pos++;
            return;
        }
        if (is_ws(c)) {
            t->vlen = lx->pos - t->vstart;
            while (is_ws(at(lx, 0)))
                lx->pos++;
            if (at(lx, 0) == ')' || at(lx, 0) == -1) {
                if (at(lx, 0) == ')')
                    lx->pos++;
                return;
            }
            t->type = PG_CSS_BAD_URL;
            skip_bad_url(lx);
            return;
        }
        if (c == '"' || c == '\'' || c == '(' || c < 0x20 || c == 0x7f ||
            (c == '\\' && !valid_escape(c, at(lx, 1)))) {
            t->type = PG_CSS_BAD_URL;
            skip_bad_url(lx);
            t->vlen = 0;
            return;
        }
        lx->pos++;
        if (c == '\\')
            skip_escape(lx);
    }
}

/* 4.3.4: an identifier, a function or a url. */
static void lex_ident_like(pg_css_lexer *lx, pg_css_tok *t)
{
    t->vstart = lx->pos;
    skip_name(lx);
    t->vlen = lx->pos - t->vstart;
    t->type = PG_CSS_IDENT;
    if (at(lx, 0) != '(')
        return;
    lx->pos++;
    t->type = PG_CSS_FUNCTION;
    if (t->vlen == 3 && strncasecmp(lx->s + t->vstart, "url", 3) == 0) {
        size_t save = lx->pos;
        while (is_ws(at(lx, 0)))
            lx->pos++;
        if (at(lx, 0) == '"' || at(lx, 0) == '\'') {
            lx->pos = save; /* url("...") is a function with a string argument */
            return;
        }
        lex_url(lx, t);
    }
}

/* 4.3.3: a number, percentage or dimension. */
static void lex_numeric(pg_css_lexer *lx, pg_css_tok *t)
{
    t->vstart = lx->pos;
    skip_number(lx);
    t->vlen = lx->pos - t->vstart;
    t->type = PG_CSS_NUMBER;
    if (starts_ident(lx, 0)) {
        skip_name(lx);
        t->type = PG_CSS_DIMENSION;
    } else if (at(lx, 0) == '%') {
        lx->pos++;
        t->type = PG_CSS_PERCENT;
    }
}

/* Skips comments (4.3.2); an unterminated one runs to the end. */
static void skip_comments(pg_css_lexer *lx)
{
    while (at(lx, 0) == '/' && at(lx, 1) == '*') {
        size_t p = lx->pos + 2;
        for (;;) {
            const char *star = p < lx->n ? memchr(lx->s + p, '*', lx->n - p) : NULL;
            if (star == NULL) {
                p = lx->n;
                break;
            }
            p = (size_t)(star - lx->s) + 1;
            if (p < lx->n && lx->s[p] == '/') {
                p++;
                break;
            }
        }
        lx->pos = p;
    }
}

void pg_css_lexer_init(pg_css_lexer *lx, const char *s, size_t n)
{
    lx->s = s;
    lx->n = n;
    lx->pos = 0;
}

static int lex_punct(pg_css_lexer *lx, pg_css_tok *t, int c)
{
    static const char punct[] = ":;,[](){}";
    static const pg_css_tt types[] = {PG_CSS_COLON,    PG_CSS_SEMI,     PG_CSS_COMMA,
                                      PG_CSS_LBRACKET, PG_CSS_RBRACKET, PG_CSS_LPAREN,
                                      PG_CSS_RPAREN,   PG_CSS_LBRACE,   PG_CSS_RBRACE};
    const char *p = c > 0 && c < 0x80 ? strchr(punct, c) : NULL;
    if (p == NULL)
        return 0;
    t->type = types[p - punct];
    lx->pos++;
    return 1;
}

/* The delimiters that may start something longer: # @ < - + . \ and digits. */
static int lex_special(pg_css_lexer *lx, pg_css_tok *t, int c)
{
    if (c == '#' && (is_name(at(lx, 1)) || valid_escape(at(lx, 1), at(lx, 2)))) {
        lx->pos++;
        t->type = PG_CSS_HASH;
        t->id_type = starts_ident(lx, 0);
        t->vstart = lx->pos;
        skip_name(lx);
        t->vlen = lx->pos - t->vstart;
        return 1;
    }
    if (c == '@' && starts_ident(lx, 1)) {
        lx->pos++;
        t->type = PG_CSS_AT;
        t->vstart = lx->pos;
        skip_name(lx);
        t->vlen = lx->pos - t->vstart;
        return 1;
    }
    if (c == '<' && at(lx, 1) == '!' && at(lx, 2) == '-' && at(lx, 3) == '-') {
        lx->pos += 4;
        t->type = PG_CSS_CDO;
        return 1;
    }
    if ((c == '+' || c == '-' || c == '.' || (c >= '0' && c <= '9')) && starts_number(lx)) {
        lex_numeric(lx, t);
        return 1;
    }
    if (c == '-' && at(lx, 1) == '-' && at(lx, 2) == '>') {
        lx->pos += 3;
        t->type = PG_CSS_CDC;
        return 1;
    }
    if (starts_ident(lx, 0)) {
        lex_ident_like(lx, t);
        return 1;
    }
    return 0;
}

void pg_css_next(pg_css_lexer *lx, pg_css_tok *t)
{
    memset(t, 0, sizeof *t);
    skip_comments(lx);
    t->start = lx->pos;
    int c = at(lx, 0);
    if (c == -1) {
        t->type = PG_CSS_EOF;
    } else if (is_ws(c)) {
        while (is_ws(at(lx, 0)))
            lx->pos++;
        t->type = PG_CSS_WS;
    } else if (c == '"' || c == '\'') {
        lx->pos++;
        lex_string(lx, t, c);
    } else if (!lex_punct(lx, t, c) && !lex_special(lx, t, c)) {
        uint32_t cp = (uint32_t)c;
        size_t k = pg_utf8_decode((const unsigned char *)lx->s + lx->pos, lx->n - lx->pos, &cp);
        lx->pos += k ? k : 1;
        t->type = PG_CSS_DELIM;
        t->delim = (int)cp;
    }
    t->len = lx->pos - t->start;
}

static void put_cp(pg_buf *out, uint32_t cp)
{
    char b[4];
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = 0xFFFD;
    if (cp < 0x80) {
        b[0] = (char)cp;
        pg_buf_append(out, b, 1);
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        pg_buf_append(out, b, 2);
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        pg_buf_append(out, b, 3);
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        pg_buf_append(out, b, 4);
    }
}

static int hexval(int c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

void pg_css_unescape(const char *s, size_t n, pg_buf *out)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '\\')
            j++;
        pg_buf_append(out, s + i, j - i);
        if (j >= n)
            return;
        i = j + 1;
        if (i >= n) {
            put_cp(out, 0xFFFD); /* 4.3.7: an escape at EOF */
            return;
        }
        if (is_hex((unsigned char)s[i])) {
            uint32_t cp = 0;
            for (int k = 0; k < 6 && i < n && is_hex((unsigned char)s[i]); k++, i++)
                cp = cp * 16 + (uint32_t)hexval((unsigned char)s[i]);
            if (i < n && is_ws((unsigned char)s[i]))
                i += (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
            put_cp(out, cp);
        } else if (is_nl((unsigned char)s[i])) {
            i++; /* an escaped newline in a string is a line continuation */
        } else {
            size_t k = pg_utf8_char_len((unsigned char)s[i]);
            if (k > n - i)
                k = n - i;
            pg_buf_append(out, s + i, k);
            i += k;
        }
    }
}
