/*
 * `rill serve`: open the engine on a data directory and serve it over TCP (io/server.h)
 * until SIGTERM, SIGINT or SIGHUP; then stop accepting, drain what is in flight, close the engine
 * (its final sync) and exit 0. Settings come from the embedded defaults, then an INI
 * file (--config, parsed by libinih), then the command line. Main thread; blocking.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/assert.h"
#include "base/thread.h"
#include "cli.h"
#include "engine/partition.h" /* RILL_PARTITION_SNAPSHOTS_MAX: snapshots_kept's bound */
#include "io/dpdk.h"
#include "io/wire.h"
#include "rill/server.h"
#include "rill/rill.h"

#define SERVE_DRAIN_NS   (10ull * 1000000000ull)
#define SERVE_TEXT_BYTES 4096u
#define SERVE_KEYS_MAX   64u /* more than every key there is */
/* A key the config file set: where, for messages about it once the file is read. */
struct serve_key {
	char name[40];    /* "section.key" */
	const char *path; /* the file (an argv string) */
	int line;
};

struct serve_opts {
	struct rill_engine_config engine;
	struct rill_server_config server;
	struct rill_dpdk_config dpdk;
	char data[SERVE_TEXT_BYTES];
	char listen[256];
	char eal[SERVE_TEXT_BYTES]; /* DPDK's EAL arguments; "" (and no --dpdk): no DPDK */
	bool dpdk_on;
	char dpdk_opt[40]; /* the first DPDK setting given but eal ("" none): needs dpdk_on */
	int cpus[RILL_ENGINE_SHARDS_MAX]; /* [engine] cpus / --cpus: one per shard */
	uint32_t cpu_count;               /* 0: none given */
	bool shards_cli, cpus_cli;        /* given on the command line (which wins) */
	bool listen_cli;
	const char *config_path;               /* the config file read last (NULL: none) */
	struct serve_key seen[SERVE_KEYS_MAX]; /* the keys the file set: each once */
	uint32_t seen_count;
	char error[512];
	int error_line; /* the config file's line that @error is about (0: none yet) */
};

static const char serve_help[] =
	"usage: rill serve [--config FILE] [--data DIR] [--listen HOST:PORT] [--shards N]\n"
	"                  [--cpus LIST] [--poll adaptive|busy] [--sqpoll]\n"
	"                  [--dpdk \"EAL ARGS\" [--dpdk-port N]\n"
	"                  [--dpdk-udp-port P] [--dpdk-acks]]\n"
	"\n"
	"Serve the engine over rill's native protocol (docs/PROTOCOL.md). Defaults: data in\n"
	"./data, listening on 127.0.0.1:7400 (loopback only), one shard per CPU. Prints\n"
	"'rill: listening on HOST:PORT' on stderr once it accepts. SIGTERM, SIGINT or SIGHUP:\n"
	"stop accepting, answer what is in flight (up to 10 s), sync, exit 0 (a second\n"
	"signal: at once; SIGHUP ignored at start, as under nohup, stays ignored).\n"
	"\n"
	"The config file is INI (each key once, lines of at most 199 bytes, none indented);\n"
	"the command line wins over it. Keys (defaults):\n"
	"  [engine]  data (./data), shards (CPUs), cpus (each shard's CPU, e.g. 2-5,8: its\n"
	"            length is the shard count; default: the CPUs this process may use),\n"
	"            poll (adaptive), idle_spin_us (50), io_workers (spare: a pinned shard's\n"
	"            io_uring workers on CPUs no shard has; shard: on its own CPU),\n"
	"            ring_bytes (1048576), snapshot_interval_events (1000000),\n"
	"            snapshot_interval_s (60), snapshots_kept (3; up to 64),\n"
	"            subscriptions_per_shard (64: partitions subscribed at once on a shard,\n"
	"            over all clients; up to 1024, each a 4 MiB ring and a file while open),\n"
	"            groups_max (4096: consumer groups stored, a file each; up to 65536),\n"
	"            log_io (direct: O_DIRECT where the file system takes it; buffered)\n"
	"  [server]  listen (127.0.0.1:7400), frame_bytes_max (1048576),\n"
	"            conn_inflight_bytes_max (8388608), server_inflight_bytes_max (268435456),\n"
	"            connections_max (1024: the open-file limit, raised to the hard one at\n"
	"            start, must hold it, the engine's files, one for each subscription the\n"
	"            shards may hold, and 256 more), idle_timeout_s\n"
	"            (300; 0: never), handshake_timeout_s (5), send_stall_timeout_s (10),\n"
	"            query_wait_ms (1000), subscriptions_max (64), sqpoll (false)\n"
	"  [dpdk]    eal (none: no DPDK ingress, and then no [dpdk] key at all: each of the\n"
	"            others needs it), port (0), queues (0: one per shard; N: RX queues\n"
	"            polled by shards 0 to N-1), udp_port (7401), acks (false),\n"
	"            mbufs (8191, or what the queues hold if more), rx_descs (1024),\n"
	"            idle_nap_us (0: a polling shard never sleeps; N up to 100000, with\n"
	"            poll = adaptive: idle, it sleeps up to N µs between polls),\n"
	"            promiscuous (true: datagrams to any MAC, for virtual devices, replays\n"
	"            and mirrors; false on a NIC that shares its segment: frames to other\n"
	"            MACs are dropped)\n"
	"\n"
	"DPDK ingress (kernel bypass, UDP): datagrams to udp_port on the DPDK port carry a\n"
	"PRODUCE frame each (docs/PROTOCOL.md, \"UDP ingress\"). At most once by default;\n"
	"with acks, ACK datagrams carry each source's highest sequence durably appended.\n"
	"For a NIC, bind it to vfio-pci first (scripts/dpdk-setup.sh); with no NIC, try\n"
	"--dpdk \"--no-huge -m 512 --no-pci --vdev=net_pcap0,iface=eth0\".\n";

