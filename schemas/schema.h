/*
 * schema.h: the metadata type schema, a map from key (or path) to the one
 * JSON type that key may hold, and its seed file.
 *
 * The map keeps insertion order (the order claims were learned) and the
 * first type recorded for a key wins: schema_put never overwrites.  It is
 * a flat open-addressing table so a lookup stays one or two cache misses
 * with tens of thousands of keys; the transform looks up every metadata
 * key of every event through it.
 *
 * Not thread-safe: one schema per transform instance.
 */
#ifndef SCHEMA_H
#define SCHEMA_H

#include "../core/core.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum schema_type {
    SCHEMA_TYPE_NONE = 0, /* no type recorded (and the type of null) */
    SCHEMA_TYPE_STRING,
    SCHEMA_TYPE_NUMBER,
    SCHEMA_TYPE_BOOLEAN,
    SCHEMA_TYPE_OBJECT,
    SCHEMA_TYPE_ARRAY
};

struct schema;

/* An empty schema.  Never NULL (out of memory aborts). */
struct schema *schema_new(void);

/* Frees the schema; accepts NULL. */
void schema_destroy(struct schema *sch);

/* The type recorded for key, or SCHEMA_TYPE_NONE.  key need not be
 * NUL-terminated; hash is core_hash64(key, len). */
enum schema_type schema_get(const struct schema *sch, const char *key,
                            size_t len, uint64_t hash);

/*
 * Records type for key unless the key already has one.  Returns the type
 * the key holds afterwards: type itself when it was recorded now or
 * before, the older type otherwise.  The key is copied.
 */
enum schema_type schema_put(struct schema *sch, const char *key, size_t len,
                            uint64_t hash, enum schema_type type);

/* Number of keys recorded. */
size_t schema_count(const struct schema *sch);

/* The i-th key recorded (0 <= i < schema_count), in recording order.  *key
 * points into the schema until it is changed or destroyed. */
void schema_entry(const struct schema *sch, size_t i, const char **key,
                  size_t *len, enum schema_type *type);

/* Forgets every key; keeps a small allocation for reuse. */
void schema_clear(struct schema *sch);

/* "string", "number", "boolean", "object", "array" ("null" for NONE). */
const char *schema_type_name(enum schema_type type);

/* The type named by name[0..len), SCHEMA_TYPE_NONE when it names none. */
enum schema_type schema_type_parse(const char *name, size_t len);

/*
 * Loads a seed file, a JSON object mapping key to type name
 * ({"phone":"string"}), into sch; keys already present keep their type.
 * A conflicting seed entry is an error.  Returns CORE_OK, or
 * CORE_ERR_IO / CORE_ERR_USAGE with errstr holding a sentence that says
 * what to fix.
 */
CORE_WUR enum core_err schema_load_file(struct schema *sch, const char *path,
                                        char *errstr, size_t errstr_size);

/* Writes every key in the seed file format to f, one line. */
void schema_write(const struct schema *sch, FILE *f);

/* Writes every key in the seed file format, atomically (temp + rename). */
CORE_WUR enum core_err schema_save_file(const struct schema *sch,
                                        const char *path, char *errstr,
                                        size_t errstr_size);

/*
 * The shared schema (schemas/claims.c, DESIGN.md section 3): a Kafka topic
 * of one partition holds claims {key, type, who, when}; every instance
 * reads it in order and the first claim of a key in the topic wins, so
 * replicas and backfills agree on every type.  A schema_claims applies the
 * claims it reads to a struct schema (borrowed) with schema_put.
 */
struct schema_claims_config {
    const char *const *kafka_keys; /* librdkafka properties, no prefix */
    const char *const *kafka_values;
    size_t kafka_count;
    const char *topic;    /* e.g. "userpipe-schema" */
    const char *instance; /* who claims, written in each claim */
    const char *scope;    /* "name" or "path", written in each claim */
    size_t max_keys;      /* the schema's cap (transform.max_schema_keys) */
};

struct schema_claims;

/*
 * Connects the producer and the reader of the claims topic and checks the
 * topic has exactly one partition (creating it where the broker allows),
 * cleanup.policy delete and unlimited retention (where the broker answers
 * DescribeConfigs).  Returns CORE_OK, or CORE_ERR_USAGE with errstr saying
 * what to fix (for the topic's configuration, the kafka-configs.sh
 * command).
 */
CORE_WUR enum core_err schema_claims_new(const struct schema_claims_config *cfg,
                                         struct schema *sch,
                                         struct schema_claims **out,
                                         char *errstr, size_t errstr_size);

/* Frees; accepts NULL.  Claims still in flight are flushed up to 5 s. */
void schema_claims_destroy(struct schema_claims *sc);

/* Reads the topic up to the end it has now, applying every claim; blocks
 * as long as claims keep coming, up to timeout_ms without one (the limit
 * scales with the topic).  CORE_ERR_RETRY with errstr on a stall. */
CORE_WUR enum core_err schema_claims_sync(struct schema_claims *sc,
                                          int timeout_ms, char *errstr,
                                          size_t errstr_size);

/* Claims key as type, unless the schema has a type for it, a claim of
 * this instance for it is on its way, or the claims on their way would
 * fill the schema (max_keys).  Claims beyond max_keys in the topic are
 * ignored when read.  Never blocks. */
void schema_claims_claim(struct schema_claims *sc, const char *key, size_t len,
                         enum schema_type type);

/* As schema_claims_claim, even when a claim of this instance is on its
 * way: for a claim that did not come back in time (schema.claim_timeout_ms;
 * the topic deleted and created again loses it). */
void schema_claims_claim_again(struct schema_claims *sc, const char *key,
                               size_t len, enum schema_type type);

/* Serves deliveries and applies the claims read since the last call;
 * never blocks.  CORE_ERR_STOP once the topic cannot be written or read
 * (schema_claims_error says why). */
CORE_WUR enum core_err schema_claims_poll(struct schema_claims *sc);

/* Claims this instance produced and has not read back yet. */
size_t schema_claims_in_flight(const struct schema_claims *sc);

/* Who claimed the i-th key of the schema and when ("" for keys that did
 * not come from the topic). */
void schema_claims_origin(const struct schema_claims *sc, size_t i,
                          const char **by, const char **at);

const char *schema_claims_error(const struct schema_claims *sc);

struct schema_claims_stats {
    uint64_t made;    /* claims produced by this instance */
    uint64_t read;    /* claims read from the topic */
    uint64_t ignored; /* read but a key already had a type (lost races) */
};

void schema_claims_get_stats(const struct schema_claims *sc,
                             struct schema_claims_stats *st);

#endif
