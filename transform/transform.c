/*
 * transform.c: the streaming state machine of the transform stage.
 *
 * One yajl_parse pass over the event drives the callbacks below; no tree is
 * built.  Output is copied from the input wherever nothing changes: every
 * callback knows where its token ends (yajl_get_bytes_consumed) and, since
 * only whitespace and one ',' or ':' can stand between two tokens, where it
 * starts.  An unchanged token that follows its predecessor with no
 * whitespace just extends the pending span [span_start, last_end) of input;
 * the span is flushed to the output only when something differs (a
 * rewritten key, whitespace to drop, a field dropped or moved).  A minified
 * event with no dotted key is therefore copied in a handful of memcpy calls.
 *
 * Invariants:
 * - output = out + in[span_start, last_end) at every callback boundary;
 * - a key pointer kept for the duplicate set or the schema points into the
 *   input or into the arena, both stable until the next event;
 * - the schema is changed only when the whole event is accepted: new keys
 *   wait in `pending` until then, so a rejected event records nothing.
 *
 * Precedence of rejects: too_large before parsing; then whichever of
 * invalid_json or too_deep the parser meets first (a semantic problem does
 * not stop the parse, so a broken event is always invalid_json); then the
 * first semantic problem in event order; then missing_user_id.
 */
#include "transform.h"
#include "transform_int.h"
#include "../schemas/schema.h"

#include <stdarg.h>
#include <stdint.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

enum zone {
    Z_TOP,      /* the event object itself */
    Z_META,     /* inside metadata (or a field moved there) */
    Z_CAMPAIGN, /* inside campaign */
    Z_SKIP      /* a dropped field's value */
};

struct frame {
    const char *label; /* key holding this container, NULL in an array */
    uint32_t label_len;
    uint32_t index;     /* position in the parent array when label is NULL */
    uint32_t count;     /* members or elements so far */
    uint32_t obj_id;    /* for the duplicate-key set */
    uint32_t hs_base;   /* its keys' entries in the small-object stack */
    uint64_t hs_bits;   /* one bit per key hash: most keys skip the scan */
    uint8_t big;        /* more than SMALL_OBJECT keys: in the key set */
    uint8_t fast;       /* metadata object whose keys take the fast path */
    uint32_t spath_len; /* schema path length inside it (path scope) */
    uint8_t is_array;
    uint8_t zone;
};

struct buf {
    char *p;
    size_t len, cap;
};

/* Object id reserved for metadata's own members, so fields moved under
 * metadata meet its keys in the duplicate set. */
#define OBJ_ID_METADATA 1u

/* Objects up to this many keys find duplicates by scanning their keys'
 * hashes on a stack (a few compares, no table); larger ones move to the
 * key set.  Most objects of a user event have fewer than 16 keys, and the
 * scan measured faster than the hash set for them (make bench). */
#define SMALL_OBJECT 16

/* A dotted key without escapes: rewriting keeps its length, so it is
 * copied with its span and its dots are replaced in the output. */
struct patch {
    size_t off; /* of the key's first byte in the input */
    size_t len;
};

struct hkey {
    uint64_t hash;
    const char *key;
    size_t len;
};

struct transform {
    struct transform_config cfg;
    struct schema *sch;
    struct schema *pending; /* types this event would add */
    yajl_callbacks cb;
    yajl_handle h;
    yajl_gen g; /* escapes rewritten keys that had escapes */

    const char *in;
    size_t in_len;
    size_t last_end, span_start;
    struct buf out, moved;
    struct buf *cur; /* &out, or &moved while a field is being moved */

    struct frame *frames;
    unsigned depth;

    /* the key whose value comes next */
    const char *key;
    size_t key_len;
    uint64_t key_hash;
    enum transform_field field; /* at top level */

    /* top level */
    unsigned top_emitted;
    size_t out_mark;  /* out length before the current top-level member */
    size_t mark_in;   /* input offset where that member's ',' starts */
    size_t mark_span; /* span_start when it started */
    int mark_flushed; /* its ',' was written by hand at out_mark */
    int have_user_id;
    int empty_user_id; /* "user_id":"" was seen: missing, not mistyped */
    const char *user_id; /* decoded; in the input or the arena */
    size_t user_id_len;
    int top_null;     /* the current top-level member is dropped as null */
    int member_moved; /* the current top-level member goes to metadata */
    int member_skip;  /* the current top-level member is dropped */
    int meta_open;    /* metadata object seen and kept */
    size_t meta_close_off;
    int meta_nonempty;

    struct tf_keyset ks;
    uint32_t next_obj_id;
    struct hkey *hs; /* keys of the open small objects, innermost last */
    size_t hs_len;
    unsigned seen_fields; /* bit per known top-level field */
    struct buf arena;     /* decoded or rewritten keys; sized to the event */
    struct buf spath;     /* schema path in path scope */

    struct patch *patches; /* pending in the current span */
    size_t npatches, patches_cap;

    struct core_reject *rej;
    int failed;
    int aborted;         /* too_deep: the parse was cancelled */
    int bad_ws;          /* a form feed or vertical tab between tokens */
    unsigned top_values; /* JSON values at depth 0 in this event */
    int extra_value;     /* more than one: invalid JSON */
    size_t new_keys;
};

void transform_config_init(struct transform_config *cfg)
{
    cfg->scope = TRANSFORM_SCOPE_NAME;
    cfg->unknown_fields = TRANSFORM_UNKNOWN_REJECT;
    cfg->max_event_bytes = TRANSFORM_MAX_EVENT_BYTES_DEF;
    cfg->max_depth = TRANSFORM_MAX_DEPTH_DEF;
    cfg->max_schema_keys = TRANSFORM_MAX_SCHEMA_KEYS_DEF;
    cfg->defer_new_keys = 0;
}

/* ---- output ---------------------------------------------------------- */