/* A whole unsigned number no larger than @max. */
static bool serve_u64(const char *text, uint64_t max, uint64_t *out)
{
	return cli_parse_u64(text, out) == 0 && *out <= max;
}

static bool serve_engine_key(struct serve_opts *o, const char *key, const char *value)
{
	uint64_t v = 0;
	struct rill_engine_config *e = &o->engine;
	if (strcmp(key, "data") == 0) {
		if (value[0] == '\0' || strlen(value) >= sizeof(o->data))
			return false;
		strcpy(o->data, value);
		return true;
	}
	if (strcmp(key, "log_io") == 0) {
		if (strcmp(value, "direct") != 0 && strcmp(value, "buffered") != 0)
			return false;
		e->log_buffered_io = value[0] == 'b';
		return true;
	}
	if (strcmp(key, "poll") == 0) {
		if (strcmp(value, "adaptive") != 0 && strcmp(value, "busy") != 0)
			return false;
		e->poll = value[0] == 'b' ? RILL_POLL_BUSY : RILL_POLL_ADAPTIVE;
		return true;
	}
	if (strcmp(key, "io_workers") == 0) {
		if (strcmp(value, "spare") != 0 && strcmp(value, "shard") != 0)
			return false;
		e->io_workers =
			strcmp(value, "shard") == 0 ? RILL_IO_WORKERS_SHARD : RILL_IO_WORKERS_SPARE;
		return true;
	}
	if (strcmp(key, "cpus") == 0) {
		const char *why = NULL;
		int n = rill_cpu_list_parse(value, o->cpus, RILL_ENGINE_SHARDS_MAX, &why);
		if (n < 0) {
			if (o->error[0] == '\0') /* the first error is the one reported */
				snprintf(o->error, sizeof(o->error), "cpus = %s: %s", value, why);
			return false;
		}
		o->cpu_count = (uint32_t)n;
		return true;
	}
	if (strcmp(key, "shards") == 0 && serve_u64(value, RILL_ENGINE_SHARDS_MAX, &v) && v > 0)
		e->shards = (uint32_t)v;
	else if (strcmp(key, "idle_spin_us") == 0 && serve_u64(value, 1000000, &v))
		e->idle_spin_ns = v * 1000;
	else if (strcmp(key, "ring_bytes") == 0 &&
		 serve_u64(value, RILL_ENGINE_RING_BYTES_MAX, &v) && v >= (64u << 10) &&
		 (v & (v - 1)) == 0) /* rill.h: a power of two from 64 KiB */
		e->ring_bytes = (uint32_t)v;
	else if (strcmp(key, "snapshot_interval_events") == 0 && serve_u64(value, UINT64_MAX, &v))
		e->snapshot_interval_events = v;
	else if (strcmp(key, "snapshot_interval_s") == 0 && serve_u64(value, 1000000000, &v))
		e->snapshot_interval_ns = v * 1000000000ull;
	else if (strcmp(key, "snapshots_kept") == 0 &&
		 serve_u64(value, RILL_PARTITION_SNAPSHOTS_MAX, &v) && v > 0)
		e->snapshots_kept = (uint32_t)v;
	else if (strcmp(key, "subscriptions_per_shard") == 0 &&
		 serve_u64(value, RILL_ENGINE_SUBSCRIPTIONS_MAX, &v) && v > 0)
		e->subscriptions_per_shard = (uint32_t)v;
	else if (strcmp(key, "groups_max") == 0 && serve_u64(value, RILL_ENGINE_GROUPS_MAX, &v) &&
		 v > 0)
		e->groups_max = (uint32_t)v;
	else
		return false;
	return true;
}

