/*
 * dkim_tags.h - finding a tag in a DKIM tag=value list (RFC 6376 3.2).
 */
#ifndef PIGEON_DKIM_TAGS_H
#define PIGEON_DKIM_TAGS_H

#include <stddef.h>

/* Finds tag (case-sensitive, as 3.2 says) in list[0..len); sets *val and *vlen to its value
 * without surrounding white space and returns 1, or returns 0. The first instance wins. */
int pg_dkim_tag_find(const char *list, size_t len, const char *tag, const char **val, size_t *vlen);

#endif
