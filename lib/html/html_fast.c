/*
 * html_fast.c - a fast path in front of gumbo for the documents mail tools generate.
 *
 * Gumbo reads a document one code point at a time through a general tokenizer, and that
 * is most of the time pigeon spends on a mail (MJML's output: two thirds). Templates that
 * MJML, inky or cmark produce are regular: every element opened and closed explicitly,
 * <tbody> written out, tables holding only rows. For such a document the WHATWG tree
 * construction algorithm (HTML Living Standard 13.2.6) reduces to "append to the current
 * node, push, pop on the matching end tag", and this file builds the same GumboNode tree
 * gumbo would, a run of bytes at a time, into the document's arena.
 *
 * It is a filter, not a second HTML parser: at the first token whose treatment would
 * involve anything more (an implied or misnested end tag, foster parenting, the adoption
 * agency, foreign content, script, a character reference not in its small table, a byte
 * gumbo would replace, a parse error that changes the tree) it gives up and gumbo parses
 * the document as before. Whenever it finishes, tests/fuzz/fuzz_html_fast.c checks that
 * the tree equals gumbo's.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "html/html_int.h"
#include "lazy/lazy.h"

/* What the parse is between (13.2.4.1 insertion modes, those this path keeps). */
enum phase {
    PH_INITIAL,
    PH_BEFORE_HEAD,
    PH_IN_HEAD,
    PH_AFTER_HEAD,
    PH_BODY,
    PH_AFTER_BODY,
    PH_AFTER_AFTER_BODY
};

#define BAIL  1
#define NOMEM (-1)

typedef struct fast {
    pg_html_doc *doc;
    const char *s;     /* the source */
    size_t n;          /* its length */
    size_t pos;        /* next byte */
    GumboNode **stack; /* open elements, current node last */
    size_t depth;      /* how many */
    size_t cap;        /* allocated */
    int phase;         /* enum phase */
    unsigned p_open;   /* open <p> elements on the stack */
    unsigned a_open;   /* open <a> elements */
    GumboNode *document, *html, *body;
    GumboNode *open_text; /* the text node still taking characters, NULL after any other */
    pg_buf scratch;       /* decoded text and values */
} fast;

static void *alloc(fast *f, size_t n)
{
    return pg_html_arena_alloc(&f->doc->arena, n);
}

static char *dup(fast *f, const char *s, size_t n)
{
    char *t = alloc(f, n + 1);
    if (t != NULL) {
        memcpy(t, s, n);
        t[n] = '\0';
    }
    return t;
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f';
}

static int is_alpha(unsigned char c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

/* Decodes (s, n) into f->scratch. */
static int decode(fast *f, const char *s, size_t n)
{
    f->scratch.len = 0;
    for (size_t i = 0; i < n;) {
        const char *amp = memchr(s + i, '&', n - i);
        size_t run = amp ? (size_t)(amp - s) - i : n - i;
        pg_buf_append(&f->scratch, s + i, run);
        i += run;
        if (i < n && pg_html_fast_char_ref(s, n, &i, &f->scratch) != 0)
            return BAIL;
    }
    return f->scratch.err ? NOMEM : 0;
}

/* ---- the tree ---- */

static GumboNode *new_node(fast *f, GumboNodeType type, size_t at)
{
    GumboNode *node = alloc(f, sizeof *node);
    if (node != NULL) {
        memset(node, 0, sizeof *node);
        node->type = type;
        if (type == GUMBO_NODE_ELEMENT)
            node->v.element.start_pos.offset = (unsigned)at;
        else if (type != GUMBO_NODE_DOCUMENT)
            node->v.text.start_pos.offset = (unsigned)at;
    }
    return node;
}

static int vec_push(fast *f, GumboVector *v, void *item)
{
    if (v->length == v->capacity) {
        unsigned cap = v->capacity ? v->capacity * 2 : 4;
        void **data = alloc(f, cap * sizeof *data);
        if (data == NULL)
            return NOMEM;
        if (v->length)
            memcpy(data, v->data, v->length * sizeof *data);
        v->data = data;
        v->capacity = cap;
    }
    v->data[v->length++] = item;
    return 0;
}

static GumboVector *kids_of(GumboNode *parent)
{
    return parent->type == GUMBO_NODE_DOCUMENT ? &parent->v.document.children
                                               : &parent->v.element.children;
}

static int append(fast *f, GumboNode *parent, GumboNode *node)
{
    GumboVector *kids = kids_of(parent);
    f->open_text = NULL;
    node->parent = parent;
    node->index_within_parent = kids->length;
    return vec_push(f, kids, node);
}

static GumboNode *current(const fast *f)
{
    return f->depth ? f->stack[f->depth - 1] : NULL;
}

static GumboTag cur_tag(const fast *f)
{
    return f->depth ? f->stack[f->depth - 1]->v.element.tag : GUMBO_TAG_LAST;
}

static int push(fast *f, GumboNode *el)
{
    if (f->depth == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        GumboNode **st = realloc(f->stack, cap * sizeof *st);
        if (st == NULL)
            return NOMEM;
        f->stack = st;
        f->cap = cap;
    }
    f->stack[f->depth++] = el;
    GumboTag t = el->v.element.tag;
    f->p_open += t == GUMBO_TAG_P;
    f->a_open += t == GUMBO_TAG_A;
    return 0;
}

static void pop(fast *f, size_t end, size_t end_len)
{
    GumboNode *el = f->stack[--f->depth];
    GumboTag t = el->v.element.tag;
    f->open_text = NULL;
    f->p_open -= t == GUMBO_TAG_P;
    f->a_open -= t == GUMBO_TAG_A;
    el->v.element.original_end_tag.data = end_len ? f->s + end : NULL;
    el->v.element.original_end_tag.length = end_len;
    el->v.element.end_pos.offset = (unsigned)end;
}

/* Inserts text (decoded in f->scratch, or (raw, n) when raw) read from [at, at + srclen). */
static int blank_text(const char *t, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_ws((unsigned char)t[i]))
            return 0;
    return 1;
}

