/*
 * config.c: the key table of `userpipe run` and its loader.
 *
 * The table below is the single source of every configuration key: the
 * loader parses and range-checks through it, error sentences name its
 * keys, and `userpipe config-reference` prints it as the README's table.
 * This is the one validator (issue 14): the stages' numeric defaults and
 * ranges are written once, in their headers (SINK_*_DEF/_MIN/_MAX,
 * TRANSFORM_*), the table takes them from there, and sink_new and
 * transform_new trust the config they are handed (they assert).  The
 * checks that span keys (the back-off pair, base_url's scheme, the
 * application id's bytes) are in config_load, after the last override.
 * kafka.* keys are checked here only against the settings userpipe owns
 * (core_kafka_refuse, core/kafka.h); the rest are handed to librdkafka by
 * ingest/ and the dead-letter producer, whose rd_kafka_conf_set errstr
 * names the bad property.
 */
#include "config.h"
#include "commands.h"
#include "../core/kafka.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* K_SIZE and K_COUNT both fill a size_t: bytes, or a count. */
enum key_type { K_STR, K_UINT, K_SIZE, K_COUNT, K_BOOL, K_ENUM, K_LOGLEVEL };

struct key {
    const char *name;
    enum key_type type;
    size_t offset;
    unsigned long long min, max;
    const char *def; /* as text, for the reference; NULL: no default */
    const char *doc;
    const char *const *names; /* K_ENUM: value i is names[i] */
};

static const char *const scope_names[] = {"name", "path", NULL};
static const char *const unknown_names[] = {"reject", "drop", "metadata", NULL};
static const char *const tombstone_names[] = {"reject", "skip", NULL};

#define OFF(field) offsetof(struct config, field)
/* a stage's default, as the reference prints it */
#define STR_(x) #x
#define STR(x) STR_(x)

