/*
 * fuzz_smtpd.c - libFuzzer target for the SMTP server's state machine (lib/smtpd).
 *
 * The first octet picks the session's settings (TLS offered or active, AUTH allowed
 * without TLS, AUTH required, small limits) and the chunking of the rest, which is fed
 * as a client would send it. Every event is answered: AUTH and MAIL accepted or refused
 * by a bit of the input, a message accepted. Invariants: no out-of-bounds access (ASan),
 * every reply line is "ddd" then ' ' or '-' then text and CRLF with no other CR or LF,
 * a taken message has only CRLF line endings and ends with one, and it never exceeds
 * the size limit by more than our own Received field.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_out(pg_smtpd *s)
{
    size_t len = 0;
    const char *out = pg_smtpd_out(s, &len);
    size_t i = 0;
    while (i < len) {
        const char *lf = memchr(out + i, '\n', len - i);
        if (lf == NULL)
            abort(); /* a reply line without its end */
        size_t n = (size_t)(lf - (out + i)) + 1;
        const char *l = out + i;
        if (n < 6 || l[n - 2] != '\r' || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
            l[2] < '0' || l[2] > '9' || (l[3] != ' ' && l[3] != '-'))
            abort();
        if (memchr(l, '\r', n - 2) != NULL || memchr(l, '\0', n) != NULL)
            abort();
        i += n;
    }
    pg_smtpd_out_consume(s, len);
}

static void check_message(const char *m, size_t len, size_t max)
{
    if (len < 2 || m[len - 2] != '\r' || m[len - 1] != '\n')
        abort();
    for (size_t i = 0; i < len; i++) {
        if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r'))
            abort();
        if (m[i] == '\r' && (i + 1 >= len || m[i + 1] != '\n'))
            abort();
    }
    if (len > max + 1024)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0], chunk = (uint8_t)(data[1] | 1);
    data += 2;
    size -= 2;
    pg_smtpd_opts o = {
        .hostname = "fuzz.test",
        .peer_ip = (mode & 32) ? "::1" : "127.0.0.1",
        .max_size = (mode & 16) ? 64 : 4096,
        .max_rcpts = (mode & 16) ? 2 : 0,
        .tls_available = mode & 1,
        .tls_active = mode & 2,
        .auth_plaintext_ok = mode & 4,
        .auth_required = mode & 8,
    };
    pg_smtpd *s = pg_smtpd_new(&o);
    if (s == NULL)
        return 0;
    size_t pos = 0, end = 0;
    char *pending = NULL;
    size_t plen = 0;
    unsigned decision = 0;
    int closed = 0;
    /* The input arrives in pieces of `chunk` octets, glued to what was not consumed. */
    while (!closed && pos < size) {
        end = pos + chunk < size ? pos + chunk : size;
        char *grown = realloc(pending, plen + (end - pos) + 1);
        if (grown == NULL)
            break;
        pending = grown;
        memcpy(pending + plen, data + pos, end - pos);
        plen += end - pos;
        pos = end;
        for (;;) {
            size_t used = 0;
            pg_smtpd_event ev = pg_smtpd_feed(s, pending, plen, &used, 1700000000);
            if (used > plen)
                abort();
            memmove(pending, pending + used, plen - used);
            plen -= used;
            check_out(s);
            if (ev == PG_SMTPD_NEED_MORE)
                break;
            if (ev == PG_SMTPD_BUSY)
                abort(); /* every event below is answered before the next feed */
            if (ev == PG_SMTPD_CLOSE) {
                closed = 1;
                break;
            }
            if (ev == PG_SMTPD_STARTTLS) {
                plen = 0; /* what followed STARTTLS is thrown away */
                pg_smtpd_tls_started(s, "TLSv1.3 FUZZ");
                continue;
            }
            int yes = !((decision++ ^ mode) & 4);
            if (ev == PG_SMTPD_MESSAGE) {
                size_t mlen = 0;
                char *m = pg_smtpd_message_take(s, &mlen);
                if (m == NULL)
                    abort();
                check_message(m, mlen, o.max_size);
                free(m);
                if (pg_smtpd_rcpt_count(s) == 0 || pg_smtpd_mail_from(s) == NULL)
                    abort();
            }
            if (ev == PG_SMTPD_AUTH)
                pg_smtpd_set_auth_name(s, "k1");
            if (pg_smtpd_decide(s, yes ? (ev == PG_SMTPD_AUTH ? 235 : 250) : 550,
                                yes ? "2.0.0" : "5.7.1", "decided\r\nX") != PIGEON_OK)
                abort();
            check_out(s);
        }
    }
    free(pending);
    pg_smtpd_free(s);
    return 0;
}
