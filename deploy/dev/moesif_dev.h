/*
 * moesif_dev.h: the pieces of moesif-dev, the local server of Moesif's
 * collector API for users (deploy/dev/MOESIF-DEV.md is the manual).
 *
 *   moesif-dev.c      command line, signals, the daemon's life (refusals)
 *   moesif_http.c     libmicrohttpd handler: routing, bodies, gunzip
 *   moesif_parse.c    yajl streaming parse of a body into a token tape
 *   moesif_store.c    the in-memory store: upsert, merge, type lock, stats
 *   moesif_faults.c   fault settings and the seeded draw
 *   moesif_delay.c    added latency: suspended connections and their timer
 *   moesif_pool.c     the worker threads that gunzip, parse and apply
 *
 * The invariant to keep: a request is validated completely (the tape)
 * before the store is touched, and a request answered with an injected
 * fault never reaches the store.  Only the store takes its lock; nothing
 * calls into libmicrohttpd while holding it.
 *
 * This is dev tooling, not a stage: it links only core/alloc.c and
 * core/log.c, and never the pipeline's own transform or schema, so that
 * it stays an independent oracle of Moesif's behaviour in tests.
 */
#ifndef MOESIF_DEV_H
#define MOESIF_DEV_H

#include "../../core/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct MHD_Connection;

/* ------------------------------------------------------------------ */
/* JSON values, shared by the tape and the store                      */

enum mjson_type {
    MJSON_NULL = 0,
    MJSON_FALSE,
    MJSON_TRUE,
    MJSON_NUMBER,
    MJSON_STRING,
    MJSON_OBJECT,
    MJSON_ARRAY
};

/* ------------------------------------------------------------------ */
/* The tape (moesif_parse.c)                                          */

/*
 * One JSON value of a request body, in document order.  Strings point
 * either into the body itself or into the tape's arena, both of which
 * live until the next parse on the tape; they are not NUL-terminated.
 * Keys under "metadata" (at any depth) already have '.' rewritten to '_'.
 */
struct mtok {
    const char *key; /* member name; NULL for array elements and roots */
    const char *val; /* string contents or number text; NULL otherwise */
    uint32_t key_len;
    uint32_t val_len;
    uint32_t end; /* index of the first token after this subtree */
    uint8_t type; /* enum mjson_type */
};

/* One user object of the body. */
struct muser_ref {
    const char *id;   /* user_id, never empty; points like mtok.val */
    uint64_t id_hash; /* mhash(id, id_len) */
    uint32_t id_len;
    uint32_t tok; /* index of the user's object token */
};

enum mparse_kind {
    MPARSE_SINGLE = 0, /* POST /v1/users: one user object */
    MPARSE_BATCH = 1   /* POST /v1/users/batch: an array of user objects */
};

#define MPARSE_MAX_DEPTH 128 /* containers; the pipeline caps events at 64 */

/*
 * A reusable parse result.  Its buffers grow to the largest body seen
 * and are reused, so steady-state parsing allocates nothing.
 */
struct mtape {
    struct mtok *toks;
    size_t n_toks, cap_toks;
    struct muser_ref *users;
    size_t n_users, cap_users;
    char *arena; /* unescaped strings and rewritten keys */
    size_t arena_len, arena_cap;
    bool dup_ids; /* two users of the batch share a user_id */

    /* Set by the caller before a parse (borrowed for the parse; length 0
     * for none): a user with exactly this user_id fails the parse with
     * refused_user set, as the refuse_user fault asks. */
    const char *refuse_id;
    uint32_t refuse_id_len;
    bool refused_user; /* the last parse failed on refuse_id */

    /* the failure of the last parse; code is one of the 400 codes */
    char err_code[32];
    char err_msg[256];

