/*
 * dkim_ed25519.c - Ed25519 signatures through libsodium (see dkim_ed25519.h for why).
 *
 * libsodium wants the 64-byte secret key (the 32-byte seed followed by the public key); it
 * is derived from the seed OpenSSL parsed, once per key, and wiped with the key.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#ifdef PIGEON_HAVE_SODIUM
#include <sodium.h>
#endif

#include "dkim/dkim_ed25519.h"

void pg_dkim_ed25519_prepare(pigeon_dkim_key *key)
{
    key->ed_ready = 0;
#ifdef PIGEON_HAVE_SODIUM
    unsigned char seed[32], pk[32];
    size_t len = sizeof seed;
    /* sodium_init is idempotent and thread-safe; it fails only without a random source,
     * which signing does not use: OpenSSL then signs. */
    if (key->alg != PIGEON_DKIM_ED25519_SHA256 || sodium_init() < 0 ||
        EVP_PKEY_get_raw_private_key(key->pkey, seed, &len) != 1 || len != sizeof seed)
        goto done;
    key->ed_ready = crypto_sign_seed_keypair(pk, key->ed_sk, seed) == 0;
done:
    OPENSSL_cleanse(seed, sizeof seed);
#endif
}

int pg_dkim_ed25519_sign(const pigeon_dkim_key *key, const unsigned char *msg, size_t len,
                         unsigned char sig[64])
{
#ifdef PIGEON_HAVE_SODIUM
    return key->ed_ready && crypto_sign_detached(sig, NULL, msg, len, key->ed_sk) == 0;
#else
    (void)key;
    (void)msg;
    (void)len;
    (void)sig;
    return 0;
#endif
}
