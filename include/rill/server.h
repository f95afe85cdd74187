/*
 * rill/server.h - the io_uring TCP server: rill's native protocol (docs/PROTOCOL.md) in
 * front of an engine. `rill serve` runs one; an application embedding the engine may run one too.
 *
 * One worker per engine shard, running inside the shard's loop on the shard's thread (a
 * shard hook), each with its own io_uring (SINGLE_ISSUER and DEFER_TASKRUN where the
 * kernel offers them, SQPOLL as an option), its own SO_REUSEPORT listener on the same port
 * (the kernel spreads connections over them), multishot accept, a single-shot recv per
 * connection into a ring of provided buffers, armed again only while the connection may
 * read (a multishot recv kept taking buffers after a stall, past every bound on memory),
 * and one batched send per connection per loop turn. Frames are
 * parsed in place from the receive buffers. Each worker publishes through its own
 * producer handle: rings to every shard, so events reach their owner shard over SPSC
 * rings (the local shard's ring is drained by the same thread, in its next turn) and
 * acknowledgements come back the same way. What must wait for a shard (queries, admin,
 * opening and closing subscriptions) runs on one control thread and comes back to the
 * worker, so a worker never blocks its shard. A shard sleeping in adaptive mode sleeps in
 * its worker's ring.
 *
 * Limits (struct rill_server_config) bound every frame, connection, in-flight byte and
 * output buffer; a peer that breaks the protocol gets a fatal ERROR frame and is closed.
 */
#ifndef RILL_SERVER_H
#define RILL_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "rill/rill.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rill_server;

#define RILL_SERVER_LISTEN_DEFAULT    "127.0.0.1:7400"
#define RILL_SERVER_CONNECTIONS_MAX   65536u /* the most connections_max may be */
#define RILL_SERVER_SUBSCRIPTIONS_MAX 1024u  /* the most subscriptions_max may be */
/*
 * Descriptors under the process's open-file limit (the soft RLIMIT_NOFILE) that no
 * connection takes: the top ones, left to the files the engine opens while the server
 * runs (a segment roll's new file, a snapshot; a new topic's partitions, three files
 * each, unless a budget keeps them apart: rill_server_fds_budget). Subscribers' readers,
 * one per subscription, are the host's to count beside it (rill_server_fds_check's
 * fds_later): as many as 1,024 on each shard. The kernel hands out the lowest free
 * descriptor, so a connection given one of these means every descriptor below it is
 * taken: the server closes it at once (counted in refused), and the engine finds these
 * when it needs them. Under a soft limit lowered below its value at rill_server_start
 * (prlimit), where the lowest free descriptor no longer tells what is free above it, the
 * descriptors open are counted at each connection, which is kept only if this many stay
 * free. A host sizes its limit as connections_max + the files open at start + the
 * subscribers' readers + this (rill_server_fds_check).
 */
#define RILL_SERVER_FDS_RESERVED 256u
/*
 * The descriptors the engine and the server hold once open, for a host that reckons them
 * before the engine opens (rill serve, from its data directory) and for the budget a
 * running server keeps (rill_server_fds_budget): the data directory's lock and the schema
 * registry's lock and log; for each shard its io_uring and wake eventfd, and its server
 * worker's io_uring, listener, control and producer eventfds; for each partition its lock
 * and its active segment, twice (the O_DIRECT handle for batches; buffered I/O: once).
 * A partition holds its three for as long as the engine is open: a topic's, once made,
 * never go back. test_serve_fds.sh holds the reckoning to what is counted once open.
 */
#define RILL_SERVER_FDS_ENGINE        3u
#define RILL_SERVER_FDS_PER_SHARD     6u
#define RILL_SERVER_FDS_PER_PARTITION 3u

