/*
 * moesif_faults.c: what moesif-dev does wrong on purpose, and when.
 *
 * The settings are one struct behind a mutex: each /v1 request takes a
 * snapshot and one draw of the seeded generator, so a given seed and a
 * given order of arrival give the same faults run after run.  Settings
 * change as a whole (all the pairs of one /_dev/faults request, or none),
 * so a test never sees half an update.
 *
 * Refusals are only scheduled here; moesif-dev.c's main loop stops and
 * restarts the listener, because libmicrohttpd's daemon cannot be
 * stopped from one of its own threads.
 *
 * refuse_user is not drawn: the verdict carries the id, and the parse
 * (moesif_parse.c) compares each user_id it already reads against it, so
 * the fault costs the hot path one length test per user while it is off.
 */
#include "moesif_dev.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

struct mfaults {
    pthread_mutex_t mu;
    struct mfaults_config cfg;
    uint64_t rng;
    bool refuse_pending;
    int64_t refuse_at_ms;
    unsigned refuse_for_ms;
};

int64_t mnow_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mfaults_config_init(struct mfaults_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->retry_after_s = 1;
    cfg->seed = 1;
}

static int parse_fraction(const char *value, double *out, char *err,
                          size_t err_size, const char *name)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(value, &end);
    if (errno != 0 || end == value || *end != '\0' || !(d >= 0.0) || d > 1.0) {
        snprintf(err, err_size, "%s must be a fraction from 0 to 1, not '%s'",
                 name, value);
        return -1;
    }
    *out = d;
    return 0;
}

static int parse_uint(const char *value, unsigned long long max,
                      unsigned long long *out, char *err, size_t err_size,
                      const char *name)
{
    char *end;
    unsigned long long n;

    errno = 0;
    n = strtoull(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || value[0] == '-' ||
        n > max) {
        snprintf(err, err_size,
                 "%s must be a whole number from 0 to %llu, "
                 "not '%s'",
                 name, max, value);
        return -1;
    }
    *out = n;
    return 0;
}

int mfaults_config_set(struct mfaults_config *cfg, const char *name,
                       const char *value, char *err, size_t err_size)
{
    char key[32];
    size_t len = strlen(name);
    unsigned long long n;

    if (len >= sizeof(key)) {
        snprintf(err, err_size, "unknown fault setting '%s'", name);
        return -1;
    }
    for (size_t i = 0; i <= len; i++) {
        key[i] = name[i] == '-' ? '_' : name[i];
    }
    if (strcmp(key, "fail_429") == 0) {
        return parse_fraction(value, &cfg->fail_429, err, err_size, key);
    }
    if (strcmp(key, "fail_500") == 0) {
        return parse_fraction(value, &cfg->fail_500, err, err_size, key);
    }
    if (strcmp(key, "fail_503") == 0) {
        return parse_fraction(value, &cfg->fail_503, err, err_size, key);
    }
    if (strcmp(key, "refuse_user") == 0) {
        size_t len_user = strlen(value);
        if (len_user >= sizeof(cfg->refuse_user)) {
            snprintf(err, err_size,
                     "refuse_user must be a user_id of at most %d bytes",
                     MFAULTS_USER_MAX - 1);
            return -1;
        }
        memcpy(cfg->refuse_user, value, len_user + 1); /* "" turns it off */
        return 0;
    }
    if (strcmp(key, "seed") == 0) {
        if (parse_uint(value, UINT64_MAX, &n, err, err_size, key) != 0) {
            return -1;
        }
        cfg->seed = n;
        return 0;
    }
    if (strcmp(key, "status") == 0) {
        if (parse_uint(value, 599, &n, err, err_size, key) != 0) {
            return -1;
        }
        if (n != 0 && n < 100) {
            snprintf(err, err_size, "status must be 0 (off) or 100 to 599");
            return -1;
        }
        cfg->status = (unsigned)n;
        return 0;
    }
    /* the rest are durations; one hour is more than any test waits */
    if (strcmp(key, "retry_after") == 0 || strcmp(key, "retry_after_s") == 0) {
        if (parse_uint(value, 3600, &n, err, err_size, key) != 0) {
            return -1;
        }
        cfg->retry_after_s = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "latency_ms") == 0) {
        if (parse_uint(value, 3600000, &n, err, err_size, key) != 0) {
            return -1;
        }
        cfg->latency_ms = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "refuse_for_ms") == 0) {
        if (parse_uint(value, 3600000, &n, err, err_size, key) != 0) {
            return -1;
        }
        cfg->refuse_for_ms = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "refuse_after_ms") == 0) {
        if (parse_uint(value, 3600000, &n, err, err_size, key) != 0) {
            return -1;
        }
        cfg->refuse_after_ms = (unsigned)n;
        return 0;
    }
    snprintf(err, err_size,
             "unknown fault setting '%s' (known: fail_429, fail_500, "
             "fail_503, retry_after, latency_ms, status, refuse_for_ms, "
             "refuse_after_ms, seed, refuse_user)",
             name);
    return -1;
}

