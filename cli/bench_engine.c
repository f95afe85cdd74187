/*
 * `rill bench engine`: the whole engine in process, no network. One host thread publishes
 * --events events of --record-bytes payload bytes through a producer handle into a topic
 * with one partition per shard, asking for durable acknowledgements, and measures:
 *
 *   events_per_s  events acknowledged applied per second of the run;
 *   applied       publish → applied (the shard stamps the time it folded the event);
 *   durable       publish → durable (the fdatasync covering it completed; with durability
 *                 none, the topic's promise is memory and this equals applied).
 *
 * Open loop with --rate: event i is due at start + i / rate and its latency counts from
 * then (the event's ingress time is set to it), so a stall of the engine or of the
 * publisher is charged to every event it delayed: no coordinated omission. Without --rate,
 * closed loop: as fast as the rings take them (throughput). Percentiles come from
 * log-linear histograms (base/hist.h). Prints one JSON object. Main thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/hist.h"
#include "base/thread.h"
#include "cli.h"
#include "rill/rill.h"

#define BENCH_KEYS    1024u
#define BENCH_SPIN_NS 20000u /* closer than this to the next due time: spin, not sleep */

static const char bench_engine_help[] =
	"usage: rill bench engine [--shards N] [--events M] [--record-bytes B] [--rate R]\n"
	"                         [--durability none|group] [--poll busy|adaptive]\n"
	"                         [--batch-bytes B] [--batch-delay-us U] [--dir DIR] [--keep]\n"
	"                         [--baseline] [--json]\n"
	"\n"
	"The engine in process, no network: one publisher thread, a topic of one partition per\n"
	"shard (default 1 shard), M events (default 1000000) of B-byte payloads (default 64; a\n"
	"multiple of 8 in 16 .. 2048), durable acknowledgements asked for. Prints one JSON\n"
	"object: events_per_s, and publish → applied and publish → durable latency (p50_ns ...\n"
	"max_ns). Closed loop by default; --rate: open loop at R events/s, each latency counted\n"
	"from the event's due time. --durability (default none), --batch-bytes and\n"
	"--batch-delay-us: the topic's (default: the engine's). The data directory is a new\n"
	"folder under DIR (default $TMPDIR or /tmp), removed at the end unless --keep.\n"
	"--baseline (with --rate): no engine; the machine's own lateness on that schedule.\n"
	"The output is JSON, --json or not.\n";

struct bench_engine_args {
	const char *dir;
	uint64_t shards, events, record_bytes, rate;
	uint64_t batch_delay_us, batch_bytes;
	enum rill_durability durability;
	enum rill_poll_mode poll;
	bool keep;
	bool baseline; /* the machine's own lateness on the same schedule, no engine */
	bool help;     /* --help: the usage printed, nothing to run */
};

