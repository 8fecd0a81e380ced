/*
 * test_suppress.c - the suppression list: address normalization (domain case, IDN to
 * A-labels, local-part case folding by default and exact on request), the per-account and
 * global lists, the soft-bounce window (N within D days, events outside the window not
 * counted), remove, list filters, the CSV parser (RFC 4180 quoting, hostile lines) and an
 * export/import round trip through a second spool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "pigeon/suppress.h"

#define T0     1795000000000LL
#define DAY_MS (24LL * 3600 * 1000)

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/pigeon-suppress-test-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static pigeon_spool *open_spool(const char *name)
{
    char path[320], err[256];
    pigeon_spool *s = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (pigeon_spool_open(path, PIGEON_SPOOL_CREATE | PIGEON_SPOOL_NO_CHECK, &s, err, sizeof err) !=
        PIGEON_OK)
        fail_msg("open: %s", err);
    return s;
}

static void add(pigeon_spool *s, const char *account, const char *address,
                pigeon_suppress_reason reason, int64_t at)
{
    pigeon_suppress_entry e = {account, address, reason, "5.1.1", "no such user", NULL, at};
    pigeon_err err = pigeon_suppress_add(s, &e, NULL, NULL);
    if (err != PIGEON_OK)
        fail_msg("add %s: %s", address, pigeon_spool_error(s));
}

static pigeon_suppress_reason check(pigeon_spool *s, const char *account, const char *address,
                                    unsigned flags)
{
    pigeon_suppress_hit hit;
    pigeon_err err = pigeon_suppress_check(s, account, address, flags, &hit);
    if (err != PIGEON_OK)
        fail_msg("check %s: %s", address, pigeon_spool_error(s));
    return hit.reason;
}

static void test_normalize(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        unsigned flags;
        const char *out; /* NULL: refused */
    } cases[] = {
        {"Bob@Example.COM", 0, "bob@example.com"},
        {"Bob@Example.COM", PIGEON_SUPPRESS_CASE_SENSITIVE, "Bob@example.com"},
        {"user@BÜCHER.example", 0, "user@xn--bcher-kva.example"},
        {"user@xn--bcher-kva.example", 0, "user@xn--bcher-kva.example"},
        {"\"John Doe\"@example.org", 0, "\"john doe\"@example.org"},
        {"first.last+tag@sub.example.net", 0, "first.last+tag@sub.example.net"},
        {"user@[192.0.2.1]", 0, "user@[192.0.2.1]"},
        {"用户@例子.广告", 0, "用户@xn--fsqu00a.xn--4rr70v"},
        {"no-at-sign", 0, NULL},
        {"@example.com", 0, NULL},
        {"user@", 0, NULL},
        {"a..b@example.com", 0, NULL},
        {".a@example.com", 0, NULL},
        {"a b@example.com", 0, NULL},
        {"a\r\nRCPT@example.com", 0, NULL},
        {"user@exa mple.com", 0, NULL},
        {"user@-bad-.example", 0, NULL},
        {"\"unterminated@example.com", 0, NULL},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com", 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[PIGEON_SUPPRESS_ADDR_MAX + 1], why[128];
        pigeon_err err = pigeon_suppress_normalize(cases[i].in, cases[i].flags, out, sizeof out,
                                                   why, sizeof why);
        if (cases[i].out == NULL) {
            if (err != PIGEON_ERR_ADDRESS)
                fail_msg("%s: accepted as %s", cases[i].in, out);
            assert_true(why[0] != '\0');
        } else {
            if (err != PIGEON_OK)
                fail_msg("%s: %s", cases[i].in, why);
            assert_string_equal(out, cases[i].out);
        }
    }
    char small[8];
    assert_int_equal(pigeon_suppress_normalize("user@example.com", 0, small, sizeof small, NULL, 0),
                     PIGEON_ERR_TOO_LARGE);
}