/* blank: whether the text is all whitespace, -1 when not known yet. */
static int insert_text(fast *f, GumboNode *parent, const char *raw, size_t n, size_t at,
                       size_t srclen, int blank)
{
    const char *t = raw ? raw : f->scratch.data;
    size_t len = raw ? n : f->scratch.len;
    if (blank < 0)
        blank = blank_text(t, len);
    GumboVector *kids = kids_of(parent);
    GumboNode *last = f->open_text;
    if (last != NULL && kids->length > 0 && kids->data[kids->length - 1] == last) {
        /* Characters after a token that made no node and closed nothing (</body>) join
         * the text before, as in gumbo, which inserts its text when a node comes. */
        size_t had = strlen(last->v.text.text);
        char *joined = alloc(f, had + len + 1);
        if (joined == NULL)
            return NOMEM;
        memcpy(joined, last->v.text.text, had);
        memcpy(joined + had, t, len);
        joined[had + len] = '\0';
        last->v.text.text = joined;
        last->v.text.original_text.length = at + srclen - last->v.text.start_pos.offset;
        if (!blank)
            last->type = GUMBO_NODE_TEXT;
        return 0;
    }
    GumboNode *node = new_node(f, blank ? GUMBO_NODE_WHITESPACE : GUMBO_NODE_TEXT, at);
    if (node == NULL || (node->v.text.text = dup(f, t, len)) == NULL)
        return NOMEM;
    node->v.text.original_text.data = f->s + at;
    node->v.text.original_text.length = srclen;
    int rc = append(f, parent, node);
    f->open_text = node;
    return rc;
}

/* ---- tags ---- */

typedef struct tag {
    size_t start, end; /* the tag's bytes [start, end) */
    size_t name, nlen; /* the name as written */
    char lname[32];    /* lowercased (names longer are unknown elements: lname empty) */
    GumboTag tag;      /* gumbo's enum */
    int self_closing;  /* ended by "/>" */
    int end_tag;       /* "</name>" */
} tag;

/* gumbo's tag names in a hash table (gumbo 0.10's gumbo_tagn_enum compares names one by
 * one), filled once. */
#define TAG_SLOTS 512
static struct {
    uint16_t tag; /* GumboTag + 1, 0 for an empty slot */
    uint8_t len;  /* the name's length */
    char name[23];
} tag_table[TAG_SLOTS];
static pthread_once_t tag_once = PTHREAD_ONCE_INIT;

static unsigned tag_hash(const char *s, size_t n)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h & (TAG_SLOTS - 1);
}

static void fill_tags(void)
{
    for (int t = 0; t < GUMBO_TAG_UNKNOWN; t++) {
        const char *name = gumbo_normalized_tagname((GumboTag)t);
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n >= sizeof tag_table[0].name)
            continue; /* never looked up (read_name's names are shorter) */
        char low[sizeof tag_table[0].name];
        for (size_t i = 0; i < n; i++)
            low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] | 0x20 : name[i]);
        unsigned h = tag_hash(low, n);
        while (tag_table[h].tag != 0)
            h = (h + 1) & (TAG_SLOTS - 1);
        tag_table[h].tag = (uint16_t)(t + 1);
        tag_table[h].len = (uint8_t)n;
        memcpy(tag_table[h].name, low, n);
    }
}

/* The tag of lowercase name (s, n), as gumbo_tagn_enum gives it. */
static GumboTag tag_lookup(const char *s, size_t n)
{
    if (n >= sizeof tag_table[0].name)
        return gumbo_tagn_enum(s, (unsigned)n);
    pthread_once(&tag_once, fill_tags);
    for (unsigned h = tag_hash(s, n); tag_table[h].tag != 0; h = (h + 1) & (TAG_SLOTS - 1))
        if (tag_table[h].len == n && memcmp(tag_table[h].name, s, n) == 0)
            return (GumboTag)(tag_table[h].tag - 1);
    return GUMBO_TAG_UNKNOWN;
}

