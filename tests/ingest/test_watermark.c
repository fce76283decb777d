/*
 * test_watermark.c: tests of ingest/watermark.c, the at-least-once
 * invariant without a broker: whatever order tickets are settled in, the
 * offset stored for commit is one past the end of the contiguous settled
 * prefix, never past an unsettled message; gaps in offsets; a partition
 * revoked with messages unsettled and assigned again, whose old tickets
 * must not move the new watermark; the ring's growth past its first
 * capacity.
 *
 * Random cases use a seeded generator (xorshift64*), so a failure names
 * its round and repeats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../ingest/watermark.h"
#include "../../core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

/* 0 .. n-1 */
static size_t rng_below(size_t n)
{
    return (size_t)(rng() % n);
}

/* A held message whose value is "o<offset>", no key. */
static struct ingest_held *held_new(int64_t offset)
{
    char v[32];
    int len = snprintf(v, sizeof(v), "o%lld", (long long)offset);
    struct ingest_held *h = core_malloc(sizeof(*h) + (size_t)len);

    h->timestamp_ms = -1;
    h->key_len = SIZE_MAX;
    h->len = (size_t)len;
    h->hdr_len = 0;
    memcpy(h->bytes, v, (size_t)len);
    return h;
}

/* What the test knows of one partition's assignment: every message
 * pushed, in order, and which are settled. */
struct model {
    size_t slot;
    int64_t *offsets;
    uint64_t *tickets;
    int *settled;
    size_t n, cap;
    size_t prefix;  /* settled messages at the front */
    int64_t stored; /* last offset taken from ingest_wm_take_stored, -1 */
};

static void model_init(struct model *m, size_t slot)
{
    memset(m, 0, sizeof(*m));
    m->slot = slot;
    m->stored = -1;
}

static void model_release(struct model *m)
{
    free(m->offsets);
    free(m->tickets);
    free(m->settled);
}

static void push(struct ingest_wm *wm, struct model *m, int64_t offset)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->offsets = core_realloc(m->offsets, m->cap * sizeof(*m->offsets));
        m->tickets = core_realloc(m->tickets, m->cap * sizeof(*m->tickets));
        m->settled = core_realloc(m->settled, m->cap * sizeof(*m->settled));
    }
    m->offsets[m->n] = offset;
    m->tickets[m->n] = ingest_wm_push(wm, m->slot, held_new(offset), offset);
    m->settled[m->n] = 0;
    m->n++;
}

/* The offset the watermark must store: one past the last message of the
 * settled prefix, -1 before any. */
static int64_t expected(const struct model *m)
{
    return m->prefix > 0 ? m->offsets[m->prefix - 1] + 1 : -1;
}

/* Takes the stored offset, as ingest.c does after each poll, and checks
 * it against the model: it moves exactly when the prefix grew, to its end,
 * and never past the first unsettled message. */
static void check_stored(struct ingest_wm *wm, struct model *m)
{
    int64_t offset = -1;
    int moved = ingest_wm_take_stored(wm, m->slot, &offset);

    if (moved) {
        assert_int_equal(offset, expected(m));
        assert_true(offset > m->stored);
        m->stored = offset;
    } else {
        assert_int_equal(m->stored, expected(m));
    }
    if (m->prefix < m->n) {
        assert_false(m->settled[m->prefix]);
        assert_true(m->stored <= m->offsets[m->prefix]);
    }
}

static void settle(struct ingest_wm *wm, struct model *m, size_t i)
{
    assert_int_equal(ingest_wm_settle(wm, m->tickets[i]), 1);
    m->settled[i] = 1;
    while (m->prefix < m->n && m->settled[m->prefix]) {
        m->prefix++;
    }
}

/* The message of an unsettled ticket is the one pushed with it. */
static void check_get(const struct ingest_wm *wm, const struct model *m,
                      size_t i, void *owner)
{
    void *o = NULL;
    int64_t offset = -1;
    const struct ingest_held *h = ingest_wm_get(wm, m->tickets[i], &o, &offset);
    char v[32];
    int len = snprintf(v, sizeof(v), "o%lld", (long long)m->offsets[i]);

    if (m->settled[i]) {
        assert_null(h);
        return;
    }
    assert_non_null(h);
    assert_ptr_equal(o, owner);
    assert_int_equal(offset, m->offsets[i]);
    assert_int_equal(h->len, (size_t)len);
    assert_memory_equal(h->bytes, v, (size_t)len);
}

