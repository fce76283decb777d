/*
 * metrics_snapshots.c: the snapshots of metrics_snapshots.h, shared by the
 * socket tests of cmd/metrics.c and the text tests of
 * cmd/metrics_format.c.
 */
#include "metrics_snapshots.h"
#include "../../core/core.h"

#include <stdio.h>
#include <string.h>

void snapshot_add_part(struct metrics_snapshot *s, const char *topic,
                       int32_t partition, int64_t lag)
{
    struct metrics_partition *pt = &s->parts[s->nparts++];

    snprintf(pt->topic, sizeof(pt->topic), "%s", topic);
    pt->partition = partition;
    pt->lag = lag;
}

void snapshot_fill(struct metrics_snapshot *s)
{
    memset(s, 0, sizeof(*s));
    s->consumed = 1234;
    s->accepted = 1200;
    s->rejected_by_code[CORE_REJECT_TYPE_CONFLICT] = 30;
    s->rejected_by_code[CORE_REJECT_INVALID_JSON] = 4;
    s->batches_sent = 12;
    s->users_sent = 1195;
    s->merged = 640;
    s->kept_apart[0] = 17;
    s->kept_apart[1] = 2;
    s->kept_apart[3] = 1;
    s->responses[0] = 2; /* transport errors */
    s->responses[2] = 12;
    s->responses[4] = 1;
    s->responses[5] = 3;
    s->retries = 5;
    s->in_flight = 2;
    s->latency_bucket[0] = 1;  /* <= 5 ms */
    s->latency_bucket[3] = 4;  /* <= 50 ms */
    s->latency_bucket[7] = 6;  /* <= 1 s */
    s->latency_bucket[11] = 1; /* above 10 s */
    s->latency_sum_s = 18.75;
    s->latency_count = 12;
    s->schema_keys = 42;
    s->parked = 7;
    s->parked_oldest_s = 61.5;
    s->rejected_by_code[CORE_REJECT_TOMBSTONE] = 2;
    s->rejected_by_code[CORE_REJECT_CLAIM_TIMEOUT] = 1;
    s->assigned = 3;
    s->paused = 1;
    s->held = 1;
    s->held_s = 2.25;
    snapshot_add_part(s, "users", 0, 10);
    snapshot_add_part(s, "users", 1, -1);
    snapshot_add_part(s, "users", 2, 0);
    snapshot_add_part(s, "orders-v2", 5, 123456789012);
    snapshot_add_part(s, "we\"ird\\to\npic\t\xc3\xbc", 6, 0);
    s->moesif_reachable = 1;
}

void snapshot_largest(struct metrics_snapshot *s)
{
    memset(s, 0xff, sizeof(*s));
    s->latency_sum_s = -2.2250738585072014e-308;
    s->held_s = -2.2250738585072014e-308;
    s->parked_oldest_s = -2.2250738585072014e-308;
    s->nparts = METRICS_MAX_PARTITIONS;
    for (size_t i = 0; i < s->nparts; i++) {
        /* each of these two becomes two bytes */
        memset(s->parts[i].topic, i % 2 ? '"' : '\n',
               sizeof(s->parts[i].topic) - 1);
        s->parts[i].topic[sizeof(s->parts[i].topic) - 1] = '\0';
        s->parts[i].partition = INT32_MIN;
        s->parts[i].lag = INT64_MAX;
    }
}
