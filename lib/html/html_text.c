/*
 * html_text.c - the plain-text alternative (RFC 2046 5.1.4) generated from the HTML.
 *
 * What a reader of the HTML sees, as text: headings and paragraphs separated by blank
 * lines, <br> as a line break, lists with "*" bullets and "1." numbers (nested lists
 * indented), links as "text <url>" (the URL alone when it is the text; mailto: as the
 * address), image alt text, tables row by row, <pre> as written. Nothing hidden is
 * shown: <head>, <script>, <style>, <template>, the hidden attribute and display:none
 * (the preheader trick) after inlining. Lines are wrapped at the given width by display
 * columns (UAX #11 East Asian Width: CJK ideographs count two and may break between any
 * two of them), never inside a word or a URL. The walk is iterative.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html/html_int.h"
#include "util/utf8.h"

#define MAX_INDENT 64

/* One open list. */
typedef struct list {
    int ordered;  /* <ol> */
    long counter; /* next number */
} list;

typedef struct writer {
    pg_buf *out;   /* the text */
    pg_buf line;   /* the current line, without its indent */
    size_t line_w; /* its width in columns */
    pg_buf word;   /* the word being gathered (text between break opportunities) */
    size_t word_w; /* its width */
    int space;     /* whitespace came before the word */
    int pending;   /* newlines owed before the next content: 1 line break, 2 blank line */
    size_t width;  /* wrap column */
    char indent[MAX_INDENT + 1]; /* continuation indent of the current block */
    size_t indent_len;           /* its length */
    char marker[24];             /* a list item's marker for its first line ("* ", "2. ") */
    int hide;                    /* depth of hidden elements open: no output while nonzero */
    int pre;                     /* depth of <pre> open */
    pg_buf link;                 /* the text of the open link, whitespace collapsed */
    int in_link;                 /* a link with an href is open */
} writer;

int pg_html_cp_width(uint32_t cp)
{
    /* UAX #11: East Asian Wide (W) and Fullwidth (F) ranges, and zero-width marks. */
    static const uint32_t wide[][2] = {
        {0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},
        {0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF},   {0x4E00, 0x9FFF},
        {0xA000, 0xA4CF},   {0xA960, 0xA97F},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},
        {0xFE10, 0xFE19},   {0xFE30, 0xFE6F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},
        {0x1F300, 0x1F64F}, {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
    };
    if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x200B && cp <= 0x200F) ||
        (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0xFEFF || cp == 0x00AD || cp == 0x034F)
        return 0;
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++)
        if (cp >= wide[i][0] && cp <= wide[i][1])
            return 2;
    return 1;
}

static void rtrim_newline(pg_buf *b)
{
    while (b->len > 0 && b->data[b->len - 1] == ' ')
        b->len--;
    pg_buf_putc(b, '\n');
}

/* Writes the owed blank line and the indent (or the list marker) of a new line. */
static void start_line(writer *w)
{
    if (w->pending >= 2 && w->out->len > 0)
        pg_buf_putc(w->out, '\n');
    w->pending = 0;
    size_t mlen = strlen(w->marker);
    if (mlen > 0 && w->indent_len >= mlen) {
        pg_buf_append(w->out, w->indent, w->indent_len - mlen);
        pg_buf_append(w->out, w->marker, mlen);
        w->marker[0] = '\0';
    } else {
        pg_buf_append(w->out, w->indent, w->indent_len);
    }
}

static void flush_line(writer *w)
{
    if (w->line.len == 0)
        return;
    start_line(w);
    pg_buf_append(w->out, w->line.data, w->line.len);
    rtrim_newline(w->out);
    pg_buf_reset(&w->line);
    w->line_w = 0;
}

/* Puts the gathered word on the line, breaking the line before it if it does not fit. */
static void commit(writer *w)
{
    if (w->word.len == 0)
        return;
    size_t avail = w->width > w->indent_len + 10 ? w->width - w->indent_len : 10;
    if (w->line.len > 0 && w->line_w + (w->space ? 1 : 0) + w->word_w > avail) {
        flush_line(w);
        w->pending = 0;
    } else if (w->line.len > 0 && w->space) {
        pg_buf_putc(&w->line, ' ');
        w->line_w++;
    }
    pg_buf_append(&w->line, w->word.data, w->word.len);
    w->line_w += w->word_w;
    pg_buf_reset(&w->word);
    w->word_w = 0;
    w->space = 0;
}

