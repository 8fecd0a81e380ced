/*
 * html_serialize.c - writes the document back as HTML (WHATWG HTML, 13.3 "Serializing
 * HTML fragments"), with the attributes the passes set.
 *
 * Iterative: a heap stack of open elements, so depth costs memory, not C stack. Text is
 * escaped (&, <, >, U+00A0) except inside raw text elements (style, script...);
 * attribute values escape &, ", <, >, U+00A0. Void elements get no end tag. The document
 * type keeps its public and system identifiers, since mail templates rely on them for
 * Outlook's rendering mode. The CSS that stays goes in one <style> at the end of <head>.
 */
#include <stdlib.h>
#include <string.h>

#include "html/html_int.h"

static int is_element(const GumboNode *n)
{
    return n->type == GUMBO_NODE_ELEMENT || n->type == GUMBO_NODE_TEMPLATE;
}

static int is_void(GumboTag t)
{
    switch (t) {
    case GUMBO_TAG_AREA:
    case GUMBO_TAG_BASE:
    case GUMBO_TAG_BASEFONT:
    case GUMBO_TAG_BGSOUND:
    case GUMBO_TAG_BR:
    case GUMBO_TAG_COL:
    case GUMBO_TAG_EMBED:
    case GUMBO_TAG_FRAME:
    case GUMBO_TAG_HR:
    case GUMBO_TAG_IMG:
    case GUMBO_TAG_INPUT:
    case GUMBO_TAG_KEYGEN:
    case GUMBO_TAG_LINK:
    case GUMBO_TAG_META:
    case GUMBO_TAG_PARAM:
    case GUMBO_TAG_SOURCE:
    case GUMBO_TAG_TRACK:
    case GUMBO_TAG_WBR:
        return 1;
    default:
        return 0;
    }
}

static int is_raw_text(GumboTag t)
{
    switch (t) {
    case GUMBO_TAG_STYLE:
    case GUMBO_TAG_SCRIPT:
    case GUMBO_TAG_XMP:
    case GUMBO_TAG_IFRAME:
    case GUMBO_TAG_NOEMBED:
    case GUMBO_TAG_NOFRAMES:
    case GUMBO_TAG_PLAINTEXT:
        return 1;
    default:
        return 0;
    }
}

/* Escapes as the HTML fragment serialization algorithm does (WHATWG HTML 13.3): &, <, >,
 * U+00A0, and " in attributes. */
void pg_html_escape(pg_buf *out, const char *s, size_t n, int attr)
{
    /* The bytes that may need a reference: the runs between them are copied whole. */
    static const unsigned char special[256] = {
        ['&'] = 1, ['<'] = 1, ['>'] = 1, ['"'] = 2, [0xC2] = 1};
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        while (i < n && (special[(unsigned char)s[i]] & (attr ? 3 : 1)) == 0)
            i++;
        if (i == n)
            break;
        const char *rep = NULL;
        size_t skip = 1;
        unsigned char c = (unsigned char)s[i];
        if (c == '&')
            rep = "&amp;";
        else if (c == '<')
            rep = "&lt;";
        else if (c == '>')
            rep = "&gt;";
        else if (c == '"' && attr)
            rep = "&quot;";
        else if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0xA0) {
            rep = "&nbsp;";
            skip = 2;
        }
        if (rep == NULL)
            continue;
        pg_buf_append(out, s + start, i - start);
        pg_buf_puts(out, rep);
        start = i + skip;
        i += skip - 1;
    }
    pg_buf_append(out, s + start, n - start);
}

static void tag_name(pg_buf *out, const pg_html_el *el)
{
    const GumboElement *e = &el->node->v.element;
    if (e->tag_namespace == GUMBO_NAMESPACE_SVG) {
        GumboStringPiece piece = {el->tag, strlen(el->tag)};
        const char *fixed = gumbo_normalize_svg_tagname(&piece);
        if (fixed != NULL) {
            pg_buf_puts(out, fixed);
            return;
        }
    }
    pg_buf_puts(out, el->tag);
}

static void attribute(pg_buf *out, const char *name, size_t nlen, const char *value)
{
    pg_buf_putc(out, ' ');
    pg_buf_append(out, name, nlen);
    pg_buf_puts(out, "=\"");
    pg_html_escape(out, value, strlen(value), 1);
    pg_buf_putc(out, '"');
}

static int slot_of(const char *name)
{
    for (int k = 0; k < PG_SLOT_COUNT; k++)
        if (pg_html_slot_names[k][0] == name[0] && strcmp(pg_html_slot_names[k], name) == 0)
            return k;
    return -1;
}

