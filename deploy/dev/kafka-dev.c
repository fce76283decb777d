/*
 * kafka-dev.c: the development Kafka broker of deploy/dev (issue 3).
 *
 * What lives here: one small binary with a few modes.
 *
 *   kafka-dev [--brokers N] [--topic NAME:PARTS]... [--bootstrap-file FILE]
 *             [--control PATH] [--debug]
 *       serve: a librdkafka mock cluster (rdkafka_mock.h) that speaks the
 *       real Kafka protocol on loopback TCP, with consumer groups, offset
 *       commits and idempotent producers; prints the bootstrap servers and
 *       answers fault-control commands on a unix socket until SIGTERM.
 *   kafka-dev ctl PATH COMMAND [ARG]...    send one control command
 *   kafka-dev remote BOOTSTRAP COMMAND [ARG]...
 *       the same commands, run here against any broker (the real Apache
 *       Kafka of deploy/dev/kafka/, issue 13): those a client can do
 *       (topics, create-topic through the Admin API, watermarks, check,
 *       committed, leaders, isr, brokers); the fault injections need the
 *       mock and answer an error
 *   kafka-dev plan [--partitions N] [--bytes B] [FILE]
 *       how many partitions a load needs under the mock's partition cap
 *   kafka-dev keyed [FILE]    NDJSON lines -> "user_id<TAB>line" for kcat -K
 *   kafka-dev --partition-mb-cap    print the per-partition cap in MiB
 *
 * Why it is separate: it is a tool of the dev stack, not part of userpipe.
 * It uses librdkafka only, never core/ nor a stage, so a stage in progress
 * never stops the dev stack from building, and the stages are tested
 * against a broker whose code they do not share.
 *
 * Invariants: signal handlers only set a flag and the control loop wakes
 * at least every 100 ms; every control reply is exactly one line that
 * starts "ok" or "error"; the bootstrap file appears whole (temp file +
 * rename) only once the brokers listen, and is removed on a clean exit.
 *
 * The mock broker's limits are constants below, each naming where in
 * librdkafka 2.0.2 it comes from; none of them can be tuned through the
 * public mock API of that version.  The partition cap is the dangerous one
 * (older batches are dropped without a word), so `plan` says beforehand
 * whether data fits, and the `check` command says afterwards whether any
 * partition lost its oldest data.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/*
 * Bytes of record batches a mock partition keeps: rd_kafka_mock_msgset_new()
 * drops the oldest batches while the log is over this size (librdkafka
 * 2.0.2 src/rdkafka_mock.c, rd_kafka_mock_partition_init(): max_size =
 * 1024 * 1024 * 5).  Nothing is logged and the low watermark moves up.
 */
#define KD_PARTITION_CAP_BYTES (5L * 1024 * 1024)
#define KD_PARTITION_CAP_MIB 5

/* Same place: max_cnt, the number of record batches a partition keeps. */
#define KD_PARTITION_MAX_BATCHES 100000L

/*
 * Partitions of a topic the mock creates on its own, when a client asks
 * for metadata of an unknown topic with AllowAutoTopicCreation (producers
 * do by default): rd_kafka_mock_cluster_new(), defaults.partition_cnt.
 */
#define KD_AUTO_CREATE_PARTITIONS 4

/*
 * Delay before the first assignment of an empty consumer group, hard-coded
 * in rdkafka_mock_cgrp.c rd_kafka_mock_cgrp_rebalance() ("same as
 * group.initial.rebalance.delay.ms on the broker").  Newer librdkafka has
 * rd_kafka_mock_group_initial_rebalance_delay_ms(); 2.0.2 does not.
 */
#define KD_INITIAL_REBALANCE_DELAY_MS 3000

/*
 * Upper bound of the bytes a record adds beyond its key and value in a
 * v2 record batch (Kafka protocol, "Record" in the message format docs):
 * length varint (5) + attributes (1) + timestampDelta varint (10) +
 * offsetDelta varint (5) + key length (5) + value length (5) + header
 * count (1).  Over-estimating is the safe side of a refusal.
 */
#define KD_RECORD_OVERHEAD_BYTES 32

/*
 * Share of the cap that `plan` lets a load use (ours): the rest absorbs
 * the 61-byte header of each record batch and the spread of keyless
 * messages over partitions, which is random.
 */
#define KD_USABLE_PERCENT 95

/* Replication factor of topics we create: the mock's own default. */
#define KD_MAX_REPLICATION 3

/* Input caps (ours): generous for a dev box, small enough to stay cheap. */
#define KD_MAX_BROKERS 16
#define KD_MAX_PARTITIONS 10000
/* Kafka's own limit on topic name length (Topic.MAX_NAME_LENGTH). */
#define KD_TOPIC_NAME_MAX 249
/* Control connections at once, bytes of one command line, words in it. */
#define KD_MAX_CLIENTS 16
#define KD_LINE_MAX 1024
#define KD_MAX_ARGS 16
/*
 * How long a probe client waits for the brokers in one request (ours):
 * loopback answers in milliseconds, so 3 s means a broker is down.
 */
#define KD_PROBE_TIMEOUT_MS 3000
/* How long `ctl` waits for a reply: a probe command makes a few requests. */
#define KD_CTL_TIMEOUT_S 60
/* Longest user_id used as a key (ours); a longer one gives a null key. */
#define KD_KEY_MAX 1024
/* Nesting the key scanner follows: the transform's default limit. */
#define KD_JSON_DEPTH_MAX 64
/* `plan` never proposes more partitions than this (ours). */
#define KD_PLAN_MAX_PARTITIONS 4096

static volatile sig_atomic_t kd_stop;

static void kd_on_signal(int sig)
{
    (void)sig;
    kd_stop = 1;
}

/* ---- small utilities ---------------------------------------------------- */

static void kd_log(const char *level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One structured line on stderr, in the format of core/log.c. */
static void kd_log(const char *level, const char *fmt, ...)
{
    char line[2048];
    char when[40];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, sizeof(line),
                 "time=%s.%03ldZ level=%s component=kafka-dev ", when,
                 ts.tv_nsec / 1000000L, level);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

static void *kd_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (p == NULL) {
        fprintf(stderr, "kafka-dev: out of memory\n");
        abort();
    }
    return p;
}

/* A growing NUL-terminated string. */
struct kd_buf {
    char *p;
    size_t len;
    size_t cap;
};

static void kd_buf_printf(struct kd_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void kd_buf_printf(struct kd_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->p = kd_realloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void kd_buf_reset(struct kd_buf *b)
{
    b->len = 0;
    if (b->p != NULL) {
        b->p[0] = '\0';
    }
}

static void kd_buf_release(struct kd_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Parses a decimal integer in [min, max]; 0 on success, -1 otherwise. */
static int kd_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0') {
        return -1;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Kafka's legal topic characters: ASCII alphanumerics, '.', '_', '-'. */
static int kd_topic_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > KD_TOPIC_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
            return 0;
        }
    }
    return 1;
}

/*
 * Parses "NAME:PARTS" into name (NUL-terminated, at most
 * KD_TOPIC_NAME_MAX bytes) and partitions; fills errstr on failure.
 */
static int kd_parse_topic_spec(const char *spec, char *name, long *partitions,
                               char *errstr, size_t errstr_size)
{
    const char *colon = strrchr(spec, ':');
    size_t len;

    if (colon == NULL) {
        snprintf(errstr, errstr_size,
                 "topic \"%s\" needs a partition count, as NAME:PARTITIONS",
                 spec);
        return -1;
    }
    len = (size_t)(colon - spec);
    if (!kd_topic_name_ok(spec, len)) {
        snprintf(errstr, errstr_size,
                 "topic name in \"%s\" must be 1 to %d characters of "
                 "[A-Za-z0-9._-]",
                 spec, KD_TOPIC_NAME_MAX);
        return -1;
    }
    if (kd_parse_long(colon + 1, 1, KD_MAX_PARTITIONS, partitions) != 0) {
        snprintf(errstr, errstr_size,
                 "partition count in \"%s\" must be an integer from 1 to %d",
                 spec, KD_MAX_PARTITIONS);
        return -1;
    }
    memcpy(name, spec, len);
    name[len] = '\0';
    return 0;
}

/* ---- Kafka API keys and error codes ------------------------------------ */

/*
 * Request types a fault can be pushed for, by the names of the Kafka
 * protocol guide (kafka.apache.org/protocol, "Api Keys"); librdkafka's
 * RD_KAFKAP_* constants in rdkafka_protocol.h carry the same numbers.
 */
