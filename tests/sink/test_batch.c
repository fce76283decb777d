/*
 * test_batch.c: tests of sink/batch.c without a transport: the body bytes
 * (a JSON array of the events, byte for byte), sealing by count and by
 * bytes, the chain of open batches and its bounds, the lane of a user,
 * and the halves of a split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../sink/sink_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* An event of user u, its n-th update, padded with `pad` bytes of 'x'.
 * Each update carries a session token of its own, so that two updates of
 * a user are never merged (merge.c): these tests are about placing them
 * apart; test_merge.c is about merging. */
static size_t make_event(char *buf, size_t cap, unsigned u, unsigned n,
                         size_t pad)
{
    int len = snprintf(buf, cap,
                       "{\"user_id\":\"u%u\",\"session_token\":\"t%u\","
                       "\"n\":%u,\"p\":\"",
                       u, n, n);
    size_t at = (size_t)len;

    assert_true(at + pad + 3 < cap);
    memset(buf + at, 'x', pad);
    at += pad;
    memcpy(buf + at, "\"}", 2);
    return at + 2;
}

static void add(struct sink_batcher *bat, unsigned u, unsigned n, size_t pad,
                uint64_t ticket)
{
    char uid[32], ev[8192];
    int uid_len = snprintf(uid, sizeof(uid), "u%u", u);
    size_t len = make_event(ev, sizeof(ev), u, n, pad);

    sink_batcher_add(bat, core_hash64(uid, (size_t)uid_len), ev, len, ticket,
                     0);
}

static size_t count_sealed(const struct sink_lane *lane)
{
    size_t n = 0;

    for (const struct sink_batch *b = lane->head; b != NULL; b = b->next) {
        n++;
    }
    return n;
}

/* The tickets of a batch, in order, as a string ("3,5"). */
static const char *tickets_of(const struct sink_batch *b, char *out, size_t cap)
{
    size_t n = 0;

    out[0] = '\0';
    for (size_t i = 0; b != NULL && i < b->n; i++) {
        n += (size_t)snprintf(out + n, cap - n, "%s%llu", i ? "," : "",
                              (unsigned long long)b->evs[i].ticket);
    }
    return out;
}

/* The body parses as a JSON array of batch->n objects, and each event's
 * recorded span is one of them. */
static void assert_valid_body(const struct sink_batch *batch)
{
    char *text = malloc(batch->len + 1);
    char err[256];
    yajl_val v;

    assert_non_null(text);
    assert_true(batch->sealed);
    memcpy(text, batch->buf, batch->len);
    text[batch->len] = '\0';
    v = yajl_tree_parse(text, err, sizeof(err));
    if (v == NULL) {
        fail_msg("body is not JSON (%s): %s", err, text);
    }
    assert_true(YAJL_IS_ARRAY(v));
    assert_int_equal(v->u.array.len, batch->n);
    yajl_tree_free(v);
    assert_int_equal(batch->buf[0], '[');
    assert_int_equal(batch->buf[batch->len - 1], ']');
    for (size_t i = 0; i < batch->n; i++) {
        char before = batch->buf[batch->evs[i].off - 1];
        char after = batch->buf[batch->evs[i].off + batch->evs[i].len];
        assert_true(before == (i == 0 ? '[' : ','));
        assert_true(after == (i + 1 == batch->n ? ']' : ','));
    }
    free(text);
}

