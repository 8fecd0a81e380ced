/*
 * css_select.c - Selectors Level 3 (W3C REC 2018): compiling a complex selector and
 * matching it against the element table of html_tree.c.
 *
 * A selector is a chain of compounds read right to left. Matching follows the scheme of
 * Servo's selectors crate: a failure says how far back the search may restart (from the
 * closest later sibling, from the closest descendant combinator, or not at all), which
 * keeps "a b c d" against a deep document from backtracking exponentially: for one
 * element the work is O(k x d) for k compounds and depth d. Recursion is over the
 * compounds of the selector (capped at MAX_COMPOUNDS), never over the document.
 *
 * What cannot be matched in a static document (:hover, :focus, ::before, :visited,
 * unknown pseudo-classes, namespaces) or does not parse compiles to a selector of kind
 * PG_SEL_KEEP: the rule stays in the <style> block for the clients that read it.
 */
#include <stdlib.h>
#include <string.h>

#include "html/html_int.h"

#define MAX_COMPOUNDS 64

enum simple_kind {
    S_ID,
    S_CLASS,
    S_ATTR,
    S_NTH_CHILD,
    S_NTH_LAST_CHILD,
    S_NTH_OF_TYPE,
    S_NTH_LAST_OF_TYPE,
    S_ONLY_CHILD,
    S_ONLY_OF_TYPE,
    S_ROOT,
    S_EMPTY,
    S_NOT,
};

/* 6.3 attribute operators. */
enum attr_op { A_EXISTS, A_EQ, A_INCLUDES, A_DASH, A_PREFIX, A_SUFFIX, A_SUBSTR };

typedef struct compound compound;

typedef struct simple {
    int kind;        /* enum simple_kind */
    int op;          /* S_ATTR: enum attr_op */
    int icase;       /* S_ATTR: the i flag (ASCII case-insensitive value) */
    char *name;      /* id, class or attribute name (attribute names lowercased) */
    char *value;     /* S_ATTR value */
    int a, b;        /* S_NTH_*: an+b */
    compound * not ; /* S_NOT: the compounds of the argument list */
    size_t nnot;     /* how many */
} simple;

struct compound {
    char *tag; /* lowercase type selector, NULL for any */
    simple *s; /* the simple selectors after the type */
    size_t n;  /* how many */
    int comb;  /* the combinator to the left: ' ', '>', '+', '~', or 0 for the first */
};

struct pg_css_selector {
    compound *c;      /* compounds, leftmost first */
    size_t n;         /* how many */
    int kind;         /* enum pg_sel_kind */
    uint32_t spec;    /* packed specificity */
    uint64_t need[2]; /* Bloom bits of what must be among the ancestors (html_tree.c) */
};

/* A parse in progress over a token stream. */
typedef struct parser {
    pg_css_lexer lx;  /* the selector text */
    pg_css_tok t;     /* the current token */
    int keep;         /* set when the selector cannot be inlined */
    int nomem;        /* set when an allocation failed */
    unsigned a, b, c; /* specificity counts */
} parser;

static void advance(parser *p)
{
    pg_css_next(&p->lx, &p->t);
}

static char *decoded(parser *p, size_t start, size_t len, int lower)
{
    pg_buf b;
    pg_buf_init(&b);
    pg_css_unescape(p->lx.s + start, len, &b);
    size_t n;
    char *s = pg_buf_detach(&b, &n);
    if (s == NULL) {
        p->nomem = 1;
        return NULL;
    }
    for (size_t i = 0; lower && i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] | 0x20);
    return s;
}

static simple *add_simple(parser *p, compound *c, int kind)
{
    simple *s = realloc(c->s, (c->n + 1) * sizeof *s);
    if (s == NULL) {
        p->nomem = 1;
        return NULL;
    }
    c->s = s;
    memset(&s[c->n], 0, sizeof *s);
    s[c->n].kind = kind;
    return &s[c->n++];
}

static void free_compounds(compound *c, size_t n);

static void skip_ws(parser *p)
{
    while (p->t.type == PG_CSS_WS)
        advance(p);
}

