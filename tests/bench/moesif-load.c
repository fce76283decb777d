/*
 * moesif-load.c: a load client for moesif-dev (or anything speaking
 * Moesif's POST /v1/users/batch): N kept-alive connections on one libcurl
 * multi handle, each sending gzipped batches of realistic users back to
 * back for a fixed time, then one summary.
 *
 * The bodies are generated and gzipped before the clock starts (a pool of
 * distinct batches, users unique across the pool, so the server sees
 * both new users and updates of known ones), because this client shares
 * the machine with the server it measures: what it spends per request
 * must be as close to nothing as libcurl allows.
 *
 * Output: a human line, then one "RESULT key=value ..." line for scripts.
 */
#include "../../core/core.h"

#include <curl/curl.h>
#include <libdeflate.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct options {
    char url[512];
    const char *app_id;
    unsigned connections;
    double duration_s;
    unsigned batch;
    unsigned pool;
    unsigned level;
    bool gzip;
    uint64_t seed;
};

struct body {
    char *data;
    size_t len;       /* as sent */
    size_t plain_len; /* before gzip */
};

struct stats {
    uint64_t requests;
    uint64_t ok;
    uint64_t non2xx;
    uint64_t errors;
    uint64_t users;
    uint64_t wire_bytes;
    uint64_t plain_bytes;
    double *lat_ms;
    size_t n_lat;
    size_t cap_lat;
    unsigned long status_counts[600];
};

