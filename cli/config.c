/*
 * config.c - reading the pigeon configuration file (pigeon.conf(5)).
 *
 * A small INI reader: comments start with '#' or ';' at the start of a line, "key = value"
 * pairs, "[account NAME]" sections. Like ssh's rule for its config, any file is refused
 * when group or others may write it or when someone other than the user or root owns it:
 * whoever can change it can point host elsewhere with insecure = yes and collect the
 * password from the environment. A file that holds a secret (password or a command that
 * yields one) must also be private to its owner, like msmtp's rule: it is refused when
 * group or others may read it, or when another user owns it.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define LINE_MAX_LEN 4096 /* longest line accepted in the file */

static const char *const key_names[K_COUNT] = {
    [K_PROVIDER] = "provider",
    [K_HOST] = "host",
    [K_PORT] = "port",
    [K_TLS] = "tls",
    [K_USER] = "user",
    [K_FROM] = "from",
    [K_PASSWORD] = "password",
    [K_PASSWORD_FILE] = "password_file",
    [K_PASSWORD_COMMAND] = "password_command",
    [K_OAUTH_TOKEN_COMMAND] = "oauth_token_command",
    [K_CA_FILE] = "ca_file",
    [K_TLS_FINGERPRINT] = "tls_fingerprint",
    [K_INSECURE] = "insecure",
    [K_AUTH] = "auth",
    [K_HELO] = "helo",
    [K_TIMEOUT] = "timeout",
    [K_CONNECT_TIMEOUT] = "connect_timeout",
    [K_RATE_PER_SECOND] = "rate_per_second",
    [K_DAILY_LIMIT] = "daily_limit",
    [K_MAX_CONNECTIONS] = "max_connections",
    [K_PASSWORD_COMMAND_TIMEOUT] = "password_command_timeout",
    [K_DKIM_DOMAIN] = "dkim_domain",
    [K_DKIM_SELECTOR] = "dkim_selector",
    [K_DKIM_KEY] = "dkim_key",
    [K_DKIM_ALGORITHM] = "dkim_algorithm",
    [K_DKIM_CANONICALIZATION] = "dkim_canonicalization",
    [K_DKIM_EXPIRE] = "dkim_expire",
    [K_SOFT_BOUNCE_LIMIT] = "soft_bounce_limit",
    [K_SOFT_BOUNCE_DAYS] = "soft_bounce_days",
    [K_SENDMAIL_SUPPRESSION] = "sendmail_suppression",
    [K_IMAP_HOST] = "imap_host",
    [K_IMAP_PORT] = "imap_port",
    [K_POP3_HOST] = "pop3_host",
    [K_POP3_PORT] = "pop3_port",
    [K_SAVE_SENT] = "save_sent",
    [K_BOUNCE_CHECK] = "bounce_check",
    [K_VERP] = "verp",
    [K_VERP_KEY_FILE] = "verp_key_file",
};

/* Most [account NAME] sections in one file. */
#define ACCOUNTS_MAX 128

/* One parsed line of the file. */
struct ini_line {
    int lineno;        /* 1-based line number */
    char section[128]; /* "account NAME" or "" before any section */
    char *key;         /* key, within the line buffer; NULL on a section header line */
    char *value;       /* unquoted value, within the line buffer */
};

typedef int (*ini_fn)(void *ctx, const struct ini_line *line, char *err, size_t errlen);

static char *trim(char *s);
static int unquote(char *v);
static int ini_read(const char *path, ini_fn fn, void *ctx, char *err, size_t errlen);

/* Copies src into dst (cap bytes), truncating; returns -1 if it did not fit. */
static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    int fits = n < cap;
    if (!fits)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return fits ? 0 : -1;
}

const char *cfg_key_name(enum cfg_key k)
{
    return (unsigned)k < K_COUNT ? key_names[k] : "?";
}

int cfg_key_lookup(const char *name)
{
    for (int k = 0; k < K_COUNT; k++)
        if (strcmp(key_names[k], name) == 0)
            return k;
    return -1;
}

