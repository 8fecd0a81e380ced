/*
 * imap_cmd.c - the IMAP client's mailbox commands: LIST (RFC 9051 6.3.9, SPECIAL-USE
 * RFC 6154), SELECT/EXAMINE (6.3.2-3), UID SEARCH (6.4.4), UID FETCH BODY.PEEK[]
 * (6.4.5), APPEND (6.3.12, LITERAL+ RFC 7888, APPENDUID RFC 4315), UID MOVE (RFC 6851)
 * or COPY + STORE \Deleted + UID EXPUNGE (RFC 4315 2.1), IDLE (RFC 2177).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailbox/imap_int.h"
#include "mailbox/mutf7.h"
#include "net/wait.h"
#include "util/utf8.h"

static int keyword_is(const pg_imap_resp *r, const char *kw)
{
    return r->keyword != NULL && strlen(kw) == r->keyword_len &&
           strncasecmp(r->keyword, kw, r->keyword_len) == 0;
}

static pigeon_err require_state(pigeon_imap *m, int selected)
{
    if (m == NULL)
        return PIGEON_ERR_INVALID;
    if (m->state == PG_IMAP_S_LOGOUT || m->state == PG_IMAP_S_START)
        return pg_store_fail(&m->sc, PIGEON_ERR_STATE, "not connected");
    if (selected && m->state != PG_IMAP_S_SELECTED)
        return pg_store_fail(&m->sc, PIGEON_ERR_STATE, "no mailbox is selected");
    return PIGEON_OK;
}

/* ---- LIST ---- */

struct list_ctx {
    pigeon_imap_list_fn fn; /* the caller's callback */
    void *ctx;              /* its context */
    int stopped;            /* the callback asked to stop */
};

/* mailbox-list = "(" [mbx-list-flags] ")" SP (DQUOTE QUOTED-CHAR DQUOTE / nil) SP mailbox
 * [SP mbox-list-extended] (RFC 9051 9). */
static pigeon_err on_list(pigeon_imap *m, const pg_imap_resp *r, void *vctx)
{
    struct list_ctx *lc = vctx;
    if (!keyword_is(r, "LIST") || lc->stopped)
        return PIGEON_OK;
    const pg_imap_tok *t = r->toks;
    size_t n = r->ntoks, i = 0;
    if (n < 4 || t[0].type != PG_IMAP_TOK_OPEN)
        return pg_store_fail(&m->sc, PIGEON_ERR_PROTOCOL, "malformed LIST response");
    pg_buf attrs, name;
    pg_buf_init(&attrs);
    pg_buf_init(&name);
    for (i = 1; i < n && t[i].type != PG_IMAP_TOK_CLOSE; i++) {
        if (attrs.len > 0)
            pg_buf_putc(&attrs, ' ');
        pg_imap_tok_copy(&t[i], &attrs);
    }
    pigeon_err err = PIGEON_OK;
    if (i + 2 >= n) {
        err = pg_store_fail(&m->sc, PIGEON_ERR_PROTOCOL, "malformed LIST response");
        goto done;
    }
    char delim = 0;
    if (t[i + 1].type == PG_IMAP_TOK_QUOTED && t[i + 1].n >= 1)
        delim = t[i + 1].p[t[i + 1].n - 1];
    pg_buf raw;
    pg_buf_init(&raw);
    pg_imap_tok_copy(&t[i + 2], &raw);
    /* RFC 3501 5.1.3: names are modified UTF-7; one that does not decode is shown as
     * sent. */
    if (raw.len == 0 || pg_mutf7_decode(&name, raw.data, raw.len) != PIGEON_OK) {
        pg_buf_reset(&name);
        pg_buf_append(&name, raw.data != NULL ? raw.data : "", raw.len);
    }
    pg_buf_cleanup(&raw);
    if (attrs.err != PIGEON_OK || name.err != PIGEON_OK) {
        err = pg_store_fail(&m->sc, PIGEON_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (lc->fn(lc->ctx, name.data != NULL ? name.data : "", attrs.data != NULL ? attrs.data : "",
               delim) != 0)
        lc->stopped = 1;
done:
    pg_buf_cleanup(&attrs);
    pg_buf_cleanup(&name);
    return err;
}

pigeon_err pigeon_imap_list(pigeon_imap *m, pigeon_imap_list_fn fn, void *ctx)
{
    pigeon_err err = require_state(m, 0);
    if (err != PIGEON_OK)
        return err;
    if (fn == NULL)
        return PIGEON_ERR_INVALID;
    struct list_ctx lc = {fn, ctx, 0};
    /* RFC 6154 2: with SPECIAL-USE (and LIST-EXTENDED), ask for the attributes; servers
     * without it often send them in a plain LIST anyway. */
    const char *cmd = pigeon_imap_has_capability(m, "SPECIAL-USE")
                          ? "LIST \"\" \"*\" RETURN (SPECIAL-USE)"
                          : "LIST \"\" \"*\"";
    if ((err = pg_imap_send(m, NULL, cmd, strlen(cmd))) != PIGEON_OK)
        return err;
    return pg_imap_wait(m, on_list, &lc, "LIST", PIGEON_ERR_REJECTED, NULL);
}

struct special_ctx {
    const char *use; /* "\Sent" */
    char *found;     /* the name with the attribute (malloc'd) */
    char *by_name;   /* a folder with a usual name for it, as a fallback (malloc'd) */
};

static int has_word(const char *attrs, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = attrs; *p != '\0';) {
        const char *end = strchr(p, ' ');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == n && strncasecmp(p, word, n) == 0)
            return 1;
        p += len;
        while (*p == ' ')
            p++;
    }
    return 0;
}

