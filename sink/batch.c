/*
 * batch.c: lanes and batches.  A lane is where one user's updates always
 * go (lane = hash of user_id); it has a short chain of open batches, a
 * FIFO of sealed ones, and the batches that failed and wait for a retry,
 * with the held queue of their users' later updates; sink.c sends one
 * batch of a lane at a time, FIFO order, so a user's updates reach Moesif
 * in the order they came.
 *
 * The chain (issue 12).  A batch may not hold two updates of one user
 * (Moesif merges a batch in no stated order), so an event of a user
 * already in the open batch cannot join it.  Sealing the batch on such a
 * repeat kept batches at 8-30 events on streams where users repeat (a
 * partition's run of messages holds only its share of the users): a
 * request per 10 events, and against a remote API a rate bound by
 * lanes x batch / latency.  Instead a lane keeps up to SINK_CHAIN_MAX open
 * batches with increasing seq numbers, and a map from user hash to the seq
 * of the open batch holding the user's latest update.  An event goes into
 * the first open batch after that one (the first of the chain when the
 * user has none open) that has room, or into a new batch at the chain's
 * end.  Since only the chain's head is sealed, and sealed batches are sent
 * in order, a user's updates land in batches sent one after the other:
 * the order holds with one request in flight per lane, and batches fill
 * up whatever the users do.
 *
 * At the bound (SINK_CHAIN_MAX batches, or chain_max_bytes of events) the
 * head is sealed early, however full, before the event is placed: a lane
 * fed by a single user degrades to one event a batch, as it must, and the
 * chain's memory stays within chain_max_bytes (plus one event).  The head
 * is also sealed as soon as it is full, by linger, and by sink_flush.
 *
 * The request body is built as events arrive: a batch's buffer is '[',
 * the events joined by ',', and ']' once sealed, so adding an event is
 * one memcpy and sending needs no assembly.  It is separate from sink.c
 * so the body bytes and the placing rules are tested without a transport.
 *
 * Invariants not to break:
 * - a held user (one in a batch waiting for its retry) has no event in
 *   the FIFO or the chain: they are in the held queue, in order;
 * - a batch never holds two events of one user, and a user's later event
 *   is in a later batch (higher seq, later in the FIFO).  Only hashes are
 *   kept: two users whose 64-bit hashes collide are merely kept apart;
 * - a batch's body stays within max_bytes, except that an event larger
 *   than max_bytes on its own goes alone in its batch;
 * - sealed batches hold little slack: a sealed buffer with more than a
 *   quarter unused is shrunk, so the memory held tracks the pending bytes
 *   (see sink.c's memory note).
 */
#include "sink_int.h"

#include <stdlib.h>
#include <string.h>

/* Load factor of the hash sets and maps at most 1/2: slots >= 2 x
 * entries. */
#define UIDS_MIN_SLOTS 16

unsigned sink_lane_of(uint64_t hash, unsigned n)
{
    /* the high 32 bits scaled to [0, n): no division on the hot path */
    return (unsigned)(((hash >> 32) * (uint64_t)n) >> 32);
}

void sink_batcher_init(struct sink_batcher *bat, unsigned n_lanes,
                       size_t max_events, size_t max_bytes,
                       size_t chain_max_bytes)
{
    /* the user map starts for one full batch and grows with the chain */
    size_t slots = UIDS_MIN_SLOTS;

    while (slots < 2 * max_events && slots < 4096) {
        slots *= 2;
    }
    memset(bat, 0, sizeof(*bat));
    bat->n_lanes = n_lanes;
    bat->max_events = max_events;
    bat->max_bytes = max_bytes;
    bat->chain_max_bytes =
        chain_max_bytes > max_bytes ? chain_max_bytes : max_bytes;
    bat->lanes = core_calloc(n_lanes, sizeof(*bat->lanes));
    for (unsigned i = 0; i < n_lanes; i++) {
        bat->lanes[i].users = core_calloc(slots, sizeof(*bat->lanes[i].users));
        bat->lanes[i].users_mask = slots - 1;
        bat->lanes[i].next_seq = 1;
    }
    bat->size_hist_n =
        (max_events < SINK_SIZE_HIST_MAX ? max_events : SINK_SIZE_HIST_MAX) + 1;
    bat->size_hist = core_calloc(bat->size_hist_n, sizeof(uint64_t));
    bat->backlog_hist = core_calloc(bat->size_hist_n, sizeof(uint64_t));
}

