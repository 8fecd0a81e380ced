/*
 * spool_pg_work.c - the PostgreSQL spool backend: claims, outcomes, administration and
 * reading bodies back (see spool_pg.c for connections and enqueue, spool_backend.h for the
 * contract).
 *
 * A claim (of one message or of a batch) is one statement (PQ_CLAIM in spool_pg.c): it
 * locks due messages with FOR UPDATE SKIP LOCKED, so that any number of daemons on any
 * number of hosts claim disjoint messages without waiting for each other, and moves their
 * due recipients under a fresh lease token. What the claim returns is then loaded
 * (messages, counts, small bodies) by the lease, which nobody else holds. Outcomes of a
 * batch are one call of pigeon_record() (the schema's function): delivered always,
 * anything else only under the lease, and messages with nothing left removed, atomically.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spool/spool_pg.h"
#include "util/utf8.h"

/* Due recipient rows a batch claim looks at per message wanted, and at least (as on
 * SQLite: a bound on the statement's work when other accounts' work is due first). */
#define SCAN_ROWS_PER_MESSAGE 8
#define SCAN_ROWS_MIN         256

/* Columns of a recipient row (PQ_CLAIM's RETURNING and PQ_RCPTS_ALL), after msg. */
enum {
    RC_MSG,
    RC_ID,
    RC_ADDR,
    RC_STATE,
    RC_ATTEMPTS,
    RC_DUE,
    RC_OWNER,
    RC_ERR,
    RC_CODE,
    RC_ENH,
    RC_TEXT,
    RC_UPDATED
};
/* Columns of a message row (PQ_LOAD_MSGS, PQ_MSG_BY_QID). */
enum { MC_ID, MC_QID, MC_MSGID, MC_ACCOUNT, MC_FROM, MC_SIZE, MC_CREATED, MC_SHA };

/* A body being read: one chunk at a time, as the generic layer asks. */
typedef struct pq_reader {
    int64_t msg;         /* the message's row id */
    int64_t seq;         /* the chunk held, -1 for none */
    unsigned char *data; /* its bytes */
    size_t len;          /* how many */
} pq_reader;

/* A claimed recipient row, for sorting by message then id. */
typedef struct claim_row {
    int64_t msg; /* its message */
    int64_t id;  /* its id */
    int row;     /* its row in the claim's result */
} claim_row;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pigeon_err nomem(pg_spool_pq *q)
{
    return pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
}

/* Copies s into out (at most PG_SPOOL_PQ_MAX_TEXT bytes, cut between characters), with
 * every byte that is not part of valid UTF-8 replaced by '?': PostgreSQL refuses invalid
 * text, and a server's reply may hold anything. */
