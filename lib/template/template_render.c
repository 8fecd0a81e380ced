/*
 * template_render.c - renders a compiled Mustache template against a context stack.
 *
 * Name resolution follows the Mustache specification: "." is the top of the stack; a
 * name's first part is looked up from the top of the stack down (in objects only), and
 * each further dotted part inside the value found, with no second search down the stack
 * ("broken chains" are missing). Values are written once and never read as templates.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "template/template_int.h"
#include "template/vars.h"
#include "util/buf.h"

/* Bounds of one render: sections over lists multiply (a list of 2 in 64 nested sections
 * is 2^64 passes), so the work and the output are capped rather than trusted. */
#define RENDER_STEPS_MAX  20000000ul
#define RENDER_OUTPUT_MAX ((size_t)64 << 20)

/* One render in progress. */
typedef struct render {
    const pigeon_template *t;   /* what is rendered */
    const pigeon_vars **stack;  /* the context stack, bottom first */
    size_t depth;               /* entries in use */
    pigeon_template_mode mode;  /* how values are written */
    unsigned flags;             /* PIGEON_TEMPLATE_ALLOW_MISSING */
    pg_buf out;                 /* the result */
    unsigned long steps;        /* nodes visited so far */
    pigeon_template_error *err; /* where to report */
} render;

static pigeon_err render_range(render *r, size_t from, size_t to);

const pigeon_vars *pg_template_resolve(const pigeon_vars *const *stack, size_t depth,
                                       const char *name, size_t len)
{
    if (len == 1 && name[0] == '.')
        return depth ? stack[depth - 1] : NULL;
    const char *dot = memchr(name, '.', len);
    size_t part = dot ? (size_t)(dot - name) : len;
    const pigeon_vars *v = NULL;
    for (size_t i = depth; i-- > 0 && v == NULL;)
        v = pg_vars_lookup(stack[i], name, part);
    while (v != NULL && dot != NULL) {
        name += part + 1;
        len -= part + 1;
        dot = memchr(name, '.', len);
        part = dot ? (size_t)(dot - name) : len;
        v = pg_vars_lookup(v, name, part);
    }
    return v;
}

/* The value of a name, or NULL if missing. */
static const pigeon_vars *resolve(const render *r, const char *name, size_t len)
{
    return pg_template_resolve(r->stack, r->depth, name, len);
}

static pigeon_err put_html(pg_buf *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        pg_buf_append(b, s + run, i - run);
        pg_buf_puts(b, rep);
        run = i + 1;
    }
    return pg_buf_append(b, s + run, n - run);
}

/* RFC 3986 2.3: unreserved characters stay, everything else is %XX. */
static pigeon_err put_url(pg_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            pg_buf_putc(b, (char)c);
        } else {
            char enc[3] = {'%', hex[c >> 4], hex[c & 15]};
            pg_buf_append(b, enc, 3);
        }
    }
    return b->err;
}

static pigeon_err fail(render *r, const pg_node *n, pigeon_err e, const char *fmt)
{
    pg_template_fail(r->err, n->line, r->t->src + n->off, n->len, fmt);
    return e;
}

static pigeon_err put_value(render *r, const pg_node *n)
{
    const pigeon_vars *v = resolve(r, r->t->src + n->off, n->len);
    if (v == NULL) {
        if (r->flags & PIGEON_TEMPLATE_ALLOW_MISSING)
            return PIGEON_OK;
        return fail(r, n, PIGEON_ERR_INVALID, "missing variable {{%s}} at line %u");
    }
    size_t len;
    const char *s = pigeon_vars_text(v, &len);
    if (s == NULL)
        return fail(r, n, PIGEON_ERR_INVALID,
                    "{{%s}} at line %u is a list or an object, not a value to write");
    /* In a URL, {{x}} percent-encodes a line break; only a raw value could inject one. */
    int guarded = r->mode == PIGEON_TEMPLATE_HEADER ||
                  (r->mode == PIGEON_TEMPLATE_URL && n->kind == PG_NODE_RAW);
    if (guarded && (memchr(s, '\r', len) || memchr(s, '\n', len) || memchr(s, '\0', len)))
        return fail(r, n, PIGEON_ERR_HEADER,
                    "the value of {{%s}} (line %u) has a line break, refused in a header");
    if (n->kind == PG_NODE_VAR && r->mode == PIGEON_TEMPLATE_HTML)
        return put_html(&r->out, s, len);
    if (n->kind == PG_NODE_VAR && r->mode == PIGEON_TEMPLATE_URL)
        return put_url(&r->out, s, len);
    return pg_buf_append(&r->out, s, len);
}

