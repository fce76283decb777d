/*
 * moesif_store.c: moesif-dev's in-memory copy of what Moesif would hold,
 * with Moesif's semantics for user updates:
 *
 *  - upsert by user_id;
 *  - top-level fields (company_id, modified_time, ip_address,
 *    user_agent_string, and any other) are replaced whole by a newer
 *    non-null value;
 *  - metadata and campaign are merged recursively: objects merge key by
 *    key, any other value (arrays, scalars, null) replaces, newer wins
 *    (campaign without metadata's type lock; "campaign":{} changes
 *    nothing);
 *  - session_token is appended to the user's aliases, without duplicates;
 *  - the metadata type lock: one JSON type per key name, at any depth
 *    (objects inside arrays included), for the whole store; the first
 *    type seen wins, null claims nothing, and a later value of another
 *    type is dropped (with its subtree) and counted as a conflict.
 *
 * The timeline counts accepted user objects in 10 ms steps since the
 * store was made or last reset, for ten minutes (240 KB): make bench
 * reads the rate at which a run delivered from it, without polling
 * /_dev/stats during the run it measures.
 *
 * One mutex guards everything but the request counters, which are
 * atomics so a faulted request never takes it.  Invariant that keeps the
 * merge cheap: a stored metadata value that is not null always has its
 * key's locked type, so a newer value of the same type as the stored one
 * needs no look-up in the type table.
 */
#include "moesif_dev.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

/* a JSON value of a stored profile */
struct mval {
    struct mval *next;  /* next member or element of the parent */
    struct mval *child; /* first member or element */
    char *text;         /* string contents or number text */
    uint32_t text_len;
    uint32_t text_cap;
    uint32_t key_len;
    uint8_t type;        /* enum mjson_type */
    uint8_t text_inline; /* text lives in this allocation, after key */
    char key[]; /* member name, NUL-terminated ("" in arrays), then room
                 * for the first text so most leaves are one allocation */
};

struct malias {
    char *s;
    uint32_t len;
};

struct muser {
    struct mval *fields;   /* object: the other top-level fields, replaced */
    struct mval *metadata; /* an object, or NULL */
    struct malias *aliases;
    uint32_t n_aliases;
    uint32_t cap_aliases;
    uint32_t id_len;
    char id[];
};

/* An open-addressing table keyed by string; the key memory belongs to
 * whoever fills the entry. */
struct mtab_entry {
    uint64_t hash; /* 0: free */
    const char *key;
    uint32_t key_len;
    union {
        void *ptr;
        uint64_t n;
    } v;
};

struct mtab {
    struct mtab_entry *slots;
    size_t cap; /* a power of two */
    size_t count;
};

/* lock classes: JSON types as Moesif locks them (true and false alike) */
enum mlock {
    MLOCK_NONE = 0,
    MLOCK_STRING,
    MLOCK_NUMBER,
    MLOCK_BOOLEAN,
    MLOCK_OBJECT,
    MLOCK_ARRAY
};

/* conflict_keys keeps at most this many names; the rest are counted */
#define MSTORE_MAX_CONFLICT_KEYS 1000

#define MSTORE_STATUS_MAX 600

/* the timeline: 10 ms steps for 10 minutes */
#define MSTORE_STEP_MS 10
#define MSTORE_STEPS 60000

struct mstore {
    pthread_mutex_t mu;
    FILE *record;
    struct mtab users;         /* v.ptr: struct muser, key: its id */
    struct mtab types;         /* v.n: enum mlock, key owned */
    struct mtab conflict_keys; /* v.n: count, key owned */
    uint64_t batches;
    uint64_t singles;
    uint64_t upserts;
    uint64_t conflicts;
    uint64_t conflict_keys_over;
    uint64_t dup_in_batch;
    uint64_t aliases;
    _Atomic uint64_t refused_user;
    _Atomic uint64_t requests;
    _Atomic uint64_t bytes_in;
    _Atomic uint64_t bytes_plain;
    _Atomic uint64_t responses[MSTORE_STATUS_MAX];
    int64_t t0_ms;       /* the timeline's origin: made or last reset */
    uint32_t *steps;     /* MSTORE_STEPS counts of upserts */
    size_t steps_used;   /* steps up to the last non-empty one */
    uint64_t steps_late; /* upserts after the timeline's ten minutes */
    char user_agent[MSTORE_USER_AGENT_MAX]; /* of the last /v1 request */
};

