/*
 * daemon_suppress.c - the suppression list in `pigeon daemon` (see suppress.h).
 *
 * A recipient may become suppressed after its message was queued (a bounce of an earlier
 * message read meanwhile, `pigeon suppress add`). Right after a claim, every claimed
 * recipient is checked (a read through the worker's own handle); the suppressed ones are
 * recorded at once as failed for good, with the text "suppressed: REASON [STATUS] since
 * DAY", logged (event "delivery", result "suppressed") and taken out of the claim, so
 * that the rest of the message goes to the others only, and a message with nobody left
 * leaves the batch. A retry (`pigeon queue retry --failed`) after `pigeon suppress
 * remove` sends to them again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "suppress.h"

/* The suppressed recipients of one job: outcomes and their texts. */
typedef struct job_hits {
    pigeon_suppress_hit *hits;     /* per recipient */
    pigeon_spool_outcome *outcome; /* one per suppressed recipient */
    char (*text)[200];             /* their texts */
    size_t n;                      /* suppressed recipients */
} job_hits;

/* Fills h's outcomes from its hits (one per recipient of job) when some are suppressed. */
static int job_outcomes(const pigeon_spool_entry *job, job_hits *h)
{
    size_t n = job->rcpt_count, count = 0;
    for (size_t i = 0; i < n; i++)
        count += h->hits[i].reason != PIGEON_SUPPRESS_NONE;
    if (count == 0)
        return 0;
    h->outcome = calloc(count, sizeof *h->outcome);
    h->text = calloc(count, sizeof *h->text);
    if (h->outcome == NULL || h->text == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (h->hits[i].reason == PIGEON_SUPPRESS_NONE)
            continue;
        char why[160];
        snprintf(h->text[h->n], sizeof h->text[h->n], "%s: %s", CLI_SUPPRESSED,
                 cli_suppress_why(&h->hits[i], why, sizeof why));
        h->outcome[h->n] = (pigeon_spool_outcome){.rcpt = i,
                                                  .state = PIGEON_SPOOL_FAILED,
                                                  .err = PIGEON_ERR_REJECTED,
                                                  .text = h->text[h->n]};
        h->n++;
    }
    return 0;
}

