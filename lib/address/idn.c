/*
 * idn.c - domain normalization for addresses: RFC 5321 4.1.2 Domain and
 * address-literal, RFC 5321 4.1.3 IPv4/IPv6 literals, RFC 5890/5891 (IDNA2008)
 * A-labels and U-labels.
 *
 * Choice of IDNA processing: IDNA2008 with Unicode UTS #46 non-transitional mapping
 * (IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL). Non-transitional keeps "ß" and "ς" as
 * themselves (faß.de -> xn--fa-hia.de), as current browsers and registries do, and the
 * UTS #46 mapping lower-cases and maps full-width dots ("。") so domains typed with a
 * Chinese input method work. Emoji and other symbols are disallowed by IDNA2008 and
 * refused; there is no fallback to transitional processing, which would silently send
 * to a different domain.
 *
 * Purely ASCII domains without "xn--" labels are checked as LDH host names here and
 * not passed to libidn2 (IDNA2008 would refuse "ab--c" labels, which DNS allows).
 */
#include "address/idn.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "lazy/lazy.h"

/* RFC 1035 2.3.4 / RFC 5321 4.5.3.1.2: a label is at most 63 octets. */
#define LABEL_MAX 63

static int is_ascii(const char *s, size_t n);
static int has_alabel(const char *s, size_t n);
static int check_ldh(const char *s, char *why, size_t whylen);
static pigeon_err normalize_literal(const char *in, size_t n, char **domain, char *why,
                                    size_t whylen);
static pigeon_err normalize_idn(const char *in, size_t n, char **domain, char **domain_ascii,
                                char *why, size_t whylen);
static char *dup_lower(const char *s, size_t n);
static int set_why(char *why, size_t whylen, const char *reason);

/* Stores the reason for a refusal; returns 0 so checks can "return set_why(...)". */
static int set_why(char *why, size_t whylen, const char *reason)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s", reason);
    return 0;
}

static int is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

/* Nonzero if a label starts with the ACE prefix "xn--" (any case). */
static int has_alabel(const char *s, size_t n)
{
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            label = i + 1;
        } else if (i == label && n - i >= 4 && strncasecmp(s + i, "xn--", 4) == 0) {
            return 1;
        }
    }
    return 0;
}

static char *dup_lower(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    d[n] = '\0';
    return d;
}

/* RFC 5321 4.1.2: sub-domain = Let-dig [Ldh-str]; labels of 1..63 octets; no trailing
 * dot (a root-anchored name is not a valid Domain in a path). s is lower-case ASCII. */
static int check_ldh(const char *s, char *why, size_t whylen)
{
    size_t n = strlen(s);
    if (n == 0)
        return set_why(why, whylen, "missing domain after '@'");
    if (s[n - 1] == '.')
        return set_why(why, whylen, "domain ends with '.'");
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
                char msg[64];
                snprintf(msg, sizeof msg, "character '%c' is not allowed in a domain", c);
                return set_why(why, whylen, msg);
            }
            continue;
        }
        size_t len = i - start;
        if (len == 0)
            return set_why(why, whylen, "empty label in domain (\"..\" or leading '.')");
        if (len > LABEL_MAX)
            return set_why(why, whylen, "domain label longer than 63 octets");
        if (s[start] == '-' || s[i - 1] == '-')
            return set_why(why, whylen, "domain label starts or ends with '-'");
        start = i + 1;
    }
    return 1;
}

/* RFC 5321 4.1.3: "[" IPv4-address-literal / IPv6-address-literal "]". General
 * address literals (other tags) have no registered use and are refused. */
static pigeon_err normalize_literal(const char *in, size_t n, char **domain, char *why,
                                    size_t whylen)
{
    char addr[64];
    unsigned char bin[16];
    if (n < 3 || in[n - 1] != ']' || n - 2 >= sizeof addr) {
        set_why(why, whylen, "invalid address literal (expected [1.2.3.4] or [IPv6:...])");
        return PIGEON_ERR_ADDRESS;
    }
    int v6 = n - 2 > 5 && strncasecmp(in + 1, "IPv6:", 5) == 0;
    size_t off = v6 ? 6 : 1;
    memcpy(addr, in + off, n - 1 - off);
    addr[n - 1 - off] = '\0';
    if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, bin) != 1) {
        set_why(why, whylen,
                v6 ? "invalid IPv6 address literal"
                   : "invalid address literal (expected "
                     "[1.2.3.4] or [IPv6:...])");
        return PIGEON_ERR_ADDRESS;
    }
    /* The tag is written "IPv6" as registered (RFC 5321 4.1.3); hex digits lower-cased. */
    char *low = dup_lower(addr, strlen(addr));
    if (low == NULL)
        return PIGEON_ERR_NOMEM;
    size_t cap = strlen(low) + 8;
    *domain = malloc(cap);
    if (*domain != NULL)
        snprintf(*domain, cap, "[%s%s]", v6 ? "IPv6:" : "", low);
    free(low);
    return *domain != NULL ? PIGEON_OK : PIGEON_ERR_NOMEM;
}

