/*
 * eventlog.c - structured event log: JSON lines and logfmt to stderr, a file or syslog.
 *
 * JSON strings follow RFC 8259 7: quote, backslash and control characters are escaped
 * (\n \r \t, others \u00XX; DEL too, for terminals), valid UTF-8 is kept as is, and each
 * byte of an invalid sequence becomes \ufffd so that every line is valid UTF-8 JSON.
 * logfmt has no RFC; we follow the de facto rules of go-logfmt (used by Prometheus and
 * Grafana Loki): key=value pairs separated by one space, a value quoted when it is empty
 * or holds a byte <= 0x20, '=', '"', DEL or invalid UTF-8, Go-style escapes inside quotes.
 * Times are RFC 3339 5.6 date-time in UTC ("Z") with three fraction digits.
 *
 * A whole line is formatted in memory first and written with one write(2): with O_APPEND
 * (POSIX write(): the offset is set to the end before each write) lines from several
 * processes do not interleave.
 */
#include "eventlog.h"
#include "util/utf8.h"
#include "util/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

/* Tests capture syslog by defining these before including this file. */
#ifndef EVENTLOG_OPENLOG
#define EVENTLOG_OPENLOG  openlog
#define EVENTLOG_SYSLOG   syslog
#define EVENTLOG_CLOSELOG closelog
#endif

#define REDACTED "[redacted]"

typedef enum sink_kind {
    SINK_STDERR, /* file descriptor 2, never closed */
    SINK_FILE,   /* a file we opened by path, reopened on request */
    SINK_SYSLOG, /* syslog(3) */
} sink_kind;

struct eventlog {
    pthread_mutex_t lock;                /* serializes writes and reopens */
    sink_kind kind;                      /* where lines go */
    eventlog_format format;              /* line format (syslog always gets logfmt) */
    int fd;                              /* stderr or the file; -1 for syslog */
    char *path;                          /* the file's path (owned), NULL otherwise */
    volatile sig_atomic_t reopen_wanted; /* set by a signal handler, read before writes */
};

static eventlog_field *add_field(eventlog_event *e, const char *key, eventlog_type type);
static size_t cut_len(const char *s);
static void put_time(pg_buf *b, struct timespec t);
static void put_double(pg_buf *b, double v, int json);
static void put_escaped(pg_buf *b, const char *str, size_t n);
static void put_json_string(pg_buf *b, const char *s, size_t n);
static void put_json_field(pg_buf *b, const eventlog_field *f);
static int logfmt_needs_quotes(const char *s, size_t n);
static void put_logfmt_value(pg_buf *b, const char *s, size_t n);
static void put_logfmt_key(pg_buf *b, const char *key);
static void put_logfmt_field(pg_buf *b, const eventlog_field *f);
static int open_file(const char *path);
static pigeon_err reopen_locked(eventlog *log);
static pigeon_err write_all(int fd, const char *p, size_t n);

/* ---- events ---- */

static const char *level_name(eventlog_level level)
{
    return level == EVENTLOG_ERROR ? "error" : level == EVENTLOG_WARNING ? "warning" : "info";
}

void eventlog_event_init(eventlog_event *e, eventlog_level level, const char *name)
{
    struct timespec now;
    e->level = level;
    e->n = 0;
    clock_gettime(CLOCK_REALTIME, &now);
    eventlog_add_time(e, "time", now);
    eventlog_add_str(e, "level", level_name(level));
    eventlog_add_str(e, "event", name);
}

/* The next free field, or NULL (the field is dropped) when the event is full. */
static eventlog_field *add_field(eventlog_event *e, const char *key, eventlog_type type)
{
    if (e->n >= EVENTLOG_MAX_FIELDS || key == NULL)
        return NULL;
    eventlog_field *f = &e->fields[e->n++];
    memset(f, 0, sizeof *f);
    f->key = key;
    f->type = type;
    return f;
}

void eventlog_add_str(eventlog_event *e, const char *key, const char *value)
{
    eventlog_field *f = add_field(e, key, EVENTLOG_STR);
    if (f != NULL)
        f->v.s = value;
}

void eventlog_add_secret(eventlog_event *e, const char *key, const char *value)
{
    eventlog_field *f = add_field(e, key, EVENTLOG_STR);
    if (f != NULL) {
        f->v.s = value;
        f->secret = 1;
    }
}

void eventlog_add_int(eventlog_event *e, const char *key, int64_t value)
{
    eventlog_field *f = add_field(e, key, EVENTLOG_INT);
    if (f != NULL)
        f->v.i = value;
}

