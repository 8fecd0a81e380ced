/*
 * imap.c - the IMAP client: connection, greeting, capabilities, STARTTLS, login, the
 * response loop, LOGOUT (RFC 9051 and RFC 3501; SASL-IR RFC 4959; LITERAL+ RFC 7888).
 *
 * The session is a small state machine (RFC 9051 3: not authenticated, authenticated,
 * selected, logout); every state change goes through set_state(), which writes
 * "old -> new" in the debug transcript. Responses are read whole (literals inline, except
 * message bodies during a FETCH, which are streamed to the caller's sink as they arrive)
 * and parsed by the pure parser (imap_parse.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "codec/encode.h"
#include "mailbox/imap_int.h"
#include "mailbox/mutf7.h"
#include "util/utf8.h"

#define IMAP_PORT_TLS 993

static const char *const state_names[] = {"start", "not-authenticated", "authenticated", "selected",
                                          "logout"};

static void set_state(pigeon_imap *m, pg_imap_state st);
static pigeon_err read_response(pigeon_imap *m, pg_imap_resp *r);
static pigeon_err read_literal(pigeon_imap *m, size_t line_start, uint64_t size);
static pigeon_err common_untagged(pigeon_imap *m, const pg_imap_resp *r);
static pigeon_err greeting(pigeon_imap *m);
static pigeon_err capability(pigeon_imap *m);
static pigeon_err starttls(pigeon_imap *m);
static pigeon_err login(pigeon_imap *m);

void pg_imap_note(pigeon_imap *m, const char *fmt, ...)
{
    if (m->sc.o.transcript == NULL)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pg_store_trace(&m->sc, PIGEON_TRANSCRIPT_INFO, "%s", line);
}

static void set_state(pigeon_imap *m, pg_imap_state st)
{
    if (m->state != st)
        pg_store_trace(&m->sc, PIGEON_TRANSCRIPT_DEBUG, "%s -> %s", state_names[m->state],
                       state_names[st]);
    m->state = st;
}

pigeon_err pg_imap_send(pigeon_imap *m, const char *masked, const char *cmd, size_t len)
{
    if (m->state == PG_IMAP_S_LOGOUT || m->sc.conn == NULL)
        return pg_store_fail(&m->sc, PIGEON_ERR_STATE, "the IMAP connection is closed");
    snprintf(m->tag, sizeof m->tag, "A%u", ++m->tag_seq);
    pg_store_arm(&m->sc, 0);
    pg_store_trace(&m->sc, PIGEON_TRANSCRIPT_CLIENT, "%s %.*s", m->tag,
                   masked != NULL ? (int)strlen(masked) : (int)(len > 900 ? 900 : len),
                   masked != NULL ? masked : cmd);
    char head[20];
    int hn = snprintf(head, sizeof head, "%s ", m->tag);
    pigeon_err err = pg_store_write(&m->sc, head, (size_t)hn);
    if (err == PIGEON_OK)
        err = pg_store_write(&m->sc, cmd, len);
    if (err == PIGEON_OK)
        err = pg_store_write(&m->sc, "\r\n", 2);
    if (err != PIGEON_OK)
        set_state(m, PG_IMAP_S_LOGOUT);
    return err;
}

static int append_to_buf(void *ctx, const void *data, size_t n)
{
    return pg_buf_append(ctx, data, n) != PIGEON_OK;
}

/* Reads the literal announced at the end of the line starting at line_start: inline, or
 * to the sink when it is a message body of the FETCH in progress (then the buffer keeps
 * "{0}" in its place so the response parses and stays small). */
