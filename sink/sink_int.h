/*
 * sink_int.h: what the files of sink/ share, and the seams its tests use.
 * Never included from outside sink/ and tests/sink/.
 *
 *   batch.c   lanes and batches: the JSON body is built as events arrive
 *   merge.c   a user's newer update merged into its older one (issue 21)
 *   gzip.c    libdeflate gzip of a sealed body
 *   policy.c  THE table from HTTP status / transport error to an action,
 *             and the backoff beside it
 *   http.c    the libcurl multi transport
 *   sink.c    sink.h's verbs: drives lanes, transport and policy
 *   dlq.c     the dead-letter producer; its record sizing is here for
 *             its tests (sink_dlq_room, sink_dlq_shape)
 *
 * The transport is a table of functions so tests can script answers
 * (2xx, 4xx, 5xx, time-outs) without a network, and drive a fake clock.
 */
#ifndef SINK_INT_H
#define SINK_INT_H

#include "sink.h"

#include <stddef.h>
#include <stdint.h>

/* ---- transport seam ------------------------------------------------- */

/* Bytes of a response body kept for the dead-letter record (sink.h). */
#define SINK_BODY_SNIPPET_MAX 512

/* How a request failed below HTTP.  Codes only grow. */
enum sink_tp_error {
    SINK_TP_OK = 0,  /* an HTTP status was received */
    SINK_TP_TIMEOUT, /* no complete answer within the request's timeout */
    SINK_TP_CONNECT, /* could not resolve or connect, or the connection
                        broke before an answer */
    SINK_TP_OTHER,   /* any other failure (protocol, local) */
    SINK_TP_FATAL,   /* the request cannot be made as configured (a URL or
                        protocol libcurl refuses): retrying cannot help */
    /* TLS failures that no retry can mend (issue 20 item 5, issue 22) */
    SINK_TP_TLS_VERIFY,  /* the server's certificate does not verify against
                            the trusted CAs (moesif.ca_file) */
    SINK_TP_TLS_LOCAL,   /* our own TLS material is unusable: a CA file,
                            client certificate or key libcurl cannot load */
    SINK_TP_TLS_PEER,    /* the server refused the handshake with a TLS
                            alert: our client certificate (missing, or not
                            signed by a CA it trusts), a protocol or cipher
                            it will not speak, plain HTTP on a TLS port */
    SINK_TP_PROXY_AUTH,  /* moesif.proxy answered CONNECT with 407 */
    SINK_TP_PROXY_DENIED /* moesif.proxy refused CONNECT with another 4xx */
};

struct sink_request {
    const char *url;            /* NUL-terminated */
    const char *const *headers; /* "Name: value" lines, NUL-terminated */
    size_t n_headers;
    const char *body; /* borrowed until the request completes */
    size_t body_len;
    unsigned timeout_ms; /* whole request, connect included */
};

struct sink_completion {
    unsigned lane;
    enum sink_tp_error err;
    long status;            /* HTTP status when err == SINK_TP_OK, else 0 */
    int64_t retry_after_ms; /* Retry-After of the answer; -1 when absent */
    size_t body_len;        /* bytes of body[] used */
    char body[SINK_BODY_SNIPPET_MAX]; /* first bytes of the response body */
    char detail[256]; /* NUL-terminated text of a transport error, for the
                         logs; never holds a header or a payload */
};

struct sink_transport_ops {
    /*
     * Starts the request of `lane`; the sink never has two requests of
     * one lane outstanding.  url and headers are the same pointers for
     * every request of a sink and live as long as it (a transport may
     * build what it makes of them once); body is borrowed until its
     * completion is returned by poll (or destroy).  Returns
     * CORE_OK, or CORE_ERR_RETRY if the request could not be started: the
     * sink then handles it as a transport error.
     */
    enum core_err (*start)(void *tp, unsigned lane,
                           const struct sink_request *req);
    /*
     * Waits up to timeout_ms (0: does not wait) for network activity, then
     * fills out[0..n) with finished requests and returns n <= max.  Blocks.
     */
    size_t (*poll)(void *tp, int timeout_ms, struct sink_completion *out,
                   size_t max);
    /* A monotonic clock, milliseconds (tests give a fake one). */
    uint64_t (*now_ms)(void *tp);
    /* Abandons outstanding requests and frees tp. */
    void (*destroy)(void *tp);
};

