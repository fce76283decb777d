/*
 * test_sink.c: tests of sink/sink.c through the transport seam of
 * sink/sink_int.h: a fake transport answers each request with what the
 * test's responder decides (any status, Retry-After, a time-out or a
 * broken connection), keeps a log of every request with its body
 * (inflated when gzipped), and runs a fake clock that only poll's wait
 * and the answers' latency move, so linger and backoff are exact.
 *
 * Covered: settings checks; batching by count, bytes, linger and flush;
 * headers and URL; gzip; per-user order across lanes under faults; 413
 * split; 400/422 bisection down to exactly the bad events; retries on
 * 500, 429 (Retry-After), time-outs, broken connections; a retrying lane
 * not holding up the others; STOP for every stop status; saturation; the
 * application id never in a log line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../sink/sink_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>
#include <zlib.h>

#define APP_ID "eyJhcHAiOiJ0ZXN0LXNlY3JldC1hcHAtaWQifQ"
#define BASE_URL "http://moesif.test"
#define FAKE_LANES 16
#define MAX_TICKETS 8192

/* ---- the fake transport ------------------------------------------------ */

struct answer {
    enum sink_tp_error err;
    long status;
    int64_t retry_after_ms;
    const char *body;
};

struct fake;
/* Decides the answer to a request; body is the uncompressed JSON. */
typedef void (*responder_fn)(struct fake *f, unsigned lane, const char *body,
                             size_t len, struct answer *ans);

struct logged {
    unsigned lane;
    uint64_t start_ms;
    char *body; /* uncompressed, NUL-terminated */
    size_t len;
    size_t wire_len;
    struct answer ans;
};

struct fake {
    uint64_t now;
    uint64_t latency_ms;
    int busy[FAKE_LANES];
    size_t busy_log[FAKE_LANES]; /* index into log */
    char url[256];
    char headers[8][256];
    size_t n_headers;
    responder_fn respond;
    void *ctx;
    struct logged *log;
    size_t n_log;
    int fail_start;   /* the next n starts fail */
    int hold;         /* poll answers nothing */
    size_t answering; /* log index of the request being answered */
    int destroyed;
    unsigned max_busy;
    /* scripted answers for respond_script */
    const struct answer *script;
    size_t n_script;
};

