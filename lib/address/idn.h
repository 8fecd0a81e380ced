/*
 * idn.h - domain normalization for addresses (internal).
 *
 * Turns the domain of an addr-spec, as typed, into the two forms pigeon keeps:
 * the U-label form for display and SMTPUTF8 (RFC 6531), the A-label form for
 * everything else (RFC 5890, IDNA2008 through libidn2 with UTS #46 non-transitional
 * mapping), and checks the RFC 5321 4.1.2 Domain / address-literal syntax.
 */
#ifndef PG_IDN_H
#define PG_IDN_H

#include <stddef.h>

#include "pigeon/error.h"

/*
 * Normalizes the domain [in, in+n) (a dot-atom or an address literal "[...]", valid
 * UTF-8 without controls). On success *domain (U-labels, lower case, NFC) and
 * *domain_ascii (A-labels) are malloc'd NUL-terminated strings the caller frees;
 * they are equal for ASCII domains and address literals.
 * Returns PIGEON_ERR_ADDRESS with a short reason in why (one line, may be NULL/0),
 * or PIGEON_ERR_NOMEM. On failure both outputs are NULL.
 */
pigeon_err pg_idn_domain_normalize(const char *in, size_t n, char **domain, char **domain_ascii,
                                   char *why, size_t whylen);

#endif