static void start_tag(pg_buf *out, const pg_html_el *el)
{
    const GumboVector *attrs = &el->node->v.element.attributes;
    int written[PG_SLOT_COUNT] = {0};
    pg_buf_putc(out, '<');
    tag_name(out, el);
    for (unsigned i = 0; i < attrs->length; i++) {
        const GumboAttribute *a = attrs->data[i];
        int slot = a->attr_namespace == GUMBO_ATTR_NAMESPACE_NONE ? slot_of(a->name) : -1;
        const char *value = a->value;
        if (slot >= 0 && el->set[slot] != NULL) {
            value = el->set[slot];
            written[slot] = 1;
        }
        if (a->attr_namespace != GUMBO_ATTR_NAMESPACE_NONE && a->original_name.length > 0)
            attribute(out, a->original_name.data, a->original_name.length, value);
        else
            attribute(out, a->name, strlen(a->name), value);
    }
    for (int k = 0; k < PG_SLOT_COUNT; k++)
        if (el->set[k] != NULL && !written[k])
            attribute(out, pg_html_slot_names[k], strlen(pg_html_slot_names[k]), el->set[k]);
    pg_buf_putc(out, '>');
}

static void doctype(pg_buf *out, const GumboDocument *d)
{
    if (!d->has_doctype)
        return;
    pg_buf_printf(out, "<!DOCTYPE %s", d->name[0] ? d->name : "html");
    if (d->public_identifier[0])
        pg_buf_printf(out, " PUBLIC \"%s\"", d->public_identifier);
    if (d->system_identifier[0])
        pg_buf_printf(out, "%s \"%s\"", d->public_identifier[0] ? "" : " SYSTEM",
                      d->system_identifier);
    pg_buf_puts(out, ">\n");
}

/* An open element of the walk. */
typedef struct open_el {
    const GumboNode *node; /* the element (or the document) */
    uint32_t el;           /* its index, PG_NONE for the document */
    unsigned next;         /* next child */
} open_el;

typedef struct stack {
    open_el *items; /* innermost last */
    size_t n;       /* depth */
    size_t cap;     /* allocated */
} stack;

static int push(stack *s, const GumboNode *node, uint32_t el)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        open_el *p = realloc(s->items, cap * sizeof *p);
        if (p == NULL)
            return -1;
        s->items = p;
        s->cap = cap;
    }
    s->items[s->n++] = (open_el){node, el, 0};
    return 0;
}

static void text(pg_buf *out, const GumboNode *node, const GumboNode *parent)
{
    const char *t = node->v.text.text;
    switch (node->type) {
    case GUMBO_NODE_COMMENT:
        pg_buf_puts(out, "<!--");
        pg_buf_puts(out, t);
        pg_buf_puts(out, "-->");
        return;
    case GUMBO_NODE_CDATA:
        pg_buf_puts(out, "<![CDATA[");
        pg_buf_puts(out, t);
        pg_buf_puts(out, "]]>");
        return;
    default:
        if (parent->type != GUMBO_NODE_DOCUMENT && is_raw_text(parent->v.element.tag))
            pg_buf_puts(out, t);
        else
            pg_html_escape(out, t, strlen(t), 0);
    }
}

static void end_tag(const pg_html_doc *doc, pg_buf *out, uint32_t el)
{
    if (el == doc->head && doc->head_style.len > 0) {
        pg_buf_puts(out, "<style type=\"text/css\">\n");
        pg_buf_append(out, doc->head_style.data, doc->head_style.len);
        pg_buf_puts(out, "\n</style>");
    }
    pg_buf_puts(out, "</");
    tag_name(out, &doc->els[el]);
    pg_buf_putc(out, '>');
}

pigeon_err pg_html_serialize(const pg_html_doc *doc, pg_buf *out)
{
    stack s = {NULL, 0, 0};
    uint32_t next_el = 0;
    const GumboNode *root = doc->out->document;
    doctype(out, &root->v.document);
    if (push(&s, root, PG_NONE) != 0)
        return PIGEON_ERR_NOMEM;
    while (s.n > 0 && out->err == PIGEON_OK) {
        open_el *top = &s.items[s.n - 1];
        const GumboVector *kids = top->node->type == GUMBO_NODE_DOCUMENT
                                      ? &top->node->v.document.children
                                      : &top->node->v.element.children;
        if (top->next == kids->length) {
            if (top->el != PG_NONE)
                end_tag(doc, out, top->el);
            s.n--;
            continue;
        }
        const GumboNode *child = kids->data[top->next++];
        if (!is_element(child)) {
            text(out, child, top->node);
            continue;
        }
        uint32_t idx = next_el++;
        const pg_html_el *el = &doc->els[idx];
        if (el->drop)
            continue; /* an inlined <style>: text only inside, no elements to count */
        start_tag(out, el);
        if (is_void(child->v.element.tag))
            continue;
        if (push(&s, child, idx) != 0) {
            free(s.items);
            return PIGEON_ERR_NOMEM;
        }
    }
    free(s.items);
    return out->err;
}
