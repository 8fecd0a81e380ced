/*
 * hints.c - hints for the SMTP errors people actually hit, keyed on the provider family,
 * the reply code (RFC 5321 4.2.3), the enhanced status code (RFC 3463) and a substring of
 * the reply text; and hints for situations we diagnose ourselves (wrong TLS mode for the
 * port, missing STARTTLS, certificates).
 *
 * The texts of Chinese providers' replies are their documented ones: QQ Mail's
 * "535 Login Fail. Please enter your authorization code to login", "501 mail from address
 * must be same as authorization user", "550 Mail content denied"; NetEase's
 * "535 Error: authentication failed", "554 DT:SPM", "550 User has no permission" and their
 * frequency limits ("421 ... frequency limited", "550 ... Ip frequency limited").
 */
#include "smtp/hints.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

/* One reply rule; the first matching row wins, so specific rows come first. */
struct reply_rule {
    pg_hint_family family; /* PG_FAMILY_OTHER here means any family */
    const char *stage;     /* stage it applies to, or NULL for any */
    int code;              /* exact reply code, or a class 400/500 with class_only */
    int class_only;        /* nonzero: code's first digit only */
    const char *enhanced;  /* enhanced code prefix ("5.7.8"), or NULL */
    const char *needle;    /* case-insensitive text substring, or NULL */
    const char *hint;      /* the hint */
};

static const char qq_auth[] =
    "QQ Mail wants the authorization code (授权码), not your QQ password: in QQ Mail open "
    "Settings > Account, enable the POP3/SMTP service and generate a code, then use it as "
    "the password.";
static const char netease_auth[] =
    "NetEase (163/126/yeah) wants the client authorization code (客户端授权密码), not the "
    "login password: enable SMTP under Settings > POP3/SMTP/IMAP and use the code it gives.";
static const char gmail_auth[] =
    "Gmail refuses the account password: turn on 2-Step Verification and use an App "
    "Password (or XOAUTH2 with a token).";
static const char ms_auth[] =
    "Microsoft may have SMTP AUTH disabled for the mailbox (Authenticated SMTP in the "
    "admin center) or require OAuth; app passwords need 2-step verification.";
static const char generic_auth[] =
    "The server refused the user name or password. Many providers want an app password or "
    "an authorization code from their settings rather than the login password.";
static const char sender_mismatch[] =
    "The envelope sender must be the address you log in with: set From (or --from) to the "
    "login user, or log in as the sender.";
static const char qq_content[] =
    "QQ Mail's content filter refused the message (550 Mail content denied): remove "
    "spam-like wording, links or attachments, send fewer identical messages, and try "
    "sending it to yourself first.";
static const char netease_spam[] =
    "NetEase's spam filter refused the message (554 DT:SPM): make the Subject and body "
    "less like bulk mail (no link-only bodies, no test/blank subjects), send fewer "
    "identical messages, or add yourself to the recipients.";
static const char rate_limit[] =
    "The provider limits how fast or how much you send (frequency or daily limit): wait, "
    "then send more slowly (pigeon's queue can rate-limit an account).";
static const char too_large[] =
    "The message is larger than the server accepts: shrink or remove attachments, or "
    "share a link instead.";
static const char no_permission[] =
    "The account may not send over SMTP yet: enable the SMTP service in the mailbox "
    "settings (new NetEase accounts must also wait or bind a phone number).";
static const char relay_denied[] =
    "The server refuses to relay for you: authenticate (--user), or send through your "
    "provider's submission server instead of the recipient's.";
static const char auth_required[] =
    "The server wants you to log in before sending: give --user and a password.";
static const char unknown_user[] =
    "The recipient's address does not exist at its server: check the spelling.";
static const char tls_required[] =
    "The server wants TLS before this command: use --tls starttls or implicit.";