/* 6.3: [name], [name=value], [name~=value] ... with an optional i flag. */
static void attribute(parser *p, compound *c)
{
    static const char ops[] = "~|^$*";
    advance(p);
    skip_ws(p);
    if (p->t.type != PG_CSS_IDENT) {
        p->keep = 1; /* namespaces and garbage */
        return;
    }
    simple *s = add_simple(p, c, S_ATTR);
    if (s == NULL || (s->name = decoded(p, p->t.vstart, p->t.vlen, 1)) == NULL)
        return;
    p->b++;
    advance(p);
    skip_ws(p);
    if (p->t.type == PG_CSS_RBRACKET)
        return;
    const char *op = p->t.type == PG_CSS_DELIM && p->t.delim < 0x80 && p->t.delim != 0
                         ? strchr(ops, p->t.delim)
                         : NULL;
    if (op != NULL) {
        s->op = A_INCLUDES + (int)(op - ops);
        advance(p);
    } else {
        s->op = A_EQ;
    }
    if (p->t.type != PG_CSS_DELIM || p->t.delim != '=') {
        p->keep = 1;
        return;
    }
    advance(p);
    skip_ws(p);
    if (p->t.type != PG_CSS_IDENT && p->t.type != PG_CSS_STRING) {
        p->keep = 1;
        return;
    }
    if ((s->value = decoded(p, p->t.vstart, p->t.vlen, 0)) == NULL)
        return;
    advance(p);
    skip_ws(p);
    if (p->t.type == PG_CSS_IDENT && p->t.vlen == 1 && (p->lx.s[p->t.vstart] | 0x20) == 'i') {
        s->icase = 1;
        advance(p);
    } else if (p->t.type == PG_CSS_IDENT && p->t.vlen == 1 &&
               (p->lx.s[p->t.vstart] | 0x20) == 's') {
        advance(p);
    }
    skip_ws(p);
    if (p->t.type != PG_CSS_RBRACKET)
        p->keep = 1;
}

/* The raw text of a function's argument: from here to the matching ')'. Leaves the
 * parser on the ')' token. */
static void argument(parser *p, size_t *start, size_t *len)
{
    size_t depth = 0;
    *start = p->lx.pos;
    for (;;) {
        advance(p);
        if (p->t.type == PG_CSS_EOF)
            break;
        if (p->t.type == PG_CSS_FUNCTION || p->t.type == PG_CSS_LPAREN)
            depth++;
        else if (p->t.type == PG_CSS_RPAREN && depth-- == 0)
            break;
    }
    *len = p->t.start - *start;
}

static int parse_int(const char *s, size_t n, size_t *i, int *out)
{
    long v = 0;
    size_t start = *i;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9') {
        if (v < 100000000)
            v = v * 10 + (s[*i] - '0');
        (*i)++;
    }
    *out = (int)v;
    return *i > start;
}

/* 6.6.5.2: an+b, odd, even (whitespace removed first). */
static int parse_nth(const char *arg, size_t len, int *a, int *b)
{
    char s[64];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (strchr(" \t\r\n\f", arg[i]) != NULL)
            continue;
        if (n + 1 >= sizeof s)
            return -1;
        s[n++] = (char)(arg[i] >= 'A' && arg[i] <= 'Z' ? arg[i] | 0x20 : arg[i]);
    }
    s[n] = '\0';
    if (strcmp(s, "odd") == 0 || strcmp(s, "even") == 0) {
        *a = 2;
        *b = s[0] == 'o';
        return 0;
    }
    size_t i = 0;
    int sign = 1, v = 0;
    if (s[i] == '+' || s[i] == '-')
        sign = s[i++] == '-' ? -1 : 1;
    int digits = parse_int(s, n, &i, &v);
    if (s[i] != 'n') {
        *a = 0;
        *b = sign * v;
        return digits && i == n ? 0 : -1;
    }
    *a = sign * (digits ? v : 1);
    i++;
    *b = 0;
    if (i == n)
        return 0;
    if (s[i] != '+' && s[i] != '-')
        return -1;
    sign = s[i++] == '-' ? -1 : 1;
    if (!parse_int(s, n, &i, &v) || i != n)
        return -1;
    *b = sign * v;
    return 0;
}

