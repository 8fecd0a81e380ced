/*
 * smtp_data.c - SMTP mail transactions: MAIL, RCPT, DATA and the message data.
 *
 * RFC 5321 3.3 (mail transactions), 4.1.1.2-4.1.1.5 (MAIL, RCPT, DATA, RSET), 4.5.2
 * (transparency: dot-stuffing, CRLF only, one end-of-data), 4.5.3.1.10 (452 "too many
 * recipients": the rest go in a later transaction); RFC 2920 (PIPELINING: MAIL, every
 * RCPT and DATA in one write, RSET in front of the next MAIL); RFC 1870 (SIZE: refused
 * locally when too large, SIZE= declared); RFC 6152 (BODY=8BITMIME); RFC 6531 (SMTPUTF8);
 * RFC 3461 (DSN: RET, ENVID, NOTIFY).
 *
 * Each recipient gets its own result; a message to 10 recipients of which 1 is refused is
 * delivered to 9 and reports the 1. If DATA is answered with anything but 354, not one byte
 * of the message is sent; the data always ends with exactly one CRLF "." CRLF, whatever it
 * holds (SMTP smuggling, CVE-2023-51764 family), because it goes through pg_dotstuff.
 */
#include "smtp/smtp_data_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/encode.h"

static pigeon_err set_rcpts(pigeon_smtp *s, envelope *env, char **addrs, size_t n);
static int path_ok(const char *a, int allow_empty);
static int has_8bit(const char *a);
static pigeon_err deliver(pigeon_smtp *s, envelope *env, data_source *src);
static pigeon_err transaction(pigeon_smtp *s, envelope *env, data_source *src);
static void build_mail(pigeon_smtp *s, const envelope *env);
static void build_rcpt(pigeon_smtp *s, const char *addr);
static void append_xtext(pg_buf *b, const char *v);
static int on_rset(pigeon_smtp *s);
static int on_mail(pigeon_smtp *s, envelope *env);
static void on_rcpt(pigeon_smtp *s, envelope *env, size_t i);
static int on_data(pigeon_smtp *s, envelope *env);
static void on_data_end(pigeon_smtp *s, envelope *env);
static pigeon_err source_read(data_source *src, void *buf, size_t cap, size_t *n);
static void set_rcpt_reply(pigeon_rcpt_result *rr, pigeon_rcpt_status st, const pg_reply *r);
static int is_too_many(const pg_reply *r);

pigeon_err pg_smtp_check_ready(pigeon_smtp *s)
{
    if (s->state == PG_ST_READY && s->conn != NULL)
        return PIGEON_OK;
    pg_smtp_fail(s, PIGEON_FAIL_CONFIG, PIGEON_ERR_STATE, "mail",
                 s->state == PG_ST_BROKEN ? "the connection failed earlier; connect again"
                 : s->quit_sent           ? "QUIT was sent with the last message (quit_after_data)"
                                          : "not connected");
    s->res->status = PIGEON_SEND_FAILED;
    return PIGEON_ERR_STATE;
}

/* An SMTP path address as we accept it from callers: no space, control character or angle
 * bracket (they would change the command), at most 254 octets (RFC 5321 4.5.3.1.3). */
static int path_ok(const char *a, int allow_empty)
{
    size_t n = strlen(a);
    if (n == 0)
        return allow_empty;
    if (n > 254 || strchr(a, '@') == NULL)
        return 0;
    for (const unsigned char *p = (const unsigned char *)a; *p != '\0'; p++) {
        if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>')
            return 0;
    }
    return 1;
}

static int has_8bit(const char *a)
{
    for (; *a != '\0'; a++) {
        if ((unsigned char)*a >= 0x80)
            return 1;
    }
    return 0;
}

/* Takes ownership of the array addrs and its n strings (freed on failure too). */
static pigeon_err set_rcpts(pigeon_smtp *s, envelope *env, char **addrs, size_t n)
{
    pigeon_send_result *res = s->res;
    res->rcpts = calloc(n, sizeof *res->rcpts);
    env->st = calloc(n, sizeof *env->st);
    if (res->rcpts == NULL || env->st == NULL) {
        for (size_t i = 0; i < n; i++)
            free(addrs[i]);
        free(addrs);
        return PIGEON_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        res->rcpts[i].address = addrs[i];
        env->smtputf8 |= has_8bit(addrs[i]);
    }
    free(addrs);
    res->rcpt_count = n;
    env->n = n;
    return PIGEON_OK;
}

void pg_smtp_envelope_cleanup(envelope *env)
{
    free(env->from);
    free(env->st);
    for (size_t i = 0; env->senders != NULL && i < env->n; i++)
        free(env->senders[i]);
    free(env->senders);
    env->senders = NULL;
}

/* VERP: asks the caller's rcpt_sender for each recipient's envelope sender (checked as a
 * caller's path is). The null reverse-path stays as it is. Failures are recorded. */
static pigeon_err verp_senders(pigeon_smtp *s, envelope *env)
{
    if (s->o.rcpt_sender == NULL || env->from[0] == '\0')
        return PIGEON_OK;
    if ((env->senders = calloc(env->n, sizeof *env->senders)) == NULL)
        return PIGEON_ERR_NOMEM;
    for (size_t i = 0; i < env->n; i++) {
        int rc = s->o.rcpt_sender(s->o.rcpt_sender_ctx, env->from, s->res->rcpts[i].address,
                                  &env->senders[i]);
        pigeon_err err = rc == 0 ? PIGEON_OK : rc < 0 ? PIGEON_ERR_INVALID : (pigeon_err)rc;
        if (err == PIGEON_OK && (env->senders[i] == NULL || !path_ok(env->senders[i], 0)))
            err = PIGEON_ERR_ADDRESS;
        if (err != PIGEON_OK) {
            pg_smtp_fail(s, PIGEON_FAIL_CONFIG, err, "mail",
                         "no VERP envelope sender for %s: %s; nothing was sent",
                         s->res->rcpts[i].address, pigeon_strerror(err));
            return err;
        }
        env->smtputf8 |= has_8bit(env->senders[i]);
    }
    return PIGEON_OK;
}

