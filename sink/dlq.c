/*
 * dlq.c: the dead-letter producer.  Rejected events (by the transform, or
 * refused by Moesif) are produced to the dead-letter topic with their
 * original key and value byte for byte and the reason in headers, so a
 * person can read why and `userpipe dlq redrive` can send them again.
 *
 * The producer is idempotent with acks=all and message.timeout.ms=0:
 * librdkafka retries a record without end until the brokers have it, so
 * a reject's offset is released only once the record is durable.  A
 * permanent error (authorisation, a record too large) stops the pipeline.
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
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink_dlq {
    /* first: the producer's opaque, filled by its error callback
     * (core/kafka.h) and by refused requests */
    struct core_kafka_refusal refusal;
    rd_kafka_t *rk;
    char *topic;
    struct sink_dlq_callbacks cb;
    size_t pending;
    size_t pending_bytes; /* keys and values of the pending records */
    char **checked;       /* topics looked up (and created) already */
    size_t nchecked;
    char error[512];
};

/* What a principal needs on a dead-letter topic (README.md, Permissions). */
#define DLQ_NEEDS                                                              \
    "Write and Describe on the dead-letter topic (and Create, where userpipe " \
    "may create it)"

/* Fills the refusal for an authorisation error of `op` on topic. */
static int denied(struct sink_dlq *dlq, rd_kafka_resp_err_t err, const char *op,
                  const char *topic)
{
    char resource[300];
    snprintf(resource, sizeof(resource), "the dead-letter topic '%.250s'",
             topic);
    return core_kafka_denied(&dlq->refusal, err, op, resource, DLQ_NEEDS);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct sink_dlq *dlq = opaque;
    uint64_t ticket = (uint64_t)(uintptr_t)m->_private;
    (void)rk;

    dlq->pending--;
    dlq->pending_bytes -= m->len + (m->key != NULL ? m->key_len : 0);
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (denied(dlq, m->err, "Write", rd_kafka_topic_name(m->rkt))) {
            return;
        }
        if (dlq->error[0] == '\0' &&
            (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
             m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)) {
            snprintf(dlq->error, sizeof(dlq->error),
                     "the dead-letter topic '%s' does not exist: create it "
                     "(kafka-topics.sh --create --topic %s --partitions 1 "
                     "--replication-factor 3), or set dlq.topic",
                     rd_kafka_topic_name(m->rkt), rd_kafka_topic_name(m->rkt));
        }
        if (dlq->error[0] == '\0') {
            snprintf(dlq->error, sizeof(dlq->error),
                     "cannot write to the dead-letter topic '%s': %s; fix "
                     "the topic or its permissions (see dlq.topic)",
                     rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        }
        return;
    }
    if (dlq->error[0] == '\0') {
        dlq->cb.done(dlq->cb.opaque, ticket);
    }
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
    /* the callbacks are served only while no delivery report can come
     * (before the first record): a refused login then ends the wait */
    err = core_kafka_metadata(dlq->rk, 0, rkt, &md, 10000, dlq->pending == 0);
    rd_kafka_topic_destroy(rkt);
    if (dlq->refusal.sentence[0] != '\0') {
        return CORE_ERR_STOP;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        core_log(CORE_LOG_WARN, "dlq",
                 "msg=\"cannot look the dead-letter topic up; producing to "
                 "it as it is\" topic=%s error=\"%s\"",
                 topic, rd_kafka_err2str(err));
        return CORE_OK;
    }
    if (md->topic_cnt == 1 &&
        denied(dlq, md->topics[0].err, "Describe", topic)) {
        rd_kafka_metadata_destroy(md);
        return CORE_ERR_STOP;
    }
    if (md->topic_cnt == 1 &&
        md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        err = dlq_create(dlq, topic, md->broker_cnt, e, sizeof(e));
        if (denied(dlq, err, "Create", topic)) {
            char s[sizeof(dlq->refusal.sentence)];
            snprintf(s, sizeof(s),
                     "the dead-letter topic '%.80s' does not exist, and "
                     "%.420s; or create it (kafka-topics.sh --create --topic "
                     "%.80s --partitions 1 --replication-factor 3), or set "
                     "dlq.topic to one that exists",
                     topic, dlq->refusal.sentence, topic);
            memcpy(dlq->refusal.sentence, s, sizeof(s));
            rd_kafka_metadata_destroy(md);
            return CORE_ERR_STOP;
        }
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

enum core_err sink_dlq_new(const struct sink_dlq_config *cfg,
                           const struct sink_dlq_callbacks *cb,
                           struct sink_dlq **out, char *errstr,
                           size_t errstr_size)
{
    static const char *const forced[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"message.timeout.ms", "0"},
        {"linger.ms", "5"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    struct sink_dlq *dlq = core_calloc(1, sizeof(*dlq));
    struct core_kafka_props user = {cfg->kafka_keys, cfg->kafka_values,
                                    cfg->kafka_count};
    char e[512];

    *out = NULL;
    if (core_kafka_apply(conf, CORE_KAFKA_PRODUCER, &user, errstr,
                         errstr_size) != CORE_OK) {
        goto fail;
    }
    for (size_t i = 0; i < sizeof(forced) / sizeof(forced[0]); i++) {
        if (core_kafka_set(conf, forced[i][0], forced[i][1],
                           "dead-letter producer", errstr,
                           errstr_size) != CORE_OK) {
            goto fail;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, dlq);
    dlq->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (dlq->rk == NULL) {
        snprintf(errstr, errstr_size,
                 "cannot create the dead-letter producer: %s", e);
        goto fail;
    }
    dlq->cb = *cb;
    dlq->topic = cfg->topic ? core_strdup(cfg->topic) : NULL;
    /* a configured topic is checked (created) at the start, where a
     * missing permission is best said */
    if (dlq->topic != NULL && dlq_check_topic(dlq, dlq->topic) != CORE_OK) {
        snprintf(errstr, errstr_size, "%s", sink_dlq_error(dlq));
        sink_dlq_destroy(dlq, 0);
        return CORE_ERR_USAGE;
    }
    *out = dlq;
    return CORE_OK;
fail:
    rd_kafka_conf_destroy(conf);
    free(dlq);
    return CORE_ERR_USAGE;
}

void sink_dlq_destroy(struct sink_dlq *dlq, int timeout_ms)
{
    if (dlq == NULL) {
        return;
    }
    if (dlq->rk != NULL) {
        rd_kafka_flush(dlq->rk, timeout_ms);
        rd_kafka_destroy(dlq->rk);
    }
    for (size_t i = 0; i < dlq->nchecked; i++) {
        free(dlq->checked[i]);
    }
    free(dlq->checked);
    free(dlq->topic);
    free(dlq);
}

enum core_err sink_dlq_produce(struct sink_dlq *dlq,
                               const struct sink_dlq_record *rec)
{
    char topic[400], part[16], off[24], ts[24];
    const char *dest = dlq->topic;
    rd_kafka_headers_t *h = rd_kafka_headers_new(7);
    rd_kafka_resp_err_t err;

    if (dest == NULL) {
        snprintf(topic, sizeof(topic), "%s.dlq", rec->source_topic);
        dest = topic;
    }
    if (dlq_check_topic(dlq, dest) != CORE_OK) {
        rd_kafka_headers_destroy(h);
        return CORE_ERR_STOP;
    }
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
    err = rd_kafka_producev(
        dlq->rk, RD_KAFKA_V_TOPIC(dest),
        RD_KAFKA_V_KEY(rec->key, rec->key ? rec->key_len : 0),
        RD_KAFKA_V_VALUE((void *)rec->value, rec->len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_OPAQUE((void *)(uintptr_t)rec->ticket), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_headers_destroy(h);
        return CORE_ERR_RETRY;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(h);
        if (!denied(dlq, err, "Write", dest)) {
            snprintf(dlq->error, sizeof(dlq->error),
                     "cannot produce to the dead-letter topic '%s': %s", dest,
                     rd_kafka_err2str(err));
        }
        return CORE_ERR_STOP;
    }
    /* the headers belong to the message now */
    dlq->pending++;
    dlq->pending_bytes += rec->len + (rec->key ? rec->key_len : 0);
    return CORE_OK;
}

enum core_err sink_dlq_poll(struct sink_dlq *dlq, int timeout_ms)
{
    rd_kafka_poll(dlq->rk, timeout_ms);
    if (dlq->refusal.sentence[0] != '\0') {
        return CORE_ERR_USAGE;
    }
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
    return dlq->pending;
}

size_t sink_dlq_pending_bytes(const struct sink_dlq *dlq)
{
    return dlq->pending_bytes;
}

const char *sink_dlq_error(const struct sink_dlq *dlq)
{
    return dlq->refusal.sentence[0] != '\0' ? dlq->refusal.sentence
                                            : dlq->error;
}

int sink_dlq_refused(const struct sink_dlq *dlq)
{
    return dlq->refusal.sentence[0] != '\0';
}
