/*
 * test_rawmsg.c - sendmail mode's message reader (rawmsg.c): splitting input into header
 * and body in any chunking (line endings, the lone-dot rule of sendmail without -i),
 * parsing the header block (RFC 5322 2.2 fields, 2.2.3 folding, bounds, refusals),
 * To/Cc/Bcc recipients (groups, RFC 2047 display names), and the header block that goes
 * out (Bcc removed with its continuation lines, Date and Message-ID added only when
 * missing, CRLF).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/encode.h"
#include "mime/rawmsg.h"

/* 2023-11-14 22:13:20 UTC, a Tuesday. */
#define FIXED_TIME ((time_t)1700000000)

/* ---- reader ---- */

typedef struct reader_case {
    const char *name;   /* what is tested */
    const char *input;  /* bytes on standard input */
    int dot_ends;       /* sendmail without -i */
    const char *header; /* expected header block */
    const char *body;   /* expected body */
    int done;           /* a lone "." ended the input */
} reader_case;

static const reader_case reader_cases[] = {
    {"lf input", "Subject: x\nTo: a@b.c\n\nline1\nline2\n", 0, "Subject: x\r\nTo: a@b.c\r\n",
     "line1\r\nline2\r\n", 0},
    {"crlf input", "Subject: x\r\n\r\nline1\r\n", 0, "Subject: x\r\n", "line1\r\n", 0},
    {"lone cr is a line break", "Subject: x\r\rline1\rline2", 0, "Subject: x\r\n",
     "line1\r\nline2\r\n", 0},
    {"unterminated last line", "Subject: x\n\nno newline", 0, "Subject: x\r\n", "no newline\r\n",
     0},
    {"headers only, no newline", "Subject: x\nTo: a@b.c", 0, "Subject: x\r\nTo: a@b.c\r\n", "", 0},
    {"cron style", "Subject: x\n\nbody", 1, "Subject: x\r\n", "body\r\n", 0},
    {"lone dot ends input without -i", "Subject: x\n\nline1\n.\nafter\n", 1, "Subject: x\r\n",
     "line1\r\n", 1},
    {"lone dot with crlf ends input", "Subject: x\r\n\r\nline1\r\n.\r\nafter\r\n", 1,
     "Subject: x\r\n", "line1\r\n", 1},
    {"lone dot kept with -i", "Subject: x\n\nline1\n.\nafter\n", 0, "Subject: x\r\n",
     "line1\r\n.\r\nafter\r\n", 0},
    {"dot at eof ends input", "Subject: x\n\nline1\n.", 1, "Subject: x\r\n", "line1\r\n", 1},
    {"dotted lines are not the end", "S: x\n\n..\n.x\n. \nx.\n", 1, "S: x\r\n",
     "..\r\n.x\r\n. \r\nx.\r\n", 0},
    {"lone dot in the header ends input", "Subject: x\n.\nTo: a@b.c\n\nbody\n", 1, "Subject: x\r\n",
     "", 1},
    {"empty body lines kept", "S: x\n\n\n\nend\n\n", 0, "S: x\r\n", "\r\n\r\nend\r\n\r\n", 0},
    {"nul passes in the body", "S: x\n\na\0b\n", 0, "S: x\r\n", "a\0b\r\n", 0},
};

/* Runs the reader over input cut into chunks of size step (0: one chunk). */
static void run_reader(const reader_case *c, size_t len, size_t step, pg_buf *body,
                       pg_rawmsg_reader *r)
{
    pg_rawmsg_reader_init(r, c->dot_ends);
    pg_buf_init(body);
    size_t pos = 0;
    while (pos < len) {
        size_t n = step == 0 || len - pos < step ? len - pos : step;
        assert_int_equal(pg_rawmsg_reader_feed(r, c->input + pos, n, body), PIGEON_OK);
        pos += n;
    }
    assert_int_equal(pg_rawmsg_reader_finish(r, body), PIGEON_OK);
}

/* Length of a case's input, which may hold a NUL before the last one. */
static size_t input_len(const reader_case *c)
{
    return strcmp(c->name, "nul passes in the body") == 0 ? 10 : strlen(c->input);
}

