/*
 * The `rill` command: dispatches to the command groups in cli/: offline tools (log,
 * schema, bench) and the client commands of a running server. Main thread; not a hot path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rill/rill.h"

static void usage(FILE *out)
{
	/* Three literals: each within the 4,095 bytes C guarantees. */
	fprintf(out,
		"usage: rill <command> [arguments]         (every command takes --help)\n"
		"\n"
		"commands:\n"
		"  version                                print the version of rill and of its "
		"formats\n"
		"  serve [--config FILE] [--data DIR] [--listen HOST:PORT] [--shards N]\n"
		"          [--cpus LIST] [--poll adaptive|busy] [--sqpoll]\n"
		"          [--dpdk \"EAL ARGS\" [--dpdk-port N] [--dpdk-udp-port P] "
		"[--dpdk-acks]]\n"
		"                                         serve the engine over TCP (and UDP\n"
		"                                         through DPDK); --help lists the config "
		"keys\n"
		"  bench produce [--connect HOST:PORT] [--topic T] [--partitions N]\n"
		"                [--durability none|group] [--connections C] [--pipeline P]\n"
		"                [--lockstep] [--batch N] [--record-bytes B] [--seconds S]\n"
		"                [--rate R] [--acks none|applied|durable] [--threads T] [--json]\n"
		"                                         load a running server; JSON figures\n"
		"  bench dpdk [--seconds S] [--record-bytes B] [--batch N] [--shards N] [--rate "
		"R]\n"
		"             [--poll busy|adaptive] [--eal \"ARGS\"] [--dir DIR] [--json]\n"
		"                                         DPDK against kernel UDP ingress, in\n"
		"                                         process; JSON figures\n");
	fprintf(out,
		"  log verify DIR [--repair]              check every segment of every partition "
		"under DIR;\n"
		"                                         exit 0 only if all verify (a torn tail "
		"is reported,\n"
		"                                         not an error); --repair cuts a damaged "
		"log at its\n"
		"                                         first damage (records after it are lost; "
		"server stopped)\n"
		"  log dump DIR [--from OFFSET] [--limit N]\n"
		"                                         print a partition's records as JSON "
		"lines\n"
		"  bench log --dir DIR [--record-bytes N] [--seconds S] [--batch-bytes B]\n"
		"            [--durability group|none] [--rate EVENTS_PER_S] [--segment-bytes N]\n"
		"            [--batch-delay-us U] [--io direct|buffered] [--fixed-batches]\n"
		"            [--keep] [--json]\n"
		"                                         append to a log in a new folder under "
		"DIR and\n"
		"                                         print throughput and append-to-durable "
		"latency\n"
		"                                         as JSON (open loop with --rate)\n"
		"  bench engine [--shards N] [--events M] [--record-bytes B] [--rate R]\n"
		"               [--durability none|group] [--poll busy|adaptive] [--batch-bytes "
		"B]\n"
		"               [--batch-delay-us U] [--dir DIR] [--keep] [--baseline] [--json]\n"
		"                                         the engine in process: events/s and "
		"publish →\n"
		"                                         applied / durable latency as JSON (open "
		"loop\n"
		"                                         with --rate; --baseline: the machine's "
		"own\n"
		"                                         lateness on that schedule, no engine)\n"
		"  schema check FILE...                   parse schema definitions and print "
		"their\n"
		"                                         layouts as JSON lines\n"
		"  schema encode --file SCHEMA.json       JSON lines on stdin to payloads in hex\n"
		"  schema decode --file SCHEMA.json       payloads in hex on stdin to JSON "
		"lines\n");
	fprintf(out,
		"\n"
		"client commands (each takes --connect HOST:PORT, default 127.0.0.1:7400; IPv6 as\n"
		"[ADDR]:PORT):\n"
		"  topic create --name T --partitions N [--durability none|group]\n"
		"               [--batch-delay-us U] [--retention-bytes N] [--retention-age-s S]\n"
		"               [--segment-bytes N] [--schema SCHEMA.json]\n"
		"                                         create a topic (--schema: register its "
		"event\n"
		"                                         type first); prints the answer\n"
		"  topic list                             every topic and its settings, a JSON "
		"line each\n"
		"  topic info --name T                    a topic's settings and each partition's "
		"first,\n"
		"                                         next and durable offsets, one JSON "
		"object\n"
		"  schema register --file SCHEMA.json [--compat MODE]\n"
		"                                         register a schema version\n"
		"  schema list                            every version of every event type, a "
		"JSON line\n"
		"                                         each: type, version, type_id, fields\n"
		"  projection create --name P --topic T --type TYPE [--version V]\n"
		"             --kind count|sum|min|max|last|avg|window_count|window_sum\n"
		"             [--field F] [--window SECONDS]\n"
		"                                         create a built-in projection\n"
		"  projection list                        every projection, a JSON line each: "
		"name, topic,\n"
		"                                         type, version, kind, field, window_ns\n"
		"  group delete --group G                 forget a consumer group and its "
		"positions\n"
		"  group show --group G --topic T         a group's committed offset in each "
		"partition\n"
		"                                         beside the partition's next offset "
		"and the lag,\n"
		"                                         one JSON object\n"
		"  produce --topic T [--acks none|applied|durable] [--batch N]\n"
		"                                         JSON lines on stdin to events\n"
		"                                         "
		"({\"key\",\"type\",\"version\"?,\"data\",...});\n"
		"                                         prints "
		"{\"key\",\"partition\",\"offset\"} per event\n"
		"                                         in input order; stops at a malformed "
		"line\n"
		"  consume --topic T [--partition P] [--from earliest|latest|OFFSET|@UNIX_NS]\n"
		"          [--until-end] [--group G] [--limit N] [--keepalive S]\n"
		"                                         events as JSON lines, payloads decoded\n"
		"  query --projection P --key K [--as-of @UNIX_NS|OFFSET] [--after PART:OFFSET]\n"
		"                                         a projection's value for a key as JSON "
		"(\"value\":\n"
		"                                         the f64 for float fields, else the i64, "
		"with\n"
		"                                         \"u64\" too when it differs)\n"
		"  stat [--pretty]                        the server's statistics as JSON\n"
		"  ping [--count N]                       round trips, each one's latency in µs\n"
		"  help                                   print this text\n"
		"\n"
		"Errors name their input line; a usage error exits 2, any other failure 1.\n");
}

