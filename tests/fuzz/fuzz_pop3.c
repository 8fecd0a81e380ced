/*
 * fuzz_pop3.c - libFuzzer target for the POP3 response parser (lib/mailbox/pop3_parse.c):
 * status lines (RFC 1939 3, RFC 2449 8 response codes), STAT answers, UIDL lines and the
 * "." terminator of multi-line responses.
 *
 * The input is cut into lines at each LF (as the client reads them, CRLF kept) and every
 * line goes through every parser; the whole input once more as one line. Invariants: no
 * out-of-bounds access (ASan); a parsed status lies inside its line, starts with +OK or
 * -ERR, its text ends before the CRLF, and only -ERR is ever temporary; a STAT parse
 * reads the counts its text spells; a UIDL line gives a message number > 0 and a unique-id
 * of 1 to 70 characters 0x21-0x7E that appears in the line; the terminator is "." CRLF or
 * "." LF only.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailbox/pop3_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether needle[0..k) occurs in hay[0..n). */
static int occurs(const char *hay, size_t n, const char *needle, size_t k)
{
    for (size_t i = 0; k <= n && i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return 1;
    return 0;
}

static void one_line(const char *line, size_t n)
{
    pg_pop3_status st;
    if (pg_pop3_parse_status(line, n, &st) == 0) {
        if (n < 5 || line[n - 2] != '\r' || line[n - 1] != '\n')
            abort();
        if (st.text < line || st.text + st.text_len > line + n - 2)
            abort();
        if (st.ok != (memcmp(line, "+OK", 3) == 0) || (!st.ok && memcmp(line, "-ERR", 4) != 0))
            abort();
        if (st.ok && st.temporary)
            abort();
        if (memchr(st.text, '\n', st.text_len) != NULL || memchr(st.text, '\r', st.text_len))
            abort();
        /* STAT reads the text (NUL-terminated copy, as the client hands it). */
        char *text = malloc(st.text_len + 1);
        if (text == NULL)
            return;
        memcpy(text, st.text, st.text_len);
        text[st.text_len] = '\0';
        unsigned long long count = 0, sz = 0;
        if (pg_pop3_parse_stat(text, &count, &sz) == 0 && (text[0] < '0' || text[0] > '9'))
            abort();
        free(text);
    }
    unsigned number = 0;
    char uid[71];
    memset(uid, 0, sizeof uid);
    if (pg_pop3_parse_uidl(line, n, &number, uid, sizeof uid) == 0) {
        size_t ulen = strlen(uid);
        if (number == 0 || ulen == 0 || ulen > 70)
            abort();
        for (size_t i = 0; i < ulen; i++)
            if ((unsigned char)uid[i] < 0x21 || (unsigned char)uid[i] > 0x7e)
                abort();
        if (!occurs(line, n, uid, ulen))
            abort();
    }
    if (pg_pop3_is_terminator(line, n) &&
        !((n == 3 && memcmp(line, ".\r\n", 3) == 0) || (n == 2 && memcmp(line, ".\n", 2) == 0)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t start = 0;
    for (size_t i = 0; i < size; i++) {
        if (buf[i] != '\n')
            continue;
        /* Each line in its own allocation, so that ASan sees a read past its end. */
        size_t n = i + 1 - start;
        char *line = malloc(n ? n : 1);
        if (line == NULL)
            return 0;
        memcpy(line, buf + start, n);
        one_line(line, n);
        free(line);
        start = i + 1;
    }
    char *all = malloc(size ? size : 1);
    if (all == NULL)
        return 0;
    memcpy(all, buf, size);
    one_line(all, size);
    free(all);
    return 0;
}
