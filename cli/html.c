/*
 * html.c - the HTML body of `pigeon send`: --html-file or --markdown-file through the
 * library's pipeline (pigeon/html.h): CSS inlined (--css adds sheets, --no-inline-css
 * keeps <style> as written), local and data: images attached inline as cid: parts
 * (--no-embed-images leaves them), and the text part generated from the HTML, or for
 * Markdown the source itself, unless --text, --text-file or --no-text.
 *
 * Paths of images are relative to the HTML file's folder (the current folder for
 * standard input), as a browser opening the file would resolve them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"
#include "tpl.h"

#define QUOTE_MAX 256

int cli_html_option(cli_compose *c, int opt, const char *arg)
{
    switch (opt) {
    case CLI_OPT_CSS:
        if (cli_strv_push(&c->html.css, arg) != 0) {
            cli_error("out of memory");
            return EX_OSERR;
        }
        return 0;
    case CLI_OPT_MARKDOWN_FILE:
        if (c->html.markdown_file != NULL) {
            cli_error("--markdown-file given twice (see pigeon help send)");
            return EX_USAGE;
        }
        c->html.markdown_file = arg;
        return 0;
    case CLI_OPT_NO_INLINE_CSS:
        c->html.no_inline_css = 1;
        return 0;
    case CLI_OPT_NO_TEXT:
        c->html.no_text = 1;
        return 0;
    case CLI_OPT_NO_EMBED_IMAGES:
        c->html.no_embed_images = 1;
        return 0;
    default:
        return -1;
    }
}

/* Reads an input named by option; prints and returns an exit status on failure. */
static int read_input(const char *path, const char *option, char **data, size_t *len)
{
    char quoted[QUOTE_MAX];
    pigeon_err err = cli_read_input(path, CLI_BODY_MAX, data, len);
    if (err == PIGEON_OK)
        return 0;
    cli_shorten(path, quoted, sizeof quoted);
    if (err == PIGEON_ERR_NOTFOUND || err == PIGEON_ERR_IO) {
        cli_error("cannot read %s \"%s\": %s", option, quoted, strerror(errno));
        return err == PIGEON_ERR_NOTFOUND ? EX_NOINPUT : EX_IOERR;
    }
    if (err == PIGEON_ERR_TOO_LARGE) {
        cli_error("%s \"%s\" is larger than %zu MiB", option, quoted, CLI_BODY_MAX >> 20);
        return EX_DATAERR;
    }
    cli_error("%s \"%s\": %s", option, quoted, pigeon_strerror(err));
    return cli_exit_status(err);
}

/* Every --css file, one after the other. */
static int read_css(const cli_compose *c, char **css, size_t *len)
{
    size_t total = 0;
    char *all = NULL;
    *css = NULL;
    *len = 0;
    for (size_t i = 0; i < c->html.css.count; i++) {
        char *data;
        size_t n;
        int status = read_input(c->html.css.items[i], "--css", &data, &n);
        if (status != 0) {
            free(all);
            return status;
        }
        char *grown = realloc(all, total + n + 2);
        if (grown == NULL) {
            free(data);
            free(all);
            cli_error("out of memory");
            return EX_OSERR;
        }
        all = grown;
        memcpy(all + total, data, n);
        total += n;
        all[total++] = '\n';
        all[total] = '\0';
        free(data);
    }
    *css = all;
    *len = total;
    return 0;
}

/* The folder of path with a trailing slash ("" for a bare name or standard input). */
static char *folder_of(const char *path)
{
    const char *slash = strcmp(path, "-") == 0 ? NULL : strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) + 1 : 0;
    char *dir = malloc(n + 1);
    if (dir != NULL) {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return dir;
}

static int attach_image(pigeon_message *msg, const pigeon_html_image *im, const char *dir,
                        const char *source)
{
    char quoted[QUOTE_MAX], quoted_src[QUOTE_MAX];
    pigeon_part_opts opts = {NULL, im->content_type, im->cid};
    if (im->path == NULL) {
        if (pigeon_message_attach_buffer(msg, im->data, im->len, &opts) == PIGEON_OK)
            return 0;
        cli_error("cannot embed a data: image: %s", pigeon_message_error(msg));
        return cli_exit_status(pigeon_message_status(msg));
    }
    size_t n = strlen(dir) + strlen(im->path) + 1;
    char *full = malloc(n);
    if (full == NULL) {
        cli_error("out of memory");
        return EX_OSERR;
    }
    snprintf(full, n, "%s%s", im->path[0] == '/' ? "" : dir, im->path);
    errno = 0;
    int status = 0;
    if (pigeon_message_attach_file(msg, full, &opts) != PIGEON_OK) {
        pigeon_err err = pigeon_message_status(msg);
        cli_error("image \"%s\" in \"%s\": %s", cli_shorten(full, quoted, sizeof quoted),
                  cli_shorten(source, quoted_src, sizeof quoted_src),
                  errno != 0 ? strerror(errno) : pigeon_message_error(msg));
        status = cli_exit_status(err);
    }
    free(full);
    return status;
}

/* The pipeline's options for c (text: the Markdown source, which is the text part). */
static pigeon_html_opts html_opts(const cli_compose *c, const char *css, size_t css_len,
                                  const char *text)
{
    int given_text = c->text != NULL || c->text_file != NULL;
    pigeon_html_opts opts = {0};
    opts.no_inline = c->html.no_inline_css;
    opts.no_text = c->html.no_text || given_text || text != NULL;
    opts.no_images = c->html.no_embed_images;
    opts.css = css;
    opts.css_len = css_len;
    return opts;
}

