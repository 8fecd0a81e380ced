/*
 * base64.c - base64 transfer encoding (RFC 4648 section 4), raw and wrapped into
 * CRLF-terminated lines for MIME bodies (RFC 2045 section 6.8: at most 76 characters).
 *
 * The encoder turns each 3-byte group into two 12-bit indexes into a 4096-entry table of
 * character pairs, so there is no branch per byte; six input bytes become eight output
 * characters per step. The streaming encoder writes whole lines straight into reserved
 * buffer space, so a 1 GB attachment flows through in bounded memory at memcpy-like speed;
 * the 76-column MIME line has its own unrolled encoder, and on x86-64 CPUs with SSSE3
 * (checked at run time) a vector one.
 */
#include "codec/encode.h"

#include <string.h>

/* The RFC 4648 table 1 alphabet, as a constant expression so the pair table below can be
 * built at compile time (no lazy initialization, no lock). */
#define B64C(v)                                                                                    \
    (char)((v) < 26    ? 'A' + (v)                                                                 \
           : (v) < 52  ? 'a' + (v)-26                                                              \
           : (v) < 62  ? '0' + (v)-52                                                              \
           : (v) == 62 ? '+'                                                                       \
                       : '/')
#define PAIR(i)     B64C(((i) >> 6) & 63), B64C((i)&63)
#define PAIR4(i)    PAIR(i), PAIR((i) + 1), PAIR((i) + 2), PAIR((i) + 3)
#define PAIR16(i)   PAIR4(i), PAIR4((i) + 4), PAIR4((i) + 8), PAIR4((i) + 12)
#define PAIR64(i)   PAIR16(i), PAIR16((i) + 16), PAIR16((i) + 32), PAIR16((i) + 48)
#define PAIR256(i)  PAIR64(i), PAIR64((i) + 64), PAIR64((i) + 128), PAIR64((i) + 192)
#define PAIR1024(i) PAIR256(i), PAIR256((i) + 256), PAIR256((i) + 512), PAIR256((i) + 768)

/* enc12[2*i], enc12[2*i+1]: the two characters for the 12-bit value i. */
static const char enc12[8192] = {PAIR1024(0), PAIR1024(1024), PAIR1024(2048), PAIR1024(3072)};

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Decoding classes beyond the 0..63 sextet values. */
#define D_BAD  0xff /* not allowed anywhere */
#define D_SKIP 0xfe /* CR, LF, space, tab: ignored (line wrapping) */
#define D_PAD  0xfd /* '=' */

static unsigned char dec_class(unsigned char c);
static char *enc_groups(const uint8_t *in, size_t ngroups, char *dst);
static char *enc_tail(const uint8_t *in, size_t n, char *dst);
static size_t line_bytes(const pg_b64_stream *st);
static char *stream_put_group(pg_b64_stream *st, const uint8_t *group, char *dst);
static char *stream_encode(pg_b64_stream *st, const uint8_t *in, size_t n, char *dst);

uint64_t pg_b64_encoded_len(uint64_t n, unsigned line_len)
{
    uint64_t chars = (n + 2) / 3 * 4;
    if (line_len == 0 || chars == 0)
        return chars;
    return chars + 2 * ((chars + line_len - 1) / line_len);
}

/* The eight bytes at p as a big-endian number: one load (and a byte swap) where the
 * compiler knows the byte order, else assembled byte by byte. */
static inline uint64_t load_be64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && defined(__GNUC__)
    uint64_t x;
    memcpy(&x, p, 8);
    return __builtin_bswap64(x);
#else
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | p[i];
    return x;
#endif
}

/* Eight characters for the first six bytes of x (a big-endian load): two groups. */
static inline void enc_pair(uint64_t x, char *dst)
{
    uint32_t a = (uint32_t)(x >> 40), b = (uint32_t)(x >> 16) & 0xffffff;
    memcpy(dst, &enc12[2 * (a >> 12)], 2);
    memcpy(dst + 2, &enc12[2 * (a & 0xfff)], 2);
    memcpy(dst + 4, &enc12[2 * (b >> 12)], 2);
    memcpy(dst + 6, &enc12[2 * (b & 0xfff)], 2);
}

/* Two 12-bit lookups per 3-byte group; six bytes per iteration, loaded as one 8-byte word
 * while at least three groups (nine bytes) remain, so the load never passes the input. */
