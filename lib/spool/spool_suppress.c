/*
 * spool_suppress.c - the suppression list, the generic side: address normalization for
 * comparison, argument checks, the soft-bounce window, then the backend's table (see
 * pigeon/suppress.h and spool/spool_suppress.h).
 *
 * Normalization: the domain goes to A-labels (RFC 5890) through lib/address's IDNA2008
 * code, with a fast path for plain ASCII host names (lower-casing is all UTS #46 does to
 * them), so that a check of a common address costs no libidn2 call. The local part is
 * checked against RFC 5322 3.4.1 (dot-atom or quoted-string, UTF-8 allowed as RFC 6531
 * 3.3 does) and kept as given; only its comparison key folds ASCII case.
 */
#include "pigeon/suppress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address/idn.h"
#include "spool/spool_backend.h"
#include "spool/spool_suppress.h"

#define MAX_LOCAL   64   /* RFC 5321 4.5.3.1.1: octets of a local part */
#define MAX_ACCOUNT 255  /* as the spool's accounts */
#define MAX_DIAG    1000 /* as the spool's reply texts */
#define MAX_QID     64   /* a queue id (ours are 26) */
#define DAY_MS      (24LL * 60 * 60 * 1000)

static const char *const reason_names[] = {"none",        "hard-bounce", "complaint",
                                           "soft-bounce", "manual",      "unsubscribe"};

static void set_why(char *why, size_t whylen, const char *text);
static int atext(unsigned char c);
static pigeon_err check_local(const char *s, size_t n, char *why, size_t whylen);
static pigeon_err norm_domain(const char *s, size_t n, char *out, size_t size, size_t *len,
                              char *why, size_t whylen);
static const pg_spool_suppress_ops *ops_of(pigeon_spool *spool, void **be);

const char *pigeon_suppress_reason_name(pigeon_suppress_reason reason)
{
    if ((unsigned)reason >= sizeof reason_names / sizeof reason_names[0])
        return "?";
    return reason_names[reason];
}

pigeon_err pigeon_suppress_reason_parse(const char *s, pigeon_suppress_reason *out)
{
    if (s == NULL || out == NULL)
        return PIGEON_ERR_INVALID;
    for (size_t i = 1; i < sizeof reason_names / sizeof reason_names[0]; i++) {
        if (strcasecmp(s, reason_names[i]) == 0) {
            *out = (pigeon_suppress_reason)i;
            return PIGEON_OK;
        }
    }
    if (strcasecmp(s, "hard") == 0 || strcasecmp(s, "bounce") == 0)
        *out = PIGEON_SUPPRESS_HARD_BOUNCE;
    else if (strcasecmp(s, "soft") == 0)
        *out = PIGEON_SUPPRESS_SOFT_BOUNCE;
    else
        return PIGEON_ERR_INVALID;
    return PIGEON_OK;
}

/* ---- normalization ---- */

static void set_why(char *why, size_t whylen, const char *text)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s", text);
}

/* RFC 5322 3.2.3 atext, plus UTF-8 octets (RFC 6531 3.3 UTF8-non-ascii). */
static int atext(unsigned char c)
{
    if (c >= 0x80)
        return 1;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* A dot-atom or a quoted-string (RFC 5322 3.4.1), at most 64 octets. */
static pigeon_err check_local(const char *s, size_t n, char *why, size_t whylen)
{
    if (n == 0 || n > MAX_LOCAL) {
        set_why(why, whylen, n == 0 ? "empty local part" : "local part over 64 octets");
        return PIGEON_ERR_ADDRESS;
    }
    if (s[0] == '"') {
        /* RFC 5322 3.2.4: qtext and quoted-pairs of VCHAR or WSP between two quotes. */
        size_t i = 1;
        for (; i < n && s[i] != '"'; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c == '\\' && i + 1 < n)
                c = (unsigned char)s[++i];
            if (c < 0x20 || c == 0x7f)
                break;
        }
        if (i + 1 == n && s[i] == '"')
            return PIGEON_OK;
        set_why(why, whylen, "bad quoted local part");
        return PIGEON_ERR_ADDRESS;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int dot_ok = c == '.' && i > 0 && i + 1 < n && s[i - 1] != '.';
        if (!atext(c) && !dot_ok) {
            set_why(why, whylen,
                    c == '.' ? "misplaced dot in local part" : "bad character in local part");
            return PIGEON_ERR_ADDRESS;
        }
    }
    return PIGEON_OK;
}

