/*
 * fuzz_json_read.c - libFuzzer target for the JSON reader (lib/json/json_read.c).
 *
 * Invariants: no out-of-bounds access or leak (ASan); an accepted document's strings are
 * valid UTF-8, NUL-terminated at their length; counts match the linked members; the
 * depth limit holds; a refusal reports an offset inside the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/json_read.h"
#include "util/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const pg_json_value *v, size_t depth)
{
    if (depth > 8)
        abort();
    if (v->type == PG_JSON_STRING && (!pg_utf8_valid(v->str, v->len) || v->str[v->len] != '\0'))
        abort();
    if (v->key != NULL && !pg_utf8_valid(v->key, v->key_len))
        abort();
    size_t n = 0;
    for (const pg_json_value *c = v->head; c != NULL; c = c->next, n++) {
        if ((v->type == PG_JSON_OBJECT) != (c->key != NULL))
            abort();
        walk(c, depth + (c->type == PG_JSON_ARRAY || c->type == PG_JSON_OBJECT));
    }
    if (n != v->count)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pg_json_limits lim = {.max_depth = 8, .max_values = 10000, .max_string = 4096};
    pg_json_doc *doc = NULL;
    pg_json_error err;
    pigeon_err e = pg_json_parse((const char *)data, size, &lim, &doc, &err);
    if (e == PIGEON_OK) {
        const pg_json_value *root = pg_json_root(doc);
        walk(root, root->type == PG_JSON_ARRAY || root->type == PG_JSON_OBJECT);
    } else if (err.offset > size || doc != NULL) {
        abort();
    }
    pg_json_free(doc);
    return 0;
}
