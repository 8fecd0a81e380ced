/*
 * smtpd.c - the server side of SMTP submission: command lines, the dialogue's state
 * machine, EHLO and its extensions, AUTH, MAIL and RCPT with their parameters (see
 * smtpd.h for the contract; the message text is in smtpd_data.c).
 *
 * RFC 5321 4.1 (commands), 4.1.4 (order of commands), 4.5.3.1 (size limits), 4.2.2
 * (reply codes); RFC 3463 and RFC 2034 (enhanced codes); RFC 4954 (AUTH); RFC 3207
 * (STARTTLS); RFC 1870 (SIZE); RFC 6152 (8BITMIME); RFC 6531 (SMTPUTF8); RFC 3030 (BDAT).
 */
#include "smtpd/smtpd_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/encode.h"

#define DEFAULT_MAX_SIZE   ((size_t)10 * 1024 * 1024)
#define DEFAULT_MAX_RCPTS  100
#define DEFAULT_MAX_ERRORS 10
#define PATH_MAX_OCTETS    256 /* RFC 5321 4.5.3.1.3 */
#define LOCAL_MAX_OCTETS   64  /* RFC 5321 4.5.3.1.1 */
#define DOMAIN_MAX_OCTETS  255 /* RFC 5321 4.5.3.1.2 */
#define AUTH_MAX_OCTETS    512 /* a decoded AUTH response */

static const char *const state_names[ST_COUNT] = {
    "init",       "ready",     "mail",      "rcpt", "data",     "bdat",
    "auth-plain", "auth-user", "auth-pass", "wait", "starttls", "closed",
};

static pg_smtpd_event command(pg_smtpd *s, char *line, size_t len);
static pg_smtpd_event auth_line(pg_smtpd *s, char *line, size_t len);
static void copy_text(char *dst, size_t size, const char *src);

/* ---- the session ---- */

pg_smtpd *pg_smtpd_new(const pg_smtpd_opts *opts)
{
    pg_smtpd *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    pg_buf_init(&s->out);
    pg_buf_init(&s->msg);
    pg_buf_init(&s->auth_user);
    pg_buf_init(&s->auth_pass);
    copy_text(s->hostname, sizeof s->hostname,
              opts && opts->hostname && opts->hostname[0] ? opts->hostname : "localhost");
    copy_text(s->peer_ip, sizeof s->peer_ip,
              opts && opts->peer_ip && opts->peer_ip[0] ? opts->peer_ip : "unknown");
    s->max_size = opts && opts->max_size ? opts->max_size : DEFAULT_MAX_SIZE;
    s->max_rcpts = opts && opts->max_rcpts ? opts->max_rcpts : DEFAULT_MAX_RCPTS;
    s->max_errors = opts && opts->max_errors ? opts->max_errors : DEFAULT_MAX_ERRORS;
    if (opts != NULL) {
        s->tls_available = opts->tls_available;
        s->tls_active = opts->tls_active;
        s->auth_plaintext_ok = opts->auth_plaintext_ok;
        s->auth_required = opts->auth_required;
    }
    /* RFC 5321 4.3.1: the greeting names us; RFC 6409 does not need more. */
    pg_smtpd_reply(s, 220, NULL, "%s ESMTP pigeon", s->hostname);
    if (s->out.err != PIGEON_OK) {
        pg_smtpd_free(s);
        return NULL;
    }
    return s;
}

void pg_smtpd_free(pg_smtpd *s)
{
    if (s == NULL)
        return;
    pg_smtpd_reset_transaction(s);
    pg_buf_cleanup(&s->out);
    pg_buf_cleanup(&s->msg);
    pg_buf_wipe_cleanup(&s->auth_user);
    pg_buf_wipe_cleanup(&s->auth_pass);
    free(s->rcpts);
    free(s);
}

void pg_smtpd_set_state(pg_smtpd *s, smtpd_state to)
{
    /* The one place the state changes: a hook for tracing "old -> new" goes here. */
    s->state = to;
}

const char *pg_smtpd_state_name(const pg_smtpd *s)
{
    return state_names[s->state];
}

