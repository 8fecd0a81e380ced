/*
 * pigeon/message.h - composing an Internet message (RFC 5322, MIME RFC 2045-2049).
 *
 * A pigeon_message is a builder: set headers, bodies and attachments, then write it to a
 * buffer, a file descriptor, or a stream that produces bytes on demand. The structure is
 * chosen from what was set:
 *
 *   text only             text/plain
 *   html only             text/html
 *   text + html           multipart/alternative
 *   + inline parts (cid:) the html (or alternative) wrapped in multipart/related
 *   + attachments         everything wrapped in multipart/mixed
 *
 * Output is always CRLF, never a bare CR or LF, never a header line over 998 octets;
 * non-ASCII header text is RFC 2047 encoded, attachment names RFC 2231 (plus an RFC 2047
 * name= for clients such as QQ Mail and Outlook that read only that). Boundaries come from
 * a CSPRNG and are checked against the content. Bcc recipients are in the envelope only.
 *
 * Errors: every setter returns a pigeon_err and also keeps the first error (sticky), so a
 * caller may check each call or only the write. pigeon_message_error() gives the reason
 * as one line. Any CR, LF or NUL in a header value, name, address, filename or parameter is
 * PIGEON_ERR_HEADER (or PIGEON_ERR_ADDRESS for addresses).
 *
 * Thread safety: a message is used by one thread at a time. Streams over the same message
 * may not outlive it, and the message may not be changed while a stream is open.
 */
#ifndef PIGEON_MESSAGE_H
#define PIGEON_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "pigeon/address.h"
#include "pigeon/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pigeon_message pigeon_message;

/* Creates an empty message. Returns NULL only when out of memory. */
pigeon_message *pigeon_message_new(void);

/* Frees the message and everything it owns. NULL is a no-op. */
void pigeon_message_free(pigeon_message *msg);

/* The reason for the first error (sticky), or "" if none. Owned by the message. */
const char *pigeon_message_error(const pigeon_message *msg);

/* The first error's code, PIGEON_OK if none. */
pigeon_err pigeon_message_status(const pigeon_message *msg);

/* ---- originator and recipients (RFC 5322 3.6.2, 3.6.3) ----
 * Each takes UTF-8 text as a user types it; lists may hold several comma-separated
 * mailboxes and groups. The add_ functions may be called any number of times. */
pigeon_err pigeon_message_set_from(pigeon_message *msg, const char *mailbox);
pigeon_err pigeon_message_set_sender(pigeon_message *msg, const char *mailbox);
pigeon_err pigeon_message_add_reply_to(pigeon_message *msg, const char *list);
pigeon_err pigeon_message_add_to(pigeon_message *msg, const char *list);
pigeon_err pigeon_message_add_cc(pigeon_message *msg, const char *list);
pigeon_err pigeon_message_add_bcc(pigeon_message *msg, const char *list);

/* ---- other header fields ---- */
/* Subject as UTF-8 text; encoded and folded on output. */
pigeon_err pigeon_message_set_subject(pigeon_message *msg, const char *subject);
/* Date; when never set, the time of the write is used. */
pigeon_err pigeon_message_set_date(pigeon_message *msg, time_t when);
/* Message-ID as "<left@right>" or "left@right". When never set, one is generated from
 * 128 bits of a CSPRNG and the From domain at the first write (and kept). */
pigeon_err pigeon_message_set_message_id(pigeon_message *msg, const char *msg_id);
/* The Message-ID that will be (or was) written, without angle brackets; generates it if
 * needed. NULL if no From was set yet and none was given. Owned by the message. */
const char *pigeon_message_get_message_id(pigeon_message *msg);
/* In-Reply-To and References: one or more msg-ids, "<a@b> <c@d>". */
pigeon_err pigeon_message_set_in_reply_to(pigeon_message *msg, const char *msg_ids);
pigeon_err pigeon_message_set_references(pigeon_message *msg, const char *msg_ids);
/*
 * A custom header field. name must be RFC 5322 ftext (printable ASCII but ':'), and may not
 * be one the builder owns (From, Sender, To, Cc, Bcc, Reply-To, Subject, Date, Message-ID,
 * In-Reply-To, References, MIME-Version, Content-*): those are PIGEON_ERR_HEADER.
 * value is UTF-8; non-ASCII words are RFC 2047 encoded, long values folded.
 * May be called several times with the same name (e.g. X-Tag twice).
 */
pigeon_err pigeon_message_add_header(pigeon_message *msg, const char *name, const char *value);

/* ---- bodies ---- */
/* The text and HTML bodies, UTF-8, copied. Line endings may be LF, CR or CRLF: all are
 * written as CRLF. Setting again replaces. len (size_t)-1 means NUL-terminated. */
