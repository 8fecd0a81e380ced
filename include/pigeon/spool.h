/*
 * pigeon/spool.h - the durable outgoing mail queue ("spool").
 *
 * `pigeon send --queue` stores a composed message with its envelope and account, and only
 * after the store is durable reports the queue id. Workers then claim due work under a
 * lease, try to deliver it, and record per-recipient outcomes.
 *
 * Storage: one SQLite file (the embedded backend), or a PostgreSQL database for several
 * machines sharing one queue, when path is a URL "postgresql://user@host:port/db?..." (or
 * "postgres://"; any libpq connection parameter may follow; the password from libpq's
 * PGPASSFILE or ~/.pgpass, never printed: diagnoses mask it). On PostgreSQL the schema is
 * under versioned migrations (table schema_version), applied on open with
 * PIGEON_SPOOL_CREATE (a database newer than the library is refused, PIGEON_ERR_CORRUPT);
 * a server that cannot be reached is PIGEON_ERR_NETWORK (temporary: every call reconnects,
 * with a bounded backoff). The SQLite file is in WAL mode with synchronous=FULL (a handle opened
 * with PIGEON_SPOOL_DEFER_SYNC defers the flush, see there): when an enqueue (or
 * pigeon_spool_commit()) returns PIGEON_OK the message is on disk and survives a crash of the
 * process or the machine. Message bodies are stored inside the database as BLOBs, split into chunks
 * of at most 256 KiB, with their size and SHA-256; one transaction therefore holds a message, its
 * envelope and its recipients, and no crash can leave a recipient without a body or a body without
 * its row. Bodies are read back in bounded memory and checked against their SHA-256.
 *
 * Queue ids are ULIDs: 26 characters of Crockford base32 ("01JDX8Q4ZB7M3K9V0T2C5R6N8P"),
 * the first 10 encoding the enqueue time in milliseconds and the last 16 eighty random
 * bits from a CSPRNG. They sort by enqueue time, need no coordination between processes,
 * and are safe in file names, shells and JSON.
 *
 * Recipients each have a state (pigeon_spool_state). A recipient that was delivered
 * (accepted by the server) is never handed out again. A claimed recipient is "in flight"
 * under a lease (owner, expiry, and the process holding it: host, boot id, pid, start
 * time); a worker that dies leaves its leases to expire, and the recipients become due
 * again, at once when pigeon_spool_reclaim() finds the holder gone from this host. The
 * only duplicate this allows is a crash after the final dot of DATA but before the reply
 * was recorded. When every recipient of a message is
 * delivered, the message is removed from the spool; messages with failed recipients stay
 * until pigeon_spool_purge_failed() or pigeon_spool_delete().
 *
 * Time: every call that depends on time takes now_ms, milliseconds since the Unix epoch
 * (wall clock, because retry times must survive reboots), so that callers and tests
 * control time. pigeon_spool_now_ms() gives the current time.
 *
 * A file that is not a pigeon spool, is damaged, or was written by a newer pigeon is
 * refused with PIGEON_ERR_CORRUPT and a message saying which, and is never written to.
 *
 * Errors: every call returns a pigeon_err; pigeon_spool_error() gives our one-line
 * diagnosis of the last failure on the handle. PIGEON_ERR_INVALID: bad arguments;
 * PIGEON_ERR_NOTFOUND: no such queue id (or no spool file without PIGEON_SPOOL_CREATE);
 * PIGEON_ERR_IO: the storage failed (I/O error); PIGEON_ERR_NOSPACE: the disk (or quota)
 * is full, and nothing of the call was stored; PIGEON_ERR_TIMEOUT: the spool
 * stayed locked by another process longer than the busy timeout; PIGEON_ERR_CORRUPT: see
 * above; PIGEON_ERR_STATE: a lease that was lost, or a call out of order.
 *
 * Thread safety: a pigeon_spool handle is used by one thread at a time. Any number of
 * handles, in any number of threads and processes, may use the same file at once; claims
 * are serialized by the database so that no two handles ever claim the same recipient.
 */
