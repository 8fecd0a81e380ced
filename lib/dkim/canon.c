/*
 * canon.c - DKIM canonicalization (RFC 6376 3.4): the streaming body canonicalizer (3.4.3
 * simple, 3.4.4 relaxed), header canonicalization (3.4.1 simple, 3.4.2 relaxed) and the
 * split of a header block into fields.
 *
 * Line breaks: CRLF, a lone LF and a lone CR each count as one line break, written as CRLF,
 * because that is what the SMTP layer puts on the wire for them (pigeon_smtp_send_stream);
 * a signature over anything else would fail at the receiver.
 */
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "dkim/canon.h"

/* Byte classes of the body scanner. */
enum { C_TEXT = 0, C_WSP = 1, C_CR = 2, C_LF = 3 };

static unsigned char byte_class[256];
static int byte_class_ready;

static void classes_init(void)
{
    if (byte_class_ready)
        return;
    byte_class[' '] = C_WSP;
    byte_class['\t'] = C_WSP;
    byte_class['\r'] = C_CR;
    byte_class['\n'] = C_LF;
    byte_class_ready = 1;
}

static void flush(pg_dkim_body *b)
{
    if (b->out_len > 0)
        b->sink(b->sink_ctx, b->out, b->out_len);
    b->out_len = 0;
}

static void put(pg_dkim_body *b, const void *p, size_t n)
{
    if (b->out_len + n > sizeof b->out)
        flush(b);
    if (n > sizeof b->out) {
        b->sink(b->sink_ctx, p, n);
        return;
    }
    memcpy(b->out + b->out_len, p, n);
    b->out_len += n;
}

/* Writes the line breaks held back: content follows, so they were not trailing. */
static void release_lines(pg_dkim_body *b)
{
    for (; b->empty_lines > 0; b->empty_lines--)
        put(b, "\r\n", 2);
}

void pg_dkim_body_init(pg_dkim_body *b, pigeon_dkim_canon canon, pg_dkim_sink sink, void *ctx)
{
    classes_init();
    memset(b, 0, sizeof *b);
    b->canon = canon;
    b->sink = sink;
    b->sink_ctx = ctx;
}

/* Word-at-a-time byte tests on 8 bytes: zero_bytes(v) has the high bit of exactly the
 * bytes of v that are zero (no borrow between bytes, so the flags can be combined with
 * their neighbours' below). */
#define ONES 0x0101010101010101ULL
#define LOWS 0x7f7f7f7f7f7f7f7fULL
static uint64_t zero_bytes(uint64_t v)
{
    return ~(((v & LOWS) + LOWS) | v | LOWS);
}

/* Nonzero unless the 8 bytes at p can be copied as they are: no CR or LF, and for relaxed
 * (wsp) no HTAB, no two SP in a row and no SP as the last byte (whose successor is not
 * known here). A single SP between text is the common case of prose, so it must not leave
 * the fast path. The byte before p is text (the caller's run invariant), so an SP as the
 * first byte is fine. */
static uint64_t has_special(const unsigned char *p, int wsp)
{
    uint64_t w;
    memcpy(&w, p, 8);
    uint64_t m = zero_bytes(w ^ (ONES * '\r')) | zero_bytes(w ^ (ONES * '\n'));
    if (wsp) {
        uint64_t sp = zero_bytes(w ^ (ONES * ' '));
        uint64_t last = 0;
        memcpy(&last, (const unsigned char[8]){0, 0, 0, 0, 0, 0, 0, 0x80}, 8);
        m |= zero_bytes(w ^ (ONES * '\t')) | (sp & (sp << 8)) | (sp & last);
    }
    return m;
}

/* A run of text bytes (no WSP for relaxed, no CR or LF) at p. */
static void text_run(pg_dkim_body *b, const unsigned char *p, size_t n)
{
    release_lines(b);
    if (b->pending_wsp) {
        put(b, " ", 1);
        b->pending_wsp = 0;
    }
    put(b, p, n);
    b->line_open = 1;
    b->wrote = 1;
}

static void line_break(pg_dkim_body *b)
{
    /* 3.4.4: white space at the end of a line is removed. */
    b->pending_wsp = 0;
    b->empty_lines++;
    b->line_open = 0;
}

/* The byte classes of 64 bytes at c, one bit per byte (bit i for c[i]). */
typedef struct masks {
    uint64_t cr, lf, sp, tab;
} masks;

