/*
 * fuzz_dns_spf.c - libFuzzer target for the SPF record parser (lib/dns/spf.c).
 *
 * Invariants: no out-of-bounds access (ASan); a parsed record has at most
 * PIGEON_SPF_MAX_TERMS terms, NUL-terminated domains, prefix lengths within the address
 * width, redirect/exp/all indexes inside the terms; a refused one says why.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pigeon_spf_record r;
    pigeon_err err = pigeon_spf_parse((const char *)data, size, &r);
    if (err != PIGEON_OK) {
        if (r.error[0] == '\0')
            abort();
        return 0;
    }
    if (r.count < 0 || r.count > PIGEON_SPF_MAX_TERMS || r.redirect >= r.count ||
        r.exp >= r.count || r.all >= r.count)
        abort();
    for (int i = 0; i < r.count; i++) {
        const pigeon_spf_term *t = &r.terms[i];
        if (memchr(t->domain, '\0', sizeof t->domain) == NULL || t->cidr4 < 0 || t->cidr4 > 32 ||
            t->cidr6 < 0 || t->cidr6 > 128)
            abort();
    }
    return 0;
}
