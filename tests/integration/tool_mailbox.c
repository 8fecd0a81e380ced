/*
 * tool_mailbox.c - drives the IMAP and POP3 clients (include/pigeon/mailbox.h) for
 * tests/integration/test_mailbox_dovecot.py.
 *
 * usage: tool_mailbox imap|pop3 HOST PORT implicit|starttls CAFILE USER ACTION [ARGS...]
 * The password comes from $MAILBOX_PASSWORD; $MAILBOX_VERBOSE=1 writes the transcript to
 * stderr. On failure prints "error NAME: reason" on stderr and exits 1.
 *
 * IMAP actions: list | special USE | append FOLDER FLAGS FILE | fetch FOLDER UID OUT |
 *   search FOLDER CRITERIA | move FOLDER UID DEST | delete FOLDER UID | idle FOLDER MS |
 *   caps
 * POP3 actions: stat | uidl | retr N OUT | dele N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/mailbox.h"

static int verbose;

static void transcript(void *ctx, pigeon_transcript_dir dir, int64_t ms, const char *line)
{
    (void)ctx;
    (void)ms;
    static const char *const tags[] = {"C:", "S:", "* ", "  "};
    fprintf(stderr, "%s %s\n", tags[dir & 3], line);
}

static int fail(pigeon_err err, const char *why)
{
    fprintf(stderr, "error %s: %s\n", pigeon_err_name(err), why);
    return 1;
}

static int to_file(void *ctx, const void *data, size_t n)
{
    return fwrite(data, 1, n, ctx) != n;
}

struct file_reader {
    FILE *f; /* the message file */
};

static int read_file(void *ctx, void *buf, size_t cap, size_t *n)
{
    struct file_reader *r = ctx;
    *n = fread(buf, 1, cap, r->f);
    return ferror(r->f) ? -1 : 0;
}

static int print_list(void *ctx, const char *name, const char *attrs, char delim)
{
    (void)ctx;
    printf("%s\t%s\t%c\n", name, attrs, delim ? delim : '-');
    return 0;
}

static int print_uidl(void *ctx, unsigned number, const char *uid)
{
    (void)ctx;
    printf("%u %s\n", number, uid);
    return 0;
}

static int imap_action(pigeon_imap *m, int argc, char **argv)
{
    const char *a = argv[0];
    pigeon_err err = PIGEON_OK;
    if (strcmp(a, "caps") == 0) {
        const char *caps[] = {"MOVE", "UIDPLUS", "LITERAL+", "SPECIAL-USE", "IDLE", NULL};
        for (int i = 0; caps[i]; i++)
            printf("%s %d\n", caps[i], pigeon_imap_has_capability(m, caps[i]));
    } else if (strcmp(a, "list") == 0) {
        err = pigeon_imap_list(m, print_list, NULL);
    } else if (strcmp(a, "special") == 0 && argc >= 2) {
        char *name = NULL;
        if ((err = pigeon_imap_find_special(m, argv[1], &name)) == PIGEON_OK)
            printf("%s\n", name);
        free(name);
    } else if (strcmp(a, "append") == 0 && argc >= 4) {
        FILE *f = fopen(argv[3], "rb");
        if (f == NULL)
            return fail(PIGEON_ERR_NOTFOUND, argv[3]);
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        struct file_reader r = {f};
        uint32_t uid = 0;
        err = pigeon_imap_append(m, argv[1], argv[2], read_file, &r, (uint64_t)size, &uid);
        fclose(f);
        if (err == PIGEON_OK)
            printf("%u\n", (unsigned)uid);
    } else if (strcmp(a, "fetch") == 0 && argc >= 4) {
        FILE *out = fopen(argv[3], "wb");
        uint64_t size = 0;
        if (out == NULL)
            return fail(PIGEON_ERR_IO, argv[3]);
        if ((err = pigeon_imap_select(m, argv[1], 1, NULL)) == PIGEON_OK)
            err =
                pigeon_imap_uid_fetch(m, (uint32_t)strtoul(argv[2], NULL, 10), to_file, out, &size);
        fclose(out);
        if (err == PIGEON_OK)
            printf("%llu\n", (unsigned long long)size);
    } else if (strcmp(a, "search") == 0 && argc >= 3) {
        uint32_t *uids = NULL;
        size_t n = 0;
        if ((err = pigeon_imap_select(m, argv[1], 1, NULL)) == PIGEON_OK &&
            (err = pigeon_imap_uid_search(m, argv[2], &uids, &n)) == PIGEON_OK)
            for (size_t i = 0; i < n; i++)
                printf("%u\n", (unsigned)uids[i]);
        free(uids);
    } else if (strcmp(a, "move") == 0 && argc >= 4) {
        if ((err = pigeon_imap_select(m, argv[1], 0, NULL)) == PIGEON_OK)
            err = pigeon_imap_uid_move(m, (uint32_t)strtoul(argv[2], NULL, 10), argv[3]);
    } else if (strcmp(a, "delete") == 0 && argc >= 3) {
        if ((err = pigeon_imap_select(m, argv[1], 0, NULL)) == PIGEON_OK)
            err = pigeon_imap_uid_delete(m, (uint32_t)strtoul(argv[2], NULL, 10));
    } else if (strcmp(a, "idle") == 0 && argc >= 3) {
        int changed = 0;
        if ((err = pigeon_imap_select(m, argv[1], 1, NULL)) == PIGEON_OK)
            err = pigeon_imap_idle(m, atoi(argv[2]), &changed);
        if (err == PIGEON_OK)
            printf("changed %d\n", changed);
    } else {
        return fail(PIGEON_ERR_INVALID, "unknown action");
    }
    if (err != PIGEON_OK)
        return fail(err, pigeon_imap_error(m));
    pigeon_imap_logout(m);
    return 0;
}

