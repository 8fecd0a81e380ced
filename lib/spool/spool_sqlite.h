/*
 * spool_sqlite.h - shared parts of the SQLite spool backend (internal).
 *
 * The backend is three files: spool_sqlite.c (file format, open and checks, statements,
 * transactions, enqueue), spool_sqlite_work.c (claims, outcomes, administration, reading
 * bodies) and spool_sqlite_batch.c (claims and outcomes of many messages at once). This header is
 * what they share; nothing else includes it.
 */
#ifndef PG_SPOOL_SQLITE_H
#define PG_SPOOL_SQLITE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "spool/spool_backend.h"

/* Reply texts are stored cut to this many bytes. */
#define PG_SPOOL_SQ_MAX_TEXT 1000

/* The cached statements, prepared on first use (SQL in spool_sqlite.c). */
enum {
    ST_BEGIN,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_UNDO_MSG,
    ST_INS_MSG,
    ST_INS_RCPT,
    ST_INS_CHUNK,
    ST_END_MSG,
    ST_CLAIM_FIND,
    ST_CLAIM_TAKE,
    ST_MSG_BY_ID,
    ST_MSG_BODY_BY_ID,
    ST_MSG_BY_QID,
    ST_COUNTS,
    ST_RCPTS_ALL,
    ST_DELIVER,
    ST_SETTLE,
    ST_DELETE_DONE,
    ST_RENEW,
    ST_RELEASE_LEASE,
    ST_THROTTLE,
    ST_LIST,
    ST_RETRY,
    ST_DELETE,
    ST_PURGE,
    ST_STAT_MSG,
    ST_STAT_RCPT,
    ST_STAT_STALE,
    ST_STAT_THROTTLED,
    ST_STAT_OLDEST,
    ST_BODY_MSG,
    ST_BODY_CHUNK,
    ST_CLAIM_SCAN,
    ST_RENEW_RCPT,
    ST_RELEASE_RCPT,
    ST_INLINE_BODY,
    ST_HOLDER_ADD,
    ST_HOLDER_ID,
    ST_HOLDERS,
    ST_RECLAIM,
    ST_HOLDER_DEL,
    ST_LEASE_HELD,
    ST_SUPPRESS_CHECK, /* prepared by spool_sqlite_suppress.c (its table may not exist) */
    ST_API_OWNER,      /* prepared by spool_sqlite_api.c (its table may not exist) */
    ST_SCHEMA_COOKIE,
    ST_DELETE_DELIVERED,
    ST_HOOKS_ON, /* prepared by spool_sqlite_hooks.c */
    ST_COUNT
};

/* The backend's state for one handle. */
typedef struct pg_spool_sq {
    sqlite3 *db;                  /* the connection */
    pg_spool_diag *diag;          /* where diagnoses go (the generic handle's) */
    sqlite3_stmt *stmt[ST_COUNT]; /* cached prepared statements, NULL until first use */
    int in_batch;                 /* a batch transaction is open */
    int64_t msg_rowid;            /* the message row of the enqueue in progress, 0 if none */
    int64_t holder_id;            /* the holder row of the claim in progress */
    int defer_sync;               /* opened with PIGEON_SPOOL_DEFER_SYNC */
    /* The outcome journal (spool_sqlite_journal.c). Delivered outcomes may be appended by
     * pg_spool_sq_journal_delivered() in a thread other than the one using the handle, so
     * the journal's fields are read and written under journal_lock only. */
    pthread_mutex_t journal_lock; /* guards the four fields below */
    int journal_fd;               /* the journal, or -1 */
    off_t journal_size;           /* its size: where the next record goes */
    off_t journal_applied;        /* its first bytes, already applied to the spool */
    size_t journal_rows;          /* outcomes journaled by this handle and not yet applied */
    int64_t suppress_absent;      /* schema cookie + 1 when the suppression table was found
                                   * missing (spool_sqlite_suppress.c), else 0 */
} pg_spool_sq;

/* Maps an SQLite result code to ours and writes the diagnosis ("spool: <what>: ..."). */
pigeon_err pg_spool_sq_err(pg_spool_sq *q, int rc, const char *what);
/* The cached statement id, prepared if needed. */
pigeon_err pg_spool_sq_prep(pg_spool_sq *q, int id, sqlite3_stmt **out);
/* Steps a statement that returns no rows to its end, and resets it. */
pigeon_err pg_spool_sq_step(pg_spool_sq *q, sqlite3_stmt *st, const char *what);
/* Prepares and runs a statement without parameters. */
pigeon_err pg_spool_sq_exec(pg_spool_sq *q, int id);
/* The file's schema cookie (PRAGMA schema_version: it changes whenever any connection
 * changes the schema), or -1 when it cannot be read. */
