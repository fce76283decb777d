/*
 * http.c: the real transport of sink_int.h, libcurl's multi interface.
 *
 * One easy handle per lane, made once and reused, all on one multi
 * handle: the multi handle's connection cache keeps connections alive
 * between a lane's requests, so a steady pipeline over HTTP/1.1 opens
 * max_in_flight connections and then none (over HTTP/2, which libcurl
 * negotiates with TLS when the server offers it, the lanes' requests
 * share connections as streams).  It is separate from sink.c so the sink is
 * tested with a scripted transport and only this file needs a socket.
 *
 * Invariants not to break:
 * - the application id is a header like any other here: never turn on
 *   CURLOPT_VERBOSE or log a header line, a URL's userinfo, or a body;
 *   curl_slist_append copies each header, so a lane's list is wiped
 *   (explicit_bzero) before it is freed: free_headers, never
 *   curl_slist_free_all directly;
 * - a lane's request body is borrowed from the sink until its completion
 *   is returned (CURLOPT_POSTFIELDS does not copy);
 * - the sink waits only in poll: start never blocks;
 * - egress (issue 22): the CA, client certificate and proxy of the
 *   configuration are set on every easy handle when it is made; with
 *   moesif.proxy set, that proxy is used for every host (CURLOPT_NOPROXY
 *   "" overrides NO_PROXY) through a CONNECT tunnel, and without it
 *   libcurl reads its environment variables (https_proxy, HTTPS_PROXY,
 *   http_proxy, NO_PROXY) as curl(1) does;
 * - a TLS failure that no retry can mend (a certificate that does not
 *   verify, our own certificate refused) is told apart here, from
 *   libcurl's code and error text (sink_http_classify), and the policy
 *   table stops on it.
 */
#include "sink_int.h"
#include "../core/version.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct http_lane {
    CURL *easy;
    struct curl_slist *headers;
    /* what headers and CURLOPT_URL were built from: the sink passes the
     * same url and header array, alive as long as it is, with every
     * request, so a lane builds them once (issue 12: they were built for
     * every request) and again only if the pointers change */
    const char *url_src;
    const char *const *headers_src;
    size_t n_headers_src;
    unsigned index;
    int busy;
    size_t body_len;
    char body[SINK_BODY_SNIPPET_MAX];
    char errbuf[CURL_ERROR_SIZE];
};

struct http {
    CURLM *multi;
    struct http_lane *lanes;
    unsigned n_lanes;
    /* moesif.proxy, redacted, for the detail of a connection error; empty
     * without one */
    char proxy_shown[200];
};

/* Keeps the first SINK_BODY_SNIPPET_MAX bytes of the answer, drops the
 * rest: the snippet is for the dead-letter record, and an answer's size is
 * the server's choice, so nothing more is held. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct http_lane *hl = userdata;
    size_t n = size * nmemb;
    size_t room = sizeof(hl->body) - hl->body_len;
    size_t take = n < room ? n : room;

    memcpy(hl->body + hl->body_len, data, take);
    hl->body_len += take;
    return n;
}

/* Frees a lane's header list, wiping each copy first: one of them holds
 * the application id, and a plain free leaves it in the heap for a core
 * dump or a later allocation to show (issue 11). */
static void free_headers(struct curl_slist *headers)
{
    for (struct curl_slist *l = headers; l != NULL; l = l->next) {
        explicit_bzero(l->data, strlen(l->data));
    }
    curl_slist_free_all(headers);
}

static void http_destroy(void *tp)
{
    struct http *h = tp;

    if (h == NULL) {
        return;
    }
    for (unsigned i = 0; h->lanes != NULL && i < h->n_lanes; i++) {
        struct http_lane *hl = &h->lanes[i];
        if (hl->easy != NULL) {
            if (hl->busy) {
                curl_multi_remove_handle(h->multi, hl->easy);
            }
            curl_easy_cleanup(hl->easy);
        }
        free_headers(hl->headers);
    }
    if (h->multi != NULL) {
        curl_multi_cleanup(h->multi);
    }
    free(h->lanes);
    free(h);
}

/* Sets the egress options of cfg on one easy handle.  libcurl copies
 * every string (CURLOPT_* strings, since 7.17). */
