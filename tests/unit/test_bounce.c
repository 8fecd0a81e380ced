/*
 * test_bounce.c - the bounce reader: every message of tests/corpus/bounce/ against its
 * .expect side file (kind, format, the original's identity, and per recipient the
 * address, class, status and reason); the classifier's order (status code, then text,
 * then reply code); the Message-ID shape check; VERP tokens (round trip, forged and
 * foreign tags, case folding, the reference form); and hostile input (deep nesting,
 * size bound, bad encodings, missing boundaries, too many recipients).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pigeon/bounce.h"

static const char verp_key[] = "pigeon-test-verp-key-0123456789";

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static const char *or_dash(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : "-";
}

/* Checks one "key: value" line of an .expect file against the report. */
static void check_line(const char *file, const pigeon_bounce_report *r, const char *key,
                       const char *value, size_t *rcpt_index)
{
    const char *got = NULL;
    char buf[64];
    if (strcmp(key, "rcpt") == 0) {
        char addr[256], cls[32], status[32], reason[64];
        assert_int_equal(sscanf(value, "%255s | %31s | %31s | %63s", addr, cls, status, reason), 4);
        if (*rcpt_index >= r->count)
            fail_msg("%s: recipient %s expected, only %zu found", file, addr, r->count);
        const pigeon_bounce_rcpt *rc = &r->rcpts[(*rcpt_index)++];
        if (strcmp(or_dash(rc->rcpt), addr) != 0 ||
            strcmp(pigeon_bounce_class_name(rc->cls), cls) != 0 ||
            strcmp(or_dash(rc->status), status) != 0 || strcmp(rc->reason, reason) != 0)
            fail_msg("%s: expected %s | %s | %s | %s, got %s | %s | %s | %s (%s)", file, addr, cls,
                     status, reason, or_dash(rc->rcpt), pigeon_bounce_class_name(rc->cls),
                     or_dash(rc->status), rc->reason, or_dash(rc->diagnostic));
        return;
    }
    if (strcmp(key, "msgid_ours") == 0) {
        snprintf(buf, sizeof buf, "%d", pigeon_bounce_msgid_ours(r->orig_message_id, NULL, 0));
        got = buf;
    } else if (strcmp(key, "verp_rcpt") == 0) {
        char *rcpt = NULL, *ref = NULL;
        assert_int_equal(
            pigeon_bounce_verp_decode(r->to, NULL, verp_key, sizeof verp_key - 1, &rcpt, &ref),
            PIGEON_OK);
        assert_null(ref);
        snprintf(buf, sizeof buf, "%s", rcpt);
        free(rcpt);
        got = buf;
    } else {
        static const struct {
            const char *key;
            size_t off;
        } fields[] = {
            {"reporting_mta", offsetof(pigeon_bounce_report, reporting_mta)},
            {"envelope_id", offsetof(pigeon_bounce_report, envelope_id)},
            {"orig_message_id", offsetof(pigeon_bounce_report, orig_message_id)},
            {"orig_from", offsetof(pigeon_bounce_report, orig_from)},
            {"orig_to", offsetof(pigeon_bounce_report, orig_to)},
            {"orig_envelope_from", offsetof(pigeon_bounce_report, orig_envelope_from)},
            {"feedback_type", offsetof(pigeon_bounce_report, feedback_type)},
            {"verp", offsetof(pigeon_bounce_report, verp)},
            {"subject", offsetof(pigeon_bounce_report, subject)},
        };
        if (strcmp(key, "kind") == 0)
            got = pigeon_bounce_kind_name(r->kind);
        else if (strcmp(key, "format") == 0)
            got = r->format;
        for (size_t i = 0; got == NULL && i < sizeof fields / sizeof fields[0]; i++) {
            if (strcmp(key, fields[i].key) == 0)
                got = or_dash(*(char *const *)((const char *)r + fields[i].off));
        }
        if (got == NULL)
            fail_msg("%s: unknown key %s in the .expect file", file, key);
    }
    if (strcmp(got, value) != 0)
        fail_msg("%s: %s expected \"%s\", got \"%s\"", file, key, value, got);
}

