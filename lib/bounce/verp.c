/*
 * verp.c - authenticated VERP tokens (pigeon/bounce.h): the envelope sender
 * local+<token>@domain names the recipient, and an HMAC-SHA256 tag (RFC 2104, through
 * OpenSSL 3's EVP_Q_mac) makes a token that was not made with our key fail to decode.
 *
 * RFC 5321 4.5.3.1.1 bounds a local part at 64 octets, so a recipient that does not fit
 * is named by the caller's reference instead. Tokens are compared case-insensitively:
 * the tag is lower-case base32 and is computed over the lower-cased payload, so an MTA
 * that folds the case of the local part does not break it.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "pigeon/bounce.h"
#include "util/buf.h"

/* RFC 5321 4.5.3.1.1: the maximum total length of a user name or other local-part. */
#define LOCAL_MAX 64
/* Characters of the tag: 10 base32 characters carry 50 bits. */
#define TAG_LEN 10
/* Longest reference accepted. */
#define REF_MAX 40
/* Shortest key accepted (128 bits). */
#define KEY_MIN 16

static int atext(int c);
static int dot_atom(const char *s, size_t n);
static void make_tag(const void *key, size_t keylen, const char *payload, size_t n,
                     const char *domain, char out[TAG_LEN + 1], int *ok);
static int ref_valid(const char *ref);

/* RFC 5322 3.2.3 atext, ASCII only. */
static int atext(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5322 3.2.3 dot-atom-text: atext runs separated by single dots. */
static int dot_atom(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.' ? s[i + 1] == '.' : !atext((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

static int ref_valid(const char *ref)
{
    size_t n = strlen(ref);
    if (n == 0 || n > REF_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)ref[i]) && ref[i] != '.')
            return 0;
    }
    return 1;
}

/* tag = base32(HMAC-SHA256(key, "pigeon-verp1" NUL lower(payload) NUL lower(domain)))[0..10). */
static void make_tag(const void *key, size_t keylen, const char *payload, size_t n,
                     const char *domain, char out[TAG_LEN + 1], int *ok)
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char mac[32];
    size_t maclen = 0;
    pg_buf msg;
    pg_buf_init(&msg);
    pg_buf_append(&msg, "pigeon-verp1", 13); /* the NUL is part of the label */
    for (size_t i = 0; i < n; i++)
        pg_buf_putc(&msg, (char)tolower((unsigned char)payload[i]));
    pg_buf_putc(&msg, '\0');
    for (const char *p = domain; *p != '\0'; p++)
        pg_buf_putc(&msg, (char)tolower((unsigned char)*p));
    *ok = msg.err == PIGEON_OK &&
          EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen,
                    (const unsigned char *)msg.data, msg.len, mac, sizeof mac, &maclen) != NULL &&
          maclen == sizeof mac;
    for (size_t i = 0; i < TAG_LEN; i++) {
        size_t bit = i * 5, byte = bit / 8, shift = bit % 8;
        unsigned v = (unsigned)mac[byte] << 8 | mac[byte + 1];
        out[i] = b32[(v >> (11 - shift)) & 31];
    }
    out[TAG_LEN] = '\0';
    OPENSSL_cleanse(mac, sizeof mac);
    pg_buf_cleanup(&msg);
}

pigeon_err pigeon_bounce_verp_encode(const char *from, const char *rcpt, const char *ref,
                                     const void *key, size_t keylen, char **out)
{
    char tag[TAG_LEN + 1];
    int ok = 0;
    pg_buf payload, addr;
    if (out != NULL)
        *out = NULL;
    if (from == NULL || key == NULL || keylen < KEY_MIN || out == NULL ||
        (ref != NULL && !ref_valid(ref)))
        return PIGEON_ERR_INVALID;
    const char *at = strrchr(from, '@');
    if (at == NULL || !dot_atom(from, (size_t)(at - from)) || at[1] == '\0' ||
        !dot_atom(at + 1, strlen(at + 1)))
        return PIGEON_ERR_INVALID;
    size_t flocal = (size_t)(at - from);
    pg_buf_init(&payload);
    pg_buf_init(&addr);
    const char *rat = rcpt != NULL ? strrchr(rcpt, '@') : NULL;
    int inline_ok =
        rat != NULL && dot_atom(rcpt, (size_t)(rat - rcpt)) && dot_atom(rat + 1, strlen(rat + 1));
    if (inline_ok) {
        pg_buf_append(&payload, rcpt, (size_t)(rat - rcpt));
        pg_buf_putc(&payload, '=');
        pg_buf_puts(&payload, rat + 1);
    }
    /* local "+" payload "-" tag must fit the 64-octet local part. */
    if (!inline_ok || flocal + 1 + payload.len + 1 + TAG_LEN > LOCAL_MAX) {
        pg_buf_reset(&payload);
        if (ref == NULL) {
            pg_buf_cleanup(&payload);
            return PIGEON_ERR_TOO_LARGE;
        }
        pg_buf_putc(&payload, '_');
        pg_buf_puts(&payload, ref);
        if (flocal + 1 + payload.len + 1 + TAG_LEN > LOCAL_MAX) {
            pg_buf_cleanup(&payload);
            return PIGEON_ERR_TOO_LARGE;
        }
    }
    if (payload.err != PIGEON_OK) {
        pg_buf_cleanup(&payload);
        return PIGEON_ERR_NOMEM;
    }
    make_tag(key, keylen, payload.data, payload.len, at + 1, tag, &ok);
    if (!ok) {
        pg_buf_cleanup(&payload);
        return PIGEON_ERR_NOMEM;
    }
    pg_buf_printf(&addr, "%.*s+%s-%s@%s", (int)flocal, from, payload.data, tag, at + 1);
    pg_buf_cleanup(&payload);
    *out = pg_buf_detach(&addr, NULL);
    return *out != NULL ? PIGEON_OK : PIGEON_ERR_NOMEM;
}

