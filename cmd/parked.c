/*
 * parked.c: the FIFO of events waiting for schema claims, and a count of
 * parked events per user hash (see parked.h).  The FIFO is a ring that
 * grows; the caller bounds it by pausing consumption.  The user counts
 * are an open-addressed map cleared whenever the FIFO empties, which in a
 * steady pipeline is most of the time.
 */
#include "parked.h"
#include "../core/core.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    uint64_t ticket;
    uint64_t uid_hash;
    int64_t parked_ms;
    size_t bytes;
};

struct count {
    uint64_t hash; /* 0: empty (a real hash of 0 is stored as 1) */
    size_t n;
};

struct parked {
    struct entry *ring;
    size_t cap, head, len;
    struct count *users;
    size_t ucap, uused;
    size_t bytes; /* of the events parked, as the caller counted them */
};

struct parked *parked_new(void)
{
    struct parked *p = core_calloc(1, sizeof(*p));
    p->cap = 64;
    p->ring = core_calloc(p->cap, sizeof(*p->ring));
    p->ucap = 64;
    p->users = core_calloc(p->ucap, sizeof(*p->users));
    return p;
}

void parked_destroy(struct parked *p)
{
    if (p == NULL) {
        return;
    }
    free(p->ring);
    free(p->users);
    free(p);
}

static struct count *slot(const struct parked *p, uint64_t h)
{
    size_t i = (size_t)h & (p->ucap - 1);
    while (p->users[i].hash != 0 && p->users[i].hash != h) {
        i = (i + 1) & (p->ucap - 1);
    }
    return &p->users[i];
}

static void users_grow(struct parked *p)
{
    struct count *old = p->users;
    size_t n = p->ucap;

    p->ucap *= 2;
    p->users = core_calloc(p->ucap, sizeof(*p->users));
    for (size_t i = 0; i < n; i++) {
        if (old[i].hash != 0) {
            *slot(p, old[i].hash) = old[i];
        }
    }
    free(old);
}

void parked_push(struct parked *p, uint64_t ticket, uint64_t h, size_t bytes,
                 int64_t now_ms)
{
    struct count *c;

    if (p->len == p->cap) {
        struct entry *ring = core_calloc(p->cap * 2, sizeof(*ring));
        for (size_t i = 0; i < p->len; i++) {
            ring[i] = p->ring[(p->head + i) % p->cap];
        }
        free(p->ring);
        p->ring = ring;
        p->head = 0;
        p->cap *= 2;
    }
    p->ring[(p->head + p->len) % p->cap] =
        (struct entry){ticket, h, now_ms, bytes};
    p->len++;
    p->bytes += bytes;
    if ((p->uused + 1) * 2 > p->ucap) {
        users_grow(p);
    }
    c = slot(p, h);
    if (c->hash == 0) {
        c->hash = h;
        p->uused++;
    }
    c->n++;
}

int parked_head(const struct parked *p, uint64_t *ticket, int64_t *parked_ms)
{
    if (p->len == 0) {
        return 0;
    }
    *ticket = p->ring[p->head].ticket;
    *parked_ms = p->ring[p->head].parked_ms;
    return 1;
}

void parked_pop(struct parked *p)
{
    struct count *c;

    if (p->len == 0) {
        return;
    }
    c = slot(p, p->ring[p->head].uid_hash);
    if (c->hash != 0 && c->n > 0) {
        c->n--;
    }
    p->bytes -= p->ring[p->head].bytes;
    p->head = (p->head + 1) % p->cap;
    p->len--;
    if (p->len == 0 && p->uused > 0) {
        memset(p->users, 0, p->ucap * sizeof(*p->users));
        p->uused = 0;
    }
}

int parked_has_user(const struct parked *p, uint64_t uid_hash)
{
    const struct count *c;

    if (p->len == 0) {
        return 0;
    }
    c = slot(p, uid_hash);
    return c->hash != 0 && c->n > 0;
}

size_t parked_count(const struct parked *p)
{
    return p->len;
}

size_t parked_bytes(const struct parked *p)
{
    return p->bytes;
}
