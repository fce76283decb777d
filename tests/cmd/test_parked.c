/*
 * test_parked.c: tests of cmd/parked.c, the queue of events waiting for
 * their new metadata keys to be claimed: consumption order kept, and a
 * user with a parked event known as such until its last one leaves, so
 * that a later update of that user parks behind it (per-user order), and
 * the bytes parked, which the caller bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../cmd/parked.h"

#include <stdlib.h>

static void test_parked__fifo_with_times(void **state)
{
    struct parked *p = parked_new();
    uint64_t t;
    int64_t ms;
    (void)state;

    assert_int_equal(parked_head(p, &t, &ms), 0);
    for (uint64_t i = 1; i <= 1000; i++) {
        parked_push(p, i, i % 7 + 1, 100 + i, (int64_t)i * 10);
    }
    assert_int_equal(parked_count(p), 1000);
    assert_int_equal(parked_bytes(p), 100 * 1000 + 1000 * 1001 / 2);
    for (uint64_t i = 1; i <= 1000; i++) {
        assert_int_equal(parked_bytes(p),
                         100 * (1001 - i) + (1000 * 1001 - (i - 1) * i) / 2);
        assert_int_equal(parked_head(p, &t, &ms), 1);
        assert_int_equal(t, i);
        assert_int_equal(ms, (int64_t)i * 10);
        parked_pop(p);
    }
    assert_int_equal(parked_count(p), 0);
    assert_int_equal(parked_bytes(p), 0);
    assert_int_equal(parked_head(p, &t, &ms), 0);
    parked_destroy(p);
}

/* Random pushes and pops against a model: has_user is true exactly while
 * one of the user's tickets is queued. */
static void test_parked__has_user_matches_a_model(void **state)
{
    enum { USERS = 17, ROUNDS = 20000 };
    struct parked *p = parked_new();
    unsigned queued[USERS + 1] = {0};
    uint64_t *order = calloc(ROUNDS, sizeof(*order)); /* ticket -> user */
    uint64_t next = 1, head = 1;
    size_t bytes = 0;
    (void)state;

    srand(14);
    for (int r = 0; r < ROUNDS; r++) {
        if (next - head > 0 && rand() % 3 == 0) {
            uint64_t t;
            int64_t ms;
            assert_int_equal(parked_head(p, &t, &ms), 1);
            assert_int_equal(t, head);
            queued[order[head % ROUNDS]]--;
            bytes -= order[head % ROUNDS];
            parked_pop(p);
            head++;
        } else {
            uint64_t u = (uint64_t)(rand() % USERS) + 1;
            order[next % ROUNDS] = u;
            parked_push(p, next++, u, (size_t)u, 0);
            bytes += u;
            queued[u]++;
        }
        for (uint64_t u = 1; u <= USERS; u++) {
            assert_int_equal(parked_has_user(p, u), queued[u] > 0);
        }
        assert_int_equal(parked_count(p), next - head);
        assert_int_equal(parked_bytes(p), bytes);
    }
    free(order);
    parked_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parked__fifo_with_times),
        cmocka_unit_test(test_parked__has_user_matches_a_model),
    };
    return cmocka_run_group_tests_name("parked", tests, NULL, NULL);
}