/* Whether [s, s+n) holds only letters, digits, hyphens and dots (a host name's LDH
 * octets), so that lower-casing is all normalization does to it. */
static int ldh_only(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* RFC 1035 2.3.4 and RFC 5890 2.3.1: labels of 1 to 63 LDH octets, no hyphen at either
 * end, at most 253 octets in all (no trailing dot). */
static int ldh_valid(const char *s, size_t n)
{
    size_t label = 0;
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
                return 0;
            label = 0;
        } else {
            label++;
        }
    }
    return 1;
}

/* Plain ASCII host names take the fast path: lower-cased and checked; the rest (IDNs,
 * address literals) goes through libidn2. */
static pigeon_err norm_domain(const char *s, size_t n, char *out, size_t size, size_t *len,
                              char *why, size_t whylen)
{
    if (ldh_only(s, n)) {
        if (!ldh_valid(s, n)) {
            set_why(why, whylen, "bad domain");
            return PIGEON_ERR_ADDRESS;
        }
        if (n + 1 > size)
            return PIGEON_ERR_TOO_LARGE;
        for (size_t i = 0; i < n; i++)
            out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
        out[n] = '\0';
        *len = n;
        return PIGEON_OK;
    }
    char *u = NULL, *a = NULL;
    pigeon_err err = pg_idn_domain_normalize(s, n, &u, &a, why, whylen);
    if (err == PIGEON_OK) {
        size_t an = strlen(a);
        if (an + 1 > size) {
            err = PIGEON_ERR_TOO_LARGE;
        } else {
            memcpy(out, a, an + 1);
            *len = an;
        }
    }
    free(u);
    free(a);
    return err;
}

pigeon_err pigeon_suppress_normalize(const char *address, unsigned flags, char *out, size_t size,
                                     char *why, size_t whylen)
{
    set_why(why, whylen, "");
    if (address == NULL || out == NULL || size == 0)
        return PIGEON_ERR_INVALID;
    out[0] = '\0';
    size_t n = strlen(address);
    const char *at = strrchr(address, '@');
    if (at == NULL || n > PIGEON_SUPPRESS_ADDR_MAX) {
        set_why(why, whylen, at == NULL ? "not local@domain" : "address too long");
        return PIGEON_ERR_ADDRESS;
    }
    size_t ln = (size_t)(at - address);
    pigeon_err err = check_local(address, ln, why, whylen);
    if (err != PIGEON_OK)
        return err;
    if (ln + 2 > size)
        return PIGEON_ERR_TOO_LARGE;
    for (size_t i = 0; i < ln; i++) {
        char c = address[i];
        if (!(flags & PIGEON_SUPPRESS_CASE_SENSITIVE) && c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        out[i] = c;
    }
    out[ln] = '@';
    size_t dn = 0;
    if (n - ln - 1 == 0) {
        set_why(why, whylen, "empty domain");
        err = PIGEON_ERR_ADDRESS;
    } else {
        err = norm_domain(at + 1, n - ln - 1, out + ln + 1, size - ln - 1, &dn, why, whylen);
    }
    if (err == PIGEON_OK && ln + 1 + dn > PIGEON_SUPPRESS_ADDR_MAX) {
        set_why(why, whylen, "address too long");
        err = PIGEON_ERR_ADDRESS;
    }
    if (err != PIGEON_OK)
        out[0] = '\0';
    return err;
}

/* ---- the generic layer ---- */

static const pg_spool_suppress_ops *ops_of(pigeon_spool *spool, void **be)
{
    const pg_spool_ops *ops = NULL;
    *be = pg_spool_backend(spool, &ops);
    return ops->suppress;
}

/* The backend's table, or NULL after writing the diagnosis. */
static const pg_spool_suppress_ops *table(pigeon_spool *spool, void **be)
{
    const pg_spool_suppress_ops *t = ops_of(spool, be);
    if (t == NULL) {
        const pg_spool_ops *ops = NULL;
        pg_spool_backend(spool, &ops);
        pg_spool_fail(pg_spool_diag_of(spool), PIGEON_ERR_UNSUPPORTED,
                      "suppress: the %s spool backend keeps no suppression list", ops->name);
    }
    return t;
}

/* An account name as stored: NULL and "" mean global. NULL when it is not acceptable. */
static const char *account_name(const char *account)
{
    if (account == NULL || account[0] == '\0')
        return PIGEON_SUPPRESS_GLOBAL;
    size_t n = strlen(account);
    if (n > MAX_ACCOUNT)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)account[i];
        if (c < 0x20 || c == 0x7f)
            return NULL;
    }
    return account;
}

