/*
 * ingest_int.h: what the files of ingest/ share.  Never included from
 * outside ingest/ and tests/ingest/.
 *
 *   ingest.c  the consumer, rebalances, pausing, the offset watermark
 *   refill.c  the thread that wakes broker threads after a full queue
 */
#ifndef INGEST_INT_H
#define INGEST_INT_H

#include "ingest.h"

#include <librdkafka/rdkafka.h>
#include <stdint.h>

struct ingest_refill;

/* 1 when the linked librdkafka (2.2.0 or later) has fetch.queue.backoff.ms:
 * ingest_new then sets it and starts no refill thread; 0 with 2.0.2/2.1. */
int ingest_fetch_backoff_supported(void);

/* Starts the wake-up thread for rk (which must outlive it).  Never fails:
 * if no thread can be started, kicks are dropped. */
struct ingest_refill *ingest_refill_new(rd_kafka_t *rk);

/*
 * Wakes the leaders of parts: one ListOffsets request each, sent from the
 * thread.  Takes ownership of parts.  Never blocks on the network; a kick
 * not yet sent is replaced by a newer one.
 */
void ingest_refill_kick(struct ingest_refill *rf,
                        rd_kafka_topic_partition_list_t *parts);

/* Kicks sent so far. */
uint64_t ingest_refill_kicks(struct ingest_refill *rf);

/* Stops the thread, waiting for a kick in progress (at most 1 s); accepts
 * NULL. */
void ingest_refill_destroy(struct ingest_refill *rf);

#endif
