/*
 * daemon.c - `pigeon daemon`: drains the spool (pigeon/spool.h) with N worker threads
 * (daemon_worker.c), until SIGTERM, or with --once until nothing is due.
 *
 * Signals are blocked in every thread and taken by the main thread with sigtimedwait(),
 * so no handler runs in the middle of a worker's SQLite or TLS call:
 *   SIGTERM, SIGINT  workers finish the message in flight, record the outcomes of their
 *                    batch, give back what they claimed but did not start, QUIT and exit;
 *   SIGHUP           the log file is reopened (after rotation) and the configuration is
 *                    read again: connections opened with the old settings are closed
 *                    before their next message.
 *
 * Several daemons (on one machine or sharing one spool file) cooperate through the
 * spool's leases: a recipient is claimed by one worker at a time, so no message is sent
 * twice by two daemons; the only duplicate left is a crash between the final dot and the
 * recording of the reply (RFC 5321 6.1 accepts that risk over losing mail). Workers
 * record each message's outcome as soon as its reply is read, so a kill -9 re-sends at
 * most one message per worker; a power cut, at most one batch per worker (outcomes reach
 * the disk once per batch: see daemon_worker.c). The leases of a daemon of this host that
 * died are given back at start and every RECLAIM_MS (pigeon_spool_reclaim), so that its
 * messages go out at once instead of after their lease (the send timeout plus 5 s).
 *
 * Metrics (--metrics-listen): the standard pigeon set (pigeon/metrics.h), with the
 * queue depth and the oldest message's age read from the spool at every scrape.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "daemon_bounces.h"
#include "daemon_sent.h"
#include "deliver.h"
#include "queue.h"
#include "sdnotify.h"
#include "secret.h"
#include "wake.h"
#include "webhook.h"

/* getopt_long values of the daemon's options. */
enum daemon_opt {
    OPT_WORKERS = 0x500,
    OPT_ONCE,
    OPT_LOG_FILE,
    OPT_LOG_FORMAT,
    OPT_METRICS_LISTEN,
    OPT_IDLE,
    OPT_BATCH,
};

/* Most workers accepted (each holds a connection and a spool handle). */
#define MAX_WORKERS 256
/* Messages a worker claims at once: 64 makes the two commits per batch (claim, outcomes)
 * cheap beside the sending, while a crash re-sends at most 64 per worker. */
#define DEFAULT_BATCH 64
/* Margin added to the send timeout for a lease: recording the outcome, clock steps. */
#define LEASE_MARGIN_MS 5000
/* How often the leases of dead daemons of this host are looked for. */
#define RECLAIM_MS 2000

/* What the metrics hooks need: their own spool handle (the HTTP thread's). */
typedef struct metrics_ctx {
    daemon_state *d;      /* the daemon_state */
    pthread_mutex_t lock; /* one scrape at a time uses the handle */
    pigeon_spool *spool;  /* opened on first scrape, read-only */
    int healthy;          /* the last refresh could read the spool */
    char reason[200];     /* why not, when not */
} metrics_ctx;

static const struct option longopts[] = {
    {"spool", required_argument, NULL, CLI_OPT_SPOOL},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"once", no_argument, NULL, OPT_ONCE},
    {"log-file", required_argument, NULL, OPT_LOG_FILE},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
    {"idle", required_argument, NULL, OPT_IDLE},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_args(int argc, char **argv, daemon_opts *o);
static int run(daemon_state *d);
static void daemon_cleanup(daemon_state *d);

int64_t daemon_now_ms(void)
{
    return pigeon_spool_now_ms();
}

void daemon_stop(daemon_state *d)
{
    if (atomic_exchange(&d->stopping, 1))
        return;
    cli_wake_set(d->stop_pipe);
    daemon_sent_wake(); /* the saver waits on its own condition */
}

int daemon_nap(daemon_state *d, int64_t ms)
{
    return cli_wake_wait(d->stop_pipe, ms, &d->stopping);
}

int cli_daemon_run(int argc, char **argv)
{
    daemon_state d;
    memset(&d, 0, sizeof d);
    cli_wake_open(d.stop_pipe);
    pthread_mutex_init(&d.lock, NULL);
    pthread_mutex_init(&d.spool_lock, NULL);
    d.o.workers = 2;
    d.o.log_dest = "-";
    d.o.log_format = EVENTLOG_JSON;
    d.o.idle_ms = 5000;
    d.o.batch = DEFAULT_BATCH;
    d.o.poll_ms = 1000;
    pg_retry_policy_default(&d.policy);
    int status = parse_args(argc, argv, &d.o);
    if (status < 0)
        status = run(&d);
    daemon_cleanup(&d);
    return status;
}

