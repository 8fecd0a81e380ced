/*
 * retry.c - the retry policy: classify a failed attempt, schedule the next one.
 *
 * Classification (first match wins):
 * 1. A reply code 4yz is temporary and 5yz permanent (RFC 5321 4.2.1), with one
 *    exception: 552 with enhanced code 5.5.3 ("too many recipients") is temporary, as
 *    RFC 5321 4.5.3.1.10 asks of clients. The basic code wins over a contradicting
 *    enhanced class digit (RFC 3463 2: the class must match the basic code).
 * 2. Without a reply, our classification: network, timeout, TLS, protocol and local
 *    resource failures are temporary (the server or path may recover; mail is never
 *    dropped for them); authentication, rejection, size, bad data, configuration and
 *    missing features are permanent (retrying cannot help; an operator fixes and retries
 *    by hand).
 * Backoff: "full jitter" (delay uniform in [0, ceiling], ceiling = min(cap, base *
 * factor^(attempt-1))), which spreads retries of many messages that failed together
 * instead of synchronizing them; raised to min_delay_ms, to a hint, and cut at the end of
 * the lifetime.
 */
#include "spool/retry.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#define MINUTE_MS (60 * 1000LL)
#define HOUR_MS   (60 * MINUTE_MS)
#define DAY_MS    (24 * HOUR_MS)

static int valid_policy(const pg_retry_policy *p);
static int classify(const pg_retry_failure *f, const char **why);
static int err_is_temporary(pigeon_err err);
static int wants_throttle(const pg_retry_failure *f, const char **why);
static int mailbox_specific(const char *enhanced);
static int text_hints_rate_limit(const char *text);

void pg_retry_policy_default(pg_retry_policy *p)
{
    p->base_ms = 5 * MINUTE_MS;
    p->factor = 2;
    p->cap_ms = HOUR_MS;
    p->lifetime_ms = 5 * DAY_MS;
    p->min_delay_ms = 1000;
    p->account_pause_ms = 5 * MINUTE_MS;
    p->max_hint_ms = DAY_MS;
}

static int valid_policy(const pg_retry_policy *p)
{
    return p->base_ms > 0 && p->factor >= 1 && p->cap_ms >= p->base_ms && p->lifetime_ms > 0 &&
           p->min_delay_ms >= 0 && p->min_delay_ms <= p->cap_ms && p->account_pause_ms >= 0 &&
           p->max_hint_ms >= 0;
}

int64_t pg_retry_ceiling(const pg_retry_policy *p, int attempt)
{
    int64_t ceiling = p->base_ms;
    /* Multiply step by step, stopping at the cap, so that no attempt count overflows. */
    for (int i = 1; i < attempt && ceiling < p->cap_ms; i++) {
        if (ceiling > p->cap_ms / (int64_t)p->factor)
            return p->cap_ms;
        ceiling *= (int64_t)p->factor;
        if (p->factor == 1)
            break;
    }
    return ceiling < p->cap_ms ? ceiling : p->cap_ms;
}

static int err_is_temporary(pigeon_err err)
{
    switch (err) {
    case PIGEON_ERR_NETWORK:
    case PIGEON_ERR_TIMEOUT:
    case PIGEON_ERR_TLS:
    case PIGEON_ERR_PROTOCOL:
    case PIGEON_ERR_DEFERRED:
    case PIGEON_ERR_NOMEM:
    case PIGEON_ERR_IO:
    case PIGEON_ERR_STATE:
        return 1;
    default:
        return 0;
    }
}

/* Returns 1 for temporary, 0 for permanent, -1 for "not a failure". */
static int classify(const pg_retry_failure *f, const char **why)
{
    int code = f->smtp_code;
    const char *enh = f->enhanced_code;
    if (code >= 400 && code <= 499) {
        *why = "temporary failure (4yz reply)";
        return 1;
    }
    if (code == 552 && enh != NULL && strcmp(enh, "5.5.3") == 0) {
        *why = "too many recipients (552 5.5.3), retried as RFC 5321 4.5.3.1.10 asks";
        return 1;
    }
    if (code >= 500 && code <= 599) {
        *why = "permanent failure (5yz reply)";
        return 0;
    }
    if (f->err == PIGEON_OK)
        return -1;
    if (err_is_temporary(f->err)) {
        *why = f->err == PIGEON_ERR_TIMEOUT   ? "timed out"
               : f->err == PIGEON_ERR_NETWORK ? "connection failed"
               : f->err == PIGEON_ERR_TLS     ? "TLS failed"
                                              : "temporary failure";
        return 1;
    }
    *why = f->err == PIGEON_ERR_AUTH        ? "authentication failed"
           : f->err == PIGEON_ERR_TOO_LARGE ? "message too large"
           : f->err == PIGEON_ERR_CONFIG    ? "configuration error"
                                            : "permanent failure";
    return 0;
}

