/*
 * kafka_dev_json.c: a small JSON scanner that finds the first top-level
 * "user_id" string of an NDJSON line and decodes its escapes, for `keyed`
 * and `plan` (kafka_dev_load.c).
 *
 * Why not yajl or the transform: kafka-dev links librdkafka only, and the
 * key of a load must not depend on the code under test.  It validates what
 * it walks through up to user_id, and no further.
 *
 * Invariant: a key it returns is non-empty, NUL-free and holds no tab or
 * newline, so it cannot break kcat's "key<TAB>value" framing; anything
 * else gives no key (-1) and the line goes keyless.
 */
#include "kafka_dev.h"

#include <stddef.h>
#include <string.h>

struct kd_scan {
    const char *p;
    const char *end;
};

static void kd_scan_ws(struct kd_scan *s)
{
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || *s->p == '\n')) {
        s->p++;
    }
}

static int kd_hex4(const char *p, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (unsigned)(c - 'A' + 10);
        } else {
            return -1;
        }
    }
    *out = v;
    return 0;
}

/* Appends code point cp as UTF-8; -1 when out has no room. */
static int kd_put_utf8(char *out, size_t out_size, size_t *len, unsigned cp)
{
    unsigned char b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (out == NULL) {
        return 0;
    }
    if (*len + n >= out_size) {
        return -1;
    }
    memcpy(out + *len, b, n);
    *len += n;
    return 0;
}

/*
 * Scans a JSON string at s->p (on its opening quote) and, when out is not
 * NULL, decodes it into out (NUL-terminated).  Returns -1 when the string
 * is malformed or does not fit.
 */
static int kd_scan_string(struct kd_scan *s, char *out, size_t out_size,
                          size_t *out_len)
{
    size_t len = 0;

    if (s->p >= s->end || *s->p != '"') {
        return -1;
    }
    s->p++;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p++;
        unsigned cp;
        if (c == '"') {
            if (out != NULL) {
                out[len] = '\0';
                *out_len = len;
            }
            return 0;
        }
        if (c < 0x20) {
            return -1;
        }
        if (c != '\\') {
            if (out != NULL) {
                if (len + 1 >= out_size) {
                    return -1;
                }
                out[len++] = (char)c;
            }
            continue;
        }
        if (s->p >= s->end) {
            return -1;
        }
        c = (unsigned char)*s->p++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            cp = c;
            break;
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u':
            if (s->end - s->p < 4 || kd_hex4(s->p, &cp) != 0) {
                return -1;
            }
            s->p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
                    kd_hex4(s->p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    return -1;
                }
                s->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -1;
            }
            break;
        default:
            return -1;
        }
        if (kd_put_utf8(out, out_size, &len, cp) != 0) {
            return -1;
        }
    }
    return -1;
}

/* Skips one JSON value of any kind; -1 when malformed. */
static int kd_scan_value(struct kd_scan *s, int depth)
{
    kd_scan_ws(s);
    if (s->p >= s->end || depth > KD_JSON_DEPTH_MAX) {
        return -1;
    }
    if (*s->p == '"') {
        return kd_scan_string(s, NULL, 0, NULL);
    }
    if (*s->p == '{' || *s->p == '[') {
        char close = *s->p == '{' ? '}' : ']';
        s->p++;
        kd_scan_ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }
        for (;;) {
            if (close == '}') {
                kd_scan_ws(s);
                if (kd_scan_string(s, NULL, 0, NULL) != 0) {
                    return -1;
                }
                kd_scan_ws(s);
                if (s->p >= s->end || *s->p != ':') {
                    return -1;
                }
                s->p++;
            }
            if (kd_scan_value(s, depth + 1) != 0) {
                return -1;
            }
            kd_scan_ws(s);
            if (s->p >= s->end) {
                return -1;
            }
            if (*s->p == close) {
                s->p++;
                return 0;
            }
            if (*s->p != ',') {
                return -1;
            }
            s->p++;
        }
    }
    /* A number, true, false or null: its characters up to a delimiter. */
    {
        const char *start = s->p;
        while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']' &&
               *s->p != ' ' && *s->p != '\t' && *s->p != '\r' &&
               *s->p != '\n') {
            s->p++;
        }
        return s->p > start ? 0 : -1;
    }
}

/*
 * The first top-level "user_id" string of an NDJSON line, decoded, into
 * key (NUL-terminated).  Returns its length, or -1 when the line has none
 * usable as a kcat key: not an object up to that member, user_id not a
 * string, too long, or holding a tab, newline or NUL that would break
 * kcat's "key<TAB>value" line framing.
 */
long kd_user_id(const char *line, size_t len, char *key, size_t key_size)
{
    struct kd_scan s = {line, line + len};
    char name[16];
    size_t name_len;
    size_t key_len;

    kd_scan_ws(&s);
    if (s.p >= s.end || *s.p != '{') {
        return -1;
    }
    s.p++;
    for (;;) {
        kd_scan_ws(&s);
        if (s.p >= s.end || *s.p != '"') {
            return -1;
        }
        /* Names longer than "user_id" do not fit name: skip them. */
        {
            struct kd_scan probe = s;
            if (kd_scan_string(&probe, name, sizeof(name), &name_len) != 0) {
                name_len = 0;
                name[0] = '\0';
                if (kd_scan_string(&s, NULL, 0, NULL) != 0) {
                    return -1;
                }
            } else {
                s = probe;
            }
        }
        kd_scan_ws(&s);
        if (s.p >= s.end || *s.p != ':') {
            return -1;
        }
        s.p++;
        kd_scan_ws(&s);
        if (name_len == 7 && memcmp(name, "user_id", 7) == 0) {
            if (s.p >= s.end || *s.p != '"' ||
                kd_scan_string(&s, key, key_size, &key_len) != 0) {
                return -1;
            }
            if (key_len == 0 || memchr(key, '\t', key_len) != NULL ||
                memchr(key, '\n', key_len) != NULL || strlen(key) != key_len) {
                return -1;
            }
            return (long)key_len;
        }
        if (kd_scan_value(&s, 1) != 0) {
            return -1;
        }
        kd_scan_ws(&s);
        if (s.p >= s.end || *s.p != ',') {
            return -1;
        }
        s.p++;
    }
}