/* Frees the merged tickets of the events b holds (their objects are
 * settled or abandoned). */
static void events_free_more(struct sink_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->evs[i].more);
    }
    b->n = 0;
}

static void batch_free(struct sink_batch *batch)
{
    if (batch == NULL) {
        return;
    }
    events_free_more(batch);
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
            for (unsigned j = 0; j < lane->n_open; j++) {
                batch_free(lane->chain[j]);
            }
            batch_list_free(lane->head);
            batch_free(lane->cur);
            batch_list_free(lane->waiting);
            batch_free(lane->heldq);
            free(lane->held);
            free(lane->users);
            free(lane->gz);
        }
    }
    batch_list_free(bat->pool);
    sink_merger_release(&bat->mg);
    free(bat->lanes);
    free(bat->size_hist);
    free(bat->backlog_hist);
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
    batch->seq = 0;
    batch->sealed = 0;
    batch->held = 0;
    batch->no_merge = 0;
    batch->family = 0;
    return batch;
}

void sink_batch_recycle(struct sink_batcher *bat, struct sink_batch *batch)
{
    events_free_more(batch);
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
 * a batch sealed by linger or at the chain's bound may be far from full. */
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

/* ---- the user map: hash -> where its latest unsent update waits ------
 *
 * An entry names a batch of the chain, of the FIFO (entries survive
 * sealing: a sealed batch is unsent until sink_lane_pop), or the held
 * queue; sink_lane_pop removes the entries of the batch it hands out, and
 * every move that renumbers events (holding, dropping) rebuilds the map.
 * One probe of it is all an event of a user with nothing waiting costs.
 */

static struct sink_user_slot *user_find(const struct sink_lane *lane,
                                        uint64_t hash)
{
    size_t i = hash & lane->users_mask;

    while (lane->users[i].hash != 0) {
        if (lane->users[i].hash == hash) {
            return &lane->users[i];
        }
        i = (i + 1) & lane->users_mask;
    }
    return NULL;
}

static void user_grow(struct sink_lane *lane)
{
    struct sink_user_slot *old = lane->users;
    size_t n = lane->users_mask + 1;

    lane->users = core_calloc(2 * n, sizeof(*lane->users));
    lane->users_mask = 2 * n - 1;
    for (size_t k = 0; k < n; k++) {
        if (old[k].hash != 0) {
            size_t i = old[k].hash & lane->users_mask;
            while (lane->users[i].hash != 0) {
                i = (i + 1) & lane->users_mask;
            }
            lane->users[i] = old[k];
        }
    }
    free(old);
}

static void user_set(struct sink_lane *lane, uint64_t hash,
                     struct sink_batch *batch, size_t idx)
{
    size_t i;

    if (2 * (lane->users_n + 1) > lane->users_mask + 1) {
        user_grow(lane);
    }
    i = hash & lane->users_mask;
    while (lane->users[i].hash != 0) {
        if (lane->users[i].hash == hash) {
            lane->users[i].batch = batch;
            lane->users[i].idx = idx;
            return;
        }
        i = (i + 1) & lane->users_mask;
    }
    lane->users[i].hash = hash;
    lane->users[i].batch = batch;
    lane->users[i].idx = idx;
    lane->users_n++;
}

/* Removes the user's entry if it names batch: the batch is sent or
 * leaves.  Backward-shift deletion keeps every probe run unbroken. */
static void user_drop(struct sink_lane *lane, uint64_t hash,
                      const struct sink_batch *batch)
{
    struct sink_user_slot *s = user_find(lane, hash);
    size_t mask = lane->users_mask, i, j;

    if (s == NULL || s->batch != batch) {
        return; /* a later batch holds its latest */
    }
    i = (size_t)(s - lane->users);
    j = i;
    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (lane->users[j].hash == 0) {
            break;
        }
        home = lane->users[j].hash & mask;
        /* slot j may move to i when its home is not in (i, j] */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            lane->users[i] = lane->users[j];
            i = j;
        }
    }
    lane->users[i].hash = 0;
    lane->users_n--;
}

