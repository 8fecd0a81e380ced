/*
 * store_conn.c - the connection under the IMAP and POP3 clients: connect, TLS (RFC 8314
 * implicit TLS, or STARTTLS/STLS: RFC 9051 6.2.1, RFC 2595 4), buffered reads by line
 * or by count, deadlines, the transcript.
 */
#include "mailbox/store_conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "net/wait.h"

#define DEFAULT_TIMEOUT_MS 60000
#define DEFAULT_CONNECT_MS 30000

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pg_store_trace(pg_store_conn *s, pigeon_transcript_dir dir, const char *fmt, ...)
{
    if (s->o.transcript == NULL)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *p = line; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    s->o.transcript(s->o.transcript_ctx, dir, wall_ms(), line);
}

pigeon_err pg_store_fail(pg_store_conn *s, pigeon_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    /* A server's text quoted in the reason must not add lines to a log. */
    for (char *p = s->err; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    pg_store_trace(s, PIGEON_TRANSCRIPT_INFO, "error: %s", s->err);
    return err;
}

void pg_store_arm(pg_store_conn *s, int64_t extra_ms)
{
    int t = s->o.timeout_ms > 0 ? s->o.timeout_ms : DEFAULT_TIMEOUT_MS;
    s->deadline = pg_now_ms() + t + extra_ms;
}

static void conn_trace(void *ctx, const char *line)
{
    pg_store_trace(ctx, PIGEON_TRANSCRIPT_INFO, "%s", line);
}

static pigeon_err handshake(pg_store_conn *s)
{
    pg_tls_opts t = {
        .server_name = s->o.host,
        .ca_file = s->o.ca_file,
        .fingerprint = s->o.fingerprint,
        .insecure = s->o.insecure,
    };
    if (s->o.insecure)
        pg_store_trace(s, PIGEON_TRANSCRIPT_INFO,
                       "WARNING: certificate verification is OFF (insecure)");
    pigeon_err err = pg_conn_starttls(s->conn, &t, s->deadline);
    if (err != PIGEON_OK)
        return pg_store_fail(s, err == PIGEON_ERR_TIMEOUT ? err : PIGEON_ERR_TLS,
                             "TLS with %s failed: %s", s->o.host, pg_conn_error(s->conn));
    const pg_tls_info *info = pg_conn_tls_info(s->conn);
    if (info != NULL)
        pg_store_trace(s, PIGEON_TRANSCRIPT_INFO, "TLS %s %s, certificate %s", info->version,
                       info->cipher, info->subject);
    return PIGEON_OK;
}

pigeon_err pg_store_open(pg_store_conn *s, const pigeon_store_opts *o, uint16_t default_port,
                         int *implicit)
{
    s->o = *o;
    s->in_start = s->in_end = 0;
    s->err[0] = '\0';
    uint16_t port = o->port != 0 ? o->port : default_port;
    s->o.port = port;
    *implicit =
        o->tls == PIGEON_TLS_IMPLICIT || (o->tls == PIGEON_TLS_AUTO && port == default_port);
    pg_store_arm(s, 0);
    pg_store_trace(
        s, PIGEON_TRANSCRIPT_INFO, "connecting to %s port %u (%s)", o->host, (unsigned)port,
        *implicit ? "implicit TLS" : (o->tls == PIGEON_TLS_NONE ? "no TLS" : "STARTTLS"));
    char why[400] = "";
    int ct = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;
    pigeon_err err =
        pg_conn_open(&s->conn, o->host, port, ct, s->deadline, conn_trace, s, why, sizeof why);
    if (err != PIGEON_OK)
        return pg_store_fail(s, err, "cannot connect to %s port %u: %s", o->host, (unsigned)port,
                             why);
    if (*implicit)
        return handshake(s);
    return PIGEON_OK;
}

pigeon_err pg_store_starttls(pg_store_conn *s)
{
    if (s->in_end != s->in_start)
        return pg_store_fail(s, PIGEON_ERR_PROTOCOL,
                             "server sent %zu bytes after its TLS go-ahead, before the "
                             "handshake (command injection, RFC 2595 / RFC 3207 5); refusing",
                             s->in_end - s->in_start);
    return handshake(s);
}

/* Reads more bytes into the buffer (at least one). */
static pigeon_err fill(pg_store_conn *s)
{
    if (s->in_start > 0) {
        memmove(s->in, s->in + s->in_start, s->in_end - s->in_start);
        s->in_end -= s->in_start;
        s->in_start = 0;
    }
    size_t got = 0;
    pigeon_err err =
        pg_conn_read(s->conn, s->in + s->in_end, sizeof s->in - s->in_end, &got, s->deadline);
    if (err != PIGEON_OK)
        return pg_store_fail(s, err, "%s (%s)",
                             err == PIGEON_ERR_TIMEOUT ? "timed out waiting for the server"
                                                       : "reading from the server failed",
                             pg_conn_error(s->conn));
    s->in_end += got;
    return PIGEON_OK;
}

pigeon_err pg_store_read_line(pg_store_conn *s, pg_buf *out, size_t max)
{
    size_t taken = 0;
    size_t scanned = 0;
    for (;;) {
        const unsigned char *start = s->in + s->in_start;
        size_t avail = s->in_end - s->in_start;
        const unsigned char *lf = memchr(start + scanned, '\n', avail - scanned);
        size_t n = lf != NULL ? (size_t)(lf - start) + 1 : avail;
        if (taken + n > max)
            return pg_store_fail(s, PIGEON_ERR_PROTOCOL,
                                 "server line too long (over %zu bytes without end of line)", max);
        /* A partial line stays in the buffer (a timeout, as when IDLE ends, loses
         * nothing) unless the buffer is full: then it moves to out. */
        if (lf != NULL || (s->in_start == 0 && s->in_end == sizeof s->in)) {
            if (pg_buf_append(out, start, n) != PIGEON_OK)
                return pg_store_fail(s, out->err, "out of memory reading a line");
            s->in_start += n;
            taken += n;
            scanned = 0;
            if (lf != NULL)
                return PIGEON_OK;
        } else {
            scanned = avail;
        }
        pigeon_err err = fill(s);
        if (err != PIGEON_OK)
            return err;
    }
}

pigeon_err pg_store_read_n(pg_store_conn *s, uint64_t n,
                           int (*fn)(void *ctx, const void *data, size_t len), void *ctx)
{
    while (n > 0) {
        if (s->in_end == s->in_start) {
            pigeon_err err = fill(s);
            if (err != PIGEON_OK)
                return err;
        }
        size_t avail = s->in_end - s->in_start;
        size_t take = n < avail ? (size_t)n : avail;
        if (fn != NULL && fn(ctx, s->in + s->in_start, take) != 0)
            return pg_store_fail(s, PIGEON_ERR_IO, "the message's reader stopped the transfer");
        s->in_start += take;
        n -= take;
    }
    return PIGEON_OK;
}

pigeon_err pg_store_write(pg_store_conn *s, const void *data, size_t n)
{
    pigeon_err err = pg_conn_write(s->conn, data, n, s->deadline);
    if (err != PIGEON_OK)
        return pg_store_fail(s, err, "writing to the server failed: %s", pg_conn_error(s->conn));
    return PIGEON_OK;
}

int pg_store_is_tls(const pg_store_conn *s)
{
    return pg_conn_is_tls(s->conn);
}

void pg_store_close(pg_store_conn *s)
{
    pg_conn_close(s->conn);
    s->conn = NULL;
}
