/*
 * kafka_dev_probe.c: the commands answered by asking the brokers over the
 * Kafka protocol: topics, watermarks, check, committed, leaders, isr,
 * brokers, and create-topic on a real broker (the Admin API).  Each makes
 * a short-lived consumer, the probe, and destroys it before replying.
 *
 * Why separate: these work on the mock and on a real Apache Kafka alike
 * (`remote`), and they are the commands that send requests, so pushed
 * errors can be consumed by them (README.md, "Things to know").
 *
 * Invariant: a probe never creates a topic: it is a consumer with
 * allow.auto.create.topics=false, and it asks for metadata of all topics,
 * never of one unknown topic by name (the mock answers Metadata only up
 * to v2, where asking would create it).
 */
#include "kafka_dev.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Probes report through their command's reply; their logs are noise. */
static void kd_probe_log(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf)
{
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

/*
 * A short-lived client of our own brokers for the commands that need the
 * Kafka protocol (topics, watermarks, committed offsets), in group when
 * group is non-NULL.  A consumer, never a producer: librdkafka 2.0.2 lets
 * a producer's metadata requests auto-create topics whatever
 * allow.auto.create.topics says, and a probe must never create one.
 * Returns NULL with the error reply written on failure.
 */
static rd_kafka_t *kd_probe_new(const struct kd_server *srv, const char *group,
                                struct kd_buf *reply)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;

    rd_kafka_conf_set_log_cb(conf, kd_probe_log);
    if (kd_conf_set(conf, "bootstrap.servers", srv->bootstraps, errstr,
                    sizeof(errstr)) != 0 ||
        kd_conf_set(conf, "client.id", "kafka-dev-probe", errstr,
                    sizeof(errstr)) != 0 ||
        kd_conf_set(conf, "allow.auto.create.topics", "false", errstr,
                    sizeof(errstr)) != 0) {
        goto out;
    }
    if (group != NULL &&
        (kd_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) != 0 ||
         kd_conf_set(conf, "enable.auto.commit", "false", errstr,
                     sizeof(errstr)) != 0)) {
        goto out;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk != NULL) {
        conf = NULL; /* rd_kafka_new took it */
    }
out:
    if (conf != NULL) {
        rd_kafka_conf_destroy(conf);
    }
    if (rk == NULL) {
        kd_buf_printf(reply, "error cannot create a probe client: %s", errstr);
    }
    return rk;
}

/*
 * Metadata through the probe, of every topic when all_topics (else of the
 * brokers and the topics the probe knows) into *md, which the caller
 * destroys; -1 with the error reply written when no broker answered.
 */
static int kd_probe_metadata(rd_kafka_t *rk, int all_topics,
                             const struct rd_kafka_metadata **md,
                             struct kd_buf *reply)
{
    rd_kafka_resp_err_t err =
        rd_kafka_metadata(rk, all_topics, NULL, md, KD_PROBE_TIMEOUT_MS);

    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        kd_buf_printf(reply,
                      "error no broker answered a metadata request within "
                      "%d ms: %s",
                      KD_PROBE_TIMEOUT_MS, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

static int kd_cmp_topic_ptr(const void *a, const void *b)
{
    const rd_kafka_metadata_topic_t *const *ta = a;
    const rd_kafka_metadata_topic_t *const *tb = b;

    return strcmp((*ta)->topic, (*tb)->topic);
}

/*
 * Partition count of one topic through the probe; 0 and a sentence in
 * reply when the topic does not exist or no broker answered.  It asks for
 * all topics: the mock answers Metadata only up to v2, which has no
 * AllowAutoTopicCreation field, so asking for one unknown topic by name
 * would create it.
 */
static int kd_topic_partitions(rd_kafka_t *rk, const char *topic,
                               struct kd_buf *reply)
{
    const struct rd_kafka_metadata *md = NULL;
    int partitions = 0;

    if (kd_probe_metadata(rk, 1, &md, reply) != 0) {
        return 0;
    }
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0 &&
            md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            partitions = md->topics[i].partition_cnt;
        }
    }
    if (partitions == 0) {
        kd_buf_printf(reply, "error topic \"%s\" does not exist", topic);
    }
    rd_kafka_metadata_destroy(md);
    return partitions;
}

/* "topics": every topic and its partition count, sorted by name. */
void kd_cmd_topics(struct kd_server *srv, struct kd_buf *reply)
{
    const struct rd_kafka_metadata *md = NULL;
    const rd_kafka_metadata_topic_t **sorted = NULL;
    rd_kafka_t *rk = kd_probe_new(srv, NULL, reply);

    if (rk == NULL) {
        return;
    }
    if (kd_probe_metadata(rk, 1, &md, reply) != 0) {
        goto out;
    }
    sorted = kd_realloc(NULL, sizeof(*sorted) * (size_t)md->topic_cnt);
    for (int i = 0; i < md->topic_cnt; i++) {
        sorted[i] = &md->topics[i];
    }
    qsort(sorted, (size_t)md->topic_cnt, sizeof(*sorted), kd_cmp_topic_ptr);
    kd_buf_printf(reply, "ok");
    for (int i = 0; i < md->topic_cnt; i++) {
        kd_buf_printf(reply, " %s:%d", sorted[i]->topic,
                      sorted[i]->partition_cnt);
    }
out:
    free(sorted);
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
}

