/*
 * fuzz_bounce.c - libFuzzer target for the bounce reader (pigeon_bounce_parse).
 *
 * Whatever the input, the parse returns PIGEON_OK, the report is consistent (count within
 * the bound, every recipient with a class and a reason, a status that looks like
 * "d.d.d" or is empty), every string is valid UTF-8 without control characters, and the
 * classifier and the Message-ID check accept the extracted text. The input is also read
 * with a small size bound and depth, and its first bytes as a VERP token.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/bounce.h"
#include "util/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void clean(const char *s)
{
    if (s == NULL)
        return;
    size_t n = strlen(s);
    if (n == 0 || !pg_utf8_valid(s, n))
        abort();
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            abort();
    }
}

static void check(const pigeon_bounce_report *r)
{
    if (r->count > 1000 || r->count > r->cap || r->format == NULL)
        abort();
    const char *strs[] = {r->subject,
                          r->from,
                          r->to,
                          r->verp,
                          r->reporting_mta,
                          r->envelope_id,
                          r->orig_message_id,
                          r->orig_from,
                          r->orig_to,
                          r->orig_subject,
                          r->orig_envelope_from,
                          r->feedback_type,
                          r->user_agent};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        clean(strs[i]);
    for (size_t i = 0; i < r->count; i++) {
        const pigeon_bounce_rcpt *rc = &r->rcpts[i];
        if (rc->reason == NULL || (unsigned)rc->cls > PIGEON_BOUNCE_UNDETERMINED)
            abort();
        if (memchr(rc->status, '\0', sizeof rc->status) == NULL)
            abort();
        clean(rc->rcpt);
        clean(rc->original_rcpt);
        clean(rc->action);
        clean(rc->diagnostic);
        clean(rc->remote_mta);
        (void)pigeon_bounce_classify(rc->status, rc->smtp_code, rc->diagnostic, NULL);
    }
    (void)pigeon_bounce_msgid_ours(r->orig_message_id, NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char key[] = "fuzz-key-0123456789abcdef";
    pigeon_bounce_report r;
    if (pigeon_bounce_parse((const char *)data, size, NULL, &r) != PIGEON_OK)
        abort();
    check(&r);
    pigeon_bounce_report_cleanup(&r);
    pigeon_bounce_opts o = {size / 2 + 1, 3};
    if (pigeon_bounce_parse((const char *)data, size, &o, &r) != PIGEON_OK)
        abort();
    check(&r);
    pigeon_bounce_report_cleanup(&r);
    /* The first line as a VERP address. */
    char addr[256];
    size_t n = 0;
    while (n < size && n < sizeof addr - 1 && data[n] != '\n' && data[n] != '\0')
        n++;
    memcpy(addr, data, n);
    addr[n] = '\0';
    char *rcpt = NULL, *ref = NULL;
    if (pigeon_bounce_verp_decode(addr, NULL, key, sizeof key - 1, &rcpt, &ref) == PIGEON_OK &&
        rcpt == NULL && ref == NULL)
        abort();
    free(rcpt);
    free(ref);
    char *out = NULL;
    if (pigeon_bounce_verp_encode("b@x.example", addr, NULL, key, sizeof key - 1, &out) ==
        PIGEON_OK) {
        if (pigeon_bounce_verp_decode(out, NULL, key, sizeof key - 1, &rcpt, &ref) != PIGEON_OK)
            abort();
        free(rcpt);
        free(ref);
    }
    free(out);
    return 0;
}
