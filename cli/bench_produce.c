/*
 * `rill bench produce`: a load generator for a running server. C connections, one thread
 * each, keep up to P PRODUCE requests in flight (pipelined) for S seconds: closed loop
 * (as fast as the acknowledgements allow) or open loop at --rate events/s over all
 * connections, where every request has an intended send time on a fixed schedule and its
 * latency counts from that time, not from when it could be sent: a stalled server cannot
 * hide its stall by slowing the generator down (coordinated omission). Latency is
 * request → acknowledgement, in a log-linear histogram (base/hist.h). Prints one JSON
 * object; a progress line on stderr when it is a terminal. Main thread plus workers; not
 * part of the engine.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/assert.h"
#include "base/clock.h"
#include "base/hist.h"
#include "cli.h"
#include "io/wire.h"
#include "rill/client.h"
#include "rill/schema.h"

#define BENCH_CONNECTIONS_MAX 256u
#define BENCH_PIPELINE_MAX    1024u
#define BENCH_BATCH_MAX       1024u
#define BENCH_KEYS            1024u /* keys the events spread over */
#define BENCH_TYPE            "BenchEvent"
#define BENCH_PAD_MAX         65536u
#define NS_PER_S              1000000000ull

struct bench_opts {
	const char *address, *topic, *acks_name, *durability;
	uint64_t connections, pipeline, record_bytes, seconds, rate, batch, partitions, threads;
	int acks;
	bool json;
	bool lockstep; /* closed loop: a connection's next P requests only once all P answered */
};

/* One connection: its client, schedule and requests in flight. */
struct bench_conn {
	struct rill_client *client;
	uint64_t next_ns; /* open loop: the next request's intended send time */
	uint64_t seq;     /* events sent: picks their keys */
	uint64_t ids[BENCH_PIPELINE_MAX], sent_ns[BENCH_PIPELINE_MAX];
};

/* One thread: an event loop over its share of the connections. */
struct bench_thread {
	pthread_t thread;
	const struct bench_opts *o;
	const struct rill_schema *schema;
	uint32_t index, type_id;
	uint64_t start_ns, end_ns;
	uint64_t interval_ns; /* open loop: between one connection's requests */
	struct bench_conn *conns;
	uint32_t conn_count;
	uint64_t events, errors, refused;
	uint64_t unsent;     /* open loop: requests due before the end, never sent */
	uint64_t unanswered; /* requests with no answer 5 s after the end */
	uint64_t waits;      /* epoll waits: the generator's own turns (it sleeps between) */
	uint64_t last_ns;    /* when its last answer came */
	/* Send times of the answers collected and not yet recorded (bench_record). */
	uint64_t answered[BENCH_PIPELINE_MAX];
	uint32_t answered_count;
	uint64_t progress; /* events so far, read by the progress line (relaxed) */
	struct rill_hist hist;
	int rc;
	char error[RILL_CLIENT_ERROR_BYTES + 16];
	struct rill_record records[BENCH_BATCH_MAX];
	uint8_t *payload;
	uint32_t payload_bytes;
	char keys[BENCH_KEYS][16];
	struct rill_client_ack acks[BENCH_BATCH_MAX];
};

static const char bench_help[] =
	"usage: rill bench produce [--connect HOST:PORT] [--topic T] [--connections C]\n"
	"                          [--pipeline P] [--batch N] [--record-bytes B] [--seconds S]\n"
	"                          [--rate EVENTS_PER_S] [--acks none|applied|durable]\n"
	"                          [--durability none|group] [--partitions N] [--threads T]\n"
	"                          [--lockstep] [--json]\n"
	"\n"
	"Drive a running server: C connections (default 1), each with up to P requests in\n"
	"flight (default 1) of N events each (default 1), driven by T threads (default 1, an\n"
	"event loop each, as redis-benchmark), records of about B bytes (default\n"
	"100), for S seconds (default 5). Closed loop by default; with --rate, open loop at\n"
	"that many events/s over all connections, latency counted from each request's\n"
	"intended send time (coordinated omission corrected). --lockstep: a connection sends\n"
	"its next P requests only once all P are answered, as redis-benchmark -P does (by\n"
	"default a freed slot is refilled at once). Creates topic T (default\n"
	"bench, --partitions default 4, --durability default none) and registers the\n"
	"BenchEvent schema if missing. Prints events_per_s, mb_per_s and the request →\n"
	"acknowledgement latency p50_us ... max_us as one JSON object.\n";