static const struct kd_api {
    const char *name;
    int16_t key;
} kd_apis[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"LeaveGroup", 13},
    {"SyncGroup", 14},
    {"DescribeGroups", 15},
    {"ListGroups", 16},
    {"SaslHandshake", 17},
    {"ApiVersions", 18},
    {"CreateTopics", 19},
    {"DeleteTopics", 20},
    {"DeleteRecords", 21},
    {"InitProducerId", 22},
    {"OffsetForLeaderEpoch", 23},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
    {"DescribeConfigs", 32},
    {"SaslAuthenticate", 36},
};

#define KD_API_COUNT (sizeof(kd_apis) / sizeof(kd_apis[0]))
/* Highest API key accepted by number; Kafka's keys are all below it. */
#define KD_API_KEY_MAX 127

/* Name or number of an API; -1 when unknown. */
static int kd_parse_api(const char *s)
{
    long v;

    for (size_t i = 0; i < KD_API_COUNT; i++) {
        if (strcasecmp(s, kd_apis[i].name) == 0) {
            return kd_apis[i].key;
        }
    }
    if (kd_parse_long(s, 0, KD_API_KEY_MAX, &v) == 0) {
        return (int)v;
    }
    return -1;
}

static const char *kd_api_name(int key)
{
    for (size_t i = 0; i < KD_API_COUNT; i++) {
        if (kd_apis[i].key == key) {
            return kd_apis[i].name;
        }
    }
    return "?";
}

/*
 * An error code by number or by librdkafka's name ("REQUEST_TIMED_OUT",
 * "_TRANSPORT", optionally prefixed "RD_KAFKA_RESP_ERR_"), any case.
 * Returns 0 and sets *err on success.
 */
static int kd_parse_err(const char *s, rd_kafka_resp_err_t *err)
{
    const struct rd_kafka_err_desc *descs;
    size_t cnt;
    long v;
    int by_number;

    if (strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0) {
        s += 18;
    }
    by_number = kd_parse_long(s, INT16_MIN, INT16_MAX, &v) == 0;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        if (descs[i].name == NULL) {
            continue;
        }
        if ((by_number && descs[i].code == (int)v) ||
            (!by_number && strcasecmp(s, descs[i].name) == 0)) {
            *err = descs[i].code;
            return 0;
        }
    }
    return -1;
}

/* ---- the server ------------------------------------------------------- */

struct kd_topic {
    char name[KD_TOPIC_NAME_MAX + 1];
    long partitions;
};

struct kd_client {
    int fd; /* -1 when the slot is free */
    size_t len;
    char buf[KD_LINE_MAX];
};

struct kd_server {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    long broker_cnt;
    const char *bootstraps; /* owned by mcluster */
    const char *bootstrap_file;
    const char *control_path;
    int bootstrap_written;
    int listen_fd;
    struct kd_client clients[KD_MAX_CLIENTS];
    /* API keys push-errors was used on, for clear-errors. */
    unsigned char pushed[KD_API_KEY_MAX + 1];
};

/* librdkafka's log lines of the cluster's owner, in our format. */
static void kd_rk_log(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf)
{
    /* syslog levels: 0-3 error, 4 warning, 5-6 notice/info, 7 debug. */
    const char *name = level <= 3   ? "error"
                       : level == 4 ? "warn"
                       : level <= 6 ? "info"
                                    : "debug";

    (void)rk;
    /* The owner never connects, so its missing bootstrap.servers is moot. */
    if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "bootstrap.servers")) {
        return;
    }
    kd_log(name, "facility=%s librdkafka=\"%s\"", fac, buf);
}

/* Probes report through their command's reply; their logs are noise. */
static void kd_probe_log(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf)
{
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

static int kd_conf_set(rd_kafka_conf_t *conf, const char *name,
                       const char *value, char *errstr, size_t errstr_size)
{
    if (rd_kafka_conf_set(conf, name, value, errstr, errstr_size) !=
        RD_KAFKA_CONF_OK) {
        return -1;
    }
    return 0;
}

/*
 * A short-lived client of our own brokers for the commands that need the
 * Kafka protocol (topics, watermarks, committed offsets), in group when
 * group is non-NULL.  A consumer, never a producer: librdkafka 2.0.2 lets
 * a producer's metadata requests auto-create topics whatever
 * allow.auto.create.topics says, and a probe must never create one.
 * Returns NULL with errstr filled on failure.
 */
static rd_kafka_t *kd_probe_new(const struct kd_server *srv, const char *group,
                                char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;

    rd_kafka_conf_set_log_cb(conf, kd_probe_log);
    if (kd_conf_set(conf, "bootstrap.servers", srv->bootstraps, errstr,
                    errstr_size) != 0 ||
        kd_conf_set(conf, "client.id", "kafka-dev-probe", errstr,
                    errstr_size) != 0 ||
        kd_conf_set(conf, "allow.auto.create.topics", "false", errstr,
                    errstr_size) != 0) {
        goto out;
    }
    if (group != NULL &&
        (kd_conf_set(conf, "group.id", group, errstr, errstr_size) != 0 ||
         kd_conf_set(conf, "enable.auto.commit", "false", errstr,
                     errstr_size) != 0)) {
        goto out;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (rk != NULL) {
        conf = NULL; /* rd_kafka_new took it */
    }
out:
    if (conf != NULL) {
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static int kd_cmp_topic_ptr(const void *a, const void *b)
{
    const rd_kafka_metadata_topic_t *const *ta = a;
    const rd_kafka_metadata_topic_t *const *tb = b;

    return strcmp((*ta)->topic, (*tb)->topic);
}

/*
 * Partition count of one topic through the probe; 0 and a sentence in
 * reply when the topic does not exist or no broker answered.  It asks for
 * all topics: the mock answers Metadata only up to v2, which has no
 * AllowAutoTopicCreation field, so asking for one unknown topic by name
 * would create it.
 */
static int kd_topic_partitions(rd_kafka_t *rk, const char *topic,
                               struct kd_buf *reply)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    int partitions = 0;

    err = rd_kafka_metadata(rk, 1, NULL, &md, KD_PROBE_TIMEOUT_MS);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        kd_buf_printf(reply,
                      "error no broker answered a metadata request within "
                      "%d ms: %s",
                      KD_PROBE_TIMEOUT_MS, rd_kafka_err2str(err));
        return 0;
    }
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0 &&
            md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            partitions = md->topics[i].partition_cnt;
        }
    }
    if (partitions == 0) {
        kd_buf_printf(reply, "error topic \"%s\" does not exist", topic);
    }
    rd_kafka_metadata_destroy(md);
    return partitions;
}

/* "topics": every topic and its partition count, sorted by name. */
static void kd_cmd_topics(struct kd_server *srv, struct kd_buf *reply)
{
    char errstr[512];
    const struct rd_kafka_metadata *md = NULL;
    const rd_kafka_metadata_topic_t **sorted = NULL;
    rd_kafka_resp_err_t err;
    rd_kafka_t *rk = kd_probe_new(srv, NULL, errstr, sizeof(errstr));

    if (rk == NULL) {
        kd_buf_printf(reply, "error cannot create a probe client: %s", errstr);
        return;
    }
    err = rd_kafka_metadata(rk, 1, NULL, &md, KD_PROBE_TIMEOUT_MS);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        kd_buf_printf(reply,
                      "error no broker answered a metadata request within "
                      "%d ms: %s",
                      KD_PROBE_TIMEOUT_MS, rd_kafka_err2str(err));
        goto out;
    }
    sorted = kd_realloc(NULL, sizeof(*sorted) * (size_t)md->topic_cnt);
    for (int i = 0; i < md->topic_cnt; i++) {
        sorted[i] = &md->topics[i];
    }
    qsort(sorted, (size_t)md->topic_cnt, sizeof(*sorted), kd_cmp_topic_ptr);
    kd_buf_printf(reply, "ok");
    for (int i = 0; i < md->topic_cnt; i++) {
        kd_buf_printf(reply, " %s:%d", sorted[i]->topic,
                      sorted[i]->partition_cnt);
    }
out:
    free(sorted);
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
}

/*
 * Watermarks of every partition of topic, appended to reply as
 * " P:LOW..HIGH"; when lost is non-NULL only partitions whose low
 * watermark is above 0 (data dropped by the cap) are appended, and *lost
 * counts them.  Returns -1 with an error reply on failure.
 */
