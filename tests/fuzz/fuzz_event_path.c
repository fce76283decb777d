/*
 * fuzz_event_path.c: libFuzzer target for the whole per-event path of
 * `userpipe run` (issue 20), without Kafka or HTTP: the transform as the
 * pipeline runs it (new keys deferred), the shared schema's claims
 * against an in-process schema (a claims log read back in order, first
 * claim wins, schema.max_keys honoured, a competitor's claim racing ours),
 * and the batcher that builds Moesif's request bodies (sink/batch.c).
 *
 * Input: the first byte picks the options (scope, unknown-field mode, a
 * small depth, a small schema cap, whether a competitor claims each new
 * key first with another type, lanes and batch size); the rest is a run
 * of events separated by 0xff bytes (never valid inside JSON).  An empty
 * event is an empty message or, every other one, a tombstone (NULL).
 *
 * Invariants checked, beside ASan/UBSan's:
 * - a reject carries a transform code; empty and NULL get theirs;
 * - an event deferred for new keys is decided once its claims are read
 *   back: accepted or rejected, never deferred twice (a type that lost
 *   its race is a type_conflict, keys past the cap schema_full);
 * - the schema never holds more than the cap past what it started with;
 * - an accepted event re-parses as one JSON object;
 * - every accepted event leaves the batcher exactly once, byte for byte,
 *   in a body that parses as a JSON array of its events; no batch holds
 *   two events of one user, and one user's events leave in order.
 */
#include "../../core/core.h"
#include "../../schemas/schema.h"
#include "../../sink/sink_int.h"
#include "../../transform/transform.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_EVENTS 64

struct sent {
    char *bytes;
    size_t len;
    uint64_t hash;
    int seen;
};

static void check_json(const char *p, size_t len, int want_array, size_t n)
{
    char *copy = malloc(len + 1);
    char err[128];
    yajl_val v;

    memcpy(copy, p, len);
    copy[len] = '\0';
    v = yajl_tree_parse(copy, err, sizeof(err));
    /* a NUL inside a string ends the copy early: only then may it fail */
    if (v == NULL && strlen(copy) == len) {
        abort();
    }
    if (v != NULL) {
        if (want_array && (!YAJL_IS_ARRAY(v) || v->u.array.len != n)) {
            abort();
        }
        if (!want_array && !YAJL_IS_OBJECT(v)) {
            abort();
        }
    }
    yajl_tree_free(v);
    free(copy);
}

/* The claims log: this instance's claims of the event's new keys, after a
 * competitor's of the same keys with another type when `race`; read back
 * in order, the first claim of a key wins, nothing past the cap. */
static void claim_and_read_back(struct transform *tf, struct schema *sch,
                                size_t cap, int race)
{
    for (size_t i = 0; i < transform_new_keys(tf); i++) {
        const char *k;
        size_t len;
        enum schema_type t;
        uint64_t h;

        transform_new_key(tf, i, &k, &len, &t);
        h = core_hash64(k, len);
        if (memchr(k, '\0', len) != NULL) {
            abort(); /* invalid_key: a NUL key is never claimed */
        }
        if (race && schema_count(sch) < cap) {
            enum schema_type other = t == SCHEMA_TYPE_STRING
                                         ? SCHEMA_TYPE_NUMBER
                                         : SCHEMA_TYPE_STRING;
            schema_put(sch, k, len, h, other);
        }
        if (schema_count(sch) < cap) {
            schema_put(sch, k, len, h, t);
        }
    }
}

