/*
 * daemon_worker.c - one delivery worker of `pigeon daemon` (a thread).
 *
 * A worker loops: claim a batch of due messages of one account from the spool under one
 * lease (preferring the account its open connection belongs to), and for each message
 * apply the account's limits, connect if needed (or reuse the connection: the library
 * sends RSET between messages, RFC 5321 4.1.1.5), and stream the stored message to the
 * server. The messages after it that can go at once over the same connection (same
 * settings, lease held, limits met without waiting, not stopping) follow in one pipeline
 * (pigeon_smtp_send_pipelined, RFC 2920 3.1): each one's end of data goes out with the
 * next one's commands, one round trip per message instead of two. Each message's outcomes
 * are recorded in the spool as soon as its final reply is read, before logging or the
 * next message's reply.
 *
 * Durability: the daemon's spool handle is opened with PIGEON_SPOOL_DEFER_SYNC, so that a
 * commit is written to SQLite's WAL at once (the kernel keeps it if the process dies) but
 * flushed to the disk only once per batch (pigeon_spool_sync() after the batch). A kill -9
 * therefore re-sends at most one message per worker: the one whose final dot was answered
 * but whose outcome the process had no time to write (the one duplicate RFC 5321 6.1
 * accepts). A power cut or an OS crash can lose the commits since the last flush, so it
 * may re-send up to one batch per worker (--batch). Claims cost a commit per batch;
 * outcomes a commit per message but no flush. Nothing accepted is ever lost, and an
 * accepted recipient is never sent again once its outcome is recorded. On SIGTERM a
 * worker finishes the message in flight, records it, and gives back what it did not start.
 * When the spool cannot be written (disk full), a worker keeps the outcomes it holds and
 * tries again every poll interval before sending anything else.
 *
 * Outcomes: an accepted recipient is delivered; any other is judged by the retry policy
 * (lib/spool/retry.h) from its failure alone: the reply to its RCPT (or to MAIL/DATA/the final
 * dot), else our classification of the session failure. Temporary ones are deferred with
 * exponential backoff and full jitter, permanent ones fail. A 421 or a rate-limit hint
 * slows the whole account in the spool (pigeon_spool_throttle), for every daemon, and
 * the rest of the batch is given back. When a connection cannot be opened, the other
 * messages of the batch for the same server share that failure instead of each waiting
 * for its own connect timeout.
 *
 * Bodies: messages up to INLINE_MAX bytes come with the claim (read in its transaction,
 * from pages the writer holds anyway and deletes at the record), so sending them needs no
 * read of the spool; larger ones stream from the worker's own handle. Both are checked
 * against their SHA-256 before the final dot.
 *
 * Leases: the batch's lease must outlast the next bounded call (connect, or one send:
 * each at most the account's timeout). Before each, the lease of every message of the
 * batch not yet recorded is renewed (one commit) when less than that is left, so a live
 * worker never loses its lease. A dead daemon's work comes back at once when it ran on
 * this host (pigeon_spool_reclaim(), called by daemon.c at start and every few seconds),
 * else when its lease expires.
 *
 * Scheduling: a worker runs under SCHED_BATCH (Linux, sched(7)): it is throughput work, and
 * the scheduler then does not let it preempt the running task each time a reply wakes it.
 * Draining to a local server on 2 cores, the woken workers kept preempting the server that
 * was answering them (and, on PostgreSQL, the backend recording for them): a quarter of
 * the CPU went idle between the ping-pongs. Under SCHED_BATCH the same drains took about
 * 7% less time on SQLite (bench/daemon.sh, medians of 6) and 8-18% less on PostgreSQL
 * (bench/pg.sh), with 10-20% less system CPU in the daemon. An idle core still runs a woken
 * worker at once, so a lone message is not delayed; the metrics server and the main
 * thread keep the ordinary policy. Workers are named "pigeon-wN" (top -H, ps -L), N as in
 * their lease owner "host:pid/wN".
 */
#define _GNU_SOURCE /* SCHED_BATCH, pthread_setname_np */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "daemon_sent.h"
#include "dkim.h"
#include "net/wait.h"
#include "util/random.h"

/* Lease of a claim before the account's settings are known. */
#define FIRST_LEASE_MS 30000
/* How long a worker waits before trying again when an account has no free connection. */
#define BUSY_NAP_MS 100
/* Milliseconds in a day (daily limits count UTC days). */
#define DAY_MS ((int64_t)86400000)
/* Messages up to this size come with the claim (read in its transaction, while the
 * writer reads their pages anyway); larger ones stream from the worker's own handle.
 * The size is lowered for big batches so that a batch holds at most INLINE_BUDGET. */
#define INLINE_MAX    (64 * 1024)
#define INLINE_BUDGET (4 * 1024 * 1024)

/* One worker's state. */
typedef struct worker {
    daemon_state *d;         /* the daemon_state */
    char owner[200];         /* lease owner: "host:pid/wN" */
    pigeon_spool *spool;     /* this worker's own handle, for reading bodies */
    char error[300];         /* the last spool write error */
    pigeon_smtp *smtp;       /* the open connection, or NULL */
    const daemon_conf *conf; /* the settings smtp was opened with */
    daemon_account *account; /* the account smtp counts against */
    int64_t last_used_ms;    /* when smtp last finished a message */
    int64_t lease_ms;        /* lease asked for at claim time */
    int wal_fd;              /* the spool's write-ahead log, for flushing it unlocked; -1 */
    int own;                 /* claims and outcomes go through spool, unlocked (PostgreSQL) */
} worker;

/* Where one message of a batch stands. */
typedef enum job_state {
    JOB_WAITING = 0, /* not started yet (given back if the batch stops early) */
    JOB_PENDING,     /* tried: outcomes decided, not yet recorded */
    JOB_DONE,        /* outcomes recorded (or the recording failed and was logged) */
    JOB_RELEASE,     /* not sent: to be given back with the rest */
    JOB_LOST,        /* its lease was lost (another worker has it): left alone */
} job_state;

