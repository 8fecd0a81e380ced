/*
 * tool_transfer.c - fills a spool with messages in every recipient state, for
 * tests/integration/test_queue_transfer.py (export, import, round trip).
 *
 *   tool_transfer fill PATH [small]
 *       Enqueues, through the public API, with times in the past so nothing depends on
 *       the clock: a message never tried (queued), one with a deferred recipient (451
 *       4.3.0, next attempt in an hour) beside a delivered one, one failed (550 5.1.1)
 *       beside a deferred one, one in flight (claimed, not recorded), one of 5 MB, one
 *       with a Message-ID, an SMTPUTF8 recipient and a reply text with quotes,
 *       backslashes and non-ASCII characters, and one of another account. Prints the
 *       number of messages stored. With "small", the 5 MB one is 5 KB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/spool.h"

#define T0 1700000000000LL /* 2023-11-14: the enqueue time of everything */

static pigeon_spool *spool;

static void die(const char *what)
{
    fprintf(stderr, "tool_transfer: %s: %s\n", what, pigeon_spool_error(spool));
    exit(1);
}

static void put(const char *account, const char *from, const char *const *rcpts, size_t n,
                const char *msgid, const void *body, size_t len, int64_t at)
{
    char id[PIGEON_SPOOL_ID_LEN + 1];
    pigeon_spool_envelope env = {account, from, rcpts, n, msgid};
    if (pigeon_spool_enqueue(spool, &env, body, len, at, id) != PIGEON_OK)
        die("enqueue");
}

/* Claims the one due message of account and records outcomes for its recipients. */
static void settle(const char *account, int64_t at, const pigeon_spool_outcome *o, size_t n)
{
    pigeon_spool_entry *job = NULL;
    if (pigeon_spool_claim(spool, "tool:1", account, at, 60000, &job) != PIGEON_OK || job == NULL)
        die("claim");
    if (n > 0 && pigeon_spool_record(spool, job, o, n, at + 500) != PIGEON_OK)
        die("record");
    pigeon_spool_entry_free(job);
}

int main(int argc, char **argv)
{
    char err[256];
    if (argc < 3 || argc > 4 || strcmp(argv[1], "fill") != 0) {
        fprintf(stderr, "usage: tool_transfer fill PATH [small]\n");
        return 2;
    }
    if (pigeon_spool_open(argv[2], PIGEON_SPOOL_CREATE, &spool, err, sizeof err) != PIGEON_OK) {
        fprintf(stderr, "tool_transfer: %s\n", err);
        return 1;
    }
    static const char small[] = "Subject: hi\r\n\r\nhello\r\n";
    /* Settled ones first, each alone in its account while it is claimed. */
    const char *two[] = {"ok@example.net", "later@example.net"};
    put("a-deferred", "sender@example.org", two, 2, NULL, small, sizeof small - 1, T0);
    pigeon_spool_outcome o1[] = {
        {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "OK queued"},
        {1, PIGEON_SPOOL_DEFERRED, T0 + 3600000, PIGEON_ERR_DEFERRED, 451, "4.3.0",
         "try \"later\" \\ please"},
    };
    settle("a-deferred", T0 + 1000, o1, 2);
    const char *fr[] = {"gone@example.net", "slow@example.net"};
    put("a-failed", "", fr, 2, NULL, small, sizeof small - 1, T0);
    pigeon_spool_outcome o2[] = {
        {0, PIGEON_SPOOL_FAILED, 0, PIGEON_ERR_REJECTED, 550, "5.1.1",
         "no such user \xc3\xa9t\xc3\xa9"},
        {1, PIGEON_SPOOL_DEFERRED, T0 + 7200000, PIGEON_ERR_NETWORK, 0, NULL, "connection refused"},
    };
    settle("a-failed", T0 + 2000, o2, 2);
    const char *fl[] = {"busy@example.net"};
    put("a-inflight", "sender@example.org", fl, 1, NULL, small, sizeof small - 1, T0);
    settle("a-inflight", T0 + 3000, NULL, 0);
    /* Never tried. */
    const char *q[] = {"new@example.net", "\xc3\xbc"
                                          "ser@b\xc3\xbc"
                                          "cher.example"};
    put("main", "sender@example.org", q, 2, "<id-1@example.org>", small, sizeof small - 1, T0);
    size_t big_len = argc == 4 ? 5 * 1024 + 17 : 5 * 1024 * 1024 + 17;
    unsigned char *big = malloc(big_len);
    if (big == NULL)
        die("malloc");
    /* Lines of 78 octets and CRLF, every octet value but NUL, CR and LF (8-bit data,
     * RFC 6152), after a header: a message that goes over SMTP unchanged. */
    static const char head[] = "Subject: big\r\n\r\n";
    memcpy(big, head, sizeof head - 1);
    for (size_t i = sizeof head - 1, col = 0; i < big_len - 2; i++, col++) {
        unsigned char c = (unsigned char)(i * 7 + (i >> 13));
        big[i] = c == 0 || c == '\r' || c == '\n' || c == '.' ? 'x' : c;
        if (col == 78 && i + 1 < big_len - 2) {
            big[i] = '\r';
            big[++i] = '\n';
            col = (size_t)-1;
        }
    }
    big[big_len - 2] = '\r';
    big[big_len - 1] = '\n';
    const char *b[] = {"big@example.net"};
    put("main", "sender@example.org", b, 1, NULL, big, big_len, T0 + 1);
    free(big);
    const char *o[] = {"other@example.net"};
    put("other", "x@example.org", o, 1, NULL, small, sizeof small - 1, T0 + 2);
    pigeon_spool_close(spool);
    printf("6\n");
    return 0;
}
