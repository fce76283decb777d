/*
 * run.c: `userpipe run`, the pipeline: Kafka -> transform -> Moesif,
 * rejects to the dead-letter topic.  This file only wires the stages: one
 * thread, one loop that polls the consumer, transforms each message, hands
 * accepted events to the sink and rejects to the dead-letter producer,
 * drives both, and pauses consumption while the sink is saturated.  What
 * the run reports (metrics, progress, summary) is in run_report.c; the
 * state both share, struct run, in run_int.h.
 *
 * Delivery (DESIGN.md section 5): a message's ticket is settled, and its
 * offset may be committed, only from the sink's done callback (Moesif
 * answered 2xx) or the dead-letter producer's (acks=all).  A fatal status
 * stops the loop before anything else is settled, so no further offset is
 * stored.
 */
#include "run_int.h"
#include "commands.h"
#include "config.h"
#include "../core/core.h"
#include "metrics.h"
#include "parked.h"
#include "../ingest/ingest.h"
#include "../schemas/schema.h"
#include "../sink/sink.h"
#include "../transform/transform.h"

#include <getopt.h>
#include <signal.h>
#include <unistd.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fputs("usage: userpipe run -c FILE [-X key=value]... [--from-beginning] "
          "[--exit-at-end]\n"
          "\n"
          "Consumes user-update events from Kafka (source.topics), rewrites "
          "and checks\n"
          "them, sends valid ones to Moesif's POST /v1/users/batch and every "
          "reject to\n"
          "the dead-letter topic.  An offset is committed only once Moesif "
          "or the\n"
          "dead-letter topic has the event.\n"
          "\n"
          "options:\n"
          "  -c, --config FILE    properties file (key=value lines); every "
          "key is in\n"
          "                       `userpipe config-reference` and README.md\n"
          "  -X key=value         set or override one key (repeatable)\n"
          "  --from-beginning     start from the earliest offset when the "
          "group has\n"
          "                       no committed offset (a backfill)\n"
          "  --exit-at-end        exit 0 once every assigned partition has "
          "reached the\n"
          "                       end offset it had at start and everything "
          "is\n"
          "                       delivered and committed\n"
          "  -h, --help           this text\n"
          "\n"
          "The application id may come from the environment variable\n"
          "MOESIF_APPLICATION_ID; it never appears in logs.  Any value "
          "may be a\n"
          "secret reference, ${env:NAME} or ${file:/path} (README "
          "\"Secrets\").\n"
          "The process is not dumpable (no core file; "
          "debug.core_dumps=true\n"
          "turns it back on for debugging).\n"
          "SIGTERM/SIGINT: stop consuming, flush, commit, exit 0.\n"
          "exit status: 0 done, 1 a fatal error (a message says what to "
          "fix), 2 bad\n"
          "usage or configuration, 3 Moesif refused the configuration "
          "(401, 402,\n"
          "403, 404, 405, 406, 410: the application id or the base URL; "
          "or every event\n"
          "of sink.reject_all_batches batches refused one by one), or the "
          "road to it\n"
          "is wrong (a certificate that does not verify, a client "
          "certificate\n"
          "refused, a proxy refusing the tunnel).\n",
          f);
}

/* ---- callbacks ------------------------------------------------------- */

static void settle(void *opaque, uint64_t ticket)
{
    struct run *r = opaque;

    /* after a fatal error no offset moves (the dead-letter producer's
     * last flush still acknowledges what it had) */
    if (!r->fatal && r->ing != NULL) {
        ingest_done(r->ing, ticket);
    }
}