static int bench_engine_parse(int argc, char **argv, struct bench_engine_args *a)
{
	*a = (struct bench_engine_args){.dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
					.shards = 1,
					.events = 1000000,
					.record_bytes = 64,
					.durability = RILL_DURABILITY_NONE,
					.poll = RILL_POLL_ADAPTIVE};
	for (int i = 0; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		int rc = 0;
		if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
			fputs(bench_engine_help, stdout);
			a->help = true;
			return 0;
		}
		if (strcmp(opt, "--json") == 0)
			continue; /* the output is always JSON */
		if (strcmp(opt, "--keep") == 0) {
			a->keep = true;
			continue;
		}
		if (strcmp(opt, "--baseline") == 0) {
			a->baseline = true;
			continue;
		}
		if (val == NULL)
			return cli_usage_error("bench engine",
					       "every option but --json, --keep and "
					       "--baseline takes a value (try --help)");
		i++;
		if (strcmp(opt, "--dir") == 0)
			a->dir = val;
		else if (strcmp(opt, "--shards") == 0)
			rc = cli_parse_u64(val, &a->shards);
		else if (strcmp(opt, "--events") == 0)
			rc = cli_parse_u64(val, &a->events);
		else if (strcmp(opt, "--record-bytes") == 0)
			rc = cli_parse_u64(val, &a->record_bytes);
		else if (strcmp(opt, "--rate") == 0)
			rc = cli_parse_u64(val, &a->rate);
		else if (strcmp(opt, "--batch-delay-us") == 0)
			rc = cli_parse_u64(val, &a->batch_delay_us);
		else if (strcmp(opt, "--batch-bytes") == 0)
			rc = cli_parse_u64(val, &a->batch_bytes);
		else if (strcmp(opt, "--durability") == 0 && strcmp(val, "group") == 0)
			a->durability = RILL_DURABILITY_GROUP;
		else if (strcmp(opt, "--durability") == 0 && strcmp(val, "none") == 0)
			a->durability = RILL_DURABILITY_NONE;
		else if (strcmp(opt, "--poll") == 0 && strcmp(val, "busy") == 0)
			a->poll = RILL_POLL_BUSY;
		else if (strcmp(opt, "--poll") == 0 && strcmp(val, "adaptive") == 0)
			a->poll = RILL_POLL_ADAPTIVE;
		else
			return cli_usage_error("bench engine",
					       "unknown option or value (try --help)");
		if (rc != 0)
			return cli_usage_error("bench engine", "a number was expected");
	}
	if (a->shards == 0 || a->shards > RILL_ENGINE_SHARDS_MAX)
		return cli_usage_error("bench engine", "--shards must be 1 .. 64");
	if (a->events == 0 || a->events > 1000000000u)
		return cli_usage_error("bench engine", "--events must be 1 .. 1000000000");
	if (a->record_bytes < 16 || a->record_bytes > 2048 || a->record_bytes % 8 != 0)
		return cli_usage_error(
			"bench engine",
			"--record-bytes (the payload) must be a multiple of 8 in 16 .. 2048");
	if (a->batch_delay_us > 10000000)
		return cli_usage_error("bench engine", "--batch-delay-us must be 0 .. 10000000");
	if (a->batch_bytes != 0 && (a->batch_bytes < 4096 || a->batch_bytes > (8u << 20)))
		return cli_usage_error("bench engine", "--batch-bytes must be 4096 .. 8388608");
	return 0;
}

struct bench_engine_run {
	struct rill_hist *applied, *durable;
	uint64_t acked, durable_count, errors;
	uint64_t first_error;
	uint64_t last_applied_ns;
	struct cli_cpu_ticks ticks0; /* when publishing began: for the steal over the run */
};

static void bench_engine_ack(void *arg, const struct rill_ack *ack)
{
	struct bench_engine_run *r = arg;
	if (ack->error != 0) {
		if (r->errors++ == 0)
			fprintf(stderr, "rill: bench engine: event %" PRIu64 " refused: %s\n",
				ack->cookie, ack->reason);
		return;
	}
	uint64_t latency = ack->done_ns > ack->ingress_ns ? ack->done_ns - ack->ingress_ns : 0;
	if (ack->level == RILL_ACKS_APPLIED) {
		rill_hist_record(r->applied, latency);
		r->acked++;
		/* The latest, not the last delivered: shards' acks are drained one shard at a
		 * time, and the run ends when the last shard is done. */
		if (ack->done_ns > r->last_applied_ns)
			r->last_applied_ns = ack->done_ns;
	} else {
		rill_hist_record(r->durable, latency);
		r->durable_count++;
		if (ack->done_ns > r->last_applied_ns)
			r->last_applied_ns = ack->done_ns; /* durable runs end at the last sync */
	}
}

/* A schema of (record_bytes - 8) / 8 i64 fields: payloads of exactly record_bytes. */
static int bench_engine_schema(struct rill_engine *engine, uint64_t record_bytes,
			       const struct rill_schema **out)
{
	char json[16384];
	int n = snprintf(json, sizeof(json),
			 "{\"type\": \"BenchEvent\", \"version\": 1, \"fields\": [");
	for (uint64_t f = 0; f < (record_bytes - 8) / 8; f++)
		n += snprintf(json + n, sizeof(json) - (size_t)n,
			      "%s{\"name\": \"v%" PRIu64 "\", \"type\": \"i64\"}", f ? ", " : "",
			      f);
	snprintf(json + n, sizeof(json) - (size_t)n, "]}");
	struct rill_schema_error serr;
	int rc = rill_schema_register(rill_engine_schemas(engine), json, strlen(json), -1, out,
				      &serr);
	if (rc != 0)
		fprintf(stderr, "rill: bench engine: schema: %s\n", serr.message);
	return rc;
}

