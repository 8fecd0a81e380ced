/*
 * rfc2047.c - RFC 2047 encoded-words in header fields, both ways, and the folding of
 * header text (RFC 5322 2.2.3).
 *
 * Encoding (pg_ew_encode): printable ASCII words stay as they are; words with other
 * characters, or that look like an encoded-word themselves (an injection: RFC 2047 6.1
 * decoders would turn "=?UTF-8?Q?=0D=0A?=" into CR LF), become runs of "=?UTF-8?B?..?="
 * or "?Q?" words, whichever is shorter (RFC 2047 4), each at most 75 characters
 * (RFC 2047 2) and split only between whole UTF-8 characters (RFC 2047 5). Decoders
 * drop white space between adjacent encoded-words (RFC 2047 6.2), so white space inside a
 * run is encoded inside the words. Lines fold at 78 columns with CRLF and one white space
 * character (RFC 5322 2.1.1, 2.2.3), and not before the first token unless the line has no
 * room for even one character: Python's email package reads the white space of such a
 * fold as the start of the value.
 *
 * Exact round trip: a value decodes (RFC 2047 6.2 rules, as in pg_ew_decode or Python's
 * email package) to exactly the input, white space included. Leading and trailing white
 * space, which header parsers strip, is therefore carried inside encoded-words, and so is
 * a run of white space too long to fold before.
 *
 * Decoding (pg_ew_decode) accepts any charset iconv(3) knows.
 */
#include "codec/rfc2047.h"
#include "util/utf8.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>
#include <strings.h>

/* RFC 5322 2.1.1: lines SHOULD be at most 78 characters, CRLF excluded. */
#define FOLD_AT 78
/* RFC 2047 2: an encoded-word is at most 75 characters. */
#define EW_MAX 75
/* "=?UTF-8?B?" and "?=" around the encoded text. */
#define EW_OVERHEAD 12
/* A literal word must fit on a folded line after one white space character. */
#define WORD_MAX (FOLD_AT - 1)
/* Below this much room on a line, fold rather than write a tiny encoded-word. */
#define EW_MIN_ROOM 28
/* Longest charset name we pass to iconv (RFC 2978 names are at most 40). */
#define CHARSET_MAX 64

/* Output position while encoding one value. */
typedef struct ew_writer {
    pg_buf *out;   /* where the text goes */
    size_t col;    /* characters on the current line */
    int started;   /* a token was written: folding is allowed before the next one */
    int lead_fold; /* a fold before the first token is allowed (not inside quotes) */
} ew_writer;

/* One encoded-word as planned before it is written. */
typedef struct ew_fit {
    size_t bytes; /* input bytes it holds (whole UTF-8 characters) */
    size_t len;   /* its length, "=?UTF-8?X?" and "?=" included */
    char enc;     /* 'B' or 'Q' */
} ew_fit;

static void encode_text(ew_writer *w, const char *s, size_t n);
static void encode_phrase(ew_writer *w, const char *s, size_t n);
static void put_run(ew_writer *w, const char *sep, size_t seplen, const char *s, size_t n,
                    pg_ew_context ctx, size_t tail);

static const char hex_upper[] = "0123456789ABCDEF";

static int is_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* Characters Q encoding may leave bare: RFC 2047 5(3) in a phrase, 5(1) and 4.2 in text. */
static int q_bare(unsigned char c, pg_ew_context ctx)
{
    if (ctx == PG_EW_PHRASE)
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
    return c > 32 && c < 127 && c != '=' && c != '?' && c != '_';
}

/* RFC 2047 4.2 (2): a space may be written as '_'; everything else not bare is =XX. */
static size_t q_width(unsigned char c, pg_ew_context ctx)
{
    return c == ' ' || q_bare(c, ctx) ? 1 : 3;
}

/* Plans the longest encoded-word of at most room characters for a prefix of s: B or Q,
 * whichever holds more, and on a tie whichever is shorter. bytes is 0 if nothing fits. */
