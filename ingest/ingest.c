/*
 * ingest.c: the consumer: polling, its rebalances, pausing and committing.
 * It wires the files beside it: each consumed message is copied and given
 * a ticket by the watermark (watermark.c), which says what may be stored
 * for commit; assignments read their end offsets (end_offsets.c).
 *
 * Invariant: an offset is stored for commit only from the watermark
 * (enable.auto.offset.store=false), so a commit never skips an unsettled
 * message.  Memory is bounded by the caller holding back consumption
 * (sink saturation: ingest_poll with max 0, then ingest_pause) plus
 * librdkafka's prefetch, which is capped here through
 * queued.max.messages.kbytes.
 */
#include "ingest_int.h"
#include "../core/kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct part {
    char *topic;
    int32_t partition;
    struct ingest_end end;
    int64_t next_offset; /* after the last consumed message, -1 none */
};

struct ingest {
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    struct ingest_config cfg;
    struct ingest_callbacks cb;
    struct ingest_wm wm; /* the partitions (its owners), by slot */
    size_t last_slot;    /* cache for lookups */
    int assigned_once;
    int paused;
    int stopped;
    uint64_t consumed;
    char error[512];
};

/* ---- partitions -------------------------------------------------------- */

static struct part *part_find(struct ingest *ing, const char *topic,
                              int32_t partition, size_t *slot)
{
    struct part *p = ingest_wm_owner(&ing->wm, ing->last_slot);

    if (p != NULL && p->partition == partition &&
        strcmp(p->topic, topic) == 0) {
        *slot = ing->last_slot;
        return p;
    }
    for (size_t i = 0; i < ing->wm.nslots; i++) {
        p = ingest_wm_owner(&ing->wm, i);
        if (p != NULL && p->partition == partition &&
            strcmp(p->topic, topic) == 0) {
            ing->last_slot = *slot = i;
            return p;
        }
    }
    return NULL;
}

/* The partition of slot, NULL when the slot is free. */
static struct part *part_at(const struct ingest *ing, size_t slot)
{
    return ingest_wm_owner(&ing->wm, slot);
}

static void part_free(struct part *p)
{
    if (p == NULL) {
        return;
    }
    free(p->topic);
    free(p);
}

static void part_add(struct ingest *ing, const char *topic, int32_t partition)
{
    struct part *p = core_calloc(1, sizeof(*p));

    p->topic = core_strdup(topic);
    p->partition = partition;
    ingest_end_init(&p->end);
    p->next_offset = -1;
    ingest_wm_add(&ing->wm, p);
}

/* Stores the watermark of every partition whose head moved. */
static void store_offsets(struct ingest *ing)
{
    rd_kafka_topic_partition_list_t *list = NULL;

    for (size_t i = 0; i < ing->wm.nslots; i++) {
        struct part *p = part_at(ing, i);
        int64_t offset;

        if (p == NULL || !ingest_wm_take_stored(&ing->wm, i, &offset)) {
            continue;
        }
        if (list == NULL) {
            list = rd_kafka_topic_partition_list_new(8);
        }
        rd_kafka_topic_partition_list_add(list, p->topic, p->partition)
            ->offset = offset;
    }
    if (list != NULL) {
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(ing->rk, list);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            /* a partition just lost: its messages will be consumed again */
            core_log(CORE_LOG_WARN, "ingest",
                     "msg=\"cannot store offsets\" error=\"%s\"",
                     rd_kafka_err2str(err));
        }
        rd_kafka_topic_partition_list_destroy(list);
    }
}

/* A consumed message, copied out of librdkafka's fetch buffer: a message
 * kept by librdkafka pins its whole fetch response (up to fetch.max.bytes)
 * until destroyed, so holding the consumed messages of a hundred
 * partitions until Moesif settles them would hold a hundred buffers (make
 * bench saw 170 MB).  A copy costs one allocation and the message's own
 * bytes. */
