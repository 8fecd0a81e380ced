/*
 * records.c - parsers of the tag-list records of mail authentication, on (buf, len).
 *
 * The tag-list syntax (RFC 6376 3.2) is shared by DKIM key records (RFC 6376 3.6.1),
 * DMARC (RFC 7489 6.4, which adopts it), MTA-STS (RFC 8461 3.1), TLS-RPT (RFC 8460 3) and
 * BIMI. Also here: the organizational domain by a small suffix rule (RFC 7489 3.2 asks for
 * the Public Suffix List; we name the limit instead of shipping it), and the SPF includes
 * the provider presets publish.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pigeon/dns.h"

/* One tag of a tag-list; name and value point into the record. */
struct tag {
    const char *name;  /* tag name */
    size_t name_len;   /* its length */
    const char *value; /* value, surrounding whitespace trimmed */
    size_t value_len;  /* its length */
};

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Reads the next tag at *pos. Returns 1 with t set, 0 at the end, -1 on a syntax error
 * (err written). */
static int next_tag(const char *buf, size_t len, size_t *pos, struct tag *t, char *err,
                    size_t errlen)
{
    size_t i = *pos;
    while (i < len && (is_ws(buf[i]) || buf[i] == ';'))
        i++;
    if (i >= len) {
        *pos = i;
        return 0;
    }
    size_t start = i;
    /* RFC 6376 3.2: tag-name = ALPHA *ALNUMPUNC */
    if (!isalpha((unsigned char)buf[i])) {
        snprintf(err, errlen, "a tag name must start with a letter at offset %zu", i);
        return -1;
    }
    while (i < len && (isalnum((unsigned char)buf[i]) || buf[i] == '_'))
        i++;
    t->name = buf + start;
    t->name_len = i - start;
    while (i < len && is_ws(buf[i]))
        i++;
    if (i >= len || buf[i] != '=') {
        snprintf(err, errlen, "tag \"%.*s\" has no \"=\"",
                 (int)(t->name_len > 32 ? 32 : t->name_len), t->name);
        return -1;
    }
    i++;
    while (i < len && is_ws(buf[i]))
        i++;
    size_t vstart = i;
    while (i < len && buf[i] != ';') {
        unsigned char c = (unsigned char)buf[i];
        /* tag-value: VALCHAR (%x21-3A / %x3C-7E) and FWS. */
        if (!is_ws((char)c) && (c < 0x21 || c > 0x7e)) {
            snprintf(err, errlen, "tag \"%.*s\" holds a byte 0x%02x that is not allowed",
                     (int)(t->name_len > 32 ? 32 : t->name_len), t->name, c);
            return -1;
        }
        i++;
    }
    size_t vend = i;
    while (vend > vstart && is_ws(buf[vend - 1]))
        vend--;
    t->value = buf + vstart;
    t->value_len = vend - vstart;
    *pos = i;
    return 1;
}

static int tag_is(const struct tag *t, const char *name)
{
    return t->name_len == strlen(name) && strncmp(t->name, name, t->name_len) == 0;
}

static int value_is(const struct tag *t, const char *v)
{
    return t->value_len == strlen(v) && strncasecmp(t->value, v, t->value_len) == 0;
}

static void copy_value(const struct tag *t, char *out, size_t outlen)
{
    size_t n = t->value_len < outlen - 1 ? t->value_len : outlen - 1;
    memcpy(out, t->value, n);
    out[n] = '\0';
}

/* ---- DMARC (RFC 7489 6.3) ---- */

int pigeon_dmarc_is_record(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && is_ws(buf[i]))
        i++;
    if (len - i < 2 || buf[i] != 'v')
        return 0;
    i++;
    while (i < len && is_ws(buf[i]))
        i++;
    if (i >= len || buf[i] != '=')
        return 0;
    i++;
    while (i < len && is_ws(buf[i]))
        i++;
    /* RFC 7489 6.4: "v=DMARC1" exactly (the value is case-sensitive). */
    if (len - i < 6 || strncmp(buf + i, "DMARC1", 6) != 0)
        return 0;
    i += 6;
    while (i < len && is_ws(buf[i]))
        i++;
    return i == len || buf[i] == ';';
}

