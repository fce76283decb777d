/*
 * splitmix.h: the seeded generator of the sink's randomised tests
 * (test_sink_random.c, test_merge.c): splitmix64, so a failing case is
 * named by its seed and replays the same on every machine.
 */
#ifndef TESTS_SINK_SPLITMIX_H
#define TESTS_SINK_SPLITMIX_H

#include <stdint.h>

struct rnd {
    uint64_t s;
};

static inline uint64_t rnd_next(struct rnd *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform enough in [0, n) for tests (n > 0). */
static inline unsigned rnd_below(struct rnd *r, unsigned n)
{
    return (unsigned)(rnd_next(r) % n);
}

#endif