/* Ends the current block: what follows starts on a new line (n = 1) or after a blank
 * line (n = 2). */
static void block(writer *w, int n)
{
    commit(w);
    flush_line(w);
    w->space = 0;
    if (w->out->len > 0 && n > w->pending)
        w->pending = n;
}

static void link_text(writer *w, const char *s, size_t n, int space)
{
    if (!w->in_link)
        return;
    if (space && w->link.len > 0 && w->link.data[w->link.len - 1] != ' ')
        pg_buf_putc(&w->link, ' ');
    pg_buf_append(&w->link, s, n);
}

/* Flowing text: whitespace collapsed, wide characters each a break opportunity. */
static void flow(writer *w, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            commit(w);
            w->space = 1;
            link_text(w, "", 0, 1);
            i++;
            continue;
        }
        uint32_t cp = c;
        size_t k = pg_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k == 0)
            k = 1;
        int cw = pg_html_cp_width(cp);
        if (cw == 0) {
            i += k;
            continue;
        }
        if (cw == 2)
            commit(w);
        if (cp == 0xA0)
            pg_buf_putc(&w->word, ' ');
        else
            pg_buf_append(&w->word, s + i, k);
        link_text(w, cp == 0xA0 ? " " : s + i, cp == 0xA0 ? 1 : k, 0);
        w->word_w += (size_t)cw;
        if (cw == 2) {
            int space = w->space;
            commit(w);
            (void)space;
        }
        i += k;
    }
}

/* Preformatted text: lines kept as written, each with the indent. */
static void preformatted(writer *w, const char *s, size_t n)
{
    commit(w);
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - s) : n;
        pg_buf_append(&w->line, s + i, end - i);
        w->line_w += end - i;
        if (nl == NULL)
            break;
        if (w->line.len == 0) {
            start_line(w);
            pg_buf_putc(w->out, '\n');
        } else {
            flush_line(w);
        }
        i = end + 1;
    }
}

static void indent_push(writer *w, const char *s, size_t *saved)
{
    *saved = w->indent_len;
    size_t n = strlen(s);
    if (w->indent_len + n > MAX_INDENT)
        return;
    memcpy(w->indent + w->indent_len, s, n);
    w->indent_len += n;
    w->indent[w->indent_len] = '\0';
}

/* Nonzero when the element is not rendered: hidden attribute or display:none. */
static int is_hidden(const pg_html_el *el)
{
    if (pg_html_attr(el, "hidden") != NULL)
        return 1;
    const char *style = pg_html_attr_now(el, "style");
    if (style == NULL || strstr(style, "none") == NULL)
        return 0;
    pg_css_decls d = {NULL, 0, 0};
    int hidden = 0;
    if (pg_css_decls_parse(&d, style, strlen(style)) == PIGEON_OK)
        for (size_t k = 0; k < d.count; k++)
            if (strcmp(d.items[k].prop, "display") == 0)
                hidden = strncasecmp(d.items[k].value, "none", 4) == 0;
    pg_css_decls_cleanup(&d);
    return hidden;
}

/* How an element shapes the text. */
enum shape {
    INLINE,
    SKIP,
    PARA,
    LINE,
    HEADING,
    LIST,
    ITEM,
    ROW,
    CELL,
    PRE,
    QUOTE,
    BR,
    HR,
    IMG,
    LINK
};

