/*
 * test_gzip.c: tests of sink/gzip.c: what libdeflate writes is a gzip
 * member zlib inflates back to the same bytes, at every level.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../sink/sink_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Inflates a gzip member with zlib; returns the length, or -1. */
static long gunzip(const char *in, size_t len, char *out, size_t cap)
{
    z_stream zs;
    int zrc;

    memset(&zs, 0, sizeof(zs));
    /* 16 + MAX_WBITS: a gzip wrapper, not zlib's */
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        return -1;
    }
    zs.next_in = (unsigned char *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (unsigned char *)out;
    zs.avail_out = (uInt)cap;
    zrc = inflate(&zs, Z_FINISH);
    inflateEnd(&zs);
    if (zrc != Z_STREAM_END || zs.avail_in != 0) {
        return -1;
    }
    return (long)zs.total_out;
}

/* A batch body like the sink's: n user objects. */
static char *make_body(size_t n, size_t *len)
{
    size_t cap = n * 200 + 2;
    char *p = malloc(cap);
    size_t at = 0;

    assert_non_null(p);
    p[at++] = '[';
    for (size_t i = 0; i < n; i++) {
        at += (size_t)snprintf(p + at, cap - at,
                               "%s{\"user_id\":\"user-%zu\",\"metadata\":{"
                               "\"plan\":\"pro\",\"seats\":%zu,\"n\":%zu}}",
                               i ? "," : "", i, i % 17, i * 7919 % 1000);
    }
    p[at++] = ']';
    *len = at;
    return p;
}

static void round_trip(int level, const char *in, size_t len)
{
    struct sink_gzip gz;
    size_t bound;
    char *out, *back;
    size_t n;
    long m;

    assert_int_equal(sink_gzip_init(&gz, level), CORE_OK);
    bound = sink_gzip_bound(&gz, len);
    out = malloc(bound);
    back = malloc(len + 1);
    assert_non_null(out);
    assert_non_null(back);
    n = sink_gzip_compress(&gz, in, len, out, bound);
    assert_true(n > 0 && n <= bound);
    /* RFC 1952 magic, deflate */
    assert_int_equal((unsigned char)out[0], 0x1f);
    assert_int_equal((unsigned char)out[1], 0x8b);
    assert_int_equal((unsigned char)out[2], 8);
    m = gunzip(out, n, back, len + 1);
    assert_int_equal(m, (long)len);
    if (len > 0) {
        assert_memory_equal(back, in, len);
    }
    free(back);
    free(out);
    sink_gzip_release(&gz);
}

static void test_sink_gzip_compress__round_trips_at_every_level(void **state)
{
    size_t len;
    char *body = make_body(200, &len);

    (void)state;
    for (int level = 1; level <= 12; level++) {
        round_trip(level, body, len);
    }
    free(body);
}

static void test_sink_gzip_compress__compresses_json(void **state)
{
    struct sink_gzip gz;
    size_t len, n;
    char *body = make_body(200, &len);
    char *out;

    (void)state;
    assert_int_equal(sink_gzip_init(&gz, 6), CORE_OK);
    out = malloc(sink_gzip_bound(&gz, len));
    assert_non_null(out);
    n = sink_gzip_compress(&gz, body, len, out, sink_gzip_bound(&gz, len));
    assert_true(n > 0 && n < len / 3);
    free(out);
    free(body);
    sink_gzip_release(&gz);
}

static void test_sink_gzip_compress__incompressible_fits_the_bound(void **state)
{
    size_t len = 100000;
    char *in = malloc(len);
    uint64_t s = 99;

    (void)state;
    assert_non_null(in);
    for (size_t i = 0; i < len; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        in[i] = (char)(s >> 56);
    }
    round_trip(1, in, len);
    round_trip(12, in, len);
    free(in);
}

static void test_sink_gzip_compress__empty_and_one_byte(void **state)
{
    (void)state;
    round_trip(6, "", 0);
    round_trip(6, "[", 1);
}

static void test_sink_gzip_compress__too_small_output_returns_0(void **state)
{
    struct sink_gzip gz;
    size_t len;
    char *body = make_body(50, &len);
    char out[16];

    (void)state;
    assert_int_equal(sink_gzip_init(&gz, 6), CORE_OK);
    assert_int_equal(sink_gzip_compress(&gz, body, len, out, sizeof(out)), 0);
    sink_gzip_release(&gz);
    free(body);
}

static void test_sink_gzip_init__level_out_of_range(void **state)
{
    struct sink_gzip gz;

    (void)state;
    assert_int_equal(sink_gzip_init(&gz, 0), CORE_ERR_USAGE);
    sink_gzip_release(&gz);
    assert_int_equal(sink_gzip_init(&gz, 13), CORE_ERR_USAGE);
    sink_gzip_release(&gz);
    assert_int_equal(sink_gzip_init(&gz, -1), CORE_ERR_USAGE);
    sink_gzip_release(&gz);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sink_gzip_compress__round_trips_at_every_level),
        cmocka_unit_test(test_sink_gzip_compress__compresses_json),
        cmocka_unit_test(
            test_sink_gzip_compress__incompressible_fits_the_bound),
        cmocka_unit_test(test_sink_gzip_compress__empty_and_one_byte),
        cmocka_unit_test(test_sink_gzip_compress__too_small_output_returns_0),
        cmocka_unit_test(test_sink_gzip_init__level_out_of_range),
    };
    return cmocka_run_group_tests_name("sink_gzip", tests, NULL, NULL);
}
