/*
 * merge.c: one user's newer update merged into its older one that still
 * waits unsent, so that a hot user costs one object per request instead
 * of one request per update (issue 21).  batch.c decides where the older
 * update waits; this file only decides whether, and how, two updates
 * become one object.
 *
 * THE RULES.  Moesif applies an update U to a stored profile S (moesif-dev
 * does the same, deploy/dev/moesif_store.c's apply_user):
 *   - a top-level null counts as absent; user_id names the profile;
 *   - session_token is appended to the alias table (no duplicates);
 *   - metadata, and campaign, are merged recursively: per member of U's
 *     object, a member S lacks is appended (at the end, in U's order); an
 *     object over a stored object is merged again; any other value
 *     (string, number, boolean, array, null, or an object over a stored
 *     non-object) replaces the stored one in place; members U lacks stay;
 *   - every other top-level field is replaced whole (appended when new).
 * Applying older A then newer B equals applying the one object M built
 * here, for every S, member by member and in the stored order too:
 *   - a member of A alone, or of B alone, is copied (A's members first, in
 *     A's order, then B's new ones in B's order: the order in which A then
 *     B append them to S);
 *   - a member in both whose B value is not an object: B's value, at A's
 *     place (B replaces whatever A left there, and M replaces whatever S
 *     had: the same value at the same place);
 *   - a member in both, objects in both: their merge, recursively (S's
 *     object gets A's then B's members either way; and where S has no
 *     object there, A's object is stored whole, then merged with B's);
 *   - top level: nulls dropped from both (absent), user_id equal bytes
 *     (equal hashes are not enough: a collision must never merge two
 *     users), other fields newer non-null wins, metadata and campaign as
 *     objects above.
 * Kept apart (the caller sends B as its own object after A, as before):
 *   - SINK_APART_SHAPE: an object in B over a non-object of A (null,
 *     string, array...) at any depth below the top: in order, A's value
 *     resets the member and B's object is then stored whole; merged, B's
 *     object would be merged into whatever S held.  No one object says
 *     "replace with this object", so the two cannot be one;
 *   - SINK_APART_TOKEN: both carry a session_token and they differ.  A
 *     merged object carries one token, and two objects of one user in
 *     one batch are something Moesif's documentation does not promise to
 *     apply (README "Merging a user's updates" argues the choice); equal
 *     tokens, or a token on one side only, merge: the alias table gets the
 *     same tokens in the same order;
 *   - SINK_APART_OTHER: anything this file does not prove: a key written
 *     with a backslash escape at a level that is merged ("a" and "\u0061"
 *     are one key to Moesif, two byte strings here; the transform copies
 *     keys as written), user_ids that differ, bytes that are not the
 *     transform's JSON objects, nesting beyond MERGE_DEPTH_MAX.
 * The batcher adds SINK_APART_SIZE: the merged object would not fit its
 * batch (batch.max_bytes).
 *
 * Assumptions, each guaranteed upstream and written down in README:
 * the transform rejects duplicate keys (duplicate_key), rewrites dotted
 * metadata keys, and keeps one type per metadata key name, as Moesif's
 * type lock does (DESIGN.md section 2, the default name scope): so the lock
 * never drops a value of an accepted event, and merging moves no value
 * across it.  With transform.schema_scope=path two paths may give one
 * name two types, which Moesif's lock (by name) then drops in either
 * order of arrival across users; the merge does not change which.
 *
 * Cost: the merge scans A and B once each, matches members of each merged
 * level pairwise (user objects hold tens of keys; NEEDSWORK: quadratic for
 * thousands), and writes M, at most |A| + |B| bytes, into one buffer that
 * is reused.  It runs only when a user's update already waits: the common
 * case never reaches this file.
 */
#include "sink_int.h"

#include <stdlib.h>
#include <string.h>

/* Deeper than the transform lets an event nest (transform.max_depth,
 * default 64, at most 128 in moesif-dev); past it, kept apart. */
