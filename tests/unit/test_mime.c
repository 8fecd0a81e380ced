/*
 * test_mime.c - the MIME composer, read back as a recipient would: structure for every
 * combination of bodies and parts (RFC 2046 5.1, RFC 2387), header order, transfer
 * encodings and line limits (RFC 2045 6, RFC 5322 2.1.1), boundaries absent from the
 * content (RFC 2046 5.1.1), attachment names (RFC 2231 + RFC 2047), charsets, the pull
 * stream (exact size, any read size), golden files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mime/mime.h"
#include "mime_testutil.h"
#include "pigeon/message.h"

#define FIXED_DATE ((time_t)1795681461) /* Thu, 26 Nov 2026 08:24:21 +0000 */

static const char zh_text[] = "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c"
                              "\xef\xbc\x81\n";                    /* 你好，世界！ */
static const char zh_name[] = "\xe6\x8a\xa5\xe5\x91\x8a 2026.pdf"; /* 报告 2026.pdf */

static pigeon_message *base_message(void)
{
    pigeon_message *msg = pigeon_message_new();
    assert_int_equal(pigeon_message_set_from(msg, "Alice <alice@example.com>"), PIGEON_OK);
    assert_int_equal(pigeon_message_add_to(msg, "bob@example.org"), PIGEON_OK);
    assert_int_equal(pigeon_message_set_subject(msg, "Test"), PIGEON_OK);
    assert_int_equal(pigeon_message_set_date(msg, FIXED_DATE), PIGEON_OK);
    return msg;
}

/* Writes msg and checks the line rules every output must meet. */
static char *write_checked(pigeon_message *msg, const pigeon_write_opts *o, size_t *len)
{
    char *out = NULL;
    pigeon_err err = pigeon_message_write_buffer(msg, o, &out, len);
    if (err != PIGEON_OK)
        fail_msg("write: %s", pigeon_message_error(msg));
    assert_non_null(out);
    tp_check_lines(out, *len, 998);
    return out;
}

static char *field(const tpart *t, const char *name)
{
    return tp_field(t->hdr, t->hdr_len, name, 0);
}

static void assert_field(const tpart *t, const char *name, const char *want)
{
    char *v = field(t, name);
    if (v == NULL || strcmp(v, want) != 0)
        fail_msg("%s: got \"%s\", want \"%s\"", name, v ? v : "(none)", want);
    free(v);
}

static void assert_decoded(const tpart *t, const char *want, size_t want_len)
{
    size_t len;
    char *body = tp_decode(t, &len);
    if (len != want_len || memcmp(body, want, len) != 0)
        fail_msg("decoded body differs (%zu vs %zu bytes): %.60s", len, want_len, body);
    free(body);
}

/* text with every line ending made CRLF, as the composer must send it (RFC 2046 4.1.1). */
static char *crlf(const char *text, size_t n, size_t *out_len)
{
    pg_buf b;
    pg_buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\n')
            pg_buf_append(&b, "\r\n", 2);
        else
            pg_buf_putc(&b, text[i]);
    }
    pg_buf_putc(&b, '\0');
    b.len--;
    return pg_buf_detach(&b, out_len);
}

/* Every line ending (CRLF, CR, LF) made CRLF. */
static char *crlf_all(const char *text, size_t n, size_t *out_len)
{
    pg_buf b;
    pg_buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\r' || text[i] == '\n') {
            pg_buf_append(&b, "\r\n", 2);
            if (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n')
                i++;
        } else {
            pg_buf_putc(&b, text[i]);
        }
    }
    pg_buf_putc(&b, '\0');
    b.len--;
    return pg_buf_detach(&b, out_len);
}

/* ---- structure ---- */

static void test_text_only(void **state)
{
    pigeon_message *msg = base_message();
    pigeon_message_set_text(msg, "Hello\nWorld\r\nbye\r", (size_t)-1);
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    tpart *t = tp_parse(out, len);
    assert_string_equal(t->ctype, "text/plain");
    assert_field(t, "Content-Type", "text/plain; charset=utf-8");
    assert_field(t, "Content-Transfer-Encoding", "7bit");
    assert_field(t, "MIME-Version", "1.0");
    assert_decoded(t, "Hello\r\nWorld\r\nbye\r\n", 19); /* every ending made CRLF */
    tp_free(t);
    free(out);
    pigeon_message_free(msg);
}

/* A top-level text that does not end in a line break still decodes exactly. */
static void test_text_without_final_newline(void **state)
{
    pigeon_message *msg = base_message();
    pigeon_message_set_text(msg, "no newline at the end", (size_t)-1);
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    tpart *t = tp_parse(out, len);
    assert_field(t, "Content-Transfer-Encoding", "quoted-printable");
    assert_decoded(t, "no newline at the end", 21);
    tp_free(t);
    free(out);
    pigeon_message_free(msg);
}

static void test_html_only(void **state)
{
    pigeon_message *msg = base_message();
    pigeon_message_set_html(msg, "<p>Hi</p>\n", (size_t)-1);
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    tpart *t = tp_parse(out, len);
    assert_field(t, "Content-Type", "text/html; charset=utf-8");
    assert_decoded(t, "<p>Hi</p>\r\n", 11);
    tp_free(t);
    free(out);
    pigeon_message_free(msg);
}

static void test_no_body(void **state)
{
    pigeon_message *msg = base_message();
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    tpart *t = tp_parse(out, len);
    assert_string_equal(t->ctype, "text/plain");
    assert_int_equal(t->body_len, 0);
    tp_free(t);
    free(out);
    /* With an attachment: mixed of an empty text/plain and the attachment. */
    pigeon_part_opts o = {.filename = "a.bin"};
    pigeon_message_attach_buffer(msg, "\x01\x02", 2, &o);
    out = write_checked(msg, NULL, &len);
    t = tp_parse(out, len);
    assert_string_equal(t->ctype, "multipart/mixed");
    assert_int_equal(t->nkids, 2);
    assert_string_equal(t->kids[0]->ctype, "text/plain");
    assert_decoded(t->kids[0], "", 0);
    assert_string_equal(t->kids[1]->ctype, "application/octet-stream");
    assert_decoded(t->kids[1], "\x01\x02", 2);
    tp_free(t);
    free(out);
    pigeon_message_free(msg);
}

