/*
 * metrics_snapshots.h: the snapshots the metrics tests share
 * (test_metrics.c serves them, test_metrics_format.c pins their text), in
 * metrics_snapshots.c, linked into both.  One definition each, so the text
 * pinned for a snapshot and the snapshot served are the same.
 */
#ifndef TESTS_CMD_METRICS_SNAPSHOTS_H
#define TESTS_CMD_METRICS_SNAPSHOTS_H

#include "../../cmd/metrics.h"

#include <stdint.h>

/* Appends a partition (topic copied, cut to the array) to s->parts. */
void snapshot_add_part(struct metrics_snapshot *s, const char *topic,
                       int32_t partition, int64_t lag);

/* A value in every field; ready (a partition assigned, Moesif reachable);
 * one partition's lag unknown, one topic that needs every escape. */
void snapshot_fill(struct metrics_snapshot *s);

/* Every field at its maximum, METRICS_MAX_PARTITIONS partitions whose
 * topics are all escapes and whose lag is known: the longest text. */
void snapshot_largest(struct metrics_snapshot *s);

#endif