static void buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more > b->cap) {
        size_t want = b->cap ? b->cap * 2 : 1024;
        while (want < b->len + more) {
            want *= 2;
        }
        b->p = core_realloc(b->p, want);
        b->cap = want;
    }
}

static void buf_add(struct buf *b, const char *p, size_t len)
{
    if (len == 0) {
        return; /* b->p may still be NULL */
    }
    buf_reserve(b, len);
    memcpy(b->p + b->len, p, len);
    b->len += len;
}

static void buf_addc(struct buf *b, char c)
{
    buf_reserve(b, 1);
    b->p[b->len++] = c;
}

/* Writes the pending span of input to the current output. */
static void flush(struct transform *tf)
{
    if (tf->last_end > tf->span_start) {
        size_t base = tf->cur->len;
        buf_add(tf->cur, tf->in + tf->span_start,
                tf->last_end - tf->span_start);
        /* dotted keys copied with the span get their '_' now */
        for (size_t i = 0; i < tf->npatches; i++) {
            char *k = tf->cur->p + base + (tf->patches[i].off - tf->span_start);
            for (size_t j = 0; j < tf->patches[i].len; j++) {
                if (k[j] == '.') {
                    k[j] = '_';
                }
            }
        }
    }
    tf->npatches = 0;
    tf->span_start = tf->last_end;
}

/* JSON whitespace is space, tab, LF and CR (RFC 8259); yajl's lexer also
 * takes form feed and vertical tab, which this stage refuses as
 * invalid_json (2).  Anything else (0) starts a token or is a separator. */
static const unsigned char ws_class[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, ['\f'] = 2, ['\v'] = 2,
};

/* Finds where the token ending at `end` starts: after the whitespace and
 * the one ',' or ':' that may follow the previous token.  *sep gets that
 * separator (0 if none), *ws whether any whitespace was there. */
static size_t token_start(struct transform *tf, char *sep, int *ws)
{
    size_t p = tf->last_end;
    *sep = 0;
    *ws = 0;
    for (;;) {
        unsigned char c = (unsigned char)tf->in[p];
        if (c == ',' || c == ':') {
            *sep = (char)c;
        } else if (ws_class[c] != 0) {
            *ws = 1;
            if (ws_class[c] == 2) {
                tf->bad_ws = 1;
            }
        } else {
            return p;
        }
        p++;
    }
}

/* An unchanged token ending at `end`.  The common case, a token right
 * after its predecessor or after one ',' or ':', only extends the span. */
static inline void pass(struct transform *tf, size_t end)
{
    char sep;
    int ws;
    size_t start;
    size_t p = tf->last_end;
    char c = tf->in[p];

    if (c == ',' || c == ':') {
        c = tf->in[p + 1];
    }
    if (ws_class[(unsigned char)c] == 0) {
        tf->last_end = end;
        return;
    }
    start = token_start(tf, &sep, &ws);
    flush(tf);
    if (sep) {
        buf_addc(tf->cur, sep);
    }
    tf->span_start = start;
    tf->last_end = end;
}

/* A token ending at `end` written as rep[0..len) instead. */
static void replace(struct transform *tf, size_t end, const char *rep,
                    size_t len)
{
    char sep;
    int ws;

    token_start(tf, &sep, &ws);
    flush(tf);
    if (sep) {
        buf_addc(tf->cur, sep);
    }
    buf_add(tf->cur, rep, len);
    tf->span_start = tf->last_end = end;
}

/* A token ending at `end` that is not written at all. */
static void skip(struct transform *tf, size_t end)
{
    tf->last_end = end;
    tf->span_start = end;
}

static size_t here(const struct transform *tf)
{
    return yajl_get_bytes_consumed(tf->h);
}

static int is_raw(const struct transform *tf, const char *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)tf->in;
    return a >= lo && a < lo + tf->in_len;
}

/* Copies key into the arena (sized to the event, so it never moves). */
static char *arena_copy(struct transform *tf, const char *key, size_t len)
{
    char *p = tf->arena.p + tf->arena.len;
    memcpy(p, key, len);
    tf->arena.len += len;
    return p;
}

/* ---- rejects ----------------------------------------------------------- */

static void path_add(char *p, size_t *n, const char *s, size_t len)
{
    size_t room = CORE_REJECT_PATH_MAX - 1 - *n;
    if (len > room) {
        len = room;
    }
    memcpy(p + *n, s, len);
    *n += len;
}

static void path_label(char *p, size_t *n, const char *label, size_t len,
                       uint32_t index)
{
    if (label != NULL) {
        if (*n > 0) {
            path_add(p, n, ".", 1);
        }
        path_add(p, n, label, len);
    } else {
        char tmp[16];
        int k = snprintf(tmp, sizeof(tmp), "[%u]", index);
        path_add(p, n, tmp, (size_t)k);
    }
}

/* The path of the value now being judged: the frames' labels, then the
 * current key (or index, in an array).  Moved fields keep the path they
 * had in the event as it was sent. */
static void build_path(struct transform *tf, int with_current)
{
    char *p = tf->rej->path;
    size_t n = 0;

    for (unsigned i = 1; i < tf->depth; i++) {
        const struct frame *f = &tf->frames[i];
        path_label(p, &n, f->label, f->label_len, f->index);
    }
    if (with_current && tf->depth > 0) {
        const struct frame *top = &tf->frames[tf->depth - 1];
        if (top->is_array) {
            path_label(p, &n, NULL, 0, top->count - 1);
        } else {
            path_label(p, &n, tf->key, tf->key_len, 0);
        }
    }
    p[n] = '\0';
}

static CORE_PRINTF(3, 4) void fail(struct transform *tf,
                                   enum core_reject_code code, const char *fmt,
                                   ...)
{
    va_list ap;

    if (tf->failed) {
        return;
    }
    tf->failed = 1;
    tf->rej->code = code;
    build_path(tf, 1);
    va_start(ap, fmt);
    vsnprintf(tf->rej->message, sizeof(tf->rej->message), fmt, ap);
    va_end(ap);
}

