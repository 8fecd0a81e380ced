/*
 * spool_limits.h - per-account sending limits kept in the spool, so that every daemon
 * sharing it (threads, processes, hosts) draws from the same allowance (internal; used
 * by `pigeon daemon`).
 *
 * Rate (rate_per_second): a token bucket per account, one row holding the tokens left
 * and when they were counted. A take refills it by rate per second elapsed (up to
 * burst), then hands out the tokens asked for even when that drives it below zero: the
 * i-th token handed out is valid from the moment the bucket would have refilled to it,
 * and the caller is told when the first one is (wait_ms) and spends the rest one every
 * 1/rate seconds after that. Tokens are never used before they are valid, so over any
 * window of T seconds the account starts at most burst + rate * T messages, whatever
 * the number of daemons. A daemon that dies holding tokens only wastes them (a few:
 * takes are small), it never lets more through.
 *
 * Daily limit (daily_limit): a counter per account per UTC day in the same row, raised
 * by the tokens handed out; a take never raises it above the limit (granted says how
 * many it could have), so the day's total never exceeds the limit. A daemon that stops
 * holding tokens it did not use gives them back to the day (pg_spool_limits_give_back);
 * one killed cannot, and the day may then end a few messages under the limit, never over.
 *
 * Throttle (a 421, a rate-limit reply, the daily limit reached): the account's row in
 * the spool's throttle table (pigeon_spool_throttle), which every claim already obeys;
 * a take reports it too (not_before_ms), so that a daemon in the middle of a batch stops
 * at its next take instead of at its next claim.
 *
 * Each take is one short write transaction on the spool (no flush needed: a lost update
 * after a power cut only forgets a few tokens' worth of pacing).
 */
#ifndef PG_SPOOL_LIMITS_H
#define PG_SPOOL_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/spool.h"

/* What one take asks for. */
typedef struct pg_spool_take_req {
    const char *account; /* the account */
    int64_t now_ms;      /* the caller's wall clock (the hosts' clocks must agree: NTP) */
    double rate;         /* tokens per second, 0 for no rate limit */
    double burst;        /* the bucket's size (at least 1 when rate > 0) */
    long daily_limit;    /* messages per UTC day, 0 for no daily limit */
    long want;           /* tokens wanted (at least 1) */
} pg_spool_take_req;

/* What one take gave. */
typedef struct pg_spool_take {
    long granted;          /* tokens handed out (0..want): fewer only for the daily limit */
    int64_t wait_ms;       /* when the first of them is valid, from now_ms (0: at once) */
    int64_t interval_ms;   /* spend the following ones this far apart (1000 / rate; 0) */
    long sent_today;       /* the day's count after this take */
    int64_t not_before_ms; /* the account is throttled until then (0: it is not) */
} pg_spool_take;

/* Takes tokens for req->account, in one transaction. PIGEON_ERR_INVALID for a bad
 * request, PIGEON_ERR_UNSUPPORTED when the backend keeps no limits (the caller counts in
 * memory), the spool's errors otherwise (diagnosis in pigeon_spool_error()). */
pigeon_err pg_spool_limits_take(pigeon_spool *spool, const pg_spool_take_req *req,
                                pg_spool_take *out);

/* Gives n tokens taken on the UTC day of now_ms but not used back to the account's daily
 * count (lowered by n, never below zero; nothing when the row counts another day). The
 * rate bucket is left as it is: a token given back there could let a burst through. */
pigeon_err pg_spool_limits_give_back(pigeon_spool *spool, const char *account, int64_t now_ms,
                                     long n);
/* Nonzero when the spool's backend keeps shared limits. */
int pg_spool_limits_shared(pigeon_spool *spool);

/* ---- the backend side (spool_backend.h holds a pointer to this table) ---- */
typedef struct pg_spool_limits_ops {
    /* The take as above, arguments checked. */
    pigeon_err (*take)(void *be, const pg_spool_take_req *req, pg_spool_take *out);
    /* The give-back as above, arguments checked: day is now_ms's UTC day, n >= 1. */
    pigeon_err (*give_back)(void *be, const char *account, int64_t day, long n);
} pg_spool_limits_ops;

/* The bucket arithmetic every backend shares, on the row's values: tokens and at_ms (the
 * bucket), day and sent (the day's counter) are read and updated in place. Pure. */
void pg_spool_limits_apply(const pg_spool_take_req *req, double *tokens, int64_t *at_ms,
                           int64_t *day, long *sent, pg_spool_take *out);

#endif
