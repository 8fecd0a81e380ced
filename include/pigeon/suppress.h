/*
 * pigeon/suppress.h - the per-account suppression list, kept in the spool.
 *
 * Addresses that hard-bounced, complained, asked to unsubscribe or were added by hand are
 * never mailed again through that account: `pigeon send`, `sendmail`, the mail merge, the
 * HTTP API and the delivery daemon check the list and report such recipients as
 * "suppressed". An entry of the account "*" (PIGEON_SUPPRESS_GLOBAL; "" or NULL mean the
 * same when adding) applies to every account.
 *
 * Soft bounces (mailbox full, over quota, greylisting that never cleared) are recorded as
 * events; the address is suppressed (reason soft-bounce) once limit of them happened
 * within the last days days (pigeon_suppress_policy, per account in the configuration:
 * soft_bounce_limit = 3, soft_bounce_days = 7).
 *
 * Comparison: an address is compared by its normalized form. The domain is lower-cased and
 * IDNs are turned into A-labels (RFC 5890, as lib/address does for sending), so
 * "bob@BÜCHER.example" and "bob@xn--bcher-kva.example" are one entry. RFC 5321 2.4 makes
 * the local part case-sensitive in principle, but nearly every mailbox provider folds it, so
 * by default "Bob@example.com" and "bob@example.com" are also one entry (ASCII letters are
 * folded; other octets compared as they are). PIGEON_SUPPRESS_CASE_SENSITIVE compares the
 * local part exactly instead. The list keeps the address as it was recorded (its local
 * part as given, its domain normalized) for display and export.
 *
 * Storage: two tables in the spool file, created on first use; a check is one indexed
 * lookup per address. A backend without these tables answers PIGEON_ERR_UNSUPPORTED with
 * a diagnosis in pigeon_spool_error().
 *
 * Errors: PIGEON_ERR_INVALID (bad arguments), PIGEON_ERR_ADDRESS (not an addr-spec
 * local@domain, or a domain that is not a valid host name or IDN), PIGEON_ERR_NOTFOUND
 * (remove: no such entry), and the spool's own (PIGEON_ERR_IO, PIGEON_ERR_TIMEOUT,
 * PIGEON_ERR_NOSPACE, PIGEON_ERR_STATE inside a batch where not allowed); the diagnosis in
 * pigeon_spool_error(). Thread safety as for the spool handle.
 */
#ifndef PIGEON_SUPPRESS_H
#define PIGEON_SUPPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/error.h"
#include "pigeon/message.h"
#include "pigeon/spool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The account name of entries that apply to every account. */
#define PIGEON_SUPPRESS_GLOBAL "*"

/* Longest normalized address kept (octets, without the NUL); longer ones are refused. */
#define PIGEON_SUPPRESS_ADDR_MAX 320

/* Why an address is on the list. */
typedef enum pigeon_suppress_reason {
    PIGEON_SUPPRESS_NONE = 0,        /* not suppressed (check results only) */
    PIGEON_SUPPRESS_HARD_BOUNCE = 1, /* "hard-bounce": no such user, domain gone (5.1.x) */
    PIGEON_SUPPRESS_COMPLAINT = 2,   /* "complaint": an ARF report (RFC 5965) */
    PIGEON_SUPPRESS_SOFT_BOUNCE = 3, /* "soft-bounce": too many soft bounces in the window */
    PIGEON_SUPPRESS_MANUAL = 4,      /* "manual": added by hand */
    PIGEON_SUPPRESS_UNSUBSCRIBE = 5, /* "unsubscribe": the recipient asked (RFC 8058) */
} pigeon_suppress_reason;

/* "hard-bounce", "complaint", "soft-bounce", "manual", "unsubscribe"; "none" for
 * PIGEON_SUPPRESS_NONE and "?" out of range. */
const char *pigeon_suppress_reason_name(pigeon_suppress_reason reason);