static int name_is(const parser *p, const char *name)
{
    size_t n = strlen(name);
    return p->t.vlen == n && strncasecmp(p->lx.s + p->t.vstart, name, n) == 0;
}

static int compile_compounds(const char *s, size_t n, int in_not, compound **out, size_t *count,
                             parser *outer);

/* :not(compound, ...) - Level 3 takes one simple selector; a list of compounds (Level 4)
 * costs nothing more. Nested :not() and combinators inside are kept, not inlined. */
static void negation(parser *p, compound *c, int in_not)
{
    size_t start, len;
    argument(p, &start, &len);
    if (in_not) {
        p->keep = 1;
        return;
    }
    simple *s = add_simple(p, c, S_NOT);
    if (s == NULL)
        return;
    parser inner;
    memset(&inner, 0, sizeof inner);
    if (compile_compounds(p->lx.s + start, len, 1, &s->not, &s->nnot, &inner) != 0)
        p->keep = 1;
    p->nomem |= inner.nomem;
    p->a += inner.a;
    p->b += inner.b;
    p->c += inner.c;
}

/* Pseudo-classes with an argument: the nth family and :not(). */
static void pseudo_function(parser *p, compound *c, int in_not)
{
    static const char *const nth[] = {"nth-child", "nth-last-child", "nth-of-type",
                                      "nth-last-of-type"};
    if (name_is(p, "not")) {
        negation(p, c, in_not);
        return;
    }
    for (int k = 0; k < 4; k++) {
        if (!name_is(p, nth[k]))
            continue;
        size_t start, len;
        argument(p, &start, &len);
        simple *s = add_simple(p, c, S_NTH_CHILD + k);
        if (s != NULL && parse_nth(p->lx.s + start, len, &s->a, &s->b) != 0)
            p->keep = 1;
        p->b++;
        return;
    }
    size_t start, len;
    argument(p, &start, &len);
    p->keep = 1; /* :lang(), :is(), :has() ... kept for the clients */
}

/* Structural pseudo-classes without argument (6.6.5). */
static void pseudo_class(parser *p, compound *c)
{
    static const struct {
        const char *name;
        int kind, a, b;
    } table[] = {
        {"first-child", S_NTH_CHILD, 0, 1},
        {"last-child", S_NTH_LAST_CHILD, 0, 1},
        {"first-of-type", S_NTH_OF_TYPE, 0, 1},
        {"last-of-type", S_NTH_LAST_OF_TYPE, 0, 1},
        {"only-child", S_ONLY_CHILD, 0, 0},
        {"only-of-type", S_ONLY_OF_TYPE, 0, 0},
        {"root", S_ROOT, 0, 0},
        {"empty", S_EMPTY, 0, 0},
    };
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
        if (!name_is(p, table[k].name))
            continue;
        simple *s = add_simple(p, c, table[k].kind);
        if (s != NULL) {
            s->a = table[k].a;
            s->b = table[k].b;
        }
        p->b++;
        return;
    }
    p->keep = 1; /* :hover, :focus, :visited, :before (legacy pseudo-element), unknown */
}

/* One compound selector; returns nonzero if the text ended or a combinator follows. */
static void compound_sel(parser *p, compound *c, int in_not)
{
    for (;;) {
        pg_css_tok *t = &p->t;
        if (t->type == PG_CSS_IDENT && c->tag == NULL && c->n == 0) {
            c->tag = decoded(p, t->vstart, t->vlen, 1);
            p->c++;
        } else if (t->type == PG_CSS_DELIM && t->delim == '*' && c->tag == NULL && c->n == 0) {
            /* the universal selector adds nothing */
        } else if (t->type == PG_CSS_HASH && t->id_type) {
            simple *s = add_simple(p, c, S_ID);
            if (s != NULL)
                s->name = decoded(p, t->vstart, t->vlen, 0);
            p->a++;
        } else if (t->type == PG_CSS_DELIM && t->delim == '.') {
            advance(p);
            if (p->t.type != PG_CSS_IDENT) {
                p->keep = 1;
                return;
            }
            simple *s = add_simple(p, c, S_CLASS);
            if (s != NULL)
                s->name = decoded(p, p->t.vstart, p->t.vlen, 0);
            p->b++;
        } else if (t->type == PG_CSS_LBRACKET) {
            attribute(p, c);
        } else if (t->type == PG_CSS_COLON) {
            advance(p);
            if (p->t.type == PG_CSS_IDENT)
                pseudo_class(p, c);
            else if (p->t.type == PG_CSS_FUNCTION)
                pseudo_function(p, c, in_not);
            else
                p->keep = 1; /* ::pseudo-element */
        } else {
            return;
        }
        if (p->keep || p->nomem)
            return;
        advance(p);
    }
}