static void test_reason_names(void **state)
{
    (void)state;
    pigeon_suppress_reason r;
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(pigeon_suppress_reason_parse(pigeon_suppress_reason_name(i), &r),
                         PIGEON_OK);
        assert_int_equal(r, i);
    }
    assert_string_equal(pigeon_suppress_reason_name(PIGEON_SUPPRESS_HARD_BOUNCE), "hard-bounce");
    assert_int_equal(pigeon_suppress_reason_parse("bogus", &r), PIGEON_ERR_INVALID);
}

static void test_account_and_global(void **state)
{
    (void)state;
    pigeon_spool *s = open_spool("a.db");
    /* Nothing listed yet: the tables do not even exist. */
    assert_int_equal(check(s, "qq", "x@example.com", 0), PIGEON_SUPPRESS_NONE);
    add(s, "qq", "Bounced@Example.com", PIGEON_SUPPRESS_HARD_BOUNCE, T0);
    add(s, NULL, "everyone@example.com", PIGEON_SUPPRESS_COMPLAINT, T0);
    add(s, "163", "user@BÜCHER.example", PIGEON_SUPPRESS_UNSUBSCRIBE, T0);

    assert_int_equal(check(s, "qq", "bounced@example.COM", 0), PIGEON_SUPPRESS_HARD_BOUNCE);
    assert_int_equal(check(s, "qq", "bounced@example.COM", PIGEON_SUPPRESS_CASE_SENSITIVE),
                     PIGEON_SUPPRESS_NONE);
    assert_int_equal(check(s, "qq", "Bounced@example.COM", PIGEON_SUPPRESS_CASE_SENSITIVE),
                     PIGEON_SUPPRESS_HARD_BOUNCE);
    assert_int_equal(check(s, "163", "bounced@example.com", 0), PIGEON_SUPPRESS_NONE);
    assert_int_equal(check(s, "qq", "everyone@example.com", 0), PIGEON_SUPPRESS_COMPLAINT);
    assert_int_equal(check(s, "163", "everyone@example.com", 0), PIGEON_SUPPRESS_COMPLAINT);
    assert_int_equal(check(s, "163", "user@xn--bcher-kva.example", 0), PIGEON_SUPPRESS_UNSUBSCRIBE);

    /* The account's own entry wins over the global one. */
    add(s, "qq", "everyone@example.com", PIGEON_SUPPRESS_MANUAL, T0);
    pigeon_suppress_hit hit;
    assert_int_equal(pigeon_suppress_check(s, "qq", "everyone@example.com", 0, &hit), PIGEON_OK);
    assert_int_equal(hit.reason, PIGEON_SUPPRESS_MANUAL);
    assert_false(hit.global);
    assert_int_equal(pigeon_suppress_check(s, "163", "everyone@example.com", 0, &hit), PIGEON_OK);
    assert_true(hit.global);
    assert_string_equal(hit.status, "5.1.1");

    const char *many[] = {"a@example.com", "BOUNCED@example.com", "not an address",
                          "everyone@example.com"};
    pigeon_suppress_hit hits[4];
    size_t n = 0;
    assert_int_equal(pigeon_suppress_check_many(s, "qq", many, 4, 0, hits, &n), PIGEON_OK);
    assert_int_equal(n, 2);
    assert_int_equal(hits[0].reason, PIGEON_SUPPRESS_NONE);
    assert_int_equal(hits[1].reason, PIGEON_SUPPRESS_HARD_BOUNCE);
    assert_int_equal(hits[2].reason, PIGEON_SUPPRESS_NONE);
    assert_int_equal(hits[3].reason, PIGEON_SUPPRESS_MANUAL);

    /* Remove: only the named account's entry. */
    assert_int_equal(pigeon_suppress_remove(s, "qq", "everyone@EXAMPLE.com"), PIGEON_OK);
    assert_int_equal(check(s, "qq", "everyone@example.com", 0), PIGEON_SUPPRESS_COMPLAINT);
    assert_int_equal(pigeon_suppress_remove(s, "qq", "everyone@example.com"), PIGEON_ERR_NOTFOUND);
    assert_int_equal(pigeon_suppress_remove(s, "*", "everyone@example.com"), PIGEON_OK);
    assert_int_equal(check(s, "qq", "everyone@example.com", 0), PIGEON_SUPPRESS_NONE);

    /* Bad input. */
    pigeon_suppress_entry bad = {"qq", "not-an-address", PIGEON_SUPPRESS_MANUAL, 0, 0, 0, T0};
    assert_int_equal(pigeon_suppress_add(s, &bad, NULL, NULL), PIGEON_ERR_ADDRESS);
    assert_non_null(strstr(pigeon_spool_error(s), "not-an-address"));
    bad.address = "ok@example.com";
    bad.reason = PIGEON_SUPPRESS_NONE;
    assert_int_equal(pigeon_suppress_add(s, &bad, NULL, NULL), PIGEON_ERR_INVALID);
    bad.reason = PIGEON_SUPPRESS_MANUAL;
    bad.account = "bad\naccount";
    assert_int_equal(pigeon_suppress_add(s, &bad, NULL, NULL), PIGEON_ERR_INVALID);
    pigeon_spool_close(s);
}

