/*
 * tool_smtp.c - drives the SMTP client library from argv for the integration tests.
 *
 *   tool_smtp --host H --port P [--tls auto|implicit|starttls|none] [--ca-file F]
 *             [--fingerprint HEX] [--insecure] [--user U] [--auth MECH] [--provider P]
 *             [--helo NAME] --from ADDR --to ADDR [--to ADDR ...]
 *             [--raw FILE | --subject S --text T] [--count N] [--no-pipelining] [--8bit]
 *             [--timeout STEP=MS ...] [--total-ms MS] [--size N] [--8bit]
 *             [--dsn-notify N] [--dsn-ret R] [--dsn-envid E] [--debug] [--batch]
 *             [--pipelined [--msg-to I=ADDR ...]]
 *
 * The password comes from the environment variable TOOL_PASSWORD, an OAuth token from
 * TOOL_TOKEN (never argv). --raw sends the file's bytes as they are (pigeon_smtp_send_stream,
 * the envelope from --from/--to); otherwise a message is composed (From, To, Subject, text)
 * and sent with pigeon_smtp_send_message. --count sends it N times over one connection;
 * with --batch the N composed messages go in one pigeon_smtp_send_batch call; with
 * --pipelined the N raw messages (each led by an "X-Seq: i" header line; --msg-to sends
 * message I to ADDR alone) are pulled by one pigeon_smtp_send_pipelined call, and the
 * JSON lists them in the order their done calls came ("pipelined": index, skipped,
 * result) and the order of the next and done calls ("events": "next 0", "done 0"...).
 * Prints one JSON object on stdout (connect result, per-message results, capabilities) and
 * the masked transcript on stderr ("C: ", "S: ", "*: " lines with timestamps). Exits 0
 * whatever the outcome (2 for a usage error): the tests judge the JSON.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pigeon/smtp.h"

#define MAX_RCPTS 64

struct tool_args {
    pigeon_smtp_opts o;            /* library options */
    const char *from;              /* envelope sender */
    const char *rcpts[MAX_RCPTS];  /* recipients */
    size_t nrcpts;                 /* number of rcpts */
    const char *raw;               /* raw message file, or NULL */
    const char *subject;           /* composed message subject */
    const char *text;              /* composed message text */
    long count;                    /* messages to send over the connection */
    long long size;                /* declared size for raw (-2: the file's size) */
    int is_8bit;                   /* raw message is 8-bit */
    int batch;                     /* send the composed messages with send_batch */
    int pipelined;                 /* send the raw messages with send_pipelined */
    long msg_to_index[MAX_RCPTS];  /* --msg-to: message index */
    const char *msg_to[MAX_RCPTS]; /* --msg-to: its only recipient */
    size_t nmsg_to;                /* number of --msg-to */
};

/* A raw message file read in small pieces, like a pipe would be. */
struct file_reader {
    FILE *f; /* the open file */
};

