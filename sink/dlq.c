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
 */
#include "sink.h"
#include "sink_int.h"

#include <librdkafka/rdkafka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink_dlq {
    rd_kafka_t *rk;
    char *topic;
    struct sink_dlq_callbacks cb;
    size_t pending;
    size_t pending_bytes; /* keys and values of the pending records */
    char error[512];
};

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    (void)rk;
    core_log_kafka(level, "dlq", fac, buf);
}

int sink_consumer_only_property(const char *name)
{
    /* kafka.* goes to consumers and producers alike; these would make
     * librdkafka warn at every producer's start */
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
        "isolation.level",
        "enable.auto.offset.store",
        "queued.min.messages",
        "group.protocol.type",
        "check.crcs",
        "coordinator.query.interval.ms"};
    for (size_t j = 0; j < sizeof(consumer_only) / sizeof(char *); j++) {
        if (strcmp(name, consumer_only[j]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct sink_dlq *dlq = opaque;
    uint64_t ticket = (uint64_t)(uintptr_t)m->_private;
    (void)rk;

    dlq->pending--;
    dlq->pending_bytes -= m->len + (m->key != NULL ? m->key_len : 0);
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
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
    char e[512];

    *out = NULL;
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        if (!sink_consumer_only_property(cfg->kafka_keys[i]) &&
            rd_kafka_conf_set(conf, cfg->kafka_keys[i], cfg->kafka_values[i], e,
                              sizeof(e)) != RD_KAFKA_CONF_OK) {
            snprintf(errstr, errstr_size, "configuration key 'kafka.%s': %s",
                     cfg->kafka_keys[i], e);
            goto fail;
        }
    }
    for (size_t i = 0; i < sizeof(forced) / sizeof(forced[0]); i++) {
        if (rd_kafka_conf_set(conf, forced[i][0], forced[i][1], e, sizeof(e)) !=
            RD_KAFKA_CONF_OK) {
            snprintf(errstr, errstr_size,
                     "cannot configure the dead-letter producer: %s", e);
            goto fail;
        }
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
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
        snprintf(dlq->error, sizeof(dlq->error),
                 "cannot produce to the dead-letter topic '%s': %s", dest,
                 rd_kafka_err2str(err));
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
    return dlq->error;
}