static void test_sink_batcher_add__body_is_a_json_array_byte_exact(void **state)
{
    struct sink_batcher bat;
    const char *want = "[{\"user_id\":\"a\"},{\"user_id\":\"b\",\"m\":{\"x\":"
                       "1.50e3}},{\"user_id\":\"c\",\"s\":\"\\u00e9,]\"}]";
    const char *ev[] = {"{\"user_id\":\"a\"}",
                        "{\"user_id\":\"b\",\"m\":{\"x\":1.50e3}}",
                        "{\"user_id\":\"c\",\"s\":\"\\u00e9,]\"}"};
    const char *uid[] = {"a", "b", "c"};
    struct sink_batch *batch;

    (void)state;
    sink_batcher_init(&bat, 1, 200, 1 << 20, 0);
    for (int i = 0; i < 3; i++) {
        sink_batcher_add(&bat, core_hash64(uid[i], 1), ev[i], strlen(ev[i]),
                         (uint64_t)100 + (uint64_t)i, 0);
    }
    assert_non_null(sink_lane_open(&bat.lanes[0]));
    assert_null(bat.lanes[0].head);
    sink_lane_seal_all(&bat, &bat.lanes[0], SINK_SEAL_FLUSH);
    batch = bat.lanes[0].head;
    assert_non_null(batch);
    assert_null(sink_lane_open(&bat.lanes[0]));
    assert_int_equal(batch->len, strlen(want));
    assert_memory_equal(batch->buf, want, batch->len);
    assert_int_equal(batch->n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(batch->evs[i].ticket, 100 + i);
        assert_int_equal(batch->evs[i].len, strlen(ev[i]));
        assert_memory_equal(batch->buf + batch->evs[i].off, ev[i],
                            strlen(ev[i]));
    }
    assert_int_equal(batch->event_bytes,
                     strlen(ev[0]) + strlen(ev[1]) + strlen(ev[2]));
    assert_valid_body(batch);
    sink_batcher_release(&bat);
}

static void test_sink_batcher_add__seals_at_max_events(void **state)
{
    struct sink_batcher bat;

    (void)state;
    sink_batcher_init(&bat, 1, 3, 1 << 20, 0);
    for (unsigned i = 0; i < 7; i++) {
        add(&bat, i, 0, 10, i);
    }
    assert_int_equal(count_sealed(&bat.lanes[0]), 2);
    assert_int_equal(bat.lanes[0].head->n, 3);
    assert_int_equal(bat.lanes[0].head->next->n, 3);
    assert_int_equal(sink_lane_open(&bat.lanes[0])->n, 1);
    assert_int_equal(sink_lane_open(&bat.lanes[0])->evs[0].ticket, 6);
    assert_valid_body(bat.lanes[0].head);
    assert_valid_body(bat.lanes[0].head->next);
    sink_batcher_release(&bat);
}

static void test_sink_batcher_add__seals_before_max_bytes(void **state)
{
    struct sink_batcher bat;
    char ev[512];
    size_t len = make_event(ev, sizeof(ev), 0, 0, 60);
    size_t max = 1 + len + 1 + len + 1; /* exactly two events */

    (void)state;
    sink_batcher_init(&bat, 1, 200, max, 0);
    for (unsigned i = 0; i < 5; i++) {
        add(&bat, i, 0, 60, i);
    }
    /* same length for every user below 10 */
    assert_int_equal(count_sealed(&bat.lanes[0]), 2);
    for (const struct sink_batch *b = bat.lanes[0].head; b; b = b->next) {
        assert_int_equal(b->n, 2);
        assert_int_equal(b->len, max);
        assert_valid_body(b);
    }
    assert_int_equal(sink_lane_open(&bat.lanes[0])->n, 1);
    sink_batcher_release(&bat);

    /* one byte less: one event a batch */
    sink_batcher_init(&bat, 1, 200, max - 1, 0);
    for (unsigned i = 0; i < 3; i++) {
        add(&bat, i, 0, 60, i);
    }
    assert_int_equal(count_sealed(&bat.lanes[0]), 2);
    for (const struct sink_batch *b = bat.lanes[0].head; b; b = b->next) {
        assert_int_equal(b->n, 1);
        assert_true(b->len <= max - 1);
    }
    sink_batcher_release(&bat);
}

static void
test_sink_batcher_add__event_beyond_max_bytes_goes_alone(void **state)
{
    struct sink_batcher bat;
    const struct sink_batch *b;

    (void)state;
    sink_batcher_init(&bat, 1, 200, 256, 0);
    add(&bat, 1, 0, 10, 1);
    add(&bat, 2, 0, 1000, 2); /* alone larger than 256 */
    add(&bat, 3, 0, 10, 3);
    b = bat.lanes[0].head;
    assert_int_equal(count_sealed(&bat.lanes[0]), 2);
    assert_int_equal(b->n, 1);
    assert_int_equal(b->evs[0].ticket, 1);
    assert_int_equal(b->next->n, 1);
    assert_int_equal(b->next->evs[0].ticket, 2);
    assert_true(b->next->len > 1000);
    assert_valid_body(b->next);
    assert_int_equal(sink_lane_open(&bat.lanes[0])->evs[0].ticket, 3);
    sink_batcher_release(&bat);
}

