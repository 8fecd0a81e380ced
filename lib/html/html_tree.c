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
    /* Selector matching asks for these two for every candidate rule: look them up once. */
    const GumboVector *attrs = &node->v.element.attributes;
    for (unsigned k = 0; k < attrs->length; k++) {
        const GumboAttribute *a = attrs->data[k];
        if (el->id == NULL && strcmp(a->name, "id") == 0)
            el->id = a->value;
        else if (el->cls == NULL && strcmp(a->name, "class") == 0)
            el->cls = a->value;
    }
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

void pg_html_bloom_add(uint64_t f[2], int kind, const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ (unsigned char)kind;
    h *= 1099511628211ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    h ^= h >> 29;
    unsigned a = (unsigned)(h & 127), b = (unsigned)((h >> 7) & 127);
    f[a >> 6] |= 1ULL << (a & 63);
    f[b >> 6] |= 1ULL << (b & 63);
}

/* The features of element el (its tag, id and classes) added to f. */
static void bloom_features(const pg_html_el *el, uint64_t f[2])
{
    pg_html_bloom_add(f, 't', el->tag, strlen(el->tag));
    if (el->id != NULL)
        pg_html_bloom_add(f, 'i', el->id, strlen(el->id));
    for (const char *p = el->cls; p != NULL && *p;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f')
            p++;
        const char *start = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\f')
            p++;
        if (p > start)
            pg_html_bloom_add(f, 'c', start, (size_t)(p - start));
    }
}

/* Each element's ancestor filter: its parent's, plus the parent's own features. Parents
 * come before their children in the table. */
static void bloom_ancestors(pg_html_doc *doc)
{
    for (size_t i = 0; i < doc->count; i++) {
        pg_html_el *el = &doc->els[i];
        if (el->parent == PG_NONE)
            continue;
        const pg_html_el *up = &doc->els[el->parent];
        el->anc[0] = up->anc[0];
        el->anc[1] = up->anc[1];
        bloom_features(up, el->anc);
    }
}

/* Parses (s, n) with gumbo and builds the element table. */
static pigeon_err index_tree(pg_html_doc *doc);

static pigeon_err parse_text(pg_html_doc *doc, const char *s, size_t n)
{
    /* gumbo is loaded by the first document parsed (lib/lazy/lazy.h). */
    if (pg_lazy_gumbo(NULL, 0) != PIGEON_OK)
        return PIGEON_ERR_UNSUPPORTED;
    doc->gopts = kGumboDefaultOptions;
    doc->gopts.max_errors = 0; /* we never read gumbo's error list: don't build it */
    if (n <= PG_HTML_ARENA_MAX) {
        doc->gopts.allocator = pg_html_arena_alloc;
        doc->gopts.deallocator = pg_html_arena_free;
        doc->gopts.userdata = &doc->arena;
    }
    doc->out = gumbo_parse_with_options(&doc->gopts, s, n);
    if (doc->out == NULL)
        return PIGEON_ERR_NOMEM;
    return index_tree(doc);
}

/* Lists the elements of doc->out's tree (the table, sibling positions, ancestor filters). */
static pigeon_err index_tree(pg_html_doc *doc)
{
    walk w;
    size_t cap = 0;
    uint32_t counts[GUMBO_TAG_UNKNOWN + 1];
    pigeon_err err = PIGEON_OK;
    memset(&w, 0, sizeof w);
    memset(counts, 0, sizeof counts);
    if (push_frame(&w, doc->out->document, PG_NONE) != 0)
        err = PIGEON_ERR_NOMEM;
    while (err == PIGEON_OK && w.depth > 0)
        err = step(doc, &w, &cap, counts);
    free(w.frames);
    free(w.kids);
    if (err == PIGEON_OK)
        bloom_ancestors(doc);
    return err;
}

/* The index of the cut whose <style> tag is at offset off of the cut text, or count. */
static size_t find_cut(const pg_html_cuts *cuts, size_t off)
{
    size_t lo = 0, hi = cuts->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cuts->items[mid].tag < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < cuts->count && cuts->items[lo].tag == off ? lo : cuts->count;
}

/* Nonzero if gumbo read element e exactly where cut c says: an HTML <style> whose start
 * tag spans [tag, at) of the cut text, empty, ended by its end tag at at (or by the end). */
