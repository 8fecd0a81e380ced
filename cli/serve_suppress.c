/*
 * serve_suppress.c - the suppression list in `pigeon serve` (see suppress.h): before a
 * message is stored, its recipients on the account's (or the global) list leave the
 * envelope and are named in the answer, {"id":...,"suppressed":[{"address","reason",
 * "status"}]}; a message whose every recipient is suppressed is not stored and answers
 * 422 (problem+json naming them). The check runs on the committer's handle inside the
 * group's transaction, so it sees entries added a moment before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "serve.h"
#include "suppress.h"

/* The suppressed recipients of item as a JSON array into item->suppressed, and the
 * detail of a 422 into item->problem.detail (names cut to fit). */
static int describe(serve_item *item, const pigeon_suppress_hit *hits)
{
    char *text = NULL;
    size_t len = 0, used = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return -1;
    json_writer w;
    json_init(&w, f);
    json_array_begin(&w);
    used = (size_t)snprintf(item->problem.detail, sizeof item->problem.detail,
                            "every recipient is suppressed:");
    for (size_t i = 0; i < item->nrcpts; i++) {
        if (hits[i].reason == PIGEON_SUPPRESS_NONE)
            continue;
        json_object_begin(&w);
        json_kv_string(&w, "address", item->rcpts[i]);
        json_kv_string(&w, "reason", pigeon_suppress_reason_name(hits[i].reason));
        if (hits[i].status[0] != '\0')
            json_kv_string(&w, "status", hits[i].status);
        json_kv_bool(&w, "global", hits[i].global);
        json_object_end(&w);
        if (used < sizeof item->problem.detail)
            used += (size_t)snprintf(item->problem.detail + used,
                                     sizeof item->problem.detail - used, " %s (%s)", item->rcpts[i],
                                     pigeon_suppress_reason_name(hits[i].reason));
    }
    json_array_end(&w);
    if (fclose(f) != 0)
        return -1;
    item->suppressed = text;
    return 0;
}

int serve_suppress_item(serve_ctx *ctx, serve_item *item)
{
    size_t count = 0, kept = 0;
    pigeon_suppress_hit *hits = calloc(item->nrcpts ? item->nrcpts : 1, sizeof *hits);
    if (hits == NULL)
        goto unavailable;
    pigeon_err e = pigeon_suppress_check_many(
        ctx->spool, item->account, (const char *const *)item->rcpts, item->nrcpts, 0, hits, &count);
    if (e == PIGEON_ERR_UNSUPPORTED) /* a backend without the list: nothing on it */
        count = 0;
    else if (e != PIGEON_OK || (count > 0 && describe(item, hits) != 0))
        goto unavailable;
    if (count == 0) {
        free(hits);
        return 0;
    }
    if (count == item->nrcpts) {
        item->problem.status = 422;
        free(hits);
        return 1;
    }
    item->problem.detail[0] = '\0';
    for (size_t i = 0; i < item->nrcpts; i++) {
        if (hits[i].reason == PIGEON_SUPPRESS_NONE)
            item->rcpts[kept++] = item->rcpts[i];
        else
            free(item->rcpts[i]);
    }
    item->nrcpts = kept;
    free(hits);
    return 0;
unavailable:
    free(hits);
    item->problem.status = 503;
    snprintf(item->problem.detail, sizeof item->problem.detail,
             "cannot check the suppression list: %s", pigeon_spool_error(ctx->spool));
    return 1;
}
