/*
 * pop3.c - the POP3 client (RFC 1939; CAPA and response codes RFC 2449; STLS RFC 2595 4;
 * AUTH PLAIN RFC 5034 with RFC 4616; implicit TLS on 995, RFC 8314).
 *
 * States (RFC 1939 3): AUTHORIZATION after the greeting, TRANSACTION after PASS, UPDATE
 * at QUIT. Single-line responses start "+OK" or "-ERR" (pop3_status.c parses them);
 * multi-line ones end with "." alone and are dot-unstuffed as they stream (RFC 1939 3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "codec/encode.h"
#include "mailbox/pop3_parse.h"
#include "mailbox/store_conn.h"
#include "util/utf8.h"

#define POP3_PORT_TLS 995
/* RFC 1939 3: responses up to 512 octets; RFC 2449 allows more for CAPA; message lines
 * of real mail run longer than RFC 5322's 998 now and then. */
#define STATUS_LINE_MAX  8192
#define MESSAGE_LINE_MAX ((size_t)1024 * 1024)

typedef enum pop3_state {
    POP3_START = 0,  /* not connected */
    POP3_AUTHZ = 1,  /* AUTHORIZATION */
    POP3_TRANS = 2,  /* TRANSACTION */
    POP3_CLOSED = 3, /* QUIT sent or connection lost */
} pop3_state;

static const char *const state_names[] = {"start", "authorization", "transaction", "closed"};

struct pigeon_pop3 {
    pg_store_conn sc; /* the connection */
    pop3_state state; /* where the session is */
    char caps[1024];  /* " CAP1 CAP2 " upper-case (first word of each CAPA line) */
    pg_buf line;      /* the line being read */
    char last[512];   /* the last -ERR text, for errors */
};

static void set_state(pigeon_pop3 *p, pop3_state st)
{
    if (p->state != st)
        pg_store_trace(&p->sc, PIGEON_TRANSCRIPT_DEBUG, "%s -> %s", state_names[p->state],
                       state_names[st]);
    p->state = st;
}

/* Sends a command line (masked in the transcript when masked is not NULL). */
static pigeon_err send_cmd(pigeon_pop3 *p, const char *masked, const char *cmd)
{
    if (p->sc.conn == NULL || p->state == POP3_CLOSED)
        return pg_store_fail(&p->sc, PIGEON_ERR_STATE, "the POP3 connection is closed");
    pg_store_arm(&p->sc, 0);
    pg_store_trace(&p->sc, PIGEON_TRANSCRIPT_CLIENT, "%s", masked != NULL ? masked : cmd);
    pigeon_err err = pg_store_write(&p->sc, cmd, strlen(cmd));
    if (err == PIGEON_OK)
        err = pg_store_write(&p->sc, "\r\n", 2);
    if (err != PIGEON_OK)
        set_state(p, POP3_CLOSED);
    return err;
}

/* Reads a line into p->line (CRLF kept). */
static pigeon_err read_line(pigeon_pop3 *p, size_t max, int trace)
{
    pg_buf_reset(&p->line);
    pigeon_err err = pg_store_read_line(&p->sc, &p->line, max);
    if (err != PIGEON_OK) {
        set_state(p, POP3_CLOSED);
        return err;
    }
    size_t n = p->line.len;
    while (n > 0 && (p->line.data[n - 1] == '\n' || p->line.data[n - 1] == '\r'))
        n--;
    if (trace)
        pg_store_trace(&p->sc, PIGEON_TRANSCRIPT_SERVER, "%.*s", (int)(n > 300 ? 300 : n),
                       p->line.data);
    return PIGEON_OK;
}

/* Reads a status line: PIGEON_OK for +OK (*text after it), else no_err (a temporary
 * [IN-USE] or [SYS/TEMP] is PIGEON_ERR_DEFERRED, RFC 2449 8, RFC 3206) with the reason. */