static bool serve_server_key(struct serve_opts *o, const char *key, const char *value)
{
	uint64_t v = 0;
	struct rill_server_config *s = &o->server;
	if (strcmp(key, "listen") == 0) {
		if (value[0] == '\0' || strlen(value) >= sizeof(o->listen))
			return false;
		strcpy(o->listen, value);
		return true;
	}
	if (strcmp(key, "sqpoll") == 0) {
		if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
			return false;
		s->sqpoll = value[0] == 't';
		return true;
	}
	/* Each value's own range here, so that the file's line is named; what depends on
	 * two values is checked once all are read (rill_server_config_check). */
	if (strcmp(key, "frame_bytes_max") == 0 &&
	    serve_u64(value, RILL_WIRE_FRAME_BYTES_MAX, &v) && v >= RILL_WIRE_FRAME_BYTES_MIN)
		s->frame_bytes_max = (uint32_t)v;
	else if (strcmp(key, "conn_inflight_bytes_max") == 0 && serve_u64(value, UINT64_MAX, &v))
		s->conn_inflight_bytes_max = v;
	else if (strcmp(key, "server_inflight_bytes_max") == 0 && serve_u64(value, UINT64_MAX, &v))
		s->server_inflight_bytes_max = v;
	else if (strcmp(key, "connections_max") == 0 &&
		 serve_u64(value, RILL_SERVER_CONNECTIONS_MAX, &v) && v > 0)
		s->connections_max = (uint32_t)v;
	else if (strcmp(key, "idle_timeout_s") == 0 && serve_u64(value, 1000000000, &v))
		s->idle_timeout_ns = v * 1000000000ull;
	else if (strcmp(key, "handshake_timeout_s") == 0 && serve_u64(value, 1000000000, &v) &&
		 v > 0)
		s->handshake_timeout_ns = v * 1000000000ull;
	else if (strcmp(key, "send_stall_timeout_s") == 0 && serve_u64(value, 1000000000, &v) &&
		 v > 0)
		s->send_stall_timeout_ns = v * 1000000000ull;
	else if (strcmp(key, "query_wait_ms") == 0 && serve_u64(value, 1000000000, &v))
		s->query_wait_ns = v * 1000000ull;
	else if (strcmp(key, "subscriptions_max") == 0 &&
		 serve_u64(value, RILL_SERVER_SUBSCRIPTIONS_MAX, &v) && v > 0)
		s->subscriptions_max = (uint32_t)v;
	else
		return false;
	return true;
}

static bool serve_dpdk_key(struct serve_opts *o, const char *key, const char *value)
{
	uint64_t v = 0;
	struct rill_dpdk_config *d = &o->dpdk;
	if (strcmp(key, "eal") == 0) {
		/* Empty, the EAL would take every default: all CPUs, every PCI device. */
		if (value[0] == '\0' || strlen(value) >= sizeof(o->eal))
			return false;
		strcpy(o->eal, value);
		o->dpdk_on = true;
		return true;
	}
	if (o->dpdk_opt[0] == '\0')
		snprintf(o->dpdk_opt, sizeof(o->dpdk_opt), "%s", key);
	if (strcmp(key, "acks") == 0 || strcmp(key, "promiscuous") == 0) {
		if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
			return false;
		*(key[0] == 'a' ? &d->acks : &d->promiscuous) = value[0] == 't';
		return true;
	}
	if (strcmp(key, "port") == 0 && serve_u64(value, UINT16_MAX, &v))
		d->port = (uint16_t)v;
	else if (strcmp(key, "queues") == 0 && serve_u64(value, RILL_DPDK_QUEUES_MAX, &v))
		d->queues = (uint16_t)v;
	else if (strcmp(key, "idle_nap_us") == 0 && serve_u64(value, RILL_DPDK_IDLE_NAP_US_MAX, &v))
		d->idle_nap_us = (uint32_t)v;
	else if (strcmp(key, "udp_port") == 0 && serve_u64(value, UINT16_MAX, &v) && v > 0)
		d->udp_port = (uint16_t)v;
	else if (strcmp(key, "mbufs") == 0 && serve_u64(value, 1u << 24, &v) && v >= 1024)
		d->mbufs = (uint32_t)v;
	else if (strcmp(key, "rx_descs") == 0 && serve_u64(value, 32768, &v) && v >= 64)
		d->rx_descs = (uint16_t)v;
	else
		return false;
	return true;
}

/*
 * A key the file gives twice is an error: one of the two would be silently lost. So is a
 * line that starts with a space or a tab after a key (libinih reads it as that key's
 * value again, a "continuation"), as a long `eal` line broken in two would be.
 */
static bool serve_key_once(struct serve_opts *o, const char *section, const char *key, int line)
{
	char name[sizeof(o->seen[0].name)];
	snprintf(name, sizeof(name), "%s.%s", section, key);
	for (uint32_t i = 0; i < o->seen_count; i++) {
		if (strcmp(o->seen[i].name, name) == 0) {
			snprintf(o->error, sizeof(o->error),
				 "[%s] %s given again (an indented line continues the key "
				 "before it)",
				 section, key);
			return false;
		}
	}
	RILL_ASSERT(o->seen_count < SERVE_KEYS_MAX); /* only known keys get here */
	struct serve_key *k = &o->seen[o->seen_count++];
	strcpy(k->name, name);
	k->path = o->config_path;
	k->line = line;
	return true;
}