/* ---- data sources ---- */

pigeon_err pg_smtp_source_open(data_source *src)
{
    if (src->replaying) {
        src->replay_pos = 0;
        return PIGEON_OK;
    }
    if (src->msg == NULL) {
        if (src->used)
            return PIGEON_ERR_STATE;
        src->used = 1;
        return PIGEON_OK;
    }
    pigeon_message_stream_free(src->stream);
    src->stream = NULL;
    return pigeon_message_stream_open(src->msg, &src->wopts, &src->stream);
}

static pigeon_err source_read(data_source *src, void *buf, size_t cap, size_t *n)
{
    if (src->msg != NULL)
        return pigeon_message_stream_read(src->stream, buf, cap, n);
    if (src->replaying) {
        size_t left = src->replay.len - src->replay_pos;
        *n = left < cap ? left : cap;
        if (*n > 0)
            memcpy(buf, src->replay.data + src->replay_pos, *n);
        src->replay_pos += *n;
        return PIGEON_OK;
    }
    *n = 0;
    return src->read(src->read_ctx, buf, cap, n) != 0 ? PIGEON_ERR_IO : PIGEON_OK;
}

void pg_smtp_source_close(data_source *src)
{
    pigeon_message_stream_free(src->stream);
    src->stream = NULL;
}

/* ---- commands ---- */

/* RFC 3461 4: xtext encodes '+', '=' and characters outside 33..126 as "+XX". */
static void append_xtext(pg_buf *b, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if (*p < 33 || *p > 126 || *p == '+' || *p == '=') {
            char e[3] = {'+', hex[*p >> 4], hex[*p & 15]};
            pg_buf_append(b, e, 3);
        } else {
            pg_buf_putc(b, (char)*p);
        }
    }
}

static void build_mail(pigeon_smtp *s, const envelope *env)
{
    const pigeon_smtp_caps *c = &s->caps;
    pg_buf params;
    pg_buf_init(&params);
    if (c->size_offered && env->size >= 0)
        pg_buf_printf(&params, " SIZE=%lld", (long long)env->size);
    if (env->is_8bit && c->eightbitmime)
        pg_buf_puts(&params, " BODY=8BITMIME");
    if (env->smtputf8 && c->smtputf8)
        pg_buf_puts(&params, " SMTPUTF8");
    if (c->dsn && s->o.dsn_ret != NULL)
        pg_buf_printf(&params, " RET=%s", s->o.dsn_ret);
    if (c->dsn && s->o.dsn_envid != NULL) {
        pg_buf_puts(&params, " ENVID=");
        append_xtext(&params, s->o.dsn_envid);
    }
    pg_smtp_cmd(s, NULL, "MAIL FROM:<%s>%s", env->from, params.data != NULL ? params.data : "");
    if (params.err != PIGEON_OK)
        s->out.err = params.err;
    pg_buf_cleanup(&params);
}

static void build_rcpt(pigeon_smtp *s, const char *addr)
{
    if (s->caps.dsn && s->o.dsn_notify != NULL)
        pg_smtp_cmd(s, NULL, "RCPT TO:<%s> NOTIFY=%s", addr, s->o.dsn_notify);
    else
        pg_smtp_cmd(s, NULL, "RCPT TO:<%s>", addr);
}

/* ---- reply handlers ---- */

static void set_rcpt_reply(pigeon_rcpt_result *rr, pigeon_rcpt_status st, const pg_reply *r)
{
    rr->status = st;
    rr->code = r->code;
    memcpy(rr->enhanced, r->enhanced, sizeof rr->enhanced);
    free(rr->text);
    rr->text = strdup(r->text);
}

/* RFC 5321 4.5.3.1.10: "452 too many recipients" (RFC 3463 4.5.3) means: send the rest in
 * a later transaction. A 452 about storage (4.3.1) is an ordinary temporary failure. */
static int is_too_many(const pg_reply *r)
{
    if (r->code != 452)
        return 0;
    if (strcmp(r->enhanced, "4.5.3") == 0)
        return 1;
    for (const char *p = r->text; *p != '\0'; p++) {
        if (strncasecmp(p, "too many recipients", 19) == 0)
            return 1;
    }
    return 0;
}

/* Returns 1 if RSET succeeded. */
static int on_rset(pigeon_smtp *s)
{
    if (s->reply.code == 250)
        return 1;
    pg_smtp_fail_reply(s, PIGEON_FAIL_NONE, "rset", &s->reply, "RSET was refused");
    return 0;
}

/* Returns 1 if MAIL was accepted; else every recipient of the transaction takes its reply. */
static int on_mail(pigeon_smtp *s, envelope *env)
{
    const pg_reply *r = &s->reply;
    if (r->code == 250)
        return 1;
    /* RFC 1870 6.1: 552 at MAIL means the declared SIZE is too large. */
    pigeon_fail_class cls = r->code == 552 || strncmp(r->enhanced, "5.3.4", 5) == 0
                                ? PIGEON_FAIL_TOO_LARGE
                                : PIGEON_FAIL_NONE;
    pg_smtp_fail_reply(s, cls, "mail", r, "the sender (MAIL FROM) was refused");
    pigeon_rcpt_status st = r->code / 100 == 4 ? PIGEON_RCPT_DEFERRED : PIGEON_RCPT_REJECTED;
    for (size_t i = 0; i < env->n; i++) {
        if (env->st[i].in_txn && !env->st[i].final) {
            set_rcpt_reply(&s->res->rcpts[i], st, r);
            env->st[i].final = 1;
        }
    }
    return 0;
}

