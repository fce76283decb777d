/*
 * claims.c: the shared metadata schema through a Kafka topic.
 *
 * The topic has one partition, so its order is the one order every
 * userpipe instance sees.  A claim is a record keyed by the schema key
 * whose value is {"key","type","scope","by","at"}.  Each instance reads
 * the topic from the beginning and keeps following it, applying claims
 * with schema_put: the first claim of a key in the topic wins, later ones
 * are ignored.  An instance that meets a key it has no type for produces a
 * claim and waits (the caller parks the event) until the key has a type:
 * whether its own claim or a competitor's came first, the type the schema
 * then holds is the topic's first claim, the one every instance applies.
 *
 * Invariant: a key's type in the schema never comes from anywhere but the
 * topic (or the seed, imported as claims), so instances cannot disagree.
 */
#include "schema.h"
#include "schemas_int.h"
#include "../core/kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

struct origin {
    char *by;
    char *at;
};

struct schema_claims {
    rd_kafka_t *prod;
    rd_kafka_t *cons;
    char *topic;
    char *instance;
    char *scope;
    struct schema *sch;
    struct schema *mine;    /* keys this instance claimed */
    struct origin *origins; /* by schema entry index */
    size_t norigins;
    size_t in_flight;
    int64_t next_offset; /* of the reader */
    struct schema_claims_stats st;
    int scope_warned;
    int full_warned;
    int synced;      /* read to its end once */
    size_t max_keys; /* the schema's cap: claims beyond it are ignored */
    int32_t leader;  /* of the topic's partition at start, -1 unknown */
    char *bootstrap; /* for the sentence of a misconfigured topic */
    char error[512];
};

static int topic_gone(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
           err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
           err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
}

/* The sentence of a schema topic deleted under a running instance (issue
 * 20, measured on Apache Kafka 4: the next claim fails within 2 s with
 * "Local: Unknown partition", the reader with "Unknown topic or
 * partition").  Stopping is the one safe answer: the instances can no
 * longer agree on a new key, and a topic created again starts empty. */
static void set_gone(struct schema_claims *sc, rd_kafka_resp_err_t err)
{
    snprintf(sc->error, sizeof(sc->error),
             "the schema topic '%s' no longer exists (%s): it was deleted "
             "under a running instance; restore it (userpipe schema import "
             "of an export), or restart userpipe, which creates it empty "
             "and learns the types again",
             sc->topic, rd_kafka_err2str(err));
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct schema_claims *sc = opaque;
    (void)rk;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && sc->error[0] == '\0') {
        if (topic_gone(m->err)) {
            set_gone(sc, m->err);
            return;
        }
        snprintf(sc->error, sizeof(sc->error),
                 "cannot write a claim to the schema topic '%s': %s", sc->topic,
                 rd_kafka_err2str(m->err));
    }
}

/* A client's configuration: what kafka.* says of the connection, nothing
 * of the pipeline's consumer tuning (core/kafka.h, CORE_KAFKA_SCHEMA). */