struct rill_server_config {
	const char *listen;                 /* "HOST:PORT" (default 127.0.0.1:7400; port 0:
					      * any free one, see rill_server_port) */
	uint32_t frame_bytes_max;           /* a frame's body (default 1 MiB) */
	uint64_t conn_inflight_bytes_max;   /* PRODUCE bytes awaiting their ACK, per
					      * connection (default 8 MiB) */
	uint64_t server_inflight_bytes_max; /* the same over all connections (256 MiB) */
	uint32_t connections_max;           /* open at once, over the server (1,024); fewer
					      * when the open-file limit leaves less room
					      * (RILL_SERVER_FDS_RESERVED) */
	uint64_t idle_timeout_ns;           /* close a connection silent this long, with
					      * nothing in flight (default 300 s; 0: never) */
	uint64_t handshake_timeout_ns;      /* HELLO must come within (default 5 s) */
	uint64_t send_stall_timeout_ns;     /* a peer that reads nothing of a full output
					      * buffer this long is cut off (default 10 s) */
	uint64_t query_wait_ns;             /* a query token's default wait (1 s) */
	uint32_t subscriptions_max;         /* partitions subscribed, per connection (64) */
	bool sqpoll;                        /* a kernel thread polls each worker's ring */
};

/* rill_server_config_default - the defaults above. */
void rill_server_config_default(struct rill_server_config *config);

/*
 * rill_server_config_check - what rill_server_start checks before it starts anything:
 * every value in range, config->listen a HOST:PORT that resolves, and its port free. For
 * a caller that has costly work to do before the start (rill serve opens the engine, a
 * recovery of every log, after it). Returns 0, -EINVAL or -EADDRINUSE (or -errno) with
 * @err (optional) saying which. Blocks briefly (name resolution).
 */
int rill_server_config_check(const struct rill_server_config *config, struct rill_error_text *err);

/*
 * rill_server_fds_check - whether the process's open-file limit (the soft RLIMIT_NOFILE,
 * read now) holds config->connections_max connections beside the files open now (the
 * engine's, once it is open, and the host's), @fds_later more that the host knows it will
 * hold open while it runs, and RILL_SERVER_FDS_RESERVED for the engine's files to come.
 * @fds_later is what the reserve is not sized for: one descriptor for each subscription
 * the engine may hold at once (each subscribed partition keeps a segment open: shards x
 * subscriptions_per_shard, which may reach 1,024 on each shard), and, called before the
 * engine opens, the files it will open then. Returns 0, or -EMFILE with @err (optional)
 * naming the limit, the numbers it must hold, the hard limit and the connections_max that
 * would fit. Not called by rill_server_start, which serves under any limit (a connection
 * that would take a reserved descriptor is refused): for a host that would rather not
 * start (rill serve raises its soft limit to the hard one, then calls it). Any thread;
 * reads /proc/self/fd.
 */
int rill_server_fds_check(const struct rill_server_config *config, uint64_t fds_later,
			  struct rill_error_text *err);

/*
 * rill_server_fds_budget - rill_server_fds_check for @server, running, with the files it,
 * the engine and the host hold open now, and a budget kept from then on: a TOPIC_CREATE
 * over the server whose partitions (RILL_SERVER_FDS_PER_PARTITION descriptors each, held
 * for good) would not fit under the limit beside connections_max, @fds_later, the
 * reserve and the files held now (those counted here, and three for each partition made
 * since) gets ERROR -EMFILE naming the numbers and what to do, and nothing is made. The
 * sum is the one a restart's rill_server_fds_check makes with the same limit, so a topic
 * the server makes never stops the next start (before, creates went on until the files
 * took the descriptors kept for connections: most connections were refused, and the
 * restart refused to start; at a tight limit, until a create failed with EMFILE, the
 * segment rolls and consumers left without a descriptor). The limit is read at each
 * TOPIC_CREATE. Call it once the server and whatever the host opens beside it are up
 * (connections open then count as files: stricter by that many); a later call counts
 * again and replaces the budget. Without a call, TOPIC_CREATE is not checked (the engine
 * refuses a partition without a descriptor with EMFILE). Topics made by the host through
 * rill_topic_create count once made. The budget is kept whatever the result. Returns 0,
 * or -EMFILE with @err (optional) as rill_server_fds_check. Any host thread but a shard's;
 * waits for a TOPIC_CREATE in progress; reads /proc/self/fd.
 */
