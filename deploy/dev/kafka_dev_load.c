/*
 * kafka_dev_load.c: the keyed load.  `kafka-dev keyed` turns NDJSON lines
 * into "user_id<TAB>line" for kcat -K '\t' (load-topic.sh), and `kafka-dev
 * plan` estimates what such a load puts in each partition, against the
 * mock's partition cap, before anything is produced.
 *
 * Why together: both take the key from the same scanner (kafka_dev_json.c)
 * and plan hashes it with librdkafka's own partitioner, as kcat does, so
 * the estimate and the load agree.
 *
 * Invariant: plan over-estimates (KD_RECORD_OVERHEAD_BYTES, only
 * KD_USABLE_PERCENT of the cap): a wrong answer must be a refusal, never
 * a load that silently loses data.
 */
#include "kafka_dev.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static FILE *kd_open_input(const char *path)
{
    FILE *f;

    if (path == NULL || strcmp(path, "-") == 0) {
        return stdin;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "kafka-dev: cannot open \"%s\": %s\n", path,
                strerror(errno));
    }
    return f;
}

/*
 * Reads the next non-empty line of in into *line (grown as getline(3)
 * does), drops its newline and sets *len, and puts its user_id into key
 * with *key_len as kd_user_id returns it (-1: none).  Returns 0 at the
 * end of in or on a read error (ferror tells which), else 1.  keyed and
 * plan both read with it, so the load and its plan see the same keys.
 */
static int kd_next_line(FILE *in, char **line, size_t *cap, size_t *len,
                        char *key, size_t key_size, long *key_len)
{
    ssize_t n;

    do {
        n = getline(line, cap, in);
        if (n < 0) {
            return 0;
        }
        *len = (size_t)n;
        if (*len > 0 && (*line)[*len - 1] == '\n') {
            (*line)[--*len] = '\0';
        }
    } while (*len == 0);
    *key_len = kd_user_id(*line, *len, key, key_size);
    return 1;
}

/*
 * "keyed [FILE]": prints "KEY<TAB>LINE" per line for `kcat -K '\t'`, and
 * "<TAB>LINE" when the line has no usable user_id (kcat -Z turns the
 * empty key into a null key).  Empty lines are skipped, as kcat skips them.
 */
int kd_keyed(int argc, char **argv)
{
    char key[KD_KEY_MAX];
    char *line = NULL;
    size_t cap = 0;
    size_t len;
    long key_len;
    FILE *in = kd_open_input(argc > 2 ? argv[2] : NULL);
    int rc = 0;

    if (in == NULL) {
        return 1;
    }
    while (kd_next_line(in, &line, &cap, &len, key, sizeof(key), &key_len)) {
        if (key_len < 0) {
            key[0] = '\0';
        }
        if (printf("%s\t", key) < 0 || fwrite(line, 1, len, stdout) != len ||
            putchar('\n') == EOF) {
            fprintf(stderr, "kafka-dev keyed: write failed: %s\n",
                    strerror(errno));
            rc = 1;
            break;
        }
    }
    if (ferror(in)) {
        fprintf(stderr, "kafka-dev keyed: read failed: %s\n", strerror(errno));
        rc = 1;
    }
    free(line);
    if (in != stdin) {
        fclose(in);
    }
    if (fflush(stdout) != 0) {
        rc = 1;
    }
    return rc;
}

/* One message of a planned load. */
struct kd_plan_msg {
    size_t key_off; /* into the key arena */
    size_t key_len; /* 0: no key, spread at random */
    size_t bytes;   /* estimated bytes in the partition log */
};

struct kd_plan {
    struct kd_plan_msg *msgs;
    size_t cnt;
    size_t cap;
    char *keys;
    size_t keys_len;
    size_t keys_cap;
    uint64_t total_bytes;
    uint64_t keyless_bytes;
    uint64_t *per_part;
};

/* Fullest partition's estimated bytes when spread over n partitions. */
static uint64_t kd_plan_spread(struct kd_plan *pl, int32_t n, int32_t *fullest)
{
    uint64_t max = 0;

    pl->per_part = kd_realloc(pl->per_part, sizeof(uint64_t) * (size_t)n);
    memset(pl->per_part, 0, sizeof(uint64_t) * (size_t)n);
    for (size_t i = 0; i < pl->cnt; i++) {
        const struct kd_plan_msg *m = &pl->msgs[i];
        int32_t p;
        if (m->key_len == 0) {
            continue;
        }
        /* librdkafka's own partitioner, the default of kcat: crc32 % n. */
        p = rd_kafka_msg_partitioner_consistent(NULL, pl->keys + m->key_off,
                                                m->key_len, n, NULL, NULL);
        pl->per_part[p] += m->bytes;
    }
    *fullest = 0;
    for (int32_t p = 0; p < n; p++) {
        /* Keyless messages land at random: count an even share each. */
        pl->per_part[p] += (pl->keyless_bytes + (uint64_t)n - 1) / (uint64_t)n;
        if (pl->per_part[p] > max) {
            max = pl->per_part[p];
            *fullest = p;
        }
    }
    return max;
}

