/*
 * test_merge.c: tests of sink/merge.c, and of the batcher's merging
 * (sink/batch.c), against moesif-dev's own store (deploy/dev/
 * moesif_store.c, linked in: the real code that applies updates the way
 * Moesif does, the oracle of every end-to-end test).
 *
 * - The rules, case by case: the exact bytes of merged objects, and
 *   which pairs are kept apart (two tokens, an object over a non-object,
 *   an escaped key, two user_ids).
 * - The property, seeded and randomised, thousands of cases: random
 *   sequences of updates of a few users (top-level fields and nulls,
 *   session tokens, metadata and campaign nested three deep with nulls
 *   at every depth, arrays holding objects, an escaped key now and then;
 *   metadata keys keep one type per name, as the transform guarantees)
 *   are applied one by one to one store; the same sequences go through
 *   a batcher (sink_batcher_add, its chain, FIFO, held queue) driven at
 *   random (seal, send, fail and hold, retry, split), each batch sent
 *   applied to a second store.  Every user's stored profile and alias
 *   table (moesif-dev's /_dev/users JSON) must be identical, no batch
 *   may hold one user twice, and every event settles exactly once.  A
 *   fold of the same sequences through sink_merge alone, over a random
 *   stored profile, is checked the same way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../sink/sink_int.h"
#include "splitmix.h"
#include "../../deploy/dev/moesif_dev.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The store's clock (its timeline), defined by moesif_faults.c in
 * moesif-dev, which this test does not link. */
int64_t mnow_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the rules, case by case ------------------------------------------ */

static enum sink_merge_result merge(struct sink_merger *mg, const char *a,
                                    const char *b)
{
    return sink_merge(mg, a, strlen(a), b, strlen(b));
}

static void assert_merged(const char *a, const char *b, const char *want)
{
    struct sink_merger mg;

    memset(&mg, 0, sizeof(mg));
    assert_int_equal(merge(&mg, a, b), SINK_MERGED);
    if (mg.out_len != strlen(want) || memcmp(mg.out, want, mg.out_len) != 0) {
        fail_msg("merged %.*s, want %s", (int)mg.out_len, mg.out, want);
    }
    sink_merger_release(&mg);
}

static void assert_apart(const char *a, const char *b,
                         enum sink_merge_result why)
{
    struct sink_merger mg;

    memset(&mg, 0, sizeof(mg));
    assert_int_equal(merge(&mg, a, b), why);
    assert_int_equal(mg.out_len, 0);
    sink_merger_release(&mg);
}

static void test_sink_merge__top_level_newer_non_null_wins(void **state)
{
    (void)state;
    assert_merged("{\"user_id\":\"u\",\"company_id\":\"a\",\"ip_address\":"
                  "\"1\"}",
                  "{\"user_id\":\"u\",\"company_id\":\"b\",\"ip_address\":"
                  "null}",
                  "{\"user_id\":\"u\",\"company_id\":\"b\",\"ip_address\":"
                  "\"1\"}");
    /* a top-level null is absent: B's value goes where Moesif appends it,
     * after A's fields */
    assert_merged("{\"user_id\":\"u\",\"company_id\":null,\"ip_address\":"
                  "\"1\"}",
                  "{\"company_id\":\"c\",\"user_id\":\"u\"}",
                  "{\"user_id\":\"u\",\"ip_address\":\"1\",\"company_id\":"
                  "\"c\"}");
}

static void test_sink_merge__metadata_recursive_nulls_and_arrays(void **state)
{
    (void)state;
    assert_merged(
        "{\"user_id\":\"u\",\"metadata\":{\"a\":{\"x\":1,\"y\":[1]},\"n\":2,"
        "\"z\":null}}",
        "{\"user_id\":\"u\",\"metadata\":{\"a\":{\"y\":[2,{\"q\":1}],\"w\":"
        "null},\"n\":null,\"v\":{}}}",
        "{\"user_id\":\"u\",\"metadata\":{\"a\":{\"x\":1,\"y\":[2,{\"q\":1}],"
        "\"w\":null},\"n\":null,\"z\":null,\"v\":{}}}");
    /* an object replaced by a scalar, and a null metadata that is absent */
    assert_merged("{\"user_id\":\"u\",\"metadata\":{\"a\":{\"x\":1}},"
                  "\"campaign\":{\"utm_source\":\"g\"}}",
                  "{\"user_id\":\"u\",\"metadata\":{\"a\":7},\"campaign\":{"
                  "\"utm_medium\":\"m\"}}",
                  "{\"user_id\":\"u\",\"metadata\":{\"a\":7},\"campaign\":{"
                  "\"utm_source\":\"g\",\"utm_medium\":\"m\"}}");
    assert_merged("{\"user_id\":\"u\",\"metadata\":{\"a\":1}}",
                  "{\"user_id\":\"u\",\"metadata\":null}",
                  "{\"user_id\":\"u\",\"metadata\":{\"a\":1}}");
}

