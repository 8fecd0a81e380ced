/*
 * merge.c - mail merge: one personalized message per row of a list (see merge.h).
 *
 * The list is streamed (pigeon/template.h rows): one row, one composed message in memory
 * at a time, whatever the list's length. Each row's columns are the top scope of the
 * templates; its email (and name) column is the To. Rows are numbered among the data rows
 * from 1, which is what the report and --resume use; errors name the row's line.
 *
 * Three ways out, chosen by send's options:
 *  - send: one SMTP session reused for every message (reconnecting when the server drops
 *    it), paced by --rate;
 *  - --queue: every message enqueued in one spool batch, durable at the commit, and only
 *    then reported (the report lines wait in a temporary file);
 *  - --dry-run: each message written to a folder or an mbox.
 *
 * SIGINT and SIGTERM stop the run after the message in flight: it is finished and
 * reported, nothing after it starts, and the way to resume is printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "merge.h"
#include "merge_sent.h"
#include "queue.h"
#include "secret.h"
#include "suppress.h"

/* Connection failures in a row after which the run stops. */
#define CONNECT_TRIES 3

static volatile sig_atomic_t interrupted;

/* One merge in progress. */
typedef struct run {
    const merge_opts *m;                    /* options */
    merge_env *env;                         /* send's state */
    pigeon_rows_format format;              /* the list's format */
    merge_report report;                    /* the per-row report */
    merge_done done;                        /* rows --resume skips */
    merge_progress progress;                /* the display */
    merge_sink sink;                        /* --dry-run output */
    pigeon_smtp_opts sopts;                 /* send: the session options */
    char *secret;                           /* send: the password (wiped at the end) */
    pigeon_smtp *smtp;                      /* send: the session, or NULL */
    int connect_failures;                   /* send: failed connects in a row */
    unsigned long sent;                     /* send: messages handed to the server (for --rate) */
    pigeon_spool *spool;                    /* queue: the spool, a batch open */
    char account[128];                      /* queue: the account */
    unsigned long ok, bad, failed, skipped; /* counts */
    int worst;                              /* the worst delivery status */
    int fatal;                              /* a status that stops the run, or 0 */
    char to[2048];                          /* the row's To */
    char address[512];                      /* the row's bare address */
    char where[600];                        /* "FILE line N: " */
    cli_suppressor sup;                     /* the suppression checks (suppress.h) */
    unsigned long suppressed;               /* rows not sent: every recipient suppressed */
    merge_sent *sent_copies;                /* send: --save-sent, or NULL (merge_sent.h) */
} run;

static void on_signal(int sig)
{
    interrupted = sig;
}

int merge_option(merge_opts *m, int opt, const char *arg)
{
    char *end;
    switch (opt) {
    case CLI_OPT_TO_FILE:
        m->to_file = arg;
        return 0;
    case CLI_OPT_TO_FORMAT:
        if (strcmp(arg, "csv") != 0 && strcmp(arg, "jsonl") != 0) {
            cli_error("--to-format \"%s\": expected csv or jsonl", arg);
            return EX_USAGE;
        }
        m->format = arg;
        return 0;
    case CLI_OPT_RATE:
        errno = 0;
        m->rate = strtod(arg, &end);
        if (errno != 0 || end == arg || !(m->rate > 0) || m->rate > 1e6)
            goto bad_rate;
        if (strcmp(end, "/m") == 0 || strcmp(end, "/min") == 0)
            m->rate /= 60;
        else if (strcmp(end, "/h") == 0)
            m->rate /= 3600;
        else if (*end != '\0' && strcmp(end, "/s") != 0)
            goto bad_rate;
        return 0;
    case CLI_OPT_REPORT:
        m->report = arg;
        return 0;
    case CLI_OPT_RESUME:
        m->resume = 1;
        return 0;
    case CLI_OPT_STRICT:
        m->strict = 1;
        return 0;
    case CLI_OPT_DRY_RUN_DIR:
        m->dry_run_dir = arg;
        return 0;
    case CLI_OPT_MBOX:
        m->mbox = arg;
        return 0;
    default:
        return -1;
    }
bad_rate:
    cli_error("--rate \"%s\": expected N, N/s, N/m or N/h with N > 0", arg);
    return EX_USAGE;
}

