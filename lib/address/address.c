/*
 * address.c - parsing what users type as addresses: RFC 5322 3.4 mailboxes, groups and
 * address lists, with RFC 6532 UTF-8, RFC 2047 encoded-words in display names, and the
 * RFC 5321 4.1.2 / 4.5.3.1 rules an envelope path needs.
 *
 * The envelope address must be exactly the address the header shows, so every input
 * has one reading or is refused. Decisions:
 *  - CR, LF, NUL, every other C0 control (HTAB included) and DEL are refused anywhere:
 *    folding white space belongs to messages, not to what a user types, and a line break
 *    in an address is header injection. Invalid UTF-8 is refused.
 *  - Comments "(...)" are allowed where RFC 5322 allows CFWS around words and after the
 *    address, nest at most 32 deep, and are dropped: a comment never supplies a display
 *    name or any part of the address.
 *  - No white space or comment inside an addr-spec (around '@' or dots); only just
 *    inside the angle brackets ("< a@b.c >").
 *  - Obsolete forms with no single reading are refused: source routes "<@a:x@y>",
 *    local parts mixing quoted and unquoted words ("a".b@c), empty local parts.
 *  - A phrase may contain '.' (RFC 5322 4.1 obs-phrase: John Q. Public <j@x.org>).
 *  - Empty list elements ("a@b.c, , d@e.f", a leading or trailing comma) are skipped, as
 *    RFC 5322 4.4 obs-addr-list allows; a list with no mailbox and no group is refused.
 *  - Display and group names: quoted-strings are unquoted, encoded-words standing as whole
 *    atoms are decoded (not inside quoted-strings, RFC 2047 5(3)) and white space between
 *    two of them dropped (RFC 2047 6.2), runs of spaces are collapsed and the ends trimmed;
 *    an empty name is no name. A name that decodes to controls or bad UTF-8 is refused.
 *  - The domain is normalized by idn.c (IDNA2008, address literals).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address/address_int.h"
#include "util/buf.h"
#include "codec/encode.h"
#include "address/idn.h"
#include "pigeon/address.h"

/* RFC 5321 4.5.3.1.1-3: local part, domain, and path (without the angle brackets). */
#define LOCAL_MAX       64
#define DOMAIN_MAX      255
#define PATH_MAX_OCTETS 254
/* Bounds on what we accept at all: nested comments and the whole input. */
#define COMMENT_DEPTH_MAX 32
#define INPUT_MAX         (256 * 1024)
/* How much of the input an error message quotes. */
#define QUOTE_MAX 72

typedef struct parser {
    const char *in;            /* the whole input, NUL-terminated */
    size_t len;                /* strlen(in) */
    size_t pos;                /* next byte to read */
    size_t elem;               /* start of the address being parsed, quoted in messages */
    int utf8_ok;               /* the input is valid UTF-8 (messages may copy it raw) */
    int single;                /* pigeon_mailbox_parse(): one mailbox, no group, no comma */
    char *err;                 /* caller's buffer for the one-line reason, or NULL */
    size_t errlen;             /* size of err */
    char what[16];             /* scratch for describe() */
    pigeon_address_list *list; /* where parsed mailboxes and empty groups go */
} parser;

static pigeon_err fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *describe(parser *p);
static size_t utf8_valid_prefix(const char *s, size_t n);
static pigeon_err check_input(parser *p);
static pigeon_err skip_comment(parser *p);
static pigeon_err skip_cfws(parser *p, int *saw);
static pigeon_err scan_quoted(parser *p, pg_buf *out);
static size_t scan_atoms(parser *p, int allow_dot);
static int looks_like_encoded_word(const char *s, size_t n);
static void append_piece(pg_buf *name, const char *s, size_t n, int sep, int ew, int *prev_ew);
static pigeon_err phrase_atom(parser *p, pg_buf *name, int sep, int *prev_ew);
static pigeon_err scan_phrase(parser *p, pg_buf *name);
static pigeon_err finish_name(parser *p, pg_buf *raw, char **out);
static pigeon_err scan_dot_atom(parser *p);
static pigeon_err missing_at(parser *p);
static pigeon_err parse_local(parser *p, pigeon_mailbox *mb);
static pigeon_err parse_domain(parser *p, pigeon_mailbox *mb);
static pigeon_err check_limits(parser *p, const pigeon_mailbox *mb);
static pigeon_err parse_angle(parser *p, pigeon_mailbox *mb);
static pigeon_err parse_mailbox(parser *p, const char *group, size_t start, int angle);
static pigeon_err parse_group(parser *p, size_t start);
static pigeon_err parse_address(parser *p, const char *group, int *empty);
static pigeon_err parse_list(parser *p);
static size_t grown_cap(size_t n);
static pigeon_err list_push(pigeon_address_list *l, pigeon_mailbox *mb);
static pigeon_err list_push_group(pigeon_address_list *l, char *name);
static char *dup_or_null(const char *s, pigeon_err *err);