static void json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)(s != NULL ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static const char *rcpt_status(pigeon_rcpt_status s)
{
    static const char *const names[] = {"pending", "accepted", "rejected", "deferred"};
    return (unsigned)s < 4 ? names[s] : "?";
}

static const char *send_status(pigeon_send_status s)
{
    static const char *const names[] = {"none", "sent", "partial", "deferred", "failed"};
    return (unsigned)s < 5 ? names[s] : "?";
}

static void json_result(const pigeon_send_result *r, pigeon_err rc)
{
    printf("{\"rc\":");
    json_str(pigeon_err_name(rc));
    printf(",\"status\":");
    json_str(send_status(r->status));
    printf(",\"class\":");
    json_str(pigeon_fail_class_name(r->fail_class));
    printf(",\"temporary\":%d,\"err\":", pigeon_send_result_is_temporary(r));
    json_str(pigeon_err_name(r->err));
    printf(",\"stage\":");
    json_str(r->stage);
    printf(",\"errmsg\":");
    json_str(r->errmsg);
    printf(",\"code\":%d,\"enhanced\":", r->code);
    json_str(r->enhanced);
    printf(",\"reply\":");
    json_str(r->reply_text);
    printf(",\"hint\":");
    json_str(r->hint);
    printf(",\"transactions\":%d,\"size\":%lld,\"rcpts\":[", r->transactions, (long long)r->size);
    for (size_t i = 0; i < r->rcpt_count; i++) {
        const pigeon_rcpt_result *rr = &r->rcpts[i];
        printf("%s{\"address\":", i ? "," : "");
        json_str(rr->address);
        printf(",\"status\":");
        json_str(rcpt_status(rr->status));
        printf(",\"code\":%d,\"enhanced\":", rr->code);
        json_str(rr->enhanced);
        printf(",\"text\":");
        json_str(rr->text);
        printf("}");
    }
    printf("]}");
}

static void json_caps(const pigeon_smtp_caps *c)
{
    if (c == NULL) {
        printf("null");
        return;
    }
    printf("{\"esmtp\":%d,\"starttls\":%d,\"pipelining\":%d,\"8bitmime\":%d,\"smtputf8\":%d,"
           "\"enhancedstatuscodes\":%d,\"dsn\":%d,\"chunking\":%d,\"size\":%d,\"size_max\":%llu,"
           "\"auth\":",
           c->esmtp, c->starttls, c->pipelining, c->eightbitmime, c->smtputf8, c->enhanced_codes,
           c->dsn, c->chunking, c->size_offered, (unsigned long long)c->size_max);
    json_str(c->auth);
    printf("}");
}

static void transcript(void *ctx, pigeon_transcript_dir dir, int64_t unix_ms, const char *line)
{
    static const char *const tag[] = {"C", "S", "*", "D"};
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03d %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            (int)(unix_ms % 1000), tag[(unsigned)dir < 4 ? dir : 2], line);
    (void)ctx;
}

static int file_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    struct file_reader *r = ctx;
    /* Small reads exercise the chunk boundaries of dot-stuffing. */
    size_t want = cap < 4093 ? cap : 4093;
    *n = fread(buf, 1, want, r->f);
    return ferror(r->f) ? -1 : 0;
}

static int set_timeout(pigeon_smtp_timeouts *t, const char *spec)
{
    static const struct {
        const char *name;
        size_t off;
    } steps[] = {
        {"connect", offsetof(pigeon_smtp_timeouts, connect_ms)},
        {"greeting", offsetof(pigeon_smtp_timeouts, greeting_ms)},
        {"ehlo", offsetof(pigeon_smtp_timeouts, ehlo_ms)},
        {"starttls", offsetof(pigeon_smtp_timeouts, starttls_ms)},
        {"auth", offsetof(pigeon_smtp_timeouts, auth_ms)},
        {"mail", offsetof(pigeon_smtp_timeouts, mail_ms)},
        {"rcpt", offsetof(pigeon_smtp_timeouts, rcpt_ms)},
        {"data", offsetof(pigeon_smtp_timeouts, data_ms)},
        {"data_block", offsetof(pigeon_smtp_timeouts, data_block_ms)},
        {"data_end", offsetof(pigeon_smtp_timeouts, data_end_ms)},
        {"rset", offsetof(pigeon_smtp_timeouts, rset_ms)},
        {"quit", offsetof(pigeon_smtp_timeouts, quit_ms)},
    };
    const char *eq = strchr(spec, '=');
    if (eq == NULL)
        return -1;
    int ms = (int)strtol(eq + 1, NULL, 10);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (strlen(steps[i].name) == (size_t)(eq - spec) &&
            strncmp(spec, steps[i].name, (size_t)(eq - spec)) == 0) {
            *(int *)((char *)t + steps[i].off) = ms;
            return 0;
        }
    }
    if (strncmp(spec, "all=", 4) == 0) {
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
            *(int *)((char *)t + steps[i].off) = ms;
        return 0;
    }
    return -1;
}

