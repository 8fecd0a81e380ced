/*
 * dsn.h - the machine-readable report parts (internal, pure): RFC 3464 delivery-status,
 * RFC 5965 feedback-report, RFC 3798 disposition-notification, and the original message's
 * header (message/rfc822, text/rfc822-headers, or headers quoted in a body).
 */
#ifndef PG_BOUNCE_DSN_H
#define PG_BOUNCE_DSN_H

#include <stddef.h>

#include "pigeon/bounce.h"

/* Reads a message/delivery-status body (RFC 3464 2.1: a per-message block, then one block
 * per recipient, separated by empty lines) into r: reporting_mta, envelope_id and one
 * recipient per block naming Final-Recipient or Original-Recipient, classified. Returns
 * the recipients added; *nomem is set when an allocation failed. */
size_t pg_bounce_dsn(pigeon_bounce_report *r, const char *in, size_t n, int *nomem);

/* Reads a message/feedback-report body (RFC 5965 3.1-3.3) into r: feedback_type,
 * user_agent, reporting_mta, orig_envelope_from (Original-Mail-From) and a complaint
 * recipient per Original-Rcpt-To. Returns the fields recognised. */
size_t pg_bounce_arf(pigeon_bounce_report *r, const char *in, size_t n, int *nomem);

/* Reads a message/disposition-notification body (RFC 3798 3.1): the Final-Recipient as a
 * recipient of class none, the Original-Message-ID, the Reporting-UA. Returns the fields
 * recognised. */
size_t pg_bounce_mdn(pigeon_bounce_report *r, const char *in, size_t n, int *nomem);

/* Reads the original message's header block at in[0..n) (fields before the first empty
 * line; stray lines skipped): Message-ID, From, To, Subject, Return-Path, filling only
 * what r does not have yet. Returns how many of those fields were found. */
size_t pg_bounce_original(pigeon_bounce_report *r, const char *in, size_t n, int *nomem);

#endif
