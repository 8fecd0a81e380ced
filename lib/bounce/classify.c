/*
 * classify.c - what a delivery failure means (pigeon/bounce.h): the RFC 3463 enhanced
 * status code first, then the reply text against keyword tables, then the RFC 5321 4.2.1
 * reply code's first digit.
 *
 * The tables hold what real servers say: the RFC 5321 4.2.2 and 4.2.3 texts, and those of
 * Postfix, Exim, Exchange, Gmail, Yahoo, QQ Mail and 163 (in English and in Chinese, as
 * UTF-8). Matching is by substring on the ASCII-lower-cased text, at most TEXT_MAX octets
 * of it, so time is bounded whatever the input.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bounce/classify.h"

/* Octets of reply text examined. */
#define TEXT_MAX 4096

typedef struct keyword {
    const char *needle;      /* lower-case ASCII or UTF-8 substring */
    pigeon_bounce_class cls; /* what it means */
    const char *reason;      /* the reason identifier */
} keyword;

/* In priority order: the first match wins. Specific phrases come before the broad words
 * they contain ("relay access denied" before "denied", "mailbox not found or access
 * denied" is a missing mailbox, not a policy refusal). */
static const keyword keywords[] = {
    {"relay access denied", PIGEON_BOUNCE_BLOCK, "relay_denied"},
    {"relaying denied", PIGEON_BOUNCE_BLOCK, "relay_denied"},
    {"relay not permitted", PIGEON_BOUNCE_BLOCK, "relay_denied"},
    {"not permitted to relay", PIGEON_BOUNCE_BLOCK, "relay_denied"},
    {"mailbox full", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"mailbox is full", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"mailbox has exceeded", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"full mailbox", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"over quota", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"overquota", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"quota exceeded", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"exceeded their quota", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"exceeded storage allocation", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"out of storage", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"mailbox size limit", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"user is over", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"邮箱已满", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"邮箱满", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"空间不足", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"容量不足", PIGEON_BOUNCE_SOFT, "mailbox_full"},
    {"exceeded mailsize limit", PIGEON_BOUNCE_SOFT, "message_too_large"},
    {"message too large", PIGEON_BOUNCE_SOFT, "message_too_large"},
    {"message too big", PIGEON_BOUNCE_SOFT, "message_too_large"},
    {"message is too big", PIGEON_BOUNCE_SOFT, "message_too_large"},
    {"message is too large", PIGEON_BOUNCE_SOFT, "message_too_large"},
    {"message size exceeds", PIGEON_BOUNCE_SOFT, "message_too_large"},
    {"size exceeds", PIGEON_BOUNCE_SOFT, "message_too_large"},
    {"message length exceeds", PIGEON_BOUNCE_SOFT, "message_too_large"},
    {"邮件大小", PIGEON_BOUNCE_SOFT, "message_too_large"},
    {"邮件过大", PIGEON_BOUNCE_SOFT, "message_too_large"},
    {"user unknown", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"unknown user", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"no such user", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"no such mailbox", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"no such recipient", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"no such account", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"no mailbox", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"mailbox not found", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"mailbox does not exist", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"mailbox unavailable", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"mailbox is unavailable", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"user not found", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"user not exist", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"user does not exist", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"account does not exist", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"address does not exist", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"recipient not found", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"recipient unknown", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"unknown recipient", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"invalid recipient", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"invalid mailbox", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"address not found", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"couldn't be found", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"could not be found", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"address rejected: access denied", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"addressee unknown", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"unrouteable address", PIGEON_BOUNCE_HARD, "domain_unknown"},
    {"undeliverable address", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"recipnotfound", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"doesn't have a", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"does not exist", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"doesn't exist", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"用户不存在", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"收件人不存在", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"邮箱不存在", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"地址不存在", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"帐户不存在", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"账户不存在", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"帐号不存在", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"账号不存在", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"无此用户", PIGEON_BOUNCE_HARD, "mailbox_unknown"},
    {"domain not found", PIGEON_BOUNCE_HARD, "domain_unknown"},
    {"unknown domain", PIGEON_BOUNCE_HARD, "domain_unknown"},
    {"no such domain", PIGEON_BOUNCE_HARD, "domain_unknown"},
    {"domain does not exist", PIGEON_BOUNCE_HARD, "domain_unknown"},
    {"host not found", PIGEON_BOUNCE_HARD, "domain_unknown"},
    {"host or domain name not found", PIGEON_BOUNCE_HARD, "domain_unknown"},
    {"name or service not known", PIGEON_BOUNCE_HARD, "domain_unknown"},
    {"unrouteable mail domain", PIGEON_BOUNCE_HARD, "domain_unknown"},
    {"null mx", PIGEON_BOUNCE_HARD, "domain_unknown"},
    {"域名不存在", PIGEON_BOUNCE_HARD, "domain_unknown"},
    {"account disabled", PIGEON_BOUNCE_HARD, "mailbox_disabled"},
    {"account is disabled", PIGEON_BOUNCE_HARD, "mailbox_disabled"},
    {"account has been disabled", PIGEON_BOUNCE_HARD, "mailbox_disabled"},
    {"mailbox disabled", PIGEON_BOUNCE_HARD, "mailbox_disabled"},
    {"mailbox is disabled", PIGEON_BOUNCE_HARD, "mailbox_disabled"},
    {"account closed", PIGEON_BOUNCE_HARD, "mailbox_disabled"},
    {"inactive", PIGEON_BOUNCE_HARD, "mailbox_disabled"},
    {"suspended", PIGEON_BOUNCE_HARD, "mailbox_disabled"},
    {"冻结", PIGEON_BOUNCE_HARD, "mailbox_disabled"},
    {"停用", PIGEON_BOUNCE_HARD, "mailbox_disabled"},
    {"greylist", PIGEON_BOUNCE_SOFT, "greylisted"},
    {"graylist", PIGEON_BOUNCE_SOFT, "greylisted"},
    {"grey-list", PIGEON_BOUNCE_SOFT, "greylisted"},
    {"dmarc", PIGEON_BOUNCE_BLOCK, "authentication"},
    {"spf", PIGEON_BOUNCE_BLOCK, "authentication"},
    {"dkim", PIGEON_BOUNCE_BLOCK, "authentication"},
    {"unauthenticated", PIGEON_BOUNCE_BLOCK, "authentication"},
    {"blacklist", PIGEON_BOUNCE_BLOCK, "blocklisted"},
    {"black list", PIGEON_BOUNCE_BLOCK, "blocklisted"},
    {"blocklist", PIGEON_BOUNCE_BLOCK, "blocklisted"},
    {"block list", PIGEON_BOUNCE_BLOCK, "blocklisted"},
    {"spamhaus", PIGEON_BOUNCE_BLOCK, "blocklisted"},
    {"spamcop", PIGEON_BOUNCE_BLOCK, "blocklisted"},
    {"dnsbl", PIGEON_BOUNCE_BLOCK, "blocklisted"},
    {"rbl", PIGEON_BOUNCE_BLOCK, "blocklisted"},
    {"黑名单", PIGEON_BOUNCE_BLOCK, "blocklisted"},
    {"spam", PIGEON_BOUNCE_BLOCK, "spam"},
    {"junk", PIGEON_BOUNCE_BLOCK, "spam"},
    {"virus", PIGEON_BOUNCE_BLOCK, "spam"},
    {"content rejected", PIGEON_BOUNCE_BLOCK, "spam"},
    {"垃圾邮件", PIGEON_BOUNCE_BLOCK, "spam"},
    {"病毒", PIGEON_BOUNCE_BLOCK, "spam"},
    {"blocked", PIGEON_BOUNCE_BLOCK, "policy"},
    {"banned", PIGEON_BOUNCE_BLOCK, "policy"},
    {"reputation", PIGEON_BOUNCE_BLOCK, "policy"},
    {"policy", PIGEON_BOUNCE_BLOCK, "policy"},
    {"prohibited", PIGEON_BOUNCE_BLOCK, "policy"},
    {"not allowed", PIGEON_BOUNCE_BLOCK, "policy"},
    {"access denied", PIGEON_BOUNCE_BLOCK, "policy"},
    {"拦截", PIGEON_BOUNCE_BLOCK, "policy"},
    {"拒绝", PIGEON_BOUNCE_BLOCK, "policy"},
    {"try again later", PIGEON_BOUNCE_SOFT, "temporary"},
    {"please retry", PIGEON_BOUNCE_SOFT, "temporary"},
    {"temporarily", PIGEON_BOUNCE_SOFT, "temporary"},
    {"temporary", PIGEON_BOUNCE_SOFT, "temporary"},
    {"too many connections", PIGEON_BOUNCE_SOFT, "temporary"},
    {"rate limit", PIGEON_BOUNCE_SOFT, "temporary"},
    {"timed out", PIGEON_BOUNCE_SOFT, "temporary"},
    {"connection refused", PIGEON_BOUNCE_SOFT, "temporary"},
    {"稍后", PIGEON_BOUNCE_SOFT, "temporary"},
    {"频率", PIGEON_BOUNCE_SOFT, "temporary"},
};

