/*
 * pigeon/bounce.h - reading bounces, complaints and auto-replies, and VERP addresses.
 *
 * pigeon_bounce_parse() reads one raw message (RFC 5322, LF or CRLF line endings) and says
 * what it is: a delivery failure or delay (RFC 3464 multipart/report;
 * report-type=delivery-status, and the common non-standard notices of Postfix, Exim, qmail,
 * Exchange / Office 365, Gmail, Yahoo, QQ Mail, Exmail and 163 / NetEase), a complaint (RFC
 * 5965 ARF, report-type=feedback-report), a read receipt (RFC 3798 MDN), an auto-reply or
 * out-of-office notice (RFC 3834 Auto-Submitted: auto-replied, X-Autoreply, "自动回复"), or
 * ordinary mail. For each affected recipient it gives the address, the class below, the
 * RFC 3463 status code, the remote server's reply and the reporting MTA; for the message it
 * is about, what could be found of its identity: the Message-ID, From, To and Subject of
 * the original (from a message/rfc822 or text/rfc822-headers part, or headers quoted in
 * the body), the envelope sender (ARF Original-Mail-From) and a VERP token when the bounce
 * was addressed to user+<token>@domain.
 *
 * Extraction only. Anyone can send a message that looks like a bounce: the caller decides
 * what to believe by matching what was found against what it sent (the Message-ID in its
 * spool, pigeon_bounce_msgid_ours() as a first filter, or a VERP token, whose tag
 * pigeon_bounce_verp_decode() verifies).
 *
 * Classification (pigeon_bounce_classify), in this order:
 *   1. the RFC 3463 status code when it is specific:
 *        X.1.1 bad mailbox, X.1.2 bad system/domain, X.1.3 bad syntax, X.1.6 moved,
 *        X.1.10 null MX (RFC 7505)                        -> hard (when X = 5)
 *        X.2.2 mailbox full, X.2.3 message too long, 4.x.x -> soft
 *        X.7.x security/policy (except 5.7.0 with only a generic text, read as text),
 *        X.1.8 bad sender domain                          -> block
 *        X.2.1 mailbox disabled (5.2.1)                   -> hard, unless the text names
 *                                                            spam or policy (then block)
 *   2. otherwise (no code, 5.0.0, 5.5.x, 4.0.0, or a code that says little) the reply text,
 *      against keyword tables in English and Chinese ("user unknown", "no such user",
 *      "does not exist", "mailbox not found", "用户不存在" -> hard; "mailbox full",
 *      "quota", "greylist", "try again later", "空间不足" -> soft; "spam", "blocked",
 *      "blacklist", "policy", "reputation", "垃圾邮件" -> block); the SMTP reply code
 *      (RFC 5321 4.2.1) decides between hard (5yz) and soft (4yz) when no keyword matches;
 *   3. a failure with neither code nor known text is PIGEON_BOUNCE_UNDETERMINED.
 * Complaints are always PIGEON_BOUNCE_COMPLAINT; a DSN recipient whose Action is
 * delivered, relayed or expanded (RFC 3464 2.3.3), read receipts, auto-replies and
 * ordinary mail are PIGEON_BOUNCE_NONE.
 *
 * Bounds: input over opts->max_size (default 32 MiB) is read only up to that size; MIME
 * nesting deeper than opts->max_depth (default 32) and more than 1000 parts are not
 * descended into; at most 1000 recipients per report; bad base64 or quoted-printable is
 * decoded as far as it goes. Time is linear in the input. Pure: no I/O, no global state,
 * thread-safe.
 */
#ifndef PIGEON_BOUNCE_H
#define PIGEON_BOUNCE_H

#include <stddef.h>

#include "pigeon/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the message is. */
typedef enum pigeon_bounce_kind {
    PIGEON_BOUNCE_KIND_OTHER = 0,     /* ordinary mail (or nothing recognisable) */
    PIGEON_BOUNCE_KIND_BOUNCE = 1,    /* a delivery status notice: failure or delay */
    PIGEON_BOUNCE_KIND_COMPLAINT = 2, /* an abuse/feedback report (RFC 5965 ARF) */
    PIGEON_BOUNCE_KIND_AUTOREPLY = 3, /* an auto-reply or out-of-office notice (RFC 3834) */
    PIGEON_BOUNCE_KIND_RECEIPT = 4,   /* a read receipt (RFC 3798 MDN) */
} pigeon_bounce_kind;

