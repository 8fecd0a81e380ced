/*
 * http_parse.c - the HTTP/1.1 request parser: request line, fields, body framing and the
 * chunked coding (RFC 9112 sections 2-7), strict against request smuggling (11.2).
 * See http_parse.h for the contract.
 */
#include "http/http_parse.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX_LINE    8192
#define DEFAULT_MAX_HEAD    32768
#define DEFAULT_MAX_HEADERS 64
#define DEFAULT_MAX_BODY    (1u << 20)
#define MAX_LEADING_CRLF    2  /* empty lines tolerated before a request line */
#define MAX_TRAILERS        64 /* trailer field lines in a chunked body */
#define MAX_CHUNK_DIGITS    15 /* hex digits of a chunk size: below 2^60 */

typedef struct limits {
    size_t max_line, max_head, max_headers;
    uint64_t max_body;
} limits;

static void take_limits(const pg_http_limits *in, limits *l);
static int is_tchar(unsigned char c);
static int is_field_vchar(unsigned char c);
static long find_line(const char *buf, size_t len, size_t from, size_t max, size_t *eol);
static long parse_request_line(const char *p, size_t n, pg_http_request *req);
static void split_target(pg_http_request *req);
static long parse_field(const char *p, size_t n, pg_http_header *h);
static int name_is(const pg_http_header *h, const char *name);
static int value_is(const pg_http_header *h, const char *word);
static long apply_framing(pg_http_request *req, const limits *l);
static long apply_connection(pg_http_request *req);
static int parse_decimal(const char *p, size_t n, uint64_t *out);

static void take_limits(const pg_http_limits *in, limits *l)
{
    l->max_line = in != NULL && in->max_line != 0 ? in->max_line : DEFAULT_MAX_LINE;
    l->max_head = in != NULL && in->max_head != 0 ? in->max_head : DEFAULT_MAX_HEAD;
    l->max_headers = in != NULL && in->max_headers != 0 ? in->max_headers : DEFAULT_MAX_HEADERS;
    if (l->max_headers > PG_HTTP_MAX_HEADERS_CAP)
        l->max_headers = PG_HTTP_MAX_HEADERS_CAP;
    l->max_body = in != NULL && in->max_body != 0 ? in->max_body : DEFAULT_MAX_BODY;
}

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 * "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 9110 5.5: field-vchar = VCHAR / obs-text, plus SP and HTAB inside a value. */
static int is_field_vchar(unsigned char c)
{
    return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

/* Finds the CRLF ending the line that starts at from. Returns 1 with *eol at the CR,
 * 0 when no CRLF is there yet (and the line is not yet over max), or -1 for a bare CR or
 * bare LF (RFC 9112 2.2: we accept CRLF only), -2 for a line longer than max. */
static long find_line(const char *buf, size_t len, size_t from, size_t max, size_t *eol)
{
    for (size_t i = from; i < len; i++) {
        if (i - from > max)
            return -2;
        if (buf[i] == '\n')
            return -1;
        if (buf[i] != '\r')
            continue;
        if (i + 1 == len)
            return 0;
        if (buf[i + 1] != '\n')
            return -1;
        *eol = i;
        return 1;
    }
    return len - from > max ? -2 : 0;
}

/* RFC 9112 3: request-line = method SP request-target SP HTTP-version. One SP each. */
static long parse_request_line(const char *p, size_t n, pg_http_request *req)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i >= n || p[i] != ' ')
        return -400;
    req->method = p;
    req->method_len = i;
    size_t t = ++i;
    while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
        i++;
    if (i == t || i >= n || p[i] != ' ')
        return -400;
    req->target = p + t;
    req->target_len = i - t;
    i++;
    if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 6] != '.')
        return -400;
    if (p[i + 5] < '0' || p[i + 5] > '9' || p[i + 7] < '0' || p[i + 7] > '9')
        return -400;
    if (p[i + 5] != '1')
        return -505;
    req->minor = p[i + 7] - '0';
    if (req->minor > 1)
        req->minor = 1; /* RFC 9110 2.5: a higher minor version is answered as 1.1 */
    split_target(req);
    if (req->path_len == 0 || (req->path[0] != '/' && req->path[0] != '*'))
        return -400;
    return 0;
}

/* origin-form "/p?q", asterisk-form "*", absolute-form "http://host/p?q" (RFC 9112 3.2):
 * the path is what routes; the authority of an absolute-form is not used. */
