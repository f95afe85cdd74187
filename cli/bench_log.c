/*
 * `rill bench log`: append records to a log on a real disk and measure throughput and the
 * latency from the append call to the record's durable acknowledgement (or, with
 * durability none, to append's return). With --rate the load is open loop: record i is due
 * at start + i / rate, and its latency counts from when it was due, not from when it could
 * be sent, so a stall is charged to every record it delayed (no coordinated omission).
 * Prints one JSON object. Main thread; runs for --seconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/compiler.h"
#include "base/hist.h"
#include "cli.h"
#include "engine/log.h"

static const char bench_log_help[] =
	"usage: rill bench log --dir DIR [--record-bytes N] [--seconds S] [--batch-bytes B]\n"
	"                      [--durability group|none] [--rate EVENTS_PER_S]\n"
	"                      [--segment-bytes N] [--batch-delay-us U] [--io direct|buffered]\n"
	"                      [--fixed-batches] [--keep] [--json]\n"
	"\n"
	"Append N-byte records (default 1024; 72 .. 1048576) to a log in a new folder under DIR\n"
	"for S seconds (default 10) and print one JSON object: io, events_per_s, mb_per_s, the\n"
	"append-to-durable latency p50_us ... max_us, and the batches' write+fdatasync times.\n"
	"Closed loop by default; --rate: open loop, each latency counted from the record's due\n"
	"time. A batch is written once it holds B bytes (default 262144; behind a write in\n"
	"flight it grows past that, unless --fixed-batches) or its first record waited U µs\n"
	"(default 0). --durability group (the default: fdatasync) or none; --segment-bytes:\n"
	"roll segments at N bytes (default 1 GiB); --io direct (O_DIRECT where the file system\n"
	"takes it: the default) or buffered. The folder is removed at the end unless --keep.\n"
	"The output is JSON, --json or not.\n";

struct bench_log_args {
	const char *dir;
	uint64_t record_bytes;
	uint64_t seconds;
	uint64_t batch_bytes;
	uint64_t rate; /* events per second; 0: closed loop */
	uint64_t batch_delay_us;
	uint64_t segment_bytes;
	enum rill_durability durability;
	bool buffered_io;   /* --io buffered */
	bool fixed_batches; /* --fixed-batches: never past --batch-bytes */
	bool keep;
	bool help; /* --help: the usage printed, nothing to run */
};

