/*
 * sink.c: sink.h's verbs.  Events go into lanes (batch.c); sink_poll
 * seals lingering batches, starts the next batch of every idle lane on
 * the transport (http.c, or a test's), and settles what finished by the
 * policy table (policy.c): callbacks fire only from here.
 *
 * Invariants not to break:
 * - per-user order: a lane has at most one request in flight and sends
 *   its FIFO in order; a user's later update is in a later batch of the
 *   lane (batch.c's chain places it after the batch holding the user's
 *   latest, and only the chain's head is sealed); a batch that failed waits for
 * its retry apart, and its users' later updates wait behind it in the lane's
 * held queue (batch.c) until it settles, so a later update of a user never
 *   overtakes an earlier one; split and bisected halves take the place
 *   of their batch;
 * - each event settles exactly once, done or refused, in the order of its
 *   batch; after STOP nothing settles and nothing is sent;
 * - a batch waiting for a retry holds up only its own users: its lane
 *   and the other lanes keep sending.
 *
 * Memory: what the sink holds is bounded by the caller's holding back.  It
 * counts pending bytes (the bytes of the events added and not settled) and
 * reports saturation above max_pending_bytes; the caller stops consuming
 * while saturated, so pending bytes stay under max_pending_bytes plus what the
 * caller had in hand when it paused (its consumer's prefetch, which it sizes).
 * The heap held is then at most 1.25 x (pending bytes + 56 bytes a pending
 * object + 16 bytes an event merged into one)  (batch.c shrinks a sealed
 * batch's buffer and event array to a quarter of slack; the held queue of a
 * lane grows by doubling, so up to 2 x for the events it holds)
 *   + about 256 bytes a sealed batch
 *   + per lane: its chain of open batches (batch.c: at most
 *     SINK_CHAIN_MAX batches and max(max_bytes, max_pending_bytes /
 *     max_in_flight) event bytes; they are pending bytes too, counted
 *     above, plus 56 bytes x max_events a batch), the user map (24 bytes
 *     a user waiting unsent, x 2 for its load), the gzip buffer (about
 *     max_bytes), one
 *     pooled batch (max_bytes)
 * so about 1.25 x max_pending_bytes + 3 x max_in_flight x max_bytes in
 * the worst case, but a lane's buffers are touched only as far as its
 * batches fill (64 KiB for most): make bench's peak RSS of the whole
 * process, librdkafka's queue included, is in README "Performance".
 *
 * Cost: sink_add is a hash of the user_id, a probe of the lane's user
 * map, a look along its chain (SINK_CHAIN_MAX at most) and a memcpy of
 * the event into the chosen open batch, whose buffer is the request body:
 * nothing is assembled at send time except the gzip.  When the probe finds
 * the user's update waiting unsent, merge.c tries to merge the two (a scan
 * of both; 0.06 us when their session tokens differ, about 1.6 us for a
 * merge of two 470-byte events) instead.  It reads no clock: a new
 * batch is stamped with the time of the last sink_poll, so linger may seal a
 * batch up to one poll interval early, never late.
 */
#include "sink_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SINK_PATH "/v1/users/batch"

/*
 * The reject breaker (issue 20, item 4).  A 400/422 is bisected down to the
 * refused events, which go to the dead-letter topic; but when every event
 * of a batch is refused one by one, the answer is likely about the request
 * (a proxy or WAF answering 400 to everything, a changed API), and going
 * on would empty the stream into the dead-letter topic.  So a bisection is
 * followed as a family (the batch first answered 400/422 and its halves,
 * sink_batch.family): its refused events are reported only once it is
 * complete (no batch of the family is left in its lane).  A family of two
 * or more events, every one refused, adds one to a streak that any
 * accepted event resets; at cfg.reject_all_batches the sink stops (exit 3 for
 * the caller, sink_refused) without reporting that family's events: at most
 * reject_all_batches - 1 whole batches were dead-lettered, and nothing
 * past them is settled.  At most 2 x lanes families are followed at once;
 * a bisection beyond that reports its events at once and does not count.
 */
struct sink_refusal {
    uint64_t ticket;
    long status;
    size_t body_len;
    char body[SINK_BODY_SNIPPET_MAX];
};

struct sink_family {
    uint64_t id; /* 0: a free slot */
    unsigned lane;
    size_t accepted;              /* its objects answered 2xx */
    struct sink_refusal *refused; /* one per event (merged ones each) */
    size_t nrefused, cap;
    size_t objects_refused; /* the objects Moesif refused */
};

