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
 *
 * Secrets (issue 22): any value may hold ${env:NAME} and ${file:PATH}
 * references, resolved once, as the value is set (resolve_refs).  Keys
 * marked KEY_SECRET, and the kafka.* properties of core_kafka_secrets[]
 * (those librdkafka's own table marks _RK_SENSITIVE), are never echoed in an
 * error sentence; a value that came from a reference is echoed as its
 * reference, never as what it resolved to; URLs are echoed redacted
 * (core_url_redact).  Every string the config owns is wiped when freed.
 */
#include "config.h"
#include "commands.h"
#include "../core/kafka.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* K_SIZE and K_COUNT both fill a size_t: bytes, or a count. */
enum key_type { K_STR, K_UINT, K_SIZE, K_COUNT, K_BOOL, K_ENUM, K_LOGLEVEL };

enum key_flags {
    KEY_SECRET = 1, /* never logged or echoed; "secret" in the reference */
    KEY_FILE = 2,   /* a file that must be readable at start */
    KEY_DIR = 4,    /* a directory that must be readable at start */
    KEY_URL = 8     /* echoed with its userinfo redacted */
};

struct key {
    const char *name;
    enum key_type type;
    size_t offset;
    unsigned long long min, max;
    const char *def; /* as text, for the reference; NULL: no default */
    const char *doc;
    const char *const *names; /* K_ENUM: value i is names[i] */
};

/* The marks of the table's keys (enum key_flags), by name: a key not
 * here has none.  Beside the table, not a column of it, so that the
 * rows stay as they were (issue 22). */
static const struct key_mark {
    const char *name;
    unsigned flags;
} key_marks[] = {
    {"moesif.base_url", KEY_URL},
    {"moesif.application_id", KEY_SECRET},
    {"moesif.ca_file", KEY_FILE},
    {"moesif.ca_path", KEY_DIR},
    {"moesif.client_cert", KEY_FILE},
    {"moesif.client_key", KEY_FILE},
    {"moesif.client_key_password", KEY_SECRET},
    {"moesif.proxy", KEY_URL},
};

static unsigned marks_of(const struct key *k)
{
    for (size_t i = 0; i < sizeof(key_marks) / sizeof(key_marks[0]); i++) {
        if (strcmp(key_marks[i].name, k->name) == 0) {
            return key_marks[i].flags;
        }
    }
    return 0;
}

/* A file a ${file:} reference names is read whole, up to this size: a
 * PEM key with its chain is a few KiB; a larger file is not a secret but
 * a mistake (a log, a directory's archive). */
#define SECRET_FILE_MAX (1024 * 1024)

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
     "requests go to `{base_url}/v1/users/batch`. Logged with any "
     "`user:password@` replaced by `***`; plain `http://` to a host that "
     "is not loopback is warned about at start.",
     NULL},
    {"moesif.application_id", K_STR, OFF(application_id), 0, 0, NULL,
     "Moesif application id, sent as `X-Moesif-Application-Id` (required; "
     "or the environment variable `MOESIF_APPLICATION_ID`, or a "
     "`${env:NAME}` / `${file:PATH}` reference). Never logged.",
     NULL},
    {"moesif.ca_file", K_STR, OFF(ca_file), 0, 0, "(system store)",
     "PEM file of the CA certificates trusted for `moesif.base_url` in "
     "place of the system's store (a gateway or TLS-inspecting proxy with "
     "a private CA). Checked readable at start.",
     NULL},
    {"moesif.ca_path", K_STR, OFF(ca_path), 0, 0, NULL,
     "Directory of CA certificates named by hash (`openssl rehash`), "
     "trusted for `moesif.base_url` like `moesif.ca_file`. Checked "
     "readable at start.",
     NULL},
    {"moesif.client_cert", K_STR, OFF(client_cert), 0, 0, NULL,
     "PEM client certificate (chain) presented to a server at "
     "`moesif.base_url` that wants mTLS. Checked readable at start.",
     NULL},
    {"moesif.client_key", K_STR, OFF(client_key), 0, 0, NULL,
     "PEM private key of `moesif.client_cert` (not needed when the "
     "certificate file holds the key). Checked readable at start.",
     NULL},
    {"moesif.client_key_password", K_STR, OFF(client_key_password), 0, 0, NULL,
     "Password of an encrypted `moesif.client_key`; best a `${file:PATH}` "
     "reference.",
     NULL},
    {"moesif.proxy", K_STR, OFF(proxy), 0, 0, "(environment)",
     "HTTP proxy to Moesif, `http://[user:password@]host:port`, always "
     "through a CONNECT tunnel, for every host. Unset: libcurl's "
     "`https_proxy`/`HTTPS_PROXY` (`http_proxy` for an http:// base URL) "
     "and `NO_PROXY` apply. Logged redacted.",
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
    {"debug.core_dumps", K_BOOL, OFF(core_dumps), 0, 1, "false",
     "Let the process dump core: userpipe makes itself non-dumpable at "
     "start (`PR_SET_DUMPABLE` 0: no core file, no ptrace by its own "
     "user), since a dump holds the application id, passwords and "
     "payloads. For debugging only.",
     NULL},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))