static void produce_reject(struct run *r, const struct ingest_msg *m,
                           const char *code, const char *path,
                           const char *message)
{
    struct sink_dlq_record rec;
    enum core_err rc;

    rec.key = m->key;
    rec.key_len = m->key_len;
    rec.value = m->value;
    rec.len = m->len;
    rec.source_topic = m->topic;
    rec.source_partition = m->partition;
    rec.source_offset = m->offset;
    rec.source_timestamp_ms = m->timestamp_ms;
    rec.headers = m->headers;
    rec.headers_len = m->headers_len;
    rec.truncated = 0;
    rec.orig_len = 0;
    rec.code = code;
    rec.path = path;
    rec.message = message;
    rec.ticket = m->ticket;
    for (;;) {
        rc = sink_dlq_produce(r->dlq, &rec);
        if (rc != CORE_ERR_RETRY) {
            break;
        }
        /* librdkafka's queue is full: let deliveries drain it */
        if (sink_dlq_poll(r->dlq, 100) != CORE_OK) {
            rc = CORE_ERR_STOP;
            break;
        }
    }
    if (rc != CORE_OK) {
        core_log(CORE_LOG_ERROR, "dlq", "msg=\"%s\"", sink_dlq_error(r->dlq));
        r->fatal = 1;
    }
}

static void on_refused(void *opaque, uint64_t ticket, long status,
                       const char *body, size_t body_len)
{
    struct run *r = opaque;
    struct ingest_msg m;
    char message[768];

    if (ingest_message(r->ing, ticket, &m) != 0) {
        return;
    }
    snprintf(message, sizeof(message), "Moesif answered %ld: %.*s", status,
             (int)(body_len > 512 ? 512 : body_len), body);
    core_log(CORE_LOG_WARN, "sink",
             "msg=\"event refused by Moesif\" topic=%s partition=%d "
             "offset=%lld status=%ld code=api_rejected",
             m.topic, m.partition, (long long)m.offset, status);
    r->refused++;
    r->rejects_by_code[CORE_REJECT_API_REJECTED]++;
    produce_reject(r, &m, core_reject_name(CORE_REJECT_API_REJECTED), "",
                   message);
}

static void unpark(struct run *r);

/* Drives the shared schema, the parked events, the sink and the
 * dead-letter producer once. */
static void drive(struct run *r, int timeout_ms)
{
    if (r->fatal) {
        return;
    }
    if (schema_claims_poll(r->claims) != CORE_OK) {
        core_log(CORE_LOG_ERROR, "schema", "msg=\"%s\"",
                 schema_claims_error(r->claims));
        r->fatal = 1;
        return;
    }
    unpark(r);
    if (sink_poll(r->snk, timeout_ms) != CORE_OK) {
        core_log(CORE_LOG_ERROR, "sink", "msg=\"%s\"", sink_error(r->snk));
        r->fatal = 1;
        r->refused_config = sink_refused(r->snk);
        return;
    }
    if (sink_dlq_poll(r->dlq, 0) != CORE_OK) {
        core_log(CORE_LOG_ERROR, "dlq", "msg=\"%s\"", sink_dlq_error(r->dlq));
        r->fatal = 1;
    }
}

/* Settles what is in flight, until deadline_ms (rebalance, shutdown). */
static void drain(void *opaque, int64_t deadline_ms)
{
    struct run *r = opaque;

    while (!r->fatal && ingest_in_flight(r->ing) > 0 &&
           core_now_ms() < deadline_ms) {
        /* every pass: a retried batch that settles puts its users' held
         * events back in an open batch, which must not wait its linger */
        sink_flush(r->snk);
        drive(r, 50);
    }
}

/* Whether ingest still owns the event of ticket (sink_drop's filter). */
static int ticket_alive(void *ctx, uint64_t ticket)
{
    struct run *r = ctx;
    struct ingest_msg m;

    return ingest_message(r->ing, ticket, &m) == 0;
}

/* The drain ended with events of revoked partitions unsettled: ingest has
 * forgotten them and their new owner consumes them again, so they leave
 * the sink unsent (issue 11: retried here, an older update could reach
 * Moesif after the new owner's newer one).  The parked queue drops them
 * as they reach its head (unpark); a dead-letter record already produced
 * may reach the topic twice, which the at-least-once contract allows. */
static void given_up(void *opaque)
{
    struct run *r = opaque;
    size_t n;

    if (r->snk == NULL) {
        return; /* closing after a stop: the sink is gone already */
    }
    n = sink_drop(r->snk, ticket_alive, r);
    core_log(CORE_LOG_INFO, "run",
             "msg=\"events of given-up partitions dropped unsent\" "
             "events=%zu",
             n);
}

