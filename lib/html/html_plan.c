/*
 * html_plan.c - pigeon_html_prepare once for a whole mail merge (pigeon/html.h): the
 * template is parsed, inlined and serialized with a marker where each value goes, and
 * each row's document is the output with the values copied in.
 *
 * Why the copy is the document prepare would give: a value reaches the template
 * HTML-escaped (& < > " ' as references), so gumbo's tokenizer sees it as character
 * data only, and decoding those references gives the value back. A marker is character
 * data too, starting with a non-space character, so in every insertion mode (WHATWG HTML
 * 13.2.6) the tree builder does with it what it does with a value that also starts with
 * a non-space character and holds none of the code points the input stream does not pass
 * through as they are (NUL, CR, other controls, noncharacters: 13.2.3.5): the same text node or
 * attribute value, the same mode after. White space first is different (before <html>, in <head>,
 * after <pre>), so such a value is refused and that row prepared whole. The passes then read
 * neither text nor the attributes allowed to hold markers, so the tree after them is the same but
 * for the values, which the serializer writes escaped: the plan escapes them the same way.
 *
 * Where that does not hold the plan is refused: a marker in raw text (style, script...),
 * a comment, a name, an attribute the inliner or the image pass reads or sets, or in
 * any attribute when some selector tests attributes ([ in a stylesheet), an unquoted
 * attribute value; or a marker right after '<' or inside a character reference, where
 * the value's first characters would be read with the template's. The check is a
 * count: every marker the output holds must be one found in a safe place. Markers in
 * attributes are told from text ones by their first code point, U+E002 instead of
 * U+E000, set on the tree before serializing.
 */
#include <stdlib.h>
#include <string.h>

#include "html/html_int.h"
#include "util/utf8.h"

#define MARK_LEN 3

/* One piece of the planned output: literal bytes, then a value (or none at the end). */
typedef struct plan_seg {
    size_t off;  /* the literal's offset in text */
    size_t len;  /* its length */
    size_t slot; /* the value after it, SIZE_MAX for none */
    int attr;    /* the value is an attribute's (" escaped too) */
} plan_seg;

/* A string of the tree holding markers (a text node's, an attribute's value), which a
 * render points at the row's version while the text part is written. */
typedef struct plan_patch {
    const char **where; /* the node's text or the attribute's value */
    const char *marked; /* the string with its markers (gumbo's, in the arena) */
} plan_patch;

struct pigeon_html_plan {
    char *text;                /* the output with the markers cut out */
    plan_seg *segs;            /* in order */
    size_t nsegs;              /* how many */
    size_t nslots;             /* the values a render takes */
    pigeon_html_image *images; /* the images of the template (no slot is in their src) */
    size_t nimages;            /* how many */
    int has_doc;               /* a text part is written: doc is kept */
    pg_html_doc doc;           /* the tree after the passes, markers in place */
    size_t wrap;               /* the text part's width */
    plan_patch *patches;       /* the strings of doc holding markers */
    size_t npatches;           /* how many */
    size_t patch_cap;          /* allocated */
};

static const char open_text[] = "\xEE\x80\x80", open_attr[] = "\xEE\x80\x82",
                  close_mark[] = "\xEE\x80\x81";

/* Occurrences of the 3-byte marker what in (s, n) (memmem is a GNU extension). */
static size_t count_of(const char *s, size_t n, const char *what)
{
    size_t k = 0;
    for (size_t i = 0; i + MARK_LEN <= n; i++) {
        const char *p = memchr(s + i, what[0], n - i);
        if (p == NULL || (size_t)(p - s) + MARK_LEN > n)
            break;
        i = (size_t)(p - s);
        if (memcmp(p, what, MARK_LEN) == 0)
            k++;
    }
    return k;
}

static int is_raw(GumboTag t)
{
    switch (t) {
    case GUMBO_TAG_STYLE:
    case GUMBO_TAG_SCRIPT:
    case GUMBO_TAG_XMP:
    case GUMBO_TAG_IFRAME:
    case GUMBO_TAG_NOEMBED:
    case GUMBO_TAG_NOFRAMES:
    case GUMBO_TAG_NOSCRIPT:
    case GUMBO_TAG_PLAINTEXT:
        return 1;
    default:
        return 0;
    }
}