static void test_reader_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof reader_cases / sizeof reader_cases[0]; i++) {
        const reader_case *c = &reader_cases[i];
        size_t len = input_len(c);
        size_t body_len = strcmp(c->name, "nul passes in the body") == 0 ? 5 : strlen(c->body);
        for (size_t step = 0; step <= 3; step++) { /* whole, then 1, 2 and 3 bytes at a time */
            pg_rawmsg_reader r;
            pg_buf body;
            run_reader(c, len, step, &body, &r);
            print_message("reader: %s (step %zu)\n", c->name, step);
            assert_string_equal(r.header.data != NULL ? r.header.data : "", c->header);
            assert_int_equal(body.len, body_len);
            if (body_len > 0)
                assert_memory_equal(body.data, c->body, body_len);
            assert_int_equal(r.done, c->done);
            pg_buf_cleanup(&body);
            pg_rawmsg_reader_cleanup(&r);
        }
    }
}

/* 8-bit octets anywhere (header or body) are noticed, so BODY=8BITMIME can be declared. */
static void test_reader_8bit(void **state)
{
    (void)state;
    static const struct {
        const char *input; /* the message */
        int has_8bit;      /* expected */
    } cases[] = {
        {"Subject: x\n\nplain ascii\n", 0},
        {"Subject: caf\xc3\xa9\n\nascii\n", 1},
        {"Subject: x\n\nna\xc3\xafve\n", 1},
        {"Subject: x\n\nascii\n.\n\xff after the end\n", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pg_rawmsg_reader r;
        pg_buf body;
        pg_rawmsg_reader_init(&r, 1);
        pg_buf_init(&body);
        assert_int_equal(pg_rawmsg_reader_feed(&r, cases[i].input, strlen(cases[i].input), &body),
                         PIGEON_OK);
        assert_int_equal(pg_rawmsg_reader_finish(&r, &body), PIGEON_OK);
        assert_int_equal(r.has_8bit, cases[i].has_8bit);
        pg_buf_cleanup(&body);
        pg_rawmsg_reader_cleanup(&r);
    }
}

static void test_reader_header_bound(void **state)
{
    (void)state;
    pg_rawmsg_reader r;
    pg_buf body;
    pg_rawmsg_reader_init(&r, 0);
    pg_buf_init(&body);
    const char line[] = "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
    pigeon_err e = PIGEON_OK;
    for (size_t total = 0; total < PG_RAWMSG_HEADER_MAX + 1000 && e == PIGEON_OK;
         total += sizeof line - 1)
        e = pg_rawmsg_reader_feed(&r, line, sizeof line - 1, &body);
    assert_int_equal(e, PIGEON_ERR_TOO_LARGE);
    assert_true(r.header.len <= PG_RAWMSG_HEADER_MAX);
    pg_buf_cleanup(&body);
    pg_rawmsg_reader_cleanup(&r);
}

/* ---- parser ---- */

static void parse_ok(pg_rawmsg *m, const char *in)
{
    char err[256] = "";
    pigeon_err e = pg_rawmsg_parse(m, in, strlen(in), err, sizeof err);
    if (e != PIGEON_OK)
        print_error("unexpected error: %s\n", err);
    assert_int_equal(e, PIGEON_OK);
}

static void test_parse_folding(void **state)
{
    (void)state;
    pg_rawmsg m;
    const char *in = "Subject: a long\r\n  subject\r\n\tline\r\nTo: x@y.org\r\n\r\nbody\r\n";
    parse_ok(&m, in);
    assert_int_equal(m.count, 2);
    assert_string_equal(m.fields[0].name, "Subject");
    assert_string_equal(m.fields[0].value, "a long  subject\tline");
    assert_int_equal(m.fields[0].offset, 0);
    assert_int_equal(m.fields[0].length, strlen("Subject: a long\r\n  subject\r\n\tline\r\n"));
    assert_string_equal(m.fields[1].value, "x@y.org");
    assert_true(m.has_separator);
    assert_string_equal(in + m.body_offset, "body\r\n");
    assert_int_equal(m.long_lines, 0);
    pg_rawmsg_cleanup(&m);
}

static void test_parse_find_case_insensitive(void **state)
{
    (void)state;
    pg_rawmsg m;
    parse_ok(&m, "X-Tag: one\nx-tag: two\nSubject : obs space\nX-TAG:three\n\n");
    assert_int_equal(pg_rawmsg_count(&m, "X-Tag"), 3);
    assert_string_equal(pg_rawmsg_find(&m, "x-TAG", 0)->value, "one");
    assert_string_equal(pg_rawmsg_find(&m, "X-Tag", 1)->value, "two");
    assert_string_equal(pg_rawmsg_find(&m, "X-Tag", 2)->value, "three");
    assert_null(pg_rawmsg_find(&m, "X-Tag", 3));
    assert_string_equal(pg_rawmsg_find(&m, "subject", 0)->name, "Subject");
    assert_string_equal(pg_rawmsg_find(&m, "subject", 0)->value, "obs space");
    assert_null(pg_rawmsg_find(&m, "Date", 0));
    pg_rawmsg_cleanup(&m);
}

static void test_parse_no_body(void **state)
{
    (void)state;
    pg_rawmsg m;
    const char *in = "Subject: x\nTo: a@b.c";
    parse_ok(&m, in);
    assert_int_equal(m.count, 2);
    assert_false(m.has_separator);
    assert_int_equal(m.body_offset, strlen(in));
    assert_string_equal(m.fields[1].value, "a@b.c");
    pg_rawmsg_cleanup(&m);
}

static void test_parse_mbox_from_line(void **state)
{
    (void)state;
    pg_rawmsg m;
    parse_ok(&m, "From 1234abcd Mon Sep 17 00:00:00 2001\nFrom: A <a@x.org>\nSubject: p\n\n");
    assert_true(m.mbox_from_line);
    assert_int_equal(m.count, 2);
    assert_string_equal(m.fields[0].name, "From");
    pg_rawmsg_cleanup(&m);
    /* A field "From :" with white space before the colon (RFC 5322 4.5.8) is a field. */
    parse_ok(&m, "From : a@x.org\nSubject: p\n\n");
    assert_false(m.mbox_from_line);
    assert_int_equal(m.count, 2);
    assert_string_equal(m.fields[0].name, "From");
    assert_string_equal(m.fields[0].value, "a@x.org");
    pg_rawmsg_cleanup(&m);
}

/* The reader notes the first body line holding a NUL and the first over 998 octets,
 * counted from the message's first line, whatever the chunking; header lines are the
 * parser's to judge. */
static void test_reader_body_checks(void **state)
{
    (void)state;
    char in[3000];
    int n = snprintf(in, sizeof in, "Subject: x\n\nok\n");
    memset(in + n, 'b', 999);
    n += 999;
    n += snprintf(in + n, sizeof in - (size_t)n, "\nfine\nnul ");
    in[n++] = '\0';
    n += snprintf(in + n, sizeof in - (size_t)n, " here\n");
    for (size_t chunk = 1; chunk <= (size_t)n; chunk = chunk * 3 + 1) {
        pg_rawmsg_reader r;
        pg_buf body;
        pg_rawmsg_reader_init(&r, 0);
        pg_buf_init(&body);
        for (size_t i = 0; i < (size_t)n; i += chunk) {
            size_t len = (size_t)n - i < chunk ? (size_t)n - i : chunk;
            assert_int_equal(pg_rawmsg_reader_feed(&r, in + i, len, &body), PIGEON_OK);
        }
        assert_int_equal(pg_rawmsg_reader_finish(&r, &body), PIGEON_OK);
        assert_int_equal(r.long_line, 4);
        assert_int_equal(r.nul_line, 6);
        pg_buf_cleanup(&body);
        pg_rawmsg_reader_cleanup(&r);
    }
    /* 998 octets exactly, and a long header line, are not the body's problem. */
    pg_rawmsg_reader r;
    pg_buf body;
    pg_rawmsg_reader_init(&r, 0);
    pg_buf_init(&body);
    memcpy(in, "X: ", 3);
    memset(in + 3, 'h', 1200);
    memcpy(in + 1203, "\n\n", 2);
    memset(in + 1205, 'c', 998);
    memcpy(in + 2203, "\n", 1);
    assert_int_equal(pg_rawmsg_reader_feed(&r, in, 2204, &body), PIGEON_OK);
    assert_int_equal(pg_rawmsg_reader_finish(&r, &body), PIGEON_OK);
    assert_int_equal(r.long_line, 0);
    assert_int_equal(r.nul_line, 0);
    pg_buf_cleanup(&body);
    pg_rawmsg_reader_cleanup(&r);
}

static void test_parse_long_line_flagged(void **state)
{
    (void)state;
    char in[1200];
    pg_rawmsg m;
    memcpy(in, "X-Long: ", 8);
    memset(in + 8, 'a', 1100);
    memcpy(in + 1108, "\nTo: a@b.c\n\n", 13);
    parse_ok(&m, in);
    assert_int_equal(m.long_lines, 1);
    assert_true(m.fields[0].long_line);
    assert_false(m.fields[1].long_line);
    assert_int_equal(strlen(m.fields[0].value), 1100);
    pg_rawmsg_cleanup(&m);
}

typedef struct bad_case {
    const char *name;  /* what is wrong */
    const char *input; /* the header block */
    size_t len;        /* its length (it may hold a NUL) */
    pigeon_err code;   /* expected error */
    const char *says;  /* expected part of the reason */
} bad_case;

static const bad_case bad_cases[] = {
    {"no colon", "Subject: x\nhello world\n\nbody\n", 0, PIGEON_ERR_HEADER, "line 2"},
    {"body without header", "just a body line\n", 0, PIGEON_ERR_HEADER, "no colon"},
    {"nul in header", "Subject: a\0b\n\n", 14, PIGEON_ERR_HEADER, "NUL"},
    {"lone cr in header", "Subject: a\rb\n\n", 0, PIGEON_ERR_HEADER, "CR"},
    {"continuation first", " folded: x\nSubject: y\n\n", 0, PIGEON_ERR_HEADER, "line 1"},
    {"empty name", ": x\n\n", 0, PIGEON_ERR_HEADER, "field name"},
    {"space in name", "Bad Name: x\n\n", 0, PIGEON_ERR_HEADER, "field name"},
};

static void test_parse_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        pg_rawmsg m;
        char err[256] = "";
        size_t len = c->len ? c->len : strlen(c->input);
        print_message("refusal: %s\n", c->name);
        assert_int_equal(pg_rawmsg_parse(&m, c->input, len, err, sizeof err), c->code);
        assert_non_null(strstr(err, c->says));
        assert_int_equal(m.count, 0);
        assert_null(m.fields);
    }
}

