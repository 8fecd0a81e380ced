/*
 * imap_parse.h - the IMAP response parser (internal, pure: no I/O, no allocation).
 *
 * Parses one server response (RFC 9051 7 and 9 "response", RFC 3501 7 and 9) from
 * (buf, len): a continuation request ("+ text"), an untagged response ("* ...") or a
 * tagged completion ("A1 OK ..."), with any literals ({n} or {n+} CRLF then n octets,
 * RFC 9051 4.3) inside it. The caller's buffer holds the whole response; the client
 * (imap.c) streams large FETCH literals elsewhere and leaves a zero-length literal in
 * their place, so a response in memory stays bounded.
 *
 * Status responses (OK/NO/BAD/PREAUTH/BYE) yield the response code in brackets
 * (RFC 9051 7.1: [APPENDUID 38505 3955], [CAPABILITY ...], [TRYCREATE]) and the text.
 * Data responses (CAPABILITY, LIST, SEARCH, FLAGS, EXISTS, FETCH, ...) yield their
 * keyword, their number when they have one ("* 23 EXISTS"), and a flat token array:
 * atoms, numbers, strings (quoted or literal), NIL, and list open/close markers.
 *
 * Strictness: lines end in CRLF (a bare LF or CR is an error), no NUL or CR/LF outside
 * literals, quoted strings only escape '"' and '\', literal sizes are digits only and
 * bounded, lists nest at most PG_IMAP_DEPTH_MAX deep, and the token array is bounded by
 * the caller. Tokens point into buf (borrowed; quoted strings still escaped: use
 * pg_imap_tok_copy to decode).
 */
#ifndef PG_IMAP_PARSE_H
#define PG_IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Deepest list nesting accepted (BODYSTRUCTURE of a deeply nested MIME message nests
 * deeper, but we never ask for it). */
#define PG_IMAP_DEPTH_MAX 32
/* Largest literal size accepted in a buffered response (number64 in RFC 9051 allows
 * more; the client streams big literals instead of buffering them). */
#define PG_IMAP_LITERAL_MAX ((uint64_t)1 << 40)

typedef enum pg_imap_result {
    PG_IMAP_DONE = 0,      /* one whole response parsed; *consumed says how long */
    PG_IMAP_NEED_MORE = 1, /* buf ends inside the response: read more, call again */
    PG_IMAP_ERROR = 2,     /* not a valid response; r->why says what */
} pg_imap_result;

typedef enum pg_imap_kind {
    PG_IMAP_CONTINUE = 1, /* "+ ..." continuation request */
    PG_IMAP_UNTAGGED = 2, /* "* ..." */
    PG_IMAP_TAGGED = 3,   /* "tag OK|NO|BAD ..." */
} pg_imap_kind;

typedef enum pg_imap_status {
    PG_IMAP_ST_NONE = 0, /* a data response (no status) */
    PG_IMAP_ST_OK = 1,
    PG_IMAP_ST_NO = 2,
    PG_IMAP_ST_BAD = 3,
    PG_IMAP_ST_PREAUTH = 4,
    PG_IMAP_ST_BYE = 5,
} pg_imap_status;

typedef enum pg_imap_tok_type {
    PG_IMAP_TOK_ATOM = 1,    /* atom, flag (\Seen), or section atom (BODY[]<0>) */
    PG_IMAP_TOK_NUMBER = 2,  /* digits only, value in num */
    PG_IMAP_TOK_QUOTED = 3,  /* quoted string: p/n are the inside, still escaped */
    PG_IMAP_TOK_LITERAL = 4, /* literal: p/n are its octets (n may be 0 when streamed) */
    PG_IMAP_TOK_NIL = 5,     /* NIL */
    PG_IMAP_TOK_OPEN = 6,    /* '(' */
    PG_IMAP_TOK_CLOSE = 7,   /* ')' */
} pg_imap_tok_type;

typedef struct pg_imap_tok {
    pg_imap_tok_type type; /* what it is */
    const char *p;         /* its bytes in buf (for QUOTED: between the quotes) */
    size_t n;              /* their length */
    uint64_t num;          /* NUMBER: the value; LITERAL: the size announced */
    int depth;             /* list nesting depth at this token (0 = top level) */
} pg_imap_tok;

typedef struct pg_imap_resp {
    pg_imap_kind kind;     /* continuation, untagged or tagged */
    const char *tag;       /* TAGGED: the tag in buf, else NULL */
    size_t tag_len;        /* its length */
    pg_imap_status status; /* OK/NO/BAD/PREAUTH/BYE, or NONE for data */
    int has_number;        /* "* 12 EXISTS": 1, number in number */
    uint32_t number;       /* the message number or count */
    const char *keyword;   /* data: "CAPABILITY", "LIST", "FETCH", "EXISTS"... in buf */
    size_t keyword_len;    /* its length */
    const char *code;      /* status: the response code's name ("APPENDUID"), or NULL */
    size_t code_len;       /* its length */
    const char *code_arg;  /* the code's arguments up to ']' ("38505 3955"), or NULL */
    size_t code_arg_len;   /* their length */
    const char *text;      /* status/continuation: the human-readable text (may be "") */
    size_t text_len;       /* its length */
    pg_imap_tok *toks;     /* data: tokens after the keyword (caller's array) */
    size_t ntoks;          /* how many were filled */
    size_t toks_cap;       /* size of the caller's array */
    const char *why;       /* PG_IMAP_ERROR: the reason (static text) */
} pg_imap_resp;

/*
 * Parses the response at the start of buf[0..len). toks/cap is the caller's token array
 * (cap 0 accepted: a data response with any token is then an error "too many tokens").
 * Returns DONE with *consumed set, NEED_MORE, or ERROR with r->why.
 */
pg_imap_result pg_imap_parse(const char *buf, size_t len, pg_imap_resp *r, pg_imap_tok *toks,
                             size_t cap, size_t *consumed);

/* Appends a token's string value (QUOTED unescaped; ATOM, NUMBER and LITERAL as they
 * are; NIL as nothing) to out. */
pigeon_err pg_imap_tok_copy(const pg_imap_tok *t, pg_buf *out);

/* Nonzero when the token is an atom or string equal to s, ignoring ASCII case. */
int pg_imap_tok_is(const pg_imap_tok *t, const char *s);

/*
 * Where a response line that ends with a literal announcement ends: given one line
 * (up to and including its CRLF), returns the literal's size in *size and 1 when the
 * line ends "{n}" or "{n+}" CRLF, else 0. Used by the client to read the n octets.
 */
int pg_imap_line_literal(const char *line, size_t len, uint64_t *size);

#endif
