/*
 * pigeon/smtp.h - delivering messages to an SMTP submission or relay server.
 *
 * RFC 5321 (SMTP), RFC 3207 (STARTTLS), RFC 8314 (implicit TLS), RFC 4954 (AUTH),
 * RFC 2920 (PIPELINING), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8),
 * RFC 3461 (DSN), RFC 2034 / RFC 3463 (enhanced status codes).
 *
 * A pigeon_smtp is one connection to one server:
 *
 *     pigeon_smtp_opts o;
 *     pigeon_smtp_opts_init(&o);
 *     o.host = "smtp.qq.com"; o.port = 465; o.user = "me@qq.com"; o.password = code;
 *     pigeon_smtp *s = NULL;
 *     pigeon_send_result r;
 *     pigeon_send_result_init(&r);
 *     if (pigeon_smtp_new(&o, &s) == PIGEON_OK &&
 *         pigeon_smtp_connect(s, &r) == PIGEON_OK)         // greeting, EHLO, TLS, AUTH
 *         pigeon_smtp_send_message(s, msg, &r);            // one transaction or more
 *     pigeon_smtp_quit(s);
 *     pigeon_smtp_free(s);
 *     ... r.status, r.fail_class, r.rcpts[i] ...
 *     pigeon_send_result_cleanup(&r);
 *
 * Several messages may be sent over one connection (RSET is sent between them, pipelined
 * when the server offers PIPELINING). After a network, TLS, protocol or timeout failure
 * the connection is broken and every further call fails with PIGEON_ERR_STATE; after a
 * rejection it stays usable.
 *
 * Security: TLS is on by default (implicit on port 465, STARTTLS otherwise) and STARTTLS
 * is never optional: a server that does not offer it or refuses it ends the session before
 * AUTH and MAIL. Certificates are verified (chain, host name, TLS 1.2 minimum). AUTH is
 * never sent over plaintext. Message data is normalized to CRLF and dot-stuffed so that
 * the body can never end the data early (SMTP smuggling).
 *
 * Thread safety: a pigeon_smtp is used by one thread at a time; distinct ones are
 * independent. The transcript callback runs on the calling thread, during the calls.
 * The library never prints, never reads the environment, never raises SIGPIPE.
 */
#ifndef PIGEON_SMTP_H
#define PIGEON_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/error.h"
#include "pigeon/message.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How TLS is used (the values of pigeon_provider_tls are the same). */
typedef enum pigeon_tls_mode {
    PIGEON_TLS_AUTO = 0,     /* implicit on port 465, STARTTLS (required) otherwise */
    PIGEON_TLS_IMPLICIT = 1, /* TLS from the first byte (RFC 8314, port 465) */
    PIGEON_TLS_STARTTLS = 2, /* plaintext greeting, then STARTTLS, required (RFC 3207) */
    PIGEON_TLS_NONE = 3,     /* plaintext throughout; AUTH is then refused */
} pigeon_tls_mode;

/* The AUTH mechanism. */
typedef enum pigeon_auth_mech {
    PIGEON_AUTH_AUTO = 0,     /* with credentials: the strongest offered (XOAUTH2 with a
                                 token; else CRAM-MD5, PLAIN, LOGIN); without: no AUTH */
    PIGEON_AUTH_NONE = 1,     /* never authenticate */
    PIGEON_AUTH_PLAIN = 2,    /* RFC 4616 */
    PIGEON_AUTH_LOGIN = 3,    /* LOGIN */
    PIGEON_AUTH_CRAM_MD5 = 4, /* RFC 2195 */
    PIGEON_AUTH_XOAUTH2 = 5,  /* OAuth 2.0 bearer token (Gmail, Outlook) */
} pigeon_auth_mech;