    /* parser state; private to moesif_parse.c */
    void *yh;         /* yajl_handle, reused across bodies */
    const char *body; /* the body being parsed */
    size_t body_len;
    enum mparse_kind kind;
    unsigned depth;      /* containers open */
    unsigned meta_depth; /* depth of the metadata object, 0 outside */
    unsigned roots;      /* top-level values seen */
    const char *key;     /* pending member name */
    uint32_t key_len;
    bool user_has_id;
    uint32_t stack[MPARSE_MAX_DEPTH];
    uint64_t *idset; /* dup detection: hashes, open addressing */
    uint32_t *idset_user;
    size_t idset_cap;
};

void mtape_init(struct mtape *tp);
void mtape_release(struct mtape *tp);

/*
 * Parses body[0..len) as kind and validates every user (a non-empty
 * string user_id; section 1 field types; not tp->refuse_id).  Returns 0
 * with the tape filled, or -1 with err_code/err_msg set (the request is
 * answered 400); err_code is "refused_user" and tp->refused_user true
 * when a user_id was tp->refuse_id.
 */
int mtape_parse(struct mtape *tp, enum mparse_kind kind, const char *body,
                size_t len);

/*
 * Writes each user object of an accepted body to f as one line, bytes as
 * received with whitespace outside strings removed (so a minified body
 * is recorded byte for byte).  The body must have parsed.
 */
void mrecord_write(FILE *f, enum mparse_kind kind, const char *body,
                   size_t len);

/* FNV-1a; the hash every table of moesif-dev uses. */
uint64_t mhash(const char *s, size_t len);

/* ------------------------------------------------------------------ */
/* The store (moesif_store.c)                                         */

struct mstore;
struct yajl_gen_t;

/* An empty store; record (borrowed, may be NULL) receives accepted users.
 * Never NULL. */
struct mstore *mstore_new(FILE *record);
void mstore_destroy(struct mstore *st);

/*
 * Applies every user of a parsed tape under the store's lock: upsert,
 * metadata merge with the type lock, aliases, counters, and the record
 * line of each user.  Cannot fail.
 */
void mstore_apply(struct mstore *st, const struct mtape *tp);

/* Request-level counters; lock-free, callable from any thread. */
void mstore_count_request(struct mstore *st, size_t bytes_in,
                          size_t bytes_plain);
void mstore_count_response(struct mstore *st, unsigned status);

/*
 * The stored profile of id as JSON (malloc'd, the caller frees it), or
 * NULL when the store has no such user.
 */
char *mstore_user_json(struct mstore *st, const char *id, size_t id_len,
                       size_t *out_len);

/* Statistics as a JSON object (malloc'd, the caller frees it).  extra is
 * called inside the object to add members (may be NULL). */
char *mstore_stats_json(struct mstore *st,
                        void (*extra)(struct yajl_gen_t *g, void *arg),
                        void *arg, size_t *out_len);

/* The metadata type lock as a JSON object {"key":"string",...}
 * (malloc'd, the caller frees it). */
char *mstore_types_json(struct mstore *st, size_t *out_len);

/* The timeline, {"step_ms":10,"late":n,"upserts":[n,...]}: user objects
 * accepted in each 10 ms step since the store was made or reset, up to
 * the last non-empty step; late counts those after ten minutes
 * (malloc'd, the caller frees it). */
char *mstore_timeline_json(struct mstore *st, size_t *out_len);

/* Notes ua (the User-Agent header, NULL when absent) of a /v1 request
 * that passed the application id check; /_dev/stats shows the last one
 * as user_agent (cut at MSTORE_USER_AGENT_MAX - 1 bytes). */
#define MSTORE_USER_AGENT_MAX 256
void mstore_note_user_agent(struct mstore *st, const char *ua);

/* Counts one request refused by the refuse_user fault; lock-free. */
void mstore_count_refused_user(struct mstore *st);

/* Forgets every user, type and counter, and restarts the timeline. */
void mstore_reset(struct mstore *st);

/* ------------------------------------------------------------------ */
/* Faults (moesif_faults.c)                                           */

/* Room for refuse_user and its NUL: a user_id of up to 255 bytes, far
 * longer than any id a test makes up. */
#define MFAULTS_USER_MAX 256

