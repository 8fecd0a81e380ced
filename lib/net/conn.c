/*
 * conn.c - a TCP connection to an SMTP server: resolution, connect with timeouts, a
 * buffered line reader and full writes, all bounded by deadlines.
 *
 * RFC 5321 4.5.3.2 asks a client for per-command timeouts; the SMTP engine chooses them and
 * passes absolute deadlines, this module only enforces them with non-blocking sockets and
 * poll(). RFC 6555 (Happy Eyeballs) is approximated by trying each resolved address in
 * turn, each attempt bounded by its own connect timeout. TLS is delegated to tls.h.
 */
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* platforms without it use SO_NOSIGPIPE, set in open_socket() */
#endif

/* The read buffer also bounds a line: RFC 5321 4.5.3.1.5 allows 512 octets per reply line;
 * this leaves room for servers that exceed it and still caps what a peer can make us hold. */
#define RBUF_SIZE 16384

/* The version probe after a refused handshake is a diagnosis: bound it on its own. */
#define PROBE_TIMEOUT_MS 5000

struct pg_conn {
    int fd;                            /* the connected non-blocking socket */
    pg_tls *tls;                       /* the TLS session once started, else NULL */
    pg_tls_info info;                  /* what the last handshake established or saw */
    int info_valid;                    /* nonzero when info holds a certificate's details */
    struct sockaddr_storage peer_addr; /* the address connected to (for the TLS probe) */
    socklen_t peer_len;                /* length of peer_addr */
    char peer[INET6_ADDRSTRLEN];       /* peer_addr in numeric form */
    unsigned long long plain_in;       /* plaintext bytes received before TLS */
    unsigned long long plain_out;      /* plaintext bytes sent before TLS */
    size_t rstart;                     /* first unconsumed byte in rbuf */
    size_t rend;                       /* end of the received bytes in rbuf */
    char errmsg[512];                  /* the last error's reason */
    unsigned char rbuf[RBUF_SIZE];     /* received (decrypted) bytes not yet consumed */
};

/* One address attempt's outcome, for the summary in errmsg. */
struct attempt_log {
    char text[384];   /* "127.0.0.1: Connection refused; ::1: timed out" */
    size_t len;       /* bytes used in text */
    int all_timeouts; /* nonzero while every attempt so far timed out */
};

