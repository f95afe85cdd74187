/*
 * The `rill` command: dispatches to the command groups in cli/. The server (`rill serve`)
 * and the client commands arrive with their subsystems. Main thread; not a hot path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rill/rill.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: rill <command> [arguments]\n"
		"\n"
		"commands:\n"
		"  version                                print the version of rill and of its "
		"formats\n"
		"  log verify DIR                         check every segment of every partition "
		"under DIR;\n"
		"                                         exit 0 only if all verify (a torn tail "
		"is reported,\n"
		"                                         not an error)\n"
		"  log dump DIR [--from OFFSET] [--limit N]\n"
		"                                         print a partition's records as JSON "
		"lines\n"
		"  bench log --dir DIR [--record-bytes N] [--seconds S] [--batch-bytes B]\n"
		"            [--durability group|none] [--rate EVENTS_PER_S] [--keep] [--json]\n"
		"                                         append to a log in a new folder under "
		"DIR and\n"
		"                                         print throughput and append-to-durable "
		"latency\n"
		"                                         as JSON (open loop with --rate)\n"
		"  bench engine [--shards N] [--events M] [--record-bytes B] [--rate R]\n"
		"               [--durability none|group] [--poll busy|adaptive] [--dir DIR] "
		"[--keep]\n"
		"               [--baseline] [--json]    the engine in process: events/s and "
		"publish →\n"
		"                                         applied / durable latency as JSON "
		"(open loop\n"
		"                                         with --rate; --baseline: the machine's "
		"own\n"
		"                                         lateness on that schedule, no engine)\n"
		"  schema check FILE...                   parse schema definitions and print "
		"their\n"
		"                                         layouts as JSON lines\n"
		"  schema encode --file SCHEMA.json       JSON lines on stdin to payloads in "
		"hex\n"
		"  schema decode --file SCHEMA.json       payloads in hex on stdin to JSON "
		"lines\n"
		"  help                                   print this text\n"
		"\n"
		"The server and the client commands are not built yet; scripts/run.sh runs the\n"
		"micro-benchmarks meanwhile.\n");
}

int cli_parse_u64(const char *text, uint64_t *out)
{
	if (text == NULL || *text < '0' || *text > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

static int cli_remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path) == 0 ? 0 : -errno;
}

int cli_remove_tree(const char *dir)
{
	/* Depth first (children before their folder), without following symbolic links. */
	return nftw(dir, cli_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int cli_usage_error(const char *command, const char *message)
{
	fprintf(stderr, "rill: %s: %s\n", command, message);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("rill %s (record format %u, log format 1)\n", rill_version(),
		       RILL_RECORD_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "log") == 0)
		return cli_log(argc - 2, argv + 2);
	if (strcmp(cmd, "schema") == 0)
		return cli_schema(argc - 2, argv + 2);
	if (strcmp(cmd, "bench") == 0 && argc > 2 && strcmp(argv[2], "log") == 0)
		return cli_bench_log(argc - 3, argv + 3);
	if (strcmp(cmd, "bench") == 0 && argc > 2 && strcmp(argv[2], "engine") == 0)
		return cli_bench_engine(argc - 3, argv + 3);
	fprintf(stderr, "rill: unknown command '%s' (try 'rill help')\n", cmd);
	return 2;
}
