/*
 * `rill log verify DIR [--repair]` and `rill log dump DIR`: offline tools over a log's
 * files, opened read-only through the POSIX backend. verify walks DIR for partition
 * directories (any directory holding segment files) and checks every batch of every
 * segment; with --repair it cuts each damaged log at its first damage (opened for writing:
 * never while a server has it); dump prints one partition's records as JSON lines. Main
 * thread; blocking.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"
#include "engine/log.h"

#define WALK_DEPTH_MAX 8 /* DATA/topics/T/P is 3 below DATA */

/* Whether @dir holds a segment file, by the log's own rule: a folder with only a stray
 * "*.log" (a server's rotated log, say) is no partition, and the walk goes on below it. */
static bool dir_has_segments(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return false;
	bool found = false;
	struct dirent *e;
	while (!found && (e = readdir(d)) != NULL)
		found = rill_log_segment_name_parse(e->d_name, NULL);
	closedir(d);
	return found;
}

/*
 * Open the log in @dir read-only through a POSIX backend of its own. Returns 0, or the
 * error with report->message saying where and why.
 */
static int open_read_only(const char *dir, struct rill_io **io, struct rill_log **log,
			  struct rill_log_recovery *report)
{
	memset(report, 0, sizeof(*report));
	int rc = rill_io_posix_create(io);
	if (rc != 0)
		return rc;
	struct rill_log_config c;
	rill_log_config_default(&c);
	c.read_only = true;
	rc = rill_log_open(log, *io, dir, &c, report);
	if (rc != 0) {
		rill_io_destroy(*io);
		*io = NULL;
	}
	return rc;
}

struct verify_totals {
	bool repair; /* --repair: cut damaged logs at their first damage */
	uint32_t partitions, damaged, repaired;
	uint32_t unreadable; /* folders the walk could not read: what they hold is unknown */
	uint64_t records, bytes, torn_bytes;
};

/*
 * --repair: open the damaged log in @dir for writing with config.repair, which cuts it at
 * its first damage (and removes the segments after a damaged sealed one), then close it.
 * Fails with -EBUSY while a server has the log open. 0 or the error, said on stdout.
 */
static int repair_partition(const char *dir)
{
	struct rill_io *io;
	int rc = rill_io_posix_create(&io);
	if (rc != 0)
		return rc;
	struct rill_log_config c;
	rill_log_config_default(&c);
	c.repair = true;
	struct rill_log_recovery report = {0};
	struct rill_log *log;
	rc = rill_log_open(&log, io, dir, &c, &report);
	if (rc == 0)
		rc = rill_log_close(log);
	if (rc == 0)
		printf("%s: REPAIRED: %s\n", dir, report.message);
	else
		printf("%s: REPAIR FAILED: %s%s%s\n", dir, rill_strerror(rc),
		       report.message[0] ? ": " : "", report.message);
	rill_io_destroy(io);
	return rc;
}

static void verify_partition(const char *dir, struct verify_totals *t)
{
	struct rill_io *io;
	struct rill_log *log;
	struct rill_log_recovery report;
	int rc = open_read_only(dir, &io, &log, &report);
	if (rc == RILL_E_LOG_CORRUPT && t->repair) {
		printf("%s: DAMAGED: %s\n", dir, report.message);
		if (repair_partition(dir) != 0) {
			t->partitions++;
			t->damaged++;
			return;
		}
		t->repaired++;
		rc = open_read_only(dir, &io, &log, &report); /* verified again, as repaired */
	}
	t->partitions++;
	if (rc == -EACCES || rc == -EPERM) {
		/* Not damage: what the files hold is unknown, as for a folder it cannot read. */
		printf("%s: UNREADABLE: %s%s%s\n", dir, rill_strerror(rc),
		       report.message[0] ? ": " : "", report.message);
		t->unreadable++;
		return;
	}
	if (rc != 0) {
		printf("%s: DAMAGED: %s%s%s\n", dir, rill_strerror(rc),
		       report.message[0] ? ": " : "", report.message);
		t->damaged++;
		return;
	}
	struct rill_log_stats s;
	rill_log_stats(log, &s);
	uint64_t records = s.next_offset - s.start_offset;
	/* The range is first..last held; an empty log has no last offset (0..0 would claim
	 * one, B..B-1 an empty segment at B's): say so, and where the next record goes. */
	char range[64];
	if (records == 0)
		snprintf(range, sizeof(range), "no records (next offset %" PRIu64 ")",
			 s.next_offset);
	else
		snprintf(range, sizeof(range), "offsets %" PRIu64 "..%" PRIu64, s.start_offset,
			 s.next_offset - 1);
	printf("%s: ok: %u segments, %" PRIu64 " records, %s, %" PRIu64 " bytes\n", dir, s.segments,
	       records, range, s.bytes);
	if (report.truncated_bytes > 0)
		printf("%s: torn tail (not an error): %s\n", dir, report.message);
	t->records += records;
	t->bytes += s.bytes;
	t->torn_bytes += report.truncated_bytes;
	rill_log_drop(log);
	rill_io_destroy(io);
}