static void test_parse_bounds(void **state)
{
    (void)state;
    pg_rawmsg m;
    char err[256];
    pg_buf b;
    /* 1001 fields. */
    pg_buf_init(&b);
    for (int i = 0; i <= PG_RAWMSG_FIELDS_MAX; i++)
        pg_buf_printf(&b, "X-N: %d\n", i);
    assert_int_equal(pg_rawmsg_parse(&m, b.data, b.len, err, sizeof err), PIGEON_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "1000"));
    /* Exactly 1000 fields is fine. */
    pg_buf_reset(&b);
    for (int i = 0; i < PG_RAWMSG_FIELDS_MAX; i++)
        pg_buf_printf(&b, "X-N: %d\n", i);
    assert_int_equal(pg_rawmsg_parse(&m, b.data, b.len, err, sizeof err), PIGEON_OK);
    assert_int_equal(m.count, PG_RAWMSG_FIELDS_MAX);
    pg_rawmsg_cleanup(&m);
    /* Over 1 MiB in few fields (long folded lines). */
    pg_buf_reset(&b);
    pg_buf_puts(&b, "X-Big: a\n");
    while (b.len <= PG_RAWMSG_HEADER_MAX + 10)
        pg_buf_puts(&b,
                    " aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
    pg_buf_puts(&b, "\nbody\n");
    assert_int_equal(pg_rawmsg_parse(&m, b.data, b.len, err, sizeof err), PIGEON_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "header block"));
    pg_buf_cleanup(&b);
}

