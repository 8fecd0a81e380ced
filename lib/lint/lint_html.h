/*
 * lint_html.h - a small HTML scanner for the lint: the links (href and their text), the
 * images (src) and the amount of visible text. Not a full HTML5 parser: tags, attributes
 * (quoted or not), comments and the contents of script and style are recognized, which
 * is what a message's links and images need; malformed input is scanned as far as it goes.
 */
#ifndef PIGEON_LINT_HTML_H
#define PIGEON_LINT_HTML_H

#include <stddef.h>

#include "pigeon/error.h"

/* Links and images kept at most (a message with more is judged on these). */
#define PG_LINT_HTML_MAX 256

typedef struct pg_lint_link {
    char *href; /* the href attribute, entity-decoded, owned */
    char *text; /* the visible text inside <a>, white space collapsed, owned */
} pg_lint_link;

typedef struct pg_lint_html {
    pg_lint_link links[PG_LINT_HTML_MAX]; /* the first links */
    size_t nlinks;                        /* number kept */
    char *images[PG_LINT_HTML_MAX];       /* the first <img> src values, owned */
    size_t nimages;                       /* number kept */
    size_t text_chars;                    /* visible non-space characters (UTF-8 octets
                                             counted once per character) */
} pg_lint_html;

/* Scans html[0..len) into out (zeroed first). PIGEON_ERR_NOMEM only. */
pigeon_err pg_lint_html_scan(const char *html, size_t len, pg_lint_html *out);
void pg_lint_html_cleanup(pg_lint_html *h);

#endif