static int pop3_action(pigeon_pop3 *p, int argc, char **argv)
{
    const char *a = argv[0];
    pigeon_err err = PIGEON_OK;
    if (strcmp(a, "stat") == 0) {
        size_t n = 0;
        uint64_t size = 0;
        if ((err = pigeon_pop3_stat(p, &n, &size)) == PIGEON_OK)
            printf("%zu %llu\n", n, (unsigned long long)size);
    } else if (strcmp(a, "uidl") == 0) {
        err = pigeon_pop3_uidl(p, print_uidl, NULL);
    } else if (strcmp(a, "retr") == 0 && argc >= 3) {
        FILE *out = fopen(argv[2], "wb");
        uint64_t size = 0;
        if (out == NULL)
            return fail(PIGEON_ERR_IO, argv[2]);
        err = pigeon_pop3_retr(p, (unsigned)strtoul(argv[1], NULL, 10), to_file, out, &size);
        fclose(out);
        if (err == PIGEON_OK)
            printf("%llu\n", (unsigned long long)size);
    } else if (strcmp(a, "dele") == 0 && argc >= 2) {
        err = pigeon_pop3_dele(p, (unsigned)strtoul(argv[1], NULL, 10));
    } else {
        return fail(PIGEON_ERR_INVALID, "unknown action");
    }
    if (err != PIGEON_OK)
        return fail(err, pigeon_pop3_error(p));
    if ((err = pigeon_pop3_quit(p)) != PIGEON_OK)
        return fail(err, pigeon_pop3_error(p));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: tool_mailbox imap|pop3 HOST PORT implicit|starttls CAFILE USER "
                        "ACTION [ARGS...]\n");
        return 2;
    }
    verbose = getenv("MAILBOX_VERBOSE") != NULL;
    pigeon_store_opts o = {0};
    o.host = argv[2];
    o.port = (uint16_t)atoi(argv[3]);
    o.tls = strcmp(argv[4], "implicit") == 0 ? PIGEON_TLS_IMPLICIT
            : strcmp(argv[4], "none") == 0   ? PIGEON_TLS_NONE
                                             : PIGEON_TLS_STARTTLS;
    o.ca_file = strcmp(argv[5], "-") == 0 ? NULL : argv[5];
    o.user = argv[6];
    o.password = getenv("MAILBOX_PASSWORD") ? getenv("MAILBOX_PASSWORD") : "";
    o.timeout_ms = 10000;
    if (getenv("MAILBOX_AUTH") != NULL)
        o.auth = strcmp(getenv("MAILBOX_AUTH"), "plain") == 0 ? PIGEON_STORE_AUTH_PLAIN
                                                              : PIGEON_STORE_AUTH_LOGIN;
    o.transcript = verbose ? transcript : NULL;
    int rc;
    if (strcmp(argv[1], "imap") == 0) {
        pigeon_imap *m = NULL;
        pigeon_err err = pigeon_imap_connect(&o, &m);
        rc =
            err != PIGEON_OK ? fail(err, pigeon_imap_error(m)) : imap_action(m, argc - 7, argv + 7);
        pigeon_imap_free(m);
    } else {
        pigeon_pop3 *p = NULL;
        pigeon_err err = pigeon_pop3_connect(&o, &p);
        rc =
            err != PIGEON_OK ? fail(err, pigeon_pop3_error(p)) : pop3_action(p, argc - 7, argv + 7);
        pigeon_pop3_free(p);
    }
    return rc;
}
