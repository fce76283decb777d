/*
 * sink.h: the Moesif sink.  Accepted events are batched per lane (lanes by
 * hash of user_id, one request in flight per lane, never two updates of
 * one user in one batch; a user's newer update merges into its update that
 * still waits unsent, as Moesif would apply the two, sink/merge.c), sent
 * gzipped as one JSON array to
 * {base_url}/v1/users/batch through libcurl's multi interface over reused
 * connections, and settled by DESIGN.md section 4's status table:
 * 2xx done; 429/5xx/time-outs/connection errors retried with exponential
 * backoff and jitter, honouring Retry-After; 413 split; 400/422 bisected
 * down to the refused events, reported one by one; 401/402/403/404/405/
 * 406/410 stop.
 *
 * The sink never touches Kafka: it reports each event's fate through the
 * callbacks with the ticket the caller gave it, and the caller (cmd/run.c)
 * releases offsets or dead-letters.  Single-threaded: every
 * call, and every callback, happens on the caller's thread.
 */
#ifndef SINK_H
#define SINK_H

#include "../core/core.h"

#include <stddef.h>
#include <stdint.h>

/*
 * The sink's settings.  Each numeric one has its default (_DEF) and its
 * range (_MIN, _MAX) below, written once: cmd/config.c's key table takes
 * them from here, validates the user's configuration against them and
 * prints them in the configuration reference; sink_new trusts the config
 * it is handed (it asserts, it does not check again).  Why these bounds:
 * Moesif's own libraries send 100 to 200 users a batch, so 10,000 events
 * or 64 MiB is no batch a collector expects; 256 lanes are 256
 * connections to one host.
 */
#define SINK_MAX_EVENTS_DEF 200 /* DESIGN.md section 4: 200 events */
#define SINK_MAX_EVENTS_MIN 1
#define SINK_MAX_EVENTS_MAX 10000
#define SINK_MAX_BYTES_DEF 1048576 /* 1 MiB */
#define SINK_MAX_BYTES_MIN 1024
#define SINK_MAX_BYTES_MAX 67108864 /* 64 MiB */
#define SINK_LINGER_MS_DEF 1000
#define SINK_LINGER_MS_MAX 60000
#define SINK_IN_FLIGHT_DEF 32
#define SINK_IN_FLIGHT_MIN 1
#define SINK_IN_FLIGHT_MAX 256
#define SINK_TIMEOUT_MS_DEF 30000
#define SINK_TIMEOUT_MS_MIN 100
#define SINK_TIMEOUT_MS_MAX 600000
#define SINK_GZIP_LEVEL_DEF 1 /* libdeflate's fastest, measured in bench */
#define SINK_GZIP_LEVEL_MIN 1
#define SINK_GZIP_LEVEL_MAX 12
#define SINK_BACKOFF_MS_DEF 100
#define SINK_BACKOFF_MS_MIN 1
#define SINK_BACKOFF_MS_MAX 60000
#define SINK_BACKOFF_MAX_MS_DEF 30000
#define SINK_BACKOFF_MAX_MS_MIN 10 /* and at least the first delay */
#define SINK_BACKOFF_MAX_MS_MAX 3600000
#define SINK_RETRY_MAX_MAX 1000000000
#define SINK_REJECT_ALL_DEF 3 /* issue 20: "a few batches in a row" */
#define SINK_REJECT_ALL_MAX 1000000
#define SINK_PENDING_BYTES_DEF 16777216 /* 16 MiB */
#define SINK_PENDING_BYTES_MIN 1048576
#define SINK_PENDING_BYTES_MAX 4294967296ULL /* 4 GiB */