/*
 * sink_new with a transport of the caller's: takes ownership of tp (it is
 * destroyed with ops->destroy by sink_destroy, or here on failure).  Same
 * returns as sink_new.
 */
CORE_WUR enum core_err sink_new_transport(const struct sink_config *cfg,
                                          const struct sink_callbacks *cb,
                                          const struct sink_transport_ops *ops,
                                          void *tp, struct sink **out,
                                          char *errstr, size_t errstr_size);

/* http.c: the libcurl transport, cfg->max_in_flight easy handles on one
 * multi handle, with cfg's egress settings (CA, client certificate,
 * proxy).  Returns CORE_OK, or CORE_ERR_USAGE with errstr filled. */
CORE_WUR enum core_err sink_http_new(const struct sink_config *cfg, void **out,
                                     char *errstr, size_t errstr_size);

/* http.c: what a libcurl result code (a CURLcode, as an int) means for
 * the policy, given the text libcurl wrote in its error buffer: TLS
 * failures are told apart from connections broken mid-handshake by that
 * text (both can be CURLE_SSL_CONNECT_ERROR, or a CURLE_RECV_ERROR when
 * TLS 1.3's server refuses a client certificate after the client's
 * handshake).  Pure, for the tests. */
enum sink_tp_error sink_http_classify(int curl_code, const char *errbuf);
extern const struct sink_transport_ops sink_http_ops;

/* ---- dlq.c ---------------------------------------------------------- */

/*
 * The value bytes a dead-letter record may carry to a topic whose
 * max.message.bytes is limit, with a key of key_len bytes and nhdr headers
 * whose names and values take hdr_bytes: negative when not even an empty
 * value fits.  The framing counted is the broker's (a batch holding the
 * record alone) with a margin (dlq.c).
 */
int64_t sink_dlq_room(size_t limit, size_t key_len, size_t hdr_bytes,
                      size_t nhdr);

/*
 * Shapes a dead-letter record (value[0..len), a key of key_len bytes, its
 * headers h, librdkafka's type: sink_int.h is included by sink/ and its
 * tests only) to fit limit: whole when it fits; else the value is cut
 * (SINK_DLQ_H_TRUNCATED, _SIZE, _SHA256 added, computed from value, which
 * must then be the whole original; a record already cut keeps its
 * headers), then the headers not named "userpipe.*" are removed
 * (SINK_DLQ_H_HEADERS_DROPPED), then the key.  *value_len gets the bytes
 * of value to send, *keep_key whether the key goes.  Returns 1 when the
 * record is cut (or was).
 */
struct rd_kafka_headers_s;
int sink_dlq_shape(struct rd_kafka_headers_s *h, const char *value, size_t len,
                   size_t key_len, size_t limit, size_t *value_len,
                   int *keep_key);

/* ---- policy.c ------------------------------------------------------- */

enum sink_action {
    SINK_DONE = 0, /* every event of the batch is accepted */
    SINK_RETRY,    /* send the same batch again after a backoff */
    SINK_SPLIT,    /* 413: send the two halves; one event alone: refused */
    SINK_BISECT,   /* 400/422: send the halves until single events; a
                      single event so answered is refused */
    SINK_STOP      /* the configuration is wrong: stop everything */
};

struct sink_policy_row {
    enum sink_tp_error err; /* SINK_TP_OK: a row for statuses lo..hi */
    long lo, hi;
    enum sink_action action;
    const char *fix; /* SINK_STOP: what to fix, one sentence; else NULL */
};

/* The row deciding (err, status); never NULL: the table ends with
 * catch-alls. */
const struct sink_policy_row *sink_policy_lookup(enum sink_tp_error err,
                                                 long status);

/* The whole table, for tests and documentation. */
const struct sink_policy_row *sink_policy_table(size_t *n);

/* Most a Retry-After is honoured: a longer one is taken as this. */
#define SINK_RETRY_AFTER_MAX_MS (3600u * 1000u)

