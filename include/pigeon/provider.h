/*
 * pigeon/provider.h - built-in presets for mail providers' submission servers.
 *
 * A preset names the host, port and TLS mode of a provider's SMTP submission service, the
 * address domains it serves (so a From address can pick it: qq.com -> qq), and the notes
 * users trip on (authorization codes instead of passwords, daily limits, the sender that
 * must equal the login). The table is static and thread-safe to read.
 */
#ifndef PIGEON_PROVIDER_H
#define PIGEON_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How TLS is used on a preset's port (the same values as pigeon_tls_mode in smtp.h). */
typedef enum pigeon_provider_tls {
    PIGEON_PROVIDER_TLS_IMPLICIT = 1, /* TLS from the first byte (port 465) */
    PIGEON_PROVIDER_TLS_STARTTLS = 2, /* plaintext greeting, then STARTTLS (587) */
} pigeon_provider_tls;

typedef struct pigeon_provider {
    const char *name;        /* preset name ("qq", "163", "gmail", "ses-us-east-1") */
    const char *host;        /* submission host */
    uint16_t port;           /* submission port */
    pigeon_provider_tls tls; /* TLS mode on that port */
    const char *domains;     /* address domains it serves, space-separated, or "" */
    const char *login;       /* what to log in with ("the full address", "apikey") */
    const char *notes;       /* what users trip on: one or two sentences */
    double rate_per_second;  /* a conservative default sending rate for the daemon's rate
                                limit (not a published quota), 0 for none */
    long daily_limit;        /* a conservative default daily cap for a personal account (not
                                a published quota), 0 for none */
} pigeon_provider;

/* The number of presets in the table, and the i-th (NULL past the end). SES appears once,
 * as "ses-REGION" with host "email-smtp.REGION.amazonaws.com". */
size_t pigeon_provider_count(void);
const pigeon_provider *pigeon_provider_at(size_t i);

/*
 * Looks a preset up by name (case-insensitive). "ses-<region>" (e.g. "ses-eu-west-1")
 * fills *out with the region's host in hostbuf. Returns 0 on success, -1 if unknown.
 * out and hostbuf are written by the call; hostbuf must hold 96 bytes.
 */
int pigeon_provider_lookup(const char *name, pigeon_provider *out, char *hostbuf, size_t hostlen);

/* The preset serving an address domain ("qq.com", "FOXMAIL.COM"), or NULL. */
const pigeon_provider *pigeon_provider_for_domain(const char *domain);

#ifdef __cplusplus
}
#endif
#endif