/* The outcome of one attempt, for recording, logging and metrics. */
typedef struct attempt {
    pigeon_spool_entry *job;        /* the claim (owned by the batch) */
    job_state state;                /* where it stands */
    pigeon_send_result res;         /* what the SMTP engine said */
    pigeon_spool_outcome *outcomes; /* one per claimed recipient */
    int64_t start_ms;               /* when the attempt began */
    int64_t end_ms;                 /* when its outcomes were decided */
    int64_t throttle_until_ms;      /* nonzero: slow the account until then */
    const char *local_error;        /* our own reason when the engine was never reached */
    pigeon_spool_body *body;        /* its body, open while it is being sent */
    char *dkim;                     /* its DKIM-Signature fields, while it is being sent */
    cli_dkim_reader signed_body;    /* those fields, then the body (cli/dkim_send.c) */
    const char **rcpts;             /* its recipients' addresses, while it is being sent */
    daemon_sent_tee *sent;          /* save_sent: its copy for Sent, or NULL (daemon_sent.h) */
} attempt;

/* One batch of claims: messages of one account under one lease. */
typedef struct batch {
    pigeon_spool_entry **jobs;       /* the claims (owned) */
    size_t count;                    /* number of jobs */
    attempt *at;                     /* one attempt per job (owned) */
    pigeon_spool_record_item *items; /* room for count items, for recording */
    pigeon_spool_entry **spare;      /* room for count claims, for renewing and releasing */
    size_t pending;                  /* attempts in JOB_PENDING */
    const daemon_conf *fail_conf;    /* settings whose connection failed in this batch */
    pigeon_send_result fail_res;     /* that failure (shared by the batch's other messages) */
    const pigeon_spool_entry *last;  /* the job conf and acct were looked up for, or NULL */
    const daemon_conf *conf;         /* the settings of last's account and sender */
    daemon_account *acct;            /* last's account */
} batch;

static atomic_int worker_count;

/* ---- spool writes ----
 * The workers' claims and outcomes go through the daemon's one shared handle, behind a
 * mutex (deliveries only append to its outcome journal, without it: locked_record): SQLite lets one
 * writer in at a time, connections of one process contending for the lock sleep in the busy handler
 * (milliseconds each), and each write by another connection throws away a connection's page cache.
 * One writer keeps its cache warm and never waits on itself; another daemon on the same file still
 * meets the busy handler. Bodies are read through each worker's own handle: in WAL mode readers
 * never block the writer. */

/* The handle for claims and outcomes, taken (then given back with writer_done): the
 * shared one under the lock, or on PostgreSQL the worker's own connection without it:
 * the server runs the workers' statements side by side (row locks, SKIP LOCKED), where
 * one shared connection made each worker's outcome wait for the others' round trips. */
static pigeon_spool *writer(worker *w)
{
    if (w->own)
        return w->spool;
    pthread_mutex_lock(&w->d->spool_lock);
    return w->d->spool;
}

static void writer_done(worker *w)
{
    if (!w->own)
        pthread_mutex_unlock(&w->d->spool_lock);
}

static pigeon_err locked_claim(worker *w, const char *account, int64_t now, size_t max,
                               pigeon_spool_entry ***jobs, size_t *count)
{
    pigeon_spool *sp = writer(w);
    size_t inline_max = INLINE_BUDGET / max < INLINE_MAX ? INLINE_BUDGET / max : INLINE_MAX;
    pigeon_err e = pigeon_spool_claim_batch(sp, w->owner, account, now, w->lease_ms, max,
                                            inline_max, jobs, count);
    if (e != PIGEON_OK)
        snprintf(w->error, sizeof w->error, "%s", pigeon_spool_error(sp));
    writer_done(w);
    return e;
}

static void locked_renew(worker *w, pigeon_spool_entry *const *jobs, size_t n, int64_t until_ms)
{
    pigeon_spool_renew_batch(writer(w), jobs, n, until_ms, NULL);
    writer_done(w);
}

/* Whether every outcome of the n items is a delivery. */
static int all_delivered(const pigeon_spool_record_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < items[i].n; k++)
            if (items[i].outcomes[k].state != PIGEON_SPOOL_DELIVERED)
                return 0;
    return 1;
}

/* Records outcomes. Deliveries go to the shared handle's outcome journal without the
 * lock (pigeon_spool_journal_delivered): a worker whose message was answered records it
 * at once instead of waiting, its connection idle, for another's claim or sync (which
 * hold the lock for a whole batch). The rest, and the first record (which opens the
 * journal), take the lock. */
static pigeon_err locked_record(worker *w, pigeon_spool_record_item *items, size_t n, int64_t now)
{
    if (!w->own && all_delivered(items, n)) {
        pigeon_err e =
            pigeon_spool_journal_delivered(w->d->spool, items, n, now, w->error, sizeof w->error);
        if (e != PIGEON_ERR_UNSUPPORTED)
            return e;
    }
    pigeon_spool *sp = writer(w);
    pigeon_err e = pigeon_spool_record_batch(sp, items, n, now);
    if (e != PIGEON_OK)
        snprintf(w->error, sizeof w->error, "%s", pigeon_spool_error(sp));
    writer_done(w);
    return e;
}

/* Applies the journaled outcomes under the lock, then flushes the write-ahead log through
 * the worker's own descriptor without it: the other workers keep recording during the
 * flush instead of queueing behind it. fdatasync of any descriptor flushes the file's
 * data, so every commit made before it starts is durable when it returns. Without that
 * descriptor (the log not open yet), the locked pigeon_spool_sync does both. */