/* The schema of the bench's events: a number and padding to reach the record size. */
static const char bench_schema[] =
	"{\"type\":\"" BENCH_TYPE "\",\"version\":1,\"fields\":[{\"name\":\"n\",\"type\":\"i64\"},"
	"{\"name\":\"pad\",\"type\":\"bytes\",\"max_length\":65536,\"default\":\"\"}]}";

/* The topic exists: run on it only with the partitions and durability asked for, which the
 * report then states (figures of another topic's settings would be mislabelled). */
static int bench_topic_same(const struct bench_opts *o, struct rill_client *c)
{
	struct rill_client_error err = {{0}};
	char json[256], *answer = NULL;
	snprintf(json, sizeof(json), "{\"name\":\"%s\"}", o->topic);
	int rc = rill_client_admin(c, RILL_WIRE_ADMIN_TOPIC_INFO, json, &answer, &err);
	if (rc < 0)
		return cli_client_fail("bench produce", o->address, rc, &err);
	json_t *info = json_loads(answer, 0, NULL);
	free(answer);
	json_int_t partitions = json_integer_value(json_object_get(info, "partitions"));
	const char *durability = json_string_value(json_object_get(info, "durability"));
	bool same = (uint64_t)partitions == o->partitions && durability != NULL &&
		    strcmp(durability, o->durability) == 0;
	if (!same)
		fprintf(stderr,
			"rill: bench produce: topic '%s' exists with %lld partitions and "
			"durability "
			"%s, not the %llu and %s asked for: give another --topic, or its "
			"settings\n",
			o->topic, (long long)partitions, durability != NULL ? durability : "?",
			(unsigned long long)o->partitions, o->durability);
	json_decref(info);
	return same ? 0 : -EINVAL;
}

static int bench_setup(const struct bench_opts *o, struct rill_client *c,
		       struct cli_schemas **schemas)
{
	struct rill_client_error err = {{0}};
	char json[512];
	snprintf(json, sizeof(json), "{\"schema\":%s}", bench_schema);
	int rc = rill_client_admin(c, RILL_WIRE_ADMIN_SCHEMA_REGISTER, json, NULL, &err);
	if (rc < 0)
		return cli_client_fail("bench produce", o->address, rc, &err);
	snprintf(json, sizeof(json), "{\"name\":\"%s\",\"partitions\":%llu,\"durability\":\"%s\"}",
		 o->topic, (unsigned long long)o->partitions, o->durability);
	rc = rill_client_admin(c, RILL_WIRE_ADMIN_TOPIC_CREATE, json, NULL, &err);
	if (rc < 0 && rc != -EEXIST)
		return cli_client_fail("bench produce", o->address, rc, &err);
	if (rc == -EEXIST && bench_topic_same(o, c) != 0)
		return 1;
	return cli_schemas_fetch("bench produce", o->address, c, schemas) < 0 ? 1 : 0;
}

/* The events the thread's requests send (their keys rotate per request). */
static int bench_events(struct bench_thread *b)
{
	const struct bench_opts *o = b->o;
	struct rill_payload_builder pb;
	uint32_t cap = rill_schema_payload_bytes_max(b->schema);
	b->payload = malloc(cap);
	if (b->payload == NULL)
		return -ENOMEM;
	/* Built twice: with no pad, to learn what the header, the key and the fields' own
	 * bytes take (the payload's block header, the i64, the bytes field's offset and
	 * length), then with the pad that makes the record record_bytes long. */
	uint8_t *pad = calloc(1, BENCH_PAD_MAX + 1);
	int rc = pad == NULL ? -ENOMEM : 0;
	uint32_t pad_bytes = 0;
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		rc = rill_payload_builder_init(&pb, b->schema, b->payload, cap);
		if (rc == 0)
			rc = rill_payload_set_i64(&pb, 0, 1);
		if (rc == 0)
			rc = rill_payload_set_var(&pb, 1, pad, pad_bytes);
		if (rc == 0)
			rc = rill_payload_builder_finish(&pb, &b->payload_bytes, NULL);
		uint64_t fixed = RILL_RECORD_HEADER_BYTES + 9 + (uint64_t)b->payload_bytes;
		pad_bytes = o->record_bytes > fixed ? (uint32_t)(o->record_bytes - fixed) : 0;
		if (pad_bytes > BENCH_PAD_MAX)
			pad_bytes = BENCH_PAD_MAX;
	}
	free(pad);
	for (uint32_t k = 0; k < BENCH_KEYS; k++)
		snprintf(b->keys[k], sizeof(b->keys[k]), "k%03u-%04u", b->index % 1000, k);
	for (uint32_t i = 0; i < BENCH_BATCH_MAX; i++)
		b->records[i] = (struct rill_record){.type_id = b->type_id,
						     .schema_version = 1,
						     .key_bytes = 9,
						     .payload = b->payload,
						     .payload_bytes = b->payload_bytes};
	return rc;
}

