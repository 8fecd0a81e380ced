/*
 * message.c - the message builder: setters, validation, envelope.
 *
 * Implements the input side of pigeon/message.h. Every value that will end up in a header
 * is checked here, when the caller can still tell which call was wrong: CR, LF or NUL
 * anywhere (header injection, RFC 5322 2.2), invalid UTF-8, bad field names (RFC 5322
 * 3.6.8 ftext), msg-id syntax (RFC 5322 3.6.4), media type syntax (RFC 2045 5.1).
 * The envelope (RFC 5321 3.3) is derived from the headers: MAIL FROM is the Sender if
 * set, else the From; RCPT TO is To + Cc + Bcc without duplicates.
 * lib/mime/mime.c turns the message into bytes.
 */
#include "mime/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mime/charset.h"
#include "codec/encode.h"
#include "mime/mimetype.h"

/* A msg-id (without brackets) longer than this could push a header line past 998. */
#define MSGID_MAX 900
/* Longest filename, content id and content type accepted. */
#define NAME_MAX_LEN 1000
#define CID_MAX      250
#define CTYPE_MAX    200

static pigeon_err fail(pigeon_message *msg, pigeon_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static pigeon_err set_mailbox(pigeon_message *msg, const char *field, const char *in,
                              pigeon_mailbox *dst, int *has);
static pigeon_err add_list(pigeon_message *msg, const char *field, const char *in,
                           pigeon_address_list *dst, int envelope);
static pigeon_err add_rcpts(pigeon_message *msg, const pigeon_address_list *list);
static int same_addr(const pigeon_mailbox *a, const pigeon_mailbox *b);
static int msgid_valid(const char *s, size_t n);
static pigeon_err parse_msgids(pigeon_message *msg, const char *field, const char *in, char **dst);
static pigeon_err set_body(pigeon_message *msg, const char *what, const char *in, size_t len,
                           char **dst, size_t *dst_len, pg_text_stats *dst_stats);
static pigeon_err check_part_opts(pigeon_message *msg, const pigeon_part_opts *opts);
static pigeon_err add_part(pigeon_message *msg, pg_part *part, const pigeon_part_opts *opts,
                           const char *default_name);
static void part_cleanup(pg_part *part);
static char *dup_str(const char *s);

/* ---- lifecycle and errors ---- */

pigeon_message *pigeon_message_new(void)
{
    pigeon_message *msg = calloc(1, sizeof *msg);
    if (msg != NULL)
        msg->charset = "utf-8";
    return msg;
}

void pigeon_message_free(pigeon_message *msg)
{
    if (msg == NULL)
        return;
    pigeon_mailbox_cleanup(&msg->from);
    pigeon_mailbox_cleanup(&msg->sender);
    pigeon_address_list_cleanup(&msg->reply_to);
    pigeon_address_list_cleanup(&msg->to);
    pigeon_address_list_cleanup(&msg->cc);
    pigeon_address_list_cleanup(&msg->bcc);
    for (size_t i = 0; i < msg->rcpt_count; i++)
        pigeon_mailbox_cleanup(&msg->rcpts[i]);
    free(msg->rcpts);
    free(msg->subject);
    free(msg->message_id);
    free(msg->in_reply_to);
    free(msg->references);
    for (size_t i = 0; i < msg->header_count; i++) {
        free(msg->headers[i].name);
        free(msg->headers[i].value);
    }
    free(msg->headers);
    free(msg->text);
    free(msg->html);
    for (size_t i = 0; i < msg->part_count; i++)
        part_cleanup(&msg->parts[i]);
    free(msg->parts);
    free(msg);
}

const char *pigeon_message_error(const pigeon_message *msg)
{
    if (msg == NULL)
        return "no message";
    return msg->last_err != PIGEON_OK ? msg->errmsg : "";
}

pigeon_err pigeon_message_status(const pigeon_message *msg)
{
    if (msg == NULL)
        return PIGEON_ERR_INVALID;
    return msg->err != PIGEON_OK ? msg->err : msg->last_err;
}

/* Records a builder error; the first one is sticky and blocks writing. */
static pigeon_err fail(pigeon_message *msg, pigeon_err err, const char *fmt, ...)
{
    va_list ap;
    if (msg->err != PIGEON_OK)
        return msg->err;
    va_start(ap, fmt);
    vsnprintf(msg->errmsg, sizeof msg->errmsg, fmt, ap);
    va_end(ap);
    msg->err = err;
    msg->last_err = err;
    return err;
}

pigeon_err pg_message_fail(pigeon_message *msg, pigeon_err err, const char *fmt, ...)
{
    va_list ap;
    if (msg->err != PIGEON_OK)
        return msg->err;
    va_start(ap, fmt);
    vsnprintf(msg->errmsg, sizeof msg->errmsg, fmt, ap);
    va_end(ap);
    msg->last_err = err;
    return err;
}

/* Setters are no-ops after the first error (sticky), and refuse NULL handles/inputs. */
#define BEGIN(msg, arg)                                                                            \
    do {                                                                                           \
        if ((msg) == NULL)                                                                         \
            return PIGEON_ERR_INVALID;                                                             \
        if ((msg)->err != PIGEON_OK)                                                               \
            return (msg)->err;                                                                     \
        if ((arg) == NULL)                                                                         \
            return fail((msg), PIGEON_ERR_INVALID, "%s: NULL argument", __func__);                 \
    } while (0)

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

/* ---- originator and recipients ---- */

static pigeon_err set_mailbox(pigeon_message *msg, const char *field, const char *in,
                              pigeon_mailbox *dst, int *has)
{
    char why[160] = "";
    pigeon_mailbox mb;
    pigeon_err err = pigeon_mailbox_parse(in, &mb, why, sizeof why);
    if (err != PIGEON_OK)
        return fail(msg, err, "%s: %s", field, why[0] ? why : pigeon_strerror(err));
    pigeon_mailbox_cleanup(dst);
    *dst = mb;
    *has = 1;
    return PIGEON_OK;
}

pigeon_err pigeon_message_set_from(pigeon_message *msg, const char *mailbox)
{
    BEGIN(msg, mailbox);
    return set_mailbox(msg, "From", mailbox, &msg->from, &msg->has_from);
}

pigeon_err pigeon_message_set_sender(pigeon_message *msg, const char *mailbox)
{
    BEGIN(msg, mailbox);
    return set_mailbox(msg, "Sender", mailbox, &msg->sender, &msg->has_sender);
}

static pigeon_err add_list(pigeon_message *msg, const char *field, const char *in,
                           pigeon_address_list *dst, int envelope)
{
    char why[160] = "";
    pigeon_address_list list;
    pigeon_err err = pigeon_address_list_parse(in, &list, why, sizeof why);
    if (err != PIGEON_OK)
        return fail(msg, err, "%s: %s", field, why[0] ? why : pigeon_strerror(err));
    err = pigeon_address_list_append(dst, &list);
    if (err == PIGEON_OK && envelope)
        err = add_rcpts(msg, &list);
    pigeon_address_list_cleanup(&list);
    if (err != PIGEON_OK)
        return fail(msg, err, "%s: %s", field, pigeon_strerror(err));
    return PIGEON_OK;
}

pigeon_err pigeon_message_add_reply_to(pigeon_message *msg, const char *list)
{
    BEGIN(msg, list);
    return add_list(msg, "Reply-To", list, &msg->reply_to, 0);
}

pigeon_err pigeon_message_add_to(pigeon_message *msg, const char *list)
{
    BEGIN(msg, list);
    return add_list(msg, "To", list, &msg->to, 1);
}

pigeon_err pigeon_message_add_cc(pigeon_message *msg, const char *list)
{
    BEGIN(msg, list);
    return add_list(msg, "Cc", list, &msg->cc, 1);
}

pigeon_err pigeon_message_add_bcc(pigeon_message *msg, const char *list)
{
    BEGIN(msg, list);
    return add_list(msg, "Bcc", list, &msg->bcc, 1);
}

/* RFC 5321 2.4: the local part is case-sensitive (only the receiving host may fold it);
 * domains are not. */
static int same_addr(const pigeon_mailbox *a, const pigeon_mailbox *b)
{
    return strcmp(a->local, b->local) == 0 && strcasecmp(a->domain_ascii, b->domain_ascii) == 0;
}

static pigeon_err add_rcpts(pigeon_message *msg, const pigeon_address_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        int dup = 0;
        for (size_t j = 0; j < msg->rcpt_count && !dup; j++)
            dup = same_addr(&msg->rcpts[j], &list->items[i]);
        if (dup)
            continue;
        pigeon_mailbox *grown = realloc(msg->rcpts, (msg->rcpt_count + 1) * sizeof *grown);
        if (grown == NULL)
            return PIGEON_ERR_NOMEM;
        msg->rcpts = grown;
        memset(&msg->rcpts[msg->rcpt_count], 0, sizeof *grown);
        pigeon_err err = pigeon_mailbox_copy(&msg->rcpts[msg->rcpt_count], &list->items[i]);
        if (err != PIGEON_OK)
            return err;
        msg->rcpt_count++;
    }
    return PIGEON_OK;
}

