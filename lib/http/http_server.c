/*
 * http_server.c - the HTTP/1.1 server: one epoll loop, persistent and pipelined
 * connections (RFC 9112 9.3), deadlines, closed-peer detection, a connection cap with
 * eviction, optional TLS, and answers completed from any thread through an eventfd.
 * See http_server.h for the contract; the exchange (request copy and response) lives in
 * http_server_exchange.c.
 */
#define _GNU_SOURCE /* accept4 */
#include "http/http_server_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_REQUEST_TIMEOUT 10000
#define DEFAULT_IDLE_TIMEOUT    30000
#define DEFAULT_MAX_PIPELINE    32
#define READ_CHUNK              16384   /* octets asked of each read */
#define OUT_HIGH_WATER          1048576 /* stop reading while this much waits to be sent */
#define LINGER_MS               2000    /* reading and discarding after our last response */
#define SWEEP_MS                200     /* how often deadlines are checked */
#define MAX_EVENTS              256

static const char CONTINUE_100[] = "HTTP/1.1 100 Continue\r\n\r\n";
static const char TIMEOUT_408[] =
    "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

static pigeon_err parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sl);
static pigeon_err open_listener(pg_http_server *srv, const char *listen, char *errmsg,
                                size_t errlen);
static void *loop(void *arg);
static void accept_all(pg_http_server *srv);
static pg_http_conn *evict_victim(pg_http_server *srv);
static void conn_event(pg_http_conn *c, uint32_t events);
static void conn_readable(pg_http_conn *c);
static void conn_linger_read(pg_http_conn *c);
static int conn_paused(const pg_http_conn *c);
static void process_input(pg_http_conn *c);
static void process_requests(pg_http_conn *c);
static int take_body(pg_http_conn *c, const char *p, size_t avail, size_t *consumed);
static void fail_request(pg_http_conn *c, int status);
static const char *framing_detail(int status);
static void conn_write(pg_http_conn *c);
static void conn_update(pg_http_conn *c);
static void conn_close(pg_http_conn *c);
static void sweep(pg_http_server *srv);
static void drain_completions(pg_http_server *srv);

int64_t pg_http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- listening ---- */

/* "host:port" or "[v6]:port", numeric host, into *ss. */
static pigeon_err parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[64];
    const char *port_text;
    size_t host_len;
    int v6 = listen != NULL && listen[0] == '[';
    if (listen == NULL)
        return PIGEON_ERR_INVALID;
    if (v6) {
        const char *end = strchr(listen, ']');
        if (end == NULL || end[1] != ':')
            return PIGEON_ERR_INVALID;
        host_len = (size_t)(end - listen - 1);
        port_text = end + 2;
        if (host_len >= sizeof host)
            return PIGEON_ERR_INVALID;
        memcpy(host, listen + 1, host_len);
    } else {
        const char *colon = strrchr(listen, ':');
        if (colon == NULL || memchr(listen, ':', (size_t)(colon - listen)) != NULL)
            return PIGEON_ERR_INVALID;
        host_len = (size_t)(colon - listen);
        port_text = colon + 1;
        if (host_len >= sizeof host)
            return PIGEON_ERR_INVALID;
        memcpy(host, listen, host_len);
    }
    host[host_len] = '\0';
    unsigned port = 0;
    size_t i = 0;
    for (; port_text[i] != '\0'; i++) {
        if (port_text[i] < '0' || port_text[i] > '9' || i >= 5)
            return PIGEON_ERR_INVALID;
        port = port * 10 + (unsigned)(port_text[i] - '0');
    }
    if (host_len == 0 || i == 0 || port > 65535)
        return PIGEON_ERR_INVALID;
    memset(ss, 0, sizeof *ss);
    if (v6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *sl = sizeof *sin6;
        return inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1 ? PIGEON_OK : PIGEON_ERR_INVALID;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    *sl = sizeof *sin;
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? PIGEON_OK : PIGEON_ERR_INVALID;
}