/* An unsettled message of m, chosen at random; m->n if none. */
static size_t pick_unsettled(const struct model *m)
{
    size_t left = 0, k;

    for (size_t i = m->prefix; i < m->n; i++) {
        left += !m->settled[i];
    }
    if (left == 0) {
        return m->n;
    }
    k = rng_below(left);
    for (size_t i = m->prefix; i < m->n; i++) {
        if (!m->settled[i] && k-- == 0) {
            return i;
        }
    }
    return m->n;
}

/* Three partitions consumed and settled interleaved, in random orders,
 * offsets with random gaps (compacted topics, transaction markers), up to
 * 3000 unsettled at once so the ring grows mid-stream. */
static void
test_ingest_wm_settle__random_orders_store_the_settled_prefix(void **state)
{
    (void)state;
    for (unsigned round = 0; round < 300; round++) {
        struct ingest_wm wm = {0};
        struct model m[3];
        int64_t next[3];
        int owners[3];
        size_t total = 0, settled = 0, target;

        rng_state = 0x9E3779B97F4A7C15ULL ^ (round + 1);
        target = 1 + rng_below(3000);
        for (size_t p = 0; p < 3; p++) {
            model_init(&m[p], ingest_wm_add(&wm, &owners[p]));
            assert_int_equal(m[p].slot, p);
            next[p] = (int64_t)rng_below(1000000);
        }
        while (settled < target) {
            size_t p = rng_below(3);
            /* push more while under the target, else only settle */
            if (total < target && rng_below(3) != 0) {
                int64_t gap = rng_below(4) == 0 ? (int64_t)rng_below(5) : 0;
                next[p] += gap;
                push(&wm, &m[p], next[p]++);
                total++;
            } else {
                size_t i = pick_unsettled(&m[p]);
                if (i == m[p].n) {
                    continue;
                }
                settle(&wm, &m[p], i);
                settled++;
                /* a second settle of the same ticket changes nothing */
                if (rng_below(8) == 0) {
                    assert_int_equal(ingest_wm_settle(&wm, m[p].tickets[i]), 0);
                }
            }
            check_stored(&wm, &m[p]);
            assert_int_equal(wm.in_flight, total - settled);
            assert_int_equal(wm.settled, settled);
            if (rng_below(16) == 0 && m[p].n > 0) {
                check_get(&wm, &m[p], rng_below(m[p].n), &owners[p]);
            }
        }
        for (size_t p = 0; p < 3; p++) {
            check_stored(&wm, &m[p]);
            if (m[p].n > 0) {
                assert_int_equal(m[p].stored, m[p].offsets[m[p].n - 1] + 1);
            }
            model_release(&m[p]);
        }
        ingest_wm_release(&wm);
    }
}

/* Offsets with holes: the stored offset is one past the last settled
 * message, not the next message's offset, and never reaches a message
 * not yet settled. */
static void
test_ingest_wm_settle__gaps_store_one_past_the_last_settled(void **state)
{
    struct ingest_wm wm = {0};
    struct model m;
    static const int64_t offsets[] = {10, 11, 15, 20};

    (void)state;
    model_init(&m, ingest_wm_add(&wm, NULL));
    for (size_t i = 0; i < 4; i++) {
        push(&wm, &m, offsets[i]);
    }
    settle(&wm, &m, 1);
    check_stored(&wm, &m);
    assert_int_equal(m.stored, -1);
    settle(&wm, &m, 0);
    check_stored(&wm, &m);
    assert_int_equal(m.stored, 12);
    settle(&wm, &m, 3);
    check_stored(&wm, &m);
    assert_int_equal(m.stored, 12);
    settle(&wm, &m, 2);
    check_stored(&wm, &m);
    assert_int_equal(m.stored, 21);
    /* nothing moved since: nothing to store */
    assert_int_equal(ingest_wm_take_stored(&wm, m.slot, &m.stored), 0);
    model_release(&m);
    ingest_wm_release(&wm);
}

/*
 * A partition revoked with messages unsettled (the drain's deadline
 * passed; ingest's given_up) and assigned again at another offset, in the
 * same slot: the old tickets name nothing any more, so settling them moves
 * neither the new watermark nor in_flight, also once the new assignment
 * has handed out as many messages as the old one.
 */