static void verify_walk(const char *dir, int depth, struct verify_totals *t)
{
	if (dir_has_segments(dir)) {
		verify_partition(dir, t);
		return;
	}
	if (depth >= WALK_DEPTH_MAX)
		return;
	DIR *d = opendir(dir);
	if (d == NULL) {
		/* Not a pass: a partition may be in there. */
		printf("%s: UNREADABLE: %s\n", dir, strerror(errno));
		t->unreadable++;
		return;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		/* lost+found: the file system's own (a DATA at a mount's root has one, readable
		 * by root only), never a partition. */
		if (e->d_name[0] == '.' || strcmp(e->d_name, "lost+found") == 0)
			continue;
		char path[4096];
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
			continue;
		struct stat st;
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			verify_walk(path, depth + 1, t);
	}
	closedir(d);
}

#define LOG_VERIFY_USAGE "usage: rill log verify DIR [--repair]"
#define LOG_DUMP_USAGE   "usage: rill log dump DIR [--from OFFSET] [--limit N]"

static const char log_verify_help[] = LOG_VERIFY_USAGE
	"\n"
	"\n"
	"Check every batch of every segment of every partition found under DIR (a folder of\n"
	"segment files) and print each one's records, offsets and bytes. Exit 0 only if all\n"
	"verify (a torn tail is reported, not an error), 1 if any is damaged (naming file,\n"
	"position and reason), 2 on bad usage. --repair (server stopped): cut each damaged log\n"
	"at its first damaged batch, then verify again; the records after it are lost.\n";

static const char log_dump_help[] = LOG_DUMP_USAGE
	"\n"
	"\n"
	"Print the records of the partition in DIR (DATA/topics/TOPIC/PARTITION) as JSON\n"
	"lines: offset, timestamp_ns, key (or key_hex), ids, payload (or payload_hex); from\n"
	"OFFSET (default 0), at most N of them.\n";

