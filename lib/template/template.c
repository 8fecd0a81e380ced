/*
 * template.c - the Mustache compiler: source text to a flat list of nodes.
 *
 * Follows the Mustache specification (mustache/spec, version 1.x): tags {{name}},
 * {{{name}}}, {{&name}}, {{#name}}, {{^name}}, {{/name}}, {{!comment}}, {{=<% %>=}}, and
 * its whitespace rule: a section, inverted, close, comment or delimiter tag alone on its
 * line (only spaces and tabs beside it) removes the whole line, newline included, so
 * that templates can be indented without leaving blank lines. Partials ({{>name}}) are
 * refused: a template here is one file.
 *
 * Sections are matched at compile time (each open node knows its close), so rendering is
 * a walk with no parsing, and a template compiled once renders every row of a merge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/template_int.h"
#include "util/utf8.h"

/* The compiler's state. */
typedef struct compiler {
    pigeon_template *t;                    /* what is being built */
    char open[PG_TEMPLATE_DELIM_MAX + 1];  /* the opening delimiter */
    char close[PG_TEMPLATE_DELIM_MAX + 1]; /* the closing delimiter */
    size_t open_len, close_len;            /* their lengths */
    size_t stack[PG_TEMPLATE_MAX_DEPTH];   /* indexes of the open sections */
    size_t depth;                          /* number of open sections */
    pigeon_template_error *err;            /* where to report */
} compiler;

/* A tag taken apart. */
typedef struct tag {
    char sigil;        /* '#', '^', '/', '!', '{', '&', '=', '>' or 0 for a variable */
    size_t start, end; /* the whole tag in the source: [start, end) */
    size_t name_off;   /* the name (trimmed) */
    size_t name_len;
    unsigned line; /* its line */
} tag;

void pg_template_fail(pigeon_template_error *err, unsigned line, const char *name, size_t n,
                      const char *fmt)
{
    if (err == NULL)
        return;
    err->line = line;
    if (n >= sizeof err->name)
        n = sizeof err->name - 1;
    memcpy(err->name, name ? name : "", name ? n : 0);
    err->name[name ? n : 0] = '\0';
    /* fmt has one %s for the name and one %u for the line, in that order. */
    snprintf(err->message, sizeof err->message, fmt, err->name, line);
}

static pigeon_err add_node(pigeon_template *t, pg_node_kind kind, size_t off, size_t len,
                           unsigned line)
{
    if (kind == PG_NODE_TEXT && len == 0)
        return PIGEON_OK;
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        pg_node *n = realloc(t->nodes, cap * sizeof *n);
        if (n == NULL)
            return PIGEON_ERR_NOMEM;
        t->nodes = n;
        t->cap = cap;
    }
    t->nodes[t->count++] = (pg_node){kind, off, len, 0, line};
    return PIGEON_OK;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int is_space(char c)
{
    return is_blank(c) || c == '\r' || c == '\n';
}

static size_t find(const char *s, size_t len, size_t from, const char *needle, size_t n)
{
    for (size_t i = from; i + n <= len; i++)
        if (s[i] == needle[0] && memcmp(s + i, needle, n) == 0)
            return i;
    return (size_t)-1;
}

static unsigned count_lines(const char *s, size_t from, size_t to)
{
    unsigned n = 0;
    for (size_t i = from; i < to; i++)
        n += s[i] == '\n';
    return n;
}

