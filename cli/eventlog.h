/*
 * eventlog.h - structured event log of `pigeon daemon` and `pigeon send`.
 *
 * An event is an ordered list of typed fields (string, integer, double, time), built on
 * the stack with eventlog_event_init() and the eventlog_add_*() calls, then written as one
 * line by eventlog_write():
 *   JSON lines   {"time":"2026-11-26T08:43:17.123Z","level":"info","event":"delivery",...}
 *                one object per line, strings escaped per RFC 8259 7 (UTF-8 kept, invalid
 *                bytes written as \ufffd), non-finite doubles as null;
 *   logfmt       time=2026-11-26T08:43:17.123Z level=info event=delivery rcpt=a@b.example
 *                values quoted when they are empty or contain a space, '=', '"', a control
 *                character or invalid UTF-8, with \" \\ \n \r \t \u00XX escapes.
 * Times are RFC 3339 UTC with milliseconds. Secrets are never written: a field whose key
 * names one (password, passwd, pass, secret, token, auth, authorization, alone or the last
 * "_"/"-"/"." part of the key, e.g. smtp_password) or added with eventlog_add_secret()
 * is written as "[redacted]". Strings are cut at EVENTLOG_MAX_VALUE bytes.
 *
 * Sinks: stderr, a file (opened O_APPEND, so that several processes can share it and
 * each line lands whole), or syslog (LOG_MAIL facility, the logfmt form as the message,
 * the event's level as the priority). A line is written with one write(2).
 *
 * Log rotation: the daemon's SIGHUP handler calls eventlog_request_reopen(), which only
 * sets a flag (async-signal-safe); the next eventlog_write() (or the daemon's own call to
 * eventlog_reopen_if_requested()) reopens the file by name. eventlog_reopen() reopens at
 * once. On a failed reopen the old file stays in use.
 *
 * Thread safety: an eventlog may be written from several threads; writes and reopens are
 * serialized by a mutex. An eventlog_event belongs to the thread building it.
 */
#ifndef PIGEON_CLI_EVENTLOG_H
#define PIGEON_CLI_EVENTLOG_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"

#define EVENTLOG_MAX_FIELDS 32   /* fields per event; more are dropped */
#define EVENTLOG_MAX_VALUE  2048 /* bytes of one string value; longer ones are cut */

typedef enum eventlog_format {
    EVENTLOG_JSON = 0,   /* JSON lines */
    EVENTLOG_LOGFMT = 1, /* logfmt */
} eventlog_format;

typedef enum eventlog_level {
    EVENTLOG_INFO = 0,    /* normal events (delivered, queued) */
    EVENTLOG_WARNING = 1, /* temporary failures (deferred) */
    EVENTLOG_ERROR = 2,   /* permanent failures, local errors */
} eventlog_level;

typedef enum eventlog_type {
    EVENTLOG_STR = 0,    /* a string (borrowed until the event is written) */
    EVENTLOG_INT = 1,    /* a 64-bit integer */
    EVENTLOG_DOUBLE = 2, /* a double */
    EVENTLOG_TIME = 3,   /* a wall-clock time, written RFC 3339 UTC with milliseconds */
} eventlog_type;

typedef struct eventlog_field {
    const char *key;    /* field name (borrowed) */
    eventlog_type type; /* which member of the value is used */
    int secret;         /* nonzero: write "[redacted]" whatever the value */
    union {
        const char *s;     /* EVENTLOG_STR; NULL writes null (JSON) or key= (logfmt) */
        int64_t i;         /* EVENTLOG_INT */
        double d;          /* EVENTLOG_DOUBLE */
        struct timespec t; /* EVENTLOG_TIME */
    } v;                   /* the value */
} eventlog_field;

typedef struct eventlog_event {
    eventlog_level level;                       /* severity (syslog priority, "level") */
    size_t n;                                   /* fields in use */
    eventlog_field fields[EVENTLOG_MAX_FIELDS]; /* the fields in order */
} eventlog_event;

/* Starts an event with the fields time (now), level and event (name, borrowed). */
void eventlog_event_init(eventlog_event *e, eventlog_level level, const char *name);
void eventlog_add_str(eventlog_event *e, const char *key, const char *value);
void eventlog_add_int(eventlog_event *e, const char *key, int64_t value);
void eventlog_add_double(eventlog_event *e, const char *key, double value);
void eventlog_add_time(eventlog_event *e, const char *key, struct timespec value);
/* Adds a time given in milliseconds since the Unix epoch (the spool's clock). */
void eventlog_add_time_ms(eventlog_event *e, const char *key, int64_t ms);
/* A string whose value is never written, only "[redacted]". */
void eventlog_add_secret(eventlog_event *e, const char *key, const char *value);

/* Formats e as one line ending in '\n' appended to b (check b->err). */
void eventlog_format_event(pg_buf *b, eventlog_format format, const eventlog_event *e);

/* Nonzero when key names a secret (see above); compared case-insensitively. */
int eventlog_key_is_secret(const char *key);

typedef struct eventlog eventlog; /* a sink (opaque) */

/* "json" or "logfmt" into *format; 0 if name is neither. */
int eventlog_parse_format(const char *name, eventlog_format *format);

/*
 * Opens a sink: dest "-" or "stderr" for standard error, "syslog" for syslog (ident
 * "pigeon", LOG_MAIL), anything else a file path (created 0640 if missing, appended to).
 * Returns NULL with *err (may be NULL) set: PIGEON_ERR_IO (cannot open the file; errno
 * says why), PIGEON_ERR_NOMEM, PIGEON_ERR_INVALID.
 */
eventlog *eventlog_open(const char *dest, eventlog_format format, pigeon_err *err);

/* Writes one event. PIGEON_ERR_IO if the write failed (the event is lost). */
pigeon_err eventlog_write(eventlog *log, const eventlog_event *e);

/* Reopens the file by its name (after rotation). Other sinks: nothing to do. */
pigeon_err eventlog_reopen(eventlog *log);

/* Async-signal-safe: asks for a reopen before the next write. */
void eventlog_request_reopen(eventlog *log);

/* Reopens if a reopen was requested; PIGEON_OK if none was. */
pigeon_err eventlog_reopen_if_requested(eventlog *log);

/* Closes the sink (closelog for syslog). NULL does nothing. */
void eventlog_close(eventlog *log);

#endif