/* Attributes that the passes read or set, or that selectors match on. */
static int attr_read(const char *name)
{
    static const char *const names[] = {"style",      "class",  "id",        "src",
                                        "background", "width",  "height",    "bgcolor",
                                        "align",      "valign", "data-keep", "data-embed"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

/* Whether any stylesheet could test attributes: a '[' in a <style> or in opts->css. */
static int attr_selectors(const pg_html_doc *doc, const pigeon_html_opts *o)
{
    if (o->css != NULL && memchr(o->css, '[', o->css_len) != NULL)
        return 1;
    for (size_t i = 0; i < doc->count; i++) {
        const GumboNode *n = doc->els[i].node;
        if (n->v.element.tag != GUMBO_TAG_STYLE)
            continue;
        const GumboVector *kids = &n->v.element.children;
        for (unsigned k = 0; k < kids->length; k++) {
            const GumboNode *t = kids->data[k];
            if ((t->type == GUMBO_NODE_TEXT || t->type == GUMBO_NODE_WHITESPACE) &&
                strchr(t->v.text.text, '[') != NULL)
                return 1;
        }
    }
    return 0;
}

/*
 * Whether every marker in (s, n) starts where the tokenizer takes a value's first
 * character as character data whatever it is: not right after '<' (a letter would open
 * a tag) nor inside a character reference ("&lt" then "x;", "&" then "amp;").
 */
static int markers_start_clean(const char *s, size_t n)
{
    for (size_t i = 0; i + MARK_LEN <= n; i++) {
        if (memcmp(s + i, open_text, MARK_LEN) != 0)
            continue;
        size_t k = i;
        if (k > 0 && s[k - 1] == '<')
            return 0;
        while (k > 0 && (s[k - 1] == '#' || (s[k - 1] >= '0' && s[k - 1] <= '9') ||
                         ((s[k - 1] | 0x20) >= 'a' && (s[k - 1] | 0x20) <= 'z')))
            k--;
        if (k > 0 && s[k - 1] == '&')
            return 0;
    }
    return 1;
}

/* Whether an attribute's value was quoted in the source: unquoted, a space in the value
 * would end it. */
static int quoted(const GumboAttribute *a)
{
    return a->original_value.length > 0 &&
           (a->original_value.data[0] == '"' || a->original_value.data[0] == '\'');
}

/* Notes a string of the tree with markers, for the text part's renders. */
static int add_patch(pigeon_html_plan *p, const char **where)
{
    if (p->npatches == p->patch_cap) {
        size_t cap = p->patch_cap ? p->patch_cap * 2 : 16;
        plan_patch *n = realloc(p->patches, cap * sizeof *n);
        if (n == NULL)
            return -1;
        p->patches = n;
        p->patch_cap = cap;
    }
    p->patches[p->npatches++] = (plan_patch){where, *where};
    return 0;
}

/* Counts the markers in safe places and marks those in attributes as such; with p, notes
 * the strings holding them (SIZE_MAX when out of memory). */
static size_t safe_markers(pg_html_doc *doc, const pigeon_html_opts *o, pigeon_html_plan *p)
{
    int attrs_ok = !attr_selectors(doc, o);
    size_t safe = 0;
    for (size_t i = 0; i < doc->count; i++) {
        const pg_html_el *el = &doc->els[i];
        const GumboElement *e = &el->node->v.element;
        if (el->drop)
            continue;
        for (unsigned k = 0; attrs_ok && k < e->attributes.length; k++) {
            GumboAttribute *a = e->attributes.data[k];
            if (a->attr_namespace != GUMBO_ATTR_NAMESPACE_NONE || attr_read(a->name) ||
                e->tag == GUMBO_TAG_STYLE || !quoted(a))
                continue;
            /* gumbo's values are its own copies (arena memory), ours to mark. */
            char *v = (char *)a->value;
            size_t before = safe;
            for (char *m = v; (m = strstr(m, open_text)) != NULL; m += MARK_LEN) {
                m[2] = open_attr[2];
                safe++;
            }
            if (safe > before && p != NULL && add_patch(p, &a->value) != 0)
                return SIZE_MAX;
        }
        if (is_raw(e->tag))
            continue;
        for (unsigned k = 0; k < e->children.length; k++) {
            GumboNode *t = e->children.data[k];
            if (t->type != GUMBO_NODE_TEXT)
                continue;
            size_t n = count_of(t->v.text.text, strlen(t->v.text.text), open_text);
            safe += n;
            if (n > 0 && p != NULL && add_patch(p, &t->v.text.text) != 0)
                return SIZE_MAX;
        }
    }
    return safe;
}

/* The slot number after a marker at s (n bytes left), or SIZE_MAX; *used its length. */
static size_t marker_slot(const char *s, size_t n, size_t *used)
{
    size_t i = MARK_LEN, v = 0;
    while (i < n && i < MARK_LEN + 9 && s[i] >= '0' && s[i] <= '9')
        v = v * 10 + (size_t)(s[i++] - '0');
    if (i == MARK_LEN || n - i < MARK_LEN || memcmp(s + i, close_mark, MARK_LEN) != 0)
        return SIZE_MAX;
    *used = i + MARK_LEN;
    return v;
}

/* Cuts out at the markers into p (text and segments). */
static pigeon_err cut(pigeon_html_plan *p, const char *out, size_t n, size_t safe)
{
    size_t cap = safe + 1, lit = 0, w = 0;
    unsigned char *seen = calloc(p->nslots + 1, 1);
    p->segs = malloc(cap * sizeof *p->segs);
    p->text = malloc(n + 1);
    if (seen == NULL || p->segs == NULL || p->text == NULL) {
        free(seen);
        return PIGEON_ERR_NOMEM;
    }
    pigeon_err err = PIGEON_OK;
    for (size_t i = 0; i < n;) {
        int attr = 0;
        if (n - i >= MARK_LEN && memcmp(out + i, open_text, 2) == 0 &&
            (out[i + 2] == open_text[2] || (attr = out[i + 2] == open_attr[2]) != 0)) {
            size_t used = 0, slot = marker_slot(out + i, n - i, &used);
            if (slot >= p->nslots || p->nsegs == safe) {
                err = PIGEON_ERR_UNSUPPORTED;
                break;
            }
            seen[slot] = 1;
            p->segs[p->nsegs++] = (plan_seg){lit, w - lit, slot, attr};
            lit = w;
            i += used;
            continue;
        }
        p->text[w++] = out[i++];
    }
    p->segs[p->nsegs++] = (plan_seg){lit, w - lit, SIZE_MAX, 0};
    for (size_t s = 0; err == PIGEON_OK && s < p->nslots; s++)
        if (!seen[s])
            err = PIGEON_ERR_UNSUPPORTED; /* dropped somewhere (an inlined <style>...) */
    if (err == PIGEON_OK && p->nsegs != safe + 1)
        err = PIGEON_ERR_UNSUPPORTED; /* some marker is in a place not counted safe */
    free(seen);
    return err;
}

static int wants_source(const pigeon_html_opts *o)
{
    return o->no_inline && o->no_images && o->css == NULL;
}

pigeon_err pigeon_html_plan_new(const char *html, size_t len, size_t nslots,
                                const pigeon_html_opts *opts, pigeon_html_plan **out)
{
    static const pigeon_html_opts defaults = {0};
    const pigeon_html_opts *o = opts ? opts : &defaults;
    pigeon_html_result res;
    pg_buf buf;
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (html == NULL)
        return PIGEON_ERR_INVALID;
    if (len > (size_t)INT32_MAX)
        return PIGEON_ERR_TOO_LARGE;
    if (!pg_utf8_valid(html, len))
        return PIGEON_ERR_CHARSET;
    if (wants_source(o) || count_of(html, len, open_text) != nslots ||
        count_of(html, len, close_mark) != nslots || count_of(html, len, open_attr) != 0 ||
        !markers_start_clean(html, len))
        return PIGEON_ERR_UNSUPPORTED;
    pigeon_html_plan *p = calloc(1, sizeof *p);
    if (p == NULL)
        return PIGEON_ERR_NOMEM;
    p->nslots = nslots;
    memset(&res, 0, sizeof res);
    pg_buf_init(&buf);
    /* The tree is parsed in place: gumbo's allocator points at the plan's arena. */
    pigeon_err err = pg_html_doc_parse(&p->doc, html, len);
    if (err != PIGEON_OK) {
        free(p);
        return err;
    }
    p->has_doc = 1;
    if ((err = pg_html_passes(&p->doc, o, &res)) == PIGEON_OK) {
        size_t safe = safe_markers(&p->doc, o, o->no_text ? NULL : p);
        if (safe == SIZE_MAX)
            err = PIGEON_ERR_NOMEM;
        else if ((err = pg_html_serialize(&p->doc, &buf)) == PIGEON_OK)
            err = cut(p, buf.data ? buf.data : "", buf.len, safe);
    }
    /* The text part wraps around the values: it is written per render, from the tree
     * with the row's strings in place of the marked ones. Without one the tree goes. */
    p->wrap = o->wrap;
    if (o->no_text) {
        pg_html_doc_cleanup(&p->doc);
        p->has_doc = 0;
    }
    pg_buf_cleanup(&buf);
    p->images = res.images;
    p->nimages = res.nimages;
    res.images = NULL;
    res.nimages = 0;
    pigeon_html_result_cleanup(&res);
    if (err != PIGEON_OK) {
        pigeon_html_plan_free(p);
        return err;
    }
    *out = p;
    return PIGEON_OK;
}

/* Code points the tokenizer does not pass through (gumbo reads them as U+FFFD; NUL is
 * dropped or replaced, CR normalized): controls but TAB, LF and FF, C1 controls, and
 * noncharacters (WHATWG HTML 13.2.3.5, Infra's definitions). */
static int replaced(uint32_t cp)
{
    return cp <= 0x08 || cp == 0x0B || (cp >= 0x0D && cp <= 0x1F) || (cp >= 0x7F && cp <= 0x9F) ||
           (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
}

/* A value the planned parse stands for (see the top of the file). */
static int plannable(const char *v, size_t n)
{
    const unsigned char *s = (const unsigned char *)v;
    if (v == NULL || n == 0 || strchr(" \t\n\f\r", v[0]) != NULL)
        return 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = s[i];
        size_t k = cp < 0x80 ? 1 : pg_utf8_decode(s + i, n - i, &cp);
        if (k == 0 || replaced(cp))
            return 0;
        i += k;
    }
    return 1;
}

static pigeon_err copy_images(const pigeon_html_plan *p, pigeon_html_result *res)
{
    if (p->nimages == 0)
        return PIGEON_OK;
    if ((res->images = calloc(p->nimages, sizeof *res->images)) == NULL)
        return PIGEON_ERR_NOMEM;
    for (size_t i = 0; i < p->nimages; i++) {
        const pigeon_html_image *from = &p->images[i];
        pigeon_html_image *to = &res->images[i];
        res->nimages++;
        to->cid = strdup(from->cid);
        to->path = from->path ? strdup(from->path) : NULL;
        to->content_type = from->content_type ? strdup(from->content_type) : NULL;
        to->data = from->data ? malloc(from->len ? from->len : 1) : NULL;
        to->len = from->len;
        if (to->data != NULL)
            memcpy(to->data, from->data, from->len);
        if (to->cid == NULL || (from->path && !to->path) ||
            (from->content_type && !to->content_type) || (from->data && !to->data))
            return PIGEON_ERR_NOMEM;
    }
    return PIGEON_OK;
}

/* The marked string m with each marker replaced by its value, unescaped (the tree holds
 * decoded text), into a new string; NULL when out of memory. */
static char *fill(const char *m, const char *const *values, const size_t *lens, size_t nslots)
{
    pg_buf b;
    size_t n = strlen(m), lit = 0;
    pg_buf_init(&b);
    for (size_t i = 0; i + MARK_LEN <= n;) {
        size_t used = 0, slot;
        if (memcmp(m + i, open_text, 2) == 0 &&
            (m[i + 2] == open_text[2] || m[i + 2] == open_attr[2]) &&
            (slot = marker_slot(m + i, n - i, &used)) < nslots) {
            pg_buf_append(&b, m + lit, i - lit);
            pg_buf_append(&b, values[slot], lens[slot]);
            i += used;
            lit = i;
            continue;
        }
        i++;
    }
    pg_buf_append(&b, m + lit, n - lit);
    pg_buf_reserve(&b, 1);
    if (b.err != PIGEON_OK) {
        pg_buf_cleanup(&b);
        return NULL;
    }
    b.data[b.len] = '\0';
    return pg_buf_detach(&b, NULL);
}

/* Writes the text part with the row's values in the tree, then puts the tree back. */
static pigeon_err text_part(pigeon_html_plan *p, const char *const *values, const size_t *lens,
                            pigeon_html_result *res)
{
    pigeon_err err = PIGEON_OK;
    size_t done = 0;
    pg_buf out;
    pg_buf_init(&out);
    for (; done < p->npatches && err == PIGEON_OK; done++) {
        char *row = fill(p->patches[done].marked, values, lens, p->nslots);
        if (row == NULL)
            err = PIGEON_ERR_NOMEM;
        else
            *p->patches[done].where = row;
    }
    if (err == PIGEON_OK && (err = pg_html_text(&p->doc, p->wrap, &out)) == PIGEON_OK &&
        (res->text = pg_buf_detach(&out, &res->text_len)) == NULL)
        err = PIGEON_ERR_NOMEM;
    for (size_t i = 0; i < done; i++) {
        if (*p->patches[i].where != p->patches[i].marked)
            free((char *)*p->patches[i].where);
        *p->patches[i].where = p->patches[i].marked;
    }
    pg_buf_cleanup(&out);
    return err;
}

pigeon_err pigeon_html_plan_render(pigeon_html_plan *p, const char *const *values,
                                   const size_t *lens, pigeon_html_result *res)
{
    pg_buf out;
    if (res == NULL)
        return PIGEON_ERR_INVALID;
    memset(res, 0, sizeof *res);
    if (p == NULL || (p->nslots > 0 && (values == NULL || lens == NULL)))
        return PIGEON_ERR_INVALID;
    size_t total = 0;
    for (size_t i = 0; i < p->nslots; i++) {
        if (!plannable(values[i], lens[i]))
            return PIGEON_ERR_UNSUPPORTED;
        total += lens[i];
    }
    pg_buf_init(&out);
    /* Room for the text and the values once, with some for escapes: one allocation. */
    pg_buf_reserve(&out, p->segs[p->nsegs - 1].off + p->segs[p->nsegs - 1].len + total * 2 + 64);
    for (size_t i = 0; i < p->nsegs; i++) {
        const plan_seg *s = &p->segs[i];
        pg_buf_append(&out, p->text + s->off, s->len);
        if (s->slot != SIZE_MAX)
            pg_html_escape(&out, values[s->slot], lens[s->slot], s->attr);
    }
    pigeon_err err = pg_buf_reserve(&out, 1);
    if (err == PIGEON_OK && (res->html = pg_buf_detach(&out, &res->html_len)) == NULL)
        err = PIGEON_ERR_NOMEM;
    if (err == PIGEON_OK)
        err = copy_images(p, res);
    if (err == PIGEON_OK && p->has_doc)
        err = text_part(p, values, lens, res);
    pg_buf_cleanup(&out);
    if (err != PIGEON_OK)
        pigeon_html_result_cleanup(res);
    return err;
}

void pigeon_html_plan_free(pigeon_html_plan *p)
{
    if (p == NULL)
        return;
    pg_html_images_free(p->images, p->nimages);
    free(p->segs);
    free(p->text);
    if (p->has_doc)
        pg_html_doc_cleanup(&p->doc);
    free(p->patches);
    free(p);
}
