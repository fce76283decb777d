/*
 * end_offsets.c: the end offset each partition had when it was assigned,
 * and whether it has been consumed up to it: userpipe run --exit-at-end
 * (a backfill) sends its open batches at once when every partition is at
 * that end (ingest_caught_up) and exits once they are settled too
 * (ingest_at_end).  Without --exit-at-end no end is read and none reached.
 * Apart from the consumer so that the rules are unit tested without a
 * broker (tests/ingest/test_end_offsets.c); only ingest_read_ends talks to
 * Kafka.
 *
 * Invariant: the end is the one of the assignment, never a later high
 * watermark: on a topic still being written to, a backfill must end at its
 * start's end, not chase the producers.  An end that could not be read
 * stays unknown (-1) and is reached only by an end-of-partition event.
 */
#include "ingest_int.h"

#include <librdkafka/rdkafka.h>

void ingest_end_init(struct ingest_end *end)
{
    end->end_at_start = -1;
    end->reached_end = 0;
    end->end_paused = 0;
}

void ingest_end_known(struct ingest_end *end, int64_t lo, int64_t hi)
{
    end->end_at_start = hi;
    if (lo == hi) {
        end->reached_end = 1; /* empty partition; paused once assigned */
    }
}

int ingest_end_past(const struct ingest_end *end, int64_t offset)
{
    return end->end_at_start >= 0 && offset >= end->end_at_start;
}

int ingest_end_eof(const struct ingest_end *end, int64_t offset)
{
    return end->end_at_start < 0 || offset >= end->end_at_start;
}

int ingest_end_reach(struct ingest_end *end, int exit_at_end)
{
    end->reached_end = 1;
    if (!exit_at_end || end->end_paused) {
        return 0;
    }
    end->end_paused = 1;
    return 1;
}

int64_t ingest_end_remaining(const struct ingest_end *end, int64_t next_offset,
                             int64_t lo)
{
    if (end->reached_end) {
        return 0;
    }
    if (end->end_at_start >= 0 && next_offset >= 0) {
        return end->end_at_start > next_offset ? end->end_at_start - next_offset
                                               : 0;
    }
    if (end->end_at_start >= 0 && lo >= 0) {
        return end->end_at_start - lo;
    }
    return -1;
}

/* One logical offset (RD_KAFKA_OFFSET_END or _BEGINNING) of every
 * partition of parts, in a copy of it: each element's offset, or its err. */
static rd_kafka_topic_partition_list_t *
list_offsets(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *parts,
             int64_t which)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_resp_err_t err;

    for (int i = 0; i < l->cnt; i++) {
        l->elems[i].offset = which;
        l->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    err = rd_kafka_offsets_for_times(rk, l, 10000);
    for (int i = 0; i < l->cnt && err != RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        l->elems[i].err = err;
    }
    return l;
}

/*
 * ListOffsets with the logical offsets as timestamps, as Kafka's own
 * endOffsets() does: rd_kafka_offsets_for_times sends one request per
 * leader for the whole list, where a watermark query per partition took a
 * round trip each, in the rebalance callback (a few hundred partitions on
 * a distant cluster: seconds of a stopped loop).  One failing partition
 * fails the whole call, so what is still unknown then is asked one
 * partition at a time, within 10 s in all; a partition whose end stays
 * unknown ends at its first end-of-partition event instead.
 */
void ingest_read_ends(rd_kafka_t *rk,
                      const rd_kafka_topic_partition_list_t *parts,
                      struct ingest_end *const *ends)
{
    rd_kafka_topic_partition_list_t *hi =
        list_offsets(rk, parts, RD_KAFKA_OFFSET_END);
    rd_kafka_topic_partition_list_t *lo =
        list_offsets(rk, parts, RD_KAFKA_OFFSET_BEGINNING);
    int logged = 0;
    /* the one-by-one queries share 10 s: the loop is stopped meanwhile */
    int64_t deadline = core_now_ms() + 10000;

    for (int i = 0; i < hi->cnt; i++) {
        const rd_kafka_topic_partition_t *h = &hi->elems[i];
        const rd_kafka_topic_partition_t *l =
            rd_kafka_topic_partition_list_find(lo, h->topic, h->partition);

        if (ends[i] == NULL) {
            continue;
        }
        if (h->err != RD_KAFKA_RESP_ERR_NO_ERROR || h->offset < 0 ||
            l == NULL || l->err != RD_KAFKA_RESP_ERR_NO_ERROR ||
            l->offset < 0) {
            int64_t wlo = -1, whi = -1;
            rd_kafka_resp_err_t err;

            if (!logged) {
                core_log(CORE_LOG_INFO, "ingest",
                         "msg=\"end offsets: asking partition by "
                         "partition\" error=\"%s\"",
                         rd_kafka_err2str(h->err != RD_KAFKA_RESP_ERR_NO_ERROR
                                              ? h->err
                                          : l != NULL ? l->err
                                                      : h->err));
                logged = 1;
            }
            err = core_now_ms() < deadline ? rd_kafka_query_watermark_offsets(
                                            rk, h->topic, h->partition, &wlo,
                                            &whi, (int)(deadline - core_now_ms()))
                                      : RD_KAFKA_RESP_ERR__TIMED_OUT;
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR || whi < 0) {
                core_log(CORE_LOG_WARN, "ingest",
                         "msg=\"cannot read end offset\" topic=%s "
                         "partition=%d error=\"%s\"",
                         h->topic, h->partition,
                         err != RD_KAFKA_RESP_ERR_NO_ERROR
                             ? rd_kafka_err2str(err)
                             : "the broker gave no end offset");
                continue;
            }
            ingest_end_known(ends[i], wlo, whi);
            continue;
        }
        ingest_end_known(ends[i], l->offset, h->offset);
    }
    rd_kafka_topic_partition_list_destroy(hi);
    rd_kafka_topic_partition_list_destroy(lo);
}
