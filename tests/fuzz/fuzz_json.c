/*
 * fuzz_json.c - libFuzzer target for the strict JSON reader (lib/template/json_read.c).
 *
 * Invariants: no out-of-bounds access or leak (ASan); a refusal has a reason and an
 * offset within the input; an accepted document's strings are valid UTF-8 (checked by
 * rendering every value of a top-level object through a template).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/template.h"
#include "util/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pigeon_vars *v = NULL;
    pigeon_json_error err;
    pigeon_json_limits lim = {1 << 20, 32, 100000};
    pigeon_err e = pigeon_vars_parse_json((const char *)data, size, &lim, &v, &err);
    if (e != PIGEON_OK) {
        if (v != NULL || err.message[0] == '\0' || err.offset > size)
            abort();
        return 0;
    }
    size_t len = 0;
    const char *text = pigeon_vars_text(v, &len);
    if (text != NULL && !pg_utf8_valid(text, len))
        abort();
    pigeon_vars_free(v);
    return 0;
}
