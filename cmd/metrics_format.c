/*
 * metrics_format.c: the Prometheus text format 0.0.4 of a metrics
 * snapshot (see metrics.h): pure formatting into a buffer the caller
 * owns, with no socket, no thread and no lock, so tests pin the exact text
 * without a server (tests/cmd/test_metrics_format.c).
 *
 * It is apart from metrics.c, which serves this text over HTTP, because
 * the format is the contract with Prometheus and its dashboards and is
 * best tested as a function of the snapshot alone.  The invariant not to
 * break: metrics_format_bound() is an upper bound of every text
 * metrics_format() writes, computed from the snapshot before formatting
 * starts, so a scrape allocates once and the text never grows past it.
 */
#include "metrics.h"
#include "../core/core.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a bounded text buffer --------------------------------------------- */

struct body {
    char *p;
    size_t len, cap;
    int full; /* something did not fit: the body is unusable */
};

static void body_init(struct body *b, char *buf, size_t cap)
{
    b->p = buf;
    b->len = 0;
    b->cap = cap;
    b->full = 0;
    b->p[0] = '\0';
}

static void body_printf(struct body *b, const char *fmt, ...) CORE_PRINTF(2, 3);

static void body_printf(struct body *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->full) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->full = 1;
        b->p[b->len] = '\0';
        return;
    }
    b->len += (size_t)n;
}

static void body_putc(struct body *b, char c)
{
    if (b->full) {
        return;
    }
    if (b->cap - b->len < 2) {
        b->full = 1;
        return;
    }
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

/*
 * A label value, escaped as the text format requires: backslash, double
 * quote and line feed become \\, \" and \n.  At most twice len bytes.
 */
static void body_label_value(struct body *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' || s[i] == '"') {
            body_putc(b, '\\');
            body_putc(b, s[i]);
        } else if (s[i] == '\n') {
            body_putc(b, '\\');
            body_putc(b, 'n');
        } else {
            body_putc(b, s[i]);
        }
    }
}

/* ---- /metrics ---------------------------------------------------------- */

/*
 * The largest body without per-partition lines: 18 families of HELP and
 * TYPE lines (under 130 bytes each), 10 reject series, 6 response series,
 * 4 kept-apart series and 14 histogram lines (under 90 bytes each, values
 * of up to 20 digits).  That is under 6 KiB; tests/cmd/test_metrics_format.c
 * checks it with every field at its maximum.
 */
#define BODY_FIXED_MAX 8192
/* One consumer_lag line: the fixed text, a topic that is all escapes, an
 * int32 partition and an int64 lag. */
#define BODY_PART_MAX                                                          \
    (sizeof("userpipe_consumer_lag{topic=\"\",partition=\"\"} \n") +           \
     2 * (sizeof(((struct metrics_partition *)0)->topic) - 1) + 11 + 20)

size_t metrics_format_bound(const struct metrics_snapshot *snap)
{
    assert(snap->nparts <= METRICS_MAX_PARTITIONS);
    return BODY_FIXED_MAX + snap->nparts * BODY_PART_MAX;
}

static void family(struct body *b, const char *name, const char *type,
                   const char *help)
{
    body_printf(b, "# HELP userpipe_%s %s\n# TYPE userpipe_%s %s\n", name, help,
                name, type);
}

/* A family of one sample without labels: its HELP, TYPE and value. */
static void family_u64(struct body *b, const char *name, const char *type,
                       const char *help, uint64_t v)
{
    family(b, name, type, help);
    body_printf(b, "userpipe_%s %" PRIu64 "\n", name, v);
}

/*
 * A float the way Prometheus' own clients write it: the shortest text
 * that reads back as the same double (Go's FormatFloat(v, 'g', -1, 64)).
 * Assumes the C locale's decimal point; userpipe never calls setlocale.
 */
static void format_double(char *out, size_t out_size, double v)
{
    if (isnan(v)) {
        snprintf(out, out_size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, out_size, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, out_size, "%.*g", prec, v);
        if (strtod(out, NULL) == v) {
            return;
        }
    }
}

/* A bucket bound in seconds from milliseconds, exactly: 2500 -> "2.5". */
static void format_le(char *out, size_t out_size, unsigned ms)
{
    unsigned frac = ms % 1000;
    int digits = 3;

    if (frac == 0) {
        snprintf(out, out_size, "%u", ms / 1000);
        return;
    }
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    snprintf(out, out_size, "%u.%0*u", ms / 1000, digits, frac);
}

static void format_histogram(struct body *b,
                             const struct metrics_snapshot *snap)
{
    static const char name[] = "userpipe_request_duration_seconds";
    uint64_t cum = 0;
    char num[40];

    family(b, "request_duration_seconds", "histogram",
           "Latency of Moesif requests, from send to answer or error.");
    for (int i = 0; i < SINK_LATENCY_BUCKETS; i++) {
        cum += snap->latency_bucket[i];
        format_le(num, sizeof(num), sink_latency_le_ms[i]);
        body_printf(b, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, num, cum);
    }
    cum += snap->latency_bucket[SINK_LATENCY_BUCKETS];
    body_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
    format_double(num, sizeof(num), snap->latency_sum_s);
    body_printf(b, "%s_sum %s\n", name, num);
    body_printf(b, "%s_count %" PRIu64 "\n", name, snap->latency_count);
}