static char *enc_groups(const uint8_t *in, size_t ngroups, char *dst)
{
    for (; ngroups >= 3; ngroups -= 2, in += 6, dst += 8)
        enc_pair(load_be64(in), dst);
    for (; ngroups >= 2; ngroups -= 2, in += 6, dst += 8) {
        uint32_t a = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];
        uint32_t b = (uint32_t)in[3] << 16 | (uint32_t)in[4] << 8 | in[5];
        memcpy(dst, &enc12[2 * (a >> 12)], 2);
        memcpy(dst + 2, &enc12[2 * (a & 0xfff)], 2);
        memcpy(dst + 4, &enc12[2 * (b >> 12)], 2);
        memcpy(dst + 6, &enc12[2 * (b & 0xfff)], 2);
    }
    if (ngroups == 1) {
        uint32_t a = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];
        memcpy(dst, &enc12[2 * (a >> 12)], 2);
        memcpy(dst + 2, &enc12[2 * (a & 0xfff)], 2);
        dst += 4;
    }
    return dst;
}

/* The final 1 or 2 bytes, padded with '=' (RFC 4648 4, cases 2 and 3). */
static char *enc_tail(const uint8_t *in, size_t n, char *dst)
{
    if (n == 0)
        return dst;
    uint32_t v = (uint32_t)in[0] << 16 | (n == 2 ? (uint32_t)in[1] << 8 : 0);
    dst[0] = alphabet[v >> 18];
    dst[1] = alphabet[(v >> 12) & 63];
    dst[2] = n == 2 ? alphabet[(v >> 6) & 63] : '=';
    dst[3] = '=';
    return dst + 4;
}

size_t pg_b64_encode_raw(const uint8_t *in, size_t n, char *out)
{
    char *end = enc_groups(in, n / 3, out);
    end = enc_tail(in + n / 3 * 3, n % 3, end);
    return (size_t)(end - out);
}

pigeon_err pg_b64_encode(pg_buf *out, const void *in, size_t n)
{
    if (out->err != PIGEON_OK)
        return out->err;
    if (n > ((size_t)-1) / 2)
        return out->err = PIGEON_ERR_TOO_LARGE;
    if (pg_buf_reserve(out, (n + 2) / 3 * 4) != PIGEON_OK)
        return out->err;
    out->len += pg_b64_encode_raw(in, n, out->data + out->len);
    out->data[out->len] = '\0';
    return PIGEON_OK;
}

static unsigned char dec_class(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (unsigned char)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (unsigned char)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (unsigned char)(c - '0' + 52);
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    if (c == '\r' || c == '\n' || c == ' ' || c == '\t')
        return D_SKIP;
    return c == '=' ? D_PAD : D_BAD;
}

pigeon_err pg_b64_decode(pg_buf *out, const char *in, size_t n)
{
    if (out->err != PIGEON_OK)
        return out->err;
    if (pg_buf_reserve(out, n / 4 * 3 + 3) != PIGEON_OK)
        return out->err;
    size_t start = out->len;
    unsigned char *dst = (unsigned char *)out->data + out->len;
    uint32_t acc = 0;
    unsigned k = 0, pads = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char d = dec_class((unsigned char)in[i]);
        if (d == D_SKIP)
            continue;
        if (d == D_BAD || (d < 64 && pads > 0))
            goto fail;
        if (d == D_PAD) {
            pads++;
            continue;
        }
        acc = acc << 6 | d;
        if (++k == 4) {
            *dst++ = (unsigned char)(acc >> 16);
            *dst++ = (unsigned char)(acc >> 8);
            *dst++ = (unsigned char)acc;
            acc = 0;
            k = 0;
        }
    }
    /* RFC 4648 4: a final quantum of 2 or 3 characters takes 2 or 1 '='; we also accept
     * none (padding is optional here), but never a lone character or stray padding. */
    if (k == 1 || (pads != 0 && pads != 4 - k) || (k == 0 && pads != 0))
        goto fail;
    if (k == 2) {
        *dst++ = (unsigned char)(acc >> 4);
    } else if (k == 3) {
        *dst++ = (unsigned char)(acc >> 10);
        *dst++ = (unsigned char)(acc >> 2);
    }
    out->len = (size_t)((char *)dst - out->data);
    out->data[out->len] = '\0';
    return PIGEON_OK;