int cfg_set(cfg_settings *s, enum cfg_key k, const char *value, cfg_source src, const char *origin)
{
    cfg_value *v = &s->v[k];
    if (v->value != NULL && v->source > src)
        return 0;
    char *copy = value ? strdup(value) : NULL;
    if (value != NULL && copy == NULL)
        return -1;
    if (v->value != NULL) {
        OPENSSL_cleanse(v->value, strlen(v->value));
        free(v->value);
    }
    v->value = copy;
    v->source = value ? src : CFG_UNSET;
    copy_str(v->origin, sizeof v->origin, origin ? origin : "");
    return 0;
}

const char *cfg_get(const cfg_settings *s, enum cfg_key k)
{
    return s->v[k].value;
}

void cfg_cleanup(cfg_settings *s)
{
    for (int k = 0; k < K_COUNT; k++) {
        if (s->v[k].value != NULL) {
            OPENSSL_cleanse(s->v[k].value, strlen(s->v[k].value));
            free(s->v[k].value);
        }
    }
    memset(s, 0, sizeof *s);
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

int cfg_find_file(char *out, size_t outlen)
{
    const char *env = getenv("PIGEON_CONFIG");
    if (env != NULL && *env != '\0') {
        snprintf(out, outlen, "%s", env);
        return file_exists(out) ? 1 : -1;
    }
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    char first[512] = "";
    if (xdg != NULL && *xdg != '\0')
        snprintf(first, sizeof first, "%s/pigeon/config", xdg);
    else if (home != NULL && *home != '\0')
        snprintf(first, sizeof first, "%s/.config/pigeon/config", home);
    if (first[0] != '\0' && file_exists(first)) {
        snprintf(out, outlen, "%s", first);
        return 1;
    }
    if (file_exists("/etc/pigeon.conf")) {
        snprintf(out, outlen, "%s", "/etc/pigeon.conf");
        return 1;
    }
    snprintf(out, outlen, "%s", first[0] ? first : "/etc/pigeon.conf");
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Removes the double quotes around a value that is one quoted string as a whole,
 * resolving \" and \\ inside. A value that merely starts with a quote, such as
 * from = "Zhang San" <a@qq.com>, is kept as it is. Returns -1 for a quote never closed. */
static int unquote(char *v)
{
    size_t n = strlen(v);
    if (n == 0 || v[0] != '"')
        return 0;
    size_t i = 1;
    while (i < n && v[i] != '"')
        i += (v[i] == '\\' && i + 1 < n) ? 2 : 1;
    if (i >= n)
        return -1;
    if (i != n - 1)
        return 0; /* the quoted string is only a part of the value */
    char *w = v;
    for (size_t k = 1; k < n - 1; k++) {
        if (v[k] == '\\' && k + 1 < n - 1)
            k++;
        *w++ = v[k];
    }
    *w = '\0';
    return 0;
}

/* Calls fn for every key = value line of the file. */
static int ini_read(const char *path, ini_fn fn, void *ctx, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char line[LINE_MAX_LEN];
    struct ini_line il = {0};
    int rc = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        il.lineno++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            snprintf(err, errlen, "%s:%d: line too long", path, il.lineno);
            rc = -1;
            break;
        }
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (end == NULL || *trim(end + 1) != '\0') {
                snprintf(err, errlen, "%s:%d: malformed section header", path, il.lineno);
                rc = -1;
                break;
            }
            *end = '\0';
            char *name = trim(s + 1);
            /* [webhook NAME]: read by cli/webhook_conf.c through cfg_read_file. */
            size_t kw = strncmp(name, "webhook", 7) == 0 ? 7 : 0;
            if (kw == 0 && strncmp(name, "account", 7) == 0)
                kw = 7;
            if (kw == 0 || (name[kw] != ' ' && name[kw] != '\t') || *trim(name + kw) == '\0') {
                snprintf(err, errlen,
                         "%s:%d: unknown section [%s] (expected [account NAME] or [webhook NAME])",
                         path, il.lineno, name);
                rc = -1;
                break;
            }
            snprintf(il.section, sizeof il.section, "%.7s %s", name, trim(name + kw));
            il.key = il.value = NULL;
            if ((rc = fn(ctx, &il, err, errlen)) != 0)
                break;
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%d: expected key = value", path, il.lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        il.key = trim(s);
        il.value = trim(eq + 1);
        if (unquote(il.value) != 0) {
            snprintf(err, errlen, "%s:%d: unbalanced quotes in the value of %s", path, il.lineno,
                     il.key);
            rc = -1;
            break;
        }
        if ((rc = fn(ctx, &il, err, errlen)) != 0)
            break;
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    return rc;
}

/* State of one cfg_load pass. */
struct load_ctx {
    cfg_settings *s;  /* settings being filled */
    const char *path; /* the file */
    char wanted[64];  /* the account to load */
    int found;        /* the account's section was seen */
    int has_secret;   /* the file holds a password or a command */
    char shown[96];   /* a refused value, made printable for the message */
};

/* First pass: the default account name, and every account with the line naming it. */
struct scan_ctx {
    const char *path;             /* the file */
    char default_account[64];     /* default_account = NAME, or "" */
    char accounts[1024];          /* comma-separated names */
    int naccounts;                /* number of accounts */
    int has_default_named;        /* an account is named "default" */
    char names[ACCOUNTS_MAX][64]; /* each account's name, in file order */
    int lines[ACCOUNTS_MAX];      /* the line of its [account NAME] */
};

/* Records an [account NAME] line; the same name twice is an error naming both lines
 * (merging them silently would count the account twice and hide a typo). */
static int scan_section(struct scan_ctx *sc, const struct ini_line *l, char *err, size_t errlen)
{
    const char *name = l->section + 8;
    for (int i = 0; i < sc->naccounts; i++) {
        if (strcmp(sc->names[i], name) == 0) {
            snprintf(err, errlen,
                     "%s:%d: [account %s] is already defined at line %d: give each account "
                     "one section",
                     sc->path, l->lineno, name, sc->lines[i]);
            return -1;
        }
    }
    if (sc->naccounts == ACCOUNTS_MAX || copy_str(sc->names[sc->naccounts], 64, name) != 0) {
        snprintf(err, errlen, "%s:%d: too many accounts, or an account name over 63 octets",
                 sc->path, l->lineno);
        return -1;
    }
    sc->lines[sc->naccounts] = l->lineno;
    size_t used = strlen(sc->accounts);
    snprintf(sc->accounts + used, sizeof sc->accounts - used, "%s%s", sc->naccounts ? ", " : "",
             name);
    sc->naccounts++;
    if (strcmp(name, "default") == 0)
        sc->has_default_named = 1;
    return 0;
}

/* Nonzero for a line of a [webhook NAME] section, or a top-level webhook* key: the
 * webhook settings (cli/webhook_conf.c), which no send uses. */
static int webhook_line(const struct ini_line *l)
{
    if (strncmp(l->section, "webhook ", 8) == 0)
        return 1;
    return l->section[0] == '\0' && l->key != NULL && strncmp(l->key, "webhook", 7) == 0;
}

static int scan_line(void *ctx, const struct ini_line *l, char *err, size_t errlen)
{
    struct scan_ctx *sc = ctx;
    if (webhook_line(l))
        return 0;
    if (l->key == NULL)
        return scan_section(sc, l, err, errlen);
    if (l->section[0] == '\0' && strcmp(l->key, "default_account") == 0)
        copy_str(sc->default_account, sizeof sc->default_account, l->value);
    return 0;
}

static int scan_accounts(const char *path, struct scan_ctx *sc, char *err, size_t errlen)
{
    memset(sc, 0, sizeof *sc);
    sc->path = path;
    return ini_read(path, scan_line, sc, err, errlen);
}

struct top_ctx {
    const char *key; /* the key looked for */
    char *out;       /* where its value goes */
    size_t outlen;   /* room there */
    int found;       /* it was seen */
};

static int top_line(void *ctx, const struct ini_line *l, char *err, size_t errlen)
{
    struct top_ctx *tc = ctx;
    (void)err;
    (void)errlen;
    if (l->key != NULL && l->section[0] == '\0' && strcmp(l->key, tc->key) == 0)
        tc->found = copy_str(tc->out, tc->outlen, l->value) == 0;
    return 0;
}

int cfg_top_value(const char *path, const char *key, char *out, size_t outlen, char *err,
                  size_t errlen)
{
    struct top_ctx tc = {key, out, outlen, 0};
    if (ini_read(path, top_line, &tc, err, errlen) != 0)
        return -1;
    return tc.found;
}

int cfg_list_accounts(const char *path, char *out, size_t outlen)
{
    struct scan_ctx *sc = malloc(sizeof *sc);
    char err[256];
    int n = -1;
    if (sc != NULL && scan_accounts(path, sc, err, sizeof err) == 0) {
        snprintf(out, outlen, "%s", sc->accounts);
        n = sc->naccounts;
    }
    free(sc);
    return n;
}

/* A value quoted in an error: control characters as \\xNN, the secret never shown whole
 * (the message names the key; the value helps spot the stray character). */
static const char *printable(const char *v, char *out, size_t cap)
{
    size_t j = 0;
    for (; *v != '\0' && j + 5 < cap; v++) {
        unsigned char c = (unsigned char)*v;
        if (c < 0x20 || c == 0x7f)
            j += (size_t)snprintf(out + j, cap - j, "\\x%02X", c);
        else
            out[j++] = (char)c;
    }
    if (*v != '\0' && j + 4 <= cap)
        memcpy(out + j, "...", 3), j += 3;
    out[j] = '\0';
    return out;
}

static int load_line(void *ctx, const struct ini_line *l, char *err, size_t errlen)
{
    struct load_ctx *lc = ctx;
    char why[200];
    if (webhook_line(l)) {
        if (l->key != NULL && (strstr(l->key, "secret") != NULL && !strstr(l->key, "_file")))
            lc->has_secret = 1; /* secret, secret_command, webhook_secret... */
        return 0;
    }
    if (l->key == NULL) {
        lc->found |= strcmp(l->section + 8, lc->wanted) == 0;
        return 0;
    }
    if (l->section[0] == '\0' &&
        (strcmp(l->key, "default_account") == 0 || strcmp(l->key, "smtp_listen") == 0 ||
         strcmp(l->key, "spool") == 0))
        return 0; /* not account settings: smtp_listen is pigeon serve's (cfg_top_value),
                   * spool is read by queue_spool_path() (cli/spoolpath.c) */
    int k = cfg_key_lookup(l->key);
    if (k < 0) {
        snprintf(err, errlen, "%s:%d: unknown key \"%s\"", lc->path, l->lineno, l->key);
        return -1;
    }
    /* Every account's values are checked, not only the chosen one's: a mistake is reported
     * when the file is written, not the day that account is first used. */
    if (cfg_check((enum cfg_key)k, l->value, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s:%d: invalid %s \"%s\": %s", lc->path, l->lineno, l->key,
                 printable(l->value, lc->shown, sizeof lc->shown), why);
        return -1;
    }
    if (k == K_PASSWORD || k == K_PASSWORD_COMMAND || k == K_OAUTH_TOKEN_COMMAND)
        lc->has_secret = 1;
    int in_account = l->section[0] != '\0';
    if (in_account && strcmp(l->section + 8, lc->wanted) != 0)
        return 0;
    if (in_account)
        lc->found = 1;
    char origin[128];
    snprintf(origin, sizeof origin, "%s:%d", lc->path, l->lineno);
    /* Keys outside a section precede every account in the file, so an account's own
     * value, read later with the same precedence, replaces the file's default. */
    if (cfg_set(lc->s, (enum cfg_key)k, l->value, CFG_FILE, origin) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Any configuration file: owned by the user or root, not writable by group or others
 * (ssh_config(5)'s rule). With a secret in it: owned by the user and private (msmtp's). */
static int check_permissions(const char *path, int has_secret, char *err, size_t errlen)
{
    struct stat st;
    unsigned me = (unsigned)geteuid();
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        return -1;
    }
    /* PIGEON_CONFIG=/dev/null means "no configuration" (as ssh -F /dev/null does): it holds
     * nothing anyone could change, whatever its mode. */
    struct stat null_st;
    if (S_ISCHR(st.st_mode) && stat("/dev/null", &null_st) == 0 && S_ISCHR(null_st.st_mode) &&
        st.st_rdev == null_st.st_rdev)
        return 0;
    if (st.st_uid != me && st.st_uid != 0) {
        snprintf(err, errlen,
                 "%s is owned by uid %u, not by you (uid %u) or root: whoever owns it could "
                 "send your mail and password elsewhere; refusing it. Fix: chown %u %s (or "
                 "copy it to a file of your own)",
                 path, (unsigned)st.st_uid, me, me, path);
        return -1;
    }
    if ((st.st_mode & 022) != 0) {
        snprintf(err, errlen,
                 "%s can be written by group or others (mode %03o): they could send your "
                 "mail and password elsewhere; refusing it. Fix: chmod go-w %s",
                 path, (unsigned)(st.st_mode & 0777), path);
        return -1;
    }
    if (has_secret && st.st_uid != me) {
        snprintf(err, errlen,
                 "%s holds a secret but is owned by uid %u, not by you (uid %u); refusing to "
                 "use it: copy it to a file of your own and run chmod 600 on it",
                 path, (unsigned)st.st_uid, me);
        return -1;
    }
    if (has_secret && (st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "%s holds a secret but group or others can access it (mode %03o); fix it "
                 "with: chmod 600 %s",
                 path, (unsigned)(st.st_mode & 0777), path);
        return -1;
    }
    return 0;
}

int cfg_load(cfg_settings *s, const char *path, const char *account, char *err, size_t errlen)
{
    struct scan_ctx *sc = malloc(sizeof *sc);
    struct load_ctx lc = {.s = s, .path = path};
    int rc = -1;
    if (sc == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* Who may write the file is checked before anything in it is believed. */
    if (check_permissions(path, 0, err, errlen) != 0 || scan_accounts(path, sc, err, errlen) != 0)
        goto done;
    if (account != NULL && *account != '\0') {
        if (copy_str(lc.wanted, sizeof lc.wanted, account) != 0) {
            snprintf(err, errlen, "account name too long: %.40s...", account);
            goto done;
        }
    } else if (sc->default_account[0] != '\0')
        copy_str(lc.wanted, sizeof lc.wanted, sc->default_account);
    else if (sc->has_default_named)
        copy_str(lc.wanted, sizeof lc.wanted, "default");
    else if (sc->naccounts == 1)
        copy_str(lc.wanted, sizeof lc.wanted, sc->names[0]);
    else if (sc->naccounts > 1)
        copy_str(s->unchosen, sizeof s->unchosen, sc->accounts);
    if (ini_read(path, load_line, &lc, err, errlen) != 0)
        goto done;
    if (lc.wanted[0] != '\0' && !lc.found) {
        snprintf(err, errlen, "%s: no account \"%s\" (accounts: %s)", path, lc.wanted,
                 sc->naccounts ? sc->accounts : "none");
        goto done;
    }
    if (lc.has_secret && check_permissions(path, 1, err, errlen) != 0)
        goto done;
    copy_str(s->account, sizeof s->account, lc.wanted);
    copy_str(s->config_path, sizeof s->config_path, path);
    rc = 0;
done:
    free(sc);
    return rc;
}

/* Adapts ini_read's lines to cfg_read_file's callback. */
struct read_ctx {
    cfg_line_fn fn; /* the caller's callback */
    void *ctx;      /* its context */
};

static int read_line_cb(void *ctx, const struct ini_line *l, char *err, size_t errlen)
{
    struct read_ctx *rc = ctx;
    return rc->fn(rc->ctx, l->section, l->key, l->value, l->lineno, err, errlen);
}

int cfg_read_file(const char *path, cfg_line_fn fn, void *ctx, char *err, size_t errlen)
{
    struct read_ctx rc = {fn, ctx};
    return ini_read(path, read_line_cb, &rc, err, errlen);
}