static int kd_watermarks(rd_kafka_t *rk, const char *topic,
                         struct kd_buf *reply, int *lost)
{
    struct kd_buf err_reply = {0};
    int partitions = kd_topic_partitions(rk, topic, &err_reply);
    int rc = 0;

    if (partitions == 0) {
        kd_buf_reset(reply);
        kd_buf_printf(reply, "%s", err_reply.p);
        rc = -1;
        goto out;
    }
    for (int p = 0; p < partitions; p++) {
        int64_t lo = 0;
        int64_t hi = 0;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            rk, topic, p, &lo, &hi, KD_PROBE_TIMEOUT_MS);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            kd_buf_reset(reply);
            kd_buf_printf(reply,
                          "error no watermarks for \"%s\" [%d] within %d ms: "
                          "%s",
                          topic, p, KD_PROBE_TIMEOUT_MS, rd_kafka_err2str(err));
            rc = -1;
            goto out;
        }
        if (lost == NULL) {
            kd_buf_printf(reply, " %d:%" PRId64 "..%" PRId64, p, lo, hi);
        } else if (lo > 0) {
            kd_buf_printf(reply, " %s[%d] lost offsets 0..%" PRId64 ";", topic,
                          p, lo - 1);
            (*lost)++;
        }
    }
out:
    kd_buf_release(&err_reply);
    return rc;
}

/* "watermarks TOPIC" */
static void kd_cmd_watermarks(struct kd_server *srv, const char *topic,
                              struct kd_buf *reply)
{
    char errstr[512];
    struct kd_buf body = {0};
    rd_kafka_t *rk = kd_probe_new(srv, NULL, errstr, sizeof(errstr));

    if (rk == NULL) {
        kd_buf_printf(reply, "error cannot create a probe client: %s", errstr);
        return;
    }
    if (kd_watermarks(rk, topic, &body, NULL) == 0) {
        kd_buf_printf(reply, "ok %s%s", topic, body.p);
    } else {
        kd_buf_printf(reply, "%s", body.p);
    }
    kd_buf_release(&body);
    rd_kafka_destroy(rk);
}

/*
 * "check [TOPIC]...": did the partition cap drop data?  A low watermark
 * above 0 can only come from the cap here: this mock version has no
 * retention and no DeleteRecords.
 */
static void kd_cmd_check(struct kd_server *srv, int argc, char **argv,
                         struct kd_buf *reply)
{
    char errstr[512];
    const struct rd_kafka_metadata *md = NULL;
    struct kd_buf body = {0};
    rd_kafka_resp_err_t err;
    int lost = 0;
    int checked = 0;
    rd_kafka_t *rk = kd_probe_new(srv, NULL, errstr, sizeof(errstr));

    if (rk == NULL) {
        kd_buf_printf(reply, "error cannot create a probe client: %s", errstr);
        return;
    }
    if (argc == 0) {
        err = rd_kafka_metadata(rk, 1, NULL, &md, KD_PROBE_TIMEOUT_MS);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            kd_buf_printf(reply,
                          "error no broker answered a metadata request "
                          "within %d ms: %s",
                          KD_PROBE_TIMEOUT_MS, rd_kafka_err2str(err));
            goto out;
        }
        for (int i = 0; i < md->topic_cnt; i++) {
            if (kd_watermarks(rk, md->topics[i].topic, &body, &lost) != 0) {
                kd_buf_printf(reply, "%s", body.p);
                goto out;
            }
            checked++;
        }
    }
    for (int i = 0; i < argc; i++) {
        if (kd_watermarks(rk, argv[i], &body, &lost) != 0) {
            kd_buf_printf(reply, "%s", body.p);
            goto out;
        }
        checked++;
    }
    if (lost == 0) {
        kd_buf_printf(reply, "ok no partition lost data in %d topic(s)",
                      checked);
    } else {
        kd_buf_printf(reply,
                      "error %d partition(s) went over the mock broker's "
                      "%d MiB cap and silently dropped their oldest "
                      "batches:%s use more partitions (kafka-dev plan says "
                      "how many)",
                      lost, KD_PARTITION_CAP_MIB, body.p);
    }
out:
    kd_buf_release(&body);
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
}

/* "committed GROUP TOPIC": the group's committed offset per partition. */
static void kd_cmd_committed(struct kd_server *srv, const char *group,
                             const char *topic, struct kd_buf *reply)
{
    char errstr[512];
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t err;
    int partitions;
    rd_kafka_t *rk = kd_probe_new(srv, group, errstr, sizeof(errstr));

    if (rk == NULL) {
        kd_buf_printf(reply, "error cannot create a probe client: %s", errstr);
        return;
    }
    partitions = kd_topic_partitions(rk, topic, reply);
    if (partitions == 0) {
        goto out;
    }
    parts = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++) {
        rd_kafka_topic_partition_list_add(parts, topic, p);
    }
    err = rd_kafka_committed(rk, parts, KD_PROBE_TIMEOUT_MS);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        kd_buf_printf(reply,
                      "error no committed offsets of group \"%s\" within "
                      "%d ms: %s",
                      group, KD_PROBE_TIMEOUT_MS, rd_kafka_err2str(err));
        goto out;
    }
    kd_buf_printf(reply, "ok %s", topic);
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        if (tp->offset < 0) {
            kd_buf_printf(reply, " %d:none", tp->partition);
        } else {
            kd_buf_printf(reply, " %d:%" PRId64, tp->partition, tp->offset);
        }
    }
out:
    if (parts != NULL) {
        rd_kafka_topic_partition_list_destroy(parts);
    }
    rd_kafka_destroy(rk);
}

/* A broker id 1..N or "all" (-1, as the mock API takes it). */
static int kd_parse_broker(const struct kd_server *srv, const char *s,
                           int32_t *id, struct kd_buf *reply)
{
    long v;

    if (strcmp(s, "all") == 0) {
        *id = -1;
        return 0;
    }
    if (kd_parse_long(s, 1, srv->broker_cnt, &v) != 0) {
        kd_buf_printf(reply,
                      "error broker must be \"all\" or an id from 1 to %ld, "
                      "not \"%s\"",
                      srv->broker_cnt, s);
        return -1;
    }
    *id = (int32_t)v;
    return 0;
}

static void kd_reply_err(struct kd_buf *reply, const char *what,
                         rd_kafka_resp_err_t err)
{
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        kd_buf_printf(reply, "ok %s", what);
    } else {
        kd_buf_printf(reply, "error %s failed: %s", what,
                      rd_kafka_err2str(err));
    }
}

static void kd_cmd_push_errors(struct kd_server *srv, char **argv,
                               struct kd_buf *reply)
{
    rd_kafka_resp_err_t err;
    rd_kafka_resp_err_t *errs;
    long count;
    int api = kd_parse_api(argv[0]);

    if (api < 0) {
        kd_buf_printf(reply,
                      "error unknown request type \"%s\"; give a name such "
                      "as Produce, Fetch, OffsetCommit, or a number",
                      argv[0]);
        return;
    }
    if (kd_parse_err(argv[1], &err) != 0) {
        kd_buf_printf(reply,
                      "error unknown error code \"%s\"; give a number or a "
                      "name such as REQUEST_TIMED_OUT or _TRANSPORT",
                      argv[1]);
        return;
    }
    if ((int)err < 0 && err != RD_KAFKA_RESP_ERR__TRANSPORT) {
        kd_buf_printf(reply,
                      "error %s is a client-side error; of those the mock "
                      "broker understands only _TRANSPORT (it disconnects "
                      "the client)",
                      rd_kafka_err2name(err));
        return;
    }
    if (kd_parse_long(argv[2], 1, 100000, &count) != 0) {
        kd_buf_printf(reply, "error count must be an integer from 1 to 100000");
        return;
    }
    errs = kd_realloc(NULL, sizeof(*errs) * (size_t)count);
    for (long i = 0; i < count; i++) {
        errs[i] = err;
    }
    srv->pushed[api] = 1;
    rd_kafka_mock_push_request_errors_array(srv->mcluster, (int16_t)api,
                                            (size_t)count, errs);
    free(errs);
    kd_log("info", "pushed errors api=%s apikey=%d error=%s count=%ld",
           kd_api_name(api), api, rd_kafka_err2name(err), count);
    kd_buf_printf(reply,
                  "ok the next %ld %s request(s) (api key %d) fail with %s",
                  count, kd_api_name(api), api, rd_kafka_err2name(err));
}