struct sink_config {
    const char *base_url;       /* http(s)://..., no trailing / needed */
    const char *application_id; /* X-Moesif-Application-Id; never logged */
    size_t batch_max_events;
    size_t batch_max_bytes; /* uncompressed body bytes */
    unsigned batch_linger_ms;
    unsigned max_in_flight;        /* lanes = requests in flight */
    unsigned timeout_ms;           /* per request */
    int gzip;                      /* send Content-Encoding: gzip, default 1 */
    int gzip_level;                /* libdeflate level */
    unsigned retry_backoff_ms;     /* first retry delay */
    unsigned retry_backoff_max_ms; /* cap */
    unsigned retry_max;            /* retries per batch, 0 = without end */
    size_t max_pending_bytes;      /* events held before saturated */
    /* batches in a row whose every event 400/422 bisection refused
     * singly, nothing accepted between, that stop the sink (0: never) */
    unsigned reject_all_batches;
    /* egress (issue 22), each NULL when unset; files checked readable by
     * cmd/config.c before the sink is made, handed to libcurl (which
     * copies them) when the transport is made, never kept by the sink */
    const char *ca_file;             /* CURLOPT_CAINFO: PEM bundle trusted */
    const char *ca_path;             /* CURLOPT_CAPATH: c_rehash'd directory */
    const char *client_cert;         /* CURLOPT_SSLCERT: PEM, mTLS */
    const char *client_key;          /* CURLOPT_SSLKEY: PEM */
    const char *client_key_password; /* CURLOPT_KEYPASSWD; a secret */
    const char *proxy; /* CURLOPT_PROXY, HTTP CONNECT; NULL: libcurl reads
                          https_proxy/HTTPS_PROXY, http_proxy, NO_PROXY */
};

/* The defaults above; base_url, application_id and egress NULL. */
void sink_config_init(struct sink_config *cfg);

struct sink_callbacks {
    /* The event was accepted by Moesif (2xx). */
    void (*done)(void *opaque, uint64_t ticket);
    /* Moesif refused the event itself (400/422 isolated by bisection):
     * status and up to 512 bytes of the response body (not NUL-terminated)
     * for the dead-letter record.  The sink forgets the event. */
    void (*refused)(void *opaque, uint64_t ticket, long status,
                    const char *body, size_t body_len);
    void *opaque;
};

struct sink;

/* Whether the sink should still deliver the event of ticket (sink_drop). */
typedef int (*sink_keep_fn)(void *ctx, uint64_t ticket);

/*
 * Creates a sink; cfg and cb are copied (cfg's strings too).  cfg is
 * within the ranges above (validated by the caller).  Returns CORE_OK, or
 * an error with errstr when libcurl cannot start.
 */
CORE_WUR enum core_err sink_new(const struct sink_config *cfg,
                                const struct sink_callbacks *cb,
                                struct sink **out, char *errstr,
                                size_t errstr_size);

/* Frees the sink, abandoning anything unsettled (no callback); accepts
 * NULL. */
void sink_destroy(struct sink *snk);

/*
 * Adds one accepted event: json[0..len) is the transformed user object
 * (copied), uid_hash core_hash64 of its user_id (the caller hashes it
 * once for every stage; equal hashes are kept apart like one user, so a
 * collision costs at most a fuller batch elsewhere).  Never blocks.  The
 * caller should stop adding while sink_saturated() is true (the sink
 * still takes the event: saturation is advice, the hard cap is the
 * caller's pause).
 */
void sink_add(struct sink *snk, uint64_t uid_hash, const char *json, size_t len,
              uint64_t ticket);

/*
 * Says that the caller has a backlog: its consumer handed out all it asked
 * for, or it holds consumption back.  Linger then counts from the last
 * such note, not from a batch's first event (at most LINGER_STRETCH x
 * batch.linger_ms from it, sink.c), so batches fill while a backlog lasts
 * and linger only bounds the latency of a stream that keeps up.
 */
void sink_note_backlog(struct sink *snk);

/*
 * Drops every unsent event keep(ctx, ticket) does not want, from every
 * queue (open batches, sealed, waiting for a retry, held), without
 * settling it: the events of partitions given up in a rebalance, which
 * their new owner consumes again.  A request in flight cannot be called
 * back: its events settle as usual if it succeeds, and if it fails they
 * are dropped then, before any retry or split (keep and ctx are kept for
 * that, until the next call).  Returns the events dropped.
 */
size_t sink_drop(struct sink *snk, sink_keep_fn keep, void *ctx);

/*
 * Drives the sink: seals batches whose linger expired, starts requests on
 * free lanes, waits up to timeout_ms for network activity, settles
 * finished requests (callbacks fire from here).  Returns CORE_OK, or
 * CORE_ERR_STOP once a status that means the configuration is wrong was
 * received: sink_error() then says what to fix, and no further callback
 * fires.
 */
CORE_WUR enum core_err sink_poll(struct sink *snk, int timeout_ms);

/* Seals every open batch now, without waiting for linger (shutdown, the
 * end of a backfill, a rebalance). */
void sink_flush(struct sink *snk);

/* Whether the sink holds more than max_pending_bytes: the caller pauses
 * consumption while true.  A batch waiting for its retry holds only its
 * lane, whose backlog counts here like any other. */
int sink_saturated(const struct sink *snk);