/* Claims every key the last transformed event lacks; again: even those
 * this instance claimed already (their claims did not come back). */
static void claim_new_keys(struct run *r, int again)
{
    for (size_t i = 0; i < transform_new_keys(r->tf); i++) {
        const char *k;
        size_t len;
        enum schema_type t;
        transform_new_key(r->tf, i, &k, &len, &t);
        if (again) {
            schema_claims_claim_again(r->claims, k, len, t);
        } else {
            schema_claims_claim(r->claims, k, len, t);
        }
    }
}

/* The reject of an event whose new keys got no type within twice
 * schema.claim_timeout_ms (the last transform_event named them). */
static void claim_timeout_reject(struct run *r, struct core_reject *rej,
                                 uint64_t waited_ms)
{
    const char *k = "";
    size_t len = 0;
    enum schema_type t;

    if (transform_new_keys(r->tf) > 0) {
        transform_new_key(r->tf, 0, &k, &len, &t);
    }
    rej->code = CORE_REJECT_CLAIM_TIMEOUT;
    snprintf(rej->path, sizeof(rej->path), "%s%.*s",
             r->cfg.transform.scope == TRANSFORM_SCOPE_PATH ? "metadata." : "",
             (int)(len > 400 ? 400 : len), k);
    if (r->cfg.transform.scope != TRANSFORM_SCOPE_PATH) {
        /* by name the key may be at any depth: the path names the key */
        snprintf(rej->path, sizeof(rej->path), "%.*s",
                 (int)(len > 400 ? 400 : len), k);
    }
    snprintf(rej->message, sizeof(rej->message),
             "%zu new metadata key(s) got no type from the schema topic '%s' "
             "within %llu ms (claimed, and claimed again after "
             "schema.claim_timeout_ms): the topic is unreachable or its "
             "claims are lost; redrive this event once it is back",
             transform_new_keys(r->tf), r->cfg.schema_topic,
             (unsigned long long)waited_ms);
}

static void reject(struct run *r, const struct ingest_msg *m,
                   const struct core_reject *rej)
{
    r->rejected++;
    r->rejects_by_code[rej->code]++;
    core_log(CORE_LOG_DEBUG, "transform",
             "msg=\"event rejected\" topic=%s partition=%d offset=%lld "
             "code=%s path=\"%s\"",
             m->topic, m->partition, (long long)m->offset,
             core_reject_name(rej->code), rej->path);
    produce_reject(r, m, core_reject_name(rej->code), rej->path, rej->message);
}

/*
 * Transforms one consumed event.  Valid events go to the sink, unless they
 * hold keys the shared schema lacks (claimed, then parked until the
 * claims are read back) or their user has a parked event (parked behind
 * it, to keep the user's order).  Rejects go to the dead-letter topic.
 */
static void handle(struct run *r, const struct ingest_msg *m)
{
    const char *out, *uid;
    size_t out_len, uid_len;
    struct core_reject rej;
    enum core_err rc;
    uint64_t h;

    if (m->value == NULL && r->cfg.tombstones == CONFIG_TOMBSTONES_SKIP) {
        /* source.tombstones=skip: nothing to send, committed in order */
        r->tombstones_skipped++;
        settle(r, m->ticket);
        return;
    }
    rc = transform_event(r->tf, m->value, m->len, &out, &out_len, &rej);
    if (rc == CORE_ERR_REJECT) {
        reject(r, m, &rej);
        return;
    }
    transform_user_id(r->tf, &uid, &uid_len);
    /* hashed once, for the parked queue and the sink */
    h = core_hash64(uid, uid_len);
    if (rc == CORE_ERR_RETRY) {
        int64_t now = core_now_ms();
        claim_new_keys(r, 0);
        if (parked_count(r->parked) == 0) {
            /* the head, just tried: unpark waits for the schema to grow */
            r->unpark_keys = schema_count(r->sch);
            r->unpark_ticket = m->ticket;
            r->unpark_due_ms = now + (int64_t)r->cfg.claim_timeout_ms;
        }
        parked_push(r->parked, m->ticket, h, m->len, now);
        return;
    }
    if (parked_has_user(r->parked, h)) {
        parked_push(r->parked, m->ticket, h, m->len, core_now_ms());
        return;
    }
    r->accepted++;
    sink_add(r->snk, h, out, out_len, m->ticket);
}

