/*
 * utf8.h - the one UTF-8 decoder of the tree (internal; the command uses it too).
 *
 * RFC 3629 4: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
 */
#ifndef PG_UTF8_H
#define PG_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1-4) of the valid UTF-8 sequence at s, of which n bytes may be read, or 0 if
 * s does not start with one (n == 0 included). *cp, if cp is not NULL, gets the code
 * point. */
size_t pg_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Nonzero if [s, s+n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int pg_utf8_valid(const char *s, size_t n);

/* Nonzero if [s, s+n) contains CR, LF or NUL (what must never reach a header or command). */
int pg_has_ctl_breaks(const char *s, size_t n);

/* Length of the sequence a lead byte c announces (1 for ASCII and stray bytes, 2-4);
 * callers that have validated the text use it to step by character. */
size_t pg_utf8_char_len(unsigned char c);

#endif
