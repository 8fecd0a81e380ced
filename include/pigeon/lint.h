/*
 * pigeon/lint.h - checks a message before it goes out for what spam filters and mail
 * clients dislike, each finding with its reason and its fix: no text part, images with
 * little text, HTML past Gmail's 102 KB clip, a missing Date or Message-ID, a From domain
 * the DKIM d= does not align with (RFC 7489 3.1.1), link text that shows one domain and
 * links to another, URL shorteners, an all-caps or exclamation-heavy Subject, bulk mail
 * without List-Unsubscribe (RFC 2369, RFC 8058), insecure or invalid image URLs, and text
 * parts in base64 that could be plain.
 *
 * Pure: the message is a buffer; nothing is read, run or printed. Thread-safe.
 */
#ifndef PIGEON_LINT_H
#define PIGEON_LINT_H

#include <stddef.h>

#include "pigeon/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pigeon_lint_severity {
    PIGEON_LINT_WARNING = 1, /* likely to hurt delivery or display */
    PIGEON_LINT_ERROR = 2,   /* breaks a rule receivers enforce, or looks like phishing */
} pigeon_lint_severity;

typedef struct pigeon_lint_finding {
    pigeon_lint_severity severity; /* warning or error */
    const char *code;              /* stable identifier ("html_clipped"), static */
    char *reason;                  /* what was found, one line, owned */
    char *fix;                     /* what to do, one line, owned */
} pigeon_lint_finding;

typedef struct pigeon_lint_report {
    pigeon_lint_finding *items; /* count findings in message order, owned */
    size_t count;               /* number of findings */
    size_t cap;                 /* allocated items */
} pigeon_lint_report;

typedef struct pigeon_lint_opts {
    const char *dkim_domain; /* the d= it will be signed with when not signed yet, or NULL */
    int bulk;                /* nonzero: bulk or merged mail (also detected from
                                Precedence: bulk/list) */
} pigeon_lint_opts;

/* Checks the message in[0..len) (LF or CRLF line endings). opts may be NULL. out is
 * zeroed first; release it with pigeon_lint_report_cleanup(). A message whose header
 * does not parse is a finding, not a failure. Returns PIGEON_OK or PIGEON_ERR_NOMEM. */
pigeon_err pigeon_lint_message(const char *in, size_t len, const pigeon_lint_opts *opts,
                               pigeon_lint_report *out);
/* The worst severity in the report: 0 (clean), 1 (warnings), 2 (errors). */
int pigeon_lint_worst(const pigeon_lint_report *r);
/* Frees the findings and zeroes r. NULL is a no-op. */
void pigeon_lint_report_cleanup(pigeon_lint_report *r);

#ifdef __cplusplus
}
#endif
#endif
