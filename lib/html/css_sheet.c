/*
 * css_sheet.c - stylesheets and declaration lists per CSS Syntax Level 3, section 5.
 *
 * "Parse a stylesheet" (5.3.3) into the rules the inliner needs: a qualified rule keeps
 * its prelude (the selector list) and its declarations; an at-rule (@media, @font-face,
 * @supports, @import, unknown ones) is kept as written, for the <style> block that
 * survives inlining; @charset is dropped (the document has one encoding). Blocks nest
 * to any depth with the closers kept on a heap stack, so nesting never grows the C stack,
 * and every byte sequence parses: a rule cut by the end of input is closed there (5.4.7)
 * and a qualified rule without a block is dropped (5.4.3).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "html/html_int.h"

/* The closers of the blocks open around the lexer, innermost last. */
typedef struct closers {
    pg_buf stack; /* one byte per open block: the token type that closes it */
} closers;

static pg_css_tt closer_of(pg_css_tt open)
{
    switch (open) {
    case PG_CSS_LBRACE:
        return PG_CSS_RBRACE;
    case PG_CSS_LBRACKET:
        return PG_CSS_RBRACKET;
    default:
        return PG_CSS_RPAREN;
    }
}

static int is_open(pg_css_tt t)
{
    return t == PG_CSS_LBRACE || t == PG_CSS_LBRACKET || t == PG_CSS_LPAREN || t == PG_CSS_FUNCTION;
}

/* Tracks nesting for token t; returns the depth after it. */
static size_t track(closers *c, const pg_css_tok *t)
{
    if (is_open(t->type)) {
        pg_buf_putc(&c->stack,
                    (char)closer_of(t->type == PG_CSS_FUNCTION ? PG_CSS_LPAREN : t->type));
    } else if (c->stack.len > 0 && (unsigned char)c->stack.data[c->stack.len - 1] == t->type) {
        c->stack.len--;
    }
    return c->stack.len;
}

/* Consumes tokens up to the end of the block whose opener was just read. Returns the
 * offset where the block's content ends (before the closer, or at EOF). */
static size_t skip_block(pg_css_lexer *lx, closers *c)
{
    size_t base = c->stack.len - 1;
    pg_css_tok t;
    for (;;) {
        size_t before = lx->pos;
        pg_css_next(lx, &t);
        if (t.type == PG_CSS_EOF) {
            c->stack.len = base;
            return before;
        }
        size_t depth = track(c, &t);
        if (depth == base)
            return t.start;
    }
}

static char *dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void trim(const char *s, size_t *start, size_t *end)
{
    while (*start < *end && strchr(" \t\r\n\f", s[*start]) != NULL)
        (*start)++;
    while (*end > *start && strchr(" \t\r\n\f", s[*end - 1]) != NULL)
        (*end)--;
}

static pg_css_rule *new_rule(pg_css_sheet *sheet)
{
    if (sheet->count == sheet->cap) {
        size_t cap = sheet->cap ? sheet->cap * 2 : 16;
        pg_css_rule *r = realloc(sheet->rules, cap * sizeof *r);
        if (r == NULL) {
            sheet->err = PIGEON_ERR_NOMEM;
            return NULL;
        }
        sheet->rules = r;
        sheet->cap = cap;
    }
    pg_css_rule *rule = &sheet->rules[sheet->count++];
    memset(rule, 0, sizeof *rule);
    return rule;
}

/* 5.4.2: an at-rule runs to ';' or to the end of its {} block; kept whole. */
static void at_rule(pg_css_sheet *sheet, pg_css_lexer *lx, const pg_css_tok *at, closers *c)
{
    size_t start = at->start, end = lx->n;
    int charset = at->vlen == 7 && strncasecmp(lx->s + at->vstart, "charset", 7) == 0;
    pg_css_tok t;
    for (;;) {
        pg_css_next(lx, &t);
        if (t.type == PG_CSS_EOF || (t.type == PG_CSS_SEMI && c->stack.len == 0)) {
            end = lx->pos;
            break;
        }
        if (t.type == PG_CSS_LBRACE && c->stack.len == 0) {
            track(c, &t);
            skip_block(lx, c);
            end = lx->pos;
            break;
        }
        track(c, &t);
    }
    c->stack.len = 0;
    if (charset)
        return;
    pg_css_rule *rule = new_rule(sheet);
    if (rule != NULL && (rule->kept = dup_range(lx->s + start, end - start)) == NULL)
        sheet->err = PIGEON_ERR_NOMEM;
}