fail:
    out->len = start;
    out->data[start] = '\0';
    return out->err = PIGEON_ERR_INVALID;
}

/* ---- streaming, wrapped ---- */

void pg_b64_stream_init(pg_b64_stream *st, unsigned line_len)
{
    memset(st, 0, sizeof *st);
    /* Lines hold whole 4-character groups; round a stray length down to one. */
    st->line_len = line_len / 4 * 4;
}

/* Input bytes that make one full output line. */
static size_t line_bytes(const pg_b64_stream *st)
{
    return st->line_len / 4 * 3;
}

/* Writes one 4-character group, ending the line with CRLF when it is full. */
static char *stream_put_group(pg_b64_stream *st, const uint8_t *group, char *dst)
{
    dst = enc_groups(group, 1, dst);
    st->col += 4;
    if (st->line_len != 0 && st->col == st->line_len) {
        memcpy(dst, "\r\n", 2);
        dst += 2;
        st->col = 0;
    }
    return dst;
}

/* One 76-character MIME line (RFC 2045 6.8) and its CRLF from 57 bytes: the common line
 * length, unrolled; the 8-byte loads end at byte 55, the last group is read bytewise. */
static char *enc_mime_line(const uint8_t *in, char *dst)
{
    for (int k = 0; k < 9; k++)
        enc_pair(load_be64(in + 6 * k), dst + 8 * k);
    uint32_t a = (uint32_t)in[54] << 16 | (uint32_t)in[55] << 8 | in[56];
    memcpy(dst + 72, &enc12[2 * (a >> 12)], 2);
    memcpy(dst + 74, &enc12[2 * (a & 0xfff)], 2);
    memcpy(dst + 76, "\r\n", 2);
    return dst + 78;
}

#if defined(__x86_64__) && defined(__GNUC__)
/*
 * SSSE3 (every x86-64 CPU since 2006, checked at run time): twelve input bytes become
 * sixteen characters per step, the method of W. Mula and D. Lemire, "Faster Base64
 * Encoding and Decoding Using AVX2 Instructions" (ACM TOW 2018): a byte shuffle puts each
 * group's bytes in a 32-bit lane, two multiplies shift its four 6-bit fields into bytes,
 * and a 16-entry table of offsets per range ('A', 'a', '0', '+', '/') maps them to ASCII.
 */
#include <cpuid.h>
#include <tmmintrin.h>
#define PG_B64_SSSE3 1

__attribute__((target("ssse3"))) static inline __m128i enc16_ssse3(const uint8_t *in)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)in);
    v = _mm_shuffle_epi8(v, _mm_set_epi8(10, 11, 9, 10, 7, 8, 6, 7, 4, 5, 3, 4, 1, 2, 0, 1));
    __m128i hi =
        _mm_mulhi_epu16(_mm_and_si128(v, _mm_set1_epi32(0x0fc0fc00)), _mm_set1_epi32(0x04000040));
    __m128i lo =
        _mm_mullo_epi16(_mm_and_si128(v, _mm_set1_epi32(0x003f03f0)), _mm_set1_epi32(0x01000010));
    __m128i sextets = _mm_or_si128(hi, lo);
    /* Range index: 0 for 0..25, 1 for 26..51, 2..11 for 52..61, 12 for 62, 13 for 63. */
    __m128i range = _mm_subs_epu8(sextets, _mm_set1_epi8(51));
    range = _mm_sub_epi8(range, _mm_cmpgt_epi8(sextets, _mm_set1_epi8(25)));
    const __m128i offset =
        _mm_setr_epi8('A', 'a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                      '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 0, 0);
    return _mm_add_epi8(sextets, _mm_shuffle_epi8(offset, range));
}

/* nlines 76-character MIME lines from 57 bytes each: four vector steps (the last one loads
 * bytes 36..51) and the last nine bytes as in enc_mime_line. */
