/*
 * test_address.c - RFC 5322 address parsing, RFC 5321 limits, IDNA, addr-spec quoting and
 * the header writers (parse -> format -> parse gives the same mailboxes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "address/address_int.h"
#include "util/buf.h"
#include "pigeon/address.h"

/* One expected mailbox; NULL display_name / group mean "none". domain_ascii NULL means
 * "same as domain". */
struct exp_mailbox {
    const char *display_name; /* expected decoded display name, or NULL */
    const char *local;        /* expected unquoted local part */
    const char *domain;       /* expected U-label domain */
    const char *domain_ascii; /* expected A-label domain, NULL when equal to domain */
    const char *group;        /* expected group name, or NULL */
};

/* A valid input and everything the parser must extract from it. */
struct valid_case {
    const char *in;           /* what the user typed */
    size_t count;             /* number of mailboxes */
    struct exp_mailbox mb[3]; /* the first count mailboxes */
    const char *empty_group;  /* the one empty group expected, or NULL */
};

static const struct valid_case valid_cases[] = {
    /* Plain forms. */
    {"a@b.cn", 1, {{NULL, "a", "b.cn", NULL, NULL}}, NULL},
    {"<a@b.cn>", 1, {{NULL, "a", "b.cn", NULL, NULL}}, NULL},
    {"  < a@b.cn >  ", 1, {{NULL, "a", "b.cn", NULL, NULL}}, NULL},
    {"\"Zhang, San\" <a@b.cn>", 1, {{"Zhang, San", "a", "b.cn", NULL, NULL}}, NULL},
    {"张三 <a@qq.com>", 1, {{"张三", "a", "qq.com", NULL, NULL}}, NULL},
    {"Zhang San <zhang.san@Example.COM>",
     1,
     {{"Zhang San", "zhang.san", "example.com", NULL, NULL}},
     NULL},
    {"John Q. Public <jqp@x.org>", 1, {{"John Q. Public", "jqp", "x.org", NULL, NULL}}, NULL},
    {"O'Brien <ob@x.ie>", 1, {{"O'Brien", "ob", "x.ie", NULL, NULL}}, NULL},
    {"\"\" <a@b.cn>", 1, {{NULL, "a", "b.cn", NULL, NULL}}, NULL},
    {"\"  spaced   out \" <a@b.cn>", 1, {{"spaced out", "a", "b.cn", NULL, NULL}}, NULL},
    {"\"a\\\"b\\\\c\" <a@b.cn>", 1, {{"a\"b\\c", "a", "b.cn", NULL, NULL}}, NULL},
    {"\"x@y\" <ok@z.org>", 1, {{"x@y", "ok", "z.org", NULL, NULL}}, NULL},
    {"山田 太郎 <taro@example.jp>", 1, {{"山田 太郎", "taro", "example.jp", NULL, NULL}}, NULL},
    {"Café 😀 <c@x.fr>", 1, {{"Café 😀", "c", "x.fr", NULL, NULL}}, NULL},
    /* Comments are dropped and never supply a name. */
    {"a@b.cn (Zhang San)", 1, {{NULL, "a", "b.cn", NULL, NULL}}, NULL},
    {"(boss) Zhang (the (nested) one) <a@b.cn> (x)", 1, {{"Zhang", "a", "b.cn", NULL, NULL}}, NULL},
    {"(c) a@b.cn", 1, {{NULL, "a", "b.cn", NULL, NULL}}, NULL},
    {"a@b.cn (a \\) b)", 1, {{NULL, "a", "b.cn", NULL, NULL}}, NULL},
    /* RFC 2047 encoded-words typed by users. */
    {"=?UTF-8?B?5byg5LiJ?= <a@qq.com>", 1, {{"张三", "a", "qq.com", NULL, NULL}}, NULL},
    {"=?utf-8?b?5byg?= =?utf-8?b?5LiJ?= <a@qq.com>",
     1,
     {{"张三", "a", "qq.com", NULL, NULL}},
     NULL},
    {"Mr =?UTF-8?Q?Andr=C3=A9?= <a@x.fr>", 1, {{"Mr André", "a", "x.fr", NULL, NULL}}, NULL},
    /* ... but not inside quoted-strings (RFC 2047 5(3)). */
    {"\"=?UTF-8?B?5byg5LiJ?=\" <a@qq.com>",
     1,
     {{"=?UTF-8?B?5byg5LiJ?=", "a", "qq.com", NULL, NULL}},
     NULL},
    /* Quoted local parts: kept unquoted, exactly. */
    {"\"john doe\"@example.com", 1, {{NULL, "john doe", "example.com", NULL, NULL}}, NULL},
    {"\"a@evil x\"@ok.com", 1, {{NULL, "a@evil x", "ok.com", NULL, NULL}}, NULL},
    {"\"john\"@example.com", 1, {{NULL, "john", "example.com", NULL, NULL}}, NULL},
    {"\"a..b\"@c.de", 1, {{NULL, "a..b", "c.de", NULL, NULL}}, NULL},
    {"<\"a\\\\b\"@c.de>", 1, {{NULL, "a\\b", "c.de", NULL, NULL}}, NULL},
    {"first.last+tag@sub.example.org",
     1,
     {{NULL, "first.last+tag", "sub.example.org", NULL, NULL}},
     NULL},
    {"!#$%&'*+-/=?^_`{|}~@x.org", 1, {{NULL, "!#$%&'*+-/=?^_`{|}~", "x.org", NULL, NULL}}, NULL},
    /* Domains: case, IDNA2008, literals, single label. */
    {"a@EXAMPLE.Com", 1, {{NULL, "a", "example.com", NULL, NULL}}, NULL},
    {"a@localhost", 1, {{NULL, "a", "localhost", NULL, NULL}}, NULL},
    {"a@bücher.example", 1, {{NULL, "a", "bücher.example", "xn--bcher-kva.example", NULL}}, NULL},
    {"a@BÜCHER.example", 1, {{NULL, "a", "bücher.example", "xn--bcher-kva.example", NULL}}, NULL},
    {"a@XN--BCHER-KVA.example",
     1,
     {{NULL, "a", "bücher.example", "xn--bcher-kva.example", NULL}},
     NULL},
    {"用户@例子.广告", 1, {{NULL, "用户", "例子.广告", "xn--fsqu00a.xn--4rr70v", NULL}}, NULL},
    {"用户@例子。广告", 1, {{NULL, "用户", "例子.广告", "xn--fsqu00a.xn--4rr70v", NULL}}, NULL},
    {"a@faß.de", 1, {{NULL, "a", "faß.de", "xn--fa-hia.de", NULL}}, NULL},
    {"a@[127.0.0.1]", 1, {{NULL, "a", "[127.0.0.1]", NULL, NULL}}, NULL},
    {"a@[IPv6:::1]", 1, {{NULL, "a", "[IPv6:::1]", NULL, NULL}}, NULL},
    {"a@[ipv6:FE80::1]", 1, {{NULL, "a", "[IPv6:fe80::1]", NULL, NULL}}, NULL},
    {"a@ab--cd.com", 1, {{NULL, "a", "ab--cd.com", NULL, NULL}}, NULL},
    /* Lists, groups, empty elements. */
    {"a@x.cn, \"B\" <b@y.cn>",
     2,
     {{NULL, "a", "x.cn", NULL, NULL}, {"B", "b", "y.cn", NULL, NULL}},
     NULL},
    {"a@b.cn, ", 1, {{NULL, "a", "b.cn", NULL, NULL}}, NULL},
    {", a@b.cn,, b@c.cn,",
     2,
     {{NULL, "a", "b.cn", NULL, NULL}, {NULL, "b", "c.cn", NULL, NULL}},
     NULL},
    {"Team: a@x.cn, \"B\" <b@y.cn>;",
     2,
     {{NULL, "a", "x.cn", NULL, "Team"}, {"B", "b", "y.cn", NULL, "Team"}},
     NULL},
    {"undisclosed-recipients:;", 0, {{0}}, "undisclosed-recipients"},
    {"\"Ops; Team\" : ;", 0, {{0}}, "Ops; Team"},
    {"G: a@b.cn;, c@d.cn, H: ;",
     2,
     {{NULL, "a", "b.cn", NULL, "G"}, {NULL, "c", "d.cn", NULL, NULL}},
     "H"},
    {"项目组: 张三 <a@qq.com>, b@qq.com ;",
     2,
     {{"张三", "a", "qq.com", NULL, "项目组"}, {NULL, "b", "qq.com", NULL, "项目组"}},
     NULL},
};

