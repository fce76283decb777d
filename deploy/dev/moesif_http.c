/*
 * moesif_http.c: moesif-dev's libmicrohttpd side: routes, request
 * bodies, gunzip, the answers, and the /_dev endpoints.
 *
 * The hot path is POST /v1/users/batch on a kept-alive connection.  One
 * libmicrohttpd thread (epoll) reads it; once its body is complete the
 * connection is suspended and a worker of moesif_pool.c does the work.
 * Each TCP connection owns one struct mconn (created on libmicrohttpd's
 * connection notification) whose buffers, tape, yajl handle and
 * libdeflate decompressor are reused by every request on it, and the 201
 * answer is one response object shared by all requests, so a request
 * that succeeds allocates nothing once the connection has warmed up.
 *
 * Order of judgement for /v1: a fixed --status, then the drawn faults,
 * then the application id (401), the content encoding (415), the body
 * size (413), gunzip and JSON (400, with the refuse_user fault, which the
 * parse finds); only then the store.  A faulted
 * request has its body read and thrown away, so the connection stays
 * usable, as behind Moesif's own load balancers.
 */
#include "moesif_dev.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <libdeflate.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_gen.h>
#include <zlib.h>

enum mroute {
    MROUTE_NOT_FOUND = 0,
    MROUTE_BAD_METHOD,
    MROUTE_USERS,
    MROUTE_BATCH,
    MROUTE_DEV_USER,
    MROUTE_DEV_STATS,
    MROUTE_DEV_TIMELINE,
    MROUTE_DEV_TYPES,
    MROUTE_DEV_FAULTS,
    MROUTE_DEV_RESET
};

struct mbuf {
    char *p;
    size_t len;
    size_t cap;
};

/* buffers above this are given back after their request */
#define MHTTP_KEEP_BYTES (8u << 20)

struct mconn {
    struct mjob job; /* first: the pool hands back this pointer */
    struct mserver *srv;
    struct MHD_Connection *conn;
    /* the request in progress */
    enum mroute route;
    unsigned status; /* decided before the body: 0, or the answer */
    bool injected;   /* status came from the fault settings */
    bool gzip;
    bool too_large;
    bool tls_client_ok; /* --tls-client-ca: verified on this connection */
    struct mverdict verdict;
    size_t wire_len; /* body bytes received */
    struct mbuf body;
    struct mbuf plain;
    struct mtape tape;
    struct libdeflate_decompressor *dec;
    /* an answer kept while the connection is parked for latency */
    struct MHD_Response *resp;
    unsigned resp_status;
};

struct mserver {
    struct mserver_config cfg;
    struct mstore *st;
    struct mfaults *flt;
    struct mdelay *dly;
    struct mpool *pool;
    struct MHD_Daemon *d;
    struct MHD_Response *created; /* the shared 201 answer */
    _Atomic uint64_t refusals;
    int64_t started_ms;
};

static const char created_body[] = "{\"status\":\"created\"}";

/* ------------------------------------------------------------------ */
/* answers                                                            */