/* The reason named s (as above, case-insensitive; "hard" and "soft" too), or
 * PIGEON_ERR_INVALID. */
pigeon_err pigeon_suppress_reason_parse(const char *s, pigeon_suppress_reason *out);

/* Flags for the checks. */
enum {
    PIGEON_SUPPRESS_CASE_SENSITIVE = 1, /* compare the local part exactly (RFC 5321 2.4) */
};

/* One entry, or one soft bounce to record. Strings are borrowed (UTF-8, no controls). */
typedef struct pigeon_suppress_entry {
    const char *account;           /* the account; "*" (or "" / NULL when adding): global */
    const char *address;           /* the addr-spec, without <> */
    pigeon_suppress_reason reason; /* why */
    const char *status;            /* the status code ("5.1.1", "550 5.1.1"), or NULL */
    const char *diagnostic;        /* the server's text or the report's, or NULL (cut at 1000) */
    const char *queue_id;          /* the queued message it is about, or NULL */
    int64_t created_ms;            /* when it happened (ms since the epoch) */
} pigeon_suppress_entry;

/* When soft bounces suppress: limit of them within days days (both at least 1). */
typedef struct pigeon_suppress_policy {
    int soft_bounce_limit; /* soft bounces that suppress the address (default 3) */
    int soft_bounce_days;  /* the window they must fall in, in days (default 7) */
} pigeon_suppress_policy;
#define PIGEON_SUPPRESS_SOFT_LIMIT 3
#define PIGEON_SUPPRESS_SOFT_DAYS  7

/* The result of a check of one address. */
typedef struct pigeon_suppress_hit {
    pigeon_suppress_reason reason; /* PIGEON_SUPPRESS_NONE when the address may be mailed */
    int global;                    /* the entry is of account "*" */
    char status[64];               /* its status code, "" if none */
    int64_t created_ms;            /* when it was recorded */
} pigeon_suppress_hit;

/*
 * Normalizes an addr-spec for comparison into out (size octets, NUL-terminated): the
 * domain lower-cased in A-labels and, unless flags has PIGEON_SUPPRESS_CASE_SENSITIVE, the
 * ASCII letters of the local part folded to lower case. PIGEON_ERR_ADDRESS for something
 * that is not local@domain (empty parts, controls or spaces outside quotes, a local part
 * over 64 octets, a bad domain), PIGEON_ERR_TOO_LARGE when out is too small. Pure: no
 * spool needed; why (may be NULL) gets a one-line reason.
 */
pigeon_err pigeon_suppress_normalize(const char *address, unsigned flags, char *out, size_t size,
                                     char *why, size_t whylen);

/*
 * Records an event. Reasons other than soft-bounce put (account, address) on the list at
 * once; an address already listed keeps its first time and takes the new reason, status
 * and diagnostic. A soft bounce is recorded as an event, and suppresses the address when
 * this one makes policy->soft_bounce_limit within policy->soft_bounce_days (policy NULL:
 * the defaults). *suppressed (may be NULL) is 1 when the address is now on the list
 * (always for other reasons). Durable on return outside a batch; inside a batch
 * (pigeon_spool_begin()) part of it.
 */
pigeon_err pigeon_suppress_add(pigeon_spool *spool, const pigeon_suppress_entry *entry,
                               const pigeon_suppress_policy *policy, int *suppressed);

/* Takes address off the account's list (account "*": the global list) and forgets its
 * soft bounces there. PIGEON_ERR_NOTFOUND when it was neither listed nor had soft bounces. */
pigeon_err pigeon_suppress_remove(pigeon_spool *spool, const char *account, const char *address);

/*
 * Whether address may not be mailed through account: listed for the account or globally.
 * *hit is filled either way (reason PIGEON_SUPPRESS_NONE when it may be mailed); the
 * account's own entry wins over a global one. One indexed lookup. An address that does
 * not parse gives PIGEON_ERR_ADDRESS (the caller's own validation will refuse it too).
 */
