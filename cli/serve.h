/*
 * serve.h - `pigeon serve`: the HTTP submission API (shared by serve*.c).
 *
 * serve.c owns the command line, the HTTP server and routing (on its loop thread);
 * serve_message.c turns a JSON message into a stored-ready message (pure: no I/O);
 * serve_commit.c owns the spool handle on its own thread and stores what arrives in
 * group commits: every request that arrived while one commit ran goes into the next,
 * so one transaction and one fsync carry them all, and each is answered only after it.
 */
#ifndef PIGEON_CLI_SERVE_H
#define PIGEON_CLI_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http_server.h"
#include "json/json_read.h"
#include "pigeon/metrics.h"
#include "pigeon/spool.h"
#include "spool/spool_api.h"

#define SERVE_DETAIL_MAX 256 /* octets of a problem's detail */

/* A problem (RFC 9457) found in a request: status, and the detail naming the field
 * as a JSON Pointer ("/to/3: not an address"). */
typedef struct serve_problem {
    int status;                    /* 400, 403, 409, 413, 503... 0 for none */
    char detail[SERVE_DETAIL_MAX]; /* one line */
} serve_problem;

/* One message ready to store (all owned). */
typedef struct serve_item {
    char *data;                       /* the message as written (CRLF, not dot-stuffed) */
    size_t len;                       /* its length */
    char *account;                    /* the account to send through */
    char *mail_from;                  /* envelope sender */
    char **rcpts;                     /* envelope recipients */
    size_t nrcpts;                    /* how many */
    char *message_id;                 /* "<...>" or NULL */
    char *idem;                       /* Idempotency-Key, or NULL */
    unsigned char sha[32];            /* SHA-256 of the request item (idempotency) */
    char id[PIGEON_SPOOL_ID_LEN + 1]; /* out: the queue id */
    serve_problem problem;            /* set: not stored, answer this */
    int replayed;                     /* out: an earlier request with the same key stored it */
    int64_t send_at_ms;               /* not due before this (ms since the epoch), 0: now */
    char *suppressed;                 /* out: JSON array of the recipients left out as
                                         suppressed (serve_suppress.c), or NULL */
} serve_item;

/* Limits and defaults for composing. */
typedef struct serve_compose_opts {
    const char *account;     /* the account when the request and key name none */
    const pg_spool_key *key; /* the caller's key, or NULL without authentication */
    size_t max_message;      /* bytes of a written message, at most */
    const char *templates;   /* --templates DIR, or NULL */
} serve_compose_opts;

/* serve_template.c: the named template DIR/NAME.json (an object of subject, text, html,
 * markdown strings) in *doc, or -1 with why set (400 unknown or bad name, 503 unreadable
 * or malformed file). */
int serve_template_load(const char *dir, const char *name, pg_json_doc **doc, serve_problem *why);

/* Composes one message object (the JSON value of a request or a batch element). prefix
 * is the JSON Pointer of v ("" or "/messages/3"). On failure item->problem is set. */
void serve_compose(const pg_json_value *v, const char *prefix, const serve_compose_opts *opts,
                   serve_item *item);
void serve_item_cleanup(serve_item *item);

/* What the committer is asked to do. */
typedef enum serve_job_kind {
    SERVE_JOB_STORE,  /* store items (one message, or a batch) */
    SERVE_JOB_SHOW,   /* GET /v1/messages/{id} */
    SERVE_JOB_CANCEL, /* DELETE /v1/messages/{id} */
} serve_job_kind;

typedef struct serve_job serve_job;
typedef struct serve_ctx serve_ctx;

/* Called on the committer thread with the job done: answers the exchange and frees. */
typedef void (*serve_done_fn)(serve_ctx *ctx, serve_job *job);

struct serve_job {
    serve_job_kind kind;                    /* what to do */
    pg_http_exchange *ex;                   /* the request to answer */
    serve_item *items;                      /* STORE: the items (owned) */
    size_t nitems;                          /* how many */
    int batch;                              /* STORE: answer with per-item results */
    char key_id[PG_SPOOL_KEY_ID_LEN + 1];   /* the caller's key id ("" without keys) */
    char queue_id[PIGEON_SPOOL_ID_LEN + 1]; /* SHOW/CANCEL: the message */
    int route;                              /* for metrics */
    int64_t start_ns;                       /* when the request was dispatched (monotonic) */
    serve_job *next;                        /* the committer's queue */
    serve_done_fn done;                     /* not NULL: answers it instead of ex (SMTP) */
    void *done_arg;                         /* its argument (the SMTP connection) */
};

/* The committer: a thread, its spool handle and its queue. */
typedef struct serve_committer {
    pthread_t thread;       /* the committer thread */
    pthread_mutex_t lock;   /* guards the fields below */
    pthread_cond_t wake;    /* signalled when a job arrives or on stop */
    serve_job *head, *tail; /* jobs waiting */
    int stopping;           /* finish the queue and exit */
    size_t queued_estimate; /* messages in the spool, refreshed about every second */
} serve_committer;

