/*
 * fuzz_rawmsg.c - libFuzzer target for sendmail mode's message reader (rawmsg.c).
 *
 * Properties checked on every input:
 *  - the reader gives the same header block, body and end as one chunk or split at any
 *    point, and its output has no bare CR or LF;
 *  - the reader notes the same first NUL and first long body line however it is split;
 *  - the parser never fails on what it accepted before; the writer's header block
 *    re-parses to the same fields minus Bcc and Resent-Bcc (plus From, Date and
 *    Message-ID), has CRLF line endings only, no Bcc field and no line over 998 octets
 *    (long lines folded), and fails exactly when pg_rawmsg_unfoldable() says so.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"
#include "mime/rawmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Nonzero if s has a CR not followed by LF or an LF not preceded by CR. */
static int bare_breaks(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' && (i + 1 == n || s[i + 1] != '\n'))
            return 1;
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            return 1;
    }
    return 0;
}

/* Runs the reader with the input cut at split; returns nonzero if the reader failed. */
static int read_split(const uint8_t *data, size_t size, size_t split, int dot_ends,
                      pg_rawmsg_reader *r, pg_buf *body)
{
    pg_rawmsg_reader_init(r, dot_ends);
    pg_buf_init(body);
    if (pg_rawmsg_reader_feed(r, data, split, body) != PIGEON_OK ||
        pg_rawmsg_reader_feed(r, data + split, size - split, body) != PIGEON_OK ||
        pg_rawmsg_reader_finish(r, body) != PIGEON_OK)
        return 1;
    return 0;
}

static void check_reader(const uint8_t *data, size_t size, int dot_ends)
{
    pg_rawmsg_reader a, b;
    pg_buf body_a, body_b;
    size_t split = size > 0 ? data[0] % size : 0;
    int fail_a = read_split(data, size, size, dot_ends, &a, &body_a);
    int fail_b = read_split(data, size, split, dot_ends, &b, &body_b);
    if (fail_a != fail_b)
        abort();
    if (!fail_a) {
        if (a.header.len != b.header.len || body_a.len != body_b.len || a.done != b.done ||
            a.nul_line != b.nul_line || a.long_line != b.long_line ||
            (a.header.len && memcmp(a.header.data, b.header.data, a.header.len) != 0) ||
            (body_a.len && memcmp(body_a.data, body_b.data, body_a.len) != 0))
            abort();
        if (bare_breaks(a.header.data ? a.header.data : "", a.header.len) ||
            bare_breaks(body_a.data ? body_a.data : "", body_a.len))
            abort();
    }
    pg_buf_cleanup(&body_a);
    pg_buf_cleanup(&body_b);
    pg_rawmsg_reader_cleanup(&a);
    pg_rawmsg_reader_cleanup(&b);
}

/* The writer's output re-parses to the same fields without Bcc. */
static void check_writer(const pg_rawmsg *m)
{
    static const pigeon_mailbox from = {NULL, "fuzz", "example.com", "example.com", NULL};
    pg_rawmsg_out_opts o = {&from, 1700000000, 0, NULL};
    pg_buf out;
    pg_rawmsg again;
    pg_buf_init(&out);
    pigeon_err e = pg_rawmsg_write_header(m, &o, &out);
    if ((e == PIGEON_ERR_HEADER) != (pg_rawmsg_unfoldable(m) != NULL))
        abort();
    if (e != PIGEON_OK) {
        pg_buf_cleanup(&out);
        return;
    }
    for (size_t at = 0, line = 0; at < out.len; at++) {
        line = out.data[at] == '\n' ? 0 : line + 1;
        if (line > 999) /* 998 octets and the CR */
            abort();
    }
    if (bare_breaks(out.data, out.len) || out.len < 2 ||
        pg_rawmsg_parse(&again, out.data, out.len, NULL, 0) != PIGEON_OK)
        abort();
    if (pg_rawmsg_count(&again, "Bcc") != 0 || pg_rawmsg_count(&again, "Resent-Bcc") != 0 ||
        !again.has_separator || again.body_offset != out.len)
        abort();
    size_t j = 0;
    for (size_t i = 0; i < m->count; i++) {
        if (strcasecmp(m->fields[i].name, "Bcc") == 0 ||
            strcasecmp(m->fields[i].name, "Resent-Bcc") == 0)
            continue;
        if (j >= again.count || strcmp(m->fields[i].name, again.fields[j].name) != 0 ||
            strcmp(m->fields[i].value, again.fields[j].value) != 0)
            abort();
        j++;
    }
    if (pg_rawmsg_count(&again, "Date") == 0 || pg_rawmsg_count(&again, "Message-ID") == 0)
        abort();
    pg_rawmsg_cleanup(&again);
    pg_buf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pg_rawmsg m;
    check_reader(data, size, size > 0 && (data[0] & 1));
    if (pg_rawmsg_parse(&m, (const char *)data, size, NULL, 0) == PIGEON_OK) {
        pigeon_address_list rcpts = {0};
        pg_rawmsg_recipients(&m, &rcpts, NULL, 0);
        pigeon_address_list_cleanup(&rcpts);
        check_writer(&m);
        pg_rawmsg_cleanup(&m);
    }
    return 0;
}
