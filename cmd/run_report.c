/*
 * run_report.c: what `userpipe run` tells the operator (see run_int.h):
 * the metrics snapshot published to the /metrics endpoint, the backfill
 * progress line (--exit-at-end) and the closing summary.
 *
 * It is apart from run.c so that the loop there reads as routing and
 * backpressure only.  The invariant not to break: reporting only reads the
 * stages' statistics and struct run's counters; it never settles, parks or
 * holds an event, so what it prints can never change what is delivered.
 */
#include "run_int.h"
#include "../core/core.h"
#include "metrics.h"
#include "parked.h"
#include "../ingest/ingest.h"
#include "../schemas/schema.h"
#include "../sink/sink.h"

#include <stdio.h>
#include <string.h>

/* ---- observability ---------------------------------------------------- */

static uint64_t rejects_total(const struct run *r)
{
    uint64_t n = 0;
    for (int i = 0; i < CORE_REJECT__COUNT; i++) {
        n += r->rejects_by_code[i];
    }
    return n;
}

static void publish(struct run *r)
{
    struct metrics_snapshot *m = r->snap;
    struct sink_stats ss;
    struct ingest_stats is;
    struct ingest_partition_info info[METRICS_MAX_PARTITIONS];
    size_t n;

    sink_get_stats(r->snk, &ss);
    ingest_get_stats(r->ing, &is);
    memset(m, 0, sizeof(*m));
    m->consumed = is.consumed;
    m->accepted = r->accepted;
    memcpy(m->rejected_by_code, r->rejects_by_code,
           sizeof(m->rejected_by_code));
    m->batches_sent = ss.batches_ok;
    m->users_sent = ss.events_ok;
    m->merged = ss.merged;
    m->kept_apart[0] = ss.apart_token;
    m->kept_apart[1] = ss.apart_shape;
    m->kept_apart[2] = ss.apart_size;
    m->kept_apart[3] = ss.apart_other;
    memcpy(m->responses, ss.status, sizeof(m->responses));
    m->retries = ss.retries;
    m->in_flight = ss.in_flight;
    /* the sink's and the endpoint's histograms share their bounds */
    memcpy(m->latency_bucket, ss.latency_bucket, sizeof(m->latency_bucket));
    m->latency_sum_s = (double)ss.latency_sum_ms / 1000.0;
    m->latency_count = ss.requests;
    m->schema_keys = schema_count(r->sch);
    m->parked = parked_count(r->parked);
    {
        uint64_t ticket;
        int64_t parked_ms;
        if (parked_head(r->parked, &ticket, &parked_ms)) {
            /* the FIFO's head is its oldest */
            m->parked_oldest_s = (double)(core_now_ms() - parked_ms) / 1000.0;
        }
    }
    m->moesif_reachable = ss.reachable || ss.requests == 0;
    n = ingest_partitions(r->ing, info, METRICS_MAX_PARTITIONS);
    for (size_t i = 0; i < n; i++) {
        snprintf(m->parts[i].topic, sizeof(m->parts[i].topic), "%s",
                 info[i].topic);
        m->parts[i].partition = info[i].partition;
        m->parts[i].lag = info[i].lag;
        m->parts[i].paused = info[i].paused;
        m->paused += (unsigned)info[i].paused;
    }
    m->nparts = n;
    m->assigned = (unsigned)n;
    m->held = r->held_since_ms != 0;
    m->held_s = (double)(r->held_ms_total +
                         (m->held ? core_now_ms() - r->held_since_ms : 0)) /
                1000.0;
    metrics_publish(r->metrics, m);
}

/* Backfill progress (--exit-at-end): a live line on a terminal, a log
 * line every progress.interval_ms otherwise. */
static void progress(struct run *r, int64_t now, int final)
{
    struct ingest_partition_info info[METRICS_MAX_PARTITIONS];
    struct ingest_stats is;
    size_t n = ingest_partitions(r->ing, info, METRICS_MAX_PARTITIONS);
    uint64_t remaining = 0, done;
    int known = n > 0;
    double secs = (double)(now - r->started_ms) / 1000.0;
    char eta[32] = "?";

    ingest_get_stats(r->ing, &is);
    for (size_t i = 0; i < n; i++) {
        if (info[i].remaining < 0) {
            known = 0;
        } else {
            remaining += (uint64_t)info[i].remaining;
        }
    }
    done = is.settled;
    if (known && r->total_at_start == 0) {
        r->total_at_start = is.consumed + remaining;
    }
    if (now > r->last_done_ms) {
        double inst = (double)(done - r->last_done) * 1000.0 /
                      (double)(now - r->last_done_ms);
        r->rate = r->last_done_ms == 0 ? inst : 0.7 * r->rate + 0.3 * inst;
        r->last_done = done;
        r->last_done_ms = now;
    }
    if (r->total_at_start > done && r->rate > 1.0) {
        snprintf(eta, sizeof(eta), "%.0fs",
                 (double)(r->total_at_start - done) / r->rate);
    } else if (r->total_at_start > 0 && done >= r->total_at_start) {
        snprintf(eta, sizeof(eta), "0s");
    }
    if (r->tty) {
        if (r->total_at_start > 0) {
            fprintf(stderr,
                    "\r\033[Kuserpipe: %llu/%llu events (%.1f%%), %.0f "
                    "events/s, %llu rejects, %.0fs elapsed, %s left",
                    (unsigned long long)done,
                    (unsigned long long)r->total_at_start,
                    100.0 * (double)done / (double)r->total_at_start, r->rate,
                    (unsigned long long)rejects_total(r), secs, eta);
        } else {
            fprintf(stderr,
                    "\r\033[Kuserpipe: %llu events, %.0f events/s, %llu "
                    "rejects, %.0fs elapsed (waiting for partitions)",
                    (unsigned long long)done, r->rate,
                    (unsigned long long)rejects_total(r), secs);
        }
        if (final) {
            fputc('\n', stderr);
        }
        fflush(stderr);
    } else {
        core_log(CORE_LOG_INFO, "run",
                 "msg=\"progress\" done=%llu total=%llu rate=%.0f "
                 "rejects=%llu elapsed_s=%.0f eta=%s",
                 (unsigned long long)done,
                 (unsigned long long)r->total_at_start, r->rate,
                 (unsigned long long)rejects_total(r), secs, eta);
    }
}

