/*
 * fuzz_dkim_key.c - libFuzzer target for what a DKIM key file and a tag list can hold:
 * pigeon_dkim_key_parse() (PEM through OpenSSL, or a bare Ed25519 seed) and the tag=value
 * parser used on DKIM-Signature fields.
 *
 * Properties: no crash or leak on any input; a key that parses is RSA of 1024-4096 bits or
 * Ed25519, and its DNS value starts "v=DKIM1; k="; a found tag's value lies inside the
 * input and has no white space at either end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim/dkim_tags.h"
#include "pigeon/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pigeon_dkim_key *k = NULL;
    char why[200];
    if (pigeon_dkim_key_parse(data, size, &k, why, sizeof why) == PIGEON_OK) {
        unsigned bits = pigeon_dkim_key_bits(k);
        if (pigeon_dkim_key_alg(k) == PIGEON_DKIM_RSA_SHA256 && (bits < 1024 || bits > 4096))
            abort();
        char *v = NULL;
        if (pigeon_dkim_key_dns_value(k, &v) != PIGEON_OK || strncmp(v, "v=DKIM1; k=", 11) != 0)
            abort();
        free(v);
        pigeon_dkim_key_free(k);
    }
    static const char *const tags[] = {"v", "a", "d", "s", "b", "bh", "h", "p", "k"};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        const char *v;
        size_t n;
        if (!pg_dkim_tag_find((const char *)data, size, tags[i], &v, &n))
            continue;
        if (v < (const char *)data || v + n > (const char *)data + size)
            abort();
        if (n > 0 && (ws(v[0]) || ws(v[n - 1])))
            abort();
    }
    return 0;
}
