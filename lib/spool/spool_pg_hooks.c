/*
 * spool_pg_hooks.c - the webhook outbox in the PostgreSQL spool (see spool/spool_hooks.h),
 * with the SQLite side's semantics (spool_sqlite_hooks.c), shared by every daemon of every
 * host on the database.
 *
 * Tables and trigger functions come with migration 4 (spool_pg_schema.c): hook_events
 * (the outbox), hook_sinks (each receiver's cursor and backoff), hook_keys (the webhooks
 * of API keys). Enabling the outbox creates statement triggers on rcpt and api_messages
 * that write a recipient's event in the very statement that stores its outcome (enqueue,
 * a batch of records, an import, a reclaim), over the statement's transition tables: one
 * INSERT ... SELECT per statement however many rows it touched. Outcome and event commit
 * together or not at all. Without a webhook the triggers do not exist and cost nothing.
 *
 * Order. A sequence number taken at insert does not give the order in which rows become
 * visible: a transaction that took 100 may commit after one that took 101, and a reader
 * that moved its cursor past 101 would never see 100. So an event is written with id
 * NULL, and readers give ids (from a sequence, in insertion order) to the committed
 * events that have none, under a transaction-scoped advisory lock: an id is only ever
 * given to a visible row, and after every id given before, so a cursor over ids never
 * skips one. A recipient's events come from transactions that follow one another (its
 * enqueue commits before it can be claimed, a claim before its outcome), so its events
 * get increasing ids: per-recipient order is kept.
 *
 * Several daemons. Each sink is served by one sender at a time, across every daemon and
 * host: a fetch takes a session advisory lock named after the sink with
 * pg_try_advisory_lock (the non-blocking SKIP LOCKED of locks: a daemon that finds it
 * taken skips the sink for now) and keeps it until done() has moved the cursor and
 * committed. Nothing is sent twice in the normal case, and the sink's order holds. The
 * lock belongs to the connection, so a daemon killed in the middle of a POST frees it at
 * once (the server sees the connection close); its events are then sent again by the
 * next daemon (delivery is at least once, as on SQLite). A sink's backoff (next_ms) is
 * stored, so one daemon's failure delays the others too. Session locks need a session:
 * behind a pooler in transaction mode (PgBouncer), use session pooling for daemons.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spool/spool_hooks.h"
#include "spool/spool_pg.h"

/* The advisory locks (any constants): giving ids, one sink's sender (with the hash of
 * its name: the two-integer form), enabling. */
#define LOCK_IDS    "7063537002"
#define LOCK_SINK   "70635"
#define LOCK_ENABLE "7063537004"

#define EVENT_COLS                                                                                 \
    "type, queue_id, rcpt, account, key_id, message_id, code, enhanced, text, attempts, at_ms"
#define WANTED "($2::text IS NULL OR key_id = $2::text) AND (($3::bigint >> type) & 1) = 1"

static const char create_triggers[] =
    "CREATE OR REPLACE TRIGGER hook_rcpt_queued AFTER INSERT ON rcpt REFERENCING NEW TABLE AS"
    " new_rows FOR EACH STATEMENT EXECUTE FUNCTION pigeon_hook_queued();"
    "CREATE OR REPLACE TRIGGER hook_rcpt_outcome AFTER UPDATE ON rcpt REFERENCING OLD TABLE AS"
    " old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pigeon_hook_outcome();"
    "CREATE OR REPLACE TRIGGER hook_api_owner AFTER INSERT ON api_messages REFERENCING NEW TABLE"
    " AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pigeon_hook_owner();";

static const char drop_triggers[] = "DROP TRIGGER IF EXISTS hook_rcpt_queued ON rcpt;"
                                    "DROP TRIGGER IF EXISTS hook_rcpt_outcome ON rcpt;"
                                    "DROP TRIGGER IF EXISTS hook_api_owner ON api_messages;";