/* Reads the tag whose opening delimiter is at at; fills tg. */
static pigeon_err read_tag(compiler *c, size_t at, unsigned line, tag *tg)
{
    const char *s = c->t->src;
    size_t len = c->t->src_len, p = at + c->open_len;
    memset(tg, 0, sizeof *tg);
    tg->start = at;
    tg->line = line;
    if (p < len && strchr("#^/!{&=>", s[p]) != NULL && s[p] != '\0')
        tg->sigil = s[p++];
    /* {{{x}}} ends with "}" + the closing delimiter, {{=a b=}} with "=" + it. */
    char end[PG_TEMPLATE_DELIM_MAX + 2];
    size_t end_len = 0;
    if (tg->sigil == '{' || tg->sigil == '=')
        end[end_len++] = tg->sigil == '{' ? '}' : '=';
    memcpy(end + end_len, c->close, c->close_len);
    end_len += c->close_len;
    size_t q = find(s, len, p, end, end_len);
    if (q == (size_t)-1) {
        pg_template_fail(c->err, line, NULL, 0, "unclosed tag%s at line %u");
        return PIGEON_ERR_INVALID;
    }
    tg->end = q + end_len;
    while (p < q && is_space(s[p]))
        p++;
    while (q > p && is_space(s[q - 1]))
        q--;
    tg->name_off = p;
    tg->name_len = q - p;
    return PIGEON_OK;
}

/* {{=<% %>=}}: two delimiters separated by spaces, neither with spaces or '='. */
static pigeon_err set_delimiters(compiler *c, const tag *tg)
{
    const char *s = c->t->src + tg->name_off;
    size_t n = tg->name_len, a = 0;
    while (a < n && !is_space(s[a]))
        a++;
    size_t b = a;
    while (b < n && is_space(s[b]))
        b++;
    size_t blen = n - b;
    if (a == 0 || blen == 0 || a > PG_TEMPLATE_DELIM_MAX || blen > PG_TEMPLATE_DELIM_MAX ||
        memchr(s, '=', a) != NULL || memchr(s + b, '=', blen) != NULL ||
        find(s, n, b, " ", 1) != (size_t)-1 || find(s, n, b, "\t", 1) != (size_t)-1) {
        pg_template_fail(c->err, tg->line, s, n, "invalid delimiters \"%s\" at line %u");
        return PIGEON_ERR_INVALID;
    }
    memcpy(c->open, s, a);
    c->open[a] = '\0';
    c->open_len = a;
    memcpy(c->close, s + b, blen);
    c->close[blen] = '\0';
    c->close_len = blen;
    return PIGEON_OK;
}

/* Whether the tag stands alone on its line; if so, [*line_start, *line_end) is the
 * whole line including its newline. */
static int standalone(const compiler *c, const tag *tg, size_t floor, size_t *line_start,
                      size_t *line_end)
{
    const char *s = c->t->src;
    size_t len = c->t->src_len, b = tg->start, e = tg->end;
    if (tg->sigil == 0 || tg->sigil == '{' || tg->sigil == '&')
        return 0;
    while (b > floor && is_blank(s[b - 1]))
        b--;
    if (!(b == 0 || s[b - 1] == '\n'))
        return 0;
    if (b < floor)
        return 0;
    while (e < len && is_blank(s[e]))
        e++;
    if (e < len && s[e] == '\r' && e + 1 < len && s[e + 1] == '\n')
        e += 2;
    else if (e < len && s[e] == '\n')
        e++;
    else if (e != len)
        return 0;
    *line_start = b;
    *line_end = e;
    return 1;
}