/* The one JSON escaper of moesif-dev (moesif_dev.h). */
size_t mjson_escape(char *out, size_t size, const char *s)
{
    size_t n = 0;

    for (; *s != '\0' && n + 7 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, size - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return n;
}

static struct MHD_Response *json_response(const char *body, size_t len,
                                          enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, mode);

    if (resp == NULL) {
        fprintf(stderr, "moesif-dev: out of memory creating a response\n");
        abort();
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return resp;
}

/* A response that takes ownership of body (malloc'd). */
static struct MHD_Response *json_take(char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(len, body, free);

    if (resp == NULL) {
        fprintf(stderr, "moesif-dev: out of memory creating a response\n");
        abort();
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return resp;
}

static struct MHD_Response *error_response(const char *code,
                                           const char *message)
{
    char esc[600];
    char body[800];
    int n;

    mjson_escape(esc, sizeof(esc), message);
    n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}",
                 code, esc);
    return json_response(body, (size_t)n, MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result queue(struct mconn *mc, struct MHD_Connection *conn,
                             unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result r = MHD_queue_response(conn, status, resp);

    if (resp != mc->srv->created) {
        MHD_destroy_response(resp);
    }
    return r;
}

/* The 400 of the refuse_user fault.  Its shape is not the CODE/message
 * pair of the other 400s: the error itself names the user, so that a log
 * line or dead-letter header quoting only "error" still shows which. */
static struct MHD_Response *refused_user_response(const struct mverdict *v)
{
    char esc[6 * MFAULTS_USER_MAX + 8];
    char body[sizeof(esc) + 96];
    int n;

    mjson_escape(esc, sizeof(esc), v->refuse_user);
    n = snprintf(body, sizeof(body),
                 "{\"error\":\"user '%s' refused by the dev server "
                 "(refuse_user)\"}",
                 esc);
    return json_response(body, (size_t)n, MHD_RESPMEM_MUST_COPY);
}

/* The answer of a /v1 request that does not reach the store. */
static struct MHD_Response *status_response(struct mconn *mc, unsigned status)
{
    struct MHD_Response *resp;
    char msg[160];

    if (mc->injected) {
        snprintf(msg, sizeof(msg),
                 "moesif-dev injected this %u (see /_dev/faults)", status);
        resp = error_response("injected_fault", msg);
    } else if (status == MHD_HTTP_UNAUTHORIZED) {
        resp = error_response("unauthorized",
                              "missing or wrong X-Moesif-Application-Id");
    } else if (status == MHD_HTTP_UNSUPPORTED_MEDIA_TYPE) {
        resp = error_response("unsupported_encoding",
                              "Content-Encoding must be gzip or identity");
    } else if (status == MHD_HTTP_CONTENT_TOO_LARGE) {
        snprintf(msg, sizeof(msg), "the body is larger than %zu bytes",
                 mc->srv->cfg.max_body_bytes);
        resp = error_response("too_large", msg);
    } else {
        resp = error_response("error", "request failed");
    }
    if (status == MHD_HTTP_TOO_MANY_REQUESTS ||
        status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%u", mc->verdict.retry_after_s);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    return resp;
}

/* ------------------------------------------------------------------ */
/* request bodies                                                     */

static void buf_reserve(struct mbuf *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 64 * 1024;

    if (need <= b->cap) {
        return;
    }
    while (cap < need) {
        cap *= 2;
    }
    b->p = core_realloc(b->p, cap);
    b->cap = cap;
}

static void buf_trim(struct mbuf *b)
{
    if (b->cap > MHTTP_KEEP_BYTES) {
        free(b->p);
        memset(b, 0, sizeof(*b));
    }
}

/* Inflates any sequence of gzip members with zlib, for the bodies the
 * fast path below does not take.  Returns 0, 400 or 413. */
static unsigned gunzip_slow(struct mconn *mc)
{
    size_t max = mc->srv->cfg.max_body_bytes;
    z_stream zs;
    int zr = Z_OK;
    unsigned status = 0;

    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        return MHD_HTTP_BAD_REQUEST;
    }
    zs.next_in = (Bytef *)mc->body.p;
    zs.avail_in = (uInt)mc->body.len;
    mc->plain.len = 0;
    for (;;) {
        if (mc->plain.len == mc->plain.cap) {
            if (mc->plain.cap > max) {
                status = MHD_HTTP_CONTENT_TOO_LARGE;
                break;
            }
            buf_reserve(&mc->plain, mc->plain.cap + 1);
        }
        zs.next_out = (Bytef *)mc->plain.p + mc->plain.len;
        zs.avail_out = (uInt)(mc->plain.cap - mc->plain.len);
        zr = inflate(&zs, Z_NO_FLUSH);
        mc->plain.len = mc->plain.cap - zs.avail_out;
        if (zr == Z_STREAM_END) {
            if (zs.avail_in == 0) {
                break;
            }
            inflateReset(&zs); /* another gzip member follows */
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            status = MHD_HTTP_BAD_REQUEST;
            break;
        } else if (zr == Z_BUF_ERROR && zs.avail_in == 0) {
            status = MHD_HTTP_BAD_REQUEST; /* truncated */
            break;
        }
    }
    inflateEnd(&zs);
    if (status == 0 && mc->plain.len > max) {
        status = MHD_HTTP_CONTENT_TOO_LARGE;
    }
    return status;
}

/*
 * Gunzips the body into mc->plain.  Returns 0, 400 (not gzip) or 413.
 * The fast path is libdeflate, about twice zlib's speed, sized from the
 * gzip trailer's ISIZE; multi-member bodies and lying trailers fall back
 * to zlib.
 */
static unsigned gunzip(struct mconn *mc)
{
    const unsigned char *in = (const unsigned char *)mc->body.p;
    size_t in_len = mc->body.len;
    size_t max = mc->srv->cfg.max_body_bytes;
    size_t isize;
    size_t in_used = 0;
    size_t out_len = 0;
    enum libdeflate_result r;

    /* RFC 1952: a 10-byte header opening with 1f 8b, then at least an
     * empty deflate block and the 8-byte trailer */
    if (in_len < 18 || in[0] != 0x1f || in[1] != 0x8b) {
        return MHD_HTTP_BAD_REQUEST;
    }
    isize = (size_t)in[in_len - 4] | (size_t)in[in_len - 3] << 8 |
            (size_t)in[in_len - 2] << 16 | (size_t)in[in_len - 1] << 24;
    if (isize > max) {
        return MHD_HTTP_CONTENT_TOO_LARGE;
    }
    buf_reserve(&mc->plain, isize + 1);
    if (mc->dec == NULL) {
        mc->dec = libdeflate_alloc_decompressor();
        if (mc->dec == NULL) {
            fprintf(stderr, "moesif-dev: out of memory in libdeflate\n");
            abort();
        }
    }
    r = libdeflate_gzip_decompress_ex(mc->dec, in, in_len, mc->plain.p,
                                      mc->plain.cap, &in_used, &out_len);
    if (r == LIBDEFLATE_SUCCESS && in_used == in_len) {
        mc->plain.len = out_len;
        return 0;
    }
    if (r == LIBDEFLATE_BAD_DATA) {
        return MHD_HTTP_BAD_REQUEST;
    }
    return gunzip_slow(mc);
}

static void take(struct mconn *mc, const char *data, size_t size)
{
    size_t max = mc->srv->cfg.max_body_bytes;

    mc->wire_len += size;
    if (mc->status != 0 || mc->too_large) {
        return; /* read and dropped: the answer is already decided */
    }
    if (mc->body.len + size > max) {
        mc->too_large = true;
        return;
    }
    buf_reserve(&mc->body, mc->body.len + size);
    memcpy(mc->body.p + mc->body.len, data, size);
    mc->body.len += size;
}

/* ------------------------------------------------------------------ */
/* routing                                                            */

static bool is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static enum mroute route_of(const char *url, const char *method)
{
    bool get = is(method, MHD_HTTP_METHOD_GET);
    bool post = is(method, MHD_HTTP_METHOD_POST);

    if (is(url, "/v1/users") || is(url, "/v1/users/batch")) {
        if (!post) {
            return MROUTE_BAD_METHOD;
        }
        return is(url, "/v1/users") ? MROUTE_USERS : MROUTE_BATCH;
    }
    if (strncmp(url, "/_dev/users/", 12) == 0 && url[12] != '\0') {
        return get ? MROUTE_DEV_USER : MROUTE_BAD_METHOD;
    }
    if (is(url, "/_dev/stats")) {
        return get ? MROUTE_DEV_STATS : MROUTE_BAD_METHOD;
    }
    if (is(url, "/_dev/timeline")) {
        return get ? MROUTE_DEV_TIMELINE : MROUTE_BAD_METHOD;
    }
    if (is(url, "/_dev/types")) {
        return get ? MROUTE_DEV_TYPES : MROUTE_BAD_METHOD;
    }
    if (is(url, "/_dev/faults")) {
        return get || post ? MROUTE_DEV_FAULTS : MROUTE_BAD_METHOD;
    }
    if (is(url, "/_dev/reset")) {
        return post ? MROUTE_DEV_RESET : MROUTE_BAD_METHOD;
    }
    return MROUTE_NOT_FOUND;
}

static bool is_v1(const struct mconn *mc)
{
    return mc->route == MROUTE_USERS || mc->route == MROUTE_BATCH;
}

/* Decides what it can from the headers alone; returns a status to answer
 * at once (before the body is read), else 0. */
static unsigned begin(struct mconn *mc, struct MHD_Connection *conn,
                      const char *url, const char *method)
{
    struct mserver *srv = mc->srv;
    const char *v;

    mc->route = route_of(url, method);
    mc->status = 0;
    mc->injected = false;
    mc->gzip = false;
    mc->too_large = false;
    mc->wire_len = 0;
    mc->body.len = 0;
    mc->plain.len = 0;
    memset(&mc->verdict, 0, sizeof(mc->verdict));

    if (!is_v1(mc)) {
        return 0;
    }
    mfaults_draw(srv->flt, &mc->verdict);
    if (mc->verdict.status != 0) {
        mc->status = mc->verdict.status;
        mc->injected = true;
        return 0;
    }
    v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                    "X-Moesif-Application-Id");
    if (v == NULL || strcmp(v, srv->cfg.app_id) != 0) {
        mc->status = MHD_HTTP_UNAUTHORIZED;
        return 0;
    }
    /* so a test sees what a client announces itself as */
    mstore_note_user_agent(
        srv->st, MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                             MHD_HTTP_HEADER_USER_AGENT));
    v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (v != NULL && strcasecmp(v, "gzip") == 0) {
        mc->gzip = true;
    } else if (v != NULL && strcasecmp(v, "identity") != 0) {
        mc->status = MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
        return 0;
    }
    v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (v != NULL && strtoull(v, NULL, 10) > srv->cfg.max_body_bytes) {
        /* as nginx does: answer now and let libmicrohttpd close */
        mc->status = MHD_HTTP_CONTENT_TOO_LARGE;
        return MHD_HTTP_CONTENT_TOO_LARGE;
    }
    return 0;
}