const pigeon_mailbox *pigeon_message_envelope_from(const pigeon_message *msg)
{
    if (msg == NULL)
        return NULL;
    if (msg->has_sender)
        return &msg->sender;
    return msg->has_from ? &msg->from : NULL;
}

size_t pigeon_message_rcpt_count(const pigeon_message *msg)
{
    return msg != NULL ? msg->rcpt_count : 0;
}

const pigeon_mailbox *pigeon_message_rcpt(const pigeon_message *msg, size_t i)
{
    if (msg == NULL || i >= msg->rcpt_count)
        return NULL;
    return &msg->rcpts[i];
}

pigeon_err pigeon_message_rcpt_remove(pigeon_message *msg, size_t i)
{
    if (msg == NULL || i >= msg->rcpt_count)
        return PIGEON_ERR_INVALID;
    pigeon_mailbox_cleanup(&msg->rcpts[i]);
    memmove(&msg->rcpts[i], &msg->rcpts[i + 1], (msg->rcpt_count - i - 1) * sizeof *msg->rcpts);
    msg->rcpt_count--;
    return PIGEON_OK;
}

/* ---- other header fields ---- */

/* Checks a UTF-8 header value: no CR, LF or NUL (header injection), valid UTF-8. */
static pigeon_err check_value(pigeon_message *msg, const char *field, const char *v, size_t n)
{
    if (pg_has_ctl_breaks(v, n))
        return fail(msg, PIGEON_ERR_HEADER, "%s: CR, LF or NUL in the value", field);
    if (!pg_utf8_valid(v, n))
        return fail(msg, PIGEON_ERR_CHARSET, "%s: invalid UTF-8", field);
    return PIGEON_OK;
}

