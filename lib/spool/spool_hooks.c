/*
 * spool_hooks.c - the webhook outbox, the generic side: argument checks, event type
 * names, then the backend's table (see spool_hooks.h).
 */
#include "spool/spool_hooks.h"

#include <stdio.h>
#include <string.h>

#include "spool/spool_backend.h"

static const char *const type_names[PG_HOOK_NTYPES] = {
    [PG_HOOK_QUEUED] = "queued",         [PG_HOOK_DELIVERED] = "delivered",
    [PG_HOOK_DEFERRED] = "deferred",     [PG_HOOK_BOUNCED] = "bounced",
    [PG_HOOK_COMPLAINED] = "complained", [PG_HOOK_SUPPRESSED] = "suppressed",
    [PG_HOOK_FAILED] = "failed",
};

const char *pg_hook_type_name(int type)
{
    return type >= 0 && type < PG_HOOK_NTYPES ? type_names[type] : "?";
}

int pg_hook_type_lookup(const char *name)
{
    for (int i = 0; name != NULL && i < PG_HOOK_NTYPES; i++)
        if (strcmp(name, type_names[i]) == 0)
            return i;
    return -1;
}

int pg_hook_types_parse(const char *list, unsigned *mask, char *bad, size_t cap)
{
    char word[32];
    *mask = 0;
    const char *p = list != NULL ? list : "";
    while (*p != '\0') {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        size_t n = strcspn(p, ", \t");
        if (n == 0)
            break;
        snprintf(word, sizeof word, "%.*s", (int)(n < sizeof word - 1 ? n : sizeof word - 1), p);
        int t = pg_hook_type_lookup(word);
        if (strcmp(word, "all") == 0 || strcmp(word, "*") == 0)
            *mask |= PG_HOOK_ALL;
        else if (t < 0 || n >= sizeof word) {
            snprintf(bad, cap, "%.*s", (int)(n > 64 ? 64 : n), p);
            return -1;
        } else
            *mask |= 1u << t;
        p += n;
    }
    if (*mask == 0) {
        snprintf(bad, cap, "(empty)");
        return -1;
    }
    return 0;
}

/* The backend's hooks table, or NULL (with a diagnosis) when it keeps no outbox. */
static const pg_spool_hooks_ops *hooks_of(pigeon_spool *spool, void **be)
{
    const pg_spool_ops *ops = NULL;
    if (spool == NULL)
        return NULL;
    *be = pg_spool_backend(spool, &ops);
    return ops->hooks;
}

