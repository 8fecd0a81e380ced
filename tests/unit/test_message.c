/*
 * test_message.c - the message builder: validation of every input that reaches a header
 * (RFC 5322 2.2 injection, 3.6.4 msg-id, 3.6.8 field names), builder-owned fields,
 * sticky errors, Message-ID generation, the RFC 5321 envelope (MAIL FROM, RCPT TO).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/message.h"
#include "mime_testutil.h"

/* Writes msg (default options) and returns the header block as a C string. noinline:
 * GCC 12 otherwise mistakes pointers into the returned buffer for pointers to the local
 * `out` (a -Wdangling-pointer false positive in Release builds). */
__attribute__((noinline)) static char *header_of(pigeon_message *msg)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(pigeon_message_write_buffer(msg, NULL, &out, &len), PIGEON_OK);
    char *sep = strstr(out, "\r\n\r\n");
    assert_non_null(sep);
    sep[2] = '\0';
    return out;
}

static void test_new_free(void **state)
{
    pigeon_message_free(NULL);
    pigeon_message *msg = pigeon_message_new();
    assert_non_null(msg);
    assert_string_equal(pigeon_message_error(msg), "");
    assert_int_equal(pigeon_message_status(msg), PIGEON_OK);
    assert_null(pigeon_message_envelope_from(msg));
    assert_int_equal(pigeon_message_rcpt_count(msg), 0);
    assert_null(pigeon_message_rcpt(msg, 0));
    assert_null(pigeon_message_get_message_id(msg)); /* no From yet */
    pigeon_message_free(msg);
}

/* One way of smuggling a second header line (or a NUL/CR) in through a setter. */
typedef struct injection {
    const char *what;    /* description for the failure message */
    int setter;          /* which call, see apply() */
    const char *value;   /* the malicious value */
    pigeon_err expected; /* the code it must be refused with */
} injection;

enum {
    S_FROM,
    S_SENDER,
    S_REPLY_TO,
    S_TO,
    S_CC,
    S_BCC,
    S_SUBJECT,
    S_HDR_VALUE,
    S_HDR_NAME,
    S_MSGID,
    S_IN_REPLY_TO,
    S_REFERENCES,
    S_FILENAME,
    S_CTYPE,
    S_CID,
    S_FILE_CTYPE,
    S_STREAM_NAME,
};

static int dummy_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    *n = 0;
    return 0;
}

static pigeon_err apply(pigeon_message *msg, int setter, const char *v)
{
    pigeon_part_opts o = {0};
    switch (setter) {
    case S_FROM:
        return pigeon_message_set_from(msg, v);
    case S_SENDER:
        return pigeon_message_set_sender(msg, v);
    case S_REPLY_TO:
        return pigeon_message_add_reply_to(msg, v);
    case S_TO:
        return pigeon_message_add_to(msg, v);
    case S_CC:
        return pigeon_message_add_cc(msg, v);
    case S_BCC:
        return pigeon_message_add_bcc(msg, v);
    case S_SUBJECT:
        return pigeon_message_set_subject(msg, v);
    case S_HDR_VALUE:
        return pigeon_message_add_header(msg, "X-Note", v);
    case S_HDR_NAME:
        return pigeon_message_add_header(msg, v, "x");
    case S_MSGID:
        return pigeon_message_set_message_id(msg, v);
    case S_IN_REPLY_TO:
        return pigeon_message_set_in_reply_to(msg, v);
    case S_REFERENCES:
        return pigeon_message_set_references(msg, v);
    case S_FILENAME:
        o.filename = v;
        return pigeon_message_attach_buffer(msg, "x", 1, &o);
    case S_CTYPE:
        o.content_type = v;
        return pigeon_message_attach_buffer(msg, "x", 1, &o);
    case S_CID:
        o.content_id = v;
        return pigeon_message_attach_buffer(msg, "x", 1, &o);
    case S_FILE_CTYPE:
        o.content_type = v;
        return pigeon_message_attach_file(msg, "/etc/hostname", &o);
    case S_STREAM_NAME:
        o.filename = v;
        return pigeon_message_attach_stream(msg, dummy_read, NULL, 0, &o);
    }
    return PIGEON_OK;
}

