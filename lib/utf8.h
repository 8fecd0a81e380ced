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

#endif
