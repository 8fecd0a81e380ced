/*
 * template_int.h - the compiled form of a Mustache template, shared by the compiler
 * (template.c) and the renderer (template_render.c), one unit split for size.
 */
#ifndef PG_TEMPLATE_INT_H
#define PG_TEMPLATE_INT_H

#include <stddef.h>

#include "pigeon/template.h"

/* Deepest nesting of sections; also bounds the renderer's recursion. */
#define PG_TEMPLATE_MAX_DEPTH 64
/* Longest delimiter set with {{=<% %>=}}. */
#define PG_TEMPLATE_DELIM_MAX 16

typedef enum pg_node_kind {
    PG_NODE_TEXT,     /* literal text */
    PG_NODE_VAR,      /* {{name}}: escaped per mode */
    PG_NODE_RAW,      /* {{{name}}} or {{&name}}: never escaped */
    PG_NODE_SECTION,  /* {{#name}} ... up to its close node */
    PG_NODE_INVERTED, /* {{^name}} ... */
    PG_NODE_CLOSE,    /* {{/name}} */
} pg_node_kind;

/* One piece of the template, in source order. */
typedef struct pg_node {
    pg_node_kind kind; /* what it is */
    size_t off;        /* TEXT: offset of the text in the source; else of the name */
    size_t len;        /* TEXT: its length; else the name's length */
    size_t close;      /* SECTION, INVERTED: index of the matching CLOSE node */
    unsigned line;     /* the line of the tag (for errors) */
} pg_node;

struct pigeon_template {
    char *src;      /* a copy of the source (names and text point into it) */
    size_t src_len; /* its length */
    pg_node *nodes; /* the pieces */
    size_t count;   /* number of nodes */
    size_t cap;     /* allocated nodes */
    int has_tags;   /* anything but text and comments */
};

/* Formats err (may be NULL) with the line and name (n bytes at name). */
void pg_template_fail(pigeon_template_error *err, unsigned line, const char *name, size_t n,
                      const char *fmt);

/* The value of name (len bytes, dotted parts allowed, "." the top) in the context stack
 * (depth entries, bottom first), per Mustache's lookup rules; NULL when missing. */
const pigeon_vars *pg_template_resolve(const pigeon_vars *const *stack, size_t depth,
                                       const char *name, size_t len);

#endif