static int add_compound(compound **cs, size_t *n)
{
    compound *c = realloc(*cs, (*n + 1) * sizeof *c);
    if (c == NULL)
        return -1;
    memset(&c[*n], 0, sizeof *c);
    *cs = c;
    (*n)++;
    return 0;
}

/* Parses compounds joined by combinators; in_not allows only a comma list of compounds.
 * Returns nonzero when the selector must be kept (or memory ran out: outer->nomem). */
static int compile_compounds(const char *s, size_t n, int in_not, compound **out, size_t *count,
                             parser *p)
{
    int comb = 0;
    pg_css_lexer_init(&p->lx, s, n);
    advance(p);
    skip_ws(p);
    while (!p->keep && !p->nomem) {
        if (*count >= MAX_COMPOUNDS || add_compound(out, count) != 0) {
            p->nomem |= *count < MAX_COMPOUNDS;
            p->keep = 1;
            break;
        }
        compound *c = &(*out)[*count - 1];
        c->comb = comb;
        size_t before = p->lx.pos;
        compound_sel(p, c, in_not);
        if (p->keep || p->nomem)
            break;
        if (c->tag == NULL && c->n == 0 && p->lx.pos == before &&
            !(p->t.type == PG_CSS_DELIM && p->t.delim == '*')) {
            /* an empty compound: "> a", "a >", "a,,b" */
            if (!(c->tag == NULL && c->n == 0 && before > 0 && s[before - 1] == '*'))
                p->keep = 1;
        }
        int ws = p->t.type == PG_CSS_WS;
        skip_ws(p);
        if (p->t.type == PG_CSS_EOF)
            break;
        if (in_not && p->t.type == PG_CSS_COMMA) {
            comb = 0;
            advance(p);
            skip_ws(p);
            continue;
        }
        if (p->t.type == PG_CSS_DELIM &&
            (p->t.delim == '>' || p->t.delim == '+' || p->t.delim == '~')) {
            comb = p->t.delim;
            advance(p);
            skip_ws(p);
        } else if (ws) {
            comb = ' ';
        } else {
            p->keep = 1;
        }
        if (in_not)
            p->keep = 1;
    }
    return p->keep || p->nomem;
}

/* The tags, ids and classes of the compounds that must match ancestors of the element:
 * those joined to the rightmost compound by descendant and child combinators only (past
 * a sibling combinator a compound matches an ancestor's sibling, not an ancestor). */
static void ancestor_needs(pg_css_selector *sel)
{
    for (size_t k = sel->n - 1; k > 0; k--) {
        if (sel->c[k].comb != ' ' && sel->c[k].comb != '>')
            break;
        const compound *c = &sel->c[k - 1];
        if (c->tag != NULL)
            pg_html_bloom_add(sel->need, 't', c->tag, strlen(c->tag));
        for (size_t j = 0; j < c->n; j++)
            if (c->s[j].kind == S_ID || c->s[j].kind == S_CLASS)
                pg_html_bloom_add(sel->need, c->s[j].kind == S_ID ? 'i' : 'c', c->s[j].name,
                                  strlen(c->s[j].name));
    }
}

pg_css_selector *pg_css_selector_compile(const char *s, size_t n)
{
    pg_css_selector *sel = calloc(1, sizeof *sel);
    parser p;
    if (sel == NULL)
        return NULL;
    memset(&p, 0, sizeof p);
    compile_compounds(s, n, 0, &sel->c, &sel->n, &p);
    if (p.nomem) {
        pg_css_selector_free(sel);
        return NULL;
    }
    sel->kind = p.keep || sel->n == 0 ? PG_SEL_KEEP : PG_SEL_INLINE;
    if (sel->kind == PG_SEL_INLINE)
        ancestor_needs(sel);
    unsigned a = p.a > 1023 ? 1023 : p.a, b = p.b > 1023 ? 1023 : p.b, c = p.c > 1023 ? 1023 : p.c;
    sel->spec = (uint32_t)(a << 20 | b << 10 | c);
    return sel;
}

