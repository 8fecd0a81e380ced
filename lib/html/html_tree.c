/*
 * html_tree.c - the document: gumbo's HTML5 parse and a table of its elements.
 *
 * Gumbo (Debian's libgumbo) implements the WHATWG tree construction algorithm, so a mail
 * is read the way a browser reads it (misnested tags, implied <tbody>, unclosed <p>), it
 * has no dependencies, and its parser is iterative. On top of its tree this file lists
 * every element in document order with what selector matching needs in O(1): parent,
 * previous element sibling, and the positions used by :nth-child() and :nth-of-type().
 * The walk keeps its own stack on the heap, so a document nested 100,000 deep costs
 * memory, never C stack.
 */
#include <stdlib.h>
#include <string.h>

#include "html/html_int.h"
#include "lazy/lazy.h"

const char *const pg_html_slot_names[PG_SLOT_COUNT] = {
    "style", "src", "width", "height", "bgcolor", "align", "valign", "background",
};

static const char *tag_name(const GumboNode *node)
{
    const GumboElement *e = &node->v.element;
    if (e->tag != GUMBO_TAG_UNKNOWN)
        return gumbo_normalized_tagname(e->tag);
    return NULL; /* filled from the original text by the caller */
}

/* An unknown tag's name: gumbo keeps only the original text ("<my-tag a=b>"). */
static char *unknown_name(const GumboNode *node)
{
    GumboStringPiece piece = node->v.element.original_tag;
    if (piece.data == NULL)
        return NULL;
    gumbo_tag_from_original_text(&piece);
    char *s = malloc(piece.length + 1);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < piece.length; i++) {
        char c = piece.data[i];
        s[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    }
    s[piece.length] = '\0';
    return s;
}

static int is_element(const GumboNode *n)
{
    return n->type == GUMBO_NODE_ELEMENT || n->type == GUMBO_NODE_TEMPLATE;
}

static pigeon_err add_el(pg_html_doc *doc, size_t *cap, GumboNode *node, uint32_t parent)
{
    if (doc->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 256;
        pg_html_el *els = realloc(doc->els, ncap * sizeof *els);
        if (els == NULL)
            return PIGEON_ERR_NOMEM;
        doc->els = els;
        *cap = ncap;
    }
    pg_html_el *el = &doc->els[doc->count++];
    memset(el, 0, sizeof *el);
    el->node = node;
    el->parent = parent;
    el->prev = PG_NONE;
    el->stamp = PG_NONE;
    el->tag = tag_name(node);
    return PIGEON_OK;
}

/* Fills the sibling positions of the element children kids[0, n) of one parent. Known
 * tags are counted in an array indexed by gumbo's tag enum; unknown ones by a backward
 * scan (only over the run of siblings). */
static void number_children(pg_html_doc *doc, const uint32_t *kids, size_t n, uint32_t *counts)
{
    for (size_t k = 0; k < n; k++) {
        pg_html_el *el = &doc->els[kids[k]];
        el->nth = (uint32_t)k + 1;
        el->nth_last = (uint32_t)(n - k);
        el->prev = k > 0 ? kids[k - 1] : PG_NONE;
        GumboTag tag = el->node->v.element.tag;
        if (tag != GUMBO_TAG_UNKNOWN) {
            el->nth_type = ++counts[tag];
            continue;
        }
        el->nth_type = 1;
        for (size_t j = k; j-- > 0;) {
            if (strcmp(doc->els[kids[j]].tag, el->tag) == 0) {
                el->nth_type = doc->els[kids[j]].nth_type + 1;
                break;
            }
        }
    }
    for (size_t k = 0; k < n; k++) {
        pg_html_el *el = &doc->els[kids[k]];
        GumboTag tag = el->node->v.element.tag;
        if (tag != GUMBO_TAG_UNKNOWN) {
            el->nth_last_type = counts[tag] - el->nth_type + 1;
            continue;
        }
        uint32_t same = el->nth_type;
        for (size_t j = k + 1; j < n; j++)
            same += strcmp(doc->els[kids[j]].tag, el->tag) == 0;
        el->nth_last_type = same - el->nth_type + 1;
    }
    for (size_t k = 0; k < n; k++)
        counts[doc->els[kids[k]].node->v.element.tag] = 0;
}

/* A frame of the walk: a node whose children are being visited. */
typedef struct frame {
    GumboNode *node; /* the element or document */
    uint32_t el;     /* its element index, PG_NONE for the document */
    size_t next;     /* next child to visit */
    size_t kids;     /* where its element children start on the kids stack */
} frame;

typedef struct walk {
    frame *frames;  /* the open nodes, innermost last */
    size_t depth;   /* how many */
    size_t cap;     /* allocated */
    uint32_t *kids; /* element children of the open nodes, in runs */
    size_t nkids;   /* how many */
    size_t kcap;    /* allocated */
} walk;