/* Seals and takes every batch: each accepted event exactly once. */
static void drain(struct sink_batcher *bat, struct sent *sent, size_t nsent)
{
    for (unsigned l = 0; l < bat->n_lanes; l++) {
        struct sink_lane *lane = &bat->lanes[l];
        struct sink_batch *batch;

        sink_lane_seal_all(bat, lane, SINK_SEAL_FLUSH);
        while ((batch = sink_lane_pop(lane)) != NULL) {
            check_json(batch->buf, batch->len, 1, batch->n);
            for (size_t i = 0; i < batch->n; i++) {
                const struct sink_event *e = &batch->evs[i];
                struct sent *s;
                if (e->ticket >= nsent) {
                    abort();
                }
                s = &sent[e->ticket];
                /* an object that absorbed newer updates of its user
                 * (sink/merge.c) holds their merge, whose bytes
                 * tests/sink/test_merge.c checks against moesif-dev's
                 * store; here each of its tickets is the user's and sent
                 * once */
                if (s->seen || s->hash != e->hash ||
                    (e->n_more == 0 &&
                     (s->len != e->len ||
                      memcmp(s->bytes, batch->buf + e->off, e->len) != 0))) {
                    abort();
                }
                s->seen = 1;
                for (uint32_t k = 0; k < e->n_more; k++) {
                    struct sent *m;
                    if (e->more[k].ticket >= nsent) {
                        abort();
                    }
                    m = &sent[e->more[k].ticket];
                    if (m->seen || m->hash != e->hash ||
                        e->more[k].ticket < e->ticket) {
                        abort(); /* merged into an older update only */
                    }
                    m->seen = 1;
                }
                for (size_t j = 0; j < i; j++) {
                    if (batch->evs[j].hash == e->hash) {
                        abort(); /* two updates of one user in a batch */
                    }
                }
                for (size_t j = 0; j < e->ticket; j++) {
                    if (sent[j].hash == e->hash && sent[j].bytes != NULL &&
                        !sent[j].seen) {
                        abort(); /* a user's older update left later */
                    }
                }
            }
            sink_batch_recycle(bat, batch);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct transform_config cfg;
    struct transform *tf = NULL;
    struct schema *sch;
    struct sink_batcher bat;
    struct sent sent[MAX_EVENTS];
    size_t nsent = 0, start, cap, at_start;
    uint8_t opt;
    int race, tombstone_next = 0;
    char errstr[128];

    if (size < 1) {
        return 0;
    }
    opt = data[0];
    transform_config_init(&cfg);
    cfg.scope = (opt & 1) ? TRANSFORM_SCOPE_PATH : TRANSFORM_SCOPE_NAME;
    cfg.unknown_fields = (enum transform_unknown)((opt >> 1) % 3);
    cfg.max_depth = (opt & 8) ? 6 : 64;
    cfg.max_event_bytes = 4096;
    cfg.max_schema_keys = (opt & 16) ? 4 : 1000;
    cfg.defer_new_keys = 1; /* the pipeline's mode */
    race = (opt & 32) != 0;
    cap = cfg.max_schema_keys;
    sch = schema_new();
    if (opt & 64) {
        /* a schema that starts with a type: an old key, as a seed */
        schema_put(sch, "a", 1, core_hash64("a", 1), SCHEMA_TYPE_STRING);
    }
    at_start = schema_count(sch);
    if (transform_new(&cfg, sch, &tf, errstr, sizeof(errstr)) != CORE_OK) {
        abort();
    }
    /* batch.max_bytes at least an event, as config_load requires */
    sink_batcher_init(&bat, (opt & 128) ? 1 : 3, (opt & 4) ? 2 : 200, 4096,
                      8192);

    start = 1;
    while (start <= size && nsent < MAX_EVENTS) {
        const uint8_t *end = memchr(data + start, 0xff, size - start);
        size_t len = end ? (size_t)(end - (data + start)) : size - start;
        const char *ev = (const char *)data + start;
        const char *out, *uid;
        size_t out_len, uid_len;
        struct core_reject rej;
        enum core_err rc;

        if (len == 0 && (tombstone_next ^= 1)) {
            ev = NULL;
        }
        rc = transform_event(tf, ev, len, &out, &out_len, &rej);
        if (rc == CORE_ERR_RETRY) {
            if (transform_new_keys(tf) == 0) {
                abort();
            }
            claim_and_read_back(tf, sch, cap, race);
            rc = transform_event(tf, ev, len, &out, &out_len, &rej);
            if (rc == CORE_ERR_RETRY) {
                abort(); /* read back, yet still waiting: a wedge */
            }
        }
        if (rc == CORE_ERR_REJECT) {
            if (rej.code <= CORE_REJECT_NONE ||
                rej.code >= CORE_REJECT__COUNT ||
                rej.code == CORE_REJECT_API_REJECTED ||
                rej.code == CORE_REJECT_CLAIM_TIMEOUT) {
                abort();
            }
            if ((ev == NULL) != (rej.code == CORE_REJECT_TOMBSTONE) ||
                ((ev != NULL && len == 0) !=
                 (rej.code == CORE_REJECT_EMPTY_MESSAGE))) {
                abort();
            }
        } else if (rc == CORE_OK) {
            check_json(out, out_len, 0, 0);
            transform_user_id(tf, &uid, &uid_len);
            sent[nsent].bytes = malloc(out_len ? out_len : 1);
            memcpy(sent[nsent].bytes, out, out_len);
            sent[nsent].len = out_len;
            sent[nsent].hash = core_hash64(uid, uid_len);
            sent[nsent].seen = 0;
            sink_batcher_add(&bat, sent[nsent].hash, sent[nsent].bytes, out_len,
                             nsent, 0);
            nsent++;
        } else {
            abort();
        }
        if (schema_count(sch) > (at_start > cap ? at_start : cap)) {
            abort();
        }
        if (nsent > 0 && nsent % 7 == 0) {
            drain(&bat, sent, nsent);
        }
        start += len + 1;
    }
    drain(&bat, sent, nsent);
    for (size_t i = 0; i < nsent; i++) {
        if (!sent[i].seen) {
            abort(); /* an accepted event never left the batcher */
        }
        free(sent[i].bytes);
    }
    sink_batcher_release(&bat);
    transform_destroy(tf);
    schema_destroy(sch);
    return 0;
}