static int on_special(void *vctx, const char *name, const char *attrs, char delim)
{
    (void)delim;
    struct special_ctx *sc = vctx;
    /* Usual names of the Sent folder where a server has no SPECIAL-USE (QQ Mail's
     * "Sent Messages", Exchange's "Sent Items", NetEase's "已发送"). */
    static const char *const sent_names[] = {"Sent",      "Sent Messages", "Sent Items",
                                             "Sent Mail", "已发送",        NULL};
    if (sc->found == NULL && has_word(attrs, sc->use)) {
        sc->found = strdup(name);
        return 1;
    }
    if (sc->by_name == NULL && strcasecmp(sc->use, "\\Sent") == 0 &&
        !has_word(attrs, "\\Noselect") && !has_word(attrs, "\\NonExistent"))
        for (int i = 0; sent_names[i] != NULL; i++)
            if (strcasecmp(name, sent_names[i]) == 0)
                sc->by_name = strdup(name);
    return 0;
}

pigeon_err pigeon_imap_find_special(pigeon_imap *m, const char *use, char **name)
{
    if (m == NULL || use == NULL || name == NULL || use[0] != '\\')
        return PIGEON_ERR_INVALID;
    *name = NULL;
    struct special_ctx sc = {use, NULL, NULL};
    pigeon_err err = pigeon_imap_list(m, on_special, &sc);
    if (err == PIGEON_OK && sc.found == NULL && sc.by_name != NULL) {
        pg_imap_note(m, "no folder has the %s attribute; using \"%s\" by its name", use,
                     sc.by_name);
        sc.found = sc.by_name;
        sc.by_name = NULL;
    }
    free(sc.by_name);
    if (err != PIGEON_OK) {
        free(sc.found);
        return err;
    }
    if (sc.found == NULL)
        return pg_store_fail(&m->sc, PIGEON_ERR_NOTFOUND,
                             "no folder has the %s attribute (RFC 6154); name the folder", use);
    *name = sc.found;
    return PIGEON_OK;
}

/* ---- SELECT / EXAMINE ---- */

static uint32_t code_number(const pg_imap_resp *r)
{
    uint64_t v = 0;
    for (size_t i = 0; r->code_arg != NULL && i < r->code_arg_len; i++) {
        char c = r->code_arg[i];
        if (c < '0' || c > '9' || (v = v * 10 + (uint64_t)(c - '0')) > 0xffffffffu)
            return 0;
    }
    return (uint32_t)v;
}

static pigeon_err on_select(pigeon_imap *m, const pg_imap_resp *r, void *vctx)
{
    (void)m;
    pigeon_imap_mailbox_info *info = vctx;
    if (r->has_number && keyword_is(r, "EXISTS"))
        info->exists = r->number;
    if (r->code != NULL && r->code_len == 11 && strncasecmp(r->code, "UIDVALIDITY", 11) == 0)
        info->uidvalidity = code_number(r);
    if (r->code != NULL && r->code_len == 7 && strncasecmp(r->code, "UIDNEXT", 7) == 0)
        info->uidnext = code_number(r);
    return PIGEON_OK;
}

