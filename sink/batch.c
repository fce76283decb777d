/*
 * batch.c: lanes and batches.  A lane is where one user's updates always
 * go (lane = hash of user_id); it has one open batch, a FIFO of sealed
 * ones, and the batches that failed and wait for a retry, with the held
 * queue of their users' later updates; sink.c sends one batch of a lane
 * at a time, so a user's updates reach Moesif in the order they came.
 *
 * The request body is built as events arrive: a batch's buffer is '[',
 * the events joined by ',', and ']' once sealed, so adding an event is
 * one memcpy and sending needs no assembly.  It is separate from sink.c
 * so the body bytes and the sealing rules are tested without a transport.
 *
 * Invariants not to break:
 * - a held user (one in a batch waiting for its retry) has no event in
 *   the FIFO or the open batch: they are in the held queue, in order;
 * - a batch never holds two events of one user: a per-lane set of the
 *   user_id hashes of the open batch, cleared on seal, makes the check
 *   O(1).  Only hashes are kept: two users whose 64-bit hashes collide
 *   merely seal a batch early, which is harmless;
 * - a batch's body stays within max_bytes, except that an event larger
 *   than max_bytes on its own goes alone in its batch;
 * - sealed batches hold little slack: a sealed buffer with more than a
 *   quarter unused is shrunk, so the memory held tracks the pending bytes
 *   (see sink.c's memory note).
 */
#include "sink_int.h"

#include <stdlib.h>
#include <string.h>

/* Load factor of the user_id hash set at most 1/2: slots >= 2 x events. */
#define UIDS_MIN_SLOTS 16

uint64_t sink_uid_hash(const char *uid, size_t len)
{
    /* 8 bytes a step, then murmur3's fmix64 finaliser, so the low bits
     * (set slot) and the high bits (lane) are both well mixed; user ids
     * are short, a byte-wise hash would cost more than the memcpy */
    const unsigned char *p = (const unsigned char *)uid;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)len;
    uint64_t k;

    while (len >= 8) {
        memcpy(&k, p, 8);
        k *= 0x87c37b91114253d5ULL;
        k = (k << 31) | (k >> 33);
        h ^= k * 0x4cf5ad432745937fULL;
        h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
        p += 8;
        len -= 8;
    }
    k = 0;
    for (size_t i = 0; i < len; i++) {
        k |= (uint64_t)p[i] << (8 * i);
    }
    h ^= k * 0x87c37b91114253d5ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h != 0 ? h : 1;
}

unsigned sink_lane_of(uint64_t hash, unsigned n)
{
    /* the high 32 bits scaled to [0, n): no division on the hot path */
    return (unsigned)(((hash >> 32) * (uint64_t)n) >> 32);
}

void sink_batcher_init(struct sink_batcher *bat, unsigned n_lanes,
                       size_t max_events, size_t max_bytes)
{
    size_t slots = UIDS_MIN_SLOTS;

    while (slots < 2 * max_events) {
        slots *= 2;
    }
    memset(bat, 0, sizeof(*bat));
    bat->n_lanes = n_lanes;
    bat->max_events = max_events;
    bat->max_bytes = max_bytes;
    bat->lanes = core_calloc(n_lanes, sizeof(*bat->lanes));
    for (unsigned i = 0; i < n_lanes; i++) {
        bat->lanes[i].uids = core_calloc(slots, sizeof(uint64_t));
        bat->lanes[i].uids_mask = slots - 1;
    }
}

static void batch_free(struct sink_batch *batch)
{
    if (batch == NULL) {
        return;
    }
    free(batch->buf);
    free(batch->evs);
    free(batch);
}

static void batch_list_free(struct sink_batch *batch)
{
    while (batch != NULL) {
        struct sink_batch *next = batch->next;
        batch_free(batch);
        batch = next;
    }
}

void sink_batcher_release(struct sink_batcher *bat)
{
    if (bat->lanes != NULL) {
        for (unsigned i = 0; i < bat->n_lanes; i++) {
            struct sink_lane *lane = &bat->lanes[i];
            batch_free(lane->open);
            batch_list_free(lane->head);
            batch_free(lane->cur);
            batch_list_free(lane->waiting);
            batch_free(lane->heldq);
            free(lane->held);
            free(lane->uids);
            free(lane->gz);
        }
    }
    batch_list_free(bat->pool);
    free(bat->lanes);
    memset(bat, 0, sizeof(*bat));
}

/* A new batch's body starts at 64 KiB and doubles as it fills: most
 * batches hold 100-200 user updates of a few hundred bytes, and a buffer
 * under glibc's mmap threshold (128 KiB) is reused by malloc instead of
 * being mapped and faulted in afresh for every batch (make bench found
 * 60k page faults per million events with 1 MiB buffers). */
