/*
 * serve_http.c - the routes of `pigeon serve` (on the HTTP loop thread) and their
 * answers (on the committer thread once the spool has done its part).
 *
 *   POST   /v1/messages         one message; 202 {"id"} once durable
 *   POST   /v1/messages/batch   {"messages": [...]} up to 1,000; 200 with per-item results
 *   GET    /v1/messages/{id}    state per recipient
 *   DELETE /v1/messages/{id}    cancel what has not been sent; 204
 *   GET    /healthz, /metrics
 *
 * Errors are RFC 9457 problem details (application/problem+json) whose detail names the
 * field. Keys: "Authorization: Bearer pgk_<id>_<secret>"; 401 without or with a wrong
 * one, 403 outside its scopes, 429 with Retry-After over its rate. A message another key
 * submitted is 404, exactly like one that does not exist (tenant isolation).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "json.h"
#include "serve.h"
#include "util/buf.h"

#define MAX_BATCH    1000
#define KEY_PREFIX   "pgk_"
#define MAX_IDEM     255
#define JSON_TYPE    "application/json"
#define PROBLEM_TYPE "application/problem+json"

/* Routes, for metrics labels. */
enum { R_SEND, R_BATCH, R_GET, R_CANCEL, R_HEALTH, R_METRICS, R_OTHER, R_COUNT };
static const char *const route_names[R_COUNT] = {"/v1/messages",
                                                 "/v1/messages/batch",
                                                 "GET /v1/messages/{id}",
                                                 "DELETE /v1/messages/{id}",
                                                 "/healthz",
                                                 "/metrics",
                                                 "other"};

int64_t serve_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The log lines of the committer's answers are held while it answers a group and then
 * written at once: one write(2) per group instead of one per request. */
static __thread pg_buf *held_log;

void serve_log_hold(pg_buf *buf)
{
    held_log = buf;
}

void serve_log_release(pg_buf *buf)
{
    held_log = NULL;
    if (buf->len > 0 && buf->err == PIGEON_OK)
        fwrite(buf->data, 1, buf->len, stderr);
    buf->len = 0;
    if (buf->data != NULL)
        buf->data[0] = '\0';
}

/* The log's time stamp, formatted once a second per thread. */
static const char *log_time(void)
{
    static __thread time_t last = -1;
    static __thread char when[32];
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        last = now;
    }
    return when;
}

/* Counts an answer in the metrics and logs it: one logfmt line on standard error per
 * request, with the key's id (never the key) and the message id when there is one. */