static int cut_matches(const GumboElement *e, const pg_html_cut *c, const pg_html_cuts *cuts)
{
    if (e->tag_namespace != GUMBO_NAMESPACE_HTML || e->children.length != 0)
        return 0;
    if (e->original_tag.data != cuts->text + c->tag || e->original_tag.length != c->at - c->tag)
        return 0;
    if (c->at == cuts->len)
        return e->original_end_tag.length == 0;
    return e->original_end_tag.data == cuts->text + c->at;
}

/* The content of cut c as the HTML tokenizer hands it over: input stream preprocessing
 * turns CR LF and CR into LF (13.2.3.5), RAWTEXT turns NUL into U+FFFD (13.2.5.3).
 * Allocated with gumbo's allocator: gumbo frees it with the tree. */
static char *cut_content(const GumboOptions *g, const char *src, const pg_html_cut *c, int *blank)
{
    const char *s = src + c->src;
    size_t n = c->len, o = 0;
    char *t = g->allocator(g->userdata, n * 3 + 1);
    if (t == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        /* Copy the run up to the next CR or NUL whole: a stylesheet rarely has either. */
        size_t run = i;
        while (run < n && s[run] != '\r' && s[run] != '\0')
            run++;
        memcpy(t + o, s + i, run - i);
        o += run - i;
        if ((i = run) == n)
            break;
        if (s[i] == '\0') {
            memcpy(t + o, "\xef\xbf\xbd", 3);
            o += 3;
        } else {
            t[o++] = '\n';
            if (i + 1 < n && s[i + 1] == '\n')
                i++;
        }
        i++;
    }
    t[o] = '\0';
    *blank = 1;
    for (size_t i = 0; i < o && *blank; i++)
        *blank = t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\f';
    return t;
}

/* Gives style element el its text child back: the node gumbo would have made. */
static pigeon_err give_text(const GumboOptions *o, GumboNode *el, const char *src,
                            const pg_html_cut *c)
{
    void *ud = o->userdata;
    GumboVector *kids = &el->v.element.children;
    GumboNode *t = o->allocator(ud, sizeof *t);
    if (t == NULL)
        return PIGEON_ERR_NOMEM;
    memset(t, 0, sizeof *t);
    int blank;
    if ((t->v.text.text = cut_content(o, src, c, &blank)) == NULL) {
        o->deallocator(ud, t);
        return PIGEON_ERR_NOMEM;
    }
    if (kids->capacity == 0) {
        void **data = o->allocator(ud, sizeof *data);
        if (data == NULL) {
            o->deallocator(ud, (void *)t->v.text.text);
            o->deallocator(ud, t);
            return PIGEON_ERR_NOMEM;
        }
        kids->data = data;
        kids->capacity = 1;
    }
    t->type = blank ? GUMBO_NODE_WHITESPACE : GUMBO_NODE_TEXT;
    t->parent = el;
    t->index_within_parent = 0;
    t->v.text.start_pos = el->v.element.end_pos;
    kids->data[0] = t;
    kids->length = 1;
    return PIGEON_OK;
}

/* Gives comment node back its text when gumbo read the empty comment of cut c exactly
 * where the cut left it. Returns 0, 1 when it does not match, -1 on NOMEM. */
static int give_comment(const GumboOptions *g, GumboNode *node, const char *src,
                        const pg_html_cut *c, const pg_html_cuts *cuts)
{
    if (!c->comment || node->v.text.text[0] != '\0' ||
        node->v.text.original_text.data != cuts->text + c->tag)
        return 1;
    char *t = g->allocator(g->userdata, c->len + 1);
    if (t == NULL)
        return -1;
    memcpy(t, src + c->src, c->len); /* plain text: no CR or NUL (html_rawtext.c) */
    t[c->len] = '\0';
    node->v.text.text = t;
    return 0;
}

/* The work of restore: which cuts were found. */
typedef struct restoring {
    const pg_html_cuts *cuts; /* the cuts */
    unsigned char *seen;      /* per cut: found */
    size_t found;             /* how many found */
    int rc;                   /* 0, 1 (mismatch), -1 (NOMEM) */
} restoring;

