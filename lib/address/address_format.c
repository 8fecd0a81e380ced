/*
 * address_format.c - writing addresses: the RFC 5321 4.1.2 path form (Dot-string or
 * Quoted-string local part, A-label or, with SMTPUTF8 (RFC 6531), U-label domain) and the
 * RFC 5322 3.4 header form (display names through RFC 2047, folding per RFC 5322 2.2.3).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address/address_int.h"
#include "util/buf.h"
#include "codec/encode.h"
#include "pigeon/address.h"

/* RFC 5322 2.1.1: lines SHOULD stay within 78 characters. */
#define LINE_MAX_COLS 78
/* Width of a piece that cannot stay on one line. */
#define WIDTH_FOLDED SIZE_MAX

static int local_valid(const char *local, int utf8);
static int domain_valid(const char *domain, int utf8);
static size_t mailbox_width(const pigeon_mailbox *mb, int utf8, pigeon_err *err);
static size_t phrase_width(const char *name, size_t extra, pigeon_err *err);
static void separate(pg_buf *out, size_t *col, const char *sep, size_t width);
static pigeon_err format_group(pg_buf *out, size_t *col, const pigeon_address_list *list, size_t *i,
                               int utf8, int first);
static pigeon_err format_empty_group(pg_buf *out, size_t *col, const char *name, int first);
static pigeon_err put_group_name(pg_buf *out, size_t *col, const char *name);

int pg_address_local_is_dot_string(const char *local)
{
    /* RFC 5321 4.1.2: Dot-string = Atom *("." Atom); Atom = 1*atext. */
    int at_atom_start = 1;
    for (const unsigned char *s = (const unsigned char *)local; *s != '\0'; s++) {
        if (*s == '.' && !at_atom_start) {
            at_atom_start = 1;
        } else if (pg_address_is_atext(*s)) {
            at_atom_start = 0;
        } else {
            return 0;
        }
    }
    return !at_atom_start;
}

size_t pg_address_local_wire_len(const char *local)
{
    size_t n = strlen(local);
    if (pg_address_local_is_dot_string(local))
        return n;
    size_t len = n + 2;
    for (size_t i = 0; i < n; i++)
        if (local[i] == '"' || local[i] == '\\')
            len++;
    return len;
}

/* No controls (RFC 5321 qtextSMTP and quoted-pairSMTP are printable), not empty, and
 * ASCII unless SMTPUTF8 (RFC 6531 3.3). */
static int local_valid(const char *local, int utf8)
{
    if (local == NULL || local[0] == '\0')
        return 0;
    for (const unsigned char *s = (const unsigned char *)local; *s != '\0'; s++)
        if (*s < 0x20 || *s == 0x7F || (*s >= 0x80 && !utf8))
            return 0;
    return 1;
}

/* The characters a normalized domain or address literal may hold. */
static int domain_valid(const char *domain, int utf8)
{
    if (domain == NULL || domain[0] == '\0')
        return 0;
    for (const unsigned char *s = (const unsigned char *)domain; *s != '\0'; s++)
        if (!(pg_address_is_atext(*s) || *s == '.' || *s == '[' || *s == ']' || *s == ':') ||
            (*s >= 0x80 && !utf8))
            return 0;
    return 1;
}