#define BATCH_INITIAL_BYTES (64u * 1024)

/* An empty open batch: a pooled one, or a new one. */
static struct sink_batch *batch_get(struct sink_batcher *bat)
{
    struct sink_batch *batch = bat->pool;

    if (batch != NULL) {
        bat->pool = batch->next;
        bat->pool_n--;
    } else {
        batch = core_calloc(1, sizeof(*batch));
        batch->cap = bat->max_bytes + 2 < BATCH_INITIAL_BYTES
                         ? bat->max_bytes + 2
                         : BATCH_INITIAL_BYTES;
        batch->buf = core_malloc(batch->cap);
        batch->evs_cap = bat->max_events;
        batch->evs = core_malloc(batch->evs_cap * sizeof(*batch->evs));
    }
    batch->next = NULL;
    batch->buf[0] = '[';
    batch->len = 1;
    batch->n = 0;
    batch->event_bytes = 0;
    batch->opened_ms = 0;
    batch->not_before_ms = 0;
    batch->attempts = 0;
    batch->sealed = 0;
    batch->held = 0;
    return batch;
}

void sink_batch_recycle(struct sink_batcher *bat, struct sink_batch *batch)
{
    /* buffers up to max_bytes are kept (the pool holds at most n_lanes of
     * them); oversized ones (an event beyond max_bytes) are freed */
    if (bat->pool_n < bat->n_lanes && batch->cap <= bat->max_bytes + 2 &&
        batch->evs_cap == bat->max_events) {
        batch->next = bat->pool;
        bat->pool = batch;
        bat->pool_n++;
        return;
    }
    batch_free(batch);
}

static void batch_reserve(struct sink_batch *batch, size_t need)
{
    if (need > batch->cap) {
        /* doubling: buffers start small (BATCH_INITIAL_BYTES) */
        size_t cap = batch->cap * 2;
        while (cap < need) {
            cap *= 2;
        }
        batch->buf = core_realloc(batch->buf, cap);
        batch->cap = cap;
    }
}

/* Closes the body and gives back slack beyond a quarter of what is used:
 * a batch sealed by linger or by a repeated user may be far from full. */
static void batch_seal(struct sink_batch *batch)
{
    batch_reserve(batch, batch->len + 1);
    batch->buf[batch->len++] = ']';
    batch->sealed = 1;
    /* only large buffers give their slack back: a small one is reused
     * from the pool as it is */
    if (batch->cap > 2 * BATCH_INITIAL_BYTES &&
        batch->cap > batch->len + batch->len / 4 + 64) {
        batch->buf = core_realloc(batch->buf, batch->len);
        batch->cap = batch->len;
    }
}

static int set_has(const uint64_t *set, size_t mask, uint64_t hash)
{
    size_t i = hash & mask;

    while (set[i] != 0) {
        if (set[i] == hash) {
            return 1;
        }
        i = (i + 1) & mask;
    }
    return 0;
}

static void set_insert(uint64_t *set, size_t mask, uint64_t hash)
{
    size_t i = hash & mask;

    while (set[i] != 0) {
        if (set[i] == hash) {
            return;
        }
        i = (i + 1) & mask;
    }
    set[i] = hash;
}

static int held(const struct sink_lane *lane, uint64_t hash)
{
    return lane->held_n > 0 && set_has(lane->held, lane->held_mask, hash);
}

void sink_lane_seal(struct sink_batcher *bat, struct sink_lane *lane)
{
    struct sink_batch *batch = lane->open;

    (void)bat;
    if (batch == NULL) {
        return;
    }
    batch_seal(batch);
    if (lane->tail != NULL) {
        lane->tail->next = batch;
    } else {
        lane->head = batch;
    }
    lane->tail = batch;
    lane->open = NULL;
    memset(lane->uids, 0, (lane->uids_mask + 1) * sizeof(uint64_t));
}

/* Appends an event to the lane's held queue, which grows as needed: it is
 * bounded by the pending bytes, like every batch. */
static void heldq_push(struct sink_batcher *bat, struct sink_lane *lane,
                       const struct sink_event *from, const char *json)
{
    struct sink_batch *q = lane->heldq;
    struct sink_event *ev;

    if (q == NULL) {
        q = lane->heldq = batch_get(bat);
        q->len = 0;
    }
    if (q->n == q->evs_cap) {
        q->evs_cap *= 2;
        q->evs = core_realloc(q->evs, q->evs_cap * sizeof(*q->evs));
    }
    batch_reserve(q, q->len + from->len);
    memcpy(q->buf + q->len, json, from->len);
    ev = &q->evs[q->n++];
    *ev = *from;
    ev->off = q->len;
    q->len += from->len;
    q->event_bytes += from->len;
}

