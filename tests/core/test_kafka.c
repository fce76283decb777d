/*
 * test_kafka.c: tests of core/kafka.c, the one rule for how a librdkafka
 * client of userpipe is configured: which kafka.* reach which client, and
 * the properties every client is given (issue 11, item 1: no client may
 * create a topic as a side effect).
 *
 * Beyond the rule, each constructor that makes a librdkafka client (the
 * ingest consumer, the schema topic's producer and reader, the dead-letter
 * producer, the dlq reader and redrive producer) is run against an
 * in-process mock cluster, with rd_kafka_new wrapped (-Wl,--wrap, see
 * tests/tests.mk): the wrapper records what each client's configuration
 * says, even where the user's kafka.* asked for the opposite.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../ingest/ingest.h"
#include "../../schemas/schema.h"
#include "../../cmd/dlq_read.h"
#include "../../core/kafka.h"
#include "../../sink/sink.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>

/* ---- the wrapped constructor ------------------------------------------ */

#define MAX_CLIENTS 8

static struct {
    int n;
    rd_kafka_type_t type[MAX_CLIENTS];
    char auto_create[MAX_CLIENTS][16];
} seen;

rd_kafka_t *__real_rd_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
                                char *errstr, size_t errstr_size);
rd_kafka_t *__wrap_rd_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
                                char *errstr, size_t errstr_size);

rd_kafka_t *__wrap_rd_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
                                char *errstr, size_t errstr_size)
{
    if (seen.n < MAX_CLIENTS) {
        size_t len = sizeof(seen.auto_create[0]);
        seen.type[seen.n] = type;
        if (rd_kafka_conf_get(conf, "allow.auto.create.topics",
                              seen.auto_create[seen.n],
                              &len) != RD_KAFKA_CONF_OK) {
            snprintf(seen.auto_create[seen.n], sizeof(seen.auto_create[0]),
                     "unset");
        }
        seen.n++;
    }
    return __real_rd_kafka_new(type, conf, errstr, errstr_size);
}

/* ---- a mock cluster with the default topics ---------------------------- */

static rd_kafka_t *holder;
static char bootstrap[256];

/* kafka.* as a user might write them: asking for auto-creation. */
static const char *keys[3] = {"bootstrap.servers", "group.id",
                              "allow.auto.create.topics"};
static const char *values[3] = {bootstrap, "test-kafka-props", "true"};

static int setup(void **state)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_mock_cluster_t *mc;
    char e[256];
    (void)state;

    holder = __real_rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (holder == NULL) {
        return -1;
    }
    mc = rd_kafka_mock_cluster_new(holder, 1);
    if (mc == NULL) {
        return -1;
    }
    snprintf(bootstrap, sizeof(bootstrap), "%s",
             rd_kafka_mock_cluster_bootstraps(mc));
    rd_kafka_mock_topic_create(mc, "users", 2, 1);
    rd_kafka_mock_topic_create(mc, "users.dlq", 1, 1);
    rd_kafka_mock_topic_create(mc, "userpipe-schema", 1, 1);
    /* the mock cluster lives as long as this handle; tearing it down at
     * exit only slows the test, the process ends anyway */
    return 0;
}

static void expect_no_auto_create(int clients)
{
    assert_int_equal(seen.n, clients);
    for (int i = 0; i < seen.n; i++) {
        assert_string_equal(seen.auto_create[i], "false");
    }
}

/* ---- tests ------------------------------------------------------------- */