static const char *clean_text(const char *s, char out[PG_SPOOL_PQ_MAX_TEXT + 1])
{
    size_t o = 0, len = s != NULL ? strlen(s) : 0;
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = pg_utf8_decode((const unsigned char *)s + i, len - i, NULL);
        if (n == 0) {
            if (o + 1 > PG_SPOOL_PQ_MAX_TEXT)
                break;
            out[o++] = '?';
            i++;
            continue;
        }
        if (o + n > PG_SPOOL_PQ_MAX_TEXT)
            break;
        memcpy(out + o, s + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return out;
}

/* ---- entries ---- */

/* A new entry from a message row (MC_* columns). */
static pigeon_err load_message(pg_spool_pq *q, const PGresult *res, int row,
                               pigeon_spool_entry **out)
{
    int oom = 0;
    pigeon_spool_entry *e = calloc(1, sizeof *e);
    *out = e;
    if (e == NULL)
        return nomem(q);
    snprintf(e->queue_id, sizeof e->queue_id, "%s", PQgetvalue(res, row, MC_QID));
    e->message_id = pg_spool_pq_dup(res, row, MC_MSGID, &oom);
    e->account = pg_spool_pq_dup(res, row, MC_ACCOUNT, &oom);
    e->mail_from = pg_spool_pq_dup(res, row, MC_FROM, &oom);
    e->size = pg_spool_pq_i64(res, row, MC_SIZE);
    e->created_ms = pg_spool_pq_i64(res, row, MC_CREATED);
    if (PQnfields(res) > MC_SHA)
        pg_spool_pq_bytea(res, row, MC_SHA, e->body_sha256, sizeof e->body_sha256);
    if (oom || e->message_id == NULL || e->account == NULL || e->mail_from == NULL)
        return nomem(q);
    return PIGEON_OK;
}

/* Appends recipient row (RC_* columns) to e. */
static pigeon_err add_rcpt(pg_spool_pq *q, const PGresult *res, int row, pigeon_spool_entry *e,
                           size_t *cap)
{
    int oom = 0;
    if (e->rcpt_count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        pigeon_spool_rcpt *n = realloc(e->rcpts, ncap * sizeof *n);
        if (n == NULL)
            return nomem(q);
        e->rcpts = n;
        *cap = ncap;
    }
    pigeon_spool_rcpt *r = &e->rcpts[e->rcpt_count++];
    memset(r, 0, sizeof *r);
    r->id = pg_spool_pq_i64(res, row, RC_ID);
    r->address = pg_spool_pq_dup(res, row, RC_ADDR, &oom);
    r->state = (pigeon_spool_state)pg_spool_pq_i64(res, row, RC_STATE);
    r->attempts = (int)pg_spool_pq_i64(res, row, RC_ATTEMPTS);
    r->next_ms = pg_spool_pq_i64(res, row, RC_DUE);
    r->lease_owner = pg_spool_pq_dup(res, row, RC_OWNER, &oom);
    r->last_err = (pigeon_err)pg_spool_pq_i64(res, row, RC_ERR);
    r->smtp_code = (int)pg_spool_pq_i64(res, row, RC_CODE);
    r->enhanced_code = pg_spool_pq_dup(res, row, RC_ENH, &oom);
    r->text = pg_spool_pq_dup(res, row, RC_TEXT, &oom);
    r->updated_ms = pg_spool_pq_i64(res, row, RC_UPDATED);
    return oom || r->address == NULL ? nomem(q) : PIGEON_OK;
}

/* Fills the per-state counts of the n entries (ids[i] is entry i's message). */
static pigeon_err load_counts(pg_spool_pq *q, const int64_t *ids, pigeon_spool_entry **e, size_t n)
{
    pg_spool_pq_arr a;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    pg_spool_pq_arr_init(&a, 20);
    for (size_t i = 0; i < n; i++)
        pg_spool_pq_arr_i64(&a, ids[i]);
    pg_spool_pq_p_arr(&p, &a);
    pigeon_err err =
        a.nomem ? nomem(q) : pg_spool_pq_run(q, PQ_LOAD_COUNTS, &p, 0, "counting recipients", &res);
    for (int row = 0; err == PIGEON_OK && row < PQntuples(res); row++) {
        int64_t msg = pg_spool_pq_i64(res, row, 0);
        int state = (int)pg_spool_pq_i64(res, row, 1);
        for (size_t i = 0; i < n; i++) {
            if (ids[i] != msg)
                continue;
            if (state >= 0 && state < PIGEON_SPOOL_NSTATES)
                e[i]->count[state] = (size_t)pg_spool_pq_i64(res, row, 2);
            int64_t due = pg_spool_pq_i64(res, row, 3);
            if (!PQgetisnull(res, row, 3) && (e[i]->next_ms == 0 || due < e[i]->next_ms))
                e[i]->next_ms = due;
        }
    }
    PQclear(res);
    pg_spool_pq_arr_free(&a);
    return err;
}

/* Loads the bytes of the claimed messages of at most inline_max bytes into their body. A
 * body whose chunks do not add up to its size is left out: reading it from the store then
 * reports the damage. */
static pigeon_err load_inline(pg_spool_pq *q, const int64_t *ids, pigeon_spool_entry **e, size_t n,
                              size_t inline_max)
{
    pg_spool_pq_arr a;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    pg_spool_pq_arr_init(&a, 20);
    for (size_t i = 0; i < n; i++)
        if (e[i]->size >= 0 && (uint64_t)e[i]->size <= inline_max)
            pg_spool_pq_arr_i64(&a, ids[i]);
    if (a.n == 0) {
        pg_spool_pq_arr_free(&a);
        return PIGEON_OK;
    }
    pg_spool_pq_p_arr(&p, &a);
    pigeon_err err =
        a.nomem ? nomem(q)
                : pg_spool_pq_run(q, PQ_LOAD_BODIES, &p, 1, "reading claimed messages", &res);
    pg_spool_pq_arr_free(&a);
    size_t *got = err == PIGEON_OK ? calloc(n, sizeof *got) : NULL;
    if (err == PIGEON_OK && got == NULL)
        err = nomem(q);
    for (int row = 0; err == PIGEON_OK && row < PQntuples(res); row++) {
        int64_t msg = pg_spool_pq_i64(res, row, 0);
        size_t len = (size_t)PQgetlength(res, row, 1);
        for (size_t i = 0; i < n; i++) {
            pigeon_spool_entry *x = e[i];
            if (ids[i] != msg || (uint64_t)x->size > inline_max)
                continue;
            if (x->body == NULL && got[i] == 0 &&
                (x->body = malloc(x->size > 0 ? (size_t)x->size : 1)) == NULL) {
                err = nomem(q);
                break;
            }
            if (len <= (size_t)x->size - got[i])
                memcpy((unsigned char *)x->body + got[i], PQgetvalue(res, row, 1), len);
            got[i] += len;
        }
    }
    for (size_t i = 0; got != NULL && i < n; i++) {
        if (e[i]->body == NULL && e[i]->size == 0 && (uint64_t)e[i]->size <= inline_max)
            e[i]->body = malloc(1);
        if (e[i]->body != NULL && got[i] != (size_t)e[i]->size) {
            free(e[i]->body);
            e[i]->body = NULL;
        }
    }
    free(got);
    PQclear(res);
    return err;
}

/* ---- claims ---- */

/* This process's holder row (added if new), 0 when no holder is known. */
static pigeon_err holder_id(pg_spool_pq *q, const pg_spool_holder *h, int64_t *id)
{
    PGresult *res = NULL;
    pg_spool_pq_params p = {0};
    *id = 0;
    if (h == NULL)
        return PIGEON_OK;
    if (q->holder_id != 0 && q->holder_pid == h->pid) {
        *id = q->holder_id;
        return PIGEON_OK;
    }
    pg_spool_pq_p_text(&p, h->host);
    pg_spool_pq_p_text(&p, h->boot_id);
    pg_spool_pq_p_i64(&p, h->pid);
    pg_spool_pq_p_i64(&p, h->started);
    pigeon_err err = pg_spool_pq_run(q, PQ_HOLDER_ID, &p, 0, "recording the lease holder", &res);
    if (err == PIGEON_OK && PQntuples(res) == 1) {
        *id = q->holder_id = pg_spool_pq_i64(res, 0, 0);
        q->holder_pid = h->pid;
    }
    PQclear(res);
    return err;
}

static int row_cmp(const void *a, const void *b)
{
    const claim_row *x = a, *y = b;
    if (x->msg != y->msg)
        return x->msg < y->msg ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Builds the jobs of a claim from its rows (sorted by message), loading the messages. */
static pigeon_err build_jobs(pg_spool_pq *q, const pg_spool_claim_req *req, const PGresult *claim,
                             claim_row *rows, int nrows, int64_t *ids, pigeon_spool_entry **jobs,
                             size_t *count)
{
    pg_spool_pq_arr a;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    size_t n = 0;
    pg_spool_pq_arr_init(&a, 20);
    for (int i = 0; i < nrows; i++)
        if (i == 0 || rows[i].msg != rows[i - 1].msg)
            pg_spool_pq_arr_i64(&a, ids[n++] = rows[i].msg);
    pg_spool_pq_p_arr(&p, &a);
    pigeon_err err =
        a.nomem ? nomem(q)
                : pg_spool_pq_run(q, PQ_LOAD_MSGS, &p, 0, "loading claimed messages", &res);
    pg_spool_pq_arr_free(&a);
    for (size_t j = 0; err == PIGEON_OK && j < n; j++) {
        for (int row = 0; row < PQntuples(res); row++)
            if (pg_spool_pq_i64(res, row, MC_ID) == ids[j])
                err = load_message(q, res, row, &jobs[j]);
        if (err == PIGEON_OK && jobs[j] == NULL)
            err = pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND,
                                "spool: a claimed message was deleted meanwhile");
        *count = j + 1;
    }
    PQclear(res);
    size_t cap = 0, j = 0;
    for (int i = 0; err == PIGEON_OK && i < nrows; i++) {
        if (i > 0 && rows[i].msg != rows[i - 1].msg)
            j++, cap = 0;
        err = add_rcpt(q, claim, rows[i].row, jobs[j], &cap);
    }
    for (size_t k = 0; err == PIGEON_OK && k < n; k++) {
        pigeon_spool_entry *e = jobs[k];
        e->lease_owner = strdup(req->owner);
        e->lease_until_ms = req->until_ms;
        e->lease_token = req->token;
        for (size_t i = 0; i < e->rcpt_count; i++)
            if (e->rcpts[i].attempts > e->attempt)
                e->attempt = e->rcpts[i].attempts;
        if (e->lease_owner == NULL)
            err = nomem(q);
    }
    if (err == PIGEON_OK)
        err = load_counts(q, ids, jobs, n);
    if (err == PIGEON_OK && req->inline_max > 0)
        err = load_inline(q, ids, jobs, n, req->inline_max);
    return err;
}

/* Runs the claim statement; *res its rows. A lost connection leaves the claim's outcome
 * unknown: its token is kept, and its recipients given back after the reconnect. */
static pigeon_err take(pg_spool_pq *q, const pg_spool_claim_req *req, size_t max, PGresult **res)
{
    pg_spool_pq_params p = {0};
    int64_t holder = 0;
    pigeon_err err = holder_id(q, req->holder, &holder);
    if (err != PIGEON_OK)
        return err;
    pg_spool_pq_p_i64(&p, req->now_ms);
    pg_spool_pq_p_text(&p, req->account);
    pg_spool_pq_p_i64(&p, (int64_t)max);
    pg_spool_pq_p_i64(&p, (int64_t)(max * SCAN_ROWS_PER_MESSAGE + SCAN_ROWS_MIN));
    pg_spool_pq_p_text(&p, req->owner);
    pg_spool_pq_p_i64(&p, req->token);
    pg_spool_pq_p_i64(&p, req->until_ms);
    if (holder != 0)
        pg_spool_pq_p_i64(&p, holder);
    else
        pg_spool_pq_p_text(&p, NULL);
    err = pg_spool_pq_run(q, PQ_CLAIM, &p, 0, "claiming recipients", res);
    if (err == PIGEON_ERR_NETWORK && q->ndoubt < sizeof q->doubt / sizeof q->doubt[0])
        q->doubt[q->ndoubt++] = req->token;
    return err;
}

/* Gives back what a claim took, when it cannot be handed to the caller. */
static void release_token(pg_spool_pq *q, int64_t token)
{
    PGresult *res = NULL;
    pg_spool_pq_params p = {0};
    char keep[sizeof q->diag->text];
    memcpy(keep, q->diag->text, sizeof keep);
    pg_spool_pq_p_i64(&p, token);
    pg_spool_pq_p_i64(&p, wall_ms());
    if (pg_spool_pq_run(q, PQ_RELEASE_TOKEN, &p, 0, "giving back a claim", &res) != PIGEON_OK &&
        q->ndoubt < sizeof q->doubt / sizeof q->doubt[0])
        q->doubt[q->ndoubt++] = token;
    PQclear(res);
    memcpy(q->diag->text, keep, sizeof keep);
}

void pg_spool_pq_settle_doubts(pg_spool_pq *q)
{
    size_t n = q->ndoubt;
    int64_t tokens[8];
    memcpy(tokens, q->doubt, n * sizeof tokens[0]);
    q->ndoubt = 0;
    for (size_t i = 0; i < n; i++)
        release_token(q, tokens[i]);
}

pigeon_err pg_spool_pq_claim_batch(void *be, const pg_spool_claim_req *req, size_t max,
                                   pigeon_spool_entry **jobs, size_t *count)
{
    pg_spool_pq *q = be;
    PGresult *res = NULL;
    *count = 0;
    pigeon_err err = take(q, req, max, &res);
    if (err != PIGEON_OK)
        return err;
    int nrows = PQntuples(res);
    if (nrows == 0) {
        PQclear(res);
        return PIGEON_OK;
    }
    claim_row *rows = calloc((size_t)nrows, sizeof *rows);
    int64_t *ids = calloc((size_t)nrows, sizeof *ids);
    if (rows == NULL || ids == NULL)
        err = nomem(q);
    for (int i = 0; err == PIGEON_OK && i < nrows; i++)
        rows[i] = (claim_row){pg_spool_pq_i64(res, i, RC_MSG), pg_spool_pq_i64(res, i, RC_ID), i};
    if (err == PIGEON_OK) {
        qsort(rows, (size_t)nrows, sizeof *rows, row_cmp);
        err = build_jobs(q, req, res, rows, nrows, ids, jobs, count);
    }
    if (err != PIGEON_OK) {
        for (size_t i = 0; i < *count; i++) {
            pigeon_spool_entry_free(jobs[i]);
            jobs[i] = NULL;
        }
        *count = 0;
        release_token(q, req->token);
    }
    free(rows);
    free(ids);
    PQclear(res);
    return err;
}

pigeon_err pg_spool_pq_claim(void *be, const pg_spool_claim_req *req, pigeon_spool_entry **job)
{
    size_t n = 0;
    *job = NULL;
    return pg_spool_pq_claim_batch(be, req, 1, job, &n);
}

/* ---- leases ---- */

/* Runs PQ_RENEW or PQ_RELEASE over every recipient of the n jobs; held[j] (if not NULL)
 * is set when a recipient of job j was updated. */
static pigeon_err per_rcpt(pg_spool_pq *q, int id, pigeon_spool_entry *const *jobs, size_t n,
                           int64_t ms, unsigned char *held)
{
    pg_spool_pq_arr ids, leases;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    pg_spool_pq_arr_init(&ids, 20);
    pg_spool_pq_arr_init(&leases, 20);
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < jobs[j]->rcpt_count; i++) {
            pg_spool_pq_arr_i64(&ids, jobs[j]->rcpts[i].id);
            pg_spool_pq_arr_i64(&leases, jobs[j]->lease_token);
        }
    }
    pg_spool_pq_p_arr(&p, &ids);
    pg_spool_pq_p_arr(&p, &leases);
    pg_spool_pq_p_i64(&p, ms);
    pigeon_err err = ids.nomem || leases.nomem
                         ? nomem(q)
                         : pg_spool_pq_run(q, id, &p, 0, "updating leases", &res);
    for (size_t j = 0; err == PIGEON_OK && held != NULL && j < n; j++) {
        held[j] = 0;
        for (int row = 0; row < PQntuples(res) && !held[j]; row++) {
            int64_t rid = pg_spool_pq_i64(res, row, 0);
            for (size_t i = 0; i < jobs[j]->rcpt_count; i++)
                if (jobs[j]->rcpts[i].id == rid)
                    held[j] = 1;
        }
    }
    PQclear(res);
    pg_spool_pq_arr_free(&ids);
    pg_spool_pq_arr_free(&leases);
    return err;
}