/* Where the file set "section.key", or NULL when it did not. */
static const struct serve_key *serve_key_seen(const struct serve_opts *o, const char *name)
{
	for (uint32_t i = 0; i < o->seen_count; i++) {
		if (strcmp(o->seen[i].name, name) == 0)
			return &o->seen[i];
	}
	return NULL;
}

/*
 * libinih's line reader (fgets-like): it reads lines into a fixed buffer (INI_MAX_LINE,
 * 200 bytes in Debian's build) and would take the rest of a longer line as a line of its
 * own, or as a continuation of the value: a longer line ends the file here, as an error.
 * So does the first error of the callback (serve_ini): libinih reads on past an error
 * and returns the line of its first one, so a later key's error, or a second key's
 * message over the first's, would be quoted against another line.
 */
struct serve_ini_reader {
	FILE *file;
	struct serve_opts *opts;
	int line;     /* lines read */
	int too_long; /* 0, or the longest a line may be, in bytes */
};

/* libinih's callback: 1 to go on, 0 for an error (ini_parse then gives its line). */
static int serve_ini(void *arg, const char *section, const char *key, const char *value)
{
	struct serve_ini_reader *r = arg;
	struct serve_opts *o = r->opts;
	bool ok = false;
	if (strcmp(section, "engine") == 0)
		ok = serve_engine_key(o, key, value);
	else if (strcmp(section, "server") == 0)
		ok = serve_server_key(o, key, value);
	else if (strcmp(section, "dpdk") == 0)
		ok = serve_dpdk_key(o, key, value);
	if (!ok && o->error[0] == '\0')
		snprintf(o->error, sizeof(o->error), "[%s] %s = %s: unknown key or bad value",
			 section, key, value);
	ok = ok && serve_key_once(o, section, key, r->line);
	if (!ok)
		o->error_line = r->line; /* libinih calls back on the line just read */
	return ok;
}

static char *serve_ini_line(char *str, int num, void *stream)
{
	struct serve_ini_reader *r = stream;
	if (r->opts->error_line != 0)
		return NULL; /* the callback's first error: read no further */
	if (fgets(str, num, r->file) == NULL)
		return NULL;
	r->line++;
	size_t len = strlen(str);
	if (len + 1 == (size_t)num && str[len - 1] != '\n') {
		int next = fgetc(r->file); /* the newline that ends it, the end, or more */
		if (next != EOF && next != '\n') {
			r->too_long = num - 1; /* the NUL takes the rest */
			return NULL;
		}
	}
	return str;
}

static int serve_config(struct serve_opts *o, const char *path)
{
	struct serve_ini_reader r = {.file = fopen(path, "r"), .opts = o};
	if (r.file == NULL) {
		fprintf(stderr, "rill: serve: %s: %s\n", path, strerror(errno));
		return 1;
	}
	o->config_path = path;
	int line = ini_parse_stream(serve_ini_line, &r, serve_ini, &r);
	bool read_error = ferror(r.file) != 0;
	fclose(r.file);
	if (r.too_long > 0) {
		fprintf(stderr, "rill: serve: %s: line %d: longer than %d bytes\n", path, r.line,
			r.too_long);
		return 1;
	}
	if (read_error) {
		fprintf(stderr, "rill: serve: %s: a read failed after line %d\n", path, r.line);
		return 1;
	}
	if (line == 0)
		return 0;
	if (line == -2)
		fprintf(stderr, "rill: serve: %s: out of memory\n", path);
	else /* the callback's message is its own line's; an earlier line's error is syntax */
		fprintf(stderr, "rill: serve: %s: line %d: %s\n", path, line,
			o->error_line == line ? o->error : "not INI syntax");
	return 1;
}