/* A user's next update goes to the chain's next batch; no batch holds a
 * user twice; only the head is sealed, so the FIFO keeps each user's
 * order. */
static void
test_sink_batcher_add__repeated_user_goes_to_next_batch(void **state)
{
    struct sink_batcher bat;
    struct sink_lane *lane;
    char t[128];

    (void)state;
    sink_batcher_init(&bat, 1, 200, 1 << 20, 0);
    lane = &bat.lanes[0];
    add(&bat, 1, 0, 0, 10);
    add(&bat, 2, 0, 0, 11);
    add(&bat, 1, 1, 0, 12); /* u1 again: a second batch */
    add(&bat, 3, 0, 0, 13); /* a new user: the first batch */
    add(&bat, 2, 1, 0, 14); /* u2's second: the second batch */
    add(&bat, 2, 2, 0, 15); /* u2's third: a third batch */
    add(&bat, 1, 2, 0, 16); /* u1's third: the third batch */
    assert_null(lane->head);
    assert_int_equal(lane->n_open, 3);
    assert_string_equal(tickets_of(lane->chain[0], t, sizeof(t)), "10,11,13");
    assert_string_equal(tickets_of(lane->chain[1], t, sizeof(t)), "12,14");
    assert_string_equal(tickets_of(lane->chain[2], t, sizeof(t)), "15,16");
    sink_lane_seal_all(&bat, lane, SINK_SEAL_FLUSH);
    assert_int_equal(count_sealed(lane), 3);
    assert_string_equal(tickets_of(lane->head, t, sizeof(t)), "10,11,13");
    assert_string_equal(tickets_of(lane->head->next, t, sizeof(t)), "12,14");
    assert_string_equal(tickets_of(lane->tail, t, sizeof(t)), "15,16");
    for (const struct sink_batch *b = lane->head; b; b = b->next) {
        assert_valid_body(b);
    }
    assert_int_equal(bat.sealed[SINK_SEAL_FLUSH], 3);
    sink_batcher_release(&bat);
}

/* Once the head is sealed, a user whose latest update was in it goes to
 * the first batch with room again. */
static void test_sink_batcher_add__sealed_latest_frees_the_user(void **state)
{
    struct sink_batcher bat;
    struct sink_lane *lane;
    char t[128];

    (void)state;
    sink_batcher_init(&bat, 1, 2, 1 << 20, 0);
    lane = &bat.lanes[0];
    add(&bat, 1, 0, 0, 1);
    add(&bat, 1, 1, 0, 2); /* [1] [2] */
    add(&bat, 2, 0, 0, 3); /* [1,3] full: sealed; [2] */
    assert_string_equal(tickets_of(lane->head, t, sizeof(t)), "1,3");
    add(&bat, 2, 1, 0, 4); /* u2's latest is sealed: [2,4], full */
    assert_string_equal(tickets_of(lane->tail, t, sizeof(t)), "2,4");
    assert_int_equal(lane->n_open, 0);
    /* sealed, unsent: their users stay in the map (merge targets) until
     * each batch is taken to be sent */
    assert_int_equal(lane->users_n, 2);
    assert_int_equal(bat.sealed[SINK_SEAL_FULL], 2);
    sink_batch_recycle(&bat, sink_lane_pop(lane));
    assert_int_equal(lane->users_n, 2); /* their latest are in [2,4] */
    sink_batch_recycle(&bat, sink_lane_pop(lane));
    assert_int_equal(lane->users_n, 0);
    sink_batcher_release(&bat);
}

/* At SINK_CHAIN_MAX batches the head is sealed early: a lane fed by one
 * user gets one event a batch, in order. */
static void test_sink_batcher_add__chain_bound_by_count(void **state)
{
    struct sink_batcher bat;
    struct sink_lane *lane;
    unsigned n = SINK_CHAIN_MAX + 3;

    (void)state;
    sink_batcher_init(&bat, 1, 200, 1 << 20, 0);
    lane = &bat.lanes[0];
    for (unsigned i = 0; i < n; i++) {
        add(&bat, 7, i, 0, i);
    }
    assert_int_equal(lane->n_open, SINK_CHAIN_MAX);
    assert_int_equal(count_sealed(lane), 3);
    assert_int_equal(bat.sealed[SINK_SEAL_CHAIN], 3);
    sink_lane_seal_all(&bat, lane, SINK_SEAL_FLUSH);
    {
        uint64_t want = 0;
        for (const struct sink_batch *b = lane->head; b; b = b->next) {
            assert_int_equal(b->n, 1);
            assert_int_equal(b->evs[0].ticket, want++);
        }
        assert_int_equal(want, n);
    }
    sink_batcher_release(&bat);
}

