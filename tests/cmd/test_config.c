/*
 * test_config.c: tests of cmd/config.c, the one validator of userpipe's
 * configuration (issue 14): every numeric key accepts its range's ends and
 * refuses one past them with a sentence naming the key, the defaults
 * config_init applies are the stages' own (SINK_*_DEF, TRANSFORM_*_DEF),
 * and the checks that span keys hold after the last override.  Issue 22:
 * ${env:NAME} and ${file:PATH} references resolve, and every way one can
 * fail gives a sentence naming the key; no error sentence echoes a secret
 * or what a reference resolved to; the egress files are checked at load;
 * URLs are redacted (core_url_redact itself: tests/core/test_log.c); the
 * cleartext warning knows loopback.
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
#include <sys/stat.h>
#include <unistd.h>

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

/* A temporary directory for the files the references name. */
static char tmpdir[64];

static const char *tmp_path(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
    return buf;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown_tmp(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* config_set of one key on a fresh config; the value set is copied to
 * got (empty on failure). */
static enum core_err set1(const char *key, const char *value, char *got,
                          size_t got_size, char *e, size_t esize)
{
    struct config cfg;
    enum core_err rc;

    config_init(&cfg);
    rc = config_set(&cfg, key, value, e, esize);
    got[0] = '\0';
    if (rc == CORE_OK) {
        const char *v = strncmp(key, "kafka.", 6) == 0
                            ? config_kafka(&cfg, key + 6)
                            : cfg.application_id;
        snprintf(got, got_size, "%s", v != NULL ? v : "");
    }
    config_release(&cfg);
    return rc;
}

static void test_config_set__env_and_file_references_resolve(void **state)
{
    char path[128], ref[300], got[256], e[512];
    (void)state;

    setenv("TEST_CONFIG_PW", "pa55-env", 1);
    assert_int_equal(set1("kafka.sasl.password", "${env:TEST_CONFIG_PW}", got,
                          sizeof(got), e, sizeof(e)),
                     CORE_OK);
    assert_string_equal(got, "pa55-env");

    /* the whole file, its trailing newlines (LF, CRLF) trimmed, others
     * kept: a PEM key is several lines */
    tmp_path("pw", path, sizeof(path));
    write_file(path, "line1\nline2\r\n\n", 14);
    snprintf(ref, sizeof(ref), "${file:%s}", path);
    assert_int_equal(
        set1("kafka.ssl.key.pem", ref, got, sizeof(got), e, sizeof(e)),
        CORE_OK);
    assert_string_equal(got, "line1\nline2");

    /* inside a longer value, several, and text that is no reference */
    snprintf(ref, sizeof(ref), "a-${env:TEST_CONFIG_PW}-${file:%s}-${x}", path);
    assert_int_equal(
        set1("kafka.sasl.jaas.config", ref, got, sizeof(got), e, sizeof(e)),
        CORE_OK);
    assert_string_equal(got, "a-pa55-env-line1\nline2-${x}");

    /* a key of the table */
    snprintf(ref, sizeof(ref), "${file:%s}", path);
    write_file(path, "app-id-from-file\n", 17);
    assert_int_equal(
        set1("moesif.application_id", ref, got, sizeof(got), e, sizeof(e)),
        CORE_OK);
    assert_string_equal(got, "app-id-from-file");
    unsetenv("TEST_CONFIG_PW");
}

/* config_set(key, value) fails (exit 2) with a sentence naming key and
 * holding want. */
static void expect_ref_error(const char *key, const char *value,
                             const char *want)
{
    char got[64], e[512], quoted[128];

    if (set1(key, value, got, sizeof(got), e, sizeof(e)) != CORE_ERR_USAGE) {
        fail_msg("%s=%s: accepted", key, value);
    }
    snprintf(quoted, sizeof(quoted), "'%s'", key);
    if (strstr(e, quoted) == NULL || strstr(e, want) == NULL) {
        fail_msg("%s=%s: '%s' lacks %s or '%s'", key, value, e, quoted, want);
    }
}

/* Every way a reference can fail: a sentence naming the key and the
 * variable or file, CORE_ERR_USAGE (exit 2). */
static void test_config_set__every_reference_error_names_the_key(void **state)
{
    char path[128], ref[200];
    char *big;
    (void)state;

    unsetenv("TEST_CONFIG_UNSET");
    expect_ref_error("kafka.sasl.password", "${env:TEST_CONFIG_UNSET}",
                     "'TEST_CONFIG_UNSET' of ${env:TEST_CONFIG_UNSET} is not "
                     "set");

    /* a missing file, a directory */
    snprintf(ref, sizeof(ref), "${file:%s/missing}", tmpdir);
    expect_ref_error("moesif.application_id", ref, "No such file");
    expect_ref_error("moesif.application_id", ref, "/missing'");
    snprintf(ref, sizeof(ref), "${file:%s}", tmpdir);
    expect_ref_error("kafka.sasl.password", ref, "directory");

    /* unreadable: only when not root (root reads a 0000 file) */
    tmp_path("noread", path, sizeof(path));
    write_file(path, "x", 1);
    chmod(path, 0);
    snprintf(ref, sizeof(ref), "${file:%s}", path);
    if (geteuid() != 0) {
        expect_ref_error("kafka.sasl.password", ref, "Permission denied");
    }

    /* larger than any secret */
    tmp_path("big", path, sizeof(path));
    big = calloc(1, 1024 * 1024 + 2);
    memset(big, 'a', 1024 * 1024 + 1);
    write_file(path, big, 1024 * 1024 + 1);
    free(big);
    snprintf(ref, sizeof(ref), "${file:%s}", path);
    expect_ref_error("kafka.sasl.password", ref, "too large");

    /* a NUL byte cannot be a C string's */
    tmp_path("nul", path, sizeof(path));
    write_file(path, "ab\0cd", 5);
    snprintf(ref, sizeof(ref), "${file:%s}", path);
    expect_ref_error("kafka.ssl.key.password", ref, "NUL");

    /* a relative path: relative to what, under systemd? */
    expect_ref_error("kafka.sasl.password", "${file:pw.txt}", "absolute path");

    /* malformed references */
    expect_ref_error("kafka.sasl.password", "${env:", "closing");
    {
        /* a literal password that holds "${env:" is not echoed */
        char got[64], e[512];
        assert_int_equal(set1("kafka.sasl.password", "pw${env:hunter5", got,
                              sizeof(got), e, sizeof(e)),
                         CORE_ERR_USAGE);
        assert_null(strstr(e, "hunter5"));
    }
    expect_ref_error("kafka.sasl.password", "${env:}",
                     "names no environment variable");
    expect_ref_error("kafka.sasl.password", "${file:}", "names no file");

    /* an empty variable leaves a table key empty: refused as such */
    setenv("TEST_CONFIG_EMPTY", "", 1);
    expect_ref_error("moesif.application_id", "${env:TEST_CONFIG_EMPTY}",
                     "empty");
    unsetenv("TEST_CONFIG_EMPTY");

    /* an unknown key fails before its reference is read */
    expect_ref_error("no.such.key", "${env:TEST_CONFIG_UNSET}",
                     "unknown configuration key");
}

/* What a reference resolved to never appears in an error sentence, nor a
 * secret key's value, nor a URL's password. */
static void test_config_set__errors_never_echo_secrets(void **state)
{
    struct config cfg;
    char e[512];
    const char *pw_url[] = {"moesif.base_url=ftp://user:hunter2@example.com"};
    const char *proxy[] = {"moesif.proxy=socks5://u:hunter3@proxy:1080"};
    const char *bare[] = {"hunter4"};
    (void)state;

    setenv("TEST_CONFIG_SECRET", "hunter1", 1);
    config_init(&cfg);
    assert_int_equal(config_set(&cfg, "batch.max_events",
                                "${env:TEST_CONFIG_SECRET}", e, sizeof(e)),
                     CORE_ERR_USAGE);
    assert_null(strstr(e, "hunter1"));
    assert_non_null(strstr(e, "${env:TEST_CONFIG_SECRET}"));
    assert_int_equal(config_set(&cfg, "sink.gzip", "${env:TEST_CONFIG_SECRET}",
                                e, sizeof(e)),
                     CORE_ERR_USAGE);
    assert_null(strstr(e, "hunter1"));
    assert_int_equal(config_set(&cfg, "log.level", "${env:TEST_CONFIG_SECRET}",
                                e, sizeof(e)),
                     CORE_ERR_USAGE);
    assert_null(strstr(e, "hunter1"));
    config_release(&cfg);
    unsetenv("TEST_CONFIG_SECRET");

    assert_int_equal(load(pw_url, 1, e, sizeof(e)), CORE_ERR_USAGE);
    assert_null(strstr(e, "hunter2"));
    assert_non_null(strstr(e, "ftp://***@example.com"));
    assert_int_equal(load(proxy, 1, e, sizeof(e)), CORE_ERR_USAGE);
    assert_non_null(strstr(e, "moesif.proxy"));
    assert_null(strstr(e, "hunter3"));
    assert_int_equal(load(bare, 1, e, sizeof(e)), CORE_ERR_USAGE);
    assert_null(strstr(e, "hunter4"));

    assert_true(config_key_secret("moesif.application_id"));
    assert_true(config_key_secret("moesif.client_key_password"));
    assert_true(config_key_secret("kafka.sasl.password"));
    assert_true(config_key_secret("kafka.ssl.key.password"));
    assert_true(config_key_secret("kafka.ssl.key.pem"));
    assert_true(config_key_secret("kafka.sasl.oauthbearer.client.secret"));
    assert_false(config_key_secret("kafka.sasl.username"));
    assert_false(config_key_secret("moesif.base_url"));
}

/* A key line without '=' is not echoed either (a pasted PEM line). */
static void test_config_load__a_line_without_key_is_not_echoed(void **state)
{
    char path[128], e[512];
    struct config cfg;
    (void)state;

    tmp_path("bad.properties", path, sizeof(path));
    write_file(path, "source.topics=t\nMIIEvQIBADANBgkqhkiG9w0BAQEFAAS\n", 47);
    config_init(&cfg);
    assert_int_equal(config_load(&cfg, path, NULL, 0, 0, e, sizeof(e)),
                     CORE_ERR_USAGE);
    assert_non_null(strstr(e, ":2:"));
    assert_null(strstr(e, "MIIE"));
    config_release(&cfg);
}

/* The egress files are checked when the configuration is loaded. */
static void test_config_load__egress_files_checked(void **state)
{
    char ca[128], missing[128], x_ca[160], x_missing[180], x_dir[160],
        x_cadir_file[180], e[512];
    struct config cfg;
    (void)state;

    tmp_path("ca.pem", ca, sizeof(ca));
    write_file(ca, "-----BEGIN CERTIFICATE-----\n", 28);
    tmp_path("none.pem", missing, sizeof(missing));
    snprintf(x_ca, sizeof(x_ca), "moesif.ca_file=%s", ca);
    snprintf(x_missing, sizeof(x_missing), "moesif.client_cert=%s", missing);
    snprintf(x_dir, sizeof(x_dir), "moesif.ca_file=%s", tmpdir);
    snprintf(x_cadir_file, sizeof(x_cadir_file), "moesif.ca_path=%s", ca);
    {
        const char *ok[] = {x_ca, "moesif.proxy=http://u:p@127.0.0.1:3128"};
        config_init(&cfg);
        assert_int_equal(config_load(&cfg, NULL, ok, 2, 0, e, sizeof(e)),
                         CORE_OK);
        assert_string_equal(cfg.sink.ca_file, ca);
        assert_string_equal(cfg.sink.proxy, "http://u:p@127.0.0.1:3128");
        assert_null(cfg.sink.client_cert);
        config_release(&cfg);
    }
    {
        const char *bad[] = {x_missing};
        assert_int_equal(load(bad, 1, e, sizeof(e)), CORE_ERR_USAGE);
        assert_non_null(strstr(e, "'moesif.client_cert'"));
        assert_non_null(strstr(e, "No such file"));
    }
    {
        const char *bad[] = {x_dir};
        assert_int_equal(load(bad, 1, e, sizeof(e)), CORE_ERR_USAGE);
        assert_non_null(strstr(e, "'moesif.ca_file'"));
        assert_non_null(strstr(e, "directory"));
    }
    {
        const char *bad[] = {x_cadir_file};
        assert_int_equal(load(bad, 1, e, sizeof(e)), CORE_ERR_USAGE);
        assert_non_null(strstr(e, "'moesif.ca_path'"));
        assert_non_null(strstr(e, "not a directory"));
    }
    {
        char x_key[160];
        const char *bad[1];
        snprintf(x_key, sizeof(x_key), "moesif.client_key=%s", ca);
        bad[0] = x_key;
        assert_int_equal(load(bad, 1, e, sizeof(e)), CORE_ERR_USAGE);
        assert_non_null(strstr(e, "moesif.client_cert"));
    }
}

static void test_config_base_url_cleartext__loopback_only(void **state)
{
    static const struct {
        const char *url;
        int warn;
    } cases[] = {
        {"https://api.moesif.net", 0},
        {"http://127.0.0.1:8080", 0},
        {"http://127.9.8.7", 0},
        {"http://localhost:1", 0},
        {"HTTP://LOCALHOST", 0},
        {"http://[::1]:80/", 0},
        {"http://u:p@127.0.0.1", 0},
        {"http://a.localhost/", 0},
        {"http://api.moesif.net", 1},
        {"http://10.0.0.1", 1},
        {"http://127.0.0.1.nip.io", 1},
        {"http://[::2]", 1},
        {"http://127.0.0.1@evil.example", 1},
    };
    struct config cfg;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        config_init(&cfg);
        free(cfg.base_url);
        cfg.base_url = strdup(cases[i].url);
        if (config_base_url_cleartext(&cfg) != cases[i].warn) {
            fail_msg("%s: want %d", cases[i].url, cases[i].warn);
        }
        config_release(&cfg);
    }
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
        cmocka_unit_test(test_config_set__env_and_file_references_resolve),
        cmocka_unit_test(test_config_set__every_reference_error_names_the_key),
        cmocka_unit_test(test_config_set__errors_never_echo_secrets),
        cmocka_unit_test(test_config_load__a_line_without_key_is_not_echoed),
        cmocka_unit_test(test_config_load__egress_files_checked),
        cmocka_unit_test(test_config_base_url_cleartext__loopback_only),
    };
    return cmocka_run_group_tests_name("config", tests, setup_tmp,
                                       teardown_tmp);
}