static int parse_args(int argc, char **argv, struct tool_args *a)
{
    pigeon_smtp_opts_init(&a->o);
    a->count = 1;
    a->size = -2;
    a->subject = "pigeon test";
    a->text = "Hello from pigeon.\n";
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int flag = 1;
        if (strcmp(k, "--insecure") == 0)
            a->o.insecure = 1;
        else if (strcmp(k, "--no-pipelining") == 0)
            a->o.no_pipelining = 1;
        else if (strcmp(k, "--8bit") == 0)
            a->o.allow_8bit = 1;
        else if (strcmp(k, "--8bit") == 0)
            a->is_8bit = 1;
        else if (strcmp(k, "--debug") == 0)
            a->o.transcript_debug = 1;
        else if (strcmp(k, "--batch") == 0)
            a->batch = 1;
        else if (strcmp(k, "--pipelined") == 0)
            a->pipelined = 1;
        else
            flag = 0;
        if (flag)
            continue;
        if (v == NULL)
            return -1;
        i++;
        if (strcmp(k, "--host") == 0)
            a->o.host = v;
        else if (strcmp(k, "--port") == 0)
            a->o.port = (uint16_t)strtol(v, NULL, 10);
        else if (strcmp(k, "--tls") == 0) {
            if (pigeon_tls_mode_parse(v, &a->o.tls) != 0)
                return -1;
        } else if (strcmp(k, "--auth") == 0) {
            if (pigeon_auth_mech_parse(v, &a->o.auth) != 0)
                return -1;
        } else if (strcmp(k, "--ca-file") == 0)
            a->o.ca_file = v;
        else if (strcmp(k, "--fingerprint") == 0)
            a->o.fingerprint = v;
        else if (strcmp(k, "--user") == 0)
            a->o.user = v;
        else if (strcmp(k, "--provider") == 0)
            a->o.provider = v;
        else if (strcmp(k, "--helo") == 0)
            a->o.helo = v;
        else if (strcmp(k, "--from") == 0)
            a->from = v;
        else if (strcmp(k, "--to") == 0 && a->nrcpts < MAX_RCPTS)
            a->rcpts[a->nrcpts++] = v;
        else if (strcmp(k, "--raw") == 0)
            a->raw = v;
        else if (strcmp(k, "--msg-to") == 0 && strchr(v, '=') != NULL && a->nmsg_to < MAX_RCPTS) {
            a->msg_to_index[a->nmsg_to] = strtol(v, NULL, 10);
            a->msg_to[a->nmsg_to++] = strchr(v, '=') + 1;
        } else if (strcmp(k, "--subject") == 0)
            a->subject = v;
        else if (strcmp(k, "--text") == 0)
            a->text = v;
        else if (strcmp(k, "--count") == 0)
            a->count = strtol(v, NULL, 10);
        else if (strcmp(k, "--size") == 0)
            a->size = strtoll(v, NULL, 10);
        else if (strcmp(k, "--total-ms") == 0)
            a->o.total_timeout_ms = (int)strtol(v, NULL, 10);
        else if (strcmp(k, "--timeout") == 0) {
            if (set_timeout(&a->o.timeouts, v) != 0)
                return -1;
        } else if (strcmp(k, "--dsn-notify") == 0)
            a->o.dsn_notify = v;
        else if (strcmp(k, "--dsn-ret") == 0)
            a->o.dsn_ret = v;
        else if (strcmp(k, "--dsn-envid") == 0)
            a->o.dsn_envid = v;
        else
            return -1;
    }
    return a->o.host != NULL && a->from != NULL ? 0 : -1;
}

static pigeon_err send_raw(pigeon_smtp *s, const struct tool_args *a, pigeon_send_result *r)
{
    struct file_reader fr = {fopen(a->raw, "rb")};
    if (fr.f == NULL)
        return PIGEON_ERR_NOTFOUND;
    long long size = a->size;
    if (size == -2) {
        fseek(fr.f, 0, SEEK_END);
        size = ftell(fr.f);
        fseek(fr.f, 0, SEEK_SET);
    }
    pigeon_err err = pigeon_smtp_send_stream(s, a->from, a->rcpts, a->nrcpts, file_read, &fr, size,
                                             a->is_8bit, r);
    fclose(fr.f);
    return err;
}