pigeon_err pg_spool_pq_renew_batch(void *be, pigeon_spool_entry *const *jobs, size_t n,
                                   int64_t until_ms, unsigned char *held)
{
    return per_rcpt(be, PQ_RENEW, jobs, n, until_ms, held);
}

pigeon_err pg_spool_pq_release_batch(void *be, pigeon_spool_entry *const *jobs, size_t n,
                                     int64_t now_ms)
{
    return per_rcpt(be, PQ_RELEASE, jobs, n, now_ms, NULL);
}

pigeon_err pg_spool_pq_renew(void *be, const pigeon_spool_entry *job, int64_t until_ms)
{
    pg_spool_pq *q = be;
    unsigned char held = 0;
    pigeon_spool_entry *const jobs[1] = {(pigeon_spool_entry *)job};
    pigeon_err err = per_rcpt(q, PQ_RENEW, jobs, 1, until_ms, &held);
    if (err == PIGEON_OK && !held)
        err = pg_spool_fail(q->diag, PIGEON_ERR_STATE,
                            "spool: the lease on %s is lost or has nothing left in flight",
                            job->queue_id);
    return err;
}

pigeon_err pg_spool_pq_release(void *be, const pigeon_spool_entry *job, int64_t now_ms)
{
    pigeon_spool_entry *const jobs[1] = {(pigeon_spool_entry *)job};
    return per_rcpt(be, PQ_RELEASE, jobs, 1, now_ms, NULL);
}

