/*
 * bench_transform.c: the transform stage's benchmark.  It generates a
 * deterministic corpus of realistic user events (about 400 bytes, some
 * dotted keys, about 1% type conflicts) and measures, in the same run and
 * on one core, yajl's own parse-only speed over the same bytes (no
 * callbacks) and the transform's, in thread CPU time so a shared machine's
 * other load counts as little as possible.  Rounds alternate between the
 * two and the best round of each is kept.  Results are ratios: the
 * absolute figures move with the machine, the ratio much less.
 *
 * usage: bench_transform [events] [rounds]
 */
#include "../../core/core.h"
#include "../../schemas/schema.h"
#include "../../transform/transform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_parse.h>

struct corpus {
    char *buf;
    size_t *off, *len;
    size_t n, bytes;
};

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: deterministic, the same corpus every run */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static const char *const first_names[] = {"Ann", "Bob",    "Chloé", "Dmitri",
                                          "Eve", "Fatima", "Grace", "Hiro"};
static const char *const plans[] = {"free", "starter", "pro", "enterprise"};
static const char *const cities[] = {"Paris", "Berlin", "São Paulo",
                                     "Tokyo", "Lagos",  "Austin"};
static const char *const sources[] = {"google", "newsletter", "twitter",
                                      "partner.site"};

static void corpus_make(struct corpus *c, size_t n)
{
    uint64_t s = 0x2545f4914f6cdd1dULL;
    size_t cap = n * 600;

    c->buf = core_malloc(cap);
    c->off = core_malloc(n * sizeof(size_t));
    c->len = core_malloc(n * sizeof(size_t));
    c->n = n;
    c->bytes = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng_next(&s);
        unsigned user = (unsigned)(r % 50000);
        int conflict = (rng_next(&s) % 100) == 0; /* about 1% */
        char age[32];
        int k;

        if (conflict) {
            snprintf(age, sizeof(age), "\"%u\"", 18 + (unsigned)(r % 60));
        } else {
            snprintf(age, sizeof(age), "%u", 18 + (unsigned)(r % 60));
        }
        k = snprintf(
            c->buf + c->bytes, cap - c->bytes,
            "{\"user_id\":\"user-%06u\",\"session_token\":\"sess-%016llx\","
            "\"company_id\":\"company-%04u\","
            "\"modified_time\":\"2024-%02u-%02uT%02u:%02u:%02u.000Z\","
            "\"ip_address\":\"10.%u.%u.%u\","
            "\"campaign\":{\"utm_source\":\"%s\",\"utm_medium\":\"cpc\"},"
            "\"metadata\":{\"email\":\"user%u@example.com\","
            "\"first.name\":\"%s\",\"plan.name\":\"%s\",\"age\":%s,"
            "\"score\":%u.%02u,\"active\":%s,"
            "\"billing\":{\"address.city\":\"%s\",\"zip\":\"%05u\"},"
            "\"tags\":[\"beta\",\"api\"],\"logins\":%u}}",
            user, (unsigned long long)rng_next(&s), user % 1000,
            1 + (unsigned)(r % 12), 1 + (unsigned)(r % 28), (unsigned)(r % 24),
            (unsigned)(r % 60), (unsigned)(r % 59), (unsigned)(r % 256),
            (unsigned)((r >> 8) % 256), (unsigned)((r >> 16) % 256),
            sources[r % 4], user, first_names[(r >> 3) % 8],
            plans[(r >> 5) % 4], age, (unsigned)(r % 1000), (unsigned)(r % 100),
            (r >> 7) % 2 ? "true" : "false", cities[(r >> 9) % 6],
            (unsigned)(r % 100000), (unsigned)(r % 5000));
        c->off[i] = c->bytes;
        c->len[i] = (size_t)k;
        c->bytes += (size_t)k;
    }
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double run_yajl(const struct corpus *c)
{
    double t0 = cpu_now();
    size_t bad = 0;

    for (size_t i = 0; i < c->n; i++) {
        yajl_handle h = yajl_alloc(NULL, NULL, NULL);
        if (yajl_parse(h, (const unsigned char *)c->buf + c->off[i],
                       c->len[i]) != yajl_status_ok ||
            yajl_complete_parse(h) != yajl_status_ok) {
            bad++;
        }
        yajl_free(h);
    }
    if (bad != 0) {
        fprintf(stderr, "bench: corpus has %zu invalid events\n", bad);
        exit(1);
    }
    return cpu_now() - t0;
}