static ew_fit fit_word(const unsigned char *s, size_t n, size_t room, pg_ew_context ctx)
{
    ew_fit f = {0, 0, 'Q'};
    if (room > EW_MAX)
        room = EW_MAX;
    if (room <= EW_OVERHEAD)
        return f;
    size_t payload = room - EW_OVERHEAD, qlen = 0, qbytes = 0, bbytes = 0, i = 0;
    int q_ok = 1, b_ok = 1;
    while (i < n && (q_ok || b_ok)) {
        size_t cl = pg_utf8_char_len(s[i]), w = 0;
        for (size_t k = 0; k < cl && i + k < n; k++)
            w += q_width(s[i + k], ctx);
        if (q_ok && qlen + w <= payload) {
            qlen += w;
            qbytes = i + cl;
        } else {
            q_ok = 0;
        }
        if (b_ok && (i + cl + 2) / 3 * 4 <= payload)
            bbytes = i + cl;
        else
            b_ok = 0;
        i += cl;
    }
    size_t blen = (bbytes + 2) / 3 * 4;
    if (qbytes > bbytes || (qbytes == bbytes && qlen <= blen)) {
        f.bytes = qbytes;
        f.len = qlen + EW_OVERHEAD;
    } else {
        f.bytes = bbytes;
        f.len = blen + EW_OVERHEAD;
        f.enc = 'B';
    }
    if (f.bytes == 0)
        f.len = 0;
    return f;
}

/* As fit_word, but the last word of a run also leaves room for tail characters. */
static ew_fit fit_last(const unsigned char *s, size_t n, size_t room, pg_ew_context ctx,
                       size_t tail)
{
    ew_fit f = fit_word(s, n, room, ctx);
    if (f.bytes == n && f.len + tail > room)
        f = fit_word(s, n, room > tail ? room - tail : 0, ctx);
    return f;
}

static void put_word(ew_writer *w, const unsigned char *s, ew_fit f, pg_ew_context ctx)
{
    if (pg_buf_reserve(w->out, f.len) != PIGEON_OK)
        return;
    char *d = w->out->data + w->out->len;
    memcpy(d, f.enc == 'B' ? "=?UTF-8?B?" : "=?UTF-8?Q?", 10);
    d += 10;
    if (f.enc == 'B') {
        d += pg_b64_encode_raw(s, f.bytes, d);
    } else {
        for (size_t i = 0; i < f.bytes; i++) {
            if (s[i] == ' ') {
                *d++ = '_';
            } else if (q_bare(s[i], ctx)) {
                *d++ = (char)s[i];
            } else {
                d[0] = '=';
                d[1] = hex_upper[s[i] >> 4];
                d[2] = hex_upper[s[i] & 15];
                d += 3;
            }
        }
    }
    memcpy(d, "?=", 2);
    w->out->len += f.len;
    w->out->data[w->out->len] = '\0';
    w->col += f.len;
    w->started = 1;
}

/* Writes the white space before a token, after a fold (CRLF; the white space then
 * starts the new line, RFC 5322 2.2.3) if fold is set. */
static void put_sep(ew_writer *w, const char *sep, size_t seplen, int fold)
{
    if (fold) {
        pg_buf_append(w->out, "\r\n", 2);
        w->col = 0;
    }
    pg_buf_append(w->out, sep, seplen);
    w->col += seplen;
}

/* A fold is due when the token would pass column 78, except before the first token (that
 * would add white space to the value). After a token the line always holds it (a fold is
 * written together with the token that follows it), so the fold leaves no line of white
 * space only, even when that token is one character at column 0. */
static int fold_due(const ew_writer *w, size_t seplen, size_t toklen)
{
    return w->started && w->col + seplen + toklen > FOLD_AT;
}

static void put_literal(ew_writer *w, const char *sep, size_t seplen, const char *tok,
                        size_t toklen)
{
    put_sep(w, sep, seplen, fold_due(w, seplen, toklen));
    pg_buf_append(w->out, tok, toklen);
    w->col += toklen;
    w->started = 1;
}

