/*
 * serve_template.c - named templates for `pigeon serve --templates DIR`: a message with
 * "template": "NAME" takes its subject, text, html and markdown from DIR/NAME.json, an
 * object of those four strings, each a Mustache template expanded with the request's
 * "vars" exactly as inline ones are (serve_message.c). The file is read per request, so
 * an edited template is used from the next request on, without a restart.
 *
 * A name is 1-64 of A-Z a-z 0-9 - _ . and does not start with a dot: it can name only a
 * file directly in DIR (no "..", no "/", no hidden files).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve.h"

#define TEMPLATE_MAX (1024 * 1024) /* bytes of a template file */

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* The whole file (at most TEMPLATE_MAX bytes) in *out, or -1 with errno. */
static int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > TEMPLATE_MAX) {
        close(fd);
        errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        return -1;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf != NULL && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (buf == NULL || got != (size_t)st.st_size) {
        free(buf);
        errno = EIO;
        return -1;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

int serve_template_load(const char *dir, const char *name, pg_json_doc **doc, serve_problem *why)
{
    static const char *const fields[] = {"subject", "text", "html", "markdown", NULL};
    char path[4096], *text = NULL;
    size_t len = 0;
    *doc = NULL;
    why->status = 400;
    if (dir == NULL) {
        snprintf(why->detail, sizeof why->detail,
                 "/template: this server has no templates (pigeon serve --templates DIR)");
        return -1;
    }
    if (!valid_name(name)) {
        snprintf(why->detail, sizeof why->detail,
                 "/template: a name is 1-64 of A-Z a-z 0-9 - _ . (not starting with .)");
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    if (read_file(path, &text, &len) != 0) {
        int e = errno;
        why->status = e == ENOENT ? 400 : 503;
        snprintf(why->detail, sizeof why->detail, "/template: %s: %s", name,
                 e == ENOENT ? "no such template" : strerror(e));
        return -1;
    }
    pg_json_error jerr;
    pg_json_limits lim = {.max_depth = 4, .max_size = TEMPLATE_MAX};
    pigeon_err e = pg_json_parse(text, len, &lim, doc, &jerr);
    free(text);
    const pg_json_value *root = e == PIGEON_OK ? pg_json_root(*doc) : NULL;
    const char *bad = e != PIGEON_OK                 ? "not valid JSON"
                      : root->type != PG_JSON_OBJECT ? "not a JSON object"
                                                     : NULL;
    for (const pg_json_value *m = root != NULL && bad == NULL ? root->head : NULL;
         m != NULL && bad == NULL; m = m->next) {
        size_t i = 0;
        while (fields[i] != NULL && strcmp(fields[i], m->key) != 0)
            i++;
        if (fields[i] == NULL)
            bad = "a member other than subject, text, html, markdown";
        else if (m->type != PG_JSON_STRING || strlen(m->str) != m->len)
            bad = "a member that is not a string";
    }
    if (bad != NULL) {
        why->status = 503; /* the server's file, not the request, is wrong */
        snprintf(why->detail, sizeof why->detail, "/template: %s.json holds %s", name, bad);
        pg_json_free(*doc);
        *doc = NULL;
        return -1;
    }
    why->status = 0;
    return 0;
}