static pigeon_err open_listener(pg_http_server *srv, const char *addr, char *errmsg, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    if (parse_listen(addr, &ss, &sl) != PIGEON_OK) {
        snprintf(errmsg, errlen, "not a numeric ADDRESS:PORT: %s", addr ? addr : "(none)");
        return PIGEON_ERR_INVALID;
    }
    int one = 1;
    srv->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv->listen_fd < 0)
        goto fail;
    setsockopt(srv->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(srv->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(srv->listen_fd, (struct sockaddr *)&ss, sl) != 0 ||
        listen(srv->listen_fd, SOMAXCONN) != 0)
        goto fail;
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(srv->listen_fd, (struct sockaddr *)&bound, &bl) != 0)
        goto fail;
    srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    return PIGEON_OK;
fail:
    snprintf(errmsg, errlen, "cannot listen on %s: %s", addr, strerror(errno));
    return PIGEON_ERR_NETWORK;
}

pigeon_err pg_http_server_new(const pg_http_server_opts *opts, pg_http_server **out, char *errmsg,
                              size_t errlen)
{
    char scratch[8];
    if (errmsg == NULL || errlen == 0) {
        errmsg = scratch;
        errlen = sizeof scratch;
    }
    errmsg[0] = '\0';
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (opts == NULL || opts->handler == NULL ||
        (opts->tls_cert == NULL) != (opts->tls_key == NULL))
        return PIGEON_ERR_INVALID;
    pg_http_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return PIGEON_ERR_NOMEM;
    pigeon_err err = PIGEON_ERR_NOMEM;
    srv->listen_fd = srv->epoll_fd = srv->wake_fd = -1;
    srv->handler = opts->handler;
    srv->handler_arg = opts->handler_arg;
    srv->limits = opts->limits;
    srv->max_connections = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNECTIONS;
    srv->request_timeout =
        opts->request_timeout_ms ? opts->request_timeout_ms : DEFAULT_REQUEST_TIMEOUT;
    srv->idle_timeout = opts->idle_timeout_ms ? opts->idle_timeout_ms : DEFAULT_IDLE_TIMEOUT;
    srv->max_pipeline = opts->max_pipeline ? opts->max_pipeline : DEFAULT_MAX_PIPELINE;
    srv->problem_errors = opts->problem_errors;
    pthread_mutex_init(&srv->lock, NULL);
    if ((err = open_listener(srv, opts->listen, errmsg, errlen)) != PIGEON_OK)
        goto fail;
    if (opts->tls_cert != NULL) {
        srv->tls = pg_http_tls_ctx_new(opts->tls_cert, opts->tls_key, errmsg, errlen);
        if (srv->tls == NULL) {
            err = PIGEON_ERR_TLS;
            goto fail;
        }
    }
    err = PIGEON_ERR_NETWORK;
    srv->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    srv->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->epoll_fd < 0 || srv->wake_fd < 0)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &srv->listen_fd};
    if (epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, srv->listen_fd, &ev) != 0)
        goto fail;
    ev.data.ptr = &srv->wake_fd;
    if (epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, srv->wake_fd, &ev) != 0)
        goto fail;
    *out = srv;
    return PIGEON_OK;
fail:
    if (err == PIGEON_ERR_NETWORK && errmsg[0] == '\0')
        snprintf(errmsg, errlen, "cannot set up the event loop: %s", strerror(errno));
    pg_http_server_free(srv);
    return err;
}

unsigned pg_http_server_port(const pg_http_server *srv)
{
    return srv != NULL ? srv->port : 0;
}

pigeon_err pg_http_server_start(pg_http_server *srv)
{
    if (srv == NULL || srv->started)
        return PIGEON_ERR_STATE;
    if (pthread_create(&srv->thread, NULL, loop, srv) != 0)
        return PIGEON_ERR_NOMEM;
    srv->started = 1;
    return PIGEON_OK;
}

void pg_http_server_free(pg_http_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->started) {
        __atomic_store_n(&srv->stopping, 1, __ATOMIC_RELEASE);
        uint64_t one = 1;
        if (write(srv->wake_fd, &one, sizeof one) < 0) {
            /* the counter is full, so the loop is woken anyway */
        }
        pthread_join(srv->thread, NULL);
    }
    while (srv->conns != NULL)
        conn_close(srv->conns);
    pg_http_free_dead(srv);
    drain_completions(srv);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    if (srv->epoll_fd >= 0)
        close(srv->epoll_fd);
    if (srv->wake_fd >= 0)
        close(srv->wake_fd);
    pg_http_tls_ctx_free(srv->tls);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

/* ---- the loop ---- */

