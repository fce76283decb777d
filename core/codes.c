/*
 * codes.c: the fixed text of status codes and the stable names of reject
 * codes.  The names are a public contract (dead-letter headers, reject
 * lines of `userpipe transform`): add new ones at the end, never rename.
 */
#include "core.h"

#include <string.h>

static const char *const reject_names[CORE_REJECT__COUNT] = {
    [CORE_REJECT_NONE] = "none",
    [CORE_REJECT_INVALID_JSON] = "invalid_json",
    [CORE_REJECT_NOT_AN_OBJECT] = "not_an_object",
    [CORE_REJECT_MISSING_USER_ID] = "missing_user_id",
    [CORE_REJECT_INVALID_FIELD_TYPE] = "invalid_field_type",
    [CORE_REJECT_UNKNOWN_FIELD] = "unknown_field",
    [CORE_REJECT_TYPE_CONFLICT] = "type_conflict",
    [CORE_REJECT_DUPLICATE_KEY] = "duplicate_key",
    [CORE_REJECT_TOO_LARGE] = "too_large",
    [CORE_REJECT_TOO_DEEP] = "too_deep",
    [CORE_REJECT_API_REJECTED] = "api_rejected",
    [CORE_REJECT_EMPTY_MESSAGE] = "empty_message",
    [CORE_REJECT_TOMBSTONE] = "tombstone",
    [CORE_REJECT_INVALID_KEY] = "invalid_key",
    [CORE_REJECT_SCHEMA_FULL] = "schema_full",
    [CORE_REJECT_CLAIM_TIMEOUT] = "claim_timeout",
};

const char *core_reject_name(enum core_reject_code code)
{
    if ((unsigned)code >= CORE_REJECT__COUNT) {
        return "unknown";
    }
    return reject_names[code];
}

enum core_reject_code core_reject_from_name(const char *name, size_t len)
{
    for (int i = 1; i < CORE_REJECT__COUNT; i++) {
        if (strlen(reject_names[i]) == len &&
            memcmp(reject_names[i], name, len) == 0) {
            return (enum core_reject_code)i;
        }
    }
    return CORE_REJECT_NONE;
}

const char *core_strerror(enum core_err rc)
{
    switch (rc) {
    case CORE_OK:
        return "success";
    case CORE_ERR_REJECT:
        return "rejected: the input can never succeed";
    case CORE_ERR_RETRY:
        return "transient failure: retry later";
    case CORE_ERR_STOP:
        return "fatal: the configuration or environment must be fixed";
    case CORE_ERR_IO:
        return "local input/output error";
    case CORE_ERR_USAGE:
        return "bad usage or configuration value";
    }
    return "unknown status";
}