/* What kind of failure: the only thing retry logic needs to read. */
typedef enum pigeon_fail_class {
    PIGEON_FAIL_NONE = 0,      /* no failure */
    PIGEON_FAIL_NETWORK = 1,   /* resolve, connect, read, write, timeout: temporary */
    PIGEON_FAIL_TLS = 2,       /* handshake, certificate, STARTTLS missing: permanent until
                                  the configuration or the server changes */
    PIGEON_FAIL_AUTH = 3,      /* credentials refused or no usable mechanism: permanent
                                  (a 454 "temporary authentication failure" is DEFERRED) */
    PIGEON_FAIL_REJECTED = 4,  /* the server refused permanently (5xx) */
    PIGEON_FAIL_DEFERRED = 5,  /* the server refused for now (4xx): retry later */
    PIGEON_FAIL_PROTOCOL = 6,  /* the server broke the protocol (garbage, bounds, injection):
                                  temporary */
    PIGEON_FAIL_TOO_LARGE = 7, /* larger than the server's SIZE, or 552: permanent */
    PIGEON_FAIL_DATA = 8,      /* the message itself could not be read or sent as it is
                                  (read error, SMTPUTF8 needed but not offered): permanent */
    PIGEON_FAIL_CONFIG = 9,    /* our options are wrong or unsafe: permanent */
} pigeon_fail_class;

/* "none", "network", "tls", "auth", "rejected", "deferred", "protocol", "too-large",
 * "data", "config"; "?" for an unknown value. Static strings, thread-safe. */
const char *pigeon_fail_class_name(pigeon_fail_class c);
/* Nonzero if a failure of this class may go away by itself (network, deferred, protocol). */
int pigeon_fail_class_is_temporary(pigeon_fail_class c);
/* "auto", "implicit", "starttls", "none". */
const char *pigeon_tls_mode_name(pigeon_tls_mode m);
/* "auto", "none", "PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2". */
const char *pigeon_auth_mech_name(pigeon_auth_mech m);
/* Parses the names above (case-insensitive; "off" = none, "tls"/"ssl" = implicit).
 * Returns 0, or -1 if unknown (*out untouched). */
int pigeon_tls_mode_parse(const char *s, pigeon_tls_mode *out);
int pigeon_auth_mech_parse(const char *s, pigeon_auth_mech *out);

/* Transcript line directions. */
typedef enum pigeon_transcript_dir {
    PIGEON_TRANSCRIPT_CLIENT = 0, /* a line we sent (credentials replaced by [redacted]) */
    PIGEON_TRANSCRIPT_SERVER = 1, /* a line the server sent (control characters as '?') */
    PIGEON_TRANSCRIPT_INFO = 2,   /* our own note: connecting, TLS established, warnings */
    PIGEON_TRANSCRIPT_DEBUG = 3,  /* state changes "old -> new" */
} pigeon_transcript_dir;

/* Receives one transcript line (NUL-terminated, without CRLF; valid during the call).
 * unix_ms is the wall-clock time in milliseconds since the epoch. */
typedef void (*pigeon_transcript_fn)(void *ctx, pigeon_transcript_dir dir, int64_t unix_ms,
                                     const char *line);

/*
 * VERP (variable envelope return path): gives the envelope sender (MAIL FROM) to use for
 * the message from the plain sender from (an addr-spec, never "") to the recipient rcpt,
 * such as from's local part + a token naming rcpt (pigeon_bounce_verp_encode), so that a
 * bounce names its recipient even when its body does not. *out receives a malloc'd
 * address (freed by the library with free()). Returns 0 (PIGEON_OK), or a pigeon_err code
 * that fails the message before its first command (class PIGEON_FAIL_CONFIG). With it set, each
 * recipient gets its own mail transaction (RFC 5321 3.3: one reverse-path per
 * transaction) over the same connection, pipelined one after the other when the server
 * offers PIPELINING (the end of one's data goes out with the next one's RSET, MAIL, RCPT
 * and DATA); the results stay per recipient. The null reverse-path <> is never rewritten.
 * A raw message to several recipients is read once into memory and sent from there.
 * pigeon_smtp_send_batch and pigeon_smtp_send_pipelined then send the messages one after
 * the other, each as pigeon_smtp_send_message / pigeon_smtp_send_stream would. Called on
 * the sending thread, during the send calls.
 */
