/*
 * dkim_sign.c - the DKIM signer (RFC 6376 5): the message streams in, the header block is
 * kept, the body goes through the canonicalizer (canon.c) into SHA-256 as it arrives; at
 * the end each key makes one DKIM-Signature (RFC 8463 recommends an RSA and an Ed25519
 * signature side by side during the transition).
 *
 * Per signature (RFC 6376 3.7): hash the selected header fields (h=, each name taking the
 * next instance from the bottom, 5.4.2), then the DKIM-Signature field itself with an
 * empty b= and no final CRLF; RSA signs that data with RSASSA-PKCS1-v1_5/SHA-256, Ed25519
 * signs its SHA-256 hash (RFC 8463 3: PureEdDSA over the 32-byte digest).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "codec/encode.h"
#include "dkim/canon.h"
#include "dkim/dkim_ed25519.h"
#include "dkim/dkim_key.h"
#include "dkim/dkim_sign.h"
#include "pigeon/address.h"

/* The header block kept for signing (RFC 5322 sets no bound; ours is generous). */
#define HEADER_MAX ((size_t)1024 * 1024)
/* Header fields considered (a block of more is refused). */
#define FIELDS_MAX 1000
/* Entries of h= (the default list and its oversigned names fit easily). */
#define H_MAX 64
/* Width the DKIM-Signature field is folded to (RFC 5322 2.1.1 recommends 78). */
#define FOLD_AT 76

static const char *const default_headers[] = {
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "reply-to",
    "in-reply-to",
    "references",
    "list-unsubscribe",
    "list-unsubscribe-post",
    NULL,
};

/* Where the message is. */
typedef enum sign_state {
    IN_HEADER, /* reading header fields */
    IN_BODY,   /* past the empty line */
} sign_state;

struct pigeon_dkim_signer {
    char *domain;                   /* d=, lower case */
    char *selectors[2];             /* s= of each key */
    const pigeon_dkim_key *keys[2]; /* borrowed; NULL entries unused */
    pigeon_dkim_canon hcanon;       /* header canonicalization */
    pigeon_dkim_canon bcanon;       /* body canonicalization */
    int64_t expire;                 /* x= offset, 0 for none */
    const char *const *headers;     /* names to sign */
    const char *const *oversign;    /* names to oversign, or NULL for the default rule */
    int check_from;                 /* From must be within d= */
    int domain_from_header;         /* d= is each message's From domain */
    EVP_MD *sha256;                 /* fetched once */
    EVP_MD_CTX *body_md;            /* the body hash in progress */
    EVP_MD_CTX *header_md;          /* the header hash of one signature */
    EVP_PKEY_CTX *rsa_ctx[2];       /* RSA keys: ready to sign a SHA-256 digest */
    EVP_MD_CTX *ed_ctx[2];          /* Ed25519 keys: ready for one-shot signatures */
    pg_dkim_body body;              /* the body canonicalizer */
    sign_state state;               /* where the input is */
    pg_buf header;                  /* the header block, CRLF line endings */
    size_t line_start;              /* start of the current header line in header */
    int saw_cr;                     /* header: the last byte was a CR */
    pigeon_err err;                 /* sticky error of update */
    char error[512];                /* the reason of the last failure */
};

static int key_sign(EVP_MD *sha256, const pigeon_dkim_key *key, const unsigned char *data,
                    size_t len, unsigned char *sig, size_t *siglen);

static void body_sink(void *ctx, const void *buf, size_t len)
{
    pigeon_dkim_signer *s = ctx;
    EVP_DigestUpdate(s->body_md, buf, len);
}

static int valid_label_text(const char *v, int dots)
{
    if (v == NULL || v[0] == '\0' || strlen(v) > 253)
        return 0;
    for (const char *p = v; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || (dots && c == '.');
        if (!ok)
            return 0;
    }
    return 1;
}

static char *lower_dup(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
    return d;
}

static pigeon_err start(pigeon_dkim_signer *s)
{
    pg_buf_reset(&s->header);
    s->header.max = HEADER_MAX;
    s->header.err = PIGEON_OK;
    s->line_start = 0;
    s->saw_cr = 0;
    s->state = IN_HEADER;
    s->err = PIGEON_OK;
    pg_dkim_body_init(&s->body, s->bcanon, body_sink, s);
    if (EVP_DigestInit_ex(s->body_md, s->sha256, NULL) != 1)
        return s->err = PIGEON_ERR_NOMEM;
    return PIGEON_OK;
}