/* A handle that found no suppression table (and remembers that, not to parse the check
 * again for every message) sees the table another handle creates afterwards: a daemon
 * started on a fresh spool honours `pigeon suppress add` run later. */
static void test_table_created_by_another_handle(void **state)
{
    (void)state;
    pigeon_spool *daemon = open_spool("c.db");
    for (int i = 0; i < 3; i++)
        assert_int_equal(check(daemon, "qq", "late@example.com", 0), PIGEON_SUPPRESS_NONE);
    pigeon_spool *admin = open_spool("c.db");
    add(admin, "qq", "late@example.com", PIGEON_SUPPRESS_HARD_BOUNCE, T0);
    assert_int_equal(check(daemon, "qq", "late@example.com", 0), PIGEON_SUPPRESS_HARD_BOUNCE);
    const char *many[] = {"other@example.com", "late@example.com"};
    pigeon_suppress_hit hits[2];
    size_t count = 0;
    assert_int_equal(pigeon_suppress_check_many(daemon, "qq", many, 2, 0, hits, &count), PIGEON_OK);
    assert_int_equal(count, 1);
    assert_int_equal(hits[1].reason, PIGEON_SUPPRESS_HARD_BOUNCE);
    pigeon_spool_close(admin);
    pigeon_spool_close(daemon);
}

