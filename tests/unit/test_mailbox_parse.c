/*
 * test_mailbox_parse.c - the pure parts of lib/mailbox: the IMAP response parser against
 * RFC 9051's examples (greeting, tagged, CAPABILITY, LIST, SEARCH, FETCH with literals,
 * response codes such as [APPENDUID]), its refusals (bare LF, NUL, bad escapes, unbalanced
 * lists, bad tags), split input (NEED_MORE at every cut); modified UTF-7 (RFC 3501 5.1.3's
 * example and QQ's Sent folder "已发送"); POP3 status, STAT and UIDL lines (RFC 1939).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mailbox/imap_parse.h"
#include "mailbox/mutf7.h"
#include "mailbox/pop3_parse.h"
#include "pigeon/mailbox.h"

static pg_imap_tok toks[256];

static pg_imap_result parse(const char *s, size_t len, pg_imap_resp *r, size_t *used)
{
    return pg_imap_parse(s, len, r, toks, sizeof toks / sizeof toks[0], used);
}

static pg_imap_result parse_str(const char *s, pg_imap_resp *r)
{
    size_t used = 0;
    pg_imap_result res = parse(s, strlen(s), r, &used);
    if (res == PG_IMAP_DONE)
        assert_int_equal(used, strlen(s));
    return res;
}

static void assert_span(const char *p, size_t n, const char *want)
{
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
}

static void test_greeting_and_tagged(void **state)
{
    (void)state;
    pg_imap_resp r;
    assert_int_equal(parse_str("* OK [CAPABILITY IMAP4rev2 STARTTLS AUTH=PLAIN] ready\r\n", &r),
                     PG_IMAP_DONE);
    assert_int_equal(r.kind, PG_IMAP_UNTAGGED);
    assert_int_equal(r.status, PG_IMAP_ST_OK);
    assert_span(r.code, r.code_len, "CAPABILITY");
    assert_span(r.code_arg, r.code_arg_len, "IMAP4rev2 STARTTLS AUTH=PLAIN");
    assert_span(r.text, r.text_len, "ready");

    /* RFC 4315 3: APPENDUID in a tagged OK. */
    assert_int_equal(parse_str("A003 OK [APPENDUID 38505 3955] APPEND completed\r\n", &r),
                     PG_IMAP_DONE);
    assert_int_equal(r.kind, PG_IMAP_TAGGED);
    assert_span(r.tag, r.tag_len, "A003");
    assert_span(r.code, r.code_len, "APPENDUID");
    assert_span(r.code_arg, r.code_arg_len, "38505 3955");

    assert_int_equal(parse_str("a2 NO [TRYCREATE] no such mailbox\r\n", &r), PG_IMAP_DONE);
    assert_int_equal(r.status, PG_IMAP_ST_NO);
    assert_span(r.code, r.code_len, "TRYCREATE");
    assert_null(r.code_arg);

    assert_int_equal(parse_str("* BYE Autologout; idle for too long\r\n", &r), PG_IMAP_DONE);
    assert_int_equal(r.status, PG_IMAP_ST_BYE);
    assert_int_equal(parse_str("+ idling\r\n", &r), PG_IMAP_DONE);
    assert_int_equal(r.kind, PG_IMAP_CONTINUE);
    assert_int_equal(parse_str("+\r\n", &r), PG_IMAP_DONE);
    /* A code with a quoted ']' inside and an 8-bit text (QQ answers in Chinese). */
    assert_int_equal(parse_str("* NO [ALERT \"a]b\"] 密码错误\r\n", &r), PG_IMAP_DONE);
    assert_span(r.code_arg, r.code_arg_len, "\"a]b\"");
}