static int push_frame(walk *w, GumboNode *node, uint32_t el)
{
    if (w->depth == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        frame *f = realloc(w->frames, cap * sizeof *f);
        if (f == NULL)
            return -1;
        w->frames = f;
        w->cap = cap;
    }
    w->frames[w->depth++] = (frame){node, el, 0, w->nkids};
    return 0;
}

static int push_kid(walk *w, uint32_t el)
{
    if (w->nkids == w->kcap) {
        size_t cap = w->kcap ? w->kcap * 2 : 256;
        uint32_t *k = realloc(w->kids, cap * sizeof *k);
        if (k == NULL)
            return -1;
        w->kids = k;
        w->kcap = cap;
    }
    w->kids[w->nkids++] = el;
    return 0;
}

static const GumboVector *children(const GumboNode *node)
{
    return node->type == GUMBO_NODE_DOCUMENT ? &node->v.document.children
                                             : &node->v.element.children;
}

/* Visits the next child of the innermost frame, or closes the frame. */
static pigeon_err step(pg_html_doc *doc, walk *w, size_t *cap, uint32_t *counts)
{
    frame *f = &w->frames[w->depth - 1];
    const GumboVector *kids = children(f->node);
    if (f->next == kids->length) {
        number_children(doc, w->kids + f->kids, w->nkids - f->kids, counts);
        w->nkids = f->kids;
        w->depth--;
        return PIGEON_OK;
    }
    GumboNode *child = kids->data[f->next++];
    if (!is_element(child))
        return PIGEON_OK;
    uint32_t idx = (uint32_t)doc->count;
    if (add_el(doc, cap, child, f->el) != PIGEON_OK || push_kid(w, idx) != 0 ||
        push_frame(w, child, idx) != 0)
        return PIGEON_ERR_NOMEM;
    pg_html_el *el = &doc->els[idx];
    if (el->tag == NULL) {
        char *name = unknown_name(child);
        if (name == NULL)
            return PIGEON_ERR_NOMEM;
        el->tag = name;
        el->own_tag = 1;
    }
    if (child->v.element.tag == GUMBO_TAG_HEAD && doc->head == PG_NONE)
        doc->head = idx;
    return PIGEON_OK;
}

pigeon_err pg_html_doc_parse(pg_html_doc *doc, const char *s, size_t n)
{
    walk w;
    size_t cap = 0;
    uint32_t counts[GUMBO_TAG_UNKNOWN + 1];
    pigeon_err err = PIGEON_OK;
    memset(doc, 0, sizeof *doc);
    memset(&w, 0, sizeof w);
    memset(counts, 0, sizeof counts);
    doc->head = PG_NONE;
    pg_buf_init(&doc->head_style);
    GumboOptions opts = kGumboDefaultOptions;
    opts.max_errors = 0; /* we never read gumbo's error list: don't build it */
    if (n > UINT32_MAX / 2)
        return PIGEON_ERR_TOO_LARGE;
    /* gumbo is loaded by the first document parsed (lib/lazy/lazy.h). */
    if (pg_lazy_gumbo(NULL, 0) != PIGEON_OK)
        return PIGEON_ERR_UNSUPPORTED;
    doc->out = gumbo_parse_with_options(&opts, s, n);
    if (doc->out == NULL)
        return PIGEON_ERR_NOMEM;
    if (push_frame(&w, doc->out->document, PG_NONE) != 0)
        err = PIGEON_ERR_NOMEM;
    while (err == PIGEON_OK && w.depth > 0)
        err = step(doc, &w, &cap, counts);
    free(w.frames);
    free(w.kids);
    if (err != PIGEON_OK)
        pg_html_doc_cleanup(doc);
    return err;
}

void pg_html_doc_cleanup(pg_html_doc *doc)
{
    for (size_t i = 0; i < doc->count; i++) {
        for (int k = 0; k < PG_SLOT_COUNT; k++)
            free(doc->els[i].set[k]);
        if (doc->els[i].own_tag)
            free((char *)doc->els[i].tag);
    }
    free(doc->els);
    if (doc->out != NULL)
        gumbo_destroy_output(&kGumboDefaultOptions, doc->out);
    pg_buf_cleanup(&doc->head_style);
    memset(doc, 0, sizeof *doc);
    doc->head = PG_NONE;
}

const char *pg_html_attr(const pg_html_el *el, const char *name)
{
    const GumboAttribute *a = gumbo_get_attribute(&el->node->v.element.attributes, name);
    return a != NULL ? a->value : NULL;
}

const char *pg_html_attr_now(const pg_html_el *el, const char *name)
{
    for (int k = 0; k < PG_SLOT_COUNT; k++)
        if (el->set[k] != NULL && strcmp(pg_html_slot_names[k], name) == 0)
            return el->set[k];
    return pg_html_attr(el, name);
}
