/*
 * test_end_offsets.c: tests of the Kafka-free rules of ingest/end_offsets.c:
 * when a partition is at the end it had when assigned, what is left to
 * it, and that --exit-at-end pauses a partition once.  ingest_read_ends,
 * which asks the brokers, is covered end to end (test_run_end_offsets.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../ingest/ingest_int.h"

/* An end that could not be read is reached by any end-of-partition event
 * and by no offset, and nothing is known of what is left. */
static void test_ingest_end__unknown_is_reached_only_by_eof(void **state)
{
    struct ingest_end end;

    (void)state;
    ingest_end_init(&end);
    assert_int_equal(end.end_at_start, -1);
    assert_false(end.reached_end);
    assert_false(ingest_end_past(&end, 0));
    assert_false(ingest_end_past(&end, INT64_MAX));
    assert_true(ingest_end_eof(&end, 0));
    assert_int_equal(ingest_end_remaining(&end, -1, -1), -1);
    assert_int_equal(ingest_end_remaining(&end, 5, 0), -1);
}

/* A known end: an offset at or past it is past (the consumer drops such a
 * message with --exit-at-end), the message just before it reaches it
 * (offset + 1), an EOF before it does not. */
static void test_ingest_end__known_end_is_the_assignments(void **state)
{
    struct ingest_end end;

    (void)state;
    ingest_end_init(&end);
    ingest_end_known(&end, 5, 10);
    assert_int_equal(end.end_at_start, 10);
    assert_false(end.reached_end);
    assert_false(ingest_end_past(&end, 9));
    assert_true(ingest_end_past(&end, 9 + 1));
    assert_true(ingest_end_past(&end, 11));
    assert_false(ingest_end_eof(&end, 9));
    assert_true(ingest_end_eof(&end, 10));
    /* left: from the low watermark before anything is consumed, then from
     * the next offset, never below 0 */
    assert_int_equal(ingest_end_remaining(&end, -1, 5), 5);
    assert_int_equal(ingest_end_remaining(&end, -1, -1), -1);
    assert_int_equal(ingest_end_remaining(&end, 7, 5), 3);
    assert_int_equal(ingest_end_remaining(&end, 12, 5), 0);
}

/* An empty partition (low watermark = high) is at its end when assigned. */
static void test_ingest_end__empty_partition_is_at_its_end(void **state)
{
    struct ingest_end end;

    (void)state;
    ingest_end_init(&end);
    ingest_end_known(&end, 42, 42);
    assert_true(end.reached_end);
    assert_int_equal(ingest_end_remaining(&end, -1, 42), 0);
}

/* With --exit-at-end a partition is paused the first time it reaches its
 * end, never again; without, it is only marked. */
static void test_ingest_end_reach__pauses_once_with_exit_at_end(void **state)
{
    struct ingest_end end;

    (void)state;
    ingest_end_init(&end);
    ingest_end_known(&end, 0, 3);
    assert_int_equal(ingest_end_reach(&end, 1), 1);
    assert_true(end.reached_end);
    assert_true(end.end_paused);
    assert_int_equal(ingest_end_reach(&end, 1), 0);
    assert_int_equal(ingest_end_remaining(&end, 1, 0), 0);

    ingest_end_init(&end);
    assert_int_equal(ingest_end_reach(&end, 0), 0);
    assert_true(end.reached_end);
    assert_false(end.end_paused);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_end__unknown_is_reached_only_by_eof),
        cmocka_unit_test(test_ingest_end__known_end_is_the_assignments),
        cmocka_unit_test(test_ingest_end__empty_partition_is_at_its_end),
        cmocka_unit_test(test_ingest_end_reach__pauses_once_with_exit_at_end),
    };

    return cmocka_run_group_tests_name("ingest/end_offsets", tests, NULL, NULL);
}