static void bench_engine_wait_until(uint64_t due)
{
	uint64_t now = rill_clock_now_ns();
	if (due > now + BENCH_SPIN_NS) {
		uint64_t ns = due - now - BENCH_SPIN_NS / 2;
		struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
				      .tv_nsec = (long)(ns % 1000000000u)};
		nanosleep(&ts, NULL);
	}
	while (rill_clock_now_ns() < due)
		;
}

/* Publish every event; returns the time the loop started. */
static int bench_engine_publish(const struct bench_engine_args *a, struct rill_producer *p,
				struct rill_topic *topic, const struct rill_schema *schema,
				uint64_t *start_ns)
{
	uint8_t payload[2048];
	memset(payload, 0, sizeof(payload));
	uint32_t block = (uint32_t)a->record_bytes;
	memcpy(payload, &block, sizeof(block)); /* the header's block_bytes (docs/FORMAT.md) */
	char keys[BENCH_KEYS][8];
	for (unsigned k = 0; k < BENCH_KEYS; k++)
		memcpy(keys[k],
		       (char[8]){'k', (char)('0' + k / 1000 % 10), (char)('0' + k / 100 % 10),
				 (char)('0' + k / 10 % 10), (char)('0' + k % 10), '-', 'b', 'n'},
		       8);
	struct rill_event ev = {.key_bytes = 8,
				.type_id = rill_schema_type_id(schema),
				.version = 1,
				.payload = payload,
				.payload_bytes = (uint32_t)a->record_bytes};
	uint64_t start = rill_clock_now_ns();
	*start_ns = start;
	for (uint64_t i = 0; i < a->events; i++) {
		uint64_t due = a->rate ? start + (uint64_t)((double)i * 1e9 / (double)a->rate) : 0;
		if (due)
			bench_engine_wait_until(due);
		ev.key = keys[i % BENCH_KEYS];
		ev.ingress_ns = due; /* 0: now */
		memcpy(payload + 8, &i, sizeof(i));
		int rc;
		while ((rc = rill_publish(p, topic, &ev, RILL_ACKS_DURABLE, i)) == -EAGAIN)
			rill_producer_poll(p, 0);
		if (rc != 0) {
			fprintf(stderr, "rill: bench engine: publish: %s\n", rill_strerror(rc));
			return rc;
		}
		if ((i & 63) == 0)
			rill_producer_poll(p, 0);
	}
	return rill_producer_flush(p, 600ull * 1000000000u);
}

static void bench_engine_print_hist(const char *name, const struct rill_hist *h, bool last)
{
	printf("\"%s\": {\"count\": %" PRIu64 ", \"p50_ns\": %" PRIu64 ", \"p99_ns\": %" PRIu64
	       ", \"p999_ns\": %" PRIu64 ", \"p9999_ns\": %" PRIu64 ", \"max_ns\": %" PRIu64 "}%s",
	       name, h->count, rill_hist_percentile(h, 50.0), rill_hist_percentile(h, 99.0),
	       rill_hist_percentile(h, 99.9), rill_hist_percentile(h, 99.99), h->count ? h->max : 0,
	       last ? "" : ", ");
}

