/*
 * pigeon/template.h - Mustache templates, the variables they read, and the rows of a
 * mail merge.
 *
 * Three pieces, used together by `pigeon send` and usable alone:
 *
 *  - pigeon_vars: a small tree of values (null, booleans, numbers, strings, lists and
 *    objects) built by hand, read from JSON (RFC 8259, strictly) or from a merge row.
 *  - pigeon_template: a Mustache template compiled once and rendered many times against
 *    a stack of pigeon_vars scopes: {{name}}, {{{name}}} and {{& name}}, sections over
 *    lists, objects and truthy values, inverted sections, dotted names, the implicit
 *    iterator {{.}}, comments, set delimiters and the spec's standalone-line rules.
 *    Partials and lambdas are not supported (a partial tag is an error).
 *  - pigeon_rows: a streaming reader of merge lists: RFC 4180 CSV with a header row, or
 *    JSON Lines (one object per line). One row is held at a time.
 *
 * A value is written once, as it is: it is never parsed as a template again. How it is
 * written depends on where the template goes (pigeon_template_mode): escaped for HTML,
 * raw for text, refused when it would put a line break into a header, percent-encoded in
 * a URL.
 *
 * Thread safety: a compiled template is immutable and may be rendered by several threads
 * at once; vars and rows objects are used by one thread at a time.
 */
#ifndef PIGEON_TEMPLATE_H
#define PIGEON_TEMPLATE_H

#include <stddef.h>

#include "pigeon/error.h"
#include "pigeon/message.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- values ---- */

typedef enum pigeon_var_type {
    PIGEON_VAR_NULL = 0,
    PIGEON_VAR_BOOL = 1,
    PIGEON_VAR_NUMBER = 2, /* kept as text (JSON's spelling, shortest for decimals) */
    PIGEON_VAR_STRING = 3,
    PIGEON_VAR_LIST = 4,
    PIGEON_VAR_OBJECT = 5,
} pigeon_var_type;

/* One value; an object or list owns its members. */
typedef struct pigeon_vars pigeon_vars;

/* A new empty object. NULL when out of memory. */
pigeon_vars *pigeon_vars_new(void);

/* Frees v and everything under it. NULL is a no-op. */
void pigeon_vars_free(pigeon_vars *v);

/*
 * Sets the string value of key in the object obj (UTF-8, len bytes, (size_t)-1 for
 * NUL-terminated). A dotted key ("user.name") sets a member of a nested object, creating
 * the objects on the way. A key set again takes the new value. Errors: PIGEON_ERR_INVALID
 * (obj not an object, an empty key or key part, a part of the path that is not an
 * object), PIGEON_ERR_CHARSET (value or key not valid UTF-8), PIGEON_ERR_NOMEM.
 */
pigeon_err pigeon_vars_set(pigeon_vars *obj, const char *key, const char *value, size_t len);

/* The member key (exact, not dotted) of the object obj, or NULL (also when obj is not an
 * object). Borrowed from obj. */
const pigeon_vars *pigeon_vars_get(const pigeon_vars *obj, const char *key);

/* v's type (PIGEON_VAR_NULL for a NULL v). */
pigeon_var_type pigeon_vars_type(const pigeon_vars *v);

/* A string's or number's text ("true"/"false" for booleans, "" for null), with its length
 * in *len if len is not NULL; NULL for lists and objects. Borrowed from v. */
const char *pigeon_vars_text(const pigeon_vars *v, size_t *len);

/* Limits of the JSON reader; zero fields take the defaults. */
typedef struct pigeon_json_limits {
    size_t max_size;  /* largest document, default 16 MiB */
    unsigned depth;   /* deepest nesting of arrays and objects, default 64 */
    size_t max_items; /* most values in the whole document, default 1,000,000 */
} pigeon_json_limits;

/* Where and why a JSON document was refused. */
typedef struct pigeon_json_error {
    size_t offset;     /* byte offset of the problem */
    unsigned line;     /* its line, from 1 */
    char message[128]; /* one line, English */
} pigeon_json_error;

/*
 * Reads one JSON text (RFC 8259) into a new tree. Strict: no comments, no trailing
 * commas, no single quotes, no NaN; strings must be valid UTF-8 with well-formed \u
 * escapes (surrogates in pairs); only whitespace may follow the value. A leading UTF-8
 * byte order mark is skipped. An object that repeats a name is refused (two readers
 * picking different values is how checks are bypassed). limits and err may be NULL. Errors:
 * PIGEON_ERR_INVALID (syntax), PIGEON_ERR_CHARSET, PIGEON_ERR_TOO_LARGE (a limit),
 * PIGEON_ERR_NOMEM; *out is then NULL.
 */
pigeon_err pigeon_vars_parse_json(const char *json, size_t len, const pigeon_json_limits *limits,
                                  pigeon_vars **out, pigeon_json_error *err);

/* ---- templates ---- */

typedef struct pigeon_template pigeon_template;

/* How values are written. */
typedef enum pigeon_template_mode {
    PIGEON_TEMPLATE_TEXT = 0,   /* as they are */
    PIGEON_TEMPLATE_HTML = 1,   /* {{x}} escapes & < > " ' ; {{{x}}} and {{&x}} do not */
    PIGEON_TEMPLATE_HEADER = 2, /* as text, but a value with CR, LF or NUL is an error */
    PIGEON_TEMPLATE_URL = 3,    /* {{x}} percent-encodes all but RFC 3986 unreserved
                                   characters; {{{x}}} is raw, CR, LF, NUL refused */
} pigeon_template_mode;