static void split_target(pg_http_request *req)
{
    const char *t = req->target;
    size_t n = req->target_len;
    const char *scheme_end = n > 3 && t[0] != '/' ? memchr(t, ':', n) : NULL;
    if (scheme_end != NULL && (size_t)(scheme_end - t) + 3 <= n && scheme_end[1] == '/' &&
        scheme_end[2] == '/') {
        const char *auth = scheme_end + 3;
        const char *slash = memchr(auth, '/', n - (size_t)(auth - t));
        const char *q = memchr(auth, '?', n - (size_t)(auth - t));
        const char *start = slash != NULL && (q == NULL || slash < q) ? slash : NULL;
        if (start == NULL) { /* "http://host" or "http://host?q": the path is "/" */
            req->path = "/";
            req->path_len = 1;
            req->query = q != NULL ? q + 1 : NULL;
            req->query_len = q != NULL ? n - (size_t)(q + 1 - t) : 0;
            return;
        }
        n -= (size_t)(start - t);
        t = start;
    }
    const char *q = memchr(t, '?', n);
    req->path = t;
    req->path_len = q != NULL ? (size_t)(q - t) : n;
    req->query = q != NULL ? q + 1 : NULL;
    req->query_len = q != NULL ? n - req->path_len - 1 : 0;
}

/* RFC 9112 5: field-line = field-name ":" OWS field-value OWS. */
static long parse_field(const char *p, size_t n, pg_http_header *h)
{
    size_t i = 0;
    if (n > 0 && (p[0] == ' ' || p[0] == '\t'))
        return -400; /* 5.2: obs-fold is refused */
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i >= n || p[i] != ':')
        return -400; /* 5.1: no whitespace between name and colon */
    h->name = p;
    h->name_len = i++;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t end = n;
    while (end > i && (p[end - 1] == ' ' || p[end - 1] == '\t'))
        end--;
    for (size_t k = i; k < end; k++) {
        if (!is_field_vchar((unsigned char)p[k]))
            return -400;
    }
    h->value = p + i;
    h->value_len = end - i;
    return 0;
}

static int name_is(const pg_http_header *h, const char *name)
{
    return strlen(name) == h->name_len && strncasecmp(h->name, name, h->name_len) == 0;
}

static int value_is(const pg_http_header *h, const char *word)
{
    return strlen(word) == h->value_len && strncasecmp(h->value, word, h->value_len) == 0;
}

/* 1 to 19 decimal digits, nothing else (RFC 9110 8.6: Content-Length = 1*DIGIT). */
static int parse_decimal(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return 1;
}

/* RFC 9112 6.1-6.3: how long the body is, refusing every ambiguity (11.2). */
static long apply_framing(pg_http_request *req, const limits *l)
{
    int lengths = 0, codings = 0, hosts = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const pg_http_header *h = &req->headers[i];
        if (name_is(h, "content-length")) {
            if (++lengths > 1 || !parse_decimal(h->value, h->value_len, &req->content_length))
                return -400;
            req->has_length = 1;
        } else if (name_is(h, "transfer-encoding")) {
            if (++codings > 1)
                return -400;
            if (!value_is(h, "chunked"))
                return h->value_len == 0 ? -400 : -501;
            req->chunked = 1;
        } else if (name_is(h, "host")) {
            hosts++;
        } else if (name_is(h, "expect")) {
            req->expect_continue = value_is(h, "100-continue");
        }
    }
    if (lengths > 0 && codings > 0)
        return -400;
    if (codings > 0 && req->minor == 0)
        return -400; /* 6.1: chunked in HTTP/1.0 is a faulty framing */
    if (hosts > 1 || (req->minor == 1 && hosts == 0))
        return -400; /* 3.2 */
    if (req->has_length && req->content_length > l->max_body)
        return -413;
    return 0;
}

/* RFC 9112 9.3: 1.1 keeps the connection unless "close"; 1.0 only with "keep-alive". */
static long apply_connection(pg_http_request *req)
{
    int close = 0, keep = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const pg_http_header *h = &req->headers[i];
        if (!name_is(h, "connection"))
            continue;
        /* a comma-separated list of options */
        const char *p = h->value, *end = h->value + h->value_len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma != NULL ? comma : end;
            while (p < stop && (*p == ' ' || *p == '\t'))
                p++;
            const char *e = stop;
            while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if ((size_t)(e - p) == 5 && strncasecmp(p, "close", 5) == 0)
                close = 1;
            if ((size_t)(e - p) == 10 && strncasecmp(p, "keep-alive", 10) == 0)
                keep = 1;
            p = stop + (stop < end);
        }
    }
    req->keep_alive = !close && (req->minor == 1 || keep);
    return 0;
}

