/*
 * core.h: the floor of userpipe, what every stage shares: status codes,
 * reject codes, the allocation wrappers, the log macro, the one hash and
 * the one clock (core/kafka.h, apart, configures Kafka clients).
 *
 * The house (README, Layout): core/ includes nothing of the project; the
 * stages (schemas/, transform/, ingest/, sink/) include core/ and never
 * each other, but for one edge, transform/ -> schemas/ (the transform
 * checks types against the schema); cmd/ on top wires the stages into the
 * userpipe binary's commands.  Codes only grow: a value is never renumbered or
 * renamed, because reject codes are a contract read by the dead-letter
 * topic's consumers and by scripts around `userpipe transform`.
 */
#ifndef CORE_H
#define CORE_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define CORE_WUR __attribute__((warn_unused_result))
#define CORE_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CORE_NORETURN __attribute__((noreturn))
#else
#define CORE_WUR
#define CORE_PRINTF(f, a)
#define CORE_NORETURN
#endif

/* hash.c: a 64-bit hash of s[0..len), never 0 (0 marks an empty slot in
 * the tables that keep it).  Not for secrets or untrusted flooding. */
uint64_t core_hash64(const char *s, size_t len);

/* Milliseconds on the monotonic clock (core/clock.c): for intervals and
 * deadlines only, never a date. */
int64_t core_now_ms(void);

/* What the caller must do with a failed operation. */
enum core_err {
    CORE_OK = 0,
    CORE_ERR_REJECT = 1, /* the input can never succeed: dead-letter it */
    CORE_ERR_RETRY = 2,  /* transient: try again later */
    CORE_ERR_STOP = 3,   /* configuration or environment is wrong: stop */
    CORE_ERR_IO = 4,     /* a local read or write failed */
    CORE_ERR_USAGE = 5   /* bad command-line or configuration value */
};

/* Fixed text for an enum core_err. */
const char *core_strerror(enum core_err rc);

/*
 * Reject codes of DESIGN.md section 2.4.  The names returned by
 * core_reject_name() are the stable strings written to the dead-letter
 * headers and the transform CLI's reject lines.
 */
enum core_reject_code {
    CORE_REJECT_NONE = 0,
    CORE_REJECT_INVALID_JSON,
    CORE_REJECT_NOT_AN_OBJECT,
    CORE_REJECT_MISSING_USER_ID,
    CORE_REJECT_INVALID_FIELD_TYPE,
    CORE_REJECT_UNKNOWN_FIELD,
    CORE_REJECT_TYPE_CONFLICT,
    CORE_REJECT_DUPLICATE_KEY,
    CORE_REJECT_TOO_LARGE,
    CORE_REJECT_TOO_DEEP,
    CORE_REJECT_API_REJECTED,
    /* issue 20: appended, so the numbers above never change */
    CORE_REJECT_EMPTY_MESSAGE, /* a message whose value has no bytes */
    CORE_REJECT_TOMBSTONE,     /* a message with a NULL value */
    CORE_REJECT_INVALID_KEY,   /* a key holding U+0000 */
    CORE_REJECT_SCHEMA_FULL,   /* new keys beyond schema.max_keys */
    CORE_REJECT_CLAIM_TIMEOUT, /* new keys that got no type in time */
    CORE_REJECT__COUNT
};

/* The stable name of a reject code ("type_conflict"), "none" for 0. */
const char *core_reject_name(enum core_reject_code code);

/* Parses a stable name back into its code; CORE_REJECT_NONE if unknown. */
enum core_reject_code core_reject_from_name(const char *name, size_t len);

/*
 * A reject is data: the code, the JSON path of the offending value
 * ("metadata.additional_info.phone"; empty when the whole event is at
 * fault) and one sentence for a human.  Both strings are NUL-terminated
 * and truncated to fit.
 */
#define CORE_REJECT_PATH_MAX 512
#define CORE_REJECT_MESSAGE_MAX 512
struct core_reject {
    enum core_reject_code code;
    char path[CORE_REJECT_PATH_MAX];
    char message[CORE_REJECT_MESSAGE_MAX];
};

/*
 * Allocation that never returns NULL: out of memory aborts the process.
 * This is safe because an offset is stored only after Moesif or the
 * dead-letter topic took the event, so a restart replays what was lost.
 * Every input-driven size is capped before it reaches these.
 */
void *core_malloc(size_t size);
void *core_calloc(size_t nmemb, size_t size);
void *core_realloc(void *ptr, size_t size);
char *core_strdup(const char *s);
char *core_strndup(const char *s, size_t len);
/* Frees the NUL-terminated secret s (the application id, or a header
 * holding it) after wiping it with explicit_bzero, which, unlike memset
 * before free, the compiler may not drop as a dead store.  Accepts NULL. */
void core_free_secret(char *s);

/* Logging: one line per call to stderr, structured; see core/log.c. */
enum core_log_level {
    CORE_LOG_ERROR = 0,
    CORE_LOG_WARN = 1,
    CORE_LOG_INFO = 2,
    CORE_LOG_DEBUG = 3
};

extern int core_log_threshold;

void core_log_write(enum core_log_level level, const char *component,
                    const char *fmt, ...) CORE_PRINTF(3, 4);

/* Formats only when the level is enabled. */
#define core_log(level, component, ...)                                        \
    do {                                                                       \
        if ((int)(level) <= core_log_threshold) {                              \
            core_log_write((level), (component), __VA_ARGS__);                 \
        }                                                                      \
    } while (0)

/* The librdkafka properties (no "kafka." prefix) that hold secrets,
 * NULL-terminated, and whether name is one: never logged or echoed. */
extern const char *const core_kafka_secrets[];
int core_kafka_secret(const char *name);

/* Writes one of librdkafka's log lines (syslog level 0-7, facility, text)
 * as ours; every librdkafka client's log callback forwards here.  A line
 * of librdkafka's configuration dump (kafka.debug=conf) that shows one of
 * core_kafka_secrets has its value replaced by [redacted]. */
void core_log_kafka(int syslog_level, const char *component,
                    const char *facility, const char *text);

/* The names of enum core_log_level, by value, NULL-terminated: "error",
 * "warn", "info", "debug". */
extern const char *const core_log_level_names[];

/* Parses one of core_log_level_names; returns -1 when unknown. */
int core_log_level_parse(const char *name);

/*
 * Copies url into out[0..out_size) with its userinfo ("user:password@"
 * before the host) replaced by "***@", for a log line or an error
 * sentence (issue 22: moesif.base_url and moesif.proxy may carry
 * credentials).  A text without "://" is copied as it is; truncated to
 * fit, always NUL-terminated.  Returns out.
 */
const char *core_url_redact(const char *url, char *out, size_t out_size);

#endif