/* Appends an event to the lane's open batch (see sink_batcher_add). */
static void lane_append(struct sink_batcher *bat, struct sink_lane *lane,
                        uint64_t hash, const char *json, size_t len,
                        uint64_t ticket, uint64_t now_ms)
{
    struct sink_batch *batch = lane->open;
    struct sink_event *ev;

    /* the event needs a ',' and the body a final ']' */
    if (batch != NULL && (set_has(lane->uids, lane->uids_mask, hash) ||
                          batch->len + len + 2 > bat->max_bytes)) {
        sink_lane_seal(bat, lane);
        batch = NULL;
    }
    if (batch == NULL) {
        batch = batch_get(bat);
        batch->opened_ms = now_ms;
        lane->open = batch;
        batch_reserve(batch, 1 + len + 1);
    } else {
        batch_reserve(batch, batch->len + 1 + len + 1);
        batch->buf[batch->len++] = ',';
    }
    memcpy(batch->buf + batch->len, json, len);
    ev = &batch->evs[batch->n++];
    ev->ticket = ticket;
    ev->hash = hash;
    ev->off = batch->len;
    ev->len = len;
    batch->len += len;
    batch->event_bytes += len;
    set_insert(lane->uids, lane->uids_mask, hash);
    if (batch->n == bat->max_events || batch->len + 1 >= bat->max_bytes) {
        sink_lane_seal(bat, lane);
    }
}

unsigned sink_batcher_add(struct sink_batcher *bat, uint64_t hash,
                          const char *json, size_t len, uint64_t ticket,
                          uint64_t now_ms)
{
    unsigned i = sink_lane_of(hash, bat->n_lanes);
    struct sink_lane *lane = &bat->lanes[i];

    if (held(lane, hash)) {
        /* behind its user's batch that waits for a retry */
        struct sink_event ev = {ticket, hash, 0, len};
        heldq_push(bat, lane, &ev, json);
    } else {
        lane_append(bat, lane, hash, json, len, ticket, now_ms);
    }
    return i;
}

struct sink_batch *sink_lane_pop(struct sink_lane *lane)
{
    struct sink_batch *batch = lane->head;

    if (batch != NULL) {
        lane->head = batch->next;
        if (lane->head == NULL) {
            lane->tail = NULL;
        }
        batch->next = NULL;
    }
    return batch;
}

/* A sealed batch of events [lo, hi) of `from`: their bytes are contiguous
 * in from->buf, commas included, so one memcpy copies them. */
static struct sink_batch *batch_sub(struct sink_batcher *bat,
                                    const struct sink_batch *from, size_t lo,
                                    size_t hi)
{
    struct sink_batch *batch = batch_get(bat);
    size_t start = from->evs[lo].off;
    size_t end = from->evs[hi - 1].off + from->evs[hi - 1].len;

    batch_reserve(batch, 1 + (end - start) + 1);
    memcpy(batch->buf + 1, from->buf + start, end - start);
    batch->len = 1 + (end - start);
    for (size_t i = lo; i < hi; i++) {
        struct sink_event *ev = &batch->evs[batch->n++];
        ev->ticket = from->evs[i].ticket;
        ev->hash = from->evs[i].hash;
        ev->off = from->evs[i].off - start + 1;
        ev->len = from->evs[i].len;
        batch->event_bytes += ev->len;
    }
    batch->opened_ms = from->opened_ms;
    batch_seal(batch);
    return batch;
}

void sink_lane_split(struct sink_batcher *bat, struct sink_lane *lane,
                     struct sink_batch *batch)
{
    size_t half = batch->n / 2;
    struct sink_batch *a = batch_sub(bat, batch, 0, half);
    struct sink_batch *b = batch_sub(bat, batch, half, batch->n);

    /* the halves carry the failures so far: the backoff goes on from
     * there, and sink.retry_max counts for them as for the whole */
    a->attempts = b->attempts = batch->attempts;
    if (batch->held) {
        /* the halves hold the same users, and are due now */
        a->held = b->held = 1;
        b->next = lane->waiting;
        a->next = b;
        lane->waiting = a;
    } else {
        b->next = lane->head;
        a->next = b;
        lane->head = a;
        if (lane->tail == NULL) {
            lane->tail = b;
        }
    }
    sink_batch_recycle(bat, batch);
}

/* ---- held users --------------------------------------------------------
 *
 * A batch that failed waits for its retry (a Retry-After of a second is
 * common) apart from its lane's FIFO, and only its own users wait with it:
 * with hundreds of requests a second and 5% of them answered 429, a lane
 * held whole was nearly always waiting (make bench: 0.13 of the fault-free
 * rate).  The held set is rebuilt from the held batches whenever one
 * leaves; that happens once per failed batch, and it holds a few hundred
 * users at most.
 */