/* ---- recipients ---- */

typedef struct rcpt_case {
    const char *name;     /* what is tested */
    const char *input;    /* the header block */
    const char *expected; /* "addr|display name|group" per mailbox, ';'-separated */
    size_t empty_groups;  /* expected empty groups */
} rcpt_case;

static const rcpt_case rcpt_cases[] = {
    {"to cc bcc in order",
     "From: me@x.org\nBcc: hidden@z.org\nTo: a@x.org\nCc: B <b@y.org>\nSubject: s\n\n",
     "hidden@z.org||;a@x.org||;b@y.org|B|", 0},
    {"folded with tabs", "To: a@x.org,\n\tb@y.org,\n  C <c@z.org>\n\n",
     "a@x.org||;b@y.org||;c@z.org|C|", 0},
    {"several bcc fields", "Bcc: a@x.org\nbcc: b@y.org\nBCC: c@z.org\n\n",
     "a@x.org||;b@y.org||;c@z.org||", 0},
    {"encoded comma stays in one name", "To: =?UTF-8?Q?Zhang=2C_San?= <zs@example.cn>, b@y.org\n\n",
     "zs@example.cn|Zhang, San|;b@y.org||", 0},
    {"encoded utf-8 name", "Cc: =?UTF-8?B?5byg5LiJ?= <zhangsan@qq.com>\n\n",
     "zhangsan@qq.com|\xe5\xbc\xa0\xe4\xb8\x89|", 0},
    {"gb2312 encoded name", "To: =?GB2312?B?1cXI/Q==?= <zs@163.com>\n\n",
     "zs@163.com|\xe5\xbc\xa0\xe4\xb8\x89|", 0},
    {"groups", "To: Team: a@x.org, b@y.org;, c@z.org\nCc: undisclosed-recipients:;\n\n",
     "a@x.org||Team;b@y.org||Team;c@z.org||", 1},
    {"empty fields skipped", "To:\nCc:   \nBcc: a@x.org\n\n", "a@x.org||", 0},
    {"other fields ignored", "From: f@x.org\nReply-To: r@x.org\nResent-To: rt@x.org\n\n", "", 0},
};

