/*
 * http_server_exchange.c - the HTTP server's connections and exchanges: a request copied
 * out of the input, handed to the handler, and its answer serialized (RFC 9112 4, 6) and
 * brought back to the loop, on the loop thread at once or from another thread through the
 * completion queue and the eventfd. Part of http_server.c, split for size.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/http_server_int.h"

static void terminate_pieces(pg_http_exchange *ex);
static int on_loop_thread(const pg_http_server *srv);

pg_http_conn *pg_http_conn_new(pg_http_server *srv, int fd, const struct sockaddr_storage *ss)
{
    pg_http_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->srv = srv;
    c->fd = fd;
    pg_buf_init(&c->in);
    pg_buf_init(&c->out);
    c->last_active = srv->now != 0 ? srv->now : pg_http_now_ms();
    if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, c->peer, sizeof c->peer);
    else
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, c->peer, sizeof c->peer);
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    return c;
}

void pg_http_conn_unlink(pg_http_conn *c)
{
    pg_http_server *srv = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->nconns--;
    /* Requests the handler still holds become orphans: their answer is dropped when it
     * comes. Answers already waiting here are freed now (unless still queued). */
    pg_http_exchange *ex = c->first, *next;
    for (; ex != NULL; ex = next) {
        next = ex->next;
        pthread_mutex_lock(&srv->lock);
        ex->conn = NULL;
        int free_now = ex->done && !ex->queued;
        pthread_mutex_unlock(&srv->lock);
        if (free_now)
            pg_http_exchange_free(ex);
    }
    c->first = c->last = NULL;
    c->inflight = 0;
    c->prev = NULL;
    c->next = srv->dead;
    srv->dead = c;
}

void pg_http_free_dead(pg_http_server *srv)
{
    while (srv->dead != NULL) {
        pg_http_conn *c = srv->dead;
        srv->dead = c->next;
        pg_buf_cleanup(&c->in);
        pg_buf_cleanup(&c->out);
        free(c);
    }
}

/* Writes NULs after the method, the path, the query and each field value in the copy, so
 * that they can be handed out as C strings; the parse result keeps its lengths. */
static void terminate_pieces(pg_http_exchange *ex)
{
    pg_http_request *r = &ex->req;
    char *d = ex->data;
    ex->method = r->method;
    d[r->method_len] = '\0';
    ex->path = r->path;
    if (r->path >= d && r->path < d + (r->target - d) + r->target_len)
        ((char *)r->path)[r->path_len] = '\0';
    ((char *)r->target)[r->target_len] = '\0';
    ex->query = r->query;
    for (size_t i = 0; i < r->nheaders; i++)
        ((char *)r->headers[i].value)[r->headers[i].value_len] = '\0';
}

/* p, a pointer into the head at from (len octets), moved to the same place in the copy at
 * to; a pointer elsewhere (the parser's "/" for an absolute-form without a path) stays. */
static const char *rebase(const char *p, const char *from, size_t len, char *to)
{
    return p != NULL && p >= from && p < from + len ? to + (p - from) : p;
}

/* The parse result of the head at from, its pointers moved into the copy at to: only the
 * fields used (the request has room for 128 header fields; copying or zeroing all of
 * them cost more than the rest of the exchange). */
static void rebase_request(pg_http_request *r, const pg_http_request *parsed, const char *from,
                           size_t n, char *to)
{
    memcpy(r, parsed, offsetof(pg_http_request, headers));
    r->method = rebase(parsed->method, from, n, to);
    r->target = rebase(parsed->target, from, n, to);
    r->path = rebase(parsed->path, from, n, to);
    r->query = rebase(parsed->query, from, n, to);
    for (size_t i = 0; i < parsed->nheaders; i++) {
        r->headers[i] = parsed->headers[i];
        r->headers[i].name = rebase(parsed->headers[i].name, from, n, to);
        r->headers[i].value = rebase(parsed->headers[i].value, from, n, to);
    }
    r->nheaders = parsed->nheaders;
    r->content_length = parsed->content_length;
    r->has_length = parsed->has_length;
    r->chunked = parsed->chunked;
    r->keep_alive = parsed->keep_alive;
    r->expect_continue = parsed->expect_continue;
}

