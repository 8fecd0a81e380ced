/*
 * links.c - the link hosts of a message, for domain blocklist lookups (RFC 5782 2.3).
 *
 * A plain scan for "http://" and "https://" (case-insensitive) in HTML or text, MIME
 * structure ignored: what a receiver's URI blocklist filter extracts is close to this, and
 * quoted-printable soft breaks inside a URL are rare in what pigeon itself writes. The host
 * is what follows up to the first character that cannot be in a host name, after any
 * userinfo ("user@host").
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "pigeon/dns.h"

/* RFC 3986 3.2: the authority ends at '/', '?' or '#'; in mail text also at what cannot
 * be in a URL (space, quotes, angle brackets, controls). */
static int authority_char(char c)
{
    unsigned char u = (unsigned char)c;
    return u > 0x20 && u != 0x7f && strchr("/?#\"'<>\\`{}|^", c) == NULL;
}

static int host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

void pigeon_dns_scan_links(const char *buf, size_t len, pigeon_dns_link_fn fn, void *ctx)
{
    if (buf == NULL || fn == NULL)
        return;
    for (size_t i = 0; i + 7 < len; i++) {
        size_t skip = 0;
        if (strncasecmp(buf + i, "http://", 7) == 0)
            skip = 7;
        else if (len - i > 8 && strncasecmp(buf + i, "https://", 8) == 0)
            skip = 8;
        if (skip == 0)
            continue;
        size_t s = i + skip, end = s;
        while (end < len && authority_char(buf[end]))
            end++;
        /* RFC 3986 3.2.1: userinfo ends at the last '@' of the authority. */
        for (size_t k = end; k > s; k--) {
            if (buf[k - 1] == '@') {
                s = k;
                break;
            }
        }
        /* The host runs to the port's ':' or the first character a name cannot hold. */
        size_t e = s;
        while (e < end && host_char(buf[e]))
            e++;
        while (e > s && buf[e - 1] == '.')
            e--;
        if (e > s)
            fn(ctx, buf + s, e - s);
        i = end > i ? end - 1 : i;
    }
}
