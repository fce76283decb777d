/*
 * test_policy.c: tests of sink/policy.c, the table from HTTP status or
 * transport error to DONE, RETRY, SPLIT, BISECT or STOP, status by status
 * (every code of DESIGN.md section 4, and the ones it is silent on), and
 * the backoff beside it: bounds, jitter range, Retry-After.  And
 * sink_http_classify, libcurl's result as the transport error the table
 * reads: TLS failures stop, a connection broken mid-handshake retries
 * (issue 20 item 5).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../sink/sink_int.h"

#include <curl/curl.h>
#include <limits.h>
#include <string.h>

static void expect_action(long status, enum sink_action action)
{
    const struct sink_policy_row *row = sink_policy_lookup(SINK_TP_OK, status);

    assert_non_null(row);
    if (row->action != action) {
        fail_msg("HTTP %ld: action %d, expected %d", status, (int)row->action,
                 (int)action);
    }
}

/* A STOP row whose sentence names every word given. */
static void expect_stop(long status, const char *w1, const char *w2)
{
    const struct sink_policy_row *row = sink_policy_lookup(SINK_TP_OK, status);

    assert_int_equal(row->action, SINK_STOP);
    assert_non_null(row->fix);
    if (w1 != NULL && strstr(row->fix, w1) == NULL) {
        fail_msg("HTTP %ld: '%s' does not name '%s'", status, row->fix, w1);
    }
    if (w2 != NULL && strstr(row->fix, w2) == NULL) {
        fail_msg("HTTP %ld: '%s' does not name '%s'", status, row->fix, w2);
    }
}

static void test_sink_policy_lookup__2xx_is_done(void **state)
{
    (void)state;
    expect_action(200, SINK_DONE);
    expect_action(201, SINK_DONE);
    expect_action(202, SINK_DONE);
    expect_action(204, SINK_DONE);
    expect_action(299, SINK_DONE);
}

static void test_sink_policy_lookup__400_bisects(void **state)
{
    (void)state;
    expect_action(400, SINK_BISECT);
}

static void test_sink_policy_lookup__422_bisects(void **state)
{
    (void)state;
    expect_action(422, SINK_BISECT);
}

static void
test_sink_policy_lookup__401_stops_naming_application_id(void **state)
{
    (void)state;
    expect_stop(401, "moesif.application_id", "MOESIF_APPLICATION_ID");
}

static void test_sink_policy_lookup__402_stops_naming_subscription(void **state)
{
    (void)state;
    expect_stop(402, "subscription", "inactive");
}

static void
test_sink_policy_lookup__403_stops_naming_application_id(void **state)
{
    (void)state;
    expect_stop(403, "moesif.application_id", "MOESIF_APPLICATION_ID");
}

static void test_sink_policy_lookup__404_stops_naming_base_url(void **state)
{
    (void)state;
    expect_stop(404, "moesif.base_url", "https://api.moesif.net");
}

static void test_sink_policy_lookup__405_stops_naming_base_url(void **state)
{
    (void)state;
    expect_stop(405, "moesif.base_url", "POST");
}

static void test_sink_policy_lookup__406_stops_naming_base_url(void **state)
{
    (void)state;
    expect_stop(406, "moesif.base_url", "sink.gzip");
}

static void test_sink_policy_lookup__410_stops(void **state)
{
    (void)state;
    expect_stop(410, "moesif.application_id", "moesif.base_url");
}

static void test_sink_policy_lookup__413_splits(void **state)
{
    (void)state;
    expect_action(413, SINK_SPLIT);
}

static void test_sink_policy_lookup__408_retries(void **state)
{
    (void)state;
    expect_action(408, SINK_RETRY);
}

static void test_sink_policy_lookup__425_retries(void **state)
{
    (void)state;
    expect_action(425, SINK_RETRY);
}

static void test_sink_policy_lookup__429_retries(void **state)
{
    (void)state;
    expect_action(429, SINK_RETRY);
}

static void test_sink_policy_lookup__5xx_retries(void **state)
{
    (void)state;
    expect_action(500, SINK_RETRY);
    expect_action(501, SINK_RETRY);
    expect_action(502, SINK_RETRY);
    expect_action(503, SINK_RETRY);
    expect_action(504, SINK_RETRY);
    expect_action(599, SINK_RETRY);
}

static void
test_sink_policy_lookup__503_with_retry_after_waits_for_it(void **state)
{
    (void)state;
    expect_action(503, SINK_RETRY);
    /* Retry-After: 7 on the first retry, backoff from 100 ms: 7 s */
    for (uint64_t rnd = 0; rnd < 1000; rnd += 7) {
        uint64_t d = sink_backoff_ms(1, 100, 30000, 7000, rnd);
        assert_true(d == 7000);
    }
}