static void expect_field(const char *what, const char *in, const char *want, const char *got)
{
    if ((want == NULL) != (got == NULL) || (want != NULL && strcmp(want, got) != 0)) {
        print_error("%s of \"%s\": want \"%s\", got \"%s\"\n", what, in, want ? want : "(null)",
                    got ? got : "(null)");
        fail();
    }
}

static void check_valid(const struct valid_case *c, const pigeon_address_list *l)
{
    if (l->count != c->count)
        print_error("count for \"%s\": %zu\n", c->in, l->count);
    assert_int_equal(l->count, c->count);
    for (size_t i = 0; i < c->count; i++) {
        const struct exp_mailbox *e = &c->mb[i];
        expect_field("display_name", c->in, e->display_name, l->items[i].display_name);
        expect_field("local", c->in, e->local, l->items[i].local);
        expect_field("domain", c->in, e->domain, l->items[i].domain);
        expect_field("domain_ascii", c->in, e->domain_ascii ? e->domain_ascii : e->domain,
                     l->items[i].domain_ascii);
        expect_field("group", c->in, e->group, l->items[i].group);
    }
    assert_int_equal(l->empty_group_count, c->empty_group ? 1 : 0);
    if (c->empty_group)
        expect_field("empty group", c->in, c->empty_group, l->empty_groups[0]);
}