/* Whether the sink holds at most half of what saturates it: the caller
 * resumes consumption only then.  The gap between the two thresholds
 * keeps consumption from flapping: librdkafka drops what it prefetched
 * for a partition that is paused, and fetches it again on resume. */
int sink_drained(const struct sink *snk);

/* Events added and not yet settled (done or refused). */
size_t sink_pending(const struct sink *snk);

/* The sentence describing the fatal condition after CORE_ERR_STOP. */
const char *sink_error(const struct sink *snk);

/* After CORE_ERR_STOP: 1 when Moesif (or libcurl) refused the
 * configuration (401, 404, a malformed base URL...: restarting will not
 * help), 0 when a batch ran out of sink.retry_max retries (an outage: a
 * restart later may). */
int sink_refused(const struct sink *snk);

/* Upper bounds (ms) of the request latency histogram of sink_stats; the
 * metrics endpoint (cmd/metrics.h) uses the same bounds. */
#define SINK_LATENCY_BUCKETS 11
extern const unsigned sink_latency_le_ms[SINK_LATENCY_BUCKETS];

struct sink_stats {
    uint64_t requests;   /* HTTP requests completed (any outcome) */
    uint64_t batches_ok; /* batches accepted (2xx) */
    uint64_t events_ok;  /* events accepted */
    uint64_t objects_ok; /* user objects accepted: events_ok less merges */
    uint64_t events_refused;
    uint64_t retries;    /* requests scheduled again after a failure */
    uint64_t splits;     /* 413 splits and 400/422 bisections */
    uint64_t bytes_sent; /* request body bytes on the wire */
    uint64_t bytes_raw;  /* uncompressed body bytes */
    uint64_t status[6];  /* by class: [0] transport errors, [1..5] 1xx..5xx */
    unsigned in_flight;
    /* request latency: counts per bucket (not cumulative), the last one
     * above every bound; the sum over all requests */
    uint64_t latency_bucket[SINK_LATENCY_BUCKETS + 1];
    uint64_t latency_sum_ms;
    int reachable; /* the last request got an HTTP answer */
    /* batches sealed, by why (sink_int.h's seal reasons), and the events
     * they held; a split's halves are not counted again */
    uint64_t sealed_full, sealed_linger, sealed_chain, sealed_flush;
    uint64_t sealed_events;
    /* of those, the batches sealed while the caller had a backlog (its
     * last sink_note_backlog at most batch.linger_ms before) and their
     * events */
    uint64_t backlog_batches, backlog_events;
    uint64_t events_dropped; /* by sink_drop, never settled */
    /* events merged into their user's update waiting unsent (sink/merge.c),
     * and events that had one waiting but were kept apart, by why: two
     * session tokens, an object over a non-object, the batch's size, other
     * (an escaped key, bytes not proven) */
    uint64_t merged;
    uint64_t apart_token, apart_shape, apart_size, apart_other;
};

void sink_get_stats(const struct sink *snk, struct sink_stats *st);

/* The q-quantile (0 < q <= 1) of the number of events of the batches
 * sealed so far (backlog_only: of those sealed while the caller had a
 * backlog); 0 when none was.  Sizes above 1024 count as 1024. */
size_t sink_batch_events_quantile(const struct sink *snk, double q,
                                  int backlog_only);

/*
 * The dead-letter producer (sink/dlq.c): every reject goes to the
 * dead-letter topic with the original key and value byte for byte, the
 * headers of DESIGN.md section 4 and the source message's own headers.
 * Idempotent, acks=all, retried by librdkafka without end
 * (message.timeout.ms=0): a record is either delivered or the pipeline
 * stops.  A record larger than the dead-letter topic takes
 * (max.message.bytes, read at start) is cut to fit, with headers giving
 * the value's original size and SHA-256 (SINK_DLQ_H_*); a record the
 * brokers refuse for itself is cut harder and sent again; only a topic
 * that refuses userpipe stops the pipeline.
 */
struct sink_dlq_config {
    const char *const *kafka_keys; /* librdkafka properties, no prefix */
    const char *const *kafka_values;
    size_t kafka_count;
    const char *topic; /* NULL: "<source topic>.dlq" per record */
    /* the source topics, comma-separated (source.topics): with topic
     * NULL, their dead-letter topics are the ones sized at start */
    const char *source_topics;
};