/* The chain's event bytes stay within chain_max_bytes. */
static void test_sink_batcher_add__chain_bound_by_bytes(void **state)
{
    struct sink_batcher bat;
    struct sink_lane *lane;
    char ev[512];
    size_t len = make_event(ev, sizeof(ev), 1, 0, 100);

    (void)state;
    /* room for 3 events of user 1 in the chain (at least one full
     * batch's bytes are allowed) */
    sink_batcher_init(&bat, 1, 200, 3 * len + len / 2, 3 * len + len / 2);
    lane = &bat.lanes[0];
    for (unsigned i = 0; i < 6; i++) {
        add(&bat, 1, i, 100, i);
        assert_true(lane->chain_bytes <= 3 * len + len / 2);
    }
    assert_int_equal(lane->n_open, 3);
    assert_int_equal(count_sealed(lane), 3);
    assert_int_equal(lane->head->evs[0].ticket, 0);
    assert_int_equal(bat.sealed[SINK_SEAL_CHAIN], 3);
    sink_batcher_release(&bat);
}

/* Users repeating within a batch's worth of events (40 users, batches
 * of 10): every batch sealed before the flush is full. */
static void test_sink_batcher_add__repeating_users_fill_batches(void **state)
{
    struct sink_batcher bat;
    struct sink_lane *lane;
    uint64_t r = 42;
    size_t n = 0;

    (void)state;
    sink_batcher_init(&bat, 1, 10, 1 << 20, 0);
    lane = &bat.lanes[0];
    for (unsigned i = 0; i < 2000; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        add(&bat, (unsigned)(r >> 33) % 40, i, 0, i);
    }
    assert_int_equal(bat.sealed[SINK_SEAL_CHAIN], 0);
    for (const struct sink_batch *b = lane->head; b; b = b->next) {
        assert_int_equal(b->n, 10);
        n += b->n;
    }
    for (unsigned j = 0; j < lane->n_open; j++) {
        n += lane->chain[j]->n;
    }
    assert_int_equal(n, 2000);
    assert_true(bat.sealed[SINK_SEAL_FULL] >= 2000 / 10 - SINK_CHAIN_MAX);
    sink_batcher_release(&bat);
}

/* Thousands of users through a full set: the check stays exact. */
static void test_sink_batcher_add__many_users_no_false_seal(void **state)
{
    struct sink_batcher bat;

    (void)state;
    sink_batcher_init(&bat, 1, 1000, 1 << 24, 0);
    for (unsigned i = 0; i < 5000; i++) {
        add(&bat, i, 0, 0, i);
    }
    assert_int_equal(count_sealed(&bat.lanes[0]), 5);
    for (const struct sink_batch *b = bat.lanes[0].head; b; b = b->next) {
        assert_int_equal(b->n, 1000);
    }
    assert_null(sink_lane_open(&bat.lanes[0]));
    sink_batcher_release(&bat);
}

static void test_sink_lane_of__one_user_one_lane_and_spread(void **state)
{
    unsigned count[8] = {0};
    char uid[32];

    (void)state;
    for (unsigned i = 0; i < 80000; i++) {
        int n = snprintf(uid, sizeof(uid), "user-%u@example.com", i);
        uint64_t h = core_hash64(uid, (size_t)n);
        unsigned lane = sink_lane_of(h, 8);
        assert_true(lane < 8);
        assert_int_equal(lane, sink_lane_of(core_hash64(uid, (size_t)n), 8));
        count[lane]++;
    }
    for (int i = 0; i < 8; i++) {
        assert_true(count[i] > 9000 && count[i] < 11000);
    }
    assert_int_equal(sink_lane_of(UINT64_MAX, 1), 0);
    assert_int_equal(sink_lane_of(UINT64_MAX, 256), 255);
}