pigeon_err pigeon_suppress_check(pigeon_spool *spool, const char *account, const char *address,
                                 unsigned flags, pigeon_suppress_hit *hit);

/*
 * The same for n addresses at once, in one read transaction (one statement, n lookups):
 * hits[i] for addresses[i]; *count (may be NULL) is the number suppressed. An address that
 * does not parse is reported as not suppressed (reason NONE) rather than failing the batch.
 */
pigeon_err pigeon_suppress_check_many(pigeon_spool *spool, const char *account,
                                      const char *const *addresses, size_t n, unsigned flags,
                                      pigeon_suppress_hit *hits, size_t *count);

/*
 * Calls fn for each entry, ordered by account and address; account NULL: all, else only
 * that account's (use "*" for the global ones); reason PIGEON_SUPPRESS_NONE: any. The entry
 * is valid during the call only; fn may not call into the same handle; nonzero stops.
 */
pigeon_err pigeon_suppress_list(pigeon_spool *spool, const char *account,
                                pigeon_suppress_reason reason,
                                int (*fn)(void *ctx, const pigeon_suppress_entry *entry),
                                void *ctx);

/* ---- import and export: CSV (RFC 4180) ----
 *
 * One entry per line, with the header line
 *   address,account,reason,status,diagnostic,queue_id,created
 * (created: milliseconds since the epoch). Fields with a comma, a quote or a line break
 * are quoted, quotes doubled. On import the header is optional, a line may hold only the
 * address (the other fields then take the defaults given), empty fields take the
 * defaults, and blank lines and lines starting with '#' are skipped.
 */

/* A parsed CSV line (pointers into the caller's scratch, see pigeon_suppress_csv_parse). */
typedef struct pigeon_suppress_csv_row {
    const char *fields[7]; /* address, account, reason, status, diagnostic, queue_id, created;
                              NULL when the line has fewer fields */
    size_t nfields;        /* fields present */
} pigeon_suppress_csv_row;

/*
 * Parses one CSV record [line, line+len) (without its line break; a quoted field may hold
 * CR LF) into row, unquoting into scratch (at least len + 8 octets, NUL-terminated
 * fields). PIGEON_ERR_INVALID with why for a stray quote, a quote not closed, more than 7
 * fields, or a NUL or other control (outside quoted line breaks). Pure; never reads past
 * len.
 */
pigeon_err pigeon_suppress_csv_parse(const char *line, size_t len, char *scratch, size_t cap,
                                     pigeon_suppress_csv_row *row, char *why, size_t whylen);

/* Writes entry as one CSV line ending in CRLF, quoted as needed, into out (size octets,
 * NUL-terminated). Returns the length, or the length it needs (>= size) when it does not
 * fit, as snprintf does. The header line is PIGEON_SUPPRESS_CSV_HEADER. */
size_t pigeon_suppress_csv_format(const pigeon_suppress_entry *entry, char *out, size_t size);
#define PIGEON_SUPPRESS_CSV_HEADER "address,account,reason,status,diagnostic,queue_id,created\r\n"

/*
 * Imports CSV read from read (a pigeon_read_fn stream) in one transaction: every line is
 * checked first, and nothing is stored when one is bad (PIGEON_ERR_INVALID or
 * PIGEON_ERR_ADDRESS, *bad_line its number from 1, why the reason). Lines over 8 KiB are
 * refused. defaults supplies the account, reason and time of lines that leave them empty
 * (its address is ignored; reason NONE means manual). A soft-bounce line is stored as a
 * suppression, not as an event. *count (may be NULL) is the number of lines stored. Not
 * inside a batch (PIGEON_ERR_STATE).
 */
pigeon_err pigeon_suppress_import(pigeon_spool *spool, pigeon_read_fn read, void *ctx,
                                  const pigeon_suppress_entry *defaults, size_t *count,
                                  size_t *bad_line, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif
#endif