/* Copies a string for our own fields, with controls and non-ASCII turned into '?'. */
static void copy_text(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    for (; src != NULL && src[i] != '\0' && i + 1 < size; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    dst[i] = '\0';
}

/* ---- replies ---- */

static void vreply(pg_smtpd *s, int code, const char *enhanced, const char *fmt, va_list ap)
{
    char text[512];
    vsnprintf(text, sizeof text, fmt, ap);
    /* A reply is one line: nothing from outside may break it (RFC 5321 4.2). */
    for (char *p = text; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '?';
    }
    if (enhanced != NULL && enhanced[0] != '\0')
        pg_buf_printf(&s->out, "%03d %s %s\r\n", code, enhanced, text);
    else
        pg_buf_printf(&s->out, "%03d %s\r\n", code, text);
}

void pg_smtpd_reply(pg_smtpd *s, int code, const char *enhanced, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply(s, code, enhanced, fmt, ap);
    va_end(ap);
}

int pg_smtpd_error(pg_smtpd *s, int code, const char *enhanced, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply(s, code, enhanced, fmt, ap);
    va_end(ap);
    /* Like Postfix's smtpd_hard_error_limit: a client that keeps failing is a script
     * probing or a broken loop; it is cut off rather than served forever. */
    if (++s->errors >= s->max_errors) {
        pg_smtpd_reply(s, 421, "4.7.0", "%s Error: too many errors; closing", s->hostname);
        pg_smtpd_set_state(s, ST_CLOSED);
        return 1;
    }
    return 0;
}

const char *pg_smtpd_out(const pg_smtpd *s, size_t *len)
{
    *len = s->out.len;
    return s->out.len ? s->out.data : NULL;
}

void pg_smtpd_out_consume(pg_smtpd *s, size_t n)
{
    pg_buf_consume(&s->out, n < s->out.len ? n : s->out.len);
}

/* ---- the transaction ---- */

void pg_smtpd_reset_transaction(pg_smtpd *s)
{
    free(s->mail_from);
    s->mail_from = NULL;
    for (size_t i = 0; i < s->nrcpts; i++)
        free(s->rcpts[i]);
    s->nrcpts = 0;
    s->rcpt_tries = 0;
    s->smtputf8 = 0;
    s->bdat_open = 0;
    s->bdat_last = 0;
    pg_buf_cleanup(&s->msg);
}

const char *pg_smtpd_mail_from(const pg_smtpd *s)
{
    return s->mail_from;
}

size_t pg_smtpd_rcpt_count(const pg_smtpd *s)
{
    return s->nrcpts;
}

const char *pg_smtpd_rcpt(const pg_smtpd *s, size_t i)
{
    return i < s->nrcpts ? s->rcpts[i] : NULL;
}

char *pg_smtpd_message_take(pg_smtpd *s, size_t *len)
{
    if (s->msg.data == NULL || s->msg.err != PIGEON_OK)
        return NULL;
    return pg_buf_detach(&s->msg, len);
}

const char *pg_smtpd_auth_secret(const pg_smtpd *s)
{
    return s->auth_pass.data ? s->auth_pass.data : "";
}

const char *pg_smtpd_auth_identity(const pg_smtpd *s)
{
    return s->auth_user.data ? s->auth_user.data : "";
}

void pg_smtpd_set_auth_name(pg_smtpd *s, const char *name)
{
    copy_text(s->auth_name, sizeof s->auth_name, name);
}

int pg_smtpd_authenticated(const pg_smtpd *s)
{
    return s->authenticated;
}

void pg_smtpd_tls_started(pg_smtpd *s, const char *desc)
{
    /* RFC 3207 4.2: everything learnt before the handshake is forgotten. */
    pg_smtpd_reset_transaction(s);
    s->tls_active = 1;
    s->esmtp = 0;
    s->helo[0] = '\0';
    copy_text(s->tls_desc, sizeof s->tls_desc, desc ? desc : "TLS");
    pg_smtpd_set_state(s, ST_INIT);
}

pigeon_err pg_smtpd_decide(pg_smtpd *s, int code, const char *enhanced, const char *text)
{
    if (s->state != ST_WAIT)
        return PIGEON_ERR_STATE;
    int ok = code >= 200 && code < 300;
    pg_smtpd_event ev = s->waiting;
    s->waiting = PG_SMTPD_NEED_MORE;
    pg_smtpd_reply(s, code, enhanced, "%s", text ? text : "");
    switch (ev) {
    case PG_SMTPD_AUTH:
        pg_buf_wipe_cleanup(&s->auth_pass);
        pg_buf_wipe_cleanup(&s->auth_user);
        s->authenticated = ok;
        pg_smtpd_set_state(s, ST_READY);
        if (!ok && ++s->errors >= s->max_errors) {
            pg_smtpd_reply(s, 421, "4.7.0", "%s Error: too many errors; closing", s->hostname);
            pg_smtpd_set_state(s, ST_CLOSED);
        }
        break;
    case PG_SMTPD_MAIL:
        if (!ok)
            pg_smtpd_reset_transaction(s);
        pg_smtpd_set_state(s, ok ? ST_MAIL : ST_READY);
        break;
    default: /* the message: stored or not, the transaction is over */
        pg_smtpd_reset_transaction(s);
        pg_smtpd_set_state(s, ST_READY);
        break;
    }
    return PIGEON_OK;
}

static pg_smtpd_event wait_for(pg_smtpd *s, pg_smtpd_event ev)
{
    s->waiting = ev;
    pg_smtpd_set_state(s, ST_WAIT);
    return ev;
}

/* ---- the input ---- */

/* One command line ending at LF (line[len-1] == '\n'). Checks its form, strips CRLF. */
static pg_smtpd_event line_in(pg_smtpd *s, char *line, size_t len)
{
    if (s->skipping) {
        s->skipping = 0;
        return pg_smtpd_error(s, 500, "5.5.2", "Error: line too long") ? PG_SMTPD_CLOSE
                                                                       : PG_SMTPD_NEED_MORE;
    }
    if (len < 2 || line[len - 2] != '\r')
        return pg_smtpd_error(s, 500, "5.5.2", "Error: bare <LF> received") ? PG_SMTPD_CLOSE
                                                                            : PG_SMTPD_NEED_MORE;
    len -= 2;
    line[len] = '\0';
    if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) != NULL)
        return pg_smtpd_error(s, 500, "5.5.2", "Error: NUL or bare <CR> in a command")
                   ? PG_SMTPD_CLOSE
                   : PG_SMTPD_NEED_MORE;
    if (s->state == ST_AUTH_PLAIN || s->state == ST_AUTH_USER || s->state == ST_AUTH_PASS)
        return auth_line(s, line, len);
    return command(s, line, len);
}

