/*
 * metrics.h: the observability endpoint of `userpipe run`: Prometheus
 * /metrics, /healthz and /readyz over libmicrohttpd (metrics.listen).
 *
 * The pipeline's thread publishes a snapshot of its counters (at most a
 * few times a second); the HTTP thread formats the last snapshot.  The two
 * threads share only that snapshot, under a mutex, so the pipeline's hot
 * path never waits for a scrape.  The server is metrics.c; the text format,
 * pure and testable without a socket, is metrics_format.c.
 */
#ifndef CMD_METRICS_H
#define CMD_METRICS_H

#include "../core/core.h"
#include "../sink/sink.h"

#include <stddef.h>
#include <stdint.h>

/* The request latency histogram has the sink's bounds
 * (sink_latency_le_ms, in ms; +Inf is implied). */

#define METRICS_MAX_PARTITIONS 256

struct metrics_partition {
    char topic[128];
    int32_t partition;
    int64_t lag; /* end offset - next offset to consume; -1 unknown */
    int paused;
};

struct metrics_snapshot {
    uint64_t consumed; /* messages consumed */
    uint64_t accepted; /* events the transform accepted */
    uint64_t rejected_by_code[CORE_REJECT__COUNT]; /* dead-lettered, by code */
    uint64_t batches_sent;                         /* batches Moesif accepted */
    uint64_t users_sent;    /* user updates Moesif accepted */
    uint64_t merged;        /* updates merged into their user's waiting one */
    uint64_t kept_apart[4]; /* a waiting one but not merged, by reason:
                               token, shape, size, other */
    uint64_t responses[6];  /* [0] transport errors, [1..5] 1xx..5xx */
    uint64_t retries;
    unsigned in_flight;                                /* requests in flight */
    uint64_t latency_bucket[SINK_LATENCY_BUCKETS + 1]; /* not cumulative;
                                                   last = above all bounds */
    double latency_sum_s;
    uint64_t latency_count;
    size_t schema_keys;
    size_t parked;     /* events waiting for schema claims */
    double parked_oldest_s; /* how long the oldest has waited; 0: none */
    unsigned assigned; /* partitions assigned */
    unsigned paused;   /* partitions paused */
    int held;          /* consumption held back by the sink now */
    double held_s;     /* seconds it was held back, in all */
    struct metrics_partition parts[METRICS_MAX_PARTITIONS];
    size_t nparts;
    int moesif_reachable; /* the last request got an HTTP answer */
};

struct metrics;

/*
 * Starts the HTTP server on listen ("HOST:PORT"; port 0 picks one).
 * Returns CORE_OK, or CORE_ERR_USAGE with errstr naming metrics.listen.
 * *out is NULL when listen is "off".
 */
CORE_WUR enum core_err metrics_new(const char *listen, struct metrics **out,
                                   char *errstr, size_t errstr_size);

/* The port it listens on (useful with port 0). */
unsigned metrics_port(const struct metrics *m);

/* Publishes a snapshot (copied).  Never blocks on a scrape for long. */
void metrics_publish(struct metrics *m, const struct metrics_snapshot *snap);

/* Stops the server and frees; accepts NULL. */
void metrics_destroy(struct metrics *m);

/*
 * The formatter (metrics_format.c): no socket, no thread, no allocation.
 * snap->nparts must be at most METRICS_MAX_PARTITIONS (metrics_publish
 * clamps it; an assertion checks).
 */

/* An upper bound of the bytes metrics_format() writes for snap, its NUL
 * included. */
size_t metrics_format_bound(const struct metrics_snapshot *snap);

/*
 * Writes snap as the Prometheus text format 0.0.4 into buf (buf_size > 0
 * bytes, borrowed) and NUL-terminates it.  Returns its length without the
 * NUL, or 0 when it did not fit in buf_size (the text is never empty); buf
 * then holds a cut but NUL-terminated prefix.  A buffer of
 * metrics_format_bound(snap) bytes always fits.  Families appear in a fixed
 * order; a partition whose lag is unknown (-1) has no consumer_lag line.
 */
CORE_WUR size_t metrics_format(const struct metrics_snapshot *snap, char *buf,
                               size_t buf_size);

#endif
