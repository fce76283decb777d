/*
 * test_metrics_format.c: tests of cmd/metrics_format.c, the Prometheus
 * text of a snapshot, without a socket or a thread: the exact text of a
 * small snapshot (every family in order, the counters, the latency
 * histogram's cumulative buckets and +Inf, per-partition lag lines, an
 * unknown lag left out, escaped label values), floats written as the
 * shortest text that reads back, a buffer too small, and
 * metrics_format_bound() against the largest snapshot.  test_metrics.c
 * checks that the server serves this same text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../cmd/metrics.h"
#include "../../core/core.h"
#include "metrics_snapshots.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char fill_text_head[] =
    "# HELP userpipe_events_consumed_total Messages consumed from the source "
    "topics.\n"
    "# TYPE userpipe_events_consumed_total counter\n"
    "userpipe_events_consumed_total 1234\n"
    "# HELP userpipe_events_accepted_total Events the transform accepted.\n"
    "# TYPE userpipe_events_accepted_total counter\n"
    "userpipe_events_accepted_total 1200\n"
    "# HELP userpipe_events_rejected_total Events sent to the dead-letter "
    "topic, by reject code.\n"
    "# TYPE userpipe_events_rejected_total counter\n"
    "userpipe_events_rejected_total{code=\"invalid_json\"} 4\n"
    "userpipe_events_rejected_total{code=\"not_an_object\"} 0\n"
    "userpipe_events_rejected_total{code=\"missing_user_id\"} 0\n"
    "userpipe_events_rejected_total{code=\"invalid_field_type\"} 0\n"
    "userpipe_events_rejected_total{code=\"unknown_field\"} 0\n"
    "userpipe_events_rejected_total{code=\"type_conflict\"} 30\n"
    "userpipe_events_rejected_total{code=\"duplicate_key\"} 0\n"
    "userpipe_events_rejected_total{code=\"too_large\"} 0\n"
    "userpipe_events_rejected_total{code=\"too_deep\"} 0\n"
    "userpipe_events_rejected_total{code=\"api_rejected\"} 0\n"
    "userpipe_events_rejected_total{code=\"empty_message\"} 0\n"
    "userpipe_events_rejected_total{code=\"tombstone\"} 2\n"
    "userpipe_events_rejected_total{code=\"invalid_key\"} 0\n"
    "userpipe_events_rejected_total{code=\"schema_full\"} 0\n"
    "userpipe_events_rejected_total{code=\"claim_timeout\"} 1\n"
    "# HELP userpipe_batches_sent_total Batches Moesif accepted.\n"
    "# TYPE userpipe_batches_sent_total counter\n"
    "userpipe_batches_sent_total 12\n"
    "# HELP userpipe_users_sent_total User updates Moesif accepted.\n"
    "# TYPE userpipe_users_sent_total counter\n"
    "userpipe_users_sent_total 1195\n"
    "# HELP userpipe_updates_merged_total User updates merged into the same "
    "user's update waiting unsent, one object sent for both.\n"
    "# TYPE userpipe_updates_merged_total counter\n"
    "userpipe_updates_merged_total 640\n"
    "# HELP userpipe_updates_kept_apart_total User updates sent apart "
    "although one of the same user waited unsent, by reason.\n"
    "# TYPE userpipe_updates_kept_apart_total counter\n"
    "userpipe_updates_kept_apart_total{reason=\"token\"} 17\n"
    "userpipe_updates_kept_apart_total{reason=\"shape\"} 2\n"
    "userpipe_updates_kept_apart_total{reason=\"size\"} 0\n"
    "userpipe_updates_kept_apart_total{reason=\"other\"} 1\n"
    "# HELP userpipe_http_responses_total Moesif responses by status class; "
    "transport_error when no answer came.\n"
    "# TYPE userpipe_http_responses_total counter\n"
    "userpipe_http_responses_total{class=\"1xx\"} 0\n"
    "userpipe_http_responses_total{class=\"2xx\"} 12\n"
    "userpipe_http_responses_total{class=\"3xx\"} 0\n"
    "userpipe_http_responses_total{class=\"4xx\"} 1\n"
    "userpipe_http_responses_total{class=\"5xx\"} 3\n"
    "userpipe_http_responses_total{class=\"transport_error\"} 2\n"
    "# HELP userpipe_retries_total Moesif requests retried.\n"
    "# TYPE userpipe_retries_total counter\n"
    "userpipe_retries_total 5\n"
    "# HELP userpipe_requests_in_flight Moesif requests in flight.\n"
    "# TYPE userpipe_requests_in_flight gauge\n"
    "userpipe_requests_in_flight 2\n"
    "# HELP userpipe_request_duration_seconds Latency of Moesif requests, "
    "from send to answer or error.\n"
    "# TYPE userpipe_request_duration_seconds histogram\n"
    "userpipe_request_duration_seconds_bucket{le=\"0.005\"} 1\n"
    "userpipe_request_duration_seconds_bucket{le=\"0.01\"} 1\n"
    "userpipe_request_duration_seconds_bucket{le=\"0.025\"} 1\n"
    "userpipe_request_duration_seconds_bucket{le=\"0.05\"} 5\n"
    "userpipe_request_duration_seconds_bucket{le=\"0.1\"} 5\n"
    "userpipe_request_duration_seconds_bucket{le=\"0.25\"} 5\n"
    "userpipe_request_duration_seconds_bucket{le=\"0.5\"} 5\n"
    "userpipe_request_duration_seconds_bucket{le=\"1\"} 11\n"
    "userpipe_request_duration_seconds_bucket{le=\"2.5\"} 11\n"
    "userpipe_request_duration_seconds_bucket{le=\"5\"} 11\n"
    "userpipe_request_duration_seconds_bucket{le=\"10\"} 11\n"
    "userpipe_request_duration_seconds_bucket{le=\"+Inf\"} 12\n"
    "userpipe_request_duration_seconds_sum 18.75\n"
    "userpipe_request_duration_seconds_count 12\n";

/* in two parts: C11 promises string literals of 4095 bytes, no more */
static const char fill_text_tail[] =
    "# HELP userpipe_schema_keys Keys known in the shared schema.\n"
    "# TYPE userpipe_schema_keys gauge\n"
    "userpipe_schema_keys 42\n"
    "# HELP userpipe_events_waiting_for_schema Events parked until their "
    "schema claims are read back.\n"
    "# TYPE userpipe_events_waiting_for_schema gauge\n"
    "userpipe_events_waiting_for_schema 7\n"
    "# HELP userpipe_events_waiting_for_schema_oldest_seconds How long the "
    "oldest event parked for schema claims has waited (0: none); its keys "
    "are claimed again past schema.claim_timeout_ms, it is rejected as "
    "claim_timeout past twice that.\n"
    "# TYPE userpipe_events_waiting_for_schema_oldest_seconds gauge\n"
    "userpipe_events_waiting_for_schema_oldest_seconds 61.5\n"
    "# HELP userpipe_partitions_assigned Partitions assigned to this "
    "consumer.\n"
    "# TYPE userpipe_partitions_assigned gauge\n"
    "userpipe_partitions_assigned 3\n"
    "# HELP userpipe_partitions_paused Assigned partitions paused for "
    "back-pressure.\n"
    "# TYPE userpipe_partitions_paused gauge\n"
    "userpipe_partitions_paused 1\n"
    "# HELP userpipe_consumption_held 1 while consumption is held back: the "
    "sink is over sink.max_pending_bytes, 100000 events wait for schema "
    "claims, or the dead-letter producer has 10000 records or 16 MiB "
    "unacknowledged (the partitions are paused after 1 s).\n"
    "# TYPE userpipe_consumption_held gauge\n"
    "userpipe_consumption_held 1\n"
    "# HELP userpipe_consumption_held_seconds_total Seconds consumption was "
    "held back, in all.\n"
    "# TYPE userpipe_consumption_held_seconds_total counter\n"
    "userpipe_consumption_held_seconds_total 2.25\n"
    "# HELP userpipe_consumer_lag Messages between the next offset to "
    "consume and the end of the partition.\n"
    "# TYPE userpipe_consumer_lag gauge\n"
    "userpipe_consumer_lag{topic=\"users\",partition=\"0\"} 10\n"
    "userpipe_consumer_lag{topic=\"users\",partition=\"2\"} 0\n"
    "userpipe_consumer_lag{topic=\"orders-v2\",partition=\"5\"} "
    "123456789012\n"
    "userpipe_consumer_lag{topic=\"we\\\"ird\\\\to\\npic\t\xc3\xbc\","
    "partition=\"6\"} 0\n"
    "# HELP userpipe_moesif_reachable 1 when the last Moesif request got an "
    "HTTP answer, else 0.\n"
    "# TYPE userpipe_moesif_reachable gauge\n"
    "userpipe_moesif_reachable 1\n";

