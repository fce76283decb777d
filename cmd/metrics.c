/*
 * metrics.c: the observability endpoint (see metrics.h): /metrics,
 * /healthz and /readyz, served by libmicrohttpd's own polling thread on
 * metrics.listen; the text of /metrics comes from metrics_format.c.
 *
 * It is separate from the pipeline because it runs on another thread: the
 * pipeline publishes a snapshot of its counters, the HTTP thread formats
 * the last one.  The invariant not to break: the two threads share only
 * `snap` and `published`, and only under `mu`, which each side holds for
 * one bounded copy (never while formatting or doing I/O), so a slow scrape
 * can never stall the pipeline.  Every body is built into a buffer whose
 * size is computed from the snapshot before formatting starts
 * (metrics_format_bound).
 */
#include "metrics.h"
#include "../core/core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * Probes and scrapers are few: a kubelet's two probes and one or two
 * Prometheus servers.  32 connections of MHD's default 32 KiB pool each
 * bound the memory an unexpected client can take.
 */
#define METRICS_CONNECTION_LIMIT 32
/* Prometheus' default scrape_timeout is 10 s; an idle client goes then. */
#define METRICS_CONNECTION_TIMEOUT_S 10

#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"
/* The exposition format 0.0.4 (Prometheus docs, "Exposition formats"). */
#define CONTENT_TYPE_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"

struct metrics {
    struct MHD_Daemon *d;
    unsigned port;
    int mu_ready; /* mu was initialised (destroy accepts half-built) */
    pthread_mutex_t mu;
    /* under mu: */
    int published;       /* a snapshot was published */
    double published_at; /* CLOCK_MONOTONIC seconds of the last one */
    struct metrics_snapshot snap;
};

/* ---- the snapshot ------------------------------------------------------ */

/*
 * Copies a snapshot without the unused tail of parts[] (36 KiB when every
 * slot is copied; a consumer usually has a handful of partitions), so the
 * time either side holds the mutex follows the partitions in use.
 */
static void snap_copy(struct metrics_snapshot *dst,
                      const struct metrics_snapshot *src)
{
    size_t n = src->nparts;

    if (n > METRICS_MAX_PARTITIONS) {
        n = METRICS_MAX_PARTITIONS;
    }
    memcpy(dst, src, offsetof(struct metrics_snapshot, parts));
    memcpy(dst->parts, src->parts, n * sizeof(dst->parts[0]));
    dst->nparts = n;
    dst->moesif_reachable = src->moesif_reachable;
}

void metrics_publish(struct metrics *m, const struct metrics_snapshot *snap)
{
    if (m == NULL) {
        return; /* metrics.listen=off */
    }
    pthread_mutex_lock(&m->mu);
    snap_copy(&m->snap, snap);
    m->published = 1;
    m->published_at = ((double)core_now_ms() / 1000.0);
    pthread_mutex_unlock(&m->mu);
}

/* ---- HTTP -------------------------------------------------------------- */

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status,
                             struct MHD_Response *resp, const char *type)
{
    enum MHD_Result r;

    if (resp == NULL) {
        return MHD_NO; /* MHD could not allocate: it drops the connection */
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        /* RFC 9110 15.5.6: a 405 lists the methods the resource allows */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* A constant text answer. */
static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status,
                                  const char *text)
{
    return queue(conn, status,
                 MHD_create_response_from_buffer(strlen(text), (void *)text,
                                                 MHD_RESPMEM_PERSISTENT),
                 CONTENT_TYPE_TEXT);
}

/* /healthz: alive as long as the pipeline's loop publishes.  The loop
 * publishes 4 times a second and turns at least every 100 ms; a rebalance
 * may hold it for up to shutdown.drain_timeout_ms (30 s by default), so a
 * loop silent for HEALTHZ_STALL_S is stuck and the probe says so. */
#define HEALTHZ_STALL_S 120

static enum MHD_Result serve_healthz(struct metrics *m,
                                     struct MHD_Connection *conn)
{
    double age;
    int published;

    pthread_mutex_lock(&m->mu);
    published = m->published;
    age = ((double)core_now_ms() / 1000.0) - m->published_at;
    pthread_mutex_unlock(&m->mu);
    if (published && age > HEALTHZ_STALL_S) {
        return queue_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "unhealthy: the pipeline loop has not run for "
                          "over 120 s\n");
    }
    return queue_text(conn, MHD_HTTP_OK, "ok\n");
}