static void test_sink_lane_split__halves_in_order_at_front(void **state)
{
    struct sink_batcher bat;
    struct sink_lane *lane;
    const struct sink_batch *a, *b, *c;
    char ev[256];

    (void)state;
    sink_batcher_init(&bat, 1, 5, 1 << 20, 0);
    for (unsigned i = 0; i < 7; i++) {
        add(&bat, i, 0, i, i); /* [0..4] sealed, [5, 6] open */
    }
    lane = &bat.lanes[0];
    sink_lane_seal_all(&bat, lane, SINK_SEAL_FLUSH);
    assert_int_equal(count_sealed(lane), 2);
    sink_lane_split(&bat, lane, sink_lane_pop(lane));
    a = lane->head;
    b = a->next;
    c = b->next;
    assert_int_equal(count_sealed(lane), 3);
    assert_int_equal(a->n, 2);
    assert_int_equal(b->n, 3);
    assert_int_equal(c->n, 2);
    assert_ptr_equal(lane->tail, c);
    for (size_t i = 0; i < 2; i++) {
        size_t len = make_event(ev, sizeof(ev), (unsigned)i, 0, i);
        assert_int_equal(a->evs[i].ticket, i);
        assert_int_equal(a->evs[i].len, len);
        assert_memory_equal(a->buf + a->evs[i].off, ev, len);
    }
    for (size_t i = 0; i < 3; i++) {
        size_t len = make_event(ev, sizeof(ev), (unsigned)i + 2, 0, i + 2);
        assert_int_equal(b->evs[i].ticket, i + 2);
        assert_memory_equal(b->buf + b->evs[i].off, ev, len);
    }
    assert_valid_body(a);
    assert_valid_body(b);
    assert_int_equal(a->event_bytes + b->event_bytes,
                     a->len - 1 - 2 + b->len - 2 - 2);

    /* down to single events, order kept */
    sink_lane_split(&bat, lane, sink_lane_pop(lane));
    assert_int_equal(lane->head->n, 1);
    assert_int_equal(lane->head->evs[0].ticket, 0);
    assert_int_equal(lane->head->next->evs[0].ticket, 1);
    assert_valid_body(lane->head);
    sink_batcher_release(&bat);
}

static void test_sink_lane_split__only_batch_sets_tail(void **state)
{
    struct sink_batcher bat;
    struct sink_lane *lane;

    (void)state;
    sink_batcher_init(&bat, 1, 200, 1 << 20, 0);
    add(&bat, 1, 0, 0, 1);
    add(&bat, 2, 0, 0, 2);
    lane = &bat.lanes[0];
    sink_lane_seal_all(&bat, lane, SINK_SEAL_FLUSH);
    sink_lane_split(&bat, lane, sink_lane_pop(lane));
    assert_int_equal(lane->head->evs[0].ticket, 1);
    assert_ptr_equal(lane->tail, lane->head->next);
    assert_int_equal(lane->tail->evs[0].ticket, 2);
    sink_batch_recycle(&bat, sink_lane_pop(lane));
    sink_batch_recycle(&bat, sink_lane_pop(lane));
    assert_null(lane->head);
    assert_null(lane->tail);
    assert_null(sink_lane_pop(lane));
    sink_batcher_release(&bat);
}