static void on_rcpt(pigeon_smtp *s, envelope *env, size_t i)
{
    const pg_reply *r = &s->reply;
    pigeon_rcpt_result *rr = &s->res->rcpts[i];
    rcpt_state *st = &env->st[i];
    if (st->final)
        return; /* MAIL failed: the 503 for this RCPT is a consequence */
    if (r->code == 250 || r->code == 251) {
        set_rcpt_reply(rr, PIGEON_RCPT_PENDING, r);
        st->ok = 1;
        return;
    }
    if (is_too_many(r)) {
        set_rcpt_reply(rr, PIGEON_RCPT_DEFERRED, r);
        st->overflow = 1;
        return;
    }
    set_rcpt_reply(rr, r->code / 100 == 4 ? PIGEON_RCPT_DEFERRED : PIGEON_RCPT_REJECTED, r);
    st->final = 1;
}

/* Returns 1 if DATA got its 354; otherwise the accepted recipients take the reply. */
static int on_data(pigeon_smtp *s, envelope *env)
{
    const pg_reply *r = &s->reply;
    if (r->code == 354)
        return 1;
    pigeon_rcpt_status st = r->code / 100 == 4 ? PIGEON_RCPT_DEFERRED : PIGEON_RCPT_REJECTED;
    int any = 0;
    for (size_t i = 0; i < env->n; i++) {
        if (env->st[i].in_txn && env->st[i].ok && !env->st[i].final) {
            set_rcpt_reply(&s->res->rcpts[i], st, r);
            env->st[i].final = 1;
            any = 1;
        }
    }
    /* With no recipient accepted, DATA's 503/554 is only a consequence (RFC 2920 3.1). */
    if (any)
        pg_smtp_fail_reply(
            s, r->code / 100 == 2 || r->code / 100 == 3 ? PIGEON_FAIL_PROTOCOL : PIGEON_FAIL_NONE,
            "data", r, "DATA was refused");
    return 0;
}

/* The reply to the final dot decides every recipient accepted at RCPT. */
static void on_data_end(pigeon_smtp *s, envelope *env)
{
    const pg_reply *r = &s->reply;
    int ok = r->code == 250;
    pigeon_fail_class cls = r->code == 552 || strncmp(r->enhanced, "5.3.4", 5) == 0
                                ? PIGEON_FAIL_TOO_LARGE
                                : PIGEON_FAIL_NONE;
    for (size_t i = 0; i < env->n; i++) {
        if (!env->st[i].in_txn || !env->st[i].ok || env->st[i].final)
            continue;
        env->st[i].final = 1;
        if (ok) {
            s->res->rcpts[i].status = PIGEON_RCPT_ACCEPTED;
        } else {
            set_rcpt_reply(&s->res->rcpts[i],
                           r->code / 100 == 4 ? PIGEON_RCPT_DEFERRED : PIGEON_RCPT_REJECTED, r);
        }
    }
    if (ok) {
        /* The final reply is worth keeping (it often holds the queue id). */
        pigeon_send_result *res = s->res;
        if (res->fail_class == PIGEON_FAIL_NONE) {
            res->code = r->code;
            memcpy(res->enhanced, r->enhanced, sizeof res->enhanced);
            free(res->reply_text);
            res->reply_text = strdup(r->text);
        }
    } else {
        pg_smtp_fail_reply(s, r->code / 100 == 3 ? PIGEON_FAIL_PROTOCOL : cls, "dot", r,
                           "the message was refused after its data");
    }
}

/* ---- the message data ---- */

/* Writes the end of the data, with the next group (RFC 2920 3.1: message content may be
 * the first "command" of a group) when there is one. */
static pigeon_err write_tail(pigeon_smtp *s, const next_group *next)
{
    if (next != NULL) {
        next->append(s, next->ctx);
        pg_buf_append(&s->data, s->out.data, s->out.len);
        pg_buf_reset(&s->out);
    }
    pigeon_err err = s->data.err;
    if (err == PIGEON_OK)
        err =
            pg_conn_write(s->conn, s->data.data, s->data.len, pg_smtp_deadline(s, s->t.data_block));
    pg_buf_reset(&s->data);
    if (err != PIGEON_OK) {
        pg_smtp_fail(s, PIGEON_FAIL_NETWORK, err, "data", "%s", pg_conn_error(s->conn));
        pg_smtp_break(s);
    }
    return err;
}

