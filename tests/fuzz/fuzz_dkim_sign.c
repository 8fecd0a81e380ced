/*
 * fuzz_dkim_sign.c - libFuzzer target for the DKIM signer: its header-block reader, the
 * field splitter, both canonicalizations and the From check, on any message.
 *
 * Properties checked on every input (Ed25519 is deterministic and t= fixed, so equal
 * input gives equal output):
 *  - the fields are the same whether the message comes in one chunk or split at any point
 *    (a CRLF cut in two included), and the same after reset;
 *  - they are CRLF-terminated lines, no bare CR or LF, each starting "DKIM-Signature:" or
 *    folding white space, none over 998 octets, with no l= tag.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pigeon_dkim_key *key;

static int sign(pigeon_dkim_signer *s, const uint8_t *data, size_t size, size_t split, char **out,
                size_t *len)
{
    if (pigeon_dkim_signer_update(s, data, split) != PIGEON_OK ||
        pigeon_dkim_signer_update(s, data + split, size - split) != PIGEON_OK) {
        pigeon_dkim_signer_reset(s);
        return -1;
    }
    return pigeon_dkim_signer_final(s, 1528637909, out, len) == PIGEON_OK ? 0 : -1;
}

static void check_fields(const char *f, size_t n)
{
    size_t line = 0;
    if (n < 15 || memcmp(f, "DKIM-Signature:", 15) != 0)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (f[i] == '\r' && (i + 1 == n || f[i + 1] != '\n'))
            abort();
        if (f[i] == '\n' && (i == 0 || f[i - 1] != '\r'))
            abort();
        if (f[i] == '\n') {
            if (line > 998)
                abort();
            line = 0;
            if (i + 1 < n && f[i + 1] != ' ' && memcmp(f + i + 1, "DKIM-Signature:", 15) != 0)
                abort();
            continue;
        }
        line++;
        if (f[i] == 'l' && i > 0 && (f[i - 1] == ' ' || f[i - 1] == ';') && i + 1 < n &&
            f[i + 1] == '=')
            abort();
    }
    if (n < 2 || f[n - 1] != '\n')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char seed[] = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
    if (key == NULL && pigeon_dkim_key_parse(seed, strlen(seed), &key, NULL, 0) != PIGEON_OK)
        abort();
    if (size < 1)
        return 0;
    pigeon_dkim_opts o;
    memset(&o, 0, sizeof o);
    o.domain = "example.com";
    o.selector = "s";
    o.key = key;
    o.header_canon = (data[0] & 1) ? PIGEON_DKIM_SIMPLE : PIGEON_DKIM_RELAXED;
    o.body_canon = (data[0] & 2) ? PIGEON_DKIM_SIMPLE : PIGEON_DKIM_RELAXED;
    o.check_from = (data[0] & 4) != 0;
    o.expire_seconds = (data[0] & 8) ? 3600 : 0;
    data++, size--;
    pigeon_dkim_signer *s = NULL;
    if (pigeon_dkim_signer_new(&o, &s, NULL, 0) != PIGEON_OK)
        abort();
    char *whole = NULL, *split = NULL;
    size_t wl = 0, sl = 0;
    int rw = sign(s, data, size, size, &whole, &wl);
    /* The split point comes from the input, so the fuzzer can cut anywhere (a CRLF too). */
    size_t at = size > 0 ? (size_t)data[size - 1] * 131 % (size + 1) : 0;
    int rs = sign(s, data, size, at, &split, &sl);
    if (rw != rs)
        abort();
    if (rw == 0) {
        if (wl != sl || memcmp(whole, split, wl) != 0)
            abort();
        check_fields(whole, wl);
    }
    free(whole);
    free(split);
    pigeon_dkim_signer_free(s);
    return 0;
}
