/*
 * tool_address.c - prints what pigeon makes of address lists typed on the command line,
 * for test_address_python.py.
 *
 *   tool_address [--ascii] LIST...
 *
 * For each LIST, one block of lines (every string hex-encoded, "-" for none):
 *   ERR <hex message>                                   when the list is refused, else
 *   MB <hex display_name> <hex local> <hex domain> <hex domain_ascii> <hex group>
 *                                                       <hex addr-spec>   per mailbox
 *   EG <hex name>                                       per empty group
 *   HDR <hex formatted list>                            as written after "To: "
 *   END
 * --ascii formats without SMTPUTF8 (A-labels, encoded-words only).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address/address_int.h"
#include "util/buf.h"
#include "pigeon/address.h"

static void put_hex(const char *s)
{
    if (s == NULL) {
        fputs(" -", stdout);
        return;
    }
    putchar(' ');
    if (*s == '\0')
        putchar('=');
    for (; *s != '\0'; s++)
        printf("%02x", (unsigned char)*s);
}

static int show(const char *in, int utf8)
{
    pigeon_address_list list;
    char err[512];
    if (pigeon_address_list_parse(in, &list, err, sizeof err) != PIGEON_OK) {
        fputs("ERR", stdout);
        put_hex(err);
        puts("\nEND");
        return 0;
    }
    int rc = 0;
    for (size_t i = 0; i < list.count; i++) {
        const pigeon_mailbox *mb = &list.items[i];
        char *spec = NULL;
        if (pigeon_mailbox_addr_spec(mb, utf8, &spec) != PIGEON_OK)
            rc = 1;
        fputs("MB", stdout);
        put_hex(mb->display_name);
        put_hex(mb->local);
        put_hex(mb->domain);
        put_hex(mb->domain_ascii);
        put_hex(mb->group);
        put_hex(spec);
        putchar('\n');
        free(spec);
    }
    for (size_t i = 0; i < list.empty_group_count; i++) {
        fputs("EG", stdout);
        put_hex(list.empty_groups[i]);
        putchar('\n');
    }
    pg_buf out;
    pg_buf_init(&out);
    size_t col = 4; /* after "To: " */
    if (pg_address_list_format(&out, &col, &list, utf8) != PIGEON_OK)
        rc = 1;
    fputs("HDR", stdout);
    put_hex(out.data != NULL ? out.data : "");
    puts("\nEND");
    pg_buf_cleanup(&out);
    pigeon_address_list_cleanup(&list);
    return rc;
}

int main(int argc, char **argv)
{
    int utf8 = 1;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ascii") == 0)
            utf8 = 0;
        else
            rc |= show(argv[i], utf8);
    }
    return rc;
}
