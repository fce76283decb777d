/*
 * test_metrics.c: tests of cmd/metrics.c over a real socket: each test
 * starts the server on 127.0.0.1 with a port the kernel picks, publishes
 * snapshots and fetches /metrics, /healthz and /readyz with libcurl.  The
 * exact /metrics text is pinned once, without a socket, in
 * test_metrics_format.c; here the body served is checked to be that text,
 * and the other tests look for single series lines, so they read as the
 * specification of each series.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../cmd/metrics.h"
#include "../../core/core.h"
#include "metrics_snapshots.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- fetching ---------------------------------------------------------- */

/* Far above the largest body (the all-maximum test is about 100 KiB). */
#define REPLY_MAX (1024 * 1024)

struct reply {
    long status;
    char *body; /* NUL-terminated; free with reply_free */
    size_t len;
    char content_type[128];
    char allow[64];
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    size_t add = size * n;

    if (r->len + add >= REPLY_MAX) {
        return 0; /* makes curl fail the transfer */
    }
    memcpy(r->body + r->len, p, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    size_t len = size * n;
    static const char allow[] = "Allow: ";

    if (len > sizeof(allow) - 1 &&
        strncasecmp(p, allow, sizeof(allow) - 1) == 0) {
        size_t v = len - (sizeof(allow) - 1);

        while (v > 0 && (p[sizeof(allow) - 1 + v - 1] == '\r' ||
                         p[sizeof(allow) - 1 + v - 1] == '\n')) {
            v--;
        }
        if (v >= sizeof(r->allow)) {
            v = sizeof(r->allow) - 1;
        }
        memcpy(r->allow, p + sizeof(allow) - 1, v);
        r->allow[v] = '\0';
    }
    return len;
}

/* METHOD path on 127.0.0.1:port; fails the test if the transfer fails. */
static void fetch(unsigned port, const char *method, const char *path,
                  struct reply *r)
{
    CURL *h = curl_easy_init();
    char url[256];
    char *ct = NULL;
    CURLcode cc;

    assert_non_null(h);
    memset(r, 0, sizeof(*r));
    r->body = calloc(1, REPLY_MAX);
    assert_non_null(r->body);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(cc));
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    if (ct != NULL) {
        snprintf(r->content_type, sizeof(r->content_type), "%s", ct);
    }
    curl_easy_cleanup(h);
}

static void reply_free(struct reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* Fails unless the body holds `line` as a whole line. */
static void assert_line(const char *body, const char *line)
{
    size_t n = strlen(line);
    const char *p = body;

    while ((p = strstr(p, line)) != NULL) {
        if ((p == body || p[-1] == '\n') && p[n] == '\n') {
            return;
        }
        p++;
    }
    fail_msg("no line \"%s\" in:\n%s", line, body);
}

static void assert_no_substring(const char *body, const char *s)
{
    if (strstr(body, s) != NULL) {
        fail_msg("\"%s\" should not appear in:\n%s", s, body);
    }
}

/* ---- fixtures ---------------------------------------------------------- */

static int start(void **state)
{
    struct metrics *m = NULL;
    char errstr[512] = "";

    if (metrics_new("127.0.0.1:0", &m, errstr, sizeof(errstr)) != CORE_OK) {
        fprintf(stderr, "metrics_new: %s\n", errstr);
        return -1;
    }
    *state = m;
    return 0;
}

static int stop(void **state)
{
    metrics_destroy(*state);
    *state = NULL;
    return 0;
}

/* ---- metrics_new ------------------------------------------------------- */

static void test_metrics_new__off_returns_null(void **state)
{
    struct metrics *m = (struct metrics *)&m; /* not NULL */
    char errstr[256] = "";

    (void)state;
    assert_int_equal(metrics_new("off", &m, errstr, sizeof(errstr)), CORE_OK);
    assert_null(m);
    assert_int_equal(metrics_port(m), 0);
    metrics_publish(m, NULL); /* off: a no-op */
}

static void test_metrics_new__bad_listen_is_usage_error(void **state)
{
    static const char *const bad[] = {
        "",
        "9464",
        "127.0.0.1",
        "127.0.0.1:",
        ":9464",
        "127.0.0.1:65536",
        "127.0.0.1:99999",
        "127.0.0.1:123456",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1:94a4",
        "127.0.0.1: 9464",
        " 127.0.0.1:9464",
        "127.0.0.1:9464 ",
        "example.com:9464",
        "256.0.0.1:9464",
        "127.1:9464",
        "127.0.0.1.5:9464",
        "[::1]:9464",
        "::1:9464",
        "Off",
        "localhost:",
        "0x7f.0.0.1:9464",
    };
    char errstr[512];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct metrics *m = NULL;

        errstr[0] = '\0';
        if (metrics_new(bad[i], &m, errstr, sizeof(errstr)) != CORE_ERR_USAGE) {
            fail_msg("accepted metrics.listen=\"%s\"", bad[i]);
        }
        assert_null(m);
        if (strncmp(errstr, "metrics.listen: ", 16) != 0) {
            fail_msg("\"%s\": errstr \"%s\"", bad[i], errstr);
        }
    }
    assert_int_equal(metrics_new("127.0.0.1:70000", &(struct metrics *){NULL},
                                 errstr, sizeof(errstr)),
                     CORE_ERR_USAGE);
    assert_string_equal(
        errstr, "metrics.listen: the port of \"127.0.0.1:70000\" is not a "
                "number from 0 to 65535; write HOST:PORT with an IPv4 "
                "address or localhost, such as 127.0.0.1:9464, or off");
}

