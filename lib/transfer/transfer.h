/*
 * transfer.h - the queue export format: moving a spool between backends and hosts
 * (`pigeon queue export` / `pigeon queue import`; internal).
 *
 * The format is JSON Lines (RFC 8259 values, one per line, UTF-8, LF-terminated):
 *
 *   {"format":"pigeon-queue","version":1,"exported_ms":1764684000000,"backend":"sqlite"}
 *   {"queue_id":"01JDX8Q4ZB7M3K9V0T2C5R6N8P","account":"main","mail_from":"a@example.org",
 *    "message_id":"<x@example.org>","created_ms":1764683990000,"size":1234,
 *    "sha256":"<64 hex>","recipients":[{"address":"b@example.net","state":"deferred",
 *    "attempts":2,"next_ms":1764684100000,"error":14,"code":451,"enhanced_code":"4.3.0",
 *    "text":"try later","updated_ms":1764683999000}],"body":"<base64 of the message>"}
 *   ...
 *   {"end":true,"messages":1}
 *
 * A first line names the format and its version (a reader refuses a newer version), one
 * line per message carries its envelope, its recipients' states (queued, inflight,
 * deferred, delivered, failed) with their attempts, next attempt time, our error code
 * (pigeon_err), the server's last reply, and the exact stored bytes as base64 (RFC 4648
 * 4, no line breaks) with their size and SHA-256. Times are integer milliseconds since
 * the Unix epoch, so nothing is rounded. A last line counts the messages, so that a cut
 * file is told from a complete one. Keys may come in any order; unknown keys are skipped
 * (a later version may add some). Strings that were not valid UTF-8 in the spool (a
 * server's reply text) are written with U+FFFD in place of the bad bytes.
 *
 * The reader checks every field (types, ranges, control characters, the state names,
 * the queue id's alphabet) and a message's body against its size and SHA-256 before
 * storing it; a line it refuses is reported with its number and reason, and nothing of
 * that line is stored. Memory: export streams each body (one chunk at a time); import
 * holds one line at a time (a message's base64, about 4/3 of its size) and stores the
 * body in chunks: bounded by the largest message, whatever the number of messages.
 */
#ifndef PG_TRANSFER_H
#define PG_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/spool.h"
#include "spool/spool_import.h"

/* The format version this code writes, and the newest it reads. */
#define PG_TRANSFER_VERSION 1
/* The most recipients one message line may carry. */
#define PG_TRANSFER_MAX_RCPTS 10000

/* What a line is. */
typedef enum pg_transfer_kind {
    PG_TRANSFER_HEADER = 1, /* the first line */
    PG_TRANSFER_MESSAGE,    /* a message */
    PG_TRANSFER_END,        /* the last line */
} pg_transfer_kind;

/* One parsed line. Strings point into the line (decoded in place); rcpts is malloc'd
 * (free with pg_transfer_line_cleanup). */
typedef struct pg_transfer_line {
    pg_transfer_kind kind;       /* which line */
    int64_t version;             /* HEADER: the format version */
    int64_t messages;            /* END: the number of messages written */
    pg_spool_import_msg msg;     /* MESSAGE: the envelope and recipients */
    pg_spool_import_rcpt *rcpts; /* MESSAGE: the recipients (msg.rcpts) */
    int64_t size;                /* MESSAGE: the body's size */
    unsigned char sha256[32];    /* MESSAGE: the body's SHA-256 */
    const char *body;            /* MESSAGE: the body's base64 (points into the line) */
    size_t body_len;             /* its length in characters */
} pg_transfer_line;

/*
 * Parses one line (len bytes at line, without its LF; it is modified: strings are
 * decoded in place). Pure: no I/O. Returns PIGEON_OK, or PIGEON_ERR_INVALID with the
 * reason in err (errlen bytes, NUL-terminated) for anything that is not a valid line of
 * this format (bad JSON, a missing or ill-typed field, a bad value), or
 * PIGEON_ERR_NOMEM. out is always safe to clean up.
 */
pigeon_err pg_transfer_line_parse(char *line, size_t len, pg_transfer_line *out, char *err,
                                  size_t errlen);
void pg_transfer_line_cleanup(pg_transfer_line *line);

/* Decodes the base64 body of a parsed line in pieces: a pigeon_read_fn over a cursor. */
typedef struct pg_transfer_body {
    const char *b64;        /* the base64 left to decode */
    size_t left;            /* its length */
    unsigned char carry[3]; /* bytes of a decoded group not handed out yet */
    size_t ncarry;          /* how many */
    size_t carry_at;        /* the next of them */
    int bad;                /* nonzero once the text proved not to be base64 */
} pg_transfer_body;
/* Returns 0, or PIGEON_ERR_INVALID when the text is not base64 (RFC 4648 4: padding only
 * at the end, where it may also be left out; no whitespace). */
int pg_transfer_body_read(void *ctx, void *buf, size_t cap, size_t *n);

/* Where the writer's bytes go: returns 0, or nonzero to stop (an I/O error). */
typedef int (*pg_transfer_write_fn)(void *ctx, const void *data, size_t len);

/* Counts of an export or an import. */
typedef struct pg_transfer_stats {
    size_t messages; /* messages written, or imported */
    size_t present;  /* import: skipped, their queue id was already in the spool */
    size_t finished; /* import: skipped, every recipient was delivered */
    size_t vanished; /* export: listed but gone before they were read (delivered) */
    int64_t bytes;   /* message bytes written or imported */
    size_t line;     /* import: the line being read (for the error) */
} pg_transfer_stats;

/*
 * Writes the whole spool (or one account's messages, account non-NULL) in the format
 * above. list lists the messages; read (another handle on the same spool: a listing may
 * not call into its own handle) reads each one's recipients and body as the listing
 * goes, so memory stays bounded. A message delivered and removed between the two is
 * skipped (stats->vanished). backend names the source in the header. Returns PIGEON_OK,
 * PIGEON_ERR_IO when write failed, or the spool's error (err says which).
 */
pigeon_err pg_transfer_export(pigeon_spool *list, pigeon_spool *read, const char *account,
                              const char *backend, int64_t now_ms, pg_transfer_write_fn write,
                              void *ctx, pg_transfer_stats *stats, char *err, size_t errlen);

/*
 * Reads the format from read(ctx) and stores each message into spool (pg_spool_import:
 * one message atomically, a queue id already present skipped), committing in batches.
 * Lines longer than max_line bytes are refused. Stops at the first bad line, after
 * committing the messages before it: PIGEON_ERR_INVALID (bad input, a body that does
 * not match its SHA-256 included: err names the line and the reason; nothing of that
 * line stored), PIGEON_ERR_IO (reading failed), or the spool's error. A file
 * without its last line is PIGEON_ERR_INVALID after everything before it was stored.
 */
pigeon_err pg_transfer_import(pigeon_spool *spool, pigeon_read_fn read, void *ctx, size_t max_line,
                              pg_transfer_stats *stats, char *err, size_t errlen);

#endif