/* The rule of core/kafka.h, property by property. */
static void test_core_kafka_reaches__one_rule_per_client(void **state)
{
    static const struct {
        const char *name;
        int consumer, producer, tool, schema;
    } rule[] = {
        {"bootstrap.servers", 1, 1, 1, 1},
        {"security.protocol", 1, 1, 1, 1},
        {"sasl.mechanisms", 1, 1, 1, 1},
        {"socket.timeout.ms", 1, 1, 1, 1},
        {"group.id", 1, 0, 0, 0},
        {"enable.auto.commit", 1, 0, 0, 0},
        {"auto.offset.reset", 1, 0, 0, 0},
        {"session.timeout.ms", 1, 0, 1, 0},
        {"fetch.queue.backoff.ms", 1, 0, 1, 0},
        {"linger.ms", 1, 1, 1, 0},
        {"compression.codec", 1, 1, 1, 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(rule) / sizeof(rule[0]); i++) {
        const char *n = rule[i].name;
        assert_int_equal(core_kafka_reaches(CORE_KAFKA_CONSUMER, n),
                         rule[i].consumer);
        assert_int_equal(core_kafka_reaches(CORE_KAFKA_PRODUCER, n),
                         rule[i].producer);
        assert_int_equal(core_kafka_reaches(CORE_KAFKA_TOOL_CONSUMER, n),
                         rule[i].tool);
        assert_int_equal(core_kafka_reaches(CORE_KAFKA_SCHEMA, n),
                         rule[i].schema);
    }
}

static void expect_conf(const rd_kafka_conf_t *conf, const char *name,
                        const char *want)
{
    char v[64];
    size_t len = sizeof(v);
    assert_int_equal(rd_kafka_conf_get(conf, name, v, &len), RD_KAFKA_CONF_OK);
    assert_string_equal(v, want);
}

/* The user's properties land, and allow.auto.create.topics=false wins
 * over the user's true on every client. */
static void test_core_kafka_apply__user_then_forced(void **state)
{
    static const char *const k[] = {"socket.timeout.ms", "session.timeout.ms",
                                    "allow.auto.create.topics"};
    static const char *const v[] = {"12345", "7000", "true"};
    struct core_kafka_props user = {k, v, 3};
    char e[256];
    (void)state;

    for (int c = CORE_KAFKA_CONSUMER; c <= CORE_KAFKA_SCHEMA; c++) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        assert_int_equal(core_kafka_apply(conf, (enum core_kafka_client)c,
                                          &user, e, sizeof(e)),
                         CORE_OK);
        expect_conf(conf, "socket.timeout.ms", "12345");
        expect_conf(conf, "allow.auto.create.topics", "false");
        expect_conf(conf, "session.timeout.ms",
                    c == CORE_KAFKA_CONSUMER || c == CORE_KAFKA_TOOL_CONSUMER
                        ? "7000"
                        : "45000");
        rd_kafka_conf_destroy(conf);
    }
}

/* A property librdkafka does not know is named with its kafka. prefix. */
static void test_core_kafka_apply__unknown_key_named(void **state)
{
    static const char *const k[] = {"no.such.property"};
    static const char *const v[] = {"1"};
    struct core_kafka_props user = {k, v, 1};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[256];
    (void)state;

    assert_int_equal(
        core_kafka_apply(conf, CORE_KAFKA_CONSUMER, &user, e, sizeof(e)),
        CORE_ERR_USAGE);
    assert_non_null(strstr(e, "configuration key 'kafka.no.such.property'"));
    rd_kafka_conf_destroy(conf);
}

/* Issue 20, item 8: every setting userpipe owns is refused with a
 * sentence naming its key; the values it would set itself, and the
 * tuning it allows, pass. */
static void test_core_kafka_refuse__owned_settings_named(void **state)
{
    static const char *const bad[][2] = {
        {"enable.auto.commit", "false"},
        {"enable.auto.commit", "0"},
        {"auto.commit.interval.ms", "0"},
        {"enable.auto.offset.store", "false"},
        {"enable.auto.offset.store", "true"},
        {"enable.partition.eof", "true"},
        {"group.protocol", "consumer"},
        {"partition.assignment.strategy", "range,Cooperative-Sticky"},
        {"allow.auto.create.topics", "true"},
        {"enable.idempotence", "false"},
        {"acks", "1"},
        {"request.required.acks", "0"},
        {"message.timeout.ms", "30000"},
        {"transactional.id", "tx"},
    };
    static const char *const good[][2] = {
        {"enable.auto.commit", "TRUE"},
        {"auto.commit.interval.ms", "200"},
        {"group.protocol", "classic"},
        {"partition.assignment.strategy", "range,roundrobin"},
        {"allow.auto.create.topics", "false"},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"acks", "-1"},
        {"message.timeout.ms", "0"},
        {"isolation.level", "read_uncommitted"},
        {"bootstrap.servers", "a:9092"},
    };
    char e[512], want[128];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *k[] = {"bootstrap.servers", bad[i][0]};
        const char *v[] = {"a:9092", bad[i][1]};
        struct core_kafka_props user = {k, v, 2};
        e[0] = '\0';
        assert_int_equal(core_kafka_refuse(&user, e, sizeof(e)),
                         CORE_ERR_USAGE);
        snprintf(want, sizeof(want), "configuration key 'kafka.%s'", bad[i][0]);
        assert_non_null(strstr(e, want));
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct core_kafka_props user = {&good[i][0], &good[i][1], 1};
        assert_int_equal(core_kafka_refuse(&user, e, sizeof(e)), CORE_OK);
    }
}