int merge_check(const merge_opts *m, const merge_env *env)
{
    const char *merge_only = m->report     ? "--report"
                             : m->resume   ? "--resume"
                             : m->strict   ? "--strict"
                             : m->rate > 0 ? "--rate"
                             : m->format   ? "--to-format"
                                           : NULL;
    if (m->to_file == NULL && merge_only != NULL) {
        cli_error("%s needs --to-file", merge_only);
        return EX_USAGE;
    }
    if ((m->dry_run_dir || m->mbox) && !env->dry_run) {
        cli_error("%s needs --dry-run", m->dry_run_dir ? "--dry-run-dir" : "--mbox");
        return EX_USAGE;
    }
    if (m->dry_run_dir && m->mbox) {
        cli_error("--dry-run-dir and --mbox both given; use one");
        return EX_USAGE;
    }
    if (m->to_file == NULL)
        return 0;
    if (env->compose->to.count > 0) {
        cli_error("--to and --to-file both given: the list gives each message's To");
        return EX_USAGE;
    }
    if (m->resume && m->report == NULL) {
        cli_error("--resume needs --report FILE (the report says which rows are done)");
        return EX_USAGE;
    }
    if (env->queue && env->dry_run) {
        cli_error("--queue and --dry-run both given; use one");
        return EX_USAGE;
    }
    return 0;
}

/* ---- the list ---- */

static int fd_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    int fd = *(int *)ctx;
    for (;;) {
        ssize_t k = read(fd, buf, cap);
        if (k >= 0) {
            *n = (size_t)k;
            return 0;
        }
        if (errno != EINTR)
            return -1;
    }
}

static int open_list(const merge_opts *m, int *fd)
{
    if (strcmp(m->to_file, "-") == 0) {
        *fd = STDIN_FILENO;
        return 0;
    }
    if ((*fd = open(m->to_file, O_RDONLY | O_CLOEXEC)) < 0) {
        cli_error("cannot open --to-file \"%s\": %s", m->to_file, strerror(errno));
        return EX_NOINPUT;
    }
    return 0;
}

static pigeon_rows_format list_format(const merge_opts *m)
{
    if (m->format != NULL)
        return strcmp(m->format, "jsonl") == 0 ? PIGEON_ROWS_JSONL : PIGEON_ROWS_CSV;
    const char *dot = strrchr(m->to_file, '.');
    return dot && (strcasecmp(dot, ".jsonl") == 0 || strcasecmp(dot, ".ndjson") == 0)
               ? PIGEON_ROWS_JSONL
               : PIGEON_ROWS_CSV;
}

/* A column by its name as spreadsheets spell it (email, Email, EMAIL). */
static const char *column(const pigeon_vars *row, const char *lower, const char *title,
                          const char *upper)
{
    const pigeon_vars *v = pigeon_vars_get(row, lower);
    if (v == NULL)
        v = pigeon_vars_get(row, title);
    if (v == NULL)
        v = pigeon_vars_get(row, upper);
    size_t len;
    const char *s = pigeon_vars_text(v, &len);
    return s != NULL && len > 0 && strlen(s) == len ? s : NULL;
}

