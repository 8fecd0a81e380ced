/*
 * spool_pg.h - shared parts of the PostgreSQL spool backend (internal).
 *
 * The backend is spool_pg.c (connection, reconnects, errors, statements, transactions,
 * enqueue, waiting for notifications, the ops table), spool_pg_copy.c (a batch's rows
 * written with COPY), spool_pg_schema.c (versioned
 * migrations), spool_pg_work.c (claims, outcomes, administration, bodies), and the side
 * tables: spool_pg_api.c (keys and message owners), spool_pg_hooks.c (the webhook
 * outbox), spool_pg_suppress.c, spool_pg_limits.c, spool_pg_import.c. This header is what
 * they share.
 *
 * Parameters go as text except arrays and bytea, which go in PostgreSQL's binary format
 * (pg_spool_pq_arr): a batch of claims or outcomes is one statement with array
 * parameters, one round trip whatever its size; a batch of messages is binary COPY
 * (spool_pg_copy.c).
 */
#ifndef PG_SPOOL_PG_H
#define PG_SPOOL_PG_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "spool/spool_backend.h"

/* Reply texts are stored cut to this many bytes (as on SQLite). */
#define PG_SPOOL_PQ_MAX_TEXT 1000
/* The schema version this code writes and reads (table schema_version). */
#define PG_SPOOL_PQ_VERSION 9
/* Message ids a nextval() of message_id_seq reserves (migration 7): the block from the
 * value it returns. */
#define PG_SPOOL_PQ_ID_BLOCK     1024
#define PG_SPOOL_PQ_ID_BLOCK_SQL "1024"
/* The channel enqueues notify and idle daemons listen on. */
#define PG_SPOOL_PQ_CHANNEL "pigeon_spool"

/* The prepared statements (SQL in spool_pg.c). */
enum {
    PQ_ENQUEUE,
    PQ_CHUNK,
    PQ_END_MSG,
    PQ_UNDO_MSG,
    PQ_HOLDER_ID,
    PQ_CLAIM,
    PQ_LOAD_MSGS,
    PQ_LOAD_COUNTS,
    PQ_LOAD_BODIES,
    PQ_RECORD,
    PQ_RENEW,
    PQ_RELEASE,
    PQ_RELEASE_TOKEN,
    PQ_THROTTLE,
    PQ_HOLDERS,
    PQ_RECLAIM,
    PQ_LIST,
    PQ_MSG_BY_QID,
    PQ_RCPTS_ALL,
    PQ_RETRY,
    PQ_DELETE,
    PQ_PURGE,
    PQ_STATS,
    PQ_BODY_MSG,
    PQ_BODY_CHUNK,
    PQ_MSG_IDS,
    PQ_COUNT,
    /* statements of the side tables, whose SQL stays in their own files (run_sql) */
    PQ_SUPPRESS_CHECK = PQ_COUNT,
    PQ_ALL
};

/* A growing PostgreSQL binary array (one dimension), built element by element. */
typedef struct pg_spool_pq_arr {
    unsigned char *p; /* header (20 bytes) then elements; NULL until the first element */
    size_t len;       /* bytes used */
    size_t cap;       /* bytes allocated */
    uint32_t oid;     /* the element type: 17 bytea, 20 int8, 23 int4, 25 text */
    int32_t n;        /* elements */
    int nomem;        /* sticky: an allocation failed */
} pg_spool_pq_arr;

/* Up to 16 statement parameters and their storage. */
typedef struct pg_spool_pq_params {
    int n;             /* parameters set */
    const char *v[16]; /* values (NULL for SQL NULL) */
    int len[16];       /* lengths of binary values */
    int fmt[16];       /* 0 text, 1 binary */
    char num[16][24];  /* room for numbers written as text */
} pg_spool_pq_params;

/* Rows of one table in PostgreSQL's binary COPY format (spool_pg_copy.c): the header,
 * then the rows; the trailer is added when sent. */
typedef struct pg_spool_pq_copy {
    unsigned char *p; /* the stream; NULL until the first row */
    size_t len;       /* bytes used */
    size_t cap;       /* bytes allocated */
    int64_t rows;     /* rows in it */
    int nomem;        /* sticky: an allocation failed */
} pg_spool_pq_copy;

