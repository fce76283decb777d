/*
 * moesif_parse.c: one pass of yajl's streaming parser over a request
 * body into a flat token tape, validating every user on the way.
 *
 * Why a tape: Moesif refuses a whole batch when one user in it is bad,
 * so nothing may reach the store before the last user is checked, and a
 * tape is the cheapest thing to check first and apply after.  Strings
 * stay in the body when yajl hands them out unescaped (the common case);
 * only escaped strings and dotted metadata keys are copied, into an
 * arena sized from the body so it never moves during a parse.
 *
 * The hot path allocates nothing once the buffers have grown: the yajl
 * handle is kept across bodies (yajl_allow_multiple_values lets one
 * handle parse value after value; a handle that failed is replaced), and
 * the tape's arrays are reused.
 */
#include "moesif_dev.h"

#include <assert.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

uint64_t mhash(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a 64 offset basis */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL; /* FNV-1a 64 prime */
    }
    return h;
}

static void fail(struct mtape *tp, const char *code, const char *fmt, ...)
    CORE_PRINTF(3, 4);

static void fail(struct mtape *tp, const char *code, const char *fmt, ...)
{
    va_list ap;

    if (tp->err_code[0] != '\0') {
        return; /* keep the first problem */
    }
    snprintf(tp->err_code, sizeof(tp->err_code), "%s", code);
    va_start(ap, fmt);
    vsnprintf(tp->err_msg, sizeof(tp->err_msg), fmt, ap);
    va_end(ap);
    /* yajl's messages end in a newline */
    for (size_t n = strlen(tp->err_msg);
         n > 0 && (tp->err_msg[n - 1] == '\n' || tp->err_msg[n - 1] == ' ');
         n--) {
        tp->err_msg[n - 1] = '\0';
    }
}

/* "the user at index 3 of the batch" (from 0), or "the user" */
static const char *who(const struct mtape *tp, char *buf, size_t size)
{
    if (tp->kind == MPARSE_BATCH) {
        snprintf(buf, size, "the user at index %zu of the batch", tp->n_users);
    } else {
        snprintf(buf, size, "the user");
    }
    return buf;
}

static bool in_body(const struct mtape *tp, const char *p)
{
    return p >= tp->body && p < tp->body + tp->body_len;
}

/* A stable copy of s: s itself when it lies in the body, else an arena
 * copy.  With rewrite, '.' becomes '_' (Moesif's rule for metadata keys). */
static const char *stable(struct mtape *tp, const char *s, size_t len,
                          bool rewrite)
{
    char *dst;

    if (!(rewrite && memchr(s, '.', len) != NULL) && in_body(tp, s)) {
        return s;
    }
    /* The arena holds at most the body's length: every copied string came
     * from a token at least two bytes (its quotes) longer than itself. */
    assert(tp->arena_len + len <= tp->arena_cap);
    dst = tp->arena + tp->arena_len;
    memcpy(dst, s, len);
    if (rewrite) {
        for (size_t i = 0; i < len; i++) {
            if (dst[i] == '.') {
                dst[i] = '_';
            }
        }
    }
    tp->arena_len += len;
    return dst;
}

/* The user object tokens sit at depth 0 (single) or 1 (batch). */
static unsigned user_depth(const struct mtape *tp)
{
    return tp->kind == MPARSE_BATCH ? 1 : 0;
}

#define IS_KEY(tp, lit)                                                        \
    ((tp)->key_len == sizeof(lit) - 1 &&                                       \
     memcmp((tp)->key, (lit), sizeof(lit) - 1) == 0)

/* Section 1 of DESIGN.md: the type each named user field must have.
 * Returns 1 for a valid user_id, 0 for any other valid field, -1 when the
 * user is invalid. */
