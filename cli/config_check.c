/*
 * config_check.c - one validator per setting, shared by the command line (connopt.c) and
 * the configuration file (config.c), so that a value refused as --helo is refused as
 * "helo =" too, and no file value reaches the wire unchecked (a CR in helo would end the
 * EHLO line early and smuggle a command: RFC 5321 2.3.8, lines end only with CRLF).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "pigeon/address.h"

/* Parses a decimal integer in [min, max]; returns 0 or -1. */
static int parse_long(const char *s, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno != 0 || end == s || *end != '\0' || v < min || v > max ? -1 : 0;
}

/* A positive decimal number (rate_per_second may be 0.5). */
static int parse_positive(const char *s, double max)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    return errno != 0 || end == s || *end != '\0' || !(v > 0) || v > max ? -1 : 0;
}

static int one_of(const char *v, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strcasecmp(v, *words) == 0)
            return 1;
    return 0;
}

/* 64 hex digits, optionally in colon-separated pairs. */
static int fingerprint_valid(const char *s)
{
    int digits = 0;
    for (; *s != '\0'; s++) {
        if (isxdigit((unsigned char)*s))
            digits++;
        else if (*s != ':')
            return 0;
    }
    return digits == 64;
}

/* Any C0 control character or DEL (tab allowed where words may be separated). */
static int has_control(const char *s, int allow_tab)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && !(allow_tab && c == '\t')) || c == 0x7f)
            return 1;
    }
    return 0;
}

/* RFC 5321 4.1.1.1 / 4.1.3: the EHLO argument is a Domain (ASCII labels: letters, digits,
 * hyphens; underscores are tolerated as many hosts have them) or an address literal in
 * brackets. Length bound by RFC 5321 4.5.3.1.2 (255 octets for a domain). */
static int helo_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return 0;
    if (s[0] == '[') {
        if (n < 3 || s[n - 1] != ']')
            return 0;
        for (size_t i = 1; i + 1 < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c <= 32 || c >= 127 || c == '[' || c == ']' || c == '\\')
                return 0;
        }
        return 1;
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if (isalnum(c) || c == '-' || c == '_') {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0 || n > 1;
}

/* A host name or address: no white space, no control character, no slash (a URL). */
static int host_valid(const char *s)
{
    return *s != '\0' && strpbrk(s, " \t/") == NULL && !has_control(s, 0) && strlen(s) < 256;
}

int cfg_duration_s(const char *s, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    long unit = 1;
    if (errno != 0 || end == s || v <= 0)
        return -1;
    if (*end == 's' || *end == 'm' || *end == 'h') {
        unit = *end == 'm' ? 60 : *end == 'h' ? 3600 : 1;
        end++;
    }
    if (*end != '\0' || v > 86400 / unit)
        return -1;
    *out = v * unit;
    return 0;
}

int cfg_bool(const char *v, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1", NULL};
    static const char *const no[] = {"no", "false", "off", "0", NULL};
    if (v != NULL && one_of(v, yes))
        *out = 1;
    else if (v != NULL && one_of(v, no))
        *out = 0;
    else
        return -1;
    return 0;
}

