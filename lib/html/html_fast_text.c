/*
 * html_fast_text.c - the byte-level checks of the fast path (html_fast.c): which bytes
 * gumbo passes through untouched, and the character references templates use.
 */
#include <stdint.h>
#include <string.h>

#include "html/html_int.h"

static int is_alpha(unsigned char c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static int is_alnum(unsigned char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

/* Nonzero when every byte is one gumbo passes through unchanged and without a parse error
 * that matters: valid UTF-8, no NUL, no CR (input preprocessing rewrites it), no control
 * or noncharacter (13.2.3.5), no byte order mark. */
int pg_html_fast_clean(const unsigned char *s, size_t n)
{
    if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf)
        return 0;
    for (size_t i = 0; i < n;) {
        /* Eight printable ASCII bytes at a time: no byte below 0x20, none 0x7f or above. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
            uint64_t del = w ^ (0x7f * ones);
            if (((w - 0x20 * ones) | (del - ones) | w) & high)
                break;
            i += 8;
        }
        if (i == n)
            break;
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x7f) {
            i++;
            continue;
        }
        if (c == '\n' || c == '\t' || c == '\f') {
            i++;
            continue;
        }
        if (c < 0xc2 || c > 0xf4)
            return 0;
        size_t len = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        if (i + len > n)
            return 0;
        uint32_t cp = c & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0; /* overlong or out of range */
        if (cp < 0xa0 || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0xfdd0 && cp <= 0xfdef) ||
            (cp & 0xfffe) == 0xfffe)
            return 0; /* C1 control, surrogate, noncharacter */
        i += len;
    }
    return 1;
}

/* ---- character references (13.2.5.72), the few that templates use ---- */

static const struct {
    const char *name;
    const char *utf8;
} refs[] = {
    {"amp", "&"},
    {"lt", "<"},
    {"gt", ">"},
    {"quot", "\""},
    {"apos", "'"},
    {"nbsp", "\xc2\xa0"},
    {"copy", "\xc2\xa9"},
    {"reg", "\xc2\xae"},
    {"trade", "\xe2\x84\xa2"},
    {"hellip", "\xe2\x80\xa6"},
    {"ndash", "\xe2\x80\x93"},
    {"mdash", "\xe2\x80\x94"},
    {"laquo", "\xc2\xab"},
    {"raquo", "\xc2\xbb"},
    {"lsquo", "\xe2\x80\x98"},
    {"rsquo", "\xe2\x80\x99"},
    {"ldquo", "\xe2\x80\x9c"},
    {"rdquo", "\xe2\x80\x9d"},
    {"bull", "\xe2\x80\xa2"},
    {"middot", "\xc2\xb7"},
    {"times", "\xc3\x97"},
    {"deg", "\xc2\xb0"},
    {"euro", "\xe2\x82\xac"},
    {"pound", "\xc2\xa3"},
    {"zwnj", "\xe2\x80\x8c"},
    {"shy", "\xc2\xad"},
};

static void put_utf8(pg_buf *b, uint32_t cp)
{
    char u[4];
    size_t k;
    if (cp < 0x80) {
        u[0] = (char)cp;
        k = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3f));
        k = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        k = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        k = 4;
    }
    pg_buf_append(b, u, k);
}

/* Decodes the reference at s[*i] ('&') into out. Returns 0, or 1 for anything but a
 * lone '&', a table name with its ';', or a numeric reference with its ';' to a printable
 * character. */
int pg_html_fast_char_ref(const char *s, size_t n, size_t *i, pg_buf *out)
{
    size_t p = *i + 1;
    if (p == n || (!is_alnum((unsigned char)s[p]) && s[p] != '#')) {
        pg_buf_putc(out, '&'); /* not a reference: the '&' itself */
        *i = p;
        return 0;
    }
    if (s[p] == '#') {
        int hex = p + 1 < n && (s[p + 1] | 0x20) == 'x';
        size_t q = p + 1 + (size_t)hex, start = q;
        uint32_t cp = 0;
        while (q < n && q - start < 7 &&
               (hex ? (is_alnum((unsigned char)s[q]) && ((s[q] | 0x20) <= 'f' || s[q] <= '9'))
                    : (s[q] >= '0' && s[q] <= '9'))) {
            int d = s[q] <= '9' ? s[q] - '0' : (s[q] | 0x20) - 'a' + 10;
            cp = cp * (hex ? 16 : 10) + (uint32_t)d;
            q++;
        }
        if (q == start || q == n || s[q] != ';')
            return 1;
        if (!((cp >= 0x21 && cp < 0x7f) || (cp >= 0xa0 && cp <= 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0xfdd0 && cp <= 0xfdef) ||
            (cp & 0xfffe) == 0xfffe)
            return 1;
        put_utf8(out, cp);
        *i = q + 1;
        return 0;
    }
    size_t q = p;
    while (q < n && is_alnum((unsigned char)s[q]))
        q++;
    if (q == n || s[q] != ';')
        return 1;
    for (size_t k = 0; k < sizeof refs / sizeof refs[0]; k++) {
        if (strlen(refs[k].name) == q - p && memcmp(refs[k].name, s + p, q - p) == 0) {
            pg_buf_puts(out, refs[k].utf8);
            *i = q + 1;
            return 0;
        }
    }
    return 1;
}