/* Copies s into out (size octets), controls made spaces (a folded diagnostic keeps its
 * words), cut at a UTF-8 character boundary. */
static void clean_text(const char *s, char *out, size_t size)
{
    size_t n = s != NULL ? strlen(s) : 0, i = 0;
    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[i] = '\0';
}

/* The address as kept: the local part as given, the domain normalized. */
static pigeon_err both_forms(pigeon_spool *spool, const char *address, char *key, char *kept,
                             size_t size)
{
    char why[160];
    pigeon_err err = pigeon_suppress_normalize(address, 0, key, size, why, sizeof why);
    if (err == PIGEON_OK)
        err = pigeon_suppress_normalize(address, PIGEON_SUPPRESS_CASE_SENSITIVE, kept, size, why,
                                        sizeof why);
    if (err != PIGEON_OK)
        return pg_spool_fail(pg_spool_diag_of(spool), err, "suppress: %s: %s",
                             address != NULL ? address : "(null)",
                             err == PIGEON_ERR_TOO_LARGE ? "address too long" : why);
    return PIGEON_OK;
}

pigeon_err pigeon_suppress_add(pigeon_spool *spool, const pigeon_suppress_entry *entry,
                               const pigeon_suppress_policy *policy, int *suppressed)
{
    void *be = NULL;
    char key[PIGEON_SUPPRESS_ADDR_MAX + 1], kept[PIGEON_SUPPRESS_ADDR_MAX + 1];
    char status[64], diag[MAX_DIAG + 1], qid[MAX_QID + 1];
    if (suppressed != NULL)
        *suppressed = 0;
    if (spool == NULL || entry == NULL)
        return PIGEON_ERR_INVALID;
    const pg_spool_suppress_ops *t = table(spool, &be);
    if (t == NULL)
        return PIGEON_ERR_UNSUPPORTED;
    pg_spool_diag *d = pg_spool_diag_of(spool);
    const char *account = account_name(entry->account);
    if (account == NULL)
        return pg_spool_fail(d, PIGEON_ERR_INVALID, "suppress: bad account name");
    if (entry->reason <= PIGEON_SUPPRESS_NONE || entry->reason > PIGEON_SUPPRESS_UNSUBSCRIBE)
        return pg_spool_fail(d, PIGEON_ERR_INVALID, "suppress: bad reason %d", (int)entry->reason);
    pigeon_err err = both_forms(spool, entry->address, key, kept, sizeof key);
    if (err != PIGEON_OK)
        return err;
    clean_text(entry->status, status, sizeof status);
    clean_text(entry->diagnostic, diag, sizeof diag);
    clean_text(entry->queue_id, qid, sizeof qid);
    pg_spool_suppress_row row = {account, key,  kept, entry->reason,
                                 status,  diag, qid,  entry->created_ms};
    if (entry->reason != PIGEON_SUPPRESS_SOFT_BOUNCE) {
        err = t->add(be, &row);
        if (err == PIGEON_OK && suppressed != NULL)
            *suppressed = 1;
        return err;
    }
    int limit = policy != NULL ? policy->soft_bounce_limit : PIGEON_SUPPRESS_SOFT_LIMIT;
    int days = policy != NULL ? policy->soft_bounce_days : PIGEON_SUPPRESS_SOFT_DAYS;
    if (limit < 1 || days < 1 || days > 3650)
        return pg_spool_fail(d, PIGEON_ERR_INVALID,
                             "suppress: bad soft-bounce policy %d in %d days", limit, days);
    /* The window ends at the event: an event recorded late (a bounce read days after)
     * counts those within days before it. */
    int tmp = 0;
    err = t->soft(be, &row, entry->created_ms - (int64_t)days * DAY_MS, limit, &tmp);
    if (suppressed != NULL)
        *suppressed = tmp;
    return err;
}