/* struct config's referenced has a bit per key */
_Static_assert(NKEYS <= 64, "struct config's referenced: one bit a key");

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
    /* any value may have come from a secret reference, and kafka.* ones
     * hold passwords: every string is wiped, not only the marked ones */
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        core_free_secret(cfg->kafka_keys[i]);
        core_free_secret(cfg->kafka_values[i]);
    }
    free(cfg->kafka_keys);
    free(cfg->kafka_values);
    core_free_secret(cfg->source_topics);
    core_free_secret(cfg->dlq_topic);
    core_free_secret(cfg->schema_file);
    core_free_secret(cfg->schema_topic);
    core_free_secret(cfg->metrics_listen);
    core_free_secret(cfg->instance_id);
    core_free_secret(cfg->base_url);
    core_free_secret(cfg->application_id);
    core_free_secret(cfg->ca_file);
    core_free_secret(cfg->ca_path);
    core_free_secret(cfg->client_cert);
    core_free_secret(cfg->client_key);
    core_free_secret(cfg->client_key_password);
    core_free_secret(cfg->proxy);
    explicit_bzero(cfg, sizeof(*cfg));
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

int config_key_secret(const char *name)
{
    const struct key *k;

    if (strncmp(name, "kafka.", 6) == 0) {
        return core_kafka_secret(name + 6);
    }
    k = find_key(name);
    return k != NULL && (marks_of(k) & KEY_SECRET) != 0;
}

/* Reads the whole file at path into a new string, its trailing CR and LF
 * removed.  Returns NULL with why[] filled (no secret in it). */
static char *read_secret_file(const char *path, char *why, size_t why_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    size_t len = 0;

    if (fd < 0) {
        snprintf(why, why_size, "%s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(why, why_size, "%s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, why_size, "%s",
                 S_ISDIR(st.st_mode) ? "it is a directory" : "not a file");
        close(fd);
        return NULL;
    }
    buf = core_malloc(SECRET_FILE_MAX + 1);
    for (;;) {
        ssize_t n = read(fd, buf + len, SECRET_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(why, why_size, "%s", strerror(errno));
            goto fail;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len > SECRET_FILE_MAX) {
            snprintf(why, why_size,
                     "it is larger than %d bytes, too large for a secret",
                     SECRET_FILE_MAX);
            goto fail;
        }
    }
    close(fd);
    if (memchr(buf, '\0', len) != NULL) {
        snprintf(why, why_size, "it holds a NUL byte");
        explicit_bzero(buf, len);
        free(buf);
        return NULL;
    }
    /* `echo secret >file` and Kubernetes' files end with a newline the
     * secret does not have */
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
        len--;
    }
    buf[len] = '\0';
    return buf;
fail:
    close(fd);
    explicit_bzero(buf, len);
    free(buf);
    return NULL;
}

/* out[0..len) moved to a block of cap bytes; the old block is wiped
 * before it is freed (realloc would leave a secret's bytes behind). */
static char *grow_secret(char *out, size_t len, size_t cap)
{
    char *bigger = core_malloc(cap);

    memcpy(bigger, out, len);
    explicit_bzero(out, len);
    free(out);
    return bigger;
}

/*
 * Replaces every ${env:NAME} and ${file:PATH} in value (Kafka's
 * ConfigProvider syntax; other "${" text is left as it is).  Returns a new
 * string, or NULL with errstr naming key and the reference (never what a
 * reference resolved to).  *had_ref tells whether one was found.
 */
