/*
 * policy.c: the one place that decides what an answer means.  Every HTTP
 * status and transport error a request can end with maps through the
 * table below to DONE, RETRY, SPLIT, BISECT or STOP (sink_int.h), and the
 * backoff before a retry lives beside it.  The rest of sink/ reports and
 * obeys; a status is never tested anywhere else (STYLE.md section 3).
 *
 * Sources: DESIGN.md section 4 (Moesif's documented statuses: 2xx done,
 * 400 and 422 refuse events, 401/402/403/404/405/406/410 mean the
 * configuration is wrong, 413 too large, 429/500/502/503 transient) and
 * RFC 9110 for the statuses it does not name.  Decisions where DESIGN.md
 * is silent, each argued on its row:
 * - 408 and 425 are retried: by definition the same request may succeed
 *   later;
 * - any other 4xx stops.  Moesif documents none, so it comes from
 *   something between us and Moesif (a proxy, a WAF) or a new Moesif
 *   rule.  Bisecting would dead-letter events that nothing shows to be
 *   bad, every event of the stream when the answer concerns the request
 *   (a proxy answering 418 to everything); retrying a client error spins
 *   for ever.  Stopping loses nothing (no further offset is stored) and
 *   names the status for the operator;
 * - 3xx stops: libcurl does not follow redirects here (a redirected POST
 *   may lose its body), so moesif.base_url is not the final address;
 * - 1xx as a final answer, and statuses outside 100-599, are a broken
 *   intermediary's: retried like a broken connection;
 * - TLS: a certificate that does not verify, TLS material of ours libcurl
 *   cannot load, or a server refusing our handshake with an alert stop
 *   (issue 20 item 5); the proxy refusing CONNECT with 407 or another
 *   4xx stops; an unreachable proxy is a connection error, retried like
 *   an unreachable Moesif (an outage, not a configuration).
 *
 * Invariant: the table is total.  Rows are tried in order; the last HTTP
 * row matches every status, and every transport error has a row.
 */
#include "sink_int.h"

#include <limits.h>

#define FIX_APP_ID                                                             \
    "set moesif.application_id (or the environment variable "                  \
    "MOESIF_APPLICATION_ID) to the Collector Application Id shown in "         \
    "Moesif under API Keys"
#define BASE_URL_DEFAULT "(default https://api.moesif.net)"