/* ---- outcomes ---- */

/* The arrays of pigeon_record(), in its parameter order. */
typedef struct record_args {
    pg_spool_pq_arr a[9]; /* ids, leases, states, dues, errs, codes, enhanced, texts, qids */
} record_args;

static void record_add(record_args *r, const pigeon_spool_entry *job, const pigeon_spool_outcome *o)
{
    char text[PG_SPOOL_PQ_MAX_TEXT + 1], enh[PG_SPOOL_PQ_MAX_TEXT + 1];
    pg_spool_pq_arr_i64(&r->a[0], job->rcpts[o->rcpt].id);
    pg_spool_pq_arr_i64(&r->a[1], job->lease_token);
    pg_spool_pq_arr_i32(&r->a[2], (int32_t)o->state);
    if (o->state == PIGEON_SPOOL_DEFERRED)
        pg_spool_pq_arr_i64(&r->a[3], o->next_ms);
    else
        pg_spool_pq_arr_text(&r->a[3], NULL);
    pg_spool_pq_arr_i32(&r->a[4], (int32_t)o->err);
    pg_spool_pq_arr_i32(&r->a[5], o->smtp_code);
    pg_spool_pq_arr_text(&r->a[6], o->enhanced_code ? clean_text(o->enhanced_code, enh) : NULL);
    pg_spool_pq_arr_text(&r->a[7], o->text ? clean_text(o->text, text) : NULL);
}