/* Writes s as encoded-words: the first after sep, the others after a space or a fold. */
static void put_run(ew_writer *w, const char *sep, size_t seplen, const char *s, size_t n,
                    pg_ew_context ctx, size_t tail)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && w->out->err == PIGEON_OK) {
        size_t room = w->col + seplen < FOLD_AT ? FOLD_AT - w->col - seplen : 0;
        ew_fit f = fit_last(p + i, n - i, room, ctx, tail);
        int fold = 0;
        /* Before the first token, only after more than one character of the caller's:
         * a fold there must not leave the caller's line empty or blank. */
        int can_fold = w->started || (w->lead_fold && w->col > 1);
        if (can_fold && (f.bytes == 0 || (w->started && f.bytes < n - i && room < EW_MIN_ROOM))) {
            /* Before the first token only when not one character fits: the fold's white
             * space then comes first (and Python's parser shows it, see above). */
            fold = 1;
            if (seplen == 0) {
                sep = " ";
                seplen = 1;
            }
            f = fit_last(p + i, n - i, FOLD_AT - seplen, ctx, tail);
        }
        if (f.bytes == 0) /* no room at all: one character, the line runs long */
            f = fit_word(p + i, pg_utf8_char_len(p[i]), EW_MAX, ctx);
        put_sep(w, sep, seplen, fold);
        put_word(w, p + i, f, ctx);
        i += f.bytes;
        sep = " ";
        seplen = 1;
    }
}

pigeon_err pg_ew_encode_run(pg_buf *out, size_t *col, const char *utf8, size_t n, pg_ew_context ctx,
                            size_t tail)
{
    ew_writer w = {out, *col, 0, 0}; /* inside a quoted-string: no fold before the first */
    if (out->err != PIGEON_OK)
        return out->err;
    put_run(&w, "", 0, utf8, n, ctx, tail);
    *col = w.col;
    return out->err;
}

static size_t skip_wsp(const char *s, size_t n, size_t i)
{
    while (i < n && is_wsp((unsigned char)s[i]))
        i++;
    return i;
}

static size_t skip_word(const char *s, size_t n, size_t i)
{
    while (i < n && !is_wsp((unsigned char)s[i]))
        i++;
    return i;
}

/* "=?" anywhere could start an encoded-word to a lenient decoder (Python decodes them
 * even inside words), so such text is always encoded itself. */
static int has_ew_opener(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '=' && s[i + 1] == '?')
            return 1;
    return 0;
}

/* A word that can be written as it is in unstructured text (RFC 5322 3.2.5 VCHAR). */
static int literal_word(const char *s, size_t n)
{
    if (n > WORD_MAX || has_ew_opener(s, n))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126)
            return 0;
    return 1;
}

/* Unstructured text: literal words, and runs of encoded words for the others. A run
 * takes the white space between its words and at the start or end of the value; between
 * a run and a literal word one white space character stays literal as the separator. */
static void encode_text(ew_writer *w, const char *s, size_t n)
{
    enum { NONE, LIT, ENC } prev = NONE;
    const char *run_sep = "";
    size_t run_seplen = 0, run_start = 0;
    size_t ws_start = 0, w_start = skip_wsp(s, n, 0);
    while (w_start < n) {
        size_t w_end = skip_word(s, n, w_start), next = skip_wsp(s, n, w_end);
        size_t wslen = w_start - ws_start, wlen = w_end - w_start;
        int enc = !literal_word(s + w_start, wlen) || (next == n && next > w_end);
        if (prev == NONE)
            enc |= wslen > 0 || w->col + wlen > FOLD_AT;
        else if (prev == LIT)
            enc |= wslen + wlen > FOLD_AT; /* must fit a folded line */
        if (!enc && prev == ENC) {
            put_run(w, run_sep, run_seplen, s + run_start, w_start - 1 - run_start, PG_EW_TEXT, 0);
            put_literal(w, s + w_start - 1, 1, s + w_start, wlen);
        } else if (!enc) {
            put_literal(w, s + ws_start, wslen, s + w_start, wlen);
        } else if (prev != ENC) {
            run_sep = prev == NONE ? "" : s + ws_start;
            run_seplen = prev == NONE ? 0 : 1;
            run_start = prev == NONE ? 0 : ws_start + 1;
        }
        prev = enc ? ENC : LIT;
        ws_start = w_end;
        w_start = next;
    }
    if (prev == NONE) /* white space only */
        put_run(w, "", 0, s, n, PG_EW_TEXT, 0);
    else if (prev == ENC)
        put_run(w, run_sep, run_seplen, s + run_start, n - run_start, PG_EW_TEXT, 0);
}