/* Sets r->to and r->address from the row's email and name. Returns NULL or why not. */
static const char *row_recipient(run *r, const pigeon_vars *row, char *why, size_t n)
{
    const char *email = column(row, "email", "Email", "EMAIL");
    const char *name = column(row, "name", "Name", "NAME");
    pigeon_mailbox mb;
    char *spec = NULL;
    char err[256];
    r->address[0] = '\0';
    if (email == NULL)
        return "no email column, or it is empty";
    snprintf(r->address, sizeof r->address, "%s", email);
    if (pigeon_mailbox_parse(email, &mb, err, sizeof err) != PIGEON_OK) {
        snprintf(why, n, "invalid address: %s", err);
        return why;
    }
    if (name == NULL)
        name = mb.display_name;
    if (pigeon_mailbox_addr_spec(&mb, 1, &spec) != PIGEON_OK) {
        pigeon_mailbox_cleanup(&mb);
        return "invalid address";
    }
    snprintf(r->address, sizeof r->address, "%s", spec);
    const char *fail = NULL;
    size_t used = 0;
    if (name != NULL && *name != '\0') {
        /* RFC 5322 3.2.4: a quoted-string, with '"' and '\' escaped. */
        r->to[used++] = '"';
        for (const char *p = name; *p && used + 4 < sizeof r->to; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                fail = "the name has a control character or a line break";
                break;
            }
            if (*p == '"' || *p == '\\')
                r->to[used++] = '\\';
            r->to[used++] = *p;
        }
        used += (size_t)snprintf(r->to + used, sizeof r->to - used, "\" <%s>", spec);
    } else {
        used = (size_t)snprintf(r->to, sizeof r->to, "%s", spec);
    }
    if (fail == NULL && used >= sizeof r->to - 1)
        fail = "the name and address are too long";
    free(spec);
    pigeon_mailbox_cleanup(&mb);
    return fail;
}

/* ---- outcomes ---- */

static void outcome(run *r, unsigned long row, unsigned long line, const char *status, int code,
                    const char *message_id, const char *queue_id, const char *error)
{
    merge_outcome o = {row,      line, r->address[0] ? r->address : NULL, status, code, message_id,
                       queue_id, error};
    merge_report_write(&r->report, &o);
}

static void bad_row(run *r, unsigned long row, unsigned long line, const char *why, int printed)
{
    r->bad++;
    if (!printed)
        cli_error("%s line %lu: %s (row skipped)", r->m->to_file, line, why);
    outcome(r, row, line, "invalid", 0, NULL, NULL, why);
}

/* The message id as "<id>" into out. */
static const char *bracketed_id(pigeon_message *msg, char *out, size_t n)
{
    const char *id = pigeon_message_get_message_id(msg);
    if (id == NULL)
        return NULL;
    snprintf(out, n, "<%s>", id);
    return out;
}

/* ---- send ---- */

static int sent_status(const pigeon_send_result *res)
{
    if (res->status == PIGEON_SEND_SENT)
        return 0;
    return pigeon_fail_class_is_temporary(res->fail_class) ? EX_TEMPFAIL : EX_UNAVAILABLE;
}

static const char *result_name(const pigeon_send_result *res)
{
    switch (res->status) {
    case PIGEON_SEND_SENT:
        return "sent";
    case PIGEON_SEND_PARTIAL:
        return "partial";
    case PIGEON_SEND_DEFERRED:
        return "deferred";
    default:
        return pigeon_fail_class_is_temporary(res->fail_class) ? "deferred" : "failed";
    }
}

/* Waits for the --rate slot of the next message; returns nonzero if interrupted. */
static int pace(run *r)
{
    if (r->m->rate <= 0)
        return interrupted != 0;
    int64_t due = r->progress.start_ms + (int64_t)((double)r->sent * 1000.0 / r->m->rate);
    int64_t now = merge_now_ms();
    while (now < due && !interrupted) {
        int64_t wait = due - now;
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        now = merge_now_ms();
    }
    return interrupted != 0;
}

