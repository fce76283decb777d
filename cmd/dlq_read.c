/*
 * dlq_read.c: reading the dead-letter topics back, for `userpipe dlq
 * stats` and `userpipe dlq redrive` (see dlq_read.h).
 *
 * The topics are read up to the end offsets they had at the start, so a
 * redrive never chases records it produced itself.  A redrive keeps its own
 * consumer group and commits only after every record it produced back was
 * acknowledged (acks=all), so a crash redrives again rather than losing a
 * record, and a finished redrive is not repeated by the next one.
 */
#include "dlq_read.h"
#include "../core/kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reader {
    rd_kafka_t *cons;
    rd_kafka_t *prod;
    size_t acked, failed;
    char error[512];
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct reader *rd = opaque;
    (void)rk;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd->failed++;
        if (rd->error[0] == '\0') {
            snprintf(rd->error, sizeof(rd->error),
                     "cannot produce a redriven record to '%s': %s",
                     rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        }
    } else {
        rd->acked++;
    }
}

/* The reader takes kafka.* but the pipeline's group, the redrive producer
 * kafka.* but the consumers' properties (core/kafka.h). */
static rd_kafka_conf_t *conf_from(const struct dlq_read_config *cfg,
                                  int consumer, char *errstr,
                                  size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    struct core_kafka_props user = {cfg->kafka_keys, cfg->kafka_values,
                                    cfg->kafka_count};

    if (core_kafka_apply(
            conf, consumer ? CORE_KAFKA_TOOL_CONSUMER : CORE_KAFKA_PRODUCER,
            &user, errstr, errstr_size) != CORE_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static const char *header(rd_kafka_headers_t *h, const char *name, char *buf,
                          size_t size)
{
    const void *v;
    size_t len;

    buf[0] = '\0';
    if (h != NULL &&
        rd_kafka_header_get_last(h, name, &v, &len) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        v != NULL) {
        snprintf(buf, size, "%.*s", (int)len, (const char *)v);
    }
    return buf;
}

/* Assigns every partition of the topics at the start (committed offsets of
 * the group, or the beginning) and records the ends to stop at. */
static enum core_err assign_all(struct reader *rd,
                                const struct dlq_read_config *cfg,
                                rd_kafka_topic_partition_list_t **ends,
                                char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new(8);
    rd_kafka_resp_err_t err;

    for (size_t t = 0; t < cfg->ntopics; t++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt =
            rd_kafka_topic_new(rd->cons, cfg->topics[t], NULL);
        err = rd_kafka_metadata(rd->cons, 0, rkt, &md, 10000);
        rd_kafka_topic_destroy(rkt);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 ||
            md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(errstr, errstr_size,
                     "cannot read the dead-letter topic '%s': %s",
                     cfg->topics[t],
                     err ? rd_kafka_err2str(err)
                         : rd_kafka_err2str(md->topics[0].err));
            if (md != NULL) {
                rd_kafka_metadata_destroy(md);
            }
            rd_kafka_topic_partition_list_destroy(list);
            return CORE_ERR_IO;
        }
        for (int p = 0; p < md->topics[0].partition_cnt; p++) {
            rd_kafka_topic_partition_list_add(list, cfg->topics[t],
                                              md->topics[0].partitions[p].id)
                ->offset = RD_KAFKA_OFFSET_BEGINNING;
        }
        rd_kafka_metadata_destroy(md);
    }
    if (cfg->group != NULL) {
        rd_kafka_committed(rd->cons, list, 10000);
        for (int i = 0; i < list->cnt; i++) {
            if (list->elems[i].offset < 0) {
                list->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
            }
        }
    }
    *ends = rd_kafka_topic_partition_list_copy(list);
    for (int i = 0; i < (*ends)->cnt; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_query_watermark_offsets(rd->cons, (*ends)->elems[i].topic,
                                         (*ends)->elems[i].partition, &lo, &hi,
                                         10000);
        (*ends)->elems[i].offset = hi;
        /* where reading starts, for the done check */
        if (list->elems[i].offset == RD_KAFKA_OFFSET_BEGINNING) {
            list->elems[i].offset = lo;
        }
        (*ends)->elems[i].err =
            list->elems[i].offset >= hi ? RD_KAFKA_RESP_ERR__PARTITION_EOF : 0;
    }
    err = rd_kafka_assign(rd->cons, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errstr, errstr_size,
                 "cannot assign the dead-letter topics: "
                 "%s",
                 rd_kafka_err2str(err));
        return CORE_ERR_IO;
    }
    return CORE_OK;
}

