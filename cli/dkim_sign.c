/*
 * dkim_sign.c - DKIM signing in the command (see dkim.h): the settings, the signature of a
 * stream, and the three places that sign: `pigeon send` (the composed message is written
 * once to an unlinked temporary file while it is hashed, then sent from the file behind its
 * signatures), `pigeon sendmail` (its stored header and body file are read twice) and the
 * daemon (the spooled message is read twice, at delivery, so a rotated key applies to
 * what is still queued).
 *
 * Why OpenSSL directly and not libopendkim: OpenSSL 3 is already linked for TLS and does
 * both algorithms (libopendkim's Ed25519 needs a build against OpenSSL 1.1.1+ and its
 * Debian package is built with it, but it brings its own header parser, DNS resolver
 * hooks, a global library handle and a second copy of canonicalization we would still have
 * to stream into); signing is ~400 lines here, RFC examples reproduced byte for byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "dkim.h"

/* Largest key file read (a 4096-bit RSA PEM is about 3.3 KB). */
#define KEY_FILE_MAX ((size_t)64 * 1024)
/* Bytes read at a time while hashing (on the stack: the daemon signs every message). */
#define CHUNK ((size_t)16 * 1024)

struct cli_dkim {
    pigeon_dkim_key *keys[2]; /* one or two keys, owned */
    char *selectors[2];       /* their selectors, owned */
    char *domain;             /* dkim_domain, or NULL for the From domain */
    pigeon_dkim_canon hcanon; /* header canonicalization */
    pigeon_dkim_canon bcanon; /* body canonicalization */
    int64_t expire;           /* dkim_expire seconds, 0 for none */
};

void cli_dkim_free(cli_dkim *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        pigeon_dkim_key_free(d->keys[i]);
        free(d->selectors[i]);
    }
    free(d->domain);
    free(d);
}

/* Splits "a, b" into at most two trimmed, malloc'd items; returns their number or -1. */
static int split2(const char *v, char *out[2])
{
    int n = 0;
    out[0] = out[1] = NULL;
    while (*v != '\0') {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *end = v;
        while (*end != '\0' && *end != ',')
            end++;
        const char *e = end;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > v) {
            if (n == 2 || (out[n] = strndup(v, (size_t)(e - v))) == NULL)
                return -1;
            n++;
        }
        v = end;
    }
    return n;
}

/*
 * Parsed keys, by file: the daemon loads the settings for every message it signs (so that
 * a rotated key applies at once), and reading and parsing a PEM costs more than the
 * signature itself. An entry is used only while the file is the same one, unchanged: same
 * path, device, inode, size, modification and change times (a key written in place, one
 * renamed over it, or a chmod each miss). Each caller gets its own handle on the key.
 */
#define KEY_CACHE_SLOTS 4

typedef struct key_slot {
    char *path;           /* as configured, malloc'd; NULL for a free slot */
    dev_t dev;            /* the file's identity and state when parsed */
    ino_t ino;            /* ... */
    off_t size;           /* ... */
    struct timespec mtim; /* ... */
    struct timespec ctim; /* ... */
    pigeon_dkim_key *key; /* the cache's handle */
} key_slot;

static key_slot key_cache[KEY_CACHE_SLOTS];
static unsigned key_cache_next; /* the slot replaced next (round robin) */
static pthread_mutex_t key_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int same_file(const key_slot *k, const char *path, const struct stat *st)
{
    return k->path != NULL && strcmp(k->path, path) == 0 && k->dev == st->st_dev &&
           k->ino == st->st_ino && k->size == st->st_size && k->mtim.tv_sec == st->st_mtim.tv_sec &&
           k->mtim.tv_nsec == st->st_mtim.tv_nsec && k->ctim.tv_sec == st->st_ctim.tv_sec &&
           k->ctim.tv_nsec == st->st_ctim.tv_nsec;
}

/* A handle on the cached key of path as st describes it, or NULL. */
static pigeon_dkim_key *cache_get(const char *path, const struct stat *st)
{
    pigeon_dkim_key *key = NULL;
    pthread_mutex_lock(&key_cache_lock);
    for (int i = 0; i < KEY_CACHE_SLOTS && key == NULL; i++)
        if (same_file(&key_cache[i], path, st) &&
            pigeon_dkim_key_dup(key_cache[i].key, &key) != PIGEON_OK)
            key = NULL;
    pthread_mutex_unlock(&key_cache_lock);
    return key;
}