/* Matches the text against the table: 1 and the entry's class and reason, or 0. */
int pg_bounce_keywords(const char *text, pigeon_bounce_class *cls, const char **reason)
{
    char low[TEXT_MAX + 1];
    size_t n = 0;
    if (text == NULL)
        return 0;
    for (; text[n] != '\0' && n < TEXT_MAX; n++)
        low[n] = (char)tolower((unsigned char)text[n]);
    low[n] = '\0';
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        if (strstr(low, keywords[i].needle) != NULL) {
            *cls = keywords[i].cls;
            *reason = keywords[i].reason;
            return 1;
        }
    }
    return 0;
}

/* Parses "c.s.d" (RFC 3463 2: class 2, 4 or 5; subject 0..999; detail 0..999). */
static int parse_status(const char *s, int *c, int *subj, int *det)
{
    char *end;
    if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    *c = s[0] - '0';
    if (!isdigit((unsigned char)s[2]))
        return 0;
    long a = strtol(s + 2, &end, 10);
    if (*end != '.' || a > 999 || !isdigit((unsigned char)end[1]))
        return 0;
    long b = strtol(end + 1, &end, 10);
    if (b > 999)
        return 0;
    *subj = (int)a;
    *det = (int)b;
    return 1;
}

/* The class and reason a specific status code gives, or 0 when it says too little. */
static int by_status(int c, int subj, int det, pigeon_bounce_class *cls, const char **reason)
{
    if (c == 4) {
        *cls = PIGEON_BOUNCE_SOFT;
        *reason = subj == 2 && det == 2 ? "mailbox_full" : "temporary";
        return 1;
    }
    *cls = PIGEON_BOUNCE_HARD;
    switch (subj * 1000 + det) {
    case 1001: /* X.1.1 bad destination mailbox address */
    case 1006: /* X.1.6 destination mailbox has moved */
        *reason = "mailbox_unknown";
        return 1;
    case 1002: /* X.1.2 bad destination system address */
    case 1010: /* RFC 7505 3: X.1.10 the domain publishes a null MX */
        *reason = "domain_unknown";
        return 1;
    case 1003: /* X.1.3 bad destination mailbox address syntax */
    case 1004: /* X.1.4 destination mailbox address ambiguous */
        *reason = "bad_address";
        return 1;
    case 1008: /* X.1.8 bad sender's system address */
        *cls = PIGEON_BOUNCE_BLOCK;
        *reason = "policy";
        return 1;
    case 2002: /* X.2.2 mailbox full */
        *cls = PIGEON_BOUNCE_SOFT;
        *reason = "mailbox_full";
        return 1;
    case 2003: /* X.2.3 message length exceeds administrative limit */
    case 3004: /* X.3.4 message too big for system */
        *cls = PIGEON_BOUNCE_SOFT;
        *reason = "message_too_large";
        return 1;
    case 2001: /* X.2.1 mailbox disabled */
        *reason = "mailbox_disabled";
        return 1;
    }
    if (subj == 7 && det != 0) { /* X.7.x security or policy status */
        *cls = PIGEON_BOUNCE_BLOCK;
        *reason = "policy";
        return 1;
    }
    return 0;
}