/* "a string", "an object", "null": for messages. */
static const char *a_type(enum schema_type t)
{
    static const char *const names[] = {"null",      "a string",  "a number",
                                        "a boolean", "an object", "an array"};
    return names[t];
}

/* ---- the type schema ------------------------------------------------- */

/* Judges the type of the value of the current metadata key. */
static void check_type(struct transform *tf, enum schema_type t)
{
    const char *k = tf->key;
    size_t len = tf->key_len;
    uint64_t hash = tf->key_hash;
    enum schema_type had;

    if (tf->cfg.scope == TRANSFORM_SCOPE_PATH) {
        /* an empty path (key "") may not have allocated the buffer */
        k = tf->spath.p != NULL ? tf->spath.p : "";
        len = tf->spath.len;
        hash = core_hash64(k, len);
    }
    had = schema_get(tf->sch, k, len, hash);
    if (had == SCHEMA_TYPE_NONE) {
        size_t before = schema_count(tf->pending);
        had = schema_put(tf->pending, k, len, hash, t);
        if (schema_count(tf->pending) > before &&
            schema_count(tf->sch) + schema_count(tf->pending) >
                tf->cfg.max_schema_keys) {
            fail(tf, CORE_REJECT_SCHEMA_FULL,
                 "metadata %s \"%.*s\" is new, and the schema holds %zu "
                 "keys, its limit (schema.max_keys)",
                 tf->cfg.scope == TRANSFORM_SCOPE_PATH ? "path" : "key",
                 (int)(len > 200 ? 200 : len), k, schema_count(tf->sch));
            return;
        }
    }
    if (had != t) {
        fail(tf, CORE_REJECT_TYPE_CONFLICT,
             "metadata %s \"%.*s\" is %s in the schema but %s here",
             tf->cfg.scope == TRANSFORM_SCOPE_PATH ? "path" : "key",
             (int)(len > 200 ? 200 : len), k, a_type(had), a_type(t));
    }
}

/* ---- values ---------------------------------------------------------- */

static struct frame *top(struct transform *tf)
{
    return &tf->frames[tf->depth - 1];
}

static const char *field_rule(enum transform_field f)
{
    switch (f) {
    case TF_FIELD_USER_ID:
        return "a non-empty string";
    case TF_FIELD_MODIFIED_TIME:
        return "an ISO 8601 date-time string";
    case TF_FIELD_CAMPAIGN:
        return "an object of strings";
    case TF_FIELD_METADATA:
        return "an object";
    default:
        return "a string";
    }
}

/* Takes back the current top-level member (a null, which counts as
 * absent), whose value ends at `end`: its ',' and key are not written. */
static void retract(struct transform *tf, size_t end)
{
    if (!tf->mark_flushed && tf->span_start <= tf->mark_in) {
        /* nothing of the member was written yet: end the span before it */
        tf->last_end = tf->mark_in;
        flush(tf);
    } else {
        /* a flush wrote in[mark_span, ...) from out_mark on */
        tf->cur->len =
            tf->out_mark + (tf->mark_flushed ? 0 : tf->mark_in - tf->mark_span);
    }
    tf->span_start = tf->last_end = end;
}

/* A top-level member's value has ended: account for it. */
static void top_member_done(struct transform *tf)
{
    if (tf->member_moved) {
        flush(tf);
        tf->cur = &tf->out;
        tf->span_start = tf->last_end;
    } else if (!tf->member_skip && !tf->top_null) {
        tf->top_emitted++;
    }
    tf->member_skip = tf->member_moved = tf->top_null = 0;
}

/*
 * Common entry of every value: counts it and judges it against the rules
 * of its zone.  t is its JSON type (NONE for null); str/str_len the text
 * of a string or number.  Returns the zone a container's contents belong
 * to (Z_SKIP: not written).
 */
static enum zone value_begin(struct transform *tf, enum schema_type t,
                             const char *str, size_t str_len)
{
    struct frame *f = top(tf);
    enum zone z = (enum zone)f->zone;

    f->count++;
    if (tf->failed) {
        return Z_SKIP;
    }
    switch (z) {
    case Z_TOP:
        if (tf->member_skip) {
            return Z_SKIP;
        }
        if (tf->member_moved) {
            if (t != SCHEMA_TYPE_NONE) {
                check_type(tf, t);
            }
            return Z_META;
        }
        if (t == SCHEMA_TYPE_NONE) {
            /* a top-level null counts as absent: dropped */
            tf->top_null = 1;
            return Z_SKIP;
        }
        switch (tf->field) {
        case TF_FIELD_USER_ID:
            if (t != SCHEMA_TYPE_STRING) {
                fail(tf, CORE_REJECT_INVALID_FIELD_TYPE,
                     "user_id must be a non-empty string, not %s", a_type(t));
            } else if (str_len == 0) {
                /* DESIGN.md section 1: required and non-empty, so an empty
                 * user_id is a missing one (issue 11): missing_user_id,
                 * judged last like an absent or null one */
                tf->empty_user_id = 1;
                return Z_SKIP;
            }
            tf->have_user_id = 1;
            if (tf->failed) {
                return Z_SKIP;
            }
            if (!is_raw(tf, str)) {
                str = arena_copy(tf, str, str_len);
            }
            tf->user_id = str;
            tf->user_id_len = str_len;
            return Z_SKIP;
        case TF_FIELD_MODIFIED_TIME:
            if (t != SCHEMA_TYPE_STRING ||
                !transform_iso8601_ok(str, str_len)) {
                fail(tf, CORE_REJECT_INVALID_FIELD_TYPE,
                     "modified_time must be an ISO 8601 date-time string "
                     "like \"2024-05-01T12:30:00Z\"");
            }
            return Z_SKIP;
        case TF_FIELD_CAMPAIGN:
            if (t != SCHEMA_TYPE_OBJECT) {
                break;
            }
            return Z_CAMPAIGN;
        case TF_FIELD_METADATA:
            if (t != SCHEMA_TYPE_OBJECT) {
                break;
            }
            return Z_META;
        default:
            if (t != SCHEMA_TYPE_STRING) {
                break;
            }
            return Z_SKIP;
        }
        fail(tf, CORE_REJECT_INVALID_FIELD_TYPE, "%.*s must be %s, not %s",
             (int)tf->key_len, tf->key, field_rule(tf->field), a_type(t));
        return Z_SKIP;
    case Z_CAMPAIGN:
        if (t != SCHEMA_TYPE_STRING && t != SCHEMA_TYPE_NONE) {
            fail(tf, CORE_REJECT_INVALID_FIELD_TYPE,
                 "campaign members must be strings, not %s", a_type(t));
        }
        return Z_SKIP;
    case Z_META:
        if (!f->is_array && t != SCHEMA_TYPE_NONE) {
            check_type(tf, t);
        }
        return Z_META;
    case Z_SKIP:
        return Z_SKIP;
    }
    return Z_SKIP;
}

