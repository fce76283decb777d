/*
 * dlq.c: the dead-letter producer.  Rejected events (by the transform, or
 * refused by Moesif) are produced to the dead-letter topic with their
 * original key and value byte for byte and the reason in headers, so a
 * person can read why and `userpipe dlq redrive` can send them again.
 *
 * The producer is idempotent with acks=all and message.timeout.ms=0:
 * librdkafka retries a record without end until the brokers have it, so
 * a reject's offset is released only once the record is durable.
 *
 * A dead-letter record always lands (issue 20, item 1).  At start the
 * max.message.bytes of the dead-letter topics is read with the Admin API
 * (DescribeConfigs; the broker's message.max.bytes for a topic not created
 * yet; SINK_DLQ_LIMIT_DEF when neither can be read) and the producer's
 * message.max.bytes and batch.size are set to the smallest, so a batch
 * never exceeds what the topic takes.  A record whose key, value and
 * headers fit goes as it is; else the value is cut to what fits, with
 * headers giving its original size and SHA-256 (the source topic keeps the
 * original while its retention lasts), then, if still too large, without
 * the source's own headers, then without the key.  A record the brokers
 * refuse for itself (MSG_SIZE_TOO_LARGE, INVALID_RECORD...: the limit read
 * was wrong, a broker policy) is cut to half the size and sent again, up to
 * DLQ_ATTEMPTS_MAX times; an error about the topic (authorisation, a
 * missing topic) stops the pipeline with a sentence.
 *
 * The producer never creates a topic by producing to it
 * (allow.auto.create.topics=false, core/kafka.h).  The first record
 * for a dead-letter topic looks the topic up once; a missing one is
 * created through the Admin API with ONE partition (rejects are few, and
 * one partition keeps them in the order they were rejected for whoever
 * reads or redrives them), replication min(3, brokers) and
 * min.insync.replicas 2 with three copies, the broker's retention.  Where
 * that is refused (no CREATE permission), the run stops with a sentence
 * saying how to create the topic.
 */
#include "sink.h"
#include "sink_int.h"
#include "../core/kafka.h"

#include <librdkafka/rdkafka.h>
#include <openssl/evp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A record's framing beyond its key, value and headers' bytes, as the
 * broker counts it against max.message.bytes: the v2 RecordBatch header
 * (61 bytes) of a batch holding it alone, the record's varints
 * (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD, 36, what librdkafka checks against
 * message.max.bytes), two varints a header (at most 5 bytes each), and a
 * margin for the framing of a compressed batch. */
#define DLQ_BATCH_OVERHEAD 61
#define DLQ_RECORD_OVERHEAD 36
#define DLQ_HEADER_OVERHEAD 10
#define DLQ_MARGIN 64

/* A record refused for itself is sent again at half the size each time:
 * 16 halvings take the default limit below 16 bytes, an empty value. */
#define DLQ_ATTEMPTS_MAX 16

/* librdkafka's range of message.max.bytes */
#define DLQ_LIMIT_MIN 1000
#define DLQ_LIMIT_MAX 1000000000

/* A record handed to librdkafka: its ticket and how often it was cut
 * harder (the message's opaque). */
struct dlq_msg {
    uint64_t ticket;
    unsigned attempt;
};

/* A record refused for itself, waiting to be sent again cut harder. */
struct dlq_retry {
    struct dlq_retry *next;
    char *topic;
    char *key; /* NULL: none */
    size_t key_len;
    char *value; /* what was sent: the whole value unless truncated */
    size_t len;
    rd_kafka_headers_t *h; /* the headers it was sent with */
    struct dlq_msg *msg;
};

struct sink_dlq {
    rd_kafka_t *rk;
    char *topic;
    struct sink_dlq_callbacks cb;
    size_t limit; /* max.message.bytes the producer was sized to */
    size_t pending;
    size_t pending_bytes; /* keys and values of the pending records */
    struct dlq_retry *retry, *retry_tail;
    size_t nretry;
    uint64_t truncated;
    char **checked; /* topics looked up (and created) already */
    size_t nchecked;
    char error[512];
};