typedef int (*pigeon_smtp_sender_fn)(void *ctx, const char *from, const char *rcpt, char **out);

/* Timeouts in milliseconds; 0 picks the default given (RFC 5321 4.5.3.2), negative
 * means no timeout for that step (only the total deadline bounds it). */
typedef struct pigeon_smtp_timeouts {
    int connect_ms;    /* each TCP connect attempt (default 30 s) */
    int greeting_ms;   /* the 220 greeting (5 min), also the implicit TLS handshake */
    int ehlo_ms;       /* EHLO / HELO reply (5 min) */
    int starttls_ms;   /* STARTTLS reply and handshake (2 min) */
    int auth_ms;       /* each AUTH step (2 min) */
    int mail_ms;       /* MAIL reply (5 min) */
    int rcpt_ms;       /* each RCPT reply (5 min) */
    int data_ms;       /* DATA's 354 (2 min) */
    int data_block_ms; /* each block of message data written (3 min) */
    int data_end_ms;   /* the reply to the final dot (10 min) */
    int rset_ms;       /* RSET reply (2 min) */
    int quit_ms;       /* QUIT reply (10 s; a slow QUIT changes nothing) */
} pigeon_smtp_timeouts;

/* How far pigeon_smtp_connect goes (pigeon check --quit-after). */
typedef enum pigeon_smtp_stop {
    PIGEON_STOP_NONE = 0,    /* the whole way: TLS, EHLO, AUTH; the session can send */
    PIGEON_STOP_CONNECT = 1, /* after the TCP connection (closed again at once) */
    PIGEON_STOP_TLS = 2,     /* after TLS is established (implicit: before the greeting;
                                STARTTLS: before the EHLO over TLS); with tls NONE, as EHLO */
    PIGEON_STOP_EHLO = 3,    /* after the last EHLO, before AUTH */
} pigeon_smtp_stop;

/* Connection options. Strings are borrowed by pigeon_smtp_new() only: it copies them
 * (secrets are wiped from its copies when freed). Zero/NULL fields take the defaults. */
typedef struct pigeon_smtp_opts {
    const char *host;        /* server name or IP literal; required */
    uint16_t port;           /* 0: 465 for IMPLICIT, 587 otherwise */
    pigeon_tls_mode tls;     /* AUTO: implicit on 465, STARTTLS otherwise */
    const char *ca_file;     /* PEM file of trusted CAs instead of the system store, or NULL */
    const char *fingerprint; /* SHA-256 pin of the server's certificate (hex, colons
                                optional), checked in addition to the chain, or NULL */
    int insecure;            /* nonzero: skip chain and name checks (said loudly in the
                                transcript and in the TLS info verify_text) */
    const char *helo;        /* our name in EHLO/HELO; NULL: "localhost" (the library does not
                                guess the host name: give the FQDN when relaying) */
    const char *user;        /* AUTH identity, or NULL for no AUTH */
    const char *password;    /* AUTH password (or provider authorization code), or NULL */
    const char *oauth_token; /* XOAUTH2 bearer token, or NULL */
    pigeon_auth_mech auth;   /* AUTO: strongest offered when user is set */
    const char *provider;    /* provider preset name ("qq", "163", "gmail") for hints; NULL:
                                guessed from the host name */
    pigeon_smtp_timeouts timeouts;   /* per-step timeouts */
    int total_timeout_ms;            /* bound on each call (connect, one send, quit) as a whole;
                                        0 for none */
    const char *dsn_notify;          /* RFC 3461 NOTIFY for every RCPT ("SUCCESS,FAILURE,DELAY" or
                                        "NEVER"), or NULL; used only when the server offers DSN */
    const char *dsn_ret;             /* RFC 3461 RET: "FULL" or "HDRS", or NULL */
    const char *dsn_envid;           /* RFC 3461 ENVID (xtext-encoded by us), or NULL */
    int no_pipelining;               /* nonzero: do not pipeline even if offered (for diagnosis) */
    int allow_8bit;                  /* nonzero: text parts may go 8bit when the server offers
                                        8BITMIME (default: 7bit-safe encodings, which every
                                        relay on the path carries unchanged) */
    pigeon_smtp_stop stop_after;     /* for diagnosis (pigeon check): end pigeon_smtp_connect
                                        early; PIGEON_STOP_NONE for a usable session */
    pigeon_transcript_fn transcript; /* transcript callback, or NULL */
    void *transcript_ctx;            /* passed to transcript */
    int transcript_debug;            /* nonzero: also deliver PIGEON_TRANSCRIPT_DEBUG lines */
    pigeon_smtp_sender_fn rcpt_sender; /* VERP: the envelope sender of each recipient, or NULL
                                          (see pigeon_smtp_sender_fn) */
    void *rcpt_sender_ctx;             /* passed to rcpt_sender */
    int quit_after_data; /* nonzero: one message per session (sendmail, a cron job): when the
                            server offers PIPELINING and the transaction is the last, QUIT
                            goes out with the end of the data (RFC 2920 3.1), a round trip
                            saved; pigeon_smtp_quit then reads the reply already asked for */
} pigeon_smtp_opts;