static int bench_log_parse(int argc, char **argv, struct bench_log_args *a)
{
	*a = (struct bench_log_args){.record_bytes = 1024,
				     .seconds = 10,
				     .batch_bytes = 256u << 10,
				     .durability = RILL_DURABILITY_GROUP};
	for (int i = 0; i < argc; i++) {
		const char *opt = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		int rc = 0;
		if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
			fputs(bench_log_help, stdout);
			a->help = true;
			return 0;
		}
		if (strcmp(opt, "--json") == 0)
			continue; /* the output is always JSON */
		if (strcmp(opt, "--keep") == 0) {
			a->keep = true;
			continue;
		}
		if (strcmp(opt, "--fixed-batches") == 0) {
			a->fixed_batches = true;
			continue;
		}
		if (val == NULL)
			return cli_usage_error(
				"bench log", "every option but --json, --keep and --fixed-batches "
					     "takes a value (try --help)");
		i++;
		if (strcmp(opt, "--dir") == 0)
			a->dir = val;
		else if (strcmp(opt, "--record-bytes") == 0)
			rc = cli_parse_u64(val, &a->record_bytes);
		else if (strcmp(opt, "--seconds") == 0)
			rc = cli_parse_u64(val, &a->seconds);
		else if (strcmp(opt, "--batch-bytes") == 0)
			rc = cli_parse_u64(val, &a->batch_bytes);
		else if (strcmp(opt, "--rate") == 0)
			rc = cli_parse_u64(val, &a->rate);
		else if (strcmp(opt, "--segment-bytes") == 0)
			rc = cli_parse_u64(val, &a->segment_bytes);
		else if (strcmp(opt, "--batch-delay-us") == 0)
			rc = cli_parse_u64(val, &a->batch_delay_us);
		else if (strcmp(opt, "--durability") == 0 && strcmp(val, "group") == 0)
			a->durability = RILL_DURABILITY_GROUP;
		else if (strcmp(opt, "--durability") == 0 && strcmp(val, "none") == 0)
			a->durability = RILL_DURABILITY_NONE;
		else if (strcmp(opt, "--io") == 0 && strcmp(val, "direct") == 0)
			a->buffered_io = false;
		else if (strcmp(opt, "--io") == 0 && strcmp(val, "buffered") == 0)
			a->buffered_io = true;
		else
			return cli_usage_error("bench log", "unknown option or value (try --help)");
		if (rc != 0)
			return cli_usage_error("bench log", "a number was expected");
	}
	if (a->dir == NULL)
		return cli_usage_error("bench log", "--dir is required");
	if (a->record_bytes < RILL_RECORD_HEADER_BYTES + 8 ||
	    a->record_bytes > RILL_RECORD_BYTES_MAX)
		return cli_usage_error("bench log", "--record-bytes must be 72 .. 1048576");
	if (a->seconds == 0 || a->seconds > 3600)
		return cli_usage_error("bench log", "--seconds must be 1 .. 3600");
	if (a->batch_bytes < 4096 || a->batch_bytes > RILL_LOG_BATCH_BYTES_MAX / 2)
		return cli_usage_error("bench log", "--batch-bytes must be 4096 .. 8388608");
	if (a->batch_delay_us > 10000000)
		return cli_usage_error("bench log", "--batch-delay-us must be 0 .. 10000000");
	return 0;
}

/* Below this much time to wait, spin: a sleep costs about as much. */
#define BENCH_SPIN_NS 20000u
/* The longest blocking wait for a write in flight before checking the clock again. */
#define BENCH_WAIT_NS 2000000u

struct bench_log_run {
	struct rill_log *log;
	uint64_t *due_ns; /* due time of each offset still waiting, by offset & mask */
	uint64_t mask;
	uint64_t acked; /* offsets below this are accounted for */
	uint64_t last_ack_ns;
	uint64_t unsent; /* open loop: records due before the end that never went in */
	struct rill_hist hist;
};

/* Charge every newly acknowledged offset its latency. */
static void bench_log_reap(struct bench_log_run *r, uint64_t upto)
{
	uint64_t now = rill_clock_now_ns();
	for (; r->acked < upto; r->acked++)
		rill_hist_record(&r->hist, now - r->due_ns[r->acked & r->mask]);
	r->last_ack_ns = now;
}

