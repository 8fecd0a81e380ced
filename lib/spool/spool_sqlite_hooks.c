/*
 * spool_sqlite_hooks.c - the webhook outbox in the SQLite spool (see spool/spool_hooks.h).
 *
 * Three tables beside the queue's, created on first use: hook_events (the outbox; ids
 * only grow, because trimming always keeps the newest event, so that SQLite never hands
 * out an id again: sinks' cursors rely on it), hook_sinks (each receiver's cursor and
 * backoff) and hook_keys (the webhooks of API keys).
 *
 * Why triggers: the queue stores an outcome on several paths (a direct record, a batch,
 * and the outcome journal applied at sync or by the daemon reclaiming a dead one's leases;
 * see spool_sqlite_journal.c). A trigger on the recipient table writes the event in the
 * very statement that stores the outcome, so the two commit together on every path, and
 * the journal's replay after a kill -9 produces the event when it produces the outcome.
 * The triggers exist only while the outbox is enabled, so a spool without webhooks pays
 * nothing. The WHEN clauses pick the transitions that are outcomes: in flight to
 * deferred, delivered or failed (an attempt ended), and anything to delivered; a lease
 * given back unused (attempts decremented) and `queue retry` (from deferred or failed)
 * are not outcomes.
 *
 * The API key of a message (api_messages, spool_sqlite_api.c) is stored after its
 * enqueue in the same transaction, so its "queued" events get their key from a trigger
 * on api_messages; later events look it up when they are written.
 */
#include <stdio.h>
#include <string.h>

#include "spool/spool_api.h"
#include "spool/spool_hooks.h"
#include "spool/spool_sqlite.h"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS hook_events ("
    " id INTEGER PRIMARY KEY, type INTEGER NOT NULL, queue_id TEXT,"
    " rcpt TEXT NOT NULL, account TEXT, key_id TEXT, message_id TEXT,"
    " code INTEGER NOT NULL DEFAULT 0, enhanced TEXT, text TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0, at_ms INTEGER NOT NULL);"
    /* Only "queued" events are looked up by message (their key, an undone enqueue): one
     * small index, instead of one per event written in the daemon's hot path. */
    "CREATE INDEX IF NOT EXISTS hook_events_queued ON hook_events(queue_id) WHERE type = 0;"
    "CREATE TABLE IF NOT EXISTS hook_sinks ("
    " name TEXT PRIMARY KEY, cursor INTEGER NOT NULL, failures INTEGER NOT NULL DEFAULT 0,"
    " next_ms INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0,"
    " given_up INTEGER NOT NULL DEFAULT 0, last_error TEXT);"
    "CREATE TABLE IF NOT EXISTS hook_keys ("
    " key_id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL,"
    " types INTEGER NOT NULL);";

/* The key of a queued message, or NULL. */
#define KEY_OF(qid) "(SELECT a.key_id FROM api_messages a WHERE a.queue_id = " qid ")"
#define EVENT_COLS                                                                                 \
    "type, queue_id, rcpt, account, key_id, message_id, code, enhanced, text, attempts, at_ms"

static const char triggers[] =
    "CREATE TRIGGER IF NOT EXISTS hook_rcpt_queued AFTER INSERT ON rcpt BEGIN"
    " INSERT INTO hook_events(" EVENT_COLS ")"
    " SELECT 0, m.queue_id, NEW.address, m.account, " KEY_OF(
        "m.queue_id") ", m.message_id,"
                      " 0, NULL, NULL, 0, NEW.updated_ms FROM message m WHERE m.id = NEW.msg; END;"
                      "CREATE TRIGGER IF NOT EXISTS hook_rcpt_outcome AFTER UPDATE OF state ON rcpt"
                      " WHEN NEW.state IN (2, 3, 4) AND NEW.attempts = OLD.attempts"
                      " AND (OLD.state = 1 OR (NEW.state = 3 AND OLD.state <> 3)) BEGIN"
                      " INSERT INTO hook_events(" EVENT_COLS ")"
                      " SELECT CASE NEW.state WHEN 2 THEN 2 WHEN 3 THEN 1"
                      /* failed: "suppressed" when the daemon skipped a suppressed address
                       * (cli/daemon_suppress.c: no reply code, its own text) */
                      " WHEN 4 THEN CASE WHEN coalesce(NEW.smtp_code, 0) = 0 AND NEW.text"
                      " LIKE 'suppressed:%' THEN 5 ELSE 6 END ELSE 6 END, m.queue_id, "
                      "NEW.address,"
                      " m.account, coalesce(" KEY_OF(
                          "m.queue_id") ", ''), m.message_id, NEW.smtp_code,"
                                        " NEW.enhanced, NEW.text, NEW.attempts, NEW.updated_ms "
                                        "FROM message m"
                                        " WHERE m.id = NEW.msg; END;"
                                        "CREATE TRIGGER IF NOT EXISTS hook_api_owner AFTER INSERT "
                                        "ON api_messages BEGIN"
                                        " UPDATE hook_events SET key_id = NEW.key_id WHERE "
                                        "queue_id = NEW.queue_id AND type = 0"
                                        " AND key_id IS NULL; END;";

