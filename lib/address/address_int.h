/*
 * address_int.h - address helpers shared inside the library (internal).
 *
 * The header-side writers used by the MIME writer for From, To, Cc and Reply-To
 * (RFC 5322 3.4 mailbox / address-list, RFC 2047 display names, RFC 5322 2.2.3 folding),
 * and the RFC 5321 4.1.2 local-part rules the parser and the writers share.
 */
#ifndef PG_ADDRESS_INT_H
#define PG_ADDRESS_INT_H

#include <stddef.h>

#include "util/buf.h"
#include "pigeon/address.h"

/* RFC 5322 3.2.3 atext, widened by RFC 6532 3.2 to every byte of a UTF-8 sequence. */
static inline int pg_address_is_atext(unsigned char c)
{
    if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
        return 1;
    default:
        return 0;
    }
}

/* Nonzero if local is an RFC 5321 Dot-string (atoms separated by single dots; with
 * RFC 6531, atoms may hold UTF-8). */
int pg_address_local_is_dot_string(const char *local);

/* Octets the local part takes in a path: itself as a Dot-string, else as a
 * Quoted-string with '\' and '"' escaped (RFC 5321 4.1.2, 4.5.3.1.1). */
size_t pg_address_local_wire_len(const char *local);

/*
 * Appends the mailbox as it appears in a header field whose current line already has *col
 * characters: the display name through pg_ew_encode(PG_EW_PHRASE) then " <addr-spec>",
 * folding (CRLF SP) before '<' when the line would pass 78 columns; without a display
 * name just the addr-spec. *col is updated. utf8: nonzero to write the U-label domain and
 * a UTF-8 local part (RFC 6532, the server offers SMTPUTF8).
 * Returns PIGEON_ERR_ADDRESS (non-ASCII local part without utf8, a malformed mailbox),
 * PIGEON_ERR_HEADER or PIGEON_ERR_CHARSET from the display name, PIGEON_ERR_NOMEM.
 */
pigeon_err pg_mailbox_format(pg_buf *out, size_t *col, const pigeon_mailbox *mb, int utf8);

/*
 * Appends the list as an RFC 5322 address-list: ", " between items, folding between items
 * where the line would pass 78 columns; consecutive mailboxes of the same group are written
 * "Name: a, b;" and the list's empty groups "Name:;" after the mailboxes. Same errors as
 * pg_mailbox_format(); an empty list appends nothing.
 */
pigeon_err pg_address_list_format(pg_buf *out, size_t *col, const pigeon_address_list *list,
                                  int utf8);

#endif
