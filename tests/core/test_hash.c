/*
 * test_hash.c: tests of core/hash.c, core_hash64, the one hash of user ids
 * and metadata keys.  What its users rely on: the same bytes give the same
 * hash wherever they sit in memory (the tail is read with overlapping
 * loads), never 0 (0 means "no user" in the sink's maps), length is part
 * of the input, and strings one byte apart land apart in both the low bits
 * (table slots) and the high bits (the sink's lane).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/core.h"

#include <stdlib.h>
#include <string.h>

static void test_core_hash64__never_zero_and_length_matters(void **state)
{
    (void)state;
    assert_true(core_hash64("", 0) != 0);
    assert_true(core_hash64("a", 1) != core_hash64("a\0", 2));
    assert_true(core_hash64("abcdefgh1", 9) != core_hash64("abcdefgh2", 9));
    assert_true(core_hash64("abcdefgh", 8) != core_hash64("abcdefg", 7));
}

/* Every length 1..64 (the tail paths of 1-3, 4-7 and whole words) at
 * every offset of a buffer: equal bytes, equal hash. */
static void test_core_hash64__same_bytes_anywhere(void **state)
{
    char buf[80], moved[96];
    (void)state;

    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (char)('a' + (i * 7) % 26);
    }
    for (size_t len = 1; len <= 64; len++) {
        uint64_t want = core_hash64(buf, len);
        for (size_t off = 1; off < 16; off++) {
            memcpy(moved + off, buf, len);
            assert_int_equal(core_hash64(moved + off, len), want);
        }
    }
}

/* One byte changed at each position of each length: no two hashes of the
 * set equal, and the top byte (lane) and low 16 bits (slot) vary. */
static void test_core_hash64__one_byte_apart_apart(void **state)
{
    enum { MAXLEN = 40 };
    uint64_t *h = malloc(sizeof(*h) * MAXLEN * (MAXLEN + 1));
    size_t n = 0;
    unsigned char top_seen[256] = {0};
    size_t tops = 0;
    char key[MAXLEN];
    (void)state;

    for (size_t len = 1; len <= MAXLEN; len++) {
        memset(key, 'u', len);
        h[n++] = core_hash64(key, len);
        for (size_t pos = 0; pos < len; pos++) {
            memset(key, 'u', len);
            key[pos] = 'v';
            h[n++] = core_hash64(key, len);
        }
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            assert_true(h[i] != h[j]);
            assert_true((h[i] & 0xffff) != (h[j] & 0xffff) ||
                        (h[i] >> 56) != (h[j] >> 56));
        }
        if (!top_seen[h[i] >> 56]) {
            top_seen[h[i] >> 56] = 1;
            tops++;
        }
    }
    /* 860 hashes over 256 top bytes: a uniform hash fills nearly all */
    assert_true(tops > 230);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_hash64__never_zero_and_length_matters),
        cmocka_unit_test(test_core_hash64__same_bytes_anywhere),
        cmocka_unit_test(test_core_hash64__one_byte_apart_apart),
    };
    return cmocka_run_group_tests_name("hash", tests, NULL, NULL);
}