static void
test_sink_lane_hold__holds_only_the_users_of_the_failed_batch(void **state)
{
    struct sink_batcher bat;
    struct sink_lane *lane;
    struct sink_batch *failed, *b;
    char t[128];

    (void)state;
    sink_batcher_init(&bat, 1, 5, 1 << 20, 0);
    lane = &bat.lanes[0];
    add(&bat, 0, 0, 0, 0);
    add(&bat, 1, 0, 0, 1);
    add(&bat, 2, 0, 0, 2);
    sink_lane_seal_all(&bat, lane, SINK_SEAL_FLUSH);
    failed = sink_lane_next(lane, 0, 0); /* sent: [0,1,2] */
    lane->cur = failed;
    add(&bat, 3, 1, 0, 3);
    add(&bat, 0, 1, 0, 4); /* user 0 again: behind ticket 0 */
    add(&bat, 4, 1, 0, 5);
    sink_lane_seal_all(&bat, lane, SINK_SEAL_FLUSH);
    add(&bat, 2, 2, 0, 6); /* open: user 2 again */
    add(&bat, 5, 2, 0, 7);
    add(&bat, 0, 2, 0, 10); /* user 0 a third time */

    /* it failed: due again at 100 */
    failed->not_before_ms = 100;
    lane->cur = NULL;
    sink_lane_hold(&bat, lane, failed);
    assert_string_equal(tickets_of(lane->head, t, sizeof(t)), "3,5");
    assert_valid_body(lane->head);
    assert_null(lane->head->next);
    assert_ptr_equal(lane->tail, lane->head);
    /* the open batch is filtered, not sealed */
    assert_string_equal(tickets_of(sink_lane_open(lane), t, sizeof(t)), "7");
    assert_string_equal(tickets_of(lane->heldq, t, sizeof(t)), "4,6,10");
    /* a held user's new event waits too; another user's does not, and
     * user 2, gone from the open batch, does not seal it */
    add(&bat, 1, 3, 0, 8);
    add(&bat, 6, 3, 0, 9);
    assert_string_equal(tickets_of(lane->heldq, t, sizeof(t)), "4,6,10,8");
    assert_string_equal(tickets_of(sink_lane_open(lane), t, sizeof(t)), "7,9");
    sink_lane_seal_all(&bat, lane, SINK_SEAL_FLUSH);
    assert_valid_body(lane->tail);

    /* the other users' batches go first; the failed one once due */
    b = sink_lane_next(lane, 50, 0);
    assert_string_equal(tickets_of(b, t, sizeof(t)), "3,5");
    sink_batch_recycle(&bat, b);
    b = sink_lane_next(lane, 50, 0);
    assert_string_equal(tickets_of(b, t, sizeof(t)), "7,9");
    sink_batch_recycle(&bat, b);
    assert_null(sink_lane_next(lane, 50, 0));
    b = sink_lane_next(lane, 100, 0);
    assert_ptr_equal(b, failed);

    /* accepted: its users' held events follow, in order */
    sink_batch_recycle(&bat, b);
    sink_lane_release(&bat, lane, 200);
    assert_null(lane->heldq);
    assert_int_equal(lane->held_n, 0);
    /* user 0's two held updates in two batches, in order */
    assert_null(lane->head);
    assert_string_equal(tickets_of(lane->chain[0], t, sizeof(t)), "4,6,8");
    assert_string_equal(tickets_of(lane->chain[1], t, sizeof(t)), "10");
    sink_lane_seal_all(&bat, lane, SINK_SEAL_FLUSH);
    assert_valid_body(lane->head);
    assert_valid_body(lane->tail);
    sink_batcher_release(&bat);
}

static void test_sink_lane_hold__a_split_held_batch_still_holds(void **state)
{
    struct sink_batcher bat;
    struct sink_lane *lane;
    struct sink_batch *failed, *a;
    char t[128];

    (void)state;
    sink_batcher_init(&bat, 1, 5, 1 << 20, 0);
    lane = &bat.lanes[0];
    for (unsigned u = 0; u < 4; u++) {
        add(&bat, u, 0, 0, u);
    }
    sink_lane_seal_all(&bat, lane, SINK_SEAL_FLUSH);
    failed = sink_lane_next(lane, 0, 0);
    failed->not_before_ms = 10;
    sink_lane_hold(&bat, lane, failed);
    add(&bat, 3, 1, 0, 4); /* held */
    assert_int_equal(lane->held_n, 4);
    failed = sink_lane_next(lane, 10, 0);
    lane->cur = failed;
    /* 400 on the resend: halves, due now, still holding */
    lane->cur = NULL;
    sink_lane_split(&bat, lane, failed);
    a = sink_lane_next(lane, 10, 0);
    assert_string_equal(tickets_of(a, t, sizeof(t)), "0,1");
    assert_true(a->held);
    sink_batch_recycle(&bat, a);
    sink_lane_release(&bat, lane, 20);
    assert_int_equal(lane->held_n, 2);
    assert_string_equal(tickets_of(lane->heldq, t, sizeof(t)), "4");
    a = sink_lane_next(lane, 20, 0);
    assert_string_equal(tickets_of(a, t, sizeof(t)), "2,3");
    sink_batch_recycle(&bat, a);
    sink_lane_release(&bat, lane, 30);
    assert_string_equal(tickets_of(sink_lane_open(lane), t, sizeof(t)), "4");
    sink_batcher_release(&bat);
}

