/*
 * fuzz_reply.c - libFuzzer target for the SMTP reply parser (lib/smtp/reply.c).
 *
 * The input is fed twice: as one buffer (pg_reply_parse, restarting after each complete
 * reply as a pipelining client would) and line by line (pg_reply_feed). Invariants: no
 * out-of-bounds access (ASan), text always NUL-terminated within its bound, a DONE reply
 * has a code in 200..599, its lines are bounded, and both ways agree on the first reply.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const pg_reply *r, pg_reply_status st)
{
    if (r->text_len >= sizeof r->text || r->text[r->text_len] != '\0')
        abort();
    if (r->lines > PG_REPLY_LINES_MAX + 1)
        abort();
    if (st == PG_REPLY_DONE && (r->code < 200 || r->code > 599))
        abort();
    if (st == PG_REPLY_ERROR && r->why == NULL)
        abort();
    size_t pos = 0, len = 0;
    const char *line = NULL;
    while (pg_reply_next_line(r, &pos, &line, &len)) {
        if (line < r->text || line + len > r->text + r->text_len)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pg_reply a, b;
    const char *buf = (const char *)data;
    size_t off = 0;
    pg_reply_status first = PG_REPLY_MORE;
    int first_code = 0;
    for (int n = 0; off < size; n++) {
        size_t used = 0;
        pg_reply_init(&a);
        pg_reply_status st = pg_reply_parse(&a, buf + off, size - off, &used);
        check(&a, st);
        if (n == 0) {
            first = st;
            first_code = a.code;
        }
        if (st != PG_REPLY_DONE || used == 0)
            break;
        off += used;
    }
    /* Line by line over the same bytes, up to the first reply's end. */
    pg_reply_init(&b);
    pg_reply_status st = PG_REPLY_MORE;
    size_t pos = 0;
    while (st == PG_REPLY_MORE && pos < size) {
        const uint8_t *lf = memchr(data + pos, '\n', size - pos);
        if (lf == NULL)
            break;
        size_t n = (size_t)(lf - (data + pos)) + 1;
        st = pg_reply_feed(&b, buf + pos, n);
        check(&b, st);
        pos += n;
    }
    if (st == PG_REPLY_DONE && (first != PG_REPLY_DONE || b.code != first_code))
        abort();
    return 0;
}