static pigeon_dmarc_policy policy_of(const struct tag *t)
{
    if (value_is(t, "none"))
        return PIGEON_DMARC_NONE;
    if (value_is(t, "quarantine"))
        return PIGEON_DMARC_QUARANTINE;
    if (value_is(t, "reject"))
        return PIGEON_DMARC_REJECT;
    return PIGEON_DMARC_UNSET;
}

static void dmarc_error(pigeon_dmarc_record *out, const char *fmt, const struct tag *t)
{
    if (out->errors++ == 0)
        snprintf(out->error, sizeof out->error, fmt, (int)(t->name_len > 24 ? 24 : t->name_len),
                 t->name, (int)(t->value_len > 60 ? 60 : t->value_len), t->value);
}

/* Checks a report URI list: comma-separated "mailto:" or "https:" URIs (6.2, 6.3). */
static int uris_valid(const struct tag *t)
{
    size_t i = 0;
    while (i <= t->value_len) {
        size_t j = i;
        while (j < t->value_len && t->value[j] != ',')
            j++;
        size_t s = i, e = j;
        while (s < e && is_ws(t->value[s]))
            s++;
        if (e - s < 8 || (strncasecmp(t->value + s, "mailto:", 7) != 0 &&
                          strncasecmp(t->value + s, "https:", 6) != 0 &&
                          strncasecmp(t->value + s, "http:", 5) != 0))
            return 0;
        if (strncasecmp(t->value + s, "mailto:", 7) == 0 &&
            memchr(t->value + s, '@', e - s) == NULL)
            return 0;
        i = j + 1;
    }
    return 1;
}

static int parse_long(const struct tag *t, long lo, long hi, long *v)
{
    if (t->value_len == 0 || t->value_len > 10)
        return -1;
    long n = 0;
    for (size_t i = 0; i < t->value_len; i++) {
        if (!isdigit((unsigned char)t->value[i]))
            return -1;
        n = n * 10 + (t->value[i] - '0');
    }
    if (n < lo || n > hi)
        return -1;
    *v = n;
    return 0;
}

/* One DMARC tag into the record. */
static void dmarc_tag(pigeon_dmarc_record *out, const struct tag *t)
{
    long n = 0;
    if (tag_is(t, "p") || tag_is(t, "sp")) {
        pigeon_dmarc_policy p = policy_of(t);
        if (p == PIGEON_DMARC_UNSET)
            dmarc_error(out, "%.*s=%.*s is not none, quarantine or reject", t);
        else if (tag_is(t, "p"))
            out->p = p;
        else
            out->sp = p;
    } else if (tag_is(t, "pct")) {
        if (parse_long(t, 0, 100, &n) != 0)
            dmarc_error(out, "%.*s=%.*s is not an integer from 0 to 100", t);
        else
            out->pct = (int)n;
    } else if (tag_is(t, "rua") || tag_is(t, "ruf")) {
        if (!uris_valid(t))
            dmarc_error(out, "%.*s=%.*s is not a list of mailto: URIs", t);
        else
            copy_value(t, tag_is(t, "rua") ? out->rua : out->ruf, sizeof out->rua);
    } else if (tag_is(t, "adkim") || tag_is(t, "aspf")) {
        if (!value_is(t, "r") && !value_is(t, "s"))
            dmarc_error(out, "%.*s=%.*s is not r (relaxed) or s (strict)", t);
        else
            *(tag_is(t, "adkim") ? &out->adkim : &out->aspf) =
                (char)tolower((unsigned char)t->value[0]);
    } else if (tag_is(t, "fo")) {
        /* fo = 0 / 1 / d / s, colon-separated. */
        int ok = t->value_len > 0;
        for (size_t i = 0; i < t->value_len && ok; i++) {
            char c = t->value[i];
            ok = (i % 2 == 0) ? (c == '0' || c == '1' || c == 'd' || c == 's') : c == ':';
        }
        if (!ok || t->value_len % 2 == 0)
            dmarc_error(out, "%.*s=%.*s is not a colon-separated list of 0, 1, d, s", t);
        else
            copy_value(t, out->fo, sizeof out->fo);
    } else if (tag_is(t, "ri")) {
        if (parse_long(t, 0, 0x7fffffffL, &n) != 0)
            dmarc_error(out, "%.*s=%.*s is not a number of seconds", t);
        else
            out->ri = n;
    } else if (tag_is(t, "rf")) {
        if (!value_is(t, "afrf"))
            dmarc_error(out, "%.*s=%.*s: the only report format is afrf", t);
    } else if (!tag_is(t, "v")) {
        /* RFC 7489 6.3: unknown tags MUST be ignored, but a typo deserves a mention. */
        dmarc_error(out, "unknown tag %.*s=%.*s (ignored by receivers)", t);
    }
}

