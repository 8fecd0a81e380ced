/*
 * sasl.h - SASL client mechanisms for SMTP AUTH (internal, pure: no I/O).
 *
 *   PLAIN     RFC 4616 (authzid empty): "\0user\0password"
 *   LOGIN     draft-murchison-sasl-login: user, then password, each on its own challenge
 *   CRAM-MD5  RFC 2195: user " " hex(HMAC-MD5(password, challenge))
 *   XOAUTH2   Google's SASL XOAUTH2: "user=" user ^A "auth=Bearer " token ^A ^A
 *
 * The SMTP framing (RFC 4954: AUTH mech [initial-response], 334 challenges in base64,
 * "*" to cancel) is smtp.c's; this module turns a decoded challenge into a response.
 * Responses hold secrets: callers wipe them (pg_buf_wipe_cleanup). Challenges are bounded
 * in number (PG_SASL_MAX_CHALLENGES) and size (PG_SASL_CHALLENGE_MAX).
 */
#ifndef PG_SASL_H
#define PG_SASL_H

#include <stddef.h>

#include "util/buf.h"
#include "pigeon/error.h"

/* RFC 4954 sets no limit; a legitimate exchange needs at most 2 challenges (LOGIN), an
 * XOAUTH2 error one more. */
#define PG_SASL_MAX_CHALLENGES 5
/* The largest decoded challenge accepted (CRAM-MD5 challenges are ~60 bytes, XOAUTH2
 * error documents ~200). */
#define PG_SASL_CHALLENGE_MAX 1024

typedef enum pg_sasl_mech {
    PG_SASL_PLAIN = 1,    /* RFC 4616 */
    PG_SASL_LOGIN = 2,    /* LOGIN */
    PG_SASL_CRAM_MD5 = 3, /* RFC 2195 */
    PG_SASL_XOAUTH2 = 4,  /* bearer token */
} pg_sasl_mech;

typedef struct pg_sasl {
    pg_sasl_mech mech;  /* the mechanism */
    const char *user;   /* authentication identity (borrowed) */
    const char *secret; /* password, or the bearer token for XOAUTH2 (borrowed) */
    int challenges;     /* challenges answered so far */
    int sent_initial;   /* nonzero when the initial response went with the AUTH command */
} pg_sasl;

/* The mechanism's SASL name ("CRAM-MD5"). */
const char *pg_sasl_name(pg_sasl_mech mech);

/* Prepares s (user and secret must stay valid while s is used; neither may be NULL). */
void pg_sasl_init(pg_sasl *s, pg_sasl_mech mech, const char *user, const char *secret);

/*
 * The initial response (RFC 4954 4), raw (not base64), appended to out, for mechanisms that
 * have one (PLAIN, XOAUTH2): *has is 1. LOGIN and CRAM-MD5 start with a server challenge:
 * *has is 0 and nothing is appended. PIGEON_ERR_NOMEM, PIGEON_ERR_INVALID (a user name or
 * secret containing NUL is impossible here; one containing ^A is refused for XOAUTH2).
 */
pigeon_err pg_sasl_initial(const pg_sasl *s, pg_buf *out, int *has);

/*
 * Answers one decoded challenge (challenge[0..n)), appending the raw response to out.
 * PIGEON_ERR_PROTOCOL when the challenge is over PG_SASL_CHALLENGE_MAX or it is one
 * challenge too many (more than PG_SASL_MAX_CHALLENGES, or more than the mechanism can
 * use: PLAIN none after its initial response, LOGIN 2, CRAM-MD5 1); PIGEON_ERR_AUTH for an
 * XOAUTH2 error challenge, whose answer (an empty response, to get the final 535) is
 * still appended; PIGEON_ERR_NOMEM.
 */
pigeon_err pg_sasl_step(pg_sasl *s, const unsigned char *challenge, size_t n, pg_buf *out);

/* HMAC-MD5 (RFC 2104) of msg under key, written as 32 lower-case hex digits + NUL. */
pigeon_err pg_hmac_md5_hex(const void *key, size_t keylen, const void *msg, size_t n, char out[33]);

#endif
