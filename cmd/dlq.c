/*
 * dlq.c: the dead-letter topics from the command line.
 *   userpipe dlq stats   -c FILE            counts by code, source topic, age
 *   userpipe dlq redrive -c FILE [--code CODE]... [--since TIME] [--dry-run]
 * A redrive produces the chosen records, byte for byte with their original
 * key, back to their source topic, so that after the schema or the data was
 * fixed they flow again.  It keeps its own consumer group
 * (<kafka.group.id>.redrive), so a record is redriven once.  --dry-run runs
 * them through the transform against the shared schema as it is now and
 * says how many would pass, without producing or committing anything.
 *
 * A record whose value was cut to fit the dead-letter topic (header
 * userpipe.value.truncated=1, sink/dlq.c) holds only a prefix of its
 * event: it is never redriven nor tried by a dry run.  Each is named
 * (source topic, partition, offset, original size: the whole event is
 * there while the source's retention lasts) and counted apart.
 */
/* strptime */
#define _XOPEN_SOURCE 700

#include "commands.h"
#include "config.h"
#include "dlq_read.h"
#include "../core/core.h"
#include "../schemas/schema.h"
#include "../sink/sink.h"
#include "../transform/transform.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CODES 16
#define MAX_TOPICS 64

struct dlq_run {
    const char *codes[MAX_CODES];
    size_t ncodes;
    int64_t since_ms; /* 0: no bound */
    int dry_run;
    int64_t now_ms;
    struct transform *tf;
    /* stats */
    uint64_t total, selected;
    uint64_t by_code[CORE_REJECT__COUNT + 1]; /* last: unknown codes */
    char *topics[MAX_TOPICS];
    uint64_t by_topic[MAX_TOPICS];
    size_t ntopics;
    uint64_t by_age[4]; /* <1h, <1d, <7d, older */
    uint64_t pass, still[CORE_REJECT__COUNT];
    uint64_t truncated; /* chosen, cut to fit: left */
    int redrive;        /* names each record left (a dry run too) */
};

static void usage(FILE *f)
{
    fputs("usage: userpipe dlq stats   -c FILE [-X key=value]...\n"
          "       userpipe dlq redrive -c FILE [-X key=value]... [--code "
          "CODE]...\n"
          "                            [--since TIME] [--dry-run]\n"
          "\n"
          "The dead-letter topics: dlq.topic, or <source topic>.dlq for each "
          "of\n"
          "source.topics.\n"
          "  stats     counts of records by reject code, source topic and age\n"
          "  redrive   produces the chosen records back to their source "
          "topic, with\n"
          "            their original key and value byte for byte; its own "
          "consumer\n"
          "            group (<kafka.group.id>.redrive) commits what it "
          "handled, so a\n"
          "            record is redriven once\n"
          "options of redrive:\n"
          "  --code CODE   only records of this reject code (repeatable)\n"
          "  --since TIME  only records dead-lettered at or after TIME: an "
          "ISO 8601\n"
          "                date-time (2024-05-01T00:00:00Z) or an age "
          "(30m, 24h, 7d)\n"
          "  --dry-run     run the chosen records through the transform "
          "against the\n"
          "                shared schema as it is now and say how many "
          "would pass;\n"
          "                nothing is produced or committed\n"
          "exit status: 0 done, 1 an error, 2 bad usage or configuration.\n",
          f);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "24h", "30m", "7d", "90s" or an ISO 8601 UTC date-time; -1 if neither. */
static int64_t parse_since(const char *s, int64_t now)
{
    char *end;
    long long n = strtoll(s, &end, 10);
    struct tm tm;
    const char *rest;

    if (end != s && n >= 0 && end[0] != '\0' && end[1] == '\0') {
        switch (end[0]) {
        case 's':
            return now - n * 1000;
        case 'm':
            return now - n * 60000;
        case 'h':
            return now - n * 3600000;
        case 'd':
            return now - n * 86400000;
        }
    }
    memset(&tm, 0, sizeof(tm));
    rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL) {
        rest = strptime(s, "%Y-%m-%d", &tm);
    }
    if (rest == NULL || (rest[0] != '\0' && strcmp(rest, "Z") != 0)) {
        return -1;
    }
    return (int64_t)timegm(&tm) * 1000;
}

static int chosen(const struct dlq_run *d, const struct sink_dlq_record *rec,
                  int64_t ts)
{
    int ok = d->ncodes == 0;
    for (size_t i = 0; i < d->ncodes; i++) {
        ok |= strcmp(d->codes[i], rec->code) == 0;
    }
    return ok && (d->since_ms == 0 || ts >= d->since_ms);
}