/* The command line over the config file. Returns -1 to go on, else an exit status. */
static int serve_args(struct serve_opts *o, int argc, char **argv)
{
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(serve_help, stdout);
			return 0;
		}
		if (strcmp(a, "--sqpoll") == 0) {
			o->server.sqpoll = true;
			continue;
		}
		if (strcmp(a, "--dpdk-acks") == 0) {
			o->dpdk.acks = true;
			if (o->dpdk_opt[0] == '\0')
				snprintf(o->dpdk_opt, sizeof(o->dpdk_opt), "acks");
			continue;
		}
		if (strcmp(a, "--config") == 0 && v != NULL) {
			i++;
			continue; /* read first, in cli_serve */
		}
		bool ok = false;
		if (v != NULL && strcmp(a, "--data") == 0)
			ok = serve_engine_key(o, "data", v);
		else if (v != NULL && strcmp(a, "--shards") == 0)
			ok = o->shards_cli = serve_engine_key(o, "shards", v);
		else if (v != NULL && strcmp(a, "--poll") == 0)
			ok = serve_engine_key(o, "poll", v);
		else if (v != NULL && strcmp(a, "--cpus") == 0)
			ok = o->cpus_cli = serve_engine_key(o, "cpus", v);
		else if (v != NULL && strcmp(a, "--listen") == 0)
			ok = o->listen_cli = serve_server_key(o, "listen", v);
		else if (v != NULL && strcmp(a, "--dpdk") == 0)
			ok = serve_dpdk_key(o, "eal", v);
		else if (v != NULL && strcmp(a, "--dpdk-port") == 0)
			ok = serve_dpdk_key(o, "port", v);
		else if (v != NULL && strcmp(a, "--dpdk-udp-port") == 0)
			ok = serve_dpdk_key(o, "udp_port", v);
		if (!ok) {
			char msg[1024];
			snprintf(msg, sizeof(msg), "bad argument '%s'%s%s%s%s (try --help)", a,
				 v != NULL ? " " : "", v != NULL ? v : "", o->error[0] ? ": " : "",
				 o->error);
			return cli_usage_error("serve", msg);
		}
		i++;
	}
	return -1;
}

/*
 * The open-file limit: connections share it with the engine's files, so connections up
 * to it would leave a segment roll without a descriptor, and its partition stopped. The
 * soft limit is raised to the hard one (systemd's default is 1024:524288, a shell's often
 * the same: 1,024 was every connection_max's worth and nothing for the engine); whatever
 * that gives must hold connections_max, the files open and RILL_SERVER_FDS_RESERVED.
 */
static void serve_fds_raise(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl); /* refused: serve_fds_check says so */
	}
}

/* Whether @name is a partition's folder's: decimal digits only. */
static bool serve_partition_name(const char *name)
{
	if (name[0] == '\0')
		return false;
	for (const char *c = name; *c != '\0'; c++) {
		if (*c < '0' || *c > '9')
			return false;
	}
	return true;
}

/* The partitions stored under @data: the folders DATA/topics/NAME/N (0 when none, the
 * directory not made yet). A folder whose topic the open skips (a create that crashed
 * before its definition) is counted: the estimate errs high. */
