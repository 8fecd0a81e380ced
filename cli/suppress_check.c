/*
 * suppress_check.c - the suppression checks of the sending paths (see suppress.h).
 *
 * A path opens the spool read-only for the check (the daemon and serve use their own
 * handle). A missing spool file means nothing was ever suppressed, so sending without one
 * works as before; a spool that exists but cannot be read stops the send, because mailing
 * an address that bounced or complained costs the account its reputation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "queue.h"
#include "suppress.h"

/* A setting as a number in [min, max], else dflt (cfg_check() validated it already). */
static int setting_int(const cfg_settings *cfg, enum cfg_key k, int min, int max, int dflt)
{
    const char *v = cfg_get(cfg, k);
    if (v == NULL)
        return dflt;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    return (end == v || *end != '\0' || n < min || n > max) ? dflt : (int)n;
}

void cli_suppress_policy(const cfg_settings *cfg, pigeon_suppress_policy *p)
{
    p->soft_bounce_limit =
        setting_int(cfg, K_SOFT_BOUNCE_LIMIT, 1, 1000, PIGEON_SUPPRESS_SOFT_LIMIT);
    p->soft_bounce_days = setting_int(cfg, K_SOFT_BOUNCE_DAYS, 1, 3650, PIGEON_SUPPRESS_SOFT_DAYS);
}

const char *cli_suppress_why(const pigeon_suppress_hit *hit, char *out, size_t n)
{
    char day[32] = "";
    time_t t = (time_t)(hit->created_ms / 1000);
    struct tm tm;
    if (hit->created_ms > 0 && gmtime_r(&t, &tm) != NULL)
        strftime(day, sizeof day, " since %Y-%m-%d", &tm);
    snprintf(out, n, "%s%s%s%s%s", pigeon_suppress_reason_name(hit->reason),
             hit->status[0] ? " " : "", hit->status, day, hit->global ? ", global list" : "");
    return out;
}

void cli_suppress_warn(const char *who, const char *address, const pigeon_suppress_hit *hit)
{
    char why[160];
    cli_error("%s: %s is %s (%s): not sent", who, address, CLI_SUPPRESSED,
              cli_suppress_why(hit, why, sizeof why));
}

/* Opens the spool at spool_opt read-only; *spool NULL (0) when there is no file yet. */
static int open_ro(const char *spool_opt, pigeon_spool **spool)
{
    char path[1024];
    *spool = NULL;
    char err[512];
    int status = queue_spool_path(spool_opt, 0, path, sizeof path);
    /* No spool file: nothing was ever suppressed (a PostgreSQL URL names no file). */
    if (status != 0 || (strstr(path, "://") == NULL && access(path, F_OK) != 0))
        return status;
    pigeon_err e = pigeon_spool_open(path, PIGEON_SPOOL_READONLY | PIGEON_SPOOL_NO_CHECK, spool,
                                     err, sizeof err);
    /* A spool being created this moment (an empty file, a daemon starting) holds no list. */
    if (e == PIGEON_ERR_NOTFOUND)
        return 0;
    /* A PostgreSQL spool of an older schema (not migrated yet, which a read-only open
     * never does) has no suppression tables: nothing suppressed, do not block sending. */
    if (e == PIGEON_ERR_STATE && strstr(path, "://") != NULL)
        return 0;
    if (e != PIGEON_OK) {
        cli_error("cannot open the spool %s to check the suppression list: %s%s", path, err,
                  e == PIGEON_ERR_NOSPACE ? "; nothing was sent or queued: free some space and "
                                            "try again"
                                          : "");
        return e == PIGEON_ERR_TIMEOUT ? EX_TEMPFAIL : cli_exit_status(e);
    }
    return 0;
}

/* Checks through an open handle (NULL: nothing suppressed). */
static int check_with(pigeon_spool *spool, const char *account, const char *const *rcpts, size_t n,
                      pigeon_suppress_hit *hits, size_t *count)
{
    *count = 0;
    memset(hits, 0, n * sizeof *hits);
    if (spool == NULL || n == 0)
        return 0;
    pigeon_err err = pigeon_suppress_check_many(spool, account, rcpts, n, 0, hits, count);
    if (err == PIGEON_OK)
        return 0;
    if (err == PIGEON_ERR_UNSUPPORTED) { /* a backend without the list: nothing on it */
        cli_error("warning: %s; recipients are not checked", pigeon_spool_error(spool));
        return 0;
    }
    cli_error("cannot check the suppression list: %s", pigeon_spool_error(spool));
    return err == PIGEON_ERR_TIMEOUT ? EX_TEMPFAIL : cli_exit_status(err);
}

