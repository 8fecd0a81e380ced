/*
 * smtp_int.h - the SMTP session shared by smtp.c (connection, TLS, EHLO, AUTH, QUIT) and
 * smtp_data.c (mail transactions: MAIL, RCPT, DATA) (internal).
 */
#ifndef PG_SMTP_INT_H
#define PG_SMTP_INT_H

#include <stdint.h>

#include "util/buf.h"
#include "net/conn.h"
#include "smtp/hints.h"
#include "pigeon/smtp.h"
#include "smtp/reply.h"

/* The session's states (RFC 5321 3, RFC 3207 4, RFC 4954 4); state_names in smtp.c is
 * kept in the same order. */
typedef enum pg_smtp_state {
    PG_ST_IDLE = 0,           /* not connected yet */
    PG_ST_CONNECT,            /* resolving and connecting */
    PG_ST_TLS_HANDSHAKE,      /* implicit TLS handshake (RFC 8314) */
    PG_ST_GREETING,           /* waiting for the 220 greeting */
    PG_ST_EHLO,               /* EHLO sent */
    PG_ST_HELO,               /* HELO sent after EHLO was refused */
    PG_ST_STARTTLS,           /* STARTTLS sent */
    PG_ST_STARTTLS_HANDSHAKE, /* TLS handshake after STARTTLS's 220 */
    PG_ST_EHLO_TLS,           /* EHLO sent again over TLS (RFC 3207 4.2) */
    PG_ST_AUTH,               /* AUTH exchange */
    PG_ST_READY,              /* ready for a mail transaction */
    PG_ST_RSET,               /* RSET sent */
    PG_ST_MAIL,               /* MAIL sent */
    PG_ST_RCPT,               /* RCPTs sent */
    PG_ST_DATA,               /* DATA sent */
    PG_ST_BODY,               /* sending the message data */
    PG_ST_DATA_END,           /* final dot sent */
    PG_ST_QUIT,               /* QUIT sent */
    PG_ST_CLOSED,             /* closed after QUIT */
    PG_ST_BROKEN,             /* failed; the connection is closed */
    PG_ST_COUNT
} pg_smtp_state;

/* Resolved per-step timeouts in ms (negative: none). */
typedef struct pg_smtp_limits {
    int connect, greeting, ehlo, starttls, auth, mail, rcpt, data, data_block, data_end, rset,
        quit; /* see pigeon_smtp_timeouts */
} pg_smtp_limits;

struct pigeon_smtp {
    pigeon_smtp_opts o;               /* the options, strings pointing to the copies below */
    char *strings[11];                /* owned copies of the option strings (some secret) */
    pg_smtp_limits t;                 /* resolved timeouts */
    pg_hint_family family;            /* provider family for hints */
    pg_conn *conn;                    /* the connection, NULL when closed */
    pg_smtp_state state;              /* where the session is */
    pigeon_smtp_caps caps;            /* capabilities in effect */
    pigeon_smtp_caps caps_pre;        /* capabilities before STARTTLS */
    int had_starttls;                 /* caps_pre is valid */
    int tls_info_valid;               /* tls_info holds the last handshake's details */
    pg_tls_info tls_info;             /* copy of the handshake's details (kept after close) */
    pigeon_auth_mech auth_used;       /* mechanism AUTH used */
    char greeting[512];               /* greeting text */
    int64_t deadline;                 /* the current call's total deadline (0: none) */
    int messages;                     /* transactions started on this connection */
    int dirty;                        /* a transaction was left unfinished: RSET before the next */
    int quit_sent;                    /* QUIT went out with the end of the data (quit_after_data) */
    pigeon_send_result scratch;       /* result used when the caller passes none */
    pigeon_send_result *res;          /* the current call's result */
    pg_buf out;                       /* commands waiting to be written */
    pg_buf data;                      /* dot-stuffed message data waiting to be written */
    unsigned char *chunk;             /* DATA read buffer (PG_SMTP_CHUNK bytes) */
    pg_reply reply;                   /* the reply being read */
    char line[PG_REPLY_LINE_MAX + 3]; /* one reply line with CRLF and NUL */
};

/* Size of message reads and of DATA writes. */
#define PG_SMTP_CHUNK (64 * 1024)

/* ---- smtp.c, used by smtp_data.c ---- */
void pg_smtp_set_state(pigeon_smtp *s, pg_smtp_state st);
void pg_smtp_trace(pigeon_smtp *s, pigeon_transcript_dir dir, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Deadline for one step: now + ms, capped by the call's total deadline. */
int64_t pg_smtp_deadline(const pigeon_smtp *s, int ms);
/* Appends a command line (CRLF added) to s->out and logs it (mask: text logged instead). */
void pg_smtp_cmd(pigeon_smtp *s, const char *mask, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Before a command that is not waiting on PIPELINING replies: nothing may be unread.
 * Data waiting is an early talker (PIGEON_ERR_PROTOCOL), or an unsolicited 421 closing
 * the session (PIGEON_ERR_DEFERRED); either is recorded and the session broken. */
pigeon_err pg_smtp_quiet(pigeon_smtp *s, const char *stage);
/* Writes s->out (after pg_smtp_quiet(), except for QUIT); on failure records it (stage)
 * and breaks the session. */
pigeon_err pg_smtp_flush(pigeon_smtp *s, int timeout_ms, const char *stage);
/* Reads one reply into s->reply; on failure records it (stage) and breaks the session. */
pigeon_err pg_smtp_read_reply(pigeon_smtp *s, int timeout_ms, const char *stage);
/* Records a failure in s->res (the first one only) with our diagnosis. */
void pg_smtp_fail(pigeon_smtp *s, pigeon_fail_class cls, pigeon_err err, const char *stage,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Records a failure caused by the reply r (class from its code unless cls is given). */
void pg_smtp_fail_reply(pigeon_smtp *s, pigeon_fail_class cls, const char *stage, const pg_reply *r,
                        const char *what);
/* Closes the connection and marks the session broken. */
void pg_smtp_break(pigeon_smtp *s);
/* The class for a negative reply code: 4xx deferred, 5xx rejected. */
pigeon_fail_class pg_smtp_class_of(int code);
/* The error code matching a class. */
pigeon_err pg_smtp_err_of(pigeon_fail_class c);
/* Starts a public call: resets res (or the scratch one) and the total deadline. */
void pg_smtp_begin(pigeon_smtp *s, pigeon_send_result *res);
/* Ends a call: fills duration. */
void pg_smtp_end(pigeon_smtp *s, int64_t started_ms);
/* Wall-clock milliseconds. */
int64_t pg_smtp_wall_ms(void);

#endif