/* Runs a /v1 request whose body is complete; returns the status and sets
 * *resp. */
static unsigned serve_v1(struct mconn *mc, struct MHD_Response **resp)
{
    struct mserver *srv = mc->srv;
    enum mparse_kind kind =
        mc->route == MROUTE_BATCH ? MPARSE_BATCH : MPARSE_SINGLE;
    const char *plain = mc->body.p;
    size_t plain_len = mc->body.len;
    unsigned status = mc->status;

    if (status == 0 && mc->too_large) {
        status = MHD_HTTP_CONTENT_TOO_LARGE;
    }
    if (status == 0 && mc->gzip) {
        status = gunzip(mc);
        plain = mc->plain.p;
        plain_len = mc->plain.len;
        if (status == MHD_HTTP_BAD_REQUEST) {
            mstore_count_request(srv->st, mc->wire_len, 0);
            *resp =
                error_response("invalid_gzip", "the body is not valid gzip");
            return status;
        }
    }
    if (status != 0) {
        mstore_count_request(srv->st, mc->wire_len, 0);
        *resp = status_response(mc, status);
        return status;
    }
    mstore_count_request(srv->st, mc->wire_len, plain_len);
    mc->tape.refuse_id = mc->verdict.refuse_user;
    mc->tape.refuse_id_len = mc->verdict.refuse_user_len;
    if (mtape_parse(&mc->tape, kind, plain != NULL ? plain : "", plain_len) !=
        0) {
        if (mc->tape.refused_user) {
            mstore_count_refused_user(srv->st);
            *resp = refused_user_response(&mc->verdict);
        } else {
            *resp = error_response(mc->tape.err_code, mc->tape.err_msg);
        }
        return MHD_HTTP_BAD_REQUEST;
    }
    mstore_apply(srv->st, &mc->tape);
    *resp = srv->created;
    return MHD_HTTP_CREATED;
}

