/*
 * imap_parse.c - the IMAP response parser (RFC 9051 9 "Formal Syntax", RFC 3501 9).
 *
 * A recursive-descent reader over (buf, len) that never reads past len: every step
 * reports NEED_MORE when the response is cut short and ERROR for anything the grammar
 * forbids. See imap_parse.h for what it yields.
 */
#include "mailbox/imap_parse.h"

#include <string.h>
#include <strings.h>

/* A cursor over the response. */
struct cur {
    const char *b; /* the buffer */
    size_t len;    /* its length */
    size_t pos;    /* next byte to read */
};

/* Step outcome: 0 to go on, else a pg_imap_result to return. */
#define GO   0
#define MORE (-1)
#define BAD  (-2)

static int fail(pg_imap_resp *r, const char *why);
static int crlf(struct cur *c, pg_imap_resp *r);
static int text(struct cur *c, pg_imap_resp *r, const char **p, size_t *n);
static int atom_char(unsigned char ch);
static int read_atom(struct cur *c, pg_imap_resp *r, const char **p, size_t *n, int brackets);
static int resp_text(struct cur *c, pg_imap_resp *r);
static int status_of(const char *p, size_t n);
static int quoted(struct cur *c, pg_imap_resp *r, pg_imap_tok *t);
static int literal(struct cur *c, pg_imap_resp *r, pg_imap_tok *t);
static int tokens(struct cur *c, pg_imap_resp *r);
static int untagged(struct cur *c, pg_imap_resp *r);
static int tagged(struct cur *c, pg_imap_resp *r);

static int fail(pg_imap_resp *r, const char *why)
{
    r->why = why;
    return BAD;
}

/* RFC 9051 9: CRLF ends every line; a bare CR or LF is not a line end. */
static int crlf(struct cur *c, pg_imap_resp *r)
{
    if (c->pos >= c->len)
        return MORE;
    if (c->b[c->pos] != '\r')
        return fail(r, "expected CRLF");
    if (c->pos + 1 >= c->len)
        return MORE;
    if (c->b[c->pos + 1] != '\n')
        return fail(r, "CR without LF");
    c->pos += 2;
    return GO;
}

/* text = 1*TEXT-CHAR: anything but NUL, CR, LF (8-bit allowed: servers send UTF-8 text). */
static int text(struct cur *c, pg_imap_resp *r, const char **p, size_t *n)
{
    size_t start = c->pos;
    while (c->pos < c->len) {
        unsigned char ch = (unsigned char)c->b[c->pos];
        if (ch == '\r')
            break;
        if (ch == '\0' || ch == '\n')
            return fail(r, "NUL or bare LF in response text");
        c->pos++;
    }
    if (c->pos >= c->len)
        return MORE;
    *p = c->b + start;
    *n = c->pos - start;
    return GO;
}

/* ATOM-CHAR: any CHAR except atom-specials ( ) { SP CTL % * " \ ] -- but flags (\Seen),
 * the wildcard flag \* and list wildcards are read as atoms too, so only the characters
 * that delimit tokens are excluded here. */
static int atom_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && ch != '(' && ch != ')' && ch != '{' && ch != '"' && ch != ']';
}

/* An atom; with brackets, a "[...]" section inside it is taken whole (BODY[HEADER.FIELDS
 * (A B)]<0>, RFC 9051 7.5.2 msg-att). */
static int read_atom(struct cur *c, pg_imap_resp *r, const char **p, size_t *n, int brackets)
{
    size_t start = c->pos;
    while (c->pos < c->len) {
        unsigned char ch = (unsigned char)c->b[c->pos];
        if (brackets && ch == '[') {
            size_t i = c->pos + 1;
            while (i < c->len && c->b[i] != ']') {
                if (c->b[i] == '\r' || c->b[i] == '\n' || c->b[i] == '\0')
                    return fail(r, "line break inside a section");
                i++;
            }
            if (i >= c->len)
                return MORE;
            c->pos = i + 1;
            continue;
        }
        if (!atom_char(ch))
            break;
        c->pos++;
    }
    if (c->pos >= c->len)
        return MORE;
    if (c->pos == start)
        return fail(r, "expected an atom");
    *p = c->b + start;
    *n = c->pos - start;
    return GO;
}

