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
    batch->family = 0;
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

/* ---- the user map: hash -> seq of the open batch with its latest ----- */

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

static void user_set(struct sink_lane *lane, uint64_t hash, uint64_t seq)
{
    size_t i;

    if (2 * (lane->users_n + 1) > lane->users_mask + 1) {
        user_grow(lane);
    }
    i = hash & lane->users_mask;
    while (lane->users[i].hash != 0) {
        if (lane->users[i].hash == hash) {
            lane->users[i].seq = seq;
            return;
        }
        i = (i + 1) & lane->users_mask;
    }
    lane->users[i].hash = hash;
    lane->users[i].seq = seq;
    lane->users_n++;
}

/* Removes the user's entry if it names batch `seq`: the batch leaves the
 * chain.  Backward-shift deletion keeps every probe run unbroken. */
static void user_drop(struct sink_lane *lane, uint64_t hash, uint64_t seq)
{
    struct sink_user_slot *s = user_find(lane, hash);
    size_t mask = lane->users_mask, i, j;

    if (s == NULL || s->seq != seq) {
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

/* Rebuilds the map from the chain, after events left it (held users). */
static void users_rebuild(struct sink_lane *lane)
{
    memset(lane->users, 0, (lane->users_mask + 1) * sizeof(*lane->users));
    lane->users_n = 0;
    for (unsigned j = 0; j < lane->n_open; j++) {
        const struct sink_batch *b = lane->chain[j];
        for (size_t k = 0; k < b->n; k++) {
            user_set(lane, b->evs[k].hash, b->seq);
        }
    }
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
    for (size_t k = 0; k < batch->n; k++) {
        user_drop(lane, batch->evs[k].hash, batch->seq);
    }
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

/* Appends an event to batch b of the lane's chain. */
static void batch_append(struct sink_lane *lane, struct sink_batch *batch,
                         uint64_t hash, const char *json, size_t len,
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
    batch->len += len;
    batch->event_bytes += len;
    lane->chain_bytes += len;
    user_set(lane, hash, batch->seq);
}

/* Places an event in the lane's chain (see sink_batcher_add). */
static void lane_place(struct sink_batcher *bat, struct sink_lane *lane,
                       uint64_t hash, const char *json, size_t len,
                       uint64_t ticket, uint64_t now_ms)
{
    const struct sink_user_slot *u;
    uint64_t after;
    struct sink_batch *batch = NULL;

    /* the chain's bytes within bounds, this event included */
    while (lane->n_open > 0 && lane->chain_bytes + len > bat->chain_max_bytes) {
        sink_lane_seal(bat, lane, SINK_SEAL_CHAIN);
    }
again:
    u = user_find(lane, hash);
    after = u != NULL ? u->seq : 0;
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
    batch_append(lane, batch, hash, json, len, ticket);
    while (lane->n_open > 0 && is_full(bat, lane->chain[0])) {
        sink_lane_seal(bat, lane, SINK_SEAL_FULL);
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
        lane_place(bat, lane, hash, json, len, ticket, now_ms);
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
    /* and the bisection they belong to (sink.c's reject breaker) */
    a->family = b->family = batch->family;
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
typedef int (*take_fn)(void *ctx, const struct sink_event *ev,
                       const char *json);

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

static int take_held(void *ctx, const struct sink_event *ev, const char *json)
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
        const struct sink_event *ev = &q->evs[i];
        if (held(lane, ev->hash)) {
            heldq_push(bat, lane, ev, q->buf + ev->off);
        } else {
            lane_place(bat, lane, ev->hash, q->buf + ev->off, ev->len,
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

/* ---- dropping events of given-up partitions ------------------------------ */

struct keep_take {
    sink_keep_fn keep;
    void *ctx;
    size_t *bytes;
};

static int take_unwanted(void *ctx, const struct sink_event *ev,
                         const char *json)
{
    struct keep_take *kt = ctx;

    (void)json;
    if (kt->keep(kt->ctx, ev->ticket)) {
        return 0;
    }
    *kt->bytes += ev->len;
    return 1;
}

/* Drops the events of b that keep() does not want, order kept; adds their
 * bytes to *bytes. */
static size_t batch_keep(struct sink_batch *b, sink_keep_fn keep, void *ctx,
                         size_t *bytes)
{
    struct keep_take kt = {keep, ctx, bytes};

    return batch_take(b, take_unwanted, &kt);
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
    struct keep_take kt = {keep, ctx, bytes};

    lane->tail = list_keep(bat, &lane->head, keep, ctx, &events, bytes);
    (void)list_keep(bat, &lane->waiting, keep, ctx, &events, bytes);
    events += chain_take(bat, lane, take_unwanted, &kt);
    /* the held queue is events only, without commas: rebuilt */
    if (q != NULL) {
        lane->heldq = NULL;
        for (size_t i = 0; i < q->n; i++) {
            const struct sink_event *ev = &q->evs[i];
            if (keep(ctx, ev->ticket)) {
                heldq_push(bat, lane, ev, q->buf + ev->off);
            } else {
                events++;
                *bytes += ev->len;
            }
        }
        sink_batch_recycle(bat, q);
    }
    /* a waiting batch may be gone: its users' held events go on */
    sink_lane_release(bat, lane, now_ms);
    return events;
}

size_t sink_batch_drop(struct sink_batch *b, sink_keep_fn keep, void *ctx,
                       size_t *bytes)
{
    return batch_keep(b, keep, ctx, bytes);
}