static void count(serve_ctx *ctx, int route, int status, int64_t start_ns, const char *key_id,
                  const char *msg_id)
{
    char code[8], line[256];
    double secs = (double)(serve_now_ns() - start_ns) / 1e9;
    snprintf(code, sizeof code, "%d", status);
    const char *labels[2] = {route_names[route], code};
    pigeon_metrics_counter_add(ctx->requests, labels, 1);
    pigeon_metrics_histogram_observe(ctx->latency, labels, secs);
    int n = snprintf(line, sizeof line, "time=%s route=\"%s\" status=%d key=%s id=%s ms=%.1f\n",
                     log_time(), route_names[route], status, key_id && key_id[0] ? key_id : "-",
                     msg_id && msg_id[0] ? msg_id : "-", secs * 1000);
    if (n <= 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (held_log != NULL)
        pg_buf_append(held_log, line, len);
    else
        fwrite(line, 1, len, stderr);
}

void serve_json_respond(serve_ctx *ctx, pg_http_exchange *ex, int route, int64_t start_ns,
                        int status, const char *body, size_t len)
{
    count(ctx, route, status, start_ns, NULL, NULL);
    pg_http_respond(ex, status, body != NULL ? JSON_TYPE : NULL, NULL, body, len);
}

void serve_job_json(serve_ctx *ctx, const serve_job *job, int status, const char *body, size_t len,
                    const char *msg_id)
{
    count(ctx, job->route, status, job->start_ns, job->key_id, msg_id);
    pg_http_respond(job->ex, status, body != NULL ? JSON_TYPE : NULL, NULL, body, len);
}

static const char *problem_title(int status)
{
    return pg_http_reason(status)[0] ? pg_http_reason(status) : "Error";
}

/* RFC 9457 3: type (about:blank: the status says it all), title, status, detail. */
static char *problem_json(int status, const char *detail, size_t *len)
{
    char *out = NULL;
    FILE *f = open_memstream(&out, len);
    if (f == NULL)
        return NULL;
    json_writer w;
    json_init(&w, f);
    json_object_begin(&w);
    json_kv_string(&w, "type", "about:blank");
    json_kv_string(&w, "title", problem_title(status));
    json_kv_int(&w, "status", status);
    json_kv_string(&w, "detail", detail);
    json_object_end(&w);
    json_finish(&w);
    fclose(f);
    return out;
}

static void problem_respond(serve_ctx *ctx, pg_http_exchange *ex, int route, int64_t start_ns,
                            int status, const char *detail, int retry_after, const char *key_id,
                            const char *msg_id)
{
    size_t len = 0;
    char extra[64] = "";
    char *body = problem_json(status, detail, &len);
    if (retry_after > 0)
        snprintf(extra, sizeof extra, "Retry-After: %d\r\n", retry_after);
    count(ctx, route, status, start_ns, key_id, msg_id);
    pg_http_respond(ex, status, body != NULL ? PROBLEM_TYPE : NULL, extra[0] ? extra : NULL, body,
                    body != NULL ? len : 0);
    free(body);
}

void serve_problem_respond(serve_ctx *ctx, pg_http_exchange *ex, int route, int64_t start_ns,
                           int status, const char *detail, int retry_after)
{
    problem_respond(ctx, ex, route, start_ns, status, detail, retry_after, NULL, NULL);
}

void serve_job_problem(serve_ctx *ctx, const serve_job *job, int status, const char *detail,
                       int retry_after)
{
    problem_respond(ctx, job->ex, job->route, job->start_ns, status, detail, retry_after,
                    job->key_id, job->queue_id);
}

/* ---- keys ---- */

int serve_scope_has(const pg_spool_key *key, const char *scope)
{
    size_t n = strlen(scope);
    for (const char *p = key->scopes; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == n && memcmp(p, scope, n) == 0)
            return 1;
        p += len + (comma != NULL);
    }
    return 0;
}

void serve_keys_reload(serve_ctx *ctx);

/* Collects the live keys. */
static int collect_key(void *arg, const pg_spool_key *key)
{
    pg_spool_key **list = ((void **)arg)[0];
    size_t *n = ((void **)arg)[1], *cap = ((void **)arg)[2];
    if (key->revoked_ms != 0)
        return 0;
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        pg_spool_key *grown = realloc(*list, ncap * sizeof *grown);
        if (grown == NULL)
            return 1;
        *list = grown;
        *cap = ncap;
    }
    (*list)[(*n)++] = *key;
    return 0;
}

void serve_keys_reload(serve_ctx *ctx)
{
    pg_spool_key *list = NULL;
    size_t n = 0, cap = 0;
    void *args[3] = {&list, &n, &cap};
    if (ctx->no_auth || pg_spool_key_list(ctx->spool, collect_key, args) != PIGEON_OK) {
        free(list);
        return;
    }
    double *tokens = calloc(n ? n : 1, sizeof *tokens);
    int64_t *stamps = calloc(n ? n : 1, sizeof *stamps);
    if (tokens == NULL || stamps == NULL) {
        free(list);
        free(tokens);
        free(stamps);
        return;
    }
    pthread_mutex_lock(&ctx->keys_lock);
    /* Keep each surviving key's bucket, so that a reload does not refill it. */
    for (size_t i = 0; i < n; i++) {
        tokens[i] = list[i].rate;
        for (size_t k = 0; k < ctx->nkeys; k++) {
            if (strcmp(ctx->keys[k].id, list[i].id) == 0) {
                tokens[i] = ctx->tokens[k];
                stamps[i] = ctx->tokens_ms[k];
            }
        }
    }
    free(ctx->keys);
    free(ctx->tokens);
    free(ctx->tokens_ms);
    ctx->keys = list;
    ctx->nkeys = n;
    ctx->tokens = tokens;
    ctx->tokens_ms = stamps;
    pthread_mutex_unlock(&ctx->keys_lock);
}

static void sha256(const void *data, size_t len, unsigned char out[32]);

