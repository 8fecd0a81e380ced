/*
 * smtpd_int.h - what smtpd.c (commands) and smtpd_data.c (message text: DATA and BDAT,
 * the Received field) share: one unit split for size.
 */
#ifndef PG_SMTPD_INT_H
#define PG_SMTPD_INT_H

#include "smtpd/smtpd.h"
#include "util/buf.h"

/* The session's states (state_names in smtpd.c follows this order). */
typedef enum smtpd_state {
    ST_INIT,       /* greeted; no EHLO/HELO yet */
    ST_READY,      /* EHLO/HELO done, no transaction */
    ST_MAIL,       /* MAIL accepted, no recipient yet */
    ST_RCPT,       /* at least one recipient */
    ST_DATA,       /* reading DATA text up to CRLF.CRLF */
    ST_BDAT,       /* reading a BDAT chunk's octets */
    ST_AUTH_PLAIN, /* 334 sent: waiting for the PLAIN response */
    ST_AUTH_USER,  /* 334 sent: waiting for the LOGIN user name */
    ST_AUTH_PASS,  /* 334 sent: waiting for the LOGIN password */
    ST_WAIT,       /* an event waits for pg_smtpd_decide() */
    ST_TLS,        /* STARTTLS accepted: waiting for the handshake */
    ST_CLOSED,     /* QUIT or a fatal error: nothing more is read */
    ST_COUNT
} smtpd_state;

/* Where the message-text scanner stands within a line (smtpd_data.c). */
typedef enum smtpd_text {
    TX_LINE_START, /* after CRLF (or at the start) */
    TX_IN_LINE,    /* inside a line */
    TX_CR,         /* a CR was seen: only LF may follow */
    TX_DOT,        /* DATA: the line so far is one "." */
    TX_DOT_CR,     /* DATA: the line so far is "." CR: LF ends the message */
} smtpd_text;

struct pg_smtpd {
    smtpd_state state;            /* where the dialogue is */
    pg_smtpd_event waiting;       /* ST_WAIT: the event waiting for a decision */
    pg_buf out;                   /* replies not yet sent */
    char hostname[256];           /* our name */
    char peer_ip[64];             /* the client's address */
    char helo[256];               /* what the client called itself */
    char tls_desc[128];           /* protocol and cipher, "" without TLS */
    char auth_name[128];          /* who authenticated (the key id), "" if nobody */
    size_t max_size;              /* octets of a message */
    unsigned max_rcpts;           /* recipients per message */
    unsigned max_errors;          /* error replies before closing */
    unsigned errors;              /* error replies so far */
    int esmtp;                    /* EHLO (not HELO) was used */
    int tls_available;            /* STARTTLS can be offered */
    int tls_active;               /* the connection is encrypted */
    int auth_plaintext_ok;        /* AUTH without TLS is allowed */
    int auth_required;            /* MAIL needs AUTH */
    int authenticated;            /* AUTH succeeded */
    int skipping;                 /* discarding the rest of a command line over the limit */
    pg_buf auth_user;             /* AUTH: the identity given */
    pg_buf auth_pass;             /* AUTH: the secret given (wiped) */
    char *mail_from;              /* the reverse-path, "" for <>; NULL outside a transaction */
    int smtputf8;                 /* MAIL had SMTPUTF8 */
    char **rcpts;                 /* accepted recipients */
    size_t nrcpts;                /* how many */
    size_t rcpts_cap;             /* slots allocated */
    unsigned rcpt_tries;          /* RCPT commands in this transaction */
    pg_buf msg;                   /* the message being received (Received field first) */
    size_t msg_text;              /* octets of msg before the client's text (our field) */
    size_t wire;                  /* octets of message text received (after un-stuffing) */
    smtpd_text text;              /* the text scanner's position in its line */
    size_t line_len;              /* octets of the current text line so far */
    int too_big;                  /* the text passed max_size: refused at its end */
    int long_line;                /* a text line passed 1000 octets: refused at its end */
    int has_nul;                  /* the text held a NUL: refused at its end */
    int bare_newline;             /* BDAT text held a bare CR or LF: refused at its end */
    int bdat_open;                /* a BDAT transfer has begun (DATA is no longer allowed) */
    int bdat_last;                /* the chunk being read is the LAST one */
    int bdat_discard;             /* the chunk is read only to be thrown away */
    smtpd_state bdat_back;        /* the state to return to after a discarded chunk */
    unsigned long long bdat_left; /* octets of the chunk still to read */
    time_t now;                   /* the time of the current feed */
};

/* smtpd.c */
void pg_smtpd_set_state(pg_smtpd *s, smtpd_state to);
void pg_smtpd_reply(pg_smtpd *s, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* An error reply that counts toward max_errors; returns 1 when the session closed. */
int pg_smtpd_error(pg_smtpd *s, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void pg_smtpd_reset_transaction(pg_smtpd *s);

/* smtpd_data.c */
/* Begins a message: the Received field into msg, the scanner at a line start. */
void pg_smtpd_text_begin(pg_smtpd *s);
/* DATA: scans buf until CRLF.CRLF; *consumed octets used. Returns the event to report
 * (PG_SMTPD_MESSAGE at the end of an acceptable message, CLOSE on a bare newline,
 * NEED_MORE otherwise; refusals are replied to here). */
pg_smtpd_event pg_smtpd_data_feed(pg_smtpd *s, const char *buf, size_t len, size_t *consumed);
/* BDAT: the chunk's octets; the same results. */
pg_smtpd_event pg_smtpd_bdat_feed(pg_smtpd *s, const char *buf, size_t len, size_t *consumed);

#endif
