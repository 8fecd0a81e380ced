/*
 * mime.c - the MIME composer: a message as a pull stream of bytes.
 *
 * RFC 5322 (header block, Date 3.3, Message-ID 3.6.4), RFC 2045 (Content-Transfer-Encoding
 * 6: 7bit, 8bit, quoted-printable, base64), RFC 2046 5.1 (multipart, boundaries), RFC 2387
 * (multipart/related), RFC 2183 + RFC 2231 (Content-Disposition, filename*=), RFC 6532
 * (UTF-8 addresses with SMTPUTF8).
 *
 * Opening a stream "prepares" the message: it builds the tree of MIME entities, encodes
 * the text bodies and the small attachments that need it into one arena, picks boundaries
 * that occur nowhere in what they enclose, and lays out a list of segments: literal ranges
 * of the arena and sources (a file, a buffer, a caller stream) that are base64-encoded
 * 64 KiB at a time while reading. The total size is therefore exact before the first byte
 * (SMTP SIZE, RFC 1870) and memory stays bounded whatever the attachments weigh.
 *
 * Speed: each body is scanned once (at set time for the text bodies, lib/mime/mime_text.c) for
 * everything the choice of encoding needs; line breaks are made CRLF while encoding, not
 * in a copy; only a body written as is (7bit, 8bit) is searched for the boundary prefix;
 * an in-memory attachment that goes base64 stays a source, and
 * pigeon_message_write_buffer encodes sources straight into the one output buffer,
 * reserved at its exact size. The message header block is lib/mime/mime_header.c.
 */
#include "mime/mime.h"
#include "util/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mime/charset.h"
#include "codec/encode.h"
#include "util/random.h"

/* Attachments at most this big are read at prepare time to choose their encoding; larger
 * ones (and streams) are base64-encoded on the fly. */
#define SMALL_PART (1024 * 1024)
/* Bytes read from a source per step. */
#define CHUNK (64 * 1024)
/* RFC 2045 6.8 / 6.7: encoded lines are at most 76 characters. */
#define B64_LINE 76
/* RFC 5322 2.1.1: lines SHOULD be at most 78 characters (7bit bodies), MUST be <= 998. */
#define LINE_SOFT 78
#define LINE_HARD 998
/* "=_" cannot occur in base64 or quoted-printable output (RFC 2045 6.7 rule 1 encodes '='),
 * so a boundary with this prefix can collide only with 7bit/8bit content. */
#define BOUNDARY_PREFIX "=_pigeon_"
#define BOUNDARY_RANDOM 24
#define BOUNDARY_SIZE   (sizeof BOUNDARY_PREFIX + BOUNDARY_RANDOM)
/* What pg_b64_stream_update may reserve beyond the exact encoded length (a CRLF for a line
 * it counts as started, the final group). */
#define B64_SLACK 64
/* Attempts at a boundary that collides with nothing before giving up. */
#define BOUNDARY_TRIES 64

/* Content-Transfer-Encoding of a leaf (RFC 2045 6.1). */
typedef enum cte { CTE_7BIT, CTE_8BIT, CTE_QP, CTE_BASE64 } cte;
static const char *const cte_names[] = {"7bit", "8bit", "quoted-printable", "base64"};

/* One MIME entity of the tree built at prepare time. */
typedef struct mime_node {
    int multi;                    /* nonzero: a multipart, else a leaf */
    const char *subtype;          /* multipart: "mixed", "alternative" or "related" */
    const char *root_type;        /* multipart/related: type= of its first part (RFC 2387) */
    char boundary[BOUNDARY_SIZE]; /* multipart: its boundary, NUL-terminated */
    int first_kid;                /* multipart: index of the first child, -1 if none */
    int next;                     /* index of the next sibling, -1 if none */
    int is_8bit;                  /* the entity (or one inside it) is sent 8bit */
    int body_8bit;                /* leaf: its literal body holds octets >= 0x80 */
    int has_prefix;               /* leaf: BOUNDARY_PREFIX occurs in its literal bytes */
    size_t hdr_off, hdr_len;      /* leaf: its header fields (each ending in CRLF), in the arena */
    size_t body_off, body_len;    /* leaf: its literal body, in the arena (when src is NULL) */
    const pg_part *src;           /* leaf: base64 on the fly from this part, or NULL */
    int fd;                       /* leaf from a big file: opened at prepare, or -1 */
    int64_t src_size;             /* leaf from a source: input length, -1 if unknown */
} mime_node;

/* One piece of the output: a literal range of the arena, or a source node. */
typedef struct mime_seg {
    int node;        /* index of the source node, or -1 for a literal */
    size_t off, len; /* literal: the range in the arena */
} mime_seg;

struct pigeon_message_stream {
    pigeon_message *msg;    /* the message (borrowed; must outlive the stream) */
    pigeon_write_opts opts; /* how to write it */
    pg_buf arena;           /* all literal bytes */
    mime_node *nodes;       /* the entity tree, nodes[0] is the root */
    size_t node_count;      /* number of nodes */
    size_t node_cap;        /* allocated nodes */
    mime_seg *segs;         /* the output, in order */
    size_t seg_count;       /* number of segs */
    size_t seg_cap;         /* allocated segs */
    size_t cur;             /* the segment being read */
    size_t lit_pos;         /* bytes of the current literal segment already given out */
    pg_buf pending;         /* encoded bytes of the current source not yet given out */
    size_t pending_pos;     /* how many of them were given out */
    pg_b64_stream b64;      /* the current source's encoder */
    int src_started;        /* the current source is being encoded */
    int src_done;           /* its input is exhausted and the encoder finalized */
    uint64_t src_read;      /* input bytes of the current source read so far */
    unsigned char *chunk;   /* CHUNK bytes for reading files and streams, or NULL */
    int64_t total;          /* exact size of the output, -1 if unknown */
    int is_8bit;            /* the output holds octets >= 0x80 */
    pigeon_err err;         /* first read error (sticky) */
};