/* Far above the largest text (about 100 KiB, see the bound test). */
#define TEXT_MAX (1024 * 1024)

/* snap's text, formatted into a buffer of TEXT_MAX; free it. */
static char *format_all(const struct metrics_snapshot *snap, size_t *len)
{
    char *text = malloc(TEXT_MAX);

    assert_non_null(text);
    *len = metrics_format(snap, text, TEXT_MAX);
    assert_true(*len > 0);
    assert_int_equal(strlen(text), *len);
    return text;
}

static void test_metrics_format__exact_text(void **state)
{
    struct metrics_snapshot s;
    size_t len, head = strlen(fill_text_head);
    char *text;

    (void)state;
    snapshot_fill(&s);
    text = format_all(&s, &len);
    assert_int_equal(len, head + strlen(fill_text_tail));
    assert_memory_equal(text, fill_text_head, head);
    assert_string_equal(text + head, fill_text_tail);
    free(text);
}

/* The value of the series `name` (a whole line "name VALUE"), copied. */
static void value_of(const char *text, const char *name, char *out,
                     size_t out_size)
{
    size_t n = strlen(name);

    for (const char *p = text; (p = strstr(p, name)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') {
            const char *v = p + n + 1;

            snprintf(out, out_size, "%.*s", (int)strcspn(v, "\n"), v);
            return;
        }
    }
    fail_msg("no series %s in:\n%s", name, text);
}

