/*
 * spool_backend.h - the storage interface behind the spool (internal).
 *
 * lib/spool/spool.c is the generic layer: it validates arguments, makes queue ids and lease
 * tokens, hashes bodies, splits them into chunks, owns the result structs and the error
 * text. A backend only stores and finds rows: SQLite (lib/spool/spool_sqlite.c) for one
 * host, PostgreSQL (lib/spool/spool_pg.c) for several machines sharing a queue, chosen by
 * the path (compare OpenSMTPD queue_backend.c with queue_fs.c).
 *
 * Contract for every backend:
 * - A call that returns PIGEON_OK outside a batch is durable (committed and flushed), or,
 *   on a handle opened with PIGEON_SPOOL_DEFER_SYNC, committed where a crash of the calling
 *   process cannot undo it, and durable after the next sync.
 * - Writes are atomic: a failed call leaves the store as it was before the call.
 * - Claims from any number of handles never hand out the same recipient twice while its
 *   lease runs.
 * - Failures write one line into the diag given at open.
 * - The backend never frees what the generic layer owns, and vice versa.
 */
#ifndef PG_SPOOL_BACKEND_H
#define PG_SPOOL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/spool.h"

/* Where a backend writes its one-line diagnosis (owned by the generic handle). */
typedef struct pg_spool_diag {
    char text[512]; /* the last diagnosis, NUL-terminated, "" if none */
} pg_spool_diag;

