/*
 * ingest.h: the Kafka side of the pipeline: a librdkafka high-level
 * consumer in a consumer group, and the offset watermark that makes
 * delivery at-least-once.
 *
 * Every message handed out carries a ticket.  The caller settles each
 * ticket exactly once with ingest_done() when Moesif or the dead-letter
 * topic has the event; the offset stored for commit is the contiguous
 * watermark of settled messages per partition, never beyond an unsettled
 * one.  ingest/ owns each message until its ticket is settled, so the
 * bytes an ingest_msg points to stay valid until then.
 *
 * Single-threaded: every call and callback happens on the caller's thread
 * (rebalances are served inside ingest_poll).
 */
#ifndef INGEST_H
#define INGEST_H

#include "../core/core.h"

#include <stddef.h>
#include <stdint.h>

struct ingest_config {
    /* librdkafka properties, prefix "kafka." removed; group.id required */
    const char *const *kafka_keys;
    const char *const *kafka_values;
    size_t kafka_count;
    const char *topics;        /* comma-separated */
    int from_beginning;        /* earliest offset when the group has none */
    int exit_at_end;           /* track the end offsets at assignment */
    unsigned drain_timeout_ms; /* bound on settling revoked partitions */
};

struct ingest_msg {
    const char *key; /* NULL when the message has no key */
    size_t key_len;
    const char *value; /* NULL for a tombstone (a NULL value, len 0) */
    size_t len;
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* -1 when unknown */
    /* the message's own Kafka headers, packed (core/kafka.h's
     * core_kafka_headers_pack); NULL and 0 when it has none */
    const char *headers;
    size_t headers_len;
    uint64_t ticket;
};

struct ingest_callbacks {
    /*
     * A rebalance is taking partitions away: settle what is in flight
     * (drive the sink and the dead-letter producer, calling ingest_done)
     * until ingest_in_flight() is 0 or deadline_ms (CLOCK_MONOTONIC, ms)
     * passes.  Called from inside ingest_poll.
     */
    void (*drain)(void *opaque, int64_t deadline_ms);
    /*
     * Optional.  The drain's deadline passed with events of revoked
     * partitions unsettled: ingest has forgotten them (ingest_message says
     * -1 for their tickets, ingest_done ignores them) and their next owner
     * consumes them again from the last commit.  The caller must drop them
     * from its queues without settling or sending them, or an older update
     * could reach Moesif after the new owner's newer one.  Called from
     * inside ingest_poll, after drain.
     */
    void (*given_up)(void *opaque);
    void *opaque;
};

struct ingest;

/*
 * Creates the consumer and subscribes to the topics.  Returns CORE_OK, or
 * CORE_ERR_USAGE with errstr naming the property or setting to fix.
 */
CORE_WUR enum core_err ingest_new(const struct ingest_config *cfg,
                                  const struct ingest_callbacks *cb,
                                  struct ingest **out, char *errstr,
                                  size_t errstr_size);

/* Closes the consumer (leaving the group) and frees everything; accepts
 * NULL.  Unsettled messages are dropped: they will be consumed again. */
void ingest_destroy(struct ingest *ing);

/*
 * Fills msgs with up to max messages, waiting up to timeout_ms for the
 * first.  Returns how many, or -1 on a fatal consumer error (ingest_error()
 * says what).  Serves rebalances and librdkafka's logs.  With max 0 it only
 * stores the offsets settled so far: a caller holding back (backpressure)
 * leaves the messages in librdkafka's queue, whose cap stops the fetching.
 */
int ingest_poll(struct ingest *ing, struct ingest_msg *msgs, int max,
                int timeout_ms);

/* Fills *msg with the unsettled message of ticket; returns 0, or -1 when
 * the ticket is settled or unknown. */
int ingest_message(const struct ingest *ing, uint64_t ticket,
                   struct ingest_msg *msg);

/* Settles a ticket: the message is done and may be committed. */
void ingest_done(struct ingest *ing, uint64_t ticket);

/* Pauses or resumes fetching of every assigned partition (backpressure).
 * Idempotent. */
void ingest_pause(struct ingest *ing, int paused);

/* Messages handed out and not yet settled. */
size_t ingest_in_flight(const struct ingest *ing);

/*
 * With exit_at_end: whether partitions were assigned, every one of them
 * has been consumed up to the end offset it had when assigned, and
 * nothing is in flight.
 */
int ingest_at_end(const struct ingest *ing);

/* Whether every assigned partition has been consumed up to the end offset
 * it had when assigned (in-flight messages aside): a backfill's tail, when
 * waiting for linger only delays the end. */
int ingest_caught_up(const struct ingest *ing);

/* Stops taking new messages (shutdown): nothing more is fetched. */
void ingest_stop(struct ingest *ing);

/* Commits the stored watermarks now, synchronously. */
enum core_err ingest_commit(struct ingest *ing);

/* The sentence describing a fatal error after ingest_poll returned -1. */
const char *ingest_error(const struct ingest *ing);

/* One assigned partition, for metrics and progress. */
struct ingest_partition_info {
    const char *topic; /* valid until the next ingest_poll */
    int32_t partition;
    int64_t lag;       /* high watermark - next offset; -1 unknown */
    int64_t remaining; /* to the end offset it had when assigned; -1 unknown */
    int paused;
};

/* Fills out with up to max assigned partitions; returns how many. */
size_t ingest_partitions(const struct ingest *ing,
                         struct ingest_partition_info *out, size_t max);

struct ingest_stats {
    uint64_t consumed;
    uint64_t settled;
    unsigned assigned;
    int paused;
    int64_t lag; /* sum over assigned partitions, -1 when unknown */
};

void ingest_get_stats(const struct ingest *ing, struct ingest_stats *st);

#endif