pigeon_err pigeon_dmarc_parse(const char *buf, size_t len, pigeon_dmarc_record *out)
{
    if (buf == NULL || out == NULL)
        return PIGEON_ERR_INVALID;
    memset(out, 0, sizeof *out);
    out->pct = 100;
    out->adkim = out->aspf = 'r';
    snprintf(out->fo, sizeof out->fo, "0");
    out->ri = 86400;
    if (!pigeon_dmarc_is_record(buf, len)) {
        snprintf(out->error, sizeof out->error, "the record does not start with v=DMARC1");
        out->errors = 1;
        return PIGEON_ERR_PROTOCOL;
    }
    size_t pos = 0;
    struct tag t;
    char err[160];
    int seen_p = 0, rc;
    char names[32][8];
    int nnames = 0;
    while ((rc = next_tag(buf, len, &pos, &t, err, sizeof err)) == 1) {
        for (int i = 0; i < nnames; i++) {
            if (t.name_len == strlen(names[i]) && strncmp(names[i], t.name, t.name_len) == 0)
                dmarc_error(out, "tag %.*s appears twice%.*s",
                            &(struct tag){t.name, t.name_len, "", 0});
        }
        if (nnames < 32 && t.name_len < 8) {
            memcpy(names[nnames], t.name, t.name_len);
            names[nnames++][t.name_len] = '\0';
        }
        seen_p |= tag_is(&t, "p") && policy_of(&t) != PIGEON_DMARC_UNSET;
        dmarc_tag(out, &t);
    }
    if (rc < 0) {
        if (out->errors++ == 0)
            snprintf(out->error, sizeof out->error, "%s", err);
    }
    if (!seen_p) {
        /* RFC 7489 6.6.3: without a valid p=, a record with a valid rua= is p=none,
         * otherwise there is no usable record. */
        if (out->errors++ == 0)
            snprintf(out->error, sizeof out->error, "no valid p= tag (it is required)");
        if (out->rua[0] == '\0')
            return PIGEON_ERR_PROTOCOL;
        out->p = PIGEON_DMARC_NONE;
    }
    return PIGEON_OK;
}

/* ---- DKIM key records (RFC 6376 3.6.1) ---- */