pg_smtpd_event pg_smtpd_feed(pg_smtpd *s, const char *buf, size_t len, size_t *consumed, time_t now)
{
    size_t pos = 0;
    pg_smtpd_event ev = PG_SMTPD_NEED_MORE;
    char line[PG_SMTPD_LINE_MAX + 1];
    s->now = now;
    *consumed = 0;
    if (s->state == ST_WAIT || s->state == ST_TLS)
        return PG_SMTPD_BUSY;
    while (pos < len && ev == PG_SMTPD_NEED_MORE) {
        size_t used = 0;
        if (s->state == ST_CLOSED) {
            pos = len; /* nothing more is read */
            ev = PG_SMTPD_CLOSE;
            break;
        }
        if (s->state == ST_DATA || s->state == ST_BDAT) {
            ev = s->state == ST_DATA ? pg_smtpd_data_feed(s, buf + pos, len - pos, &used)
                                     : pg_smtpd_bdat_feed(s, buf + pos, len - pos, &used);
            pos += used;
            if (ev == PG_SMTPD_MESSAGE)
                wait_for(s, ev);
            continue;
        }
        const char *lf = memchr(buf + pos, '\n', len - pos);
        size_t n = lf ? (size_t)(lf - (buf + pos)) + 1 : len - pos;
        if (s->skipping || n > PG_SMTPD_LINE_MAX) {
            /* Over the limit: throw it away up to its end, answer then. */
            s->skipping = 1;
            pos += n;
            if (lf != NULL)
                ev = line_in(s, line, 0);
            continue;
        }
        if (lf == NULL)
            break; /* an incomplete line: wait for the rest */
        memcpy(line, buf + pos, n);
        pos += n;
        ev = line_in(s, line, n);
        if (ev == PG_SMTPD_MESSAGE) /* BDAT 0 LAST completes on its command line */
            wait_for(s, ev);
    }
    if (s->state == ST_CLOSED && ev == PG_SMTPD_NEED_MORE)
        ev = PG_SMTPD_CLOSE;
    if (s->out.err != PIGEON_OK && ev == PG_SMTPD_NEED_MORE)
        ev = PG_SMTPD_CLOSE; /* out of memory: nothing sensible can follow */
    *consumed = pos;
    return ev;
}

/* ---- commands ---- */

/* Does line start with verb (case-insensitive) followed by the end or a space? */
static int is_verb(const char *line, const char *verb, const char **args)
{
    size_t n = strlen(verb);
    if (strncasecmp(line, verb, n) != 0 || (line[n] != '\0' && line[n] != ' '))
        return 0;
    const char *a = line + n;
    while (*a == ' ')
        a++;
    *args = a;
    return 1;
}

/* RFC 5321 4.1.1.1 and 2.3.5: a domain or an address literal, in ASCII. */
static int helo_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > DOMAIN_MAX_OCTETS)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f)
            return 0;
    }
    return 1;
}