static int cur(const parser *p)
{
    return (unsigned char)p->in[p->pos];
}

/* ---- messages ---- */

/* Copies the element being parsed into dst as a C-string literal body: from its start
 * to the comma after the error (or the end), at most QUOTE_MAX input bytes, cut on a
 * UTF-8 character boundary, with quotes, backslashes and non-printables escaped. */
static void quote_element(const parser *p, char *dst, size_t cap)
{
    size_t end = p->pos < p->len ? p->pos : p->len;
    while (end < p->len && p->in[end] != ',')
        end++;
    size_t n = 0;
    size_t i = p->elem < end ? p->elem : end;
    int cut = 0;
    for (; i < end; i++) {
        unsigned char c = (unsigned char)p->in[i];
        if (i - p->elem >= QUOTE_MAX && (c < 0x80 || c >= 0xC0 || !p->utf8_ok)) {
            cut = 1;
            break;
        }
        char esc[8];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\%c", c);
        else if (c < 0x20 || c == 0x7F || (c >= 0x80 && !p->utf8_ok))
            snprintf(esc, sizeof esc, "\\x%02X", c);
        else
            snprintf(esc, sizeof esc, "%c", c);
        size_t el = strlen(esc);
        if (n + el + 4 >= cap)
            break;
        memcpy(dst + n, esc, el);
        n += el;
    }
    if (cut && n + 4 < cap) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
}

/* Writes "invalid address "<element>": <reason>" into the caller's buffer. */
static pigeon_err fail(parser *p, const char *fmt, ...)
{
    if (p->err == NULL || p->errlen == 0)
        return PIGEON_ERR_ADDRESS;
    char reason[192];
    char quoted[QUOTE_MAX * 4 + 8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    quote_element(p, quoted, sizeof quoted);
    snprintf(p->err, p->errlen, "invalid address \"%s\": %s", quoted, reason);
    return PIGEON_ERR_ADDRESS;
}

/* Names the character at the cursor for a message: 'x', "end of input", or U+XXXX. */
static const char *describe(parser *p)
{
    int c = cur(p);
    if (c == 0)
        return "end of input";
    if (c < 0x80) {
        snprintf(p->what, sizeof p->what, "'%c'", c);
        return p->what;
    }
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (p->pos + n > p->len)
        n = p->len - p->pos;
    snprintf(p->what, sizeof p->what, "'%.*s'", (int)n, p->in + p->pos);
    return p->what;
}

/* ---- input checks ---- */

/* Length of the longest valid UTF-8 prefix of [s, s+n): no overlongs, no surrogates,
 * nothing above U+10FFFF (RFC 3629 4). */
static size_t utf8_valid_prefix(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t len = c < 0x80                 ? 1
                     : c >= 0xC2 && c <= 0xDF ? 2
                     : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4
                                              : 0;
        if (len == 0 || n - i < len)
            return i;
        for (size_t k = 1; k < len; k++)
            if ((u[i + k] & 0xC0) != 0x80)
                return i;
        if ((c == 0xE0 && u[i + 1] < 0xA0) || (c == 0xED && u[i + 1] > 0x9F) ||
            (c == 0xF0 && u[i + 1] < 0x90) || (c == 0xF4 && u[i + 1] > 0x8F))
            return i;
        i += len;
    }
    return n;
}