/* Tries the token that starts at tok (up to end): payload "-" tag. */
static pigeon_err try_token(const char *tok, size_t n, const char *domain, const void *key,
                            size_t keylen, char **rcpt, char **ref)
{
    char tag[TAG_LEN + 1];
    int ok = 0;
    if (n < TAG_LEN + 2 || tok[n - TAG_LEN - 1] != '-')
        return PIGEON_ERR_NOTFOUND;
    size_t plen = n - TAG_LEN - 1;
    make_tag(key, keylen, tok, plen, domain, tag, &ok);
    if (!ok)
        return PIGEON_ERR_NOMEM;
    /* Constant-time comparison, case-insensitive (the tag is lower case). */
    unsigned diff = 0;
    for (size_t i = 0; i < TAG_LEN; i++)
        diff |= (unsigned)(tolower((unsigned char)tok[plen + 1 + i]) ^ tag[i]);
    if (diff != 0)
        return PIGEON_ERR_AUTH;
    if (tok[0] == '_') {
        *ref = strndup(tok + 1, plen - 1);
        return *ref != NULL ? PIGEON_OK : PIGEON_ERR_NOMEM;
    }
    const char *eq = NULL;
    for (size_t i = plen; i > 0 && eq == NULL; i--)
        eq = tok[i - 1] == '=' ? tok + i - 1 : NULL;
    if (eq == NULL || eq == tok || eq + 1 == tok + plen)
        return PIGEON_ERR_AUTH;
    pg_buf b;
    pg_buf_init(&b);
    pg_buf_append(&b, tok, (size_t)(eq - tok));
    pg_buf_putc(&b, '@');
    for (const char *p = eq + 1; p < tok + plen; p++)
        pg_buf_putc(&b, (char)tolower((unsigned char)*p));
    *rcpt = pg_buf_detach(&b, NULL);
    return *rcpt != NULL ? PIGEON_OK : PIGEON_ERR_NOMEM;
}

pigeon_err pigeon_bounce_verp_decode(const char *addr, const char *from_domain, const void *key,
                                     size_t keylen, char **rcpt, char **ref)
{
    if (rcpt != NULL)
        *rcpt = NULL;
    if (ref != NULL)
        *ref = NULL;
    if (addr == NULL || key == NULL || keylen < KEY_MIN || rcpt == NULL || ref == NULL)
        return PIGEON_ERR_INVALID;
    const char *at = strrchr(addr, '@');
    const char *end = at != NULL ? at : addr + strlen(addr);
    const char *domain = from_domain != NULL ? from_domain : at != NULL ? at + 1 : NULL;
    if (domain == NULL || *domain == '\0')
        return PIGEON_ERR_INVALID;
    if (at == NULL) /* the token alone */
        return try_token(addr, (size_t)(end - addr), domain, key, keylen, rcpt, ref);
    /* The sender's own local part may hold '+': the tag tells which split is ours. */
    pigeon_err result = PIGEON_ERR_NOTFOUND;
    for (const char *p = addr; p < end; p++) {
        if (*p != '+')
            continue;
        pigeon_err e = try_token(p + 1, (size_t)(end - p - 1), domain, key, keylen, rcpt, ref);
        if (e == PIGEON_OK || e == PIGEON_ERR_NOMEM)
            return e;
        if (e == PIGEON_ERR_AUTH)
            result = e;
    }
    return result;
}
