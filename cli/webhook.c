/*
 * webhook.c - `pigeon webhook test|list`, and the webhook options of `pigeon key create`.
 *
 * test POSTs one sample event, signed as the daemon signs, and prints the receiver's
 * answer: a receiver's author checks their verification before real events flow. list
 * shows each webhook with the events waiting for it, delivered and given up, its
 * failures and last error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "cli.h"
#include "json.h"
#include "queue.h"
#include "secret.h"
#include "util/random.h"
#include "webhook.h"

enum { OPT_SECRET_FILE = 0x500, OPT_SPOOL, OPT_JSON, OPT_TIMEOUT };

static const struct option longopts[] = {
    {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
    {"spool", required_argument, NULL, OPT_SPOOL},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The options of test and list. */
typedef struct wh_opts {
    const char *secret_file; /* --secret-file */
    const char *spool;       /* --spool */
    int json;                /* --json */
} wh_opts;

static int parse(int argc, char **argv, wh_opts *o)
{
    int opt;
    char quoted[256];
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_SECRET_FILE:
            o->secret_file = optarg;
            break;
        case OPT_SPOOL:
            o->spool = optarg;
            break;
        case OPT_JSON:
            o->json = 1;
            break;
        case 'h':
            cli_webhook_usage(stdout);
            return -1;
        default:
            cli_error("webhook: unknown option or missing value %s",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        }
    }
    return 0;
}

/* The secret for url: --secret-file, else the configured webhook's. */
static char *test_secret(const wh_opts *o, const char *url, const webhook_conf *wc)
{
    char err[600];
    if (o->secret_file != NULL) {
        char *s = secret_from_file(o->secret_file, 1, err, sizeof err);
        if (s == NULL)
            cli_error("webhook test: %s", err);
        return s;
    }
    for (size_t i = 0; i < wc->nsinks; i++)
        if (strcmp(wc->sinks[i].url, url) == 0)
            return strdup(wc->sinks[i].secret);
    cli_error("webhook test: no secret for %s: give --secret-file FILE, or configure the "
              "webhook in pigeon.conf",
              url);
    return NULL;
}

static int webhook_test(int argc, char **argv)
{
    wh_opts o = {0};
    webhook_conf wc;
    webhook_sink sink;
    char why[300];
    int status = parse(argc, argv, &o);
    if (status != 0)
        return status < 0 ? 0 : status;
    if (optind + 1 != argc) {
        cli_error("webhook test: give one URL");
        return EX_USAGE;
    }
    memset(&sink, 0, sizeof sink);
    if (pg_http_url_parse(argv[optind], &sink.target, why, sizeof why) != 0) {
        cli_error("webhook test: %s: %s", argv[optind], why);
        return EX_USAGE;
    }
    if ((status = webhook_conf_load(&wc)) != 0)
        return status;
    snprintf(sink.url, sizeof sink.url, "%s", argv[optind]);
    if ((sink.secret = test_secret(&o, sink.url, &wc)) == NULL) {
        webhook_conf_cleanup(&wc);
        return o.secret_file != NULL ? EX_NOINPUT : EX_CONFIG;
    }
    /* A sample event, marked as a test by its id and its recipient's domain. */
    int64_t now = pigeon_spool_now_ms();
    pg_spool_hook_event ev = {.type = PG_HOOK_DELIVERED,
                              .rcpt = "test@example.invalid",
                              .account = "test",
                              .message_id = "<test@pigeon.invalid>",
                              .smtp_code = 250,
                              .enhanced = "2.0.0",
                              .text = "pigeon webhook test",
                              .attempts = 1,
                              .at_ms = now};
    webhook_body *b = webhook_body_begin();
    size_t len = 0;
    if (b != NULL)
        webhook_body_add(b, &ev);
    char *body = b != NULL ? webhook_body_end(b, &len) : NULL;
    pg_http_response resp;
    char err[400];
    memset(&resp, 0, sizeof resp);
    pigeon_err e = body != NULL ? webhook_post(&sink, &wc, body, len, 0, 1, &resp, err, sizeof err)
                                : PIGEON_ERR_NOMEM;
    if (e != PIGEON_OK) {
        cli_error("webhook test: %s: %s", sink.url, body != NULL ? err : "out of memory");
        status = cli_exit_status(e);
    } else {
        printf("HTTP %d %s\n", resp.status, resp.reason);
        if (resp.location[0] != '\0')
            printf("Location: %s (redirects are not followed)\n", resp.location);
        if (resp.body_len > 0)
            printf("%.*s%s", (int)(resp.body_len > 4096 ? 4096 : resp.body_len), resp.body,
                   resp.body[resp.body_len - 1] == '\n' ? "" : "\n");
        status = resp.status >= 200 && resp.status < 300 ? 0 : EX_UNAVAILABLE;
    }
    pg_http_response_cleanup(&resp);
    free(body);
    secret_free(sink.secret);
    pg_http_client_free(sink.http);
    webhook_conf_cleanup(&wc);
    return status;
}