static masks masks_of(const unsigned char *c)
{
    masks m = {0, 0, 0, 0};
#ifdef __SSE2__
    const __m128i vcr = _mm_set1_epi8('\r'), vlf = _mm_set1_epi8('\n'), vtab = _mm_set1_epi8('\t'),
                  vsp = _mm_set1_epi8(' ');
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(c + 16 * k));
        m.cr |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, vcr)) << (16 * k);
        m.lf |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, vlf)) << (16 * k);
        m.sp |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, vsp)) << (16 * k);
        m.tab |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, vtab)) << (16 * k);
    }
#else
    for (int i = 0; i < 64; i++) {
        m.cr |= (uint64_t)(c[i] == '\r') << i;
        m.lf |= (uint64_t)(c[i] == '\n') << i;
        m.sp |= (uint64_t)(c[i] == ' ') << i;
        m.tab |= (uint64_t)(c[i] == '\t') << i;
    }
#endif
    return m;
}

/*
 * At the start of a line, the longest run of whole lines ending in CRLF whose canonical
 * form is the input itself: each non-empty, no bare CR or LF, and for relaxed (3.4.4) no
 * HTAB, no two SP in a row and no SP before the CRLF. They are written as one span (the
 * last line's CRLF held back as usual: it may be trailing). Returns the bytes consumed; the
 * general scanner takes the rest. This is the common case of a body (base64 and
 * quoted-printable lines, plain prose).
 *
 * One pass, 64 bytes a step: every flaw is marked at the byte that reveals it, which is
 * always on the flawed line (an LF not after a CR; the byte after a CR not an LF; a CR
 * right after an LF, an empty line; for relaxed an HTAB, an SP after an SP, a CR after an
 * SP). The run ends at the last LF before the first flaw.
 */
static size_t clean_lines(pg_dkim_body *b, const unsigned char *p, const unsigned char *end)
{
    int relaxed = b->canon == PIGEON_DKIM_RELAXED;
    size_t n = (size_t)(end - p), i = 0, stop = 0;  /* stop: just past the run's last LF */
    uint64_t prev_cr = 0, prev_lf = 1, prev_sp = 0; /* the byte before p ended a line */
    unsigned char tail[64];
    while (i < n) {
        masks m;
        uint64_t valid = ~(uint64_t)0;
        if (n - i >= 64) {
            m = masks_of(p + i);
        } else { /* the last few bytes, padded with text */
            memset(tail, 'x', sizeof tail);
            memcpy(tail, p + i, n - i);
            m = masks_of(tail);
            valid = ((uint64_t)1 << (n - i)) - 1;
        }
        uint64_t after_cr = (m.cr << 1) | prev_cr, after_lf = (m.lf << 1) | prev_lf;
        uint64_t bad = (after_cr & ~m.lf) | (m.lf & ~after_cr) | (m.cr & after_lf);
        if (relaxed) {
            uint64_t after_sp = (m.sp << 1) | prev_sp;
            bad |= m.tab | (after_sp & (m.sp | m.cr));
        }
        bad &= valid;
        uint64_t lf = m.lf & valid;
        if (bad != 0)
            lf &= ((uint64_t)1 << __builtin_ctzll(bad)) - 1; /* LFs before the flaw */
        if (lf != 0)
            stop = i + 64 - (size_t)__builtin_clzll(lf);
        if (bad != 0)
            break;
        prev_cr = m.cr >> 63;
        prev_lf = m.lf >> 63;
        prev_sp = m.sp >> 63;
        i += 64;
    }
    if (stop == 0)
        return 0;
    release_lines(b);
    put(b, p, stop - 2);
    b->empty_lines = 1;
    b->line_open = 0;
    b->wrote = 1;
    return stop;
}