static pg_smtpd_event cmd_ehlo(pg_smtpd *s, const char *arg, int esmtp)
{
    if (!helo_name_ok(arg))
        return pg_smtpd_error(s, 501, "5.5.4", "Syntax: %s hostname", esmtp ? "EHLO" : "HELO")
                   ? PG_SMTPD_CLOSE
                   : PG_SMTPD_NEED_MORE;
    /* RFC 5321 4.1.4: EHLO in a transaction resets it, as RSET would. */
    pg_smtpd_reset_transaction(s);
    copy_text(s->helo, sizeof s->helo, arg);
    s->esmtp = esmtp;
    pg_smtpd_set_state(s, ST_READY);
    if (!esmtp) {
        pg_smtpd_reply(s, 250, NULL, "%s", s->hostname);
        return PG_SMTPD_NEED_MORE;
    }
    pg_buf_printf(&s->out, "250-%s\r\n", s->hostname);
    pg_buf_puts(&s->out, "250-PIPELINING\r\n");
    pg_buf_printf(&s->out, "250-SIZE %zu\r\n", s->max_size);
    if (s->tls_available && !s->tls_active)
        pg_buf_puts(&s->out, "250-STARTTLS\r\n");
    /* RFC 4954 4: offered only where it may be used (TLS, or a trusted loopback). */
    if (!s->authenticated && (s->tls_active || s->auth_plaintext_ok))
        pg_buf_puts(&s->out, "250-AUTH PLAIN LOGIN\r\n");
    pg_buf_puts(&s->out, "250-8BITMIME\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n"
                         "250 ENHANCEDSTATUSCODES\r\n");
    return PG_SMTPD_NEED_MORE;
}

/* ---- AUTH (RFC 4954) ---- */

static pg_smtpd_event auth_fail(pg_smtpd *s, int code, const char *enh, const char *why)
{
    pg_buf_wipe_cleanup(&s->auth_pass);
    pg_buf_wipe_cleanup(&s->auth_user);
    pg_smtpd_set_state(s, ST_READY);
    return pg_smtpd_error(s, code, enh, "%s", why) ? PG_SMTPD_CLOSE : PG_SMTPD_NEED_MORE;
}

/* Decodes one base64 AUTH response into out. 0 on success. */
static int auth_decode(const char *in, size_t n, pg_buf *out)
{
    pg_buf_wipe_cleanup(out);
    if (n == 0 || n > AUTH_MAX_OCTETS * 2)
        return -1;
    if (n == 1 && in[0] == '=')
        return pg_buf_puts(out, "") == PIGEON_OK ? 0 : -1; /* RFC 4954 4: empty */
    if (pg_b64_decode(out, in, n) != PIGEON_OK || out->len > AUTH_MAX_OCTETS)
        return -1;
    return 0;
}

/* RFC 4616 2: [authzid] NUL authcid NUL passwd. */
static pg_smtpd_event auth_plain(pg_smtpd *s, const char *resp, size_t n)
{
    pg_buf raw;
    pg_buf_init(&raw);
    if (auth_decode(resp, n, &raw) != 0 || raw.len == 0) {
        pg_buf_wipe_cleanup(&raw);
        return auth_fail(s, 501, "5.5.2", "Error: cannot decode the AUTH response");
    }
    const char *p = raw.data, *end = raw.data + raw.len;
    const char *nul1 = memchr(p, '\0', raw.len);
    const char *nul2 = nul1 ? memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1)) : NULL;
    if (nul2 == NULL) {
        pg_buf_wipe_cleanup(&raw);
        return auth_fail(s, 501, "5.5.2", "Error: not a PLAIN response");
    }
    size_t authz_len = (size_t)(nul1 - p), user_len = (size_t)(nul2 - nul1 - 1);
    /* Acting for someone else is not offered: authzid empty or the same as authcid. */
    int authz_ok = authz_len == 0 || (authz_len == user_len && !memcmp(p, nul1 + 1, user_len));
    pg_buf_append(&s->auth_user, nul1 + 1, user_len);
    pg_buf_append(&s->auth_pass, nul2 + 1, (size_t)(end - nul2 - 1));
    pg_buf_wipe_cleanup(&raw);
    if (!authz_ok)
        return auth_fail(s, 535, "5.7.8", "Error: authorization identity refused");
    if (s->auth_pass.err != PIGEON_OK || s->auth_user.err != PIGEON_OK)
        return auth_fail(s, 454, "4.7.0", "Error: temporary authentication failure");
    return wait_for(s, PG_SMTPD_AUTH);
}

static pg_smtpd_event auth_line(pg_smtpd *s, char *line, size_t len)
{
    /* RFC 4954 4: "*" cancels the exchange. */
    if (len == 1 && line[0] == '*')
        return auth_fail(s, 501, "5.0.0", "Authentication cancelled");
    if (s->state == ST_AUTH_PLAIN)
        return auth_plain(s, line, len);
    pg_buf *into = s->state == ST_AUTH_USER ? &s->auth_user : &s->auth_pass;
    if (auth_decode(line, len, into) != 0)
        return auth_fail(s, 501, "5.5.2", "Error: cannot decode the AUTH response");
    if (s->state == ST_AUTH_USER) {
        pg_smtpd_set_state(s, ST_AUTH_PASS);
        pg_smtpd_reply(s, 334, NULL, "UGFzc3dvcmQ6"); /* "Password:" */
        return PG_SMTPD_NEED_MORE;
    }
    return wait_for(s, PG_SMTPD_AUTH);
}