pigeon_err pigeon_mailbox_addr_spec(const pigeon_mailbox *mb, int utf8, char **out)
{
    if (mb == NULL || out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    const char *domain = utf8 ? mb->domain : mb->domain_ascii;
    if (!local_valid(mb->local, utf8) || !domain_valid(domain, utf8))
        return PIGEON_ERR_ADDRESS;
    pg_buf b;
    pg_buf_init(&b);
    if (pg_address_local_is_dot_string(mb->local)) {
        pg_buf_puts(&b, mb->local);
    } else {
        /* RFC 5321 4.1.2 Quoted-string: only '"' and '\' need a quoted-pair. */
        pg_buf_putc(&b, '"');
        for (const char *s = mb->local; *s != '\0'; s++) {
            if (*s == '"' || *s == '\\')
                pg_buf_putc(&b, '\\');
            pg_buf_putc(&b, *s);
        }
        pg_buf_putc(&b, '"');
    }
    pg_buf_putc(&b, '@');
    pg_buf_puts(&b, domain);
    pigeon_err err = b.err;
    *out = pg_buf_detach(&b, NULL);
    return *out != NULL ? PIGEON_OK : (err != PIGEON_OK ? err : PIGEON_ERR_NOMEM);
}

pigeon_err pg_mailbox_format(pg_buf *out, size_t *col, const pigeon_mailbox *mb, int utf8)
{
    char *spec = NULL;
    pigeon_err err = pigeon_mailbox_addr_spec(mb, utf8, &spec);
    if (err != PIGEON_OK)
        return err;
    size_t len = strlen(spec);
    if (mb->display_name == NULL || mb->display_name[0] == '\0') {
        pg_buf_append(out, spec, len);
        *col += len;
        goto done;
    }
    err = pg_ew_encode(out, col, mb->display_name, strlen(mb->display_name), PG_EW_PHRASE);
    if (err != PIGEON_OK)
        goto done;
    /* RFC 5322 2.2.3: fold at the white space before the angle-addr. */
    if (*col + 1 + len + 2 > LINE_MAX_COLS) {
        pg_buf_puts(out, "\r\n ");
        *col = 1;
    } else {
        pg_buf_putc(out, ' ');
        *col += 1;
    }
    pg_buf_putc(out, '<');
    pg_buf_append(out, spec, len);
    pg_buf_putc(out, '>');
    *col += len + 2;
done:
    free(spec);
    return err != PIGEON_OK ? err : out->err;
}

/* Characters the mailbox takes when written at the start of a folded line, or
 * WIDTH_FOLDED when it needs folds of its own. */
static size_t mailbox_width(const pigeon_mailbox *mb, int utf8, pigeon_err *err)
{
    pg_buf tmp;
    pg_buf_init(&tmp);
    size_t col = 1;
    *err = pg_mailbox_format(&tmp, &col, mb, utf8);
    size_t width = tmp.data != NULL && strstr(tmp.data, "\r\n") != NULL ? WIDTH_FOLDED : tmp.len;
    pg_buf_cleanup(&tmp);
    return width;
}

/* Same for a group name followed by up to extra characters (" :" or " :;"). */
static size_t phrase_width(const char *name, size_t extra, pigeon_err *err)
{
    pg_buf tmp;
    pg_buf_init(&tmp);
    size_t col = 1;
    *err = pg_ew_encode(&tmp, &col, name, strlen(name), PG_EW_PHRASE);
    size_t width =
        tmp.data != NULL && strstr(tmp.data, "\r\n") != NULL ? WIDTH_FOLDED : tmp.len + extra;
    pg_buf_cleanup(&tmp);
    return width;
}

/* Writes sep and then a space, or a fold when a piece of the given width would pass
 * column 78 (a piece that folds anyway starts on a fresh line). */
static void separate(pg_buf *out, size_t *col, const char *sep, size_t width)
{
    pg_buf_puts(out, sep);
    *col += strlen(sep);
    if (width != WIDTH_FOLDED && *col + 1 + width <= LINE_MAX_COLS) {
        pg_buf_putc(out, ' ');
        *col += 1;
    } else {
        pg_buf_puts(out, "\r\n ");
        *col = 1;
    }
}

/* The group's display name and its ':'. An encoded-word is followed by a space first:
 * RFC 2047 5(3) lets it stand for a word of the phrase, but parsers such as Python's
 * want white space after "?=" and the CFWS before ':' is free (RFC 5322 3.4). */
static pigeon_err put_group_name(pg_buf *out, size_t *col, const char *name)
{
    pigeon_err err = pg_ew_encode(out, col, name, strlen(name), PG_EW_PHRASE);
    if (err != PIGEON_OK)
        return err;
    if (out->len >= 2 && memcmp(out->data + out->len - 2, "?=", 2) == 0) {
        pg_buf_putc(out, ' ');
        *col += 1;
    }
    pg_buf_putc(out, ':');
    *col += 1;
    return out->err;
}

/* "Name: a, b;" for the run of mailboxes of one group starting at *i; *i moves past it. */
static pigeon_err format_group(pg_buf *out, size_t *col, const pigeon_address_list *list, size_t *i,
                               int utf8, int first)
{
    const char *name = list->items[*i].group;
    pigeon_err err = PIGEON_OK;
    if (name[0] == '\0')
        return PIGEON_ERR_ADDRESS; /* "display-name ':'" needs a name */
    size_t width = phrase_width(name, 2, &err);
    if (err != PIGEON_OK)
        return err;
    if (!first)
        separate(out, col, ",", width);
    if ((err = put_group_name(out, col, name)) != PIGEON_OK)
        return err;
    const char *sep = "";
    for (; *i < list->count && list->items[*i].group != NULL &&
           strcmp(list->items[*i].group, name) == 0;
         (*i)++) {
        width = mailbox_width(&list->items[*i], utf8, &err);
        if (err != PIGEON_OK)
            return err;
        separate(out, col, sep, width);
        if ((err = pg_mailbox_format(out, col, &list->items[*i], utf8)) != PIGEON_OK)
            return err;
        sep = ",";
    }
    pg_buf_putc(out, ';');
    *col += 1;
    return out->err;
}

/* "Name:;" (RFC 5322 3.4 group with no members). */
static pigeon_err format_empty_group(pg_buf *out, size_t *col, const char *name, int first)
{
    pigeon_err err = PIGEON_OK;
    if (name == NULL || name[0] == '\0')
        return PIGEON_ERR_ADDRESS;
    size_t width = phrase_width(name, 3, &err);
    if (err != PIGEON_OK)
        return err;
    if (!first)
        separate(out, col, ",", width);
    if ((err = put_group_name(out, col, name)) != PIGEON_OK)
        return err;
    pg_buf_putc(out, ';');
    *col += 1;
    return out->err;
}

pigeon_err pg_address_list_format(pg_buf *out, size_t *col, const pigeon_address_list *list,
                                  int utf8)
{
    pigeon_err err = PIGEON_OK;
    int first = 1;
    size_t i = 0;
    while (err == PIGEON_OK && i < list->count) {
        const pigeon_mailbox *mb = &list->items[i];
        if (mb->group != NULL) {
            err = format_group(out, col, list, &i, utf8, first);
        } else {
            size_t width = mailbox_width(mb, utf8, &err);
            if (err != PIGEON_OK)
                break;
            if (!first)
                separate(out, col, ",", width);
            err = pg_mailbox_format(out, col, mb, utf8);
            i++;
        }
        first = 0;
    }
    for (size_t g = 0; err == PIGEON_OK && g < list->empty_group_count; g++) {
        err = format_empty_group(out, col, list->empty_groups[g], first);
        first = 0;
    }
    return err != PIGEON_OK ? err : out->err;
}