#define MERGE_DEPTH_MAX 256

/* One member of an object of A or B: its quoted key and its value. */
struct sink_merge_member {
    const char *k; /* at the opening quote */
    size_t k_len;  /* quotes included */
    const char *v;
    size_t v_len;
    int used; /* B's member was matched by one of A's */
};

void sink_merger_release(struct sink_merger *mg)
{
    free(mg->out);
    free(mg->mem);
    memset(mg, 0, sizeof(*mg));
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    return p;
}

/* p at a '"': the byte after the closing quote, or NULL.  *escaped is set
 * when the string holds a backslash.  memchr finds the quote: values hold
 * long strings (make bench's events, 470 bytes, spend most of their bytes
 * in them), and a byte loop made a merge cost twice as much. */
static const char *skip_string(const char *p, const char *end, int *escaped)
{
    const char *s = p + 1;

    for (;;) {
        const char *q = memchr(s, '"', (size_t)(end - s));
        const char *b;
        size_t n = 0;

        if (q == NULL) {
            return NULL;
        }
        /* escaped when an odd run of backslashes stands before it */
        for (b = q; b > s && b[-1] == '\\'; b--) {
            n++;
        }
        if (n > 0 || memchr(s, '\\', (size_t)(q - s)) != NULL) {
            *escaped = 1;
        }
        if (n % 2 == 0) {
            return q + 1;
        }
        s = q + 1;
    }
}

/* The end of the JSON value at p, or NULL when it is cut. */
static const char *skip_value(const char *p, const char *end)
{
    int escaped = 0;
    size_t depth = 0;

    if (p >= end) {
        return NULL;
    }
    if (*p == '"') {
        return skip_string(p, end, &escaped);
    }
    if (*p != '{' && *p != '[') {
        const char *s = p;
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' &&
               *p != '\n' && *p != '\r' && *p != '\t') {
            p++;
        }
        return p > s ? p : NULL;
    }
    while (p < end) {
        switch (*p) {
        case '"':
            p = skip_string(p, end, &escaped);
            if (p == NULL) {
                return NULL;
            }
            continue;
        case '{':
        case '[':
            depth++;
            break;
        case '}':
        case ']':
            if (--depth == 0) {
                return p + 1;
            }
            break;
        default:
            break;
        }
        p++;
    }
    return NULL;
}

static int is_null(const struct sink_merge_member *m)
{
    return m->v_len == 4 && memcmp(m->v, "null", 4) == 0;
}

/* Pushes the members of the object at p (its '{') onto mg->mem: all of
 * them, or at the top level those that are not null.  Returns the end of
 * the object, or NULL when it is not one or a key has an escape. */
static const char *members(struct sink_merger *mg, const char *p,
                           const char *end, int top, size_t *n)
{
    *n = 0;
    p = skip_ws(p, end);
    if (p >= end || *p != '{') {
        return NULL;
    }
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        return p + 1;
    }
    while (p < end) {
        struct sink_merge_member m;
        int escaped = 0;

        if (*p != '"') {
            return NULL;
        }
        m.k = p;
        p = skip_string(p, end, &escaped);
        if (p == NULL || escaped) {
            return NULL;
        }
        m.k_len = (size_t)(p - m.k);
        p = skip_ws(p, end);
        if (p >= end || *p != ':') {
            return NULL;
        }
        m.v = skip_ws(p + 1, end);
        p = skip_value(m.v, end);
        if (p == NULL) {
            return NULL;
        }
        m.v_len = (size_t)(p - m.v);
        m.used = 0;
        if (!top || !is_null(&m)) {
            if (mg->mem_n == mg->mem_cap) {
                mg->mem_cap = mg->mem_cap ? 2 * mg->mem_cap : 64;
                mg->mem = core_realloc(mg->mem, mg->mem_cap * sizeof(*mg->mem));
            }
            mg->mem[mg->mem_n++] = m;
            (*n)++;
        }
        p = skip_ws(p, end);
        if (p < end && *p == '}') {
            return p + 1;
        }
        if (p >= end || *p != ',') {
            return NULL;
        }
        p = skip_ws(p + 1, end);
    }
    return NULL;
}

