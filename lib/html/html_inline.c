/*
 * html_inline.c - the cascade: moves the rules of a stylesheet into style attributes.
 *
 * For each element, the declarations that apply are ordered as CSS Cascading Level 3
 * (6.4) orders them for one origin: importance, then the style attribute above the sheet
 * (6.4.3), then specificity (Selectors 3, 9), then order of appearance. Per property the
 * last in that order wins, and the winners are written in that order, so a shorthand and
 * a longhand (margin, margin-top) keep the order that gives them their meaning. Sheet
 * !important beats a plain style attribute, as in a browser and in juice; !important is
 * not written into the attribute (there is nothing left for it to beat but the rules that
 * stay in <style>, such as @media, which mail authors mark !important to win).
 *
 * Rules are indexed by the rightmost compound of each selector (its id, else a class,
 * else its tag, else the universal list), so an element is tested only against the
 * selectors that could match it. Time is O(E x C x k x d) worst case for E elements, C
 * candidate selectors per element (at most the number of selectors R), k compounds and
 * d depth; O(E + R) for the usual class-keyed mail stylesheet.
 */
#include <stdlib.h>
#include <string.h>

#include "html/html_int.h"

/* One inlinable selector of a rule. */
typedef struct entry {
    pg_css_selector *sel; /* compiled */
    uint32_t rule;        /* index in the sheet */
    uint32_t stamp;       /* last element tested, to test each once */
} entry;

/* A bucket of the selector index: entries whose rightmost compound has this key. */
typedef struct bucket {
    char *key;     /* kind letter + name, NULL for an empty slot */
    uint32_t *ids; /* entry indices */
    size_t n;      /* how many */
    size_t cap;    /* allocated */
} bucket;

typedef struct rule_index {
    entry *entries;  /* every inlinable selector */
    size_t nentries; /* how many */
    size_t ecap;     /* allocated */
    bucket *buckets; /* open addressing, power of two */
    size_t nbuckets; /* slots */
    size_t used;     /* occupied slots */
    pigeon_err err;  /* sticky */
} rule_index;

/* One declaration that applies to the element being styled. */
typedef struct applied {
    const pg_css_decl *decl; /* borrowed from the sheet or the element's own list */
    uint32_t level;          /* 0 sheet, 1 attribute, 2 sheet !important, 3 attr !important */
    uint32_t spec;           /* specificity */
    uint32_t rule;           /* order of the rule */
    uint32_t pos;            /* order within the rule */
} applied;

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static bucket *find(rule_index *ix, const char *key, size_t n, int create);

static int grow(rule_index *ix)
{
    size_t cap = ix->nbuckets ? ix->nbuckets * 2 : 64;
    bucket *old = ix->buckets;
    size_t oldn = ix->nbuckets;
    ix->buckets = calloc(cap, sizeof *ix->buckets);
    if (ix->buckets == NULL) {
        ix->buckets = old;
        return -1;
    }
    ix->nbuckets = cap;
    for (size_t i = 0; i < oldn; i++) {
        if (old[i].key == NULL)
            continue;
        size_t h = hash(old[i].key, strlen(old[i].key)) & (cap - 1);
        while (ix->buckets[h].key != NULL)
            h = (h + 1) & (cap - 1);
        ix->buckets[h] = old[i];
    }
    free(old);
    return 0;
}

static bucket *find(rule_index *ix, const char *key, size_t n, int create)
{
    if (create && (ix->used + 1) * 2 > ix->nbuckets && grow(ix) != 0)
        return NULL;
    if (ix->nbuckets == 0)
        return NULL;
    size_t h = hash(key, n) & (ix->nbuckets - 1);
    for (;; h = (h + 1) & (ix->nbuckets - 1)) {
        bucket *b = &ix->buckets[h];
        if (b->key == NULL)
            break;
        if (strlen(b->key) == n && memcmp(b->key, key, n) == 0)
            return b;
    }
    if (!create)
        return NULL;
    bucket *b = &ix->buckets[h];
    if ((b->key = malloc(n + 1)) == NULL)
        return NULL;
    memcpy(b->key, key, n);
    b->key[n] = '\0';
    ix->used++;
    return b;
}