static enum shape shape_of(GumboTag t)
{
    switch (t) {
    case GUMBO_TAG_HEAD:
    case GUMBO_TAG_SCRIPT:
    case GUMBO_TAG_STYLE:
    case GUMBO_TAG_TEMPLATE:
    case GUMBO_TAG_TITLE:
    case GUMBO_TAG_NOSCRIPT:
    case GUMBO_TAG_SELECT:
    case GUMBO_TAG_OBJECT:
    case GUMBO_TAG_IFRAME:
    case GUMBO_TAG_SVG:
    case GUMBO_TAG_MATH:
        return SKIP;
    case GUMBO_TAG_P:
    case GUMBO_TAG_TABLE:
    case GUMBO_TAG_DL:
    case GUMBO_TAG_FIGURE:
    case GUMBO_TAG_ADDRESS:
    case GUMBO_TAG_FIELDSET:
        return PARA;
    case GUMBO_TAG_H1:
    case GUMBO_TAG_H2:
    case GUMBO_TAG_H3:
    case GUMBO_TAG_H4:
    case GUMBO_TAG_H5:
    case GUMBO_TAG_H6:
        return HEADING;
    case GUMBO_TAG_DIV:
    case GUMBO_TAG_SECTION:
    case GUMBO_TAG_ARTICLE:
    case GUMBO_TAG_HEADER:
    case GUMBO_TAG_FOOTER:
    case GUMBO_TAG_NAV:
    case GUMBO_TAG_ASIDE:
    case GUMBO_TAG_MAIN:
    case GUMBO_TAG_CENTER:
    case GUMBO_TAG_DT:
    case GUMBO_TAG_DD:
    case GUMBO_TAG_CAPTION:
    case GUMBO_TAG_FIGCAPTION:
    case GUMBO_TAG_FORM:
    case GUMBO_TAG_DETAILS:
    case GUMBO_TAG_SUMMARY:
    case GUMBO_TAG_BODY:
    case GUMBO_TAG_THEAD:
    case GUMBO_TAG_TBODY:
    case GUMBO_TAG_TFOOT:
        return LINE;
    case GUMBO_TAG_UL:
    case GUMBO_TAG_OL:
    case GUMBO_TAG_MENU:
        return LIST;
    case GUMBO_TAG_LI:
        return ITEM;
    case GUMBO_TAG_TR:
        return ROW;
    case GUMBO_TAG_TD:
    case GUMBO_TAG_TH:
        return CELL;
    case GUMBO_TAG_PRE:
    case GUMBO_TAG_LISTING:
    case GUMBO_TAG_PLAINTEXT:
    case GUMBO_TAG_XMP:
        return PRE;
    case GUMBO_TAG_BLOCKQUOTE:
        return QUOTE;
    case GUMBO_TAG_BR:
        return BR;
    case GUMBO_TAG_HR:
        return HR;
    case GUMBO_TAG_IMG:
        return IMG;
    case GUMBO_TAG_A:
        return LINK;
    default:
        return INLINE;
    }
}

/* An open element of the walk and what to undo when it closes. */
typedef struct frame {
    const GumboNode *node; /* the element or document */
    unsigned next;         /* next child to visit */
    enum shape shape;      /* what it is */
    size_t indent;         /* indent length to restore */
    int hidden;            /* it raised w->hide */
    int list;              /* it pushed a list */
    const char *href;      /* LINK: the URL shown after its text */
    size_t link_saved;     /* LINK: w->link.len when it opened (nested links) */
} frame;

typedef struct walker {
    frame *frames; /* open elements */
    size_t n;      /* depth */
    size_t cap;    /* allocated */
    list *lists;   /* open lists */
    size_t nlists; /* how many */
    size_t lcap;   /* allocated */
} walker;

static void item_start(writer *w, walker *k, const pg_html_el *el, frame *f)
{
    block(w, 1);
    list *l = k->nlists ? &k->lists[k->nlists - 1] : NULL;
    const char *value = pg_html_attr(el, "value");
    if (l != NULL && l->ordered && value != NULL)
        l->counter = strtol(value, NULL, 10);
    if (l != NULL && l->ordered)
        snprintf(w->marker, sizeof w->marker, "%ld. ", l->counter++);
    else
        snprintf(w->marker, sizeof w->marker, "* ");
    char pad[sizeof w->marker];
    size_t n = strlen(w->marker);
    memset(pad, ' ', n);
    pad[n] = '\0';
    indent_push(w, pad, &f->indent);
}