static int bench_engine_report(const struct bench_engine_args *a, struct rill_engine *engine,
			       const struct bench_engine_run *r, uint64_t start_ns)
{
	uint64_t stalls = 0, sleeps = 0, preempted = 0;
	struct rill_shard_stats st0 = {0};
	for (uint32_t s = 0; s < rill_engine_shards(engine); s++) {
		struct rill_shard_stats st;
		if (rill_engine_shard_stats(engine, s, &st) == 0)
			stalls += st.stalls, sleeps += st.sleeps, preempted += st.preempted;
		if (s == 0)
			st0 = st;
	}
	double seconds = (double)(r->last_applied_ns - start_ns) / 1e9;
	struct cli_cpu_ticks ticks1;
	cli_cpu_ticks(&ticks1);
	printf("{\"shards\": %" PRIu64 ", \"events\": %" PRIu64 ", \"record_bytes\": %" PRIu64
	       ", \"rate\": %" PRIu64 ", \"durability\": \"%s\", \"poll\": \"%s\", "
	       "\"events_per_s\": %.0f, ",
	       a->shards, a->events, a->record_bytes, a->rate,
	       a->durability == RILL_DURABILITY_GROUP ? "group" : "none",
	       a->poll == RILL_POLL_BUSY ? "busy" : "adaptive",
	       seconds > 0 ? (double)r->acked / seconds : 0.0);
	bench_engine_print_hist("applied", r->applied, false);
	bench_engine_print_hist("durable", r->durable, false);
	/* Shard 0's own stage histograms: where the time goes. */
	printf("\"shard0_ring\": {\"p50_ns\": %" PRIu64 ", \"p999_ns\": %" PRIu64
	       ", \"max_ns\": %" PRIu64 "}, \"shard0_apply\": {\"p50_ns\": %" PRIu64
	       ", \"p999_ns\": %" PRIu64 ", \"max_ns\": %" PRIu64 "}, ",
	       st0.ring.p50_ns, st0.ring.p999_ns, st0.ring.max_ns, st0.apply.p50_ns,
	       st0.apply.p999_ns, st0.apply.max_ns);
	printf("\"backpressure\": %" PRIu64 ", \"shard_stalls\": %" PRIu64
	       ", \"shard_sleeps\": %" PRIu64 ", \"shard_preempted\": %" PRIu64
	       ", \"errors\": %" PRIu64 ", \"cpu_steal_pct\": %.1f}\n",
	       rill_engine_backpressure(engine), stalls, sleeps, preempted, r->errors,
	       cli_cpu_steal_pct(&r->ticks0, &ticks1));
	return r->errors == 0 && r->acked == a->events && r->durable_count == a->events ? 0 : 1;
}

static int bench_engine_run(const struct bench_engine_args *a, const char *dir)
{
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = dir;
	cfg.shards = (uint32_t)a->shards;
	cfg.poll = a->poll;
	cfg.ring_bytes = 8u << 20;
	cfg.ack_ring_bytes = 8u << 20;
	struct rill_error_text err = {{0}};
	struct rill_engine *engine;
	int rc = rill_engine_open(&engine, &cfg, &err);
	if (rc != 0) {
		fprintf(stderr, "rill: bench engine: %s\n", err.message);
		return 1;
	}
	/* The publisher takes the last CPU no shard has, if there is one. */
	static int spare[RILL_CPUS_MAX];
	unsigned spares = rill_engine_spare_cpus(engine, spare, RILL_CPUS_MAX);
	if (spares > 0)
		(void)rill_thread_pin(spare[spares - 1]);
	const struct rill_schema *schema;
	struct rill_topic *topic = NULL;
	struct rill_topic_config tc = {.name = "bench",
				       .partitions = (uint32_t)a->shards,
				       .durability = a->durability,
				       .batch_bytes_max = (uint32_t)a->batch_bytes,
				       .batch_delay_ns = a->batch_delay_us * 1000u};
	struct bench_engine_run r = {.applied = malloc(sizeof(struct rill_hist)),
				     .durable = malloc(sizeof(struct rill_hist))};
	struct rill_producer *p = NULL;
	struct rill_producer_config pc = {.on_ack = bench_engine_ack, .arg = &r};
	uint64_t start_ns = 0;
	rc = r.applied == NULL || r.durable == NULL ? -ENOMEM : 0;
	if (rc == 0)
		rc = bench_engine_schema(engine, a->record_bytes, &schema);
	if (rc == 0 && (rc = rill_topic_create(engine, &tc, &topic, &err)) != 0)
		fprintf(stderr, "rill: bench engine: %s\n", err.message);
	if (rc == 0) {
		rill_hist_init(r.applied);
		rill_hist_init(r.durable);
		rc = rill_producer_open(engine, &pc, &p);
	}
	if (rc == 0)
		cli_cpu_ticks(&r.ticks0);
	rc = bench_engine_publish(a, p, topic, schema, &start_ns);
	int status = rc == 0 ? bench_engine_report(a, engine, &r, start_ns) : 1;
	if (p != NULL)
		rill_producer_close(p);
	if (rill_engine_close(engine) != 0)
		status = 1;
	free(r.applied);
	free(r.durable);
	return status;
}