static const char drop_triggers[] = "DROP TRIGGER IF EXISTS hook_rcpt_queued;"
                                    "DROP TRIGGER IF EXISTS hook_rcpt_outcome;"
                                    "DROP TRIGGER IF EXISTS hook_api_owner;";

static int stop_at_once(void *ctx, const pg_spool_key *key)
{
    (void)ctx;
    (void)key;
    return 1;
}

/* Runs a script of statements (in the caller's transaction, if any). */
static pigeon_err exec(pg_spool_sq *q, const char *sql, const char *what)
{
    return pg_spool_sq_side_exec(q, sql, what);
}

/* Creates the outbox's tables (and the API's, which its triggers read). */
static pigeon_err ensure(pg_spool_sq *q)
{
    /* Listing keys creates the API tables when they are missing. */
    pigeon_err err = pg_spool_sq_api_ops.key_list(q, stop_at_once, NULL);
    return err == PIGEON_OK ? exec(q, schema, "creating the webhook tables") : err;
}

/* Prepares sql, creating the tables when they are missing (the first use of a file). */
static pigeon_err prepare(pg_spool_sq *q, const char *sql, sqlite3_stmt **st)
{
    return pg_spool_sq_side_prepare(q, sql, st, ensure, "preparing a webhook statement");
}

/* Runs a statement that returns no rows and finalizes it. */
static pigeon_err run(pg_spool_sq *q, sqlite3_stmt *st, const char *what)
{
    return pg_spool_sq_side_run(q, st, what);
}

/* Steps a one-row query for one integer (0 when there is no row). */
static pigeon_err one_int(pg_spool_sq *q, sqlite3_stmt *st, int64_t *out, const char *what)
{
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? PIGEON_OK : pg_spool_sq_err(q, rc, what);
}

pigeon_err pg_spool_sq_hooks_on(pg_spool_sq *q, int *on)
{
    sqlite3_stmt *st = q->stmt[ST_HOOKS_ON];
    *on = 1; /* cannot tell: as if on */
    if (st == NULL) {
        int rc = sqlite3_prepare_v3(q->db,
                                    "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
                                    " AND name = 'hook_rcpt_outcome'",
                                    -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK)
            return pg_spool_sq_err(q, rc, "reading the schema");
        q->stmt[ST_HOOKS_ON] = st;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *on = sqlite3_column_int64(st, 0) > 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? PIGEON_OK : pg_spool_sq_err(q, rc, "reading the schema");
}

static pigeon_err sq_enabled(void *be, int *on)
{
    return pg_spool_sq_hooks_on(be, on);
}

static pigeon_err sq_enable(void *be, int on)
{
    pg_spool_sq *q = be;
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err == PIGEON_OK && on)
        err = ensure(q);
    if (err == PIGEON_OK)
        err = exec(q, on ? triggers : drop_triggers, "changing the webhook triggers");
    return pg_spool_sq_tx_end(q, err);
}

