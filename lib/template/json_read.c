/*
 * json_read.c - JSON (RFC 8259) into a pigeon_vars tree, for --vars files, JSON Lines merge
 * rows and reports read back by --resume.
 *
 * The reading itself is lib/json's (the one strict JSON reader of the tree, the HTTP API's
 * too): grammar, UTF-8, surrogate pairs, limits, and a member name given twice refused.
 * This file only skips a leading byte order mark, converts the tree, and says on which
 * line a problem is.
 *
 * Numbers keep their JSON spelling when integral; others are written back in the
 * shortest form that reads as the same double ("1.210" -> "1.21"), as a JavaScript
 * Mustache would show them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json_read.h"
#include "template/vars.h"

static pigeon_vars *number(const pg_json_value *j)
{
    int integral = strpbrk(j->str, ".eE") == NULL;
    if (integral || j->len > 64)
        return pg_vars_new_text(PIGEON_VAR_NUMBER, j->str, j->len);
    char shortest[40];
    double d = j->num;
    /* Integral values print as integers (-0.5e2 is -50), as JavaScript does below 1e21. */
    if (d == (double)(long long)d && d > -1e18 && d < 1e18) {
        snprintf(shortest, sizeof shortest, "%lld", (long long)d);
        return pg_vars_new_text(PIGEON_VAR_NUMBER, shortest, strlen(shortest));
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(shortest, sizeof shortest, "%.*g", prec, d);
        if (strtod(shortest, NULL) == d)
            break;
    }
    return pg_vars_new_text(PIGEON_VAR_NUMBER, shortest, strlen(shortest));
}

/* The vars for j; recursion is bounded by the reader's depth limit. NULL: out of memory. */
static pigeon_vars *convert(const pg_json_value *j)
{
    pigeon_vars *v = NULL;
    switch (j->type) {
    case PG_JSON_NULL:
        return pg_vars_new(PIGEON_VAR_NULL);
    case PG_JSON_FALSE:
    case PG_JSON_TRUE:
        if ((v = pg_vars_new(PIGEON_VAR_BOOL)) != NULL)
            v->boolean = j->type == PG_JSON_TRUE;
        return v;
    case PG_JSON_NUMBER:
        return number(j);
    case PG_JSON_STRING:
        return pg_vars_new_text(PIGEON_VAR_STRING, j->str, j->len);
    case PG_JSON_ARRAY:
    case PG_JSON_OBJECT:
        break;
    }
    int object = j->type == PG_JSON_OBJECT;
    if ((v = pg_vars_new(object ? PIGEON_VAR_OBJECT : PIGEON_VAR_LIST)) == NULL)
        return NULL;
    for (const pg_json_value *m = j->head; m != NULL; m = m->next) {
        pigeon_vars *item = convert(m);
        /* pg_vars_add takes item, freeing it on failure. */
        if (item == NULL ||
            pg_vars_add(v, object ? m->key : NULL, object ? m->key_len : 0, item) != PIGEON_OK) {
            pigeon_vars_free(v);
            return NULL;
        }
    }
    return v;
}

pigeon_err pigeon_vars_parse_json(const char *json, size_t len, const pigeon_json_limits *limits,
                                  pigeon_vars **out, pigeon_json_error *err)
{
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (out == NULL || (json == NULL && len > 0))
        return PIGEON_ERR_INVALID;
    *out = NULL;
    size_t bom = len >= 3 && memcmp(json, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    pg_json_limits lim = {
        .max_depth = limits && limits->depth ? limits->depth : 64,
        .max_size = limits && limits->max_size ? limits->max_size : (size_t)16 << 20,
        .max_values = limits && limits->max_items ? limits->max_items : 1000000,
    };
    pg_json_doc *doc = NULL;
    pg_json_error je = {0};
    pigeon_err e = len - bom > lim.max_size
                       ? PIGEON_ERR_TOO_LARGE
                       : pg_json_parse(json ? json + bom : "", len - bom, &lim, &doc, &je);
    if (e == PIGEON_ERR_TOO_LARGE && je.reason[0] == '\0')
        snprintf(je.reason, sizeof je.reason, "document too large");
    if (e == PIGEON_OK && (*out = convert(pg_json_root(doc))) == NULL) {
        e = PIGEON_ERR_NOMEM;
        snprintf(je.reason, sizeof je.reason, "out of memory");
    }
    pg_json_free(doc);
    if (e == PIGEON_ERR_PROTOCOL)
        e = PIGEON_ERR_INVALID; /* this API's word for "not JSON" */
    if (e != PIGEON_OK && err != NULL) {
        size_t at = bom + je.offset < len ? bom + je.offset : len;
        unsigned line = 1;
        for (size_t i = 0; i < at; i++)
            line += json[i] == '\n';
        err->offset = at;
        err->line = line;
        snprintf(err->message, sizeof err->message, "%s", je.reason);
    }
    return e;
}