/* A positive integer option value, or -1. */
static long positive(const char *s, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > max)
        return -1;
    return v;
}

/* Reports an invalid option value; returns EX_USAGE. */
static int bad_value(int opt, const char *value)
{
    char quoted[256];
    const char *name = "?";
    for (const struct option *lo = longopts; lo->name != NULL; lo++)
        if (lo->val == opt)
            name = lo->name;
    cli_error("daemon: invalid value \"%s\" for --%s (see pigeon help daemon)",
              cli_shorten(value, quoted, sizeof quoted), name);
    return EX_USAGE;
}

/* Returns -1 to go on, or an exit status (printed). */
static int parse_args(int argc, char **argv, daemon_opts *o)
{
    int opt;
    long v;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case CLI_OPT_SPOOL:
            o->spool = optarg;
            break;
        case OPT_WORKERS:
            if ((v = positive(optarg, MAX_WORKERS)) < 0)
                goto bad_value;
            o->workers = (int)v;
            break;
        case OPT_ONCE:
            o->once = 1;
            break;
        case OPT_LOG_FILE:
            o->log_dest = optarg;
            break;
        case OPT_LOG_FORMAT:
            if (!eventlog_parse_format(optarg, &o->log_format))
                goto bad_value;
            break;
        case OPT_METRICS_LISTEN:
            o->metrics_listen = optarg;
            break;
        case OPT_IDLE:
            if ((v = positive(optarg, 3600)) < 0)
                goto bad_value;
            o->idle_ms = v * 1000;
            break;
        case OPT_BATCH:
            if ((v = positive(optarg, PIGEON_SPOOL_MAX_BATCH)) < 0)
                goto bad_value;
            o->batch = (int)v;
            break;
        case 'h':
            cli_daemon_usage(stdout);
            return 0;
        default:
            cli_error("daemon: %s %s (see pigeon help daemon)", argv[optind - 1],
                      opt == ':' ? "needs a value" : "is not a known option");
            return EX_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("daemon: unexpected argument \"%s\"", argv[optind]);
        return EX_USAGE;
    }
    return -1;
bad_value:
    return bad_value(opt, optarg);
}

/* ---- settings and accounts ---- */

/* A setting as a number, 0 when unset or invalid (no limit). */
static double setting_number(const cfg_settings *cfg, enum cfg_key k)
{
    const char *v = cfg_get(cfg, k);
    char *end = NULL;
    if (v == NULL)
        return 0;
    double x = strtod(v, &end);
    return end != v && *end == '\0' && x > 0 && x < 1e12 ? x : 0;
}

/* Applies the account's limits from freshly loaded settings (lock held). */
static void apply_limits(daemon_state *d, const char *account, const cfg_settings *cfg)
{
    daemon_account *a = daemon_account_get(d, account);
    if (a == NULL)
        return;
    a->rate_per_second = setting_number(cfg, K_RATE_PER_SECOND);
    a->daily_limit = (long)setting_number(cfg, K_DAILY_LIMIT);
    a->max_connections = (int)setting_number(cfg, K_MAX_CONNECTIONS);
}

/* Reads the account's settings as `pigeon send --account` would, with the message's
 * envelope sender as the From (presets chosen by its domain; the login defaults to it). */
static void conf_load(daemon_state *d, daemon_conf *c, const char *account, const char *mail_from)
{
    char err[600] = "";
    const char *at = strrchr(mail_from, '@');
    int rc = settings_load(&c->cfg, account, err, sizeof err);
    if (rc == 0 && strcmp(c->cfg.account, account) != 0)
        snprintf(err, sizeof err, "no account \"%s\" in the configuration", account),
            rc = EX_CONFIG;
    if (rc == 0)
        rc = settings_finish(&c->cfg, at ? at + 1 : NULL, mail_from[0] ? mail_from : NULL, err,
                             sizeof err);
    if (rc == 0) {
        deliver_opts none;
        memset(&none, 0, sizeof none);
        none.cancel = &d->stopping; /* SIGTERM stops a hanging password_command */
        if (deliver_plan_opts(&c->cfg, &none, &c->opts, &c->secret) != 0) {
            snprintf(err, sizeof err, "account \"%s\": invalid settings (see the log)", account);
            rc = EX_CONFIG;
        }
    }
    if (rc != 0) {
        c->failed = 1;
        snprintf(c->error, sizeof c->error, "%s", err);
        return;
    }
    c->lease_ms = (int64_t)c->opts.total_timeout_ms + LEASE_MARGIN_MS;
    apply_limits(d, account, &c->cfg);
}