/* ------------------------------------------------------------------ */
/* /_dev                                                              */

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *value)
{
    void **a = cls;
    struct mkv_list *l = a[0];
    char *err = a[1];

    (void)kind;
    if (err[0] != '\0') {
        return MHD_NO;
    }
    if (value == NULL) {
        value = "";
    }
    if (mkv_add(l, key, strlen(key), value, strlen(value), err, 256) != 0) {
        return MHD_NO;
    }
    return MHD_YES;
}

static void stats_extra(struct yajl_gen_t *g, void *arg)
{
    struct mserver *srv = arg;
    char num[24];
    int n;

    yajl_gen_string(g, (const unsigned char *)"refusals", 8);
    n = snprintf(num, sizeof(num), "%llu",
                 (unsigned long long)atomic_load(&srv->refusals));
    yajl_gen_number(g, num, (size_t)n);
    yajl_gen_string(g, (const unsigned char *)"uptime_ms", 9);
    n = snprintf(num, sizeof(num), "%lld",
                 (long long)(mnow_ms() - srv->started_ms));
    yajl_gen_number(g, num, (size_t)n);
}

static unsigned serve_dev(struct mconn *mc, struct MHD_Connection *conn,
                          const char *url, struct MHD_Response **resp)
{
    struct mserver *srv = mc->srv;
    char *out;
    size_t len;

    switch (mc->route) {
    case MROUTE_DEV_USER:
        out = mstore_user_json(srv->st, url + 12, strlen(url + 12), &len);
        if (out == NULL) {
            *resp = error_response("not_found", "no such user");
            return MHD_HTTP_NOT_FOUND;
        }
        *resp = json_take(out, len);
        return MHD_HTTP_OK;
    case MROUTE_DEV_STATS:
        out = mstore_stats_json(srv->st, stats_extra, srv, &len);
        *resp = json_take(out, len);
        return MHD_HTTP_OK;
    case MROUTE_DEV_TIMELINE:
        out = mstore_timeline_json(srv->st, &len);
        *resp = json_take(out, len);
        return MHD_HTTP_OK;
    case MROUTE_DEV_TYPES:
        out = mstore_types_json(srv->st, &len);
        *resp = json_take(out, len);
        return MHD_HTTP_OK;
    case MROUTE_DEV_RESET:
        mstore_reset(srv->st);
        *resp =
            json_response("{\"status\":\"reset\"}", 18, MHD_RESPMEM_PERSISTENT);
        return MHD_HTTP_OK;
    case MROUTE_DEV_FAULTS: {
        struct mkv_list l;
        char err[256] = "";
        void *a[2] = {&l, err};
        size_t i = 0;

        l.n = 0;
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg, a);
        while (i < mc->body.len && strchr(" \t\r\n", mc->body.p[i]) != NULL) {
            i++;
        }
        if (err[0] == '\0' && i < mc->body.len) {
            if (mc->body.p[i] == '{') {
                mkv_parse_json(&l, mc->body.p, mc->body.len, err, sizeof(err));
            } else {
                mkv_parse_form(&l, mc->body.p + i, mc->body.len - i, err,
                               sizeof(err));
            }
        }
        if (err[0] == '\0') {
            mfaults_update(srv->flt, &l, err, sizeof(err));
        }
        if (err[0] != '\0') {
            *resp = error_response("invalid_fault_setting", err);
            return MHD_HTTP_BAD_REQUEST;
        }
        out = mfaults_json(srv->flt, &len);
        *resp = json_take(out, len);
        if (l.n > 0) {
            core_log(CORE_LOG_INFO, "moesif-dev",
                     "msg=\"faults set\" settings=%.*s", (int)len, out);
        }
        return MHD_HTTP_OK;
    }
    case MROUTE_BAD_METHOD:
        *resp = error_response("method_not_allowed",
                               "this path does not take this method");
        return MHD_HTTP_METHOD_NOT_ALLOWED;
    default:
        *resp = error_response("not_found", "no such endpoint");
        return MHD_HTTP_NOT_FOUND;
    }
}