static int same_key(const struct sink_merge_member *a,
                    const struct sink_merge_member *b)
{
    return a->k_len == b->k_len && a->k[1] == b->k[1] &&
           memcmp(a->k, b->k, a->k_len) == 0;
}

static int key_is(const struct sink_merge_member *m, const char *quoted,
                  size_t len)
{
    return m->k_len == len && memcmp(m->k, quoted, len) == 0;
}

#define KEY_IS(m, lit) key_is((m), "\"" lit "\"", sizeof(lit) + 1)

/* Appends bytes; mg->out has room for all of M (reserved up front). */
static void put(struct sink_merger *mg, const char *s, size_t len)
{
    memcpy(mg->out + mg->out_len, s, len);
    mg->out_len += len;
}

static void put_key(struct sink_merger *mg, int *first,
                    const struct sink_merge_member *m)
{
    if (!*first) {
        mg->out[mg->out_len++] = ',';
    }
    *first = 0;
    put(mg, m->k, m->k_len);
    mg->out[mg->out_len++] = ':';
}

static void put_member(struct sink_merger *mg, int *first,
                       const struct sink_merge_member *key,
                       const struct sink_merge_member *val)
{
    put_key(mg, first, key);
    put(mg, val->v, val->v_len);
}

static enum sink_merge_result merge_object(struct sink_merger *mg,
                                           const char *a, size_t a_len,
                                           const char *b, size_t b_len,
                                           unsigned depth);

/* The session_token of the update at p (its first non-null one), by a scan
 * of its top level that stops there: *v is NULL when it has none, and the
 * scan returns -1 when p is no object.  Most updates name it among their
 * first fields, so two tokens that differ cost a few dozen bytes, not a
 * merge. */
static int top_token(const char *p, const char *end, const char **v,
                     size_t *v_len)
{
    static const char key[] = "\"session_token\"";

    *v = NULL;
    p = skip_ws(p, end);
    if (p >= end || *p != '{') {
        return -1;
    }
    p = skip_ws(p + 1, end);
    while (p < end && *p == '"') {
        const char *k = p, *val;
        size_t k_len;
        int escaped = 0;

        p = skip_string(p, end, &escaped);
        if (p == NULL) {
            return -1;
        }
        k_len = (size_t)(p - k);
        p = skip_ws(p, end);
        if (p >= end || *p != ':') {
            return -1;
        }
        val = skip_ws(p + 1, end);
        p = skip_value(val, end);
        if (p == NULL) {
            return -1;
        }
        if ((size_t)(p - val) != 4 || memcmp(val, "null", 4) != 0) {
            if (k_len == sizeof(key) - 1 && memcmp(k, key, k_len) == 0) {
                *v = val;
                *v_len = (size_t)(p - val);
                return 0;
            }
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
        }
    }
    return 0;
}

/* The user_id of a top-level member list, NULL when it has none. */
static const struct sink_merge_member *
user_id(const struct sink_merge_member *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (KEY_IS(&m[i], "user_id")) {
            return &m[i];
        }
    }
    return NULL;
}

/* Whether A and B both name a user_id, the same bytes: equal hashes are
 * not enough, a collision must never merge two users. */
static int same_user(const struct sink_merge_member *a, size_t na,
                     const struct sink_merge_member *b, size_t nb)
{
    const struct sink_merge_member *ua = user_id(a, na), *ub = user_id(b, nb);

    return ua != NULL && ub != NULL && ua->v_len == ub->v_len &&
           memcmp(ua->v, ub->v, ua->v_len) == 0;
}

/* The member both A and B have, a (index ia) and b (index ib) of
 * mg->mem (indices: a recursion may move the array). */
