/*
 * smtpd_data.c - the message text of an SMTP session: DATA (RFC 5321 4.1.1.4, 4.5.2)
 * and BDAT chunks (RFC 3030), and the Received field we put first (RFC 5321 4.4).
 *
 * DATA is scanned octet by octet across any chunking of the input, with one rule for
 * where it ends: CRLF "." CRLF and nothing else. A line's leading dot is removed (4.5.2).
 * A LF without its CR, or a CR without its LF, is a bare newline: some servers take it as
 * a line end and some do not, and that disagreement is how SMTP smuggling hides a second
 * message inside the first, so it ends the session (521 5.5.2, as Postfix's
 * smtpd_forbid_bare_newline does) instead of guessing. BDAT chunks are framed by their
 * size, so a bare newline there only refuses the message.
 */
#include "smtpd/smtpd_int.h"

#include <stdio.h>
#include <string.h>

#define TEXT_LINE_MAX 998 /* RFC 5321 4.5.3.1.6: 1000 octets with the CRLF */

/* RFC 5322 3.3 date-time in UTC, without the locale (strftime's %a and %b follow it). */
static void rfc5322_date(time_t t, char *out, size_t size)
{
    static const char *const days[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        memset(&tm, 0, sizeof tm);
    snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The client's HELO name made safe inside our field: no ';' (it ends the clauses before
 * the date), no parentheses or backslash (comments). */
static void helo_for_field(const char *helo, char *out, size_t size)
{
    size_t i = 0;
    for (; helo[i] != '\0' && i + 1 < size; i++)
        out[i] = strchr(";()\\\"", helo[i]) ? '?' : helo[i];
    out[i] = '\0';
}

/*
 * RFC 5321 4.4: Received: from <helo> (<address-literal>) by <us> with <protocol> ...
 * The protocol is one of RFC 3848's: ESMTP, ESMTPS (TLS), ESMTPA (AUTH), ESMTPSA; the
 * TLS cipher and the authenticated key's id go in a comment. A single recipient is named
 * in "for"; several are not (it would disclose the Bcc recipients to the others).
 */
static void received(pg_smtpd *s)
{
    char date[64], helo[256];
    const char *proto = !s->esmtp                           ? "SMTP"
                        : s->tls_active && s->authenticated ? "ESMTPSA"
                        : s->tls_active                     ? "ESMTPS"
                        : s->authenticated                  ? "ESMTPA"
                                                            : "ESMTP";
    rfc5322_date(s->now, date, sizeof date);
    helo_for_field(s->helo, helo, sizeof helo);
    int v6 = strchr(s->peer_ip, ':') != NULL;
    pg_buf_printf(&s->msg, "Received: from %s ([%s%s])\r\n\tby %s (pigeon) with %s", helo,
                  v6 ? "IPv6:" : "", s->peer_ip, s->hostname, proto);
    if (s->tls_active || s->authenticated) {
        pg_buf_printf(&s->msg, "\r\n\t(%s%s%s%s)", s->tls_active ? s->tls_desc : "",
                      s->tls_active && s->authenticated ? "; " : "",
                      s->authenticated ? "authenticated key " : "",
                      s->authenticated ? s->auth_name : "");
    }
    if (s->nrcpts == 1 && strlen(s->rcpts[0]) < 300)
        pg_buf_printf(&s->msg, "\r\n\tfor <%s>", s->rcpts[0]);
    pg_buf_printf(&s->msg, ";\r\n\t%s\r\n", date);
}

void pg_smtpd_text_begin(pg_smtpd *s)
{
    pg_buf_cleanup(&s->msg);
    received(s);
    s->msg_text = s->msg.len;
    s->wire = 0;
    s->text = TX_LINE_START;
    s->line_len = 0;
    s->too_big = s->long_line = s->has_nul = s->bare_newline = 0;
}

/* Appends text octets unless the message is already over its size. */
static void keep(pg_smtpd *s, const char *p, size_t n)
{
    s->wire += n;
    if (s->wire > s->max_size)
        s->too_big = 1;
    if (!s->too_big)
        pg_buf_append(&s->msg, p, n);
}

/* The end of a message: refused here for what was wrong with it, else handed over. */
static pg_smtpd_event finish(pg_smtpd *s)
{
    int code = 0;
    const char *enh = NULL, *why = NULL;
    if (s->too_big)
        code = 552, enh = "5.3.4", why = "Error: message too big";
    else if (s->bare_newline)
        code = 554, enh = "5.6.0", why = "Error: bare <CR> or <LF> in the message";
    else if (s->has_nul)
        code = 554, enh = "5.6.0", why = "Error: NUL in the message";
    else if (s->long_line)
        code = 554, enh = "5.6.0", why = "Error: a text line is over 1000 octets";
    else if (s->msg.err != PIGEON_OK)
        code = 451, enh = "4.3.0", why = "Error: out of memory";
    if (code != 0) {
        pg_smtpd_reset_transaction(s);
        pg_smtpd_set_state(s, ST_READY);
        pg_smtpd_reply(s, code, enh, "%s", why);
        return PG_SMTPD_NEED_MORE;
    }
    return PG_SMTPD_MESSAGE;
}

static pg_smtpd_event bare_newline_close(pg_smtpd *s)
{
    pg_smtpd_reset_transaction(s);
    pg_smtpd_set_state(s, ST_CLOSED);
    pg_smtpd_reply(s, 521, "5.5.2", "%s Error: bare <CR> or <LF> received; closing", s->hostname);
    return PG_SMTPD_CLOSE;
}

/* Ordinary octets of a line from p: how many before a CR, LF or NUL. */
static size_t plain_run(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i] != '\r' && p[i] != '\n' && p[i] != '\0')
        i++;
    return i;
}

