/*
 * pop3_parse.h - POP3 response lines (RFC 1939 3, RFC 2449 8) (internal, pure).
 */
#ifndef PG_POP3_PARSE_H
#define PG_POP3_PARSE_H

#include <stddef.h>

/* A status line. */
typedef struct pg_pop3_status {
    int ok;           /* 1 for +OK, 0 for -ERR */
    int temporary;    /* -ERR [IN-USE] or [SYS/TEMP] (RFC 2449 8.1, RFC 3206 4): try later */
    const char *text; /* what follows the status and its space (in the line, may be "") */
    size_t text_len;  /* its length, without CRLF */
} pg_pop3_status;

/* Parses a status line line[0..n) that ends with CRLF ("+OK text", "-ERR [CODE] text").
 * Returns 0, or -1 for anything else (no CRLF, a NUL, LF or CR inside, another word). */
int pg_pop3_parse_status(const char *line, size_t n, pg_pop3_status *st);

/* Nonzero when the line (with its CRLF) is the "." that ends a multi-line response.
 * A bare LF ending is accepted for the terminator only. */
int pg_pop3_is_terminator(const char *line, size_t n);

/* Parses the text of a STAT answer ("nn mm ...") into *count and *size; -1 if not. */
int pg_pop3_parse_stat(const char *text, unsigned long long *count, unsigned long long *size);

/* Parses a UIDL line "n uid" CRLF (RFC 1939 7: uid is 1 to 70 characters 0x21-0x7E);
 * the uid is copied into uid (cap >= 71). Returns 0 or -1. */
int pg_pop3_parse_uidl(const char *line, size_t n, unsigned *number, char *uid, size_t cap);

#endif