/* Adds entry e under its key. */
static void index_add(rule_index *ix, uint32_t e)
{
    const char *name;
    size_t len;
    int kind = pg_css_selector_key(ix->entries[e].sel, &name, &len);
    pg_buf key;
    pg_buf_init(&key);
    pg_buf_putc(&key, (char)kind);
    pg_buf_append(&key, name, len);
    bucket *b = key.err == PIGEON_OK ? find(ix, key.data, key.len, 1) : NULL;
    pg_buf_cleanup(&key);
    if (b == NULL) {
        ix->err = PIGEON_ERR_NOMEM;
        return;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        uint32_t *ids = realloc(b->ids, cap * sizeof *ids);
        if (ids == NULL) {
            ix->err = PIGEON_ERR_NOMEM;
            return;
        }
        b->ids = ids;
        b->cap = cap;
    }
    b->ids[b->n++] = e;
}

static void index_cleanup(rule_index *ix)
{
    for (size_t i = 0; i < ix->nentries; i++)
        pg_css_selector_free(ix->entries[i].sel);
    for (size_t i = 0; i < ix->nbuckets; i++) {
        free(ix->buckets[i].key);
        free(ix->buckets[i].ids);
    }
    free(ix->entries);
    free(ix->buckets);
}

/* The selectors of one rule, sorted into the index or into the kept text. */
typedef struct split_ctx {
    rule_index *ix; /* where inlinable selectors go */
    uint32_t rule;  /* the rule's rule_index */
    pg_buf *kept;   /* selectors that stay, comma-separated */
} split_ctx;

static void take_selector(void *ctx, const char *s, size_t n)
{
    split_ctx *c = ctx;
    rule_index *ix = c->ix;
    if (ix->err != PIGEON_OK)
        return;
    pg_css_selector *sel = pg_css_selector_compile(s, n);
    if (sel == NULL) {
        ix->err = PIGEON_ERR_NOMEM;
        return;
    }
    if (pg_css_selector_kind(sel) != PG_SEL_INLINE) {
        pg_css_selector_free(sel);
        if (n == 0)
            return;
        if (c->kept->len > 0)
            pg_buf_puts(c->kept, ", ");
        pg_buf_append(c->kept, s, n);
        return;
    }
    if (ix->nentries == ix->ecap) {
        size_t cap = ix->ecap ? ix->ecap * 2 : 64;
        entry *e = realloc(ix->entries, cap * sizeof *e);
        if (e == NULL) {
            pg_css_selector_free(sel);
            ix->err = PIGEON_ERR_NOMEM;
            return;
        }
        ix->entries = e;
        ix->ecap = cap;
    }
    ix->entries[ix->nentries] = (entry){sel, c->rule, PG_NONE};
    index_add(ix, (uint32_t)ix->nentries++);
}

static void write_decls(pg_buf *out, const pg_css_decls *d)
{
    for (size_t k = 0; k < d->count; k++) {
        pg_buf_putc(out, ' ');
        pg_buf_puts(out, d->items[k].prop);
        pg_buf_puts(out, ": ");
        pg_buf_puts(out, d->items[k].value);
        pg_buf_puts(out, d->items[k].important ? " !important;" : ";");
    }
}

/* Builds the index and the CSS that stays (rules in order: at-rules as written, rules
 * with the selectors that cannot be inlined). */
static void build(rule_index *ix, const pg_css_sheet *sheet, pg_buf *keep)
{
    pg_buf kept;
    pg_buf_init(&kept);
    for (size_t r = 0; r < sheet->count && ix->err == PIGEON_OK; r++) {
        const pg_css_rule *rule = &sheet->rules[r];
        if (rule->kept != NULL) {
            if (keep->len > 0)
                pg_buf_putc(keep, '\n');
            pg_buf_puts(keep, rule->kept);
            continue;
        }
        split_ctx c = {ix, (uint32_t)r, &kept};
        pg_buf_reset(&kept);
        pg_css_selector_split(rule->prelude, strlen(rule->prelude), take_selector, &c);
        if (kept.len == 0)
            continue;
        if (keep->len > 0)
            pg_buf_putc(keep, '\n');
        pg_buf_append(keep, kept.data, kept.len);
        pg_buf_puts(keep, " {");
        write_decls(keep, &rule->decls);
        pg_buf_puts(keep, " }");
    }
    if (kept.err != PIGEON_OK || keep->err != PIGEON_OK)
        ix->err = PIGEON_ERR_NOMEM;
    pg_buf_cleanup(&kept);
}