static void check_file(const char *dir, const char *name)
{
    char path[4096], exp[4096];
    size_t len, elen, rcpt_index = 0;
    pigeon_bounce_report r;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(exp, sizeof exp, "%s/%.*s.expect", dir, (int)(strlen(name) - 4), name);
    char *msg = slurp(path, &len), *expect = slurp(exp, &elen);
    if (expect == NULL)
        fail_msg("%s has no .expect side file", name);
    assert_int_equal(pigeon_bounce_parse(msg, len, NULL, &r), PIGEON_OK);
    int saw_kind = 0;
    for (char *line = strtok(expect, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char *colon = strchr(line, ':');
        assert_non_null(colon);
        *colon = '\0';
        saw_kind |= strcmp(line, "kind") == 0;
        check_line(name, &r, line, colon + 2, &rcpt_index);
    }
    assert_true(saw_kind);
    if (rcpt_index != r.count)
        fail_msg("%s: %zu recipients expected, %zu found (first extra: %s)", name, rcpt_index,
                 r.count, or_dash(r.rcpts[rcpt_index].rcpt));
    pigeon_bounce_report_cleanup(&r);
    free(msg);
    free(expect);
}

static void test_corpus(void **state)
{
    (void)state;
    const char *src = getenv("PIGEON_SOURCE_DIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/corpus/bounce", src != NULL ? src : ".");
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t files = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        size_t n = strlen(de->d_name);
        if (n > 4 && strcmp(de->d_name + n - 4, ".eml") == 0) {
            check_file(dir, de->d_name);
            files++;
        }
    }
    closedir(d);
    assert_true(files >= 25);
}

static void test_classify_order(void **state)
{
    (void)state;
    const char *why;
    /* The status code decides when it is specific. */
    assert_int_equal(pigeon_bounce_classify("5.1.1", 550, "mailbox full", &why),
                     PIGEON_BOUNCE_HARD);
    assert_string_equal(why, "mailbox_unknown");
    assert_int_equal(pigeon_bounce_classify("5.2.2", 552, NULL, &why), PIGEON_BOUNCE_SOFT);
    assert_string_equal(why, "mailbox_full");
    assert_int_equal(pigeon_bounce_classify("4.2.2", 452, NULL, &why), PIGEON_BOUNCE_SOFT);
    assert_int_equal(pigeon_bounce_classify("5.7.1", 554, "blocked using zen.spamhaus.org", &why),
                     PIGEON_BOUNCE_BLOCK);
    assert_string_equal(why, "blocklisted");
    assert_int_equal(pigeon_bounce_classify("5.1.2", 0, NULL, &why), PIGEON_BOUNCE_HARD);
    assert_string_equal(why, "domain_unknown");
    /* 4.x.x is temporary whatever the text says. */
    assert_int_equal(pigeon_bounce_classify("4.1.1", 450, "user unknown", &why),
                     PIGEON_BOUNCE_SOFT);
    assert_int_equal(pigeon_bounce_classify("4.7.1", 451, "Greylisted, try later", &why),
                     PIGEON_BOUNCE_SOFT);
    assert_string_equal(why, "greylisted");
    /* Generic codes: the text decides. */
    assert_int_equal(pigeon_bounce_classify("5.0.0", 550, "Mailbox is full", &why),
                     PIGEON_BOUNCE_SOFT);
    assert_int_equal(pigeon_bounce_classify(NULL, 550, "Message rejected as spam", &why),
                     PIGEON_BOUNCE_BLOCK);
    assert_int_equal(pigeon_bounce_classify(NULL, 0, "收件人不存在", &why), PIGEON_BOUNCE_HARD);
    assert_int_equal(pigeon_bounce_classify(NULL, 0, "邮箱空间不足", &why), PIGEON_BOUNCE_SOFT);
    assert_int_equal(pigeon_bounce_classify(NULL, 0, "被判定为垃圾邮件", &why),
                     PIGEON_BOUNCE_BLOCK);
    /* No keyword: the reply code's class; nothing at all: undetermined. */
    assert_int_equal(pigeon_bounce_classify(NULL, 550, "no reason given", &why),
                     PIGEON_BOUNCE_HARD);
    assert_int_equal(pigeon_bounce_classify(NULL, 421, "closing", &why), PIGEON_BOUNCE_SOFT);
    assert_int_equal(pigeon_bounce_classify(NULL, 0, "something odd", &why),
                     PIGEON_BOUNCE_UNDETERMINED);
    assert_int_equal(pigeon_bounce_classify("2.0.0", 250, "ok", &why), PIGEON_BOUNCE_NONE);
    assert_string_equal(pigeon_bounce_class_name(PIGEON_BOUNCE_BLOCK), "block");
    assert_string_equal(pigeon_bounce_kind_name(PIGEON_BOUNCE_KIND_AUTOREPLY), "autoreply");
}