static int check_user_field(struct mtape *tp, enum mjson_type type,
                            size_t val_len)
{
    char w[64];

    if (IS_KEY(tp, "user_id")) {
        if (type != MJSON_STRING || val_len == 0) {
            fail(tp, "missing_user_id", "%s has no non-empty string user_id",
                 who(tp, w, sizeof(w)));
            return -1;
        }
        return 1;
    }
    if (type == MJSON_NULL) {
        return 0; /* a top-level null counts as absent */
    }
    if (type != MJSON_STRING &&
        (IS_KEY(tp, "session_token") || IS_KEY(tp, "company_id") ||
         IS_KEY(tp, "modified_time") || IS_KEY(tp, "ip_address") ||
         IS_KEY(tp, "user_agent_string"))) {
        fail(tp, "invalid_field_type", "%s: %.*s must be a string",
             who(tp, w, sizeof(w)), (int)tp->key_len, tp->key);
        return -1;
    }
    if (type != MJSON_OBJECT &&
        (IS_KEY(tp, "metadata") || IS_KEY(tp, "campaign"))) {
        fail(tp, "invalid_field_type", "%s: %.*s must be an object",
             who(tp, w, sizeof(w)), (int)tp->key_len, tp->key);
        return -1;
    }
    return 0;
}

static void grow_toks(struct mtape *tp)
{
    tp->cap_toks = tp->cap_toks ? tp->cap_toks * 2 : 1024;
    tp->toks = core_realloc(tp->toks, tp->cap_toks * sizeof(*tp->toks));
}

/* Appends a value token; returns 0 to go on, -1 to cancel the parse. */
static int push(struct mtape *tp, enum mjson_type type, const char *val,
                size_t len)
{
    struct mtok *tok;
    char w[64];
    bool container = type == MJSON_OBJECT || type == MJSON_ARRAY;

    if (tp->depth == 0) {
        if (++tp->roots > 1) {
            fail(tp, "invalid_json", "the body holds more than one value");
            return -1;
        }
        if (tp->kind == MPARSE_BATCH && type != MJSON_ARRAY) {
            fail(tp, "not_an_array",
                 "the body of /v1/users/batch must be a JSON array");
            return -1;
        }
        if (tp->kind == MPARSE_SINGLE && type != MJSON_OBJECT) {
            fail(tp, "not_an_object",
                 "the body of /v1/users must be a JSON object");
            return -1;
        }
    } else if (tp->depth == user_depth(tp) && type != MJSON_OBJECT) {
        fail(tp, "not_an_object",
             "the element at index %zu of the batch is not an object",
             tp->n_users);
        return -1;
    }
    if (len > UINT32_MAX) {
        fail(tp, "too_large", "a string is longer than 4 GiB");
        return -1;
    }
    if (tp->n_toks == tp->cap_toks) {
        grow_toks(tp);
    }
    tok = &tp->toks[tp->n_toks];
    tok->key = tp->key;
    tok->key_len = tp->key_len;
    tok->val = val != NULL ? stable(tp, val, len, false) : NULL;
    tok->val_len = (uint32_t)len;
    tok->type = (uint8_t)type;
    tok->end = (uint32_t)tp->n_toks + 1;

    if (tp->depth == user_depth(tp) + 1) {
        int rc = check_user_field(tp, type, len);
        if (rc < 0) {
            return -1;
        }
        if (rc == 1) {
            struct muser_ref *u = &tp->users[tp->n_users];
            u->id = tok->val;
            u->id_len = tok->val_len;
            tp->user_has_id = true;
            /* the refuse_user fault: one length test per user when off */
            if (tp->refuse_id_len != 0 && tok->val_len == tp->refuse_id_len &&
                memcmp(tok->val, tp->refuse_id, tp->refuse_id_len) == 0) {
                fail(tp, "refused_user",
                     "user '%.*s' refused by the dev server (refuse_user)",
                     (int)tok->val_len, tok->val);
                tp->refused_user = true;
                return -1;
            }
        }
        if (type == MJSON_OBJECT && IS_KEY(tp, "metadata")) {
            tp->meta_depth = tp->depth + 1;
        }
    }
    tp->key = NULL;
    tp->key_len = 0;

    if (container) {
        if (tp->depth == MPARSE_MAX_DEPTH) {
            fail(tp, "too_deep", "%s nests deeper than %d containers",
                 who(tp, w, sizeof(w)), MPARSE_MAX_DEPTH);
            return -1;
        }
        if (tp->depth == user_depth(tp)) {
            if (tp->n_users == tp->cap_users) {
                tp->cap_users = tp->cap_users ? tp->cap_users * 2 : 256;
                tp->users =
                    core_realloc(tp->users, tp->cap_users * sizeof(*tp->users));
            }
            tp->users[tp->n_users].tok = (uint32_t)tp->n_toks;
            tp->user_has_id = false;
        }
        tp->stack[tp->depth++] = (uint32_t)tp->n_toks;
    }
    tp->n_toks++;
    return 0;
}

