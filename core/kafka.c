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

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* set after the user's kafka.*, on every client */
static const char *const forced[][2] = {
    {"allow.auto.create.topics", "false"},
};

/*
 * The kafka.* settings userpipe refuses (kafka.h says why, one line each).
 * A row refuses its property when the user's value is not `only` (one of
 * its '|'-separated values, case-insensitive; NULL: any value is refused),
 * or when it contains `never` (case-insensitive).  auto.commit.interval.ms
 * is refused at 0 only, in core_kafka_refuse.
 */
static const struct {
    const char *name;
    const char *only;  /* the values accepted, '|'-separated; NULL: none */
    const char *never; /* refused when the value contains it */
    const char *why;
} refused[] = {
    {"enable.auto.commit", "true", NULL,
     "userpipe stores an offset only once Moesif or the dead-letter topic "
     "has its event and relies on librdkafka's auto commit to commit what "
     "it stored; without it offsets are committed only at a rebalance and "
     "at exit: remove the line"},
    {"enable.auto.offset.store", NULL, NULL,
     "userpipe stores offsets itself, only once an event is delivered or "
     "dead-lettered (its at-least-once watermark): remove the line"},
    {"enable.partition.eof", NULL, NULL,
     "userpipe sets it itself (--exit-at-end needs it): remove the line"},
    {"group.protocol", "classic", NULL,
     "userpipe settles revoked partitions with the classic protocol's "
     "eager rebalance; the consumer protocol (KIP-848) is not supported: "
     "remove the line or set it to classic"},
    {"partition.assignment.strategy", NULL, "cooperative",
     "cooperative assignment is not supported; userpipe settles revoked "
     "partitions with the eager protocol (use range or roundrobin)"},
    {"allow.auto.create.topics", "false", NULL,
     "no client of userpipe creates a topic as a side effect (the topics it "
     "needs are created with the partitions they need): remove the line"},
    {"enable.idempotence", "true", NULL,
     "the dead-letter producer is idempotent so a retried record is written "
     "once, in order: remove the line"},
    {"acks", "all|-1", NULL,
     "a dead-letter record releases its event's offset only once every "
     "in-sync replica has it: remove the line"},
    {"request.required.acks", "all|-1", NULL,
     "a dead-letter record releases its event's offset only once every "
     "in-sync replica has it: remove the line"},
    {"message.timeout.ms", "0", NULL,
     "the dead-letter producer retries a record until the brokers have it "
     "(0, no time limit), since its event's offset waits for it: remove "
     "the line"},
    {"transactional.id", NULL, NULL,
     "no client of userpipe is transactional: remove the line"},
};

/* Whether value is one of the '|'-separated alternatives of only. */
static int one_of(const char *value, const char *only)
{
    size_t n = strlen(value);

    while (only != NULL && *only != '\0') {
        const char *bar = strchr(only, '|');
        size_t len = bar != NULL ? (size_t)(bar - only) : strlen(only);
        if (len == n && strncasecmp(value, only, n) == 0) {
            return 1;
        }
        only = bar != NULL ? bar + 1 : NULL;
    }
    return 0;
}

/* Whether hay contains needle, case-insensitive. */
static int contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay != '\0'; hay++) {
        if (strncasecmp(hay, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

enum core_err core_kafka_refuse(const struct core_kafka_props *user,
                                char *errstr, size_t errstr_size)
{
    for (size_t i = 0; user != NULL && i < user->count; i++) {
        const char *k = user->keys[i], *v = user->values[i];

        if (strcmp(k, "auto.commit.interval.ms") == 0 &&
            strspn(v, "0") == strlen(v) && v[0] != '\0') {
            snprintf(errstr, errstr_size,
                     "configuration key 'kafka.auto.commit.interval.ms': 0 "
                     "disables the auto commit that commits the offsets "
                     "userpipe stores; give it a number of milliseconds "
                     "(librdkafka's default is 5000) or remove the line");
            return CORE_ERR_USAGE;
        }
        for (size_t j = 0; j < sizeof(refused) / sizeof(refused[0]); j++) {
            if (strcmp(k, refused[j].name) != 0) {
                continue;
            }
            if (refused[j].never != NULL ? contains(v, refused[j].never)
                                         : !one_of(v, refused[j].only)) {
                snprintf(errstr, errstr_size,
                         "configuration key 'kafka.%s'%s%.64s%s is refused: "
                         "%s",
                         k, refused[j].only != NULL ? " = '" : "",
                         refused[j].only != NULL ? v : "",
                         refused[j].only != NULL ? "'" : "", refused[j].why);
                return CORE_ERR_USAGE;
            }
        }
    }
    return CORE_OK;
}

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

size_t core_kafka_headers_pack(const rd_kafka_headers_t *h, char *out)
{
    size_t n = 0;
    const char *name;
    const void *value;
    size_t size;

    for (size_t i = 0;
         h != NULL && rd_kafka_header_get_all(h, i, &name, &value, &size) ==
                          RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
        uint32_t lens[2];
        lens[0] = (uint32_t)strlen(name);
        lens[1] = value != NULL ? (uint32_t)size : UINT32_MAX;
        if (out != NULL) {
            memcpy(out + n, lens, sizeof(lens));
            memcpy(out + n + sizeof(lens), name, lens[0]);
            if (value != NULL) {
                memcpy(out + n + sizeof(lens) + lens[0], value, size);
            }
        }
        n += sizeof(lens) + lens[0] + (value != NULL ? size : 0);
    }
    return n;
}

size_t core_kafka_headers_unpack(const char *p, size_t len,
                                 rd_kafka_headers_t *h, size_t *bytes)
{
    size_t n = 0, pos = 0, b = 0;

    while (pos + 2 * sizeof(uint32_t) <= len) {
        uint32_t lens[2];
        const char *name;
        size_t vlen;

        memcpy(lens, p + pos, sizeof(lens));
        name = p + pos + sizeof(lens);
        vlen = lens[1] == UINT32_MAX ? 0 : lens[1];
        rd_kafka_header_add(h, name, (ssize_t)lens[0],
                            lens[1] == UINT32_MAX ? NULL : name + lens[0],
                            (ssize_t)vlen);
        pos += sizeof(lens) + lens[0] + vlen;
        b += lens[0] + vlen;
        n++;
    }
    if (bytes != NULL) {
        *bytes = b;
    }
    return n;
}