pigeon_err pigeon_dns_dkim_record_parse(const char *buf, size_t len, pigeon_dns_dkim_record *out)
{
    if (buf == NULL || out == NULL)
        return PIGEON_ERR_INVALID;
    memset(out, 0, sizeof *out);
    snprintf(out->k, sizeof out->k, "rsa");
    snprintf(out->s, sizeof out->s, "*");
    size_t pos = 0;
    struct tag t;
    int rc, first = 1, have_p = 0;
    unsigned seen = 0;
    static const char *const known[] = {"v", "k", "p", "h", "s", "t", "n", "g"};
    while ((rc = next_tag(buf, len, &pos, &t, out->error, sizeof out->error)) == 1) {
        for (unsigned i = 0; i < sizeof known / sizeof known[0]; i++) {
            if (!tag_is(&t, known[i]))
                continue;
            /* RFC 6376 3.2: a duplicate tag makes the whole tag-list invalid. */
            if (seen & (1u << i)) {
                snprintf(out->error, sizeof out->error, "tag %s= appears twice", known[i]);
                return PIGEON_ERR_PROTOCOL;
            }
            seen |= 1u << i;
        }
        if (tag_is(&t, "v")) {
            /* v= is optional, but when present it must be first and "DKIM1". */
            if (!first || !value_is(&t, "DKIM1") || strncmp(t.value, "DKIM1", 5) != 0) {
                snprintf(out->error, sizeof out->error, "v= must come first and be DKIM1");
                return PIGEON_ERR_PROTOCOL;
            }
        } else if (tag_is(&t, "k")) {
            copy_value(&t, out->k, sizeof out->k);
        } else if (tag_is(&t, "h")) {
            copy_value(&t, out->h, sizeof out->h);
        } else if (tag_is(&t, "s")) {
            copy_value(&t, out->s, sizeof out->s);
        } else if (tag_is(&t, "t")) {
            copy_value(&t, out->t, sizeof out->t);
            for (size_t i = 0; i < t.value_len; i++) {
                if (t.value[i] == 'y' && (i == 0 || t.value[i - 1] == ':' || is_ws(t.value[i - 1])))
                    out->testing = 1;
            }
        } else if (tag_is(&t, "p")) {
            have_p = 1;
            out->p = t.value;
            out->p_len = t.value_len;
            for (size_t i = 0; i < t.value_len; i++) {
                char c = t.value[i];
                if (!isalnum((unsigned char)c) && c != '+' && c != '/' && c != '=' && !is_ws(c)) {
                    snprintf(out->error, sizeof out->error, "p= holds '%c', not base64", c);
                    return PIGEON_ERR_PROTOCOL;
                }
            }
        }
        first = 0;
    }
    if (rc < 0)
        return PIGEON_ERR_PROTOCOL;
    if (!have_p) {
        snprintf(out->error, sizeof out->error, "no p= tag (the public key is required)");
        return PIGEON_ERR_PROTOCOL;
    }
    if (strcmp(out->k, "rsa") != 0 && strcmp(out->k, "ed25519") != 0) {
        char k[sizeof out->k];
        snprintf(k, sizeof k, "%s", out->k);
        snprintf(out->error, sizeof out->error, "unknown key type k=%s", k);
        return PIGEON_ERR_PROTOCOL;
    }
    return PIGEON_OK;
}

/* ---- MTA-STS, TLS-RPT, BIMI ---- */

pigeon_err pigeon_tagrec_parse(const char *buf, size_t len, const char *want_version,
                               pigeon_tagrec *out)
{
    if (buf == NULL || out == NULL || want_version == NULL)
        return PIGEON_ERR_INVALID;
    memset(out, 0, sizeof *out);
    size_t pos = 0;
    struct tag t;
    int rc, first = 1;
    while ((rc = next_tag(buf, len, &pos, &t, out->error, sizeof out->error)) == 1) {
        if (first) {
            /* RFC 8461 3.1, RFC 8460 3: v= first, exact version (case-sensitive). */
            if (!tag_is(&t, "v") || t.value_len != strlen(want_version) ||
                strncmp(t.value, want_version, t.value_len) != 0) {
                snprintf(out->error, sizeof out->error, "the record must start with v=%s",
                         want_version);
                return PIGEON_ERR_PROTOCOL;
            }
            copy_value(&t, out->version, sizeof out->version);
        } else if (tag_is(&t, "id")) {
            copy_value(&t, out->id, sizeof out->id);
        } else if (tag_is(&t, "rua")) {
            copy_value(&t, out->rua, sizeof out->rua);
        } else if (tag_is(&t, "l")) {
            copy_value(&t, out->l, sizeof out->l);
        } else if (tag_is(&t, "a")) {
            copy_value(&t, out->a, sizeof out->a);
        }
        first = 0;
    }
    if (rc < 0)
        return PIGEON_ERR_PROTOCOL;
    if (first) {
        snprintf(out->error, sizeof out->error, "empty record");
        return PIGEON_ERR_PROTOCOL;
    }
    if (strcmp(want_version, "STSv1") == 0 && out->id[0] == '\0') {
        snprintf(out->error, sizeof out->error, "no id= tag (RFC 8461 3.1 requires it)");
        return PIGEON_ERR_PROTOCOL;
    }
    if (strcmp(want_version, "TLSRPTv1") == 0 && out->rua[0] == '\0') {
        snprintf(out->error, sizeof out->error, "no rua= tag (RFC 8460 3 requires it)");
        return PIGEON_ERR_PROTOCOL;
    }
    return PIGEON_OK;
}