static pigeon_err sq_add(void *be, const pg_spool_hook_event *ev)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    int on = 0;
    pigeon_err err = sq_enabled(q, &on);
    if (err != PIGEON_OK || !on)
        return err;
    err = prepare(q,
                  "INSERT INTO hook_events(" EVENT_COLS ") VALUES (?1, ?2, ?3,"
                  " coalesce(?4, (SELECT account FROM message WHERE queue_id = ?2), ''),"
                  " coalesce(?5, " KEY_OF(
                      "?2") ", ''),"
                            " coalesce(?6, (SELECT message_id FROM message WHERE queue_id = ?2)),"
                            " ?7, ?8, substr(?9, 1, 1000), ?10, ?11)",
                  &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int(st, 1, (int)ev->type);
    pg_spool_sq_bind_text(st, 2, ev->queue_id != NULL && ev->queue_id[0] ? ev->queue_id : NULL);
    pg_spool_sq_bind_text(st, 3, ev->rcpt);
    pg_spool_sq_bind_text(st, 4, ev->account);
    pg_spool_sq_bind_text(st, 5, ev->key_id);
    pg_spool_sq_bind_text(st, 6, ev->message_id);
    sqlite3_bind_int(st, 7, ev->smtp_code);
    pg_spool_sq_bind_text(st, 8, ev->enhanced);
    pg_spool_sq_bind_text(st, 9, ev->text);
    sqlite3_bind_int(st, 10, ev->attempts);
    sqlite3_bind_int64(st, 11, ev->at_ms);
    /* Alone it is its own (autocommit) transaction; in a batch, a part of it. */
    return run(q, st, "adding a webhook event");
}

/* Makes the sink's row, starting at the oldest event kept, if it has none. */
static pigeon_err sink_row(pg_spool_sq *q, const char *name)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q,
                             "INSERT OR IGNORE INTO hook_sinks(name, cursor) VALUES (?1,"
                             " coalesce((SELECT min(id) - 1 FROM hook_events), 0))",
                             &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, name);
    return run(q, st, "adding a webhook receiver");
}

#define WANTED "(?2 IS NULL OR key_id = ?2) AND ((?3 >> type) & 1)"

/* Reads an event row (columns id, EVENT_COLS) into ev (strings borrowed from st). */
static void event_row(sqlite3_stmt *st, pg_spool_hook_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->id = sqlite3_column_int64(st, 0);
    ev->type = (pg_hook_type)sqlite3_column_int(st, 1);
    ev->queue_id = (const char *)sqlite3_column_text(st, 2);
    ev->rcpt = (const char *)sqlite3_column_text(st, 3);
    ev->account = (const char *)sqlite3_column_text(st, 4);
    ev->key_id = (const char *)sqlite3_column_text(st, 5);
    ev->message_id = (const char *)sqlite3_column_text(st, 6);
    ev->smtp_code = sqlite3_column_int(st, 7);
    ev->enhanced = (const char *)sqlite3_column_text(st, 8);
    ev->text = (const char *)sqlite3_column_text(st, 9);
    ev->attempts = sqlite3_column_int(st, 10);
    ev->at_ms = sqlite3_column_int64(st, 11);
    if (ev->key_id == NULL)
        ev->key_id = "";
    if (ev->rcpt == NULL)
        ev->rcpt = "";
}

/* Passes the events after cursor to fn; *last is the last passed, *n their number. */
static pigeon_err fetch_events(pg_spool_sq *q, const pg_spool_hook_sink *sink, int64_t cursor,
                               size_t max, int (*fn)(void *, const pg_spool_hook_event *),
                               void *ctx, int64_t *last, size_t *n, int *stopped)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q,
                             "SELECT id, " EVENT_COLS " FROM hook_events WHERE id > ?1 AND " WANTED
                             " ORDER BY id LIMIT ?4",
                             &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, cursor);
    pg_spool_sq_bind_text(st, 2, sink->key_id);
    sqlite3_bind_int64(st, 3, sink->types);
    sqlite3_bind_int64(st, 4, (int64_t)max);
    int rc;
    pg_spool_hook_event ev;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        event_row(st, &ev);
        *last = ev.id;
        (*n)++;
        if (fn(ctx, &ev) != 0) {
            *stopped = 1;
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? PIGEON_OK : pg_spool_sq_err(q, rc, "reading webhook events");
}

