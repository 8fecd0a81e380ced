/*
 * daemon.h - the shared state of `pigeon daemon` (daemon.c: options, signals, accounts,
 * metrics; daemon_worker.c: the delivery workers).
 *
 * Workers are threads. Each has its own spool handle (a handle is single-threaded) and at
 * most one SMTP connection, which it keeps for the next message of the same account and
 * settings and closes when it has been idle for a while. A worker claims a batch of
 * messages of one account at once and records their outcomes in one commit (see
 * daemon_worker.c for what that changes after a crash). What workers share lives in a
 * daemon struct behind one mutex: the resolved settings of each account (daemon_conf,
 * loaded on first use and again after SIGHUP), and each account's limits and counters
 * (daemon_account: messages per second, per day, connections).
 *
 * Time: every time the daemon reasons about (due work, leases, backoff, rate slots)
 * comes from daemon_now_ms(), the spool's wall clock. Tests move time by editing the
 * spool (`pigeon queue retry --all` makes deferred mail due now), never by sleeping.
 */
#ifndef PIGEON_CLI_DAEMON_H
#define PIGEON_CLI_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "eventlog.h"
#include "pigeon/metrics.h"
#include "pigeon/smtp.h"
#include "pigeon/spool.h"
#include "spool/retry.h"

/* The command line of `pigeon daemon`. */
typedef struct daemon_opts {
    const char *spool;          /* --spool PATH, or NULL for the default */
    int workers;                /* --workers N (default 2) */
    int once;                   /* --once: deliver what is due, then exit */
    const char *log_dest;       /* --log-file PATH|syslog|- (default "-", stderr) */
    eventlog_format log_format; /* --log-format json|logfmt (default json) */
    const char *metrics_listen; /* --metrics-listen ADDR:PORT, or NULL */
    int64_t idle_ms;            /* --idle SECONDS: close a connection idle this long (5 s) */
    int batch;                  /* --batch N: messages a worker claims at once (default 64) */
    int64_t poll_ms;            /* how often an idle worker looks for due work (1 s) */
} daemon_opts;

/* The resolved settings for one (account, envelope sender): what a connection needs.
 * Immutable once loaded; kept until the daemon exits (SIGHUP adds newer ones). */
typedef struct daemon_conf {
    char *key;                /* "ACCOUNT\nMAIL_FROM", what connection reuse compares */
    unsigned generation;      /* the configuration generation it was loaded in */
    cfg_settings cfg;         /* the account's settings (the strings of opts point here) */
    pigeon_smtp_opts opts;    /* for pigeon_smtp_new() */
    char *secret;             /* the password or token, or NULL (wiped at exit) */
    int64_t lease_ms;         /* lease for one attempt: the send timeout plus a margin */
    int failed;               /* nonzero: the settings could not be loaded */
    char error[600];          /* why, when failed */
    struct daemon_conf *next; /* the next in the daemon's list */
} daemon_conf;

/* One account's limits and counters (within this daemon process). */
typedef struct daemon_account {
    char name[64];               /* the account name */
    double rate_per_second;      /* rate_per_second, 0 for no limit */
    long daily_limit;            /* daily_limit (messages per UTC day), 0 for no limit */
    int max_connections;         /* max_connections, 0 for no limit */
    int connections;             /* connections open to it now */
    int64_t next_slot_ms;        /* rate limit: the earliest start of the next message */
    int64_t day;                 /* the UTC day (days since the epoch) sent_today counts */
    long sent_today;             /* messages begun on that day */
    long pool;                   /* shared limits: tokens taken from the spool, not yet used */
    int64_t pool_at_ms;          /* shared limits: when the next of them is valid */
    int64_t pool_interval_ms;    /* shared limits: the spacing of the following ones */
    struct daemon_account *next; /* the next in the daemon's list */
} daemon_account;

/* The whole daemon. */
typedef struct daemon_state {
    daemon_opts o;              /* the command line */
    char spool_path[4096];      /* the spool file */
    char owner[160];            /* lease owner prefix: "host:pid" */
    pthread_mutex_t lock;       /* guards confs, accounts, generation */
    pthread_mutex_t spool_lock; /* serializes the use of spool */
    pigeon_spool *spool;        /* the handle for claims, renewals and outcomes */
    daemon_conf *confs;         /* loaded settings, newest first */
    daemon_account *accounts;   /* per-account limits and counters */
    unsigned generation;        /* bumped by SIGHUP: settings are read again */
    eventlog *log;              /* the event log */
    pigeon_metrics_std metrics; /* the standard metrics (registry NULL without) */
    pg_retry_policy policy;     /* the retry policy */
    atomic_int stopping;        /* SIGTERM/SIGINT: finish in-flight work and exit */
    int stop_pipe[2];           /* readable once stopping is set (daemon_stop; wake.h) */
    atomic_int running;         /* workers still running */
    pthread_t main_thread;      /* woken with SIGUSR2 by the last worker to end */
} daemon_state;

/* Sets stopping and wakes every thread waiting in daemon_nap() (or polling
 * d->stop_pipe[0]) at once. */
void daemon_stop(daemon_state *d);

/* Sleeps ms milliseconds, or less when the daemon is stopping: one wait, woken at once
 * by daemon_stop() (cli_wake_wait on stop_pipe). Returns nonzero when stopping. */
int daemon_nap(daemon_state *d, int64_t ms);

/* The daemon's one clock: wall-clock milliseconds (pigeon_spool_now_ms()). */
int64_t daemon_now_ms(void);

/* The settings for an account and envelope sender, loaded (or loaded again after a
 * SIGHUP) on first use, under d->lock (a password_command runs then). Never NULL except
 * when out of memory; check ->failed. */
const daemon_conf *daemon_conf_get(daemon_state *d, const char *account, const char *mail_from);

/* The account's limits and counters (created with no limits if unknown). Never NULL
 * except when out of memory. The caller holds d->lock, under which the fields are read
 * and written. */
daemon_account *daemon_account_get(daemon_state *d, const char *account);

/* The current configuration generation (under the lock). */
unsigned daemon_generation(daemon_state *d);

/* Shared limits (daemon_limits.c), under d->lock: whether the account's rate and daily
 * limits are kept in the spool for every daemon; take gives the next message's start
 * slot (0), or -1 (wait: give the batch back; with no_wait, the slot is not now) or -2
 * (the daily limit is reached), taking from the spool at most hint (the messages in
 * hand) at once; untake gives back a token taken but not used. give_back, once the
 * workers have stopped, returns every account's unused tokens to the spool's day. */
int daemon_limits_shared(daemon_state *d, const daemon_account *a);
int daemon_limits_take(daemon_state *d, daemon_account *a, int64_t now, int no_wait, long hint,
                       int64_t *slot_ms);
void daemon_limits_untake(daemon_account *a);
void daemon_limits_give_back(daemon_state *d);
/* Fails the claimed recipients that are on the suppression list (daemon_suppress.c):
 * checked through own, recorded through d->spool, logged, and taken out of the jobs;
 * jobs left with nobody are freed and removed (*count updated). Returns the number of
 * recipients suppressed. */
size_t daemon_suppress_batch(daemon_state *d, pigeon_spool *own, const char *worker,
                             pigeon_spool_entry **jobs, size_t *count);

/* A worker thread's body; arg is the daemon. */
void *daemon_worker_main(void *arg);

#endif
