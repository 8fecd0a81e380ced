/*
 * fuzz_html_inline.c - the whole HTML pipeline (gumbo parse, CSS inlining, images, the
 * serializer and the text part) on arbitrary bytes. The first byte picks options; the
 * input is split at the first NUL into a stylesheet (given as --css) and the document,
 * so the fuzzer mutates both sides of selector matching.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pigeon/html.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    pigeon_html_opts opts = {0};
    opts.no_images = data[0] & 1;
    opts.no_attrs = (data[0] >> 1) & 1;
    opts.wrap = (data[0] >> 2) & 1 ? 20 : 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    const char *nul = memchr(s, '\0', n);
    if (nul != NULL) {
        opts.css = s;
        opts.css_len = (size_t)(nul - s);
        n -= opts.css_len + 1;
        s = nul + 1;
    }
    pigeon_html_result res;
    if (pigeon_html_prepare(s, n, &opts, &res) == PIGEON_OK)
        pigeon_html_result_cleanup(&res);
    return 0;
}