static const struct reply_rule rules[] = {
    /* Authentication (RFC 4954 6: 535 5.7.8 credentials invalid, 534 5.7.9 mechanism too
     * weak; Gmail uses 534 5.7.9 "Application-specific password required"). */
    {PG_FAMILY_QQ, NULL, 535, 0, NULL, NULL, qq_auth},
    {PG_FAMILY_QQ, NULL, 525, 0, NULL, NULL, qq_auth},
    {PG_FAMILY_NETEASE, NULL, 535, 0, NULL, NULL, netease_auth},
    {PG_FAMILY_GMAIL, NULL, 535, 0, NULL, NULL, gmail_auth},
    {PG_FAMILY_GMAIL, NULL, 534, 0, NULL, NULL, gmail_auth},
    {PG_FAMILY_MICROSOFT, NULL, 535, 0, NULL, NULL, ms_auth},
    {PG_FAMILY_OTHER, NULL, 535, 0, NULL, NULL, generic_auth},
    {PG_FAMILY_OTHER, NULL, 534, 0, NULL, "password", generic_auth},
    /* The sender must be the login (QQ 501, NetEase 553, Microsoft 554 5.2.252 SendAsDenied). */
    {PG_FAMILY_OTHER, NULL, 501, 0, NULL, "same as authorization user", sender_mismatch},
    {PG_FAMILY_OTHER, NULL, 501, 0, NULL, "must be same as", sender_mismatch},
    {PG_FAMILY_OTHER, NULL, 553, 0, NULL, "authentication is required", auth_required},
    {PG_FAMILY_OTHER, NULL, 553, 0, NULL, "same as", sender_mismatch},
    {PG_FAMILY_OTHER, NULL, 553, 0, NULL, "not owned by", sender_mismatch},
    {PG_FAMILY_OTHER, NULL, 554, 0, NULL, "SendAsDenied", sender_mismatch},
    {PG_FAMILY_OTHER, NULL, 550, 0, NULL, "not authorized to send", sender_mismatch},
    /* Content filters. */
    {PG_FAMILY_OTHER, NULL, 550, 0, NULL, "Mail content denied", qq_content},
    {PG_FAMILY_OTHER, NULL, 554, 0, NULL, "DT:SPM", netease_spam},
    /* Frequency and volume limits (QQ 421/550, NetEase 421 and 550 "frequency limited",
     * Gmail 421/550 4.7.0/5.4.5 "sending limit exceeded"). */
    {PG_FAMILY_OTHER, NULL, 400, 1, NULL, "frequency", rate_limit},
    {PG_FAMILY_OTHER, NULL, 500, 1, NULL, "frequency", rate_limit},
    {PG_FAMILY_OTHER, NULL, 400, 1, NULL, "too many", rate_limit},
    {PG_FAMILY_OTHER, NULL, 550, 0, NULL, "limit exceeded", rate_limit},
    {PG_FAMILY_OTHER, NULL, 550, 0, NULL, "sending limit", rate_limit},
    {PG_FAMILY_OTHER, NULL, 450, 0, NULL, "rate", rate_limit},
    {PG_FAMILY_OTHER, NULL, 451, 0, NULL, "rate", rate_limit},
    {PG_FAMILY_OTHER, NULL, 421, 0, NULL, "rate", rate_limit},
    {PG_FAMILY_OTHER, NULL, 421, 0, NULL, "limit", rate_limit},
    {PG_FAMILY_OTHER, NULL, 0, 0, "5.4.5", NULL, rate_limit},
    /* Size (RFC 1870: 552; RFC 3463 5.3.4 message too big, 5.2.3 too long). */
    {PG_FAMILY_OTHER, NULL, 552, 0, NULL, NULL, too_large},
    {PG_FAMILY_OTHER, NULL, 0, 0, "5.3.4", NULL, too_large},
    {PG_FAMILY_OTHER, NULL, 0, 0, "5.2.3", NULL, too_large},
    {PG_FAMILY_OTHER, NULL, 554, 0, NULL, "too large", too_large},
    /* Account and relay problems. */
    {PG_FAMILY_NETEASE, NULL, 550, 0, NULL, "no permission", no_permission},
    {PG_FAMILY_OTHER, NULL, 530, 0, NULL, "STARTTLS", tls_required},
    {PG_FAMILY_OTHER, NULL, 0, 0, "5.7.0", "TLS", tls_required},
    {PG_FAMILY_OTHER, NULL, 530, 0, NULL, NULL, auth_required},
    {PG_FAMILY_OTHER, NULL, 0, 0, "5.7.1", "relay", relay_denied},
    {PG_FAMILY_OTHER, NULL, 554, 0, NULL, "relay", relay_denied},
    {PG_FAMILY_OTHER, "rcpt", 550, 0, "5.1.1", NULL, unknown_user},
    {PG_FAMILY_OTHER, "rcpt", 550, 0, NULL, "user unknown", unknown_user},
    {PG_FAMILY_OTHER, "rcpt", 550, 0, NULL, "does not exist", unknown_user},
};

static const char *ci_strstr(const char *hay, const char *needle);
static int rule_matches(const struct reply_rule *r, pg_hint_family family, const char *stage,
                        int code, const char *enhanced, const char *text);

/* strcasestr is a GNU extension; this is the portable few lines (ASCII case folding). */
static const char *ci_strstr(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay != '\0'; hay++) {
        if (strncasecmp(hay, needle, n) == 0)
            return hay;
    }
    return NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0 && (a == b || s[a - b - 1] == '.');
}

pg_hint_family pg_hint_family_of(const char *provider, const char *host)
{
    if (provider != NULL) {
        if (strncasecmp(provider, "qq", 2) == 0)
            return PG_FAMILY_QQ;
        if (strcmp(provider, "163") == 0 || strcmp(provider, "126") == 0 ||
            strcasecmp(provider, "yeah") == 0)
            return PG_FAMILY_NETEASE;
        if (strcasecmp(provider, "gmail") == 0)
            return PG_FAMILY_GMAIL;
        if (strcasecmp(provider, "outlook") == 0 || strcasecmp(provider, "office365") == 0)
            return PG_FAMILY_MICROSOFT;
    }
    if (host == NULL)
        return PG_FAMILY_OTHER;
    if (ends_with(host, "qq.com"))
        return PG_FAMILY_QQ;
    if (ends_with(host, "163.com") || ends_with(host, "126.com") || ends_with(host, "yeah.net"))
        return PG_FAMILY_NETEASE;
    if (ends_with(host, "gmail.com") || ends_with(host, "google.com"))
        return PG_FAMILY_GMAIL;
    if (ends_with(host, "outlook.com") || ends_with(host, "office365.com"))
        return PG_FAMILY_MICROSOFT;
    return PG_FAMILY_OTHER;
}