/* Streams the message through dot-stuffing in PG_SMTP_CHUNK writes, then ends the data. */
static pigeon_err send_body(pigeon_smtp *s, data_source *src, const next_group *next)
{
    pg_dotstuff ds;
    uint64_t octets = 0;
    pg_dotstuff_init(&ds);
    pg_buf_reset(&s->data);
    /* After the 354 nothing may wait: a reply to the end of data before the data. */
    pigeon_err quiet = pg_smtp_quiet(s, "data");
    if (quiet != PIGEON_OK)
        return quiet;
    pg_smtp_set_state(s, PG_ST_BODY);
    for (;;) {
        size_t n = 0;
        pigeon_err err = source_read(src, s->chunk, PG_SMTP_CHUNK, &n);
        if (err != PIGEON_OK) {
            /* Closing without the final dot makes the server drop the transaction
             * (RFC 5321 3.8): a truncated message is never delivered. */
            pg_smtp_fail(s, PIGEON_FAIL_DATA, err, "data",
                         "cannot read the message: %s; connection dropped so that a partial "
                         "message is not delivered",
                         src->msg != NULL ? pigeon_message_error(src->msg) : pigeon_strerror(err));
            pg_smtp_break(s);
            return err;
        }
        if (n == 0)
            break;
        octets += n;
        pg_dotstuff_update(&ds, &s->data, s->chunk, n);
        if (s->data.err == PIGEON_OK && s->data.len < PG_SMTP_CHUNK)
            continue;
        if (s->data.err != PIGEON_OK) {
            pg_smtp_fail(s, PIGEON_FAIL_DATA, s->data.err, "data", "out of memory");
            pg_smtp_break(s);
            return s->data.err;
        }
        err =
            pg_conn_write(s->conn, s->data.data, s->data.len, pg_smtp_deadline(s, s->t.data_block));
        if (err != PIGEON_OK) {
            pg_smtp_fail(s, PIGEON_FAIL_NETWORK, err, "data", "%s", pg_conn_error(s->conn));
            pg_smtp_break(s);
            return err;
        }
        pg_buf_reset(&s->data);
    }
    pg_dotstuff_final(&ds, &s->data);
    pg_smtp_trace(s, PIGEON_TRANSCRIPT_CLIENT, "[%llu octets of message data]",
                  (unsigned long long)octets);
    pg_smtp_trace(s, PIGEON_TRANSCRIPT_CLIENT, ".");
    pg_smtp_set_state(s, PG_ST_DATA_END);
    return write_tail(s, next);
}

/* ---- one transaction ---- */

/* Starts a transaction: RSET between messages (RFC 5321 4.1.1.5) puts the server in a
 * known state whatever the last transaction left; with PIPELINING it costs no round trip. */
static void txn_start(pigeon_smtp *s, txn *t)
{
    memset(t, 0, sizeof *t);
    t->rset = s->messages > 0 || s->dirty;
    t->mail_ok = 1;
    s->messages++;
    s->dirty = 1;
    s->res->transactions++;
}

/* RFC 2920 3.1: [RSET] MAIL, every RCPT and DATA as one group in s->out. */
void pg_smtp_txn_group(pigeon_smtp *s, envelope *env, txn *t)
{
    txn_start(s, t);
    if (t->rset) {
        pg_smtp_set_state(s, PG_ST_RSET);
        pg_smtp_cmd(s, NULL, "RSET");
    }
    pg_smtp_set_state(s, PG_ST_MAIL);
    build_mail(s, env);
    pg_smtp_set_state(s, PG_ST_RCPT);
    for (size_t i = 0; i < env->n; i++) {
        if (env->st[i].in_txn)
            build_rcpt(s, s->res->rcpts[i].address);
    }
    pg_smtp_set_state(s, PG_ST_DATA);
    pg_smtp_cmd(s, NULL, "DATA");
}

/* Reads the group's replies, in command order. */
pigeon_err pg_smtp_txn_group_replies(pigeon_smtp *s, envelope *env, txn *t)
{
    pigeon_err err;
    if (t->rset) {
        if ((err = pg_smtp_read_reply(s, s->t.rset, "rset")) != PIGEON_OK)
            return err;
        t->mail_ok = on_rset(s);
    }
    if ((err = pg_smtp_read_reply(s, s->t.mail, "mail")) != PIGEON_OK)
        return err;
    t->mail_ok = on_mail(s, env) && t->mail_ok;
    for (size_t i = 0; i < env->n; i++) {
        if (!env->st[i].in_txn)
            continue;
        if ((err = pg_smtp_read_reply(s, s->t.rcpt, "rcpt")) != PIGEON_OK)
            return err;
        on_rcpt(s, env, i);
        t->accepted += t->mail_ok && env->st[i].ok;
    }
    if ((err = pg_smtp_read_reply(s, s->t.data, "data")) != PIGEON_OK)
        return err;
    t->reached_data = 1;
    return PIGEON_OK;
}

/* Sends a command alone and reads its reply (no PIPELINING). */
static pigeon_err step(pigeon_smtp *s, int timeout_ms, const char *stage)
{
    pigeon_err err = pg_smtp_flush(s, timeout_ms, stage);
    return err == PIGEON_OK ? pg_smtp_read_reply(s, timeout_ms, stage) : err;
}

/* Without PIPELINING each command waits for its reply, and nothing more is sent once MAIL
 * fails or a 452 says there are too many recipients. */
static pigeon_err txn_stepwise(pigeon_smtp *s, envelope *env, txn *t)
{
    pigeon_err err;
    txn_start(s, t);
    if (t->rset) {
        pg_smtp_set_state(s, PG_ST_RSET);
        pg_smtp_cmd(s, NULL, "RSET");
        if ((err = step(s, s->t.rset, "rset")) != PIGEON_OK || !on_rset(s))
            return err;
    }
    pg_smtp_set_state(s, PG_ST_MAIL);
    build_mail(s, env);
    if ((err = step(s, s->t.mail, "mail")) != PIGEON_OK || !on_mail(s, env))
        return err;
    pg_smtp_set_state(s, PG_ST_RCPT);
    int overflow = 0;
    for (size_t i = 0; i < env->n; i++) {
        if (!env->st[i].in_txn)
            continue;
        if (overflow) {
            env->st[i].overflow = 1; /* not sent: it goes in the next transaction */
            continue;
        }
        build_rcpt(s, s->res->rcpts[i].address);
        if ((err = step(s, s->t.rcpt, "rcpt")) != PIGEON_OK)
            return err;
        on_rcpt(s, env, i);
        t->accepted += env->st[i].ok;
        overflow |= env->st[i].overflow;
    }
    if (t->accepted == 0)
        return PIGEON_OK; /* RFC 5321 3.3: no DATA without a recipient; RSET comes next */
    pg_smtp_set_state(s, PG_ST_DATA);
    pg_smtp_cmd(s, NULL, "DATA");
    if ((err = step(s, s->t.data, "data")) != PIGEON_OK)
        return err;
    t->reached_data = 1;
    return PIGEON_OK;
}

