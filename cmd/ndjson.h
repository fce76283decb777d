/*
 * ndjson.h: writing JSON text by hand where a stream must stay bounded:
 * JSON strings and base64 written piece by piece to a FILE, so a line far
 * larger than any buffer (a too_large event in `userpipe transform`) can be
 * quoted in its reject line without holding it in memory.
 */
#ifndef CMD_NDJSON_H
#define CMD_NDJSON_H

#include <stddef.h>
#include <stdio.h>

/* Whether s[0..len) is valid UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
int utf8_valid(const char *s, size_t len);

/* Writes s[0..len), which must be valid UTF-8, as the inside of a JSON
 * string (no quotes): '"', '\\' and control characters escaped. */
void json_write_escaped(FILE *f, const char *s, size_t len);

/* Streaming base64 (RFC 4648, with padding). */
struct b64 {
    unsigned char rem[3];
    size_t nrem;
};

void b64_init(struct b64 *b);
void b64_write(struct b64 *b, FILE *f, const char *s, size_t len);
void b64_finish(struct b64 *b, FILE *f);

#endif