static pigeon_err check_input(parser *p)
{
    if (p->len > INPUT_MAX)
        return fail(p, "input longer than %d bytes", INPUT_MAX);
    size_t ok = utf8_valid_prefix(p->in, p->len);
    p->utf8_ok = ok == p->len;
    for (size_t i = 0; i < p->len; i++) {
        unsigned char c = (unsigned char)p->in[i];
        if (c < 0x20 || c == 0x7F) {
            p->pos = i;
            return fail(p,
                        "control character 0x%02X (line breaks, tabs and controls are "
                        "not allowed in addresses)",
                        c);
        }
    }
    if (!p->utf8_ok) {
        p->pos = ok;
        return fail(p, "invalid UTF-8 at byte %zu", ok);
    }
    return PIGEON_OK;
}

/* ---- lexical pieces (RFC 5322 3.2) ---- */

/* RFC 5322 3.2.2 comment, at '(': nested comments and quoted-pairs, depth-limited. */
static pigeon_err skip_comment(parser *p)
{
    int depth = 0;
    size_t open = p->pos;
    for (;;) {
        int c = cur(p);
        if (c == 0) {
            p->pos = open;
            return fail(p, "unbalanced '(' (comment not closed)");
        }
        p->pos++;
        if (c == '(' && ++depth > COMMENT_DEPTH_MAX)
            return fail(p, "comments nested deeper than %d", COMMENT_DEPTH_MAX);
        if (c == ')' && --depth == 0)
            return PIGEON_OK;
        if (c == '\\') {
            if (cur(p) == 0)
                return fail(p, "backslash at end of input");
            p->pos++;
        }
    }
}

/* RFC 5322 3.2.2 CFWS without folding: spaces and comments. *saw (may be NULL) is set
 * when anything was skipped. */
static pigeon_err skip_cfws(parser *p, int *saw)
{
    for (;;) {
        if (cur(p) == ' ') {
            p->pos++;
        } else if (cur(p) == '(') {
            pigeon_err err = skip_comment(p);
            if (err != PIGEON_OK)
                return err;
        } else {
            return PIGEON_OK;
        }
        if (saw != NULL)
            *saw = 1;
    }
}

/* RFC 5322 3.2.4 quoted-string at '"'; the unquoted content goes to out (may be NULL).
 * A quoted-pair may escape any character, a whole UTF-8 sequence included (RFC 6532). */
static pigeon_err scan_quoted(parser *p, pg_buf *out)
{
    size_t open = p->pos++;
    for (;;) {
        int c = cur(p);
        if (c == 0) {
            p->pos = open;
            return fail(p, "unbalanced '\"' (quoted string not closed)");
        }
        if (c == '"') {
            p->pos++;
            return PIGEON_OK;
        }
        if (c == '\\') {
            p->pos++;
            if (cur(p) == 0)
                return fail(p, "backslash at end of input");
        }
        if (out != NULL)
            pg_buf_append(out, p->in + p->pos, 1);
        p->pos++;
    }
}

/* Advances over atext (and '.' when allowed); returns the number of bytes. */
static size_t scan_atoms(parser *p, int allow_dot)
{
    size_t start = p->pos;
    while (pg_address_is_atext((unsigned char)cur(p)) || (allow_dot && cur(p) == '.'))
        p->pos++;
    return p->pos - start;
}

/* RFC 2047 2: "=?" charset "?" B/Q "?" encoded-text "?=" as one whole atom. */
static int looks_like_encoded_word(const char *s, size_t n)
{
    if (n < 8 || memcmp(s, "=?", 2) != 0 || memcmp(s + n - 2, "?=", 2) != 0)
        return 0;
    const char *q1 = memchr(s + 2, '?', n - 4);
    if (q1 == NULL || q1 == s + 2 || q1 + 2 >= s + n - 2 || q1[2] != '?')
        return 0;
    if (strchr("BbQq", q1[1]) == NULL || q1[1] == '\0')
        return 0;
    return memchr(q1 + 3, '?', (size_t)(s + n - 2 - (q1 + 3))) == NULL;
}

/* Adds one word of a phrase to the name: a space first when white space separated it
 * from the previous word, except between two encoded-words (RFC 2047 6.2). */