static pigeon_err status(pigeon_pop3 *p, const char *what, pigeon_err no_err, const char **text)
{
    pigeon_err err = read_line(p, STATUS_LINE_MAX, 1);
    if (err != PIGEON_OK)
        return err;
    pg_pop3_status st;
    if (pg_pop3_parse_status(p->line.data, p->line.len, &st) != 0)
        return pg_store_fail(&p->sc, PIGEON_ERR_PROTOCOL, "%s: not a POP3 response: %.200s", what,
                             p->line.data);
    if (text != NULL)
        *text = st.text;
    if (st.ok)
        return PIGEON_OK;
    snprintf(p->last, sizeof p->last, "%.*s", (int)st.text_len, st.text);
    if (st.temporary)
        no_err = PIGEON_ERR_DEFERRED;
    return pg_store_fail(&p->sc, no_err, "%s: server said -ERR %s", what, p->last);
}

static pigeon_err command(pigeon_pop3 *p, const char *masked, const char *cmd, const char *what,
                          pigeon_err no_err, const char **text)
{
    pigeon_err err = send_cmd(p, masked, cmd);
    return err != PIGEON_OK ? err : status(p, what, no_err, text);
}

/* Reads a multi-line body after +OK up to ".", unstuffed, each line to fn (RFC 1939 3). */
static pigeon_err multiline(pigeon_pop3 *p, int (*fn)(void *, const void *, size_t), void *ctx,
                            uint64_t *size, int trace)
{
    for (;;) {
        pigeon_err err = read_line(p, MESSAGE_LINE_MAX, trace);
        if (err != PIGEON_OK)
            return err;
        const char *l = p->line.data;
        size_t n = p->line.len;
        if (pg_pop3_is_terminator(l, n))
            return PIGEON_OK;
        if (l[0] == '.') {
            l++;
            n--;
        }
        if (size != NULL)
            *size += n;
        if (fn != NULL && n > 0 && fn(ctx, l, n) != 0)
            return pg_store_fail(&p->sc, PIGEON_ERR_IO, "the message's reader stopped");
    }
}

static int cap_line(void *ctx, const void *data, size_t n)
{
    pigeon_pop3 *p = ctx;
    size_t used = strlen(p->caps);
    if (used == 0)
        p->caps[used++] = ' ';
    const char *s = data;
    for (size_t i = 0; i < n && s[i] != ' ' && s[i] != '\r' && s[i] != '\n'; i++)
        if (used + 2 < sizeof p->caps)
            p->caps[used++] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 32) : s[i];
    if (used + 1 < sizeof p->caps)
        p->caps[used++] = ' ';
    p->caps[used] = '\0';
    return 0;
}

/* RFC 2449 5: CAPA; a server without it answers -ERR (then nothing is known). */
static pigeon_err capa(pigeon_pop3 *p)
{
    p->caps[0] = '\0';
    pigeon_err err = command(p, NULL, "CAPA", "CAPA", PIGEON_ERR_UNSUPPORTED, NULL);
    if (err == PIGEON_ERR_UNSUPPORTED) {
        p->sc.err[0] = '\0';
        return PIGEON_OK;
    }
    if (err != PIGEON_OK)
        return err;
    return multiline(p, cap_line, p, NULL, 1);
}

static int has_cap(const pigeon_pop3 *p, const char *cap)
{
    char word[40];
    snprintf(word, sizeof word, " %s ", cap);
    return strstr(p->caps, word) != NULL;
}

static pigeon_err login(pigeon_pop3 *p)
{
    const pigeon_store_opts *o = &p->sc.o;
    pg_buf cmd, raw;
    pg_buf_init(&cmd);
    pg_buf_init(&raw);
    pigeon_err err;
    if (o->auth == PIGEON_STORE_AUTH_PLAIN) {
        /* RFC 5034 4: AUTH PLAIN initial-response (RFC 4616: "\0user\0password"). */
        pg_buf_putc(&raw, '\0');
        pg_buf_puts(&raw, o->user);
        pg_buf_putc(&raw, '\0');
        pg_buf_puts(&raw, o->password);
        pg_buf_puts(&cmd, "AUTH PLAIN ");
        pg_b64_encode(&cmd, raw.data, raw.len);
        err = cmd.err != PIGEON_OK
                  ? cmd.err
                  : command(p, "AUTH PLAIN [redacted]", cmd.data, "AUTH", PIGEON_ERR_AUTH, NULL);
    } else {
        pg_buf_printf(&cmd, "USER %s", o->user);
        err = cmd.err != PIGEON_OK ? cmd.err
                                   : command(p, NULL, cmd.data, "USER", PIGEON_ERR_AUTH, NULL);
        if (err == PIGEON_OK) {
            pg_buf_reset(&cmd);
            pg_buf_printf(&cmd, "PASS %s", o->password);
            err = cmd.err != PIGEON_OK
                      ? cmd.err
                      : command(p, "PASS [redacted]", cmd.data, "login", PIGEON_ERR_AUTH, NULL);
        }
    }
    pg_buf_wipe_cleanup(&cmd);
    pg_buf_wipe_cleanup(&raw);
    return err;
}

