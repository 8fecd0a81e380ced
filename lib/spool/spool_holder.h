/*
 * spool_holder.h - who holds a lease: the identity of a process, and whether it still
 * runs (internal, part of the generic layer spool.c).
 *
 * A lease records the process that took it (host name, boot id, pid, start time), so that
 * a daemon can tell, without waiting for the lease to expire, that the process holding
 * it is gone: on the same host, its pid no longer exists, or belongs to a process started
 * at another time (the pid was reused), or the host rebooted since (another boot id).
 * Leases of other hosts, and of other pid namespaces (containers) on this host, cannot be
 * judged from here and are left to expire.
 */
#ifndef PG_SPOOL_HOLDER_H
#define PG_SPOOL_HOLDER_H

#include <stdint.h>

#include "spool/spool_backend.h"

/* The calling process's identity, filled by pg_spool_holder_self(). */
typedef struct pg_spool_self {
    char host[256];   /* gethostname(), "localhost" if unknown */
    char boot_id[96]; /* "BOOT_ID/pid:[NS]": the boot id (/proc/sys/kernel/random/boot_id)
                         and the pid namespace, whose pids it may judge; "" if unknown */
    int64_t pid;      /* getpid() */
    int64_t started;  /* field 22 of /proc/self/stat (clock ticks since boot), 0 if unknown */
} pg_spool_self;

/* Fills self with the calling process's identity; again only after a fork (pid differs). */
void pg_spool_holder_self(pg_spool_self *self);

/* The identity in the form the backend stores (borrowing self's strings). */
pg_spool_holder pg_spool_holder_of(const pg_spool_self *self);

/* Nonzero when holder h, of self's host, certainly no longer runs: another boot id, no
 * process h->pid, or one that started at another time. Zero when it runs, or when that
 * cannot be told (no /proc: the process is then asked with kill(pid, 0)). */
int pg_spool_holder_gone(const pg_spool_self *self, const pg_spool_holder *h);

#endif