static const injection injections[] = {
    {"From with CRLF", S_FROM, "a@example.com\r\nBcc: victim@example.org", PIGEON_ERR_ADDRESS},
    {"From display name with CR", S_FROM, "Evil\rBcc: x <a@example.com>", PIGEON_ERR_ADDRESS},
    {"From with LF", S_FROM, "a@example.com\nX: y", PIGEON_ERR_ADDRESS},
    {"Sender with CRLF", S_SENDER, "s@example.com\r\nX: y", PIGEON_ERR_ADDRESS},
    {"Reply-To with CRLF", S_REPLY_TO, "r@example.com\r\nX: y", PIGEON_ERR_ADDRESS},
    {"To with CRLF", S_TO, "t@example.com,\r\n u@example.com\r\nBcc: v@example.org",
     PIGEON_ERR_ADDRESS},
    {"Cc with LF", S_CC, "c@example.com\nBcc: v@example.org", PIGEON_ERR_ADDRESS},
    {"Bcc with CR", S_BCC, "b@example.com\rX: y", PIGEON_ERR_ADDRESS},
    {"Subject with CRLF", S_SUBJECT, "Hi\r\nBcc: victim@example.org", PIGEON_ERR_HEADER},
    {"Subject with LF", S_SUBJECT, "Hi\nX: y", PIGEON_ERR_HEADER},
    {"Subject with CR", S_SUBJECT, "Hi\rX: y", PIGEON_ERR_HEADER},
    {"Subject invalid UTF-8", S_SUBJECT, "caf\xe9", PIGEON_ERR_CHARSET},
    {"custom value with CRLF", S_HDR_VALUE, "x\r\nBcc: victim@example.org", PIGEON_ERR_HEADER},
    {"custom value with LF", S_HDR_VALUE, "x\nFrom: boss@example.com", PIGEON_ERR_HEADER},
    {"custom name with CRLF", S_HDR_NAME, "X-A\r\nBcc", PIGEON_ERR_HEADER},
    {"custom name with colon", S_HDR_NAME, "X-A: b", PIGEON_ERR_HEADER},
    {"custom name with space", S_HDR_NAME, "X A", PIGEON_ERR_HEADER},
    {"custom name empty", S_HDR_NAME, "", PIGEON_ERR_HEADER},
    {"custom name non-ASCII", S_HDR_NAME, "X-\xe4\xb8\xad", PIGEON_ERR_HEADER},
    {"custom name From", S_HDR_NAME, "From", PIGEON_ERR_HEADER},
    {"custom name date", S_HDR_NAME, "date", PIGEON_ERR_HEADER},
    {"custom name BCC", S_HDR_NAME, "BCC", PIGEON_ERR_HEADER},
    {"custom name Message-Id", S_HDR_NAME, "Message-Id", PIGEON_ERR_HEADER},
    {"custom name Content-Type", S_HDR_NAME, "content-type", PIGEON_ERR_HEADER},
    {"custom name Content-Transfer-Encoding", S_HDR_NAME, "Content-Transfer-Encoding",
     PIGEON_ERR_HEADER},
    {"custom name MIME-Version", S_HDR_NAME, "MIME-Version", PIGEON_ERR_HEADER},
    {"custom name References", S_HDR_NAME, "references", PIGEON_ERR_HEADER},
    {"Message-ID with CRLF", S_MSGID, "<a@b>\r\nBcc: v@example.org", PIGEON_ERR_HEADER},
    {"Message-ID with space", S_MSGID, "<a b@c>", PIGEON_ERR_HEADER},
    {"Message-ID without @", S_MSGID, "<abc>", PIGEON_ERR_HEADER},
    {"Message-ID unbalanced", S_MSGID, "<a@b", PIGEON_ERR_HEADER},
    {"Message-ID double dot", S_MSGID, "<a..b@c>", PIGEON_ERR_HEADER},
    {"Message-ID empty right", S_MSGID, "a@", PIGEON_ERR_HEADER},
    {"Message-ID non-ASCII", S_MSGID, "<\xe4\xb8\xad@b>", PIGEON_ERR_HEADER},
    {"In-Reply-To with CRLF", S_IN_REPLY_TO, "<a@b>\r\nX: y", PIGEON_ERR_HEADER},
    {"In-Reply-To no brackets", S_IN_REPLY_TO, "a@b", PIGEON_ERR_HEADER},
    {"References with LF", S_REFERENCES, "<a@b>\n<c@d>", PIGEON_ERR_HEADER},
    {"References garbage", S_REFERENCES, "<a@b> junk", PIGEON_ERR_HEADER},
    {"filename with CRLF", S_FILENAME, "a.pdf\r\nContent-Type: text/html", PIGEON_ERR_HEADER},
    {"filename with LF", S_FILENAME, "a\n.pdf", PIGEON_ERR_HEADER},
    {"filename invalid UTF-8", S_FILENAME, "\xff.pdf", PIGEON_ERR_CHARSET},
    {"stream filename with CR", S_STREAM_NAME, "a\r.pdf", PIGEON_ERR_HEADER},
    {"content type with CRLF", S_CTYPE, "text/plain\r\nX: y", PIGEON_ERR_HEADER},
    {"content type no slash", S_CTYPE, "textplain", PIGEON_ERR_HEADER},
    {"content type with params", S_CTYPE, "text/plain; charset=x", PIGEON_ERR_HEADER},
    {"content type empty subtype", S_CTYPE, "text/", PIGEON_ERR_HEADER},
    {"content type multipart", S_CTYPE, "multipart/mixed", PIGEON_ERR_HEADER},
    {"file content type with LF", S_FILE_CTYPE, "image/png\nX: y", PIGEON_ERR_HEADER},
    {"content id with CRLF", S_CID, "logo\r\nX: y", PIGEON_ERR_HEADER},
    {"content id with space", S_CID, "lo go", PIGEON_ERR_HEADER},
    {"content id with bracket", S_CID, "lo>go", PIGEON_ERR_HEADER},
    /* Not an encoded-word position (RFC 2047 5), but Python's parser decodes it there and
     * would read this one back as CR LF "Bcc: x". */
    {"content id with encoded-word", S_CID, "i=?UTF-8?B?DQpCY2M6IHg=?=.png", PIGEON_ERR_HEADER},
    {"bracketed content id with encoded-word", S_CID, "<=?utf-8?q?a=0D=0A?=@example.com>",
     PIGEON_ERR_HEADER},
};