struct sink {
    struct sink_config cfg; /* strings point to the copies below */
    char *base_url;
    char *application_id;
    char *url;
    char *app_header; /* holds the application id: never log it */
    const char *headers[3];
    size_t n_headers;
    struct sink_callbacks cb;
    const struct sink_transport_ops *ops;
    void *tp;
    struct sink_batcher bat;
    struct sink_gzip gz;
    size_t gz_keep; /* a lane's gzip buffer larger than this is freed */
    struct sink_completion *comp; /* n_lanes, filled by ops->poll */
    uint64_t now_ms;              /* as of the last clock read */
    uint64_t rng;                 /* xorshift64 state, for jitter only */
    size_t pending_events;
    size_t pending_bytes;
    unsigned in_flight;
    int stopped;
    int refused; /* stopped by a STOP row of the policy, not by retry_max */
    uint64_t backlog_ms; /* the last sink_note_backlog, 0 never */
    sink_keep_fn keep;   /* sink_drop's filter, for batches in flight */
    void *keep_ctx;
    struct sink_family *fam; /* the reject breaker's families */
    size_t nfam;
    uint64_t fam_seq;
    unsigned reject_streak; /* families all refused, nothing accepted */
    char error[1280];       /* the breaker's holds a 512-byte body */
    struct sink_stats st;
};

void sink_config_init(struct sink_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->batch_max_events = SINK_MAX_EVENTS_DEF;
    cfg->batch_max_bytes = SINK_MAX_BYTES_DEF;
    cfg->batch_linger_ms = SINK_LINGER_MS_DEF;
    cfg->max_in_flight = SINK_IN_FLIGHT_DEF;
    cfg->timeout_ms = SINK_TIMEOUT_MS_DEF;
    cfg->gzip = 1;
    cfg->gzip_level = SINK_GZIP_LEVEL_DEF;
    cfg->retry_backoff_ms = SINK_BACKOFF_MS_DEF;
    cfg->retry_backoff_max_ms = SINK_BACKOFF_MAX_MS_DEF;
    cfg->retry_max = 0;
    cfg->max_pending_bytes = SINK_PENDING_BYTES_DEF;
    cfg->reject_all_batches = SINK_REJECT_ALL_DEF;
}

/* The config was validated by cmd/config.c against sink.h's ranges; what
 * is asserted here is what the sink itself needs to work, not the user's
 * range (unit tests use batches smaller than a user may ask for). */
static void assert_config(const struct sink_config *cfg)
{
    assert(cfg->base_url != NULL && cfg->application_id != NULL);
    assert(cfg->batch_max_events >= 1 && cfg->batch_max_bytes >= 1);
    assert(cfg->max_in_flight >= 1 && cfg->max_in_flight <= SINK_IN_FLIGHT_MAX);
    assert(cfg->timeout_ms >= 1);
    assert(cfg->gzip_level >= SINK_GZIP_LEVEL_MIN &&
           cfg->gzip_level <= SINK_GZIP_LEVEL_MAX);
    assert(cfg->retry_backoff_ms >= 1 &&
           cfg->retry_backoff_max_ms >= cfg->retry_backoff_ms);
    assert(cfg->max_pending_bytes >= 1);
    (void)cfg;
}

enum core_err sink_new(const struct sink_config *cfg,
                       const struct sink_callbacks *cb, struct sink **out,
                       char *errstr, size_t errstr_size)
{
    void *tp = NULL;
    enum core_err rc;

    *out = NULL;
    assert_config(cfg);
    rc = sink_http_new(cfg, &tp, errstr, errstr_size);
    if (rc != CORE_OK) {
        return rc;
    }
    return sink_new_transport(cfg, cb, &sink_http_ops, tp, out, errstr,
                              errstr_size);
}