static struct ingest_held *hold(const rd_kafka_message_t *m)
{
    size_t klen = m->key != NULL ? m->key_len : 0;
    rd_kafka_headers_t *hdrs = NULL;
    size_t hlen = 0;
    struct ingest_held *h;
    rd_kafka_timestamp_type_t tstype;

    /* the message's own headers, for its dead-letter record (issue 20);
     * most messages have none and cost nothing */
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        hlen = core_kafka_headers_pack(hdrs, NULL);
    }
    h = core_malloc(sizeof(*h) + klen + m->len + hlen);
    h->hdr_len = hlen;
    if (hlen > 0) {
        core_kafka_headers_pack(hdrs, h->bytes + klen + m->len);
    }

    h->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
    h->key_len = m->key != NULL ? m->key_len : SIZE_MAX;
    h->len = m->len;
    h->tombstone = m->payload == NULL;
    if (klen > 0) {
        memcpy(h->bytes, m->key, klen);
    }
    if (m->len > 0) {
        memcpy(h->bytes + klen, m->payload, m->len);
    }
    return h;
}

static void fill_msg(struct ingest_msg *out, const struct part *p,
                     const struct ingest_held *h, int64_t offset,
                     uint64_t ticket)
{
    size_t klen = h->key_len == SIZE_MAX ? 0 : h->key_len;

    out->key = h->key_len == SIZE_MAX ? NULL : h->bytes;
    out->key_len = klen;
    out->value = h->tombstone ? NULL : h->bytes + klen;
    out->len = h->len;
    out->topic = p->topic;
    out->partition = p->partition;
    out->offset = offset;
    out->timestamp_ms = h->timestamp_ms;
    out->headers = h->hdr_len > 0 ? h->bytes + klen + h->len : NULL;
    out->headers_len = h->hdr_len;
    out->ticket = ticket;
}

int ingest_message(const struct ingest *ing, uint64_t ticket,
                   struct ingest_msg *msg)
{
    void *owner;
    int64_t offset;
    const struct ingest_held *h =
        ingest_wm_get(&ing->wm, ticket, &owner, &offset);

    if (h == NULL) {
        return -1;
    }
    fill_msg(msg, owner, h, offset, ticket);
    return 0;
}

void ingest_done(struct ingest *ing, uint64_t ticket)
{
    (void)ingest_wm_settle(&ing->wm, ticket);
}

/*
 * --exit-at-end: a partition at the end it had at the start is paused for
 * good, and what it still hands out past that end is dropped unstored (a
 * later run consumes it): on a topic still being written to, the backfill
 * must end at its start's end, not chase the producers.
 */