/*
 * The signing contexts are made once per signer, not per message: OpenSSL 3 looks the
 * algorithm up in its providers at every init, which costs as much as a whole Ed25519
 * signature. RSA signs the SHA-256 digest we compute (EVP_PKEY_sign, PKCS#1 v1.5 with the
 * DigestInfo of SHA-256, as EVP_DigestSign would); Ed25519 is one-shot, so its context
 * signs again and again.
 */
static int prepare_keys(pigeon_dkim_signer *s)
{
    for (int k = 0; k < 2; k++) {
        const pigeon_dkim_key *key = s->keys[k];
        if (key == NULL)
            continue;
        if (key->alg == PIGEON_DKIM_RSA_SHA256) {
            s->rsa_ctx[k] = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
            if (s->rsa_ctx[k] == NULL || EVP_PKEY_sign_init(s->rsa_ctx[k]) != 1 ||
                EVP_PKEY_CTX_set_signature_md(s->rsa_ctx[k], s->sha256) != 1)
                return -1;
        } else if (!key->ed_ready) { /* libsodium signs a prepared key (dkim_ed25519.c) */
            s->ed_ctx[k] = EVP_MD_CTX_new();
            if (s->ed_ctx[k] == NULL ||
                EVP_DigestSignInit_ex(s->ed_ctx[k], NULL, NULL, NULL, NULL, key->pkey, NULL) != 1)
                return -1;
        }
    }
    return 0;
}

/* Line breaks in the header block, plus one: a bound on its number of fields. */
static size_t count_lines(const pg_buf *b)
{
    size_t n = 1;
    for (size_t i = 0; i < b->len; i++)
        n += b->data[i] == '\n';
    return n;
}

pigeon_err pigeon_dkim_signer_new(const pigeon_dkim_opts *o, pigeon_dkim_signer **out, char *why,
                                  size_t whylen)
{
    pigeon_dkim_signer *s = NULL;
    if (out == NULL || o == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    const char *reason = NULL;
    if (o->domain != NULL && !valid_label_text(o->domain, 1))
        reason = "the DKIM domain (d=) is missing or not a domain name (use its xn-- form)";
    else if (!valid_label_text(o->selector, 1) ||
             (o->selector2 != NULL && !valid_label_text(o->selector2, 1)))
        reason = "the DKIM selector (s=) is missing or has characters other than letters, "
                 "digits, '-', '_' and '.'";
    else if (o->key == NULL)
        reason = "no DKIM key";
    if (reason != NULL) {
        if (why != NULL && whylen > 0)
            snprintf(why, whylen, "%s", reason);
        return PIGEON_ERR_INVALID;
    }
    if ((s = calloc(1, sizeof *s)) == NULL)
        return PIGEON_ERR_NOMEM;
    pg_buf_init(&s->header);
    s->domain_from_header = o->domain == NULL;
    s->domain = lower_dup(o->domain != NULL ? o->domain : "");
    s->selectors[0] = strdup(o->selector);
    s->selectors[1] = strdup(o->selector2 != NULL ? o->selector2 : o->selector);
    s->keys[0] = o->key;
    s->keys[1] = o->key2;
    s->hcanon = o->header_canon;
    s->bcanon = o->body_canon;
    s->expire = o->expire_seconds > 0 ? o->expire_seconds : 0;
    s->headers = o->headers != NULL ? o->headers : default_headers;
    s->oversign = o->oversign;
    s->check_from = o->check_from;
    s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    s->body_md = EVP_MD_CTX_new();
    s->header_md = EVP_MD_CTX_new();
    if (s->header_md == NULL || s->sha256 == NULL || prepare_keys(s) != 0 || s->domain == NULL ||
        s->selectors[0] == NULL || s->selectors[1] == NULL || s->sha256 == NULL ||
        s->body_md == NULL || start(s) != PIGEON_OK) {
        pigeon_dkim_signer_free(s);
        return PIGEON_ERR_NOMEM;
    }
    *out = s;
    return PIGEON_OK;
}

void pigeon_dkim_signer_free(pigeon_dkim_signer *s)
{
    if (s == NULL)
        return;
    free(s->domain);
    free(s->selectors[0]);
    free(s->selectors[1]);
    EVP_MD_free(s->sha256);
    EVP_MD_CTX_free(s->body_md);
    EVP_MD_CTX_free(s->header_md);
    for (int k = 0; k < 2; k++) {
        EVP_PKEY_CTX_free(s->rsa_ctx[k]);
        EVP_MD_CTX_free(s->ed_ctx[k]);
    }
    pg_buf_cleanup(&s->header);
    free(s);
}

void pigeon_dkim_signer_reset(pigeon_dkim_signer *s)
{
    if (s != NULL) {
        s->error[0] = '\0';
        start(s);
    }
}

const char *pigeon_dkim_signer_error(const pigeon_dkim_signer *s)
{
    return s != NULL ? s->error : "";
}

/* Header bytes: kept with CRLF line endings; an empty line ends the block. Returns the
 * bytes consumed (the rest is body). */
static size_t header_feed(pigeon_dkim_signer *s, const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len && s->state == IN_HEADER) {
        if (s->saw_cr && p[i] == '\n') {
            s->saw_cr = 0;
            i++;
            continue;
        }
        s->saw_cr = 0;
        size_t j = i;
        while (j < len && p[j] != '\r' && p[j] != '\n')
            j++;
        if (j > i) { /* a run of field text, kept as it is */
            pg_buf_append(&s->header, p + i, j - i);
            i = j;
            continue;
        }
        s->saw_cr = p[i++] == '\r';
        if (s->header.len == s->line_start) {
            s->state = IN_BODY; /* RFC 5322 2.1: the empty line; its CRLF is not the body's */
            if (s->saw_cr && i < len && p[i] == '\n') {
                i++;
                s->saw_cr = 0;
            }
            break;
        }
        pg_buf_append(&s->header, "\r\n", 2);
        s->line_start = s->header.len;
    }
    return i;
}