/* No control characters (they would reach logs and JSON receivers unescaped elsewhere). */
static int clean(const char *s, size_t max)
{
    if (s == NULL)
        return 1;
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

pigeon_err pg_spool_hook_add(pigeon_spool *spool, const pg_spool_hook_event *ev)
{
    void *be = NULL;
    if (spool == NULL || ev == NULL || ev->rcpt == NULL || ev->rcpt[0] == '\0' ||
        (int)ev->type < 0 || ev->type >= PG_HOOK_NTYPES || !clean(ev->rcpt, 1000) ||
        !clean(ev->queue_id, PIGEON_SPOOL_ID_LEN) || !clean(ev->account, 256) ||
        !clean(ev->key_id, 64) || !clean(ev->message_id, 1000) || !clean(ev->enhanced, 32))
        return PIGEON_ERR_INVALID;
    const pg_spool_hooks_ops *h = hooks_of(spool, &be);
    if (h == NULL)
        return PIGEON_ERR_UNSUPPORTED;
    return h->add(be, ev);
}

pigeon_err pg_spool_hooks_enable(pigeon_spool *spool, int on)
{
    void *be = NULL;
    const pg_spool_hooks_ops *h = hooks_of(spool, &be);
    return h == NULL ? PIGEON_ERR_UNSUPPORTED : h->enable(be, on);
}

pigeon_err pg_spool_hooks_enabled(pigeon_spool *spool, int *on)
{
    void *be = NULL;
    const pg_spool_hooks_ops *h = hooks_of(spool, &be);
    if (on == NULL)
        return PIGEON_ERR_INVALID;
    *on = 0;
    return h == NULL ? PIGEON_ERR_UNSUPPORTED : h->enabled(be, on);
}

static int sink_ok(const pg_spool_hook_sink *sink)
{
    return sink != NULL && sink->name != NULL && sink->name[0] != '\0' &&
           strlen(sink->name) <= 512 && clean(sink->key_id, 64);
}

pigeon_err pg_spool_hook_fetch(pigeon_spool *spool, const pg_spool_hook_sink *sink, size_t max,
                               int (*fn)(void *ctx, const pg_spool_hook_event *ev), void *ctx,
                               int64_t *upto)
{
    void *be = NULL;
    if (!sink_ok(sink) || max == 0 || fn == NULL || upto == NULL)
        return PIGEON_ERR_INVALID;
    const pg_spool_hooks_ops *h = hooks_of(spool, &be);
    return h == NULL ? PIGEON_ERR_UNSUPPORTED : h->fetch(be, sink, max, fn, ctx, upto);
}

pigeon_err pg_spool_hook_done(pigeon_spool *spool, const char *sink, int ok, int give_up,
                              int64_t upto, size_t count, int64_t next_ms, const char *error)
{
    void *be = NULL;
    if (sink == NULL || sink[0] == '\0')
        return PIGEON_ERR_INVALID;
    const pg_spool_hooks_ops *h = hooks_of(spool, &be);
    return h == NULL ? PIGEON_ERR_UNSUPPORTED
                     : h->done(be, sink, ok, give_up, upto, count, next_ms, error);
}

pigeon_err pg_spool_hook_state_get(pigeon_spool *spool, const pg_spool_hook_sink *sink,
                                   pg_spool_hook_state *out)
{
    void *be = NULL;
    if (!sink_ok(sink) || out == NULL)
        return PIGEON_ERR_INVALID;
    memset(out, 0, sizeof *out);
    const pg_spool_hooks_ops *h = hooks_of(spool, &be);
    return h == NULL ? PIGEON_ERR_UNSUPPORTED : h->state_get(be, sink, out);
}

pigeon_err pg_spool_hook_trim(pigeon_spool *spool, const char *const *sinks, size_t n,
                              size_t *count)
{
    void *be = NULL;
    if (count == NULL || (n > 0 && sinks == NULL))
        return PIGEON_ERR_INVALID;
    *count = 0;
    if (n == 0)
        return PIGEON_OK;
    const pg_spool_hooks_ops *h = hooks_of(spool, &be);
    return h == NULL ? PIGEON_ERR_UNSUPPORTED : h->trim(be, sinks, n, count);
}

pigeon_err pg_spool_hook_count(pigeon_spool *spool, int64_t *total, int64_t *oldest_ms)
{
    void *be = NULL;
    if (total == NULL || oldest_ms == NULL)
        return PIGEON_ERR_INVALID;
    *total = *oldest_ms = 0;
    const pg_spool_hooks_ops *h = hooks_of(spool, &be);
    return h == NULL ? PIGEON_ERR_UNSUPPORTED : h->count(be, total, oldest_ms);
}

pigeon_err pg_spool_hook_key_set(pigeon_spool *spool, const pg_spool_hook_key *hook)
{
    void *be = NULL;
    if (hook == NULL || hook->key_id[0] == '\0' || !clean(hook->key_id, 16) ||
        !clean(hook->url, sizeof hook->url - 1) || !clean(hook->secret, sizeof hook->secret - 1))
        return PIGEON_ERR_INVALID;
    const pg_spool_hooks_ops *h = hooks_of(spool, &be);
    return h == NULL ? PIGEON_ERR_UNSUPPORTED : h->key_set(be, hook);
}

pigeon_err pg_spool_hook_key_list(pigeon_spool *spool,
                                  int (*fn)(void *ctx, const pg_spool_hook_key *hook), void *ctx)
{
    void *be = NULL;
    if (fn == NULL)
        return PIGEON_ERR_INVALID;
    const pg_spool_hooks_ops *h = hooks_of(spool, &be);
    return h == NULL ? PIGEON_ERR_UNSUPPORTED : h->key_list(be, fn, ctx);
}