static rd_kafka_conf_t *base_conf(const struct schema_claims_config *cfg,
                                  char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    struct core_kafka_props user = {cfg->kafka_keys, cfg->kafka_values,
                                    cfg->kafka_count};

    if (core_kafka_apply(conf, CORE_KAFKA_SCHEMA, &user, errstr, errstr_size) !=
        CORE_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char e[256];
    return rd_kafka_conf_set(conf, k, v, e, sizeof(e)) == RD_KAFKA_CONF_OK ? 0
                                                                           : -1;
}

/* The schema topic's partitions (-1 missing) and the brokers the cluster
 * has, from one metadata request that never creates the topic
 * (allow.auto.create.topics=false on every client, core/kafka.h). */
static rd_kafka_resp_err_t topic_partitions(struct schema_claims *sc,
                                            int *parts, int *brokers)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(sc->prod, sc->topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(sc->prod, 0, rkt, &md, 10000);

    *parts = -1;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        *brokers = md->broker_cnt;
        if (md->topic_cnt != 1) {
            err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        } else if (md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            *parts = md->topics[0].partition_cnt;
            if (md->topics[0].partition_cnt > 0) {
                sc->leader = md->topics[0].partitions[0].leader;
            }
        } else if (md->topics[0].err !=
                   RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            err = md->topics[0].err;
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return err;
}

/* Creates the schema topic: one partition, replication min(3, brokers)
 * with min.insync.replicas 2 where there are 3 copies, unlimited
 * retention, no compaction (every claim is history).  A replica that lost
 * the race gets TOPIC_ALREADY_EXISTS, which is success: the caller reads
 * the partition count again.  Fills e on failure. */
static rd_kafka_resp_err_t create_topic(struct schema_claims *sc, int brokers,
                                        char *e, size_t e_size)
{
    int rf = core_kafka_replication(brokers);
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(sc->topic, 1, rf, e, e_size);
    rd_kafka_queue_t *q = rd_kafka_queue_new(sc->prod);
    rd_kafka_AdminOptions_t *opt =
        rd_kafka_AdminOptions_new(sc->prod, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_event_t *ev;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;

    if (nt == NULL) {
        err = RD_KAFKA_RESP_ERR__INVALID_ARG;
        goto out;
    }
    rd_kafka_NewTopic_set_config(nt, "retention.ms", "-1");
    rd_kafka_NewTopic_set_config(nt, "retention.bytes", "-1");
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "delete");
    if (rf >= 3) {
        rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", "2");
    }
    rd_kafka_AdminOptions_set_operation_timeout(opt, 10000, NULL, 0);
    rd_kafka_CreateTopics(sc->prod, &nt, 1, opt, q);
    ev = rd_kafka_queue_poll(q, 15000);
    snprintf(e, e_size, "no answer within 15 s");
    if (ev != NULL) {
        const rd_kafka_CreateTopics_result_t *res =
            rd_kafka_event_CreateTopics_result(ev);
        const rd_kafka_topic_result_t **tr;
        size_t n = 0;

        err = rd_kafka_event_error(ev);
        snprintf(e, e_size, "%s", rd_kafka_event_error_string(ev));
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && res != NULL) {
            tr = rd_kafka_CreateTopics_result_topics(res, &n);
            if (n == 1) {
                err = rd_kafka_topic_result_error(tr[0]);
                snprintf(e, e_size, "%s",
                         rd_kafka_topic_result_error_string(tr[0])
                             ? rd_kafka_topic_result_error_string(tr[0])
                             : rd_kafka_err2str(err));
            }
        }
        rd_kafka_event_destroy(ev);
    }
    if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        err = RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        core_log(CORE_LOG_INFO, "schema",
                 "msg=\"schema topic created\" topic=%s partitions=1 "
                 "replication=%d",
                 sc->topic, rf);
    }
out:
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    if (nt != NULL) {
        rd_kafka_NewTopic_destroy(nt);
    }
    return err;
}

/*
 * The topic's configuration (issue 20): claims are keyed by metadata key,
 * so compaction keeps the last claim of a key, the loser, and a finite
 * retention forgets winners; either way a new instance would learn other
 * types than the running ones.  Refused with the command that fixes it.
 * A broker that cannot describe configs (librdkafka's mock cluster behind
 * kafka-dev) or refuses it (no DescribeConfigs ACL) leaves it unchecked,
 * with a warning: the check protects, it must not stop a working set-up.
 */