pigeon_err pigeon_imap_select(pigeon_imap *m, const char *mailbox, int readonly,
                              pigeon_imap_mailbox_info *info)
{
    pigeon_err err = require_state(m, 0);
    if (err != PIGEON_OK)
        return err;
    if (mailbox == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_imap_mailbox_info local = {0};
    pg_buf cmd;
    pg_buf_init(&cmd);
    pg_buf_puts(&cmd, readonly ? "EXAMINE " : "SELECT ");
    if ((err = pg_imap_put_mailbox(m, &cmd, mailbox)) == PIGEON_OK &&
        (err = pg_imap_send(m, NULL, cmd.data, cmd.len)) == PIGEON_OK) {
        err = pg_imap_wait(m, on_select, &local, readonly ? "EXAMINE" : "SELECT",
                           PIGEON_ERR_NOTFOUND, NULL);
        /* RFC 9051 6.3.2: a failed SELECT leaves no mailbox selected. */
        m->state = err == PIGEON_OK ? PG_IMAP_S_SELECTED
                                    : (m->state == PG_IMAP_S_LOGOUT ? m->state : PG_IMAP_S_AUTH);
    }
    pg_buf_cleanup(&cmd);
    if (info != NULL)
        *info = local;
    return err;
}

/* ---- UID SEARCH ---- */

struct search_ctx {
    uint32_t *uids; /* collected UIDs (malloc'd) */
    size_t n;       /* how many */
    size_t cap;     /* allocated */
};

static pigeon_err on_search(pigeon_imap *m, const pg_imap_resp *r, void *vctx)
{
    struct search_ctx *sc = vctx;
    if (!keyword_is(r, "SEARCH"))
        return PIGEON_OK;
    for (size_t i = 0; i < r->ntoks; i++) {
        const pg_imap_tok *t = &r->toks[i];
        if (t->type == PG_IMAP_TOK_OPEN) /* (MODSEQ n) of CONDSTORE: skip */
            break;
        if (t->type != PG_IMAP_TOK_NUMBER || t->num == 0 || t->num > 0xffffffffu)
            return pg_store_fail(&m->sc, PIGEON_ERR_PROTOCOL, "malformed SEARCH response");
        if (sc->n == sc->cap) {
            size_t cap = sc->cap ? sc->cap * 2 : 64;
            uint32_t *u = realloc(sc->uids, cap * sizeof *u);
            if (u == NULL)
                return pg_store_fail(&m->sc, PIGEON_ERR_NOMEM, "out of memory");
            sc->uids = u;
            sc->cap = cap;
        }
        sc->uids[sc->n++] = (uint32_t)t->num;
    }
    return PIGEON_OK;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Search keys we pass through: atoms, numbers, sequence sets, dates and parentheses
 * (RFC 9051 6.4.4). Strings are refused: nothing quoted reaches the wire from here. */
static int criteria_valid(const char *s)
{
    if (*s == '\0' || strlen(s) > 1000)
        return 0;
    for (; *s != '\0'; s++) {
        char c = *s;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == ' ' || c == '(' || c == ')' || c == '-' || c == ':' || c == '*' || c == ',' ||
              c == '.' || c == '$' || c == '\\'))
            return 0;
    }
    return 1;
}

pigeon_err pigeon_imap_uid_search(pigeon_imap *m, const char *criteria, uint32_t **uids, size_t *n)
{
    if (uids == NULL || n == NULL)
        return PIGEON_ERR_INVALID;
    *uids = NULL;
    *n = 0;
    pigeon_err err = require_state(m, 1);
    if (err != PIGEON_OK)
        return err;
    if (criteria == NULL)
        criteria = "ALL";
    if (!criteria_valid(criteria))
        return pg_store_fail(&m->sc, PIGEON_ERR_INVALID,
                             "invalid search criteria (atoms, numbers, dates and parentheses "
                             "only)");
    struct search_ctx sc = {0};
    pg_buf cmd;
    pg_buf_init(&cmd);
    pg_buf_printf(&cmd, "UID SEARCH %s", criteria);
    if ((err = cmd.err) == PIGEON_OK &&
        (err = pg_imap_send(m, NULL, cmd.data, cmd.len)) == PIGEON_OK)
        err = pg_imap_wait(m, on_search, &sc, "UID SEARCH", PIGEON_ERR_REJECTED, NULL);
    pg_buf_cleanup(&cmd);
    if (err != PIGEON_OK) {
        free(sc.uids);
        return err;
    }
    if (sc.n > 1)
        qsort(sc.uids, sc.n, sizeof *sc.uids, cmp_u32);
    *uids = sc.uids;
    *n = sc.n;
    return PIGEON_OK;
}

