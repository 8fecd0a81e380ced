/*
 * mime_header.c - the message's own header block (RFC 5322 3.6), for the MIME composer.
 *
 * Date (3.3, in UTC), the address fields From, Sender, Reply-To, To, Cc (3.6.2, 3.6.3; Bcc
 * never), Subject and custom fields encoded by RFC 2047, Message-ID, In-Reply-To and
 * References (3.6.4), MIME-Version (RFC 2045 4), in that order. UTF-8 local parts only with
 * SMTPUTF8 (RFC 6531 3.3, RFC 6532).
 */
#include "mime/mime.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "address/address_int.h"
#include "codec/encode.h"

/* RFC 5322 2.1.1: lines SHOULD be at most 78 characters. */
#define LINE_SOFT 78

/* Writes v (0 <= v < 10^width) as width decimal digits with leading zeros. */
static void put_digits(char *dst, int v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        dst[i] = (char)('0' + v % 10);
}

/* RFC 5322 3.3 date-time, in UTC ("+0000"): the library does not read TZ. */
static void put_date(pg_buf *out, time_t when)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (gmtime_r(&when, &tm) == NULL) {
        out->err = out->err ? out->err : PIGEON_ERR_INVALID;
        return;
    }
    int year = tm.tm_year + 1900;
    if (year < 0 || year > 9999) { /* not worth a fast path */
        pg_buf_printf(out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday],
                      tm.tm_mday, months[tm.tm_mon], year, tm.tm_hour, tm.tm_min, tm.tm_sec);
        return;
    }
    /* "Date: Tue, 14 Nov 2023 22:13:20 +0000" CRLF, digits by hand (no printf per field). */
    char line[] = "Date: Ddd, 00 Mmm 0000 00:00:00 +0000\r\n";
    memcpy(line + 6, days[tm.tm_wday], 3);
    put_digits(line + 11, tm.tm_mday, 2);
    memcpy(line + 14, months[tm.tm_mon], 3);
    put_digits(line + 18, year, 4);
    put_digits(line + 23, tm.tm_hour, 2);
    put_digits(line + 26, tm.tm_min, 2);
    put_digits(line + 29, tm.tm_sec, 2);
    pg_buf_append(out, line, sizeof line - 1);
}

/* An address list field, omitted when empty. */
static pigeon_err put_list(pg_buf *out, const char *name, const pigeon_address_list *list, int utf8)
{
    size_t col = strlen(name) + 2;
    pigeon_err err;
    if (list->count == 0 && list->empty_group_count == 0)
        return PIGEON_OK;
    pg_buf_puts(out, name);
    pg_buf_append(out, ": ", 2);
    if ((err = pg_address_list_format(out, &col, list, utf8)) != PIGEON_OK)
        return err;
    return pg_buf_puts(out, "\r\n");
}

static pigeon_err put_mailbox(pg_buf *out, const char *name, const pigeon_mailbox *mb, int utf8)
{
    size_t col = strlen(name) + 2;
    pigeon_err err;
    pg_buf_puts(out, name);
    pg_buf_append(out, ": ", 2);
    if ((err = pg_mailbox_format(out, &col, mb, utf8)) != PIGEON_OK)
        return err;
    return pg_buf_puts(out, "\r\n");
}

/* In-Reply-To / References: msg-ids folded between ids (RFC 5322 3.6.4 allows CFWS). */
static void put_msgids(pg_buf *out, const char *name, const char *ids)
{
    size_t col = strlen(name) + 1;
    pg_buf_puts(out, name);
    pg_buf_putc(out, ':');
    while (*ids != '\0') {
        const char *end = strchr(ids, ' ');
        size_t n = end ? (size_t)(end - ids) : strlen(ids);
        if (col > strlen(name) + 1 && col + 1 + n > LINE_SOFT) {
            pg_buf_puts(out, "\r\n");
            col = 0;
        }
        pg_buf_putc(out, ' ');
        pg_buf_append(out, ids, n);
        col += 1 + n;
        ids += n + (end != NULL);
    }
    pg_buf_puts(out, "\r\n");
}