static void append_piece(pg_buf *name, const char *s, size_t n, int sep, int ew, int *prev_ew)
{
    if (name->len > 0 && sep && !(ew && *prev_ew))
        pg_buf_putc(name, ' ');
    pg_buf_append(name, s, n);
    *prev_ew = ew;
}

/* One run of atext and dots in a phrase; decoded if it is an encoded-word. An encoded-word
 * whose charset is unknown or whose text does not decode is kept as typed. */
static pigeon_err phrase_atom(parser *p, pg_buf *name, int sep, int *prev_ew)
{
    const char *s = p->in + p->pos;
    size_t n = scan_atoms(p, 1);
    if (name == NULL)
        return PIGEON_OK;
    if (looks_like_encoded_word(s, n)) {
        pg_buf decoded;
        pg_buf_init(&decoded);
        pigeon_err err = pg_ew_decode(&decoded, s, n);
        if (err == PIGEON_ERR_NOMEM) {
            pg_buf_cleanup(&decoded);
            return err;
        }
        if (err == PIGEON_OK && (decoded.len != n || memcmp(decoded.data, s, n) != 0)) {
            append_piece(name, decoded.data, decoded.len, sep, 1, prev_ew);
            pg_buf_cleanup(&decoded);
            return PIGEON_OK;
        }
        pg_buf_cleanup(&decoded);
    }
    append_piece(name, s, n, sep, 0, prev_ew);
    return PIGEON_OK;
}

/* RFC 5322 3.2.5 phrase (with obs-phrase dots): words and CFWS up to the first other
 * character. Builds the raw display name in name when not NULL. */
static pigeon_err scan_phrase(parser *p, pg_buf *name)
{
    int prev_ew = 0;
    for (;;) {
        int sep = 0;
        pigeon_err err = skip_cfws(p, &sep);
        if (err != PIGEON_OK)
            return err;
        int c = cur(p);
        if (c == '"') {
            pg_buf quoted;
            pg_buf_init(&quoted);
            err = scan_quoted(p, name != NULL ? &quoted : NULL);
            if (err == PIGEON_OK && name != NULL && quoted.len > 0)
                append_piece(name, quoted.data, quoted.len, sep, 0, &prev_ew);
            if (err == PIGEON_OK)
                err = quoted.err;
            pg_buf_cleanup(&quoted);
        } else if (pg_address_is_atext((unsigned char)c) || c == '.') {
            err = phrase_atom(p, name, sep, &prev_ew);
        } else {
            return PIGEON_OK;
        }
        if (err != PIGEON_OK)
            return err;
        if (name != NULL && name->err != PIGEON_OK)
            return name->err;
    }
}

/* Collapses spaces, trims, checks what encoded-words decoded to; *out is NULL for an
 * empty name. */
static pigeon_err finish_name(parser *p, pg_buf *raw, char **out)
{
    *out = NULL;
    if (raw->err != PIGEON_OK)
        return raw->err;
    if (raw->len == 0)
        return PIGEON_OK;
    size_t n = 0;
    for (size_t i = 0; i < raw->len; i++) {
        unsigned char c = (unsigned char)raw->data[i];
        if (c < 0x20 || c == 0x7F)
            return fail(p, "display name decodes to a control character (0x%02X)", c);
        if (c == ' ' && (n == 0 || raw->data[n - 1] == ' '))
            continue;
        raw->data[n++] = (char)c;
    }
    while (n > 0 && raw->data[n - 1] == ' ')
        n--;
    raw->len = n;
    raw->data[n] = '\0';
    if (utf8_valid_prefix(raw->data, n) != n)
        return fail(p, "display name decodes to invalid UTF-8");
    if (n == 0)
        return PIGEON_OK;
    *out = pg_buf_detach(raw, NULL);
    return *out != NULL ? PIGEON_OK : PIGEON_ERR_NOMEM;
}

/* ---- addr-spec (RFC 5322 3.4.1, RFC 5321 4.1.2) ---- */