/*
 * Delay before retry number `attempt` (1 for the first retry): full
 * jitter, uniform in [0, min(max_ms, base_ms * 2^(attempt-1))] drawn from
 * rnd, but never less than retry_after_ms (capped at
 * SINK_RETRY_AFTER_MAX_MS) when that is >= 0.
 */
uint64_t sink_backoff_ms(unsigned attempt, unsigned base_ms, unsigned max_ms,
                         int64_t retry_after_ms, uint64_t rnd);

/* ---- gzip.c --------------------------------------------------------- */

struct sink_gzip {
    struct libdeflate_compressor *c;
};

/* level 1-12 (libdeflate's); returns CORE_OK or CORE_ERR_USAGE. */
CORE_WUR enum core_err sink_gzip_init(struct sink_gzip *gz, int level);
void sink_gzip_release(struct sink_gzip *gz);
/* Output bytes sufficient for any input of len bytes. */
size_t sink_gzip_bound(struct sink_gzip *gz, size_t len);
/* Compresses in[0..len) into out; returns the gzip member's length, 0 if
 * out_cap was too small. */
size_t sink_gzip_compress(struct sink_gzip *gz, const char *in, size_t len,
                          char *out, size_t out_cap);

/* ---- merge.c -------------------------------------------------------- */

/* Whether two updates became one, or why not (merge.c's rules). */
enum sink_merge_result {
    SINK_MERGED = 0,
    SINK_APART_TOKEN, /* both carry a session_token, and they differ */
    SINK_APART_SHAPE, /* an object over a non-object below the top */
    SINK_APART_SIZE,  /* the merged object would not fit the batch */
    SINK_APART_OTHER, /* an escaped key, user_ids differ, not an object */
    SINK_MERGE_RESULTS
};

struct sink_merge_member;

/* The merge's buffers, reused from one merge to the next. */
struct sink_merger {
    char *out; /* the merged object after SINK_MERGED */
    size_t out_len, out_cap;
    struct sink_merge_member *mem; /* members of the levels being merged */
    size_t mem_n, mem_cap;
};

/*
 * Merges update newer[0..newer_len) into older[0..older_len) (two user
 * objects as the transform emits them): on SINK_MERGED mg->out[0..out_len)
 * is the one object whose application equals applying older then newer;
 * otherwise out_len is 0 and the two must be sent apart, in order.  Never
 * fails on bad bytes (SINK_APART_OTHER).
 */
enum sink_merge_result sink_merge(struct sink_merger *mg, const char *older,
                                  size_t older_len, const char *newer,
                                  size_t newer_len);
void sink_merger_release(struct sink_merger *mg);

/* ---- batch.c -------------------------------------------------------- */

/* An event merged into another (its ticket and its bytes as added). */
struct sink_ticket {
    uint64_t ticket;
    size_t len;
};

/*
 * One user object of a batch: its bytes are buf[off..off+len) of the
 * batch.  It is one event, or several of one user merged (merge.c): the
 * first's ticket, then the others' in more[0..n_more), oldest first; each
 * settles with the object.  more is owned by the event and moves with it
 * when the struct is copied to another batch.
 */
struct sink_event {
    uint64_t ticket;
    uint64_t hash; /* of its user_id (core_hash64) */
    size_t off;
    size_t len;
    size_t first_len; /* bytes of the first event as added */
    size_t raw_bytes; /* bytes of all its events as added: pending bytes */
    struct sink_ticket *more; /* NULL when not merged */
    uint32_t n_more, cap_more;
};

/*
 * A batch: buf holds the request body built as events arrive: '[', the
 * events joined by ',', and, once sealed, ']'.  Open batches only grow;
 * sealed ones are only sent, split or settled.
 */
struct sink_batch {
    struct sink_batch *next; /* lane FIFO or pool */
    char *buf;
    size_t len, cap;
    struct sink_event *evs;
    size_t n, evs_cap;
    size_t event_bytes;     /* sum of evs[].len: the pending bytes it holds */
    uint64_t opened_ms;     /* when its first event came: linger */
    uint64_t not_before_ms; /* earliest (re)send: retry backoff */
    unsigned attempts;      /* failed sends so far */
    uint64_t seq;           /* its place in the lane's chain (batch.c) */
    int sealed;
    int held;     /* failed once: its users are held until it settles */
    int no_merge; /* a split half: none of its events absorbs another */
    /* the 400/422 bisection it is part of (sink.c's reject breaker): the
     * id of the batch first answered so, 0 when none */
    uint64_t family;
};