static int end_container(struct mtape *tp)
{
    uint32_t idx = tp->stack[--tp->depth];
    char w[64];

    tp->toks[idx].end = (uint32_t)tp->n_toks;
    if (tp->meta_depth != 0 && tp->depth < tp->meta_depth) {
        tp->meta_depth = 0;
    }
    if (tp->depth == user_depth(tp)) {
        if (!tp->user_has_id) {
            fail(tp, "missing_user_id", "%s has no non-empty string user_id",
                 who(tp, w, sizeof(w)));
            return -1;
        }
        tp->n_users++;
    }
    return 0;
}

static int cb_null(void *ctx)
{
    return push(ctx, MJSON_NULL, NULL, 0) == 0;
}

static int cb_boolean(void *ctx, int value)
{
    return push(ctx, value ? MJSON_TRUE : MJSON_FALSE, NULL, 0) == 0;
}

static int cb_number(void *ctx, const char *s, size_t len)
{
    return push(ctx, MJSON_NUMBER, s, len) == 0;
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
    return push(ctx, MJSON_STRING, (const char *)s, len) == 0;
}

static int cb_start_map(void *ctx)
{
    return push(ctx, MJSON_OBJECT, NULL, 0) == 0;
}

static int cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
    struct mtape *tp = ctx;
    bool meta = tp->meta_depth != 0 && tp->depth >= tp->meta_depth;

    if (len > UINT32_MAX) {
        return 0;
    }
    tp->key = stable(tp, (const char *)s, len, meta);
    tp->key_len = (uint32_t)len;
    return 1;
}

static int cb_end(void *ctx)
{
    return end_container(ctx) == 0;
}

static int cb_start_array(void *ctx)
{
    return push(ctx, MJSON_ARRAY, NULL, 0) == 0;
}

static const yajl_callbacks callbacks = {
    cb_null,      cb_boolean, NULL,   NULL,           cb_number, cb_string,
    cb_start_map, cb_map_key, cb_end, cb_start_array, cb_end};

void mtape_init(struct mtape *tp)
{
    memset(tp, 0, sizeof(*tp));
}

void mtape_release(struct mtape *tp)
{
    if (tp->yh != NULL) {
        yajl_free(tp->yh);
    }
    free(tp->toks);
    free(tp->users);
    free(tp->arena);
    free(tp->idset);
    free(tp->idset_user);
    memset(tp, 0, sizeof(*tp));
}

static void find_dups(struct mtape *tp)
{
    size_t cap = 16;
    size_t mask;

    while (cap < tp->n_users * 2) {
        cap *= 2;
    }
    if (cap > tp->idset_cap) {
        free(tp->idset);
        free(tp->idset_user);
        tp->idset = core_malloc(cap * sizeof(*tp->idset));
        tp->idset_user = core_malloc(cap * sizeof(*tp->idset_user));
        tp->idset_cap = cap;
    }
    memset(tp->idset, 0, cap * sizeof(*tp->idset));
    mask = cap - 1;
    for (size_t i = 0; i < tp->n_users; i++) {
        const struct muser_ref *u = &tp->users[i];
        uint64_t h = u->id_hash | 1; /* 0 marks a free slot */
        size_t slot = (size_t)h & mask;

        while (tp->idset[slot] != 0) {
            const struct muser_ref *o = &tp->users[tp->idset_user[slot]];
            if (tp->idset[slot] == h && o->id_len == u->id_len &&
                memcmp(o->id, u->id, u->id_len) == 0) {
                tp->dup_ids = true;
                return;
            }
            slot = (slot + 1) & mask;
        }
        tp->idset[slot] = h;
        tp->idset_user[slot] = (uint32_t)i;
    }
}