static void set_error(pg_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errno_text(int err, char *buf, size_t len);
static void trace_line(pg_conn_trace_fn trace, void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int64_t attempt_deadline(int connect_timeout_ms, int64_t deadline);
static pigeon_err open_socket(const struct addrinfo *ai, int *fd, char *reason, size_t len);
static pigeon_err connect_addr(const struct sockaddr *sa, socklen_t salen, int family,
                               int64_t deadline, int *out_fd, char *reason, size_t len);
static void log_attempt(struct attempt_log *log, const char *addr, const char *reason,
                        pigeon_err err);
static pigeon_err try_addresses(pg_conn *c, const struct addrinfo *res, uint16_t port,
                                int connect_timeout_ms, int64_t deadline, pg_conn_trace_fn trace,
                                void *trace_ctx, struct attempt_log *log);
static pigeon_err plain_read(pg_conn *c, void *buf, size_t cap, size_t *got, int64_t deadline);
static pigeon_err fill(pg_conn *c, int64_t deadline);
static pigeon_err check_leftover_plaintext(pg_conn *c);
static void probe_version(pg_conn *c, const pg_tls_opts *opts, int64_t deadline);

static void set_error(pg_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
}

/* strerror() is not thread-safe; the XSI strerror_r is (we do not define _GNU_SOURCE). */
static void errno_text(int err, char *buf, size_t len)
{
    if (strerror_r(err, buf, len) != 0)
        snprintf(buf, len, "error %d", err);
}

static void trace_line(pg_conn_trace_fn trace, void *ctx, const char *fmt, ...)
{
    if (trace == NULL)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    trace(ctx, line);
}

static int64_t attempt_deadline(int connect_timeout_ms, int64_t deadline)
{
    if (connect_timeout_ms <= 0)
        return deadline;
    int64_t own = pg_now_ms() + connect_timeout_ms;
    return (deadline != 0 && deadline < own) ? deadline : own;
}

static pigeon_err open_socket(const struct addrinfo *ai, int *fd, char *reason, size_t len)
{
    *fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (*fd < 0) {
        errno_text(errno, reason, len);
        return PIGEON_ERR_NETWORK;
    }
    int flags = fcntl(*fd, F_GETFL);
    if (flags < 0 || fcntl(*fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(*fd, F_SETFD, FD_CLOEXEC) < 0) {
        errno_text(errno, reason, len);
        close(*fd);
        *fd = -1;
        return PIGEON_ERR_NETWORK;
    }
#ifdef SO_NOSIGPIPE
    int one = 1;
    setsockopt(*fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    return PIGEON_OK;
}

/* Connects a new non-blocking socket to one address. On failure reason says why. */
static pigeon_err connect_addr(const struct sockaddr *sa, socklen_t salen, int family,
                               int64_t deadline, int *out_fd, char *reason, size_t len)
{
    struct addrinfo ai = {.ai_family = family, .ai_socktype = SOCK_STREAM};
    int fd = -1;
    pigeon_err err = open_socket(&ai, &fd, reason, len);
    if (err != PIGEON_OK)
        return err;
    if (connect(fd, sa, salen) != 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            errno_text(errno, reason, len);
            goto fail;
        }
        if (pg_fd_wait(fd, POLLOUT, deadline) != PIGEON_OK) {
            snprintf(reason, len, "timed out");
            err = PIGEON_ERR_TIMEOUT;
            goto fail_code;
        }
        int soerr = 0;
        socklen_t l = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l) != 0)
            soerr = errno;
        if (soerr != 0) {
            errno_text(soerr, reason, len);
            goto fail;
        }
    }
    *out_fd = fd;
    return PIGEON_OK;
fail:
    err = PIGEON_ERR_NETWORK;
fail_code:
    close(fd);
    return err;
}

static void log_attempt(struct attempt_log *log, const char *addr, const char *reason,
                        pigeon_err err)
{
    if (err != PIGEON_ERR_TIMEOUT)
        log->all_timeouts = 0;
    if (log->len >= sizeof log->text - 1)
        return;
    int n = snprintf(log->text + log->len, sizeof log->text - log->len, "%s%s: %s",
                     log->len ? "; " : "", addr, reason);
    if (n > 0)
        log->len += (size_t)n;
    if (log->len >= sizeof log->text)
        log->len = sizeof log->text - 1;
}

static pigeon_err try_addresses(pg_conn *c, const struct addrinfo *res, uint16_t port,
                                int connect_timeout_ms, int64_t deadline, pg_conn_trace_fn trace,
                                void *trace_ctx, struct attempt_log *log)
{
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        char addr[INET6_ADDRSTRLEN] = "?";
        char reason[128];
        getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST);
        if (deadline != 0 && pg_now_ms() >= deadline) {
            log_attempt(log, addr, "not tried, deadline passed", PIGEON_ERR_TIMEOUT);
            return PIGEON_ERR_TIMEOUT;
        }
        trace_line(trace, trace_ctx, "trying %s port %u", addr, (unsigned)port);
        int64_t until = attempt_deadline(connect_timeout_ms, deadline);
        pigeon_err err = connect_addr(ai->ai_addr, ai->ai_addrlen, ai->ai_family, until, &c->fd,
                                      reason, sizeof reason);
        if (err == PIGEON_OK) {
            /* Every write is a whole command, a pipelined group or a block of data:
             * Nagle's delay would only hold back the last segment of a group. */
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            trace_line(trace, trace_ctx, "connected to %s port %u", addr, (unsigned)port);
            memcpy(&c->peer_addr, ai->ai_addr, ai->ai_addrlen);
            c->peer_len = ai->ai_addrlen;
            snprintf(c->peer, sizeof c->peer, "%s", addr);
            return PIGEON_OK;
        }
        trace_line(trace, trace_ctx, "%s port %u: %s", addr, (unsigned)port, reason);
        log_attempt(log, addr, reason, err);
    }
    return log->all_timeouts ? PIGEON_ERR_TIMEOUT : PIGEON_ERR_NETWORK;
}