/* Fills o with the defaults (all zero / NULL, tls AUTO, auth AUTO). */
void pigeon_smtp_opts_init(pigeon_smtp_opts *o);

/* Per-recipient outcome. */
typedef enum pigeon_rcpt_status {
    PIGEON_RCPT_PENDING = 0,  /* not tried (the session failed before) */
    PIGEON_RCPT_ACCEPTED = 1, /* accepted and the message data accepted */
    PIGEON_RCPT_REJECTED = 2, /* refused permanently (5xx at RCPT, MAIL or the data) */
    PIGEON_RCPT_DEFERRED = 3, /* refused for now (4xx), or the session failed after it */
} pigeon_rcpt_status;

typedef struct pigeon_rcpt_result {
    char *address;             /* the recipient as sent in RCPT TO (owned) */
    pigeon_rcpt_status status; /* outcome */
    int code;                  /* the reply that decided it (RCPT, or MAIL/DATA/dot when
                                  those failed), 0 if none */
    char enhanced[16];         /* its enhanced status code, or "" */
    char *text;                /* its text (owned), or NULL */
} pigeon_rcpt_result;

/* Overall outcome of a message (or of a connect). */
typedef enum pigeon_send_status {
    PIGEON_SEND_NONE = 0,     /* nothing happened yet, or connect succeeded */
    PIGEON_SEND_SENT = 1,     /* every recipient accepted */
    PIGEON_SEND_PARTIAL = 2,  /* some accepted, others rejected or deferred */
    PIGEON_SEND_DEFERRED = 3, /* none accepted; the failure is temporary */
    PIGEON_SEND_FAILED = 4,   /* none accepted; the failure is permanent */
} pigeon_send_status;

typedef struct pigeon_send_result {
    pigeon_send_status status;    /* overall outcome */
    pigeon_fail_class fail_class; /* the failure's class (of the worst recipient for PARTIAL) */
    pigeon_err err;               /* the matching error code (PIGEON_OK when SENT) */
    const char *stage;            /* where it failed: "connect", "tls", "greeting", "ehlo",
                                     "starttls", "auth", "mail", "rcpt", "data", "dot",
                                     "rset", "quit", or NULL (static) */
    char errmsg[512];             /* our own diagnosis, one line ("" when none) */
    int code;                     /* the server reply that caused the failure (or the final
                                     reply after the data on success), 0 if none */
    char enhanced[16];            /* its enhanced status code, or "" */
    char *reply_text;             /* its text, lines joined with '\n' (owned), or NULL */
    const char *hint;             /* what to do about it (static English), or NULL */
    pigeon_rcpt_result *rcpts;    /* per-recipient results (owned), in the order given */
    size_t rcpt_count;            /* number of rcpts */
    int transactions;             /* MAIL transactions used (more than 1 after 452) */
    int64_t size;                 /* message size announced (SIZE), -1 if unknown */
    int64_t duration_ms;          /* wall time of the call */
} pigeon_send_result;