#ifndef PIGEON_SPOOL_H
#define PIGEON_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/error.h"
#include "pigeon/message.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Length of a queue id, without the terminating NUL. */
#define PIGEON_SPOOL_ID_LEN 26

typedef struct pigeon_spool pigeon_spool;
/* A stored message being read (pigeon_spool_body_open(), pigeon_spool_job_body()). */
typedef struct pigeon_spool_body pigeon_spool_body;

/* Flags for pigeon_spool_open(). */
enum {
    PIGEON_SPOOL_CREATE = 1,   /* create the file (and initialize it) if it does not exist */
    PIGEON_SPOOL_READONLY = 2, /* open for list/show/stats/body only; never writes */
    PIGEON_SPOOL_NO_CHECK = 4, /* skip PRAGMA quick_check on open (it reads the whole file) */
    /* Commits on this handle survive a crash of the process as soon as they return, but
     * reach the disk (survive a power cut or an OS crash) only at the next
     * pigeon_spool_sync() (or an automatic checkpoint): what a delivery daemon wants for
     * its claims and outcomes, recorded one message at a time and flushed once per batch.
     * Enqueues through such a handle are durable only after pigeon_spool_sync() too. */
    PIGEON_SPOOL_DEFER_SYNC = 8,
    /* This handle writes one large batch (pigeon send --queue --to-file): a page cache of
     * 2 MiB rather than 64, reused as the batch spills into the WAL, which it does anyway
     * past a few thousand messages. Fresh memory costs a page fault per 4 KiB; the 10,000
     * message merge took 40% less CPU time and 10 MiB instead of 76 (SQLite; ignored by
     * PostgreSQL). */
    PIGEON_SPOOL_BULK = 16,
};

/*
 * Opens (and with PIGEON_SPOOL_CREATE creates) the spool at path. On failure *out is NULL
 * and, if errbuf is not NULL, a one-line reason is written to errbuf (errlen bytes, always
 * NUL-terminated). Errors: PIGEON_ERR_NOTFOUND (no file and no CREATE flag),
 * PIGEON_ERR_CORRUPT (not a pigeon spool, damaged, or from a newer version: the file is
 * left untouched), PIGEON_ERR_IO, PIGEON_ERR_TIMEOUT, PIGEON_ERR_NOMEM, PIGEON_ERR_INVALID.
 * An empty (0-byte) file is initialized as a new spool.
 */
pigeon_err pigeon_spool_open(const char *path, unsigned flags, pigeon_spool **out, char *errbuf,
                             size_t errlen);

/* Closes the handle; an open batch is rolled back. Bodies opened with
 * pigeon_spool_body_open() must be closed first. NULL is a no-op. */
void pigeon_spool_close(pigeon_spool *spool);

/* Our diagnosis of the last failure on the handle, or "" if none. Owned by the handle,
 * valid until the next call on it. */
const char *pigeon_spool_error(const pigeon_spool *spool);

/* How long a call waits for another process's lock before PIGEON_ERR_TIMEOUT (default
 * 10000 ms). */
pigeon_err pigeon_spool_set_busy_timeout(pigeon_spool *spool, int ms);

/* The current wall-clock time in milliseconds since the Unix epoch. */
int64_t pigeon_spool_now_ms(void);

/* Runs SQLite's full integrity_check (full nonzero) or quick_check (full zero).
 * PIGEON_ERR_CORRUPT with the first problem found in pigeon_spool_error(). */
pigeon_err pigeon_spool_check(pigeon_spool *spool, int full);

/* ---- enqueue ---- */

/* The envelope of a message to store (all strings borrowed, UTF-8, no control
 * characters). */
typedef struct pigeon_spool_envelope {
    const char *account;      /* the account (configuration name) to send through; required */
    const char *mail_from;    /* the RFC 5321 reverse-path without <>; "" for the null path */
    const char *const *rcpts; /* the forward-paths without <>; exact duplicates are merged */
    size_t rcpt_count;        /* number of rcpts, at least 1 */
    const char *message_id;   /* the message's Message-ID (kept for display), or NULL */
} pigeon_spool_envelope;

