/*
 * watermark.c: the tickets of consumed messages and the per-partition
 * watermark of settled ones, apart from the consumer (ingest.c) so that
 * the at-least-once invariant is unit tested without a broker
 * (tests/ingest/test_watermark.c).
 *
 * Invariant: the offset stored for a partition is one past the last
 * message of the longest settled prefix of what was consumed from it, so
 * a commit never skips an unsettled message.  Messages are kept (owned)
 * in a ring per partition until settled; a settled message is freed at
 * once and only its "done" bit waits for the watermark.  Memory is bounded
 * by the caller holding back consumption (ingest.c), not here: the ring
 * doubles when full.
 *
 * A ticket is the partition's slot (high 24 bits) and the low SEQ_BITS of
 * the message's seq in its ring (ring_of restores the rest).  Seqs of a
 * partition start at seq_floor, above every seq of a partition removed before,
 * so a ticket left over from a revoked partition is below the head of whichever
 * partition takes its slot, and settling it changes nothing.
 */
#include "watermark.h"

#include "../core/core.h"

#include <stdlib.h>

#define SEQ_BITS 40
#define SEQ_MASK ((1ULL << SEQ_BITS) - 1)

struct ingest_wm_ring {
    void *owner;
    struct ingest_held **msgs; /* indexed by seq & (cap - 1) */
    int64_t *offsets;
    uint8_t *done;
    size_t cap;
    uint64_t head, tail; /* seqs: oldest unsettled, next to hand out */
    int64_t stored;      /* offset of the last settled prefix, -1 none */
    int dirty;           /* head moved since the last take */
};

static void ring_free(struct ingest_wm_ring *r)
{
    if (r == NULL) {
        return;
    }
    for (uint64_t s = r->head; s < r->tail; s++) {
        size_t i = (size_t)(s & (r->cap - 1));
        free(r->msgs[i]);
    }
    free(r->msgs);
    free(r->offsets);
    free(r->done);
    free(r);
}

static void ring_grow(struct ingest_wm_ring *r)
{
    size_t ncap = r->cap * 2;
    struct ingest_held **msgs = core_calloc(ncap, sizeof(*msgs));
    int64_t *offsets = core_calloc(ncap, sizeof(*offsets));
    uint8_t *done = core_calloc(ncap, 1);

    for (uint64_t s = r->head; s < r->tail; s++) {
        size_t o = (size_t)(s & (r->cap - 1)), n = (size_t)(s & (ncap - 1));
        msgs[n] = r->msgs[o];
        offsets[n] = r->offsets[o];
        done[n] = r->done[o];
    }
    free(r->msgs);
    free(r->offsets);
    free(r->done);
    r->msgs = msgs;
    r->offsets = offsets;
    r->done = done;
    r->cap = ncap;
}

/*
 * The ring and ring index of an unsettled ticket's message, or NULL.  The
 * ticket holds the low SEQ_BITS of its seq only, and seqs grow for the
 * whole life of the process: the seq is the one at or after head with
 * those bits.  Taking the bits as the seq ignored every ticket past 2^40
 * messages, and the watermark stopped for good.  A stale ticket (settled,
 * or of a removed partition) maps at or past tail, unless it is 2^40
 * seqs old.
 */
static struct ingest_wm_ring *ring_of(const struct ingest_wm *wm,
                                      uint64_t ticket, size_t *idx)
{
    size_t slot = (size_t)(ticket >> SEQ_BITS);
    struct ingest_wm_ring *r;
    uint64_t seq;

    if (slot >= wm->nslots || wm->rings[slot] == NULL) {
        return NULL;
    }
    r = wm->rings[slot];
    seq = r->head + ((ticket - r->head) & SEQ_MASK);
    if (seq >= r->tail) {
        return NULL;
    }
    *idx = (size_t)(seq & (r->cap - 1));
    return r->done[*idx] ? NULL : r;
}