/*
 * Watermarks of every partition of topic, appended to reply as
 * " P:LOW..HIGH"; when lost is non-NULL only partitions whose low
 * watermark is above 0 (data dropped by the cap) are appended, and *lost
 * counts them.  Returns -1 with an error reply on failure.
 */
static int kd_watermarks(rd_kafka_t *rk, const char *topic,
                         struct kd_buf *reply, int *lost)
{
    struct kd_buf err_reply = {0};
    int partitions = kd_topic_partitions(rk, topic, &err_reply);
    int rc = 0;

    if (partitions == 0) {
        kd_buf_reset(reply);
        kd_buf_printf(reply, "%s", err_reply.p);
        rc = -1;
        goto out;
    }
    for (int p = 0; p < partitions; p++) {
        int64_t lo = 0;
        int64_t hi = 0;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            rk, topic, p, &lo, &hi, KD_PROBE_TIMEOUT_MS);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            kd_buf_reset(reply);
            kd_buf_printf(reply,
                          "error no watermarks for \"%s\" [%d] within %d ms: "
                          "%s",
                          topic, p, KD_PROBE_TIMEOUT_MS, rd_kafka_err2str(err));
            rc = -1;
            goto out;
        }
        if (lost == NULL) {
            kd_buf_printf(reply, " %d:%" PRId64 "..%" PRId64, p, lo, hi);
        } else if (lo > 0) {
            kd_buf_printf(reply, " %s[%d] lost offsets 0..%" PRId64 ";", topic,
                          p, lo - 1);
            (*lost)++;
        }
    }
out:
    kd_buf_release(&err_reply);
    return rc;
}

/* "watermarks TOPIC" */
void kd_cmd_watermarks(struct kd_server *srv, const char *topic,
                       struct kd_buf *reply)
{
    struct kd_buf body = {0};
    rd_kafka_t *rk = kd_probe_new(srv, NULL, reply);

    if (rk == NULL) {
        return;
    }
    if (kd_watermarks(rk, topic, &body, NULL) == 0) {
        kd_buf_printf(reply, "ok %s%s", topic, body.p);
    } else {
        kd_buf_printf(reply, "%s", body.p);
    }
    kd_buf_release(&body);
    rd_kafka_destroy(rk);
}

/*
 * "check [TOPIC]...": did the partition cap drop data?  A low watermark
 * above 0 can only come from the cap here: this mock version has no
 * retention and no DeleteRecords.
 */
void kd_cmd_check(struct kd_server *srv, int argc, char **argv,
                  struct kd_buf *reply)
{
    const struct rd_kafka_metadata *md = NULL;
    struct kd_buf body = {0};
    int lost = 0;
    int checked = 0;
    rd_kafka_t *rk = kd_probe_new(srv, NULL, reply);

    if (rk == NULL) {
        return;
    }
    if (argc == 0) {
        if (kd_probe_metadata(rk, 1, &md, reply) != 0) {
            goto out;
        }
        for (int i = 0; i < md->topic_cnt; i++) {
            if (kd_watermarks(rk, md->topics[i].topic, &body, &lost) != 0) {
                kd_buf_printf(reply, "%s", body.p);
                goto out;
            }
            checked++;
        }
    }
    for (int i = 0; i < argc; i++) {
        if (kd_watermarks(rk, argv[i], &body, &lost) != 0) {
            kd_buf_printf(reply, "%s", body.p);
            goto out;
        }
        checked++;
    }
    if (lost == 0) {
        kd_buf_printf(reply, "ok no partition lost data in %d topic(s)",
                      checked);
    } else {
        kd_buf_printf(reply,
                      "error %d partition(s) went over the mock broker's "
                      "%d MiB cap and silently dropped their oldest "
                      "batches:%s use more partitions (kafka-dev plan says "
                      "how many)",
                      lost, KD_PARTITION_CAP_MIB, body.p);
    }
out:
    kd_buf_release(&body);
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
}

/* "committed GROUP TOPIC": the group's committed offset per partition. */
void kd_cmd_committed(struct kd_server *srv, const char *group,
                      const char *topic, struct kd_buf *reply)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t err;
    int partitions;
    rd_kafka_t *rk = kd_probe_new(srv, group, reply);

    if (rk == NULL) {
        return;
    }
    partitions = kd_topic_partitions(rk, topic, reply);
    if (partitions == 0) {
        goto out;
    }
    parts = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++) {
        rd_kafka_topic_partition_list_add(parts, topic, p);
    }
    err = rd_kafka_committed(rk, parts, KD_PROBE_TIMEOUT_MS);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        kd_buf_printf(reply,
                      "error no committed offsets of group \"%s\" within "
                      "%d ms: %s",
                      group, KD_PROBE_TIMEOUT_MS, rd_kafka_err2str(err));
        goto out;
    }
    kd_buf_printf(reply, "ok %s", topic);
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        if (tp->offset < 0) {
            kd_buf_printf(reply, " %d:none", tp->partition);
        } else {
            kd_buf_printf(reply, " %d:%" PRId64, tp->partition, tp->offset);
        }
    }