/* ------------------------------------------------------------------ */
/* the table                                                          */

static struct mtab_entry *mtab_find(const struct mtab *t, const char *key,
                                    size_t len, uint64_t hash)
{
    size_t mask;
    size_t i;

    if (t->cap == 0) {
        return NULL;
    }
    hash |= 1;
    mask = t->cap - 1;
    for (i = (size_t)hash & mask; t->slots[i].hash != 0; i = (i + 1) & mask) {
        struct mtab_entry *e = &t->slots[i];
        if (e->hash == hash && e->key_len == len &&
            memcmp(e->key, key, len) == 0) {
            return e;
        }
    }
    return NULL;
}

static void mtab_grow(struct mtab *t)
{
    struct mtab_entry *old = t->slots;
    size_t old_cap = t->cap;
    size_t mask;

    t->cap = old_cap ? old_cap * 2 : 64;
    t->slots = core_calloc(t->cap, sizeof(*t->slots));
    mask = t->cap - 1;
    for (size_t j = 0; j < old_cap; j++) {
        size_t i;
        if (old[j].hash == 0) {
            continue;
        }
        for (i = (size_t)old[j].hash & mask; t->slots[i].hash != 0;
             i = (i + 1) & mask) {
        }
        t->slots[i] = old[j];
    }
    free(old);
}

/* A new entry for a key that is not in the table; the caller sets key
 * (stable memory) and value. */
static struct mtab_entry *mtab_add(struct mtab *t, uint64_t hash)
{
    size_t mask;
    size_t i;

    if ((t->count + 1) * 10 > t->cap * 7) { /* load factor 0.7 */
        mtab_grow(t);
    }
    hash |= 1;
    mask = t->cap - 1;
    for (i = (size_t)hash & mask; t->slots[i].hash != 0; i = (i + 1) & mask) {
    }
    t->slots[i].hash = hash;
    t->count++;
    return &t->slots[i];
}

