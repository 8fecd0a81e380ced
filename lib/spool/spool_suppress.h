/*
 * spool_suppress.h - the suppression list's backend side (internal; the public contract
 * is pigeon/suppress.h). spool_backend.h holds a pointer to this table; the SQLite side is
 * spool_sqlite_suppress.c, the generic wrappers (argument checks, address normalization,
 * CSV) spool_suppress.c and spool_suppress_csv.c.
 */
#ifndef PG_SPOOL_SUPPRESS_H
#define PG_SPOOL_SUPPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/suppress.h"

/* One row to store, validated and normalized by the generic layer (all borrowed). */
typedef struct pg_spool_suppress_row {
    const char *account;           /* the account, "*" for global */
    const char *key;               /* the address as compared (pigeon_suppress_normalize) */
    const char *address;           /* the address as kept: local part as given, domain normal */
    pigeon_suppress_reason reason; /* why */
    const char *status;            /* status code, "" if none */
    const char *diagnostic;        /* diagnostic text, "" if none */
    const char *queue_id;          /* the message it is about, "" if none */
    int64_t created_ms;            /* when it happened */
} pg_spool_suppress_row;

typedef struct pg_spool_suppress_ops {
    /* Puts row on the list (an existing entry keeps created_ms, takes the rest). */
    pigeon_err (*add)(void *be, const pg_spool_suppress_row *row);
    /* Records a soft bounce, forgets the key's events before since_ms, and lists it (if
     * not listed yet) when limit events remain; *suppressed 1 when it is listed now. */
    pigeon_err (*soft)(void *be, const pg_spool_suppress_row *row, int64_t since_ms, int limit,
                       int *suppressed);
    /* Removes the entry and the soft events of (account, key); *count rows removed. */
    pigeon_err (*remove)(void *be, const char *account, const char *key, size_t *count);
    /* Looks keys[i] up for account or "*" (skipping NULL keys); with exact non-NULL, an
     * entry counts only when its address equals exact[i]. Fills hits (zeroed by caller). */
    pigeon_err (*check)(void *be, const char *account, const char *const *keys,
                        const char *const *exact, size_t n, pigeon_suppress_hit *hits);
    /* Calls fn per entry (account NULL: all; reason NONE: any). */
    pigeon_err (*list)(void *be, const char *account, pigeon_suppress_reason reason,
                       int (*fn)(void *ctx, const pigeon_suppress_entry *entry), void *ctx);
} pg_spool_suppress_ops;

#endif
