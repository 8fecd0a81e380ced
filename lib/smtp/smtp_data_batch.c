/*
 * smtp_data_batch.c - several messages over one SMTP session, one round trip each:
 * pigeon_smtp_send_batch (composed messages) and pigeon_smtp_send_pipelined (raw ones
 * pulled from the caller). RFC 2920 3.1: each message's end of data goes out with the
 * next one's RSET, MAIL, RCPTs and DATA. The transaction itself is smtp_data.c's.
 *
 * A batch pulls its messages one at a time from a source (a fixed array of composed
 * messages, or the caller's next function for raw ones) at the moment the next group is
 * about to be appended, so at most two are held: the one whose data is going out and the
 * one whose commands follow it.
 */
#include "smtp/smtp_data_int.h"

#include <stdlib.h>
#include <string.h>

/* One message of a batch. */
typedef struct batch_item {
    envelope env;            /* its envelope and recipient states */
    data_source src;         /* its composed message or raw reader */
    pigeon_smtp_raw raw;     /* the raw message as the caller described it (raw batches) */
    pigeon_send_result *res; /* its result (the caller's) */
    txn t;                   /* its transaction */
    int64_t started;         /* when its preparation began */
    int behind;              /* pulled while an earlier message was current */
    int replied;             /* its group's replies were read: its data may have gone out */
} batch_item;

typedef struct batch batch;

/* Where a batch's messages come from. */
typedef struct batch_source {
    /* Fills it->src.msg or it->raw, and it->res, with the next message; 0 when none. */
    int (*pull)(batch *b, batch_item *it);
    /* Called once its result is final; skipped: never tried (an earlier one broke). */
    void (*done)(batch *b, batch_item *it, int skipped);
} batch_source;

/* A batch in progress. */
struct batch {
    pigeon_smtp *s;              /* the session */
    const batch_source *from;    /* where the messages come from */
    pigeon_message *const *msgs; /* fixed batches: the messages (borrowed) */
    pigeon_send_result *results; /* fixed batches: one result per message (the caller's) */
    size_t n, k;                 /* fixed batches: count, and the next to pull */
    pigeon_smtp_next_fn next;    /* raw batches: the caller's source */
    pigeon_smtp_done_fn done;    /* raw batches: the caller's sink */
    void *ctx;                   /* raw batches: their context */
    pigeon_err first;            /* the error of the first message not fully sent */
    batch_item slot[2];          /* the current message and the next */
};

/* The group of item nxt, appended after the end of data of item cur. */
typedef struct batch_next {
    batch_item *cur; /* the message whose data ends */
    batch_item *nxt; /* the message whose group follows */
} batch_next;

/* Settles item it's result and hands it back to the source. */
static void batch_finish(batch *b, batch_item *it, int skipped)
{
    pigeon_smtp *s = b->s;
    s->res = it->res;
    pg_smtp_finish(s, &it->env);
    if (s->res->status == PIGEON_SEND_NONE)
        s->res->status = PIGEON_SEND_FAILED;
    pg_smtp_source_close(&it->src);
    pg_smtp_envelope_cleanup(&it->env);
    s->res->duration_ms = pg_now_ms() - it->started;
    if (b->first == PIGEON_OK)
        b->first = s->res->err != PIGEON_OK ? s->res->err : PIGEON_OK;
    b->from->done(b, it, skipped);
    memset(it, 0, sizeof *it);
}