static int id_in(const PGresult *res, int64_t id)
{
    for (int row = 0; row < PQntuples(res); row++)
        if (pg_spool_pq_i64(res, row, 0) == id)
            return 1;
    return 0;
}

pigeon_err pg_spool_pq_record_batch(void *be, pigeon_spool_record_item *items, size_t n,
                                    int64_t now_ms)
{
    pg_spool_pq *q = be;
    record_args r;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    static const uint32_t oids[9] = {20, 20, 23, 20, 23, 23, 25, 25, 25};
    for (int i = 0; i < 9; i++)
        pg_spool_pq_arr_init(&r.a[i], oids[i]);
    int oom = 0;
    for (size_t k = 0; k < n; k++) {
        items[k].lost = 0;
        for (size_t i = 0; i < items[k].n; i++)
            record_add(&r, items[k].job, &items[k].outcomes[i]);
        pg_spool_pq_arr_text(&r.a[8], items[k].job->queue_id);
    }
    for (int i = 0; i < 9; i++) {
        oom |= r.a[i].nomem;
        pg_spool_pq_p_arr(&p, &r.a[i]);
    }
    pg_spool_pq_p_i64(&p, now_ms);
    pigeon_err err =
        oom ? nomem(q) : pg_spool_pq_run(q, PQ_RECORD, &p, 0, "recording outcomes", &res);
    for (size_t k = 0; err == PIGEON_OK && k < n; k++)
        for (size_t i = 0; i < items[k].n; i++) {
            const pigeon_spool_outcome *o = &items[k].outcomes[i];
            if (o->state != PIGEON_SPOOL_DELIVERED && !id_in(res, items[k].job->rcpts[o->rcpt].id))
                items[k].lost++;
        }
    PQclear(res);
    for (int i = 0; i < 9; i++)
        pg_spool_pq_arr_free(&r.a[i]);
    return err;
}