static const struct key keys[] = {
    {"source.topics", K_STR, OFF(source_topics), 0, 0, NULL,
     "Kafka topics to consume user updates from, comma-separated "
     "(required).",
     NULL},
    {"dlq.topic", K_STR, OFF(dlq_topic), 0, 0, "<source topic>.dlq",
     "Dead-letter topic for rejected events; by default each source topic "
     "has its own `<topic>.dlq`.",
     NULL},
    {"moesif.base_url", K_STR, OFF(base_url), 0, 0, "https://api.moesif.net",
     "Base URL of Moesif's collector API (a proxy or a test server); "
     "requests go to `{base_url}/v1/users/batch`.",
     NULL},
    {"moesif.application_id", K_STR, OFF(application_id), 0, 0, NULL,
     "Moesif application id, sent as `X-Moesif-Application-Id` (required; "
     "or the environment variable `MOESIF_APPLICATION_ID`). Never logged.",
     NULL},
    {"batch.max_events", K_COUNT, OFF(sink.batch_max_events),
     SINK_MAX_EVENTS_MIN, SINK_MAX_EVENTS_MAX, STR(SINK_MAX_EVENTS_DEF),
     "A batch is sent when it holds this many events.", NULL},
    {"batch.max_bytes", K_SIZE, OFF(sink.batch_max_bytes), SINK_MAX_BYTES_MIN,
     SINK_MAX_BYTES_MAX, STR(SINK_MAX_BYTES_DEF),
     "A batch is sent when its uncompressed body reaches this many bytes.",
     NULL},
    {"batch.linger_ms", K_UINT, OFF(sink.batch_linger_ms), 0,
     SINK_LINGER_MS_MAX, STR(SINK_LINGER_MS_DEF),
     "A batch is sent at the latest this long after its first event.", NULL},
    {"sink.max_in_flight", K_UINT, OFF(sink.max_in_flight), SINK_IN_FLIGHT_MIN,
     SINK_IN_FLIGHT_MAX, STR(SINK_IN_FLIGHT_DEF),
     "Requests in flight at once; also the number of lanes (updates of one "
     "user always use the same lane, one request at a time, so a lane "
     "waiting for Retry-After delays only its 1/N of the users).",
     NULL},
    {"sink.timeout_ms", K_UINT, OFF(sink.timeout_ms), SINK_TIMEOUT_MS_MIN,
     SINK_TIMEOUT_MS_MAX, STR(SINK_TIMEOUT_MS_DEF),
     "Time-out of one HTTP request; a timed-out request is retried.", NULL},
    {"sink.gzip", K_BOOL, OFF(sink.gzip), 0, 1, "true",
     "Send request bodies gzipped (`Content-Encoding: gzip`).", NULL},
    {"sink.gzip_level", K_UINT, OFF(sink.gzip_level), SINK_GZIP_LEVEL_MIN,
     SINK_GZIP_LEVEL_MAX, STR(SINK_GZIP_LEVEL_DEF),
     "libdeflate compression level, 1 (fastest) to 12 (smallest); 1 costs "
     "about 0.7 us less CPU per event than 6 for 17% more bytes on the "
     "wire (make bench).",
     NULL},
    {"sink.retry_backoff_ms", K_UINT, OFF(sink.retry_backoff_ms),
     SINK_BACKOFF_MS_MIN, SINK_BACKOFF_MS_MAX, STR(SINK_BACKOFF_MS_DEF),
     "First retry delay after 429, 5xx, a time-out or a connection error; "
     "doubles each retry, with full jitter.",
     NULL},
    {"sink.retry_backoff_max_ms", K_UINT, OFF(sink.retry_backoff_max_ms),
     SINK_BACKOFF_MAX_MS_MIN, SINK_BACKOFF_MAX_MS_MAX,
     STR(SINK_BACKOFF_MAX_MS_DEF), "Upper bound of the retry delay.", NULL},
    {"sink.retry_max", K_UINT, OFF(sink.retry_max), 0, SINK_RETRY_MAX_MAX, "0",
     "Retries of one batch before the pipeline stops; 0 retries without "
     "end (nothing is ever dropped).",
     NULL},
    {"sink.reject_all_batches", K_UINT, OFF(sink.reject_all_batches), 0,
     SINK_REJECT_ALL_MAX, STR(SINK_REJECT_ALL_DEF),
     "Batches in a row, nothing accepted between, whose every event Moesif "
     "refused one by one (400/422 bisection) before userpipe stops with "
     "exit 3: such answers are about the request (a proxy, a WAF, a changed "
     "API), not the events. The refused events of the last batch are not "
     "dead-lettered. 0 never stops.",
     NULL},
    {"sink.max_pending_bytes", K_SIZE, OFF(sink.max_pending_bytes),
     SINK_PENDING_BYTES_MIN, SINK_PENDING_BYTES_MAX,
     STR(SINK_PENDING_BYTES_DEF),
     "Event bytes held by the sink before consumption is held back "
     "(backpressure; the partitions are paused after 1 s); it resumes "
     "at half.",
     NULL},
    {"shutdown.drain_timeout_ms", K_UINT, OFF(drain_timeout_ms), 0, 3600000,
     "30000",
     "On SIGTERM or a rebalance, how long in-flight events may take to "
     "settle before their partitions are given up (they are then consumed "
     "again, at least once).",
     NULL},
    {"schema.topic", K_STR, OFF(schema_topic), 0, 0, "userpipe-schema",
     "Kafka topic of the shared metadata schema: one partition, no "
     "compaction, unlimited retention; every instance (replicas, "
     "backfills) of one Moesif organisation must share it.",
     NULL},
    {"schema.instance_id", K_STR, OFF(instance_id), 0, 0, "<host>:<pid>",
     "Name written in this instance's schema claims (`userpipe schema "
     "show` prints who claimed each key).",
     NULL},
    {"schema.max_keys", K_COUNT, OFF(transform.max_schema_keys),
     TRANSFORM_MAX_SCHEMA_KEYS_MIN, TRANSFORM_MAX_SCHEMA_KEYS_MAX,
     STR(TRANSFORM_MAX_SCHEMA_KEYS_DEF),
     "Most metadata keys (or paths) the shared schema may hold; an event "
     "with a key beyond them is rejected as `schema_full` (events with "
     "known keys pass). Bounds memory and the start-up read when metadata "
     "uses ids as keys. Every instance sharing a schema topic should use "
     "the same value.",
     NULL},
    {"schema.claim_timeout_ms", K_UINT, OFF(claim_timeout_ms), 1000,
     86400000, STR(CONFIG_CLAIM_TIMEOUT_MS_DEF),
     "How long an event may wait for the claims of its new metadata keys to "
     "come back from the schema topic. Past it the keys are claimed again; "
     "past twice it the event is rejected as `claim_timeout` (its partition "
     "moves on), never waits for ever.",
     NULL},
    {"schema.sync_timeout_ms", K_UINT, OFF(sync_timeout_ms), 1000, 3600000,
     STR(CONFIG_SYNC_TIMEOUT_MS_DEF),
     "On start, the schema topic is read to its end however long that "
     "takes while claims keep coming; the start fails when this long passes "
     "without one.",
     NULL},
    {"schema.file", K_STR, OFF(schema_file), 0, 0, NULL,
     "Seed file of metadata types: a JSON object of key to type name, "
     "imported as claims on start (keys the schema topic already has keep "
     "their type).",
     NULL},
    {"source.tombstones", K_ENUM, OFF(tombstones), 0, 1, "reject",
     "A message with a NULL value (a tombstone, as log compaction and "
     "Debezium write them): `reject` sends it to the dead-letter topic as "
     "`tombstone`; `skip` commits it and sends nothing, as Kafka Connect's "
     "tombstone handling (`behavior.on.null.values=ignore`) does.",
     tombstone_names},
    {"transform.schema_scope", K_ENUM, OFF(transform.scope), 0, 1, "name",
     "One type per metadata key `name` at any depth (Moesif's rule) or per "
     "full `path`.",
     scope_names},
    {"transform.unknown_fields", K_ENUM, OFF(transform.unknown_fields), 0, 2,
     "reject",
     "A top-level field Moesif does not know: `reject` (dead-letter it), "
     "`drop` it, or move it under `metadata`.",
     unknown_names},
    {"transform.max_event_bytes", K_SIZE, OFF(transform.max_event_bytes),
     TRANSFORM_MAX_EVENT_BYTES_MIN, TRANSFORM_MAX_EVENT_BYTES_MAX,
     STR(TRANSFORM_MAX_EVENT_BYTES_DEF),
     "Larger events are rejected as `too_large`.", NULL},
    {"transform.max_depth", K_UINT, OFF(transform.max_depth),
     TRANSFORM_MAX_DEPTH_MIN, TRANSFORM_MAX_DEPTH_MAX,
     STR(TRANSFORM_MAX_DEPTH_DEF),
     "Deeper nesting is rejected as `too_deep` (the event is level 1).", NULL},
    {"metrics.listen", K_STR, OFF(metrics_listen), 0, 0, "127.0.0.1:9464",
     "Address of the Prometheus `/metrics`, `/healthz` and `/readyz` "
     "endpoints, `HOST:PORT` (port 0 picks a free one), or `off`.",
     NULL},
    {"progress.interval_ms", K_UINT, OFF(progress_interval_ms), 100, 3600000,
     "5000",
     "With `--exit-at-end` and no terminal, how often the progress figures "
     "are logged (on a terminal a live line is updated every second).",
     NULL},
    {"log.level", K_LOGLEVEL, OFF(log_level), 0, 3, "info",
     "Least severe log level written: `error`, `warn`, `info` or `debug`.",
     core_log_level_names},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

void config_init(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    sink_config_init(&cfg->sink);
    transform_config_init(&cfg->transform);
    cfg->log_level = CORE_LOG_INFO;
    cfg->drain_timeout_ms = 30000;
    cfg->metrics_listen = core_strdup("127.0.0.1:9464");
    cfg->progress_interval_ms = 5000;
    cfg->base_url = core_strdup("https://api.moesif.net");
    cfg->schema_topic = core_strdup("userpipe-schema");
    cfg->claim_timeout_ms = CONFIG_CLAIM_TIMEOUT_MS_DEF;
    cfg->sync_timeout_ms = CONFIG_SYNC_TIMEOUT_MS_DEF;
}

void config_release(struct config *cfg)
{
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        free(cfg->kafka_keys[i]);
        free(cfg->kafka_values[i]);
    }
    free(cfg->kafka_keys);
    free(cfg->kafka_values);
    free(cfg->source_topics);
    free(cfg->dlq_topic);
    free(cfg->schema_file);
    free(cfg->schema_topic);
    free(cfg->metrics_listen);
    free(cfg->instance_id);
    free(cfg->base_url);
    /* a secret: don't leave it in freed memory */
    core_free_secret(cfg->application_id);
    memset(cfg, 0, sizeof(*cfg));
}

