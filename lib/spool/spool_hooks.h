/*
 * spool_hooks.h - the webhook outbox kept in the spool beside the queue (internal; used by
 * the daemon's webhook sender, `pigeon webhook`, `pigeon key --webhook`, and by whoever
 * learns of an outcome outside the queue: bounces, complaints, suppressions).
 *
 * An event is one recipient's outcome: queued, delivered, deferred, bounced, complained,
 * suppressed or failed, with its message, recipient, account, the API key that submitted
 * the message (its tenant, "" when none), the server's code and text, the attempt count
 * and the time. Events get increasing ids; a receiver's "sink" reads them in id order
 * from its cursor, so a recipient's later event never overtakes an earlier one.
 *
 * Durability: once the outbox is enabled (pg_spool_hooks_enable, done by the daemon when
 * a webhook is configured), the queue's own outcomes are turned into events by SQLite
 * triggers on the recipient table, inside the transaction that stores the outcome. An
 * outcome and its event are therefore committed together or not at all, whichever path
 * stored it: a direct record, a batch, or the outcome journal applied at the next sync or
 * by the daemon that reclaims a dead one's leases (spool_sqlite_journal.c). A kill -9
 * loses neither. Events of outcomes learned elsewhere are added with pg_spool_hook_add.
 *
 * Delivery is at least once: a sink's cursor moves only after its receiver answered, so
 * a crash between the answer and the move sends those events again (same event ids).
 *
 * Errors as for the spool (pigeon/spool.h): PIGEON_ERR_INVALID for bad arguments,
 * PIGEON_ERR_UNSUPPORTED when the backend keeps no outbox, PIGEON_ERR_IO, PIGEON_ERR_TIMEOUT,
 * PIGEON_ERR_NOSPACE; the diagnosis in pigeon_spool_error(). Thread safety: as the handle.
 */
#ifndef PG_SPOOL_HOOKS_H
#define PG_SPOOL_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/spool.h"

/* What happened to a recipient. The values are stored: only ever append. */
typedef enum pg_hook_type {
    PG_HOOK_QUEUED = 0,     /* stored in the queue */
    PG_HOOK_DELIVERED = 1,  /* accepted by the receiving server */
    PG_HOOK_DEFERRED = 2,   /* failed for now; will be tried again */
    PG_HOOK_BOUNCED = 3,    /* a bounce (DSN) came back for it */
    PG_HOOK_COMPLAINED = 4, /* the recipient reported it as spam (ARF) */
    PG_HOOK_SUPPRESSED = 5, /* skipped: the address is on the suppression list */
    PG_HOOK_FAILED = 6,     /* failed for good (rejected, or expired) */
    PG_HOOK_NTYPES = 7
} pg_hook_type;

/* A mask with every type. */
#define PG_HOOK_ALL ((1u << PG_HOOK_NTYPES) - 1)

/* "queued", "delivered", ...; "?" when out of range. */
const char *pg_hook_type_name(int type);
/* The type for a name, or -1. */
int pg_hook_type_lookup(const char *name);
/* Parses "delivered,bounced" (commas, optional spaces; "all" or "*" for every type) into
 * *mask. Returns 0, or -1 naming the unknown word in bad (size cap). */
int pg_hook_types_parse(const char *list, unsigned *mask, char *bad, size_t cap);

/* An event. Strings are borrowed (on add) or owned by the outbox until the callback
 * returns (on fetch). */
typedef struct pg_spool_hook_event {
    int64_t id;             /* the outbox id (on fetch; ignored on add) */
    pg_hook_type type;      /* what happened */
    const char *queue_id;   /* the message's queue id, or NULL/"" when there is none */
    const char *rcpt;       /* the recipient address (required) */
    const char *account;    /* the sending account; NULL: the queued message's */
    const char *key_id;     /* the submitting API key; NULL: the queued message's, if any */
    const char *message_id; /* the Message-ID; NULL: the queued message's */
    int smtp_code;          /* the server's reply code (or the DSN's), 0 if none */
    const char *enhanced;   /* the enhanced status code ("5.1.1"), or NULL */
    const char *text;       /* the reply text or diagnostic, or NULL (cut at 1000 octets) */
    int attempts;           /* delivery attempts so far */
    int64_t at_ms;          /* when it happened (ms since the epoch) */
} pg_spool_hook_event;

/*
 * Adds one event to the outbox: inside the caller's batch when one is open (durable with
 * it), else in its own transaction (durable on return). The missing account, key and
 * Message-ID are taken from the queued message queue_id when it is still in the spool.
 * When the outbox is not enabled (no webhook configured for this spool) nothing is stored
 * and the result is PIGEON_OK: there is nobody to tell. PIGEON_ERR_INVALID for a NULL or
 * empty rcpt, a type out of range, or a string with a control character.
 */
pigeon_err pg_spool_hook_add(pigeon_spool *spool, const pg_spool_hook_event *ev);

/* Turns the outbox on (creating its tables and the triggers that record the queue's
 * outcomes; idempotent) or off (dropping the triggers; events kept). */