pigeon_err pigeon_dkim_signer_update(pigeon_dkim_signer *s, const void *buf, size_t len)
{
    if (s == NULL || (buf == NULL && len > 0))
        return PIGEON_ERR_INVALID;
    if (s->err != PIGEON_OK)
        return s->err;
    const unsigned char *p = buf;
    if (s->state == IN_HEADER) {
        size_t used = header_feed(s, p, len);
        if (s->header.err != PIGEON_OK) {
            snprintf(s->error, sizeof s->error, "the header block is over 1 MiB");
            return s->err = s->header.err;
        }
        p += used;
        len -= used;
    }
    if (len > 0) {
        /* An LF right after the empty line's CR, split across calls, is that line's. */
        if (s->saw_cr && p[0] == '\n') {
            p++;
            len--;
        }
        s->saw_cr = 0;
        pg_dkim_body_feed(&s->body, p, len);
    }
    return PIGEON_OK;
}

/* The last unused field called name (RFC 6376 5.4.2: instances are taken bottom up). */
static pg_dkim_field *pick(pg_dkim_field *f, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = n; i-- > 0;)
        if (!f[i].used && f[i].name_len == nl && strncasecmp(f[i].raw, name, nl) == 0)
            return &f[i];
    return NULL;
}

static size_t count(const pg_dkim_field *f, size_t n, const char *name)
{
    size_t nl = strlen(name), c = 0;
    for (size_t i = 0; i < n; i++)
        c += f[i].name_len == nl && strncasecmp(f[i].raw, name, nl) == 0;
    return c;
}

static int listed(const char *const *list, const char *name)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        if (strcasecmp(list[i], name) == 0)
            return 1;
    return 0;
}

/* Builds h=: each listed name as often as present, then the oversigned names once more
 * (RFC 6376 8.15: a name listed past its instances makes an added copy break the
 * signature). */
static size_t choose(const pigeon_dkim_signer *s, const pg_dkim_field *f, size_t n, const char **h)
{
    size_t k = 0;
    for (size_t i = 0; s->headers[i] != NULL; i++) {
        const char *name = s->headers[i];
        size_t c = count(f, n, name);
        int over = s->oversign != NULL
                       ? listed(s->oversign, name)
                       : (strcmp(name, "from") == 0 || strcmp(name, "subject") == 0 ||
                          (c > 0 && strncmp(name, "list-unsubscribe", 16) == 0));
        for (size_t j = 0; j < c + (size_t)over && k < H_MAX; j++)
            h[k++] = name;
    }
    return k;
}