static int rule_matches(const struct reply_rule *r, pg_hint_family family, const char *stage,
                        int code, const char *enhanced, const char *text)
{
    if (r->family != PG_FAMILY_OTHER && r->family != family)
        return 0;
    if (r->stage != NULL && (stage == NULL || strcmp(r->stage, stage) != 0))
        return 0;
    if (r->code != 0 && (r->class_only ? r->code / 100 != code / 100 : r->code != code))
        return 0;
    if (r->enhanced != NULL &&
        (enhanced == NULL || strncmp(enhanced, r->enhanced, strlen(r->enhanced)) != 0))
        return 0;
    if (r->needle != NULL && (text == NULL || ci_strstr(text, r->needle) == NULL))
        return 0;
    return 1;
}

const char *pg_hint_for_reply(pg_hint_family family, const char *stage, int code,
                              const char *enhanced, const char *text)
{
    if (code < 400)
        return NULL;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (rule_matches(&rules[i], family, stage, code, enhanced, text))
            return rules[i].hint;
    }
    return NULL;
}

const char *pg_hint_for_situation(pg_hint_situation s, uint16_t port)
{
    switch (s) {
    case PG_HINT_GREETING_IN_TLS_MODE:
        return "The server greeted in plaintext, so this port does not speak implicit TLS: "
               "use --tls starttls (usual on ports 587 and 25), or port 465 for implicit TLS.";
    case PG_HINT_TLS_RECORD_IN_PLAIN:
        return "The server speaks TLS from the first byte on this port (implicit TLS): use "
               "--tls implicit, or port 587 for STARTTLS.";
    case PG_HINT_GREETING_TIMEOUT_465:
        return port == 465 ? "Port 465 expects implicit TLS (the server waits for a TLS "
                             "handshake, not for a greeting): use --tls implicit."
                           : "No greeting arrived: if this port speaks implicit TLS, use "
                             "--tls implicit; otherwise the server is overloaded or filtered.";
    case PG_HINT_NO_STARTTLS:
        return "The server does not offer STARTTLS here, so nothing was sent: use port 465 "
               "with --tls implicit, or check that nothing between you and the server strips "
               "STARTTLS. --tls none only if you accept plaintext (AUTH is then refused).";
    case PG_HINT_STARTTLS_REFUSED:
        return "The server offered STARTTLS but refused it: try port 465 with --tls "
               "implicit, or report it to the server's administrator.";
    case PG_HINT_AUTH_PLAINTEXT:
        return "Credentials are never sent without TLS: use --tls starttls or implicit.";
    case PG_HINT_NO_AUTH_OFFERED:
        return "The server does not offer AUTH on this connection: check the port (587 or "
               "465 are for submission; port 25 is for relaying between servers), or drop "
               "--user if the server relays for your address.";
    case PG_HINT_NO_COMMON_MECH:
        return "None of the server's AUTH mechanisms is one pigeon can use, or the forced "
               "one (--auth) is not offered: see the AUTH line of `pigeon check`.";
    case PG_HINT_CERT_UNTRUSTED:
        return "The server's certificate is not signed by a CA you trust: give the right CA "
               "with --ca-file, or pin it with --tls-fingerprint.";
    case PG_HINT_CERT_NAME:
        return "The certificate is not for this host name: connect with the name on the "
               "certificate (see `pigeon check`), not an IP address or alias.";
    case PG_HINT_CERT_EXPIRED:
        return "The server's certificate has expired (or the clock here is wrong): tell the "
               "server's administrator, and check the system time.";
    case PG_HINT_TLS_OLD_VERSION:
        return "The server only speaks an old TLS version; pigeon requires TLS 1.2 or later. "
               "Use another port of the provider or ask its administrator to upgrade.";
    case PG_HINT_TOO_LARGE_LOCAL:
        return "The message is larger than the server's announced SIZE limit: shrink or "
               "remove attachments, or share a link instead.";
    case PG_HINT_STARTTLS_INJECTION:
        return "Something sent data right after the STARTTLS go-ahead (a broken server or "
               "an attack, CVE-2011-0411 family); the session was stopped for safety.";
    case PG_HINT_CONNECT_REFUSED:
        return "Nothing accepts connections there: check --host and --port (465 implicit "
               "TLS, 587 STARTTLS), and that no firewall blocks outgoing SMTP.";
    case PG_HINT_TIMEOUT:
        return "The server did not answer in time: it may be overloaded or filtered, or the "
               "TLS mode may be wrong for the port (465: implicit; 587/25: STARTTLS).";
    }
    return NULL;
}