static int status_of(const char *p, size_t n)
{
    static const struct {
        const char *name;
        pg_imap_status st;
    } names[] = {{"OK", PG_IMAP_ST_OK},
                 {"NO", PG_IMAP_ST_NO},
                 {"BAD", PG_IMAP_ST_BAD},
                 {"PREAUTH", PG_IMAP_ST_PREAUTH},
                 {"BYE", PG_IMAP_ST_BYE}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == n && strncasecmp(p, names[i].name, n) == 0)
            return (int)names[i].st;
    return PG_IMAP_ST_NONE;
}

/* resp-text = ["[" resp-text-code "]" SP] text, then CRLF (RFC 9051 9). The text may be
 * empty (RFC 9051 allows it; RFC 3501 servers send "OK [CODE]" alone too). */
static int resp_text(struct cur *c, pg_imap_resp *r)
{
    int rc;
    r->text = c->b + c->pos;
    r->text_len = 0;
    if (c->pos < c->len && c->b[c->pos] == '[') {
        c->pos++;
        if ((rc = read_atom(c, r, &r->code, &r->code_len, 0)) != GO)
            return rc;
        if (c->b[c->pos] == ' ') {
            c->pos++;
            size_t start = c->pos;
            int in_quote = 0;
            while (c->pos < c->len && (in_quote || c->b[c->pos] != ']')) {
                char ch = c->b[c->pos];
                if (ch == '\r' || ch == '\n' || ch == '\0')
                    return fail(r, "line break inside a response code");
                if (in_quote && ch == '\\' && c->pos + 1 < c->len)
                    c->pos++;
                else if (ch == '"')
                    in_quote = !in_quote;
                c->pos++;
            }
            if (c->pos >= c->len)
                return MORE;
            r->code_arg = c->b + start;
            r->code_arg_len = c->pos - start;
        }
        if (c->b[c->pos] != ']')
            return fail(r, "response code not closed by ']'");
        c->pos++;
        if (c->pos >= c->len)
            return MORE;
        if (c->b[c->pos] == ' ')
            c->pos++;
        else if (c->b[c->pos] != '\r')
            return fail(r, "expected a space after the response code");
    }
    if ((rc = text(c, r, &r->text, &r->text_len)) != GO)
        return rc;
    return crlf(c, r);
}

/* quoted = DQUOTE *QUOTED-CHAR DQUOTE; QUOTED-CHAR escapes only '"' and '\' (RFC 9051 9;
 * UTF-8 allowed, RFC 9051 utf8-quoted). */
static int quoted(struct cur *c, pg_imap_resp *r, pg_imap_tok *t)
{
    size_t start = ++c->pos;
    while (c->pos < c->len) {
        unsigned char ch = (unsigned char)c->b[c->pos];
        if (ch == '"') {
            t->type = PG_IMAP_TOK_QUOTED;
            t->p = c->b + start;
            t->n = c->pos - start;
            c->pos++;
            return GO;
        }
        if (ch == '\r' || ch == '\n' || ch == '\0')
            return fail(r, "line break or NUL inside a quoted string");
        if (ch == '\\') {
            if (c->pos + 1 >= c->len)
                return MORE;
            char next = c->b[c->pos + 1];
            if (next != '"' && next != '\\')
                return fail(r, "bad escape in a quoted string");
            c->pos++;
        }
        c->pos++;
    }
    return MORE;
}

/* literal = "{" number64 ["+"] "}" CRLF *CHAR8 (RFC 9051 4.3; literal8 "~{" too). */
static int literal(struct cur *c, pg_imap_resp *r, pg_imap_tok *t)
{
    if (c->b[c->pos] == '~')
        c->pos++;
    if (c->pos >= c->len)
        return MORE;
    if (c->b[c->pos] != '{')
        return fail(r, "expected '{' of a literal");
    c->pos++;
    uint64_t size = 0;
    size_t digits = 0;
    while (c->pos < c->len && c->b[c->pos] >= '0' && c->b[c->pos] <= '9') {
        size = size * 10 + (uint64_t)(c->b[c->pos] - '0');
        if (++digits > 19 || size > PG_IMAP_LITERAL_MAX)
            return fail(r, "literal too large");
        c->pos++;
    }
    if (c->pos >= c->len)
        return MORE;
    if (digits == 0)
        return fail(r, "literal without a size");
    if (c->b[c->pos] == '+') {
        if (++c->pos >= c->len)
            return MORE;
    }
    if (c->b[c->pos] != '}')
        return fail(r, "literal size not closed by '}'");
    c->pos++;
    int rc = crlf(c, r);
    if (rc != GO)
        return rc;
    if (c->len - c->pos < size)
        return MORE;
    t->type = PG_IMAP_TOK_LITERAL;
    t->p = c->b + c->pos;
    t->n = (size_t)size;
    t->num = size;
    c->pos += (size_t)size;
    return GO;
}

