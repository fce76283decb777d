/*
 * hash.c: core_hash64, the one hash of short strings: metadata keys in
 * the shared schema (schemas/) and user ids in the parked queue (cmd) and
 * the sink's lanes and user maps (sink/).  One hash, computed once per
 * event for the user id and handed along, instead of one per stage.
 */
#include "core.h"

#include <string.h>

/* The last 1 to 7 bytes as one word, in a few loads (the overlapping-read
 * tail of wyhash): no byte loop on the hot path. */
static uint64_t load_tail(const unsigned char *p, size_t n)
{
    uint32_t a, b;

    if (n >= 4) {
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        return ((uint64_t)a << 32) | b;
    }
    return ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
}

uint64_t core_hash64(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (len * 0x100000001b3ULL);

    /* 8 bytes at a time: keys and user ids are short, so this is a few
     * multiplications */
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0x100000001b3ULL;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    if (len > 0) {
        h = (h ^ load_tail(p, len)) * 0x100000001b3ULL;
    }
    /* MurmurHash3's fmix64: the low bits (table slots) and the high bits
     * (the sink's lane) are both well mixed */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h != 0 ? h : 1;
}
