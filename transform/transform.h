/*
 * transform.h: the transform stage.  One call takes the raw bytes of one
 * user-update event and, in a single pass of yajl's streaming parser,
 * produces either the rewritten event (minified, dotted metadata keys
 * rewritten to underscores) or a reject {code, path, message}.  The rules
 * are DESIGN.md section 2; README.md "Transform rules" is the reference.
 *
 * The metadata type schema is borrowed: an accepted event records the
 * types of its new keys in it; a rejected event records nothing.
 *
 * Not thread-safe: one instance per thread.
 */
#ifndef TRANSFORM_H
#define TRANSFORM_H

#include "../core/core.h"

#include <stddef.h>

#include "../schemas/schema.h"

/* How metadata keys are named in the type schema. */
enum transform_scope {
    TRANSFORM_SCOPE_NAME = 0, /* by key name at any depth (Moesif's rule) */
    TRANSFORM_SCOPE_PATH = 1  /* by full path: "additional_info.phone" */
};

/* What happens to a top-level field DESIGN.md section 1 does not name. */
enum transform_unknown {
    TRANSFORM_UNKNOWN_REJECT = 0,  /* reject the event as unknown_field */
    TRANSFORM_UNKNOWN_DROP = 1,    /* drop the field, keep the event */
    TRANSFORM_UNKNOWN_METADATA = 2 /* move it under metadata */
};

/* Defaults and ranges of the numeric settings, written once: cmd/config.c's
 * key table and `userpipe transform`'s options validate against them, and
 * transform_new trusts what it is handed (it asserts). */
#define TRANSFORM_MAX_EVENT_BYTES_DEF 1048576 /* 1 MiB */
#define TRANSFORM_MAX_EVENT_BYTES_MIN 16
#define TRANSFORM_MAX_EVENT_BYTES_MAX 67108864 /* 64 MiB */
#define TRANSFORM_MAX_DEPTH_DEF 64
#define TRANSFORM_MAX_DEPTH_MIN 2
#define TRANSFORM_MAX_DEPTH_MAX 1024
/* Keys the schema may hold (issue 20): a key used as an id (one new key an
 * event) would otherwise grow it, its topic and every start-up without
 * end.  100,000 keys hold about 15 MB in each instance (entry, slot,
 * origin strings, key bytes) and are read at start in a few seconds. */
#define TRANSFORM_MAX_SCHEMA_KEYS_DEF 100000
#define TRANSFORM_MAX_SCHEMA_KEYS_MIN 1
#define TRANSFORM_MAX_SCHEMA_KEYS_MAX 10000000

struct transform_config {
    enum transform_scope scope;
    enum transform_unknown unknown_fields;
    size_t max_event_bytes; /* larger events: too_large */
    unsigned max_depth;     /* containers, the event included */
    /* an event whose new keys would take the schema past this many keys
     * is rejected as schema_full (the keys it shares are fine) */
    size_t max_schema_keys;
    /* 0: an accepted event's new keys join the schema at once (the
     * offline transform).  1: an event that is valid but holds keys the
     * schema lacks is not accepted: transform_event returns
     * CORE_ERR_RETRY and transform_new_key() lists them, so the caller
     * claims them in the shared schema and transforms the event again
     * once they are known (the pipeline, DESIGN.md section 3). */
    int defer_new_keys;
};

/* Defaults of DESIGN.md: name scope, reject unknown, 1 MiB, depth 64. */
void transform_config_init(struct transform_config *cfg);

struct transform;

/*
 * Creates a transform over sch (borrowed: it must outlive the transform).
 * cfg is copied; it is within the ranges above and its enums hold their
 * constants (validated by the caller).  Returns CORE_OK.
 */
CORE_WUR enum core_err transform_new(const struct transform_config *cfg,
                                     struct schema *sch, struct transform **out,
                                     char *errstr, size_t errstr_size);

/* Frees the transform; accepts NULL. */
void transform_destroy(struct transform *tf);

/*
 * Transforms one event.  Returns CORE_OK with *out / *out_len set to the
 * rewritten event (valid until the next call on tf), CORE_ERR_REJECT
 * with *rej filled, or, with defer_new_keys only, CORE_ERR_RETRY when the
 * event is valid but holds keys the schema lacks (nothing recorded).
 * buf NULL is a Kafka tombstone (rejected as tombstone), len 0 an empty
 * message (empty_message), whatever the events before them were.
 * Never blocks; never fails otherwise.
 */
CORE_WUR enum core_err transform_event(struct transform *tf, const char *buf,
                                       size_t len, const char **out,
                                       size_t *out_len,
                                       struct core_reject *rej);

/* Number of metadata keys the last accepted event added to the schema, or
 * (after CORE_ERR_RETRY) that the event needs claimed. */
size_t transform_new_keys(const struct transform *tf);

/* The i-th of those keys (i < transform_new_keys) and the type the event
 * gives it; *key is valid until the next call on tf. */
void transform_new_key(const struct transform *tf, size_t i, const char **key,
                       size_t *len, enum schema_type *type);

/* The user_id of the last accepted event, unescaped (not NUL-terminated).
 * It points into the event's buffer or into tf: valid until the next call
 * on tf and while that buffer is. */
void transform_user_id(const struct transform *tf, const char **user_id,
                       size_t *len);

#endif
