/*
 * test_claims.c: tests of schemas/claims.c, the shared schema through a
 * Kafka topic, against librdkafka's in-process mock cluster (one broker;
 * the topic of each test is its own).  Issue 20's bounds: a claim is
 * applied only when its record key is its JSON key byte for byte (a NUL
 * key's claim was applied to its prefix), schema.max_keys bounds the
 * claims made and the claims applied, a key can be claimed again, and the
 * start-up read gives up only after a stall.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../schemas/schema.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static rd_kafka_t *holder;
static rd_kafka_mock_cluster_t *mc;
static char bootstrap[256];
static const char *keys[1] = {"bootstrap.servers"};
static const char *values[1] = {bootstrap};

static int setup(void **state)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[256];
    (void)state;

    holder = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (holder == NULL) {
        return -1;
    }
    mc = rd_kafka_mock_cluster_new(holder, 1);
    if (mc == NULL) {
        return -1;
    }
    snprintf(bootstrap, sizeof(bootstrap), "%s",
             rd_kafka_mock_cluster_bootstraps(mc));
    return 0;
}

static struct schema_claims *open_claims(const char *topic, struct schema *sch,
                                         size_t max_keys, const char *who)
{
    struct schema_claims_config cfg = {keys, values, 1,       topic,
                                       who,  "name", max_keys};
    struct schema_claims *sc = NULL;
    char e[512] = "";

    rd_kafka_mock_topic_create(mc, topic, 1, 1);
    if (schema_claims_new(&cfg, sch, &sc, e, sizeof(e)) != CORE_OK) {
        fail_msg("schema_claims_new: %s", e);
    }
    if (schema_claims_sync(sc, 10000, e, sizeof(e)) != CORE_OK) {
        fail_msg("schema_claims_sync: %s", e);
    }
    return sc;
}

/* Polls until this instance's claims are read back (at most 10 s). */
static void settle(struct schema_claims *sc)
{
    for (int i = 0; i < 2000 && schema_claims_in_flight(sc) > 0; i++) {
        assert_int_equal(schema_claims_poll(sc), CORE_OK);
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    assert_int_equal(schema_claims_in_flight(sc), 0);
}

/* Produces one raw record to topic: key[0..klen), value. */
static void produce_raw(const char *topic, const char *key, size_t klen,
                        const char *value)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[256];
    rd_kafka_t *p;

    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, e, sizeof(e));
    p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    assert_non_null(p);
    assert_int_equal(
        rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                          RD_KAFKA_V_KEY(key, klen),
                          RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);
}

static enum schema_type type_of(const struct schema *sch, const char *key,
                                size_t len)
{
    return schema_get(sch, key, len, core_hash64(key, len));
}

/* Issue 20: the record {"key":"a\u0000b"} keyed by the bytes a NUL b was
 * applied as "a" (strlen of the parsed string); it is ignored now, and a
 * claim after it is applied as usual. */
static void test_schema_claims_poll__nul_key_claim_ignored(void **state)
{
    struct schema *sch = schema_new();
    struct schema_claims *sc = open_claims("claims-nul", sch, 100, "t1");
    struct schema_claims_stats st;
    (void)state;

    produce_raw("claims-nul", "a\0b", 3,
                "{\"key\":\"a\\u0000b\",\"type\":\"number\",\"scope\":"
                "\"name\",\"by\":\"old\",\"at\":\"\"}");
    produce_raw("claims-nul", "c", 1,
                "{\"key\":\"c\",\"type\":\"string\",\"scope\":\"name\","
                "\"by\":\"old\",\"at\":\"\"}");
    for (int i = 0; i < 2000 && schema_count(sch) == 0; i++) {
        assert_int_equal(schema_claims_poll(sc), CORE_OK);
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    assert_int_equal(schema_count(sch), 1);
    assert_int_equal(type_of(sch, "c", 1), SCHEMA_TYPE_STRING);
    assert_int_equal(type_of(sch, "a", 1), SCHEMA_TYPE_NONE);
    schema_claims_get_stats(sc, &st);
    assert_int_equal(st.read, 2);
    schema_claims_destroy(sc);
    schema_destroy(sch);
}

/* max_keys: claims past it are not made while those on their way would
 * fill the schema, and claims past it in the topic (another instance with
 * a larger cap) are ignored when read. */
static void test_schema_claims__max_keys_bounds_made_and_applied(void **state)
{
    struct schema *sch = schema_new(), *big_sch = schema_new();
    struct schema_claims *sc = open_claims("claims-cap", sch, 3, "small");
    struct schema_claims *big;
    struct schema_claims_stats st;
    char k[16];
    (void)state;

    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        schema_claims_claim(sc, k, strlen(k), SCHEMA_TYPE_NUMBER);
    }
    schema_claims_get_stats(sc, &st);
    assert_int_equal(st.made, 3);
    settle(sc);
    assert_int_equal(schema_count(sch), 3);

    /* another instance, allowed 10 keys, claims two more */
    big = open_claims("claims-cap", big_sch, 10, "big");
    assert_int_equal(schema_count(big_sch), 3);
    schema_claims_claim(big, "x1", 2, SCHEMA_TYPE_STRING);
    schema_claims_claim(big, "x2", 2, SCHEMA_TYPE_STRING);
    settle(big);
    assert_int_equal(schema_count(big_sch), 5);
    for (int i = 0; i < 400; i++) {
        assert_int_equal(schema_claims_poll(sc), CORE_OK);
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    assert_int_equal(schema_count(sch), 3);
    assert_int_equal(type_of(sch, "x1", 2), SCHEMA_TYPE_NONE);
    schema_claims_get_stats(sc, &st);
    assert_int_equal(st.read, 5);
    assert_int_equal(st.ignored, 2);
    schema_claims_destroy(big);
    schema_claims_destroy(sc);
    schema_destroy(big_sch);
    schema_destroy(sch);
}

/* claim_again produces a claim of this instance a second time (a claim
 * lost on its way); schema_claims_claim does not; neither claims a key
 * the schema has. */
static void test_schema_claims_claim_again__produces_again(void **state)
{
    struct schema *sch = schema_new();
    struct schema_claims *sc = open_claims("claims-again", sch, 100, "t3");
    struct schema_claims_stats st;
    (void)state;

    schema_claims_claim(sc, "k", 1, SCHEMA_TYPE_BOOLEAN);
    schema_claims_claim(sc, "k", 1, SCHEMA_TYPE_BOOLEAN);
    schema_claims_claim_again(sc, "k", 1, SCHEMA_TYPE_BOOLEAN);
    schema_claims_get_stats(sc, &st);
    assert_int_equal(st.made, 2);
    settle(sc);
    assert_int_equal(type_of(sch, "k", 1), SCHEMA_TYPE_BOOLEAN);
    schema_claims_claim_again(sc, "k", 1, SCHEMA_TYPE_BOOLEAN);
    schema_claims_get_stats(sc, &st);
    assert_int_equal(st.made, 2);
    assert_int_equal(st.read, 2);
    assert_int_equal(st.ignored, 1);
    schema_claims_destroy(sc);
    schema_destroy(sch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_claims_poll__nul_key_claim_ignored),
        cmocka_unit_test(test_schema_claims__max_keys_bounds_made_and_applied),
        cmocka_unit_test(test_schema_claims_claim_again__produces_again),
    };
    return cmocka_run_group_tests_name("claims", tests, setup, NULL);
}