pigeon_err pg_conn_open(pg_conn **out, const char *host, uint16_t port, int connect_timeout_ms,
                        int64_t deadline, pg_conn_trace_fn trace, void *trace_ctx, char *errmsg,
                        size_t errlen)
{
    char name[256];
    char service[8];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    struct attempt_log log = {.all_timeouts = 1};
    pg_conn *c = NULL;
    pigeon_err err = PIGEON_ERR_INVALID;
    char dummy[1];

    if (errmsg == NULL || errlen == 0) {
        errmsg = dummy;
        errlen = sizeof dummy;
    }
    errmsg[0] = '\0';
    if (out != NULL)
        *out = NULL;
    if (out == NULL || host == NULL || host[0] == '\0' || port == 0) {
        snprintf(errmsg, errlen, "no host or port to connect to");
        return PIGEON_ERR_INVALID;
    }
    /* An IPv6 literal may come in URL form, "[::1]" (RFC 3986 3.2.2). */
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']')
        snprintf(name, sizeof name, "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(name, sizeof name, "%s", host);
    snprintf(service, sizeof service, "%u", (unsigned)port);
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(name, service, &hints, &res);
    if (rc != 0) {
        char why[128];
        if (rc == EAI_SYSTEM)
            errno_text(errno, why, sizeof why);
        else
            snprintf(why, sizeof why, "%s", gai_strerror(rc));
        snprintf(errmsg, errlen, "cannot resolve %s: %s", name, why);
        trace_line(trace, trace_ctx, "%s", errmsg);
        return PIGEON_ERR_NETWORK;
    }
    /* Zeroed up to the receive buffer only: its 16 KB are written before they are read,
     * and clearing them cost four page faults in every short-lived process. */
    c = malloc(sizeof *c);
    if (c == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        err = PIGEON_ERR_NOMEM;
        goto fail;
    }
    memset(c, 0, offsetof(struct pg_conn, rbuf));
    c->fd = -1;
    err = try_addresses(c, res, port, connect_timeout_ms, deadline, trace, trace_ctx, &log);
    if (err != PIGEON_OK) {
        snprintf(errmsg, errlen, "cannot connect to %s port %u: %s", name, (unsigned)port,
                 log.len ? log.text : "no address");
        goto fail;
    }
    freeaddrinfo(res);
    *out = c;
    return PIGEON_OK;
fail:
    free(c);
    freeaddrinfo(res);
    return err;
}

static pigeon_err plain_read(pg_conn *c, void *buf, size_t cap, size_t *got, int64_t deadline)
{
    for (;;) {
        ssize_t n = recv(c->fd, buf, cap, 0);
        if (n >= 0) {
            *got = (size_t)n;
            c->plain_in += (unsigned long long)n;
            return PIGEON_OK;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            char why[128];
            errno_text(errno, why, sizeof why);
            set_error(c, "read from server failed: %s", why);
            return PIGEON_ERR_NETWORK;
        }
        pigeon_err err = pg_fd_wait(c->fd, POLLIN, deadline);
        if (err != PIGEON_OK) {
            set_error(c, "%s",
                      err == PIGEON_ERR_TIMEOUT ? "timed out waiting for the server"
                                                : "poll() failed");
            return err;
        }
    }
}

/* Reads more bytes into rbuf (at least one, or an error). EOF is PIGEON_ERR_NETWORK. */
static pigeon_err fill(pg_conn *c, int64_t deadline)
{
    if (c->rstart > 0) {
        memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
        c->rend -= c->rstart;
        c->rstart = 0;
    }
    if (c->rend == sizeof c->rbuf)
        return PIGEON_ERR_PROTOCOL; /* the caller reports what overflowed */
    size_t got = 0;
    pigeon_err err;
    if (c->tls != NULL)
        err = pg_tls_read(c->tls, c->rbuf + c->rend, sizeof c->rbuf - c->rend, &got, deadline,
                          c->errmsg, sizeof c->errmsg);
    else
        err = plain_read(c, c->rbuf + c->rend, sizeof c->rbuf - c->rend, &got, deadline);
    if (err != PIGEON_OK)
        return err;
    if (got == 0) {
        set_error(c, "connection closed by server");
        return PIGEON_ERR_NETWORK;
    }
    c->rend += got;
    return PIGEON_OK;
}