static void test_soft_window(void **state)
{
    (void)state;
    pigeon_spool *s = open_spool("soft.db");
    pigeon_suppress_policy p = {3, 7};
    pigeon_suppress_entry e = {
        "qq", "full@example.com", PIGEON_SUPPRESS_SOFT_BOUNCE, "4.2.2", "mailbox full", NULL, T0};
    int sup = -1;
    /* Days 0 and 1, then day 8: the window [1, 8] holds two, and day 0 is forgotten. */
    static const int64_t days[] = {0, 1, 8, 9};
    for (size_t i = 0; i < 4; i++) {
        e.created_ms = T0 + days[i] * DAY_MS;
        assert_int_equal(pigeon_suppress_add(s, &e, &p, &sup), PIGEON_OK);
        assert_int_equal(sup, 0);
        assert_int_equal(check(s, "qq", "full@example.com", 0), PIGEON_SUPPRESS_NONE);
    }
    /* Day 10: days 8, 9 and 10 are within 7 days: suppressed. */
    e.created_ms = T0 + 10 * DAY_MS;
    assert_int_equal(pigeon_suppress_add(s, &e, &p, &sup), PIGEON_OK);
    assert_int_equal(sup, 1);
    assert_int_equal(check(s, "qq", "full@example.com", 0), PIGEON_SUPPRESS_SOFT_BOUNCE);
    /* Another account's soft bounces count separately. */
    e.account = "163";
    assert_int_equal(pigeon_suppress_add(s, &e, &p, &sup), PIGEON_OK);
    assert_int_equal(sup, 0);
    assert_int_equal(check(s, "163", "full@example.com", 0), PIGEON_SUPPRESS_NONE);
    /* A soft bounce never downgrades a hard one. */
    add(s, "163", "gone@example.com", PIGEON_SUPPRESS_HARD_BOUNCE, T0);
    e.address = "gone@example.com";
    pigeon_suppress_policy one = {1, 1};
    assert_int_equal(pigeon_suppress_add(s, &e, &one, &sup), PIGEON_OK);
    assert_int_equal(check(s, "163", "gone@example.com", 0), PIGEON_SUPPRESS_HARD_BOUNCE);
    /* Remove forgets the events too: one more after removal does not suppress. */
    assert_int_equal(pigeon_suppress_remove(s, "qq", "full@example.com"), PIGEON_OK);
    e.account = "qq";
    e.address = "full@example.com";
    e.created_ms = T0 + 9 * DAY_MS;
    assert_int_equal(pigeon_suppress_add(s, &e, &p, &sup), PIGEON_OK);
    assert_int_equal(sup, 0);
    pigeon_suppress_policy badp = {0, 7};
    assert_int_equal(pigeon_suppress_add(s, &e, &badp, &sup), PIGEON_ERR_INVALID);
    pigeon_spool_close(s);
}

typedef struct collected {
    char text[8192]; /* CSV of the entries */
    size_t len;      /* its length */
    size_t n;        /* entries seen */
} collected;

static int collect(void *ctx, const pigeon_suppress_entry *e)
{
    collected *c = ctx;
    c->len += pigeon_suppress_csv_format(e, c->text + c->len, sizeof c->text - c->len);
    c->n++;
    return 0;
}

static void test_list_filters(void **state)
{
    (void)state;
    pigeon_spool *s = open_spool("list.db");
    add(s, "qq", "a@example.com", PIGEON_SUPPRESS_HARD_BOUNCE, T0);
    add(s, "qq", "b@example.com", PIGEON_SUPPRESS_COMPLAINT, T0);
    add(s, "163", "c@example.com", PIGEON_SUPPRESS_HARD_BOUNCE, T0);
    add(s, "*", "d@example.com", PIGEON_SUPPRESS_MANUAL, T0);
    collected c = {0};
    assert_int_equal(pigeon_suppress_list(s, NULL, 0, collect, &c), PIGEON_OK);
    assert_int_equal(c.n, 4);
    memset(&c, 0, sizeof c);
    assert_int_equal(pigeon_suppress_list(s, "qq", 0, collect, &c), PIGEON_OK);
    assert_int_equal(c.n, 2);
    memset(&c, 0, sizeof c);
    assert_int_equal(pigeon_suppress_list(s, NULL, PIGEON_SUPPRESS_HARD_BOUNCE, collect, &c),
                     PIGEON_OK);
    assert_int_equal(c.n, 2);
    memset(&c, 0, sizeof c);
    assert_int_equal(pigeon_suppress_list(s, "*", 0, collect, &c), PIGEON_OK);
    assert_int_equal(c.n, 1);
    assert_non_null(strstr(c.text, "d@example.com,*,manual,5.1.1,no such user,,"));
    pigeon_spool_close(s);
}