/* After a scalar value: close the top-level member it was. */
static void scalar_end(struct transform *tf)
{
    if (tf->depth == 1 && !tf->failed) {
        top_member_done(tf);
    }
}

/* Writes a scalar token ending at `end`, unless its member is dropped. */
static void emit_scalar(struct transform *tf, size_t end)
{
    if (tf->failed || top(tf)->zone == Z_SKIP ||
        (tf->depth == 1 && tf->member_skip)) {
        skip(tf, end);
    } else if (tf->depth == 1 && tf->top_null) {
        retract(tf, end);
    } else {
        pass(tf, end);
    }
}

/* Where a scalar token ends: from its text when that lies in the input
 * (a string without escapes ends at its closing quote, a number at its
 * last digit), else from the parser. */
static inline size_t token_end(struct transform *tf, enum schema_type t,
                               const char *s, size_t len)
{
    if ((t == SCHEMA_TYPE_STRING || t == SCHEMA_TYPE_NUMBER) && is_raw(tf, s)) {
        return (size_t)(s - tf->in) + len + (t == SCHEMA_TYPE_STRING);
    }
    return here(tf);
}

static int scalar(struct transform *tf, enum schema_type t, const char *s,
                  size_t len)
{
    if (tf->depth > 1 && !tf->failed) {
        struct frame *f = top(tf);
        if (f->zone == Z_META) {
            /* the bulk of an event: a metadata value */
            f->count++;
            if (!f->is_array && t != SCHEMA_TYPE_NONE) {
                check_type(tf, t);
            }
            pass(tf, token_end(tf, t, s, len));
            return 1;
        }
    }
    if (tf->depth == 0) {
        if (++tf->top_values > 1) {
            tf->extra_value = 1;
            tf->failed = 1;
            return 1;
        }
        fail(tf, CORE_REJECT_NOT_AN_OBJECT, "the event is %s, not an object",
             a_type(t));
        return 1;
    }
    value_begin(tf, t, s, len);
    emit_scalar(tf, token_end(tf, t, s, len));
    scalar_end(tf);
    return 1;
}

static int cb_null(void *ctx)
{
    return scalar(ctx, SCHEMA_TYPE_NONE, NULL, 0);
}

static int cb_boolean(void *ctx, int v)
{
    (void)v;
    return scalar(ctx, SCHEMA_TYPE_BOOLEAN, NULL, 0);
}

static int cb_number(void *ctx, const char *s, size_t len)
{
    return scalar(ctx, SCHEMA_TYPE_NUMBER, s, len);
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
    return scalar(ctx, SCHEMA_TYPE_STRING, (const char *)s, len);
}

static int open_container(struct transform *tf, int is_array)
{
    enum zone z = Z_TOP;
    struct frame *f;
    size_t end = here(tf);

    if (tf->depth >= tf->cfg.max_depth) {
        tf->aborted = 1;
        tf->failed = 1;
        tf->rej->code = CORE_REJECT_TOO_DEEP;
        build_path(tf, 0);
        snprintf(tf->rej->message, sizeof(tf->rej->message),
                 "the event nests deeper than %u levels "
                 "(transform.max_depth)",
                 tf->cfg.max_depth);
        return 0;
    }
    if (tf->depth == 0 && ++tf->top_values > 1) {
        /* the handle takes several values (it is reused across events):
         * a second one in one event is not JSON */
        tf->extra_value = 1;
        tf->failed = 1;
    }
    if (tf->depth == 0) {
        if (is_array) {
            fail(tf, CORE_REJECT_NOT_AN_OBJECT,
                 "the event is a JSON array, not an object");
        }
        /* leading whitespace is not copied */
        for (size_t i = 0; i + 1 < end; i++) {
            if (ws_class[(unsigned char)tf->in[i]] == 2) {
                tf->bad_ws = 1;
            }
        }
        tf->span_start = end - 1;
        tf->last_end = end;
    } else {
        z = value_begin(tf, is_array ? SCHEMA_TYPE_ARRAY : SCHEMA_TYPE_OBJECT,
                        NULL, 0);
        if (tf->failed || z == Z_SKIP) {
            skip(tf, end);
        } else {
            pass(tf, end);
        }
    }

    f = &tf->frames[tf->depth];
    if (tf->depth > 0) {
        const struct frame *parent = &tf->frames[tf->depth - 1];
        f->label = parent->is_array ? NULL : tf->key;
        f->label_len = (uint32_t)tf->key_len;
        f->index = parent->count - 1;
    } else {
        f->label = NULL;
        f->label_len = 0;
        f->index = 0;
    }
    f->count = 0;
    f->is_array = (uint8_t)is_array;
    f->zone = (uint8_t)z;
    if (tf->depth == 1 && z == Z_META && !tf->member_moved) {
        f->obj_id = OBJ_ID_METADATA;
        tf->meta_open = 1;
    } else {
        f->obj_id = ++tf->next_obj_id;
    }
    f->hs_base = (uint32_t)tf->hs_len;
    f->hs_bits = 0;
    f->big = 0;
    f->fast = z == Z_META && tf->cfg.scope == TRANSFORM_SCOPE_NAME &&
              !(f->obj_id == OBJ_ID_METADATA &&
                tf->cfg.unknown_fields == TRANSFORM_UNKNOWN_METADATA);
    if (tf->cfg.scope == TRANSFORM_SCOPE_PATH && z == Z_META) {
        if (tf->depth == 1 && !tf->member_moved) {
            tf->spath.len = 0; /* metadata itself: paths start inside */
        } else if (is_array) {
            buf_add(&tf->spath, "[]", 2);
        }
        f->spath_len = (uint32_t)tf->spath.len;
    }
    tf->depth++;
    return 1;
}