/* RFC 5322 3.2.3 dot-atom-text at an atext character: atoms joined by single dots. */
static pigeon_err scan_dot_atom(parser *p)
{
    while (scan_atoms(p, 0) > 0 && cur(p) == '.') {
        p->pos++;
        if (cur(p) == '.')
            return fail(p, "\"..\" in local part (it must be quoted)");
        if (cur(p) == '"')
            return fail(p, "quoted and unquoted text mixed in the local part");
        if (!pg_address_is_atext((unsigned char)cur(p)))
            return fail(p, "local part ends with '.'");
    }
    if (cur(p) == '"')
        return fail(p, "quoted and unquoted text mixed in the local part");
    return PIGEON_OK;
}

/* Why the character after a local part is not the '@' it must be. */
static pigeon_err missing_at(parser *p)
{
    int c = cur(p);
    if (c == ' ' || c == '(')
        return fail(p, "space or comment before '@' (quote a display name, and local "
                       "parts cannot hold spaces unless quoted)");
    if (c == 0 || c == ',' || c == ';' || c == '>')
        return fail(p, "missing '@domain'");
    return fail(p, "unexpected %s in local part", describe(p));
}

/* local-part = dot-atom / quoted-string, then '@'; the unquoted value goes to mb. */
static pigeon_err parse_local(parser *p, pigeon_mailbox *mb)
{
    pg_buf local;
    pg_buf_init(&local);
    size_t start = p->pos;
    pigeon_err err;
    if (cur(p) == '"') {
        err = scan_quoted(p, &local);
        if (err == PIGEON_OK && local.len == 0)
            err = fail(p, "empty quoted local part");
        if (err == PIGEON_OK && (cur(p) == '.' || pg_address_is_atext((unsigned char)cur(p))))
            err = fail(p, "quoted and unquoted text mixed in the local part");
    } else if (cur(p) == '.') {
        err = fail(p, "local part starts with '.'");
    } else if (cur(p) == '@') {
        err = fail(p, "empty local part before '@'");
    } else if (!pg_address_is_atext((unsigned char)cur(p))) {
        err = fail(p, "unexpected %s", describe(p));
    } else if ((err = scan_dot_atom(p)) == PIGEON_OK) {
        pg_buf_append(&local, p->in + start, p->pos - start);
    }
    if (err == PIGEON_OK && cur(p) != '@')
        err = missing_at(p);
    if (err == PIGEON_OK) {
        p->pos++;
        mb->local = pg_buf_detach(&local, NULL);
        err = mb->local != NULL ? PIGEON_OK : PIGEON_ERR_NOMEM;
    }
    pg_buf_cleanup(&local);
    return err;
}

/* domain = dot-atom / domain-literal, normalized by pg_idn_domain_normalize(). */
static pigeon_err parse_domain(parser *p, pigeon_mailbox *mb)
{
    size_t start = p->pos;
    if (cur(p) == '[') {
        while (cur(p) != 0 && cur(p) != ']') {
            p->pos++;
            if (cur(p) == '[' || cur(p) == '\\' || cur(p) == ' ')
                return fail(p, "unexpected %s in address literal", describe(p));
        }
        if (cur(p) != ']')
            return fail(p, "unbalanced '[' (address literal not closed)");
        p->pos++;
    } else {
        scan_atoms(p, 1);
    }
    if (p->pos == start) {
        if (cur(p) == ' ' || cur(p) == '(')
            return fail(p, "space or comment after '@'");
        if (cur(p) == 0 || cur(p) == ',' || cur(p) == '>' || cur(p) == ';')
            return fail(p, "missing domain after '@'");
        return fail(p, "unexpected %s after '@'", describe(p));
    }
    if (cur(p) == '@')
        return fail(p, "unexpected '@' in domain");
    char why[160] = "";
    pigeon_err err = pg_idn_domain_normalize(p->in + start, p->pos - start, &mb->domain,
                                             &mb->domain_ascii, why, sizeof why);
    if (err == PIGEON_ERR_ADDRESS)
        return fail(p, "%s", why);
    return err;
}