int serve_key_lookup(serve_ctx *ctx, const char *token, pg_spool_key *key)
{
    if (strncmp(token, KEY_PREFIX, 4) != 0 || strlen(token) < 4 + PG_SPOOL_KEY_ID_LEN + 2 ||
        token[4 + PG_SPOOL_KEY_ID_LEN] != '_')
        return -1;
    char id[PG_SPOOL_KEY_ID_LEN + 1];
    memcpy(id, token + 4, PG_SPOOL_KEY_ID_LEN);
    id[PG_SPOOL_KEY_ID_LEN] = '\0';
    const char *secret = token + 5 + PG_SPOOL_KEY_ID_LEN;
    unsigned char hash[32];
    sha256(secret, strlen(secret), hash);
    int found = -1;
    pthread_mutex_lock(&ctx->keys_lock);
    for (size_t i = 0; i < ctx->nkeys; i++) {
        if (strcmp(ctx->keys[i].id, id) == 0 && CRYPTO_memcmp(ctx->keys[i].hash, hash, 32) == 0) {
            *key = ctx->keys[i];
            found = 0;
            break;
        }
    }
    pthread_mutex_unlock(&ctx->keys_lock);
    return found;
}

int serve_key_take(serve_ctx *ctx, const char *key_id)
{
    int status = -2;
    pthread_mutex_lock(&ctx->keys_lock);
    for (size_t i = 0; i < ctx->nkeys; i++) {
        if (strcmp(ctx->keys[i].id, key_id) != 0)
            continue;
        status = 0;
        double rate = ctx->keys[i].rate;
        if (rate > 0) {
            /* A token bucket of one second's worth of requests. */
            int64_t now = pigeon_spool_now_ms();
            double t = ctx->tokens[i] + (double)(now - ctx->tokens_ms[i]) * rate / 1000.0;
            ctx->tokens[i] = t > rate ? rate : t;
            ctx->tokens_ms[i] = now;
            if (ctx->tokens[i] < 1.0)
                status = -1;
            else
                ctx->tokens[i] -= 1.0;
        }
        break;
    }
    pthread_mutex_unlock(&ctx->keys_lock);
    return status;
}

/* Checks the Authorization header. Returns 0 and fills *key, or an HTTP status (401, 429)
 * with the detail (and *retry for 429). */
static int authenticate(serve_ctx *ctx, pg_http_exchange *ex, pg_spool_key *key, char *detail,
                        size_t size, int *retry)
{
    const char *auth = pg_http_exchange_header(ex, "authorization");
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        snprintf(detail, size, "an API key is required: Authorization: Bearer pgk_...");
        return 401;
    }
    const char *token = auth + 7;
    if (strncmp(token, KEY_PREFIX, 4) != 0 || strlen(token) < 4 + PG_SPOOL_KEY_ID_LEN + 2 ||
        token[4 + PG_SPOOL_KEY_ID_LEN] != '_') {
        snprintf(detail, size, "not a pigeon API key");
        return 401;
    }
    int taken = serve_key_lookup(ctx, token, key) == 0 ? serve_key_take(ctx, key->id) : -2;
    if (taken == -2) {
        snprintf(detail, size, "unknown or revoked API key");
        return 401;
    }
    if (taken == -1) {
        *retry = 1;
        snprintf(detail, size, "over this key's rate of %g requests a second", key->rate);
        return 429;
    }
    return 0;
}

/* ---- handlers ---- */

static serve_job *new_job(serve_job_kind kind, pg_http_exchange *ex, int route, int64_t start,
                          const pg_spool_key *key)
{
    serve_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return NULL;
    job->kind = kind;
    job->ex = ex;
    job->route = route;
    job->start_ns = start;
    if (key != NULL)
        memcpy(job->key_id, key->id, sizeof job->key_id);
    return job;
}