static const struct sink_policy_row policy[] = {
    /* transport errors: DESIGN.md "time-outs, connection errors: retried" */
    {SINK_TP_TIMEOUT, 0, 0, SINK_RETRY, NULL},
    {SINK_TP_CONNECT, 0, 0, SINK_RETRY, NULL},
    {SINK_TP_OTHER, 0, 0, SINK_RETRY, NULL},
    {SINK_TP_FATAL, 0, 0, SINK_STOP,
     "libcurl cannot send to moesif.base_url (a malformed address or an "
     "unsupported scheme): set it to an http:// or https:// "
     "address " BASE_URL_DEFAULT},
    /* TLS failures (issue 20 item 5): no retry can make a certificate
     * verify, so they stop like a wrong configuration instead of being
     * retried for ever; a connection reset mid-handshake is SINK_TP_CONNECT
     * (http.c tells them apart) */
    {SINK_TP_TLS_VERIFY, 0, 0, SINK_STOP,
     "the TLS certificate of the server at moesif.base_url does not "
     "verify: when a private CA signs it (a gateway or TLS-inspecting "
     "proxy in front of Moesif), set moesif.ca_file (or moesif.ca_path) "
     "to that CA's certificate, and check that the certificate names the "
     "host of moesif.base_url"},
    {SINK_TP_TLS_LOCAL, 0, 0, SINK_STOP,
     "libcurl cannot use this configuration's TLS files: check that "
     "moesif.ca_file holds PEM CA certificates, and that moesif.client_cert "
     "and moesif.client_key are a PEM certificate and its key "
     "(moesif.client_key_password for an encrypted key)"},
    {SINK_TP_TLS_PEER, 0, 0, SINK_STOP,
     "the server at moesif.base_url refused the TLS handshake: when it "
     "wants a client certificate, set moesif.client_cert and "
     "moesif.client_key to one signed by a CA it trusts; when it speaks "
     "plain HTTP, use http://; its own CA goes in moesif.ca_file"},
    {SINK_TP_PROXY_AUTH, 0, 0, SINK_STOP,
     "the proxy of moesif.proxy refuses its credentials: give the right "
     "ones in the URL, http://user:password@host:port, the password "
     "best as a ${file:...} or ${env:...} reference"},
    {SINK_TP_PROXY_DENIED, 0, 0, SINK_STOP,
     "the proxy of moesif.proxy refuses the tunnel to moesif.base_url's "
     "host: allow that host and port on the proxy, or set moesif.proxy to "
     "one that does"},

    /* HTTP statuses, specific rows before ranges */
    {SINK_TP_OK, 200, 299, SINK_DONE, NULL},
    {SINK_TP_OK, 400, 400, SINK_BISECT, NULL},
    {SINK_TP_OK, 401, 401, SINK_STOP,
     "the application id is not valid: " FIX_APP_ID},
    {SINK_TP_OK, 402, 402, SINK_STOP,
     "the Moesif subscription of this application is inactive (unpaid, "
     "expired or over its plan's quota): renew or upgrade it in Moesif's "
     "billing settings, then start userpipe again"},
    {SINK_TP_OK, 403, 403, SINK_STOP,
     "the request is forbidden: check that moesif.application_id (or "
     "MOESIF_APPLICATION_ID) is this application's Collector Application "
     "Id, and that no proxy at moesif.base_url blocks it"},
    {SINK_TP_OK, 404, 404, SINK_STOP,
     "POST /v1/users/batch does not exist there: set moesif.base_url to "
     "Moesif's collector API " BASE_URL_DEFAULT ", without a path"},
    {SINK_TP_OK, 405, 405, SINK_STOP,
     "the server at moesif.base_url does not accept POST "
     "/v1/users/batch: set moesif.base_url to Moesif's collector "
     "API " BASE_URL_DEFAULT},
    {SINK_TP_OK, 406, 406, SINK_STOP,
     "the server at moesif.base_url refuses the request's format: set "
     "moesif.base_url to Moesif's collector API " BASE_URL_DEFAULT
     ", or set sink.gzip=false if a proxy there cannot take gzip bodies"},
    {SINK_TP_OK, 408, 408, SINK_RETRY, NULL},
    {SINK_TP_OK, 410, 410, SINK_STOP,
     "the application or this API is gone: check moesif.application_id "
     "(or MOESIF_APPLICATION_ID) and moesif.base_url " BASE_URL_DEFAULT},
    {SINK_TP_OK, 413, 413, SINK_SPLIT, NULL},
    {SINK_TP_OK, 422, 422, SINK_BISECT, NULL},
    {SINK_TP_OK, 425, 425, SINK_RETRY, NULL},
    {SINK_TP_OK, 429, 429, SINK_RETRY, NULL},
    {SINK_TP_OK, 400, 499, SINK_STOP,
     "userpipe does not know this client error, so it cannot tell a "
     "refused event from a refused request: check moesif.base_url and "
     "any proxy in front of Moesif"},
    {SINK_TP_OK, 500, 599, SINK_RETRY, NULL},
    {SINK_TP_OK, 300, 399, SINK_STOP,
     "the server at moesif.base_url redirects, and userpipe does not "
     "follow redirects: set moesif.base_url to the final "
     "address " BASE_URL_DEFAULT},
    {SINK_TP_OK, LONG_MIN, LONG_MAX, SINK_RETRY, NULL},
};

#define POLICY_ROWS (sizeof(policy) / sizeof(policy[0]))

const struct sink_policy_row *sink_policy_table(size_t *n)
{
    *n = POLICY_ROWS;
    return policy;
}

const struct sink_policy_row *sink_policy_lookup(enum sink_tp_error err,
                                                 long status)
{
    for (size_t i = 0; i < POLICY_ROWS; i++) {
        const struct sink_policy_row *row = &policy[i];

        if (row->err != err) {
            continue;
        }
        if (err != SINK_TP_OK || (status >= row->lo && status <= row->hi)) {
            return row;
        }
    }
    /* an error code newer than this table: a transport failure */
    return &policy[2];
}

uint64_t sink_backoff_ms(unsigned attempt, unsigned base_ms, unsigned max_ms,
                         int64_t retry_after_ms, uint64_t rnd)
{
    /* "full jitter" of AWS's "Exponential Backoff And Jitter" (2015):
     * uniform in [0, cap], cap doubling from base_ms to max_ms; of the
     * schemes measured there, the least total work for clients competing
     * after an outage */
    uint64_t cap = base_ms;
    uint64_t delay;

    for (unsigned i = 1; i < attempt && cap < max_ms; i++) {
        cap *= 2;
    }
    if (cap > max_ms) {
        cap = max_ms;
    }
    delay = rnd % (cap + 1);
    if (retry_after_ms >= 0) {
        /* the server's word is a floor, not a cap: never earlier.  A value
         * beyond an hour is a broken header or date, not a plan */
        uint64_t ra = (uint64_t)retry_after_ms;
        if (ra > SINK_RETRY_AFTER_MAX_MS) {
            ra = SINK_RETRY_AFTER_MAX_MS;
        }
        if (delay < ra) {
            delay = ra;
        }
    }
    return delay;
}