/*
 * After DATA's reply: the body and the final dot when it is 354 and a recipient was
 * accepted; only the dot when DATA was accepted although no recipient was (RFC 2920 3.1:
 * nothing is delivered, the reply is ignored); nothing otherwise. next (may be NULL) is
 * written with the end of data; t->sent_next tells whether that happened.
 */
pigeon_err pg_smtp_txn_data(pigeon_smtp *s, envelope *env, data_source *src, txn *t,
                            const next_group *next)
{
    pigeon_err err;
    if (!t->reached_data || !on_data(s, env))
        return PIGEON_OK;
    t->sent_next = next != NULL;
    if (t->accepted == 0 || !t->mail_ok) {
        pg_smtp_cmd(s, NULL, ".");
        if (next != NULL)
            next->append(s, next->ctx);
        if ((err = pg_smtp_flush(s, s->t.data_block, "data")) == PIGEON_OK)
            err = pg_smtp_read_reply(s, s->t.data_end, "dot");
        return err;
    }
    if ((err = send_body(s, src, next)) != PIGEON_OK)
        return err;
    if ((err = pg_smtp_read_reply(s, s->t.data_end, "dot")) != PIGEON_OK)
        return err;
    on_data_end(s, env);
    s->dirty = 0;
    return PIGEON_OK;
}

/* The QUIT of a one-message session, written with the end of the data (quit_after_data). */
static void append_quit(pigeon_smtp *s, void *ctx)
{
    (void)ctx;
    pg_smtp_cmd(s, NULL, "QUIT");
    s->quit_sent = 1;
}

/* Whether this transaction is the session's last: the caller sends one message, and no
 * recipient was put off by a 452 (those would form another transaction of a composed
 * message; a raw stream is never sent twice). */
static int last_transaction(const pigeon_smtp *s, const envelope *env, const data_source *src)
{
    if (!s->o.quit_after_data)
        return 0;
    for (size_t i = 0; src->msg != NULL && i < env->n; i++) {
        if (env->st[i].in_txn && env->st[i].overflow)
            return 0;
    }
    return 1;
}

/* Runs one transaction for the recipients marked in_txn. Returns a pigeon_err only for
 * session failures (the connection is then broken); refusals are in the results. */
static pigeon_err transaction(pigeon_smtp *s, envelope *env, data_source *src)
{
    txn t;
    pigeon_err err;
    const next_group quit = {append_quit, NULL};
    const next_group *next = NULL;
    if (s->caps.pipelining && !s->o.no_pipelining) {
        pg_smtp_txn_group(s, env, &t);
        err = pg_smtp_flush(s, s->t.mail, "mail");
        if (err == PIGEON_OK)
            err = pg_smtp_txn_group_replies(s, env, &t);
        /* RFC 2920 3.1: the message content may lead a group, QUIT end it. */
        if (err == PIGEON_OK && last_transaction(s, env, src))
            next = &quit;
    } else {
        err = txn_stepwise(s, env, &t);
    }
    return err == PIGEON_OK ? pg_smtp_txn_data(s, env, src, &t, next) : err;
}

/* Opens the source for a transaction and checks the size against SIZE. Returns 0 to go
 * on, 1 when too large (recorded), -1 with *err on a read error. */
static int open_checked(pigeon_smtp *s, envelope *env, data_source *src, pigeon_err *err)
{
    if ((*err = pg_smtp_source_open(src)) != PIGEON_OK)
        return -1;
    if (src->stream != NULL) {
        env->size = pigeon_message_stream_size(src->stream);
        env->is_8bit = pigeon_message_stream_is_8bit(src->stream);
        s->res->size = env->size;
    }
    const pigeon_smtp_caps *c = &s->caps;
    if (c->size_offered && c->size_max > 0 && env->size >= 0 && (uint64_t)env->size > c->size_max) {
        pg_smtp_fail(s, PIGEON_FAIL_TOO_LARGE, PIGEON_ERR_TOO_LARGE, "mail",
                     "the message (%lld octets) is larger than the server accepts (SIZE "
                     "%llu); nothing was sent",
                     (long long)env->size, (unsigned long long)c->size_max);
        s->res->hint = pg_hint_for_situation(PG_HINT_TOO_LARGE_LOCAL, 0);
        return 1;
    }
    return 0;
}

static pigeon_err verp_deliver(pigeon_smtp *s, envelope *env, data_source *src);