/* The sink's cursor, or -1 when it has no row yet. */
static pigeon_err sink_cursor(pg_spool_sq *q, const char *name, int64_t *cursor)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err =
        prepare(q, "SELECT coalesce((SELECT cursor FROM hook_sinks WHERE name = ?1), -1)", &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, name);
    return one_int(q, st, cursor, "reading a webhook cursor");
}

static pigeon_err sq_fetch(void *be, const pg_spool_hook_sink *sink, size_t max,
                           int (*fn)(void *ctx, const pg_spool_hook_event *ev), void *ctx,
                           int64_t *upto)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    int64_t cursor = 0, newest = 0, last = 0;
    size_t n = 0;
    int stopped = 0;
    /* A new sink gets its row first (a write, once); then all is one read. */
    pigeon_err err = sink_cursor(q, sink->name, &cursor);
    if (err == PIGEON_OK && cursor < 0)
        err = sink_row(q, sink->name);
    if (err == PIGEON_OK)
        err = pg_spool_sq_tx_begin(q, 0);
    if (err != PIGEON_OK)
        return err;
    err = sink_cursor(q, sink->name, &cursor);
    last = cursor;
    if (err == PIGEON_OK)
        err = fetch_events(q, sink, cursor, max, fn, ctx, &last, &n, &stopped);
    /* Fewer than asked: nothing after them is for this sink, up to the newest event. */
    if (err == PIGEON_OK && n < max && !stopped &&
        (err = prepare(q, "SELECT coalesce(max(id), 0) FROM hook_events", &st)) == PIGEON_OK)
        err = one_int(q, st, &newest, "reading webhook events");
    *upto = newest > last ? newest : last;
    return pg_spool_sq_tx_end(q, err);
}

static pigeon_err sq_done(void *be, const char *sink, int ok, int give_up, int64_t upto,
                          size_t count, int64_t next_ms, const char *error)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q,
                             "UPDATE hook_sinks SET"
                             " cursor = CASE WHEN ?2 OR ?3 THEN max(cursor, ?4) ELSE cursor END,"
                             " failures = CASE WHEN ?2 OR ?3 THEN 0 ELSE failures + 1 END,"
                             " next_ms = CASE WHEN ?2 THEN 0 ELSE ?6 END,"
                             " delivered = delivered + CASE WHEN ?2 THEN ?5 ELSE 0 END,"
                             " given_up = given_up + CASE WHEN ?3 AND NOT ?2 THEN ?5 ELSE 0 END,"
                             " last_error = CASE WHEN ?2 THEN last_error ELSE ?7 END"
                             " WHERE name = ?1",
                             &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, sink);
    sqlite3_bind_int(st, 2, ok != 0);
    sqlite3_bind_int(st, 3, give_up != 0);
    sqlite3_bind_int64(st, 4, upto);
    sqlite3_bind_int64(st, 5, (int64_t)count);
    sqlite3_bind_int64(st, 6, next_ms);
    if (error != NULL)
        sqlite3_bind_text(st, 7, error, (int)strnlen(error, 255), SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 7);
    return run(q, st, "recording a webhook delivery");
}

static pigeon_err sq_state_get(void *be, const pg_spool_hook_sink *sink, pg_spool_hook_state *out)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = sink_row(q, sink->name);
    if (err == PIGEON_OK)
        err = prepare(q,
                      "SELECT cursor, failures, next_ms, delivered, given_up, last_error,"
                      " (SELECT count(*) FROM hook_events WHERE id > s.cursor AND " WANTED ")"
                      " FROM hook_sinks s WHERE name = ?1",
                      &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, sink->name);
    pg_spool_sq_bind_text(st, 2, sink->key_id);
    sqlite3_bind_int64(st, 3, sink->types);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->cursor = sqlite3_column_int64(st, 0);
        out->failures = sqlite3_column_int64(st, 1);
        out->next_ms = sqlite3_column_int64(st, 2);
        out->delivered = sqlite3_column_int64(st, 3);
        out->given_up = sqlite3_column_int64(st, 4);
        const unsigned char *e = sqlite3_column_text(st, 5);
        snprintf(out->last_error, sizeof out->last_error, "%s", e ? (const char *)e : "");
        out->pending = sqlite3_column_int64(st, 6);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? PIGEON_OK
                                                 : pg_spool_sq_err(q, rc, "reading a webhook");
}