static void kd_cmd_create_topic(struct kd_server *srv, const char *spec,
                                struct kd_buf *reply)
{
    char name[KD_TOPIC_NAME_MAX + 1];
    char errstr[512];
    char what[KD_TOPIC_NAME_MAX + 64];
    long partitions;
    rd_kafka_resp_err_t err;
    int repl = srv->broker_cnt < KD_MAX_REPLICATION ? (int)srv->broker_cnt
                                                    : KD_MAX_REPLICATION;

    if (kd_parse_topic_spec(spec, name, &partitions, errstr, sizeof(errstr)) !=
        0) {
        kd_buf_printf(reply, "error %s", errstr);
        return;
    }
    err =
        rd_kafka_mock_topic_create(srv->mcluster, name, (int)partitions, repl);
    snprintf(what, sizeof(what), "create-topic %s:%ld", name, partitions);
    kd_reply_err(reply, what, err);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        kd_log("info", "created topic=%s partitions=%ld", name, partitions);
    }
}

/*
 * "create-topic NAME:PARTS" on a real broker: the Admin API, replication
 * min(3, brokers) with min.insync.replicas 2 at three copies, as userpipe
 * itself creates topics (core/kafka_props.c).  TOPIC_ALREADY_EXISTS is an
 * error here, as on the mock.
 */
static void kd_remote_create_topic(struct kd_server *srv, const char *spec,
                                   struct kd_buf *reply)
{
    char name[KD_TOPIC_NAME_MAX + 1];
    char errstr[512];
    long partitions;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_NewTopic_t *nt = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    rd_kafka_resp_err_t err;
    int repl;
    rd_kafka_t *rk;

    if (kd_parse_topic_spec(spec, name, &partitions, errstr, sizeof(errstr)) !=
        0) {
        kd_buf_printf(reply, "error %s", errstr);
        return;
    }
    rk = kd_probe_new(srv, NULL, errstr, sizeof(errstr));
    if (rk == NULL) {
        kd_buf_printf(reply, "error cannot create a probe client: %s", errstr);
        return;
    }
    err = rd_kafka_metadata(rk, 0, NULL, &md, KD_PROBE_TIMEOUT_MS);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        kd_buf_printf(reply, "error no metadata within %d ms: %s",
                      KD_PROBE_TIMEOUT_MS, rd_kafka_err2str(err));
        goto out;
    }
    repl = md->broker_cnt < KD_MAX_REPLICATION ? md->broker_cnt
                                               : KD_MAX_REPLICATION;
    nt = rd_kafka_NewTopic_new(name, (int)partitions, repl, errstr,
                               sizeof(errstr));
    if (nt == NULL) {
        kd_buf_printf(reply, "error %s", errstr);
        goto out;
    }
    if (repl >= 3) {
        rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", "2");
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    if (ev == NULL) {
        kd_buf_printf(reply, "error create-topic %s: no answer within 30 s",
                      name);
        goto out;
    }
    err = rd_kafka_event_error(ev);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(
                rd_kafka_event_CreateTopics_result(ev), &n);
        if (n == 1) {
            err = rd_kafka_topic_result_error(res[0]);
        }
    }
    snprintf(errstr, sizeof(errstr), "create-topic %s:%ld", name, partitions);
    kd_reply_err(reply, errstr, err);
out:
    if (ev != NULL) {
        rd_kafka_event_destroy(ev);
    }
    if (q != NULL) {
        rd_kafka_queue_destroy(q);
    }
    if (nt != NULL) {
        rd_kafka_NewTopic_destroy(nt);
    }
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
}

/*
 * "leaders TOPIC" (" P:LEADER" per partition), "isr TOPIC" (" P:ID,ID..."
 * in-sync replicas) and "brokers" (" ID:HOST:PORT"): what the kill tests
 * of tests/kafka/ need to know whom to kill.
 */
static void kd_cmd_layout(struct kd_server *srv, const char *what,
                          const char *topic, struct kd_buf *reply)
{
    char errstr[512];
    const struct rd_kafka_metadata *md = NULL;
    const rd_kafka_metadata_topic_t *t = NULL;
    rd_kafka_resp_err_t err;
    rd_kafka_t *rk = kd_probe_new(srv, NULL, errstr, sizeof(errstr));

    if (rk == NULL) {
        kd_buf_printf(reply, "error cannot create a probe client: %s", errstr);
        return;
    }
    err = rd_kafka_metadata(rk, topic == NULL, NULL, &md, KD_PROBE_TIMEOUT_MS);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        kd_buf_printf(reply, "error no metadata within %d ms: %s",
                      KD_PROBE_TIMEOUT_MS, rd_kafka_err2str(err));
        goto out;
    }
    if (topic == NULL) {
        kd_buf_printf(reply, "ok");
        for (int i = 0; i < md->broker_cnt; i++) {
            kd_buf_printf(reply, " %d:%s:%d", md->brokers[i].id,
                          md->brokers[i].host, md->brokers[i].port);
        }
        goto out;
    }
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0) {
            t = &md->topics[i];
        }
    }
    if (t == NULL || t->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        kd_buf_printf(reply, "error topic \"%s\" does not exist", topic);
        goto out;
    }
    kd_buf_printf(reply, "ok %s", topic);
    for (int p = 0; p < t->partition_cnt; p++) {
        const rd_kafka_metadata_partition_t *mp = &t->partitions[p];
        if (strcmp(what, "leaders") == 0) {
            kd_buf_printf(reply, " %d:%d", mp->id, mp->leader);
            continue;
        }
        kd_buf_printf(reply, " %d:", mp->id);
        for (int r = 0; r < mp->isr_cnt; r++) {
            kd_buf_printf(reply, "%s%d", r ? "," : "", mp->isrs[r]);
        }
    }
out:
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
}

/* Commands only the mock can do; on a real broker they answer an error. */
static int kd_mock_only(const struct kd_server *srv, const char *cmd,
                        struct kd_buf *reply)
{
    static const char *const mock_only[] = {"limits", "broker-down",
                                            "broker-up", "broker-rtt",
                                            "push-errors", "clear-errors"};
    if (srv->mcluster != NULL) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(mock_only) / sizeof(mock_only[0]); i++) {
        if (strcmp(cmd, mock_only[i]) == 0) {
            kd_buf_printf(reply,
                          "error \"%s\" needs kafka-dev's mock cluster; on "
                          "a real broker stop or kill the broker process "
                          "instead (deploy/dev/kafka/)",
                          cmd);
            return 1;
        }
    }
    return 0;
}

static const char kd_help[] =
    "ok commands: ping | topics | create-topic NAME:PARTS | "
    "watermarks TOPIC | check [TOPIC]... | committed GROUP TOPIC | "
    "leaders TOPIC | isr TOPIC | brokers | "
    "broker-down ID|all | broker-up ID|all | broker-rtt ID|all MS | "
    "push-errors API ERRCODE COUNT | clear-errors | limits | help";