static void mtab_release(struct mtab *t, bool free_keys)
{
    if (free_keys) {
        for (size_t i = 0; i < t->cap; i++) {
            if (t->slots[i].hash != 0) {
                free((char *)t->slots[i].key);
            }
        }
    }
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------------ */
/* values                                                             */

static enum mlock lock_class(uint8_t type)
{
    switch (type) {
    case MJSON_FALSE:
    case MJSON_TRUE:
        return MLOCK_BOOLEAN;
    case MJSON_NUMBER:
        return MLOCK_NUMBER;
    case MJSON_STRING:
        return MLOCK_STRING;
    case MJSON_OBJECT:
        return MLOCK_OBJECT;
    case MJSON_ARRAY:
        return MLOCK_ARRAY;
    default:
        return MLOCK_NONE;
    }
}

static const char *lock_name(uint64_t lk)
{
    static const char *const names[] = {"null",    "string", "number",
                                        "boolean", "object", "array"};
    return lk < 6 ? names[lk] : "?";
}

static void free_list(struct mval *v)
{
    while (v != NULL) {
        struct mval *next = v->next;
        free_list(v->child);
        if (!v->text_inline) {
            free(v->text);
        }
        free(v);
        v = next;
    }
}

/* A node for member key (NULL in arrays) that will hold the value of
 * token m: a string or number gets room for its text in the same
 * allocation, which halves the allocations of a profile (measured with
 * moesif-load's 500,000 users: RSS 989 -> 835 MB, 1.7 KB a user). */
static struct mval *new_val(const char *key, size_t key_len,
                            const struct mtok *m)
{
    size_t room = 0;
    struct mval *v;

    if (m != NULL && (m->type == MJSON_STRING || m->type == MJSON_NUMBER)) {
        room = ((size_t)m->val_len + 1 + 7) & ~(size_t)7;
    }
    v = core_calloc(1, sizeof(*v) + key_len + 1 + room);
    if (key_len != 0) {
        memcpy(v->key, key, key_len);
    }
    v->key_len = (uint32_t)key_len;
    if (room != 0) {
        v->text = v->key + key_len + 1;
        v->text_cap = (uint32_t)room;
        v->text_inline = 1;
    }
    return v;
}

static void set_text(struct mval *v, const char *s, uint32_t len)
{
    if (v->text == NULL || v->text_cap < len + 1) {
        if (!v->text_inline) {
            free(v->text);
        }
        v->text_cap = len + 1 < 16 ? 16 : len + 1;
        v->text = core_malloc(v->text_cap);
        v->text_inline = 0;
    }
    memcpy(v->text, s, len);
    v->text[len] = '\0';
    v->text_len = len;
}

/* Whether a metadata value of key may be stored: claims the key's type
 * when it has none, counts a conflict when it has another. */
static bool lock_admits(struct mstore *st, const char *key, uint32_t key_len,
                        enum mlock lk)
{
    uint64_t h;
    struct mtab_entry *e;

    if (lk == MLOCK_NONE) {
        return true; /* null claims nothing and matches every type */
    }
    h = mhash(key, key_len);
    e = mtab_find(&st->types, key, key_len, h);
    if (e == NULL) {
        e = mtab_add(&st->types, h);
        e->key = core_strndup(key, key_len);
        e->key_len = key_len;
        e->v.n = lk;
        return true;
    }
    if (e->v.n == lk) {
        return true;
    }
    st->conflicts++;
    e = mtab_find(&st->conflict_keys, key, key_len, h);
    if (e != NULL) {
        e->v.n++;
    } else if (st->conflict_keys.count < MSTORE_MAX_CONFLICT_KEYS) {
        e = mtab_add(&st->conflict_keys, h);
        e->key = core_strndup(key, key_len);
        e->key_len = key_len;
        e->v.n = 1;
    } else {
        st->conflict_keys_over++;
    }
    return false;
}

static bool same_key(const struct mval *v, const struct mtok *m)
{
    uint32_t len = m->key != NULL ? m->key_len : 0;
    /* the first byte settles most mismatches without a call */
    return v->key_len == len &&
           (len == 0 ||
            (v->key[0] == m->key[0] && memcmp(v->key, m->key, len) == 0));
}

/* Whether the metadata member m may be stored where old (may be NULL)
 * holds the same key: the invariant spares the look-up when the types
 * agree. */
static bool admits(struct mstore *st, const struct mval *old,
                   const struct mtok *m)
{
    enum mlock lk = lock_class(m->type);

    if (lk == MLOCK_NONE || (old != NULL && lock_class(old->type) == lk)) {
        return true;
    }
    return lock_admits(st, m->key, m->key_len, lk);
}

static void fill(struct mstore *st, struct mval *v, const struct mtape *tp,
                 uint32_t ti, bool meta);

/*
 * Makes the children of v those of container token ti, checking member
 * types against the lock when meta.  Nodes already there are reused in
 * place while their keys line up (array elements always do), so a value
 * replaced by one of the same shape, the usual update, allocates nothing.
 */
static void fill_children(struct mstore *st, struct mval *v,
                          const struct mtape *tp, uint32_t ti, bool meta)
{
    const struct mtok *tok = &tp->toks[ti];
    struct mval **pp = &v->child;

    for (uint32_t j = ti + 1; j < tok->end; j = tp->toks[j].end) {
        const struct mtok *m = &tp->toks[j];
        struct mval *c = *pp;
        bool reuse = c != NULL && same_key(c, m);

        if (m->key != NULL && meta && !admits(st, reuse ? c : NULL, m)) {
            continue;
        }
        if (!reuse) {
            c = new_val(m->key, m->key != NULL ? m->key_len : 0, m);
            c->next = *pp;
            *pp = c;
        }
        fill(st, c, tp, j, meta);
        pp = &c->next;
    }
    free_list(*pp);
    *pp = NULL;
}

/* Makes v's value the value of token ti (its key stays). */
static void fill(struct mstore *st, struct mval *v, const struct mtape *tp,
                 uint32_t ti, bool meta)
{
    const struct mtok *tok = &tp->toks[ti];
    bool container = tok->type == MJSON_OBJECT || tok->type == MJSON_ARRAY;

    if (!container || v->type != tok->type) {
        free_list(v->child);
        v->child = NULL;
    }
    v->type = tok->type;
    if (tok->type == MJSON_STRING || tok->type == MJSON_NUMBER) {
        set_text(v, tok->val, tok->val_len);
    } else if (container) {
        fill_children(st, v, tp, ti, meta);
    }
}

/* The member of obj named like m, trying hint first: updates usually
 * name keys in the stored order.  *tail is set to the list's end when
 * there is none. */
static struct mval *find_member(struct mval *obj, const struct mtok *m,
                                struct mval *hint, struct mval ***tail)
{
    struct mval **pp = &obj->child;

    if (hint != NULL && same_key(hint, m)) {
        return hint;
    }
    for (; *pp != NULL; pp = &(*pp)->next) {
        if (same_key(*pp, m)) {
            return *pp;
        }
    }
    *tail = pp;
    return NULL;
}

/* Merges object token ti into the stored object obj: metadata (meta,
 * under the type lock) or campaign (no lock). */
static void merge_object(struct mstore *st, struct mval *obj,
                         const struct mtape *tp, uint32_t ti, bool meta)
{
    const struct mtok *tok = &tp->toks[ti];
    struct mval *hint = obj->child;

    /* NEEDSWORK: a key out of the stored order is found by a linear scan,
     * quadratic for objects of thousands of keys; user metadata holds
     * tens. */
    for (uint32_t j = ti + 1; j < tok->end; j = tp->toks[j].end) {
        const struct mtok *m = &tp->toks[j];
        struct mval **tail = NULL;
        struct mval *c = find_member(obj, m, hint, &tail);

        if (meta && !admits(st, c, m)) {
            continue;
        }
        if (c == NULL) {
            c = new_val(m->key, m->key_len, m);
            *tail = c;
            fill(st, c, tp, j, meta);
        } else if (m->type == MJSON_OBJECT && c->type == MJSON_OBJECT) {
            merge_object(st, c, tp, j, meta);
        } else {
            fill(st, c, tp, j, meta);
        }
        hint = c->next;
    }
}

#define KEY_IS(m, lit)                                                         \
    ((m)->key_len == sizeof(lit) - 1 &&                                        \
     memcmp((m)->key, (lit), sizeof(lit) - 1) == 0)

static void add_alias(struct mstore *st, struct muser *u, const char *s,
                      uint32_t len)
{
    for (uint32_t i = 0; i < u->n_aliases; i++) {
        if (u->aliases[i].len == len && memcmp(u->aliases[i].s, s, len) == 0) {
            return;
        }
    }
    if (u->n_aliases == u->cap_aliases) {
        u->cap_aliases = u->cap_aliases ? u->cap_aliases * 2 : 2;
        u->aliases =
            core_realloc(u->aliases, u->cap_aliases * sizeof(*u->aliases));
    }
    u->aliases[u->n_aliases].s = core_strndup(s, len);
    u->aliases[u->n_aliases].len = len;
    u->n_aliases++;
    st->aliases++;
}

static void apply_user(struct mstore *st, struct muser *u,
                       const struct mtape *tp, uint32_t ti)
{
    const struct mtok *tok = &tp->toks[ti];

    for (uint32_t j = ti + 1; j < tok->end; j = tp->toks[j].end) {
        const struct mtok *m = &tp->toks[j];

        if (m->type == MJSON_NULL || KEY_IS(m, "user_id")) {
            continue; /* a top-level null counts as absent */
        }
        if (KEY_IS(m, "session_token")) {
            add_alias(st, u, m->val, m->val_len);
        } else if (KEY_IS(m, "metadata")) {
            if (u->metadata == NULL) {
                u->metadata = new_val(NULL, 0, NULL);
                u->metadata->type = MJSON_OBJECT;
            }
            merge_object(st, u->metadata, tp, j, true);
        } else {
            struct mval **tail = NULL;
            struct mval *c;

            if (u->fields == NULL) {
                u->fields = new_val(NULL, 0, NULL);
                u->fields->type = MJSON_OBJECT;
            }
            c = find_member(u->fields, m, NULL, &tail);
            if (c == NULL) {
                c = new_val(m->key, m->key_len, m);
                *tail = c;
                fill(st, c, tp, j, false);
            } else if (KEY_IS(m, "campaign") && m->type == MJSON_OBJECT &&
                       c->type == MJSON_OBJECT) {
                /* merged like Moesif (issue 11): the official Node library
                 * sends "campaign":{} with every update that has none */
                merge_object(st, c, tp, j, false);
            } else {
                fill(st, c, tp, j, false);
            }
        }
    }
}

static struct muser *get_user(struct mstore *st, const struct muser_ref *r)
{
    struct mtab_entry *e = mtab_find(&st->users, r->id, r->id_len, r->id_hash);
    struct muser *u;

    if (e != NULL) {
        return e->v.ptr;
    }
    u = core_calloc(1, sizeof(*u) + r->id_len + 1);
    memcpy(u->id, r->id, r->id_len);
    u->id_len = r->id_len;
    e = mtab_add(&st->users, r->id_hash);
    e->key = u->id;
    e->key_len = u->id_len;
    e->v.ptr = u;
    return u;
}

static void free_user(struct muser *u)
{
    free_list(u->fields);
    free_list(u->metadata);
    for (uint32_t i = 0; i < u->n_aliases; i++) {
        free(u->aliases[i].s);
    }
    free(u->aliases);
    free(u);
}

/* ------------------------------------------------------------------ */
/* the store                                                          */

struct mstore *mstore_new(FILE *record)
{
    struct mstore *st = core_calloc(1, sizeof(*st));

    pthread_mutex_init(&st->mu, NULL);
    st->record = record;
    st->steps = core_calloc(MSTORE_STEPS, sizeof(*st->steps));
    st->t0_ms = mnow_ms();
    return st;
}

static void clear(struct mstore *st)
{
    for (size_t i = 0; i < st->users.cap; i++) {
        if (st->users.slots[i].hash != 0) {
            free_user(st->users.slots[i].v.ptr);
        }
    }
    mtab_release(&st->users, false);
    mtab_release(&st->types, true);
    mtab_release(&st->conflict_keys, true);
}

void mstore_destroy(struct mstore *st)
{
    if (st == NULL) {
        return;
    }
    clear(st);
    pthread_mutex_destroy(&st->mu);
    free(st->steps);
    free(st);
}

/* Counts n upserts at this moment; under the lock. */
static void timeline_add(struct mstore *st, size_t n)
{
    int64_t at = mnow_ms() - st->t0_ms;
    size_t i = at > 0 ? (size_t)(at / MSTORE_STEP_MS) : 0;

    if (i >= MSTORE_STEPS) {
        st->steps_late += n;
        return;
    }
    st->steps[i] += (uint32_t)n;
    if (i + 1 > st->steps_used) {
        st->steps_used = i + 1;
    }
}

void mstore_apply(struct mstore *st, const struct mtape *tp)
{
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < tp->n_users; i++) {
        const struct muser_ref *r = &tp->users[i];
        apply_user(st, get_user(st, r), tp, r->tok);
    }
    st->upserts += tp->n_users;
    timeline_add(st, tp->n_users);
    if (tp->kind == MPARSE_BATCH) {
        st->batches++;
        st->dup_in_batch += tp->dup_ids ? 1 : 0;
    } else {
        st->singles++;
    }
    if (st->record != NULL) {
        mrecord_write(st->record, tp->kind, tp->body, tp->body_len);
        fflush(st->record);
    }
    pthread_mutex_unlock(&st->mu);
}

