/*
 * test_sink_http.c: tests of sink/http.c, the libcurl transport, through
 * sink_new against an in-process libmicrohttpd server on 127.0.0.1 (port
 * chosen by the kernel): the one sink test with a socket.
 *
 * The server records each request (method, path, headers, body) and
 * answers from a script: a status, an optional Retry-After, an optional
 * sleep before answering, an optional body.  Checked: the headers and the
 * gzip body, keep-alive (connections counted by the server), 503 then
 * 201 with Retry-After in both forms, a time-out, a refused connection,
 * and the 512-byte cap on the response body kept for a refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../sink/sink_int.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define APP_ID "test-app-id-1234"
#define MAX_REQS 64

struct step {
    unsigned status;
    const char *retry_after; /* header value, or NULL */
    unsigned sleep_ms;
    const char *body; /* or NULL: "{}" */
};

struct got {
    char method[16];
    char url[128];
    char app_id[128];
    char content_type[128];
    char content_encoding[64];
    char *body;
    size_t len;
};

struct srv {
    struct MHD_Daemon *d;
    unsigned port;
    pthread_mutex_t mu;
    unsigned connections;
    size_t n_got;
    struct got got[MAX_REQS];
    const struct step *script;
    size_t n_script;
};

struct upload {
    char *buf;
    size_t len, cap;
};