static void format_metrics(struct body *b, const struct metrics_snapshot *snap)
{
    /* responses[] index: 0 transport errors, 1..5 the status classes */
    static const char *const classes[6] = {
        "transport_error", "1xx", "2xx", "3xx", "4xx", "5xx"};
    char num[40];

    family_u64(b, "events_consumed_total", "counter",
               "Messages consumed from the source topics.", snap->consumed);
    family_u64(b, "events_accepted_total", "counter",
               "Events the transform accepted.", snap->accepted);
    family(b, "events_rejected_total", "counter",
           "Events sent to the dead-letter topic, by reject code.");
    for (int c = 1; c < CORE_REJECT__COUNT; c++) {
        body_printf(b,
                    "userpipe_events_rejected_total{code=\"%s\"} %" PRIu64 "\n",
                    core_reject_name((enum core_reject_code)c),
                    snap->rejected_by_code[c]);
    }
    family_u64(b, "batches_sent_total", "counter", "Batches Moesif accepted.",
               snap->batches_sent);
    family_u64(b, "users_sent_total", "counter",
               "User updates Moesif accepted.", snap->users_sent);
    family_u64(b, "updates_merged_total", "counter",
               "User updates merged into the same user's update waiting "
               "unsent, one object sent for both.",
               snap->merged);
    family(b, "updates_kept_apart_total", "counter",
           "User updates sent apart although one of the same user waited "
           "unsent, by reason.");
    for (int i = 0; i < 4; i++) {
        static const char *const reasons[4] = {"token", "shape", "size",
                                               "other"};
        body_printf(
            b, "userpipe_updates_kept_apart_total{reason=\"%s\"} %" PRIu64 "\n",
            reasons[i], snap->kept_apart[i]);
    }
    family(b, "http_responses_total", "counter",
           "Moesif responses by status class; transport_error when no "
           "answer came.");
    for (int i = 1; i <= 5; i++) {
        body_printf(b,
                    "userpipe_http_responses_total{class=\"%s\"} %" PRIu64 "\n",
                    classes[i], snap->responses[i]);
    }
    body_printf(b, "userpipe_http_responses_total{class=\"%s\"} %" PRIu64 "\n",
                classes[0], snap->responses[0]);
    family_u64(b, "retries_total", "counter", "Moesif requests retried.",
               snap->retries);
    family_u64(b, "requests_in_flight", "gauge", "Moesif requests in flight.",
               snap->in_flight);
    format_histogram(b, snap);
    family_u64(b, "schema_keys", "gauge", "Keys known in the shared schema.",
               snap->schema_keys);
    family_u64(b, "events_waiting_for_schema", "gauge",
               "Events parked until their schema claims are read back.",
               snap->parked);
    format_double(num, sizeof(num), snap->parked_oldest_s);
    family(b, "events_waiting_for_schema_oldest_seconds", "gauge",
           "How long the oldest event parked for schema claims has waited "
           "(0: none); its keys are claimed again past "
           "schema.claim_timeout_ms, it is rejected as claim_timeout past "
           "twice that.");
    body_printf(b, "userpipe_events_waiting_for_schema_oldest_seconds %s\n",
                num);
    family_u64(b, "partitions_assigned", "gauge",
               "Partitions assigned to this consumer.", snap->assigned);
    family_u64(b, "partitions_paused", "gauge",
               "Assigned partitions paused for back-pressure.", snap->paused);
    family_u64(b, "consumption_held", "gauge",
               "1 while consumption is held back: the sink is over "
               "sink.max_pending_bytes, 100000 events wait for schema claims, "
               "or the dead-letter producer has 10000 records or 16 MiB "
               "unacknowledged (the partitions are paused after 1 s).",
               snap->held ? 1 : 0);
    format_double(num, sizeof(num), snap->held_s);
    family(b, "consumption_held_seconds_total", "counter",
           "Seconds consumption was held back, in all.");
    body_printf(b, "userpipe_consumption_held_seconds_total %s\n", num);
    family(b, "consumer_lag", "gauge",
           "Messages between the next offset to consume and the end of the "
           "partition.");
    for (size_t i = 0; i < snap->nparts; i++) {
        const struct metrics_partition *pt = &snap->parts[i];

        if (pt->lag < 0) {
            continue; /* unknown until the first watermark query */
        }
        body_printf(b, "userpipe_consumer_lag{topic=\"");
        body_label_value(b, pt->topic, strnlen(pt->topic, sizeof(pt->topic)));
        body_printf(b, "\",partition=\"%" PRId32 "\"} %" PRId64 "\n",
                    pt->partition, pt->lag);
    }
    family_u64(b, "moesif_reachable", "gauge",
               "1 when the last Moesif request got an HTTP answer, else 0.",
               snap->moesif_reachable ? 1 : 0);
}

size_t metrics_format(const struct metrics_snapshot *snap, char *buf,
                      size_t buf_size)
{
    struct body b;

    assert(buf_size > 0);
    assert(snap->nparts <= METRICS_MAX_PARTITIONS);
    body_init(&b, buf, buf_size);
    format_metrics(&b, snap);
    return b.full ? 0 : b.len;
}