int cfg_check(enum cfg_key k, const char *v, char *why, size_t whylen)
{
    static const char *const tls_modes[] = {"implicit", "starttls", "none", NULL};
    static const char *const mechs[] = {"auto",     "none",    "plain", "login",
                                        "cram-md5", "xoauth2", NULL};
    const char *expected = NULL;
    int b;
    if (v == NULL || *v == '\0') {
        snprintf(why, whylen, "an empty value (remove the line to leave it unset)");
        return -1;
    }
    /* Paths and commands may hold tabs; nothing may hold a line break or other control. */
    int tabs_ok = k == K_PASSWORD || k == K_PASSWORD_COMMAND || k == K_OAUTH_TOKEN_COMMAND ||
                  k == K_PASSWORD_FILE || k == K_CA_FILE || k == K_FROM || k == K_VERP_KEY_FILE;
    if (has_control(v, tabs_ok)) {
        snprintf(why, whylen, "a control character (CR, LF, ...) is not allowed");
        return -1;
    }
    switch (k) {
    case K_HOST:
    case K_IMAP_HOST:
    case K_POP3_HOST:
        expected = host_valid(v) ? NULL : "expected a host name or address";
        break;
    case K_PORT:
    case K_IMAP_PORT:
    case K_POP3_PORT:
        expected = parse_long(v, 1, 65535) ? "expected 1-65535" : NULL;
        break;
    case K_TLS:
        expected = one_of(v, tls_modes) ? NULL : "expected implicit, starttls or none";
        break;
    case K_AUTH:
        expected =
            one_of(v, mechs) ? NULL : "expected plain, login, cram-md5, xoauth2, none or auto";
        break;
    case K_HELO:
        expected = helo_valid(v) ? NULL
                                 : "expected a host name (letters, digits, '-', '.') or an "
                                   "address literal such as [192.0.2.1]";
        break;
    case K_TLS_FINGERPRINT:
        expected = fingerprint_valid(v) ? NULL
                                        : "expected a SHA-256 fingerprint (64 hex digits, "
                                          "colons optional)";
        break;
    case K_INSECURE:
    case K_VERP:
        expected = cfg_bool(v, &b) ? "expected yes or no" : NULL;
        break;
    case K_TIMEOUT:
    case K_CONNECT_TIMEOUT:
        expected = parse_long(v, 1, 86400) ? "expected seconds (1-86400)" : NULL;
        break;
    case K_BOUNCE_CHECK: {
        long secs = 0;
        expected = cfg_duration_s(v, &secs) != 0 || secs < 60
                       ? "expected an interval such as 10m, 1h or 600 (60 s to 1 day)"
                       : NULL;
        break;
    }
    case K_PASSWORD_COMMAND_TIMEOUT:
        expected = parse_long(v, 1, 3600) ? "expected seconds (1-3600)" : NULL;
        break;
    case K_RATE_PER_SECOND:
        expected = parse_positive(v, 1e6) ? "expected a positive number of messages" : NULL;
        break;
    case K_DAILY_LIMIT:
        expected = parse_long(v, 1, 1000000000L) ? "expected a positive count" : NULL;
        break;
    case K_MAX_CONNECTIONS:
        expected = parse_long(v, 1, 1000) ? "expected 1-1000" : NULL;
        break;
    case K_SOFT_BOUNCE_LIMIT:
        expected = parse_long(v, 1, 1000) ? "expected a count (1-1000)" : NULL;
        break;
    case K_SOFT_BOUNCE_DAYS:
        expected = parse_long(v, 1, 3650) ? "expected days (1-3650)" : NULL;
        break;
    case K_SENDMAIL_SUPPRESSION:
        expected = one_of(v, (const char *const[]){"skip", "ignore", NULL})
                       ? NULL
                       : "expected skip or ignore";
        break;
    case K_PROVIDER:
        expected = strpbrk(v, " \t") != NULL ? "expected a preset name (pigeon providers) "
                                               "or auto"
                                             : NULL;
        break;
    case K_USER:
        expected = strlen(v) > 1024 ? "longer than 1024 octets" : NULL;
        break;
    case K_FROM: {
        char reason[200] = "";
        pigeon_mailbox mb = {0};
        if (pigeon_mailbox_parse(v, &mb, reason, sizeof reason) != PIGEON_OK) {
            snprintf(why, whylen, "not an address: %s", reason[0] ? reason : "invalid");
            return -1;
        }
        pigeon_mailbox_cleanup(&mb);
        break;
    }
    default: /* password, password_file, ca_file, the commands: any non-empty text */
        break;
    }
    if (expected != NULL) {
        snprintf(why, whylen, "%s", expected);
        return -1;
    }
    return 0;
}