pigeon_err pigeon_pop3_connect(const pigeon_store_opts *opts, pigeon_pop3 **out)
{
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (opts == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_pop3 *p = calloc(1, sizeof *p);
    if (p == NULL)
        return PIGEON_ERR_NOMEM;
    pg_buf_init(&p->line);
    *out = p;
    p->sc.o = *opts;
    if (opts->host == NULL || *opts->host == '\0' || opts->user == NULL || opts->password == NULL)
        return pg_store_fail(&p->sc, PIGEON_ERR_INVALID, "host, user and password are required");
    /* RFC 1939 7: USER and PASS take the rest of the line; a line break would start a
     * command of its own. */
    if (pg_has_ctl_breaks(opts->user, strlen(opts->user)) || strchr(opts->user, ' ') != NULL ||
        pg_has_ctl_breaks(opts->password, strlen(opts->password)))
        return pg_store_fail(&p->sc, PIGEON_ERR_INVALID,
                             "the login or password holds CR, LF or NUL (or the login a space)");
    if (opts->tls == PIGEON_TLS_NONE)
        return pg_store_fail(&p->sc, PIGEON_ERR_CONFIG,
                             "refusing to log in without TLS: the password would cross the "
                             "network in clear");
    int implicit = 0;
    pigeon_err err = pg_store_open(&p->sc, opts, POP3_PORT_TLS, &implicit);
    if (err == PIGEON_OK)
        err = status(p, "greeting", PIGEON_ERR_DEFERRED, NULL);
    if (err != PIGEON_OK)
        goto fail;
    set_state(p, POP3_AUTHZ);
    if ((err = capa(p)) != PIGEON_OK)
        goto fail;
    if (!implicit) {
        if (p->caps[0] != '\0' && !has_cap(p, "STLS")) {
            err = pg_store_fail(&p->sc, PIGEON_ERR_TLS,
                                "server does not offer STLS on port %u: use its implicit TLS "
                                "port (995)",
                                (unsigned)p->sc.o.port);
            goto fail;
        }
        if ((err = command(p, NULL, "STLS", "STLS", PIGEON_ERR_TLS, NULL)) != PIGEON_OK ||
            (err = pg_store_starttls(&p->sc)) != PIGEON_OK || (err = capa(p)) != PIGEON_OK)
            goto fail;
    }
    if ((err = login(p)) != PIGEON_OK)
        goto fail;
    set_state(p, POP3_TRANS);
    return PIGEON_OK;
fail:
    pg_store_close(&p->sc);
    set_state(p, POP3_CLOSED);
    return err;
}

static pigeon_err require_trans(pigeon_pop3 *p)
{
    if (p == NULL)
        return PIGEON_ERR_INVALID;
    if (p->state != POP3_TRANS)
        return pg_store_fail(&p->sc, PIGEON_ERR_STATE, "not logged in to the POP3 server");
    return PIGEON_OK;
}

pigeon_err pigeon_pop3_stat(pigeon_pop3 *p, size_t *count, uint64_t *size)
{
    pigeon_err err = require_trans(p);
    const char *text = NULL;
    if (err == PIGEON_OK)
        err = command(p, NULL, "STAT", "STAT", PIGEON_ERR_REJECTED, &text);
    if (err != PIGEON_OK)
        return err;
    unsigned long long n = 0, sz = 0;
    /* RFC 1939 5: "+OK nn mm" */
    if (pg_pop3_parse_stat(text, &n, &sz) != 0)
        return pg_store_fail(&p->sc, PIGEON_ERR_PROTOCOL, "malformed STAT response");
    if (count != NULL)
        *count = (size_t)n;
    if (size != NULL)
        *size = sz;
    return PIGEON_OK;
}

struct uidl_ctx {
    int (*fn)(void *ctx, unsigned number, const char *uid); /* the caller's callback */
    void *ctx;                                              /* its context */
    int stopped;                                            /* it asked to stop */
    int bad;                                                /* a malformed line was seen */
};

static int uidl_line(void *vctx, const void *data, size_t n)
{
    struct uidl_ctx *uc = vctx;
    unsigned number = 0;
    char uid[72];
    if (pg_pop3_parse_uidl(data, n, &number, uid, sizeof uid) != 0) {
        uc->bad = 1;
        return 0;
    }
    if (!uc->stopped && uc->fn(uc->ctx, number, uid) != 0)
        uc->stopped = 1;
    return 0;
}

pigeon_err pigeon_pop3_uidl(pigeon_pop3 *p, int (*fn)(void *ctx, unsigned number, const char *uid),
                            void *ctx)
{
    pigeon_err err = require_trans(p);
    if (err != PIGEON_OK)
        return err;
    if (fn == NULL)
        return PIGEON_ERR_INVALID;
    if ((err = command(p, NULL, "UIDL", "UIDL", PIGEON_ERR_UNSUPPORTED, NULL)) != PIGEON_OK)
        return err;
    struct uidl_ctx uc = {fn, ctx, 0, 0};
    if ((err = multiline(p, uidl_line, &uc, NULL, 1)) != PIGEON_OK)
        return err;
    if (uc.bad)
        return pg_store_fail(&p->sc, PIGEON_ERR_PROTOCOL, "malformed UIDL line");
    return PIGEON_OK;
}

pigeon_err pigeon_pop3_retr(pigeon_pop3 *p, unsigned number, pigeon_store_sink_fn sink, void *ctx,
                            uint64_t *size)
{
    if (size != NULL)
        *size = 0;
    pigeon_err err = require_trans(p);
    if (err != PIGEON_OK)
        return err;
    if (sink == NULL || number == 0)
        return PIGEON_ERR_INVALID;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "RETR %u", number);
    if ((err = command(p, NULL, cmd, "RETR", PIGEON_ERR_NOTFOUND, NULL)) != PIGEON_OK)
        return err;
    pg_store_trace(&p->sc, PIGEON_TRANSCRIPT_SERVER, "[message %u]", number);
    uint64_t got = 0;
    err = multiline(p, sink, ctx, &got, 0);
    if (size != NULL)
        *size = got;
    return err;
}