/* The From field's domain (A-label form), malloc'd, or NULL. */
static char *from_domain(pg_dkim_field *f, size_t n)
{
    if (count(f, n, "from") != 1)
        return NULL;
    pg_dkim_field *from = pick(f, n, "from");
    pg_buf v;
    pg_buf_init(&v);
    pg_dkim_header_canon(&v, PIGEON_DKIM_RELAXED, from->raw, from->raw_len, 0);
    char *domain = NULL;
    pigeon_address_list list = {0};
    char err[128];
    if (v.err == PIGEON_OK &&
        pigeon_address_list_parse(v.data + 5, &list, err, sizeof err) == PIGEON_OK &&
        list.count >= 1)
        domain = strdup(list.items[0].domain_ascii);
    pigeon_address_list_cleanup(&list);
    pg_buf_cleanup(&v);
    return domain;
}

/* Appends text to the field being built, folding before it when the line would pass
 * FOLD_AT (CRLF SP: folding white space, which relaxed canonicalization ignores and
 * simple keeps in both the hashed and the sent copy). */
static void fold_put(pg_buf *b, size_t *col, const char *text, size_t n)
{
    if (n == 0)
        return;
    if (*col + n > FOLD_AT && *col > 1) {
        pg_buf_append(b, "\r\n", 2);
        *col = 0;
        if (text[0] != ' ') { /* the fold itself must be followed by white space */
            pg_buf_putc(b, ' ');
            *col = 1;
        }
    }
    pg_buf_append(b, text, n);
    *col += n;
}

/* Appends the tag a b c as one unit of folding. No snprintf: this runs for every
 * signature. */
static void tag_put(pg_buf *out, size_t *col, const char *a, const char *b, const char *c)
{
    char tag[3 * 256];
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    if (la > 255 || lb > 255 || lc > 255) { /* a long configured header name: folding
                                                 white space may come between (3.2) */
        fold_put(out, col, a, la);
        fold_put(out, col, b, lb);
        fold_put(out, col, c, lc);
        return;
    }
    memcpy(tag, a, la);
    memcpy(tag + la, b, lb);
    memcpy(tag + la + lb, c, lc);
    fold_put(out, col, tag, la + lb + lc);
}

/* v in decimal (t= and x= are never negative: unix times). */
static const char *decimal(int64_t v, char buf[24])
{
    char *p = buf + 23;
    uint64_t u = v > 0 ? (uint64_t)v : 0;
    *p = '\0';
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    return p;
}

/* The DKIM-Signature field up to and including "b=" (RFC 6376 3.5); tags in a fixed order. */
static void sig_template(const pigeon_dkim_signer *s, int k, const char **h, size_t nh,
                         const unsigned char *bh, int64_t t, pg_buf *out)
{
    char num[24], b64[64];
    size_t col = 0;
    pg_buf_puts(out, "DKIM-Signature: v=1;");
    col = out->len;
    tag_put(out, &col, " a=", pigeon_dkim_alg_name(s->keys[k]->alg), ";");
    tag_put(out, &col, " c=", s->hcanon == PIGEON_DKIM_SIMPLE ? "simple/" : "relaxed/",
            s->bcanon == PIGEON_DKIM_SIMPLE ? "simple;" : "relaxed;");
    tag_put(out, &col, " d=", s->domain, ";");
    tag_put(out, &col, " s=", s->selectors[k], ";");
    tag_put(out, &col, " t=", decimal(t, num), ";");
    if (s->expire > 0)
        tag_put(out, &col, " x=", decimal(t + s->expire, num), ";");
    for (size_t i = 0; i < nh; i++)
        tag_put(out, &col, i == 0 ? " h=" : "", h[i], i + 1 < nh ? ":" : ";");
    size_t n = pg_b64_encode_raw(bh, 32, b64);
    b64[n] = '\0';
    tag_put(out, &col, " bh=", b64, ";");
    fold_put(out, &col, " b=", 3);
}

int pg_dkim_sign_raw(const pigeon_dkim_key *key, const void *data, size_t len, unsigned char *sig,
                     size_t *siglen)
{
    EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    int ok = sha256 != NULL && key_sign(sha256, key, data, len, sig, siglen);
    EVP_MD_free(sha256);
    return ok;
}