int cli_suppress_lookup(const char *spool_opt, const char *account, const char *const *rcpts,
                        size_t n, pigeon_suppress_hit *hits, size_t *count)
{
    pigeon_spool *spool = NULL;
    *count = 0;
    memset(hits, 0, n * sizeof *hits);
    if (n == 0)
        return 0;
    int status = open_ro(spool_opt, &spool);
    if (status == 0)
        status = check_with(spool, account, rcpts, n, hits, count);
    pigeon_spool_close(spool);
    return status;
}

int cli_suppressor_open(cli_suppressor *s, const char *spool_opt, pigeon_spool *shared,
                        const char *account)
{
    memset(s, 0, sizeof *s);
    s->account = account;
    if (shared != NULL) {
        s->spool = shared;
        return 0;
    }
    s->own = 1;
    return open_ro(spool_opt, &s->spool);
}

void cli_suppressor_close(cli_suppressor *s)
{
    if (s->own)
        pigeon_spool_close(s->spool);
    memset(s, 0, sizeof *s);
}

/* The message's recipients as bare addresses (malloc'd array of malloc'd strings). */
static char **rcpt_list(pigeon_message *msg, size_t n)
{
    char **v = calloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; v != NULL && i < n; i++) {
        if (pigeon_mailbox_addr_spec(pigeon_message_rcpt(msg, i), 0, &v[i]) != PIGEON_OK)
            v[i] = NULL; /* checked as not suppressed */
    }
    return v;
}

int cli_suppressor_filter(cli_suppressor *s, pigeon_message *msg, const char *who, int quiet,
                          size_t *dropped, char *why, size_t whylen)
{
    size_t n = pigeon_message_rcpt_count(msg), count = 0;
    *dropped = 0;
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if (s->spool == NULL || n == 0)
        return 0;
    char **rcpts = rcpt_list(msg, n);
    pigeon_suppress_hit *hits = calloc(n, sizeof *hits);
    int status = 0;
    if (rcpts == NULL || hits == NULL) {
        cli_error("out of memory");
        status = EX_OSERR;
        goto done;
    }
    status = check_with(s->spool, s->account, (const char *const *)rcpts, n, hits, &count);
    if (status != 0 || count == 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        if (hits[i].reason == PIGEON_SUPPRESS_NONE)
            continue;
        if (!quiet)
            cli_suppress_warn(who, rcpts[i], &hits[i]);
        if (why != NULL && why[0] == '\0') {
            char text[160];
            snprintf(why, whylen, "%s is %s (%s)", rcpts[i], CLI_SUPPRESSED,
                     cli_suppress_why(&hits[i], text, sizeof text));
        }
    }
    *dropped = count;
    for (size_t i = n; count < n && i-- > 0;)
        if (hits[i].reason != PIGEON_SUPPRESS_NONE)
            pigeon_message_rcpt_remove(msg, i);
done:
    for (size_t i = 0; rcpts != NULL && i < n; i++)
        free(rcpts[i]);
    free(rcpts);
    free(hits);
    return status;
}

int cli_suppress_message(const char *spool_opt, const char *account, pigeon_message *msg,
                         const char *who, size_t *dropped)
{
    cli_suppressor s;
    size_t n = pigeon_message_rcpt_count(msg), count = 0;
    int status = cli_suppressor_open(&s, spool_opt, NULL, account);
    if (status == 0)
        status = cli_suppressor_filter(&s, msg, who, 0, &count, NULL, 0);
    cli_suppressor_close(&s);
    if (dropped != NULL)
        *dropped = count;
    if (status == 0 && n > 0 && count == n) {
        cli_error("%s: every recipient is suppressed: nothing sent (pigeon suppress list; "
                  "--ignore-suppression sends anyway)",
                  who);
        status = EX_DATAERR;
    }
    return status;
}
