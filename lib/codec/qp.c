/*
 * qp.c - quoted-printable content transfer encoding (RFC 2045 6.7), text mode.
 *
 * Encoding follows the rules of RFC 2045 6.7: (1) '=' and non-printable octets as =XX,
 * (2) printable ASCII as itself, (3) space and tab as themselves unless they end a line,
 * (4) CRLF as a hard line break, (5) lines of at most 76 characters with "=" CRLF soft
 * breaks. Output is written into space reserved per input slice, never byte by byte.
 * pg_qp_encode_text also takes a lone CR or LF as a hard line break (RFC 2046 4.1.1), so
 * the composer encodes a caller's text without first making a CRLF copy of it.
 */
#include "codec/encode.h"

#include <string.h>

/* RFC 2045 6.7 (5): encoded lines are at most 76 characters, the soft-break '=' included. */
#define QP_LINE_MAX 76
/* Input is encoded in slices so that the reserved space stays bounded. */
#define SLICE 4096
/* Worst case for a slice: every byte as =XX, a soft break for every 73 characters of
 * output, and the final soft break. */
#define SLICE_OUT_MAX (3 * SLICE + 3 * (3 * SLICE / 72 + 2) + 3 + 1) /* +1: 4-byte stores */

static const char hex_upper[] = "0123456789ABCDEF";

/* Per octet: its encoding padded to three characters, then its width (1 or 3), or width 0
 * for space, tab, CR and LF, whose encoding depends on what follows. Built at compile time
 * so that the common case is one load and one 4-byte store, without a branch. */
#define QP_LIT(c) ((c) >= 33 && (c) <= 126 && (c) != '=')
#define QP_WS(c)  ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')
#define QP_HEX(v) (char)((v) < 10 ? '0' + (v) : 'A' + (v)-10)
#define QP_E(c)                                                                                    \
    {                                                                                              \
        (char)(QP_LIT(c) || QP_WS(c) ? (c)&0x7f : '='), QP_LIT(c) ? 0 : QP_HEX((c) >> 4),          \
            QP_LIT(c) ? 0 : QP_HEX((c)&15),                                                        \
            (char)(QP_WS(c)    ? 0                                                                 \
                   : QP_LIT(c) ? 1                                                                 \
                               : 3)                                                                \
    }
#define QP_E4(c)  QP_E(c), QP_E((c) + 1), QP_E((c) + 2), QP_E((c) + 3)
#define QP_E16(c) QP_E4(c), QP_E4((c) + 4), QP_E4((c) + 8), QP_E4((c) + 12)
#define QP_E64(c) QP_E16(c), QP_E16((c) + 16), QP_E16((c) + 32), QP_E16((c) + 48)
static const char qp_tab[256][4] = {QP_E64(0), QP_E64(64), QP_E64(128), QP_E64(192)};

/* Encoder state across slices. */
typedef struct qp_state {
    const unsigned char *in; /* the whole input (lookahead may cross a slice) */
    size_t n;                /* its length */
    size_t pos;              /* next input byte */
    unsigned col;            /* characters on the current output line */
    int norm;                /* a lone CR or LF is a line break too (written CRLF) */
} qp_state;

static char *encode_slice(qp_state *qs, size_t end, char *dst);
static char *finish(const qp_state *qs, char *dst);

/* RFC 2045 6.7 (2): octets 33..60 and 62..126 may represent themselves. */
static int is_literal(unsigned char c)
{
    return c >= 33 && c <= 126 && c != '=';
}

/* Octets of the line break at in[i]: 2 for CRLF, with norm 1 for a lone CR or LF, else 0. */
static size_t break_at(const qp_state *qs, size_t i)
{
    if (i >= qs->n)
        return 0;
    if (qs->in[i] == '\r')
        return i + 1 < qs->n && qs->in[i + 1] == '\n' ? 2 : (size_t)qs->norm;
    return qs->in[i] == '\n' ? (size_t)qs->norm : 0;
}

/* Encodes input up to (about) end; a CRLF straddling end is taken whole. Position and
 * column live in locals: stores through dst (a char pointer) could alias *qs. */
static char *encode_slice(qp_state *qs, size_t end, char *dst)
{
    const unsigned char *in = qs->in;
    size_t pos = qs->pos;
    unsigned col = qs->col;
    while (pos < end) {
        /* Fast path, away from the end of a line where no lookahead matters. */
        while (pos < end && col + 3 < QP_LINE_MAX) {
            unsigned char c = in[pos];
            unsigned w = (unsigned char)qp_tab[c][3];
            if (w == 0) { /* space or tab not before a line break stays literal */
                if (c == '\r' || c == '\n' || pos + 1 >= qs->n || in[pos + 1] == '\r' ||
                    in[pos + 1] == '\n')
                    break;
                w = 1;
            }
            memcpy(dst, qp_tab[c], 4);
            dst += w;
            col += w;
            pos++;
        }
        if (pos >= end)
            break;
        unsigned char c = in[pos];
        size_t brk = break_at(qs, pos);
        if (brk != 0) { /* (4): a hard line break */
            memcpy(dst, "\r\n", 2);
            dst += 2;
            col = 0;
            pos += brk;
            continue;
        }
        int next_crlf = break_at(qs, pos + 1) != 0;
        /* (3): white space is literal unless it would end a line; at the end of input we
         * encode it too, so no line ever ends in white space before our final soft break. */
        int literal = is_literal(c) || ((c == ' ' || c == '\t') && !next_crlf && pos + 1 < qs->n);
        unsigned w = literal ? 1 : 3;
        /* (5): room for the soft-break '=' unless a hard break follows this character. */
        unsigned limit = next_crlf ? QP_LINE_MAX : QP_LINE_MAX - 1;
        if (col + w > limit) {
            memcpy(dst, "=\r\n", 3);
            dst += 3;
            col = 0;
        }
        if (literal) {
            *dst++ = (char)c;
        } else {
            dst[0] = '=';
            dst[1] = hex_upper[c >> 4];
            dst[2] = hex_upper[c & 15];
            dst += 3;
        }
        col += w;
        pos++;
    }
    qs->pos = pos;
    qs->col = col;
    return dst;
}