/* Runs one command line; the reply is one line without its newline. */
static void kd_command(struct kd_server *srv, char *line, struct kd_buf *reply)
{
    char *argv[KD_MAX_ARGS];
    char *save = NULL;
    char *tok;
    int argc = 0;
    int32_t id;
    long ms;

    for (tok = strtok_r(line, " \t\r", &save); tok != NULL;
         tok = strtok_r(NULL, " \t\r", &save)) {
        if (argc == KD_MAX_ARGS) {
            kd_buf_printf(reply, "error more than %d words in one command",
                          KD_MAX_ARGS);
            return;
        }
        argv[argc++] = tok;
    }
    if (argc == 0) {
        kd_buf_printf(reply, "error empty command; try help");
        return;
    }
    if (kd_mock_only(srv, argv[0], reply)) {
        return;
    }
    if (strcmp(argv[0], "ping") == 0 && argc == 1) {
        kd_buf_printf(reply, "ok pong %s", srv->bootstraps);
    } else if (strcmp(argv[0], "create-topic") == 0 && argc == 2 &&
               srv->mcluster == NULL) {
        kd_remote_create_topic(srv, argv[1], reply);
    } else if ((strcmp(argv[0], "leaders") == 0 ||
                strcmp(argv[0], "isr") == 0) &&
               argc == 2) {
        kd_cmd_layout(srv, argv[0], argv[1], reply);
    } else if (strcmp(argv[0], "brokers") == 0 && argc == 1) {
        kd_cmd_layout(srv, argv[0], NULL, reply);
    } else if (strcmp(argv[0], "help") == 0) {
        kd_buf_printf(reply, "%s", kd_help);
    } else if (strcmp(argv[0], "limits") == 0 && argc == 1) {
        kd_buf_printf(reply,
                      "ok partition_cap_bytes=%ld partition_max_batches=%ld "
                      "auto_create_partitions=%d "
                      "initial_rebalance_delay_ms=%d brokers=%ld",
                      KD_PARTITION_CAP_BYTES, KD_PARTITION_MAX_BATCHES,
                      KD_AUTO_CREATE_PARTITIONS, KD_INITIAL_REBALANCE_DELAY_MS,
                      srv->broker_cnt);
    } else if (strcmp(argv[0], "topics") == 0 && argc == 1) {
        kd_cmd_topics(srv, reply);
    } else if (strcmp(argv[0], "create-topic") == 0 && argc == 2) {
        kd_cmd_create_topic(srv, argv[1], reply);
    } else if (strcmp(argv[0], "watermarks") == 0 && argc == 2) {
        kd_cmd_watermarks(srv, argv[1], reply);
    } else if (strcmp(argv[0], "check") == 0) {
        kd_cmd_check(srv, argc - 1, argv + 1, reply);
    } else if (strcmp(argv[0], "committed") == 0 && argc == 3) {
        kd_cmd_committed(srv, argv[1], argv[2], reply);
    } else if (strcmp(argv[0], "broker-down") == 0 && argc == 2) {
        if (kd_parse_broker(srv, argv[1], &id, reply) == 0) {
            kd_reply_err(reply, "broker-down",
                         rd_kafka_mock_broker_set_down(srv->mcluster, id));
            kd_log("info", "broker down id=%s", argv[1]);
        }
    } else if (strcmp(argv[0], "broker-up") == 0 && argc == 2) {
        if (kd_parse_broker(srv, argv[1], &id, reply) == 0) {
            kd_reply_err(reply, "broker-up",
                         rd_kafka_mock_broker_set_up(srv->mcluster, id));
            kd_log("info", "broker up id=%s", argv[1]);
        }
    } else if (strcmp(argv[0], "broker-rtt") == 0 && argc == 3) {
        if (kd_parse_broker(srv, argv[1], &id, reply) != 0) {
            return;
        }
        if (kd_parse_long(argv[2], 0, 600000, &ms) != 0) {
            kd_buf_printf(reply,
                          "error rtt must be milliseconds from 0 to 600000");
            return;
        }
        kd_reply_err(reply, "broker-rtt",
                     rd_kafka_mock_broker_set_rtt(srv->mcluster, id, (int)ms));
    } else if (strcmp(argv[0], "push-errors") == 0 && argc == 4) {
        kd_cmd_push_errors(srv, argv + 1, reply);
    } else if (strcmp(argv[0], "clear-errors") == 0 && argc == 1) {
        /* The cluster-wide stacks push-errors filled; nothing else. */
        for (int key = 0; key <= KD_API_KEY_MAX; key++) {
            if (srv->pushed[key]) {
                rd_kafka_mock_clear_request_errors(srv->mcluster, (int16_t)key);
                srv->pushed[key] = 0;
            }
        }
        kd_buf_printf(reply, "ok cleared pending request errors");
    } else {
        kd_buf_printf(reply,
                      "error unknown command or wrong number of arguments: "
                      "\"%s\"; try help",
                      argv[0]);
    }
}

/* Writes all of buf; 0 on success. */
static int kd_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void kd_client_close(struct kd_client *c)
{
    close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static void kd_client_reply(struct kd_client *c, struct kd_buf *reply)
{
    kd_buf_printf(reply, "\n");
    if (kd_write_all(c->fd, reply->p, reply->len) != 0) {
        kd_client_close(c);
    }
}

/* Reads what a client sent and answers each complete line. */
static void kd_client_read(struct kd_server *srv, struct kd_client *c)
{
    ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);

    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (n <= 0) {
        kd_client_close(c);
        return;
    }
    c->len += (size_t)n;
    for (;;) {
        struct kd_buf reply = {0};
        char *nl = memchr(c->buf, '\n', c->len);
        size_t line_len;
        if (nl == NULL) {
            break;
        }
        line_len = (size_t)(nl - c->buf);
        *nl = '\0';
        kd_command(srv, c->buf, &reply);
        kd_client_reply(c, &reply);
        kd_buf_release(&reply);
        if (c->fd < 0) {
            return;
        }
        c->len -= line_len + 1;
        memmove(c->buf, nl + 1, c->len);
    }
    if (c->fd >= 0 && c->len == sizeof(c->buf)) {
        struct kd_buf reply = {0};
        kd_buf_printf(&reply, "error command longer than %d bytes",
                      KD_LINE_MAX - 1);
        kd_client_reply(c, &reply);
        kd_buf_release(&reply);
        if (c->fd >= 0) {
            kd_client_close(c);
        }
    }
}

static void kd_accept(struct kd_server *srv)
{
    int fd = accept(srv->listen_fd, NULL, NULL);
    static const char busy[] = "error too many control connections\n";

    if (fd < 0) {
        return;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    for (int i = 0; i < KD_MAX_CLIENTS; i++) {
        if (srv->clients[i].fd < 0) {
            srv->clients[i].fd = fd;
            srv->clients[i].len = 0;
            return;
        }
    }
    (void)kd_write_all(fd, busy, sizeof(busy) - 1);
    close(fd);
}

static int kd_unix_addr(const char *path, struct sockaddr_un *addr,
                        char *errstr, size_t errstr_size)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr->sun_path)) {
        snprintf(errstr, errstr_size,
                 "control socket path \"%s\" is %zu bytes, longer than the "
                 "%zu a unix socket allows; choose a shorter --control path",
                 path, strlen(path), sizeof(addr->sun_path) - 1);
        return -1;
    }
    memcpy(addr->sun_path, path, strlen(path) + 1);
    return 0;
}

/* Binds the control socket, replacing a stale one nobody listens on. */
static int kd_listen_control(struct kd_server *srv, char *errstr,
                             size_t errstr_size)
{
    struct sockaddr_un addr;
    int fd;

    if (kd_unix_addr(srv->control_path, &addr, errstr, errstr_size) != 0) {
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "socket: %s", strerror(errno));
        return -1;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        int probe;
        int alive;
        if (errno != EADDRINUSE) {
            snprintf(errstr, errstr_size,
                     "cannot bind control socket \"%s\": %s", srv->control_path,
                     strerror(errno));
            close(fd);
            return -1;
        }
        /* In use: a live kafka-dev, or a stale file of a killed one. */
        probe = socket(AF_UNIX, SOCK_STREAM, 0);
        alive = probe >= 0 &&
                connect(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0;
        if (probe >= 0) {
            close(probe);
        }
        if (alive) {
            snprintf(errstr, errstr_size,
                     "another process listens on control socket \"%s\"; "
                     "stop it or choose another --control path",
                     srv->control_path);
            close(fd);
            return -1;
        }
        unlink(srv->control_path);
        if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
            snprintf(errstr, errstr_size,
                     "cannot bind control socket \"%s\": %s", srv->control_path,
                     strerror(errno));
            close(fd);
            return -1;
        }
    }
    if (listen(fd, KD_MAX_CLIENTS) != 0) {
        snprintf(errstr, errstr_size,
                 "cannot listen on control socket \"%s\": %s",
                 srv->control_path, strerror(errno));
        close(fd);
        return -1;
    }
    srv->listen_fd = fd;
    return 0;
}