static void test_alternative(void **state)
{
    pigeon_message *msg = base_message();
    pigeon_message_set_text(msg, "plain\n", (size_t)-1);
    pigeon_message_set_html(msg, "<b>rich</b>", (size_t)-1);
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    tpart *t = tp_parse(out, len);
    assert_string_equal(t->ctype, "multipart/alternative");
    assert_int_equal(t->nkids, 2);
    assert_string_equal(t->kids[0]->ctype, "text/plain"); /* plainest first */
    assert_string_equal(t->kids[1]->ctype, "text/html");
    assert_decoded(t->kids[0], "plain\r\n", 7);
    /* Inside a multipart the CRLF before the boundary is the boundary's: 7bit is exact. */
    assert_decoded(t->kids[1], "<b>rich</b>", 11);
    assert_field(t->kids[1], "Content-Transfer-Encoding", "7bit");
    tp_free(t);
    free(out);
    pigeon_message_free(msg);
}

static void test_related(void **state)
{
    pigeon_message *msg = base_message();
    pigeon_message_set_html(msg, "<img src=\"cid:logo@example.com\">", (size_t)-1);
    pigeon_part_opts o = {.filename = "logo.png", .content_id = "<logo@example.com>"};
    assert_int_equal(pigeon_message_attach_buffer(msg, "\x89PNG\r\n\x1a\n", 8, &o), PIGEON_OK);
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    tpart *t = tp_parse(out, len);
    assert_string_equal(t->ctype, "multipart/related");
    char *ct = field(t, "Content-Type");
    char type[64];
    tp_param(ct, "type", type, sizeof type);
    assert_string_equal(type, "text/html"); /* RFC 2387 3.1 */
    free(ct);
    assert_int_equal(t->nkids, 2);
    assert_string_equal(t->kids[0]->ctype, "text/html");
    assert_string_equal(t->kids[1]->ctype, "image/png");
    assert_field(t->kids[1], "Content-ID", "<logo@example.com>");
    assert_field(t->kids[1], "Content-Disposition", "inline; filename=logo.png");
    assert_field(t->kids[1], "Content-Transfer-Encoding", "base64");
    assert_decoded(t->kids[1], "\x89PNG\r\n\x1a\n", 8);
    tp_free(t);
    free(out);
    pigeon_message_free(msg);
}

/* mixed[ related[ alternative[plain, html], inline ], attachment, attachment ] */
static void test_nested_all(void **state)
{
    pigeon_message *msg = base_message();
    pigeon_message_set_text(msg, "see the logo", (size_t)-1);
    pigeon_message_set_html(msg, "<img src=\"cid:logo\">", (size_t)-1);
    pigeon_part_opts att = {.filename = "data.csv"};
    pigeon_message_attach_buffer(msg, "a,b\r\n1,2\r\n", 10, &att);
    pigeon_part_opts in = {.content_id = "logo", .content_type = "image/gif"};
    pigeon_message_attach_buffer(msg, "GIF89a", 6, &in);
    pigeon_part_opts att2 = {.filename = zh_name};
    pigeon_message_attach_buffer(msg, "%PDF-1.4", 8, &att2);
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    tpart *t = tp_parse(out, len);
    assert_string_equal(t->ctype, "multipart/mixed");
    assert_int_equal(t->nkids, 3);
    tpart *rel = t->kids[0];
    assert_string_equal(rel->ctype, "multipart/related");
    assert_int_equal(rel->nkids, 2);
    assert_string_equal(rel->kids[0]->ctype, "multipart/alternative");
    assert_string_equal(rel->kids[0]->kids[0]->ctype, "text/plain");
    assert_string_equal(rel->kids[0]->kids[1]->ctype, "text/html");
    assert_decoded(rel->kids[0]->kids[0], "see the logo", 12);
    assert_string_equal(rel->kids[1]->ctype, "image/gif");
    assert_field(rel->kids[1], "Content-ID", "<logo>");
    assert_field(rel->kids[1], "Content-Disposition", "inline");
    char *ct = field(rel, "Content-Type");
    char type[64];
    tp_param(ct, "type", type, sizeof type);
    assert_string_equal(type, "multipart/alternative");
    free(ct);
    /* Attachments in call order; the text/csv one is already canonical: 7bit, exact. */
    assert_string_equal(t->kids[1]->ctype, "text/csv");
    assert_field(t->kids[1], "Content-Transfer-Encoding", "7bit");
    assert_decoded(t->kids[1], "a,b\r\n1,2\r\n", 10);
    assert_string_equal(t->kids[2]->ctype, "application/pdf");
    assert_decoded(t->kids[2], "%PDF-1.4", 8);
    /* All boundaries differ. */
    assert_string_not_equal(t->boundary, rel->boundary);
    assert_string_not_equal(rel->boundary, rel->kids[0]->boundary);
    assert_string_not_equal(t->boundary, rel->kids[0]->boundary);
    tp_free(t);
    free(out);
    pigeon_message_free(msg);
}

/* ---- header fields ---- */

static void test_header_order(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    pigeon_message_add_header(msg, "X-Custom", "1");
    pigeon_message_set_references(msg, "<r@x>");
    pigeon_message_set_in_reply_to(msg, "<r@x>");
    pigeon_message_set_message_id(msg, "<m@x>");
    pigeon_message_set_subject(msg, "S");
    pigeon_message_add_bcc(msg, "secret@example.org");
    pigeon_message_add_cc(msg, "c@example.org");
    pigeon_message_add_to(msg, "t@example.org");
    pigeon_message_add_reply_to(msg, "r@example.org");
    pigeon_message_set_sender(msg, "s@example.org");
    pigeon_message_set_from(msg, "f@example.org");
    pigeon_message_set_date(msg, FIXED_DATE);
    pigeon_message_set_text(msg, "x\n", (size_t)-1);
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    static const char *const order[] = {
        "Date",         "From",
        "Sender",       "Reply-To",
        "To",           "Cc",
        "Subject",      "Message-ID",
        "In-Reply-To",  "References",
        "X-Custom",     "MIME-Version",
        "Content-Type", "Content-Transfer-Encoding",
    };
    const char *p = out;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        size_t n = strlen(order[i]);
        if (strncmp(p, order[i], n) != 0 || p[n] != ':')
            fail_msg("field %zu: want %s, got %.20s", i, order[i], p);
        p = strstr(p, "\r\n") + 2;
    }
    assert_true(strncmp(p, "\r\n", 2) == 0); /* then the body */
    assert_null(strstr(out, "secret"));
    assert_null(strstr(out, "Bcc"));
    free(out);
    pigeon_message_free(msg);
}