static pigeon_err read_literal(pigeon_imap *m, size_t line_start, uint64_t size)
{
    char *line = m->resp.data + line_start;
    size_t len = m->resp.len - line_start;
    char *brace = line + len;
    while (brace > line && *brace != '{')
        brace--;
    size_t before = (size_t)(brace - line);
    int body = 0;
    if (m->sink != NULL && before >= 7) {
        const char *p = brace - 1;
        while (p > line && *p == ' ')
            p--;
        size_t n = (size_t)(p - line) + 1;
        body = (n >= 6 && strncasecmp(p - 5, "BODY[]", 6) == 0) ||
               (n >= 6 && strncasecmp(p - 5, "RFC822", 6) == 0);
    }
    pg_store_trace(&m->sc, PIGEON_TRANSCRIPT_SERVER, "[literal of %llu octets%s]",
                   (unsigned long long)size, body ? ", the message" : "");
    /* A large body may take longer than one command's timeout: 1 more per MiB. */
    pg_store_arm(&m->sc,
                 (int64_t)(size >> 20) * (m->sc.o.timeout_ms > 0 ? m->sc.o.timeout_ms : 60000));
    if (body) {
        m->resp.len = line_start + before;
        pg_buf_puts(&m->resp, "{0}\r\n");
        if (m->resp.err != PIGEON_OK)
            return pg_store_fail(&m->sc, m->resp.err, "out of memory");
        m->streamed_any = 1;
        m->streamed += size;
        return pg_store_read_n(&m->sc, size, m->sink, m->sink_ctx);
    }
    if (size > PG_IMAP_INLINE_LITERAL_MAX || m->resp.len + size > PG_IMAP_RESP_MAX)
        return pg_store_fail(&m->sc, PIGEON_ERR_PROTOCOL,
                             "server sent a literal of %llu octets where a small value was "
                             "expected",
                             (unsigned long long)size);
    if (pg_buf_reserve(&m->resp, (size_t)size + 1) != PIGEON_OK)
        return pg_store_fail(&m->sc, PIGEON_ERR_NOMEM, "out of memory");
    return pg_store_read_n(&m->sc, size, append_to_buf, &m->resp);
}

/* Reads one whole response into m->resp and parses it into *r. */
static pigeon_err read_response(pigeon_imap *m, pg_imap_resp *r)
{
    pg_buf_reset(&m->resp);
    for (;;) {
        size_t line_start = m->resp.len;
        pigeon_err err = pg_store_read_line(&m->sc, &m->resp, PG_IMAP_RESP_MAX - m->resp.len);
        if (err != PIGEON_OK)
            return err;
        const char *line = m->resp.data + line_start;
        size_t len = m->resp.len - line_start;
        pg_store_trace(&m->sc, PIGEON_TRANSCRIPT_SERVER, "%.*s",
                       (int)(len > 300 ? 300 : (len >= 2 ? len - 2 : len)), line);
        size_t need = m->resp.len / 2 + PG_IMAP_DEPTH_MAX + 8;
        if (need > m->toks_cap) {
            pg_imap_tok *t = realloc(m->toks, need * sizeof *t);
            if (t == NULL)
                return pg_store_fail(&m->sc, PIGEON_ERR_NOMEM, "out of memory");
            m->toks = t;
            m->toks_cap = need;
        }
        size_t used = 0;
        pg_imap_result res =
            pg_imap_parse(m->resp.data, m->resp.len, r, m->toks, m->toks_cap, &used);
        if (res == PG_IMAP_DONE)
            return used == m->resp.len
                       ? PIGEON_OK
                       : pg_store_fail(&m->sc, PIGEON_ERR_PROTOCOL, "response framing error");
        if (res == PG_IMAP_ERROR)
            return pg_store_fail(&m->sc, PIGEON_ERR_PROTOCOL,
                                 "malformed IMAP response (%s): %.200s", r->why, m->resp.data);
        uint64_t size = 0;
        if (!pg_imap_line_literal(line, len, &size))
            return pg_store_fail(&m->sc, PIGEON_ERR_PROTOCOL, "malformed IMAP response: %.200s",
                                 m->resp.data);
        if ((err = read_literal(m, line_start, size)) != PIGEON_OK)
            return err;
    }
}

void pg_imap_set_caps(pigeon_imap *m, const char *text, size_t len)
{
    size_t j = 0;
    m->caps[j++] = ' ';
    for (size_t i = 0; i < len && j + 2 < sizeof m->caps; i++) {
        char c = text[i];
        m->caps[j++] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
    }
    m->caps[j++] = ' ';
    m->caps[j] = '\0';
}