/* Writes text to path through a temp file and rename(2). */
static int kd_write_file_atomic(const char *path, const char *text,
                                char *errstr, size_t errstr_size)
{
    char tmp[PATH_MAX];
    FILE *f;
    int rc = -1;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
        (int)sizeof(tmp)) {
        snprintf(errstr, errstr_size, "path \"%.256s\" is too long", path);
        return -1;
    }
    f = fopen(tmp, "w");
    if (f == NULL) {
        snprintf(errstr, errstr_size, "cannot create \"%.256s\": %s", tmp,
                 strerror(errno));
        return -1;
    }
    if (fprintf(f, "%s\n", text) < 0 || fflush(f) != 0 ||
        fsync(fileno(f)) != 0) {
        snprintf(errstr, errstr_size, "cannot write \"%.256s\": %s", tmp,
                 strerror(errno));
        fclose(f);
        goto out;
    }
    if (fclose(f) != 0) {
        snprintf(errstr, errstr_size, "cannot write \"%.256s\": %s", tmp,
                 strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        snprintf(errstr, errstr_size,
                 "cannot rename \"%.256s\" to \"%.200s\": %s", tmp, path,
                 strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (rc != 0) {
        unlink(tmp);
    }
    return rc;
}

static void kd_server_release(struct kd_server *srv)
{
    for (int i = 0; i < KD_MAX_CLIENTS; i++) {
        if (srv->clients[i].fd >= 0) {
            kd_client_close(&srv->clients[i]);
        }
    }
    if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
        unlink(srv->control_path);
        srv->listen_fd = -1;
    }
    if (srv->bootstrap_written) {
        unlink(srv->bootstrap_file);
        srv->bootstrap_written = 0;
    }
    if (srv->mcluster != NULL) {
        rd_kafka_mock_cluster_destroy(srv->mcluster);
        srv->mcluster = NULL;
    }
    if (srv->rk != NULL) {
        rd_kafka_destroy(srv->rk);
        srv->rk = NULL;
    }
}

static void kd_usage(FILE *out)
{
    fprintf(out,
            "usage: kafka-dev [--brokers N] [--topic NAME:PARTITIONS]...\n"
            "                 [--bootstrap-file FILE] [--control PATH] "
            "[--debug]\n"
            "       kafka-dev ctl PATH COMMAND [ARG]...\n"
            "       kafka-dev plan [--partitions N] [--bytes B] [FILE|-]\n"
            "       kafka-dev keyed [FILE|-]\n"
            "       kafka-dev --partition-mb-cap\n"
            "A development Kafka broker (librdkafka mock cluster) on "
            "loopback; see deploy/dev/README.md.\n"
            "It keeps only about %d MiB per partition and silently drops "
            "older data: size topics with `kafka-dev plan`.\n",
            KD_PARTITION_CAP_MIB);
}

static int kd_serve(int argc, char **argv)
{
    struct kd_server srv;
    struct kd_topic *topics = NULL;
    size_t topic_cnt = 0;
    rd_kafka_conf_t *conf = NULL;
    struct sigaction sa;
    char errstr[512];
    int debug = 0;
    int rc = 2;

    memset(&srv, 0, sizeof(srv));
    srv.listen_fd = -1;
    srv.broker_cnt = 1;
    for (int i = 0; i < KD_MAX_CLIENTS; i++) {
        srv.clients[i].fd = -1;
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--debug") == 0) {
            debug = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            kd_usage(stdout);
            rc = 0;
            goto out;
        }
        if (v == NULL) {
            fprintf(stderr, "kafka-dev: %s needs a value\n", a);
            goto out;
        }
        i++;
        if (strcmp(a, "--brokers") == 0) {
            if (kd_parse_long(v, 1, KD_MAX_BROKERS, &srv.broker_cnt) != 0) {
                fprintf(stderr,
                        "kafka-dev: --brokers must be an integer from 1 to "
                        "%d\n",
                        KD_MAX_BROKERS);
                goto out;
            }
        } else if (strcmp(a, "--topic") == 0) {
            topics = kd_realloc(topics, sizeof(*topics) * (topic_cnt + 1));
            if (kd_parse_topic_spec(v, topics[topic_cnt].name,
                                    &topics[topic_cnt].partitions, errstr,
                                    sizeof(errstr)) != 0) {
                fprintf(stderr, "kafka-dev: %s\n", errstr);
                goto out;
            }
            topic_cnt++;
        } else if (strcmp(a, "--bootstrap-file") == 0) {
            srv.bootstrap_file = v;
        } else if (strcmp(a, "--control") == 0) {
            srv.control_path = v;
        } else {
            fprintf(stderr, "kafka-dev: unknown option \"%s\"\n", a);
            kd_usage(stderr);
            goto out;
        }
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kd_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    rc = 1;
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kd_rk_log);
    if (kd_conf_set(conf, "client.id", "kafka-dev", errstr, sizeof(errstr)) !=
            0 ||
        (debug &&
         kd_conf_set(conf, "debug", "mock", errstr, sizeof(errstr)) != 0)) {
        fprintf(stderr, "kafka-dev: %s\n", errstr);
        goto out;
    }
    /* The owner handle only hosts the cluster; it never talks to it. */
    srv.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (srv.rk == NULL) {
        fprintf(stderr, "kafka-dev: cannot create the owner client: %s\n",
                errstr);
        goto out;
    }
    conf = NULL;
    srv.mcluster = rd_kafka_mock_cluster_new(srv.rk, (int)srv.broker_cnt);
    if (srv.mcluster == NULL) {
        fprintf(stderr, "kafka-dev: cannot create the mock cluster (see the "
                        "librdkafka lines above)\n");
        goto out;
    }
    srv.bootstraps = rd_kafka_mock_cluster_bootstraps(srv.mcluster);
    for (size_t i = 0; i < topic_cnt; i++) {
        int repl = srv.broker_cnt < KD_MAX_REPLICATION ? (int)srv.broker_cnt
                                                       : KD_MAX_REPLICATION;
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
            srv.mcluster, topics[i].name, (int)topics[i].partitions, repl);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "kafka-dev: cannot create topic \"%s\": %s\n",
                    topics[i].name, rd_kafka_err2str(err));
            goto out;
        }
    }
    if (srv.control_path != NULL &&
        kd_listen_control(&srv, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kafka-dev: %s\n", errstr);
        goto out;
    }
    if (srv.bootstrap_file != NULL) {
        if (kd_write_file_atomic(srv.bootstrap_file, srv.bootstraps, errstr,
                                 sizeof(errstr)) != 0) {
            fprintf(stderr, "kafka-dev: %s\n", errstr);
            goto out;
        }
        srv.bootstrap_written = 1;
    }
    printf("%s\n", srv.bootstraps);
    fflush(stdout);
    kd_log("info",
           "ready bootstrap=%s brokers=%ld topics=%zu control=%s "
           "partition_cap_bytes=%ld",
           srv.bootstraps, srv.broker_cnt, topic_cnt,
           srv.control_path != NULL ? srv.control_path : "-",
           KD_PARTITION_CAP_BYTES);

    while (!kd_stop) {
        struct pollfd pfd[KD_MAX_CLIENTS + 1];
        struct kd_client *owner[KD_MAX_CLIENTS + 1];
        nfds_t n = 0;
        int ready;

        if (srv.listen_fd >= 0) {
            pfd[n].fd = srv.listen_fd;
            pfd[n].events = POLLIN;
            owner[n++] = NULL;
        }
        for (int i = 0; i < KD_MAX_CLIENTS; i++) {
            if (srv.clients[i].fd >= 0) {
                pfd[n].fd = srv.clients[i].fd;
                pfd[n].events = POLLIN;
                owner[n++] = &srv.clients[i];
            }
        }
        /* 100 ms: the longest a stop request waits (STYLE.md 9). */
        ready = poll(pfd, n, 100);
        if (ready < 0 && errno != EINTR) {
            kd_log("error", "poll failed: %s", strerror(errno));
            goto out;
        }
        for (nfds_t i = 0; ready > 0 && i < n; i++) {
            if (pfd[i].revents == 0) {
                continue;
            }
            if (owner[i] == NULL) {
                kd_accept(&srv);
            } else if (owner[i]->fd >= 0) {
                kd_client_read(&srv, owner[i]);
            }
        }
    }
    kd_log("info", "stopping on signal");
    rc = 0;
out:
    if (conf != NULL) {
        rd_kafka_conf_destroy(conf);
    }
    kd_server_release(&srv);
    free(topics);
    return rc;
}

/* ---- ctl: the client of the control socket ------------------------------ */