/* Long and non-ASCII header values are encoded and folded: no header line over 78. */
static void test_header_folding(void **state)
{
    pigeon_message *msg = base_message();
    pg_buf subj, to;
    pg_buf_init(&subj);
    pg_buf_init(&to);
    for (int i = 0; i < 30; i++)
        pg_buf_printf(&subj, "word%d %s", i, i % 3 == 0 ? "\xe4\xb8\xad\xe6\x96\x87 " : "");
    for (int i = 0; i < 20; i++)
        pg_buf_printf(&to, "%s\"Person %d\" <person%d@example.com>", i ? ", " : "", i, i);
    assert_int_equal(pigeon_message_set_subject(msg, subj.data), PIGEON_OK);
    assert_int_equal(pigeon_message_add_to(msg, to.data), PIGEON_OK);
    assert_int_equal(pigeon_message_add_header(msg, "X-Long", subj.data), PIGEON_OK);
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    tp_check_lines(out, len, 78);
    tpart *t = tp_parse(out, len);
    char *v = field(t, "Subject");
    pg_buf dec;
    pg_buf_init(&dec);
    assert_int_equal(pg_ew_decode(&dec, v, strlen(v)), PIGEON_OK);
    assert_string_equal(dec.data, subj.data); /* a decoder reads back the same text */
    for (const char *c = v; *c; c++)
        assert_true((unsigned char)*c < 0x80);
    free(v);
    pg_buf_cleanup(&dec);
    tp_free(t);
    free(out);
    pg_buf_cleanup(&subj);
    pg_buf_cleanup(&to);
    pigeon_message_free(msg);
}

/* ---- transfer encodings ---- */

/* Every line of a QP or base64 body is at most 76 characters (RFC 2045 6.7, 6.8). */
static void assert_encoded_lines(const tpart *t)
{
    if (t->nkids > 0) {
        for (int i = 0; i < t->nkids; i++)
            assert_encoded_lines(t->kids[i]);
        return;
    }
    char *cte = field(t, "Content-Transfer-Encoding");
    if (cte != NULL && (strcmp(cte, "base64") == 0 || strcmp(cte, "quoted-printable") == 0)) {
        size_t line = 0;
        for (size_t i = 0; i < t->body_len; i++) {
            if (t->body[i] == '\r') {
                line = 0;
                i++;
                continue;
            }
            if (++line > 76)
                fail_msg("%s line over 76", cte);
        }
    }
    free(cte);
}