int pigeon_imap_has_capability(const pigeon_imap *m, const char *cap)
{
    if (m == NULL || cap == NULL || *cap == '\0' || strlen(cap) > 64)
        return 0;
    char word[70];
    size_t n = 0;
    word[n++] = ' ';
    for (const char *p = cap; *p; p++)
        word[n++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 32) : *p;
    word[n++] = ' ';
    word[n] = '\0';
    return strstr(m->caps, word) != NULL;
}

/* What every command does with untagged responses: capabilities, BYE. */
static pigeon_err common_untagged(pigeon_imap *m, const pg_imap_resp *r)
{
    if (r->status == PG_IMAP_ST_BYE) {
        if (m->state != PG_IMAP_S_LOGOUT)
            pg_store_fail(&m->sc, PIGEON_ERR_NETWORK, "server closes the connection: %.*s",
                          (int)r->text_len, r->text);
        return PIGEON_OK;
    }
    if (r->keyword != NULL && r->keyword_len == 10 &&
        strncasecmp(r->keyword, "CAPABILITY", 10) == 0 && r->ntoks > 0) {
        const char *start = r->toks[0].p;
        const pg_imap_tok *last = &r->toks[r->ntoks - 1];
        pg_imap_set_caps(m, start, (size_t)(last->p + last->n - start));
    }
    if (r->code != NULL && r->code_len == 10 && strncasecmp(r->code, "CAPABILITY", 10) == 0 &&
        r->code_arg != NULL)
        pg_imap_set_caps(m, r->code_arg, r->code_arg_len);
    return PIGEON_OK;
}

pigeon_err pg_imap_wait(pigeon_imap *m, pg_imap_untagged_fn fn, void *ctx, const char *what,
                        pigeon_err no_err, int *cont)
{
    pg_imap_resp r;
    if (cont != NULL)
        *cont = 0;
    for (;;) {
        pigeon_err err = read_response(m, &r);
        if (err != PIGEON_OK) {
            set_state(m, PG_IMAP_S_LOGOUT);
            return err;
        }
        if (r.kind == PG_IMAP_CONTINUE) {
            if (cont == NULL)
                return pg_store_fail(&m->sc, PIGEON_ERR_PROTOCOL,
                                     "%s: unexpected continuation request", what);
            *cont = 1;
            return PIGEON_OK;
        }
        if (r.kind == PG_IMAP_UNTAGGED) {
            common_untagged(m, &r);
            if (r.status == PG_IMAP_ST_BYE && m->state != PG_IMAP_S_LOGOUT) {
                set_state(m, PG_IMAP_S_LOGOUT);
                return PIGEON_ERR_NETWORK;
            }
            if (fn != NULL && (err = fn(m, &r, ctx)) != PIGEON_OK)
                return err;
            if (m->return_untagged && cont != NULL) {
                *cont = 2;
                return PIGEON_OK;
            }
            continue;
        }
        if (r.tag_len != strlen(m->tag) || strncmp(r.tag, m->tag, r.tag_len) != 0)
            return pg_store_fail(&m->sc, PIGEON_ERR_PROTOCOL,
                                 "%s: completion for an unknown tag \"%.*s\"", what,
                                 (int)(r.tag_len > 20 ? 20 : r.tag_len), r.tag);
        common_untagged(m, &r);
        snprintf(m->last_code, sizeof m->last_code, "%.*s", (int)r.code_len,
                 r.code != NULL ? r.code : "");
        snprintf(m->last_text, sizeof m->last_text, "%s%.*s%s%.*s%s%.*s", r.code != NULL ? "[" : "",
                 (int)r.code_len, r.code ? r.code : "", r.code_arg != NULL ? " " : "",
                 (int)r.code_arg_len, r.code_arg ? r.code_arg : "", r.code != NULL ? "] " : "",
                 (int)r.text_len, r.text);
        m->last = r;
        if (r.status == PG_IMAP_ST_OK)
            return PIGEON_OK;
        return pg_store_fail(&m->sc, r.status == PG_IMAP_ST_BAD ? PIGEON_ERR_PROTOCOL : no_err,
                             "%s: server said %s %s", what,
                             r.status == PG_IMAP_ST_BAD ? "BAD" : "NO", m->last_text);
    }
}