/* Nonzero if a failed result may go away by itself: a 4xx reply, a failure of a temporary
 * class, or a TLS failure of the handshake itself (err PIGEON_ERR_TLS: the peer reset or
 * sent garbage, STARTTLS was not offered) rather than of the configuration (err
 * PIGEON_ERR_CONFIG: a certificate that does not verify, a fingerprint that does not
 * match, the other TLS mode on the port, only TLS < 1.2) or a 5xx reply. NULL: 0. */
int pigeon_send_result_is_temporary(const pigeon_send_result *r);

/* Zeroes r (status NONE). */
void pigeon_send_result_init(pigeon_send_result *r);
/* Frees what r owns and re-initializes it. NULL is a no-op. */
void pigeon_send_result_cleanup(pigeon_send_result *r);

/* What the server announced in its EHLO reply. */
typedef struct pigeon_smtp_caps {
    int esmtp;             /* EHLO succeeded (else HELO was used, no extensions) */
    int starttls;          /* STARTTLS */
    int pipelining;        /* PIPELINING */
    int eightbitmime;      /* 8BITMIME */
    int smtputf8;          /* SMTPUTF8 */
    int enhanced_codes;    /* ENHANCEDSTATUSCODES */
    int dsn;               /* DSN */
    int chunking;          /* CHUNKING */
    int size_offered;      /* SIZE */
    uint64_t size_max;     /* SIZE's value, 0 when none or unlimited */
    unsigned auth_mechs;   /* bit (1u << pigeon_auth_mech) for each mechanism we know */
    char auth[256];        /* the AUTH line's mechanisms as sent, or "" */
    char server_name[128]; /* the first word of the EHLO reply (the server's name) */
} pigeon_smtp_caps;

/* What TLS established (all "" / 0 when not applicable). */
typedef struct pigeon_smtp_tls_details {
    int active;            /* nonzero when the session is encrypted */
    char version[16];      /* "TLSv1.3" */
    char cipher[64];       /* "TLS_AES_256_GCM_SHA384" */
    char subject[256];     /* the server certificate's subject */
    char issuer[256];      /* its issuer */
    char sans[512];        /* its subjectAltNames */
    char not_after[32];    /* its expiry */
    char fingerprint[96];  /* SHA-256 of the certificate, colon-separated hex */
    long verify_result;    /* X509_V_OK (0) or the X509_V_ERR_* code */
    char verify_text[128]; /* the verification message */
} pigeon_smtp_tls_details;

typedef struct pigeon_smtp pigeon_smtp;

/*
 * Creates an unconnected session with a copy of opts. Errors: PIGEON_ERR_INVALID (NULL
 * opts or out, no host, an unknown enum value), PIGEON_ERR_CONFIG (credentials with
 * tls NONE: AUTH is never sent in plaintext; a forced AUTH mechanism without the secret
 * it needs), PIGEON_ERR_NOMEM. *out is NULL on error.
 */
pigeon_err pigeon_smtp_new(const pigeon_smtp_opts *opts, pigeon_smtp **out);

/* Closes the connection (without QUIT), wipes the secrets and frees. NULL is a no-op. */
void pigeon_smtp_free(pigeon_smtp *s);

/*
 * Connects: resolves and connects (each address in turn), TLS per the mode, greeting,
 * EHLO (HELO if EHLO is refused), STARTTLS and EHLO again, AUTH. res (may be NULL) is
 * reset and on failure gets the class, stage, our diagnosis, the server reply and a hint.
 * Returns PIGEON_OK or the error matching res->fail_class (PIGEON_ERR_NETWORK,
 * _TIMEOUT, _TLS, _AUTH, _PROTOCOL, _REJECTED, _DEFERRED, _CONFIG, _STATE if already
 * connected).
 */
pigeon_err pigeon_smtp_connect(pigeon_smtp *s, pigeon_send_result *res);