int64_t sink_dlq_room(size_t limit, size_t key_len, size_t hdr_bytes,
                      size_t nhdr)
{
    return (int64_t)limit -
           (int64_t)(DLQ_BATCH_OVERHEAD + DLQ_RECORD_OVERHEAD + DLQ_MARGIN) -
           (int64_t)key_len - (int64_t)hdr_bytes -
           (int64_t)(nhdr * DLQ_HEADER_OVERHEAD);
}

/* Whether err is about the record itself, not the topic: the record is
 * then cut harder and sent again. */
static int record_error(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return 1;
    default:
        return 0;
    }
}

static void retry_push(struct sink_dlq *dlq, const rd_kafka_message_t *m,
                       struct dlq_msg *msg)
{
    struct dlq_retry *r = core_calloc(1, sizeof(*r));
    rd_kafka_headers_t *h = NULL;

    r->topic = core_strdup(rd_kafka_topic_name(m->rkt));
    if (m->key != NULL) {
        r->key = core_malloc(m->key_len + 1);
        memcpy(r->key, m->key, m->key_len);
        r->key_len = m->key_len;
    }
    r->value = core_malloc(m->len + 1);
    if (m->len > 0) {
        memcpy(r->value, m->payload, m->len);
    }
    r->len = m->len;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        r->h = rd_kafka_headers_copy(h);
    } else {
        r->h = rd_kafka_headers_new(8);
    }
    r->msg = msg;
    if (dlq->retry_tail != NULL) {
        dlq->retry_tail->next = r;
    } else {
        dlq->retry = r;
    }
    dlq->retry_tail = r;
    dlq->nretry++;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct sink_dlq *dlq = opaque;
    struct dlq_msg *msg = m->_private;
    (void)rk;

    dlq->pending--;
    dlq->pending_bytes -= m->len + (m->key != NULL ? m->key_len : 0);
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && record_error(m->err) &&
        msg->attempt < DLQ_ATTEMPTS_MAX && dlq->error[0] == '\0') {
        /* about this record alone: cut harder and send again (the
         * idempotent producer skips the refused sequence) */
        core_log(CORE_LOG_WARN, "dlq",
                 "msg=\"dead-letter record refused, cutting it harder\" "
                 "topic=%s bytes=%zu attempt=%u error=\"%s\"",
                 rd_kafka_topic_name(m->rkt), m->len, msg->attempt + 1,
                 rd_kafka_err2str(m->err));
        msg->attempt++;
        retry_push(dlq, m, msg);
        return;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (dlq->error[0] == '\0' &&
            (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
             m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)) {
            snprintf(dlq->error, sizeof(dlq->error),
                     "the dead-letter topic '%s' does not exist: create it "
                     "(kafka-topics.sh --create --topic %s --partitions 1 "
                     "--replication-factor 3), or set dlq.topic",
                     rd_kafka_topic_name(m->rkt), rd_kafka_topic_name(m->rkt));
        }
        if (dlq->error[0] == '\0' && record_error(m->err)) {
            snprintf(dlq->error, sizeof(dlq->error),
                     "the dead-letter topic '%s' refused a record even cut "
                     "to %zu bytes (%s): check the topic's configuration "
                     "(max.message.bytes; cleanup.policy=compact refuses a "
                     "record without a key; a broker policy)",
                     rd_kafka_topic_name(m->rkt), m->len,
                     rd_kafka_err2str(m->err));
        }
        if (dlq->error[0] == '\0') {
            snprintf(dlq->error, sizeof(dlq->error),
                     "cannot write to the dead-letter topic '%s': %s; fix "
                     "the topic or its permissions (see dlq.topic)",
                     rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        }
        free(msg);
        return;
    }
    if (dlq->error[0] == '\0') {
        dlq->cb.done(dlq->cb.opaque, msg->ticket);
    }
    free(msg);
}

/* Creates topic with one partition; fills e on failure.  Another
 * replica creating it first (TOPIC_ALREADY_EXISTS) is success. */
