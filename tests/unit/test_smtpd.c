/*
 * test_smtpd.c - the SMTP server's state machine (lib/smtpd) on transcripts: what a
 * client sends, the reply codes it must get back (the final line of each reply), and
 * the message it hands over. Every transcript is fed twice, whole (as a pipelining
 * client sends it, RFC 2920) and one octet at a time, and both must agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpd/smtpd.h"

#define PLAIN_KEY "AHUAcGdrX3NlY3JldA==" /* "\0u\0pgk_secret" */

static const struct {
    const char *name;    /* what it shows */
    int flags;           /* 1: TLS offered, 2: AUTH in the clear ok, 4: AUTH required */
    const char *client;  /* what the client sends */
    const char *codes;   /* the reply codes, space-separated */
    const char *message; /* the end of the message handed over, or NULL for none */
} table[] = {
    {"a plain submission, dot-stuffing undone", 0,
     "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<d@e.test>\r\nDATA\r\n"
     "Subject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
     "220 250 250 250 354 250 221", "Subject: x\r\n\r\n.dot\r\n"},
    {"HELO works; the null sender is allowed", 0,
     "HELO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<d@e.test>\r\nDATA\r\nx\r\n.\r\n",
     "220 250 250 250 354 250", "\r\nx\r\n"},
    {"bare LF before the dot: 521 and closed", 0,
     "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<d@e.test>\r\nDATA\r\nx\n.\nMAIL FROM:<e@v>\r\n",
     "220 250 250 250 354 521", NULL},
    {"CR dot CR LF: 521", 0,
     "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<d@e.test>\r\nDATA\r\nx\r.\r\n.\r\n",
     "220 250 250 250 354 521", NULL},
    {"CRLF dot LF: 521", 0,
     "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<d@e.test>\r\nDATA\r\nx\r\n.\nQUIT\r\n",
     "220 250 250 250 354 521", NULL},
    {"sequencing: 503 before EHLO, before MAIL, before RCPT", 0,
     "MAIL FROM:<a@b.test>\r\nEHLO c\r\nRCPT TO:<d@e.test>\r\nDATA\r\nMAIL FROM:<a@b.test>\r\n"
     "MAIL FROM:<a@b.test>\r\nRSET\r\nNOOP\r\n",
     "220 503 250 503 503 250 503 250 250", NULL},
    {"unknown, NUL, bare LF commands", 0, "EHLO c\r\nFROB\r\nNO\0OP\r\nNOOP\nVRFY x\r\n",
     "220 250 500 500 500 252", NULL},
    {"AUTH in the clear: 538; MAIL needs AUTH: 530", 4,
     "EHLO c\r\nAUTH PLAIN " PLAIN_KEY "\r\nMAIL FROM:<a@b.test>\r\n", "220 250 538 530", NULL},
    {"AUTH PLAIN allowed in the clear, then MAIL", 6,
     "EHLO c\r\nAUTH PLAIN " PLAIN_KEY "\r\nAUTH PLAIN " PLAIN_KEY "\r\nMAIL FROM:<a@b.test>\r\n",
     "220 250 235 503 250", NULL},
    {"AUTH LOGIN, challenge by challenge; * cancels", 6,
     "EHLO c\r\nAUTH LOGIN\r\n*\r\nAUTH LOGIN\r\ndQ==\r\ncGdrX3NlY3JldA==\r\n",
     "220 250 334 501 334 334 235", NULL},
    {"HELO clients cannot AUTH", 2, "HELO c\r\nAUTH PLAIN " PLAIN_KEY "\r\n", "220 250 503", NULL},
    {"STARTTLS: 220, then the session starts over", 1,
     "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@b.test>\r\n", "220 250 220", NULL},
    {"parameters: SIZE over the limit, unknown ones, 8BITMIME, SMTPUTF8", 0,
     "EHLO c\r\nMAIL FROM:<a@b.test> SIZE=99999999\r\nMAIL FROM:<a@b.test> FOO=1\r\n"
     "MAIL FROM:<\xc3\xa9@b.test>\r\nMAIL FROM:<\xc3\xa9@b.test> BODY=8BITMIME SMTPUTF8\r\n"
     "RCPT TO:<d@e.test> NOTIFY=NEVER\r\nRCPT TO:<@r.test:d@e.test>\r\n",
     "220 250 552 555 553 250 555 250", NULL},
    {"bad paths", 0,
     "EHLO c\r\nMAIL FROM:a@b.test\r\nMAIL FROM:<a b@c>\r\nMAIL FROM:<a@b.test>\r\n"
     "RCPT TO:<>\r\nRCPT TO:<d@>\r\nRCPT TO:<@e.test>\r\nRCPT TO:<d@e.test\r\n",
     "220 250 553 553 250 553 553 553 553", NULL},
    {"BDAT in two chunks", 0,
     "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<d@e.test>\r\nBDAT 3\r\nab\rBDAT 3 LAST\r\n\ncd",
     "220 250 250 250 250 250", "\r\nab\r\ncd\r\n"},
    {"BDAT without a transaction: its octets are skipped", 0,
     "EHLO c\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n", "220 250 503 250", NULL},
    {"BDAT with a bare LF: 554, the session goes on", 0,
     "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<d@e.test>\r\nBDAT 3 LAST\r\na\nbNOOP\r\n",
     "220 250 250 250 554 250", NULL},
    {"DATA after BDAT, RCPT after BDAT", 0,
     "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<d@e.test>\r\nBDAT 1\r\naDATA\r\n"
     "RCPT TO:<f@e.test>\r\n",
     "220 250 250 250 250 503 503", NULL},
    {"NUL in a text line: 554 at the end", 0,
     "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<d@e.test>\r\nDATA\r\na\0b\r\n.\r\nNOOP\r\n",
     "220 250 250 250 354 554 250", NULL},
};