pigeon_err pigeon_message_set_subject(pigeon_message *msg, const char *subject)
{
    BEGIN(msg, subject);
    if (check_value(msg, "Subject", subject, strlen(subject)) != PIGEON_OK)
        return msg->err;
    char *copy = dup_str(subject);
    if (copy == NULL)
        return fail(msg, PIGEON_ERR_NOMEM, "Subject: out of memory");
    free(msg->subject);
    msg->subject = copy;
    return PIGEON_OK;
}

pigeon_err pigeon_message_set_date(pigeon_message *msg, time_t when)
{
    if (msg == NULL)
        return PIGEON_ERR_INVALID;
    if (msg->err != PIGEON_OK)
        return msg->err;
    msg->date = when;
    msg->has_date = 1;
    return PIGEON_OK;
}

/* RFC 5322 3.2.3 atext. */
static int is_atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* dot-atom-text: atext runs separated by single dots. */
static int dot_atom_valid(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.' ? s[i + 1] == '.' : !is_atext((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

/* RFC 5322 3.6.4: id-left "@" id-right, id-left a dot-atom-text, id-right a dot-atom-text
 * or a no-fold-literal "[" dtext "]". s has no angle brackets. */
static int msgid_valid(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (at == NULL || n > MSGID_MAX)
        return 0;
    size_t left = (size_t)(at - s), right = n - left - 1;
    if (!dot_atom_valid(s, left))
        return 0;
    if (right >= 2 && at[1] == '[' && s[n - 1] == ']') {
        for (size_t i = 2; i < right; i++) {
            unsigned char c = (unsigned char)at[i];
            if (c < 33 || c > 126 || c == '[' || c == ']' || c == '\\')
                return 0;
        }
        return 1;
    }
    return dot_atom_valid(at + 1, right);
}

pigeon_err pigeon_message_set_message_id(pigeon_message *msg, const char *msg_id)
{
    BEGIN(msg, msg_id);
    size_t n = strlen(msg_id);
    const char *id = msg_id;
    if (n >= 2 && msg_id[0] == '<' && msg_id[n - 1] == '>') {
        id++;
        n -= 2;
    }
    if (!msgid_valid(id, n))
        return fail(msg, PIGEON_ERR_HEADER, "Message-ID: not a valid msg-id <left@right>");
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return fail(msg, PIGEON_ERR_NOMEM, "Message-ID: out of memory");
    memcpy(copy, id, n);
    copy[n] = '\0';
    free(msg->message_id);
    msg->message_id = copy;
    return PIGEON_OK;
}

pigeon_err pg_message_ensure_id(pigeon_message *msg)
{
    /* 128 bits in base32 (RFC 4648 6, lower case): 26 characters, no padding. */
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char raw[16];
    char left[27];
    pg_buf id;
    if (msg->message_id != NULL)
        return PIGEON_OK;
    if (!msg->has_from)
        return PIGEON_ERR_INVALID;
    if (pg_mime_random_bytes(raw, sizeof raw) != PIGEON_OK)
        return PIGEON_ERR_IO;
    for (size_t i = 0; i < 26; i++) {
        size_t bit = i * 5, byte = bit / 8, shift = bit % 8;
        unsigned v = (unsigned)raw[byte] << 8 | (byte + 1 < sizeof raw ? raw[byte + 1] : 0);
        left[i] = b32[(v >> (11 - shift)) & 31];
    }
    left[26] = '\0';
    pg_buf_init(&id);
    pg_buf_append(&id, left, 26);
    pg_buf_putc(&id, '@');
    pg_buf_puts(&id, msg->from.domain_ascii);
    msg->message_id = pg_buf_detach(&id, NULL);
    return msg->message_id != NULL ? PIGEON_OK : PIGEON_ERR_NOMEM;
}

const char *pigeon_message_get_message_id(pigeon_message *msg)
{
    if (msg == NULL || pg_message_ensure_id(msg) != PIGEON_OK)
        return NULL;
    return msg->message_id;
}

/* Parses one or more "<id>" separated by white space into "<a@b> <c@d>". */
static pigeon_err parse_msgids(pigeon_message *msg, const char *field, const char *in, char **dst)
{
    pg_buf out;
    const char *p = in;
    if (pg_has_ctl_breaks(in, strlen(in)))
        return fail(msg, PIGEON_ERR_HEADER, "%s: CR, LF or NUL in the value", field);
    pg_buf_init(&out);
    while (*p != '\0') {
        if (*p == ' ' || *p == '\t') {
            p++;
            continue;
        }
        const char *end = strchr(p, '>');
        if (*p != '<' || end == NULL || !msgid_valid(p + 1, (size_t)(end - p - 1))) {
            pg_buf_cleanup(&out);
            return fail(msg, PIGEON_ERR_HEADER, "%s: not a list of <left@right> msg-ids", field);
        }
        if (out.len > 0)
            pg_buf_putc(&out, ' ');
        pg_buf_append(&out, p, (size_t)(end - p + 1));
        p = end + 1;
    }
    if (out.len == 0) {
        pg_buf_cleanup(&out);
        return fail(msg, PIGEON_ERR_HEADER, "%s: no msg-id", field);
    }
    char *s = pg_buf_detach(&out, NULL);
    if (s == NULL)
        return fail(msg, PIGEON_ERR_NOMEM, "%s: out of memory", field);
    free(*dst);
    *dst = s;
    return PIGEON_OK;
}

pigeon_err pigeon_message_set_in_reply_to(pigeon_message *msg, const char *msg_ids)
{
    BEGIN(msg, msg_ids);
    return parse_msgids(msg, "In-Reply-To", msg_ids, &msg->in_reply_to);
}

pigeon_err pigeon_message_set_references(pigeon_message *msg, const char *msg_ids)
{
    BEGIN(msg, msg_ids);
    return parse_msgids(msg, "References", msg_ids, &msg->references);
}

/* Fields the builder writes itself: a second From or Date (or a Content-Type that
 * contradicts the structure) must not come in through add_header. */
static int builder_owned(const char *name)
{
    static const char *const owned[] = {
        "From",    "Sender", "To",         "Cc",          "Bcc",        "Reply-To",
        "Subject", "Date",   "Message-ID", "In-Reply-To", "References", "MIME-Version",
    };
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        if (strcasecmp(name, owned[i]) == 0)
            return 1;
    }
    return strncasecmp(name, "Content-", 8) == 0;
}