/* Every injection is refused with its code, the message says why in one line, the error
 * is sticky (later setters are no-ops) and the message can no longer be written. */
static void test_injections_refused(void **state)
{
    for (size_t i = 0; i < sizeof injections / sizeof injections[0]; i++) {
        const injection *inj = &injections[i];
        pigeon_message *msg = pigeon_message_new();
        if (inj->setter != S_FROM)
            assert_int_equal(pigeon_message_set_from(msg, "a@example.com"), PIGEON_OK);
        pigeon_err err = apply(msg, inj->setter, inj->value);
        if (err != inj->expected)
            fail_msg("%s: got %s, want %s", inj->what, pigeon_err_name(err),
                     pigeon_err_name(inj->expected));
        assert_int_equal(pigeon_message_status(msg), inj->expected);
        const char *why = pigeon_message_error(msg);
        assert_true(why[0] != '\0');
        assert_null(strchr(why, '\n'));
        assert_null(strchr(why, '\r'));
        /* Sticky: a valid call now returns the first error and changes nothing. */
        assert_int_equal(pigeon_message_set_subject(msg, "fine"), inj->expected);
        char *out = (char *)"unchanged";
        size_t len = 7;
        assert_int_equal(pigeon_message_write_buffer(msg, NULL, &out, &len), inj->expected);
        assert_null(out);
        pigeon_message_free(msg);
    }
}

