/*
 * serve_result.c - the answers of `pigeon serve`, on the committer thread once the spool
 * has done its part: 202 with the id after a durable commit, per-item results of a batch,
 * a message's state per recipient, a cancel. Another key's message is 404 like a missing
 * one, so that ids leak nothing across tenants.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "serve.h"

/* A JSON document built with the writer into memory. */
typedef struct membuf {
    char *data;    /* the text (malloc'd by open_memstream) */
    size_t len;    /* its length */
    FILE *f;       /* the stream */
    json_writer w; /* the writer on it */
} membuf;

static int mem_open(membuf *m)
{
    memset(m, 0, sizeof *m);
    if ((m->f = open_memstream(&m->data, &m->len)) == NULL)
        return -1;
    json_init(&m->w, m->f);
    return 0;
}

static void mem_close(membuf *m)
{
    json_finish(&m->w);
    fclose(m->f);
}

static void iso_time(int64_t ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void done_store(serve_ctx *ctx, serve_job *job)
{
    membuf m;
    if (!job->batch) {
        serve_item *it = &job->items[0];
        if (it->problem.status != 0) {
            serve_job_problem(ctx, job, it->problem.status, it->problem.detail,
                              it->problem.status == 503 ? 1 : 0);
            return;
        }
        char body[64];
        int n = snprintf(body, sizeof body, "{\"id\":\"%s\"}\n", it->id);
        if (it->suppressed == NULL) {
            serve_job_json(ctx, job, 202, body, (size_t)n, it->id);
            return;
        }
        /* {"id":"...","suppressed":[...]} */
        size_t cap = strlen(it->suppressed) + 80;
        char *full = malloc(cap);
        int k = full != NULL ? snprintf(full, cap, "{\"id\":\"%s\",\"suppressed\":%s}\n", it->id,
                                        it->suppressed)
                             : -1;
        if (k < 0)
            serve_job_json(ctx, job, 202, body, (size_t)n, it->id);
        else
            serve_job_json(ctx, job, 202, full, (size_t)k, it->id);
        free(full);
        return;
    }
    if (mem_open(&m) != 0) {
        serve_job_problem(ctx, job, 503, "out of memory", 1);
        return;
    }
    json_object_begin(&m.w);
    json_key(&m.w, "results");
    json_array_begin(&m.w);
    for (size_t i = 0; i < job->nitems; i++) {
        serve_item *it = &job->items[i];
        json_object_begin(&m.w);
        json_kv_int(&m.w, "index", (int64_t)i);
        json_kv_int(&m.w, "status", it->problem.status != 0 ? it->problem.status : 202);
        if (it->problem.status != 0)
            json_kv_string(&m.w, "detail", it->problem.detail);
        else
            json_kv_string(&m.w, "id", it->id);
        if (it->suppressed != NULL) {
            json_key(&m.w, "suppressed"); /* an array serve_suppress.c wrote */
            m.w.after_key = 0;
            fputs(it->suppressed, m.w.out);
        }
        json_object_end(&m.w);
    }
    json_array_end(&m.w);
    json_object_end(&m.w);
    mem_close(&m);
    serve_job_json(ctx, job, 200, m.data, m.len, "batch");
    free(m.data);
}

/* The tenant check: 0 when the caller's key submitted the message; else answers 404. */
static int owned(serve_ctx *ctx, serve_job *job, int64_t *cancelled, int64_t *send_at)
{
    char owner[PG_SPOOL_KEY_ID_LEN + 1];
    pigeon_err e =
        pg_spool_owner_get(ctx->spool, job->queue_id, owner, sizeof owner, cancelled, send_at);
    if (e == PIGEON_OK && strcmp(owner, job->key_id) == 0)
        return 0;
    if (e != PIGEON_OK && e != PIGEON_ERR_NOTFOUND)
        serve_job_problem(ctx, job, 503, pigeon_spool_error(ctx->spool), 1);
    else
        serve_job_problem(ctx, job, 404, "no such message", 0);
    return -1;
}

static void write_rcpt(json_writer *w, const pigeon_spool_rcpt *r)
{
    char when[32];
    json_object_begin(w);
    json_kv_string(w, "address", r->address);
    json_kv_string(w, "state", pigeon_spool_state_name(r->state));
    json_kv_int(w, "attempts", r->attempts);
    if (r->smtp_code != 0 || r->text != NULL) {
        json_key(w, "last_reply");
        json_object_begin(w);
        if (r->smtp_code != 0)
            json_kv_int(w, "code", r->smtp_code);
        if (r->enhanced_code != NULL)
            json_kv_string(w, "enhanced_code", r->enhanced_code);
        if (r->text != NULL)
            json_kv_string(w, "text", r->text);
        json_object_end(w);
    }
    if ((r->state == PIGEON_SPOOL_QUEUED || r->state == PIGEON_SPOOL_DEFERRED) && r->next_ms > 0) {
        iso_time(r->next_ms, when, sizeof when);
        json_kv_string(w, "next_attempt", when);
    }
    json_object_end(w);
}

static void done_show(serve_ctx *ctx, serve_job *job)
{
    int64_t cancelled = 0, send_at = 0;
    pigeon_spool_entry *entry = NULL;
    membuf m;
    if (owned(ctx, job, &cancelled, &send_at) != 0)
        return;
    pigeon_err e = pigeon_spool_show(ctx->spool, job->queue_id, &entry);
    if (e != PIGEON_OK && e != PIGEON_ERR_NOTFOUND) {
        serve_job_problem(ctx, job, 503, pigeon_spool_error(ctx->spool), 1);
        return;
    }
    if (mem_open(&m) != 0) {
        pigeon_spool_entry_free(entry);
        serve_job_problem(ctx, job, 503, "out of memory", 1);
        return;
    }
    json_object_begin(&m.w);
    json_kv_string(&m.w, "id", job->queue_id);
    if (entry == NULL) {
        /* Gone from the queue: cancelled, or every recipient delivered (the spool removes
         * a message once all of it is delivered). */
        json_kv_string(&m.w, "state", cancelled ? "cancelled" : "delivered");
    } else {
        const size_t *c = entry->count;
        const char *state = c[PIGEON_SPOOL_INFLIGHT]    ? "sending"
                            : c[PIGEON_SPOOL_DEFERRED]  ? "deferred"
                            : c[PIGEON_SPOOL_QUEUED]    ? "queued"
                            : c[PIGEON_SPOOL_DELIVERED] ? "partial"
                                                        : "failed";
        char when[32];
        json_kv_string(&m.w, "state", state);
        iso_time(entry->created_ms, when, sizeof when);
        json_kv_string(&m.w, "created", when);
        if (send_at > 0) { /* not sent before this (the request's send_at) */
            iso_time(send_at, when, sizeof when);
            json_kv_string(&m.w, "send_at", when);
        }
        json_kv_string(&m.w, "message_id", entry->message_id);
        json_kv_string(&m.w, "account", entry->account);
        json_key(&m.w, "recipients");
        json_array_begin(&m.w);
        for (size_t i = 0; i < entry->rcpt_count; i++)
            write_rcpt(&m.w, &entry->rcpts[i]);
        json_array_end(&m.w);
    }
    json_object_end(&m.w);
    mem_close(&m);
    pigeon_spool_entry_free(entry);
    serve_job_json(ctx, job, 200, m.data, m.len, job->queue_id);
    free(m.data);
}

/*
 * DELETE: the check and the delete are one atomic step in the spool (pg_spool_cancel), so
 * a daemon claiming the message at the same moment either finds it gone or has it in
 * flight, and then the answer is 409 ("being sent"), never a 204 for a message that goes
 * out anyway. A 409 says nothing changed; 204 that nothing of it will be sent.
 */
static void done_cancel(serve_ctx *ctx, serve_job *job)
{
    int64_t cancelled = 0;
    pg_spool_cancel_result res = PG_SPOOL_CANCEL_GONE;
    if (owned(ctx, job, &cancelled, NULL) != 0)
        return;
    pigeon_err e = pg_spool_cancel(ctx->spool, job->queue_id, pigeon_spool_now_ms(), &res);
    if (e != PIGEON_OK) {
        serve_job_problem(ctx, job, 503, pigeon_spool_error(ctx->spool), 1);
        return;
    }
    switch (res) {
    case PG_SPOOL_CANCELLED:
        serve_job_json(ctx, job, 204, NULL, 0, job->queue_id);
        return;
    case PG_SPOOL_CANCEL_INFLIGHT:
        serve_job_problem(ctx, job, 409, "being sent right now: not cancelled", 0);
        return;
    case PG_SPOOL_CANCEL_NOTHING:
        serve_job_problem(ctx, job, 409, "nothing left to send", 0);
        return;
    case PG_SPOOL_CANCEL_GONE:
        serve_job_problem(ctx, job, 409, cancelled ? "already cancelled" : "already delivered", 0);
        return;
    }
}

void serve_job_done(serve_ctx *ctx, serve_job *job)
{
    if (job->done != NULL) { /* an SMTP message: its session answers */
        job->done(ctx, job);
        serve_job_free(job);
        return;
    }
    switch (job->kind) {
    case SERVE_JOB_STORE:
        done_store(ctx, job);
        break;
    case SERVE_JOB_SHOW:
        done_show(ctx, job);
        break;
    case SERVE_JOB_CANCEL:
        done_cancel(ctx, job);
        break;
    }
    serve_job_free(job);
}
