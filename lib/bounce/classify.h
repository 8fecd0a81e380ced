/*
 * classify.h - the keyword tables behind pigeon_bounce_classify() (internal), also used by
 * the notice readers to tell which lines of a non-standard bounce carry the reason.
 */
#ifndef PG_BOUNCE_CLASSIFY_H
#define PG_BOUNCE_CLASSIFY_H

#include "pigeon/bounce.h"

/* Matches text (UTF-8, may be NULL) against the keyword tables: 1 with the first matching
 * entry's class and static reason, or 0 when none matches. */
int pg_bounce_keywords(const char *text, pigeon_bounce_class *cls, const char **reason);

#endif
