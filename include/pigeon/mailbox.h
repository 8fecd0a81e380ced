/*
 * pigeon/mailbox.h - reading and filing mail in the sender's own mailbox: an IMAP client
 * (RFC 9051, RFC 3501) and a POP3 client (RFC 1939).
 *
 * What pigeon needs from a mailbox: a copy of each sent message in the Sent folder
 * (APPEND, with the folder found by its RFC 6154 \Sent attribute), and the bounces and
 * complaints that come back (SEARCH, FETCH or RETR, then MOVE or delete).
 *
 * Both clients connect with TLS verified by default (implicit TLS on 993 / 995, else
 * STARTTLS / STLS, which is then required; TLS "none" refuses to log in), log in at once,
 * and keep one connection. Every argument that reaches the wire is checked: no CR, LF
 * or NUL; IMAP mailbox names are UTF-8 and are sent in modified UTF-7 (RFC 3501 5.1.3),
 * quoted. The transcript callback gets every line with the credentials replaced by
 * "[redacted]". Message bodies are streamed to a sink callback in bounded memory.
 *
 * Errors: PIGEON_ERR_NETWORK, PIGEON_ERR_TIMEOUT (temporary), PIGEON_ERR_TLS (handshake or
 * certificate), PIGEON_ERR_AUTH (login refused: wrong password, or IMAP
 * [AUTHENTICATIONFAILED]), PIGEON_ERR_REJECTED (the server said NO / -ERR to a command),
 * PIGEON_ERR_NOTFOUND (no such folder or message), PIGEON_ERR_PROTOCOL (BAD, or a response
 * the strict parser refuses), PIGEON_ERR_UNSUPPORTED (a needed capability is missing),
 * PIGEON_ERR_INVALID (a bad argument: CR/LF/NUL, invalid UTF-8), PIGEON_ERR_CONFIG (no TLS
 * and a password), PIGEON_ERR_NOMEM. The reason is in pigeon_imap_error() /
 * pigeon_pop3_error(), with the server's own text quoted.
 *
 * Thread safety: one handle per thread; distinct handles are independent.
 */
#ifndef PIGEON_MAILBOX_H
#define PIGEON_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/error.h"
#include "pigeon/smtp.h" /* pigeon_tls_mode, pigeon_transcript_fn */