static char *resolve_refs(const char *key, const char *value, int *had_ref,
                          char *errstr, size_t errstr_size)
{
    size_t cap = strlen(value) + 1, len = 0;
    char *out = core_malloc(cap);
    const char *p = value;

    *had_ref = 0;
    while (*p != '\0') {
        int is_env = strncmp(p, "${env:", 6) == 0;
        int is_file = strncmp(p, "${file:", 7) == 0;
        const char *arg, *close;
        char *name, *got, *resolved = NULL;
        char why[160];
        size_t n;

        if (!is_env && !is_file) {
            if (len + 2 > cap) {
                cap *= 2;
                out = grow_secret(out, len, cap);
            }
            out[len++] = *p++;
            continue;
        }
        *had_ref = 1;
        arg = p + (is_env ? 6 : 7);
        close = strchr(arg, '}');
        if (close == NULL) {
            /* only the reference's kind: what follows may be a
             * literal secret that happens to hold "${env:" */
            snprintf(errstr, errstr_size,
                     "configuration key '%s': a '%s' reference has no "
                     "closing '}'",
                     key, is_env ? "${env:" : "${file:");
            goto fail;
        }
        name = core_strndup(arg, (size_t)(close - arg));
        if (name[0] == '\0') {
            snprintf(errstr, errstr_size,
                     "configuration key '%s': the reference '%s' names no "
                     "%s",
                     key, is_env ? "${env:}" : "${file:}",
                     is_env ? "environment variable" : "file");
            free(name);
            goto fail;
        }
        if (is_env) {
            got = getenv(name);
            if (got == NULL) {
                snprintf(errstr, errstr_size,
                         "configuration key '%s': the environment variable "
                         "'%s' of ${env:%s} is not set",
                         key, name, name);
                free(name);
                goto fail;
            }
        } else if (name[0] != '/') {
            snprintf(errstr, errstr_size,
                     "configuration key '%s': ${file:%s} needs an absolute "
                     "path (the working directory of a service is not "
                     "this file's)",
                     key, name);
            free(name);
            goto fail;
        } else {
            resolved = read_secret_file(name, why, sizeof(why));
            if (resolved == NULL) {
                snprintf(errstr, errstr_size,
                         "configuration key '%s': cannot read the file "
                         "'%s' of ${file:%s}: %s",
                         key, name, name, why);
                free(name);
                goto fail;
            }
            got = resolved;
        }
        free(name);
        n = strlen(got);
        if (len + n + 1 > cap) {
            cap = len + n + 1 + strlen(close);
            out = grow_secret(out, len, cap);
        }
        memcpy(out + len, got, n);
        len += n;
        core_free_secret(resolved);
        p = close + 1;
    }
    out[len] = '\0';
    return out;
fail:
    explicit_bzero(out, cap);
    free(out);
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
            core_free_secret(cfg->kafka_values[i]);
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

/* How an error sentence shows the value of key k: never a secret's, a
 * reference as written (not what it resolved to), a URL redacted. */
static const char *shown_value(const struct key *k, const char *raw,
                               int had_ref, char *buf, size_t size)
{
    char url[256];

    if (marks_of(k) & KEY_SECRET) {
        snprintf(buf, size, "its value (a secret, not shown)");
    } else if (had_ref) {
        snprintf(buf, size, "the value of '%.200s'", raw);
    } else if (marks_of(k) & KEY_URL) {
        snprintf(buf, size, "'%.200s'", core_url_redact(raw, url, sizeof(url)));
    } else {
        snprintf(buf, size, "'%.200s'", raw);
    }
    return buf;
}

/* Sets key k to the resolved value v (raw: as written, for errors). */
static enum core_err set_value(struct config *cfg, const struct key *k,
                               const char *v, const char *raw, int had_ref,
                               char *errstr, size_t errstr_size)
{
    char *base = (char *)cfg;
    const char *name = k->name;
    char shown[300];

    switch (k->type) {
    case K_STR: {
        char **dst = (char **)(base + k->offset);
        if (v[0] == '\0') {
            snprintf(errstr, errstr_size,
                     "configuration key '%s' is empty%s: give it a value or "
                     "remove the line",
                     name, had_ref ? " (its reference gave nothing)" : "");
            return CORE_ERR_USAGE;
        }
        /* a second value (file, then -X) replaces the first: wiped, it
         * may be a secret */
        core_free_secret(*dst);
        *dst = core_strdup(v);
        return CORE_OK;
    }
    case K_UINT:
    case K_SIZE:
    case K_COUNT: {
        char *end;
        unsigned long long n;
        errno = 0;
        n = strtoull(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || v[0] == '-' ||
            n < k->min || n > k->max) {
            snprintf(errstr, errstr_size,
                     "configuration key '%s' takes a whole number from %llu "
                     "to %llu, not %s",
                     name, k->min, k->max,
                     shown_value(k, raw, had_ref, shown, sizeof(shown)));
            return CORE_ERR_USAGE;
        }
        if (k->type == K_SIZE || k->type == K_COUNT) {
            *(size_t *)(base + k->offset) = (size_t)n;
        } else {
            *(unsigned *)(base + k->offset) = (unsigned)n;
        }
        return CORE_OK;
    }
    case K_BOOL: {
        int b;
        if (parse_bool(v, &b) != 0) {
            snprintf(errstr, errstr_size,
                     "configuration key '%s' takes true or false, not %s", name,
                     shown_value(k, raw, had_ref, shown, sizeof(shown)));
            return CORE_ERR_USAGE;
        }
        *(int *)(base + k->offset) = b;
        return CORE_OK;
    }
    case K_ENUM:
    case K_LOGLEVEL:
        for (int i = 0; k->names[i] != NULL; i++) {
            if (strcmp(k->names[i], v) == 0) {
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
                     "configuration key '%s' takes one of %s, not %s", name,
                     choices,
                     shown_value(k, raw, had_ref, shown, sizeof(shown)));
        }
        return CORE_ERR_USAGE;
    }
    return CORE_ERR_USAGE;
}

enum core_err config_set(struct config *cfg, const char *name,
                         const char *value, char *errstr, size_t errstr_size)
{
    const struct key *k = NULL;
    char *v;
    int had_ref;
    enum core_err rc;

    if (strncmp(name, "kafka.", 6) != 0 || name[6] == '\0') {
        k = find_key(name);
        if (k == NULL) {
            snprintf(errstr, errstr_size,
                     "unknown configuration key '%s'; `userpipe "
                     "config-reference` lists every key (librdkafka "
                     "properties take the prefix 'kafka.')",
                     name);
            return CORE_ERR_USAGE;
        }
    }
    v = resolve_refs(name, value, &had_ref, errstr, errstr_size);
    if (v == NULL) {
        return CORE_ERR_USAGE;
    }
    if (k == NULL) {
        kafka_set(cfg, name + 6, v);
        rc = CORE_OK;
    } else {
        rc = set_value(cfg, k, v, value, had_ref, errstr, errstr_size);
        if (rc == CORE_OK) {
            uint64_t bit = (uint64_t)1 << (size_t)(k - keys);
            cfg->referenced =
                had_ref ? cfg->referenced | bit : cfg->referenced & ~bit;
        }
    }
    core_free_secret(v);
    return rc;
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
        /* the line is not echoed: it may be a secret pasted on a line
         * of its own (a PEM key's base64) */
        snprintf(errstr, errstr_size,
                 "%s: not a 'key=value' line (a value on several lines? "
                 "use a ${file:PATH} reference)",
                 where);
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

static int http_url(const char *u)
{
    return strncasecmp(u, "http://", 7) == 0 ||
           strncasecmp(u, "https://", 8) == 0;
}

/* Every KEY_FILE key names a readable regular file, every KEY_DIR one a
 * readable directory: found at start, with a sentence, not at the first
 * request as a TLS error. */
static enum core_err check_files(const struct config *cfg, char *errstr,
                                 size_t errstr_size)
{
    const char *base = (const char *)cfg;

    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const char *path;
        struct stat st;
        const char *why = NULL;
        int fd;

        if (!(marks_of(k) & (KEY_FILE | KEY_DIR))) {
            continue;
        }
        path = *(char *const *)(base + k->offset);
        if (path == NULL) {
            continue;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            why = strerror(errno);
        } else if (fstat(fd, &st) != 0) {
            why = strerror(errno);
        } else if ((marks_of(k) & KEY_FILE) && !S_ISREG(st.st_mode)) {
            why = S_ISDIR(st.st_mode) ? "it is a directory, not a file"
                                      : "not a regular file";
        } else if ((marks_of(k) & KEY_DIR) && !S_ISDIR(st.st_mode)) {
            why = "not a directory";
        } else if (marks_of(k) & KEY_FILE) {
            char c;
            if (read(fd, &c, 1) < 0) {
                why = strerror(errno);
            }
        } else {
            DIR *d = fdopendir(fd);
            if (d == NULL) {
                why = strerror(errno);
            } else {
                closedir(d); /* closes fd */
                fd = -1;
            }
        }
        if (fd >= 0) {
            close(fd);
        }
        if (why != NULL) {
            /* a path a reference gave is not echoed either */
            char shown[300];

            snprintf(shown, sizeof(shown), "'%.280s'", path);
            snprintf(errstr, errstr_size,
                     "configuration key '%s': cannot read %s: %s", k->name,
                     (cfg->referenced >> i) & 1 ? "the path its reference gave"
                                                : shown,
                     why);
            return CORE_ERR_USAGE;
        }
    }
    if (cfg->client_key != NULL && cfg->client_cert == NULL) {
        snprintf(errstr, errstr_size,
                 "configuration key 'moesif.client_key' is set without "
                 "'moesif.client_cert': set the certificate too");
        return CORE_ERR_USAGE;
    }
    return CORE_OK;
}

enum core_err config_load(struct config *cfg, const char *path,
                          const char *const *overrides, size_t noverrides,
                          int for_run, char *errstr, size_t errstr_size)
{
    enum core_err rc = CORE_OK;
    char where[300];
    char url[256];
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
        /* the last line read may hold a password */
        explicit_bzero(line, sizeof(line));
        if (rc != CORE_OK) {
            return rc;
        }
    }
    for (size_t i = 0; i < noverrides; i++) {
        size_t len = strlen(overrides[i]);
        char *copy = core_strdup(overrides[i]);
        if (strchr(copy, '=') == NULL) {
            snprintf(errstr, errstr_size,
                     "-X takes key=value, not a bare word (not shown: it "
                     "may be a secret)");
            core_free_secret(copy);
            return CORE_ERR_USAGE;
        }
        rc = set_line(cfg, copy, "-X", errstr, errstr_size);
        /* set_line cut the copy with NULs: wipe all of it */
        explicit_bzero(copy, len);
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
     * reads it; both URLs are echoed redacted */
    if (!http_url(cfg->base_url)) {
        snprintf(errstr, errstr_size,
                 "configuration key 'moesif.base_url' must start with "
                 "http:// or https://, not '%.200s'",
                 core_url_redact(cfg->base_url, url, sizeof(url)));
        return CORE_ERR_USAGE;
    }
    if (cfg->proxy != NULL && !http_url(cfg->proxy)) {
        snprintf(errstr, errstr_size,
                 "configuration key 'moesif.proxy' must start with http:// "
                 "(or https://, TLS to the proxy), not '%.200s'",
                 core_url_redact(cfg->proxy, url, sizeof(url)));
        return CORE_ERR_USAGE;
    }
    rc = check_files(cfg, errstr, errstr_size);
    if (rc != CORE_OK) {
        return rc;
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
    cfg->sink.ca_file = cfg->ca_file;
    cfg->sink.ca_path = cfg->ca_path;
    cfg->sink.client_cert = cfg->client_cert;
    cfg->sink.client_key = cfg->client_key;
    cfg->sink.client_key_password = cfg->client_key_password;
    cfg->sink.proxy = cfg->proxy;
    return CORE_OK;
}

int config_base_url_cleartext(const struct config *cfg)
{
    const char *host, *end, *at;
    size_t n;

    if (strncasecmp(cfg->base_url, "http://", 7) != 0) {
        return 0;
    }
    host = cfg->base_url + 7;
    end = host + strcspn(host, "/?#");
    at = memchr(host, '@', (size_t)(end - host));
    while (at != NULL) {
        host = at + 1;
        at = memchr(host, '@', (size_t)(end - host));
    }
    if (*host == '[') {
        return !(strncmp(host, "[::1]", 5) == 0);
    }
    n = strcspn(host, ":/?#");
    if ((n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
        (n > 10 && strncasecmp(host + n - 10, ".localhost", 10) == 0)) {
        return 0; /* RFC 6761: localhost names are loopback */
    }
    /* 127.0.0.0/8: the first label "127" and only digits and dots */
    if (n >= 7 && strncmp(host, "127.", 4) == 0 &&
        strspn(host, "0123456789.") >= n) {
        return 0;
    }
    return 1;
}

void config_dumpable(int on)
{
    /* fails only on a kernel without prctl: nothing to do then */
    (void)prctl(PR_SET_DUMPABLE, on ? 1L : 0L, 0L, 0L, 0L);
    if (on) {
        core_log(CORE_LOG_WARN, "config",
                 "msg=\"debug.core_dumps=true: a core dump will hold the "
                 "application id, passwords and payloads\"");
    }
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
    if (cfg->core_dumps) {
        config_dumpable(1);
    }
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
    fputs("| `kafka.<secret property>` | string, secret | | ", f);
    for (size_t i = 0; core_kafka_secrets[i] != NULL; i++) {
        fprintf(f, "%s`kafka.%s`", i ? ", " : "", core_kafka_secrets[i]);
    }
    fputs(" (librdkafka's sensitive properties): never logged or echoed; "
          "best a `${file:PATH}` or `${env:NAME}` reference. |\n",
          f);
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        fprintf(f, "| `%s` | %s%s", k->name, type_name(k),
                (marks_of(k) & KEY_SECRET) ? ", secret" : "");
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