/* Whether @arg asks for the usage. */
static bool log_help_arg(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

static int log_verify(int argc, char **argv)
{
	struct verify_totals t = {0};
	const char *dir = NULL;
	bool bad = false; /* a second DIR or an unknown option */
	for (int i = 0; i < argc; i++) {
		if (log_help_arg(argv[i])) {
			fputs(log_verify_help, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--repair") == 0)
			t.repair = true;
		else if (dir == NULL && argv[i][0] != '-')
			dir = argv[i];
		else
			bad = true;
	}
	if (dir == NULL || bad) {
		fprintf(stderr, LOG_VERIFY_USAGE "\n");
		return 2;
	}
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "rill: log verify: %s: not a directory\n", dir);
		return 2;
	}
	verify_walk(dir, 0, &t);
	if (t.partitions == 0 && t.unreadable == 0) {
		fprintf(stderr, "rill: log verify: no segment files under %s\n", dir);
		return 1;
	}
	char repaired[32] = "";
	if (t.repair)
		snprintf(repaired, sizeof(repaired), ", %u repaired", t.repaired);
	char unreadable[48] = "";
	if (t.unreadable > 0)
		snprintf(unreadable, sizeof(unreadable), ", %u unreadable", t.unreadable);
	printf("total: %u partitions, %u damaged%s%s, %" PRIu64 " records, %" PRIu64 " bytes%s\n",
	       t.partitions, t.damaged, repaired, unreadable, t.records, t.bytes,
	       t.torn_bytes ? ", torn tails present" : "");
	return t.damaged || t.unreadable ? 1 : 0;
}

/* A key as a JSON string when it is printable UTF-8-safe ASCII, else as hex. */
static void dump_put_bytes(json_t *obj, const char *text_name, const char *hex_name,
			   const uint8_t *p, size_t bytes)
{
	bool printable = true;
	for (size_t i = 0; i < bytes && printable; i++)
		printable = p[i] >= 0x20 && p[i] < 0x7f;
	if (printable) {
		json_object_set_new(obj, text_name, json_stringn((const char *)p, bytes));
		return;
	}
	char *hex = malloc(bytes * 2 + 1);
	if (hex == NULL)
		return;
	for (size_t i = 0; i < bytes; i++)
		sprintf(hex + 2 * i, "%02x", p[i]);
	json_object_set_new(obj, hex_name, json_stringn(hex, bytes * 2));
	free(hex);
}

static int log_dump(int argc, char **argv)
{
	const char *dir = NULL;
	uint64_t from = 0, limit = UINT64_MAX;
	for (int i = 0; i < argc; i++) {
		if (log_help_arg(argv[i])) {
			fputs(log_dump_help, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
			if (cli_parse_u64(argv[++i], &from) != 0)
				return cli_usage_error("log dump", "--from takes an offset");
		} else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
			if (cli_parse_u64(argv[++i], &limit) != 0)
				return cli_usage_error("log dump", "--limit takes a count");
		} else if (argv[i][0] != '-' && dir == NULL) {
			dir = argv[i];
		} else {
			return cli_usage_error("log dump", LOG_DUMP_USAGE);
		}
	}
	if (dir == NULL)
		return cli_usage_error("log dump", LOG_DUMP_USAGE);
	/* A read-only open of a folder with no log in it is an empty log: exit 0 and no
	 * output would say a topic's folder, or a typo, holds no events. */
	if (!dir_has_segments(dir)) {
		fprintf(stderr,
			"rill: log dump: %s: no segment files: not a partition's folder "
			"(DATA/topics/TOPIC/PARTITION)\n",
			dir);
		return 1;
	}
	struct rill_io *io;
	struct rill_log *log;
	struct rill_log_recovery report;
	int rc = open_read_only(dir, &io, &log, &report);
	if (rc != 0) {
		fprintf(stderr, "rill: log dump: %s: %s%s%s\n", dir, rill_strerror(rc),
			report.message[0] ? ": " : "", report.message);
		return 1;
	}
	struct rill_log_iter it;
	rc = rill_log_iter_init(&it, log, from);
	struct rill_record rec;
	uint64_t offset;
	for (uint64_t n = 0; rc == 0 && n < limit; n++) {
		int more = rill_log_iter_next(&it, &rec, &offset);
		if (more <= 0) {
			rc = more;
			break;
		}
		json_t *o = json_object();
		/* u64s past INT64_MAX as strings of digits (cli_json_u64), as consume prints them,
		 * not as negative numbers. */
		json_object_set_new(o, "offset", cli_json_u64(offset));
		json_object_set_new(o, "timestamp_ns", cli_json_u64(rec.timestamp_ns));
		dump_put_bytes(o, "key", "key_hex", rec.key, rec.key_bytes);
		json_object_set_new(o, "type_id", json_integer(rec.type_id));
		json_object_set_new(o, "schema_version", json_integer(rec.schema_version));
		json_object_set_new(o, "producer_id", cli_json_u64(rec.producer_id));
		json_object_set_new(o, "sequence", cli_json_u64(rec.sequence));
		json_object_set_new(o, "correlation_id", cli_json_u64(rec.correlation_id));
		json_object_set_new(o, "causation_id", cli_json_u64(rec.causation_id));
		json_object_set_new(o, "payload_bytes", json_integer(rec.payload_bytes));
		dump_put_bytes(o, "payload", "payload_hex", rec.payload, rec.payload_bytes);
		char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (line != NULL) {
			puts(line);
			free(line);
		}
		json_decref(o);
	}
	rill_log_iter_fini(&it); /* safe after a failed init too */
	if (rc < 0 && rc != -ERANGE)
		fprintf(stderr, "rill: log dump: %s: reading: %s\n", dir, rill_strerror(rc));
	if (rc == -ERANGE)
		fprintf(stderr,
			"rill: log dump: %s: --from %" PRIu64 " is past the end (%" PRIu64 ")\n",
			dir, from, rill_log_next_offset(log));
	rill_log_drop(log);
	rill_io_destroy(io);
	return rc < 0 ? 1 : 0;
}

int cli_log(int argc, char **argv)
{
	if (argc < 1 || log_help_arg(argv[0])) {
		fprintf(argc < 1 ? stderr : stdout,
			"usage: rill log verify DIR [--repair]\n"
			"       rill log dump DIR [--from OFFSET] [--limit N]\n"
			"(each takes --help)\n");
		return argc < 1 ? 2 : 0;
	}
	if (strcmp(argv[0], "verify") == 0)
		return log_verify(argc - 1, argv + 1);
	if (strcmp(argv[0], "dump") == 0)
		return log_dump(argc - 1, argv + 1);
	fprintf(stderr, "rill: log: unknown subcommand '%s' (verify, dump)\n", argv[0]);
	return 2;
}