static rd_kafka_resp_err_t dlq_create(struct sink_dlq *dlq, const char *topic,
                                      int brokers, char *e, size_t e_size)
{
    int rf = core_kafka_replication(brokers);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 1, rf, e, e_size);
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    const rd_kafka_topic_result_t **res;
    size_t n = 0;

    if (nt == NULL) {
        return RD_KAFKA_RESP_ERR__INVALID_ARG;
    }
    if (rf >= 3) {
        rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", "2");
    }
    q = rd_kafka_queue_new(dlq->rk);
    rd_kafka_CreateTopics(dlq->rk, &nt, 1, NULL, q);
    /* the Admin request's own timeout is socket.timeout.ms (60 s) */
    ev = rd_kafka_queue_poll(q, 65000);
    snprintf(e, e_size, "no answer");
    if (ev != NULL) {
        err = rd_kafka_event_error(ev);
        snprintf(e, e_size, "%s", rd_kafka_event_error_string(ev));
        res = err ? NULL
                  : rd_kafka_CreateTopics_result_topics(
                        rd_kafka_event_CreateTopics_result(ev), &n);
        if (n == 1) {
            err = rd_kafka_topic_result_error(res[0]);
            snprintf(e, e_size, "%s", rd_kafka_err2str(err));
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        core_log(CORE_LOG_INFO, "dlq",
                 "msg=\"dead-letter topic created\" topic=%s partitions=1 "
                 "replication=%d",
                 topic, rf);
    }
    return err;
}

/*
 * Looks topic up the first time a record goes there, creating it when the
 * brokers say it does not exist.  Blocks for one metadata request (and a
 * CreateTopics) once per topic name.  CORE_ERR_STOP with dlq->error when
 * the topic is missing and cannot be created; when the brokers do not
 * answer, the topic is taken as it is (librdkafka holds the records until
 * it is known, and a topic still missing then fails their delivery).
 */
static enum core_err dlq_check_topic(struct sink_dlq *dlq, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt;
    rd_kafka_resp_err_t err;
    char e[256];

    for (size_t i = 0; i < dlq->nchecked; i++) {
        if (strcmp(dlq->checked[i], topic) == 0) {
            return CORE_OK;
        }
    }
    dlq->checked =
        core_realloc(dlq->checked, (dlq->nchecked + 1) * sizeof(char *));
    dlq->checked[dlq->nchecked++] = core_strdup(topic);

    rkt = rd_kafka_topic_new(dlq->rk, topic, NULL);
    err = rd_kafka_metadata(dlq->rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        core_log(CORE_LOG_WARN, "dlq",
                 "msg=\"cannot look the dead-letter topic up; producing to "
                 "it as it is\" topic=%s error=\"%s\"",
                 topic, rd_kafka_err2str(err));
        return CORE_OK;
    }
    if (md->topic_cnt == 1 &&
        md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        err = dlq_create(dlq, topic, md->broker_cnt, e, sizeof(e));
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(dlq->error, sizeof(dlq->error),
                     "the dead-letter topic '%s' does not exist and could not "
                     "be created (%s): create it (kafka-topics.sh --create "
                     "--topic %s --partitions 1 --replication-factor 3), or "
                     "set dlq.topic to one that exists",
                     topic, e, topic);
            rd_kafka_metadata_destroy(md);
            return CORE_ERR_STOP;
        }
    }
    rd_kafka_metadata_destroy(md);
    return CORE_OK;
}

/* The value of config entry `name` of a DescribeConfigs resource, as a
 * size; 0 when absent or not a number. */
static size_t config_size(const rd_kafka_ConfigResource_t *res,
                          const char *name)
{
    size_t n = 0;
    const rd_kafka_ConfigEntry_t **ents =
        rd_kafka_ConfigResource_configs(res, &n);

    for (size_t i = 0; i < n; i++) {
        const char *v = rd_kafka_ConfigEntry_value(ents[i]);
        if (strcmp(rd_kafka_ConfigEntry_name(ents[i]), name) == 0 &&
            v != NULL) {
            return (size_t)strtoull(v, NULL, 10);
        }
    }
    return 0;
}

