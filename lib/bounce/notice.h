/*
 * notice.h - the human-readable bounces that carry no RFC 3464 delivery-status part
 * (internal, pure): Exim, qmail, Exchange / Office 365, Yahoo, QQ Mail, 163 and the text
 * parts of others, read line by line from their UTF-8 text.
 */
#ifndef PG_BOUNCE_NOTICE_H
#define PG_BOUNCE_NOTICE_H

#include <stddef.h>

#include "pigeon/bounce.h"

/* Whether the text holds a phrase only delivery-failure notices write ("This is the
 * qmail-send program", "Delivery has failed to these recipients", "系统退信"...). */
int pg_bounce_notice_marker(const char *text, size_t n);

/* Whether a Subject is that of a delivery-failure notice ("Undelivered Mail Returned to
 * Sender", "Delivery Status Notification (Failure)", "退信"...). */
int pg_bounce_notice_subject(const char *subject);

/* Whether a Subject is that of an auto-reply ("Automatic reply:", "Out of Office",
 * "自动回复"...). */
int pg_bounce_autoreply_subject(const char *subject);

/* The dialect a notice is written in, from its text, its sender and its subject (any may
 * be NULL): "qmail", "exim", "exchange", "gmail", "yahoo", "qq", "163", "postfix", or
 * NULL when none is recognised. */
const char *pg_bounce_notice_dialect(const char *text, size_t n, const char *from,
                                     const char *subject);

/* Reads the failed recipients and their reasons from the notice text[0..n) into r (each
 * classified as a failure), and the original message's header when the notice quotes it
 * ("------ This is a copy of the message", "Original message headers:"). The addresses
 * in skip (r->from, r->to: the notice's own) are not taken for recipients. Returns the
 * recipients added. */
size_t pg_bounce_notice(pigeon_bounce_report *r, const char *text, size_t n, int *nomem);

#endif