/* Formats a diagnosis into diag and returns err, so that `return pg_spool_fail(...)`. */
pigeon_err pg_spool_fail(pg_spool_diag *diag, pigeon_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A message being enqueued, validated by the generic layer (all borrowed). */
typedef struct pg_spool_new {
    const char *queue_id;             /* the new queue id */
    const pigeon_spool_envelope *env; /* account, from, rcpts (deduplicated by the backend) */
    int64_t now_ms;                   /* enqueue time */
} pg_spool_new;

/* The process holding a lease, as data: the generic layer finds its own (spool_holder.c)
 * and judges whether another still runs; a backend only stores and lists them. */
typedef struct pg_spool_holder {
    int64_t id;          /* the backend's key for it (holders, reclaim); 0 when unknown */
    const char *host;    /* the host name (gethostname) */
    const char *boot_id; /* the host's boot id (/proc/sys/kernel/random/boot_id), or "" */
    int64_t pid;         /* its process id */
    int64_t started;     /* its start time (clock ticks since boot, /proc/PID/stat), or 0 */
} pg_spool_holder;

/* A claim request (all borrowed). */
typedef struct pg_spool_claim_req {
    const char *owner;             /* lease owner */
    const pg_spool_holder *holder; /* the process taking the lease */
    const char *account;           /* only this account, or NULL */
    int64_t now_ms;                /* the time of the claim */
    int64_t until_ms;              /* lease expiry */
    int64_t token;                 /* lease identity */
    size_t inline_max;             /* load the bytes of messages up to this size into entry->body */
} pg_spool_claim_req;

/* Fills an entry; strings it stores must be malloc'd (freed by pigeon_spool_entry_free). */
typedef struct pg_spool_ops {
    const char *name; /* "sqlite" */

    pigeon_err (*open)(const char *path, unsigned flags, pg_spool_diag *diag, void **be);
    void (*close)(void *be);
    pigeon_err (*set_busy_timeout)(void *be, int ms);
    pigeon_err (*check)(void *be, int full);
    /* Makes every commit of this handle so far durable (power loss included). A no-op
     * unless the handle was opened with PIGEON_SPOOL_DEFER_SYNC. flush 0: only applies
     * the journal (pigeon_spool_apply), the caller flushes. */
    pigeon_err (*sync)(void *be, int flush);

    /* Batches. */
    pigeon_err (*begin)(void *be);
    pigeon_err (*commit)(void *be);
    pigeon_err (*rollback)(void *be);

    /* Enqueue in steps so that the body can stream: msg_begin starts an atomic unit (a
     * transaction, or inside a batch a part of it) and inserts the message row and its
     * recipients; msg_chunk appends the seq-th chunk of the body; msg_end stores the
     * size and hash and makes the unit durable (or part of the batch); msg_abort undoes
     * the whole unit (inside a batch, only this message if it can, else the batch). */
    pigeon_err (*msg_begin)(void *be, const pg_spool_new *msg);
    pigeon_err (*msg_chunk)(void *be, int64_t seq, const void *data, size_t len);
    pigeon_err (*msg_end)(void *be, int64_t size, const unsigned char sha256[32]);
    void (*msg_abort)(void *be);

    /* Claims one message's due recipients into *job (allocated by the backend with
     * calloc; *job NULL when nothing is due). */
    pigeon_err (*claim)(void *be, const pg_spool_claim_req *req, pigeon_spool_entry **job);
    pigeon_err (*renew)(void *be, const pigeon_spool_entry *job, int64_t until_ms);
    /* Records outcomes (validated); *lost is the number skipped for a lost lease. */
    pigeon_err (*record)(void *be, const pigeon_spool_entry *job,
                         const pigeon_spool_outcome *outcomes, size_t n, int64_t now_ms,
                         size_t *lost);
    pigeon_err (*release)(void *be, const pigeon_spool_entry *job, int64_t now_ms);
    pigeon_err (*throttle)(void *be, const char *account, int64_t until_ms, const char *reason);

    /* Leases of processes that no longer exist. holders calls fn for each holder known on
     * host (with its id), with or without leases; fn returning nonzero stops. reclaim
     * makes the recipients in flight under holder id due at now_ms (without counting the
     * attempt as failed: the attempt stays counted) and forgets the holder; *count is the
     * number of recipients. One transaction each. */
    pigeon_err (*holders)(void *be, const char *host,
                          int (*fn)(void *ctx, const pg_spool_holder *holder), void *ctx);
    pigeon_err (*reclaim)(void *be, int64_t holder_id, int64_t now_ms, size_t *count);

    /* Batches of the above, each one transaction. claim_batch fills jobs (room for max
     * entries, owned by the caller; each entry calloc'd as by claim) and *count, taking
     * messages of req->account only, or when it is NULL of the account of the oldest due
     * work. renew_batch sets held[i] nonzero for the jobs that still had something in
     * flight under their lease (and now have it until until_ms). record_batch applies
     * each item as record does, filling items[i].lost. release_batch releases each job
     * as release does. */
    pigeon_err (*claim_batch)(void *be, const pg_spool_claim_req *req, size_t max,
                              pigeon_spool_entry **jobs, size_t *count);
    pigeon_err (*renew_batch)(void *be, pigeon_spool_entry *const *jobs, size_t n, int64_t until_ms,
                              unsigned char *held);
    pigeon_err (*record_batch)(void *be, pigeon_spool_record_item *items, size_t n, int64_t now_ms);
    pigeon_err (*release_batch)(void *be, pigeon_spool_entry *const *jobs, size_t n,
                                int64_t now_ms);

    pigeon_err (*list)(void *be, const char *account,
                       int (*fn)(void *ctx, const pigeon_spool_entry *entry), void *ctx);
    pigeon_err (*show)(void *be, const char *queue_id, pigeon_spool_entry **out);
    pigeon_err (*retry)(void *be, const char *queue_id, int include_failed, int64_t now_ms,
                        size_t *count);
    pigeon_err (*remove)(void *be, const char *queue_id);
    pigeon_err (*purge_failed)(void *be, size_t *count);
    pigeon_err (*stats)(void *be, int64_t now_ms, pigeon_spool_stats *out);

    /* Body reading: open finds the message (size and hash); read fills up to cap bytes
     * starting at offset (the generic layer keeps the position); close frees. */
    pigeon_err (*body_open)(void *be, const char *queue_id, void **reader, int64_t *size,
                            unsigned char sha256[32]);
    pigeon_err (*body_read)(void *be, void *reader, int64_t offset, void *buf, size_t cap,
                            size_t *n);
    void (*body_close)(void *be, void *reader);

    /* The submission service's keys and message owners (spool/spool_api.h), or NULL. */
    const struct pg_spool_api_ops *api;
    /* Storing exported messages with their state (spool/spool_import.h), or NULL. */
    const struct pg_spool_import_ops *import;
    /* Shared sending limits (spool/spool_limits.h), or NULL: daemons count in memory. */
    const struct pg_spool_limits_ops *limits;
    /* The webhook outbox (spool/spool_hooks.h), or NULL. */
    const struct pg_spool_hooks_ops *hooks;
    /* The suppression list (spool/spool_suppress.h), or NULL. */
    const struct pg_spool_suppress_ops *suppress;

    /* Waiting for work (pigeon_spool_wait_fd), or NULL: a descriptor that becomes readable
     * when work may have been enqueued (-1 for none now), and the number of notifications
     * received since the last call (consumed). */
    int (*wait_fd)(void *be);
    int (*notified)(void *be);

    /* Delivered outcomes (validated) journaled while another thread may be using the
     * handle (pigeon_spool_journal_delivered), diagnosed into diag; NULL: not supported. */
    pigeon_err (*journal_delivered)(void *be, pigeon_spool_record_item *items, size_t n,
                                    int64_t now_ms, pg_spool_diag *diag);
} pg_spool_ops;

/* The backend of a handle, and its ops (for spool_api.c). */
void *pg_spool_backend(pigeon_spool *spool, const pg_spool_ops **ops);
/* The handle's diagnosis, for the generic wrappers of side tables. */
pg_spool_diag *pg_spool_diag_of(pigeon_spool *spool);

/* The SQLite backend (lib/spool/spool_sqlite.c). */
extern const pg_spool_ops pg_spool_sqlite_ops;
/* The PostgreSQL backend (lib/spool/spool_pg.c), for paths "postgresql://" and
 * "postgres://". */
extern const pg_spool_ops pg_spool_pgsql_ops;

/* The chunk size bodies are split into (bytes). */
#define PG_SPOOL_CHUNK (256 * 1024)

#endif