static void held_rebuild(struct sink_lane *lane)
{
    size_t n = 0, slots = UIDS_MIN_SLOTS;

    for (const struct sink_batch *b = lane->waiting; b != NULL; b = b->next) {
        n += b->n;
    }
    if (lane->cur != NULL && lane->cur->held) {
        n += lane->cur->n;
    }
    lane->held_n = n;
    if (n == 0) {
        free(lane->held);
        lane->held = NULL;
        lane->held_mask = 0;
        return;
    }
    while (slots < 2 * n) {
        slots *= 2;
    }
    if (lane->held == NULL || lane->held_mask + 1 != slots) {
        free(lane->held);
        lane->held = core_calloc(slots, sizeof(uint64_t));
        lane->held_mask = slots - 1;
    } else {
        memset(lane->held, 0, slots * sizeof(uint64_t));
    }
    for (const struct sink_batch *b = lane->waiting; b != NULL; b = b->next) {
        for (size_t i = 0; i < b->n; i++) {
            set_insert(lane->held, lane->held_mask, b->evs[i].hash);
        }
    }
    if (lane->cur != NULL && lane->cur->held) {
        for (size_t i = 0; i < lane->cur->n; i++) {
            set_insert(lane->held, lane->held_mask, lane->cur->evs[i].hash);
        }
    }
}

/* Moves the events of held users out of a batch into the held queue,
 * order kept, and closes the gaps in its body. */
static void batch_filter(struct sink_batcher *bat, struct sink_lane *lane,
                         struct sink_batch *b)
{
    size_t w = 1, kept = 0;

    for (size_t i = 0; i < b->n; i++) {
        struct sink_event ev = b->evs[i];

        if (held(lane, ev.hash)) {
            heldq_push(bat, lane, &ev, b->buf + ev.off);
            b->event_bytes -= ev.len;
            continue;
        }
        if (kept > 0) {
            b->buf[w++] = ',';
        }
        /* w <= ev.off: the kept bytes only move towards the front */
        memmove(b->buf + w, b->buf + ev.off, ev.len);
        ev.off = w;
        w += ev.len;
        b->evs[kept++] = ev;
    }
    b->n = kept;
    b->len = w;
    if (b->sealed) {
        b->buf[b->len++] = ']';
    }
}

void sink_lane_hold(struct sink_batcher *bat, struct sink_lane *lane,
                    struct sink_batch *batch)
{
    int first = !batch->held;
    struct sink_batch **link;

    batch->held = 1;
    batch->next = lane->waiting;
    lane->waiting = batch;
    if (!first) {
        return; /* its users' later events are held already */
    }
    held_rebuild(lane);
    link = &lane->head;
    lane->tail = NULL;
    while (*link != NULL) {
        struct sink_batch *b = *link;
        batch_filter(bat, lane, b);
        if (b->n == 0) {
            *link = b->next;
            sink_batch_recycle(bat, b);
            continue;
        }
        lane->tail = b;
        link = &b->next;
    }
    /* the open batch last: its events are the newest */
    if (lane->open != NULL) {
        /* filtered in place, not sealed early: batches stay full */
        struct sink_batch *o = lane->open;
        batch_filter(bat, lane, o);
        memset(lane->uids, 0, (lane->uids_mask + 1) * sizeof(uint64_t));
        for (size_t i = 0; i < o->n; i++) {
            set_insert(lane->uids, lane->uids_mask, o->evs[i].hash);
        }
        if (o->n == 0) {
            lane->open = NULL;
            sink_batch_recycle(bat, o);
        }
    }
}

void sink_lane_release(struct sink_batcher *bat, struct sink_lane *lane,
                       uint64_t now_ms)
{
    struct sink_batch *q = lane->heldq;

    held_rebuild(lane);
    if (q == NULL) {
        return;
    }
    lane->heldq = NULL;
    for (size_t i = 0; i < q->n; i++) {
        const struct sink_event *ev = &q->evs[i];
        if (held(lane, ev->hash)) {
            heldq_push(bat, lane, ev, q->buf + ev->off);
        } else {
            lane_append(bat, lane, ev->hash, q->buf + ev->off, ev->len,
                        ev->ticket, now_ms);
        }
    }
    sink_batch_recycle(bat, q);
}

struct sink_batch *sink_lane_next(struct sink_lane *lane, uint64_t now_ms,
                                  int waiting_only)
{
    for (struct sink_batch **link = &lane->waiting; *link != NULL;
         link = &(*link)->next) {
        struct sink_batch *b = *link;
        if (b->not_before_ms <= now_ms) {
            *link = b->next;
            b->next = NULL;
            return b;
        }
    }
    return waiting_only ? NULL : sink_lane_pop(lane);
}