static pg_smtpd_event cmd_auth(pg_smtpd *s, const char *args)
{
    if (!s->esmtp || s->state != ST_READY)
        return pg_smtpd_error(s, 503, "5.5.1", "Error: AUTH needs EHLO and no transaction")
                   ? PG_SMTPD_CLOSE
                   : PG_SMTPD_NEED_MORE;
    if (s->authenticated)
        return pg_smtpd_error(s, 503, "5.5.1", "Error: already authenticated") ? PG_SMTPD_CLOSE
                                                                               : PG_SMTPD_NEED_MORE;
    if (!s->tls_active && !s->auth_plaintext_ok)
        return pg_smtpd_error(s, 538, "5.7.11", "Encryption required: STARTTLS first")
                   ? PG_SMTPD_CLOSE
                   : PG_SMTPD_NEED_MORE;
    const char *sp = strchr(args, ' ');
    size_t mlen = sp ? (size_t)(sp - args) : strlen(args);
    const char *initial = sp ? sp + 1 : NULL;
    if (initial != NULL && (initial[0] == '\0' || strchr(initial, ' ') != NULL))
        return auth_fail(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
    pg_buf_wipe_cleanup(&s->auth_user);
    pg_buf_wipe_cleanup(&s->auth_pass);
    if (mlen == 5 && strncasecmp(args, "PLAIN", 5) == 0) {
        if (initial != NULL)
            return auth_plain(s, initial, strlen(initial));
        pg_smtpd_set_state(s, ST_AUTH_PLAIN);
        pg_smtpd_reply(s, 334, NULL, "%s", "");
        return PG_SMTPD_NEED_MORE;
    }
    if (mlen == 5 && strncasecmp(args, "LOGIN", 5) == 0) {
        if (initial != NULL) {
            if (auth_decode(initial, strlen(initial), &s->auth_user) != 0)
                return auth_fail(s, 501, "5.5.2", "Error: cannot decode the AUTH response");
            pg_smtpd_set_state(s, ST_AUTH_PASS);
            pg_smtpd_reply(s, 334, NULL, "UGFzc3dvcmQ6");
            return PG_SMTPD_NEED_MORE;
        }
        pg_smtpd_set_state(s, ST_AUTH_USER);
        pg_smtpd_reply(s, 334, NULL, "VXNlcm5hbWU6"); /* "Username:" */
        return PG_SMTPD_NEED_MORE;
    }
    return pg_smtpd_error(s, 504, "5.5.4", "Error: mechanism not supported (PLAIN, LOGIN)")
               ? PG_SMTPD_CLOSE
               : PG_SMTPD_NEED_MORE;
}

/* ---- MAIL and RCPT ---- */

/*
 * Parses "<path>" at *p (RFC 5321 4.1.2): a source route "@a,@b:" is dropped (Appendix
 * C: it is to be ignored), the mailbox must be local@domain within the length limits,
 * without controls or spaces (a quoted local part may hold spaces), and octets over 0x7f
 * only with SMTPUTF8. Writes the mailbox to out (size > PATH_MAX_OCTETS) and moves *p past
 * the closing '>'. allow_null: "<>" is the null path. Returns 0 or -1.
 */
static int parse_path(const char **p, char *out, int allow_null, int utf8)
{
    const char *s = *p;
    if (*s != '<')
        return -1;
    s++;
    if (*s == '@') { /* a source route: skip to its ':' */
        const char *colon = strchr(s, ':');
        if (colon == NULL)
            return -1;
        s = colon + 1;
    }
    size_t n = 0, at = 0;
    int quoted = 0;
    for (; *s != '\0' && (quoted || *s != '>'); s++) {
        unsigned char c = (unsigned char)*s;
        if (n + 2 > PATH_MAX_OCTETS)
            return -1;
        if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8) || (c == ' ' && !quoted))
            return -1;
        if (c == '"')
            quoted = !quoted;
        else if (c == '\\' && quoted && s[1] != '\0')
            out[n++] = *s++;
        else if (c == '@' && !quoted)
            at = n + 1;
        out[n++] = *s;
    }
    if (*s != '>' || quoted)
        return -1;
    out[n] = '\0';
    *p = s + 1;
    if (n == 0)
        return allow_null ? 0 : -1;
    /* Exactly one unquoted '@' counts: the last one found separates local and domain. */
    if (at <= 1 || at >= n || at - 1 > LOCAL_MAX_OCTETS || n - at > DOMAIN_MAX_OCTETS)
        return -1;
    if (out[at] == '.' || out[n - 1] == '.')
        return -1;
    for (size_t i = at; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c == '@' || c == '"' || c == '\\' || c == ',' || c == '(' || c == ')' || c == '<')
            return -1;
    }
    return 0;
}