struct mfaults_config {
    double fail_429; /* fractions of /v1 requests, drawn in this order */
    double fail_500;
    double fail_503;
    unsigned retry_after_s;   /* Retry-After of 429 (and 503) answers */
    unsigned latency_ms;      /* added before every /v1 answer */
    unsigned status;          /* 0, or the status of every /v1 answer */
    unsigned refuse_for_ms;   /* one refusal period of this length ... */
    unsigned refuse_after_ms; /* ... starting this long after it is set */
    uint64_t seed;
    char refuse_user[MFAULTS_USER_MAX]; /* "" for none: see mverdict */
};

/* What one /v1 request gets before its body is looked at. */
struct mverdict {
    unsigned status; /* 0: serve it; else answer this injected status */
    unsigned latency_ms;
    unsigned retry_after_s;
    /* a request holding a user with this user_id is answered 400 and
     * stores nothing; refuse_user_len 0 for none */
    uint32_t refuse_user_len;
    char refuse_user[MFAULTS_USER_MAX];
};

struct mfaults;

/* Defaults: no faults, Retry-After 1, seed 1. */
void mfaults_config_init(struct mfaults_config *cfg);

/*
 * Sets one setting by name ("fail_429", "latency_ms", "refuse_user", ...;
 * '-' is read as '_' so CLI names work too).  Returns 0, or -1 with err
 * filled.
 */
int mfaults_config_set(struct mfaults_config *cfg, const char *name,
                       const char *value, char *err, size_t err_size);

/* Takes a validated config; schedules its refusal period if any.
 * Never NULL. */
struct mfaults *mfaults_new(const struct mfaults_config *cfg);
void mfaults_destroy(struct mfaults *flt);

/* Name/value pairs of a /_dev/faults request, from its query string and
 * its body. */
#define MKV_MAX 16
struct mkv_list {
    size_t n;
    struct {
        char name[32];
        char value[MFAULTS_USER_MAX]; /* a refuse_user id is the longest */
    } kv[MKV_MAX];
};

/* Adds one pair; returns -1 with err filled when it does not fit. */
int mkv_add(struct mkv_list *l, const char *name, size_t name_len,
            const char *value, size_t value_len, char *err, size_t err_size);

/* Adds the pairs of "name=value&..." (a form body, %XX and '+'
 * decoded) or of a JSON object {"name": number-or-string-or-null, null
 * read as ""}.  Returns 0, or -1 with err filled. */
int mkv_parse_form(struct mkv_list *l, const char *s, size_t len, char *err,
                   size_t err_size);
int mkv_parse_json(struct mkv_list *l, const char *s, size_t len, char *err,
                   size_t err_size);

/*
 * Applies the pairs to the current settings, all or nothing.  Returns 0,
 * or -1 with err filled.  refuse_for_ms schedules a new refusal period
 * refuse_after_ms (given with it, else 0) from now, but never sooner than
 * MFAULTS_MIN_REFUSE_DELAY_MS, so the answer to this request gets out.
 */
#define MFAULTS_MIN_REFUSE_DELAY_MS 50
int mfaults_update(struct mfaults *flt, const struct mkv_list *l, char *err,
                   size_t err_size);

/* Draws the verdict of one /v1 request (and copies refuse_user, whose
 * bytes are copied only when it is set). */
void mfaults_draw(struct mfaults *flt, struct mverdict *v);

/* Current settings as a JSON object (malloc'd; the caller frees). */
char *mfaults_json(struct mfaults *flt, size_t *out_len);

/*
 * For the main loop: returns true, once, when a scheduled refusal
 * period is due at now_ms (CLOCK_MONOTONIC), with its length.
 */
bool mfaults_refusal_due(struct mfaults *flt, int64_t now_ms, unsigned *for_ms);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t mnow_ms(void);

/* ------------------------------------------------------------------ */
/* Latency (moesif_delay.c)                                           */

struct mdelay;

/* Starts the timer thread.  Never NULL (aborts if it cannot start). */
struct mdelay *mdelay_new(void);
void mdelay_destroy(struct mdelay *dly);