/*
 * Stores a message (len bytes at data, the exact bytes to send after DATA, CRLF line
 * endings, not dot-stuffed) with its envelope, and writes its queue id (NUL-terminated)
 * to id. Outside a batch the message is durable when this returns PIGEON_OK. Inside a
 * batch (pigeon_spool_begin()) it is durable only after pigeon_spool_commit() returns
 * PIGEON_OK: do not report the id before. A failed enqueue stores nothing (even inside a
 * batch, where earlier messages of the batch are kept).
 */
pigeon_err pigeon_spool_enqueue(pigeon_spool *spool, const pigeon_spool_envelope *env,
                                const void *data, size_t len, int64_t now_ms,
                                char id[PIGEON_SPOOL_ID_LEN + 1]);

/* The same, reading the message from a stream until it reports 0 bytes (bounded memory,
 * whatever the size). A nonzero return from read aborts with PIGEON_ERR_IO. */
pigeon_err pigeon_spool_enqueue_stream(pigeon_spool *spool, const pigeon_spool_envelope *env,
                                       pigeon_read_fn read, void *ctx, int64_t now_ms,
                                       char id[PIGEON_SPOOL_ID_LEN + 1]);

/* A batch: enqueues between begin and commit are one transaction (one disk flush for all,
 * which is what makes bulk enqueue fast). rollback discards them. Other calls (claim,
 * record...) are not allowed inside a batch (PIGEON_ERR_STATE). */
pigeon_err pigeon_spool_begin(pigeon_spool *spool);
pigeon_err pigeon_spool_commit(pigeon_spool *spool);
pigeon_err pigeon_spool_rollback(pigeon_spool *spool);

/* ---- recipients, claims and outcomes ---- */

typedef enum pigeon_spool_state {
    PIGEON_SPOOL_QUEUED = 0,    /* never tried yet */
    PIGEON_SPOOL_INFLIGHT = 1,  /* claimed by a worker under a lease */
    PIGEON_SPOOL_DEFERRED = 2,  /* failed temporarily; due again at next_ms */
    PIGEON_SPOOL_DELIVERED = 3, /* accepted by the server; final */
    PIGEON_SPOOL_FAILED = 4,    /* failed permanently or expired; final */
} pigeon_spool_state;
#define PIGEON_SPOOL_NSTATES 5

/* "queued", "inflight", "deferred", "delivered", "failed"; "?" if out of range. */
const char *pigeon_spool_state_name(pigeon_spool_state state);

/* One recipient as stored. Strings are owned by the entry they belong to. */
typedef struct pigeon_spool_rcpt {
    int64_t id;                /* the recipient's row id (stable while the message exists) */
    const char *address;       /* the forward-path without <> */
    pigeon_spool_state state;  /* its state */
    int attempts;              /* delivery attempts so far (claims), the current one included */
    int64_t next_ms;           /* QUEUED/DEFERRED: when due; INFLIGHT: lease expiry; else 0 */
    const char *lease_owner;   /* INFLIGHT: the owner of the lease; else NULL */
    pigeon_err last_err;       /* DEFERRED/FAILED: our classification of the last failure */
    int smtp_code;             /* the server's reply code to it, 0 if none */
    const char *enhanced_code; /* the server's enhanced status code ("5.1.1"), or NULL */
    const char *text;          /* the server's reply text or our diagnosis, or NULL */
    int64_t updated_ms;        /* when the state last changed */
} pigeon_spool_rcpt;