/* Transforms parked events again, in order, as far as their keys are
 * known now.  The head waits for keys: it is tried again only once the
 * schema has more keys than when it last failed, it is a new head (the
 * last one's partition was given up), or its wait reached a deadline,
 * not on every turn of the loop.
 *
 * The wait is bounded (issue 20: a claim that never came back wedged the
 * partition): schema.claim_timeout_ms after it was parked, the head's
 * missing keys are claimed again (a claim lost with a topic deleted and
 * created again); past twice that, the event is rejected as claim_timeout
 * and the events behind it move on.  Each event's bound counts from its
 * own parking, so a queue behind a dead schema topic drains in one
 * timeout, not one per event. */
static void unpark(struct run *r)
{
    uint64_t ticket;
    int64_t parked_ms;
    int64_t timeout_ms = (int64_t)r->cfg.claim_timeout_ms;

    if (schema_count(r->sch) == r->unpark_keys &&
        parked_head(r->parked, &ticket, &parked_ms) &&
        ticket == r->unpark_ticket && core_now_ms() < r->unpark_due_ms &&
        ticket_alive(r, ticket)) {
        return;
    }
    while (!r->fatal && parked_head(r->parked, &ticket, &parked_ms)) {
        struct ingest_msg m;
        const char *out, *uid;
        size_t out_len, uid_len;
        struct core_reject rej;
        enum core_err rc;
        uint64_t waited;

        if (ingest_message(r->ing, ticket, &m) != 0) {
            parked_pop(r->parked); /* its partition was given up */
            continue;
        }
        rc = transform_event(r->tf, m.value, m.len, &out, &out_len, &rej);
        waited = (uint64_t)(core_now_ms() - parked_ms);
        if (rc == CORE_ERR_RETRY && (int64_t)waited < 2 * timeout_ms) {
            int again = (int64_t)waited >= timeout_ms &&
                        r->reclaimed_ticket1 != ticket + 1;
            if (again) {
                core_log(CORE_LOG_WARN, "schema",
                         "msg=\"claims not read back in time: claiming "
                         "again\" topic=%s partition=%d offset=%lld "
                         "keys=%zu waited_ms=%llu schema_topic=%s",
                         m.topic, m.partition, (long long)m.offset,
                         transform_new_keys(r->tf), (unsigned long long)waited,
                         r->cfg.schema_topic);
                r->reclaimed_ticket1 = ticket + 1;
                r->reclaims++;
            }
            /* no-op for keys already claimed, unless again */
            claim_new_keys(r, again);
            r->unpark_keys = schema_count(r->sch);
            r->unpark_ticket = ticket;
            r->unpark_due_ms =
                parked_ms +
                ((int64_t)waited < timeout_ms ? timeout_ms : 2 * timeout_ms);
            return;
        }
        if (rc == CORE_ERR_RETRY) {
            claim_timeout_reject(r, &rej, waited);
            rc = CORE_ERR_REJECT;
        }
        r->waits++;
        r->wait_ms_total += waited;
        if (waited > r->wait_ms_max) {
            r->wait_ms_max = waited;
        }
        parked_pop(r->parked);
        if (rc == CORE_ERR_REJECT) {
            reject(r, &m, &rej);
            continue;
        }
        transform_user_id(r->tf, &uid, &uid_len);
        r->accepted++;
        sink_add(r->snk, core_hash64(uid, uid_len), out, out_len, ticket);
    }
}

/*
 * Backpressure, with hysteresis (sink_drained): while the sink is
 * saturated (or a flood of events waits for claims, or the dead-letter
 * producer has a backlog: its topic's leader away, every event a
 * reject) nothing more is taken
 * from the consumer queue, whose own cap (queued.max.messages.kbytes) then
 * stops the fetching.  Only a hold longer than HOLD_MS pauses the
 * partitions: pausing makes librdkafka drop what it prefetched and fetch
 * it again on resume, which make bench saw cost more than the short
 * saturations it would absorb; a long hold (Moesif retrying, an outage)
 * must pause, so the consumer keeps serving rebalances and heartbeats.
 */