static enum MHD_Result serve_readyz(struct metrics *m,
                                    struct MHD_Connection *conn)
{
    int published, assigned, reachable;

    pthread_mutex_lock(&m->mu);
    published = m->published;
    assigned = m->snap.assigned > 0;
    reachable = m->snap.moesif_reachable != 0;
    pthread_mutex_unlock(&m->mu);

    if (!published) {
        return queue_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "not ready: the pipeline has not started\n");
    }
    if (!assigned && !reachable) {
        return queue_text(
            conn, MHD_HTTP_SERVICE_UNAVAILABLE,
            "not ready: no partition assigned; Moesif unreachable\n");
    }
    if (!assigned) {
        return queue_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "not ready: no partition assigned\n");
    }
    if (!reachable) {
        return queue_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "not ready: Moesif unreachable\n");
    }
    return queue_text(conn, MHD_HTTP_OK, "ready\n");
}

static enum MHD_Result serve_metrics(struct metrics *m,
                                     struct MHD_Connection *conn)
{
    struct metrics_snapshot *snap = core_malloc(sizeof(*snap));
    struct MHD_Response *resp;
    size_t cap, len;
    char *body;

    pthread_mutex_lock(&m->mu);
    snap_copy(snap, &m->snap);
    pthread_mutex_unlock(&m->mu);

    cap = metrics_format_bound(snap);
    body = core_malloc(cap);
    len = metrics_format(snap, body, cap);
    free(snap);
    if (len == 0) {
        /* metrics_format_bound() is wrong: a bug, but not one to stop the
         * pipeline */
        free(body);
        core_log(CORE_LOG_ERROR, "metrics",
                 "msg=\"the /metrics body outgrew its bound\"");
        return queue_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                          "the metrics body outgrew its bound\n");
    }
    resp = MHD_create_response_from_buffer_with_free_callback(len, body, free);
    if (resp == NULL) {
        free(body);
    }
    return queue(conn, MHD_HTTP_OK, resp, CONTENT_TYPE_PROMETHEUS);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct metrics *m = cls;

    (void)version;
    (void)upload_data;
    /*
     * A method no endpoint allows is refused on the first call, before
     * any request body is read; MHD then closes the connection.  HEAD is
     * served as GET without the body (MHD drops it), as RFC 9110 9.1 asks
     * of every server.
     */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return queue_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                          "method not allowed\n");
    }
    /*
     * Otherwise answer once the request is complete: MHD closes the
     * connection after an answer queued on the first call (measured with
     * 0.9.75), and Prometheus keeps its connection between scrapes.  A
     * body sent with GET is read and dropped, so it costs no memory.
     */
    if (*req_cls == NULL) {
        *req_cls = m;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/metrics") == 0) {
        return serve_metrics(m, conn);
    }
    if (strcmp(url, "/readyz") == 0) {
        return serve_readyz(m, conn);
    }
    if (strcmp(url, "/healthz") == 0) {
        return serve_healthz(m, conn);
    }
    return queue_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* ---- construction ------------------------------------------------------ */

/* Parses "HOST:PORT" (an IPv4 dotted quad or localhost; port 0..65535). */
static enum core_err parse_listen(const char *listen, struct sockaddr_in *sa,
                                  char *errstr, size_t errstr_size)
{
    static const char hint[] =
        "write HOST:PORT with an IPv4 address or localhost, such as "
        "127.0.0.1:9464, or off";
    const char *colon = strrchr(listen, ':');
    const char *port_text;
    char host[sizeof("255.255.255.255")];
    size_t host_len;
    unsigned long port = 0;

    if (colon == NULL) {
        snprintf(errstr, errstr_size, "metrics.listen: \"%s\" has no port; %s",
                 listen, hint);
        return CORE_ERR_USAGE;
    }
    host_len = (size_t)(colon - listen);
    if (host_len == 0 || host_len >= sizeof(host)) {
        goto bad_host;
    }
    memcpy(host, listen, host_len);
    host[host_len] = '\0';
    if (strcmp(host, "localhost") == 0) {
        snprintf(host, sizeof(host), "127.0.0.1");
    }
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    /* inet_pton takes exactly four decimal parts, unlike inet_aton */
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        goto bad_host;
    }

    port_text = colon + 1;
    if (*port_text == '\0' || strlen(port_text) > 5) {
        goto bad_port;
    }
    for (const char *p = port_text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            goto bad_port;
        }
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535) {
        goto bad_port;
    }
    sa->sin_port = htons((uint16_t)port);
    return CORE_OK;

