/*
 * fuzz_address.c - libFuzzer target for the address parser and writers.
 *
 * Every input the parser accepts must survive pg_address_list_format() -> parse with
 * the same mailboxes (in both SMTPUTF8 and ASCII form when the local parts allow it),
 * and every addr-spec must be free of CR, LF, NUL and of spaces outside quotes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address/address_int.h"
#include "util/buf.h"
#include "pigeon/address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int mailbox_equal(const pigeon_mailbox *a, const pigeon_mailbox *b)
{
    return same(a->display_name, b->display_name) && same(a->local, b->local) &&
           same(a->domain, b->domain) && same(a->domain_ascii, b->domain_ascii) &&
           same(a->group, b->group);
}

/* CR, LF, NUL never; a space only inside the quoted local part. */
static void check_addr_spec(const pigeon_mailbox *mb, int utf8)
{
    char *spec = NULL;
    pigeon_err err = pigeon_mailbox_addr_spec(mb, utf8, &spec);
    if (err != PIGEON_OK) {
        /* Only a non-ASCII local part may be refused, and only without SMTPUTF8. */
        int ascii = 1;
        for (const char *s = mb->local; *s; s++)
            ascii &= (unsigned char)*s < 0x80;
        if (utf8 || ascii)
            abort();
        return;
    }
    int quoted = 0;
    for (const char *s = spec; *s; s++) {
        if (*s == '\r' || *s == '\n' || (unsigned char)*s < 0x20 || *s == 0x7F)
            abort();
        if (*s == '"')
            quoted = !quoted;
        else if (*s == '\\' && quoted && s[1] != '\0')
            s++;
        else if (*s == ' ' && !quoted)
            abort();
    }
    if (quoted)
        abort();
    free(spec);
}

static void round_trip(const pigeon_address_list *list, int utf8)
{
    pg_buf out;
    pg_buf_init(&out);
    size_t col = 4;
    pigeon_err err = pg_address_list_format(&out, &col, list, utf8);
    if (err == PIGEON_ERR_ADDRESS && !utf8) {
        pg_buf_cleanup(&out);
        return; /* a non-ASCII local part, checked by check_addr_spec */
    }
    if (err != PIGEON_OK)
        abort();
    /* Unfold (RFC 5322 2.2.3): every CRLF must be followed by a space. */
    pg_buf unfolded;
    pg_buf_init(&unfolded);
    for (size_t i = 0; i < out.len; i++) {
        if (out.data[i] == '\r') {
            if (out.data[i + 1] != '\n' || out.data[i + 2] != ' ')
                abort();
            i++;
        } else if (out.data[i] == '\n') {
            abort();
        } else {
            pg_buf_putc(&unfolded, out.data[i]);
        }
    }
    pigeon_address_list back;
    if (pigeon_address_list_parse(unfolded.data ? unfolded.data : "", &back, NULL, 0) != PIGEON_OK)
        abort();
    if (back.count != list->count || back.empty_group_count != list->empty_group_count)
        abort();
    for (size_t i = 0; i < list->count; i++)
        if (!mailbox_equal(&list->items[i], &back.items[i]))
            abort();
    for (size_t i = 0; i < list->empty_group_count; i++)
        if (strcmp(list->empty_groups[i], back.empty_groups[i]) != 0)
            abort();
    pigeon_address_list_cleanup(&back);
    pg_buf_cleanup(&unfolded);
    pg_buf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    if (in == NULL)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    pigeon_address_list list;
    char err[256];
    if (pigeon_address_list_parse(in, &list, err, sizeof err) == PIGEON_OK) {
        for (size_t i = 0; i < list.count; i++) {
            check_addr_spec(&list.items[i], 1);
            check_addr_spec(&list.items[i], 0);
        }
        round_trip(&list, 1);
        round_trip(&list, 0);
        pigeon_address_list_cleanup(&list);
    } else if (strchr(err, '\n') != NULL || strchr(err, '\r') != NULL) {
        abort(); /* the message is one line */
    }
    pigeon_mailbox mb;
    if (pigeon_mailbox_parse(in, &mb, NULL, 0) == PIGEON_OK)
        pigeon_mailbox_cleanup(&mb);
    free(in);
    return 0;
}
