/*
 * refill.c: wakes librdkafka's broker threads, from a thread of its own,
 * so that a consumer queue drained by the main loop is fetched into again
 * at once rather than up to a second later.
 *
 * Why: librdkafka 2.0.2 stops fetching a partition while the consumer
 * queue holds more than queued.max.messages.kbytes (or queued.min.messages)
 * and decides again only when the broker thread wakes: on network
 * activity, on an operation queued to it, or after 1 s (rd_kafka_max_block_ms
 * in rdkafka_broker.c).  A consumer slower than its brokers fills the queue
 * at every fetch, so each fill was followed by up to a second of an empty
 * queue: make bench saw the pipeline idle three quarters of its time
 * (librdkafka issue 2879; fetch.queue.backoff.ms, added in 2.2.0, is the
 * library's own fix).  A request to a broker is such an operation, so one
 * ListOffsets request (rd_kafka_offsets_for_times, which answers from the
 * partition leaders and changes nothing) to each leader wakes them all.
 *
 * Why a thread: the request blocks until its answers come back, which
 * make bench measured at 15 to 45 ms behind 4 MiB fetch responses; the
 * main loop must not wait for it.  The thread shares only this file's
 * struct, under its mutex, and calls nothing of librdkafka but
 * rd_kafka_offsets_for_times, which is thread-safe.
 *
 * The policy (when to kick: ingest_refill_due; whom: ingest_refill_wake,
 * ingest_refill_leaders) lives here too, beside the thread it feeds; it
 * runs on the consumer's thread and its state (filled) is that thread's
 * alone.  Invariant: a kick changes nothing on the brokers, so a kick too
 * many costs one request and a kick missed costs up to a second, never
 * an event.
 */
#include "ingest_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct ingest_refill {
    rd_kafka_t *rk;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rd_kafka_topic_partition_list_t *next; /* the kick to send; mu */
    int stop;                              /* mu */
    uint64_t kicks;                        /* sent; mu */
    int filled; /* the queue neared its cap since the last kick; no mu:
                 * the consumer's thread only */
};

static void *refill_main(void *arg)
{
    struct ingest_refill *rf = arg;

    pthread_mutex_lock(&rf->mu);
    for (;;) {
        rd_kafka_topic_partition_list_t *parts;

        while (rf->next == NULL && !rf->stop) {
            pthread_cond_wait(&rf->cv, &rf->mu);
        }
        if (rf->stop) {
            break;
        }
        parts = rf->next;
        rf->next = NULL;
        pthread_mutex_unlock(&rf->mu);
        /* the answers are not needed: the request is the wake-up.  1 s:
         * a broker that slow gets its wake-up from its 1 s timer anyway */
        rd_kafka_offsets_for_times(rf->rk, parts, 1000);
        rd_kafka_topic_partition_list_destroy(parts);
        pthread_mutex_lock(&rf->mu);
        rf->kicks++;
    }
    pthread_mutex_unlock(&rf->mu);
    return NULL;
}

struct ingest_refill *ingest_refill_new(rd_kafka_t *rk)
{
    struct ingest_refill *rf = core_calloc(1, sizeof(*rf));

    rf->rk = rk;
    pthread_mutex_init(&rf->mu, NULL);
    pthread_cond_init(&rf->cv, NULL);
    if (pthread_create(&rf->thread, NULL, refill_main, rf) == 0) {
        rf->started = 1;
    }
    /* without the thread, kicks are dropped: slower, never wrong */
    return rf;
}

/* Wakes the leaders of parts: one ListOffsets request each, sent from the
 * thread.  Takes ownership of parts.  Never blocks on the network; a kick
 * not yet sent is replaced by a newer one. */
static void kick(struct ingest_refill *rf,
                 rd_kafka_topic_partition_list_t *parts)
{
    if (!rf->started) {
        rd_kafka_topic_partition_list_destroy(parts);
        return;
    }
    for (int i = 0; i < parts->cnt; i++) {
        /* a timestamp of -1 asks for the end offset */
        parts->elems[i].offset = -1;
    }
    pthread_mutex_lock(&rf->mu);
    if (rf->next != NULL) {
        /* not sent yet: the newer list replaces it */
        rd_kafka_topic_partition_list_destroy(rf->next);
    }
    rf->next = parts;
    pthread_cond_signal(&rf->cv);
    pthread_mutex_unlock(&rf->mu);
}

