/*
 * smtpd.h - the server side of SMTP submission as a pure state machine (internal).
 *
 * RFC 5321 (the protocol), RFC 6409 (message submission), RFC 3207 (STARTTLS), RFC 4954
 * (AUTH PLAIN and LOGIN), RFC 2920 (PIPELINING), RFC 1870 (SIZE), RFC 6152 (8BITMIME),
 * RFC 6531 (SMTPUTF8), RFC 2034 (ENHANCEDSTATUSCODES), RFC 3030 (CHUNKING, BDAT).
 *
 * No I/O: the caller feeds the octets it read with pg_smtpd_feed() and sends what
 * pg_smtpd_out() holds. The session stops at every point where it needs the world:
 *
 *   PG_SMTPD_AUTH      check the credentials (pg_smtpd_auth_secret()); answer with
 *                      pg_smtpd_decide(235 or 535/454...).
 *   PG_SMTPD_MAIL      check the sender against the policy (pg_smtpd_mail_from());
 *                      answer with pg_smtpd_decide(250, or 4xx/5xx).
 *   PG_SMTPD_MESSAGE   the message is complete (pg_smtpd_message_take()); store it
 *                      durably, then pg_smtpd_decide(250 or 4xx/5xx).
 *   PG_SMTPD_STARTTLS  the 220 is in the output: send it, throw away every octet the
 *                      client sent after the STARTTLS line (RFC 3207 4.2: it came in
 *                      the clear and must not be acted on), run the handshake, then call
 *                      pg_smtpd_tls_started().
 *   PG_SMTPD_CLOSE     send the output and close (QUIT, too many errors, or a bare
 *                      CR or LF in a message: see below).
 *
 * Pipelined commands (RFC 2920) are processed in order from one buffer; their replies
 * accumulate in the output, which the caller sends when the input runs dry.
 *
 * Strictness (RFC 5321 4.5.3.1, and what stops SMTP smuggling):
 *  - a command line is at most 1000 octets with its CRLF (500 5.5.2 otherwise); a line
 *    ended by a bare LF, or holding a CR that does not end it or a NUL, is refused (500);
 *  - in DATA, a text line is at most 1000 octets with its CRLF and holds no NUL: such a
 *    message is refused (554 5.6.0) at its end; the end of data is only CRLF "." CRLF,
 *    and a bare LF or bare CR anywhere in the data closes the session with 521 5.5.2
 *    (Postfix's smtpd_forbid_bare_newline): the client and we might disagree on where
 *    the message ends, so nothing after it can be trusted;
 *  - MAIL before EHLO, RCPT before MAIL, DATA before RCPT... are 503 5.5.1; more than
 *    max_rcpts recipients 452 4.5.3; a message over max_size 552 5.3.4; unknown commands
 *    500 5.5.1; after max_errors error replies, 421 4.7.0 and close.
 *
 * Thread safety: a session belongs to one thread at a time.
 */
#ifndef PG_SMTPD_H
#define PG_SMTPD_H

#include <stddef.h>
#include <time.h>

#include "pigeon/error.h"

#define PG_SMTPD_LINE_MAX 1000 /* RFC 5321 4.5.3.1.4/4.5.3.1.6: octets with the CRLF */

typedef struct pg_smtpd pg_smtpd;

/* What pg_smtpd_feed() stopped for. */
typedef enum pg_smtpd_event {
    PG_SMTPD_NEED_MORE = 0, /* the input is used up: send the output, read more */
    PG_SMTPD_AUTH,          /* credentials to check, then pg_smtpd_decide() */
    PG_SMTPD_MAIL,          /* a sender to check, then pg_smtpd_decide() */
    PG_SMTPD_MESSAGE,       /* a message to store, then pg_smtpd_decide() */
    PG_SMTPD_STARTTLS,      /* start TLS, then pg_smtpd_tls_started() */
    PG_SMTPD_CLOSE,         /* send the output, then close the connection */
    PG_SMTPD_BUSY,          /* an event is waiting for pg_smtpd_decide(): nothing read */
} pg_smtpd_event;