static void test_sink_merge__tokens(void **state)
{
    (void)state;
    assert_merged("{\"user_id\":\"u\",\"session_token\":\"t\"}",
                  "{\"user_id\":\"u\",\"session_token\":\"t\",\"n\":1}",
                  "{\"user_id\":\"u\",\"session_token\":\"t\",\"n\":1}");
    assert_merged("{\"user_id\":\"u\"}",
                  "{\"user_id\":\"u\",\"session_token\":\"t\"}",
                  "{\"user_id\":\"u\",\"session_token\":\"t\"}");
    assert_merged("{\"user_id\":\"u\",\"session_token\":\"t\"}",
                  "{\"user_id\":\"u\",\"session_token\":null}",
                  "{\"user_id\":\"u\",\"session_token\":\"t\"}");
    assert_apart("{\"user_id\":\"u\",\"session_token\":\"t\"}",
                 "{\"user_id\":\"u\",\"session_token\":\"s\"}",
                 SINK_APART_TOKEN);
}

static void test_sink_merge__kept_apart(void **state)
{
    (void)state;
    /* in order, A's null resets metadata.a and B's object is stored whole;
     * one object would merge B's into a stored object */
    assert_apart("{\"user_id\":\"u\",\"metadata\":{\"a\":null}}",
                 "{\"user_id\":\"u\",\"metadata\":{\"a\":{\"x\":1}}}",
                 SINK_APART_SHAPE);
    assert_apart("{\"user_id\":\"u\",\"campaign\":{\"c\":[1]}}",
                 "{\"user_id\":\"u\",\"campaign\":{\"c\":{}}}",
                 SINK_APART_SHAPE);
    /* "\u0061" is "a" to Moesif */
    assert_apart("{\"user_id\":\"u\",\"metadata\":{\"\\u0061\":1}}",
                 "{\"user_id\":\"u\",\"metadata\":{\"a\":2}}",
                 SINK_APART_OTHER);
    assert_apart("{\"user_id\":\"u\"}", "{\"user_id\":\"v\"}",
                 SINK_APART_OTHER);
    assert_apart("{\"user_id\":\"u\"}", "{\"n\":1}", SINK_APART_OTHER);
    assert_apart("{\"user_id\":\"u\"}", "{\"user_id\":\"u\"", SINK_APART_OTHER);
    assert_apart("[1]", "{\"user_id\":\"u\"}", SINK_APART_OTHER);
    /* escapes in values, and keys below the merged levels, are fine */
    assert_merged("{\"user_id\":\"u\",\"metadata\":{\"a\":[{\"\\u0062\":1}]}}",
                  "{\"user_id\":\"u\",\"metadata\":{\"s\":\"\\\"}\"}}",
                  "{\"user_id\":\"u\",\"metadata\":{\"a\":[{\"\\u0062\":1}],"
                  "\"s\":\"\\\"}\"}}");
}

/* ---- random updates ---------------------------------------------------- */

struct text {
    char buf[16384];
    size_t len;
};

static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(t->buf + t->len, sizeof(t->buf) - t->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(t->buf) - t->len);
    t->len += (size_t)n;
}

/* Metadata keys keep one type per name at any depth (the transform's
 * schema, and Moesif's lock, see to it); s1 is sometimes written
 * escaped, as the transform lets it through. */