static void print_state(json_writer *w, const webhook_sink *s, const pg_spool_hook_state *st)
{
    char next[40] = "now";
    if (st->next_ms > 0) {
        time_t t = (time_t)(st->next_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(next, sizeof next, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    if (w == NULL) {
        printf("%s  %s%s%s\n  pending=%lld delivered=%lld failed=%lld failures=%lld next=%s%s%s\n",
               s->url, s->key_id[0] ? "(key " : "(all keys", s->key_id, ")", (long long)st->pending,
               (long long)st->delivered, (long long)st->given_up, (long long)st->failures,
               st->failures > 0 ? next : "now", st->last_error[0] ? "\n  last error: " : "",
               st->last_error);
        return;
    }
    json_object_begin(w);
    json_kv_string(w, "url", s->url);
    json_kv_string(w, "api_key", s->key_id[0] ? s->key_id : NULL);
    json_kv_string(w, "origin", s->origin);
    json_kv_int(w, "pending", st->pending);
    json_kv_int(w, "delivered", st->delivered);
    json_kv_int(w, "failed", st->given_up);
    json_kv_int(w, "failures", st->failures);
    json_kv_string(w, "last_error", st->last_error[0] ? st->last_error : NULL);
    json_object_end(w);
}

static int webhook_list(int argc, char **argv)
{
    wh_opts o = {0};
    webhook_conf wc;
    pigeon_spool *spool = NULL;
    int status = parse(argc, argv, &o);
    if (status != 0)
        return status < 0 ? 0 : status;
    if ((status = webhook_conf_load(&wc)) != 0)
        return status;
    if ((status = queue_spool_open(o.spool, PIGEON_SPOOL_NO_CHECK, &spool)) != 0) {
        webhook_conf_cleanup(&wc);
        return status;
    }
    webhook_sink *keys = NULL;
    size_t nkeys = 0;
    int64_t total = 0, oldest = 0;
    int on = 0;
    if (webhook_key_sinks(spool, &keys, &nkeys) != 0 ||
        pg_spool_hook_count(spool, &total, &oldest) != PIGEON_OK ||
        pg_spool_hooks_enabled(spool, &on) != PIGEON_OK) {
        cli_error("webhook list: %s", pigeon_spool_error(spool));
        status = EX_IOERR;
    }
    json_writer jw;
    json_writer *w = o.json ? &jw : NULL;
    if (w != NULL) {
        json_init(w, stdout);
        json_object_begin(w);
        json_kv_bool(w, "enabled", on);
        json_kv_int(w, "events", total);
        json_key(w, "webhooks");
        json_array_begin(w);
    } else if (status == 0)
        printf("outbox: %s, %lld events kept\n", on ? "on" : "off (no webhook configured)",
               (long long)total);
    for (size_t i = 0; status == 0 && i < wc.nsinks + nkeys; i++) {
        const webhook_sink *s = i < wc.nsinks ? &wc.sinks[i] : &keys[i - wc.nsinks];
        pg_spool_hook_sink view = {s->name, s->key_id[0] ? s->key_id : NULL, s->types};
        pg_spool_hook_state st;
        if (pg_spool_hook_state_get(spool, &view, &st) != PIGEON_OK) {
            cli_error("webhook list: %s", pigeon_spool_error(spool));
            status = EX_IOERR;
            break;
        }
        print_state(w, s, &st);
    }
    if (w != NULL) {
        json_array_end(w);
        json_object_end(w);
        json_finish(w);
    }
    webhook_sinks_free(keys, nkeys);
    pigeon_spool_close(spool);
    webhook_conf_cleanup(&wc);
    return status;
}

int cli_webhook_run(int argc, char **argv)
{
    if (argc < 2) {
        cli_webhook_usage(stderr);
        return EX_USAGE;
    }
    if (strcmp(argv[1], "test") == 0)
        return webhook_test(argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return webhook_list(argc - 1, argv + 1);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        cli_webhook_usage(stdout);
        return 0;
    }
    cli_error("webhook: unknown subcommand (test, list)");
    return EX_USAGE;
}

int webhook_key_attach(pigeon_spool *spool, const char *key_id, const char *url,
                       const char *secret_file, const char *events, char **shown)
{
    pg_spool_hook_key k;
    pg_http_url parsed;
    char why[300], err[600];
    memset(&k, 0, sizeof k);
    *shown = NULL;
    snprintf(k.key_id, sizeof k.key_id, "%s", key_id);
    if (pg_http_url_parse(url, &parsed, why, sizeof why) != 0) {
        cli_error("key: --webhook %s: %s", url, why);
        return EX_USAGE;
    }
    snprintf(k.url, sizeof k.url, "%s", url);
    k.types = PG_HOOK_ALL;
    if (events != NULL && webhook_types(events, "--webhook-events", &k.types) != 0)
        return EX_USAGE;
    if (secret_file != NULL) {
        char *s = secret_from_file(secret_file, 1, err, sizeof err);
        if (s == NULL || strlen(s) >= sizeof k.secret) {
            cli_error("key: --webhook-secret-file: %s", s == NULL ? err : "secret too long");
            secret_free(s);
            return EX_NOINPUT;
        }
        snprintf(k.secret, sizeof k.secret, "%s", s);
        secret_free(s);
    } else {
        /* None given: one is made, and shown once with the key. */
        char token[48];
        if (pg_random_token(token, 33) != PIGEON_OK) {
            cli_error("key: no randomness available");
            return EX_OSERR;
        }
        snprintf(k.secret, sizeof k.secret, "whsec_%s", token);
        *shown = strdup(k.secret);
    }
    int status = 0;
    if (pg_spool_hook_key_set(spool, &k) != PIGEON_OK ||
        pg_spool_hooks_enable(spool, 1) != PIGEON_OK) {
        cli_error("key: cannot store the webhook: %s", pigeon_spool_error(spool));
        status = EX_IOERR;
    }
    memset(k.secret, 0, sizeof k.secret);
    return status;
}

void cli_webhook_usage(FILE *out)
{
    fputs("usage: pigeon webhook test URL [--secret-file FILE]\n"
          "       pigeon webhook list [--json] [--spool PATH]\n"
          "\n"
          "Webhooks: `pigeon daemon` POSTs every recipient's outcome (queued, delivered,\n"
          "deferred, bounced, complained, suppressed, failed) as JSON to the URLs of\n"
          "pigeon.conf (webhook = URL, or [webhook NAME] sections) and of API keys\n"
          "(pigeon key create --webhook URL), signed: Pigeon-Signature: t=UNIX,v1=HEX, the\n"
          "HMAC-SHA256 of \"t.body\" with the webhook's secret. Events wait in the spool\n"
          "until the receiver answers 2xx (retried with backoff), in order per recipient,\n"
          "at least once (dedup by the events' id). See docs/webhooks.md.\n"
          "\n"
          "  test URL     send one sample signed event and print the answer (exit 0 on 2xx,\n"
          "               69 otherwise); the secret from --secret-file or the config\n"
          "  list         each webhook: events pending, delivered, failed (given up after\n"
          "               webhook_max_age), consecutive failures, last error\n",
          out);
}