static void users_add(struct sink_lane *lane, struct sink_batch *b)
{
    if (b == NULL || b->no_merge) {
        return;
    }
    for (size_t k = 0; k < b->n; k++) {
        user_set(lane, b->evs[k].hash, b, k);
    }
}

/* Rebuilds the map after events moved (held users, dropped events): the
 * FIFO, the chain, the held queue, oldest first, so the last entry set is
 * each user's latest.  Split halves are left out (no_merge). */
static void users_rebuild(struct sink_lane *lane)
{
    memset(lane->users, 0, (lane->users_mask + 1) * sizeof(*lane->users));
    lane->users_n = 0;
    for (struct sink_batch *b = lane->head; b != NULL; b = b->next) {
        users_add(lane, b);
    }
    for (unsigned j = 0; j < lane->n_open; j++) {
        users_add(lane, lane->chain[j]);
    }
    users_add(lane, lane->heldq);
}

/* ---- the chain ----------------------------------------------------------- */

static void count_sealed(struct sink_batcher *bat, const struct sink_batch *b,
                         enum sink_seal_reason why)
{
    size_t n = b->n < bat->size_hist_n - 1 ? b->n : bat->size_hist_n - 1;

    bat->sealed[why]++;
    bat->size_hist[n]++;
    if (bat->in_backlog) {
        bat->backlog_hist[n]++;
    }
}

void sink_lane_seal(struct sink_batcher *bat, struct sink_lane *lane,
                    enum sink_seal_reason why)
{
    struct sink_batch *batch;

    if (lane->n_open == 0) {
        return;
    }
    batch = lane->chain[0];
    lane->n_open--;
    memmove(&lane->chain[0], &lane->chain[1],
            lane->n_open * sizeof(lane->chain[0]));
    lane->chain[lane->n_open] = NULL;
    lane->chain_bytes -= batch->event_bytes;
    /* its users' entries stay: a sealed batch absorbs updates until it is
     * sent (sink_lane_pop) */
    count_sealed(bat, batch, why);
    batch_seal(batch);
    if (lane->tail != NULL) {
        lane->tail->next = batch;
    } else {
        lane->head = batch;
    }
    lane->tail = batch;
}

void sink_lane_seal_all(struct sink_batcher *bat, struct sink_lane *lane,
                        enum sink_seal_reason why)
{
    while (lane->n_open > 0) {
        sink_lane_seal(bat, lane, why);
    }
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
    user_set(lane, ev->hash, q, q->n - 1);
}

/* Whether batch b takes an event of len bytes: the event needs a ',' and
 * the body a final ']'.  An empty batch takes any event. */
static int has_room(const struct sink_batcher *bat, const struct sink_batch *b,
                    size_t len)
{
    return b->n == 0 ||
           (b->n < bat->max_events && b->len + 1 + len + 1 <= bat->max_bytes);
}

static int is_full(const struct sink_batcher *bat, const struct sink_batch *b)
{
    return b->n == bat->max_events || b->len + 1 >= bat->max_bytes;
}