static enum core_err check_topic_config(struct schema_claims *sc, char *errstr,
                                        size_t errstr_size)
{
    rd_kafka_ConfigResource_t *cr =
        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, sc->topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(sc->prod);
    rd_kafka_AdminOptions_t *opt =
        rd_kafka_AdminOptions_new(sc->prod, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_event_t *ev;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    const char *why = "no answer within 15 s";
    const char *policy = NULL, *ret_ms = NULL, *ret_bytes = NULL;
    enum core_err rc = CORE_OK;
    char fix[256] = "";

    if (sc->leader >= 0) {
        /* any broker answers DescribeConfigs of a topic; the partition's
         * leader is one the producer knows (the mock cluster times out
         * waiting for its controller, after 10 s, and tells the leader's
         * client at once that it does not support the request) */
        char e[128];
        rd_kafka_AdminOptions_set_broker(opt, sc->leader, e, sizeof(e));
    }
    rd_kafka_AdminOptions_set_request_timeout(opt, 10000, NULL, 0);
    rd_kafka_DescribeConfigs(sc->prod, &cr, 1, opt, q);
    ev = rd_kafka_queue_poll(q, 15000);
    if (ev != NULL) {
        const rd_kafka_DescribeConfigs_result_t *res =
            rd_kafka_event_DescribeConfigs_result(ev);
        const rd_kafka_ConfigResource_t **rs = NULL;
        size_t n = 0;

        err = rd_kafka_event_error(ev);
        why = rd_kafka_event_error_string(ev);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && res != NULL) {
            rs = rd_kafka_DescribeConfigs_result_resources(res, &n);
            err = n == 1 ? rd_kafka_ConfigResource_error(rs[0])
                         : RD_KAFKA_RESP_ERR__BAD_MSG;
            why = n == 1 && rd_kafka_ConfigResource_error_string(rs[0])
                      ? rd_kafka_ConfigResource_error_string(rs[0])
                      : rd_kafka_err2str(err);
        }
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const rd_kafka_ConfigEntry_t **ce =
                rd_kafka_ConfigResource_configs(rs[0], &n);
            for (size_t i = 0; i < n; i++) {
                const char *name = rd_kafka_ConfigEntry_name(ce[i]);
                const char *v = rd_kafka_ConfigEntry_value(ce[i]);
                if (strcmp(name, "cleanup.policy") == 0) {
                    policy = v;
                } else if (strcmp(name, "retention.ms") == 0) {
                    ret_ms = v;
                } else if (strcmp(name, "retention.bytes") == 0) {
                    ret_bytes = v;
                }
            }
            if (policy != NULL && strcmp(policy, "delete") != 0) {
                snprintf(fix, sizeof(fix), "cleanup.policy=%s", policy);
            } else if (ret_ms != NULL && strcmp(ret_ms, "-1") != 0) {
                snprintf(fix, sizeof(fix), "retention.ms=%s", ret_ms);
            } else if (ret_bytes != NULL && strcmp(ret_bytes, "-1") != 0) {
                snprintf(fix, sizeof(fix), "retention.bytes=%s", ret_bytes);
            }
        }
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        core_log(CORE_LOG_WARN, "schema",
                 "msg=\"cannot check the schema topic's configuration "
                 "(cleanup.policy delete and unlimited retention are "
                 "needed; DescribeConfigs on the topic lets userpipe "
                 "check it)\" topic=%s error=\"%s\"",
                 sc->topic, why ? why : rd_kafka_err2str(err));
    } else if (fix[0] != '\0') {
        snprintf(errstr, errstr_size,
                 "the schema topic '%s' has %s: claims are keyed by "
                 "metadata key, so compaction would keep the losing claim "
                 "of a key and a finite retention forget the winning one, "
                 "and a new instance would learn other types; fix it with "
                 "kafka-configs.sh --bootstrap-server %s --alter "
                 "--entity-type topics --entity-name %s --add-config "
                 "cleanup.policy=delete,retention.ms=-1,retention.bytes=-1",
                 sc->topic, fix, sc->bootstrap, sc->topic);
        rc = CORE_ERR_USAGE;
    }
    if (ev != NULL) {
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(cr);
    return rc;
}