/* Runs transactions until no recipient is left over by a 452 "too many recipients". */
static pigeon_err deliver(pigeon_smtp *s, envelope *env, data_source *src)
{
    pigeon_err err = PIGEON_OK;
    if (env->senders != NULL)
        return verp_deliver(s, env, src);
    for (size_t i = 0; i < env->n; i++)
        env->st[i].in_txn = 1;
    for (;;) {
        if (open_checked(s, env, src, &err) != 0)
            break;
        err = transaction(s, env, src);
        pg_smtp_source_close(src);
        if (err != PIGEON_OK || s->state == PG_ST_BROKEN)
            break;
        if (s->quit_sent) { /* its reply is pigeon_smtp_quit's to read */
            pg_smtp_set_state(s, PG_ST_QUIT);
            break;
        }
        pg_smtp_set_state(s, PG_ST_READY);
        /* The recipients left over by a 452 form the next transaction, if this one made
         * progress (else they stay deferred: the server takes none now). */
        size_t progress = 0, left = 0;
        for (size_t i = 0; i < env->n; i++) {
            progress += env->st[i].in_txn && env->st[i].ok;
            left += env->st[i].in_txn && env->st[i].overflow;
        }
        if (left == 0 || progress == 0 || src->msg == NULL)
            break;
        for (size_t i = 0; i < env->n; i++) {
            env->st[i].in_txn = env->st[i].overflow;
            env->st[i].overflow = 0;
            env->st[i].ok = 0;
        }
    }
    pg_smtp_source_close(src);
    if (err != PIGEON_OK && s->res->fail_class == PIGEON_FAIL_NONE)
        pg_smtp_fail(s, PIGEON_FAIL_DATA, err, "data", "cannot read the message: %s",
                     src->msg != NULL ? pigeon_message_error(src->msg) : pigeon_strerror(err));
    return err;
}

/* ---- VERP: one transaction per recipient ---- */

/* A transaction without PIPELINING from the given reverse-path. */
static pigeon_err txn_stepwise_from(pigeon_smtp *s, envelope *env, char *from, txn *t)
{
    char *plain = env->from;
    env->from = from;
    pigeon_err err = txn_stepwise(s, env, t);
    env->from = plain;
    return err;
}

/* A raw message read once into memory, so that each recipient's transaction sends it. */
static pigeon_err source_slurp(data_source *src)
{
    pg_buf_init(&src->replay);
    for (;;) {
        size_t n = 0;
        pigeon_err err = pg_buf_reserve(&src->replay, PG_SMTP_CHUNK);
        if (err != PIGEON_OK)
            return err;
        if (src->read(src->read_ctx, src->replay.data + src->replay.len, PG_SMTP_CHUNK, &n) != 0)
            return PIGEON_ERR_IO;
        if (n == 0)
            break;
        src->replay.len += n;
    }
    src->used = 1;
    src->replaying = 1;
    return PIGEON_OK;
}

/* The group of recipient j's transaction: [RSET] MAIL FROM:<its sender>, its RCPT, DATA. */
typedef struct verp_next {
    envelope *env; /* the envelope */
    size_t j;      /* the recipient whose group it is */
    txn *t;        /* its transaction */
} verp_next;

static void verp_group(pigeon_smtp *s, void *ctx)
{
    verp_next *vn = ctx;
    envelope *env = vn->env;
    char *plain = env->from;
    txn_start(s, vn->t);
    if (vn->t->rset) {
        pg_smtp_set_state(s, PG_ST_RSET);
        pg_smtp_cmd(s, NULL, "RSET");
    }
    pg_smtp_set_state(s, PG_ST_MAIL);
    env->from = env->senders[vn->j];
    build_mail(s, env);
    env->from = plain;
    pg_smtp_set_state(s, PG_ST_RCPT);
    build_rcpt(s, s->res->rcpts[vn->j].address);
    pg_smtp_set_state(s, PG_ST_DATA);
    pg_smtp_cmd(s, NULL, "DATA");
}

/* Makes recipient i the only one of the current transaction. */
static void verp_only(envelope *env, size_t i)
{
    for (size_t k = 0; k < env->n; k++)
        env->st[k].in_txn = k == i;
}

/*
 * Each recipient in its own transaction with its own reverse-path. With PIPELINING the end
 * of one recipient's data carries the next one's group (as batches do across messages), so
 * a recipient costs one round trip; without it, each transaction is stepwise. A 452 "too
 * many recipients" for a lone recipient leaves it deferred.
 */
static pigeon_err verp_deliver(pigeon_smtp *s, envelope *env, data_source *src)
{
    pigeon_err err = PIGEON_OK;
    int piped = s->caps.pipelining && !s->o.no_pipelining;
    int group_out = 0; /* recipient i's group went out with the previous end of data */
    txn t[2];
    if (src->msg == NULL && env->n > 1 && (err = source_slurp(src)) != PIGEON_OK)
        goto done;
    for (size_t i = 0; i < env->n; i++) {
        txn *cur = &t[i & 1];
        if (open_checked(s, env, src, &err) != 0)
            break;
        verp_only(env, i);
        if (!piped) {
            err = txn_stepwise_from(s, env, env->senders[i], cur);
            if (err == PIGEON_OK)
                err = pg_smtp_txn_data(s, env, src, cur, NULL);
        } else {
            if (!group_out) {
                verp_next self = {env, i, cur};
                verp_group(s, &self);
                err = pg_smtp_flush(s, s->t.mail, "mail");
            }
            if (err == PIGEON_OK)
                err = pg_smtp_txn_group_replies(s, env, cur);
            verp_next vn = {env, i + 1, &t[(i + 1) & 1]};
            next_group ng = {verp_group, &vn};
            if (err == PIGEON_OK)
                err = pg_smtp_txn_data(s, env, src, cur, i + 1 < env->n ? &ng : NULL);
            group_out = cur->sent_next;
            if (err == PIGEON_OK && i + 1 < env->n && !group_out) {
                verp_group(s, &vn);
                err = pg_smtp_flush(s, s->t.mail, "mail");
                group_out = 1;
            }
        }
        pg_smtp_source_close(src);
        if (err != PIGEON_OK || s->state == PG_ST_BROKEN)
            break;
        pg_smtp_set_state(s, PG_ST_READY);
    }
done:
    pg_smtp_source_close(src);
    pg_buf_cleanup(&src->replay);
    src->replaying = 0;
    if (err != PIGEON_OK && s->res->fail_class == PIGEON_FAIL_NONE)
        pg_smtp_fail(s, PIGEON_FAIL_DATA, err, "data", "cannot read the message: %s",
                     src->msg != NULL ? pigeon_message_error(src->msg) : pigeon_strerror(err));
    return err;
}