/* The headers of a record whose value was cut (README "Dead-letter
 * topic"): "1"; the original value's size in bytes (decimal); the SHA-256
 * of the whole original value (64 lower-case hex digits).  When even the
 * source message's own headers did not fit, they are left off and
 * SINK_DLQ_H_HEADERS_DROPPED says how many. */
#define SINK_DLQ_H_TRUNCATED "userpipe.value.truncated"
#define SINK_DLQ_H_SIZE "userpipe.value.size"
#define SINK_DLQ_H_SHA256 "userpipe.value.sha256"
#define SINK_DLQ_H_HEADERS_DROPPED "userpipe.headers.dropped"

/* The limit used when the dead-letter topic's cannot be read (no
 * DescribeConfigs permission, a broker without the API): librdkafka's
 * own message.max.bytes default, under Kafka's broker default of
 * 1,048,588. */
#define SINK_DLQ_LIMIT_DEF 1000000

struct sink_dlq_callbacks {
    /* The record is in the dead-letter topic (acks=all). */
    void (*done)(void *opaque, uint64_t ticket);
    void *opaque;
};

/* One rejected event: the raw message and why. */
struct sink_dlq_record {
    const char *key; /* may be NULL */
    size_t key_len;
    const char *value;
    size_t len;
    const char *source_topic;
    int32_t source_partition;
    int64_t source_offset;
    int64_t source_timestamp_ms; /* -1 unknown */
    const char *code;            /* stable reject code */
    const char *path;            /* JSON path, may be empty */
    const char *message;         /* one sentence */
    /* the source message's own headers, packed (core/kafka.h); NULL none */
    const char *headers;
    size_t headers_len;
    /* set by the dlq reader (cmd/dlq_read.c) for a record whose value
     * was cut: value is a prefix, the original is orig_len bytes */
    int truncated;
    size_t orig_len;
    uint64_t ticket;
};

struct sink_dlq;

/* Creates the idempotent producer.  With cfg->topic set, looks that topic
 * up and creates it when missing (one partition, replication min(3,
 * brokers)); then reads the max.message.bytes of the dead-letter topics
 * (the broker's message.max.bytes for one that does not exist yet,
 * SINK_DLQ_LIMIT_DEF when neither can be read) and sizes the producer to
 * the smallest; blocks for that (a few Admin requests, at most about 15 s
 * each).  CORE_ERR_USAGE with errstr when the topic is missing and cannot
 * be created, or the configuration is refused. */
CORE_WUR enum core_err sink_dlq_new(const struct sink_dlq_config *cfg,
                                    const struct sink_dlq_callbacks *cb,
                                    struct sink_dlq **out, char *errstr,
                                    size_t errstr_size);

/* Flushes (bounded by timeout_ms) and frees; accepts NULL. */
void sink_dlq_destroy(struct sink_dlq *dlq, int timeout_ms);

/* Queues one record (copied).  CORE_ERR_RETRY when librdkafka's queue is
 * full: poll and try again.  The first record for a topic looks it up
 * (and creates it when missing), blocking once per topic name;
 * CORE_ERR_STOP with sink_dlq_error when it cannot be created. */
CORE_WUR enum core_err sink_dlq_produce(struct sink_dlq *dlq,
                                        const struct sink_dlq_record *rec);

/* Serves delivery reports (callbacks fire here).  Returns CORE_OK,
 * CORE_ERR_STOP after a record failed for good, or CORE_ERR_USAGE once the
 * cluster refused the producer (its credentials, its TLS handshake, an
 * ACL: core/kafka.h); sink_dlq_error says why. */
CORE_WUR enum core_err sink_dlq_poll(struct sink_dlq *dlq, int timeout_ms);

/* Records queued and not yet acknowledged (those waiting to be sent
 * again, cut harder, included). */
size_t sink_dlq_pending(const struct sink_dlq *dlq);

/* The largest record (bytes, batch framing included) the producer sends:
 * the smallest max.message.bytes of the dead-letter topics. */
size_t sink_dlq_limit(const struct sink_dlq *dlq);

/* Records cut to fit so far. */
uint64_t sink_dlq_truncated(const struct sink_dlq *dlq);

/* The key and value bytes of those records (the copies librdkafka holds):
 * the caller holds consumption back while they are many. */
size_t sink_dlq_pending_bytes(const struct sink_dlq *dlq);

/* The sentence of the failure (a refusal first), "" when none. */
const char *sink_dlq_error(const struct sink_dlq *dlq);

/* Whether the cluster refused the producer (exit status 2). */
int sink_dlq_refused(const struct sink_dlq *dlq);

#endif