/*
 * The smallest max.message.bytes of topics[0..n) (DescribeConfigs, one
 * request), a topic that does not exist counting as the broker's
 * message.max.bytes; SINK_DLQ_LIMIT_DEF for what cannot be read, with a
 * line saying so.  Blocks up to about 25 s when the brokers do not
 * answer.
 */
static size_t dlq_read_limit(rd_kafka_t *rk, char *const *topics, size_t n)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_ConfigResource_t **res = core_calloc(n + 1, sizeof(*res));
    rd_kafka_AdminOptions_t *opt;
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    size_t nres = 0, broker = 0, limit = 0, *topic_limit;
    char id[16], why[256] = "";

    topic_limit = core_calloc(n + 1, sizeof(*topic_limit));
    for (size_t i = 0; i < n; i++) {
        res[nres++] =
            rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topics[i]);
    }
    /* any broker's default stands for a topic created later */
    if (rd_kafka_metadata(rk, 0, NULL, &md, 10000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->broker_cnt > 0) {
        snprintf(id, sizeof(id), "%" PRId32, md->brokers[0].id);
        res[nres++] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_BROKER, id);
    }
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_AdminOptions_set_request_timeout(opt, 10000, NULL, 0);
    q = rd_kafka_queue_new(rk);
    rd_kafka_DescribeConfigs(rk, res, nres, opt, q);
    ev = rd_kafka_queue_poll(q, 15000);
    if (ev == NULL) {
        snprintf(why, sizeof(why), "no answer");
    } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(why, sizeof(why), "%s", rd_kafka_event_error_string(ev));
    } else {
        size_t cnt = 0;
        const rd_kafka_ConfigResource_t **rr =
            rd_kafka_DescribeConfigs_result_resources(
                rd_kafka_event_DescribeConfigs_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++) {
            const char *name = rd_kafka_ConfigResource_name(rr[i]);
            if (rd_kafka_ConfigResource_error(rr[i]) !=
                RD_KAFKA_RESP_ERR_NO_ERROR) {
                if (rd_kafka_ConfigResource_error(rr[i]) !=
                    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                    snprintf(why, sizeof(why), "%s: %s", name,
                             rd_kafka_ConfigResource_error_string(rr[i]));
                }
                continue;
            }
            if (rd_kafka_ConfigResource_type(rr[i]) ==
                RD_KAFKA_RESOURCE_BROKER) {
                broker = config_size(rr[i], "message.max.bytes");
                continue;
            }
            for (size_t t = 0; t < n; t++) {
                if (strcmp(topics[t], name) == 0) {
                    topic_limit[t] = config_size(rr[i], "max.message.bytes");
                }
            }
        }
    }
    for (size_t t = 0; t < n; t++) {
        size_t l = topic_limit[t] != 0 ? topic_limit[t]
                   : broker != 0       ? broker
                                       : SINK_DLQ_LIMIT_DEF;
        limit = limit == 0 || l < limit ? l : limit;
    }
    if (limit == 0) {
        limit = broker != 0 ? broker : SINK_DLQ_LIMIT_DEF;
    }
    if (why[0] != '\0') {
        core_log(CORE_LOG_INFO, "dlq",
                 "msg=\"cannot read the dead-letter topic's "
                 "max.message.bytes; records are cut to fit %zu bytes\" "
                 "error=\"%s\"",
                 limit, why);
    }
    if (ev != NULL) {
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_ConfigResource_destroy_array(res, nres);
    free(res);
    free(topic_limit);
    return limit < DLQ_LIMIT_MIN   ? DLQ_LIMIT_MIN
           : limit > DLQ_LIMIT_MAX ? DLQ_LIMIT_MAX
                                   : limit;
}

/* The dead-letter topics known at start: the configured one, else
 * "<source>.dlq" for each source topic that is not a pattern. */