void ingest_wm_release(struct ingest_wm *wm)
{
    for (size_t i = 0; i < wm->nslots; i++) {
        ring_free(wm->rings[i]);
    }
    free(wm->rings);
    wm->rings = NULL;
    wm->nslots = 0;
}

size_t ingest_wm_add(struct ingest_wm *wm, void *owner)
{
    struct ingest_wm_ring *r = core_calloc(1, sizeof(*r));
    size_t slot = wm->nslots;

    r->owner = owner;
    r->cap = 1024;
    r->msgs = core_calloc(r->cap, sizeof(*r->msgs));
    r->offsets = core_calloc(r->cap, sizeof(*r->offsets));
    r->done = core_calloc(r->cap, 1);
    r->stored = -1;
    r->head = r->tail = wm->seq_floor;
    for (size_t i = 0; i < wm->nslots; i++) {
        if (wm->rings[i] == NULL) {
            slot = i;
            break;
        }
    }
    if (slot == wm->nslots) {
        wm->rings =
            core_realloc(wm->rings, (wm->nslots + 1) * sizeof(*wm->rings));
        wm->nslots++;
    }
    wm->rings[slot] = r;
    return slot;
}

size_t ingest_wm_remove(struct ingest_wm *wm, size_t slot)
{
    struct ingest_wm_ring *r = wm->rings[slot];
    size_t unsettled = 0;

    for (uint64_t s = r->head; s < r->tail; s++) {
        unsettled += !r->done[s & (r->cap - 1)];
    }
    wm->in_flight -= unsettled;
    if (r->tail > wm->seq_floor) {
        wm->seq_floor = r->tail;
    }
    ring_free(r);
    wm->rings[slot] = NULL;
    return unsettled;
}

void *ingest_wm_owner(const struct ingest_wm *wm, size_t slot)
{
    if (slot >= wm->nslots || wm->rings[slot] == NULL) {
        return NULL;
    }
    return wm->rings[slot]->owner;
}

uint64_t ingest_wm_push(struct ingest_wm *wm, size_t slot,
                        struct ingest_held *h, int64_t offset)
{
    struct ingest_wm_ring *r = wm->rings[slot];
    uint64_t ticket = ((uint64_t)slot << SEQ_BITS) | (r->tail & SEQ_MASK);
    size_t idx;

    if (r->tail - r->head == r->cap) {
        ring_grow(r);
    }
    idx = (size_t)(r->tail & (r->cap - 1));
    r->msgs[idx] = h;
    r->offsets[idx] = offset;
    r->done[idx] = 0;
    r->tail++;
    wm->in_flight++;
    return ticket;
}

const struct ingest_held *ingest_wm_get(const struct ingest_wm *wm,
                                        uint64_t ticket, void **owner,
                                        int64_t *offset)
{
    size_t i;
    const struct ingest_wm_ring *r = ring_of(wm, ticket, &i);

    if (r == NULL || r->msgs[i] == NULL) {
        return NULL;
    }
    *owner = r->owner;
    *offset = r->offsets[i];
    return r->msgs[i];
}

int ingest_wm_settle(struct ingest_wm *wm, uint64_t ticket)
{
    size_t i;
    struct ingest_wm_ring *r = ring_of(wm, ticket, &i);

    if (r == NULL) {
        return 0;
    }
    r->done[i] = 1;
    free(r->msgs[i]);
    r->msgs[i] = NULL;
    wm->in_flight--;
    wm->settled++;
    while (r->head < r->tail && r->done[r->head & (r->cap - 1)]) {
        size_t h = (size_t)(r->head & (r->cap - 1));
        r->stored = r->offsets[h];
        r->done[h] = 0;
        r->head++;
        r->dirty = 1;
    }
    return 1;
}

int ingest_wm_take_stored(struct ingest_wm *wm, size_t slot, int64_t *offset)
{
    struct ingest_wm_ring *r = wm->rings[slot];

    if (!r->dirty) {
        return 0;
    }
    r->dirty = 0;
    *offset = r->stored + 1;
    return 1;
}