pigeon_err pg_imap_put_mailbox(pigeon_imap *m, pg_buf *cmd, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || pg_has_ctl_breaks(name, n) || !pg_utf8_valid(name, n))
        return pg_store_fail(&m->sc, PIGEON_ERR_INVALID,
                             "invalid folder name (empty, a control character or not UTF-8)");
    pg_buf enc;
    pg_buf_init(&enc);
    pigeon_err err = pg_mutf7_encode(&enc, name, n);
    if (err != PIGEON_OK) {
        pg_buf_cleanup(&enc);
        return pg_store_fail(&m->sc, PIGEON_ERR_INVALID,
                             "invalid folder name (a control character or not UTF-8)");
    }
    pg_buf_putc(cmd, '"');
    for (size_t i = 0; i < enc.len; i++) {
        if (enc.data[i] == '"' || enc.data[i] == '\\')
            pg_buf_putc(cmd, '\\');
        pg_buf_putc(cmd, enc.data[i]);
    }
    pg_buf_putc(cmd, '"');
    pg_buf_cleanup(&enc);
    return cmd->err;
}

/* RFC 9051 7.1.1/7.1.4/7.1.5: the greeting is OK (log in next), PREAUTH or BYE. */
static pigeon_err greeting(pigeon_imap *m)
{
    pg_imap_resp r;
    pigeon_err err = read_response(m, &r);
    if (err != PIGEON_OK)
        return err;
    if (r.kind != PG_IMAP_UNTAGGED || r.status == PG_IMAP_ST_NONE || r.status == PG_IMAP_ST_NO ||
        r.status == PG_IMAP_ST_BAD)
        return pg_store_fail(&m->sc, PIGEON_ERR_PROTOCOL,
                             "not an IMAP greeting: %.200s (is this an IMAP port?)", m->resp.data);
    if (r.status == PG_IMAP_ST_BYE)
        return pg_store_fail(&m->sc, PIGEON_ERR_DEFERRED, "server refused the connection: %.*s",
                             (int)r.text_len, r.text);
    common_untagged(m, &r);
    set_state(m, r.status == PG_IMAP_ST_PREAUTH ? PG_IMAP_S_AUTH : PG_IMAP_S_NOAUTH);
    return PIGEON_OK;
}

static pigeon_err capability(pigeon_imap *m)
{
    static const char cmd[] = "CAPABILITY";
    pigeon_err err = pg_imap_send(m, NULL, cmd, sizeof cmd - 1);
    if (err == PIGEON_OK)
        err = pg_imap_wait(m, NULL, NULL, "CAPABILITY", PIGEON_ERR_PROTOCOL, NULL);
    return err;
}

/* RFC 9051 6.2.1: STARTTLS, then the capabilities again (what was said in clear does not
 * count). */
static pigeon_err starttls(pigeon_imap *m)
{
    static const char cmd[] = "STARTTLS";
    if (!pigeon_imap_has_capability(m, "STARTTLS"))
        return pg_store_fail(&m->sc, PIGEON_ERR_TLS,
                             "server does not offer STARTTLS on port %u: use its implicit TLS "
                             "port (993) or --tls none (no password is then sent)",
                             (unsigned)m->sc.o.port);
    pigeon_err err = pg_imap_send(m, NULL, cmd, sizeof cmd - 1);
    if (err == PIGEON_OK)
        err = pg_imap_wait(m, NULL, NULL, "STARTTLS", PIGEON_ERR_TLS, NULL);
    if (err == PIGEON_OK)
        err = pg_store_starttls(&m->sc);
    m->caps[0] = '\0';
    if (err == PIGEON_OK)
        err = capability(m);
    return err;
}

/* Appends s as an IMAP string: quoted when it is printable ASCII, else a literal (sent
 * in the same line only with LITERAL+; the caller then needs the continuation). */
