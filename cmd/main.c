/*
 * main.c: the userpipe binary's entry point.  It dispatches to one
 * subcommand; each lives in its own cmd/<name>.c and wires the stages it
 * needs, so `userpipe transform` runs with no Kafka and no HTTP.
 */
#include "commands.h"
#include "config.h"
#include "../core/core.h"
#include "../core/kafka.h"
#include "../core/version.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs(
        "usage: userpipe <command> [options]\n"
        "\n"
        "userpipe moves Moesif user-update events from Kafka to Moesif's\n"
        "POST /v1/users/batch, rewriting dotted metadata keys and enforcing\n"
        "one JSON type per metadata key on the way.\n"
        "\n"
        "commands:\n"
        "  run         the pipeline: Kafka -> transform -> Moesif, rejects to\n"
        "              the dead-letter topic (-c FILE)\n"
        "  transform   the transform alone: NDJSON events on stdin, accepted\n"
        "              events on stdout, rejects as NDJSON to a file\n"
        "  schema      show, export or import the shared metadata schema\n"
        "              (the schema topic; -c FILE)\n"
        "  dlq         the dead-letter topics: stats, redrive (-c FILE)\n"
        "  config-reference\n"
        "              every configuration key of `run`, as a Markdown table\n"
        "\n"
        "`userpipe <command> --help` documents each command.\n"
        "options: --help, --version\n",
        f);
}

int main(int argc, char **argv)
{
    /* before any command reads a secret: no core file, no ptrace by the
     * same user (debug.core_dumps turns it back on; README "Secrets") */
    config_dumpable(0);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("userpipe %s (librdkafka %s)\n", USERPIPE_VERSION,
               core_kafka_version());
        return 0;
    }
    if (strcmp(argv[1], "transform") == 0) {
        return cmd_transform(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "run") == 0) {
        return cmd_run(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "dlq") == 0) {
        return cmd_dlq(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "schema") == 0) {
        return cmd_schema(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "config-reference") == 0) {
        return cmd_config_reference(argc - 1, argv + 1);
    }
    fprintf(stderr,
            "userpipe: unknown command '%s'; run 'userpipe --help' for the "
            "list\n",
            argv[1]);
    return 2;
}