static void test_data_responses(void **state)
{
    (void)state;
    pg_imap_resp r;
    pg_buf b;
    assert_int_equal(parse_str("* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent \\\"x\\\"\"\r\n", &r),
                     PG_IMAP_DONE);
    assert_span(r.keyword, r.keyword_len, "LIST");
    assert_int_equal(r.ntoks, 6);
    assert_int_equal(r.toks[0].type, PG_IMAP_TOK_OPEN);
    assert_true(pg_imap_tok_is(&r.toks[2], "\\sent"));
    assert_int_equal(r.toks[2].depth, 1);
    assert_int_equal(r.toks[3].type, PG_IMAP_TOK_CLOSE);
    pg_buf_init(&b);
    pg_imap_tok_copy(&r.toks[5], &b);
    assert_string_equal(b.data, "Sent \"x\"");
    pg_buf_cleanup(&b);

    assert_int_equal(parse_str("* LIST () NIL {8}\r\nIN\"BOX\\x\r\n", &r), PG_IMAP_DONE);
    assert_int_equal(r.toks[2].type, PG_IMAP_TOK_NIL);
    assert_int_equal(r.toks[3].type, PG_IMAP_TOK_LITERAL);
    assert_span(r.toks[3].p, r.toks[3].n, "IN\"BOX\\x");

    assert_int_equal(parse_str("* SEARCH 2 84 882\r\n", &r), PG_IMAP_DONE);
    assert_int_equal(r.ntoks, 3);
    assert_int_equal(r.toks[2].type, PG_IMAP_TOK_NUMBER);
    assert_int_equal(r.toks[2].num, 882);
    assert_int_equal(parse_str("* SEARCH\r\n", &r), PG_IMAP_DONE);
    assert_int_equal(r.ntoks, 0);

    assert_int_equal(parse_str("* 23 EXISTS\r\n", &r), PG_IMAP_DONE);
    assert_true(r.has_number);
    assert_int_equal(r.number, 23);

    /* A FETCH with a section atom and a literal holding CRLF and a NUL-free body. */
    const char *f = "* 12 FETCH (UID 7 FLAGS (\\Seen) BODY[HEADER.FIELDS (DATE)]<0> {5}\r\n"
                    "a\r\nb\r BODY[] {0}\r\n)\r\n";
    assert_int_equal(parse_str(f, &r), PG_IMAP_DONE);
    assert_span(r.keyword, r.keyword_len, "FETCH");
    assert_int_equal(r.number, 12);
    assert_true(pg_imap_tok_is(&r.toks[7], "BODY[HEADER.FIELDS (DATE)]<0>"));
    assert_int_equal(r.toks[8].type, PG_IMAP_TOK_LITERAL);
    assert_span(r.toks[8].p, r.toks[8].n, "a\r\nb\r");
    assert_true(pg_imap_tok_is(&r.toks[9], "BODY[]"));
    assert_int_equal(r.toks[10].n, 0);
}

static void test_refusals(void **state)
{
    (void)state;
    pg_imap_resp r;
    static const char *const bad[] = {
        "* OK hello\n",                      /* bare LF */
        "* OK he\0llo\r\n",                  /* NUL in text (strlen stops: see below) */
        "* LIST (\\A \"x\\y\" \r\n",         /* bad escape */
        "* LIST ((a)\r\n",                   /* unbalanced */
        "* LIST a)\r\n",                     /* ')' without '(' */
        "A1 FOO done\r\n",                   /* tagged must be OK/NO/BAD */
        "A+1 OK x\r\n",                      /* '+' in a tag */
        "* LIST {x}\r\n",                    /* literal without size */
        "* LIST {99999999999999999999}\r\n", /* literal too large */
        "*X\r\n",                            /* no space after '*' */
        "* 4294967296 EXISTS\r\n",           /* number over 32 bits */
        "* LIST \"a\"\"b\"\r\n",             /* no space between tokens */
        "* OK [ALERT\r\n",                   /* code not closed */
        "* LIST \"a\rb\"\r\n",               /* CR inside a quoted string */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (i == 1)
            continue;
        size_t used = 0;
        pg_imap_result res = parse(bad[i], strlen(bad[i]), &r, &used);
        if (res != PG_IMAP_ERROR)
            fail_msg("accepted bad response %zu: %s", i, bad[i]);
        assert_non_null(r.why);
    }
    size_t used = 0;
    assert_int_equal(parse("* OK he\0llo\r\n", 13, &r, &used), PG_IMAP_ERROR);
    /* Deep nesting is bounded. */
    char deep[200];
    size_t n = 0;
    memcpy(deep, "* X ", 4);
    n = 4;
    for (int i = 0; i < PG_IMAP_DEPTH_MAX + 1; i++)
        deep[n++] = '(';
    memcpy(deep + n, "\r\n", 2);
    assert_int_equal(parse(deep, n + 2, &r, &used), PG_IMAP_ERROR);
    /* The token array bound is an error, not an overflow. */
    assert_int_equal(pg_imap_parse("* SEARCH 1 2 3\r\n", 16, &r, toks, 2, &used), PG_IMAP_ERROR);
}