static void format_list(const pigeon_address_list *l, pg_buf *out)
{
    for (size_t i = 0; i < l->count; i++) {
        const pigeon_mailbox *mb = &l->items[i];
        pg_buf_printf(out, "%s%s@%s|%s|%s", i ? ";" : "", mb->local, mb->domain,
                      mb->display_name ? mb->display_name : "", mb->group ? mb->group : "");
    }
}

static void test_recipients_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rcpt_cases / sizeof rcpt_cases[0]; i++) {
        const rcpt_case *c = &rcpt_cases[i];
        pg_rawmsg m;
        pigeon_address_list l = {0};
        char err[256] = "";
        pg_buf got;
        pg_buf_init(&got);
        print_message("recipients: %s\n", c->name);
        parse_ok(&m, c->input);
        pigeon_err e = pg_rawmsg_recipients(&m, &l, err, sizeof err);
        if (e != PIGEON_OK)
            print_error("%s\n", err);
        assert_int_equal(e, PIGEON_OK);
        format_list(&l, &got);
        assert_string_equal(got.data != NULL ? got.data : "", c->expected);
        assert_int_equal(l.empty_group_count, c->empty_groups);
        pg_buf_cleanup(&got);
        pigeon_address_list_cleanup(&l);
        pg_rawmsg_cleanup(&m);
    }
}

static void test_recipients_invalid(void **state)
{
    (void)state;
    pg_rawmsg m;
    pigeon_address_list l = {0};
    char err[256] = "";
    parse_ok(&m, "To: good@x.org\nCc: not an address\n\n");
    assert_int_equal(pg_rawmsg_recipients(&m, &l, err, sizeof err), PIGEON_ERR_ADDRESS);
    assert_memory_equal(err, "Cc: ", 4);
    pigeon_address_list_cleanup(&l);
    pg_rawmsg_cleanup(&m);
}

static void test_from(void **state)
{
    (void)state;
    pg_rawmsg m;
    pigeon_mailbox mb = {0};
    char err[256] = "";
    parse_ok(&m, "Subject: x\nFROM: =?UTF-8?B?5byg5LiJ?= <ZS@Example.CN>, other@x.org\n\n");
    assert_int_equal(pg_rawmsg_from(&m, &mb, err, sizeof err), PIGEON_OK);
    assert_string_equal(mb.local, "ZS");
    assert_string_equal(mb.domain, "example.cn");
    assert_string_equal(mb.display_name, "\xe5\xbc\xa0\xe4\xb8\x89");
    pigeon_mailbox_cleanup(&mb);
    pg_rawmsg_cleanup(&m);
    parse_ok(&m, "Subject: x\n\n");
    assert_int_equal(pg_rawmsg_from(&m, &mb, err, sizeof err), PIGEON_ERR_NOTFOUND);
    pg_rawmsg_cleanup(&m);
}

/* ---- writer ---- */

