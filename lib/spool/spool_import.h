/*
 * spool_import.h - storing a message with the state it had in another spool (internal;
 * used by lib/transfer for `pigeon queue import`).
 *
 * An export keeps each message's queue id, enqueue time and each recipient's state,
 * attempts, next attempt and last reply, so that a spool moved to another backend or
 * host goes on where it stopped: delivered recipients are never sent again, deferred ones
 * keep their backoff, failed ones stay failed. pg_spool_import() stores one such message
 * atomically (message, recipients and body, or nothing), and skips it when its queue id
 * is already present, which makes an import that is run again harmless.
 *
 * A recipient that was in flight in the source (its lease belongs to a process of that
 * spool, which this one cannot know) becomes deferred, due when its lease would have
 * expired, its attempt counted: exactly what the source would have done once the lease
 * ran out.
 */
#ifndef PG_SPOOL_IMPORT_H
#define PG_SPOOL_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/spool.h"

/* One recipient as exported (strings borrowed). */
typedef struct pg_spool_import_rcpt {
    const char *address;       /* the forward-path without <> */
    pigeon_spool_state state;  /* its state in the source */
    int attempts;              /* attempts so far */
    int64_t next_ms;           /* queued/deferred: when due; inflight: lease expiry; else 0 */
    pigeon_err last_err;       /* our classification of the last failure, or PIGEON_OK */
    int smtp_code;             /* the server's last reply code, 0 if none */
    const char *enhanced_code; /* its enhanced status code, or NULL */
    const char *text;          /* its text or our diagnosis, or NULL */
    int64_t updated_ms;        /* when the state last changed */
} pg_spool_import_rcpt;

/* One message as exported (strings borrowed). */
typedef struct pg_spool_import_msg {
    const char *queue_id;              /* its queue id in the source (kept) */
    const char *account;               /* the account to send through */
    const char *mail_from;             /* the reverse-path without <> ("" for null) */
    const char *message_id;            /* its Message-ID, or "" */
    int64_t created_ms;                /* its enqueue time in the source */
    const pg_spool_import_rcpt *rcpts; /* its recipients */
    size_t rcpt_count;                 /* how many (at least 1) */
} pg_spool_import_msg;

/*
 * Stores msg with the body read from read/ctx until it reports 0 bytes (streamed in
 * chunks: bounded memory whatever the size), checked against size and sha256 (the
 * exported ones) before anything is committed. Nothing is written and *present is set
 * to 1 when a message with this queue id is already in the spool, to 2 when every
 * recipient was delivered (the spool keeps no finished message); else it is 0. Inside a batch
 * (pigeon_spool_begin) the message is part of it, and a failure undoes only this
 * message. Errors: PIGEON_ERR_INVALID (a bad field, or a body that does not match its
 * size or SHA-256, or that read reported as PIGEON_ERR_INVALID), PIGEON_ERR_IO
 * (reading failed, or the store did), PIGEON_ERR_UNSUPPORTED (the backend cannot import),
 * and the spool's other errors; the diagnosis in pigeon_spool_error() for those from the
 * store, in diag (may be NULL) for the others.
 */
pigeon_err pg_spool_import(pigeon_spool *spool, const pg_spool_import_msg *msg, pigeon_read_fn read,
                           void *ctx, int64_t size, const unsigned char sha256[32], int *present,
                           char *diag, size_t diag_len);

/* ---- the backend side (spool_backend.h holds a pointer to this table) ---- */
typedef struct pg_spool_import_ops {
    /* Starts storing msg as msg_begin does (a transaction, or a part of the batch), with
     * the recipients' states as given (already mapped: no INFLIGHT). *present nonzero and
     * nothing started when the queue id exists. The body then goes through the ops'
     * msg_chunk, msg_end and msg_abort. */
    pigeon_err (*begin)(void *be, const pg_spool_import_msg *msg, int *present);
} pg_spool_import_ops;

#endif