/* A schema of n keys that are not in the corpus, as a long-running
 * organisation's schema would be (issue 5: the check must stay cheap). */
static struct schema *schema_with(size_t n)
{
    struct schema *sch = schema_new();
    char key[64];

    for (size_t i = 0; i < n; i++) {
        int k = snprintf(key, sizeof(key), "custom_field_%zu_%zx", i,
                         i * 2654435761u);
        schema_put(sch, key, (size_t)k, core_hash64(key, (size_t)k),
                   (enum schema_type)(1 + i % 5));
    }
    return sch;
}

static double run_transform(const struct corpus *c, size_t known_keys,
                            size_t *accepted, size_t *out_bytes)
{
    struct transform_config cfg;
    struct schema *sch = schema_with(known_keys);
    struct transform *tf;
    char errstr[256];
    double t0;

    transform_config_init(&cfg);
    if (transform_new(&cfg, sch, &tf, errstr, sizeof(errstr)) != CORE_OK) {
        fprintf(stderr, "bench: %s\n", errstr);
        exit(1);
    }
    *accepted = 0;
    *out_bytes = 0;
    t0 = cpu_now();
    for (size_t i = 0; i < c->n; i++) {
        const char *out;
        size_t out_len;
        struct core_reject rej;
        if (transform_event(tf, c->buf + c->off[i], c->len[i], &out, &out_len,
                            &rej) == CORE_OK) {
            (*accepted)++;
            *out_bytes += out_len;
        }
    }
    t0 = cpu_now() - t0;
    transform_destroy(tf);
    schema_destroy(sch);
    return t0;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    struct corpus c;
    double best_yajl = 1e9, best_tf = 1e9, best_50k = 1e9;
    size_t accepted = 0, out_bytes = 0, accepted_50k = 0;

    corpus_make(&c, n);
    for (int r = 0; r < rounds; r++) {
        double y = getenv("BENCH_ONLY_TF") ? 1 : run_yajl(&c);
        double t = run_transform(&c, 0, &accepted, &out_bytes);
        double t50 = run_transform(&c, 50000, &accepted_50k, &out_bytes);
        if (t50 < best_50k) {
            best_50k = t50;
        }
        if (y < best_yajl) {
            best_yajl = y;
        }
        if (t < best_tf) {
            best_tf = t;
        }
    }
    printf("transform bench: %zu events, %.1f MB, mean %zu bytes/event, "
           "%zu accepted (%.2f%% rejected), best of %d rounds, thread CPU "
           "time\n",
           n, (double)c.bytes / 1e6, c.bytes / n, accepted,
           100.0 * (double)(n - accepted) / (double)n, rounds);
    printf("  yajl parse-only : %9.0f events/s  %7.1f MB/s\n",
           (double)n / best_yajl, (double)c.bytes / best_yajl / 1e6);
    printf("  transform       : %9.0f events/s  %7.1f MB/s  (%.2f us/event)\n",
           (double)n / best_tf, (double)c.bytes / best_tf / 1e6,
           best_tf / (double)n * 1e6);
    printf("  ratio transform/yajl-parse-only: %.2f (target >= 0.60)\n",
           best_yajl / best_tf);
    printf(
        "  transform, schema of 50,000 known keys: %9.0f events/s "
        "(%.2f us/event), %+.1f%% time per event vs an empty schema (target <= "
        "+10%%)%s\n",
        (double)n / best_50k, best_50k / (double)n * 1e6,
        100.0 * (best_50k - best_tf) / best_tf,
        accepted_50k == accepted ? "" : " [ACCEPTED COUNTS DIFFER]");
    free(c.buf);
    free(c.off);
    free(c.len);
    return 0;
}
