/*
 * daemon_bounces.c - the daemon's bounce check: every bounce_check interval (per account
 * in pigeon.conf(5), e.g. "bounce_check = 10m"), one thread reads the account's IMAP
 * inbox as `pigeon bounces fetch --account NAME` does (bounces_fetch.c): bounces and
 * complaints about our messages put their addresses on the suppression list. The first
 * check of each account runs at start; each logs one "bounces" event with its counts.
 * The accounts are read at start (a SIGHUP does not add new ones; restart the daemon).
 *
 * Between checks the thread watches each account's inbox with IMAP IDLE (RFC 2177,
 * bounce_idle.h) when the server offers it: new mail triggers the check at once, so a
 * bounce suppresses its address within seconds. A watch that fails is opened again at the
 * next check; without IDLE only the interval applies.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bounce_idle.h"
#include "bounces_fetch.h"
#include "cli.h"
#include "daemon.h"
#include "daemon_bounces.h"

#define MAX_CHECKS 64

/* One account to check. */
struct check {
    char account[64];    /* its name */
    int64_t every_ms;    /* bounce_check */
    int64_t next_ms;     /* when it is due */
    bounce_idle *idle;   /* the IDLE watch on its inbox, or NULL */
    int64_t watch_ms;    /* when to try opening the watch again */
    const char *trigger; /* what made the next check due: "interval" or "idle" */
};

/* The thread's state. */
struct checker {
    daemon_state *d;                 /* the daemon (spool path, log, stopping) */
    struct check checks[MAX_CHECKS]; /* the accounts with bounce_check */
    size_t n;                        /* how many */
};

/* Fills c with the accounts of the configuration file that set bounce_check. */
static void find_accounts(struct checker *c)
{
    char path[512], names[1024], err[600];
    if (cfg_find_file(path, sizeof path) != 1 || cfg_list_accounts(path, names, sizeof names) <= 0)
        return;
    /* names is "a, b, c". */
    for (char *name = names; *name != '\0' && c->n < MAX_CHECKS;) {
        char *end = strchr(name, ',');
        if (end != NULL)
            *end = '\0';
        cfg_settings cfg;
        memset(&cfg, 0, sizeof cfg);
        long secs = 0;
        if (cfg_load(&cfg, path, name, err, sizeof err) == 0 &&
            cfg_get(&cfg, K_BOUNCE_CHECK) != NULL &&
            cfg_duration_s(cfg_get(&cfg, K_BOUNCE_CHECK), &secs) == 0) {
            struct check *k = &c->checks[c->n++];
            snprintf(k->account, sizeof k->account, "%.63s", name);
            k->every_ms = (int64_t)secs * 1000;
            k->next_ms = 0;
        }
        cfg_cleanup(&cfg);
        if (end == NULL)
            break;
        name = end + 1;
        while (*name == ' ')
            name++;
    }
}

static void run_check(struct checker *c, struct check *k)
{
    bounces_fetch_counts counts = {0};
    int status = bounces_fetch_account(k->account, c->d->spool_path, &counts);
    eventlog_event e;
    eventlog_event_init(&e, status == 0 ? EVENTLOG_INFO : EVENTLOG_WARNING, "bounces");
    eventlog_add_str(&e, "account", k->account);
    eventlog_add_int(&e, "read", (int64_t)counts.read);
    eventlog_add_int(&e, "bounces", (int64_t)counts.bounces);
    eventlog_add_int(&e, "matched", (int64_t)counts.matched);
    eventlog_add_int(&e, "suppressed", (int64_t)counts.suppressed);
    eventlog_add_int(&e, "status", status);
    eventlog_add_str(&e, "trigger", k->trigger != NULL ? k->trigger : "interval");
    eventlog_write(c->d->log, &e);
    k->next_ms = daemon_now_ms() + k->every_ms;
    k->trigger = NULL;
}

/* Watches k's inbox for ms milliseconds (opening the watch when due). Returns 1 when it
 * waited, 0 when there is no watch to wait on. */
static int watch(struct checker *c, struct check *k, int ms)
{
    char why[600];
    int64_t now = daemon_now_ms();
    if (k->idle == NULL && now >= k->watch_ms) {
        k->idle = bounce_idle_open(k->account, &c->d->stopping, why, sizeof why);
        k->watch_ms = now + k->every_ms; /* on failure, try again with the next check */
    }
    if (k->idle == NULL)
        return 0;
    int r = bounce_idle_wait(k->idle, ms);
    if (r < 0) {
        bounce_idle_close(k->idle);
        k->idle = NULL;
    } else if (r > 0) {
        k->next_ms = 0; /* new mail: check now */
        k->trigger = "idle";
    }
    return 1;
}

static void *checker_main(void *arg)
{
    struct checker *c = arg;
    while (!atomic_load(&c->d->stopping)) {
        for (size_t i = 0; i < c->n && !atomic_load(&c->d->stopping); i++)
            if (daemon_now_ms() >= c->checks[i].next_ms)
                run_check(c, &c->checks[i]);
        int waited = 0;
        for (size_t i = 0; i < c->n && !atomic_load(&c->d->stopping); i++)
            waited |= watch(c, &c->checks[i], 500);
        if (!waited) {
            struct timespec tick = {0, 200 * 1000000L};
            nanosleep(&tick, NULL);
        }
    }
    for (size_t i = 0; i < c->n; i++)
        bounce_idle_close(c->checks[i].idle);
    free(c);
    return NULL;
}

int daemon_bounces_start(daemon_state *d, pthread_t *thread)
{
    struct checker *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    c->d = d;
    find_accounts(c);
    if (c->n == 0 || pthread_create(thread, NULL, checker_main, c) != 0) {
        free(c);
        return -1;
    }
    return 0;
}
