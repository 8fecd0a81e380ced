/*
 * dkim_ed25519.c - Ed25519 signatures through libsodium (see dkim_ed25519.h for why).
 *
 * libsodium is not linked: it is opened by its SONAME (the one the build found) the first
 * time an Ed25519 key is read, so a process that never signs with Ed25519 (pigeon
 * --version, a sendmail without DKIM) does not map it, and a system without it signs with
 * OpenSSL instead of failing to start. Only its header is needed to build.
 *
 * libsodium wants the 64-byte secret key (the 32-byte seed followed by the public key); it
 * is derived from the seed OpenSSL parsed, once per key, and wiped with the key.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#ifdef PIGEON_HAVE_SODIUM
#include <dlfcn.h>
#include <pthread.h>
#include <sodium.h>
#endif

#include "dkim/dkim_ed25519.h"

#ifdef PIGEON_HAVE_SODIUM
/* The functions used, with the header's prototypes (a mismatch does not compile). */
static struct {
    __typeof__(sodium_init) *init;
    __typeof__(crypto_sign_seed_keypair) *seed_keypair;
    __typeof__(crypto_sign_detached) *detached;
} sodium;
static int sodium_ok; /* set once by load(), read after pthread_once */
static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *h = dlopen(PIGEON_SODIUM_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL)
        return;
    *(void **)&sodium.init = dlsym(h, "sodium_init");
    *(void **)&sodium.seed_keypair = dlsym(h, "crypto_sign_seed_keypair");
    *(void **)&sodium.detached = dlsym(h, "crypto_sign_detached");
    /* sodium_init fails only without a random source, which signing does not use; a
     * library that fails it or lacks a function is left alone (OpenSSL signs). */
    sodium_ok = sodium.init != NULL && sodium.seed_keypair != NULL && sodium.detached != NULL &&
                sodium.init() >= 0;
}
#endif

void pg_dkim_ed25519_prepare(pigeon_dkim_key *key)
{
    key->ed_ready = 0;
#ifdef PIGEON_HAVE_SODIUM
    unsigned char seed[32], pk[32];
    size_t len = sizeof seed;
    if (key->alg != PIGEON_DKIM_ED25519_SHA256 || pthread_once(&sodium_once, load) != 0 ||
        !sodium_ok || EVP_PKEY_get_raw_private_key(key->pkey, seed, &len) != 1 ||
        len != sizeof seed)
        goto done;
    key->ed_ready = sodium.seed_keypair(pk, key->ed_sk, seed) == 0;
done:
    OPENSSL_cleanse(seed, sizeof seed);
#endif
}

int pg_dkim_ed25519_sign(const pigeon_dkim_key *key, const unsigned char *msg, size_t len,
                         unsigned char sig[64])
{
#ifdef PIGEON_HAVE_SODIUM
    /* ed_ready is set only after sodium_ok, so the functions are there. */
    return key->ed_ready && sodium.detached(sig, NULL, msg, len, key->ed_sk) == 0;
#else
    (void)key;
    (void)msg;
    (void)len;
    (void)sig;
    return 0;
#endif
}