static int header_name_valid(const char *s)
{
    if (*s == '\0' || strlen(s) > 76)
        return 0;
    for (; *s != '\0'; s++)
        if (*s <= 0x20 || *s >= 0x7f || *s == ':')
            return 0;
    return 1;
}

pigeon_err pigeon_imap_uid_search_header(pigeon_imap *m, const char *field, const char *value,
                                         uint32_t **uids, size_t *n)
{
    if (uids == NULL || n == NULL)
        return PIGEON_ERR_INVALID;
    *uids = NULL;
    *n = 0;
    pigeon_err err = require_state(m, 1);
    if (err != PIGEON_OK)
        return err;
    if (field == NULL || value == NULL || !header_name_valid(field) || strlen(value) > 998)
        return pg_store_fail(&m->sc, PIGEON_ERR_INVALID, "invalid header search");
    for (const char *p = value; *p != '\0'; p++)
        if (*p < 0x20 || *p >= 0x7f)
            return pg_store_fail(&m->sc, PIGEON_ERR_INVALID,
                                 "header search values are printable ASCII");
    struct search_ctx sc = {0};
    pg_buf cmd;
    pg_buf_init(&cmd);
    pg_buf_printf(&cmd, "UID SEARCH HEADER %s \"", field);
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            pg_buf_putc(&cmd, '\\');
        pg_buf_putc(&cmd, *p);
    }
    pg_buf_putc(&cmd, '"');
    if ((err = cmd.err) == PIGEON_OK &&
        (err = pg_imap_send(m, NULL, cmd.data, cmd.len)) == PIGEON_OK)
        err = pg_imap_wait(m, on_search, &sc, "UID SEARCH", PIGEON_ERR_REJECTED, NULL);
    pg_buf_cleanup(&cmd);
    if (err != PIGEON_OK) {
        free(sc.uids);
        return err;
    }
    if (sc.n > 1)
        qsort(sc.uids, sc.n, sizeof *sc.uids, cmp_u32);
    *uids = sc.uids;
    *n = sc.n;
    return PIGEON_OK;
}

/* ---- UID FETCH ---- */

struct fetch_ctx {
    uint32_t uid; /* the message asked for */
    int found;    /* its FETCH response came with a body */
    int nil;      /* its body was NIL (expunged meanwhile) */
};

/* msg-att pairs: UID n, BODY[] string (streamed: a zero-length literal is left). */
static pigeon_err on_fetch(pigeon_imap *m, const pg_imap_resp *r, void *vctx)
{
    struct fetch_ctx *fc = vctx;
    if (!keyword_is(r, "FETCH") || r->ntoks < 2 || r->toks[0].type != PG_IMAP_TOK_OPEN)
        return PIGEON_OK;
    uint64_t uid = 0;
    const pg_imap_tok *body = NULL;
    for (size_t i = 1; i + 1 < r->ntoks; i++) {
        const pg_imap_tok *t = &r->toks[i];
        if (t->depth != 1 || t->type != PG_IMAP_TOK_ATOM)
            continue;
        if (pg_imap_tok_is(t, "UID") && r->toks[i + 1].type == PG_IMAP_TOK_NUMBER)
            uid = r->toks[i + 1].num;
        else if (pg_imap_tok_is(t, "BODY[]") || pg_imap_tok_is(t, "RFC822"))
            body = &r->toks[i + 1];
    }
    if (body == NULL || uid != fc->uid)
        return PIGEON_OK;
    fc->found = 1;
    if (body->type == PG_IMAP_TOK_NIL) {
        fc->nil = 1;
    } else if (!m->streamed_any && body->type == PG_IMAP_TOK_QUOTED) {
        /* A small body sent as a quoted string: unescaped to the sink. */
        pg_buf b;
        pg_buf_init(&b);
        pg_imap_tok_copy(body, &b);
        m->streamed += b.len;
        int stop = b.len > 0 && m->sink(m->sink_ctx, b.data, b.len) != 0;
        pg_buf_cleanup(&b);
        if (stop)
            return pg_store_fail(&m->sc, PIGEON_ERR_IO, "the message's reader stopped");
    }
    return PIGEON_OK;
}