/* Every proper prefix of a valid response needs more; the whole parses. */
static void test_need_more_at_every_cut(void **state)
{
    (void)state;
    static const char *const good[] = {
        "* 1 FETCH (UID 5 BODY[] {10}\r\nhello\r\nyou)\r\n",
        "A7 OK [APPENDUID 1 2] done\r\n",
        "* LIST (\\Noselect) \"/\" \"a\\\\b\"\r\n",
        "+ go ahead\r\n",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        size_t len = strlen(good[i]), used = 0;
        pg_imap_resp r;
        for (size_t cut = 0; cut < len; cut++)
            if (parse(good[i], cut, &r, &used) != PG_IMAP_NEED_MORE)
                fail_msg("response %zu cut at %zu did not need more", i, cut);
        assert_int_equal(parse(good[i], len, &r, &used), PG_IMAP_DONE);
        assert_int_equal(used, len);
    }
}

static void test_line_literal(void **state)
{
    (void)state;
    uint64_t n = 0;
    assert_true(pg_imap_line_literal("* 1 FETCH (BODY[] {123}\r\n", 25, &n));
    assert_int_equal(n, 123);
    assert_true(pg_imap_line_literal("A1 LOGIN {5+}\r\n", 15, &n));
    assert_int_equal(n, 5);
    assert_false(pg_imap_line_literal("* OK x}\r\n", 9, &n));
    assert_false(pg_imap_line_literal("* OK {}\r\n", 9, &n));
}

static void check_mutf7(const char *utf8, const char *mutf7)
{
    pg_buf b;
    pg_buf_init(&b);
    assert_int_equal(pg_mutf7_encode(&b, utf8, strlen(utf8)), PIGEON_OK);
    assert_string_equal(b.data != NULL ? b.data : "", mutf7);
    pg_buf_reset(&b);
    assert_int_equal(pg_mutf7_decode(&b, mutf7, strlen(mutf7)), PIGEON_OK);
    assert_string_equal(b.data != NULL ? b.data : "", utf8);
    pg_buf_cleanup(&b);
}