/* RFC 5321 4.5.3.1: limits on the path as it goes on the wire, in either domain form. */
static pigeon_err check_limits(parser *p, const pigeon_mailbox *mb)
{
    size_t local = pg_address_local_wire_len(mb->local);
    size_t domain = strlen(mb->domain);
    size_t ascii = strlen(mb->domain_ascii);
    if (ascii > domain)
        domain = ascii;
    if (local > LOCAL_MAX)
        return fail(p, "local part is %zu octets, the limit is %d", local, LOCAL_MAX);
    if (domain > DOMAIN_MAX)
        return fail(p, "domain is %zu octets, the limit is %d", domain, DOMAIN_MAX);
    if (local + 1 + domain > PATH_MAX_OCTETS)
        return fail(p, "address is %zu octets, the limit is %d", local + 1 + domain,
                    PATH_MAX_OCTETS);
    return PIGEON_OK;
}

/* angle-addr = "<" addr-spec ">" (RFC 5322 3.4), spaces and comments allowed just inside
 * the brackets; obs-route is refused. */
static pigeon_err parse_angle(parser *p, pigeon_mailbox *mb)
{
    p->pos++;
    pigeon_err err = skip_cfws(p, NULL);
    if (err != PIGEON_OK)
        return err;
    if (cur(p) == '@')
        return fail(p, "source routes (<@host:...>) are not supported");
    if (cur(p) == '>')
        return fail(p, "empty address \"<>\"");
    if ((err = parse_local(p, mb)) != PIGEON_OK || (err = parse_domain(p, mb)) != PIGEON_OK ||
        (err = skip_cfws(p, NULL)) != PIGEON_OK)
        return err;
    if (cur(p) == 0)
        return fail(p, "unbalanced '<' (missing '>')");
    if (cur(p) != '>')
        return fail(p, "unexpected %s before '>'", describe(p));
    p->pos++;
    return PIGEON_OK;
}

/* ---- addresses, groups, lists (RFC 5322 3.4) ---- */

/* A mailbox starting at start: a name-addr when angle is set, else an addr-spec. */
static pigeon_err parse_mailbox(parser *p, const char *group, size_t start, int angle)
{
    pigeon_mailbox mb = {0};
    pg_buf name;
    pg_buf_init(&name);
    pigeon_err err = PIGEON_OK;
    p->pos = start;
    if (angle) {
        if ((err = scan_phrase(p, &name)) == PIGEON_OK &&
            (err = finish_name(p, &name, &mb.display_name)) == PIGEON_OK)
            err = parse_angle(p, &mb);
    } else if ((err = parse_local(p, &mb)) == PIGEON_OK) {
        err = parse_domain(p, &mb);
    }
    if (err == PIGEON_OK)
        err = check_limits(p, &mb);
    if (err == PIGEON_OK)
        err = skip_cfws(p, NULL);
    if (err == PIGEON_OK && !angle && cur(p) == '<')
        err = fail(p, "'@' before '<' (a display name containing '@' must be quoted)");
    else if (err == PIGEON_OK && cur(p) != 0 && cur(p) != ',' && !(group && cur(p) == ';'))
        err = fail(p, "unexpected %s after the address", describe(p));
    if (err == PIGEON_OK && group != NULL)
        mb.group = dup_or_null(group, &err);
    if (err == PIGEON_OK)
        err = list_push(p->list, &mb);
    pigeon_mailbox_cleanup(&mb);
    pg_buf_cleanup(&name);
    return err;
}

/* group = display-name ":" [group-list] ";" [CFWS]; start is the display name. */
static pigeon_err parse_group(parser *p, size_t start)
{
    pg_buf raw;
    pg_buf_init(&raw);
    char *name = NULL;
    size_t before = p->list->count;
    size_t group_elem = p->elem;
    p->pos = start;
    pigeon_err err = scan_phrase(p, &raw);
    if (err == PIGEON_OK)
        err = finish_name(p, &raw, &name);
    if (err == PIGEON_OK && name == NULL)
        err = fail(p, "group without a name before ':'");
    if (err != PIGEON_OK)
        goto done;
    p->pos++; /* ':' */
    for (;;) {
        int empty = 0;
        if ((err = parse_address(p, name, &empty)) != PIGEON_OK)
            goto done;
        if (cur(p) == ';')
            break;
        if (cur(p) == 0) {
            p->elem = group_elem;
            err = fail(p, "group \"%s\" is not closed with ';'", name);
            goto done;
        }
        p->pos++; /* ',' */
    }
    p->pos++; /* ';' */
    p->elem = group_elem;
    if ((err = skip_cfws(p, NULL)) != PIGEON_OK)
        goto done;
    if (cur(p) != 0 && cur(p) != ',') {
        err = fail(p, "unexpected %s after the group's ';'", describe(p));
        goto done;
    }
    if (p->list->count == before) {
        err = list_push_group(p->list, name);
        name = NULL;
    }
done:
    free(name);
    pg_buf_cleanup(&raw);
    return err;
}

