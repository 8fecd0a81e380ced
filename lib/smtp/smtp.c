/*
 * smtp.c - the SMTP client session: connection, TLS, greeting, EHLO, STARTTLS, AUTH, QUIT.
 *
 * RFC 5321 3.1 (session initiation), 4.1.1.1 (EHLO/HELO), 4.2 (replies), 4.5.3.2
 * (timeouts); RFC 3207 (STARTTLS: nothing pipelined after it, data after its 220 is an
 * attack (CVE-2011-0411), EHLO again over TLS and forget what was learned before);
 * RFC 8314 (implicit TLS); RFC 4954 (AUTH, 334 challenges, "*" to cancel); RFC 2034
 * (ENHANCEDSTATUSCODES).
 *
 * The session is an explicit state machine: pg_smtp_state, its name table, and
 * pg_smtp_set_state() as the only place the state changes (logging "old -> new" to the
 * transcript at debug level). Each reply has one handler (on_greeting, on_ehlo, ...).
 * Mail transactions are in smtp_data.c.
 */
#include "smtp/smtp_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/x509_vfy.h>

#include "codec/encode.h"
#include "smtp/sasl.h"

/* Defaults from RFC 5321 4.5.3.2 where it gives one. */
#define DEF_CONNECT_MS    30000
#define DEF_GREETING_MS   300000
#define DEF_EHLO_MS       300000
#define DEF_STARTTLS_MS   120000
#define DEF_AUTH_MS       120000
#define DEF_MAIL_MS       300000
#define DEF_RCPT_MS       300000
#define DEF_DATA_MS       120000
#define DEF_DATA_BLOCK_MS 180000
#define DEF_DATA_END_MS   600000
#define DEF_RSET_MS       120000
#define DEF_QUIT_MS       10000

/* RFC 4954 4: an AUTH command with its initial response must fit the 512-octet command
 * line (RFC 5321 4.5.3.1.4); longer ones send the response after an empty challenge. */
#define AUTH_LINE_MAX 512

/* Indexes of the owned option strings in pigeon_smtp.strings. */
enum { S_HOST, S_CA, S_FPR, S_HELO, S_USER, S_PASS, S_TOKEN, S_PROV, S_NOTIFY, S_RET, S_ENVID };

static const char *const state_names[PG_ST_COUNT] = {
    [PG_ST_IDLE] = "idle",
    [PG_ST_CONNECT] = "connect",
    [PG_ST_TLS_HANDSHAKE] = "tls-handshake",
    [PG_ST_GREETING] = "greeting",
    [PG_ST_EHLO] = "ehlo",
    [PG_ST_HELO] = "helo",
    [PG_ST_STARTTLS] = "starttls",
    [PG_ST_STARTTLS_HANDSHAKE] = "starttls-handshake",
    [PG_ST_EHLO_TLS] = "ehlo-tls",
    [PG_ST_AUTH] = "auth",
    [PG_ST_READY] = "ready",
    [PG_ST_RSET] = "rset",
    [PG_ST_MAIL] = "mail",
    [PG_ST_RCPT] = "rcpt",
    [PG_ST_DATA] = "data",
    [PG_ST_BODY] = "body",
    [PG_ST_DATA_END] = "data-end",
    [PG_ST_QUIT] = "quit",
    [PG_ST_CLOSED] = "closed",
    [PG_ST_BROKEN] = "broken",
};

static pigeon_err copy_opts(pigeon_smtp *s, const pigeon_smtp_opts *o);
static pigeon_err check_opts(const pigeon_smtp_opts *o);
static int resolve_ms(int given, int def);
static void conn_trace(void *ctx, const char *line);
static pigeon_err open_connection(pigeon_smtp *s);
static pigeon_err implicit_tls(pigeon_smtp *s);
static pigeon_err tls_handshake(pigeon_smtp *s, int timeout_ms, const char *stage);
static pigeon_err on_greeting(pigeon_smtp *s);
static pigeon_err read_greeting(pigeon_smtp *s);
static pigeon_err say_hello(pigeon_smtp *s, pg_smtp_state st);
static pigeon_err on_ehlo(pigeon_smtp *s, pg_smtp_state st);
static pigeon_err on_helo(pigeon_smtp *s);
static void parse_caps(pigeon_smtp_caps *c, const pg_reply *r);
static void parse_cap_line(pigeon_smtp_caps *c, const char *line, size_t len);
static void parse_auth_mechs(pigeon_smtp_caps *c, const char *p, size_t n);
static pigeon_err starttls(pigeon_smtp *s);
static pigeon_err on_starttls(pigeon_smtp *s);
static pigeon_err authenticate(pigeon_smtp *s);
static pigeon_auth_mech pick_mech(const pigeon_smtp *s);
static pigeon_err auth_exchange(pigeon_smtp *s, pg_sasl *sasl);
static pigeon_err auth_start(pigeon_smtp *s, pg_sasl *sasl);
static pigeon_err on_auth(pigeon_smtp *s, pg_sasl *sasl, int *done);
static pigeon_err auth_cancel(pigeon_smtp *s, pigeon_fail_class cls, const char *why);
static void tls_failure(pigeon_smtp *s, pigeon_err err, const char *stage);
static void sanitize(char *dst, size_t cap, const char *src, size_t n);
static pigeon_err read_reply_by(pigeon_smtp *s, int64_t deadline, const char *stage);

/* ---- names ---- */

const char *pigeon_fail_class_name(pigeon_fail_class c)
{
    static const char *const names[] = {"none",     "network",  "tls",       "auth", "rejected",
                                        "deferred", "protocol", "too-large", "data", "config"};
    return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "?";
}

int pigeon_fail_class_is_temporary(pigeon_fail_class c)
{
    return c == PIGEON_FAIL_NETWORK || c == PIGEON_FAIL_DEFERRED || c == PIGEON_FAIL_PROTOCOL;
}

int pigeon_send_result_is_temporary(const pigeon_send_result *r)
{
    if (r == NULL)
        return 0;
    if (r->fail_class == PIGEON_FAIL_TLS) {
        /* RFC 5321 4.2.1: the reply decides when there is one (STARTTLS refused). */
        if (r->code >= 400 && r->code < 600)
            return r->code < 500;
        return r->err == PIGEON_ERR_TLS;
    }
    return pigeon_fail_class_is_temporary(r->fail_class);
}

const char *pigeon_tls_mode_name(pigeon_tls_mode m)
{
    static const char *const names[] = {"auto", "implicit", "starttls", "none"};
    return (unsigned)m < sizeof names / sizeof names[0] ? names[m] : "?";
}

const char *pigeon_auth_mech_name(pigeon_auth_mech m)
{
    static const char *const names[] = {"auto", "none", "PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"};
    return (unsigned)m < sizeof names / sizeof names[0] ? names[m] : "?";
}

int pigeon_tls_mode_parse(const char *str, pigeon_tls_mode *out)
{
    static const struct {
        const char *name;
        pigeon_tls_mode mode;
    } map[] = {{"auto", PIGEON_TLS_AUTO},      {"implicit", PIGEON_TLS_IMPLICIT},
               {"tls", PIGEON_TLS_IMPLICIT},   {"ssl", PIGEON_TLS_IMPLICIT},
               {"smtps", PIGEON_TLS_IMPLICIT}, {"starttls", PIGEON_TLS_STARTTLS},
               {"none", PIGEON_TLS_NONE},      {"off", PIGEON_TLS_NONE},
               {"plain", PIGEON_TLS_NONE}};
    for (size_t i = 0; str != NULL && i < sizeof map / sizeof map[0]; i++) {
        if (strcasecmp(str, map[i].name) == 0) {
            *out = map[i].mode;
            return 0;
        }
    }
    return -1;
}