/*
 * The list fields of RFC 2369 (List-Unsubscribe, List-Help, ...), RFC 2919 (List-Id) and
 * RFC 8058 (List-Unsubscribe-Post) are structured: URLs in angle brackets, which an
 * encoded-word would break. Printable ASCII values with no word too long for a line
 * (998) are folded at their spaces and never encoded; anything else is unstructured text.
 */
static int list_field(const char *name, const char *value)
{
    size_t word = 0;
    if (strncasecmp(name, "List-", 5) != 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p < 0x20 || *p > 0x7e)
            return 0;
        word = *p == ' ' ? 0 : word + 1;
        if (word > 900)
            return 0;
    }
    return 1;
}

/* RFC 6531 3.3: a non-ASCII local part can only travel with SMTPUTF8. */
static int needs_smtputf8(const pigeon_mailbox *mb)
{
    for (const char *p = mb->local; *p != '\0'; p++) {
        if ((unsigned char)*p >= 0x80)
            return 1;
    }
    return 0;
}

static int list_needs_smtputf8(const pigeon_address_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        if (needs_smtputf8(&list->items[i]))
            return 1;
    }
    return 0;
}

pigeon_err pg_mime_check_smtputf8(pigeon_message *msg, int smtputf8)
{
    if (smtputf8)
        return PIGEON_OK;
    if (needs_smtputf8(&msg->from) || (msg->has_sender && needs_smtputf8(&msg->sender)) ||
        list_needs_smtputf8(&msg->reply_to) || list_needs_smtputf8(&msg->to) ||
        list_needs_smtputf8(&msg->cc))
        return pg_message_fail(msg, PIGEON_ERR_ADDRESS,
                               "a non-ASCII local part needs SMTPUTF8 (RFC 6531)");
    return PIGEON_OK;
}

/* The address fields, in the documented order (Bcc never: RFC 5322 3.6.3 allows leaving
 * it out, and the recipients must not see each other's blind copies). */
static pigeon_err address_fields(pg_buf *out, const pigeon_message *msg, int utf8)
{
    pigeon_err err = put_mailbox(out, "From", &msg->from, utf8);
    if (err == PIGEON_OK && msg->has_sender)
        err = put_mailbox(out, "Sender", &msg->sender, utf8);
    if (err == PIGEON_OK)
        err = put_list(out, "Reply-To", &msg->reply_to, utf8);
    if (err == PIGEON_OK)
        err = put_list(out, "To", &msg->to, utf8);
    if (err == PIGEON_OK)
        err = put_list(out, "Cc", &msg->cc, utf8);
    return err;
}

/* The message's own header fields, in the documented order, up to MIME-Version. */
pigeon_err pg_mime_header_block(pg_buf *out, pigeon_message *msg, int smtputf8)
{
    pigeon_err err;
    put_date(out, msg->date);
    if ((err = address_fields(out, msg, smtputf8 != 0)) != PIGEON_OK)
        return pg_message_fail(msg, err, "cannot write the address fields: %s",
                               pigeon_strerror(err));
    if (msg->subject != NULL)
        pg_header_unstructured(out, "Subject", msg->subject);
    pg_buf_puts(out, "Message-ID: <");
    pg_buf_puts(out, msg->message_id);
    pg_buf_puts(out, ">\r\n");
    if (msg->in_reply_to != NULL)
        put_msgids(out, "In-Reply-To", msg->in_reply_to);
    if (msg->references != NULL)
        put_msgids(out, "References", msg->references);
    for (size_t i = 0; i < msg->header_count; i++) {
        if (list_field(msg->headers[i].name, msg->headers[i].value))
            put_msgids(out, msg->headers[i].name, msg->headers[i].value);
        else
            pg_header_unstructured(out, msg->headers[i].name, msg->headers[i].value);
    }
    pg_buf_puts(out, "MIME-Version: 1.0\r\n");
    if (out->err != PIGEON_OK)
        return pg_message_fail(msg, out->err, "cannot format the header: %s",
                               pigeon_strerror(out->err));
    return PIGEON_OK;
}
