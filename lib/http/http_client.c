/*
 * http_client.c - the HTTP/1.1 client's I/O (see http_client.h): one kept connection,
 * a request written in two writes (head, body), the response read with a deadline and
 * framed by RFC 9112 6.3: no body for 1xx, 204 and 304; chunked; Content-Length; else up
 * to the connection's close.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_client.h"
#include "http/http_parse.h"
#include "net/conn.h"
#include "net/wait.h"
#include "util/buf.h"

#define HEAD_MAX 32768 /* octets of a response head */

struct pg_http_client {
    pg_http_client_opts o; /* settings, defaults filled in */
    pg_conn *conn;         /* the kept connection, or NULL */
    int tls;               /* it is TLS */
    char host[256];        /* to this host */
    uint16_t port;         /* and port */
    char in[HEAD_MAX];     /* bytes read and not yet consumed */
    size_t in_len;         /* how many */
};

static pigeon_err say(char *err, size_t errlen, pigeon_err e, const char *fmt, const char *arg)
{
    snprintf(err, errlen, fmt, arg != NULL ? arg : "");
    return e;
}

pg_http_client *pg_http_client_new(const pg_http_client_opts *opts)
{
    pg_http_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (opts != NULL)
        c->o = *opts;
    if (c->o.connect_timeout_ms <= 0)
        c->o.connect_timeout_ms = 10000;
    if (c->o.timeout_ms <= 0)
        c->o.timeout_ms = 30000;
    if (c->o.max_body == 0)
        c->o.max_body = 65536;
    return c;
}

static void drop(pg_http_client *c)
{
    pg_conn_close(c->conn);
    c->conn = NULL;
    c->in_len = 0;
}

void pg_http_client_free(pg_http_client *c)
{
    if (c == NULL)
        return;
    drop(c);
    free(c);
}

void pg_http_response_cleanup(pg_http_response *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

/* Opens (and with https, verifies) a connection to url unless the kept one goes there. */
static pigeon_err connect_to(pg_http_client *c, const pg_http_url *url, int64_t deadline, char *err,
                             size_t errlen)
{
    if (c->conn != NULL && c->tls == url->tls && c->port == url->port &&
        strcmp(c->host, url->host) == 0)
        return PIGEON_OK;
    drop(c);
    pigeon_err e = pg_conn_open(&c->conn, url->host, url->port, c->o.connect_timeout_ms, deadline,
                                NULL, NULL, err, errlen);
    if (e != PIGEON_OK)
        return e;
    if (url->tls) {
        pg_tls_opts t = {.server_name = url->host, .ca_file = c->o.ca_file};
        e = pg_conn_starttls(c->conn, &t, deadline);
        if (e != PIGEON_OK) {
            snprintf(err, errlen, "%s", pg_conn_error(c->conn));
            drop(c);
            return e;
        }
    }
    c->tls = url->tls;
    c->port = url->port;
    snprintf(c->host, sizeof c->host, "%s", url->host);
    return PIGEON_OK;
}

static int clean_field(const char *s, int name)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\r' || ch == '\n' || (name && (ch <= ' ' || ch == ':')))
            return 0;
    }
    return 1;
}

/* The request head into b. */
static pigeon_err build_head(pg_buf *b, const pg_http_url *url, const pg_http_field *fields,
                             size_t nfields, size_t len, char *err, size_t errlen)
{
    pigeon_err e = pg_buf_printf(b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n",
                                 url->path, url->authority, len);
    for (size_t i = 0; e == PIGEON_OK && i < nfields; i++) {
        if (fields[i].name == NULL || fields[i].value == NULL || fields[i].name[0] == '\0' ||
            !clean_field(fields[i].name, 1) || !clean_field(fields[i].value, 0))
            return say(err, errlen, PIGEON_ERR_INVALID, "a header field with CR, LF or bad name%s",
                       NULL);
        e = pg_buf_printf(b, "%s: %s\r\n", fields[i].name, fields[i].value);
    }
    if (e == PIGEON_OK)
        e = pg_buf_puts(b, "\r\n");
    return e != PIGEON_OK ? say(err, errlen, e, "out of memory%s", NULL) : PIGEON_OK;
}