int pigeon_auth_mech_parse(const char *str, pigeon_auth_mech *out)
{
    static const struct {
        const char *name;
        pigeon_auth_mech mech;
    } map[] = {{"auto", PIGEON_AUTH_AUTO},       {"none", PIGEON_AUTH_NONE},
               {"off", PIGEON_AUTH_NONE},        {"plain", PIGEON_AUTH_PLAIN},
               {"login", PIGEON_AUTH_LOGIN},     {"cram-md5", PIGEON_AUTH_CRAM_MD5},
               {"xoauth2", PIGEON_AUTH_XOAUTH2}, {"oauth2", PIGEON_AUTH_XOAUTH2}};
    for (size_t i = 0; str != NULL && i < sizeof map / sizeof map[0]; i++) {
        if (strcasecmp(str, map[i].name) == 0) {
            *out = map[i].mech;
            return 0;
        }
    }
    return -1;
}

/* ---- results ---- */

void pigeon_send_result_init(pigeon_send_result *r)
{
    if (r == NULL)
        return;
    memset(r, 0, sizeof *r);
    r->size = -1;
}

void pigeon_send_result_cleanup(pigeon_send_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->rcpt_count; i++) {
        free(r->rcpts[i].address);
        free(r->rcpts[i].text);
    }
    free(r->rcpts);
    free(r->reply_text);
    pigeon_send_result_init(r);
}

/* ---- options and lifecycle ---- */

void pigeon_smtp_opts_init(pigeon_smtp_opts *o)
{
    if (o != NULL)
        memset(o, 0, sizeof *o);
}

static int resolve_ms(int given, int def)
{
    return given == 0 ? def : given;
}