static int keep_even(void *ctx, uint64_t ticket)
{
    (void)ctx;
    return ticket % 2 == 0;
}

static int keep_odd(void *ctx, uint64_t ticket)
{
    (void)ctx;
    return ticket % 2 == 1;
}

/* A merged object stays while one of its events is wanted (the others
 * are forgotten, their bytes counted as dropped), and goes with the last. */
static void
test_sink_lane_drop__merged_object_keeps_its_wanted_events(void **state)
{
    static const char *const ev[] = {"{\"user_id\":\"m\",\"n\":1}",
                                     "{\"user_id\":\"m\",\"n\":2}",
                                     "{\"user_id\":\"m\",\"k\":3}"};
    struct sink_batcher bat;
    struct sink_lane *lane;
    const struct sink_event *e;
    size_t bytes = 0;
    char body[128];

    (void)state;
    sink_batcher_init(&bat, 1, 200, 1 << 20, 0);
    lane = &bat.lanes[0];
    for (int i = 0; i < 3; i++) {
        sink_batcher_add(&bat, core_hash64("m", 1), ev[i], strlen(ev[i]),
                         (uint64_t)(i + 1), 0);
    }
    assert_int_equal(bat.merged, 2);
    e = &sink_lane_open(lane)->evs[0];
    assert_int_equal(sink_lane_open(lane)->n, 1);
    assert_int_equal(e->ticket, 1);
    assert_int_equal(e->n_more, 2);
    assert_int_equal(e->raw_bytes,
                     strlen(ev[0]) + strlen(ev[1]) + strlen(ev[2]));
    /* ticket 2 (odd ones kept): the object stays with 1 and 3 */
    assert_int_equal(sink_lane_drop(&bat, lane, keep_odd, NULL, 0, &bytes), 1);
    assert_int_equal(bytes, strlen(ev[1]));
    e = &sink_lane_open(lane)->evs[0];
    assert_int_equal(e->ticket, 1);
    assert_int_equal(e->n_more, 1);
    assert_int_equal(e->more[0].ticket, 3);
    /* 1 and 3 not wanted: gone, both counted */
    bytes = 0;
    assert_int_equal(sink_lane_drop(&bat, lane, keep_even, NULL, 0, &bytes), 2);
    assert_int_equal(bytes, strlen(ev[0]) + strlen(ev[2]));
    assert_null(sink_lane_open(lane));
    assert_int_equal(lane->users_n, 0);
    /* the user's next update starts afresh */
    sink_batcher_add(&bat, core_hash64("m", 1), ev[0], strlen(ev[0]), 9, 0);
    sink_lane_seal_all(&bat, lane, SINK_SEAL_FLUSH);
    snprintf(body, sizeof(body), "[%s]", ev[0]);
    assert_int_equal(lane->head->len, strlen(body));
    assert_memory_equal(lane->head->buf, body, strlen(body));
    sink_batcher_release(&bat);
}

/* sink_lane_drop takes the unwanted events out of the FIFO, the waiting
 * batches, the chain and the held queue, unsettled; empty batches leave,
 * and held users whose waiting batch is gone go on. */
static void test_sink_lane_drop__every_queue(void **state)
{
    struct sink_batcher bat;
    struct sink_lane *lane;
    struct sink_batch *failed;
    size_t bytes = 0, n;
    char t[128];

    (void)state;
    sink_batcher_init(&bat, 1, 3, 1 << 20, 0);
    lane = &bat.lanes[0];
    add(&bat, 1, 0, 0, 1); /* a batch of one odd ticket: fails, waits */
    sink_lane_seal_all(&bat, lane, SINK_SEAL_FLUSH);
    failed = sink_lane_next(lane, 0, 0);
    failed->not_before_ms = 100;
    sink_lane_hold(&bat, lane, failed);
    add(&bat, 1, 1, 0, 2); /* held behind ticket 1 */
    add(&bat, 2, 0, 0, 3);
    add(&bat, 3, 0, 0, 4);
    add(&bat, 4, 0, 0, 5); /* [3,4,5] full: sealed */
    add(&bat, 5, 0, 0, 6);
    add(&bat, 5, 1, 0, 7); /* chain: [6] [7] */
    assert_string_equal(tickets_of(lane->heldq, t, sizeof(t)), "2");
    n = sink_lane_drop(&bat, lane, keep_even, NULL, 200, &bytes);
    assert_int_equal(n, 4); /* 1, 3, 5, 7 */
    assert_true(bytes > 0);
    assert_null(lane->waiting);
    assert_int_equal(lane->held_n, 0);
    /* the held ticket 2 went on, behind nothing: into the chain */
    assert_null(lane->heldq);
    assert_string_equal(tickets_of(lane->head, t, sizeof(t)), "4");
    assert_int_equal(lane->n_open, 1);
    assert_string_equal(tickets_of(lane->chain[0], t, sizeof(t)), "6,2");
    assert_valid_body(lane->head);
    sink_lane_seal_all(&bat, lane, SINK_SEAL_FLUSH);
    assert_valid_body(lane->tail);
    sink_batcher_release(&bat);
}