/* Runs sql for one integer (0 when there is no row). */
static pigeon_err one_int(pg_spool_pq *q, const char *sql, const pg_spool_pq_params *p,
                          const char *what, int64_t *out)
{
    PGresult *res = NULL;
    pigeon_err err = pg_spool_pq_exec_params(q, sql, p, what, &res);
    *out = err == PIGEON_OK && PQntuples(res) > 0 ? pg_spool_pq_i64(res, 0, 0) : 0;
    PQclear(res);
    return err;
}

/* Ends a transaction of ours: COMMIT when err is PIGEON_OK, else ROLLBACK (keeping the
 * diagnosis). */
static pigeon_err tx_end(pg_spool_pq *q, pigeon_err err)
{
    if (err == PIGEON_OK)
        return pg_spool_pq_exec(q, "COMMIT", "committing");
    char keep[sizeof q->diag->text];
    memcpy(keep, q->diag->text, sizeof keep);
    if (q->conn != NULL)
        PQclear(PQexec(q->conn, "ROLLBACK"));
    memcpy(q->diag->text, keep, sizeof keep);
    return err;
}

/* Gives back the sink lock this connection holds, if any. */
static void sink_unlock(pg_spool_pq *q)
{
    if (!q->hook_locked)
        return;
    q->hook_locked = 0;
    pg_spool_pq_params p = {0};
    pg_spool_pq_p_i64(&p, q->hook_key);
    if (q->conn != NULL)
        pg_spool_pq_exec_params(q, "SELECT pg_advisory_unlock(" LOCK_SINK ", $1::int)", &p,
                                "unlocking a webhook", NULL);
}

static pigeon_err pq_enabled(void *be, int *on)
{
    int64_t n = 0;
    pigeon_err err = one_int(be,
                             "SELECT count(*) FROM pg_trigger WHERE tgname = 'hook_rcpt_outcome'"
                             " AND tgrelid = 'rcpt'::regclass",
                             NULL, "reading the schema", &n);
    *on = n > 0;
    return err;
}

static pigeon_err pq_enable(void *be, int on)
{
    pg_spool_pq *q = be;
    if (q->in_tx)
        return pg_spool_fail(q->diag, PIGEON_ERR_STATE, "spool: inside a batch");
    int now = 0;
    pigeon_err err = pq_enabled(q, &now);
    if (err != PIGEON_OK || now == (on != 0))
        return err; /* nothing to change: no DDL, no lock on the queue's tables */
    /* Two daemons starting at once change the triggers once. */
    err = pg_spool_pq_exec(q, "BEGIN; SELECT pg_advisory_xact_lock(" LOCK_ENABLE ")",
                           "locking the webhook triggers");
    if (err == PIGEON_OK)
        err = pg_spool_pq_exec(q, on ? create_triggers : drop_triggers,
                               "changing the webhook triggers");
    return tx_end(q, err);
}

/* The event's strings as parameters. */
static void event_params(pg_spool_pq_params *p, const pg_spool_hook_event *ev)
{
    pg_spool_pq_p_i64(p, (int64_t)ev->type);
    pg_spool_pq_p_text(p, ev->queue_id != NULL && ev->queue_id[0] ? ev->queue_id : NULL);
    pg_spool_pq_p_text(p, ev->rcpt);
    pg_spool_pq_p_text(p, ev->account);
    pg_spool_pq_p_text(p, ev->key_id);
    pg_spool_pq_p_text(p, ev->message_id);
    pg_spool_pq_p_i64(p, ev->smtp_code);
    pg_spool_pq_p_text(p, ev->enhanced);
    pg_spool_pq_p_text(p, ev->text);
    pg_spool_pq_p_i64(p, ev->attempts);
    pg_spool_pq_p_i64(p, ev->at_ms);
}

