/*
 * html_int.h - the internals of the html module shared by its files (internal).
 *
 * The module turns an HTML mail into what mail clients render: CSS inlined into style
 * attributes (css_tok.c, css_sheet.c, css_select.c, html_inline.c), a text part
 * (html_text.c), local images named as cid: parts (html_images.c), the tree written
 * back out (html_serialize.c), and Markdown rendered first (html_markdown.c). The tree
 * is gumbo's, built by html_fast.c without gumbo for the regular documents that tools
 * generate, by gumbo (html_tree.c, html_rawtext.c) for everything else.
 *
 * Files depend one way: css_tok <- css_sheet, css_select; html_tree <- everything that
 * walks the document; html.c drives the passes.
 */
#ifndef PG_HTML_INT_H
#define PG_HTML_INT_H

#include <gumbo.h>
#include <stddef.h>
#include <stdint.h>

#include "pigeon/error.h"
#include "pigeon/html.h"
#include "util/buf.h"

/* ---- CSS tokens (CSS Syntax Level 3, section 4) ---- */

typedef enum pg_css_tt {
    PG_CSS_EOF = 0,
    PG_CSS_IDENT,
    PG_CSS_FUNCTION, /* name( ; the name is the value span */
    PG_CSS_AT,       /* @name */
    PG_CSS_HASH,     /* #name; id_type set when the name would be a valid identifier */
    PG_CSS_STRING,
    PG_CSS_BAD_STRING,
    PG_CSS_URL, /* url(unquoted) ; the value span is the URL as written (escapes kept) */
    PG_CSS_BAD_URL,
    PG_CSS_DELIM,
    PG_CSS_NUMBER,
    PG_CSS_PERCENT,
    PG_CSS_DIMENSION,
    PG_CSS_WS,
    PG_CSS_CDO,
    PG_CSS_CDC,
    PG_CSS_COLON,
    PG_CSS_SEMI,
    PG_CSS_COMMA,
    PG_CSS_LBRACKET,
    PG_CSS_RBRACKET,
    PG_CSS_LPAREN,
    PG_CSS_RPAREN,
    PG_CSS_LBRACE,
    PG_CSS_RBRACE,
} pg_css_tt;

typedef struct pg_css_tok {
    pg_css_tt type; /* the kind of token */
    size_t start;   /* offset of the token's first byte (comments before it excluded) */
    size_t len;     /* bytes of the whole token */
    size_t vstart;  /* offset of the value: name, string content, url, number text */
    size_t vlen;    /* bytes of the value, escapes not decoded */
    int delim;      /* the code point of a DELIM token */
    int id_type;    /* HASH: nonzero when the name is an identifier (usable as #id) */
} pg_css_tok;

/* A lexer over (s, n); pos advances. Comments are skipped (4.3.2). */
typedef struct pg_css_lexer {
    const char *s; /* the stylesheet, borrowed */
    size_t n;      /* its length */
    size_t pos;    /* next byte to read */
} pg_css_lexer;

void pg_css_lexer_init(pg_css_lexer *lx, const char *s, size_t n);
/* Reads the next token into *t; PG_CSS_EOF at the end (and forever after). Never fails:
 * every byte sequence is some token sequence (4.3 error recovery). */
void pg_css_next(pg_css_lexer *lx, pg_css_tok *t);
/* Appends (s, n) with CSS escapes (4.3.7) decoded to out, as UTF-8. */
void pg_css_unescape(const char *s, size_t n, pg_buf *out);

/* ---- stylesheets ---- */

/* One declaration: property: value [!important]. */
typedef struct pg_css_decl {
    char *prop;    /* property name, lowercased (custom properties keep their case) */
    char *value;   /* value as written, comments removed, whitespace collapsed */
    int important; /* nonzero for !important */
} pg_css_decl;

typedef struct pg_css_decls {
    pg_css_decl *items; /* the declarations in written order */
    size_t count;       /* how many */
    size_t cap;         /* allocated */
} pg_css_decls;

/* A qualified rule with its selector text, or text kept for the <style> block. */
typedef struct pg_css_rule {
    char *prelude;      /* the selector list as written (trimmed), NULL for kept text */
    pg_css_decls decls; /* the declarations of a qualified rule */
    char *kept;         /* an at-rule copied as written (@media ... { ... }), or NULL */
} pg_css_rule;

typedef struct pg_css_sheet {
    pg_css_rule *rules; /* in source order */
    size_t count;       /* how many */
    size_t cap;         /* allocated */
    pigeon_err err;     /* sticky: PIGEON_ERR_NOMEM */
} pg_css_sheet;

/* Appends the rules of the stylesheet (s, n) to sheet (CSS Syntax 5.3.3, "parse a
 * stylesheet"): never fails on content; returns PIGEON_ERR_NOMEM only. */
