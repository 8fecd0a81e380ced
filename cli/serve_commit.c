/*
 * serve_commit.c - group commit for `pigeon serve`: one thread owns the spool handle and
 * takes every job that arrived while it was busy. All the messages of those jobs go into
 * one transaction (pigeon_spool_begin ... pigeon_spool_commit): one fsync carries them
 * all, and each request is answered only once that commit returned, so a 202 always
 * means "on disk". Reads (GET) and cancels (DELETE) run between commits.
 *
 * Idempotency (the Idempotency-Key header): before storing, the key's earlier message
 * with the same Idempotency-Key within 24 hours is looked up in the same transaction
 * (so two requests with one key in one group see each other); the same request gets the
 * same id and stores nothing, a different one gets 409.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"
#include "util/buf.h"

#define IDEM_WINDOW_MS  (24LL * 3600 * 1000)
#define STATS_EVERY_MS  1000 /* how often the spool's message count is refreshed */
#define KEYS_EVERY_MS   2000 /* how often keys are reloaded (new and revoked keys) */
#define EXPIRE_EVERY_MS (600LL * 1000)

static void *committer_main(void *arg);

int serve_committer_start(serve_ctx *ctx)
{
    serve_committer *com = &ctx->com;
    pthread_mutex_init(&com->lock, NULL);
    pthread_cond_init(&com->wake, NULL);
    return pthread_create(&com->thread, NULL, committer_main, ctx) == 0 ? 0 : -1;
}

void serve_committer_push(serve_ctx *ctx, serve_job *job)
{
    serve_committer *com = &ctx->com;
    job->next = NULL;
    pthread_mutex_lock(&com->lock);
    if (com->stopping) {
        /* Shutting down: nobody will store it; say so rather than leave it hanging. */
        pthread_mutex_unlock(&com->lock);
        if (job->done != NULL) {
            job->items[0].problem.status = 503;
            snprintf(job->items[0].problem.detail, sizeof job->items[0].problem.detail,
                     "the server is shutting down");
            serve_job_done(ctx, job);
            return;
        }
        serve_problem_respond(ctx, job->ex, job->route, job->start_ns, 503,
                              "the server is shutting down", 1);
        serve_job_free(job);
        return;
    }
    if (com->tail != NULL)
        com->tail->next = job;
    else
        com->head = job;
    com->tail = job;
    pthread_cond_signal(&com->wake);
    pthread_mutex_unlock(&com->lock);
}

/* The lock and condition stay valid after the thread ends: requests still arriving on
 * the HTTP thread read stopping under the lock until the server is freed. */
void serve_committer_stop(serve_ctx *ctx)
{
    serve_committer *com = &ctx->com;
    pthread_mutex_lock(&com->lock);
    com->stopping = 1;
    pthread_cond_signal(&com->wake);
    pthread_mutex_unlock(&com->lock);
    pthread_join(com->thread, NULL);
}

/* Looks up an earlier message with the item's Idempotency-Key. Returns 1 when the item
 * is answered by it (replayed or 409), 0 to store it. */
static int idempotent(serve_ctx *ctx, const serve_job *job, serve_item *item, int64_t now)
{
    char qid[PIGEON_SPOOL_ID_LEN + 1];
    unsigned char sha[32];
    if (item->idem == NULL)
        return 0;
    pigeon_err e =
        pg_spool_idem_find(ctx->spool, job->key_id, item->idem, now - IDEM_WINDOW_MS, qid, sha);
    if (e == PIGEON_ERR_NOTFOUND)
        return 0;
    if (e != PIGEON_OK) {
        item->problem.status = 503;
        snprintf(item->problem.detail, sizeof item->problem.detail, "spool: %s",
                 pigeon_spool_error(ctx->spool));
        return 1;
    }
    if (memcmp(sha, item->sha, 32) != 0) {
        item->problem.status = 409;
        snprintf(item->problem.detail, sizeof item->problem.detail,
                 "Idempotency-Key was used with a different request (message %s)", qid);
        return 1;
    }
    memcpy(item->id, qid, sizeof item->id);
    item->replayed = 1;
    return 1;
}

/* Enqueues one item inside the open batch. Returns nonzero when the batch is broken
 * (the owner row failed after the message went in: all of it must roll back). */
static int store_item(serve_ctx *ctx, const serve_job *job, serve_item *item, int64_t now)
{
    if (item->problem.status != 0 || idempotent(ctx, job, item, now) ||
        serve_suppress_item(ctx, item))
        return 0;
    if (ctx->max_queued != 0 && ctx->com.queued_estimate >= ctx->max_queued) {
        item->problem.status = 503;
        snprintf(item->problem.detail, sizeof item->problem.detail,
                 "the spool holds %zu messages, the most --max-queued allows",
                 ctx->com.queued_estimate);
        return 0;
    }
    pigeon_spool_envelope env = {item->account, item->mail_from, (const char *const *)item->rcpts,
                                 item->nrcpts, item->message_id};
    pigeon_err e = pigeon_spool_enqueue(ctx->spool, &env, item->data, item->len, now, item->id);
    if (e == PIGEON_OK)
        e = pg_spool_owner_add(ctx->spool, item->id, job->key_id, item->idem, item->sha, now);
    /* send_at: stored now (its created time is now), its recipients not due before then:
     * the daemon claims nothing earlier; GET shows the time. */
    if (e == PIGEON_OK && item->send_at_ms > now)
        e = pg_spool_owner_schedule(ctx->spool, item->id, item->send_at_ms);
    else if (e != PIGEON_OK && item->id[0] == '\0') {
        item->problem.status = e == PIGEON_ERR_INVALID ? 400 : 503;
        snprintf(item->problem.detail, sizeof item->problem.detail, "%s",
                 pigeon_spool_error(ctx->spool));
        item->id[0] = '\0';
        return 0;
    }
    if (e != PIGEON_OK)
        return 1;
    ctx->com.queued_estimate++;
    return 0;
}