void mstore_count_request(struct mstore *st, size_t bytes_in,
                          size_t bytes_plain)
{
    atomic_fetch_add_explicit(&st->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->bytes_in, bytes_in, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->bytes_plain, bytes_plain,
                              memory_order_relaxed);
}

void mstore_note_user_agent(struct mstore *st, const char *ua)
{
    pthread_mutex_lock(&st->mu);
    snprintf(st->user_agent, sizeof(st->user_agent), "%s",
             ua != NULL ? ua : "");
    pthread_mutex_unlock(&st->mu);
}

void mstore_count_refused_user(struct mstore *st)
{
    atomic_fetch_add_explicit(&st->refused_user, 1, memory_order_relaxed);
}

void mstore_count_response(struct mstore *st, unsigned status)
{
    if (status < MSTORE_STATUS_MAX) {
        atomic_fetch_add_explicit(&st->responses[status], 1,
                                  memory_order_relaxed);
    }
}

void mstore_reset(struct mstore *st)
{
    pthread_mutex_lock(&st->mu);
    clear(st);
    st->batches = 0;
    st->singles = 0;
    st->upserts = 0;
    st->conflicts = 0;
    st->conflict_keys_over = 0;
    st->dup_in_batch = 0;
    st->aliases = 0;
    atomic_store(&st->refused_user, 0);
    atomic_store(&st->requests, 0);
    atomic_store(&st->bytes_in, 0);
    atomic_store(&st->bytes_plain, 0);
    for (size_t i = 0; i < MSTORE_STATUS_MAX; i++) {
        atomic_store(&st->responses[i], 0);
    }
    memset(st->steps, 0, MSTORE_STEPS * sizeof(*st->steps));
    st->steps_used = 0;
    st->steps_late = 0;
    st->user_agent[0] = '\0';
    st->t0_ms = mnow_ms();
    pthread_mutex_unlock(&st->mu);
}