/* The final line codes of the replies in out, appended to codes. */
static void collect(pg_smtpd *s, char *codes, size_t size)
{
    size_t len = 0;
    const char *out = pg_smtpd_out(s, &len);
    for (size_t i = 0; i < len;) {
        const char *lf = memchr(out + i, '\n', len - i);
        assert_non_null(lf);
        if (out[i + 3] == ' ') {
            size_t used = strlen(codes);
            snprintf(codes + used, size - used, "%s%.3s", used ? " " : "", out + i);
        }
        i = (size_t)(lf - out) + 1;
    }
    pg_smtpd_out_consume(s, len);
}

/* Feeds the client in pieces of step octets (0: whole); returns the codes and message. */
static void run(int flags, const char *client, size_t clen, size_t step, char *codes, size_t size,
                char **message)
{
    pg_smtpd_opts o = {.hostname = "mx.test",
                       .peer_ip = "192.0.2.1",
                       .max_size = 1000,
                       .tls_available = flags & 1,
                       .auth_plaintext_ok = flags & 2,
                       .auth_required = flags & 4};
    pg_smtpd *s = pg_smtpd_new(&o);
    assert_non_null(s);
    codes[0] = '\0';
    *message = NULL;
    char pending[4096];
    size_t plen = 0, pos = 0;
    int closed = 0;
    while (!closed && pos < clen) {
        size_t n = step == 0 || clen - pos < step ? clen - pos : step;
        memcpy(pending + plen, client + pos, n);
        plen += n;
        pos += n;
        for (;;) {
            size_t used = 0;
            pg_smtpd_event ev = pg_smtpd_feed(s, pending, plen, &used, 0);
            memmove(pending, pending + used, plen - used);
            plen -= used;
            if (ev == PG_SMTPD_NEED_MORE)
                break;
            if (ev == PG_SMTPD_CLOSE) {
                closed = 1;
                break;
            }
            if (ev == PG_SMTPD_STARTTLS) {
                plen = 0;
                pos = clen; /* the rest came in the clear: thrown away */
                pg_smtpd_tls_started(s, "TLSv1.3 TEST");
                break;
            }
            if (ev == PG_SMTPD_AUTH)
                assert_string_equal(pg_smtpd_auth_secret(s), "pgk_secret");
            if (ev == PG_SMTPD_MESSAGE) {
                size_t mlen = 0;
                free(*message);
                *message = pg_smtpd_message_take(s, &mlen);
                assert_non_null(*message);
            }
            assert_int_equal(pg_smtpd_decide(s, ev == PG_SMTPD_AUTH ? 235 : 250, "2.0.0", "Ok"),
                             PIGEON_OK);
        }
        collect(s, codes, size);
    }
    collect(s, codes, size);
    pg_smtpd_free(s);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char whole[512], bytewise[512];
        char *m1 = NULL, *m2 = NULL;
        size_t clen = strlen(table[i].client);
        if (strstr(table[i].name, "NUL") != NULL) /* the NUL cases carry one inside */
            clen += strlen(table[i].client + clen + 1) + 1;
        run(table[i].flags, table[i].client, clen, 0, whole, sizeof whole, &m1);
        run(table[i].flags, table[i].client, clen, 1, bytewise, sizeof bytewise, &m2);
        if (strcmp(whole, table[i].codes) != 0 || strcmp(bytewise, table[i].codes) != 0)
            fail_msg("%s: want \"%s\", got \"%s\" whole and \"%s\" bytewise", table[i].name,
                     table[i].codes, whole, bytewise);
        if (table[i].message == NULL) {
            assert_null(m1);
        } else {
            assert_non_null(m1);
            assert_non_null(m2);
            assert_string_equal(m1, m2);
            size_t ml = strlen(m1), wl = strlen(table[i].message);
            if (ml < wl || strcmp(m1 + ml - wl, table[i].message) != 0)
                fail_msg("%s: message ends \"%s\"", table[i].name, m1);
            assert_true(strncmp(m1, "Received: from ", 15) == 0);
        }
        free(m1);
        free(m2);
    }
}