int rill_server_fds_budget(struct rill_server *server, uint64_t fds_later,
			   struct rill_error_text *err);

/*
 * rill_server_start - listen on config->listen and serve @engine with one worker per
 * shard. Each worker opens a producer handle of its own: the server takes one per shard of
 * the engine's RILL_ENGINE_PRODUCERS_MAX (the DPDK ingress takes one per RX queue, and the
 * host's own count too). The engine must outlive the server. Returns 0 once every worker
 * accepts, or -EINVAL (a bad config or address, @err says which), -EADDRINUSE, -ENOSPC
 * (no producer handle left for a worker), -errno, with @err. Blocks briefly.
 */
int rill_server_start(struct rill_server **out, struct rill_engine *engine,
		      const struct rill_server_config *config, struct rill_error_text *err);

/* rill_server_port - the port it listens on (the one picked, for port 0). */
uint16_t rill_server_port(const struct rill_server *server);

/* rill_server_address - "HOST:PORT" it listens on. */
const char *rill_server_address(const struct rill_server *server);

/* Counters over every worker, read while it runs. */
struct rill_server_stats {
	uint64_t connections;  /* open now */
	uint64_t accepted;     /* since start */
	uint64_t refused;      /* past connections_max, or given a descriptor kept for the
				* engine's files (RILL_SERVER_FDS_RESERVED) */
	uint64_t frames;       /* frames received */
	uint64_t bad_frames;   /* malformed frames (each closed its connection) */
	uint64_t events;       /* events published */
	uint64_t acks;         /* ACK frames sent */
	uint64_t backpressure; /* times a connection waited for room (rings, budgets) */
	uint64_t cut_off;      /* connections closed for a timeout or a stalled reader */
	uint64_t bytes_in, bytes_out;
	uint64_t inflight_bytes;      /* bytes held now: PRODUCEs awaiting their ACKs, frames
				       * being read (server_inflight_bytes_max) */
	uint64_t inflight_bytes_peak; /* the most held at once since start */
	uint64_t input_bytes;         /* bytes of the connections' input buffers now: a frame
				       * being read or kept, at most frame_bytes_max + 64 KiB +
				       * 16 each; an idle connection's is freed */
	uint64_t input_bytes_peak;    /* the most they held at once since start */
};

void rill_server_stats_get(struct rill_server *server, struct rill_server_stats *out);

/*
 * A stat source: more counters for ADMIN STAT (`rill stat`), from what runs beside the
 * server (the DPDK ingress). It writes one JSON object, NUL-terminated, into @json
 * (@bytes: 4 KiB) and returns 0, or an error (the answer then says so under its name).
 * Called on the server's control thread.
 */
typedef int (*rill_server_stat_fn)(void *arg, char *json, size_t bytes);

/*
 * rill_server_stat_source - STAT answers carry @fn's object under @name ([a-z_], up to 31
 * bytes, not one of STAT's own keys); @fn NULL removes the source named @name. One source
 * at a time. Returns 0, -EINVAL, -EBUSY (another is set) or -ENOENT (removing one not
 * set). Once a removal returns, @fn is not running and will not be called again.
 */
int rill_server_stat_source(struct rill_server *server, const char *name, rill_server_stat_fn fn,
			    void *arg);

/*
 * rill_server_stop - stop accepting, stop reading, wait (up to @drain_ns) until every
 * event taken in has its acknowledgement sent, close every connection, take the workers
 * off their shards, stop the control thread, free. The engine keeps running (close it
 * after: its final sync). Returns 0, or -ETIMEDOUT when the drain ran out of time (it
 * stops all the same). Blocks: past @drain_ns too while the shards still owe durable
 * acknowledgements for events taken in (up to a topic's batch delay and its sync: the
 * producer handle cannot be freed under them), and while a running admin request ends.
 */
int rill_server_stop(struct rill_server *server, uint64_t drain_ns);

#ifdef __cplusplus
}
#endif
#endif /* RILL_SERVER_H */