/* Remembers key (parsed from path, st) in place of an older entry for path, or the next
 * slot. Best effort: out of memory only means no caching. */
static void cache_put(const char *path, const struct stat *st, const pigeon_dkim_key *key)
{
    /* A file written in the last two seconds may be written again within the same
     * timestamp tick (file times are coarse), unseen: it is cached once it has settled. */
    if ((int64_t)st->st_mtim.tv_sec >= (int64_t)time(NULL) - 2)
        return;
    pigeon_dkim_key *mine = NULL;
    char *p = strdup(path);
    if (p == NULL || pigeon_dkim_key_dup(key, &mine) != PIGEON_OK) {
        free(p);
        return;
    }
    pthread_mutex_lock(&key_cache_lock);
    int slot = -1;
    for (int i = 0; i < KEY_CACHE_SLOTS && slot < 0; i++)
        if (key_cache[i].path != NULL && strcmp(key_cache[i].path, path) == 0)
            slot = i;
    if (slot < 0)
        slot = (int)(key_cache_next++ % KEY_CACHE_SLOTS);
    key_slot *k = &key_cache[slot];
    free(k->path);
    pigeon_dkim_key_free(k->key);
    k->path = p;
    k->dev = st->st_dev;
    k->ino = st->st_ino;
    k->size = st->st_size;
    k->mtim = st->st_mtim;
    k->ctim = st->st_ctim;
    k->key = mine;
    pthread_mutex_unlock(&key_cache_lock);
}

/* Reads and parses one key file, refusing one that group or others can read. */
static int load_key(const char *path, pigeon_dkim_key **out, char *err, size_t errlen)
{
    struct stat st;
    char why[256];
    char *data = NULL;
    size_t len = 0;
    /* The daemon comes here for every message: a cached key costs one stat(), as private
     * as when it was parsed (a chmod changes ctime, so it misses and is checked below). */
    if (stat(path, &st) == 0 && (st.st_mode & 077) == 0 && (*out = cache_get(path, &st)) != NULL)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot open the DKIM key %s: %s (make one with pigeon dkim keygen)",
                 path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return EX_CONFIG;
    }
    close(fd);
    if ((st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "the DKIM key %s can be read by group or others (mode %03o): a private key "
                 "must be private; fix it with: chmod 600 %s",
                 path, (unsigned)(st.st_mode & 0777), path);
        return EX_CONFIG;
    }
    if ((*out = cache_get(path, &st)) != NULL)
        return 0;
    pigeon_err e = cli_read_input(path, KEY_FILE_MAX, &data, &len);
    if (e != PIGEON_OK) {
        snprintf(err, errlen, "cannot read the DKIM key %s: %s", path, pigeon_strerror(e));
        return EX_CONFIG;
    }
    e = pigeon_dkim_key_parse(data, len, out, why, sizeof why);
    OPENSSL_cleanse(data, len);
    free(data);
    if (e != PIGEON_OK) {
        snprintf(err, errlen, "the DKIM key %s is not usable: %s", path, why);
        return e == PIGEON_ERR_NOMEM ? EX_OSERR : EX_CONFIG;
    }
    cache_put(path, &st, *out);
    return 0;
}

/* dkim_canonicalization: "relaxed", "simple", or "HEADER/BODY". */
static int parse_canon(const char *v, pigeon_dkim_canon *h, pigeon_dkim_canon *b)
{
    const char *slash = strchr(v, '/');
    const char *bv = slash != NULL ? slash + 1 : v;
    size_t hl = slash != NULL ? (size_t)(slash - v) : strlen(v);
    if (hl == 7 && strncasecmp(v, "relaxed", 7) == 0)
        *h = PIGEON_DKIM_RELAXED;
    else if (hl == 6 && strncasecmp(v, "simple", 6) == 0)
        *h = PIGEON_DKIM_SIMPLE;
    else
        return -1;
    if (strcasecmp(bv, "relaxed") == 0)
        *b = PIGEON_DKIM_RELAXED;
    else if (strcasecmp(bv, "simple") == 0)
        *b = PIGEON_DKIM_SIMPLE;
    else
        return -1;
    return 0;
}