static void test_metrics_new__port_in_use_is_usage_error(void **state)
{
    struct metrics *m = *state;
    struct metrics *m2 = NULL;
    char addr[64], errstr[512] = "", want[512];

    snprintf(addr, sizeof(addr), "127.0.0.1:%u", metrics_port(m));
    assert_int_equal(metrics_new(addr, &m2, errstr, sizeof(errstr)),
                     CORE_ERR_USAGE);
    assert_null(m2);
    snprintf(want, sizeof(want),
             "metrics.listen: cannot listen on %s: Address already in use; "
             "choose another port or set metrics.listen=off",
             addr);
    assert_string_equal(errstr, want);
}

static void test_metrics_new__port_in_use_by_another_socket(void **state)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    struct metrics *m = NULL;
    char addr[64], errstr[512] = "";
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    (void)state;
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(addr, sizeof(addr), "localhost:%u", ntohs(sa.sin_port));
    assert_int_equal(metrics_new(addr, &m, errstr, sizeof(errstr)),
                     CORE_ERR_USAGE);
    assert_null(m);
    assert_non_null(strstr(errstr, "metrics.listen"));
    assert_non_null(strstr(errstr, "Address already in use"));
    close(fd);
}

static void test_metrics_new__localhost_binds_loopback(void **state)
{
    struct metrics *m = NULL;
    struct reply r;
    char errstr[256] = "";

    (void)state;
    assert_int_equal(metrics_new("localhost:0", &m, errstr, sizeof(errstr)),
                     CORE_OK);
    assert_non_null(m);
    assert_true(metrics_port(m) > 0 && metrics_port(m) <= 65535);
    fetch(metrics_port(m), "GET", "/healthz", &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    metrics_destroy(m);
}

/* ---- metrics_destroy --------------------------------------------------- */

static void test_metrics_destroy__null_ok(void **state)
{
    (void)state;
    metrics_destroy(NULL);
}

static void test_metrics_destroy__frees_the_port(void **state)
{
    struct metrics *m = NULL;
    char addr[64], errstr[256] = "";
    unsigned port;

    (void)state;
    assert_int_equal(metrics_new("127.0.0.1:0", &m, errstr, sizeof(errstr)),
                     CORE_OK);
    port = metrics_port(m);
    metrics_destroy(m);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    m = NULL;
    assert_int_equal(metrics_new(addr, &m, errstr, sizeof(errstr)), CORE_OK);
    assert_int_equal(metrics_port(m), port);
    metrics_destroy(m);
}

/* ---- on_request: routing and methods ----------------------------------- */

static void test_on_request__healthz_ok_before_any_snapshot(void **state)
{
    struct reply r;

    fetch(metrics_port(*state), "GET", "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    assert_string_equal(r.content_type, "text/plain; charset=utf-8");
    reply_free(&r);
}

static void test_on_request__unknown_path_404(void **state)
{
    static const char *const paths[] = {"/", "/metric", "/metrics/",
                                        "/healthz/x", "/READYZ"};
    struct reply r;

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        fetch(metrics_port(*state), "GET", paths[i], &r);
        if (r.status != 404) {
            fail_msg("GET %s: %ld", paths[i], r.status);
        }
        assert_string_equal(r.body, "not found\n");
        reply_free(&r);
    }
}

static void test_on_request__query_string_ignored(void **state)
{
    struct reply r;

    fetch(metrics_port(*state), "GET", "/healthz?verbose=1", &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

static void test_on_request__other_methods_405(void **state)
{
    static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH",
                                          "OPTIONS"};
    static const char *const paths[] = {"/metrics", "/healthz", "/readyz",
                                        "/nowhere"};
    struct reply r;

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        for (size_t j = 0; j < sizeof(paths) / sizeof(paths[0]); j++) {
            fetch(metrics_port(*state), methods[i], paths[j], &r);
            if (r.status != 405) {
                fail_msg("%s %s: %ld", methods[i], paths[j], r.status);
            }
            assert_string_equal(r.body, "method not allowed\n");
            assert_string_equal(r.allow, "GET, HEAD");
            reply_free(&r);
        }
    }
}

static void test_on_request__head_like_get_without_body(void **state)
{
    struct reply r;

    fetch(metrics_port(*state), "HEAD", "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    reply_free(&r);
    fetch(metrics_port(*state), "HEAD", "/readyz", &r);
    assert_int_equal(r.status, 503);
    reply_free(&r);
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* Two scrapes on one curl handle share one connection, as Prometheus'. */
static void test_on_request__keeps_connection_alive(void **state)
{
    CURL *h = curl_easy_init();
    char url[128];
    long status = 0, connects = -1;

    assert_non_null(h);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics",
             metrics_port(*state));
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
    assert_int_equal(status, 200);
    assert_int_equal(connects, 0); /* the second reused the first's */
    curl_easy_cleanup(h);
}

/* A body sent with GET is read and dropped; the answer is the usual. */
static void test_on_request__get_with_body_served(void **state)
{
    static char big[256 * 1024];
    CURL *h = curl_easy_init();
    char url[128];
    long status = 0;

    assert_non_null(h);
    memset(big, 'x', sizeof(big));
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/healthz",
             metrics_port(*state));
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, big);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)sizeof(big));
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "GET");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 200);
    curl_easy_cleanup(h);
}

