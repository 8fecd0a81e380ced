/*
 * mime.h - the message builder's state and the MIME composer (internal).
 *
 * lib/mime/message.c owns the builder (setters, validation, envelope); lib/mime/mime.c turns a
 * message into bytes: it "prepares" a list of segments (literal bytes kept in one arena,
 * and sources - files, buffers, caller streams - base64-encoded chunk by chunk while
 * reading), so that the exact size is known before the first byte and memory stays
 * bounded whatever the size of the attachments (RFC 2045, 2046, 5322). lib/mime/mime_header.c
 * writes the message header block; lib/mime/mime_text.c scans bodies (once) and writes text
 * with its line breaks made CRLF.
 */
#ifndef PG_MIME_H
#define PG_MIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"
#include "pigeon/message.h"

/* What decides a body's transfer encoding (RFC 2045 6), gathered in one pass by
 * pg_text_scan. "As written" means after line breaks are made CRLF (PG_SCAN_NORMALIZE),
 * else the octets as they are. */
typedef struct pg_text_stats {
    size_t out_len;  /* length as written */
    size_t max_line; /* longest line in octets, without its line break */
    size_t bare;     /* lone CR or LF octets (rewritten to CRLF when normalizing) */
    uint64_t qp_min; /* quoted-printable length as written is at least this */
    uint64_t qp_max; /* ... and at most this */
    int has_bare;    /* a lone CR or LF remains as written (not normalizing) */
    int has_8bit;    /* an octet >= 0x80 */
    int has_nul;     /* a NUL octet */
    int ends_break;  /* empty, or ends with a line break (CRLF; normalizing, CR or LF too) */
} pg_text_stats;

/* pg_text_scan flags. */
#define PG_SCAN_UTF8      1 /* fail on invalid UTF-8 (RFC 3629 4) */
#define PG_SCAN_NORMALIZE 2 /* CR, LF and CRLF are all line breaks, written as CRLF */

/* Scans text[0..n) once (lib/mime/mime_text.c). Returns 0, or -1 for invalid UTF-8 when
 * PG_SCAN_UTF8 is set (st is then undefined). */
int pg_text_scan(const char *text, size_t n, unsigned flags, pg_text_stats *st);

/* Append text[0..n) with every line break (CR, LF, CRLF) as CRLF (RFC 2046 4.1.1): as is,
 * or base64-encoded in 76-column lines. out_len is the normalized length (the out_len of
 * a PG_SCAN_NORMALIZE scan), reserved once. */
pigeon_err pg_text_put_crlf(pg_buf *out, const char *text, size_t n, size_t out_len);
pigeon_err pg_text_put_b64(pg_buf *out, const char *text, size_t n, size_t out_len);

/* Nonzero if s[0..n) holds an octet >= 0x80. */
int pg_text_has_8bit(const char *s, size_t n);

/* Where an attachment's bytes come from. */
typedef enum pg_part_kind {
    PG_PART_FILE = 0,   /* a file, opened at write time */
    PG_PART_BUFFER = 1, /* a copy of a caller's buffer */
    PG_PART_STREAM = 2, /* a caller's read callback, read once */
} pg_part_kind;

/* One attachment or inline part. */
typedef struct pg_part {
    pg_part_kind kind;   /* where the bytes come from */
    char *path;          /* PG_PART_FILE: the file's path, owned */
    char *data;          /* PG_PART_BUFFER: the bytes, owned */
    size_t len;          /* PG_PART_BUFFER: number of bytes */
    pigeon_read_fn read; /* PG_PART_STREAM: the callback */
    void *ctx;           /* PG_PART_STREAM: its context, borrowed */
    int64_t size;        /* PG_PART_STREAM: declared length, -1 if unknown */
    char *filename;      /* name shown to the recipient (UTF-8), owned, or NULL */
    char *content_type;  /* "type/subtype", owned (given or guessed) */
    char *content_id;    /* without angle brackets, owned; non-NULL makes it inline */
} pg_part;

/* One custom header field. */
typedef struct pg_header {
    char *name;  /* field name as given, owned */
    char *value; /* UTF-8 value, owned */
} pg_header;

struct pigeon_message {
    pigeon_err err;               /* first builder error (sticky; blocks writing) */
    pigeon_err last_err;          /* the latest error, builder or write */
    char errmsg[256];             /* one-line reason for last_err */
    int has_from;                 /* from is set */
    pigeon_mailbox from;          /* From (RFC 5322 3.6.2) */
    int has_sender;               /* sender is set */
    pigeon_mailbox sender;        /* Sender */
    pigeon_address_list reply_to; /* Reply-To */
    pigeon_address_list to;       /* To */
    pigeon_address_list cc;       /* Cc */
    pigeon_address_list bcc;      /* Bcc: envelope only, never written */
    pigeon_mailbox *rcpts;        /* envelope recipients, duplicates removed, owned */
    size_t rcpt_count;            /* number of rcpts */
    char *subject;                /* Subject (UTF-8), or NULL */
    int has_date;                 /* date was set or fixed at the first write */
    time_t date;                  /* Date */
    char *message_id;             /* Message-ID without brackets, or NULL until needed */
    char *in_reply_to;            /* "<a@b> <c@d>" normalized, or NULL */
    char *references;             /* same form, or NULL */
    pg_header *headers;           /* custom header fields, in call order */
    size_t header_count;          /* number of headers */
    char *text;                   /* text/plain body (UTF-8), or NULL if none */
    size_t text_len;              /* its length */
    pg_text_stats text_stats;     /* its PG_SCAN_NORMALIZE scan, made when it was set */
    char *html;                   /* text/html body (UTF-8), or NULL if none */
    size_t html_len;              /* its length */
    pg_text_stats html_stats;     /* its PG_SCAN_NORMALIZE scan */
    const char *charset;          /* canonical charset of text parts (static string) */
    pg_part *parts;               /* attachments and inline parts, in call order */
    size_t part_count;            /* number of parts */
    int stream_consumed;          /* a stream attachment has been read: no second write */
};

/* Records a write-time error (not sticky: the message can be written again) and returns
 * err. */
pigeon_err pg_message_fail(pigeon_message *msg, pigeon_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Makes sure msg->message_id is set (generating it from the From domain). Returns
 * PIGEON_ERR_INVALID when there is no From and no Message-ID. */
pigeon_err pg_message_ensure_id(pigeon_message *msg);

/* Appends the message's header fields up to MIME-Version (lib/mime/mime_header.c); addresses
 * in UTF-8 when smtputf8. Failures are recorded with pg_message_fail. */
pigeon_err pg_mime_header_block(pg_buf *out, pigeon_message *msg, int smtputf8);

/* PIGEON_ERR_ADDRESS (recorded) if an address has a non-ASCII local part and the server
 * does not offer SMTPUTF8 (RFC 6531 3.3). */
pigeon_err pg_mime_check_smtputf8(pigeon_message *msg, int smtputf8);

/* Random bytes and [0-9A-Za-z] tokens for boundaries and Message-IDs: the CSPRNG, or the
 * deterministic generator once pg_mime_test_seed() was called. */
pigeon_err pg_mime_random_bytes(void *buf, size_t n);
pigeon_err pg_mime_random_token(char *out, size_t n);

/*
 * TEST HOOK, not public API: a nonzero seed makes boundaries and generated Message-IDs
 * deterministic (a fixed pseudo-random sequence restarted by each call) so golden files
 * can be compared byte for byte; 0 goes back to the CSPRNG. Process-global, not
 * thread-safe: for tests only.
 */
void pg_mime_test_seed(uint64_t seed);

#endif