static size_t start_topics(const struct sink_dlq_config *cfg, char ***out)
{
    char **topics = NULL;
    size_t n = 0;
    char *list, *tok, *save;

    if (cfg->topic != NULL) {
        topics = core_malloc(sizeof(*topics));
        topics[n++] = core_strdup(cfg->topic);
        *out = topics;
        return n;
    }
    list = core_strdup(cfg->source_topics != NULL ? cfg->source_topics : "");
    for (tok = strtok_r(list, ", ", &save); tok != NULL;
         tok = strtok_r(NULL, ", ", &save)) {
        size_t len = strlen(tok) + sizeof(".dlq");
        if (tok[0] == '^') {
            continue; /* a pattern: its topics' broker default applies */
        }
        topics = core_realloc(topics, (n + 1) * sizeof(*topics));
        topics[n] = core_malloc(len);
        snprintf(topics[n], len, "%s.dlq", tok);
        n++;
    }
    free(list);
    *out = topics;
    return n;
}

/* Makes the producer: the user's kafka.*, then what the dead-letter
 * promise needs, sized to limit (0: not sized, for the first look). */
static rd_kafka_t *dlq_client(const struct sink_dlq_config *cfg,
                              struct sink_dlq *dlq, size_t limit, char *errstr,
                              size_t errstr_size)
{
    static const char *const forced[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"message.timeout.ms", "0"},
        {"linger.ms", "5"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    struct core_kafka_props user = {cfg->kafka_keys, cfg->kafka_values,
                                    cfg->kafka_count};
    rd_kafka_t *rk;
    char e[512], v[24];

    if (core_kafka_apply(conf, CORE_KAFKA_PRODUCER, &user, errstr,
                         errstr_size) != CORE_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(forced) / sizeof(forced[0]); i++) {
        if (core_kafka_set(conf, forced[i][0], forced[i][1],
                           "dead-letter producer", errstr,
                           errstr_size) != CORE_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (limit > 0) {
        /* a batch (librdkafka caps it at both) never exceeds what the
         * topic takes; a record alone is cut to fit (dlq_shape) */
        snprintf(v, sizeof(v), "%zu", limit);
        if (core_kafka_set(conf, "message.max.bytes", v, "dead-letter producer",
                           errstr, errstr_size) != CORE_OK ||
            core_kafka_set(conf, "batch.size", v, "dead-letter producer",
                           errstr, errstr_size) != CORE_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, dlq);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (rk == NULL) {
        snprintf(errstr, errstr_size,
                 "cannot create the dead-letter producer: %s", e);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

enum core_err sink_dlq_new(const struct sink_dlq_config *cfg,
                           const struct sink_dlq_callbacks *cb,
                           struct sink_dlq **out, char *errstr,
                           size_t errstr_size)
{
    struct sink_dlq *dlq = core_calloc(1, sizeof(*dlq));
    char **topics = NULL;
    size_t ntopics = 0;
    enum core_err rc = CORE_ERR_USAGE;

    *out = NULL;
    dlq->cb = *cb;
    dlq->topic = cfg->topic ? core_strdup(cfg->topic) : NULL;
    /* a first client to check the configured topic (creating it) and
     * read the limits, which the producer's configuration needs */
    dlq->rk = dlq_client(cfg, dlq, 0, errstr, errstr_size);
    if (dlq->rk == NULL) {
        goto out;
    }
    /* a configured topic is checked (created) at the start, where a
     * missing permission is best said */
    if (dlq->topic != NULL && dlq_check_topic(dlq, dlq->topic) != CORE_OK) {
        snprintf(errstr, errstr_size, "%s", dlq->error);
        goto out;
    }
    ntopics = start_topics(cfg, &topics);
    dlq->limit = dlq_read_limit(dlq->rk, topics, ntopics);
    rd_kafka_destroy(dlq->rk);
    dlq->rk = dlq_client(cfg, dlq, dlq->limit, errstr, errstr_size);
    if (dlq->rk == NULL) {
        goto out;
    }
    core_log(CORE_LOG_INFO, "dlq",
             "msg=\"dead-letter producer sized\" max_message_bytes=%zu",
             dlq->limit);
    rc = CORE_OK;
out:
    for (size_t i = 0; i < ntopics; i++) {
        free(topics[i]);
    }
    free(topics);
    if (rc != CORE_OK) {
        sink_dlq_destroy(dlq, 0);
        return rc;
    }
    *out = dlq;
    return CORE_OK;
}

static void retry_free(struct dlq_retry *r)
{
    free(r->topic);
    free(r->key);
    free(r->value);
    if (r->h != NULL) {
        rd_kafka_headers_destroy(r->h);
    }
    free(r->msg);
    free(r);
}

void sink_dlq_destroy(struct sink_dlq *dlq, int timeout_ms)
{
    if (dlq == NULL) {
        return;
    }
    if (dlq->rk != NULL) {
        rd_kafka_flush(dlq->rk, timeout_ms);
        /* what is left (a fatal stop, or the time ran out) is purged, and
         * its delivery reports served so each record's opaque is freed;
         * their events' offsets are not stored (dr_cb settles only what
         * was delivered, and the caller ignores settles after a stop) */
        rd_kafka_purge(dlq->rk,
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(dlq->rk, 1000);
        rd_kafka_destroy(dlq->rk);
    }
    while (dlq->retry != NULL) {
        struct dlq_retry *r = dlq->retry;
        dlq->retry = r->next;
        retry_free(r);
    }
    for (size_t i = 0; i < dlq->nchecked; i++) {
        free(dlq->checked[i]);
    }
    free(dlq->checked);
    free(dlq->topic);
    free(dlq);
}

/* The bytes of h's names and values, and how many headers it has. */
static size_t headers_bytes(const rd_kafka_headers_t *h, size_t *n)
{
    const char *name;
    const void *value;
    size_t size, bytes = 0, i = 0;

    while (rd_kafka_header_get_all(h, i, &name, &value, &size) ==
           RD_KAFKA_RESP_ERR_NO_ERROR) {
        bytes += strlen(name) + size;
        i++;
    }
    *n = i;
    return bytes;
}

/* Removes every header whose name does not start with "userpipe."; returns
 * how many. */
static size_t drop_source_headers(rd_kafka_headers_t *h)
{
    const char *name;
    const void *value;
    size_t size, i = 0, dropped = 0;
    char buf[256];

    while (rd_kafka_header_get_all(h, i, &name, &value, &size) ==
           RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (strncmp(name, "userpipe.", 9) == 0 || strlen(name) >= sizeof(buf)) {
            i++;
            continue;
        }
        snprintf(buf, sizeof(buf), "%s", name);
        if (rd_kafka_header_remove(h, buf) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            i++;
            continue;
        }
        /* every header of that name went: index i is the next one now */
        dropped++;
    }
    return dropped;
}

/* Lower-case hex SHA-256 of p[0..len) into hex[65]. */
static void sha256_hex(const char *p, size_t len, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != 32) {
        /* libcrypto's own failure (no memory): the header says so */
        snprintf(hex, 65, "unavailable");
        return;
    }
    for (unsigned i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
}

static const char *header_value(const rd_kafka_headers_t *h, const char *name,
                                char *buf, size_t size)
{
    const void *v;
    size_t len;

    buf[0] = '\0';
    if (rd_kafka_header_get_last(h, name, &v, &len) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        v != NULL) {
        snprintf(buf, size, "%.*s", (int)len, (const char *)v);
    }
    return buf;
}

/*
 * Shapes a record to fit limit: leaves it whole when it fits; else cuts
 * the value (adding the truncation headers, computed from the value when
 * it is still whole), then drops the source's own headers, then the key.
 * *value_len gets the value bytes to send, *keep_key whether the key
 * goes.  Returns 1 when the record was cut.
 */
int sink_dlq_shape(rd_kafka_headers_t *h, const char *value, size_t len,
                   size_t key_len, size_t limit, size_t *value_len,
                   int *keep_key)
{
    char size_s[24], sha[65], drop_s[24];
    size_t nh, hb, dropped;
    int64_t room;

    *keep_key = 1;
    header_value(h, SINK_DLQ_H_TRUNCATED, size_s, sizeof(size_s));
    if (size_s[0] == '\0') {
        hb = headers_bytes(h, &nh);
        room = sink_dlq_room(limit, key_len, hb, nh);
        if (room >= 0 && (size_t)room >= len) {
            *value_len = len;
            return 0;
        }
        /* value is the whole original here */
        snprintf(size_s, sizeof(size_s), "%zu", len);
        sha256_hex(value, len, sha);
        rd_kafka_header_add(h, SINK_DLQ_H_TRUNCATED, -1, "1", 1);
        rd_kafka_header_add(h, SINK_DLQ_H_SIZE, -1, size_s, -1);
        rd_kafka_header_add(h, SINK_DLQ_H_SHA256, -1, sha, -1);
    }
    hb = headers_bytes(h, &nh);
    room = sink_dlq_room(limit, key_len, hb, nh);
    if (room < 0) {
        dropped = drop_source_headers(h);
        if (dropped > 0) {
            snprintf(drop_s, sizeof(drop_s), "%zu", dropped);
            rd_kafka_header_add(h, SINK_DLQ_H_HEADERS_DROPPED, -1, drop_s, -1);
        }
        hb = headers_bytes(h, &nh);
        room = sink_dlq_room(limit, key_len, hb, nh);
    }
    if (room < 0) {
        *keep_key = 0;
        room = sink_dlq_room(limit, 0, hb, nh);
    }
    *value_len = room <= 0 ? 0 : (size_t)room < len ? (size_t)room : len;
    return 1;
}

/*
 * Produces a record shaped to the producer's limit, halved msg->attempt
 * times; h is taken on success.  A record librdkafka finds too large
 * itself is cut harder at once.
 */
static enum core_err dlq_send(struct sink_dlq *dlq, const char *dest,
                              const char *key, size_t key_len,
                              const char *value, size_t len,
                              rd_kafka_headers_t *h, struct dlq_msg *msg,
                              const char *where)
{
    rd_kafka_resp_err_t err;

    for (;;) {
        size_t limit = dlq->limit >> msg->attempt, vlen;
        int keep_key, cut;

        cut = sink_dlq_shape(h, value, len, key != NULL ? key_len : 0, limit,
                             &vlen, &keep_key);
        err = rd_kafka_producev(dlq->rk, RD_KAFKA_V_TOPIC(dest),
                                RD_KAFKA_V_KEY(keep_key ? key : NULL,
                                               keep_key && key ? key_len : 0),
                                RD_KAFKA_V_VALUE((void *)value, vlen),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(msg),
                                RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE &&
            msg->attempt < DLQ_ATTEMPTS_MAX) {
            msg->attempt++;
            continue;
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            return CORE_ERR_RETRY;
        }
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(dlq->error, sizeof(dlq->error),
                     "cannot produce to the dead-letter topic '%s': %s", dest,
                     rd_kafka_err2str(err));
            return CORE_ERR_STOP;
        }
        if (cut && vlen < len) {
            dlq->truncated++;
            core_log(CORE_LOG_WARN, "dlq",
                     "msg=\"dead-letter record cut to fit the topic\" "
                     "topic=%s %s value_bytes=%zu sent_bytes=%zu "
                     "limit=%zu",
                     dest, where, len, vlen, limit);
        }
        dlq->pending++;
        dlq->pending_bytes += vlen + (keep_key && key ? key_len : 0);
        return CORE_OK;
    }
}

enum core_err sink_dlq_produce(struct sink_dlq *dlq,
                               const struct sink_dlq_record *rec)
{
    char topic[400], part[16], off[24], ts[24], where[512];
    const char *dest = dlq->topic;
    rd_kafka_headers_t *h;
    struct dlq_msg *msg;
    enum core_err rc;

    if (dest == NULL) {
        snprintf(topic, sizeof(topic), "%s.dlq", rec->source_topic);
        dest = topic;
    }
    if (dlq_check_topic(dlq, dest) != CORE_OK) {
        return CORE_ERR_STOP;
    }
    h = rd_kafka_headers_new(12);
    snprintf(part, sizeof(part), "%" PRId32, rec->source_partition);
    snprintf(off, sizeof(off), "%" PRId64, rec->source_offset);
    snprintf(ts, sizeof(ts), "%" PRId64, rec->source_timestamp_ms);
    rd_kafka_header_add(h, "userpipe.error.code", -1, rec->code, -1);
    rd_kafka_header_add(h, "userpipe.error.path", -1, rec->path, -1);
    rd_kafka_header_add(h, "userpipe.error.message", -1, rec->message, -1);
    rd_kafka_header_add(h, "userpipe.source.topic", -1, rec->source_topic, -1);
    rd_kafka_header_add(h, "userpipe.source.partition", -1, part, -1);
    rd_kafka_header_add(h, "userpipe.source.offset", -1, off, -1);
    rd_kafka_header_add(h, "userpipe.source.timestamp", -1, ts, -1);
    /* the source message's own, beside userpipe's (as Kafka Connect's
     * dead-letter queue keeps them) */
    if (rec->headers != NULL) {
        core_kafka_headers_unpack(rec->headers, rec->headers_len, h, NULL);
    }
    msg = core_calloc(1, sizeof(*msg));
    msg->ticket = rec->ticket;
    snprintf(where, sizeof(where), "source_topic=%s partition=%s offset=%s",
             rec->source_topic, part, off);
    rc = dlq_send(dlq, dest, rec->key, rec->key_len, rec->value, rec->len, h,
                  msg, where);
    if (rc != CORE_OK) {
        /* not queued: the headers and the opaque are still ours */
        rd_kafka_headers_destroy(h);
        free(msg);
    }
    return rc;
}

/* Sends again, cut harder, the records refused for themselves. */
static void send_retries(struct sink_dlq *dlq)
{
    while (dlq->retry != NULL && dlq->error[0] == '\0') {
        struct dlq_retry *r = dlq->retry;
        char where[64];
        enum core_err rc;

        snprintf(where, sizeof(where), "attempt=%u", r->msg->attempt);
        rc = dlq_send(dlq, r->topic, r->key, r->key_len, r->value, r->len, r->h,
                      r->msg, where);
        if (rc == CORE_ERR_RETRY) {
            return; /* librdkafka's queue is full: at the next poll */
        }
        dlq->retry = r->next;
        if (dlq->retry == NULL) {
            dlq->retry_tail = NULL;
        }
        dlq->nretry--;
        if (rc == CORE_OK) {
            /* the headers and the opaque belong to the message now */
            r->h = NULL;
            r->msg = NULL;
        }
        retry_free(r);
    }
}

enum core_err sink_dlq_poll(struct sink_dlq *dlq, int timeout_ms)
{
    rd_kafka_poll(dlq->rk, timeout_ms);
    send_retries(dlq);
    if (dlq->error[0] == '\0') {
        char fe[256];
        if (rd_kafka_fatal_error(dlq->rk, fe, sizeof(fe)) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(dlq->error, sizeof(dlq->error),
                     "the dead-letter producer failed: %s", fe);
        }
    }
    return dlq->error[0] != '\0' ? CORE_ERR_STOP : CORE_OK;
}

size_t sink_dlq_pending(const struct sink_dlq *dlq)
{
    return dlq->pending + dlq->nretry;
}

size_t sink_dlq_pending_bytes(const struct sink_dlq *dlq)
{
    return dlq->pending_bytes;
}

size_t sink_dlq_limit(const struct sink_dlq *dlq)
{
    return dlq->limit;
}

uint64_t sink_dlq_truncated(const struct sink_dlq *dlq)
{
    return dlq->truncated;
}

const char *sink_dlq_error(const struct sink_dlq *dlq)
{
    return dlq->error;
}