static void test_csv_parse(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        int ok;
        size_t nfields;
        const char *f0, *f4;
    } cases[] = {
        {"a@example.com", 1, 1, "a@example.com", NULL},
        {"a@example.com,qq,hard-bounce,5.1.1,\"User unknown, sorry\",,1", 1, 7, "a@example.com",
         "User unknown, sorry"},
        {"a@example.com,,,,\"say \"\"hi\"\"\",,", 1, 7, "a@example.com", "say \"hi\""},
        {"a@example.com,,,,\"two\r\nlines\",,", 1, 7, "a@example.com", "two\r\nlines"},
        {"  a@example.com  ,qq", 1, 2, "a@example.com", NULL},
        {"", 1, 1, "", NULL},
        {"a@example.com,\"unterminated", 0, 0, NULL, NULL},
        {"a@exa\"mple.com", 0, 0, NULL, NULL},
        {"\"a@example.com\"x,qq", 0, 0, NULL, NULL},
        {"a,b,c,d,e,f,g,h", 0, 0, NULL, NULL},
        {"a@example.com\x01,qq", 0, 0, NULL, NULL},
        {",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,", 0, 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].line);
        char *scratch = malloc(len + 8);
        pigeon_suppress_csv_row row;
        char why[128];
        pigeon_err err =
            pigeon_suppress_csv_parse(cases[i].line, len, scratch, len + 8, &row, why, sizeof why);
        if (!cases[i].ok) {
            if (err != PIGEON_ERR_INVALID)
                fail_msg("line %zu accepted", i);
            assert_true(why[0] != '\0');
        } else {
            if (err != PIGEON_OK)
                fail_msg("line %zu: %s", i, why);
            assert_int_equal(row.nfields, cases[i].nfields);
            assert_string_equal(row.fields[0], cases[i].f0);
            if (cases[i].f4 != NULL)
                assert_string_equal(row.fields[4], cases[i].f4);
        }
        free(scratch);
    }
    /* A NUL inside the line is a control, never the end of a field. */
    char scratch[64];
    pigeon_suppress_csv_row row;
    assert_int_equal(
        pigeon_suppress_csv_parse("a@b.c\0,x", 8, scratch, sizeof scratch, &row, NULL, 0),
        PIGEON_ERR_INVALID);
}

typedef struct mem_reader {
    const char *data; /* the bytes */
    size_t len, pos;  /* their length, the next to read */
    size_t step;      /* the most to hand out per read (small: records split across reads) */
} mem_reader;

static int mem_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    mem_reader *m = ctx;
    size_t k = m->len - m->pos;
    if (k > cap)
        k = cap;
    if (k > m->step)
        k = m->step;
    memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    *n = k;
    return 0;
}