static void test_valid_lists(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        pigeon_address_list l;
        char err[256];
        pigeon_err rc = pigeon_address_list_parse(valid_cases[i].in, &l, err, sizeof err);
        if (rc != PIGEON_OK)
            print_error("\"%s\" refused: %s\n", valid_cases[i].in, err);
        assert_int_equal(rc, PIGEON_OK);
        check_valid(&valid_cases[i], &l);
        pigeon_address_list_cleanup(&l);
    }
}

/* An invalid input and a piece of the reason the message must give. */
struct invalid_case {
    const char *in;     /* what the user typed */
    const char *reason; /* substring of the error message */
};

static const struct invalid_case invalid_cases[] = {
    {"a@b@c", "unexpected '@' in domain"},
    {"a@b.c <d@e.f>", "'@' before '<'"},
    {"<a@b.c> junk", "unexpected 'j' after the address"},
    {"a b@c.d", "space or comment before '@'"},
    {"a (x) @c.d", "space or comment before '@'"},
    {"a@ c.d", "space or comment after '@'"},
    {"@b.c", "empty local part"},
    {"\"\"@b.c", "empty quoted local part"},
    {".a@b.c", "starts with '.'"},
    {"a.@b.c", "ends with '.'"},
    {"a..b@c.d", "\"..\" in local part"},
    {"\"a\".b@c.d", "quoted and unquoted"},
    {"a.\"b\"@c.d", "quoted and unquoted"},
    {"\"abc@d.e", "unbalanced '\"'"},
    {"\"Zhang, San <a@b.cn>", "unbalanced '\"'"},
    {"<a@b.c", "unbalanced '<'"},
    {"Name <a@b.c", "unbalanced '<'"},
    {"a@b.c>", "unexpected '>'"},
    {"Name a@b.c>", "space or comment before '@'"},
    {"(comment a@b.c", "unbalanced '('"},
    {"a@b.c (x", "unbalanced '('"},
    {"a@b.c)", "unexpected ')'"},
    {"a@[1.2.3.4", "unbalanced '['"},
    {"\"a\\", "backslash at end of input"},
    {"a@b.c (x\\", "backslash at end of input"},
    {"a\\b@c.d", "unexpected '\\'"},
    {"", "no address given"},
    {"   ", "no address given"},
    {", ,", "no address given"},
    {"(just a comment)", "no address given"},
    {"Zhang San", "missing '@'"},
    {"Smith, John <a@b.c>", "missing '@'"},
    {"a@", "missing domain"},
    {"<a>", "missing '@domain'"},
    {"<>", "empty address"},
    {"<@relay.org:a@b.c>", "source routes"},
    {"a@b.c.", "domain ends with '.'"},
    {"a@.b.c", "empty label"},
    {"a@b..c", "empty label"},
    {"a@-b.c", "starts or ends with '-'"},
    {"a@b-.c", "starts or ends with '-'"},
    {"a@b_c.d", "'_' is not allowed"},
    {"a@b!c.d", "'!' is not allowed"},
    {"a@😀.com", "invalid international domain"},
    {"a@xn--zz.com", "invalid international domain"},
    {"a@xn--abc.com", "invalid international domain"},
    {"a@xn--cnk.com", "A-label of a disallowed name"},
    {"a@[1.2.3]", "address literal"},
    {"a@[IPv6:1::2::3]", "invalid IPv6"},
    {"a@[x:y]", "address literal"},
    {"a@[1.2.3.4 ]", "in address literal"},
    {"a@b.c\r\nBcc: victim@x.org", "control character 0x0D"},
    {"a@b.c\nx", "control character 0x0A"},
    {"a@b.c\tx", "control character 0x09"},
    {"\"a\x01\"@b.c", "control character 0x01"},
    {"a\x7f@b.c", "control character 0x7F"},
    {"a@b.c\xff", "invalid UTF-8"},
    {"\xc0\xaf@b.c", "invalid UTF-8"},
    {"\xed\xa0\x80@b.c", "invalid UTF-8"},
    {"G: a@b.c", "not closed with ';'"},
    {"G: H: a@b.c;;", "cannot contain another group"},
    {": a@b.c;", "group without a name"},
    {"G: a@b.c; x", "after the group's ';'"},
    {"a@b.c; d@e.f", "unexpected ';'"},
    {"=?UTF-8?B?QQ0KQg==?= <a@b.c>", "control character"},
    {"Name [x] <a@b.c>", "unexpected '['"},
};