pigeon_bounce_class pigeon_bounce_classify(const char *status, int smtp_code, const char *text,
                                           const char **reason)
{
    pigeon_bounce_class cls = PIGEON_BOUNCE_UNDETERMINED, tcls;
    const char *why = "unknown", *twhy = NULL;
    int c, subj, det;
    int has_status = parse_status(status, &c, &subj, &det);
    int has_text = pg_bounce_keywords(text, &tcls, &twhy);
    if (has_status && c == 2) {
        cls = PIGEON_BOUNCE_NONE;
        why = "not_a_bounce";
    } else if (has_status && by_status(c, subj, det, &cls, &why)) {
        /* The text may refine the reason within the class the code gave: a 5.7.1 that
         * names a blocklist, a 4.7.1 that says greylisted, a 5.2.1 that says spam. */
        if (has_text && tcls == cls)
            why = twhy;
        else if (has_text && subj == 2 && det == 1 && tcls == PIGEON_BOUNCE_BLOCK)
            cls = tcls, why = twhy;
        else if (has_text && c == 4 && tcls == PIGEON_BOUNCE_SOFT)
            why = twhy;
    } else if (has_text && !(has_status && c == 4 && tcls != PIGEON_BOUNCE_SOFT)) {
        cls = tcls;
        why = twhy;
    } else if ((has_status && c == 5) || (smtp_code >= 500 && smtp_code < 600)) {
        cls = PIGEON_BOUNCE_HARD;
    } else if ((has_status && c == 4) || (smtp_code >= 400 && smtp_code < 500)) {
        cls = PIGEON_BOUNCE_SOFT;
        why = "temporary";
    }
    if (reason != NULL)
        *reason = why;
    return cls;
}

