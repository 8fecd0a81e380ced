/*
 * html_arena.c - the memory gumbo parses a mail into, for mails up to PG_HTML_ARENA_MAX.
 *
 * gumbo allocates every token, attribute, string buffer and node through its allocator,
 * frees many of them moments later, and frees the rest one by one when the tree is
 * destroyed: a fifth of its time went to malloc and free. Here allocation is a pointer
 * bump in 64 KiB chunks, freeing does nothing, and the whole tree goes at once. What a
 * free gives back is not reused, so only documents of bounded size use it (the waste is a
 * small multiple of the document); a bigger one gets malloc and free as before.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "html/html_int.h"

#define CHUNK (64 * 1024)

/* One block of the arena; the memory handed out follows the header. */
struct pg_html_chunk {
    struct pg_html_chunk *next; /* the chunk allocated before (or a big one) */
    size_t used;                /* bytes handed out */
    size_t cap;                 /* bytes after the header */
};

static size_t header_size(void)
{
    size_t a = alignof(max_align_t);
    return (sizeof(struct pg_html_chunk) + a - 1) / a * a;
}

static struct pg_html_chunk *new_chunk(size_t cap)
{
    struct pg_html_chunk *c = malloc(header_size() + cap);
    if (c != NULL) {
        c->used = 0;
        c->cap = cap;
    }
    return c;
}

void *pg_html_arena_alloc(void *arena, size_t n)
{
    pg_html_arena *a = arena;
    size_t align = alignof(max_align_t);
    n = (n + align - 1) / align * align;
    if (n == 0)
        n = align;
    struct pg_html_chunk *c = a->head;
    if (c != NULL && c->cap - c->used >= n) {
        void *p = (char *)c + header_size() + c->used;
        c->used += n;
        return p;
    }
    if (n > CHUNK / 4) {
        /* A big block gets a chunk of its own, kept behind the current one so that the
         * current chunk's room is not thrown away. */
        struct pg_html_chunk *big = new_chunk(n);
        if (big == NULL)
            return NULL;
        big->used = n;
        if (c != NULL) {
            big->next = c->next;
            c->next = big;
        } else {
            big->next = NULL;
            a->head = big;
        }
        return (char *)big + header_size();
    }
    struct pg_html_chunk *fresh = new_chunk(CHUNK);
    if (fresh == NULL)
        return NULL;
    fresh->next = c;
    fresh->used = n;
    a->head = fresh;
    return (char *)fresh + header_size();
}

void pg_html_arena_free(void *arena, void *p)
{
    (void)arena;
    (void)p; /* everything goes in pg_html_arena_cleanup */
}

void pg_html_arena_cleanup(pg_html_arena *a)
{
    struct pg_html_chunk *c = a->head;
    while (c != NULL) {
        struct pg_html_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}