/* ------------------------------------------------------------------ */
/* JSON out                                                           */

static void gen_str(yajl_gen g, const char *s, size_t len)
{
    yajl_gen_string(g, (const unsigned char *)s, len);
}

static void gen_cstr(yajl_gen g, const char *s)
{
    gen_str(g, s, strlen(s));
}

static void gen_u64(yajl_gen g, const char *key, uint64_t n)
{
    char num[24];
    int len = snprintf(num, sizeof(num), "%llu", (unsigned long long)n);

    gen_cstr(g, key);
    yajl_gen_number(g, num, (size_t)len);
}

static void gen_value(yajl_gen g, const struct mval *v)
{
    switch (v->type) {
    case MJSON_NULL:
        yajl_gen_null(g);
        break;
    case MJSON_FALSE:
    case MJSON_TRUE:
        yajl_gen_bool(g, v->type == MJSON_TRUE);
        break;
    case MJSON_NUMBER:
        yajl_gen_number(g, v->text, v->text_len);
        break;
    case MJSON_STRING:
        gen_str(g, v->text, v->text_len);
        break;
    case MJSON_OBJECT:
        yajl_gen_map_open(g);
        for (const struct mval *c = v->child; c != NULL; c = c->next) {
            gen_str(g, c->key, c->key_len);
            gen_value(g, c);
        }
        yajl_gen_map_close(g);
        break;
    case MJSON_ARRAY:
        yajl_gen_array_open(g);
        for (const struct mval *c = v->child; c != NULL; c = c->next) {
            gen_value(g, c);
        }
        yajl_gen_array_close(g);
        break;
    default:
        break;
    }
}