/* Sets up item it's envelope and data source, composed or raw. */
static pigeon_err batch_envelope(pigeon_smtp *s, batch_item *it)
{
    pigeon_err err;
    if (it->src.msg != NULL) {
        if ((err = pg_smtp_message_envelope(s, it->src.msg, &it->env)) != PIGEON_OK)
            return err;
        it->src.wopts.allow_8bit = s->o.allow_8bit && s->caps.eightbitmime;
        it->src.wopts.smtputf8 = it->env.smtputf8 && s->caps.smtputf8;
    } else {
        if (it->raw.read == NULL) {
            pg_smtp_fail(s, PIGEON_FAIL_CONFIG, PIGEON_ERR_INVALID, "mail", "no message");
            return PIGEON_ERR_INVALID;
        }
        err = pg_smtp_raw_envelope(s, &it->env, it->raw.from, it->raw.rcpts, it->raw.rcpt_count);
        if (err != PIGEON_OK)
            return err;
        it->src.read = it->raw.read;
        it->src.read_ctx = it->raw.read_ctx;
        it->env.size = it->raw.size < 0 ? -1 : it->raw.size;
        it->env.is_8bit = it->raw.is_8bit != 0;
    }
    for (size_t i = 0; i < it->env.n; i++)
        it->env.st[i].in_txn = 1;
    if ((err = pg_smtp_source_open(&it->src)) != PIGEON_OK)
        return err;
    if (it->src.stream != NULL) {
        it->env.size = pigeon_message_stream_size(it->src.stream);
        it->env.is_8bit = pigeon_message_stream_is_8bit(it->src.stream);
    }
    return PIGEON_OK;
}

/* Prepares item it (envelope, stream, SIZE check). Returns 1 if it can be sent; a message
 * that cannot is finished at once with its failure. */
static int batch_prepare(batch *b, batch_item *it)
{
    pigeon_smtp *s = b->s;
    s->res = it->res;
    pigeon_send_result_cleanup(s->res);
    it->started = pg_now_ms();
    it->env.size = -1;
    pigeon_err err = batch_envelope(s, it);
    s->res->size = it->env.size;
    const pigeon_smtp_caps *c = &s->caps;
    if (err == PIGEON_OK && c->size_offered && c->size_max > 0 && it->env.size >= 0 &&
        (uint64_t)it->env.size > c->size_max) {
        pg_smtp_fail(s, PIGEON_FAIL_TOO_LARGE, PIGEON_ERR_TOO_LARGE, "mail",
                     "the message (%lld octets) is larger than the server accepts (SIZE "
                     "%llu); nothing was sent",
                     (long long)it->env.size, (unsigned long long)c->size_max);
        s->res->hint = pg_hint_for_situation(PG_HINT_TOO_LARGE_LOCAL, 0);
        err = PIGEON_ERR_TOO_LARGE;
    }
    if (err == PIGEON_OK)
        return 1;
    if (s->res->fail_class == PIGEON_FAIL_NONE)
        pg_smtp_fail(s, PIGEON_FAIL_DATA, err, "mail", "cannot compose the message: %s",
                     it->src.msg != NULL ? pigeon_message_error(it->src.msg)
                                         : pigeon_strerror(err));
    batch_finish(b, it, 0);
    return 0;
}

/* Pulls messages into it until one can be sent (prepared). Returns it, or NULL when the
 * source has no more. */
static batch_item *batch_next_ready(batch *b, batch_item *it)
{
    while (b->from->pull(b, it)) {
        if (batch_prepare(b, it))
            return it;
    }
    return NULL;
}

static void batch_append_group(pigeon_smtp *s, void *ctx)
{
    batch_next *bn = ctx;
    s->res = bn->nxt->res;
    pg_smtp_txn_group(s, &bn->nxt->env, &bn->nxt->t);
    s->res = bn->cur->res;
}

/* Runs the pipelined batch; returns on the first session failure, finishing the message
 * pulled but not tried with that failure. */