pigeon_err pg_conn_read_line(pg_conn *c, char *line, size_t cap, size_t *len, int64_t deadline)
{
    if (c == NULL || line == NULL || cap < 2 || len == NULL)
        return PIGEON_ERR_INVALID;
    *len = 0;
    line[0] = '\0';
    size_t scanned = 0;
    for (;;) {
        size_t avail = c->rend - c->rstart;
        const unsigned char *start = c->rbuf + c->rstart;
        const unsigned char *lf = memchr(start + scanned, '\n', avail - scanned);
        size_t n = lf != NULL ? (size_t)(lf - start) + 1 : avail;
        if (n > cap - 1 || (lf == NULL && (n == cap - 1 || n == sizeof c->rbuf))) {
            set_error(c, "reply line too long (over %zu bytes without end of line)",
                      n < cap - 1 ? n : cap - 1);
            return PIGEON_ERR_PROTOCOL;
        }
        if (lf != NULL) {
            memcpy(line, start, n);
            line[n] = '\0';
            *len = n;
            c->rstart += n;
            return PIGEON_OK;
        }
        scanned = avail;
        pigeon_err err = fill(c, deadline);
        if (err != PIGEON_OK)
            return err;
    }
}

pigeon_err pg_conn_read(pg_conn *c, void *buf, size_t cap, size_t *got, int64_t deadline)
{
    if (got != NULL)
        *got = 0;
    if (c == NULL || buf == NULL || cap == 0 || got == NULL)
        return PIGEON_ERR_INVALID;
    if (c->rend == c->rstart) {
        pigeon_err err = fill(c, deadline);
        if (err != PIGEON_OK)
            return err;
    }
    size_t avail = c->rend - c->rstart;
    *got = avail < cap ? avail : cap;
    memcpy(buf, c->rbuf + c->rstart, *got);
    c->rstart += *got;
    return PIGEON_OK;
}

size_t pg_conn_pending(const pg_conn *c)
{
    if (c == NULL)
        return 0;
    size_t n = c->rend - c->rstart;
    if (c->tls != NULL)
        return n + pg_tls_pending(c->tls);
    /* In plaintext, bytes the kernel holds count too: an early talker's replies may arrive
     * in a later segment than the reply just read. (Under TLS the socket may hold records
     * that are not application data, such as TLS 1.3 session tickets, so only what TLS has
     * decrypted counts there.) */
    int queued = 0;
    if (c->fd >= 0 && ioctl(c->fd, FIONREAD, &queued) == 0 && queued > 0)
        n += (size_t)queued;
    return n;
}

pigeon_err pg_conn_peek(pg_conn *c, void *buf, size_t cap, size_t *n, int64_t deadline)
{
    if (c == NULL || buf == NULL || n == NULL)
        return PIGEON_ERR_INVALID;
    *n = 0;
    if (c->rend == c->rstart) {
        pigeon_err err = fill(c, deadline);
        if (err != PIGEON_OK)
            return err;
    }
    size_t avail = c->rend - c->rstart;
    *n = avail < cap ? avail : cap;
    memcpy(buf, c->rbuf + c->rstart, *n);
    return PIGEON_OK;
}

pigeon_err pg_conn_detect_tls_record(pg_conn *c, int64_t deadline, int *is_tls)
{
    unsigned char head[2];
    size_t n = 0;
    if (is_tls == NULL)
        return PIGEON_ERR_INVALID;
    *is_tls = 0;
    pigeon_err err = pg_conn_peek(c, head, sizeof head, &n, deadline);
    if (err != PIGEON_OK)
        return err;
    /* RFC 8446 5.1: a record starts with its content type (21 alert, 22 handshake) and
     * legacy_record_version {3, x}. An SMTP greeting starts with a digit (RFC 5321 4.2). */
    if ((head[0] == 21 || head[0] == 22) && (n < 2 || head[1] == 3)) {
        *is_tls = 1;
        set_error(c, "server sent a TLS record instead of an SMTP greeting: this port speaks "
                     "implicit TLS; use --tls implicit");
    }
    return PIGEON_OK;
}

