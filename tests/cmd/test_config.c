/*
 * test_config.c: tests of cmd/config.c, the one validator of userpipe's
 * configuration (issue 14): every numeric key accepts its range's ends and
 * refuses one past them with a sentence naming the key, the defaults
 * config_init applies are the stages' own (SINK_*_DEF, TRANSFORM_*_DEF),
 * and the checks that span keys hold after the last override.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../cmd/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *key;
    unsigned long long min, max;
} ranges[] = {
    {"batch.max_events", SINK_MAX_EVENTS_MIN, SINK_MAX_EVENTS_MAX},
    {"batch.max_bytes", SINK_MAX_BYTES_MIN, SINK_MAX_BYTES_MAX},
    {"batch.linger_ms", 0, SINK_LINGER_MS_MAX},
    {"sink.max_in_flight", SINK_IN_FLIGHT_MIN, SINK_IN_FLIGHT_MAX},
    {"sink.timeout_ms", SINK_TIMEOUT_MS_MIN, SINK_TIMEOUT_MS_MAX},
    {"sink.gzip_level", SINK_GZIP_LEVEL_MIN, SINK_GZIP_LEVEL_MAX},
    {"sink.retry_backoff_ms", SINK_BACKOFF_MS_MIN, SINK_BACKOFF_MS_MAX},
    {"sink.retry_backoff_max_ms", SINK_BACKOFF_MAX_MS_MIN,
     SINK_BACKOFF_MAX_MS_MAX},
    {"sink.retry_max", 0, SINK_RETRY_MAX_MAX},
    {"sink.max_pending_bytes", SINK_PENDING_BYTES_MIN, SINK_PENDING_BYTES_MAX},
    {"transform.max_event_bytes", TRANSFORM_MAX_EVENT_BYTES_MIN,
     TRANSFORM_MAX_EVENT_BYTES_MAX},
    {"transform.max_depth", TRANSFORM_MAX_DEPTH_MIN, TRANSFORM_MAX_DEPTH_MAX},
};

static enum core_err set_num(const char *key, unsigned long long v, char *e,
                             size_t esize)
{
    struct config cfg;
    char text[32];
    enum core_err rc;

    config_init(&cfg);
    snprintf(text, sizeof(text), "%llu", v);
    rc = config_set(&cfg, key, text, e, esize);
    config_release(&cfg);
    return rc;
}

static void test_config_set__every_range_end_and_one_past(void **state)
{
    char e[512];
    (void)state;

    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        const char *k = ranges[i].key;
        assert_int_equal(set_num(k, ranges[i].min, e, sizeof(e)), CORE_OK);
        assert_int_equal(set_num(k, ranges[i].max, e, sizeof(e)), CORE_OK);
        assert_int_equal(set_num(k, ranges[i].max + 1, e, sizeof(e)),
                         CORE_ERR_USAGE);
        if (strstr(e, k) == NULL) {
            fail_msg("'%s' does not name '%s'", e, k);
        }
        if (ranges[i].min > 0) {
            assert_int_equal(set_num(k, ranges[i].min - 1, e, sizeof(e)),
                             CORE_ERR_USAGE);
            assert_non_null(strstr(e, k));
        }
    }
}

static void test_config_init__the_stages_defaults(void **state)
{
    struct config cfg;
    struct sink_config sink;
    struct transform_config tf;
    (void)state;

    config_init(&cfg);
    sink_config_init(&sink);
    transform_config_init(&tf);
    assert_int_equal(cfg.sink.batch_max_events, 200);
    assert_int_equal(cfg.sink.batch_max_events, sink.batch_max_events);
    assert_int_equal(cfg.sink.batch_max_bytes, sink.batch_max_bytes);
    assert_int_equal(cfg.sink.batch_linger_ms, sink.batch_linger_ms);
    assert_int_equal(cfg.sink.max_in_flight, sink.max_in_flight);
    assert_int_equal(cfg.sink.timeout_ms, sink.timeout_ms);
    assert_int_equal(cfg.sink.gzip_level, sink.gzip_level);
    assert_int_equal(cfg.sink.retry_backoff_ms, sink.retry_backoff_ms);
    assert_int_equal(cfg.sink.retry_backoff_max_ms, sink.retry_backoff_max_ms);
    assert_int_equal(cfg.sink.max_pending_bytes, sink.max_pending_bytes);
    assert_int_equal(cfg.transform.max_event_bytes, tf.max_event_bytes);
    assert_int_equal(cfg.transform.max_depth, tf.max_depth);
    assert_int_equal(cfg.transform.scope, tf.scope);
    assert_int_equal(cfg.transform.unknown_fields, tf.unknown_fields);
    assert_string_equal(cfg.base_url, "https://api.moesif.net");
    config_release(&cfg);
}

/* config_load with no file: overrides only; for_run 0 needs no topics. */
static enum core_err load(const char *const *x, size_t n, char *e, size_t esize)
{
    struct config cfg;
    enum core_err rc;

    config_init(&cfg);
    rc = config_load(&cfg, NULL, x, n, 0, e, esize);
    config_release(&cfg);
    return rc;
}

static void test_config_load__base_url_scheme_any_case(void **state)
{
    const char *up[] = {"moesif.base_url=HTTPS://api.example.com"};
    const char *http[] = {"moesif.base_url=http://127.0.0.1:1"};
    const char *ftp[] = {"moesif.base_url=ftp://api.example.com"};
    const char *none[] = {"moesif.base_url=api.moesif.net"};
    char e[512];
    (void)state;

    assert_int_equal(load(up, 1, e, sizeof(e)), CORE_OK);
    assert_int_equal(load(http, 1, e, sizeof(e)), CORE_OK);
    assert_int_equal(load(ftp, 1, e, sizeof(e)), CORE_ERR_USAGE);
    assert_non_null(strstr(e, "moesif.base_url"));
    assert_int_equal(load(none, 1, e, sizeof(e)), CORE_ERR_USAGE);
    assert_non_null(strstr(e, "moesif.base_url"));
}