pigeon_err pigeon_pop3_dele(pigeon_pop3 *p, unsigned number)
{
    pigeon_err err = require_trans(p);
    if (err != PIGEON_OK)
        return err;
    if (number == 0)
        return PIGEON_ERR_INVALID;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "DELE %u", number);
    return command(p, NULL, cmd, "DELE", PIGEON_ERR_NOTFOUND, NULL);
}

pigeon_err pigeon_pop3_quit(pigeon_pop3 *p)
{
    if (p == NULL)
        return PIGEON_ERR_INVALID;
    if (p->sc.conn == NULL || p->state == POP3_CLOSED)
        return PIGEON_OK;
    pigeon_err err = command(p, NULL, "QUIT", "QUIT", PIGEON_ERR_REJECTED, NULL);
    set_state(p, POP3_CLOSED);
    pg_store_close(&p->sc);
    return err;
}

void pigeon_pop3_free(pigeon_pop3 *p)
{
    if (p == NULL)
        return;
    pg_store_close(&p->sc);
    pg_buf_cleanup(&p->line);
    OPENSSL_cleanse(p, sizeof *p);
    free(p);
}

const char *pigeon_pop3_error(const pigeon_pop3 *p)
{
    return p == NULL ? "no POP3 handle" : (p->sc.err[0] ? p->sc.err : "no error");
}