enum core_err sink_new_transport(const struct sink_config *cfg,
                                 const struct sink_callbacks *cb,
                                 const struct sink_transport_ops *ops, void *tp,
                                 struct sink **out, char *errstr,
                                 size_t errstr_size)
{
    struct sink *snk = NULL;
    struct timespec ts;
    size_t n;
    enum core_err rc;

    *out = NULL;
    assert_config(cfg);
    snk = core_calloc(1, sizeof(*snk));
    snk->ops = ops;
    snk->tp = tp;
    snk->cfg = *cfg;
    snk->cb = *cb;

    n = strlen(cfg->base_url);
    while (n > 0 && cfg->base_url[n - 1] == '/') {
        n--;
    }
    snk->base_url = core_strndup(cfg->base_url, n);
    snk->application_id = core_strdup(cfg->application_id);
    snk->cfg.base_url = snk->base_url;
    snk->cfg.application_id = snk->application_id;
    snk->url = core_malloc(n + sizeof(SINK_PATH));
    memcpy(snk->url, snk->base_url, n);
    memcpy(snk->url + n, SINK_PATH, sizeof(SINK_PATH));

    n = strlen(cfg->application_id) + sizeof("X-Moesif-Application-Id: ");
    snk->app_header = core_malloc(n);
    snprintf(snk->app_header, n, "X-Moesif-Application-Id: %s",
             cfg->application_id);
    snk->headers[snk->n_headers++] = snk->app_header;
    snk->headers[snk->n_headers++] =
        "Content-Type: application/json; charset=utf-8";
    if (cfg->gzip) {
        snk->headers[snk->n_headers++] = "Content-Encoding: gzip";
    }

    rc = sink_gzip_init(&snk->gz, cfg->gzip_level);
    if (rc != CORE_OK) {
        snprintf(errstr, errstr_size,
                 "sink.gzip_level must be between 1 and 12");
        goto out;
    }
    snk->gz_keep = sink_gzip_bound(&snk->gz, cfg->batch_max_bytes);
    /* a lane's open batches hold at most its share of the pending bytes
     * (or one full batch): the chain is what consumption fills while the
     * lane's request is out */
    sink_batcher_init(&snk->bat, cfg->max_in_flight, cfg->batch_max_events,
                      cfg->batch_max_bytes,
                      cfg->max_pending_bytes / cfg->max_in_flight);
    snk->comp = core_calloc(cfg->max_in_flight, sizeof(*snk->comp));
    snk->nfam = 2 * (size_t)cfg->max_in_flight;
    snk->fam = core_calloc(snk->nfam, sizeof(*snk->fam));
    snk->now_ms = ops->now_ms(tp);
    clock_gettime(CLOCK_REALTIME, &ts);
    snk->rng = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^
               (uint64_t)(uintptr_t)snk;
    if (snk->rng == 0) {
        snk->rng = 0x9e3779b97f4a7c15ULL;
    }
out:
    if (rc != CORE_OK) {
        sink_destroy(snk);
        return rc;
    }
    *out = snk;
    return CORE_OK;
}

void sink_destroy(struct sink *snk)
{
    if (snk == NULL) {
        return;
    }
    /* the transport first: in-flight requests borrow batch buffers */
    if (snk->ops != NULL) {
        snk->ops->destroy(snk->tp);
    }
    sink_batcher_release(&snk->bat);
    sink_gzip_release(&snk->gz);
    for (size_t i = 0; snk->fam != NULL && i < snk->nfam; i++) {
        free(snk->fam[i].refused);
    }
    free(snk->fam);
    free(snk->comp);
    core_free_secret(snk->app_header);
    /* the base URL may carry a password (user:password@host) */
    core_free_secret(snk->url);
    core_free_secret(snk->application_id);
    core_free_secret(snk->base_url);
    free(snk);
}

static uint64_t rng_next(struct sink *snk)
{
    /* Marsaglia's xorshift64: jitter needs spread, not secrecy */
    uint64_t x = snk->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    snk->rng = x;
    return x;
}

void sink_add(struct sink *snk, uint64_t uid_hash, const char *json, size_t len,
              uint64_t ticket)
{
    if (snk->stopped) {
        /* nothing will be sent: keep nothing; the caller stores no
         * offset for it, so a restart replays it */
        return;
    }
    sink_batcher_add(&snk->bat, uid_hash, json, len, ticket, snk->now_ms);
    snk->pending_events++;
    snk->pending_bytes += len;
}

void sink_note_backlog(struct sink *snk)
{
    snk->backlog_ms = snk->now_ms;
    snk->bat.in_backlog = 1;
}

/* After each clock read: whether the caller's backlog still lasts. */
static void note_time(struct sink *snk)
{
    snk->now_ms = snk->ops->now_ms(snk->tp);
    snk->bat.in_backlog =
        snk->backlog_ms != 0 &&
        snk->now_ms <= snk->backlog_ms + snk->cfg.batch_linger_ms;
}

/*
 * When the chain's head may be sealed by linger.  While the caller has a
 * backlog, linger counts from its last note: make bench saw most batches
 * sealed by a 100 ms linger, at half their size, in backfills whose
 * consumer handed out partitions in bursts.  Stretched at most to
 * LINGER_STRETCH x linger after the batch opened, so a lane whose users
 * went quiet during a long backlog still sends.
 */
#define LINGER_STRETCH 5

static uint64_t linger_due(const struct sink *snk, const struct sink_batch *b)
{
    uint64_t linger = snk->cfg.batch_linger_ms;
    uint64_t from =
        b->opened_ms > snk->backlog_ms ? b->opened_ms : snk->backlog_ms;
    uint64_t cap = b->opened_ms + LINGER_STRETCH * linger;

    return from + linger < cap ? from + linger : cap;
}

static struct sink_family *family_of(struct sink *snk, uint64_t id);
static void family_check(struct sink *snk, struct sink_family *e, int counted);