pigeon_err pigeon_message_add_header(pigeon_message *msg, const char *name, const char *value)
{
    BEGIN(msg, name);
    BEGIN(msg, value);
    if (!pg_header_name_valid(name))
        return fail(msg, PIGEON_ERR_HEADER, "header name is not RFC 5322 ftext (1..76 chars)");
    if (builder_owned(name))
        return fail(msg, PIGEON_ERR_HEADER, "%s: set by the builder, not a custom header", name);
    if (check_value(msg, name, value, strlen(value)) != PIGEON_OK)
        return msg->err;
    pg_header *grown = realloc(msg->headers, (msg->header_count + 1) * sizeof *grown);
    if (grown == NULL)
        return fail(msg, PIGEON_ERR_NOMEM, "%s: out of memory", name);
    msg->headers = grown;
    grown[msg->header_count].name = dup_str(name);
    grown[msg->header_count].value = dup_str(value);
    if (grown[msg->header_count].name == NULL || grown[msg->header_count].value == NULL) {
        free(grown[msg->header_count].name);
        free(grown[msg->header_count].value);
        return fail(msg, PIGEON_ERR_NOMEM, "%s: out of memory", name);
    }
    msg->header_count++;
    return PIGEON_OK;
}

/* ---- bodies ---- */

/* The UTF-8 check and the scan that chooses the transfer encoding are one pass, kept with
 * the body so that each write does not scan it again. */