/* Writes the outgoing header of in; checks the generated Message-ID (if any) has the
 * form <24 alphanumerics@domain> and replaces its random part by "RANDOM". */
static char *write_header(const char *in, const pigeon_mailbox *from, int utc_offset)
{
    pg_rawmsg m;
    pg_buf out;
    pg_rawmsg_out_opts o = {from, FIXED_TIME, utc_offset, NULL};
    pg_buf_init(&out);
    parse_ok(&m, in);
    assert_int_equal(pg_rawmsg_write_header(&m, &o, &out), PIGEON_OK);
    int had_id = pg_rawmsg_count(&m, "Message-ID") > 0;
    pg_rawmsg_cleanup(&m);
    char *s = pg_buf_detach(&out, NULL);
    assert_non_null(s);
    char *id = had_id ? NULL : strstr(s, "Message-ID: <");
    if (!had_id) {
        assert_non_null(id);
        char *left = id + strlen("Message-ID: <");
        size_t n = strspn(left, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
        assert_int_equal(n, 24);
        assert_int_equal(left[24], '@');
        memcpy(left, "RANDOM", 6);
        memmove(left + 6, left + 24, strlen(left + 24) + 1);
    }
    return s;
}

typedef struct writer_case {
    const char *name;     /* what is tested */
    const char *input;    /* the message */
    int utc_offset;       /* minutes east of UTC */
    const char *expected; /* the outgoing header block */
} writer_case;

static const writer_case writer_cases[] = {
    {"bcc with continuation stripped, lf to crlf",
     "From: a@x.org\nBcc: s@x.org,\n  t@x.org\nTo: b@y.org\nDate: Mon, 1 Jan 2024 00:00:00 "
     "+0000\nMessage-ID: <1@x.org>\n\nbody\n",
     0,
     "From: a@x.org\r\nTo: b@y.org\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
     "Message-ID: <1@x.org>\r\n\r\n"},
    {"several bcc fields stripped, folding kept",
     "bcc: one@x.org\nFrom: a@x.org\nSubject: folded\n\tsubject\nBCC : two@x.org,\n\tthree@x.org\n"
     "Date: Mon, 1 Jan 2024 00:00:00 +0000\nmessage-id: <2@x.org>\n",
     0,
     "From: a@x.org\r\nSubject: folded\r\n\tsubject\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
     "message-id: <2@x.org>\r\n\r\n"},
    {"resent-bcc stripped like bcc (RFC 5322 3.6.6), resent-to kept",
     "From: a@x.org\nResent-From: r@x.org\nResent-To: t@y.org\nResent-Bcc: hidden@z.org,\n"
     " other@z.org\nresent-bcc:\nDate: d\nMessage-ID: <9@x>\n\nbody\n",
     0,
     "From: a@x.org\r\nResent-From: r@x.org\r\nResent-To: t@y.org\r\nDate: d\r\n"
     "Message-ID: <9@x>\r\n\r\n"},
    {"date and message-id added, east of utc", "From: A <a@x.org>\nSubject: s\n\nbody\n", 480,
     "From: A <a@x.org>\r\nSubject: s\r\nDate: Wed, 15 Nov 2023 06:13:20 +0800\r\n"
     "Message-ID: <RANDOM@x.org>\r\n\r\n"},
    {"date added, west of utc", "From: a@x.org\nMessage-ID: <3@x.org>\n", -330,
     "From: a@x.org\r\nMessage-ID: <3@x.org>\r\nDate: Tue, 14 Nov 2023 16:43:20 -0530\r\n\r\n"},
    {"message-id domain in a-labels",
     "From: b@B\xc3\xbc"
     "cher.example\nDate: x\n",
     0,
     "From: b@B\xc3\xbc"
     "cher.example\r\nDate: x\r\nMessage-ID: <RANDOM@xn--bcher-kva.example>\r\n"
     "\r\n"},
    {"crlf input unchanged", "From: a@x.org\r\nDate: d\r\nMessage-ID: <4@x>\r\nX: y\r\n\r\nb\r\n",
     0, "From: a@x.org\r\nDate: d\r\nMessage-ID: <4@x>\r\nX: y\r\n\r\n"},
    {"mbox line dropped",
     "From abc Mon Sep 17 00:00:00 2001\nFrom: a@x.org\nDate: d\n"
     "Message-ID: <5@x>\n\n",
     0, "From: a@x.org\r\nDate: d\r\nMessage-ID: <5@x>\r\n\r\n"},
};

static void test_writer_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof writer_cases / sizeof writer_cases[0]; i++) {
        const writer_case *c = &writer_cases[i];
        print_message("writer: %s\n", c->name);
        char *got = write_header(c->input, NULL, c->utc_offset);
        assert_string_equal(got, c->expected);
        free(got);
    }
}