static uint64_t serve_partitions_stored(const char *data)
{
	char path[SERVE_TEXT_BYTES + 2 * 256 + 16];
	snprintf(path, sizeof(path), "%s/topics", data);
	DIR *topics = opendir(path);
	if (topics == NULL)
		return 0;
	uint64_t n = 0;
	for (struct dirent *t = readdir(topics); t != NULL; t = readdir(topics)) {
		if (t->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/topics/%s", data, t->d_name);
		DIR *parts = opendir(path);
		if (parts == NULL)
			continue; /* topic.json or the like: not a topic's folder */
		for (struct dirent *p = readdir(parts); p != NULL; p = readdir(parts))
			n += serve_partition_name(p->d_name) &&
			     (p->d_type == DT_DIR || p->d_type == DT_UNKNOWN);
		closedir(parts);
	}
	closedir(topics);
	return n;
}

/* What the engine and the server will open for @shards shards, reckoned from the data
 * directory before the engine opens (RILL_SERVER_FDS_*, rill/server.h: the server's
 * budget for topics made while it runs reckons partitions the same); DPDK's files are
 * not in it. */
static uint64_t serve_fds_engine(const struct serve_opts *o, uint32_t shards, uint64_t *partitions)
{
	*partitions = serve_partitions_stored(o->data);
	/* With log_io = buffered a partition holds no O_DIRECT handle: two, not three. The
	 * running server's budget counts the files it finds open, so reckoning three here made
	 * each start-and-create round leave less room than the next start assumed: the
	 * third start refused what the second had made. */
	uint64_t per = RILL_SERVER_FDS_PER_PARTITION - (o->engine.log_buffered_io ? 1u : 0u);
	return RILL_SERVER_FDS_ENGINE + (uint64_t)shards * RILL_SERVER_FDS_PER_SHARD +
	       *partitions * per;
}

/*
 * Whether the limit holds connections_max beside the files open now, the subscribers'
 * readers and the reserve (rill/server.h), for an engine of @shards shards; before the
 * engine opens (@server NULL), with its files and the server's reckoned from the data
 * directory, so that the connections_max suggested then is the one the check after the
 * open takes (it used to count ~5 descriptors, suggest a number and refuse it once the
 * engine's files were open: a whole open and recovery spent on each try). Each
 * subscription holds its partition's segment open while it lasts, up to
 * subscriptions_per_shard on each shard: more than the reserve may hold (1,024 a shard at
 * most), so counted apart. Once @server runs, the same sum becomes its budget: a topic
 * created over it must fit beside them (rill_server_fds_budget), so that a restart under
 * the same limit starts. 0, or exit status 1 said, with what to do and where
 * connections_max and subscriptions_per_shard were set.
 */
static int serve_fds_check(const struct serve_opts *o, uint32_t shards, struct rill_server *server)
{
	bool before_open = server == NULL;
	uint64_t readers = (uint64_t)shards * o->engine.subscriptions_per_shard;
	uint64_t partitions = 0;
	uint64_t files = before_open ? serve_fds_engine(o, shards, &partitions) : 0;
	struct rill_error_text err = {{0}};
	int rc = before_open ? rill_server_fds_check(&o->server, readers + files, &err)
			     : rill_server_fds_budget(server, readers, &err);
	if (rc == 0)
		return 0;
	const struct serve_key *k = serve_key_seen(o, "server.connections_max");
	char where[256] = "";
	if (k != NULL)
		snprintf(where, sizeof(where), "; connections_max is set at %s line %d", k->path,
			 k->line);
	k = serve_key_seen(o, "engine.subscriptions_per_shard");
	char subs_where[256] = "";
	if (k != NULL)
		snprintf(subs_where, sizeof(subs_where), ", set at %s line %d", k->path, k->line);
	char engine[256] = "";
	if (before_open)
		snprintf(engine, sizeof(engine),
			 "; and %llu for the files the engine and the server will open, reckoned "
			 "before the open from %llu partitions stored (%s each) and %u shards",
			 (unsigned long long)files, (unsigned long long)partitions,
			 o->engine.log_buffered_io ? "two, log_io buffered" : "three", shards);
	fprintf(stderr,
		"rill: serve: %s\nrill: serve: those %llu more: %llu for a segment held open by "
		"each subscription the shards may hold (%u shards x subscriptions_per_shard "
		"%u%s; fewer with a lower subscriptions_per_shard)%s\n"
		"rill: serve: the limit is raised with LimitNOFILE= in the systemd unit, "
		"ulimit -n in a shell%s\n",
		err.message, (unsigned long long)(readers + files), (unsigned long long)readers,
		shards, o->engine.subscriptions_per_shard, subs_where, engine, where);
	return 1;
}

/* The shards the engine will have: as set, or one per CPU (rill_engine_open's default). */
static uint32_t serve_shards(const struct serve_opts *o)
{
	if (o->engine.shards != 0)
		return o->engine.shards;
	uint32_t n = (uint32_t)rill_cpu_count();
	return n < RILL_ENGINE_SHARDS_MAX ? n : RILL_ENGINE_SHARDS_MAX;
}

/* The DPDK ingress's counters in `rill stat`, under "dpdk". */
static int serve_dpdk_stat(void *arg, char *json, size_t bytes)
{
	return rill_dpdk_stat_json(arg, json, bytes);
}

/* Start the DPDK ingress; prints why not. 0 or exit status 1. */
static int serve_dpdk(struct serve_opts *o, struct rill_engine *engine, struct rill_dpdk **out)
{
	if (o->dpdk.idle_nap_us != 0 && o->engine.poll == RILL_POLL_BUSY)
		fprintf(stderr, "rill: serve: [dpdk] idle_nap_us does nothing with poll = busy: "
				"busy shards never sleep\n");
	const char *why = NULL;
	int rc = rill_dpdk_eal_init(o->eal, &why);
	if (rc < 0) {
		fprintf(stderr, "rill: serve: DPDK EAL \"%s\": %s\n", o->eal, why);
		return 1;
	}
	struct rill_error_text err = {{0}};
	rc = rill_dpdk_start(out, engine, &o->dpdk, &err);
	if (rc < 0) {
		fprintf(stderr, "rill: serve: %s\n",
			err.message[0] ? err.message : rill_strerror(rc));
		return 1;
	}
	fprintf(stderr, "rill: DPDK port %u: %u RX queues, UDP port %u, %s\n", o->dpdk.port,
		rill_dpdk_queues(*out), o->dpdk.udp_port,
		o->dpdk.acks ? "ACK datagrams (at least once)" : "at most once");
	return 0;
}

/*
 * The server's settings, checked as rill_server_start will, each error with where its
 * values came from. The values first, apart from the address: each single one was
 * checked at its line, so what fails here is two of the file's values that disagree
 * (the command line sets none of them); then the address, which may be the file's line
 * or the command line's. 0, or exit status 1 said.
 */
static int serve_server_check(const struct serve_opts *o)
{
	struct rill_error_text err = {{0}};
	struct rill_server_config values = o->server;
	values.listen = "127.0.0.1:0"; /* numeric, any port: nothing to resolve or probe */
	if (rill_server_config_check(&values, &err) < 0) {
		fprintf(stderr, "rill: serve: %s%s%s\n", o->config_path ? o->config_path : "",
			o->config_path ? ": " : "", err.message);
		return 1;
	}
	if (rill_server_config_check(&o->server, &err) < 0) {
		const struct serve_key *k =
			o->listen_cli ? NULL : serve_key_seen(o, "server.listen");
		if (k != NULL)
			fprintf(stderr, "rill: serve: %s: line %d: %s\n", k->path, k->line,
				err.message);
		else
			fprintf(stderr, "rill: serve: %s\n", err.message);
		return 1;
	}
	return 0;
}

/* The signals: those that stop the server, blocked for sigwait into @stop, and those
 * ignored. Before any thread starts, so that every thread inherits both. */
static void serve_signals(sigset_t *stop)
{
	sigemptyset(stop);
	sigaddset(stop, SIGTERM);
	sigaddset(stop, SIGINT);
	/* The terminal closed (`scripts/run.sh` in a window shut, an ssh session lost): by
	 * default SIGHUP would end the server without a drain or the final sync. Unless it
	 * is ignored already (nohup): Linux keeps a blocked signal pending even when
	 * ignored, so sigwait would take it and stop what nohup meant to keep running. */
	struct sigaction hup;
	if (sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler != SIG_IGN)
		sigaddset(stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, stop, NULL); /* only sigwait takes them */
	/* A write past the file size limit (ulimit -f, systemd's LimitFSIZE=) fails with
	 * EFBIG and is reported; by default its SIGXFSZ would end the server, every
	 * partition with it. The shards block it themselves; this covers the other threads
	 * (topic, projection and group files, the schema registry). */
	signal(SIGXFSZ, SIG_IGN);
	/* stderr may be a pipe whose reader is gone (`rill serve 2>&1 | tee log`, Ctrl-C
	 * ending tee too): the "stopping" line would raise SIGPIPE, whose default ends the
	 * process before the drain and the final sync, losing what durability none holds in
	 * memory. Ignored, the write fails with EPIPE and the stop goes on. (The sockets send
	 * with MSG_NOSIGNAL.) */
	signal(SIGPIPE, SIG_IGN);
}

/* What serve_start started. */
struct serve_running {
	struct rill_engine *engine;
	struct rill_server *server;
	struct rill_dpdk *dpdk;
};

/* Stop what runs, in reverse: DPDK, the server (its drain), the engine (its final
 * sync). 0, or exit status 1 said. */
static int serve_stop(struct serve_running *r)
{
	if (r->dpdk != NULL) {
		(void)rill_server_stat_source(r->server, "dpdk", NULL, NULL); /* before it goes */
		(void)rill_dpdk_stop(
			r->dpdk); /* its events are in the rings: the close syncs them */
	}
	if (r->server != NULL) {
		int rc = rill_server_stop(r->server, SERVE_DRAIN_NS);
		if (rc < 0)
			fprintf(stderr, "rill: serve: drain: %s (stopped all the same)\n",
				rill_strerror(rc));
	}
	int rc = rill_engine_close(r->engine);
	if (rc < 0) {
		fprintf(stderr, "rill: serve: closing the engine: %s\n", rill_strerror(rc));
		return 1;
	}
	return 0;
}

/* Open the engine, start the server and DPDK. 0, or exit status 1 said, what started
 * stopped again. */
static int serve_start(struct serve_opts *o, struct serve_running *r)
{
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&r->engine, &o->engine, &err);
	if (rc < 0) {
		fprintf(stderr, "rill: serve: %s: %s\n", o->data,
			err.message[0] != '\0' ? err.message : rill_strerror(rc));
		return 1;
	}
	rc = rill_server_start(&r->server, r->engine, &o->server, &err);
	if (rc < 0) {
		fprintf(stderr, "rill: serve: %s\n",
			err.message[0] != '\0' ? err.message : rill_strerror(rc));
		r->server = NULL;
		(void)serve_stop(r);
		return 1;
	}
	if (o->dpdk_on && serve_dpdk(o, r->engine, &r->dpdk) != 0) {
		r->dpdk = NULL;
		(void)serve_stop(r);
		return 1;
	}
	if (r->dpdk != NULL)
		(void)rill_server_stat_source(r->server, "dpdk", serve_dpdk_stat, r->dpdk);
	/* The open-file limit again, with everything open: the engine's files (three for
	 * each partition it holds), the server's (four for each shard), DPDK's. A client
	 * that connected in this moment counts as a file: stricter by that many. The
	 * server keeps the sum as the budget its TOPIC_CREATEs must fit. */
	if (serve_fds_check(o, rill_engine_shards(r->engine), r->server) != 0) {
		(void)serve_stop(r);
		return 1;
	}
	return 0;
}