/* Settings; zero fields take the defaults in parentheses. Strings are copied. */
typedef struct pg_smtpd_opts {
    const char *hostname;  /* our name: greeting, EHLO, Received ("localhost") */
    const char *peer_ip;   /* the client's address as text, for Received ("unknown") */
    size_t max_size;       /* octets of a message as received (10485760); SIZE */
    unsigned max_rcpts;    /* recipients per message (100) */
    unsigned max_errors;   /* error replies before 421 and close (10) */
    int tls_available;     /* a certificate is configured: offer STARTTLS */
    int tls_active;        /* the connection is already TLS (implicit TLS, port 465) */
    int auth_plaintext_ok; /* AUTH is allowed without TLS (a loopback client) */
    int auth_required;     /* MAIL needs a successful AUTH first */
} pg_smtpd_opts;

/* A new session; its greeting (220) is already in the output. NULL without memory. */
pg_smtpd *pg_smtpd_new(const pg_smtpd_opts *opts);
/* Frees the session, wiping credentials. NULL does nothing. */
void pg_smtpd_free(pg_smtpd *s);

/*
 * Consumes input from buf[0..len): *consumed gets the octets used. An incomplete
 * command line is not consumed (feed it again with more after it); message text is
 * consumed as it comes. Returns the event that stopped it (see above). now is the time
 * written in the Received field of a message begun in this call.
 */
pg_smtpd_event pg_smtpd_feed(pg_smtpd *s, const char *buf, size_t len, size_t *consumed,
                             time_t now);

/*
 * Answers the waiting event (AUTH, MAIL, MESSAGE) with a reply: code (2xx accepts),
 * enhanced status code ("2.1.0"), text (one line; CR, LF and other controls become '?').
 * Returns PIGEON_ERR_STATE when no event waits.
 */
pigeon_err pg_smtpd_decide(pg_smtpd *s, int code, const char *enhanced, const char *text);

/* The handshake after STARTTLS succeeded: the session starts over (RFC 3207 4.2: the
 * client must say EHLO again). desc names the protocol and cipher for Received
 * ("TLS1.3 TLS_AES_256_GCM_SHA384"), or NULL. */
void pg_smtpd_tls_started(pg_smtpd *s, const char *desc);

/* Replies waiting to be sent: *len octets at the returned pointer (NULL when none). */
const char *pg_smtpd_out(const pg_smtpd *s, size_t *len);
/* Drops the first n octets of the output (sent). */
void pg_smtpd_out_consume(pg_smtpd *s, size_t n);

/* PG_SMTPD_AUTH: the password (an API key) and the identity the client gave. Valid
 * until pg_smtpd_decide(), which wipes them. */
const char *pg_smtpd_auth_secret(const pg_smtpd *s);
const char *pg_smtpd_auth_identity(const pg_smtpd *s);
/* After a successful AUTH, a name for the authenticated client in Received (never the
 * secret: the caller passes the key's id). */
void pg_smtpd_set_auth_name(pg_smtpd *s, const char *name);
/* Nonzero after a successful AUTH. */
int pg_smtpd_authenticated(const pg_smtpd *s);

/* The envelope: the reverse-path without <> ("" for the null sender), and the
 * recipients as given (without <> and parameters). Valid until the transaction ends. */
const char *pg_smtpd_mail_from(const pg_smtpd *s);
size_t pg_smtpd_rcpt_count(const pg_smtpd *s);
const char *pg_smtpd_rcpt(const pg_smtpd *s, size_t i);

/* PG_SMTPD_MESSAGE: takes the message (our Received field, then the text as the client
 * sent it without dot-stuffing, CRLF line endings), malloc'd, for the caller to free.
 * NULL when already taken. */
char *pg_smtpd_message_take(pg_smtpd *s, size_t *len);

/* The current state's name ("ready", "rcpt", "data"...), for logs and tests. */
const char *pg_smtpd_state_name(const pg_smtpd *s);

#endif
