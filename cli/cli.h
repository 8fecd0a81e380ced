/*
 * cli.h - declarations shared by the files of the pigeon command.
 *
 * The command is a dispatch table of subcommands (main.c), one file per subcommand
 * (send.c, help.c, ...), the composer that turns the message options into a
 * pigeon_message (compose.c, shared by send and later sendmail and queue), and small
 * utilities (util.c: one-line error messages, sysexits mapping, reading inputs).
 *
 * Exit statuses follow sysexits.h, as sendmail(8) and msmtp(1) do, so that scripts and
 * MTAs calling us can tell a usage error (64) from bad data (65), a missing input (66) or
 * a temporary failure (75).
 */
#ifndef PIGEON_CLI_H
#define PIGEON_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

#include "pigeon/pigeon.h"

/* ---- dispatch (main.c) ---- */

/* One subcommand. */
typedef struct cli_command {
    const char *name;                  /* the word after "pigeon" ("send") */
    const char *summary;               /* one line for `pigeon --help` */
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand's name; returns an exit
                                          status (sysexits.h) */
    void (*usage)(FILE *out);          /* the full usage text for `pigeon help NAME` */
} cli_command;

/* The subcommand called name, or NULL. */
const cli_command *cli_command_find(const char *name);
/* Writes the "  name  summary" list of every subcommand. */
void cli_command_list(FILE *out);

/* ---- subcommands (one file each) ---- */

int cli_send_run(int argc, char **argv);
void cli_send_usage(FILE *out);
int cli_providers_run(int argc, char **argv);
void cli_providers_usage(FILE *out);
int cli_config_run(int argc, char **argv);
void cli_config_usage(FILE *out);
int cli_check_run(int argc, char **argv);
void cli_check_usage(FILE *out);
int cli_queue_run(int argc, char **argv);
void cli_queue_usage(FILE *out);
int cli_daemon_run(int argc, char **argv);
void cli_daemon_usage(FILE *out);
int cli_dns_run(int argc, char **argv);
void cli_dns_usage(FILE *out);
int cli_serve_run(int argc, char **argv);
void cli_serve_usage(FILE *out);
int cli_key_run(int argc, char **argv);
void cli_key_usage(FILE *out);
int cli_webhook_run(int argc, char **argv);
void cli_webhook_usage(FILE *out);
int cli_dkim_run(int argc, char **argv);
void cli_dkim_usage_cmd(FILE *out);
int cli_lint_run(int argc, char **argv);
void cli_lint_usage(FILE *out);
int cli_suppress_run(int argc, char **argv);
void cli_suppress_usage(FILE *out);
int cli_bounces_run(int argc, char **argv);
void cli_bounces_usage(FILE *out);
int cli_help_run(int argc, char **argv);
void cli_help_usage(FILE *out);
/* The overview printed by `pigeon --help` and `pigeon help`. */
void cli_help_overview(FILE *out);

/* ---- utilities (util.c) ---- */

/* Largest text or HTML body read from a file or standard input (bodies are held in
 * memory; attachments are streamed and have no such bound). */
#define CLI_BODY_MAX ((size_t)64 * 1024 * 1024)

/* A growable array of borrowed strings (option values pointing into argv). */
typedef struct cli_strv {
    const char **items; /* the strings, borrowed */
    size_t count;       /* number of items */
    size_t cap;         /* allocated items */
} cli_strv;

/* Appends s; returns 0, or -1 when out of memory. */
int cli_strv_push(cli_strv *v, const char *s);
/* Frees the array (not the strings) and zeroes it. NULL is a no-op. */
void cli_strv_cleanup(cli_strv *v);

/* Prints "pigeon: MESSAGE" as exactly one line on standard error: control characters,
 * line separators (U+0085, U+2028, U+2029) and invalid UTF-8 in the formatted text are
 * shown as \r, \n, \xNN or \uNNNN escapes, so that no input can add a line. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copies s into out (size n) shortened to at most about 60 characters (at a UTF-8
 * character boundary, "..." appended) for quoting a user's value in a message. */
const char *cli_shorten(const char *s, char *out, size_t n);

/* The option getopt_long just refused, as the user typed it ("--fro", "-x"), shortened
 * into out for an error message. */
const char *cli_typed_option(char **argv, char *out, size_t n);

/* The exit status (sysexits.h) for a library error. */
int cli_exit_status(pigeon_err err);

/* The base name of a path ("/usr/sbin/sendmail" -> "sendmail"); a pointer into path. */
const char *cli_base_name(const char *path);

/* Reads the whole file at path ("-" is standard input) into a malloc'd, NUL-terminated
 * buffer (*out, *len), freed by the caller. Returns PIGEON_ERR_NOTFOUND if it cannot be
 * opened (errno set), PIGEON_ERR_IO on a read error (errno set), PIGEON_ERR_TOO_LARGE if
 * it holds more than cap bytes, PIGEON_ERR_NOMEM. */
pigeon_err cli_read_input(const char *path, size_t cap, char **out, size_t *len);

/* An unlinked temporary file in $TMPDIR (else /tmp) named after what, mode 0600 (mkstemp):
 * it disappears with the process whatever happens. Returns the fd, or -1 with errno set. */
int cli_temp_file(const char *what);
/* Reads a secret key from a file (never the command line, where ps shows it): the file's
 * bytes without a final line break, at least min octets. 0 with *key (malloc'd; wipe it
 * with OPENSSL_cleanse before free) and *len, or -1 after saying why ("WHO: ... the WHAT"). */
int cli_secret_key_read(const char *who, const char *what, const char *path, size_t min, char **key,
                        size_t *len);

/* ---- composing (compose.c) ---- */