/* What a recipient's outcome means for whoever keeps mailing it. */
typedef enum pigeon_bounce_class {
    PIGEON_BOUNCE_NONE = 0,         /* not a failure: delivered, relayed, auto-reply, receipt */
    PIGEON_BOUNCE_HARD = 1,         /* permanent: no such user, domain gone, mailbox disabled */
    PIGEON_BOUNCE_SOFT = 2,         /* temporary or message-specific: mailbox full, over
                                       quota, greylisted, message too large, delayed */
    PIGEON_BOUNCE_BLOCK = 3,        /* refused by policy: spam, blocklist, reputation, DMARC */
    PIGEON_BOUNCE_COMPLAINT = 4,    /* the recipient reported the message (ARF) */
    PIGEON_BOUNCE_UNDETERMINED = 5, /* a failure with neither a usable code nor known text */
} pigeon_bounce_class;

/* One affected recipient. Strings are UTF-8, NUL-terminated, owned by the report; NULL
 * when not found. */
typedef struct pigeon_bounce_rcpt {
    char *rcpt;              /* the recipient address (Final-Recipient, else the address
                                named in the text, else ARF Original-Rcpt-To) */
    char *original_rcpt;     /* RFC 3464 2.3.1 Original-Recipient, when given */
    pigeon_bounce_class cls; /* the class (see the top of this file) */
    const char *reason;      /* a finer, stable, static identifier: "mailbox_unknown",
                                "domain_unknown", "mailbox_disabled", "bad_address",
                                "mailbox_full", "message_too_large", "greylisted",
                                "temporary", "delayed", "spam", "blocklisted", "policy",
                                "authentication", "relay_denied", "complaint",
                                "not_a_bounce", "unknown"; never NULL */
    char status[16];         /* RFC 3463 status "5.1.1" (from Status: or the text), or "" */
    int smtp_code;           /* the RFC 5321 reply code (550), or 0 */
    char *action;            /* RFC 3464 2.3.3 Action, lower case ("failed", "delayed"...) */
    char *diagnostic;        /* the remote server's reply (Diagnostic-Code without its
                                "smtp;" type, unfolded) or the notice's reason text */
    char *remote_mta;        /* Remote-MTA (RFC 3464 2.3.5) or the host named in the text */
} pigeon_bounce_rcpt;

/* What pigeon_bounce_parse() found. Zero it (or let the parse do it) before use. */
typedef struct pigeon_bounce_report {
    pigeon_bounce_kind kind;   /* what the message is */
    const char *format;        /* static: "rfc3464", "arf", "mdn", "postfix", "exim",
                                  "qmail", "exchange", "gmail", "yahoo", "qq", "163",
                                  "autoreply", "other" (the dialect recognised) */
    char *subject;             /* the notice's own Subject, RFC 2047 decoded */
    char *from;                /* the notice's own From address (addr-spec only) */
    char *to;                  /* where the notice was sent: the first To address, else
                                  Delivered-To, else X-Original-To */
    char *verp;                /* the token of to, when to is local+token@domain (the text
                                  after the first '+'), for pigeon_bounce_verp_decode(); NULL
                                  when there is no '+' */
    char *reporting_mta;       /* Reporting-MTA (RFC 3464 2.2.2, RFC 5965 Reporting-MTA), or
                                  the host named in a non-standard notice */
    char *envelope_id;         /* RFC 3464 2.2.1 Original-Envelope-Id */
    char *orig_message_id;     /* the original's Message-ID without angle brackets */
    char *orig_from;           /* the original's From address (addr-spec) */
    char *orig_to;             /* the original's first To address (addr-spec) */
    char *orig_subject;        /* the original's Subject, RFC 2047 decoded */
    char *orig_envelope_from;  /* ARF Original-Mail-From (RFC 5965 3.2) / the original's
                                  Return-Path */
    char *feedback_type;       /* ARF Feedback-Type ("abuse", "fraud"...), lower case */
    char *user_agent;          /* ARF User-Agent (who produced the report) */
    pigeon_bounce_rcpt *rcpts; /* count recipients in the order reported, owned */
    size_t count;              /* number of recipients */
    size_t cap;                /* allocated rcpts */
    int truncated;             /* nonzero: a bound (size, depth, parts, recipients) was hit
                                  and part of the message was not read */
} pigeon_bounce_report;

/* Limits for pigeon_bounce_parse(). Zero fields take the defaults. */
typedef struct pigeon_bounce_opts {
    size_t max_size;    /* octets of input read (default 32 MiB) */
    unsigned max_depth; /* MIME nesting levels descended into (default 32) */
} pigeon_bounce_opts;