size_t sink_drop(struct sink *snk, sink_keep_fn keep, void *ctx)
{
    size_t events = 0, bytes = 0;

    snk->keep = keep;
    snk->keep_ctx = ctx;
    for (unsigned i = 0; i < snk->bat.n_lanes; i++) {
        struct sink_lane *lane = &snk->bat.lanes[i];
        events +=
            sink_lane_drop(&snk->bat, lane, keep, ctx, snk->now_ms, &bytes);
        if (lane->waiting == NULL) {
            /* no failed batch left to probe Moesif with: a failing lane
             * would otherwise send nothing more (lane_kick) */
            lane->failing = 0;
        }
    }
    snk->pending_events -= events;
    snk->pending_bytes -= bytes;
    snk->st.events_dropped += events;
    /* families whose batches were all given up are complete */
    for (size_t i = 0; i < snk->nfam; i++) {
        if (snk->fam[i].id != 0) {
            family_check(snk, &snk->fam[i], 0);
        }
    }
    return events;
}

/* A batch in flight that failed loses the events sink_drop gave up: they
 * are neither retried nor split.  Returns 1 if nothing is left of it (it
 * is then recycled and the lane's request slot free). */
static int cur_drop(struct sink *snk, struct sink_lane *lane)
{
    struct sink_batch *batch = lane->cur;
    size_t bytes = 0, events;
    int was_held = batch->held;

    if (snk->keep == NULL) {
        return 0;
    }
    events = sink_batch_drop(batch, snk->keep, snk->keep_ctx, &bytes);
    snk->pending_events -= events;
    snk->pending_bytes -= bytes;
    snk->st.events_dropped += events;
    if (batch->n > 0) {
        return 0;
    }
    lane->cur = NULL;
    {
        struct sink_family *e = family_of(snk, batch->family);
        sink_batch_recycle(&snk->bat, batch);
        if (was_held) {
            sink_lane_release(&snk->bat, lane, snk->now_ms);
        }
        if (e != NULL) {
            family_check(snk, e, 0);
        }
    }
    return 1;
}

void sink_flush(struct sink *snk)
{
    for (unsigned i = 0; i < snk->bat.n_lanes; i++) {
        sink_lane_seal_all(&snk->bat, &snk->bat.lanes[i], SINK_SEAL_FLUSH);
    }
}

/* A batch waiting for its retry does not pause consumption by itself: it
 * holds only its users' later updates, within max_pending_bytes, while
 * every lane keeps sending.  make bench measured the alternatives with 5%
 * of answers 429 (Retry-After 1 s): pausing while any lane retried, or at
 * a quarter of the cap, left 0.1 of the fault-free rate, and holding the
 * whole lane 0.13, since with hundreds of requests a second some lane
 * nearly always waits. */
const unsigned sink_latency_le_ms[SINK_LATENCY_BUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};

int sink_saturated(const struct sink *snk)
{
    return snk->pending_bytes > snk->cfg.max_pending_bytes;
}

int sink_drained(const struct sink *snk)
{
    return snk->pending_bytes <= snk->cfg.max_pending_bytes / 2;
}

size_t sink_pending(const struct sink *snk)
{
    return snk->pending_events;
}

const char *sink_error(const struct sink *snk)
{
    return snk->error;
}

int sink_refused(const struct sink *snk)
{
    return snk->refused;
}

void sink_get_stats(const struct sink *snk, struct sink_stats *st)
{
    const struct sink_batcher *bat = &snk->bat;

    *st = snk->st;
    st->in_flight = snk->in_flight;
    st->sealed_full = bat->sealed[SINK_SEAL_FULL];
    st->sealed_linger = bat->sealed[SINK_SEAL_LINGER];
    st->sealed_chain = bat->sealed[SINK_SEAL_CHAIN];
    st->sealed_flush = bat->sealed[SINK_SEAL_FLUSH];
    st->merged = bat->merged;
    st->apart_token = bat->apart[SINK_APART_TOKEN];
    st->apart_shape = bat->apart[SINK_APART_SHAPE];
    st->apart_size = bat->apart[SINK_APART_SIZE];
    st->apart_other = bat->apart[SINK_APART_OTHER];
    st->sealed_events = 0;
    st->backlog_batches = 0;
    st->backlog_events = 0;
    for (size_t n = 0; n < bat->size_hist_n; n++) {
        st->sealed_events += n * bat->size_hist[n];
        st->backlog_batches += bat->backlog_hist[n];
        st->backlog_events += n * bat->backlog_hist[n];
    }
}

size_t sink_batch_events_quantile(const struct sink *snk, double q,
                                  int backlog_only)
{
    const struct sink_batcher *bat = &snk->bat;
    const uint64_t *hist = backlog_only ? bat->backlog_hist : bat->size_hist;
    uint64_t total = 0, seen = 0, rank;

    for (size_t n = 0; n < bat->size_hist_n; n++) {
        total += hist[n];
    }
    if (total == 0) {
        return 0;
    }
    /* the smallest size with at least q of the batches at or below it */
    rank = (uint64_t)(q * (double)total + 0.999999);
    rank = rank < 1 ? 1 : rank;
    for (size_t n = 0; n < bat->size_hist_n; n++) {
        seen += hist[n];
        if (seen >= rank) {
            return n;
        }
    }
    return bat->size_hist_n - 1;
}

