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

/* Fills h (allocated) from hits, the check of job's recipients, when some are
 * suppressed. Returns -1 when out of memory. */
static int fill_job(const pigeon_spool_entry *job, const pigeon_suppress_hit *hits, job_hits *h)
{
    size_t n = job->rcpt_count, count = 0;
    for (size_t i = 0; i < n; i++)
        count += hits[i].reason != PIGEON_SUPPRESS_NONE;
    if (count == 0)
        return 0;
    h->hits = calloc(n, sizeof *h->hits);
    h->outcome = calloc(count, sizeof *h->outcome);
    h->text = calloc(count, sizeof *h->text);
    if (h->hits == NULL || h->outcome == NULL || h->text == NULL)
        return -1;
    memcpy(h->hits, hits, n * sizeof *hits);
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

/* Checks the recipients of jobs[from, to), all of one account, in one call: one read of
 * the spool for a whole batch (a batch is of one account) instead of one per message.
 * A job whose check fails is sent as before (h->n 0) rather than lost. */
static void check_run(pigeon_spool *own, pigeon_spool_entry **jobs, size_t from, size_t to,
                      job_hits *h)
{
    size_t total = 0, count = 0, off = 0;
    for (size_t k = from; k < to; k++)
        total += jobs[k]->rcpt_count;
    const char **addrs = calloc(total ? total : 1, sizeof *addrs);
    pigeon_suppress_hit *hits = calloc(total ? total : 1, sizeof *hits);
    pigeon_err e = addrs != NULL && hits != NULL ? PIGEON_OK : PIGEON_ERR_NOMEM;
    for (size_t k = from; e == PIGEON_OK && k < to; k++)
        for (size_t i = 0; i < jobs[k]->rcpt_count; i++)
            addrs[off++] = jobs[k]->rcpts[i].address;
    if (e == PIGEON_OK)
        e = pigeon_suppress_check_many(own, jobs[from]->account, addrs, total, 0, hits, &count);
    off = 0;
    for (size_t k = from; e == PIGEON_OK && count > 0 && k < to; k++) {
        if (fill_job(jobs[k], hits + off, &h[k]) != 0)
            h[k].n = 0;
        off += jobs[k]->rcpt_count;
    }
    free(addrs);
    free(hits);
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
    for (size_t k = 0, to; k < n; k = to) {
        for (to = k + 1; to < n && strcmp(jobs[to]->account, jobs[k]->account) == 0; to++) {
        }
        check_run(own, jobs, k, to, h);
    }
    for (size_t k = 0; k < n; k++)
        any += h[k].n;
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
