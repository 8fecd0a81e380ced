/*
 * daemon_limits.c - an account's rate_per_second and daily_limit shared by every daemon
 * on the spool (lib/spool/spool_limits.h), instead of counted in each process's memory.
 *
 * A worker takes tokens from the account's bucket in the spool a few at a time (a
 * quarter of a second's worth, 1 to 64), keeps them in the account's pool in memory and
 * spends them one every 1/rate seconds from the time the spool said the first is valid.
 * Every worker of the daemon draws from the same pool (under the daemon's lock), so a
 * take costs one short write transaction per batch of tokens, not per message. Tokens
 * are never used before they are valid, so over any window of T seconds every daemon
 * together starts at most rate * T + 1 messages of the account (the bucket holds one
 * token: the same strict spacing as the in-memory limit); a pool left unused for more
 * than a second is dropped rather than spent late in a burst. The daily count is the
 * spool's: a take never hands out more than is left of the day. A take also reports the
 * account's throttle (a 421 seen by any daemon), so a batch in progress stops at once.
 *
 * Connection limits (max_connections) stay per daemon: a shared one would need a lease
 * per connection renewed while it is open; see docs/postgresql.md.
 */
#include <string.h>

#include "daemon.h"
#include "spool/spool_limits.h"

/* Seconds of tokens one take asks for, and the bounds on how many. */
#define TAKE_SECONDS 0.25
#define TAKE_MIN     1
#define TAKE_MAX     64
/* A pool whose next token was valid this long ago is dropped (ms). */
#define STALE_MS 1000

int daemon_limits_shared(daemon_state *d, const daemon_account *a)
{
    return (a->rate_per_second > 0 || a->daily_limit > 0) && pg_spool_limits_shared(d->spool);
}

/* How many tokens to take at once: never more than the messages in hand (hint), so that
 * a daemon holding a few messages leaves the rest of the day to the others. */
static long take_size(const daemon_account *a, long hint)
{
    long want = hint < 1 ? 1 : hint > TAKE_MAX ? TAKE_MAX : hint;
    if (a->rate_per_second > 0) {
        double w = a->rate_per_second * TAKE_SECONDS;
        long r = w < TAKE_MIN ? TAKE_MIN : w > TAKE_MAX ? TAKE_MAX : (long)w;
        if (r < want)
            want = r;
    }
    if (a->daily_limit > 0 && a->daily_limit < want)
        want = a->daily_limit;
    return want;
}

/* Refills the pool from the spool (d->lock held; takes the spool's lock inside). Returns
 * 0, -1 (the spool failed, or the account is throttled: give the batch back), -2 (the
 * daily limit is reached). */
static int refill(daemon_state *d, daemon_account *a, int64_t now, long hint)
{
    pg_spool_take_req req = {a->name,           now, a->rate_per_second, 1.0, a->daily_limit,
                             take_size(a, hint)};
    pg_spool_take t;
    pthread_mutex_lock(&d->spool_lock);
    pigeon_err e = pg_spool_limits_take(d->spool, &req, &t);
    pthread_mutex_unlock(&d->spool_lock);
    if (e != PIGEON_OK)
        return -1;
    a->pool = t.granted;
    a->pool_at_ms = now + t.wait_ms;
    a->pool_interval_ms = t.interval_ms;
    a->sent_today = t.sent_today;
    if (t.not_before_ms > now)
        return -1; /* keep the tokens: the account is paused, not the bucket */
    return t.granted > 0 ? 0 : -2;
}

int daemon_limits_take(daemon_state *d, daemon_account *a, int64_t now, int no_wait, long hint,
                       int64_t *slot_ms)
{
    if (a->pool > 0 && a->rate_per_second > 0 && now - a->pool_at_ms > STALE_MS)
        a->pool = 0;
    if (a->pool == 0) {
        int r = refill(d, a, now, hint);
        if (r != 0)
            return r == -2 && no_wait ? -1 : r;
    }
    int64_t slot = a->pool_at_ms > now ? a->pool_at_ms : now;
    if (no_wait && slot > now)
        return -1;
    a->pool--;
    a->pool_at_ms = slot + a->pool_interval_ms;
    *slot_ms = slot;
    return 0;
}

void daemon_limits_untake(daemon_account *a)
{
    a->pool++; /* its time has come already: the next take_limits may use it at once */
}

void daemon_limits_give_back(daemon_state *d)
{
    int64_t now = daemon_now_ms();
    for (daemon_account *a = d->accounts; a != NULL; a = a->next) {
        if (a->pool <= 0 || a->daily_limit <= 0 || !daemon_limits_shared(d, a))
            continue;
        /* Tokens of another day count nowhere: the spool ignores them (its row's day). */
        if (pg_spool_limits_give_back(d->spool, a->name, now, a->pool) == PIGEON_OK)
            a->pool = 0;
    }
}
