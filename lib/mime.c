/*
 * mime.c - the MIME composer: a message as a pull stream of bytes.
 *
 * RFC 5322 (header block, Date 3.3, Message-ID 3.6.4), RFC 2045 (Content-Transfer-Encoding
 * 6: 7bit, 8bit, quoted-printable, base64), RFC 2046 5.1 (multipart, boundaries), RFC 2387
 * (multipart/related), RFC 2183 + RFC 2231 (Content-Disposition, filename*=), RFC 6532
 * (UTF-8 addresses with SMTPUTF8).
 *
 * Opening a stream "prepares" the message: it builds the tree of MIME entities, encodes
 * the text bodies and the small attachments into one arena, picks boundaries that occur
 * nowhere in what they enclose, and lays out a list of segments: literal ranges of the
 * arena and sources (a file, a buffer, a caller stream) that are base64-encoded 64 KiB at
 * a time while reading. The total size is therefore exact before the first byte (SMTP SIZE,
 * RFC 1870) and memory stays bounded whatever the attachments weigh.
 */
#include "mime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "charset.h"
#include "encode.h"
#include "random.h"
#include "address_int.h"

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
    unsigned char *chunk;   /* CHUNK bytes for reading sources */
    int64_t total;          /* exact size of the output, -1 if unknown */
    int is_8bit;            /* the output holds octets >= 0x80 */
    pigeon_err err;         /* first read error (sticky) */
};

static pigeon_err prepare(pigeon_message_stream *s);
static void stream_close_sources(pigeon_message_stream *s);

/* ---- randomness (CSPRNG, or the test hook's fixed sequence) ---- */

static int test_mode;       /* pg_mime_test_seed was called with a nonzero seed */
static uint64_t test_state; /* splitmix64 state */

void pg_mime_test_seed(uint64_t seed)
{
    test_mode = seed != 0;
    test_state = seed;
}

/* splitmix64 (Steele, Lea, Flood 2014): a fixed, well-mixed sequence for tests. */
static uint64_t test_next(void)
{
    uint64_t z = (test_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

pigeon_err pg_mime_random_bytes(void *buf, size_t n)
{
    if (!test_mode)
        return pg_random_bytes(buf, n);
    for (size_t i = 0; i < n; i++)
        ((unsigned char *)buf)[i] = (unsigned char)(test_next() >> 56);
    return PIGEON_OK;
}

pigeon_err pg_mime_random_token(char *out, size_t n)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    if (!test_mode)
        return pg_random_token(out, n);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[test_next() % 62];
    out[n] = '\0';
    return PIGEON_OK;
}

/* ---- text analysis and encoding choice ---- */

/* What decides a body's transfer encoding. */
typedef struct text_stats {
    int has_8bit;    /* an octet >= 0x80 */
    int has_nul;     /* a NUL octet */
    int has_bare;    /* a CR not followed by LF, or an LF not preceded by CR */
    size_t max_line; /* longest line, without its CRLF */
    int ends_crlf;   /* empty, or ends with CRLF */
} text_stats;

static void analyze(const char *p, size_t n, text_stats *st)
{
    size_t line = 0;
    memset(st, 0, sizeof *st);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r' && i + 1 < n && p[i + 1] == '\n') {
            st->max_line = line > st->max_line ? line : st->max_line;
            line = 0;
            i++;
            continue;
        }
        st->has_bare |= c == '\r' || c == '\n';
        st->has_8bit |= c >= 0x80;
        st->has_nul |= c == '\0';
        line++;
    }
    st->max_line = line > st->max_line ? line : st->max_line;
    st->ends_crlf = n == 0 || (n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n');
}

/*
 * 7bit when the text can travel as is; 8bit when allowed (8BITMIME) and utf8_ok; else the
 * shorter of quoted-printable and base64. At the top level (no boundary follows) a body
 * that does not end in CRLF cannot go as is: the transport would add a CRLF the recipient
 * then reads as part of the text (RFC 5321 4.1.1.4), so it goes quoted-printable whose
 * final soft line break keeps the text exact.
 */