/* Most open batches a lane keeps (batch.c's chain). */
#define SINK_CHAIN_MAX 8

/* Why a batch was sealed: counted per reason (sink_stats). */
enum sink_seal_reason {
    SINK_SEAL_FULL = 0, /* max_events or max_bytes reached */
    SINK_SEAL_LINGER,   /* batch.linger_ms after its first event */
    SINK_SEAL_CHAIN,    /* the lane's chain was at its bound */
    SINK_SEAL_FLUSH,    /* sink_flush: a drain or the end of a backfill */
    SINK_SEAL_REASONS
};

/* An entry of a lane's user map: where the user's latest update waits
 * unsent, evs[idx] of an open batch of the chain, a sealed batch of the
 * FIFO, or the held queue.  hash 0 is the empty slot. */
struct sink_user_slot {
    uint64_t hash;
    struct sink_batch *batch;
    size_t idx;
};

struct sink_lane {
    /* The open batches, oldest first: chain[0..n_open) with increasing
     * seq; only chain[0] is ever sealed (onto the FIFO's tail). */
    struct sink_batch *chain[SINK_CHAIN_MAX];
    unsigned n_open;
    size_t chain_bytes; /* event bytes in the chain */
    uint64_t next_seq;  /* seq of the next batch opened; starts at 1 */
    struct sink_user_slot *users; /* user hash -> its latest unsent */
    size_t users_mask, users_n;
    struct sink_batch *head, *tail; /* sealed, oldest first */
    struct sink_batch *cur;         /* the batch in flight, off every list */
    /* Batches that failed and wait for their retry, and the users they
     * hold: a held user's later events wait in heldq, in order, until the
     * batch settles; the lane meanwhile sends its other users' batches. */
    struct sink_batch *waiting; /* unordered: their users are disjoint */
    struct sink_batch *heldq;   /* events only, never sent as it is */
    uint64_t *held;             /* set of held hashes; NULL when none */
    size_t held_mask, held_n;
    unsigned failing; /* failed requests since the last settled one */
    int in_flight;    /* cur is being sent */
    uint64_t sent_ms; /* when the request in flight started */
    char *gz;         /* this lane's compressed body, alive while in flight */
    size_t gz_cap;
};

/* Sealed batches are counted by their number of events up to this; a
 * larger one counts as this many. */
#define SINK_SIZE_HIST_MAX 1024

struct sink_batcher {
    struct sink_lane *lanes;
    unsigned n_lanes;
    size_t max_events;
    size_t max_bytes;
    size_t chain_max_bytes;  /* a lane's chain holds at most this */
    struct sink_batch *pool; /* recycled batches, at most n_lanes */
    size_t pool_n;
    uint64_t sealed[SINK_SEAL_REASONS];
    uint64_t *size_hist; /* [min(max_events, SINK_SIZE_HIST_MAX) + 1] */
    size_t size_hist_n;
    /* the same, of the batches sealed while the caller had a backlog
     * (in_backlog, kept by sink.c: its last sink_note_backlog at most
     * batch.linger_ms ago), the batches issue 12's fill target is about:
     * a backfill's tail and a drain seal what they hold, full or not */
    uint64_t *backlog_hist;
    int in_backlog;
    struct sink_merger mg;
    uint64_t merged;                    /* events merged into a waiting one */
    uint64_t apart[SINK_MERGE_RESULTS]; /* [SINK_APART_*]: kept apart */
};

/*
 * chain_max_bytes bounds the event bytes of a lane's open batches (at
 * least max_bytes is used: one full batch always fits).
 */
void sink_batcher_init(struct sink_batcher *bat, unsigned n_lanes,
                       size_t max_events, size_t max_bytes,
                       size_t chain_max_bytes);
/* Frees every batch, open, sealed or pooled; accepts a zeroed struct. */
void sink_batcher_release(struct sink_batcher *bat);