/* Renders the body of the section at i with v pushed on the stack. */
static pigeon_err with_context(render *r, size_t i, const pigeon_vars *v)
{
    r->stack[r->depth++] = v;
    pigeon_err e = render_range(r, i + 1, r->t->nodes[i].close);
    r->depth--;
    return e;
}

static pigeon_err section(render *r, size_t i)
{
    const pg_node *n = &r->t->nodes[i];
    const pigeon_vars *v = resolve(r, r->t->src + n->off, n->len);
    int truthy = pg_vars_truthy(v);
    r->steps += r->depth; /* the lookup walked the stack: count it in the budget */
    if (n->kind == PG_NODE_INVERTED)
        return truthy ? PIGEON_OK : render_range(r, i + 1, n->close);
    if (!truthy)
        return PIGEON_OK;
    if (v->type != PIGEON_VAR_LIST)
        return with_context(r, i, v);
    for (size_t k = 0; k < v->count; k++) {
        pigeon_err e = with_context(r, i, v->members[k].value);
        if (e != PIGEON_OK)
            return e;
    }
    return PIGEON_OK;
}

static pigeon_err render_range(render *r, size_t from, size_t to)
{
    const pigeon_template *t = r->t;
    for (size_t i = from; i < to; i++) {
        const pg_node *n = &t->nodes[i];
        pigeon_err e = PIGEON_OK;
        if (++r->steps > RENDER_STEPS_MAX)
            return fail(r, n, PIGEON_ERR_TOO_LARGE,
                        "the expansion is too large (%s at line %u: sections over lists "
                        "nested too deeply?)");
        switch (n->kind) {
        case PG_NODE_TEXT:
            e = pg_buf_append(&r->out, t->src + n->off, n->len);
            break;
        case PG_NODE_VAR:
        case PG_NODE_RAW:
            e = put_value(r, n);
            break;
        case PG_NODE_SECTION:
        case PG_NODE_INVERTED:
            e = section(r, i);
            i = n->close;
            break;
        case PG_NODE_CLOSE:
            break;
        }
        if (r->out.err == PIGEON_ERR_TOO_LARGE && (r->err == NULL || !r->err->message[0]))
            return fail(r, n, PIGEON_ERR_TOO_LARGE, "the expansion is over 64 MiB (%s at line %u)");
        if (e != PIGEON_OK)
            return e;
        if (r->out.err != PIGEON_OK)
            return r->out.err;
    }
    return PIGEON_OK;
}

pigeon_err pigeon_template_render(const pigeon_template *t, const pigeon_vars *const *scopes,
                                  size_t nscopes, pigeon_template_mode mode, unsigned flags,
                                  char **out, size_t *len, pigeon_template_error *err)
{
    render r;
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (t == NULL || out == NULL || (scopes == NULL && nscopes > 0) || nscopes > 1024)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (len != NULL)
        *len = 0;
    memset(&r, 0, sizeof r);
    r.t = t;
    r.mode = mode;
    r.flags = flags;
    r.err = err;
    pg_buf_init(&r.out);
    r.out.max = RENDER_OUTPUT_MAX;
    if ((r.stack = malloc((nscopes + PG_TEMPLATE_MAX_DEPTH + 1) * sizeof *r.stack)) == NULL)
        return PIGEON_ERR_NOMEM;
    for (size_t i = 0; i < nscopes; i++)
        if (scopes[i] != NULL)
            r.stack[r.depth++] = scopes[i];
    pigeon_err e = render_range(&r, 0, t->count);
    if (e == PIGEON_OK)
        e = pg_buf_reserve(&r.out, 1); /* an empty result is "" rather than NULL */
    free(r.stack);
    if (e != PIGEON_OK) {
        pg_buf_cleanup(&r.out);
        return e;
    }
    size_t n = 0;
    *out = pg_buf_detach(&r.out, &n);
    if (len != NULL)
        *len = n;
    return PIGEON_OK;
}