static pigeon_err prepare(pigeon_message_stream *s);
static void stream_close_sources(pigeon_message_stream *s);
static int contains(const char *hay, size_t n, const char *needle, size_t m);
static pigeon_err add_text(pigeon_message_stream *s, ...) __attribute__((sentinel));

/* ---- encoding choice (from one pg_text_scan pass) ---- */

/*
 * 7bit when the text can travel as is; 8bit when allowed (8BITMIME) and utf8_ok; else the
 * shorter of quoted-printable and base64. At the top level (no boundary follows) a body
 * that does not end in CRLF cannot go as is: the transport would add a CRLF the recipient
 * then reads as part of the text (RFC 5321 4.1.1.4), so it goes quoted-printable whose
 * final soft line break keeps the text exact. The scan bounds the QP length; only when
 * the bounds straddle the base64 length must QP be encoded to know (*try_qp is set: encode
 * QP, keep it if not longer than base64, else base64).
 */
static cte choose_cte(const pg_text_stats *st, int top, int allow_8bit, size_t max_7bit_line,
                      int *try_qp)
{
    int end_ok = !top || st->ends_break;
    int clean = !st->has_nul && !st->has_bare && end_ok;
    *try_qp = 0;
    if (clean && !st->has_8bit && st->max_line <= max_7bit_line)
        return CTE_7BIT;
    if (clean && allow_8bit && st->max_line <= LINE_HARD)
        return CTE_8BIT;
    uint64_t b64 = pg_b64_encoded_len(st->out_len, B64_LINE);
    if (st->qp_min > b64)
        return CTE_BASE64;
    *try_qp = st->qp_max > b64;
    return CTE_QP;
}

/* A body held in memory, and how it is to be written. */
typedef struct body_src {
    const char *data; /* the octets */
    size_t len;       /* their number */
    int norm;         /* line breaks are rewritten to CRLF on the way (RFC 2046 4.1.1) */
    size_t out_len;   /* the length once rewritten (len when !norm) */
} body_src;

/* Appends the body in encoding e. */
static pigeon_err encode_body(pg_buf *out, cte e, const body_src *b)
{
    pg_b64_stream st;
    switch (e) {
    case CTE_QP:
        return b->norm ? pg_qp_encode_text(out, b->data, b->len)
                       : pg_qp_encode(out, b->data, b->len);
    case CTE_BASE64:
        if (b->norm)
            return pg_text_put_b64(out, b->data, b->len, b->out_len);
        pg_b64_stream_init(&st, B64_LINE);
        if (pg_b64_stream_update(&st, out, b->data, b->len) != PIGEON_OK)
            return out->err != PIGEON_OK ? out->err : PIGEON_ERR_INVALID;
        return pg_b64_stream_final(&st, out);
    default:
        return b->norm ? pg_text_put_crlf(out, b->data, b->len, b->out_len)
                       : pg_buf_append(out, b->data, b->len);
    }
}

/*
 * Writes a leaf's literal body into the arena and returns its encoding: *e, or base64
 * when try_qp and QP came out longer (the same choice as comparing the two lengths). The
 * body goes before the leaf's header fields in the arena, which then name the encoding
 * actually used; the layout puts them in order.
 */
static cte put_leaf_body(pigeon_message_stream *s, mime_node *node, cte e, int try_qp,
                         const body_src *b)
{
    pg_buf *arena = &s->arena;
    node->body_off = arena->len;
    encode_body(arena, e, b);
    if (try_qp && arena->err == PIGEON_OK &&
        arena->len - node->body_off > pg_b64_encoded_len(b->out_len, B64_LINE)) {
        arena->len = node->body_off;
        arena->data[arena->len] = '\0';
        e = CTE_BASE64;
        encode_body(arena, e, b);
    }
    node->body_len = arena->len - node->body_off;
    node->body_8bit =
        e == CTE_8BIT && pg_text_has_8bit(arena->data + node->body_off, node->body_len);
    /* Only a body written as is can hold the boundary prefix: "=_" is neither base64 nor
     * quoted-printable (RFC 2045 6.7 (1) encodes '='). */
    node->has_prefix =
        (e == CTE_7BIT || e == CTE_8BIT) && contains(arena->data + node->body_off, node->body_len,
                                                     BOUNDARY_PREFIX, strlen(BOUNDARY_PREFIX));
    return e;
}

/* ---- the tree ---- */