pigeon_err pigeon_imap_uid_fetch(pigeon_imap *m, uint32_t uid, pigeon_store_sink_fn sink, void *ctx,
                                 uint64_t *size)
{
    if (size != NULL)
        *size = 0;
    pigeon_err err = require_state(m, 1);
    if (err != PIGEON_OK)
        return err;
    if (sink == NULL || uid == 0)
        return PIGEON_ERR_INVALID;
    char cmd[64];
    int n = snprintf(cmd, sizeof cmd, "UID FETCH %u (UID BODY.PEEK[])", (unsigned)uid);
    struct fetch_ctx fc = {uid, 0, 0};
    m->sink = sink;
    m->sink_ctx = ctx;
    m->streamed = 0;
    m->streamed_any = 0;
    if ((err = pg_imap_send(m, NULL, cmd, (size_t)n)) == PIGEON_OK)
        err = pg_imap_wait(m, on_fetch, &fc, "UID FETCH", PIGEON_ERR_REJECTED, NULL);
    m->sink = NULL;
    if (err == PIGEON_OK && (!fc.found || fc.nil))
        err = pg_store_fail(&m->sc, PIGEON_ERR_NOTFOUND, "no message with UID %u", (unsigned)uid);
    if (size != NULL)
        *size = m->streamed;
    return err;
}

/* ---- APPEND ---- */

/* flag-list contents: system flags (\Seen) and keywords, atoms only (RFC 9051 6.3.12). */
static int flags_valid(const char *f)
{
    for (const char *p = f; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 ? c != ' ' : (c >= 0x7f || strchr("(){\"%*]", c) != NULL))
            return 0;
        if (c == '\\' && p != f && p[-1] != ' ')
            return 0;
    }
    return 1;
}

static pigeon_err send_body(pigeon_imap *m, int (*read)(void *, void *, size_t, size_t *),
                            void *rctx, uint64_t size)
{
    char chunk[16384];
    uint64_t left = size;
    pg_store_arm(&m->sc,
                 (int64_t)(size >> 20) * (m->sc.o.timeout_ms > 0 ? m->sc.o.timeout_ms : 60000));
    pg_store_trace(&m->sc, PIGEON_TRANSCRIPT_CLIENT, "[%llu octets of the message]",
                   (unsigned long long)size);
    while (left > 0) {
        size_t got = 0;
        size_t want = left < sizeof chunk ? (size_t)left : sizeof chunk;
        if (read(rctx, chunk, want, &got) != 0 || got == 0)
            return pg_store_fail(&m->sc, PIGEON_ERR_IO,
                                 "the message ended %llu octets short of its announced size",
                                 (unsigned long long)left);
        if (got > want)
            got = want;
        pigeon_err err = pg_store_write(&m->sc, chunk, got);
        if (err != PIGEON_OK)
            return err;
        left -= got;
    }
    return pg_store_write(&m->sc, "\r\n", 2);
}