static void test_encodings_chosen(void **state)
{
    pg_buf longline;
    pg_buf_init(&longline);
    for (int i = 0; i < 200; i++)
        pg_buf_puts(&longline, "abcd ");
    pg_buf_puts(&longline, "\n");
    static const struct {
        const char *text;
        const char *cte;
    } cases[] = {
        {"ascii\nlines\n", "7bit"},
        {NULL, "quoted-printable"},                    /* ASCII, a 1000-char line */
        {"caf\xc3\xa9 au lait\n", "quoted-printable"}, /* mostly ASCII: QP is shorter */
        {"\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xbd\xa0\xe5\xa5\xbd\n", "base64"}, /* CJK: base64 */
        {"nul\0inside\n", "quoted-printable"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *text = cases[i].text ? cases[i].text : longline.data;
        size_t n = i == 4 ? 11 : strlen(text);
        pigeon_message *msg = base_message();
        assert_int_equal(pigeon_message_set_text(msg, text, n), PIGEON_OK);
        size_t len;
        char *out = write_checked(msg, NULL, &len);
        tpart *t = tp_parse(out, len);
        assert_field(t, "Content-Transfer-Encoding", cases[i].cte);
        assert_encoded_lines(t);
        size_t wn;
        char *want = crlf(text, n, &wn);
        assert_decoded(t, want, wn);
        free(want);
        tp_free(t);
        free(out);
        pigeon_message_free(msg);
    }
    pg_buf_cleanup(&longline);
}

/* Replaces every "\n" of lf (a text with LF line ends) with eol. */
static char *with_eol(const char *lf, const char *eol)
{
    pg_buf b;
    pg_buf_init(&b);
    for (const char *p = lf; *p != '\0'; p++) {
        if (*p == '\n')
            pg_buf_puts(&b, eol);
        else
            pg_buf_putc(&b, *p);
    }
    return pg_buf_detach(&b, NULL);
}

/* One write of a text (and, when html is set, an HTML) body with a fixed Message-ID and
 * boundaries. */
static char *write_fixed(const char *text, const char *html, const pigeon_write_opts *o,
                         size_t *len)
{
    pigeon_message *msg = base_message();
    assert_int_equal(pigeon_message_set_message_id(msg, "<fixed@example.com>"), PIGEON_OK);
    assert_int_equal(pigeon_message_set_text(msg, text, (size_t)-1), PIGEON_OK);
    if (html != NULL)
        assert_int_equal(pigeon_message_set_html(msg, html, (size_t)-1), PIGEON_OK);
    pg_mime_test_seed(11);
    char *out = write_checked(msg, o, len);
    pg_mime_test_seed(0);
    pigeon_message_free(msg);
    return out;
}

/* RFC 2046 4.1.1: text goes with CRLF line breaks whatever the caller used; LF, CR, CRLF
 * or a mix must give the same message, byte for byte, in each transfer encoding. */
static void test_line_endings_same_bytes(void **state)
{
    pg_buf longline;
    pg_buf_init(&longline);
    for (int i = 0; i < 40; i++)
        pg_buf_puts(&longline, "word ");
    pg_buf_puts(&longline, "\nshort line \nend");
    static const struct {
        const char *text; /* LF line ends */
        int allow_8bit;   /* write with 8BITMIME */
        const char *cte;  /* the encoding expected */
    } cases[] = {
        {"ascii\nlines\n", 0, "7bit"},
        {NULL, 0, "quoted-printable"},                          /* 200-char line */
        {"caf\xc3\xa9 \n\tau lait\n\n", 0, "quoted-printable"}, /* white space before breaks */
        {"\xe4\xbd\xa0\xe5\xa5\xbd\n\xe4\xb8\x96\xe7\x95\x8c\n", 0, "base64"},
        {"\xe4\xbd\xa0\xe5\xa5\xbd\n\xe4\xb8\x96\xe7\x95\x8c\n", 1, "8bit"},
    };
    static const char *const eols[] = {"\r\n", "\r", "\n"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *lf = cases[i].text ? cases[i].text : longline.data;
        pigeon_write_opts o = {.allow_8bit = cases[i].allow_8bit};
        size_t want_len;
        char *want = write_fixed(lf, lf, &o, &want_len);
        tpart *t = tp_parse(want, want_len);
        assert_int_equal(t->nkids, 2);
        assert_field(t->kids[0], "Content-Transfer-Encoding", cases[i].cte);
        size_t crlf_len;
        char *crlf_text = crlf(lf, strlen(lf), &crlf_len);
        assert_decoded(t->kids[0], crlf_text, crlf_len);
        free(crlf_text);
        tp_free(t);
        for (size_t e = 0; e <= sizeof eols / sizeof eols[0]; e++) {
            /* The last round mixes: CR in the text, CRLF in the HTML. */
            char *text = with_eol(lf, e < 3 ? eols[e] : "\r");
            char *html = with_eol(lf, e < 3 ? eols[e] : "\r\n");
            size_t len;
            char *out = write_fixed(text, html, &o, &len);
            if (len != want_len || memcmp(out, want, len) != 0)
                fail_msg("case %zu, line ends %zu: output differs", i, e);
            free(out);
            free(text);
            free(html);
        }
        free(want);
    }
    pg_buf_cleanup(&longline);
}

/* RFC 2045 6: of quoted-printable and base64, the shorter one is chosen (QP on a tie):
 * checked against the two lengths computed apart, across mixes of ASCII and non-ASCII
 * where the two come close. */
static void test_qp_or_base64_shorter(void **state)
{
    int seen_qp = 0, seen_b64 = 0;
    for (int high = 1; high <= 40; high++) {
        pg_buf text;
        pg_buf_init(&text);
        for (int line = 0; line < 12; line++) {
            for (int k = 0; k < 60; k++)
                pg_buf_puts(&text, (k * 41 + line * 7) % 60 < high ? "\xc3\xa9" : "e");
            pg_buf_puts(&text, line % 3 == 0 ? " \n" : "\n");
        }
        size_t norm_len;
        char *norm = crlf(text.data, text.len, &norm_len);
        const char *want = pg_qp_encoded_len(norm, norm_len) <= pg_b64_encoded_len(norm_len, 76)
                               ? "quoted-printable"
                               : "base64";
        seen_qp |= want[0] == 'q';
        seen_b64 |= want[0] == 'b';
        pigeon_message *msg = base_message();
        assert_int_equal(pigeon_message_set_text(msg, text.data, text.len), PIGEON_OK);
        size_t len;
        char *out = write_checked(msg, NULL, &len);
        tpart *t = tp_parse(out, len);
        assert_field(t, "Content-Transfer-Encoding", want);
        assert_encoded_lines(t);
        assert_decoded(t, norm, norm_len);
        tp_free(t);
        free(out);
        free(norm);
        pigeon_message_free(msg);
        pg_buf_cleanup(&text);
    }
    assert_true(seen_qp && seen_b64);
}

/* 8bit only when the caller says the server takes it (RFC 6152); never otherwise. */
static void test_8bit_only_when_allowed(void **state)
{
    pigeon_message *msg = base_message();
    pigeon_message_set_text(msg, zh_text, (size_t)-1);
    size_t len;
    pigeon_message_stream *s;
    char *out = write_checked(msg, NULL, &len);
    for (size_t i = 0; i < len; i++)
        assert_true((unsigned char)out[i] < 0x80);
    assert_int_equal(pigeon_message_stream_open(msg, NULL, &s), PIGEON_OK);
    assert_false(pigeon_message_stream_is_8bit(s));
    pigeon_message_stream_free(s);
    free(out);

    pigeon_write_opts o = {.allow_8bit = 1};
    out = write_checked(msg, &o, &len);
    tpart *t = tp_parse(out, len);
    assert_field(t, "Content-Transfer-Encoding", "8bit");
    assert_decoded(
        t, "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c\xef\xbc\x81\r\n", 20);
    assert_int_equal(pigeon_message_stream_open(msg, &o, &s), PIGEON_OK);
    assert_true(pigeon_message_stream_is_8bit(s));
    pigeon_message_stream_free(s);
    tp_free(t);
    free(out);
    pigeon_message_free(msg);

    /* ASCII text stays 7bit even when 8bit is allowed. */
    msg = base_message();
    pigeon_message_set_text(msg, "plain\n", (size_t)-1);
    assert_int_equal(pigeon_message_stream_open(msg, &o, &s), PIGEON_OK);
    assert_false(pigeon_message_stream_is_8bit(s));
    pigeon_message_stream_free(s);
    pigeon_message_free(msg);
}

static void test_gb18030(void **state)
{
    pigeon_message *msg = base_message();
    pigeon_message_set_text(msg, "\xe4\xb8\xad\xe6\x96\x87 ok\n", (size_t)-1); /* 中文 ok */
    pigeon_message_set_html(msg, "<p>\xe4\xb8\xad\xe6\x96\x87</p>", (size_t)-1);
    assert_int_equal(pigeon_message_set_charset(msg, "GB18030"), PIGEON_OK);
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    tpart *t = tp_parse(out, len);
    assert_field(t->kids[0], "Content-Type", "text/plain; charset=gb18030");
    assert_decoded(t->kids[0], "\xd6\xd0\xce\xc4 ok\r\n", 9);
    assert_field(t->kids[1], "Content-Type", "text/html; charset=gb18030");
    assert_decoded(t->kids[1], "<p>\xd6\xd0\xce\xc4</p>", 11);
    tp_free(t);
    free(out);
    /* GBK has no emoji: refused, not replaced. */
    pigeon_message_set_charset(msg, "gbk");
    pigeon_message_set_text(msg, "\xf0\x9f\x98\x80\n", (size_t)-1);
    out = NULL;
    assert_int_equal(pigeon_message_write_buffer(msg, NULL, &out, &len), PIGEON_ERR_CHARSET);
    assert_non_null(strstr(pigeon_message_error(msg), "gbk"));
    /* GB18030 covers all of Unicode. */
    pigeon_message_set_charset(msg, "gb18030");
    out = write_checked(msg, NULL, &len);
    t = tp_parse(out, len);
    assert_decoded(t->kids[0], "\x94\x39\xfc\x36\r\n", 6); /* U+1F600 in GB18030 */
    tp_free(t);
    free(out);
    pigeon_message_free(msg);
}

/* ---- attachments ---- */

static void test_attachment_names(void **state)
{
    pigeon_message *msg = base_message();
    pigeon_message_set_text(msg, "see attached\n", (size_t)-1);
    pigeon_part_opts o = {.filename = zh_name};
    assert_int_equal(pigeon_message_attach_buffer(msg, "%PDF", 4, &o), PIGEON_OK);
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    tp_check_lines(out, len, 78);
    tpart *t = tp_parse(out, len);
    tpart *a = t->kids[1];
    char *ct = field(a, "Content-Type");
    char name[200];
    tp_param(ct, "name", name, sizeof name);
    /* name="=?UTF-8?B?...?=" for QQ Mail and Outlook: decodes to the name. */
    assert_true(strncmp(name, "=?UTF-8?", 8) == 0);
    pg_buf dec;
    pg_buf_init(&dec);
    assert_int_equal(pg_ew_decode(&dec, name, strlen(name)), PIGEON_OK);
    assert_string_equal(dec.data, zh_name);
    pg_buf_cleanup(&dec);
    free(ct);
    /* filename*=UTF-8''... (RFC 2231) percent-decodes to the name. */
    char *cd = field(a, "Content-Disposition");
    assert_true(strncmp(cd, "attachment;", 11) == 0);
    const char *ext = strstr(cd, "filename*");
    assert_non_null(ext);
    const char *q = strstr(ext, "''");
    assert_non_null(q);
    assert_true(strncasecmp(strchr(ext, '=') + 1, "UTF-8''", 7) == 0);
    char got[200];
    size_t g = 0;
    for (const char *c = q + 2; *c && *c != ';' && *c != ' '; c++) {
        unsigned v;
        if (*c == '%' && sscanf(c + 1, "%2x", &v) == 1) {
            got[g++] = (char)v;
            c += 2;
        } else {
            got[g++] = *c;
        }
    }
    got[g] = '\0';
    assert_string_equal(got, zh_name);
    free(cd);
    tp_free(t);
    free(out);
    pigeon_message_free(msg);
}

/* Writes n bytes of a deterministic pattern to a temp file, returns its path. */
static char *temp_file(size_t n, const char *suffix)
{
    char *path = malloc(64);
    snprintf(path, 64, "/tmp/pigeon_mime_XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    assert_true(fd >= 0);
    unsigned char block[4096];
    uint32_t x = 12345;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof block ? n - done : sizeof block;
        for (size_t i = 0; i < k; i++) {
            x = x * 1103515245u + 12345u;
            block[i] = (unsigned char)(x >> 16);
        }
        assert_int_equal(write(fd, block, k), (ssize_t)k);
        done += k;
    }
    close(fd);
    return path;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    pg_buf b;
    char tmp[65536];
    size_t n;
    pg_buf_init(&b);
    assert_non_null(f);
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        pg_buf_append(&b, tmp, n);
    fclose(f);
    return pg_buf_detach(&b, len);
}

/* Small and big files, base name as the default filename, type from the extension. */
static void test_file_attachments(void **state)
{
    char *small = temp_file(1000, ".png");
    char *big = temp_file(3 * 1024 * 1024 + 7, ".zip");
    pigeon_message *msg = base_message();
    pigeon_message_set_text(msg, "files\n", (size_t)-1);
    assert_int_equal(pigeon_message_attach_file(msg, small, NULL), PIGEON_OK);
    assert_int_equal(pigeon_message_attach_file(msg, big, NULL), PIGEON_OK);
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    tpart *t = tp_parse(out, len);
    assert_int_equal(t->nkids, 3);
    const char *paths[2] = {small, big};
    const char *types[2] = {"image/png", "application/zip"};
    for (int i = 0; i < 2; i++) {
        tpart *a = t->kids[i + 1];
        assert_string_equal(a->ctype, types[i]);
        char *ct = field(a, "Content-Type");
        char name[100];
        tp_param(ct, "name", name, sizeof name);
        assert_string_equal(name, strrchr(paths[i], '/') + 1);
        free(ct);
        assert_field(a, "Content-Transfer-Encoding", "base64");
        size_t flen;
        char *file = slurp(paths[i], &flen);
        assert_decoded(a, file, flen);
        free(file);
    }
    assert_encoded_lines(t);
    tp_free(t);
    free(out);
    pigeon_message_free(msg);
    unlink(small);
    unlink(big);
    free(small);
    free(big);
}

/* Text attachments keep their exact bytes: 7bit only when already canonical. */
static void test_text_attachments_exact(void **state)
{
    static const struct {
        const char *data;
        const char *cte;
    } cases[] = {
        {"line one\r\nline two\r\n", "7bit"},
        {"unix\nline endings\n", "quoted-printable"},
        {"no final newline", "7bit"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pigeon_message *msg = base_message();
        pigeon_part_opts o = {.filename = "notes.txt"};
        pigeon_message_attach_buffer(msg, cases[i].data, strlen(cases[i].data), &o);
        size_t len;
        char *out = write_checked(msg, NULL, &len);
        tpart *t = tp_parse(out, len);
        assert_field(t->kids[1], "Content-Transfer-Encoding", cases[i].cte);
        assert_decoded(t->kids[1], cases[i].data, strlen(cases[i].data));
        tp_free(t);
        free(out);
        pigeon_message_free(msg);
    }
}

/* message/rfc822 may not be base64 (RFC 2046 5.2.1). */
static void test_eml_attachment(void **state)
{
    const char eml[] = "From: x@example.com\nSubject: inner\n\nbody\n";
    pigeon_message *msg = base_message();
    pigeon_part_opts o = {.filename = "fwd.eml"};
    pigeon_message_attach_buffer(msg, eml, strlen(eml), &o);
    size_t len;
    char *out = write_checked(msg, NULL, &len);
    tpart *t = tp_parse(out, len);
    assert_string_equal(t->kids[1]->ctype, "message/rfc822");
    assert_field(t->kids[1], "Content-Transfer-Encoding", "7bit");
    assert_decoded(t->kids[1], "From: x@example.com\r\nSubject: inner\r\n\r\nbody\r\n", 45);
    tp_free(t);
    free(out);
    pigeon_message_free(msg);
}

typedef struct mem_reader {
    const char *data; /* bytes to give out */
    size_t len;       /* their number */
    size_t pos;       /* given so far */
    size_t step;      /* at most this many per call */
    int fail_at;      /* fail once pos reaches this (-1: never) */
} mem_reader;

static int mem_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    mem_reader *r = ctx;
    if (r->fail_at >= 0 && r->pos >= (size_t)r->fail_at)
        return -1;
    size_t k = r->len - r->pos;
    k = k < cap ? k : cap;
    k = k < r->step ? k : r->step;
    memcpy(buf, r->data + r->pos, k);
    r->pos += k;
    *n = k;
    return 0;
}

static void test_stream_attachments(void **state)
{
    char *data = malloc(200000);
    for (size_t i = 0; i < 200000; i++)
        data[i] = (char)(i * 7 + i / 256);
    /* Known size; the callback gives odd-sized pieces. */
    mem_reader r = {data, 200000, 0, 777, -1};
    pigeon_message *msg = base_message();
    pigeon_part_opts o = {.filename = "blob.bin"};
    assert_int_equal(pigeon_message_attach_stream(msg, mem_read, &r, 200000, &o), PIGEON_OK);
    pigeon_message_stream *s;
    assert_int_equal(pigeon_message_stream_open(msg, NULL, &s), PIGEON_OK);
    int64_t size = pigeon_message_stream_size(s);
    pg_buf all;
    pg_buf_init(&all);
    char buf[5000];
    size_t n;
    do {
        assert_int_equal(pigeon_message_stream_read(s, buf, sizeof buf, &n), PIGEON_OK);
        pg_buf_append(&all, buf, n);
    } while (n > 0);
    pigeon_message_stream_free(s);
    assert_int_equal((int64_t)all.len, size);
    tpart *t = tp_parse(all.data, all.len);
    assert_decoded(t->kids[1], data, 200000);
    tp_free(t);
    /* Read once: a second write is refused. */
    char *out = NULL;
    size_t len;
    assert_int_equal(pigeon_message_write_buffer(msg, NULL, &out, &len), PIGEON_ERR_STATE);
    pigeon_message_free(msg);
    pg_buf_cleanup(&all);

    /* Unknown size: size -1, same bytes. */
    mem_reader r2 = {data, 200000, 0, 65536, -1};
    msg = base_message();
    pigeon_message_attach_stream(msg, mem_read, &r2, -1, &o);
    assert_int_equal(pigeon_message_stream_open(msg, NULL, &s), PIGEON_OK);
    assert_int_equal(pigeon_message_stream_size(s), -1);
    pigeon_message_stream_free(s);
    pigeon_message_free(msg);

    /* Shorter than declared, longer than declared, a failing callback: IO errors. */
    const struct {
        size_t len;
        int64_t declared;
        int fail_at;
    } bad[] = {{1000, 2000, -1}, {3000, 2000, -1}, {200000, 200000, 70000}};
    for (size_t i = 0; i < 3; i++) {
        mem_reader rb = {data, bad[i].len, 0, 4096, bad[i].fail_at};
        msg = base_message();
        pigeon_message_attach_stream(msg, mem_read, &rb, bad[i].declared, &o);
        out = NULL;
        assert_int_equal(pigeon_message_write_buffer(msg, NULL, &out, &len), PIGEON_ERR_IO);
        assert_null(out);
        assert_true(pigeon_message_error(msg)[0] != '\0');
        pigeon_message_free(msg);
    }
    free(data);
}

/* Property: for random texts (line endings of every kind, long lines, NUL, UTF-8) in
 * random structures, every body decodes to the CRLF-normalized input and every output
 * meets the line rules. */
static void random_text(pg_buf *b, uint32_t *seed)
{
    static const char *const pieces[] = {
        "a",
        "word ",
        "\n",
        "\r\n",
        "\r",
        "\xe4\xb8\xad",
        "=",
        ".",
        "From ",
        " \n",
        "\t",
        "--=_pigeon_",
        "\xf0\x9f\x98\x80",
        "0123456789012345678901234567890123456789",
    };
    size_t n = 0;
    *seed = *seed * 1103515245u + 12345u;
    n = (*seed >> 16) % 200;
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        pg_buf_puts(b, pieces[(*seed >> 16) % (sizeof pieces / sizeof pieces[0])]);
    }
}

