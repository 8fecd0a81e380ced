/*
 * report.c - filling a pigeon_bounce_report (see report.h).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bounce/report.h"
#include "util/utf8.h"

pigeon_bounce_rcpt *pg_bounce_rcpt_add(pigeon_bounce_report *r, int *nomem)
{
    if (r->count >= PG_BOUNCE_RCPTS_MAX) {
        r->truncated = 1;
        return NULL;
    }
    if (r->count == r->cap) {
        size_t cap = r->cap != 0 ? r->cap * 2 : 4;
        pigeon_bounce_rcpt *n = realloc(r->rcpts, cap * sizeof *n);
        if (n == NULL) {
            *nomem = 1;
            return NULL;
        }
        r->rcpts = n;
        r->cap = cap;
    }
    pigeon_bounce_rcpt *rc = &r->rcpts[r->count++];
    memset(rc, 0, sizeof *rc);
    rc->reason = "unknown";
    return rc;
}

pigeon_bounce_rcpt *pg_bounce_rcpt_find(pigeon_bounce_report *r, const char *addr)
{
    for (size_t i = 0; addr != NULL && i < r->count; i++) {
        if (r->rcpts[i].rcpt != NULL && strcasecmp(r->rcpts[i].rcpt, addr) == 0)
            return &r->rcpts[i];
    }
    return NULL;
}

int pg_bounce_set(char **dst, const char *s, size_t n, int replace)
{
    if (s == NULL || (*dst != NULL && !replace))
        return 0;
    char *out = malloc((n < PG_BOUNCE_TEXT_MAX ? n : PG_BOUNCE_TEXT_MAX) + 1);
    size_t o = 0;
    int space = 1;
    if (out == NULL)
        return -1;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : pg_utf8_decode((const unsigned char *)s + i, n - i, NULL);
        if (c < 0x20 || c == 0x7f || c == ' ') {
            if (!space && o + 1 <= PG_BOUNCE_TEXT_MAX)
                out[o++] = ' ';
            space = 1;
            i++;
            continue;
        }
        if (k == 0) { /* not UTF-8 */
            c = '?';
            k = 1;
            if (o + 1 > PG_BOUNCE_TEXT_MAX)
                break;
            out[o++] = (char)c;
        } else {
            if (o + k > PG_BOUNCE_TEXT_MAX)
                break;
            memcpy(out + o, s + i, k);
            o += k;
        }
        space = 0;
        i += k;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    if (o == 0) {
        free(out);
        return 0;
    }
    free(*dst);
    *dst = out;
    return 0;
}

int pg_bounce_take(char **dst, char *s, int replace)
{
    int r = s != NULL ? pg_bounce_set(dst, s, strlen(s), replace) : 0;
    free(s);
    return r;
}