pigeon_err pg_spool_pq_record(void *be, const pigeon_spool_entry *job,
                              const pigeon_spool_outcome *outcomes, size_t n, int64_t now_ms,
                              size_t *lost)
{
    pigeon_spool_record_item item = {job, outcomes, n, 0};
    pigeon_err err = pg_spool_pq_record_batch(be, &item, 1, now_ms);
    *lost = item.lost;
    return err;
}

pigeon_err pg_spool_pq_throttle(void *be, const char *account, int64_t until_ms, const char *reason)
{
    pg_spool_pq *q = be;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    char text[PG_SPOOL_PQ_MAX_TEXT + 1];
    pg_spool_pq_p_text(&p, account);
    pg_spool_pq_p_i64(&p, until_ms);
    pg_spool_pq_p_text(&p, reason != NULL ? clean_text(reason, text) : NULL);
    pigeon_err err = pg_spool_pq_run(q, PQ_THROTTLE, &p, 0, "throttling an account", &res);
    PQclear(res);
    return err;
}

/* ---- holders ---- */

pigeon_err pg_spool_pq_holders(void *be, const char *host,
                               int (*fn)(void *ctx, const pg_spool_holder *holder), void *ctx)
{
    pg_spool_pq *q = be;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    pg_spool_pq_p_text(&p, host);
    pigeon_err err = pg_spool_pq_run(q, PQ_HOLDERS, &p, 0, "listing lease holders", &res);
    for (int row = 0; err == PIGEON_OK && row < PQntuples(res); row++) {
        pg_spool_holder h = {pg_spool_pq_i64(res, row, 0), PQgetvalue(res, row, 1),
                             PQgetvalue(res, row, 2), pg_spool_pq_i64(res, row, 3),
                             pg_spool_pq_i64(res, row, 4)};
        if (fn(ctx, &h) != 0)
            break;
    }
    PQclear(res);
    return err;
}

pigeon_err pg_spool_pq_reclaim(void *be, int64_t holder_id, int64_t now_ms, size_t *count)
{
    pg_spool_pq *q = be;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    *count = 0;
    pg_spool_pq_p_i64(&p, holder_id);
    pg_spool_pq_p_i64(&p, now_ms);
    pigeon_err err = pg_spool_pq_run(q, PQ_RECLAIM, &p, 0, "giving back leases", &res);
    if (err == PIGEON_OK)
        *count = (size_t)pg_spool_pq_i64(res, 0, 0);
    PQclear(res);
    return err;
}