/* A stored message: what list, show and claim return. */
typedef struct pigeon_spool_entry {
    char queue_id[PIGEON_SPOOL_ID_LEN + 1]; /* the queue id */
    const char *message_id;                 /* its Message-ID ("" if none was given) */
    const char *account;                    /* the account to send through */
    const char *mail_from;                  /* the envelope sender ("" for the null reverse-path) */
    int64_t size;                           /* message size in bytes */
    int64_t created_ms;                     /* enqueue time */
    size_t count[PIGEON_SPOOL_NSTATES];     /* its recipients per state (all of them) */
    int64_t next_ms;               /* the earliest due time of a pending recipient, 0 if none */
    size_t rcpt_count;             /* number of entries in rcpts */
    pigeon_spool_rcpt *rcpts;      /* show: all recipients; claim: the claimed ones; list: NULL */
    const char *lease_owner;       /* claim: the lease owner; else NULL */
    int64_t lease_until_ms;        /* claim: when the lease expires; else 0 */
    int64_t lease_token;           /* claim: the lease's identity (random); else 0 */
    int attempt;                   /* claim: the highest attempt number among the claimed rcpts */
    void *body;                    /* claim_batch with inline_max: the message's stored bytes (size
                                      of them, not yet checked against the SHA-256; read them with
                                      pigeon_spool_job_body()), or NULL */
    unsigned char body_sha256[32]; /* with body: the SHA-256 stored at enqueue */
} pigeon_spool_entry;

/* Frees an entry from claim or show. NULL is a no-op. */
void pigeon_spool_entry_free(pigeon_spool_entry *entry);

/*
 * Claims the due recipients of one message: those queued, deferred with next_ms <= now_ms,
 * or in flight under a lease that expired (its worker died). Messages whose account is
 * throttled (pigeon_spool_throttle()) are skipped. The oldest due work goes first.
 * owner names the worker (e.g. "host:pid", at most 128 bytes); account limits the claim to
 * one account (NULL: any). The recipients are leased until now_ms + lease_ms, which must
 * exceed the longest delivery attempt. On success *job is the claim (free it with
 * pigeon_spool_entry_free()), or NULL when nothing is due.
 */
pigeon_err pigeon_spool_claim(pigeon_spool *spool, const char *owner, const char *account,
                              int64_t now_ms, int64_t lease_ms, pigeon_spool_entry **job);

/* Extends a claim's lease to until_ms (and updates job->lease_until_ms).
 * PIGEON_ERR_STATE if the lease was lost (expired and claimed by someone else). */
pigeon_err pigeon_spool_renew(pigeon_spool *spool, pigeon_spool_entry *job, int64_t until_ms);

/* The outcome of one claimed recipient. */
typedef struct pigeon_spool_outcome {
    size_t rcpt;               /* index into job->rcpts */
    pigeon_spool_state state;  /* DELIVERED, DEFERRED or FAILED */
    int64_t next_ms;           /* DEFERRED: when to try again (from the retry policy) */
    pigeon_err err;            /* DEFERRED/FAILED: our classification of the failure */
    int smtp_code;             /* the server's reply code, 0 if none */
    const char *enhanced_code; /* the enhanced status code ("4.2.1"), or NULL */
    const char *text;          /* the reply text or our diagnosis, or NULL (cut at 1000 bytes) */
} pigeon_spool_outcome;

/*
 * Records outcomes of a claim, all in one durable transaction. A DELIVERED outcome is
 * always recorded (acceptance is a fact, even when the lease expired meanwhile), and the
 * recipient is never claimed again. DEFERRED and FAILED outcomes are recorded only if the
 * lease is still held; otherwise they are skipped and the call returns PIGEON_ERR_STATE
 * after recording the others. When all recipients of the message are delivered, the
 * message is removed. Recipients of the claim without an outcome stay in flight until
 * released or until their lease expires.
 */
pigeon_err pigeon_spool_record(pigeon_spool *spool, const pigeon_spool_entry *job,
                               const pigeon_spool_outcome *outcomes, size_t n, int64_t now_ms);

/* Gives back the claim's recipients still in flight under its lease, due at now_ms, without
 * counting the attempt (e.g. on shutdown before sending). */
pigeon_err pigeon_spool_release(pigeon_spool *spool, const pigeon_spool_entry *job, int64_t now_ms);

