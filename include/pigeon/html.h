/*
 * pigeon/html.h - HTML mail that renders everywhere: CSS inlined into style attributes,
 * a plain-text alternative generated from the HTML, local and data: images turned into
 * inline cid: parts, and Markdown rendered to such HTML.
 *
 * Pure functions of their input: nothing is read from disk (image files are named in the
 * result for the caller to attach, as pigeon send does with pigeon_message_attach_file),
 * nothing printed. Thread-safe: no shared state. HTML is parsed as a browser parses it
 * (the WHATWG algorithm, by gumbo), CSS per CSS Syntax Level 3, selectors per Selectors
 * Level 3. Any input is accepted: malformed HTML and CSS are recovered from as a browser
 * does, never an error. Time is linear in the document size for a given stylesheet, and
 * the stack does not grow with nesting depth.
 */
#ifndef PIGEON_HTML_H
#define PIGEON_HTML_H

#include <stddef.h>

#include "pigeon/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What pigeon_html_prepare does; zero-initialized means everything, wrapped at 78. */
typedef struct pigeon_html_opts {
    int no_inline;   /* nonzero: leave <style> blocks as written, inline nothing */
    int no_text;     /* nonzero: generate no text part */
    int no_images;   /* nonzero: leave image references as written */
    int no_attrs;    /* nonzero: no width/height/bgcolor/align/valign attributes */
    const char *css; /* more CSS applied after the document's own <style> blocks
                        (pigeon send --css), or NULL */
    size_t css_len;  /* its length */
    size_t wrap;     /* text part width in columns; 0 means 78 */
} pigeon_html_opts;

/* An image the HTML now references as cid:<cid>: either a local file to attach or the
 * decoded bytes of a data: URI. */
typedef struct pigeon_html_image {
    char *cid;          /* the Content-ID, without angle brackets */
    char *path;         /* the file as written in the HTML (percent-decoded, relative to
                           the HTML file's folder), or NULL for a data: URI */
    char *data;         /* the decoded data: URI bytes, or NULL */
    size_t len;         /* their length */
    char *content_type; /* the data: URI's media type, or NULL (guess from the path) */
} pigeon_html_image;

typedef struct pigeon_html_result {
    char *html;                /* the HTML to send, NUL-terminated */
    size_t html_len;           /* its length */
    char *text;                /* the text part (UTF-8, LF line ends), NULL if no_text */
    size_t text_len;           /* its length */
    pigeon_html_image *images; /* images to attach inline, each once, in first-use order */
    size_t nimages;            /* how many */
} pigeon_html_result;

/* Inlines the CSS of (html, len), generates the text part and collects the images, as
 * opts says (NULL: all defaults). On success *res holds malloc'd results released with
 * pigeon_html_result_cleanup(). With no_inline, no_images and no css the HTML is the
 * input unchanged. Errors: PIGEON_ERR_INVALID (NULL html or res), PIGEON_ERR_CHARSET (not
 * UTF-8), PIGEON_ERR_TOO_LARGE (over 2 GiB), PIGEON_ERR_NOMEM. */
pigeon_err pigeon_html_prepare(const char *html, size_t len, const pigeon_html_opts *opts,
                               pigeon_html_result *res);

/* Frees what a result holds and zeroes it. NULL is a no-op. */
void pigeon_html_result_cleanup(pigeon_html_result *res);

/*
 * A plan: pigeon_html_prepare run once on a template whose values are still to come, for
 * a mail merge to fill per row at the cost of a copy. In the HTML given to
 * pigeon_html_plan_new, slot i (from 0) is written PIGEON_HTML_MARK_OPEN, i in decimal,
 * PIGEON_HTML_MARK_CLOSE (private-use code points U+E000 and U+E001, which the rest of
 * the document must not contain).
 */
#define PIGEON_HTML_MARK_OPEN  "\xEE\x80\x80"
#define PIGEON_HTML_MARK_CLOSE "\xEE\x80\x81"

typedef struct pigeon_html_plan pigeon_html_plan;

/*
 * Runs the passes of pigeon_html_prepare (opts as there) on html with nslots marked slots
 * and keeps the output cut at them. PIGEON_ERR_UNSUPPORTED when a slot is somewhere its
 * value could change more than its own place: in a tag or attribute name, a comment, raw
 * text (style, script...), an attribute the passes read (style, class, id, src,
 * background, the table attributes, any attribute when a selector tests attributes),
 * or dropped; or when opts change nothing (the source is then sent as written). The
 * caller then prepares each document whole. A text part, when opts ask for one, wraps
 * around the values: the plan keeps the tree and writes it per render. A plan is used by
 * one thread at a time. Other errors as pigeon_html_prepare's.
 */
pigeon_err pigeon_html_plan_new(const char *html, size_t len, size_t nslots,
                                const pigeon_html_opts *opts, pigeon_html_plan **out);

/*
 * Fills *res as pigeon_html_prepare would on the template with values[i] (lens[i] bytes,
 * unescaped) written HTML-escaped in slot i: the value goes in escaped as the serializer
 * writes text or attribute values, and the text part (if planned) is written from the
 * tree with the values in place. PIGEON_ERR_UNSUPPORTED when a value is not one that
 * the planned parse stands for (empty, starting with white space, holding CR or NUL, not
 * UTF-8): prepare that document whole. PIGEON_ERR_NOMEM.
 */
pigeon_err pigeon_html_plan_render(pigeon_html_plan *p, const char *const *values,
                                   const size_t *lens, pigeon_html_result *res);

/* Frees a plan. NULL is a no-op. */
void pigeon_html_plan_free(pigeon_html_plan *p);

/* Renders Markdown (CommonMark with GitHub's tables, strikethrough and autolinks) as a
 * complete HTML document styled by css (NULL: a small email-safe default stylesheet),
 * to be passed to pigeon_html_prepare. Raw HTML in the Markdown is kept. *html is
 * malloc'd, NUL-terminated. Errors: PIGEON_ERR_INVALID, PIGEON_ERR_NOMEM,
 * PIGEON_ERR_UNSUPPORTED (built without cmark-gfm). */
pigeon_err pigeon_html_from_markdown(const char *md, size_t len, const char *css, char **html,
                                     size_t *html_len);

/* The default stylesheet used for Markdown. Static, never NULL. */
const char *pigeon_html_markdown_css(void);

#ifdef __cplusplus
}
#endif
#endif