/* Decides every open recipient and the overall status from the per-recipient results and
 * the session failure, if any. */
void pg_smtp_finish(pigeon_smtp *s, envelope *env)
{
    pigeon_send_result *res = s->res;
    pigeon_fail_class sess = res->fail_class;
    size_t accepted = 0, deferred = 0, first_bad = env->n;
    for (size_t i = 0; i < env->n; i++) {
        pigeon_rcpt_result *rr = &res->rcpts[i];
        if (rr->status == PIGEON_RCPT_PENDING ||
            (env->st[i].overflow && rr->status != PIGEON_RCPT_ACCEPTED)) {
            /* Undecided when the session failed: its class decides (a session failure is
             * always recorded when a recipient is left open). */
            rr->status = pigeon_fail_class_is_temporary(sess) || sess == PIGEON_FAIL_NONE
                             ? PIGEON_RCPT_DEFERRED
                             : PIGEON_RCPT_REJECTED;
            if (rr->code == 0 || rr->code / 100 == 2) {
                rr->code = res->code;
                memcpy(rr->enhanced, res->enhanced, sizeof rr->enhanced);
                free(rr->text);
                rr->text = res->reply_text != NULL ? strdup(res->reply_text) : NULL;
            }
        }
        accepted += rr->status == PIGEON_RCPT_ACCEPTED;
        deferred += rr->status == PIGEON_RCPT_DEFERRED;
        if (rr->status != PIGEON_RCPT_ACCEPTED && first_bad == env->n)
            first_bad = i;
    }
    if (accepted == env->n && sess == PIGEON_FAIL_NONE) {
        res->status = PIGEON_SEND_SENT;
        res->err = PIGEON_OK;
        return;
    }
    if (sess == PIGEON_FAIL_NONE && first_bad < env->n) {
        /* Only recipients were refused: report the first one as the failure. */
        pigeon_rcpt_result *rr = &res->rcpts[first_bad];
        res->fail_class = deferred > 0 ? PIGEON_FAIL_DEFERRED : PIGEON_FAIL_REJECTED;
        res->stage = "rcpt";
        snprintf(res->errmsg, sizeof res->errmsg, "%zu of %zu recipients refused (first: %s)",
                 env->n - accepted, env->n, rr->address);
        res->code = rr->code;
        memcpy(res->enhanced, rr->enhanced, sizeof res->enhanced);
        free(res->reply_text);
        res->reply_text = rr->text != NULL ? strdup(rr->text) : NULL;
        res->hint = pg_hint_for_reply(s->family, "rcpt", rr->code, rr->enhanced, rr->text);
    }
    if (accepted > 0) {
        res->status = PIGEON_SEND_PARTIAL;
        if (sess == PIGEON_FAIL_NONE || sess == PIGEON_FAIL_REJECTED ||
            sess == PIGEON_FAIL_DEFERRED)
            res->fail_class = deferred > 0 ? PIGEON_FAIL_DEFERRED : PIGEON_FAIL_REJECTED;
    } else {
        res->status =
            pigeon_send_result_is_temporary(res) ? PIGEON_SEND_DEFERRED : PIGEON_SEND_FAILED;
    }
    /* A session failure keeps its own code (PIGEON_ERR_TIMEOUT is more precise than the
     * class's PIGEON_ERR_NETWORK); refused recipients take the class's. */
    if (sess == PIGEON_FAIL_NONE || res->fail_class != sess)
        res->err = pg_smtp_err_of(res->fail_class);
}

/* ---- public calls ---- */

pigeon_err pg_smtp_message_envelope(pigeon_smtp *s, pigeon_message *msg, envelope *env)
{
    size_t n = pigeon_message_rcpt_count(msg);
    const pigeon_mailbox *from = pigeon_message_envelope_from(msg);
    int utf8 = s->caps.smtputf8;
    pigeon_err err = PIGEON_OK;
    if (from == NULL || n == 0) {
        pg_smtp_fail(s, PIGEON_FAIL_CONFIG, PIGEON_ERR_INVALID, "mail",
                     from == NULL ? "the message has no From (envelope sender)"
                                  : "the message has no recipients");
        return PIGEON_ERR_INVALID;
    }
    char **addrs = calloc(n, sizeof *addrs);
    if (addrs == NULL)
        return PIGEON_ERR_NOMEM;
    err = pigeon_mailbox_addr_spec(from, utf8, &env->from);
    for (size_t i = 0; i < n && err == PIGEON_OK; i++)
        err = pigeon_mailbox_addr_spec(pigeon_message_rcpt(msg, i), utf8, &addrs[i]);
    if (err == PIGEON_OK) {
        err = set_rcpts(s, env, addrs, n);
        env->smtputf8 |= has_8bit(env->from);
        return err == PIGEON_OK ? verp_senders(s, env) : err;
    }
    for (size_t i = 0; i < n; i++)
        free(addrs[i]);
    free(addrs);
    /* RFC 6531 3.4: a non-ASCII local part needs SMTPUTF8, which this server lacks. */
    if (err == PIGEON_ERR_ADDRESS) {
        err = PIGEON_ERR_UNSUPPORTED;
        pg_smtp_fail(s, PIGEON_FAIL_DATA, err, "mail",
                     "an address has a non-ASCII local part and the server does not offer "
                     "SMTPUTF8");
    }
    return err;
}