static void mark_end(struct ingest *ing, struct part *p)
{
    rd_kafka_topic_partition_list_t *l;

    if (!ingest_end_reach(&p->end, ing->cfg.exit_at_end)) {
        return;
    }
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    rd_kafka_pause_partitions(ing->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* ---- rebalances ---------------------------------------------------------- */

/* --exit-at-end: the end offset of each newly assigned partition, and
 * whether it is empty (end_offsets.c). */
static void read_ends(struct ingest *ing,
                      const rd_kafka_topic_partition_list_t *parts)
{
    struct ingest_end **ends =
        core_calloc((size_t)parts->cnt + 1, sizeof(*ends));

    for (int i = 0; i < parts->cnt; i++) {
        size_t slot;
        struct part *p = part_find(ing, parts->elems[i].topic,
                                   parts->elems[i].partition, &slot);
        ends[i] = p != NULL ? &p->end : NULL;
    }
    ingest_read_ends(ing->rk, parts, ends);
    free(ends);
}

static void on_assign(struct ingest *ing,
                      rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_resp_err_t err;

    for (int i = 0; i < parts->cnt; i++) {
        part_add(ing, parts->elems[i].topic, parts->elems[i].partition);
    }
    if (ing->cfg.exit_at_end) {
        read_ends(ing, parts);
    }
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        size_t slot;
        const struct part *p = part_find(ing, tp->topic, tp->partition, &slot);
        core_log(CORE_LOG_INFO, "ingest",
                 "msg=\"partition assigned\" topic=%s partition=%d "
                 "end_offset=%lld",
                 tp->topic, tp->partition,
                 (long long)(p != NULL ? p->end.end_at_start : -1));
    }
    err = rd_kafka_assign(ing->rk, parts);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(ing->error, sizeof(ing->error), "cannot assign partitions: %s",
                 rd_kafka_err2str(err));
    }
    if (ing->paused || ing->stopped) {
        rd_kafka_pause_partitions(ing->rk, parts);
    }
    if (ing->cfg.exit_at_end && ing->cfg.from_beginning) {
        /* partitions already committed at their end give no EOF before
         * a fetch; the committed offsets tell */
        rd_kafka_topic_partition_list_t *c =
            rd_kafka_topic_partition_list_copy(parts);
        if (rd_kafka_committed(ing->rk, c, 10000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            for (int i = 0; i < c->cnt; i++) {
                size_t slot;
                struct part *p = part_find(ing, c->elems[i].topic,
                                           c->elems[i].partition, &slot);
                /* an unknown end (-1) is never reached this way */
                if (p != NULL && ingest_end_past(&p->end, c->elems[i].offset)) {
                    mark_end(ing, p);
                }
            }
        }
        rd_kafka_topic_partition_list_destroy(c);
    }
    for (int i = 0; i < parts->cnt; i++) {
        size_t slot;
        struct part *p = part_find(ing, parts->elems[i].topic,
                                   parts->elems[i].partition, &slot);
        if (p != NULL && p->end.reached_end) {
            mark_end(ing, p); /* empty, or committed at its end */
        }
    }
    ing->assigned_once = 1;
}

static void on_revoke(struct ingest *ing,
                      rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_resp_err_t err;
    unsigned given_up = 0;

    core_log(CORE_LOG_INFO, "ingest",
             "msg=\"partitions revoked: settling in-flight events\" "
             "partitions=%d in_flight=%zu",
             parts->cnt, ing->wm.in_flight);
    if (ing->wm.in_flight > 0 && ing->cb.drain != NULL) {
        ing->cb.drain(ing->cb.opaque,
                      core_now_ms() + (int64_t)ing->cfg.drain_timeout_ms);
    }
    store_offsets(ing);
    err = rd_kafka_commit(ing->rk, NULL, 0);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
        err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        core_log(CORE_LOG_WARN, "ingest",
                 "msg=\"commit before giving up partitions failed\" "
                 "error=\"%s\"",
                 rd_kafka_err2str(err));
    }
    for (int i = 0; i < parts->cnt; i++) {
        size_t slot, unsettled;
        struct part *p = part_find(ing, parts->elems[i].topic,
                                   parts->elems[i].partition, &slot);
        if (p == NULL) {
            continue;
        }
        /* what was not settled in time is forgotten here, consumed again
         * by the next owner; the caller drops it (given_up), so this
         * instance sends none of it after the new owner starts */
        unsettled = ingest_wm_remove(&ing->wm, slot);
        if (unsettled > 0) {
            core_log(CORE_LOG_WARN, "ingest",
                     "msg=\"partition given up with events in flight: "
                     "dropped, its next owner consumes them again\" "
                     "topic=%s partition=%d in_flight=%llu",
                     p->topic, p->partition, (unsigned long long)unsettled);
            given_up++;
        }
        part_free(p);
    }
    rd_kafka_assign(ing->rk, NULL);
    if (given_up > 0 && ing->cb.given_up != NULL) {
        ing->cb.given_up(ing->cb.opaque);
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct ingest *ing = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(ing, parts);
    } else {
        on_revoke(ing, parts);
    }
}

/* ---- construction -------------------------------------------------------- */

static const char *user_value(const struct ingest_config *cfg, const char *k)
{
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        if (strcmp(cfg->kafka_keys[i], k) == 0) {
            return cfg->kafka_values[i];
        }
    }
    return NULL;
}