/* Reads a tag name at f->pos (a letter) into t. */
static void read_name(fast *f, tag *t)
{
    const char *s = f->s;
    size_t p = f->pos;
    t->name = p;
    while (p < f->n && !is_ws((unsigned char)s[p]) && s[p] != '/' && s[p] != '>')
        p++;
    t->nlen = p - t->name;
    f->pos = p;
    t->lname[0] = '\0';
    t->tag = GUMBO_TAG_UNKNOWN;
    if (t->nlen < sizeof t->lname) {
        for (size_t i = 0; i < t->nlen; i++) {
            char c = s[t->name + i];
            t->lname[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
        }
        t->lname[t->nlen] = '\0';
        t->tag = tag_lookup(t->lname, t->nlen);
    }
}

static void skip_ws(fast *f)
{
    while (f->pos < f->n && is_ws((unsigned char)f->s[f->pos]))
        f->pos++;
}

/* Reads the attributes of a start tag into el and its end; f->pos is after the name. */
static int read_attrs(fast *f, tag *t, GumboNode *el)
{
    const char *s = f->s;
    GumboVector *attrs = el ? &el->v.element.attributes : NULL;
    for (;;) {
        skip_ws(f);
        if (f->pos >= f->n)
            return BAIL;
        if (s[f->pos] == '>') {
            f->pos++;
            break;
        }
        if (s[f->pos] == '/') {
            if (f->pos + 1 >= f->n || s[f->pos + 1] != '>')
                return BAIL;
            t->self_closing = 1;
            f->pos += 2;
            break;
        }
        size_t name = f->pos;
        while (f->pos < f->n && !is_ws((unsigned char)s[f->pos]) && s[f->pos] != '/' &&
               s[f->pos] != '>' && s[f->pos] != '=') {
            char c = s[f->pos];
            if (c == '"' || c == '\'' || c == '<')
                return BAIL;
            f->pos++;
        }
        size_t nlen = f->pos - name;
        if (nlen == 0)
            return BAIL; /* "=" first */
        skip_ws(f);
        size_t val = f->pos, vlen = 0, vorig = f->pos, volen = 0;
        int has_value = 0;
        if (f->pos < f->n && s[f->pos] == '=') {
            f->pos++;
            skip_ws(f);
            if (f->pos >= f->n)
                return BAIL;
            char q = s[f->pos];
            vorig = f->pos;
            if (q == '"' || q == '\'') {
                const char *e = memchr(s + f->pos + 1, q, f->n - f->pos - 1);
                if (e == NULL)
                    return BAIL;
                val = f->pos + 1;
                vlen = (size_t)(e - s) - val;
                f->pos = (size_t)(e - s) + 1;
                /* 13.2.5.39: a quoted value must be followed by space, '/' or '>'. */
                if (f->pos < f->n && !is_ws((unsigned char)s[f->pos]) && s[f->pos] != '/' &&
                    s[f->pos] != '>')
                    return BAIL;
            } else {
                val = f->pos;
                while (f->pos < f->n && !is_ws((unsigned char)s[f->pos]) && s[f->pos] != '>') {
                    char c = s[f->pos];
                    if (c == '"' || c == '\'' || c == '<' || c == '=' || c == '`')
                        return BAIL;
                    f->pos++;
                }
                vlen = f->pos - val;
                if (vlen == 0)
                    return BAIL; /* "a=>": missing value */
            }
            volen = f->pos - vorig;
            has_value = 1;
        }
        if (attrs == NULL)
            continue;
        /* A repeated name: the first one counts (13.2.5.33), but gumbo differs here. */
        char lname[64];
        int dupe = 0;
        if (nlen < sizeof lname) {
            for (size_t i = 0; i < nlen; i++) {
                char c = s[name + i];
                lname[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
            }
            lname[nlen] = '\0';
        } else {
            return BAIL;
        }
        for (unsigned k = 0; k < attrs->length && !dupe; k++)
            dupe = strcmp(((GumboAttribute *)attrs->data[k])->name, lname) == 0;
        if (dupe)
            return BAIL; /* gumbo 0.10 keeps the dropped name's text for the next one */
        GumboAttribute *a = alloc(f, sizeof *a);
        if (a == NULL || (a->name = dup(f, lname, nlen)) == NULL)
            return NOMEM;
        a->attr_namespace = GUMBO_ATTR_NAMESPACE_NONE;
        a->original_name.data = s + name;
        a->original_name.length = nlen;
        a->name_start.offset = (unsigned)name;
        a->value_start.offset = (unsigned)vorig;
        a->value_end.offset = (unsigned)(vorig + volen);
        a->original_value.data = has_value ? s + vorig : NULL;
        a->original_value.length = volen;
        if (memchr(s + val, '&', vlen) == NULL) {
            a->value = dup(f, s + val, vlen);
        } else {
            int rc = decode(f, s + val, vlen);
            if (rc != 0)
                return rc;
            a->value = dup(f, f->scratch.data, f->scratch.len);
        }
        if (a->value == NULL || vec_push(f, attrs, a) != 0)
            return NOMEM;
    }
    t->end = f->pos;
    return 0;
}

static GumboNode *new_element(fast *f, const tag *t)
{
    GumboNode *el = new_node(f, GUMBO_NODE_ELEMENT, t->start);
    if (el != NULL) {
        el->v.element.tag = t->tag;
        el->v.element.tag_namespace = GUMBO_NAMESPACE_HTML;
    }
    return el;
}

/* Creates the element of start tag t (f->pos after its name), reads its attributes,
 * appends it to the current node and, unless void, pushes it. */
static int insert_element(fast *f, tag *t, int is_void)
{
    GumboNode *el = new_element(f, t);
    if (el == NULL)
        return NOMEM;
    int rc = read_attrs(f, t, el);
    if (rc != 0)
        return rc;
    el->v.element.original_tag.data = f->s + t->start;
    el->v.element.original_tag.length = t->end - t->start;
    if ((rc = append(f, current(f), el)) != 0)
        return rc;
    if (is_void) {
        el->v.element.end_pos.offset = (unsigned)t->end;
        return 0;
    }
    return push(f, el);
}

static int is_void(GumboTag t)
{
    switch (t) {
    case GUMBO_TAG_AREA:
    case GUMBO_TAG_BR:
    case GUMBO_TAG_EMBED:
    case GUMBO_TAG_IMG:
    case GUMBO_TAG_KEYGEN:
    case GUMBO_TAG_WBR:
    case GUMBO_TAG_INPUT:
    case GUMBO_TAG_PARAM:
    case GUMBO_TAG_SOURCE:
    case GUMBO_TAG_TRACK:
    case GUMBO_TAG_HR:
    case GUMBO_TAG_META:
    case GUMBO_TAG_LINK:
    case GUMBO_TAG_BASE:
    case GUMBO_TAG_BASEFONT:
    case GUMBO_TAG_BGSOUND:
        return 1;
    default:
        return 0;
    }
}

/* Start tags "in body" that close an open <p> (13.2.6.4.7): with one open, give up. */
static int closes_p(GumboTag t)
{
    switch (t) {
    case GUMBO_TAG_ADDRESS:
    case GUMBO_TAG_ARTICLE:
    case GUMBO_TAG_ASIDE:
    case GUMBO_TAG_BLOCKQUOTE:
    case GUMBO_TAG_CENTER:
    case GUMBO_TAG_DETAILS:
    case GUMBO_TAG_DIR:
    case GUMBO_TAG_DIV:
    case GUMBO_TAG_DL:
    case GUMBO_TAG_FIELDSET:
    case GUMBO_TAG_FIGCAPTION:
    case GUMBO_TAG_FIGURE:
    case GUMBO_TAG_FOOTER:
    case GUMBO_TAG_HEADER:
    case GUMBO_TAG_HGROUP:
    case GUMBO_TAG_MAIN:
    case GUMBO_TAG_MENU:
    case GUMBO_TAG_NAV:
    case GUMBO_TAG_OL:
    case GUMBO_TAG_P:
    case GUMBO_TAG_SECTION:
    case GUMBO_TAG_SUMMARY:
    case GUMBO_TAG_UL:
    case GUMBO_TAG_H1:
    case GUMBO_TAG_H2:
    case GUMBO_TAG_H3:
    case GUMBO_TAG_H4:
    case GUMBO_TAG_H5:
    case GUMBO_TAG_H6:
    case GUMBO_TAG_PRE:
    case GUMBO_TAG_LISTING:
    case GUMBO_TAG_FORM:
    case GUMBO_TAG_PLAINTEXT:
    case GUMBO_TAG_TABLE:
    case GUMBO_TAG_HR:
    case GUMBO_TAG_XMP:
    case GUMBO_TAG_LI:
    case GUMBO_TAG_DD:
    case GUMBO_TAG_DT:
        return 1;
    default:
        return 0;
    }
}

/* Start tags "in body" with a rule of their own that this path does not follow. */
static int body_special(GumboTag t)
{
    switch (t) {
    case GUMBO_TAG_HTML:
    case GUMBO_TAG_BODY:
    case GUMBO_TAG_FRAMESET:
    case GUMBO_TAG_FRAME:
    case GUMBO_TAG_HEAD:
    case GUMBO_TAG_SCRIPT:
    case GUMBO_TAG_NOSCRIPT:
    case GUMBO_TAG_NOFRAMES:
    case GUMBO_TAG_TEMPLATE:
    case GUMBO_TAG_FORM:
    case GUMBO_TAG_PLAINTEXT:
    case GUMBO_TAG_BUTTON:
    case GUMBO_TAG_NOBR:
    case GUMBO_TAG_APPLET:
    case GUMBO_TAG_MARQUEE:
    case GUMBO_TAG_OBJECT:
    case GUMBO_TAG_IMAGE:
    case GUMBO_TAG_ISINDEX:
    case GUMBO_TAG_TEXTAREA:
    case GUMBO_TAG_XMP:
    case GUMBO_TAG_IFRAME:
    case GUMBO_TAG_NOEMBED:
    case GUMBO_TAG_SELECT:
    case GUMBO_TAG_OPTGROUP:
    case GUMBO_TAG_OPTION:
    case GUMBO_TAG_RB:
    case GUMBO_TAG_RTC:
    case GUMBO_TAG_RP:
    case GUMBO_TAG_RT:
    case GUMBO_TAG_MATH:
    case GUMBO_TAG_SVG:
    case GUMBO_TAG_CAPTION:
    case GUMBO_TAG_COL:
    case GUMBO_TAG_COLGROUP:
    case GUMBO_TAG_TBODY:
    case GUMBO_TAG_THEAD:
    case GUMBO_TAG_TFOOT:
    case GUMBO_TAG_TR:
    case GUMBO_TAG_TD:
    case GUMBO_TAG_TH:
    case GUMBO_TAG_MENUITEM:
        return 1;
    default:
        return 0;
    }
}

static int is_heading(GumboTag t)
{
    return t == GUMBO_TAG_H1 || t == GUMBO_TAG_H2 || t == GUMBO_TAG_H3 || t == GUMBO_TAG_H4 ||
           t == GUMBO_TAG_H5 || t == GUMBO_TAG_H6;
}

static int is_table_body(GumboTag t)
{
    return t == GUMBO_TAG_TBODY || t == GUMBO_TAG_THEAD || t == GUMBO_TAG_TFOOT;
}

/* Current nodes in which characters go to "in table text" (13.2.6.4.9). */
static int in_table(GumboTag t)
{
    return t == GUMBO_TAG_TABLE || is_table_body(t) || t == GUMBO_TAG_TR;
}

/* <li>, <dd>, <dt> look down the stack for one to close (13.2.6.4.7); with one of these
 * as the current node (special, and not address, div or p) the loop stops at once. */
static int list_stop(GumboTag cur, GumboTag t)
{
    switch (cur) {
    case GUMBO_TAG_UL:
    case GUMBO_TAG_OL:
    case GUMBO_TAG_MENU:
        return t == GUMBO_TAG_LI;
    case GUMBO_TAG_DL:
        return t != GUMBO_TAG_LI;
    case GUMBO_TAG_TD:
    case GUMBO_TAG_TH:
    case GUMBO_TAG_BODY:
    case GUMBO_TAG_BLOCKQUOTE:
    case GUMBO_TAG_CENTER:
        return 1;
    default:
        return 0;
    }
}

/* ---- text, raw text, comments, the doctype ---- */

/* The node that characters go into, or NULL to drop them (blank before <head>). */
static int text_parent(fast *f, int blank, GumboNode **parent)
{
    *parent = NULL;
    switch (f->phase) {
    case PH_INITIAL:
    case PH_BEFORE_HEAD:
        return blank ? 0 : BAIL;
    case PH_IN_HEAD:
    case PH_AFTER_HEAD:
    case PH_AFTER_BODY:
    case PH_AFTER_AFTER_BODY:
        if (!blank)
            return BAIL;
        break;
    default:
        if (!blank && in_table(cur_tag(f)))
            return BAIL; /* foster parenting */
        break;
    }
    *parent = current(f);
    return 0;
}

/* Characters up to the next markup: '<' then a letter, '/', '!' or '?'. */
static int text(fast *f, int skip_lf)
{
    const char *s = f->s;
    size_t start = f->pos, p = f->pos;
    for (;;) {
        const char *lt = memchr(s + p, '<', f->n - p);
        if (lt == NULL) {
            p = f->n;
            break;
        }
        p = (size_t)(lt - s);
        if (p + 1 < f->n && (is_alpha((unsigned char)s[p + 1]) || s[p + 1] == '/' ||
                             s[p + 1] == '!' || s[p + 1] == '?'))
            break;
        p++;
    }
    f->pos = p;
    if (skip_lf && s[start] == '\n')
        start++; /* the newline after <pre> (13.2.6.4.7) */
    if (p == start)
        return 0;
    const char *raw = s + start;
    size_t len = p - start;
    if (memchr(raw, '&', len) != NULL) {
        int rc = decode(f, raw, len);
        if (rc != 0)
            return rc;
        raw = NULL;
    }
    const char *t = raw ? raw : f->scratch.data;
    size_t tl = raw ? len : f->scratch.len;
    int blank = blank_text(t, tl);
    GumboNode *parent;
    int rc = text_parent(f, blank, &parent);
    if (rc != 0 || parent == NULL)
        return rc;
    return insert_text(f, parent, raw, len, start, p - start, blank);
}

/* The content of a <style> (RAWTEXT) or <title> (RCDATA) just pushed, and its end tag. */
static int raw_content(fast *f, const char *name, size_t nlen, int rcdata)
{
    const char *s = f->s;
    size_t start = f->pos, p = f->pos, end;
    for (;;) {
        const char *lt = memchr(s + p, '<', f->n - p);
        if (lt == NULL)
            return BAIL; /* unterminated: gumbo's end-of-file handling */
        p = (size_t)(lt - s);
        if (p + 2 + nlen <= f->n && s[p + 1] == '/' && strncasecmp(s + p + 2, name, nlen) == 0) {
            end = p + 2 + nlen;
            if (end < f->n && (is_ws((unsigned char)s[end]) || s[end] == '>' || s[end] == '/'))
                break;
        }
        p++;
    }
    if (p > start) {
        int rc = 0;
        if (rcdata && memchr(s + start, '&', p - start) != NULL) {
            if ((rc = decode(f, s + start, p - start)) == 0)
                rc = insert_text(f, current(f), NULL, 0, start, p - start, -1);
        } else {
            rc = insert_text(f, current(f), s + start, p - start, start, p - start, -1);
        }
        if (rc != 0)
            return rc;
    }
    f->pos = end;
    skip_ws(f);
    if (f->pos >= f->n || s[f->pos] != '>')
        return BAIL;
    f->pos++;
    pop(f, p, f->pos - p);
    return 0;
}

/* The first occurrence of the 3 bytes pat in (s, n), or NULL (memmem is a GNU extension). */
static const char *find3(const char *s, size_t n, const char *pat)
{
    for (const char *p = s, *end = s + n; end - p >= 3;) {
        const char *c = memchr(p, pat[0], (size_t)(end - p) - 2);
        if (c == NULL)
            return NULL;
        if (c[1] == pat[1] && c[2] == pat[2])
            return c;
        p = c + 1;
    }
    return NULL;
}

static int comment(fast *f)
{
    const char *s = f->s;
    size_t start = f->pos, body = start + 4;
    if (body < f->n &&
        (s[body] == '>' || (s[body] == '-' && body + 1 < f->n && s[body + 1] == '>')))
        return BAIL; /* abrupt closing of an empty comment */
    const char *e = find3(s + body, f->n - body, "-->");
    if (e == NULL)
        return BAIL;
    size_t len = (size_t)(e - s) - body;
    if (find3(s + body, len + 2, "--!") != NULL)
        return BAIL; /* "--!>" ends a comment too */
    GumboNode *node = new_node(f, GUMBO_NODE_COMMENT, start);
    if (node == NULL || (node->v.text.text = dup(f, s + body, len)) == NULL)
        return NOMEM;
    f->pos = body + len + 3;
    node->v.text.original_text.data = s + start;
    node->v.text.original_text.length = f->pos - start;
    GumboNode *parent;
    switch (f->phase) {
    case PH_INITIAL:
    case PH_AFTER_AFTER_BODY:
        parent = f->document;
        break;
    case PH_AFTER_BODY:
        parent = f->html;
        break;
    default:
        parent = current(f);
        break;
    }
    return append(f, parent, node);
}

/* A quoted doctype identifier at f->pos into *out. */
static int quoted(fast *f, const char **out)
{
    const char *s = f->s;
    if (f->pos >= f->n || (s[f->pos] != '"' && s[f->pos] != '\''))
        return BAIL;
    const char *e = memchr(s + f->pos + 1, s[f->pos], f->n - f->pos - 1);
    if (e == NULL || memchr(s + f->pos + 1, '>', (size_t)(e - s) - f->pos - 1) != NULL)
        return BAIL;
    size_t a = f->pos + 1;
    if ((*out = dup(f, s + a, (size_t)(e - s) - a)) == NULL)
        return NOMEM;
    f->pos = (size_t)(e - s) + 1;
    return 0;
}

/* <!DOCTYPE html> and the PUBLIC / SYSTEM forms templates copy (13.2.5.53 on). */
static int doctype(fast *f)
{
    const char *s = f->s;
    GumboDocument *d = &f->document->v.document;
    if (f->phase != PH_INITIAL || d->has_doctype || d->children.length > 0)
        return BAIL;
    f->pos += 9;
    if (f->pos >= f->n || !is_ws((unsigned char)s[f->pos]))
        return BAIL;
    skip_ws(f);
    size_t name = f->pos;
    while (f->pos < f->n && is_alpha((unsigned char)s[f->pos]))
        f->pos++;
    if (f->pos - name != 4 || strncasecmp(s + name, "html", 4) != 0)
        return BAIL;
    d->name = "html";
    d->public_identifier = "";
    d->system_identifier = "";
    skip_ws(f);
    int rc = 0;
    if (f->pos + 6 <= f->n && strncasecmp(s + f->pos, "public", 6) == 0) {
        f->pos += 6;
        if (f->pos >= f->n || !is_ws((unsigned char)s[f->pos]))
            return BAIL;
        skip_ws(f);
        if ((rc = quoted(f, &d->public_identifier)) != 0)
            return rc;
        if (f->pos < f->n && s[f->pos] != '>') {
            if (!is_ws((unsigned char)s[f->pos]))
                return BAIL;
            skip_ws(f);
            if (f->pos < f->n && s[f->pos] != '>' && (rc = quoted(f, &d->system_identifier)) != 0)
                return rc;
        }
    } else if (f->pos + 6 <= f->n && strncasecmp(s + f->pos, "system", 6) == 0) {
        f->pos += 6;
        if (f->pos >= f->n || !is_ws((unsigned char)s[f->pos]))
            return BAIL;
        skip_ws(f);
        if ((rc = quoted(f, &d->system_identifier)) != 0)
            return rc;
    }
    skip_ws(f);
    if (f->pos >= f->n || s[f->pos] != '>')
        return BAIL;
    f->pos++;
    d->has_doctype = true;
    /* 13.2.6.4.1: only the quirks this path can meet; the tree never depends on them
     * here since an open <p> before <table> makes it give up. */
    d->doc_type_quirks_mode =
        d->public_identifier[0] ? GUMBO_DOCTYPE_LIMITED_QUIRKS : GUMBO_DOCTYPE_NO_QUIRKS;
    return 0;
}

/* ---- tags, by insertion mode ---- */

/* Inserts an element gumbo would imply (the <tbody> of a <tr> written in a <table>). */
static int imply(fast *f, GumboTag tg, size_t at)
{
    tag t = {.start = at, .tag = tg};
    GumboNode *el = new_element(f, &t);
    if (el == NULL)
        return NOMEM;
    el->parse_flags = GUMBO_INSERTION_IMPLIED;
    int rc = append(f, current(f), el);
    return rc ? rc : push(f, el);
}

/* A start tag in a body-like mode ("in body", "in cell" and "in caption" alike here). */
static int body_start(fast *f, tag *t)
{
    GumboTag tg = t->tag, cur = cur_tag(f);
    if (in_table(cur)) {
        if (tg == GUMBO_TAG_STYLE)
            return 2;
        if (cur == GUMBO_TAG_TABLE && is_table_body(tg))
            return insert_element(f, t, 0);
        if (cur == GUMBO_TAG_TABLE && tg == GUMBO_TAG_TR) {
            int rc = imply(f, GUMBO_TAG_TBODY, t->start);
            return rc ? rc : insert_element(f, t, 0);
        }
        if (is_table_body(cur) && tg == GUMBO_TAG_TR)
            return insert_element(f, t, 0);
        if (cur == GUMBO_TAG_TR && (tg == GUMBO_TAG_TD || tg == GUMBO_TAG_TH))
            return insert_element(f, t, 0);
        return BAIL;
    }
    if (tg == GUMBO_TAG_STYLE)
        return 2;
    if (tg == GUMBO_TAG_TITLE)
        return 3;
    if (body_special(tg) || (f->p_open && closes_p(tg)))
        return BAIL;
    if (is_heading(tg) && is_heading(cur))
        return BAIL;
    if ((tg == GUMBO_TAG_LI || tg == GUMBO_TAG_DD || tg == GUMBO_TAG_DT) && !list_stop(cur, tg))
        return BAIL;
    if (tg == GUMBO_TAG_A && f->a_open)
        return BAIL;
    int rc = insert_element(f, t, is_void(tg));
    if (rc == 0 && (tg == GUMBO_TAG_PRE || tg == GUMBO_TAG_LISTING))
        rc = 4;
    return rc;
}

/* Start tag t (f->pos after its name). Returns 0, BAIL, NOMEM, or 2 / 3 when a <style> /
 * <title> was pushed and its content follows, 4 when a leading newline is to be skipped. */
static int start_tag(fast *f, tag *t)
{
    GumboTag tg = t->tag;
    switch (f->phase) {
    case PH_INITIAL:
        if (tg != GUMBO_TAG_HTML)
            return BAIL;
        {
            GumboNode *el = new_element(f, t);
            int rc = el ? read_attrs(f, t, el) : NOMEM;
            if (rc != 0)
                return rc;
            el->v.element.original_tag.data = f->s + t->start;
            el->v.element.original_tag.length = t->end - t->start;
            if ((rc = append(f, f->document, el)) != 0 || (rc = push(f, el)) != 0)
                return rc;
            f->html = el;
        }
        f->phase = PH_BEFORE_HEAD;
        return 0;
    case PH_BEFORE_HEAD:
        if (tg != GUMBO_TAG_HEAD)
            return BAIL;
        f->phase = PH_IN_HEAD;
        return insert_element(f, t, 0);
    case PH_IN_HEAD:
        if (tg == GUMBO_TAG_META || tg == GUMBO_TAG_LINK || tg == GUMBO_TAG_BASE ||
            tg == GUMBO_TAG_BASEFONT || tg == GUMBO_TAG_BGSOUND)
            return insert_element(f, t, 1);
        if (tg == GUMBO_TAG_STYLE)
            return 2;
        if (tg == GUMBO_TAG_TITLE)
            return 3;
        if (tg != GUMBO_TAG_BODY)
            return BAIL;
        pop(f, t->start, 0); /* "anything else": </head> implied */
        f->phase = PH_AFTER_HEAD;
        /* fall through */
    case PH_AFTER_HEAD:
        if (tg != GUMBO_TAG_BODY)
            return BAIL;
        f->phase = PH_BODY;
        {
            int rc = insert_element(f, t, 0);
            f->body = current(f);
            return rc;
        }
    case PH_BODY:
        return body_start(f, t);
    default:
        return BAIL;
    }
}

/* Nonzero if element el is named like end tag t. */
static int same_name(const GumboNode *el, const tag *t, const char *s)
{
    const GumboElement *e = &el->v.element;
    if (t->tag != GUMBO_TAG_UNKNOWN || e->tag != GUMBO_TAG_UNKNOWN)
        return e->tag == t->tag;
    const char *o = e->original_tag.data;
    if (o == NULL || e->original_tag.length < t->nlen + 2)
        return 0;
    char after = o[1 + t->nlen];
    return strncasecmp(o + 1, s + t->name, t->nlen) == 0 &&
           (is_ws((unsigned char)after) || after == '/' || after == '>');
}

static int end_tag(fast *f, tag *t)
{
    GumboTag tg = t->tag;
    skip_ws(f);
    if (f->pos >= f->n || f->s[f->pos] != '>')
        return BAIL; /* attributes or "/" on an end tag */
    f->pos++;
    t->end = f->pos;
    size_t len = t->end - t->start;
    switch (f->phase) {
    case PH_IN_HEAD:
        if (tg != GUMBO_TAG_HEAD)
            return BAIL;
        pop(f, t->start, len);
        f->phase = PH_AFTER_HEAD;
        return 0;
    case PH_BODY:
        if (tg == GUMBO_TAG_BODY || tg == GUMBO_TAG_HTML) {
            if (current(f) != f->body)
                return BAIL;
            f->phase = tg == GUMBO_TAG_BODY ? PH_AFTER_BODY : PH_AFTER_AFTER_BODY;
            return 0;
        }
        if (tg == GUMBO_TAG_TABLE || is_table_body(tg)) {
            /* 13.2.6.4.13-14: these close the row and the row group they are in. */
            if (cur_tag(f) == GUMBO_TAG_TR)
                pop(f, t->start, 0);
            if (tg == GUMBO_TAG_TABLE && is_table_body(cur_tag(f)))
                pop(f, t->start, 0);
        }
        if (f->depth < 2 || current(f) == f->body || !same_name(current(f), t, f->s))
            return BAIL;
        pop(f, t->start, len);
        return 0;
    case PH_AFTER_BODY:
        if (tg != GUMBO_TAG_HTML)
            return BAIL;
        f->phase = PH_AFTER_AFTER_BODY;
        return 0;
    default:
        return BAIL;
    }
}

static int markup(fast *f)
{
    const char *s = f->s;
    size_t at = f->pos;
    char c = at + 1 < f->n ? s[at + 1] : '\0';
    if (c == '!') {
        if (at + 4 <= f->n && s[at + 2] == '-' && s[at + 3] == '-')
            return comment(f);
        if (at + 9 <= f->n && strncasecmp(s + at + 2, "doctype", 7) == 0)
            return doctype(f);
        return BAIL; /* bogus comment, CDATA */
    }
    tag t;
    memset(&t, 0, sizeof t);
    t.start = at;
    if (c == '/') {
        if (at + 2 >= f->n || !is_alpha((unsigned char)s[at + 2]))
            return BAIL;
        f->pos = at + 2;
        read_name(f, &t);
        t.end_tag = 1;
        return end_tag(f, &t);
    }
    if (!is_alpha((unsigned char)c))
        return BAIL; /* "<?": a bogus comment */
    f->pos = at + 1;
    read_name(f, &t);
    int rc = start_tag(f, &t);
    if (rc == 2 || rc == 3) {
        if ((rc = insert_element(f, &t, 0)) != 0)
            return rc;
        return t.tag == GUMBO_TAG_STYLE ? raw_content(f, "style", 5, 0)
                                        : raw_content(f, "title", 5, 1);
    }
    return rc;
}

static int run(fast *f)
{
    int skip_lf = 0;
    while (f->pos < f->n) {
        const char *s = f->s + f->pos;
        int mark = s[0] == '<' && f->pos + 1 < f->n &&
                   (is_alpha((unsigned char)s[1]) || s[1] == '/' || s[1] == '!' || s[1] == '?');
        int rc = mark ? markup(f) : text(f, skip_lf);
        skip_lf = rc == 4;
        if (rc == 4)
            continue;
        if (rc != 0)
            return rc;
    }
    return f->phase >= PH_BODY ? 0 : BAIL; /* before <body>, gumbo would imply elements */
}

int pg_html_fast_parse(pg_html_doc *doc, const char *s, size_t n)
{
    if (!pg_html_fast_clean((const unsigned char *)s, n))
        return BAIL;
    fast f;
    memset(&f, 0, sizeof f);
    f.doc = doc;
    f.s = s;
    f.n = n;
    pg_buf_init(&f.scratch);
    doc->gopts = kGumboDefaultOptions;
    doc->gopts.allocator = pg_html_arena_alloc;
    doc->gopts.deallocator = pg_html_arena_free;
    doc->gopts.userdata = &doc->arena;
    int rc = NOMEM;
    GumboOutput *out = alloc(&f, sizeof *out);
    if (out != NULL && (f.document = new_node(&f, GUMBO_NODE_DOCUMENT, 0)) != NULL) {
        memset(out, 0, sizeof *out);
        f.document->v.document.name = "";
        f.document->v.document.public_identifier = "";
        f.document->v.document.system_identifier = "";
        rc = run(&f);
    }
    if (rc == 0) {
        out->document = f.document;
        out->root = f.html;
        doc->out = out;
    }
    free(f.stack);
    pg_buf_cleanup(&f.scratch);
    return rc;
}