/* SHA-256 fetched once (EVP_sha256() looks it up in the provider store at every use). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    pthread_once(&sha256_once, fetch_sha256);
    EVP_Digest(data, len, out, &n, sha256_md != NULL ? sha256_md : EVP_sha256(), NULL);
}

/* POST /v1/messages and /v1/messages/batch. */
static void handle_store(serve_ctx *ctx, pg_http_exchange *ex, int route, int64_t start,
                         const pg_spool_key *key)
{
    size_t len = 0;
    const char *body = pg_http_exchange_body(ex, &len);
    const char *ctype = pg_http_exchange_header(ex, "content-type");
    if (ctype != NULL && strncasecmp(ctype, JSON_TYPE, strlen(JSON_TYPE)) != 0) {
        problem_respond(ctx, ex, route, start, 415, "send application/json", 0,
                        key ? key->id : NULL, NULL);
        return;
    }
    const char *idem = pg_http_exchange_header(ex, "idempotency-key");
    if (idem != NULL && (strlen(idem) == 0 || strlen(idem) > MAX_IDEM)) {
        problem_respond(ctx, ex, route, start, 400, "Idempotency-Key: 1 to 255 visible characters",
                        0, key ? key->id : NULL, NULL);
        return;
    }
    pg_json_doc *doc = NULL;
    pg_json_error jerr;
    pg_json_limits lim = {.max_depth = 16, .max_size = ctx->max_message * 2 + 65536};
    pigeon_err e = pg_json_parse(body, len, &lim, &doc, &jerr);
    if (e != PIGEON_OK) {
        char detail[SERVE_DETAIL_MAX];
        snprintf(detail, sizeof detail, "not valid JSON at octet %zu: %s", jerr.offset,
                 jerr.reason);
        problem_respond(ctx, ex, route, start, e == PIGEON_ERR_NOMEM ? 503 : 400, detail, 0,
                        key ? key->id : NULL, NULL);
        return;
    }
    const pg_json_value *root = pg_json_root(doc), *list = root;
    serve_job *job = new_job(SERVE_JOB_STORE, ex, route, start, key);
    const char *fail = NULL;
    if (route == R_BATCH) {
        list = pg_json_get(root, "messages");
        if (list == NULL || list->type != PG_JSON_ARRAY || list->count == 0)
            fail = "/messages: an array of 1 to 1000 messages is required";
        else if (list->count > MAX_BATCH)
            fail = "/messages: at most 1000 messages in a batch";
        else if (root->count != 1)
            fail = "only \"messages\" is allowed at the top of a batch";
    }
    size_t n = route == R_BATCH && fail == NULL ? list->count : 1;
    if (job == NULL || (job->items = calloc(n, sizeof *job->items)) == NULL) {
        serve_job_free(job);
        pg_json_free(doc);
        problem_respond(ctx, ex, route, start, 503, "out of memory", 1, key ? key->id : NULL, NULL);
        return;
    }
    if (fail != NULL) {
        serve_job_free(job);
        pg_json_free(doc);
        problem_respond(ctx, ex, route, start, 400, fail, 0, key ? key->id : NULL, NULL);
        return;
    }
    job->nitems = n;
    job->batch = route == R_BATCH;
    serve_compose_opts opts = {ctx->account, key, ctx->max_message, ctx->templates};
    const pg_json_value *m = route == R_BATCH ? list->head : root;
    for (size_t i = 0; i < n; i++, m = m != NULL ? m->next : NULL) {
        char prefix[32] = "";
        if (job->batch)
            snprintf(prefix, sizeof prefix, "/messages/%zu", i);
        serve_compose(m, prefix, &opts, &job->items[i]);
        /* The idempotency of a batch item is the header plus its index. */
        if (idem != NULL) {
            char *k = malloc(strlen(idem) + 16);
            if (k != NULL)
                snprintf(k, strlen(idem) + 16, job->batch ? "%s#%zu" : "%s", idem, i);
            job->items[i].idem = k;
        }
    }
    /* Replaying a key with another body is a conflict: every item remembers the body's
     * hash (a batch's items the whole batch's); without a key nothing compares it. */
    if (idem != NULL)
        sha256(body, len, job->items[0].sha);
    for (size_t i = 1; i < n; i++)
        memcpy(job->items[i].sha, job->items[0].sha, 32);
    pg_json_free(doc);
    if (!job->batch && job->items[0].problem.status != 0) {
        problem_respond(ctx, ex, route, start, job->items[0].problem.status,
                        job->items[0].problem.detail, 0, key ? key->id : NULL, NULL);
        serve_job_free(job);
        return;
    }
    serve_committer_push(ctx, job);
}

/* "/v1/messages/{id}": the id, or NULL. */
static const char *message_id_of(const char *path)
{
    static const char prefix[] = "/v1/messages/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0)
        return NULL;
    const char *id = path + sizeof prefix - 1;
    if (strlen(id) != PIGEON_SPOOL_ID_LEN)
        return NULL;
    for (const char *p = id; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z')))
            return NULL;
    }
    return id;
}