static void test_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++) {
        pigeon_address_list l;
        char err[256];
        pigeon_err rc = pigeon_address_list_parse(invalid_cases[i].in, &l, err, sizeof err);
        if (rc != PIGEON_ERR_ADDRESS || strstr(err, invalid_cases[i].reason) == NULL)
            print_error("\"%s\": rc %d, message \"%s\", want \"%s\"\n", invalid_cases[i].in,
                        (int)rc, err, invalid_cases[i].reason);
        assert_int_equal(rc, PIGEON_ERR_ADDRESS);
        assert_non_null(strstr(err, invalid_cases[i].reason));
        /* One line the user can read: the prefix, no control characters. */
        assert_int_equal(strncmp(err, "invalid address \"", 17), 0);
        for (const char *s = err; *s; s++)
            assert_true((unsigned char)*s >= 0x20 && *s != 0x7F);
        /* A failed parse leaves nothing to free. */
        assert_null(l.items);
        assert_int_equal(l.count, 0);
    }
}

static void test_error_message_exact(void **state)
{
    (void)state;
    pigeon_address_list l;
    char err[256];
    assert_int_equal(pigeon_address_list_parse("ok@x.org, a@b@c", &l, err, sizeof err),
                     PIGEON_ERR_ADDRESS);
    assert_string_equal(err, "invalid address \"a@b@c\": unexpected '@' in domain");
    /* A small buffer is truncated, still NUL-terminated; NULL is accepted. */
    char small[12];
    assert_int_equal(pigeon_address_list_parse("a@b@c", &l, small, sizeof small),
                     PIGEON_ERR_ADDRESS);
    assert_string_equal(small, "invalid add");
    assert_int_equal(pigeon_address_list_parse("a@b@c", &l, NULL, 0), PIGEON_ERR_ADDRESS);
    /* Long inputs are quoted shortened. */
    char in[400];
    memset(in, 'x', 300);
    memcpy(in + 300, "@@", 3);
    assert_int_equal(pigeon_address_list_parse(in, &l, err, sizeof err), PIGEON_ERR_ADDRESS);
    assert_non_null(strstr(err, "...\": "));
    assert_true(strlen(err) < 200);
}

/* Builds a string of n copies of c. */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* A domain of exactly n octets made of 63-octet labels ("aaa...a.bbb..."). */
static char *domain_of(size_t n)
{
    char *s = repeat('a', n);
    for (size_t i = 63; i < n; i += 64)
        s[i] = '.';
    if (s[n - 1] == '.') { /* no trailing dot: move the last dot one place left */
        s[n - 2] = '.';
        s[n - 1] = 'b';
    }
    return s;
}

