/*
 * http_parse.h - the HTTP/1.1 request parser (internal): a pure core on (buf, len).
 *
 * RFC 9112 message syntax: the request line (section 3), header fields (section 5), the
 * message body length (section 6.3) and the chunked transfer coding (section 7.1). The
 * parser never allocates and never reads past len; the server feeds it whatever it has
 * read so far and calls again when more arrives.
 *
 * Strict where leniency lets two parsers disagree about where a request ends (request
 * smuggling, RFC 9112 11.2): lines end in CRLF only (no bare LF, no bare CR); no obsolete
 * line folding (5.2); no whitespace between a field name and its colon (5.1); no control
 * characters in values; a request with both Content-Length and Transfer-Encoding, two
 * Content-Length fields, a Content-Length that is not one decimal number, a
 * Transfer-Encoding other than exactly "chunked", or a chunk size that is not hex or
 * overflows, is refused. HTTP/1.1 requests must carry exactly one Host (RFC 9112 3.2).
 */
#ifndef PG_HTTP_PARSE_H
#define PG_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define PG_HTTP_MAX_HEADERS_CAP 128 /* the most header fields a request may carry, at most */

/* Bounds on a request; zero fields take the defaults in parentheses. */
typedef struct pg_http_limits {
    size_t max_line;    /* octets of the request line or of one field line (8192) */
    size_t max_head;    /* octets of the request line and all fields together (32768) */
    size_t max_headers; /* number of field lines, <= PG_HTTP_MAX_HEADERS_CAP (64) */
    uint64_t max_body;  /* octets of the (decoded) body (1 MiB) */
} pg_http_limits;

/* One field line, pointing into the caller's buffer (not NUL-terminated). */
typedef struct pg_http_header {
    const char *name;  /* field name as sent (compare case-insensitively) */
    size_t name_len;   /* its length */
    const char *value; /* field value without leading and trailing whitespace */
    size_t value_len;  /* its length */
} pg_http_header;

/* A parsed request head; every pointer points into the buffer that was parsed. */
typedef struct pg_http_request {
    const char *method;                              /* "GET", "POST"... (a token) */
    size_t method_len;                               /* its length */
    const char *target;                              /* request-target as sent */
    size_t target_len;                               /* its length */
    const char *path;                                /* the path part of the target ("/x") */
    size_t path_len;                                 /* up to '?' or the end */
    const char *query;                               /* after '?', or NULL */
    size_t query_len;                                /* its length */
    int minor;                                       /* HTTP/1.minor: 0 or 1 */
    pg_http_header headers[PG_HTTP_MAX_HEADERS_CAP]; /* the field lines in order */
    size_t nheaders;                                 /* how many */
    uint64_t content_length;                         /* Content-Length, when has_length */
    int has_length;                                  /* a Content-Length was given */
    int chunked;                                     /* Transfer-Encoding: chunked */
    int keep_alive;                                  /* the connection may carry another */
    int expect_continue;                             /* Expect: 100-continue */
} pg_http_request;

/*
 * Parses a request head (request line, fields, the empty line) at the start of buf.
 * Returns the octets the head takes (> 0) and fills *req; 0 when buf holds only a prefix
 * of a valid head (read more and call again with the whole buffer); or a negative HTTP
 * status for the error: -400 (malformed, smuggling attempt), -414 (request line too long),
 * -431 (a field line, the head or the field count over its limit), -413 (Content-Length
 * over max_body), -501 (a transfer coding other than chunked), -505 (not HTTP/1.x).
 * Up to two empty lines before the request line are skipped (RFC 9112 2.2). limits may be
 * NULL for the defaults.
 */
long pg_http_parse_request(const char *buf, size_t len, const pg_http_limits *limits,
                           pg_http_request *req);

/* The value of the first field named name (case-insensitive), or NULL; *len its length. */
const char *pg_http_request_header(const pg_http_request *req, const char *name, size_t *len);

/* Where a chunked body decoder stands (RFC 9112 7.1). */
typedef enum pg_http_chunk_state {
    PG_CHUNK_SIZE = 0, /* reading a chunk-size line (hex digits, extensions, CRLF) */
    PG_CHUNK_DATA,     /* copying chunk data */
    PG_CHUNK_DATA_END, /* expecting the CRLF after chunk data */
    PG_CHUNK_TRAILER,  /* reading trailer field lines up to an empty line */
    PG_CHUNK_DONE      /* the last chunk and the trailer section are read */
} pg_http_chunk_state;

/* A chunked body decoder; zero-initialize, or use pg_http_chunked_init. */
typedef struct pg_http_chunked {
    pg_http_chunk_state state; /* where it stands */
    uint64_t remaining;        /* data octets left in the current chunk */
    uint64_t total;            /* decoded octets so far */
    uint64_t max_body;         /* bound on total (0: 1 MiB) */
    size_t max_line;           /* bound on a size or trailer line (0: 8192) */
    size_t trailers;           /* trailer lines seen (at most 64) */
} pg_http_chunked;

void pg_http_chunked_init(pg_http_chunked *dec, uint64_t max_body, size_t max_line);

/*
 * Decodes from buf: copies chunk data to out (which must have room for len octets; the
 * data is never larger than the input) and sets *out_len to the octets written. Returns
 * the input octets consumed (>= 0; fewer than len only when the body ended, dec->state is
 * then PG_CHUNK_DONE), or a negative HTTP status: -400 (bad chunk size, missing CRLF, a
 * line over max_line), -413 (decoded body over max_body). Incomplete lines are not
 * consumed: call again with them at the start of buf once more data arrives. out may
 * alias buf (the output never overtakes the input), so bodies can be decoded in place.
 */
long pg_http_chunked_feed(pg_http_chunked *dec, const char *buf, size_t len, char *out,
                          size_t *out_len);

/* The reason phrase of a status code ("Not Found"), "" for unknown ones. */
const char *pg_http_reason(int status);

#endif