static void test_random_roundtrip(void **state)
{
    uint32_t seed = 99;
    for (int iter = 0; iter < 300; iter++) {
        pg_buf text, html;
        pg_buf_init(&text);
        pg_buf_init(&html);
        random_text(&text, &seed);
        random_text(&html, &seed);
        pigeon_message *msg = base_message();
        int with_html = iter % 3 != 0, with_att = iter % 4 == 1;
        pigeon_message_set_text(msg, text.data ? text.data : "", text.len);
        if (with_html)
            pigeon_message_set_html(msg, html.data ? html.data : "", html.len);
        if (with_att) {
            pigeon_part_opts o = {.filename = "r.txt"};
            pigeon_message_attach_buffer(msg, text.data, text.len, &o);
        }
        pigeon_write_opts wo = {.allow_8bit = iter % 2};
        size_t len;
        char *out = write_checked(msg, &wo, &len);
        tpart *t = tp_parse(out, len);
        tpart *body = with_att ? t->kids[0] : t;
        tpart *plain = with_html ? body->kids[0] : body;
        size_t wn;
        char *want = crlf_all(text.data ? text.data : "", text.len, &wn);
        assert_decoded(plain, want, wn);
        free(want);
        if (with_html) {
            want = crlf_all(html.data ? html.data : "", html.len, &wn);
            assert_decoded(body->kids[1], want, wn);
            free(want);
        }
        if (with_att)
            assert_decoded(t->kids[1], text.data ? text.data : "", text.len); /* exact */
        assert_encoded_lines(t);
        tp_free(t);
        free(out);
        pigeon_message_free(msg);
        pg_buf_cleanup(&text);
        pg_buf_cleanup(&html);
    }
}

