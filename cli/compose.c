/*
 * compose.c - turns the message options of the command line into a pigeon_message.
 *
 * Used by `pigeon send` now and by the sendmail and queue front ends later. Address
 * options are handed whole to the library, which parses RFC 5322 address lists (a comma
 * inside a quoted display name, "Zhang, San" <zs@example.cn>, is not a separator); this
 * file only splits what is the command line's own syntax: "Name: value" for --header and
 * the ";name=" / ";type=" suffixes of --attach and --inline.
 *
 * Every failure is reported as one line naming the option and the value, and mapped to
 * a sysexits.h status: EX_USAGE for what the user must spell differently, EX_DATAERR for
 * content the library refuses (invalid address, CR/LF injection, invalid UTF-8),
 * EX_NOINPUT for an input file that cannot be opened.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "cli.h"
#include "tpl.h"

/* Suffixes of an --attach / --inline value that override the part's name and type. */
#define SPEC_NAME ";name="
#define SPEC_TYPE ";type="
#define SPEC_LEN  6

/* An --attach or --inline value taken apart. Strings are malloc'd. */
typedef struct part_spec {
    char *path; /* the file to read */
    char *name; /* ;name= override, or NULL */
    char *type; /* ;type= override, or NULL */
} part_spec;

/* Buffer size for a value quoted in a message (see cli_shorten()). */
#define QUOTE_MAX 256

static int set_once(const char **slot, const char *arg, const char *option);
static int add_addresses(pigeon_message *msg, const cli_compose *c);
static int add_headers(pigeon_message *msg, const cli_strv *headers);
static int add_subject(pigeon_message *msg, const cli_compose *c);
static int add_bodies(pigeon_message *msg, const cli_compose *c);
static int add_parts(pigeon_message *msg, const cli_strv *specs, const char *option, int is_inline);
static const char *reason(const pigeon_message *msg);

void cli_compose_init(cli_compose *c)
{
    memset(c, 0, sizeof *c);
}

void cli_compose_cleanup(cli_compose *c)
{
    if (c == NULL)
        return;
    cli_strv_cleanup(&c->to);
    cli_strv_cleanup(&c->cc);
    cli_strv_cleanup(&c->bcc);
    cli_strv_cleanup(&c->reply_to);
    cli_strv_cleanup(&c->headers);
    cli_strv_cleanup(&c->attach);
    cli_strv_cleanup(&c->inlines);
    cli_strv_cleanup(&c->html.css);
}

/* Options that take one value: a second one is a usage error rather than a silent
 * override, so that a script's mistake is seen. */
static int set_once(const char **slot, const char *arg, const char *option)
{
    if (*slot != NULL) {
        cli_error("%s given twice (see pigeon help send)", option);
        return EX_USAGE;
    }
    *slot = arg;
    return 0;
}

static int push(cli_strv *v, const char *arg)
{
    if (cli_strv_push(v, arg) != 0) {
        cli_error("out of memory");
        return EX_OSERR;
    }
    return 0;
}

int cli_compose_option(cli_compose *c, int opt, const char *arg)
{
    switch (opt) {
    case CLI_OPT_FROM:
        return set_once(&c->from, arg, "--from");
    case CLI_OPT_TO:
        return push(&c->to, arg);
    case CLI_OPT_CC:
        return push(&c->cc, arg);
    case CLI_OPT_BCC:
        return push(&c->bcc, arg);
    case CLI_OPT_REPLY_TO:
        return push(&c->reply_to, arg);
    case CLI_OPT_SUBJECT:
        return set_once(&c->subject, arg, "--subject");
    case CLI_OPT_HEADER:
        return push(&c->headers, arg);
    case CLI_OPT_TEXT:
        return set_once(&c->text, arg, "--text");
    case CLI_OPT_TEXT_FILE:
        return set_once(&c->text_file, arg, "--text-file");
    case CLI_OPT_HTML_FILE:
        return set_once(&c->html_file, arg, "--html-file");
    case CLI_OPT_ATTACH:
        return push(&c->attach, arg);
    case CLI_OPT_INLINE:
        return push(&c->inlines, arg);
    case CLI_OPT_CHARSET:
        return set_once(&c->charset, arg, "--charset");
    default:
        return cli_html_option(c, opt, arg);
    }
}