static void free_compounds(compound *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < c[i].n; k++) {
            free(c[i].s[k].name);
            free(c[i].s[k].value);
            free_compounds(c[i].s[k].not, c[i].s[k].nnot);
        }
        free(c[i].s);
        free(c[i].tag);
    }
    free(c);
}

void pg_css_selector_free(pg_css_selector *sel)
{
    if (sel == NULL)
        return;
    free_compounds(sel->c, sel->n);
    free(sel);
}

int pg_css_selector_kind(const pg_css_selector *sel)
{
    return sel->kind;
}

uint32_t pg_css_selector_specificity(const pg_css_selector *sel)
{
    return sel->spec;
}

int pg_css_selector_key(const pg_css_selector *sel, const char **name, size_t *len)
{
    const compound *c = &sel->c[sel->n - 1];
    for (size_t k = 0; k < c->n; k++) {
        if (c->s[k].kind == S_ID) {
            *name = c->s[k].name;
            *len = strlen(*name);
            return 'i';
        }
    }
    for (size_t k = 0; k < c->n; k++) {
        if (c->s[k].kind == S_CLASS) {
            *name = c->s[k].name;
            *len = strlen(*name);
            return 'c';
        }
    }
    if (c->tag != NULL) {
        *name = c->tag;
        *len = strlen(*name);
        return 't';
    }
    *name = "";
    *len = 0;
    return '*';
}

/* ---- matching ---- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static int eq(const char *a, const char *b, size_t n, int icase)
{
    return icase ? strncasecmp(a, b, n) == 0 : memcmp(a, b, n) == 0;
}

/* Nonzero if the whitespace-separated list contains word (class, ~=). */
static int has_word(const char *list, const char *word, int icase)
{
    size_t wn = strlen(word);
    if (wn == 0)
        return 0;
    for (const char *p = list; *p;) {
        while (is_space(*p))
            p++;
        const char *start = p;
        while (*p && !is_space(*p))
            p++;
        if ((size_t)(p - start) == wn && eq(start, word, wn, icase))
            return 1;
    }
    return 0;
}

static int attr_match(const simple *s, const char *v)
{
    if (v == NULL)
        return 0;
    size_t vn = strlen(v), sn = s->value ? strlen(s->value) : 0;
    switch (s->op) {
    case A_EXISTS:
        return 1;
    case A_EQ:
        return vn == sn && eq(v, s->value, sn, s->icase);
    case A_INCLUDES:
        return has_word(v, s->value, s->icase) && strpbrk(s->value, " \t\r\n\f") == NULL;
    case A_DASH:
        return vn >= sn && eq(v, s->value, sn, s->icase) && (vn == sn || v[sn] == '-');
    case A_PREFIX:
        return sn > 0 && vn >= sn && eq(v, s->value, sn, s->icase);
    case A_SUFFIX:
        return sn > 0 && vn >= sn && eq(v + vn - sn, s->value, sn, s->icase);
    default:
        for (size_t i = 0; sn > 0 && i + sn <= vn; i++)
            if (eq(v + i, s->value, sn, s->icase))
                return 1;
        return 0;
    }
}

/* Is there n >= 0 with a*n + b == pos? */
static int nth_match(int a, int b, uint32_t pos)
{
    long d = (long)pos - b;
    if (a == 0)
        return d == 0;
    return d / a >= 0 && d % a == 0;
}

static int is_empty(const GumboNode *node)
{
    const GumboVector *kids = &node->v.element.children;
    for (unsigned i = 0; i < kids->length; i++) {
        const GumboNode *k = kids->data[i];
        if (k->type != GUMBO_NODE_COMMENT)
            return 0;
    }
    return 1;
}

static int compound_match(const compound *c, const pg_html_doc *doc, uint32_t i);