/* address = mailbox / group. On return the cursor is at ',', end of input, or (in a
 * group) ';'. *empty is set for an empty list element. */
static pigeon_err parse_address(parser *p, const char *group, int *empty)
{
    pigeon_err err = skip_cfws(p, NULL);
    if (err != PIGEON_OK)
        return err;
    p->elem = p->pos;
    size_t start = p->pos;
    int c = cur(p);
    if (c == 0 || c == ',' || (group != NULL && c == ';')) {
        *empty = 1;
        return PIGEON_OK;
    }
    if ((err = scan_phrase(p, NULL)) != PIGEON_OK)
        return err;
    c = cur(p);
    if (c == '<' || c == '@')
        return parse_mailbox(p, group, start, c == '<');
    if (c == ':' && group != NULL)
        return fail(p, "a group cannot contain another group");
    if (c == ':' && p->single)
        return fail(p, "a group is not a single address");
    if (c == ':')
        return parse_group(p, start);
    if (p->pos == start)
        return fail(p, "unexpected %s", describe(p));
    if (c == 0 || c == ',' || c == ';')
        return fail(p, "missing '@' (expected local@domain or Name <local@domain>)");
    return fail(p, "unexpected %s", describe(p));
}

/* address-list = address *("," address), empty elements skipped. */
static pigeon_err parse_list(parser *p)
{
    pigeon_err err = check_input(p);
    while (err == PIGEON_OK) {
        int empty = 0;
        if ((err = parse_address(p, NULL, &empty)) != PIGEON_OK)
            break;
        if (cur(p) == 0)
            break;
        if (p->single)
            return fail(p, "expected one address, found a list (',')");
        p->pos++; /* ',' */
    }
    if (err == PIGEON_OK && p->list->count == 0 && p->list->empty_group_count == 0) {
        p->elem = 0;
        err = fail(p, "no address given");
    }
    return err;
}

/* ---- lists and mailboxes ---- */

/* Array capacity for n elements: 4, then powers of two. Arrays are allocated to this
 * capacity, so a push needs to grow only when count reaches it. */
static size_t grown_cap(size_t n)
{
    size_t cap = 4;
    while (cap < n)
        cap *= 2;
    return cap;
}

/* Moves *mb into the list (zeroing *mb) on success. */
static pigeon_err list_push(pigeon_address_list *l, pigeon_mailbox *mb)
{
    if (l->count == 0 || l->count == grown_cap(l->count)) {
        pigeon_mailbox *items = realloc(l->items, grown_cap(l->count + 1) * sizeof *items);
        if (items == NULL)
            return PIGEON_ERR_NOMEM;
        l->items = items;
    }
    l->items[l->count++] = *mb;
    memset(mb, 0, sizeof *mb);
    return PIGEON_OK;
}

/* Takes ownership of name, also on failure. */
static pigeon_err list_push_group(pigeon_address_list *l, char *name)
{
    size_t n = l->empty_group_count;
    if (n == 0 || n == grown_cap(n)) {
        char **groups = realloc(l->empty_groups, grown_cap(n + 1) * sizeof *groups);
        if (groups == NULL) {
            free(name);
            return PIGEON_ERR_NOMEM;
        }
        l->empty_groups = groups;
    }
    l->empty_groups[l->empty_group_count++] = name;
    return PIGEON_OK;
}

static char *dup_or_null(const char *s, pigeon_err *err)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *err = PIGEON_ERR_NOMEM;
    return d;
}