/* Reads more bytes into c->in. */
static pigeon_err more(pg_http_client *c, int64_t deadline, char *err, size_t errlen)
{
    size_t n = 0;
    if (c->in_len == sizeof c->in)
        return say(err, errlen, PIGEON_ERR_PROTOCOL, "response line or head too long%s", NULL);
    pigeon_err e = pg_conn_read(c->conn, c->in + c->in_len, sizeof c->in - c->in_len, &n, deadline);
    if (e != PIGEON_OK)
        return say(err, errlen, e, "%s", pg_conn_error(c->conn));
    c->in_len += n;
    return PIGEON_OK;
}

static void consume(pg_http_client *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* Appends n body octets, within max_body. */
static pigeon_err keep(pg_http_client *c, pg_http_response *r, const char *p, size_t n, char *err,
                       size_t errlen)
{
    if (r->body_len + n > c->o.max_body)
        return say(err, errlen, PIGEON_ERR_TOO_LARGE, "response body over the limit%s", NULL);
    char *grown = realloc(r->body, r->body_len + n + 1);
    if (grown == NULL)
        return say(err, errlen, PIGEON_ERR_NOMEM, "out of memory%s", NULL);
    r->body = grown;
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return PIGEON_OK;
}

static pigeon_err body_chunked(pg_http_client *c, pg_http_response *r, int64_t deadline, char *err,
                               size_t errlen)
{
    pg_http_chunked dec;
    pg_http_chunked_init(&dec, c->o.max_body, 8192);
    /* On the heap, per response: a static _Thread_local buffer this size was 32 KB that
     * every pigeon process (and thread) zeroed at start-up, webhooks or not. */
    char *out = malloc(HEAD_MAX);
    if (out == NULL)
        return say(err, errlen, PIGEON_ERR_NOMEM, "out of memory%s", NULL);
    pigeon_err e;
    for (;;) {
        size_t out_len = 0;
        long used = c->in_len > 0 ? pg_http_chunked_feed(&dec, c->in, c->in_len, out, &out_len) : 0;
        if (used < 0) {
            e = say(err, errlen, used == -413 ? PIGEON_ERR_TOO_LARGE : PIGEON_ERR_PROTOCOL,
                    "a malformed chunked body%s", NULL);
            break;
        }
        if ((e = keep(c, r, out, out_len, err, errlen)) != PIGEON_OK)
            break;
        consume(c, (size_t)used);
        if (dec.state == PG_CHUNK_DONE)
            break;
        if ((e = more(c, deadline, err, errlen)) != PIGEON_OK)
            break;
    }
    free(out);
    return e;
}

static pigeon_err body_sized(pg_http_client *c, pg_http_response *r, uint64_t length,
                             int64_t deadline, char *err, size_t errlen)
{
    if (length > c->o.max_body)
        return say(err, errlen, PIGEON_ERR_TOO_LARGE, "response body over the limit%s", NULL);
    while (r->body_len < length) {
        if (c->in_len == 0) {
            pigeon_err e = more(c, deadline, err, errlen);
            if (e != PIGEON_OK)
                return e;
        }
        size_t take =
            (size_t)(length - r->body_len) < c->in_len ? (size_t)(length - r->body_len) : c->in_len;
        pigeon_err e = keep(c, r, c->in, take, err, errlen);
        if (e != PIGEON_OK)
            return e;
        consume(c, take);
    }
    if (r->body == NULL)
        return keep(c, r, "", 0, err, errlen);
    return PIGEON_OK;
}

/* Reads to the close of the connection (a response with neither length nor chunks). */
static pigeon_err body_to_close(pg_http_client *c, pg_http_response *r, int64_t deadline, char *err,
                                size_t errlen)
{
    for (;;) {
        pigeon_err e = keep(c, r, c->in, c->in_len, err, errlen);
        if (e != PIGEON_OK)
            return e;
        c->in_len = 0;
        size_t n = 0;
        e = pg_conn_read(c->conn, c->in, sizeof c->in, &n, deadline);
        if (e == PIGEON_ERR_NETWORK)
            return PIGEON_OK; /* the close ends the body */
        if (e != PIGEON_OK)
            return say(err, errlen, e, "%s", pg_conn_error(c->conn));
        c->in_len = n;
    }
}

static void copy_printable(char *out, size_t cap, const char *p, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < cap; i++)
        out[j++] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
    out[j] = '\0';
}