static int kd_ctl(int argc, char **argv)
{
    struct sockaddr_un addr;
    struct timeval tv = {KD_CTL_TIMEOUT_S, 0};
    struct kd_buf line = {0};
    char errstr[512];
    char reply[65536];
    size_t got = 0;
    int fd = -1;
    int rc = 2;

    if (argc < 4) {
        fprintf(stderr, "usage: kafka-dev ctl PATH COMMAND [ARG]...\n");
        return 2;
    }
    if (kd_unix_addr(argv[2], &addr, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kafka-dev ctl: %s\n", errstr);
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        kd_buf_printf(&line, "%s%s", i > 3 ? " " : "", argv[i]);
    }
    kd_buf_printf(&line, "\n");
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        fprintf(stderr,
                "kafka-dev ctl: cannot connect to control socket \"%s\": %s "
                "(is kafka-dev running?)\n",
                argv[2], strerror(errno));
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (kd_write_all(fd, line.p, line.len) != 0) {
        fprintf(stderr, "kafka-dev ctl: cannot send the command: %s\n",
                strerror(errno));
        goto out;
    }
    while (got < sizeof(reply) - 1) {
        ssize_t n = read(fd, reply + got, sizeof(reply) - 1 - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        if (memchr(reply, '\n', got) != NULL) {
            break;
        }
    }
    reply[got] = '\0';
    if (got == 0 || strchr(reply, '\n') == NULL) {
        fprintf(stderr, "kafka-dev ctl: no reply from \"%s\" within %d s\n",
                argv[2], KD_CTL_TIMEOUT_S);
        goto out;
    }
    if (strncmp(reply, "ok", 2) == 0) {
        fputs(reply, stdout);
        rc = 0;
    } else {
        fputs(reply, stderr);
        rc = 1;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    kd_buf_release(&line);
    return rc;
}

/* "kafka-dev remote BOOTSTRAP COMMAND [ARG]...": one command run here,
 * against whatever broker BOOTSTRAP names; exit status as ctl's. */
static int kd_remote(int argc, char **argv)
{
    struct kd_server srv;
    struct kd_buf line = {0};
    struct kd_buf reply = {0};
    int rc;

    if (argc < 4) {
        fprintf(stderr,
                "usage: kafka-dev remote BOOTSTRAP COMMAND [ARG]...\n");
        return 2;
    }
    memset(&srv, 0, sizeof(srv));
    srv.bootstraps = argv[2];
    srv.listen_fd = -1;
    for (int i = 3; i < argc; i++) {
        kd_buf_printf(&line, "%s%s", i > 3 ? " " : "", argv[i]);
    }
    kd_command(&srv, line.p, &reply);
    rc = strncmp(reply.p, "ok", 2) == 0 ? 0 : 1;
    fprintf(rc == 0 ? stdout : stderr, "%s\n", reply.p);
    kd_buf_release(&line);
    kd_buf_release(&reply);
    return rc;
}

/* ---- keyed and plan: the user_id of an NDJSON line --------------------- */

struct kd_scan {
    const char *p;
    const char *end;
};

static void kd_scan_ws(struct kd_scan *s)
{
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || *s->p == '\n')) {
        s->p++;
    }
}

static int kd_hex4(const char *p, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (unsigned)(c - 'A' + 10);
        } else {
            return -1;
        }
    }
    *out = v;
    return 0;
}

/* Appends code point cp as UTF-8; -1 when out has no room. */
static int kd_put_utf8(char *out, size_t out_size, size_t *len, unsigned cp)
{
    unsigned char b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (out == NULL) {
        return 0;
    }
    if (*len + n >= out_size) {
        return -1;
    }
    memcpy(out + *len, b, n);
    *len += n;
    return 0;
}

/*
 * Scans a JSON string at s->p (on its opening quote) and, when out is not
 * NULL, decodes it into out (NUL-terminated).  Returns -1 when the string
 * is malformed or does not fit.
 */
static int kd_scan_string(struct kd_scan *s, char *out, size_t out_size,
                          size_t *out_len)
{
    size_t len = 0;

    if (s->p >= s->end || *s->p != '"') {
        return -1;
    }
    s->p++;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p++;
        unsigned cp;
        if (c == '"') {
            if (out != NULL) {
                out[len] = '\0';
                *out_len = len;
            }
            return 0;
        }
        if (c < 0x20) {
            return -1;
        }
        if (c != '\\') {
            if (out != NULL) {
                if (len + 1 >= out_size) {
                    return -1;
                }
                out[len++] = (char)c;
            }
            continue;
        }
        if (s->p >= s->end) {
            return -1;
        }
        c = (unsigned char)*s->p++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            cp = c;
            break;
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u':
            if (s->end - s->p < 4 || kd_hex4(s->p, &cp) != 0) {
                return -1;
            }
            s->p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
                    kd_hex4(s->p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    return -1;
                }
                s->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -1;
            }
            break;
        default:
            return -1;
        }
        if (kd_put_utf8(out, out_size, &len, cp) != 0) {
            return -1;
        }
    }
    return -1;
}

/* Skips one JSON value of any kind; -1 when malformed. */
static int kd_scan_value(struct kd_scan *s, int depth)
{
    kd_scan_ws(s);
    if (s->p >= s->end || depth > KD_JSON_DEPTH_MAX) {
        return -1;
    }
    if (*s->p == '"') {
        return kd_scan_string(s, NULL, 0, NULL);
    }
    if (*s->p == '{' || *s->p == '[') {
        char close = *s->p == '{' ? '}' : ']';
        s->p++;
        kd_scan_ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }
        for (;;) {
            if (close == '}') {
                kd_scan_ws(s);
                if (kd_scan_string(s, NULL, 0, NULL) != 0) {
                    return -1;
                }
                kd_scan_ws(s);
                if (s->p >= s->end || *s->p != ':') {
                    return -1;
                }
                s->p++;
            }
            if (kd_scan_value(s, depth + 1) != 0) {
                return -1;
            }
            kd_scan_ws(s);
            if (s->p >= s->end) {
                return -1;
            }
            if (*s->p == close) {
                s->p++;
                return 0;
            }
            if (*s->p != ',') {
                return -1;
            }
            s->p++;
        }
    }
    /* A number, true, false or null: its characters up to a delimiter. */
    {
        const char *start = s->p;
        while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']' &&
               *s->p != ' ' && *s->p != '\t' && *s->p != '\r' &&
               *s->p != '\n') {
            s->p++;
        }
        return s->p > start ? 0 : -1;
    }
}

/*
 * The first top-level "user_id" string of an NDJSON line, decoded, into
 * key (NUL-terminated).  Returns its length, or -1 when the line has none
 * usable as a kcat key: not an object up to that member, user_id not a
 * string, too long, or holding a tab, newline or NUL that would break
 * kcat's "key<TAB>value" line framing.
 */
static long kd_user_id(const char *line, size_t len, char *key, size_t key_size)
{
    struct kd_scan s = {line, line + len};
    char name[16];
    size_t name_len;
    size_t key_len;

    kd_scan_ws(&s);
    if (s.p >= s.end || *s.p != '{') {
        return -1;
    }
    s.p++;
    for (;;) {
        kd_scan_ws(&s);
        if (s.p >= s.end || *s.p != '"') {
            return -1;
        }
        /* Names longer than "user_id" do not fit name: skip them. */
        {
            struct kd_scan probe = s;
            if (kd_scan_string(&probe, name, sizeof(name), &name_len) != 0) {
                name_len = 0;
                name[0] = '\0';
                if (kd_scan_string(&s, NULL, 0, NULL) != 0) {
                    return -1;
                }
            } else {
                s = probe;
            }
        }
        kd_scan_ws(&s);
        if (s.p >= s.end || *s.p != ':') {
            return -1;
        }
        s.p++;
        kd_scan_ws(&s);
        if (name_len == 7 && memcmp(name, "user_id", 7) == 0) {
            if (s.p >= s.end || *s.p != '"' ||
                kd_scan_string(&s, key, key_size, &key_len) != 0) {
                return -1;
            }
            if (key_len == 0 || memchr(key, '\t', key_len) != NULL ||
                memchr(key, '\n', key_len) != NULL || strlen(key) != key_len) {
                return -1;
            }
            return (long)key_len;
        }
        if (kd_scan_value(&s, 1) != 0) {
            return -1;
        }
        kd_scan_ws(&s);
        if (s.p >= s.end || *s.p != ',') {
            return -1;
        }
        s.p++;
    }
}

static FILE *kd_open_input(const char *path)
{
    FILE *f;

    if (path == NULL || strcmp(path, "-") == 0) {
        return stdin;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "kafka-dev: cannot open \"%s\": %s\n", path,
                strerror(errno));
    }
    return f;
}

/* Drops the line's final newline; returns the new length. */
static size_t kd_chomp(char *line, ssize_t n)
{
    size_t len = (size_t)n;

    if (len > 0 && line[len - 1] == '\n') {
        line[--len] = '\0';
    }
    return len;
}

/*
 * "keyed [FILE]": prints "KEY<TAB>LINE" per line for `kcat -K '\t'`, and
 * "<TAB>LINE" when the line has no usable user_id (kcat -Z turns the
 * empty key into a null key).  Empty lines are skipped, as kcat skips them.
 */
