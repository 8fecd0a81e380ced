/*
 * reply.h - the SMTP reply parser (internal, pure: no I/O).
 *
 * RFC 5321 4.2: a reply is one or more lines "ddd-text" ending with one "ddd text" (or a
 * bare "ddd"), every line carrying the same code. RFC 3463 / RFC 2034: the text may start
 * with an enhanced status code "class.subject.detail" whose class equals the reply's
 * first digit. The parser is fed one line at a time (or a buffer of lines) and keeps
 * everything in fixed storage, with hard bounds on line length and lines per reply: a
 * peer cannot make it allocate or read out of bounds, only fail with a reason.
 */
#ifndef PG_REPLY_H
#define PG_REPLY_H

#include <stddef.h>

/* RFC 5321 4.5.3.1.5 allows 512 octets per reply line; real servers exceed it a little
 * (long EHLO AUTH lines, verbose rejections), so we accept four times that. */
#define PG_REPLY_LINE_MAX 2048
/* EHLO replies have about 10-30 lines; no legitimate reply has more than this. */
#define PG_REPLY_LINES_MAX 128
/* Text kept per reply (lines joined with '\n'); the rest is dropped, not an error. */
#define PG_REPLY_TEXT_MAX 8192

typedef enum pg_reply_status {
    PG_REPLY_MORE = 0,  /* the line was a continuation: feed the next one */
    PG_REPLY_DONE = 1,  /* the reply is complete */
    PG_REPLY_ERROR = 2, /* protocol error: reason in pg_reply.why, the reply is unusable */
} pg_reply_status;

typedef struct pg_reply {
    int code;                     /* the three-digit reply code (200..599), 0 before a line */
    char enhanced[16];            /* enhanced status code of the first line ("5.1.1") or "" */
    char text[PG_REPLY_TEXT_MAX]; /* the text of every line (after "ddd-"/"ddd "), joined
                                     with '\n', control characters replaced by '?' */
    size_t text_len;              /* bytes used in text */
    size_t lines;                 /* lines fed so far */
    int truncated;                /* nonzero when text had to drop some of the reply */
    int done;                     /* nonzero once the final line was fed */
    const char *why;              /* static reason after PG_REPLY_ERROR, else NULL */
} pg_reply;

/* Prepares r for a new reply. */
void pg_reply_init(pg_reply *r);

/*
 * Feeds one line, with or without its CRLF (a bare LF ending is tolerated), len bytes
 * (may contain NUL). Returns MORE, DONE or ERROR. Errors: a line too short, without three
 * digits, with a code outside 2xx-5xx, with a fourth character other than ' ' or '-',
 * longer than PG_REPLY_LINE_MAX, a code that differs from the first line's, more than
 * PG_REPLY_LINES_MAX lines, or any line after DONE. After ERROR, further feeds return
 * ERROR.
 */
pg_reply_status pg_reply_feed(pg_reply *r, const char *line, size_t len);

/*
 * Parses complete lines (each ending in LF) from buf[0..len) until the reply is done,
 * an error, or the input ends. *consumed gets the bytes used. MORE means the input ended
 * before the final line (feed the rest, starting at buf + *consumed, later); a trailing
 * piece without LF is not consumed, but is an ERROR once longer than PG_REPLY_LINE_MAX.
 */
pg_reply_status pg_reply_parse(pg_reply *r, const char *buf, size_t len, size_t *consumed);

/* The first digit of the code (2, 3, 4, 5), 0 if none. */
int pg_reply_class(const pg_reply *r);

/*
 * Parses an enhanced status code (RFC 3463 2: class "." subject "." detail, class 2, 4
 * or 5, subject and detail 1-3 digits) at the start of s[0..n), followed by a space or the
 * end. Writes it NUL-terminated to out (16 bytes) and returns its length, or 0 if s does
 * not start with one. expect_class: the class it must have (the reply's first digit), or
 * 0 for any.
 */
size_t pg_enhanced_code_parse(const char *s, size_t n, int expect_class, char out[16]);

/*
 * Iterates the lines of r->text: on the first call *pos must be 0; each call sets
 * *line and *len to the next line and returns 1, or 0 at the end.
 */
int pg_reply_next_line(const pg_reply *r, size_t *pos, const char **line, size_t *len);

#endif