pigeon_err pigeon_imap_append(pigeon_imap *m, const char *mailbox, const char *flags,
                              int (*read)(void *ctx, void *buf, size_t cap, size_t *n),
                              void *read_ctx, uint64_t size, uint32_t *uid)
{
    if (uid != NULL)
        *uid = 0;
    pigeon_err err = require_state(m, 0);
    if (err != PIGEON_OK)
        return err;
    if (mailbox == NULL || read == NULL)
        return PIGEON_ERR_INVALID;
    if (flags != NULL && !flags_valid(flags))
        return pg_store_fail(&m->sc, PIGEON_ERR_INVALID, "invalid flags for APPEND");
    /* RFC 7888: LITERAL+ takes any size; LITERAL- only up to 4096 octets. */
    int nonsync = pigeon_imap_has_capability(m, "LITERAL+") ||
                  (pigeon_imap_has_capability(m, "LITERAL-") && size <= 4096);
    pg_buf cmd;
    pg_buf_init(&cmd);
    pg_buf_puts(&cmd, "APPEND ");
    if ((err = pg_imap_put_mailbox(m, &cmd, mailbox)) != PIGEON_OK)
        goto done;
    if (flags != NULL && *flags != '\0')
        pg_buf_printf(&cmd, " (%s)", flags);
    pg_buf_printf(&cmd, " {%llu%s}", (unsigned long long)size, nonsync ? "+" : "");
    if ((err = cmd.err) != PIGEON_OK ||
        (err = pg_imap_send(m, NULL, cmd.data, cmd.len)) != PIGEON_OK)
        goto done;
    if (!nonsync) {
        int cont = 0;
        err = pg_imap_wait(m, NULL, NULL, "APPEND", PIGEON_ERR_REJECTED, &cont);
        if (err != PIGEON_OK || !cont)
            goto done;
    }
    if ((err = send_body(m, read, read_ctx, size)) != PIGEON_OK) {
        m->state = PG_IMAP_S_LOGOUT; /* the literal was cut: the session is lost */
        goto done;
    }
    err = pg_imap_wait(m, NULL, NULL, "APPEND", PIGEON_ERR_REJECTED, NULL);
    if (err == PIGEON_OK && uid != NULL && strcasecmp(m->last_code, "APPENDUID") == 0 &&
        m->last.code_arg != NULL) {
        /* [APPENDUID uidvalidity uid] (RFC 4315 3) */
        const char *sp = memchr(m->last.code_arg, ' ', m->last.code_arg_len);
        if (sp != NULL)
            *uid = (uint32_t)strtoul(sp + 1, NULL, 10);
    }
done:
    if (err == PIGEON_ERR_REJECTED && strcasecmp(m->last_code, "TRYCREATE") == 0)
        err = PIGEON_ERR_NOTFOUND;
    pg_buf_cleanup(&cmd);
    return err;
}

/* ---- MOVE, delete ---- */

static pigeon_err simple(pigeon_imap *m, const pg_buf *cmd, const char *what, pigeon_err no_err)
{
    if (cmd->err != PIGEON_OK)
        return pg_store_fail(&m->sc, cmd->err, "out of memory");
    pigeon_err err = pg_imap_send(m, NULL, cmd->data, cmd->len);
    if (err == PIGEON_OK)
        err = pg_imap_wait(m, NULL, NULL, what, no_err, NULL);
    return err;
}

/* \Deleted, then UID EXPUNGE of that one message (RFC 4315 2.1). */
static pigeon_err delete_uid(pigeon_imap *m, uint32_t uid)
{
    pg_buf cmd;
    pg_buf_init(&cmd);
    pg_buf_printf(&cmd, "UID STORE %u +FLAGS.SILENT (\\Deleted)", (unsigned)uid);
    pigeon_err err = simple(m, &cmd, "UID STORE", PIGEON_ERR_REJECTED);
    if (err == PIGEON_OK) {
        pg_buf_reset(&cmd);
        if (pigeon_imap_has_capability(m, "UIDPLUS")) {
            pg_buf_printf(&cmd, "UID EXPUNGE %u", (unsigned)uid);
            err = simple(m, &cmd, "UID EXPUNGE", PIGEON_ERR_REJECTED);
        } else {
            pg_imap_note(m,
                         "no UIDPLUS: message %u is flagged \\Deleted, not expunged (a "
                         "plain EXPUNGE would remove other deleted messages too)",
                         (unsigned)uid);
        }
    }
    pg_buf_cleanup(&cmd);
    return err;
}

