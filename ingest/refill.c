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
 */
#include "ingest_int.h"

#include <pthread.h>
#include <stdlib.h>

struct ingest_refill {
    rd_kafka_t *rk;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rd_kafka_topic_partition_list_t *next; /* the kick to send; mu */
    int stop;                              /* mu */
    uint64_t kicks;                        /* sent; mu */
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

void ingest_refill_kick(struct ingest_refill *rf,
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