/* The group: every STORE job's items in one transaction. On failure every item that was
 * to be stored gets 503 (nothing of it is kept: the transaction rolled back). */
static void store_group(serve_ctx *ctx, serve_job *jobs)
{
    int64_t now = pigeon_spool_now_ms();
    size_t stored = 0;
    pigeon_err e = pigeon_spool_begin(ctx->spool);
    for (serve_job *j = jobs; e == PIGEON_OK && j != NULL; j = j->next) {
        if (j->kind != SERVE_JOB_STORE)
            continue;
        for (size_t i = 0; e == PIGEON_OK && i < j->nitems; i++) {
            if (store_item(ctx, j, &j->items[i], now) != 0)
                e = PIGEON_ERR_IO;
            else if (j->items[i].problem.status == 0 && !j->items[i].replayed)
                stored++;
        }
    }
    if (e == PIGEON_OK)
        e = pigeon_spool_commit(ctx->spool);
    else
        pigeon_spool_rollback(ctx->spool);
    if (e != PIGEON_OK) {
        for (serve_job *j = jobs; j != NULL; j = j->next) {
            for (size_t i = 0; j->kind == SERVE_JOB_STORE && i < j->nitems; i++) {
                serve_item *it = &j->items[i];
                if (it->problem.status == 0 && !it->replayed) {
                    it->problem.status = 503;
                    snprintf(it->problem.detail, sizeof it->problem.detail,
                             "the spool cannot take it now: %s", pigeon_spool_error(ctx->spool));
                }
            }
        }
        return;
    }
    pigeon_metrics_counter_add(ctx->commits, NULL, 1);
    pigeon_metrics_histogram_observe(ctx->committed, NULL, (double)stored);
}

static void refresh(serve_ctx *ctx, int64_t *next_stats, int64_t *next_keys, int64_t *next_expire)
{
    int64_t now = pigeon_spool_now_ms();
    if (ctx->max_queued != 0 && now >= *next_stats) {
        pigeon_spool_stats st;
        if (pigeon_spool_stats_get(ctx->spool, now, &st) == PIGEON_OK)
            ctx->com.queued_estimate = st.messages;
        *next_stats = now + STATS_EVERY_MS;
    }
    if (now >= *next_keys) {
        serve_keys_reload(ctx);
        *next_keys = now + KEYS_EVERY_MS;
    }
    if (now >= *next_expire) {
        pg_spool_owner_expire(ctx->spool, now - IDEM_WINDOW_MS);
        *next_expire = now + EXPIRE_EVERY_MS;
    }
}

static void *committer_main(void *arg)
{
    serve_ctx *ctx = arg;
    serve_committer *com = &ctx->com;
    int64_t next_stats = 0, next_keys = 0, next_expire = 0;
    pg_buf log; /* the group's log lines */
    pg_buf_init(&log);
    for (;;) {
        pthread_mutex_lock(&com->lock);
        while (com->head == NULL && !com->stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&com->wake, &com->lock, &until);
            if (com->head == NULL && !com->stopping) {
                pthread_mutex_unlock(&com->lock);
                refresh(ctx, &next_stats, &next_keys, &next_expire);
                pthread_mutex_lock(&com->lock);
            }
        }
        serve_job *jobs = com->head;
        com->head = com->tail = NULL;
        int stopping = com->stopping;
        pthread_mutex_unlock(&com->lock);
        if (jobs == NULL && stopping)
            break;
        refresh(ctx, &next_stats, &next_keys, &next_expire);
        int any_store = 0;
        for (serve_job *j = jobs; j != NULL; j = j->next)
            any_store |= j->kind == SERVE_JOB_STORE;
        if (any_store)
            store_group(ctx, jobs);
        serve_log_hold(&log);
        while (jobs != NULL) {
            serve_job *j = jobs;
            jobs = j->next;
            serve_job_done(ctx, j); /* reads and cancels run here; answers; frees */
        }
        serve_log_release(&log);
    }
    pg_buf_cleanup(&log);
    return NULL;
}

void serve_job_free(serve_job *job)
{
    if (job == NULL)
        return;
    for (size_t i = 0; job->items != NULL && i < job->nitems; i++)
        serve_item_cleanup(&job->items[i]);
    free(job->items);
    free(job);
}