static int bench_log_loop(struct bench_log_run *r, const struct bench_log_args *a)
{
	static uint8_t payload[RILL_RECORD_BYTES_MAX];
	struct rill_record rec = {
		.key = "bench-01",
		.key_bytes = 8,
		.type_id = 1,
		.schema_version = 1,
		.payload = payload,
		.payload_bytes = (uint32_t)(a->record_bytes - RILL_RECORD_HEADER_BYTES - 8)};
	uint64_t start = rill_clock_now_ns(), end = start + a->seconds * 1000000000ull;
	uint64_t i = 0, now = start;
	bool none = a->durability == RILL_DURABILITY_NONE;
	while (now < end) {
		uint64_t due =
			a->rate ? start + (uint64_t)((double)i * 1e9 / (double)a->rate) : now;
		if (due > now) {
			/*
			 * Open loop, ahead of schedule: block in the kernel rather than spin. On a
			 * small machine a spinning thread starves the kernel threads that run the
			 * fdatasync and writeback, which shows as milliseconds of tail latency.
			 * With a write in flight, sleep until it finishes (what comes due meanwhile
			 * is appended right after, in time for the next batch); otherwise sleep
			 * until the next record is due.
			 */
			int rc = rill_log_wait(r->log, BENCH_WAIT_NS);
			if (rc == 0)
				rc = rill_log_poll(r->log, 0);
			if (rc < 0)
				return rc;
			if (!none)
				bench_log_reap(r, rill_log_durable_offset(r->log));
			now = rill_clock_now_ns();
			if (due > now + BENCH_SPIN_NS &&
			    rill_log_durable_offset(r->log) == rill_log_next_offset(r->log)) {
				struct timespec ts = {.tv_sec = 0,
						      .tv_nsec = (long)(due - now - BENCH_SPIN_NS)};
				nanosleep(&ts, NULL);
				now = rill_clock_now_ns();
			}
			continue;
		}
		rec.timestamp_ns = due;
		rec.sequence = i;
		uint64_t offset;
		int rc = rill_log_append(r->log, &rec, &offset);
		if (rc == -EAGAIN) { /* both buffers busy: wait for the write in flight */
			rc = rill_log_poll(r->log, 50000);
		} else if (rc == 0) {
			r->due_ns[offset & r->mask] = due;
			i++;
			if (none)
				bench_log_reap(r, offset + 1);
			if ((i & 15) == 0)
				rc = rill_log_poll(r->log, 0);
		}
		if (rc < 0)
			return rc;
		if (!none)
			bench_log_reap(r, rill_log_durable_offset(r->log));
		now = rill_clock_now_ns();
	}
	int rc = rill_log_sync(r->log);
	if (rc == 0 && !none)
		bench_log_reap(r, rill_log_durable_offset(r->log));
	/* Records the schedule called for that back-pressure (both buffers busy behind a slow
	 * sync) kept out until the end: each is as late as now at least, or a stall at the end
	 * would vanish from the tail. */
	now = rill_clock_now_ns();
	for (; a->rate != 0; i++) {
		uint64_t due = start + (uint64_t)((double)i * 1e9 / (double)a->rate);
		if (due >= end)
			break;
		rill_hist_record(&r->hist, now - due);
		r->unsent++;
	}
	return rc;
}

static void bench_log_print(const struct bench_log_args *a, const struct bench_log_run *r,
			    uint64_t events, double seconds, const char *backend, double steal_pct)
{
	const struct rill_hist *h = &r->hist;
	struct rill_log_stats s;
	rill_log_stats(r->log, &s);
	printf("{\"bench\":\"log\",\"backend\":\"%s\",\"io\":\"%s\",\"durability\":\"%s\","
	       "\"record_bytes\":"
	       "%" PRIu64 ",\"batch_bytes\":%" PRIu64 ",\"rate\":%" PRIu64
	       ",\"seconds\":%.3f,\"events\":%" PRIu64
	       ",\"events_per_s\":%.0f,\"mb_per_s\":%.2f,\"p50_us\":%.1f,\"p99_us\":%.1f"
	       ",\"p999_us\":%.1f,\"p9999_us\":%.1f,\"max_us\":%.1f,\"batches\":%" PRIu64
	       ",\"batch_sync_p50_us\":%.1f,\"batch_sync_p99_us\":%.1f,\"batch_sync_max_us\":%.1f"
	       ",\"fixed_batches\":%s,\"grown_batches\":%" PRIu64 ",\"batch_bytes_peak\":%" PRIu32
	       ",\"unsent\":%" PRIu64 ",\"cpu_steal_pct\":%.1f}\n",
	       backend, s.direct_io ? "direct" : "buffered",
	       a->durability == RILL_DURABILITY_NONE ? "none" : "group", a->record_bytes,
	       a->batch_bytes, a->rate, seconds, events, (double)events / seconds,
	       (double)events * (double)a->record_bytes / seconds / 1e6,
	       (double)rill_hist_percentile(h, 50) / 1e3, (double)rill_hist_percentile(h, 99) / 1e3,
	       (double)rill_hist_percentile(h, 99.9) / 1e3,
	       (double)rill_hist_percentile(h, 99.99) / 1e3, (double)h->max / 1e3, s.batches,
	       (double)s.sync_ns_p50 / 1e3, (double)s.sync_ns_p99 / 1e3,
	       (double)s.sync_ns_max / 1e3, a->fixed_batches ? "true" : "false", s.grown_batches,
	       s.batch_bytes_peak, r->unsent, steal_pct);
}