/* ------------------------------------------------------------------ */
/* libmicrohttpd callbacks                                            */

static void finish_request(struct mconn *mc)
{
    buf_trim(&mc->body);
    if (mc->plain.cap > MHTTP_KEEP_BYTES) {
        buf_trim(&mc->plain);
        mtape_release(&mc->tape);
        mtape_init(&mc->tape);
    }
}

/* A worker runs a /v1 request whose connection the pool suspended, keeps
 * the answer, and resumes the connection (after its latency, if any);
 * the handler, called again, queues the answer. */
static void run_job(void *arg, struct mjob *job)
{
    struct mserver *srv = arg;
    struct mconn *mc = (struct mconn *)job;
    struct MHD_Response *resp = NULL;
    unsigned status = serve_v1(mc, &resp);

    mstore_count_response(srv->st, status);
    finish_request(mc);
    mc->resp = resp;
    mc->resp_status = status;
    if (mc->verdict.latency_ms > 0 &&
        mdelay_schedule(srv->dly, mc->conn, mc->verdict.latency_ms)) {
        return;
    }
    MHD_resume_connection(mc->conn);
}

/*
 * --tls-client-ca: whether the connection's client certificate verifies
 * against the trust list (MHD_OPTION_HTTPS_MEM_TRUST).  libmicrohttpd
 * only asks for one (GNUTLS_CERT_REQUEST) and leaves the check to the
 * handler; a failed check in the handshake itself (GNUTLS_CERT_REQUIRE)
 * ends in a close with the client's last flight unread, a TCP reset
 * that loses the alert.  So the check is here, once the request is
 * read whole: a fatal alert (certificate required, or bad certificate),
 * then the close (MHD_NO), which the client sees as a TLS alert on its
 * read, as from a gateway that wants mTLS.
 */
