/*
 * fuzz_header_encode.c - libFuzzer target for the header encoders.
 *
 * Arbitrary bytes go to pg_ew_encode (text and phrase), pg_header_unstructured and
 * pg_param_append / pg_param_append_ew. Invariants, abort() on violation:
 *   - CR, LF or NUL in the input is refused (PIGEON_ERR_HEADER), invalid UTF-8 too
 *     (PIGEON_ERR_CHARSET), and nothing is written then;
 *   - the output is printable ASCII (and tab) with CRLF only as a fold (CRLF + WSP);
 *   - no line over 78 characters unless it is the first line holding one unbreakable
 *     token, and never over 998; no white-space-only line; no line ending in white space;
 *   - every encoded-word is at most 75 characters;
 *   - the value reads back exactly: pg_ew_decode for text and encoded phrases, unquoting
 *     for quoted-string phrases, RFC 2231 / quoted-string parsing for parameters. The one
 *     documented white space rule: a fold before the first token is the caller's white
 *     space, not part of the value.
 * The same bytes also go through quoted-printable and streamed base64 and must decode back.
 * The first input byte picks the start column (0..79); the rest is the value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/encode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
    if (!cond)
        abort();
}

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* Checks the folding invariants of output s (n bytes) that starts at column col. */
static void check_wire(const char *s, size_t n, size_t col)
{
    size_t line_start = 0, line_col = col;
    int first = 1;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '\r') {
            unsigned char c = (unsigned char)s[i];
            require((c >= 32 && c <= 126) || c == '\t');
            require(c != '\n');
            continue;
        }
        size_t len = line_col + (i - line_start);
        const char *line = s + line_start;
        size_t own = i - line_start;
        require(len <= 998);
        if (len > 78) { /* only a first line holding one unbreakable token */
            require(first);
            for (size_t k = 0; k < own; k++)
                require(!is_wsp(line[k]));
        }
        if (!first || own > 0) {
            require(own > 0 || (first && col > 0));
            int only_wsp = 1;
            for (size_t k = 0; k < own; k++)
                only_wsp &= is_wsp(line[k]);
            require(!only_wsp || (first && own == 0));
            require(own == 0 || !is_wsp(line[own - 1]) || i == n);
        }
        if (i == n)
            break;
        require(i + 2 < n && s[i + 1] == '\n' && is_wsp(s[i + 2])); /* a fold */
        require(own == 0 || !is_wsp(line[own - 1]));
        i++;
        line_start = i + 1;
        line_col = 0;
        first = 0;
    }
    for (const char *p = s; (p = memchr(p, '=', (size_t)(s + n - p))) != NULL; p++) {
        if (p + 1 < s + n && p[1] == '?' && (size_t)(s + n - p) >= 10 &&
            (memcmp(p, "=?UTF-8?B?", 10) == 0 || memcmp(p, "=?UTF-8?Q?", 10) == 0)) {
            const char *q = p + 10;
            while (q + 1 < s + n && !(q[0] == '?' && q[1] == '='))
                q++;
            require(q + 1 < s + n && q + 2 - p <= 75);
            p = q;
        }
    }
}

/* The value starts after the caller's white space of a fold before the first token. */
static size_t skip_lead_fold(const char *s, size_t n)
{
    return n >= 3 && s[0] == '\r' && s[1] == '\n' ? 3 : 0;
}

static void require_decodes_to(const char *s, size_t n, const char *want, size_t wn)
{
    pg_buf dec;
    pg_buf_init(&dec);
    require(pg_ew_decode(&dec, s, n) == PIGEON_OK);
    require(dec.len == wn && (wn == 0 || memcmp(dec.data, want, wn) == 0));
    pg_buf_cleanup(&dec);
}

/* RFC 5322 3.2.4: the content of a quoted-string, unfolded, quoted-pairs resolved. */
static void unquote(pg_buf *out, const char *s, size_t n)
{
    require(n >= 2 && s[0] == '"' && s[n - 1] == '"');
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] == '\r' || s[i] == '\n')
            continue;
        if (s[i] == '\\')
            i++;
        pg_buf_putc(out, s[i]);
    }
}