/* 5.4.3: a qualified rule: prelude up to '{', then the declarations of its block. */
static void qualified_rule(pg_css_sheet *sheet, pg_css_lexer *lx, const pg_css_tok *first,
                           closers *c)
{
    size_t pstart = first->start, pend;
    pg_css_tok t = *first;
    for (;;) {
        if (t.type == PG_CSS_EOF)
            return; /* no block: the rule is dropped */
        if (t.type == PG_CSS_LBRACE && c->stack.len == 0) {
            pend = t.start;
            break;
        }
        track(c, &t);
        pg_css_next(lx, &t);
    }
    track(c, &t);
    size_t bstart = lx->pos, bend = skip_block(lx, c);
    c->stack.len = 0;
    trim(lx->s, &pstart, &pend);
    pg_css_rule *rule = new_rule(sheet);
    if (rule == NULL)
        return;
    if ((rule->prelude = dup_range(lx->s + pstart, pend - pstart)) == NULL ||
        pg_css_decls_parse(&rule->decls, lx->s + bstart, bend - bstart) != PIGEON_OK)
        sheet->err = PIGEON_ERR_NOMEM;
}

pigeon_err pg_css_sheet_parse(pg_css_sheet *sheet, const char *s, size_t n)
{
    pg_css_lexer lx;
    closers c;
    pg_css_tok t;
    pg_buf_init(&c.stack);
    pg_css_lexer_init(&lx, s, n);
    while (sheet->err == PIGEON_OK) {
        pg_css_next(&lx, &t);
        if (t.type == PG_CSS_EOF)
            break;
        if (t.type == PG_CSS_WS || t.type == PG_CSS_CDO || t.type == PG_CSS_CDC)
            continue;
        if (t.type == PG_CSS_AT)
            at_rule(sheet, &lx, &t, &c);
        else
            qualified_rule(sheet, &lx, &t, &c);
        if (c.stack.err != PIGEON_OK)
            sheet->err = c.stack.err;
    }
    pg_buf_cleanup(&c.stack);
    return sheet->err;
}

void pg_css_sheet_cleanup(pg_css_sheet *sheet)
{
    for (size_t i = 0; i < sheet->count; i++) {
        free(sheet->rules[i].prelude);
        free(sheet->rules[i].kept);
        pg_css_decls_cleanup(&sheet->rules[i].decls);
    }
    free(sheet->rules);
    memset(sheet, 0, sizeof *sheet);
}

/* ---- declarations (5.4.4, 5.4.6) ---- */

pigeon_err pg_css_decls_add(pg_css_decls *decls, const char *prop, const char *value, int important)
{
    if (decls->count == decls->cap) {
        size_t cap = decls->cap ? decls->cap * 2 : 8;
        pg_css_decl *d = realloc(decls->items, cap * sizeof *d);
        if (d == NULL)
            return PIGEON_ERR_NOMEM;
        decls->items = d;
        decls->cap = cap;
    }
    pg_css_decl *d = &decls->items[decls->count];
    d->prop = strdup(prop);
    d->value = strdup(value);
    d->important = important;
    if (d->prop == NULL || d->value == NULL) {
        free(d->prop);
        free(d->value);
        return PIGEON_ERR_NOMEM;
    }
    decls->count++;
    return PIGEON_OK;
}

void pg_css_decls_cleanup(pg_css_decls *decls)
{
    for (size_t i = 0; i < decls->count; i++) {
        free(decls->items[i].prop);
        free(decls->items[i].value);
    }
    free(decls->items);
    memset(decls, 0, sizeof *decls);
}

/* The tokens of one declaration, collected to find !important at its end. */
typedef struct toks {
    pg_css_tok *items; /* the tokens after the colon */
    size_t count;      /* how many */
    size_t cap;        /* allocated */
} toks;

static int toks_push(toks *v, const pg_css_tok *t)
{
    if (v->count == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        pg_css_tok *p = realloc(v->items, cap * sizeof *p);
        if (p == NULL)
            return -1;
        v->items = p;
        v->cap = cap;
    }
    v->items[v->count++] = *t;
    return 0;
}

/* The index past the last non-whitespace token of v[0, n). */
static size_t last_solid(const toks *v, size_t n)
{
    while (n > 0 && v->items[n - 1].type == PG_CSS_WS)
        n--;
    return n;
}

/* Writes the value tokens v[0, n) as text: whitespace collapsed to one space, and a space
 * where a comment separated two tokens (so that 1px/ ** /solid keeps two tokens). */