int64_t pg_spool_sq_schema_cookie(pg_spool_sq *q);

/* The tables beside the queue (keys, outbox, suppression, limits) are created on first
 * use: side_prepare prepares sql and, when it fails (the tables are missing: the first
 * use of a file), runs ensure and prepares again, so the common case costs one prepare;
 * what names the statement in errors. side_run steps a statement that returns no rows and
 * finalizes it. side_exec runs SQL text (a schema). */
pigeon_err pg_spool_sq_side_prepare(pg_spool_sq *q, const char *sql, sqlite3_stmt **st,
                                    pigeon_err (*ensure)(pg_spool_sq *q), const char *what);
pigeon_err pg_spool_sq_side_run(pg_spool_sq *q, sqlite3_stmt *st, const char *what);
pigeon_err pg_spool_sq_side_exec(pg_spool_sq *q, const char *sql, const char *what);
/* Begins a write (BEGIN IMMEDIATE) or read transaction; PIGEON_ERR_STATE in a batch. */
pigeon_err pg_spool_sq_tx_begin(pg_spool_sq *q, int write);
/* Commits if err is PIGEON_OK, else rolls back; returns the outcome. */
pigeon_err pg_spool_sq_tx_end(pg_spool_sq *q, pigeon_err err);
/* Binds a borrowed string (SQLITE_STATIC), or NULL. */
void pg_spool_sq_bind_text(sqlite3_stmt *st, int i, const char *s);

/* Parts of a claim and of a record, inside a transaction the caller holds (shared by the
 * single calls in spool_sqlite_work.c and the batches in spool_sqlite_batch.c): claim_msg
 * moves message msg's due recipients under req's lease and builds the claim's entry, and
 * record_job applies one claim's outcomes and removes the message when all is delivered. */
pigeon_err pg_spool_sq_claim_msg(pg_spool_sq *q, const pg_spool_claim_req *req, int64_t msg,
                                 pigeon_spool_entry **job);
/* The row id of the claim's holder (req->holder), added if new, into *id. */
pigeon_err pg_spool_sq_holder_id(pg_spool_sq *q, const pg_spool_claim_req *req, int64_t *id);
pigeon_err pg_spool_sq_record_job(pg_spool_sq *q, const pigeon_spool_entry *job,
                                  const pigeon_spool_outcome *outcomes, size_t n, int64_t now_ms,
                                  size_t *lost);

/* The outcome journal (spool_sqlite_journal.c). With PIGEON_SPOOL_DEFER_SYNC a record
 * appends the outcomes to a file of this holder beside the spool: one write() of a few
 * hundred bytes instead of several 16 KiB pages of the spool's WAL. They are applied to
 * the spool at the next sync, or by the reclaim of a holder that died first. */
/* Nonzero when this handle journals its records (defer_sync and a holder known). */
int pg_spool_sq_journaling(const pg_spool_sq *q);
/* Journals the outcomes of n claims (validated); items[i].lost as a record would. */
pigeon_err pg_spool_sq_journal_add(pg_spool_sq *q, pigeon_spool_record_item *items, size_t n,
                                   int64_t now_ms);
/* Journals delivered outcomes (validated) while another thread may use the handle (see
 * pigeon_spool_journal_delivered): only the journal is touched, under journal_lock.
 * PIGEON_ERR_UNSUPPORTED when the journal is not open yet (record through the handle). */
pigeon_err pg_spool_sq_journal_delivered(void *be, pigeon_spool_record_item *items, size_t n,
                                         int64_t now_ms, pg_spool_diag *diag);
/* Applies the journaled outcomes of holder to the spool, in the spool transaction the
 * caller holds; *upto is the last journal row applied (0: none). */
pigeon_err pg_spool_sq_journal_apply(pg_spool_sq *q, int64_t holder, int64_t *upto);
/* This handle's own journal at sync: the records not applied yet, taken (a span of the
 * file), applied in the caller's transaction, then done with (ok: the transaction was
 * committed, and the span is forgotten). Records journaled meanwhile are left for the
 * next sync. */
typedef struct pg_spool_sq_span {
    off_t from, to; /* the bytes of the journal taken */
    size_t rows;    /* the outcomes they hold */
    int locked;     /* journal_lock is held until done (the journal is being compacted) */
} pg_spool_sq_span;
void pg_spool_sq_journal_take(pg_spool_sq *q, pg_spool_sq_span *span);
pigeon_err pg_spool_sq_journal_apply_span(pg_spool_sq *q, const pg_spool_sq_span *span);
pigeon_err pg_spool_sq_journal_done(pg_spool_sq *q, pg_spool_sq_span *span, int ok);
/* Forgets the journal rows of holder up to upto, once their application is committed. */
pigeon_err pg_spool_sq_journal_forget(pg_spool_sq *q, int64_t holder, int64_t upto);
void pg_spool_sq_journal_close(pg_spool_sq *q);
/* Removes the message if every recipient of it is delivered (a transaction held). */
pigeon_err pg_spool_sq_remove_if_done(pg_spool_sq *q, const char *queue_id);
/* Applies one outcome to recipient rcpt_id claimed under lease token (a transaction held):
 * delivered always, others only under the lease, else ++*lost. */