static pigeon_err set_body(pigeon_message *msg, const char *what, const char *in, size_t len,
                           char **dst, size_t *dst_len, pg_text_stats *dst_stats)
{
    pg_text_stats stats;
    if (len == (size_t)-1)
        len = strlen(in);
    if (pg_text_scan(in, len, PG_SCAN_UTF8 | PG_SCAN_NORMALIZE, &stats) != 0)
        return fail(msg, PIGEON_ERR_CHARSET, "%s body: invalid UTF-8", what);
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return fail(msg, PIGEON_ERR_NOMEM, "%s body: out of memory", what);
    memcpy(copy, in, len);
    copy[len] = '\0';
    free(*dst);
    *dst = copy;
    *dst_len = len;
    *dst_stats = stats;
    return PIGEON_OK;
}

pigeon_err pigeon_message_set_text(pigeon_message *msg, const char *text, size_t len)
{
    BEGIN(msg, text);
    return set_body(msg, "text", text, len, &msg->text, &msg->text_len, &msg->text_stats);
}

pigeon_err pigeon_message_set_html(pigeon_message *msg, const char *html, size_t len)
{
    BEGIN(msg, html);
    return set_body(msg, "html", html, len, &msg->html, &msg->html_len, &msg->html_stats);
}

pigeon_err pigeon_message_set_charset(pigeon_message *msg, const char *charset)
{
    BEGIN(msg, charset);
    const char *canonical = pg_charset_canonical(charset);
    if (canonical == NULL)
        return fail(msg, PIGEON_ERR_CHARSET, "unsupported charset (utf-8, gb18030, gbk)");
    msg->charset = canonical;
    return PIGEON_OK;
}