const char *pigeon_bounce_class_name(pigeon_bounce_class cls)
{
    static const char *const names[] = {"none",  "hard",      "soft",
                                        "block", "complaint", "undetermined"};
    return (unsigned)cls < sizeof names / sizeof names[0] ? names[cls] : "undetermined";
}

const char *pigeon_bounce_kind_name(pigeon_bounce_kind kind)
{
    static const char *const names[] = {"other", "bounce", "complaint", "autoreply", "receipt"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "other";
}

/* RFC 4648 6 lower-case base32 (the composer) or [0-9A-Za-z] (rawmsg.c, sendmail mode). */
static int left_ours(const char *s, size_t n)
{
    int b32 = n == 26, alnum = n == 24;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        b32 = b32 && ((ch >= 'a' && ch <= 'z') || (ch >= '2' && ch <= '7'));
        alnum = alnum && isalnum(ch);
    }
    return b32 || alnum;
}

int pigeon_bounce_msgid_ours(const char *msgid, const char *const *domains, size_t ndomains)
{
    if (msgid == NULL)
        return 0;
    while (*msgid == ' ' || *msgid == '\t')
        msgid++;
    if (*msgid == '<')
        msgid++;
    const char *at = strchr(msgid, '@');
    if (at == NULL || !left_ours(msgid, (size_t)(at - msgid)))
        return 0;
    const char *dom = at + 1;
    size_t dlen = strcspn(dom, "> \t");
    if (dlen == 0 || dom[dlen + strspn(dom + dlen, "> \t")] != '\0' || memchr(dom, '@', dlen))
        return 0;
    if (ndomains == 0)
        return 1;
    for (size_t i = 0; i < ndomains; i++) {
        if (domains[i] != NULL && strlen(domains[i]) == dlen &&
            strncasecmp(domains[i], dom, dlen) == 0)
            return 1;
    }
    return 0;
}