/* getopt_long values of the message options, beyond any single character. */
enum cli_compose_opt {
    CLI_OPT_FROM = 0x100,
    CLI_OPT_TO,
    CLI_OPT_CC,
    CLI_OPT_BCC,
    CLI_OPT_REPLY_TO,
    CLI_OPT_SUBJECT,
    CLI_OPT_HEADER,
    CLI_OPT_TEXT,
    CLI_OPT_TEXT_FILE,
    CLI_OPT_HTML_FILE,
    CLI_OPT_ATTACH,
    CLI_OPT_INLINE,
    CLI_OPT_CHARSET,
    CLI_OPT_CSS, /* the HTML options (html.c) */
    CLI_OPT_MARKDOWN_FILE,
    CLI_OPT_NO_INLINE_CSS,
    CLI_OPT_NO_TEXT,
    CLI_OPT_NO_EMBED_IMAGES,
    CLI_OPT_COMPOSE_END /* first value free for a subcommand's own options */
};

/* The message options as struct option initializers, for a subcommand's option table. */
#define CLI_COMPOSE_LONGOPTS                                                                       \
    {"from", required_argument, NULL, CLI_OPT_FROM}, {"to", required_argument, NULL, CLI_OPT_TO},  \
        {"cc", required_argument, NULL, CLI_OPT_CC},                                               \
        {"bcc", required_argument, NULL, CLI_OPT_BCC},                                             \
        {"reply-to", required_argument, NULL, CLI_OPT_REPLY_TO},                                   \
        {"subject", required_argument, NULL, CLI_OPT_SUBJECT},                                     \
        {"header", required_argument, NULL, CLI_OPT_HEADER},                                       \
        {"text", required_argument, NULL, CLI_OPT_TEXT},                                           \
        {"text-file", required_argument, NULL, CLI_OPT_TEXT_FILE},                                 \
        {"html-file", required_argument, NULL, CLI_OPT_HTML_FILE},                                 \
        {"attach", required_argument, NULL, CLI_OPT_ATTACH},                                       \
        {"inline", required_argument, NULL, CLI_OPT_INLINE},                                       \
        {"css", required_argument, NULL, CLI_OPT_CSS},                                             \
        {"markdown-file", required_argument, NULL, CLI_OPT_MARKDOWN_FILE},                         \
        {"no-inline-css", no_argument, NULL, CLI_OPT_NO_INLINE_CSS},                               \
        {"no-text", no_argument, NULL, CLI_OPT_NO_TEXT},                                           \
        {"no-embed-images", no_argument, NULL, CLI_OPT_NO_EMBED_IMAGES},                           \
    {                                                                                              \
        "charset", required_argument, NULL, CLI_OPT_CHARSET                                        \
    }

/* The HTML options (html.c). */
typedef struct cli_html_opts {
    cli_strv css;              /* --css files, in order */
    const char *markdown_file; /* --markdown-file path ("-" = stdin), or NULL */
    int no_inline_css;         /* --no-inline-css */
    int no_text;               /* --no-text: no generated text part */
    int no_embed_images;       /* --no-embed-images */
} cli_html_opts;

/* What the user asked the message to be. Every string is borrowed from argv. */
typedef struct cli_compose {
    const char *from;      /* --from, or NULL */
    cli_strv to;           /* --to values, each an RFC 5322 address list */
    cli_strv cc;           /* --cc values */
    cli_strv bcc;          /* --bcc values (envelope only) */
    cli_strv reply_to;     /* --reply-to values */
    const char *subject;   /* --subject, or NULL */
    cli_strv headers;      /* --header "Name: value" values */
    const char *text;      /* --text, or NULL */
    const char *text_file; /* --text-file path ("-" = stdin), or NULL */
    const char *html_file; /* --html-file path ("-" = stdin), or NULL */
    cli_strv attach;       /* --attach PATH[;name=N][;type=T] values */
    cli_strv inlines;      /* --inline PATH[;name=N][;type=T] values */
    const char *charset;   /* --charset, or NULL for UTF-8 */
    struct cli_tpl *tpl;   /* templates and --unsubscribe (tpl.h), or NULL for none */
    cli_html_opts html;    /* --css, --markdown-file, --no-inline-css... */
} cli_compose;

void cli_compose_init(cli_compose *c);
void cli_compose_cleanup(cli_compose *c);

/* Stores one getopt_long result. Returns -1 if opt is not a message option, 0 when
 * stored, or an exit status (EX_USAGE for an option given twice; printed). */
int cli_compose_option(cli_compose *c, int opt, const char *arg);

/* Builds the message. Returns 0 with *out set (freed by the caller), or an exit status
 * with the reason printed as one line: EX_USAGE (no --from, no recipient), EX_DATAERR
 * (an invalid address, header, body...), EX_NOINPUT (an input file cannot be opened). */
int cli_compose_build(const cli_compose *c, pigeon_message **out);

/* Writes the option lines of the message options, for usage texts. */
void cli_compose_usage(FILE *out);

/* ---- HTML bodies (html.c) ---- */

/* Stores an HTML option; -1 if opt is not one, else 0 or an exit status (printed). */
int cli_html_option(cli_compose *c, int opt, const char *arg);
/* Sets the HTML body from --html-file or --markdown-file: CSS inlined, images embedded,
 * the text part generated unless --text/--text-file/--no-text. Returns 0 or an exit status
 * (printed): EX_NOINPUT for a missing file or image (named), EX_DATAERR, EX_USAGE. */
int cli_html_body(pigeon_message *msg, const cli_compose *c);
/* Writes the usage lines of the HTML options. */
void cli_html_usage(FILE *out);

#endif