pigeon_err pigeon_message_set_text(pigeon_message *msg, const char *text, size_t len);
pigeon_err pigeon_message_set_html(pigeon_message *msg, const char *html, size_t len);
/* The charset of the text parts on the wire: "utf-8" (default), "gb18030" or "gbk"
 * (transcoded with iconv at write time; text that cannot be represented is
 * PIGEON_ERR_CHARSET). */
pigeon_err pigeon_message_set_charset(pigeon_message *msg, const char *charset);

/* ---- attachments and inline parts ---- */
typedef struct pigeon_part_opts {
    const char *filename;     /* name shown to the recipient (UTF-8); NULL: the file's base
                                 name for files, none for buffers and streams */
    const char *content_type; /* "type/subtype"; NULL: guessed from the filename */
    const char *content_id;   /* non-NULL makes the part inline (multipart/related), to be
                                 referenced as cid:<content_id> from the HTML */
} pigeon_part_opts;

/* Reads up to cap bytes into buf; sets *n (0 = end of stream). Nonzero return = error. */
typedef int (*pigeon_read_fn)(void *ctx, void *buf, size_t cap, size_t *n);

/* A file, opened when the message is written (so it streams in bounded memory). A file
 * that cannot be opened now is PIGEON_ERR_NOTFOUND. opts may be NULL. */
pigeon_err pigeon_message_attach_file(pigeon_message *msg, const char *path,
                                      const pigeon_part_opts *opts);
/* A buffer, copied. */
pigeon_err pigeon_message_attach_buffer(pigeon_message *msg, const void *data, size_t len,
                                        const pigeon_part_opts *opts);
/* A stream, read once during the write; size is its length if known or -1. The stream
 * is always base64-encoded. The callback's ctx is borrowed. A message with a stream
 * attachment can be written only once. */
pigeon_err pigeon_message_attach_stream(pigeon_message *msg, pigeon_read_fn read, void *ctx,
                                        int64_t size, const pigeon_part_opts *opts);

/* ---- envelope (RFC 5321) ---- */
/* The envelope sender: the Sender if set, else the From. NULL if neither. Borrowed. */
const pigeon_mailbox *pigeon_message_envelope_from(const pigeon_message *msg);
/* Number of envelope recipients (To, Cc and Bcc, duplicates removed), and the i-th. */
size_t pigeon_message_rcpt_count(const pigeon_message *msg);
const pigeon_mailbox *pigeon_message_rcpt(const pigeon_message *msg, size_t i);
/* Takes the i-th recipient out of the envelope only (the To and Cc headers are unchanged),
 * e.g. a suppressed address (pigeon/suppress.h); later indexes shift down by one.
 * PIGEON_ERR_INVALID when i is out of range. */
pigeon_err pigeon_message_rcpt_remove(pigeon_message *msg, size_t i);

/* ---- writing ---- */
typedef struct pigeon_write_opts {
    int allow_8bit; /* nonzero: text parts may be sent 8bit (the server offers 8BITMIME) */
    int smtputf8;   /* nonzero: the server offers SMTPUTF8; domains may stay in U-labels */
} pigeon_write_opts;

/* Writes the whole message into a malloc'd buffer (*out, *len), freed by the caller.
 * opts may be NULL (defaults: 7bit-safe, A-labels). Requires From. */
pigeon_err pigeon_message_write_buffer(pigeon_message *msg, const pigeon_write_opts *opts,
                                       char **out, size_t *len);
/* Writes the whole message to fd (blocking; retries on EINTR and short writes). */
pigeon_err pigeon_message_write_fd(pigeon_message *msg, const pigeon_write_opts *opts, int fd);

/* A pull stream over the written message: bytes are produced on demand, attachments are
 * read and encoded chunk by chunk, so memory stays bounded whatever their size. */
typedef struct pigeon_message_stream pigeon_message_stream;
pigeon_err pigeon_message_stream_open(pigeon_message *msg, const pigeon_write_opts *opts,
                                      pigeon_message_stream **out);
/* Fills up to cap bytes; *n = 0 means the end. */
pigeon_err pigeon_message_stream_read(pigeon_message_stream *s, void *buf, size_t cap, size_t *n);
/* The total size in octets, known before reading (-1 when a stream attachment has no
 * declared size). Used for the SMTP SIZE parameter (RFC 1870). */
int64_t pigeon_message_stream_size(const pigeon_message_stream *s);
/* Nonzero if the written message contains 8-bit octets (BODY=8BITMIME is needed). */
int pigeon_message_stream_is_8bit(const pigeon_message_stream *s);
/* Closes the stream; NULL is a no-op. */
void pigeon_message_stream_free(pigeon_message_stream *s);

#ifdef __cplusplus
}
#endif
#endif