/* Keeps the keys dkim_algorithm asks for (default: every key given). */
static int pick_algorithm(cli_dkim *d, const char *alg, char *err, size_t errlen)
{
    if (alg == NULL || strcasecmp(alg, "both") == 0) {
        int both = alg != NULL;
        if (both && (d->keys[1] == NULL ||
                     pigeon_dkim_key_alg(d->keys[0]) == pigeon_dkim_key_alg(d->keys[1]))) {
            snprintf(err, errlen,
                     "dkim_algorithm = both needs an RSA and an Ed25519 key: dkim_key = "
                     "rsa.pem, ed25519.pem and dkim_selector = SEL1, SEL2");
            return EX_CONFIG;
        }
        return 0;
    }
    pigeon_dkim_alg want;
    if (strcasecmp(alg, "rsa-sha256") == 0 || strcasecmp(alg, "rsa") == 0)
        want = PIGEON_DKIM_RSA_SHA256;
    else if (strcasecmp(alg, "ed25519-sha256") == 0 || strcasecmp(alg, "ed25519") == 0)
        want = PIGEON_DKIM_ED25519_SHA256;
    else {
        snprintf(err, errlen, "dkim_algorithm must be rsa-sha256, ed25519-sha256 or both");
        return EX_CONFIG;
    }
    for (int i = 0; i < 2; i++) {
        if (d->keys[i] != NULL && pigeon_dkim_key_alg(d->keys[i]) == want) {
            if (i == 1) { /* the one kept goes first */
                pigeon_dkim_key *k = d->keys[0];
                char *s = d->selectors[0];
                d->keys[0] = d->keys[1], d->selectors[0] = d->selectors[1];
                d->keys[1] = k, d->selectors[1] = s;
            }
            pigeon_dkim_key_free(d->keys[1]);
            free(d->selectors[1]);
            d->keys[1] = NULL, d->selectors[1] = NULL;
            return 0;
        }
    }
    snprintf(err, errlen, "dkim_algorithm = %s but no dkim_key is of that type", alg);
    return EX_CONFIG;
}

static int load_settings(const cfg_settings *cfg, cli_dkim *d, int warn, char *err, size_t errlen)
{
    char *paths[2] = {NULL, NULL};
    int status = EX_CONFIG;
    int nk = split2(cfg_get(cfg, K_DKIM_KEY), paths);
    int ns =
        split2(cfg_get(cfg, K_DKIM_SELECTOR) ? cfg_get(cfg, K_DKIM_SELECTOR) : "", d->selectors);
    const char *v;
    if (nk < 1) {
        snprintf(err, errlen, "dkim_key must name one or two key files (comma-separated)");
        goto done;
    }
    if (ns != nk) {
        snprintf(err, errlen,
                 "%s: set dkim_selector (or --dkim-selector) to %s selector%s, "
                 "in the order of dkim_key",
                 ns < 1 ? "DKIM needs a selector" : "one selector per DKIM key",
                 nk == 1 ? "one" : "two", nk == 1 ? "" : "s");
        goto done;
    }
    for (int i = 0; i < nk; i++)
        if ((status = load_key(paths[i], &d->keys[i], err, errlen)) != 0)
            goto done;
    status = EX_CONFIG;
    if (pick_algorithm(d, cfg_get(cfg, K_DKIM_ALGORITHM), err, errlen) != 0)
        goto done;
    if ((v = cfg_get(cfg, K_DKIM_CANONICALIZATION)) != NULL &&
        parse_canon(v, &d->hcanon, &d->bcanon) != 0) {
        snprintf(err, errlen,
                 "dkim_canonicalization must be relaxed, simple, or HEADER/BODY "
                 "(relaxed/relaxed, simple/simple, relaxed/simple, simple/relaxed)");
        goto done;
    }
    if ((v = cfg_get(cfg, K_DKIM_EXPIRE)) != NULL) {
        char *end = NULL;
        long long x = strtoll(v, &end, 10);
        if (end == v || *end != '\0' || x <= 0 || x > 366LL * 86400) {
            snprintf(err, errlen, "dkim_expire must be a number of seconds (1 to 31622400)");
            goto done;
        }
        d->expire = x;
    }
    if ((v = cfg_get(cfg, K_DKIM_DOMAIN)) != NULL && (d->domain = strdup(v)) == NULL) {
        status = EX_OSERR;
        goto done;
    }
    for (int i = 0; warn && i < 2; i++)
        if (d->keys[i] != NULL && pigeon_dkim_key_alg(d->keys[i]) == PIGEON_DKIM_RSA_SHA256 &&
            pigeon_dkim_key_bits(d->keys[i]) < 2048)
            fprintf(stderr,
                    "pigeon: warning: the DKIM key %s has %u bits; receivers expect at least "
                    "2048 (pigeon dkim keygen --type rsa --bits 2048)\n",
                    paths[i], pigeon_dkim_key_bits(d->keys[i]));
    status = 0;
done:
    free(paths[0]);
    free(paths[1]);
    return status;
}

