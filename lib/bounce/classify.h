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

/* Reads the first RFC 3463 status ("5.1.1") and the first RFC 5321 reply code (550) that
 * appear in text; status gets "" and *code 0 when there is none. */
void pg_bounce_codes(const char *text, char status[16], int *code);

/* Completes a failed recipient: status and smtp_code from its diagnostic when missing (or
 * when Status is a generic X.0.0 and the diagnostic is more specific), then cls and
 * reason by pigeon_bounce_classify(). Action delivered, relayed or expanded gives
 * PIGEON_BOUNCE_NONE and delayed PIGEON_BOUNCE_SOFT ("delayed"). */
void pg_bounce_rcpt_classify(pigeon_bounce_rcpt *rc);

#endif