/* The comments among kids. */
static void restore_comments(pg_html_doc *doc, restoring *r, const GumboVector *kids,
                             const char *src)
{
    for (unsigned j = 0; j < kids->length && r->rc == 0; j++) {
        GumboNode *kid = kids->data[j];
        if (kid->type != GUMBO_NODE_COMMENT)
            continue;
        size_t k = find_cut(r->cuts, kid->v.text.start_pos.offset);
        if (k == r->cuts->count)
            continue;
        r->rc = r->seen[k] ? 1 : give_comment(&doc->gopts, kid, src, &r->cuts->items[k], r->cuts);
        r->seen[k] = 1;
        r->found++;
    }
}

/* Checks every cut against the tree of the cut text and puts the contents back. Returns
 * 1 when the tree does not match (parse the source instead), 0 when done, -1 on NOMEM. */
static int restore(pg_html_doc *doc, const pg_html_cuts *cuts, const char *src)
{
    restoring r = {cuts, calloc(cuts->count, 1), 0, 0};
    if (r.seen == NULL)
        return -1;
    restore_comments(doc, &r, &doc->out->document->v.document.children, src);
    for (size_t i = 0; i < doc->count && r.rc == 0; i++) {
        GumboNode *node = doc->els[i].node;
        restore_comments(doc, &r, &node->v.element.children, src);
        if (r.rc != 0 || node->v.element.tag != GUMBO_TAG_STYLE)
            continue;
        size_t k = find_cut(cuts, node->v.element.start_pos.offset);
        if (k == cuts->count)
            continue;
        if (r.seen[k] || cuts->items[k].comment ||
            !cut_matches(&node->v.element, &cuts->items[k], cuts))
            r.rc = 1;
        else if (give_text(&doc->gopts, node, src, &cuts->items[k]) != PIGEON_OK)
            r.rc = -1;
        r.seen[k] = 1;
        r.found++;
    }
    free(r.seen);
    return r.rc == 0 && r.found != cuts->count ? 1 : r.rc;
}

pigeon_err pg_html_doc_parse(pg_html_doc *doc, const char *s, size_t n)
{
    pg_html_cuts cuts;
    memset(doc, 0, sizeof *doc);
    doc->head = PG_NONE;
    pg_buf_init(&doc->head_style);
    if (n > UINT32_MAX / 2)
        return PIGEON_ERR_TOO_LARGE;
    if (n <= PG_HTML_ARENA_MAX) {
        /* gumbo's tag names are needed either way: it is loaded (lib/lazy/lazy.h). */
        if (pg_lazy_gumbo(NULL, 0) != PIGEON_OK)
            return PIGEON_ERR_UNSUPPORTED;
        int fast = pg_html_fast_parse(doc, s, n);
        pigeon_err err = fast == 0 ? index_tree(doc) : PIGEON_OK;
        if (fast == 0 && err == PIGEON_OK) {
            doc->fast = 1;
            return PIGEON_OK;
        }
        pg_html_doc_cleanup(doc);
        pg_buf_init(&doc->head_style);
        if (fast < 0 || err != PIGEON_OK)
            return fast < 0 ? PIGEON_ERR_NOMEM : err;
    }
    if (pg_html_cut_rawtext(s, n, &cuts) != PIGEON_OK)
        return PIGEON_ERR_NOMEM;
    pigeon_err err = PIGEON_OK;
    int rc = 1;
    /* A big document with little cut out would hold a second copy for nothing. */
    int worth = n <= PG_HTML_ARENA_MAX || (n - cuts.len) >= n / 8;
    if (cuts.count > 0 && worth && (err = parse_text(doc, cuts.text, cuts.len)) == PIGEON_OK) {
        rc = restore(doc, &cuts, s);
        err = rc < 0 ? PIGEON_ERR_NOMEM : PIGEON_OK;
        if (rc == 0) {
            doc->text = cuts.text; /* gumbo's tree points into it */
            cuts.text = NULL;
        }
    }
    if (err == PIGEON_OK && rc == 1) {
        /* Nothing cut, or the scan was fooled: gumbo reads the source itself. */
        pg_html_doc_cleanup(doc);
        pg_buf_init(&doc->head_style);
        err = parse_text(doc, s, n);
    }
    if (err != PIGEON_OK)
        pg_html_doc_cleanup(doc);
    pg_html_cuts_cleanup(&cuts);
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
    if (doc->out != NULL && doc->gopts.userdata != &doc->arena)
        gumbo_destroy_output(&doc->gopts, doc->out);
    pg_html_arena_cleanup(&doc->arena); /* an arena's tree goes all at once */
    pg_buf_cleanup(&doc->head_style);
    free(doc->text);
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
