/*
 * kafka_dev_mock.c: `kafka-dev` serving: parses the server's options,
 * creates the owner handle and its librdkafka mock cluster with the
 * topics asked for, writes the bootstrap file, then polls the control
 * socket until SIGTERM or SIGINT, and releases all of it on the way out.
 *
 * Why separate: this is the server's life; what a control command does is
 * in kafka_dev_cmd.c and kafka_dev_probe.c, the socket in kafka_dev_ctl.c.
 *
 * Invariants: the signal handler only sets kd_stop and the loop wakes at
 * least every 100 ms; the bootstrap file appears whole (temp file +
 * rename) only once the brokers listen, and is removed on a clean exit,
 * as is the control socket.
 */
#include "kafka_dev.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct kd_topic {
    char name[KD_TOPIC_NAME_MAX + 1];
    long partitions;
};

static volatile sig_atomic_t kd_stop;

static void kd_on_signal(int sig)
{
    (void)sig;
    kd_stop = 1;
}

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

int kd_serve(int argc, char **argv)
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
