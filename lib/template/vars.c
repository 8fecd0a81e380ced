/*
 * vars.c - the value tree of templates (pigeon_vars): objects, lists and scalars.
 *
 * Objects are small (the columns of a row, a few settings), so members are an array
 * searched from the end: the last of a repeated name wins, as in ECMAScript's JSON.parse.
 */
#include <stdlib.h>
#include <string.h>

#include "template/vars.h"
#include "util/utf8.h"

pigeon_vars *pg_vars_new(pigeon_var_type type)
{
    pigeon_vars *v = calloc(1, sizeof *v);
    if (v != NULL)
        v->type = type;
    return v;
}

pigeon_vars *pigeon_vars_new(void)
{
    return pg_vars_new(PIGEON_VAR_OBJECT);
}

pigeon_vars *pg_vars_new_text(pigeon_var_type type, const char *s, size_t len)
{
    pigeon_vars *v = pg_vars_new(type);
    if (v == NULL)
        return NULL;
    if ((v->text = malloc(len + 1)) == NULL) {
        free(v);
        return NULL;
    }
    if (len > 0)
        memcpy(v->text, s, len);
    v->text[len] = '\0';
    v->len = len;
    return v;
}

void pigeon_vars_free(pigeon_vars *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->count; i++) {
        free(v->members[i].key);
        pigeon_vars_free(v->members[i].value);
    }
    free(v->members);
    free(v->text);
    free(v);
}

pigeon_err pg_vars_add(pigeon_vars *v, const char *key, size_t key_len, pigeon_vars *value)
{
    if (v->count == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        pg_member *m = realloc(v->members, cap * sizeof *m);
        if (m == NULL)
            goto nomem;
        v->members = m;
        v->cap = cap;
    }
    pg_member *m = &v->members[v->count];
    m->key = NULL;
    m->key_len = key_len;
    if (key != NULL) {
        if ((m->key = malloc(key_len + 1)) == NULL)
            goto nomem;
        memcpy(m->key, key, key_len);
        m->key[key_len] = '\0';
    }
    m->value = value;
    v->count++;
    return PIGEON_OK;
nomem:
    pigeon_vars_free(value);
    return PIGEON_ERR_NOMEM;
}

pigeon_vars *pg_vars_lookup(const pigeon_vars *v, const char *key, size_t key_len)
{
    if (v == NULL || v->type != PIGEON_VAR_OBJECT)
        return NULL;
    for (size_t i = v->count; i-- > 0;) {
        const pg_member *m = &v->members[i];
        if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0)
            return m->value;
    }
    return NULL;
}

int pg_vars_truthy(const pigeon_vars *v)
{
    if (v == NULL)
        return 0;
    switch (v->type) {
    case PIGEON_VAR_NULL:
        return 0;
    case PIGEON_VAR_BOOL:
        return v->boolean;
    case PIGEON_VAR_STRING:
        return v->len > 0;
    case PIGEON_VAR_LIST:
        return v->count > 0;
    default:
        return 1;
    }
}

/* Replaces the member key of obj with value, or adds it; takes value. */
static pigeon_err put(pigeon_vars *obj, const char *key, size_t key_len, pigeon_vars *value)
{
    for (size_t i = obj->count; i-- > 0;) {
        pg_member *m = &obj->members[i];
        if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0) {
            pigeon_vars_free(m->value);
            m->value = value;
            return PIGEON_OK;
        }
    }
    return pg_vars_add(obj, key, key_len, value);
}

pigeon_err pigeon_vars_set(pigeon_vars *obj, const char *key, const char *value, size_t len)
{
    if (obj == NULL || key == NULL || value == NULL || obj->type != PIGEON_VAR_OBJECT)
        return PIGEON_ERR_INVALID;
    if (len == (size_t)-1)
        len = strlen(value);
    size_t klen = strlen(key);
    if (!pg_utf8_valid(value, len) || !pg_utf8_valid(key, klen))
        return PIGEON_ERR_CHARSET;
    /* Walk (and make) the objects of a dotted path; the last part is the member. */
    for (;;) {
        const char *dot = memchr(key, '.', klen);
        size_t part = dot ? (size_t)(dot - key) : klen;
        if (part == 0)
            return PIGEON_ERR_INVALID;
        if (dot == NULL)
            break;
        pigeon_vars *next = pg_vars_lookup(obj, key, part);
        if (next == NULL) {
            if ((next = pg_vars_new(PIGEON_VAR_OBJECT)) == NULL ||
                pg_vars_add(obj, key, part, next) != PIGEON_OK)
                return PIGEON_ERR_NOMEM;
        } else if (next->type != PIGEON_VAR_OBJECT) {
            return PIGEON_ERR_INVALID;
        }
        obj = next;
        key += part + 1;
        klen -= part + 1;
    }
    pigeon_vars *v = pg_vars_new_text(PIGEON_VAR_STRING, value, len);
    if (v == NULL)
        return PIGEON_ERR_NOMEM;
    return put(obj, key, klen, v);
}

const pigeon_vars *pigeon_vars_get(const pigeon_vars *obj, const char *key)
{
    return key != NULL ? pg_vars_lookup(obj, key, strlen(key)) : NULL;
}

pigeon_var_type pigeon_vars_type(const pigeon_vars *v)
{
    return v != NULL ? v->type : PIGEON_VAR_NULL;
}

const char *pigeon_vars_text(const pigeon_vars *v, size_t *len)
{
    const char *s = NULL;
    size_t n = 0;
    if (v == NULL || v->type == PIGEON_VAR_NULL) {
        s = "";
    } else if (v->type == PIGEON_VAR_BOOL) {
        s = v->boolean ? "true" : "false";
        n = strlen(s);
    } else if (v->type == PIGEON_VAR_STRING || v->type == PIGEON_VAR_NUMBER) {
        s = v->text;
        n = v->len;
    }
    if (len != NULL)
        *len = n;
    return s;
}