/* ---- the stream ---- */

static pigeon_message *complex_message(const char *big_path)
{
    pigeon_message *msg = base_message();
    pigeon_message_add_cc(msg, "\xe5\xbc\xa0\xe4\xb8\x89 <zhang@example.cn>");
    pigeon_message_set_subject(msg, "\xe5\x91\xa8\xe6\x8a\xa5 weekly report");
    pigeon_message_set_text(msg, zh_text, (size_t)-1);
    pigeon_message_set_html(msg, "<p>hi <img src=\"cid:i1\"></p>\n", (size_t)-1);
    pigeon_part_opts in = {.content_id = "i1", .filename = "i.png"};
    pigeon_message_attach_buffer(msg, "\x89PNG....", 8, &in);
    pigeon_part_opts big = {.filename = zh_name};
    assert_int_equal(pigeon_message_attach_file(msg, big_path, &big), PIGEON_OK);
    char *buf = calloc(1, 1500000);
    pigeon_part_opts b = {.filename = "zeros.bin"};
    pigeon_message_attach_buffer(msg, buf, 1500000, &b); /* > 1 MiB: encoded on the fly */
    free(buf);
    return msg;
}

static void test_stream_cap1_equals_buffer(void **state)
{
    char *path = temp_file(1100000, ".pdf");
    pigeon_message *msg = complex_message(path);
    size_t len;
    /* Boundaries are fresh for every write; the test seed makes them repeat (the
     * Message-ID is generated first, once, so it does not shift the sequence). */
    assert_non_null(pigeon_message_get_message_id(msg));
    pg_mime_test_seed(7);
    char *whole = write_checked(msg, NULL, &len);
    pigeon_message_stream *s;
    pg_mime_test_seed(7);
    assert_int_equal(pigeon_message_stream_open(msg, NULL, &s), PIGEON_OK);
    assert_int_equal(pigeon_message_stream_size(s), (int64_t)len);
    char *got = malloc(len + 1);
    size_t pos = 0, n;
    for (;;) {
        assert_int_equal(pigeon_message_stream_read(s, got + pos, 1, &n), PIGEON_OK);
        if (n == 0)
            break;
        assert_int_equal(n, 1);
        pos += 1;
        assert_true(pos <= len);
    }
    assert_int_equal(pos, len);
    assert_memory_equal(got, whole, len);
    /* After the end: still the end. */
    assert_int_equal(pigeon_message_stream_read(s, got, 10, &n), PIGEON_OK);
    assert_int_equal(n, 0);
    pigeon_message_stream_free(s);

    /* write_fd gives the same bytes too. */
    char tmpl[] = "/tmp/pigeon_mime_out_XXXXXX";
    int fd = mkstemp(tmpl);
    pg_mime_test_seed(7);
    assert_int_equal(pigeon_message_write_fd(msg, NULL, fd), PIGEON_OK);
    pg_mime_test_seed(0);
    close(fd);
    size_t flen;
    char *file = slurp(tmpl, &flen);
    assert_int_equal(flen, len);
    assert_memory_equal(file, whole, len);
    unlink(tmpl);
    free(file);
    free(got);
    free(whole);
    pigeon_message_free(msg);
    unlink(path);
    free(path);
}