enum core_err ingest_new(const struct ingest_config *cfg,
                         const struct ingest_callbacks *cb, struct ingest **out,
                         char *errstr, size_t errstr_size)
{
    /* Defaults that keep memory bounded and delivery explicit.
     * queued.max.messages.kbytes bounds the one consumer queue all
     * partitions feed (8 MiB gave the rate of 16 MiB: 1M events over 108
     * partitions, 187k/s at 63 MB against 171k/s at 105 MB peak RSS);
     * fetch.max.bytes is what one response may add above the cap, per
     * broker.  fetch.queue.backoff.ms (librdkafka 2.2.0, the fix of its
     * issue 2879): a partition over the queue's thresholds is fetched
     * again that long later, 1000 ms by default, a second of idling at
     * each full queue (librdkafka 2.0.2 needed a thread of ours to wake
     * its brokers instead).  10 ms: half a queue drains in a few ms at
     * 100k+ events/s, at the cost of a wake-up per 10 ms while the queue
     * is full.  The user's kafka.* wins over each. */
    static const char *const defaults[][2] = {
        {"queued.max.messages.kbytes", "8192"},
        {"fetch.max.bytes", "2097152"},
        {"fetch.queue.backoff.ms", "10"},
        {"auto.commit.interval.ms", "1000"},
        {"enable.auto.commit", "true"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    struct ingest *ing = core_calloc(1, sizeof(*ing));
    rd_kafka_topic_partition_list_t *topics = NULL;
    rd_kafka_resp_err_t err;
    char e[512];
    enum core_err rc = CORE_OK;
    char *list = NULL, *tok, *save;
    struct core_kafka_props user = {cfg->kafka_keys, cfg->kafka_values,
                                    cfg->kafka_count};

    *out = NULL;
    ing->cfg = *cfg;
    if (cb != NULL) {
        ing->cb = *cb;
    }
    if (user_value(cfg, "bootstrap.servers") == NULL) {
        snprintf(errstr, errstr_size,
                 "configuration key 'kafka.bootstrap.servers' is required: "
                 "the Kafka brokers to connect to, host:port,...");
        rc = CORE_ERR_USAGE;
        goto out;
    }
    /* the kafka.* settings userpipe owns (cooperative assignment among
     * them) were refused by config_load (core_kafka_refuse); what is
     * forced below wins over any that reach here anyway */
    if (user_value(cfg, "group.id") == NULL) {
        snprintf(errstr, errstr_size,
                 "configuration key 'kafka.group.id' is required: the "
                 "consumer group every replica of this pipeline shares");
        rc = CORE_ERR_USAGE;
        goto out;
    }
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        rc = core_kafka_set(conf, defaults[i][0], defaults[i][1],
                            "Kafka consumer", errstr, errstr_size);
        if (rc != CORE_OK) {
            goto out;
        }
    }
    rc =
        core_kafka_apply(conf, CORE_KAFKA_CONSUMER, &user, errstr, errstr_size);
    /* not overridable: offsets are stored by the watermark only */
    if (rc == CORE_OK) {
        rc = core_kafka_set(conf, "enable.auto.offset.store", "false",
                            "Kafka consumer", errstr, errstr_size);
    }
    if (rc == CORE_OK && cfg->exit_at_end) {
        rc = core_kafka_set(conf, "enable.partition.eof", "true",
                            "Kafka consumer", errstr, errstr_size);
    }
    if (rc == CORE_OK && cfg->from_beginning) {
        rc = core_kafka_set(conf, "auto.offset.reset", "earliest",
                            "Kafka consumer", errstr, errstr_size);
    }
    if (rc != CORE_OK) {
        goto out;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, ing);
    ing->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
    if (ing->rk == NULL) {
        snprintf(errstr, errstr_size, "cannot create the Kafka consumer: %s",
                 e);
        rc = CORE_ERR_USAGE;
        goto out;
    }
    conf = NULL; /* owned by rk now */
    rd_kafka_poll_set_consumer(ing->rk);
    ing->queue = rd_kafka_queue_get_consumer(ing->rk);

    topics = rd_kafka_topic_partition_list_new(4);
    list = core_strdup(cfg->topics);
    for (tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') {
            tok++;
        }
        if (*tok != '\0') {
            rd_kafka_topic_partition_list_add(topics, tok,
                                              RD_KAFKA_PARTITION_UA);
        }
    }
    if (topics->cnt == 0) {
        snprintf(errstr, errstr_size,
                 "configuration key 'source.topics' names no topic");
        rc = CORE_ERR_USAGE;
        goto out;
    }
    err = rd_kafka_subscribe(ing->rk, topics);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errstr, errstr_size, "cannot subscribe to '%s': %s",
                 cfg->topics, rd_kafka_err2str(err));
        rc = CORE_ERR_USAGE;
        goto out;
    }
    *out = ing;
    ing = NULL;