static int list_start(walker *k, const pg_html_el *el, frame *f)
{
    if (k->nlists == k->lcap) {
        size_t cap = k->lcap ? k->lcap * 2 : 8;
        list *l = realloc(k->lists, cap * sizeof *l);
        if (l == NULL)
            return -1;
        k->lists = l;
        k->lcap = cap;
    }
    const char *start = pg_html_attr(el, "start");
    int ordered = el->node->v.element.tag == GUMBO_TAG_OL;
    k->lists[k->nlists++] = (list){ordered, start ? strtol(start, NULL, 10) : 1};
    f->list = 1;
    return 0;
}

static void image(writer *w, const pg_html_el *el)
{
    const char *alt = pg_html_attr(el, "alt");
    if (alt != NULL && alt[0] != '\0')
        flow(w, alt, strlen(alt));
}

static void hr(writer *w)
{
    block(w, 2);
    pg_buf_puts(&w->word, "------------------------------------------------------------");
    w->word_w = 60;
    commit(w);
    block(w, 2);
}

/* Opens element el (not hidden); returns -1 when out of memory. */
static int open_el(writer *w, walker *k, const pg_html_el *el, frame *f)
{
    switch (f->shape) {
    case PARA:
    case HEADING:
    case QUOTE:
    case PRE:
        block(w, 2);
        if (f->shape == QUOTE)
            indent_push(w, "> ", &f->indent);
        if (f->shape == PRE)
            w->pre++;
        return 0;
    case LIST:
        block(w, k->nlists == 0 ? 2 : 1);
        return list_start(k, el, f);
    case LINE:
    case ROW:
        block(w, 1);
        return 0;
    case ITEM:
        item_start(w, k, el, f);
        return 0;
    case CELL:
        if (el->prev != PG_NONE) {
            commit(w);
            w->space = 1;
        }
        return 0;
    case BR:
        commit(w);
        if (w->line.len == 0) {
            start_line(w);
            pg_buf_putc(w->out, '\n');
        } else {
            flush_line(w);
        }
        w->pending = 0;
        return 0;
    case HR:
        hr(w);
        return 0;
    case IMG:
        image(w, el);
        return 0;
    case LINK:
        f->href = pg_html_attr(el, "href");
        if (f->href != NULL && (f->href[0] == '#' || f->href[0] == '\0' ||
                                strncasecmp(f->href, "javascript:", 11) == 0))
            f->href = NULL;
        f->link_saved = w->link.len;
        if (f->href != NULL)
            w->in_link++;
        return 0;
    default:
        return 0;
    }
}

/* The URL shown for a link: mailto: as the bare address. */
static void shown_url(const char *href, const char **s, size_t *n)
{
    while (*href == ' ' || *href == '\t' || *href == '\n')
        href++;
    *s = href;
    *n = strcspn(href, " \t\r\n");
    if (*n > 7 && strncasecmp(href, "mailto:", 7) == 0) {
        *s = href + 7;
        *n = strcspn(*s, "? \t\r\n");
    }
}

static void close_link(writer *w, frame *f)
{
    if (f->href == NULL)
        return;
    w->in_link--;
    const char *url;
    size_t n;
    shown_url(f->href, &url, &n);
    const char *text = w->link.data ? w->link.data + f->link_saved : "";
    size_t tlen = w->link.len - f->link_saved;
    while (tlen > 0 && text[0] == ' ')
        text++, tlen--;
    while (tlen > 0 && text[tlen - 1] == ' ')
        tlen--;
    int same = tlen == n && strncasecmp(text, url, n) == 0;
    if (!same && n > 0) {
        commit(w);
        if (tlen > 0)
            w->space = 1;
        if (tlen > 0)
            pg_buf_putc(&w->word, '<');
        pg_buf_append(&w->word, url, n);
        if (tlen > 0)
            pg_buf_putc(&w->word, '>');
        w->word_w = n + (tlen > 0 ? 2 : 0);
        commit(w);
    }
    if (!w->in_link)
        pg_buf_reset(&w->link);
}

