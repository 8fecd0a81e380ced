/*
 * http_client.h - a small HTTP/1.1 client for webhooks (internal).
 *
 * One request at a time on one persistent connection (RFC 9112 9.3), over plaintext or
 * verified TLS (lib/net: the system store or ca_file, the host name checked, TLS >= 1.2).
 * Response bodies framed by Content-Length, the chunked coding (RFC 9112 7.1, through the
 * server's decoder in http_parse.h) or the connection's close (6.3), bounded in size.
 * Every step has a deadline. Redirects are reported (status and Location), never followed:
 * a webhook receiver that moves must be reconfigured, not trusted to send signed events
 * elsewhere.
 *
 * The response head parser (pg_http_parse_response) is a pure core on (buf, len), as
 * strict as the request parser about what would let two parsers disagree: lines end in
 * CRLF, no folding, one Content-Length (or several equal ones), Transfer-Encoding only
 * "chunked", and never both.
 */
#ifndef PG_HTTP_CLIENT_H
#define PG_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/error.h"

/* An http:// or https:// URL, split. */
typedef struct pg_http_url {
    int tls;             /* https */
    char host[256];      /* the host name or IP literal (without brackets) */
    uint16_t port;       /* the port (80 or 443 unless given) */
    char path[2048];     /* the path and query ("/" when empty) */
    char authority[300]; /* what the Host field carries ("h.example:8080", "[::1]:80") */
} pg_http_url;

/* Parses url. Returns 0, or -1 with why in why (cap octets): not http(s), userinfo
 * (credentials do not belong in a URL), a fragment, an empty or bad host, a bad port,
 * spaces or control characters, too long. */
int pg_http_url_parse(const char *url, pg_http_url *out, char *why, size_t cap);

/* A parsed response head; pointers point into the parsed buffer. */
typedef struct pg_http_response_head {
    int status;              /* 100-599 */
    int minor;               /* HTTP/1.minor */
    const char *reason;      /* the reason phrase */
    size_t reason_len;       /* its length */
    const char *location;    /* the Location field, or NULL */
    size_t location_len;     /* its length */
    uint64_t content_length; /* when has_length */
    int has_length;          /* a Content-Length was given */
    int chunked;             /* Transfer-Encoding: chunked */
    int keep_alive;          /* the connection may carry another request */
} pg_http_response_head;

/* Parses a response head at the start of buf: the octets it takes (> 0), 0 when buf holds
 * only a prefix (read more), -1 when it is malformed, -2 when it is over max_head octets
 * (0: 32768) or 100 fields. */
long pg_http_parse_response(const char *buf, size_t len, size_t max_head,
                            pg_http_response_head *out);

/* Settings of a client; zero fields take the defaults in parentheses. */
typedef struct pg_http_client_opts {
    int connect_timeout_ms; /* per connection attempt (10000) */
    int timeout_ms;         /* for a whole request and response (30000) */
    const char *ca_file;    /* PEM bundle to trust instead of the system store, or NULL */
    size_t max_body;        /* octets of a response body kept (65536; more is an error) */
} pg_http_client_opts;

/* A header field to send (name and value must not hold CR, LF or NUL). */
typedef struct pg_http_field {
    const char *name;  /* "Content-Type" */
    const char *value; /* "application/json" */
} pg_http_field;

/* What came back. */
typedef struct pg_http_response {
    int status;          /* the final status code */
    char reason[128];    /* its reason phrase (printable) */
    char location[1024]; /* Location of a redirect, "" otherwise */
    char *body;          /* the body, NUL-terminated (malloc'd), or NULL */
    size_t body_len;     /* its length */
    int reused;          /* the request went on a connection kept from before */
} pg_http_response;

typedef struct pg_http_client pg_http_client;

/* A client (NULL on no memory). opts may be NULL. */
pg_http_client *pg_http_client_new(const pg_http_client_opts *opts);
/* Closes its connection and frees. NULL is a no-op. */
void pg_http_client_free(pg_http_client *c);

/*
 * Sends a POST of body to url with the fields given (plus Host, Content-Length and
 * Connection handled here) and reads the response into *resp (cleaned up by the caller
 * with pg_http_response_cleanup, also on error). The connection is kept when the server
 * allows it, and used again for the next request to the same scheme, host and port; a
 * kept connection the server closed meanwhile is reopened once. Errors (the reason in
 * err): PIGEON_ERR_INVALID (a field with CR/LF), PIGEON_ERR_NETWORK, PIGEON_ERR_TIMEOUT,
 * PIGEON_ERR_TLS, PIGEON_ERR_PROTOCOL (a malformed response), PIGEON_ERR_TOO_LARGE (a body
 * over max_body), PIGEON_ERR_NOMEM. Any status is PIGEON_OK: the caller judges it.
 */
pigeon_err pg_http_client_post(pg_http_client *c, const pg_http_url *url,
                               const pg_http_field *fields, size_t nfields, const void *body,
                               size_t len, pg_http_response *resp, char *err, size_t errlen);

/* Frees the body and zeroes *resp. */
void pg_http_response_cleanup(pg_http_response *resp);

#endif
