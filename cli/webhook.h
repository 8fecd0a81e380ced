/*
 * webhook.h - webhooks: the settings (webhook_conf.c), the signed JSON of events and the
 * daemon's sender (webhook_send.c), and `pigeon webhook` (webhook.c).
 *
 * Receivers ("sinks") are the [webhook NAME] sections and top-level `webhook = URL` lines
 * of pigeon.conf, which get every event (of their `events`), and the webhooks of API keys
 * (`pigeon key create --webhook URL`, kept in the spool), which get the events of the
 * messages their key submitted. Each POST carries a JSON array of events, signed with the
 * sink's secret: Pigeon-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">.
 */
#ifndef PIGEON_CLI_WEBHOOK_H
#define PIGEON_CLI_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "http/http_client.h"
#include "pigeon/spool.h"
#include "spool/spool_hooks.h"

/* One receiver. */
typedef struct webhook_sink {
    char name[1100];      /* its identity in the outbox: "url:<URL>" or "key:<id>" */
    char url[1024];       /* where events go */
    pg_http_url target;   /* url, parsed */
    char key_id[17];      /* only this API key's events, "" for all */
    unsigned types;       /* the event types it wants */
    char *secret;         /* the signing secret (malloc'd, wiped when freed) */
    char origin[300];     /* where it was configured ("FILE:LINE", "key ID") */
    pg_http_client *http; /* its connection (sender only), or NULL */
    int64_t next_ms;      /* not before this time (sender only) */
    int batch;            /* events per POST now (sender only; halved on 413) */
    int64_t cursor;       /* the cursor as this sender last moved it (sender only) */
    int64_t idle_ms;      /* when it last moved it past others' events (sender only) */
    int64_t failures;     /* consecutive failed POSTs (sender only) */
} webhook_sink;

/* The settings of every webhook. */
typedef struct webhook_conf {
    webhook_sink *sinks;  /* those of the configuration file */
    size_t nsinks;        /* how many */
    int batch;            /* webhook_batch: most events per POST (100) */
    int timeout_ms;       /* webhook_timeout: for one POST and its answer (10 s) */
    int64_t max_age_ms;   /* webhook_max_age: give up on events this old (72 h) */
    int64_t retry_max_ms; /* webhook_retry_max: the longest pause between tries (5 min) */
    char ca_file[512];    /* webhook_ca_file: trust this PEM bundle for https, or "" */
    char path[512];       /* the configuration file read, "" for none */
} webhook_conf;

/* Reads the webhook settings of the configuration file (pigeon.conf(5)) and the secrets
 * they name (secret, secret_file, secret_command). Returns 0, or an exit status after
 * printing the reason (file and line). A missing file means no webhooks. */
int webhook_conf_load(webhook_conf *wc);
/* Frees the sinks (wiping secrets) and zeroes wc. */
void webhook_conf_cleanup(webhook_conf *wc);

/* Adds to *sinks (growing it) the webhooks of API keys kept in the spool. 0, or -1 with
 * the spool's error. */
int webhook_key_sinks(pigeon_spool *spool, webhook_sink **sinks, size_t *n);
/* Frees n sinks' secrets and clients, then the array. */
void webhook_sinks_free(webhook_sink *sinks, size_t n);

/* "delivered,bounced" into a mask, or -1 (printed, naming origin). */
int webhook_types(const char *list, const char *origin, unsigned *mask);

/* Pigeon-Signature's value for body sent at unix time t: "t=<t>,v1=<hex>" into out. */
void webhook_sign(const char *secret, int64_t t, const void *body, size_t len, char out[96]);

/* Appends events as a JSON array to a body: webhook_body_begin, _add for each event,
 * _end (returns the malloc'd body and its length, NULL on no memory). */
typedef struct webhook_body webhook_body;
webhook_body *webhook_body_begin(void);
void webhook_body_add(webhook_body *b, const pg_spool_hook_event *ev);
char *webhook_body_end(webhook_body *b, size_t *len);

/* POSTs body to sink, signed; resp to be cleaned up by the caller. PIGEON_OK when an
 * answer came (any status). */
pigeon_err webhook_post(webhook_sink *sink, const webhook_conf *wc, const char *body, size_t len,
                        int64_t first_id, size_t count, pg_http_response *resp, char *err,
                        size_t errlen);

/* Sets the webhook of API key key_id (pigeon key create --webhook URL): the secret from
 * secret_file, or when NULL a new one, returned in *shown (malloc'd) to print once; events
 * NULL for all. Turns the outbox on. Returns 0 or an exit status (printed). */
int webhook_key_attach(pigeon_spool *spool, const char *key_id, const char *url,
                       const char *secret_file, const char *events, char **shown);

/* The daemon's sender: threads that deliver the outbox while the daemon runs. */
struct daemon_state;
typedef struct webhook_runner webhook_runner;
/* Starts it into *out (enabling the outbox when any webhook is configured). Returns 0, or
 * an exit status after printing why (a bad webhook setting: EX_CONFIG). */
int webhook_start(struct daemon_state *d, webhook_runner **out);
/* Stops and frees it. NULL is a no-op. */
void webhook_stop(webhook_runner *r);

#endif
