/*
 * sasl.c - SASL client mechanisms for SMTP AUTH: PLAIN (RFC 4616), LOGIN, CRAM-MD5
 * (RFC 2195, HMAC-MD5 from RFC 2104 through OpenSSL 3's EVP_MAC) and XOAUTH2.
 *
 * Every intermediate buffer that held a secret is wiped with OPENSSL_cleanse.
 */
#include "smtp/sasl.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

static pigeon_err cram_md5(const pg_sasl *s, const unsigned char *ch, size_t n, pg_buf *out);

const char *pg_sasl_name(pg_sasl_mech mech)
{
    switch (mech) {
    case PG_SASL_PLAIN:
        return "PLAIN";
    case PG_SASL_LOGIN:
        return "LOGIN";
    case PG_SASL_CRAM_MD5:
        return "CRAM-MD5";
    case PG_SASL_XOAUTH2:
        return "XOAUTH2";
    }
    return "?";
}

void pg_sasl_init(pg_sasl *s, pg_sasl_mech mech, const char *user, const char *secret)
{
    memset(s, 0, sizeof *s);
    s->mech = mech;
    s->user = user;
    s->secret = secret;
}

pigeon_err pg_sasl_initial(const pg_sasl *s, pg_buf *out, int *has)
{
    *has = 0;
    if (s->user == NULL || s->secret == NULL)
        return PIGEON_ERR_INVALID;
    if (s->mech == PG_SASL_PLAIN) {
        /* RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd. */
        *has = 1;
        pg_buf_putc(out, '\0');
        pg_buf_puts(out, s->user);
        pg_buf_putc(out, '\0');
        return pg_buf_puts(out, s->secret);
    }
    if (s->mech == PG_SASL_XOAUTH2) {
        if (strchr(s->user, '\001') != NULL || strchr(s->secret, '\001') != NULL)
            return PIGEON_ERR_INVALID;
        *has = 1;
        pg_buf_puts(out, "user=");
        pg_buf_puts(out, s->user);
        pg_buf_puts(out, "\001auth=Bearer ");
        pg_buf_puts(out, s->secret);
        return pg_buf_puts(out, "\001\001");
    }
    return PIGEON_OK;
}

pigeon_err pg_hmac_md5_hex(const void *key, size_t keylen, const void *msg, size_t n, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[16];
    size_t maclen = 0;
    pigeon_err err = PIGEON_ERR_NOMEM;
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = hmac != NULL ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"MD5", 0),
        OSSL_PARAM_construct_end(),
    };
    out[0] = '\0';
    if (ctx == NULL)
        goto fail;
    err = PIGEON_ERR_UNSUPPORTED; /* MD5 is unavailable, e.g. in a FIPS-only configuration */
    if (!EVP_MAC_init(ctx, key, keylen, params) || !EVP_MAC_update(ctx, msg, n) ||
        !EVP_MAC_final(ctx, mac, &maclen, sizeof mac) || maclen != sizeof mac)
        goto fail;
    for (size_t i = 0; i < sizeof mac; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[32] = '\0';
    err = PIGEON_OK;
fail:
    OPENSSL_cleanse(mac, sizeof mac);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    return err;
}

/* RFC 2195 2: the response is the user name, a space, and the keyed MD5 digest in hex. */
static pigeon_err cram_md5(const pg_sasl *s, const unsigned char *ch, size_t n, pg_buf *out)
{
    char digest[33];
    pigeon_err err = pg_hmac_md5_hex(s->secret, strlen(s->secret), ch, n, digest);
    if (err == PIGEON_OK) {
        pg_buf_puts(out, s->user);
        pg_buf_putc(out, ' ');
        err = pg_buf_append(out, digest, 32);
    }
    OPENSSL_cleanse(digest, sizeof digest);
    return err;
}

pigeon_err pg_sasl_step(pg_sasl *s, const unsigned char *challenge, size_t n, pg_buf *out)
{
    if (n > PG_SASL_CHALLENGE_MAX || s->challenges >= PG_SASL_MAX_CHALLENGES)
        return PIGEON_ERR_PROTOCOL;
    int index = s->challenges++;
    int has = 0;
    switch (s->mech) {
    case PG_SASL_PLAIN:
        /* RFC 4616: one message from the client. Without an initial response the server
         * sends an empty challenge first, which gets that message. */
        if (index > 0 || s->sent_initial)
            return PIGEON_ERR_PROTOCOL;
        return pg_sasl_initial(s, out, &has);
    case PG_SASL_LOGIN:
        /* The challenges are "Username:" and "Password:"; servers vary their spelling, so
         * the order decides, not the text. */
        if (index > 1)
            return PIGEON_ERR_PROTOCOL;
        return pg_buf_puts(out, index == 0 ? s->user : s->secret);
    case PG_SASL_CRAM_MD5:
        if (index > 0)
            return PIGEON_ERR_PROTOCOL;
        return cram_md5(s, challenge, n, out);
    case PG_SASL_XOAUTH2:
        if (!s->sent_initial && index == 0)
            return pg_sasl_initial(s, out, &has);
        /* After the token, a challenge is the server's JSON error; the client answers
         * with an empty response to get the final failure reply. */
        if (index > (s->sent_initial ? 0 : 1))
            return PIGEON_ERR_PROTOCOL;
        return PIGEON_ERR_AUTH;
    }
    return PIGEON_ERR_INVALID;
}
