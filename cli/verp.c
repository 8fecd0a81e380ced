/*
 * verp.c - the VERP envelope sender of each recipient, with the account's key.
 *
 * RFC 5321 3.3 allows one reverse-path per transaction: the library sends each recipient
 * in its own transaction when rcpt_sender is set (lib/smtp). The token names the
 * recipient inline (alice=example.com-<tag>) and is authenticated by an HMAC tag
 * (pigeon/bounce.h), so that a forged bounce cannot name an address to suppress. A
 * recipient that cannot be named inline (a non-ASCII local part, or one too long for RFC
 * 5321 4.5.3.1.1's 64 octets) keeps the plain sender: its bounce is then matched by
 * Message-ID, as without VERP.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "verp.h"
#include "pigeon/bounce.h"

/* One key file's key, loaded once per process. */
typedef struct verp_key {
    char *path;            /* the file it came from */
    char *key;             /* its bytes */
    size_t len;            /* their number */
    struct verp_key *next; /* the next key loaded */
} verp_key;

static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;
static verp_key *keys;

static void keys_wipe(void)
{
    pthread_mutex_lock(&keys_lock);
    while (keys != NULL) {
        verp_key *k = keys;
        keys = k->next;
        OPENSSL_cleanse(k->key, k->len);
        free(k->key);
        free(k->path);
        free(k);
    }
    pthread_mutex_unlock(&keys_lock);
}

/* The key of path, loaded on first use; NULL with the reason printed. */
static const verp_key *key_for(const char *path)
{
    static int registered;
    const verp_key *found = NULL;
    pthread_mutex_lock(&keys_lock);
    for (verp_key *k = keys; k != NULL && found == NULL; k = k->next)
        if (strcmp(k->path, path) == 0)
            found = k;
    if (found == NULL) {
        verp_key *k = calloc(1, sizeof *k);
        if (k != NULL && (k->path = strdup(path)) != NULL &&
            cli_secret_key_read("verp", "VERP key", path, 16, &k->key, &k->len) == 0) {
            k->next = keys;
            keys = k;
            found = k;
            if (!registered)
                registered = atexit(keys_wipe) == 0;
        } else if (k != NULL) {
            free(k->path);
            free(k);
        }
    }
    pthread_mutex_unlock(&keys_lock);
    return found;
}

/* pigeon_smtp_sender_fn: user+<token>@domain, or the plain sender when no token fits. */
static int verp_sender(void *ctx, const char *from, const char *rcpt, char **out)
{
    const verp_key *k = ctx;
    pigeon_err err = pigeon_bounce_verp_encode(from, rcpt, NULL, k->key, k->len, out);
    if (err == PIGEON_ERR_TOO_LARGE || err == PIGEON_ERR_INVALID) {
        /* No inline token for this pair: the plain sender, matched by Message-ID. */
        *out = strdup(from);
        err = *out != NULL ? PIGEON_OK : PIGEON_ERR_NOMEM;
    }
    return err;
}

int cli_verp_option(cfg_settings *cfg, int is_key_file, const char *arg)
{
    char why[128];
    enum cfg_key k = is_key_file ? K_VERP_KEY_FILE : K_VERP;
    const char *v = is_key_file ? arg : "yes";
    if (cfg_check(k, v, why, sizeof why) != 0) {
        cli_error("%s: %s", is_key_file ? "--verp-key-file" : "--verp", why);
        return -1;
    }
    if (cfg_set(cfg, k, v, CFG_CLI, is_key_file ? "--verp-key-file" : "--verp") != 0) {
        cli_error("out of memory");
        return -1;
    }
    return 0;
}

/* Whether the settings ask for VERP. */
static int verp_on(const cfg_settings *cfg)
{
    int on = 0;
    return cfg_get(cfg, K_VERP) != NULL && cfg_bool(cfg_get(cfg, K_VERP), &on) == 0 && on;
}

int cli_verp_plan(const cfg_settings *cfg, pigeon_smtp_opts *so)
{
    if (!verp_on(cfg))
        return 0;
    const char *path = cfg_get(cfg, K_VERP_KEY_FILE);
    if (path == NULL) {
        cli_error("verp = yes (from %s) needs the HMAC key: verp_key_file = PATH in the "
                  "account, or --verp-key-file PATH (at least 16 random octets, the same "
                  "file as bounces fetch --verp-key-file)",
                  cfg->v[K_VERP].origin);
        return EX_CONFIG;
    }
    const verp_key *k = key_for(path);
    if (k == NULL)
        return EX_CONFIG;
    so->rcpt_sender = verp_sender;
    so->rcpt_sender_ctx = (void *)k;
    return 0;
}

int cli_verp_account_key(const cfg_settings *cfg, const char *who, char **key, size_t *len)
{
    *key = NULL;
    *len = 0;
    const char *path = cfg_get(cfg, K_VERP_KEY_FILE);
    if (path == NULL)
        return 0;
    return cli_secret_key_read(who, "VERP key", path, 16, key, len) == 0 ? 0 : EX_CONFIG;
}
