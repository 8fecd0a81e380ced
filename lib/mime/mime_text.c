/*
 * mime_text.c - one pass over a body to choose its transfer encoding, and the text
 * encoders that rewrite line breaks to CRLF on the way (RFC 2045 6, RFC 2046 4.1.1).
 *
 * pg_text_scan gathers in a single pass everything the composer's choice of
 * Content-Transfer-Encoding needs: UTF-8 validity (RFC 3629 4), 8-bit octets, NUL, bare CR
 * or LF, the longest line (RFC 5322 2.1.1: 78 / 998) and bounds on the quoted-printable
 * length (RFC 2045 6.7), so that QP is only encoded when it is the one written. Runs of
 * plain printable ASCII are taken sixteen octets at a time (SSE2) or eight (portable), and
 * runs of three-octet UTF-8 (CJK) five characters at a time.
 *
 * pg_text_put_crlf and pg_text_put_b64 write a text with every line break (CR, LF or
 * CRLF) as CRLF, the canonical form of text (RFC 2046 4.1.1), without first making a
 * normalized copy of the whole body.
 */
#include "mime/mime.h"

#include <string.h>

#include "codec/encode.h"
#include "util/utf8.h"

/* RFC 2045 6.8: base64 lines of 76 characters. */
#define B64_LINE 76
/* RFC 2045 6.7 (5): a soft line break ends an encoded line of at least 73 characters (the
 * encoder breaks when the next =XX would pass column 75). */
#define QP_MIN_SOFT_LINE 73
/* Normalized text is base64-encoded from a stack buffer of this many octets at a time. */
#define B64_SCRATCH 4096

#define K01 0x0101010101010101ull
#define K80 0x8080808080808080ull

/* Nonzero if one of the eight octets of x is zero (exact as a yes/no answer). */
static inline uint64_t has_zero(uint64_t x)
{
    return (x - K01) & ~x & K80;
}

/* Nonzero if one of the eight octets of x is not plain printable ASCII: below 0x20, 0x7f
 * or above, or '=' (which quoted-printable encodes). Space counts as plain. */
static inline uint64_t word_special(uint64_t x)
{
    uint64_t high = (x | (x + K01)) & K80; /* >= 0x7f (a carry only follows a high octet) */
    uint64_t low = (x - K01 * 0x20) & ~x & K80;
    return high | low | has_zero(x ^ (K01 * '='));
}

static inline uint64_t load8(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

#if defined(__SSE2__) && defined(__GNUC__)
/* SSE2 is part of x86-64 itself: sixteen octets per step, no run-time check needed. */
#include <emmintrin.h>
#define PG_TEXT_SSE2 1

static inline __m128i load16(const unsigned char *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* A bit per octet of p[0..16) that is not plain printable ASCII (word_special's test). */
static inline unsigned special16(const unsigned char *p)
{
    __m128i v = load16(p);
    /* Signed: octets >= 0x80 are negative, so "< 0x20" flags them too. */
    __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                               _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('=')),
                                            _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f))));
    return (unsigned)_mm_movemask_epi8(bad);
}

/* Nonzero if p[0..15) is five three-octet UTF-8 sequences with leads E1..EC or EE..EF
 * (as cjk_seq, five at once; p[15] is read, not judged). */
static inline int cjk5(const unsigned char *p)
{
    __m128i v = load16(p);
    unsigned lead = (unsigned)_mm_movemask_epi8(
        _mm_cmpeq_epi8(_mm_and_si128(v, _mm_set1_epi8((char)0xf0)), _mm_set1_epi8((char)0xe0)));
    unsigned cont = (unsigned)_mm_movemask_epi8(
        _mm_cmpeq_epi8(_mm_and_si128(v, _mm_set1_epi8((char)0xc0)), _mm_set1_epi8((char)0x80)));
    unsigned narrow =
        (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8((char)0xe0)),
                                                 _mm_cmpeq_epi8(v, _mm_set1_epi8((char)0xed))));
    /* Leads at 0, 3, 6, 9, 12; continuation octets between them. */
    return (lead & 0x7fff) == 0x1249 && (cont & 0x7fff) == 0x6db6 && (narrow & 0x1249) == 0;
}

/* A bit per octet of p[0..16) that is CR or LF. */
static inline unsigned breaks16(const unsigned char *p)
{
    __m128i v = load16(p);
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')),
                                                    _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))));
}
#endif