static int one_token(struct cur *c, pg_imap_resp *r, pg_imap_tok *t)
{
    unsigned char ch = (unsigned char)c->b[c->pos];
    if (ch == '"')
        return quoted(c, r, t);
    if (ch == '{' || ch == '~')
        return literal(c, r, t);
    int rc = read_atom(c, r, &t->p, &t->n, 1);
    if (rc != GO)
        return rc;
    t->type = PG_IMAP_TOK_ATOM;
    if (t->n == 3 && strncasecmp(t->p, "NIL", 3) == 0) {
        t->type = PG_IMAP_TOK_NIL;
        return GO;
    }
    uint64_t v = 0;
    size_t i = 0;
    for (; i < t->n && t->p[i] >= '0' && t->p[i] <= '9' && i < 19; i++)
        v = v * 10 + (uint64_t)(t->p[i] - '0');
    if (i == t->n) {
        t->type = PG_IMAP_TOK_NUMBER;
        t->num = v;
    }
    return GO;
}

/* The tokens of a data response up to its CRLF, lists balanced. */
static int tokens(struct cur *c, pg_imap_resp *r)
{
    int depth = 0;
    int need_sep = 0; /* a token just ended: only SP, ')' or CRLF may follow */
    for (;;) {
        if (c->pos >= c->len)
            return MORE;
        unsigned char ch = (unsigned char)c->b[c->pos];
        if (ch == '\r') {
            if (depth != 0)
                return fail(r, "unbalanced parentheses");
            return crlf(c, r);
        }
        if (ch == ' ') {
            c->pos++;
            need_sep = 0;
            continue;
        }
        if (need_sep && ch != ')')
            return fail(r, "expected a space between tokens");
        if (r->ntoks >= r->toks_cap)
            return fail(r, "too many tokens in one response");
        pg_imap_tok *t = &r->toks[r->ntoks];
        memset(t, 0, sizeof *t);
        if (ch == '(') {
            if (++depth > PG_IMAP_DEPTH_MAX)
                return fail(r, "lists nested too deeply");
            t->type = PG_IMAP_TOK_OPEN;
            t->p = c->b + c->pos++;
            t->depth = depth;
            r->ntoks++;
            need_sep = 0;
            continue;
        }
        if (ch == ')') {
            if (depth == 0)
                return fail(r, "')' without '('");
            t->type = PG_IMAP_TOK_CLOSE;
            t->p = c->b + c->pos++;
            t->depth = depth--;
            r->ntoks++;
            need_sep = 1;
            continue;
        }
        int rc = one_token(c, r, t);
        if (rc != GO)
            return rc;
        t->depth = depth;
        r->ntoks++;
        need_sep = 1;
    }
}

/* "*" SP then a status (resp-cond-state, resp-cond-bye), or [number SP] keyword data. */
static int untagged(struct cur *c, pg_imap_resp *r)
{
    const char *p;
    size_t n;
    int rc = read_atom(c, r, &p, &n, 0);
    if (rc != GO)
        return rc;
    if (n > 0 && p[0] >= '0' && p[0] <= '9') {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i] < '0' || p[i] > '9' || (v = v * 10 + (uint64_t)(p[i] - '0')) > 0xffffffffu)
                return fail(r, "bad message number");
        }
        r->has_number = 1;
        r->number = (uint32_t)v;
        if (c->b[c->pos] != ' ')
            return fail(r, "expected a space after the number");
        c->pos++;
        if ((rc = read_atom(c, r, &p, &n, 0)) != GO)
            return rc;
    } else {
        int st = status_of(p, n);
        if (st != PG_IMAP_ST_NONE) {
            r->status = (pg_imap_status)st;
            if (c->b[c->pos] == ' ')
                c->pos++;
            return resp_text(c, r);
        }
    }
    r->keyword = p;
    r->keyword_len = n;
    return tokens(c, r);
}