static int serve_run(struct serve_opts *o)
{
	sigset_t stop;
	serve_signals(&stop);
	serve_fds_raise();
	/* Before the engine opens (a recovery of every log, a data directory made): a bad
	 * value, a port taken or too low an open-file limit is said at once, and nothing is
	 * left behind. */
	if (serve_server_check(o) != 0 || serve_fds_check(o, serve_shards(o), NULL) != 0)
		return 1;
	struct serve_running r = {0};
	if (serve_start(o, &r) != 0)
		return 1;
	fprintf(stderr, "rill: listening on %s\n", rill_server_address(r.server));
	int sig = 0;
	sigwait(&stop, &sig);
	fprintf(stderr, "rill: %s: stopping: draining connections (again to force)\n",
		strsignal(sig));
	/* A second signal takes its default action: the process ends at once. What was
	 * acknowledged as durable is on disk; the rest was never promised. */
	pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
	if (serve_stop(&r) != 0)
		return 1;
	fprintf(stderr, "rill: stopped\n");
	return 0;
}

/*
 * Shards and CPUs, one CPU per shard: the list sets the shard count or must agree with
 * it, and the command line wins over the file for either. Returns -1 to go on, else an
 * exit status.
 */
static int serve_cpus(struct serve_opts *o)
{
	if (o->cpu_count == 0)
		return -1;
	if (o->shards_cli && !o->cpus_cli && o->engine.shards != o->cpu_count) {
		/* --shards over the file's list, which no longer fits. */
		fprintf(stderr,
			"rill: serve: --shards %u: the config file's cpus (%u CPUs) do not apply; "
			"the shards take the CPUs in turn\n",
			o->engine.shards, o->cpu_count);
		return -1;
	}
	if (o->engine.shards == 0 || (o->cpus_cli && !o->shards_cli)) {
		o->engine.shards = o->cpu_count; /* --cpus over the file's shards, or no shards */
	} else if (o->engine.shards != o->cpu_count && !o->shards_cli) {
		/* Both from the config file: name its lines. */
		const struct serve_key *cpus = serve_key_seen(o, "engine.cpus");
		const struct serve_key *shards = serve_key_seen(o, "engine.shards");
		RILL_ASSERT(cpus != NULL);
		RILL_ASSERT(shards != NULL);
		fprintf(stderr,
			"rill: serve: %s: line %d: [engine] cpus lists %u CPU(s) for the %u "
			"shard(s) of %s%sline %d: one per shard\n",
			cpus->path, cpus->line, o->cpu_count, o->engine.shards,
			shards->path != cpus->path ? shards->path : "",
			shards->path != cpus->path ? " " : "", shards->line);
		return 1;
	} else if (o->engine.shards != o->cpu_count) {
		char msg[128];
		snprintf(msg, sizeof(msg), "cpus lists %u CPU(s) for %u shard(s): one per shard",
			 o->cpu_count, o->engine.shards);
		return cli_usage_error("serve", msg);
	}
	o->engine.cpus = o->cpus;
	return -1;
}