enum kind { K_OBJ, K_NUM, K_STR, K_BOOL, K_ARR };
static const struct {
    const char *name;
    enum kind kind;
} meta_keys[] = {
    {"o1", K_OBJ}, {"o2", K_OBJ}, {"o3", K_OBJ},  {"n1", K_NUM}, {"n2", K_NUM},
    {"s1", K_STR}, {"s2", K_STR}, {"b1", K_BOOL}, {"a1", K_ARR}, {"a2", K_ARR},
};
#define N_META_KEYS (sizeof(meta_keys) / sizeof(meta_keys[0]))

static const char *const strings[] = {"x",         "y",       "a.b",
                                      "\\\"q\\\"", "\\u00e9", ""};
static const char *const numbers[] = {"1", "-2.5", "1e3", "0", "42"};

static void gen_value(struct rnd *r, struct text *t, enum kind k,
                      unsigned depth, int campaign);

/* An object of random members: metadata's typed keys, or campaign's
 * untyped ones (any shape: campaign has no type lock). */
static void gen_object(struct rnd *r, struct text *t, unsigned depth,
                       int campaign)
{
    static const char *const camp_keys[] = {"utm_source", "utm_medium", "c1",
                                            "c2", "c3"};
    unsigned order[N_META_KEYS];
    unsigned n_keys = campaign ? 5 : (unsigned)N_META_KEYS;
    unsigned n = rnd_below(r, depth >= 3 ? 2 : 5);

    for (unsigned i = 0; i < n_keys; i++) {
        order[i] = i;
    }
    for (unsigned i = n_keys - 1; i > 0; i--) {
        unsigned j = rnd_below(r, i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    put(t, "{");
    for (unsigned i = 0; i < n && i < n_keys; i++) {
        const char *key =
            campaign ? camp_keys[order[i]] : meta_keys[order[i]].name;
        if (!campaign && strcmp(key, "s1") == 0 && rnd_below(r, 4) == 0) {
            key = "s\\u0031"; /* "s1" to Moesif */
        }
        put(t, "%s\"%s\":", i ? "," : "", key);
        gen_value(r, t,
                  campaign ? (enum kind)rnd_below(r, 5)
                           : meta_keys[order[i]].kind,
                  depth + 1, campaign);
    }
    put(t, "}");
}

static void gen_value(struct rnd *r, struct text *t, enum kind k,
                      unsigned depth, int campaign)
{
    if (rnd_below(r, 6) == 0) {
        put(t, "null"); /* at every depth */
        return;
    }
    if (k == K_OBJ && depth >= 4) {
        k = K_NUM;
        if (!campaign) {
            put(t, "null"); /* no other type for an object key */
            return;
        }
    }
    switch (k) {
    case K_OBJ:
        gen_object(r, t, depth, campaign);
        break;
    case K_NUM:
        put(t, "%s", numbers[rnd_below(r, 5)]);
        break;
    case K_STR:
        put(t, "\"%s\"", strings[rnd_below(r, 6)]);
        break;
    case K_BOOL:
        put(t, rnd_below(r, 2) ? "true" : "false");
        break;
    case K_ARR: {
        unsigned n = rnd_below(r, 3);
        put(t, "[");
        for (unsigned i = 0; i < n; i++) {
            put(t, i ? "," : "");
            if (rnd_below(r, 3) == 0 && depth < 3) {
                gen_object(r, t, depth + 1, campaign);
            } else {
                gen_value(r, t, (enum kind)(1 + rnd_below(r, 3)), depth + 1,
                          campaign);
            }
        }
        put(t, "]");
        break;
    }
    }
}

/* One update of user uid: its fields in a random order. */
static void gen_update(struct rnd *r, struct text *t, const char *uid,
                       unsigned tokens)
{
    static const char *const fields[] = {"company_id", "modified_time",
                                         "ip_address", "user_agent_string"};
    unsigned order[8], n = 0;

    for (unsigned i = 0; i < 8; i++) {
        order[i] = i;
    }
    for (unsigned i = 7; i > 0; i--) {
        unsigned j = rnd_below(r, i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    t->len = 0;
    put(t, "{");
    for (unsigned i = 0; i < 8; i++) {
        unsigned f = order[i];
        if (f > 0 && rnd_below(r, 2) == 0) {
            continue; /* every field but user_id half the time */
        }
        put(t, n++ ? "," : "");
        if (f == 0) {
            put(t, "\"user_id\":\"%s\"", uid);
        } else if (f <= 4) {
            put(t, "\"%s\":", fields[f - 1]);
            if (rnd_below(r, 4) == 0) {
                put(t, "null");
            } else {
                put(t, "\"%s%u\"", fields[f - 1], rnd_below(r, 3));
            }
        } else if (f == 5) {
            put(t, "\"session_token\":");
            if (rnd_below(r, 5) == 0) {
                put(t, "null");
            } else {
                put(t, "\"t%u\"", rnd_below(r, tokens));
            }
        } else if (f == 6) {
            put(t, "\"metadata\":");
            if (rnd_below(r, 8) == 0) {
                put(t, "null");
            } else {
                gen_object(r, t, 0, 0);
            }
        } else {
            put(t, "\"campaign\":");
            if (rnd_below(r, 8) == 0) {
                put(t, "null");
            } else {
                gen_object(r, t, 0, 1);
            }
        }
    }
    put(t, "}");
}

/* ---- the two stores ---------------------------------------------------- */

struct oracle {
    struct mstore *one_by_one; /* each update applied alone, in order */
    struct mstore *merged;     /* what userpipe's merge sends */
    struct mtape tp;
};

static void apply(struct oracle *o, struct mstore *st, enum mparse_kind kind,
                  const char *body, size_t len)
{
    if (mtape_parse(&o->tp, kind, body, len) != 0) {
        fail_msg("moesif-dev refused %.*s: %s", (int)len, body, o->tp.err_msg);
    }
    /* one batch never holds one user twice */
    assert_false(o->tp.dup_ids);
    mstore_apply(st, &o->tp);
}

static void apply_one(struct oracle *o, struct mstore *st, const char *json,
                      size_t len)
{
    char body[16384 + 2];

    assert_true(len + 2 <= sizeof(body));
    body[0] = '[';
    memcpy(body + 1, json, len);
    body[len + 1] = ']';
    apply(o, st, MPARSE_BATCH, body, len + 2);
}

static void assert_same_user(struct oracle *o, const char *uid, uint64_t seed)
{
    size_t la = 0, lb = 0;
    char *a = mstore_user_json(o->one_by_one, uid, strlen(uid), &la);
    char *b = mstore_user_json(o->merged, uid, strlen(uid), &lb);

    if (a == NULL || b == NULL || la != lb || memcmp(a, b, la) != 0) {
        fail_msg("seed %llu, user %s:\n one by one: %.*s\n merged:     %.*s",
                 (unsigned long long)seed, uid, (int)la, a ? a : "(none)",
                 (int)lb, b ? b : "(none)");
    }
    free(a);
    free(b);
}

static void oracle_init(struct oracle *o)
{
    o->one_by_one = mstore_new(NULL);
    o->merged = mstore_new(NULL);
    mtape_init(&o->tp);
}

static void oracle_release(struct oracle *o)
{
    mstore_destroy(o->one_by_one);
    mstore_destroy(o->merged);
    mtape_release(&o->tp);
}

/* Counts over all cases, to show every path was taken. */
static uint64_t n_merged, n_apart[SINK_MERGE_RESULTS], n_updates, n_objects;

/* Runs cases 1..n of one property over one pair of stores, and prints
 * the counts. */
static void run_cases(const char *what, void (*one)(struct oracle *, uint64_t),
                      uint64_t n)
{
    struct oracle o;

    oracle_init(&o);
    n_merged = n_updates = n_objects = 0;
    memset(n_apart, 0, sizeof(n_apart));
    for (uint64_t seed = 1; seed <= n; seed++) {
        one(&o, seed);
    }
    oracle_release(&o);
    print_message("%s: %llu cases, %llu updates, %llu objects sent, merged "
                  "%llu, apart token %llu shape %llu size %llu other %llu\n",
                  what, (unsigned long long)n, (unsigned long long)n_updates,
                  (unsigned long long)n_objects, (unsigned long long)n_merged,
                  (unsigned long long)n_apart[SINK_APART_TOKEN],
                  (unsigned long long)n_apart[SINK_APART_SHAPE],
                  (unsigned long long)n_apart[SINK_APART_SIZE],
                  (unsigned long long)n_apart[SINK_APART_OTHER]);
}

/* ---- the property through sink_merge alone ----------------------------- */

#define FOLD_CASES 10000

static void fold_case(struct oracle *o, uint64_t seed)
{
    struct rnd r = {seed};
    struct sink_merger mg;
    struct text upd, latest;
    char uid[32];
    unsigned n = 2 + rnd_below(&r, 10), tokens = 1 + rnd_below(&r, 3);

    memset(&mg, 0, sizeof(mg));
    snprintf(uid, sizeof(uid), "f%llu", (unsigned long long)seed);
    /* a stored profile to merge into, the same in both stores */
    gen_update(&r, &upd, uid, tokens);
    apply_one(o, o->one_by_one, upd.buf, upd.len);
    apply_one(o, o->merged, upd.buf, upd.len);
    latest.len = 0;
    for (unsigned i = 0; i < n; i++) {
        enum sink_merge_result rc = SINK_APART_OTHER;

        gen_update(&r, &upd, uid, tokens);
        apply_one(o, o->one_by_one, upd.buf, upd.len);
        n_updates++;
        if (latest.len > 0) {
            rc = sink_merge(&mg, latest.buf, latest.len, upd.buf, upd.len);
        }
        if (rc == SINK_MERGED) {
            n_merged++;
            memcpy(latest.buf, mg.out, mg.out_len);
            latest.len = mg.out_len;
            continue;
        }
        if (latest.len > 0) {
            n_apart[rc]++;
            apply_one(o, o->merged, latest.buf, latest.len);
            n_objects++;
        }
        latest = upd;
    }
    apply_one(o, o->merged, latest.buf, latest.len);
    n_objects++;
    assert_same_user(o, uid, seed);
    sink_merger_release(&mg);
}

static void test_sink_merge__property_against_moesif_dev_store(void **state)
{
    (void)state;
    run_cases("fold", fold_case, FOLD_CASES);
    /* every path taken, many times */
    assert_true(n_merged > 1000);
    assert_true(n_apart[SINK_APART_TOKEN] > 100);
    assert_true(n_apart[SINK_APART_SHAPE] > 100);
    assert_true(n_apart[SINK_APART_OTHER] > 100);
}

/* ---- the property through the batcher ----------------------------------- */

#define BATCHER_CASES 5000
#define CASE_USERS 4
#define CASE_UPDATES 40

struct bcase {
    struct oracle *o;
    struct sink_batcher bat;
    struct rnd r;
    uint64_t seed, now;
    unsigned settled[CASE_UPDATES];
    unsigned n_tickets;
};

/* The lane's batch in flight answered: 2xx (applied to the merged store),
 * a failure (held for a retry), or a split (413). */
static void complete(struct bcase *c, struct sink_lane *lane, unsigned how)
{
    struct sink_batch *b = lane->cur;
    int was_held = b->held;

    lane->cur = NULL;
    if (how == 1) {
        b->not_before_ms = c->now + rnd_below(&c->r, 3);
        b->attempts++;
        sink_lane_hold(&c->bat, lane, b);
        return;
    }
    if (how == 2 && b->n >= 2) {
        sink_lane_split(&c->bat, lane, b);
        return;
    }
    apply(c->o, c->o->merged, MPARSE_BATCH, b->buf, b->len);
    n_objects += b->n;
    for (size_t i = 0; i < b->n; i++) {
        const struct sink_event *ev = &b->evs[i];
        c->settled[ev->ticket]++;
        for (uint32_t k = 0; k < ev->n_more; k++) {
            c->settled[ev->more[k].ticket]++;
        }
    }
    sink_batch_recycle(&c->bat, b);
    if (was_held) {
        sink_lane_release(&c->bat, lane, c->now);
    }
}

/* One random move of the lanes: seal, start a request, answer one. */
static void step(struct bcase *c, int drain)
{
    struct sink_lane *lane = &c->bat.lanes[rnd_below(&c->r, c->bat.n_lanes)];
    unsigned roll = rnd_below(&c->r, 10);

    c->now++;
    if (roll < 2 || (drain && roll < 4)) {
        sink_lane_seal(&c->bat, lane, SINK_SEAL_LINGER);
    } else if (lane->cur == NULL) {
        lane->cur = sink_lane_next(lane, c->now, 0);
    } else {
        /* in a drain every answer is 2xx at last */
        unsigned how = rnd_below(&c->r, drain ? 8 : 5);
        complete(c, lane, how < 3 ? how : 0);
    }
}

static int lanes_empty(const struct sink_batcher *bat)
{
    for (unsigned i = 0; i < bat->n_lanes; i++) {
        const struct sink_lane *l = &bat->lanes[i];
        if (l->n_open || l->head || l->cur || l->waiting || l->heldq) {
            return 0;
        }
    }
    return 1;
}

static void batcher_case(struct oracle *o, uint64_t seed)
{
    struct bcase *c = calloc(1, sizeof(*c));
    struct text upd;
    char uid[CASE_USERS][32];
    unsigned n_users = 1 + rnd_below(&(struct rnd){seed}, CASE_USERS);
    unsigned tokens;

    assert_non_null(c);
    c->o = o;
    c->seed = seed;
    c->r.s = seed * 7919;
    tokens = 1 + rnd_below(&c->r, 2);
    /* small batches, sometimes small bytes too: full, chain bound and
     * size all come into play */
    sink_batcher_init(&c->bat, 1 + rnd_below(&c->r, 2), 2 + rnd_below(&c->r, 5),
                      rnd_below(&c->r, 4) == 0 ? 500 : 1 << 20, 0);
    for (unsigned u = 0; u < n_users; u++) {
        snprintf(uid[u], sizeof(uid[u]), "b%llu.%u", (unsigned long long)seed,
                 u);
        gen_update(&c->r, &upd, uid[u], tokens);
        apply_one(o, o->one_by_one, upd.buf, upd.len);
        apply_one(o, o->merged, upd.buf, upd.len);
    }
    c->n_tickets = 5 + rnd_below(&c->r, CASE_UPDATES - 5);
    for (unsigned t = 0; t < c->n_tickets; t++) {
        unsigned u = rnd_below(&c->r, n_users);
        gen_update(&c->r, &upd, uid[u], tokens);
        apply_one(o, o->one_by_one, upd.buf, upd.len);
        n_updates++;
        sink_batcher_add(&c->bat, core_hash64(uid[u], strlen(uid[u])), upd.buf,
                         upd.len, t, c->now);
        for (unsigned k = rnd_below(&c->r, 4); k > 0; k--) {
            step(c, 0);
        }
    }
    for (unsigned i = 0; !lanes_empty(&c->bat); i++) {
        if (i > 100000) {
            fail_msg("seed %llu: the lanes never drained",
                     (unsigned long long)seed);
        }
        step(c, 1);
    }
    for (unsigned t = 0; t < c->n_tickets; t++) {
        if (c->settled[t] != 1) {
            fail_msg("seed %llu: event %u settled %u times",
                     (unsigned long long)seed, t, c->settled[t]);
        }
    }
    for (unsigned u = 0; u < n_users; u++) {
        assert_same_user(o, uid[u], seed);
    }
    n_merged += c->bat.merged;
    for (int i = 0; i < SINK_MERGE_RESULTS; i++) {
        n_apart[i] += c->bat.apart[i];
    }
    sink_batcher_release(&c->bat);
    free(c);
}

static void test_sink_batcher_add__merges_as_moesif_dev_applies(void **state)
{
    (void)state;
    run_cases("batcher", batcher_case, BATCHER_CASES);
    assert_true(n_merged > 1000);
    assert_true(n_apart[SINK_APART_SIZE] > 10);
    assert_true(n_objects < n_updates);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sink_merge__top_level_newer_non_null_wins),
        cmocka_unit_test(test_sink_merge__metadata_recursive_nulls_and_arrays),
        cmocka_unit_test(test_sink_merge__tokens),
        cmocka_unit_test(test_sink_merge__kept_apart),
        cmocka_unit_test(test_sink_merge__property_against_moesif_dev_store),
        cmocka_unit_test(test_sink_batcher_add__merges_as_moesif_dev_applies),
    };

    return cmocka_run_group_tests_name("merge", tests, NULL, NULL);
}