static void *loop(void *arg)
{
    pg_http_server *srv = arg;
    struct epoll_event events[MAX_EVENTS];
    int64_t next_sweep = pg_http_now_ms() + SWEEP_MS;
    while (!__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE)) {
        /* Deadlines belong to connections: with none open, wait for the next one (or
         * the wake-up of pg_http_server_free) instead of waking 5 times a second. */
        int n = epoll_wait(srv->epoll_fd, events, MAX_EVENTS, srv->conns != NULL ? SWEEP_MS : -1);
        srv->now = pg_http_now_ms();
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == &srv->listen_fd)
                accept_all(srv);
            else if (tag == &srv->wake_fd)
                drain_completions(srv);
            else
                conn_event(tag, events[i].events);
        }
        if (srv->now >= next_sweep) {
            sweep(srv);
            next_sweep = srv->now + SWEEP_MS;
        }
        pg_http_free_dead(srv);
    }
    return NULL;
}

static void accept_all(pg_http_server *srv)
{
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(srv->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            pg_http_conn *victim = NULL;
            if ((errno == EMFILE || errno == ENFILE) && (victim = evict_victim(srv)) != NULL) {
                conn_close(victim); /* frees a descriptor for the next try */
                continue;
            }
            return;
        }
        if (srv->nconns >= srv->max_connections) {
            pg_http_conn *victim = evict_victim(srv);
            if (victim == NULL) {
                close(fd);
                continue;
            }
            conn_close(victim);
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pg_http_conn *c = pg_http_conn_new(srv, fd, &ss);
        if (c == NULL) {
            close(fd);
            return;
        }
        if (srv->tls != NULL && (c->tls = pg_http_tls_new(srv->tls, fd)) == NULL) {
            conn_close(c);
            continue;
        }
        if (c->tls != NULL)
            c->req_start = srv->now; /* the handshake runs on the request deadline */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        c->events = ev.events;
        if (epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
            conn_close(c);
    }
}

/* The connection to close to make room: one with nothing in the handler and nothing to
 * send, the one whose current wait began longest ago (a stalled request or an idle
 * keep-alive). NULL when every connection is busy with the handler. */
static pg_http_conn *evict_victim(pg_http_server *srv)
{
    pg_http_conn *best = NULL;
    int64_t best_since = 0;
    for (pg_http_conn *c = srv->conns; c != NULL; c = c->next) {
        if (c->inflight > 0 || c->out.len > c->out_off)
            continue;
        int64_t since = c->req_start != 0 ? c->req_start : c->last_active;
        if (best == NULL || since < best_since) {
            best = c;
            best_since = since;
        }
    }
    return best;
}

static void conn_event(pg_http_conn *c, uint32_t events)
{
    if (c->fd < 0)
        return; /* closed earlier in this round */
    if (events & EPOLLERR) {
        conn_close(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
        if (c->lingering)
            conn_linger_read(c);
        else
            conn_readable(c);
    }
    if (c->fd >= 0 && (events & EPOLLHUP) && c->fd >= 0) {
        conn_close(c); /* both directions are gone: nobody can read an answer */
        return;
    }
    if (c->fd >= 0 && (events & EPOLLOUT)) {
        if (c->read_wants_write) {
            c->read_wants_write = 0;
            conn_readable(c);
        }
        if (c->fd >= 0)
            conn_write(c);
    }
}

static int conn_paused(const pg_http_conn *c)
{
    return c->closing || c->no_more || c->peer_eof || c->inflight >= c->srv->max_pipeline ||
           c->out.len - c->out_off > OUT_HIGH_WATER;
}

/* Reads what the socket holds (or until paused), parsing as it goes. */
static void conn_readable(pg_http_conn *c)
{
    pg_http_server *srv = c->srv;
    while (!conn_paused(c)) {
        if (c->in_off > 0 && c->head_len == 0) {
            memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
            c->in.len -= c->in_off;
            c->in_off = 0;
        }
        if (pg_buf_reserve(&c->in, READ_CHUNK) != PIGEON_OK) {
            conn_close(c);
            return;
        }
        ssize_t n;
        int want_write = 0;
        if (c->tls != NULL) {
            n = pg_http_tls_read(c->tls, c->in.data + c->in.len, READ_CHUNK, &want_write);
            if (n == PG_HTTP_TLS_AGAIN)
                c->read_wants_write = want_write;
        } else {
            n = read(c->fd, c->in.data + c->in.len, READ_CHUNK);
            if (n < 0)
                n = errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? PG_HTTP_TLS_AGAIN
                                                                              : PG_HTTP_TLS_ERROR;
        }
        if (n == PG_HTTP_TLS_AGAIN)
            break;
        if (n == PG_HTTP_TLS_ERROR) {
            conn_close(c);
            return;
        }
        if (n == 0) {
            c->peer_eof = 1;
            break;
        }
        c->in.len += (size_t)n;
        c->in.data[c->in.len] = '\0';
        c->last_active = srv->now;
        if (c->req_start == 0)
            c->req_start = srv->now; /* the first octet of a request starts its clock */
        process_input(c);
        if (c->fd < 0)
            return;
        if (c->tls == NULL && (size_t)n < READ_CHUNK)
            break; /* the socket is drained; epoll says when more comes */
    }
    if (c->peer_eof) {
        /* RFC 9112 9.6: a peer that closed (or half-closed) its side sends no more. What
         * it left unfinished will never complete: close now rather than at a deadline.
         * Complete requests it sent are still answered. */
        if (c->in.len > c->in_off || (c->inflight == 0 && c->out.len == c->out_off)) {
            conn_close(c);
            return;
        }
    }
    conn_update(c);
}

/* After our last response: read and drop what the client still sends, so that closing
 * does not reset the connection before it has read that response (RFC 9112 9.6). */
static void conn_linger_read(pg_http_conn *c)
{
    char sink[16384];
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(c->fd, sink, sizeof sink);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        conn_close(c); /* the client closed too (or failed): done */
        return;
    }
    /* Still sending: keep draining on the next event, until the linger deadline. */
}

/* Parses and dispatches every complete request in the input, in order. */
static void process_input(pg_http_conn *c)
{
    if (c->busy)
        return; /* a handler answered inside the loop below: it goes on by itself */
    c->busy = 1;
    process_requests(c);
    c->busy = 0;
}

static void process_requests(pg_http_conn *c)
{
    pg_http_server *srv = c->srv;
    while (c->fd >= 0 && !c->closing && !c->no_more && c->inflight < srv->max_pipeline) {
        const char *p = c->in.data + c->in_off;
        size_t avail = c->in.len - c->in_off, consumed = 0;
        if (avail == 0) {
            /* Nothing pending: give the buffer back, so that an idle keep-alive
             * connection costs a few hundred octets, not a read chunk. */
            c->req_start = 0;
            pg_buf_cleanup(&c->in);
            c->in_off = 0;
            return;
        }
        /* The loop's parse result is shared by all connections: it describes this head
         * only when parsed in this pass (else the body came later, and it is parsed
         * again in the copy). */
        int fresh = c->head_len == 0;
        if (c->head_len == 0) {
            long r = pg_http_parse_request(p, avail, &srv->limits, &srv->scratch);
            if (r == 0)
                return;
            if (r < 0) {
                fail_request(c, (int)-r);
                return;
            }
            c->head_len = (size_t)r;
            c->chunked = srv->scratch.chunked;
            c->body_need = srv->scratch.has_length ? srv->scratch.content_length : 0;
            c->body_len = 0;
            c->raw_pos = c->head_len;
            if (c->chunked)
                pg_http_chunked_init(&c->dec, srv->limits.max_body, srv->limits.max_line);
            if (srv->scratch.expect_continue && c->inflight == 0 &&
                (c->chunked || avail < c->head_len + c->body_need))
                pg_buf_append(&c->out, CONTINUE_100, sizeof CONTINUE_100 - 1);
        }
        int r = take_body(c, p, avail, &consumed);
        if (r < 0) {
            fail_request(c, -r);
            return;
        }
        if (r == 0) {
            if (c->out.len > c->out_off)
                conn_write(c); /* a 100 Continue */
            return;
        }
        pg_http_exchange *ex = pg_http_exchange_new(c, c->in.data + c->in_off, c->head_len,
                                                    c->in.data + c->in_off + c->head_len,
                                                    c->body_len, fresh ? &srv->scratch : NULL);
        c->in_off += consumed;
        c->head_len = 0;
        c->req_start = c->in.len > c->in_off ? srv->now : 0;
        if (ex == NULL) {
            conn_close(c);
            return;
        }
        if (!ex->keep_alive)
            c->no_more = 1; /* RFC 9112 9.6: nothing after a request that closes */
        pg_http_dispatch(c, ex);
    }
}

/* 1 when the body of the parsed head is complete (*consumed: the input octets of head and
 * body), 0 when more is needed, or a negative status. Chunked bodies are decoded in place
 * just after the head, so the input never holds more than one copy of the body. */
static int take_body(pg_http_conn *c, const char *p, size_t avail, size_t *consumed)
{
    if (!c->chunked) {
        if (avail - c->head_len < c->body_need)
            return 0;
        c->body_len = (size_t)c->body_need;
        *consumed = c->head_len + c->body_len;
        return 1;
    }
    char *base = c->in.data + c->in_off;
    size_t out = 0;
    long r = pg_http_chunked_feed(&c->dec, base + c->raw_pos, avail - c->raw_pos,
                                  base + c->head_len + c->body_len, &out);
    if (r < 0)
        return (int)r;
    c->body_len += out;
    c->raw_pos += (size_t)r;
    if (c->dec.state == PG_CHUNK_DONE) {
        *consumed = c->raw_pos;
        /* The decoded body now sits before the rest of the input: move the rest down. */
        size_t body_end = c->head_len + c->body_len;
        memmove(base + body_end, base + c->raw_pos, avail - c->raw_pos);
        c->in.len -= c->raw_pos - body_end;
        *consumed = body_end;
        return 1;
    }
    /* Move the undecoded rest right after the decoded body, so memory stays bounded. */
    size_t body_end = c->head_len + c->body_len;
    memmove(base + body_end, base + c->raw_pos, avail - c->raw_pos);
    c->in.len -= c->raw_pos - body_end;
    c->raw_pos = body_end;
    (void)p;
    return 0;
}

/* A request that breaks the syntax or a limit: its status in order after the answers
 * already owed, then the connection closes (what follows cannot be framed). */
static void fail_request(pg_http_conn *c, int status)
{
    char text[256];
    int n;
    c->no_more = 1;
    c->head_len = 0;
    c->in_off = c->in.len;
    pg_http_exchange *ex = pg_http_exchange_new(c, NULL, 0, NULL, 0, NULL);
    if (ex == NULL) {
        conn_close(c);
        return;
    }
    ex->keep_alive = 0;
    pg_http_exchange_link(c, ex);
    if (c->srv->problem_errors) {
        /* RFC 9457 3: the status says what went wrong; the detail which rule it was. */
        n = snprintf(text, sizeof text,
                     "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,"
                     "\"detail\":\"%s\"}\n",
                     pg_http_reason(status), status, framing_detail(status));
        pg_http_respond(ex, status, "application/problem+json", NULL, text, (size_t)n);
        return;
    }
    n = snprintf(text, sizeof text, "%s\n", pg_http_reason(status));
    pg_http_respond(ex, status, "text/plain; charset=utf-8", NULL, text, (size_t)n);
}

/* Which limit or rule of RFC 9112 a refused request broke. */
static const char *framing_detail(int status)
{
    switch (status) {
    case 413:
        return "the request body is over the size this server takes";
    case 414:
        return "the request line is too long";
    case 431:
        return "the request header fields are too many or too long";
    case 501:
        return "Transfer-Encoding other than chunked";
    case 505:
        return "HTTP/1.x only";
    default:
        return "malformed HTTP/1.1 request (RFC 9112)";
    }
}

/* Moves the answers that are ready, in request order, to the output and sends. */
void pg_http_flush_ready(pg_http_conn *c)
{
    while (c->first != NULL && pg_http_exchange_ready(c->first)) {
        pg_http_exchange *ex = c->first;
        c->first = ex->next;
        if (c->first == NULL)
            c->last = NULL;
        c->inflight--;
        if (ex->resp == NULL || pg_buf_append(&c->out, ex->resp, ex->resp_len) != PIGEON_OK)
            c->closing = 1;
        if (!ex->keep_alive)
            c->closing = 1;
        pg_http_exchange_free(ex);
    }
    conn_write(c);
    if (c->fd >= 0 && !conn_paused(c) && c->in.len > c->in_off) {
        process_input(c); /* requests that waited for room in the pipeline */
        if (c->fd >= 0)
            conn_update(c);
    }
}

static void conn_write(pg_http_conn *c)
{
    while (c->out.len > c->out_off) {
        ssize_t n;
        int want_read = 0;
        size_t left = c->out.len - c->out_off;
        if (c->tls != NULL) {
            n = pg_http_tls_write(c->tls, c->out.data + c->out_off, left, &want_read);
        } else {
            n = send(c->fd, c->out.data + c->out_off, left, MSG_NOSIGNAL);
            if (n < 0)
                n = errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? PG_HTTP_TLS_AGAIN
                                                                              : PG_HTTP_TLS_ERROR;
        }
        if (n == PG_HTTP_TLS_AGAIN)
            break;
        if (n < 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
        c->last_active = c->srv->now;
    }
    if (c->out.len == c->out_off) {
        pg_buf_cleanup(&c->out);
        c->out_off = 0;
        if (c->closing && !c->lingering) {
            /* Our last answer is out: half-close, then drain what the client still sends. */
            shutdown(c->fd, SHUT_WR);
            c->lingering = 1;
            c->linger_until = c->srv->now + LINGER_MS;
        } else if (c->peer_eof && c->inflight == 0) {
            conn_close(c);
            return;
        }
    }
    conn_update(c);
}

/* Asks epoll for what the connection now waits for. */
static void conn_update(pg_http_conn *c)
{
    if (c->fd < 0)
        return;
    uint32_t want = 0;
    if (c->lingering)
        want = EPOLLIN | EPOLLRDHUP;
    else if (!conn_paused(c))
        want = EPOLLIN | EPOLLRDHUP;
    if (c->out.len > c->out_off || c->read_wants_write)
        want |= EPOLLOUT;
    if (want == c->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    if (epoll_ctl(c->srv->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        conn_close(c);
        return;
    }
    c->events = want;
    /* Decrypted octets already inside the TLS session raise no epoll event. */
    if ((want & EPOLLIN) && !c->lingering && !c->busy && c->tls != NULL &&
        pg_http_tls_pending(c->tls) > 0)
        conn_readable(c);
}

static void conn_close(pg_http_conn *c)
{
    if (c->fd < 0)
        return;
    pg_http_tls_free(c->tls);
    c->tls = NULL;
    close(c->fd); /* also takes it out of the epoll set */
    c->fd = -1;
    pg_http_conn_unlink(c);
}

/* Closes the connections whose deadline has passed. */
static void sweep(pg_http_server *srv)
{
    pg_http_conn *next;
    for (pg_http_conn *c = srv->conns; c != NULL; c = next) {
        next = c->next;
        int64_t deadline;
        int partial = c->req_start != 0;
        if (c->lingering)
            deadline = c->linger_until;
        else if (c->out.len > c->out_off)
            deadline = c->last_active + srv->idle_timeout;
        else if (partial)
            deadline = c->req_start + srv->request_timeout;
        else if (c->inflight > 0)
            continue; /* the handler holds a request; it will answer */
        else
            deadline = c->last_active + srv->idle_timeout;
        if (srv->now < deadline)
            continue;
        if (partial && c->inflight == 0 && c->out.len == c->out_off && c->tls == NULL) {
            /* Best effort, never waiting: RFC 9110 15.5.9. */
            if (send(c->fd, TIMEOUT_408, sizeof TIMEOUT_408 - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
                /* the peer is gone or not reading: closing is all that is left */
            }
        }
        conn_close(c);
    }
}

/* Takes the answers other threads completed and sends them. */
static void drain_completions(pg_http_server *srv)
{
    uint64_t count;
    if (read(srv->wake_fd, &count, sizeof count) < 0) {
        /* nothing was signalled (EAGAIN) */
    }
    pthread_mutex_lock(&srv->lock);
    pg_http_exchange *list = srv->completed;
    srv->completed = NULL;
    pthread_mutex_unlock(&srv->lock);
    /* Each answer leaves the list before its connection is flushed: a flush moves out
     * only answers no longer queued here, so none is freed while still on the list. */
    while (list != NULL) {
        pg_http_exchange *ex = list;
        list = ex->done_next;
        ex->queued = 0;
        pg_http_conn *c = ex->conn;
        if (c == NULL)
            pg_http_exchange_free(ex); /* its client went away meanwhile */
        else if (c->fd >= 0)
            pg_http_flush_ready(c);
    }
}
