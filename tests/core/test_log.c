/*
 * test_log.c: tests of core/log.c's redaction (issue 22): core_url_redact
 * replaces a URL's userinfo by ***, and core_log_kafka replaces the value
 * of a secret property in librdkafka's configuration dump (kafka.debug=
 * conf), which librdkafka 2.8.0 itself redacts for the properties it
 * marks sensitive but not for sasl.oauthbearer.client.secret.  The log
 * lines are read back from stderr, redirected to a temporary file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_core_url_redact__userinfo_only(void **state)
{
    char out[128];
    (void)state;

    assert_string_equal(core_url_redact("https://u:p@h:1/x?y", out, 128),
                        "https://***@h:1/x?y");
    assert_string_equal(core_url_redact("http://u:p@ss@h/", out, 128),
                        "http://***@h/");
    assert_string_equal(core_url_redact("http://h/a@b", out, 128),
                        "http://h/a@b");
    assert_string_equal(core_url_redact("https://api.moesif.net", out, 128),
                        "https://api.moesif.net");
    assert_string_equal(core_url_redact("no-scheme", out, 128), "no-scheme");
    assert_string_equal(core_url_redact("http://u:p@hostname", out, 10),
                        "http://**");
}

/* What core_log_kafka writes for one line, read back from stderr. */
static void log_kafka(const char *facility, const char *text, char *got,
                      size_t size)
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    size_t n;

    assert_non_null(tmp);
    fflush(stderr);
    dup2(fileno(tmp), STDERR_FILENO);
    core_log_threshold = CORE_LOG_DEBUG;
    core_log_kafka(7, "kafka", facility, text);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    n = fread(got, 1, size - 1, tmp);
    got[n] = '\0';
    fclose(tmp);
}

static void test_core_log_kafka__secret_properties_redacted(void **state)
{
    char got[512];
    (void)state;

    for (size_t i = 0; core_kafka_secrets[i] != NULL; i++) {
        char line[200];
        snprintf(line, sizeof(line), "[thrd:app]:   %s = hunter2",
                 core_kafka_secrets[i]);
        log_kafka("CONF", line, got, sizeof(got));
        if (strstr(got, "hunter2") != NULL ||
            strstr(got, "= [redacted]") == NULL ||
            strstr(got, core_kafka_secrets[i]) == NULL) {
            fail_msg("%s: '%s'", core_kafka_secrets[i], got);
        }
    }
    /* the other properties, and other facilities, as written */
    log_kafka("CONF", "[thrd:app]:   sasl.username = userpipe", got,
              sizeof(got));
    assert_non_null(strstr(got, "sasl.username = userpipe"));
    log_kafka("FAIL", "sasl.password = is not a dump line", got, sizeof(got));
    assert_non_null(strstr(got, "is not a dump line"));
    assert_true(core_kafka_secret("sasl.oauthbearer.client.secret"));
    assert_false(core_kafka_secret("sasl.username"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_url_redact__userinfo_only),
        cmocka_unit_test(test_core_log_kafka__secret_properties_redacted),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