static void
test_ingest_wm_remove__old_tickets_leave_the_new_watermark(void **state)
{
    struct ingest_wm wm = {0};
    struct model old, cur;
    int owner_old, owner_new;
    int64_t offset = -1;

    (void)state;
    model_init(&old, ingest_wm_add(&wm, &owner_old));
    for (int64_t o = 100; o < 110; o++) {
        push(&wm, &old, o);
    }
    settle(&wm, &old, 0);
    settle(&wm, &old, 5);
    check_stored(&wm, &old);
    assert_int_equal(old.stored, 101);

    assert_int_equal(ingest_wm_remove(&wm, old.slot), 8);
    assert_int_equal(wm.in_flight, 0);
    assert_null(ingest_wm_owner(&wm, old.slot));

    /* reassigned, same slot, from an older commit (another owner's) */
    model_init(&cur, ingest_wm_add(&wm, &owner_new));
    assert_int_equal(cur.slot, old.slot);
    for (int64_t o = 50; o < 70; o++) {
        push(&wm, &cur, o);
    }
    for (size_t i = 0; i < old.n; i++) {
        void *o = NULL;
        for (size_t j = 0; j < cur.n; j++) {
            assert_true(old.tickets[i] != cur.tickets[j]);
        }
        assert_null(ingest_wm_get(&wm, old.tickets[i], &o, &offset));
        assert_int_equal(ingest_wm_settle(&wm, old.tickets[i]), 0);
    }
    assert_int_equal(wm.in_flight, 20);
    assert_int_equal(ingest_wm_take_stored(&wm, cur.slot, &offset), 0);
    check_stored(&wm, &cur);
    settle(&wm, &cur, 0);
    check_stored(&wm, &cur);
    assert_int_equal(cur.stored, 51);
    check_get(&wm, &cur, 1, &owner_new);
    model_release(&old);
    model_release(&cur);
    ingest_wm_release(&wm);
}

/*
 * Random revokes: partitions are revoked at random moments with whatever
 * is unsettled, and assigned again (in whichever slot is free) at a random
 * offset; tickets of every earlier assignment are settled at random
 * throughout.  Each live assignment's watermark follows only its own
 * tickets.
 */
static void
test_ingest_wm_remove__random_revokes_keep_assignments_apart(void **state)
{
    (void)state;
    for (unsigned round = 0; round < 200; round++) {
        struct ingest_wm wm = {0};
        struct model live[2];
        uint64_t *stale = NULL;
        size_t nstale = 0;
        size_t in_flight = 0;

        rng_state = 0xD1B54A32D192ED03ULL ^ (round + 1);
        for (size_t p = 0; p < 2; p++) {
            model_init(&live[p], ingest_wm_add(&wm, &live[p]));
        }
        for (unsigned step = 0; step < 2000; step++) {
            size_t p = rng_below(2);
            size_t r = rng_below(100);
            struct model *m = &live[p];

            if (r < 50) {
                /* a new assignment starts anywhere */
                push(&wm, m,
                     m->n > 0 ? m->offsets[m->n - 1] + 1
                              : (int64_t)rng_below(1000));
                in_flight++;
            } else if (r < 85) {
                size_t i = pick_unsettled(m);
                if (i < m->n) {
                    settle(&wm, m, i);
                    in_flight--;
                }
            } else if (r < 97 && nstale > 0) {
                /* an old assignment's ticket, settled late: ignored */
                uint64_t t = stale[rng_below(nstale)];
                assert_int_equal(ingest_wm_settle(&wm, t), 0);
            } else if (r >= 97) {
                size_t unsettled = m->n - m->prefix;
                for (size_t i = m->prefix; i < m->n; i++) {
                    unsettled -= m->settled[i];
                    if (!m->settled[i]) {
                        stale =
                            core_realloc(stale, (nstale + 1) * sizeof(*stale));
                        stale[nstale++] = m->tickets[i];
                    }
                }
                assert_int_equal(ingest_wm_remove(&wm, m->slot), unsettled);
                in_flight -= unsettled;
                model_release(m);
                model_init(m, ingest_wm_add(&wm, m));
            }
            for (size_t q = 0; q < 2; q++) {
                check_stored(&wm, &live[q]);
            }
            assert_int_equal(wm.in_flight, in_flight);
        }
        for (size_t p = 0; p < 2; p++) {
            model_release(&live[p]);
        }
        free(stale);
        ingest_wm_release(&wm);
    }
}

/*
 * The ring starts at 1024 messages and doubles when full: 5000 unsettled
 * messages keep their tickets and bytes through three growths, nothing is
 * stored while the first is unsettled, and settling it stores them all.
 * There is no cap here: ingest's caller bounds the ring by holding back
 * consumption.
 */