/* Puts the pipeline's results into msg (and cleans res up). */
static int finish(pigeon_message *msg, const cli_compose *c, pigeon_html_result *res,
                  const char *source, const char *text)
{
    int given_text = c->text != NULL || c->text_file != NULL;
    int status = 0;
    char *dir = folder_of(source);
    if (dir == NULL) {
        cli_error("out of memory");
        status = EX_OSERR;
    }
    if (status == 0 && pigeon_message_set_html(msg, res->html, res->html_len) != PIGEON_OK) {
        cli_error("invalid HTML body: %s", pigeon_message_error(msg));
        status = cli_exit_status(pigeon_message_status(msg));
    }
    const char *body = text != NULL && !given_text && !c->html.no_text ? text : res->text;
    if (status == 0 && body != NULL && pigeon_message_set_text(msg, body, strlen(body)) != 0) {
        cli_error("invalid text part: %s", pigeon_message_error(msg));
        status = cli_exit_status(pigeon_message_status(msg));
    }
    for (size_t i = 0; status == 0 && i < res->nimages; i++)
        status = attach_image(msg, &res->images[i], dir, source);
    free(dir);
    pigeon_html_result_cleanup(res);
    return status;
}

/* Runs the pipeline on html and puts the results into msg. */
static int apply(pigeon_message *msg, const cli_compose *c, const char *html, size_t len,
                 const char *css, size_t css_len, const char *source, const char *text,
                 const char *option)
{
    pigeon_html_opts opts = html_opts(c, css, css_len, text);
    pigeon_html_result res;
    pigeon_err err = pigeon_html_prepare(html, len, &opts, &res);
    if (err != PIGEON_OK) {
        char quoted[QUOTE_MAX];
        cli_error("invalid %s \"%s\": %s", option, cli_shorten(source, quoted, sizeof quoted),
                  err == PIGEON_ERR_CHARSET ? "not valid UTF-8" : pigeon_strerror(err));
        return cli_exit_status(err);
    }
    return finish(msg, c, &res, source, text);
}

int cli_html_body(pigeon_message *msg, const cli_compose *c)
{
    char *input = NULL, *css = NULL, *html = NULL;
    size_t len = 0, css_len = 0, html_len = 0;
    int markdown = c->html.markdown_file != NULL;
    const char *source = markdown ? c->html.markdown_file : c->html_file;
    int status;
    if (c->html_file != NULL && markdown) {
        cli_error("--html-file and --markdown-file both given; use one");
        return EX_USAGE;
    }
    if (c->text_file != NULL && strcmp(c->text_file, "-") == 0 && strcmp(source, "-") == 0) {
        cli_error("--text-file and %s cannot both read standard input",
                  markdown ? "--markdown-file" : "--html-file");
        return EX_USAGE;
    }
    const char *option = markdown ? "--markdown-file" : "--html-file";
    if ((status = read_css(c, &css, &css_len)) != 0)
        goto done;
    /* A merge row after the first: the template's pipeline ran once (tpl_html.c), the
     * row's values are copied in, unless this row or template needs the whole way. */
    if (!markdown && cli_tpl_cached(c->tpl, option)) {
        pigeon_html_opts opts = html_opts(c, css, css_len, NULL);
        pigeon_html_result res;
        status = cli_tpl_html(c->tpl, &opts, &res);
        if (status == 0)
            status = finish(msg, c, &res, source, NULL);
        if (status != -1)
            goto done;
        status = 0;
    }
    /* Templates expand in the source (HTML-escaping values in HTML), before Markdown, the
     * inliner and the text part; a merge compiles the file's template once. */
    if ((!cli_tpl_cached(c->tpl, option) &&
         (status = read_input(source, option, &input, &len)) != 0) ||
        (status = cli_tpl_apply(c->tpl, option, &input, &len)) != 0)
        goto done;
    if (!markdown) {
        status = apply(msg, c, input, len, css, css_len, source, NULL, "--html-file");
        goto done;
    }
    /* --css replaces the default Markdown stylesheet rather than adding to it. */
    pigeon_err err = pigeon_html_from_markdown(input, len, css, &html, &html_len);
    if (err != PIGEON_OK) {
        cli_error("cannot render --markdown-file: %s", pigeon_strerror(err));
        status = cli_exit_status(err);
        goto done;
    }
    status = apply(msg, c, html, html_len, NULL, 0, source, input, "--markdown-file");
done:
    free(input);
    free(css);
    free(html);
    return status;
}

void cli_html_usage(FILE *out)
{
    fputs("HTML (for --html-file and --markdown-file):\n"
          "  --markdown-file PATH    the body from Markdown (CommonMark with GitHub tables,\n"
          "                          strikethrough, autolinks; - for standard input); the\n"
          "                          Markdown itself is the text part\n"
          "  --css FILE              a stylesheet to inline as well (repeatable); for\n"
          "                          Markdown it replaces the default stylesheet\n"
          "  --no-inline-css         send <style> as written (CSS is inlined by default)\n"
          "  --no-text               no text part generated from the HTML\n"
          "  --no-embed-images       leave local and data: image references as written\n"
          "                          (they are attached as inline cid: parts by default)\n",
          out);
}