/* ---- settling --------------------------------------------------------- */

/* Takes the lane's batch in flight off for good. */
static struct sink_batch *cur_take(struct sink *snk, struct sink_lane *lane)
{
    struct sink_batch *batch = lane->cur;
    size_t raw;

    lane->cur = NULL;
    lane->failing = 0;
    snk->pending_events -= sink_batch_events(batch, &raw);
    snk->pending_bytes -= raw;
    return batch;
}

/* Recycles a settled batch; if it held its users, they go on. */
static void settled(struct sink *snk, struct sink_lane *lane,
                    struct sink_batch *batch)
{
    int was_held = batch->held;

    sink_batch_recycle(&snk->bat, batch);
    if (was_held) {
        sink_lane_release(&snk->bat, lane, snk->now_ms);
    }
}

/* ---- the reject breaker (see struct sink_family) ----------------------- */

static struct sink_family *family_of(struct sink *snk, uint64_t id)
{
    for (size_t i = 0; id != 0 && i < snk->nfam; i++) {
        if (snk->fam[i].id == id) {
            return &snk->fam[i];
        }
    }
    return NULL;
}

/* A batch first answered 400/422 starts a family (when a slot is free). */
static void family_start(struct sink *snk, unsigned lane,
                         struct sink_batch *batch)
{
    if (batch->family != 0 || snk->cfg.reject_all_batches == 0) {
        return;
    }
    for (size_t i = 0; i < snk->nfam; i++) {
        if (snk->fam[i].id == 0) {
            snk->fam[i].id = ++snk->fam_seq;
            snk->fam[i].lane = lane;
            snk->fam[i].accepted = 0;
            snk->fam[i].nrefused = 0;
            snk->fam[i].objects_refused = 0;
            batch->family = snk->fam[i].id;
            return;
        }
    }
}

static int lane_holds_family(const struct sink_lane *lane, uint64_t id)
{
    if (lane->cur != NULL && lane->cur->family == id) {
        return 1;
    }
    for (const struct sink_batch *b = lane->head; b != NULL; b = b->next) {
        if (b->family == id) {
            return 1;
        }
    }
    for (const struct sink_batch *b = lane->waiting; b != NULL; b = b->next) {
        if (b->family == id) {
            return 1;
        }
    }
    return 0;
}

/* printable ASCII of a response body, quotes made ', for one log line */
static void body_text(char *out, size_t size, const char *body, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len && n + 1 < size; i++) {
        unsigned char c = (unsigned char)body[i];
        out[n++] = c == '"' ? '\'' : c < 0x20 || c > 0x7e ? ' ' : (char)c;
    }
    out[n] = '\0';
}

static void breaker_stop(struct sink *snk, const struct sink_refusal *last)
{
    char text[SINK_BODY_SNIPPET_MAX + 1];

    body_text(text, sizeof(text), last->body, last->body_len);
    snk->stopped = 1;
    snk->refused = 1;
    snprintf(snk->error, sizeof(snk->error),
             "Moesif (or what answers at moesif.base_url) refused every event "
             "of %u batches in a row one by one, nothing accepted between; "
             "the last answer: HTTP %ld '%s'. Such answers are about the "
             "request (a proxy, a WAF, a changed API), not the events: "
             "check moesif.base_url and what is in front of Moesif "
             "(sink.reject_all_batches sets how many batches)",
             snk->reject_streak, last->status, text);
}

/*
 * After a batch of family e settled: when none of the family is left in
 * its lane, the family is complete.  All refused: the streak grows, and at
 * its bound the sink stops without reporting them; else the deferred
 * refusals are reported, in order.  counted 0: complete it without
 * touching the streak (events given up by sink_drop).
 */
static void family_check(struct sink *snk, struct sink_family *e, int counted)
{
    struct sink_lane *lane = &snk->bat.lanes[e->lane];

    if (lane_holds_family(lane, e->id)) {
        return;
    }
    /* a batch of one refused event says nothing of the request: it
     * neither counts nor resets (a trickle of single bad events must not
     * stop the run) */
    if (counted && e->accepted == 0 && e->objects_refused >= 2) {
        snk->reject_streak++;
        if (snk->reject_streak >= snk->cfg.reject_all_batches) {
            breaker_stop(snk, &e->refused[e->nrefused - 1]);
            e->id = 0;
            return;
        }
    }
    e->id = 0;
    for (size_t i = 0; i < e->nrefused && !snk->stopped; i++) {
        const struct sink_refusal *f = &e->refused[i];
        snk->cb.refused(snk->cb.opaque, f->ticket, f->status, f->body,
                        f->body_len);
    }
    e->nrefused = 0;
    e->objects_refused = 0;
}