/* ---- attachments ---- */

/* RFC 2045 5.1 token: printable ASCII but SPACE and tspecials. */
static int token_valid(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?=", c) != NULL)
            return 0;
    }
    return 1;
}

/* "type/subtype" only; parameters are the builder's (name=, charset=, boundary=). */
static int content_type_valid(const char *ct)
{
    const char *slash = strchr(ct, '/');
    size_t n = strlen(ct);
    if (slash == NULL || n > CTYPE_MAX)
        return 0;
    if (!token_valid(ct, (size_t)(slash - ct)) || !token_valid(slash + 1, strlen(slash + 1)))
        return 0;
    /* A multipart body must be built by the composer (RFC 2046 5.1: its boundary must
     * not occur in the content), never passed in as opaque bytes. */
    return strncasecmp(ct, "multipart/", 10) != 0;
}

/* RFC 2392: a content id is a msg-id; we also accept the bare "logo" style that HTML
 * authors use, as long as it is printable ASCII without brackets, quotes or spaces.
 * "=?" is refused too: a msg-id is no place for an RFC 2047 encoded-word (RFC 2047 5),
 * yet some parsers (Python's email package) decode one there, so
 * "i=?UTF-8?B?DQpCY2M6IHg=?=.png" would read back as a CR LF "Bcc: x" line. */
static int content_id_valid(const char *s, size_t n)
{
    if (n == 0 || n > CID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 32 || c >= 127 || c == '<' || c == '>' || c == '"' || c == '\\')
            return 0;
        if (c == '=' && i + 1 < n && s[i + 1] == '?')
            return 0;
    }
    return 1;
}

static pigeon_err check_part_opts(pigeon_message *msg, const pigeon_part_opts *opts)
{
    if (opts == NULL)
        return PIGEON_OK;
    if (opts->filename != NULL) {
        size_t n = strlen(opts->filename);
        if (check_value(msg, "attachment filename", opts->filename, n) != PIGEON_OK)
            return msg->err;
        if (n == 0 || n > NAME_MAX_LEN)
            return fail(msg, PIGEON_ERR_HEADER, "attachment filename: empty or too long");
    }
    if (opts->content_type != NULL) {
        if (pg_has_ctl_breaks(opts->content_type, strlen(opts->content_type)))
            return fail(msg, PIGEON_ERR_HEADER, "content type: CR, LF or NUL");
        if (!content_type_valid(opts->content_type))
            return fail(msg, PIGEON_ERR_HEADER, "content type: not a valid type/subtype");
    }
    if (opts->content_id != NULL) {
        const char *cid = opts->content_id;
        size_t n = strlen(cid);
        if (pg_has_ctl_breaks(cid, n))
            return fail(msg, PIGEON_ERR_HEADER, "content id: CR, LF or NUL");
        if (n >= 2 && cid[0] == '<' && cid[n - 1] == '>') {
            cid++;
            n -= 2;
        }
        if (!content_id_valid(cid, n))
            return fail(msg, PIGEON_ERR_HEADER,
                        "content id: not printable ASCII without <>\"\\ and \"=?\"");
    }
    return PIGEON_OK;
}

static void part_cleanup(pg_part *part)
{
    free(part->path);
    free(part->data);
    free(part->filename);
    free(part->content_type);
    free(part->content_id);
    memset(part, 0, sizeof *part);
}