__attribute__((target("ssse3"))) static char *enc_mime_lines_ssse3(const uint8_t *in, size_t nlines,
                                                                   char *dst)
{
    for (; nlines > 0; nlines--, in += 57, dst += 78) {
        for (int k = 0; k < 4; k++)
            _mm_storeu_si128((__m128i *)(void *)(dst + 16 * k), enc16_ssse3(in + 12 * k));
        enc_pair(load_be64(in + 48), dst + 64);
        uint32_t a = (uint32_t)in[54] << 16 | (uint32_t)in[55] << 8 | in[56];
        memcpy(dst + 72, &enc12[2 * (a >> 12)], 2);
        memcpy(dst + 74, &enc12[2 * (a & 0xfff)], 2);
        memcpy(dst + 76, "\r\n", 2);
    }
    return dst;
}

/* CPUID leaf 1, ECX bit 9, asked on first use and kept: __builtin_cpu_supports would link
 * libgcc's constructor, which runs its CPUID queries (each a trap to the hypervisor on a
 * VM) at the start of every pigeon process, base64 or not. */
static int have_ssse3(void)
{
    static int known; /* 0 not asked, 1 yes, -1 no */
    int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (k == 0) {
        unsigned a, b, c, d;
        k = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSSE3) ? 1 : -1;
        __atomic_store_n(&known, k, __ATOMIC_RELAXED);
    }
    return k > 0;
}
#endif

/* Encodes whole groups of in (n a multiple of 3) at the stream's column. */
static char *stream_encode(pg_b64_stream *st, const uint8_t *in, size_t n, char *dst)
{
    if (st->line_len == 0)
        return enc_groups(in, n / 3, dst);
    /* Finish the current line group by group, then whole lines straight through. */
    while (st->col != 0 && n >= 3) {
        dst = stream_put_group(st, in, dst);
        in += 3;
        n -= 3;
    }
    size_t lb = line_bytes(st);
    if (lb == 57) {
#ifdef PG_B64_SSSE3
        if (n >= lb && have_ssse3()) {
            dst = enc_mime_lines_ssse3(in, n / lb, dst);
            in += n / lb * lb;
            n %= lb;
        }
#endif
        for (; n >= lb; n -= lb, in += lb)
            dst = enc_mime_line(in, dst);
    }
    for (; n >= lb; n -= lb, in += lb) {
        dst = enc_groups(in, lb / 3, dst);
        memcpy(dst, "\r\n", 2);
        dst += 2;
    }
    for (; n >= 3; n -= 3, in += 3)
        dst = stream_put_group(st, in, dst);
    return dst;
}

pigeon_err pg_b64_stream_update(pg_b64_stream *st, pg_buf *out, const void *in, size_t n)
{
    const uint8_t *p = in;
    if (out->err != PIGEON_OK)
        return out->err;
    if (n == 0)
        return PIGEON_OK;
    if (n > ((size_t)-1) / 4)
        return out->err = PIGEON_ERR_TOO_LARGE;
    /* Upper bound: every group of the carry plus input, and a CRLF per line started. */
    size_t groups = (st->ncarry + n) / 3;
    size_t lines = st->line_len ? groups * 4 / st->line_len + 1 : 0;
    if (pg_buf_reserve(out, groups * 4 + lines * 2) != PIGEON_OK)
        return out->err;
    char *dst = out->data + out->len;
    if (st->ncarry > 0) {
        while (st->ncarry < 3 && n > 0) {
            st->carry[st->ncarry++] = *p++;
            n--;
        }
        if (st->ncarry < 3)
            return PIGEON_OK;
        dst = stream_put_group(st, st->carry, dst);
        st->ncarry = 0;
    }
    size_t whole = n / 3 * 3;
    dst = stream_encode(st, p, whole, dst);
    memcpy(st->carry, p + whole, n - whole);
    st->ncarry = (unsigned)(n - whole);
    out->len = (size_t)(dst - out->data);
    out->data[out->len] = '\0';
    return PIGEON_OK;
}

pigeon_err pg_b64_stream_final(pg_b64_stream *st, pg_buf *out)
{
    if (out->err != PIGEON_OK)
        return out->err;
    if (pg_buf_reserve(out, 6) != PIGEON_OK)
        return out->err;
    char *dst = enc_tail(st->carry, st->ncarry, out->data + out->len);
    st->col += st->ncarry ? 4 : 0;
    if (st->line_len != 0 && st->col > 0) {
        memcpy(dst, "\r\n", 2);
        dst += 2;
    }
    st->col = 0;
    st->ncarry = 0;
    out->len = (size_t)(dst - out->data);
    out->data[out->len] = '\0';
    return PIGEON_OK;
}
