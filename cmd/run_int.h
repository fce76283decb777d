/*
 * run_int.h: what `userpipe run`'s two files share, and nothing else
 * includes: struct run, the state of one run, and the verbs of its
 * reporting.  run.c holds the loop (arguments, routing of each event,
 * backpressure, shutdown) and sets up and writes the counters;
 * run_report.c reads them to publish metrics, print the progress line and
 * log the summary, and alone writes the reporting state (next_publish_ms,
 * next_progress_ms, total_at_start, last_done, last_done_ms, rate).
 * Reporting never settles, parks or holds an event.
 */
#ifndef CMD_RUN_INT_H
#define CMD_RUN_INT_H

#include "config.h"
#include "../core/core.h"

#include <stddef.h>
#include <stdint.h>

struct ingest;
struct metrics;
struct metrics_snapshot;
struct parked;
struct schema;
struct schema_claims;
struct sink;
struct sink_dlq;
struct transform;

struct run {
    struct config cfg;
    struct schema *sch;
    struct transform *tf;
    struct ingest *ing;
    struct sink *snk;
    struct sink_dlq *dlq;
    struct schema_claims *claims;
    struct parked *parked;
    struct metrics *metrics;
    struct metrics_snapshot *snap; /* reused: it is large */
    int exit_at_end;
    int tty; /* stderr is a terminal: a live progress line */
    int64_t started_ms;
    int64_t next_publish_ms, next_progress_ms;
    uint64_t total_at_start; /* events to consume, once known */
    uint64_t last_done;
    int64_t last_done_ms;
    double rate;           /* events/s, smoothed */
    int fatal;             /* exit status 1 once set */
    int refused_config;    /* Moesif refused the configuration: exit 3 */
    int64_t held_since_ms; /* consumption held since (backpressure), 0 not */
    int64_t held_ms_total; /* holds that ended, in all */
    int paused;            /* and the partitions paused */
    uint64_t waits, wait_ms_total, wait_ms_max; /* events parked for claims */
    /* the parked head last failed for keys with the schema at this many
     * keys (unpark) */
    size_t unpark_keys;
    uint64_t unpark_ticket;
    int64_t unpark_due_ms;     /* and is tried again by then regardless */
    uint64_t reclaimed_ticket1; /* 1 + the head whose keys were claimed
                                 * again (tickets start at 0) */
    uint64_t reclaims;         /* heads whose keys were claimed again */
    uint64_t tombstones_skipped; /* source.tombstones=skip */
    uint64_t accepted, rejected, refused;
    uint64_t rejects_by_code[CORE_REJECT__COUNT];
};

/* run_report.c */

/* Called every turn of the loop: publishes metrics (4 times a second) and,
 * with --exit-at-end, reports progress. */
void run_report_tick(struct run *r);

/* Logs the closing summary line ("stopped"), counters of the whole run. */
void run_report_summary(struct run *r, int64_t started_ms);

/* The closing line on a terminal (--exit-at-end): the progress line's last
 * state, then what was done. */
void run_report_final(struct run *r, int64_t started_ms);

#endif
