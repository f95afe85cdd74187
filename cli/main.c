/*
 * The `rill` command. Today it only reports its version and what it can do; the server
 * (`rill serve`), the log tools and the client commands arrive with their subsystems.
 * Runs on the main thread; not on any hot path.
 */
#include <stdio.h>
#include <string.h>

#include "rill/rill.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: rill <command>\n"
		     "\n"
		     "commands:\n"
		     "  version     print the version of rill and of its record format\n"
		     "  help        print this text\n"
		     "\n"
		     "The server, log tools and client commands are not built yet; until then\n"
		     "scripts/run.sh runs the micro-benchmarks "
		     "(build/release/bench/rill-bench-micro).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("rill %s (record format %u)\n", rill_version(), RILL_RECORD_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "rill: unknown command '%s' (try 'rill help')\n", cmd);
	return 2;
}
