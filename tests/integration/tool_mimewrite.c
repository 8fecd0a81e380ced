/*
 * tool_mimewrite.c - composes a message from command-line options with libpigeon and
 * writes it to stdout, for tests/integration/test_mime_roundtrip.py (which reads it back
 * with Python's email package, an independent MIME parser).
 *
 * usage: tool_mimewrite [--8bit] [--smtputf8] [--charset CS] [--date EPOCH]
 *          [--from MB] [--sender MB] [--to LIST] [--cc LIST] [--bcc LIST]
 *          [--reply-to LIST] [--subject S] [--header NAME=VALUE] [--references IDS]
 *          [--text FILE] [--html FILE] [--attach PATH] [--attach-as PATH=NAME]
 *          [--inline PATH=CID] [--stream PATH=NAME]
 * On failure prints "ERR <name>: <reason>" on stderr and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/message.h"

/* Reads a whole file into a malloc'd NUL-terminated buffer. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t cap = 0, n = 0, got;
    if (f == NULL)
        return NULL;
    do {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            char *grown = realloc(data, cap);
            if (grown == NULL) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        got = fread(data + n, 1, 65536, f);
        n += got;
    } while (got > 0);
    fclose(f);
    data[n] = '\0';
    *len = n;
    return data;
}

static int file_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    *n = fread(buf, 1, cap, (FILE *)ctx);
    return ferror((FILE *)ctx) ? -1 : 0;
}

/* Splits "a=b" at the first '=' (in place); returns b or NULL. */
static char *split_eq(char *arg)
{
    char *eq = strchr(arg, '=');
    if (eq == NULL)
        return NULL;
    *eq = '\0';
    return eq + 1;
}

/* Applies one option with its argument. Returns PIGEON_ERR_INVALID for unknown ones. */
static pigeon_err apply(pigeon_message *msg, const char *opt, char *arg, FILE **streams,
                        size_t *nstreams)
{
    pigeon_part_opts po = {0};
    size_t len;
    char *v;
    if (strcmp(opt, "--from") == 0)
        return pigeon_message_set_from(msg, arg);
    if (strcmp(opt, "--sender") == 0)
        return pigeon_message_set_sender(msg, arg);
    if (strcmp(opt, "--to") == 0)
        return pigeon_message_add_to(msg, arg);
    if (strcmp(opt, "--cc") == 0)
        return pigeon_message_add_cc(msg, arg);
    if (strcmp(opt, "--bcc") == 0)
        return pigeon_message_add_bcc(msg, arg);
    if (strcmp(opt, "--reply-to") == 0)
        return pigeon_message_add_reply_to(msg, arg);
    if (strcmp(opt, "--subject") == 0)
        return pigeon_message_set_subject(msg, arg);
    if (strcmp(opt, "--charset") == 0)
        return pigeon_message_set_charset(msg, arg);
    if (strcmp(opt, "--references") == 0)
        return pigeon_message_set_references(msg, arg);
    if (strcmp(opt, "--date") == 0)
        return pigeon_message_set_date(msg, (time_t)strtoll(arg, NULL, 10));
    if (strcmp(opt, "--header") == 0)
        return (v = split_eq(arg)) ? pigeon_message_add_header(msg, arg, v) : PIGEON_ERR_INVALID;
    if (strcmp(opt, "--text") == 0 || strcmp(opt, "--html") == 0) {
        char *body = slurp(arg, &len);
        pigeon_err err = body == NULL                 ? PIGEON_ERR_NOTFOUND
                         : strcmp(opt, "--text") == 0 ? pigeon_message_set_text(msg, body, len)
                                                      : pigeon_message_set_html(msg, body, len);
        free(body);
        return err;
    }
    if (strcmp(opt, "--attach") == 0)
        return pigeon_message_attach_file(msg, arg, NULL);
    if (strcmp(opt, "--attach-as") == 0 || strcmp(opt, "--inline") == 0) {
        if ((v = split_eq(arg)) == NULL)
            return PIGEON_ERR_INVALID;
        if (strcmp(opt, "--inline") == 0)
            po.content_id = v;
        else
            po.filename = v;
        return pigeon_message_attach_file(msg, arg, &po);
    }
    if (strcmp(opt, "--stream") == 0) {
        if ((v = split_eq(arg)) == NULL || *nstreams >= 8)
            return PIGEON_ERR_INVALID;
        FILE *f = fopen(arg, "rb");
        if (f == NULL)
            return PIGEON_ERR_NOTFOUND;
        streams[(*nstreams)++] = f;
        po.filename = v;
        return pigeon_message_attach_stream(msg, file_read, f, -1, &po);
    }
    return PIGEON_ERR_INVALID;
}

int main(int argc, char **argv)
{
    pigeon_write_opts wo = {0};
    pigeon_message *msg = pigeon_message_new();
    FILE *streams[8];
    size_t nstreams = 0;
    pigeon_err err = msg ? PIGEON_OK : PIGEON_ERR_NOMEM;
    for (int i = 1; i < argc && err == PIGEON_OK; i++) {
        if (strcmp(argv[i], "--8bit") == 0)
            wo.allow_8bit = 1;
        else if (strcmp(argv[i], "--smtputf8") == 0)
            wo.smtputf8 = 1;
        else if (i + 1 < argc)
            err = apply(msg, argv[i], argv[i + 1], streams, &nstreams), i++;
        else
            err = PIGEON_ERR_INVALID;
    }
    if (err == PIGEON_OK)
        err = pigeon_message_write_fd(msg, &wo, 1);
    if (err != PIGEON_OK)
        fprintf(stderr, "ERR %s: %s\n", pigeon_err_name(err), msg ? pigeon_message_error(msg) : "");
    for (size_t i = 0; i < nstreams; i++)
        fclose(streams[i]);
    pigeon_message_free(msg);
    return err == PIGEON_OK ? 0 : 1;
}
