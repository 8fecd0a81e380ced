/*
 * spool_sqlite_limits.c - shared sending limits in the SQLite spool (see
 * spool/spool_limits.h): one row per account in a table created on first use, read and
 * written in one IMMEDIATE transaction per take, so that the daemons sharing the file
 * take their turns on the database's write lock. The throttle is the spool's own
 * account table (pigeon_spool_throttle), read in the same transaction.
 */
#include "spool/spool_limits.h"
#include "spool/spool_sqlite.h"

static const char schema[] = "CREATE TABLE IF NOT EXISTS limits ("
                             " account TEXT PRIMARY KEY, tokens REAL NOT NULL,"
                             " at_ms INTEGER NOT NULL, day INTEGER NOT NULL,"
                             " sent INTEGER NOT NULL) WITHOUT ROWID";
static const char read_sql[] = "SELECT l.tokens, l.at_ms, l.day, l.sent, "
                               "(SELECT a.not_before_ms FROM account a WHERE a.name = ?1) "
                               "FROM (SELECT 1) LEFT JOIN limits l ON l.account = ?1";
static const char give_back_sql[] = "UPDATE limits SET sent = max(sent - ?3, 0)"
                                    " WHERE account = ?1 AND day = ?2";
static const char write_sql[] = "INSERT OR REPLACE INTO limits(account, tokens, at_ms, day, sent) "
                                "VALUES(?1, ?2, ?3, ?4, ?5)";

/* Prepares sql, creating the table when it is missing (the first take on a file). */
static pigeon_err ensure(pg_spool_sq *q)
{
    return pg_spool_sq_side_exec(q, schema, "creating the limits table");
}

static pigeon_err prepare(pg_spool_sq *q, const char *sql, sqlite3_stmt **st)
{
    return pg_spool_sq_side_prepare(q, sql, st, ensure, "preparing a limits statement");
}

/* The bucket's row as stored (a new account starts with a full bucket). */
typedef struct bucket {
    double tokens;         /* tokens left at at_ms (below zero: promised ahead) */
    int64_t at_ms;         /* when they were counted */
    int64_t day;           /* the UTC day sent counts */
    long sent;             /* tokens handed out on that day */
    int64_t not_before_ms; /* the account's throttle, 0 if none */
} bucket;

static pigeon_err load(pg_spool_sq *q, const pg_spool_take_req *req, bucket *b)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q, read_sql, &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, req->account);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int fresh = sqlite3_column_type(st, 0) == SQLITE_NULL;
        b->tokens = fresh ? req->burst : sqlite3_column_double(st, 0);
        b->at_ms = fresh ? req->now_ms : sqlite3_column_int64(st, 1);
        b->day = fresh ? -1 : sqlite3_column_int64(st, 2);
        b->sent = fresh ? 0 : (long)sqlite3_column_int64(st, 3);
        b->not_before_ms = sqlite3_column_int64(st, 4);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? PIGEON_OK : pg_spool_sq_err(q, rc, "reading the account's limits");
}

static pigeon_err store(pg_spool_sq *q, const char *account, const bucket *b)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q, write_sql, &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, account);
    sqlite3_bind_double(st, 2, b->tokens);
    sqlite3_bind_int64(st, 3, b->at_ms);
    sqlite3_bind_int64(st, 4, b->day);
    sqlite3_bind_int64(st, 5, b->sent);
    err = pg_spool_sq_step(q, st, "writing the account's limits");
    sqlite3_finalize(st);
    return err;
}

static pigeon_err sq_take(void *be, const pg_spool_take_req *req, pg_spool_take *out)
{
    pg_spool_sq *q = be;
    bucket b = {0};
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err != PIGEON_OK)
        return err;
    err = load(q, req, &b);
    if (err == PIGEON_OK) {
        pg_spool_limits_apply(req, &b.tokens, &b.at_ms, &b.day, &b.sent, out);
        out->not_before_ms = b.not_before_ms > req->now_ms ? b.not_before_ms : 0;
        err = store(q, req->account, &b);
    }
    return pg_spool_sq_tx_end(q, err);
}

static pigeon_err sq_give_back(void *be, const char *account, int64_t day, long n)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q, give_back_sql, &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, account);
    sqlite3_bind_int64(st, 2, day);
    sqlite3_bind_int64(st, 3, n);
    err = pg_spool_sq_step(q, st, "giving tokens back to the day");
    sqlite3_finalize(st);
    return err;
}

const pg_spool_limits_ops pg_spool_sq_limits_ops = {
    .take = sq_take,
    .give_back = sq_give_back,
};
