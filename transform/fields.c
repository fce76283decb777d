/*
 * fields.c: the rules for the fixed top-level fields of a user update:
 * which names exist and what an ISO 8601 date-time looks like; and the
 * per-event key set behind the duplicate-key rule.  Kept apart from the
 * streaming state machine in transform.c so each can be read alone.
 */
#include "transform_int.h"
#include "../core/core.h"

#include <stdlib.h>
#include <string.h>

enum transform_field transform_field_lookup(const char *key, size_t len)
{
    /* by length first: one memcmp at most for most names (every event
     * looks up each of its top-level keys) */
    switch (len) {
    case 7:
        return memcmp(key, "user_id", 7) == 0 ? TF_FIELD_USER_ID
                                              : TF_FIELD_UNKNOWN;
    case 8:
        if (memcmp(key, "metadata", 8) == 0) {
            return TF_FIELD_METADATA;
        }
        return memcmp(key, "campaign", 8) == 0 ? TF_FIELD_CAMPAIGN
                                               : TF_FIELD_UNKNOWN;
    case 10:
        if (memcmp(key, "company_id", 10) == 0) {
            return TF_FIELD_COMPANY_ID;
        }
        return memcmp(key, "ip_address", 10) == 0 ? TF_FIELD_IP_ADDRESS
                                                  : TF_FIELD_UNKNOWN;
    case 13:
        if (memcmp(key, "session_token", 13) == 0) {
            return TF_FIELD_SESSION_TOKEN;
        }
        return memcmp(key, "modified_time", 13) == 0 ? TF_FIELD_MODIFIED_TIME
                                                     : TF_FIELD_UNKNOWN;
    case 17:
        return memcmp(key, "user_agent_string", 17) == 0
                   ? TF_FIELD_USER_AGENT_STRING
                   : TF_FIELD_UNKNOWN;
    default:
        return TF_FIELD_UNKNOWN;
    }
}

/* Reads n digits at s[*i]; -1 if they are not all digits. */
static int digits(const char *s, size_t len, size_t *i, int n)
{
    int v = 0;
    if (*i + (size_t)n > len) {
        return -1;
    }
    for (int k = 0; k < n; k++) {
        char c = s[*i + (size_t)k];
        if (c < '0' || c > '9') {
            return -1;
        }
        v = v * 10 + (c - '0');
    }
    *i += (size_t)n;
    return v;
}

static int expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i < len && s[*i] == c) {
        (*i)++;
        return 1;
    }
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return 29;
    }
    return days[m - 1];
}

int transform_iso8601_ok(const char *s, size_t len)
{
    size_t i = 0;
    int y, mo, d, h, mi, sec = 0;

    y = digits(s, len, &i, 4);
    if (y < 0 || !expect(s, len, &i, '-')) {
        return 0;
    }
    mo = digits(s, len, &i, 2);
    if (mo < 1 || mo > 12 || !expect(s, len, &i, '-')) {
        return 0;
    }
    d = digits(s, len, &i, 2);
    if (d < 1 || d > days_in_month(y, mo)) {
        return 0;
    }
    if (!(expect(s, len, &i, 'T') || expect(s, len, &i, 't') ||
          expect(s, len, &i, ' '))) {
        return 0;
    }
    h = digits(s, len, &i, 2);
    if (h < 0 || h > 23 || !expect(s, len, &i, ':')) {
        return 0;
    }
    mi = digits(s, len, &i, 2);
    if (mi < 0 || mi > 59) {
        return 0;
    }
    if (expect(s, len, &i, ':')) {
        sec = digits(s, len, &i, 2);
        if (sec < 0 || sec > 60) {
            return 0;
        }
        if (expect(s, len, &i, '.') || expect(s, len, &i, ',')) {
            size_t start = i;
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                i++;
            }
            if (i == start) {
                return 0;
            }
        }
    }
    if (i == len) {
        return 1;
    }
    if (s[i] == 'Z' || s[i] == 'z') {
        return i + 1 == len;
    }
    if (s[i] == '+' || s[i] == '-') {
        int zh, zm = 0;
        i++;
        zh = digits(s, len, &i, 2);
        if (zh < 0 || zh > 23) {
            return 0;
        }
        if (i < len) {
            expect(s, len, &i, ':');
            zm = digits(s, len, &i, 2);
            if (zm < 0 || zm > 59) {
                return 0;
            }
        }
        return i == len;
    }
    return 0;
}

struct tf_keyslot {
    uint64_t hash;
    const char *key;
    uint32_t len;
    uint32_t obj_id;
    uint32_t gen; /* valid only when equal to the set's generation */
};

#define KEYSET_INITIAL 64

void tf_keyset_init(struct tf_keyset *ks)
{
    ks->slots = core_calloc(KEYSET_INITIAL, sizeof(*ks->slots));
    ks->mask = KEYSET_INITIAL - 1;
    ks->count = 0;
    ks->gen = 1;
}

void tf_keyset_release(struct tf_keyset *ks)
{
    free(ks->slots);
    ks->slots = NULL;
}

void tf_keyset_clear(struct tf_keyset *ks)
{
    ks->count = 0;
    if (++ks->gen == 0) {
        /* wrapped after 4 billion events: stale slots could look valid */
        memset(ks->slots, 0, (ks->mask + 1) * sizeof(*ks->slots));
        ks->gen = 1;
    }
    if (ks->mask + 1 > 4096) {
        /* a huge event grew it; don't keep megabytes for small ones */
        free(ks->slots);
        tf_keyset_init(ks);
    }
}

static uint64_t slot_hash(uint32_t obj_id, uint64_t hash)
{
    return hash ^ ((uint64_t)obj_id * 0x9e3779b97f4a7c15ULL);
}

static void keyset_grow(struct tf_keyset *ks)
{
    struct tf_keyslot *old = ks->slots;
    size_t n = ks->mask + 1;

    ks->slots = core_calloc(n * 2, sizeof(*ks->slots));
    ks->mask = n * 2 - 1;
    for (size_t k = 0; k < n; k++) {
        if (old[k].gen == ks->gen) {
            size_t i = (size_t)old[k].hash & ks->mask;
            while (ks->slots[i].gen == ks->gen) {
                i = (i + 1) & ks->mask;
            }
            ks->slots[i] = old[k];
        }
    }
    free(old);
}

int tf_keyset_add(struct tf_keyset *ks, uint32_t obj_id, const char *key,
                  size_t len, uint64_t hash)
{
    uint64_t h = slot_hash(obj_id, hash);
    size_t i = (size_t)h & ks->mask;

    for (;;) {
        struct tf_keyslot *s = &ks->slots[i];
        if (s->gen != ks->gen) {
            s->hash = h;
            s->key = key;
            s->len = (uint32_t)len;
            s->obj_id = obj_id;
            s->gen = ks->gen;
            if (++ks->count * 2 > ks->mask + 1) {
                keyset_grow(ks);
            }
            return 1;
        }
        if (s->hash == h && s->obj_id == obj_id && s->len == len &&
            memcmp(s->key, key, len) == 0) {
            return 0;
        }
        i = (i + 1) & ks->mask;
    }
}