static pigeon_err parse_parts(const char *local, const char *domain, char *err, size_t errlen)
{
    char in[1024];
    snprintf(in, sizeof in, "%s@%s", local, domain);
    pigeon_mailbox mb;
    pigeon_err rc = pigeon_mailbox_parse(in, &mb, err, errlen);
    pigeon_mailbox_cleanup(&mb);
    return rc;
}

static void test_length_limits(void **state)
{
    (void)state;
    char err[256];
    char *l64 = repeat('l', 64), *l65 = repeat('l', 65);
    /* Local part: 64 octets, measured as it goes on the wire (quotes count). */
    assert_int_equal(parse_parts(l64, "x.org", err, sizeof err), PIGEON_OK);
    assert_int_equal(parse_parts(l65, "x.org", err, sizeof err), PIGEON_ERR_ADDRESS);
    assert_non_null(strstr(err, "local part is 65 octets, the limit is 64"));
    char quoted[80];
    snprintf(quoted, sizeof quoted, "\"%.62s\"", l64);
    assert_int_equal(parse_parts(quoted, "x.org", err, sizeof err), PIGEON_OK);
    snprintf(quoted, sizeof quoted, "\" %.62s\"", l64);
    assert_int_equal(parse_parts(quoted, "x.org", err, sizeof err), PIGEON_ERR_ADDRESS);
    /* Path: local@domain within 254 octets. */
    char *d252 = domain_of(252), *d253 = domain_of(253);
    assert_int_equal(strlen(d252), 252);
    assert_int_equal(parse_parts("a", d252, err, sizeof err), PIGEON_OK);
    assert_int_equal(parse_parts("a", d253, err, sizeof err), PIGEON_ERR_ADDRESS);
    assert_non_null(strstr(err, "address is 255 octets, the limit is 254"));
    assert_int_equal(parse_parts("ab", d252, err, sizeof err), PIGEON_ERR_ADDRESS);
    /* Domain: 255 octets is the largest domain, already over the path limit; 256 is over
     * the domain limit itself. */
    char *d255 = domain_of(255), *d256 = domain_of(256);
    assert_int_equal(parse_parts("a", d255, err, sizeof err), PIGEON_ERR_ADDRESS);
    assert_non_null(strstr(err, "address is 257 octets"));
    assert_int_equal(parse_parts("a", d256, err, sizeof err), PIGEON_ERR_ADDRESS);
    assert_non_null(strstr(err, "domain is 256 octets, the limit is 255"));
    /* Labels: 63 octets, not 64. */
    char *lab63 = repeat('d', 63), *lab64 = repeat('d', 64);
    assert_int_equal(parse_parts("a", lab63, err, sizeof err), PIGEON_OK);
    assert_int_equal(parse_parts("a", lab64, err, sizeof err), PIGEON_ERR_ADDRESS);
    assert_non_null(strstr(err, "longer than 63"));
    free(l64), free(l65), free(d252), free(d253), free(d255), free(d256);
    free(lab63), free(lab64);
}

static void test_mailbox_parse(void **state)
{
    (void)state;
    pigeon_mailbox mb;
    char err[256];
    assert_int_equal(pigeon_mailbox_parse("\"Zhang, San\" <a@b.cn>", &mb, err, sizeof err),
                     PIGEON_OK);
    assert_string_equal(mb.display_name, "Zhang, San");
    assert_string_equal(mb.local, "a");
    assert_null(mb.group);
    pigeon_mailbox copy;
    assert_int_equal(pigeon_mailbox_copy(&copy, &mb), PIGEON_OK);
    assert_string_equal(copy.display_name, "Zhang, San");
    assert_ptr_not_equal(copy.local, mb.local);
    pigeon_mailbox_cleanup(&copy);
    pigeon_mailbox_cleanup(&mb);
    assert_null(mb.local);
    pigeon_mailbox_cleanup(NULL);

    static const char *const not_one[] = {
        "a@b.cn, c@d.cn", "a@b.cn,", ", a@b.cn", "G: a@b.cn;", "undisclosed-recipients:;", ""};
    for (size_t i = 0; i < sizeof not_one / sizeof not_one[0]; i++) {
        assert_int_equal(pigeon_mailbox_parse(not_one[i], &mb, err, sizeof err),
                         PIGEON_ERR_ADDRESS);
        assert_null(mb.local);
    }
}