static void settle_done(struct sink *snk, struct sink_lane *lane)
{
    struct sink_batch *batch = cur_take(snk, lane);

    struct sink_family *e = family_of(snk, batch->family);
    size_t n = batch->n;

    snk->st.batches_ok++;
    snk->st.objects_ok += batch->n;
    snk->reject_streak = 0; /* something was accepted */
    for (size_t i = 0; i < batch->n; i++) {
        const struct sink_event *ev = &batch->evs[i];
        snk->cb.done(snk->cb.opaque, ev->ticket);
        for (uint32_t k = 0; k < ev->n_more; k++) {
            snk->cb.done(snk->cb.opaque, ev->more[k].ticket);
        }
        snk->st.events_ok += sink_event_count(ev);
    }
    settled(snk, lane, batch);
    if (e != NULL) {
        e->accepted += n;
        family_check(snk, e, 1);
    }
}

static void settle_refused(struct sink *snk, struct sink_lane *lane,
                           const struct sink_completion *c)
{
    struct sink_batch *batch = cur_take(snk, lane);
    struct sink_family *e = family_of(snk, batch->family);
    const struct sink_event *ev = &batch->evs[0];
    size_t n = sink_event_count(ev);
    /* a merged object refused: each of its events, with the answer (the
     * dead-letter record holds each one's own bytes); their tickets are
     * copied, the batch is recycled first */
    uint64_t *tickets = core_malloc(n * sizeof(*tickets));

    assert(batch->n == 1);
    tickets[0] = ev->ticket;
    for (uint32_t k = 0; k < ev->n_more; k++) {
        tickets[1 + k] = ev->more[k].ticket;
    }
    snk->st.events_refused += n;
    core_log(CORE_LOG_DEBUG, "sink",
             "msg=\"event refused\" status=%ld events=%zu", c->status, n);
    settled(snk, lane, batch);
    if (e == NULL) {
        for (size_t i = 0; i < n; i++) {
            snk->cb.refused(snk->cb.opaque, tickets[i], c->status, c->body,
                            c->body_len);
        }
        free(tickets);
        return;
    }
    /* reported once its family is complete (the reject breaker) */
    for (size_t i = 0; i < n; i++) {
        if (e->nrefused == e->cap) {
            e->cap = e->cap ? 2 * e->cap : 8;
            e->refused = core_realloc(e->refused, e->cap * sizeof(*e->refused));
        }
        e->refused[e->nrefused].ticket = tickets[i];
        e->refused[e->nrefused].status = c->status;
        e->refused[e->nrefused].body_len = c->body_len;
        memcpy(e->refused[e->nrefused].body, c->body, c->body_len);
        e->nrefused++;
    }
    /* one object, however many events merged in it: the breaker counts
     * what Moesif answered, objects */
    e->objects_refused++;
    free(tickets);
    family_check(snk, e, 1);
}

static void settle_split(struct sink *snk, unsigned i, struct sink_lane *lane,
                         const struct sink_completion *c)
{
    struct sink_batch *batch;

    if (cur_drop(snk, lane)) {
        return;
    }
    batch = lane->cur;
    if (batch->n == 1) {
        settle_refused(snk, lane, c);
        return;
    }
    core_log(CORE_LOG_DEBUG, "sink",
             "msg=\"batch split\" lane=%u status=%ld events=%zu", i, c->status,
             batch->n);
    snk->st.splits++;
    lane->failing = 0;
    lane->cur = NULL;
    sink_lane_split(&snk->bat, lane, batch);
}

static void stop(struct sink *snk, const struct sink_policy_row *row,
                 const struct sink_completion *c)
{
    snk->stopped = 1;
    snk->refused = 1;
    if (c->err == SINK_TP_OK) {
        snprintf(snk->error, sizeof(snk->error),
                 "HTTP %ld from moesif.base_url: %s", c->status, row->fix);
    } else {
        snprintf(snk->error, sizeof(snk->error), "%s (%s)", row->fix,
                 c->detail);
    }
    core_log(CORE_LOG_DEBUG, "sink", "msg=\"stopped\" status=%ld", c->status);
}