static const struct key *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].name, name) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
        strcmp(v, "yes") == 0 || strcmp(v, "on") == 0) {
        *out = 1;
        return 0;
    }
    if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 ||
        strcmp(v, "no") == 0 || strcmp(v, "off") == 0) {
        *out = 0;
        return 0;
    }
    return -1;
}

static void kafka_set(struct config *cfg, const char *key, const char *value)
{
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        if (strcmp(cfg->kafka_keys[i], key) == 0) {
            free(cfg->kafka_values[i]);
            cfg->kafka_values[i] = core_strdup(value);
            return;
        }
    }
    cfg->kafka_keys =
        core_realloc(cfg->kafka_keys, (cfg->kafka_count + 1) * sizeof(char *));
    cfg->kafka_values = core_realloc(cfg->kafka_values,
                                     (cfg->kafka_count + 1) * sizeof(char *));
    cfg->kafka_keys[cfg->kafka_count] = core_strdup(key);
    cfg->kafka_values[cfg->kafka_count] = core_strdup(value);
    cfg->kafka_count++;
}

enum core_err config_set(struct config *cfg, const char *name,
                         const char *value, char *errstr, size_t errstr_size)
{
    const struct key *k;
    char *base = (char *)cfg;

    if (strncmp(name, "kafka.", 6) == 0 && name[6] != '\0') {
        kafka_set(cfg, name + 6, value);
        return CORE_OK;
    }
    k = find_key(name);
    if (k == NULL) {
        snprintf(errstr, errstr_size,
                 "unknown configuration key '%s'; `userpipe "
                 "config-reference` lists every key (librdkafka properties "
                 "take the prefix 'kafka.')",
                 name);
        return CORE_ERR_USAGE;
    }
    switch (k->type) {
    case K_STR: {
        char **dst = (char **)(base + k->offset);
        if (value[0] == '\0') {
            snprintf(errstr, errstr_size,
                     "configuration key '%s' is empty: give it a value or "
                     "remove the line",
                     name);
            return CORE_ERR_USAGE;
        }
        if (k->offset == OFF(application_id)) {
            /* a second moesif.application_id (file, then -X) replaces a
             * secret */
            core_free_secret(*dst);
        } else {
            free(*dst);
        }
        *dst = core_strdup(value);
        return CORE_OK;
    }
    case K_UINT:
    case K_SIZE:
    case K_COUNT: {
        char *end;
        unsigned long long v;
        errno = 0;
        v = strtoull(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || value[0] == '-' ||
            v < k->min || v > k->max) {
            snprintf(errstr, errstr_size,
                     "configuration key '%s' takes a whole number from %llu "
                     "to %llu, not '%s'",
                     name, k->min, k->max, value);
            return CORE_ERR_USAGE;
        }
        if (k->type == K_SIZE || k->type == K_COUNT) {
            *(size_t *)(base + k->offset) = (size_t)v;
        } else {
            *(unsigned *)(base + k->offset) = (unsigned)v;
        }
        return CORE_OK;
    }
    case K_BOOL: {
        int b;
        if (parse_bool(value, &b) != 0) {
            snprintf(errstr, errstr_size,
                     "configuration key '%s' takes true or false, not '%s'",
                     name, value);
            return CORE_ERR_USAGE;
        }
        *(int *)(base + k->offset) = b;
        return CORE_OK;
    }
    case K_ENUM:
    case K_LOGLEVEL:
        for (int i = 0; k->names[i] != NULL; i++) {
            if (strcmp(k->names[i], value) == 0) {
                /* enums are int-sized; their values are the names' order */
                *(int *)(base + k->offset) = i;
                return CORE_OK;
            }
        }
        {
            char choices[128] = "";
            for (int i = 0; k->names[i] != NULL; i++) {
                strncat(choices, i ? ", " : "",
                        sizeof(choices) - strlen(choices) - 1);
                strncat(choices, k->names[i],
                        sizeof(choices) - strlen(choices) - 1);
            }
            snprintf(errstr, errstr_size,
                     "configuration key '%s' takes one of %s, not '%s'", name,
                     choices, value);
        }
        return CORE_ERR_USAGE;
    }
    return CORE_ERR_USAGE;
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    e = s + strlen(s);
    while (e > s &&
           (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) {
        *--e = '\0';
    }
    return s;
}

/* One line "key=value" (or "key: value"); comments start with # or !. */
static enum core_err set_line(struct config *cfg, char *line, const char *where,
                              char *errstr, size_t errstr_size)
{
    char *s = trim(line);
    char *sep, *key, *value;
    char sub[384];
    enum core_err rc;

    if (*s == '\0' || *s == '#' || *s == '!') {
        return CORE_OK;
    }
    sep = strpbrk(s, "=:");
    if (sep == NULL) {
        snprintf(errstr, errstr_size, "%s: '%.100s' is not a 'key=value' line",
                 where, s);
        return CORE_ERR_USAGE;
    }
    *sep = '\0';
    key = trim(s);
    value = trim(sep + 1);
    rc = config_set(cfg, key, value, sub, sizeof(sub));
    if (rc != CORE_OK) {
        snprintf(errstr, errstr_size, "%s: %s", where, sub);
    }
    return rc;
}

enum core_err config_load(struct config *cfg, const char *path,
                          const char *const *overrides, size_t noverrides,
                          int for_run, char *errstr, size_t errstr_size)
{
    enum core_err rc = CORE_OK;
    char where[300];
    const char *env;

    if (path != NULL) {
        FILE *f = fopen(path, "r");
        char line[4096];
        unsigned n = 0;

        if (f == NULL) {
            snprintf(errstr, errstr_size,
                     "cannot open configuration file '%s': %s", path,
                     strerror(errno));
            return CORE_ERR_IO;
        }
        while (fgets(line, sizeof(line), f) != NULL) {
            n++;
            if (strchr(line, '\n') == NULL && !feof(f)) {
                snprintf(errstr, errstr_size,
                         "%s:%u: line longer than %zu bytes", path, n,
                         sizeof(line) - 1);
                rc = CORE_ERR_USAGE;
                break;
            }
            snprintf(where, sizeof(where), "%s:%u", path, n);
            rc = set_line(cfg, line, where, errstr, errstr_size);
            if (rc != CORE_OK) {
                break;
            }
        }
        fclose(f);
        if (rc != CORE_OK) {
            return rc;
        }
    }
    for (size_t i = 0; i < noverrides; i++) {
        char *copy = core_strdup(overrides[i]);
        if (strchr(copy, '=') == NULL) {
            snprintf(errstr, errstr_size, "-X takes key=value, not '%.200s'",
                     overrides[i]);
            free(copy);
            return CORE_ERR_USAGE;
        }
        rc = set_line(cfg, copy, "-X", errstr, errstr_size);
        free(copy);
        if (rc != CORE_OK) {
            return rc;
        }
    }
    env = getenv("MOESIF_APPLICATION_ID");
    if (cfg->application_id == NULL && env != NULL && env[0] != '\0') {
        cfg->application_id = core_strdup(env);
    }
    if (for_run && cfg->source_topics == NULL) {
        snprintf(errstr, errstr_size,
                 "configuration key 'source.topics' is required: the Kafka "
                 "topics to consume, comma-separated");
        return CORE_ERR_USAGE;
    }
    if (for_run && cfg->application_id == NULL) {
        snprintf(errstr, errstr_size,
                 "configuration key 'moesif.application_id' is required: "
                 "set it in the file or in the environment variable "
                 "MOESIF_APPLICATION_ID");
        return CORE_ERR_USAGE;
    }
    /* a URL's scheme is case-insensitive (RFC 3986, 3.1), as libcurl
     * reads it */
    if (strncasecmp(cfg->base_url, "http://", 7) != 0 &&
        strncasecmp(cfg->base_url, "https://", 8) != 0) {
        snprintf(errstr, errstr_size,
                 "configuration key 'moesif.base_url' must start with "
                 "http:// or https://, not '%.200s'",
                 cfg->base_url);
        return CORE_ERR_USAGE;
    }
    for (const char *p = cfg->application_id; p != NULL && *p != '\0'; p++) {
        /* it goes into a header line: no CR, LF or other control; the
         * value itself is never echoed */
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            snprintf(errstr, errstr_size,
                     "configuration key 'moesif.application_id' holds a "
                     "control character (a stray newline?)");
            return CORE_ERR_USAGE;
        }
    }
    {
        /* the kafka.* settings userpipe owns (core/kafka.h) */
        struct core_kafka_props user = {(const char *const *)cfg->kafka_keys,
                                        (const char *const *)cfg->kafka_values,
                                        cfg->kafka_count};
        rc = core_kafka_refuse(&user, errstr, errstr_size);
        if (rc != CORE_OK) {
            return rc;
        }
    }
    if (cfg->sink.retry_backoff_max_ms < cfg->sink.retry_backoff_ms) {
        snprintf(errstr, errstr_size,
                 "configuration key 'sink.retry_backoff_max_ms' (%u) must "
                 "not be below 'sink.retry_backoff_ms' (%u)",
                 cfg->sink.retry_backoff_max_ms, cfg->sink.retry_backoff_ms);
        return CORE_ERR_USAGE;
    }
    {
        /* trailing '/' would make "//v1/users/batch" */
        size_t n = strlen(cfg->base_url);
        while (n > 0 && cfg->base_url[n - 1] == '/') {
            cfg->base_url[--n] = '\0';
        }
    }
    cfg->sink.base_url = cfg->base_url;
    cfg->sink.application_id = cfg->application_id;
    return CORE_OK;
}