/* Buffers start small and are reused through the pool whatever their
 * size up to max_bytes; a large one sealed far from full gives its slack
 * back. */
static void test_sink_lane_seal__small_buffers_are_pooled(void **state)
{
    struct sink_batcher bat;
    struct sink_batch *b;

    (void)state;
    sink_batcher_init(&bat, 1, 200, 1 << 20, 0);
    add(&bat, 1, 0, 0, 1);
    sink_lane_seal_all(&bat, &bat.lanes[0], SINK_SEAL_FLUSH);
    b = sink_lane_pop(&bat.lanes[0]);
    assert_true(b->cap <= 64 * 1024);
    sink_batch_recycle(&bat, b);
    assert_int_equal(bat.pool_n, 1);
    for (unsigned i = 0; i < 200; i++) {
        add(&bat, i, 0, 5000, i);
    }
    b = sink_lane_pop(&bat.lanes[0]);
    assert_non_null(b);
    assert_int_equal(b->n, 200);
    assert_true(b->cap <= (1 << 20) + 2);
    sink_batch_recycle(&bat, b);
    assert_int_equal(bat.pool_n, 1);
    /* 40 events of 5000 bytes grow a buffer past 128 KiB: sealed early,
     * its slack goes */
    for (unsigned i = 0; i < 40; i++) {
        add(&bat, 1000 + i, 0, 5000, i);
    }
    sink_lane_seal_all(&bat, &bat.lanes[0], SINK_SEAL_FLUSH);
    b = sink_lane_pop(&bat.lanes[0]);
    assert_true(b->cap <= b->len + b->len / 4 + 64);
    sink_batch_recycle(&bat, b);
    sink_batcher_release(&bat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_sink_batcher_add__body_is_a_json_array_byte_exact),
        cmocka_unit_test(test_sink_batcher_add__seals_at_max_events),
        cmocka_unit_test(test_sink_batcher_add__seals_before_max_bytes),
        cmocka_unit_test(
            test_sink_batcher_add__event_beyond_max_bytes_goes_alone),
        cmocka_unit_test(
            test_sink_batcher_add__repeated_user_goes_to_next_batch),
        cmocka_unit_test(test_sink_batcher_add__sealed_latest_frees_the_user),
        cmocka_unit_test(test_sink_batcher_add__chain_bound_by_count),
        cmocka_unit_test(test_sink_batcher_add__repeating_users_fill_batches),
        cmocka_unit_test(test_sink_batcher_add__chain_bound_by_bytes),
        cmocka_unit_test(test_sink_batcher_add__many_users_no_false_seal),
        cmocka_unit_test(test_sink_lane_of__one_user_one_lane_and_spread),
        cmocka_unit_test(test_sink_lane_split__halves_in_order_at_front),
        cmocka_unit_test(test_sink_lane_split__only_batch_sets_tail),
        cmocka_unit_test(
            test_sink_lane_hold__holds_only_the_users_of_the_failed_batch),
        cmocka_unit_test(test_sink_lane_hold__a_split_held_batch_still_holds),
        cmocka_unit_test(test_sink_lane_drop__every_queue),
        cmocka_unit_test(
            test_sink_lane_drop__merged_object_keeps_its_wanted_events),
        cmocka_unit_test(test_sink_lane_seal__small_buffers_are_pooled),
    };
    return cmocka_run_group_tests_name("sink_batch", tests, NULL, NULL);
}
