/*
 * schema.c: the shared metadata schema from the command line, and the
 * set-up `userpipe run` shares with it (open_schema):
 *   userpipe schema show   -c FILE   key, type, who claimed it and when
 *   userpipe schema export -c FILE   the seed-file format, on stdout
 *   userpipe schema import -c FILE SEED
 *                                    publishes SEED's types as claims; a
 *                                    key claimed with another type is
 *                                    reported, never overwritten
 * They read the schema topic (schema.topic) with the same -c FILE and -X
 * overrides as `run`; source.topics and the application id are not needed.
 */
#include "commands.h"
#include "config.h"
#include "../core/core.h"
#include "../schemas/schema.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long start-up may take to see the seed's claims come back (the
 * read of the topic itself is bounded by schema.sync_timeout_ms of no
 * progress). */
#define SCHEMA_SYNC_MS 30000

/* Waits until this instance's claims are read back. */
static enum core_err settle_claims(struct schema_claims *sc, char *errstr,
                                   size_t errstr_size)
{
    int64_t deadline = core_now_ms() + SCHEMA_SYNC_MS;

    while (schema_claims_in_flight(sc) > 0) {
        if (schema_claims_poll(sc) != CORE_OK) {
            snprintf(errstr, errstr_size, "%s", schema_claims_error(sc));
            return CORE_ERR_STOP;
        }
        if (core_now_ms() > deadline) {
            snprintf(errstr, errstr_size,
                     "schema claims were not read back from the schema "
                     "topic within %d ms",
                     SCHEMA_SYNC_MS);
            return CORE_ERR_RETRY;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return CORE_OK;
}

enum core_err open_schema(const struct config *cfg, struct schema *sch,
                          struct schema_claims **out, char *errstr,
                          size_t errstr_size)
{
    struct schema_claims_config ccfg;
    struct schema_claims *sc = NULL;
    struct schema *seed = NULL;
    char instance[300];
    enum core_err rc;

    *out = NULL;
    if (cfg->instance_id != NULL) {
        snprintf(instance, sizeof(instance), "%s", cfg->instance_id);
    } else {
        char host[256] = "localhost";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(instance, sizeof(instance), "%s:%ld", host, (long)getpid());
    }
    ccfg.kafka_keys = (const char *const *)cfg->kafka_keys;
    ccfg.kafka_values = (const char *const *)cfg->kafka_values;
    ccfg.kafka_count = cfg->kafka_count;
    ccfg.topic = cfg->schema_topic;
    ccfg.instance = instance;
    ccfg.scope = cfg->transform.scope == TRANSFORM_SCOPE_PATH ? "path" : "name";
    ccfg.max_keys = cfg->transform.max_schema_keys;
    rc = schema_claims_new(&ccfg, sch, &sc, errstr, errstr_size);
    if (rc == CORE_OK) {
        rc = schema_claims_sync(sc, (int)cfg->sync_timeout_ms, errstr,
                                errstr_size);
    }
    if (rc == CORE_OK && cfg->schema_file != NULL) {
        /* the seed's types are claimed like any other, so the topic's
         * order decides between a seed and a type learned meanwhile */
        seed = schema_new();
        rc = schema_load_file(seed, cfg->schema_file, errstr, errstr_size);
        for (size_t i = 0; rc == CORE_OK && i < schema_count(seed); i++) {
            const char *k;
            size_t len;
            enum schema_type t, had;
            schema_entry(seed, i, &k, &len, &t);
            had = schema_get(sch, k, len, core_hash64(k, len));
            if (had != SCHEMA_TYPE_NONE && had != t) {
                core_log(CORE_LOG_WARN, "schema",
                         "msg=\"seed type ignored: the schema topic claimed "
                         "the key first\" key=\"%.*s\" seed=%s schema=%s",
                         (int)len, k, schema_type_name(t),
                         schema_type_name(had));
                continue;
            }
            schema_claims_claim(sc, k, len, t);
        }
        if (rc == CORE_OK) {
            rc = settle_claims(sc, errstr, errstr_size);
        }
    }
    schema_destroy(seed);
    if (rc != CORE_OK) {
        schema_claims_destroy(sc);
        return rc;
    }
    core_log(CORE_LOG_INFO, "schema",
             "msg=\"shared schema read\" topic=%s keys=%zu instance=\"%s\"",
             cfg->schema_topic, schema_count(sch), instance);
    *out = sc;
    return CORE_OK;
}

static void usage(FILE *f)
{
    fputs("usage: userpipe schema show   -c FILE [-X key=value]...\n"
          "       userpipe schema export -c FILE [-X key=value]...\n"
          "       userpipe schema import -c FILE [-X key=value]... SEED\n"
          "\n"
          "The shared metadata schema, as the schema topic (schema.topic) "
          "holds it:\n"
          "  show     one line a key: key, type, who claimed it, when\n"
          "  export   the seed-file format ({\"key\":\"type\",...}) on "
          "stdout\n"
          "  import   publishes SEED's types as claims; a key already "
          "claimed with\n"
          "           another type is reported on stderr, not overwritten\n"
          "\n"
          "exit status: 0 done, 1 an error or (import) a key of SEED "
          "conflicts,\n"
          "2 bad usage or configuration.\n",
          f);
}

int cmd_schema(int argc, char **argv)
{
    struct config cfg;
    struct schema *sch = schema_new();
    struct schema_claims *sc = NULL;
    const char *path = NULL, *verb;
    const char **overrides = NULL;
    size_t noverrides = 0;
    char errstr[768];
    int status = 0, c;
    enum core_err rc;

    config_init(&cfg);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        status = argc < 2 ? 2 : 0;
        goto out;
    }
    verb = argv[1];
    if (strcmp(verb, "show") != 0 && strcmp(verb, "export") != 0 &&
        strcmp(verb, "import") != 0) {
        fprintf(stderr,
                "userpipe schema: unknown verb '%s'; see 'userpipe "
                "schema --help'\n",
                verb);
        status = 2;
        goto out;
    }
    opterr = 0;
    optind = 2;
    while ((c = getopt(argc, argv, "c:X:h")) != -1) {
        if (c == 'c') {
            path = optarg;
        } else if (c == 'X') {
            overrides =
                core_realloc(overrides, (noverrides + 1) * sizeof(char *));
            overrides[noverrides++] = optarg;
        } else if (c == 'h') {
            usage(stdout);
            goto out;
        } else {
            fprintf(stderr,
                    "userpipe schema: unknown or incomplete option "
                    "'%s'\n",
                    argv[optind - 1]);
            status = 2;
            goto out;
        }
    }
    if (argc - optind != (strcmp(verb, "import") == 0 ? 1 : 0)) {
        fprintf(stderr, "userpipe schema %s: %s\n", verb,
                strcmp(verb, "import") == 0 ? "takes one seed file"
                                            : "takes no argument");
        status = 2;
        goto out;
    }
    status =
        config_load_tool(&cfg, "userpipe schema", path, overrides, noverrides);
    if (status != 0) {
        goto out;
    }
    free(cfg.schema_file); /* `schema` never imports the run's seed */
    cfg.schema_file = NULL;
    rc = open_schema(&cfg, sch, &sc, errstr, sizeof(errstr));
    if (rc != CORE_OK) {
        fprintf(stderr, "userpipe schema: %s\n", errstr);
        status = rc == CORE_ERR_USAGE ? 2 : 1;
        goto out;
    }
    if (strcmp(verb, "show") == 0) {
        printf("%-40s %-8s %-30s %s\n", "KEY", "TYPE", "CLAIMED BY", "AT");
        for (size_t i = 0; i < schema_count(sch); i++) {
            const char *k, *by, *at;
            size_t len;
            enum schema_type t;
            schema_entry(sch, i, &k, &len, &t);
            schema_claims_origin(sc, i, &by, &at);
            printf("%-40.*s %-8s %-30s %s\n", (int)len, k, schema_type_name(t),
                   by, at);
        }
    } else if (strcmp(verb, "export") == 0) {
        schema_write(sch, stdout);
    } else {
        struct schema *seed = schema_new();
        size_t claimed = 0, known = 0, conflicts = 0;
        rc = schema_load_file(seed, argv[optind], errstr, sizeof(errstr));
        if (rc != CORE_OK) {
            fprintf(stderr, "userpipe schema import: %s\n", errstr);
            status = rc == CORE_ERR_IO ? 1 : 2;
            schema_destroy(seed);
            goto out;
        }
        for (size_t i = 0; i < schema_count(seed); i++) {
            const char *k;
            size_t len;
            enum schema_type t;
            schema_entry(seed, i, &k, &len, &t);
            if (schema_get(sch, k, len, core_hash64(k, len)) ==
                SCHEMA_TYPE_NONE) {
                schema_claims_claim(sc, k, len, t);
                claimed++;
            }
        }
        rc = settle_claims(sc, errstr, sizeof(errstr));
        if (rc != CORE_OK) {
            fprintf(stderr, "userpipe schema import: %s\n", errstr);
            status = 1;
        }
        /* judged after our claims came back: a competitor may have won */
        for (size_t i = 0; rc == CORE_OK && i < schema_count(seed); i++) {
            const char *k;
            size_t len;
            enum schema_type t, had;
            schema_entry(seed, i, &k, &len, &t);
            had = schema_get(sch, k, len, core_hash64(k, len));
            if (had != t) {
                fprintf(stderr,
                        "conflict: key \"%.*s\" is %s in %s but already %s "
                        "in the schema; not overwritten\n",
                        (int)len, k, schema_type_name(t), argv[optind],
                        schema_type_name(had));
                conflicts++;
            } else {
                known++;
            }
        }
        if (rc == CORE_OK) {
            printf("imported %zu keys of %zu (%zu already had that type), "
                   "%zu conflicts\n",
                   claimed > conflicts ? claimed - conflicts : 0,
                   schema_count(seed), known > claimed ? known - claimed : 0,
                   conflicts);
            status = conflicts > 0 ? 1 : 0;
        }
        schema_destroy(seed);
    }
    if (fflush(stdout) != 0) {
        status = 1;
    }
out:
    schema_claims_destroy(sc);
    schema_destroy(sch);
    config_release(&cfg);
    free(overrides);
    return status;
}
