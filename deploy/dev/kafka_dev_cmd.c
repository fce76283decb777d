/*
 * kafka_dev_cmd.c: the command interpreter of the control socket and of
 * `kafka-dev remote`: splits one line into words, runs the command and
 * builds its one-line reply.  The commands that change the mock (faults,
 * create-topic, brokers down and up) are here; those a Kafka client
 * answers are in kafka_dev_probe.c.
 *
 * Why separate: the same interpreter serves the socket (kafka_dev_ctl.c)
 * and `remote`, which runs it here against any broker; without a mock
 * (srv->mcluster NULL) the mock-only commands answer an error.
 *
 * Invariant: every reply is one line, without its newline, that starts
 * "ok" or "error".
 */
#include "kafka_dev.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

void kd_reply_err(struct kd_buf *reply, const char *what,
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

/* Commands only the mock can do; on a real broker they answer an error. */
static int kd_mock_only(const struct kd_server *srv, const char *cmd,
                        struct kd_buf *reply)
{
    static const char *const mock_only[] = {"limits",      "broker-down",
                                            "broker-up",   "broker-rtt",
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
void kd_command(struct kd_server *srv, char *line, struct kd_buf *reply)
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

/* "kafka-dev remote BOOTSTRAP COMMAND [ARG]...": one command run here,
 * against whatever broker BOOTSTRAP names; exit status as ctl's. */
int kd_remote(int argc, char **argv)
{
    struct kd_server srv;
    struct kd_buf line = {0};
    struct kd_buf reply = {0};
    int rc;

    if (argc < 4) {
        fprintf(stderr, "usage: kafka-dev remote BOOTSTRAP COMMAND [ARG]...\n");
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