/* Checks the topic has one partition; creates it when it is missing. */
static enum core_err check_topic(struct schema_claims *sc, char *errstr,
                                 size_t errstr_size)
{
    rd_kafka_resp_err_t err;
    int parts = -1, brokers = 1;
    char e[256];

    /* after a creation, a broker's metadata cache may not list the topic
     * for a moment: up to 5 looks, 200 ms apart (KRaft brokers learn it
     * from the metadata log, usually within one) */
    for (int attempt = 0; attempt < 5; attempt++) {
        err = topic_partitions(sc, &parts, &brokers);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(errstr, errstr_size,
                     "cannot read the metadata of the schema topic '%s': %s "
                     "(check kafka.bootstrap.servers and that the brokers "
                     "are reachable)",
                     sc->topic, rd_kafka_err2str(err));
            return CORE_ERR_RETRY;
        }
        if (parts >= 0) {
            break;
        }
        if (attempt == 0) {
            err = create_topic(sc, brokers, e, sizeof(e));
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                snprintf(errstr, errstr_size,
                         "the schema topic '%s' does not exist and could "
                         "not be created (%s): create it with one "
                         "partition, no compaction and unlimited retention "
                         "(kafka-topics.sh --create --topic %s --partitions "
                         "1 --config retention.ms=-1), or set schema.topic",
                         sc->topic, e, sc->topic);
                return CORE_ERR_USAGE;
            }
        }
        nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
    }
    if (parts < 0) {
        /* created, not yet listed: the reader's assignment waits for it */
        parts = 1;
    }
    if (parts != 1) {
        snprintf(errstr, errstr_size,
                 "the schema topic '%s' has %d partitions; it must have "
                 "exactly one, whose order every instance agrees on",
                 sc->topic, parts);
        return CORE_ERR_USAGE;
    }
    return check_topic_config(sc, errstr, errstr_size);
}

enum core_err schema_claims_new(const struct schema_claims_config *cfg,
                                struct schema *sch, struct schema_claims **out,
                                char *errstr, size_t errstr_size)
{
    struct schema_claims *sc = core_calloc(1, sizeof(*sc));
    rd_kafka_conf_t *pconf = NULL, *cconf = NULL;
    rd_kafka_topic_partition_list_t *tp;
    char e[512];
    enum core_err rc = CORE_ERR_USAGE;

    *out = NULL;
    sc->sch = sch;
    sc->mine = schema_new();
    sc->topic = core_strdup(cfg->topic);
    sc->instance = core_strdup(cfg->instance);
    sc->scope = core_strdup(cfg->scope);
    sc->max_keys = cfg->max_keys;
    sc->leader = -1;
    sc->bootstrap = core_strdup("BOOTSTRAP");
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        if (strcmp(cfg->kafka_keys[i], "bootstrap.servers") == 0) {
            free(sc->bootstrap);
            sc->bootstrap = core_strdup(cfg->kafka_values[i]);
        }
    }

    pconf = base_conf(cfg, errstr, errstr_size);
    cconf = base_conf(cfg, errstr, errstr_size);
    if (pconf == NULL || cconf == NULL) {
        goto fail;
    }
    if (set(pconf, "enable.idempotence", "true") != 0 ||
        set(pconf, "acks", "all") != 0 || set(pconf, "linger.ms", "0") != 0 ||
        set(pconf, "message.timeout.ms", "0") != 0 ||
        set(cconf, "group.id", "userpipe-schema-reader") != 0 ||
        set(cconf, "enable.auto.commit", "false") != 0 ||
        set(cconf, "fetch.wait.max.ms", "10") != 0 ||
        set(cconf, "enable.partition.eof", "false") != 0) {
        snprintf(errstr, errstr_size, "cannot configure the schema clients");
        goto fail;
    }
    rd_kafka_conf_set_dr_msg_cb(pconf, dr_cb);
    rd_kafka_conf_set_opaque(pconf, sc);
    sc->prod = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, e, sizeof(e));
    if (sc->prod == NULL) {
        snprintf(errstr, errstr_size, "cannot create the schema producer: %s",
                 e);
        goto fail;
    }
    pconf = NULL;
    sc->cons = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, e, sizeof(e));
    if (sc->cons == NULL) {
        snprintf(errstr, errstr_size, "cannot create the schema reader: %s", e);
        goto fail;
    }
    cconf = NULL;
    rc = check_topic(sc, errstr, errstr_size);
    if (rc != CORE_OK) {
        schema_claims_destroy(sc);
        return rc;
    }
    tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, sc->topic, 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(sc->cons, tp);
    rd_kafka_topic_partition_list_destroy(tp);
    *out = sc;
    return CORE_OK;