static int bench_send(struct bench_thread *b, struct bench_conn *c, uint64_t at_ns)
{
	uint32_t n = (uint32_t)b->o->batch;
	for (uint32_t i = 0; i < n; i++)
		b->records[i].key = b->keys[(c->seq + i) % BENCH_KEYS];
	c->seq += n;
	uint64_t id;
	struct rill_client_error err;
	int rc = rill_client_produce_send(c->client, b->o->topic, b->records, n, b->o->acks, &id,
					  &err);
	if (rc == -EAGAIN) { /* the server's in-flight bytes: after an answer */
		c->seq -= n;
		return rc;
	}
	if (rc < 0) {
		snprintf(b->error, sizeof(b->error), "send: %s", err.message);
		return rc;
	}
	for (uint32_t i = 0; i < b->o->pipeline; i++) {
		if (c->ids[i] == 0) {
			c->ids[i] = id;
			c->sent_ns[i] = at_ns;
			return 0;
		}
	}
	return -EOVERFLOW; /* cannot be: the client refuses more than the pipeline */
}

/*
 * Record the answers collected since the last call at one clock read taken after all of
 * them: each had arrived by then, so each latency is at least its true value. (A read per
 * answer cost the generator 12% of its CPU, which the server on the same machine lacked.)
 */
static void bench_record(struct bench_thread *b)
{
	if (b->answered_count == 0)
		return;
	uint64_t now = rill_clock_now_ns();
	b->last_ns = now;
	for (uint32_t i = 0; i < b->answered_count; i++)
		rill_hist_record(&b->hist, now - b->answered[i]);
	b->answered_count = 0;
}

/* Collect one answer without waiting: 1, 0 when none is there, or an error. Its send time
 * waits in b->answered for bench_record, which the caller runs once it has drained @c. */
static int bench_collect(struct bench_thread *b, struct bench_conn *c)
{
	uint64_t id = 0;
	uint32_t count = 0;
	struct rill_client_error err;
	if (rill_client_inflight(c->client) == 0)
		return 0;
	int rc =
		rill_client_produce_wait(c->client, &id, b->acks, BENCH_BATCH_MAX, &count, 0, &err);
	if (rc == -ETIMEDOUT)
		return 0;
	for (uint32_t i = 0; i < b->o->pipeline; i++) {
		if (c->ids[i] == id && id != 0) {
			/* At most one per request in flight: bench_record empties it per drain.
			 * A request refused whole is counted (errors), not timed: its quick
			 * refusal is no acknowledgement's latency. */
			RILL_ASSERT(b->answered_count < BENCH_PIPELINE_MAX);
			if (rc >= 0)
				b->answered[b->answered_count++] = c->sent_ns[i];
			c->ids[i] = 0;
			break;
		}
	}
	if (rc < 0 && rill_client_fd(c->client) < 0) {
		snprintf(b->error, sizeof(b->error), "connection: %s", err.message);
		return rc; /* the connection is gone */
	}
	if (rc < 0) {
		b->errors++; /* one request refused whole: counted, go on */
		snprintf(b->error, sizeof(b->error), "request: %s", err.message);
		return 1;
	}
	uint32_t refused = 0;
	for (uint32_t i = 0; i < count; i++)
		refused += b->acks[i].error != 0;
	b->refused += refused;
	b->events += count - refused; /* events/s and MB/s count what was taken, only */
	__atomic_store_n(&b->progress, b->events, __ATOMIC_RELAXED); /* a progress figure */
	return 1;
}

