/*
 * moesif_pool.c: the threads that do the work of /v1 requests.
 *
 * Why not libmicrohttpd's own thread pool: each of its workers accepts
 * connections for itself, and a burst of connections at start often lands
 * on one worker, which then does all the work on one core while the other
 * idles (measured with moesif-load's 8 connections: 1.0 instead of 1.7
 * cores busy, one run in two).  So one libmicrohttpd thread does the
 * sockets and HTTP, suspends a connection whose body is complete, and
 * queues it here; whichever worker is free gunzips, parses and applies
 * it, then resumes the connection, whose handler queues the answer.
 *
 * Invariant, as in moesif_delay.c: mpool_close leaves no connection
 * suspended by the pool, and nothing is queued while closed (the caller
 * then does the work itself), both under the mutex that queues.
 */
#include "moesif_dev.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct mpool {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job was queued, or quit */
    pthread_cond_t idle; /* a job finished */
    struct mjob *head;
    struct mjob *tail;
    unsigned busy;
    bool closed;
    bool quit;
    void (*run)(void *arg, struct mjob *job);
    void *arg;
    unsigned n_threads;
    pthread_t *threads;
};

static void *worker(void *p)
{
    struct mpool *pool = p;

    pthread_mutex_lock(&pool->mu);
    for (;;) {
        struct mjob *job;

        while (pool->head == NULL && !pool->quit) {
            pthread_cond_wait(&pool->work, &pool->mu);
        }
        if (pool->head == NULL) {
            break; /* quit, and nothing left */
        }
        job = pool->head;
        pool->head = job->next;
        if (pool->head == NULL) {
            pool->tail = NULL;
        }
        pool->busy++;
        pthread_mutex_unlock(&pool->mu);
        pool->run(pool->arg, job);
        pthread_mutex_lock(&pool->mu);
        pool->busy--;
        if (pool->busy == 0 && pool->head == NULL) {
            pthread_cond_broadcast(&pool->idle);
        }
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

struct mpool *mpool_new(unsigned threads,
                        void (*run)(void *arg, struct mjob *job), void *arg)
{
    struct mpool *pool = core_calloc(1, sizeof(*pool));

    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->work, NULL);
    pthread_cond_init(&pool->idle, NULL);
    pool->run = run;
    pool->arg = arg;
    pool->threads = core_calloc(threads, sizeof(*pool->threads));
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker, pool) != 0) {
            fprintf(stderr, "moesif-dev: cannot start a worker thread\n");
            abort();
        }
        pool->n_threads++;
    }
    return pool;
}

void mpool_destroy(struct mpool *pool)
{
    if (pool == NULL) {
        return;
    }
    mpool_close(pool);
    pthread_mutex_lock(&pool->mu);
    pool->quit = true;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->mu);
    for (unsigned i = 0; i < pool->n_threads; i++) {
        pthread_join(pool->threads[i], NULL);
    }
    pthread_cond_destroy(&pool->work);
    pthread_cond_destroy(&pool->idle);
    pthread_mutex_destroy(&pool->mu);
    free(pool->threads);
    free(pool);
}

bool mpool_submit(struct mpool *pool, struct MHD_Connection *conn,
                  struct mjob *job)
{
    pthread_mutex_lock(&pool->mu);
    if (pool->closed) {
        pthread_mutex_unlock(&pool->mu);
        return false;
    }
    /* suspended before it is queued, so the resume always follows */
    MHD_suspend_connection(conn);
    job->next = NULL;
    if (pool->tail != NULL) {
        pool->tail->next = job;
    } else {
        pool->head = job;
    }
    pool->tail = job;
    pthread_cond_signal(&pool->work);
    pthread_mutex_unlock(&pool->mu);
    return true;
}

void mpool_close(struct mpool *pool)
{
    pthread_mutex_lock(&pool->mu);
    pool->closed = true;
    while (pool->busy > 0 || pool->head != NULL) {
        pthread_cond_wait(&pool->idle, &pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
}

void mpool_open(struct mpool *pool)
{
    pthread_mutex_lock(&pool->mu);
    pool->closed = false;
    pthread_mutex_unlock(&pool->mu);
}