static void test_valid_values_accepted(void **state)
{
    static const struct {
        int setter;
        const char *value;
    } ok[] = {
        {S_MSGID, "<a.b@c.d>"},
        {S_MSGID, "x@y"},
        {S_MSGID, "<x@[10.0.0.1]>"},
        {S_MSGID, "<CA+z=Q_1$@mail.gmail.com>"},
        {S_IN_REPLY_TO, "<a@b>"},
        {S_REFERENCES, "<a@b> <c@d>\t<e@f>"},
        {S_HDR_NAME, "X-Mailer"},
        {S_HDR_NAME, "List-Unsubscribe"},
        {S_HDR_VALUE, "\xe4\xb8\xad\xe6\x96\x87"},
        {S_CID, "<logo@example.com>"},
        {S_CID, "logo"},
        {S_CID, "a=b?c?=d@example.com"},
        {S_CTYPE, "application/vnd.ms-excel"},
        {S_FILENAME, "\xe6\x8a\xa5\xe5\x91\x8a.pdf"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        pigeon_message *msg = pigeon_message_new();
        pigeon_err err = apply(msg, ok[i].setter, ok[i].value);
        if (err != PIGEON_OK)
            fail_msg("refused %s: %s", ok[i].value, pigeon_message_error(msg));
        pigeon_message_free(msg);
    }
}

static void test_custom_headers_repeat_in_order(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    pigeon_message_set_from(msg, "a@example.com");
    assert_int_equal(pigeon_message_add_header(msg, "X-Tag", "one"), PIGEON_OK);
    assert_int_equal(pigeon_message_add_header(msg, "X-Other", "mid"), PIGEON_OK);
    assert_int_equal(pigeon_message_add_header(msg, "X-Tag", "two"), PIGEON_OK);
    char *h = header_of(msg);
    const char *one = strstr(h, "\r\nX-Tag: one\r\n");
    const char *mid = strstr(h, "\r\nX-Other: mid\r\n");
    const char *two = strstr(h, "\r\nX-Tag: two\r\n");
    const char *mime = strstr(h, "\r\nMIME-Version: 1.0\r\n");
    assert_non_null(one);
    assert_non_null(mid);
    assert_non_null(two);
    assert_non_null(mime);
    /* In call order, and before MIME-Version (the documented order). */
    assert_true(one - h < mid - h && mid - h < two - h && two - h < mime - h);
    free(h);
    pigeon_message_free(msg);
}

static void test_message_id_generated(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    assert_int_equal(pigeon_message_set_from(msg, "Zhang <z@Example.COM>"), PIGEON_OK);
    const char *id = pigeon_message_get_message_id(msg);
    assert_non_null(id);
    const char *at = strchr(id, '@');
    assert_non_null(at);
    /* 128 random bits: at least 22 characters of base32/base62 on the left. */
    assert_true(at - id >= 22);
    for (const char *p = id; p < at; p++)
        assert_true(isalnum((unsigned char)*p));
    assert_string_equal(at + 1, "example.com");
    char *copy = strdup(id);
    /* Kept: the same on every call and in the header of every write. */
    assert_string_equal(pigeon_message_get_message_id(msg), copy);
    char *h = header_of(msg);
    char want[200];
    snprintf(want, sizeof want, "\r\nMessage-ID: <%s>\r\n", copy);
    assert_non_null(strstr(h, want));
    free(h);
    h = header_of(msg);
    assert_non_null(strstr(h, want));
    free(h);
    /* Two messages never share one. */
    pigeon_message *other = pigeon_message_new();
    pigeon_message_set_from(other, "z@example.com");
    assert_string_not_equal(pigeon_message_get_message_id(other), copy);
    pigeon_message_free(other);
    free(copy);
    pigeon_message_free(msg);
}

static void test_message_id_idn_domain(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    assert_int_equal(pigeon_message_set_from(msg, "a@\xe4\xbe\x8b\xe5\xad\x90.cn"), PIGEON_OK);
    const char *id = pigeon_message_get_message_id(msg);
    assert_non_null(id);
    assert_non_null(strstr(id, "@xn--"));
    pigeon_message_free(msg);
}

static void test_message_id_given(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    pigeon_message_set_from(msg, "a@example.com");
    assert_int_equal(pigeon_message_set_message_id(msg, "<abc.123@host.example>"), PIGEON_OK);
    assert_string_equal(pigeon_message_get_message_id(msg), "abc.123@host.example");
    assert_int_equal(pigeon_message_set_in_reply_to(msg, "<p@q>"), PIGEON_OK);
    assert_int_equal(pigeon_message_set_references(msg, "<o@q>   <p@q>"), PIGEON_OK);
    char *h = header_of(msg);
    assert_non_null(strstr(h, "\r\nMessage-ID: <abc.123@host.example>\r\n"));
    assert_non_null(strstr(h, "\r\nIn-Reply-To: <p@q>\r\n"));
    assert_non_null(strstr(h, "\r\nReferences: <o@q> <p@q>\r\n"));
    free(h);
    pigeon_message_free(msg);
}

static void test_references_folded(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    pg_buf refs;
    pg_buf_init(&refs);
    for (int i = 0; i < 40; i++)
        pg_buf_printf(&refs, "%s<thread.%d.abcdefghij@mail.example.com>", i ? " " : "", i);
    pigeon_message_set_from(msg, "a@example.com");
    assert_int_equal(pigeon_message_set_references(msg, refs.data), PIGEON_OK);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(pigeon_message_write_buffer(msg, NULL, &out, &len), PIGEON_OK);
    tp_check_lines(out, len, 78);
    tpart *t = tp_parse(out, len);
    char *v = tp_field(t->hdr, t->hdr_len, "References", 0);
    assert_string_equal(v, refs.data); /* unfolds to the same list */
    free(v);
    tp_free(t);
    free(out);
    pg_buf_cleanup(&refs);
    pigeon_message_free(msg);
}

static void test_date_format(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    pigeon_message_set_from(msg, "a@example.com");
    assert_int_equal(pigeon_message_set_date(msg, (time_t)1795681461), PIGEON_OK);
    char *h = header_of(msg);
    assert_true(strncmp(h, "Date: Thu, 26 Nov 2026 08:24:21 +0000\r\n", 39) == 0);
    free(h);
    pigeon_message_free(msg);
}

static void test_date_default_is_first_write(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    pigeon_message_set_from(msg, "a@example.com");
    time_t before = time(NULL);
    char *h1 = header_of(msg);
    time_t after = time(NULL);
    /* Parse "Date: Www, DD Mmm YYYY HH:MM:SS +0000" back and bracket it. */
    struct tm tm = {0};
    char mon[4];
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    assert_int_equal(sscanf(h1, "Date: %*3s, %d %3s %d %d:%d:%d +0000", &tm.tm_mday, mon,
                            &tm.tm_year, &tm.tm_hour, &tm.tm_min, &tm.tm_sec),
                     6);
    tm.tm_mon = (int)((strstr(months, mon) - months) / 3);
    tm.tm_year -= 1900;
    time_t t = timegm(&tm);
    assert_true(t >= before && t <= after);
    /* The second write keeps the date of the first. */
    char *h2 = header_of(msg);
    assert_true(strncmp(h1, h2, 39) == 0);
    free(h1);
    free(h2);
    pigeon_message_free(msg);
}

static void test_envelope(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    assert_int_equal(pigeon_message_set_from(msg, "Boss <boss@example.com>"), PIGEON_OK);
    const pigeon_mailbox *ef = pigeon_message_envelope_from(msg);
    assert_string_equal(ef->local, "boss");
    assert_int_equal(pigeon_message_set_sender(msg, "secretary@example.com"), PIGEON_OK);
    ef = pigeon_message_envelope_from(msg);
    assert_string_equal(ef->local, "secretary");

    assert_int_equal(pigeon_message_add_to(msg, "a@example.com, B <b@example.com>"), PIGEON_OK);
    assert_int_equal(pigeon_message_add_cc(msg, "a@EXAMPLE.com, c@example.com"), PIGEON_OK);
    assert_int_equal(pigeon_message_add_bcc(msg, "Hidden <h@example.org>, b@Example.Com"),
                     PIGEON_OK);
    /* The local part is case-sensitive (RFC 5321 2.4): A@ is someone else. */
    assert_int_equal(pigeon_message_add_bcc(msg, "A@example.com"), PIGEON_OK);
    assert_int_equal(pigeon_message_add_to(msg, "Team: a@example.com, d@example.net;"), PIGEON_OK);
    static const char *const want[] = {"a@example.com", "b@example.com", "c@example.com",
                                       "h@example.org", "A@example.com", "d@example.net"};
    assert_int_equal(pigeon_message_rcpt_count(msg), 6);
    for (size_t i = 0; i < 6; i++) {
        char *spec = NULL;
        assert_int_equal(pigeon_mailbox_addr_spec(pigeon_message_rcpt(msg, i), 0, &spec),
                         PIGEON_OK);
        assert_string_equal(spec, want[i]);
        free(spec);
    }
    assert_null(pigeon_message_rcpt(msg, 6));
    /* Bcc is in the envelope only. */
    char *h = header_of(msg);
    assert_null(strstr(h, "Bcc"));
    assert_null(strstr(h, "h@example.org"));
    assert_null(strstr(h, "Hidden"));
    free(h);
    pigeon_message_free(msg);
}

static void test_no_from(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    char *out = NULL;
    size_t len = 0;
    pigeon_message_add_to(msg, "a@example.com");
    assert_int_equal(pigeon_message_write_buffer(msg, NULL, &out, &len), PIGEON_ERR_INVALID);
    assert_string_equal(pigeon_message_error(msg), "no From address");
    assert_null(out);
    /* Not sticky: a write-time problem, fixed by setting From. */
    assert_int_equal(pigeon_message_set_from(msg, "b@example.com"), PIGEON_OK);
    assert_int_equal(pigeon_message_write_buffer(msg, NULL, &out, &len), PIGEON_OK);
    assert_int_equal(pigeon_message_status(msg), PIGEON_OK);
    assert_string_equal(pigeon_message_error(msg), "");
    free(out);
    pigeon_message_free(msg);
}

static void test_body_utf8_checked(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    assert_int_equal(pigeon_message_set_text(msg, "bad \xc3\x28", (size_t)-1), PIGEON_ERR_CHARSET);
    assert_non_null(strstr(pigeon_message_error(msg), "UTF-8"));
    pigeon_message_free(msg);
    msg = pigeon_message_new();
    /* Overlong encoding of '/' */
    assert_int_equal(pigeon_message_set_html(msg, "\xc0\xaf", 2), PIGEON_ERR_CHARSET);
    pigeon_message_free(msg);
    msg = pigeon_message_new();
    assert_int_equal(pigeon_message_set_charset(msg, "koi8-r"), PIGEON_ERR_CHARSET);
    pigeon_message_free(msg);
    msg = pigeon_message_new();
    assert_int_equal(pigeon_message_set_charset(msg, "GB18030"), PIGEON_OK);
    assert_int_equal(pigeon_message_set_charset(msg, "gbk"), PIGEON_OK);
    assert_int_equal(pigeon_message_set_charset(msg, "UTF-8"), PIGEON_OK);
    pigeon_message_free(msg);
}

static void test_attach_file_errors(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    assert_int_equal(pigeon_message_attach_file(msg, "/nonexistent/x.pdf", NULL),
                     PIGEON_ERR_NOTFOUND);
    assert_non_null(strstr(pigeon_message_error(msg), "/nonexistent/x.pdf"));
    pigeon_message_free(msg);
    msg = pigeon_message_new();
    assert_int_equal(pigeon_message_attach_file(msg, "/tmp", NULL), PIGEON_ERR_NOTFOUND);
    pigeon_message_free(msg);
    msg = pigeon_message_new();
    assert_int_equal(pigeon_message_attach_stream(msg, dummy_read, NULL, -2, NULL),
                     PIGEON_ERR_INVALID);
    pigeon_message_free(msg);
}

static void test_null_arguments(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    assert_int_equal(pigeon_message_set_from(NULL, "a@b.c"), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_message_set_subject(msg, NULL), PIGEON_ERR_INVALID);
    pigeon_message_free(msg);
    msg = pigeon_message_new();
    assert_int_equal(pigeon_message_attach_buffer(msg, NULL, 0, NULL), PIGEON_OK);
    pigeon_message_free(msg);
}

/* With smtputf8 the domain stays in U-labels and a UTF-8 local part is allowed
 * (RFC 6532); without it, a UTF-8 local part cannot be sent. */
static void test_smtputf8(void **state)
{
    pigeon_message *msg = pigeon_message_new();
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(pigeon_message_set_from(msg, "a@example.com"), PIGEON_OK);
    assert_int_equal(
        pigeon_message_add_to(msg, "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.cn"),
        PIGEON_OK);
    assert_int_equal(pigeon_message_write_buffer(msg, NULL, &out, &len), PIGEON_ERR_ADDRESS);
    assert_non_null(strstr(pigeon_message_error(msg), "SMTPUTF8"));
    pigeon_write_opts o = {.smtputf8 = 1};
    pigeon_message_stream *s = NULL;
    assert_int_equal(pigeon_message_stream_open(msg, &o, &s), PIGEON_OK);
    assert_true(pigeon_message_stream_is_8bit(s));
    pigeon_message_stream_free(s);
    assert_int_equal(pigeon_message_write_buffer(msg, &o, &out, &len), PIGEON_OK);
    assert_non_null(
        strstr(out, "\r\nTo: \xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.cn\r\n"));
    free(out);
    pigeon_message_free(msg);

    /* An IDN domain with an ASCII local part goes as A-labels without SMTPUTF8. */
    msg = pigeon_message_new();
    pigeon_message_set_from(msg, "a@example.com");
    pigeon_message_add_to(msg, "user@\xe4\xbe\x8b\xe5\xad\x90.cn");
    assert_int_equal(pigeon_message_write_buffer(msg, NULL, &out, &len), PIGEON_OK);
    assert_non_null(strstr(out, "\r\nTo: user@xn--"));
    free(out);
    pigeon_message_free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_free),
        cmocka_unit_test(test_injections_refused),
        cmocka_unit_test(test_valid_values_accepted),
        cmocka_unit_test(test_custom_headers_repeat_in_order),
        cmocka_unit_test(test_message_id_generated),
        cmocka_unit_test(test_message_id_idn_domain),
        cmocka_unit_test(test_message_id_given),
        cmocka_unit_test(test_references_folded),
        cmocka_unit_test(test_date_format),
        cmocka_unit_test(test_date_default_is_first_write),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_no_from),
        cmocka_unit_test(test_body_utf8_checked),
        cmocka_unit_test(test_attach_file_errors),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_smtputf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