static int put_astring(pg_buf *b, const char *s, int *literal)
{
    size_t n = strlen(s);
    int plain = 1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            plain = 0;
    if (!plain) {
        *literal = 1;
        pg_buf_printf(b, "{%zu+}\r\n", n);
        pg_buf_append(b, s, n);
        return 0;
    }
    pg_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            pg_buf_putc(b, '\\');
        pg_buf_putc(b, s[i]);
    }
    pg_buf_putc(b, '"');
    return 0;
}

/* AUTHENTICATE PLAIN (RFC 4616, with SASL-IR RFC 4959 when offered) or LOGIN. */
static pigeon_err login(pigeon_imap *m)
{
    const pigeon_store_opts *o = &m->sc.o;
    pg_buf cmd, raw;
    pg_buf_init(&cmd);
    pg_buf_init(&raw);
    pigeon_err err;
    int plain = o->auth == PIGEON_STORE_AUTH_PLAIN ||
                (o->auth == PIGEON_STORE_AUTH_AUTO && pigeon_imap_has_capability(m, "AUTH=PLAIN"));
    int literal = 0;
    if (pigeon_imap_has_capability(m, "LOGINDISABLED") && !plain) {
        err = pg_store_fail(&m->sc, PIGEON_ERR_AUTH, "server has LOGIN disabled");
        goto done;
    }
    if (plain) {
        pg_buf_putc(&raw, '\0');
        pg_buf_puts(&raw, o->user);
        pg_buf_putc(&raw, '\0');
        pg_buf_puts(&raw, o->password);
        pg_buf_puts(&cmd, "AUTHENTICATE PLAIN");
        int ir = pigeon_imap_has_capability(m, "SASL-IR");
        if (ir) {
            pg_buf_putc(&cmd, ' ');
            pg_b64_encode(&cmd, raw.data, raw.len);
        }
        if ((err = cmd.err) != PIGEON_OK ||
            (err = pg_imap_send(m, ir ? "AUTHENTICATE PLAIN [redacted]" : NULL, cmd.data,
                                cmd.len)) != PIGEON_OK)
            goto done;
        if (!ir) {
            int cont = 0;
            err = pg_imap_wait(m, NULL, NULL, "AUTHENTICATE", PIGEON_ERR_AUTH, &cont);
            if (err != PIGEON_OK || !cont)
                goto done;
            pg_buf_reset(&cmd);
            pg_b64_encode(&cmd, raw.data, raw.len);
            pg_buf_puts(&cmd, "\r\n");
            pg_store_trace(&m->sc, PIGEON_TRANSCRIPT_CLIENT, "[redacted]");
            if ((err = cmd.err) != PIGEON_OK ||
                (err = pg_store_write(&m->sc, cmd.data, cmd.len)) != PIGEON_OK)
                goto done;
        }
    } else {
        pg_buf_puts(&cmd, "LOGIN ");
        put_astring(&cmd, o->user, &literal);
        pg_buf_putc(&cmd, ' ');
        put_astring(&cmd, o->password, &literal);
        if (literal && !pigeon_imap_has_capability(m, "LITERAL+") &&
            !pigeon_imap_has_capability(m, "LITERAL-")) {
            err = pg_store_fail(&m->sc, PIGEON_ERR_AUTH,
                                "the login or password is not printable ASCII and the server "
                                "offers neither AUTHENTICATE PLAIN nor LITERAL+");
            goto done;
        }
        if ((err = cmd.err) != PIGEON_OK ||
            (err = pg_imap_send(m, "LOGIN [redacted]", cmd.data, cmd.len)) != PIGEON_OK)
            goto done;
    }
    err = pg_imap_wait(m, NULL, NULL, "login", PIGEON_ERR_AUTH, NULL);
done:
    pg_buf_wipe_cleanup(&cmd);
    pg_buf_wipe_cleanup(&raw);
    if (err == PIGEON_ERR_PROTOCOL && m->state != PG_IMAP_S_LOGOUT)
        err = PIGEON_ERR_AUTH; /* BAD to a login: the mechanism or the values were refused */
    return err;
}

