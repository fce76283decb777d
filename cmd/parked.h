/*
 * parked.h: events waiting for their new metadata keys to be claimed in
 * the shared schema (DESIGN.md section 3), in consumption order, and the
 * users they belong to: a later update of a user with a parked event is
 * parked behind it, so one user's updates never overtake each other.
 * Events of other users, and events whose keys are all known, never wait.
 */
#ifndef CMD_PARKED_H
#define CMD_PARKED_H

#include <stddef.h>
#include <stdint.h>

struct parked;

struct parked *parked_new(void);
void parked_destroy(struct parked *p);

/* Parks a ticket at the tail; uid_hash is core_hash64 of its user_id,
 * bytes the size of its event (what the caller holds for it). */
void parked_push(struct parked *p, uint64_t ticket, uint64_t uid_hash,
                 size_t bytes, int64_t now_ms);

/* The head's ticket and when it was parked; 0 when empty. */
int parked_head(const struct parked *p, uint64_t *ticket, int64_t *parked_ms);

/* Removes the head. */
void parked_pop(struct parked *p);

/* Whether an event of this user is parked.  A hash collision between two
 * users only parks an event that need not wait: order is still kept. */
int parked_has_user(const struct parked *p, uint64_t uid_hash);

size_t parked_count(const struct parked *p);

/* The bytes of the events parked: the caller bounds them (cmd/run.c holds
 * consumption back above sink.max_pending_bytes). */
size_t parked_bytes(const struct parked *p);

#endif