static int new_node(pigeon_message_stream *s)
{
    if (s->node_count == s->node_cap) {
        size_t cap = s->node_cap ? s->node_cap * 2 : 8;
        mime_node *grown = realloc(s->nodes, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        s->nodes = grown;
        s->node_cap = cap;
    }
    mime_node *n = &s->nodes[s->node_count];
    memset(n, 0, sizeof *n);
    n->first_kid = n->next = -1;
    n->fd = -1;
    n->src_size = -1;
    return (int)s->node_count++;
}

/* Makes a multipart node holding kids[0..nkids). */
static int new_multi(pigeon_message_stream *s, const char *subtype, const int *kids, size_t nkids)
{
    int id = new_node(s);
    if (id < 0)
        return -1;
    s->nodes[id].multi = 1;
    s->nodes[id].subtype = subtype;
    s->nodes[id].first_kid = nkids ? kids[0] : -1;
    for (size_t i = 0; i + 1 < nkids; i++)
        s->nodes[kids[i]].next = kids[i + 1];
    for (size_t i = 0; i < nkids; i++)
        s->nodes[id].is_8bit |= s->nodes[kids[i]].is_8bit;
    return id;
}

/* The header fields of a text leaf (RFC 2045 5, 6; RFC 2046 4.1.2). */
static void text_headers(pigeon_message_stream *s, mime_node *node, const char *subtype, cte e)
{
    pg_buf *arena = &s->arena;
    node->hdr_off = arena->len;
    pg_buf_puts(arena, "Content-Type: text/");
    pg_buf_puts(arena, subtype);
    pg_buf_puts(arena, "; charset=");
    pg_buf_puts(arena, s->msg->charset);
    pg_buf_puts(arena, "\r\nContent-Transfer-Encoding: ");
    pg_buf_puts(arena, cte_names[e]);
    pg_buf_puts(arena, "\r\n");
    node->hdr_len = arena->len - node->hdr_off;
}

/* A text leaf's body in a legacy charset: made CRLF, transcoded (GB18030 and GBK keep
 * CR and LF as single octets), then scanned as it will be written. */
static pigeon_err transcode_text(pigeon_message_stream *s, const char *subtype, const char *text,
                                 size_t len, size_t crlf_len, pg_buf *wire, pg_text_stats *st)
{
    pigeon_message *msg = s->msg;
    pg_buf norm;
    pg_buf_init(&norm);
    pigeon_err err = pg_text_put_crlf(&norm, text, len, crlf_len);
    if (err == PIGEON_OK)
        err = pg_charset_from_utf8(wire, msg->charset, norm.data ? norm.data : "", norm.len);
    pg_buf_cleanup(&norm);
    if (err != PIGEON_OK)
        return pg_message_fail(msg, err == PIGEON_ERR_NOMEM ? err : PIGEON_ERR_CHARSET,
                               "text/%s body cannot be written in %s", subtype, msg->charset);
    pg_text_scan(wire->data ? wire->data : "", wire->len, 0, st);
    return PIGEON_OK;
}

/* A text/plain or text/html leaf from UTF-8 text (scanned when it was set), written in the
 * message's charset. */
static pigeon_err text_leaf(pigeon_message_stream *s, const char *subtype, const char *text,
                            size_t len, const pg_text_stats *stats, int top, int *out_id)
{
    pigeon_message *msg = s->msg;
    pg_buf wire;
    pg_text_stats st = *stats;
    body_src b = {text != NULL ? text : "", text != NULL ? len : 0, 0, 0};
    pigeon_err err = PIGEON_OK;
    int utf8 = strcmp(msg->charset, "utf-8") == 0;
    int try_qp;
    pg_buf_init(&wire);
    if (text == NULL)
        pg_text_scan("", 0, PG_SCAN_NORMALIZE, &st);
    if (!utf8) {
        err = transcode_text(s, subtype, b.data, b.len, st.out_len, &wire, &st);
        if (err != PIGEON_OK)
            goto fail;
        b.data = wire.data ? wire.data : "";
        b.len = wire.len;
    }
    b.norm = utf8 && st.bare > 0;
    b.out_len = st.out_len;
    /* RFC 6152 8bit only for UTF-8: a GB18030 text goes base64/QP, which every client
     * reads, rather than raw legacy bytes through relays. */
    cte e = choose_cte(&st, top, s->opts.allow_8bit && utf8, LINE_SOFT, &try_qp);
    int id = new_node(s);
    if (id < 0) {
        err = PIGEON_ERR_NOMEM;
        goto fail;
    }
    mime_node *node = &s->nodes[id];
    e = put_leaf_body(s, node, e, try_qp, &b);
    node->is_8bit = e == CTE_8BIT;
    text_headers(s, node, subtype, e);
    err = s->arena.err;
    *out_id = id;
fail:
    pg_buf_cleanup(&wire);
    return err;
}

/* Reads a whole small file (size bytes) into out. */
static pigeon_err read_all(int fd, int64_t size, pg_buf *out)
{
    if (pg_buf_reserve(out, (size_t)size) != PIGEON_OK)
        return out->err;
    while (out->len < (size_t)size) {
        ssize_t r = read(fd, out->data + out->len, (size_t)size - out->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return PIGEON_ERR_IO;
        out->len += (size_t)r;
    }
    out->data[out->len] = '\0';
    return PIGEON_OK;
}

/*
 * The encoding of an attachment held in memory (b: its octets; may set b->norm). A text/
 * type goes 7bit when it already is canonical text (ASCII, CRLF lines <= 78), so its bytes
 * arrive unchanged; else the shorter of QP and base64 (both exact). A message/ type may not
 * be base64 (RFC 2046 5.2.1): its lines are made CRLF (a message's canonical form) and it
 * goes 7bit or 8bit when it can; base64 stays the last resort for content no transport
 * could carry as is (NUL, lines over 998).
 */
static cte small_part_cte(pigeon_message_stream *s, const pg_part *part, body_src *b, int *try_qp,
                          int *utf8)
{
    pg_text_stats st;
    *try_qp = 0;
    if (strncasecmp(part->content_type, "text/", 5) == 0) {
        pg_text_scan(b->data, b->len, 0, &st);
        /* RFC 2046 4.1.2: text without a charset is US-ASCII; non-ASCII text that is valid
         * UTF-8 says so, or clients show it garbled (a Chinese CSV, say). */
        *utf8 = st.has_8bit && pg_utf8_valid(b->data, b->len);
        return choose_cte(&st, 0, 0, LINE_SOFT, try_qp);
    }
    if (strncasecmp(part->content_type, "message/", 8) == 0) {
        pg_text_scan(b->data, b->len, PG_SCAN_NORMALIZE, &st);
        int qp;
        cte e = choose_cte(&st, 0, s->opts.allow_8bit, LINE_HARD, &qp);
        if (e != CTE_7BIT && e != CTE_8BIT)
            return CTE_BASE64;
        b->norm = st.bare > 0;
        b->out_len = st.out_len;
        return e;
    }
    return CTE_BASE64;
}

/* Opens a file part: small ones are read into content, big ones keep node->fd open. */
static pigeon_err open_file_part(pigeon_message_stream *s, mime_node *node, pg_buf *content,
                                 int *in_memory)
{
    const pg_part *part = node->src;
    struct stat st;
    node->fd = open(part->path, O_RDONLY | O_CLOEXEC);
    if (node->fd < 0)
        return pg_message_fail(s->msg, PIGEON_ERR_NOTFOUND, "cannot open %s: %s", part->path,
                               strerror(errno));
    if (fstat(node->fd, &st) != 0 || !S_ISREG(st.st_mode))
        return pg_message_fail(s->msg, PIGEON_ERR_NOTFOUND, "%s: not a regular file", part->path);
    node->src_size = (int64_t)st.st_size;
    *in_memory = st.st_size <= SMALL_PART;
    if (!*in_memory)
        return PIGEON_OK;
    pigeon_err err = read_all(node->fd, node->src_size, content);
    close(node->fd);
    node->fd = -1;
    if (err != PIGEON_OK)
        return pg_message_fail(s->msg, err, "cannot read %s", part->path);
    return PIGEON_OK;
}

/* The header fields of an attachment or inline part (RFC 2183, RFC 2231, RFC 2392). */
static void part_headers(pg_buf *out, const pg_part *part, cte e, int utf8)
{
    size_t col;
    pg_buf_puts(out, "Content-Type: ");
    pg_buf_puts(out, part->content_type);
    col = strlen("Content-Type: ") + strlen(part->content_type);
    if (utf8) {
        pg_buf_puts(out, "; charset=utf-8");
        col += strlen("; charset=utf-8");
    }
    if (part->filename != NULL)
        pg_param_append_ew(out, &col, "name", part->filename);
    pg_buf_puts(out, "\r\n");
    pg_buf_puts(out, part->content_id ? "Content-Disposition: inline"
                                      : "Content-Disposition: attachment");
    col = strlen(part->content_id ? "Content-Disposition: inline"
                                  : "Content-Disposition: attachment");
    if (part->filename != NULL)
        pg_param_append(out, &col, "filename", part->filename);
    pg_buf_puts(out, "\r\n");
    if (part->content_id != NULL) {
        pg_buf_puts(out, "Content-ID: <");
        pg_buf_puts(out, part->content_id);
        pg_buf_puts(out, ">\r\n");
    }
    pg_buf_puts(out, "Content-Transfer-Encoding: ");
    pg_buf_puts(out, cte_names[e]);
    pg_buf_puts(out, "\r\n");
}

/* A leaf for an attachment or inline part. A part held in memory whose encoding is base64
 * stays a source: it is encoded straight into the output when written, never copied. */
static pigeon_err part_leaf(pigeon_message_stream *s, const pg_part *part, int *out_id)
{
    pg_buf content;
    pigeon_err err = PIGEON_OK;
    int in_memory = 0, try_qp = 0, utf8 = 0;
    int id = new_node(s);
    if (id < 0)
        return PIGEON_ERR_NOMEM;
    mime_node *node = &s->nodes[id];
    body_src b = {"", 0, 0, 0};
    node->src = part;
    pg_buf_init(&content);
    if (part->kind == PG_PART_FILE) {
        if ((err = open_file_part(s, node, &content, &in_memory)) != PIGEON_OK)
            goto fail;
        b.data = content.data ? content.data : "";
        b.len = content.len;
    } else if (part->kind == PG_PART_BUFFER) {
        node->src_size = (int64_t)part->len;
        in_memory = part->len <= SMALL_PART;
        b.data = part->data;
        b.len = part->len;
    } else {
        node->src_size = part->size;
    }
    b.out_len = b.len;
    cte e = in_memory ? small_part_cte(s, part, &b, &try_qp, &utf8) : CTE_BASE64;
    if (in_memory && (e != CTE_BASE64 || part->kind != PG_PART_BUFFER)) {
        node->src = NULL; /* the body is literal now */
        e = put_leaf_body(s, node, e, try_qp, &b);
    }
    node->is_8bit = e == CTE_8BIT;
    node->hdr_off = s->arena.len;
    part_headers(&s->arena, part, e, utf8);
    node->hdr_len = s->arena.len - node->hdr_off;
    if (s->arena.err == PIGEON_OK)
        node->has_prefix |= contains(s->arena.data + node->hdr_off, node->hdr_len, BOUNDARY_PREFIX,
                                     strlen(BOUNDARY_PREFIX));
    err = s->arena.err;
    *out_id = id;
fail:
    pg_buf_cleanup(&content);
    return err;
}

/* The body: text/plain, text/html, or multipart/alternative of both (RFC 2046 5.1.4:
 * the plainest first). No body at all is an empty text/plain. top: nothing wraps it. */
static pigeon_err body_tree(pigeon_message_stream *s, int top, int *out_id)
{
    pigeon_message *msg = s->msg;
    int kids[2];
    pigeon_err err;
    if (msg->html == NULL)
        return text_leaf(s, "plain", msg->text, msg->text_len, &msg->text_stats, top, out_id);
    if (msg->text == NULL)
        return text_leaf(s, "html", msg->html, msg->html_len, &msg->html_stats, top, out_id);
    err = text_leaf(s, "plain", msg->text, msg->text_len, &msg->text_stats, 0, &kids[0]);
    if (err != PIGEON_OK)
        return err;
    err = text_leaf(s, "html", msg->html, msg->html_len, &msg->html_stats, 0, &kids[1]);
    if (err != PIGEON_OK)
        return err;
    *out_id = new_multi(s, "alternative", kids, 2);
    return *out_id < 0 ? PIGEON_ERR_NOMEM : PIGEON_OK;
}

/* Builds the whole tree: body, wrapped in related with the inline parts (RFC 2387), then
 * in mixed with the attachments (RFC 2046 5.1.3). */
static pigeon_err build_tree(pigeon_message_stream *s, int *root)
{
    pigeon_message *msg = s->msg;
    size_t n = msg->part_count;
    pigeon_err err;
    int *kids = malloc((n + 1) * sizeof *kids);
    if (kids == NULL)
        return PIGEON_ERR_NOMEM;
    if ((err = body_tree(s, n == 0, &kids[0])) != PIGEON_OK)
        goto fail;
    for (int pass = 0; pass < 2; pass++) {
        size_t nkids = 1;
        const char *root_type = s->nodes[kids[0]].multi ? "multipart/alternative"
                                : msg->html != NULL     ? "text/html"
                                                        : "text/plain";
        for (size_t i = 0; i < n; i++) {
            if ((msg->parts[i].content_id != NULL) != (pass == 0))
                continue;
            if ((err = part_leaf(s, &msg->parts[i], &kids[nkids++])) != PIGEON_OK)
                goto fail;
        }
        if (nkids == 1)
            continue;
        kids[0] = new_multi(s, pass == 0 ? "related" : "mixed", kids, nkids);
        if (kids[0] < 0) {
            err = PIGEON_ERR_NOMEM;
            goto fail;
        }
        s->nodes[kids[0]].root_type = pass == 0 ? root_type : NULL;
    }
    *root = kids[0];
fail:
    free(kids);
    return err;
}

/* ---- boundaries (RFC 2046 5.1.1) ---- */

/* Nonzero if needle[0..m) occurs in hay[0..n) (memmem is a GNU extension). */
static int contains(const char *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; m <= n && i <= n - m; i++) {
        const char *p = memchr(hay + i, needle[0], n - m - i + 1);
        if (p == NULL)
            return 0;
        i = (size_t)(p - hay);
        if (memcmp(p, needle, m) == 0)
            return 1;
    }
    return 0;
}

/* Nonzero if needle occurs in the literal bytes of node id or anything inside it. */
static int subtree_contains(const pigeon_message_stream *s, int id, const char *needle)
{
    const mime_node *node = &s->nodes[id];
    size_t nlen = strlen(needle);
    if (!node->multi) {
        const char *a = s->arena.data;
        if (!node->has_prefix) /* needle starts with "--" BOUNDARY_PREFIX */
            return 0;
        return contains(a + node->hdr_off, node->hdr_len, needle, nlen) ||
               (node->src == NULL && contains(a + node->body_off, node->body_len, needle, nlen));
    }
    /* A nested boundary delimiter line is part of the enclosed content too. */
    if (strstr(node->boundary, needle + 2) != NULL)
        return 1;
    for (int k = node->first_kid; k >= 0; k = s->nodes[k].next) {
        if (subtree_contains(s, k, needle))
            return 1;
    }
    return 0;
}

/* Picks boundaries bottom-up, each one absent from everything it encloses. */
static pigeon_err choose_boundaries(pigeon_message_stream *s, int id)
{
    mime_node *node = &s->nodes[id];
    char delim[2 + BOUNDARY_SIZE];
    if (!node->multi)
        return PIGEON_OK;
    for (int k = node->first_kid; k >= 0; k = s->nodes[k].next) {
        pigeon_err err = choose_boundaries(s, k);
        if (err != PIGEON_OK)
            return err;
    }
    for (int tries = 0; tries < BOUNDARY_TRIES; tries++) {
        char token[BOUNDARY_RANDOM + 1];
        if (pg_mime_random_token(token, BOUNDARY_RANDOM) != PIGEON_OK)
            return PIGEON_ERR_IO;
        snprintf(delim, sizeof delim, "--%s%s", BOUNDARY_PREFIX, token);
        node->boundary[0] = '\0'; /* not compared against itself */
        int clash = 0;
        for (int k = node->first_kid; k >= 0 && !clash; k = s->nodes[k].next)
            clash = subtree_contains(s, k, delim);
        if (!clash) {
            memcpy(node->boundary, delim + 2, strlen(delim + 2) + 1);
            return PIGEON_OK;
        }
    }
    return pg_message_fail(s->msg, PIGEON_ERR_INVALID, "no boundary absent from the content");
}

/* ---- layout: the segment list ---- */

/* Appends a segment; a literal directly after a literal in the arena extends it. */
static pigeon_err add_seg(pigeon_message_stream *s, int node, size_t off, size_t len)
{
    if (node < 0 && s->seg_count > 0) {
        mime_seg *last = &s->segs[s->seg_count - 1];
        if (last->node < 0 && last->off + last->len == off) {
            last->len += len;
            return PIGEON_OK;
        }
    }
    if (s->seg_count == s->seg_cap) {
        size_t cap = s->seg_cap ? s->seg_cap * 2 : 16;
        mime_seg *grown = realloc(s->segs, cap * sizeof *grown);
        if (grown == NULL)
            return PIGEON_ERR_NOMEM;
        s->segs = grown;
        s->seg_cap = cap;
    }
    s->segs[s->seg_count++] = (mime_seg){node, off, len};
    return PIGEON_OK;
}

/* Appends the strings (up to a NULL) to the arena and lays them out as one literal. */
static pigeon_err add_text(pigeon_message_stream *s, ...)
{
    size_t off = s->arena.len;
    va_list ap;
    va_start(ap, s);
    for (const char *p = va_arg(ap, const char *); p != NULL; p = va_arg(ap, const char *))
        pg_buf_puts(&s->arena, p);
    va_end(ap);
    if (s->arena.err != PIGEON_OK)
        return s->arena.err;
    return add_seg(s, -1, off, s->arena.len - off);
}

/* Lays out an entity: its header fields, the empty line, its body (RFC 2045 3, 2046 5.1.1:
 * the CRLF before each delimiter belongs to the delimiter). */
static pigeon_err layout(pigeon_message_stream *s, int id)
{
    const mime_node *node = &s->nodes[id];
    pigeon_err err;
    if (!node->multi) {
        if ((err = add_seg(s, -1, node->hdr_off, node->hdr_len)) != PIGEON_OK ||
            (err = add_text(s, "\r\n", NULL)) != PIGEON_OK)
            return err;
        if (node->src != NULL)
            return add_seg(s, id, 0, 0);
        return add_seg(s, -1, node->body_off, node->body_len);
    }
    /* "Content-Type: multipart/alternative; boundary=..." would pass 78 columns. */
    size_t width = strlen("Content-Type: multipart/; boundary=\"\"") + strlen(node->subtype) +
                   strlen(node->boundary);
    err = add_text(s, "Content-Type: multipart/", node->subtype,
                   width > LINE_SOFT ? ";\r\n boundary=\"" : "; boundary=\"", node->boundary, "\"",
                   NULL);
    if (err == PIGEON_OK && node->root_type != NULL)
        err = add_text(s, ";\r\n type=\"", node->root_type, "\"", NULL);
    if (err == PIGEON_OK && node->is_8bit)
        err = add_text(s, "\r\nContent-Transfer-Encoding: 8bit", NULL);
    if (err == PIGEON_OK)
        err = add_text(s, "\r\n\r\n", NULL);
    for (int k = node->first_kid; k >= 0 && err == PIGEON_OK; k = s->nodes[k].next) {
        err = add_text(s, k == node->first_kid ? "--" : "\r\n--", node->boundary, "\r\n", NULL);
        if (err == PIGEON_OK)
            err = layout(s, k);
    }
    if (err == PIGEON_OK)
        err = add_text(s, "\r\n--", node->boundary, "--\r\n", NULL);
    return err;
}

/* Exact output size (RFC 1870 SIZE) and whether any octet is 8-bit: only the message
 * header, leaf headers and 8bit bodies can hold one (multipart lines are ASCII, base64 and
 * quoted-printable are 7bit). */
static void measure(pigeon_message_stream *s, size_t header_len)
{
    s->total = 0;
    for (size_t i = 0; i < s->seg_count && s->total >= 0; i++) {
        const mime_seg *seg = &s->segs[i];
        if (seg->node < 0)
            s->total += (int64_t)seg->len;
        else if (s->nodes[seg->node].src_size < 0)
            s->total = -1;
        else
            s->total +=
                (int64_t)pg_b64_encoded_len((uint64_t)s->nodes[seg->node].src_size, B64_LINE);
    }
    s->is_8bit = pg_text_has_8bit(s->arena.data, header_len);
    for (size_t i = 0; i < s->node_count && !s->is_8bit; i++) {
        const mime_node *node = &s->nodes[i];
        s->is_8bit =
            !node->multi &&
            (node->body_8bit || pg_text_has_8bit(s->arena.data + node->hdr_off, node->hdr_len));
    }
}

/* Room for the arena at once: the header block, the text bodies as base64 (the usual
 * encoding of non-ASCII text; 7bit is shorter, QP may grow it) and the part headers. */
static size_t arena_estimate(const pigeon_message *msg)
{
    size_t est = 2048 + 512 * msg->part_count;
    if (msg->text != NULL)
        est += (size_t)pg_b64_encoded_len(msg->text_stats.out_len, B64_LINE);
    if (msg->html != NULL)
        est += (size_t)pg_b64_encoded_len(msg->html_stats.out_len, B64_LINE);
    return est;
}

static pigeon_err prepare(pigeon_message_stream *s)
{
    pigeon_message *msg = s->msg;
    pigeon_err err;
    int root = -1;
    if ((err = pg_mime_check_smtputf8(msg, s->opts.smtputf8)) != PIGEON_OK)
        return err;
    if (pg_buf_reserve(&s->arena, arena_estimate(msg)) != PIGEON_OK)
        return pg_message_fail(msg, PIGEON_ERR_NOMEM, "out of memory");
    if ((err = pg_mime_header_block(&s->arena, msg, s->opts.smtputf8)) != PIGEON_OK)
        return err;
    size_t header_len = s->arena.len;
    if ((err = build_tree(s, &root)) != PIGEON_OK)
        return msg->last_err == err ? err
                                    : pg_message_fail(msg, err, "cannot compose the message: %s",
                                                      pigeon_strerror(err));
    if ((err = choose_boundaries(s, root)) != PIGEON_OK)
        return err;
    if ((err = add_seg(s, -1, 0, header_len)) != PIGEON_OK || (err = layout(s, root)) != PIGEON_OK)
        return pg_message_fail(msg, err, "cannot compose the message: %s", pigeon_strerror(err));
    measure(s, header_len);
    return PIGEON_OK;
}

/* ---- the stream ---- */

pigeon_err pigeon_message_stream_open(pigeon_message *msg, const pigeon_write_opts *opts,
                                      pigeon_message_stream **out)
{
    pigeon_message_stream *s = NULL;
    pigeon_err err;
    if (msg == NULL || out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (msg->err != PIGEON_OK)
        return msg->err;
    /* A write-time error of an earlier attempt is not the message's any more. */
    msg->last_err = PIGEON_OK;
    msg->errmsg[0] = '\0';
    if (!msg->has_from)
        return pg_message_fail(msg, PIGEON_ERR_INVALID, "no From address");
    for (size_t i = 0; i < msg->part_count; i++) {
        if (msg->parts[i].kind == PG_PART_STREAM && msg->stream_consumed)
            return pg_message_fail(msg, PIGEON_ERR_STATE,
                                   "a message with a stream attachment is written only once");
    }
    if ((err = pg_message_ensure_id(msg)) != PIGEON_OK)
        return pg_message_fail(msg, err, "cannot generate a Message-ID");
    if (!msg->has_date) {
        /* The time of the first write, kept so that every write gives the same bytes. */
        msg->date = time(NULL);
        msg->has_date = 1;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return pg_message_fail(msg, PIGEON_ERR_NOMEM, "out of memory");
    s->msg = msg;
    if (opts != NULL)
        s->opts = *opts;
    pg_buf_init(&s->arena);
    pg_buf_init(&s->pending);
    if ((err = prepare(s)) != PIGEON_OK)
        goto fail;
    for (size_t i = 0; i < msg->part_count; i++)
        msg->stream_consumed |= msg->parts[i].kind == PG_PART_STREAM;
    *out = s;
    return PIGEON_OK;
fail:
    pigeon_message_stream_free(s);
    return err;
}

static void stream_close_sources(pigeon_message_stream *s)
{
    for (size_t i = 0; i < s->node_count; i++) {
        if (s->nodes[i].fd >= 0)
            close(s->nodes[i].fd);
        s->nodes[i].fd = -1;
    }
}

void pigeon_message_stream_free(pigeon_message_stream *s)
{
    if (s == NULL)
        return;
    stream_close_sources(s);
    pg_buf_cleanup(&s->arena);
    pg_buf_cleanup(&s->pending);
    free(s->nodes);
    free(s->segs);
    free(s->chunk);
    free(s);
}

int64_t pigeon_message_stream_size(const pigeon_message_stream *s)
{
    return s != NULL ? s->total : -1;
}

int pigeon_message_stream_is_8bit(const pigeon_message_stream *s)
{
    return s != NULL && s->is_8bit;
}

/* Reads the next input chunk of a source node into *in / *n (0 at the end). */
static pigeon_err source_chunk(pigeon_message_stream *s, mime_node *node, const void **in,
                               size_t *n)
{
    const pg_part *part = node->src;
    uint64_t left = node->src_size >= 0 ? (uint64_t)node->src_size - s->src_read : CHUNK;
    size_t want = left < CHUNK ? (size_t)left : CHUNK;
    *n = 0;
    *in = NULL;
    if (part->kind == PG_PART_BUFFER) {
        *in = part->data + s->src_read;
        *n = want;
        s->src_read += want;
        return PIGEON_OK;
    }
    /* Allocated on first use: a message without files or streams never needs it. */
    if (s->chunk == NULL && (s->chunk = malloc(CHUNK)) == NULL)
        return pg_message_fail(s->msg, PIGEON_ERR_NOMEM, "out of memory");
    *in = s->chunk;
    if (part->kind == PG_PART_FILE) {
        ssize_t r;
        do
            r = want > 0 ? read(node->fd, s->chunk, want) : 0;
        while (r < 0 && errno == EINTR);
        if (r < 0 || (r == 0 && want > 0))
            return pg_message_fail(s->msg, PIGEON_ERR_IO, "%s: %s", part->path,
                                   r < 0 ? strerror(errno) : "file shrank while being sent");
        *n = (size_t)r;
    } else {
        /* One extra byte of room beyond the declared size detects a longer stream. */
        size_t cap = node->src_size >= 0 && want < CHUNK ? want + 1 : CHUNK;
        if (part->read(part->ctx, s->chunk, cap, n) != 0 || *n > cap)
            return pg_message_fail(s->msg, PIGEON_ERR_IO, "attachment stream read failed");
        if (node->src_size >= 0 && *n > want)
            return pg_message_fail(s->msg, PIGEON_ERR_IO, "attachment stream longer than %lld",
                                   (long long)node->src_size);
        if (*n == 0 && node->src_size >= 0 && want > 0)
            return pg_message_fail(s->msg, PIGEON_ERR_IO, "attachment stream shorter than %lld",
                                   (long long)node->src_size);
    }
    s->src_read += *n;
    return PIGEON_OK;
}

/* Encodes the next chunk of the current source into s->pending. */
static pigeon_err fill_source(pigeon_message_stream *s, mime_node *node)
{
    const void *in;
    size_t n;
    pigeon_err err;
    if (!s->src_started) {
        pg_b64_stream_init(&s->b64, B64_LINE);
        s->src_started = 1;
        s->src_read = 0;
    }
    pg_buf_reset(&s->pending);
    s->pending_pos = 0;
    if ((err = source_chunk(s, node, &in, &n)) != PIGEON_OK)
        return err;
    if (n > 0)
        err = pg_b64_stream_update(&s->b64, &s->pending, in, n);
    else {
        err = pg_b64_stream_final(&s->b64, &s->pending);
        s->src_done = 1;
    }
    if (err != PIGEON_OK)
        return pg_message_fail(s->msg, err, "cannot encode an attachment");
    return PIGEON_OK;
}

/* Copies what the current segment has ready; returns bytes copied (0: segment over or
 * more input needed, see *advance). */
static size_t copy_ready(pigeon_message_stream *s, char *dst, size_t cap)
{
    const mime_seg *seg = &s->segs[s->cur];
    const char *from;
    size_t avail;
    if (seg->node < 0) {
        from = s->arena.data + seg->off + s->lit_pos;
        avail = seg->len - s->lit_pos;
    } else {
        from = s->pending.data + s->pending_pos;
        avail = s->pending.len - s->pending_pos;
    }
    size_t n = avail < cap ? avail : cap;
    if (n > 0)
        memcpy(dst, from, n);
    if (seg->node < 0)
        s->lit_pos += n;
    else
        s->pending_pos += n;
    return n;
}

static void next_segment(pigeon_message_stream *s)
{
    const mime_seg *seg = &s->segs[s->cur];
    if (seg->node >= 0 && s->nodes[seg->node].fd >= 0) {
        close(s->nodes[seg->node].fd);
        s->nodes[seg->node].fd = -1;
    }
    s->cur++;
    s->lit_pos = 0;
    s->src_started = s->src_done = 0;
    pg_buf_reset(&s->pending);
    s->pending_pos = 0;
}

pigeon_err pigeon_message_stream_read(pigeon_message_stream *s, void *buf, size_t cap, size_t *n)
{
    size_t done = 0;
    if (n != NULL)
        *n = 0;
    if (s == NULL || n == NULL || (buf == NULL && cap > 0))
        return PIGEON_ERR_INVALID;
    if (s->err != PIGEON_OK)
        return s->err;
    while (done < cap && s->cur < s->seg_count) {
        const mime_seg *seg = &s->segs[s->cur];
        size_t got = copy_ready(s, (char *)buf + done, cap - done);
        done += got;
        if (got > 0)
            continue;
        if (seg->node < 0 || s->src_done) {
            next_segment(s);
            continue;
        }
        pigeon_err err = fill_source(s, &s->nodes[seg->node]);
        if (err != PIGEON_OK) {
            s->err = err;
            return err;
        }
    }
    *n = done;
    return PIGEON_OK;
}

/* ---- whole-message writers ---- */

/* Base64-encodes a whole source into out (RFC 2045 6.8): a buffer in one step, files and
 * streams a chunk at a time. */
static pigeon_err encode_source(pigeon_message_stream *s, mime_node *node, pg_buf *out)
{
    const pg_part *part = node->src;
    pg_b64_stream st;
    pigeon_err err = PIGEON_OK;
    pg_b64_stream_init(&st, B64_LINE);
    s->src_read = 0;
    if (part->kind == PG_PART_BUFFER) {
        pg_b64_stream_update(&st, out, part->data, part->len);
    } else {
        for (;;) {
            const void *in;
            size_t n;
            if ((err = source_chunk(s, node, &in, &n)) != PIGEON_OK || n == 0)
                break;
            if (pg_b64_stream_update(&st, out, in, n) != PIGEON_OK)
                break;
        }
    }
    if (node->fd >= 0) {
        close(node->fd);
        node->fd = -1;
    }
    if (err != PIGEON_OK)
        return err;
    if (pg_b64_stream_final(&st, out) != PIGEON_OK)
        return pg_message_fail(s->msg, out->err, "cannot encode an attachment");
    return PIGEON_OK;
}

/* The whole message in one buffer, reserved once at its exact size (plus the few octets
 * the base64 encoder's reservation may ask beyond it): literal segments are copied and
 * sources encoded straight into it, without the stream's intermediate buffers. */
pigeon_err pigeon_message_write_buffer(pigeon_message *msg, const pigeon_write_opts *opts,
                                       char **out, size_t *len)
{
    pigeon_message_stream *s = NULL;
    pg_buf b;
    pigeon_err err;
    if (out == NULL || len == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    *len = 0;
    if ((err = pigeon_message_stream_open(msg, opts, &s)) != PIGEON_OK)
        return err;
    pg_buf_init(&b);
    if (s->total >= 0)
        pg_buf_reserve(&b, (size_t)s->total + B64_SLACK);
    for (size_t i = 0; i < s->seg_count && err == PIGEON_OK && b.err == PIGEON_OK; i++) {
        const mime_seg *seg = &s->segs[i];
        if (seg->node < 0)
            pg_buf_append(&b, s->arena.data + seg->off, seg->len);
        else
            err = encode_source(s, &s->nodes[seg->node], &b);
    }
    if (err == PIGEON_OK && b.err != PIGEON_OK)
        err = pg_message_fail(msg, b.err, "out of memory");
    pigeon_message_stream_free(s);
    if (err == PIGEON_OK)
        *out = pg_buf_detach(&b, len);
    pg_buf_cleanup(&b);
    return err;
}

pigeon_err pigeon_message_write_fd(pigeon_message *msg, const pigeon_write_opts *opts, int fd)
{
    pigeon_message_stream *s = NULL;
    char *block = NULL;
    pigeon_err err;
    if ((err = pigeon_message_stream_open(msg, opts, &s)) != PIGEON_OK)
        return err;
    /* Not s->chunk: the stream reads its sources into that while filling ours. */
    block = malloc(CHUNK);
    if (block == NULL)
        err = pg_message_fail(msg, PIGEON_ERR_NOMEM, "out of memory");
    while (block != NULL) {
        size_t n;
        if ((err = pigeon_message_stream_read(s, block, CHUNK, &n)) != PIGEON_OK || n == 0)
            break;
        if (pg_write_all(fd, block, n) != 0) {
            err = pg_message_fail(msg, PIGEON_ERR_IO, "write: %s", strerror(errno));
            break;
        }
    }
    free(block);
    pigeon_message_stream_free(s);
    return err;
}