const daemon_conf *daemon_conf_get(daemon_state *d, const char *account, const char *mail_from)
{
    size_t len = strlen(account) + strlen(mail_from) + 2;
    char *key = malloc(len);
    daemon_conf *c = NULL;
    if (key == NULL)
        return NULL;
    snprintf(key, len, "%s\n%s", account, mail_from);
    pthread_mutex_lock(&d->lock);
    for (c = d->confs; c != NULL; c = c->next)
        if (c->generation == d->generation && strcmp(c->key, key) == 0)
            break;
    if (c == NULL && (c = calloc(1, sizeof *c)) != NULL) {
        c->key = key;
        key = NULL;
        c->generation = d->generation;
        conf_load(d, c, account, mail_from);
        c->next = d->confs;
        d->confs = c;
    }
    pthread_mutex_unlock(&d->lock);
    free(key);
    return c;
}

daemon_account *daemon_account_get(daemon_state *d, const char *account)
{
    daemon_account *a;
    for (a = d->accounts; a != NULL; a = a->next)
        if (strcmp(a->name, account) == 0)
            return a;
    if ((a = calloc(1, sizeof *a)) == NULL)
        return NULL;
    snprintf(a->name, sizeof a->name, "%s", account);
    a->next = d->accounts;
    d->accounts = a;
    return a;
}

unsigned daemon_generation(daemon_state *d)
{
    pthread_mutex_lock(&d->lock);
    unsigned g = d->generation;
    pthread_mutex_unlock(&d->lock);
    return g;
}

static void daemon_cleanup(daemon_state *d)
{
    if (d->spool != NULL)
        daemon_limits_give_back(d); /* the workers have stopped: no lock needed */
    while (d->confs != NULL) {
        daemon_conf *c = d->confs;
        d->confs = c->next;
        secret_free(c->secret);
        cfg_cleanup(&c->cfg);
        free(c->key);
        free(c);
    }
    while (d->accounts != NULL) {
        daemon_account *a = d->accounts;
        d->accounts = a->next;
        free(a);
    }
    pigeon_spool_close(d->spool);
    eventlog_close(d->log);
    pigeon_metrics_free(d->metrics.registry);
    pthread_mutex_destroy(&d->lock);
    pthread_mutex_destroy(&d->spool_lock);
    cli_wake_close(d->stop_pipe);
}

/* ---- metrics ---- */

/* Refreshes the queue gauges from the spool just before a scrape. */
static void metrics_refresh(void *arg, pigeon_metrics *registry)
{
    metrics_ctx *m = arg;
    pigeon_spool_stats st;
    char err[200];
    (void)registry;
    pthread_mutex_lock(&m->lock);
    pigeon_err e = PIGEON_OK;
    if (m->spool == NULL)
        e = pigeon_spool_open(m->d->spool_path, PIGEON_SPOOL_READONLY | PIGEON_SPOOL_NO_CHECK,
                              &m->spool, err, sizeof err);
    int64_t now = daemon_now_ms();
    if (e == PIGEON_OK && (e = pigeon_spool_stats_get(m->spool, now, &st)) != PIGEON_OK)
        snprintf(err, sizeof err, "%s", pigeon_spool_error(m->spool));
    m->healthy = e == PIGEON_OK;
    if (e != PIGEON_OK) {
        snprintf(m->reason, sizeof m->reason, "spool unreadable: %.160s", err);
        pthread_mutex_unlock(&m->lock);
        return;
    }
    for (int s = 0; s < PIGEON_SPOOL_NSTATES; s++)
        pigeon_metrics_set_queue_depth(&m->d->metrics, pigeon_spool_state_name(s),
                                       (double)st.rcpts[s]);
    double age = st.oldest_pending_ms > 0 ? (double)(now - st.oldest_pending_ms) / 1000.0 : 0;
    pigeon_metrics_gauge_set(m->d->metrics.oldest_age, NULL, age < 0 ? 0 : age);
    pthread_mutex_unlock(&m->lock);
}

