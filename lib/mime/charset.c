/*
 * charset.c - UTF-8 to GB18030/GBK transcoding for text parts, with iconv(3).
 *
 * GB18030 covers all of Unicode, so only invalid input fails; GBK lacks many characters
 * (emoji, rare Han), which fail with PIGEON_ERR_CHARSET rather than being replaced.
 */
#include "mime/charset.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>
#include <strings.h>

struct charset_name {
    const char *alias;     /* a name callers may use, compared case-insensitively */
    const char *canonical; /* the name written in charset= */
    const char *iconv;     /* the name iconv_open knows */
};

static const struct charset_name names[] = {
    {"utf-8", "utf-8", "UTF-8"}, {"utf8", "utf-8", "UTF-8"}, {"gb18030", "gb18030", "GB18030"},
    {"gbk", "gbk", "GBK"},       {"cp936", "gbk", "GBK"},
};

static const struct charset_name *lookup(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(name, names[i].alias) == 0)
            return &names[i];
    }
    return NULL;
}

const char *pg_charset_canonical(const char *name)
{
    const struct charset_name *cs = lookup(name);
    return cs ? cs->canonical : NULL;
}

/* Converts with iconv into out, growing it; iconv state cd is owned by the caller. */
static pigeon_err convert(iconv_t cd, pg_buf *out, const char *in, size_t n)
{
    char *src = (char *)in; /* iconv's prototype is not const-correct */
    size_t left = n;
    while (left > 0) {
        /* GB18030 uses at most 4 bytes per character, as does UTF-8: 4 * left + 16 fits
         * in one step, but grow in bounded steps so a huge text does not double at once. */
        size_t room = left < 65536 ? 4 * left + 16 : 262144;
        if (pg_buf_reserve(out, room) != PIGEON_OK)
            return out->err;
        char *dst = out->data + out->len;
        size_t dst_left = room;
        size_t rc = iconv(cd, &src, &left, &dst, &dst_left);
        out->len += room - dst_left;
        out->data[out->len] = '\0';
        if (rc == (size_t)-1 && errno != E2BIG)
            return PIGEON_ERR_CHARSET; /* EILSEQ (unrepresentable) or EINVAL (truncated) */
    }
    return PIGEON_OK;
}

pigeon_err pg_charset_from_utf8(pg_buf *out, const char *charset, const char *utf8, size_t n)
{
    const struct charset_name *cs = lookup(charset);
    iconv_t cd;
    pigeon_err err;
    if (cs == NULL)
        return PIGEON_ERR_CHARSET;
    if (strcmp(cs->canonical, "utf-8") == 0)
        return pg_buf_append(out, utf8, n);
    cd = iconv_open(cs->iconv, "UTF-8");
    if (cd == (iconv_t)-1)
        return PIGEON_ERR_CHARSET;
    err = convert(cd, out, utf8, n);
    iconv_close(cd);
    return err;
}