/* Send what the schedule (open loop) or the pipeline (closed loop) allows; the next
 * intended send time over the thread's connections into @next. */
static int bench_sends(struct bench_thread *b, uint64_t now, uint64_t *next)
{
	*next = UINT64_MAX;
	for (uint32_t i = 0; i < b->conn_count; i++) {
		struct bench_conn *c = &b->conns[i];
		/* --lockstep: as redis-benchmark's -P, wait for every answer of the pipeline
		 * before the next (by default a slot is refilled as soon as it frees). */
		if (b->o->lockstep && b->interval_ns == 0 && rill_client_inflight(c->client) > 0)
			continue;
		/* A burst goes out in one write, as redis-benchmark writes its pipeline. */
		rill_client_cork(c->client);
		bool full = false; /* the server's in-flight bytes, reached */
		while (rill_client_inflight(c->client) < b->o->pipeline &&
		       (b->interval_ns == 0 || now >= c->next_ns)) {
			int rc = bench_send(b, c, b->interval_ns > 0 ? c->next_ns : now);
			if ((full = rc == -EAGAIN))
				break;
			if (rc < 0)
				return rc;
			c->next_ns += b->interval_ns;
		}
		struct rill_client_error err;
		int rc = rill_client_uncork(c->client, &err);
		if (rc < 0) {
			snprintf(b->error, sizeof(b->error), "send: %s", err.message);
			return rc;
		}
		/* Answers read while a send waited for the socket: the fd may never say so. */
		while (rill_client_buffered(c->client) && (rc = bench_collect(b, c)) == 1)
			;
		bench_record(b);
		if (rc < 0)
			return rc;
		/* A connection whose pipeline is full waits for an answer, not for its due time:
		 * behind schedule, that is in the past, and the loop would spin on epoll with no
		 * timeout, taking the CPU the server needs (its latency still counts from the
		 * due time: coordinated omission stays corrected). */
		if (b->interval_ns > 0 && !full &&
		    rill_client_inflight(c->client) < b->o->pipeline && c->next_ns < *next)
			*next = c->next_ns;
	}
	return 0;
}

static int bench_loop(struct bench_thread *b, int ep)
{
	struct epoll_event evs[BENCH_CONNECTIONS_MAX];
	for (;;) {
		uint64_t now = rill_clock_now_ns(), next;
		if (now >= b->end_ns)
			return 0;
		int rc = bench_sends(b, now, &next);
		if (rc < 0)
			return rc;
		/* Sleep until an answer or the next intended send, to the nanosecond
		 * (epoll_pwait2): spinning would take the CPU the server needs on a small
		 * machine, and a millisecond's rounding would bunch the schedule. */
		uint64_t wait_ns = 1000000;
		if (next != UINT64_MAX)
			wait_ns = next > now ? next - now : 0;
		struct timespec ts = {.tv_sec = (time_t)(wait_ns / NS_PER_S),
				      .tv_nsec = (long)(wait_ns % NS_PER_S)};
		int n = epoll_pwait2(ep, evs, BENCH_CONNECTIONS_MAX, &ts, NULL);
		b->waits++;
		for (int i = 0; i < n; i++) {
			struct bench_conn *c = evs[i].data.ptr;
			while ((rc = bench_collect(b, c)) == 1)
				;
			bench_record(b);
			if (rc < 0)
				return rc;
		}
	}
}

/*
 * After the clock runs out: the answers still owed count too, and so do the requests the
 * schedule called for that a full pipeline kept back: each is recorded as late as it is
 * now (a lower bound), or a stall at the end would vanish from the figures.
 */