static void test_mutf7(void **state)
{
    (void)state;
    /* RFC 3501 5.1.3's example: "~peter/mail/台北/日本語". */
    check_mutf7("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
    check_mutf7("已发送", "&XfJT0ZAB-");
    check_mutf7("Sent Messages", "Sent Messages");
    check_mutf7("A&B", "A&-B");
    check_mutf7("", "");
    check_mutf7("\xf0\x9f\x93\xa7 mail", "&2D3c5w- mail"); /* a surrogate pair */
    pg_buf b;
    pg_buf_init(&b);
    static const char *const bad[] = {"&Jjo",  "&Jjo!-", "&AGE-", "&Jjo-&Jjo-",
                                      "a\x80", "&2D3-",  "&-&",   "&3-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pg_buf_reset(&b);
        if (pg_mutf7_decode(&b, bad[i], strlen(bad[i])) == PIGEON_OK)
            fail_msg("decoded bad modified UTF-7 %s", bad[i]);
    }
    pg_buf_reset(&b);
    assert_int_equal(pg_mutf7_encode(&b, "a\r\nb", 4), PIGEON_ERR_HEADER);
    assert_int_equal(pg_mutf7_encode(&b, "\xc3", 1), PIGEON_ERR_CHARSET);
    pg_buf_cleanup(&b);
}

static void test_pop3_lines(void **state)
{
    (void)state;
    pg_pop3_status st;
    assert_int_equal(pg_pop3_parse_status("+OK 2 320\r\n", 11, &st), 0);
    assert_true(st.ok);
    assert_int_equal(st.text_len, 5);
    assert_int_equal(pg_pop3_parse_status("+OK\r\n", 5, &st), 0);
    assert_int_equal(pg_pop3_parse_status("-ERR [IN-USE] locked\r\n", 22, &st), 0);
    assert_false(st.ok);
    assert_true(st.temporary);
    assert_int_equal(pg_pop3_parse_status("-ERR [AUTH] bad\r\n", 17, &st), 0);
    assert_false(st.temporary);
    assert_int_equal(pg_pop3_parse_status("+OKAY\r\n", 7, &st), -1);
    assert_int_equal(pg_pop3_parse_status("+OK\n", 4, &st), -1);
    assert_int_equal(pg_pop3_parse_status("* OK\r\n", 6, &st), -1);
    unsigned long long c = 0, s = 0;
    assert_int_equal(pg_pop3_parse_stat("2 320\r\n", &c, &s), 0);
    assert_int_equal(c, 2);
    assert_int_equal(s, 320);
    assert_int_equal(pg_pop3_parse_stat("x 320", &c, &s), -1);
    unsigned num = 0;
    char uid[71];
    assert_int_equal(
        pg_pop3_parse_uidl("1 whqtswO00WBw418f9t5JxYwZ\r\n", 28, &num, uid, sizeof uid), 0);
    assert_int_equal(num, 1);
    assert_string_equal(uid, "whqtswO00WBw418f9t5JxYwZ");
    assert_int_equal(pg_pop3_parse_uidl("0 x\r\n", 5, &num, uid, sizeof uid), -1);
    assert_int_equal(pg_pop3_parse_uidl("1 a b\r\n", 7, &num, uid, sizeof uid), -1);
    assert_true(pg_pop3_is_terminator(".\r\n", 3));
    assert_false(pg_pop3_is_terminator("..\r\n", 4));
}

/* The providers' mailbox servers (pigeon/mailbox.h presets). */
static void test_presets(void **state)
{
    (void)state;
    const pigeon_store_preset *p = pigeon_store_preset_lookup("QQ");
    assert_non_null(p);
    assert_string_equal(p->imap_host, "imap.qq.com");
    assert_int_equal(p->imap_port, 993);
    assert_string_equal(p->pop3_host, "pop.qq.com");
    assert_int_equal(p->pop3_port, 995);
    p = pigeon_store_preset_lookup("qq-exmail");
    assert_string_equal(p->imap_host, "imap.exmail.qq.com");
    assert_string_equal(pigeon_store_preset_lookup("163")->pop3_host, "pop.163.com");
    assert_string_equal(pigeon_store_preset_lookup("outlook")->imap_host, "outlook.office365.com");
    assert_null(pigeon_store_preset_lookup("icloud")->pop3_host);
    assert_null(pigeon_store_preset_lookup("sendgrid"));
    assert_null(pigeon_store_preset_lookup(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting_and_tagged),
        cmocka_unit_test(test_data_responses),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_need_more_at_every_cut),
        cmocka_unit_test(test_line_literal),
        cmocka_unit_test(test_mutf7),
        cmocka_unit_test(test_pop3_lines),
        cmocka_unit_test(test_presets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
