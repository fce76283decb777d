/*
 * kafka.c: the one place that decides how a librdkafka client of userpipe
 * is configured (the rule is in kafka.h): which kafka.* properties reach
 * it, the properties it is given last, its log callback, and the
 * replication userpipe asks for when it creates a topic itself.
 *
 * Invariant: no client of userpipe creates a topic as a side effect.  A
 * producer's metadata request auto-creates an unknown topic with the
 * broker's num.partitions (librdkafka's producer defaults
 * allow.auto.create.topics to true), which gave the schema topic, which
 * must have one partition, six on a broker configured like most.
 */
#include "kafka.h"

#include <stdio.h>
#include <string.h>

/* set after the user's kafka.*, on every client */
static const char *const forced[][2] = {
    {"allow.auto.create.topics", "false"},
};

int core_kafka_consumer_only(const char *name)
{
    static const char *const consumer_only[] = {
        "group.id",
        "auto.offset.reset",
        "enable.auto.commit",
        "auto.commit.interval.ms",
        "queued.max.messages.kbytes",
        "fetch.max.bytes",
        "enable.partition.eof",
        "session.timeout.ms",
        "max.poll.interval.ms",
        "partition.assignment.strategy",
        "group.instance.id",
        "heartbeat.interval.ms",
        "fetch.wait.max.ms",
        "fetch.min.bytes",
        "fetch.message.max.bytes",
        "fetch.queue.backoff.ms",
        "isolation.level",
        "enable.auto.offset.store",
        "queued.min.messages",
        "group.protocol.type",
        "check.crcs",
        "coordinator.query.interval.ms"};
    for (size_t i = 0; i < sizeof(consumer_only) / sizeof(consumer_only[0]);
         i++) {
        if (strcmp(name, consumer_only[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* How to reach and authenticate to the cluster: what the schema clients
 * take of kafka.* (prefixes). */
static int connection_property(const char *name)
{
    static const char *const prefixes[] = {"bootstrap.servers",
                                           "metadata.broker.list",
                                           "security.",
                                           "sasl.",
                                           "ssl.",
                                           "ssl_",
                                           "client.",
                                           "socket.",
                                           "broker.",
                                           "api.version",
                                           "reconnect.",
                                           "enable.ssl",
                                           "debug",
                                           "log_level",
                                           "topic.metadata"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0) {
            return 1;
        }
    }
    return 0;
}

int core_kafka_reaches(enum core_kafka_client client, const char *name)
{
    switch (client) {
    case CORE_KAFKA_CONSUMER:
        return 1;
    case CORE_KAFKA_PRODUCER:
        return !core_kafka_consumer_only(name);
    case CORE_KAFKA_TOOL_CONSUMER:
        return strcmp(name, "group.id") != 0 &&
               strcmp(name, "enable.auto.commit") != 0 &&
               strcmp(name, "auto.offset.reset") != 0;
    case CORE_KAFKA_SCHEMA:
        return connection_property(name);
    }
    return 0;
}

/* One callback in three names: librdkafka hands a log callback no opaque
 * of its own (rd_kafka_opaque is the client's), so the component is
 * chosen by which of these the client was given. */
static void log_kafka(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf)
{
    (void)rk;
    core_log_kafka(level, "kafka", fac, buf);
}

static void log_dlq(const rd_kafka_t *rk, int level, const char *fac,
                    const char *buf)
{
    (void)rk;
    core_log_kafka(level, "dlq", fac, buf);
}

static void log_schema(const rd_kafka_t *rk, int level, const char *fac,
                       const char *buf)
{
    (void)rk;
    core_log_kafka(level, "schema", fac, buf);
}

enum core_err core_kafka_set(rd_kafka_conf_t *conf, const char *name,
                             const char *value, const char *who, char *errstr,
                             size_t errstr_size)
{
    char e[256];
    if (rd_kafka_conf_set(conf, name, value, e, sizeof(e)) !=
        RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "cannot set '%s' on the %s: %s", name,
                 who, e);
        return CORE_ERR_USAGE;
    }
    return CORE_OK;
}

enum core_err core_kafka_apply(rd_kafka_conf_t *conf,
                               enum core_kafka_client client,
                               const struct core_kafka_props *user,
                               char *errstr, size_t errstr_size)
{
    char e[256];

    for (size_t i = 0; user != NULL && i < user->count; i++) {
        if (!core_kafka_reaches(client, user->keys[i])) {
            continue;
        }
        if (rd_kafka_conf_set(conf, user->keys[i], user->values[i], e,
                              sizeof(e)) != RD_KAFKA_CONF_OK) {
            snprintf(errstr, errstr_size, "configuration key 'kafka.%s': %s",
                     user->keys[i], e);
            return CORE_ERR_USAGE;
        }
    }
    for (size_t i = 0; i < sizeof(forced) / sizeof(forced[0]); i++) {
        enum core_err rc = core_kafka_set(conf, forced[i][0], forced[i][1],
                                          "Kafka client", errstr, errstr_size);
        if (rc != CORE_OK) {
            return rc;
        }
    }
    rd_kafka_conf_set_log_cb(conf, client == CORE_KAFKA_CONSUMER ? log_kafka
                                   : client == CORE_KAFKA_SCHEMA ? log_schema
                                                                 : log_dlq);
    return CORE_OK;
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

const char *core_kafka_version(void)
{
    return rd_kafka_version_str();
}