static void test_core_kafka_replication__min_of_three_and_brokers(void **state)
{
    (void)state;
    assert_int_equal(core_kafka_replication(0), 1);
    assert_int_equal(core_kafka_replication(1), 1);
    assert_int_equal(core_kafka_replication(2), 2);
    assert_int_equal(core_kafka_replication(3), 3);
    assert_int_equal(core_kafka_replication(7), 3);
}

static void test_ingest_new__consumer_never_auto_creates(void **state)
{
    struct ingest_config cfg = {keys, values, 3, "users", 0, 0, 1000};
    struct ingest *ing = NULL;
    char e[512];
    (void)state;

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(ingest_new(&cfg, NULL, &ing, e, sizeof(e)), CORE_OK);
    ingest_destroy(ing);
    expect_no_auto_create(1);
    assert_int_equal(seen.type[0], RD_KAFKA_CONSUMER);
}

static void test_sink_dlq_new__producer_never_auto_creates(void **state)
{
    struct sink_dlq_config cfg = {keys, values, 3, "users.dlq", NULL};
    struct sink_dlq_callbacks cb = {NULL, NULL};
    struct sink_dlq *dlq = NULL;
    char e[512];
    (void)state;

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(sink_dlq_new(&cfg, &cb, &dlq, e, sizeof(e)), CORE_OK);
    sink_dlq_destroy(dlq, 1000);
    /* the first client checks the topic and reads its limit, the second
     * is the producer sized to it (sink/dlq.c) */
    expect_no_auto_create(2);
    assert_int_equal(seen.type[0], RD_KAFKA_PRODUCER);
    assert_int_equal(seen.type[1], RD_KAFKA_PRODUCER);
}

static void test_schema_claims_new__both_clients_never_auto_create(void **state)
{
    struct schema_claims_config cfg = {keys,   values, 3, "userpipe-schema",
                                       "test", "name", 1000};
    struct schema *sch = schema_new();
    struct schema_claims *sc = NULL;
    char e[512];
    (void)state;

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(schema_claims_new(&cfg, sch, &sc, e, sizeof(e)), CORE_OK);
    schema_claims_destroy(sc);
    schema_destroy(sch);
    expect_no_auto_create(2);
}

static int skip_all(void *opaque, const struct sink_dlq_record *rec,
                    int64_t dlq_timestamp_ms)
{
    (void)opaque;
    (void)rec;
    (void)dlq_timestamp_ms;
    return 0;
}

static void test_dlq_read__reader_and_redriver_never_auto_create(void **state)
{
    const char *topics[1] = {"users.dlq"};
    struct dlq_read_config cfg = {keys, values, 3, topics, 1, "test-redrive"};
    uint64_t redriven = 0;
    char e[512];
    (void)state;

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(dlq_read(&cfg, skip_all, NULL, &redriven, e, sizeof(e)),
                     CORE_OK);
    assert_int_equal(redriven, 0);
    expect_no_auto_create(2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_kafka_reaches__one_rule_per_client),
        cmocka_unit_test(test_core_kafka_apply__user_then_forced),
        cmocka_unit_test(test_core_kafka_apply__unknown_key_named),
        cmocka_unit_test(test_core_kafka_refuse__owned_settings_named),
        cmocka_unit_test(test_core_kafka_replication__min_of_three_and_brokers),
        cmocka_unit_test(test_ingest_new__consumer_never_auto_creates),
        cmocka_unit_test(test_sink_dlq_new__producer_never_auto_creates),
        cmocka_unit_test(
            test_schema_claims_new__both_clients_never_auto_create),
        cmocka_unit_test(test_dlq_read__reader_and_redriver_never_auto_create),
    };
    return cmocka_run_group_tests_name("kafka", tests, setup, NULL);
}