static void check_ew(const char *v, size_t n, size_t col, pg_ew_context ctx, pigeon_err want)
{
    pg_buf out;
    pg_buf_init(&out);
    size_t c = col;
    pigeon_err err = pg_ew_encode(&out, &c, v, n, ctx);
    require(err == want);
    if (err != PIGEON_OK) {
        require(out.len == 0);
        pg_buf_cleanup(&out);
        return;
    }
    const char *s = out.data ? out.data : "";
    check_wire(s, out.len, col);
    const char *last = memchr(s, '\n', out.len) ? strrchr(s, '\n') + 1 : NULL;
    require(c == (last ? (size_t)(s + out.len - last) : col + out.len));
    size_t skip = skip_lead_fold(s, out.len);
    if (ctx == PG_EW_PHRASE && out.len > skip && s[skip] == '"') {
        pg_buf plain;
        pg_buf_init(&plain);
        unquote(&plain, s + skip, out.len - skip);
        require(plain.len == n && (n == 0 || memcmp(plain.data, v, n) == 0));
        pg_buf_cleanup(&plain);
    } else {
        require_decodes_to(s + skip, out.len - skip, v, n);
    }
    pg_buf_cleanup(&out);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Reads back what pg_param_append wrote for "filename": a token, a quoted-string, or
 * RFC 2231 sections (filename*=, filename*0*=, ...), in order. */
static void read_param(pg_buf *val, const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    while (p < end) {
        require(*p == ';');
        p++;
        while (p < end && (*p == ' ' || *p == '\r' || *p == '\n'))
            p++;
        require((size_t)(end - p) > 8 && memcmp(p, "filename", 8) == 0);
        p += 8;
        const char *stop = p;
        if (*p == '=' && p + 1 < end && p[1] == '"') {
            for (stop = p + 2; stop < end && *stop != '"'; stop++)
                stop += *stop == '\\';
            require(stop < end);
            stop++;
            unquote(val, p + 1, (size_t)(stop - p - 1));
            p = stop;
            continue;
        }
        while (stop < end && *stop != ';')
            stop++;
        if (*p == '=') {
            pg_buf_append(val, p + 1, (size_t)(stop - p - 1));
        } else {
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            require(eq != NULL);
            const char *t = eq + 1;
            if ((size_t)(stop - t) >= 7 && memcmp(t, "UTF-8''", 7) == 0)
                t += 7;
            for (; t < stop; t++) {
                if (*t != '%') {
                    pg_buf_putc(val, *t);
                    continue;
                }
                require(t + 2 < stop && hexval(t[1]) >= 0 && hexval(t[2]) >= 0);
                pg_buf_putc(val, (char)(hexval(t[1]) << 4 | hexval(t[2])));
                t += 2;
            }
        }
        p = stop;
    }
}

static void check_param(const char *v, size_t col, int ew, pigeon_err want)
{
    pg_buf out;
    pg_buf_init(&out);
    size_t c = col;
    pigeon_err err =
        ew ? pg_param_append_ew(&out, &c, "filename", v) : pg_param_append(&out, &c, "filename", v);
    require(err == want);
    if (err != PIGEON_OK) {
        require(out.len == 0);
        pg_buf_cleanup(&out);
        return;
    }
    check_wire(out.data, out.len, col);
    const char *quote = memchr(out.data, '"', out.len);
    int ew_form =
        ew && quote != NULL && quote + 2 < out.data + out.len && quote[1] == '=' && quote[2] == '?';
    if (ew_form) { /* name="=?UTF-8?...?=": the words between the quotes decode back */
        require(out.data[out.len - 1] == '"');
        require_decodes_to(quote + 1, (size_t)(out.data + out.len - 1 - quote - 1), v, strlen(v));
    } else {
        pg_buf val;
        pg_buf_init(&val);
        read_param(&val, out.data, out.len);
        require(val.len == strlen(v) && memcmp(val.data ? val.data : "", v, val.len) == 0);
        pg_buf_cleanup(&val);
    }
    pg_buf_cleanup(&out);
}

static void check_unstructured(const char *v, pigeon_err want)
{
    pg_buf out;
    pg_buf_init(&out);
    require(pg_header_unstructured(&out, "Subject", v) == want);
    if (want == PIGEON_OK) {
        require(out.len >= 10 && memcmp(out.data, "Subject:", 8) == 0);
        require(memcmp(out.data + out.len - 2, "\r\n", 2) == 0);
        size_t vlen = strlen(v);
        if (vlen > 0) {
            check_wire(out.data + 9, out.len - 11, 9);
            require_decodes_to(out.data + 9, out.len - 11, v, vlen);
        }
    }
    pg_buf_cleanup(&out);
}

/* The body encoders ride along: quoted-printable lines within 76 that decode exactly, and
 * base64 streamed in chunks of the first byte's size, decoding exactly. */
static void check_body(const char *v, size_t n, size_t chunk)
{
    pg_buf enc, dec;
    pg_buf_init(&enc);
    pg_buf_init(&dec);
    require(pg_qp_encode(&enc, v, n) == PIGEON_OK);
    require(pg_qp_encoded_len(v, n) == enc.len);
    for (size_t i = 0, col = 0; i < enc.len; i++) {
        col = enc.data[i] == '\r' ? 0 : enc.data[i] == '\n' ? col : col + 1;
        require(col <= 76);
    }
    require(pg_qp_decode(&dec, enc.data ? enc.data : "", enc.len) == PIGEON_OK);
    require(dec.len == n && (n == 0 || memcmp(dec.data, v, n) == 0));
    pg_buf_reset(&enc);
    pg_buf_reset(&dec);
    pg_b64_stream st;
    pg_b64_stream_init(&st, 76);
    for (size_t off = 0; off < n; off += chunk)
        pg_b64_stream_update(&st, &enc, v + off, n - off < chunk ? n - off : chunk);
    require(pg_b64_stream_final(&st, &enc) == PIGEON_OK);
    require(enc.len == pg_b64_encoded_len(n, 76));
    require(pg_b64_decode(&dec, enc.data ? enc.data : "", enc.len) == PIGEON_OK);
    require(dec.len == n && (n == 0 || memcmp(dec.data, v, n) == 0));
    pg_buf_cleanup(&enc);
    pg_buf_cleanup(&dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096)
        return 0;
    size_t col = data[0] % 80;
    const char *v = (const char *)data + 1;
    size_t n = size - 1;
    pigeon_err want = pg_has_ctl_breaks(v, n) ? PIGEON_ERR_HEADER
                      : !pg_utf8_valid(v, n)  ? PIGEON_ERR_CHARSET
                                              : PIGEON_OK;
    check_ew(v, n, col, PG_EW_TEXT, want);
    check_ew(v, n, col, PG_EW_PHRASE, want);

    /* The C-string APIs see the value up to its first NUL. */
    char *str = malloc(n + 1);
    require(str != NULL);
    memcpy(str, v, n);
    str[n] = '\0';
    size_t sn = strlen(str);
    pigeon_err swant = pg_has_ctl_breaks(str, sn) ? PIGEON_ERR_HEADER
                       : !pg_utf8_valid(str, sn)  ? PIGEON_ERR_CHARSET
                                                  : PIGEON_OK;
    check_unstructured(str, swant);
    check_param(str, 31, 0, swant);
    check_param(str, 31, 1, swant);
    free(str);

    check_body(v, n, data[0] + 1u);

    /* The decoder takes anything without crashing. */
    pg_buf dec;
    pg_buf_init(&dec);
    (void)pg_ew_decode(&dec, v, n);
    pg_buf_cleanup(&dec);
    return 0;
}
