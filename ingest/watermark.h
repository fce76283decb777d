/*
 * watermark.h: the tickets of consumed messages and, per partition, the
 * contiguous watermark of settled offsets: the at-least-once invariant,
 * with no Kafka type, so tests/ingest/test_watermark.c builds it alone.
 * watermark.c says how it works.  Folder-internal: included through
 * ingest_int.h and by tests/ingest/ only.
 *
 * A zeroed struct ingest_wm is an empty one; single-threaded.
 */
#ifndef INGEST_WATERMARK_H
#define INGEST_WATERMARK_H

#include <stddef.h>
#include <stdint.h>

/* A consumed message, copied out of librdkafka's fetch buffer (ingest.c
 * says why), owned by the ring from ingest_wm_push until it is settled or
 * its partition removed, and freed with free(). */
struct ingest_held {
    int64_t timestamp_ms;
    size_t key_len; /* SIZE_MAX: no key */
    size_t len;
    size_t hdr_len; /* packed headers (core_kafka_headers_pack), 0 none */
    int tombstone;  /* the value is NULL (len 0), not empty */
    char bytes[];   /* the key, then the value, then the headers */
};

struct ingest_wm_ring; /* one partition's ring, watermark.c */

struct ingest_wm {
    struct ingest_wm_ring **rings; /* by slot; NULL when free */
    size_t nslots;
    /* seq of the first message of a new partition: above every seq a
     * removed partition used, so a ticket of a given-up partition never
     * names a message of the partition that takes its slot */
    uint64_t seq_floor;
    size_t in_flight; /* pushed, neither settled nor dropped by a remove */
    uint64_t settled;
};

/* Frees every ring and the messages still held; not the owners. */
void ingest_wm_release(struct ingest_wm *wm);

/*
 * Adds a partition, in the first free slot, and returns the slot.  owner
 * (borrowed, kept until ingest_wm_remove) is what ingest_wm_owner and
 * ingest_wm_get give back: the caller's record of the partition.
 */
size_t ingest_wm_add(struct ingest_wm *wm, void *owner);

/*
 * Removes the partition of slot (revoked): frees its messages, forgets
 * its tickets for good (ingest_wm_get and ingest_wm_settle ignore them,
 * also once the slot is reused) and returns how many were unsettled,
 * which leave in_flight.
 */
size_t ingest_wm_remove(struct ingest_wm *wm, size_t slot);

/* The owner of slot, NULL when the slot is free or past nslots. */
void *ingest_wm_owner(const struct ingest_wm *wm, size_t slot);

/*
 * Appends a consumed message at offset to the partition of slot and
 * returns its ticket.  Takes ownership of h.  Offsets must grow (gaps
 * are fine: compacted topics, transaction markers).  The ring grows as
 * needed: the caller bounds it by holding back consumption.
 */
uint64_t ingest_wm_push(struct ingest_wm *wm, size_t slot,
                        struct ingest_held *h, int64_t offset);

/*
 * The unsettled message of ticket, with its offset and owner; NULL when
 * the ticket is settled, given up or unknown.  The message stays valid
 * until its ticket is settled or its partition removed.
 */
const struct ingest_held *ingest_wm_get(const struct ingest_wm *wm,
                                        uint64_t ticket, void **owner,
                                        int64_t *offset);

/* Settles ticket, freeing its message.  Returns 1, or 0 (and changes
 * nothing) when it was settled already, given up or unknown. */
int ingest_wm_settle(struct ingest_wm *wm, uint64_t ticket);

/*
 * Whether the watermark of slot moved since the last call; if so, *offset
 * is the offset to store for commit: one past the last message of the
 * contiguous settled prefix of what was pushed.
 */
int ingest_wm_take_stored(struct ingest_wm *wm, size_t slot, int64_t *offset);

#endif