int mtape_parse(struct mtape *tp, enum mparse_kind kind, const char *body,
                size_t len)
{
    yajl_status ys;

    tp->n_toks = 0;
    tp->n_users = 0;
    tp->arena_len = 0;
    tp->dup_ids = false;
    tp->refused_user = false;
    tp->err_code[0] = '\0';
    tp->err_msg[0] = '\0';
    tp->body = body;
    tp->body_len = len;
    tp->kind = kind;
    tp->depth = 0;
    tp->meta_depth = 0;
    tp->roots = 0;
    tp->key = NULL;
    tp->key_len = 0;
    if (tp->arena_cap < len + 16) {
        free(tp->arena);
        tp->arena_cap = len + 16;
        tp->arena = core_malloc(tp->arena_cap);
    }
    if (tp->yh == NULL) {
        tp->yh = yajl_alloc(&callbacks, NULL, tp);
        if (tp->yh == NULL) {
            fprintf(stderr, "moesif-dev: out of memory in yajl_alloc\n");
            abort();
        }
        yajl_config(tp->yh, yajl_allow_multiple_values, 1);
    }
    ys = yajl_parse(tp->yh, (const unsigned char *)body, len);
    if (ys == yajl_status_ok) {
        ys = yajl_complete_parse(tp->yh);
    }
    if (ys != yajl_status_ok) {
        if (tp->err_code[0] == '\0') {
            unsigned char *e = yajl_get_error(tp->yh, 0, NULL, 0);
            fail(tp, "invalid_json", "the body is not valid JSON: %s",
                 e != NULL ? (const char *)e : "?");
            yajl_free_error(tp->yh, e);
        }
        /* a failed handle cannot parse again */
        yajl_free(tp->yh);
        tp->yh = NULL;
        return -1;
    }
    if (tp->err_code[0] != '\0') {
        return -1;
    }
    if (tp->roots == 0) {
        fail(tp, "invalid_json", "the body is empty");
        return -1;
    }
    for (size_t i = 0; i < tp->n_users; i++) {
        tp->users[i].id_hash = mhash(tp->users[i].id, tp->users[i].id_len);
    }
    if (kind == MPARSE_BATCH && tp->n_users > 1) {
        find_dups(tp);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* the record file                                                    */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Writes body[*pos..) up to the end of one JSON value, minus whitespace
 * outside strings, and moves *pos past it. */
static void write_value(FILE *f, const char *body, size_t len, size_t *pos)
{
    size_t i = *pos;
    size_t run = i; /* start of the pending run of bytes to write */
    int depth = 0;
    bool in_str = false;

    for (; i < len; i++) {
        char c = body[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = false;
            }
            continue;
        }
        if (is_ws(c)) {
            fwrite(body + run, 1, i - run, f);
            run = i + 1;
            continue;
        }
        if (depth == 0 && (c == ',' || c == ']')) {
            break; /* a batch element ends here */
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    fwrite(body + run, 1, i - run, f);
    *pos = i;
}

void mrecord_write(FILE *f, enum mparse_kind kind, const char *body, size_t len)
{
    size_t pos = 0;

    if (kind == MPARSE_SINGLE) {
        write_value(f, body, len, &pos);
        fputc('\n', f);
        return;
    }
    while (pos < len && body[pos] != '[') {
        pos++;
    }
    pos++;
    for (;;) {
        while (pos < len && is_ws(body[pos])) {
            pos++;
        }
        if (pos >= len || body[pos] == ']') {
            return;
        }
        write_value(f, body, len, &pos);
        fputc('\n', f);
        if (pos < len && body[pos] == ',') {
            pos++;
        }
    }
}
