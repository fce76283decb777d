/*
 * kafka.h: how every librdkafka client of userpipe is configured, decided
 * once (issue 14): which of the user's kafka.* properties reach which
 * client, the properties no client may be without, and the one log
 * callback that writes librdkafka's lines as userpipe's.
 *
 * Why in core/: the clients live in three stages (the ingest consumer, the
 * schema topic's producer and reader, the dead-letter producer) and in the
 * dlq tools of cmd/, which must not drift apart; a stage never includes
 * another, so the rule sits on the floor below them all.  This header is
 * the one of core/ that includes a library's header (librdkafka); core.h
 * stays free of it, and the fuzzer, which links core/ without Kafka, never
 * compiles kafka.c.
 *
 * The rule, by client (enum core_kafka_client):
 *   CONSUMER       the pipeline's consumer: every kafka.* property.
 *   PRODUCER       the dead-letter producer and the dlq redrive producer:
 *                  every kafka.* property but the consumer's own
 *                  (core_kafka_consumer_only), which librdkafka would warn
 *                  about at each producer's start.
 *   TOOL_CONSUMER  the dlq tools' reader: every kafka.* property but the
 *                  pipeline group's (group.id, enable.auto.commit,
 *                  auto.offset.reset): the pipeline's group is not ours.
 *   SCHEMA         the schema topic's producer and reader: how to reach
 *                  and authenticate to the cluster only (bootstrap,
 *                  security, sasl, ssl, socket, broker, client, debug...),
 *                  nothing of the pipeline's tuning: the topic is tiny and
 *                  read from its start.
 * Every client then gets allow.auto.create.topics=false, which no kafka.*
 * overrides (issue 11, item 1): no client of userpipe creates a topic as a
 * side effect; the topics userpipe needs and may make (the schema topic, a
 * missing dead-letter topic) are created with the Admin API, with the
 * partitions they need.
 *
 * Refused (issue 20, item 8): the kafka.* settings that userpipe's own
 * delivery guarantee overrides or cannot work with, each with a sentence
 * naming the key (core_kafka_refuse; the list is in kafka.c, and README's
 * "Kafka settings userpipe owns" prints it):
 *   enable.auto.commit        other than true: offsets would be committed
 *                             only at a rebalance and at exit
 *   auto.commit.interval.ms=0 the same, by librdkafka's 0 = disabled
 *   enable.auto.offset.store  any value: the watermark alone stores
 *   enable.partition.eof      any value: set by userpipe (--exit-at-end)
 *   group.protocol=consumer   KIP-848's protocol: userpipe settles revoked
 *                             partitions with the classic eager protocol
 *   partition.assignment.strategy with cooperative: the same reason
 *   allow.auto.create.topics  other than false: no client creates a topic
 *   enable.idempotence, acks, message.timeout.ms other than true, all
 *                             (-1), 0: the dead-letter producer's promise
 *                             that a record is durable before its offset
 *                             is stored
 *   transactional.id          any value: no client of userpipe is
 *                             transactional
 * Allowed, and why: isolation.level (read_committed, librdkafka's default,
 * or read_uncommitted, which also delivers aborted transactions' records:
 * a choice about the source's data, not the delivery); the tuning of
 * auto.commit.interval.ms above 0 (how soon a commit follows a store).
 */
#ifndef CORE_KAFKA_H
#define CORE_KAFKA_H

#include "core.h"

#include <librdkafka/rdkafka.h>

enum core_kafka_client {
    CORE_KAFKA_CONSUMER,
    CORE_KAFKA_PRODUCER,
    CORE_KAFKA_TOOL_CONSUMER,
    CORE_KAFKA_SCHEMA,
};

/* The user's kafka.* pairs, "kafka." removed, in file order. */
struct core_kafka_props {
    const char *const *keys;
    const char *const *values;
    size_t count;
};

/*
 * Applies to conf the user's properties that reach `client` (the rule
 * above), then the properties every client is given, and sets the log
 * callback, which logs as component=kafka (the consumer), dlq (the
 * producers and the dlq reader) or schema.  A
 * client sets its own overridable defaults before this call and its own
 * invariants after it (core_kafka_set).  Returns CORE_OK, or
 * CORE_ERR_USAGE with errstr naming the key ("configuration key
 * 'kafka.x': ...").
 */
CORE_WUR enum core_err core_kafka_apply(rd_kafka_conf_t *conf,
                                        enum core_kafka_client client,
                                        const struct core_kafka_props *user,
                                        char *errstr, size_t errstr_size);

/* Sets one property; on failure errstr says "cannot set 'name' on the
 * <who>: <librdkafka's reason>" and CORE_ERR_USAGE is returned. */
CORE_WUR enum core_err core_kafka_set(rd_kafka_conf_t *conf, const char *name,
                                      const char *value, const char *who,
                                      char *errstr, size_t errstr_size);

/*
 * Refuses the user's kafka.* settings of the list above: CORE_ERR_USAGE
 * with errstr ("configuration key 'kafka.x' ...: why, and what to do"),
 * for the first refused one in file order; CORE_OK when none is.
 */
CORE_WUR enum core_err core_kafka_refuse(const struct core_kafka_props *user,
                                         char *errstr, size_t errstr_size);

/*
 * A message's own Kafka headers, packed into plain bytes so that ingest/
 * can keep them with its copy of the message and the dead-letter producer
 * can put them back on the record (issue 20: Kafka Connect's dead-letter
 * queue keeps them too).  The packing is this process's own, never
 * written anywhere: per header, its name's length and its value's length
 * (UINT32_MAX for a NULL value) as native uint32, then the name, then the
 * value.
 *
 * core_kafka_headers_pack writes h's headers to out (NULL: only measures)
 * and returns the bytes they take, 0 when h is NULL or empty.
 * core_kafka_headers_unpack adds the headers packed in p[0..len) to h, in
 * order, and returns how many; *bytes (may be NULL) gets the bytes of
 * their names and values.
 */
size_t core_kafka_headers_pack(const rd_kafka_headers_t *h, char *out);
size_t core_kafka_headers_unpack(const char *p, size_t len,
                                 rd_kafka_headers_t *h, size_t *bytes);

/* Whether a property belongs to consumers only (not given to producers). */
int core_kafka_consumer_only(const char *name);

/* Whether `client` receives the user's property `name`. */
int core_kafka_reaches(enum core_kafka_client client, const char *name);

/* The replication factor userpipe gives a topic it creates on a cluster
 * of `brokers` brokers: min(3, brokers), at least 1. */
int core_kafka_replication(int brokers);

/* The linked librdkafka's version, "2.8.0" (`userpipe --version` prints
 * it: the library is built from source into the binary, so the binary
 * alone says which one it carries). */
const char *core_kafka_version(void);

#endif
