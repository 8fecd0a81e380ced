/*
 * tool_encode.c - drives the header encoders for test_encoders_python.py.
 *
 * Batch protocol on stdin/stdout, one request after another:
 *   request:  "<op> <arg> <col> <len>\n" then <len> raw bytes (the value)
 *   response: "OK <len> <col>\n" then <len> bytes, or "ERR <PIGEON_ERR_NAME> 0 0\n"
 * ops: subject (arg: field name; pg_header_unstructured), text and phrase (pg_ew_encode
 * at column col), param and param_ew (arg: parameter name; at column col), decode
 * (pg_ew_decode), qp and qpdecode, b64 and b64decode.
 * With arguments "<op> <arg> <col>" it handles one request whose value is all of stdin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/encode.h"

static pigeon_err run_op(const char *op, const char *arg, size_t *col, const char *v, size_t n,
                         pg_buf *out)
{
    if (strcmp(op, "subject") == 0)
        return pg_header_unstructured(out, arg, v);
    if (strcmp(op, "text") == 0 || strcmp(op, "phrase") == 0)
        return pg_ew_encode(out, col, v, n, op[0] == 't' ? PG_EW_TEXT : PG_EW_PHRASE);
    if (strcmp(op, "param") == 0)
        return pg_param_append(out, col, arg, v);
    if (strcmp(op, "param_ew") == 0)
        return pg_param_append_ew(out, col, arg, v);
    if (strcmp(op, "decode") == 0)
        return pg_ew_decode(out, v, n);
    if (strcmp(op, "qp") == 0)
        return pg_qp_encode(out, v, n);
    if (strcmp(op, "qpdecode") == 0)
        return pg_qp_decode(out, v, n);
    if (strcmp(op, "b64") == 0)
        return pg_b64_encode(out, v, n);
    if (strcmp(op, "b64decode") == 0)
        return pg_b64_decode(out, v, n);
    return PIGEON_ERR_INVALID;
}

/* Handles one request and writes its response; returns 0 on a write failure. */
static int respond(const char *op, const char *arg, size_t col, const char *v, size_t n)
{
    pg_buf out;
    pg_buf_init(&out);
    pigeon_err err = run_op(op, arg, &col, v, n, &out);
    int ok;
    if (err != PIGEON_OK)
        ok = printf("ERR %s 0 0\n", pigeon_err_name(err)) > 0;
    else
        ok = printf("OK %zu %zu\n", out.len, col) > 0 &&
             fwrite(out.data ? out.data : "", 1, out.len, stdout) == out.len;
    pg_buf_cleanup(&out);
    return ok && fflush(stdout) == 0;
}

/* Reads exactly n bytes of stdin into a NUL-terminated heap string. */
static char *read_value(size_t n)
{
    char *v = malloc(n + 1);
    if (v == NULL || fread(v, 1, n, stdin) != n) {
        free(v);
        return NULL;
    }
    v[n] = '\0';
    return v;
}

static int batch(void)
{
    char op[32], arg[256];
    size_t col, n;
    while (scanf("%31s %255s %zu %zu", op, arg, &col, &n) == 4) {
        if (getchar() != '\n')
            return 2;
        char *v = read_value(n);
        if (v == NULL)
            return 2;
        int ok = respond(op, arg, col, v, n);
        free(v);
        if (!ok)
            return 1;
    }
    return 0;
}

static int single(const char *op, const char *arg, const char *col_text)
{
    pg_buf in;
    pg_buf_init(&in);
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        pg_buf_append(&in, chunk, got);
    char *end = NULL;
    size_t col = strtoul(col_text, &end, 10);
    int ok = in.err == PIGEON_OK && end != col_text &&
             respond(op, arg, col, in.data ? in.data : "", in.len);
    pg_buf_cleanup(&in);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4)
        return single(argv[1], argv[2], argv[3]);
    if (argc != 1) {
        fprintf(stderr, "usage: %s [op arg col] (see the source)\n", argv[0]);
        return 2;
    }
    return batch();
}