#define HOLD_MS 1000

/* The dead-letter producer's backlog that holds consumption back: far
 * under librdkafka's own queue limits (100,000 records, 1 GiB), so that
 * producing a reject never finds the queue full in practice. */
#define DLQ_HOLD_RECORDS 10000
#define DLQ_HOLD_BYTES (16u * 1024 * 1024)

/* Events parked for schema claims are held by ingest (offsets unsettled)
 * and by the queue: consumption is held back above this many, or above
 * sink.max_pending_bytes of them (the sink's own bound: a parked event is
 * one the sink will hold next), and resumes at half. */
#define PARKED_HOLD_EVENTS 100000

static void backpressure(struct run *r)
{
    size_t parked = parked_count(r->parked);
    size_t dlq_n = sink_dlq_pending(r->dlq);
    size_t dlq_bytes = sink_dlq_pending_bytes(r->dlq);
    int64_t now;

    if (r->held_since_ms == 0) {
        if (sink_saturated(r->snk) || parked > PARKED_HOLD_EVENTS ||
            parked_bytes(r->parked) > r->cfg.sink.max_pending_bytes ||
            dlq_n > DLQ_HOLD_RECORDS || dlq_bytes > DLQ_HOLD_BYTES) {
            r->held_since_ms = core_now_ms();
        }
        return;
    }
    now = core_now_ms();
    if (sink_drained(r->snk) && parked <= PARKED_HOLD_EVENTS / 2 &&
        parked_bytes(r->parked) <= r->cfg.sink.max_pending_bytes / 2 &&
        dlq_n <= DLQ_HOLD_RECORDS / 2 && dlq_bytes <= DLQ_HOLD_BYTES / 2) {
        r->held_ms_total += now - r->held_since_ms;
        r->held_since_ms = 0;
        r->paused = 0;
        ingest_pause(r->ing, 0);
    } else if (!r->paused && now - r->held_since_ms >= HOLD_MS) {
        /* held, saturated or not (taking nothing, the sink seldom is
         * saturated again): a hold this long is an outage, not a burst */
        ingest_pause(r->ing, 1);
        r->paused = 1;
    }
}

/* ---- setup ----------------------------------------------------------- */