static void settle_retry(struct sink *snk, unsigned i, struct sink_lane *lane,
                         const struct sink_completion *c)
{
    struct sink_batch *batch;
    enum core_log_level level;
    uint64_t delay;

    if (cur_drop(snk, lane)) {
        if (lane->waiting == NULL) {
            lane->failing = 0; /* as in sink_drop */
        }
        return;
    }
    batch = lane->cur;
    batch->attempts++;
    if (snk->cfg.retry_max > 0 && batch->attempts > snk->cfg.retry_max) {
        snk->stopped = 1;
        if (c->err == SINK_TP_OK) {
            snprintf(snk->error, sizeof(snk->error),
                     "a batch still failed after %u retries (last: HTTP %ld "
                     "from moesif.base_url); check Moesif's status and the "
                     "network path to it, or raise sink.retry_max (0 "
                     "retries without end)",
                     snk->cfg.retry_max, c->status);
        } else {
            snprintf(snk->error, sizeof(snk->error),
                     "a batch still failed after %u retries (last: %s); "
                     "check the network path to moesif.base_url, or raise "
                     "sink.retry_max (0 retries without end)",
                     snk->cfg.retry_max, c->detail);
        }
        return;
    }
    delay = sink_backoff_ms(batch->attempts, snk->cfg.retry_backoff_ms,
                            snk->cfg.retry_backoff_max_ms, c->retry_after_ms,
                            rng_next(snk));
    batch->not_before_ms = snk->now_ms + delay;
    lane->failing++;
    lane->cur = NULL;
    sink_lane_hold(&snk->bat, lane, batch);
    snk->st.retries++;
    /* the first failure of a batch at debug (a 429 now and then is
     * normal), then at attempts 2, 4, 8...: an outage of hours writes a
     * few dozen lines, not one per retry */
    level =
        batch->attempts >= 2 && (batch->attempts & (batch->attempts - 1)) == 0
            ? CORE_LOG_WARN
            : CORE_LOG_DEBUG;
    if (c->err == SINK_TP_OK) {
        core_log(level, "sink",
                 "msg=\"request failed, retrying\" lane=%u status=%ld "
                 "attempt=%u delay_ms=%" PRIu64 " events=%zu",
                 i, c->status, batch->attempts, delay, batch->n);
    } else {
        core_log(level, "sink",
                 "msg=\"request failed, retrying\" lane=%u error=\"%s\" "
                 "attempt=%u delay_ms=%" PRIu64 " events=%zu",
                 i, c->detail, batch->attempts, delay, batch->n);
    }
}

/* Does what the policy says with the lane's head batch. */
static void apply(struct sink *snk, unsigned i, const struct sink_completion *c)
{
    struct sink_lane *lane = &snk->bat.lanes[i];
    const struct sink_policy_row *row = sink_policy_lookup(c->err, c->status);

    switch (row->action) {
    case SINK_DONE:
        settle_done(snk, lane);
        break;
    case SINK_RETRY:
        settle_retry(snk, i, lane, c);
        break;
    case SINK_BISECT:
        /* a bisection is followed by the reject breaker */
        if (lane->cur != NULL) {
            family_start(snk, i, lane->cur);
        }
        settle_split(snk, i, lane, c);
        break;
    case SINK_SPLIT:
        /* the same move for both: 413 halves until the parts fit, 400/422
         * halves until the refused events stand alone; a single event so
         * answered is Moesif's refusal of that event */
        settle_split(snk, i, lane, c);
        break;
    case SINK_STOP:
        stop(snk, row, c);
        break;
    }
}

static void settle(struct sink *snk, const struct sink_completion *c)
{
    struct sink_lane *lane = &snk->bat.lanes[c->lane];
    long cls = c->status / 100;

    assert(c->lane < snk->bat.n_lanes && lane->in_flight && lane->cur != NULL);
    lane->in_flight = 0;
    snk->in_flight--;
    snk->st.requests++;
    if (c->err != SINK_TP_OK || cls < 1 || cls > 5) {
        cls = 0;
    }
    snk->st.status[cls]++;
    snk->st.reachable = c->err == SINK_TP_OK;
    {
        uint64_t now = snk->ops->now_ms(snk->tp);
        uint64_t ms = now > lane->sent_ms ? now - lane->sent_ms : 0;
        unsigned b = 0;
        while (b < SINK_LATENCY_BUCKETS && ms > sink_latency_le_ms[b]) {
            b++;
        }
        snk->st.latency_bucket[b]++;
        snk->st.latency_sum_ms += ms;
    }
    if (lane->gz_cap > snk->gz_keep) {
        /* an event beyond max_bytes grew it: give that back */
        free(lane->gz);
        lane->gz = NULL;
        lane->gz_cap = 0;
    }
    apply(snk, c->lane, c);
}

/* ---- sending ---------------------------------------------------------- */

/*
 * A lane whose last LANE_FAILING_MAX requests all failed sends only its
 * waiting batches, each at its backoff, until one settles: while Moesif
 * is down or unreachable, sending the rest of the queue one batch after
 * another would only multiply the failing requests (make asan measured
 * a ten-second refusal churning 500 MB through them).  Three, not two:
 * with 5% of answers 429 (Retry-After 1 s) two failures in a row come
 * every few seconds in some lane, and stopping it then cost a tenth of
 * the rate (make bench: 101-120k against 126-129k events/s).
 */
#define LANE_FAILING_MAX 3