/* Input, addr-spec without SMTPUTF8 (NULL: refused), addr-spec with it. */
static const struct {
    const char *in;
    const char *ascii;
    const char *utf8;
} addr_spec_cases[] = {
    {"Name <a.b@c.de>", "a.b@c.de", "a.b@c.de"},
    {"\"john doe\"@example.com", "\"john doe\"@example.com", "\"john doe\"@example.com"},
    {"\"john\"@example.com", "john@example.com", "john@example.com"},
    {"\"a@evil x\"@ok.com", "\"a@evil x\"@ok.com", "\"a@evil x\"@ok.com"},
    {"\"a\\\"b\\\\c\"@x.org", "\"a\\\"b\\\\c\"@x.org", "\"a\\\"b\\\\c\"@x.org"},
    {"\"a\\b\"@x.org", "ab@x.org", "ab@x.org"},
    {"\"a..b\"@x.org", "\"a..b\"@x.org", "\"a..b\"@x.org"},
    {"\".a\"@x.org", "\".a\"@x.org", "\".a\"@x.org"},
    {"\"a,b\"@x.org", "\"a,b\"@x.org", "\"a,b\"@x.org"},
    {"a@bücher.example", "a@xn--bcher-kva.example", "a@bücher.example"},
    {"用户@例子.广告", NULL, "用户@例子.广告"},
    {"\"用 户\"@x.cn", NULL, "\"用 户\"@x.cn"},
    {"a@[IPv6:::1]", "a@[IPv6:::1]", "a@[IPv6:::1]"},
};

static void test_addr_spec(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof addr_spec_cases / sizeof addr_spec_cases[0]; i++) {
        pigeon_mailbox mb;
        char err[256];
        char *spec = NULL;
        assert_int_equal(pigeon_mailbox_parse(addr_spec_cases[i].in, &mb, err, sizeof err),
                         PIGEON_OK);
        pigeon_err rc = pigeon_mailbox_addr_spec(&mb, 0, &spec);
        if (addr_spec_cases[i].ascii == NULL) {
            assert_int_equal(rc, PIGEON_ERR_ADDRESS);
            assert_null(spec);
        } else {
            assert_int_equal(rc, PIGEON_OK);
            assert_string_equal(spec, addr_spec_cases[i].ascii);
        }
        free(spec);
        assert_int_equal(pigeon_mailbox_addr_spec(&mb, 1, &spec), PIGEON_OK);
        assert_string_equal(spec, addr_spec_cases[i].utf8);
        /* The addr-spec parses back to the same local part and domain. */
        pigeon_mailbox back;
        assert_int_equal(pigeon_mailbox_parse(spec, &back, err, sizeof err), PIGEON_OK);
        assert_string_equal(back.local, mb.local);
        assert_string_equal(back.domain_ascii, mb.domain_ascii);
        pigeon_mailbox_cleanup(&back);
        free(spec);
        pigeon_mailbox_cleanup(&mb);
    }
    /* A hand-built mailbox with a line break never becomes an addr-spec. */
    pigeon_mailbox bad = {.local = "a\r\nRCPT TO:<x@y>", .domain = "b.c", .domain_ascii = "b.c"};
    char *spec = NULL;
    assert_int_equal(pigeon_mailbox_addr_spec(&bad, 1, &spec), PIGEON_ERR_ADDRESS);
    bad.local = "a";
    bad.domain_ascii = "b.c>\r\nDATA";
    assert_int_equal(pigeon_mailbox_addr_spec(&bad, 0, &spec), PIGEON_ERR_ADDRESS);
    assert_null(spec);
}

static int mailbox_equal(const pigeon_mailbox *a, const pigeon_mailbox *b)
{
#define SAME(f) ((a->f == NULL && b->f == NULL) || (a->f && b->f && strcmp(a->f, b->f) == 0))
    return SAME(display_name) && SAME(local) && SAME(domain) && SAME(domain_ascii) && SAME(group);
#undef SAME
}