/* Slows a whole account: no claim hands out its messages before until_ms (a server's
 * Retry-After-like hint, a 421 "too many connections"). A later time replaces an earlier
 * one; an earlier time does not shorten it. reason may be NULL. */
pigeon_err pigeon_spool_throttle(pigeon_spool *spool, const char *account, int64_t until_ms,
                                 const char *reason);

/* Makes every commit made so far through this handle durable against power loss (one
 * flush of the log). Without PIGEON_SPOOL_DEFER_SYNC commits already are, and this does
 * nothing. PIGEON_ERR_IO or PIGEON_ERR_NOSPACE when the flush fails. */
pigeon_err pigeon_spool_sync(pigeon_spool *spool);

/* pigeon_spool_sync() without the flush: applies what the handle journaled to the spool
 * (one commit, written to the log but not flushed). For a caller that flushes the log
 * file itself (fdatasync of "SPOOL-wal") outside the lock it shares the handle under,
 * so that other threads keep writing during the flush; the commits are durable once that
 * flush returns. A process killed in between loses nothing (the kernel has the log). */
pigeon_err pigeon_spool_apply(pigeon_spool *spool);

/*
 * Gives back at once the leases of processes that no longer exist: every recipient in
 * flight under a lease taken by a process of this host (same host name and pid
 * namespace) that is gone (its pid no longer exists, or now belongs to a process started
 * at another time, or the host rebooted since) becomes due at now_ms, its attempt still
 * counted. Leases of live processes and of other hosts are left alone (the latter expire
 * as usual). Each lease records its holder (host, boot id, pid, process start time) when
 * it is claimed. *count (may be NULL) is the number of recipients given back.
 */
pigeon_err pigeon_spool_reclaim(pigeon_spool *spool, int64_t now_ms, size_t *count);

/* ---- batches of claims and outcomes ----
 *
 * Every claim and every record is a durable commit (an fsync), which bounds a worker that
 * claims and records message by message to the disk's commit rate. The calls below do the
 * same work for many messages in one transaction each. The guarantees are those of the
 * single calls: a claim hands out each recipient to one lease at a time, a delivered
 * recipient is never handed out again once recorded, and a worker that dies leaves its
 * leases to expire. The only added risk is the caller's: messages whose final dot was
 * sent but whose outcomes are not yet recorded are sent again after a crash, so a caller
 * should record right after each message. On a handle opened with
 * PIGEON_SPOOL_DEFER_SYNC that costs no flush: a record is appended to a journal beside
 * the spool at once (it survives a crash of the process), and applied to the spool and
 * flushed to disk at pigeon_spool_sync() (the daemon: once per batch), or by the
 * pigeon_spool_reclaim() of another process if this one dies first. Until then the
 * recipients show as in flight.
 */

/*
 * Claims the due recipients (as pigeon_spool_claim() does) of up to max messages of one
 * account, in one transaction, under one lease: every job gets the same lease_owner,
 * lease_until_ms and lease_token. account NULL: the account of the oldest due work. The
 * oldest due work goes first. Messages of at most inline_max bytes (0: none; at most
 * PIGEON_SPOOL_MAX_INLINE) come with their bytes in job->body, read in the same
 * transaction, which saves the caller opening each one again. On success *jobs is a
 * malloc'd array of *count claims (free it with pigeon_spool_jobs_free()), or NULL with
 * *count 0 when nothing is due. Errors as pigeon_spool_claim(); PIGEON_ERR_INVALID for
 * max 0 or above PIGEON_SPOOL_MAX_BATCH, or inline_max above PIGEON_SPOOL_MAX_INLINE. On
 * error nothing is claimed.
 */
#define PIGEON_SPOOL_MAX_BATCH  1024
#define PIGEON_SPOOL_MAX_INLINE (1024 * 1024)
pigeon_err pigeon_spool_claim_batch(pigeon_spool *spool, const char *owner, const char *account,
                                    int64_t now_ms, int64_t lease_ms, size_t max, size_t inline_max,
                                    pigeon_spool_entry ***jobs, size_t *count);