/* MAIL parameters (RFC 5321 4.1.2 esmtp-param); sets *size. 0 or an error reply. */
static int mail_params(pg_smtpd *s, const char *p, unsigned long long *size, int *utf8)
{
    while (*p == ' ')
        p++;
    while (*p != '\0') {
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 5 && strncasecmp(p, "SIZE=", 5) == 0) {
            unsigned long long v = 0;
            for (size_t i = 5; i < n; i++) {
                if (p[i] < '0' || p[i] > '9' || v > 1000000000000ULL)
                    return pg_smtpd_error(s, 501, "5.5.4", "Syntax: SIZE=octets"), -1;
                v = v * 10 + (unsigned)(p[i] - '0');
            }
            *size = v;
        } else if ((n == 9 && strncasecmp(p, "BODY=7BIT", 9) == 0) ||
                   (n == 13 && strncasecmp(p, "BODY=8BITMIME", 13) == 0)) {
            /* Both are stored as they come; the delivery side converts if it must. */
        } else if (n == 8 && strncasecmp(p, "SMTPUTF8", 8) == 0) {
            *utf8 = 1;
        } else if (n >= 5 && strncasecmp(p, "AUTH=", 5) == 0) {
            /* RFC 4954 5: trusted only from a trusted relay; we submit, so it is ignored. */
        } else if ((n >= 4 && strncasecmp(p, "RET=", 4) == 0) ||
                   (n >= 6 && strncasecmp(p, "ENVID=", 6) == 0)) {
            /* RFC 3461 is not offered (no DSN in EHLO): refused by name rather than
             * accepted and silently dropped, so the client knows no DSN will come. */
            return pg_smtpd_error(s, 555, "5.5.4",
                                  "Error: DSN (RFC 3461) is not offered: RET and ENVID refused"),
                   -1;
        } else {
            return pg_smtpd_error(s, 555, "5.5.4", "Error: unsupported MAIL parameter"), -1;
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    return 0;
}

static pg_smtpd_event cmd_mail(pg_smtpd *s, const char *args)
{
    char path[PATH_MAX_OCTETS + 1];
    if (s->state == ST_INIT)
        return pg_smtpd_error(s, 503, "5.5.1", "Error: send EHLO first") ? PG_SMTPD_CLOSE
                                                                         : PG_SMTPD_NEED_MORE;
    if (s->state != ST_READY)
        return pg_smtpd_error(s, 503, "5.5.1", "Error: nested MAIL command") ? PG_SMTPD_CLOSE
                                                                             : PG_SMTPD_NEED_MORE;
    if (s->auth_required && !s->authenticated)
        return pg_smtpd_error(s, 530, "5.7.0", "Authentication required") ? PG_SMTPD_CLOSE
                                                                          : PG_SMTPD_NEED_MORE;
    if (strncasecmp(args, "FROM:", 5) != 0)
        return pg_smtpd_error(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>") ? PG_SMTPD_CLOSE
                                                                              : PG_SMTPD_NEED_MORE;
    const char *p = args + 5;
    while (*p == ' ') /* tolerated, as most servers do */
        p++;
    /* SMTPUTF8 may come after the path: look for it before judging 8-bit octets. */
    int utf8 = 0;
    unsigned long long size = 0;
    const char *gt = strchr(p, '>');
    if (gt != NULL && mail_params(s, gt + 1, &size, &utf8) != 0)
        return s->state == ST_CLOSED ? PG_SMTPD_CLOSE : PG_SMTPD_NEED_MORE;
    if (parse_path(&p, path, 1, utf8) != 0)
        return pg_smtpd_error(s, 553, "5.1.7", "Error: bad sender address syntax")
                   ? PG_SMTPD_CLOSE
                   : PG_SMTPD_NEED_MORE;
    if (size > s->max_size) {
        /* RFC 1870 6: the declared size is over what we take. */
        pg_smtpd_reply(s, 552, "5.3.4", "Error: message size exceeds the limit of %zu octets",
                       s->max_size);
        return PG_SMTPD_NEED_MORE;
    }
    if ((s->mail_from = strdup(path)) == NULL) {
        pg_smtpd_reply(s, 451, "4.3.0", "Error: out of memory");
        return PG_SMTPD_NEED_MORE;
    }
    s->smtputf8 = utf8;
    return wait_for(s, PG_SMTPD_MAIL);
}

static pg_smtpd_event cmd_rcpt(pg_smtpd *s, const char *args)
{
    char path[PATH_MAX_OCTETS + 1];
    if (s->state != ST_MAIL && s->state != ST_RCPT)
        return pg_smtpd_error(s, 503, "5.5.1", "Error: need MAIL command") ? PG_SMTPD_CLOSE
                                                                           : PG_SMTPD_NEED_MORE;
    if (s->bdat_open)
        return pg_smtpd_error(s, 503, "5.5.1", "Error: RCPT after BDAT") ? PG_SMTPD_CLOSE
                                                                         : PG_SMTPD_NEED_MORE;
    s->rcpt_tries++;
    if (strncasecmp(args, "TO:", 3) != 0)
        return pg_smtpd_error(s, 501, "5.5.4", "Syntax: RCPT TO:<address>") ? PG_SMTPD_CLOSE
                                                                            : PG_SMTPD_NEED_MORE;
    const char *p = args + 3;
    while (*p == ' ')
        p++;
    if (parse_path(&p, path, 0, s->smtputf8) != 0)
        return pg_smtpd_error(s, 553, "5.1.3", "Error: bad recipient address syntax")
                   ? PG_SMTPD_CLOSE
                   : PG_SMTPD_NEED_MORE;
    while (*p == ' ')
        p++;
    if (*p != '\0') /* DSN (NOTIFY, ORCPT) is not offered */
        return pg_smtpd_error(s, 555, "5.5.4",
                              strncasecmp(p, "NOTIFY=", 7) == 0 || strncasecmp(p, "ORCPT=", 6) == 0
                                  ? "Error: DSN (RFC 3461) is not offered: NOTIFY and ORCPT refused"
                                  : "Error: unsupported RCPT parameter")
                   ? PG_SMTPD_CLOSE
                   : PG_SMTPD_NEED_MORE;
    if (s->nrcpts >= s->max_rcpts) {
        /* RFC 5321 4.5.3.1.10: 452 and the client sends the rest in another message. */
        pg_smtpd_reply(s, 452, "4.5.3", "Error: too many recipients");
        return PG_SMTPD_NEED_MORE;
    }
    if (s->nrcpts == s->rcpts_cap) {
        size_t cap = s->rcpts_cap ? s->rcpts_cap * 2 : 8;
        char **grown = realloc(s->rcpts, cap * sizeof *grown);
        if (grown == NULL) {
            pg_smtpd_reply(s, 451, "4.3.0", "Error: out of memory");
            return PG_SMTPD_NEED_MORE;
        }
        s->rcpts = grown;
        s->rcpts_cap = cap;
    }
    if ((s->rcpts[s->nrcpts] = strdup(path)) == NULL) {
        pg_smtpd_reply(s, 451, "4.3.0", "Error: out of memory");
        return PG_SMTPD_NEED_MORE;
    }
    s->nrcpts++;
    pg_smtpd_set_state(s, ST_RCPT);
    pg_smtpd_reply(s, 250, "2.1.5", "Ok");
    return PG_SMTPD_NEED_MORE;
}

/* DATA and BDAT need recipients; RFC 2920 3.1: 554 when every RCPT was refused. */
static int need_rcpts(pg_smtpd *s)
{
    if (s->state == ST_RCPT)
        return 0;
    if (s->state == ST_MAIL && s->rcpt_tries > 0)
        pg_smtpd_error(s, 554, "5.5.1", "Error: no valid recipients");
    else
        pg_smtpd_error(s, 503, "5.5.1", "Error: need RCPT command");
    return -1;
}

static pg_smtpd_event cmd_data(pg_smtpd *s, const char *args)
{
    if (*args != '\0')
        return pg_smtpd_error(s, 501, "5.5.4", "Syntax: DATA") ? PG_SMTPD_CLOSE
                                                               : PG_SMTPD_NEED_MORE;
    if (s->bdat_open)
        return pg_smtpd_error(s, 503, "5.5.1", "Error: DATA after BDAT") ? PG_SMTPD_CLOSE
                                                                         : PG_SMTPD_NEED_MORE;
    if (need_rcpts(s) != 0)
        return s->state == ST_CLOSED ? PG_SMTPD_CLOSE : PG_SMTPD_NEED_MORE;
    pg_smtpd_text_begin(s);
    pg_smtpd_set_state(s, ST_DATA);
    pg_smtpd_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
    return PG_SMTPD_NEED_MORE;
}

/* RFC 3030 2: BDAT chunk-size [LAST]. The chunk's octets follow the line at once, so
 * even a refused BDAT has them read and thrown away. */
static pg_smtpd_event cmd_bdat(pg_smtpd *s, const char *args)
{
    unsigned long long n = 0;
    const char *p = args;
    if (*p < '0' || *p > '9')
        return pg_smtpd_error(s, 501, "5.5.4", "Syntax: BDAT size [LAST]") ? PG_SMTPD_CLOSE
                                                                           : PG_SMTPD_NEED_MORE;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > 100000000000ULL) /* no framing to trust beyond this: give up */
            break;
        n = n * 10 + (unsigned)(*p - '0');
    }
    int last = strcasecmp(p, " LAST") == 0;
    if ((*p != '\0' && !last) || n > s->max_size + 1000000ULL) {
        pg_smtpd_reply(s, 552, "5.3.4", "Error: chunk refused; closing");
        pg_smtpd_set_state(s, ST_CLOSED);
        return PG_SMTPD_CLOSE;
    }
    s->bdat_left = n;
    s->bdat_last = last;
    s->bdat_discard = 0;
    if (!s->bdat_open) {
        if (need_rcpts(s) != 0) {
            if (s->state == ST_CLOSED)
                return PG_SMTPD_CLOSE;
            s->bdat_discard = 1;
            s->bdat_back = s->state;
        } else {
            pg_smtpd_text_begin(s);
            s->bdat_open = 1;
        }
    }
    pg_smtpd_set_state(s, ST_BDAT);
    if (n == 0) { /* nothing to read: complete at once */
        size_t used = 0;
        return pg_smtpd_bdat_feed(s, "", 0, &used);
    }
    return PG_SMTPD_NEED_MORE;
}

