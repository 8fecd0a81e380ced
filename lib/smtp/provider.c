/*
 * provider.c - the built-in provider presets.
 *
 * Hosts, ports and modes are the providers' documented submission settings. Implicit TLS
 * on 465 is preferred where offered (RFC 8314 3.3 recommends implicit TLS for
 * submission); 587 with STARTTLS where a provider offers only that.
 */
#include "pigeon/provider.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define IMPLICIT PIGEON_PROVIDER_TLS_IMPLICIT
#define STARTTLS PIGEON_PROVIDER_TLS_STARTTLS

static const char qq_notes[] =
    "Turn on SMTP in QQ Mail (Settings > Account > POP3/IMAP/SMTP) and log in with the "
    "16-letter authorization code it shows, not your QQ password. From must be the login "
    "address.";
static const char netease_notes[] =
    "Turn on SMTP in the web mail settings (POP3/SMTP/IMAP) and log in with the client "
    "authorization code, not your password. From must be the login address. "
    "554 DT:SPM means the content was judged spam.";

static const pigeon_provider presets[] = {
    {"qq", "smtp.qq.com", 465, IMPLICIT, "qq.com foxmail.com vip.qq.com",
     "the full QQ Mail address", qq_notes, 1, 500},
    {"qq-starttls", "smtp.qq.com", 587, STARTTLS, "", "the full QQ Mail address", qq_notes, 1, 500},
    {"qq-exmail", "smtp.exmail.qq.com", 465, IMPLICIT, "", "the full address",
     "Tencent Exmail (enterprise): log in with the full address and its password or the "
     "client-specific password when security login is on.",
     2, 1000},
    {"163", "smtp.163.com", 465, IMPLICIT, "163.com", "the full address", netease_notes, 1, 200},
    {"126", "smtp.126.com", 465, IMPLICIT, "126.com", "the full address", netease_notes, 1, 200},
    {"yeah", "smtp.yeah.net", 465, IMPLICIT, "yeah.net", "the full address", netease_notes, 1, 200},
    {"139", "smtp.139.com", 465, IMPLICIT, "139.com", "the full address",
     "Turn on SMTP in 139 Mail settings and use the client authorization code.", 1, 200},
    {"sina", "smtp.sina.com", 465, IMPLICIT, "sina.com sina.cn", "the full address",
     "Turn on SMTP in Sina Mail settings and log in with the authorization code.", 1, 200},
    {"sohu", "smtp.sohu.com", 465, IMPLICIT, "sohu.com", "the full address",
     "Turn on SMTP in Sohu Mail settings and log in with the independent password it "
     "issues.",
     1, 200},
    {"aliyun", "smtp.aliyun.com", 465, IMPLICIT, "aliyun.com", "the full address",
     "Aliyun personal mail: turn on SMTP in the web settings.", 1, 200},
    {"aliyun-qiye", "smtp.qiye.aliyun.com", 465, IMPLICIT, "", "the full address",
     "Alibaba Mail (enterprise): the administrator must allow SMTP; use the full address.", 2,
     1000},
    {"gmail", "smtp.gmail.com", 465, IMPLICIT, "gmail.com googlemail.com", "the full address",
     "Use an App Password (Google Account > Security > 2-Step Verification > App passwords) "
     "or XOAUTH2; the account password is refused (535 5.7.8).",
     1, 500},
    {"outlook", "smtp-mail.outlook.com", 587, STARTTLS, "outlook.com hotmail.com live.com msn.com",
     "the full address",
     "Microsoft is retiring basic authentication: use --auth xoauth2 with a token when "
     "passwords are refused (535 5.7.139).",
     1, 300},
    {"office365", "smtp.office365.com", 587, STARTTLS, "", "the full address",
     "SMTP AUTH must be enabled for the mailbox by the tenant administrator; "
     "XOAUTH2 is preferred.",
     2, 10000},
    {"yahoo", "smtp.mail.yahoo.com", 465, IMPLICIT, "yahoo.com ymail.com", "the full address",
     "Generate an app password in Yahoo Account Security; the account password is refused.", 1,
     500},
    {"icloud", "smtp.mail.me.com", 587, STARTTLS, "icloud.com me.com mac.com",
     "the full iCloud address",
     "Use an app-specific password (appleid.apple.com > Sign-In and Security).", 1, 1000},
    {"zoho", "smtp.zoho.com", 465, IMPLICIT, "zoho.com zohomail.com", "the full address",
     "Use an application-specific password when two-factor authentication is on.", 1, 500},
    {"ses-REGION", "email-smtp.REGION.amazonaws.com", 587, STARTTLS, "",
     "the SMTP user name from the SES console",
     "Use SES SMTP credentials (not IAM access keys); the From domain or address must be "
     "verified, and new accounts are in the sandbox.",
     14, 0},
    {"sendgrid", "smtp.sendgrid.net", 587, STARTTLS, "", "the literal user name \"apikey\"",
     "Log in as \"apikey\" with an API key as the password; the From must be a verified "
     "sender.",
     0, 0},
    {"mailgun", "smtp.mailgun.org", 587, STARTTLS, "", "the domain's SMTP login",
     "Use the SMTP credentials of the sending domain (EU region: smtp.eu.mailgun.org).", 0, 0},
    {"brevo", "smtp-relay.brevo.com", 587, STARTTLS, "", "the SMTP login shown in Brevo",
     "Use the SMTP key from Brevo's SMTP & API page, not the account password.", 0, 300},
};

