/*
 * kafka_props.c: the librdkafka properties every Kafka client of userpipe
 * is given last, over the user's kafka.* (issue 11, item 1), and the
 * replication userpipe asks for when it creates a topic itself.
 *
 * Why here: the clients live in three stages (the ingest consumer, the
 * schema topic's producer and reader, the dead-letter producer and the dlq
 * commands' reader and producer), which never include each other; one
 * table below them keeps them from drifting apart.  Only strings: core/
 * does not link librdkafka, each stage hands the pairs to rd_kafka_conf_set.
 *
 * Invariant: no client of userpipe creates a topic as a side effect.  A
 * producer's metadata request auto-creates an unknown topic with the
 * broker's num.partitions (librdkafka's producer defaults
 * allow.auto.create.topics to true), which gave the schema topic, which
 * must have one partition, six on a broker configured like most.  Topics
 * userpipe needs and may make (the schema topic, a missing dead-letter
 * topic) are created with the Admin API, with the partitions they need.
 */
#include "core.h"

static const struct core_kafka_prop forced[] = {
    {"allow.auto.create.topics", "false"},
};

const struct core_kafka_prop *core_kafka_forced(size_t *count)
{
    *count = sizeof(forced) / sizeof(forced[0]);
    return forced;
}

int core_kafka_replication(int brokers)
{
    /* 3 copies survive one broker down with min.insync.replicas=2 and
     * acks=all (Kafka's documented production setting); a smaller cluster
     * gets a copy on every broker */
    if (brokers < 1) {
        return 1;
    }
    return brokers < 3 ? brokers : 3;
}
