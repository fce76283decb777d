/*
 * commands.h: the subcommands of the userpipe binary.  Each takes the
 * arguments after its name (argv[0] is the command name) and returns the
 * process exit status.  main.c only dispatches.
 */
#ifndef CORE_COMMANDS_H
#define CORE_COMMANDS_H

int cmd_transform(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_config_reference(int argc, char **argv);

#endif