/* ---- administration ---- */

pigeon_err pg_spool_pq_list(void *be, const char *account,
                            int (*fn)(void *ctx, const pigeon_spool_entry *entry), void *ctx)
{
    pg_spool_pq *q = be;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    pg_spool_pq_p_text(&p, account);
    pigeon_err err = pg_spool_pq_run(q, PQ_LIST, &p, 0, "listing the spool", &res);
    for (int row = 0; err == PIGEON_OK && row < PQntuples(res); row++) {
        pigeon_spool_entry e;
        memset(&e, 0, sizeof e);
        snprintf(e.queue_id, sizeof e.queue_id, "%s", PQgetvalue(res, row, MC_QID));
        e.message_id = PQgetvalue(res, row, MC_MSGID);
        e.account = PQgetvalue(res, row, MC_ACCOUNT);
        e.mail_from = PQgetvalue(res, row, MC_FROM);
        e.size = pg_spool_pq_i64(res, row, MC_SIZE);
        e.created_ms = pg_spool_pq_i64(res, row, MC_CREATED);
        for (int s = 0; s < PIGEON_SPOOL_NSTATES; s++)
            e.count[s] = (size_t)pg_spool_pq_i64(res, row, 7 + s);
        e.next_ms = pg_spool_pq_i64(res, row, 7 + PIGEON_SPOOL_NSTATES);
        if (fn(ctx, &e) != 0)
            break;
    }
    PQclear(res);
    return err;
}

pigeon_err pg_spool_pq_show(void *be, const char *queue_id, pigeon_spool_entry **out)
{
    pg_spool_pq *q = be;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    int64_t id = 0;
    size_t cap = 0;
    pg_spool_pq_p_text(&p, queue_id);
    pigeon_err err = pg_spool_pq_run(q, PQ_MSG_BY_QID, &p, 0, "finding a message", &res);
    if (err == PIGEON_OK && PQntuples(res) == 0)
        err = pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "spool: no message %s", queue_id);
    if (err == PIGEON_OK) {
        id = pg_spool_pq_i64(res, 0, MC_ID);
        err = load_message(q, res, 0, out);
        memset((*out)->body_sha256, 0, sizeof(*out)->body_sha256);
    }
    PQclear(res);
    res = NULL;
    if (err == PIGEON_OK)
        err = load_counts(q, &id, out, 1);
    pg_spool_pq_params r = {0};
    pg_spool_pq_p_i64(&r, id);
    if (err == PIGEON_OK)
        err = pg_spool_pq_run(q, PQ_RCPTS_ALL, &r, 0, "reading recipients", &res);
    for (int row = 0; err == PIGEON_OK && row < PQntuples(res); row++)
        err = add_rcpt(q, res, row, *out, &cap);
    PQclear(res);
    if (err != PIGEON_OK) {
        pigeon_spool_entry_free(*out);
        *out = NULL;
    }
    return err;
}

pigeon_err pg_spool_pq_retry(void *be, const char *queue_id, int include_failed, int64_t now_ms,
                             size_t *count)
{
    pg_spool_pq *q = be;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    *count = 0;
    pg_spool_pq_p_text(&p, queue_id);
    pg_spool_pq_p_i64(&p, now_ms);
    pg_spool_pq_p_i64(&p, include_failed != 0);
    pigeon_err err = pg_spool_pq_run(q, PQ_RETRY, &p, 0, "rescheduling recipients", &res);
    if (err == PIGEON_OK) {
        *count = (size_t)pg_spool_pq_i64(res, 0, 0);
        if (queue_id != NULL && pg_spool_pq_i64(res, 0, 1) == 0)
            err = pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "spool: no message %s", queue_id);
    }
    PQclear(res);
    return err;
}

/* Runs a statement that deletes; *count is the number of rows. */
static pigeon_err deleting(pg_spool_pq *q, int id, const char *queue_id, size_t *count,
                           const char *what)
{
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    if (queue_id != NULL)
        pg_spool_pq_p_text(&p, queue_id);
    pigeon_err err = pg_spool_pq_run(q, id, &p, 0, what, &res);
    if (err == PIGEON_OK)
        *count = (size_t)strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return err;
}

pigeon_err pg_spool_pq_remove(void *be, const char *queue_id)
{
    pg_spool_pq *q = be;
    size_t n = 0;
    pigeon_err err = deleting(q, PQ_DELETE, queue_id, &n, "deleting a message");
    if (err == PIGEON_OK && n == 0)
        err = pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "spool: no message %s", queue_id);
    return err;
}

