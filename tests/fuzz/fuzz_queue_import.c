/*
 * fuzz_queue_import.c - libFuzzer target for the queue export line parser and its base64
 * body decoder (lib/transfer/transfer_line.c).
 *
 * The input is one line (a copy: the parser decodes in place). Invariants: no
 * out-of-bounds access or leak (ASan); a refusal always has a reason; an accepted message
 * line has its required fields, strings that are NUL-terminated, free of U+0000 and valid
 * UTF-8, recipients within bounds with known states, and a body pointing inside the
 * line; decoding the body, in reads of varying sizes, never writes past the caller's
 * buffer, never yields more than 3 bytes per 4 characters, and ends (0 bytes) or fails.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/transfer.h"
#include "util/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, int nullable)
{
    if (s == NULL) {
        if (!nullable)
            abort();
        return;
    }
    if (!pg_utf8_valid(s, strlen(s)))
        abort();
}

static void check_message(const pg_transfer_line *l, const char *line, size_t size)
{
    check_text(l->msg.queue_id, 0);
    check_text(l->msg.account, 0);
    check_text(l->msg.mail_from, 0);
    check_text(l->msg.message_id, 0);
    if (l->msg.rcpt_count == 0 || l->msg.rcpt_count > PG_TRANSFER_MAX_RCPTS ||
        l->msg.rcpts != l->rcpts || l->msg.created_ms < 0 || l->size < 0)
        abort();
    for (size_t i = 0; i < l->msg.rcpt_count; i++) {
        const pg_spool_import_rcpt *r = &l->rcpts[i];
        check_text(r->address, 0);
        check_text(r->enhanced_code, 1);
        check_text(r->text, 1);
        if ((unsigned)r->state >= PIGEON_SPOOL_NSTATES || r->attempts < 0 || r->next_ms < 0)
            abort();
    }
    if (l->body == NULL || l->body < line || l->body + l->body_len > line + size)
        abort();
}

static void decode_body(const pg_transfer_line *l, unsigned seed)
{
    pg_transfer_body b = {l->body, l->body_len, {0}, 0, 0, 0};
    unsigned char buf[64];
    size_t total = 0;
    for (int rounds = 0; rounds < 1 << 20; rounds++) {
        size_t cap = 1 + (seed + (unsigned)rounds * 7u) % (sizeof buf - 8);
        size_t n = 0;
        memset(buf + cap, 0xa5, sizeof buf - cap);
        if (pg_transfer_body_read(&b, buf, cap, &n) != 0)
            return;
        if (n > cap || buf[cap] != 0xa5)
            abort();
        if (n == 0)
            break;
        total += n;
    }
    if (total > l->body_len / 4 * 3 + 2)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    char err[256];
    pg_transfer_line l;
    if (line == NULL)
        return 0;
    memcpy(line, data, size);
    pigeon_err e = pg_transfer_line_parse(line, size, &l, err, sizeof err);
    if (e != PIGEON_OK && err[0] == '\0')
        abort();
    if (e == PIGEON_OK && l.kind == PG_TRANSFER_MESSAGE) {
        check_message(&l, line, size);
        decode_body(&l, size > 0 ? data[0] : 0);
    }
    pg_transfer_line_cleanup(&l);
    free(line);
    return 0;
}