static int close_container(struct transform *tf)
{
    struct frame *f = top(tf);
    size_t end = here(tf);

    if (!tf->failed && tf->depth == 2 && f->obj_id == OBJ_ID_METADATA &&
        tf->cfg.unknown_fields == TRANSFORM_UNKNOWN_METADATA) {
        /* remember where moved fields would go */
        flush(tf);
        tf->meta_close_off = tf->out.len;
        tf->meta_nonempty = f->count > 0;
    }
    if (!tf->failed && tf->depth == 1) {
        /* the event's closing brace: fields moved under a metadata the
         * event lacks get one of their own */
        if (tf->moved.len > 0 && !tf->meta_open) {
            flush(tf);
            if (tf->top_emitted > 0) {
                buf_addc(&tf->out, ',');
            }
            buf_add(&tf->out, "\"metadata\":{", 12);
            buf_add(&tf->out, tf->moved.p, tf->moved.len);
            buf_addc(&tf->out, '}');
        }
    }
    if (tf->failed || f->zone == Z_SKIP) {
        skip(tf, end);
    } else {
        pass(tf, end);
    }
    tf->hs_len = f->hs_base;
    tf->depth--;
    if (tf->cfg.scope == TRANSFORM_SCOPE_PATH && tf->depth > 0) {
        tf->spath.len = top(tf)->spath_len;
    }
    if (tf->depth == 1 && !tf->failed) {
        top_member_done(tf);
    }
    return 1;
}

static int cb_start_map(void *ctx)
{
    return open_container(ctx, 0);
}

static int cb_start_array(void *ctx)
{
    return open_container(ctx, 1);
}

static int cb_end(void *ctx)
{
    return close_container(ctx);
}

/* ---- keys ------------------------------------------------------------ */

/* Writes the key token ending at `end`, which had escapes, as the
 * rewritten key k[0..len), encoded again by yajl_gen. */
static void emit_rewritten_key(struct transform *tf, size_t end, const char *k,
                               size_t len)
{
    const unsigned char *enc;
    size_t enc_len;

    yajl_gen_clear(tf->g);
    yajl_gen_reset(tf->g, NULL);
    yajl_gen_string(tf->g, (const unsigned char *)k, len);
    yajl_gen_get_buf(tf->g, &enc, &enc_len);
    replace(tf, end, (const char *)enc, enc_len);
}

/* Whether key is new among the keys of small object f; if so it joins
 * them.  The 64-bit mask of hash bits lets most keys skip the scan. */
static inline int small_key_is_new(struct transform *tf, struct frame *f,
                                   const char *key, size_t len, uint64_t hash)
{
    struct hkey *h;

    if (f->hs_bits & (1ULL << (hash & 63))) {
        for (uint32_t i = f->hs_base; i < tf->hs_len; i++) {
            h = &tf->hs[i];
            if (h->hash == hash && h->len == len &&
                memcmp(h->key, key, len) == 0) {
                return 0;
            }
        }
    }
    f->hs_bits |= 1ULL << (hash & 63);
    h = &tf->hs[tf->hs_len++];
    h->hash = hash;
    h->key = key;
    h->len = len;
    return 1;
}

/*
 * The duplicate-key rule: whether key (hash in tf->key_hash) is new in
 * object f.  Known top-level fields use a bit each; small objects scan
 * their keys' hashes; large objects, and metadata when fields may be moved
 * into it, use the per-event key set.
 */
static int key_is_new(struct transform *tf, struct frame *f, const char *key,
                      size_t len)
{
    uint64_t hash;
    uint32_t n;

    if (tf->depth == 1 && tf->field != TF_FIELD_UNKNOWN) {
        unsigned bit = 1u << tf->field;
        if (tf->seen_fields & bit) {
            return 0;
        }
        tf->seen_fields |= bit;
        return 1;
    }
    tf->key_hash = hash = core_hash64(key, len);
    if ((tf->depth == 1 && tf->member_moved) ||
        (f->obj_id == OBJ_ID_METADATA &&
         tf->cfg.unknown_fields == TRANSFORM_UNKNOWN_METADATA)) {
        return tf_keyset_add(&tf->ks, OBJ_ID_METADATA, key, len, hash);
    }
    if (f->big) {
        return tf_keyset_add(&tf->ks, f->obj_id, key, len, hash);
    }
    n = (uint32_t)tf->hs_len - f->hs_base;
    if (n < SMALL_OBJECT) {
        return small_key_is_new(tf, f, key, len, hash);
    }
    /* grown out of the stack: its keys move to the key set */
    for (uint32_t i = f->hs_base; i < tf->hs_len; i++) {
        const struct hkey *h = &tf->hs[i];
        tf_keyset_add(&tf->ks, f->obj_id, h->key, h->len, h->hash);
    }
    tf->hs_len = f->hs_base;
    f->big = 1;
    return tf_keyset_add(&tf->ks, f->obj_id, key, len, hash);
}

