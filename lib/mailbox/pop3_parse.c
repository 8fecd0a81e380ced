/*
 * pop3_parse.c - POP3 response lines (RFC 1939 3 and 7, RFC 2449 8, RFC 3206).
 */
#include "mailbox/pop3_parse.h"

#include <string.h>
#include <strings.h>

int pg_pop3_parse_status(const char *line, size_t n, pg_pop3_status *st)
{
    memset(st, 0, sizeof *st);
    if (n < 2 || line[n - 2] != '\r' || line[n - 1] != '\n')
        return -1;
    n -= 2;
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
            return -1;
    size_t word;
    if (n >= 3 && memcmp(line, "+OK", 3) == 0) {
        st->ok = 1;
        word = 3;
    } else if (n >= 4 && memcmp(line, "-ERR", 4) == 0) {
        word = 4;
    } else {
        return -1;
    }
    if (n > word && line[word] != ' ')
        return -1;
    st->text = line + (n > word ? word + 1 : word);
    st->text_len = n > word ? n - word - 1 : 0;
    if (!st->ok && st->text_len > 0 && st->text[0] == '[') {
        const char *end = memchr(st->text, ']', st->text_len);
        size_t code = end != NULL ? (size_t)(end - st->text) - 1 : 0;
        const char *c = st->text + 1;
        /* RFC 2449 8.1.2 IN-USE; RFC 3206 4 SYS/TEMP (and its hierarchy). */
        if ((code == 6 && strncasecmp(c, "IN-USE", 6) == 0) ||
            (code >= 8 && strncasecmp(c, "SYS/TEMP", 8) == 0))
            st->temporary = 1;
    }
    return 0;
}

int pg_pop3_is_terminator(const char *line, size_t n)
{
    return (n == 3 && memcmp(line, ".\r\n", 3) == 0) || (n == 2 && memcmp(line, ".\n", 2) == 0);
}

/* Reads a decimal number (at most 19 digits) at *p, moving *p past it. */
static int number(const char **p, const char *end, unsigned long long *out)
{
    unsigned long long v = 0;
    const char *s = *p;
    int digits = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (++digits > 19)
            return -1;
        v = v * 10 + (unsigned long long)(*s - '0');
        s++;
    }
    if (digits == 0)
        return -1;
    *p = s;
    *out = v;
    return 0;
}

int pg_pop3_parse_stat(const char *text, unsigned long long *count, unsigned long long *size)
{
    if (text == NULL)
        return -1;
    const char *end = text + strlen(text);
    const char *p = text;
    if (number(&p, end, count) != 0 || p >= end || *p != ' ')
        return -1;
    p++;
    if (number(&p, end, size) != 0)
        return -1;
    return (p == end || *p == ' ' || *p == '\r') ? 0 : -1;
}

int pg_pop3_parse_uidl(const char *line, size_t n, unsigned *number_out, char *uid, size_t cap)
{
    if (n < 2 || line[n - 2] != '\r' || line[n - 1] != '\n' || cap < 71)
        return -1;
    const char *end = line + n - 2;
    const char *p = line;
    unsigned long long v = 0;
    if (number(&p, end, &v) != 0 || v == 0 || v > 0xffffffffu || p >= end || *p != ' ')
        return -1;
    p++;
    size_t len = (size_t)(end - p);
    if (len == 0 || len > 70)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x21 || p[i] > 0x7e)
            return -1;
    memcpy(uid, p, len);
    uid[len] = '\0';
    *number_out = (unsigned)v;
    return 0;
}