void cli_cpu_ticks(struct cli_cpu_ticks *out)
{
	*out = (struct cli_cpu_ticks){0};
	FILE *f = fopen("/proc/stat", "r");
	if (f == NULL)
		return;
	/* "cpu  user nice system idle iowait irq softirq steal ...": one line of numbers in
	 * the kernel's fixed format (proc(5)); there is no library for it to use. */
	unsigned long long v[8];
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (int i = 0; i < 8; i++)
			out->total += v[i];
		out->steal = v[7];
	}
	fclose(f);
}

double cli_cpu_steal_pct(const struct cli_cpu_ticks *a, const struct cli_cpu_ticks *b)
{
	if (a->total == 0 || b->total < a->total || b->steal < a->steal)
		return -1.0;
	if (b->total == a->total)
		return 0.0; /* shorter than a tick: nothing measurable was stolen */
	return 100.0 * (double)(b->steal - a->steal) / (double)(b->total - a->total);
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

/* rill bench produce|dpdk|log|engine ...; returns the process exit status. */
static int cli_bench(int argc, char **argv)
{
	const char *sub = argc > 0 ? argv[0] : "";
	if (strcmp(sub, "produce") == 0)
		return cli_bench_produce(argc - 1, argv + 1);
	if (strcmp(sub, "dpdk") == 0)
		return cli_bench_dpdk(argc - 1, argv + 1);
	if (strcmp(sub, "log") == 0)
		return cli_bench_log(argc - 1, argv + 1);
	if (strcmp(sub, "engine") == 0)
		return cli_bench_engine(argc - 1, argv + 1);
	bool help = strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0;
	if (argc > 0 && !help) {
		fprintf(stderr,
			"rill: bench: unknown subcommand '%s' (produce, dpdk, log, engine)\n", sub);
		return 2;
	}
	fputs("usage: rill bench produce|dpdk|log|engine [options]   (each takes --help)\n",
	      help ? stdout : stderr);
	return help ? 0 : 2;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	/* A write past the file size limit (ulimit -f, systemd's LimitFSIZE=) fails with EFBIG,
	 * which every command reports with the file it was writing; left at its default,
	 * SIGXFSZ would end `rill bench log` or `rill log verify --repair` with no word. */
	signal(SIGXFSZ, SIG_IGN);
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
	if (strcmp(cmd, "bench") == 0)
		return cli_bench(argc - 2, argv + 2);
	if (strcmp(cmd, "serve") == 0)
		return cli_serve(argc, argv);
	if (strcmp(cmd, "log") == 0)
		return cli_log(argc - 2, argv + 2);
	if (strcmp(cmd, "schema") == 0)
		return cli_schema(argc - 2, argv + 2);
	if (strcmp(cmd, "topic") == 0)
		return cli_topic(argc - 2, argv + 2);
	if (strcmp(cmd, "projection") == 0)
		return cli_projection(argc - 2, argv + 2);
	if (strcmp(cmd, "group") == 0)
		return cli_group(argc - 2, argv + 2);
	if (strcmp(cmd, "produce") == 0)
		return cli_produce(argc - 2, argv + 2);
	if (strcmp(cmd, "consume") == 0)
		return cli_consume(argc - 2, argv + 2);
	if (strcmp(cmd, "query") == 0)
		return cli_query(argc - 2, argv + 2);
	if (strcmp(cmd, "stat") == 0)
		return cli_stat(argc - 2, argv + 2);
	if (strcmp(cmd, "ping") == 0)
		return cli_ping(argc - 2, argv + 2);
	fprintf(stderr, "rill: unknown command '%s' (try 'rill help')\n", cmd);
	return 2;
}