void eventlog_add_double(eventlog_event *e, const char *key, double value)
{
    eventlog_field *f = add_field(e, key, EVENTLOG_DOUBLE);
    if (f != NULL)
        f->v.d = value;
}

void eventlog_add_time(eventlog_event *e, const char *key, struct timespec value)
{
    eventlog_field *f = add_field(e, key, EVENTLOG_TIME);
    if (f != NULL)
        f->v.t = value;
}

void eventlog_add_time_ms(eventlog_event *e, const char *key, int64_t ms)
{
    /* Floor division, so that times before 1970 still get a fraction in [0, 999]. */
    int64_t sec = ms / 1000 - (ms % 1000 < 0);
    struct timespec t = {.tv_sec = (time_t)sec, .tv_nsec = (long)(ms - sec * 1000) * 1000000L};
    eventlog_add_time(e, key, t);
}

int eventlog_key_is_secret(const char *key)
{
    static const char *const words[] = {"password", "passwd", "secret",       "token",
                                        "auth",     "pass",   "authorization"};
    static const unsigned char lens[] = {8, 6, 6, 5, 4, 4, 13};
    if (key == NULL)
        return 0;
    size_t n = strlen(key);
    /* Every word ends in a letter: a key that does not (queue_id, duration_ms...) is
     * compared no further (the daemon logs a dozen fields per message). */
    char last = n > 0 ? (char)(key[n - 1] | 0x20) : 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t w = lens[i];
        if (n < w || last != words[i][w - 1] || strcasecmp(key + n - w, words[i]) != 0)
            continue;
        /* The whole key, or its last part after a separator. */
        if (n == w || strchr("_-.", key[n - w - 1]) != NULL)
            return 1;
    }
    return 0;
}

/* ---- formatting ---- */

/* strlen bounded by EVENTLOG_MAX_VALUE, cut back to a character boundary. */
static size_t cut_len(const char *s)
{
    size_t n = strnlen(s, EVENTLOG_MAX_VALUE + 1);
    if (n <= EVENTLOG_MAX_VALUE)
        return n;
    n = EVENTLOG_MAX_VALUE;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

/* Writes v in decimal with at least width digits (zero-padded) into p; returns the end. */
static char *put_digits(char *p, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n < width)
        tmp[n++] = '0';
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

/* %lld, without printf (a dozen numbers per delivery in the daemon's log). */
static void put_int(pg_buf *b, int64_t v)
{
    char text[24], *p = text;
    if (v < 0)
        *p++ = '-';
    p = put_digits(p, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, 1);
    pg_buf_append(b, text, (size_t)(p - text));
}

/* RFC 3339 date-time, UTC, milliseconds: 2026-11-26T08:43:17.123Z */
static void put_time(pg_buf *b, struct timespec t)
{
    struct tm tm;
    time_t sec = t.tv_sec;
    if (gmtime_r(&sec, &tm) == NULL) {
        pg_buf_puts(b, "1970-01-01T00:00:00.000Z");
        return;
    }
    if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        pg_buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, t.tv_nsec / 1000000L);
        return;
    }
    char text[32], *p = text;
    p = put_digits(p, (uint64_t)(tm.tm_year + 1900), 4);
    *p++ = '-';
    p = put_digits(p, (uint64_t)(tm.tm_mon + 1), 2);
    *p++ = '-';
    p = put_digits(p, (uint64_t)tm.tm_mday, 2);
    *p++ = 'T';
    p = put_digits(p, (uint64_t)tm.tm_hour, 2);
    *p++ = ':';
    p = put_digits(p, (uint64_t)tm.tm_min, 2);
    *p++ = ':';
    p = put_digits(p, (uint64_t)tm.tm_sec, 2);
    *p++ = '.';
    p = put_digits(p, (uint64_t)(t.tv_nsec / 1000000L), 3);
    *p++ = 'Z';
    pg_buf_append(b, text, (size_t)(p - text));
}