/*
 * Once the queue has neared its cap (three quarters, by the average size
 * of the messages consumed) and drained to half of it, the brokers are
 * kicked, so the next fetches arrive while half a queue is still there to
 * work on.
 */
int ingest_refill_due(struct ingest_refill *rf, size_t queue_len,
                      size_t consumed, double avg_len, int64_t max_bytes,
                      int64_t max_msgs)
{
    double qlen = (double)queue_len;
    double qbytes = qlen * avg_len;
    double cap_bytes = (double)max_bytes;
    double cap_msgs = (double)max_msgs;
    /* the queue as this poll found it: a small one is emptied at once */
    double before = qlen + (double)consumed;

    if (before * avg_len >= 0.75 * cap_bytes || before >= 0.75 * cap_msgs) {
        rf->filled = 1;
    }
    if (rf->filled && qbytes <= 0.5 * cap_bytes && qlen <= 0.5 * cap_msgs) {
        rf->filled = 0;
        return 1;
    }
    return 0;
}

void ingest_refill_wake(struct ingest_refill *rf,
                        const struct ingest_refill_target *targets, size_t n)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    int32_t woken[64];
    int n_woken = 0;

    for (size_t i = 0; i < n && n_woken < 64; i++) {
        const struct ingest_refill_target *t = &targets[i];
        int64_t lo = -1, hi = -1;
        int seen = 0;

        if (t->leader < 0) {
            continue;
        }
        for (int j = 0; j < n_woken && !seen; j++) {
            seen = woken[j] == t->leader;
        }
        if (seen) {
            continue;
        }
        /* the high watermark the last fetch brought: no request */
        rd_kafka_get_watermark_offsets(rf->rk, t->topic, t->partition, &lo,
                                       &hi);
        if (t->next_offset >= 0 && hi >= 0 && hi <= t->next_offset) {
            continue; /* caught up: its fetch is waiting for data anyway */
        }
        if (list == NULL) {
            list = rd_kafka_topic_partition_list_new(4);
        }
        rd_kafka_topic_partition_list_add(list, t->topic, t->partition);
        woken[n_woken++] = t->leader;
    }
    if (list != NULL) {
        kick(rf, list);
    }
}

/* A leader that moves later only makes its kicks miss. */
void ingest_refill_leaders(rd_kafka_t *rk,
                           const rd_kafka_topic_partition_list_t *parts,
                           int32_t *leaders)
{
    for (int i = 0; i < parts->cnt; i++) {
        leaders[i] = -1;
    }
    for (int i = 0; i < parts->cnt; i++) {
        const char *topic = parts->elems[i].topic;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt;
        int seen = 0;

        for (int j = 0; j < i && !seen; j++) {
            seen = strcmp(parts->elems[j].topic, topic) == 0;
        }
        if (seen) {
            continue;
        }
        rkt = rd_kafka_topic_new(rk, topic, NULL);
        if (rkt == NULL) {
            continue;
        }
        if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            md->topic_cnt == 1) {
            const struct rd_kafka_metadata_topic *t = &md->topics[0];
            for (int k = 0; k < t->partition_cnt; k++) {
                /* every partition of this topic in parts */
                for (int j = i; j < parts->cnt; j++) {
                    if (parts->elems[j].partition == t->partitions[k].id &&
                        strcmp(parts->elems[j].topic, topic) == 0) {
                        leaders[j] = t->partitions[k].leader;
                    }
                }
            }
        }
        if (md != NULL) {
            rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_destroy(rkt);
    }
}

uint64_t ingest_refill_kicks(struct ingest_refill *rf)
{
    uint64_t n;
    pthread_mutex_lock(&rf->mu);
    n = rf->kicks;
    pthread_mutex_unlock(&rf->mu);
    return n;
}

void ingest_refill_destroy(struct ingest_refill *rf)
{
    if (rf == NULL) {
        return;
    }
    if (rf->started) {
        pthread_mutex_lock(&rf->mu);
        rf->stop = 1;
        pthread_cond_signal(&rf->cv);
        pthread_mutex_unlock(&rf->mu);
        pthread_join(rf->thread, NULL);
    }
    if (rf->next != NULL) {
        rd_kafka_topic_partition_list_destroy(rf->next);
    }
    pthread_cond_destroy(&rf->cv);
    pthread_mutex_destroy(&rf->mu);
    free(rf);
}