static pigeon_message *compose(const struct tool_args *a)
{
    pigeon_message *m = pigeon_message_new();
    if (m == NULL)
        return NULL;
    pigeon_message_set_from(m, a->from);
    for (size_t i = 0; i < a->nrcpts; i++)
        pigeon_message_add_to(m, a->rcpts[i]);
    pigeon_message_set_subject(m, a->subject);
    pigeon_message_set_text(m, a->text, (size_t)-1);
    return m;
}

static pigeon_err send_composed(pigeon_smtp *s, const struct tool_args *a, pigeon_send_result *r)
{
    pigeon_message *m = compose(a);
    if (m == NULL)
        return PIGEON_ERR_NOMEM;
    pigeon_err err = pigeon_message_status(m);
    if (err == PIGEON_OK)
        err = pigeon_smtp_send_message(s, m, r);
    pigeon_message_free(m);
    return err;
}

/* --batch: count composed messages in one call; prints their results. */
static void send_batch(pigeon_smtp *s, const struct tool_args *a)
{
    size_t n = (size_t)a->count;
    pigeon_message **msgs = calloc(n, sizeof *msgs);
    pigeon_send_result *rs = calloc(n, sizeof *rs);
    if (msgs == NULL || rs == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        msgs[i] = compose(a);
    pigeon_err err = pigeon_smtp_send_batch(s, msgs, n, rs);
    for (size_t i = 0; i < n; i++) {
        printf("%s", i ? "," : "");
        json_result(&rs[i], i == 0 ? err : rs[i].err);
        pigeon_send_result_cleanup(&rs[i]);
        pigeon_message_free(msgs[i]);
    }
out:
    free(msgs);
    free(rs);
}

/* --pipelined: one message being pulled or in flight. */
struct pl_msg {
    char seq[32];           /* its "X-Seq: i" line */
    size_t seq_off;         /* how much of seq was read */
    struct file_reader fr;  /* the raw file */
    const char *to[1];      /* its --msg-to recipient */
    long index;             /* its number */
    pigeon_send_result res; /* its result */
};

/* --pipelined: the source and what happened. */
struct pl_state {
    const struct tool_args *a; /* the arguments */
    long pulled;               /* messages pulled */
    char events[8192];         /* "next i" / "done i" in order, as JSON strings */
    size_t ev_len;             /* used of events */
    int printed;               /* messages printed */
};

static void pl_event(struct pl_state *st, const char *what, long i)
{
    if (st->ev_len + 40 < sizeof st->events)
        st->ev_len += (size_t)snprintf(st->events + st->ev_len, sizeof st->events - st->ev_len,
                                       "%s\"%s %ld\"", st->ev_len ? "," : "", what, i);
}

static int pl_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    struct pl_msg *m = ctx;
    size_t left = strlen(m->seq) - m->seq_off;
    if (left > 0) {
        *n = left < cap ? left : cap;
        memcpy(buf, m->seq + m->seq_off, *n);
        m->seq_off += *n;
        return 0;
    }
    return file_read(&m->fr, buf, cap, n);
}