out:
    free(list);
    if (topics != NULL) {
        rd_kafka_topic_partition_list_destroy(topics);
    }
    if (conf != NULL) {
        rd_kafka_conf_destroy(conf);
    }
    ingest_destroy(ing);
    return rc;
}

void ingest_destroy(struct ingest *ing)
{
    if (ing == NULL) {
        return;
    }
    if (ing->rk != NULL) {
        ing->cb.drain = NULL;    /* nothing left to drive during close */
        ing->cb.given_up = NULL; /* nor to drop from */
        rd_kafka_consumer_close(ing->rk);
        if (ing->queue != NULL) {
            rd_kafka_queue_destroy(ing->queue);
        }
    }
    for (size_t i = 0; i < ing->wm.nslots; i++) {
        part_free(part_at(ing, i));
    }
    ingest_wm_release(&ing->wm);
    if (ing->rk != NULL) {
        rd_kafka_destroy(ing->rk);
    }
    free(ing);
}

/* ---- consuming ----------------------------------------------------------- */

static void on_error_message(struct ingest *ing, rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        size_t slot;
        struct part *p = m->rkt ? part_find(ing, rd_kafka_topic_name(m->rkt),
                                            m->partition, &slot)
                                : NULL;
        if (p != NULL && ingest_end_eof(&p->end, m->offset)) {
            mark_end(ing, p);
        }
        return;
    }
    if (rd_kafka_fatal_error(ing->rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        char fe[256];
        rd_kafka_fatal_error(ing->rk, fe, sizeof(fe));
        snprintf(ing->error, sizeof(ing->error), "fatal consumer error: %s",
                 fe);
        return;
    }
    core_log(CORE_LOG_WARN, "ingest", "msg=\"consumer error\" error=\"%s\"",
             rd_kafka_message_errstr(m));
}

int ingest_poll(struct ingest *ing, struct ingest_msg *msgs, int max,
                int timeout_ms)
{
    rd_kafka_message_t *batch[1024];
    ssize_t n;
    int out = 0;

    store_offsets(ing);
    if (max <= 0) {
        return 0;
    }
    if (max > 1024) {
        max = 1024;
    }
    n = rd_kafka_consume_batch_queue(ing->queue, timeout_ms, batch,
                                     (size_t)max);
    if (ing->error[0] != '\0') {
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_destroy(batch[i]);
        }
        return -1;
    }
    for (ssize_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = batch[i];
        const char *topic;
        struct part *p;
        struct ingest_held *h;
        size_t slot;
        uint64_t ticket;

        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            on_error_message(ing, m);
            rd_kafka_message_destroy(m);
            continue;
        }
        topic = rd_kafka_topic_name(m->rkt);
        p = part_find(ing, topic, m->partition, &slot);
        if (p == NULL || ing->stopped) {
            /* not ours (any more): it will be consumed again */
            rd_kafka_message_destroy(m);
            continue;
        }
        if (ing->cfg.exit_at_end && ingest_end_past(&p->end, m->offset)) {
            /* past this backfill's end: for a later run, unstored */
            mark_end(ing, p);
            rd_kafka_message_destroy(m);
            continue;
        }
        h = hold(m);
        ticket = ingest_wm_push(&ing->wm, slot, h, m->offset);
        p->next_offset = m->offset + 1;
        if (ingest_end_past(&p->end, m->offset + 1)) {
            mark_end(ing, p);
        }
        fill_msg(&msgs[out], p, h, m->offset, ticket);
        rd_kafka_message_destroy(m);
        ing->consumed++;
        out++;
    }
    if (ing->error[0] != '\0') {
        return -1;
    }
    return out;
}