static bool client_cert_ok(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t ts;
    unsigned list_size = 0, st = 0;

    if (ci == NULL || ci->tls_session == NULL) {
        return false;
    }
    ts = (gnutls_session_t)ci->tls_session;
    if (gnutls_certificate_get_peers(ts, &list_size) == NULL ||
        list_size == 0) {
        gnutls_alert_send(ts, GNUTLS_AL_FATAL, GNUTLS_A_CERTIFICATE_REQUIRED);
        return false;
    }
    if (gnutls_certificate_verify_peers2(ts, &st) != GNUTLS_E_SUCCESS ||
        st != 0) {
        gnutls_alert_send(ts, GNUTLS_AL_FATAL, GNUTLS_A_UNKNOWN_CA);
        return false;
    }
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct mserver *srv = cls;
    struct mconn *mc = *req_cls;
    struct MHD_Response *resp = NULL;
    unsigned status;

    (void)version;
    if (mc == NULL) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        mc = ci->socket_context;
        *req_cls = mc;
        status = begin(mc, conn, url, method);
        if (status != 0) {
            mstore_count_request(srv->st, 0, 0);
            mstore_count_response(srv->st, status);
            return queue(mc, conn, status, status_response(mc, status));
        }
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        take(mc, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (srv->cfg.tls_client_ca != NULL && !mc->tls_client_ok) {
        if (!client_cert_ok(conn)) {
            return MHD_NO; /* the alert is sent: close */
        }
        mc->tls_client_ok = true;
    }
    if (mc->resp != NULL) { /* back from its latency */
        resp = mc->resp;
        mc->resp = NULL;
        return queue(mc, conn, mc->resp_status, resp);
    }
    if (!is_v1(mc)) {
        status = serve_dev(mc, conn, url, &resp);
        finish_request(mc);
        return queue(mc, conn, status, resp);
    }
    if (mc->status == 0 && !mc->too_large &&
        mpool_submit(srv->pool, conn, &mc->job)) {
        return MHD_YES; /* run_job answers */
    }
    /* decided already (cheap), or the pool is closed: answer here */
    status = serve_v1(mc, &resp);
    mstore_count_response(srv->st, status);
    finish_request(mc);
    if (mc->verdict.latency_ms > 0) {
        mc->resp = resp;
        mc->resp_status = status;
        if (mdelay_park(srv->dly, conn, mc->verdict.latency_ms)) {
            return MHD_YES;
        }
        mc->resp = NULL; /* stopping: answer at once */
    }
    return queue(mc, conn, status, resp);
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct mserver *srv = cls;
    struct mconn *mc = *socket_context;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        mc = core_calloc(1, sizeof(*mc));
        mc->srv = srv;
        mc->conn = conn;
        mtape_init(&mc->tape);
        *socket_context = mc;
        return;
    }
    if (mc == NULL) {
        return;
    }
    if (mc->resp != NULL && mc->resp != srv->created) {
        MHD_destroy_response(mc->resp);
    }
    free(mc->body.p);
    free(mc->plain.p);
    mtape_release(&mc->tape);
    libdeflate_free_decompressor(mc->dec);
    free(mc);
    *socket_context = NULL;
}