/* Inside a line: one run of text, or one special octet. Returns octets used, or 0 for a
 * bare LF (the caller closes). */
static size_t in_line(pg_smtpd *s, const char *p, size_t n)
{
    size_t run = plain_run(p, n);
    if (run > 0) {
        s->line_len += run;
        if (s->line_len > TEXT_LINE_MAX)
            s->long_line = 1;
        keep(s, p, run);
        return run;
    }
    if (p[0] == '\n')
        return 0;
    if (p[0] == '\r') {
        s->text = TX_CR;
        return 1;
    }
    s->has_nul = 1; /* RFC 5321 4.5.2 / RFC 5322 2.3: no NUL in text; kept to be refused */
    s->line_len++;
    keep(s, p, 1);
    return 1;
}

pg_smtpd_event pg_smtpd_data_feed(pg_smtpd *s, const char *buf, size_t len, size_t *consumed)
{
    size_t i = 0;
    while (i < len) {
        char c = buf[i];
        switch (s->text) {
        case TX_LINE_START:
            s->line_len = 0;
            if (c == '.') {
                s->text = TX_DOT;
                s->line_len = 1;
                i++;
                continue;
            }
            s->text = TX_IN_LINE;
            continue;
        case TX_IN_LINE: {
            size_t used = in_line(s, buf + i, len - i);
            if (used == 0) {
                *consumed = i + 1;
                return bare_newline_close(s);
            }
            i += used;
            continue;
        }
        case TX_CR:
            if (c != '\n') {
                *consumed = i;
                return bare_newline_close(s);
            }
            keep(s, "\r\n", 2);
            s->text = TX_LINE_START;
            i++;
            continue;
        case TX_DOT:
            if (c == '\r') {
                s->text = TX_DOT_CR;
                i++;
                continue;
            }
            /* RFC 5321 4.5.2: the first dot of a line that holds more is dropped. */
            s->text = TX_IN_LINE;
            continue;
        case TX_DOT_CR:
            *consumed = i + 1;
            if (c != '\n')
                return bare_newline_close(s);
            return finish(s);
        }
    }
    *consumed = len;
    return PG_SMTPD_NEED_MORE;
}

/* BDAT octets: no dot rule, but the same checks on lines, NUL and size. */
static void bdat_scan(pg_smtpd *s, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s->text == TX_CR) {
            if (p[i] != '\n')
                s->bare_newline = 1;
            else
                i++;
            keep(s, "\r\n", 2);
            s->text = TX_LINE_START;
            s->line_len = 0;
            continue;
        }
        size_t used = in_line(s, p + i, n - i);
        if (used == 0) { /* a bare LF: noted, refused at the end */
            s->bare_newline = 1;
            used = 1;
        }
        i += used;
    }
}

pg_smtpd_event pg_smtpd_bdat_feed(pg_smtpd *s, const char *buf, size_t len, size_t *consumed)
{
    size_t n = len < s->bdat_left ? len : (size_t)s->bdat_left;
    if (!s->bdat_discard)
        bdat_scan(s, buf, n);
    s->bdat_left -= n;
    *consumed = n;
    if (s->bdat_left > 0)
        return PG_SMTPD_NEED_MORE;
    if (s->bdat_discard) {
        s->bdat_discard = 0;
        pg_smtpd_set_state(s, s->bdat_back);
        return PG_SMTPD_NEED_MORE;
    }
    if (!s->bdat_last) {
        pg_smtpd_set_state(s, ST_RCPT);
        pg_smtpd_reply(s, 250, "2.0.0", "%zu octets received", s->wire);
        return PG_SMTPD_NEED_MORE;
    }
    /* The last chunk: a message ends with a line break (RFC 5322 2.1). */
    if (s->text == TX_CR)
        s->bare_newline = 1;
    else if (s->line_len > 0)
        keep(s, "\r\n", 2);
    return finish(s);
}
