/*
 * pigeon/address.h - RFC 5322 mailboxes and address lists, RFC 5321 paths.
 *
 * Parses what users type ("Zhang, San" <a@b.cn>, 张三 <a@qq.com>, a@b.cn, groups such as
 * "Team: a@x.cn, b@y.cn;") into mailboxes whose envelope address is exactly the address
 * the header will show. Inputs that could be read two ways ("a@evil x"@ok.com, a@b@c,
 * "x@y" <ok@z> with a quoted display name that looks like an address is fine; the
 * address in angle brackets wins) are either parsed exactly or refused.
 *
 * Limits (RFC 5321 4.5.3.1): local part <= 64 octets, domain <= 255 octets,
 * path (local@domain) <= 254 octets so that "<path>" fits 256.
 * International domains (IDNA2008, libidn2) are kept in both forms: the A-label form
 * goes on the wire unless the server offers SMTPUTF8.
 *
 * Thread safety: all functions are reentrant; objects are not shared.
 */
#ifndef PIGEON_ADDRESS_H
#define PIGEON_ADDRESS_H

#include <stddef.h>

#include "pigeon/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One mailbox. Every string is NUL-terminated UTF-8, owned by the struct. */
typedef struct pigeon_mailbox {
    char *display_name; /* decoded display name ("Zhang, San", "张三"), or NULL if none */
    char *local;        /* local part, unquoted form (the value, without quoting) */
    char *domain;       /* domain as given, lower-cased, in Unicode (U-label) form */
    char *domain_ascii; /* domain in A-label (xn--) form; equal to domain when ASCII */
    char *group;        /* name of the group the mailbox was listed in, or NULL */
} pigeon_mailbox;

/* A list of mailboxes, in input order. */
typedef struct pigeon_address_list {
    pigeon_mailbox *items;    /* array of count mailboxes, owned */
    size_t count;             /* number of mailboxes */
    char **empty_groups;      /* names of groups listed with no members ("undisclosed:;") */
    size_t empty_group_count; /* number of empty_groups */
} pigeon_address_list;

/*
 * Parses exactly one mailbox ("Name <local@domain>" or "local@domain").
 * in: NUL-terminated UTF-8; may not be NULL. On success *out is filled and must be
 * released with pigeon_mailbox_cleanup(). err/errlen (may be NULL/0) receive a one-line
 * reason on failure. Returns PIGEON_ERR_ADDRESS for invalid input (including CR, LF,
 * NUL, invalid UTF-8, RFC 5321 length limits, an address in a group), PIGEON_ERR_NOMEM.
 */
pigeon_err pigeon_mailbox_parse(const char *in, pigeon_mailbox *out, char *err, size_t errlen);

/*
 * Parses an RFC 5322 address-list: mailboxes and groups separated by commas.
 * An empty or all-blank input is PIGEON_ERR_ADDRESS. Same ownership and errors as
 * pigeon_mailbox_parse(); release with pigeon_address_list_cleanup().
 */
pigeon_err pigeon_address_list_parse(const char *in, pigeon_address_list *out, char *err,
                                     size_t errlen);

/* Appends copies of src's mailboxes and empty groups to dst. */
pigeon_err pigeon_address_list_append(pigeon_address_list *dst, const pigeon_address_list *src);

/*
 * The addr-spec as it goes in an SMTP path and a header: local@domain, with the local
 * part quoted (RFC 5321 4.1.2 Quoted-string) only when it is not a Dot-string.
 * utf8: nonzero for the Unicode domain (server offers SMTPUTF8), zero for A-labels.
 * *out is malloc'd, freed by the caller. Returns PIGEON_ERR_ADDRESS if the mailbox
 * has a non-ASCII local part and utf8 is zero, PIGEON_ERR_NOMEM.
 */
pigeon_err pigeon_mailbox_addr_spec(const pigeon_mailbox *mb, int utf8, char **out);

/* Deep copy; dst must be unset. */
pigeon_err pigeon_mailbox_copy(pigeon_mailbox *dst, const pigeon_mailbox *src);

/* Releases what the struct owns and zeroes it. NULL is a no-op. */
void pigeon_mailbox_cleanup(pigeon_mailbox *mb);
void pigeon_address_list_cleanup(pigeon_address_list *list);

#ifdef __cplusplus
}
#endif
#endif
