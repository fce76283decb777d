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
#include <time.h>
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

/* A refusal's reason quoted in the sentence: librdkafka's text up to its
 * timing detail (" (after 156ms in state AUTH_REQ)"), which says nothing
 * the operator can act on, */
static int reason_len(const char *reason)
{
    /* and before librdkafka's own hint, which the sentence replaces */
    static const char *const ends[] = {" (after ",
                                       ": broker certificate could not"};
    size_t n = strlen(reason);

    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
        const char *at = strstr(reason, ends[i]);
        if (at != NULL && (size_t)(at - reason) < n) {
            n = (size_t)(at - reason);
        }
    }
    return n > 300 ? 300 : (int)n;
}

int core_kafka_login_refused(struct core_kafka_refusal *ref,
                             rd_kafka_resp_err_t err, const char *reason)
{
    const char *r = reason != NULL ? reason : "";

    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION &&
        strstr(r, ": Local: ") != NULL) {
        /* the exchange was cut, not refused ("SASL ... mechanism
         * handshake failed: Local: Broker transport failure": a broker
         * restarting during a rolling upgrade) */
        return 0;
    }
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        if (ref->sentence[0] == '\0') {
            snprintf(ref->sentence, sizeof(ref->sentence),
                     "authentication to the Kafka brokers failed (%.*s): "
                     "check kafka.sasl.mechanism, kafka.sasl.username and "
                     "kafka.sasl.password (and kafka.security.protocol, "
                     "SASL_SSL for SASL over TLS)",
                     reason_len(r), r);
        }
        return 1;
    }
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT && strstr(r, "SSL routines") &&
        strstr(r, "alert") != NULL) {
        /* a TLS alert from the broker after the handshake: with TLS 1.3
         * the server judges the client's certificate then, and a missing
         * or untrusted one arrives as "Receive failed: ... sslv3 alert
         * bad certificate" (a refusal, never the network's) */
        err = RD_KAFKA_RESP_ERR__SSL;
    }
    if (err != RD_KAFKA_RESP_ERR__SSL) {
        return 0;
    }
    /* librdkafka's SSL errors come from the handshake and the check of
     * the brokers' certificate only (rdkafka_ssl.c); one that names no
     * certificate, alert or protocol (a reset mid-handshake) is the
     * network's and is retried */
    if (strstr(r, "verify") != NULL || strstr(r, "Broker did not provide") ||
        strstr(r, "0A000086") != NULL) {
        if (ref->sentence[0] == '\0') {
            snprintf(ref->sentence, sizeof(ref->sentence),
                     "the TLS certificate of the Kafka brokers could not be "
                     "verified (%.*s): set kafka.ssl.ca.location to the CA "
                     "certificate that signed the brokers' certificates "
                     "(unset, the system's CAs are used), and name the "
                     "brokers in kafka.bootstrap.servers as their "
                     "certificates do",
                     reason_len(r), r);
        }
        return 1;
    }
    if (strstr(r, "certificate") != NULL || strstr(r, "alert") != NULL ||
        strstr(r, "unexpected message") != NULL ||
        strstr(r, "wrong version number") != NULL) {
        if (ref->sentence[0] == '\0') {
            snprintf(
                ref->sentence, sizeof(ref->sentence),
                "the TLS handshake with the Kafka brokers failed "
                "(%.*s): where the brokers require a client "
                "certificate (mTLS), check kafka.ssl.certificate.location, "
                "kafka.ssl.key.location and kafka.ssl.key.password "
                "and that the brokers trust its CA; else check "
                "kafka.security.protocol and kafka.ssl.ca.location",
                reason_len(r), r);
        }
        return 1;
    }
    return 0;
}

int core_kafka_denied(struct core_kafka_refusal *ref, rd_kafka_resp_err_t err,
                      const char *op, const char *resource, const char *need)
{
    if (err != RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED &&
        err != RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED &&
        err != RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED) {
        return 0;
    }
    if (ref->sentence[0] == '\0') {
        snprintf(ref->sentence, sizeof(ref->sentence),
                 "the Kafka cluster does not allow userpipe %s on %s (%s): "
                 "grant its principal (kafka.sasl.username, or the client "
                 "certificate's name) %s, as README.md's Permissions lists",
                 op, resource, rd_kafka_err2str(err), need);
    }
    return 1;
}

rd_kafka_resp_err_t core_kafka_metadata(rd_kafka_t *rk, int all_topics,
                                        rd_kafka_topic_t *rkt,
                                        const struct rd_kafka_metadata **md,
                                        int timeout_ms, int serve)
{
    const struct core_kafka_refusal *ref = rd_kafka_opaque(rk);
    int64_t deadline = core_now_ms() + timeout_ms;
    rd_kafka_resp_err_t err;

    for (;;) {
        int64_t left = deadline - core_now_ms();
        err = rd_kafka_metadata(rk, all_topics, rkt, md,
                                left < 500 ? (int)(left > 0 ? left : 1) : 500);
        if (err != RD_KAFKA_RESP_ERR__TIMED_OUT &&
            err != RD_KAFKA_RESP_ERR__TRANSPORT) {
            return err;
        }
        if (serve) {
            rd_kafka_poll(rk, 0);
            if (ref != NULL && ref->sentence[0] != '\0') {
                return RD_KAFKA_RESP_ERR__AUTHENTICATION;
            }
        }
        if (core_now_ms() >= deadline) {
            return err;
        }
        /* a transport failure answers at once: do not spin */
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
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

/* librdkafka's errors of a client (error_cb): a refusal fills the
 * client's struct core_kafka_refusal (the first member of its opaque) and
 * is said once, by the command that stops; anything else is logged as
 * librdkafka logs it without a callback ("rdkafka#producer-1: ..."). */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque,
                     const char *component)
{
    struct core_kafka_refusal *ref = opaque;
    char line[1024];

    if (ref != NULL) {
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
            /* an idempotent producer refused its producer id: Kafka
             * before 2.8 (KIP-679) wants IdempotentWrite on the cluster */
            char fe[256];
            rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fe, sizeof(fe));
            if (core_kafka_denied(ref, ferr, "IdempotentWrite", "the cluster",
                                  "Write on the topic it produces to (Kafka "
                                  "2.8 and later), or IdempotentWrite on the "
                                  "cluster (older brokers)")) {
                return;
            }
        }
        if (core_kafka_login_refused(ref, (rd_kafka_resp_err_t)err, reason)) {
            return;
        }
    }
    snprintf(line, sizeof(line), "%s: %s", rd_kafka_name(rk), reason);
    core_log_kafka(3, component, "ERROR", line);
}

static void error_kafka(rd_kafka_t *rk, int err, const char *reason,
                        void *opaque)
{
    on_error(rk, err, reason, opaque, "kafka");
}

static void error_dlq(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    on_error(rk, err, reason, opaque, "dlq");
}

static void error_schema(rd_kafka_t *rk, int err, const char *reason,
                         void *opaque)
{
    on_error(rk, err, reason, opaque, "schema");
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
    rd_kafka_conf_set_error_cb(conf, client == CORE_KAFKA_CONSUMER ? error_kafka
                                     : client == CORE_KAFKA_SCHEMA
                                         ? error_schema
                                         : error_dlq);
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
