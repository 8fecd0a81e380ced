/*
 * fuzz_dns_dmarc.c - libFuzzer target for the DMARC record parser (lib/dns/records.c).
 *
 * Invariants: no out-of-bounds access (ASan); a usable record has a policy, pct within
 * 0..100 and adkim/aspf of r or s; errors are counted with the first one described.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pigeon_dmarc_record r;
    pigeon_err err = pigeon_dmarc_parse((const char *)data, size, &r);
    if ((r.errors > 0) != (r.error[0] != '\0'))
        abort();
    if (err != PIGEON_OK)
        return 0;
    if (r.p == PIGEON_DMARC_UNSET || r.pct < 0 || r.pct > 100 ||
        (r.adkim != 'r' && r.adkim != 's') || (r.aspf != 'r' && r.aspf != 's') ||
        memchr(r.rua, '\0', sizeof r.rua) == NULL)
        abort();
    return 0;
}
