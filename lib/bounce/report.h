/*
 * report.h - filling a pigeon_bounce_report (internal): bounded recipients, and strings
 * made safe to print (valid UTF-8, no control characters, bounded length).
 */
#ifndef PG_BOUNCE_REPORT_H
#define PG_BOUNCE_REPORT_H

#include <stddef.h>

#include "pigeon/bounce.h"

/* Most recipients kept per report. */
#define PG_BOUNCE_RCPTS_MAX 1000
/* Longest string kept (a diagnostic may be long; the rest is cut). */
#define PG_BOUNCE_TEXT_MAX 1000

/* A new, zeroed recipient at the end of r, or NULL (r->truncated set when the bound is
 * hit; *nomem set when an allocation failed). */
pigeon_bounce_rcpt *pg_bounce_rcpt_add(pigeon_bounce_report *r, int *nomem);
/* The recipient whose address is addr (case-insensitive), or NULL. */
pigeon_bounce_rcpt *pg_bounce_rcpt_find(pigeon_bounce_report *r, const char *addr);
/* Sets *dst (when it is NULL, or always when replace) to a clean copy of s[0..n):
 * invalid UTF-8 and control characters become '?' and ' ', white space runs are one
 * space, trimmed, cut at PG_BOUNCE_TEXT_MAX octets on a character boundary. An empty
 * result leaves *dst alone. Returns 0, or -1 when an allocation failed. */
int pg_bounce_set(char **dst, const char *s, size_t n, int replace);
/* The same taking ownership of s (malloc'd or NULL), which is freed. */
int pg_bounce_take(char **dst, char *s, int replace);

#endif