/* The lane of a hash among n. */
unsigned sink_lane_of(uint64_t hash, unsigned n);

/*
 * Adds an event to its lane: merged into its user's latest update when
 * that waits unsent (in the chain, the FIFO or the held queue, not split)
 * and merge.c allows it; else to the first open batch of the chain after
 * the one holding its user's latest update, with room for it; to a new
 * batch at the chain's end when none has room; behind its user in the
 * held queue when the user is held.  The chain's head is sealed when it
 * is full, or early when the chain is at its bound.  now_ms stamps a newly
 * opened batch.  Returns the lane.
 */
unsigned sink_batcher_add(struct sink_batcher *bat, uint64_t hash,
                          const char *json, size_t len, uint64_t ticket,
                          uint64_t now_ms);

/* Seals the head of the lane's chain (if any) onto the tail of its FIFO,
 * counted under `why`. */
void sink_lane_seal(struct sink_batcher *bat, struct sink_lane *lane,
                    enum sink_seal_reason why);

/* Seals every open batch of the lane, oldest first. */
void sink_lane_seal_all(struct sink_batcher *bat, struct sink_lane *lane,
                        enum sink_seal_reason why);

/* The lane's oldest open batch, NULL when it has none. */
static inline struct sink_batch *sink_lane_open(const struct sink_lane *lane)
{
    return lane->n_open > 0 ? lane->chain[0] : NULL;
}

/* Removes and returns the head of the lane's FIFO (NULL when empty): it
 * is being sent, its events absorb no more. */
struct sink_batch *sink_lane_pop(struct sink_lane *lane);

/*
 * Replaces batch (n >= 2, the lane's batch just sent, off every list) by
 * its two halves, order kept: at the front of the FIFO, or, for a held
 * batch, among the waiting ones, due now and still holding its users.
 * The old batch is recycled.
 */
void sink_lane_split(struct sink_batcher *bat, struct sink_lane *lane,
                     struct sink_batch *batch);

/*
 * Puts batch (the lane's batch just sent, off every list, failed and due
 * again at its not_before_ms) among the waiting ones.  The first time, its
 * users become held: their events in the lane's later batches move to the
 * held queue, in order, and so do the events added for them from now on.
 */
void sink_lane_hold(struct sink_batcher *bat, struct sink_lane *lane,
                    struct sink_batch *batch);

/*
 * After a held batch settled (and was recycled): its users are released,
 * and their events in the held queue go to the chain, in order.
 */
void sink_lane_release(struct sink_batcher *bat, struct sink_lane *lane,
                       uint64_t now_ms);

/* Takes the lane's next batch to send off its list: a waiting batch due
 * at now_ms first, else (unless waiting_only) the head of the FIFO; NULL
 * when none. */
struct sink_batch *sink_lane_next(struct sink_lane *lane, uint64_t now_ms,
                                  int waiting_only);

/*
 * Drops, without settling, the events of the lane's chain, FIFO, waiting
 * batches and held queue that keep(ctx, ticket) does not want (sink_drop);
 * batches left empty are recycled, and held users without a waiting batch
 * any more are released.  A merged object goes when none of its events is
 * wanted; else it stays and forgets the unwanted tickets.  Returns the
 * events dropped; adds their bytes (as added) to *bytes.
 */
size_t sink_lane_drop(struct sink_batcher *bat, struct sink_lane *lane,
                      sink_keep_fn keep, void *ctx, uint64_t now_ms,
                      size_t *bytes);

/* The same for one batch off every list (the lane's batch in flight). */
size_t sink_batch_drop(struct sink_batch *b, sink_keep_fn keep, void *ctx,
                       size_t *bytes);

/* The events (tickets) of an object, and their bytes as added. */
static inline size_t sink_event_count(const struct sink_event *ev)
{
    return 1 + (size_t)ev->n_more;
}

/* The events of a batch and their bytes as added: what settling it
 * settles. */
size_t sink_batch_events(const struct sink_batch *b, size_t *raw_bytes);

/* Gives a settled batch back (kept for reuse, or freed); the merged
 * tickets of the events it still holds are freed. */
void sink_batch_recycle(struct sink_batcher *bat, struct sink_batch *batch);

#endif