static void lane_kick(struct sink *snk, unsigned i)
{
    struct sink_lane *lane = &snk->bat.lanes[i];
    struct sink_batch *batch;
    struct sink_request req;

    if (lane->in_flight) {
        return;
    }
    batch =
        sink_lane_next(lane, snk->now_ms, lane->failing >= LANE_FAILING_MAX);
    if (batch == NULL) {
        return;
    }
    lane->cur = batch;
    req.url = snk->url;
    req.headers = snk->headers;
    req.n_headers = snk->n_headers;
    req.body = batch->buf;
    req.body_len = batch->len;
    req.timeout_ms = snk->cfg.timeout_ms;
    if (snk->cfg.gzip) {
        size_t bound = sink_gzip_bound(&snk->gz, batch->len);
        if (lane->gz_cap < bound) {
            free(lane->gz);
            lane->gz = core_malloc(bound);
            lane->gz_cap = bound;
        }
        req.body = lane->gz;
        req.body_len = sink_gzip_compress(&snk->gz, batch->buf, batch->len,
                                          lane->gz, lane->gz_cap);
        /* the bound is libdeflate's promise for this input */
        assert(req.body_len > 0);
    }
    lane->in_flight = 1;
    lane->sent_ms = snk->ops->now_ms(snk->tp);
    snk->in_flight++;
    if (snk->ops->start(snk->tp, i, &req) != CORE_OK) {
        struct sink_completion c;

        memset(&c, 0, sizeof(c));
        c.lane = i;
        c.err = SINK_TP_OTHER;
        c.retry_after_ms = -1;
        snprintf(c.detail, sizeof(c.detail), "could not start the request");
        lane->in_flight = 0;
        snk->in_flight--;
        apply(snk, i, &c);
        return;
    }
    snk->st.bytes_sent += req.body_len;
    snk->st.bytes_raw += batch->len;
    core_log(CORE_LOG_DEBUG, "sink",
             "msg=\"batch sent\" lane=%u events=%zu bytes=%zu "
             "body_bytes=%zu attempt=%u",
             i, batch->n, batch->len, req.body_len, batch->attempts);
}

/* Seals the batches whose linger is over, starts what can start. */
static void drive(struct sink *snk)
{
    for (unsigned i = 0; i < snk->bat.n_lanes && !snk->stopped; i++) {
        struct sink_lane *lane = &snk->bat.lanes[i];

        /* linger seals the chain's head only when the lane could send
         * it now: while a request is out or sealed batches wait, sealing
         * early would only queue a partial batch where the open one keeps
         * filling (issue 12: against a remote API most batches were sealed
         * by linger while their lane waited for its answer) */
        if (!lane->in_flight && lane->head == NULL &&
            sink_lane_open(lane) != NULL &&
            snk->now_ms >= linger_due(snk, sink_lane_open(lane))) {
            sink_lane_seal(&snk->bat, lane, SINK_SEAL_LINGER);
        }
        lane_kick(snk, i);
    }
}

/* How long poll may wait: up to timeout_ms, less if a linger or a backoff
 * ends sooner. */
static int next_wait(const struct sink *snk, int timeout_ms)
{
    uint64_t wait = (uint64_t)timeout_ms;

    for (unsigned i = 0; i < snk->bat.n_lanes; i++) {
        const struct sink_lane *lane = &snk->bat.lanes[i];
        uint64_t due;

        if (sink_lane_open(lane) != NULL && !lane->in_flight &&
            lane->head == NULL) {
            due = linger_due(snk, sink_lane_open(lane));
            due = due > snk->now_ms ? due - snk->now_ms : 0;
            wait = due < wait ? due : wait;
        }
        if (lane->in_flight) {
            continue;
        }
        if (lane->head != NULL && lane->failing < LANE_FAILING_MAX) {
            wait = 0;
        }
        for (const struct sink_batch *b = lane->waiting; b != NULL;
             b = b->next) {
            due = b->not_before_ms;
            due = due > snk->now_ms ? due - snk->now_ms : 0;
            wait = due < wait ? due : wait;
        }
    }
    return (int)wait;
}

enum core_err sink_poll(struct sink *snk, int timeout_ms)
{
    size_t n;

    if (snk->stopped) {
        return CORE_ERR_STOP;
    }
    if (timeout_ms < 0) {
        timeout_ms = 0;
    }
    note_time(snk);
    drive(snk);
    if (snk->stopped) {
        return CORE_ERR_STOP;
    }
    n = snk->ops->poll(snk->tp, next_wait(snk, timeout_ms), snk->comp,
                       snk->bat.n_lanes);
    note_time(snk);
    for (size_t i = 0; i < n; i++) {
        settle(snk, &snk->comp[i]);
        if (snk->stopped) {
            return CORE_ERR_STOP;
        }
    }
    /* a lane whose request just finished sends its next batch now, not
     * at the next call */
    drive(snk);
    return snk->stopped ? CORE_ERR_STOP : CORE_OK;
}