int cli_bench_log(int argc, char **argv)
{
	struct bench_log_args a;
	int rc = bench_log_parse(argc, argv, &a);
	if (rc != 0 || a.help)
		return rc;
	char dir[4096];
	if (snprintf(dir, sizeof(dir), "%s/rill-bench-log-XXXXXX", a.dir) >= (int)sizeof(dir))
		return cli_usage_error("bench log", "--dir is too long");
	/* A folder of its own that did not exist: a predictable name (it was the PID) could be
	 * a symbolic link planted into another log, or a folder of someone's files, which the
	 * run would append to and then remove whole. */
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "rill: bench log: cannot make a folder under %s: %s\n", a.dir,
			strerror(errno));
		return 1;
	}
	struct rill_io *io;
	const char *backend = "uring";
	if (rill_io_uring_create(&io) != 0) {
		backend = "posix";
		fprintf(stderr,
			"rill: bench log: io_uring unavailable, using plain system calls\n");
		if (rill_io_posix_create(&io) != 0) {
			rmdir(dir);
			return 1;
		}
	}
	struct rill_log_config c;
	rill_log_config_default(&c);
	c.batch_bytes_max = (uint32_t)a.batch_bytes;
	c.batch_delay_ns = a.batch_delay_us * 1000;
	if (a.segment_bytes)
		c.segment_bytes_max = a.segment_bytes;
	c.durability = a.durability;
	c.buffered_io = a.buffered_io;
	c.fixed_batches = a.fixed_batches;
	struct bench_log_run r = {0};
	struct rill_log_recovery report;
	rc = rill_log_open(&r.log, io, dir, &c, &report);
	if (rc != 0) {
		fprintf(stderr, "rill: bench log: %s: %s %s\n", dir, rill_strerror(rc),
			report.message);
		rill_io_destroy(io);
		if (!a.keep)
			cli_remove_tree(dir);
		return 1;
	}
	/* Room for every record the two batch buffers can hold, and then some. */
	uint64_t slots = 1;
	while (slots < 4 * (a.batch_bytes + RILL_RECORD_BYTES_MAX) / a.record_bytes + 64)
		slots <<= 1;
	r.mask = slots - 1;
	r.due_ns = calloc(slots, sizeof(*r.due_ns));
	rill_hist_init(&r.hist);
	struct cli_cpu_ticks ticks0, ticks1;
	cli_cpu_ticks(&ticks0);
	uint64_t start = rill_clock_now_ns();
	rc = r.due_ns ? bench_log_loop(&r, &a) : -ENOMEM;
	cli_cpu_ticks(&ticks1);
	double seconds = (double)(r.last_ack_ns - start) / 1e9;
	if (rc == 0)
		bench_log_print(&a, &r, r.acked, seconds > 0 ? seconds : 1e-9, backend,
				cli_cpu_steal_pct(&ticks0, &ticks1));
	else
		fprintf(stderr, "rill: bench log: %s\n", rill_strerror(rc));
	free(r.due_ns);
	int close_rc = rill_log_close(r.log);
	rill_io_destroy(io);
	if (!a.keep) {
		if (cli_remove_tree(dir) != 0)
			fprintf(stderr, "rill: bench log: could not remove %s\n", dir);
	}
	return rc == 0 && close_rc == 0 ? 0 : 1;
}