/* Appends an event to batch b of the lane's chain; returns it. */
static struct sink_event *batch_append(struct sink_lane *lane,
                                       struct sink_batch *batch, uint64_t hash,
                                       const char *json, size_t len,
                                       uint64_t ticket)
{
    struct sink_event *ev;

    if (batch->n == 0) {
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
    ev->first_len = len;
    ev->raw_bytes = len;
    ev->more = NULL;
    ev->n_more = ev->cap_more = 0;
    batch->len += len;
    batch->event_bytes += len;
    lane->chain_bytes += len;
    user_set(lane, hash, batch, batch->n - 1);
    return ev;
}

/* Places an event in the lane's chain (see sink_batcher_add); latest is
 * the batch holding its user's latest update, NULL when none.  Returns
 * the event placed (valid until the batch changes). */
static struct sink_event *
lane_place(struct sink_batcher *bat, struct sink_lane *lane,
           const struct sink_batch *latest, uint64_t hash, const char *json,
           size_t len, uint64_t ticket, uint64_t now_ms)
{
    uint64_t after;
    struct sink_batch *batch = NULL;
    struct sink_event *ev;

    /* the chain's bytes within bounds, this event included */
    while (lane->n_open > 0 && lane->chain_bytes + len > bat->chain_max_bytes) {
        sink_lane_seal(bat, lane, SINK_SEAL_CHAIN);
    }
again:
    /* an update waiting in a sealed batch (or the held queue, which a
     * released user has left) is before the whole chain */
    after = latest != NULL && !latest->sealed && latest != lane->heldq
                ? latest->seq
                : 0;
    for (unsigned j = 0; j < lane->n_open; j++) {
        struct sink_batch *b = lane->chain[j];
        if (b->seq <= after) {
            continue;
        }
        if (has_room(bat, b, len)) {
            batch = b;
            break;
        }
        if (j == 0) {
            /* the head is as full as this event lets it be (its bytes;
             * a head full by count was sealed already) */
            sink_lane_seal(bat, lane, SINK_SEAL_FULL);
            goto again;
        }
    }
    if (batch == NULL) {
        /* no open batch after the user's latest has room: a new one at
         * the end, the head sealed first if the chain is at its bound */
        if (lane->n_open == SINK_CHAIN_MAX) {
            sink_lane_seal(bat, lane, SINK_SEAL_CHAIN);
        }
        batch = batch_get(bat);
        batch->opened_ms = now_ms;
        batch->seq = lane->next_seq++;
        lane->chain[lane->n_open++] = batch;
    }
    ev = batch_append(lane, batch, hash, json, len, ticket);
    while (lane->n_open > 0 && is_full(bat, lane->chain[0])) {
        sink_lane_seal(bat, lane, SINK_SEAL_FULL);
    }
    return ev;
}

/* Replaces the bytes of b->evs[idx] by json[0..len) in a slot of `slot`
 * bytes (>= len), the rest spaces, which JSON allows after a value: the
 * events after it move only when the slot changes, and the body stays one
 * array. */
static void batch_replace(struct sink_batch *b, size_t idx, const char *json,
                          size_t len, size_t slot)
{
    struct sink_event *ev = &b->evs[idx];
    size_t tail = ev->off + ev->len;

    if (slot != ev->len) {
        batch_reserve(b, b->len - ev->len + slot);
        memmove(b->buf + ev->off + slot, b->buf + tail, b->len - tail);
        for (size_t k = idx + 1; k < b->n; k++) {
            b->evs[k].off = b->evs[k].off + slot - ev->len;
        }
        b->len = b->len + slot - ev->len;
        b->event_bytes = b->event_bytes + slot - ev->len;
    }
    memcpy(b->buf + ev->off, json, len);
    memset(b->buf + ev->off + len, ' ', slot - len);
    ev->len = slot;
}

/* Appends an event's ticket to an object it was merged into. */
static void event_absorb(struct sink_event *ev, uint64_t ticket, size_t len)
{
    if (ev->n_more == ev->cap_more) {
        ev->cap_more = ev->cap_more ? 2 * ev->cap_more : 4;
        ev->more = core_realloc(ev->more, ev->cap_more * sizeof(*ev->more));
    }
    ev->more[ev->n_more].ticket = ticket;
    ev->more[ev->n_more].len = len;
    ev->n_more++;
    ev->raw_bytes += len;
}

/*
 * Merges the event into its user's latest update, u's, when merge.c
 * allows and the result fits u's batch (a held queue is unbounded, but
 * its objects go into batches later: one must fit batch.max_bytes alone).
 * Returns whether it did.
 */
static int lane_merge(struct sink_batcher *bat, struct sink_lane *lane,
                      const struct sink_user_slot *u, const char *json,
                      size_t len, uint64_t ticket)
{
    struct sink_batch *b = u->batch;
    struct sink_event *ev = &b->evs[u->idx];
    enum sink_merge_result rc;
    size_t mlen, body, slot;

    rc = sink_merge(&bat->mg, b->buf + ev->off, ev->len, json, len);
    if (rc != SINK_MERGED) {
        bat->apart[rc]++;
        return 0;
    }
    mlen = bat->mg.out_len;
    /* the slot: the old one when the object fits it (a hot user's updates
     * of the same fields keep its size), else the object and an eighth
     * more, so the next merges write in place instead of moving the rest
     * of the batch (up to max_bytes) each time */
    slot = mlen <= ev->len ? ev->len : mlen + mlen / 8 + 16;
    /* the body it would make: a chain batch still needs its ']' */
    body = b == lane->heldq ? slot + 2
                            : b->len - ev->len + slot + (b->sealed ? 0 : 1);
    if (slot > mlen && slot > ev->len &&
        (slot + 2 > bat->max_bytes || (b->n > 1 && body > bat->max_bytes))) {
        body -= slot - mlen; /* no slack where there is no room */
        slot = mlen;
    }
    if (mlen + 2 > bat->max_bytes || (b->n > 1 && body > bat->max_bytes)) {
        bat->apart[SINK_APART_SIZE]++;
        return 0;
    }
    if (!b->sealed && b != lane->heldq) {
        lane->chain_bytes = lane->chain_bytes + slot - ev->len;
    }
    batch_replace(b, u->idx, bat->mg.out, mlen, slot);
    event_absorb(&b->evs[u->idx], ticket, len);
    bat->merged++;
    return 1;
}

unsigned sink_batcher_add(struct sink_batcher *bat, uint64_t hash,
                          const char *json, size_t len, uint64_t ticket,
                          uint64_t now_ms)
{
    unsigned i = sink_lane_of(hash, bat->n_lanes);
    struct sink_lane *lane = &bat->lanes[i];
    /* the one probe of the common case: no update of this user waits */
    const struct sink_user_slot *u = user_find(lane, hash);
    const struct sink_batch *latest = u != NULL ? u->batch : NULL;

    if (u != NULL && lane_merge(bat, lane, u, json, len, ticket)) {
        return i;
    }
    if (held(lane, hash)) {
        /* behind its user's batch that waits for a retry */
        struct sink_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.ticket = ticket;
        ev.hash = hash;
        ev.len = ev.first_len = ev.raw_bytes = len;
        heldq_push(bat, lane, &ev, json);
    } else {
        (void)lane_place(bat, lane, latest, hash, json, len, ticket, now_ms);
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
        for (size_t k = 0; k < batch->n; k++) {
            user_drop(lane, batch->evs[k].hash, batch);
        }
    }
    return batch;
}

size_t sink_batch_events(const struct sink_batch *b, size_t *raw_bytes)
{
    size_t n = 0;

    *raw_bytes = 0;
    for (size_t i = 0; i < b->n; i++) {
        n += sink_event_count(&b->evs[i]);
        *raw_bytes += b->evs[i].raw_bytes;
    }
    return n;
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
        /* the merged tickets move with the event (from is emptied) */
        struct sink_event *ev = &batch->evs[batch->n++];
        *ev = from->evs[i];
        ev->off = from->evs[i].off - start + 1;
        batch->event_bytes += ev->len;
    }
    batch->opened_ms = from->opened_ms;
    batch->no_merge = 1;
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
    /* and the bisection they belong to (sink.c's reject breaker) */
    a->family = b->family = batch->family;
    batch->n = 0; /* its events, merged tickets and all, are the halves' */
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

/* Takes events out of batch b: take(ctx, ev, json) says whether it
 * takes the event (and does what it must with it); the rest keep their
 * order, and the gaps in the body close.  Returns the events taken. */
typedef int (*take_fn)(void *ctx, struct sink_event *ev, const char *json);

static size_t batch_take(struct sink_batch *b, take_fn take, void *ctx)
{
    size_t w = 1, kept = 0, taken = 0;

    for (size_t i = 0; i < b->n; i++) {
        struct sink_event ev = b->evs[i];

        if (take(ctx, &ev, b->buf + ev.off)) {
            b->event_bytes -= ev.len;
            taken++;
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
    return taken;
}

struct held_take {
    struct sink_batcher *bat;
    struct sink_lane *lane;
};

static int take_held(void *ctx, struct sink_event *ev, const char *json)
{
    struct held_take *ht = ctx;

    if (!held(ht->lane, ev->hash)) {
        return 0;
    }
    heldq_push(ht->bat, ht->lane, ev, json);
    return 1;
}

/* Moves the events of held users out of a batch into the held queue,
 * order kept, and closes the gaps in its body. */
static void batch_filter(struct sink_batcher *bat, struct sink_lane *lane,
                         struct sink_batch *b)
{
    struct held_take ht = {bat, lane};

    (void)batch_take(b, take_held, &ht);
}

/* batch_take over the lane's chain, oldest first: a batch left empty
 * leaves it, the others keep their seq; the user map is rebuilt.  Returns
 * the events taken. */
static size_t chain_take(struct sink_batcher *bat, struct sink_lane *lane,
                         take_fn take, void *ctx)
{
    size_t taken = 0;
    unsigned kept = 0;

    for (unsigned j = 0; j < lane->n_open; j++) {
        struct sink_batch *o = lane->chain[j];
        size_t before = o->event_bytes;
        taken += batch_take(o, take, ctx);
        lane->chain_bytes -= before - o->event_bytes;
        if (o->n == 0) {
            sink_batch_recycle(bat, o);
            continue;
        }
        lane->chain[kept++] = o;
    }
    for (unsigned j = kept; j < lane->n_open; j++) {
        lane->chain[j] = NULL;
    }
    lane->n_open = kept;
    users_rebuild(lane);
    return taken;
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
    /* the chain last, oldest first: its events are the newest.  Filtered
     * in place, not sealed early, so batches stay full; a batch left empty
     * leaves the chain, the others keep their seq */
    {
        struct held_take ht = {bat, lane};
        (void)chain_take(bat, lane, take_held, &ht);
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
        user_drop(lane, q->evs[i].hash, q);
    }
    for (size_t i = 0; i < q->n; i++) {
        struct sink_event *ev = &q->evs[i], *placed;
        const struct sink_user_slot *u;

        if (held(lane, ev->hash)) {
            heldq_push(bat, lane, ev, q->buf + ev->off);
            continue;
        }
        /* merged as far as it could be while held: placed as it is, after
         * its user's update placed just before, if any */
        u = user_find(lane, ev->hash);
        placed = lane_place(bat, lane, u != NULL ? u->batch : NULL, ev->hash,
                            q->buf + ev->off, ev->len, ev->ticket, now_ms);
        /* with its merged tickets */
        placed->first_len = ev->first_len;
        placed->raw_bytes = ev->raw_bytes;
        placed->more = ev->more;
        placed->n_more = ev->n_more;
        placed->cap_more = ev->cap_more;
    }
    q->n = 0; /* its merged tickets moved with its events */
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

/* ---- dropping events of given-up partitions ------------------------------ */

struct keep_take {
    sink_keep_fn keep;
    void *ctx;
    size_t *bytes;
    size_t events; /* tickets dropped */
};

/* Forgets the tickets of ev that keep() does not want, adding them to kt.
 * Returns 1 when none is left: the object goes (its merged tickets are
 * freed).  A merged object with a wanted ticket stays whole: its bytes
 * cannot be unmerged, and the events of one user come from one partition
 * when the producer keys them by user (README). */
static int event_keep(struct keep_take *kt, struct sink_event *ev)
{
    size_t w = 0;
    int first = kt->keep(kt->ctx, ev->ticket);

    for (uint32_t i = 0; i < ev->n_more; i++) {
        if (kt->keep(kt->ctx, ev->more[i].ticket)) {
            ev->more[w++] = ev->more[i];
        } else {
            kt->events++;
            *kt->bytes += ev->more[i].len;
            ev->raw_bytes -= ev->more[i].len;
        }
    }
    ev->n_more = (uint32_t)w;
    if (!first) {
        kt->events++;
        *kt->bytes += ev->first_len;
        ev->raw_bytes -= ev->first_len;
        if (w > 0) {
            /* the oldest wanted one takes the first place */
            ev->ticket = ev->more[0].ticket;
            ev->first_len = ev->more[0].len;
            memmove(ev->more, ev->more + 1, (w - 1) * sizeof(*ev->more));
            ev->n_more--;
        }
    }
    if (!first && w == 0) {
        free(ev->more);
        ev->more = NULL;
        ev->n_more = ev->cap_more = 0;
        return 1;
    }
    return 0;
}

static int take_unwanted(void *ctx, struct sink_event *ev, const char *json)
{
    (void)json;
    return event_keep(ctx, ev);
}

/* Drops the events of b that keep() does not want, order kept; adds their
 * bytes to *bytes.  Returns the events (tickets) dropped. */
static size_t batch_keep(struct sink_batch *b, sink_keep_fn keep, void *ctx,
                         size_t *bytes)
{
    struct keep_take kt = {keep, ctx, bytes, 0};

    (void)batch_take(b, take_unwanted, &kt);
    return kt.events;
}

/* batch_keep over a list; empty batches leave it.  Returns the last
 * batch kept (the FIFO's tail). */
static struct sink_batch *list_keep(struct sink_batcher *bat,
                                    struct sink_batch **link, sink_keep_fn keep,
                                    void *ctx, size_t *events, size_t *bytes)
{
    struct sink_batch *last = NULL;

    while (*link != NULL) {
        struct sink_batch *b = *link;
        *events += batch_keep(b, keep, ctx, bytes);
        if (b->n == 0) {
            *link = b->next;
            sink_batch_recycle(bat, b);
            continue;
        }
        last = b;
        link = &b->next;
    }
    return last;
}

size_t sink_lane_drop(struct sink_batcher *bat, struct sink_lane *lane,
                      sink_keep_fn keep, void *ctx, uint64_t now_ms,
                      size_t *bytes)
{
    size_t events = 0;
    struct sink_batch *q = lane->heldq;
    struct keep_take kt = {keep, ctx, bytes, 0};

    /* the held queue first, so that chain_take's rebuild of the user map
     * finds the final one; it is events only, without commas: rebuilt */
    if (q != NULL) {
        lane->heldq = NULL;
        for (size_t i = 0; i < q->n; i++) {
            struct sink_event *ev = &q->evs[i];
            if (!event_keep(&kt, ev)) {
                heldq_push(bat, lane, ev, q->buf + ev->off);
            }
        }
        q->n = 0; /* the kept events took their merged tickets along */
        sink_batch_recycle(bat, q);
    }
    lane->tail = list_keep(bat, &lane->head, keep, ctx, &events, bytes);
    (void)list_keep(bat, &lane->waiting, keep, ctx, &events, bytes);
    (void)chain_take(bat, lane, take_unwanted, &kt);
    events += kt.events;
    /* a waiting batch may be gone: its users' held events go on */
    sink_lane_release(bat, lane, now_ms);
    return events;
}

size_t sink_batch_drop(struct sink_batch *b, sink_keep_fn keep, void *ctx,
                       size_t *bytes)
{
    return batch_keep(b, keep, ctx, bytes);
}