static void bench_drain(struct bench_thread *b)
{
	uint64_t now = rill_clock_now_ns();
	for (uint32_t i = 0; b->interval_ns > 0 && i < b->conn_count; i++) {
		struct bench_conn *c = &b->conns[i];
		for (; c->next_ns < b->end_ns; c->next_ns += b->interval_ns) {
			rill_hist_record(&b->hist, now - c->next_ns);
			b->unsent++;
		}
	}
	uint64_t deadline = rill_clock_now_ns() + 5 * NS_PER_S;
	for (uint32_t i = 0; i < b->conn_count; i++) {
		struct bench_conn *c = &b->conns[i];
		while (rill_client_inflight(c->client) > 0 && rill_clock_now_ns() < deadline) {
			int rc = bench_collect(b, c);
			bench_record(b);
			if (rc < 0) {
				b->rc = rc; /* the connection died: the run failed (b->error) */
				break;
			}
		}
	}
	/* What never came is at least as late as now: recorded so, and counted. */
	now = rill_clock_now_ns();
	for (uint32_t i = 0; i < b->conn_count; i++) {
		struct bench_conn *c = &b->conns[i];
		for (uint32_t k = 0; k < b->o->pipeline; k++) {
			if (c->ids[k] == 0)
				continue;
			rill_hist_record(&b->hist, now - c->sent_ns[k]);
			b->unanswered++;
			c->ids[k] = 0;
		}
	}
}

static void *bench_thread_main(void *arg)
{
	struct bench_thread *b = arg;
	struct rill_client_config cfg;
	rill_client_config_default(&cfg);
	cfg.inflight_max = (uint32_t)b->o->pipeline;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	b->rc = ep < 0 ? -errno : 0;
	for (uint32_t i = 0; i < b->conn_count && b->rc == 0; i++) {
		struct bench_conn *c = &b->conns[i];
		struct rill_client_error err = {{0}};
		b->rc = rill_client_connect(&c->client, b->o->address, &cfg, &err);
		if (b->rc < 0) {
			snprintf(b->error, sizeof(b->error), "connect: %s", err.message);
			break;
		}
		c->next_ns = b->start_ns;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, rill_client_fd(c->client), &ev) < 0)
			b->rc = -errno;
	}
	while (b->rc == 0 && rill_clock_now_ns() < b->start_ns)
		; /* every thread starts at once */
	if (b->rc == 0)
		b->rc = bench_loop(b, ep);
	if (b->rc == 0)
		bench_drain(b);
	for (uint32_t i = 0; i < b->conn_count; i++)
		if (b->conns[i].client != NULL)
			rill_client_close(b->conns[i].client);
	if (ep >= 0)
		close(ep);
	return NULL;
}

static int bench_args(struct bench_opts *o, int argc, char **argv)
{
	*o = (struct bench_opts){.address = CLI_CONNECT_DEFAULT,
				 .topic = "bench",
				 .acks_name = "applied",
				 .durability = "none",
				 .connections = 1,
				 .pipeline = 1,
				 .record_bytes = 100,
				 .seconds = 5,
				 .batch = 1,
				 .partitions = 4,
				 .threads = 1};
	for (int i = 0; i < argc; i++) {
		const char *v = NULL;
		uint64_t *num = NULL;
		if (strcmp(argv[i], "--json") == 0) {
			o->json = true;
			continue;
		}
		if (strcmp(argv[i], "--lockstep") == 0) {
			o->lockstep = true;
			continue;
		}
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(bench_help, stdout);
			return 0;
		}
		if (cli_opt(argc, argv, &i, "--connect", &o->address) ||
		    cli_opt(argc, argv, &i, "--topic", &o->topic) ||
		    cli_opt(argc, argv, &i, "--acks", &o->acks_name) ||
		    cli_opt(argc, argv, &i, "--durability", &o->durability))
			continue;
		const char *names[] = {"--connections", "--pipeline", "--record-bytes",
				       "--seconds",     "--rate",     "--batch",
				       "--partitions",  "--threads"};
		uint64_t *fields[] = {&o->connections, &o->pipeline, &o->record_bytes, &o->seconds,
				      &o->rate,        &o->batch,    &o->partitions,   &o->threads};
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]) && num == NULL; k++) {
			if (cli_opt(argc, argv, &i, names[k], &v))
				num = fields[k];
		}
		if (num == NULL || cli_parse_u64(v, num) < 0) {
			char msg[256];
			snprintf(msg, sizeof(msg), "bad argument '%s' (try --help)", argv[i]);
			return cli_usage_error("bench produce", msg);
		}
	}
	const char *bad = NULL;
	if (o->connections == 0 || o->connections > BENCH_CONNECTIONS_MAX)
		bad = "--connections must be 1 to 256";
	else if (o->pipeline == 0 || o->pipeline > BENCH_PIPELINE_MAX)
		bad = "--pipeline must be 1 to 1024";
	else if (o->threads == 0 || o->threads > o->connections)
		bad = "--threads must be 1 to --connections";
	else if (o->batch == 0 || o->batch > BENCH_BATCH_MAX)
		bad = "--batch must be 1 to 1024";
	else if (o->seconds == 0 || o->seconds > 86400)
		bad = "--seconds must be 1 to 86400";
	else if (o->record_bytes > RILL_RECORD_HEADER_BYTES + 32 + BENCH_PAD_MAX)
		bad = "--record-bytes must be at most 65,632";
	else if (strcmp(o->durability, "none") != 0 && strcmp(o->durability, "group") != 0)
		bad = "--durability must be none or group";
	o->acks = strcmp(o->acks_name, "none") == 0      ? 0
		  : strcmp(o->acks_name, "applied") == 0 ? 1
		  : strcmp(o->acks_name, "durable") == 0 ? 2
							 : -1;
	if (bad == NULL && o->acks < 0)
		bad = "--acks must be none, applied or durable";
	return bad != NULL ? cli_usage_error("bench produce", bad) : -1;
}