static int metrics_health(void *arg, char *reason, size_t reason_size)
{
    metrics_ctx *m = arg;
    if (atomic_load(&m->d->stopping)) {
        snprintf(reason, reason_size, "stopping");
        return 0;
    }
    pthread_mutex_lock(&m->lock);
    int ok = m->healthy || m->spool == NULL;
    snprintf(reason, reason_size, "%s", m->reason);
    pthread_mutex_unlock(&m->lock);
    return ok;
}

/* A wildcard address (0.0.0.0, [::], or no host) serves the metrics, which name accounts
 * and show queue sizes, to every network the host is on: said once at start. */
static void warn_wildcard_listen(const char *listen)
{
    const char *colon = strrchr(listen, ':');
    size_t host = colon != NULL ? (size_t)(colon - listen) : strlen(listen);
    static const char *const wild[] = {"", "0.0.0.0", "[::]", "::", "*", "[::0]"};
    for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
        if (strlen(wild[i]) == host && strncmp(listen, wild[i], host) == 0) {
            fprintf(stderr,
                    "pigeon: warning: --metrics-listen %s serves /metrics and /healthz on "
                    "every interface of this host; use 127.0.0.1 (or a firewall) unless "
                    "that is intended\n",
                    listen);
            return;
        }
    }
}

/* Starts the endpoint. Returns 0 or an exit status (printed). */
static int metrics_start(daemon_state *d, metrics_ctx *m, pigeon_metrics_server **server)
{
    if (pigeon_metrics_new_standard(&d->metrics) != PIGEON_OK) {
        cli_error("daemon: out of memory");
        return EX_OSERR;
    }
    if (d->o.metrics_listen == NULL)
        return 0;
    warn_wildcard_listen(d->o.metrics_listen);
    pigeon_metrics_set_refresh(d->metrics.registry, metrics_refresh, m);
    pigeon_err e =
        pigeon_metrics_serve(d->metrics.registry, d->o.metrics_listen, metrics_health, m, server);
    if (e != PIGEON_OK) {
        cli_error("daemon: cannot serve metrics on %s: %s", d->o.metrics_listen,
                  pigeon_strerror(e));
        return e == PIGEON_ERR_INVALID ? EX_USAGE : EX_UNAVAILABLE;
    }
    return 0;
}

/* ---- running ---- */

static void log_lifecycle(daemon_state *d, const char *name, eventlog_level level, const char *text)
{
    eventlog_event e;
    eventlog_event_init(&e, level, name);
    eventlog_add_str(&e, "spool", d->spool_path);
    eventlog_add_int(&e, "pid", (int64_t)getpid());
    eventlog_add_int(&e, "workers", d->o.workers);
    if (text != NULL)
        eventlog_add_str(&e, "text", text);
    eventlog_write(d->log, &e);
}

/* Opens the daemon's spool handle. When the spool cannot be written for now (the disk is
 * full, another process holds the lock, the PostgreSQL server is unreachable) the daemon waits and
 * tries again every poll interval, logging why, instead of exiting: mail already queued must still
 * go out once room comes back. SIGTERM/SIGINT end the wait. Returns 0 or an exit status (printed).
 */
static int open_spool(daemon_state *d, const sigset_t *set)
{
    char err[512];
    for (int logged = 0;; logged = 1) {
        pigeon_err e =
            pigeon_spool_open(d->spool_path, PIGEON_SPOOL_CREATE | PIGEON_SPOOL_DEFER_SYNC,
                              &d->spool, err, sizeof err);
        if (e == PIGEON_OK)
            return 0;
        if ((e != PIGEON_ERR_NOSPACE && e != PIGEON_ERR_TIMEOUT && e != PIGEON_ERR_NETWORK) ||
            d->o.once) {
            cli_error("cannot open the spool %s: %s", d->spool_path, err);
            return cli_exit_status(e);
        }
        if (!logged)
            log_lifecycle(d, "spool_unavailable", EVENTLOG_ERROR, err);
        struct timespec wait = {(time_t)(d->o.poll_ms / 1000),
                                (long)(d->o.poll_ms % 1000) * 1000000L};
        int sig = sigtimedwait(set, NULL, &wait);
        if (sig == SIGTERM || sig == SIGINT) {
            cli_error("cannot open the spool %s: %s", d->spool_path, err);
            return EX_TEMPFAIL;
        }
    }
}