/* Floats as Prometheus' Go clients write them (FormatFloat 'g', -1). */
static void test_metrics_format__floats_shortest_round_trip(void **state)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.0, "0"},
        {0.1, "0.1"},
        {2.25, "2.25"},
        {1.0 / 3.0, "0.3333333333333333"},
        {123456789.0, "123456789"},
        {1e21, "1e+21"},
        {1e-7, "1e-07"},
        {-2.2250738585072014e-308, "-2.2250738585072014e-308"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    struct metrics_snapshot s;
    char got[64];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *text;

        memset(&s, 0, sizeof(s));
        s.latency_sum_s = cases[i].v;
        s.held_s = cases[i].v;
        text = format_all(&s, &len);
        value_of(text, "userpipe_request_duration_seconds_sum", got,
                 sizeof(got));
        assert_string_equal(got, cases[i].text);
        value_of(text, "userpipe_consumption_held_seconds_total", got,
                 sizeof(got));
        assert_string_equal(got, cases[i].text);
        free(text);
    }
}

/* A buffer one byte short of the text (its NUL) or shorter gives 0 and a
 * NUL-terminated prefix; one byte more gives the whole text. */
static void test_metrics_format__too_small_buffer_returns_0(void **state)
{
    struct metrics_snapshot s;
    size_t len;
    char *whole, *buf;

    (void)state;
    snapshot_fill(&s);
    whole = format_all(&s, &len);
    buf = malloc(len + 1);
    assert_non_null(buf);
    for (size_t size = 1; size <= len; size += size < 64 ? 1 : 97) {
        memset(buf, 'x', len + 1);
        if (metrics_format(&s, buf, size) != 0) {
            fail_msg("fit in %zu bytes, needs %zu", size, len + 1);
        }
        assert_true(strlen(buf) < size);
        assert_memory_equal(buf, whole, strlen(buf));
    }
    memset(buf, 'x', len + 1);
    assert_int_equal(metrics_format(&s, buf, len), 0);
    assert_int_equal(metrics_format(&s, buf, len + 1), len);
    assert_string_equal(buf, whole);
    free(buf);
    free(whole);
}

/* Every field at its maximum, every topic all escapes, every partition's
 * lag known: the text fits in metrics_format_bound() bytes exactly
 * allocated (as a scrape allocates), and so does the empty snapshot's. */
static void test_metrics_format_bound__largest_snapshot_fits(void **state)
{
    static struct metrics_snapshot s;
    size_t bound, len, lines = 0;
    char *buf;

    (void)state;
    memset(&s, 0, sizeof(s));
    bound = metrics_format_bound(&s);
    buf = malloc(bound);
    assert_non_null(buf);
    assert_true(metrics_format(&s, buf, bound) > 0);
    free(buf);

    snapshot_largest(&s);
    bound = metrics_format_bound(&s);
    buf = malloc(bound);
    assert_non_null(buf);
    len = metrics_format(&s, buf, bound);
    assert_true(len > 0 && len < bound);
    for (const char *p = buf;
         (p = strstr(p, "\nuserpipe_consumer_lag{")) != NULL; p++) {
        lines++;
    }
    assert_int_equal(lines, METRICS_MAX_PARTITIONS);
    assert_non_null(strstr(buf, "userpipe_events_consumed_total "
                                "18446744073709551615\n"));
    assert_non_null(strstr(buf, ",partition=\"-2147483648\"} "
                                "9223372036854775807\n"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_format__exact_text),
        cmocka_unit_test(test_metrics_format__floats_shortest_round_trip),
        cmocka_unit_test(test_metrics_format__too_small_buffer_returns_0),
        cmocka_unit_test(test_metrics_format_bound__largest_snapshot_fits),
    };

    return cmocka_run_group_tests_name("metrics_format", tests, NULL, NULL);
}