/* Checks job's recipients; fills h (allocated) when some are suppressed. */
static int check_job(pigeon_spool *own, const pigeon_spool_entry *job, job_hits *h)
{
    size_t n = job->rcpt_count, count = 0;
    const char **addrs = calloc(n ? n : 1, sizeof *addrs);
    h->hits = calloc(n ? n : 1, sizeof *h->hits);
    if (addrs == NULL || h->hits == NULL) {
        free(addrs);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        addrs[i] = job->rcpts[i].address;
    pigeon_err e = pigeon_suppress_check_many(own, job->account, addrs, n, 0, h->hits, &count);
    free(addrs);
    if (e != PIGEON_OK || count == 0)
        return e == PIGEON_OK ? 0 : -1;
    return job_outcomes(job, h);
}

/* Checks the recipients of all n jobs, of one account (a claimed batch), in one call: on a
 * PostgreSQL spool one round trip per batch instead of one per message (bench/pg.sh).
 * Returns -1 when the jobs are of several accounts or the check failed (the caller then
 * checks job by job). */
static int check_all(pigeon_spool *own, pigeon_spool_entry **jobs, size_t n, job_hits *h)
{
    size_t total = 0, count = 0, at = 0;
    for (size_t k = 0; k < n; k++) {
        if (strcmp(jobs[k]->account, jobs[0]->account) != 0)
            return -1;
        total += jobs[k]->rcpt_count;
    }
    const char **addrs = calloc(total ? total : 1, sizeof *addrs);
    pigeon_suppress_hit *hits = calloc(total ? total : 1, sizeof *hits);
    int rc = addrs != NULL && hits != NULL ? 0 : -1;
    for (size_t k = 0; rc == 0 && k < n; k++)
        for (size_t i = 0; i < jobs[k]->rcpt_count; i++)
            addrs[at++] = jobs[k]->rcpts[i].address;
    if (rc == 0 && pigeon_suppress_check_many(own, jobs[0]->account, addrs, total, 0, hits,
                                              &count) != PIGEON_OK)
        rc = -1;
    for (size_t k = 0, i = 0; rc == 0 && count > 0 && k < n; i += jobs[k]->rcpt_count, k++) {
        size_t m = jobs[k]->rcpt_count;
        h[k].hits = calloc(m ? m : 1, sizeof *h[k].hits);
        if (h[k].hits == NULL)
            rc = -1;
        else
            memcpy(h[k].hits, hits + i, m * sizeof *hits);
        if (rc == 0 && job_outcomes(jobs[k], &h[k]) != 0)
            rc = -1;
    }
    free(addrs);
    free(hits);
    return rc;
}

static void log_suppressed(daemon_state *d, const char *worker, const pigeon_spool_entry *job,
                           const job_hits *h)
{
    for (size_t k = 0; k < h->n; k++) {
        const pigeon_spool_outcome *o = &h->outcome[k];
        eventlog_event e;
        eventlog_event_init(&e, EVENTLOG_WARNING, "delivery");
        eventlog_add_str(&e, "queue_id", job->queue_id);
        eventlog_add_str(&e, "message_id", job->message_id[0] ? job->message_id : NULL);
        eventlog_add_str(&e, "account", job->account);
        eventlog_add_str(&e, "from", job->mail_from);
        eventlog_add_str(&e, "rcpt", job->rcpts[o->rcpt].address);
        eventlog_add_str(&e, "result", CLI_SUPPRESSED);
        eventlog_add_str(&e, "reason", pigeon_suppress_reason_name(h->hits[o->rcpt].reason));
        eventlog_add_str(&e, "text", o->text);
        eventlog_add_str(&e, "worker", worker);
        eventlog_write(d->log, &e);
    }
    pigeon_metrics_count_recipients(&d->metrics, "failed", (unsigned)h->n);
}

/* Takes the suppressed recipients out of the claim (their strings freed). */
static void drop_rcpts(pigeon_spool_entry *job, const job_hits *h)
{
    size_t kept = 0;
    for (size_t i = 0; i < job->rcpt_count; i++) {
        pigeon_spool_rcpt *r = &job->rcpts[i];
        if (h->hits[i].reason == PIGEON_SUPPRESS_NONE) {
            job->rcpts[kept++] = *r;
            continue;
        }
        free((char *)r->address);
        free((char *)r->lease_owner);
        free((char *)r->enhanced_code);
        free((char *)r->text);
    }
    job->rcpt_count = kept;
}

static void hits_free(job_hits *h)
{
    free(h->hits);
    free(h->outcome);
    free(h->text);
    memset(h, 0, sizeof *h);
}

/* Records the batch's suppressed outcomes in one commit. */
static pigeon_err record(daemon_state *d, pigeon_spool_entry **jobs, job_hits *h, size_t n)
{
    pigeon_spool_record_item *items = calloc(n, sizeof *items);
    size_t m = 0;
    if (items == NULL)
        return PIGEON_ERR_NOMEM;
    for (size_t k = 0; k < n; k++)
        if (h[k].n > 0)
            items[m++] = (pigeon_spool_record_item){jobs[k], h[k].outcome, h[k].n, 0};
    pthread_mutex_lock(&d->spool_lock);
    pigeon_err e = pigeon_spool_record_batch(d->spool, items, m, daemon_now_ms());
    pthread_mutex_unlock(&d->spool_lock);
    free(items);
    return e;
}

size_t daemon_suppress_batch(daemon_state *d, pigeon_spool *own, const char *worker,
                             pigeon_spool_entry **jobs, size_t *count)
{
    size_t n = *count, any = 0, kept = 0;
    job_hits *h = calloc(n ? n : 1, sizeof *h);
    if (h == NULL)
        return 0;
    int batched = check_all(own, jobs, n, h) == 0;
    for (size_t k = 0; k < n; k++) {
        if (!batched) {
            hits_free(&h[k]);
            if (check_job(own, jobs[k], &h[k]) != 0)
                h[k].n = 0; /* cannot tell: sent as before rather than lost */
        }
        any += h[k].n;
    }
    /* Only what was recorded leaves the claim: on a failed record the recipients are sent
     * to (the check is a safeguard, the spool's state the authority). */
    if (any > 0 && record(d, jobs, h, n) != PIGEON_OK)
        any = 0;
    for (size_t k = 0; k < n; k++) {
        if (any > 0 && h[k].n > 0) {
            log_suppressed(d, worker, jobs[k], &h[k]);
            drop_rcpts(jobs[k], &h[k]);
        }
        hits_free(&h[k]);
        if (jobs[k]->rcpt_count == 0)
            pigeon_spool_entry_free(jobs[k]);
        else
            jobs[kept++] = jobs[k];
    }
    free(h);
    *count = kept;
    return any;
}
