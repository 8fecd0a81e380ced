/*
 * dkim_tags.c - the tag=value lists of DKIM (RFC 6376 3.2): DKIM-Signature fields and
 * key records. A pure parser on (buf, len): it finds one tag's value, white space (and
 * folding) around names and values removed.
 */
#include <string.h>

#include "dkim/dkim_tags.h"

static int fws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int pg_dkim_tag_find(const char *list, size_t len, const char *tag, const char **val, size_t *vlen)
{
    size_t tl = strlen(tag);
    const char *p = list, *end = list + len;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi != NULL ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq != NULL) {
            const char *n = p, *ne = eq;
            while (n < ne && fws(*n))
                n++;
            while (ne > n && fws(ne[-1]))
                ne--;
            if ((size_t)(ne - n) == tl && memcmp(n, tag, tl) == 0) {
                const char *v = eq + 1, *ve = stop;
                while (v < ve && fws(*v))
                    v++;
                while (ve > v && fws(ve[-1]))
                    ve--;
                *val = v;
                *vlen = (size_t)(ve - v);
                return 1;
            }
        }
        p = stop < end ? stop + 1 : end;
    }
    return 0;
}