/*
 * Suspends conn (from its access handler) and resumes it after ms, when
 * the handler is called again to queue the answer.  Returns false, doing
 * nothing, while the delayer is drained: answer at once then.
 */
bool mdelay_park(struct mdelay *dly, struct MHD_Connection *conn, unsigned ms);

/* Same for a connection already suspended (by the worker pool): returns
 * false, doing nothing, while drained: resume it at once then. */
bool mdelay_schedule(struct mdelay *dly, struct MHD_Connection *conn,
                     unsigned ms);

/* Resumes every parked connection now and parks none until
 * mdelay_open(); MHD_stop_daemon needs no suspended connection.
 * Returns how many were resumed. */
size_t mdelay_drain(struct mdelay *dly);
void mdelay_open(struct mdelay *dly);

/* ------------------------------------------------------------------ */
/* Workers (moesif_pool.c)                                            */

/* A queued piece of work; embed it in the job's own struct. */
struct mjob {
    struct mjob *next;
};

struct mpool;

/* Starts threads workers calling run(arg, job) for each job.  Never
 * NULL (aborts if a thread cannot start). */
struct mpool *mpool_new(unsigned threads,
                        void (*run)(void *arg, struct mjob *job), void *arg);

/* Closes the pool, waits for its jobs, stops its threads; accepts NULL. */
void mpool_destroy(struct mpool *pool);

/*
 * From conn's access handler: suspends conn and queues job; run() must
 * resume conn when done.  Returns false, doing nothing, while the pool is
 * closed: do the work in the handler then.
 */
bool mpool_submit(struct mpool *pool, struct MHD_Connection *conn,
                  struct mjob *job);

/* Takes no new job and waits until every queued and running job has
 * finished; mpool_open takes jobs again. */
void mpool_close(struct mpool *pool);
void mpool_open(struct mpool *pool);

/* ------------------------------------------------------------------ */
/* The HTTP server (moesif_http.c)                                    */

struct mserver_config {
    const char *app_id;    /* borrowed */
    size_t max_body_bytes; /* on the wire and after gunzip; 413 beyond */
    unsigned threads;      /* worker threads (one more does the sockets) */
    /* HTTPS (issue 22), PEM text, borrowed; NULL: plain HTTP.  With
     * tls_client_ca, a client certificate signed by it is required: the
     * handshake fails with a TLS alert without one (as a gateway that
     * wants mTLS does) */
    const char *tls_cert;
    const char *tls_key;
    const char *tls_client_ca;
};

struct mserver;

/* Borrows st, flt and dly, which must outlive the server.  Never NULL. */
struct mserver *mserver_new(const struct mserver_config *cfg, struct mstore *st,
                            struct mfaults *flt, struct mdelay *dly);
void mserver_destroy(struct mserver *srv);

/*
 * Starts listening on host:port (IPv4 dotted quad; port 0 picks one) and
 * sets *bound_port.  Returns CORE_OK, or CORE_ERR_IO with errstr filled.
 */
CORE_WUR enum core_err mserver_start(struct mserver *srv, const char *host,
                                     unsigned port, unsigned *bound_port,
                                     char *errstr, size_t errstr_size);

/* Answers what is parked, then stops listening and closes every
 * connection, so connecting is refused until the next start. */
void mserver_stop(struct mserver *srv);

/* Whether the server is listening now. */
bool mserver_running(const struct mserver *srv);

/* Counts one refusal period, shown as "refusals" in /_dev/stats. */
void mserver_count_refusal(struct mserver *srv);

/*
 * Writes s (NUL-terminated) into out as the contents of a JSON string,
 * '"', '\\' and control bytes escaped, and NUL-terminates it; stops
 * early where an escaped byte might not fit in size bytes (at least 7),
 * so a long s is cut, maybe inside a UTF-8 sequence.  Returns the length
 * written.  The one escaper of moesif-dev: its answers and /_dev/faults.
 */
size_t mjson_escape(char *out, size_t size, const char *s);

#endif