/* RFC 5322 3.2.3 atext. */
static int is_atext(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Whether s splits at its white space into pieces that each fit a line: the first after
 * the current column, the others on folded lines after their white space. */
static int pieces_fit(const ew_writer *w, const char *s, size_t n)
{
    size_t ws_start = 0, p_start = 0, col = w->col;
    while (p_start < n) {
        size_t p_end = skip_word(s, n, p_start);
        if ((ws_start == 0 ? col : 0) + (p_start - ws_start) + (p_end - p_start) > FOLD_AT)
            return 0;
        ws_start = p_end;
        p_start = skip_wsp(s, n, p_end);
    }
    return 1;
}

static void put_pieces(ew_writer *w, const char *s, size_t n)
{
    size_t ws_start = 0, p_start = 0;
    while (p_start < n) {
        size_t p_end = skip_word(s, n, p_start);
        put_literal(w, s + ws_start, p_start - ws_start, s + p_start, p_end - p_start);
        ws_start = p_end;
        p_start = skip_wsp(s, n, p_end);
    }
}

/* A phrase of atoms separated by single spaces (RFC 5322 3.2.5) needs no quoting. */
static int atom_phrase(const char *s, size_t n)
{
    if (n == 0 || s[0] == ' ' || s[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' ? s[i + 1] == ' ' : !is_atext(c))
            return 0;
    }
    return 1;
}

/* Printable ASCII and white space can go in a quoted-string (RFC 5322 3.2.4). */
static int quotable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 32 && c != '\t') || c > 126)
            return 0;
    }
    return 1;
}

/* RFC 5322 3.2.4: a quoted-string with '"' and '\' as quoted-pairs. */
static void quote_into(pg_buf *q, const char *s, size_t n)
{
    pg_buf_putc(q, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            pg_buf_putc(q, '\\');
        pg_buf_putc(q, s[i]);
    }
    pg_buf_putc(q, '"');
}

/* A display name: atoms as they are, other ASCII as one quoted-string (folded at its
 * white space), anything else as one run of encoded-words (RFC 2047 5(3)). */
static void encode_phrase(ew_writer *w, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (!has_ew_opener(s, n) && atom_phrase(s, n) && pieces_fit(w, s, n)) {
        put_pieces(w, s, n);
        return;
    }
    if (!has_ew_opener(s, n) && quotable(s, n)) {
        pg_buf q;
        pg_buf_init(&q);
        quote_into(&q, s, n);
        int ok = q.err == PIGEON_OK && pieces_fit(w, q.data, q.len);
        if (ok)
            put_pieces(w, q.data, q.len);
        else if (q.err != PIGEON_OK && w->out->err == PIGEON_OK)
            w->out->err = q.err;
        pg_buf_cleanup(&q);
        if (ok || w->out->err != PIGEON_OK)
            return;
    }
    put_run(w, "", 0, s, n, PG_EW_PHRASE, 0);
}

pigeon_err pg_ew_encode(pg_buf *out, size_t *col, const char *utf8, size_t n, pg_ew_context ctx)
{
    if (out->err != PIGEON_OK)
        return out->err;
    if (col == NULL || (utf8 == NULL && n > 0))
        return out->err = PIGEON_ERR_INVALID;
    if (pg_has_ctl_breaks(utf8, n))
        return out->err = PIGEON_ERR_HEADER;
    if (!pg_utf8_valid(utf8, n))
        return out->err = PIGEON_ERR_CHARSET;
    ew_writer w = {out, *col, 0, 1};
    if (ctx == PG_EW_PHRASE)
        encode_phrase(&w, utf8, n);
    else
        encode_text(&w, utf8, n);
    *col = w.col;
    return out->err;
}

/* ---- decoding ---- */

/* One encoded-word found in the input. */
typedef struct ew_token {
    const char *charset; /* its charset name (RFC 2231 5 language suffix cut off) */
    size_t charset_len;  /* length of that name */
    char enc;            /* 'B' or 'Q', upper case */
    const char *text;    /* the encoded text */
    size_t text_len;     /* its length */
    size_t len;          /* length of the whole word, "=?" to "?=" */
} ew_token;

/* Bytes of consecutive encoded-words in one charset, converted together so that a
 * character split across words by a careless encoder still decodes. */
typedef struct ew_pending {
    pg_buf bytes;                  /* raw decoded bytes */
    char charset[CHARSET_MAX + 1]; /* their charset, "" when empty */
} ew_pending;