pigeon_err pigeon_imap_uid_move(pigeon_imap *m, uint32_t uid, const char *dest)
{
    pigeon_err err = require_state(m, 1);
    if (err != PIGEON_OK)
        return err;
    if (dest == NULL || uid == 0)
        return PIGEON_ERR_INVALID;
    int move = pigeon_imap_has_capability(m, "MOVE");
    pg_buf cmd;
    pg_buf_init(&cmd);
    pg_buf_printf(&cmd, "UID %s %u ", move ? "MOVE" : "COPY", (unsigned)uid);
    if ((err = pg_imap_put_mailbox(m, &cmd, dest)) == PIGEON_OK)
        err = simple(m, &cmd, move ? "UID MOVE" : "UID COPY", PIGEON_ERR_REJECTED);
    pg_buf_cleanup(&cmd);
    if (err == PIGEON_ERR_REJECTED && strcasecmp(m->last_code, "TRYCREATE") == 0)
        return PIGEON_ERR_NOTFOUND;
    if (err == PIGEON_OK && !move)
        err = delete_uid(m, uid);
    return err;
}

pigeon_err pigeon_imap_uid_add_flags(pigeon_imap *m, uint32_t uid, const char *flags)
{
    pigeon_err err = require_state(m, 1);
    if (err != PIGEON_OK)
        return err;
    if (uid == 0 || flags == NULL || *flags == '\0' || !flags_valid(flags))
        return pg_store_fail(&m->sc, PIGEON_ERR_INVALID, "invalid flags");
    pg_buf cmd;
    pg_buf_init(&cmd);
    pg_buf_printf(&cmd, "UID STORE %u +FLAGS.SILENT (%s)", (unsigned)uid, flags);
    err = simple(m, &cmd, "UID STORE", PIGEON_ERR_REJECTED);
    pg_buf_cleanup(&cmd);
    return err;
}

pigeon_err pigeon_imap_uid_delete(pigeon_imap *m, uint32_t uid)
{
    pigeon_err err = require_state(m, 1);
    if (err != PIGEON_OK)
        return err;
    if (uid == 0)
        return PIGEON_ERR_INVALID;
    return delete_uid(m, uid);
}

/* ---- IDLE ---- */

static pigeon_err on_idle(pigeon_imap *m, const pg_imap_resp *r, void *vctx)
{
    (void)m;
    int *changed = vctx;
    if (keyword_is(r, "EXISTS") || keyword_is(r, "EXPUNGE") || keyword_is(r, "RECENT"))
        *changed = 1;
    return PIGEON_OK;
}

pigeon_err pigeon_imap_idle(pigeon_imap *m, int timeout_ms, int *changed)
{
    if (changed == NULL)
        return PIGEON_ERR_INVALID;
    *changed = 0;
    pigeon_err err = require_state(m, 1);
    if (err != PIGEON_OK)
        return err;
    if (!pigeon_imap_has_capability(m, "IDLE"))
        return pg_store_fail(&m->sc, PIGEON_ERR_UNSUPPORTED, "server has no IDLE");
    static const char cmd[] = "IDLE";
    int cont = 0;
    if ((err = pg_imap_send(m, NULL, cmd, sizeof cmd - 1)) != PIGEON_OK ||
        (err = pg_imap_wait(m, on_idle, changed, "IDLE", PIGEON_ERR_REJECTED, &cont)) != PIGEON_OK)
        return err;
    if (!cont)
        return PIGEON_OK; /* completed at once */
    /* Wait for the first change, up to timeout_ms: the untagged responses come one by
     * one; a timeout there is the normal end. */
    int64_t until = pg_now_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    m->return_untagged = 1;
    while (!*changed && pg_now_ms() < until) {
        m->sc.deadline = until;
        int c2 = 0;
        err = pg_imap_wait(m, on_idle, changed, "IDLE", PIGEON_ERR_REJECTED, &c2);
        if (err == PIGEON_ERR_TIMEOUT && m->sc.conn != NULL) {
            /* The normal end of the wait: a partial line stays buffered. */
            m->state = PG_IMAP_S_SELECTED;
            m->sc.err[0] = '\0';
            break;
        }
        if (err != PIGEON_OK || c2 == 0) {
            m->return_untagged = 0;
            return err; /* an error, or the tagged completion came early */
        }
    }
    m->return_untagged = 0;
    pg_store_arm(&m->sc, 0);
    pg_store_trace(&m->sc, PIGEON_TRANSCRIPT_CLIENT, "DONE");
    if ((err = pg_store_write(&m->sc, "DONE\r\n", 6)) != PIGEON_OK)
        return err;
    return pg_imap_wait(m, on_idle, changed, "IDLE", PIGEON_ERR_REJECTED, NULL);
}