/* The whole service. */
struct serve_ctx {
    pigeon_spool *spool;       /* the committer's handle */
    pg_http_server *http;      /* the HTTP server */
    serve_committer com;       /* group commits */
    pigeon_metrics *metrics;   /* the registry for /metrics */
    pigeon_metric *requests;   /* pigeon_http_requests_total{route,status} */
    pigeon_metric *latency;    /* pigeon_http_request_duration_seconds{route} */
    pigeon_metric *commits;    /* pigeon_spool_commits_total */
    pigeon_metric *committed;  /* pigeon_spool_commit_messages (histogram) */
    const char *account;       /* --account, or NULL */
    size_t max_message;        /* --max-message-size */
    size_t max_queued;         /* --max-queued, 0 for no bound */
    const char *templates;     /* --templates DIR, or NULL */
    int no_auth;               /* --no-auth: no keys (loopback only) */
    pthread_mutex_t keys_lock; /* guards keys and key_rates */
    pg_spool_key *keys;        /* the live keys, refreshed by the committer */
    size_t nkeys;              /* how many */
    double *tokens;            /* per key: rate-limit tokens left (token bucket) */
    int64_t *tokens_ms;        /* per key: when tokens were last topped up */
    struct serve_smtp *smtp;   /* the SMTP listener (serve_smtp.c), or NULL */
};

/* Takes the item's suppressed recipients out of its envelope (committer thread, inside
 * the group's batch), naming them in item->suppressed. Returns 1 when the item must not
 * be stored (every recipient suppressed: 422; the check failed: 503), else 0. */
int serve_suppress_item(serve_ctx *ctx, serve_item *item);

/* Starts the committer thread on ctx->spool. */
int serve_committer_start(serve_ctx *ctx);
/* Hands a job to the committer (any thread). */
void serve_committer_push(serve_ctx *ctx, serve_job *job);
/* Stores what is queued, then stops and joins the thread. */
void serve_committer_stop(serve_ctx *ctx);
/* Answers a finished job (serve.c; called on the committer thread). */
void serve_job_done(serve_ctx *ctx, serve_job *job);
/* Reloads the keys from the spool into ctx (committer thread). */
void serve_keys_reload(serve_ctx *ctx);
/* Frees a job and its items. */
void serve_job_free(serve_job *job);

/* Answers ex with an RFC 9457 problem (application/problem+json) and records metrics. */
void serve_problem_respond(serve_ctx *ctx, pg_http_exchange *ex, int route, int64_t start_ns,
                           int status, const char *detail, int retry_after);
/* Answers with a JSON body and records metrics. */
void serve_json_respond(serve_ctx *ctx, pg_http_exchange *ex, int route, int64_t start_ns,
                        int status, const char *body, size_t len);

/* The same for a job: the log line names its key and message. */
void serve_job_problem(serve_ctx *ctx, const serve_job *job, int status, const char *detail,
                       int retry_after);
void serve_job_json(serve_ctx *ctx, const serve_job *job, int status, const char *body, size_t len,
                    const char *msg_id);

int64_t serve_now_ns(void);

struct pg_buf;
/* Holds this thread's request log lines in buf (the committer, while it answers a group)
 * until serve_log_release writes them in one go. */
void serve_log_hold(struct pg_buf *buf);
void serve_log_release(struct pg_buf *buf);

/* Keys (serve_http.c), shared with the SMTP listener. The key whose "pgk_..." token this
 * is (0), or -1 for none or revoked; no rate is taken. */
int serve_key_lookup(serve_ctx *ctx, const char *token, pg_spool_key *key);
/* Takes one request from the live key's token bucket: 0, -1 over its rate, -2 when the
 * key is gone (revoked). */
int serve_key_take(serve_ctx *ctx, const char *key_id);
int serve_scope_has(const pg_spool_key *key, const char *scope);
/* serve_message.c: may the key send From this domain? (NULL key: yes) */
int serve_domain_allowed(const pg_spool_key *key, const char *domain);

/* The SMTP listener (serve_smtp.c). */
typedef struct serve_smtp_opts {
    const char *listen;     /* --smtp-listen ADDR:PORT, or NULL */
    const char *tls_listen; /* --smtps-listen ADDR:PORT (implicit TLS), or NULL */
    const char *tls_cert;   /* --tls-cert: STARTTLS and implicit TLS */
    const char *tls_key;    /* --tls-key */
    const char *hostname;   /* the name we greet with */
    int trust_local;        /* --smtp-trust-local: loopback clients need no AUTH */
    int local_plain_auth;   /* --smtp-local-plain-auth: AUTH without TLS on loopback */
    unsigned max_rcpts;     /* --smtp-max-recipients */
    unsigned max_conns;     /* --smtp-max-connections */
    unsigned timeout_s;     /* --smtp-timeout: idle seconds before 421 */
} serve_smtp_opts;
/* Binds and starts the listener thread. 0, or an exit status with the reason printed. */
int serve_smtp_start(serve_ctx *ctx, const serve_smtp_opts *o);
/* The bound ports (0 when not listening). */
unsigned serve_smtp_port(const serve_ctx *ctx, int implicit_tls);
/* Stops accepting (first step of a shutdown). */
void serve_smtp_quiesce(serve_ctx *ctx);
/* Sends the answers the committer gave, closes everything, joins and frees. */
void serve_smtp_stop(serve_ctx *ctx);

#endif