static int on_record(void *opaque, const struct sink_dlq_record *rec,
                     int64_t ts)
{
    struct dlq_run *d = opaque;
    enum core_reject_code c =
        core_reject_from_name(rec->code, strlen(rec->code));
    int64_t age = d->now_ms - ts;
    size_t t;

    d->total++;
    d->by_code[c == CORE_REJECT_NONE ? CORE_REJECT__COUNT : c]++;
    for (t = 0; t < d->ntopics; t++) {
        if (strcmp(d->topics[t], rec->source_topic) == 0) {
            break;
        }
    }
    if (t == d->ntopics && t < MAX_TOPICS) {
        d->topics[d->ntopics++] = core_strdup(rec->source_topic);
    }
    if (t < MAX_TOPICS) {
        d->by_topic[t]++;
    }
    d->by_age[age < 3600000     ? 0
              : age < 86400000  ? 1
              : age < 604800000 ? 2
                                : 3]++;
    if (!chosen(d, rec, ts)) {
        return 0;
    }
    d->selected++;
    if (rec->truncated) {
        d->truncated++;
        if (d->redrive) {
            fprintf(stderr,
                    "userpipe dlq: left a record cut to fit the dead-letter "
                    "topic (%zu of %zu bytes): its whole event is at %s "
                    "partition %d offset %lld while the topic keeps it\n",
                    rec->len, rec->orig_len, rec->source_topic,
                    (int)rec->source_partition, (long long)rec->source_offset);
        }
        return 0;
    }
    if (d->tf != NULL) {
        const char *out;
        size_t out_len;
        struct core_reject rej;
        if (transform_event(d->tf, rec->value, rec->len, &out, &out_len,
                            &rej) == CORE_OK) {
            d->pass++;
        } else {
            d->still[rej.code]++;
        }
        return 0;
    }
    return 1;
}

