/*
 * ndjson.c: JSON string escaping, UTF-8 validation and base64 for output
 * that is written piece by piece (see ndjson.h).  Events themselves are
 * never generated here: transform/ owns that, through yajl.
 */
#include "ndjson.h"

#include <stdint.h>

int utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        uint32_t cp;
        size_t n;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len) {
            return 0;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff))) {
            return 0;
        }
        i += n + 1;
    }
    return 1;
}

void json_write_escaped(FILE *f, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the bytes not yet written */

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        fwrite(s + run, 1, i - run, f);
        run = i + 1;
        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            fputs("\\u00", f);
            fputc(hex[c >> 4], f);
            fputc(hex[c & 15], f);
        }
    }
    fwrite(s + run, 1, len - run, f);
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void b64_init(struct b64 *b)
{
    b->nrem = 0;
}

static void b64_block(FILE *f, const unsigned char *in, size_t n)
{
    char out[4];
    uint32_t v = (uint32_t)in[0] << 16;

    if (n > 1) {
        v |= (uint32_t)in[1] << 8;
    }
    if (n > 2) {
        v |= in[2];
    }
    out[0] = b64chars[(v >> 18) & 63];
    out[1] = b64chars[(v >> 12) & 63];
    out[2] = n > 1 ? b64chars[(v >> 6) & 63] : '=';
    out[3] = n > 2 ? b64chars[v & 63] : '=';
    fwrite(out, 1, 4, f);
}

void b64_write(struct b64 *b, FILE *f, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;

    while (len > 0) {
        b->rem[b->nrem++] = *p++;
        len--;
        if (b->nrem == 3) {
            b64_block(f, b->rem, 3);
            b->nrem = 0;
        }
    }
}

void b64_finish(struct b64 *b, FILE *f)
{
    if (b->nrem > 0) {
        b64_block(f, b->rem, b->nrem);
    }
    b->nrem = 0;
}