/* Flags of pigeon_template_render(). */
#define PIGEON_TEMPLATE_ALLOW_MISSING 1u /* a missing variable is written as "" */

/* What went wrong in a compile or a render. */
typedef struct pigeon_template_error {
    unsigned line;     /* the template line (from 1) of the tag at fault, 0 if none */
    char name[96];     /* the variable or section name involved, or "" */
    char message[256]; /* one line, English, naming both */
} pigeon_template_error;

/*
 * Compiles src (len bytes, UTF-8). The template keeps its own copy. err may be NULL.
 * Errors: PIGEON_ERR_INVALID (an unclosed tag or section, a mismatched close, an empty
 * name, a partial, bad delimiters, nesting deeper than 64), PIGEON_ERR_CHARSET (src not
 * UTF-8), PIGEON_ERR_NOMEM.
 */
pigeon_err pigeon_template_compile(const char *src, size_t len, pigeon_template **out,
                                   pigeon_template_error *err);

/* Frees a template. NULL is a no-op. */
void pigeon_template_free(pigeon_template *t);

/* Nonzero when the template has no tags at all (rendering gives its source back). */
int pigeon_template_is_static(const pigeon_template *t);

/*
 * Renders t into a new malloc'd NUL-terminated string (*out, *len; freed by the caller).
 * Names are looked up in scopes[nscopes-1] first, then down to scopes[0] (each an object;
 * NULL entries skipped), as Mustache's context stack, below what sections push.
 * Errors: PIGEON_ERR_INVALID (a missing variable without ALLOW_MISSING; a list or object
 * where a value is written), PIGEON_ERR_HEADER (a value with CR, LF or NUL in HEADER mode,
 * or raw in URL mode), PIGEON_ERR_TOO_LARGE (over 64 MiB of output, or over a million
 * steps: sections over lists multiply), PIGEON_ERR_NOMEM; err (may be NULL) names the
 * variable and the line.
 * Missing names in sections are false, never an error.
 */
pigeon_err pigeon_template_render(const pigeon_template *t, const pigeon_vars *const *scopes,
                                  size_t nscopes, pigeon_template_mode mode, unsigned flags,
                                  char **out, size_t *len, pigeon_template_error *err);

/*
 * Flat templates: text and {{name}} tags only (no sections, no {{{raw}}}), the form a
 * mail merge can prepare once and fill per row. pigeon_template_flat() returns the number
 * of {{name}} tags, or (size_t)-1 when t is not flat (or NULL).
 */
size_t pigeon_template_flat(const pigeon_template *t);

/*
 * Piece i of a flat template: the text before tag i (i == the number of tags: the text
 * after the last one) in *text, *text_len, and tag i's name in *name, *name_len (NULL for
 * the last piece). Text pieces are the template's literal text, comments and standalone
 * lines already removed. Errors: PIGEON_ERR_INVALID (not flat, i out of range).
 */
pigeon_err pigeon_template_piece(const pigeon_template *t, size_t i, const char **text,
                                 size_t *text_len, const char **name, size_t *name_len);

/*
 * The text of tag i's value in scopes (looked up as pigeon_template_render does), unescaped:
 * what {{name}} writes before any escaping. NULL when the value is missing, a list or an
 * object (rendering reports those; pigeon_template_render gives the exact error).
 */
const char *pigeon_template_value(const pigeon_template *t, size_t i,
                                  const pigeon_vars *const *scopes, size_t nscopes, size_t *len);

/* ---- merge rows ---- */

typedef enum pigeon_rows_format {
    PIGEON_ROWS_CSV = 0,   /* RFC 4180, header row, comma-separated, optional BOM */
    PIGEON_ROWS_JSONL = 1, /* one JSON object per line; blank lines skipped */
} pigeon_rows_format;

typedef struct pigeon_rows pigeon_rows;

/* A reader over read(ctx) (borrowed; read until it gives 0 bytes). NULL on no memory. */
pigeon_rows *pigeon_rows_new(pigeon_rows_format format, pigeon_read_fn read, void *ctx);

/* Frees the reader and the last row. NULL is a no-op. */
void pigeon_rows_free(pigeon_rows *r);

/*
 * Reads the next row into *row: an object whose members are the row's columns (CSV: the
 * header's names, string values; JSON Lines: the object), owned by the reader until the
 * next call. *line is the row's first line in the input. *row is NULL at the end.
 * Errors: PIGEON_ERR_INVALID or PIGEON_ERR_CHARSET or PIGEON_ERR_TOO_LARGE for a bad row
 * (bad quoting, wrong number of fields, not an object, over 1 MiB): the reason is in
 * pigeon_rows_error() and the next call goes on with the next row; PIGEON_ERR_CORRUPT for
 * a header that cannot be used (empty, duplicate or invalid names) and PIGEON_ERR_IO for a
 * read error: both final.
 */
pigeon_err pigeon_rows_next(pigeon_rows *r, const pigeon_vars **row, unsigned long *line);

/* The reason for the last error, one line; "" if none. */
const char *pigeon_rows_error(const pigeon_rows *r);

#ifdef __cplusplus
}
#endif
#endif