static void locked_sync(worker *w)
{
    char wal[sizeof w->d->spool_path + 8];
    if (!w->own && w->wal_fd < 0 &&
        snprintf(wal, sizeof wal, "%s-wal", w->d->spool_path) < (int)sizeof wal)
        w->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    pigeon_spool *sp = writer(w);
    pigeon_err e = w->wal_fd >= 0 ? pigeon_spool_apply(sp) : pigeon_spool_sync(sp);
    if (e != PIGEON_OK)
        snprintf(w->error, sizeof w->error, "%s", pigeon_spool_error(sp));
    writer_done(w);
    if (e == PIGEON_OK && w->wal_fd >= 0 && fdatasync(w->wal_fd) != 0) {
        e = errno == ENOSPC || errno == EDQUOT ? PIGEON_ERR_NOSPACE : PIGEON_ERR_IO;
        snprintf(w->error, sizeof w->error, "spool: flushing the write-ahead log: %s",
                 strerror(errno));
    }
    if (e != PIGEON_OK) {
        eventlog_event ev;
        eventlog_event_init(&ev, EVENTLOG_ERROR, "sync_failed");
        eventlog_add_str(&ev, "worker", w->owner);
        eventlog_add_str(&ev, "text", w->error);
        eventlog_write(w->d->log, &ev);
    }
}

static void locked_release(worker *w, pigeon_spool_entry *const *jobs, size_t n, int64_t now)
{
    pigeon_spool_release_batch(writer(w), jobs, n, now);
    writer_done(w);
}

static void locked_throttle(worker *w, const char *account, int64_t until_ms, const char *reason)
{
    pigeon_spool_throttle(writer(w), account, until_ms, reason);
    writer_done(w);
}

/* ---- connections ---- */

static void close_conn(worker *w)
{
    if (w->smtp == NULL)
        return;
    pigeon_smtp_quit(w->smtp);
    pigeon_smtp_free(w->smtp);
    w->smtp = NULL;
    w->conf = NULL;
    pthread_mutex_lock(&w->d->lock);
    if (w->account != NULL && w->account->connections > 0)
        w->account->connections--;
    pthread_mutex_unlock(&w->d->lock);
    w->account = NULL;
    pigeon_metrics_gauge_add(w->d->metrics.connections, NULL, -1);
}

/* Connects with conf; the connection counts against acct (already reserved). Returns 0,
 * or -1 with res describing the failure (the reservation is then given back). */
static int open_conn(worker *w, const daemon_conf *conf, daemon_account *acct,
                     pigeon_send_result *res)
{
    pigeon_smtp *s = NULL;
    pigeon_err e = pigeon_smtp_new(&conf->opts, &s);
    if (e == PIGEON_OK)
        e = pigeon_smtp_connect(s, res);
    else {
        res->fail_class = PIGEON_FAIL_CONFIG;
        res->err = e;
        snprintf(res->errmsg, sizeof res->errmsg, "%s", pigeon_strerror(e));
    }
    if (e != PIGEON_OK) {
        pigeon_smtp_free(s);
        pthread_mutex_lock(&w->d->lock);
        acct->connections--;
        pthread_mutex_unlock(&w->d->lock);
        return -1;
    }
    w->smtp = s;
    w->conf = conf;
    w->account = acct;
    pigeon_metrics_gauge_add(w->d->metrics.connections, NULL, 1);
    return 0;
}

/* ---- limits ---- */

/*
 * Applies the account's limits to the next message: the daily limit (reached: the
 * account is throttled in the spool until the next UTC day), the connection limit (when
 * a new connection is needed and none is free: try again shortly), and the rate (the
 * message's start slot is written to *slot_ms). Returns 0 to go on, -1 when the claim
 * must be given back; hint is the messages left in the batch. With no_wait (a message pipelined
 * behind another), nothing is taken and -1 returned when the message would have to wait for its
 * rate slot or hits the daily limit: the caller ends the pipeline and comes back the ordinary way.
 */
