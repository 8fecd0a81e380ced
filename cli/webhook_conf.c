/*
 * webhook_conf.c - the webhook settings of pigeon.conf (see webhook.h and pigeon.conf(5)):
 *
 *   webhook = https://a.example/hook      # top level, repeatable: every event
 *   webhook_secret_file = /etc/pigeon/hook.secret
 *   webhook_events = delivered,bounced,complained
 *
 *   [webhook shop]
 *   url = https://shop.example/pigeon
 *   secret_command = pass show pigeon/shop-hook
 *   events = all
 *
 * Secrets come from the file (secret = ..., which makes the file private as for
 * passwords), a file (secret_file) or a command (secret_command): never the command line.
 * The API keys' webhooks live in the spool (hook_keys, see spool/spool_hooks.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"
#include "config.h"
#include "secret.h"
#include "webhook.h"

/* A sink being read, with where its secret comes from. */
typedef struct pending {
    char url[1024];      /* its URL */
    char secret[3][512]; /* secret, secret_file, secret_command ("" for unset) */
    char events[256];    /* its events list, or "" for the top-level default */
    char origin[300];    /* FILE:LINE of its url (or section) */
} pending;

/* State of one pass over the file. */
typedef struct read_ctx {
    webhook_conf *wc;  /* being filled */
    pending *list;     /* sinks read */
    size_t n, cap;     /* how many, room */
    pending top;       /* the top-level secret and events */
    char section[128]; /* the current [webhook NAME] section, or "" */
    const char *path;  /* the file */
} read_ctx;

enum { SRC_SECRET, SRC_FILE, SRC_COMMAND };

static int push(read_ctx *rc, const char *origin)
{
    if (rc->n == rc->cap) {
        size_t cap = rc->cap ? rc->cap * 2 : 4;
        pending *grown = realloc(rc->list, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        rc->list = grown;
        rc->cap = cap;
    }
    memset(&rc->list[rc->n], 0, sizeof rc->list[0]);
    snprintf(rc->list[rc->n].origin, sizeof rc->list[0].origin, "%s", origin);
    rc->n++;
    return 0;
}

/* "30", "30s", "10m", "72h", "3d" into milliseconds; -1 if malformed. */
static int64_t duration_ms(const char *v)
{
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (end == v || n < 0 || n > 100000000)
        return -1;
    int64_t unit = 1000;
    if (*end == 'm')
        unit = 60000;
    else if (*end == 'h')
        unit = 3600000;
    else if (*end == 'd')
        unit = 86400000;
    else if (*end != 's' && *end != '\0')
        return -1;
    if (*end != '\0' && end[1] != '\0')
        return -1;
    return (int64_t)n * unit;
}

static int bad(char *err, size_t errlen, const char *origin, const char *key, const char *why)
{
    snprintf(err, errlen, "%s: invalid %s: %s", origin, key, why);
    return -1;
}

/* The global knobs (top level only). 1 if key was one of them, -1 on a bad value. */
static int global_key(read_ctx *rc, const char *key, const char *v, const char *origin, char *err,
                      size_t errlen)
{
    webhook_conf *wc = rc->wc;
    int64_t ms;
    if (strcmp(key, "webhook_batch") == 0) {
        long n = strtol(v, NULL, 10);
        if (n < 1 || n > 10000)
            return bad(err, errlen, origin, key, "expected 1-10000 events");
        wc->batch = (int)n;
    } else if (strcmp(key, "webhook_timeout") == 0) {
        if ((ms = duration_ms(v)) <= 0 || ms > 600000)
            return bad(err, errlen, origin, key, "expected a duration up to 10m (\"10s\")");
        wc->timeout_ms = (int)ms;
    } else if (strcmp(key, "webhook_max_age") == 0) {
        if ((ms = duration_ms(v)) <= 0)
            return bad(err, errlen, origin, key, "expected a duration (\"72h\")");
        wc->max_age_ms = ms;
    } else if (strcmp(key, "webhook_retry_max") == 0) {
        if ((ms = duration_ms(v)) <= 0)
            return bad(err, errlen, origin, key, "expected a duration (\"5m\")");
        wc->retry_max_ms = ms;
    } else if (strcmp(key, "webhook_ca_file") == 0) {
        snprintf(wc->ca_file, sizeof wc->ca_file, "%s", v);
    } else
        return 0;
    return 1;
}

/* A key of a sink (in its section, or webhook_* at the top level for top). */
static int sink_key(pending *p, const char *key, const char *v, const char *origin, char *err,
                    size_t errlen)
{
    static const char *const names[3] = {"secret", "secret_file", "secret_command"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(key, names[i]) == 0) {
            if (strlen(v) >= sizeof p->secret[i])
                return bad(err, errlen, origin, key, "too long");
            snprintf(p->secret[i], sizeof p->secret[i], "%s", v);
            return 0;
        }
    }
    if (strcmp(key, "events") == 0) {
        unsigned mask = 0;
        char word[80];
        if (pg_hook_types_parse(v, &mask, word, sizeof word) != 0) {
            char why[200];
            snprintf(why, sizeof why,
                     "unknown event \"%s\" (queued, delivered, deferred, bounced, complained, "
                     "suppressed, failed, all)",
                     word);
            return bad(err, errlen, origin, key, why);
        }
        snprintf(p->events, sizeof p->events, "%s", v);
        return 0;
    }
    if (strcmp(key, "url") == 0) {
        pg_http_url u;
        char why[200];
        if (pg_http_url_parse(v, &u, why, sizeof why) != 0)
            return bad(err, errlen, origin, key, why);
        snprintf(p->url, sizeof p->url, "%s", v);
        return 0;
    }
    snprintf(err, errlen, "%s: unknown key \"%s\" in a [webhook] section", origin, key);
    return -1;
}