pg_http_exchange *pg_http_exchange_new(pg_http_conn *c, const char *head, size_t head_len,
                                       const char *body, size_t body_len,
                                       const pg_http_request *parsed)
{
    /* Zeroed but for the request's header array (filled up to nheaders below). */
    pg_http_exchange *ex = malloc(sizeof *ex);
    if (ex == NULL)
        return NULL;
    memset(ex, 0, offsetof(pg_http_exchange, req) + offsetof(pg_http_request, headers));
    memset(&ex->req.nheaders, 0, sizeof *ex - offsetof(pg_http_exchange, req.nheaders));
    ex->srv = c->srv;
    ex->conn = c;
    memcpy(ex->peer, c->peer, sizeof ex->peer);
    ex->data = malloc(head_len + body_len + 2);
    if (ex->data == NULL) {
        free(ex);
        return NULL;
    }
    if (head_len > 0)
        memcpy(ex->data, head, head_len);
    ex->data[head_len] = '\0';
    if (body_len > 0)
        memcpy(ex->data + head_len + 1, body, body_len);
    ex->data[head_len + 1 + body_len] = '\0';
    ex->body = ex->data + head_len + 1;
    ex->body_len = body_len;
    ex->method = ex->path = "";
    if (head == NULL)
        return ex;
    /* The same bytes parsed before: the pointers now point into our own copy. */
    if (parsed != NULL)
        rebase_request(&ex->req, parsed, head, head_len, ex->data);
    else if (pg_http_parse_request(ex->data, head_len, &c->srv->limits, &ex->req) <= 0) {
        pg_http_exchange_free(ex);
        return NULL;
    }
    ex->keep_alive = ex->req.keep_alive && !__atomic_load_n(&c->srv->stopping, __ATOMIC_ACQUIRE);
    ex->is_head = ex->req.method_len == 4 && memcmp(ex->req.method, "HEAD", 4) == 0;
    terminate_pieces(ex);
    return ex;
}

void pg_http_exchange_link(pg_http_conn *c, pg_http_exchange *ex)
{
    if (c->last != NULL)
        c->last->next = ex;
    else
        c->first = ex;
    c->last = ex;
    c->inflight++;
}

void pg_http_exchange_free(pg_http_exchange *ex)
{
    if (ex == NULL)
        return;
    free(ex->data);
    free(ex->resp);
    free(ex);
}

int pg_http_exchange_ready(pg_http_exchange *ex)
{
    pthread_mutex_lock(&ex->srv->lock);
    int ready = ex->done && !ex->queued;
    pthread_mutex_unlock(&ex->srv->lock);
    return ready;
}

void pg_http_dispatch(pg_http_conn *c, pg_http_exchange *ex)
{
    pg_http_exchange_link(c, ex);
    ex->in_handler = 1;
    c->srv->handler(c->srv->handler_arg, ex);
    ex->in_handler = 0;
    if (c->fd >= 0)
        pg_http_flush_ready(c);
}

static int on_loop_thread(const pg_http_server *srv)
{
    return !srv->started || pthread_equal(pthread_self(), srv->thread);
}

/* ---- the exchange's public face ---- */

const char *pg_http_exchange_method(const pg_http_exchange *ex)
{
    return ex->method;
}

const char *pg_http_exchange_path(const pg_http_exchange *ex)
{
    return ex->path;
}

const char *pg_http_exchange_query(const pg_http_exchange *ex)
{
    return ex->query;
}

const char *pg_http_exchange_header(const pg_http_exchange *ex, const char *name)
{
    return pg_http_request_header(&ex->req, name, NULL);
}

const char *pg_http_exchange_body(const pg_http_exchange *ex, size_t *len)
{
    if (len != NULL)
        *len = ex->body_len;
    return ex->body;
}

const char *pg_http_exchange_peer(const pg_http_exchange *ex)
{
    return ex->peer;
}

/* RFC 9110 5.6.7: IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT". */
static void http_date(char *out, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, size, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static char *serialize(const pg_http_exchange *ex, int status, const char *content_type,
                       const char *extra, const void *body, size_t len, size_t *out_len)
{
    char date[40];
    pg_buf b;
    pg_buf_init(&b);
    http_date(date, sizeof date);
    pg_buf_printf(&b, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, pg_http_reason(status), date);
    if (content_type != NULL)
        pg_buf_printf(&b, "Content-Type: %s\r\n", content_type);
    if (extra != NULL)
        pg_buf_puts(&b, extra);
    if (status != 204 && status != 304)
        pg_buf_printf(&b, "Content-Length: %zu\r\n", len);
    if (!ex->keep_alive)
        pg_buf_puts(&b, "Connection: close\r\n");
    else if (ex->req.minor == 0)
        pg_buf_puts(&b, "Connection: keep-alive\r\n");
    pg_buf_puts(&b, "\r\n");
    if (!ex->is_head && status != 204 && status != 304 && len > 0)
        pg_buf_append(&b, body, len);
    return pg_buf_detach(&b, out_len);
}

void pg_http_respond(pg_http_exchange *ex, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t len)
{
    pg_http_server *srv = ex->srv;
    ex->resp = serialize(ex, status, content_type, extra_headers, body, len, &ex->resp_len);
    if (on_loop_thread(srv)) {
        pthread_mutex_lock(&srv->lock);
        ex->done = 1;
        pg_http_conn *c = ex->conn;
        pthread_mutex_unlock(&srv->lock);
        if (c == NULL)
            pg_http_exchange_free(ex);
        else if (!ex->in_handler)
            pg_http_flush_ready(c);
        return;
    }
    pthread_mutex_lock(&srv->lock);
    ex->done = 1;
    ex->queued = 1;
    int wake = srv->completed == NULL;
    ex->done_next = srv->completed;
    srv->completed = ex;
    pthread_mutex_unlock(&srv->lock);
    if (wake) {
        uint64_t one = 1;
        if (write(srv->wake_fd, &one, sizeof one) < 0) {
            /* the counter is full: the loop is awake anyway */
        }
    }
}