static void batch_run(batch *b)
{
    pigeon_smtp *s = b->s;
    batch_item *cur = batch_next_ready(b, &b->slot[0]);
    pigeon_err err = PIGEON_OK;
    if (cur != NULL) {
        pg_smtp_txn_group(s, &cur->env, &cur->t);
        err = pg_smtp_flush(s, s->t.mail, "mail");
    }
    while (cur != NULL && err == PIGEON_OK) {
        s->res = cur->res;
        if ((err = pg_smtp_txn_group_replies(s, &cur->env, &cur->t)) != PIGEON_OK)
            break;
        cur->replied = 1;
        batch_item *nxt = batch_next_ready(b, cur == &b->slot[0] ? &b->slot[1] : &b->slot[0]);
        if (nxt != NULL)
            nxt->behind = 1;
        s->res = cur->res;
        batch_next bn = {cur, nxt};
        next_group ng = {batch_append_group, &bn};
        err = pg_smtp_txn_data(s, &cur->env, &cur->src, &cur->t, nxt != NULL ? &ng : NULL);
        if (err == PIGEON_OK && nxt != NULL && !cur->t.sent_next) {
            batch_append_group(s, &bn);
            s->res = nxt->res;
            err = pg_smtp_flush(s, s->t.mail, "mail");
        }
        pigeon_send_result *broke = s->res;
        batch_finish(b, cur, 0);
        s->res = broke;
        cur = nxt;
    }
    if (cur == NULL)
        return;
    /* The session failed before cur's data began, during an earlier message or its own
     * group's replies: nothing of it can have been delivered. Pipelined behind an earlier
     * message, it is reported as skipped (the first message of a call never is, so that a
     * caller sending skipped ones again at once always makes progress). */
    pigeon_send_result *broke = s->res;
    int skipped = cur->behind && !cur->replied;
    s->res = cur->res;
    if (broke != cur->res)
        pg_smtp_fail(
            s, broke->fail_class != PIGEON_FAIL_NONE ? broke->fail_class : PIGEON_FAIL_NETWORK,
            broke->err != PIGEON_OK ? broke->err : PIGEON_ERR_NETWORK, "mail",
            "not sent: the connection failed during an earlier message");
    batch_finish(b, cur, skipped);
    s->res = broke;
}

/* Allocates the data buffer; checks the session can send. */
static pigeon_err batch_ready(pigeon_smtp *s)
{
    pigeon_err err = pg_smtp_check_ready(s);
    if (err == PIGEON_OK && s->chunk == NULL && (s->chunk = malloc(PG_SMTP_CHUNK)) == NULL)
        err = PIGEON_ERR_NOMEM;
    return err;
}

/* ---- fixed batches of composed messages ---- */

static int fixed_pull(batch *b, batch_item *it)
{
    if (b->k >= b->n)
        return 0;
    it->res = &b->results[b->k];
    it->src.msg = b->msgs[b->k];
    b->k++;
    return 1;
}

static void fixed_done(batch *b, batch_item *it, int skipped)
{
    (void)b;
    (void)it;
    (void)skipped;
}

static const batch_source fixed_source = {fixed_pull, fixed_done};

pigeon_err pigeon_smtp_send_batch(pigeon_smtp *s, pigeon_message *const *msgs, size_t n,
                                  pigeon_send_result *results)
{
    if (s == NULL || (n > 0 && (msgs == NULL || results == NULL)))
        return PIGEON_ERR_INVALID;
    /* VERP pipelines within each message (verp_deliver), the messages one after another. */
    if (!s->caps.pipelining || s->o.no_pipelining || s->o.rcpt_sender != NULL) {
        pigeon_err first = PIGEON_OK;
        for (size_t k = 0; k < n; k++) {
            pigeon_err err = msgs[k] != NULL ? pigeon_smtp_send_message(s, msgs[k], &results[k])
                                             : PIGEON_ERR_INVALID;
            if (first == PIGEON_OK)
                first = err;
        }
        return first;
    }
    batch b = {.s = s, .from = &fixed_source, .msgs = msgs, .results = results, .n = n};
    pigeon_err first = PIGEON_OK;
    for (size_t k = 0; k < n; k++) {
        pg_smtp_begin(s, &results[k]);
        if (pg_smtp_check_ready(s) != PIGEON_OK)
            first = PIGEON_ERR_STATE;
    }
    if (first == PIGEON_OK && n > 0)
        first = batch_ready(s);
    if (first != PIGEON_OK || n == 0)
        return first;
    s->deadline = s->o.total_timeout_ms > 0 ? pg_now_ms() + s->o.total_timeout_ms : 0;
    batch_run(&b);
    /* After a session failure the messages not pulled are not sent either. */
    pigeon_send_result *broke = s->res;
    for (; b.k < n; b.k++) {
        s->res = &results[b.k];
        pg_smtp_fail(
            s, broke->fail_class != PIGEON_FAIL_NONE ? broke->fail_class : PIGEON_FAIL_NETWORK,
            broke->err != PIGEON_OK ? broke->err : PIGEON_ERR_NETWORK, "mail",
            "not sent: the connection failed during an earlier message");
        s->res->status = pigeon_fail_class_is_temporary(s->res->fail_class) ? PIGEON_SEND_DEFERRED
                                                                            : PIGEON_SEND_FAILED;
        s->res = broke;
    }
    if (s->state != PG_ST_BROKEN)
        pg_smtp_set_state(s, PG_ST_READY);
    s->deadline = 0;
    for (size_t k = 0; k < n && first == PIGEON_OK; k++)
        first = results[k].err;
    return first;
}