static pigeon_err check_opts(const pigeon_store_opts *o, char *why, size_t n)
{
    if (o->host == NULL || *o->host == '\0' || o->user == NULL || o->password == NULL) {
        snprintf(why, n, "host, user and password are required");
        return PIGEON_ERR_INVALID;
    }
    if (pg_has_ctl_breaks(o->user, strlen(o->user)) ||
        pg_has_ctl_breaks(o->password, strlen(o->password))) {
        snprintf(why, n, "the login or password holds CR, LF or NUL");
        return PIGEON_ERR_INVALID;
    }
    if (o->tls == PIGEON_TLS_NONE) {
        snprintf(why, n,
                 "refusing to log in without TLS: the password would cross the network "
                 "in clear");
        return PIGEON_ERR_CONFIG;
    }
    return PIGEON_OK;
}

pigeon_err pigeon_imap_connect(const pigeon_store_opts *opts, pigeon_imap **out)
{
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (opts == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_imap *m = calloc(1, sizeof *m);
    if (m == NULL)
        return PIGEON_ERR_NOMEM;
    pg_buf_init(&m->resp);
    m->resp.max = PG_IMAP_RESP_MAX + 16;
    *out = m;
    m->sc.o = *opts;
    pigeon_err err = check_opts(opts, m->sc.err, sizeof m->sc.err);
    if (err != PIGEON_OK)
        return err;
    int implicit = 0;
    if ((err = pg_store_open(&m->sc, opts, IMAP_PORT_TLS, &implicit)) != PIGEON_OK ||
        (err = greeting(m)) != PIGEON_OK)
        goto fail;
    if (m->state == PG_IMAP_S_AUTH) {
        pg_imap_note(m, "server says PREAUTH: already logged in");
        if (!implicit) {
            err = pg_store_fail(&m->sc, PIGEON_ERR_TLS,
                                "server logged us in before TLS (PREAUTH): refusing the "
                                "unprotected session");
            goto fail;
        }
    }
    if (m->caps[0] == '\0' && (err = capability(m)) != PIGEON_OK)
        goto fail;
    if (!implicit && (err = starttls(m)) != PIGEON_OK)
        goto fail;
    if (m->state == PG_IMAP_S_NOAUTH) {
        if ((err = login(m)) != PIGEON_OK)
            goto fail;
        set_state(m, PG_IMAP_S_AUTH);
        /* RFC 9051 6.2.2: capabilities may change after login; get them unless the OK
         * carried them. */
        if (strcmp(m->last_code, "CAPABILITY") != 0 && (err = capability(m)) != PIGEON_OK)
            goto fail;
    }
    return PIGEON_OK;
fail:
    pg_store_close(&m->sc);
    set_state(m, PG_IMAP_S_LOGOUT);
    return err;
}

pigeon_err pigeon_imap_logout(pigeon_imap *m)
{
    static const char cmd[] = "LOGOUT";
    if (m == NULL)
        return PIGEON_ERR_INVALID;
    if (m->state == PG_IMAP_S_LOGOUT || m->sc.conn == NULL)
        return PIGEON_OK;
    pigeon_err err = pg_imap_send(m, NULL, cmd, sizeof cmd - 1);
    set_state(m, PG_IMAP_S_LOGOUT);
    if (err == PIGEON_OK)
        err = pg_imap_wait(m, NULL, NULL, "LOGOUT", PIGEON_ERR_PROTOCOL, NULL);
    pg_store_close(&m->sc);
    return err;
}

void pigeon_imap_free(pigeon_imap *m)
{
    if (m == NULL)
        return;
    pg_store_close(&m->sc);
    pg_buf_cleanup(&m->resp);
    free(m->toks);
    OPENSSL_cleanse(m, sizeof *m);
    free(m);
}

const char *pigeon_imap_error(const pigeon_imap *m)
{
    return m == NULL ? "no IMAP handle" : (m->sc.err[0] ? m->sc.err : "no error");
}