static char *gen_take(yajl_gen g, size_t *out_len)
{
    const unsigned char *buf;
    size_t len;
    char *out;

    yajl_gen_get_buf(g, &buf, &len);
    out = core_strndup((const char *)buf, len);
    *out_len = len;
    yajl_gen_free(g);
    return out;
}

static yajl_gen gen_new(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        fprintf(stderr, "moesif-dev: out of memory in yajl_gen_alloc\n");
        abort();
    }
    return g;
}

char *mstore_user_json(struct mstore *st, const char *id, size_t id_len,
                       size_t *out_len)
{
    struct mtab_entry *e;
    const struct muser *u;
    yajl_gen g;

    pthread_mutex_lock(&st->mu);
    e = mtab_find(&st->users, id, id_len, mhash(id, id_len));
    if (e == NULL) {
        pthread_mutex_unlock(&st->mu);
        return NULL;
    }
    u = e->v.ptr;
    g = gen_new();
    yajl_gen_map_open(g);
    gen_cstr(g, "user_id");
    gen_str(g, u->id, u->id_len);
    gen_cstr(g, "aliases");
    yajl_gen_array_open(g);
    for (uint32_t i = 0; i < u->n_aliases; i++) {
        gen_str(g, u->aliases[i].s, u->aliases[i].len);
    }
    yajl_gen_array_close(g);
    for (const struct mval *c = u->fields != NULL ? u->fields->child : NULL;
         c != NULL; c = c->next) {
        gen_str(g, c->key, c->key_len);
        gen_value(g, c);
    }
    gen_cstr(g, "metadata");
    if (u->metadata != NULL) {
        gen_value(g, u->metadata);
    } else {
        yajl_gen_map_open(g);
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
    pthread_mutex_unlock(&st->mu);
    return gen_take(g, out_len);
}

char *mstore_timeline_json(struct mstore *st, size_t *out_len)
{
    yajl_gen g = gen_new();

    pthread_mutex_lock(&st->mu);
    yajl_gen_map_open(g);
    gen_u64(g, "step_ms", MSTORE_STEP_MS);
    gen_u64(g, "late", st->steps_late);
    gen_cstr(g, "upserts");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < st->steps_used; i++) {
        yajl_gen_integer(g, (long long)st->steps[i]);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    pthread_mutex_unlock(&st->mu);
    return gen_take(g, out_len);
}

char *mstore_stats_json(struct mstore *st,
                        void (*extra)(struct yajl_gen_t *g, void *arg),
                        void *arg, size_t *out_len)
{
    yajl_gen g = gen_new();

    pthread_mutex_lock(&st->mu);
    yajl_gen_map_open(g);
    gen_u64(g, "requests", atomic_load(&st->requests));
    gen_u64(g, "batches", st->batches);
    gen_u64(g, "singles", st->singles);
    gen_u64(g, "users", st->users.count);
    gen_u64(g, "upserts", st->upserts);
    gen_u64(g, "aliases", st->aliases);
    gen_u64(g, "types", st->types.count);
    gen_u64(g, "conflicts", st->conflicts);
    gen_cstr(g, "conflict_keys");
    yajl_gen_map_open(g);
    for (size_t i = 0; i < st->conflict_keys.cap; i++) {
        const struct mtab_entry *e = &st->conflict_keys.slots[i];
        if (e->hash != 0) {
            char num[24];
            int len =
                snprintf(num, sizeof(num), "%llu", (unsigned long long)e->v.n);
            gen_str(g, e->key, e->key_len);
            yajl_gen_number(g, num, (size_t)len);
        }
    }
    yajl_gen_map_close(g);
    gen_u64(g, "conflict_keys_not_listed", st->conflict_keys_over);
    gen_u64(g, "dup_in_batch", st->dup_in_batch);
    gen_u64(g, "refused_user", atomic_load(&st->refused_user));
    gen_cstr(g, "user_agent");
    gen_cstr(g, st->user_agent);
    gen_cstr(g, "responses");
    yajl_gen_map_open(g);
    for (unsigned s = 0; s < MSTORE_STATUS_MAX; s++) {
        uint64_t n = atomic_load(&st->responses[s]);
        if (n != 0) {
            char name[8];
            snprintf(name, sizeof(name), "%u", s);
            gen_u64(g, name, n);
        }
    }
    yajl_gen_map_close(g);
    gen_u64(g, "bytes_in", atomic_load(&st->bytes_in));
    gen_u64(g, "bytes_plain", atomic_load(&st->bytes_plain));
    pthread_mutex_unlock(&st->mu);
    if (extra != NULL) {
        extra(g, arg);
    }
    yajl_gen_map_close(g);
    return gen_take(g, out_len);
}

char *mstore_types_json(struct mstore *st, size_t *out_len)
{
    yajl_gen g = gen_new();

    pthread_mutex_lock(&st->mu);
    yajl_gen_map_open(g);
    for (size_t i = 0; i < st->types.cap; i++) {
        const struct mtab_entry *e = &st->types.slots[i];
        if (e->hash != 0) {
            gen_str(g, e->key, e->key_len);
            gen_cstr(g, lock_name(e->v.n));
        }
    }
    yajl_gen_map_close(g);
    pthread_mutex_unlock(&st->mu);
    return gen_take(g, out_len);
}