bad_host:
    snprintf(errstr, errstr_size,
             "metrics.listen: the host of \"%s\" is not an IPv4 address or "
             "localhost; %s",
             listen, hint);
    return CORE_ERR_USAGE;
bad_port:
    snprintf(errstr, errstr_size,
             "metrics.listen: the port of \"%s\" is not a number from 0 to "
             "65535; %s",
             listen, hint);
    return CORE_ERR_USAGE;
}

/* What to do about a failed bind, by its errno. */
static const char *listen_advice(int err)
{
    switch (err) {
    case EADDRINUSE:
    case EACCES:
        return "choose another port or set metrics.listen=off";
    case EADDRNOTAVAIL:
        return "choose an address of this host or set metrics.listen=off";
    default:
        return "check the address or set metrics.listen=off";
    }
}

/* A listening TCP socket on sa, or -1 with *err the errno of the step
 * that failed. */
static int open_listener(const struct sockaddr_in *sa, int *err)
{
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 ||
        listen(fd, 32) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

enum core_err metrics_new(const char *listen, struct metrics **out,
                          char *errstr, size_t errstr_size)
{
    struct metrics *m = NULL;
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *info;
    enum core_err rc;
    char reason[128];
    int err, fd;

    *out = NULL;
    if (strcmp(listen, "off") == 0) {
        return CORE_OK;
    }
    rc = parse_listen(listen, &sa, errstr, errstr_size);
    if (rc != CORE_OK) {
        goto out;
    }

    m = core_calloc(1, sizeof(*m));
    /* glibc's default mutex cannot fail to initialise; anything else is
     * out of memory, which aborts (STYLE 3) */
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        abort();
    }
    m->mu_ready = 1;

    /*
     * The socket is bound here, not by MHD: bind()'s errno is then ours to
     * read.  MHD reports no cause when it fails to bind, and what errno it
     * leaves differs by version (0.9.75 kept bind()'s EADDRINUSE; 1.0.1
     * of Debian 13 says EBADF), so a port in use would be misreported.
     * MHD closes the socket in MHD_stop_daemon.
     */
    fd = open_listener(&sa, &err);
    if (fd < 0) {
        if (strerror_r(err, reason, sizeof(reason)) != 0) {
            snprintf(reason, sizeof(reason), "error %d", err);
        }
        snprintf(errstr, errstr_size,
                 "metrics.listen: cannot listen on %s: %s; %s", listen, reason,
                 listen_advice(err));
        rc = CORE_ERR_USAGE;
        goto out;
    }
    /*
     * MHD_USE_AUTO picks epoll on Linux: plain select() would fail once
     * librdkafka's sockets push our descriptors past FD_SETSIZE (1024).
     * MHD_USE_ERROR_LOG stays off: a failure comes back as errstr.
     */
    m->d = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, on_request, m,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)METRICS_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)METRICS_CONNECTION_TIMEOUT_S, MHD_OPTION_END);
    if (m->d == NULL) {
        /* the socket is left open: whether MHD closed it on its way out
         * differs by version, and other threads (librdkafka's) may have
         * been given its number since; this path ends the process */
        snprintf(errstr, errstr_size,
                 "metrics.listen: cannot listen on %s: the HTTP server did "
                 "not start; check the address or set metrics.listen=off",
                 listen);
        rc = CORE_ERR_USAGE;
        goto out;
    }
    info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info != NULL ? info->port : ntohs(sa.sin_port);
    *out = m;
    m = NULL;

out:
    metrics_destroy(m);
    return rc;
}

unsigned metrics_port(const struct metrics *m)
{
    return m != NULL ? m->port : 0;
}

void metrics_destroy(struct metrics *m)
{
    if (m == NULL) {
        return;
    }
    if (m->d != NULL) {
        MHD_stop_daemon(m->d); /* joins the HTTP thread */
    }
    if (m->mu_ready) {
        pthread_mutex_destroy(&m->mu);
    }
    free(m);
}