int cli_dkim_load(const cfg_settings *cfg, int warn, cli_dkim **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg_get(cfg, K_DKIM_KEY) == NULL) {
        if (cfg_get(cfg, K_DKIM_SELECTOR) != NULL || cfg_get(cfg, K_DKIM_DOMAIN) != NULL) {
            snprintf(err, errlen,
                     "dkim_selector or dkim_domain is set but no dkim_key: set "
                     "dkim_key (or --dkim-key) to the private key file");
            return EX_CONFIG;
        }
        return 0;
    }
    cli_dkim *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return EX_OSERR;
    }
    int status = load_settings(cfg, d, warn, err, errlen);
    if (status != 0) {
        cli_dkim_free(d);
        return status;
    }
    *out = d;
    return 0;
}

int cli_dkim_sign(cli_dkim *d, const char *from_domain, pigeon_read_fn read, void *ctx,
                  char **fields, size_t *len, char *err, size_t errlen)
{
    pigeon_dkim_opts o;
    pigeon_dkim_signer *s = NULL;
    char why[256];
    int status = 0;
    memset(&o, 0, sizeof o);
    o.domain = d->domain != NULL ? d->domain : from_domain;
    o.selector = d->selectors[0];
    o.key = d->keys[0];
    o.selector2 = d->selectors[1];
    o.key2 = d->keys[1];
    o.header_canon = d->hcanon;
    o.body_canon = d->bcanon;
    o.expire_seconds = d->expire;
    o.check_from = 1;
    *fields = NULL; /* o.domain NULL: d= is the From field's domain */
    pigeon_err e = pigeon_dkim_signer_new(&o, &s, why, sizeof why);
    if (e != PIGEON_OK) {
        snprintf(err, errlen, "%s", e == PIGEON_ERR_NOMEM ? "out of memory" : why);
        return e == PIGEON_ERR_NOMEM ? EX_OSERR : EX_CONFIG;
    }
    char buf[CHUNK];
    size_t n = 0;
    do {
        if (read(ctx, buf, CHUNK, &n) != 0) {
            snprintf(err, errlen, "cannot read the message to sign it");
            status = EX_IOERR;
            goto done;
        }
        if ((e = pigeon_dkim_signer_update(s, buf, n)) != PIGEON_OK)
            break;
    } while (n > 0);
    if (e == PIGEON_OK)
        e = pigeon_dkim_signer_final(s, (int64_t)time(NULL), fields, len);
    if (e != PIGEON_OK) {
        snprintf(err, errlen, "cannot DKIM-sign the message: %s", pigeon_dkim_signer_error(s));
        /* A From outside d= is the configuration's fault (the fix is in the message). */
        status = e == PIGEON_ERR_HEADER && strstr(pigeon_dkim_signer_error(s), "align") != NULL
                     ? EX_CONFIG
                     : cli_exit_status(e);
    }
done:
    pigeon_dkim_signer_free(s);
    return status;
}

int cli_dkim_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    cli_dkim_reader *r = ctx;
    if (r->pos < r->len) {
        size_t left = r->len - r->pos;
        *n = left < cap ? left : cap;
        memcpy(buf, r->prefix + r->pos, *n);
        r->pos += *n;
        return 0;
    }
    return r->read(r->ctx, buf, cap, n);
}