/* An RFC 3461 keyword list: letters and commas only (the values are fixed words). */
static int dsn_word_ok(const char *v)
{
    if (v == NULL)
        return 1;
    if (*v == '\0')
        return 0;
    for (; *v != '\0'; v++) {
        if (!((*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z') || *v == ','))
            return 0;
    }
    return 1;
}

static pigeon_err check_opts(const pigeon_smtp_opts *o)
{
    if (o->host == NULL || o->host[0] == '\0')
        return PIGEON_ERR_INVALID;
    if ((unsigned)o->tls > PIGEON_TLS_NONE || (unsigned)o->auth > PIGEON_AUTH_XOAUTH2 ||
        (unsigned)o->stop_after > PIGEON_STOP_EHLO)
        return PIGEON_ERR_INVALID;
    if (!dsn_word_ok(o->dsn_notify) || !dsn_word_ok(o->dsn_ret))
        return PIGEON_ERR_INVALID;
    int has_secret = (o->password != NULL && o->password[0] != '\0') ||
                     (o->oauth_token != NULL && o->oauth_token[0] != '\0');
    int wants_auth = o->auth != PIGEON_AUTH_NONE && o->user != NULL && o->user[0] != '\0';
    /* AUTH is never sent in plaintext, full stop (RFC 8314 3; RFC 4954 4 leaves it to us). */
    if (o->tls == PIGEON_TLS_NONE && (wants_auth || (o->auth > PIGEON_AUTH_NONE)))
        return PIGEON_ERR_CONFIG;
    if (o->auth > PIGEON_AUTH_NONE && (!wants_auth || !has_secret))
        return PIGEON_ERR_CONFIG;
    if (o->auth == PIGEON_AUTH_XOAUTH2 && (o->oauth_token == NULL || o->oauth_token[0] == '\0'))
        return PIGEON_ERR_CONFIG;
    if (wants_auth && !has_secret)
        return PIGEON_ERR_CONFIG;
    return PIGEON_OK;
}

static pigeon_err copy_opts(pigeon_smtp *s, const pigeon_smtp_opts *o)
{
    const char *src[11] = {o->host,       o->ca_file,  o->fingerprint, o->helo,
                           o->user,       o->password, o->oauth_token, o->provider,
                           o->dsn_notify, o->dsn_ret,  o->dsn_envid};
    s->o = *o;
    for (size_t i = 0; i < 11; i++) {
        if (src[i] != NULL && (s->strings[i] = strdup(src[i])) == NULL)
            return PIGEON_ERR_NOMEM;
    }
    s->o.host = s->strings[S_HOST];
    s->o.ca_file = s->strings[S_CA];
    s->o.fingerprint = s->strings[S_FPR];
    s->o.helo = s->strings[S_HELO] != NULL ? s->strings[S_HELO] : "localhost";
    s->o.user = s->strings[S_USER];
    s->o.password = s->strings[S_PASS];
    s->o.oauth_token = s->strings[S_TOKEN];
    s->o.provider = s->strings[S_PROV];
    s->o.dsn_notify = s->strings[S_NOTIFY];
    s->o.dsn_ret = s->strings[S_RET];
    s->o.dsn_envid = s->strings[S_ENVID];
    if (s->o.tls == PIGEON_TLS_AUTO)
        s->o.tls = s->o.port == 465 ? PIGEON_TLS_IMPLICIT : PIGEON_TLS_STARTTLS;
    if (s->o.port == 0)
        s->o.port = s->o.tls == PIGEON_TLS_IMPLICIT ? 465 : 587;
    return PIGEON_OK;
}

pigeon_err pigeon_smtp_new(const pigeon_smtp_opts *opts, pigeon_smtp **out)
{
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (opts == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_err err = check_opts(opts);
    if (err != PIGEON_OK)
        return err;
    pigeon_smtp *s = calloc(1, sizeof *s);
    if (s == NULL)
        return PIGEON_ERR_NOMEM;
    pg_buf_init(&s->out);
    pg_buf_init(&s->data);
    pigeon_send_result_init(&s->scratch);
    if ((err = copy_opts(s, opts)) != PIGEON_OK)
        goto fail;
    const pigeon_smtp_timeouts *t = &opts->timeouts;
    s->t = (pg_smtp_limits){resolve_ms(t->connect_ms, DEF_CONNECT_MS),
                            resolve_ms(t->greeting_ms, DEF_GREETING_MS),
                            resolve_ms(t->ehlo_ms, DEF_EHLO_MS),
                            resolve_ms(t->starttls_ms, DEF_STARTTLS_MS),
                            resolve_ms(t->auth_ms, DEF_AUTH_MS),
                            resolve_ms(t->mail_ms, DEF_MAIL_MS),
                            resolve_ms(t->rcpt_ms, DEF_RCPT_MS),
                            resolve_ms(t->data_ms, DEF_DATA_MS),
                            resolve_ms(t->data_block_ms, DEF_DATA_BLOCK_MS),
                            resolve_ms(t->data_end_ms, DEF_DATA_END_MS),
                            resolve_ms(t->rset_ms, DEF_RSET_MS),
                            resolve_ms(t->quit_ms, DEF_QUIT_MS)};
    s->family = pg_hint_family_of(s->o.provider, s->o.host);
    s->auth_used = PIGEON_AUTH_NONE;
    s->res = &s->scratch;
    *out = s;
    return PIGEON_OK;
fail:
    pigeon_smtp_free(s);
    return err;
}

void pigeon_smtp_free(pigeon_smtp *s)
{
    if (s == NULL)
        return;
    pg_conn_close(s->conn);
    for (size_t i = 0; i < sizeof s->strings / sizeof s->strings[0]; i++) {
        if (s->strings[i] != NULL)
            OPENSSL_cleanse(s->strings[i], strlen(s->strings[i]));
        free(s->strings[i]);
    }
    /* Command and data buffers may have held AUTH responses. */
    pg_buf_wipe_cleanup(&s->out);
    pg_buf_cleanup(&s->data);
    free(s->chunk);
    pigeon_send_result_cleanup(&s->scratch);
    free(s);
}

/* ---- shared helpers ---- */

int64_t pg_smtp_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pg_smtp_trace(pigeon_smtp *s, pigeon_transcript_dir dir, const char *fmt, ...)
{
    if (s->o.transcript == NULL || (dir == PIGEON_TRANSCRIPT_DEBUG && !s->o.transcript_debug))
        return;
    char text[PG_REPLY_LINE_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    s->o.transcript(s->o.transcript_ctx, dir, pg_smtp_wall_ms(), text);
}

void pg_smtp_set_state(pigeon_smtp *s, pg_smtp_state st)
{
    if (st == s->state)
        return;
    pg_smtp_trace(s, PIGEON_TRANSCRIPT_DEBUG, "state %s -> %s", state_names[s->state],
                  state_names[st]);
    s->state = st;
}

int64_t pg_smtp_deadline(const pigeon_smtp *s, int ms)
{
    int64_t d = ms > 0 ? pg_now_ms() + ms : 0;
    if (s->deadline != 0 && (d == 0 || s->deadline < d))
        d = s->deadline;
    return d;
}

void pg_smtp_cmd(pigeon_smtp *s, const char *mask, const char *fmt, ...)
{
    size_t start = s->out.len;
    va_list ap;
    va_start(ap, fmt);
    pg_buf_vprintf(&s->out, fmt, ap);
    va_end(ap);
    if (s->out.err == PIGEON_OK) {
        if (mask != NULL)
            pg_smtp_trace(s, PIGEON_TRANSCRIPT_CLIENT, "%s", mask);
        else
            pg_smtp_trace(s, PIGEON_TRANSCRIPT_CLIENT, "%.*s", (int)(s->out.len - start),
                          s->out.data + start);
    }
    pg_buf_append(&s->out, "\r\n", 2);
}

pigeon_fail_class pg_smtp_class_of(int code)
{
    return code >= 400 && code < 500 ? PIGEON_FAIL_DEFERRED : PIGEON_FAIL_REJECTED;
}

pigeon_err pg_smtp_err_of(pigeon_fail_class c)
{
    static const pigeon_err map[] = {
        [PIGEON_FAIL_NONE] = PIGEON_OK,
        [PIGEON_FAIL_NETWORK] = PIGEON_ERR_NETWORK,
        [PIGEON_FAIL_TLS] = PIGEON_ERR_TLS,
        [PIGEON_FAIL_AUTH] = PIGEON_ERR_AUTH,
        [PIGEON_FAIL_REJECTED] = PIGEON_ERR_REJECTED,
        [PIGEON_FAIL_DEFERRED] = PIGEON_ERR_DEFERRED,
        [PIGEON_FAIL_PROTOCOL] = PIGEON_ERR_PROTOCOL,
        [PIGEON_FAIL_TOO_LARGE] = PIGEON_ERR_TOO_LARGE,
        [PIGEON_FAIL_DATA] = PIGEON_ERR_IO,
        [PIGEON_FAIL_CONFIG] = PIGEON_ERR_CONFIG,
    };
    return (unsigned)c < sizeof map / sizeof map[0] ? map[c] : PIGEON_ERR_INVALID;
}

void pg_smtp_fail(pigeon_smtp *s, pigeon_fail_class cls, pigeon_err err, const char *stage,
                  const char *fmt, ...)
{
    pigeon_send_result *r = s->res;
    if (r->fail_class != PIGEON_FAIL_NONE)
        return; /* the first failure is the cause; later ones are consequences */
    r->fail_class = cls;
    r->err = err;
    r->stage = stage;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
    va_end(ap);
    pg_smtp_trace(s, PIGEON_TRANSCRIPT_INFO, "error (%s, %s): %s", pigeon_fail_class_name(cls),
                  stage, r->errmsg);
}

void pg_smtp_fail_reply(pigeon_smtp *s, pigeon_fail_class cls, const char *stage, const pg_reply *r,
                        const char *what)
{
    pigeon_send_result *res = s->res;
    if (res->fail_class != PIGEON_FAIL_NONE)
        return;
    if (cls == PIGEON_FAIL_NONE)
        cls = pg_smtp_class_of(r->code);
    pg_smtp_fail(s, cls, pg_smtp_err_of(cls), stage, "%s: the server replied %d", what, r->code);
    res->code = r->code;
    memcpy(res->enhanced, r->enhanced, sizeof res->enhanced);
    free(res->reply_text);
    res->reply_text = strdup(r->text);
    if (res->hint == NULL)
        res->hint = pg_hint_for_reply(s->family, stage, r->code, r->enhanced, r->text);
}

void pg_smtp_break(pigeon_smtp *s)
{
    pg_conn_close(s->conn);
    s->conn = NULL;
    pg_smtp_set_state(s, PG_ST_BROKEN);
}

void pg_smtp_begin(pigeon_smtp *s, pigeon_send_result *res)
{
    s->res = res != NULL ? res : &s->scratch;
    pigeon_send_result_cleanup(s->res);
    s->deadline = s->o.total_timeout_ms > 0 ? pg_now_ms() + s->o.total_timeout_ms : 0;
}

void pg_smtp_end(pigeon_smtp *s, int64_t started_ms)
{
    s->res->duration_ms = pg_now_ms() - started_ms;
    s->deadline = 0;
}

/* Copies n bytes of peer text, control characters made harmless, NUL-terminated. */
static void sanitize(char *dst, size_t cap, const char *src, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[j++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
    dst[j] = '\0';
}

pigeon_err pg_smtp_quiet(pigeon_smtp *s, const char *stage)
{
    size_t pending = s->conn != NULL ? pg_conn_pending(s->conn) : 0;
    if (pending == 0)
        return PIGEON_OK;
    char head[64] = "";
    size_t n = 0;
    pg_conn_peek(s->conn, head, sizeof head - 1, &n, pg_now_ms() + 100);
    char shown[sizeof head];
    size_t line = 0;
    while (line < n && head[line] != '\r' && head[line] != '\n')
        line++;
    sanitize(shown, sizeof shown, head, line);
    /* RFC 5321 3.8: a server may announce 421 and close at any time, even unasked (an
     * idle connection kept for the next message): a temporary failure, not a violation. */
    pigeon_err err = PIGEON_ERR_PROTOCOL;
    if (n >= 4 && memcmp(head, "421", 3) == 0 && (head[3] == ' ' || head[3] == '-')) {
        err = PIGEON_ERR_DEFERRED;
        pg_smtp_fail(s, PIGEON_FAIL_DEFERRED, PIGEON_ERR_DEFERRED, stage,
                     "the server closed the session: \"%s\"", shown);
        if (s->res->code == 0)
            s->res->code = 421;
    } else {
        /* RFC 5321 4.3 / 2.3.7: each reply answers a command already sent; RFC 2920 3.2
         * lets only a PIPELINING group's replies wait, and they were all read. Data sent
         * before its command is an early talker (spamware, or a man in the middle writing
         * replies ahead), and believing it could report a message as sent that the server
         * never took. */
        pg_smtp_fail(s, PIGEON_FAIL_PROTOCOL, PIGEON_ERR_PROTOCOL, stage,
                     "the server sent %zu bytes before pigeon's command (\"%s\"): replies "
                     "ahead of their commands (an early talker); session stopped",
                     pending, shown);
    }
    pg_smtp_break(s);
    return err;
}

pigeon_err pg_smtp_flush(pigeon_smtp *s, int timeout_ms, const char *stage)
{
    /* Every command goes out with no reply left unread (QUIT aside: what a closing server
     * says no longer matters). */
    pigeon_err quiet = PIGEON_OK;
    if (strcmp(stage, "quit") != 0 && s->out.err == PIGEON_OK &&
        (quiet = pg_smtp_quiet(s, stage)) != PIGEON_OK) {
        pg_buf_wipe_cleanup(&s->out);
        return quiet;
    }
    if (s->out.err != PIGEON_OK) {
        pigeon_err e = s->out.err;
        pg_buf_wipe_cleanup(&s->out);
        pg_smtp_fail(s, PIGEON_FAIL_DATA, e, stage, "cannot build the command: %s",
                     pigeon_strerror(e));
        pg_smtp_break(s);
        return e;
    }
    pigeon_err err =
        pg_conn_write(s->conn, s->out.data, s->out.len, pg_smtp_deadline(s, timeout_ms));
    /* The buffer may have held an AUTH response: wipe before reuse. */
    if (s->out.len > 0)
        OPENSSL_cleanse(s->out.data, s->out.len);
    pg_buf_reset(&s->out);
    if (err != PIGEON_OK) {
        pg_smtp_fail(s, PIGEON_FAIL_NETWORK, err, stage, "%s", pg_conn_error(s->conn));
        pg_smtp_break(s);
    }
    return err;
}

pigeon_err pg_smtp_read_reply(pigeon_smtp *s, int timeout_ms, const char *stage)
{
    return read_reply_by(s, pg_smtp_deadline(s, timeout_ms), stage);
}

/* Reads one reply, all of it before the absolute deadline. */
static pigeon_err read_reply_by(pigeon_smtp *s, int64_t deadline, const char *stage)
{
    pg_reply_init(&s->reply);
    for (;;) {
        size_t len = 0;
        pigeon_err err = pg_conn_read_line(s->conn, s->line, sizeof s->line, &len, deadline);
        if (err != PIGEON_OK) {
            pigeon_fail_class cls = err == PIGEON_ERR_PROTOCOL ? PIGEON_FAIL_PROTOCOL
                                    : err == PIGEON_ERR_TLS    ? PIGEON_FAIL_TLS
                                                               : PIGEON_FAIL_NETWORK;
            if (err == PIGEON_ERR_TIMEOUT)
                pg_smtp_fail(s, cls, err, stage, "timed out waiting for the server's reply (%s)",
                             stage);
            else
                pg_smtp_fail(s, cls, err, stage, "%s", pg_conn_error(s->conn));
            pg_smtp_break(s);
            return err;
        }
        char shown[PG_REPLY_LINE_MAX + 3];
        size_t n = len;
        while (n > 0 && (s->line[n - 1] == '\n' || s->line[n - 1] == '\r'))
            n--;
        sanitize(shown, sizeof shown, s->line, n);
        pg_smtp_trace(s, PIGEON_TRANSCRIPT_SERVER, "%s", shown);
        pg_reply_status st = pg_reply_feed(&s->reply, s->line, len);
        if (st == PG_REPLY_DONE)
            return PIGEON_OK;
        if (st == PG_REPLY_ERROR) {
            pg_smtp_fail(s, PIGEON_FAIL_PROTOCOL, PIGEON_ERR_PROTOCOL, stage, "%s: \"%.80s\"",
                         s->reply.why, shown);
            pg_smtp_break(s);
            return PIGEON_ERR_PROTOCOL;
        }
    }
}

/* ---- connection and TLS ---- */

static void conn_trace(void *ctx, const char *line)
{
    pg_smtp_trace(ctx, PIGEON_TRANSCRIPT_INFO, "%s", line);
}

static pigeon_err open_connection(pigeon_smtp *s)
{
    char why[256] = "";
    s->quit_sent = 0;
    pg_smtp_set_state(s, PG_ST_CONNECT);
    pg_smtp_trace(s, PIGEON_TRANSCRIPT_INFO, "connecting to %s port %u (tls %s)", s->o.host,
                  (unsigned)s->o.port, pigeon_tls_mode_name(s->o.tls));
    pigeon_err err = pg_conn_open(&s->conn, s->o.host, s->o.port, s->t.connect, s->deadline,
                                  conn_trace, s, why, sizeof why);
    if (err == PIGEON_OK)
        return PIGEON_OK; /* the transport's trace already said "connected to ..." */
    /* why is already a whole sentence naming the host and port ("cannot connect to X
     * port N: ..." or "cannot resolve X: ..."): said once. */
    pg_smtp_fail(s, err == PIGEON_ERR_INVALID ? PIGEON_FAIL_CONFIG : PIGEON_FAIL_NETWORK, err,
                 "connect", "%s", why[0] != '\0' ? why : "cannot connect");
    if (strstr(why, "refused") != NULL)
        s->res->hint = pg_hint_for_situation(PG_HINT_CONNECT_REFUSED, s->o.port);
    pg_smtp_set_state(s, PG_ST_BROKEN);
    return err;
}

/* Keeps a copy of what the handshake saw, for pigeon_smtp_tls_info() after a close. */
static void keep_tls_info(pigeon_smtp *s)
{
    const pg_tls_info *ti = pg_conn_tls_info(s->conn);
    s->tls_info_valid = ti != NULL;
    if (ti != NULL)
        s->tls_info = *ti;
}

/* Classifies a failed handshake and picks the hint (wrong mode, certificate, version). */
static void tls_failure(pigeon_smtp *s, pigeon_err err, const char *stage)
{
    const char *why = pg_conn_error(s->conn);
    pg_hint_situation h = 0;
    if (err == PIGEON_ERR_TIMEOUT) {
        pg_smtp_fail(s, PIGEON_FAIL_NETWORK, err, stage, "TLS handshake timed out: %s", why);
        h = PG_HINT_TIMEOUT;
    } else if (err == PIGEON_ERR_PROTOCOL) {
        pg_smtp_fail(s, PIGEON_FAIL_PROTOCOL, err, stage, "%s", why);
        h = PG_HINT_STARTTLS_INJECTION;
    } else {
        const pg_tls_info *ti = pg_conn_tls_info(s->conn);
        long v = ti != NULL ? ti->verify_result : X509_V_OK;
        if (strstr(why, "SMTP greeting") != NULL)
            h = PG_HINT_GREETING_IN_TLS_MODE;
        else if (v == X509_V_ERR_CERT_HAS_EXPIRED || v == X509_V_ERR_CERT_NOT_YET_VALID)
            h = PG_HINT_CERT_EXPIRED;
        else if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
            h = PG_HINT_CERT_NAME;
        else if (v != X509_V_OK || strstr(why, "fingerprint") != NULL)
            h = PG_HINT_CERT_UNTRUSTED;
        else if (strstr(why, "version") != NULL || strstr(why, "TLS 1.") != NULL)
            h = PG_HINT_TLS_OLD_VERSION;
        /* A certificate that does not verify (or match its pin), the other TLS mode on the
         * port, or a server stuck below TLS 1.2 will not change by retrying: permanent,
         * recorded as a configuration matter (or an attack). Anything else in the
         * handshake (a reset, garbage, an alert) may be transient: PIGEON_ERR_TLS, retried
         * (pigeon_send_result_is_temporary()). */
        if (err != PIGEON_ERR_CONFIG && h != 0)
            err = PIGEON_ERR_CONFIG;
        pg_smtp_fail(s, err == PIGEON_ERR_CONFIG && h == 0 ? PIGEON_FAIL_CONFIG : PIGEON_FAIL_TLS,
                     err, stage, "TLS failed with %s: %s", s->o.host, why);
    }
    if (h != 0 && s->res->hint == NULL)
        s->res->hint = pg_hint_for_situation(h, s->o.port);
}

static pigeon_err tls_handshake(pigeon_smtp *s, int timeout_ms, const char *stage)
{
    pg_tls_opts to = {.server_name = s->o.host,
                      .ca_file = s->o.ca_file,
                      .fingerprint = s->o.fingerprint,
                      .insecure = s->o.insecure};
    if (s->o.insecure)
        pg_smtp_trace(s, PIGEON_TRANSCRIPT_INFO,
                      "WARNING: --insecure: the server's certificate chain and name are NOT "
                      "verified; anyone on the path can read and change this session");
    pigeon_err err = pg_conn_starttls(s->conn, &to, pg_smtp_deadline(s, timeout_ms));
    keep_tls_info(s);
    if (err != PIGEON_OK) {
        tls_failure(s, err, stage);
        pg_smtp_break(s);
        return err;
    }
    const pg_tls_info *ti = &s->tls_info;
    pg_smtp_trace(s, PIGEON_TRANSCRIPT_INFO, "TLS established: %s %s; certificate %s (%s)",
                  ti->version, ti->cipher, ti->subject,
                  s->o.insecure ? "NOT VERIFIED" : "verified");
    return PIGEON_OK;
}

static pigeon_err implicit_tls(pigeon_smtp *s)
{
    pg_smtp_set_state(s, PG_ST_TLS_HANDSHAKE);
    return tls_handshake(s, s->t.greeting, "tls");
}

/* ---- greeting ---- */

static pigeon_err read_greeting(pigeon_smtp *s)
{
    pg_smtp_set_state(s, PG_ST_GREETING);
    int64_t deadline = pg_smtp_deadline(s, s->t.greeting);
    if (!pg_conn_is_tls(s->conn)) {
        /* A TLS record where a greeting belongs: the port speaks implicit TLS. */
        int is_tls = 0;
        pigeon_err err = pg_conn_detect_tls_record(s->conn, deadline, &is_tls);
        if (err == PIGEON_OK && is_tls) {
            pg_smtp_fail(s, PIGEON_FAIL_TLS, PIGEON_ERR_TLS, "greeting", "%s",
                         pg_conn_error(s->conn));
            s->res->hint = pg_hint_for_situation(PG_HINT_TLS_RECORD_IN_PLAIN, s->o.port);
            pg_smtp_break(s);
            return PIGEON_ERR_TLS;
        }
        /* Other errors (timeout, EOF) are met again, and reported, by the read below,
         * which has the same deadline. */
    }
    pigeon_err err = read_reply_by(s, deadline, "greeting");
    if (err == PIGEON_ERR_TIMEOUT && s->o.tls != PIGEON_TLS_IMPLICIT)
        s->res->hint = pg_hint_for_situation(PG_HINT_GREETING_TIMEOUT_465, s->o.port);
    if (err != PIGEON_OK)
        return err;
    return on_greeting(s);
}

/* RFC 5321 4.3.2: 220 ready, 554 no service (421 too busy, in practice). */
static pigeon_err on_greeting(pigeon_smtp *s)
{
    const pg_reply *r = &s->reply;
    size_t n = r->text_len < sizeof s->greeting - 1 ? r->text_len : sizeof s->greeting - 1;
    memcpy(s->greeting, r->text, n);
    s->greeting[n] = '\0';
    if (r->code == 220)
        return PIGEON_OK;
    if (r->code >= 400)
        pg_smtp_fail_reply(s, PIGEON_FAIL_NONE, "greeting", r, "the server refused the session");
    else
        pg_smtp_fail(s, PIGEON_FAIL_PROTOCOL, PIGEON_ERR_PROTOCOL, "greeting",
                     "unexpected greeting code %d", r->code);
    pg_smtp_break(s);
    return pg_smtp_err_of(s->res->fail_class);
}

/* ---- EHLO / HELO ---- */

static pigeon_err say_hello(pigeon_smtp *s, pg_smtp_state st)
{
    pg_smtp_set_state(s, st);
    pg_smtp_cmd(s, NULL, "%s %s", st == PG_ST_HELO ? "HELO" : "EHLO", s->o.helo);
    pigeon_err err = pg_smtp_flush(s, s->t.ehlo, "ehlo");
    if (err == PIGEON_OK)
        err = pg_smtp_read_reply(s, s->t.ehlo, "ehlo");
    if (err != PIGEON_OK)
        return err;
    return st == PG_ST_HELO ? on_helo(s) : on_ehlo(s, st);
}

static pigeon_err on_ehlo(pigeon_smtp *s, pg_smtp_state st)
{
    const pg_reply *r = &s->reply;
    if (r->code == 250) {
        parse_caps(&s->caps, r);
        return PIGEON_OK;
    }
    /* RFC 5321 4.1.4: a server that does not know EHLO answers 500/502; fall back to HELO,
     * unless STARTTLS is required (no EHLO, no STARTTLS) or this is the EHLO over TLS. */
    if (r->code >= 500 && r->code <= 504 && st == PG_ST_EHLO && s->o.tls != PIGEON_TLS_STARTTLS)
        return say_hello(s, PG_ST_HELO);
    if (r->code >= 500 && st == PG_ST_EHLO && s->o.tls == PIGEON_TLS_STARTTLS) {
        pg_smtp_fail_reply(s, PIGEON_FAIL_TLS, "ehlo", r,
                           "the server refused EHLO, so STARTTLS (required) is impossible");
        s->res->hint = pg_hint_for_situation(PG_HINT_NO_STARTTLS, s->o.port);
    } else {
        pg_smtp_fail_reply(s, PIGEON_FAIL_NONE, "ehlo", r, "the server refused EHLO");
    }
    pg_smtp_break(s);
    return pg_smtp_err_of(s->res->fail_class);
}

static pigeon_err on_helo(pigeon_smtp *s)
{
    if (s->reply.code == 250) {
        memset(&s->caps, 0, sizeof s->caps);
        return PIGEON_OK;
    }
    pg_smtp_fail_reply(s, PIGEON_FAIL_NONE, "ehlo", &s->reply, "the server refused HELO");
    pg_smtp_break(s);
    return pg_smtp_err_of(s->res->fail_class);
}

static void parse_caps(pigeon_smtp_caps *c, const pg_reply *r)
{
    size_t pos = 0, len = 0;
    const char *line = NULL;
    memset(c, 0, sizeof *c);
    c->esmtp = 1;
    if (!pg_reply_next_line(r, &pos, &line, &len))
        return;
    size_t name = 0;
    while (name < len && line[name] != ' ')
        name++;
    snprintf(c->server_name, sizeof c->server_name, "%.*s", (int)name, line);
    while (pg_reply_next_line(r, &pos, &line, &len))
        parse_cap_line(c, line, len);
}

/* True if line[0..len) is the keyword kw, alone or followed by a space or '='. */
static int keyword(const char *line, size_t len, const char *kw, size_t *rest)
{
    size_t n = strlen(kw);
    if (len < n || strncasecmp(line, kw, n) != 0)
        return 0;
    if (len > n && line[n] != ' ' && line[n] != '=')
        return 0;
    *rest = len > n ? n + 1 : n;
    return 1;
}

/* RFC 5321 4.1.1.1: each line after the first is "keyword [params]". */
static void parse_cap_line(pigeon_smtp_caps *c, const char *line, size_t len)
{
    size_t rest = 0;
    if (keyword(line, len, "STARTTLS", &rest))
        c->starttls = 1;
    else if (keyword(line, len, "PIPELINING", &rest))
        c->pipelining = 1;
    else if (keyword(line, len, "8BITMIME", &rest))
        c->eightbitmime = 1;
    else if (keyword(line, len, "SMTPUTF8", &rest))
        c->smtputf8 = 1;
    else if (keyword(line, len, "ENHANCEDSTATUSCODES", &rest))
        c->enhanced_codes = 1;
    else if (keyword(line, len, "DSN", &rest))
        c->dsn = 1;
    else if (keyword(line, len, "CHUNKING", &rest))
        c->chunking = 1;
    else if (keyword(line, len, "SIZE", &rest)) {
        /* RFC 1870 4: the optional number is the maximum size; 0 means no limit. */
        c->size_offered = 1;
        uint64_t v = 0;
        for (size_t i = rest; i < len && line[i] >= '0' && line[i] <= '9'; i++)
            v = v < UINT64_MAX / 10 ? v * 10 + (uint64_t)(line[i] - '0') : UINT64_MAX;
        c->size_max = v;
    } else if (keyword(line, len, "AUTH", &rest)) {
        /* "AUTH=LOGIN PLAIN" is the pre-RFC 4954 form some servers still send too. */
        parse_auth_mechs(c, line + rest, len - rest);
    }
}

static void parse_auth_mechs(pigeon_smtp_caps *c, const char *p, size_t n)
{
    static const struct {
        const char *name;
        pigeon_auth_mech mech;
    } known[] = {{"PLAIN", PIGEON_AUTH_PLAIN},
                 {"LOGIN", PIGEON_AUTH_LOGIN},
                 {"CRAM-MD5", PIGEON_AUTH_CRAM_MD5},
                 {"XOAUTH2", PIGEON_AUTH_XOAUTH2}};
    if (c->auth[0] == '\0')
        sanitize(c->auth, sizeof c->auth, p, n);
    size_t i = 0;
    while (i < n) {
        while (i < n && p[i] == ' ')
            i++;
        size_t start = i;
        while (i < n && p[i] != ' ')
            i++;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
            if (i - start == strlen(known[k].name) &&
                strncasecmp(p + start, known[k].name, i - start) == 0)
                c->auth_mechs |= 1u << known[k].mech;
        }
    }
}

/* ---- STARTTLS (RFC 3207) ---- */

static pigeon_err starttls(pigeon_smtp *s)
{
    if (!s->caps.starttls) {
        pg_smtp_fail(s, PIGEON_FAIL_TLS, PIGEON_ERR_TLS, "starttls",
                     "the server does not offer STARTTLS, which is required: nothing was sent");
        s->res->hint = pg_hint_for_situation(PG_HINT_NO_STARTTLS, s->o.port);
        pg_smtp_break(s);
        return PIGEON_ERR_TLS;
    }
    pg_smtp_set_state(s, PG_ST_STARTTLS);
    /* RFC 3207 4: STARTTLS is the last command of a group; nothing is pipelined after it. */
    pg_smtp_cmd(s, NULL, "STARTTLS");
    pigeon_err err = pg_smtp_flush(s, s->t.starttls, "starttls");
    if (err == PIGEON_OK)
        err = pg_smtp_read_reply(s, s->t.starttls, "starttls");
    if (err != PIGEON_OK)
        return err;
    if ((err = on_starttls(s)) != PIGEON_OK)
        return err;
    pg_smtp_set_state(s, PG_ST_STARTTLS_HANDSHAKE);
    if ((err = tls_handshake(s, s->t.starttls, "starttls")) != PIGEON_OK)
        return err;
    /* RFC 3207 4.2: forget everything learned before TLS and ask again. */
    s->caps_pre = s->caps;
    s->had_starttls = 1;
    memset(&s->caps, 0, sizeof s->caps);
    if (s->o.stop_after == PIGEON_STOP_TLS)
        return PIGEON_OK;
    return say_hello(s, PG_ST_EHLO_TLS);
}

static pigeon_err on_starttls(pigeon_smtp *s)
{
    const pg_reply *r = &s->reply;
    if (r->code != 220) {
        pg_smtp_fail_reply(s, PIGEON_FAIL_TLS, "starttls", r,
                           "the server refused STARTTLS, which is required");
        s->res->hint = pg_hint_for_situation(PG_HINT_STARTTLS_REFUSED, s->o.port);
        pg_smtp_break(s);
        return PIGEON_ERR_TLS;
    }
    /* RFC 3207 5 / CVE-2011-0411: bytes after the 220 were sent before TLS and could be a
     * man in the middle's injected replies; they must not be read as if they came over TLS. */
    size_t pending = pg_conn_pending(s->conn);
    if (pending > 0) {
        pg_smtp_fail(s, PIGEON_FAIL_PROTOCOL, PIGEON_ERR_PROTOCOL, "starttls",
                     "the server sent %zu bytes after its STARTTLS go-ahead (RFC 3207 5: "
                     "possible response injection); session stopped",
                     pending);
        s->res->hint = pg_hint_for_situation(PG_HINT_STARTTLS_INJECTION, s->o.port);
        pg_smtp_break(s);
        return PIGEON_ERR_PROTOCOL;
    }
    return PIGEON_OK;
}

/* ---- AUTH (RFC 4954) ---- */

static int has_secret(const char *v)
{
    return v != NULL && v[0] != '\0';
}

static pigeon_auth_mech pick_mech(const pigeon_smtp *s)
{
    unsigned offered = s->caps.auth_mechs;
    if (s->o.auth != PIGEON_AUTH_AUTO)
        return (offered & (1u << s->o.auth)) ? s->o.auth : PIGEON_AUTH_NONE;
    if (!has_secret(s->o.password))
        return (offered & (1u << PIGEON_AUTH_XOAUTH2)) ? PIGEON_AUTH_XOAUTH2 : PIGEON_AUTH_NONE;
    /* Strongest first: CRAM-MD5 never sends the password; PLAIN sends it in one message;
     * LOGIN in two. All of them run over TLS only. */
    static const pigeon_auth_mech order[] = {PIGEON_AUTH_CRAM_MD5, PIGEON_AUTH_PLAIN,
                                             PIGEON_AUTH_LOGIN};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (offered & (1u << order[i]))
            return order[i];
    }
    return PIGEON_AUTH_NONE;
}

static pigeon_err authenticate(pigeon_smtp *s)
{
    if (s->o.auth == PIGEON_AUTH_NONE || !has_secret(s->o.user))
        return PIGEON_OK;
    if (!pg_conn_is_tls(s->conn)) { /* unreachable by check_opts; kept as the last guard */
        pg_smtp_fail(s, PIGEON_FAIL_CONFIG, PIGEON_ERR_CONFIG, "auth",
                     "refusing to send credentials without TLS");
        s->res->hint = pg_hint_for_situation(PG_HINT_AUTH_PLAINTEXT, s->o.port);
        pg_smtp_break(s);
        return PIGEON_ERR_CONFIG;
    }
    pigeon_auth_mech mech = pick_mech(s);
    if (mech == PIGEON_AUTH_NONE) {
        int none = s->caps.auth_mechs == 0 && s->caps.auth[0] == '\0';
        pg_smtp_fail(s, PIGEON_FAIL_AUTH, PIGEON_ERR_AUTH, "auth",
                     none ? "the server does not offer AUTH"
                          : "no usable AUTH mechanism (server offers: %s)",
                     s->caps.auth);
        s->res->hint = pg_hint_for_situation(
            none ? PG_HINT_NO_AUTH_OFFERED : PG_HINT_NO_COMMON_MECH, s->o.port);
        pg_smtp_break(s);
        return PIGEON_ERR_AUTH;
    }
    static const pg_sasl_mech to_sasl[] = {[PIGEON_AUTH_PLAIN] = PG_SASL_PLAIN,
                                           [PIGEON_AUTH_LOGIN] = PG_SASL_LOGIN,
                                           [PIGEON_AUTH_CRAM_MD5] = PG_SASL_CRAM_MD5,
                                           [PIGEON_AUTH_XOAUTH2] = PG_SASL_XOAUTH2};
    pg_sasl sasl;
    pg_sasl_init(&sasl, to_sasl[mech], s->o.user,
                 mech == PIGEON_AUTH_XOAUTH2 ? s->o.oauth_token : s->o.password);
    pg_smtp_set_state(s, PG_ST_AUTH);
    pigeon_err err = auth_exchange(s, &sasl);
    if (err == PIGEON_OK) {
        s->auth_used = mech;
        pg_smtp_trace(s, PIGEON_TRANSCRIPT_INFO, "authenticated as %s with %s", s->o.user,
                      pigeon_auth_mech_name(mech));
    }
    return err;
}

/* Sends "AUTH mech [initial-response]"; the response is masked in the transcript. */
static pigeon_err auth_start(pigeon_smtp *s, pg_sasl *sasl)
{
    pg_buf raw, b64;
    int has = 0;
    pg_buf_init(&raw);
    pg_buf_init(&b64);
    pigeon_err err = pg_sasl_initial(sasl, &raw, &has);
    if (err == PIGEON_OK && has)
        err = pg_b64_encode(&b64, raw.data, raw.len);
    if (err == PIGEON_OK) {
        const char *name = pg_sasl_name(sasl->mech);
        char mask[64];
        snprintf(mask, sizeof mask, "AUTH %s [redacted]", name);
        if (has && strlen("AUTH ") + strlen(name) + 1 + b64.len + 2 <= AUTH_LINE_MAX) {
            sasl->sent_initial = 1;
            pg_smtp_cmd(s, mask, "AUTH %s %s", name, b64.data);
        } else {
            pg_smtp_cmd(s, NULL, "AUTH %s", name);
        }
    }
    pg_buf_wipe_cleanup(&raw);
    pg_buf_wipe_cleanup(&b64);
    if (err != PIGEON_OK) {
        pg_smtp_fail(s, PIGEON_FAIL_CONFIG, err, "auth", "cannot build the AUTH response: %s",
                     pigeon_strerror(err));
        pg_smtp_break(s);
        return err;
    }
    return pg_smtp_flush(s, s->t.auth, "auth");
}

static pigeon_err auth_exchange(pigeon_smtp *s, pg_sasl *sasl)
{
    pigeon_err err = auth_start(s, sasl);
    int done = 0;
    while (err == PIGEON_OK && !done) {
        err = pg_smtp_read_reply(s, s->t.auth, "auth");
        if (err == PIGEON_OK)
            err = on_auth(s, sasl, &done);
    }
    return err;
}

/* Cancels the exchange (RFC 4954 4: "*"), reads the 501 and fails. */
static pigeon_err auth_cancel(pigeon_smtp *s, pigeon_fail_class cls, const char *why)
{
    pg_smtp_fail(s, cls, pg_smtp_err_of(cls), "auth", "%s", why);
    pg_smtp_cmd(s, NULL, "*");
    if (pg_smtp_flush(s, s->t.auth, "auth") == PIGEON_OK)
        pg_smtp_read_reply(s, s->t.auth, "auth");
    pg_smtp_break(s);
    return pg_smtp_err_of(cls);
}

/* One reply in the AUTH exchange: 235 done, 334 a challenge, anything else a failure. */
static pigeon_err on_auth(pigeon_smtp *s, pg_sasl *sasl, int *done)
{
    const pg_reply *r = &s->reply;
    if (r->code == 235) {
        *done = 1;
        return PIGEON_OK;
    }
    if (r->code != 334) {
        /* RFC 4954 6: 454 is temporary, 535/534/538 are about the credentials or policy. */
        pg_smtp_fail_reply(s, r->code / 100 == 4 ? PIGEON_FAIL_DEFERRED : PIGEON_FAIL_AUTH, "auth",
                           r, "authentication failed");
        pg_smtp_break(s);
        return pg_smtp_err_of(s->res->fail_class);
    }
    pg_buf challenge, raw, b64;
    pg_buf_init(&challenge);
    pg_buf_init(&raw);
    pg_buf_init(&b64);
    challenge.max = PG_SASL_CHALLENGE_MAX + 4;
    pigeon_err err = pg_b64_decode(&challenge, r->text, r->text_len);
    if (err == PIGEON_ERR_INVALID || err == PIGEON_ERR_TOO_LARGE) {
        err = auth_cancel(s, PIGEON_FAIL_PROTOCOL,
                          err == PIGEON_ERR_TOO_LARGE ? "AUTH challenge too large"
                                                      : "AUTH challenge is not base64");
        goto out;
    }
    err = pg_sasl_step(sasl, (const unsigned char *)challenge.data, challenge.len, &raw);
    if (err == PIGEON_ERR_PROTOCOL) {
        err = auth_cancel(s, PIGEON_FAIL_PROTOCOL,
                          "too many or too large AUTH challenges from the server");
        goto out;
    }
    if (err != PIGEON_OK && err != PIGEON_ERR_AUTH)
        goto out;
    /* XOAUTH2's error challenge (PIGEON_ERR_AUTH) is answered with an empty line. */
    if (pg_b64_encode(&b64, raw.data != NULL ? raw.data : "", raw.len) != PIGEON_OK) {
        err = b64.err;
        goto out;
    }
    pg_smtp_cmd(s, "[redacted]", "%s", b64.data != NULL ? b64.data : "");
    err = pg_smtp_flush(s, s->t.auth, "auth");
out:
    pg_buf_wipe_cleanup(&challenge);
    pg_buf_wipe_cleanup(&raw);
    pg_buf_wipe_cleanup(&b64);
    if (err == PIGEON_ERR_NOMEM) {
        pg_smtp_fail(s, PIGEON_FAIL_DATA, err, "auth", "out of memory");
        pg_smtp_break(s);
    }
    return err;
}

/* ---- public session calls ---- */

pigeon_err pigeon_smtp_connect(pigeon_smtp *s, pigeon_send_result *res)
{
    if (s == NULL)
        return PIGEON_ERR_INVALID;
    int64_t started = pg_now_ms();
    pg_smtp_begin(s, res);
    if (s->state != PG_ST_IDLE) {
        pg_smtp_fail(s, PIGEON_FAIL_CONFIG, PIGEON_ERR_STATE, "connect",
                     "connect may be called once per session");
        pg_smtp_end(s, started);
        return PIGEON_ERR_STATE;
    }
    pigeon_smtp_stop stop = s->o.stop_after;
    pigeon_err err = open_connection(s);
    if (err == PIGEON_OK && stop == PIGEON_STOP_CONNECT) {
        pg_conn_close(s->conn); /* nothing was said: no QUIT to send */
        s->conn = NULL;
        pg_smtp_set_state(s, PG_ST_CLOSED);
        pg_smtp_end(s, started);
        return PIGEON_OK;
    }
    if (err == PIGEON_OK && s->o.tls == PIGEON_TLS_IMPLICIT)
        err = implicit_tls(s);
    if (err == PIGEON_OK && !(stop == PIGEON_STOP_TLS && s->o.tls == PIGEON_TLS_IMPLICIT))
        err = read_greeting(s);
    if (err == PIGEON_OK && !(stop == PIGEON_STOP_TLS && s->o.tls == PIGEON_TLS_IMPLICIT))
        err = say_hello(s, PG_ST_EHLO);
    if (err == PIGEON_OK && s->o.tls == PIGEON_TLS_STARTTLS)
        err = starttls(s);
    if (err == PIGEON_OK && stop == PIGEON_STOP_NONE)
        err = authenticate(s);
    if (err == PIGEON_OK && stop == PIGEON_STOP_TLS && s->o.tls == PIGEON_TLS_IMPLICIT) {
        /* The greeting was never read: close without QUIT. */
        pg_conn_close(s->conn);
        s->conn = NULL;
        pg_smtp_set_state(s, PG_ST_CLOSED);
    } else if (err == PIGEON_OK) {
        pg_smtp_set_state(s, PG_ST_READY);
    } else if (s->res->err != PIGEON_OK)
        err = s->res->err;
    if (err != PIGEON_OK && s->res->status == PIGEON_SEND_NONE)
        s->res->status =
            pigeon_send_result_is_temporary(s->res) ? PIGEON_SEND_DEFERRED : PIGEON_SEND_FAILED;
    pg_smtp_end(s, started);
    return err;
}

pigeon_err pigeon_smtp_reset(pigeon_smtp *s)
{
    if (s == NULL)
        return PIGEON_ERR_INVALID;
    if (s->state != PG_ST_READY)
        return PIGEON_ERR_STATE;
    int64_t started = pg_now_ms();
    pg_smtp_begin(s, NULL);
    pg_smtp_set_state(s, PG_ST_RSET);
    pg_smtp_cmd(s, NULL, "RSET");
    pigeon_err err = pg_smtp_flush(s, s->t.rset, "rset");
    if (err == PIGEON_OK)
        err = pg_smtp_read_reply(s, s->t.rset, "rset");
    if (err == PIGEON_OK && s->reply.code != 250) {
        pg_smtp_fail_reply(s, PIGEON_FAIL_NONE, "rset", &s->reply, "RSET refused");
        err = s->res->err;
    }
    if (s->state == PG_ST_RSET) {
        s->dirty = err != PIGEON_OK;
        pg_smtp_set_state(s, PG_ST_READY);
    }
    pg_smtp_end(s, started);
    return err;
}

pigeon_err pigeon_smtp_quit(pigeon_smtp *s)
{
    if (s == NULL || s->conn == NULL)
        return PIGEON_OK;
    pigeon_err err = PIGEON_OK;
    pg_smtp_begin(s, NULL);
    if (s->state == PG_ST_READY) {
        pg_smtp_set_state(s, PG_ST_QUIT);
        pg_smtp_cmd(s, NULL, "QUIT");
        err = pg_smtp_flush(s, s->t.quit, "quit");
        if (err == PIGEON_OK)
            err = pg_smtp_read_reply(s, s->t.quit, "quit");
    } else if (s->state == PG_ST_QUIT && s->quit_sent) {
        err = pg_smtp_read_reply(s, s->t.quit, "quit"); /* sent with the end of the data */
    }
    pg_conn_close(s->conn);
    s->conn = NULL;
    if (s->state != PG_ST_BROKEN)
        pg_smtp_set_state(s, PG_ST_CLOSED);
    s->deadline = 0;
    return err;
}

int pigeon_smtp_is_ready(const pigeon_smtp *s)
{
    return s != NULL && s->state == PG_ST_READY && s->conn != NULL;
}

const pigeon_smtp_caps *pigeon_smtp_capabilities(const pigeon_smtp *s)
{
    if (s == NULL || (s->caps.esmtp == 0 && s->state < PG_ST_AUTH))
        return NULL;
    return &s->caps;
}

const pigeon_smtp_caps *pigeon_smtp_capabilities_before_tls(const pigeon_smtp *s)
{
    return s != NULL && s->had_starttls ? &s->caps_pre : NULL;
}

const char *pigeon_smtp_greeting(const pigeon_smtp *s)
{
    return s != NULL ? s->greeting : "";
}

int pigeon_smtp_tls_info(const pigeon_smtp *s, pigeon_smtp_tls_details *out)
{
    if (s == NULL || out == NULL || !s->tls_info_valid)
        return -1;
    const pg_tls_info *ti = &s->tls_info;
    memset(out, 0, sizeof *out);
    out->active = s->conn != NULL ? pg_conn_is_tls(s->conn) : 0;
    memcpy(out->version, ti->version, sizeof out->version);
    memcpy(out->cipher, ti->cipher, sizeof out->cipher);
    memcpy(out->subject, ti->subject, sizeof out->subject);
    memcpy(out->issuer, ti->issuer, sizeof out->issuer);
    memcpy(out->sans, ti->sans, sizeof out->sans);
    memcpy(out->not_after, ti->not_after, sizeof out->not_after);
    memcpy(out->fingerprint, ti->fingerprint, sizeof out->fingerprint);
    out->verify_result = ti->verify_result;
    memcpy(out->verify_text, ti->verify_text, sizeof out->verify_text);
    return 0;
}

pigeon_auth_mech pigeon_smtp_auth_used(const pigeon_smtp *s)
{
    return s != NULL ? s->auth_used : PIGEON_AUTH_NONE;
}

const char *pigeon_smtp_peer(const pigeon_smtp *s)
{
    return s != NULL && s->conn != NULL ? pg_conn_peer(s->conn) : "";
}