struct slot {
    CURL *easy;
    size_t body;
    double started;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const char *pick(uint64_t *s, const char *const *list, size_t n)
{
    return list[next_u64(s) % n];
}

#define PICK(s, list) pick((s), (list), sizeof(list) / sizeof((list)[0]))

static const char *const first_names[] = {
    "Ada",     "Grace", "Alan",     "Linus",  "Edsger",
    "Barbara", "Ken",   "Margaret", "Dennis", "Frances"};
static const char *const last_names[] = {"Lovelace", "Hopper",   "Turing",
                                         "Torvalds", "Dijkstra", "Liskov",
                                         "Thompson", "Hamilton", "Ritchie"};
static const char *const plans[] = {"free", "starter", "pro", "enterprise"};
static const char *const cities[] = {"Paris", "Berlin", "Lagos", "Austin",
                                     "Osaka", "Lima",   "Pune",  "Oslo"};
static const char *const sources[] = {"google", "newsletter", "twitter",
                                      "partner", "direct"};
static const char *const agents[] = {
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120",
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/121", "okhttp/4.12.0"};

/* One user of about 450 bytes of minified JSON, shaped like the
 * pipeline's events (DESIGN.md section 1). */
static int gen_user(char *out, size_t size, unsigned id, uint64_t *s)
{
    const char *first = PICK(s, first_names);
    const char *last = PICK(s, last_names);
    uint64_t r = next_u64(s);

    return snprintf(
        out, size,
        "{\"user_id\":\"user-%07u\",\"company_id\":\"company-%04u\","
        "\"modified_time\":\"2024-%02u-%02uT%02u:%02u:%02u.%03uZ\","
        "\"ip_address\":\"10.%u.%u.%u\",\"user_agent_string\":\"%s\","
        "\"session_token\":\"sess-%012llx\","
        "\"campaign\":{\"utm_source\":\"%s\"},"
        "\"metadata\":{\"email\":\"%s.%s%u@example.com\","
        "\"first_name\":\"%s\",\"last_name\":\"%s\",\"plan\":\"%s\","
        "\"age\":%u,\"verified\":%s,\"score\":%u.%u,"
        "\"tags\":[\"beta\"],"
        "\"address\":{\"city\":\"%s\",\"zip\":\"%05u\"}}}",
        id, (unsigned)(r % 5000), (unsigned)(r % 12) + 1,
        (unsigned)(r % 28) + 1, (unsigned)(r % 24), (unsigned)(r % 60),
        (unsigned)(r >> 8) % 60, (unsigned)(r >> 16) % 1000,
        (unsigned)(r >> 24) % 256, (unsigned)(r >> 32) % 256,
        (unsigned)(r >> 40) % 256, PICK(s, agents),
        (unsigned long long)(next_u64(s) & 0xffffffffffffULL), PICK(s, sources),
        first, last, id, first, last, PICK(s, plans), 18 + (unsigned)(r % 60),
        (r & 1) ? "true" : "false", (unsigned)(r % 100),
        (unsigned)(r >> 7) % 10, PICK(s, cities), (unsigned)(r >> 12) % 100000);
}

static void make_pool(const struct options *o, struct body *pool)
{
    struct libdeflate_compressor *c =
        libdeflate_alloc_compressor((int)o->level);
    size_t cap = (size_t)o->batch * 1024 + 16;
    char *plain = core_malloc(cap);
    uint64_t s = o->seed;

    if (c == NULL) {
        fprintf(stderr, "moesif-load: out of memory in libdeflate\n");
        exit(1);
    }
    for (unsigned b = 0; b < o->pool; b++) {
        size_t len = 0;
        plain[len++] = '[';
        for (unsigned u = 0; u < o->batch; u++) {
            if (u > 0) {
                plain[len++] = ',';
            }
            len += (size_t)gen_user(plain + len, cap - len - 2,
                                    b * o->batch + u, &s);
        }
        plain[len++] = ']';
        pool[b].plain_len = len;
        if (o->gzip) {
            size_t bound = libdeflate_gzip_compress_bound(c, len);
            pool[b].data = core_malloc(bound);
            pool[b].len =
                libdeflate_gzip_compress(c, plain, len, pool[b].data, bound);
        } else {
            pool[b].data = core_strndup(plain, len);
            pool[b].len = len;
        }
    }
    free(plain);
    libdeflate_free_compressor(c);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static void start(struct slot *sl, const struct body *b, CURLM *multi)
{
    curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDS, b->data);
    curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
    sl->started = now_s();
    curl_multi_add_handle(multi, sl->easy);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int parse_args(struct options *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--no-gzip") == 0) {
            o->gzip = false;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "moesif-load: '%s' needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--url") == 0) {
            snprintf(o->url, sizeof(o->url), "%s", v);
        } else if (strcmp(a, "--url-file") == 0) {
            FILE *f = fopen(v, "r");
            if (f == NULL || fgets(o->url, sizeof(o->url), f) == NULL) {
                fprintf(stderr, "moesif-load: cannot read '%s'\n", v);
                if (f != NULL) {
                    fclose(f);
                }
                return -1;
            }
            fclose(f);
            o->url[strcspn(o->url, "\r\n")] = '\0';
        } else if (strcmp(a, "--app-id") == 0) {
            o->app_id = v;
        } else if (strcmp(a, "--connections") == 0) {
            o->connections = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--duration-s") == 0) {
            o->duration_s = strtod(v, NULL);
        } else if (strcmp(a, "--batch") == 0) {
            o->batch = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--pool") == 0) {
            o->pool = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--level") == 0) {
            o->level = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--seed") == 0) {
            o->seed = strtoull(v, NULL, 10);
        } else {
            fprintf(stderr, "moesif-load: unknown option '%s'\n", a);
            return -1;
        }
    }
    if (o->url[0] == '\0' || o->app_id == NULL || o->connections < 1 ||
        o->connections > 1000 || o->duration_s <= 0 || o->batch < 1 ||
        o->batch > 100000 || o->pool < 1 || o->level > 12) {
        fprintf(stderr,
                "usage: moesif-load (--url URL | --url-file FILE) --app-id ID"
                " [--connections 8] [--duration-s 10]\n"
                "       [--batch 200] [--pool 500] [--level 6] [--seed 1]"
                " [--no-gzip]\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options o = {.connections = 8,
                        .duration_s = 10,
                        .batch = 200,
                        .pool = 500,
                        .level = 6, /* zlib's default level */
                        .gzip = true,
                        .seed = 1};
    struct stats st;
    struct body *pool;
    struct slot *slots;
    struct curl_slist *headers = NULL;
    char url[600];
    char hdr[600];
    CURLM *multi;
    double t0, deadline, t_end;
    size_t next = 0;
    int running = 0;
    uint64_t pool_wire = 0, pool_plain = 0;
    struct rusage ru;

    if (parse_args(&o, argc, argv) != 0) {
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&st, 0, sizeof(st));
    pool = core_calloc(o.pool, sizeof(*pool));
    make_pool(&o, pool);
    for (unsigned b = 0; b < o.pool; b++) {
        pool_wire += pool[b].len;
        pool_plain += pool[b].plain_len;
    }

    snprintf(url, sizeof(url), "%s/v1/users/batch", o.url);
    snprintf(hdr, sizeof(hdr), "X-Moesif-Application-Id: %s", o.app_id);
    headers = curl_slist_append(headers, hdr);
    headers = curl_slist_append(headers, "Content-Type: application/json; "
                                         "charset=utf-8");
    if (o.gzip) {
        headers = curl_slist_append(headers, "Content-Encoding: gzip");
    }
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue */

    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)o.connections);
    slots = core_calloc(o.connections, sizeof(*slots));
    t0 = now_s();
    deadline = t0 + o.duration_s;
    for (unsigned i = 0; i < o.connections; i++) {
        CURL *e = curl_easy_init();
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(e, CURLOPT_PRIVATE, &slots[i]);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        slots[i].easy = e;
        slots[i].body = next;
        start(&slots[i], &pool[next], multi);
        next = (next + 1) % o.pool;
    }
    t_end = t0;
    do {
        CURLMsg *msg;
        int left;

        curl_multi_perform(multi, &running);
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            struct slot *sl;
            long code = 0;
            double t = now_s();

            if (msg->msg != CURLMSG_DONE) {
                continue;
            }
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &sl);
            curl_multi_remove_handle(multi, sl->easy);
            st.requests++;
            t_end = t;
            if (msg->data.result != CURLE_OK) {
                st.errors++;
            } else {
                curl_easy_getinfo(sl->easy, CURLINFO_RESPONSE_CODE, &code);
                if (code >= 0 && code < 600) {
                    st.status_counts[code]++;
                }
                if (code >= 200 && code < 300) {
                    st.ok++;
                    st.users += o.batch;
                    st.wire_bytes += pool[sl->body].len;
                    st.plain_bytes += pool[sl->body].plain_len;
                } else {
                    st.non2xx++;
                }
            }
            if (st.n_lat == st.cap_lat) {
                st.cap_lat = st.cap_lat ? st.cap_lat * 2 : 4096;
                st.lat_ms =
                    core_realloc(st.lat_ms, st.cap_lat * sizeof(*st.lat_ms));
            }
            st.lat_ms[st.n_lat++] = (t - sl->started) * 1000.0;
            if (t < deadline) {
                sl->body = next;
                start(sl, &pool[next], multi);
                next = (next + 1) % o.pool;
                running++;
            }
        }
        if (running > 0) {
            curl_multi_poll(multi, NULL, 0, 100, NULL);
        }
    } while (running > 0);

    {
        double secs = t_end - t0;
        double p50 = 0, p99 = 0, cpu;

        if (st.n_lat > 0) {
            qsort(st.lat_ms, st.n_lat, sizeof(*st.lat_ms), cmp_double);
            p50 = st.lat_ms[st.n_lat / 2];
            p99 = st.lat_ms[st.n_lat * 99 / 100];
        }
        getrusage(RUSAGE_SELF, &ru);
        cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
        printf("moesif-load: %.2f s, %u connections, batches of %u users "
               "(%.0f B/user JSON, %.1f KiB/batch %s)\n",
               secs, o.connections, o.batch,
               (double)pool_plain / ((double)o.pool * o.batch),
               (double)pool_wire / o.pool / 1024.0,
               o.gzip ? "gzipped" : "plain");
        printf("moesif-load: %llu requests (%llu 2xx, %llu other status, "
               "%llu transport errors), %.0f req/s, %.0f users/s, "
               "%.2f MB/s on the wire, %.2f MB/s JSON, latency p50 %.2f ms "
               "p99 %.2f ms\n",
               (unsigned long long)st.requests, (unsigned long long)st.ok,
               (unsigned long long)st.non2xx, (unsigned long long)st.errors,
               st.requests / secs, st.users / secs, st.wire_bytes / secs / 1e6,
               st.plain_bytes / secs / 1e6, p50, p99);
        printf("RESULT seconds=%.3f requests=%llu ok=%llu non2xx=%llu "
               "errors=%llu users=%llu wire_bytes=%llu plain_bytes=%llu "
               "req_per_s=%.1f users_per_s=%.1f wire_mb_per_s=%.3f "
               "plain_mb_per_s=%.3f p50_ms=%.3f p99_ms=%.3f "
               "client_cpu_s=%.3f\n",
               secs, (unsigned long long)st.requests, (unsigned long long)st.ok,
               (unsigned long long)st.non2xx, (unsigned long long)st.errors,
               (unsigned long long)st.users, (unsigned long long)st.wire_bytes,
               (unsigned long long)st.plain_bytes, st.requests / secs,
               st.users / secs, st.wire_bytes / secs / 1e6,
               st.plain_bytes / secs / 1e6, p50, p99, cpu);
    }

    for (unsigned i = 0; i < o.connections; i++) {
        curl_easy_cleanup(slots[i].easy);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(headers);
    for (unsigned b = 0; b < o.pool; b++) {
        free(pool[b].data);
    }
    free(pool);
    free(slots);
    free(st.lat_ms);
    curl_global_cleanup();
    return st.ok > 0 && st.errors == 0 ? 0 : 1;
}