/* A ready session, connecting if needed. Returns 0, or -1 with res filled. */
static int session(run *r, pigeon_send_result *res)
{
    if (r->smtp != NULL && pigeon_smtp_is_ready(r->smtp))
        return 0;
    if (r->smtp != NULL)
        pigeon_smtp_free(r->smtp);
    r->smtp = NULL;
    pigeon_err e = pigeon_smtp_new(&r->sopts, &r->smtp);
    if (e != PIGEON_OK) {
        res->status = PIGEON_SEND_FAILED;
        res->fail_class = PIGEON_FAIL_CONFIG;
        snprintf(res->errmsg, sizeof res->errmsg, "%s", pigeon_strerror(e));
        r->fatal = EX_CONFIG;
        return -1;
    }
    if (pigeon_smtp_connect(r->smtp, res) == PIGEON_OK) {
        r->connect_failures = 0;
        return 0;
    }
    if (res->status == PIGEON_SEND_NONE)
        res->status = pigeon_fail_class_is_temporary(res->fail_class) ? PIGEON_SEND_DEFERRED
                                                                      : PIGEON_SEND_FAILED;
    pigeon_smtp_free(r->smtp);
    r->smtp = NULL;
    if (++r->connect_failures >= CONNECT_TRIES || res->fail_class == PIGEON_FAIL_AUTH ||
        res->fail_class == PIGEON_FAIL_CONFIG || res->fail_class == PIGEON_FAIL_TLS)
        r->fatal = sent_status(res) ? sent_status(res) : EX_TEMPFAIL;
    return -1;
}