static int parse_args(int argc, char **argv, const char **path,
                      const char ***overrides, size_t *noverrides,
                      int *from_beginning, int *exit_at_end)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"from-beginning", no_argument, NULL, 'b'},
        {"exit-at-end", no_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:X:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            *path = optarg;
            break;
        case 'X':
            *overrides =
                core_realloc(*overrides, (*noverrides + 1) * sizeof(char *));
            (*overrides)[(*noverrides)++] = optarg;
            break;
        case 'b':
            *from_beginning = 1;
            break;
        case 'e':
            *exit_at_end = 1;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            fprintf(stderr,
                    "userpipe run: unknown or incomplete option '%s'; see "
                    "'userpipe run --help'\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "userpipe run: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    if (*path == NULL && *noverrides == 0) {
        fprintf(stderr, "userpipe run: -c FILE is required; see 'userpipe "
                        "run --help'\n");
        return 2;
    }
    return 0;
}

int cmd_run(int argc, char **argv)
{
    struct run r;
    const char *path = NULL;
    const char **overrides = NULL;
    size_t noverrides = 0;
    int from_beginning = 0, exit_at_end = 0;
    char errstr[768];
    char url[256], proxy_shown[256];
    int status = 0;
    struct ingest_config icfg;
    struct ingest_callbacks icb;
    struct sink_callbacks scb;
    struct sink_dlq_config dcfg;
    struct sink_dlq_callbacks dcb;
    struct ingest_msg msgs[1024];
    struct sigaction sa;
    int64_t started_ms = core_now_ms(), stop_deadline = 0;
    enum core_err rc;

    /* A fixed mmap threshold: buffers of 128 KiB and more (librdkafka's
     * fetch responses of up to fetch.max.bytes, gzip bodies) are mapped
     * and given back when freed.  glibc otherwise raises the threshold to
     * the largest block freed, so 4 MiB fetch buffers came from the heaps
     * of librdkafka's broker threads and stayed there: make bench measured
     * peak RSS 112 -> 90 MB fault-free, 142 -> 118 MB through 30 s of 429,
     * at the same rate. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    memset(&r, 0, sizeof(r));
    config_init(&r.cfg);
    r.snap = core_calloc(1, sizeof(*r.snap));
    r.started_ms = started_ms;
    r.tty = isatty(STDERR_FILENO);
    status = parse_args(argc, argv, &path, &overrides, &noverrides,
                        &from_beginning, &exit_at_end);
    if (status != 0) {
        status = status < 0 ? 0 : status;
        goto out;
    }
    rc = config_load(&r.cfg, path, overrides, noverrides, 1, errstr,
                     sizeof(errstr));
    if (rc != CORE_OK) {
        fprintf(stderr, "userpipe run: %s\n", errstr);
        status = 2;
        goto out;
    }
    core_log_threshold = r.cfg.log_level;
    r.exit_at_end = exit_at_end;
    if (r.cfg.core_dumps) {
        config_dumpable(1);
    }
    if (config_base_url_cleartext(&r.cfg)) {
        core_log(CORE_LOG_WARN, "run",
                 "msg=\"moesif.base_url is plain http:// to a host that is "
                 "not loopback: the application id and every event cross "
                 "the network unencrypted\" moesif=\"%s\"",
                 core_url_redact(r.cfg.base_url, url, sizeof(url)));
    }

    /* every client is configured (and kafka.* checked by librdkafka)
     * before anything touches the network */
    r.sch = schema_new();
    r.parked = parked_new();
    r.cfg.transform.defer_new_keys = 1;
    rc = transform_new(&r.cfg.transform, r.sch, &r.tf, errstr, sizeof(errstr));
    if (rc == CORE_OK) {
        scb.done = settle;
        scb.refused = on_refused;
        scb.opaque = &r;
        rc = sink_new(&r.cfg.sink, &scb, &r.snk, errstr, sizeof(errstr));
    }
    if (rc == CORE_OK) {
        dcfg.kafka_keys = (const char *const *)r.cfg.kafka_keys;
        dcfg.kafka_values = (const char *const *)r.cfg.kafka_values;
        dcfg.kafka_count = r.cfg.kafka_count;
        dcfg.topic = r.cfg.dlq_topic;
        dcfg.source_topics = r.cfg.source_topics;
        dcb.done = settle;
        dcb.opaque = &r;
        rc = sink_dlq_new(&dcfg, &dcb, &r.dlq, errstr, sizeof(errstr));
    }
    if (rc == CORE_OK) {
        icfg.kafka_keys = (const char *const *)r.cfg.kafka_keys;
        icfg.kafka_values = (const char *const *)r.cfg.kafka_values;
        icfg.kafka_count = r.cfg.kafka_count;
        icfg.topics = r.cfg.source_topics;
        icfg.from_beginning = from_beginning;
        icfg.exit_at_end = exit_at_end;
        icfg.drain_timeout_ms = r.cfg.drain_timeout_ms;
        icb.drain = drain;
        icb.given_up = given_up;
        icb.opaque = &r;
        rc = ingest_new(&icfg, &icb, &r.ing, errstr, sizeof(errstr));
    }
    if (rc == CORE_OK) {
        rc = metrics_new(r.cfg.metrics_listen, &r.metrics, errstr,
                         sizeof(errstr));
        if (rc == CORE_OK && r.metrics != NULL) {
            core_log(CORE_LOG_INFO, "run", "msg=\"metrics listening\" port=%u",
                     metrics_port(r.metrics));
        }
    }
    if (rc == CORE_OK) {
        /* the shared schema, read to its end before any event */
        rc = open_schema(&r.cfg, r.sch, &r.claims, errstr, sizeof(errstr));
    }
    if (rc != CORE_OK) {
        fprintf(stderr, "userpipe run: %s\n", errstr);
        status = rc == CORE_ERR_USAGE ? 2 : 1;
        goto out;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    core_log(CORE_LOG_INFO, "run",
             "msg=\"started\" topics=\"%s\" moesif=\"%s\" proxy=\"%s\" "
             "from_beginning=%d exit_at_end=%d",
             r.cfg.source_topics,
             core_url_redact(r.cfg.base_url, url, sizeof(url)),
             r.cfg.proxy != NULL ? core_url_redact(r.cfg.proxy, proxy_shown,
                                                   sizeof(proxy_shown))
                                 : "(environment)",
             from_beginning, exit_at_end);

    for (;;) {
        int n, busy;

        if (r.fatal) {
            break;
        }
        if (stop_requested && stop_deadline == 0) {
            /* stop consuming, then flush what is in flight */
            core_log(CORE_LOG_INFO, "run",
                     "msg=\"stopping: flushing in-flight events\" "
                     "in_flight=%zu",
                     ingest_in_flight(r.ing));
            ingest_stop(r.ing);
            sink_flush(r.snk);
            stop_deadline = core_now_ms() + (int64_t)r.cfg.drain_timeout_ms;
        }
        if (stop_deadline != 0 &&
            (ingest_in_flight(r.ing) == 0 || core_now_ms() >= stop_deadline)) {
            break;
        }
        if (exit_at_end && ingest_at_end(r.ing) && sink_pending(r.snk) == 0 &&
            sink_dlq_pending(r.dlq) == 0 && parked_count(r.parked) == 0) {
            core_log(CORE_LOG_INFO, "run",
                     "msg=\"every partition reached its end offset\"");
            break;
        }
        run_report_tick(&r);
        backpressure(&r);
        /* held: offsets are still stored; paused: rebalances served */
        n = ingest_poll(r.ing, msgs,
                        r.held_since_ms != 0 && !r.paused ? 0 : 1024, 0);
        if (n < 0) {
            core_log(CORE_LOG_ERROR, "ingest", "msg=\"%s\"",
                     ingest_error(r.ing));
            r.fatal = 1;
            break;
        }
        for (int i = 0; i < n && !r.fatal; i++) {
            handle(&r, &msgs[i]);
        }
        if (n == 1024 || r.held_since_ms != 0) {
            /* more is waiting (or held back): batches fill, not linger */
            sink_note_backlog(r.snk);
        }
        if (exit_at_end && n == 0 && ingest_caught_up(r.ing)) {
            /* the tail of a backfill: don't wait for linger */
            sink_flush(r.snk);
        }
        /* idle, wait for the network a little; the loop still turns at
         * least every 100 ms */
        busy = n > 0;
        drive(&r, busy ? 0 : 20);
    }

    if (r.fatal) {
        /* nothing more is settled: offsets stay where Moesif and the
         * dead-letter topic agree.  3 tells a supervisor that restarting
         * will not help until the configuration is fixed */
        status = r.refused_config ? 3 : 1;
    } else {
        sink_flush(r.snk);
        drain(&r, core_now_ms() + (int64_t)r.cfg.drain_timeout_ms);
        if (ingest_commit(r.ing) != CORE_OK) {
            core_log(CORE_LOG_WARN, "run",
                     "msg=\"final commit failed: the last events will be "
                     "consumed again\"");
        }
    }
    run_report_summary(&r, started_ms);
    if (exit_at_end && r.tty) {
        run_report_final(&r, started_ms);
    }

out:
    if (r.fatal) {
        /* close without committing anything more */
        sink_destroy(r.snk);
        r.snk = NULL;
    }
    /* the dead-letter producer first: its last flush acknowledges records
     * and so settles their events, which needs the consumer alive (and
     * its close then commits them) */
    sink_dlq_destroy(r.dlq, r.fatal ? 0 : 10000);
    r.dlq = NULL;
    ingest_destroy(r.ing);
    r.ing = NULL;
    sink_destroy(r.snk);
    transform_destroy(r.tf);
    schema_claims_destroy(r.claims);
    parked_destroy(r.parked);
    metrics_destroy(r.metrics);
    free(r.snap);
    schema_destroy(r.sch);
    config_release(&r.cfg);
    free(overrides);
    return status;
}