/* Rejects the key key[0..len), which holds a NUL, as invalid_key; its
 * path and sentence show each NUL as \u0000. */
static void nul_key(struct transform *tf, const char *key, size_t len)
{
    char shown[CORE_REJECT_PATH_MAX];
    size_t n = 0;

    for (size_t i = 0; i < len && n + 7 < sizeof(shown); i++) {
        if (key[i] == '\0') {
            memcpy(shown + n, "\\u0000", 6);
            n += 6;
        } else {
            shown[n++] = key[i];
        }
    }
    tf->key = shown;
    tf->key_len = n;
    fail(tf, CORE_REJECT_INVALID_KEY,
         "key \"%.*s\" holds U+0000 (NUL), which no key may hold",
         (int)(n > 200 ? 200 : n), shown);
    /* the path is built: labels of later containers need stable bytes */
    tf->key = key;
    tf->key_len = len;
}

static int cb_map_key(void *ctx, const unsigned char *ukey, size_t len)
{
    struct transform *tf = ctx;
    struct frame *f = top(tf);
    const char *key = (const char *)ukey;
    size_t end;
    int raw = is_raw(tf, key);
    int rewritten = 0;
    enum zone z = (enum zone)f->zone;

    if (f->fast && raw && !tf->failed && !f->big &&
        tf->hs_len - f->hs_base < SMALL_OBJECT &&
        memchr(key, '.', len) == NULL) {
        /* the common metadata key: no escapes, no dot, a small object,
         * the name scope; it ends at its closing quote */
        uint64_t hash = core_hash64(key, len);
        if (small_key_is_new(tf, f, key, len, hash)) {
            tf->key = key;
            tf->key_len = len;
            tf->key_hash = hash;
            pass(tf, (size_t)(key - tf->in) + len + 1);
            return 1;
        }
    }
    end = here(tf);

    if (tf->failed) {
        /* keep labels right for a later too_deep path */
        tf->key = raw ? key : arena_copy(tf, key, len);
        tf->key_len = len;
        skip(tf, end);
        return 1;
    }
    if (!raw && memchr(key, '\0', len) != NULL) {
        /* only an escape (\u0000) makes a NUL: raw control bytes are
         * invalid JSON.  Refused in every key (issue 20): C strings of
         * the schema's claims, the seed file and the dead-letter headers
         * would end at it, giving the key a type under another name */
        nul_key(tf, arena_copy(tf, key, len), len);
        skip(tf, end);
        return 1;
    }
    if (tf->depth == 1) {
        tf->field = transform_field_lookup(key, len);
        if (tf->field == TF_FIELD_UNKNOWN) {
            switch (tf->cfg.unknown_fields) {
            case TRANSFORM_UNKNOWN_REJECT:
                tf->key = key;
                tf->key_len = len;
                fail(tf, CORE_REJECT_UNKNOWN_FIELD,
                     "top-level field \"%.*s\" is not a Moesif user field; "
                     "custom data belongs under metadata",
                     (int)(len > 200 ? 200 : len), key);
                skip(tf, end);
                return 1;
            case TRANSFORM_UNKNOWN_DROP:
                tf->member_skip = 1;
                break;
            case TRANSFORM_UNKNOWN_METADATA:
                tf->member_moved = 1;
                z = Z_META;
                break;
            }
        }
    }
    if (z == Z_META && memchr(key, '.', len) != NULL) {
        char *k = arena_copy(tf, key, len);
        for (size_t i = 0; i < len; i++) {
            if (k[i] == '.') {
                k[i] = '_';
            }
        }
        key = k;
        rewritten = 1;
    } else if (!raw) {
        key = arena_copy(tf, key, len);
    }
    tf->key = key;
    tf->key_len = len;
    if (!key_is_new(tf, f, key, len)) {
        fail(tf, CORE_REJECT_DUPLICATE_KEY,
             "key \"%.*s\" appears twice in one object%s",
             (int)(len > 200 ? 200 : len), key,
             rewritten || tf->depth == 1 ? " (after rewriting dots or "
                                           "moving fields under metadata)"
                                         : "");
        skip(tf, end);
        return 1;
    }
    if (tf->cfg.scope == TRANSFORM_SCOPE_PATH && z == Z_META) {
        tf->spath.len = tf->depth == 1 ? 0 : f->spath_len;
        if (tf->spath.len > 0) {
            buf_addc(&tf->spath, '.');
        }
        buf_add(&tf->spath, key, len);
    }

    if (tf->depth == 1) {
        char sep;
        int ws;
        size_t start;

        if (tf->member_skip) {
            /* written up to the previous member; this one never is */
            flush(tf);
            skip(tf, end);
            return 1;
        }
        if (tf->member_moved) {
            flush(tf);
            start = token_start(tf, &sep, &ws);
            tf->cur = &tf->moved;
            if (tf->moved.len > 0) {
                buf_addc(tf->cur, ',');
            }
            tf->span_start = tf->last_end = start;
        } else {
            /* the member may turn out to be a null, to be taken back:
             * remember where it starts, in the input and the output */
            start = token_start(tf, &sep, &ws);
            if (ws || (sep == ',') != (tf->top_emitted > 0)) {
                /* whitespace, or a ',' after only dropped members */
                flush(tf);
                tf->out_mark = tf->out.len;
                tf->mark_flushed = 1;
                if (tf->top_emitted > 0) {
                    buf_addc(tf->cur, ',');
                }
                tf->span_start = tf->last_end = start;
            } else {
                tf->out_mark = tf->out.len;
                tf->mark_flushed = 0;
                tf->mark_in = tf->last_end;
                tf->mark_span = tf->span_start;
            }
        }
    }
    if (rewritten && raw) {
        pass(tf, end);
        if (tf->npatches == tf->patches_cap) {
            tf->patches_cap = tf->patches_cap ? tf->patches_cap * 2 : 16;
            tf->patches = core_realloc(tf->patches,
                                       tf->patches_cap * sizeof(*tf->patches));
        }
        tf->patches[tf->npatches].off =
            (size_t)(ukey - (const unsigned char *)tf->in);
        tf->patches[tf->npatches].len = len;
        tf->npatches++;
    } else if (rewritten) {
        emit_rewritten_key(tf, end, key, len);
    } else if (z == Z_SKIP) {
        skip(tf, end);
    } else {
        pass(tf, end);
    }
    return 1;
}