static pg_smtpd_event cmd_starttls(pg_smtpd *s, const char *args)
{
    if (*args != '\0')
        return pg_smtpd_error(s, 501, "5.5.4", "Syntax: STARTTLS") ? PG_SMTPD_CLOSE
                                                                   : PG_SMTPD_NEED_MORE;
    if (!s->tls_available || s->tls_active)
        return pg_smtpd_error(s, 503, "5.5.1", "Error: TLS not available now") ? PG_SMTPD_CLOSE
                                                                               : PG_SMTPD_NEED_MORE;
    if (s->state != ST_READY && s->state != ST_INIT)
        return pg_smtpd_error(s, 503, "5.5.1", "Error: STARTTLS in a transaction")
                   ? PG_SMTPD_CLOSE
                   : PG_SMTPD_NEED_MORE;
    pg_smtpd_reply(s, 220, "2.0.0", "Ready to start TLS");
    pg_smtpd_set_state(s, ST_TLS);
    return PG_SMTPD_STARTTLS;
}

static pg_smtpd_event command(pg_smtpd *s, char *line, size_t len)
{
    const char *a = NULL;
    (void)len;
    if (is_verb(line, "EHLO", &a))
        return cmd_ehlo(s, a, 1);
    if (is_verb(line, "HELO", &a))
        return cmd_ehlo(s, a, 0);
    if (is_verb(line, "MAIL", &a))
        return cmd_mail(s, a);
    if (is_verb(line, "RCPT", &a))
        return cmd_rcpt(s, a);
    if (is_verb(line, "DATA", &a))
        return cmd_data(s, a);
    if (is_verb(line, "BDAT", &a))
        return cmd_bdat(s, a);
    if (is_verb(line, "AUTH", &a))
        return cmd_auth(s, a);
    if (is_verb(line, "STARTTLS", &a))
        return cmd_starttls(s, a);
    if (is_verb(line, "RSET", &a)) {
        pg_smtpd_reset_transaction(s);
        if (s->state != ST_INIT)
            pg_smtpd_set_state(s, ST_READY);
        pg_smtpd_reply(s, 250, "2.0.0", "Ok");
        return PG_SMTPD_NEED_MORE;
    }
    if (is_verb(line, "NOOP", &a)) {
        pg_smtpd_reply(s, 250, "2.0.0", "Ok");
        return PG_SMTPD_NEED_MORE;
    }
    if (is_verb(line, "QUIT", &a)) {
        pg_smtpd_reply(s, 221, "2.0.0", "Bye");
        pg_smtpd_set_state(s, ST_CLOSED);
        return PG_SMTPD_CLOSE;
    }
    if (is_verb(line, "VRFY", &a)) { /* RFC 5321 3.5.3: neither confirmed nor denied */
        pg_smtpd_reply(s, 252, "2.5.0", "Cannot VRFY; send the message and see");
        return PG_SMTPD_NEED_MORE;
    }
    if (is_verb(line, "HELP", &a)) {
        pg_smtpd_reply(s, 214, "2.0.0", "See RFC 5321; pigeon submission service");
        return PG_SMTPD_NEED_MORE;
    }
    if (is_verb(line, "EXPN", &a) || is_verb(line, "ETRN", &a) || is_verb(line, "TURN", &a))
        return pg_smtpd_error(s, 502, "5.5.1", "Error: command not implemented")
                   ? PG_SMTPD_CLOSE
                   : PG_SMTPD_NEED_MORE;
    return pg_smtpd_error(s, 500, "5.5.1", "Error: command not recognized") ? PG_SMTPD_CLOSE
                                                                            : PG_SMTPD_NEED_MORE;
}
