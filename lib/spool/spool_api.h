/*
 * spool_api.h - what the submission service keeps in the spool beside the queue
 * (internal; used by `pigeon serve` and `pigeon key`).
 *
 * API keys: a key is "pgk_<id>_<secret>"; the spool stores the id, the SHA-256 of the
 * secret (the secret itself is 256 random bits, so a fast hash is enough: there is
 * nothing to guess), the account it sends through, the From domains it may use, its
 * scopes and its rate. Message ownership: each message submitted over the API has a row
 * naming the key that submitted it (its tenant), the Idempotency-Key it came with and
 * the SHA-256 of the request, written in the same transaction as the message, so that a
 * message is never stored without its owner nor an idempotency key without its message.
 *
 * The tables are created on first use (CREATE TABLE IF NOT EXISTS): older pigeons that
 * never heard of them open the file unchanged. Errors as for the spool (pigeon/spool.h):
 * PIGEON_ERR_NOTFOUND for no such key or message, PIGEON_ERR_IO, PIGEON_ERR_TIMEOUT,
 * PIGEON_ERR_INVALID; the diagnosis in pigeon_spool_error().
 */
#ifndef PG_SPOOL_API_H
#define PG_SPOOL_API_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/spool.h"

#define PG_SPOOL_KEY_ID_LEN 16 /* hex characters of a key id */

/* An API key as stored (never the secret). */
typedef struct pg_spool_key {
    char id[PG_SPOOL_KEY_ID_LEN + 1]; /* its id (lower-case hex) */
    unsigned char hash[32];           /* SHA-256 of the secret */
    char account[128];                /* the account it sends through */
    char domains[512];                /* From domains it may use, comma-separated; "" any */
    char scopes[64];                  /* comma-separated: send, read, cancel */
    double rate;                      /* requests per second allowed, 0 for no limit */
    int64_t created_ms;               /* when it was made */
    int64_t revoked_ms;               /* when it was revoked, 0 if it is live */
} pg_spool_key;

/* Stores a new key (durable on return; not inside a batch). */
pigeon_err pg_spool_key_add(pigeon_spool *spool, const pg_spool_key *key);
/* The key with this id in *out, revoked or not. */
pigeon_err pg_spool_key_get(pigeon_spool *spool, const char *id, pg_spool_key *out);
/* Calls fn for every key, oldest first; fn returning nonzero stops. */
pigeon_err pg_spool_key_list(pigeon_spool *spool, int (*fn)(void *ctx, const pg_spool_key *key),
                             void *ctx);
/* Revokes a key: it authenticates nothing from now on. */
pigeon_err pg_spool_key_revoke(pigeon_spool *spool, const char *id, int64_t now_ms);

/* Records who submitted queue_id (key_id, "" when no keys are in use), with its
 * Idempotency-Key (NULL for none) and the request's SHA-256. Inside the batch that
 * enqueues the message, so both are durable together. */
pigeon_err pg_spool_owner_add(pigeon_spool *spool, const char *queue_id, const char *key_id,
                              const char *idem, const unsigned char req_sha256[32], int64_t now_ms);

/* Who submitted queue_id: key_id (NUL-terminated, at most size octets), when it was
 * cancelled (0 if not) and the not-before time it was submitted with (send_at, 0 for
 * none; either pointer may be NULL). PIGEON_ERR_NOTFOUND when it was not submitted over
 * the API. */
pigeon_err pg_spool_owner_get(pigeon_spool *spool, const char *queue_id, char *key_id, size_t size,
                              int64_t *cancelled_ms, int64_t *send_at_ms);

/* Marks queue_id as cancelled (the caller deletes it from the queue). */
pigeon_err pg_spool_owner_cancel(pigeon_spool *spool, const char *queue_id, int64_t now_ms);

/* What pg_spool_cancel did. */
typedef enum pg_spool_cancel_result {
    PG_SPOOL_CANCELLED = 0,   /* marked cancelled and taken out of the queue */
    PG_SPOOL_CANCEL_INFLIGHT, /* a recipient is being sent right now: nothing changed */
    PG_SPOOL_CANCEL_NOTHING,  /* every recipient is final already: nothing changed */
    PG_SPOOL_CANCEL_GONE,     /* not in the queue (delivered or cancelled before) */
} pg_spool_cancel_result;

/*
 * Cancels queue_id as one atomic step against the daemons: unless one of its recipients
 * is claimed (in flight), it is marked cancelled and deleted from the queue; a claim
 * cannot slip in between the check and the delete (SQLite: one IMMEDIATE transaction,
 * which claims also need; PostgreSQL: the message and recipient rows locked FOR UPDATE,
 * which the claim's SKIP LOCKED then passes by). Not inside a batch.
 */
pigeon_err pg_spool_cancel(pigeon_spool *spool, const char *queue_id, int64_t now_ms,
                           pg_spool_cancel_result *result);

/* Makes queue_id, enqueued just now in the caller's batch, not due before send_at_ms:
 * its queued recipients wait until then (the daemon claims nothing earlier), and the
 * owner row remembers the time for GET. The message keeps its real creation time. */
pigeon_err pg_spool_owner_schedule(pigeon_spool *spool, const char *queue_id, int64_t send_at_ms);

/* The message a key submitted with Idempotency-Key idem at or after since_ms: its queue id
 * and the request's SHA-256. PIGEON_ERR_NOTFOUND if none. */
pigeon_err pg_spool_idem_find(pigeon_spool *spool, const char *key_id, const char *idem,
                              int64_t since_ms, char queue_id[PIGEON_SPOOL_ID_LEN + 1],
                              unsigned char req_sha256[32]);

/* Forgets ownership rows older than before_ms whose message is no longer queued. */
pigeon_err pg_spool_owner_expire(pigeon_spool *spool, int64_t before_ms);

/* ---- the backend side (spool_backend.h holds a pointer to this table) ---- */
typedef struct pg_spool_api_ops {
    pigeon_err (*key_add)(void *be, const pg_spool_key *key);
    pigeon_err (*key_get)(void *be, const char *id, pg_spool_key *out);
    pigeon_err (*key_list)(void *be, int (*fn)(void *ctx, const pg_spool_key *key), void *ctx);
    pigeon_err (*key_revoke)(void *be, const char *id, int64_t now_ms);
    pigeon_err (*owner_add)(void *be, const char *queue_id, const char *key_id, const char *idem,
                            const unsigned char sha[32], int64_t now_ms);
    pigeon_err (*owner_get)(void *be, const char *queue_id, char *key_id, size_t size,
                            int64_t *cancelled_ms, int64_t *send_at_ms);
    pigeon_err (*owner_cancel)(void *be, const char *queue_id, int64_t now_ms);
    pigeon_err (*cancel)(void *be, const char *queue_id, int64_t now_ms,
                         pg_spool_cancel_result *result);
    pigeon_err (*owner_schedule)(void *be, const char *queue_id, int64_t send_at_ms);
    pigeon_err (*idem_find)(void *be, const char *key_id, const char *idem, int64_t since_ms,
                            char *queue_id, unsigned char sha[32]);
    pigeon_err (*owner_expire)(void *be, int64_t before_ms);
} pg_spool_api_ops;

#endif