static void test_import_export_roundtrip(void **state)
{
    (void)state;
    pigeon_spool *a = open_spool("from.db");
    add(a, "qq", "a@example.com", PIGEON_SUPPRESS_HARD_BOUNCE, T0);
    pigeon_suppress_entry odd = {
        "qq",  "\"odd, \\\"quoted\\\"\"@example.com", PIGEON_SUPPRESS_COMPLAINT,
        "",    "line one\r\nline \"two\", three",     "01JDX8Q4ZB7M3K9V0T2C5R6N8P",
        T0 + 5};
    assert_int_equal(pigeon_suppress_add(a, &odd, NULL, NULL), PIGEON_OK);
    add(a, "*", "g@xn--bcher-kva.example", PIGEON_SUPPRESS_UNSUBSCRIBE, T0 + 7);
    pigeon_suppress_policy one = {1, 1};
    pigeon_suppress_entry soft = {
        "163", "s@example.com", PIGEON_SUPPRESS_SOFT_BOUNCE, "4.2.2", "", NULL, T0};
    assert_int_equal(pigeon_suppress_add(a, &soft, &one, NULL), PIGEON_OK);
    collected out = {0};
    memcpy(out.text, PIGEON_SUPPRESS_CSV_HEADER, strlen(PIGEON_SUPPRESS_CSV_HEADER));
    out.len = strlen(PIGEON_SUPPRESS_CSV_HEADER);
    assert_int_equal(pigeon_suppress_list(a, NULL, 0, collect, &out), PIGEON_OK);
    assert_int_equal(out.n, 4);

    pigeon_spool *b = open_spool("to.db");
    mem_reader m = {out.text, out.len, 0, 7};
    size_t count = 0, bad = 0;
    char why[256];
    pigeon_err err = pigeon_suppress_import(b, mem_read, &m, NULL, &count, &bad, why, sizeof why);
    if (err != PIGEON_OK)
        fail_msg("import: line %zu: %s", bad, why);
    assert_int_equal(count, 4);
    collected back = {0};
    memcpy(back.text, PIGEON_SUPPRESS_CSV_HEADER, strlen(PIGEON_SUPPRESS_CSV_HEADER));
    back.len = strlen(PIGEON_SUPPRESS_CSV_HEADER);
    assert_int_equal(pigeon_suppress_list(b, NULL, 0, collect, &back), PIGEON_OK);
    assert_string_equal(back.text, out.text);
    assert_int_equal(check(b, "163", "S@example.com", 0), PIGEON_SUPPRESS_SOFT_BOUNCE);

    /* Plain address lists with defaults, comments and blank lines. */
    const char *plain = "# unsubscribed in 2026\nx@example.com\n\n<y@example.com>\r\n";
    pigeon_suppress_entry d = {"qq", NULL, PIGEON_SUPPRESS_UNSUBSCRIBE, NULL, NULL, NULL, T0};
    m = (mem_reader){plain, strlen(plain), 0, 4096};
    assert_int_equal(pigeon_suppress_import(b, mem_read, &m, &d, &count, &bad, why, sizeof why),
                     PIGEON_OK);
    assert_int_equal(count, 2);
    assert_int_equal(check(b, "qq", "y@example.com", 0), PIGEON_SUPPRESS_UNSUBSCRIBE);

    /* One bad line stores nothing, and names its line. */
    const char *badcsv = "ok1@example.com\nok2@example.com,qq,bogus-reason\nok3@example.com\n";
    m = (mem_reader){badcsv, strlen(badcsv), 0, 4096};
    assert_int_equal(pigeon_suppress_import(b, mem_read, &m, &d, &count, &bad, why, sizeof why),
                     PIGEON_ERR_INVALID);
    assert_int_equal(bad, 2);
    assert_int_equal(count, 0);
    assert_non_null(strstr(why, "bogus-reason"));
    assert_int_equal(check(b, "qq", "ok1@example.com", 0), PIGEON_SUPPRESS_NONE);
    const char *badquote = "fine@example.com\n\"multi\nline\"@example.com,qq\nx@example.com\n";
    m = (mem_reader){badquote, strlen(badquote), 0, 3};
    assert_int_equal(pigeon_suppress_import(b, mem_read, &m, &d, &count, &bad, why, sizeof why),
                     PIGEON_ERR_INVALID);
    assert_int_equal(bad, 2);
    const char *badaddr = "fine@example.com\n\"multi,\nline\",qq\nnot an address\n";
    m = (mem_reader){badaddr, strlen(badaddr), 0, 3};
    assert_int_equal(pigeon_suppress_import(b, mem_read, &m, &d, &count, &bad, why, sizeof why),
                     PIGEON_ERR_ADDRESS);
    assert_int_equal(bad, 2);
    assert_int_equal(check(b, "qq", "fine@example.com", 0), PIGEON_SUPPRESS_NONE);
    /* A line over 8 KiB. */
    char *huge = malloc(20000);
    memset(huge, 'a', 19999);
    huge[19999] = '\0';
    m = (mem_reader){huge, 19999, 0, 4096};
    assert_int_equal(pigeon_suppress_import(b, mem_read, &m, &d, &count, &bad, why, sizeof why),
                     PIGEON_ERR_TOO_LARGE);
    free(huge);
    pigeon_spool_close(a);
    pigeon_spool_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test_setup_teardown(test_account_and_global, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_created_by_another_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_soft_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
        cmocka_unit_test(test_csv_parse),
        cmocka_unit_test_setup_teardown(test_import_export_roundtrip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
