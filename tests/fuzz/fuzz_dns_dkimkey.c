/*
 * fuzz_dns_dkimkey.c - libFuzzer target for the DKIM key record parser and the other
 * tag-list records (MTA-STS, TLS-RPT, BIMI) in lib/dns/records.c.
 *
 * Invariants: no out-of-bounds access (ASan); p= points inside the input; the key type
 * of a parsed record is rsa or ed25519; a refused record says why.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    pigeon_dns_dkim_record k;
    if (pigeon_dns_dkim_record_parse(buf, size, &k) == PIGEON_OK) {
        if (k.p == NULL || k.p < buf || k.p + k.p_len > buf + size)
            abort();
        if (strcmp(k.k, "rsa") != 0 && strcmp(k.k, "ed25519") != 0)
            abort();
    } else if (k.error[0] == '\0') {
        abort();
    }
    static const char *const versions[] = {"STSv1", "TLSRPTv1", "BIMI1"};
    for (int i = 0; i < 3; i++) {
        pigeon_tagrec t;
        if (pigeon_tagrec_parse(buf, size, versions[i], &t) == PIGEON_OK) {
            if (strcmp(t.version, versions[i]) != 0)
                abort();
        } else if (t.error[0] == '\0') {
            abort();
        }
    }
    char org[256];
    char name[300];
    if (size < sizeof name) {
        memcpy(name, buf, size);
        name[size] = '\0';
        if (pigeon_dns_org_domain(name, org, sizeof org) == 0 && strlen(org) > strlen(name))
            abort();
    }
    return 0;
}