static void bench_progress(struct bench_thread *threads, const struct bench_opts *o, uint64_t start)
{
	bool tty = isatty(STDERR_FILENO);
	uint64_t end = start + o->seconds * NS_PER_S, last = 0;
	while (rill_clock_now_ns() < end) {
		sleep(1);
		uint64_t total = 0;
		for (uint64_t i = 0; i < o->threads; i++)
			total += __atomic_load_n(&threads[i].progress, __ATOMIC_RELAXED);
		if (tty)
			fprintf(stderr, "\rbench produce: %3llu s, %llu events/s   ",
				(unsigned long long)((rill_clock_now_ns() - start) / NS_PER_S),
				(unsigned long long)(total - last));
		last = total;
	}
	if (tty)
		fputc('\n', stderr);
}

static void bench_report(struct bench_thread *threads, const struct bench_opts *o, double secs,
			 double steal_pct)
{
	struct rill_hist *h = malloc(sizeof(*h));
	if (h == NULL)
		return;
	rill_hist_init(h);
	uint64_t events = 0, errors = 0, refused = 0, unsent = 0, unanswered = 0, waits = 0;
	for (uint64_t i = 0; i < o->threads; i++) {
		rill_hist_merge(h, &threads[i].hist);
		events += threads[i].events;
		errors += threads[i].errors;
		refused += threads[i].refused;
		unsent += threads[i].unsent;
		unanswered += threads[i].unanswered;
		waits += threads[i].waits;
	}
	double eps = (double)events / secs;
	json_t *j = json_pack(
		"{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:f, s:I, s:f, s:f, s:I, s:I}",
		"bench", "produce", "topic", o->topic, "connections", (json_int_t)o->connections,
		"threads", (json_int_t)o->threads, "pipeline", (json_int_t)o->pipeline, "batch",
		(json_int_t)o->batch, "record_bytes", (json_int_t)o->record_bytes, "acks",
		o->acks_name, "rate", (json_int_t)o->rate, "seconds", secs, "events",
		(json_int_t)events, "events_per_s", eps, "mb_per_s",
		eps * (double)o->record_bytes / 1e6, "errors", (json_int_t)errors, "refused",
		(json_int_t)refused);
	double pct[] = {50.0, 99.0, 99.9, 99.99};
	const char *names[] = {"p50_us", "p99_us", "p999_us", "p9999_us"};
	for (size_t i = 0; j != NULL && i < 4; i++)
		json_object_set_new(j, names[i],
				    json_real((double)rill_hist_percentile(h, pct[i]) / 1e3));
	if (j != NULL) {
		json_object_set_new(j, "max_us", json_real((double)h->max / 1e3));
		json_object_set_new(j, "requests", json_integer((json_int_t)h->count));
		json_object_set_new(j, "unsent", json_integer((json_int_t)unsent));
		json_object_set_new(j, "unanswered", json_integer((json_int_t)unanswered));
		json_object_set_new(j, "waits", json_integer((json_int_t)waits));
		json_object_set_new(j, "partitions", json_integer((json_int_t)o->partitions));
		json_object_set_new(j, "durability", json_string(o->durability));
		json_object_set_new(j, "lockstep", json_boolean(o->lockstep));
		json_object_set_new(j, "cpu_steal_pct", json_real(steal_pct));
		char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
		if (text != NULL)
			puts(text);
		free(text);
		json_decref(j);
	}
	free(h);
}