/*
 * "plan [--partitions N] [--bytes B] [FILE|-]": prints one line of
 * key=value fields; exits 0 when the load fits (or no partition count was
 * given), 1 when it does not fit in N partitions, 2 on a usage error.
 */
int kd_plan(int argc, char **argv)
{
    struct kd_plan pl;
    const uint64_t usable =
        (uint64_t)KD_PARTITION_CAP_BYTES * KD_USABLE_PERCENT / 100;
    const char *path = NULL;
    char key[KD_KEY_MAX];
    char *line = NULL;
    size_t cap = 0;
    size_t len;
    long key_len;
    long partitions = 0;
    long bytes = -1;
    int32_t needed;
    int32_t fullest = 0;
    uint64_t fullest_bytes;
    FILE *in;
    int rc = 2;

    memset(&pl, 0, sizeof(pl));
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--partitions") == 0 && i + 1 < argc) {
            if (kd_parse_long(argv[++i], 1, KD_MAX_PARTITIONS, &partitions) !=
                0) {
                fprintf(stderr,
                        "kafka-dev plan: --partitions must be 1 to "
                        "%d\n",
                        KD_MAX_PARTITIONS);
                return 2;
            }
        } else if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc) {
            if (kd_parse_long(argv[++i], 0, LONG_MAX, &bytes) != 0) {
                fprintf(stderr, "kafka-dev plan: --bytes must be a byte "
                                "count\n");
                return 2;
            }
        } else if (path == NULL && (argv[i][0] != '-' || argv[i][1] == '\0')) {
            path = argv[i];
        } else {
            fprintf(stderr, "usage: kafka-dev plan [--partitions N] "
                            "[--bytes B] [FILE|-]\n");
            return 2;
        }
    }

    if (bytes >= 0) {
        /* Even spread assumed: keys may skew it, see the FILE form. */
        needed = (int32_t)(((uint64_t)bytes + usable - 1) / usable);
        if (needed < 1) {
            needed = 1;
        }
        printf("needed=%d bytes=%ld usable_bytes=%" PRIu64 " cap_bytes=%ld\n",
               needed, bytes, usable, KD_PARTITION_CAP_BYTES);
        if (partitions > 0) {
            return partitions >= needed ? 0 : 1;
        }
        return 0;
    }

    in = kd_open_input(path);
    if (in == NULL) {
        return 2;
    }
    while (kd_next_line(in, &line, &cap, &len, key, sizeof(key), &key_len)) {
        struct kd_plan_msg *m;
        if (pl.cnt == pl.cap) {
            pl.cap = pl.cap ? pl.cap * 2 : 1024;
            pl.msgs = kd_realloc(pl.msgs, sizeof(*pl.msgs) * pl.cap);
        }
        m = &pl.msgs[pl.cnt++];
        m->key_off = pl.keys_len;
        m->key_len = key_len > 0 ? (size_t)key_len : 0;
        m->bytes = len + m->key_len + KD_RECORD_OVERHEAD_BYTES;
        pl.total_bytes += m->bytes;
        if (m->key_len == 0) {
            pl.keyless_bytes += m->bytes;
        } else {
            if (pl.keys_len + m->key_len > pl.keys_cap) {
                pl.keys_cap = (pl.keys_len + m->key_len) * 2;
                pl.keys = kd_realloc(pl.keys, pl.keys_cap);
            }
            memcpy(pl.keys + pl.keys_len, key, m->key_len);
            pl.keys_len += m->key_len;
        }
    }
    if (ferror(in)) {
        fprintf(stderr, "kafka-dev plan: read failed: %s\n", strerror(errno));
        goto out;
    }

    /* The fewest partitions, from the even-spread bound upwards. */
    needed = (int32_t)((pl.total_bytes + usable - 1) / usable);
    if (needed < 1) {
        needed = 1;
    }
    while (needed < KD_PLAN_MAX_PARTITIONS &&
           kd_plan_spread(&pl, needed, &fullest) > usable) {
        needed++;
    }
    if (partitions > 0) {
        fullest_bytes = kd_plan_spread(&pl, (int32_t)partitions, &fullest);
        printf("fits=%s partitions=%ld needed=%d messages=%zu bytes=%" PRIu64
               " fullest_partition=%d fullest_bytes=%" PRIu64
               " usable_bytes=%" PRIu64 " cap_bytes=%ld\n",
               fullest_bytes <= usable ? "yes" : "no", partitions, needed,
               pl.cnt, pl.total_bytes, fullest, fullest_bytes, usable,
               KD_PARTITION_CAP_BYTES);
        rc = fullest_bytes <= usable ? 0 : 1;
    } else {
        printf("needed=%d messages=%zu bytes=%" PRIu64 " usable_bytes=%" PRIu64
               " cap_bytes=%ld\n",
               needed, pl.cnt, pl.total_bytes, usable, KD_PARTITION_CAP_BYTES);
        rc = 0;
    }
out:
    free(line);
    free(pl.msgs);
    free(pl.keys);
    free(pl.per_part);
    if (in != stdin) {
        fclose(in);
    }
    return rc;
}
