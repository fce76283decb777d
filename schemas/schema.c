/*
 * schema.c: the key -> type map behind the one-type-per-key rule.
 *
 * Open addressing with linear probing over a power-of-two slot array; each
 * slot holds an entry index and 32 bits of the hash, so a probe compares
 * key bytes only when the hashes agree.  Entries live in an array in the
 * order they were recorded, key bytes in one growing pool: iteration
 * (schema export, the seed file) walks that order.  The load factor stays
 * at or under 1/2.
 */
#include "schema.h"
#include "schemas_int.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    uint64_t hash;
    size_t off; /* into pool */
    uint32_t len;
    uint8_t type;
};

struct slot {
    uint32_t idx1; /* entry index + 1; 0 = empty */
    uint32_t hash32;
};

struct schema {
    struct slot *slots;
    size_t mask; /* slot count - 1 */
    struct entry *entries;
    size_t count, cap;
    char *pool;
    size_t pool_len, pool_cap;
};

/* A small table: the per-event table of new keys lives in one of these
 * and is cleared for every event, so clearing must stay cheap. */
#define INITIAL_SLOTS 16

struct schema *schema_new(void)
{
    struct schema *sch = core_calloc(1, sizeof(*sch));
    sch->slots = core_calloc(INITIAL_SLOTS, sizeof(*sch->slots));
    sch->mask = INITIAL_SLOTS - 1;
    /* never NULL, even for keys of length 0 */
    sch->pool_cap = 256;
    sch->pool = core_malloc(sch->pool_cap);
    return sch;
}

void schema_destroy(struct schema *sch)
{
    if (sch == NULL) {
        return;
    }
    free(sch->slots);
    free(sch->entries);
    free(sch->pool);
    free(sch);
}

static struct slot *find(const struct schema *sch, const char *key, size_t len,
                         uint64_t hash)
{
    size_t i = (size_t)hash & sch->mask;
    uint32_t h32 = (uint32_t)(hash >> 32);

    for (;;) {
        struct slot *s = &sch->slots[i];
        if (s->idx1 == 0) {
            return s;
        }
        if (s->hash32 == h32) {
            const struct entry *e = &sch->entries[s->idx1 - 1];
            if (e->len == len && memcmp(sch->pool + e->off, key, len) == 0) {
                return s;
            }
        }
        i = (i + 1) & sch->mask;
    }
}

enum schema_type schema_get(const struct schema *sch, const char *key,
                            size_t len, uint64_t hash)
{
    const struct slot *s = find(sch, key, len, hash);
    if (s->idx1 == 0) {
        return SCHEMA_TYPE_NONE;
    }
    return (enum schema_type)sch->entries[s->idx1 - 1].type;
}

static void grow_slots(struct schema *sch)
{
    size_t n = (sch->mask + 1) * 2;

    free(sch->slots);
    sch->slots = core_calloc(n, sizeof(*sch->slots));
    sch->mask = n - 1;
    for (size_t k = 0; k < sch->count; k++) {
        const struct entry *e = &sch->entries[k];
        size_t i = (size_t)e->hash & sch->mask;
        while (sch->slots[i].idx1 != 0) {
            i = (i + 1) & sch->mask;
        }
        sch->slots[i].idx1 = (uint32_t)(k + 1);
        sch->slots[i].hash32 = (uint32_t)(e->hash >> 32);
    }
}

enum schema_type schema_put(struct schema *sch, const char *key, size_t len,
                            uint64_t hash, enum schema_type type)
{
    struct slot *s = find(sch, key, len, hash);
    struct entry *e;

    if (s->idx1 != 0) {
        return (enum schema_type)sch->entries[s->idx1 - 1].type;
    }
    if (sch->count == sch->cap) {
        sch->cap = sch->cap ? sch->cap * 2 : 16;
        sch->entries =
            core_realloc(sch->entries, sch->cap * sizeof(*sch->entries));
    }
    if (sch->pool_len + len > sch->pool_cap) {
        size_t want = sch->pool_cap * 2;
        while (want < sch->pool_len + len) {
            want *= 2;
        }
        sch->pool = core_realloc(sch->pool, want);
        sch->pool_cap = want;
    }
    memcpy(sch->pool + sch->pool_len, key, len);
    e = &sch->entries[sch->count];
    e->hash = hash;
    e->off = sch->pool_len;
    e->len = (uint32_t)len;
    e->type = (uint8_t)type;
    sch->pool_len += len;
    s->idx1 = (uint32_t)(++sch->count);
    s->hash32 = (uint32_t)(hash >> 32);
    if (sch->count * 2 > sch->mask + 1) {
        grow_slots(sch);
    }
    return type;
}

size_t schema_count(const struct schema *sch)
{
    return sch->count;
}

void schema_entry(const struct schema *sch, size_t i, const char **key,
                  size_t *len, enum schema_type *type)
{
    const struct entry *e = &sch->entries[i];
    *key = sch->pool + e->off;
    *len = e->len;
    *type = (enum schema_type)e->type;
}

void schema_clear(struct schema *sch)
{
    if (sch->count == 0) {
        return;
    }
    if (sch->mask + 1 > 1024) {
        /* a huge event grew it: give the memory back */
        free(sch->slots);
        sch->slots = core_calloc(INITIAL_SLOTS, sizeof(*sch->slots));
        sch->mask = INITIAL_SLOTS - 1;
    } else {
        memset(sch->slots, 0, (sch->mask + 1) * sizeof(*sch->slots));
    }
    sch->count = 0;
    sch->pool_len = 0;
}

static const char *const type_names[] = {"null",    "string", "number",
                                         "boolean", "object", "array"};

const char *schema_type_name(enum schema_type type)
{
    if ((unsigned)type > SCHEMA_TYPE_ARRAY) {
        return "unknown";
    }
    return type_names[type];
}

enum schema_type schema_type_parse(const char *name, size_t len)
{
    for (int t = SCHEMA_TYPE_STRING; t <= SCHEMA_TYPE_ARRAY; t++) {
        if (strlen(type_names[t]) == len &&
            memcmp(type_names[t], name, len) == 0) {
            return (enum schema_type)t;
        }
    }
    return SCHEMA_TYPE_NONE;
}