static int simple_match(const simple *s, const pg_html_doc *doc, uint32_t i)
{
    const pg_html_el *el = &doc->els[i];

    switch (s->kind) {
    case S_ID:
        return el->id != NULL && strcmp(el->id, s->name) == 0;
    case S_CLASS:
        return el->cls != NULL && has_word(el->cls, s->name, 0);
    case S_ATTR:
        return attr_match(s, pg_html_attr(el, s->name));
    case S_NTH_CHILD:
        return nth_match(s->a, s->b, el->nth);
    case S_NTH_LAST_CHILD:
        return nth_match(s->a, s->b, el->nth_last);
    case S_NTH_OF_TYPE:
        return nth_match(s->a, s->b, el->nth_type);
    case S_NTH_LAST_OF_TYPE:
        return nth_match(s->a, s->b, el->nth_last_type);
    case S_ONLY_CHILD:
        return el->nth == 1 && el->nth_last == 1;
    case S_ONLY_OF_TYPE:
        return el->nth_type == 1 && el->nth_last_type == 1;
    case S_ROOT:
        return el->parent == PG_NONE;
    case S_EMPTY:
        return is_empty(el->node);
    default:
        for (size_t k = 0; k < s->nnot; k++)
            if (compound_match(&s->not [k], doc, i))
                return 0;
        return 1;
    }
}

static int compound_match(const compound *c, const pg_html_doc *doc, uint32_t i)
{
    if (c->tag != NULL && strcmp(c->tag, doc->els[i].tag) != 0)
        return 0;
    for (size_t k = 0; k < c->n; k++)
        if (!simple_match(&c->s[k], doc, i))
            return 0;
    return 1;
}

enum result { MATCHED, RESTART_SIBLING, RESTART_DESCENDANT, FAIL_GLOBAL };

static enum result match_from(const pg_css_selector *sel, size_t k, const pg_html_doc *doc,
                              uint32_t i)
{
    if (!compound_match(&sel->c[k], doc, i))
        return RESTART_SIBLING;
    if (k == 0)
        return MATCHED;
    int comb = sel->c[k].comb;
    int sibling = comb == '+' || comb == '~';
    uint32_t next = sibling ? doc->els[i].prev : doc->els[i].parent;
    for (;;) {
        if (next == PG_NONE)
            return sibling ? RESTART_DESCENDANT : FAIL_GLOBAL;
        enum result r = match_from(sel, k - 1, doc, next);
        if (r == MATCHED || r == FAIL_GLOBAL || comb == '+')
            return r;
        if (comb == '>')
            return RESTART_DESCENDANT;
        if (r == RESTART_DESCENDANT && comb == '~')
            return r;
        next = sibling ? doc->els[next].prev : doc->els[next].parent;
    }
}

int pg_css_selector_match(const pg_css_selector *sel, const pg_html_doc *doc, uint32_t i)
{
    const uint64_t *anc = doc->els[i].anc;
    if ((anc[0] & sel->need[0]) != sel->need[0] || (anc[1] & sel->need[1]) != sel->need[1])
        return 0;
    return sel->kind == PG_SEL_INLINE && match_from(sel, sel->n - 1, doc, i) == MATCHED;
}

void pg_css_selector_split(const char *s, size_t n,
                           void (*fn)(void *ctx, const char *part, size_t len), void *ctx)
{
    pg_css_lexer lx;
    pg_css_tok t;
    size_t depth = 0, start = 0;
    pg_css_lexer_init(&lx, s, n);
    for (;;) {
        pg_css_next(&lx, &t);
        if (t.type == PG_CSS_EOF || (t.type == PG_CSS_COMMA && depth == 0)) {
            size_t a = start, b = t.type == PG_CSS_EOF ? n : t.start;
            while (a < b && is_space(s[a]))
                a++;
            while (b > a && is_space(s[b - 1]))
                b--;
            fn(ctx, s + a, b - a);
            if (t.type == PG_CSS_EOF)
                return;
            start = t.start + t.len;
        } else if (t.type == PG_CSS_FUNCTION || t.type == PG_CSS_LPAREN ||
                   t.type == PG_CSS_LBRACKET) {
            depth++;
        } else if ((t.type == PG_CSS_RPAREN || t.type == PG_CSS_RBRACKET) && depth > 0) {
            depth--;
        }
    }
}