/* How many octets of a word precede the first one flagged in mask (the high bit of each
 * flagged octet; the lowest flag of these tricks is always exact, later ones may not be).
 * Without a known little-endian order, 0: the caller then goes octet by octet. */
static inline size_t plain_prefix(uint64_t mask)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && defined(__GNUC__)
    return (size_t)__builtin_ctzll(mask) / 8;
#else
    (void)mask;
    return 0;
#endif
}

/* Counters of the scan loop, folded into pg_text_stats at the end. */
typedef struct scan_acc {
    size_t line_start; /* offset where the current line starts */
    size_t max_line;   /* longest line so far */
    size_t breaks;     /* line breaks */
    size_t break_len;  /* octets of those line breaks */
    size_t bare;       /* lone CR or LF */
    size_t wide;       /* non-break octets quoted-printable writes as =XX */
    int has_8bit;      /* an octet >= 0x80 */
    int has_nul;       /* a NUL */
} scan_acc;

/* A CR or LF at p[i]: a line break, or (without normalize) a bare octet in the line.
 * Returns the number of octets taken. */
static size_t scan_break(scan_acc *a, const unsigned char *p, size_t i, size_t n, int norm)
{
    size_t len = p[i] == '\r' && i + 1 < n && p[i + 1] == '\n' ? 2 : 1;
    if (len == 1) {
        a->bare++;
        if (!norm) { /* stays in the line, encoded =0D / =0A */
            a->wide++;
            return 1;
        }
    }
    if (i - a->line_start > a->max_line)
        a->max_line = i - a->line_start;
    a->breaks++;
    a->break_len += len;
    a->line_start = i + len;
    return len;
}

/* Nonzero if v (three octets, little-endian) is a three-octet UTF-8 sequence with a lead
 * E1..EC or EE..EF: the bulk of CJK text, valid without decoding. Anything else (E0 and
 * ED allow narrower second octets) goes through pg_utf8_decode. */
static inline int cjk_seq(uint32_t v)
{
    return (v & 0xc0c0f0) == 0x8080e0 && (0xdffe >> (v & 0xf)) & 1;
}

/* p[0..3) little-endian in the low 24 bits; with four readable octets and a known byte
 * order, one load. */