static enum sink_merge_result merge_pair(struct sink_merger *mg, size_t ia,
                                         size_t ib, int *first, unsigned depth)
{
    struct sink_merge_member a = mg->mem[ia], b = mg->mem[ib];

    if (depth == 0) {
        if (KEY_IS(&a, "session_token")) {
            if (a.v_len != b.v_len || memcmp(a.v, b.v, a.v_len) != 0) {
                return SINK_APART_TOKEN;
            }
            put_member(mg, first, &a, &a);
            return SINK_MERGED;
        }
        if (!KEY_IS(&a, "metadata") && !KEY_IS(&a, "campaign")) {
            /* any other top-level field: the newer non-null value (the
             * user_id is the same, checked by merge_object) */
            put_member(mg, first, &a, &b);
            return SINK_MERGED;
        }
        if (a.v[0] != '{' || b.v[0] != '{') {
            return SINK_APART_OTHER; /* the transform lets only objects */
        }
    } else if (b.v[0] != '{') {
        put_member(mg, first, &a, &b); /* replaces, objects too */
        return SINK_MERGED;
    } else if (a.v[0] != '{') {
        return SINK_APART_SHAPE;
    }
    put_key(mg, first, &a);
    return merge_object(mg, a.v, a.v_len, b.v, b.v_len, depth + 1);
}

static enum sink_merge_result merge_object(struct sink_merger *mg,
                                           const char *a, size_t a_len,
                                           const char *b, size_t b_len,
                                           unsigned depth)
{
    size_t base = mg->mem_n, na, nb;
    enum sink_merge_result rc = SINK_MERGED;
    int first = 1, top = depth == 0;

    if (depth > MERGE_DEPTH_MAX ||
        members(mg, a, a + a_len, top, &na) == NULL ||
        members(mg, b, b + b_len, top, &nb) == NULL ||
        (top && !same_user(mg->mem + base, na, mg->mem + base + na, nb))) {
        rc = SINK_APART_OTHER;
        goto out;
    }
    mg->out[mg->out_len++] = '{';
    for (size_t i = base; i < base + na && rc == SINK_MERGED; i++) {
        size_t j = base + na;

        while (j < base + na + nb && !same_key(&mg->mem[i], &mg->mem[j])) {
            j++;
        }
        if (j == base + na + nb) {
            put_member(mg, &first, &mg->mem[i], &mg->mem[i]);
            continue;
        }
        mg->mem[j].used = 1;
        rc = merge_pair(mg, i, j, &first, depth);
    }
    for (size_t j = base + na; j < base + na + nb && rc == SINK_MERGED; j++) {
        if (!mg->mem[j].used) {
            put_member(mg, &first, &mg->mem[j], &mg->mem[j]);
        }
    }
    mg->out[mg->out_len++] = '}';
out:
    mg->mem_n = base;
    return rc;
}

enum sink_merge_result sink_merge(struct sink_merger *mg, const char *older,
                                  size_t older_len, const char *newer,
                                  size_t newer_len)
{
    /* M holds a subset of the members of A and B, with at most their
     * braces and commas: it never exceeds |A| + |B| */
    size_t need = older_len + newer_len + 2;
    enum sink_merge_result rc;
    const char *ta, *tb;
    size_t ta_len = 0, tb_len = 0;

    /* the common reason to keep two apart, found before any merging */
    if (top_token(newer, newer + newer_len, &tb, &tb_len) == 0 && tb != NULL &&
        top_token(older, older + older_len, &ta, &ta_len) == 0 && ta != NULL &&
        (ta_len != tb_len || memcmp(ta, tb, ta_len) != 0)) {
        return SINK_APART_TOKEN;
    }
    if (mg->out_cap < need) {
        free(mg->out);
        mg->out_cap = need < 4096 ? 4096 : need;
        mg->out = core_malloc(mg->out_cap);
    }
    mg->out_len = 0;
    mg->mem_n = 0;
    rc = merge_object(mg, older, older_len, newer, newer_len, 0);
    if (rc != SINK_MERGED) {
        mg->out_len = 0;
    }
    return rc;
}