/* Parses "=?" charset ["*" lang] "?" ("B" / "Q") "?" encoded-text "?=" (RFC 2047 2). */
static int parse_ew(const char *s, size_t n, ew_token *t)
{
    if (n < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    size_t i = 2;
    while (i < n && s[i] != '?' && !is_wsp((unsigned char)s[i]) && (unsigned char)s[i] > 32)
        i++;
    if (i == 2 || i + 3 >= n || s[i] != '?' || s[i + 2] != '?')
        return 0;
    t->charset = s + 2;
    t->charset_len = i - 2;
    const char *star = memchr(t->charset, '*', t->charset_len);
    if (star != NULL)
        t->charset_len = (size_t)(star - t->charset);
    char enc = s[i + 1];
    if (enc != 'B' && enc != 'b' && enc != 'Q' && enc != 'q')
        return 0;
    t->enc = (enc == 'b' || enc == 'B') ? 'B' : 'Q';
    size_t j = i + 3;
    while (j < n && s[j] != '?' && (unsigned char)s[j] > 32 && (unsigned char)s[j] < 127)
        j++;
    if (j + 1 >= n || s[j] != '?' || s[j + 1] != '=' || t->charset_len == 0)
        return 0;
    t->text = s + i + 3;
    t->text_len = j - (i + 3);
    t->len = j + 2;
    return 1;
}

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* RFC 2047 4.2 Q text into bytes; 0 on a bad escape. */
static int q_decode(pg_buf *out, const char *s, size_t n)
{
    if (pg_buf_reserve(out, n) != PIGEON_OK)
        return 0;
    char *d = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            *d++ = ' ';
        } else if (s[i] != '=') {
            *d++ = s[i];
        } else {
            int hi = i + 2 < n ? hex_digit((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hex_digit((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return 0;
            *d++ = (char)(hi << 4 | lo);
            i += 2;
        }
    }
    out->len = (size_t)(d - out->data);
    out->data[out->len] = '\0';
    return 1;
}

/* Decodes the word's text into raw bytes appended to raw; 0 if it is malformed. */
static int ew_bytes(const ew_token *t, pg_buf *raw)
{
    size_t before = raw->len;
    int ok = t->enc == 'B' ? pg_b64_decode(raw, t->text, t->text_len) == PIGEON_OK
                           : q_decode(raw, t->text, t->text_len);
    if (!ok && raw->err == PIGEON_ERR_INVALID) {
        raw->err = PIGEON_OK; /* a malformed word is left as text, not an error */
        raw->len = before;
        if (raw->data != NULL)
            raw->data[before] = '\0';
    }
    return ok;
}

static int is_utf8_name(const char *cs)
{
    return strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "UTF8") == 0 ||
           strcasecmp(cs, "US-ASCII") == 0 || strcasecmp(cs, "ASCII") == 0;
}

/* Charset names are letters, digits and "-_.:+()" (RFC 2978 2.3); anything else (such as
 * iconv's "//" suffixes) is refused rather than passed to iconv. */
static int charset_name_ok(const char *cs, size_t n)
{
    if (n == 0 || n > CHARSET_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)cs[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("-_.:+()", c) != NULL))
            return 0;
    }
    return 1;
}

/* Converts bytes in charset cs to UTF-8 with iconv(3), appending to out. */
static pigeon_err iconv_append(pg_buf *out, const char *cs, const char *in, size_t n)
{
    iconv_t cd = iconv_open("UTF-8", cs);
    if (cd == (iconv_t)-1)
        return out->err = PIGEON_ERR_CHARSET;
    char *src = (char *)in;
    size_t left = n;
    while (left > 0 && out->err == PIGEON_OK) {
        if (pg_buf_reserve(out, left * 4 + 16) != PIGEON_OK)
            break;
        char *dst = out->data + out->len;
        size_t room = out->cap - out->len - 1;
        size_t r = iconv(cd, &src, &left, &dst, &room);
        out->len = (size_t)(dst - out->data);
        out->data[out->len] = '\0';
        if (r == (size_t)-1 && errno != E2BIG)
            out->err = PIGEON_ERR_CHARSET;
    }
    if (out->err == PIGEON_OK && pg_buf_reserve(out, 16) == PIGEON_OK) {
        char *dst = out->data + out->len;
        size_t room = out->cap - out->len - 1;
        if (iconv(cd, NULL, NULL, &dst, &room) == (size_t)-1) /* shift back (ISO-2022) */
            out->err = PIGEON_ERR_CHARSET;
        out->len = (size_t)(dst - out->data);
        out->data[out->len] = '\0';
    }
    iconv_close(cd);
    return out->err;
}