/* Shortest of %.15g..%.17g that reads back; JSON has no NaN or Infinity (RFC 8259 6). */
static void put_double(pg_buf *b, double v, int json)
{
    char text[40];
    if (!isfinite(v)) {
        pg_buf_puts(b, json ? "null" : isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(text, sizeof text, "%.*g", prec, v);
        if (strtod(text, NULL) == v)
            break;
    }
    for (char *p = text; *p != '\0'; p++) {
        if (*p == ',')
            *p = '.';
    }
    pg_buf_puts(b, text);
}

/* Writes bytes [s, s+n) with the escapes both formats share (Go's strconv and RFC 8259
 * agree on \" \\ \n \r \t \u00XX), invalid UTF-8 as \ufffd. */
static void put_escaped(pg_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = 1;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            /* A run of printable ASCII goes out as it is, in one copy (most of a log). */
            while (i + len < n && s[i + len] >= 0x20 && s[i + len] < 0x7f && s[i + len] != '"' &&
                   s[i + len] != '\\')
                len++;
            pg_buf_append(b, s + i, len);
        } else if (c == '"' || c == '\\')
            pg_buf_printf(b, "\\%c", c);
        else if (c == '\n')
            pg_buf_puts(b, "\\n");
        else if (c == '\r')
            pg_buf_puts(b, "\\r");
        else if (c == '\t')
            pg_buf_puts(b, "\\t");
        else if (c < 0x20 || c == 0x7f)
            pg_buf_printf(b, "\\u%04x", c);
        else if ((len = pg_utf8_decode(s + i, n - i, NULL)) == 0) {
            pg_buf_puts(b, "\\ufffd");
            len = 1;
        } else {
            pg_buf_append(b, s + i, len);
        }
        i += len;
    }
}

static void put_json_string(pg_buf *b, const char *s, size_t n)
{
    pg_buf_putc(b, '"');
    put_escaped(b, s, n);
    pg_buf_putc(b, '"');
}

static void put_json_field(pg_buf *b, const eventlog_field *f)
{
    put_json_string(b, f->key, cut_len(f->key));
    pg_buf_putc(b, ':');
    if (f->secret || eventlog_key_is_secret(f->key)) {
        pg_buf_puts(b, "\"" REDACTED "\"");
        return;
    }
    switch (f->type) {
    case EVENTLOG_STR:
        if (f->v.s == NULL)
            pg_buf_puts(b, "null");
        else
            put_json_string(b, f->v.s, cut_len(f->v.s));
        break;
    case EVENTLOG_INT:
        put_int(b, f->v.i);
        break;
    case EVENTLOG_DOUBLE:
        put_double(b, f->v.d, 1);
        break;
    case EVENTLOG_TIME:
        pg_buf_putc(b, '"');
        put_time(b, f->v.t);
        pg_buf_putc(b, '"');
        break;
    }
}

static int logfmt_needs_quotes(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n;) {
        size_t len = pg_utf8_decode(s + i, n - i, NULL);
        if (len == 0 || s[i] <= 0x20 || s[i] == '=' || s[i] == '"' || s[i] == 0x7f)
            return 1;
        i += len;
    }
    return 0;
}

static void put_logfmt_value(pg_buf *b, const char *s, size_t n)
{
    if (!logfmt_needs_quotes(s, n)) {
        pg_buf_append(b, s, n);
        return;
    }
    pg_buf_putc(b, '"');
    put_escaped(b, s, n);
    pg_buf_putc(b, '"');
}

/* Keys are ours, but are kept to [A-Za-z0-9_.-] so that a line always splits. */
static void put_logfmt_key(pg_buf *b, const char *key)
{
    size_t n = cut_len(key);
    if (n == 0)
        pg_buf_putc(b, '_');
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        pg_buf_putc(b, ok ? c : '_');
    }
}

static void put_logfmt_field(pg_buf *b, const eventlog_field *f)
{
    put_logfmt_key(b, f->key);
    pg_buf_putc(b, '=');
    if (f->secret || eventlog_key_is_secret(f->key)) {
        pg_buf_puts(b, REDACTED);
        return;
    }
    switch (f->type) {
    case EVENTLOG_STR:
        if (f->v.s != NULL)
            put_logfmt_value(b, f->v.s, cut_len(f->v.s));
        break;
    case EVENTLOG_INT:
        put_int(b, f->v.i);
        break;
    case EVENTLOG_DOUBLE:
        put_double(b, f->v.d, 0);
        break;
    case EVENTLOG_TIME:
        put_time(b, f->v.t);
        break;
    }
}

void eventlog_format_event(pg_buf *b, eventlog_format format, const eventlog_event *e)
{
    if (format == EVENTLOG_JSON)
        pg_buf_putc(b, '{');
    for (size_t i = 0; i < e->n; i++) {
        if (i > 0)
            pg_buf_putc(b, format == EVENTLOG_JSON ? ',' : ' ');
        if (format == EVENTLOG_JSON)
            put_json_field(b, &e->fields[i]);
        else
            put_logfmt_field(b, &e->fields[i]);
    }
    pg_buf_puts(b, format == EVENTLOG_JSON ? "}\n" : "\n");
}

/* ---- sinks ---- */

