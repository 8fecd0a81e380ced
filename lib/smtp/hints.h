/*
 * hints.h - what to do about the SMTP errors people actually hit (internal, pure).
 *
 * Two tables: server replies keyed on provider family + reply code + a text substring
 * (QQ's 535 wants the authorization code, NetEase's 554 DT:SPM is its spam filter, ...),
 * and situations we diagnose ourselves (the wrong TLS mode for the port, STARTTLS not
 * offered). Every hint is a static English sentence or two; NULL when we know nothing
 * useful.
 */
#ifndef PG_HINTS_H
#define PG_HINTS_H

#include <stdint.h>

/* Provider families the reply table knows. */
typedef enum pg_hint_family {
    PG_FAMILY_OTHER = 0,     /* unknown provider */
    PG_FAMILY_QQ = 1,        /* QQ Mail, Foxmail, Tencent Exmail */
    PG_FAMILY_NETEASE = 2,   /* 163, 126, yeah.net */
    PG_FAMILY_GMAIL = 3,     /* Gmail, Google Workspace */
    PG_FAMILY_MICROSOFT = 4, /* Outlook.com, Office 365 */
} pg_hint_family;

/* The family of a preset name ("qq", "163", "qq-exmail") or, when provider is NULL or
 * unknown, of a host name ("smtp.qq.com", "smtp.126.com"). Either may be NULL. */
pg_hint_family pg_hint_family_of(const char *provider, const char *host);

/* A hint for a server reply (code, enhanced code or "" / NULL, text or NULL) received at
 * stage ("auth", "mail", "rcpt", "data", "dot", ...; NULL for any), or NULL. */
const char *pg_hint_for_reply(pg_hint_family family, const char *stage, int code,
                              const char *enhanced, const char *text);

/* Situations we diagnose ourselves. */
typedef enum pg_hint_situation {
    PG_HINT_GREETING_IN_TLS_MODE = 1, /* implicit TLS, but the server sent a greeting */
    PG_HINT_TLS_RECORD_IN_PLAIN = 2,  /* plaintext or STARTTLS, but a TLS record came */
    PG_HINT_GREETING_TIMEOUT_465 = 3, /* no greeting on port 465 in STARTTLS/none mode */
    PG_HINT_NO_STARTTLS = 4,          /* STARTTLS required but not offered */
    PG_HINT_STARTTLS_REFUSED = 5,     /* STARTTLS offered but refused */
    PG_HINT_AUTH_PLAINTEXT = 6,       /* credentials given with tls none */
    PG_HINT_NO_AUTH_OFFERED = 7,      /* credentials given but AUTH not offered */
    PG_HINT_NO_COMMON_MECH = 8,       /* AUTH offered, but not a mechanism we can use */
    PG_HINT_CERT_UNTRUSTED = 9,       /* chain verification failed */
    PG_HINT_CERT_NAME = 10,           /* host name mismatch */
    PG_HINT_CERT_EXPIRED = 11,        /* certificate expired or not yet valid */
    PG_HINT_TLS_OLD_VERSION = 12,     /* the server only speaks TLS < 1.2 */
    PG_HINT_TOO_LARGE_LOCAL = 13,     /* larger than the server's SIZE */
    PG_HINT_STARTTLS_INJECTION = 14,  /* bytes after the STARTTLS 220 */
    PG_HINT_CONNECT_REFUSED = 15,     /* nothing listens on the port */
    PG_HINT_TIMEOUT = 16,             /* a step timed out */
} pg_hint_situation;

/* The hint for a situation; port is the port used (some hints name the right one). */
const char *pg_hint_for_situation(pg_hint_situation s, uint16_t port);

#endif