static int take_limits(worker *w, daemon_account *a, int need_conn, int no_wait, long hint,
                       int64_t *slot_ms)
{
    daemon_state *d = w->d;
    int64_t now = daemon_now_ms();
    int64_t day = now / DAY_MS;
    int verdict = 0;
    pthread_mutex_lock(&d->lock);
    int shared = daemon_limits_shared(d, a); /* every daemon on the spool counts together */
    if (!shared && a->day != day) {
        a->day = day;
        a->sent_today = 0;
    }
    if (!shared && a->daily_limit > 0 && a->sent_today >= a->daily_limit)
        verdict = no_wait ? -1 : -2;
    else if (need_conn && a->max_connections > 0 && a->connections >= a->max_connections)
        verdict = -1;
    else if (shared) {
        verdict = daemon_limits_take(d, a, now, no_wait, hint, slot_ms);
        if (verdict == 0 && need_conn)
            a->connections++;
    } else if (no_wait && a->rate_per_second > 0 && a->next_slot_ms > now)
        verdict = -1;
    else {
        if (need_conn)
            a->connections++;
        a->sent_today++;
        *slot_ms = now;
        if (a->rate_per_second > 0) {
            *slot_ms = a->next_slot_ms > now ? a->next_slot_ms : now;
            a->next_slot_ms = *slot_ms + (int64_t)(1000.0 / a->rate_per_second);
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (verdict == -2)
        locked_throttle(w, a->name, (day + 1) * DAY_MS, "daily_limit reached");
    return verdict < 0 ? -1 : 0;
}

/* ---- outcomes ---- */

/* Our classification of a session failure, as lib/spool/retry.h reads it. */
static pigeon_err class_err(const pigeon_send_result *res)
{
    switch (res->fail_class) {
    case PIGEON_FAIL_NETWORK:
        return res->err == PIGEON_ERR_TIMEOUT ? PIGEON_ERR_TIMEOUT : PIGEON_ERR_NETWORK;
    case PIGEON_FAIL_TLS: /* a certificate that does not verify is permanent (CONFIG) */
        return res->err == PIGEON_ERR_CONFIG ? PIGEON_ERR_CONFIG : PIGEON_ERR_TLS;
    case PIGEON_FAIL_AUTH:
        return PIGEON_ERR_AUTH;
    case PIGEON_FAIL_REJECTED:
        return PIGEON_ERR_REJECTED;
    case PIGEON_FAIL_PROTOCOL:
        return PIGEON_ERR_PROTOCOL;
    case PIGEON_FAIL_TOO_LARGE:
        return PIGEON_ERR_TOO_LARGE;
    case PIGEON_FAIL_DATA:
        return PIGEON_ERR_UNSUPPORTED; /* the stored message cannot be sent as it is */
    case PIGEON_FAIL_CONFIG:
        return PIGEON_ERR_CONFIG;
    case PIGEON_FAIL_DEFERRED:
    default:
        return res->err != PIGEON_OK ? res->err : PIGEON_ERR_DEFERRED;
    }
}

/* The failure of recipient i: its own reply if it got one, else the session's. */
static pg_retry_failure rcpt_failure(const attempt *at, size_t i)
{
    const pigeon_send_result *res = &at->res;
    const pigeon_rcpt_result *rr = i < res->rcpt_count ? &res->rcpts[i] : NULL;
    pg_retry_failure f;
    memset(&f, 0, sizeof f);
    if (at->local_error != NULL) {
        f.err = PIGEON_ERR_IO; /* a local problem (the account cannot be read): temporary */
        f.text = at->local_error;
    } else if (rr != NULL && rr->code >= 400 && rr->code < 600) {
        f.smtp_code = rr->code;
        f.enhanced_code = rr->enhanced[0] ? rr->enhanced : NULL;
        f.text = rr->text;
        f.err = rr->code >= 500 ? PIGEON_ERR_REJECTED : PIGEON_ERR_DEFERRED;
    } else {
        f.smtp_code = res->code >= 400 && res->code < 600 ? res->code : 0;
        f.enhanced_code = res->enhanced[0] ? res->enhanced : NULL;
        f.text = res->reply_text != NULL ? res->reply_text : res->errmsg;
        f.err = class_err(res);
    }
    return f;
}

/* Fills at->outcomes from at->res (or at->local_error) with the retry policy. */
static void decide(daemon_state *d, attempt *at)
{
    const pigeon_spool_entry *job = at->job;
    int64_t now = daemon_now_ms();
    for (size_t i = 0; i < job->rcpt_count; i++) {
        pigeon_spool_outcome *o = &at->outcomes[i];
        const pigeon_rcpt_result *rr = i < at->res.rcpt_count ? &at->res.rcpts[i] : NULL;
        o->rcpt = i;
        if (at->local_error == NULL && rr != NULL && rr->status == PIGEON_RCPT_ACCEPTED) {
            /* The reply to the final dot says most ("250 2.0.0 queued as ..."); after a
             * partial failure the session's reply is about the others. */
            int whole = at->res.status == PIGEON_SEND_SENT && at->res.code != 0;
            o->state = PIGEON_SPOOL_DELIVERED;
            o->smtp_code = whole ? at->res.code : rr->code;
            o->enhanced_code = whole ? at->res.enhanced : rr->enhanced;
            o->text = whole ? at->res.reply_text : rr->text;
            if (o->enhanced_code != NULL && o->enhanced_code[0] == '\0')
                o->enhanced_code = NULL;
            continue;
        }
        pg_retry_failure f = rcpt_failure(at, i);
        pg_retry_decision dec;
        uint64_t random = 0;
        pg_random_bytes(&random, sizeof random);
        int attempt_no = job->rcpts[i].attempts > 0 ? job->rcpts[i].attempts : 1;
        if (pg_retry_decide(&d->policy, &f, attempt_no, job->created_ms, now, random, &dec) !=
            PIGEON_OK) {
            dec.action = PG_RETRY_AGAIN; /* cannot judge: keep the mail, try later */
            dec.retry_at_ms = now + d->policy.base_ms;
            dec.throttle_account = 0;
        }
        o->state = dec.action == PG_RETRY_AGAIN ? PIGEON_SPOOL_DEFERRED : PIGEON_SPOOL_FAILED;
        o->next_ms = dec.action == PG_RETRY_AGAIN ? dec.retry_at_ms : 0;
        o->err = f.err;
        o->smtp_code = f.smtp_code;
        o->enhanced_code = f.enhanced_code;
        o->text = f.text;
        if (dec.throttle_account && dec.account_until_ms > at->throttle_until_ms)
            at->throttle_until_ms = dec.account_until_ms;
    }
}

static const char *outcome_name(pigeon_spool_state s)
{
    return s == PIGEON_SPOOL_DELIVERED  ? "delivered"
           : s == PIGEON_SPOOL_DEFERRED ? "deferred"
                                        : "failed";
}

/* One event per recipient of the attempt. */
static void log_attempt(worker *w, const attempt *at, int64_t duration_ms)
{
    const pigeon_spool_entry *job = at->job;
    for (size_t i = 0; i < job->rcpt_count; i++) {
        const pigeon_spool_outcome *o = &at->outcomes[i];
        eventlog_level level = o->state == PIGEON_SPOOL_DELIVERED  ? EVENTLOG_INFO
                               : o->state == PIGEON_SPOOL_DEFERRED ? EVENTLOG_WARNING
                                                                   : EVENTLOG_ERROR;
        eventlog_event e;
        eventlog_event_init(&e, level, "delivery");
        eventlog_add_str(&e, "queue_id", job->queue_id);
        eventlog_add_str(&e, "message_id", job->message_id[0] ? job->message_id : NULL);
        eventlog_add_str(&e, "account", job->account);
        eventlog_add_str(&e, "from", job->mail_from);
        eventlog_add_str(&e, "rcpt", job->rcpts[i].address);
        eventlog_add_str(&e, "result", outcome_name(o->state));
        if (o->smtp_code != 0)
            eventlog_add_int(&e, "code", o->smtp_code);
        eventlog_add_str(&e, "enhanced_code", o->enhanced_code);
        if (o->state != PIGEON_SPOOL_DELIVERED) {
            eventlog_add_str(&e, "class",
                             at->local_error ? "local"
                                             : pigeon_fail_class_name(at->res.fail_class));
            eventlog_add_str(&e, "stage", at->res.stage);
            eventlog_add_str(&e, "text", o->text);
        }
        eventlog_add_int(&e, "attempt", job->rcpts[i].attempts);
        if (o->state == PIGEON_SPOOL_DEFERRED)
            eventlog_add_time_ms(&e, "next_attempt", o->next_ms);
        eventlog_add_int(&e, "duration_ms", duration_ms);
        eventlog_add_str(&e, "worker", w->owner);
        eventlog_write(w->d->log, &e);
    }
}

/* Counts the attempt in the standard metrics. */
static void count_attempt(worker *w, const attempt *at, int64_t duration_ms)
{
    const pigeon_metrics_std *m = &w->d->metrics;
    unsigned n[PIGEON_SPOOL_NSTATES] = {0};
    for (size_t i = 0; i < at->job->rcpt_count; i++)
        n[at->outcomes[i].state]++;
    unsigned delivered = n[PIGEON_SPOOL_DELIVERED];
    const char *result = delivered == at->job->rcpt_count ? "sent"
                         : delivered > 0                  ? "partial"
                         : n[PIGEON_SPOOL_DEFERRED] > 0   ? "deferred"
                                                          : "failed";
    pigeon_metrics_count_attempt(m, (double)duration_ms / 1000.0);
    pigeon_metrics_count_message(m, result);
    pigeon_metrics_count_recipients(m, "sent", delivered);
    pigeon_metrics_count_recipients(m, "deferred", n[PIGEON_SPOOL_DEFERRED]);
    pigeon_metrics_count_recipients(m, "failed", n[PIGEON_SPOOL_FAILED]);
    if (delivered < at->job->rcpt_count && at->local_error == NULL) {
        int code = at->res.code >= 400 && at->res.code < 600 ? at->res.code : 0;
        for (size_t i = 0; code == 0 && i < at->res.rcpt_count; i++)
            if (at->res.rcpts[i].code >= 400 && at->res.rcpts[i].code < 600)
                code = at->res.rcpts[i].code;
        pigeon_metrics_count_smtp_error(m, code, class_err(&at->res));
    }
}

/* ---- batches: leases, recording, giving back ---- */

/* Renews the lease of every message of the batch not yet recorded, when less than the
 * next call's bound is left on job i's. Returns 0 while job i's lease is held. */
static int ensure_lease(worker *w, batch *b, size_t i, const daemon_conf *conf)
{
    int64_t now = daemon_now_ms();
    int64_t need = conf->lease_ms - 4000;
    if (b->jobs[i]->lease_until_ms - now >= need)
        return 0;
    size_t n = 0;
    /* Outcomes recorded but not yet synced keep their recipients in flight under the
     * lease: applied first, they need no renewal. */
    locked_sync(w);
    for (size_t k = 0; k < b->count; k++)
        if (b->at[k].state == JOB_WAITING || b->at[k].state == JOB_PENDING)
            b->spare[n++] = b->jobs[k];
    locked_renew(w, b->spare, n, now + conf->lease_ms);
    return b->jobs[i]->lease_until_ms - now >= need ? 0 : -1;
}

static void log_record_failed(worker *w, const char *queue_id)
{
    eventlog_event ev;
    eventlog_event_init(&ev, EVENTLOG_ERROR, "record_failed");
    eventlog_add_str(&ev, "queue_id", queue_id);
    eventlog_add_str(&ev, "text", w->error);
    eventlog_write(w->d->log, &ev);
}

/* Records the outcomes of every pending attempt in one commit (first of all), then logs
 * and counts them. Returns -1, keeping them pending, when the spool could not be written
 * (disk full, I/O error, locked): they are recorded at the next try. */
static int batch_flush(worker *w, batch *b)
{
    size_t n = 0;
    if (b->pending == 0)
        return 0;
    for (size_t k = 0; k < b->count; k++)
        if (b->at[k].state == JOB_PENDING)
            b->items[n++] = (pigeon_spool_record_item){b->jobs[k], b->at[k].outcomes,
                                                       b->jobs[k]->rcpt_count, 0};
    pigeon_err e = locked_record(w, b->items, n, daemon_now_ms());
    for (size_t k = 0; e != PIGEON_OK && k < n; k++)
        if (e != PIGEON_ERR_STATE || b->items[k].lost > 0)
            log_record_failed(w, b->items[k].job->queue_id);
    if (e != PIGEON_OK && e != PIGEON_ERR_STATE)
        return -1;
    for (size_t k = 0; k < b->count; k++) {
        attempt *at = &b->at[k];
        if (at->state != JOB_PENDING)
            continue;
        log_attempt(w, at, at->end_ms - at->start_ms);
        count_attempt(w, at, at->end_ms - at->start_ms);
        at->state = JOB_DONE;
    }
    b->pending = 0;
    return 0;
}

/* Records the pending outcomes, trying again every poll interval while the spool cannot
 * be written (a full disk is freed, a lock released): sending on without recording would
 * send these messages again later. Gives up only when the daemon stops. */
static int flush_until_recorded(worker *w, batch *b)
{
    while (batch_flush(w, b) != 0) {
        if (atomic_load(&w->d->stopping))
            return -1;
        daemon_nap(w->d, w->d->o.poll_ms);
    }
    return 0;
}

/* Gives back, in one commit, the messages of the batch that were not sent. */
static void batch_release(worker *w, batch *b)
{
    size_t n = 0;
    for (size_t k = 0; k < b->count; k++)
        if (b->at[k].state == JOB_WAITING || b->at[k].state == JOB_RELEASE)
            b->spare[n++] = b->jobs[k];
    if (n > 0)
        locked_release(w, b->spare, n, daemon_now_ms());
}

/* Decides the outcomes of attempt at, which then waits to be recorded with the batch's
 * others. A throttle hint is applied at once. */
static void settle(worker *w, batch *b, attempt *at)
{
    decide(w->d, at);
    at->end_ms = daemon_now_ms();
    at->state = JOB_PENDING;
    b->pending++;
    if (at->throttle_until_ms > 0)
        locked_throttle(w, at->job->account, at->throttle_until_ms,
                        at->res.reply_text ? at->res.reply_text : at->res.errmsg);
}

/* A copy of a connection failure (no recipients; its own reply text). */
static void copy_failure(pigeon_send_result *to, const pigeon_send_result *from)
{
    pigeon_send_result_cleanup(to);
    *to = *from;
    to->rcpts = NULL;
    to->rcpt_count = 0;
    to->reply_text = from->reply_text != NULL ? strdup(from->reply_text) : NULL;
}

/* ---- one message ---- */

/* Gives back the connection slot take_limits() reserved but that was not used. */
static void unreserve(worker *w, daemon_account *acct)
{
    pthread_mutex_lock(&w->d->lock);
    if (acct->connections > 0)
        acct->connections--;
    pthread_mutex_unlock(&w->d->lock);
}

/* The settings and account of job, looked up again only when its account or sender
 * differs from the previous job's (a batch is of one account, usually of one sender; a
 * SIGHUP is seen at the next batch). */
static void lookup(daemon_state *d, batch *b, const pigeon_spool_entry *job)
{
    if (b->last != NULL && strcmp(b->last->account, job->account) == 0 &&
        strcmp(b->last->mail_from, job->mail_from) == 0 && b->conf != NULL && b->acct != NULL)
        return;
    b->conf = daemon_conf_get(d, job->account, job->mail_from);
    pthread_mutex_lock(&d->lock);
    b->acct = daemon_account_get(d, job->account);
    pthread_mutex_unlock(&d->lock);
    b->last = job;
}

/* A run of the batch's jobs pipelined over one connection (pigeon_smtp_send_pipelined):
 * job first was checked by process(); each following one is pulled only when it can go
 * at once over the same connection. */
typedef struct run {
    worker *w;               /* the worker */
    batch *b;                /* the batch */
    const daemon_conf *conf; /* the connection's settings */
    daemon_account *acct;    /* the connection's account */
    size_t first;            /* the job process() checked */
    size_t next;             /* the next job to pull */
    size_t resume;           /* where the batch goes on after the run */
    int stop;                /* the rest of the batch must be given back */
} run;

/* Whether job i can follow in the pipeline: the same settings and account as the open
 * connection, its lease held for a whole send, and its limits met without waiting. */
static int can_follow(run *r, size_t i)
{
    worker *w = r->w;
    batch *b = r->b;
    int64_t slot = 0;
    if (atomic_load(&w->d->stopping) || b->at[i].outcomes == NULL)
        return 0;
    lookup(w->d, b, b->jobs[i]);
    if (b->conf != r->conf || b->acct != r->acct || w->conf != r->conf || r->conf->failed)
        return 0;
    if (b->jobs[i]->lease_until_ms - daemon_now_ms() < r->conf->lease_ms - 4000)
        return 0;
    return take_limits(w, r->acct, 0, 1, (long)(b->count - i), &slot) == 0;
}

/* Gives back a message counted by take_limits() but not sent. */
static void uncount(worker *w, daemon_account *acct)
{
    pthread_mutex_lock(&w->d->lock);
    if (daemon_limits_shared(w->d, acct))
        daemon_limits_untake(acct);
    else if (acct->sent_today > 0)
        acct->sent_today--;
    pthread_mutex_unlock(&w->d->lock);
}

/* pigeon_smtp_next_fn: the next job of the run, with its body opened. */
static int run_next(void *ctx, pigeon_smtp_raw *msg)
{
    run *r = ctx;
    batch *b = r->b;
    while (!r->stop && r->next < b->count) {
        size_t i = r->next;
        attempt *at = &b->at[i];
        if (i != r->first) {
            if (!can_follow(r, i))
                return 0;
            at->start_ms = daemon_now_ms();
        }
        r->next++;
        /* DKIM hook (cli/dkim_send.c): signed now, so a rotated key applies to queued mail. */
        size_t dkim_len = 0;
        at->local_error =
            cli_dkim_spooled(&r->conf->cfg, r->w->spool, at->job, &at->dkim, &dkim_len);
        if (at->local_error != NULL) {
            settle(r->w, b, at);
            if (flush_until_recorded(r->w, b) != 0 || at->throttle_until_ms > 0)
                r->stop = 1;
            continue;
        }
        at->rcpts = calloc(at->job->rcpt_count, sizeof *at->rcpts);
        int64_t size = -1;
        if (at->rcpts == NULL ||
            pigeon_spool_job_body(r->w->spool, at->job, &at->body, &size) != PIGEON_OK) {
            /* deleted meanwhile (NOTFOUND), or no memory: give it back */
            free(at->rcpts);
            at->rcpts = NULL;
            free(at->dkim);
            at->dkim = NULL;
            at->state = JOB_RELEASE;
            continue;
        }
        for (size_t k = 0; k < at->job->rcpt_count; k++)
            at->rcpts[k] = at->job->rcpts[k].address;
        msg->from = at->job->mail_from;
        msg->rcpts = at->rcpts;
        msg->rcpt_count = at->job->rcpt_count;
        at->signed_body =
            (cli_dkim_reader){at->dkim, dkim_len, 0, pigeon_spool_body_read, at->body};
        msg->read = cli_dkim_read;
        msg->read_ctx = &at->signed_body;
        msg->size = size < 0 ? size : size + (int64_t)dkim_len;
        /* 8-bit is declared when offered (harmless for 7-bit data, RFC 6152): the spool
         * does not record whether a stored message needs it. */
        msg->is_8bit = 1;
        msg->res = &at->res;
        msg->user = at;
        daemon_sent_begin(r->w->d, r->conf, at->job, msg, &at->sent); /* save_sent hook */
        return 1;
    }
    return 0;
}

/* pigeon_smtp_done_fn: settles and records the job's outcomes at once, before the next
 * message completes: a kill -9 re-sends at most the one whose reply was being read. */
static void run_done(void *ctx, const pigeon_smtp_raw *msg, int skipped)
{
    run *r = ctx;
    attempt *at = msg->user;
    pigeon_spool_body_close(at->body);
    at->body = NULL;
    free(at->rcpts);
    at->rcpts = NULL;
    free(at->dkim);
    at->dkim = NULL;
    if (skipped) { /* never tried (an earlier message broke the session): try it again */
        daemon_sent_end(r->w->d, &at->sent, &at->res, at->job); /* nothing sent: dropped */
        uncount(r->w, r->acct);
        r->resume = (size_t)(at - r->b->at);
        return;
    }
    settle(r->w, r->b, at);
    r->w->last_used_ms = daemon_now_ms();
    if (flush_until_recorded(r->w, r->b) != 0 || at->throttle_until_ms > 0)
        r->stop = 1;
    daemon_sent_end(r->w->d, &at->sent, &at->res, at->job); /* save_sent hook: after the record */
}

/* Sends job i of the batch over the worker's connection (opened if needed), followed in
 * the same pipeline by the jobs after it that can go at once. *resume is set to the job
 * the batch goes on with. Returns -1 when the rest of the batch must be given back (the
 * account was throttled). */
static int deliver(worker *w, batch *b, size_t i, const daemon_conf *conf, daemon_account *acct,
                   int need_conn, size_t *resume)
{
    attempt *at = &b->at[i];
    if (ensure_lease(w, b, i, conf) != 0) { /* the lease was lost: leave the work */
        if (need_conn)
            unreserve(w, acct);
        at->state = JOB_LOST;
        return 0;
    }
    if (need_conn && open_conn(w, conf, acct, &at->res) != 0) {
        b->fail_conf = conf;
        copy_failure(&b->fail_res, &at->res);
        settle(w, b, at);
        return at->throttle_until_ms > 0 ? -1 : 0;
    }
    run r = {w, b, conf, acct, i, i, b->count, 0};
    pigeon_smtp_send_pipelined(w->smtp, run_next, run_done, &r);
    if (r.next == i) /* nothing was pulled: the connection is unusable */
        at->state = JOB_RELEASE, r.next = i + 1;
    *resume = r.resume < r.next ? r.resume : r.next;
    if (!pigeon_smtp_is_ready(w->smtp))
        close_conn(w);
    return r.stop ? -1 : 0;
}

/* Job i of the batch: settings, limits, then delivery. Returns -1 when the rest of the
 * batch must be given back (a limit was reached, the account throttled, stopping). */
static int process(worker *w, batch *b, size_t i, size_t *resume)
{
    daemon_state *d = w->d;
    attempt *at = &b->at[i];
    at->start_ms = daemon_now_ms();
    lookup(d, b, at->job);
    const daemon_conf *conf = b->conf;
    daemon_account *acct = b->acct;
    if (at->outcomes == NULL || conf == NULL || acct == NULL) {
        at->state = JOB_RELEASE;
        return 0;
    }
    if (conf->failed || conf == b->fail_conf) {
        if (conf->failed)
            at->local_error = conf->error;
        else
            copy_failure(&at->res, &b->fail_res);
        settle(w, b, at);
        return at->throttle_until_ms > 0 ? -1 : 0;
    }
    if (w->smtp != NULL && w->conf != conf)
        close_conn(w); /* another account or sender, or the settings were reread */
    int need_conn = w->smtp == NULL;
    int64_t slot = 0;
    w->lease_ms = conf->lease_ms;
    if (take_limits(w, acct, need_conn, 0, (long)(b->count - i), &slot) != 0) {
        at->state = JOB_RELEASE;
        daemon_nap(d, BUSY_NAP_MS);
        return -1;
    }
    if (slot > daemon_now_ms()) {
        flush_until_recorded(w, b); /* nothing waits unrecorded during the wait */
        daemon_nap(d, slot - daemon_now_ms());
    }
    if (slot > daemon_now_ms()) { /* stopping while waiting for the rate slot */
        if (need_conn)
            unreserve(w, acct);
        at->state = JOB_RELEASE;
        return -1;
    }
    return deliver(w, b, i, conf, acct, need_conn, resume);
}

/* Sends the batch's messages in order, recording each one's outcomes at once, until
 * the end, a reason to stop, or SIGTERM; then records the rest and gives back what was
 * not started. */
static void run_batch(worker *w, batch *b)
{
    for (size_t i = 0; i < b->count && !atomic_load(&w->d->stopping);) {
        size_t resume = i + 1;
        int stop = process(w, b, i, &resume);
        /* Recorded at once, before the next message: a kill -9 now re-sends at most the
         * message whose reply was being read. The commit is not flushed to disk here
         * (PIGEON_SPOOL_DEFER_SYNC); the kernel keeps it if the process dies. */
        if (flush_until_recorded(w, b) != 0 || stop != 0)
            break;
        i = resume;
    }
    flush_until_recorded(w, b);
    batch_release(w, b);
    locked_sync(w); /* the batch's outcomes survive a power cut from here on */
}

static void batch_free(batch *b)
{
    for (size_t k = 0; b->at != NULL && k < b->count; k++) {
        pigeon_send_result_cleanup(&b->at[k].res);
        free(b->at[k].outcomes);
    }
    pigeon_send_result_cleanup(&b->fail_res);
    pigeon_spool_jobs_free(b->jobs, b->count);
    free(b->at);
    free(b->items);
    free(b->spare);
    memset(b, 0, sizeof *b);
}

/* Sets up the batch's attempts for the claimed jobs. Returns -1 when out of memory (the
 * claims are then given back). */
static int batch_prepare(worker *w, batch *b)
{
    b->at = calloc(b->count, sizeof *b->at);
    b->items = calloc(b->count, sizeof *b->items);
    b->spare = calloc(b->count, sizeof *b->spare);
    if (b->at == NULL || b->items == NULL || b->spare == NULL) {
        locked_release(w, b->jobs, b->count, daemon_now_ms());
        return -1;
    }
    for (size_t k = 0; k < b->count; k++) {
        b->at[k].job = b->jobs[k];
        pigeon_send_result_init(&b->at[k].res);
        b->at[k].outcomes = calloc(b->jobs[k]->rcpt_count, sizeof *b->at[k].outcomes);
    }
    return 0;
}

/* ---- the loop ---- */

/* Claims a batch: first for the open connection's account, then for any. */
static pigeon_err claim(worker *w, batch *b)
{
    int64_t now = daemon_now_ms();
    size_t max = (size_t)w->d->o.batch;
    pigeon_err e = PIGEON_OK;
    memset(b, 0, sizeof *b);
    pigeon_send_result_init(&b->fail_res);
    if (w->smtp != NULL)
        e = locked_claim(w, w->account->name, now, max, &b->jobs, &b->count);
    if (e == PIGEON_OK && b->count == 0)
        e = locked_claim(w, NULL, now, max, &b->jobs, &b->count);
    return e;
}

/* Waits for work for up to the poll interval: on PostgreSQL until an enqueue's NOTIFY
 * arrives on the worker's own connection (pigeon_spool_wait_fd), so that new mail goes out
 * at once; the poll stays for what falls due by time (retries) and for SQLite. */
static void idle_wait(worker *w)
{
    daemon_state *d = w->d;
    int fd = pigeon_spool_wait_fd(w->spool);
    if (fd < 0) {
        daemon_nap(d, d->o.poll_ms);
        return;
    }
    int64_t end = pg_now_ms() + d->o.poll_ms;
    while (!atomic_load(&d->stopping) && pigeon_spool_notified(w->spool) <= 0) {
        int64_t left = end - pg_now_ms();
        if (left <= 0)
            return;
        /* One wait for a NOTIFY, the poll interval or SIGTERM (daemon_stop's pipe);
         * without that pipe, steps of 100 ms to see stopping. */
        int stop_fd = d->stop_pipe[0];
        struct pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
        int64_t wait = stop_fd >= 0 || left < 100 ? left : 100;
        (void)poll(p, stop_fd >= 0 ? 2 : 1, wait > INT32_MAX ? INT32_MAX : (int)wait);
    }
}

static void log_error(worker *w, const char *what)
{
    eventlog_event e;
    eventlog_event_init(&e, EVENTLOG_ERROR, what);
    eventlog_add_str(&e, "worker", w->owner);
    eventlog_add_str(&e, "text", w->error);
    eventlog_write(w->d->log, &e);
}

static void loop(worker *w)
{
    daemon_state *d = w->d;
    int errors = 0;
    while (!atomic_load(&d->stopping)) {
        if (w->smtp != NULL && w->conf->generation != daemon_generation(d))
            close_conn(w); /* SIGHUP: the settings may have changed */
        batch b;
        if (claim(w, &b) != PIGEON_OK) {
            log_error(w, "claim_failed");
            if (d->o.once && ++errors >= 5)
                break;
            daemon_nap(d, d->o.poll_ms);
            continue;
        }
        /* Recipients suppressed since they were queued fail here (daemon_suppress.c). */
        if (b.count > 0 && daemon_suppress_batch(d, w->spool, w->owner, b.jobs, &b.count) > 0 &&
            b.count == 0)
            locked_sync(w);
        if (b.count > 0) {
            if (batch_prepare(w, &b) == 0)
                run_batch(w, &b);
            batch_free(&b);
            continue;
        }
        if (b.jobs != NULL) {
            batch_free(&b);
            continue;
        }
        if (d->o.once)
            break;
        if (w->smtp != NULL && daemon_now_ms() - w->last_used_ms >= d->o.idle_ms)
            close_conn(w);
        idle_wait(w);
    }
}

/* The calling thread under SCHED_BATCH (see the top); where the system has no such
 * policy, or refuses it, the worker runs under the ordinary one. */
static void batch_policy(void)
{
#ifdef SCHED_BATCH
    struct sched_param p = {0};
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &p);
#endif
}

void *daemon_worker_main(void *arg)
{
    worker w;
    char err[300];
    batch_policy();
    memset(&w, 0, sizeof w);
    w.wal_fd = -1;
    w.d = arg;
    w.lease_ms = FIRST_LEASE_MS;
    /* PostgreSQL: the worker's own connection writes too, with the commits of the
     * daemon's handle (flushed at each sync, see the top of this file). */
    w.own = strstr(w.d->spool_path, "://") != NULL;
    int number = atomic_fetch_add(&worker_count, 1) + 1;
    snprintf(w.owner, sizeof w.owner, "%s/w%d", w.d->owner, number);
    char name[16]; /* what top -H and ps -L show (15 bytes at most) */
    snprintf(name, sizeof name, "pigeon-w%u", (unsigned)number % 10000000u);
    (void)pthread_setname_np(pthread_self(), name);
    pigeon_err opened;
    /* A full disk can keep even the open from working (the WAL index is a file): wait. */
    while (((opened = pigeon_spool_open(
                 w.d->spool_path, PIGEON_SPOOL_NO_CHECK | (w.own ? PIGEON_SPOOL_DEFER_SYNC : 0),
                 &w.spool, err, sizeof err)) == PIGEON_ERR_NOSPACE ||
            opened == PIGEON_ERR_NETWORK) &&
           !atomic_load(&w.d->stopping))
        daemon_nap(w.d, w.d->o.poll_ms);
    if (opened == PIGEON_OK)
        loop(&w);
    else {
        eventlog_event e;
        eventlog_event_init(&e, EVENTLOG_ERROR, "spool_open_failed");
        eventlog_add_str(&e, "text", err);
        eventlog_write(w.d->log, &e);
    }
    close_conn(&w);
    pigeon_spool_close(w.spool);
    if (w.wal_fd >= 0)
        close(w.wal_fd);
    if (atomic_fetch_sub(&w.d->running, 1) == 1)
        pthread_kill(w.d->main_thread, SIGUSR2); /* supervise() stops waiting */
    return NULL;
}