fail:
    if (pconf != NULL) {
        rd_kafka_conf_destroy(pconf);
    }
    if (cconf != NULL) {
        rd_kafka_conf_destroy(cconf);
    }
    schema_claims_destroy(sc);
    return CORE_ERR_USAGE;
}

void schema_claims_destroy(struct schema_claims *sc)
{
    if (sc == NULL) {
        return;
    }
    if (sc->prod != NULL) {
        rd_kafka_flush(sc->prod, 5000);
        rd_kafka_destroy(sc->prod);
    }
    if (sc->cons != NULL) {
        rd_kafka_consumer_close(sc->cons);
        rd_kafka_destroy(sc->cons);
    }
    for (size_t i = 0; i < sc->norigins; i++) {
        free(sc->origins[i].by);
        free(sc->origins[i].at);
    }
    free(sc->origins);
    schema_destroy(sc->mine);
    free(sc->topic);
    free(sc->instance);
    free(sc->scope);
    free(sc->bootstrap);
    free(sc);
}

static const char *str_at(yajl_val root, const char *name)
{
    const char *path[] = {name, NULL};
    yajl_val v = yajl_tree_get(root, path, yajl_t_string);
    return v != NULL ? YAJL_GET_STRING(v) : NULL;
}

/* Counts a claim ignored, warning the first time for this reason. */
static void ignore_warn_once(struct schema_claims *sc, int *warned,
                             const char *msg, const char *field,
                             const char *value)
{
    if (!*warned) {
        core_log(CORE_LOG_WARN, "schema", "msg=\"%s\" topic=%s %s=%s", msg,
                 sc->topic, field, value);
        *warned = 1;
    }
    sc->st.ignored++;
}

