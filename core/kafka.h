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
