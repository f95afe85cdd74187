/*
 * rill/client.h - the C client of a rill server (`rill serve`), over the native protocol
 * (docs/PROTOCOL.md). Part of librill.
 *
 * A client is one TCP connection. Blocking calls (admin, query, ping, produce) send one
 * request and wait for its answer; the pipelined calls (rill_client_produce_send and
 * rill_client_produce_wait) keep several PRODUCE requests in flight and collect their
 * acknowledgements as they come, so that one connection can run at the disk's or the
 * network's pace rather than at one round trip per batch. A connection that subscribes
 * (rill_client_subscribe) is a consumer from then on: it only reads events.
 *
 * Threads: a client is used by one thread at a time. Every call blocks at most the
 * timeout of its config (or its own wait) and returns 0 or a negative code: -errno for the
 * system's errors (-ECONNREFUSED, -ETIMEDOUT, -ECONNRESET...), a RILL_E_* code, or the
 * code of the server's ERROR frame; @err (optional everywhere) then holds the message.
 * -ETIMEDOUT always means that a call's own deadline passed; a server that stopped
 * answering altogether (the keepalive of struct rill_client_config) is -ECONNABORTED.
 */
#ifndef RILL_CLIENT_H
#define RILL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rill/error.h"
#include "rill/projection.h"
#include "rill/record.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rill_client;

#define RILL_CLIENT_ERROR_BYTES 1024u
struct rill_client_error {
	char message[RILL_CLIENT_ERROR_BYTES];
};

/*
 * A client's settings; 0 in any field takes its default.
 *
 * Keepalive: a server whose host stops answering (power lost, network gone: no FIN or RST
 * ever comes) is given up on after keepalive_idle_ns + keepalive_interval_ns *
 * keepalive_count of silence, 25 s by default. An idle connection (a subscriber waiting for
 * events) is probed by TCP keepalive (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL,
 * TCP_KEEPCNT). Calls then return -ECONNABORTED, "the server has not answered for N s".
 * A live server that stops reading (backpressure) is waited for, however long, within
 * each call's own deadline (no TCP_USER_TIMEOUT, which Linux would apply to a closed
 * receive window's answered probes); bytes sent to a host that vanished meanwhile wait
 * for the kernel's retransmissions (some 15 minutes) or that deadline. The server sends
 * no heartbeat and the protocol needs none: TCP's own probes work without one. Whole
 * seconds (rounded up); idle and interval up to 32,767 s, count up to 127 (Linux's limits).
 */
struct rill_client_config {
	uint64_t timeout_ns;      /* connect and every blocking call (default 10 s) */
	uint32_t frame_bytes_max; /* largest frame it will send (default: the server's,
				   * announced in HELLO_OK); it takes frames up to the
				   * server's limit, which the server fills its own to */
	uint32_t inflight_max;    /* PRODUCE requests in flight at once (default 64) */

	uint64_t keepalive_idle_ns;     /* silence before the first probe (default 10 s) */
	uint64_t keepalive_interval_ns; /* between probes (default 5 s) */
	uint32_t keepalive_count;       /* probes unanswered that end it (default 3) */
};

/* rill_client_config_default - the defaults above. */
void rill_client_config_default(struct rill_client_config *config);

/*
 * rill_client_connect - connect to @address ("HOST:PORT"; HOST a name or an IPv4 or IPv6
 * address, [::1]:7400 for IPv6) and shake hands. @config may be NULL. Returns 0,
 * -EINVAL (a bad address), -errno of the connection, RILL_E_WIRE_VERSION or
 * RILL_E_WIRE_MAGIC (not a rill server of a version this client speaks). Blocks, name
 * resolution included, within config.timeout_ns: a numeric address is never resolved; a
 * name is resolved by getaddrinfo on a thread of the client's own, which it waits for until
 * the timeout (-ETIMEDOUT, "resolving ... took longer"), then leaves to end alone, within
 * the resolver's own timeouts (the timeout and attempts options of /etc/resolv.conf).
 */
int rill_client_connect(struct rill_client **out, const char *address,
			const struct rill_client_config *config, struct rill_client_error *err);

/* rill_client_close - close the connection and free. */
void rill_client_close(struct rill_client *client);

/* rill_client_server_shards - the server's shard count, from its HELLO_OK. */
uint32_t rill_client_server_shards(const struct rill_client *client);

/* rill_client_frame_bytes_max - the limit in force on this connection for the frames it
 * sends (body bytes): the smaller of config.frame_bytes_max and the server's limit from its
 * HELLO_OK, what a PRODUCE request's events must fit in (or -EMSGSIZE). The frames it takes
 * may be as large as the server's own limit. */
uint32_t rill_client_frame_bytes_max(const struct rill_client *client);

/* rill_client_ping - one round trip. 0 or an error. Blocks. */
int rill_client_ping(struct rill_client *client, struct rill_client_error *err);