static void pause_all(struct ingest *ing, int paused)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    if (rd_kafka_assignment(ing->rk, &list) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return;
    }
    if (!paused) {
        /* a partition at its --exit-at-end end stays paused */
        for (size_t i = 0; i < ing->wm.nslots; i++) {
            const struct part *p = part_at(ing, i);
            if (p != NULL && p->end.end_paused) {
                rd_kafka_topic_partition_list_del(list, p->topic, p->partition);
            }
        }
    }
    if (list->cnt > 0) {
        if (paused) {
            rd_kafka_pause_partitions(ing->rk, list);
        } else {
            rd_kafka_resume_partitions(ing->rk, list);
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
}

void ingest_pause(struct ingest *ing, int paused)
{
    if (ing->stopped || ing->paused == paused) {
        return;
    }
    ing->paused = paused;
    pause_all(ing, paused);
    core_log(CORE_LOG_DEBUG, "ingest", "msg=\"%s\"",
             paused ? "paused: the sink is saturated" : "resumed");
}

void ingest_stop(struct ingest *ing)
{
    if (!ing->stopped) {
        pause_all(ing, 1);
        ing->stopped = 1;
    }
}

size_t ingest_in_flight(const struct ingest *ing)
{
    return ing->wm.in_flight;
}

int ingest_at_end(const struct ingest *ing)
{
    return ing->wm.in_flight == 0 && ingest_caught_up(ing);
}

int ingest_caught_up(const struct ingest *ing)
{
    size_t live = 0;
    if (!ing->assigned_once) {
        return 0;
    }
    for (size_t i = 0; i < ing->wm.nslots; i++) {
        const struct part *p = part_at(ing, i);
        if (p == NULL) {
            continue;
        }
        live++;
        if (!p->end.reached_end) {
            return 0;
        }
    }
    return live > 0;
}

enum core_err ingest_commit(struct ingest *ing)
{
    rd_kafka_resp_err_t err;

    store_offsets(ing);
    err = rd_kafka_commit(ing->rk, NULL, 0);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
        err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        core_log(CORE_LOG_WARN, "ingest", "msg=\"commit failed\" error=\"%s\"",
                 rd_kafka_err2str(err));
        return CORE_ERR_RETRY;
    }
    return CORE_OK;
}

size_t ingest_partitions(const struct ingest *ing,
                         struct ingest_partition_info *out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < ing->wm.nslots && n < max; i++) {
        const struct part *p = part_at(ing, i);
        int64_t lo = -1, hi = -1;

        if (p == NULL) {
            continue;
        }
        /* cached by librdkafka from fetch responses: never blocks */
        rd_kafka_get_watermark_offsets(ing->rk, p->topic, p->partition, &lo,
                                       &hi);
        out[n].topic = p->topic;
        out[n].partition = p->partition;
        out[n].lag = -1;
        if (hi >= 0 && p->next_offset >= 0) {
            out[n].lag = hi > p->next_offset ? hi - p->next_offset : 0;
        }
        out[n].remaining = ingest_end_remaining(&p->end, p->next_offset, lo);
        out[n].paused = ing->paused || ing->stopped;
        n++;
    }
    return n;
}

const char *ingest_error(const struct ingest *ing)
{
    return ing->error;
}

void ingest_get_stats(const struct ingest *ing, struct ingest_stats *st)
{
    unsigned assigned = 0;
    for (size_t i = 0; i < ing->wm.nslots; i++) {
        if (part_at(ing, i) != NULL) {
            assigned++;
        }
    }
    st->consumed = ing->consumed;
    st->settled = ing->wm.settled;
    st->assigned = assigned;
    st->paused = ing->paused;
    st->lag = -1;
}
