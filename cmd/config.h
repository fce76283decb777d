/*
 * config.h: the configuration of `userpipe run` (and the commands that take
 * the same -c FILE): a Kafka-style properties file, -X key=value overrides,
 * and secrets from the environment.  Any value may hold secret
 * references, ${env:NAME} and ${file:/absolute/path} (issue 22, Kafka's
 * ConfigProvider syntax), resolved as the value is set; keys the table
 * marks secret (and every kafka.* property librdkafka marks sensitive)
 * are never echoed, and every string of the config is wiped when freed.
 *
 * One const table (config.c) names every key with its type, default,
 * range and meaning; the loader, the range checks, the error sentences and
 * README.md's reference table (`userpipe config-reference`) all come from
 * it, so they cannot drift.
 */
#ifndef CMD_CONFIG_H
#define CMD_CONFIG_H

#include "../core/core.h"
#include "../sink/sink.h"
#include "../transform/transform.h"

#include <stdint.h>
#include <stdio.h>

/* schema.claim_timeout_ms: a claim comes back within milliseconds; a
 * minute covers a leader election or a broker restart (test_kafka_outage
 * takes every broker away for 20 s) before a claim is made again. */
#define CONFIG_CLAIM_TIMEOUT_MS_DEF 60000
/* schema.sync_timeout_ms: the fixed limit of the whole start-up read
 * before issue 20, now the longest stall. */
#define CONFIG_SYNC_TIMEOUT_MS_DEF 30000

/* source.tombstones */
enum config_tombstones { CONFIG_TOMBSTONES_REJECT = 0, CONFIG_TOMBSTONES_SKIP };

struct config {
    /* kafka.<property> pairs for librdkafka, prefix removed, file order */
    char **kafka_keys;
    char **kafka_values;
    size_t kafka_count;

    char *source_topics;           /* comma-separated, required */
    char *dlq_topic;               /* NULL: <source topic>.dlq */
    char *schema_file;             /* seed file, optional */
    char *schema_topic;            /* the shared schema's claims topic */
    char *instance_id;             /* who claims: NULL means host:pid */
    int log_level;                 /* enum core_log_level */
    unsigned drain_timeout_ms;     /* bound on flushing at shutdown/rebalance */
    char *metrics_listen;          /* HOST:PORT of /metrics, or "off" */
    unsigned progress_interval_ms; /* backfill progress without a terminal */
    unsigned claim_timeout_ms;     /* an event's wait for its claims */
    unsigned sync_timeout_ms;      /* the start-up read's longest stall */
    int tombstones;                /* enum config_tombstones */

    int core_dumps; /* debug.core_dumps: the process stays dumpable */
    /* bit i: key i of the table got its value from a reference, which an
     * error sentence then never echoes */
    uint64_t referenced;

    /* owned copies of the sink's strings */
    char *base_url;
    char *application_id;
    char *ca_file;
    char *ca_path;
    char *client_cert;
    char *client_key;
    char *client_key_password;
    char *proxy;
    struct sink_config sink;
    struct transform_config transform;
};

/* Defaults of every key; no file read. */
void config_init(struct config *cfg);

/* Frees what the config owns, each string wiped first (explicit_bzero):
 * any of them may hold a secret.  Accepts a zeroed or half-loaded config. */
void config_release(struct config *cfg);

/*
 * Loads the properties file at path (may be NULL: defaults and overrides
 * only), then applies overrides ("key=value" strings), then the
 * environment (MOESIF_APPLICATION_ID when moesif.application_id is unset),
 * then checks that required keys are present (source.topics and the
 * application id only when for_run: `userpipe schema` needs neither), and
 * that the egress files (moesif.ca_file, ca_path, client_cert, client_key)
 * can be read.  Returns CORE_OK, or CORE_ERR_USAGE / CORE_ERR_IO with
 * errstr naming the key (or file and line) and what to fix; errstr never
 * holds a secret's value, nor a URL's password.
 */
CORE_WUR enum core_err config_load(struct config *cfg, const char *path,
                                   const char *const *overrides,
                                   size_t noverrides, int for_run, char *errstr,
                                   size_t errstr_size);

/*
 * config_load for the tools that take run's -c FILE and -X (schema,
 * dlq): no run-only key is required, and a failure is printed on stderr
 * as "<who>: <sentence>".  Returns 0, or 2 (the exit status of bad
 * usage).  Their logs show warnings and errors only.
 */
int config_load_tool(struct config *cfg, const char *who, const char *path,
                     const char *const *overrides, size_t noverrides);

/* Sets one key from its text value, as a line of the file would:
 * ${env:NAME} and ${file:PATH} references in value are resolved first
 * (CORE_ERR_USAGE with a sentence naming the key, and the variable or
 * file, when one cannot be). */
CORE_WUR enum core_err config_set(struct config *cfg, const char *key,
                                  const char *value, char *errstr,
                                  size_t errstr_size);

/* Whether key (a full name, "kafka.sasl.password" or
 * "moesif.application_id") holds a secret: never logged or echoed. */
int config_key_secret(const char *key);

/* Whether moesif.base_url is plain http:// to a host that is not
 * loopback (127.0.0.0/8, ::1, localhost): `run` warns at start. */
int config_base_url_cleartext(const struct config *cfg);

/*
 * Makes the process dumpable (on) or not: prctl(PR_SET_DUMPABLE).  main
 * turns dumping off before any command reads a secret (no core file, no
 * ptrace or /proc/PID/mem by the same user, issue 22); the commands that
 * load a configuration turn it back on when debug.core_dumps is true, and
 * then log a warning.
 */
void config_dumpable(int on);

/* The value of kafka.<name>, or NULL when it is not set. */
const char *config_kafka(const struct config *cfg, const char *name);

/* Writes the reference of every key as a Markdown table. */
void config_reference(FILE *f);

#endif
