/*
 * spool_limits.c - shared sending limits, the generic side: argument checks, the token
 * bucket arithmetic every backend applies to its row, then the backend's table (see
 * spool_limits.h).
 */
#include "spool/spool_limits.h"

#include <math.h>
#include <string.h>

#include "spool/spool_backend.h"

/* Milliseconds in a UTC day. */
#define DAY_MS ((int64_t)86400000)
/* The most tokens one take may ask for: bounds a caller that takes in a loop. */
#define MAX_WANT 4096

/* The smallest whole number of milliseconds not below x (x >= 0; no libm needed). */
static int64_t ceil_ms(double x)
{
    int64_t n = (int64_t)x;
    return (double)n < x ? n + 1 : n;
}

static const pg_spool_limits_ops *limits_of(pigeon_spool *spool, void **be)
{
    const pg_spool_ops *ops = NULL;
    *be = pg_spool_backend(spool, &ops);
    return ops->limits;
}

int pg_spool_limits_shared(pigeon_spool *spool)
{
    void *be = NULL;
    return spool != NULL && limits_of(spool, &be) != NULL;
}

void pg_spool_limits_apply(const pg_spool_take_req *req, double *tokens, int64_t *at_ms,
                           int64_t *day, long *sent, pg_spool_take *out)
{
    int64_t today = req->now_ms / DAY_MS;
    long want = req->want;
    memset(out, 0, sizeof *out);
    if (*day != today) {
        *day = today;
        *sent = 0;
    }
    if (req->daily_limit > 0) {
        long left = req->daily_limit > *sent ? req->daily_limit - *sent : 0;
        if (want > left)
            want = left;
    }
    out->granted = want;
    *sent += want;
    out->sent_today = *sent;
    if (req->rate <= 0) {
        *tokens = 0;
        *at_ms = req->now_ms;
        return;
    }
    /* Refill for the time elapsed (a clock that went back refills nothing). */
    if (req->now_ms > *at_ms)
        *tokens += (double)(req->now_ms - *at_ms) * req->rate / 1000.0;
    if (*tokens > req->burst)
        *tokens = req->burst;
    *at_ms = req->now_ms;
    out->interval_ms = ceil_ms(1000.0 / req->rate);
    if (want == 0)
        return;
    /* The first token handed out is valid once the bucket holds one. */
    if (*tokens < 1.0)
        out->wait_ms = ceil_ms((1.0 - *tokens) * 1000.0 / req->rate);
    *tokens -= (double)want;
}

pigeon_err pg_spool_limits_give_back(pigeon_spool *spool, const char *account, int64_t now_ms,
                                     long n)
{
    void *be = NULL;
    if (spool == NULL || account == NULL || account[0] == '\0' || now_ms < 0 || n < 0 ||
        n > MAX_WANT)
        return PIGEON_ERR_INVALID;
    const pg_spool_limits_ops *limits = limits_of(spool, &be);
    if (limits == NULL)
        return PIGEON_ERR_UNSUPPORTED;
    return n == 0 ? PIGEON_OK : limits->give_back(be, account, now_ms / DAY_MS, n);
}

pigeon_err pg_spool_limits_take(pigeon_spool *spool, const pg_spool_take_req *req,
                                pg_spool_take *out)
{
    void *be = NULL;
    if (spool == NULL || req == NULL || out == NULL || req->account == NULL ||
        req->account[0] == '\0' || req->now_ms < 0 || !(req->rate >= 0) || req->want < 1 ||
        req->want > MAX_WANT || req->daily_limit < 0 || (req->rate > 0 && !(req->burst >= 1)) ||
        !isfinite(req->rate) || !isfinite(req->burst))
        return PIGEON_ERR_INVALID;
    memset(out, 0, sizeof *out);
    const pg_spool_limits_ops *limits = limits_of(spool, &be);
    if (limits == NULL)
        return PIGEON_ERR_UNSUPPORTED;
    return limits->take(be, req, out);
}