/* tag SP resp-cond-state (RFC 9051 7.1: only OK, NO and BAD complete a command). */
static int tagged(struct cur *c, pg_imap_resp *r)
{
    const char *p;
    size_t n;
    int rc = read_atom(c, r, &r->tag, &r->tag_len, 0);
    if (rc != GO)
        return rc;
    for (size_t i = 0; i < r->tag_len; i++)
        if (r->tag[i] == '+' || r->tag[i] == '*' || r->tag[i] == '%' || r->tag[i] == '\\')
            return fail(r, "bad character in a tag");
    if (c->b[c->pos] != ' ')
        return fail(r, "expected a space after the tag");
    c->pos++;
    if ((rc = read_atom(c, r, &p, &n, 0)) != GO)
        return rc;
    int st = status_of(p, n);
    if (st != PG_IMAP_ST_OK && st != PG_IMAP_ST_NO && st != PG_IMAP_ST_BAD)
        return fail(r, "a tagged response must be OK, NO or BAD");
    r->status = (pg_imap_status)st;
    if (c->b[c->pos] == ' ')
        c->pos++;
    return resp_text(c, r);
}

pg_imap_result pg_imap_parse(const char *buf, size_t len, pg_imap_resp *r, pg_imap_tok *toks,
                             size_t cap, size_t *consumed)
{
    struct cur c = {buf, len, 0};
    memset(r, 0, sizeof *r);
    r->toks = toks;
    r->toks_cap = toks != NULL ? cap : 0;
    *consumed = 0;
    if (len == 0)
        return PG_IMAP_NEED_MORE;
    int rc;
    if (buf[0] == '+') {
        /* continue-req = "+" SP (resp-text / base64) CRLF; a bare "+" CRLF is common. */
        r->kind = PG_IMAP_CONTINUE;
        c.pos = 1;
        if (c.pos < len && buf[c.pos] == ' ')
            c.pos++;
        rc = text(&c, r, &r->text, &r->text_len);
        if (rc == GO)
            rc = crlf(&c, r);
    } else if (buf[0] == '*') {
        r->kind = PG_IMAP_UNTAGGED;
        if (len < 2)
            return PG_IMAP_NEED_MORE;
        if (buf[1] != ' ')
            rc = fail(r, "expected a space after '*'");
        else {
            c.pos = 2;
            rc = untagged(&c, r);
        }
    } else {
        r->kind = PG_IMAP_TAGGED;
        rc = tagged(&c, r);
    }
    if (rc == MORE)
        return PG_IMAP_NEED_MORE;
    if (rc == BAD)
        return PG_IMAP_ERROR;
    *consumed = c.pos;
    return PG_IMAP_DONE;
}

pigeon_err pg_imap_tok_copy(const pg_imap_tok *t, pg_buf *out)
{
    if (t->type == PG_IMAP_TOK_NIL || t->type == PG_IMAP_TOK_OPEN || t->type == PG_IMAP_TOK_CLOSE)
        return out->err;
    if (t->type != PG_IMAP_TOK_QUOTED)
        return pg_buf_append(out, t->p, t->n);
    for (size_t i = 0; i < t->n; i++) {
        if (t->p[i] == '\\' && i + 1 < t->n)
            i++;
        pg_buf_putc(out, t->p[i]);
    }
    return out->err;
}

int pg_imap_tok_is(const pg_imap_tok *t, const char *s)
{
    if (t->type != PG_IMAP_TOK_ATOM && t->type != PG_IMAP_TOK_QUOTED &&
        t->type != PG_IMAP_TOK_NUMBER)
        return 0;
    return strlen(s) == t->n && strncasecmp(t->p, s, t->n) == 0;
}

int pg_imap_line_literal(const char *line, size_t len, uint64_t *size)
{
    if (len < 5 || line[len - 1] != '\n' || line[len - 2] != '\r' || line[len - 3] != '}')
        return 0;
    size_t end = len - 3;
    if (end > 0 && line[end - 1] == '+')
        end--;
    size_t i = end;
    while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
        i--;
    if (i == end || i == 0 || line[i - 1] != '{' || end - i > 19)
        return 0;
    uint64_t v = 0;
    for (size_t k = i; k < end; k++)
        v = v * 10 + (uint64_t)(line[k] - '0');
    *size = v;
    return 1;
}