/* Applies one claim record. */
static void apply(struct schema_claims *sc, const rd_kafka_message_t *m)
{
    char *text =
        core_strndup(m->payload ? (const char *)m->payload : "", m->len);
    char perr[128];
    yajl_val root = yajl_tree_parse(text, perr, sizeof(perr));
    const char *key, *type, *scope, *by = NULL, *at = NULL;
    enum schema_type t;
    size_t before;

    sc->st.read++;
    sc->next_offset = m->offset + 1;
    key = root ? str_at(root, "key") : NULL;
    by = root ? str_at(root, "by") : NULL;
    at = root ? str_at(root, "at") : NULL;
    type = root ? str_at(root, "type") : NULL;
    scope = root ? str_at(root, "scope") : NULL;
    t = type ? schema_type_parse(type, strlen(type)) : SCHEMA_TYPE_NONE;
    if (key != NULL && m->key != NULL &&
        (m->key_len != strlen(key) || memcmp(m->key, key, m->key_len) != 0)) {
        /* the record's key is the claim's key, byte for byte; a key
         * holding NUL ends the C string early (issue 20: it gave the
         * type to its prefix).  Transforms refuse such keys; a claim of
         * one, from an older userpipe, names no key we could apply */
        key = NULL;
    }
    if (key == NULL || t == SCHEMA_TYPE_NONE) {
        core_log(CORE_LOG_WARN, "schema",
                 "msg=\"ignoring a malformed claim\" topic=%s offset=%lld",
                 sc->topic, (long long)m->offset);
        goto out;
    }
    if (scope != NULL && strcmp(scope, sc->scope) != 0) {
        ignore_warn_once(sc, &sc->scope_warned,
                         "ignoring claims of another schema scope: every "
                         "instance sharing a schema topic needs the same "
                         "transform.schema_scope",
                         "scope", scope);
        goto out;
    }
    before = schema_count(sc->sch);
    if (before >= sc->max_keys &&
        schema_get(sc->sch, key, strlen(key), core_hash64(key, strlen(key))) ==
            SCHEMA_TYPE_NONE) {
        /* the cap holds whatever the topic has (instances with a larger
         * schema.max_keys, claims of a race at the cap): every instance
         * with the same cap ignores the same claims, in topic order */
        char n[32];
        snprintf(n, sizeof(n), "%zu", before);
        ignore_warn_once(sc, &sc->full_warned,
                         "the schema is full: claims of new keys are ignored "
                         "and events with new keys rejected as schema_full "
                         "(schema.max_keys)",
                         "keys", n);
        goto out;
    }
    schema_put(sc->sch, key, strlen(key), core_hash64(key, strlen(key)), t);
    if (schema_count(sc->sch) == before) {
        sc->st.ignored++; /* a later claim: the first one won */
        goto out;
    }
    /* origins are indexed like the schema's entries, which may include
     * keys not from the topic (none in a pipeline, but keep it aligned) */
    sc->origins =
        core_realloc(sc->origins, schema_count(sc->sch) * sizeof(*sc->origins));
    while (sc->norigins < schema_count(sc->sch)) {
        sc->origins[sc->norigins].by = core_strdup("");
        sc->origins[sc->norigins].at = core_strdup("");
        sc->norigins++;
    }
    free(sc->origins[sc->norigins - 1].by);
    free(sc->origins[sc->norigins - 1].at);
    sc->origins[sc->norigins - 1].by = core_strdup(by ? by : "");
    sc->origins[sc->norigins - 1].at = core_strdup(at ? at : "");
out:
    if (key != NULL &&
        schema_get(sc->mine, key, strlen(key), core_hash64(key, strlen(key))) !=
            SCHEMA_TYPE_NONE &&
        by != NULL && strcmp(by, sc->instance) == 0 && sc->in_flight > 0) {
        sc->in_flight--;
    }
    yajl_tree_free(root);
    free(text);
}

/* Applies what the reader has, waiting up to timeout_ms for the first. */
static enum core_err read_some(struct schema_claims *sc, int timeout_ms)
{
    for (int i = 0; i < 10000; i++) {
        rd_kafka_message_t *m =
            rd_kafka_consumer_poll(sc->cons, i == 0 ? timeout_ms : 0);
        if (m == NULL) {
            break;
        }
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            apply(sc, m);
        } else if (sc->synced && topic_gone(m->err) && sc->error[0] == '\0') {
            /* after the first sync only: a topic just created may be
             * unknown to a broker for a moment */
            set_gone(sc, m->err);
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            core_log(CORE_LOG_WARN, "schema",
                     "msg=\"schema topic read error\" error=\"%s\"",
                     rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    return sc->error[0] ? CORE_ERR_STOP : CORE_OK;
}

enum core_err schema_claims_sync(struct schema_claims *sc, int timeout_ms,
                                 char *errstr, size_t errstr_size)
{
    int64_t lo = 0, hi = 0;
    int64_t t0;
    rd_kafka_resp_err_t err;

    err = rd_kafka_query_watermark_offsets(sc->cons, sc->topic, 0, &lo, &hi,
                                           timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errstr, errstr_size,
                 "cannot read the end of the schema topic '%s': %s", sc->topic,
                 rd_kafka_err2str(err));
        return CORE_ERR_RETRY;
    }
    /* the limit is on a stall, not on the whole read, so it scales with
     * the topic (issue 20: a fixed 30 s for every claim ever made failed
     * every restart once the topic was large enough) */
    t0 = core_now_ms();
    while (sc->next_offset < hi) {
        int64_t at = sc->next_offset;
        if (read_some(sc, 100) != CORE_OK) {
            snprintf(errstr, errstr_size, "%s", sc->error);
            return CORE_ERR_STOP;
        }
        if (sc->next_offset != at) {
            t0 = core_now_ms();
        } else if (core_now_ms() - t0 > timeout_ms) {
            snprintf(errstr, errstr_size,
                     "reading the schema topic '%s' to its end (offset "
                     "%lld) made no progress for %d ms at offset %lld "
                     "(schema.sync_timeout_ms)",
                     sc->topic, (long long)hi, timeout_ms,
                     (long long)sc->next_offset);
            return CORE_ERR_RETRY;
        }
    }
    sc->synced = 1;
    return CORE_OK;
}

static void now_iso(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    char s[64];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03ldZ", s, ts.tv_nsec / 1000000L);
}

static void gen_str(yajl_gen g, const char *s, size_t len)
{
    yajl_gen_string(g, (const unsigned char *)s, len);
}

static void claim(struct schema_claims *sc, const char *key, size_t len,
                  enum schema_type type, int again);

void schema_claims_claim(struct schema_claims *sc, const char *key, size_t len,
                         enum schema_type type)
{
    claim(sc, key, len, type, 0);
}

void schema_claims_claim_again(struct schema_claims *sc, const char *key,
                               size_t len, enum schema_type type)
{
    claim(sc, key, len, type, 1);
}

static void claim(struct schema_claims *sc, const char *key, size_t len,
                  enum schema_type type, int again)
{
    uint64_t h = core_hash64(key, len);
    yajl_gen g;
    const unsigned char *buf;
    size_t blen;
    char at[96];
    const char *tname = schema_type_name(type);
    rd_kafka_resp_err_t err;