/* Decision of policy.c: an undocumented 4xx stops (neither bisected nor
 * retried for ever). */
static void test_sink_policy_lookup__418_stops_naming_base_url(void **state)
{
    (void)state;
    expect_stop(418, "moesif.base_url", "proxy");
    expect_stop(409, "moesif.base_url", NULL);
    expect_stop(411, "moesif.base_url", NULL);
    expect_stop(415, "moesif.base_url", NULL);
    expect_stop(451, "moesif.base_url", NULL);
    expect_stop(499, "moesif.base_url", NULL);
}

static void test_sink_policy_lookup__3xx_stops_naming_base_url(void **state)
{
    (void)state;
    expect_stop(301, "moesif.base_url", "redirect");
    expect_stop(302, "moesif.base_url", NULL);
    expect_stop(307, "moesif.base_url", NULL);
    expect_stop(308, "moesif.base_url", NULL);
}

static void test_sink_policy_lookup__odd_statuses_retry(void **state)
{
    (void)state;
    expect_action(100, SINK_RETRY);
    expect_action(199, SINK_RETRY);
    expect_action(0, SINK_RETRY);
    expect_action(-1, SINK_RETRY);
    expect_action(600, SINK_RETRY);
    expect_action(LONG_MAX, SINK_RETRY);
    expect_action(LONG_MIN, SINK_RETRY);
}

static void test_sink_policy_lookup__transport_errors_retry(void **state)
{
    (void)state;
    assert_int_equal(sink_policy_lookup(SINK_TP_TIMEOUT, 0)->action,
                     SINK_RETRY);
    assert_int_equal(sink_policy_lookup(SINK_TP_CONNECT, 0)->action,
                     SINK_RETRY);
    assert_int_equal(sink_policy_lookup(SINK_TP_OTHER, 0)->action, SINK_RETRY);
    /* a transport error wins over whatever status came with it */
    assert_int_equal(sink_policy_lookup(SINK_TP_TIMEOUT, 200)->action,
                     SINK_RETRY);
    /* a code newer than the table: a transport failure */
    assert_int_equal(sink_policy_lookup((enum sink_tp_error)99, 0)->action,
                     SINK_RETRY);
}

static void test_sink_policy_lookup__unusable_url_stops(void **state)
{
    const struct sink_policy_row *row = sink_policy_lookup(SINK_TP_FATAL, 0);

    (void)state;
    assert_int_equal(row->action, SINK_STOP);
    assert_non_null(strstr(row->fix, "moesif.base_url"));
}

/* Every status and error has a row; STOP rows, and only they, say what to
 * fix, and every sentence is one line without a final period. */
static void
test_sink_policy_table__is_total_and_stop_rows_say_what_to_fix(void **state)
{
    size_t n;
    const struct sink_policy_row *rows = sink_policy_table(&n);

    (void)state;
    assert_true(n > 0);
    for (long s = -5; s < 1005; s++) {
        const struct sink_policy_row *row = sink_policy_lookup(SINK_TP_OK, s);
        assert_non_null(row);
        assert_int_equal(row->err, SINK_TP_OK);
    }
    for (size_t i = 0; i < n; i++) {
        if (rows[i].action == SINK_STOP) {
            size_t len;
            assert_non_null(rows[i].fix);
            len = strlen(rows[i].fix);
            assert_true(len > 20);
            assert_null(strchr(rows[i].fix, '\n'));
            assert_true(rows[i].fix[len - 1] != '.');
        } else {
            assert_null(rows[i].fix);
        }
    }
}

/* ---- backoff ----------------------------------------------------------- */

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 11;
}

static void test_sink_backoff_ms__cap_doubles_from_base_to_max(void **state)
{
    (void)state;
    /* rnd = cap gives the top of [0, cap] */
    assert_int_equal(sink_backoff_ms(1, 100, 30000, -1, 100), 100);
    assert_int_equal(sink_backoff_ms(2, 100, 30000, -1, 200), 200);
    assert_int_equal(sink_backoff_ms(3, 100, 30000, -1, 400), 400);
    assert_int_equal(sink_backoff_ms(9, 100, 30000, -1, 25600), 25600);
    assert_int_equal(sink_backoff_ms(10, 100, 30000, -1, 30000), 30000);
    /* attempt 0 is taken as the first */
    assert_int_equal(sink_backoff_ms(0, 100, 30000, -1, 100), 100);
}

