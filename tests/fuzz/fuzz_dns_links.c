/*
 * fuzz_dns_links.c - libFuzzer target for the link scanner (lib/dns/links.c).
 *
 * Invariants: no out-of-bounds access (ASan); every host reported lies inside the input,
 * is not empty, holds only host-name characters, and hosts come in input order.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct bounds {
    const char *buf;  /* the input */
    size_t len;       /* its length */
    const char *last; /* the previous host */
};

static void on_link(void *ctx, const char *host, size_t len)
{
    struct bounds *b = ctx;
    if (len == 0 || host < b->buf || host + len > b->buf + b->len || host <= b->last)
        abort();
    for (size_t i = 0; i < len; i++) {
        if (host[i] == '@' || host[i] == '/' || host[i] == ':' || host[i] == ' ')
            abort();
    }
    b->last = host;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bounds b = {(const char *)data, size, NULL};
    pigeon_dns_scan_links(b.buf, size, on_link, &b);
    return 0;
}
