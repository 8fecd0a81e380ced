/*
 * lazy_cmark.h - the second library of Markdown (internal to lib/lazy).
 */
#ifndef PG_LAZY_CMARK_H
#define PG_LAZY_CMARK_H

#include <stddef.h>

#include "pigeon/error.h"

/* Loads libcmark-gfm-extensions, as pg_lazy_open (pg_lazy_cmark() calls it after the
 * core library). */
pigeon_err pg_lazy_cmark_ext(char *err, size_t errlen);

#endif
