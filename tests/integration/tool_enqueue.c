/*
 * tool_enqueue.c - fills a spool quickly for tests/integration/test_daemon.py.
 *
 *   tool_enqueue SPOOL ACCOUNT COUNT [BATCH]
 *
 * Enqueues COUNT messages for ACCOUNT, from sender@pigeon.test to rcpt@pigeon.test, BATCH
 * (default 500) per transaction. Message i has "Message-ID: <i.enqueue@pigeon.test>" and a
 * body of a few hundred bytes that names i, so that a receiving server can tell every
 * message apart and a test can count duplicates. Prints "enqueued COUNT" at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/spool.h"

/* Writes message i into buf; returns its length. */
static size_t make_message(char *buf, size_t cap, unsigned long i)
{
    int n = snprintf(buf, cap,
                     "From: sender@pigeon.test\r\nTo: rcpt@pigeon.test\r\n"
                     "Subject: message %lu\r\nMessage-ID: <%lu.enqueue@pigeon.test>\r\n"
                     "Date: Thu, 26 Nov 2026 09:00:00 +0000\r\n\r\n"
                     "This is message %lu.\r\n"
                     "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do\r\n"
                     "eiusmod tempor incididunt ut labore et dolore magna aliqua.\r\n"
                     ".a line that starts with a dot\r\n",
                     i, i, i);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: tool_enqueue SPOOL ACCOUNT COUNT [BATCH]\n");
        return 2;
    }
    unsigned long count = strtoul(argv[3], NULL, 10);
    unsigned long batch = argc > 4 ? strtoul(argv[4], NULL, 10) : 500;
    char err[512];
    pigeon_spool *spool = NULL;
    if (pigeon_spool_open(argv[1], PIGEON_SPOOL_CREATE, &spool, err, sizeof err) != PIGEON_OK) {
        fprintf(stderr, "tool_enqueue: %s\n", err);
        return 1;
    }
    const char *rcpts[] = {"rcpt@pigeon.test"};
    char buf[2048];
    char msgid[64];
    char id[PIGEON_SPOOL_ID_LEN + 1];
    for (unsigned long i = 0; i < count; i++) {
        if (batch > 1 && i % batch == 0 && pigeon_spool_begin(spool) != PIGEON_OK)
            goto fail;
        size_t len = make_message(buf, sizeof buf, i);
        snprintf(msgid, sizeof msgid, "<%lu.enqueue@pigeon.test>", i);
        pigeon_spool_envelope env = {argv[2], "sender@pigeon.test", rcpts, 1, msgid};
        if (pigeon_spool_enqueue(spool, &env, buf, len, pigeon_spool_now_ms(), id) != PIGEON_OK)
            goto fail;
        if (batch > 1 && (i % batch == batch - 1 || i == count - 1) &&
            pigeon_spool_commit(spool) != PIGEON_OK)
            goto fail;
    }
    pigeon_spool_close(spool);
    printf("enqueued %lu\n", count);
    return 0;
fail:
    fprintf(stderr, "tool_enqueue: %s\n", pigeon_spool_error(spool));
    pigeon_spool_close(spool);
    return 1;
}