/* ---- the public verbs ------------------------------------------------ */

enum core_err transform_new(const struct transform_config *cfg,
                            struct schema *sch, struct transform **out,
                            char *errstr, size_t errstr_size)
{
    struct transform *tf;

    *out = NULL;
    (void)errstr;
    (void)errstr_size;
    assert(cfg->max_event_bytes >= TRANSFORM_MAX_EVENT_BYTES_MIN &&
           cfg->max_event_bytes <= TRANSFORM_MAX_EVENT_BYTES_MAX);
    assert(cfg->max_depth >= TRANSFORM_MAX_DEPTH_MIN &&
           cfg->max_depth <= TRANSFORM_MAX_DEPTH_MAX);
    assert(cfg->max_schema_keys >= TRANSFORM_MAX_SCHEMA_KEYS_MIN &&
           cfg->max_schema_keys <= TRANSFORM_MAX_SCHEMA_KEYS_MAX);
    assert((unsigned)cfg->scope <= TRANSFORM_SCOPE_PATH &&
           (unsigned)cfg->unknown_fields <= TRANSFORM_UNKNOWN_METADATA);
    tf = core_calloc(1, sizeof(*tf));
    tf->cfg = *cfg;
    tf->sch = sch;
    tf->pending = schema_new();
    tf->cb.yajl_null = cb_null;
    tf->cb.yajl_boolean = cb_boolean;
    tf->cb.yajl_number = cb_number;
    tf->cb.yajl_string = cb_string;
    tf->cb.yajl_start_map = cb_start_map;
    tf->cb.yajl_map_key = cb_map_key;
    tf->cb.yajl_end_map = cb_end;
    tf->cb.yajl_start_array = cb_start_array;
    tf->cb.yajl_end_array = cb_end;
    tf->g = yajl_gen_alloc(NULL);
    tf->frames = core_calloc(cfg->max_depth, sizeof(*tf->frames));
    tf_keyset_init(&tf->ks);
    tf->hs =
        core_calloc((size_t)cfg->max_depth * SMALL_OBJECT, sizeof(*tf->hs));
    *out = tf;
    return CORE_OK;
}

void transform_destroy(struct transform *tf)
{
    if (tf == NULL) {
        return;
    }
    schema_destroy(tf->pending);
    if (tf->h != NULL) {
        yajl_free(tf->h);
    }
    if (tf->g != NULL) {
        yajl_gen_free(tf->g);
    }
    tf_keyset_release(&tf->ks);
    free(tf->hs);
    free(tf->frames);
    free(tf->out.p);
    free(tf->moved.p);
    free(tf->arena.p);
    free(tf->spath.p);
    free(tf->patches);
    free(tf);
}

size_t transform_new_keys(const struct transform *tf)
{
    return tf->new_keys;
}

void transform_user_id(const struct transform *tf, const char **user_id,
                       size_t *len)
{
    *user_id = tf->user_id;
    *len = tf->user_id_len;
}

static void reset(struct transform *tf, const char *buf, size_t len,
                  struct core_reject *rej)
{
    tf->in = buf;
    tf->in_len = len;
    tf->last_end = tf->span_start = 0;
    tf->out.len = tf->moved.len = tf->arena.len = tf->spath.len = 0;
    /* output is at most the input plus a "metadata" wrapper; keys decoded
     * are never longer than they were escaped */
    buf_reserve(&tf->out, len + 64);
    buf_reserve(&tf->arena, len + 1);
    tf->cur = &tf->out;
    tf->depth = 0;
    tf->key = NULL;
    tf->key_len = 0;
    tf->field = TF_FIELD_UNKNOWN;
    tf->top_emitted = 0;
    tf->out_mark = 0;
    tf->have_user_id = tf->top_null = tf->member_moved = tf->member_skip = 0;
    tf->empty_user_id = 0;
    tf->meta_open = tf->meta_nonempty = 0;
    tf->meta_close_off = 0;
    tf_keyset_clear(&tf->ks);
    tf->next_obj_id = OBJ_ID_METADATA;
    tf->hs_len = 0;
    tf->seen_fields = 0;
    tf->npatches = 0;
    tf->rej = rej;
    tf->failed = tf->aborted = tf->bad_ws = 0;
    tf->top_values = 0;
    tf->extra_value = 0;
    tf->new_keys = 0;
    rej->code = CORE_REJECT_NONE;
    rej->path[0] = '\0';
    rej->message[0] = '\0';
    if (schema_count(tf->pending) > 0) {
        schema_clear(tf->pending);
    }
}

/* at: the byte where the parser stopped (the length when it was the end
 * of the event that was missing). */
static void invalid_json(struct transform *tf, const char *buf, size_t len,
                         size_t at)
{
    unsigned char *msg =
        yajl_get_error(tf->h, 0, (const unsigned char *)buf, len);
    char *nl;

    nl = strchr((char *)msg, '\n');
    if (nl != NULL) {
        *nl = '\0';
    }
    tf->rej->code = CORE_REJECT_INVALID_JSON;
    tf->rej->path[0] = '\0';
    snprintf(tf->rej->message, sizeof(tf->rej->message),
             "the event is not valid JSON at byte %zu: %s", at,
             (const char *)msg);
    yajl_free_error(tf->h, msg);
}

