/*
 * metrics_http.c - the HTTP endpoint of the metrics registry, on the http module's server.
 *
 * GET /metrics (the registry in Prometheus text format 0.0.4) and GET /healthz; HEAD is
 * answered like GET without a body, as RFC 9110 9.3.2 asks; every other method gets 405
 * with an Allow header (RFC 9110 15.5.6). The listen address is numeric only, so that
 * starting the endpoint never waits on DNS. The server's deadlines, closed-peer detection
 * and eviction at its connection cap keep /healthz answerable while a local client
 * trickles headers or leaves half-closed connections behind (http/http_server.h).
 */
#include <stdlib.h>
#include <string.h>

#include "http/http_server.h"
#include "pigeon/metrics.h"

#define HEALTH_REASON_MAX  256   /* bytes of a health hook's reason */
#define CONNECTION_LIMIT   256   /* concurrent scrapers, at most (then the stalest goes) */
#define REQUEST_TIMEOUT_MS 5000  /* a request must arrive whole within this */
#define IDLE_TIMEOUT_MS    10000 /* an idle client connection is closed after this */
#define TEXT_PLAIN         "text/plain; charset=utf-8"

struct pigeon_metrics_server {
    pg_http_server *http;            /* the server and its thread */
    pigeon_metrics *registry;        /* what /metrics renders (borrowed) */
    pigeon_metrics_health_fn health; /* /healthz hook, or NULL: always healthy */
    void *health_arg;                /* its argument */
};

static void handle(void *arg, pg_http_exchange *ex);
static void serve_metrics(pigeon_metrics_server *srv, pg_http_exchange *ex);
static void serve_health(pigeon_metrics_server *srv, pg_http_exchange *ex);

static void respond_text(pg_http_exchange *ex, int status, const char *extra, const char *text)
{
    pg_http_respond(ex, status, TEXT_PLAIN, extra, text, strlen(text));
}

static void serve_metrics(pigeon_metrics_server *srv, pg_http_exchange *ex)
{
    char *text = NULL;
    size_t len = 0;
    if (pigeon_metrics_render(srv->registry, &text, &len) != PIGEON_OK) {
        respond_text(ex, 500, NULL, "cannot render metrics\n");
        return;
    }
    pg_http_respond(ex, 200, PIGEON_METRICS_CONTENT_TYPE, NULL, text, len);
    free(text);
}

/* The hook's reason on one line: control characters become spaces. */
static void serve_health(pigeon_metrics_server *srv, pg_http_exchange *ex)
{
    char reason[HEALTH_REASON_MAX + 1] = "";
    if (srv->health == NULL || srv->health(srv->health_arg, reason, HEALTH_REASON_MAX)) {
        respond_text(ex, 200, NULL, "ok\n");
        return;
    }
    reason[HEALTH_REASON_MAX - 1] = '\0';
    size_t n = strlen(reason);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)reason[i] < 0x20 || reason[i] == 0x7f)
            reason[i] = ' ';
    }
    if (n == 0) {
        memcpy(reason, "unhealthy", 10);
        n = 9;
    }
    reason[n] = '\n';
    reason[n + 1] = '\0';
    respond_text(ex, 503, NULL, reason);
}

static void handle(void *arg, pg_http_exchange *ex)
{
    pigeon_metrics_server *srv = arg;
    const char *method = pg_http_exchange_method(ex);
    const char *path = pg_http_exchange_path(ex);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        respond_text(ex, 405, "Allow: GET, HEAD\r\n", "method not allowed\n");
    else if (strcmp(path, "/metrics") == 0)
        serve_metrics(srv, ex);
    else if (strcmp(path, "/healthz") == 0)
        serve_health(srv, ex);
    else
        respond_text(ex, 404, NULL, "not found\n");
}

pigeon_err pigeon_metrics_serve(pigeon_metrics *registry, const char *listen,
                                pigeon_metrics_health_fn health, void *health_arg,
                                pigeon_metrics_server **out)
{
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    pigeon_metrics_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return PIGEON_ERR_NOMEM;
    srv->registry = registry;
    srv->health = health;
    srv->health_arg = health_arg;
    pg_http_server_opts opts = {
        .listen = listen,
        .handler = handle,
        .handler_arg = srv,
        .limits = {.max_line = 4096, .max_head = 16384, .max_headers = 64, .max_body = 65536},
        .max_connections = CONNECTION_LIMIT,
        .request_timeout_ms = REQUEST_TIMEOUT_MS,
        .idle_timeout_ms = IDLE_TIMEOUT_MS,
    };
    pigeon_err err =
        registry == NULL ? PIGEON_ERR_INVALID : pg_http_server_new(&opts, &srv->http, NULL, 0);
    if (err == PIGEON_OK)
        err = pg_http_server_start(srv->http);
    if (err != PIGEON_OK) {
        pigeon_metrics_server_stop(srv);
        return err;
    }
    *out = srv;
    return PIGEON_OK;
}

unsigned pigeon_metrics_server_port(const pigeon_metrics_server *server)
{
    return server != NULL ? pg_http_server_port(server->http) : 0;
}

void pigeon_metrics_server_stop(pigeon_metrics_server *server)
{
    if (server == NULL)
        return;
    pg_http_server_free(server->http);
    free(server);
}
