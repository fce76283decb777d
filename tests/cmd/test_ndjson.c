/*
 * test_ndjson.c: tests of cmd/ndjson.c: UTF-8 validation (RFC 3629),
 * JSON string escaping and streaming base64 (RFC 4648), the pieces the
 * transform CLI builds its reject lines from.  Output goes to memory
 * streams (open_memstream).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../cmd/ndjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* ---- a memory stream -------------------------------------------------- */

struct mem {
    FILE *f;
    char *p;
    size_t len;
};

static void mem_open(struct mem *m)
{
    m->p = NULL;
    m->len = 0;
    m->f = open_memstream(&m->p, &m->len);
    assert_non_null(m->f);
}

/* Closes the stream; m->p holds the NUL-terminated bytes (free it). */
static void mem_close(struct mem *m)
{
    assert_int_equal(fclose(m->f), 0);
    m->f = NULL;
}

/* ---- utf8_valid ------------------------------------------------------
 */

#define VALID(s) assert_true(utf8_valid((s), sizeof(s) - 1))
#define INVALID(s)                                                             \
    do {                                                                       \
        if (utf8_valid((s), sizeof(s) - 1)) {                                  \
            fail_msg("accepted as UTF-8: %s", #s);                             \
        }                                                                      \
    } while (0)

static void test_utf8_valid__ascii_and_empty(void **state)
{
    char all[128];

    (void)state;
    assert_true(utf8_valid("", 0));
    for (int i = 0; i < 128; i++) {
        all[i] = (char)i;
    }
    assert_true(utf8_valid(all, sizeof(all))); /* NUL included */
    VALID("{\"user_id\":\"u1\"}");
}

static void test_utf8_valid__boundaries_of_each_length(void **state)
{
    (void)state;
    VALID("\x7f");             /* U+007F */
    VALID("\xc2\x80");         /* U+0080 */
    VALID("\xc3\xa9");         /* é */
    VALID("\xdf\xbf");         /* U+07FF */
    VALID("\xe0\xa0\x80");     /* U+0800 */
    VALID("\xe2\x82\xac");     /* € */
    VALID("\xed\x9f\xbf");     /* U+D7FF, before the surrogates */
    VALID("\xee\x80\x80");     /* U+E000, after them */
    VALID("\xef\xbf\xbd");     /* U+FFFD */
    VALID("\xef\xbf\xbf");     /* U+FFFF */
    VALID("\xf0\x90\x80\x80"); /* U+10000 */
    VALID("\xf0\x9d\x84\x9e"); /* U+1D11E */
    VALID("\xf0\x9f\x98\x80"); /* 😀 */
    VALID("\xf4\x8f\xbf\xbf"); /* U+10FFFF, the last */
    VALID("a\xc3\xa9z\xe6\x97\xa5\xf0\x9f\x98\x80!");
}

static void test_utf8_valid__overlongs(void **state)
{
    (void)state;
    INVALID("\xc0\x80");             /* NUL in two bytes */
    INVALID("\xc0\xaf");             /* '/' */
    INVALID("\xc1\xbf");             /* U+007F */
    INVALID("\xe0\x80\x80");         /* NUL in three */
    INVALID("\xe0\x9f\xbf");         /* U+07FF in three */
    INVALID("\xf0\x80\x80\x80");     /* NUL in four */
    INVALID("\xf0\x8f\xbf\xbf");     /* U+FFFF in four */
    INVALID("\xf8\x88\x80\x80\x80"); /* five-byte form */
    INVALID("\xfc\x84\x80\x80\x80\x80");
}

static void test_utf8_valid__surrogates(void **state)
{
    (void)state;
    INVALID("\xed\xa0\x80");             /* U+D800 */
    INVALID("\xed\xad\xbf");             /* U+DB7F */
    INVALID("\xed\xb0\x80");             /* U+DC00 */
    INVALID("\xed\xbf\xbf");             /* U+DFFF */
    INVALID("\xed\xa0\xbd\xed\xb8\x80"); /* CESU-8 pair for 😀 */
}

static void test_utf8_valid__above_10ffff(void **state)
{
    (void)state;
    INVALID("\xf4\x90\x80\x80"); /* U+110000 */
    INVALID("\xf5\x80\x80\x80");
    INVALID("\xf7\xbf\xbf\xbf");
    INVALID("\xff");
    INVALID("\xfe");
}

static void test_utf8_valid__truncated_and_stray(void **state)
{
    (void)state;
    INVALID("\xc3");
    INVALID("a\xc3");
    INVALID("\xe2\x82");
    INVALID("\xe2");
    INVALID("\xf0\x9f\x98");
    INVALID("\xf0\x9f");
    INVALID("\xf0");
    INVALID("\x80"); /* continuation alone */
    INVALID("\xbf");
    INVALID("a\x80z");
    INVALID("\xc3\xa9\xa9"); /* one continuation too many */
    INVALID("\xc3z");        /* lead then ASCII */
    INVALID("\xe2\x82z");
    INVALID("\xf0\x9f\x98z");
    INVALID("\xe2\x28\xa1"); /* bad second byte */
    INVALID("\xc3\xc3\xa9"); /* lead then lead */
    INVALID("\xe9"
            "abc"); /* ISO-8859-1 é */
}

/* The length is honoured: bytes after len are not read, and a sequence
 * cut by len is invalid. */
static void test_utf8_valid__respects_len(void **state)
{
    static const char s[] = "ab\xc3\xa9";

    (void)state;
    assert_true(utf8_valid(s, 2));
    assert_false(utf8_valid(s, 3));
    assert_true(utf8_valid(s, 4));
    assert_true(utf8_valid("\xff", 0));
}

/* ---- json_write_escaped ------------------------------------------- */

static char *escaped(const char *s, size_t len)
{
    struct mem m;

    mem_open(&m);
    json_write_escaped(m.f, s, len);
    mem_close(&m);
    return m.p;
}

static void expect_escaped(const char *s, size_t len, const char *want)
{
    char *got = escaped(s, len);
    if (strcmp(got, want) != 0) {
        fail_msg("escaped \"%s\", expected \"%s\"", got, want);
    }
    free(got);
}

#define ESC(s, want) expect_escaped((s), sizeof(s) - 1, (want))

static void test_json_write_escaped__specials(void **state)
{
    (void)state;
    ESC("", "");
    ESC("plain text", "plain text");
    ESC("\"", "\\\"");
    ESC("\\", "\\\\");
    ESC("a\"b\\c", "a\\\"b\\\\c");
    ESC("{\"user_id\":\"a\\\\b\\\"c\"}",
        "{\\\"user_id\\\":\\\"a\\\\\\\\b\\\\\\\"c\\\"}");
    ESC("\n", "\\n");
    ESC("\r", "\\r");
    ESC("\t", "\\t");
    ESC("/", "/");
    ESC("\x7f", "\x7f");
    ESC("\xc3\xa9\xf0\x9f\x98\x80", "\xc3\xa9\xf0\x9f\x98\x80");
    ESC("\"\"", "\\\"\\\"");
    ESC("end\\", "end\\\\");
}

static void test_json_write_escaped__every_control_char(void **state)
{
    (void)state;
    for (int c = 0; c < 0x20; c++) {
        char in[3] = {'a', (char)c, 'b'};
        char want[16];
        switch (c) {
        case '\n':
            snprintf(want, sizeof(want), "a\\nb");
            break;
        case '\r':
            snprintf(want, sizeof(want), "a\\rb");
            break;
        case '\t':
            snprintf(want, sizeof(want), "a\\tb");
            break;
        default:
            snprintf(want, sizeof(want), "a\\u%04xb", c);
        }
        /* \b and \f may be written either way: accept both */
        if (c == '\b' || c == '\f') {
            char *got = escaped(in, 3);
            const char *alt = c == '\b' ? "a\\bb" : "a\\fb";
            if (strcmp(got, want) != 0 && strcmp(got, alt) != 0) {
                fail_msg("char %d escaped as \"%s\"", c, got);
            }
            free(got);
        } else {
            expect_escaped(in, 3, want);
        }
    }
}

/* What is escaped parses back, as a JSON string, to the same bytes. */
static void test_json_write_escaped__round_trips_through_yajl(void **state)
{
    char in[256];
    size_t n = 0;
    struct mem m;
    char err[256];
    yajl_val v;

    (void)state;
    for (int c = 1; c < 128; c++) {
        in[n++] = (char)c;
    }
    memcpy(in + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
    n += 9;
    mem_open(&m);
    fputc('"', m.f);
    json_write_escaped(m.f, in, n);
    fputc('"', m.f);
    mem_close(&m);
    v = yajl_tree_parse(m.p, err, sizeof(err));
    if (v == NULL) {
        fail_msg("escaped text does not parse: %s: %s", err, m.p);
    }
    assert_true(YAJL_IS_STRING(v));
    assert_int_equal(strlen(v->u.string), n);
    assert_memory_equal(v->u.string, in, n);
    yajl_tree_free(v);
    free(m.p);
}

static void test_json_write_escaped__nul_byte(void **state)
{
    static const char in[] = {'a', '\0', 'b'};

    (void)state;
    expect_escaped(in, 3, "a\\u0000b");
}

static void test_json_write_escaped__long_input(void **state)
{
    size_t n = 200000;
    char *in = malloc(n);
    char *got;

    (void)state;
    assert_non_null(in);
    for (size_t i = 0; i < n; i++) {
        in[i] = i % 1000 == 999 ? '"' : 'x';
    }
    got = escaped(in, n);
    assert_int_equal(strlen(got), n + n / 1000);
    assert_memory_equal(got, in, 999);
    assert_memory_equal(got + 999, "\\\"", 2);
    free(got);
    free(in);
}

/* ---- streaming base64 ------------------------------------------------------
 */

/* An independent one-shot encoder to compare against. */
static char *ref_b64(const unsigned char *s, size_t len)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((len + 2) / 3 * 4 + 1);
    size_t o = 0;

    assert_non_null(out);
    for (size_t i = 0; i < len; i += 3) {
        unsigned a = s[i];
        unsigned b = i + 1 < len ? s[i + 1] : 0;
        unsigned c = i + 2 < len ? s[i + 2] : 0;
        out[o++] = tbl[a >> 2];
        out[o++] = tbl[((a & 3) << 4) | (b >> 4)];
        out[o++] = i + 1 < len ? tbl[((b & 15) << 2) | (c >> 6)] : '=';
        out[o++] = i + 2 < len ? tbl[c & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* Encodes s in pieces of the given sizes (cycled; 0-length pieces too). */
static char *b64_pieces(const char *s, size_t len, const size_t *sizes,
                        size_t nsizes)
{
    struct mem m;
    struct b64 b;
    size_t off = 0, k = 0;

    mem_open(&m);
    b64_init(&b);
    while (off < len) {
        size_t n = sizes[k++ % nsizes];
        if (n > len - off) {
            n = len - off;
        }
        b64_write(&b, m.f, s + off, n);
        off += n;
    }
    b64_finish(&b, m.f);
    mem_close(&m);
    return m.p;
}

static void test_b64__rfc4648_vectors(void **state)
{
    static const char *const vec[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    size_t one = SIZE_MAX;

    (void)state;
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        char *got = b64_pieces(vec[i][0], strlen(vec[i][0]), &one, 1);
        assert_string_equal(got, vec[i][1]);
        free(got);
    }
}

static void test_b64__binary_bytes(void **state)
{
    static const unsigned char bin[] = {0x00, 0xff, 0xfe, 0x80, 0x7f,
                                        0x01, 0xfb, 0xef, 0xbe};
    size_t one = SIZE_MAX;
    char *got;

    (void)state;
    got = b64_pieces((const char *)bin, sizeof(bin), &one, 1);
    assert_string_equal(got, "AP/+gH8B++++");
    free(got);
    got = b64_pieces("\xff", 1, &one, 1);
    assert_string_equal(got, "/w==");
    free(got);
    got = b64_pieces("\xff\xff", 2, &one, 1);
    assert_string_equal(got, "//8=");
    free(got);
    got = b64_pieces("{\"user_id\":\"u\xff\"}", 16, &one, 1);
    assert_string_equal(got, "eyJ1c2VyX2lkIjoidf8ifQ==");
    free(got);
}

/* Every split of "foobar" into two or three pieces gives the same text. */
static void test_b64__every_split_of_foobar(void **state)
{
    static const char s[] = "foobar";
    struct mem m;
    struct b64 b;

    (void)state;
    for (size_t i = 0; i <= 6; i++) {
        for (size_t j = i; j <= 6; j++) {
            mem_open(&m);
            b64_init(&b);
            b64_write(&b, m.f, s, i);
            b64_write(&b, m.f, s + i, j - i);
            b64_write(&b, m.f, s + j, 6 - j);
            b64_finish(&b, m.f);
            mem_close(&m);
            if (strcmp(m.p, "Zm9vYmFy") != 0) {
                fail_msg("split %zu/%zu gave %s", i, j, m.p);
            }
            free(m.p);
        }
    }
}

static void test_b64__pieces_match_reference(void **state)
{
    static const size_t patterns[][5] = {
        {1, 1, 1, 1, 1}, {2, 2, 2, 2, 2},      {4, 4, 4, 4, 4},
        {1, 2, 3, 4, 5}, {0, 7, 0, 1, 0},      {65536, 1, 2, 3, 65535},
        {3, 3, 3, 3, 3}, {1000, 1, 999, 2, 5},
    };
    size_t lens[] = {0, 1, 2, 3, 4, 5, 6, 7, 100, 4096, 100001, 300002};
    char *data = malloc(300002);
    uint32_t x = 12345;

    (void)state;
    assert_non_null(data);
    for (size_t i = 0; i < 300002; i++) {
        x = x * 1103515245u + 12345u; /* deterministic bytes of all values */
        data[i] = (char)(x >> 16);
    }
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        char *want = ref_b64((const unsigned char *)data, lens[l]);
        for (size_t p = 0; p < sizeof(patterns) / sizeof(patterns[0]); p++) {
            char *got = b64_pieces(data, lens[l], patterns[p], 5);
            if (strcmp(got, want) != 0) {
                fail_msg("length %zu, pattern %zu: differs from reference",
                         lens[l], p);
            }
            free(got);
        }
        free(want);
    }
    free(data);
}

/* finish leaves the state ready for the next line. */
static void test_b64_finish__resets(void **state)
{
    struct mem m;
    struct b64 b;

    (void)state;
    mem_open(&m);
    b64_init(&b);
    b64_write(&b, m.f, "f", 1);
    b64_finish(&b, m.f);
    fputc('|', m.f);
    b64_write(&b, m.f, "fo", 2);
    b64_finish(&b, m.f);
    fputc('|', m.f);
    b64_finish(&b, m.f); /* nothing pending: writes nothing */
    fputc('|', m.f);
    b64_write(&b, m.f, "foo", 3);
    b64_finish(&b, m.f);
    mem_close(&m);
    assert_string_equal(m.p, "Zg==|Zm8=||Zm9v");
    free(m.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid__ascii_and_empty),
        cmocka_unit_test(test_utf8_valid__boundaries_of_each_length),
        cmocka_unit_test(test_utf8_valid__overlongs),
        cmocka_unit_test(test_utf8_valid__surrogates),
        cmocka_unit_test(test_utf8_valid__above_10ffff),
        cmocka_unit_test(test_utf8_valid__truncated_and_stray),
        cmocka_unit_test(test_utf8_valid__respects_len),
        cmocka_unit_test(test_json_write_escaped__specials),
        cmocka_unit_test(test_json_write_escaped__every_control_char),
        cmocka_unit_test(test_json_write_escaped__round_trips_through_yajl),
        cmocka_unit_test(test_json_write_escaped__nul_byte),
        cmocka_unit_test(test_json_write_escaped__long_input),
        cmocka_unit_test(test_b64__rfc4648_vectors),
        cmocka_unit_test(test_b64__binary_bytes),
        cmocka_unit_test(test_b64__every_split_of_foobar),
        cmocka_unit_test(test_b64__pieces_match_reference),
        cmocka_unit_test(test_b64_finish__resets),
    };

    return cmocka_run_group_tests_name("ndjson", tests, NULL, NULL);
}
