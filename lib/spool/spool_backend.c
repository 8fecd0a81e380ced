/*
 * spool_backend.c - what every spool backend shares (see spool_backend.h): the generic
 * layer (spool.c) and each backend (spool_sqlite*.c) call down into it, never the reverse.
 */
#include "spool/spool_backend.h"

#include <stdarg.h>
#include <stdio.h>

pigeon_err pg_spool_fail(pg_spool_diag *diag, pigeon_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(diag->text, sizeof diag->text, fmt, ap);
    va_end(ap);
    return err;
}