static void test_msgid_ours(void **state)
{
    (void)state;
    const char *doms[] = {"news.example.com", "shop.example.com"};
    assert_true(pigeon_bounce_msgid_ours("<k3j5n2m4pqr7s2t3u4v5w6x7yz@news.example.com>", doms, 2));
    assert_true(pigeon_bounce_msgid_ours("Ab3dE5gH7jK9mN1pQ3sT5vW7@SHOP.example.com", doms, 2));
    assert_false(pigeon_bounce_msgid_ours("k3j5n2m4pqr7s2t3u4v5w6x7yz@evil.example", doms, 2));
    assert_true(pigeon_bounce_msgid_ours("k3j5n2m4pqr7s2t3u4v5w6x7yz@evil.example", NULL, 0));
    assert_false(pigeon_bounce_msgid_ours("CAF=xyz123@mail.gmail.com", NULL, 0));
    assert_false(pigeon_bounce_msgid_ours("k3j5n2m4pqr7s2t3u4v5w6x7y1@news.example.com", NULL, 0));
    assert_false(pigeon_bounce_msgid_ours("k3j5n2m4pqr7s2t3u4v5w6x7yz@a@b", NULL, 0));
    assert_false(pigeon_bounce_msgid_ours(NULL, NULL, 0));
    assert_false(pigeon_bounce_msgid_ours("", NULL, 0));
}

