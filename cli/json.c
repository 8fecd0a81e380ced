/*
 * json.c - minimal streaming JSON writer (RFC 8259).
 */
#include "json.h"
#include "util/utf8.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

static void separator(json_writer *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth > 0 && w->depth <= JSON_MAX_DEPTH) {
        if (w->count[w->depth - 1]++ > 0)
            fputc(',', w->out);
    }
}

static void open_scope(json_writer *w, char c)
{
    separator(w);
    fputc(c, w->out);
    if (w->depth < JSON_MAX_DEPTH)
        w->count[w->depth] = 0;
    w->depth++;
}

static void close_scope(json_writer *w, char c)
{
    if (w->depth > 0)
        w->depth--;
    fputc(c, w->out);
}

void json_init(json_writer *w, FILE *out)
{
    memset(w, 0, sizeof *w);
    w->out = out;
}

void json_object_begin(json_writer *w)
{
    open_scope(w, '{');
}

void json_object_end(json_writer *w)
{
    close_scope(w, '}');
}

void json_array_begin(json_writer *w)
{
    open_scope(w, '[');
}

void json_array_end(json_writer *w)
{
    close_scope(w, ']');
}

static void write_escaped(FILE *out, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    fputc('"', out);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
            i++;
        } else if (c == '\n') {
            fputs("\\n", out);
            i++;
        } else if (c == '\r') {
            fputs("\\r", out);
            i++;
        } else if (c == '\t') {
            fputs("\\t", out);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            /* A run of plain ASCII goes out in one call. */
            size_t j = i + 1;
            while (j < n && s[j] >= 0x20 && s[j] < 0x7f && s[j] != '"' && s[j] != '\\')
                j++;
            fwrite(s + i, 1, j - i, out);
            i = j;
        } else {
            size_t len = pg_utf8_decode(s + i, n - i, NULL);
            if (len == 0) {
                fputs("\\ufffd", out);
                i++;
            } else {
                fwrite(s + i, 1, len, out);
                i += len;
            }
        }
    }
    fputc('"', out);
}

void json_key(json_writer *w, const char *key)
{
    separator(w);
    write_escaped(w->out, key);
    fputc(':', w->out);
    w->after_key = 1;
}

void json_string(json_writer *w, const char *s)
{
    separator(w);
    if (s == NULL)
        fputs("null", w->out);
    else
        write_escaped(w->out, s);
}

void json_int(json_writer *w, int64_t v)
{
    separator(w);
    fprintf(w->out, "%" PRId64, v);
}

void json_double(json_writer *w, double v)
{
    separator(w);
    if (isfinite(v))
        fprintf(w->out, "%.6g", v);
    else
        fputs("null", w->out);
}

void json_bool(json_writer *w, int v)
{
    separator(w);
    fputs(v ? "true" : "false", w->out);
}

void json_null(json_writer *w)
{
    separator(w);
    fputs("null", w->out);
}

void json_kv_string(json_writer *w, const char *key, const char *s)
{
    json_key(w, key);
    json_string(w, s);
}

void json_kv_int(json_writer *w, const char *key, int64_t v)
{
    json_key(w, key);
    json_int(w, v);
}

void json_kv_bool(json_writer *w, const char *key, int v)
{
    json_key(w, key);
    json_bool(w, v);
}

void json_finish(json_writer *w)
{
    fputc('\n', w->out);
    fflush(w->out);
}