static int on_line(void *ctx, const char *section, const char *key, const char *value, int lineno,
                   char *err, size_t errlen)
{
    read_ctx *rc = ctx;
    char origin[300];
    snprintf(origin, sizeof origin, "%s:%d", rc->path, lineno);
    if (strncmp(section, "webhook ", 8) == 0) {
        if (key == NULL) {
            snprintf(rc->section, sizeof rc->section, "%s", section);
            return push(rc, origin) == 0 ? 0 : (snprintf(err, errlen, "out of memory"), -1);
        }
        return sink_key(&rc->list[rc->n - 1], key, value, origin, err, errlen);
    }
    if (section[0] != '\0' || key == NULL || strncmp(key, "webhook", 7) != 0)
        return 0; /* an account's, read by cfg_load */
    int g = global_key(rc, key, value, origin, err, errlen);
    if (g != 0)
        return g < 0 ? -1 : 0;
    if (strcmp(key, "webhook") == 0) {
        if (push(rc, origin) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return sink_key(&rc->list[rc->n - 1], "url", value, origin, err, errlen);
    }
    if (strncmp(key, "webhook_", 8) == 0)
        return sink_key(&rc->top, key + 8, value, origin, err, errlen);
    snprintf(err, errlen, "%s: unknown key \"%s\"", origin, key);
    return -1;
}

/* Reads the sink's secret from the first source it (else the top level) names. */
static char *load_secret(const pending *p, const pending *top, char *err, size_t errlen)
{
    const pending *from = p->secret[0][0] || p->secret[1][0] || p->secret[2][0] ? p : top;
    if (from->secret[SRC_SECRET][0] != '\0')
        return strdup(from->secret[SRC_SECRET]);
    if (from->secret[SRC_FILE][0] != '\0')
        return secret_from_file(from->secret[SRC_FILE], 1, err, errlen);
    if (from->secret[SRC_COMMAND][0] != '\0')
        return secret_from_command(from->secret[SRC_COMMAND], 0, NULL, err, errlen);
    snprintf(err, errlen, "no secret: set secret_file (or secret_command, or secret)");
    return NULL;
}

static int resolve(read_ctx *rc)
{
    webhook_conf *wc = rc->wc;
    char err[600];
    wc->sinks = calloc(rc->n > 0 ? rc->n : 1, sizeof *wc->sinks);
    if (wc->sinks == NULL)
        return EX_OSERR;
    for (size_t i = 0; i < rc->n; i++) {
        const pending *p = &rc->list[i];
        webhook_sink *s = &wc->sinks[wc->nsinks];
        char why[200];
        if (p->url[0] == '\0') {
            cli_error("%s: [webhook] section without url", p->origin);
            return EX_CONFIG;
        }
        pg_http_url_parse(p->url, &s->target, why, sizeof why);
        snprintf(s->url, sizeof s->url, "%s", p->url);
        snprintf(s->name, sizeof s->name, "url:%s", p->url);
        snprintf(s->origin, sizeof s->origin, "%s", p->origin);
        const char *events = p->events[0] ? p->events : rc->top.events;
        s->types = PG_HOOK_ALL;
        if (events[0] != '\0')
            pg_hook_types_parse(events, &s->types, why, sizeof why);
        wc->nsinks++;
        if ((s->secret = load_secret(p, &rc->top, err, sizeof err)) == NULL) {
            cli_error("%s: webhook %s: %s", p->origin, p->url, err);
            return EX_CONFIG;
        }
    }
    return 0;
}

int webhook_conf_load(webhook_conf *wc)
{
    char err[700];
    memset(wc, 0, sizeof *wc);
    wc->batch = 100;
    wc->timeout_ms = 10000;
    wc->max_age_ms = 72LL * 3600000;
    wc->retry_max_ms = 300000;
    int found = cfg_find_file(wc->path, sizeof wc->path);
    if (found < 0) {
        cli_error("PIGEON_CONFIG names %s, which does not exist", wc->path);
        return EX_CONFIG;
    }
    if (found == 0) {
        wc->path[0] = '\0';
        return 0;
    }
    read_ctx rc = {.wc = wc, .path = wc->path};
    int status = 0;
    if (cfg_read_file(wc->path, on_line, &rc, err, sizeof err) != 0) {
        cli_error("%s", err);
        status = EX_CONFIG;
    }
    if (status == 0)
        status = resolve(&rc);
    for (size_t i = 0; i < rc.n; i++)
        memset(rc.list[i].secret, 0, sizeof rc.list[i].secret);
    memset(rc.top.secret, 0, sizeof rc.top.secret);
    free(rc.list);
    if (status != 0)
        webhook_conf_cleanup(wc);
    return status;
}

void webhook_sinks_free(webhook_sink *sinks, size_t n)
{
    for (size_t i = 0; sinks != NULL && i < n; i++) {
        secret_free(sinks[i].secret);
        pg_http_client_free(sinks[i].http);
    }
    free(sinks);
}

void webhook_conf_cleanup(webhook_conf *wc)
{
    webhook_sinks_free(wc->sinks, wc->nsinks);
    wc->sinks = NULL;
    wc->nsinks = 0;
}

int webhook_types(const char *list, const char *origin, unsigned *mask)
{
    char word[80];
    if (pg_hook_types_parse(list, mask, word, sizeof word) == 0)
        return 0;
    cli_error("%s: unknown event \"%s\" (queued, delivered, deferred, bounced, complained, "
              "suppressed, failed, all)",
              origin, word);
    return -1;
}

/* Appends one key's webhook to the growing array. */
typedef struct key_ctx {
    webhook_sink **sinks; /* the array */
    size_t *n;            /* its length */
    int nomem;            /* an allocation failed */
} key_ctx;

static int add_key(void *ctx, const pg_spool_hook_key *k)
{
    key_ctx *kc = ctx;
    char why[200];
    pg_http_url u;
    if (pg_http_url_parse(k->url, &u, why, sizeof why) != 0)
        return 0; /* checked when stored; a bad row is skipped */
    webhook_sink *grown = realloc(*kc->sinks, (*kc->n + 1) * sizeof *grown);
    if (grown == NULL) {
        kc->nomem = 1;
        return 1;
    }
    *kc->sinks = grown;
    webhook_sink *s = &grown[*kc->n];
    memset(s, 0, sizeof *s);
    s->target = u;
    snprintf(s->url, sizeof s->url, "%s", k->url);
    snprintf(s->name, sizeof s->name, "key:%s", k->key_id);
    snprintf(s->key_id, sizeof s->key_id, "%s", k->key_id);
    snprintf(s->origin, sizeof s->origin, "key %s", k->key_id);
    s->types = k->types;
    if ((s->secret = strdup(k->secret)) == NULL) {
        kc->nomem = 1;
        return 1;
    }
    (*kc->n)++;
    return 0;
}

int webhook_key_sinks(pigeon_spool *spool, webhook_sink **sinks, size_t *n)
{
    key_ctx kc = {sinks, n, 0};
    pigeon_err e = pg_spool_hook_key_list(spool, add_key, &kc);
    return e == PIGEON_OK && !kc.nomem ? 0 : -1;
}
