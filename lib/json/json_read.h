/*
 * json_read.h - a JSON reader with hard limits (internal), RFC 8259.
 *
 * Parses a whole document from (buf, len) into a tree held in one arena (freed at once
 * with pg_json_free). Built for input from the network: the depth, the input size, the
 * number of values and the length of a string are bounded; strings must be valid UTF-8
 * (RFC 8259 8.1), escapes are decoded (a \u escape must not be a lone surrogate, 7.),
 * control characters must be escaped (7.); numbers follow the grammar of section 6
 * exactly; an object with the same key twice is refused (section 4 leaves its meaning
 * open, and two readers picking different values is how checks are bypassed); nothing
 * may follow the value but whitespace (2.). Errors report the octet offset and a reason.
 */
#ifndef PG_JSON_READ_H
#define PG_JSON_READ_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/error.h"

typedef enum pg_json_type {
    PG_JSON_NULL = 0,
    PG_JSON_FALSE,
    PG_JSON_TRUE,
    PG_JSON_NUMBER,
    PG_JSON_STRING,
    PG_JSON_ARRAY,
    PG_JSON_OBJECT,
} pg_json_type;

/* One value of the tree (all memory in the document's arena). */
typedef struct pg_json_value {
    pg_json_type type;          /* what it is */
    const char *str;            /* STRING: decoded UTF-8, NUL-terminated; NUMBER: its text */
    size_t len;                 /* octets of str (a string may hold U+0000: use len) */
    double num;                 /* NUMBER: its value (strtod) */
    const char *key;            /* as an object member: its key (decoded, NUL-terminated) */
    size_t key_len;             /* its length */
    struct pg_json_value *head; /* ARRAY/OBJECT: the first element or member */
    struct pg_json_value *next; /* the next sibling in the parent */
    size_t count;               /* ARRAY/OBJECT: number of elements or members */
} pg_json_value;

/* Bounds; zero fields take the defaults in parentheses. */
typedef struct pg_json_limits {
    size_t max_depth;  /* nesting of arrays and objects (32) */
    size_t max_size;   /* octets of input (16 MiB) */
    size_t max_values; /* values in the document (1,000,000) */
    size_t max_string; /* octets of one decoded string (16 MiB) */
} pg_json_limits;

/* Where and why parsing failed. */
typedef struct pg_json_error {
    size_t offset;    /* octet offset of the problem in the input */
    char reason[128]; /* "unterminated string", "nesting deeper than 32"... */
} pg_json_error;

typedef struct pg_json_doc pg_json_doc;

/*
 * Parses len octets at buf. On success *out is the document (its root with
 * pg_json_root()). Errors: PIGEON_ERR_PROTOCOL (not JSON: err says where and why),
 * PIGEON_ERR_CHARSET (a string that is not valid UTF-8), PIGEON_ERR_TOO_LARGE (a limit),
 * PIGEON_ERR_NOMEM, PIGEON_ERR_INVALID (NULL arguments). limits and err may be NULL.
 */
pigeon_err pg_json_parse(const char *buf, size_t len, const pg_json_limits *limits,
                         pg_json_doc **out, pg_json_error *err);

/* The root value of a document. */
const pg_json_value *pg_json_root(const pg_json_doc *doc);

/* Frees the document and every value in it. NULL does nothing. */
void pg_json_free(pg_json_doc *doc);

/* The member named key of an object, or NULL (also when obj is not an object). */
const pg_json_value *pg_json_get(const pg_json_value *obj, const char *key);

/* A JSON Pointer (RFC 6901) segment escaped for use in messages: "~" -> "~0", "/" -> "~1".
 * Writes at most size octets (NUL-terminated) to out and returns out. */
char *pg_json_pointer_escape(const char *segment, char *out, size_t size);

#endif