/* Opens a claimed message's bytes for reading, as pigeon_spool_body_open() does: from
 * job->body when the claim carried them (checked against their SHA-256 like any stored
 * body), else from the store. The job must outlive the body. */
pigeon_err pigeon_spool_job_body(pigeon_spool *spool, const pigeon_spool_entry *job,
                                 pigeon_spool_body **out, int64_t *size);

/* Frees an array from pigeon_spool_claim_batch() and its n entries. NULL is a no-op. */
void pigeon_spool_jobs_free(pigeon_spool_entry **jobs, size_t n);

/*
 * Extends the lease of n claims to until_ms, in one transaction. A claim whose lease is
 * still held (some recipient in flight under it) gets lease_until_ms = until_ms; one whose
 * lease was lost, or that has nothing left in flight (all recorded), keeps its old
 * lease_until_ms, so that the caller can tell which it may still send. *lost (may be
 * NULL) is the number of the latter. PIGEON_OK even when some were lost.
 */
pigeon_err pigeon_spool_renew_batch(pigeon_spool *spool, pigeon_spool_entry *const *jobs, size_t n,
                                    int64_t until_ms, size_t *lost);

/* The outcomes of one claim, for pigeon_spool_record_batch(). */
typedef struct pigeon_spool_record_item {
    const pigeon_spool_entry *job;        /* the claim (borrowed) */
    const pigeon_spool_outcome *outcomes; /* its outcomes (borrowed) */
    size_t n;                             /* number of outcomes */
    size_t lost;                          /* out: outcomes skipped because the lease was lost */
} pigeon_spool_record_item;

/*
 * Records the outcomes of n claims, as pigeon_spool_record() would for each, in one
 * durable transaction: all or (on an error other than PIGEON_ERR_STATE) none. Every item
 * is validated first (PIGEON_ERR_INVALID names the first bad one and records nothing).
 * PIGEON_ERR_STATE after recording everything else when some outcomes were skipped for a
 * lost lease; items[i].lost says which.
 */
pigeon_err pigeon_spool_record_batch(pigeon_spool *spool, pigeon_spool_record_item *items, size_t n,
                                     int64_t now_ms);

/*
 * Records delivered outcomes as pigeon_spool_record_batch() does, on a handle opened with
 * PIGEON_SPOOL_DEFER_SYNC whose outcome journal is open (after its first record): they
 * are only appended to the journal, so that this call, unlike every other, may run while
 * another thread uses the handle (the daemon's workers record each message at once
 * without waiting for another's claim or sync). Every outcome must be DELIVERED
 * (PIGEON_ERR_INVALID otherwise). PIGEON_ERR_UNSUPPORTED when the handle cannot (no
 * journal yet, or a PostgreSQL spool): record through pigeon_spool_record_batch() then.
 * The diagnosis goes to errbuf (errlen bytes), not to pigeon_spool_error().
 */
pigeon_err pigeon_spool_journal_delivered(pigeon_spool *spool, pigeon_spool_record_item *items,
                                          size_t n, int64_t now_ms, char *errbuf, size_t errlen);

/* Gives back, as pigeon_spool_release() does, the recipients still in flight under the
 * leases of n claims, in one transaction. */
pigeon_err pigeon_spool_release_batch(pigeon_spool *spool, pigeon_spool_entry *const *jobs,
                                      size_t n, int64_t now_ms);

/* ---- administration: pigeon queue list|show|retry|delete|purge|stats ---- */

/* Calls fn for each message (in enqueue order), of one account or of all (account NULL).
 * The entry passed has no recipients (rcpts NULL) and is valid only during the call.
 * fn may not call into the same handle (collect ids, then show them after the listing).
 * fn returning nonzero stops the listing (still PIGEON_OK). */
pigeon_err pigeon_spool_list(pigeon_spool *spool, const char *account,
                             int (*fn)(void *ctx, const pigeon_spool_entry *entry), void *ctx);

