/*
 * json.h - a minimal streaming JSON writer for --json output (RFC 8259).
 *
 * Writes to a FILE as it goes; the caller opens and closes objects and arrays, and the
 * writer places commas. Strings are escaped (quote, backslash, control characters as
 * \u00XX); UTF-8 passes through, invalid bytes become U+FFFD.
 */
#ifndef PIGEON_CLI_JSON_H
#define PIGEON_CLI_JSON_H

#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16 /* deepest nesting the writer tracks */

typedef struct json_writer {
    FILE *out;                 /* destination */
    int depth;                 /* current nesting depth */
    int count[JSON_MAX_DEPTH]; /* members written at each depth */
    int after_key;             /* a key was just written; its value comes next */
} json_writer;

void json_init(json_writer *w, FILE *out);
void json_object_begin(json_writer *w);
void json_object_end(json_writer *w);
void json_array_begin(json_writer *w);
void json_array_end(json_writer *w);
/* Object member keys; the value follows with one of the value calls. */
void json_key(json_writer *w, const char *key);
void json_string(json_writer *w, const char *s); /* NULL writes null */
void json_int(json_writer *w, int64_t v);
void json_double(json_writer *w, double v);
void json_bool(json_writer *w, int v);
void json_null(json_writer *w);
/* Shorthands: key + value. */
void json_kv_string(json_writer *w, const char *key, const char *s);
void json_kv_int(json_writer *w, const char *key, int64_t v);
void json_kv_bool(json_writer *w, const char *key, int v);
/* Ends the document with a newline. */
void json_finish(json_writer *w);

#endif