pigeon_err pg_css_sheet_parse(pg_css_sheet *sheet, const char *s, size_t n);
void pg_css_sheet_cleanup(pg_css_sheet *sheet);
/* Parses a declaration list (a style attribute, 5.3.8) into decls (appended). */
pigeon_err pg_css_decls_parse(pg_css_decls *decls, const char *s, size_t n);
/* The same through the tokenizer always (pg_css_decls_parse takes a plain path for the
 * declarations tools write; the tests compare the two). */
pigeon_err pg_css_decls_parse_tokens(pg_css_decls *decls, const char *s, size_t n);
pigeon_err pg_css_decls_add(pg_css_decls *decls, const char *prop, const char *value,
                            int important);
void pg_css_decls_cleanup(pg_css_decls *decls);

/* ---- the document: gumbo's tree with an element table ---- */

#define PG_NONE UINT32_MAX

/* Attributes the passes may set on an element (replacing or adding). */
enum pg_html_slot {
    PG_SLOT_STYLE,
    PG_SLOT_SRC,
    PG_SLOT_WIDTH,
    PG_SLOT_HEIGHT,
    PG_SLOT_BGCOLOR,
    PG_SLOT_ALIGN,
    PG_SLOT_VALIGN,
    PG_SLOT_BACKGROUND,
    PG_SLOT_COUNT
};
extern const char *const pg_html_slot_names[PG_SLOT_COUNT];

typedef struct pg_html_el {
    GumboNode *node;          /* the element in gumbo's tree */
    const char *tag;          /* lowercase tag name */
    const char *id;           /* the id attribute's value (gumbo's), or NULL */
    const char *cls;          /* the class attribute's value (gumbo's), or NULL */
    uint32_t parent;          /* parent element index, PG_NONE for the root */
    uint32_t prev;            /* previous element sibling, PG_NONE if first */
    uint32_t nth;             /* 1-based position among element siblings */
    uint32_t nth_last;        /* 1-based position from the end */
    uint32_t nth_type;        /* 1-based position among siblings of the same tag */
    uint32_t nth_last_type;   /* the same from the end */
    uint32_t stamp;           /* scratch for the inliner (last selector visit) */
    uint64_t anc[2];          /* Bloom filter of the ancestors' tags, ids and classes */
    char *set[PG_SLOT_COUNT]; /* attributes to write instead of or besides the
                                 element's own (malloc'd), NULL when unchanged */
    unsigned drop : 1;        /* leave the element out (an inlined <style>) */
    unsigned hidden : 1;      /* display:none after inlining (text part skips it) */
    unsigned own_tag : 1;     /* tag was malloc'd (an unknown element's name) */
} pg_html_el;

/* A bump allocator for gumbo's parse of a mail (html_arena.c). */
typedef struct pg_html_arena {
    struct pg_html_chunk *head; /* the chunk being filled, then older ones; NULL if none */
} pg_html_arena;

/* Documents up to this size are parsed into an arena. */
#define PG_HTML_ARENA_MAX (4u * 1024 * 1024)

/* gumbo's allocator and deallocator over the arena given as userdata. */
void *pg_html_arena_alloc(void *arena, size_t n);
void pg_html_arena_free(void *arena, void *p);
/* Frees every chunk (and so every allocation). */
void pg_html_arena_cleanup(pg_html_arena *a);

typedef struct pg_html_doc {
    GumboOutput *out;    /* gumbo's parse */
    pg_html_el *els;     /* every element in document order */
    size_t count;        /* how many */
    uint32_t head;       /* index of <head>, PG_NONE if none */
    pg_buf head_style;   /* CSS to write in one <style> at the end of <head> */
    GumboOptions gopts;  /* the options gumbo parsed with: its allocator frees the tree */
    pg_html_arena arena; /* the memory of the tree when gopts allocates from it */
    char *text;          /* what gumbo parsed when it is the source with the <style>
                            contents cut out (html_rawtext.c): owned, lives as long as out */
    int fast;            /* nonzero when html_fast.c built the tree (gumbo did not parse) */
} pg_html_doc;

/* The content of one <style> element taken out of the text gumbo parses. */
typedef struct pg_html_cut {
    size_t tag;  /* offset of "<style" in the cut text */
    size_t at;   /* offset in the cut text where the content was (after the start tag) */
    size_t src;  /* offset of the content in the source */
    size_t len;  /* its length in the source (never 0) */
    int comment; /* nonzero for a comment's text ("<!--" at tag), else a <style>'s */
} pg_html_cut;

typedef struct pg_html_cuts {
    pg_html_cut *items; /* in source order */
    size_t count;       /* how many */
    size_t cap;         /* allocated */
    char *text;         /* the source without the contents (malloc'd), NULL if none cut */
    size_t len;         /* its length */
} pg_html_cuts;

/* Finds the <style> contents of (s, n) and writes the text without them into cuts (see
 * html_rawtext.c for why the parse of that text is checked). PIGEON_ERR_NOMEM only. */
pigeon_err pg_html_cut_rawtext(const char *s, size_t n, pg_html_cuts *cuts);
void pg_html_cuts_cleanup(pg_html_cuts *cuts);

