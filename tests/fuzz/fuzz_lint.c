/*
 * fuzz_lint.c - libFuzzer target for the message lint: the MIME walk (nested multiparts,
 * boundaries, transfer encodings), the HTML scanner, URL and Subject checks, on any input.
 *
 * Properties: no crash or leak; every finding has a code, a reason and a fix and a
 * severity of 1 or 2; the worst severity is 0, 1 or 2 and matches the findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lint/lint_html.h"
#include "pigeon/lint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pigeon_lint_report r;
    pigeon_lint_opts o = {size > 0 && (data[0] & 1) ? "example.com" : NULL,
                          size > 0 && (data[0] & 2)};
    if (pigeon_lint_message((const char *)data, size, &o, &r) != PIGEON_OK)
        abort();
    int worst = 0;
    for (size_t i = 0; i < r.count; i++) {
        const pigeon_lint_finding *f = &r.items[i];
        if (f->code == NULL || f->reason == NULL || f->fix == NULL || f->reason[0] == '\0' ||
            (f->severity != PIGEON_LINT_WARNING && f->severity != PIGEON_LINT_ERROR))
            abort();
        if ((int)f->severity > worst)
            worst = (int)f->severity;
    }
    if (pigeon_lint_worst(&r) != worst)
        abort();
    pigeon_lint_report_cleanup(&r);
    pg_lint_html h;
    if (pg_lint_html_scan((const char *)data, size, &h) != PIGEON_OK)
        abort();
    if (h.nlinks > PG_LINT_HTML_MAX || h.nimages > PG_LINT_HTML_MAX)
        abort();
    pg_lint_html_cleanup(&h);
    return 0;
}