static void test_verp(void **state)
{
    (void)state;
    char *addr = NULL, *rcpt = NULL, *ref = NULL;
    size_t kl = sizeof verp_key - 1;
    assert_int_equal(pigeon_bounce_verp_encode("bounces@news.example.com", "Bob.Smith@Example.org",
                                               NULL, verp_key, kl, &addr),
                     PIGEON_OK);
    assert_true(strncmp(addr, "bounces+Bob.Smith=Example.org-", 30) == 0);
    assert_true(strchr(addr, '@') - addr <= 64);
    assert_int_equal(pigeon_bounce_verp_decode(addr, NULL, verp_key, kl, &rcpt, &ref), PIGEON_OK);
    assert_string_equal(rcpt, "Bob.Smith@example.org");
    assert_null(ref);
    free(rcpt);
    /* An MTA that folds the case of the local part does not break the tag. */
    for (char *p = addr; *p != '\0'; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    assert_int_equal(pigeon_bounce_verp_decode(addr, NULL, verp_key, kl, &rcpt, &ref), PIGEON_OK);
    assert_string_equal(rcpt, "BOB.SMITH@example.org");
    free(rcpt);
    /* Another key, another recipient with the same tag, another domain: forged. */
    assert_int_equal(
        pigeon_bounce_verp_decode(addr, NULL, "another-key-of-16-bytes-or-more", 31, &rcpt, &ref),
        PIGEON_ERR_AUTH);
    free(addr);
    assert_int_equal(
        pigeon_bounce_verp_decode("bounces+ceo=example.org-aaaaaaaaaa@news.example.com", NULL,
                                  verp_key, kl, &rcpt, &ref),
        PIGEON_ERR_AUTH);
    assert_null(rcpt);
    assert_int_equal(
        pigeon_bounce_verp_decode("bounces@news.example.com", NULL, verp_key, kl, &rcpt, &ref),
        PIGEON_ERR_NOTFOUND);
    /* A sender whose own local part holds '+', and a recipient with '+'. */
    assert_int_equal(pigeon_bounce_verp_encode("a+b@news.example.com", "x+y@example.org", NULL,
                                               verp_key, kl, &addr),
                     PIGEON_OK);
    assert_int_equal(pigeon_bounce_verp_decode(addr, NULL, verp_key, kl, &rcpt, &ref), PIGEON_OK);
    assert_string_equal(rcpt, "x+y@example.org");
    free(rcpt);
    free(addr);
    /* Too long for the 64-octet local part: the reference form, or TOO_LARGE without one. */
    const char *longr = "a.very.long.recipient.name.that.goes.on@subdomain.example.org";
    assert_int_equal(
        pigeon_bounce_verp_encode("bounces@news.example.com", longr, NULL, verp_key, kl, &addr),
        PIGEON_ERR_TOO_LARGE);
    assert_int_equal(pigeon_bounce_verp_encode("bounces@news.example.com", longr, "q1a2b3.17",
                                               verp_key, kl, &addr),
                     PIGEON_OK);
    assert_int_equal(pigeon_bounce_verp_decode(addr, NULL, verp_key, kl, &rcpt, &ref), PIGEON_OK);
    assert_null(rcpt);
    assert_string_equal(ref, "q1a2b3.17");
    free(ref);
    /* The token alone decodes with the sender's domain given. */
    const char *tok = strchr(addr, '+') + 1;
    char token[80];
    snprintf(token, sizeof token, "%.*s", (int)(strchr(tok, '@') - tok), tok);
    assert_int_equal(
        pigeon_bounce_verp_decode(token, "news.example.com", verp_key, kl, &rcpt, &ref), PIGEON_OK);
    free(ref);
    assert_int_equal(pigeon_bounce_verp_decode(token, "other.example", verp_key, kl, &rcpt, &ref),
                     PIGEON_ERR_AUTH);
    free(addr);
    /* Quoted or non-ASCII recipients cannot be inline. */
    assert_int_equal(pigeon_bounce_verp_encode("bounces@news.example.com", "\"a b\"@example.org",
                                               NULL, verp_key, kl, &addr),
                     PIGEON_ERR_TOO_LARGE);
    assert_int_equal(
        pigeon_bounce_verp_encode("bounces@news.example.com", "a@b.c", NULL, "short", 5, &addr),
        PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_bounce_verp_encode("bounces@news.example.com", "a@b.c", "bad ref!",
                                               verp_key, kl, &addr),
                     PIGEON_ERR_INVALID);
}

static void parse_ok(const char *msg, size_t len, const pigeon_bounce_opts *o,
                     pigeon_bounce_report *r)
{
    assert_int_equal(pigeon_bounce_parse(msg, len, o, r), PIGEON_OK);
}

static void test_hostile_nesting(void **state)
{
    (void)state;
    /* 1000 nested multiparts around a delivery-status part. */
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(buf + n, cap - n,
                              "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n", i, i);
    n += (size_t)snprintf(
        buf + n, cap - n,
        "Content-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n"
        "Final-Recipient: rfc822; deep@example.org\nAction: failed\nStatus: 5.1.1\n");
    pigeon_bounce_report r;
    parse_ok(buf, n, NULL, &r);
    assert_true(r.truncated);
    assert_int_equal(r.count, 0); /* below the depth bound: not read */
    pigeon_bounce_report_cleanup(&r);
    pigeon_bounce_opts o = {0, 2000};
    parse_ok(buf, n, &o, &r); /* a caller may allow it: still no crash, no recursion blowup */
    pigeon_bounce_report_cleanup(&r);
    free(buf);
}

static void test_hostile_bounds(void **state)
{
    (void)state;
    pigeon_bounce_report r;
    /* Many recipients: bounded. */
    size_t cap = 8 << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    n += (size_t)snprintf(buf + n, cap - n,
                          "Content-Type: multipart/report; report-type=delivery-status; "
                          "boundary=x\n\n--x\nContent-Type: message/delivery-status\n\n"
                          "Reporting-MTA: dns; x\n");
    for (int i = 0; i < 3000; i++)
        n += (size_t)snprintf(buf + n, cap - n,
                              "\nFinal-Recipient: rfc822; u%d@example.org\nAction: failed\n"
                              "Status: 5.1.1\n",
                              i);
    parse_ok(buf, n, NULL, &r);
    assert_int_equal(r.count, 1000);
    assert_true(r.truncated);
    pigeon_bounce_report_cleanup(&r);
    /* The size bound: only the first octets are read. */
    pigeon_bounce_opts o = {100, 0};
    parse_ok(buf, n, &o, &r);
    assert_true(r.truncated);
    assert_int_equal(r.count, 0);
    pigeon_bounce_report_cleanup(&r);
    /* Garbage, NULs, a lone boundary, an empty message. */
    for (size_t i = 0; i < 65536; i++)
        buf[i] = (char)((i * 2654435761u) >> 13);
    parse_ok(buf, 65536, NULL, &r);
    pigeon_bounce_report_cleanup(&r);
    const char *odd[] = {
        "",
        "\n\n\n",
        "Content-Type: multipart/report; boundary=\"\"\n\n--\n--\n",
        "Content-Type: multipart/report; boundary=a\n\n--a\n--a\n--a--\n",
        "Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n!!!!====",
        "Content-Type: text/plain; charset=gb18030\nContent-Transfer-Encoding: quoted-printable\n\n"
        "=\xff=F=\n=ZZ\xb2\xe2",
        "Subject: =?gb2312?B?****?= =?x-unknown?Q?a?=\nFrom: <@>\nTo: <+@>\n\n",
        "From: MAILER-DAEMON@x\nSubject: Undelivered Mail\n\n<a@b.c>:\n",
    };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        parse_ok(odd[i], strlen(odd[i]), NULL, &r);
        pigeon_bounce_report_cleanup(&r);
    }
    assert_int_equal(pigeon_bounce_parse(NULL, 0, NULL, &r), PIGEON_ERR_INVALID);
    pigeon_bounce_report_cleanup(NULL);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),          cmocka_unit_test(test_classify_order),
        cmocka_unit_test(test_msgid_ours),      cmocka_unit_test(test_verp),
        cmocka_unit_test(test_hostile_nesting), cmocka_unit_test(test_hostile_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