/* Checks what the command line alone can tell: required options and conflicts. */
static int check_usage(const cli_compose *c)
{
    if (c->from == NULL || c->from[0] == '\0') {
        cli_error("missing --from (see pigeon help send)");
        return EX_USAGE;
    }
    if (c->to.count + c->cc.count + c->bcc.count == 0) {
        cli_error("no recipients: give --to, --cc or --bcc (see pigeon help send)");
        return EX_USAGE;
    }
    if (c->text != NULL && c->text_file != NULL) {
        cli_error("--text and --text-file both given; use one");
        return EX_USAGE;
    }
    if (c->text_file != NULL && c->html_file != NULL && strcmp(c->text_file, "-") == 0 &&
        strcmp(c->html_file, "-") == 0) {
        cli_error("--text-file and --html-file cannot both read standard input");
        return EX_USAGE;
    }
    return 0;
}

int cli_compose_build(const cli_compose *c, pigeon_message **out)
{
    char quoted[QUOTE_MAX];
    pigeon_message *msg = NULL;
    int status;
    *out = NULL;
    if ((status = check_usage(c)) != 0)
        return status;
    if ((msg = pigeon_message_new()) == NULL) {
        cli_error("out of memory");
        return EX_OSERR;
    }
    if (c->charset != NULL && pigeon_message_set_charset(msg, c->charset) != PIGEON_OK) {
        cli_error("unsupported --charset \"%s\" (utf-8, gb18030 or gbk)",
                  cli_shorten(c->charset, quoted, sizeof quoted));
        status = EX_USAGE;
        goto fail;
    }
    if ((status = add_addresses(msg, c)) != 0)
        goto fail;
    if ((status = add_subject(msg, c)) != 0)
        goto fail;
    if ((status = add_headers(msg, &c->headers)) != 0 ||
        (status = cli_tpl_add_headers(c->tpl, msg)) != 0 || (status = add_bodies(msg, c)) != 0 ||
        (status = add_parts(msg, &c->attach, "--attach", 0)) != 0 ||
        (status = add_parts(msg, &c->inlines, "--inline", 1)) != 0)
        goto fail;
    *out = msg;
    return 0;
fail:
    pigeon_message_free(msg);
    return status;
}

/*
 * The library's reason without its leading "Field: " (our message names the option
 * already): "To: unexpected '@'" -> "unexpected '@'". A prefix with a space in it
 * ("cannot open x: ...") is part of the sentence and stays.
 */
static const char *reason(const pigeon_message *msg)
{
    const char *why = pigeon_message_error(msg);
    const char *colon = strstr(why, ": ");
    if (colon == NULL || colon == why || memchr(why, ' ', (size_t)(colon - why)) != NULL)
        return why[0] ? why : pigeon_strerror(pigeon_message_status(msg));
    return colon + 2;
}

/* ---- addresses ---- */

/* The address parser's reason repeats the input ('invalid address "a@b@c": unexpected
 * ...'); our message quotes the option's value already, so only the cause is kept. */
static const char *address_reason(const pigeon_message *msg)
{
    static const char lead[] = "invalid address \"";
    const char *why = reason(msg);
    const char *end = strncmp(why, lead, sizeof lead - 1) == 0 ? strstr(why, "\": ") : NULL;
    return end != NULL ? end + 3 : why;
}

typedef pigeon_err (*list_setter)(pigeon_message *, const char *);

