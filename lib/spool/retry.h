/*
 * retry.h - the retry policy: what to do after a failed delivery attempt (internal).
 *
 * The decision is made from the failure alone (STYLE.md: "Retry logic reads only that"):
 * the server's reply code and enhanced status code when there was a reply (RFC 5321
 * 4.2.1: 4yz is a transient, 5yz a permanent negative completion; RFC 3463 for the
 * enhanced codes), else our own classification (pigeon_err). Temporary failures are
 * retried with exponential backoff and full jitter until the message's lifetime runs out;
 * permanent ones are not. Some temporary failures also slow the whole account: a 421
 * (the server is closing the channel, RFC 5321 3.8, often "too many connections"), a rate
 * limit, or a Retry-After-like hint.
 *
 * Pure: time and randomness are inputs, so tests are deterministic and never sleep.
 */
#ifndef PG_RETRY_H
#define PG_RETRY_H

#include <stdint.h>

#include "pigeon/error.h"

/* The policy. Defaults (pg_retry_policy_default) follow Postfix's queue manager: first
 * retry within minutes (minimal_backoff_time 300s), cap about an hour
 * (maximal_backoff_time 4000s), give up after 5 days (maximal_queue_lifetime 5d). */
typedef struct pg_retry_policy {
    int64_t base_ms;          /* backoff ceiling after the first failure (default 5 min) */
    uint32_t factor;          /* the ceiling grows by this factor per attempt (default 2) */
    int64_t cap_ms;           /* the ceiling never exceeds this (default 1 hour) */
    int64_t lifetime_ms;      /* give up this long after the first attempt (default 5 days) */
    int64_t min_delay_ms;     /* no retry sooner than this after a failure (default 1 s), so
                                 that a jitter of 0 does not hammer the server */
    int64_t account_pause_ms; /* how long a throttle without a hint slows the account
                                 (default 5 min) */
    int64_t max_hint_ms;      /* hints longer than this are cut to it (default 1 day) */
} pg_retry_policy;

/*
 * The failure of one attempt (borrowed strings).
 *
 * err, read only when smtp_code is not a 4yz/5yz reply:
 *   temporary: NETWORK, TIMEOUT, TLS (as Postfix defers TLS failures: a certificate being
 *              renewed or a path problem must not lose mail; an operator can delete),
 *              PROTOCOL, DEFERRED, and local IO, NOMEM, STATE;
 *   permanent: everything else, e.g. AUTH, REJECTED, TOO_LARGE, CONFIG, UNSUPPORTED,
 *              CHARSET, ADDRESS, HEADER, INVALID, NOTFOUND, CORRUPT.
 * So the SMTP engine's classes map as NETWORK -> PIGEON_ERR_NETWORK (or _TIMEOUT),
 * TLS -> _TLS, AUTH -> _AUTH, REJECTED -> _REJECTED, DEFERRED -> _DEFERRED,
 * PROTOCOL -> _PROTOCOL, TOO_LARGE -> _TOO_LARGE, CONFIG -> _CONFIG, and DATA (the message
 * cannot be sent as it is) -> _UNSUPPORTED, not _IO (which is a local, temporary error).
 */
typedef struct pg_retry_failure {
    pigeon_err err;            /* our classification (PIGEON_ERR_NETWORK, _TIMEOUT, ...) */
    int smtp_code;             /* the server's reply code, 0 when there was no reply */
    const char *enhanced_code; /* the enhanced status code ("4.7.0"), or NULL */
    const char *text;          /* the reply text, or NULL (scanned for throttling hints) */
    int64_t retry_after_ms;    /* a server or provider hint: wait this long (0: none) */
} pg_retry_failure;

typedef enum pg_retry_action {
    PG_RETRY_AGAIN = 1,   /* try again at retry_at_ms */
    PG_RETRY_GIVE_UP = 2, /* final: record the recipient as failed */
} pg_retry_action;

typedef enum pg_retry_reason {
    PG_RETRY_TEMPORARY = 1, /* a transient failure (4xx, network, timeout, TLS...) */
    PG_RETRY_PERMANENT = 2, /* a permanent failure (5xx, auth, too large, bad data) */
    PG_RETRY_EXPIRED = 3,   /* transient, but the lifetime is over */
} pg_retry_reason;

typedef struct pg_retry_decision {
    pg_retry_action action;   /* retry or give up */
    pg_retry_reason reason;   /* why */
    int64_t retry_at_ms;      /* AGAIN: when (wall-clock ms); GIVE_UP: 0 */
    int throttle_account;     /* nonzero: slow the whole account until account_until_ms */
    int64_t account_until_ms; /* see throttle_account; 0 otherwise */
    const char *why;          /* a short static English explanation */
} pg_retry_decision;

/* Fills p with the defaults above. */
void pg_retry_policy_default(pg_retry_policy *p);

/*
 * Decides what to do after attempt number `attempt` (1 for the first) failed with f.
 * first_attempt_ms is when the message's life began (its enqueue time) and now_ms the
 * current time. random is a uniformly random 64-bit value (injected for tests): the delay
 * is drawn from [min_delay, max(min_delay, min(cap, base * factor^(attempt-1)))] ("full
 * jitter"), at least any hint, and never past the end of the lifetime, so that one last
 * attempt happens at the deadline. p may be NULL for the defaults.
 * Errors: PIGEON_ERR_INVALID for a bad policy, attempt < 1, or f describing a success.
 */
pigeon_err pg_retry_decide(const pg_retry_policy *p, const pg_retry_failure *f, int attempt,
                           int64_t first_attempt_ms, int64_t now_ms, uint64_t random,
                           pg_retry_decision *out);

/* The backoff ceiling for attempt (1-based): min(cap, base * factor^(attempt-1)). */
int64_t pg_retry_ceiling(const pg_retry_policy *p, int attempt);

#endif