/* ------------------------------------------------------------------ */
/* the server                                                         */

struct mserver *mserver_new(const struct mserver_config *cfg, struct mstore *st,
                            struct mfaults *flt, struct mdelay *dly)
{
    struct mserver *srv = core_calloc(1, sizeof(*srv));

    srv->cfg = *cfg;
    srv->st = st;
    srv->flt = flt;
    srv->dly = dly;
    srv->started_ms = mnow_ms();
    srv->created = json_response(created_body, sizeof(created_body) - 1,
                                 MHD_RESPMEM_PERSISTENT);
    srv->pool = mpool_new(cfg->threads, run_job, srv);
    return srv;
}

void mserver_destroy(struct mserver *srv)
{
    if (srv == NULL) {
        return;
    }
    mserver_stop(srv);
    mpool_destroy(srv->pool);
    MHD_destroy_response(srv->created);
    free(srv);
}

enum core_err mserver_start(struct mserver *srv, const char *host,
                            unsigned port, unsigned *bound_port, char *errstr,
                            size_t errstr_size)
{
    struct sockaddr_in sin;
    const union MHD_DaemonInfo *di;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG;
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &sin},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, srv},
        /* 128 KiB: libmicrohttpd's own advice for its largest useful
         * buffer; a gzipped batch of 200 users is about 20 KiB */
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 128 * 1024, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        /* HTTPS: these three are filled below, or stay END */
        {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL}};
    size_t nops = 4;

    if (srv->cfg.tls_cert != NULL) {
        /* libmicrohttpd's TLS is GnuTLS's (Debian builds it with it) */
        flags |= MHD_USE_TLS;
        ops[nops++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
                                              (void *)srv->cfg.tls_cert};
        ops[nops++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
                                              (void *)srv->cfg.tls_key};
        if (srv->cfg.tls_client_ca != NULL) {
            ops[nops++] = (struct MHD_OptionItem){
                MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)srv->cfg.tls_client_ca};
        }
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (port > 65535 || inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        snprintf(errstr, errstr_size,
                 "cannot listen on '%s:%u': give an IPv4 address and a port",
                 host, port);
        return CORE_ERR_USAGE;
    }
    mpool_open(srv->pool);
    mdelay_open(srv->dly);
    srv->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request,
                              srv, MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    if (srv->d == NULL) {
        snprintf(errstr, errstr_size, "cannot listen on '%s:%u' (port in use?)",
                 host, port);
        return CORE_ERR_IO;
    }
    di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = di != NULL ? di->port : port;
    return CORE_OK;
}

void mserver_stop(struct mserver *srv)
{
    /* time for the polling thread to send what was just resumed: ample
     * for loopback writes, and paid only on a stop */
    struct timespec grace = {0, 20 * 1000000L};

    if (srv->d == NULL) {
        return;
    }
    mpool_close(srv->pool);
    mdelay_drain(srv->dly);
    nanosleep(&grace, NULL);
    MHD_stop_daemon(srv->d);
    srv->d = NULL;
}

void mserver_count_refusal(struct mserver *srv)
{
    atomic_fetch_add(&srv->refusals, 1);
}

bool mserver_running(const struct mserver *srv)
{
    return srv->d != NULL;
}