static int add_list(pigeon_message *msg, const cli_strv *values, list_setter set,
                    const char *option)
{
    char quoted[QUOTE_MAX];
    for (size_t i = 0; i < values->count; i++) {
        const char *v = values->items[i];
        if (v[0] == '\0') {
            cli_error("%s needs a value (see pigeon help send)", option);
            return EX_USAGE;
        }
        if (set(msg, v) != PIGEON_OK) {
            cli_error("invalid %s address \"%s\": %s", option,
                      cli_shorten(v, quoted, sizeof quoted), address_reason(msg));
            return cli_exit_status(pigeon_message_status(msg));
        }
    }
    return 0;
}

static int add_addresses(pigeon_message *msg, const cli_compose *c)
{
    char quoted[QUOTE_MAX];
    int status;
    if (pigeon_message_set_from(msg, c->from) != PIGEON_OK) {
        cli_error("invalid --from address \"%s\": %s", cli_shorten(c->from, quoted, sizeof quoted),
                  address_reason(msg));
        return cli_exit_status(pigeon_message_status(msg));
    }
    if ((status = add_list(msg, &c->to, pigeon_message_add_to, "--to")) != 0 ||
        (status = add_list(msg, &c->cc, pigeon_message_add_cc, "--cc")) != 0 ||
        (status = add_list(msg, &c->bcc, pigeon_message_add_bcc, "--bcc")) != 0 ||
        (status = add_list(msg, &c->reply_to, pigeon_message_add_reply_to, "--reply-to")) != 0)
        return status;
    return 0;
}

/* ---- custom header fields ---- */

/* "Name: value" -> name (copied into a buffer) and value (leading blanks skipped, as
 * RFC 5322 2.2 unstructured text starts after the colon and optional whitespace). */
static int add_header(pigeon_message *msg, const char *arg)
{
    char quoted[QUOTE_MAX];
    const char *colon = strchr(arg, ':');
    if (colon == NULL || colon == arg) {
        cli_error("invalid --header \"%s\": expected \"Name: value\"",
                  cli_shorten(arg, quoted, sizeof quoted));
        return EX_DATAERR;
    }
    size_t name_len = (size_t)(colon - arg);
    char *name = malloc(name_len + 1);
    if (name == NULL) {
        cli_error("out of memory");
        return EX_OSERR;
    }
    memcpy(name, arg, name_len);
    name[name_len] = '\0';
    const char *value = colon + 1;
    value += strspn(value, " \t");
    int status = 0;
    if (pigeon_message_add_header(msg, name, value) != PIGEON_OK) {
        cli_error("invalid --header \"%s\": %s", cli_shorten(arg, quoted, sizeof quoted),
                  reason(msg));
        status = cli_exit_status(pigeon_message_status(msg));
    }
    free(name);
    return status;
}

static int add_headers(pigeon_message *msg, const cli_strv *headers)
{
    for (size_t i = 0; i < headers->count; i++) {
        int status = add_header(msg, headers->items[i]);
        if (status != 0)
            return status;
    }
    return 0;
}

/* ---- bodies ---- */

/* The subject, expanded as a template (tpl.h) when templates are on. */
static int add_subject(pigeon_message *msg, const cli_compose *c)
{
    char quoted[QUOTE_MAX];
    size_t len = c->subject ? strlen(c->subject) : 0;
    char *subject = c->subject ? strdup(c->subject) : NULL;
    int status = 0;
    if (c->subject == NULL)
        return 0;
    if (subject == NULL || (status = cli_tpl_apply(c->tpl, "--subject", &subject, &len)) != 0) {
        free(subject);
        return status ? status : EX_OSERR;
    }
    if (pigeon_message_set_subject(msg, subject) != PIGEON_OK) {
        cli_error("invalid --subject \"%s\": %s", cli_shorten(subject, quoted, sizeof quoted),
                  reason(msg));
        status = cli_exit_status(pigeon_message_status(msg));
    }
    free(subject);
    return status;
}

typedef pigeon_err (*body_setter)(pigeon_message *, const char *, size_t);

