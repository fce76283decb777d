/*
 * kafka-dev.c: the development Kafka broker of deploy/dev (issue 3).
 *
 * What lives here: main, which picks one of a few modes, and the usage
 * text.  The modes live in the kafka_dev_*.c files (kafka_dev.h lists
 * them, one job a file):
 *
 *   kafka-dev [--brokers N] [--topic NAME:PARTS]... [--bootstrap-file FILE]
 *             [--control PATH] [--debug]
 *       serve: a librdkafka mock cluster (rdkafka_mock.h) that speaks the
 *       real Kafka protocol on loopback TCP, with consumer groups, offset
 *       commits and idempotent producers; prints the bootstrap servers and
 *       answers fault-control commands on a unix socket until SIGTERM.
 *   kafka-dev ctl PATH COMMAND [ARG]...    send one control command
 *   kafka-dev remote BOOTSTRAP COMMAND [ARG]...
 *       the same commands, run here against any broker (the real Apache
 *       Kafka of deploy/dev/kafka/, issue 13): those a client can do
 *       (topics, create-topic through the Admin API, watermarks, check,
 *       committed, leaders, isr, brokers); the fault injections need the
 *       mock and answer an error
 *   kafka-dev plan [--partitions N] [--bytes B] [FILE]
 *       how many partitions a load needs under the mock's partition cap
 *   kafka-dev keyed [FILE]    NDJSON lines -> "user_id<TAB>line" for kcat -K
 *   kafka-dev --partition-mb-cap    print the per-partition cap in MiB
 *
 * Why it is separate: it is a tool of the dev stack, not part of userpipe.
 * It uses librdkafka only, never core/ nor a stage, so a stage in progress
 * never stops the dev stack from building, and the stages are tested
 * against a broker whose code they do not share.
 *
 * Invariants: signal handlers only set a flag and the control loop wakes
 * at least every 100 ms; every control reply is exactly one line that
 * starts "ok" or "error"; the bootstrap file appears whole (temp file +
 * rename) only once the brokers listen, and is removed on a clean exit.
 */
#include "kafka_dev.h"

#include <stdio.h>
#include <string.h>

void kd_usage(FILE *out)
{
    fprintf(out,
            "usage: kafka-dev [--brokers N] [--topic NAME:PARTITIONS]...\n"
            "                 [--bootstrap-file FILE] [--control PATH] "
            "[--debug]\n"
            "       kafka-dev ctl PATH COMMAND [ARG]...\n"
            "       kafka-dev plan [--partitions N] [--bytes B] [FILE|-]\n"
            "       kafka-dev keyed [FILE|-]\n"
            "       kafka-dev --partition-mb-cap\n"
            "A development Kafka broker (librdkafka mock cluster) on "
            "loopback; see deploy/dev/README.md.\n"
            "It keeps only about %d MiB per partition and silently drops "
            "older data: size topics with `kafka-dev plan`.\n",
            KD_PARTITION_CAP_MIB);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "ctl") == 0) {
        return kd_ctl(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "remote") == 0) {
        return kd_remote(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "plan") == 0) {
        return kd_plan(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "keyed") == 0) {
        return kd_keyed(argc, argv);
    }
    if (argc == 2 && strcmp(argv[1], "--partition-mb-cap") == 0) {
        printf("%d\n", KD_PARTITION_CAP_MIB);
        return 0;
    }
    return kd_serve(argc, argv);
}