/* Text that does not end with CRLF ends with a soft break: the output then ends with
 * CRLF, as MIME body parts must, yet decodes to exactly the input. */
static char *finish(const qp_state *qs, char *dst)
{
    unsigned char last = qs->n > 0 ? qs->in[qs->n - 1] : 0;
    int ends_break = qs->norm ? last == '\r' || last == '\n' : break_at(qs, qs->n - 2) == 2;
    if (qs->n > 0 && !ends_break) {
        memcpy(dst, "=\r\n", 3);
        dst += 3;
    }
    return dst;
}

static pigeon_err qp_encode(pg_buf *out, const char *in, size_t n, int norm)
{
    qp_state qs = {(const unsigned char *)in, n, 0, 0, norm};
    if (out->err != PIGEON_OK)
        return out->err;
    while (qs.pos < n) {
        size_t end = n - qs.pos > SLICE ? qs.pos + SLICE : n;
        if (pg_buf_reserve(out, SLICE_OUT_MAX) != PIGEON_OK)
            return out->err;
        char *start = out->data + out->len;
        out->len += (size_t)(encode_slice(&qs, end, start) - start);
    }
    if (pg_buf_reserve(out, 3) != PIGEON_OK)
        return out->err;
    char *start = out->data + out->len;
    out->len += (size_t)(finish(&qs, start) - start);
    out->data[out->len] = '\0';
    return PIGEON_OK;
}

pigeon_err pg_qp_encode(pg_buf *out, const char *in, size_t n)
{
    return qp_encode(out, in, n, 0);
}

pigeon_err pg_qp_encode_text(pg_buf *out, const char *in, size_t n)
{
    return qp_encode(out, in, n, 1);
}

size_t pg_qp_encoded_len(const char *in, size_t n)
{
    /* The same code as pg_qp_encode into a scratch slice, so the two always agree. */
    char scratch[SLICE_OUT_MAX];
    qp_state qs = {(const unsigned char *)in, n, 0, 0, 0};
    size_t total = 0;
    while (qs.pos < n) {
        size_t end = n - qs.pos > SLICE ? qs.pos + SLICE : n;
        total += (size_t)(encode_slice(&qs, end, scratch) - scratch);
    }
    return total + (size_t)(finish(&qs, scratch) - scratch);
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes one line body [s, s+n) (line ending excluded); *soft is set if it ends with a
 * soft break. Returns the end of the output or NULL on a bad escape. */
static char *decode_line(const char *s, size_t n, char *dst, int *soft)
{
    /* RFC 2045 6.7 (3): trailing white space was added in transport; delete it. */
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *soft = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '=') {
            *dst++ = s[i];
            continue;
        }
        if (i + 1 == n) {
            *soft = 1;
            break;
        }
        int hi = hex_value((unsigned char)s[i + 1]);
        int lo = i + 2 < n ? hex_value((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0)
            return NULL;
        *dst++ = (char)(hi << 4 | lo);
        i += 2;
    }
    return dst;
}

pigeon_err pg_qp_decode(pg_buf *out, const char *in, size_t n)
{
    if (out->err != PIGEON_OK)
        return out->err;
    if (pg_buf_reserve(out, n) != PIGEON_OK) /* decoding never grows the text */
        return out->err;
    size_t start = out->len;
    char *dst = out->data + out->len;
    size_t i = 0;
    while (i < n) {
        const char *lf = memchr(in + i, '\n', n - i);
        size_t end = lf ? (size_t)(lf - in) : n;
        size_t body_end = end > i && lf && in[end - 1] == '\r' ? end - 1 : end;
        int soft;
        dst = decode_line(in + i, body_end - i, dst, &soft);
        if (dst == NULL) {
            out->len = start;
            out->data[start] = '\0';
            return out->err = PIGEON_ERR_INVALID;
        }
        if (!soft && lf) { /* a hard break keeps its own line ending */
            memcpy(dst, in + body_end, end + 1 - body_end);
            dst += end + 1 - body_end;
        }
        i = lf ? end + 1 : n;
    }
    out->len = (size_t)(dst - out->data);
    out->data[out->len] = '\0';
    return PIGEON_OK;
}