/*
 * Sends a composed message: the envelope comes from the message (Sender or From, and
 * To/Cc/Bcc), it is written with 8bit text when the server offers 8BITMIME and with
 * SMTPUTF8 when an address needs it and the server offers it. res (required) is reset
 * and filled: per recipient, and overall. A 452 "too many recipients" moves the rest to
 * a following transaction. Returns PIGEON_OK when every recipient was accepted, else
 * the error of res->fail_class (PIGEON_ERR_REJECTED / _DEFERRED when only some were
 * refused). PIGEON_ERR_STATE if not connected or the connection is broken.
 * The message is not changed but must not be used by another thread meanwhile.
 */
pigeon_err pigeon_smtp_send_message(pigeon_smtp *s, pigeon_message *msg, pigeon_send_result *res);

/*
 * Sends an already formatted message (sendmail mode, the queue) read from read(ctx) to
 * the given envelope: from is the reverse-path address ("" for the null path <>), rcpts
 * the n (>= 1) forward paths, as bare addresses. Line endings may be LF, CR or CRLF: all
 * are sent as CRLF. size is the message size if known (for SIZE), else -1. is_8bit: the
 * message has 8-bit octets (BODY=8BITMIME is then declared if offered). A read error is
 * PIGEON_FAIL_DATA; the connection is then dropped without the final dot, so that a
 * partial message is never delivered. The stream is read once; a 452
 * "too many recipients" leaves the rest DEFERRED for the caller to send again.
 * Returns as pigeon_smtp_send_message; PIGEON_ERR_ADDRESS for an address with spaces,
 * angle brackets or control characters.
 */
pigeon_err pigeon_smtp_send_stream(pigeon_smtp *s, const char *from, const char *const *rcpts,
                                   size_t n, pigeon_read_fn read, void *ctx, int64_t size,
                                   int is_8bit, pigeon_send_result *res);

/*
 * Sends n composed messages (each as by pigeon_smtp_send_message, results[k] for msgs[k]),
 * pipelining across them when the server offers PIPELINING: each message's end of data goes
 * out in one write with the next message's RSET, MAIL, RCPTs and DATA (RFC 2920 3.1 allows
 * message content as the first "command" of a group), so a message costs one round trip
 * instead of two. Differences from a loop of pigeon_smtp_send_message: a 452 "too many
 * recipients" leaves the rest DEFERRED (no following transaction), the total timeout bounds
 * the whole batch, and after a session failure the remaining messages are not sent (their
 * results say so, with the same class). Without PIPELINING it is that loop. NULL entries in
 * msgs are PIGEON_ERR_INVALID for their result only. Returns PIGEON_OK when every message
 * reached every recipient, else the error of the first that did not.
 */
pigeon_err pigeon_smtp_send_batch(pigeon_smtp *s, pigeon_message *const *msgs, size_t n,
                                  pigeon_send_result *results);

/* One already formatted message of a pulled batch (pigeon_smtp_send_pipelined), described
 * as for pigeon_smtp_send_stream. Every pointer is borrowed: it must stay valid until the
 * message's done call. */
typedef struct pigeon_smtp_raw {
    const char *from;         /* reverse-path address ("" for <>) */
    const char *const *rcpts; /* rcpt_count (>= 1) forward paths, bare addresses */
    size_t rcpt_count;        /* number of recipients */
    pigeon_read_fn read;      /* the message, read once; LF, CR or CRLF line endings */
    void *read_ctx;           /* read's context */
    int64_t size;             /* its size if known (SIZE), else -1 (the default) */
    int is_8bit;              /* it has 8-bit octets (BODY=8BITMIME if offered) */
    pigeon_send_result *res;  /* required: where its result goes (reset by the engine) */
    void *user;               /* the caller's, untouched (e.g. which job this is) */
} pigeon_smtp_raw;

/* Asked for the next message: fills *msg (zeroed, size -1) and returns 1, or returns 0
 * for "no more", which ends the batch cleanly after the messages in flight. */