/* Fills in names and type from opts, then appends part to the message (taking what it
 * owns, also on failure). */
static pigeon_err add_part(pigeon_message *msg, pg_part *part, const pigeon_part_opts *opts,
                           const char *default_name)
{
    const char *name = opts && opts->filename ? opts->filename : default_name;
    const char *ct = opts && opts->content_type ? opts->content_type : pg_mimetype_guess(name);
    int nomem = 0;
    if (name != NULL)
        nomem |= (part->filename = dup_str(name)) == NULL;
    nomem |= (part->content_type = dup_str(ct)) == NULL;
    if (opts != NULL && opts->content_id != NULL) {
        const char *cid = opts->content_id;
        size_t n = strlen(cid);
        if (cid[0] == '<') {
            cid++;
            n -= 2;
        }
        part->content_id = malloc(n + 1);
        if (part->content_id != NULL) {
            memcpy(part->content_id, cid, n);
            part->content_id[n] = '\0';
        }
        nomem |= part->content_id == NULL;
    }
    pg_part *grown = nomem ? NULL : realloc(msg->parts, (msg->part_count + 1) * sizeof *grown);
    if (grown == NULL) {
        part_cleanup(part);
        return fail(msg, PIGEON_ERR_NOMEM, "attachment: out of memory");
    }
    msg->parts = grown;
    grown[msg->part_count++] = *part;
    return PIGEON_OK;
}

/* The last path component (a file's default name as the recipient sees it). */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL && slash[1] != '\0' ? slash + 1 : path;
}

pigeon_err pigeon_message_attach_file(pigeon_message *msg, const char *path,
                                      const pigeon_part_opts *opts)
{
    struct stat st;
    pg_part part = {0};
    BEGIN(msg, path);
    if (check_part_opts(msg, opts) != PIGEON_OK)
        return msg->err;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(msg, PIGEON_ERR_NOTFOUND, "cannot open %s: %s", path, strerror(errno));
    int is_regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!is_regular)
        return fail(msg, PIGEON_ERR_NOTFOUND, "%s: not a regular file", path);
    const char *name = base_name(path);
    if (check_value(msg, "attachment filename", name, strlen(name)) != PIGEON_OK)
        return msg->err;
    part.kind = PG_PART_FILE;
    part.path = dup_str(path);
    if (part.path == NULL)
        return fail(msg, PIGEON_ERR_NOMEM, "attachment: out of memory");
    return add_part(msg, &part, opts, name);
}

pigeon_err pigeon_message_attach_buffer(pigeon_message *msg, const void *data, size_t len,
                                        const pigeon_part_opts *opts)
{
    pg_part part = {0};
    if (msg == NULL)
        return PIGEON_ERR_INVALID;
    if (msg->err != PIGEON_OK)
        return msg->err;
    if (data == NULL && len > 0)
        return fail(msg, PIGEON_ERR_INVALID, "attachment: NULL data");
    if (check_part_opts(msg, opts) != PIGEON_OK)
        return msg->err;
    part.kind = PG_PART_BUFFER;
    part.data = malloc(len + 1);
    if (part.data == NULL)
        return fail(msg, PIGEON_ERR_NOMEM, "attachment: out of memory");
    if (len > 0)
        memcpy(part.data, data, len);
    part.len = len;
    return add_part(msg, &part, opts, NULL);
}

pigeon_err pigeon_message_attach_stream(pigeon_message *msg, pigeon_read_fn read, void *ctx,
                                        int64_t size, const pigeon_part_opts *opts)
{
    pg_part part = {0};
    BEGIN(msg, read);
    if (check_part_opts(msg, opts) != PIGEON_OK)
        return msg->err;
    if (size < -1)
        return fail(msg, PIGEON_ERR_INVALID, "attachment stream: negative size");
    part.kind = PG_PART_STREAM;
    part.read = read;
    part.ctx = ctx;
    part.size = size;
    return add_part(msg, &part, opts, NULL);
}