/* Messages of an enqueue waiting to be written: outside a batch as the arrays of one
 * statement (one round trip per message), inside a batch as COPY streams. */
typedef struct pg_spool_pq_pending {
    pg_spool_pq_arr qid, msgid, account, from, size, sha, created; /* one per message */
    pg_spool_pq_arr r_qid, r_addr, r_due;                          /* one per recipient */
    pg_spool_pq_arr b_qid, b_seq, b_data;                          /* one per body chunk */
    pg_spool_pq_copy c_msg, c_rcpt, c_body; /* a batch's rows of message, rcpt, body */
    int64_t msgs;                           /* messages in c_msg */
    size_t bytes;                           /* body bytes held (arrays or streams) */
} pg_spool_pq_pending;

/* The backend's state for one handle. */
typedef struct pg_spool_pq {
    PGconn *conn;                   /* the connection, NULL while there is none */
    char *conninfo;                 /* the URL (with its password, if any: never printed) */
    char *shown;                    /* the URL with any password masked, for diagnoses */
    pg_spool_diag *diag;            /* where diagnoses go (the generic handle's) */
    unsigned flags;                 /* the open flags */
    int lock_timeout_ms;            /* set_busy_timeout */
    unsigned char prepared[PQ_ALL]; /* statement prepared on this connection */
    int64_t retry_at;               /* monotonic ms before which no reconnect is tried */
    int backoff_ms;                 /* the current reconnect backoff */
    int in_tx;                      /* an explicit transaction (batch, or a long enqueue) is open */
    int in_batch;                   /* pigeon_spool_begin() was called */
    int deferred;       /* commits made with synchronous_commit off since the last sync */
    int listening;      /* LISTEN was sent on this connection */
    int64_t holder_id;  /* this process's holder row, 0 until known */
    int64_t holder_pid; /* the pid holder_id is for (a fork needs its own) */
    int hook_locked;    /* this connection holds a webhook sink's lock (spool_pg_hooks.c) */
    int32_t hook_key;   /* that lock's key (the hash of the sink's name) */
    int64_t doubt[8];   /* lease tokens of claims whose commit outcome is unknown */
    size_t ndoubt;      /* how many */
    int copy_busy;      /* a COPY was sent whose result is not read yet (pg_spool_pq_settle) */
    int notify;         /* the open transaction stored messages: NOTIFY at its commit */
    int heap_kept;      /* the backend's malloc was asked to keep its heap (spool_pg_copy.c) */
    int64_t id_next;    /* the next message id of the reserved block (0: none) */
    int64_t id_end;     /* the end of that block */
    /* the enqueue in progress */
    char cur_qid[PIGEON_SPOOL_ID_LEN + 1]; /* its queue id, "" when none */
    int cur_flushed;          /* its row was already written (a body bigger than a buffer) */
    int64_t cur_seq;          /* chunks so far */
    int cur_copy;             /* its rows go to the batch's COPY streams (else the arrays) */
    int64_t cur_id;           /* its row id when cur_copy (taken from the reserved block) */
    int64_t batch_msgs;       /* messages of the batch so far */
    size_t mark_copy_len;     /* the batch's body stream before it, for msg_abort */
    int64_t mark_copy_rows;   /* its rows */
    pg_spool_new cur;         /* its message (borrowed from the generic layer until msg_end) */
    size_t mark_len[3];       /* the body arrays' lengths before it, for msg_abort */
    int32_t mark_n[3];        /* their element counts */
    size_t mark_bytes;        /* pend.bytes before it */
    pg_spool_pq_pending pend; /* messages not yet written */
} pg_spool_pq;

/* ---- spool_pg.c ---- */

/* Makes sure there is a connection (reconnecting with a bounded backoff). PIGEON_OK or
 * PIGEON_ERR_NETWORK with the diagnosis. */
pigeon_err pg_spool_pq_ready(pg_spool_pq *q);
/* Maps a failed result to our code, writes the diagnosis ("spool: <what>: ...") and
 * drops a broken connection. */
pigeon_err pg_spool_pq_err(pg_spool_pq *q, const PGresult *res, const char *what);
/* Runs sql unprepared with text parameters p (NULL: none); *out (may be NULL) gets the
 * result (PQclear it); else the error with its diagnosis. For the side tables' rarer
 * statements. */