int cmd_dlq(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"code", required_argument, NULL, 'C'},
        {"since", required_argument, NULL, 'S'},
        {"dry-run", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct config cfg;
    struct dlq_run d;
    struct dlq_read_config rcfg;
    struct schema *sch = NULL;
    struct schema_claims *sc = NULL;
    const char *path = NULL, *verb;
    const char **overrides = NULL;
    const char *topics[MAX_TOPICS];
    char *names[MAX_TOPICS];
    size_t ntopics = 0, noverrides = 0;
    char errstr[768], group[300];
    uint64_t redriven = 0;
    int status = 0, c, redrive;
    enum core_err rc;

    memset(&d, 0, sizeof(d));
    memset(names, 0, sizeof(names));
    config_init(&cfg);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        status = argc < 2 ? 2 : 0;
        goto out;
    }
    verb = argv[1];
    redrive = strcmp(verb, "redrive") == 0;
    d.redrive = redrive;
    if (!redrive && strcmp(verb, "stats") != 0) {
        fprintf(stderr,
                "userpipe dlq: unknown verb '%s'; see 'userpipe dlq "
                "--help'\n",
                verb);
        status = 2;
        goto out;
    }
    d.now_ms = now_ms();
    opterr = 0;
    optind = 2;
    while ((c = getopt_long(argc, argv, "c:X:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'X':
            overrides =
                core_realloc(overrides, (noverrides + 1) * sizeof(char *));
            overrides[noverrides++] = optarg;
            break;
        case 'C':
            if (core_reject_from_name(optarg, strlen(optarg)) ==
                    CORE_REJECT_NONE ||
                d.ncodes == MAX_CODES) {
                fprintf(stderr,
                        "userpipe dlq: --code takes a reject code "
                        "(invalid_json, type_conflict, ...), not "
                        "'%s'\n",
                        optarg);
                status = 2;
                goto out;
            }
            d.codes[d.ncodes++] = optarg;
            break;
        case 'S':
            d.since_ms = parse_since(optarg, d.now_ms);
            if (d.since_ms < 0) {
                fprintf(stderr,
                        "userpipe dlq: --since takes an ISO 8601 date-time "
                        "(2024-05-01T00:00:00Z) or an age (30m, 24h, 7d), "
                        "not '%s'\n",
                        optarg);
                status = 2;
                goto out;
            }
            break;
        case 'n':
            d.dry_run = 1;
            break;
        case 'h':
            usage(stdout);
            goto out;
        default:
            fprintf(stderr,
                    "userpipe dlq: unknown or incomplete option "
                    "'%s'\n",
                    argv[optind - 1]);
            status = 2;
            goto out;
        }
    }
    if (optind < argc || (!redrive && (d.ncodes || d.since_ms || d.dry_run))) {
        fprintf(stderr,
                "userpipe dlq %s: unexpected argument; see "
                "'userpipe dlq --help'\n",
                verb);
        status = 2;
        goto out;
    }
    status =
        config_load_tool(&cfg, "userpipe dlq", path, overrides, noverrides);
    if (status != 0) {
        goto out;
    }
    if (cfg.dlq_topic != NULL) {
        topics[ntopics++] = cfg.dlq_topic;
    } else if (cfg.source_topics != NULL) {
        char *list = core_strdup(cfg.source_topics), *save = NULL, *tok;
        for (tok = strtok_r(list, ", ", &save);
             tok != NULL && ntopics < MAX_TOPICS;
             tok = strtok_r(NULL, ", ", &save)) {
            size_t n = strlen(tok) + 5;
            names[ntopics] = core_malloc(n);
            snprintf(names[ntopics], n, "%s.dlq", tok);
            topics[ntopics] = names[ntopics];
            ntopics++;
        }
        free(list);
    }
    if (ntopics == 0) {
        fprintf(stderr, "userpipe dlq: set dlq.topic or source.topics to "
                        "name the dead-letter topics\n");
        status = 2;
        goto out;
    }
    if (redrive && d.dry_run) {
        /* judged against the shared schema as it is now; new keys are
         * learned locally, nothing is claimed */
        sch = schema_new();
        rc = open_schema(&cfg, sch, &sc, errstr, sizeof(errstr));
        if (rc == CORE_OK) {
            rc = transform_new(&cfg.transform, sch, &d.tf, errstr,
                               sizeof(errstr));
        }
        if (rc != CORE_OK) {
            fprintf(stderr, "userpipe dlq: %s\n", errstr);
            status = rc == CORE_ERR_USAGE ? 2 : 1;
            goto out;
        }
    }
    snprintf(group, sizeof(group), "%s.redrive",
             config_kafka(&cfg, "group.id") ? config_kafka(&cfg, "group.id")
                                            : "userpipe");
    rcfg.kafka_keys = (const char *const *)cfg.kafka_keys;
    rcfg.kafka_values = (const char *const *)cfg.kafka_values;
    rcfg.kafka_count = cfg.kafka_count;
    rcfg.topics = topics;
    rcfg.ntopics = ntopics;
    rcfg.group = redrive && !d.dry_run ? group : NULL;
    rc = dlq_read(&rcfg, on_record, &d, &redriven, errstr, sizeof(errstr));
    if (rc != CORE_OK) {
        fprintf(stderr, "userpipe dlq %s: %s\n", verb, errstr);
        status = rc == CORE_ERR_USAGE ? 2 : 1;
        goto out;
    }
    if (!redrive) {
        printf("%llu dead-letter records in", (unsigned long long)d.total);
        for (size_t i = 0; i < ntopics; i++) {
            printf(" %s", topics[i]);
        }
        printf("\nby code:\n");
        for (int i = 1; i <= CORE_REJECT__COUNT; i++) {
            if (d.by_code[i] > 0) {
                printf("  %-20s %llu\n",
                       i == CORE_REJECT__COUNT
                           ? "(unknown)"
                           : core_reject_name((enum core_reject_code)i),
                       (unsigned long long)d.by_code[i]);
            }
        }
        printf("by source topic:\n");
        for (size_t i = 0; i < d.ntopics; i++) {
            printf("  %-20s %llu\n", d.topics[i],
                   (unsigned long long)d.by_topic[i]);
        }
        printf("by age:\n  %-20s %llu\n  %-20s %llu\n  %-20s %llu\n"
               "  %-20s %llu\n",
               "under 1 hour", (unsigned long long)d.by_age[0],
               "1 hour to 1 day", (unsigned long long)d.by_age[1],
               "1 to 7 days", (unsigned long long)d.by_age[2], "older",
               (unsigned long long)d.by_age[3]);
        printf("cut to fit (not redrivable): %llu\n",
               (unsigned long long)d.truncated);
    } else if (d.dry_run) {
        printf("dry run: %llu of %llu records chosen; %llu would pass now",
               (unsigned long long)d.selected, (unsigned long long)d.total,
               (unsigned long long)d.pass);
        if (d.truncated > 0) {
            printf(", %llu cut to fit (left)", (unsigned long long)d.truncated);
        }
        for (int i = 1; i < CORE_REJECT__COUNT; i++) {
            if (d.still[i] > 0) {
                printf(", %llu still %s", (unsigned long long)d.still[i],
                       core_reject_name((enum core_reject_code)i));
            }
        }
        printf("\n");
    } else {
        printf("redriven %llu of %llu records chosen (%llu read) to their "
               "source topics; group %s committed\n",
               (unsigned long long)redriven, (unsigned long long)d.selected,
               (unsigned long long)d.total, group);
        if (d.truncated > 0) {
            printf(
                "%llu chosen records were cut to fit the dead-letter "
                "topic and cannot be redriven (each named on stderr): produce "
                "them again from their source offsets\n",
                (unsigned long long)d.truncated);
        }
    }
out:
    for (size_t i = 0; i < d.ntopics; i++) {
        free(d.topics[i]);
    }
    for (size_t i = 0; i < MAX_TOPICS; i++) {
        free(names[i]);
    }
    transform_destroy(d.tf);
    schema_claims_destroy(sc);
    schema_destroy(sch);
    config_release(&cfg);
    free(overrides);
    return status;
}