/* The work area for one element, reused across elements. */
typedef struct styler {
    uint32_t *matched; /* entries that match */
    size_t nmatched;   /* how many */
    size_t mcap;       /* allocated */
    applied *ap;       /* declarations that apply */
    size_t nap;        /* how many */
    size_t acap;       /* allocated */
    pg_css_decls own;  /* the element's style attribute, parsed */
    pg_buf out;        /* the new style attribute */
    pigeon_err err;    /* sticky */
} styler;

static void push_match(styler *st, uint32_t e)
{
    if (st->nmatched == st->mcap) {
        size_t cap = st->mcap ? st->mcap * 2 : 16;
        uint32_t *m = realloc(st->matched, cap * sizeof *m);
        if (m == NULL) {
            st->err = PIGEON_ERR_NOMEM;
            return;
        }
        st->matched = m;
        st->mcap = cap;
    }
    st->matched[st->nmatched++] = e;
}

static void push_applied(styler *st, applied a)
{
    if (st->nap == st->acap) {
        size_t cap = st->acap ? st->acap * 2 : 32;
        applied *p = realloc(st->ap, cap * sizeof *p);
        if (p == NULL) {
            st->err = PIGEON_ERR_NOMEM;
            return;
        }
        st->ap = p;
        st->acap = cap;
    }
    st->ap[st->nap++] = a;
}