/* splitmix64 (Steele, Lea, Flood 2014): a full-period generator good
 * enough to pick faults, seeded by any value including 0 */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void schedule(struct mfaults *flt, unsigned for_ms, int64_t at_ms)
{
    flt->refuse_pending = for_ms > 0;
    flt->refuse_for_ms = for_ms;
    flt->refuse_at_ms = at_ms;
}

struct mfaults *mfaults_new(const struct mfaults_config *cfg)
{
    struct mfaults *flt = core_calloc(1, sizeof(*flt));

    pthread_mutex_init(&flt->mu, NULL);
    flt->cfg = *cfg;
    flt->rng = cfg->seed;
    schedule(flt, cfg->refuse_for_ms, mnow_ms() + cfg->refuse_after_ms);
    return flt;
}

void mfaults_destroy(struct mfaults *flt)
{
    if (flt == NULL) {
        return;
    }
    pthread_mutex_destroy(&flt->mu);
    free(flt);
}

int mkv_add(struct mkv_list *l, const char *name, size_t name_len,
            const char *value, size_t value_len, char *err, size_t err_size)
{
    if (l->n == MKV_MAX) {
        snprintf(err, err_size, "more than %d fault settings", MKV_MAX);
        return -1;
    }
    if (name_len >= sizeof(l->kv[0].name) ||
        value_len >= sizeof(l->kv[0].value)) {
        snprintf(err, err_size, "fault setting '%.*s' is too long",
                 (int)(name_len > 40 ? 40 : name_len), name);
        return -1;
    }
    memcpy(l->kv[l->n].name, name, name_len);
    l->kv[l->n].name[name_len] = '\0';
    memcpy(l->kv[l->n].value, value, value_len);
    l->kv[l->n].value[value_len] = '\0';
    l->n++;
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/*
 * URL-decodes s[0..len) (%XX, '+' as space: application/x-www-form-
 * urlencoded, as libmicrohttpd decodes query strings) into out, writing
 * at most size bytes.  Returns the decoded length, which exceeds size
 * when it did not fit.  A '%' without two hex digits stays as it is.
 */
static size_t form_decode(const char *s, size_t len, char *out, size_t size)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++, n++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < len && hex_digit(s[i + 1]) >= 0 &&
                   hex_digit(s[i + 2]) >= 0) {
            c = (char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
        }
        if (n < size) {
            out[n] = c;
        }
    }
    return n;
}

int mkv_parse_form(struct mkv_list *l, const char *s, size_t len, char *err,
                   size_t err_size)
{
    size_t i = 0;

    while (i < len) {
        size_t start = i;
        size_t eq;

        while (i < len && s[i] != '&' && s[i] != '\n') {
            i++;
        }
        for (eq = start; eq < i && s[eq] != '='; eq++) {
        }
        if (i > start) {
            if (eq == i) {
                snprintf(err, err_size, "'%.*s' is not name=value",
                         (int)(i - start > 40 ? 40 : i - start), s + start);
                return -1;
            }
            char name[sizeof(l->kv[0].name)];
            char value[sizeof(l->kv[0].value)];
            size_t name_len =
                form_decode(s + start, eq - start, name, sizeof(name));
            size_t value_len =
                form_decode(s + eq + 1, i - eq - 1, value, sizeof(value));

            /* mkv_add refuses lengths that did not fit before reading */
            if (mkv_add(l, name, name_len, value, value_len, err, err_size) !=
                0) {
                return -1;
            }
        }
        i++;
    }
    return 0;
}

int mkv_parse_json(struct mkv_list *l, const char *s, size_t len, char *err,
                   size_t err_size)
{
    char buf[4096];
    char yerr[128];
    yajl_val root;
    int rc = 0;

    if (len >= sizeof(buf)) {
        snprintf(err, err_size, "the fault settings body is too long");
        return -1;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    root = yajl_tree_parse(buf, yerr, sizeof(yerr));
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        snprintf(err, err_size,
                 "the fault settings body is not a JSON "
                 "object");
        yajl_tree_free(root);
        return -1;
    }
    for (size_t i = 0; i < root->u.object.len && rc == 0; i++) {
        const char *name = root->u.object.keys[i];
        yajl_val v = root->u.object.values[i];
        const char *text;

        if (YAJL_IS_NUMBER(v)) {
            text = v->u.number.r;
        } else if (YAJL_IS_STRING(v)) {
            text = v->u.string;
        } else if (YAJL_IS_NULL(v)) {
            text = ""; /* refuse_user: null turns it off */
        } else {
            snprintf(err, err_size,
                     "fault setting '%s' must be a number or a string", name);
            rc = -1;
            break;
        }
        rc = mkv_add(l, name, strlen(name), text, strlen(text), err, err_size);
    }
    yajl_tree_free(root);
    return rc;
}