#define NPRESETS (sizeof presets / sizeof presets[0])

size_t pigeon_provider_count(void)
{
    return NPRESETS;
}

const pigeon_provider *pigeon_provider_at(size_t i)
{
    return i < NPRESETS ? &presets[i] : NULL;
}

/* AWS region names: letters, digits and hyphens, e.g. "us-east-1", "ap-southeast-2". */
static int region_valid(const char *r)
{
    size_t n = strlen(r);
    if (n < 4 || n > 32)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = r[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return r[0] != '-' && r[n - 1] != '-';
}

int pigeon_provider_lookup(const char *name, pigeon_provider *out, char *hostbuf, size_t hostlen)
{
    if (name == NULL || out == NULL)
        return -1;
    if (strncasecmp(name, "ses-", 4) == 0 && strcasecmp(name, "ses-REGION") != 0) {
        const char *region = name + 4;
        if (!region_valid(region) || hostbuf == NULL)
            return -1;
        int n = snprintf(hostbuf, hostlen, "email-smtp.%s.amazonaws.com", region);
        if (n < 0 || (size_t)n >= hostlen)
            return -1;
        for (size_t i = 0; i < NPRESETS; i++) {
            if (strcmp(presets[i].name, "ses-REGION") == 0) {
                *out = presets[i];
                out->name = name;
                out->host = hostbuf;
                return 0;
            }
        }
        return -1;
    }
    for (size_t i = 0; i < NPRESETS; i++) {
        if (strcasecmp(presets[i].name, name) == 0 && strcmp(presets[i].name, "ses-REGION") != 0) {
            *out = presets[i];
            return 0;
        }
    }
    return -1;
}

const pigeon_provider *pigeon_provider_for_domain(const char *domain)
{
    if (domain == NULL || *domain == '\0')
        return NULL;
    size_t dn = strlen(domain);
    for (size_t i = 0; i < NPRESETS; i++) {
        const char *p = presets[i].domains;
        while (*p != '\0') {
            const char *end = strchr(p, ' ');
            size_t n = end ? (size_t)(end - p) : strlen(p);
            if (n == dn && strncasecmp(p, domain, n) == 0)
                return &presets[i];
            p += n;
            while (*p == ' ')
                p++;
        }
    }
    return NULL;
}
