/*
 * bounce.c - pigeon_bounce_parse(): work in progress, the readers follow.
 */
#include <stdlib.h>
#include <string.h>

#include "pigeon/bounce.h"

pigeon_err pigeon_bounce_parse(const char *in, size_t len, const pigeon_bounce_opts *opts,
                               pigeon_bounce_report *out)
{
    (void)len;
    (void)opts;
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (in == NULL || out == NULL)
        return PIGEON_ERR_INVALID;
    out->format = "other";
    return PIGEON_OK;
}

void pigeon_bounce_report_cleanup(pigeon_bounce_report *r)
{
    if (r == NULL)
        return;
    free(r->rcpts);
    memset(r, 0, sizeof *r);
}