/* Signs data per the key's algorithm into sig (*siglen in: room, out: used). */
static int key_sign(EVP_MD *sha256, const pigeon_dkim_key *key, const unsigned char *data,
                    size_t len, unsigned char *sig, size_t *siglen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = 0;
    if (md == NULL)
        return 0;
    if (key->alg == PIGEON_DKIM_ED25519_SHA256) {
        /* RFC 8463 3: the Ed25519 input is the SHA-256 hash of the header data. */
        unsigned char hash[32];
        unsigned hl = 0;
        if (EVP_Digest(data, len, hash, &hl, sha256, NULL) == 1 && *siglen >= 64 &&
            pg_dkim_ed25519_sign(key, hash, hl, sig)) {
            *siglen = 64;
            EVP_MD_CTX_free(md);
            return 1;
        }
        ok = EVP_Digest(data, len, hash, &hl, sha256, NULL) == 1 &&
             EVP_DigestSignInit_ex(md, NULL, NULL, NULL, NULL, key->pkey, NULL) == 1 &&
             EVP_DigestSign(md, sig, siglen, hash, hl) == 1;
    } else {
        ok = EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key->pkey, NULL) == 1 &&
             EVP_DigestSign(md, sig, siglen, data, len) == 1;
    }
    EVP_MD_CTX_free(md);
    return ok;
}

/* Signs data with key k through the signer's prepared contexts. */
static int signer_sign(pigeon_dkim_signer *s, int k, const unsigned char *data, size_t len,
                       unsigned char *sig, size_t *siglen)
{
    unsigned char hash[32];
    unsigned hl = 0;
    if (EVP_DigestInit_ex(s->header_md, s->sha256, NULL) != 1 ||
        EVP_DigestUpdate(s->header_md, data, len) != 1 ||
        EVP_DigestFinal_ex(s->header_md, hash, &hl) != 1)
        return 0;
    if (s->rsa_ctx[k] != NULL)
        return EVP_PKEY_sign(s->rsa_ctx[k], sig, siglen, hash, hl) == 1;
    /* RFC 8463 3: the Ed25519 input is the SHA-256 hash of the header data. */
    if (s->ed_ctx[k] == NULL) {
        if (*siglen < 64 || !pg_dkim_ed25519_sign(s->keys[k], hash, hl, sig))
            return 0;
        *siglen = 64;
        return 1;
    }
    return EVP_DigestSign(s->ed_ctx[k], sig, siglen, hash, hl) == 1;
}

/* Appends the signature value to the field, folded. */
static void put_b(pg_buf *field, const unsigned char *sig, size_t siglen)
{
    size_t col = 0;
    for (size_t i = field->len; i > 0 && field->data[i - 1] != '\n'; i--)
        col++;
    pg_buf b64;
    pg_buf_init(&b64);
    pg_b64_encode(&b64, sig, siglen);
    for (size_t i = 0; i < b64.len;) {
        size_t room = col < FOLD_AT ? FOLD_AT - col : 0;
        if (room == 0) {
            pg_buf_append(field, "\r\n ", 3);
            col = 1;
            continue;
        }
        size_t n = b64.len - i < room ? b64.len - i : room;
        pg_buf_append(field, b64.data + i, n);
        col += n;
        i += n;
    }
    pg_buf_append(field, "\r\n", 2);
    pg_buf_cleanup(&b64);
}

/* One signature with key over the fields f, appended to out. */
static pigeon_err sign_one(pigeon_dkim_signer *s, int k, pg_dkim_field *f, size_t n,
                           const unsigned char *bh, int64_t t, pg_buf *out)
{
    const pigeon_dkim_key *key = s->keys[k];
    const char *h[H_MAX];
    size_t nh = choose(s, f, n, h);
    pg_buf data, field;
    pg_buf_init(&data);
    pg_buf_init(&field);
    for (size_t i = 0; i < n; i++)
        f[i].used = 0;
    for (size_t i = 0; i < nh; i++) {
        pg_dkim_field *pf = pick(f, n, h[i]);
        if (pf != NULL) { /* an oversigned name past its instances adds nothing (5.4.2) */
            pf->used = 1;
            pg_dkim_header_canon(&data, s->hcanon, pf->raw, pf->raw_len, 1);
        }
    }
    sig_template(s, k, h, nh, bh, t, &field);
    pg_dkim_header_canon(&data, s->hcanon, field.data, field.len, 0);
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    pigeon_err err = PIGEON_OK;
    if (data.err != PIGEON_OK || field.err != PIGEON_OK) {
        err = PIGEON_ERR_NOMEM;
    } else if (!signer_sign(s, k, (unsigned char *)data.data, data.len, sig, &siglen)) {
        snprintf(s->error, sizeof s->error, "the %s signature failed (OpenSSL)",
                 pigeon_dkim_alg_name(key->alg));
        err = PIGEON_ERR_INVALID;
    } else {
        put_b(&field, sig, siglen);
        pg_buf_append(out, field.data, field.len);
    }
    OPENSSL_cleanse(sig, sizeof sig);
    pg_buf_cleanup(&data);
    pg_buf_cleanup(&field);
    return err;
}