static int pl_next(void *ctx, pigeon_smtp_raw *msg)
{
    struct pl_state *st = ctx;
    const struct tool_args *a = st->a;
    if (st->pulled >= a->count)
        return 0;
    struct pl_msg *m = calloc(1, sizeof *m);
    if (m == NULL || (m->fr.f = fopen(a->raw, "rb")) == NULL) {
        free(m);
        return 0;
    }
    m->index = st->pulled++;
    snprintf(m->seq, sizeof m->seq, "X-Seq: %ld\r\n", m->index);
    pigeon_send_result_init(&m->res);
    msg->from = a->from;
    msg->rcpts = a->rcpts;
    msg->rcpt_count = a->nrcpts;
    for (size_t i = 0; i < a->nmsg_to; i++) {
        if (a->msg_to_index[i] == m->index) {
            m->to[0] = a->msg_to[i];
            msg->rcpts = m->to;
            msg->rcpt_count = 1;
        }
    }
    msg->read = pl_read;
    msg->read_ctx = m;
    msg->is_8bit = a->is_8bit;
    msg->res = &m->res;
    msg->user = m;
    pl_event(st, "next", m->index);
    return 1;
}

static void pl_done(void *ctx, const pigeon_smtp_raw *msg, int skipped)
{
    struct pl_state *st = ctx;
    struct pl_msg *m = msg->user;
    pl_event(st, "done", m->index);
    printf("%s{\"index\":%ld,\"skipped\":%d,\"result\":", st->printed++ ? "," : "", m->index,
           skipped);
    json_result(&m->res, m->res.err);
    printf("}");
    pigeon_send_result_cleanup(&m->res);
    fclose(m->fr.f);
    free(m);
}

static void send_pipelined(pigeon_smtp *s, const struct tool_args *a)
{
    static struct pl_state st;
    st.a = a;
    printf(",\"pipelined\":[");
    pigeon_err err = pigeon_smtp_send_pipelined(s, pl_next, pl_done, &st);
    printf("],\"pipelined_rc\":");
    json_str(pigeon_err_name(err));
    printf(",\"events\":[%s]", st.events);
}

int main(int argc, char **argv)
{
    struct tool_args a;
    memset(&a, 0, sizeof a);
    if (parse_args(argc, argv, &a) != 0) {
        fprintf(stderr, "usage: tool_smtp --host H --port P --from A --to A [options]\n");
        return 2;
    }
    a.o.password = getenv("TOOL_PASSWORD");
    a.o.oauth_token = getenv("TOOL_TOKEN");
    a.o.transcript = transcript;
    pigeon_smtp *s = NULL;
    pigeon_send_result r;
    pigeon_send_result_init(&r);
    pigeon_err rc = pigeon_smtp_new(&a.o, &s);
    printf("{\"new\":");
    json_str(pigeon_err_name(rc));
    if (rc == PIGEON_OK) {
        rc = pigeon_smtp_connect(s, &r);
        printf(",\"connect\":");
        json_result(&r, rc);
        printf(",\"auth_used\":");
        json_str(pigeon_auth_mech_name(pigeon_smtp_auth_used(s)));
        printf(",\"caps\":");
        json_caps(pigeon_smtp_capabilities(s));
        printf(",\"caps_before_tls\":");
        json_caps(pigeon_smtp_capabilities_before_tls(s));
        pigeon_smtp_tls_details ti;
        printf(",\"tls\":");
        if (pigeon_smtp_tls_info(s, &ti) == 0) {
            printf("{\"active\":%d,\"version\":", ti.active);
            json_str(ti.version);
            printf(",\"verify\":%ld}", ti.verify_result);
        } else {
            printf("null");
        }
        if (rc == PIGEON_OK && a.pipelined && a.raw != NULL)
            send_pipelined(s, &a);
        printf(",\"messages\":[");
        if (rc == PIGEON_OK && a.batch && a.raw == NULL && a.count > 0)
            send_batch(s, &a);
        for (long i = 0; rc == PIGEON_OK && !a.batch && !a.pipelined && i < a.count; i++) {
            pigeon_err e = a.raw != NULL ? send_raw(s, &a, &r) : send_composed(s, &a, &r);
            printf("%s", i ? "," : "");
            json_result(&r, e);
            if (!pigeon_smtp_is_ready(s))
                break;
        }
        printf("]");
        pigeon_smtp_quit(s);
    }
    printf("}\n");
    pigeon_send_result_cleanup(&r);
    pigeon_smtp_free(s);
    return 0;
}