int eventlog_parse_format(const char *name, eventlog_format *format)
{
    if (name != NULL && strcmp(name, "json") == 0)
        *format = EVENTLOG_JSON;
    else if (name != NULL && strcmp(name, "logfmt") == 0)
        *format = EVENTLOG_LOGFMT;
    else
        return 0;
    return 1;
}

static int open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

eventlog *eventlog_open(const char *dest, eventlog_format format, pigeon_err *err)
{
    pigeon_err e = PIGEON_ERR_INVALID;
    eventlog *log = NULL;
    if (dest == NULL || *dest == '\0' || (format != EVENTLOG_JSON && format != EVENTLOG_LOGFMT))
        goto fail;
    e = PIGEON_ERR_NOMEM;
    log = calloc(1, sizeof *log);
    if (log == NULL || pthread_mutex_init(&log->lock, NULL) != 0) {
        free(log);
        log = NULL;
        goto fail;
    }
    log->format = format;
    log->fd = -1;
    if (strcmp(dest, "-") == 0 || strcmp(dest, "stderr") == 0) {
        log->kind = SINK_STDERR;
        log->fd = STDERR_FILENO;
    } else if (strcmp(dest, "syslog") == 0) {
        log->kind = SINK_SYSLOG;
        EVENTLOG_OPENLOG("pigeon", LOG_PID | LOG_NDELAY, LOG_MAIL);
    } else {
        log->kind = SINK_FILE;
        if ((log->path = strdup(dest)) == NULL)
            goto fail;
        e = PIGEON_ERR_IO;
        if ((log->fd = open_file(dest)) < 0)
            goto fail;
    }
    if (err != NULL)
        *err = PIGEON_OK;
    return log;
fail:
    if (log != NULL) {
        int saved = errno;
        eventlog_close(log);
        errno = saved;
    }
    if (err != NULL)
        *err = e;
    return NULL;
}

static pigeon_err write_all(int fd, const char *p, size_t n)
{
    return pg_write_all(fd, p, n) == 0 ? PIGEON_OK : PIGEON_ERR_IO;
}

static int syslog_priority(eventlog_level level)
{
    return level == EVENTLOG_ERROR ? LOG_ERR : level == EVENTLOG_WARNING ? LOG_WARNING : LOG_INFO;
}

pigeon_err eventlog_write(eventlog *log, const eventlog_event *e)
{
    if (log == NULL || e == NULL)
        return PIGEON_ERR_INVALID;
    pg_buf line;
    pg_buf_init(&line);
    pg_buf_reserve(&line, 512); /* one allocation for most events */
    eventlog_format_event(&line, log->kind == SINK_SYSLOG ? EVENTLOG_LOGFMT : log->format, e);
    pigeon_err err = line.err;
    if (err != PIGEON_OK)
        goto done;
    pthread_mutex_lock(&log->lock);
    if (log->reopen_wanted)
        reopen_locked(log); /* on failure the old file is still there to write to */
    if (log->kind == SINK_SYSLOG) {
        line.data[line.len - 1] = '\0'; /* syslog takes the message without its newline */
        EVENTLOG_SYSLOG(syslog_priority(e->level), "%s", line.data);
    } else {
        err = write_all(log->fd, line.data, line.len);
    }
    pthread_mutex_unlock(&log->lock);
done:
    pg_buf_cleanup(&line);
    return err;
}

/* Opens the path anew and swaps it in; the old descriptor is kept if that fails. */
static pigeon_err reopen_locked(eventlog *log)
{
    log->reopen_wanted = 0;
    if (log->kind != SINK_FILE)
        return PIGEON_OK;
    int fd = open_file(log->path);
    if (fd < 0)
        return PIGEON_ERR_IO;
    close(log->fd);
    log->fd = fd;
    return PIGEON_OK;
}

pigeon_err eventlog_reopen(eventlog *log)
{
    if (log == NULL)
        return PIGEON_ERR_INVALID;
    pthread_mutex_lock(&log->lock);
    pigeon_err err = reopen_locked(log);
    pthread_mutex_unlock(&log->lock);
    return err;
}

void eventlog_request_reopen(eventlog *log)
{
    if (log != NULL)
        log->reopen_wanted = 1;
}

pigeon_err eventlog_reopen_if_requested(eventlog *log)
{
    if (log == NULL || !log->reopen_wanted)
        return PIGEON_OK;
    return eventlog_reopen(log);
}

void eventlog_close(eventlog *log)
{
    if (log == NULL)
        return;
    if (log->kind == SINK_FILE && log->fd >= 0)
        close(log->fd);
    if (log->kind == SINK_SYSLOG)
        EVENTLOG_CLOSELOG();
    free(log->path);
    pthread_mutex_destroy(&log->lock);
    free(log);
}