int mfaults_update(struct mfaults *flt, const struct mkv_list *l, char *err,
                   size_t err_size)
{
    struct mfaults_config cfg;
    bool refuse = false;
    bool after = false;
    bool seed = false;

    pthread_mutex_lock(&flt->mu);
    cfg = flt->cfg;
    for (size_t i = 0; i < l->n; i++) {
        const char *name = l->kv[i].name;
        if (mfaults_config_set(&cfg, name, l->kv[i].value, err, err_size) !=
            0) {
            pthread_mutex_unlock(&flt->mu);
            return -1;
        }
        refuse |= strcmp(name, "refuse_for_ms") == 0 ||
                  strcmp(name, "refuse-for-ms") == 0;
        after |= strcmp(name, "refuse_after_ms") == 0 ||
                 strcmp(name, "refuse-after-ms") == 0;
        seed |= strcmp(name, "seed") == 0;
    }
    if (refuse) {
        unsigned delay = after ? cfg.refuse_after_ms : 0;
        if (delay < MFAULTS_MIN_REFUSE_DELAY_MS) {
            delay = MFAULTS_MIN_REFUSE_DELAY_MS;
        }
        if (!after) {
            cfg.refuse_after_ms = 0;
        }
        schedule(flt, cfg.refuse_for_ms, mnow_ms() + delay);
    }
    if (seed) {
        flt->rng = cfg.seed;
    }
    flt->cfg = cfg;
    pthread_mutex_unlock(&flt->mu);
    return 0;
}

void mfaults_draw(struct mfaults *flt, struct mverdict *v)
{
    const struct mfaults_config *cfg = &flt->cfg;

    pthread_mutex_lock(&flt->mu);
    v->status = cfg->status;
    v->latency_ms = cfg->latency_ms;
    v->retry_after_s = cfg->retry_after_s;
    v->refuse_user_len = 0;
    v->refuse_user[0] = '\0';
    if (cfg->refuse_user[0] != '\0') {
        size_t n = strlen(cfg->refuse_user);
        memcpy(v->refuse_user, cfg->refuse_user, n + 1);
        v->refuse_user_len = (uint32_t)n;
    }
    if (v->status == 0 &&
        (cfg->fail_429 > 0 || cfg->fail_500 > 0 || cfg->fail_503 > 0)) {
        /* 53 random bits scaled into [0, 1) */
        double u = (double)(next_u64(&flt->rng) >> 11) * 0x1.0p-53;
        if (u < cfg->fail_429) {
            v->status = 429;
        } else if (u < cfg->fail_429 + cfg->fail_500) {
            v->status = 500;
        } else if (u < cfg->fail_429 + cfg->fail_500 + cfg->fail_503) {
            v->status = 503;
        }
    }
    pthread_mutex_unlock(&flt->mu);
}

char *mfaults_json(struct mfaults *flt, size_t *out_len)
{
    /* 6 bytes per escaped byte of refuse_user, plus the numbers */
    char user[6 * MFAULTS_USER_MAX + 8];
    char buf[sizeof(user) + 512];
    int n;
    int64_t in_ms;

    pthread_mutex_lock(&flt->mu);
    in_ms = flt->refuse_pending ? flt->refuse_at_ms - mnow_ms() : -1;
    mjson_escape(user, sizeof(user), flt->cfg.refuse_user);
    n = snprintf(buf, sizeof(buf),
                 "{\"fail_429\":%.6g,\"fail_500\":%.6g,\"fail_503\":%.6g,"
                 "\"retry_after\":%u,\"latency_ms\":%u,\"status\":%u,"
                 "\"refuse_for_ms\":%u,\"refuse_after_ms\":%u,"
                 "\"refusal_due_in_ms\":%lld,\"seed\":%llu,"
                 "\"refuse_user\":\"%s\"}",
                 flt->cfg.fail_429, flt->cfg.fail_500, flt->cfg.fail_503,
                 flt->cfg.retry_after_s, flt->cfg.latency_ms, flt->cfg.status,
                 flt->cfg.refuse_for_ms, flt->cfg.refuse_after_ms,
                 (long long)(in_ms < 0 ? -1 : in_ms),
                 (unsigned long long)flt->cfg.seed, user);
    pthread_mutex_unlock(&flt->mu);
    *out_len = (size_t)n;
    return core_strndup(buf, (size_t)n);
}

bool mfaults_refusal_due(struct mfaults *flt, int64_t now_ms, unsigned *for_ms)
{
    bool due = false;

    pthread_mutex_lock(&flt->mu);
    if (flt->refuse_pending && now_ms >= flt->refuse_at_ms) {
        flt->refuse_pending = false;
        *for_ms = flt->refuse_for_ms;
        due = true;
    }
    pthread_mutex_unlock(&flt->mu);
    return due;
}
