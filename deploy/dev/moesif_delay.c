/*
 * moesif_delay.c: added latency without blocking the server.
 *
 * A /v1 request with latency set is fully handled at once (so the store
 * sees it in arrival order), then its connection is suspended with
 * MHD_suspend_connection and parked here; one timer thread resumes it
 * when its time is up and libmicrohttpd calls the handler again, which
 * queues the answer it kept.  A thread per connection would have worked
 * too, but would have forced a different daemon mode for the whole run,
 * while latency can be switched on and off at run time.
 *
 * Invariant: libmicrohttpd must not be stopped while a connection is
 * suspended (microhttpd.h, MHD_suspend_connection), so mdelay_drain
 * resumes everything and refuses new parks under the same mutex that
 * parks, leaving no window where a connection slips in.  Lock order is
 * always this mutex, then libmicrohttpd's own.
 */
#include "moesif_dev.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mdelay_item {
    int64_t due_ms;
    uint64_t seq; /* equal due times resume in parking order */
    struct MHD_Connection *conn;
};

struct mdelay {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
    struct mdelay_item *heap;
    size_t n;
    size_t cap;
    uint64_t seq;
    bool draining;
    bool quit;
    pthread_t thread;
};

static bool before(const struct mdelay_item *a, const struct mdelay_item *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

static void heap_push(struct mdelay *dly, struct mdelay_item item)
{
    size_t i;

    if (dly->n == dly->cap) {
        dly->cap = dly->cap ? dly->cap * 2 : 64;
        dly->heap = core_realloc(dly->heap, dly->cap * sizeof(*dly->heap));
    }
    i = dly->n++;
    while (i > 0 && before(&item, &dly->heap[(i - 1) / 2])) {
        dly->heap[i] = dly->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    dly->heap[i] = item;
}

static struct mdelay_item heap_pop(struct mdelay *dly)
{
    struct mdelay_item top = dly->heap[0];
    struct mdelay_item last = dly->heap[--dly->n];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= dly->n) {
            break;
        }
        if (c + 1 < dly->n && before(&dly->heap[c + 1], &dly->heap[c])) {
            c++;
        }
        if (!before(&dly->heap[c], &last)) {
            break;
        }
        dly->heap[i] = dly->heap[c];
        i = c;
    }
    if (dly->n > 0) {
        dly->heap[i] = last;
    }
    return top;
}

static void *run(void *arg)
{
    struct mdelay *dly = arg;

    pthread_mutex_lock(&dly->mu);
    while (!dly->quit) {
        int64_t now = mnow_ms();
        struct timespec ts;

        if (dly->n == 0) {
            pthread_cond_wait(&dly->cv, &dly->mu);
            continue;
        }
        if (dly->heap[0].due_ms <= now) {
            struct mdelay_item item = heap_pop(dly);
            MHD_resume_connection(item.conn);
            continue;
        }
        /* due_ms is of mnow_ms's clock, the clock cv waits on */
        ts.tv_sec = (time_t)(dly->heap[0].due_ms / 1000);
        ts.tv_nsec = (long)(dly->heap[0].due_ms % 1000) * 1000000L;
        pthread_cond_timedwait(&dly->cv, &dly->mu, &ts);
    }
    pthread_mutex_unlock(&dly->mu);
    return NULL;
}

struct mdelay *mdelay_new(void)
{
    struct mdelay *dly = core_calloc(1, sizeof(*dly));
    pthread_condattr_t ca;

    pthread_mutex_init(&dly->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&dly->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&dly->thread, NULL, run, dly) != 0) {
        fprintf(stderr, "moesif-dev: cannot start the latency thread\n");
        abort();
    }
    return dly;
}

void mdelay_destroy(struct mdelay *dly)
{
    if (dly == NULL) {
        return;
    }
    mdelay_drain(dly);
    pthread_mutex_lock(&dly->mu);
    dly->quit = true;
    pthread_cond_signal(&dly->cv);
    pthread_mutex_unlock(&dly->mu);
    pthread_join(dly->thread, NULL);
    pthread_cond_destroy(&dly->cv);
    pthread_mutex_destroy(&dly->mu);
    free(dly->heap);
    free(dly);
}

static bool enqueue(struct mdelay *dly, struct MHD_Connection *conn,
                    unsigned ms, bool suspend)
{
    struct mdelay_item item;

    pthread_mutex_lock(&dly->mu);
    if (dly->draining) {
        pthread_mutex_unlock(&dly->mu);
        return false;
    }
    if (suspend) {
        /* suspended before it is queued, so the resume always follows */
        MHD_suspend_connection(conn);
    }
    item.due_ms = mnow_ms() + ms;
    item.seq = dly->seq++;
    item.conn = conn;
    heap_push(dly, item);
    if (dly->heap[0].conn == conn) {
        pthread_cond_signal(&dly->cv);
    }
    pthread_mutex_unlock(&dly->mu);
    return true;
}

bool mdelay_park(struct mdelay *dly, struct MHD_Connection *conn, unsigned ms)
{
    return enqueue(dly, conn, ms, true);
}

bool mdelay_schedule(struct mdelay *dly, struct MHD_Connection *conn,
                     unsigned ms)
{
    return enqueue(dly, conn, ms, false);
}

size_t mdelay_drain(struct mdelay *dly)
{
    size_t n;

    pthread_mutex_lock(&dly->mu);
    dly->draining = true;
    n = dly->n;
    while (dly->n > 0) {
        struct mdelay_item item = heap_pop(dly);
        MHD_resume_connection(item.conn);
    }
    pthread_mutex_unlock(&dly->mu);
    return n;
}

void mdelay_open(struct mdelay *dly)
{
    pthread_mutex_lock(&dly->mu);
    dly->draining = false;
    pthread_mutex_unlock(&dly->mu);
}