/* Reads a body from path ("-" = stdin) and sets it. */
static int body_from_file(pigeon_message *msg, struct cli_tpl *tpl, const char *path,
                          body_setter set, const char *option)
{
    char quoted[QUOTE_MAX];
    char *data = NULL;
    size_t len = 0;
    int status = 0;
    /* A merge compiles the file's template once; later rows need not read it. */
    pigeon_err err =
        cli_tpl_cached(tpl, option) ? PIGEON_OK : cli_read_input(path, CLI_BODY_MAX, &data, &len);
    cli_shorten(path, quoted, sizeof quoted);
    if (err == PIGEON_ERR_NOTFOUND || err == PIGEON_ERR_IO) {
        cli_error("cannot read %s \"%s\": %s", option, quoted, strerror(errno));
        return err == PIGEON_ERR_NOTFOUND ? EX_NOINPUT : EX_IOERR;
    }
    if (err == PIGEON_ERR_TOO_LARGE) {
        cli_error("%s \"%s\" is larger than %zu MiB", option, quoted, CLI_BODY_MAX >> 20);
        return EX_DATAERR;
    }
    if (err != PIGEON_OK) {
        cli_error("%s \"%s\": %s", option, quoted, pigeon_strerror(err));
        return cli_exit_status(err);
    }
    if ((status = cli_tpl_apply(tpl, option, &data, &len)) != 0) {
        free(data);
        return status;
    }
    if (set(msg, data, len) != PIGEON_OK) {
        cli_error("invalid %s \"%s\": %s", option, quoted, reason(msg));
        status = cli_exit_status(pigeon_message_status(msg));
    }
    free(data);
    return status;
}

static int add_bodies(pigeon_message *msg, const cli_compose *c)
{
    char quoted[QUOTE_MAX];
    int status = 0;
    if (c->text != NULL) {
        size_t len = strlen(c->text);
        char *text = strdup(c->text);
        if (text == NULL || (status = cli_tpl_apply(c->tpl, "--text", &text, &len)) != 0) {
            free(text);
            return status ? status : EX_OSERR;
        }
        if (pigeon_message_set_text(msg, text, len) != PIGEON_OK) {
            cli_error("invalid --text \"%s\": %s", cli_shorten(text, quoted, sizeof quoted),
                      reason(msg));
            status = cli_exit_status(pigeon_message_status(msg));
        }
        free(text);
        if (status != 0)
            return status;
    }
    if (c->text_file != NULL)
        status = body_from_file(msg, c->tpl, c->text_file, pigeon_message_set_text, "--text-file");
    if (status == 0 && (c->html_file != NULL || c->html.markdown_file != NULL))
        status = cli_html_body(msg, c);
    return status;
}

/* ---- attachments and inline parts ---- */

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The offset of the next ";name=" or ";type=" in s at or after from, or strlen(s). */
static size_t next_marker(const char *s, size_t from)
{
    for (size_t i = from; s[i] != '\0'; i++) {
        if (strncmp(s + i, SPEC_NAME, SPEC_LEN) == 0 || strncmp(s + i, SPEC_TYPE, SPEC_LEN) == 0)
            return i;
    }
    return strlen(s);
}

static char *copy_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/*
 * Where the path ends in PATH;name=N;type=T. A value that names an existing file as given
 * is all path (a file may have ';' in its name). Otherwise the path ends at the first
 * marker whose prefix is an existing file, or else at the first marker.
 */
static size_t path_end(const char *arg)
{
    size_t len = strlen(arg), first = next_marker(arg, 0);
    if (file_exists(arg))
        return len;
    for (size_t at = first; at < len; at = next_marker(arg, at + 1)) {
        char *prefix = copy_range(arg, at);
        int exists = prefix != NULL && file_exists(prefix);
        free(prefix);
        if (exists)
            return at;
    }
    return first;
}

static void part_spec_cleanup(part_spec *spec)
{
    free(spec->path);
    free(spec->name);
    free(spec->type);
    memset(spec, 0, sizeof *spec);
}

