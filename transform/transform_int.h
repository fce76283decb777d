/*
 * transform_int.h: helpers shared by the files of transform/ only.
 */
#ifndef TRANSFORM_INT_H
#define TRANSFORM_INT_H

#include <stddef.h>
#include <stdint.h>

/* The top-level fields of a Moesif user update (DESIGN.md section 1). */
enum transform_field {
    TF_FIELD_UNKNOWN = 0,
    TF_FIELD_USER_ID,
    TF_FIELD_SESSION_TOKEN,
    TF_FIELD_COMPANY_ID,
    TF_FIELD_MODIFIED_TIME,
    TF_FIELD_IP_ADDRESS,
    TF_FIELD_USER_AGENT_STRING,
    TF_FIELD_CAMPAIGN,
    TF_FIELD_METADATA
};

/* Which field key[0..len) names; TF_FIELD_UNKNOWN for any other. */
enum transform_field transform_field_lookup(const char *key, size_t len);

/*
 * Whether s[0..len) is an ISO 8601 date-time as Moesif takes it:
 * YYYY-MM-DDTHH:MM[:SS[.fraction]] with an optional zone (Z, +HH, +HHMM,
 * +HH:MM); 'T' may be lower case or a space.  Calendar ranges are checked
 * (month 1-12, day within the month, leap years, hour 0-23, minute 0-59,
 * second 0-60 for a leap second).
 */
int transform_iso8601_ok(const char *s, size_t len);

/*
 * A set of (object id, key) pairs for the duplicate-key rule: every key of
 * one event goes in with the id of the object that holds it.  Cleared per
 * event in O(1) by bumping a generation number.  Keys are borrowed: they
 * must stay valid until the next clear.
 */
struct tf_keyset {
    struct tf_keyslot *slots;
    size_t mask;
    size_t count;
    uint32_t gen;
};

void tf_keyset_init(struct tf_keyset *ks);
void tf_keyset_release(struct tf_keyset *ks);
void tf_keyset_clear(struct tf_keyset *ks);

/* Adds the pair; returns 0 if it was already there (a duplicate). */
int tf_keyset_add(struct tf_keyset *ks, uint32_t obj_id, const char *key,
                  size_t len, uint64_t hash);

#endif