static pigeon_err pq_add(void *be, const pg_spool_hook_event *ev)
{
    pg_spool_pq *q = be;
    int on = 0;
    pigeon_err err = pq_enabled(q, &on);
    if (err != PIGEON_OK || !on)
        return err;
    pg_spool_pq_params p = {0};
    event_params(&p, ev);
    /* Alone it is its own transaction; in a batch, a part of it. */
    return pg_spool_pq_exec_params(
        q,
        "INSERT INTO hook_events(" EVENT_COLS ") VALUES ($1::int, $2::text, $3::text,"
        " coalesce($4::text, (SELECT account FROM message WHERE queue_id = $2::text), ''),"
        " coalesce($5::text, (SELECT key_id FROM api_messages WHERE queue_id = $2::text),"
        " ''), coalesce($6::text, (SELECT message_id FROM message WHERE queue_id ="
        " $2::text)), $7::int, $8::text, left($9::text, 1000), $10::int, $11::bigint)",
        &p, "adding a webhook event", NULL);
}

/* Makes the sink's row, starting at the oldest event kept, if it has none. */
static pigeon_err sink_row(pg_spool_pq *q, const char *name)
{
    pg_spool_pq_params p = {0};
    pg_spool_pq_p_text(&p, name);
    return pg_spool_pq_exec_params(
        q,
        "INSERT INTO hook_sinks(name, cursor) VALUES ($1::text, coalesce((SELECT min(id)"
        " - 1 FROM hook_events), 0)) ON CONFLICT (name) DO NOTHING",
        &p, "adding a webhook receiver", NULL);
}

/* Gives ids to the committed events that have none, in the order they were written
 * (inside the caller's transaction, under the lock that orders every such giving). */
static pigeon_err give_ids(pg_spool_pq *q)
{
    pigeon_err err = pg_spool_pq_exec(q, "SELECT pg_advisory_xact_lock(" LOCK_IDS ")",
                                      "ordering webhook events");
    /* (a new statement: its snapshot sees what the previous holder of the lock did) */
    if (err == PIGEON_OK)
        err = pg_spool_pq_exec_params(
            q,
            "UPDATE hook_events h SET id = s.pos FROM (SELECT ins, nextval('hook_event_id')"
            " AS pos FROM (SELECT ins FROM hook_events WHERE id IS NULL ORDER BY ins) o) s"
            " WHERE h.ins = s.ins",
            NULL, "ordering webhook events", NULL);
    return err;
}