/* Opens the log and checks the spool. Returns 0 or an exit status (printed). */
static int prepare(daemon_state *d, const sigset_t *set)
{
    pigeon_err e = PIGEON_OK;
    if ((d->log = eventlog_open(d->o.log_dest, d->o.log_format, &e)) == NULL) {
        cli_error("daemon: cannot open the log %s: %s", d->o.log_dest,
                  e == PIGEON_ERR_IO ? strerror(errno) : pigeon_strerror(e));
        return EX_CANTCREAT;
    }
    int status = queue_spool_path(d->o.spool, 1, d->spool_path, sizeof d->spool_path);
    if (status != 0)
        return status;
    /* Created if missing and quick-checked once here; the workers' own handles (for the
     * bodies) skip the check. */
    if ((status = open_spool(d, set)) != 0)
        return status;
    char host[100] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(d->owner, sizeof d->owner, "%s:%ld", host, (long)getpid());
    return 0;
}

/* Gives back at once the leases of daemons of this host that are gone (killed, crashed,
 * or from before a reboot), so that their messages need not wait for the leases to end. */
static void reclaim(daemon_state *d)
{
    size_t n = 0;
    pthread_mutex_lock(&d->spool_lock);
    pigeon_err e = pigeon_spool_reclaim(d->spool, daemon_now_ms(), &n);
    char text[300];
    snprintf(text, sizeof text, "%s", e != PIGEON_OK ? pigeon_spool_error(d->spool) : "");
    pthread_mutex_unlock(&d->spool_lock);
    if (e != PIGEON_OK || n > 0) {
        eventlog_event ev;
        eventlog_event_init(&ev, e != PIGEON_OK ? EVENTLOG_ERROR : EVENTLOG_INFO,
                            e != PIGEON_OK ? "reclaim_failed" : "reclaimed");
        eventlog_add_int(&ev, "recipients", (int64_t)n);
        eventlog_add_str(&ev, "text", e != PIGEON_OK ? text : "leases of a process that is gone");
        eventlog_write(d->log, &ev);
    }
}

/* Waits for signals until the workers are done: the last one to end wakes it with
 * SIGUSR2 (before, `--once` exited on the next 200 ms tick: a tenth of a 2 s drain). */
static void supervise(daemon_state *d, const sigset_t *set)
{
    int64_t last_reclaim = daemon_now_ms();
    while (atomic_load(&d->running) > 0) {
        if (daemon_now_ms() - last_reclaim >= RECLAIM_MS) {
            reclaim(d);
            last_reclaim = daemon_now_ms();
        }
        /* Signals end the wait at once; the tick is for the reclaim and the watchdog. */
        struct timespec tick = sdnotify_tick();
        sdnotify_watchdog();
        int sig = sigtimedwait(set, NULL, &tick);
        if (sig == SIGHUP) {
            sdnotify_reloading();
            eventlog_reopen(d->log);
            pthread_mutex_lock(&d->lock);
            d->generation++;
            pthread_mutex_unlock(&d->lock);
            log_lifecycle(d, "reload", EVENTLOG_INFO, "log reopened, configuration reread");
            sdnotify_send("READY=1\nSTATUS=delivering (configuration reread)");
        } else if (sig == SIGTERM || sig == SIGINT) {
            sdnotify_send("STOPPING=1\nSTATUS=stopping: finishing the messages in flight");
            if (!atomic_load(&d->stopping))
                log_lifecycle(d, "stopping", EVENTLOG_INFO, strsignal(sig));
            daemon_stop(d);
        }
    }
}

