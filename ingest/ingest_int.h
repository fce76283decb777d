/*
 * ingest_int.h: what the files of ingest/ share.  Never included from
 * outside ingest/ and tests/ingest/.
 *
 *   ingest.c       the consumer: polling, rebalances, pausing, committing;
 *                  it wires the files below
 *   watermark.c    tickets and the per-partition watermark of settled
 *                  offsets, Kafka-free (watermark.h)
 *   end_offsets.c  the end offset of each partition at its assignment and
 *                  whether it has been reached (--exit-at-end, caught up)
 */
#ifndef INGEST_INT_H
#define INGEST_INT_H

#include "ingest.h"
#include "watermark.h"

#include <librdkafka/rdkafka.h>
#include <stdint.h>

/* ---- end_offsets.c ---- */

/* A partition's end: the offset it had when assigned, and whether it has
 * been consumed up to it.  The ingest_end_* functions are Kafka-free. */
struct ingest_end {
    int64_t end_at_start; /* high watermark when assigned, -1 unknown */
    int reached_end;
    int end_paused; /* --exit-at-end: paused for good once at its end */
};

/* An unknown end, not reached. */
void ingest_end_init(struct ingest_end *end);

/* The partition's offsets at its assignment: its end is hi, and it is at
 * its end already when empty (lo == hi). */
void ingest_end_known(struct ingest_end *end, int64_t lo, int64_t hi);

/* Whether the end is known and offset is at or past it. */
int ingest_end_past(const struct ingest_end *end, int64_t offset);

/* Whether an end-of-partition event at offset reaches the end: always
 * when the end is unknown. */
int ingest_end_eof(const struct ingest_end *end, int64_t offset);

/* Marks the end reached; returns 1 when the partition must be paused now
 * (with exit_at_end, the first time), else 0. */
int ingest_end_reach(struct ingest_end *end, int exit_at_end);

/* Messages left to the end, given the offset after the last consumed
 * (next_offset, -1 none) and the partition's low watermark (lo, -1
 * unknown); -1 when unknown. */
int64_t ingest_end_remaining(const struct ingest_end *end, int64_t next_offset,
                             int64_t lo);

/*
 * Reads the end offset of each partition of parts into ends[i] (aligned
 * with parts->elems; NULL entries are skipped), with
 * ingest_end_known.  Blocks: up to 10 s per ListOffsets request, then
 * partition by partition within 10 s in all.  A partition
 * whose end stays unknown is logged and left unknown.
 */
void ingest_read_ends(rd_kafka_t *rk,
                      const rd_kafka_topic_partition_list_t *parts,
                      struct ingest_end *const *ends);

#endif
