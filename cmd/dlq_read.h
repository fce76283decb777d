/*
 * dlq_read.h: reading the dead-letter topics back, for `userpipe dlq
 * stats` and `userpipe dlq redrive` (cmd/dlq.c), the only user: the
 * pipeline writes the dead-letter topic (sink/dlq.c) and never reads it.
 */
#ifndef CMD_DLQ_READ_H
#define CMD_DLQ_READ_H

#include "../sink/sink.h"

/*
 * Each record read is handed to fn, which returns 1 to send it back to its
 * source topic (redrive), 0 to leave it.  With group NULL the topics are read
 * from the beginning to the end they had at the start, nothing is written and
 * nothing committed (stats, dry runs).  With a group, the group's committed
 * offsets decide where to start (earliest when it has none), records fn picks
 * are produced to their source topic with their original key and value byte for
 * byte (idempotent, acks=all), and only after every one of them is acknowledged
 * are the group's offsets committed: a record is redriven at least once, and
 * once per group in practice.
 */
struct dlq_read_config {
    const char *const *kafka_keys;
    const char *const *kafka_values;
    size_t kafka_count;
    const char *const *topics; /* dead-letter topics */
    size_t ntopics;
    const char *group; /* NULL: read only */
};

/* rec's strings are valid during the call only; rec->ticket is unused;
 * dlq_timestamp_ms is when the record was dead-lettered. */
typedef int (*dlq_read_fn)(void *opaque, const struct sink_dlq_record *rec,
                           int64_t dlq_timestamp_ms);

/* Reads every record once.  *redriven gets how many were produced back.
 * Returns CORE_OK, or an error with errstr saying what failed. */
CORE_WUR enum core_err dlq_read(const struct dlq_read_config *cfg,
                                dlq_read_fn fn, void *opaque,
                                uint64_t *redriven, char *errstr,
                                size_t errstr_size);

#endif