/* Formats a parsed list after "To: ", checks the lines, parses it back, compares. */
static void round_trip(const char *in, int utf8)
{
    pigeon_address_list l, back;
    char err[256];
    assert_int_equal(pigeon_address_list_parse(in, &l, err, sizeof err), PIGEON_OK);
    pg_buf out;
    pg_buf_init(&out);
    size_t col = 4;
    pigeon_err rc = pg_address_list_format(&out, &col, &l, utf8);
    if (rc != PIGEON_OK)
        print_error("format of \"%s\" failed: %d\n", in, (int)rc);
    assert_int_equal(rc, PIGEON_OK);
    /* Folds are CRLF + space; no line is over 78 unless one address alone is. */
    size_t line = 4;
    for (size_t i = 0; i < out.len; i++) {
        if (out.data[i] == '\r') {
            assert_int_equal(out.data[i + 1], '\n');
            assert_int_equal(out.data[i + 2], ' ');
            assert_true(line <= 78);
            line = 0;
            i++;
        } else {
            assert_true(out.data[i] != '\n' && out.data[i] != '\0');
            line++;
        }
    }
    assert_int_equal(line, col);
    assert_true(line <= 78);
    /* Unfold (RFC 5322 2.2.3) and parse again. */
    pg_buf unfolded;
    pg_buf_init(&unfolded);
    for (size_t i = 0; i < out.len; i++) {
        if (out.data[i] == '\r' && out.data[i + 1] == '\n')
            i++;
        else
            pg_buf_putc(&unfolded, out.data[i]);
    }
    rc = pigeon_address_list_parse(unfolded.data, &back, err, sizeof err);
    if (rc != PIGEON_OK)
        print_error("\"%s\" formatted as \"%s\" does not parse: %s\n", in, out.data, err);
    assert_int_equal(rc, PIGEON_OK);
    assert_int_equal(back.count, l.count);
    for (size_t i = 0; i < l.count; i++) {
        if (!mailbox_equal(&l.items[i], &back.items[i]))
            print_error("\"%s\" -> \"%s\": mailbox %zu differs\n", in, out.data, i);
        assert_true(mailbox_equal(&l.items[i], &back.items[i]));
    }
    assert_int_equal(back.empty_group_count, l.empty_group_count);
    for (size_t i = 0; i < l.empty_group_count; i++)
        assert_string_equal(back.empty_groups[i], l.empty_groups[i]);
    pigeon_address_list_cleanup(&back);
    pigeon_address_list_cleanup(&l);
    pg_buf_cleanup(&unfolded);
    pg_buf_cleanup(&out);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        round_trip(valid_cases[i].in, 1);
        if (strstr(valid_cases[i].in, "用户") == NULL)
            round_trip(valid_cases[i].in, 0);
    }
    static const char *const more[] = {
        "\"A very long display name that certainly does not fit\" <long.address@example.org>, "
        "b@c.de, \"Another, Person\" <another.person@example.org>",
        "张三李四王五赵六钱七孙八周九吴十郑十一王十二冯十三陈十四 <zhangsan@example.com>",
        "\"=?UTF-8?B?5byg5LiJ?= is literal\" <a@b.cn>",
        "\"back\\\\slash \\\"quote\\\"\" <a@b.cn>",
        "a@b.cn, c@d.cn, e@f.cn, g@h.cn, i@j.cn, k@l.cn, m@n.cn, o@p.cn, q@r.cn, s@t.cn, "
        "u@v.cn",
        "Team: a@x.cn, \"B\" <b@y.cn>;, \"Zhang, San\" <a@b.cn>, empty:;",
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        round_trip(more[i], 1);
        round_trip(more[i], 0);
    }
}

static char *format_list(const char *in, size_t col, int utf8)
{
    pigeon_address_list l;
    char err[256];
    assert_int_equal(pigeon_address_list_parse(in, &l, err, sizeof err), PIGEON_OK);
    pg_buf out;
    pg_buf_init(&out);
    assert_int_equal(pg_address_list_format(&out, &col, &l, utf8), PIGEON_OK);
    pigeon_address_list_cleanup(&l);
    return pg_buf_detach(&out, NULL);
}