pigeon_err pigeon_suppress_remove(pigeon_spool *spool, const char *account, const char *address)
{
    void *be = NULL;
    char key[PIGEON_SUPPRESS_ADDR_MAX + 1], kept[PIGEON_SUPPRESS_ADDR_MAX + 1];
    if (spool == NULL)
        return PIGEON_ERR_INVALID;
    const pg_spool_suppress_ops *t = table(spool, &be);
    if (t == NULL)
        return PIGEON_ERR_UNSUPPORTED;
    const char *acc = account_name(account);
    if (acc == NULL)
        return pg_spool_fail(pg_spool_diag_of(spool), PIGEON_ERR_INVALID,
                             "suppress: bad account name");
    pigeon_err err = both_forms(spool, address, key, kept, sizeof key);
    if (err != PIGEON_OK)
        return err;
    size_t count = 0;
    err = t->remove(be, acc, key, &count);
    if (err == PIGEON_OK && count == 0)
        return pg_spool_fail(pg_spool_diag_of(spool), PIGEON_ERR_NOTFOUND,
                             "suppress: %s is not on the list of %s", kept, acc);
    return err;
}

pigeon_err pigeon_suppress_check(pigeon_spool *spool, const char *account, const char *address,
                                 unsigned flags, pigeon_suppress_hit *hit)
{
    char key[PIGEON_SUPPRESS_ADDR_MAX + 1], kept[PIGEON_SUPPRESS_ADDR_MAX + 1];
    if (hit == NULL)
        return PIGEON_ERR_INVALID;
    memset(hit, 0, sizeof *hit);
    if (spool == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_err err = both_forms(spool, address, key, kept, sizeof key);
    if (err != PIGEON_OK)
        return err;
    void *be = NULL;
    const pg_spool_suppress_ops *t = table(spool, &be);
    if (t == NULL)
        return PIGEON_ERR_UNSUPPORTED;
    const char *acc = account_name(account);
    if (acc == NULL)
        return pg_spool_fail(pg_spool_diag_of(spool), PIGEON_ERR_INVALID,
                             "suppress: bad account name");
    const char *keys[1] = {key}, *exact[1] = {kept};
    return t->check(be, acc, keys, (flags & PIGEON_SUPPRESS_CASE_SENSITIVE) ? exact : NULL, 1, hit);
}

/* Normalized forms of a batch of addresses, in one allocation. */
typedef struct key_set {
    char *mem;          /* n keys then n exact forms, each PIGEON_SUPPRESS_ADDR_MAX + 1 */
    const char **keys;  /* keys[i], NULL for an address that does not parse */
    const char **exact; /* exact[i], likewise */
} key_set;

#define KEY_W         (PIGEON_SUPPRESS_ADDR_MAX + 1)
#define KEY_SET_STACK 4 /* batches up to this many need no allocation (a send, a merge row) */

static pigeon_err key_set_make(key_set *ks, const char *const *addresses, size_t n, char *stack,
                               const char **stack_keys)
{
    if (n <= KEY_SET_STACK) {
        ks->mem = stack;
        ks->keys = stack_keys;
        memset(stack_keys, 0, 2 * KEY_SET_STACK * sizeof *stack_keys);
    } else {
        ks->mem = malloc(n * 2 * KEY_W);
        ks->keys = calloc(n * 2, sizeof *ks->keys);
        if (ks->mem == NULL || ks->keys == NULL)
            return PIGEON_ERR_NOMEM;
    }
    ks->exact = ks->keys + n;
    for (size_t i = 0; i < n; i++) {
        char *k = ks->mem + 2 * i * KEY_W, *e = k + KEY_W;
        if (addresses[i] == NULL ||
            pigeon_suppress_normalize(addresses[i], 0, k, KEY_W, NULL, 0) != PIGEON_OK ||
            pigeon_suppress_normalize(addresses[i], PIGEON_SUPPRESS_CASE_SENSITIVE, e, KEY_W, NULL,
                                      0) != PIGEON_OK)
            continue;
        ks->keys[i] = k;
        ks->exact[i] = e;
    }
    return PIGEON_OK;
}

static void key_set_free(key_set *ks, const char *stack)
{
    if (ks->mem != stack) {
        free(ks->mem);
        free(ks->keys);
    }
}

pigeon_err pigeon_suppress_check_many(pigeon_spool *spool, const char *account,
                                      const char *const *addresses, size_t n, unsigned flags,
                                      pigeon_suppress_hit *hits, size_t *count)
{
    if (count != NULL)
        *count = 0;
    if (spool == NULL || (n > 0 && (addresses == NULL || hits == NULL)))
        return PIGEON_ERR_INVALID;
    if (n == 0)
        return PIGEON_OK;
    memset(hits, 0, n * sizeof *hits);
    void *be = NULL;
    const pg_spool_suppress_ops *t = table(spool, &be);
    if (t == NULL)
        return PIGEON_ERR_UNSUPPORTED;
    const char *acc = account_name(account);
    if (acc == NULL)
        return pg_spool_fail(pg_spool_diag_of(spool), PIGEON_ERR_INVALID,
                             "suppress: bad account name");
    key_set ks = {0};
    char stack[2 * KEY_SET_STACK * KEY_W];
    const char *stack_keys[2 * KEY_SET_STACK];
    pigeon_err err = key_set_make(&ks, addresses, n, stack, stack_keys);
    if (err == PIGEON_OK)
        err = t->check(be, acc, ks.keys, (flags & PIGEON_SUPPRESS_CASE_SENSITIVE) ? ks.exact : NULL,
                       n, hits);
    key_set_free(&ks, stack);
    for (size_t i = 0; err == PIGEON_OK && count != NULL && i < n; i++)
        *count += hits[i].reason != PIGEON_SUPPRESS_NONE;
    return err;
}

pigeon_err pigeon_suppress_list(pigeon_spool *spool, const char *account,
                                pigeon_suppress_reason reason,
                                int (*fn)(void *ctx, const pigeon_suppress_entry *entry), void *ctx)
{
    if (spool == NULL || fn == NULL || (unsigned)reason > PIGEON_SUPPRESS_UNSUBSCRIBE)
        return PIGEON_ERR_INVALID;
    void *be = NULL;
    const pg_spool_suppress_ops *t = table(spool, &be);
    if (t == NULL)
        return PIGEON_ERR_UNSUPPORTED;
    const char *acc = NULL;
    if (account != NULL && (acc = account_name(account)) == NULL)
        return pg_spool_fail(pg_spool_diag_of(spool), PIGEON_ERR_INVALID,
                             "suppress: bad account name");
    return t->list(be, acc, reason, fn, ctx);
}