/*
 * Reads the message in[0..len) and fills out (zeroed first; release it with
 * pigeon_bounce_report_cleanup(), also after an error). opts may be NULL. A message that
 * is not a bounce is not an error: kind is PIGEON_BOUNCE_KIND_OTHER and count 0. A notice
 * recognised as a failure whose recipient could not be found has one entry with rcpt NULL.
 * Returns PIGEON_OK, PIGEON_ERR_INVALID (in or out NULL), PIGEON_ERR_NOMEM.
 */
pigeon_err pigeon_bounce_parse(const char *in, size_t len, const pigeon_bounce_opts *opts,
                               pigeon_bounce_report *out);
/* Frees what r owns and zeroes it. NULL is a no-op. */
void pigeon_bounce_report_cleanup(pigeon_bounce_report *r);

/*
 * Classifies one failure from its RFC 3463 status ("5.1.1", may be NULL or ""), its SMTP
 * reply code (0 when unknown) and its text (UTF-8, may be NULL), by the rules at the top
 * of this file. *reason (may be NULL) receives the static reason identifier. Pure.
 */
pigeon_bounce_class pigeon_bounce_classify(const char *status, int smtp_code, const char *text,
                                           const char **reason);

/* Stable lower-case names: "hard", "soft", "block", "complaint", "none", "undetermined";
 * "bounce", "complaint", "autoreply", "receipt", "other". Never NULL. */
const char *pigeon_bounce_class_name(pigeon_bounce_class cls);
const char *pigeon_bounce_kind_name(pigeon_bounce_kind kind);

/*
 * Whether msgid (with or without angle brackets) has the shape of a Message-ID pigeon
 * writes: a left part of 26 characters of lower-case base32 (the composer,
 * pigeon_message_*) or 24 of [0-9A-Za-z] (sendmail mode and raw messages), "@", and a
 * domain that is one of domains[0..ndomains) (case-insensitive), or any domain when
 * ndomains is 0. A first filter against forged bounces, not proof: the caller still
 * looks the id up among the messages it sent. Returns 1 or 0. Pure.
 */
int pigeon_bounce_msgid_ours(const char *msgid, const char *const *domains, size_t ndomains);

/*
 * VERP (variable envelope return path): the envelope sender of a message to rcpt becomes
 * local+<token>@domain of from, so that a bounce names its recipient even when its body
 * does not, and the token is authenticated so that a forged bounce cannot name any
 * address it likes. The token, case-insensitive so that it survives MTAs that fold case:
 *
 *   inline form     <rcpt-local>=<rcpt-domain>-<tag>  (alice=example.com-k3j5n2m4pq)
 *   reference form  _<ref>-<tag>                      (_1a2b3c.0-k3j5n2m4pq)
 *
 * tag = the first 50 bits of HMAC-SHA256(key, "pigeon-verp1" NUL <lower-case payload>
 * NUL <lower-case from domain>) in base32 (RFC 4648 6, lower case, 10 characters). The
 * inline form is used when rcpt is an ASCII dot-atom address and the whole local part
 * fits RFC 5321 4.5.3.1.1's 64 octets; otherwise the reference form with ref, the
 * caller's own name for the recipient (such as "<queue id>.<recipient index>", 1..40
 * characters of [0-9A-Za-z.]).
 *
 * pigeon_bounce_verp_encode: from is the plain sender address (addr-spec), rcpt the
 * recipient, ref may be NULL when no reference is available; key of keylen >= 16 octets.
 * *out receives a malloc'd address (free()). Returns PIGEON_ERR_INVALID (NULL or short
 * key, from not an addr-spec, a bad ref), PIGEON_ERR_TOO_LARGE (rcpt does not fit inline
 * and ref is NULL, or the local part would exceed 64 octets even so), PIGEON_ERR_NOMEM.
 */
pigeon_err pigeon_bounce_verp_encode(const char *from, const char *rcpt, const char *ref,
                                     const void *key, size_t keylen, char **out);

/*
 * Reads a VERP address (the bounce's To, or just the token) and verifies its tag. Exactly
 * one of *rcpt (inline form, the address with its domain in lower case) and *ref
 * (reference form) is set to a malloc'd string; the other is NULL. from_domain is the
 * domain of the sender address it was made for; it may be NULL when addr is a full
 * address (its domain is used). Returns PIGEON_ERR_NOTFOUND (no token in addr),
 * PIGEON_ERR_AUTH (a token whose tag does not verify: forged or made with another key),
 * PIGEON_ERR_INVALID, PIGEON_ERR_NOMEM.
 */
pigeon_err pigeon_bounce_verp_decode(const char *addr, const char *from_domain, const void *key,
                                     size_t keylen, char **rcpt, char **ref);

#ifdef __cplusplus
}
#endif
#endif