static void set_egress(CURL *easy, const struct sink_config *cfg)
{
    if (cfg->ca_file != NULL) {
        curl_easy_setopt(easy, CURLOPT_CAINFO, cfg->ca_file);
    }
    if (cfg->ca_path != NULL) {
        curl_easy_setopt(easy, CURLOPT_CAPATH, cfg->ca_path);
    }
    if (cfg->client_cert != NULL) {
        curl_easy_setopt(easy, CURLOPT_SSLCERT, cfg->client_cert);
        curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (cfg->client_key != NULL) {
        curl_easy_setopt(easy, CURLOPT_SSLKEY, cfg->client_key);
        curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (cfg->client_key_password != NULL) {
        curl_easy_setopt(easy, CURLOPT_KEYPASSWD, cfg->client_key_password);
    }
    if (cfg->proxy != NULL) {
        curl_easy_setopt(easy, CURLOPT_PROXY, cfg->proxy);
        /* a tunnel for http:// too: the proxy sees the host, never a
         * request line, a header or a body */
        curl_easy_setopt(easy, CURLOPT_HTTPPROXYTUNNEL, 1L);
        /* the key is the operator's word for this process: NO_PROXY of
         * the environment does not bypass it */
        curl_easy_setopt(easy, CURLOPT_NOPROXY, "");
    }
}

enum core_err sink_http_new(const struct sink_config *cfg, void **out,
                            char *errstr, size_t errstr_size)
{
    struct http *h = core_calloc(1, sizeof(*h));
    unsigned n_lanes = cfg->max_in_flight;
    enum core_err rc = CORE_OK;

    *out = NULL;
    h->n_lanes = n_lanes;
    h->lanes = core_calloc(n_lanes, sizeof(*h->lanes));
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        snprintf(errstr, errstr_size, "libcurl could not make a multi handle");
        rc = CORE_ERR_USAGE;
        goto out;
    }
    if (cfg->proxy != NULL) {
        core_url_redact(cfg->proxy, h->proxy_shown, sizeof(h->proxy_shown));
    }
    /* one cached connection per lane is all that is ever reused */
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)n_lanes);
    for (unsigned i = 0; i < n_lanes; i++) {
        struct http_lane *hl = &h->lanes[i];
        CURL *easy = curl_easy_init();

        if (easy == NULL) {
            snprintf(errstr, errstr_size,
                     "libcurl could not make an easy handle");
            rc = CORE_ERR_USAGE;
            goto out;
        }
        hl->easy = easy;
        hl->index = i;
        /* single-threaded and no signals: libcurl's resolver must not use
         * SIGALRM (libcurl's advice for multi-threaded or event-loop use) */
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_POST, 1L);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, hl);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, hl);
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, hl->errbuf);
        curl_easy_setopt(easy, CURLOPT_USERAGENT, USERPIPE_USER_AGENT);
        curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
        /* redirects are a configuration error for the policy table */
        curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
        set_egress(easy, cfg);
    }
out:
    if (rc != CORE_OK) {
        http_destroy(h);
        return rc;
    }
    *out = h;
    return CORE_OK;
}

static enum core_err http_start(void *tp, unsigned lane,
                                const struct sink_request *req)
{
    struct http *h = tp;
    struct http_lane *hl = &h->lanes[lane];
    CURL *easy = hl->easy;

    if (hl->headers == NULL || hl->url_src != req->url ||
        hl->headers_src != req->headers ||
        hl->n_headers_src != req->n_headers) {
        struct curl_slist *headers = NULL;

        for (size_t i = 0; i < req->n_headers; i++) {
            headers = curl_slist_append(headers, req->headers[i]);
        }
        /* no "Expect: 100-continue" round trip before large bodies: the
         * server answers the request anyway, and a wait per batch (up to
         * 1 s, CURLOPT_EXPECT_100_TIMEOUT_MS) would cap throughput */
        headers = curl_slist_append(headers, "Expect:");
        if (headers == NULL) {
            return CORE_ERR_RETRY;
        }
        free_headers(hl->headers);
        hl->headers = headers;
        /* libcurl copies the URL; options stay set between transfers */
        curl_easy_setopt(easy, CURLOPT_URL, req->url);
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
        hl->url_src = req->url;
        hl->headers_src = req->headers;
        hl->n_headers_src = req->n_headers;
    }
    hl->body_len = 0;
    hl->errbuf[0] = '\0';
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)req->body_len);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    if (curl_multi_add_handle(h->multi, easy) != CURLM_OK) {
        return CORE_ERR_RETRY;
    }
    hl->busy = 1;
    return CORE_OK;
}

/* Whether errbuf holds one of needles. */
static int has_any(const char *errbuf, const char *const *needles)
{
    for (size_t i = 0; needles[i] != NULL; i++) {
        if (strstr(errbuf, needles[i]) != NULL) {
            return 1;
        }
    }
    return 0;
}

enum sink_tp_error sink_http_classify(int curl_code, const char *errbuf)
{
    /* OpenSSL's text of a TLS alert the server sent ("tlsv13 alert
     * certificate required", "tlsv1 alert unknown ca", "sslv3 alert bad
     * certificate", "sslv3 alert handshake failure", "tlsv1 alert protocol
     * version"), and of a server that does not speak TLS at all; an alert
     * about the server's own trouble ("internal error") is not here */
    static const char *const refused[] = {"alert certificate",
                                          "alert bad certificate",
                                          "alert unknown ca",
                                          "alert unsupported certificate",
                                          "alert access denied",
                                          "alert handshake failure",
                                          "alert protocol version",
                                          "alert insufficient security",
                                          "alert decrypt error",
                                          "wrong version number",
                                          "packet length too long",
                                          "certificate required",
                                          NULL};
    CURLcode res = (CURLcode)curl_code;