static void test_format_exact(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int utf8;
        const char *out;
    } cases[] = {
        {"\"Zhang, San\" <a@b.cn>", 0, "\"Zhang, San\" <a@b.cn>"},
        {"Zhang San <a@b.cn>", 0, "Zhang San <a@b.cn>"},
        {"<a@b.cn>", 0, "a@b.cn"},
        {"a@b.cn,,c@d.cn", 0, "a@b.cn, c@d.cn"},
        {"Team: a@x.cn, B <b@y.cn>;", 0, "Team: a@x.cn, B <b@y.cn>;"},
        {"undisclosed-recipients:;", 0, "undisclosed-recipients:;"},
        {"a@bücher.example", 0, "a@xn--bcher-kva.example"},
        {"a@bücher.example", 1, "a@bücher.example"},
        {"\"a b\"@x.org", 0, "\"a b\"@x.org"},
        {"Someone With A Rather Long Name <someone.with.a.rather.long.name@example.org>", 0,
         "Someone With A Rather Long Name\r\n <someone.with.a.rather.long.name@example.org>"},
        {"aaaaaaaaaaaaaaaaaaaa@example.org, bbbbbbbbbbbbbbbbbbbb@example.org, c@example.org", 0,
         "aaaaaaaaaaaaaaaaaaaa@example.org, bbbbbbbbbbbbbbbbbbbb@example.org,\r\n c@example.org"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = format_list(cases[i].in, 4, cases[i].utf8);
        assert_string_equal(s, cases[i].out);
        free(s);
    }
    /* A non-ASCII local part needs SMTPUTF8. */
    pigeon_address_list l;
    char err[256];
    assert_int_equal(pigeon_address_list_parse("用户@例子.广告", &l, err, sizeof err), PIGEON_OK);
    pg_buf out;
    pg_buf_init(&out);
    size_t col = 4;
    assert_int_equal(pg_address_list_format(&out, &col, &l, 0), PIGEON_ERR_ADDRESS);
    pg_buf_cleanup(&out);
    pigeon_address_list_cleanup(&l);
}

static void test_append(void **state)
{
    (void)state;
    pigeon_address_list a, b;
    char err[256];
    assert_int_equal(pigeon_address_list_parse("a@x.cn, G: b@y.cn;", &a, err, sizeof err),
                     PIGEON_OK);
    assert_int_equal(pigeon_address_list_parse("c@z.cn, e:;, d@w.cn", &b, err, sizeof err),
                     PIGEON_OK);
    /* Append repeatedly so the arrays must grow past their first allocation. */
    for (int round = 0; round < 5; round++)
        assert_int_equal(pigeon_address_list_append(&a, &b), PIGEON_OK);
    assert_int_equal(a.count, 12);
    assert_int_equal(a.empty_group_count, 5);
    assert_string_equal(a.items[1].group, "G");
    assert_string_equal(a.items[11].local, "d");
    assert_string_equal(a.empty_groups[4], "e");
    assert_ptr_not_equal(a.items[2].local, b.items[0].local);
    pigeon_address_list_cleanup(&a);
    pigeon_address_list_cleanup(&b);
    pigeon_address_list_cleanup(NULL);
    /* Appending to a zeroed list. */
    pigeon_address_list empty = {0};
    assert_int_equal(pigeon_address_list_parse("x@y.cn", &b, err, sizeof err), PIGEON_OK);
    assert_int_equal(pigeon_address_list_append(&empty, &b), PIGEON_OK);
    assert_int_equal(empty.count, 1);
    pigeon_address_list_cleanup(&empty);
    pigeon_address_list_cleanup(&b);
}

static void test_many_recipients(void **state)
{
    (void)state;
    pg_buf in;
    pg_buf_init(&in);
    for (int i = 0; i < 1000; i++)
        pg_buf_printf(&in, "%s\"User %d\" <user%d@example.org>", i ? ", " : "", i, i);
    pigeon_address_list l;
    char err[256];
    assert_int_equal(pigeon_address_list_parse(in.data, &l, err, sizeof err), PIGEON_OK);
    assert_int_equal(l.count, 1000);
    assert_string_equal(l.items[999].local, "user999");
    assert_string_equal(l.items[999].display_name, "User 999");
    pigeon_address_list_cleanup(&l);
    pg_buf_cleanup(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_lists),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_error_message_exact),
        cmocka_unit_test(test_length_limits),
        cmocka_unit_test(test_mailbox_parse),
        cmocka_unit_test(test_addr_spec),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_format_exact),
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_many_recipients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