static int route_of(const char *method, const char *path, const char **id, int *allowed)
{
    *id = NULL;
    *allowed = 1;
    if (strcmp(path, "/v1/messages") == 0)
        return (*allowed = strcmp(method, "POST") == 0), R_SEND;
    if (strcmp(path, "/v1/messages/batch") == 0)
        return (*allowed = strcmp(method, "POST") == 0), R_BATCH;
    if (strcmp(path, "/healthz") == 0)
        return (*allowed = !strcmp(method, "GET") || !strcmp(method, "HEAD")), R_HEALTH;
    if (strcmp(path, "/metrics") == 0)
        return (*allowed = !strcmp(method, "GET") || !strcmp(method, "HEAD")), R_METRICS;
    if (strncmp(path, "/v1/messages/", 13) == 0) {
        *id = message_id_of(path);
        if (strcmp(method, "DELETE") == 0)
            return R_CANCEL;
        *allowed = strcmp(method, "GET") == 0;
        return R_GET;
    }
    return R_OTHER;
}

static void serve_metrics(serve_ctx *ctx, pg_http_exchange *ex, int64_t start)
{
    char *text = NULL;
    size_t len = 0;
    count(ctx, R_METRICS, 200, start, NULL, NULL);
    if (pigeon_metrics_render(ctx->metrics, &text, &len) != PIGEON_OK) {
        pg_http_respond(ex, 500, "text/plain", NULL, "cannot render\n", 14);
        return;
    }
    pg_http_respond(ex, 200, PIGEON_METRICS_CONTENT_TYPE, NULL, text, len);
    free(text);
}

void serve_handle(void *arg, pg_http_exchange *ex);

void serve_handle(void *arg, pg_http_exchange *ex)
{
    serve_ctx *ctx = arg;
    int64_t start = serve_now_ns();
    const char *method = pg_http_exchange_method(ex), *path = pg_http_exchange_path(ex);
    const char *id = NULL;
    int allowed = 1;
    int route = route_of(method, path, &id, &allowed);
    if (route == R_OTHER) {
        serve_problem_respond(ctx, ex, route, start, 404, "no such route", 0);
        return;
    }
    if (!allowed) {
        count(ctx, route, 405, start, NULL, NULL);
        const char *allow = route == R_SEND || route == R_BATCH ? "Allow: POST\r\n"
                            : route == R_GET                    ? "Allow: GET, DELETE\r\n"
                                                                : "Allow: GET, HEAD\r\n";
        pg_http_respond(ex, 405, "text/plain", allow, "method not allowed\n", 19);
        return;
    }
    if (route == R_HEALTH) {
        count(ctx, route, 200, start, NULL, NULL);
        pg_http_respond(ex, 200, "text/plain; charset=utf-8", NULL, "ok\n", 3);
        return;
    }
    if (route == R_METRICS) {
        serve_metrics(ctx, ex, start);
        return;
    }
    pg_spool_key key, *keyp = NULL;
    if (!ctx->no_auth) {
        char detail[SERVE_DETAIL_MAX];
        int retry = 0;
        int status = authenticate(ctx, ex, &key, detail, sizeof detail, &retry);
        if (status != 0) {
            if (status == 401) {
                count(ctx, route, 401, start, NULL, NULL);
                size_t len = 0;
                char *body = problem_json(401, detail, &len);
                pg_http_respond(ex, 401, PROBLEM_TYPE,
                                "WWW-Authenticate: Bearer realm=\"pigeon\"\r\n", body,
                                body ? len : 0);
                free(body);
            } else {
                problem_respond(ctx, ex, route, start, status, detail, retry,
                                status == 429 ? key.id : NULL, NULL);
            }
            return;
        }
        keyp = &key;
        const char *scope = route == R_GET ? "read" : route == R_CANCEL ? "cancel" : "send";
        if (!serve_scope_has(keyp, scope)) {
            snprintf(detail, sizeof detail, "this key lacks the %s scope", scope);
            problem_respond(ctx, ex, route, start, 403, detail, 0, keyp->id, NULL);
            return;
        }
    }
    if (route == R_SEND || route == R_BATCH) {
        handle_store(ctx, ex, route, start, keyp);
        return;
    }
    if (id == NULL) {
        serve_problem_respond(ctx, ex, route, start, 404, "no such message", 0);
        return;
    }
    serve_job *job =
        new_job(route == R_GET ? SERVE_JOB_SHOW : SERVE_JOB_CANCEL, ex, route, start, keyp);
    if (job == NULL) {
        serve_problem_respond(ctx, ex, route, start, 503, "out of memory", 1);
        return;
    }
    memcpy(job->queue_id, id, sizeof job->queue_id);
    serve_committer_push(ctx, job);
}