pigeon_err pg_spool_pq_exec_params(pg_spool_pq *q, const char *sql, const pg_spool_pq_params *p,
                                   const char *what, PGresult **out);
/* Runs prepared statement id with params p; binary asks for binary results. On success
 * *out is the result (PQclear it); else the error with its diagnosis. */
pigeon_err pg_spool_pq_run(pg_spool_pq *q, int id, const pg_spool_pq_params *p, int binary,
                           const char *what, PGresult **out);
/* The same for a side table's statement id (PQ_COUNT and after) with its SQL, prepared on
 * first use per connection (the daemon runs some for every batch). */
pigeon_err pg_spool_pq_run_sql(pg_spool_pq *q, int id, const char *sql, const pg_spool_pq_params *p,
                               int binary, const char *what, PGresult **out);
/* Writes the buffered enqueues (inside the open transaction, or as their own). */
pigeon_err pg_spool_pq_flush(pg_spool_pq *q);
/* Runs plain SQL without parameters (simple protocol: several statements allowed). */
pigeon_err pg_spool_pq_exec(pg_spool_pq *q, const char *sql, const char *what);

void pg_spool_pq_p_text(pg_spool_pq_params *p, const char *s);
void pg_spool_pq_p_i64(pg_spool_pq_params *p, int64_t v);
void pg_spool_pq_p_bin(pg_spool_pq_params *p, const void *data, size_t len);
void pg_spool_pq_p_arr(pg_spool_pq_params *p, pg_spool_pq_arr *a);

void pg_spool_pq_arr_init(pg_spool_pq_arr *a, uint32_t oid);
void pg_spool_pq_arr_add(pg_spool_pq_arr *a, const void *data, size_t len);
void pg_spool_pq_arr_text(pg_spool_pq_arr *a, const char *s); /* NULL: SQL NULL */
void pg_spool_pq_arr_i64(pg_spool_pq_arr *a, int64_t v);
void pg_spool_pq_arr_i32(pg_spool_pq_arr *a, int32_t v);
void pg_spool_pq_arr_free(pg_spool_pq_arr *a);

/* A column as an integer (text or binary results), 0 for NULL. */
int64_t pg_spool_pq_i64(const PGresult *res, int row, int col);
/* A text column as a malloc'd string; NULL for SQL NULL (or no memory: *nomem set). */
char *pg_spool_pq_dup(const PGresult *res, int row, int col, int *nomem);
/* Decodes a bytea column of a text result ("\x...") into out (cap bytes); its length or -1. */
long pg_spool_pq_bytea(const PGresult *res, int row, int col, unsigned char *out, size_t cap);

/* ---- spool_pg_copy.c ---- */

/* Appends a row to a COPY stream (fields: how many follow), then its fields. */
void pg_spool_pq_copy_row(pg_spool_pq_copy *c, int fields);
void pg_spool_pq_copy_bin(pg_spool_pq_copy *c, const void *data, size_t len); /* NULL: NULL */
void pg_spool_pq_copy_text(pg_spool_pq_copy *c, const char *s);               /* NULL: NULL */
void pg_spool_pq_copy_i64(pg_spool_pq_copy *c, int64_t v);
void pg_spool_pq_copy_i32(pg_spool_pq_copy *c, int32_t v);
void pg_spool_pq_copy_i16(pg_spool_pq_copy *c, int16_t v);
/* Empties a stream, freeing its buffer when free_it. */
void pg_spool_pq_copy_reset(pg_spool_pq_copy *c, int free_it);
/* Appends message m's row (with id, size and hash; sha NULL: none yet) and its
 * recipients' rows to the batch's streams. */
void pg_spool_pq_copy_message(pg_spool_pq *q, const pg_spool_new *m, int64_t id, int64_t size,
                              const unsigned char *sha);
/* Appends a body chunk of message id to the batch's stream. */
void pg_spool_pq_copy_chunk(pg_spool_pq *q, int64_t id, int64_t seq, const void *data, size_t len);
/* The next message id of the reserved block, reserving a block when none is left. */
pigeon_err pg_spool_pq_next_id(pg_spool_pq *q, int64_t *id);
/* Sends the batch's streams (the last one's result read by pg_spool_pq_settle). */
pigeon_err pg_spool_pq_copy_flush(pg_spool_pq *q);
/* Reads the result of a COPY sent without waiting, if any: its error, or PIGEON_OK. */
pigeon_err pg_spool_pq_settle(pg_spool_pq *q);