static cte choose_cte(const char *p, size_t n, int top, int allow_8bit, size_t max_7bit_line)
{
    text_stats st;
    analyze(p, n, &st);
    int end_ok = !top || st.ends_crlf;
    int clean = !st.has_nul && !st.has_bare && end_ok;
    if (clean && !st.has_8bit && st.max_line <= max_7bit_line)
        return CTE_7BIT;
    if (clean && allow_8bit && st.max_line <= LINE_HARD)
        return CTE_8BIT;
    return (uint64_t)pg_qp_encoded_len(p, n) <= pg_b64_encoded_len(n, B64_LINE) ? CTE_QP
                                                                                : CTE_BASE64;
}

/* Appends p[0..n) to out with every line ending (CRLF, CR, LF) as CRLF (RFC 2046 4.1.1). */
static void normalize_crlf(pg_buf *out, const char *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\r' && p[i] != '\n')
            continue;
        pg_buf_append(out, p + start, i - start);
        pg_buf_append(out, "\r\n", 2);
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    pg_buf_append(out, p + start, n - start);
}

/* Appends the body p[0..n) in encoding e. */
static pigeon_err encode_body(pg_buf *out, cte e, const char *p, size_t n)
{
    pg_b64_stream st;
    switch (e) {
    case CTE_QP:
        return pg_qp_encode(out, p, n);
    case CTE_BASE64:
        pg_b64_stream_init(&st, B64_LINE);
        if (pg_b64_stream_update(&st, out, p, n) != PIGEON_OK)
            return out->err != PIGEON_OK ? out->err : PIGEON_ERR_INVALID;
        return pg_b64_stream_final(&st, out);
    default:
        return pg_buf_append(out, p, n);
    }
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

/* A text/plain or text/html leaf from UTF-8 text, transcoded to the message's charset. */
static pigeon_err text_leaf(pigeon_message_stream *s, const char *subtype, const char *text,
                            size_t len, int top, int *out_id)
{
    pigeon_message *msg = s->msg;
    pg_buf norm, wire;
    pigeon_err err;
    int utf8 = strcmp(msg->charset, "utf-8") == 0;
    pg_buf_init(&norm);
    pg_buf_init(&wire);
    normalize_crlf(&norm, text != NULL ? text : "", text != NULL ? len : 0);
    if ((err = norm.err) != PIGEON_OK)
        goto fail;
    err = pg_charset_from_utf8(&wire, msg->charset, norm.data ? norm.data : "", norm.len);
    if (err != PIGEON_OK) {
        err = pg_message_fail(msg, err == PIGEON_ERR_NOMEM ? err : PIGEON_ERR_CHARSET,
                              "text/%s body cannot be written in %s", subtype, msg->charset);
        goto fail;
    }
    /* RFC 6152 8bit only for UTF-8: a GB18030 text goes base64/QP, which every client
     * reads, rather than raw legacy bytes through relays. */
    cte e = choose_cte(wire.data ? wire.data : "", wire.len, top, s->opts.allow_8bit && utf8,
                       LINE_SOFT);
    int id = new_node(s);
    if (id < 0) {
        err = PIGEON_ERR_NOMEM;
        goto fail;
    }
    mime_node *node = &s->nodes[id];
    node->is_8bit = e == CTE_8BIT;
    node->hdr_off = s->arena.len;
    pg_buf_printf(&s->arena, "Content-Type: text/%s; charset=%s\r\n", subtype, msg->charset);
    pg_buf_printf(&s->arena, "Content-Transfer-Encoding: %s\r\n", cte_names[e]);
    node->hdr_len = s->arena.len - node->hdr_off;
    node->body_off = s->arena.len;
    encode_body(&s->arena, e, wire.data ? wire.data : "", wire.len);
    node->body_len = s->arena.len - node->body_off;
    err = s->arena.err;
    *out_id = id;
fail:
    pg_buf_cleanup(&norm);
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
 * The encoding of an attachment held in memory. A text/ type goes 7bit when it already is
 * canonical text (ASCII, CRLF lines <= 78), so its bytes arrive unchanged; else the
 * shorter of QP and base64 (both exact). A message/ type may not be base64 (RFC 2046
 * 5.2.1): its lines are made CRLF (a message's canonical form) and it goes 7bit or 8bit
 * when it can; base64 stays the last resort for content no transport could carry as is
 * (NUL, lines over 998).
 */
static cte small_part_cte(pigeon_message_stream *s, const pg_part *part, pg_buf *content)
{
    if (strncasecmp(part->content_type, "text/", 5) == 0)
        return choose_cte(content->data, content->len, 0, 0, LINE_SOFT);
    if (strncasecmp(part->content_type, "message/", 8) == 0) {
        pg_buf norm;
        pg_buf_init(&norm);
        normalize_crlf(&norm, content->data, content->len);
        cte e = choose_cte(norm.data ? norm.data : "", norm.len, 0, s->opts.allow_8bit, LINE_HARD);
        if (norm.err == PIGEON_OK && (e == CTE_7BIT || e == CTE_8BIT)) {
            pg_buf tmp = *content;
            *content = norm;
            norm = tmp;
        } else {
            e = CTE_BASE64;
        }
        pg_buf_cleanup(&norm);
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
static void part_headers(pg_buf *out, const pg_part *part, cte e)
{
    size_t col;
    pg_buf_printf(out, "Content-Type: %s", part->content_type);
    col = strlen("Content-Type: ") + strlen(part->content_type);
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
    if (part->content_id != NULL)
        pg_buf_printf(out, "Content-ID: <%s>\r\n", part->content_id);
    pg_buf_printf(out, "Content-Transfer-Encoding: %s\r\n", cte_names[e]);
}

/* A leaf for an attachment or inline part. */
static pigeon_err part_leaf(pigeon_message_stream *s, const pg_part *part, int *out_id)
{
    pg_buf content;
    pigeon_err err = PIGEON_OK;
    int in_memory = 0;
    int id = new_node(s);
    if (id < 0)
        return PIGEON_ERR_NOMEM;
    mime_node *node = &s->nodes[id];
    node->src = part;
    pg_buf_init(&content);
    if (part->kind == PG_PART_FILE) {
        if ((err = open_file_part(s, node, &content, &in_memory)) != PIGEON_OK)
            goto fail;
    } else if (part->kind == PG_PART_BUFFER) {
        node->src_size = (int64_t)part->len;
        in_memory = part->len <= SMALL_PART;
        if (in_memory)
            pg_buf_append(&content, part->data, part->len);
    } else {
        node->src_size = part->size;
    }
    if ((err = content.err) != PIGEON_OK)
        goto fail;
    cte e = in_memory ? small_part_cte(s, part, &content) : CTE_BASE64;
    node->is_8bit = e == CTE_8BIT;
    node->hdr_off = s->arena.len;
    part_headers(&s->arena, part, e);
    node->hdr_len = s->arena.len - node->hdr_off;
    if (in_memory) {
        node->src = NULL; /* the body is literal now */
        node->body_off = s->arena.len;
        encode_body(&s->arena, e, content.data ? content.data : "", content.len);
        node->body_len = s->arena.len - node->body_off;
    }
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
        return text_leaf(s, "plain", msg->text, msg->text_len, top, out_id);
    if (msg->text == NULL)
        return text_leaf(s, "html", msg->html, msg->html_len, top, out_id);
    if ((err = text_leaf(s, "plain", msg->text, msg->text_len, 0, &kids[0])) != PIGEON_OK)
        return err;
    if ((err = text_leaf(s, "html", msg->html, msg->html_len, 0, &kids[1])) != PIGEON_OK)
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

/* ---- the header block (RFC 5322 3.6) ---- */

/* RFC 5322 3.3 date-time, in UTC ("+0000"): the library does not read TZ. */
static void put_date(pg_buf *out, time_t when)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (gmtime_r(&when, &tm) == NULL) {
        out->err = out->err ? out->err : PIGEON_ERR_INVALID;
        return;
    }
    pg_buf_printf(out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday],
                  tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
}

/* An address list field, omitted when empty. */
static pigeon_err put_list(pg_buf *out, const char *name, const pigeon_address_list *list, int utf8)
{
    size_t col = strlen(name) + 2;
    pigeon_err err;
    if (list->count == 0 && list->empty_group_count == 0)
        return PIGEON_OK;
    pg_buf_printf(out, "%s: ", name);
    if ((err = pg_address_list_format(out, &col, list, utf8)) != PIGEON_OK)
        return err;
    return pg_buf_puts(out, "\r\n");
}

static pigeon_err put_mailbox(pg_buf *out, const char *name, const pigeon_mailbox *mb, int utf8)
{
    size_t col = strlen(name) + 2;
    pigeon_err err;
    pg_buf_printf(out, "%s: ", name);
    if ((err = pg_mailbox_format(out, &col, mb, utf8)) != PIGEON_OK)
        return err;
    return pg_buf_puts(out, "\r\n");
}

/* In-Reply-To / References: msg-ids folded between ids (RFC 5322 3.6.4 allows CFWS). */
static void put_msgids(pg_buf *out, const char *name, const char *ids)
{
    size_t col = strlen(name) + 1;
    pg_buf_puts(out, name);
    pg_buf_putc(out, ':');
    while (*ids != '\0') {
        const char *end = strchr(ids, ' ');
        size_t n = end ? (size_t)(end - ids) : strlen(ids);
        if (col > strlen(name) + 1 && col + 1 + n > LINE_SOFT) {
            pg_buf_puts(out, "\r\n");
            col = 0;
        }
        pg_buf_putc(out, ' ');
        pg_buf_append(out, ids, n);
        col += 1 + n;
        ids += n + (end != NULL);
    }
    pg_buf_puts(out, "\r\n");
}

/* RFC 6531 3.3: a non-ASCII local part can only travel with SMTPUTF8. */
static int needs_smtputf8(const pigeon_mailbox *mb)
{
    for (const char *p = mb->local; *p != '\0'; p++) {
        if ((unsigned char)*p >= 0x80)
            return 1;
    }
    return 0;
}

static int list_needs_smtputf8(const pigeon_address_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        if (needs_smtputf8(&list->items[i]))
            return 1;
    }
    return 0;
}

static pigeon_err check_smtputf8(pigeon_message_stream *s)
{
    pigeon_message *msg = s->msg;
    if (s->opts.smtputf8)
        return PIGEON_OK;
    if (needs_smtputf8(&msg->from) || (msg->has_sender && needs_smtputf8(&msg->sender)) ||
        list_needs_smtputf8(&msg->reply_to) || list_needs_smtputf8(&msg->to) ||
        list_needs_smtputf8(&msg->cc))
        return pg_message_fail(msg, PIGEON_ERR_ADDRESS,
                               "a non-ASCII local part needs SMTPUTF8 (RFC 6531)");
    return PIGEON_OK;
}

/* The address fields, in the documented order (Bcc never: RFC 5322 3.6.3 allows leaving
 * it out, and the recipients must not see each other's blind copies). */
static pigeon_err address_fields(pigeon_message_stream *s)
{
    pigeon_message *msg = s->msg;
    pg_buf *out = &s->arena;
    int utf8 = s->opts.smtputf8 != 0;
    pigeon_err err = put_mailbox(out, "From", &msg->from, utf8);
    if (err == PIGEON_OK && msg->has_sender)
        err = put_mailbox(out, "Sender", &msg->sender, utf8);
    if (err == PIGEON_OK)
        err = put_list(out, "Reply-To", &msg->reply_to, utf8);
    if (err == PIGEON_OK)
        err = put_list(out, "To", &msg->to, utf8);
    if (err == PIGEON_OK)
        err = put_list(out, "Cc", &msg->cc, utf8);
    return err;
}

/* The message's own header fields, in the documented order, up to MIME-Version. */
static pigeon_err header_block(pigeon_message_stream *s)
{
    pigeon_message *msg = s->msg;
    pg_buf *out = &s->arena;
    pigeon_err err;
    put_date(out, msg->date);
    if ((err = address_fields(s)) != PIGEON_OK)
        return pg_message_fail(msg, err, "cannot write the address fields: %s",
                               pigeon_strerror(err));
    if (msg->subject != NULL)
        pg_header_unstructured(out, "Subject", msg->subject);
    pg_buf_printf(out, "Message-ID: <%s>\r\n", msg->message_id);
    if (msg->in_reply_to != NULL)
        put_msgids(out, "In-Reply-To", msg->in_reply_to);
    if (msg->references != NULL)
        put_msgids(out, "References", msg->references);
    for (size_t i = 0; i < msg->header_count; i++)
        pg_header_unstructured(out, msg->headers[i].name, msg->headers[i].value);
    pg_buf_puts(out, "MIME-Version: 1.0\r\n");
    if (out->err != PIGEON_OK)
        return pg_message_fail(msg, out->err, "cannot format the header: %s",
                               pigeon_strerror(out->err));
    return PIGEON_OK;
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

/* Appends text to the arena and lays it out as a literal. */
static pigeon_err add_text(pigeon_message_stream *s, const char *fmt, const char *a, const char *b)
{
    size_t off = s->arena.len;
    pg_buf_printf(&s->arena, fmt, a, b);
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
            (err = add_text(s, "%s%s", "\r\n", "")) != PIGEON_OK)
            return err;
        if (node->src != NULL)
            return add_seg(s, id, 0, 0);
        return add_seg(s, -1, node->body_off, node->body_len);
    }
    /* "Content-Type: multipart/alternative; boundary=..." would pass 78 columns. */
    size_t width = strlen("Content-Type: multipart/; boundary=\"\"") + strlen(node->subtype) +
                   strlen(node->boundary);
    err = add_text(s,
                   width > LINE_SOFT ? "Content-Type: multipart/%s;\r\n boundary=\"%s\""
                                     : "Content-Type: multipart/%s; boundary=\"%s\"",
                   node->subtype, node->boundary);
    if (err == PIGEON_OK && node->root_type != NULL)
        err = add_text(s, ";\r\n type=\"%s\"%s", node->root_type, "");
    if (err == PIGEON_OK && node->is_8bit)
        err = add_text(s, "%s%s", "\r\nContent-Transfer-Encoding: 8bit", "");
    if (err == PIGEON_OK)
        err = add_text(s, "%s%s", "\r\n\r\n", "");
    for (int k = node->first_kid; k >= 0 && err == PIGEON_OK; k = s->nodes[k].next) {
        err =
            add_text(s, k == node->first_kid ? "--%s\r\n%s" : "\r\n--%s\r\n%s", node->boundary, "");
        if (err == PIGEON_OK)
            err = layout(s, k);
    }
    if (err == PIGEON_OK)
        err = add_text(s, "\r\n--%s--\r\n%s", node->boundary, "");
    return err;
}

/* Exact output size (RFC 1870 SIZE) and whether any octet is 8-bit. */
static void measure(pigeon_message_stream *s)
{
    s->total = 0;
    for (size_t i = 0; i < s->seg_count; i++) {
        const mime_seg *seg = &s->segs[i];
        if (seg->node < 0) {
            for (size_t j = 0; j < seg->len && !s->is_8bit; j++)
                s->is_8bit = (unsigned char)s->arena.data[seg->off + j] >= 0x80;
            if (s->total >= 0)
                s->total += (int64_t)seg->len;
        } else if (s->nodes[seg->node].src_size < 0) {
            s->total = -1;
        } else if (s->total >= 0) {
            s->total +=
                (int64_t)pg_b64_encoded_len((uint64_t)s->nodes[seg->node].src_size, B64_LINE);
        }
    }
}

static pigeon_err prepare(pigeon_message_stream *s)
{
    pigeon_message *msg = s->msg;
    pigeon_err err;
    int root = -1;
    if ((err = check_smtputf8(s)) != PIGEON_OK)
        return err;
    if ((err = header_block(s)) != PIGEON_OK)
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
    measure(s);
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
    s->chunk = malloc(CHUNK);
    if (s->chunk == NULL) {
        err = pg_message_fail(msg, PIGEON_ERR_NOMEM, "out of memory");
        goto fail;
    }
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
    *in = s->chunk;
    if (part->kind == PG_PART_BUFFER) {
        *in = part->data + s->src_read;
        *n = want;
    } else if (part->kind == PG_PART_FILE) {
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
    if (s->total > 0)
        pg_buf_reserve(&b, (size_t)s->total);
    for (;;) {
        size_t n;
        if (pg_buf_reserve(&b, CHUNK) != PIGEON_OK) {
            err = pg_message_fail(msg, b.err, "out of memory");
            break;
        }
        if ((err = pigeon_message_stream_read(s, b.data + b.len, CHUNK, &n)) != PIGEON_OK)
            break;
        b.len += n;
        b.data[b.len] = '\0';
        if (n == 0)
            break;
    }
    pigeon_message_stream_free(s);
    if (err == PIGEON_OK)
        *out = pg_buf_detach(&b, len);
    pg_buf_cleanup(&b);
    return err;
}

/* Writes all of p[0..n) to fd, retrying on EINTR and short writes. */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
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
        if (write_all(fd, block, n) != 0) {
            err = pg_message_fail(msg, PIGEON_ERR_IO, "write: %s", strerror(errno));
            break;
        }
    }
    free(block);
    pigeon_message_stream_free(s);
    return err;
}
