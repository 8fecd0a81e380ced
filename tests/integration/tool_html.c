/*
 * tool_html - drives pigeon_html_prepare() for the Python tests and the bench.
 *
 *   tool_html [--css FILE] [--no-inline] [--no-text] [--no-images] [--markdown]
 *             [--html-out FILE] [--text-out FILE] [--images] [--repeat N] [--gen-nested N]
 *             [--gen-big MB] [--gen-selectors N] FILE...
 *
 * Writes the HTML to --html-out (default standard output), the text part to --text-out,
 * and with --images one "cid<TAB>path-or-data:LEN" line per image on standard error.
 * --repeat runs each file N times after one untimed run (for timing: prints "files runs
 * seconds cpu-seconds" on stdout, for the N runs without reading the files).
 * The --gen-* options build the pathological documents of the tests in memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pigeon/html.h"
#include "util/buf.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL)
        return NULL;
    pg_buf b;
    pg_buf_init(&b);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        pg_buf_append(&b, chunk, n);
    if (f != stdin)
        fclose(f);
    return pg_buf_detach(&b, len);
}

static int put(const char *path, const char *s, size_t n)
{
    FILE *f = path ? fopen(path, "wb") : stdout;
    if (f == NULL)
        return -1;
    fwrite(s, 1, n, f);
    if (f != stdout)
        fclose(f);
    return 0;
}

/* The generated documents: deep nesting, a big document, many selectors. */
static char *generate(const char *kind, long n, size_t *len)
{
    pg_buf b;
    pg_buf_init(&b);
    if (strcmp(kind, "nested") == 0) {
        pg_buf_puts(&b, "<style>div { color: red } div > div div span.x { color: blue }</style>");
        for (long i = 0; i < n; i++)
            pg_buf_puts(&b, "<div>");
        pg_buf_puts(&b, "<span class=\"x\">deep</span>");
        for (long i = 0; i < n; i++)
            pg_buf_puts(&b, "</div>");
    } else if (strcmp(kind, "big") == 0) {
        pg_buf_puts(&b, "<style>.a { color: red } td p { margin: 0 } #z { width: 10px }"
                        " .b:hover { color: blue } @media (max-width: 600px) { .a { x: y } }"
                        "</style><table>");
        while (b.len < (size_t)n * 1024 * 1024)
            pg_buf_puts(&b, "<tr><td class=\"a\"><p>Some text &amp; more text in a cell, "
                            "<a href=\"https://example.com/x\">a link</a>.</p></td>"
                            "<td id=\"z\" class=\"b\">second cell</td></tr>\n");
        pg_buf_puts(&b, "</table>");
    } else {
        pg_buf_puts(&b, "<style>");
        for (long i = 0; i < n; i++)
            pg_buf_printf(&b, "%s.c%ld", i ? ", " : "", i);
        pg_buf_puts(&b, " { color: red }\n");
        for (long i = 0; i < n; i++)
            pg_buf_printf(&b, "div > p.c%ld span { margin: %ldpx }\n", i, i);
        pg_buf_puts(&b, "</style>");
        for (long i = 0; i < 1000; i++)
            pg_buf_printf(&b, "<div><p class=\"c%ld\"><span>x</span></p></div>", i * 7);
    }
    return pg_buf_detach(&b, len);
}

int main(int argc, char **argv)
{
    pigeon_html_opts opts = {0};
    const char *html_out = NULL, *text_out = NULL;
    int markdown = 0, list_images = 0;
    long repeat = 0;
    pg_buf css;
    pg_buf_init(&css);
    int i = 1, status = 0;
    const char *gen = NULL;
    long gen_n = 0;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--css") == 0 && i + 1 < argc) {
            size_t n;
            char *s = slurp(argv[++i], &n);
            if (s == NULL)
                return 66;
            pg_buf_append(&css, s, n);
            pg_buf_putc(&css, '\n');
            free(s);
        } else if (strcmp(a, "--no-inline") == 0) {
            opts.no_inline = 1;
        } else if (strcmp(a, "--no-text") == 0) {
            opts.no_text = 1;
        } else if (strcmp(a, "--no-images") == 0) {
            opts.no_images = 1;
        } else if (strcmp(a, "--markdown") == 0) {
            markdown = 1;
        } else if (strcmp(a, "--images") == 0) {
            list_images = 1;
        } else if (strcmp(a, "--html-out") == 0 && i + 1 < argc) {
            html_out = argv[++i];
        } else if (strcmp(a, "--text-out") == 0 && i + 1 < argc) {
            text_out = argv[++i];
        } else if (strcmp(a, "--repeat") == 0 && i + 1 < argc) {
            repeat = strtol(argv[++i], NULL, 10);
        } else if (strncmp(a, "--gen-", 6) == 0 && i + 1 < argc) {
            gen = a + 6;
            gen_n = strtol(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "tool_html: unknown option %s\n", a);
            return 64;
        }
    }
    /* A Markdown mail's text part is its source as written (what `pigeon send
     * --markdown-file` does): no text part is generated from the HTML. */
    if (markdown)
        opts.no_text = 1;
    if (!markdown && css.len > 0) {
        opts.css = css.data;
        opts.css_len = css.len;
    }
    int nfiles = gen ? 1 : argc - i;
    double secs = 0, cpu = 0;
    for (int f = 0; f < nfiles; f++) {
        size_t len;
        char *src = gen ? generate(gen, gen_n, &len) : slurp(argv[i + f], &len);
        if (src == NULL) {
            fprintf(stderr, "tool_html: cannot read %s\n", gen ? gen : argv[i + f]);
            return 66;
        }
        /* With --repeat, one untimed run first (caches, the allocator's first growth), as
         * the bench gives its Node peers a warm-up. */
        struct timespec t0, t1, c0, c1;
        for (long r = repeat > 0 ? -1 : 0; r < (repeat > 0 ? repeat : 1); r++) {
            if (r == 0) {
                clock_gettime(CLOCK_MONOTONIC, &t0);
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
            }
            pigeon_html_result res;
            char *html = src;
            size_t hlen = len;
            if (markdown && pigeon_html_from_markdown(src, len, css.len ? css.data : NULL, &html,
                                                      &hlen) != PIGEON_OK) {
                fprintf(stderr, "tool_html: markdown failed\n");
                return 70;
            }
            pigeon_err err = pigeon_html_prepare(html, hlen, &opts, &res);
            if (html != src)
                free(html);
            if (err != PIGEON_OK) {
                fprintf(stderr, "tool_html: %s\n", pigeon_strerror(err));
                return 70;
            }
            if (repeat == 0) {
                put(html_out, res.html, res.html_len);
                if (text_out != NULL && res.text != NULL)
                    put(text_out, markdown ? src : res.text, markdown ? len : res.text_len);
                for (size_t k = 0; list_images && k < res.nimages; k++)
                    fprintf(stderr, "%s\t%s\n", res.images[k].cid,
                            res.images[k].path ? res.images[k].path : "data");
            }
            pigeon_html_result_cleanup(&res);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        secs += (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        cpu += (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
        free(src);
    }
    if (repeat > 0)
        printf("%d %ld %.6f %.6f\n", nfiles, repeat, secs, cpu);
    pg_buf_cleanup(&css);
    return status;
}