static void close_el(writer *w, walker *k, frame *f)
{
    switch (f->shape) {
    case PARA:
    case HEADING:
    case QUOTE:
    case PRE:
        block(w, 2);
        if (f->shape == PRE)
            w->pre--;
        break;
    case LIST:
        block(w, k->nlists == 1 ? 2 : 1);
        break;
    case LINE:
    case ROW:
    case ITEM:
        block(w, 1);
        break;
    case LINK:
        close_link(w, f);
        break;
    default:
        break;
    }
    if (f->list)
        k->nlists--;
    if (f->shape == ITEM || f->shape == QUOTE) {
        w->indent_len = f->indent;
        w->indent[w->indent_len] = '\0';
        w->marker[0] = '\0';
    }
}

static int push(walker *k, const GumboNode *node, enum shape shape)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 64;
        frame *f = realloc(k->frames, cap * sizeof *f);
        if (f == NULL)
            return -1;
        k->frames = f;
        k->cap = cap;
    }
    memset(&k->frames[k->n], 0, sizeof(frame));
    k->frames[k->n].node = node;
    k->frames[k->n].shape = shape;
    k->n++;
    return 0;
}

static void text_node(writer *w, const GumboNode *node)
{
    if (w->hide || (node->type != GUMBO_NODE_TEXT && node->type != GUMBO_NODE_WHITESPACE &&
                    node->type != GUMBO_NODE_CDATA))
        return;
    const char *t = node->v.text.text;
    if (w->pre)
        preformatted(w, t, strlen(t));
    else
        flow(w, t, strlen(t));
}

/* Visits the next child of the innermost element; returns -1 when out of memory. */
static int step(writer *w, walker *k, const pg_html_doc *doc, uint32_t *next_el)
{
    frame *f = &k->frames[k->n - 1];
    const GumboVector *kids = f->node->type == GUMBO_NODE_DOCUMENT ? &f->node->v.document.children
                                                                   : &f->node->v.element.children;
    if (f->next == kids->length) {
        if (f->hidden)
            w->hide--;
        else if (!w->hide)
            close_el(w, k, f);
        k->n--;
        return 0;
    }
    const GumboNode *child = kids->data[f->next++];
    if (child->type != GUMBO_NODE_ELEMENT && child->type != GUMBO_NODE_TEMPLATE) {
        text_node(w, child);
        return 0;
    }
    const pg_html_el *el = &doc->els[(*next_el)++];
    enum shape shape = shape_of(child->v.element.tag);
    if (push(k, child, shape) != 0)
        return -1;
    f = &k->frames[k->n - 1];
    if (!w->hide && (shape == SKIP || el->drop || is_hidden(el))) {
        f->hidden = 1;
        w->hide++;
        return 0;
    }
    if (f->hidden || w->hide)
        return 0;
    return open_el(w, k, el, f);
}

pigeon_err pg_html_text(const pg_html_doc *doc, size_t width, pg_buf *out)
{
    writer w;
    walker k;
    uint32_t next_el = 0;
    int failed = 0;
    memset(&w, 0, sizeof w);
    memset(&k, 0, sizeof k);
    w.out = out;
    w.width = width ? width : 78;
    pg_buf_init(&w.line);
    pg_buf_init(&w.word);
    pg_buf_init(&w.link);
    if (push(&k, doc->out->document, INLINE) != 0)
        failed = 1;
    while (!failed && k.n > 0)
        failed = step(&w, &k, doc, &next_el) != 0;
    commit(&w);
    flush_line(&w);
    while (out->len > 0 && out->data[out->len - 1] == '\n')
        out->len--;
    if (out->data != NULL)
        out->data[out->len] = '\0';
    if (out->len > 0)
        pg_buf_putc(out, '\n');
    pigeon_err err = failed ? PIGEON_ERR_NOMEM : out->err;
    if (err == PIGEON_OK && (w.line.err || w.word.err || w.link.err))
        err = PIGEON_ERR_NOMEM;
    pg_buf_cleanup(&w.line);
    pg_buf_cleanup(&w.word);
    pg_buf_cleanup(&w.link);
    free(k.frames);
    free(k.lists);
    return err;
}