/* The header checks before signing: a From, and (check_from) within d=. */
static pigeon_err check_header(pigeon_dkim_signer *s, pg_dkim_field *f, size_t n)
{
    size_t froms = count(f, n, "from");
    if (froms != 1) {
        snprintf(s->error, sizeof s->error, "%s",
                 froms == 0 ? "the message has no From field (RFC 6376 5.4: it must be signed)"
                            : "the message has more than one From field");
        return PIGEON_ERR_HEADER;
    }
    if (!s->check_from && !s->domain_from_header)
        return PIGEON_OK;
    char *domain = from_domain(f, n);
    pigeon_err err = PIGEON_OK;
    if (domain == NULL) {
        snprintf(s->error, sizeof s->error, "the From field holds no address to align with d=");
        err = PIGEON_ERR_HEADER;
    } else if (s->domain_from_header) {
        char *d = lower_dup(domain); /* d= is the From domain: aligned by construction */
        if (d == NULL || !valid_label_text(d, 1)) {
            snprintf(s->error, sizeof s->error, "the From domain cannot be a DKIM d=");
            err = d == NULL ? PIGEON_ERR_NOMEM : PIGEON_ERR_HEADER;
            free(d);
        } else {
            free(s->domain);
            s->domain = d;
        }
    } else if (!pigeon_dkim_domain_covers(s->domain, domain)) {
        snprintf(s->error, sizeof s->error,
                 "the DKIM domain %.80s is not the From domain %.80s or a parent of it: DMARC "
                 "would not align (set dkim_domain to %.80s)",
                 s->domain, domain, domain);
        err = PIGEON_ERR_HEADER;
    }
    free(domain);
    return err;
}

pigeon_err pigeon_dkim_signer_final(pigeon_dkim_signer *s, int64_t unix_time, char **fields,
                                    size_t *len)
{
    if (s == NULL || fields == NULL)
        return PIGEON_ERR_INVALID;
    *fields = NULL;
    s->error[0] = '\0';
    pigeon_err err = s->err;
    pg_dkim_field *f = NULL;
    pg_buf out;
    pg_buf_init(&out);
    unsigned char bh[EVP_MAX_MD_SIZE];
    unsigned bhlen = 0;
    if (err != PIGEON_OK)
        goto done;
    /* A header block without its final CRLF (no body, no empty line) ends its last line. */
    if (s->header.len > s->line_start)
        pg_buf_append(&s->header, "\r\n", 2);
    pg_dkim_body_finish(&s->body);
    if (EVP_DigestFinal_ex(s->body_md, bh, &bhlen) != 1 || s->header.err != PIGEON_OK) {
        err = PIGEON_ERR_NOMEM;
        goto done;
    }
    size_t max = count_lines(&s->header);
    if (max > FIELDS_MAX)
        max = FIELDS_MAX;
    if ((f = malloc(max * sizeof *f)) == NULL) {
        err = PIGEON_ERR_NOMEM;
        goto done;
    }
    size_t n = pg_dkim_fields_split(s->header.data ? s->header.data : "",
                                    s->header.len >= 2 ? s->header.len - 2 : 0, f, max);
    if (n > max) {
        snprintf(s->error, sizeof s->error, "the header has more than %d fields", FIELDS_MAX);
        err = PIGEON_ERR_TOO_LARGE;
        goto done;
    }
    if ((err = check_header(s, f, n)) != PIGEON_OK)
        goto done;
    for (int k = 0; k < 2 && err == PIGEON_OK; k++)
        if (s->keys[k] != NULL)
            err = sign_one(s, k, f, n, bh, unix_time, &out);
    if (err == PIGEON_OK && out.err != PIGEON_OK)
        err = PIGEON_ERR_NOMEM;
done:
    free(f);
    if (err == PIGEON_OK)
        *fields = pg_buf_detach(&out, len);
    pg_buf_cleanup(&out);
    start(s);
    if (err != PIGEON_OK && s->error[0] == '\0')
        snprintf(s->error, sizeof s->error, "%s", pigeon_strerror(err));
    return err;
}