/* Called every turn of the loop: publishes metrics (4 times a second)
 * and reports progress. */
void run_report_tick(struct run *r)
{
    int64_t now = core_now_ms();

    if (r->metrics != NULL && now >= r->next_publish_ms) {
        publish(r);
        r->next_publish_ms = now + 250;
    }
    if (r->exit_at_end && now >= r->next_progress_ms) {
        progress(r, now, 0);
        r->next_progress_ms =
            now + (r->tty ? 1000 : (int64_t)r->cfg.progress_interval_ms);
    }
}

void run_report_summary(struct run *r, int64_t started_ms)
{
    struct sink_stats ss;
    struct schema_claims_stats cs;
    struct ingest_stats is;
    double secs = (double)(core_now_ms() - started_ms) / 1000.0;
    char codes[512] = "";

    uint64_t sealed;

    sink_get_stats(r->snk, &ss);
    sealed =
        ss.sealed_full + ss.sealed_linger + ss.sealed_chain + ss.sealed_flush;
    schema_claims_get_stats(r->claims, &cs);
    ingest_get_stats(r->ing, &is);
    for (int i = 1; i < CORE_REJECT__COUNT; i++) {
        if (r->rejects_by_code[i] > 0) {
            size_t n = strlen(codes);
            snprintf(codes + n, sizeof(codes) - n, "%s%s=%llu", n ? "," : "",
                     core_reject_name((enum core_reject_code)i),
                     (unsigned long long)r->rejects_by_code[i]);
        }
    }
    core_log(CORE_LOG_INFO, "run",
             "msg=\"stopped\" seconds=%.1f accepted=%llu rejected=%llu "
             "sent=%llu objects=%llu merged=%llu kept_apart=%llu "
             "batches=%llu requests=%llu retries=%llu "
             "rejects_by_code=\"%s\" dlq_truncated=%llu schema_keys=%zu "
             "claims_made=%llu "
             "claim_waits=%llu claim_wait_ms_avg=%.1f claim_wait_ms_max=%llu "
             "batch_events_avg=%.1f batch_events_p10=%zu "
             "sealed_full=%llu sealed_linger=%llu sealed_chain=%llu "
             "sealed_flush=%llu backlog_batches=%llu "
             "backlog_batch_events_avg=%.1f backlog_batch_events_p10=%zu "
             "claims_again=%llu tombstones_skipped=%llu",
             secs, (unsigned long long)r->accepted,
             (unsigned long long)(r->rejected + r->refused),
             (unsigned long long)ss.events_ok,
             (unsigned long long)ss.objects_ok, (unsigned long long)ss.merged,
             (unsigned long long)(ss.apart_token + ss.apart_shape +
                                  ss.apart_size + ss.apart_other),
             (unsigned long long)ss.batches_ok, (unsigned long long)ss.requests,
             (unsigned long long)ss.retries, codes,
             (unsigned long long)sink_dlq_truncated(r->dlq),
             schema_count(r->sch), (unsigned long long)cs.made,
             (unsigned long long)r->waits,
             r->waits ? (double)r->wait_ms_total / (double)r->waits : 0.0,
             (unsigned long long)r->wait_ms_max,
             sealed ? (double)ss.sealed_events / (double)sealed : 0.0,
             sink_batch_events_quantile(r->snk, 0.1, 0),
             (unsigned long long)ss.sealed_full,
             (unsigned long long)ss.sealed_linger,
             (unsigned long long)ss.sealed_chain,
             (unsigned long long)ss.sealed_flush,
             (unsigned long long)ss.backlog_batches,
             ss.backlog_batches
                 ? (double)ss.backlog_events / (double)ss.backlog_batches
                 : 0.0,
             sink_batch_events_quantile(r->snk, 0.1, 1),
             (unsigned long long)r->reclaims,
             (unsigned long long)r->tombstones_skipped);
}

/* The closing line on a terminal (--exit-at-end): the progress line's last
 * state, then what was done. */
void run_report_final(struct run *r, int64_t started_ms)
{
    progress(r, core_now_ms(), 1);
    fprintf(stderr,
            "userpipe: %s after %.1fs: %llu accepted, %llu "
            "rejected",
            r->fatal ? "stopped" : "done",
            (double)(core_now_ms() - started_ms) / 1000.0,
            (unsigned long long)r->accepted,
            (unsigned long long)rejects_total(r));
    for (int i = 1; i < CORE_REJECT__COUNT; i++) {
        if (r->rejects_by_code[i] > 0) {
            fprintf(stderr, "%s %s=%llu", i ? "," : "",
                    core_reject_name((enum core_reject_code)i),
                    (unsigned long long)r->rejects_by_code[i]);
        }
    }
    fputc('\n', stderr);
}