pigeon_err pigeon_address_list_parse(const char *in, pigeon_address_list *out, char *err,
                                     size_t errlen)
{
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    memset(out, 0, sizeof *out);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (in == NULL)
        return PIGEON_ERR_INVALID;
    parser p = {.in = in, .len = strlen(in), .err = err, .errlen = errlen, .list = out};
    pigeon_err rc = parse_list(&p);
    if (rc != PIGEON_OK) {
        if (rc == PIGEON_ERR_NOMEM && err != NULL && errlen > 0)
            snprintf(err, errlen, "out of memory while parsing addresses");
        pigeon_address_list_cleanup(out);
    }
    return rc;
}

pigeon_err pigeon_mailbox_parse(const char *in, pigeon_mailbox *out, char *err, size_t errlen)
{
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    memset(out, 0, sizeof *out);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (in == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_address_list list = {0};
    parser p = {.in = in, .len = strlen(in), .err = err, .errlen = errlen, .list = &list};
    p.single = 1;
    pigeon_err rc = parse_list(&p);
    if (rc == PIGEON_OK) {
        /* parse_list() refused groups and commas, so there is exactly one mailbox. */
        *out = list.items[0];
        list.count = 0;
    } else if (rc == PIGEON_ERR_NOMEM && err != NULL && errlen > 0) {
        snprintf(err, errlen, "out of memory while parsing an address");
    }
    pigeon_address_list_cleanup(&list);
    return rc;
}

pigeon_err pigeon_mailbox_copy(pigeon_mailbox *dst, const pigeon_mailbox *src)
{
    if (dst == NULL || src == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_err err = PIGEON_OK;
    memset(dst, 0, sizeof *dst);
    dst->display_name = dup_or_null(src->display_name, &err);
    dst->local = dup_or_null(src->local, &err);
    dst->domain = dup_or_null(src->domain, &err);
    dst->domain_ascii = dup_or_null(src->domain_ascii, &err);
    dst->group = dup_or_null(src->group, &err);
    if (err != PIGEON_OK)
        pigeon_mailbox_cleanup(dst);
    return err;
}

pigeon_err pigeon_address_list_append(pigeon_address_list *dst, const pigeon_address_list *src)
{
    if (dst == NULL || src == NULL)
        return PIGEON_ERR_INVALID;
    size_t n = dst->count + src->count;
    size_t g = dst->empty_group_count + src->empty_group_count;
    if (src->count > 0) {
        pigeon_mailbox *items = realloc(dst->items, grown_cap(n) * sizeof *items);
        if (items == NULL)
            return PIGEON_ERR_NOMEM;
        dst->items = items;
    }
    if (src->empty_group_count > 0) {
        char **groups = realloc(dst->empty_groups, grown_cap(g) * sizeof *groups);
        if (groups == NULL)
            return PIGEON_ERR_NOMEM;
        dst->empty_groups = groups;
    }
    /* Counts grow one element at a time so that a failure leaves dst consistent. */
    for (size_t i = 0; i < src->count; i++) {
        pigeon_err err = pigeon_mailbox_copy(&dst->items[dst->count], &src->items[i]);
        if (err != PIGEON_OK)
            return err;
        dst->count++;
    }
    for (size_t i = 0; i < src->empty_group_count; i++) {
        dst->empty_groups[dst->empty_group_count] = strdup(src->empty_groups[i]);
        if (dst->empty_groups[dst->empty_group_count] == NULL)
            return PIGEON_ERR_NOMEM;
        dst->empty_group_count++;
    }
    return PIGEON_OK;
}

void pigeon_mailbox_cleanup(pigeon_mailbox *mb)
{
    if (mb == NULL)
        return;
    free(mb->display_name);
    free(mb->local);
    free(mb->domain);
    free(mb->domain_ascii);
    free(mb->group);
    memset(mb, 0, sizeof *mb);
}

void pigeon_address_list_cleanup(pigeon_address_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        pigeon_mailbox_cleanup(&list->items[i]);
    for (size_t i = 0; i < list->empty_group_count; i++)
        free(list->empty_groups[i]);
    free(list->items);
    free(list->empty_groups);
    memset(list, 0, sizeof *list);
}