/* The ADMIN ops and the JSON each takes and answers: docs/PROTOCOL.md, "Administration". */
enum rill_admin_op {
	RILL_ADMIN_TOPIC_CREATE = 1,
	RILL_ADMIN_SCHEMA_REGISTER = 2,
	RILL_ADMIN_PROJECTION_CREATE = 3,
	RILL_ADMIN_STAT = 4,
	RILL_ADMIN_SCHEMAS = 5,
	RILL_ADMIN_TOPIC_INFO = 6,
	RILL_ADMIN_GROUP_COMMIT = 7,
	RILL_ADMIN_GROUP_FETCH = 8,
	RILL_ADMIN_GROUP_DELETE = 9,
	RILL_ADMIN_TOPICS = 10,
	RILL_ADMIN_PROJECTIONS = 11,
};

/*
 * rill_client_admin - an ADMIN request (@op: enum rill_admin_op): sends
 * @json and, on success, gives the answer's JSON in @answer (malloc'ed, NUL-terminated;
 * free it) when @answer is not NULL. Returns 0 or the server's error. Blocks.
 */
int rill_client_admin(struct rill_client *client, uint16_t op, const char *json, char **answer,
		      struct rill_client_error *err);

/* A query's options; all optional (zeroed: the current value, no waiting). Not named
 * after rill_client_query: in C++ a struct and a function of one name hide each other. */
struct rill_client_query_options {
	bool as_of_offset;    /* the value as of @as_of, an offset of the key's partition */
	bool as_of_timestamp; /* the value as of @as_of, a timestamp in ns */
	uint64_t as_of;
	bool has_token; /* read your writes: wait until this is applied */
	uint32_t token_partition;
	uint64_t token_offset;
	uint32_t timeout_ms; /* the wait for the token (0: the server's default) */
};

/*
 * rill_client_query - projection @name's value for @key. Returns 0 with @out filled,
 * -ENOENT (no such projection, or no value for the key), -ENOSPC (no value, and the
 * projection is full: the key may be one it refused; rill_query), RILL_E_QUERY_STALE,
 * -ERANGE (as of a point retention no longer reaches), or another error. Blocks.
 */
int rill_client_query(struct rill_client *client, const char *name, const void *key,
		      size_t key_bytes, const struct rill_client_query_options *options,
		      struct rill_projection_value *out, struct rill_client_error *err);

/* One event's acknowledgement, in the order the events were sent. */
struct rill_client_ack {
	int error;            /* 0, or why it was refused (rill_strerror) */
	uint32_t partition;   /* where it went (valid when error is 0 and acks was not none) */
	uint64_t offset;      /* its offset; UINT64_MAX with acks none, or for a duplicate
			       * older than its producer's last 8 (not known) */
	uint32_t event_count; /* events appended for it (a command may emit several) */
	bool duplicate;       /* a retry of an event already written: its first offset */
	char reason[256];     /* a refusal's reason, "" when none */
};

/* enum rill_acks of rill.h: 0 none, 1 applied, 2 durable. */

/*
 * rill_client_produce_send - send @count events (1 .. 65,535) for @topic in one PRODUCE
 * request asking for acknowledgements at @acks, without waiting for them. @events: encoded
 * as they are (set producer_id and sequence for an idempotent producer; a timestamp of 0
 * lets the server stamp it). @request_id gets the request's id. Returns 0, -EAGAIN when
 * config.inflight_max requests are in flight already (collect with _wait first), -EMSGSIZE
 * when the events do not fit in one frame, or a connection error. After -EPIPE or
 * -ECONNRESET (the server closed: a stop, a fatal error), or -ECONNABORTED (it stopped
 * answering: the keepalive), nothing more can be sent, but rill_client_produce_wait still
 * hands out the answers that came before, to the end of the stream. So too after
 * -ETIMEDOUT (the server read too little within config.timeout_ns): the frame may have gone
 * in part, so later sends fail (-EPIPE) and the client shuts its side of the connection;
 * the answers already read are handed out, and the server's to the requests whose frames
 * went whole as they come, until the server, meeting the end of the client's stream,
 * closes (a server that never reads again: each wait's -ETIMEDOUT). -EAGAIN also when the
 * request would take the requests in flight past the bytes the server holds for a
 * connection (its conn_inflight_bytes_max, announced at connect; one request always goes).
 * Blocks while the socket takes the bytes, reading the answers that come meanwhile
 * (rill_client_buffered).
 */
int rill_client_produce_send(struct rill_client *client, const char *topic,
			     const struct rill_record *events, uint32_t count, int acks,
			     uint64_t *request_id, struct rill_client_error *err);