pigeon_err pg_spool_hooks_enable(pigeon_spool *spool, int on);
/* *on = 1 when the outbox is enabled. */
pigeon_err pg_spool_hooks_enabled(pigeon_spool *spool, int *on);

/* A receiver's view of the outbox: which events it gets. */
typedef struct pg_spool_hook_sink {
    const char *name;   /* its identity: "url:<URL>" or "key:<id>" (at most 512 octets) */
    const char *key_id; /* only this API key's events, or NULL for every event */
    unsigned types;     /* mask of (1u << pg_hook_type) it wants */
} pg_spool_hook_sink;

/* A sink's delivery state. */
typedef struct pg_spool_hook_state {
    int64_t cursor;       /* every event id up to this one is done for it */
    int64_t failures;     /* consecutive failed attempts */
    int64_t next_ms;      /* not before this time (backoff), 0 for now */
    int64_t delivered;    /* events delivered in all */
    int64_t given_up;     /* events given up on in all */
    int64_t pending;      /* events after the cursor it wants (pg_spool_hook_state_get) */
    char last_error[256]; /* the last failure, "" if none */
} pg_spool_hook_state;

/*
 * Calls fn for up to max events after the sink's cursor that it wants, in id order
 * (a new sink starts at the oldest event kept). *upto is where the cursor may move once
 * they are delivered: the last event passed, or when fewer than max were passed, the
 * newest event id in the outbox (the ones between were not for this sink). fn returning
 * nonzero stops (and *upto is the last event passed). One read transaction.
 */
pigeon_err pg_spool_hook_fetch(pigeon_spool *spool, const pg_spool_hook_sink *sink, size_t max,
                               int (*fn)(void *ctx, const pg_spool_hook_event *ev), void *ctx,
                               int64_t *upto);

/* Records the outcome of a delivery attempt to sink. ok: the cursor moves to upto, the
 * failures are cleared and delivered grows by count. Not ok: failures grows, next_ms and
 * error are kept; with give_up also the cursor moves to upto and given_up grows by count
 * (the events are abandoned for this sink). Durable on return. */
pigeon_err pg_spool_hook_done(pigeon_spool *spool, const char *sink, int ok, int give_up,
                              int64_t upto, size_t count, int64_t next_ms, const char *error);

/* The sink's state; pending counts the events it wants after its cursor. */
pigeon_err pg_spool_hook_state_get(pigeon_spool *spool, const pg_spool_hook_sink *sink,
                                   pg_spool_hook_state *out);

/* Deletes the events every one of the n sinks is done with (id up to the least cursor);
 * *count the number deleted. n 0 deletes nothing. */
pigeon_err pg_spool_hook_trim(pigeon_spool *spool, const char *const *sinks, size_t n,
                              size_t *count);

/* Events in the outbox: *total, and *oldest_ms the time of the oldest (0 if none). */
pigeon_err pg_spool_hook_count(pigeon_spool *spool, int64_t *total, int64_t *oldest_ms);

/* A webhook of an API key: its events go to url, signed with secret. */
typedef struct pg_spool_hook_key {
    char key_id[17];  /* the API key's id */
    char url[1024];   /* where its events go */
    char secret[256]; /* the signing secret (printable ASCII) */
    unsigned types;   /* the event types it wants */
} pg_spool_hook_key;

/* Sets (url non-empty) or removes (url NULL or "") the webhook of an API key. */
pigeon_err pg_spool_hook_key_set(pigeon_spool *spool, const pg_spool_hook_key *hook);
/* Calls fn for every key's webhook; fn returning nonzero stops. */
pigeon_err pg_spool_hook_key_list(pigeon_spool *spool,
                                  int (*fn)(void *ctx, const pg_spool_hook_key *hook), void *ctx);

/* ---- the backend side (spool_backend.h holds a pointer to this table) ---- */
typedef struct pg_spool_hooks_ops {
    pigeon_err (*add)(void *be, const pg_spool_hook_event *ev);
    pigeon_err (*enable)(void *be, int on);
    pigeon_err (*enabled)(void *be, int *on);
    pigeon_err (*fetch)(void *be, const pg_spool_hook_sink *sink, size_t max,
                        int (*fn)(void *ctx, const pg_spool_hook_event *ev), void *ctx,
                        int64_t *upto);
    pigeon_err (*done)(void *be, const char *sink, int ok, int give_up, int64_t upto, size_t count,
                       int64_t next_ms, const char *error);
    pigeon_err (*state_get)(void *be, const pg_spool_hook_sink *sink, pg_spool_hook_state *out);
    pigeon_err (*trim)(void *be, const char *const *sinks, size_t n, size_t *count);
    pigeon_err (*count)(void *be, int64_t *total, int64_t *oldest_ms);
    pigeon_err (*key_set)(void *be, const pg_spool_hook_key *hook);
    pigeon_err (*key_list)(void *be, int (*fn)(void *ctx, const pg_spool_hook_key *hook),
                           void *ctx);
} pg_spool_hooks_ops;

#endif