static int status_at(const char *s, size_t i, char status[16])
{
    /* [245] "." 1*3DIGIT "." 1*3DIGIT, not inside a longer number or dotted run. */
    if ((s[i] != '2' && s[i] != '4' && s[i] != '5') || s[i + 1] != '.')
        return 0;
    if (i > 0 && (isdigit((unsigned char)s[i - 1]) || s[i - 1] == '.'))
        return 0;
    size_t j = i + 2, a = 0, b = 0;
    while (isdigit((unsigned char)s[j]) && a < 4)
        j++, a++;
    if (a == 0 || a > 3 || s[j] != '.')
        return 0;
    j++;
    while (isdigit((unsigned char)s[j]) && b < 4)
        j++, b++;
    if (b == 0 || b > 3 || s[j] == '.' || isdigit((unsigned char)s[j]))
        return 0;
    snprintf(status, 16, "%.*s", (int)(j - i), s + i);
    return 1;
}

static int code_at(const char *s, size_t i)
{
    if ((s[i] != '4' && s[i] != '5') || !isdigit((unsigned char)s[i + 1]) ||
        !isdigit((unsigned char)s[i + 2]))
        return 0;
    if (i > 0 && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '.' || s[i - 1] == '-'))
        return 0;
    char after = s[i + 3];
    if (after != ' ' && after != '-' && after != '\0' && after != '\'' && after != '"')
        return 0;
    return (s[i] - '0') * 100 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
}

void pg_bounce_codes(const char *text, char status[16], int *code)
{
    status[0] = '\0';
    *code = 0;
    for (size_t i = 0; text != NULL && text[i] != '\0' && i < TEXT_MAX; i++) {
        if (status[0] == '\0' && status_at(text, i, status))
            continue;
        if (*code == 0)
            *code = code_at(text, i);
        if (*code != 0 && status[0] != '\0')
            break;
    }
}

void pg_bounce_rcpt_classify(pigeon_bounce_rcpt *rc)
{
    char status[16];
    int code;
    const char *action = rc->action != NULL ? rc->action : "";
    pg_bounce_codes(rc->diagnostic, status, &code);
    if (rc->smtp_code == 0)
        rc->smtp_code = code;
    /* RFC 3463 3.1: X.0.0 says only "other"; a specific code in the reply says more. */
    size_t sl = strlen(rc->status);
    if (rc->status[0] == '\0' ||
        (sl >= 5 && strcmp(rc->status + 1, ".0.0") == 0 && status[0] == rc->status[0]))
        if (status[0] != '\0')
            memcpy(rc->status, status, sizeof status);
    if (strcmp(action, "delivered") == 0 || strcmp(action, "relayed") == 0 ||
        strcmp(action, "expanded") == 0) {
        rc->cls = PIGEON_BOUNCE_NONE;
        rc->reason = "not_a_bounce";
        return;
    }
    if (strcmp(action, "delayed") == 0) {
        rc->cls = PIGEON_BOUNCE_SOFT;
        rc->reason = "delayed";
        return;
    }
    rc->cls = pigeon_bounce_classify(rc->status, rc->smtp_code, rc->diagnostic, &rc->reason);
    /* A failure with a 2.x.x status is still a failure. */
    if (rc->cls == PIGEON_BOUNCE_NONE)
        rc->cls = pigeon_bounce_classify(NULL, rc->smtp_code, rc->diagnostic, &rc->reason);
}