/* RFC 3463 3.2/3.3: X.1.x (addressing) and X.2.x (mailbox) are about one recipient;
 * X.3.4 (too big) and X.5.3 (too many recipients) about one message. Rate limits there
 * ("receiving mail too quickly", 450 4.2.1) slow that recipient, not the account. */
static int mailbox_specific(const char *enhanced)
{
    if (enhanced == NULL || strlen(enhanced) < 5 || enhanced[1] != '.')
        return 0;
    const char *subject = enhanced + 2;
    return subject[0] == '1' || subject[0] == '2' || strcmp(subject, "3.4") == 0 ||
           strcmp(subject, "5.3") == 0;
}

/* Providers say "slow down" in words rather than codes (Gmail 421 4.7.0 "Try again later",
 * Outlook 432 4.3.2 "sender thread limit exceeded", NetEase "frequency limited", QQ "too
 * many connections"). Case-insensitive substring match. */
static int text_hints_rate_limit(const char *text)
{
    static const char *const hints[] = {
        "too many", "rate limit", "ratelimit",      "rate-limit",    "throttl",         "too fast",
        "frequen",  "slow down",  "limit exceeded", "sending limit", "try again later",
    };
    if (text == NULL)
        return 0;
    size_t len = strnlen(text, 4096);
    for (size_t h = 0; h < sizeof hints / sizeof hints[0]; h++) {
        size_t hl = strlen(hints[h]);
        for (size_t i = 0; i + hl <= len; i++)
            if (strncasecmp(text + i, hints[h], hl) == 0)
                return 1;
    }
    return 0;
}

static int wants_throttle(const pg_retry_failure *f, const char **why)
{
    if (f->retry_after_ms > 0) {
        *why = "the server asked to wait (hint): slowing the account";
        return 1;
    }
    if (f->smtp_code == 421) {
        *why = "the server closed the channel (421): slowing the account";
        return 1;
    }
    if (f->smtp_code >= 400 && f->smtp_code <= 499 && !mailbox_specific(f->enhanced_code) &&
        text_hints_rate_limit(f->text)) {
        *why = "the server is rate-limiting us: slowing the account";
        return 1;
    }
    return 0;
}

pigeon_err pg_retry_decide(const pg_retry_policy *p, const pg_retry_failure *f, int attempt,
                           int64_t first_attempt_ms, int64_t now_ms, uint64_t random,
                           pg_retry_decision *out)
{
    pg_retry_policy defaults;
    if (p == NULL) {
        pg_retry_policy_default(&defaults);
        p = &defaults;
    }
    if (f == NULL || out == NULL || attempt < 1 || !valid_policy(p) || now_ms < 0 ||
        f->retry_after_ms < 0)
        return PIGEON_ERR_INVALID;
    memset(out, 0, sizeof *out);
    int temporary = classify(f, &out->why);
    if (temporary < 0)
        return PIGEON_ERR_INVALID;
    if (!temporary) {
        out->action = PG_RETRY_GIVE_UP;
        out->reason = PG_RETRY_PERMANENT;
        return PIGEON_OK;
    }
    int64_t expiry = first_attempt_ms + p->lifetime_ms;
    if (now_ms >= expiry) {
        out->action = PG_RETRY_GIVE_UP;
        out->reason = PG_RETRY_EXPIRED;
        out->why = "temporary failure, but the message's lifetime is over";
        return PIGEON_OK;
    }
    int64_t ceiling = pg_retry_ceiling(p, attempt);
    if (ceiling < p->min_delay_ms)
        ceiling = p->min_delay_ms;
    uint64_t span = (uint64_t)(ceiling - p->min_delay_ms) + 1;
    int64_t delay = p->min_delay_ms + (int64_t)(random % span);
    if (wants_throttle(f, &out->why)) {
        int64_t pause = f->retry_after_ms > 0 ? f->retry_after_ms : p->account_pause_ms;
        if (pause > p->max_hint_ms)
            pause = p->max_hint_ms;
        out->throttle_account = 1;
        out->account_until_ms = now_ms + pause;
        if (delay < pause)
            delay = pause;
    }
    out->action = PG_RETRY_AGAIN;
    out->reason = PG_RETRY_TEMPORARY;
    /* One last attempt at the deadline rather than none after it. */
    out->retry_at_ms = now_ms + delay < expiry ? now_ms + delay : expiry;
    return PIGEON_OK;
}