pigeon_err pg_spool_pq_purge_failed(void *be, size_t *count)
{
    *count = 0;
    return deleting(be, PQ_PURGE, NULL, count, "purging failed messages");
}

pigeon_err pg_spool_pq_stats(void *be, int64_t now_ms, pigeon_spool_stats *out)
{
    pg_spool_pq *q = be;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    pg_spool_pq_p_i64(&p, now_ms);
    pigeon_err err = pg_spool_pq_run(q, PQ_STATS, &p, 0, "reading statistics", &res);
    if (err == PIGEON_OK) {
        out->messages = (size_t)pg_spool_pq_i64(res, 0, 0);
        out->bytes = pg_spool_pq_i64(res, 0, 1);
        for (int s = 0; s < PIGEON_SPOOL_NSTATES; s++)
            out->rcpts[s] = (size_t)pg_spool_pq_i64(res, 0, 2 + s);
        out->stale_leases = (size_t)pg_spool_pq_i64(res, 0, 7);
        out->throttled_accounts = (size_t)pg_spool_pq_i64(res, 0, 8);
        out->oldest_pending_ms = pg_spool_pq_i64(res, 0, 9);
    }
    PQclear(res);
    return err;
}

/* ---- reading bodies ---- */

pigeon_err pg_spool_pq_body_open(void *be, const char *queue_id, void **reader, int64_t *size,
                                 unsigned char sha256[32])
{
    pg_spool_pq *q = be;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    pg_spool_pq_p_text(&p, queue_id);
    pigeon_err err = pg_spool_pq_run(q, PQ_BODY_MSG, &p, 0, "opening a message", &res);
    if (err == PIGEON_OK && PQntuples(res) == 0)
        err = pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "spool: no message %s", queue_id);
    else if (err == PIGEON_OK && pg_spool_pq_bytea(res, 0, 2, sha256, 32) != 32)
        err = pg_spool_fail(q->diag, PIGEON_ERR_CORRUPT, "spool: message %s has no hash", queue_id);
    pq_reader *r = err == PIGEON_OK ? calloc(1, sizeof *r) : NULL;
    if (err == PIGEON_OK && r == NULL)
        err = nomem(q);
    if (err == PIGEON_OK) {
        r->msg = pg_spool_pq_i64(res, 0, 0);
        r->seq = -1;
        *size = pg_spool_pq_i64(res, 0, 1);
        *reader = r;
    }
    PQclear(res);
    return err;
}

/* Fetches chunk seq into the reader. */
static pigeon_err fetch_chunk(pg_spool_pq *q, pq_reader *r, int64_t seq)
{
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    pg_spool_pq_p_i64(&p, r->msg);
    pg_spool_pq_p_i64(&p, seq);
    pigeon_err err = pg_spool_pq_run(q, PQ_BODY_CHUNK, &p, 1, "reading a message", &res);
    if (err == PIGEON_OK && PQntuples(res) == 0)
        err = pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND,
                            "spool: the message was deleted while being read");
    if (err == PIGEON_OK) {
        size_t len = (size_t)PQgetlength(res, 0, 0);
        unsigned char *data = malloc(len > 0 ? len : 1);
        if (data == NULL)
            err = nomem(q);
        else {
            memcpy(data, PQgetvalue(res, 0, 0), len);
            free(r->data);
            r->data = data;
            r->len = len;
            r->seq = seq;
        }
    }
    PQclear(res);
    return err;
}

pigeon_err pg_spool_pq_body_read(void *be, void *reader, int64_t offset, void *buf, size_t cap,
                                 size_t *n)
{
    pq_reader *r = reader;
    int64_t seq = offset / PG_SPOOL_CHUNK;
    size_t within = (size_t)(offset % PG_SPOOL_CHUNK);
    *n = 0;
    if (seq != r->seq) {
        pigeon_err err = fetch_chunk(be, r, seq);
        if (err != PIGEON_OK)
            return err;
    }
    if (r->len <= within)
        return PIGEON_OK; /* short chunk: the generic layer reports the damage */
    size_t take = r->len - within < cap ? r->len - within : cap;
    memcpy(buf, r->data + within, take);
    *n = take;
    return PIGEON_OK;
}

void pg_spool_pq_body_close(void *be, void *reader)
{
    pq_reader *r = reader;
    (void)be;
    if (r == NULL)
        return;
    free(r->data);
    free(r);
}