static inline uint32_t load24(const unsigned char *p, size_t avail)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (avail >= 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
#endif
    (void)avail;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

/* Run of octets >= 0x80 at p[i]: validated as UTF-8 when utf8. Returns octets taken, 0 if
 * invalid. */
static size_t scan_high(scan_acc *a, const unsigned char *p, size_t i, size_t n, int utf8)
{
    size_t start = i;
    a->has_8bit = 1;
    for (;;) {
#ifdef PG_TEXT_SSE2
        while (n - i >= 16 && cjk5(p + i))
            i += 15;
#endif
        while (n - i >= 3 && cjk_seq(load24(p + i, n - i)))
            i += 3;
        if (i >= n || p[i] < 0x80)
            break;
        size_t len = utf8 ? pg_utf8_decode(p + i, n - i, NULL) : 1;
        if (len == 0)
            return 0;
        i += len;
    }
    a->wide += i - start;
    return i - start;
}

static void scan_finish(const scan_acc *a, const unsigned char *p, size_t n, int norm,
                        pg_text_stats *st)
{
    size_t last = n - a->line_start;
    st->max_line = last > a->max_line ? last : a->max_line;
    st->has_8bit = a->has_8bit;
    st->has_nul = a->has_nul;
    st->bare = a->bare;
    st->has_bare = !norm && a->bare > 0;
    st->out_len = norm ? n + a->bare : n;
    if (norm)
        st->ends_break = n == 0 || p[n - 1] == '\r' || p[n - 1] == '\n';
    else
        st->ends_break = n == 0 || (n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n');
    /* Every octet at least one character, =XX three, every break CRLF; soft breaks and
     * encoded trailing white space only add. */
    uint64_t chars = (uint64_t)(n - a->break_len) + 2 * (uint64_t)a->wide;
    st->qp_min = chars + 2 * (uint64_t)a->breaks;
    /* At most one white space octet before each break (and at the end) is encoded; a soft
     * break follows at least QP_MIN_SOFT_LINE characters; the text may end in one. */
    uint64_t most = st->qp_min + 2 * ((uint64_t)a->breaks + 1);
    st->qp_max = most + 3 * (most / QP_MIN_SOFT_LINE) + 3;
}

/* Offset of the first octet at or after i that is not plain printable ASCII, looking at
 * whole vectors and words only: fewer than eight octets before n are left to the caller. */
static size_t skip_plain(const unsigned char *p, size_t i, size_t n)
{
#ifdef PG_TEXT_SSE2
    for (; n - i >= 16; i += 16) {
        unsigned special = special16(p + i);
        if (special != 0)
            return i + (size_t)__builtin_ctz(special);
    }
#endif
    for (; n - i >= 8; i += 8) {
        uint64_t special = word_special(load8(p + i));
        if (special != 0)
            return i + plain_prefix(special);
    }
    return i;
}

int pg_text_scan(const char *text, size_t n, unsigned flags, pg_text_stats *st)
{
    const unsigned char *p = (const unsigned char *)text;
    const int norm = (flags & PG_SCAN_NORMALIZE) != 0, utf8 = (flags & PG_SCAN_UTF8) != 0;
    scan_acc a;
    size_t i = 0;
    memset(&a, 0, sizeof a);
    while (i < n) {
        i = skip_plain(p, i, n);
        if (i >= n)
            break;
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '=') {
            i++;
        } else if (c >= 0x80) {
            size_t len = scan_high(&a, p, i, n, utf8);
            if (len == 0)
                return -1;
            i += len;
        } else if (c == '\r' || c == '\n') {
            i += scan_break(&a, p, i, n, norm);
        } else {
            /* RFC 2045 6.7 (3): a tab is written as is (unless it ends a line). */
            a.wide += c != '\t';
            a.has_nul |= c == '\0';
            i++;
        }
    }
    scan_finish(&a, p, n, norm, st);
    return 0;
}

/* Offset of the first CR or LF in p[i..n), or n. */
static size_t next_break(const unsigned char *p, size_t i, size_t n)
{
#ifdef PG_TEXT_SSE2
    for (; n - i >= 16; i += 16) {
        unsigned found = breaks16(p + i);
        if (found != 0)
            return i + (size_t)__builtin_ctz(found);
    }
#endif
    for (; n - i >= 8; i += 8) {
        uint64_t x = load8(p + i);
        uint64_t found = has_zero(x ^ (K01 * '\r')) | has_zero(x ^ (K01 * '\n'));
        if (found != 0) {
            i += plain_prefix(found);
            break;
        }
    }
    while (i < n && p[i] != '\r' && p[i] != '\n')
        i++;
    return i;
}

/* Copies text from *pos on into dst (cap octets) with every line break as CRLF, stopping
 * when dst is full; returns the octets written and advances *pos. */
static size_t copy_crlf(const unsigned char *p, size_t n, size_t *pos, char *dst, size_t cap)
{
    size_t i = *pos, k = 0;
    while (i < n && k < cap) {
        size_t end = next_break(p, i, n);
        size_t run = end - i < cap - k ? end - i : cap - k;
        memcpy(dst + k, p + i, run);
        k += run;
        i += run;
        if (i < end || i == n || cap - k < 2)
            break;
        memcpy(dst + k, "\r\n", 2);
        k += 2;
        i += p[i] == '\r' && i + 1 < n && p[i + 1] == '\n' ? 2 : 1;
    }
    *pos = i;
    return k;
}

pigeon_err pg_text_put_crlf(pg_buf *out, const char *text, size_t n, size_t out_len)
{
    size_t pos = 0;
    if (pg_buf_reserve(out, out_len) != PIGEON_OK)
        return out->err;
    out->len += copy_crlf((const unsigned char *)text, n, &pos, out->data + out->len, out_len);
    out->data[out->len] = '\0';
    return PIGEON_OK;
}

pigeon_err pg_text_put_b64(pg_buf *out, const char *text, size_t n, size_t out_len)
{
    char scratch[B64_SCRATCH];
    pg_b64_stream st;
    size_t pos = 0;
    if (pg_buf_reserve(out, (size_t)pg_b64_encoded_len(out_len, B64_LINE)) != PIGEON_OK)
        return out->err;
    pg_b64_stream_init(&st, B64_LINE);
    while (pos < n) {
        size_t k = copy_crlf((const unsigned char *)text, n, &pos, scratch, sizeof scratch);
        if (pg_b64_stream_update(&st, out, scratch, k) != PIGEON_OK)
            return out->err;
    }
    return pg_b64_stream_final(&st, out);
}

int pg_text_has_8bit(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        if (load8(p + i) & K80)
            return 1;
    }
    for (; i < n; i++) {
        if (p[i] >= 0x80)
            return 1;
    }
    return 0;
}
