/*
 * http_server.h - an HTTP/1.1 server on one epoll event loop (internal).
 *
 * One thread owns the listening socket and every connection: non-blocking sockets,
 * level-triggered epoll, optional TLS (OpenSSL, TLS 1.2 and later). Connections are
 * persistent (RFC 9112 9.3) and may pipeline: requests are handed to the handler in the
 * order they arrive, and their responses are written in that same order whatever order
 * the handler completes them in (RFC 9112 9.3.2). A handler may answer at once, or keep
 * the exchange and answer later from any thread (the loop is woken through an eventfd):
 * this is how an answer waits for a durable spool commit.
 *
 * Defences, because one local client must not take the server down:
 *  - a request deadline: from its first octet, a request (head and body) must arrive
 *    within request_timeout_ms, however slowly it trickles (slowloris);
 *  - an idle deadline between requests, and a write deadline for a peer that stops reading;
 *  - a closed peer is noticed at once (EPOLLRDHUP, EPOLLHUP, EOF): a connection whose peer
 *    closed or half-closed it with a partial request is closed without waiting for any
 *    deadline; complete requests already read are still answered, then it closes;
 *  - a connection cap: when it is reached, the connection that has been waiting longest
 *    without a request in the handler is closed to admit the new one, so that a flood of
 *    idle or slow connections cannot lock out a health check;
 *  - limits on the request line, head, field count and body (http_parse.h); a request
 *    that breaks them is answered with its 4xx and the connection closed.
 *
 * Thread safety: pg_http_respond() may be called from any thread, once per exchange. All
 * other calls on an exchange are for the thread that holds it (the handler, or whoever
 * it handed the exchange to) until it responds. Server calls are for the owning thread.
 */
#ifndef PG_HTTP_SERVER_H
#define PG_HTTP_SERVER_H

#include <stddef.h>

#include "http/http_parse.h"
#include "pigeon/error.h"

typedef struct pg_http_server pg_http_server;
typedef struct pg_http_exchange pg_http_exchange; /* one request and its response */

/* Called on the loop thread for each complete request. The handler must eventually call
 * pg_http_respond(ex, ...) exactly once, now or later from any thread; until then ex stays
 * valid even if the client goes away (the response is then dropped). It must not block. */
typedef void (*pg_http_handler_fn)(void *arg, pg_http_exchange *ex);

/* Server settings; zero fields take the defaults in parentheses. */
typedef struct pg_http_server_opts {
    const char *listen;          /* "127.0.0.1:8080" or "[::1]:0": numeric, port 0 picks */
    pg_http_handler_fn handler;  /* required */
    void *handler_arg;           /* its first argument */
    pg_http_limits limits;       /* request bounds (see http_parse.h) */
    unsigned max_connections;    /* open connections at most (1024) */
    unsigned request_timeout_ms; /* first octet to last octet of a request (10000) */
    unsigned idle_timeout_ms;    /* between requests, and for a stalled write (30000) */
    unsigned max_pipeline;       /* requests in the handler per connection (32) */
    const char *tls_cert;        /* PEM certificate chain file: serve TLS; NULL: plain */
    const char *tls_key;         /* PEM private key file (with tls_cert) */
    int problem_errors;          /* answer malformed requests with RFC 9457
                                    application/problem+json rather than text/plain */
} pg_http_server_opts;

/*
 * Creates a server bound and listening on opts->listen (not yet serving). Errors:
 * PIGEON_ERR_INVALID (listen unparsable, no handler), PIGEON_ERR_NETWORK (cannot bind or
 * listen: in use, not a local address), PIGEON_ERR_TLS (certificate or key unreadable or
 * not matching), PIGEON_ERR_NOMEM. errmsg (may be NULL) gets a one-line reason.
 */
pigeon_err pg_http_server_new(const pg_http_server_opts *opts, pg_http_server **out, char *errmsg,
                              size_t errlen);

/* The bound TCP port (the chosen one for port 0). */
unsigned pg_http_server_port(const pg_http_server *srv);

/* Starts the event loop on its own thread. PIGEON_ERR_STATE if already started,
 * PIGEON_ERR_NOMEM if no thread could be made. */
pigeon_err pg_http_server_start(pg_http_server *srv);

/* Stops the loop (if started), closes every connection and frees the server. Exchanges
 * the handler still holds must be answered before this call. NULL does nothing. */
void pg_http_server_free(pg_http_server *srv);

/* ---- the exchange: read the request, then answer it ---- */

/* The method ("GET") and the path ("/v1/messages", without the query), NUL-terminated,
 * valid until the exchange is answered. The path is as sent: not percent-decoded. */
const char *pg_http_exchange_method(const pg_http_exchange *ex);
const char *pg_http_exchange_path(const pg_http_exchange *ex);

/* The query string after '?' (NUL-terminated), or NULL. */
const char *pg_http_exchange_query(const pg_http_exchange *ex);

/* The value of the first field named name (case-insensitive), NUL-terminated, or NULL. */
const char *pg_http_exchange_header(const pg_http_exchange *ex, const char *name);

/* The request body (decoded from chunks, NUL-terminated after len octets; "" if none). */
const char *pg_http_exchange_body(const pg_http_exchange *ex, size_t *len);

/* The client's address as text ("127.0.0.1", "::1"). */
const char *pg_http_exchange_peer(const pg_http_exchange *ex);

/*
 * Answers the exchange: status (100-599, not 1xx), content_type (NULL: none), extra
 * header lines (NULL or "Name: value\r\n..."; the caller vouches for them: no bare CR or
 * LF from outside input), body (len octets, copied; may be NULL when len is 0).
 * Content-Length, Date and Connection are added here; a HEAD request gets no body. Any
 * thread, exactly once per exchange; afterwards ex must not be used. If memory runs out
 * the connection is closed instead.
 */
void pg_http_respond(pg_http_exchange *ex, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t len);

#endif