out:
    if (parts != NULL) {
        rd_kafka_topic_partition_list_destroy(parts);
    }
    rd_kafka_destroy(rk);
}

/*
 * "create-topic NAME:PARTS" on a real broker: the Admin API, replication
 * min(3, brokers) with min.insync.replicas 2 at three copies, as userpipe
 * itself creates topics (core/kafka.c), and unlimited retention.  TOPIC_ALREADY_EXISTS is an
 * error here, as on the mock.
 */
void kd_remote_create_topic(struct kd_server *srv, const char *spec,
                            struct kd_buf *reply)
{
    char name[KD_TOPIC_NAME_MAX + 1];
    char errstr[512];
    long partitions;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_NewTopic_t *nt = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    rd_kafka_resp_err_t err;
    int repl;
    rd_kafka_t *rk;

    if (kd_parse_topic_spec(spec, name, &partitions, errstr, sizeof(errstr)) !=
        0) {
        kd_buf_printf(reply, "error %s", errstr);
        return;
    }
    rk = kd_probe_new(srv, NULL, reply);
    if (rk == NULL) {
        return;
    }
    if (kd_probe_metadata(rk, 0, &md, reply) != 0) {
        goto out;
    }
    repl = md->broker_cnt < KD_MAX_REPLICATION ? md->broker_cnt
                                               : KD_MAX_REPLICATION;
    nt = rd_kafka_NewTopic_new(name, (int)partitions, repl, errstr,
                               sizeof(errstr));
    if (nt == NULL) {
        kd_buf_printf(reply, "error %s", errstr);
        goto out;
    }
    if (repl >= 3) {
        rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", "2");
    }
    /* every dev topic keeps what it is given: the schema topic must (a
     * finite retention is refused by userpipe, issue 20), and a test's
     * topics live no longer than the test */
    rd_kafka_NewTopic_set_config(nt, "retention.ms", "-1");
    rd_kafka_NewTopic_set_config(nt, "retention.bytes", "-1");
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    if (ev == NULL) {
        kd_buf_printf(reply, "error create-topic %s: no answer within 30 s",
                      name);
        goto out;
    }
    err = rd_kafka_event_error(ev);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(
                rd_kafka_event_CreateTopics_result(ev), &n);
        if (n == 1) {
            err = rd_kafka_topic_result_error(res[0]);
        }
    }
    snprintf(errstr, sizeof(errstr), "create-topic %s:%ld", name, partitions);
    kd_reply_err(reply, errstr, err);
out:
    if (ev != NULL) {
        rd_kafka_event_destroy(ev);
    }
    if (q != NULL) {
        rd_kafka_queue_destroy(q);
    }
    if (nt != NULL) {
        rd_kafka_NewTopic_destroy(nt);
    }
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
}

/*
 * "leaders TOPIC" (" P:LEADER" per partition), "isr TOPIC" (" P:ID,ID..."
 * in-sync replicas) and "brokers" (" ID:HOST:PORT"): what the kill tests
 * of tests/kafka/ need to know whom to kill.
 */
void kd_cmd_layout(struct kd_server *srv, const char *what, const char *topic,
                   struct kd_buf *reply)
{
    const struct rd_kafka_metadata *md = NULL;
    const rd_kafka_metadata_topic_t *t = NULL;
    rd_kafka_t *rk = kd_probe_new(srv, NULL, reply);

    if (rk == NULL) {
        return;
    }
    if (kd_probe_metadata(rk, topic == NULL, &md, reply) != 0) {
        goto out;
    }
    if (topic == NULL) {
        kd_buf_printf(reply, "ok");
        for (int i = 0; i < md->broker_cnt; i++) {
            kd_buf_printf(reply, " %d:%s:%d", md->brokers[i].id,
                          md->brokers[i].host, md->brokers[i].port);
        }
        goto out;
    }
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0) {
            t = &md->topics[i];
        }
    }
    if (t == NULL || t->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        kd_buf_printf(reply, "error topic \"%s\" does not exist", topic);
        goto out;
    }
    kd_buf_printf(reply, "ok %s", topic);
    for (int p = 0; p < t->partition_cnt; p++) {
        const rd_kafka_metadata_partition_t *mp = &t->partitions[p];
        if (strcmp(what, "leaders") == 0) {
            kd_buf_printf(reply, " %d:%d", mp->id, mp->leader);
            continue;
        }
        kd_buf_printf(reply, " %d:", mp->id);
        for (int r = 0; r < mp->isr_cnt; r++) {
            kd_buf_printf(reply, "%s%d", r ? "," : "", mp->isrs[r]);
        }
    }
out:
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
}