static void test_sink_backoff_ms__never_above_cap(void **state)
{
    uint64_t s = 42;

    (void)state;
    for (unsigned attempt = 1; attempt < 80; attempt++) {
        uint64_t cap = 100;
        for (unsigned i = 1; i < attempt && cap < 30000; i++) {
            cap *= 2;
        }
        if (cap > 30000) {
            cap = 30000;
        }
        for (int k = 0; k < 200; k++) {
            assert_true(sink_backoff_ms(attempt, 100, 30000, -1, lcg(&s)) <=
                        cap);
        }
    }
    /* huge attempt numbers do not overflow */
    assert_true(sink_backoff_ms(UINT_MAX, 100, 30000, -1, UINT64_MAX) <= 30000);
}

static void test_sink_backoff_ms__full_jitter_spans_zero_to_cap(void **state)
{
    uint64_t s = 7;
    uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
    const int n = 20000;

    (void)state;
    for (int i = 0; i < n; i++) {
        uint64_t d = sink_backoff_ms(4, 100, 30000, -1, lcg(&s));
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        sum += d;
    }
    /* cap 800: uniform on [0, 800] */
    assert_true(lo <= 8);
    assert_true(hi >= 792 && hi <= 800);
    assert_true(sum / n > 360 && sum / n < 440);
}

static void test_sink_backoff_ms__retry_after_is_a_floor(void **state)
{
    uint64_t s = 3;

    (void)state;
    for (int i = 0; i < 2000; i++) {
        uint64_t d = sink_backoff_ms(12, 100, 30000, 5000, lcg(&s));
        assert_true(d >= 5000 && d <= 30000);
    }
    /* beyond the backoff cap, Retry-After still wins */
    assert_int_equal(sink_backoff_ms(1, 100, 30000, 120000, 5), 120000);
    /* 0 is a real Retry-After of zero seconds: backoff alone */
    assert_int_equal(sink_backoff_ms(1, 100, 30000, 0, 37), 37);
}

static void test_sink_backoff_ms__retry_after_capped_at_an_hour(void **state)
{
    (void)state;
    assert_int_equal(sink_backoff_ms(1, 100, 30000, INT64_MAX, 0),
                     SINK_RETRY_AFTER_MAX_MS);
    assert_int_equal(sink_backoff_ms(1, 100, 30000, 86400000, 0),
                     SINK_RETRY_AFTER_MAX_MS);
}

/* A certificate or TLS handshake failure stops (exit 3) with a sentence
 * naming moesif.ca_file; a reset mid-handshake is retried (issue 20
 * item 5: it was retried for ever). */