/*
 * A DPDK setting without DPDK itself is refused: taken and ignored, it would leave an
 * operator waiting for UDP events that nothing receives (rill serve has no UDP ingress but
 * DPDK's). Every [dpdk] key but eal is such a setting, a default value included, so a
 * config file with no DPDK has no [dpdk] keys at all: the message says so, at the key's
 * line. Returns -1 to go on, else an exit status.
 */
static int serve_dpdk_wanted(const struct serve_opts *o)
{
	if (o->dpdk_on || o->dpdk_opt[0] == '\0')
		return -1;
	char name[sizeof("dpdk.") + sizeof(o->dpdk_opt)];
	snprintf(name, sizeof(name), "dpdk.%s", o->dpdk_opt);
	const struct serve_key *k = serve_key_seen(o, name);
	if (k != NULL) { /* from the file: a config error, at its line, as the others */
		fprintf(stderr,
			"rill: serve: %s: line %d: [dpdk] %s is set, but not eal (DPDK itself): "
			"add eal to [dpdk] (or give --dpdk \"EAL ARGS\"); for no DPDK ingress, "
			"remove the [dpdk] section: every key in it needs eal\n",
			k->path, k->line, o->dpdk_opt);
		return 1;
	}
	char msg[160];
	snprintf(msg, sizeof(msg),
		 "DPDK's %s is set, but not DPDK itself: give --dpdk \"EAL ARGS\" (or eal in "
		 "[dpdk])",
		 o->dpdk_opt);
	return cli_usage_error("serve", msg);
}

int cli_serve(int argc, char **argv)
{
	struct serve_opts *o = calloc(1, sizeof(*o));
	if (o == NULL)
		return 1;
	rill_engine_config_default(&o->engine);
	rill_server_config_default(&o->server);
	rill_dpdk_config_default(&o->dpdk);
	strcpy(o->data, "./data");
	strcpy(o->listen, RILL_SERVER_LISTEN_DEFAULT);
	int status = -1;
	for (int i = 2; i + 1 < argc && status < 0; i++) {
		if (strcmp(argv[i], "--config") == 0)
			status = serve_config(o, argv[++i]) != 0 ? 1 : -1;
	}
	if (status < 0)
		status = serve_args(o, argc, argv);
	if (status < 0)
		status = serve_cpus(o);
	if (status < 0)
		status = serve_dpdk_wanted(o);
	if (status < 0) {
		o->engine.data_dir = o->data;
		o->server.listen = o->listen;
		status = serve_run(o);
	}
	free(o);
	return status;
}