static char *inflate_gzip(const char *in, size_t len, size_t *out_len)
{
    size_t cap = len * 8 + 1024;
    char *out = malloc(cap);
    z_stream zs;
    int zrc;

    assert_non_null(out);
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
    zs.next_in = (unsigned char *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    for (;;) {
        zs.next_out = (unsigned char *)out + zs.total_out;
        zs.avail_out = (uInt)(cap - 1 - zs.total_out);
        zrc = inflate(&zs, Z_FINISH);
        if (zrc == Z_STREAM_END) {
            break;
        }
        assert_true(zrc == Z_BUF_ERROR || zrc == Z_OK);
        cap *= 2;
        out = realloc(out, cap);
        assert_non_null(out);
    }
    *out_len = zs.total_out;
    out[zs.total_out] = '\0';
    inflateEnd(&zs);
    return out;
}

static enum core_err fake_start(void *tp, unsigned lane,
                                const struct sink_request *req)
{
    struct fake *f = tp;
    struct logged *lg;
    int gzipped = 0;
    unsigned busy = 0;

    assert_true(lane < FAKE_LANES);
    assert_false(f->busy[lane]); /* one request a lane */
    if (f->fail_start > 0) {
        f->fail_start--;
        return CORE_ERR_RETRY;
    }
    snprintf(f->url, sizeof(f->url), "%s", req->url);
    assert_true(req->n_headers <= 8);
    f->n_headers = req->n_headers;
    for (size_t i = 0; i < req->n_headers; i++) {
        snprintf(f->headers[i], sizeof(f->headers[i]), "%s", req->headers[i]);
        if (strcmp(req->headers[i], "Content-Encoding: gzip") == 0) {
            gzipped = 1;
        }
    }
    f->log = realloc(f->log, (f->n_log + 1) * sizeof(*f->log));
    assert_non_null(f->log);
    lg = &f->log[f->n_log];
    memset(lg, 0, sizeof(*lg));
    lg->lane = lane;
    lg->start_ms = f->now;
    lg->wire_len = req->body_len;
    if (gzipped) {
        lg->body = inflate_gzip(req->body, req->body_len, &lg->len);
    } else {
        lg->body = malloc(req->body_len + 1);
        assert_non_null(lg->body);
        memcpy(lg->body, req->body, req->body_len);
        lg->body[req->body_len] = '\0';
        lg->len = req->body_len;
    }
    f->busy_log[lane] = f->n_log++;
    f->busy[lane] = 1;
    for (unsigned i = 0; i < FAKE_LANES; i++) {
        busy += (unsigned)f->busy[i];
    }
    f->max_busy = busy > f->max_busy ? busy : f->max_busy;
    return CORE_OK;
}

/* Answers every request in flight, highest lane first (lanes are
 * independent: no order between them is promised). */
static size_t fake_poll(void *tp, int timeout_ms, struct sink_completion *out,
                        size_t max)
{
    struct fake *f = tp;
    size_t n = 0;

    for (int lane = FAKE_LANES - 1; lane >= 0 && f->hold; lane--) {
        f->busy[lane] = 0; /* abandoned, as the sink destroys us next */
    }
    for (int lane = FAKE_LANES - 1; lane >= 0; lane--) {
        struct logged *lg;
        struct sink_completion *c;

        if (!f->busy[lane]) {
            continue;
        }
        assert_true(n < max);
        lg = &f->log[f->busy_log[lane]];
        lg->ans.retry_after_ms = -1;
        f->answering = f->busy_log[lane];
        f->respond(f, (unsigned)lane, lg->body, lg->len, &lg->ans);
        c = &out[n++];
        memset(c, 0, sizeof(*c));
        c->lane = (unsigned)lane;
        c->err = lg->ans.err;
        c->status = lg->ans.err == SINK_TP_OK ? lg->ans.status : 0;
        c->retry_after_ms = lg->ans.retry_after_ms;
        if (lg->ans.body != NULL) {
            c->body_len = strlen(lg->ans.body);
            if (c->body_len > sizeof(c->body)) {
                c->body_len = sizeof(c->body);
            }
            memcpy(c->body, lg->ans.body, c->body_len);
        }
        if (c->err != SINK_TP_OK) {
            snprintf(c->detail, sizeof(c->detail), "fake transport error %d",
                     (int)c->err);
        }
        f->busy[lane] = 0;
    }
    f->now += n > 0 ? f->latency_ms : (uint64_t)timeout_ms;
    return n;
}

static uint64_t fake_now_ms(void *tp)
{
    return ((struct fake *)tp)->now;
}

static void fake_destroy(void *tp)
{
    ((struct fake *)tp)->destroyed = 1;
}

static const struct sink_transport_ops fake_ops = {
    fake_start,
    fake_poll,
    fake_now_ms,
    fake_destroy,
};

static void fake_free(struct fake *f)
{
    for (size_t i = 0; i < f->n_log; i++) {
        free(f->log[i].body);
    }
    free(f->log);
}

static void respond_201(struct fake *f, unsigned lane, const char *body,
                        size_t len, struct answer *ans)
{
    (void)f;
    (void)lane;
    (void)body;
    (void)len;
    ans->err = SINK_TP_OK;
    ans->status = 201;
}

/* The scripted answers in the order the requests started, then 201. */
static void respond_script(struct fake *f, unsigned lane, const char *body,
                           size_t len, struct answer *ans)
{
    (void)lane;
    (void)body;
    (void)len;
    if (f->answering < f->n_script) {
        *ans = f->script[f->answering];
        return;
    }
    ans->err = SINK_TP_OK;
    ans->status = 201;
}

/* ---- the callbacks ------------------------------------------------------ */

struct refusal {
    uint64_t ticket;
    long status;
    char body[SINK_BODY_SNIPPET_MAX + 1];
};

struct rec {
    unsigned done_count[MAX_TICKETS];
    uint64_t done_order[MAX_TICKETS];
    size_t n_done;
    struct refusal refused[64];
    size_t n_refused;
};

static void on_done(void *opaque, uint64_t ticket)
{
    struct rec *r = opaque;

    assert_true(ticket < MAX_TICKETS);
    r->done_count[ticket]++;
    r->done_order[r->n_done++] = ticket;
}

static void on_refused(void *opaque, uint64_t ticket, long status,
                       const char *body, size_t body_len)
{
    struct rec *r = opaque;
    struct refusal *rf;

    assert_true(r->n_refused < 64);
    assert_true(body_len <= SINK_BODY_SNIPPET_MAX);
    rf = &r->refused[r->n_refused++];
    rf->ticket = ticket;
    rf->status = status;
    memcpy(rf->body, body, body_len);
    rf->body[body_len] = '\0';
}

/* ---- helpers ------------------------------------------------------------ */

struct env {
    struct fake f;
    struct rec r;
    struct sink_config cfg;
    struct sink *snk;
};

static struct env *env_new(void)
{
    struct env *e = calloc(1, sizeof(*e));

    assert_non_null(e);
    e->f.now = 1000000;
    e->f.latency_ms = 1;
    e->f.respond = respond_201;
    sink_config_init(&e->cfg);
    e->cfg.base_url = BASE_URL;
    e->cfg.application_id = APP_ID;
    e->cfg.gzip = 0;
    e->cfg.max_in_flight = 1;
    return e;
}

static void env_open(struct env *e)
{
    struct sink_callbacks cb = {on_done, on_refused, &e->r};
    char errstr[256];

    assert_int_equal(sink_new_transport(&e->cfg, &cb, &fake_ops, &e->f, &e->snk,
                                        errstr, sizeof(errstr)),
                     CORE_OK);
}

static void env_free(struct env *e)
{
    sink_destroy(e->snk);
    assert_true(e->f.destroyed);
    fake_free(&e->f);
    free(e);
}

/* An update of user, its seq-th.  Each carries a session token of its
 * own, so updates of a user are never merged (sink/merge.c): these tests
 * count objects per event; test_merge.c tests merging through the sink. */
static size_t event_json(char *buf, size_t cap, unsigned user, unsigned seq,
                         size_t pad, int bad)
{
    int n = snprintf(buf, cap,
                     "{\"user_id\":\"u%u\",\"seq\":%u,\"session_token\":"
                     "\"s%u\"%s,\"p\":\"",
                     user, seq, seq, bad ? ",\"bad\":true" : "");
    size_t at = (size_t)n;

    assert_true(at + pad + 3 < cap);
    memset(buf + at, '.', pad);
    at += pad;
    memcpy(buf + at, "\"}", 3);
    return at + 2;
}

static void add_event(struct sink *snk, unsigned user, unsigned seq, size_t pad,
                      int bad, uint64_t ticket)
{
    char uid[32], ev[4096];
    int uid_len = snprintf(uid, sizeof(uid), "u%u", user);
    size_t len = event_json(ev, sizeof(ev), user, seq, pad, bad);

    sink_add(snk, core_hash64(uid, (size_t)uid_len), ev, len, ticket);
}

/* Polls until nothing is pending, STOP, or max_polls. */
static enum core_err run(struct sink *snk, int max_polls)
{
    enum core_err rc = CORE_OK;

    for (int i = 0; i < max_polls && sink_pending(snk) > 0; i++) {
        rc = sink_poll(snk, 100);
        if (rc != CORE_OK) {
            break;
        }
    }
    return rc;
}

/* Calls fn(user, seq, ctx) for each event of a body, in order. */
static void each_event(const char *body, void (*fn)(unsigned, unsigned, void *),
                       void *ctx)
{
    const char *p = body;

    while ((p = strstr(p, "{\"user_id\":\"u")) != NULL) {
        unsigned user, seq;
        assert_int_equal(
            sscanf(p, "{\"user_id\":\"u%u\",\"seq\":%u", &user, &seq), 2);
        fn(user, seq, ctx);
        p++;
    }
}

static void assert_json_array(const struct logged *lg)
{
    char err[256];
    yajl_val v = yajl_tree_parse(lg->body, err, sizeof(err));

    if (v == NULL || !YAJL_IS_ARRAY(v)) {
        fail_msg("request body is not a JSON array (%s)", err);
    }
    yajl_tree_free(v);
}

static int has_header(const struct fake *f, const char *line)
{
    for (size_t i = 0; i < f->n_headers; i++) {
        if (strcmp(f->headers[i], line) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- settings ----------------------------------------------------------- */

static void test_sink_config_init__design_defaults(void **state)
{
    struct sink_config cfg;

    (void)state;
    sink_config_init(&cfg);
    assert_null(cfg.base_url);
    assert_null(cfg.application_id);
    assert_int_equal(cfg.batch_max_events, 200);
    assert_int_equal(cfg.batch_max_bytes, 1024 * 1024);
    assert_int_equal(cfg.batch_linger_ms, 1000);
    assert_int_equal(cfg.max_in_flight, 32);
    assert_int_equal(cfg.timeout_ms, 30000);
    assert_int_equal(cfg.gzip, 1);
    assert_int_equal(cfg.gzip_level, 1);
    assert_int_equal(cfg.retry_backoff_ms, 100);
    assert_int_equal(cfg.retry_backoff_max_ms, 30000);
    assert_int_equal(cfg.retry_max, 0);
    assert_int_equal(cfg.max_pending_bytes, 16 * 1024 * 1024);
}

/* ---- batching ----------------------------------------------------------- */

static void test_sink_poll__batches_by_count_with_headers_and_url(void **state)
{
    struct env *e = env_new();
    char want[4096], ev[256];
    size_t at;

    (void)state;
    e->cfg.base_url = BASE_URL "//";
    e->cfg.batch_max_events = 3;
    env_open(e);
    for (unsigned i = 0; i < 7; i++) {
        add_event(e->snk, i, 0, 0, 0, i);
    }
    assert_int_equal(sink_pending(e->snk), 7);
    assert_int_equal(run(e->snk, 100), CORE_OK);
    assert_int_equal(e->f.n_log, 3);
    assert_string_equal(e->f.url, BASE_URL "/v1/users/batch");
    assert_int_equal(e->f.n_headers, 2);
    assert_true(has_header(&e->f, "X-Moesif-Application-Id: " APP_ID));
    assert_true(
        has_header(&e->f, "Content-Type: application/json; charset=utf-8"));
    /* byte-exact bodies: [e0,e1,e2] [e3,e4,e5] [e6] */
    for (unsigned b = 0; b < 3; b++) {
        at = 0;
        want[at++] = '[';
        for (unsigned i = b * 3; i < b * 3 + 3 && i < 7; i++) {
            size_t len = event_json(ev, sizeof(ev), i, 0, 0, 0);
            if (i != b * 3) {
                want[at++] = ',';
            }
            memcpy(want + at, ev, len);
            at += len;
        }
        want[at++] = ']';
        assert_int_equal(e->f.log[b].len, at);
        assert_memory_equal(e->f.log[b].body, want, at);
        assert_json_array(&e->f.log[b]);
    }
    for (unsigned i = 0; i < 7; i++) {
        assert_int_equal(e->r.done_count[i], 1);
        assert_int_equal(e->r.done_order[i], i);
    }
    assert_int_equal(sink_pending(e->snk), 0);
    env_free(e);
}

static void test_sink_poll__batches_by_bytes(void **state)
{
    struct env *e = env_new();
    char ev[512];
    size_t len = event_json(ev, sizeof(ev), 0, 0, 100, 0);

    (void)state;
    /* three events and their commas and brackets, one byte short of four */
    e->cfg.batch_max_bytes = 4 * len + 4;
    env_open(e);
    for (unsigned i = 0; i < 10; i++) {
        add_event(e->snk, i, 0, 100, 0, i);
    }
    assert_int_equal(run(e->snk, 100), CORE_OK);
    assert_int_equal(e->f.n_log, 4);
    for (size_t i = 0; i < e->f.n_log; i++) {
        assert_true(e->f.log[i].len <= 4 * len + 4);
        assert_json_array(&e->f.log[i]);
    }
    assert_int_equal(e->f.log[0].len, 3 * len + 4);
    assert_int_equal(e->r.n_done, 10);
    env_free(e);
}

static void test_sink_poll__linger_seals_on_the_fake_clock(void **state)
{
    struct env *e = env_new();
    uint64_t t0;

    (void)state;
    e->cfg.batch_linger_ms = 1000;
    env_open(e);
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    t0 = e->f.now;
    add_event(e->snk, 1, 0, 0, 0, 1); /* stamped t0 */
    e->f.now = t0 + 999;
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    assert_int_equal(e->f.n_log, 0);
    e->f.now = t0 + 1000;
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    assert_int_equal(e->f.n_log, 1);
    assert_int_equal(e->f.log[0].start_ms, t0 + 1000);

    /* an idle poll waits exactly until the linger ends, not its
     * timeout, and sends the batch before it returns */
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    assert_int_equal(e->r.n_done, 1);
    t0 = e->f.now;
    add_event(e->snk, 2, 0, 0, 0, 2);
    assert_int_equal(sink_poll(e->snk, 5000), CORE_OK);
    assert_int_equal(e->f.now, t0 + 1000);
    assert_int_equal(e->f.n_log, 2);
    assert_int_equal(e->f.log[1].start_ms, t0 + 1000);
    assert_int_equal(sink_poll(e->snk, 5000), CORE_OK);
    assert_int_equal(e->r.n_done, 2);
    env_free(e);
}

/* While the caller notes a backlog, linger counts from its last note (the
 * batch keeps filling), up to 5 x linger after the batch opened; a lane
 * with a request out does not seal its head by linger. */
static void test_sink_poll__backlog_stretches_linger(void **state)
{
    struct env *e = env_new();
    uint64_t t0;

    (void)state;
    e->cfg.batch_linger_ms = 1000;
    env_open(e);
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    t0 = e->f.now;
    add_event(e->snk, 1, 0, 0, 0, 1); /* stamped t0 */
    e->f.now = t0 + 800;
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    sink_note_backlog(e->snk); /* at t0 + 800 */
    e->f.now = t0 + 1500;
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    assert_int_equal(e->f.n_log, 0); /* not at t0 + 1000 */
    e->f.now = t0 + 1800;
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    assert_int_equal(e->f.n_log, 1);
    assert_int_equal(run(e->snk, 100), CORE_OK);

    /* a backlog noted all along: sealed 5 x linger after it opened */
    t0 = e->f.now;
    add_event(e->snk, 2, 0, 0, 0, 2);
    for (uint64_t t = t0; t < t0 + 4999; t += 100) {
        e->f.now = t;
        assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
        sink_note_backlog(e->snk);
        assert_int_equal(e->f.n_log, 1);
    }
    e->f.now = t0 + 5000;
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    assert_int_equal(e->f.n_log, 2);
    env_free(e);
}

/* The fill target's batches: those sealed while the caller's last backlog
 * note is at most batch.linger_ms old count apart from a tail's. */
static void test_sink_stats__backlog_batches_apart_from_the_tail(void **state)
{
    struct env *e = env_new();
    struct sink_stats st;
    uint64_t t0;

    (void)state;
    e->cfg.batch_linger_ms = 100;
    e->cfg.batch_max_events = 4;
    env_open(e);
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    t0 = e->f.now;
    sink_note_backlog(e->snk);
    for (unsigned i = 0; i < 8; i++) { /* two full batches in a backlog */
        add_event(e->snk, i, 0, 0, 0, i);
    }
    assert_int_equal(run(e->snk, 100), CORE_OK);
    e->f.now = t0 + 1000; /* the backlog is over: a tail of 1 event */
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    add_event(e->snk, 9, 0, 0, 0, 9);
    sink_flush(e->snk);
    assert_int_equal(run(e->snk, 100), CORE_OK);
    sink_get_stats(e->snk, &st);
    assert_int_equal(st.sealed_events, 9);
    assert_int_equal(st.backlog_batches, 2);
    assert_int_equal(st.backlog_events, 8);
    assert_int_equal(sink_batch_events_quantile(e->snk, 0.1, 0), 1);
    assert_int_equal(sink_batch_events_quantile(e->snk, 0.1, 1), 4);
    env_free(e);
}

static void test_sink_flush__seals_without_waiting(void **state)
{
    struct env *e = env_new();

    (void)state;
    e->cfg.batch_linger_ms = 3600 * 1000;
    env_open(e);
    for (unsigned i = 0; i < 3; i++) {
        add_event(e->snk, i, 0, 0, 0, i);
    }
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    assert_int_equal(e->f.n_log, 0);
    sink_flush(e->snk);
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    assert_int_equal(e->f.n_log, 1);
    assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
    assert_int_equal(e->r.n_done, 3);
    env_free(e);
}

static void test_sink_poll__gzip_body_inflates_to_the_batch(void **state)
{
    struct env *e = env_new();
    struct sink_stats st;
    char want[4096], ev[512];
    size_t at = 0;

    (void)state;
    e->cfg.gzip = 1;
    e->cfg.gzip_level = 9;
    env_open(e);
    want[at++] = '[';
    for (unsigned i = 0; i < 5; i++) {
        size_t len = event_json(ev, sizeof(ev), i, 0, 200, 0);
        if (i > 0) {
            want[at++] = ',';
        }
        memcpy(want + at, ev, len);
        at += len;
        add_event(e->snk, i, 0, 200, 0, i);
    }
    want[at++] = ']';
    sink_flush(e->snk);
    assert_int_equal(run(e->snk, 10), CORE_OK);
    assert_int_equal(e->f.n_log, 1);
    assert_int_equal(e->f.n_headers, 3);
    assert_true(has_header(&e->f, "Content-Encoding: gzip"));
    assert_int_equal(e->f.log[0].len, at);
    assert_memory_equal(e->f.log[0].body, want, at);
    assert_true(e->f.log[0].wire_len < at / 4);
    sink_get_stats(e->snk, &st);
    assert_int_equal(st.bytes_raw, at);
    assert_int_equal(st.bytes_sent, e->f.log[0].wire_len);
    env_free(e);
}

/* ---- per-user order ----------------------------------------------------- */

#define ORDER_USERS 60
#define ORDER_UPDATES 20

struct order_check {
    unsigned next_seq[ORDER_USERS];
    unsigned seen_in_body[ORDER_USERS];
    unsigned body_mark;
    uint64_t rnd;
};

static void check_accepted(unsigned user, unsigned seq, void *ctx)
{
    struct order_check *oc = ctx;

    assert_true(user < ORDER_USERS);
    /* what Moesif accepted of a user is in the order it was added */
    assert_int_equal(seq, oc->next_seq[user]);
    oc->next_seq[user]++;
}

static void check_once_per_body(unsigned user, unsigned seq, void *ctx)
{
    struct order_check *oc = ctx;

    (void)seq;
    assert_true(user < ORDER_USERS);
    if (oc->seen_in_body[user] == oc->body_mark) {
        fail_msg("user u%u twice in one request", user);
    }
    oc->seen_in_body[user] = oc->body_mark;
}

/* 15% 500, 10% 429, 5% time-outs, 5% broken connections; the accepted
 * bodies are checked as they are accepted. */
static void respond_flaky(struct fake *f, unsigned lane, const char *body,
                          size_t len, struct answer *ans)
{
    struct order_check *oc = f->ctx;
    unsigned roll;

    (void)lane;
    (void)len;
    oc->body_mark++;
    each_event(body, check_once_per_body, oc);
    oc->rnd = oc->rnd * 6364136223846793005ULL + 1442695040888963407ULL;
    roll = (unsigned)(oc->rnd >> 33) % 100;
    ans->err = SINK_TP_OK;
    if (roll < 15) {
        ans->status = 500;
    } else if (roll < 25) {
        ans->status = 429;
        ans->retry_after_ms = roll < 20 ? 1000 : -1;
    } else if (roll < 30) {
        ans->err = SINK_TP_TIMEOUT;
    } else if (roll < 35) {
        ans->err = SINK_TP_CONNECT;
    } else {
        ans->status = 201;
        each_event(body, check_accepted, oc);
    }
}

static void test_sink_poll__lanes_keep_per_user_order_under_faults(void **state)
{
    struct env *e = env_new();
    struct order_check oc;
    unsigned last_done[ORDER_USERS];
    unsigned perm[ORDER_USERS];
    uint64_t s = 12345;

    (void)state;
    memset(&oc, 0, sizeof(oc));
    oc.rnd = 99;
    e->f.respond = respond_flaky;
    e->f.ctx = &oc;
    e->f.latency_ms = 7;
    e->cfg.max_in_flight = 4;
    e->cfg.batch_max_events = 16;
    e->cfg.batch_linger_ms = 50;
    env_open(e);
    for (unsigned u = 0; u < ORDER_USERS; u++) {
        perm[u] = u;
    }
    for (unsigned seq = 0; seq < ORDER_UPDATES; seq++) {
        /* a new interleaving of the users each round */
        for (unsigned u = ORDER_USERS - 1; u > 0; u--) {
            unsigned j, t;
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            j = (unsigned)(s >> 33) % (u + 1);
            t = perm[u];
            perm[u] = perm[j];
            perm[j] = t;
        }
        for (unsigned k = 0; k < ORDER_USERS; k++) {
            unsigned u = perm[k];
            add_event(e->snk, u, seq, 0, 0, u * 100 + seq);
            if (k % 7 == 0) {
                assert_int_equal(sink_poll(e->snk, 0), CORE_OK);
            }
        }
    }
    assert_int_equal(run(e->snk, 100000), CORE_OK);
    assert_int_equal(sink_pending(e->snk), 0);
    assert_true(e->f.max_busy > 1 && e->f.max_busy <= 4);
    /* every update accepted exactly once, in order */
    for (unsigned u = 0; u < ORDER_USERS; u++) {
        assert_int_equal(oc.next_seq[u], ORDER_UPDATES);
        last_done[u] = 0;
        for (unsigned seq = 0; seq < ORDER_UPDATES; seq++) {
            assert_int_equal(e->r.done_count[u * 100 + seq], 1);
        }
    }
    assert_int_equal(e->r.n_done, ORDER_USERS * ORDER_UPDATES);
    for (size_t i = 0; i < e->r.n_done; i++) {
        unsigned u = (unsigned)(e->r.done_order[i] / 100);
        unsigned seq = (unsigned)(e->r.done_order[i] % 100);
        assert_int_equal(seq, last_done[u]);
        last_done[u]++;
    }
    for (size_t i = 0; i < e->f.n_log; i++) {
        assert_json_array(&e->f.log[i]);
    }
    env_free(e);
}

/* ---- 413 ---------------------------------------------------------------- */

/* 413 above 350 bytes. */
static void respond_413(struct fake *f, unsigned lane, const char *body,
                        size_t len, struct answer *ans)
{
    (void)f;
    (void)lane;
    (void)body;
    ans->err = SINK_TP_OK;
    ans->status = len > 350 ? 413 : 201;
    ans->body = len > 350 ? "{\"message\":\"too large\"}" : NULL;
}

static void
test_sink_poll__413_splits_in_order_and_refuses_a_lone_event(void **state)
{
    struct env *e = env_new();
    struct sink_stats st;
    unsigned next = 0;

    (void)state;
    e->f.respond = respond_413;
    e->cfg.batch_max_events = 8;
    env_open(e);
    for (unsigned i = 0; i < 16; i++) {
        /* about 100 bytes each, and ticket 11 alone is too large */
        add_event(e->snk, i, 0, i == 11 ? 500 : 60, 0, i);
    }
    assert_int_equal(run(e->snk, 1000), CORE_OK);
    assert_int_equal(e->r.n_refused, 1);
    assert_int_equal(e->r.refused[0].ticket, 11);
    assert_int_equal(e->r.refused[0].status, 413);
    assert_string_equal(e->r.refused[0].body, "{\"message\":\"too large\"}");
    assert_int_equal(e->r.n_done, 15);
    for (size_t i = 0; i < e->r.n_done; i++) {
        if (next == 11) {
            next++;
        }
        assert_int_equal(e->r.done_order[i], next);
        next++;
    }
    for (size_t i = 0; i < e->f.n_log; i++) {
        assert_json_array(&e->f.log[i]);
    }
    sink_get_stats(e->snk, &st);
    assert_true(st.splits >= 3);
    assert_int_equal(st.events_refused, 1);
    assert_int_equal(st.events_ok, 15);
    env_free(e);
}

/* ---- 400 / 422 bisection ------------------------------------------------ */

struct bisect_ctx {
    long status;
};

static void respond_bad(struct fake *f, unsigned lane, const char *body,
                        size_t len, struct answer *ans)
{
    struct bisect_ctx *bc = f->ctx;

    (void)lane;
    (void)len;
    ans->err = SINK_TP_OK;
    if (strstr(body, "\"bad\":true") != NULL) {
        ans->status = bc->status;
        ans->body = "{\"message\":\"metadata.age must be a number\"}";
    } else {
        ans->status = 200;
    }
}

static void bisect_case(long status, unsigned lanes, const unsigned *bad,
                        size_t n_bad)
{
    struct env *e = env_new();
    struct bisect_ctx bc = {status};
    unsigned log2_200 = 8;

    e->f.respond = respond_bad;
    e->f.ctx = &bc;
    e->cfg.max_in_flight = lanes;
    env_open(e);
    for (unsigned i = 0; i < 200; i++) {
        int is_bad = 0;
        for (size_t k = 0; k < n_bad; k++) {
            is_bad |= bad[k] == i;
        }
        add_event(e->snk, i, 0, 20, is_bad, i);
    }
    assert_int_equal(run(e->snk, 10000), CORE_OK);
    assert_int_equal(e->r.n_refused, n_bad);
    for (size_t k = 0; k < n_bad; k++) {
        int found = 0;
        for (size_t j = 0; j < e->r.n_refused; j++) {
            if (e->r.refused[j].ticket == bad[k]) {
                found = 1;
                assert_int_equal(e->r.refused[j].status, status);
                assert_string_equal(
                    e->r.refused[j].body,
                    "{\"message\":\"metadata.age must be a number\"}");
            }
        }
        assert_true(found);
        assert_int_equal(e->r.done_count[bad[k]], 0);
    }
    assert_int_equal(e->r.n_done, 200 - n_bad);
    for (unsigned i = 0; i < 200; i++) {
        int is_bad = 0;
        for (size_t k = 0; k < n_bad; k++) {
            is_bad |= bad[k] == i;
        }
        assert_int_equal(e->r.done_count[i], is_bad ? 0 : 1);
    }
    /* bisection, not one event at a time: each bad event costs two
     * requests per halving */
    assert_true(e->f.n_log <= lanes + 2 * n_bad * log2_200 + 1);
    env_free(e);
}

static void
test_sink_poll__400_bisection_isolates_exactly_the_bad_events(void **state)
{
    const unsigned bad[] = {17, 101, 199};

    (void)state;
    bisect_case(400, 1, bad, 3);
}

static void test_sink_poll__422_bisection_over_lanes(void **state)
{
    const unsigned bad[] = {0, 1, 2, 150};

    (void)state;
    bisect_case(422, 3, bad, 4);
}

static void test_sink_poll__400_on_a_batch_of_only_bad_events(void **state)
{
    unsigned bad[10];

    (void)state;
    for (unsigned i = 0; i < 10; i++) {
        bad[i] = 190 + i;
    }
    bisect_case(400, 1, bad, 10);
}

/* ---- the reject breaker (issue 20) --------------------------------------- */

/* Every event bad: batches of 4 events each bisected down to single
 * refusals.  With sink.reject_all_batches=3 the sink stops at the third
 * complete family, refused (exit 3 for run), with the status and body in
 * its sentence; only the first two batches' events were reported refused,
 * none accepted, and nothing is settled after. */
static void test_sink_poll__reject_all_batches_stops(void **state)
{
    struct env *e = env_new();
    struct bisect_ctx bc = {400};

    (void)state;
    e->f.respond = respond_bad;
    e->f.ctx = &bc;
    e->cfg.batch_max_events = 4;
    env_open(e);
    for (unsigned i = 0; i < 40; i++) {
        add_event(e->snk, i, 0, 20, 1, i);
    }
    sink_flush(e->snk);
    assert_int_equal(run(e->snk, 10000), CORE_ERR_STOP);
    assert_true(sink_refused(e->snk));
    assert_int_equal(e->r.n_refused, 8);
    assert_int_equal(e->r.n_done, 0);
    for (size_t j = 0; j < e->r.n_refused; j++) {
        assert_true(e->r.refused[j].ticket < 8);
    }
    assert_non_null(strstr(sink_error(e->snk), "3 batches in a row"));
    assert_non_null(strstr(sink_error(e->snk), "HTTP 400"));
    assert_non_null(
        strstr(sink_error(e->snk), "metadata.age must be a number"));
    assert_non_null(strstr(sink_error(e->snk), "sink.reject_all_batches"));
    env_free(e);
}

/* An accepted event between resets the streak: batches alternate all bad
 * and all good, every bad event is refused and the sink never stops; with
 * the breaker off (0), or batches of one event (which say nothing of the
 * request), an all-bad stream is refused event by event. */
static void
test_sink_poll__reject_streak_reset_by_an_accepted_batch(void **state)
{
    struct bisect_ctx bc = {422};

    (void)state;
    for (int off = 0; off < 3; off++) {
        struct env *e = env_new();
        e->f.respond = respond_bad;
        e->f.ctx = &bc;
        e->cfg.batch_max_events = off == 2 ? 1 : 4;
        e->cfg.reject_all_batches = off == 1 ? 0 : 2;
        env_open(e);
        for (unsigned i = 0; i < 40; i++) {
            add_event(e->snk, i, 0, 20, off || (i / 4) % 2 == 0, i);
        }
        sink_flush(e->snk);
        assert_int_equal(run(e->snk, 10000), CORE_OK);
        assert_false(sink_refused(e->snk));
        assert_int_equal(e->r.n_refused, off ? 40 : 20);
        assert_int_equal(e->r.n_done, off ? 0 : 20);
        env_free(e);
    }
}

/* ---- retries ------------------------------------------------------------ */

static void test_sink_poll__retries_500_429_and_transport_errors(void **state)
{
    static const struct answer script[] = {
        {SINK_TP_OK, 500, -1, NULL},    {SINK_TP_OK, 429, 2000, NULL},
        {SINK_TP_TIMEOUT, 0, -1, NULL}, {SINK_TP_CONNECT, 0, -1, NULL},
        {SINK_TP_OK, 503, -1, NULL},
    };
    struct env *e = env_new();
    struct sink_stats st;
    int saw_saturated = 0;

    (void)state;
    e->f.respond = respond_script;
    e->f.script = script;
    e->f.n_script = 5;
    e->cfg.retry_backoff_ms = 100;
    e->cfg.retry_backoff_max_ms = 400;
    /* one event of a few dozen bytes: under the cap, retrying or not */
    e->cfg.max_pending_bytes = 100;
    env_open(e);
    add_event(e->snk, 1, 0, 0, 0, 1);
    sink_flush(e->snk);
    assert_false(sink_saturated(e->snk));
    for (int i = 0; i < 1000 && sink_pending(e->snk) > 0; i++) {
        assert_int_equal(sink_poll(e->snk, 100), CORE_OK);
        if (sink_pending(e->snk) > 0 && e->f.n_log > 0) {
            /* a retry alone does not pause consumption */
            assert_false(sink_saturated(e->snk));
            saw_saturated = 1;
        }
    }
    assert_true(saw_saturated); /* the retrying state was observed */
    assert_false(sink_saturated(e->snk));
    assert_int_equal(e->f.n_log, 6);
    assert_int_equal(e->r.done_count[1], 1);
    assert_int_equal(e->r.n_done, 1);
    /* backoff after each answer (latency 1 ms): full jitter under the cap,
     * 100, then Retry-After 2000 as a floor, then 400, 400, 400 */
    assert_true(e->f.log[1].start_ms - e->f.log[0].start_ms <= 1 + 100);
    assert_true(e->f.log[2].start_ms - e->f.log[1].start_ms >= 1 + 2000);
    assert_true(e->f.log[3].start_ms - e->f.log[2].start_ms <= 1 + 400);
    assert_true(e->f.log[4].start_ms - e->f.log[3].start_ms <= 1 + 400);
    assert_true(e->f.log[5].start_ms - e->f.log[4].start_ms <= 1 + 400);
    sink_get_stats(e->snk, &st);
    assert_int_equal(st.requests, 6);
    assert_int_equal(st.retries, 5);
    assert_int_equal(st.batches_ok, 1);
    assert_int_equal(st.events_ok, 1);
    assert_int_equal(st.status[0], 2);
    assert_int_equal(st.status[2], 1);
    assert_int_equal(st.status[4], 1);
    assert_int_equal(st.status[5], 2);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

static void test_sink_poll__a_start_that_fails_is_retried(void **state)
{
    struct env *e = env_new();
    struct sink_stats st;

    (void)state;
    e->f.fail_start = 2;
    env_open(e);
    add_event(e->snk, 1, 0, 0, 0, 1);
    sink_flush(e->snk);
    assert_int_equal(run(e->snk, 100), CORE_OK);
    assert_int_equal(e->r.done_count[1], 1);
    sink_get_stats(e->snk, &st);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.requests, 1);
    env_free(e);
}

struct slow_ctx {
    unsigned slow_user;
    unsigned failures_left;
};

static void find_user(unsigned u, unsigned seq, void *ctx)
{
    int *found = ctx;

    (void)seq;
    *found |= u == 0;
}

/* 503 to every request holding user u0, five times. */
static void respond_slow_user(struct fake *f, unsigned lane, const char *body,
                              size_t len, struct answer *ans)
{
    struct slow_ctx *sc = f->ctx;
    int found = 0;

    (void)lane;
    (void)len;
    each_event(body, find_user, &found);
    ans->err = SINK_TP_OK;
    ans->status = 201;
    if (found && sc->failures_left > 0) {
        sc->failures_left--;
        ans->status = 503;
        ans->retry_after_ms = 1000;
    }
}

static void
test_sink_poll__a_retrying_lane_does_not_block_the_others(void **state)
{
    struct env *e = env_new();
    struct slow_ctx sc = {0, 5};
    unsigned other = 1;
    char uid[16];

    (void)state;
    e->f.respond = respond_slow_user;
    e->f.ctx = &sc;
    e->cfg.max_in_flight = 2;
    e->cfg.batch_linger_ms = 10;
    e->cfg.max_pending_bytes = 100;
    env_open(e);
    /* a user on the other lane than u0 */
    for (;; other++) {
        int n = snprintf(uid, sizeof(uid), "u%u", other);
        if (sink_lane_of(core_hash64(uid, (size_t)n), 2) !=
            sink_lane_of(core_hash64("u0", 2), 2)) {
            break;
        }
    }
    add_event(e->snk, 0, 0, 0, 0, 0);
    for (unsigned seq = 0; seq < 20; seq++) {
        add_event(e->snk, other, seq, 0, 0, 1 + seq);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(sink_poll(e->snk, 10), CORE_OK);
        }
    }
    /* u0's lane is still waiting for its retries, the other flowed, and
     * the retry alone does not saturate the sink */
    assert_int_equal(e->r.done_count[0], 0);
    assert_false(sink_saturated(e->snk));
    for (unsigned seq = 0; seq < 20; seq++) {
        assert_int_equal(e->r.done_count[1 + seq], 1);
    }
    assert_int_equal(run(e->snk, 10000), CORE_OK);
    assert_int_equal(e->r.done_count[0], 1);
    assert_int_equal(sc.failures_left, 0);
    assert_false(sink_saturated(e->snk));
    env_free(e);
}

static void test_sink_poll__a_retrying_batch_holds_only_its_users(void **state)
{
    struct env *e = env_new();
    struct slow_ctx sc = {0, 5};
    size_t pos0 = 0, pos1 = 0;

    (void)state;
    e->f.respond = respond_slow_user;
    e->f.ctx = &sc;
    e->cfg.max_in_flight = 1; /* one lane: u0 shares it with everyone */
    e->cfg.batch_linger_ms = 10;
    env_open(e);
    add_event(e->snk, 0, 0, 0, 0, 0);
    for (int i = 0; i < 5; i++) {
        /* sent alone, and failed */
        assert_int_equal(sink_poll(e->snk, 10), CORE_OK);
    }
    assert_true(sc.failures_left < 5);
    for (unsigned seq = 0; seq < 20; seq++) {
        add_event(e->snk, 1 + seq, 0, 0, 0, 1 + seq);
        if (seq == 10) {
            add_event(e->snk, 0, 1, 0, 0, 100); /* u0 again */
        }
        for (int i = 0; i < 5; i++) {
            assert_int_equal(sink_poll(e->snk, 10), CORE_OK);
        }
    }
    /* u0 waits for its retries; the lane's other users flowed */
    assert_int_equal(e->r.done_count[0], 0);
    assert_int_equal(e->r.done_count[100], 0);
    for (unsigned seq = 0; seq < 20; seq++) {
        assert_int_equal(e->r.done_count[1 + seq], 1);
    }
    assert_int_equal(run(e->snk, 10000), CORE_OK);
    assert_int_equal(sc.failures_left, 0);
    assert_int_equal(e->r.done_count[0], 1);
    assert_int_equal(e->r.done_count[100], 1);
    for (size_t i = 0; i < e->r.n_done; i++) {
        if (e->r.done_order[i] == 0) {
            pos0 = i;
        } else if (e->r.done_order[i] == 100) {
            pos1 = i;
        }
    }
    assert_true(pos0 < pos1); /* u0's updates in order */
    for (size_t i = 0; i < e->f.n_log; i++) {
        assert_json_array(&e->f.log[i]);
    }
    env_free(e);
}

/* Connections refused for the first 5 s (fake clock) after the first
 * request. */
static void respond_down_5s(struct fake *f, unsigned lane, const char *body,
                            size_t len, struct answer *ans)
{
    (void)lane;
    (void)body;
    (void)len;
    ans->err =
        f->now - f->log[0].start_ms < 5000 ? SINK_TP_CONNECT : SINK_TP_OK;
    ans->status = 201;
}

static void
test_sink_poll__an_unreachable_moesif_gets_no_flood_of_retries(void **state)
{
    struct env *e = env_new();
    size_t first_ok = 0;

    (void)state;
    e->f.respond = respond_down_5s;
    e->f.latency_ms = 5;
    e->cfg.max_in_flight = 1;
    e->cfg.batch_max_events = 1; /* 50 batches in one lane */
    e->cfg.retry_backoff_ms = 100;
    e->cfg.retry_backoff_max_ms = 400;
    env_open(e);
    for (unsigned u = 0; u < 50; u++) {
        add_event(e->snk, u, 0, 0, 0, u);
    }
    assert_int_equal(run(e->snk, 100000), CORE_OK);
    assert_int_equal(e->r.n_done, 50);
    /* while down, the lane retried the three batches that failed first
     * and left the other 47 queued: each of those was sent once, after */
    while (first_ok < e->f.n_log && e->f.log[first_ok].ans.err != SINK_TP_OK) {
        first_ok++;
    }
    assert_true(first_ok > 10); /* it was down for a while */
    for (size_t i = 0; i < first_ok; i++) {
        assert_true(strstr(e->f.log[i].body, "\"u0\"") != NULL ||
                    strstr(e->f.log[i].body, "\"u1\"") != NULL ||
                    strstr(e->f.log[i].body, "\"u2\"") != NULL);
    }
    assert_true(e->f.n_log <= first_ok + 50);
    for (unsigned u = 0; u < 50; u++) {
        assert_int_equal(e->r.done_count[u], 1);
    }
    env_free(e);
}

static void respond_503(struct fake *f, unsigned lane, const char *body,
                        size_t len, struct answer *ans)
{
    (void)f;
    (void)lane;
    (void)body;
    (void)len;
    ans->err = SINK_TP_OK;
    ans->status = 503;
}

static void test_sink_poll__retry_max_stops_naming_the_setting(void **state)
{
    struct env *e = env_new();

    (void)state;
    e->f.respond = respond_503;
    e->cfg.retry_max = 2;
    env_open(e);
    add_event(e->snk, 1, 0, 0, 0, 1);
    sink_flush(e->snk);
    assert_int_equal(run(e->snk, 1000), CORE_ERR_STOP);
    assert_int_equal(e->f.n_log, 3);
    assert_non_null(strstr(sink_error(e->snk), "sink.retry_max"));
    assert_non_null(strstr(sink_error(e->snk), "503"));
    /* an outage, not a refusal: the caller exits 1, so it is restarted */
    assert_int_equal(sink_refused(e->snk), 0);
    assert_int_equal(e->r.n_done + e->r.n_refused, 0);
    env_free(e);
}

/* ---- STOP --------------------------------------------------------------- */

struct stop_ctx {
    long status;
};

static void respond_stop(struct fake *f, unsigned lane, const char *body,
                         size_t len, struct answer *ans)
{
    struct stop_ctx *sc = f->ctx;

    (void)lane;
    (void)body;
    (void)len;
    ans->err = SINK_TP_OK;
    ans->status = sc->status;
    ans->body = "{\"message\":\"nope\"}";
}

static void stop_case(long status, const char *w1, const char *w2)
{
    struct env *e = env_new();
    struct stop_ctx sc = {status};
    size_t n_log;
    char want[32];

    e->f.respond = respond_stop;
    e->f.ctx = &sc;
    e->cfg.max_in_flight = 3;
    env_open(e);
    for (unsigned i = 0; i < 30; i++) {
        add_event(e->snk, i, 0, 0, 0, i);
    }
    sink_flush(e->snk);
    assert_int_equal(run(e->snk, 100), CORE_ERR_STOP);
    snprintf(want, sizeof(want), "HTTP %ld", status);
    assert_non_null(strstr(sink_error(e->snk), want));
    if (strstr(sink_error(e->snk), w1) == NULL ||
        (w2 != NULL && strstr(sink_error(e->snk), w2) == NULL)) {
        fail_msg("HTTP %ld: '%s' does not name '%s'", status,
                 sink_error(e->snk), w1);
    }
    assert_null(strstr(sink_error(e->snk), APP_ID));
    assert_int_equal(sink_refused(e->snk), 1);
    assert_int_equal(e->r.n_done + e->r.n_refused, 0);
    /* nothing more is sent, nothing settles, whatever the caller does */
    n_log = e->f.n_log;
    for (unsigned i = 0; i < 30; i++) {
        add_event(e->snk, 100 + i, 0, 0, 0, 100 + i);
    }
    sink_flush(e->snk);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(sink_poll(e->snk, 100), CORE_ERR_STOP);
    }
    assert_int_equal(e->f.n_log, n_log);
    assert_int_equal(e->r.n_done + e->r.n_refused, 0);
    env_free(e);
}

static void test_sink_poll__stop_statuses_stop_and_say_what_to_fix(void **state)
{
    (void)state;
    stop_case(401, "moesif.application_id", "MOESIF_APPLICATION_ID");
    stop_case(402, "subscription", "inactive");
    stop_case(403, "moesif.application_id", NULL);
    stop_case(404, "moesif.base_url", NULL);
    stop_case(405, "moesif.base_url", NULL);
    stop_case(406, "moesif.base_url", NULL);
    stop_case(410, "moesif.base_url", NULL);
    stop_case(418, "moesif.base_url", NULL);
    stop_case(301, "moesif.base_url", NULL);
}

static void respond_fatal(struct fake *f, unsigned lane, const char *body,
                          size_t len, struct answer *ans)
{
    (void)f;
    (void)lane;
    (void)body;
    (void)len;
    ans->err = SINK_TP_FATAL;
}

static void test_sink_poll__unusable_url_stops(void **state)
{
    struct env *e = env_new();

    (void)state;
    e->f.respond = respond_fatal;
    env_open(e);
    add_event(e->snk, 1, 0, 0, 0, 1);
    sink_flush(e->snk);
    assert_int_equal(run(e->snk, 100), CORE_ERR_STOP);
    assert_non_null(strstr(sink_error(e->snk), "moesif.base_url"));
    assert_non_null(strstr(sink_error(e->snk), "fake transport error"));
    env_free(e);
}

/* ---- saturation, pending, destroy -------------------------------------- */

static void test_sink_saturated__above_max_pending_bytes(void **state)
{
    struct env *e = env_new();
    char ev[512];
    size_t len = event_json(ev, sizeof(ev), 0, 0, 80, 0);

    (void)state;
    e->cfg.max_pending_bytes = 5 * len;
    env_open(e);
    for (unsigned i = 0; i < 5; i++) {
        add_event(e->snk, i, 0, 80, 0, i);
        assert_false(sink_saturated(e->snk));
    }
    add_event(e->snk, 5, 0, 80, 0, 5);
    assert_true(sink_saturated(e->snk));
    assert_int_equal(sink_pending(e->snk), 6);
    assert_int_equal(run(e->snk, 100), CORE_OK);
    assert_false(sink_saturated(e->snk));
    assert_int_equal(sink_pending(e->snk), 0);
    env_free(e);
}

static void test_sink_destroy__abandons_unsettled_work(void **state)
{
    struct env *e = env_new();

    (void)state;
    e->cfg.max_in_flight = 2;
    env_open(e);
    for (unsigned i = 0; i < 50; i++) {
        add_event(e->snk, i, 0, 10, 0, i);
    }
    sink_flush(e->snk);
    /* two started and never answered, the rest queued */
    e->f.hold = 1;
    assert_int_equal(sink_poll(e->snk, 10), CORE_OK);
    assert_int_equal(e->f.n_log, 2);
    assert_int_equal(sink_pending(e->snk), 50);
    sink_destroy(e->snk);
    e->snk = NULL;
    assert_true(e->f.destroyed);
    assert_int_equal(e->r.n_done, 0);
    sink_destroy(NULL);
    fake_free(&e->f);
    free(e);
}

/* ---- logs --------------------------------------------------------------- */

static void respond_mixed(struct fake *f, unsigned lane, const char *body,
                          size_t len, struct answer *ans)
{
    (void)lane;
    (void)len;
    ans->err = SINK_TP_OK;
    if (f->n_log < 4) {
        ans->status = 503;
    } else if (strstr(body, "\"bad\":true") != NULL) {
        ans->status = 400;
    } else if (f->n_log < 12) {
        ans->status = 201;
    } else {
        ans->status = 401;
    }
}

static void
test_sink_poll__the_application_id_never_reaches_a_log_line(void **state)
{
    struct env *e = env_new();
    FILE *cap = tmpfile();
    int saved;
    int threshold = core_log_threshold;
    char buf[65536];
    size_t n;

    (void)state;
    assert_non_null(cap);
    fflush(stderr);
    saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(cap), 2) >= 0);
    core_log_threshold = CORE_LOG_DEBUG;

    e->f.respond = respond_mixed;
    e->cfg.batch_max_events = 4;
    env_open(e);
    for (unsigned i = 0; i < 40; i++) {
        add_event(e->snk, i, 0, 0, i == 5, i);
    }
    assert_int_equal(run(e->snk, 1000), CORE_ERR_STOP);
    env_free(e);

    core_log_threshold = threshold;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(cap);
    n = fread(buf, 1, sizeof(buf) - 1, cap);
    buf[n] = '\0';
    fclose(cap);
    /* the run logged (retries, batches, the refusal, the stop) ... */
    assert_non_null(strstr(buf, "component=sink"));
    assert_non_null(strstr(buf, "batch sent"));
    /* ... and never the id, whole or in part */
    assert_null(strstr(buf, APP_ID));
    assert_null(strstr(buf, "eyJhcHAi"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sink_config_init__design_defaults),
        cmocka_unit_test(test_sink_poll__batches_by_count_with_headers_and_url),
        cmocka_unit_test(test_sink_poll__batches_by_bytes),
        cmocka_unit_test(test_sink_poll__linger_seals_on_the_fake_clock),
        cmocka_unit_test(test_sink_poll__backlog_stretches_linger),
        cmocka_unit_test(test_sink_stats__backlog_batches_apart_from_the_tail),
        cmocka_unit_test(test_sink_flush__seals_without_waiting),
        cmocka_unit_test(test_sink_poll__gzip_body_inflates_to_the_batch),
        cmocka_unit_test(
            test_sink_poll__lanes_keep_per_user_order_under_faults),
        cmocka_unit_test(
            test_sink_poll__413_splits_in_order_and_refuses_a_lone_event),
        cmocka_unit_test(
            test_sink_poll__400_bisection_isolates_exactly_the_bad_events),
        cmocka_unit_test(test_sink_poll__422_bisection_over_lanes),
        cmocka_unit_test(test_sink_poll__400_on_a_batch_of_only_bad_events),
        cmocka_unit_test(test_sink_poll__reject_all_batches_stops),
        cmocka_unit_test(
            test_sink_poll__reject_streak_reset_by_an_accepted_batch),
        cmocka_unit_test(test_sink_poll__retries_500_429_and_transport_errors),
        cmocka_unit_test(test_sink_poll__a_start_that_fails_is_retried),
        cmocka_unit_test(
            test_sink_poll__a_retrying_lane_does_not_block_the_others),
        cmocka_unit_test(test_sink_poll__a_retrying_batch_holds_only_its_users),
        cmocka_unit_test(
            test_sink_poll__an_unreachable_moesif_gets_no_flood_of_retries),
        cmocka_unit_test(test_sink_poll__retry_max_stops_naming_the_setting),
        cmocka_unit_test(
            test_sink_poll__stop_statuses_stop_and_say_what_to_fix),
        cmocka_unit_test(test_sink_poll__unusable_url_stops),
        cmocka_unit_test(test_sink_saturated__above_max_pending_bytes),
        cmocka_unit_test(test_sink_destroy__abandons_unsettled_work),
        cmocka_unit_test(
            test_sink_poll__the_application_id_never_reaches_a_log_line),
    };
    return cmocka_run_group_tests_name("sink", tests, NULL, NULL);
}