long pg_http_parse_request(const char *buf, size_t len, const pg_http_limits *lim,
                           pg_http_request *req)
{
    limits l;
    size_t pos = 0, eol = 0;
    take_limits(lim, &l);
    memset(req, 0, offsetof(pg_http_request, headers));
    req->nheaders = 0;
    req->content_length = 0;
    req->has_length = req->chunked = req->keep_alive = req->expect_continue = 0;
    for (int i = 0;
         i < MAX_LEADING_CRLF && len - pos >= 2 && buf[pos] == '\r' && buf[pos + 1] == '\n'; i++)
        pos += 2;
    long r = find_line(buf, len, pos, l.max_line, &eol);
    if (r <= 0)
        return r == 0 ? 0 : r == -2 ? -414 : -400;
    if ((r = parse_request_line(buf + pos, eol - pos, req)) < 0)
        return r;
    pos = eol + 2;
    for (;;) {
        r = find_line(buf, len, pos, l.max_line, &eol);
        if (r == 0)
            return len - pos > l.max_head || pos > l.max_head ? -431 : 0;
        if (r < 0)
            return r == -2 ? -431 : -400;
        if (eol == pos)
            break;
        if (req->nheaders == l.max_headers || eol + 2 > l.max_head)
            return -431;
        if ((r = parse_field(buf + pos, eol - pos, &req->headers[req->nheaders])) < 0)
            return r;
        req->nheaders++;
        pos = eol + 2;
    }
    if (pos + 2 > l.max_head)
        return -431;
    if ((r = apply_framing(req, &l)) < 0 || (r = apply_connection(req)) < 0)
        return r;
    return (long)(pos + 2);
}

const char *pg_http_request_header(const pg_http_request *req, const char *name, size_t *len)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (name_is(&req->headers[i], name)) {
            if (len != NULL)
                *len = req->headers[i].value_len;
            return req->headers[i].value;
        }
    }
    return NULL;
}

/* ---- chunked transfer coding (RFC 9112 7.1) ---- */

void pg_http_chunked_init(pg_http_chunked *dec, uint64_t max_body, size_t max_line)
{
    memset(dec, 0, sizeof *dec);
    dec->max_body = max_body;
    dec->max_line = max_line;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* chunk-size [ chunk-ext ] CRLF; chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ).
 * Extensions are ignored but must hold no control characters. */
static long chunk_size_line(pg_http_chunked *dec, const char *p, size_t n)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < n && hex_value(p[i]) >= 0) {
        if (i == MAX_CHUNK_DIGITS)
            return -400;
        v = v * 16 + (uint64_t)hex_value(p[i]);
        i++;
    }
    if (i == 0)
        return -400;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i < n && p[i] != ';')
        return -400;
    for (; i < n; i++) {
        if (!is_field_vchar((unsigned char)p[i]))
            return -400;
    }
    uint64_t max = dec->max_body != 0 ? dec->max_body : DEFAULT_MAX_BODY;
    if (v > max || dec->total + v > max)
        return -413;
    dec->remaining = v;
    dec->state = v == 0 ? PG_CHUNK_TRAILER : PG_CHUNK_DATA;
    return 0;
}

long pg_http_chunked_feed(pg_http_chunked *dec, const char *buf, size_t len, char *out,
                          size_t *out_len)
{
    size_t pos = 0, eol = 0, max_line = dec->max_line != 0 ? dec->max_line : DEFAULT_MAX_LINE;
    *out_len = 0;
    while (pos < len && dec->state != PG_CHUNK_DONE) {
        if (dec->state == PG_CHUNK_DATA) {
            size_t n = len - pos;
            if ((uint64_t)n > dec->remaining)
                n = (size_t)dec->remaining;
            memmove(out + *out_len, buf + pos, n);
            *out_len += n;
            pos += n;
            dec->remaining -= n;
            dec->total += n;
            if (dec->remaining == 0)
                dec->state = PG_CHUNK_DATA_END;
            continue;
        }
        long r = find_line(buf, len, pos, max_line, &eol);
        if (r == 0)
            break;
        if (r < 0)
            return -400;
        if (dec->state == PG_CHUNK_DATA_END) {
            if (eol != pos)
                return -400; /* chunk data longer than its size said */
            dec->state = PG_CHUNK_SIZE;
        } else if (dec->state == PG_CHUNK_SIZE) {
            if ((r = chunk_size_line(dec, buf + pos, eol - pos)) < 0)
                return r;
        } else if (eol == pos) {
            dec->state = PG_CHUNK_DONE; /* the empty line after the trailer section */
        } else {
            pg_http_header h;
            if (++dec->trailers > MAX_TRAILERS || parse_field(buf + pos, eol - pos, &h) < 0)
                return -400;
        }
        pos = eol + 2;
    }
    return (long)pos;
}

const char *pg_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}
