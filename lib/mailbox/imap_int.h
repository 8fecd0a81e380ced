/*
 * imap_int.h - the IMAP client's handle and the engine shared by imap.c (connection,
 * responses, login) and imap_cmd.c (the mailbox commands) (internal).
 */
#ifndef PG_IMAP_INT_H
#define PG_IMAP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "mailbox/imap_parse.h"
#include "mailbox/store_conn.h"
#include "pigeon/mailbox.h"
#include "util/buf.h"

/* Largest response held in memory (a SEARCH answer with ~500,000 UIDs). Message bodies
 * are streamed, not held. */
#define PG_IMAP_RESP_MAX ((size_t)4 * 1024 * 1024)
/* Literals other than message bodies are small (mailbox names, flags). */
#define PG_IMAP_INLINE_LITERAL_MAX ((size_t)1024 * 1024)

/* The client's states (RFC 9051 3). */
typedef enum pg_imap_state {
    PG_IMAP_S_START = 0,    /* not connected */
    PG_IMAP_S_NOAUTH = 1,   /* greeted, not logged in */
    PG_IMAP_S_AUTH = 2,     /* logged in */
    PG_IMAP_S_SELECTED = 3, /* a mailbox is selected */
    PG_IMAP_S_LOGOUT = 4,   /* logged out or connection lost */
} pg_imap_state;

struct pigeon_imap;
/* Called for each untagged response of a command (besides the common handling). */
typedef pigeon_err (*pg_imap_untagged_fn)(struct pigeon_imap *m, const pg_imap_resp *r, void *ctx);

struct pigeon_imap {
    pg_store_conn sc;          /* the connection and its buffer */
    pg_imap_state state;       /* where the session is */
    unsigned tag_seq;          /* the number of the next tag ("A1", "A2"...) */
    char tag[16];              /* the tag of the command in progress */
    char caps[2048];           /* " CAP1 CAP2 " upper-case, from the last CAPABILITY */
    pg_buf resp;               /* the response being read (literals inline) */
    pg_imap_tok *toks;         /* the parser's token array */
    size_t toks_cap;           /* its size */
    pg_imap_resp last;         /* the last tagged response (points into resp) */
    char last_text[512];       /* its text with the response code, for errors */
    char last_code[32];        /* its response code's name ("TRYCREATE"), or "" */
    pigeon_store_sink_fn sink; /* streaming FETCH bodies to here, or NULL */
    void *sink_ctx;            /* for sink */
    uint64_t streamed;         /* bytes of the body streamed to sink */
    int streamed_any;          /* a body literal was streamed in this command */
    int return_untagged;       /* IDLE: pg_imap_wait returns after each untagged response
                                  with *cont = 2 */
};

/* Sends "TAG " + the command + CRLF; masked (if not NULL) is what the transcript shows
 * instead of the command. */
pigeon_err pg_imap_send(pigeon_imap *m, const char *masked, const char *cmd, size_t len);

/* Reads responses until the tagged completion of the current command; untagged ones go
 * to fn (may be NULL), after the common handling (CAPABILITY, BYE). Returns PIGEON_OK
 * for OK; for NO or BAD the error given (no_err, or PIGEON_ERR_PROTOCOL for BAD) with the
 * reason "what: server said ..." set. A continuation request ("+") is returned as
 * PIGEON_OK with *cont set when cont is not NULL (else it is a protocol error). */
pigeon_err pg_imap_wait(pigeon_imap *m, pg_imap_untagged_fn fn, void *ctx, const char *what,
                        pigeon_err no_err, int *cont);

/* Appends a mailbox name as a quoted string in modified UTF-7 (RFC 3501 5.1.3).
 * PIGEON_ERR_INVALID for a control character or invalid UTF-8 (reason set). */
pigeon_err pg_imap_put_mailbox(pigeon_imap *m, pg_buf *cmd, const char *name);

/* Reads the capabilities from a CAPABILITY response's tokens or a [CAPABILITY ...] code. */
void pg_imap_set_caps(pigeon_imap *m, const char *text, size_t len);

/* A transcript note of the client. */
void pg_imap_note(pigeon_imap *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