/* The end both send calls share: one transaction when the preparation (err) went well,
 * then the overall status and error settled from what happened. */
static pigeon_err transact(pigeon_smtp *s, pigeon_send_result *res, envelope *env, data_source *src,
                           pigeon_err err)
{
    if (err == PIGEON_OK) {
        deliver(s, env, src);
        pg_smtp_finish(s, env);
        err = res->err;
    } else if (res->fail_class == PIGEON_FAIL_NONE) {
        pg_smtp_fail(s, PIGEON_FAIL_DATA, err, "mail", "%s", pigeon_strerror(err));
    }
    if (err != PIGEON_OK && res->status == PIGEON_SEND_NONE)
        res->status = PIGEON_SEND_FAILED;
    if (res->err == PIGEON_OK && err != PIGEON_OK)
        res->err = err;
    return err;
}

pigeon_err pigeon_smtp_send_message(pigeon_smtp *s, pigeon_message *msg, pigeon_send_result *res)
{
    if (s == NULL || msg == NULL || res == NULL)
        return PIGEON_ERR_INVALID;
    int64_t started = pg_now_ms();
    envelope env = {.size = -1};
    data_source src = {.msg = msg};
    pg_smtp_begin(s, res);
    pigeon_err err = pg_smtp_check_ready(s);
    if (err == PIGEON_OK && s->chunk == NULL && (s->chunk = malloc(PG_SMTP_CHUNK)) == NULL)
        err = PIGEON_ERR_NOMEM;
    if (err == PIGEON_OK)
        err = pg_smtp_message_envelope(s, msg, &env);
    src.wopts.allow_8bit = s->o.allow_8bit && s->caps.eightbitmime;
    src.wopts.smtputf8 = env.smtputf8 && s->caps.smtputf8;
    err = transact(s, res, &env, &src, err);
    pg_smtp_envelope_cleanup(&env);
    pg_smtp_end(s, started);
    return err;
}

/* The envelope of a raw message, validated: addresses as path_ok() accepts them, and
 * SMTPUTF8 offered when one is not ASCII. Failures are recorded in s->res. */
pigeon_err pg_smtp_raw_envelope(pigeon_smtp *s, envelope *env, const char *from,
                                const char *const *rcpts, size_t n)
{
    char **addrs = NULL;
    pigeon_err err = from == NULL || rcpts == NULL || n == 0 ? PIGEON_ERR_INVALID : PIGEON_OK;
    for (size_t i = 0; err == PIGEON_OK && i < n; i++) {
        if (rcpts[i] == NULL || !path_ok(rcpts[i], 0))
            err = PIGEON_ERR_ADDRESS;
    }
    if (err == PIGEON_OK && !path_ok(from, 1))
        err = PIGEON_ERR_ADDRESS;
    if (err != PIGEON_OK) {
        pg_smtp_fail(s, PIGEON_FAIL_CONFIG, err, "mail",
                     err == PIGEON_ERR_ADDRESS ? "invalid envelope address"
                                               : "the message has no sender or no recipients");
        return err;
    }
    if ((env->from = strdup(from)) == NULL || (addrs = calloc(n, sizeof *addrs)) == NULL)
        err = PIGEON_ERR_NOMEM;
    for (size_t i = 0; err == PIGEON_OK && i < n; i++) {
        if ((addrs[i] = strdup(rcpts[i])) == NULL)
            err = PIGEON_ERR_NOMEM;
    }
    if (err != PIGEON_OK) {
        for (size_t i = 0; addrs != NULL && i < n; i++)
            free(addrs[i]);
        free(addrs);
        return err;
    }
    if ((err = set_rcpts(s, env, addrs, n)) != PIGEON_OK)
        return err;
    env->smtputf8 |= has_8bit(from);
    if ((err = verp_senders(s, env)) != PIGEON_OK)
        return err;
    if (env->smtputf8 && !s->caps.smtputf8) {
        pg_smtp_fail(s, PIGEON_FAIL_DATA, PIGEON_ERR_UNSUPPORTED, "mail",
                     "an envelope address is not ASCII and the server does not offer SMTPUTF8");
        return PIGEON_ERR_UNSUPPORTED;
    }
    return PIGEON_OK;
}

pigeon_err pigeon_smtp_send_stream(pigeon_smtp *s, const char *from, const char *const *rcpts,
                                   size_t n, pigeon_read_fn read, void *ctx, int64_t size,
                                   int is_8bit, pigeon_send_result *res)
{
    if (s == NULL || from == NULL || rcpts == NULL || n == 0 || read == NULL || res == NULL)
        return PIGEON_ERR_INVALID;
    int64_t started = pg_now_ms();
    envelope env = {.size = size < 0 ? -1 : size, .is_8bit = is_8bit != 0};
    data_source src = {.read = read, .read_ctx = ctx};
    pg_smtp_begin(s, res);
    res->size = env.size;
    pigeon_err err = pg_smtp_check_ready(s);
    if (err == PIGEON_OK && s->chunk == NULL && (s->chunk = malloc(PG_SMTP_CHUNK)) == NULL)
        err = PIGEON_ERR_NOMEM;
    if (err == PIGEON_OK)
        err = pg_smtp_raw_envelope(s, &env, from, rcpts, n);
    err = transact(s, res, &env, &src, err);
    pg_smtp_envelope_cleanup(&env);
    pg_smtp_end(s, started);
    return err;
}
