/*
 * commands.h: the subcommands of the userpipe binary.  Each takes the
 * arguments after its name (argv[0] is the command name) and returns the
 * process exit status.  main.c only dispatches.
 */
#ifndef CMD_COMMANDS_H
#define CMD_COMMANDS_H

int cmd_transform(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_config_reference(int argc, char **argv);
int cmd_schema(int argc, char **argv);
int cmd_dlq(int argc, char **argv);

#include "config.h"
#include "../schemas/schema.h"

/*
 * Connects to the shared schema (schema.topic), reads it to its end into
 * sch and imports cfg's seed file (schema.file) as claims.  Used by `run`
 * and `schema`.  read_only (schema show and export, a dry run): nothing is
 * ever claimed, the seed file is not imported, and the principal needs no
 * Write on the topic (schema_claims_config.read_only).  Returns CORE_OK
 * with *out set, or an error with errstr.
 */
CORE_WUR enum core_err open_schema(const struct config *cfg, struct schema *sch,
                                   int read_only, struct schema_claims **out,
                                   char *errstr, size_t errstr_size);

#endif