/*
 * rill_client_produce_wait - the next PRODUCE request to be answered: its id into
 * @request_id, its acknowledgements into @acks (room for @capacity) and their number into
 * @count. Waits up to @timeout_ns. Returns 0, -ETIMEDOUT, -ENODATA when nothing is in
 * flight (what came meanwhile is read first, without waiting: the server's close or fatal
 * ERROR, an idle timeout's say, comes back instead, and closes the client; a subscribed
 * connection is not read), -ENOSPC (nothing read) when some request in flight has more
 * events than @capacity, the server's error for the whole request (-ENOENT: no such
 * topic), or a connection error. Blocks. A fatal ERROR (the connection closes after it)
 * comes back once, as the answer to the request it names; the other requests then in
 * flight get none (rill_client_inflight turns 0, and later calls return -ENOTCONN):
 * whether their events were written is not known, so a producer that sends them again
 * should be idempotent.
 */
int rill_client_produce_wait(struct rill_client *client, uint64_t *request_id,
			     struct rill_client_ack *acks, uint32_t capacity, uint32_t *count,
			     uint64_t timeout_ns, struct rill_client_error *err);

/*
 * rill_client_cork - gather the PRODUCE frames rill_client_produce_send makes from now on
 * (up to 256 KiB) and send them together at rill_client_uncork (0 or a connection
 * error), as a pipelining client writes a burst of requests in one go; waiting for an
 * answer sends what is gathered first.
 */
void rill_client_cork(struct rill_client *client);
int rill_client_uncork(struct rill_client *client, struct rill_client_error *err);

/* rill_client_fd - the connection's socket, for an event loop that watches several
 * clients (readable: call rill_client_produce_wait with a timeout of 0 until it returns
 * -ETIMEDOUT or -ENODATA; with nothing in flight, it reads the server's close and returns
 * its error); -1 once a connection error (or a fatal ERROR) closed it, when every call
 * returns -ENOTCONN. Never read, write or close it directly. A send that waited for the
 * socket reads the answers that came meanwhile (the server stops reading a connection
 * whose answers are not read): after a send, check rill_client_buffered too. */
int rill_client_fd(const struct rill_client *client);

/* rill_client_buffered - true when an answer, a subscription's events (or what ends the
 * connection) are already read and waiting in the client: rill_client_produce_wait or
 * rill_client_next returns them without the socket turning readable. An event loop calls
 * them while it is true before it polls the fd. */
bool rill_client_buffered(const struct rill_client *client);

/* rill_client_inflight - PRODUCE requests sent and not yet answered. */
uint32_t rill_client_inflight(const struct rill_client *client);

/*
 * rill_client_produce - send the events and wait for their acknowledgements (@acks_out:
 * @count entries, in order). Nothing else may be in flight. Returns 0 (each event's own
 * outcome is in its entry) or an error for the request. Blocks.
 */
int rill_client_produce(struct rill_client *client, const char *topic,
			const struct rill_record *events, uint32_t count, int acks,
			struct rill_client_ack *acks_out, struct rill_client_error *err);

/* Where a subscription starts. */
enum rill_client_from {
	RILL_CLIENT_FROM_OFFSET = 0,    /* @from_value: an offset (the same in every partition) */
	RILL_CLIENT_FROM_TIMESTAMP = 1, /* @from_value: the first event stamped at or after it */
	RILL_CLIENT_FROM_EARLIEST = 2,
	RILL_CLIENT_FROM_LATEST = 3,
};

/* A partition of a subscription, as the server opened it. */
struct rill_client_partition {
	uint32_t partition;
	uint64_t first_offset; /* the first offset it will send */
	uint64_t end_offset;   /* the partition's next offset when it subscribed */
};

#define RILL_CLIENT_PARTITIONS_MAX 1024u

/*
 * rill_client_subscribe - subscribe to @partition of @topic (UINT32_MAX: every partition)
 * from @from. The connection is a consumer from then on. @parts (optional, room for
 * RILL_CLIENT_PARTITIONS_MAX) and @part_count get the partitions opened. Events are
 * durable ones only, in order within a partition. Flow control is the client's: it grants
 * credit as it consumes. Returns 0 or an error. Blocks.
 */
int rill_client_subscribe(struct rill_client *client, const char *topic, uint32_t partition,
			  enum rill_client_from from, uint64_t from_value,
			  struct rill_client_partition *parts, uint32_t *part_count,
			  struct rill_client_error *err);

/* One event read from a subscription. Its pointers are valid until the next call. */
struct rill_client_event {
	uint32_t partition;
	uint64_t offset;
	struct rill_record record;
};

/*
 * rill_client_next - the next event of the subscriptions, waiting up to @timeout_ns.
 * Returns 1 with @event, 0 when none came in time, or an error: the server's, ending one
 * partition of a subscription (the message says which and why; its other partitions go
 * on, so call again), or the connection's (the client is then closed): -ECONNABORTED when
 * the server's host stopped answering, found by the keepalive of struct rill_client_config
 * (without it, a subscriber, which sends nothing while it waits, would wait for good).
 * Blocks.
 */
int rill_client_next(struct rill_client *client, struct rill_client_event *event,
		     uint64_t timeout_ns, struct rill_client_error *err);

#ifdef __cplusplus
}
#endif
#endif /* RILL_CLIENT_H */
