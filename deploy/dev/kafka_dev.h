/*
 * kafka_dev.h: what the files of kafka-dev share, and nothing outside
 * deploy/dev includes: the mock broker's limits and our input caps, the
 * growing string every reply is built in, the server with its control
 * clients, and the functions one file calls in another.
 *
 *   kafka-dev.c        main: picks the mode; the usage text
 *   kafka_dev_util.c   logging, allocation, the growing string, number
 *                      and topic-spec parsing, setting a librdkafka conf
 *   kafka_dev_mock.c   serve: the mock cluster, its topics, the bootstrap
 *                      file, the signals and the poll loop
 *   kafka_dev_ctl.c    the control socket: the server's side, and `ctl`
 *   kafka_dev_cmd.c    the command interpreter: one line in, one reply
 *                      out; the mock-only commands; `remote`
 *   kafka_dev_probe.c  the commands a Kafka client answers (topics,
 *                      watermarks, check, committed, layout), on the mock
 *                      or on a real broker
 *   kafka_dev_json.c   the JSON scanner that finds a line's user_id
 *   kafka_dev_load.c   `keyed` and `plan`: the keyed load and its sizing
 *
 * Like the rest of kafka-dev it uses librdkafka only, never core/ nor a
 * stage (kafka-dev.c says why).
 *
 * The mock broker's limits are constants below, each naming where in
 * librdkafka (2.8.0, deps/librdkafka.mk; unchanged since 2.0.2) it comes
 * from; none but the group delay can be tuned through its public mock API.  The partition cap is the dangerous one
 * (older batches are dropped without a word), so `plan` says beforehand
 * whether data fits, and the `check` command says afterwards whether any
 * partition lost its oldest data.
 */
#ifndef KAFKA_DEV_H
#define KAFKA_DEV_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Bytes of record batches a mock partition keeps: rd_kafka_mock_msgset_new()
 * drops the oldest batches while the log is over this size (librdkafka
 * 2.8.0 src/rdkafka_mock.c, rd_kafka_mock_partition_init(): max_size =
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
 * as the mock's default (rdkafka_mock.c, defaults.
 * group_initial_rebalance_delay_ms, "same as group.initial.rebalance.delay.ms
 * on the broker").  rd_kafka_mock_group_initial_rebalance_delay_ms() could
 * change it since 2.8.0 came in; kafka-dev keeps the broker's default,
 * which the tests' timings and deploy/dev/README.md assume.
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
/* Highest API key accepted by number; Kafka's keys are all below it. */
#define KD_API_KEY_MAX 127

/* A growing NUL-terminated string. */
struct kd_buf {
    char *p;
    size_t len;
    size_t cap;
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

/* ---- kafka_dev_util.c --------------------------------------------------- */

/* One structured line on stderr, in the format of core/log.c. */
void kd_log(const char *level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* realloc that aborts when out of memory; never NULL. */
void *kd_realloc(void *ptr, size_t size);
/* Appends to b, growing it; b->p stays NUL-terminated. */
void kd_buf_printf(struct kd_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void kd_buf_reset(struct kd_buf *b);
void kd_buf_release(struct kd_buf *b);
/* A decimal integer in [min, max]; 0 on success, -1 otherwise. */
int kd_parse_long(const char *s, long min, long max, long *out);
/* "NAME:PARTS" into name (KD_TOPIC_NAME_MAX + 1 bytes) and partitions;
 * -1 with errstr filled on failure. */
int kd_parse_topic_spec(const char *spec, char *name, long *partitions,
                        char *errstr, size_t errstr_size);
/* rd_kafka_conf_set; -1 with errstr filled on failure. */
int kd_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                char *errstr, size_t errstr_size);

/* ---- kafka_dev_mock.c --------------------------------------------------- */

/* `kafka-dev [OPTION]...`: serves until SIGTERM; the exit status. */
int kd_serve(int argc, char **argv);

/* ---- kafka_dev_ctl.c ---------------------------------------------------- */

/* Binds and listens on srv->control_path; -1 with errstr filled. */
int kd_listen_control(struct kd_server *srv, char *errstr, size_t errstr_size);
/* Takes one connection into a free client slot, or refuses it. */
void kd_accept(struct kd_server *srv);
/* Reads what a client sent and answers each complete line. */
void kd_client_read(struct kd_server *srv, struct kd_client *c);
void kd_client_close(struct kd_client *c);
/* `kafka-dev ctl PATH COMMAND [ARG]...`: 0 ok, 1 error reply, 2 no reply. */
int kd_ctl(int argc, char **argv);

/* ---- kafka_dev_cmd.c ---------------------------------------------------- */

/* Runs one command line (changed in place); reply is one line without its
 * newline, starting "ok" or "error". */
void kd_command(struct kd_server *srv, char *line, struct kd_buf *reply);
/* "ok WHAT" when err is NO_ERROR, else "error WHAT failed: ...". */
void kd_reply_err(struct kd_buf *reply, const char *what,
                  rd_kafka_resp_err_t err);
/* `kafka-dev remote BOOTSTRAP COMMAND [ARG]...`: exit status as kd_ctl's. */
int kd_remote(int argc, char **argv);

/* ---- kafka_dev_probe.c: each appends its reply to reply ----------------- */

void kd_cmd_topics(struct kd_server *srv, struct kd_buf *reply);
void kd_cmd_watermarks(struct kd_server *srv, const char *topic,
                       struct kd_buf *reply);
void kd_cmd_check(struct kd_server *srv, int argc, char **argv,
                  struct kd_buf *reply);
void kd_cmd_committed(struct kd_server *srv, const char *group,
                      const char *topic, struct kd_buf *reply);
/* "leaders TOPIC", "isr TOPIC", or "brokers" with topic NULL. */
void kd_cmd_layout(struct kd_server *srv, const char *what, const char *topic,
                   struct kd_buf *reply);
/* create-topic on a real broker, through the Admin API. */
void kd_remote_create_topic(struct kd_server *srv, const char *spec,
                            struct kd_buf *reply);

/* ---- kafka_dev_json.c --------------------------------------------------- */

/* The first top-level "user_id" string of a line, decoded into key
 * (NUL-terminated); its length, or -1 when none is usable as a key. */
long kd_user_id(const char *line, size_t len, char *key, size_t key_size);

/* ---- kafka_dev_load.c --------------------------------------------------- */

/* `kafka-dev keyed [FILE|-]` and `kafka-dev plan ...`: exit statuses. */
int kd_keyed(int argc, char **argv);
int kd_plan(int argc, char **argv);

/* ---- kafka-dev.c -------------------------------------------------------- */

void kd_usage(FILE *out);

#endif
