/*
 * test_dlq.c: tests of sink/dlq.c's sizing of a dead-letter record (issue
 * 20: a dead-letter record always lands): the room a topic's
 * max.message.bytes leaves, and how a record is shaped to it (whole, cut
 * with its size and SHA-256, without the source's headers, without its
 * key).  The producer itself runs in tests/e2e/test_run_poison_dlq.sh
 * against kafka-dev and Apache Kafka.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../sink/sink_int.h"

#include <librdkafka/rdkafka.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the framing dlq.c counts: batch header, record varints, margin */
#define FRAMING (61 + 36 + 64)

static const char *hget(rd_kafka_headers_t *h, const char *name, char *buf,
                        size_t size)
{
    const void *v;
    size_t len;

    if (rd_kafka_header_get_last(h, name, &v, &len) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
        return NULL;
    }
    snprintf(buf, size, "%.*s", (int)len, (const char *)v);
    return buf;
}

static size_t hbytes(rd_kafka_headers_t *h, size_t *n)
{
    const char *name;
    const void *v;
    size_t size, b = 0, i = 0;

    while (rd_kafka_header_get_all(h, i, &name, &v, &size) ==
           RD_KAFKA_RESP_ERR_NO_ERROR) {
        b += strlen(name) + size;
        i++;
    }
    *n = i;
    return b;
}

static rd_kafka_headers_t *userpipe_headers(void)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);

    rd_kafka_header_add(h, "userpipe.error.code", -1, "invalid_json", -1);
    rd_kafka_header_add(h, "userpipe.source.offset", -1, "42", -1);
    return h;
}

static void test_sink_dlq_room__limit_less_framing_key_headers(void **state)
{
    (void)state;
    assert_int_equal(sink_dlq_room(1000, 10, 100, 2),
                     1000 - FRAMING - 10 - 100 - 20);
    assert_true(sink_dlq_room(100, 0, 0, 0) < 0);
}

/* A record that fits goes whole, with no header added. */
static void test_sink_dlq_shape__fits_whole(void **state)
{
    rd_kafka_headers_t *h = userpipe_headers();
    size_t vlen = 0, n;
    int keep = 0;
    char buf[80];
    (void)state;

    assert_int_equal(sink_dlq_shape(h, "not json", 8, 3, 1000000, &vlen, &keep),
                     0);
    assert_int_equal(vlen, 8);
    assert_true(keep);
    assert_null(hget(h, SINK_DLQ_H_TRUNCATED, buf, sizeof(buf)));
    hbytes(h, &n);
    assert_int_equal(n, 2);
    rd_kafka_headers_destroy(h);
}

/* Too large: the value is cut to exactly the room left, with the original
 * size and the SHA-256 of the whole value; cut again at half the limit,
 * the same headers (size, sha of the original) stay. */
static void test_sink_dlq_shape__cut_with_size_and_sha256(void **state)
{
    rd_kafka_headers_t *h = userpipe_headers();
    size_t len = 5000, vlen = 0, n, hb;
    char *value = malloc(len), buf[80], want[65];
    unsigned char md[SHA256_DIGEST_LENGTH];
    int keep = 0;
    (void)state;

    for (size_t i = 0; i < len; i++) {
        value[i] = (char)('a' + i % 26);
    }
    SHA256((const unsigned char *)value, len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        snprintf(want + 2 * i, 3, "%02x", md[i]);
    }
    assert_int_equal(sink_dlq_shape(h, value, len, 4, 2000, &vlen, &keep), 1);
    assert_true(keep);
    assert_string_equal(hget(h, SINK_DLQ_H_TRUNCATED, buf, sizeof(buf)), "1");
    assert_string_equal(hget(h, SINK_DLQ_H_SIZE, buf, sizeof(buf)), "5000");
    assert_string_equal(hget(h, SINK_DLQ_H_SHA256, buf, sizeof(buf)), want);
    hb = hbytes(h, &n);
    assert_int_equal(n, 5);
    /* every byte the limit allows, not one more */
    assert_int_equal(4 + vlen + hb + 10 * n + FRAMING, 2000);

    /* cut harder (a broker refused it): value is the prefix sent */
    assert_int_equal(sink_dlq_shape(h, value, vlen, 4, 1000, &vlen, &keep), 1);
    assert_string_equal(hget(h, SINK_DLQ_H_SIZE, buf, sizeof(buf)), "5000");
    assert_string_equal(hget(h, SINK_DLQ_H_SHA256, buf, sizeof(buf)), want);
    hb = hbytes(h, &n);
    assert_int_equal(n, 5);
    assert_int_equal(4 + vlen + hb + 10 * n + FRAMING, 1000);
    free(value);
    rd_kafka_headers_destroy(h);
}

/* The source's own headers go when they leave no room, userpipe's stay
 * and say how many went; a key that leaves no room goes too. */
static void test_sink_dlq_shape__drops_source_headers_then_key(void **state)
{
    rd_kafka_headers_t *h = userpipe_headers();
    char big[1500], buf[80];
    size_t vlen = 0, n;
    int keep = 1;
    (void)state;

    memset(big, 't', sizeof(big));
    rd_kafka_header_add(h, "trace", -1, big, sizeof(big));
    rd_kafka_header_add(h, "tenant", -1, "t1", -1);
    assert_int_equal(sink_dlq_shape(h, "xxxxxxxxxx", 10, 4, 1500, &vlen, &keep),
                     1);
    assert_true(keep);
    assert_null(hget(h, "trace", buf, sizeof(buf)));
    assert_null(hget(h, "tenant", buf, sizeof(buf)));
    assert_string_equal(hget(h, SINK_DLQ_H_HEADERS_DROPPED, buf, sizeof(buf)),
                        "2");
    assert_string_equal(hget(h, "userpipe.error.code", buf, sizeof(buf)),
                        "invalid_json");
    assert_int_equal(vlen, 10);
    hbytes(h, &n);
    assert_int_equal(n, 6);
    rd_kafka_headers_destroy(h);

    h = userpipe_headers();
    assert_int_equal(
        sink_dlq_shape(h, "xxxxxxxxxx", 10, 5000, 1500, &vlen, &keep), 1);
    assert_false(keep);
    assert_int_equal(vlen, 10);
    rd_kafka_headers_destroy(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sink_dlq_room__limit_less_framing_key_headers),
        cmocka_unit_test(test_sink_dlq_shape__fits_whole),
        cmocka_unit_test(test_sink_dlq_shape__cut_with_size_and_sha256),
        cmocka_unit_test(test_sink_dlq_shape__drops_source_headers_then_key),
    };
    return cmocka_run_group_tests_name("dlq", tests, NULL, NULL);
}