static void test_writer_adds_from(void **state)
{
    (void)state;
    pigeon_mailbox from = {0};
    char err[128];
    assert_int_equal(
        pigeon_mailbox_parse("\xe5\xbc\xa0\xe4\xb8\x89 <zs@qq.com>", &from, err, sizeof err),
        PIGEON_OK);
    char *out = write_header("Subject: cron\nTo: root@x.org\n\nbody\n", &from, 0);
    /* Read it back: the added From holds the encoded name and the address. */
    pg_rawmsg m;
    pigeon_mailbox got = {0};
    parse_ok(&m, out);
    assert_int_equal(pg_rawmsg_count(&m, "From"), 1);
    assert_int_equal(pg_rawmsg_from(&m, &got, err, sizeof err), PIGEON_OK);
    assert_string_equal(got.display_name, "\xe5\xbc\xa0\xe4\xb8\x89");
    assert_string_equal(got.local, "zs");
    assert_string_equal(got.domain, "qq.com");
    assert_null(strchr(pg_rawmsg_find(&m, "From", 0)->value, 0xe5)); /* encoded, 7-bit */
    assert_non_null(strstr(out, "Message-ID: <RANDOM@qq.com>\r\n"));
    assert_non_null(strstr(out, "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
    pigeon_mailbox_cleanup(&got);
    pg_rawmsg_cleanup(&m);
    free(out);
    /* An existing From is never replaced. */
    out = write_header("From: mine@x.org\nDate: d\nMessage-ID: <1@x>\n", &from, 0);
    assert_string_equal(out, "From: mine@x.org\r\nDate: d\r\nMessage-ID: <1@x>\r\n\r\n");
    free(out);
    pigeon_mailbox_cleanup(&from);
}

/* RFC 5322 2.2.3: a header line over 998 octets is folded before white space, every line
 * is then at most 998 octets, and unfolding gives the field back; without white space it
 * cannot be, and pg_rawmsg_unfoldable() names the field. */
static void test_writer_folds_long_lines(void **state)
{
    (void)state;
    char in[8000], value[3500];
    size_t v = 0;
    for (int i = 0; i < 300; i++)
        v += (size_t)snprintf(value + v, sizeof value - v, "%sword%04d", i ? " " : "", i);
    snprintf(in, sizeof in, "From: a@x.org\nSubject: %s\nDate: d\nMessage-ID: <1@x>\n\n", value);
    pg_rawmsg m;
    parse_ok(&m, in);
    assert_null(pg_rawmsg_unfoldable(&m));
    pg_rawmsg_cleanup(&m);
    char *out = write_header(in, NULL, 0);
    for (char *line = out, *end; (end = strstr(line, "\r\n")) != NULL; line = end + 2)
        assert_true(end - line <= 998);
    parse_ok(&m, out);
    assert_string_equal(pg_rawmsg_find(&m, "Subject", 0)->value, value);
    pg_rawmsg_cleanup(&m);
    free(out);
    /* White space between a name and its colon (RFC 5322 4.5) is no place to fold. */
    memset(value, 'q', 1200);
    value[1200] = '\0';
    snprintf(in, sizeof in, "From: a@x.org\nX-Name%s :%s\n\n", value, value);
    parse_ok(&m, in);
    assert_non_null(pg_rawmsg_unfoldable(&m));
    pg_rawmsg_cleanup(&m);
    memset(value, 'z', 1500);
    value[1500] = '\0';
    snprintf(in, sizeof in, "From: a@x.org\nX-Token: %s\nBcc: %s\n\n", value, value);
    parse_ok(&m, in);
    const pg_rawmsg_field *f = pg_rawmsg_unfoldable(&m);
    assert_non_null(f);
    assert_string_equal(f->name, "X-Token");
    pg_buf buf;
    pg_buf_init(&buf);
    pg_rawmsg_out_opts o = {NULL, FIXED_TIME, 0, NULL};
    assert_int_equal(pg_rawmsg_write_header(&m, &o, &buf), PIGEON_ERR_HEADER);
    pg_buf_cleanup(&buf);
    pg_rawmsg_cleanup(&m);
}

static void test_writer_refusals(void **state)
{
    (void)state;
    pg_rawmsg m;
    pg_buf out;
    pg_buf_init(&out);
    pg_rawmsg_out_opts o = {NULL, FIXED_TIME, 0, NULL};
    parse_ok(&m, "Subject: no from\n\n");
    assert_int_equal(pg_rawmsg_write_header(&m, &o, &out), PIGEON_ERR_HEADER);
    pg_rawmsg_cleanup(&m);
    pg_buf_reset(&out);
    parse_ok(&m, "From: a@x.org\nMessage-ID: <1@x>\n");
    o.utc_offset = 1440;
    assert_int_equal(pg_rawmsg_write_header(&m, &o, &out), PIGEON_ERR_INVALID);
    pg_rawmsg_cleanup(&m);
    pg_buf_cleanup(&out);
}

/* Two generated Message-IDs differ (they come from the CSPRNG). */
static void test_writer_message_ids_differ(void **state)
{
    (void)state;
    pg_rawmsg m;
    pg_buf a, b;
    pg_rawmsg_out_opts o = {NULL, FIXED_TIME, 0, "host.example"};
    pg_buf_init(&a);
    pg_buf_init(&b);
    parse_ok(&m, "From: a@x.org\nDate: d\n");
    assert_int_equal(pg_rawmsg_write_header(&m, &o, &a), PIGEON_OK);
    assert_int_equal(pg_rawmsg_write_header(&m, &o, &b), PIGEON_OK);
    assert_non_null(strstr(a.data, "@host.example>\r\n"));
    assert_string_not_equal(a.data, b.data);
    pg_rawmsg_cleanup(&m);
    pg_buf_cleanup(&a);
    pg_buf_cleanup(&b);
}

/* The reader's header block parses and the writer's output is what the reader read. */
static void test_reader_to_writer(void **state)
{
    (void)state;
    const char *in = "From: a@x.org\nTo: b@y.org\nBcc: c@z.org\nDate: d\nMessage-ID: <1@x>\n\n"
                     "hello\n.\nworld\n";
    pg_rawmsg_reader r;
    pg_buf body, out;
    pg_rawmsg m;
    pg_rawmsg_out_opts o = {NULL, FIXED_TIME, 0, NULL};
    pg_rawmsg_reader_init(&r, 0);
    pg_buf_init(&body);
    pg_buf_init(&out);
    assert_int_equal(pg_rawmsg_reader_feed(&r, in, strlen(in), &body), PIGEON_OK);
    assert_int_equal(pg_rawmsg_reader_finish(&r, &body), PIGEON_OK);
    parse_ok(&m, r.header.data);
    assert_int_equal(pg_rawmsg_write_header(&m, &o, &out), PIGEON_OK);
    pg_buf_append(&out, body.data, body.len);
    assert_string_equal(out.data, "From: a@x.org\r\nTo: b@y.org\r\nDate: d\r\nMessage-ID: <1@x>\r\n"
                                  "\r\nhello\r\n.\r\nworld\r\n");
    pg_rawmsg_cleanup(&m);
    pg_buf_cleanup(&out);
    pg_buf_cleanup(&body);
    pg_rawmsg_reader_cleanup(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_table),
        cmocka_unit_test(test_reader_8bit),
        cmocka_unit_test(test_reader_body_checks),
        cmocka_unit_test(test_reader_header_bound),
        cmocka_unit_test(test_parse_folding),
        cmocka_unit_test(test_parse_find_case_insensitive),
        cmocka_unit_test(test_parse_no_body),
        cmocka_unit_test(test_parse_mbox_from_line),
        cmocka_unit_test(test_parse_long_line_flagged),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_parse_bounds),
        cmocka_unit_test(test_recipients_table),
        cmocka_unit_test(test_recipients_invalid),
        cmocka_unit_test(test_from),
        cmocka_unit_test(test_writer_table),
        cmocka_unit_test(test_writer_adds_from),
        cmocka_unit_test(test_writer_folds_long_lines),
        cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_writer_message_ids_differ),
        cmocka_unit_test(test_reader_to_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