#ifdef __cplusplus
extern "C" {
#endif

/* How to log in. */
typedef enum pigeon_store_auth {
    PIGEON_STORE_AUTH_AUTO = 0,  /* IMAP: AUTHENTICATE PLAIN when offered, else LOGIN;
                                    POP3: USER/PASS */
    PIGEON_STORE_AUTH_PLAIN = 1, /* IMAP AUTHENTICATE PLAIN (RFC 4616); POP3 AUTH PLAIN
                                    (RFC 5034) */
    PIGEON_STORE_AUTH_LOGIN = 2, /* IMAP LOGIN; POP3 USER/PASS */
} pigeon_store_auth;

/* Connection settings of either client (strings borrowed for the handle's life). */
typedef struct pigeon_store_opts {
    const char *host;                /* server name or address (required) */
    uint16_t port;                   /* 0: 993 (IMAP) / 995 (POP3) */
    pigeon_tls_mode tls;             /* AUTO: implicit on 993/995, STARTTLS (required) otherwise */
    const char *ca_file;             /* PEM CAs instead of the system store, or NULL */
    const char *fingerprint;         /* SHA-256 pin of the server certificate, or NULL */
    int insecure;                    /* nonzero: skip certificate checks (said in the transcript) */
    const char *user;                /* login (required) */
    const char *password;            /* password or authorization code (required; never logged) */
    pigeon_store_auth auth;          /* mechanism */
    int timeout_ms;                  /* each command's deadline (0: 60 s; the transfer of a big
                                        message gets this much per 1 MiB too) */
    int connect_timeout_ms;          /* each TCP connect (0: 30 s) */
    pigeon_transcript_fn transcript; /* every line, credentials redacted, or NULL */
    void *transcript_ctx;            /* passed to transcript */
} pigeon_store_opts;

/* Receives a message's bytes as they arrive (any chunking). Nonzero stops the transfer
 * (the call then fails with PIGEON_ERR_IO, and the connection is closed). */
typedef int (*pigeon_store_sink_fn)(void *ctx, const void *data, size_t n);

/* Where a provider's IMAP and POP3 servers are (implicit TLS ports). */
typedef struct pigeon_store_preset {
    const char *provider;  /* the preset name of pigeon/provider.h ("qq") */
    const char *imap_host; /* "imap.qq.com", or NULL when the provider has no IMAP */
    uint16_t imap_port;    /* 993 */
    const char *pop3_host; /* "pop.qq.com", or NULL */
    uint16_t pop3_port;    /* 995 */
} pigeon_store_preset;

/* The IMAP and POP3 servers of a provider preset by name (case-insensitive; "ses-..." and
 * relays have none), or NULL. Static data; thread-safe. */
const pigeon_store_preset *pigeon_store_preset_lookup(const char *provider);

/* ---- IMAP ---- */

typedef struct pigeon_imap pigeon_imap;

/*
 * Connects, reads the greeting, gets the capabilities, starts TLS (STARTTLS when the
 * mode says so: refused or missing is PIGEON_ERR_TLS), and logs in. On success *out is
 * the handle (free with pigeon_imap_free). On failure *out is still set when a handle
 * could be made, so that pigeon_imap_error() can tell why; free it.
 */
pigeon_err pigeon_imap_connect(const pigeon_store_opts *opts, pigeon_imap **out);

/* Nonzero when the server announced the capability ("MOVE", "UIDPLUS", "LITERAL+"). */
int pigeon_imap_has_capability(const pigeon_imap *m, const char *cap);

/* One LIST entry: name in UTF-8 (decoded from modified UTF-7), the attributes as the
 * server wrote them ("\HasNoChildren \Sent"), and the hierarchy delimiter (0 if none). */
typedef int (*pigeon_imap_list_fn)(void *ctx, const char *name, const char *attributes,
                                   char delimiter);

/* Lists every mailbox (LIST "" "*", with RETURN (SPECIAL-USE) when the server has
 * SPECIAL-USE, RFC 6154). A nonzero return from fn stops the listing (not an error). */
pigeon_err pigeon_imap_list(pigeon_imap *m, pigeon_imap_list_fn fn, void *ctx);

/* The name (UTF-8, malloc'd into *name) of the mailbox with the RFC 6154 attribute use
 * ("\Sent", "\Junk", ...): PIGEON_ERR_NOTFOUND when none has it. */
pigeon_err pigeon_imap_find_special(pigeon_imap *m, const char *use, char **name);

/* What SELECT / EXAMINE reported. */
typedef struct pigeon_imap_mailbox_info {
    uint32_t exists;      /* messages in the mailbox */
    uint32_t uidvalidity; /* UIDVALIDITY (RFC 9051 2.3.1.1) */
    uint32_t uidnext;     /* UIDNEXT, 0 if not sent */
} pigeon_imap_mailbox_info;

/* Selects mailbox (UTF-8 name) read-write, or with readonly EXAMINEs it. info may be
 * NULL. PIGEON_ERR_NOTFOUND when it does not exist. */
pigeon_err pigeon_imap_select(pigeon_imap *m, const char *mailbox, int readonly,
                              pigeon_imap_mailbox_info *info);

/*
 * UID SEARCH in the selected mailbox. criteria is a search-key string such as "ALL",
 * "UNSEEN" or "SINCE 1-Feb-2026" (ASCII atoms, numbers and parentheses only: a quoted
 * string or literal is refused, as is any control character); NULL means ALL. The UIDs,
 * ascending, are malloc'd into *uids (NULL when none), their number in *n.
 */
pigeon_err pigeon_imap_uid_search(pigeon_imap *m, const char *criteria, uint32_t **uids, size_t *n);

/* UID SEARCH HEADER field "value" (RFC 9051 6.4.4: messages whose field contains value),
 * for finding a message by its Message-ID. field is a header name (RFC 5322 ftext), value
 * printable ASCII (sent quoted); anything else is PIGEON_ERR_INVALID. Results as for
 * pigeon_imap_uid_search. */
pigeon_err pigeon_imap_uid_search_header(pigeon_imap *m, const char *field, const char *value,
                                         uint32_t **uids, size_t *n);

/* Adds flags (system flags or keywords such as "$PigeonRead", as for APPEND) to a message
 * of the selected mailbox (UID STORE +FLAGS.SILENT). */
pigeon_err pigeon_imap_uid_add_flags(pigeon_imap *m, uint32_t uid, const char *flags);

/* Fetches the whole message with this UID (BODY.PEEK[]: the \Seen flag is not set) and
 * streams its exact bytes to sink. PIGEON_ERR_NOTFOUND when no such message. *size, if
 * not NULL, gets the length. */
pigeon_err pigeon_imap_uid_fetch(pigeon_imap *m, uint32_t uid, pigeon_store_sink_fn sink, void *ctx,
                                 uint64_t *size);

/*
 * Appends a message of size bytes, read from read (pigeon_read_fn of message.h: called
 * until size bytes came; fewer is PIGEON_ERR_IO) to mailbox with flags (such as "\Seen";
 * NULL or "" for none; system flags and keywords only). Uses a non-synchronizing
 * literal when the server has LITERAL+ (RFC 7888), else waits for the continuation.
 * With UIDPLUS, *uid (if not NULL) gets the new message's UID from [APPENDUID], else 0.
 * A missing mailbox is PIGEON_ERR_NOTFOUND (the server's [TRYCREATE]).
 */
pigeon_err pigeon_imap_append(pigeon_imap *m, const char *mailbox, const char *flags,
                              int (*read)(void *ctx, void *buf, size_t cap, size_t *n),
                              void *read_ctx, uint64_t size, uint32_t *uid);

/* Moves a message of the selected mailbox to dest: UID MOVE (RFC 6851) when offered,
 * else UID COPY, UID STORE +FLAGS.SILENT (\Deleted) and UID EXPUNGE (RFC 4315; plain
 * EXPUNGE without UIDPLUS would expunge others' deleted messages, so then the message is
 * only flagged and PIGEON_OK is returned with a note in the transcript). */
pigeon_err pigeon_imap_uid_move(pigeon_imap *m, uint32_t uid, const char *dest);

/* Deletes a message of the selected mailbox (\Deleted, then UID EXPUNGE as above). */
pigeon_err pigeon_imap_uid_delete(pigeon_imap *m, uint32_t uid);

/* Waits in IDLE (RFC 2177) until the server reports a change (EXISTS, EXPUNGE) or
 * timeout_ms passes, then ends IDLE. *changed is 1 when something changed.
 * PIGEON_ERR_UNSUPPORTED without the IDLE capability. */
pigeon_err pigeon_imap_idle(pigeon_imap *m, int timeout_ms, int *changed);

/* LOGOUT (best effort). The handle stays to be freed. */
pigeon_err pigeon_imap_logout(pigeon_imap *m);

/* Closes and frees; NULL is a no-op. */
void pigeon_imap_free(pigeon_imap *m);

/* The last failure's reason (ours, with the server's text). Never NULL; owned by m. */
const char *pigeon_imap_error(const pigeon_imap *m);

/* ---- POP3 ---- */

typedef struct pigeon_pop3 pigeon_pop3;

/* Connects, reads the greeting, CAPA, STLS when the mode says so (RFC 2595), and logs
 * in (USER/PASS, or AUTH PLAIN). *out as for pigeon_imap_connect. */
pigeon_err pigeon_pop3_connect(const pigeon_store_opts *opts, pigeon_pop3 **out);

/* STAT: number of messages and their total size. */
pigeon_err pigeon_pop3_stat(pigeon_pop3 *p, size_t *count, uint64_t *size);

/* UIDL: calls fn for each message number and unique id (RFC 1939 7). A nonzero return
 * stops the listing. PIGEON_ERR_UNSUPPORTED when the server has no UIDL. */
pigeon_err pigeon_pop3_uidl(pigeon_pop3 *p, int (*fn)(void *ctx, unsigned number, const char *uid),
                            void *ctx);

/* RETR: streams the message (dot-unstuffed, CRLF line ends, without the final ".") to
 * sink. *size, if not NULL, gets its length. */
pigeon_err pigeon_pop3_retr(pigeon_pop3 *p, unsigned number, pigeon_store_sink_fn sink, void *ctx,
                            uint64_t *size);

/* DELE: marks the message deleted (done at QUIT). */
pigeon_err pigeon_pop3_dele(pigeon_pop3 *p, unsigned number);

/* QUIT: the deletions take effect (RFC 1939 6). Its failure means they did not. */
pigeon_err pigeon_pop3_quit(pigeon_pop3 *p);

/* Closes and frees; NULL is a no-op. Without QUIT, deletions are undone by the server. */
void pigeon_pop3_free(pigeon_pop3 *p);

/* The last failure's reason. Never NULL; owned by p. */
const char *pigeon_pop3_error(const pigeon_pop3 *p);

#ifdef __cplusplus
}
#endif
#endif