/* Start the threads, each with its share of the connections. 0 or exit status 1. */
static int bench_start(struct bench_thread *threads, struct bench_conn *conns,
		       const struct bench_opts *o, const struct rill_schema *schema,
		       uint32_t type_id, uint64_t start)
{
	uint64_t per = o->connections / o->threads, extra = o->connections % o->threads;
	struct bench_conn *next = conns;
	for (uint64_t i = 0; i < o->threads; i++) {
		struct bench_thread *b = &threads[i];
		*b = (struct bench_thread){.o = o,
					   .schema = schema,
					   .type_id = type_id,
					   .index = (uint32_t)i,
					   .start_ns = start,
					   .end_ns = start + o->seconds * NS_PER_S,
					   .conns = next,
					   .conn_count = (uint32_t)(per + (i < extra))};
		next += b->conn_count;
		if (o->rate > 0)
			b->interval_ns = o->connections * o->batch * NS_PER_S / o->rate;
		if (o->rate > 0 && b->interval_ns == 0)
			b->interval_ns = 1;
		rill_hist_init(&b->hist);
		if (bench_events(b) < 0 ||
		    pthread_create(&b->thread, NULL, bench_thread_main, b) != 0) {
			fprintf(stderr, "rill: bench produce: cannot start thread %llu\n",
				(unsigned long long)i);
			return 1;
		}
	}
	return 0;
}

int cli_bench_produce(int argc, char **argv)
{
	prctl(PR_SET_TIMERSLACK, 1UL); /* the open loop's short sleeps: no 50 µs slack */
	struct bench_opts o;
	int status = bench_args(&o, argc, argv);
	if (status >= 0)
		return status;
	struct rill_client *c = NULL;
	struct cli_schemas *schemas = NULL;
	if (cli_connect("bench produce", o.address, 0, &c) != 0)
		return 1;
	status = bench_setup(&o, c, &schemas);
	rill_client_close(c);
	if (status != 0)
		return status;
	uint32_t type_id = 0;
	const struct rill_schema *schema = cli_schemas_find(schemas, BENCH_TYPE, 1, &type_id);
	struct bench_thread *threads = calloc(o.threads, sizeof(*threads));
	struct bench_conn *conns = calloc(o.connections, sizeof(*conns));
	if (schema == NULL || threads == NULL || conns == NULL) {
		fprintf(stderr, "rill: bench produce: %s\n",
			schema == NULL ? "the server has no BenchEvent v1" : "out of memory");
		exit(1);
	}
	struct cli_cpu_ticks ticks0, ticks1;
	cli_cpu_ticks(&ticks0);
	uint64_t start = rill_clock_now_ns() + 200000000ull; /* let every thread connect */
	if (bench_start(threads, conns, &o, schema, type_id, start) != 0)
		exit(1);
	bench_progress(threads, &o, start);
	uint64_t last = start + 1;
	for (uint64_t i = 0; i < o.threads; i++) {
		pthread_join(threads[i].thread, NULL);
		if (threads[i].rc < 0) {
			fprintf(stderr, "rill: bench produce: %s\n", threads[i].error);
			status = 1;
		}
		last = threads[i].last_ns > last ? threads[i].last_ns : last;
	}
	double secs = (double)(last - start) / 1e9; /* the first send to the last answer */
	cli_cpu_ticks(&ticks1);
	if (status == 0)
		bench_report(threads, &o, secs, cli_cpu_steal_pct(&ticks0, &ticks1));
	for (uint64_t i = 0; i < o.threads; i++)
		free(threads[i].payload);
	free(threads);
	free(conns);
	cli_schemas_free(schemas);
	return status;
}