enum core_err transform_event(struct transform *tf, const char *buf, size_t len,
                              const char **out, size_t *out_len,
                              struct core_reject *rej)
{
    yajl_status st;
    size_t at;

    tf->new_keys = 0;
    if (buf == NULL || len == 0) {
        /* judged before the parser, whose handle may have finished a
         * value: an empty input then parsed as nothing, missing_user_id
         * after a valid event and invalid_json otherwise (issue 20) */
        int tomb = buf == NULL;
        rej->code = tomb ? CORE_REJECT_TOMBSTONE : CORE_REJECT_EMPTY_MESSAGE;
        rej->path[0] = '\0';
        snprintf(rej->message, sizeof(rej->message), "%s",
                 tomb ? "the message is a tombstone (its value is null): "
                        "there is no event to send"
                      : "the message is empty (a value of 0 bytes): there "
                        "is no event to send");
        return CORE_ERR_REJECT;
    }
    if (len > tf->cfg.max_event_bytes) {
        rej->code = CORE_REJECT_TOO_LARGE;
        rej->path[0] = '\0';
        snprintf(rej->message, sizeof(rej->message),
                 "the event is %zu bytes, over the limit of %zu "
                 "(transform.max_event_bytes)",
                 len, tf->cfg.max_event_bytes);
        return CORE_ERR_REJECT;
    }
    reset(tf, buf, len, rej);
    if (tf->h == NULL) {
        /* one handle for every event while they parse cleanly: yajl has
         * no reset, but with multiple values allowed a finished value
         * leaves it ready for the next (a second value inside one event
         * is caught by the callbacks).  Saves an allocation and a free of
         * the handle, its lexer and its stack per event (make bench). */
        tf->h = yajl_alloc(&tf->cb, NULL, tf);
        yajl_config(tf->h, yajl_allow_multiple_values, 1);
    }
    st = yajl_parse(tf->h, (const unsigned char *)buf, len);
    at = yajl_get_bytes_consumed(tf->h);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(tf->h);
        at = len;
    }
    if (!tf->aborted && st == yajl_status_ok) {
        /* after the event's closing brace: only whitespace */
        for (size_t i = tf->last_end; i < len; i++) {
            if (ws_class[(unsigned char)buf[i]] == 2) {
                tf->bad_ws = 1;
            }
        }
    }
    if (tf->aborted) {
        /* too_deep, already described */
    } else if (st != yajl_status_ok) {
        invalid_json(tf, buf, len, at);
    } else if (tf->top_values == 0) {
        /* only whitespace: a fresh handle says so (premature EOF), a
         * reused one, having finished a value, parsed nothing */
        tf->failed = 1;
        rej->code = CORE_REJECT_INVALID_JSON;
        rej->path[0] = '\0';
        snprintf(rej->message, sizeof(rej->message),
                 "the event is not valid JSON: it holds only whitespace");
        st = yajl_status_error; /* and the handle is not reused */
    } else if (tf->extra_value) {
        tf->failed = 1;
        rej->code = CORE_REJECT_INVALID_JSON;
        rej->path[0] = '\0';
        snprintf(rej->message, sizeof(rej->message),
                 "the event is not valid JSON: more than one JSON value");
    } else if (tf->bad_ws) {
        tf->failed = 1;
        rej->code = CORE_REJECT_INVALID_JSON;
        rej->path[0] = '\0';
        snprintf(rej->message, sizeof(rej->message),
                 "the event is not valid JSON: a form feed or vertical tab "
                 "stands between tokens (JSON allows space, tab, CR, LF)");
    } else if (!tf->failed && !tf->have_user_id) {
        tf->failed = 1;
        rej->code = CORE_REJECT_MISSING_USER_ID;
        snprintf(rej->message, sizeof(rej->message),
                 "the event has %s; every user update needs a "
                 "non-empty string user_id",
                 tf->empty_user_id ? "an empty user_id" : "no user_id");
    }
    if (tf->aborted || st != yajl_status_ok) {
        /* a cancelled or failed parse leaves the handle in error */
        yajl_free(tf->h);
        tf->h = NULL;
    }
    if (tf->aborted || st != yajl_status_ok || tf->failed) {
        return CORE_ERR_REJECT;
    }

    flush(tf);
    if (tf->moved.len > 0 && tf->meta_open) {
        /* insert the moved fields at the end of the event's metadata */
        size_t add = tf->moved.len + (tf->meta_nonempty ? 1 : 0);
        size_t off = tf->meta_close_off;
        buf_reserve(&tf->out, add);
        memmove(tf->out.p + off + add, tf->out.p + off, tf->out.len - off);
        if (tf->meta_nonempty) {
            tf->out.p[off++] = ',';
        }
        memcpy(tf->out.p + off, tf->moved.p, tf->moved.len);
        tf->out.len += add;
    }
    tf->new_keys = schema_count(tf->pending);
    if (tf->cfg.defer_new_keys && tf->new_keys > 0) {
        /* valid in every other respect: its new keys must be claimed in
         * the shared schema first (issue 5) */
        return CORE_ERR_RETRY;
    }
    /* the event is accepted: its new keys join the schema */
    for (size_t i = 0; i < schema_count(tf->pending); i++) {
        const char *k;
        size_t klen;
        enum schema_type t;
        schema_entry(tf->pending, i, &k, &klen, &t);
        schema_put(tf->sch, k, klen, core_hash64(k, klen), t);
    }
    *out = tf->out.p;
    *out_len = tf->out.len;
    return CORE_OK;
}

void transform_new_key(const struct transform *tf, size_t i, const char **key,
                       size_t *len, enum schema_type *type)
{
    schema_entry(tf->pending, i, key, len, type);
}