/* The message with this queue id and all its recipients, in *out (free with
 * pigeon_spool_entry_free()). PIGEON_ERR_NOTFOUND if there is none. */
pigeon_err pigeon_spool_show(pigeon_spool *spool, const char *queue_id, pigeon_spool_entry **out);

/* Makes deferred recipients due at now_ms, of one message (queue_id) or of all (NULL);
 * with include_failed, failed recipients too (they become deferred, due now). Delivered and
 * in-flight recipients are untouched. *count (may be NULL) is the number of recipients
 * changed. PIGEON_ERR_NOTFOUND if queue_id names no message. */
pigeon_err pigeon_spool_retry(pigeon_spool *spool, const char *queue_id, int include_failed,
                              int64_t now_ms, size_t *count);

/* Removes a message and its body, whatever its recipients' states. */
pigeon_err pigeon_spool_delete(pigeon_spool *spool, const char *queue_id);

/* Removes every message that is finished (no recipient queued, in flight or deferred) and
 * has at least one failed recipient. *count (may be NULL) is the number removed. */
pigeon_err pigeon_spool_purge_failed(pigeon_spool *spool, size_t *count);

typedef struct pigeon_spool_stats {
    size_t messages;                    /* messages in the spool */
    size_t rcpts[PIGEON_SPOOL_NSTATES]; /* recipients per state */
    size_t stale_leases;                /* in-flight recipients whose lease has expired */
    size_t throttled_accounts;          /* accounts throttled at now_ms */
    int64_t oldest_pending_ms;          /* enqueue time of the oldest message with work
                                           left (queued, in flight or deferred), 0 if none */
    int64_t bytes;                      /* total size of the stored messages */
} pigeon_spool_stats;

pigeon_err pigeon_spool_stats_get(pigeon_spool *spool, int64_t now_ms, pigeon_spool_stats *out);

/* ---- reading a stored message back ---- */

/* Opens the stored bytes of a message for reading. *size (may be NULL) is its length.
 * PIGEON_ERR_NOTFOUND if there is none. */
pigeon_err pigeon_spool_body_open(pigeon_spool *spool, const char *queue_id,
                                  pigeon_spool_body **out, int64_t *size);

/*
 * Reads up to cap bytes; *n = 0 at the end. Has the pigeon_read_fn signature (ctx is the
 * pigeon_spool_body), so a body can be handed to anything that reads a stream. Returns a
 * pigeon_err: PIGEON_ERR_CORRUPT if the bytes do not match the stored SHA-256 or size
 * (checked before the end is reported), PIGEON_ERR_NOTFOUND if the message was deleted
 * while being read.
 */
int pigeon_spool_body_read(void *body, void *buf, size_t cap, size_t *n);

/* Closes the body. NULL is a no-op. */
void pigeon_spool_body_close(pigeon_spool_body *body);

/* ---- waiting for work ----
 *
 * On PostgreSQL every enqueue (and retry, release, reclaim) sends a notification in its
 * own transaction (NOTIFY pigeon_spool: only once it committed). An idle worker waits on
 * pigeon_spool_wait_fd() (poll() for POLLIN, with its usual poll interval as the timeout:
 * deferred work falls due without a notification) and, when it is readable, calls
 * pigeon_spool_notified() before claiming.
 */

/* A descriptor that becomes readable when work may have been enqueued: the handle's
 * connection, which LISTENs from the first call on. -1 when the backend has no
 * notifications (SQLite), inside a batch, or while the server is unreachable (poll
 * instead, and ask again next time: a reconnect gives another descriptor). */
int pigeon_spool_wait_fd(pigeon_spool *spool);

/* Reads what arrived on the handle's connection and returns the number of notifications
 * received since the last call (0: none; the descriptor was readable for another reason).
 * Nonzero also when the connection broke (the next call reconnects). 0 for SQLite. */
int pigeon_spool_notified(pigeon_spool *spool);

#ifdef __cplusplus
}
#endif
#endif
