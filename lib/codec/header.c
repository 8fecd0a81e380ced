/*
 * header.c - header field checks and unstructured fields (RFC 5322 2.2, 2.2.1, 2.2.3).
 *
 * Field names are ftext (RFC 5322 2.2: printable US-ASCII but ':'); values must never
 * carry CR, LF or NUL from the caller (header injection), and text must be valid UTF-8
 * (RFC 3629 3) before it is encoded by RFC 2047 (rfc2047.c).
 */
#include "codec/encode.h"
#include "util/utf8.h"

#include <string.h>

/* RFC 5322 2.1.1 recommends 78 characters per line; a name longer than 76 leaves no
 * room for ": " and a value. */
#define NAME_MAX_LEN 76

int pg_header_name_valid(const char *name)
{
    if (name == NULL)
        return 0;
    size_t i = 0;
    for (; name[i] != '\0'; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 33 || c > 126 || c == ':' || i >= NAME_MAX_LEN)
            return 0;
    }
    return i > 0;
}

pigeon_err pg_header_unstructured(pg_buf *out, const char *name, const char *utf8)
{
    if (out->err != PIGEON_OK)
        return out->err;
    if (name == NULL || utf8 == NULL)
        return out->err = PIGEON_ERR_INVALID;
    if (!pg_header_name_valid(name))
        return out->err = PIGEON_ERR_HEADER;
    size_t n = strlen(utf8);
    if (pg_has_ctl_breaks(utf8, n))
        return out->err = PIGEON_ERR_HEADER;
    if (!pg_utf8_valid(utf8, n))
        return out->err = PIGEON_ERR_CHARSET;
    pg_buf_puts(out, name);
    /* An empty value is allowed (RFC 5322 3.6.5 unstructured may be empty). */
    if (n == 0)
        return pg_buf_append(out, ":\r\n", 3);
    pg_buf_append(out, ": ", 2);
    size_t col = strlen(name) + 2;
    if (pg_ew_encode(out, &col, utf8, n, PG_EW_TEXT) != PIGEON_OK)
        return out->err;
    return pg_buf_append(out, "\r\n", 2);
}