/* ---- the organizational domain ---- */

/* Second-level suffixes under which registrations sit one label deeper. Not the Public
 * Suffix List: a domain under a suffix missing here gets a too-short org domain. */
static const char *const second_level[] = {
    "com.cn", "net.cn", "org.cn", "gov.cn", "edu.cn", "ac.cn",  "co.uk",  "org.uk",
    "ac.uk",  "gov.uk", "me.uk",  "co.jp",  "ne.jp",  "or.jp",  "ac.jp",  "com.au",
    "net.au", "org.au", "co.nz",  "com.br", "com.hk", "com.tw", "co.kr",  "co.in",
    "com.sg", "com.mx", "co.za",  "com.tr", "com.my", "co.id",  "com.ar", "co.il",
};

int pigeon_dns_org_domain(const char *domain, char *out, size_t outlen)
{
    if (domain == NULL || out == NULL || outlen == 0)
        return -1;
    size_t len = strlen(domain);
    while (len > 0 && domain[len - 1] == '.')
        len--;
    /* Positions of the last three dots. */
    const char *d1 = NULL, *d2 = NULL, *d3 = NULL;
    for (size_t i = 0; i < len; i++) {
        if (domain[i] == '.') {
            d3 = d2;
            d2 = d1;
            d1 = domain + i;
        }
    }
    const char *start = d2 != NULL ? d2 + 1 : domain;
    size_t tail = (size_t)(domain + len - start);
    for (size_t i = 0; d2 != NULL && i < sizeof second_level / sizeof second_level[0]; i++) {
        if (tail == strlen(second_level[i]) && strncasecmp(start, second_level[i], tail) == 0) {
            start = d3 != NULL ? d3 + 1 : domain;
            break;
        }
    }
    size_t n = (size_t)(domain + len - start);
    if (n >= outlen)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)start[i]);
    out[n] = '\0';
    return 0;
}

/* ---- the providers' published SPF includes ---- */

const char *pigeon_dns_provider_spf_include(const char *provider)
{
    static const struct {
        const char *provider; /* preset name (pigeon_provider.name), or a prefix ending '-' */
        const char *include;  /* the include: domain it publishes */
    } table[] = {
        {"qq", "spf.mail.qq.com"},
        {"qq-starttls", "spf.mail.qq.com"},
        {"qq-exmail", "spf.mail.qq.com"},
        {"163", "spf.163.com"},
        {"126", "spf.163.com"},
        {"yeah", "spf.163.com"},
        {"aliyun", "spf.qiye.aliyun.com"},
        {"aliyun-qiye", "spf.qiye.aliyun.com"},
        {"gmail", "_spf.google.com"},
        {"outlook", "spf.protection.outlook.com"},
        {"office365", "spf.protection.outlook.com"},
        {"icloud", "icloud.com"},
        {"zoho", "zoho.com"},
        {"ses-", "amazonses.com"},
        {"sendgrid", "sendgrid.net"},
        {"mailgun", "mailgun.org"},
        {"brevo", "spf.brevo.com"},
    };
    if (provider == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        size_t n = strlen(table[i].provider);
        if (table[i].provider[n - 1] == '-' ? strncasecmp(provider, table[i].provider, n) == 0
                                            : strcasecmp(provider, table[i].provider) == 0)
            return table[i].include;
    }
    return NULL;
}