/* Reads one whole response; *keep_alive says whether the connection may be used again. */
static pigeon_err read_response(pg_http_client *c, pg_http_response *r, int64_t deadline,
                                int *keep_alive, char *err, size_t errlen)
{
    pg_http_response_head h;
    for (;;) {
        long used = pg_http_parse_response(c->in, c->in_len, HEAD_MAX, &h);
        if (used < 0)
            return say(err, errlen, PIGEON_ERR_PROTOCOL, "a malformed response head%s", NULL);
        if (used == 0) {
            pigeon_err e = more(c, deadline, err, errlen);
            if (e != PIGEON_OK)
                return e;
            continue;
        }
        r->status = h.status;
        copy_printable(r->reason, sizeof r->reason, h.reason, h.reason_len);
        if (h.location != NULL)
            copy_printable(r->location, sizeof r->location, h.location, h.location_len);
        consume(c, (size_t)used);
        if (h.status >= 200)
            break;
        /* 1xx: an interim response; the final one follows (RFC 9110 15.2). */
    }
    *keep_alive = h.keep_alive;
    if (h.status == 204 || h.status == 304)
        return keep(c, r, "", 0, err, errlen);
    if (h.chunked)
        return body_chunked(c, r, deadline, err, errlen);
    if (h.has_length)
        return body_sized(c, r, h.content_length, deadline, err, errlen);
    *keep_alive = 0;
    return body_to_close(c, r, deadline, err, errlen);
}

/* One try: connect if needed, send the request (head and body in head), read. */
static pigeon_err attempt(pg_http_client *c, const pg_http_url *url, const pg_buf *head,
                          pg_http_response *r, int64_t deadline, char *err, size_t errlen)
{
    int keep_alive = 0;
    pigeon_err e = connect_to(c, url, deadline, err, errlen);
    if (e != PIGEON_OK)
        return e;
    c->in_len = 0;
    /* One write for head and body: two would meet Nagle's algorithm on one side and the
     * delayed ACK on the other (tens of milliseconds per request). */
    e = pg_conn_write(c->conn, head->data, head->len, deadline);
    if (e != PIGEON_OK)
        return say(err, errlen, e, "%s", pg_conn_error(c->conn));
    e = read_response(c, r, deadline, &keep_alive, err, errlen);
    if (e != PIGEON_OK || !keep_alive)
        drop(c);
    return e;
}

pigeon_err pg_http_client_post(pg_http_client *c, const pg_http_url *url,
                               const pg_http_field *fields, size_t nfields, const void *body,
                               size_t len, pg_http_response *resp, char *err, size_t errlen)
{
    pg_buf head;
    if (c == NULL || url == NULL || resp == NULL || (body == NULL && len > 0))
        return PIGEON_ERR_INVALID;
    memset(resp, 0, sizeof *resp);
    err[0] = '\0';
    pg_buf_init(&head);
    int64_t deadline = pg_now_ms() + c->o.timeout_ms;
    pigeon_err e = build_head(&head, url, fields, nfields, len, err, errlen);
    if (e == PIGEON_OK && len > 0 && pg_buf_append(&head, body, len) != PIGEON_OK)
        e = say(err, errlen, PIGEON_ERR_NOMEM, "out of memory%s", NULL);
    if (e == PIGEON_OK) {
        int reused = c->conn != NULL;
        e = attempt(c, url, &head, resp, deadline, err, errlen);
        /* A kept connection the server closed while idle fails before any answer: the
         * request is sent again once on a new connection (RFC 9112 9.3.1 allows it for a
         * request the server never answered). */
        if (reused && (e == PIGEON_ERR_NETWORK) && resp->status == 0) {
            pg_http_response_cleanup(resp);
            drop(c);
            e = attempt(c, url, &head, resp, deadline, err, errlen);
        } else
            resp->reused = reused;
    }
    pg_buf_cleanup(&head);
    return e;
}