static void copy_header(struct MHD_Connection *conn, const char *name,
                        char *out, size_t cap)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);

    snprintf(out, cap, "%s", v != NULL ? v : "");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    struct srv *s = cls;
    struct upload *up = *con_cls;
    struct step step = {201, NULL, 0, NULL};
    struct MHD_Response *resp;
    const char *body;
    enum MHD_Result ret;
    struct got *g;

    (void)version;
    if (up == NULL) {
        up = calloc(1, sizeof(*up));
        if (up == NULL) {
            return MHD_NO;
        }
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (up->len + *upload_data_size > up->cap) {
            up->cap = (up->len + *upload_data_size) * 2;
            up->buf = realloc(up->buf, up->cap);
            if (up->buf == NULL) {
                return MHD_NO;
            }
        }
        memcpy(up->buf + up->len, upload_data, *upload_data_size);
        up->len += *upload_data_size;
        *upload_data_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&s->mu);
    if (s->n_got < s->n_script) {
        step = s->script[s->n_got];
    }
    if (s->n_got < MAX_REQS) {
        g = &s->got[s->n_got];
        snprintf(g->method, sizeof(g->method), "%s", method);
        snprintf(g->url, sizeof(g->url), "%s", url);
        copy_header(conn, "X-Moesif-Application-Id", g->app_id,
                    sizeof(g->app_id));
        copy_header(conn, "Content-Type", g->content_type,
                    sizeof(g->content_type));
        copy_header(conn, "Content-Encoding", g->content_encoding,
                    sizeof(g->content_encoding));
        g->body = up->buf;
        g->len = up->len;
        up->buf = NULL;
        s->n_got++;
    }
    pthread_mutex_unlock(&s->mu);
    if (step.sleep_ms > 0) {
        struct timespec ts = {step.sleep_ms / 1000,
                              (long)(step.sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    body = step.body != NULL ? step.body : "{}";
    resp = MHD_create_response_from_buffer(
        strlen(body), (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (step.retry_after != NULL) {
        MHD_add_response_header(resp, "Retry-After", step.retry_after);
    }
    ret = MHD_queue_response(conn, step.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct upload *up = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (up != NULL) {
        free(up->buf);
        free(up);
        *con_cls = NULL;
    }
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct srv *s = cls;

    (void)conn;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        pthread_mutex_lock(&s->mu);
        s->connections++;
        pthread_mutex_unlock(&s->mu);
    }
}

static struct srv *srv_start(const struct step *script, size_t n_script)
{
    struct srv *s = calloc(1, sizeof(*s));
    struct sockaddr_in sin;
    const union MHD_DaemonInfo *info;

    assert_non_null(s);
    pthread_mutex_init(&s->mu, NULL);
    s->script = script;
    s->n_script = n_script;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = 0;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* a thread per connection: one sleeping answer holds up no other */
    s->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
        NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, &sin,
        MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, s, MHD_OPTION_END);
    assert_non_null(s->d);
    info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    s->port = info->port;
    assert_true(s->port > 0);
    return s;
}

static void srv_stop(struct srv *s)
{
    MHD_stop_daemon(s->d);
    for (size_t i = 0; i < s->n_got; i++) {
        free(s->got[i].body);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static size_t srv_requests(struct srv *s)
{
    size_t n;

    pthread_mutex_lock(&s->mu);
    n = s->n_got;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- the sink side ------------------------------------------------------ */

struct rec {
    unsigned done[64];
    size_t n_done;
    uint64_t refused_ticket;
    long refused_status;
    char refused_body[1024];
    size_t refused_len;
    size_t n_refused;
};

static void on_done(void *opaque, uint64_t ticket)
{
    struct rec *r = opaque;

    assert_true(ticket < 64);
    r->done[ticket]++;
    r->n_done++;
}

static void on_refused(void *opaque, uint64_t ticket, long status,
                       const char *body, size_t body_len)
{
    struct rec *r = opaque;

    r->refused_ticket = ticket;
    r->refused_status = status;
    assert_true(body_len <= sizeof(r->refused_body));
    memcpy(r->refused_body, body, body_len);
    r->refused_len = body_len;
    r->n_refused++;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct sink *open_sink(struct sink_config *cfg, struct rec *r,
                              unsigned port)
{
    static char url[64];
    struct sink_callbacks cb = {on_done, on_refused, r};
    struct sink *snk = NULL;
    char errstr[256];

    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    cfg->base_url = url;
    cfg->application_id = APP_ID;
    if (sink_new(cfg, &cb, &snk, errstr, sizeof(errstr)) != CORE_OK) {
        fail_msg("sink_new: %s", errstr);
    }
    return snk;
}

/* Polls until nothing is pending, STOP or max_ms of wall-clock time. */
static enum core_err run(struct sink *snk, uint64_t max_ms)
{
    uint64_t end = now_ms() + max_ms;
    enum core_err rc = CORE_OK;

    while (sink_pending(snk) > 0 && now_ms() < end) {
        rc = sink_poll(snk, 50);
        if (rc != CORE_OK) {
            break;
        }
    }
    return rc;
}

static size_t add_events(struct sink *snk, unsigned n, char *want, size_t cap)
{
    size_t at = 0;
    char uid[32], ev[256];

    if (want != NULL) {
        want[at++] = '[';
    }
    for (unsigned i = 0; i < n; i++) {
        int ul = snprintf(uid, sizeof(uid), "user-%u", i);
        int el = snprintf(ev, sizeof(ev),
                          "{\"user_id\":\"%s\",\"metadata\":{\"plan\":"
                          "\"enterprise\",\"seats\":%u}}",
                          uid, i);
        sink_add(snk, core_hash64(uid, (size_t)ul), ev, (size_t)el, i);
        if (want != NULL) {
            assert_true(at + (size_t)el + 2 < cap);
            if (i > 0) {
                want[at++] = ',';
            }
            memcpy(want + at, ev, (size_t)el);
            at += (size_t)el;
        }
    }
    if (want != NULL) {
        want[at++] = ']';
    }
    return at;
}

static char *gunzip(const char *in, size_t len, size_t *out_len)
{
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    z_stream zs;

    assert_non_null(out);
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
    zs.next_in = (unsigned char *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (unsigned char *)out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.avail_in, 0);
    *out_len = zs.total_out;
    inflateEnd(&zs);
    return out;
}

/* ---- tests -------------------------------------------------------------- */

static void test_sink_poll__sends_headers_and_gzip_body(void **state)
{
    struct srv *s = srv_start(NULL, 0);
    struct sink_config cfg;
    struct rec r;
    struct sink *snk;
    char want[8192];
    size_t want_len, len;
    char *body;

    (void)state;
    memset(&r, 0, sizeof(r));
    sink_config_init(&cfg);
    cfg.max_in_flight = 1;
    cfg.batch_linger_ms = 0;
    snk = open_sink(&cfg, &r, s->port);
    want_len = add_events(snk, 20, want, sizeof(want));
    assert_int_equal(run(snk, 10000), CORE_OK);
    assert_int_equal(r.n_done, 20);
    assert_int_equal(s->n_got, 1);
    assert_string_equal(s->got[0].method, "POST");
    assert_string_equal(s->got[0].url, "/v1/users/batch");
    assert_string_equal(s->got[0].app_id, APP_ID);
    assert_string_equal(s->got[0].content_type,
                        "application/json; charset=utf-8");
    assert_string_equal(s->got[0].content_encoding, "gzip");
    body = gunzip(s->got[0].body, s->got[0].len, &len);
    assert_int_equal(len, want_len);
    assert_memory_equal(body, want, len);
    free(body);
    sink_destroy(snk);
    srv_stop(s);
}

static void test_sink_poll__sends_plain_body_without_gzip(void **state)
{
    struct srv *s = srv_start(NULL, 0);
    struct sink_config cfg;
    struct rec r;
    struct sink *snk;
    char want[8192];
    size_t want_len;

    (void)state;
    memset(&r, 0, sizeof(r));
    sink_config_init(&cfg);
    cfg.gzip = 0;
    cfg.max_in_flight = 1;
    cfg.batch_linger_ms = 0;
    snk = open_sink(&cfg, &r, s->port);
    want_len = add_events(snk, 5, want, sizeof(want));
    assert_int_equal(run(snk, 10000), CORE_OK);
    assert_int_equal(r.n_done, 5);
    assert_int_equal(s->n_got, 1);
    assert_string_equal(s->got[0].content_encoding, "");
    assert_int_equal(s->got[0].len, want_len);
    assert_memory_equal(s->got[0].body, want, want_len);
    sink_destroy(snk);
    srv_stop(s);
}

static void test_sink_poll__keeps_connections_alive(void **state)
{
    struct srv *s = srv_start(NULL, 0);
    struct sink_config cfg;
    struct rec r;
    struct sink *snk;
    struct sink_stats st;

    (void)state;
    memset(&r, 0, sizeof(r));
    sink_config_init(&cfg);
    cfg.max_in_flight = 1;
    cfg.batch_max_events = 1; /* a request per event */
    snk = open_sink(&cfg, &r, s->port);
    add_events(snk, 8, NULL, 0);
    assert_int_equal(run(snk, 10000), CORE_OK);
    assert_int_equal(r.n_done, 8);
    assert_int_equal(srv_requests(s), 8);
    /* eight requests, one connection */
    assert_int_equal(s->connections, 1);
    sink_get_stats(snk, &st);
    assert_int_equal(st.requests, 8);
    assert_int_equal(st.status[2], 8);
    sink_destroy(snk);
    srv_stop(s);

    /* four lanes: at most four connections for 40 requests */
    s = srv_start(NULL, 0);
    memset(&r, 0, sizeof(r));
    sink_config_init(&cfg);
    cfg.max_in_flight = 4;
    cfg.batch_max_events = 1;
    snk = open_sink(&cfg, &r, s->port);
    add_events(snk, 40, NULL, 0);
    assert_int_equal(run(snk, 10000), CORE_OK);
    assert_int_equal(r.n_done, 40);
    assert_int_equal(srv_requests(s), 40);
    assert_true(s->connections >= 1 && s->connections <= 4);
    sink_destroy(snk);
    srv_stop(s);
}

static void retry_after_case(const char *retry_after, uint64_t min_ms)
{
    const struct step script[] = {{503, retry_after, 0, "{\"error\":1}"}};
    struct srv *s = srv_start(script, 1);
    struct sink_config cfg;
    struct rec r;
    struct sink *snk;
    struct sink_stats st;
    uint64_t t0;

    memset(&r, 0, sizeof(r));
    sink_config_init(&cfg);
    cfg.max_in_flight = 1;
    cfg.batch_linger_ms = 0;
    cfg.retry_backoff_ms = 10;
    cfg.retry_backoff_max_ms = 20;
    snk = open_sink(&cfg, &r, s->port);
    add_events(snk, 3, NULL, 0);
    t0 = now_ms();
    assert_int_equal(run(snk, 15000), CORE_OK);
    assert_true(now_ms() - t0 >= min_ms);
    assert_int_equal(r.n_done, 3);
    assert_int_equal(r.done[0] + r.done[1] + r.done[2], 3);
    assert_int_equal(srv_requests(s), 2);
    sink_get_stats(snk, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.status[5], 1);
    assert_int_equal(st.status[2], 1);
    assert_false(sink_saturated(snk));
    sink_destroy(snk);
    srv_stop(s);
}

static void
test_sink_poll__503_then_201_honours_retry_after_seconds(void **state)
{
    (void)state;
    retry_after_case("1", 950);
}

static void test_sink_poll__503_then_201_honours_retry_after_date(void **state)
{
    char date[64];
    time_t when = time(NULL) + 3;
    struct tm tm;

    (void)state;
    gmtime_r(&when, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    /* three seconds ahead, read at whole-second precision: at least 1 s */
    retry_after_case(date, 1000);
}

static void test_sink_poll__503_then_201_without_retry_after(void **state)
{
    (void)state;
    retry_after_case(NULL, 0);
}

static void test_sink_poll__a_timeout_is_retried(void **state)
{
    const struct step script[] = {{201, NULL, 1500, NULL}};
    struct srv *s = srv_start(script, 1);
    struct sink_config cfg;
    struct rec r;
    struct sink *snk;
    struct sink_stats st;
    uint64_t t0;

    (void)state;
    memset(&r, 0, sizeof(r));
    sink_config_init(&cfg);
    cfg.max_in_flight = 1;
    cfg.batch_linger_ms = 0;
    cfg.timeout_ms = 300;
    cfg.retry_backoff_ms = 10;
    cfg.retry_backoff_max_ms = 20;
    snk = open_sink(&cfg, &r, s->port);
    add_events(snk, 2, NULL, 0);
    t0 = now_ms();
    assert_int_equal(run(snk, 10000), CORE_OK);
    /* gave up on the sleeper after timeout_ms, not after its answer */
    assert_true(now_ms() - t0 >= 300);
    assert_true(now_ms() - t0 < 1400);
    assert_int_equal(r.n_done, 2);
    sink_get_stats(snk, &st);
    assert_int_equal(st.status[0], 1);
    assert_int_equal(st.status[2], 1);
    assert_int_equal(st.retries, 1);
    assert_int_equal(srv_requests(s), 2);
    sink_destroy(snk);
    srv_stop(s);
}

static void
test_sink_poll__a_refused_connection_is_retried_up_to_retry_max(void **state)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sink_config cfg;
    struct rec r;
    struct sink *snk;
    struct sink_stats st;
    unsigned port;

    (void)state;
    /* a port nobody listens on: bound, then closed */
    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    port = ntohs(sin.sin_port);
    close(fd);

    memset(&r, 0, sizeof(r));
    sink_config_init(&cfg);
    cfg.max_in_flight = 1;
    cfg.batch_linger_ms = 0;
    cfg.retry_backoff_ms = 5;
    cfg.retry_backoff_max_ms = 10;
    cfg.retry_max = 3;
    snk = open_sink(&cfg, &r, port);
    add_events(snk, 1, NULL, 0);
    assert_int_equal(run(snk, 10000), CORE_ERR_STOP);
    assert_non_null(strstr(sink_error(snk), "sink.retry_max"));
    assert_non_null(strstr(sink_error(snk), "moesif.base_url"));
    sink_get_stats(snk, &st);
    assert_int_equal(st.status[0], 4);
    assert_int_equal(st.retries, 3);
    assert_int_equal(r.n_done + r.n_refused, 0);
    sink_destroy(snk);
}

static void test_sink_poll__refusal_keeps_512_bytes_of_the_answer(void **state)
{
    static char big[2000];
    const struct step script[] = {{400, NULL, 0, big}};
    struct srv *s;
    struct sink_config cfg;
    struct rec r;
    struct sink *snk;

    (void)state;
    for (size_t i = 0; i < sizeof(big) - 1; i++) {
        big[i] = (char)('a' + i % 26);
    }
    big[sizeof(big) - 1] = '\0';
    s = srv_start(script, 1);
    memset(&r, 0, sizeof(r));
    sink_config_init(&cfg);
    cfg.batch_linger_ms = 0;
    snk = open_sink(&cfg, &r, s->port);
    add_events(snk, 1, NULL, 0);
    assert_int_equal(run(snk, 10000), CORE_OK);
    assert_int_equal(r.n_refused, 1);
    assert_int_equal(r.refused_ticket, 0);
    assert_int_equal(r.refused_status, 400);
    assert_int_equal(r.refused_len, SINK_BODY_SNIPPET_MAX);
    assert_memory_equal(r.refused_body, big, SINK_BODY_SNIPPET_MAX);
    sink_destroy(snk);
    srv_stop(s);
}

static void test_sink_poll__401_stops(void **state)
{
    const struct step script[] = {{401, NULL, 0, "{\"message\":\"bad id\"}"}};
    struct srv *s = srv_start(script, 1);
    struct sink_config cfg;
    struct rec r;
    struct sink *snk;

    (void)state;
    memset(&r, 0, sizeof(r));
    sink_config_init(&cfg);
    cfg.batch_linger_ms = 0;
    /* one lane, one request: with several, the others may be answered
     * (by the script's default 201) and settle before the 401 arrives */
    cfg.max_in_flight = 1;
    snk = open_sink(&cfg, &r, s->port);
    add_events(snk, 4, NULL, 0);
    assert_int_equal(run(snk, 10000), CORE_ERR_STOP);
    assert_non_null(strstr(sink_error(snk), "moesif.application_id"));
    assert_null(strstr(sink_error(snk), APP_ID));
    assert_int_equal(r.n_done + r.n_refused, 0);
    sink_destroy(snk);
    srv_stop(s);
}

static int setup(void **state)
{
    (void)state;
    /* libcurl honours proxy variables: a proxy of the machine running the
     * tests must not sit between the sink and 127.0.0.1 */
    setenv("no_proxy", "127.0.0.1", 1);
    setenv("NO_PROXY", "127.0.0.1", 1);
    /* STYLE.md section 9: first, in main */
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sink_poll__sends_headers_and_gzip_body),
        cmocka_unit_test(test_sink_poll__sends_plain_body_without_gzip),
        cmocka_unit_test(test_sink_poll__keeps_connections_alive),
        cmocka_unit_test(
            test_sink_poll__503_then_201_honours_retry_after_seconds),
        cmocka_unit_test(test_sink_poll__503_then_201_honours_retry_after_date),
        cmocka_unit_test(test_sink_poll__503_then_201_without_retry_after),
        cmocka_unit_test(test_sink_poll__a_timeout_is_retried),
        cmocka_unit_test(
            test_sink_poll__a_refused_connection_is_retried_up_to_retry_max),
        cmocka_unit_test(test_sink_poll__refusal_keeps_512_bytes_of_the_answer),
        cmocka_unit_test(test_sink_poll__401_stops),
    };
    return cmocka_run_group_tests_name("sink_http", tests, setup, teardown);
}