/* ---- spool_pg_schema.c ---- */

/* Reads the schema version and brings an older or empty database to PG_SPOOL_PQ_VERSION
 * (unless READONLY), under an advisory lock so that two processes never migrate at once.
 * A database newer than this code, or one holding another program's tables, is refused
 * (PIGEON_ERR_CORRUPT) untouched. */
pigeon_err pg_spool_pq_migrate(pg_spool_pq *q);

/* ---- spool_pg_work.c (see pg_spool_ops) ---- */
pigeon_err pg_spool_pq_claim(void *be, const pg_spool_claim_req *req, pigeon_spool_entry **job);
pigeon_err pg_spool_pq_renew(void *be, const pigeon_spool_entry *job, int64_t until_ms);
pigeon_err pg_spool_pq_record(void *be, const pigeon_spool_entry *job,
                              const pigeon_spool_outcome *outcomes, size_t n, int64_t now_ms,
                              size_t *lost);
pigeon_err pg_spool_pq_release(void *be, const pigeon_spool_entry *job, int64_t now_ms);
pigeon_err pg_spool_pq_claim_batch(void *be, const pg_spool_claim_req *req, size_t max,
                                   pigeon_spool_entry **jobs, size_t *count);
pigeon_err pg_spool_pq_renew_batch(void *be, pigeon_spool_entry *const *jobs, size_t n,
                                   int64_t until_ms, unsigned char *held);
pigeon_err pg_spool_pq_record_batch(void *be, pigeon_spool_record_item *items, size_t n,
                                    int64_t now_ms);
pigeon_err pg_spool_pq_release_batch(void *be, pigeon_spool_entry *const *jobs, size_t n,
                                     int64_t now_ms);
pigeon_err pg_spool_pq_holders(void *be, const char *host,
                               int (*fn)(void *ctx, const pg_spool_holder *holder), void *ctx);
pigeon_err pg_spool_pq_reclaim(void *be, int64_t holder_id, int64_t now_ms, size_t *count);
pigeon_err pg_spool_pq_throttle(void *be, const char *account, int64_t until_ms,
                                const char *reason);
pigeon_err pg_spool_pq_list(void *be, const char *account,
                            int (*fn)(void *ctx, const pigeon_spool_entry *entry), void *ctx);
pigeon_err pg_spool_pq_show(void *be, const char *queue_id, pigeon_spool_entry **out);
pigeon_err pg_spool_pq_retry(void *be, const char *queue_id, int include_failed, int64_t now_ms,
                             size_t *count);
pigeon_err pg_spool_pq_remove(void *be, const char *queue_id);
pigeon_err pg_spool_pq_purge_failed(void *be, size_t *count);
pigeon_err pg_spool_pq_stats(void *be, int64_t now_ms, pigeon_spool_stats *out);
pigeon_err pg_spool_pq_body_open(void *be, const char *queue_id, void **reader, int64_t *size,
                                 unsigned char sha256[32]);
pigeon_err pg_spool_pq_body_read(void *be, void *reader, int64_t offset, void *buf, size_t cap,
                                 size_t *n);
void pg_spool_pq_body_close(void *be, void *reader);
/* Gives back the recipients claimed under the in-doubt lease tokens (after a reconnect). */
void pg_spool_pq_settle_doubts(pg_spool_pq *q);

/* Keys and message owners (spool_pg_api.c). */
extern const struct pg_spool_api_ops pg_spool_pq_api_ops;
/* The suppression list (spool_pg_suppress.c). */
extern const struct pg_spool_suppress_ops pg_spool_pq_suppress_ops;
/* Shared sending limits (spool_pg_limits.c). */
extern const struct pg_spool_limits_ops pg_spool_pq_limits_ops;
/* The webhook outbox (spool_pg_hooks.c). */
extern const struct pg_spool_hooks_ops pg_spool_pq_hooks_ops;
/* Storing exported messages with their state (spool_pg_import.c). */
extern const struct pg_spool_import_ops pg_spool_pq_import_ops;

#endif