int config_load_tool(struct config *cfg, const char *who, const char *path,
                     const char *const *overrides, size_t noverrides)
{
    char errstr[768];

    if (path == NULL && noverrides == 0) {
        fprintf(stderr, "%s: -c FILE is required\n", who);
        return 2;
    }
    if (config_load(cfg, path, overrides, noverrides, 0, errstr,
                    sizeof(errstr)) != CORE_OK) {
        fprintf(stderr, "%s: %s\n", who, errstr);
        return 2;
    }
    core_log_threshold =
        cfg->log_level < CORE_LOG_WARN ? cfg->log_level : CORE_LOG_WARN;
    return 0;
}

const char *config_kafka(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        if (strcmp(cfg->kafka_keys[i], name) == 0) {
            return cfg->kafka_values[i];
        }
    }
    return NULL;
}

static const char *type_name(const struct key *k)
{
    switch (k->type) {
    case K_STR:
        return "string";
    case K_UINT:
    case K_COUNT:
        return "integer";
    case K_SIZE:
        return "bytes";
    case K_BOOL:
        return "boolean";
    case K_ENUM:
    case K_LOGLEVEL:
        return "enum";
    }
    return "";
}

void config_reference(FILE *f)
{
    fputs("| key | type | default | meaning |\n|---|---|---|---|\n", f);
    fputs("| `kafka.<property>` | string | librdkafka's | Any librdkafka "
          "property (`kafka.bootstrap.servers`, `kafka.group.id`, "
          "`kafka.security.protocol`, `kafka.sasl.*`, `kafka.ssl.*`...), "
          "passed to the consumer and the dead-letter producer. |\n",
          f);
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        fprintf(f, "| `%s` | %s", k->name, type_name(k));
        if (k->type == K_UINT || k->type == K_SIZE || k->type == K_COUNT) {
            fprintf(f, " %llu..%llu", k->min, k->max);
        } else if (k->names != NULL) {
            fputs(" (", f);
            for (int j = 0; k->names[j] != NULL; j++) {
                fprintf(f, "%s`%s`", j ? ", " : "", k->names[j]);
            }
            fputs(")", f);
        }
        fprintf(f, " | %s | %s |\n", k->def ? k->def : "(none)", k->doc);
    }
}

int cmd_config_reference(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    config_reference(stdout);
    return 0;
}
