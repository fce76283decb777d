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
 *   refill.c       when to wake the broker threads after a full queue,
 *                  whom, and the thread that does it
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

/* ---- refill.c ---- */

struct ingest_refill;

/* 1 when the linked librdkafka (2.2.0 or later) has fetch.queue.backoff.ms:
 * ingest_new then sets it and starts no refill thread; 0 with 2.0.2/2.1. */
int ingest_fetch_backoff_supported(void);

/* Starts the wake-up thread for rk (which must outlive it).  Never fails:
 * if no thread can be started, kicks are dropped. */
struct ingest_refill *ingest_refill_new(rd_kafka_t *rk);

/*
 * The refill policy, after a poll that took consumed messages and left
 * queue_len in the consumer queue (avg_len bytes each on average, against
 * the queue's caps max_bytes and max_msgs): returns 1 when the brokers are
 * to be kicked now.  Kafka-free; called from the consumer's thread only.
 */
int ingest_refill_due(struct ingest_refill *rf, size_t queue_len,
                      size_t consumed, double avg_len, int64_t max_bytes,
                      int64_t max_msgs);

/* A partition whose leader a kick may wake. */
struct ingest_refill_target {
    const char *topic;
    int32_t partition;
    int32_t leader;      /* broker id, -1 unknown: never woken */
    int64_t next_offset; /* after the last consumed message, -1 none */
};

/* Kicks the leaders of the targets with data left: one partition of each
 * leader, at most 64 leaders.  Never blocks. */
void ingest_refill_wake(struct ingest_refill *rf,
                        const struct ingest_refill_target *targets, size_t n);

/* Fills leaders[i] with the broker id leading parts->elems[i], -1 when
 * unknown, from one metadata request per topic (up to 5 s each). */
void ingest_refill_leaders(rd_kafka_t *rk,
                           const rd_kafka_topic_partition_list_t *parts,
                           int32_t *leaders);

/* Kicks sent so far. */
uint64_t ingest_refill_kicks(struct ingest_refill *rf);

/* Stops the thread, waiting for a kick in progress (at most 1 s); accepts
 * NULL. */
void ingest_refill_destroy(struct ingest_refill *rf);

#endif