static void test_stream_size_exact(void **state)
{
    char *path = temp_file(2 * 1024 * 1024 + 1, ".bin");
    for (int variant = 0; variant < 4; variant++) {
        pigeon_message *msg = variant == 3 ? complex_message(path) : base_message();
        if (variant == 1)
            pigeon_message_set_text(msg, zh_text, (size_t)-1);
        if (variant == 2)
            pigeon_message_attach_file(msg, path, NULL);
        size_t len;
        char *out = write_checked(msg, NULL, &len);
        pigeon_message_stream *s;
        assert_int_equal(pigeon_message_stream_open(msg, NULL, &s), PIGEON_OK);
        assert_int_equal(pigeon_message_stream_size(s), (int64_t)len);
        pigeon_message_stream_free(s);
        free(out);
        pigeon_message_free(msg);
    }
    unlink(path);
    free(path);
}

/* ---- boundaries ---- */

/* With the test seed fixed, the first boundary candidate is known; a body that contains
 * it (and many other plausible delimiter lines) forces the composer to pick another. */
static void test_boundary_regenerated_on_collision(void **state)
{
    size_t len;
    pg_mime_test_seed(42);
    pigeon_message *msg = base_message();
    pigeon_message_set_text(msg, "a\n", (size_t)-1);
    pigeon_message_set_html(msg, "b", (size_t)-1);
    char *out = write_checked(msg, NULL, &len);
    tpart *t = tp_parse(out, len);
    char first[80];
    snprintf(first, sizeof first, "%s", t->boundary);
    assert_true(strncmp(first, "=_", 2) == 0);
    tp_free(t);
    free(out);
    pigeon_message_free(msg);

    pg_buf body;
    pg_buf_init(&body);
    pg_buf_printf(&body, "--%s\n--%s--\nx --%s\n", first, first, first);
    for (int i = 0; i < 50; i++)
        pg_buf_printf(&body, "--=_pigeon_%024d\n", i);
    pg_mime_test_seed(42);
    msg = base_message();
    pigeon_message_set_text(msg, body.data, body.len);
    pigeon_message_set_html(msg, "b", (size_t)-1);
    out = write_checked(msg, NULL, &len);
    t = tp_parse(out, len);
    assert_string_not_equal(t->boundary, first);
    assert_int_equal(t->nkids, 2);
    assert_field(t->kids[0], "Content-Transfer-Encoding", "7bit");
    size_t n;
    char *text = tp_decode(t->kids[0], &n);
    pg_buf want;
    pg_buf_init(&want);
    pg_buf_printf(&want, "--%s\r\n--%s--\r\nx --%s\r\n", first, first, first);
    assert_memory_equal(text, want.data, want.len);
    free(text);
    pg_buf_cleanup(&want);
    /* The boundary occurs in no line of the content. */
    char delim[90];
    snprintf(delim, sizeof delim, "--%s", t->boundary);
    const char *hit = out;
    int count = 0;
    while ((hit = strstr(hit, delim)) != NULL) {
        assert_true(hit[-1] == '\n'); /* only delimiter lines */
        count++;
        hit++;
    }
    assert_int_equal(count, 3);
    tp_free(t);
    free(out);
    pigeon_message_free(msg);
    pg_buf_cleanup(&body);
    pg_mime_test_seed(0);
}

/* Real randomness: two writes of the same message use different boundaries. */
static void test_boundaries_random(void **state)
{
    pigeon_message *msg = base_message();
    pigeon_message_set_text(msg, "a", (size_t)-1);
    pigeon_message_set_html(msg, "b", (size_t)-1);
    size_t l1, l2;
    char *o1 = write_checked(msg, NULL, &l1);
    char *o2 = write_checked(msg, NULL, &l2);
    tpart *t1 = tp_parse(o1, l1), *t2 = tp_parse(o2, l2);
    assert_string_not_equal(t1->boundary, t2->boundary);
    assert_true(strlen(t1->boundary) >= 30 && strlen(t1->boundary) <= 70);
    tp_free(t1);
    tp_free(t2);
    free(o1);
    free(o2);
    pigeon_message_free(msg);
}

/* ---- memory ---- */

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#ifndef UNDER_ASAN
/* A field of /proc/self/status in kB ("VmRSS:", "VmHWM:"), -1 if absent. */
static long status_kb(const char *name)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, name, strlen(name)) == 0)
            kb = strtol(line + strlen(name), NULL, 10);
    }
    fclose(f);
    return kb;
}
#endif