static int kd_keyed(int argc, char **argv)
{
    char key[KD_KEY_MAX];
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    FILE *in = kd_open_input(argc > 2 ? argv[2] : NULL);
    int rc = 0;

    if (in == NULL) {
        return 1;
    }
    for (;;) {
        size_t len;
        long key_len;
        n = getline(&line, &cap, in);
        if (n < 0) {
            break;
        }
        len = kd_chomp(line, n);
        if (len == 0) {
            continue;
        }
        key_len = kd_user_id(line, len, key, sizeof(key));
        if (key_len < 0) {
            key[0] = '\0';
        }
        if (printf("%s\t", key) < 0 || fwrite(line, 1, len, stdout) != len ||
            putchar('\n') == EOF) {
            fprintf(stderr, "kafka-dev keyed: write failed: %s\n",
                    strerror(errno));
            rc = 1;
            break;
        }
    }
    if (ferror(in)) {
        fprintf(stderr, "kafka-dev keyed: read failed: %s\n", strerror(errno));
        rc = 1;
    }
    free(line);
    if (in != stdin) {
        fclose(in);
    }
    if (fflush(stdout) != 0) {
        rc = 1;
    }
    return rc;
}

/* One message of a planned load. */
struct kd_plan_msg {
    size_t key_off; /* into the key arena */
    size_t key_len; /* 0: no key, spread at random */
    size_t bytes;   /* estimated bytes in the partition log */
};

struct kd_plan {
    struct kd_plan_msg *msgs;
    size_t cnt;
    size_t cap;
    char *keys;
    size_t keys_len;
    size_t keys_cap;
    uint64_t total_bytes;
    uint64_t keyless_bytes;
    uint64_t *per_part;
};

/* Fullest partition's estimated bytes when spread over n partitions. */
static uint64_t kd_plan_spread(struct kd_plan *pl, int32_t n, int32_t *fullest)
{
    uint64_t max = 0;

    pl->per_part = kd_realloc(pl->per_part, sizeof(uint64_t) * (size_t)n);
    memset(pl->per_part, 0, sizeof(uint64_t) * (size_t)n);
    for (size_t i = 0; i < pl->cnt; i++) {
        const struct kd_plan_msg *m = &pl->msgs[i];
        int32_t p;
        if (m->key_len == 0) {
            continue;
        }
        /* librdkafka's own partitioner, the default of kcat: crc32 % n. */
        p = rd_kafka_msg_partitioner_consistent(NULL, pl->keys + m->key_off,
                                                m->key_len, n, NULL, NULL);
        pl->per_part[p] += m->bytes;
    }
    *fullest = 0;
    for (int32_t p = 0; p < n; p++) {
        /* Keyless messages land at random: count an even share each. */
        pl->per_part[p] += (pl->keyless_bytes + (uint64_t)n - 1) / (uint64_t)n;
        if (pl->per_part[p] > max) {
            max = pl->per_part[p];
            *fullest = p;
        }
    }
    return max;
}

/*
 * "plan [--partitions N] [--bytes B] [FILE|-]": prints one line of
 * key=value fields; exits 0 when the load fits (or no partition count was
 * given), 1 when it does not fit in N partitions, 2 on a usage error.
 */
static int kd_plan(int argc, char **argv)
{
    struct kd_plan pl;
    const uint64_t usable =
        (uint64_t)KD_PARTITION_CAP_BYTES * KD_USABLE_PERCENT / 100;
    const char *path = NULL;
    char key[KD_KEY_MAX];
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long partitions = 0;
    long bytes = -1;
    int32_t needed;
    int32_t fullest = 0;
    uint64_t fullest_bytes;
    FILE *in;
    int rc = 2;

    memset(&pl, 0, sizeof(pl));
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--partitions") == 0 && i + 1 < argc) {
            if (kd_parse_long(argv[++i], 1, KD_MAX_PARTITIONS, &partitions) !=
                0) {
                fprintf(stderr,
                        "kafka-dev plan: --partitions must be 1 to "
                        "%d\n",
                        KD_MAX_PARTITIONS);
                return 2;
            }
        } else if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc) {
            if (kd_parse_long(argv[++i], 0, LONG_MAX, &bytes) != 0) {
                fprintf(stderr, "kafka-dev plan: --bytes must be a byte "
                                "count\n");
                return 2;
            }
        } else if (path == NULL && (argv[i][0] != '-' || argv[i][1] == '\0')) {
            path = argv[i];
        } else {
            fprintf(stderr, "usage: kafka-dev plan [--partitions N] "
                            "[--bytes B] [FILE|-]\n");
            return 2;
        }
    }

    if (bytes >= 0) {
        /* Even spread assumed: keys may skew it, see the FILE form. */
        needed = (int32_t)(((uint64_t)bytes + usable - 1) / usable);
        if (needed < 1) {
            needed = 1;
        }
        printf("needed=%d bytes=%ld usable_bytes=%" PRIu64 " cap_bytes=%ld\n",
               needed, bytes, usable, KD_PARTITION_CAP_BYTES);
        if (partitions > 0) {
            return partitions >= needed ? 0 : 1;
        }
        return 0;
    }

    in = kd_open_input(path);
    if (in == NULL) {
        return 2;
    }
    for (;;) {
        size_t len;
        long key_len;
        struct kd_plan_msg *m;
        n = getline(&line, &cap, in);
        if (n < 0) {
            break;
        }
        len = kd_chomp(line, n);
        if (len == 0) {
            continue;
        }
        key_len = kd_user_id(line, len, key, sizeof(key));
        if (pl.cnt == pl.cap) {
            pl.cap = pl.cap ? pl.cap * 2 : 1024;
            pl.msgs = kd_realloc(pl.msgs, sizeof(*pl.msgs) * pl.cap);
        }
        m = &pl.msgs[pl.cnt++];
        m->key_off = pl.keys_len;
        m->key_len = key_len > 0 ? (size_t)key_len : 0;
        m->bytes = len + m->key_len + KD_RECORD_OVERHEAD_BYTES;
        pl.total_bytes += m->bytes;
        if (m->key_len == 0) {
            pl.keyless_bytes += m->bytes;
        } else {
            if (pl.keys_len + m->key_len > pl.keys_cap) {
                pl.keys_cap = (pl.keys_len + m->key_len) * 2;
                pl.keys = kd_realloc(pl.keys, pl.keys_cap);
            }
            memcpy(pl.keys + pl.keys_len, key, m->key_len);
            pl.keys_len += m->key_len;
        }
    }
    if (ferror(in)) {
        fprintf(stderr, "kafka-dev plan: read failed: %s\n", strerror(errno));
        goto out;
    }

    /* The fewest partitions, from the even-spread bound upwards. */
    needed = (int32_t)((pl.total_bytes + usable - 1) / usable);
    if (needed < 1) {
        needed = 1;
    }
    while (needed < KD_PLAN_MAX_PARTITIONS &&
           kd_plan_spread(&pl, needed, &fullest) > usable) {
        needed++;
    }
    if (partitions > 0) {
        fullest_bytes = kd_plan_spread(&pl, (int32_t)partitions, &fullest);
        printf("fits=%s partitions=%ld needed=%d messages=%zu bytes=%" PRIu64
               " fullest_partition=%d fullest_bytes=%" PRIu64
               " usable_bytes=%" PRIu64 " cap_bytes=%ld\n",
               fullest_bytes <= usable ? "yes" : "no", partitions, needed,
               pl.cnt, pl.total_bytes, fullest, fullest_bytes, usable,
               KD_PARTITION_CAP_BYTES);
        rc = fullest_bytes <= usable ? 0 : 1;
    } else {
        printf("needed=%d messages=%zu bytes=%" PRIu64 " usable_bytes=%" PRIu64
               " cap_bytes=%ld\n",
               needed, pl.cnt, pl.total_bytes, usable, KD_PARTITION_CAP_BYTES);
        rc = 0;
    }
out:
    free(line);
    free(pl.msgs);
    free(pl.keys);
    free(pl.per_part);
    if (in != stdin) {
        fclose(in);
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "ctl") == 0) {
        return kd_ctl(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "remote") == 0) {
        return kd_remote(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "plan") == 0) {
        return kd_plan(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "keyed") == 0) {
        return kd_keyed(argc, argv);
    }
    if (argc == 2 && strcmp(argv[1], "--partition-mb-cap") == 0) {
        printf("%d\n", KD_PARTITION_CAP_MIB);
        return 0;
    }
    return kd_serve(argc, argv);
}