/* ---- serve_readyz ------------------------------------------------------ */

static void test_serve_readyz__503_before_publish(void **state)
{
    struct reply r;

    fetch(metrics_port(*state), "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "not ready: the pipeline has not started\n");
    reply_free(&r);
}

static void test_serve_readyz__503_no_partition_assigned(void **state)
{
    struct metrics_snapshot s;
    struct reply r;

    snapshot_fill(&s);
    s.assigned = 0;
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "not ready: no partition assigned\n");
    reply_free(&r);
}

static void test_serve_readyz__503_moesif_unreachable(void **state)
{
    struct metrics_snapshot s;
    struct reply r;

    snapshot_fill(&s);
    s.moesif_reachable = 0;
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "not ready: Moesif unreachable\n");
    reply_free(&r);
}

static void test_serve_readyz__503_names_both_reasons(void **state)
{
    struct metrics_snapshot s;
    struct reply r;

    snapshot_fill(&s);
    s.assigned = 0;
    s.moesif_reachable = 0;
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(
        r.body, "not ready: no partition assigned; Moesif unreachable\n");
    reply_free(&r);
}

static void test_serve_readyz__200_when_ready(void **state)
{
    struct metrics_snapshot s;
    struct reply r;

    snapshot_fill(&s);
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/readyz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ready\n");
    reply_free(&r);

    /* readiness follows the latest snapshot both ways */
    s.moesif_reachable = 0;
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    reply_free(&r);
    s.moesif_reachable = 1;
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/readyz", &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

/* ---- serve_metrics ----------------------------------------------------- */

/* The body served is the formatter's text of the last snapshot, whole
 * (test_metrics_format.c pins that text), with the 0.0.4 content type. */
static void test_serve_metrics__exact_body(void **state)
{
    struct metrics_snapshot s;
    struct reply r;
    char *want;

    snapshot_fill(&s);
    want = malloc(metrics_format_bound(&s));
    assert_non_null(want);
    assert_true(metrics_format(&s, want, metrics_format_bound(&s)) > 0);
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type,
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(r.body, want);
    free(want);
    reply_free(&r);
}

static void test_serve_metrics__series_values(void **state)
{
    struct metrics_snapshot s;
    struct reply r;

    snapshot_fill(&s);
    s.consumed = 18446744073709551615u; /* UINT64_MAX prints in full */
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_line(r.body, "userpipe_events_consumed_total 18446744073709551615");
    assert_line(r.body, "userpipe_events_accepted_total 1200");
    assert_line(r.body,
                "userpipe_events_rejected_total{code=\"type_conflict\"} 30");
    assert_line(r.body, "userpipe_events_rejected_total{code=\"too_deep\"} 0");
    assert_no_substring(r.body, "code=\"none\"");
    assert_line(r.body, "userpipe_batches_sent_total 12");
    assert_line(r.body, "userpipe_users_sent_total 1195");
    assert_line(r.body, "userpipe_updates_merged_total 640");
    assert_line(r.body, "userpipe_http_responses_total{class=\"2xx\"} 12");
    assert_line(r.body,
                "userpipe_http_responses_total{class=\"transport_error\"} 2");
    assert_line(r.body, "userpipe_retries_total 5");
    assert_line(r.body, "userpipe_requests_in_flight 2");
    assert_line(r.body, "userpipe_schema_keys 42");
    assert_line(r.body, "userpipe_events_waiting_for_schema 7");
    assert_line(r.body, "userpipe_partitions_assigned 3");
    assert_line(r.body, "userpipe_partitions_paused 1");
    assert_line(r.body, "userpipe_consumption_held 1");
    assert_line(r.body, "userpipe_consumption_held_seconds_total 2.25");
    assert_line(r.body, "userpipe_moesif_reachable 1");
    assert_line(r.body, "# TYPE userpipe_events_consumed_total counter");
    assert_line(r.body, "# TYPE userpipe_requests_in_flight gauge");
    assert_line(r.body, "# TYPE userpipe_request_duration_seconds histogram");
    reply_free(&r);
}

static void test_serve_metrics__consumer_lag_per_partition(void **state)
{
    struct metrics_snapshot s;
    struct reply r;

    snapshot_fill(&s);
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/metrics", &r);
    assert_line(r.body,
                "userpipe_consumer_lag{topic=\"users\",partition=\"0\"} 10");
    assert_line(r.body,
                "userpipe_consumer_lag{topic=\"users\",partition=\"2\"} 0");
    assert_line(r.body, "userpipe_consumer_lag{topic=\"orders-v2\","
                        "partition=\"5\"} 123456789012");
    /* lag -1 (unknown) has no series */
    assert_no_substring(r.body, "partition=\"1\"");
    reply_free(&r);
}

static void test_serve_metrics__histogram_cumulative(void **state)
{
    struct metrics_snapshot s;
    struct reply r;
    char line[128];
    uint64_t cum = 0;

    memset(&s, 0, sizeof(s));
    for (int i = 0; i <= SINK_LATENCY_BUCKETS; i++) {
        s.latency_bucket[i] = (uint64_t)i + 1; /* 1, 2, ... 12 */
    }
    s.latency_count = 78; /* 1 + 2 + ... + 12 */
    s.latency_sum_s = 0.1;
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/metrics", &r);
    {
        static const char *const le[SINK_LATENCY_BUCKETS] = {
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
            "0.5",   "1",    "2.5",   "5",    "10"};

        for (int i = 0; i < SINK_LATENCY_BUCKETS; i++) {
            cum += (uint64_t)i + 1;
            snprintf(line, sizeof(line),
                     "userpipe_request_duration_seconds_bucket{le=\"%s\"} "
                     "%" PRIu64,
                     le[i], cum);
            assert_line(r.body, line);
        }
    }
    assert_line(r.body,
                "userpipe_request_duration_seconds_bucket{le=\"+Inf\"} 78");
    assert_line(r.body, "userpipe_request_duration_seconds_count 78");
    assert_line(r.body, "userpipe_request_duration_seconds_sum 0.1");
    reply_free(&r);
}

static void test_serve_metrics__label_values_escaped(void **state)
{
    struct metrics_snapshot s;
    struct reply r;

    memset(&s, 0, sizeof(s));
    snapshot_add_part(&s, "a\"b\\c\nd", 7, 1);
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/metrics", &r);
    assert_line(r.body, "userpipe_consumer_lag{topic=\"a\\\"b\\\\c\\nd\","
                        "partition=\"7\"} 1");
    reply_free(&r);
}

static void test_serve_metrics__zeros_before_publish(void **state)
{
    struct reply r;

    fetch(metrics_port(*state), "GET", "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_line(r.body, "userpipe_events_consumed_total 0");
    assert_line(r.body,
                "userpipe_events_rejected_total{code=\"api_rejected\"} 0");
    assert_line(r.body, "userpipe_moesif_reachable 0");
    assert_no_substring(r.body, "userpipe_consumer_lag{");
    reply_free(&r);
}

/* Every field at its maximum, every topic all escapes: the bound holds. */
static void test_serve_metrics__largest_body_fits(void **state)
{
    static struct metrics_snapshot s;
    struct reply r;
    size_t lines = 0;

    snapshot_largest(&s);
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/metrics", &r);
    assert_int_equal(r.status, 200);
    for (const char *p = r.body;
         (p = strstr(p, "userpipe_consumer_lag{")) != NULL; p++) {
        lines++;
    }
    assert_int_equal(lines, METRICS_MAX_PARTITIONS);
    assert_line(r.body, "userpipe_moesif_reachable 1");
    assert_line(
        r.body,
        "userpipe_request_duration_seconds_sum -2.2250738585072014e-308");
    reply_free(&r);
}

/* A topic that fills its array without a NUL is cut at the array. */
static void test_serve_metrics__unterminated_topic(void **state)
{
    struct metrics_snapshot s;
    struct reply r;
    char line[512];

    memset(&s, 0, sizeof(s));
    s.nparts = 1;
    memset(s.parts[0].topic, 't', sizeof(s.parts[0].topic));
    s.parts[0].partition = 3;
    s.parts[0].lag = 9;
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/metrics", &r);
    snprintf(line, sizeof(line),
             "userpipe_consumer_lag{topic=\"%.*s\",partition=\"3\"} 9",
             (int)sizeof(s.parts[0].topic), s.parts[0].topic);
    assert_line(r.body, line);
    reply_free(&r);
}

/* nparts above the array is clamped, not read past its end. */
static void test_metrics_publish__clamps_nparts(void **state)
{
    static struct metrics_snapshot s;
    struct reply r;
    size_t lines = 0;

    memset(&s, 0, sizeof(s));
    for (int i = 0; i < METRICS_MAX_PARTITIONS; i++) {
        snapshot_add_part(&s, "t", i, 1);
    }
    s.nparts = METRICS_MAX_PARTITIONS + 1000;
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/metrics", &r);
    for (const char *p = r.body;
         (p = strstr(p, "userpipe_consumer_lag{")) != NULL; p++) {
        lines++;
    }
    assert_int_equal(lines, METRICS_MAX_PARTITIONS);
    reply_free(&r);
}

static void test_metrics_publish__latest_snapshot_wins(void **state)
{
    struct metrics_snapshot s;
    struct reply r;

    snapshot_fill(&s);
    metrics_publish(*state, &s);
    s.consumed = 99;
    s.nparts = 1;
    metrics_publish(*state, &s);
    fetch(metrics_port(*state), "GET", "/metrics", &r);
    assert_line(r.body, "userpipe_events_consumed_total 99");
    assert_no_substring(r.body, "partition=\"2\"");
    reply_free(&r);
}

/* The publisher: counts up, keeping consumed == accepted in each one. */
struct publisher {
    struct metrics *m;
    pthread_mutex_t mu; /* guards stop and published */
    int stop;
    uint64_t published;
};

static void *publish_loop(void *arg)
{
    struct publisher *pub = arg;
    static struct metrics_snapshot s;
    uint64_t i = 0;
    int stop = 0;

    memset(&s, 0, sizeof(s));
    while (!stop) {
        i++;
        s.consumed = i;
        s.accepted = i;
        s.nparts = (size_t)(i % 4);
        for (size_t k = 0; k < s.nparts; k++) {
            snprintf(s.parts[k].topic, sizeof(s.parts[k].topic), "t");
            s.parts[k].partition = (int32_t)k;
            s.parts[k].lag = (int64_t)i;
        }
        metrics_publish(pub->m, &s);
        pthread_mutex_lock(&pub->mu);
        stop = pub->stop;
        pub->published = i;
        pthread_mutex_unlock(&pub->mu);
    }
    return NULL;
}

/* Scrapes while another thread publishes: every body is one snapshot. */
static void test_metrics_publish__scrape_sees_whole_snapshots(void **state)
{
    struct publisher pub = {.m = *state};
    pthread_t t;
    struct reply r;

    pthread_mutex_init(&pub.mu, NULL);
    assert_int_equal(pthread_create(&t, NULL, publish_loop, &pub), 0);
    for (int n = 0; n < 50; n++) {
        unsigned long long consumed, accepted;
        const char *p;

        fetch(metrics_port(*state), "GET", "/metrics", &r);
        assert_int_equal(r.status, 200);
        p = strstr(r.body, "\nuserpipe_events_consumed_total ");
        assert_non_null(p);
        consumed = strtoull(p + 32, NULL, 10);
        p = strstr(r.body, "\nuserpipe_events_accepted_total ");
        assert_non_null(p);
        accepted = strtoull(p + 32, NULL, 10);
        assert_int_equal(consumed, accepted);
        /* each lag line carries the snapshot's number too */
        for (p = r.body; (p = strstr(p, "userpipe_consumer_lag{")) != NULL;
             p++) {
            const char *v = strchr(p, '}');

            assert_non_null(v);
            assert_int_equal(strtoull(v + 2, NULL, 10), consumed);
        }
        reply_free(&r);
    }
    pthread_mutex_lock(&pub.mu);
    pub.stop = 1;
    pthread_mutex_unlock(&pub.mu);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(pub.published > 0);
    pthread_mutex_destroy(&pub.mu);
}

#define SERVED(f) cmocka_unit_test_setup_teardown(f, start, stop)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_new__off_returns_null),
        cmocka_unit_test(test_metrics_new__bad_listen_is_usage_error),
        SERVED(test_metrics_new__port_in_use_is_usage_error),
        cmocka_unit_test(test_metrics_new__port_in_use_by_another_socket),
        cmocka_unit_test(test_metrics_new__localhost_binds_loopback),
        cmocka_unit_test(test_metrics_destroy__null_ok),
        cmocka_unit_test(test_metrics_destroy__frees_the_port),
        SERVED(test_on_request__healthz_ok_before_any_snapshot),
        SERVED(test_on_request__unknown_path_404),
        SERVED(test_on_request__query_string_ignored),
        SERVED(test_on_request__other_methods_405),
        SERVED(test_on_request__head_like_get_without_body),
        SERVED(test_on_request__keeps_connection_alive),
        SERVED(test_on_request__get_with_body_served),
        SERVED(test_serve_readyz__503_before_publish),
        SERVED(test_serve_readyz__503_no_partition_assigned),
        SERVED(test_serve_readyz__503_moesif_unreachable),
        SERVED(test_serve_readyz__503_names_both_reasons),
        SERVED(test_serve_readyz__200_when_ready),
        SERVED(test_serve_metrics__exact_body),
        SERVED(test_serve_metrics__series_values),
        SERVED(test_serve_metrics__consumer_lag_per_partition),
        SERVED(test_serve_metrics__histogram_cumulative),
        SERVED(test_serve_metrics__label_values_escaped),
        SERVED(test_serve_metrics__zeros_before_publish),
        SERVED(test_serve_metrics__largest_body_fits),
        SERVED(test_serve_metrics__unterminated_topic),
        SERVED(test_metrics_publish__clamps_nparts),
        SERVED(test_metrics_publish__latest_snapshot_wins),
        SERVED(test_metrics_publish__scrape_sees_whole_snapshots),
    };
    int failed;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    failed = cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
