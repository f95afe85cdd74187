/* The `rill` command's pieces: one function per command group, shared argument helpers. */
#ifndef RILL_CLI_H
#define RILL_CLI_H

#include <stdint.h>

/* rill log verify|dump ...; returns the process exit status. */
int cli_log(int argc, char **argv);

/* rill schema check|encode|decode ...; returns the process exit status. */
int cli_schema(int argc, char **argv);

/* rill bench log ...; returns the process exit status. */
int cli_bench_log(int argc, char **argv);

/* rill bench engine ...; returns the process exit status. */
int cli_bench_engine(int argc, char **argv);

/* Remove the directory tree @dir (a benchmark's scratch folder). 0 or -errno. */
int cli_remove_tree(const char *dir);

/* A whole decimal unsigned number; 0 or -EINVAL. */
int cli_parse_u64(const char *text, uint64_t *out);

/* Print "rill: COMMAND: MESSAGE" and return exit status 2 (bad usage). */
int cli_usage_error(const char *command, const char *message);

#endif /* RILL_CLI_H */