    switch (res) {
    case CURLE_OK:
        return SINK_TP_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return SINK_TP_TIMEOUT;
    case CURLE_PEER_FAILED_VERIFICATION: /* = CURLE_SSL_CACERT since 7.62 */
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return SINK_TP_TLS_VERIFY;
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
        return SINK_TP_TLS_LOCAL;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        /* the handshake's own failures are final; a connection reset or
         * closed mid-handshake (SSL_ERROR_SYSCALL, "unexpected eof") is a
         * broken connection like any other, retried */
        if (errbuf != NULL && has_any(errbuf, refused)) {
            return SINK_TP_TLS_PEER;
        }
        return SINK_TP_CONNECT;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return SINK_TP_CONNECT;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return SINK_TP_FATAL;
    default:
        return SINK_TP_OTHER;
    }
}

static void complete(const struct http *h, struct http_lane *hl, CURLcode res,
                     struct sink_completion *c)
{
    long status = 0;
    curl_off_t retry_after = 0;

    memset(c, 0, offsetof(struct sink_completion, body));
    c->lane = hl->index;
    c->retry_after_ms = -1;
    c->detail[0] = '\0';
    c->body_len = hl->body_len;
    memcpy(c->body, hl->body, hl->body_len);
    if (res != CURLE_OK) {
        long connect_code = 0;
        const char *text =
            hl->errbuf[0] != '\0' ? hl->errbuf : curl_easy_strerror(res);

        c->err = sink_http_classify(res, hl->errbuf);
        /* the proxy's own answer to CONNECT: 407 (401 from tinyproxy
         * 1.11) wants credentials, any other 4xx refuses the destination;
         * both are the proxy's configuration (a 5xx, the proxy failing to
         * reach Moesif, stays a connection error) */
        if (curl_easy_getinfo(hl->easy, CURLINFO_HTTP_CONNECTCODE,
                              &connect_code) == CURLE_OK &&
            connect_code >= 400 && connect_code < 500) {
            c->err = connect_code == 407 || connect_code == 401
                         ? SINK_TP_PROXY_AUTH
                         : SINK_TP_PROXY_DENIED;
        }
        /* libcurl's error buffer names host and port at most, never
         * headers or a URL's userinfo: safe to log.  A connection error
         * with moesif.proxy set is first the proxy's: say which */
        if (h->proxy_shown[0] != '\0' && c->err != SINK_TP_TLS_VERIFY &&
            c->err != SINK_TP_TLS_PEER && c->err != SINK_TP_TLS_LOCAL) {
            snprintf(c->detail, sizeof(c->detail),
                     "%.150s, through moesif.proxy %.80s", text,
                     h->proxy_shown);
        } else {
            snprintf(c->detail, sizeof(c->detail), "%s", text);
        }
        return;
    }
    curl_easy_getinfo(hl->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status == 0) {
        c->err = SINK_TP_OTHER;
        snprintf(c->detail, sizeof(c->detail), "no HTTP status in the answer");
        return;
    }
    c->err = SINK_TP_OK;
    c->status = status;
    /* libcurl parses both forms, delay-seconds and HTTP-date (as seconds
     * from now); 0 is "absent", so "Retry-After: 0" means our backoff */
    if (curl_easy_getinfo(hl->easy, CURLINFO_RETRY_AFTER, &retry_after) ==
            CURLE_OK &&
        retry_after > 0) {
        /* clamped before the multiplication: the header is the server's
         * text, and "Retry-After: 9300000000000000" would overflow */
        c->retry_after_ms = retry_after > SINK_RETRY_AFTER_MAX_MS / 1000
                                ? SINK_RETRY_AFTER_MAX_MS
                                : (int64_t)retry_after * 1000;
    }
}

static size_t drain(struct http *h, struct sink_completion *out, size_t max)
{
    size_t n = 0;
    CURLMsg *msg;
    int left;

    while (n < max) {
        struct http_lane *hl;
        char *priv = NULL;

        msg = curl_multi_info_read(h->multi, &left);
        if (msg == NULL) {
            break;
        }
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        hl = (struct http_lane *)(void *)priv;
        complete(h, hl, msg->data.result, &out[n++]);
        /* msg is invalid once its handle is removed: read it first */
        curl_multi_remove_handle(h->multi, hl->easy);
        hl->busy = 0;
    }
    return n;
}

static size_t http_poll(void *tp, int timeout_ms, struct sink_completion *out,
                        size_t max)
{
    struct http *h = tp;
    int running = 0;
    size_t n;

    curl_multi_perform(h->multi, &running);
    n = drain(h, out, max);
    if (n > 0 || timeout_ms <= 0) {
        return n;
    }
    /* waits even with no transfer (unlike curl_multi_wait): the sink's
     * wait for linger and backoff deadlines is this one */
    curl_multi_poll(h->multi, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(h->multi, &running);
    return drain(h, out, max);
}

static uint64_t http_now_ms(void *tp)
{
    (void)tp;
    return (uint64_t)core_now_ms();
}

const struct sink_transport_ops sink_http_ops = {
    http_start,
    http_poll,
    http_now_ms,
    http_destroy,
};