/*
 * The baseline: on the same open-loop schedule, one thread per CPU the run would use (the
 * publisher's, and each shard's), pinned there, spins to each due time and records how
 * late it got there. No engine: what it measures is the machine's own scheduling noise
 * (preemption, interrupts, the hypervisor), a floor under any latency measured on it.
 */
struct bench_baseline_thread {
	const struct bench_engine_args *a;
	int cpu;
	uint64_t start_ns;
	struct rill_hist *hist;
};

static void *bench_baseline_main(void *arg)
{
	struct bench_baseline_thread *t = arg;
	(void)rill_thread_pin(t->cpu);
	for (uint64_t i = 0; i < t->a->events; i++) {
		uint64_t due = t->start_ns + (uint64_t)((double)i * 1e9 / (double)t->a->rate);
		bench_engine_wait_until(due);
		rill_hist_record(t->hist, rill_clock_now_ns() - due);
	}
	return NULL;
}

static int bench_engine_baseline(const struct bench_engine_args *a)
{
	if (a->rate == 0)
		return cli_usage_error("bench engine", "--baseline needs --rate");
	int cpus = rill_cpu_count();
	uint32_t threads = (uint32_t)a->shards + ((int)a->shards < cpus ? 1 : 0);
	if (threads > (uint32_t)cpus)
		threads = (uint32_t)cpus;
	struct bench_baseline_thread t[RILL_ENGINE_SHARDS_MAX + 1];
	pthread_t tid[RILL_ENGINE_SHARDS_MAX + 1];
	struct rill_hist *total = malloc(sizeof(*total));
	if (total == NULL)
		return 1;
	rill_hist_init(total);
	struct cli_cpu_ticks ticks0, ticks1;
	cli_cpu_ticks(&ticks0);
	uint64_t start = rill_clock_now_ns() + 10000000u; /* all start together */
	for (uint32_t i = 0; i < threads; i++) {
		t[i] = (struct bench_baseline_thread){.a = a,
						      .cpu = i < a->shards ? rill_cpu_nth((int)i)
									   : rill_cpu_nth(cpus - 1),
						      .start_ns = start,
						      .hist = malloc(sizeof(struct rill_hist))};
		if (t[i].hist == NULL)
			abort();
		rill_hist_init(t[i].hist);
		pthread_create(&tid[i], NULL, bench_baseline_main, &t[i]);
	}
	for (uint32_t i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		rill_hist_merge(total, t[i].hist);
		free(t[i].hist);
	}
	cli_cpu_ticks(&ticks1);
	printf("{\"baseline\": true, \"threads\": %u, \"events\": %" PRIu64 ", \"rate\": %" PRIu64
	       ", ",
	       threads, a->events, a->rate);
	bench_engine_print_hist("lateness", total, false);
	printf("\"cpu_steal_pct\": %.1f}\n", cli_cpu_steal_pct(&ticks0, &ticks1));
	free(total);
	return 0;
}

int cli_bench_engine(int argc, char **argv)
{
	struct bench_engine_args a;
	int rc = bench_engine_parse(argc, argv, &a);
	if (rc != 0 || a.help)
		return rc;
	if (a.baseline)
		return bench_engine_baseline(&a);
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/rill-bench-engine-XXXXXX", a.dir);
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "rill: bench engine: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	int status = bench_engine_run(&a, dir);
	if (!a.keep) {
		if (cli_remove_tree(dir) != 0)
			fprintf(stderr, "rill: bench engine: could not remove %s\n", dir);
	}
	return status;
}