pigeon_err pg_spool_sq_apply(pg_spool_sq *q, int64_t rcpt_id, int64_t token,
                             const pigeon_spool_outcome *o, int64_t now_ms, size_t *lost);

/* The operations in spool_sqlite_work.c and spool_sqlite_batch.c (see pg_spool_ops). */
pigeon_err pg_spool_sq_claim(void *be, const pg_spool_claim_req *req, pigeon_spool_entry **job);
pigeon_err pg_spool_sq_renew(void *be, const pigeon_spool_entry *job, int64_t until_ms);
pigeon_err pg_spool_sq_record(void *be, const pigeon_spool_entry *job,
                              const pigeon_spool_outcome *outcomes, size_t n, int64_t now_ms,
                              size_t *lost);
pigeon_err pg_spool_sq_release(void *be, const pigeon_spool_entry *job, int64_t now_ms);
pigeon_err pg_spool_sq_claim_batch(void *be, const pg_spool_claim_req *req, size_t max,
                                   pigeon_spool_entry **jobs, size_t *count);
pigeon_err pg_spool_sq_renew_batch(void *be, pigeon_spool_entry *const *jobs, size_t n,
                                   int64_t until_ms, unsigned char *held);
pigeon_err pg_spool_sq_record_batch(void *be, pigeon_spool_record_item *items, size_t n,
                                    int64_t now_ms);
pigeon_err pg_spool_sq_release_batch(void *be, pigeon_spool_entry *const *jobs, size_t n,
                                     int64_t now_ms);
pigeon_err pg_spool_sq_holders(void *be, const char *host,
                               int (*fn)(void *ctx, const pg_spool_holder *holder), void *ctx);
pigeon_err pg_spool_sq_reclaim(void *be, int64_t holder_id, int64_t now_ms, size_t *count);
pigeon_err pg_spool_sq_throttle(void *be, const char *account, int64_t until_ms,
                                const char *reason);
pigeon_err pg_spool_sq_list(void *be, const char *account,
                            int (*fn)(void *ctx, const pigeon_spool_entry *entry), void *ctx);
pigeon_err pg_spool_sq_show(void *be, const char *queue_id, pigeon_spool_entry **out);
pigeon_err pg_spool_sq_retry(void *be, const char *queue_id, int include_failed, int64_t now_ms,
                             size_t *count);
pigeon_err pg_spool_sq_remove(void *be, const char *queue_id);
pigeon_err pg_spool_sq_purge_failed(void *be, size_t *count);
pigeon_err pg_spool_sq_stats(void *be, int64_t now_ms, pigeon_spool_stats *out);
pigeon_err pg_spool_sq_body_open(void *be, const char *queue_id, void **reader, int64_t *size,
                                 unsigned char sha256[32]);
pigeon_err pg_spool_sq_body_read(void *be, void *reader, int64_t offset, void *buf, size_t cap,
                                 size_t *n);
void pg_spool_sq_body_close(void *be, void *reader);

/* Keys and message owners (spool_sqlite_api.c). */
extern const struct pg_spool_api_ops pg_spool_sq_api_ops;
/* Imports (spool_sqlite_import.c) and shared limits (spool_sqlite_limits.c). */
extern const struct pg_spool_import_ops pg_spool_sq_import_ops;
extern const struct pg_spool_limits_ops pg_spool_sq_limits_ops;
/* The webhook outbox (spool_sqlite_hooks.c). */
extern const struct pg_spool_hooks_ops pg_spool_sq_hooks_ops;
/* Whether the outcome webhooks are on (their trigger exists: an outcome written to a
 * recipient row makes an event), into *on; set when it cannot be told. */
pigeon_err pg_spool_sq_hooks_on(pg_spool_sq *q, int *on);
/* Deletes the "queued" events of message row msg, whose enqueue is being undone inside a
 * batch (before its row goes). Nothing when the spool has no outbox. */
void pg_spool_sq_hooks_undo(pg_spool_sq *q, int64_t msg);
/* The suppression list (spool_sqlite_suppress.c). */
extern const struct pg_spool_suppress_ops pg_spool_sq_suppress_ops;

#endif