static void test_ingest_wm_push__grows_past_the_first_capacity(void **state)
{
    struct ingest_wm wm = {0};
    struct model m;
    int owner;

    (void)state;
    model_init(&m, ingest_wm_add(&wm, &owner));
    for (int64_t o = 0; o < 5000; o++) {
        push(&wm, &m, 7 + o);
    }
    for (size_t i = 0; i < m.n; i += 97) {
        check_get(&wm, &m, i, &owner);
    }
    for (size_t i = m.n; i-- > 1;) {
        settle(&wm, &m, i);
        check_stored(&wm, &m);
    }
    check_get(&wm, &m, 0, &owner);
    assert_int_equal(m.stored, -1);
    settle(&wm, &m, 0);
    check_stored(&wm, &m);
    assert_int_equal(m.stored, 7 + 5000);
    assert_int_equal(wm.in_flight, 0);
    model_release(&m);
    ingest_wm_release(&wm);
}

/* A partition removed with messages held frees them, and release frees
 * the rest (ASan's leak check is the assertion). */
static void test_ingest_wm_release__frees_held_messages(void **state)
{
    struct ingest_wm wm = {0};
    struct model a, b;

    (void)state;
    model_init(&a, ingest_wm_add(&wm, NULL));
    model_init(&b, ingest_wm_add(&wm, NULL));
    for (int64_t o = 0; o < 3000; o++) {
        push(&wm, o % 2 ? &a : &b, o);
    }
    settle(&wm, &a, 10);
    assert_int_equal(ingest_wm_remove(&wm, a.slot), a.n - 1);
    assert_int_equal(wm.in_flight, b.n);
    model_release(&a);
    model_release(&b);
    ingest_wm_release(&wm);
    assert_int_equal(wm.nslots, 0);
}

/*
 * Seqs past 2^40: a ticket holds only the low 40 bits of its seq, and
 * seqs only grow over a process's life (seq_floor), so after 2^40
 * messages (68 days at make bench's 187k/s) tickets name seqs above the
 * mask.  They must still settle, and the tickets of a partition revoked
 * across that point must still name nothing.
 */
static void test_ingest_wm_settle__seqs_past_the_ticket_bits(void **state)
{
    struct ingest_wm wm = {0};
    struct model old, cur;

    (void)state;
    wm.seq_floor = (1ULL << 40) - 3;
    model_init(&old, ingest_wm_add(&wm, NULL));
    for (int64_t o = 0; o < 6; o++) {
        push(&wm, &old, o);
    }
    for (size_t i = 6; i-- > 1;) {
        settle(&wm, &old, i);
        check_stored(&wm, &old);
    }
    assert_int_equal(old.stored, -1);
    settle(&wm, &old, 0);
    check_stored(&wm, &old);
    assert_int_equal(old.stored, 6);
    for (int64_t o = 6; o < 12; o++) {
        push(&wm, &old, o);
    }
    settle(&wm, &old, 6);
    check_stored(&wm, &old);
    assert_int_equal(ingest_wm_remove(&wm, old.slot), 5);

    model_init(&cur, ingest_wm_add(&wm, NULL));
    for (int64_t o = 0; o < 12; o++) {
        push(&wm, &cur, o);
    }
    for (size_t i = 7; i < old.n; i++) {
        assert_int_equal(ingest_wm_settle(&wm, old.tickets[i]), 0);
    }
    assert_int_equal(wm.in_flight, 12);
    check_stored(&wm, &cur);
    assert_int_equal(cur.stored, -1);
    settle(&wm, &cur, 0);
    check_stored(&wm, &cur);
    assert_int_equal(cur.stored, 1);
    model_release(&old);
    model_release(&cur);
    ingest_wm_release(&wm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_ingest_wm_settle__random_orders_store_the_settled_prefix),
        cmocka_unit_test(
            test_ingest_wm_settle__gaps_store_one_past_the_last_settled),
        cmocka_unit_test(
            test_ingest_wm_remove__old_tickets_leave_the_new_watermark),
        cmocka_unit_test(
            test_ingest_wm_remove__random_revokes_keep_assignments_apart),
        cmocka_unit_test(test_ingest_wm_push__grows_past_the_first_capacity),
        cmocka_unit_test(test_ingest_wm_release__frees_held_messages),
        cmocka_unit_test(test_ingest_wm_settle__seqs_past_the_ticket_bits),
    };

    return cmocka_run_group_tests_name("ingest/watermark", tests, NULL, NULL);
}
