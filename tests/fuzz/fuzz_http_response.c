/*
 * fuzz_http_response.c - libFuzzer target for the HTTP client's pure parts
 * (lib/http/http_response.c): response heads and webhook URLs.
 *
 * Invariants: no out-of-bounds access (ASan); a parsed head lies within the input, its
 * reason and Location inside it; never both a length and chunked; a prefix of an accepted
 * head is never an error (need more, or the same head); a URL that parses has a host
 * without brackets, a port, a path starting with '/', and NUL-terminated fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_head(const char *buf, long used, const pg_http_response_head *h)
{
    const char *end = buf + used;
    if (h->reason < buf || h->reason + h->reason_len > end)
        abort();
    if (h->location != NULL && (h->location < buf || h->location + h->location_len > end))
        abort();
    if (h->status < 100 || h->status > 999 || (h->has_length && h->chunked))
        abort();
}

static void check_url(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    char why[200];
    pg_http_url u;
    if (s == NULL)
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    if (pg_http_url_parse(s, &u, why, sizeof why) == 0) {
        if (u.port == 0 || u.path[0] != '/' || strchr(u.host, '[') != NULL || strlen(u.host) == 0 ||
            strchr(u.path, ' ') != NULL)
            abort();
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pg_http_response_head h, h2;
    const char *buf = (const char *)data;
    long used = pg_http_parse_response(buf, size, 0, &h);
    if (used > 0) {
        if ((size_t)used > size)
            abort();
        check_head(buf, used, &h);
        for (size_t cut = 0; cut < (size_t)used; cut += 1 + cut / 4) {
            long again = pg_http_parse_response(buf, cut, 0, &h2);
            if (again != 0 && again != -2)
                abort();
        }
    }
    check_url(data, size < 4096 ? size : 4096);
    return 0;
}