static void value_text(const char *s, const toks *v, size_t n, pg_buf *out)
{
    size_t i = 0;
    while (i < n && v->items[i].type == PG_CSS_WS)
        i++;
    size_t base = out->len;
    for (size_t prev_end = 0; i < n; i++) {
        const pg_css_tok *t = &v->items[i];
        if (t->type == PG_CSS_WS) {
            pg_buf_putc(out, ' ');
        } else {
            if (out->len > base && t->start != prev_end && out->data[out->len - 1] != ' ')
                pg_buf_putc(out, ' ');
            pg_buf_append(out, s + t->start, t->len);
        }
        prev_end = t->start + t->len;
    }
}

/* One declaration from the name token and the collected tokens after it. */
static pigeon_err declaration(pg_css_decls *decls, const char *s, const pg_css_tok *name,
                              const toks *v, pg_buf *scratch)
{
    size_t i = 0;
    while (i < v->count && v->items[i].type == PG_CSS_WS)
        i++;
    if (i == v->count || v->items[i].type != PG_CSS_COLON)
        return PIGEON_OK; /* 5.4.6: no colon, not a declaration */
    toks rest = {v->items + i + 1, v->count - i - 1, 0};
    size_t n = last_solid(&rest, rest.count);
    int important = 0;
    if (n >= 2 && rest.items[n - 1].type == PG_CSS_IDENT && rest.items[n - 1].vlen == 9 &&
        strncasecmp(s + rest.items[n - 1].vstart, "important", 9) == 0) {
        size_t m = last_solid(&rest, n - 1);
        if (m >= 1 && rest.items[m - 1].type == PG_CSS_DELIM && rest.items[m - 1].delim == '!') {
            important = 1;
            n = last_solid(&rest, m - 1);
        }
    }
    if (n == 0)
        return PIGEON_OK; /* an empty value is invalid */
    pg_buf_reset(scratch);
    pg_css_unescape(s + name->vstart, name->vlen, scratch);
    int custom = scratch->len > 2 && scratch->data[0] == '-' && scratch->data[1] == '-';
    for (size_t k = 0; !custom && k < scratch->len; k++)
        if (scratch->data[k] >= 'A' && scratch->data[k] <= 'Z')
            scratch->data[k] = (char)(scratch->data[k] | 0x20);
    size_t name_len = scratch->len;
    pg_buf_putc(scratch, '\0');
    value_text(s, &rest, n, scratch);
    if (scratch->err != PIGEON_OK)
        return scratch->err;
    return pg_css_decls_add(decls, scratch->data, scratch->data + name_len + 1, important);
}

