/*
 * fuzz_imap.c - libFuzzer target for the IMAP response parser (lib/mailbox/imap_parse.c),
 * the modified UTF-7 codec (lib/mailbox/mutf7.c) and the POP3 line parsers
 * (lib/mailbox/pop3_parse.c).
 *
 * The input is parsed as a stream of IMAP responses (restarting after each one, as the
 * client does), and at every prefix length of the first response. Invariants: no
 * out-of-bounds access (ASan), tokens lie inside the input, a DONE response consumed at
 * least one CRLF-terminated line, a prefix never parses to DONE with more than it was
 * given, an ERROR always says why; modified UTF-7 that decodes re-encodes to itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailbox/imap_parse.h"
#include "mailbox/mutf7.h"
#include "mailbox/pop3_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pg_imap_tok toks[512];

static void check(const char *buf, size_t len, const pg_imap_resp *r, pg_imap_result res,
                  size_t used)
{
    if (res == PG_IMAP_ERROR && r->why == NULL)
        abort();
    if (res != PG_IMAP_DONE)
        return;
    if (used < 3 || used > len || buf[used - 1] != '\n' || buf[used - 2] != '\r')
        abort();
    for (size_t i = 0; i < r->ntoks; i++) {
        const pg_imap_tok *t = &r->toks[i];
        if (t->p < buf || t->p + t->n > buf + used || t->depth < 0 || t->depth > PG_IMAP_DEPTH_MAX)
            abort();
        pg_buf b;
        pg_buf_init(&b);
        pg_imap_tok_copy(t, &b);
        if (b.len > t->n)
            abort();
        pg_buf_cleanup(&b);
    }
}

static void fuzz_mutf7(const char *buf, size_t len)
{
    pg_buf dec, enc;
    pg_buf_init(&dec);
    pg_buf_init(&enc);
    if (pg_mutf7_decode(&dec, buf, len) == PIGEON_OK && dec.len > 0 &&
        pg_mutf7_encode(&enc, dec.data, dec.len) == PIGEON_OK &&
        (enc.len != len || memcmp(enc.data, buf, len) != 0))
        abort();
    pg_buf_cleanup(&dec);
    pg_buf_cleanup(&enc);
}

static void fuzz_pop3(const char *buf, size_t len)
{
    pg_pop3_status st;
    if (pg_pop3_parse_status(buf, len, &st) == 0 &&
        (st.text < buf || st.text + st.text_len > buf + len))
        abort();
    unsigned n = 0;
    char uid[71];
    if (pg_pop3_parse_uidl(buf, len, &n, uid, sizeof uid) == 0 && (n == 0 || strlen(uid) > 70))
        abort();
    (void)pg_pop3_is_terminator(buf, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t pos = 0;
    while (pos < size) {
        pg_imap_resp r;
        size_t used = 0;
        pg_imap_result res =
            pg_imap_parse(buf + pos, size - pos, &r, toks, sizeof toks / sizeof toks[0], &used);
        check(buf + pos, size - pos, &r, res, used);
        if (res != PG_IMAP_DONE)
            break;
        pos += used;
    }
    size_t step = size > 64 ? size / 64 : 1;
    for (size_t cut = 0; cut < size; cut += step) {
        pg_imap_resp r;
        size_t used = 0;
        pg_imap_result res = pg_imap_parse(buf, cut, &r, toks, sizeof toks / sizeof toks[0], &used);
        check(buf, cut, &r, res, used);
    }
    fuzz_mutf7(buf, size);
    fuzz_pop3(buf, size);
    return 0;
}
