/*
 * metrics_http.c - the HTTP endpoint of the metrics registry, on libmicrohttpd.
 *
 * One internal polling thread answers GET /metrics (the registry in Prometheus text
 * format 0.0.4) and GET /healthz; HEAD is answered like GET without a body, as RFC 9110
 * 9.3.2 asks; every other method gets 405 with an Allow header (RFC 9110 15.5.6). The
 * listen address is numeric only, so that starting the endpoint never waits on DNS.
 * libmicrohttpd's error log is replaced by a silent one: the library never prints.
 */
#include "pigeon/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifdef PIGEON_HAVE_MHD
#include <microhttpd.h>
#endif

#define HEALTH_REASON_MAX 256 /* bytes of a health hook's reason */
#define CONNECTION_LIMIT  32  /* concurrent scrapers, at most */
#define IDLE_TIMEOUT_S    10  /* an idle client connection is closed after this */

struct pigeon_metrics_server {
#ifdef PIGEON_HAVE_MHD
    struct MHD_Daemon *daemon; /* the libmicrohttpd daemon and its thread */
#endif
    pigeon_metrics *registry;        /* what /metrics renders (borrowed) */
    pigeon_metrics_health_fn health; /* /healthz hook, or NULL: always healthy */
    void *health_arg;                /* its argument */
    unsigned port;                   /* the bound port */
};

static pigeon_err parse_listen(const char *listen, struct sockaddr_storage *ss, int *v6);
static int parse_port(const char *s, unsigned *port);

/* "host:port" or "[v6]:port" with a numeric host into *ss. */
static pigeon_err parse_listen(const char *listen, struct sockaddr_storage *ss, int *v6)
{
    char host[64];
    const char *port_text;
    size_t host_len;
    if (listen == NULL)
        return PIGEON_ERR_INVALID;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (end == NULL || end[1] != ':')
            return PIGEON_ERR_INVALID;
        host_len = (size_t)(end - listen - 1);
        memcpy(host, listen + 1, host_len < sizeof host ? host_len : 0);
        port_text = end + 2;
        *v6 = 1;
    } else {
        const char *colon = strrchr(listen, ':');
        if (colon == NULL || memchr(listen, ':', (size_t)(colon - listen)) != NULL)
            return PIGEON_ERR_INVALID;
        host_len = (size_t)(colon - listen);
        memcpy(host, listen, host_len < sizeof host ? host_len : 0);
        port_text = colon + 1;
        *v6 = 0;
    }
    unsigned port;
    if (host_len == 0 || host_len >= sizeof host || !parse_port(port_text, &port))
        return PIGEON_ERR_INVALID;
    host[host_len] = '\0';
    memset(ss, 0, sizeof *ss);
    if (*v6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        return inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1 ? PIGEON_OK : PIGEON_ERR_INVALID;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? PIGEON_OK : PIGEON_ERR_INVALID;
}

/* 1 to 5 decimal digits, at most 65535. */
static int parse_port(const char *s, unsigned *port)
{
    unsigned v = 0;
    size_t i = 0;
    for (; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 5)
            return 0;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (i == 0 || v > 65535)
        return 0;
    *port = v;
    return 1;
}

unsigned pigeon_metrics_server_port(const pigeon_metrics_server *server)
{
    return server != NULL ? server->port : 0;
}

#ifdef PIGEON_HAVE_MHD

static void quiet_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    (void)fmt;
    (void)ap;
}

/* Queues a response with body (copied, or taken over when owned) and a Content-Type. */
static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                               int owned, const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    enum MHD_Result ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (ok == MHD_YES && status == MHD_HTTP_METHOD_NOT_ALLOWED)
        ok = MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (ok == MHD_YES)
        ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    return respond(c, status, (char *)text, strlen(text), 0, "text/plain; charset=utf-8");
}

static enum MHD_Result serve_metrics(pigeon_metrics_server *srv, struct MHD_Connection *c)
{
    char *text = NULL;
    size_t len = 0;
    if (pigeon_metrics_render(srv->registry, &text, &len) != PIGEON_OK)
        return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics\n");
    return respond(c, MHD_HTTP_OK, text, len, 1, PIGEON_METRICS_CONTENT_TYPE);
}

/* The hook's reason on one line: control characters become spaces. */
static enum MHD_Result serve_health(pigeon_metrics_server *srv, struct MHD_Connection *c)
{
    char reason[HEALTH_REASON_MAX + 1] = "";
    if (srv->health == NULL || srv->health(srv->health_arg, reason, HEALTH_REASON_MAX))
        return respond_text(c, MHD_HTTP_OK, "ok\n");
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
    return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, reason);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_state)
{
    pigeon_metrics_server *srv = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_state;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(srv, c);
    if (strcmp(url, "/healthz") == 0)
        return serve_health(srv, c);
    return respond_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
}

pigeon_err pigeon_metrics_serve(pigeon_metrics *registry, const char *listen,
                                pigeon_metrics_health_fn health, void *health_arg,
                                pigeon_metrics_server **out)
{
    struct sockaddr_storage ss;
    int v6 = 0;
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (registry == NULL || parse_listen(listen, &ss, &v6) != PIGEON_OK)
        return PIGEON_ERR_INVALID;
    pigeon_metrics_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return PIGEON_ERR_NOMEM;
    srv->registry = registry;
    srv->health = health;
    srv->health_arg = health_arg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | (v6 ? MHD_USE_IPv6 : 0);
    srv->daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, handle, srv, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&ss, MHD_OPTION_EXTERNAL_LOGGER, quiet_log, NULL,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        free(srv);
        return PIGEON_ERR_NETWORK;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info != NULL ? info->port : 0;
    *out = srv;
    return PIGEON_OK;
}

void pigeon_metrics_server_stop(pigeon_metrics_server *server)
{
    if (server == NULL)
        return;
    MHD_stop_daemon(server->daemon);
    free(server);
}

#else /* !PIGEON_HAVE_MHD */

pigeon_err pigeon_metrics_serve(pigeon_metrics *registry, const char *listen,
                                pigeon_metrics_health_fn health, void *health_arg,
                                pigeon_metrics_server **out)
{
    struct sockaddr_storage ss;
    int v6;
    (void)registry;
    (void)health;
    (void)health_arg;
    if (out != NULL)
        *out = NULL;
    if (parse_listen(listen, &ss, &v6) != PIGEON_OK)
        return PIGEON_ERR_INVALID;
    return PIGEON_ERR_UNSUPPORTED;
}

void pigeon_metrics_server_stop(pigeon_metrics_server *server)
{
    free(server);
}

#endif