void pg_dkim_body_feed(pg_dkim_body *b, const void *buf, size_t len)
{
    const unsigned char *p = buf, *end = p + len;
    int relaxed = b->canon == PIGEON_DKIM_RELAXED;
    while (p < end) {
        if (!b->line_open && !b->pending_wsp && !b->saw_cr) {
            p += clean_lines(b, p, end);
            if (p == end)
                break;
        }
        unsigned cls = byte_class[*p];
        if (cls == C_LF && b->saw_cr) { /* the LF of a CRLF split or not */
            b->saw_cr = 0;
            p++;
            continue;
        }
        b->saw_cr = 0;
        if (cls == C_CR || cls == C_LF) {
            b->saw_cr = cls == C_CR;
            line_break(b);
            p++;
            continue;
        }
        if (cls == C_WSP && relaxed) {
            /* 3.4.4: a run of WSP is one SP, written only if text follows on the line. */
            b->pending_wsp = 1;
            p++;
            continue;
        }
        /* The longest run written as it is: text, and for relaxed also a single SP
         * between text (the common case, kept without going through pending_wsp). */
        const unsigned char *q = p + 1;
        if (relaxed) {
            while (q < end) {
                if (end - q >= 8 && !has_special(q, 1))
                    q += 8;
                else if (byte_class[*q] == C_TEXT)
                    q++;
                else if (*q == ' ' && q + 1 < end && byte_class[q[1]] == C_TEXT)
                    q += 2;
                else
                    break;
            }
        } else {
            while (q < end) {
                if (end - q >= 8 && !has_special(q, 0))
                    q += 8;
                else if (byte_class[*q] <= C_WSP)
                    q++;
                else
                    break;
            }
        }
        text_run(b, p, (size_t)(q - p));
        p = q;
    }
}

void pg_dkim_body_finish(pg_dkim_body *b)
{
    if (b->canon == PIGEON_DKIM_SIMPLE) {
        /* 3.4.3: trailing empty lines go; the last line keeps (or gets) its CRLF; an empty
         * body is one CRLF. */
        put(b, "\r\n", 2);
    } else if (b->wrote) {
        /* 3.4.4: the same, but an empty body stays empty (erratum 1384 and every
         * verifier in use). */
        put(b, "\r\n", 2);
    }
    b->empty_lines = 0;
    b->pending_wsp = 0;
    flush(b);
}

/* ---- header fields ---- */

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* The end of the line starting at p (its CR or the block's end). */
static const char *line_end(const char *p, const char *end)
{
    const char *cr = p;
    while (cr < end && !(cr[0] == '\r' && cr + 1 < end && cr[1] == '\n'))
        cr++;
    return cr;
}

static void name_of(pg_dkim_field *f)
{
    const char *colon = memchr(f->raw, ':', f->raw_len);
    size_t n = colon != NULL ? (size_t)(colon - f->raw) : 0;
    while (n > 0 && is_wsp(f->raw[n - 1]))
        n--;
    f->name_len = n;
}

size_t pg_dkim_fields_split(const char *block, size_t len, pg_dkim_field *out, size_t max)
{
    const char *p = block, *end = block + len;
    size_t n = 0;
    while (p < end) {
        const char *e = line_end(p, end);
        if (is_wsp(*p) && n > 0 && n <= max) {
            /* A continuation line (RFC 5322 2.2.3): the field grows. */
            out[n - 1].raw_len = (size_t)(e - out[n - 1].raw);
        } else {
            if (n < max) {
                out[n].raw = p;
                out[n].raw_len = (size_t)(e - p);
                out[n].used = 0;
            }
            if (n++ > max)
                return max + 1;
        }
        p = e < end ? e + 2 : end;
    }
    for (size_t i = 0; i < n && i < max; i++)
        name_of(&out[i]);
    return n;
}

void pg_dkim_header_canon(pg_buf *out, pigeon_dkim_canon canon, const char *raw, size_t len,
                          int crlf)
{
    if (canon == PIGEON_DKIM_SIMPLE) {
        pg_buf_append(out, raw, len);
    } else {
        const char *colon = memchr(raw, ':', len);
        size_t name_len = colon != NULL ? (size_t)(colon - raw) : len;
        while (name_len > 0 && is_wsp(raw[name_len - 1]))
            name_len--;
        /* The result is never longer than the input: written in place after one reserve. */
        if (pg_buf_reserve(out, len + 3) != PIGEON_OK)
            return;
        char *d = out->data + out->len;
        for (size_t i = 0; i < name_len; i++) {
            char c = raw[i];
            *d++ = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
        }
        *d++ = ':';
        /* The value: unfolded (CR and LF dropped), WSP runs one SP, none leading or
         * trailing. */
        int wsp = 0, any = 0;
        for (size_t i = colon != NULL ? (size_t)(colon - raw) + 1 : len; i < len; i++) {
            char c = raw[i];
            if (c == '\r' || c == '\n')
                continue;
            if (is_wsp(c)) {
                wsp = 1;
                continue;
            }
            if (wsp && any)
                *d++ = ' ';
            wsp = 0;
            any = 1;
            *d++ = c;
        }
        out->len = (size_t)(d - out->data);
        out->data[out->len] = '\0';
    }
    if (crlf)
        pg_buf_append(out, "\r\n", 2);
}