static void send_row(run *r, unsigned long row, unsigned long line, pigeon_message *msg)
{
    pigeon_send_result res;
    char idbuf[1100];
    pigeon_send_result_init(&res);
    const char *mid = bracketed_id(msg, idbuf, sizeof idbuf);
    if (session(r, &res) == 0) {
        r->sent++;
        pigeon_smtp_send_message(r->smtp, msg, &res);
        if (res.status == PIGEON_SEND_SENT || res.status == PIGEON_SEND_PARTIAL)
            merge_sent_save(r->sent_copies, msg, r->env->compose, r->address); /* Sent hook */
    }
    int status = sent_status(&res);
    char err[800] = "";
    if (status != 0) {
        snprintf(err, sizeof err, "%s%s%s", res.errmsg, res.reply_text && res.errmsg[0] ? ": " : "",
                 res.reply_text ? res.reply_text : "");
        for (char *p = err; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        cli_error("%s line %lu: %s: %s: %s (%s%s%s)", r->m->to_file, line, r->address,
                  result_name(&res), err, pigeon_fail_class_name(res.fail_class),
                  res.stage ? ", at " : "", res.stage ? res.stage : "");
        r->failed++;
        if (r->worst != EX_UNAVAILABLE)
            r->worst = status;
    } else {
        r->ok++;
    }
    outcome(r, row, line, result_name(&res), res.code, mid, NULL, status ? err : NULL);
    pigeon_send_result_cleanup(&res);
}

/* -v: the session's transcript on standard error (credentials masked by the library). */
static void transcript(void *ctx, pigeon_transcript_dir dir, int64_t unix_ms, const char *line)
{
    static const char *const tags[] = {"C:", "S:", "* ", "  "};
    (void)ctx;
    (void)unix_ms;
    fprintf(stderr, "%s %s\n", (unsigned)dir < 4 ? tags[dir] : "? ", line);
}

static int send_begin(run *r)
{
    cli_compose *c = r->env->compose;
    pigeon_mailbox from;
    char err[600], *from_addr = NULL;
    if (pigeon_mailbox_parse(c->from, &from, err, sizeof err) != PIGEON_OK) {
        cli_error("invalid --from \"%s\": %s", c->from, err);
        return EX_DATAERR;
    }
    if (pigeon_mailbox_addr_spec(&from, 1, &from_addr) != PIGEON_OK)
        from_addr = NULL;
    int status = settings_finish(r->env->cfg, from.domain, from_addr, err, sizeof err);
    free(from_addr);
    pigeon_mailbox_cleanup(&from);
    if (status != 0) {
        cli_error("%s", err);
        return status;
    }
    status = deliver_plan_opts(r->env->cfg, r->env->deliver, &r->sopts, &r->secret);
    if (status == 0)
        r->sent_copies = merge_sent_open(r->env->cfg, r->env->deliver); /* --save-sent */
    if (status == 0 && r->env->deliver->verbose) {
        r->sopts.transcript = transcript;
        r->sopts.transcript_debug = r->env->deliver->verbose > 1;
    }
    return status;
}

/* ---- queue ---- */

static char *path_of(const pigeon_mailbox *mb)
{
    char *out = NULL;
    pigeon_err e = pigeon_mailbox_addr_spec(mb, 0, &out);
    if (e == PIGEON_ERR_ADDRESS)
        e = pigeon_mailbox_addr_spec(mb, 1, &out);
    return e == PIGEON_OK ? out : NULL;
}

static int queue_begin(run *r)
{
    char err[600];
    merge_env *env = r->env;
    if (env->deliver->password_file != NULL || env->deliver->password_command != NULL) {
        cli_error("send: --password-file and --password-command cannot be queued: the daemon "
                  "uses the account's password source");
        return EX_USAGE;
    }
    pigeon_mailbox from;
    if (pigeon_mailbox_parse(env->compose->from, &from, err, sizeof err) != PIGEON_OK) {
        cli_error("invalid --from \"%s\": %s", env->compose->from, err);
        return EX_DATAERR;
    }
    int status = queue_account_of(env->cfg, r->account, sizeof r->account, err, sizeof err);
    if (status == 0)
        status = settings_finish(env->cfg, from.domain, NULL, err, sizeof err);
    pigeon_mailbox_cleanup(&from);
    if (status != 0) {
        cli_error("send: %s", err);
        return status;
    }
    status = queue_spool_open(
        env->spool, PIGEON_SPOOL_CREATE | PIGEON_SPOOL_NO_CHECK | PIGEON_SPOOL_BULK, &r->spool);
    if (status == 0 && pigeon_spool_begin(r->spool) != PIGEON_OK) {
        cli_error("cannot start a spool batch: %s", pigeon_spool_error(r->spool));
        status = EX_TEMPFAIL;
    }
    return status;
}

static void queue_row(run *r, unsigned long row, unsigned long line, pigeon_message *msg)
{
    char idbuf[1100], qid[PIGEON_SPOOL_ID_LEN + 1];
    const char *mid = bracketed_id(msg, idbuf, sizeof idbuf);
    size_t n = pigeon_message_rcpt_count(msg);
    char *rcpts[16] = {0};
    char *from = NULL, *data = NULL;
    size_t len = 0;
    if (n > 16 || n == 0) {
        bad_row(r, row, line, "more than 16 recipients per message cannot be queued by a merge", 0);
        return;
    }
    from = path_of(pigeon_message_envelope_from(msg));
    for (size_t i = 0; i < n; i++)
        rcpts[i] = path_of(pigeon_message_rcpt(msg, i));
    pigeon_spool_envelope env = {r->account, from ? from : "", (const char *const *)rcpts, n, mid};
    /* The message is small (bounded by the templates): one buffer, one insert. */
    pigeon_err e = pigeon_message_write_buffer(msg, NULL, &data, &len);
    if (e == PIGEON_OK)
        e = pigeon_spool_enqueue(r->spool, &env, data, len, pigeon_spool_now_ms(), qid);
    if (e == PIGEON_OK) {
        r->ok++;
        outcome(r, row, line, "queued", 0, mid, qid, NULL);
    } else {
        cli_error("cannot queue the message: %s", pigeon_spool_error(r->spool));
        r->fatal = e == PIGEON_ERR_TIMEOUT ? EX_TEMPFAIL : cli_exit_status(e);
    }
    free(data);
    free(from);
    for (size_t i = 0; i < n; i++)
        free(rcpts[i]);
}

static int queue_end(run *r)
{
    if (r->spool == NULL)
        return 0;
    int status = 0;
    if (r->fatal == 0 || r->ok > 0) {
        if (pigeon_spool_commit(r->spool) != PIGEON_OK) {
            cli_error("cannot commit the queue batch (nothing of it was queued): %s",
                      pigeon_spool_error(r->spool));
            merge_report_discard(&r->report);
            r->ok = 0;
            status = EX_TEMPFAIL;
        } else {
            status = merge_report_publish(&r->report);
        }
    } else {
        pigeon_spool_rollback(r->spool);
        merge_report_discard(&r->report);
    }
    pigeon_spool_close(r->spool);
    r->spool = NULL;
    return status;
}

/* ---- rows ---- */

/* Composes the row's message. Returns 0 with *msg, or a status: EX_DATAERR is a bad row
 * (reported), anything else stops the run. */
static int compose_row(run *r, const pigeon_vars *row, unsigned long line, pigeon_message **msg,
                       char *why, size_t n)
{
    const char *fail = row_recipient(r, row, why, n);
    *msg = NULL;
    if (fail != NULL) {
        if (fail != why)
            snprintf(why, n, "%s", fail);
        return -1;
    }
    r->env->tpl->row = row;
    r->env->tpl->last_error[0] = '\0';
    snprintf(r->where, sizeof r->where, "%s line %lu: ", r->m->to_file, line);
    r->env->tpl->where = r->where;
    int status = cli_compose_build(r->env->compose, msg);
    r->env->tpl->row = NULL;
    if (status == EX_DATAERR)
        snprintf(why, n, "%s",
                 r->env->tpl->last_error[0] ? r->env->tpl->last_error : "invalid content");
    return status;
}

/* A CSV list without an email column is a mistake in the whole file, not in each row. */
static int has_email_column(const pigeon_vars *row)
{
    return pigeon_vars_get(row, "email") != NULL || pigeon_vars_get(row, "Email") != NULL ||
           pigeon_vars_get(row, "EMAIL") != NULL;
}

/* Takes the row's suppressed recipients out of its envelope; when none is left the row is
 * reported "suppressed" (with who and why) and nonzero returned: nothing is sent. */
static int suppressed_row(run *r, unsigned long num, unsigned long line, pigeon_message *msg)
{
    char why[600];
    size_t n = pigeon_message_rcpt_count(msg), dropped = 0;
    int status = cli_suppressor_filter(&r->sup, msg, "merge", 0, &dropped, why, sizeof why);
    if (status != 0) {
        r->fatal = status;
        return 1;
    }
    if (dropped == 0 || dropped < n)
        return 0;
    r->suppressed++;
    outcome(r, num, line, CLI_SUPPRESSED, 0, NULL, NULL, why);
    return 1;
}

static void handle_row(run *r, const pigeon_vars *row, unsigned long num, unsigned long line)
{
    char why[600];
    if (r->format == PIGEON_ROWS_CSV && !has_email_column(row)) {
        cli_error("--to-file \"%s\": the header has no email column (the recipients' "
                  "addresses)",
                  r->m->to_file);
        r->fatal = EX_DATAERR;
        return;
    }
    pigeon_message *msg = NULL;
    int status = compose_row(r, row, line, &msg, why, sizeof why);
    if (status == -1 || status == EX_DATAERR) {
        bad_row(r, num, line, why, status == EX_DATAERR);
        if (r->m->strict)
            r->fatal = EX_DATAERR;
        return;
    }
    if (status != 0) {
        r->fatal = status;
        return;
    }
    if (r->env->dry_run) {
        status = merge_sink_write(&r->sink, num, msg);
        if (status == 0) {
            r->ok++;
            char idbuf[1100];
            outcome(r, num, line, "written", 0, bracketed_id(msg, idbuf, sizeof idbuf), NULL, NULL);
        } else {
            r->fatal = status;
        }
    } else if (!r->env->ignore_suppression && suppressed_row(r, num, line, msg)) {
        ;
    } else if (r->env->queue) {
        queue_row(r, num, line, msg);
    } else if (!pace(r)) {
        send_row(r, num, line, msg);
    }
    pigeon_message_free(msg);
}

/* Reads the whole list once: the number of rows, and with --strict whether every row
 * composes (nothing is sent when one does not). Returns 0 or an exit status. */
static int prepass(run *r, unsigned long *total)
{
    int fd;
    *total = 0;
    if (strcmp(r->m->to_file, "-") == 0)
        return 0;
    int status = open_list(r->m, &fd);
    if (status != 0)
        return status;
    pigeon_rows *rows = pigeon_rows_new(r->format, fd_read, &fd);
    const pigeon_vars *row;
    unsigned long line, bad = 0;
    char why[600];
    for (;;) {
        pigeon_err e = pigeon_rows_next(rows, &row, &line);
        if (e == PIGEON_OK && row == NULL)
            break;
        if (e == PIGEON_ERR_CORRUPT || e == PIGEON_ERR_IO || e == PIGEON_ERR_NOMEM) {
            cli_error("--to-file \"%s\": %s", r->m->to_file, pigeon_rows_error(rows));
            status = e == PIGEON_ERR_IO ? EX_IOERR : e == PIGEON_ERR_NOMEM ? EX_OSERR : EX_DATAERR;
            break;
        }
        ++*total;
        if (!r->m->strict)
            continue;
        if (e != PIGEON_OK) {
            cli_error("%s %s", r->m->to_file, pigeon_rows_error(rows));
            bad++;
            continue;
        }
        pigeon_message *msg = NULL;
        int s = compose_row(r, row, line, &msg, why, sizeof why);
        pigeon_message_free(msg);
        if (s == -1)
            cli_error("%s line %lu: %s", r->m->to_file, line, why);
        if (s == -1 || s == EX_DATAERR)
            bad++;
        else if (s != 0) {
            status = s;
            break;
        }
    }
    pigeon_rows_free(rows);
    close(fd);
    if (status == 0 && bad > 0) {
        cli_error("--strict: %lu bad row%s; nothing was sent", bad, bad == 1 ? "" : "s");
        status = EX_DATAERR;
    }
    return status;
}

/* Goes through the rows. */
static int each_row(run *r, int fd)
{
    pigeon_rows *rows = pigeon_rows_new(r->format, fd_read, &fd);
    const pigeon_vars *row;
    unsigned long line, num = 0;
    if (rows == NULL)
        return EX_OSERR;
    while (!interrupted && !r->fatal) {
        pigeon_err e = pigeon_rows_next(rows, &row, &line);
        if (e == PIGEON_OK && row == NULL)
            break;
        if (e == PIGEON_ERR_CORRUPT || e == PIGEON_ERR_IO || e == PIGEON_ERR_NOMEM) {
            cli_error("--to-file \"%s\": %s", r->m->to_file, pigeon_rows_error(rows));
            r->fatal = e == PIGEON_ERR_IO      ? EX_IOERR
                       : e == PIGEON_ERR_NOMEM ? EX_OSERR
                                               : EX_DATAERR;
            break;
        }
        num++;
        if (merge_done_has(&r->done, num)) {
            r->skipped++;
        } else if (e != PIGEON_OK) {
            r->address[0] = '\0';
            const char *why = pigeon_rows_error(rows);
            bad_row(r, num, line, strncmp(why, "line ", 5) == 0 ? strchr(why, ':') + 2 : why, 0);
            if (r->m->strict)
                r->fatal = EX_DATAERR;
        } else {
            handle_row(r, row, num, line);
        }
        r->progress.done = num;
        merge_progress_tick(&r->progress, 0);
    }
    pigeon_rows_free(rows);
    return 0;
}

static void summary(run *r)
{
    const char *verb = r->env->dry_run ? "wrote" : r->env->queue ? "queued" : "sent";
    printf("%s %lu message%s", verb, r->ok, r->ok == 1 ? "" : "s");
    if (r->failed)
        printf(", %lu failed", r->failed);
    if (r->bad)
        printf(", %lu bad row%s skipped", r->bad, r->bad == 1 ? "" : "s");
    if (r->skipped)
        printf(", %lu already done (--resume)", r->skipped);
    if (r->suppressed)
        printf(", %lu suppressed", r->suppressed);
    printf("\n");
    fflush(stdout);
}

static int start(run *r)
{
    if (r->env->dry_run)
        return merge_sink_open(&r->sink, r->m->dry_run_dir, r->m->mbox);
    int status = r->env->queue ? queue_begin(r) : send_begin(r);
    if (status == 0 && !r->env->ignore_suppression)
        status = cli_suppressor_open(&r->sup, r->env->spool, r->spool,
                                     r->env->queue ? r->account : r->env->cfg->account);
    return status;
}

int merge_run(const merge_opts *m, merge_env *env)
{
    run *r = calloc(1, sizeof *r);
    int fd = -1, status;
    struct sigaction sa, old_int, old_term;
    if (r == NULL) {
        cli_error("out of memory");
        return EX_OSERR;
    }
    r->m = m;
    r->env = env;
    r->format = list_format(m);
    env->tpl->enabled = 1;
    /* The To of every message is the row's recipient (r->to, rewritten per row). */
    if (cli_strv_push(&env->compose->to, r->to) != 0) {
        free(r);
        return EX_OSERR;
    }
    unsigned long total = 0;
    if ((status = prepass(r, &total)) != 0 ||
        (m->resume && (status = merge_done_load(&r->done, m->report)) != 0) ||
        (status = merge_report_open(&r->report, m->report, m->resume, env->queue)) != 0 ||
        (status = start(r)) != 0 || (status = open_list(m, &fd)) != 0)
        goto done;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    merge_progress_init(&r->progress, total);
    each_row(r, fd);
    merge_progress_tick(&r->progress, 1);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (r->smtp != NULL)
        pigeon_smtp_quit(r->smtp);
    merge_sent_close(r->sent_copies);
    r->sent_copies = NULL;
    int end = queue_end(r);
    summary(r);
    if (interrupted || r->fatal) {
        cli_error("%s after row %lu of %s; nothing after it was sent. To go on, run the same "
                  "command with --resume%s",
                  interrupted ? "interrupted" : "stopped", r->progress.done, m->to_file,
                  m->report ? "" : " and --report FILE (none was given this time)");
    }
    status = interrupted ? 128 + (int)interrupted
             : r->fatal  ? r->fatal
             : end       ? end
             : r->worst  ? r->worst
             : r->bad    ? EX_DATAERR
                         : 0;
done:
    merge_sent_close(r->sent_copies);
    if (fd > 0)
        close(fd);
    int rs = merge_report_close(&r->report);
    int ss = merge_sink_close(&r->sink);
    if (status == 0)
        status = rs ? rs : ss;
    if (r->spool != NULL) {
        pigeon_spool_rollback(r->spool);
        pigeon_spool_close(r->spool);
    }
    cli_suppressor_close(&r->sup);
    pigeon_smtp_free(r->smtp);
    secret_free(r->secret);
    merge_done_cleanup(&r->done);
    env->compose->to.count = 0;
    free(r);
    return status;
}

void merge_usage(FILE *out)
{
    fputs("Mail merge (one message per row; the row's columns are template variables):\n"
          "  --to-file LIST          a CSV file with a header row (RFC 4180; an email column,\n"
          "                          an optional name column), or JSON Lines (.jsonl);\n"
          "                          - for standard input\n"
          "  --to-format csv|jsonl   the list's format when its extension does not say\n"
          "  --rate N[/s|/m|/h]      send at most N messages per second (minute, hour);\n"
          "                          queued mail is paced by the daemon instead\n"
          "  --report FILE           one JSON line per row: row, line, address, status,\n"
          "                          code, message_id (queue_id, error)\n"
          "  --resume                skip the rows FILE says were sent, queued or written\n"
          "  --strict                check every row first; send nothing if one is bad (by\n"
          "                          default bad rows are reported and skipped)\n"
          "  --dry-run-dir DIR       with --dry-run: write each message to DIR/ROW.eml\n"
          "  --mbox FILE             with --dry-run: write the messages to an mbox\n"
          "                          (default with --dry-run: an mbox on standard output)\n",
          out);
}