/* ---- pulled batches of raw messages ---- */

static int raw_pull(batch *b, batch_item *it)
{
    memset(&it->raw, 0, sizeof it->raw);
    it->raw.size = -1;
    if (b->s->state == PG_ST_BROKEN || !b->next(b->ctx, &it->raw))
        return 0;
    if (it->raw.res == NULL) {
        b->first = PIGEON_ERR_INVALID;
        return 0;
    }
    it->res = it->raw.res;
    return 1;
}

static void raw_done(batch *b, batch_item *it, int skipped)
{
    b->done(b->ctx, &it->raw, skipped);
}

static const batch_source raw_source = {raw_pull, raw_done};

/* Without PIPELINING (or with VERP): one message at a time, each as by
 * pigeon_smtp_send_stream. */
static pigeon_err raw_one_by_one(pigeon_smtp *s, pigeon_smtp_next_fn next, pigeon_smtp_done_fn done,
                                 void *ctx)
{
    pigeon_err first = PIGEON_OK;
    pigeon_smtp_raw m;
    for (;;) {
        memset(&m, 0, sizeof m);
        m.size = -1;
        if (!pigeon_smtp_is_ready(s) || !next(ctx, &m))
            return first;
        pigeon_err err = PIGEON_ERR_INVALID;
        if (m.res == NULL)
            return PIGEON_ERR_INVALID;
        if (m.read != NULL && m.from != NULL && m.rcpts != NULL && m.rcpt_count > 0)
            err = pigeon_smtp_send_stream(s, m.from, m.rcpts, m.rcpt_count, m.read, m.read_ctx,
                                          m.size, m.is_8bit, m.res);
        else {
            pg_smtp_begin(s, m.res);
            pg_smtp_fail(s, PIGEON_FAIL_CONFIG, err, "mail",
                         "the message has no sender, no recipients or no reader");
            m.res->status = PIGEON_SEND_FAILED;
        }
        if (first == PIGEON_OK)
            first = err;
        done(ctx, &m, 0);
    }
}

pigeon_err pigeon_smtp_send_pipelined(pigeon_smtp *s, pigeon_smtp_next_fn next,
                                      pigeon_smtp_done_fn done, void *ctx)
{
    if (s == NULL || next == NULL || done == NULL)
        return PIGEON_ERR_INVALID;
    pg_smtp_begin(s, NULL);
    pigeon_err err = batch_ready(s);
    if (err != PIGEON_OK)
        return err;
    if (!s->caps.pipelining || s->o.no_pipelining || s->o.rcpt_sender != NULL)
        return raw_one_by_one(s, next, done, ctx);
    batch b = {.s = s, .from = &raw_source, .next = next, .done = done, .ctx = ctx};
    s->deadline = 0; /* each message has its own deadlines; a pulled batch has no end */
    batch_run(&b);
    if (s->state != PG_ST_BROKEN)
        pg_smtp_set_state(s, PG_ST_READY);
    s->res = &s->scratch;
    return b.first;
}