/* A 200 MB attachment written to /dev/null keeps the process's peak RSS growth under
 * 32 MB. ASan inflates RSS with shadow memory and quarantine, so this one runs only in
 * non-sanitized builds; tests/integration/test_bigattach.py checks the same thing on
 * any build by comparing growth for 20 MB and 200 MB. */
static void test_big_attachment_bounded_rss(void **state)
{
#ifdef UNDER_ASAN
    skip();
#else
    char path[] = "/tmp/pigeon_big_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 200 * 1024 * 1024), 0); /* sparse */
    close(fd);
    pid_t pid = fork();
    if (pid == 0) {
        /* The peak is reset first (Linux clear_refs "5") so that the parent's own peak,
         * inherited by the child, cannot hide growth. */
        int cr = open("/proc/self/clear_refs", O_WRONLY);
        if (cr < 0 || write(cr, "5", 1) != 1)
            _exit(3);
        close(cr);
        long before = status_kb("VmRSS:");
        pigeon_message *msg = base_message();
        pigeon_message_attach_file(msg, path, NULL);
        int out = open("/dev/null", O_WRONLY);
        pigeon_err err = pigeon_message_write_fd(msg, NULL, out);
        long peak = status_kb("VmHWM:");
        _exit(err != PIGEON_OK ? 2 : before > 0 && peak - before < 32 * 1024 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    unlink(path);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#endif
}

/* ---- golden files ---- */

/* Builds golden message number i; returns its file name. */
static const char *golden_message(int i, pigeon_message **out)
{
    pigeon_message *msg = pigeon_message_new();
    pigeon_message_set_from(msg, "\xe5\xbc\xa0\xe4\xb8\x89 <zhangsan@example.cn>");
    pigeon_message_add_to(msg, "Bob Smith <bob@example.org>, carol@example.net");
    pigeon_message_set_date(msg, FIXED_DATE);
    *out = msg;
    switch (i) {
    case 0:
        pigeon_message_set_subject(msg, "Plain text");
        pigeon_message_set_text(msg, "Hello Bob,\n\nThis is a plain message.\n", (size_t)-1);
        return "text_only.eml";
    case 1:
        pigeon_message_set_subject(msg, "\xe4\xbd\xa0\xe5\xa5\xbd HTML");
        pigeon_message_set_text(msg, zh_text, (size_t)-1);
        pigeon_message_set_html(msg, "<p>\xe4\xbd\xa0\xe5\xa5\xbd</p>\n", (size_t)-1);
        return "alternative.eml";
    case 2: {
        pigeon_message_set_subject(msg, "Report with logo and attachment");
        pigeon_message_add_cc(msg, "team@example.cn");
        pigeon_message_add_bcc(msg, "hidden@example.cn");
        pigeon_message_set_in_reply_to(msg, "<prev@example.cn>");
        pigeon_message_add_header(msg, "X-Priority", "3");
        pigeon_message_set_text(msg, "Report attached.\n", (size_t)-1);
        pigeon_message_set_html(msg, "<p>Report <img src=\"cid:logo@example.cn\"></p>\n",
                                (size_t)-1);
        pigeon_part_opts in = {.filename = "logo.png", .content_id = "logo@example.cn"};
        pigeon_message_attach_buffer(msg, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, &in);
        pigeon_part_opts att = {.filename = zh_name};
        pigeon_message_attach_buffer(msg, "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", 15, &att);
        return "mixed_related_alternative.eml";
    }
    default:
        pigeon_message_set_subject(msg, "GB18030");
        pigeon_message_set_charset(msg, "gb18030");
        pigeon_message_set_text(msg, "\xe4\xb8\xad\xe6\x96\x87\xe9\x82\xae\xe4\xbb\xb6\n",
                                (size_t)-1);
        return "gb18030.eml";
    }
}

static void test_golden_files(void **state)
{
    const char *src = getenv("PIGEON_SOURCE_DIR");
    int update = getenv("PIGEON_UPDATE_GOLDEN") != NULL;
    if (src == NULL)
        src = ".";
    for (int i = 0; i < 4; i++) {
        pigeon_message *msg;
        char path[512];
        pg_mime_test_seed(0x5EED + (uint64_t)i);
        const char *name = golden_message(i, &msg);
        snprintf(path, sizeof path, "%s/tests/golden/%s", src, name);
        size_t len;
        char *out = write_checked(msg, NULL, &len);
        if (update) {
            FILE *f = fopen(path, "wb");
            assert_non_null(f);
            assert_int_equal(fwrite(out, 1, len, f), len);
            fclose(f);
        }
        size_t glen;
        char *golden = slurp(path, &glen);
        if (glen != len || memcmp(golden, out, len) != 0)
            fail_msg("%s differs from the output (%zu vs %zu bytes); "
                     "PIGEON_UPDATE_GOLDEN=1 rewrites it after review",
                     name, glen, len);
        free(golden);
        free(out);
        pigeon_message_free(msg);
    }
    pg_mime_test_seed(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_attachment_bounded_rss),
        cmocka_unit_test(test_text_only),
        cmocka_unit_test(test_text_without_final_newline),
        cmocka_unit_test(test_html_only),
        cmocka_unit_test(test_no_body),
        cmocka_unit_test(test_alternative),
        cmocka_unit_test(test_related),
        cmocka_unit_test(test_nested_all),
        cmocka_unit_test(test_header_order),
        cmocka_unit_test(test_header_folding),
        cmocka_unit_test(test_encodings_chosen),
        cmocka_unit_test(test_line_endings_same_bytes),
        cmocka_unit_test(test_qp_or_base64_shorter),
        cmocka_unit_test(test_8bit_only_when_allowed),
        cmocka_unit_test(test_gb18030),
        cmocka_unit_test(test_attachment_names),
        cmocka_unit_test(test_file_attachments),
        cmocka_unit_test(test_text_attachments_exact),
        cmocka_unit_test(test_eml_attachment),
        cmocka_unit_test(test_stream_attachments),
        cmocka_unit_test(test_random_roundtrip),
        cmocka_unit_test(test_stream_cap1_equals_buffer),
        cmocka_unit_test(test_stream_size_exact),
        cmocka_unit_test(test_boundary_regenerated_on_collision),
        cmocka_unit_test(test_boundaries_random),
        cmocka_unit_test(test_golden_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