/* Splits an --attach / --inline value; returns 0 or an exit status (printed). */
static int part_spec_parse(const char *arg, const char *option, part_spec *spec)
{
    char quoted[QUOTE_MAX];
    size_t len = strlen(arg), at = path_end(arg);
    memset(spec, 0, sizeof *spec);
    if ((spec->path = copy_range(arg, at)) == NULL)
        goto nomem;
    while (at < len) {
        size_t end = next_marker(arg, at + 1);
        char **slot = strncmp(arg + at, SPEC_NAME, SPEC_LEN) == 0 ? &spec->name : &spec->type;
        if (*slot != NULL) {
            cli_error("%s \"%s\": %.4s= given twice", option,
                      cli_shorten(arg, quoted, sizeof quoted), arg + at + 1);
            part_spec_cleanup(spec);
            return EX_USAGE;
        }
        if ((*slot = copy_range(arg + at + SPEC_LEN, end - at - SPEC_LEN)) == NULL)
            goto nomem;
        at = end;
    }
    return 0;
nomem:
    part_spec_cleanup(spec);
    cli_error("out of memory");
    return EX_OSERR;
}

static int add_part(pigeon_message *msg, const char *arg, const char *option, int is_inline)
{
    char quoted[QUOTE_MAX];
    part_spec spec;
    int status = part_spec_parse(arg, option, &spec);
    if (status != 0)
        return status;
    /* An inline part is referenced from the HTML as cid:<the file's base name>. */
    pigeon_part_opts opts = {spec.name, spec.type, is_inline ? cli_base_name(spec.path) : NULL};
    errno = 0;
    if (pigeon_message_attach_file(msg, spec.path, &opts) != PIGEON_OK) {
        pigeon_err err = pigeon_message_status(msg);
        if (err == PIGEON_ERR_NOTFOUND)
            cli_error("cannot open %s \"%s\": %s", option,
                      cli_shorten(spec.path, quoted, sizeof quoted),
                      errno != 0 ? strerror(errno) : reason(msg));
        else
            cli_error("invalid %s \"%s\": %s", option, cli_shorten(arg, quoted, sizeof quoted),
                      reason(msg));
        status = cli_exit_status(err);
    }
    part_spec_cleanup(&spec);
    return status;
}

static int add_parts(pigeon_message *msg, const cli_strv *specs, const char *option, int is_inline)
{
    for (size_t i = 0; i < specs->count; i++) {
        int status = add_part(msg, specs->items[i], option, is_inline);
        if (status != 0)
            return status;
    }
    return 0;
}

void cli_compose_usage(FILE *out)
{
    fputs("Addresses (RFC 5322; each option may be repeated and may hold a comma-separated\n"
          "list: --to '\"Zhang, San\" <zs@example.cn>, li@example.cn'):\n"
          "  --from ADDRESS          the author (required)\n"
          "  --to LIST               recipients shown in To:\n"
          "  --cc LIST               recipients shown in Cc:\n"
          "  --bcc LIST              recipients not shown in the message\n"
          "  --reply-to LIST         where replies go\n"
          "Content:\n"
          "  --subject TEXT          the subject (UTF-8)\n"
          "  --header 'NAME: VALUE'  an extra header field (repeatable)\n"
          "  --text TEXT             the plain-text body\n"
          "  --text-file PATH        the plain-text body from a file (- for standard input)\n"
          "  --html-file PATH        the HTML body from a file (- for standard input)\n"
          "  --attach PATH[;name=NAME][;type=TYPE]\n"
          "                          attach a file (repeatable), optionally under another\n"
          "                          name or content type: "
          "'a.bin;name=报告.pdf;type=application/pdf'\n"
          "  --inline PATH[;name=NAME][;type=TYPE]\n"
          "                          a part the HTML shows inline (repeatable), referenced as\n"
          "                          cid:BASENAME where BASENAME is the file's base name\n"
          "  --charset CHARSET       charset of the text parts: utf-8 (default), gb18030, gbk\n",
          out);
    cli_html_usage(out);
}