static void try_bucket(styler *st, rule_index *ix, const pg_html_doc *doc, uint32_t i, int kind,
                       const char *name, size_t n)
{
    char small[256];
    char *key = n + 1 <= sizeof small ? small : malloc(n + 1);
    if (key == NULL) {
        st->err = PIGEON_ERR_NOMEM;
        return;
    }
    key[0] = (char)kind;
    memcpy(key + 1, name, n);
    bucket *b = find(ix, key, n + 1, 0);
    if (key != small)
        free(key);
    for (size_t k = 0; b != NULL && k < b->n; k++) {
        entry *e = &ix->entries[b->ids[k]];
        if (e->stamp == i)
            continue;
        e->stamp = i;
        if (pg_css_selector_match(e->sel, doc, i))
            push_match(st, b->ids[k]);
    }
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* The selectors that match element i, through the index. */
static void collect(styler *st, rule_index *ix, const pg_html_doc *doc, uint32_t i)
{
    const pg_html_el *el = &doc->els[i];
    const char *id = el->id, *cls = el->cls;
    st->nmatched = 0;
    if (id != NULL)
        try_bucket(st, ix, doc, i, 'i', id, strlen(id));
    for (const char *p = cls; p != NULL && *p;) {
        while (is_space(*p))
            p++;
        const char *start = p;
        while (*p && !is_space(*p))
            p++;
        if (p > start)
            try_bucket(st, ix, doc, i, 'c', start, (size_t)(p - start));
    }
    try_bucket(st, ix, doc, i, 't', el->tag, strlen(el->tag));
    try_bucket(st, ix, doc, i, '*', "", 0);
}

static int cmp_applied(const void *pa, const void *pb)
{
    const applied *a = pa, *b = pb;
    if (a->level != b->level)
        return a->level < b->level ? -1 : 1;
    if (a->spec != b->spec)
        return a->spec < b->spec ? -1 : 1;
    if (a->rule != b->rule)
        return a->rule < b->rule ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* Sorts n elements of size sz: insertion sort for the few declarations an element
 * usually has (qsort's setup costs more than the sort), qsort beyond. Both orders are
 * total here, so the result is the same either way. */
static void sort(void *base, size_t n, size_t sz, int (*cmp)(const void *, const void *))
{
    if (n > 24 || sz > 64) {
        qsort(base, n, sz, cmp);
        return;
    }
    char *a = base, tmp[64];
    for (size_t i = 1; i < n; i++) {
        size_t j = i;
        memcpy(tmp, a + i * sz, sz);
        while (j > 0 && cmp(a + (j - 1) * sz, tmp) > 0) {
            memcpy(a + j * sz, a + (j - 1) * sz, sz);
            j--;
        }
        memcpy(a + j * sz, tmp, sz);
    }
}

/* A declaration's property and its place in the cascade order. */
typedef struct ranked {
    const char *prop; /* the property */
    size_t k;         /* index in the sorted applied list */
} ranked;

static int cmp_ranked(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    int c = strcmp(a->prop, b->prop);
    return c != 0 ? c : (a->k < b->k ? -1 : a->k > b->k);
}

/* Marks in lose[k] the declarations a later one of the same property overrides:
 * O(n log n), so that 10,000 matching selectors stay fast. */
static int mark_overridden(const styler *st, unsigned char *lose)
{
    ranked *r = malloc(st->nap * sizeof *r + 1);
    if (r == NULL)
        return -1;
    for (size_t k = 0; k < st->nap; k++)
        r[k] = (ranked){st->ap[k].decl->prop, k};
    sort(r, st->nap, sizeof *r, cmp_ranked);
    for (size_t k = 0; k < st->nap; k++)
        lose[r[k].k] = k + 1 < st->nap && strcmp(r[k].prop, r[k + 1].prop) == 0;
    free(r);
    return 0;
}

/* Tag tests by gumbo's enum (the element's name is gumbo's normalized name for it). */
static GumboTag tag_of(const pg_html_el *el)
{
    return el->node->v.element.tag;
}

static int table_el(GumboTag t)
{
    switch (t) {
    case GUMBO_TAG_TABLE:
    case GUMBO_TAG_TH:
    case GUMBO_TAG_TR:
    case GUMBO_TAG_TD:
    case GUMBO_TAG_CAPTION:
    case GUMBO_TAG_COLGROUP:
    case GUMBO_TAG_COL:
    case GUMBO_TAG_THEAD:
    case GUMBO_TAG_TBODY:
    case GUMBO_TAG_TFOOT:
        return 1;
    default:
        return 0;
    }
}

static void set_slot(pg_html_el *el, int slot, const char *v, size_t n, styler *st)
{
    char *s = malloc(n + 1);
    if (s == NULL) {
        st->err = PIGEON_ERR_NOMEM;
        return;
    }
    memcpy(s, v, n);
    s[n] = '\0';
    free(el->set[slot]);
    el->set[slot] = s;
}

/* width and height for Outlook (which ignores CSS sizes on tables and images): "600px"
 * becomes width="600", a percentage is kept on table elements. */
static void dimension(pg_html_el *el, int slot, const char *v, styler *st)
{
    size_t n = strlen(v), digits = strspn(v, "0123456789.");
    int table = table_el(tag_of(el));
    if (digits > 0 && n == digits + 2 && strcmp(v + digits, "px") == 0)
        set_slot(el, slot, v, digits, st);
    else if (digits > 0 && n == digits + 1 && v[digits] == '%' && table)
        set_slot(el, slot, v, n, st);
}

/* bgcolor, background, align and valign on table elements, from their CSS. */
static void table_attr(pg_html_el *el, const pg_css_decl *d, styler *st)
{
    static const struct {
        const char *prop;
        int slot;
    } map[] = {{"background-color", PG_SLOT_BGCOLOR},
               {"background-image", PG_SLOT_BACKGROUND},
               {"text-align", PG_SLOT_ALIGN},
               {"vertical-align", PG_SLOT_VALIGN}};
    for (size_t k = 0; k < 4; k++) {
        if (strcmp(d->prop, map[k].prop) != 0 || strstr(d->value, "gradient(") != NULL)
            continue;
        const char *v = d->value;
        size_t n = strlen(v);
        if (map[k].slot == PG_SLOT_BACKGROUND) {
            if (strncasecmp(v, "url(", 4) != 0 || v[n - 1] != ')')
                return;
            v += 4;
            n -= 5;
            if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
                v++;
                n -= 2;
            }
        }
        set_slot(el, map[k].slot, v, n, st);
    }
}

static void outlook_attrs(pg_html_el *el, const pg_css_decl *d, styler *st)
{
    GumboTag t = tag_of(el);
    if (t == GUMBO_TAG_TABLE || t == GUMBO_TAG_TD || t == GUMBO_TAG_TH || t == GUMBO_TAG_IMG) {
        if (strcmp(d->prop, "width") == 0)
            dimension(el, PG_SLOT_WIDTH, d->value, st);
        else if (strcmp(d->prop, "height") == 0)
            dimension(el, PG_SLOT_HEIGHT, d->value, st);
    }
    if (table_el(t))
        table_attr(el, d, st);
}

/* Writes a value with its double quotes as single quotes when it has no single quote:
 * "Segoe UI" inside style="..." would otherwise be written &quot;, which some mail
 * clients' sanitizers mangle (juice does the same swap). */
static void quoted_value(pg_buf *out, const char *v)
{
    if (strchr(v, '\'') != NULL || strchr(v, '\\') != NULL) {
        pg_buf_puts(out, v);
        return;
    }
    for (const char *q; (q = strchr(v, '"')) != NULL; v = q + 1) {
        pg_buf_append(out, v, (size_t)(q - v));
        pg_buf_putc(out, '\'');
    }
    pg_buf_puts(out, v);
}

static void style_element(styler *st, const pg_css_sheet *sheet, const rule_index *ix,
                          pg_html_doc *doc, uint32_t i, int attrs)
{
    pg_html_el *el = &doc->els[i];
    st->nap = 0;
    for (size_t m = 0; m < st->nmatched; m++) {
        const entry *e = &ix->entries[st->matched[m]];
        const pg_css_decls *d = &sheet->rules[e->rule].decls;
        for (size_t k = 0; k < d->count; k++)
            push_applied(st, (applied){&d->items[k], d->items[k].important ? 2u : 0u,
                                       pg_css_selector_specificity(e->sel), e->rule, (uint32_t)k});
    }
    pg_css_decls_cleanup(&st->own);
    const char *style = pg_html_attr(el, "style");
    if (style != NULL && pg_css_decls_parse(&st->own, style, strlen(style)) != PIGEON_OK)
        st->err = PIGEON_ERR_NOMEM;
    for (size_t k = 0; k < st->own.count; k++)
        push_applied(st, (applied){&st->own.items[k], st->own.items[k].important ? 3u : 1u, 0, 0,
                                   (uint32_t)k});
    if (st->err != PIGEON_OK)
        return;
    sort(st->ap, st->nap, sizeof *st->ap, cmp_applied);
    unsigned char *lose = malloc(st->nap + 1);
    if (lose == NULL || mark_overridden(st, lose) != 0) {
        free(lose);
        st->err = PIGEON_ERR_NOMEM;
        return;
    }
    pg_buf_reset(&st->out);
    for (size_t k = 0; k < st->nap; k++) {
        const pg_css_decl *d = st->ap[k].decl;
        if (lose[k])
            continue;
        if (st->out.len > 0)
            pg_buf_putc(&st->out, ' ');
        pg_buf_puts(&st->out, d->prop);
        pg_buf_puts(&st->out, ": ");
        quoted_value(&st->out, d->value);
        pg_buf_puts(&st->out, st->ap[k].level == 3 ? " !important;" : ";");
        if (attrs)
            outlook_attrs(el, d, st);
    }
    free(lose);
    if (st->out.err != PIGEON_OK)
        st->err = st->out.err;
    else
        set_slot(el, PG_SLOT_STYLE, st->out.data, st->out.len, st);
}

/* Elements that are never rendered get no style (as juice: head, title, style...). */
static int non_visual(GumboTag t)
{
    switch (t) {
    case GUMBO_TAG_HEAD:
    case GUMBO_TAG_TITLE:
    case GUMBO_TAG_BASE:
    case GUMBO_TAG_LINK:
    case GUMBO_TAG_STYLE:
    case GUMBO_TAG_META:
    case GUMBO_TAG_SCRIPT:
    case GUMBO_TAG_NOSCRIPT:
        return 1;
    default:
        return 0;
    }
}

pigeon_err pg_html_inline(pg_html_doc *doc, const pg_css_sheet *sheet, int attrs)
{
    rule_index ix;
    styler st;
    memset(&ix, 0, sizeof ix);
    memset(&st, 0, sizeof st);
    pg_buf_init(&st.out);
    build(&ix, sheet, &doc->head_style);
    for (uint32_t i = 0; i < doc->count && ix.err == PIGEON_OK && st.err == PIGEON_OK; i++) {
        pg_html_el *el = &doc->els[i];
        if (non_visual(tag_of(el)))
            continue;
        collect(&st, &ix, doc, i);
        if (st.nmatched > 0)
            style_element(&st, sheet, &ix, doc, i, attrs);
    }
    pigeon_err err = ix.err != PIGEON_OK ? ix.err : st.err;
    index_cleanup(&ix);
    free(st.matched);
    free(st.ap);
    pg_css_decls_cleanup(&st.own);
    pg_buf_cleanup(&st.out);
    return err;
}