/* Reads an event row (columns id, EVENT_COLS) into ev (strings borrowed from res). */
static void event_row(const PGresult *res, int row, pg_spool_hook_event *ev)
{
    const char *col[12];
    for (int i = 0; i < 12; i++)
        col[i] = PQgetisnull(res, row, i) ? NULL : PQgetvalue(res, row, i);
    memset(ev, 0, sizeof *ev);
    ev->id = pg_spool_pq_i64(res, row, 0);
    ev->type = (pg_hook_type)pg_spool_pq_i64(res, row, 1);
    ev->queue_id = col[2];
    ev->rcpt = col[3] != NULL ? col[3] : "";
    ev->account = col[4];
    ev->key_id = col[5] != NULL ? col[5] : "";
    ev->message_id = col[6];
    ev->smtp_code = (int)pg_spool_pq_i64(res, row, 7);
    ev->enhanced = col[8];
    ev->text = col[9];
    ev->attempts = (int)pg_spool_pq_i64(res, row, 10);
    ev->at_ms = pg_spool_pq_i64(res, row, 11);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Inside fetch's transaction: the events after the sink's cursor (unless its backoff,
 * perhaps set by another daemon, still runs), and the newest id when fewer came. */
static pigeon_err fetch_events(pg_spool_pq *q, const pg_spool_hook_sink *sink, size_t max,
                               int (*fn)(void *, const pg_spool_hook_event *), void *ctx,
                               int64_t *upto, size_t *n)
{
    PGresult *res = NULL;
    pg_spool_pq_params p = {0};
    pg_spool_pq_p_text(&p, sink->name);
    pigeon_err err =
        pg_spool_pq_exec_params(q, "SELECT cursor, next_ms FROM hook_sinks WHERE name = $1::text",
                                &p, "reading a webhook cursor", &res);
    if (err != PIGEON_OK || PQntuples(res) != 1) {
        PQclear(res);
        return err;
    }
    int64_t cursor = pg_spool_pq_i64(res, 0, 0), next_ms = pg_spool_pq_i64(res, 0, 1);
    PQclear(res);
    if (next_ms > wall_ms())
        return PIGEON_OK;
    pg_spool_pq_p_text(&p, sink->key_id);
    pg_spool_pq_p_i64(&p, sink->types);
    pg_spool_pq_p_i64(&p, cursor);
    pg_spool_pq_p_i64(&p, (int64_t)max);
    err = pg_spool_pq_exec_params(q,
                                  "SELECT id, " EVENT_COLS
                                  " FROM hook_events WHERE id > $4::bigint AND " WANTED
                                  " AND $1::text IS NOT NULL ORDER BY id LIMIT $5::bigint",
                                  &p, "reading webhook events", &res);
    int stopped = 0;
    int64_t last = cursor;
    pg_spool_hook_event ev;
    for (int row = 0; err == PIGEON_OK && row < PQntuples(res) && !stopped; row++) {
        event_row(res, row, &ev);
        last = ev.id;
        (*n)++;
        stopped = fn(ctx, &ev) != 0;
    }
    PQclear(res);
    int64_t newest = 0;
    /* Fewer than asked: nothing after them is for this sink, up to the newest event. */
    if (err == PIGEON_OK && *n < max && !stopped)
        err = one_int(q, "SELECT coalesce(max(id), 0) FROM hook_events", NULL,
                      "reading webhook events", &newest);
    *upto = newest > last ? newest : last;
    return err;
}

static pigeon_err pq_fetch(void *be, const pg_spool_hook_sink *sink, size_t max,
                           int (*fn)(void *ctx, const pg_spool_hook_event *ev), void *ctx,
                           int64_t *upto)
{
    pg_spool_pq *q = be;
    PGresult *res = NULL;
    pg_spool_pq_params p = {0};
    size_t n = 0;
    *upto = 0;
    if (q->in_tx)
        return pg_spool_fail(q->diag, PIGEON_ERR_STATE, "spool: inside a batch");
    sink_unlock(q); /* a fetch not followed by done() */
    pigeon_err err = sink_row(q, sink->name);
    pg_spool_pq_p_text(&p, sink->name);
    if (err == PIGEON_OK)
        err = pg_spool_pq_exec_params(q,
                                      "SELECT pg_try_advisory_lock(" LOCK_SINK
                                      ", hashtext($1::text)),"
                                      " hashtext($1::text)",
                                      &p, "locking a webhook", &res);
    if (err != PIGEON_OK || PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        PQclear(res);
        return err; /* another sender (perhaps another daemon's) has it: nothing now */
    }
    q->hook_locked = 1;
    q->hook_key = (int32_t)pg_spool_pq_i64(res, 0, 1);
    PQclear(res);
    err = pg_spool_pq_exec(q, "BEGIN", "reading webhook events");
    if (err == PIGEON_OK)
        err = give_ids(q);
    if (err == PIGEON_OK)
        err = fetch_events(q, sink, max, fn, ctx, upto, &n);
    err = tx_end(q, err);
    if (err != PIGEON_OK || n == 0)
        sink_unlock(q); /* kept only while events are out, until done() */
    if (err != PIGEON_OK)
        *upto = 0;
    return err;
}

static pigeon_err pq_done(void *be, const char *sink, int ok, int give_up, int64_t upto,
                          size_t count, int64_t next_ms, const char *error)
{
    pg_spool_pq *q = be;
    pg_spool_pq_params p = {0};
    char err_text[256];
    snprintf(err_text, sizeof err_text, "%s", error != NULL ? error : "");
    pg_spool_pq_p_text(&p, sink);
    pg_spool_pq_p_i64(&p, ok != 0);
    pg_spool_pq_p_i64(&p, give_up != 0);
    pg_spool_pq_p_i64(&p, upto);
    pg_spool_pq_p_i64(&p, (int64_t)count);
    pg_spool_pq_p_i64(&p, next_ms);
    pg_spool_pq_p_text(&p, error != NULL ? err_text : NULL);
    pigeon_err err = pg_spool_pq_exec_params(
        q,
        "UPDATE hook_sinks SET"
        " cursor = CASE WHEN $2::int <> 0 OR $3::int <> 0 THEN"
        " greatest(cursor, $4::bigint) ELSE cursor END,"
        " failures = CASE WHEN $2::int <> 0 OR $3::int <> 0 THEN 0 ELSE"
        " failures + 1 END,"
        " next_ms = CASE WHEN $2::int <> 0 THEN 0 ELSE $6::bigint END,"
        " delivered = delivered + CASE WHEN $2::int <> 0 THEN $5::bigint ELSE 0"
        " END, given_up = given_up + CASE WHEN $3::int <> 0 AND $2::int = 0"
        " THEN $5::bigint ELSE 0 END,"
        " last_error = CASE WHEN $2::int <> 0 THEN last_error ELSE $7::text END"
        " WHERE name = $1::text",
        &p, "recording a webhook delivery", NULL);
    /* After the commit: the next sender reads the moved cursor. */
    if (!q->in_tx)
        sink_unlock(q);
    return err;
}

static pigeon_err pq_state_get(void *be, const pg_spool_hook_sink *sink, pg_spool_hook_state *out)
{
    pg_spool_pq *q = be;
    PGresult *res = NULL;
    pg_spool_pq_params p = {0};
    pigeon_err err = sink_row(q, sink->name);
    pg_spool_pq_p_text(&p, sink->name);
    pg_spool_pq_p_text(&p, sink->key_id);
    pg_spool_pq_p_i64(&p, sink->types);
    if (err == PIGEON_OK)
        err = pg_spool_pq_exec_params(
            q,
            "SELECT cursor, failures, next_ms, delivered, given_up, last_error,"
            " (SELECT count(*) FROM hook_events WHERE (id IS NULL OR id > s.cursor) AND"
            " " WANTED ") FROM hook_sinks s WHERE name = $1::text",
            &p, "reading a webhook", &res);
    if (err == PIGEON_OK && PQntuples(res) == 1) {
        out->cursor = pg_spool_pq_i64(res, 0, 0);
        out->failures = pg_spool_pq_i64(res, 0, 1);
        out->next_ms = pg_spool_pq_i64(res, 0, 2);
        out->delivered = pg_spool_pq_i64(res, 0, 3);
        out->given_up = pg_spool_pq_i64(res, 0, 4);
        snprintf(out->last_error, sizeof out->last_error, "%s", PQgetvalue(res, 0, 5));
        out->pending = pg_spool_pq_i64(res, 0, 6);
    }
    PQclear(res);
    return err;
}

static pigeon_err pq_trim(void *be, const char *const *sinks, size_t n, size_t *count)
{
    pg_spool_pq *q = be;
    pg_spool_pq_arr names;
    pg_spool_pq_params p = {0};
    int64_t deleted = 0;
    *count = 0;
    if (n == 0)
        return PIGEON_OK;
    pg_spool_pq_arr_init(&names, 25);
    for (size_t i = 0; i < n; i++)
        pg_spool_pq_arr_text(&names, sinks[i]);
    if (names.nomem) {
        pg_spool_pq_arr_free(&names);
        return pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    }
    pg_spool_pq_p_arr(&p, &names);
    /* The newest event stays (as on SQLite): ids come from a sequence and never repeat,
     * but a sink made later starts from the oldest kept. A sink without a row holds
     * everything (its cursor counts as -1). */
    pigeon_err err = one_int(q,
                             "WITH c AS (SELECT min(coalesce(s.cursor, -1)) AS least FROM"
                             " unnest($1::text[]) AS u(name) LEFT JOIN hook_sinks s ON s.name ="
                             " u.name), d AS (DELETE FROM hook_events WHERE id <= (SELECT least"
                             " FROM c) AND id < (SELECT max(id) FROM hook_events) RETURNING 1)"
                             " SELECT count(*) FROM d",
                             &p, "trimming webhook events", &deleted);
    pg_spool_pq_arr_free(&names);
    *count = (size_t)deleted;
    return err;
}

static pigeon_err pq_count(void *be, int64_t *total, int64_t *oldest_ms)
{
    PGresult *res = NULL;
    pigeon_err err =
        pg_spool_pq_exec_params(be, "SELECT count(*), coalesce(min(at_ms), 0) FROM hook_events",
                                NULL, "counting webhook events", &res);
    if (err == PIGEON_OK) {
        *total = pg_spool_pq_i64(res, 0, 0);
        *oldest_ms = pg_spool_pq_i64(res, 0, 1);
    }
    PQclear(res);
    return err;
}

static pigeon_err pq_key_set(void *be, const pg_spool_hook_key *hook)
{
    pg_spool_pq_params p = {0};
    char types[24];
    pg_spool_pq_p_text(&p, hook->key_id);
    if (hook->url[0] == '\0')
        return pg_spool_pq_exec_params(be, "DELETE FROM hook_keys WHERE key_id = $1::text", &p,
                                       "storing a key's webhook", NULL);
    snprintf(types, sizeof types, "%u", hook->types);
    pg_spool_pq_p_text(&p, hook->url);
    pg_spool_pq_p_text(&p, hook->secret);
    pg_spool_pq_p_text(&p, types);
    return pg_spool_pq_exec_params(
        be,
        "INSERT INTO hook_keys(key_id, url, secret, types) VALUES ($1::text, $2::text,"
        " $3::text, $4::bigint) ON CONFLICT (key_id) DO UPDATE SET url = excluded.url,"
        " secret = excluded.secret, types = excluded.types",
        &p, "storing a key's webhook", NULL);
}

static pigeon_err pq_key_list(void *be, int (*fn)(void *ctx, const pg_spool_hook_key *hook),
                              void *ctx)
{
    PGresult *res = NULL;
    pigeon_err err = pg_spool_pq_exec_params(
        be, "SELECT key_id, url, secret, types FROM hook_keys ORDER BY key_id", NULL,
        "listing key webhooks", &res);
    pg_spool_hook_key h;
    for (int row = 0; err == PIGEON_OK && row < PQntuples(res); row++) {
        memset(&h, 0, sizeof h);
        snprintf(h.key_id, sizeof h.key_id, "%s", PQgetvalue(res, row, 0));
        snprintf(h.url, sizeof h.url, "%s", PQgetvalue(res, row, 1));
        snprintf(h.secret, sizeof h.secret, "%s", PQgetvalue(res, row, 2));
        h.types = (unsigned)pg_spool_pq_i64(res, row, 3);
        int stop = fn(ctx, &h);
        explicit_bzero(h.secret, sizeof h.secret);
        if (stop != 0)
            break;
    }
    if (res != NULL) {
        /* the secrets, out of libpq's buffers too */
        for (int row = 0; row < PQntuples(res); row++)
            explicit_bzero(PQgetvalue(res, row, 2), (size_t)PQgetlength(res, row, 2));
    }
    PQclear(res);
    return err;
}

const pg_spool_hooks_ops pg_spool_pq_hooks_ops = {
    .add = pq_add,
    .enable = pq_enable,
    .enabled = pq_enabled,
    .fetch = pq_fetch,
    .done = pq_done,
    .state_get = pq_state_get,
    .trim = pq_trim,
    .count = pq_count,
    .key_set = pq_key_set,
    .key_list = pq_key_list,
};