static void test_config_load__application_id_without_controls(void **state)
{
    const char *bad[] = {"moesif.application_id=abc\rX-Evil: 1"};
    const char *good[] = {"moesif.application_id=abc-123"};
    char e[512];
    (void)state;

    assert_int_equal(load(good, 1, e, sizeof(e)), CORE_OK);
    assert_int_equal(load(bad, 1, e, sizeof(e)), CORE_ERR_USAGE);
    assert_non_null(strstr(e, "moesif.application_id"));
    assert_null(strstr(e, "abc")); /* a secret is never echoed */
}

static void test_config_load__backoff_pair_checked_after_overrides(void **state)
{
    const char *below[] = {"sink.retry_backoff_max_ms=50",
                           "sink.retry_backoff_ms=100"};
    const char *raised[] = {"sink.retry_backoff_max_ms=50",
                            "sink.retry_backoff_ms=100",
                            "sink.retry_backoff_max_ms=200"};
    char e[512];
    (void)state;

    assert_int_equal(load(below, 2, e, sizeof(e)), CORE_ERR_USAGE);
    assert_non_null(strstr(e, "sink.retry_backoff_max_ms"));
    assert_int_equal(load(raised, 3, e, sizeof(e)), CORE_OK);
}

static void test_config_load__unknown_key_and_kafka_pairs(void **state)
{
    const char *typo[] = {"batch.max_event=10"};
    const char *kafka[] = {"kafka.bootstrap.servers=a:9092", "kafka.group.id=g",
                           "kafka.group.id=h"};
    struct config cfg;
    char e[512];
    (void)state;

    assert_int_equal(load(typo, 1, e, sizeof(e)), CORE_ERR_USAGE);
    assert_non_null(strstr(e, "batch.max_event"));

    config_init(&cfg);
    assert_int_equal(config_load(&cfg, NULL, kafka, 3, 0, e, sizeof(e)),
                     CORE_OK);
    assert_string_equal(config_kafka(&cfg, "bootstrap.servers"), "a:9092");
    assert_string_equal(config_kafka(&cfg, "group.id"), "h"); /* last wins */
    assert_null(config_kafka(&cfg, "client.id"));
    config_release(&cfg);
}

/* Issue 20, item 8: config_load refuses the kafka.* settings userpipe
 * owns (core_kafka_refuse), from the file or from -X, naming the key. */
static void test_config_load__owned_kafka_setting_refused(void **state)
{
    const char *off[] = {"kafka.bootstrap.servers=a:9092",
                         "kafka.enable.auto.commit=false"};
    const char *kip848[] = {"kafka.group.protocol=consumer"};
    struct config cfg;
    char e[512];
    (void)state;

    config_init(&cfg);
    assert_int_equal(config_load(&cfg, NULL, off, 2, 0, e, sizeof(e)),
                     CORE_ERR_USAGE);
    assert_non_null(strstr(e, "'kafka.enable.auto.commit'"));
    config_release(&cfg);
    config_init(&cfg);
    assert_int_equal(config_load(&cfg, NULL, kip848, 1, 0, e, sizeof(e)),
                     CORE_ERR_USAGE);
    assert_non_null(strstr(e, "'kafka.group.protocol'"));
    config_release(&cfg);
}

static void test_config_load__run_needs_topics_and_application_id(void **state)
{
    const char *topics[] = {"source.topics=users"};
    struct config cfg;
    char e[512];
    (void)state;

    unsetenv("MOESIF_APPLICATION_ID");
    config_init(&cfg);
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, 1, e, sizeof(e)),
                     CORE_ERR_USAGE);
    assert_non_null(strstr(e, "source.topics"));
    config_release(&cfg);

    config_init(&cfg);
    assert_int_equal(config_load(&cfg, NULL, topics, 1, 1, e, sizeof(e)),
                     CORE_ERR_USAGE);
    assert_non_null(strstr(e, "MOESIF_APPLICATION_ID"));
    config_release(&cfg);

    {
        /* an empty id in the file is no id (it was sink_new's check) */
        const char *empty[] = {"source.topics=users", "moesif.application_id="};
        config_init(&cfg);
        assert_int_equal(config_load(&cfg, NULL, empty, 2, 1, e, sizeof(e)),
                         CORE_ERR_USAGE);
        assert_non_null(strstr(e, "moesif.application_id"));
        config_release(&cfg);
    }

    setenv("MOESIF_APPLICATION_ID", "from-env", 1);
    config_init(&cfg);
    assert_int_equal(config_load(&cfg, NULL, topics, 1, 1, e, sizeof(e)),
                     CORE_OK);
    assert_string_equal(cfg.sink.application_id, "from-env");
    config_release(&cfg);
    unsetenv("MOESIF_APPLICATION_ID");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_set__every_range_end_and_one_past),
        cmocka_unit_test(test_config_init__the_stages_defaults),
        cmocka_unit_test(test_config_load__base_url_scheme_any_case),
        cmocka_unit_test(test_config_load__application_id_without_controls),
        cmocka_unit_test(
            test_config_load__backoff_pair_checked_after_overrides),
        cmocka_unit_test(test_config_load__unknown_key_and_kafka_pairs),
        cmocka_unit_test(test_config_load__owned_kafka_setting_refused),
        cmocka_unit_test(test_config_load__run_needs_topics_and_application_id),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
