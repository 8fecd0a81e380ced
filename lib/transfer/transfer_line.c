/*
 * transfer_line.c - the parser of one line of the queue export format (transfer.h), and
 * the decoder of its base64 body. Pure: works on (buf, len), no I/O.
 *
 * JSON (RFC 8259) is parsed strictly: strings with their escapes (7), numbers (6: an
 * integer field takes no fraction or exponent and must fit 64 bits), the literals, and
 * nesting only where the format has it (the recipients array of flat objects); unknown
 * keys are skipped whatever their value, to a bounded depth. Strings are decoded in
 * place (an escape is never shorter than what it stands for), must be valid UTF-8 (8.1)
 * and may not hold U+0000. A duplicate key is refused (8.1 leaves it undefined).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/transfer.h"
#include "util/utf8.h"

/* How deep an unknown value may nest before it is refused. */
#define MAX_DEPTH 32

/* The parser's position in the line. */
typedef struct cursor {
    char *p;       /* the next byte */
    char *end;     /* one past the last byte */
    char *start;   /* the line's first byte */
    char *err;     /* where the reason goes */
    size_t errlen; /* its size */
} cursor;

static int fail(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(cursor *c, const char *fmt, ...)
{
    if (c->err != NULL && c->errlen > 0 && c->err[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
        c->p++;
}

/* Consumes ch (after whitespace), or fails. */
static int expect(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != ch)
        return fail(c, "expected '%c' at column %ld", ch, (long)(c->p - c->start) + 1);
    c->p++;
    return 0;
}

/* Consumes ch if it is next (after whitespace). */
static int accept(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static int hex4(const char *s, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char h = s[i];
        int d = h >= '0' && h <= '9'   ? h - '0'
                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* Writes code point cp as UTF-8 at *dst. */
static void put_utf8(char **dst, uint32_t cp)
{
    unsigned char *d = (unsigned char *)*dst;
    if (cp < 0x80) {
        *d++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *d++ = (unsigned char)(0xc0 | cp >> 6);
        *d++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *d++ = (unsigned char)(0xe0 | cp >> 12);
        *d++ = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        *d++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else {
        *d++ = (unsigned char)(0xf0 | cp >> 18);
        *d++ = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        *d++ = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        *d++ = (unsigned char)(0x80 | (cp & 0x3f));
    }
    *dst = (char *)d;
}

/* A \u escape at c->p (after the backslash and 'u'), with its low surrogate if any. */
static int unicode_escape(cursor *c, char **dst)
{
    uint32_t cp, lo;
    if (c->end - c->p < 4 || hex4(c->p, &cp) != 0)
        return fail(c, "bad \\u escape in a string");
    c->p += 4;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return fail(c, "lone low surrogate in a string");
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' || hex4(c->p + 2, &lo) != 0 ||
            lo < 0xdc00 || lo > 0xdfff)
            return fail(c, "lone high surrogate in a string");
        c->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    if (cp == 0)
        return fail(c, "U+0000 in a string");
    put_utf8(dst, cp);
    return 0;
}

/* A string at c->p (after whitespace), decoded in place and NUL-terminated. */
static int parse_string(cursor *c, char **out, size_t *len)
{
    if (expect(c, '"') != 0)
        return -1;
    char *start = c->p, *dst = c->p;
    for (;;) {
        if (c->p >= c->end)
            return fail(c, "unterminated string");
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"')
            break;
        if (ch < 0x20)
            return fail(c, "control character in a string");
        if (ch != '\\') {
            *dst++ = (char)ch;
            continue;
        }
        if (c->p >= c->end)
            return fail(c, "unterminated string");
        char e = *c->p++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e == 'u') {
            if (unicode_escape(c, &dst) != 0)
                return -1;
        } else if (e != '\0' && simple != NULL) {
            *dst++ = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
        } else {
            return fail(c, "bad escape in a string");
        }
    }
    *len = (size_t)(dst - start);
    *dst = '\0';
    if (!pg_utf8_valid(start, *len))
        return fail(c, "a string is not valid UTF-8");
    *out = start;
    return 0;
}

/* Matches a literal (true, false, null) at c->p. */
static int literal(cursor *c, const char *word)
{
    size_t n = strlen(word);
    skip_ws(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

/* A JSON number; *is_int when it has no fraction or exponent and fits an int64_t. */
static int parse_number(cursor *c, int64_t *v, int *is_int)
{
    skip_ws(c);
    int neg = c->p < c->end && *c->p == '-';
    uint64_t mag = 0;
    int overflow = 0;
    if (neg)
        c->p++;
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return fail(c, "expected a value");
    if (*c->p == '0' && c->end - c->p > 1 && c->p[1] >= '0' && c->p[1] <= '9')
        return fail(c, "a number with a leading zero");
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p++ - '0');
        if (mag > (UINT64_MAX - d) / 10)
            overflow = 1;
        else
            mag = mag * 10 + d;
    }
    *is_int = !overflow && mag <= (uint64_t)INT64_MAX;
    if (c->p < c->end && *c->p == '.') {
        *is_int = 0;
        c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return fail(c, "a number without digits after '.'");
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        *is_int = 0;
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return fail(c, "a number without exponent digits");
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    *v = *is_int ? (neg ? -(int64_t)mag : (int64_t)mag) : 0;
    return 0;
}

/* An integer field in [min, max]. */
static int parse_int(cursor *c, const char *key, int64_t min, int64_t max, int64_t *v)
{
    int is_int = 0;
    if (parse_number(c, v, &is_int) != 0)
        return -1;
    if (!is_int || *v < min || *v > max)
        return fail(c, "\"%s\" must be an integer from %lld to %lld", key, (long long)min,
                    (long long)max);
    return 0;
}

/* A string field, or NULL for null when nullable. */
static int parse_text(cursor *c, const char *key, int nullable, const char **out)
{
    char *s = NULL;
    size_t len = 0;
    if (nullable && literal(c, "null")) {
        *out = NULL;
        return 0;
    }
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"')
        return fail(c, "\"%s\" must be a string%s", key, nullable ? " or null" : "");
    if (parse_string(c, &s, &len) != 0)
        return -1;
    *out = s;
    return 0;
}

/* Skips any value (an unknown key's), nested at most MAX_DEPTH deep. */
static int skip_value(cursor *c, int depth)
{
    char *s;
    size_t len;
    int64_t v;
    int is_int;
    if (depth > MAX_DEPTH)
        return fail(c, "values nested too deep");
    skip_ws(c);
    if (c->p >= c->end)
        return fail(c, "expected a value");
    if (*c->p == '"')
        return parse_string(c, &s, &len);
    if (literal(c, "true") || literal(c, "false") || literal(c, "null"))
        return 0;
    char open = *c->p;
    if (open != '[' && open != '{')
        return parse_number(c, &v, &is_int);
    char close = open == '[' ? ']' : '}';
    c->p++;
    if (accept(c, close))
        return 0;
    do {
        if (open == '{' && (parse_string(c, &s, &len) != 0 || expect(c, ':') != 0))
            return -1;
        if (skip_value(c, depth + 1) != 0)
            return -1;
    } while (accept(c, ','));
    return expect(c, close);
}

/* ---- the format's objects ---- */

/* Index of key in names (NULL-terminated), or -1. */
static int key_index(const char *key, const char *const *names)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(key, names[i]) == 0)
            return i;
    return -1;
}

/* Iterates an object's members: calls member(c, ctx, index of the key or -1) for each,
 * refusing duplicates of known keys. *seen gets a bit per known key found. */
static int parse_object(cursor *c, const char *const *names, unsigned *seen,
                        int (*member)(cursor *c, void *ctx, int k), void *ctx)
{
    char *key;
    size_t len;
    *seen = 0;
    if (expect(c, '{') != 0)
        return -1;
    if (accept(c, '}'))
        return 0;
    do {
        if (parse_string(c, &key, &len) != 0 || expect(c, ':') != 0)
            return -1;
        int k = key_index(key, names);
        if (k >= 0 && (*seen & 1u << k))
            return fail(c, "duplicate key \"%s\"", names[k]);
        if (k >= 0)
            *seen |= 1u << k;
        if ((k < 0 ? skip_value(c, 1) : member(c, ctx, k)) != 0)
            return -1;
    } while (accept(c, ','));
    return expect(c, '}');
}

enum { R_ADDRESS, R_STATE, R_ATTEMPTS, R_NEXT, R_ERROR, R_CODE, R_ENHANCED, R_TEXT, R_UPDATED };
static const char *const rcpt_keys[] = {"address",    "state", "attempts",      "next_ms",
                                        "error",      "code",  "enhanced_code", "text",
                                        "updated_ms", NULL};

/* A time or a count that may be null (0). */
static int parse_opt_int(cursor *c, const char *key, int64_t max, int64_t *v)
{
    if (literal(c, "null")) {
        *v = 0;
        return 0;
    }
    return parse_int(c, key, 0, max, v);
}

static int rcpt_member(cursor *c, void *ctx, int k)
{
    pg_spool_import_rcpt *r = ctx;
    const char *state = NULL;
    int64_t v = 0;
    switch (k) {
    case R_ADDRESS:
        return parse_text(c, "address", 0, &r->address);
    case R_STATE:
        if (parse_text(c, "state", 0, &state) != 0)
            return -1;
        for (int s = 0; s < PIGEON_SPOOL_NSTATES; s++)
            if (strcmp(state, pigeon_spool_state_name((pigeon_spool_state)s)) == 0) {
                r->state = (pigeon_spool_state)s;
                return 0;
            }
        return fail(c, "unknown recipient state \"%.40s\"", state);
    case R_ATTEMPTS:
        if (parse_int(c, "attempts", 0, 1000000, &v) != 0)
            return -1;
        r->attempts = (int)v;
        return 0;
    case R_NEXT:
        return parse_opt_int(c, "next_ms", INT64_MAX / 2, &r->next_ms);
    case R_ERROR:
        if (parse_opt_int(c, "error", 255, &v) != 0)
            return -1;
        r->last_err = (pigeon_err)v;
        return 0;
    case R_CODE:
        if (parse_opt_int(c, "code", 599, &v) != 0)
            return -1;
        if (v != 0 && v < 200)
            return fail(c, "\"code\" must be a reply code from 200 to 599");
        r->smtp_code = (int)v;
        return 0;
    case R_ENHANCED:
        return parse_text(c, "enhanced_code", 1, &r->enhanced_code);
    case R_TEXT:
        return parse_text(c, "text", 1, &r->text);
    default:
        return parse_opt_int(c, "updated_ms", INT64_MAX / 2, &r->updated_ms);
    }
}

static int parse_rcpts(cursor *c, pg_transfer_line *out)
{
    size_t cap = 0;
    if (expect(c, '[') != 0)
        return -1;
    if (accept(c, ']'))
        return fail(c, "\"recipients\" is empty");
    do {
        if (out->msg.rcpt_count == PG_TRANSFER_MAX_RCPTS)
            return fail(c, "more than %d recipients", PG_TRANSFER_MAX_RCPTS);
        if (out->msg.rcpt_count == cap) {
            cap = cap == 0 ? 4 : cap * 2;
            pg_spool_import_rcpt *r = realloc(out->rcpts, cap * sizeof *r);
            if (r == NULL)
                return fail(c, "out of memory");
            out->rcpts = r;
        }
        pg_spool_import_rcpt *r = &out->rcpts[out->msg.rcpt_count++];
        memset(r, 0, sizeof *r);
        unsigned seen = 0;
        if (parse_object(c, rcpt_keys, &seen, rcpt_member, r) != 0)
            return -1;
        if (!(seen & 1u << R_ADDRESS) || !(seen & 1u << R_STATE))
            return fail(c, "recipient #%zu has no address or state", out->msg.rcpt_count);
    } while (accept(c, ','));
    out->msg.rcpts = out->rcpts;
    return expect(c, ']');
}

enum {
    K_FORMAT,
    K_VERSION,
    K_END,
    K_MESSAGES,
    K_QUEUE_ID,
    K_ACCOUNT,
    K_MAIL_FROM,
    K_MESSAGE_ID,
    K_CREATED,
    K_SIZE,
    K_SHA256,
    K_RCPTS,
    K_BODY,
};
static const char *const line_keys[] = {
    "format",     "version",    "end",  "messages", "queue_id",   "account", "mail_from",
    "message_id", "created_ms", "size", "sha256",   "recipients", "body",    NULL};
/* The keys a message line must have (message_id may be left out: none). */
#define MESSAGE_KEYS                                                                               \
    (1u << K_QUEUE_ID | 1u << K_ACCOUNT | 1u << K_MAIL_FROM | 1u << K_CREATED | 1u << K_SIZE |     \
     1u << K_SHA256 | 1u << K_RCPTS | 1u << K_BODY)

static int parse_sha(cursor *c, unsigned char sha[32])
{
    const char *hex = NULL;
    if (parse_text(c, "sha256", 0, &hex) != 0)
        return -1;
    if (strlen(hex) != 64)
        return fail(c, "\"sha256\" must be 64 hexadecimal digits");
    for (int i = 0; i < 32; i++) {
        uint32_t v = 0;
        char four[4] = {'0', '0', hex[2 * i], hex[2 * i + 1]};
        if (hex4(four, &v) != 0)
            return fail(c, "\"sha256\" must be 64 hexadecimal digits");
        sha[i] = (unsigned char)v;
    }
    return 0;
}

static int line_member(cursor *c, void *ctx, int k)
{
    pg_transfer_line *out = ctx;
    const char *s = NULL;
    switch (k) {
    case K_FORMAT:
        if (parse_text(c, "format", 0, &s) != 0)
            return -1;
        return strcmp(s, "pigeon-queue") == 0 ? 0 : fail(c, "not a pigeon queue export");
    case K_VERSION:
        return parse_int(c, "version", 1, INT64_MAX, &out->version);
    case K_END:
        return literal(c, "true") ? 0 : fail(c, "\"end\" must be true");
    case K_MESSAGES:
        return parse_int(c, "messages", 0, INT64_MAX, &out->messages);
    case K_QUEUE_ID:
        return parse_text(c, "queue_id", 0, &out->msg.queue_id);
    case K_ACCOUNT:
        return parse_text(c, "account", 0, &out->msg.account);
    case K_MAIL_FROM:
        return parse_text(c, "mail_from", 0, &out->msg.mail_from);
    case K_MESSAGE_ID:
        if (parse_text(c, "message_id", 1, &out->msg.message_id) != 0)
            return -1;
        if (out->msg.message_id == NULL)
            out->msg.message_id = "";
        return 0;
    case K_CREATED:
        return parse_int(c, "created_ms", 0, INT64_MAX / 2, &out->msg.created_ms);
    case K_SIZE:
        return parse_int(c, "size", 0, INT64_MAX / 2, &out->size);
    case K_SHA256:
        return parse_sha(c, out->sha256);
    case K_RCPTS:
        return parse_rcpts(c, out);
    default: {
        size_t len = 0;
        char *b = NULL;
        skip_ws(c);
        if (c->p >= c->end || *c->p != '"')
            return fail(c, "\"body\" must be a string");
        if (parse_string(c, &b, &len) != 0)
            return -1;
        out->body = b;
        out->body_len = len;
        return 0;
    }
    }
}

/* Which line the keys found make, and whether it has what that line needs. */
static int classify(cursor *c, unsigned seen, pg_transfer_line *out)
{
    unsigned header = 1u << K_FORMAT | 1u << K_VERSION, end = 1u << K_END | 1u << K_MESSAGES;
    if (seen & 1u << K_FORMAT) {
        if ((seen & header) != header || (seen & ~header) != 0)
            return fail(c, "a header line has \"format\" and \"version\" only");
        out->kind = PG_TRANSFER_HEADER;
        return 0;
    }
    if (seen & 1u << K_END) {
        if ((seen & end) != end || (seen & ~end) != 0)
            return fail(c, "an end line has \"end\" and \"messages\" only");
        out->kind = PG_TRANSFER_END;
        return 0;
    }
    if ((seen & MESSAGE_KEYS) != MESSAGE_KEYS || (seen & (header | end)) != 0) {
        for (int k = K_QUEUE_ID; k <= K_BODY; k++)
            if ((MESSAGE_KEYS & 1u << k) && !(seen & 1u << k))
                return fail(c, "a message line without \"%s\"", line_keys[k]);
        return fail(c, "a message line with a header's or end's key");
    }
    if (out->msg.message_id == NULL)
        out->msg.message_id = "";
    out->kind = PG_TRANSFER_MESSAGE;
    return 0;
}

pigeon_err pg_transfer_line_parse(char *line, size_t len, pg_transfer_line *out, char *err,
                                  size_t errlen)
{
    cursor c = {line, line + len, line, err, errlen};
    unsigned seen = 0;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    memset(out, 0, sizeof *out);
    if (line == NULL && len > 0)
        return PIGEON_ERR_INVALID;
    if (parse_object(&c, line_keys, &seen, line_member, out) != 0)
        return PIGEON_ERR_INVALID;
    skip_ws(&c);
    if (c.p != c.end) {
        fail(&c, "text after the line's object");
        return PIGEON_ERR_INVALID;
    }
    return classify(&c, seen, out) == 0 ? PIGEON_OK : PIGEON_ERR_INVALID;
}

void pg_transfer_line_cleanup(pg_transfer_line *line)
{
    if (line == NULL)
        return;
    free(line->rcpts);
    line->rcpts = NULL;
    line->msg.rcpts = NULL;
    line->msg.rcpt_count = 0;
}

/* ---- the body: base64 (RFC 4648 4) ---- */

/* The value of a base64 character, or -1. */
static int b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Decodes the next group (4 characters, or the last 2 or 3 without padding) into out;
 * returns the bytes written (1-3), or -1 when it is not base64. */
static int next_group(pg_transfer_body *b, unsigned char out[3])
{
    size_t n = b->left < 4 ? b->left : 4;
    int v[4] = {0, 0, 0, 0};
    size_t data = n;
    if (n == 4 && b->b64[3] == '=')
        data = b->b64[2] == '=' ? 2 : 3;
    if (data < 2 || (data < 4 && n == 4 && b->left != 4))
        return -1; /* one character alone, or padding before the end */
    for (size_t i = 0; i < data; i++)
        if ((v[i] = b64_value(b->b64[i])) < 0)
            return -1;
    if (data == 2 && n == 4 && b->b64[2] != '=')
        return -1;
    out[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
    out[1] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
    out[2] = (unsigned char)((v[2] & 3) << 6 | v[3]);
    b->b64 += n;
    b->left -= n;
    return (int)data - 1;
}

int pg_transfer_body_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    pg_transfer_body *b = ctx;
    unsigned char *out = buf;
    *n = 0;
    while (*n < cap) {
        if (b->carry_at < b->ncarry) {
            out[(*n)++] = b->carry[b->carry_at++];
            continue;
        }
        if (b->left == 0)
            break;
        if (cap - *n >= 3) { /* straight into the caller's buffer */
            int got = next_group(b, out + *n);
            if (got < 0)
                return b->bad = 1, PIGEON_ERR_INVALID;
            *n += (size_t)got;
            continue;
        }
        int got = next_group(b, b->carry);
        if (got < 0)
            return b->bad = 1, PIGEON_ERR_INVALID;
        b->ncarry = (size_t)got;
        b->carry_at = 0;
    }
    return PIGEON_OK;
}