static pigeon_err sq_trim(void *be, const char *const *sinks, size_t n, size_t *count)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    int64_t least = INT64_MAX;
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    for (size_t i = 0; err == PIGEON_OK && i < n; i++) {
        int64_t c = -1;
        err =
            prepare(q, "SELECT coalesce((SELECT cursor FROM hook_sinks WHERE name = ?1), -1)", &st);
        if (err == PIGEON_OK) {
            pg_spool_sq_bind_text(st, 1, sinks[i]);
            err = one_int(q, st, &c, "reading a webhook cursor");
        }
        if (c < least)
            least = c;
    }
    if (err == PIGEON_OK && least > 0 &&
        (err = prepare(q,
                       "DELETE FROM hook_events WHERE id <= ?1"
                       " AND id < (SELECT max(id) FROM hook_events)",
                       &st)) == PIGEON_OK) {
        sqlite3_bind_int64(st, 1, least);
        err = run(q, st, "trimming webhook events");
        *count = err == PIGEON_OK ? (size_t)sqlite3_changes(q->db) : 0;
    }
    return pg_spool_sq_tx_end(q, err);
}

static pigeon_err sq_count(void *be, int64_t *total, int64_t *oldest_ms)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q, "SELECT count(*), coalesce(min(at_ms), 0) FROM hook_events", &st);
    if (err != PIGEON_OK)
        return err;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *total = sqlite3_column_int64(st, 0);
        *oldest_ms = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? PIGEON_OK : pg_spool_sq_err(q, rc, "counting webhook events");
}

static pigeon_err sq_key_set(void *be, const pg_spool_hook_key *hook)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    int del = hook->url[0] == '\0';
    pigeon_err err = prepare(q,
                             del ? "DELETE FROM hook_keys WHERE key_id = ?1"
                                 : "INSERT OR REPLACE INTO hook_keys(key_id, url, secret, types)"
                                   " VALUES (?1, ?2, ?3, ?4)",
                             &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, hook->key_id);
    if (!del) {
        pg_spool_sq_bind_text(st, 2, hook->url);
        pg_spool_sq_bind_text(st, 3, hook->secret);
        sqlite3_bind_int64(st, 4, hook->types);
    }
    return run(q, st, "storing a key's webhook");
}

static void copy_text(char *out, size_t size, const unsigned char *s)
{
    snprintf(out, size, "%s", s != NULL ? (const char *)s : "");
}

static pigeon_err sq_key_list(void *be, int (*fn)(void *ctx, const pg_spool_hook_key *hook),
                              void *ctx)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err =
        prepare(q, "SELECT key_id, url, secret, types FROM hook_keys ORDER BY key_id", &st);
    if (err != PIGEON_OK)
        return err;
    int rc;
    pg_spool_hook_key h;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&h, 0, sizeof h);
        copy_text(h.key_id, sizeof h.key_id, sqlite3_column_text(st, 0));
        copy_text(h.url, sizeof h.url, sqlite3_column_text(st, 1));
        copy_text(h.secret, sizeof h.secret, sqlite3_column_text(st, 2));
        h.types = (unsigned)sqlite3_column_int64(st, 3);
        int stop = fn(ctx, &h);
        memset(h.secret, 0, sizeof h.secret);
        if (stop != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? PIGEON_OK : pg_spool_sq_err(q, rc, "listing key webhooks");
}

void pg_spool_sq_hooks_undo(pg_spool_sq *q, int64_t msg)
{
    sqlite3_stmt *st = NULL;
    /* No outbox (no such table): nothing to undo. */
    if (sqlite3_prepare_v2(q->db,
                           "DELETE FROM hook_events WHERE type = 0 AND queue_id ="
                           " (SELECT queue_id FROM message WHERE id = ?1)",
                           -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return;
    }
    sqlite3_bind_int64(st, 1, msg);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

const pg_spool_hooks_ops pg_spool_sq_hooks_ops = {
    .add = sq_add,
    .enable = sq_enable,
    .enabled = sq_enabled,
    .fetch = sq_fetch,
    .done = sq_done,
    .state_get = sq_state_get,
    .trim = sq_trim,
    .count = sq_count,
    .key_set = sq_key_set,
    .key_list = sq_key_list,
};