/* IDNA2008 via libidn2: to A-labels (validating any A-label given, which libidn2
 * round-trips), then back to U-labels for the display form. */
static pigeon_err normalize_idn(const char *in, size_t n, char **domain, char **domain_ascii,
                                char *why, size_t whylen)
{
    /* libidn2 is loaded by the first international domain (lib/lazy/lazy.h). */
    if (pg_lazy_idn2(NULL, 0) != PIGEON_OK)
        return PIGEON_ERR_UNSUPPORTED;
    char *input = dup_lower(in, n);
    char *ascii = NULL;
    char *unicode = NULL;
    char *again = NULL;
    pigeon_err err = PIGEON_ERR_NOMEM;
    if (input == NULL)
        goto fail;
    int rc = idn2_to_ascii_8z(input, &ascii, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc == IDN2_MALLOC)
        goto fail;
    if (rc != IDN2_OK) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid international domain (%s)", idn2_strerror(rc));
        set_why(why, whylen, msg);
        err = PIGEON_ERR_ADDRESS;
        goto fail;
    }
    err = PIGEON_ERR_ADDRESS;
    if (!check_ldh(ascii, why, whylen))
        goto fail;
    rc = idn2_to_unicode_8z8z(ascii, &unicode, 0);
    if (rc != IDN2_OK) {
        err = rc == IDN2_MALLOC ? PIGEON_ERR_NOMEM : PIGEON_ERR_ADDRESS;
        set_why(why, whylen, "invalid international domain (cannot convert to Unicode)");
        goto fail;
    }
    /* An A-label must be the encoding of a valid U-label (RFC 5891 5.4); libidn2 passes
     * some that are not (xn--cnk is U+3223, which UTS #46 maps away), so go round. */
    rc = idn2_to_ascii_8z(unicode, &again, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc == IDN2_MALLOC) {
        err = PIGEON_ERR_NOMEM;
        goto fail;
    }
    if (rc != IDN2_OK || strcmp(again, ascii) != 0) {
        set_why(why, whylen, "invalid international domain (A-label of a disallowed name)");
        goto fail;
    }
    free(input);
    idn2_free(again);
    *domain = unicode;
    *domain_ascii = ascii;
    return PIGEON_OK;
fail:
    free(input);
    idn2_free(again);
    idn2_free(ascii);
    idn2_free(unicode);
    return err;
}

pigeon_err pg_idn_domain_normalize(const char *in, size_t n, char **domain, char **domain_ascii,
                                   char *why, size_t whylen)
{
    pigeon_err err;
    *domain = NULL;
    *domain_ascii = NULL;
    if (n > 0 && in[0] == '[') {
        err = normalize_literal(in, n, domain, why, whylen);
    } else if (n > 0 && n <= 1024 && (!is_ascii(in, n) || has_alabel(in, n))) {
        err = normalize_idn(in, n, domain, domain_ascii, why, whylen);
        if (err == PIGEON_OK)
            return PIGEON_OK;
    } else if (n > 1024) {
        set_why(why, whylen, "domain longer than 255 octets");
        err = PIGEON_ERR_ADDRESS;
    } else {
        *domain = dup_lower(in, n);
        err = *domain == NULL ? PIGEON_ERR_NOMEM : PIGEON_OK;
        if (err == PIGEON_OK && !check_ldh(*domain, why, whylen))
            err = PIGEON_ERR_ADDRESS;
    }
    if (err == PIGEON_OK) {
        *domain_ascii = strdup(*domain);
        if (*domain_ascii == NULL)
            err = PIGEON_ERR_NOMEM;
    }
    if (err != PIGEON_OK) {
        free(*domain);
        free(*domain_ascii);
        *domain = NULL;
        *domain_ascii = NULL;
    }
    return err;
}
