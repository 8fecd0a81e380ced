/*
 * vars.h - the value tree behind pigeon_vars (pigeon/template.h), for the files of the
 * template module: the JSON reader and the merge rows build trees, the renderer reads
 * them.
 */
#ifndef PG_TEMPLATE_VARS_H
#define PG_TEMPLATE_VARS_H

#include <stddef.h>

#include "pigeon/template.h"

/* One member of an object (key set) or item of a list (key NULL). */
typedef struct pg_member {
    char *key;          /* the member's name (owned, NUL-terminated), NULL in lists */
    size_t key_len;     /* its length */
    pigeon_vars *value; /* the value (owned) */
} pg_member;

struct pigeon_vars {
    pigeon_var_type type; /* what it holds */
    int boolean;          /* BOOL: 0 or 1 */
    char *text;           /* STRING, NUMBER: the text (owned, NUL-terminated) */
    size_t len;           /* its length */
    pg_member *members;   /* LIST, OBJECT: the members (owned) */
    size_t count;         /* number of members */
    size_t cap;           /* allocated members */
};

/* A new value of the given type (empty, false). NULL when out of memory. */
pigeon_vars *pg_vars_new(pigeon_var_type type);
/* A new STRING or NUMBER holding a copy of len bytes at s. */
pigeon_vars *pg_vars_new_text(pigeon_var_type type, const char *s, size_t len);
/* Appends value to the list or object v (key NULL for lists; copied). Takes value,
 * freeing it on failure. */
pigeon_err pg_vars_add(pigeon_vars *v, const char *key, size_t key_len, pigeon_vars *value);
/* The member key (key_len bytes) of object v, the last one added if repeated; or NULL. */
pigeon_vars *pg_vars_lookup(const pigeon_vars *v, const char *key, size_t key_len);
/* Whether v counts as true for a section: not null, not false, not "", not []. */
int pg_vars_truthy(const pigeon_vars *v);

#endif
