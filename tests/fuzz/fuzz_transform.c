/*
 * fuzz_transform.c: libFuzzer target for the transform stage.
 *
 * The first input byte picks the options (scope, unknown-field mode, a
 * small max depth, deferring new keys as the pipeline does); the rest is
 * one event.  Each input runs through a
 * transform whose schema persists across inputs, so type conflicts and
 * learned keys are exercised too.  Invariants checked: a call never
 * crashes or leaks (ASan), an accepted event re-parses as one JSON object
 * and is never longer than the input plus the metadata wrapper, and a
 * reject always carries a known code.
 */
#include "../../core/core.h"
#include "../../schemas/schema.h"
#include "../../transform/transform.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct schema *sch;
static struct transform *tfs[24];

static struct transform *pick(uint8_t b)
{
    unsigned i = b % 24;
    if (tfs[i] == NULL) {
        struct transform_config cfg;
        char errstr[128];
        transform_config_init(&cfg);
        cfg.scope = (i & 1) ? TRANSFORM_SCOPE_PATH : TRANSFORM_SCOPE_NAME;
        cfg.unknown_fields = (enum transform_unknown)((i >> 1) % 3);
        cfg.max_depth = (i % 12) >= 6 ? 8 : 64;
        cfg.defer_new_keys = i >= 12; /* the pipeline's mode */
        cfg.max_event_bytes = 4096;
        if (sch == NULL) {
            sch = schema_new();
        }
        if (transform_new(&cfg, sch, &tfs[i], errstr, sizeof(errstr)) !=
            CORE_OK) {
            abort();
        }
    }
    return tfs[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct transform *tf;
    const char *out;
    size_t out_len;
    struct core_reject rej;
    enum core_err rc;

    if (size < 1) {
        return 0;
    }
    tf = pick(data[0]);
    rc = transform_event(tf, (const char *)data + 1, size - 1, &out, &out_len,
                         &rej);
    if (rc == CORE_OK) {
        char *copy = malloc(out_len + 1);
        char err[128];
        yajl_val v;

        if (out_len > size - 1 + 64) {
            abort();
        }
        memcpy(copy, out, out_len);
        copy[out_len] = '\0';
        v = yajl_tree_parse(copy, err, sizeof(err));
        /* a NUL inside a string would end the copy early: only then may
         * the re-parse fail */
        if (v == NULL && strlen(copy) == out_len) {
            abort();
        }
        if (v != NULL && !YAJL_IS_OBJECT(v)) {
            abort();
        }
        yajl_tree_free(v);
        free(copy);
    } else if (rc == CORE_ERR_RETRY) {
        /* deferred: only in that mode, with at least one new key, which
         * the caller then claims (here: records) */
        if (data[0] % 24 < 12 || transform_new_keys(tf) == 0) {
            abort();
        }
        for (size_t i = 0; i < transform_new_keys(tf); i++) {
            const char *k;
            size_t len;
            enum schema_type t;
            transform_new_key(tf, i, &k, &len, &t);
            schema_put(sch, k, len, core_hash64(k, len), t);
        }
    } else if (rc != CORE_ERR_REJECT || rej.code <= CORE_REJECT_NONE ||
               rej.code >= CORE_REJECT__COUNT ||
               rej.code == CORE_REJECT_API_REJECTED ||
               rej.code == CORE_REJECT_CLAIM_TIMEOUT ||
               rej.code == CORE_REJECT_TOMBSTONE) {
        /* codes the transform never gives (Moesif's, the run's, and a
         * tombstone, which the fuzzer's non-NULL input never is) */
        abort();
    }
    if (schema_count(sch) > 100000) {
        /* keep memory flat over a long run */
        for (unsigned i = 0; i < 24; i++) {
            transform_destroy(tfs[i]);
            tfs[i] = NULL;
        }
        schema_destroy(sch);
        sch = NULL;
    }
    return 0;
}