/* RFC 5321 4.4: the Received field names the client, us, the protocol, the key id and
 * the single recipient; a hostile HELO cannot break its structure. */
static void test_received(void **state)
{
    (void)state;
    pg_smtpd_opts o = {.hostname = "mx.test", .peer_ip = "::1", .tls_active = 1};
    pg_smtpd *s = pg_smtpd_new(&o);
    const char *in = "EHLO evil;(x)\r\nAUTH PLAIN " PLAIN_KEY "\r\n";
    size_t used = 0;
    pg_smtpd_tls_started(s, "TLSv1.3 X");
    assert_int_equal(pg_smtpd_feed(s, in, strlen(in), &used, 86400), PG_SMTPD_AUTH);
    pg_smtpd_set_auth_name(s, "0123abcd");
    pg_smtpd_decide(s, 235, "2.7.0", "Ok");
    in = "MAIL FROM:<a@b.test>\r\nRCPT TO:<d@e.test>\r\nDATA\r\nx\r\n.\r\n";
    assert_int_equal(pg_smtpd_feed(s, in, strlen(in), &used, 86400), PG_SMTPD_MAIL);
    pg_smtpd_decide(s, 250, "2.1.0", "Ok");
    size_t rest = strlen(in) - used;
    assert_int_equal(pg_smtpd_feed(s, in + used, rest, &used, 86400), PG_SMTPD_MESSAGE);
    size_t len = 0;
    char *m = pg_smtpd_message_take(s, &len);
    assert_string_equal(m, "Received: from evil??x? ([IPv6:::1])\r\n"
                           "\tby mx.test (pigeon) with ESMTPSA\r\n"
                           "\t(TLSv1.3 X; authenticated key 0123abcd)\r\n"
                           "\tfor <d@e.test>;\r\n"
                           "\tFri, 02 Jan 1970 00:00:00 +0000\r\n"
                           "x\r\n");
    free(m);
    assert_int_equal(pg_smtpd_decide(s, 250, "2.0.0", "queued"), PIGEON_OK);
    assert_int_equal(pg_smtpd_decide(s, 250, "2.0.0", "again"), PIGEON_ERR_STATE);
    pg_smtpd_free(s);
}

/* Over max_rcpts: 452 4.5.3; over max_errors: 421 and close. */
static void test_limits(void **state)
{
    (void)state;
    pg_smtpd_opts o = {.max_rcpts = 2, .max_errors = 3};
    pg_smtpd *s = pg_smtpd_new(&o);
    char codes[256] = "";
    const char *in = "EHLO c\r\nMAIL FROM:<a@b.test>\r\n";
    size_t used = 0;
    assert_int_equal(pg_smtpd_feed(s, in, strlen(in), &used, 0), PG_SMTPD_MAIL);
    pg_smtpd_decide(s, 250, "2.1.0", "Ok");
    in =
        "RCPT TO:<a@e.test>\r\nRCPT TO:<b@e.test>\r\nRCPT TO:<c@e.test>\r\nX\r\nY\r\nZ\r\nNOOP\r\n";
    assert_int_equal(pg_smtpd_feed(s, in, strlen(in), &used, 0), PG_SMTPD_CLOSE);
    collect(s, codes, sizeof codes);
    assert_string_equal(codes, "220 250 250 250 250 452 500 500 500 421");
    pg_smtpd_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_received),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