pigeon_err pg_conn_write(pg_conn *c, const void *data, size_t n, int64_t deadline)
{
    if (c == NULL || (data == NULL && n > 0))
        return PIGEON_ERR_INVALID;
    if (c->tls != NULL)
        return pg_tls_write(c->tls, data, n, deadline, c->errmsg, sizeof c->errmsg);
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w >= 0) {
            p += w;
            n -= (size_t)w;
            c->plain_out += (unsigned long long)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            char why[128];
            errno_text(errno, why, sizeof why);
            set_error(c, "write to server failed: %s", why);
            return PIGEON_ERR_NETWORK;
        }
        pigeon_err err = pg_fd_wait(c->fd, POLLOUT, deadline);
        if (err != PIGEON_OK) {
            set_error(c, "%s",
                      err == PIGEON_ERR_TIMEOUT ? "timed out sending to the server"
                                                : "poll() failed");
            return err;
        }
    }
    return PIGEON_OK;
}

/* Plaintext already buffered when TLS starts is either a greeting (we were talking to a
 * plaintext port in implicit-TLS mode and someone peeked) or bytes sent after the STARTTLS
 * go-ahead, which must not be trusted nor carried over (RFC 3207 5, CVE-2011-0411). */
static pigeon_err check_leftover_plaintext(pg_conn *c)
{
    size_t avail = c->rend - c->rstart;
    if (avail == 0)
        return PIGEON_OK;
    if (c->plain_out == 0 && avail >= 3 && memcmp(c->rbuf + c->rstart, "220", 3) == 0) {
        pg_tls_describe_plaintext(c->rbuf + c->rstart, avail, c->errmsg, sizeof c->errmsg);
        return PIGEON_ERR_TLS;
    }
    set_error(c,
              "server sent %zu bytes of plaintext before the TLS handshake (RFC 3207 5: "
              "possible command injection); refusing to continue",
              avail);
    return PIGEON_ERR_PROTOCOL;
}

/* A second connection to the same address, to learn which TLS version the server has. */
static void probe_version(pg_conn *c, const pg_tls_opts *opts, int64_t deadline)
{
    char reason[128];
    int fd = -1;
    int64_t until = attempt_deadline(PROBE_TIMEOUT_MS, deadline);
    if (connect_addr((const struct sockaddr *)&c->peer_addr, c->peer_len, c->peer_addr.ss_family,
                     until, &fd, reason, sizeof reason) != PIGEON_OK)
        return;
    pg_tls_probe_version(fd, opts, until, c->errmsg, sizeof c->errmsg);
    close(fd);
}

pigeon_err pg_conn_starttls(pg_conn *c, const pg_tls_opts *opts, int64_t deadline)
{
    if (c == NULL)
        return PIGEON_ERR_INVALID;
    if (opts == NULL) {
        set_error(c, "no TLS options");
        return PIGEON_ERR_INVALID;
    }
    if (c->tls != NULL) {
        set_error(c, "TLS is already active on this connection");
        return PIGEON_ERR_STATE;
    }
    pigeon_err err = check_leftover_plaintext(c);
    if (err != PIGEON_OK)
        return err;
    pg_tls_result res = {.info = &c->info, .errmsg = c->errmsg, .errlen = sizeof c->errmsg};
    memset(&c->info, 0, sizeof c->info);
    err = pg_tls_handshake(&c->tls, c->fd, opts, deadline, &res);
    c->info_valid = res.info_valid;
    /* Only an implicit-TLS connection (nothing exchanged in plaintext) can be replayed by a
     * second connection; after STARTTLS the probe would need an SMTP dialogue. */
    if (err == PIGEON_ERR_TLS && res.version_refused && c->plain_in == 0 && c->plain_out == 0)
        probe_version(c, opts, deadline);
    return err;
}

int pg_conn_is_tls(const pg_conn *c)
{
    return c != NULL && c->tls != NULL;
}

const pg_tls_info *pg_conn_tls_info(const pg_conn *c)
{
    return (c != NULL && c->info_valid) ? &c->info : NULL;
}

void pg_conn_close(pg_conn *c)
{
    if (c == NULL)
        return;
    pg_tls_close(c->tls);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

const char *pg_conn_error(const pg_conn *c)
{
    return c != NULL ? c->errmsg : "no connection";
}

const char *pg_conn_peer(const pg_conn *c)
{
    return c != NULL ? c->peer : "";
}