/* Builds gumbo's tree of (s, n) in doc's arena without gumbo when the document is one the
 * fast path follows (html_fast.c): 0 when done (doc->out and doc->gopts set), 1 when it
 * gives up (the caller frees the arena and lets gumbo parse), -1 when out of memory. */
int pg_html_fast_parse(pg_html_doc *doc, const char *s, size_t n);
/* Nonzero when gumbo passes every byte of (s, n) through unchanged: valid UTF-8 with no
 * NUL, CR, control, noncharacter or byte order mark (html_fast_text.c). */
int pg_html_fast_clean(const unsigned char *s, size_t n);
/* Decodes the character reference at s[*i] ('&') into out and moves *i past it; returns
 * 1, having done nothing, for any but a lone '&', a named one of a small table with its
 * ';', or a numeric one with its ';' to a printable character. */
int pg_html_fast_char_ref(const char *s, size_t n, size_t *i, pg_buf *out);
/* Parses (s, n) with gumbo and builds the element table, iteratively. */
pigeon_err pg_html_doc_parse(pg_html_doc *doc, const char *s, size_t n);
void pg_html_doc_cleanup(pg_html_doc *doc);
/* Adds the feature kind ('t' tag, 'i' id, 'c' class) named (s, n) to the 128-bit Bloom
 * filter f: the ancestor filter that lets a selector skip walking up the tree when a
 * compound it needs above the element is nowhere among the element's ancestors. */
void pg_html_bloom_add(uint64_t f[2], int kind, const char *s, size_t n);
/* The value of attribute name on el, or NULL. */
const char *pg_html_attr(const pg_html_el *el, const char *name);
/* The effective value: the one a pass set, else the element's own. */
const char *pg_html_attr_now(const pg_html_el *el, const char *name);

/* ---- selectors (Selectors Level 3) ---- */

typedef struct pg_css_selector pg_css_selector;

/* Why a selector is not inlined. */
enum pg_sel_kind {
    PG_SEL_INLINE = 0, /* matchable now: inline it */
    PG_SEL_KEEP,       /* dynamic, pseudo-element, unknown or unparsed: keep in <style> */
};

/* Compiles one complex selector (no commas) from (s, n). Returns NULL when out of memory;
 * otherwise a selector whose kind says whether it can be matched. */
pg_css_selector *pg_css_selector_compile(const char *s, size_t n);
void pg_css_selector_free(pg_css_selector *sel);
int pg_css_selector_kind(const pg_css_selector *sel);
/* (a, b, c) packed as a*2^20 + b*2^10 + c (each capped at 1023). */
uint32_t pg_css_selector_specificity(const pg_css_selector *sel);
/* The key of the rightmost compound for the rule index: 'i' + id, 'c' + class, 't' + tag,
 * or '*' when none; name and len point into the selector. */
int pg_css_selector_key(const pg_css_selector *sel, const char **name, size_t *len);
/* Nonzero if element i of doc matches. */
int pg_css_selector_match(const pg_css_selector *sel, const pg_html_doc *doc, uint32_t i);
/* Splits a selector list at top-level commas: calls fn for each part. */
void pg_css_selector_split(const char *s, size_t n,
                           void (*fn)(void *ctx, const char *part, size_t len), void *ctx);

/* ---- passes ---- */

/* Inlines sheet into doc: sets PG_SLOT_STYLE (and Outlook's attributes when attrs),
 * fills doc->head_style with what stays, marks inlined <style> elements dropped. */
pigeon_err pg_html_inline(pg_html_doc *doc, const pg_css_sheet *sheet, int attrs);
/* The passes before output, as opts says: <style> blocks and opts->css inlined (or kept),
 * images to cid: into res (html_plan.c runs them on a template with markers). */
pigeon_err pg_html_passes(pg_html_doc *doc, const pigeon_html_opts *o, pigeon_html_result *res);
/* Writes doc as HTML (the WHATWG serialization algorithm) with the slots applied. */
pigeon_err pg_html_serialize(const pg_html_doc *doc, pg_buf *out);
/* Appends s[0, n) escaped as the serializer does (" too when attr): the merge's values. */
void pg_html_escape(pg_buf *out, const char *s, size_t n, int attr);
/* Writes the text part for doc, wrapped at width columns. */
pigeon_err pg_html_text(const pg_html_doc *doc, size_t width, pg_buf *out);
/* Replaces local and data: image references (img src, background attributes, url() in
 * style attributes) by cid: references and lists the images in res. */
pigeon_err pg_html_images(pg_html_doc *doc, pigeon_html_result *res);
/* Frees images[0, n) (each one's cid, path, data and content type) and the array itself;
 * images NULL frees nothing. A result's and a merge plan's lists both end here. */
void pg_html_images_free(pigeon_html_image *images, size_t n);
/* Display width (UAX #11: 2 for East Asian Wide and Fullwidth, else 1, 0 for combining
 * marks) of code point cp. */
int pg_html_cp_width(uint32_t cp);

#endif