/* Adds the node for a tag (sections matched here). */
static pigeon_err add_tag(compiler *c, const tag *tg)
{
    pigeon_template *t = c->t;
    const char *name = t->src + tg->name_off;
    if (tg->sigil == '!')
        return PIGEON_OK;
    if (tg->sigil == '=')
        return set_delimiters(c, tg);
    if (tg->sigil == '>') {
        pg_template_fail(c->err, tg->line, name, tg->name_len,
                         "partial {{>%s}} at line %u: partials are not supported");
        return PIGEON_ERR_INVALID;
    }
    if (tg->name_len == 0) {
        pg_template_fail(c->err, tg->line, NULL, 0, "empty tag name%s at line %u");
        return PIGEON_ERR_INVALID;
    }
    t->has_tags = 1;
    pg_node_kind kind = tg->sigil == '#'   ? PG_NODE_SECTION
                        : tg->sigil == '^' ? PG_NODE_INVERTED
                        : tg->sigil == '/' ? PG_NODE_CLOSE
                        : tg->sigil == 0   ? PG_NODE_VAR
                                           : PG_NODE_RAW;
    if (kind == PG_NODE_CLOSE) {
        const pg_node *open = c->depth ? &t->nodes[c->stack[c->depth - 1]] : NULL;
        if (open == NULL || open->len != tg->name_len ||
            memcmp(t->src + open->off, name, tg->name_len) != 0) {
            pg_template_fail(c->err, tg->line, name, tg->name_len,
                             "{{/%s}} at line %u closes no open section of that name");
            return PIGEON_ERR_INVALID;
        }
        t->nodes[c->stack[--c->depth]].close = t->count;
    } else if (kind == PG_NODE_SECTION || kind == PG_NODE_INVERTED) {
        if (c->depth == PG_TEMPLATE_MAX_DEPTH) {
            pg_template_fail(c->err, tg->line, name, tg->name_len,
                             "section %s at line %u nested too deeply");
            return PIGEON_ERR_INVALID;
        }
        c->stack[c->depth++] = t->count;
    }
    return add_node(t, kind, tg->name_off, tg->name_len, tg->line);
}

static pigeon_err compile(compiler *c)
{
    pigeon_template *t = c->t;
    size_t pos = 0;
    unsigned line = 1;
    pigeon_err e;
    for (;;) {
        size_t at = find(t->src, t->src_len, pos, c->open, c->open_len);
        if (at == (size_t)-1)
            break;
        tag tg;
        unsigned tag_line = line + count_lines(t->src, pos, at);
        if ((e = read_tag(c, at, tag_line, &tg)) != PIGEON_OK)
            return e;
        size_t text_end = at, next = tg.end;
        size_t ls, le;
        if (standalone(c, &tg, pos, &ls, &le)) {
            text_end = ls;
            next = le;
        }
        if ((e = add_node(t, PG_NODE_TEXT, pos, text_end - pos, line)) != PIGEON_OK ||
            (e = add_tag(c, &tg)) != PIGEON_OK)
            return e;
        line = tag_line + count_lines(t->src, at, next);
        pos = next;
    }
    if (c->depth > 0) {
        const pg_node *open = &t->nodes[c->stack[c->depth - 1]];
        pg_template_fail(c->err, open->line, t->src + open->off, open->len,
                         "section {{#%s}} opened at line %u is never closed");
        return PIGEON_ERR_INVALID;
    }
    return add_node(t, PG_NODE_TEXT, pos, t->src_len - pos, line);
}

pigeon_err pigeon_template_compile(const char *src, size_t len, pigeon_template **out,
                                   pigeon_template_error *err)
{
    compiler c;
    pigeon_err e = PIGEON_ERR_NOMEM;
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (out == NULL || (src == NULL && len > 0))
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (!pg_utf8_valid(src, len)) {
        pg_template_fail(err, 0, NULL, 0, "the template is not valid UTF-8%s%u");
        if (err != NULL)
            snprintf(err->message, sizeof err->message, "the template is not valid UTF-8");
        return PIGEON_ERR_CHARSET;
    }
    memset(&c, 0, sizeof c);
    c.err = err;
    memcpy(c.open, "{{", 3);
    memcpy(c.close, "}}", 3);
    c.open_len = c.close_len = 2;
    if ((c.t = calloc(1, sizeof *c.t)) == NULL || (c.t->src = malloc(len + 1)) == NULL)
        goto fail;
    if (len > 0)
        memcpy(c.t->src, src, len);
    c.t->src[len] = '\0';
    c.t->src_len = len;
    if ((e = compile(&c)) != PIGEON_OK)
        goto fail;
    *out = c.t;
    return PIGEON_OK;
fail:
    pigeon_template_free(c.t);
    return e;
}

void pigeon_template_free(pigeon_template *t)
{
    if (t == NULL)
        return;
    free(t->nodes);
    free(t->src);
    free(t);
}

int pigeon_template_is_static(const pigeon_template *t)
{
    return t != NULL && !t->has_tags;
}