static int css_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* An unquoted url( at s[i] (after the parenthesis): the URL token runs to ')'. Returns the
 * index after it, or 0 when it holds anything the plain copy would not keep as written. */
static size_t plain_url(const char *s, size_t n, size_t i)
{
    for (; i < n && s[i] != ')'; i++)
        if (css_ws(s[i]) || s[i] == '(' || s[i] == '"' || s[i] == '\'' || s[i] == '\\')
            return 0;
    return i < n ? i + 1 : 0;
}

/* The value s[vs, ve) of a plain declaration into out: whitespace runs as one space, ends
 * trimmed, a final !important taken off. Returns the important flag. */
static int plain_value(const char *s, size_t vs, size_t ve, pg_buf *out)
{
    int important = 0;
    while (ve > vs && css_ws(s[ve - 1]))
        ve--;
    if (ve - vs >= 9 && strncasecmp(s + ve - 9, "important", 9) == 0 &&
        (ve - 9 == vs || !name_char(s[ve - 10]))) {
        size_t e = ve - 9;
        while (e > vs && css_ws(s[e - 1]))
            e--;
        if (e > vs && s[e - 1] == '!') {
            important = 1;
            ve = e - 1;
            while (ve > vs && css_ws(s[ve - 1]))
                ve--;
        }
    }
    while (vs < ve && css_ws(s[vs]))
        vs++;
    for (size_t i = vs; i < ve; i++) {
        if (!css_ws(s[i]))
            pg_buf_putc(out, s[i]);
        else if (!css_ws(s[i - 1]))
            pg_buf_putc(out, ' ');
    }
    return important;
}

/* Style attributes as tools write them (name: value; with no comment, escape, string,
 * block or non-ASCII byte) parsed without the tokenizer, into the same declarations as
 * the token path below. Returns 1, having added nothing, for anything else. */
static int plain_decls(pg_css_decls *decls, const char *s, size_t n, pg_buf *scratch,
                       pigeon_err *err)
{
    size_t base = decls->count, i = 0;
    *err = PIGEON_OK;
    while (i < n) {
        while (i < n && css_ws(s[i]))
            i++;
        if (i == n)
            break;
        if (s[i] == ';') {
            i++;
            continue;
        }
        size_t ns = i;
        char c = s[i], d = i + 1 < n ? s[i + 1] : '\0';
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (c == '-' && (((d | 0x20) >= 'a' && (d | 0x20) <= 'z') || d == '_' || d == '-'))))
            goto give_up; /* not an identifier: the token path skips it */
        while (i < n && name_char(s[i]))
            i++;
        size_t ne = i;
        while (i < n && css_ws(s[i]))
            i++;
        if (i == n || s[i] != ':')
            goto give_up;
        size_t vs = ++i;
        for (int depth = 0; i < n && !(s[i] == ';' && depth == 0); i++) {
            unsigned char u = (unsigned char)s[i];
            if (u == '(') {
                if (i >= vs + 3 && strncasecmp(s + i - 3, "url", 3) == 0 &&
                    (i == vs + 3 || !name_char(s[i - 4])) && i + 1 < n && s[i + 1] != '"' &&
                    s[i + 1] != '\'') {
                    size_t e = plain_url(s, n, i + 1);
                    if (e == 0)
                        goto give_up;
                    i = e - 1;
                    continue;
                }
                depth++;
            } else if (u == ')') {
                depth -= depth > 0;
            } else if (u >= 0x7f || (u < 0x20 && !css_ws((char)u)) || u == '"' || u == '\'' ||
                       u == '\\' || u == '{' || u == '}' || u == '[' || u == ']' || u == '<' ||
                       u == '>' || (u == '/' && i + 1 < n && s[i + 1] == '*')) {
                goto give_up;
            }
        }
        pg_buf_reset(scratch);
        int custom = ne - ns > 2 && s[ns] == '-' && s[ns + 1] == '-';
        for (size_t k = ns; k < ne; k++)
            pg_buf_putc(scratch,
                        (char)(!custom && s[k] >= 'A' && s[k] <= 'Z' ? s[k] | 0x20 : s[k]));
        pg_buf_putc(scratch, '\0');
        size_t vat = scratch->len;
        int important = plain_value(s, vs, i, scratch);
        if (scratch->err != PIGEON_OK) {
            *err = scratch->err;
            return 0;
        }
        if (scratch->len == vat)
            continue; /* an empty value is invalid */
        pg_buf_putc(scratch, '\0');
        if ((*err = pg_css_decls_add(decls, scratch->data, scratch->data + vat, important)) !=
            PIGEON_OK)
            return 0;
    }
    return 0;
give_up:
    while (decls->count > base) {
        decls->count--;
        free(decls->items[decls->count].prop);
        free(decls->items[decls->count].value);
    }
    return 1;
}

pigeon_err pg_css_decls_parse(pg_css_decls *decls, const char *s, size_t n)
{
    pg_buf scratch;
    pigeon_err err = PIGEON_OK;
    pg_buf_init(&scratch);
    int rc = plain_decls(decls, s, n, &scratch, &err);
    pg_buf_cleanup(&scratch);
    return rc == 0 ? err : pg_css_decls_parse_tokens(decls, s, n);
}

pigeon_err pg_css_decls_parse_tokens(pg_css_decls *decls, const char *s, size_t n)
{
    pg_css_lexer lx;
    pg_css_tok t, name = {0}; /* set when in_decl is; zeroed for the compiler's sake */
    toks v = {NULL, 0, 0};
    pg_buf scratch;
    pigeon_err err = PIGEON_OK;
    pg_buf_init(&scratch);
    pg_css_lexer_init(&lx, s, n);
    for (int in_decl = 0, junk = 0, depth = 0;;) {
        pg_css_next(&lx, &t);
        int end = t.type == PG_CSS_EOF || (t.type == PG_CSS_SEMI && depth == 0);
        if (end) {
            if (in_decl && !junk && (err = declaration(decls, s, &name, &v, &scratch)) != 0)
                break;
            in_decl = junk = 0;
            v.count = 0;
            if (t.type == PG_CSS_EOF)
                break;
            continue;
        }
        if (is_open(t.type))
            depth++;
        else if ((t.type == PG_CSS_RPAREN || t.type == PG_CSS_RBRACKET ||
                  t.type == PG_CSS_RBRACE) &&
                 depth > 0)
            depth--;
        if (!in_decl && !junk) {
            if (t.type == PG_CSS_WS)
                continue;
            if (t.type == PG_CSS_IDENT) {
                in_decl = 1;
                name = t;
                continue;
            }
            junk = 1; /* 5.4.4: anything else is skipped to the next ';' */
            continue;
        }
        if (in_decl && toks_push(&v, &t) != 0) {
            err = PIGEON_ERR_NOMEM;
            break;
        }
    }
    free(v.items);
    pg_buf_cleanup(&scratch);
    return err;
}