static int all_done(const rd_kafka_topic_partition_list_t *ends)
{
    for (int i = 0; i < ends->cnt; i++) {
        if (ends->elems[i].err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            return 0;
        }
    }
    return 1;
}

enum core_err dlq_read(const struct dlq_read_config *cfg, dlq_read_fn fn,
                       void *opaque, uint64_t *redriven, char *errstr,
                       size_t errstr_size)
{
    struct reader rd;
    rd_kafka_conf_t *cconf = NULL, *pconf = NULL;
    rd_kafka_topic_partition_list_t *ends = NULL, *pos = NULL;
    enum core_err rc = CORE_OK;
    char e[512];
    size_t produced = 0;

    memset(&rd, 0, sizeof(rd));
    *redriven = 0;
    cconf = conf_from(cfg, 1, errstr, errstr_size);
    if (cconf == NULL) {
        return CORE_ERR_USAGE;
    }
    rd_kafka_conf_set(cconf, "group.id",
                      cfg->group ? cfg->group : "userpipe-dlq-reader", e,
                      sizeof(e));
    rd_kafka_conf_set(cconf, "enable.auto.commit", "false", e, sizeof(e));
    rd_kafka_conf_set(cconf, "enable.partition.eof", "true", e, sizeof(e));
    rd.cons = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, e, sizeof(e));
    if (rd.cons == NULL) {
        snprintf(errstr, errstr_size, "cannot create a consumer: %s", e);
        return CORE_ERR_USAGE;
    }
    if (cfg->group != NULL) {
        pconf = conf_from(cfg, 0, errstr, errstr_size);
        if (pconf == NULL) {
            rc = CORE_ERR_USAGE;
            goto out;
        }
        rd_kafka_conf_set(pconf, "enable.idempotence", "true", e, sizeof(e));
        rd_kafka_conf_set(pconf, "acks", "all", e, sizeof(e));
        rd_kafka_conf_set_dr_msg_cb(pconf, dr_cb);
        rd_kafka_conf_set_opaque(pconf, &rd);
        rd.prod = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, e, sizeof(e));
        if (rd.prod == NULL) {
            snprintf(errstr, errstr_size, "cannot create a producer: %s", e);
            rc = CORE_ERR_USAGE;
            goto out;
        }
    }
    rc = assign_all(&rd, cfg, &ends, errstr, errstr_size);
    while (rc == CORE_OK && !all_done(ends)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rd.cons, 1000);
        struct sink_dlq_record rec;
        char code[64], path[512], msg[1024], st[512], sp[32], so[32], sts[32];
        rd_kafka_headers_t *h = NULL;
        rd_kafka_timestamp_type_t tstype;
        int64_t ts;

        if (m == NULL) {
            continue;
        }
        for (int i = 0; i < ends->cnt; i++) {
            if (m->rkt != NULL && ends->elems[i].partition == m->partition &&
                strcmp(ends->elems[i].topic, rd_kafka_topic_name(m->rkt)) ==
                    0) {
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
                    (m->err == 0 && m->offset + 1 >= ends->elems[i].offset)) {
                    ends->elems[i].err = RD_KAFKA_RESP_ERR__PARTITION_EOF;
                }
            }
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                core_log(CORE_LOG_WARN, "dlq",
                         "msg=\"read error\" error=\"%s\"",
                         rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        rd_kafka_message_headers(m, &h);
        memset(&rec, 0, sizeof(rec));
        rec.key = m->key;
        rec.key_len = m->key_len;
        /* NULL stays NULL: a dead-lettered tombstone is redriven as one
         * (and judged as one) */
        rec.value = m->payload;
        rec.len = m->len;
        rec.code = header(h, "userpipe.error.code", code, sizeof(code));
        rec.path = header(h, "userpipe.error.path", path, sizeof(path));
        rec.message = header(h, "userpipe.error.message", msg, sizeof(msg));
        rec.source_topic = header(h, "userpipe.source.topic", st, sizeof(st));
        rec.source_partition = (int32_t)atoi(
            header(h, "userpipe.source.partition", sp, sizeof(sp)));
        rec.source_offset = strtoll(
            header(h, "userpipe.source.offset", so, sizeof(so)), NULL, 10);
        rec.source_timestamp_ms = strtoll(
            header(h, "userpipe.source.timestamp", sts, sizeof(sts)), NULL, 10);
        {
            char t[8], size[24];
            rec.truncated =
                strcmp(header(h, SINK_DLQ_H_TRUNCATED, t, sizeof(t)), "1") == 0;
            rec.orig_len = (size_t)strtoull(
                header(h, SINK_DLQ_H_SIZE, size, sizeof(size)), NULL, 10);
        }
        ts = rd_kafka_message_timestamp(m, &tstype);
        /* a record cut to fit holds part of its value: never sent back,
         * whatever fn says (cmd/dlq.c counts and names them) */
        if (fn(opaque, &rec, ts) && rd.prod != NULL && !rec.truncated) {
            rd_kafka_resp_err_t err;
            if (rec.source_topic[0] == '\0') {
                core_log(CORE_LOG_WARN, "dlq",
                         "msg=\"record without a source topic header, "
                         "left\" offset=%lld",
                         (long long)m->offset);
            } else {
                do {
                    err = rd_kafka_producev(
                        rd.prod, RD_KAFKA_V_TOPIC(rec.source_topic),
                        RD_KAFKA_V_KEY(rec.key, rec.key ? rec.key_len : 0),
                        RD_KAFKA_V_VALUE((void *)rec.value, rec.len),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_END);
                    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        rd_kafka_poll(rd.prod, 100);
                    }
                } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
                if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                    snprintf(errstr, errstr_size, "cannot produce to '%s': %s",
                             rec.source_topic, rd_kafka_err2str(err));
                    rc = CORE_ERR_IO;
                } else {
                    produced++;
                }
            }
        }
        rd_kafka_message_destroy(m);
        if (rd.prod != NULL) {
            rd_kafka_poll(rd.prod, 0);
        }
    }
    if (rc == CORE_OK && rd.prod != NULL) {
        rd_kafka_flush(rd.prod, 60000);
        if (rd.acked != produced || rd.failed > 0) {
            snprintf(errstr, errstr_size, "%s",
                     rd.error[0] ? rd.error
                                 : "not every redriven record was "
                                   "acknowledged within 60 s; nothing "
                                   "committed, run the redrive again");
            rc = CORE_ERR_IO;
        }
    }
    if (rc == CORE_OK && cfg->group != NULL) {
        /* everything read is handled: commit the positions */
        rd_kafka_topic_partition_list_t *c =
            rd_kafka_topic_partition_list_new(ends->cnt);
        pos = rd_kafka_topic_partition_list_copy(ends);
        rd_kafka_position(rd.cons, pos);
        for (int i = 0; i < pos->cnt; i++) {
            if (pos->elems[i].offset >= 0) {
                rd_kafka_topic_partition_list_add(c, pos->elems[i].topic,
                                                  pos->elems[i].partition)
                    ->offset = pos->elems[i].offset;
            }
        }
        if (c->cnt > 0) {
            rd_kafka_resp_err_t err = rd_kafka_commit(rd.cons, c, 0);
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                snprintf(errstr, errstr_size,
                         "redriven, but the commit failed (%s): the next "
                         "redrive would send the records again",
                         rd_kafka_err2str(err));
                rc = CORE_ERR_IO;
            }
        }
        rd_kafka_topic_partition_list_destroy(c);
    }
    *redriven = rd.acked;
out:
    if (pos != NULL) {
        rd_kafka_topic_partition_list_destroy(pos);
    }
    if (ends != NULL) {
        rd_kafka_topic_partition_list_destroy(ends);
    }
    if (rd.cons != NULL) {
        rd_kafka_consumer_close(rd.cons);
        rd_kafka_destroy(rd.cons);
    }
    if (rd.prod != NULL) {
        rd_kafka_destroy(rd.prod);
    }
    return rc;
}