typedef int (*pigeon_smtp_next_fn)(void *ctx, pigeon_smtp_raw *msg);

/* Told that msg's result (msg->res) is final. skipped: the message was pipelined behind an
 * earlier one and the session failed before its data went out (its commands may have gone
 * out, not its data), so nothing of it can have been delivered and it may be sent again at
 * once on another connection; its result holds the session's failure. The first message of
 * a call is never skipped. Called exactly once for every message next gave. */
typedef void (*pigeon_smtp_done_fn)(void *ctx, const pigeon_smtp_raw *msg, int skipped);

/*
 * Sends already formatted messages pulled one at a time from next(ctx), pipelining across
 * them as pigeon_smtp_send_batch does (one round trip per message): next is asked for the
 * following message at the moment its RSET, MAIL, RCPTs and DATA are about to be appended
 * to the current one's end of data, so at most two messages are held, and it may answer
 * "no more" whenever waiting (a rate limit, another account) would be needed. done(ctx,
 * msg, skipped) is called as soon as each message's result is final (its final-dot reply
 * read, or its refusal), before the next one completes, so the caller can record it: a
 * crash then leaves at most one message sent but unrecorded. Results are as for
 * pigeon_smtp_send_stream (validated the same way; an invalid message fails alone), except
 * that a 452 "too many recipients" leaves the rest DEFERRED. After a session failure
 * nothing more is pulled; the message pulled but not tried is done with the session's
 * failure class, and skipped set if its data had not begun. Without PIPELINING (or with
 * no_pipelining) it sends one message at a time, as a loop of pigeon_smtp_send_stream.
 * There is no total deadline (each step keeps its own timeout). Returns PIGEON_OK when
 * every message reached every recipient (or none was pulled), else the error of the first
 * that did not; PIGEON_ERR_INVALID for a NULL s, next or done, or a message without res
 * (the batch then stops, without a done call for it); PIGEON_ERR_STATE (nothing pulled) if
 * not connected or the connection is broken.
 */
pigeon_err pigeon_smtp_send_pipelined(pigeon_smtp *s, pigeon_smtp_next_fn next,
                                      pigeon_smtp_done_fn done, void *ctx);

/* Sends RSET and reads its reply (normally not needed: sends do it between messages).
 * PIGEON_ERR_STATE if not connected; network errors break the connection. */
pigeon_err pigeon_smtp_reset(pigeon_smtp *s);

/* Sends QUIT, reads the reply (bounded by the quit timeout) and closes. Errors are of no
 * consequence to messages already accepted; the connection is closed in every case.
 * NULL or an unconnected session is a no-op returning PIGEON_OK. */
pigeon_err pigeon_smtp_quit(pigeon_smtp *s);

/* Nonzero while the session is connected and usable for another message. */
int pigeon_smtp_is_ready(const pigeon_smtp *s);

/* The capabilities in effect (after STARTTLS, those announced over TLS), and those seen
 * before STARTTLS (NULL if there was no STARTTLS). Owned by s; NULL before EHLO. */
const pigeon_smtp_caps *pigeon_smtp_capabilities(const pigeon_smtp *s);
const pigeon_smtp_caps *pigeon_smtp_capabilities_before_tls(const pigeon_smtp *s);

/* The greeting's text (after "220 "), "" before; owned by s. */
const char *pigeon_smtp_greeting(const pigeon_smtp *s);

/* Fills out with the TLS details (also after a failed handshake in which the server sent
 * a certificate: active is then 0). Returns 0, or -1 if there is nothing to tell. */
int pigeon_smtp_tls_info(const pigeon_smtp *s, pigeon_smtp_tls_details *out);

/* The mechanism AUTH used (PIGEON_AUTH_NONE when none). */
pigeon_auth_mech pigeon_smtp_auth_used(const pigeon_smtp *s);

/* The numeric address connected to, or "". Owned by s. */
const char *pigeon_smtp_peer(const pigeon_smtp *s);

#ifdef __cplusplus
}
#endif
#endif