/* Converts and appends the pending bytes, then empties them. */
static pigeon_err flush_pending(ew_pending *pd, pg_buf *out)
{
    if (pd->bytes.err != PIGEON_OK && out->err == PIGEON_OK)
        out->err = pd->bytes.err;
    if (pd->charset[0] == '\0' || out->err != PIGEON_OK)
        return out->err;
    if (is_utf8_name(pd->charset)) {
        if (!pg_utf8_valid(pd->bytes.data, pd->bytes.len))
            return out->err = PIGEON_ERR_CHARSET;
        pg_buf_append(out, pd->bytes.data, pd->bytes.len);
    } else {
        iconv_append(out, pd->charset, pd->bytes.data, pd->bytes.len);
    }
    pg_buf_reset(&pd->bytes);
    pd->charset[0] = '\0';
    return out->err;
}

/* Adds one word's bytes to the pending run, flushing first if the charset changes.
 * Returns 0 if the word is malformed (it is then left as text). */
static int take_word(ew_pending *pd, pg_buf *out, const ew_token *t)
{
    if (!charset_name_ok(t->charset, t->charset_len)) {
        out->err = PIGEON_ERR_CHARSET;
        return 1;
    }
    char cs[CHARSET_MAX + 1];
    memcpy(cs, t->charset, t->charset_len);
    cs[t->charset_len] = '\0';
    if (strcasecmp(cs, pd->charset) != 0 && flush_pending(pd, out) != PIGEON_OK)
        return 1;
    size_t before = pd->bytes.len;
    if (!ew_bytes(t, &pd->bytes)) {
        pd->bytes.len = before;
        return 0;
    }
    memcpy(pd->charset, cs, t->charset_len + 1);
    return 1;
}

/* Appends [s, s+n) without the CRLF of folds (RFC 5322 2.2.3 unfolding). */
static void append_unfolded(pg_buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '\r' && s[i] != '\n')
            pg_buf_putc(out, s[i]);
}

/* Length of the line break of a fold at s[i] (CRLF, or a bare LF from a Unix file, then
 * white space), 0 if there is none. */
static size_t fold_at(const char *s, size_t n, size_t i)
{
    if (i + 2 < n && s[i] == '\r' && s[i + 1] == '\n' && is_wsp((unsigned char)s[i + 2]))
        return 2;
    return i + 1 < n && s[i] == '\n' && is_wsp((unsigned char)s[i + 1]);
}

pigeon_err pg_ew_decode(pg_buf *out, const char *in, size_t n)
{
    ew_pending pd;
    if (out->err != PIGEON_OK)
        return out->err;
    pg_buf_init(&pd.bytes);
    pd.charset[0] = '\0';
    size_t i = 0, ws_start = 0;
    int after_ew = 0; /* only white space since the last encoded-word */
    while (i < n && out->err == PIGEON_OK) {
        ew_token t;
        size_t fold = fold_at(in, n, i);
        if (fold > 0) {
            i += fold;
        } else if (after_ew && is_wsp((unsigned char)in[i])) {
            i++; /* held back: dropped if another encoded-word follows (RFC 2047 6.2) */
        } else if (parse_ew(in + i, n - i, &t) && take_word(&pd, out, &t)) {
            i += t.len;
            after_ew = 1;
            ws_start = i;
        } else {
            if (flush_pending(&pd, out) != PIGEON_OK)
                break;
            if (after_ew)
                append_unfolded(out, in + ws_start, i - ws_start);
            after_ew = 0;
            size_t j = i + 1;
            while (j < n && in[j] != '=' && in[j] != '\r' && in[j] != '\n')
                j++;
            pg_buf_append(out, in + i, j - i);
            i = j;
        }
    }
    flush_pending(&pd, out);
    if (after_ew && out->err == PIGEON_OK)
        append_unfolded(out, in + ws_start, n - ws_start);
    pg_buf_cleanup(&pd.bytes);
    return out->err;
}