static void test_sink_http_classify__tls_failures_stop(void **state)
{
    static const struct {
        int code;
        const char *errbuf;
        enum sink_tp_error want;
    } cases[] = {
        {CURLE_PEER_FAILED_VERIFICATION,
         "SSL certificate problem: unable to get local issuer certificate",
         SINK_TP_TLS_VERIFY},
        {CURLE_PEER_FAILED_VERIFICATION,
         "SSL: no alternative certificate subject name matches target host "
         "name 'h'",
         SINK_TP_TLS_VERIFY},
        {CURLE_SSL_CACERT_BADFILE, "error setting certificate file: /x",
         SINK_TP_TLS_LOCAL},
        {CURLE_SSL_CERTPROBLEM, "could not load PEM client certificate",
         SINK_TP_TLS_LOCAL},
        {CURLE_SSL_CONNECT_ERROR,
         "OpenSSL/3.0.22: error:0A000410:SSL routines::sslv3 alert handshake "
         "failure",
         SINK_TP_TLS_PEER},
        {CURLE_SSL_CONNECT_ERROR,
         "error:0A00010B:SSL routines::wrong version number", SINK_TP_TLS_PEER},
        {CURLE_RECV_ERROR,
         "OpenSSL SSL_read: OpenSSL/3.0.22: error:0A00045C:SSL "
         "routines::tlsv13 alert certificate required, errno 0",
         SINK_TP_TLS_PEER},
        {CURLE_RECV_ERROR,
         "OpenSSL SSL_read: error:0A000418:SSL routines::tlsv1 alert unknown "
         "ca, errno 0",
         SINK_TP_TLS_PEER},
        /* the connection's failures, not the handshake's: retried */
        {CURLE_SSL_CONNECT_ERROR,
         "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to h:443",
         SINK_TP_CONNECT},
        {CURLE_SSL_CONNECT_ERROR,
         "OpenSSL SSL_connect: Connection reset by peer in connection to "
         "h:443",
         SINK_TP_CONNECT},
        {CURLE_SSL_CONNECT_ERROR, "", SINK_TP_CONNECT},
        {CURLE_RECV_ERROR, "Recv failure: Connection reset by peer",
         SINK_TP_CONNECT},
        {CURLE_RECV_ERROR,
         "OpenSSL SSL_read: error:0A000438:SSL routines::tlsv1 alert internal "
         "error",
         SINK_TP_CONNECT},
        {CURLE_COULDNT_CONNECT, "Failed to connect", SINK_TP_CONNECT},
        {CURLE_COULDNT_RESOLVE_PROXY, "Could not resolve proxy: p",
         SINK_TP_CONNECT},
        {CURLE_OPERATION_TIMEDOUT, "", SINK_TP_TIMEOUT},
        {CURLE_URL_MALFORMAT, "", SINK_TP_FATAL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum sink_tp_error got =
            sink_http_classify(cases[i].code, cases[i].errbuf);
        if (got != cases[i].want) {
            fail_msg("curl %d '%s': %d, want %d", cases[i].code,
                     cases[i].errbuf, (int)got, (int)cases[i].want);
        }
    }
    assert_int_equal(sink_http_classify(CURLE_SSL_CONNECT_ERROR, NULL),
                     SINK_TP_CONNECT);
    /* each TLS error stops and names the CA key; the proxy's refusals
     * stop and name moesif.proxy */
    assert_int_equal(sink_policy_lookup(SINK_TP_TLS_VERIFY, 0)->action,
                     SINK_STOP);
    assert_non_null(strstr(sink_policy_lookup(SINK_TP_TLS_VERIFY, 0)->fix,
                           "moesif.ca_file"));
    assert_int_equal(sink_policy_lookup(SINK_TP_TLS_LOCAL, 0)->action,
                     SINK_STOP);
    assert_non_null(strstr(sink_policy_lookup(SINK_TP_TLS_LOCAL, 0)->fix,
                           "moesif.ca_file"));
    assert_int_equal(sink_policy_lookup(SINK_TP_TLS_PEER, 0)->action,
                     SINK_STOP);
    assert_non_null(strstr(sink_policy_lookup(SINK_TP_TLS_PEER, 0)->fix,
                           "moesif.client_cert"));
    assert_non_null(
        strstr(sink_policy_lookup(SINK_TP_TLS_PEER, 0)->fix, "moesif.ca_file"));
    assert_int_equal(sink_policy_lookup(SINK_TP_PROXY_AUTH, 0)->action,
                     SINK_STOP);
    assert_non_null(
        strstr(sink_policy_lookup(SINK_TP_PROXY_AUTH, 0)->fix, "moesif.proxy"));
    assert_int_equal(sink_policy_lookup(SINK_TP_PROXY_DENIED, 0)->action,
                     SINK_STOP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sink_policy_lookup__2xx_is_done),
        cmocka_unit_test(test_sink_policy_lookup__400_bisects),
        cmocka_unit_test(test_sink_policy_lookup__422_bisects),
        cmocka_unit_test(
            test_sink_policy_lookup__401_stops_naming_application_id),
        cmocka_unit_test(
            test_sink_policy_lookup__402_stops_naming_subscription),
        cmocka_unit_test(
            test_sink_policy_lookup__403_stops_naming_application_id),
        cmocka_unit_test(test_sink_policy_lookup__404_stops_naming_base_url),
        cmocka_unit_test(test_sink_policy_lookup__405_stops_naming_base_url),
        cmocka_unit_test(test_sink_policy_lookup__406_stops_naming_base_url),
        cmocka_unit_test(test_sink_policy_lookup__410_stops),
        cmocka_unit_test(test_sink_policy_lookup__413_splits),
        cmocka_unit_test(test_sink_policy_lookup__408_retries),
        cmocka_unit_test(test_sink_policy_lookup__425_retries),
        cmocka_unit_test(test_sink_policy_lookup__429_retries),
        cmocka_unit_test(test_sink_policy_lookup__5xx_retries),
        cmocka_unit_test(
            test_sink_policy_lookup__503_with_retry_after_waits_for_it),
        cmocka_unit_test(test_sink_policy_lookup__418_stops_naming_base_url),
        cmocka_unit_test(test_sink_policy_lookup__3xx_stops_naming_base_url),
        cmocka_unit_test(test_sink_policy_lookup__odd_statuses_retry),
        cmocka_unit_test(test_sink_policy_lookup__transport_errors_retry),
        cmocka_unit_test(test_sink_policy_lookup__unusable_url_stops),
        cmocka_unit_test(
            test_sink_policy_table__is_total_and_stop_rows_say_what_to_fix),
        cmocka_unit_test(test_sink_backoff_ms__cap_doubles_from_base_to_max),
        cmocka_unit_test(test_sink_backoff_ms__never_above_cap),
        cmocka_unit_test(test_sink_backoff_ms__full_jitter_spans_zero_to_cap),
        cmocka_unit_test(test_sink_backoff_ms__retry_after_is_a_floor),
        cmocka_unit_test(test_sink_backoff_ms__retry_after_capped_at_an_hour),
        cmocka_unit_test(test_sink_http_classify__tls_failures_stop),
    };
    return cmocka_run_group_tests_name("sink_policy", tests, NULL, NULL);
}