static int run(daemon_state *d)
{
    pthread_t threads[MAX_WORKERS];
    pigeon_metrics_server *server = NULL;
    webhook_runner *hooks = NULL;
    metrics_ctx m = {.d = d, .lock = PTHREAD_MUTEX_INITIALIZER};
    sigset_t set;
    int started = 0;
    /* Signals are taken by supervise() with sigtimedwait; blocked first thing, so that a
     * SIGTERM during start-up waits for it instead of killing the process. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR2); /* the last worker has ended: stop waiting at once */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    d->main_thread = pthread_self();
    signal(SIGPIPE, SIG_IGN);
    sdnotify_init(); /* before any thread: it edits the environment */
    int status = prepare(d, &set);
    if (status == 0)
        status = metrics_start(d, &m, &server);
    if (status != 0)
        goto done;
    /* Webhooks first: the outbox records every outcome of the workers (cli/webhook.h). */
    if (status == 0)
        status = webhook_start(d, &hooks);
    if (status != 0)
        goto done;
    log_lifecycle(d, "start", EVENTLOG_INFO, d->o.once ? "once" : NULL);
    reclaim(d);
    atomic_store(&d->running, d->o.workers);
    for (; started < d->o.workers; started++) {
        if (pthread_create(&threads[started], NULL, daemon_worker_main, d) != 0) {
            cli_error("daemon: cannot start worker %d: %s", started + 1, strerror(errno));
            daemon_stop(d);
            atomic_fetch_sub(&d->running, d->o.workers - started);
            status = EX_OSERR;
            break;
        }
    }
    pthread_t bounce_thread;
    int bounce_check = status == 0 && !d->o.once && daemon_bounces_start(d, &bounce_thread) == 0;
    pthread_t sent_thread; /* the copies in Sent (daemon_sent.h) */
    int sent_saver = status == 0 && !d->o.once && daemon_sent_start(d, &sent_thread) == 0;
    if (status == 0)
        sdnotify_send("READY=1\nSTATUS=delivering");
    supervise(d, &set);
    if (bounce_check)
        pthread_join(bounce_thread, NULL);
    sdnotify_send("STOPPING=1");
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (sent_saver)
        pthread_join(sent_thread, NULL);
    else if (status == 0 && d->o.once)
        daemon_sent_pass(d);
    log_lifecycle(d, "stop", EVENTLOG_INFO, NULL);
done:
    webhook_stop(hooks);
    pigeon_metrics_server_stop(server);
    pigeon_spool_close(m.spool);
    pthread_mutex_destroy(&m.lock);
    return status;
}

void cli_daemon_usage(FILE *out)
{
    fputs("usage: pigeon daemon [--workers N] [--batch N] [--once] [--spool PATH]\n"
          "                     [--log-file DEST] [--log-format json|logfmt]\n"
          "                     [--metrics-listen ADDR:PORT]\n"
          "\n"
          "Delivers the messages of the spool (filled by `pigeon send --queue` and by\n"
          "`pigeon sendmail` when the server cannot be reached) with each message's account.\n"
          "Temporary failures (4xx, timeouts, refused connections) are retried with\n"
          "exponential backoff and full jitter (first within 5 minutes, at most hourly,\n"
          "for 5 days); permanent ones (5xx, authentication) fail at once. Recipients\n"
          "accepted by the server are recorded at once and never sent again: a kill -9\n"
          "re-sends at most one message per worker, a power cut at most one batch per\n"
          "worker. Messages claimed by a daemon of this host that died are taken over at\n"
          "once; those of another host when their lease ends.\n"
          "\n"
          "Options:\n"
          "  --workers N             worker threads (default 2); each keeps its connection\n"
          "                          open for the next message of the same account\n"
          "  --batch N               messages a worker claims at once (default 64, at most\n"
          "                          1024); their outcomes reach the disk together, so a\n"
          "                          power cut re-sends at most N per worker\n"
          "  --once                  deliver what is due now, then exit (cron, tests)\n"
          "  --idle SECONDS          close a connection idle this long (default 5)\n"
          "  --spool PATH            the spool file (default $XDG_STATE_HOME/pigeon/spool.db,\n"
          "                          else ~/.local/state/pigeon/spool.db)\n"
          "  --log-file DEST         event log: a file, syslog, or - for stderr (default)\n"
          "  --log-format FORMAT     json (default) or logfmt; one event per recipient and\n"
          "                          attempt\n"
          "  --metrics-listen A:P    serve /metrics (Prometheus) and /healthz, e.g.\n"
          "                          127.0.0.1:9464\n"
          "  -h, --help              show this help\n"
          "\n"
          "Account limits (pigeon.conf(5)): rate_per_second and daily_limit (messages per\n"
          "UTC day), shared by every daemon on the spool; max_connections, per process. An\n"
          "account with bounce_check = 10m has its IMAP inbox read for bounces every 10\n"
          "minutes (pigeon bounces fetch).\n"
          "\n"
          "Webhooks (webhook = URL in pigeon.conf, pigeon key create --webhook URL): every\n"
          "recipient's outcome is POSTed as signed JSON from an outbox in the spool, retried\n"
          "until answered 2xx (see pigeon webhook; read at start, not on SIGHUP).\n"
          "\n"
          "Signals: SIGTERM/SIGINT finish the message in flight, record every outcome and\n"
          "exit (unsent claimed messages are given back); SIGHUP reopens\n"
          "the log file and reads the configuration again.\n",
          out);
}