    if (schema_get(sc->sch, key, len, h) != SCHEMA_TYPE_NONE ||
        (!again && schema_get(sc->mine, key, len, h) != SCHEMA_TYPE_NONE)) {
        return;
    }
    if (schema_count(sc->sch) + sc->in_flight >= sc->max_keys) {
        /* the claims on their way fill the schema: this one would be
         * ignored; its event waits for them, then is schema_full or
         * claims again */
        return;
    }
    now_iso(at, sizeof(at));
    g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(g);
    gen_str(g, "key", 3);
    gen_str(g, key, len);
    gen_str(g, "type", 4);
    gen_str(g, tname, strlen(tname));
    gen_str(g, "scope", 5);
    gen_str(g, sc->scope, strlen(sc->scope));
    gen_str(g, "by", 2);
    gen_str(g, sc->instance, strlen(sc->instance));
    gen_str(g, "at", 2);
    gen_str(g, at, strlen(at));
    yajl_gen_map_close(g);
    yajl_gen_get_buf(g, &buf, &blen);
    err = rd_kafka_producev(
        sc->prod, RD_KAFKA_V_TOPIC(sc->topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_KEY(key, len), RD_KAFKA_V_VALUE((void *)buf, blen),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    yajl_gen_free(g);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        /* queue full: not recorded as mine, so the next call claims
         * again */
        core_log(CORE_LOG_WARN, "schema",
                 "msg=\"cannot queue a claim\" error=\"%s\"",
                 rd_kafka_err2str(err));
        return;
    }
    schema_put(sc->mine, key, len, h, type);
    sc->in_flight++;
    sc->st.made++;
}

enum core_err schema_claims_poll(struct schema_claims *sc)
{
    rd_kafka_poll(sc->prod, 0);
    return read_some(sc, 0);
}

size_t schema_claims_in_flight(const struct schema_claims *sc)
{
    return sc->in_flight;
}

void schema_claims_origin(const struct schema_claims *sc, size_t i,
                          const char **by, const char **at)
{
    if (i < sc->norigins) {
        *by = sc->origins[i].by;
        *at = sc->origins[i].at;
    } else {
        *by = "";
        *at = "";
    }
}

const char *schema_claims_error(const struct schema_claims *sc)
{
    return sc->error;
}

void schema_claims_get_stats(const struct schema_claims *sc,
                             struct schema_claims_stats *st)
{
    *st = sc->st;
}
