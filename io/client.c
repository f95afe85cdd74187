/*
 * The C client of a rill server (include/rill/client.h): one TCP connection, blocking calls
 * with poll() deadlines, PRODUCE pipelining and subscriptions with client-side credit. Runs
 * on whichever thread calls it (one at a time); control path, not the engine's hot path,
 * though produce_send and next are meant to be called in tight loops. TCP keepalive on the
 * socket (keepalive_set) ends a connection whose server went silent. The one thread of its
 * own resolves a name for a connect (struct resolve_job), which may outlive the connect.
 *
 * The receive buffer holds at most one frame's worth (the frame limit plus a header); frames
 * are read in place and stay valid until the next read, which is what lets
 * rill_client_next hand out records that point into the buffer:
 *
 *    rbuf                rhead          rhead + rframe         rtail          rbuf_bytes
 *    +-------------------+--------------+---------------------+--------------+
 *    | consumed          | frame handed | next frame(s), part | free         |
 *    |                   | out (valid)  | of one maybe        |              |
 *    +-------------------+--------------+---------------------+--------------+
 *
 * Invariants (client_check asserts them in debug builds):
 *   C1. rhead + rframe <= rtail <= rbuf_bytes.
 *   C2. inflight_count <= inflight_max; every in-flight id is unique and below next_id.
 *   C3. sub_count <= RILL_CLIENT_SUBSCRIPTIONS_MAX; stash_bytes is the sum of the stashed
 *       frames' sizes, each with its own header, and stays within
 *       RILL_CLIENT_STASH_BYTES_MAX (events_detach may pass it by one frame).
 *   C4. once !connected, the socket is closed and every call returns -ENOTCONN.
 *
 * Desynchronisation is never recovered: a malformed frame, a fatal ERROR or a frame nobody
 * asked for closes the client (C4). A send cut off by its deadline leaves a frame half sent,
 * so it ends sending for good (send_cut), but not reading: the answers already sent are
 * handed out to the end of the stream, as after the server's own close (send_dead).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/clock.h"
#include "io/wire.h"
#include "rill/client.h"

#define RILL_CLIENT_TIMEOUT_NS_DEFAULT  (10ull * 1000000000ull)
#define RILL_CLIENT_INFLIGHT_DEFAULT    64u
#define RILL_CLIENT_INFLIGHT_MAX        4096u
#define RILL_CLIENT_SUBSCRIPTIONS_MAX   1024u /* one per partition of the largest topic */
#define RILL_CLIENT_CREDIT_EVENTS       1024u /* granted per subscription, topped up at half */
#define RILL_CLIENT_ABANDONED_MAX       16u   /* timed-out requests whose answers we skip */
#define RILL_CLIENT_STASH_BYTES_MAX     (64u << 20) /* EVENTS held while a SUBSCRIBE waits */
#define RILL_CLIENT_EVENTS_PER_SEND_MAX 65535u
#define RILL_CLIENT_HOST_BYTES_MAX      256u
/* TCP keepalive (rill_client_config): probes after 10 s of silence, then every 5 s; 3
 * unanswered end the connection, 25 s after the server's last word. */
#define RILL_CLIENT_KEEPALIVE_IDLE_NS_DEFAULT     (10ull * 1000000000ull)
#define RILL_CLIENT_KEEPALIVE_INTERVAL_NS_DEFAULT (5ull * 1000000000ull)
#define RILL_CLIENT_KEEPALIVE_COUNT_DEFAULT       3u
#define RILL_CLIENT_KEEPALIVE_S_MAX               32767u /* Linux's TCP_KEEPIDLE, TCP_KEEPINTVL */
#define RILL_CLIENT_KEEPALIVE_COUNT_MAX           127u   /* Linux's TCP_KEEPCNT */
#define RILL_CLIENT_SILENCE_MS_MAX                ((uint64_t)INT32_MAX) /* the silence, in ms */

_Static_assert(RILL_CLIENT_SUBSCRIPTIONS_MAX >= RILL_CLIENT_PARTITIONS_MAX,
	       "a topic can be subscribed one partition per call");
_Static_assert(RILL_CLIENT_CREDIT_EVENTS >= 2, "credit is topped up at half");
_Static_assert(RILL_CLIENT_STASH_BYTES_MAX >= RILL_WIRE_FRAME_BYTES_MAX + RILL_WIRE_HEADER_BYTES,
	       "the stash takes at least one frame of the largest size");
_Static_assert((int)RILL_CLIENT_FROM_OFFSET == RILL_WIRE_FROM_OFFSET &&
		       (int)RILL_CLIENT_FROM_TIMESTAMP == RILL_WIRE_FROM_TIMESTAMP &&
		       (int)RILL_CLIENT_FROM_EARLIEST == RILL_WIRE_FROM_EARLIEST &&
		       (int)RILL_CLIENT_FROM_LATEST == RILL_WIRE_FROM_LATEST,
	       "the client's from values are the wire's");
_Static_assert(RILL_WIRE_PARTITION_ALL == UINT32_MAX, "UINT32_MAX subscribes to every partition");
_Static_assert(RILL_CLIENT_KEEPALIVE_IDLE_NS_DEFAULT / 1000000000u <= RILL_CLIENT_KEEPALIVE_S_MAX &&
		       RILL_CLIENT_KEEPALIVE_INTERVAL_NS_DEFAULT / 1000000000u <=
			       RILL_CLIENT_KEEPALIVE_S_MAX &&
		       RILL_CLIENT_KEEPALIVE_COUNT_DEFAULT <= RILL_CLIENT_KEEPALIVE_COUNT_MAX,
	       "the keepalive defaults are within the kernel's limits");

/* A PRODUCE request sent and not yet answered. */
struct client_inflight {
	uint64_t request_id;
	uint32_t event_count; /* events sent: the ACK must have as many entries */
	uint32_t bytes;       /* its frame, header included (the server's in-flight budget) */
	uint8_t acks;         /* the level asked for: none has no offsets */
};

/* A subscription, by the request id its EVENTS carry. */
struct client_sub {
	uint64_t request_id;
	uint32_t used; /* events handed out since credit was last granted */
	uint32_t live; /* partitions the server has not ended (with an ERROR) */
};

/* An EVENTS frame, or a partition's ERROR, that arrived while a SUBSCRIBE waited for its
 * answer; or any frame read while a send waited for room (the early queue). */
struct client_stashed {
	struct client_stashed *next;
	uint64_t request_id;
	uint16_t type; /* the stash: RILL_WIRE_EVENTS or RILL_WIRE_ERROR; early: any */
	uint16_t flags;
	uint32_t body_bytes;
	uint8_t body[]; /* the frame's body, copied */
};

#define CLIENT_EVENTLESS_FRAMES 64u /* frames with no event before rill_client_next's clock */
#define CLIENT_CORK_BYTES       (256u << 10) /* gathered PRODUCE frames sent at once */

struct rill_client {
	int fd;
	bool connected; /* C4 */
	uint16_t shards;
	uint32_t silence_ms_max;  /* the keepalive's: how long the server may say nothing */
	uint32_t frame_bytes_max; /* body bytes it sends: min(config, server) */
	uint32_t recv_bytes_max;  /* body bytes it takes: the server's (its frames fill that) */
	struct rill_client_config config;
	uint64_t next_id;

	uint8_t *rbuf;
	uint32_t rbuf_bytes, rhead, rframe, rtail; /* bytes; see the diagram */
	uint8_t *sbuf;
	uint32_t sbuf_bytes;
	/* Corked (rill_client_cork): PRODUCE frames gather here and go out in one send. */
	uint8_t *obuf;
	uint32_t obuf_len, obuf_cap;
	bool corked;
	bool send_dead; /* the server closed its side: reads go on, sends fail (-EPIPE) */
	bool send_cut;  /* and why: a send cut off by its deadline (send_all), not the server */
	bool timed_out; /* the kernel gave up on the server (keepalive): the end of the stream
			 * reads as -ECONNABORTED (client_lost) */

	struct client_inflight *inflight;
	uint32_t inflight_count;
	uint64_t inflight_bytes;      /* the frames of the requests in flight */
	uint64_t server_inflight_max; /* HELLO_OK's: past it the server reads no more */
	/*
	 * Frames read while a send waited for the socket (send_wait): a server whose output is
	 * full of answers not read stops reading, so a client that only waited to send would
	 * wait for good. recv_frame hands them out before what rbuf holds (they came first).
	 */
	struct client_stashed *early_head, *early_tail, *early_current;
	uint32_t early_count;
	bool input_stop; /* the end, an error or a bad header seen there: recv_frame's to say */
	uint64_t abandoned[RILL_CLIENT_ABANDONED_MAX];
	uint32_t abandoned_count;

	struct client_sub *subs;
	uint32_t sub_count;
	struct client_stashed *stash_head, *stash_tail, *stash_current;
	uint64_t stash_bytes;
	/* The EVENTS frame being handed out: in rbuf, early_current or stash_current. */
	bool events_active;
	const uint8_t *events_body; /* its body, where it lies */
	uint32_t events_bytes;
	uint64_t events_id;
	uint32_t events_partition;
	struct rill_wire_iter events_it;
};

/* ---- Small pieces -------------------------------------------------------------------- */

static int client_fail(struct rill_client_error *err, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int client_fail(struct rill_client_error *err, int rc, const char *fmt, ...)
{
	if (err != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return rc;
}

static void client_check(const struct rill_client *c)
{
	RILL_DASSERT(c->rhead + c->rframe <= c->rtail); /* C1 */
	RILL_DASSERT(c->rtail <= c->rbuf_bytes);
	RILL_DASSERT(c->inflight_count <= c->config.inflight_max);   /* C2 */
	RILL_DASSERT(c->sub_count <= RILL_CLIENT_SUBSCRIPTIONS_MAX); /* C3 */
	RILL_DASSERT(c->stash_bytes <= RILL_CLIENT_STASH_BYTES_MAX + sizeof(struct client_stashed) +
					       c->recv_bytes_max); /* C3 */
	RILL_DASSERT(c->connected || c->fd < 0);                   /* C4 */
	(void)c;
}

/* Free a queue of frames; what it holds in total, into *@bytes. */
static void stashed_free(struct client_stashed **head, struct client_stashed **tail,
			 uint64_t *bytes)
{
	while (*head != NULL) {
		struct client_stashed *s = *head;
		*head = s->next;
		*bytes += sizeof(*s) + s->body_bytes;
		free(s);
	}
	*tail = NULL;
}

/* Close the socket for good (C4): later calls return -ENOTCONN. Returns @rc. What was
 * queued for later (stashed events, early answers) goes now: nothing can hand it out. The
 * frames being handed out stay (stash_current, early_current): the caller may be reading
 * the event or the message in them; the next read or rill_client_close frees them. */
static int client_break(struct rill_client *c, int rc)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->connected = false;
	c->obuf_len = 0; /* gathered frames can never go now */
	c->inflight_count = 0;
	c->inflight_bytes = 0;
	c->sub_count = 0;
	c->events_active = false;
	uint64_t freed = 0;
	stashed_free(&c->stash_head, &c->stash_tail, &freed);
	c->stash_bytes -= freed;
	stashed_free(&c->early_head, &c->early_tail, &freed);
	c->early_count = 0;
	return rc;
}

/*
 * The kernel ended the connection with ETIMEDOUT: its keepalive probes went unanswered for
 * silence_ms_max (or bytes sent, through all of its retransmissions), so the server's host
 * is down or out of reach (no FIN
 * or RST ever came). Closes and returns -ECONNABORTED, since -ETIMEDOUT from a call means
 * that its own deadline passed (rill_client_next returns 0 for it, to be called again).
 */
static int client_lost(struct rill_client *c, struct rill_client_error *err)
{
	client_break(c, -ECONNABORTED);
	return client_fail(err, -ECONNABORTED,
			   "the server has not answered for %u.%03u s: its host is down or out of "
			   "reach (the connection's keepalive gave up)",
			   c->silence_ms_max / 1000u, c->silence_ms_max % 1000u);
}

static int client_usable(struct rill_client *c, struct rill_client_error *err)
{
	if (c == NULL)
		return client_fail(err, -EINVAL, "no client");
	client_check(c);
	if (!c->connected)
		return client_fail(err, -ENOTCONN, "the connection is closed (after an error)");
	return 0;
}

/* A deadline @timeout_ns from now on the monotonic clock, saturating; 0 for a timeout of
 * 0: "do not wait", which wait_fd answers without a clock read or a poll. */
static uint64_t deadline_after(uint64_t timeout_ns)
{
	if (timeout_ns == 0)
		return 0;
	uint64_t now = rill_clock_now_ns();
	return timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
}

/* Wait for @events on the socket until @deadline_ns: 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
	if (deadline_ns == 0)
		return -ETIMEDOUT; /* deadline_after(0): no wait */
	for (;;) {
		uint64_t now = rill_clock_now_ns();
		uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
		struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
				      .tv_nsec = (long)(left % 1000000000u)};
		struct pollfd p = {.fd = fd, .events = events};
		int n = ppoll(&p, 1, &ts, NULL);
		if (n > 0)
			return 0; /* readable, writable, or an error the next call reports */
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/*
 * Read what the server sent and move its whole frames to the early queue (recv_frame
 * hands them out first). Called while a send waits, when no frame of rbuf is in use (no
 * subscription: an EVENTS frame being handed out lives there). 0, or -ENOBUFS when the
 * server sent more frames than there are answers owed (one per request in flight, one
 * per abandoned request, one fatal ERROR): the queue holds no more than those.
 */
static int early_drain(struct rill_client *c)
{
	c->rhead += c->rframe; /* the frame handed out last is done with: callers copy */
	c->rframe = 0;
	if (c->rhead > 0) {
		memmove(c->rbuf, c->rbuf + c->rhead, c->rtail - c->rhead);
		c->rtail -= c->rhead;
		c->rhead = 0;
	}
	if (c->rtail < c->rbuf_bytes) {
		ssize_t n = recv(c->fd, c->rbuf + c->rtail, c->rbuf_bytes - c->rtail, MSG_DONTWAIT);
		if (n > 0)
			c->rtail += (uint32_t)n;
		else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			c->input_stop = true; /* the end or an error: recv_frame meets it again */
		if (n < 0 && errno == ETIMEDOUT)
			c->timed_out = true; /* read once: recv_frame meets the end instead */
	}
	for (;;) {
		struct rill_wire_header h;
		uint32_t have = c->rtail - c->rhead;
		int rc = rill_wire_header_decode(c->rbuf + c->rhead, have, c->recv_bytes_max, &h);
		if (rc != 0 || have - RILL_WIRE_HEADER_BYTES < h.body_bytes) {
			if (rc != 0 && rc != -EAGAIN)
				c->input_stop = true; /* a bad header: recv_frame reports it */
			return 0;
		}
		if (c->early_count >= c->inflight_count + c->abandoned_count + 1)
			return -ENOBUFS;
		struct client_stashed *e = malloc(sizeof(*e) + h.body_bytes);
		if (e == NULL)
			return -ENOMEM;
		*e = (struct client_stashed){.request_id = h.request_id,
					     .type = h.type,
					     .flags = h.flags,
					     .body_bytes = h.body_bytes};
		memcpy(e->body, c->rbuf + c->rhead + RILL_WIRE_HEADER_BYTES, h.body_bytes);
		if (c->early_tail != NULL)
			c->early_tail->next = e;
		else
			c->early_head = e;
		c->early_tail = e;
		c->early_count++;
		c->rhead += RILL_WIRE_HEADER_BYTES + h.body_bytes;
	}
}

/*
 * Wait until the socket takes more bytes, reading what the server sends meanwhile
 * (early_drain): the server stops reading a connection whose output is full of answers
 * the client does not read, and a client that only waited to send would wait for good.
 * A subscribed connection (its sends are FETCHes) only waits. 0 or an error.
 */
static int send_wait(struct rill_client *c, uint64_t deadline_ns)
{
	if (c->sub_count > 0 || c->events_active)
		return wait_fd(c->fd, POLLOUT, deadline_ns);
	for (;;) {
		uint64_t now = rill_clock_now_ns();
		uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
		struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
				      .tv_nsec = (long)(left % 1000000000u)};
		struct pollfd p = {.fd = c->fd, .events = POLLOUT | (c->input_stop ? 0 : POLLIN)};
		int n = ppoll(&p, 1, &ts, NULL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		if ((p.revents & POLLIN) && !c->input_stop) {
			int rc = early_drain(c);
			if (rc < 0)
				return rc;
		}
		if (p.revents & (POLLOUT | POLLERR | POLLHUP))
			return 0; /* room, or an error the next send reports */
	}
}

/*
 * A send cut off by its deadline (the server does not read): its frame may have gone in part,
 * and nothing can follow half a frame, so sending ends for good. Reading does not: the
 * answers the server sent before (the early queue may hold some) and those it still owes to
 * the requests whose frames went whole are handed out, as after the server's own close. The
 * client shuts its side of the connection, so that the server, once it reads on, meets the
 * end after the cut frame, answers what it holds and closes: the end of the stream, which
 * closes the client (C4). Returns -ETIMEDOUT.
 */
static int send_cut(struct rill_client *c, struct rill_client_error *err)
{
	c->send_dead = true;
	c->send_cut = true;
	c->obuf_len = 0;                /* gathered frames can never go now */
	(void)shutdown(c->fd, SHUT_WR); /* a failure leaves the server's idle timeout to end it */
	return client_fail(err, -ETIMEDOUT,
			   "sending to the server: the server does not read; nothing more can be "
			   "sent on this connection (answers already sent can still be collected)");
}

/* Send all @bytes, or end sending (send_dead) or the connection: a partial frame cannot be
 * taken back. */
static int send_all(struct rill_client *c, const void *buf, size_t bytes, uint64_t deadline_ns,
		    struct rill_client_error *err)
{
	if (c->send_dead && c->send_cut)
		return client_fail(err, -EPIPE,
				   "an earlier send was cut off by its deadline: nothing more can "
				   "be sent on this connection");
	if (c->send_dead)
		return client_fail(err, -EPIPE, "the server closed the connection");
	const uint8_t *at = buf;
	while (bytes > 0) {
		ssize_t n = send(c->fd, at, bytes, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			at += n;
			bytes -= (size_t)n;
			continue;
		}
		int rc = n < 0 ? -errno : -EIO;
		if (rc == -EINTR)
			continue;
		if (rc == -ETIMEDOUT) { /* the socket's (client_lost), not a deadline's */
			c->timed_out = true;
			rc = -EPIPE; /* the answers that came before are still to be read */
		}
		if (rc == -EAGAIN || rc == -EWOULDBLOCK)
			rc = send_wait(c, deadline_ns);
		if ((rc == -EPIPE || rc == -ECONNRESET) && c->timed_out) {
			c->send_dead = true;
			return client_fail(err, -ECONNABORTED,
					   "sending to the server: it has not answered for %u.%03u "
					   "s (answers already sent can still be collected)",
					   c->silence_ms_max / 1000u, c->silence_ms_max % 1000u);
		}
		if (rc == -EPIPE || rc == -ECONNRESET) {
			/* The server closed: nothing more can go, but what it sent before is
			 * still to be read (the ACKs of requests already answered), so the
			 * connection stays open for reading until the end of its stream. */
			c->send_dead = true;
			return client_fail(err, rc,
					   "sending to the server: %s (answers already "
					   "sent can still be collected)",
					   rill_strerror(rc));
		}
		if (rc == -ETIMEDOUT)
			return send_cut(c, err);
		if (rc != 0) {
			client_break(c, rc);
			return client_fail(err, rc, "sending to the server: %s", rill_strerror(rc));
		}
	}
	return 0;
}

/* Send what corking gathered. 0 or a connection error. */
static int client_flush(struct rill_client *c, struct rill_client_error *err)
{
	if (c->obuf_len == 0)
		return 0;
	uint32_t len = c->obuf_len;
	c->obuf_len = 0;
	return send_all(c, c->obuf, len, deadline_after(c->config.timeout_ns), err);
}

/* Keep the frame in sbuf (@bytes) for the next flush; send first if it does not fit. */
static int client_gather(struct rill_client *c, uint32_t bytes, struct rill_client_error *err)
{
	if (c->obuf == NULL) {
		c->obuf_cap = CLIENT_CORK_BYTES;
		c->obuf = malloc(c->obuf_cap);
		if (c->obuf == NULL)
			return client_fail(err, -ENOMEM, "out of memory");
	}
	if (bytes > c->obuf_cap - c->obuf_len) {
		int rc = client_flush(c, err);
		if (rc != 0)
			return rc;
	}
	if (bytes > c->obuf_cap)
		return send_all(c, c->sbuf, bytes, deadline_after(c->config.timeout_ns), err);
	memcpy(c->obuf + c->obuf_len, c->sbuf, bytes);
	c->obuf_len += bytes;
	return 0;
}

/* ---- Receiving ------------------------------------------------------------------------ */

/* More bytes into rbuf, waiting until @deadline_ns. 0, -ETIMEDOUT, or a fatal error. */
static int recv_some(struct rill_client *c, uint64_t deadline_ns, struct rill_client_error *err)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->rbuf + c->rtail, c->rbuf_bytes - c->rtail, MSG_DONTWAIT);
		if (n > 0) {
			c->rtail += (uint32_t)n;
			return 0;
		}
		int rc = n == 0 ? -ECONNRESET : -errno;
		if (rc == -EINTR)
			continue;
		if (rc == -EAGAIN || rc == -EWOULDBLOCK) {
			rc = wait_fd(c->fd, POLLIN, deadline_ns);
			if (rc == 0)
				continue;
			if (rc == -ETIMEDOUT)
				return client_fail(err, rc, "no answer from the server in time");
		}
		if ((n < 0 && rc == -ETIMEDOUT) || (n == 0 && c->timed_out))
			return client_lost(c, err);
		client_break(c, rc);
		return client_fail(err, rc, "%s",
				   n == 0 ? "the server closed the connection" : rill_strerror(rc));
	}
}

/*
 * The next frame, read in place: @hdr and @body (valid until the next read). Returns 0,
 * -ETIMEDOUT (nothing lost: a later call goes on where this one stopped), or a fatal error
 * (a bad header closes the client).
 */
static int recv_frame(struct rill_client *c, uint64_t deadline_ns, struct rill_wire_header *hdr,
		      const uint8_t **body, struct rill_client_error *err)
{
	c->rhead += c->rframe; /* the frame handed out last time is done with */
	c->rframe = 0;
	if (c->rhead == c->rtail)
		c->rhead = c->rtail = 0;
	free(c->early_current);
	c->early_current = NULL;
	if (c->early_head != NULL) { /* read while a send waited: before what rbuf holds */
		struct client_stashed *e = c->early_head;
		c->early_head = e->next;
		if (c->early_head == NULL)
			c->early_tail = NULL;
		c->early_count--;
		c->early_current = e;
		*hdr = (struct rill_wire_header){.body_bytes = e->body_bytes,
						 .type = e->type,
						 .flags = e->flags,
						 .request_id = e->request_id};
		*body = e->body;
		return 0;
	}
	c->input_stop = false; /* rbuf's reader meets what stopped the drain, if anything */
	for (;;) {
		uint32_t have = c->rtail - c->rhead;
		int rc = rill_wire_header_decode(c->rbuf + c->rhead, have, c->recv_bytes_max, hdr);
		if (rc == 0 && have - RILL_WIRE_HEADER_BYTES >= hdr->body_bytes) {
			*body = c->rbuf + c->rhead + RILL_WIRE_HEADER_BYTES;
			c->rframe = RILL_WIRE_HEADER_BYTES + hdr->body_bytes;
			return 0;
		}
		if (rc != 0 && rc != -EAGAIN) {
			client_break(c, rc);
			return client_fail(err, rc, "a malformed frame header from the server: %s",
					   rill_strerror(rc));
		}
		uint32_t need =
			rc == 0 ? RILL_WIRE_HEADER_BYTES + hdr->body_bytes : RILL_WIRE_HEADER_BYTES;
		if (c->rhead + need > c->rbuf_bytes) { /* make room: the frame fits rbuf whole */
			memmove(c->rbuf, c->rbuf + c->rhead, have);
			c->rhead = 0;
			c->rtail = have;
		}
		rc = recv_some(c, deadline_ns, err);
		if (rc != 0)
			return rc;
	}
}

/* A frame that should not have come: the streams are out of step, so close. */
static int unexpected(struct rill_client *c, const struct rill_wire_header *hdr,
		      struct rill_client_error *err)
{
	client_break(c, RILL_E_WIRE_TYPE);
	return client_fail(err, RILL_E_WIRE_TYPE,
			   "the server sent an unexpected %s frame (request %llu)",
			   rill_wire_type_name(hdr->type), (unsigned long long)hdr->request_id);
}

static int malformed(struct rill_client *c, const struct rill_wire_header *hdr, int rc,
		     struct rill_client_error *err)
{
	client_break(c, rc);
	return client_fail(err, rc, "a malformed %s frame from the server: %s",
			   rill_wire_type_name(hdr->type), rill_strerror(rc));
}

/*
 * An ERROR frame's code, with its message in @err; a fatal one closes the client. A frame
 * whose ERROR does not decode is itself malformed.
 */
static int server_error(struct rill_client *c, const struct rill_wire_header *hdr,
			const uint8_t *body, struct rill_client_error *err)
{
	struct rill_wire_error e;
	int rc = rill_wire_error_decode(body, hdr->body_bytes, &e);
	if (rc != 0)
		return malformed(c, hdr, rc, err);
	int code = e.code < 0 ? e.code : -EPROTO; /* an error must be an error */
	/* "%.*s" of a message that is empty, or starts with a NUL byte, would print nothing. */
	if (strnlen(e.message, e.message_bytes) == 0)
		client_fail(err, code, "%s", rill_strerror(code));
	else
		client_fail(err, code, "%.*s", (int)e.message_bytes, e.message);
	if (e.flags & RILL_WIRE_ERROR_F_FATAL) /* after the message: it may be in its frame */
		client_break(c, code);
	return code;
}

/*
 * A frame for no request waiting: the late answer of a timed-out request is skipped (0);
 * anything else means the streams are out of step, and closes (an ERROR's code is kept).
 */
static bool abandoned_take(struct rill_client *c, uint64_t id);
static bool error_fatal(const uint8_t *body, uint32_t bytes);
static int stray(struct rill_client *c, const struct rill_wire_header *hdr, const uint8_t *body,
		 struct rill_client_error *err)
{
	if (abandoned_take(c, hdr->request_id) &&
	    !(hdr->type == RILL_WIRE_ERROR && error_fatal(body, hdr->body_bytes)))
		return 0; /* a fatal ERROR ends the connection, whichever request it names */
	if (hdr->type != RILL_WIRE_ERROR)
		return unexpected(c, hdr, err);
	int rc = server_error(c, hdr, body, err);
	return c->connected ? client_break(c, rc) : rc;
}

/* Whether @id is a timed-out request (whose late answer is skipped); forgets it if so. */
static bool abandoned_take(struct rill_client *c, uint64_t id)
{
	for (uint32_t i = 0; i < c->abandoned_count; i++) {
		if (c->abandoned[i] == id) {
			c->abandoned[i] = c->abandoned[--c->abandoned_count];
			return true;
		}
	}
	return false;
}

/* A blocking call gave up on request @id: skip its answer when it comes, or close. */
static void abandon(struct rill_client *c, uint64_t id)
{
	if (c->abandoned_count == RILL_CLIENT_ABANDONED_MAX)
		client_break(c, -ETIMEDOUT); /* too many loose answers to track */
	else
		c->abandoned[c->abandoned_count++] = id;
}

/* ---- Subscriptions' events ------------------------------------------------------------ */

static struct client_sub *sub_find(struct rill_client *c, uint64_t id)
{
	for (uint32_t i = 0; i < c->sub_count; i++)
		if (c->subs[i].request_id == id)
			return &c->subs[i];
	return NULL;
}

static void sub_remove(struct rill_client *c, uint64_t id)
{
	struct client_sub *s = sub_find(c, id);
	if (s != NULL)
		*s = c->subs[--c->sub_count];
}

/*
 * The server ended one partition of subscription @hdr->request_id (an event too large for a
 * frame, a failed read): the others go on, and the subscription ends with its last one.
 * Returns the server's error for the caller.
 */
static int sub_partition_ended(struct rill_client *c, const struct rill_wire_header *hdr,
			       const uint8_t *body, struct rill_client_error *err)
{
	struct client_sub *s = sub_find(c, hdr->request_id);
	if (s != NULL && s->live <= 1)
		sub_remove(c, hdr->request_id);
	else if (s != NULL)
		s->live--;
	return server_error(c, hdr, body, err);
}

/* Whether the ERROR body @body says the server is closing (or cannot be read: handled at
 * once either way, never held for later). */
static bool error_fatal(const uint8_t *body, uint32_t bytes)
{
	struct rill_wire_error e;
	return rill_wire_error_decode(body, bytes, &e) != 0 || (e.flags & RILL_WIRE_ERROR_F_FATAL);
}

/* Keep an EVENTS frame, or a partition's ERROR, that arrived while a SUBSCRIBE waited;
 * rill_client_next hands it out. */
static int stash_frame(struct rill_client *c, const struct rill_wire_header *hdr,
		       const uint8_t *body, struct rill_client_error *err)
{
	/* Counted with each frame's own header: many small frames must not hold more. */
	uint64_t bytes = sizeof(struct client_stashed) + hdr->body_bytes;
	if (c->stash_bytes + bytes > RILL_CLIENT_STASH_BYTES_MAX)
		return client_fail(err, -ENOBUFS,
				   "over %u bytes of events arrived while subscribing",
				   RILL_CLIENT_STASH_BYTES_MAX);
	struct client_stashed *s = malloc(sizeof(*s) + hdr->body_bytes);
	if (s == NULL)
		return client_fail(err, -ENOMEM, "out of memory holding events");
	s->next = NULL;
	s->request_id = hdr->request_id;
	s->type = hdr->type;
	s->body_bytes = hdr->body_bytes;
	memcpy(s->body, body, hdr->body_bytes);
	if (c->stash_tail != NULL)
		c->stash_tail->next = s;
	else
		c->stash_head = s;
	c->stash_tail = s;
	c->stash_bytes += bytes;
	return 0;
}

static void stash_release_current(struct rill_client *c)
{
	if (c->stash_current != NULL) {
		c->stash_bytes -= sizeof(struct client_stashed) + c->stash_current->body_bytes;
		free(c->stash_current);
		c->stash_current = NULL;
	}
}

/* Start handing out the events of an EVENTS body for subscription @id. */
static int events_begin(struct rill_client *c, uint64_t id, const uint8_t *body, uint32_t bytes,
			struct rill_client_error *err)
{
	uint32_t count;
	int rc = rill_wire_events_decode(body, bytes, &c->events_partition, &count, &c->events_it);
	if (rc != 0) {
		client_break(c, rc);
		return client_fail(err, rc, "a malformed EVENTS frame from the server: %s",
				   rill_strerror(rc));
	}
	c->events_active = true;
	c->events_body = body;
	c->events_bytes = bytes;
	c->events_id = id;
	return 0;
}

/*
 * Move the EVENTS frame being handed out to the stash, so that reading the next frames (a
 * SUBSCRIBE's answer) cannot overwrite or free the events still to come: a frame of the
 * early queue (read while a send waited) changes hands, one in rbuf is copied.
 */
static int events_detach(struct rill_client *c, struct rill_client_error *err)
{
	if (!c->events_active || c->stash_current != NULL)
		return 0;
	const uint8_t *body = c->events_body;
	uint32_t bytes = c->events_bytes;
	if (c->early_current != NULL && body == c->early_current->body) {
		struct client_stashed *s = c->early_current;
		c->early_current = NULL;
		s->next = NULL;
		c->stash_current = s;                 /* the iterator points into it still */
		c->stash_bytes += sizeof(*s) + bytes; /* stash_release_current takes it */
		return 0;
	}
	RILL_ASSERT(body == c->rbuf + c->rhead + RILL_WIRE_HEADER_BYTES &&
		    bytes == c->rframe - RILL_WIRE_HEADER_BYTES);
	struct client_stashed *s = malloc(sizeof(*s) + bytes);
	if (s == NULL)
		return client_fail(err, -ENOMEM, "out of memory holding events");
	s->next = NULL;
	s->request_id = c->events_id;
	s->body_bytes = bytes;
	memcpy(s->body, body, bytes);
	c->events_it.at = s->body + (c->events_it.at - body);
	c->events_it.end = s->body + (c->events_it.end - body);
	c->stash_current = s;
	c->stash_bytes += sizeof(*s) + bytes; /* as stash_frame counts: stash_release takes it */
	return 0;
}

/* ---- Connecting ----------------------------------------------------------------------- */

/* Split "HOST:PORT" or "[V6]:PORT" into @host and @port. 0 or -EINVAL. */
static int parse_address(const char *address, char *host, size_t host_bytes, char *port,
			 size_t port_bytes, struct rill_client_error *err)
{
	const char *colon;
	const char *h = address;
	size_t hlen;
	if (address == NULL)
		return client_fail(err, -EINVAL, "no address (HOST:PORT)");
	if (address[0] == '[') {
		const char *bracket = strchr(address, ']');
		if (bracket == NULL || bracket[1] != ':')
			return client_fail(err, -EINVAL, "address '%s': expected [IPV6]:PORT",
					   address);
		h = address + 1;
		hlen = (size_t)(bracket - h);
		colon = bracket + 1;
	} else {
		colon = strrchr(address, ':');
		if (colon == NULL || memchr(address, ':', (size_t)(colon - address)) != NULL)
			return client_fail(err, -EINVAL,
					   "address '%s': expected HOST:PORT (IPv6 as [ADDR]:PORT)",
					   address);
		hlen = (size_t)(colon - address);
	}
	const char *p = colon + 1;
	size_t plen = strlen(p);
	bool digits = plen > 0 && plen < port_bytes && strspn(p, "0123456789") == plen;
	long value = digits ? strtol(p, NULL, 10) : 0;
	if (value < 1 || value > 65535)
		return client_fail(err, -EINVAL, "address '%s': the port must be 1 to 65535",
				   address);
	if (hlen == 0 || hlen >= host_bytes)
		return client_fail(err, -EINVAL, "address '%s': no host or one too long", address);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memcpy(port, p, plen + 1);
	return 0;
}

/* Whole seconds of @ns, rounded up: the kernel's keepalive counts in seconds. */
static uint64_t seconds_up(uint64_t ns)
{
	return ns / 1000000000u + (ns % 1000000000u != 0);
}

/*
 * Give up on a server whose host stops answering (power lost, network gone: no FIN, no RST
 * ever comes) after silence_ms_max. An idle connection (a subscriber waiting for events,
 * which sends nothing until half its credit is used, to a server that sends no heartbeat)
 * is probed by TCP keepalive; the calls then return -ECONNABORTED (client_lost). 0 or
 * -errno.
 *
 * No TCP_USER_TIMEOUT: Linux counts a closed receive window's probes against it though the
 * peer answers every one, so it ended connections to a live server that had only stopped
 * reading (backpressure: a slow fdatasync, a stalled shard) after the same 25 s, and rill
 * produce, which waits 60 s for an answer, called every line in flight "outcome unknown".
 * Bytes sent to a host that vanished meanwhile wait for the kernel's retransmissions (some
 * 15 minutes; keepalive sends no probe while they do) and each call's own deadline.
 */
static int keepalive_set(int fd, const struct rill_client_config *config)
{
	int one = 1, idle = (int)seconds_up(config->keepalive_idle_ns),
	    interval = (int)seconds_up(config->keepalive_interval_ns),
	    count = (int)config->keepalive_count;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count)) != 0)
		return -errno;
	return 0;
}

/* Connect one address within the deadline; the socket stays blocking for the caller. */
static int connect_one(const struct rill_client *c, const struct addrinfo *ai, uint64_t deadline_ns,
		       int *out)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			ai->ai_protocol);
	if (fd < 0)
		return -errno;
	int rc = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : -errno;
	if (rc == -EINPROGRESS) {
		rc = wait_fd(fd, POLLOUT, deadline_ns);
		int so = 0;
		socklen_t len = sizeof(so);
		if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len) != 0)
			rc = -errno;
		else if (rc == 0)
			rc = -so;
	}
	int one = 1;
	/* Small frames (acks, fetches) must not wait for Nagle. */
	if (rc == 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		rc = -errno;
	if (rc == 0)
		rc = keepalive_set(fd, &c->config);
	/* Blocking from now on; every call passes MSG_DONTWAIT and polls with its deadline. */
	if (rc == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
		rc = -errno;
	if (rc != 0) {
		close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

/*
 * A name's resolution, run on a thread of its own. getaddrinfo takes no deadline (the
 * resolver's own timeouts bound it: /etc/resolv.conf's timeout and attempts, 5 s and 2 by
 * default, per nameserver), so the connect waits for it only until its own deadline and
 * leaves the thread to finish alone. Both hold a reference, taken and dropped under @lock;
 * the last to let go frees the job, with the addresses if the connect gave up first. The
 * thread touches nothing else: whatever the connect returns, the job outlives it. Its code
 * must too: librill.so is linked -z nodelete, so that a dlclose() cannot unmap it.
 */
struct resolve_job {
	pthread_mutex_t lock;
	pthread_cond_t done_cond; /* on CLOCK_MONOTONIC, as deadlines are */
	uint32_t refs;            /* 2: the connect's and the thread's */
	bool done;                /* the thread's getaddrinfo returned: gai, gai_errno, list */
	int gai;
	int gai_errno; /* for EAI_SYSTEM: errno is the thread's own */
	struct addrinfo *list;
	struct addrinfo hints;
	char host[RILL_CLIENT_HOST_BYTES_MAX];
	char port[8];
};

static void resolve_job_free(struct resolve_job *j)
{
	if (j->list != NULL)
		freeaddrinfo(j->list);
	pthread_cond_destroy(&j->done_cond);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

/* Drop a reference; the last frees the job. Called with @j->lock held, which it releases. */
static void resolve_job_put(struct resolve_job *j)
{
	bool last = --j->refs == 0;
	pthread_mutex_unlock(&j->lock);
	if (last) /* the other side let go under the lock: nobody touches the job now */
		resolve_job_free(j);
}

static void *resolve_main(void *arg)
{
	struct resolve_job *j = arg;
	struct addrinfo *list = NULL;
	int gai = getaddrinfo(j->host, j->port, &j->hints, &list);
	int gai_errno = errno;
	pthread_mutex_lock(&j->lock);
	j->done = true;
	j->gai = gai;
	j->gai_errno = gai_errno;
	j->list = list;
	pthread_cond_signal(&j->done_cond);
	resolve_job_put(j);
	return NULL;
}

/* Start @j's thread: detached, with every signal blocked (a host's handlers must not run on
 * a thread it does not know of). 0 or -errno. */
static int resolve_start(struct resolve_job *j)
{
	pthread_attr_t attr;
	int rc = pthread_attr_init(&attr);
	if (rc != 0)
		return -rc;
	rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigset_t all, old;
	sigfillset(&all);
	if (rc == 0)
		rc = pthread_sigmask(SIG_SETMASK, &all, &old);
	if (rc == 0) {
		pthread_t thread;
		rc = pthread_create(&thread, &attr, resolve_main, j);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_attr_destroy(&attr);
	return -rc;
}

/* A new job for @host and @port, its two references taken; NULL when out of memory. */
static struct resolve_job *resolve_job_new(const char *host, const char *port,
					   const struct addrinfo *hints)
{
	struct resolve_job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return NULL;
	pthread_condattr_t attr;
	bool ok = pthread_condattr_init(&attr) == 0;
	ok = ok && pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
	     pthread_cond_init(&j->done_cond, &attr) == 0;
	pthread_condattr_destroy(&attr);
	if (!ok || pthread_mutex_init(&j->lock, NULL) != 0) {
		if (ok)
			pthread_cond_destroy(&j->done_cond);
		free(j);
		return NULL;
	}
	j->refs = 2;
	j->hints = *hints;
	snprintf(j->host, sizeof(j->host), "%s", host);
	snprintf(j->port, sizeof(j->port), "%s", port);
	return j;
}

/*
 * Resolve @host by name within @deadline_ns: 0 with getaddrinfo's answer in *@gai (the
 * addresses into @list; for EAI_SYSTEM, its errno into *@sys_errno), or -ETIMEDOUT when it
 * did not answer in time, -errno when it could not start.
 */
static int resolve_name(const char *host, const char *port, const struct addrinfo *hints,
			uint64_t deadline_ns, struct addrinfo **list, int *gai, int *sys_errno)
{
	struct resolve_job *j = resolve_job_new(host, port, hints);
	if (j == NULL)
		return -ENOMEM;
	int rc = resolve_start(j);
	if (rc != 0) {
		resolve_job_free(j); /* no thread: the connect's alone */
		return rc;
	}
	struct timespec at = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
			      .tv_nsec = (long)(deadline_ns % 1000000000u)};
	pthread_mutex_lock(&j->lock);
	while (!j->done && pthread_cond_timedwait(&j->done_cond, &j->lock, &at) == 0)
		; /* woken, or woken for nothing: see again */
	rc = j->done ? 0 : -ETIMEDOUT;
	*gai = j->gai;
	*sys_errno = j->gai_errno;
	*list = j->list;
	j->list = NULL; /* the connect's now (or, not done, the thread's to free) */
	resolve_job_put(j);
	return rc;
}

/* The addresses of @host: a numeric address at once, a name by resolve_name. 0, or an
 * error with @err saying which. */
static int resolve(const char *address, const char *host, const char *port, uint64_t deadline_ns,
		   struct addrinfo **list, struct rill_client_error *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG | AI_NUMERICHOST};
	/* A numeric address never reaches the resolver: no thread, no wait. */
	int gai = getaddrinfo(host, port, &hints, list);
	int sys_errno = errno;
	if (gai == EAI_NONAME) {
		hints.ai_flags &= ~AI_NUMERICHOST;
		int rc = resolve_name(host, port, &hints, deadline_ns, list, &gai, &sys_errno);
		if (rc == -ETIMEDOUT)
			return client_fail(
				err, rc,
				"%s: resolving '%s' took longer than the connect's "
				"timeout (do the nameservers of /etc/resolv.conf answer?)",
				address, host);
		if (rc != 0)
			return client_fail(err, rc, "%s: cannot resolve '%s': %s", address, host,
					   rill_strerror(rc));
	}
	if (gai == 0)
		return 0;
	int rc = gai == EAI_SYSTEM   ? (sys_errno > 0 ? -sys_errno : -EIO)
		 : gai == EAI_MEMORY ? -ENOMEM
		 : gai == EAI_AGAIN  ? -EAGAIN
				     : -EHOSTUNREACH;
	return client_fail(err, rc, "%s: cannot resolve '%s': %s", address, host,
			   gai_strerror(gai));
}

static int resolve_and_connect(struct rill_client *c, const char *address, uint64_t deadline_ns,
			       struct rill_client_error *err)
{
	char host[RILL_CLIENT_HOST_BYTES_MAX], port[8];
	int rc = parse_address(address, host, sizeof(host), port, sizeof(port), err);
	if (rc != 0)
		return rc;
	struct addrinfo *list = NULL;
	rc = resolve(address, host, port, deadline_ns, &list, err);
	if (rc != 0)
		return rc;
	rc = -EHOSTUNREACH;
	for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
		rc = connect_one(c, ai, deadline_ns, &c->fd);
		if (rc == 0)
			break;
	}
	freeaddrinfo(list);
	if (rc != 0)
		return client_fail(err, rc, "%s: %s", address, rill_strerror(rc));
	c->connected = true;
	return 0;
}

/* HELLO, then HELLO_OK (or the server's ERROR); sizes the buffers to the frame limit. */
static int handshake(struct rill_client *c, const char *address, uint64_t deadline_ns,
		     struct rill_client_error *err)
{
	struct rill_wire_hello hello = {.version_min = RILL_WIRE_VERSION,
					.version_max = RILL_WIRE_VERSION};
	int n = rill_wire_hello_encode(c->sbuf, c->sbuf_bytes, 0, &hello);
	RILL_ASSERT(n > 0);
	int rc = send_all(c, c->sbuf, (size_t)n, deadline_ns, err);
	struct rill_wire_header hdr;
	const uint8_t *body;
	if (rc == 0)
		rc = recv_frame(c, deadline_ns, &hdr, &body, err);
	if (rc <= RILL_E_WIRE_TRUNCATED && rc >= RILL_E_WIRE_VERSION) /* a bad header */
		return client_fail(err, RILL_E_WIRE_MAGIC, "%s: not a rill server (%s)", address,
				   rill_strerror(rc));
	if (rc != 0)
		return rc;
	if (hdr.type == RILL_WIRE_ERROR)
		return server_error(c, &hdr, body, err);
	struct rill_wire_hello_ok ok;
	rc = hdr.type == RILL_WIRE_HELLO_OK ? rill_wire_hello_ok_decode(body, hdr.body_bytes, &ok)
					    : RILL_E_WIRE_MAGIC;
	if (rc != 0 || ok.frame_bytes_max < RILL_WIRE_FRAME_BYTES_MIN ||
	    ok.frame_bytes_max > RILL_WIRE_FRAME_BYTES_MAX) {
		client_break(c, RILL_E_WIRE_MAGIC);
		return client_fail(err, RILL_E_WIRE_MAGIC, "%s: not a rill server (%s)", address,
				   rc != 0 ? rill_strerror(rc) : "a frame limit out of range");
	}
	if (ok.version != RILL_WIRE_VERSION) {
		client_break(c, RILL_E_WIRE_VERSION);
		return client_fail(err, RILL_E_WIRE_VERSION,
				   "%s: the server speaks protocol version %u, this client %u",
				   address, ok.version, RILL_WIRE_VERSION);
	}
	c->shards = ok.shards;
	c->server_inflight_max = ok.inflight_bytes_max;
	/* The config's limit bounds what this client sends; HELLO carries no word of it, so
	 * the server fills its frames (EVENTS, a STAT answer) to its own, which is what the
	 * client must take. */
	c->frame_bytes_max = ok.frame_bytes_max;
	c->recv_bytes_max = ok.frame_bytes_max;
	if (c->config.frame_bytes_max != 0 && c->config.frame_bytes_max < c->frame_bytes_max)
		c->frame_bytes_max = c->config.frame_bytes_max;
	return 0;
}

static int alloc_buffers(struct rill_client *c)
{
	uint32_t bytes = c->recv_bytes_max + RILL_WIRE_HEADER_BYTES;
	uint8_t *r = realloc(c->rbuf, bytes);
	if (r == NULL)
		return -ENOMEM;
	c->rbuf = r;
	c->rbuf_bytes = bytes;
	bytes = c->frame_bytes_max + RILL_WIRE_HEADER_BYTES;
	uint8_t *s = realloc(c->sbuf, bytes);
	if (s == NULL)
		return -ENOMEM;
	c->sbuf = s;
	c->sbuf_bytes = bytes;
	return 0;
}

void rill_client_config_default(struct rill_client_config *config)
{
	RILL_ASSERT(config != NULL);
	memset(config, 0, sizeof(*config));
	config->timeout_ns = RILL_CLIENT_TIMEOUT_NS_DEFAULT;
	config->frame_bytes_max = 0;
	config->inflight_max = RILL_CLIENT_INFLIGHT_DEFAULT;
	config->keepalive_idle_ns = RILL_CLIENT_KEEPALIVE_IDLE_NS_DEFAULT;
	config->keepalive_interval_ns = RILL_CLIENT_KEEPALIVE_INTERVAL_NS_DEFAULT;
	config->keepalive_count = RILL_CLIENT_KEEPALIVE_COUNT_DEFAULT;
}

/* The keepalive settings: defaults for 0, checked against the kernel's limits; the silence
 * they allow into c->silence_ms_max. 0 or -EINVAL. */
static int keepalive_configure(struct rill_client *c, struct rill_client_error *err)
{
	struct rill_client_config *k = &c->config;
	if (k->keepalive_idle_ns == 0)
		k->keepalive_idle_ns = RILL_CLIENT_KEEPALIVE_IDLE_NS_DEFAULT;
	if (k->keepalive_interval_ns == 0)
		k->keepalive_interval_ns = RILL_CLIENT_KEEPALIVE_INTERVAL_NS_DEFAULT;
	if (k->keepalive_count == 0)
		k->keepalive_count = RILL_CLIENT_KEEPALIVE_COUNT_DEFAULT;
	uint64_t idle_s = seconds_up(k->keepalive_idle_ns);
	uint64_t interval_s = seconds_up(k->keepalive_interval_ns);
	if (idle_s > RILL_CLIENT_KEEPALIVE_S_MAX || interval_s > RILL_CLIENT_KEEPALIVE_S_MAX ||
	    k->keepalive_count > RILL_CLIENT_KEEPALIVE_COUNT_MAX)
		return client_fail(err, -EINVAL,
				   "keepalive: idle and interval of at most %u s, count of at "
				   "most %u",
				   RILL_CLIENT_KEEPALIVE_S_MAX, RILL_CLIENT_KEEPALIVE_COUNT_MAX);
	uint64_t silence_ms = (idle_s + interval_s * k->keepalive_count) * 1000u;
	if (silence_ms > RILL_CLIENT_SILENCE_MS_MAX)
		return client_fail(err, -EINVAL,
				   "keepalive: idle + interval x count is %llu s, over %llu",
				   (unsigned long long)(silence_ms / 1000u),
				   (unsigned long long)(RILL_CLIENT_SILENCE_MS_MAX / 1000u));
	c->silence_ms_max = (uint32_t)silence_ms;
	return 0;
}

static int client_configure(struct rill_client *c, const struct rill_client_config *config,
			    struct rill_client_error *err)
{
	rill_client_config_default(&c->config);
	if (config != NULL)
		c->config = *config;
	if (c->config.timeout_ns == 0)
		c->config.timeout_ns = RILL_CLIENT_TIMEOUT_NS_DEFAULT;
	if (c->config.inflight_max == 0)
		c->config.inflight_max = RILL_CLIENT_INFLIGHT_DEFAULT;
	if (c->config.inflight_max > RILL_CLIENT_INFLIGHT_MAX)
		return client_fail(err, -EINVAL, "inflight_max %u is over %u",
				   c->config.inflight_max, RILL_CLIENT_INFLIGHT_MAX);
	int rc = keepalive_configure(c, err);
	if (rc != 0)
		return rc;
	uint32_t f = c->config.frame_bytes_max;
	if (f != 0 && (f < RILL_WIRE_FRAME_BYTES_MIN || f > RILL_WIRE_FRAME_BYTES_MAX))
		return client_fail(err, -EINVAL, "frame_bytes_max %u is not within %u .. %u", f,
				   RILL_WIRE_FRAME_BYTES_MIN, RILL_WIRE_FRAME_BYTES_MAX);
	c->inflight = calloc(c->config.inflight_max, sizeof(*c->inflight));
	c->subs = calloc(RILL_CLIENT_SUBSCRIPTIONS_MAX, sizeof(*c->subs));
	if (c->inflight == NULL || c->subs == NULL)
		return client_fail(err, -ENOMEM, "out of memory");
	/* Until HELLO_OK names the limit, the least any server has is enough. */
	if (alloc_buffers(c) != 0) /* both limits at that least until then */
		return client_fail(err, -ENOMEM, "out of memory");
	return 0;
}

int rill_client_connect(struct rill_client **out, const char *address,
			const struct rill_client_config *config, struct rill_client_error *err)
{
	if (out == NULL)
		return client_fail(err, -EINVAL, "no place for the client");
	*out = NULL;
	struct rill_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return client_fail(err, -ENOMEM, "out of memory");
	c->fd = -1;
	c->next_id = 1; /* 0 is the HELLO's */
	c->frame_bytes_max = RILL_WIRE_FRAME_BYTES_MIN;
	c->recv_bytes_max = RILL_WIRE_FRAME_BYTES_MIN;
	int rc = client_configure(c, config, err);
	uint64_t deadline_ns = deadline_after(c->config.timeout_ns);
	if (rc == 0)
		rc = resolve_and_connect(c, address, deadline_ns, err);
	if (rc == 0)
		rc = handshake(c, address, deadline_ns, err);
	if (rc == 0 && alloc_buffers(c) != 0)
		rc = client_fail(err, -ENOMEM, "out of memory for %u-byte frames",
				 c->recv_bytes_max);
	if (rc != 0) {
		rill_client_close(c);
		return rc;
	}
	client_check(c);
	*out = c;
	return 0;
}

void rill_client_close(struct rill_client *client)
{
	if (client == NULL)
		return;
	client_break(client, 0); /* frees the queues */
	stash_release_current(client);
	free(client->early_current);
	free(client->inflight);
	free(client->subs);
	free(client->rbuf);
	free(client->sbuf);
	free(client->obuf);
	free(client);
}

uint32_t rill_client_server_shards(const struct rill_client *client)
{
	return client->shards;
}

uint32_t rill_client_frame_bytes_max(const struct rill_client *client)
{
	return client->frame_bytes_max;
}

uint32_t rill_client_inflight(const struct rill_client *client)
{
	return client->inflight_count;
}

/* ---- Blocking request and answer ------------------------------------------------------ */

/* Whether a request/answer call may run now: connected, nothing pipelined, no feed. */
static int call_ready(struct rill_client *c, struct rill_client_error *err)
{
	int rc = client_usable(c, err);
	if (rc != 0)
		return rc;
	if (c->inflight_count > 0)
		return client_fail(err, -EBUSY,
				   "%u PRODUCE requests are in flight: collect them first",
				   c->inflight_count);
	if (c->sub_count > 0)
		return client_fail(err, -EINVAL, "a subscribed connection only reads events");
	return 0;
}

/*
 * Send the frame of @bytes in sbuf (request @id) and wait for its answer of type @want:
 * 0 with @body, the server's error, or a connection error. A late answer to an earlier
 * timed-out request is skipped.
 */
static int call(struct rill_client *c, uint64_t id, size_t bytes, uint16_t want,
		struct rill_wire_header *hdr, const uint8_t **body, struct rill_client_error *err)
{
	uint64_t deadline_ns = deadline_after(c->config.timeout_ns);
	int rc = client_flush(c, err);
	if (rc == 0)
		rc = send_all(c, c->sbuf, bytes, deadline_ns, err);
	while (rc == 0) {
		rc = recv_frame(c, deadline_ns, hdr, body, err);
		if (rc == -ETIMEDOUT)
			abandon(c, id);
		if (rc != 0)
			break;
		if (hdr->request_id != id) {
			rc = stray(c, hdr, *body, err);
			continue;
		}
		if (hdr->type == RILL_WIRE_ERROR)
			return server_error(c, hdr, *body, err);
		if (hdr->type != want)
			return unexpected(c, hdr, err);
		return 0;
	}
	return rc;
}

/* Encoders return -ENOSPC when the request does not fit a frame, -EINVAL over a limit. */
static int encode_failed(int n, const char *what, struct rill_client_error *err)
{
	if (n == -ENOSPC)
		return client_fail(err, -EMSGSIZE, "the %s does not fit in one frame", what);
	return client_fail(err, n, "the %s is refused: %s", what, rill_strerror(n));
}

int rill_client_ping(struct rill_client *client, struct rill_client_error *err)
{
	int rc = call_ready(client, err);
	if (rc != 0)
		return rc;
	uint64_t id = client->next_id++;
	int n = rill_wire_empty_encode(client->sbuf, client->sbuf_bytes, RILL_WIRE_PING, id);
	RILL_ASSERT(n > 0);
	struct rill_wire_header hdr;
	const uint8_t *body;
	rc = call(client, id, (size_t)n, RILL_WIRE_PONG, &hdr, &body, err);
	if (rc == 0 && (rc = rill_wire_empty_decode(hdr.body_bytes)) != 0)
		return malformed(client, &hdr, rc, err);
	return rc;
}

int rill_client_admin(struct rill_client *client, uint16_t op, const char *json, char **answer,
		      struct rill_client_error *err)
{
	if (answer != NULL)
		*answer = NULL;
	int rc = call_ready(client, err);
	if (rc != 0)
		return rc;
	if (op == 0 || op >= RILL_WIRE_ADMIN_OP_LAST)
		return client_fail(err, -EINVAL, "unknown admin op %u", op);
	if (json == NULL)
		json = "{}";
	uint64_t id = client->next_id++;
	int n = rill_wire_admin_encode(client->sbuf, client->sbuf_bytes, id, op, json,
				       strlen(json));
	if (n < 0)
		return encode_failed(n, "admin request", err);
	struct rill_wire_header hdr;
	const uint8_t *body;
	rc = call(client, id, (size_t)n, RILL_WIRE_ADMIN_OK, &hdr, &body, err);
	if (rc != 0)
		return rc;
	const char *text;
	uint32_t bytes;
	rc = rill_wire_admin_ok_decode(body, hdr.body_bytes, &text, &bytes);
	if (rc != 0)
		return malformed(client, &hdr, rc, err);
	if (answer == NULL)
		return 0;
	*answer = malloc((size_t)bytes + 1);
	if (*answer == NULL)
		return client_fail(err, -ENOMEM, "out of memory for a %u-byte answer", bytes);
	memcpy(*answer, text, bytes);
	(*answer)[bytes] = '\0';
	return 0;
}

int rill_client_query(struct rill_client *client, const char *name, const void *key,
		      size_t key_bytes, const struct rill_client_query_options *options,
		      struct rill_projection_value *out, struct rill_client_error *err)
{
	int rc = call_ready(client, err);
	if (rc != 0)
		return rc;
	static const struct rill_client_query_options none;
	const struct rill_client_query_options *o = options != NULL ? options : &none;
	size_t name_bytes = name != NULL ? strlen(name) : 0;
	if (name_bytes == 0 || name_bytes > RILL_WIRE_NAME_BYTES_MAX || out == NULL ||
	    (key == NULL && key_bytes > 0) || key_bytes > RILL_KEY_BYTES_MAX)
		return client_fail(err, -EINVAL,
				   "query: a name of 1 to %u bytes, a key of at "
				   "most %u bytes and a place for the value",
				   RILL_WIRE_NAME_BYTES_MAX, RILL_KEY_BYTES_MAX);
	if (o->as_of_offset && o->as_of_timestamp)
		return client_fail(err, -EINVAL, "query: as of an offset or a time, not both");
	struct rill_wire_query q = {
		.name = name,
		.name_bytes = (uint16_t)name_bytes,
		.key = key,
		.key_bytes = (uint16_t)key_bytes,
		.flags = (uint8_t)((o->as_of_offset ? RILL_WIRE_QUERY_F_AS_OF_OFFSET : 0) |
				   (o->as_of_timestamp ? RILL_WIRE_QUERY_F_AS_OF_TIMESTAMP : 0) |
				   (o->has_token ? RILL_WIRE_QUERY_F_TOKEN : 0)),
		.as_of = o->as_of,
		.token_partition = o->token_partition,
		.timeout_ms = o->timeout_ms,
		.token_offset = o->token_offset,
	};
	uint64_t id = client->next_id++;
	int n = rill_wire_query_encode(client->sbuf, client->sbuf_bytes, id, &q);
	if (n < 0)
		return encode_failed(n, "query", err);
	struct rill_wire_header hdr;
	const uint8_t *body;
	rc = call(client, id, (size_t)n, RILL_WIRE_RESULT, &hdr, &body, err);
	if (rc == 0 && (rc = rill_wire_result_decode(body, hdr.body_bytes, out)) != 0)
		return malformed(client, &hdr, rc, err);
	return rc;
}

/* ---- Producing ------------------------------------------------------------------------ */

/* Encode @count events after the PRODUCE header in sbuf; the frame's length or an error. */
static int produce_build(struct rill_client *c, uint64_t id, const char *topic,
			 const struct rill_record *events, uint32_t count, int acks,
			 struct rill_client_error *err)
{
	size_t topic_bytes = topic != NULL ? strlen(topic) : 0;
	if (topic_bytes == 0 || topic_bytes > RILL_WIRE_TOPIC_BYTES_MAX)
		return client_fail(err, -EINVAL, "produce: a topic name of 1 to %u bytes",
				   RILL_WIRE_TOPIC_BYTES_MAX);
	if (events == NULL || count == 0 || count > RILL_CLIENT_EVENTS_PER_SEND_MAX)
		return client_fail(err, -EINVAL, "produce: 1 to %u events per request",
				   RILL_CLIENT_EVENTS_PER_SEND_MAX);
	if (acks < 0 || acks > 2)
		return client_fail(err, -EINVAL, "produce: acks %d is not 0, 1 or 2", acks);
	int at = rill_wire_produce_begin(c->sbuf, c->sbuf_bytes, id, (uint8_t)acks, topic,
					 topic_bytes);
	if (at < 0)
		return encode_failed(at, "produce request", err);
	size_t end = (size_t)at;
	for (uint32_t i = 0; i < count; i++) {
		int n = rill_record_encode(c->sbuf + end, c->sbuf_bytes - end, &events[i]);
		if (n == RILL_E_RECORD_NO_SPACE)
			return client_fail(err, -EMSGSIZE,
					   "produce: event %u of %u does not fit in one %u-byte "
					   "frame with those before it",
					   i, count, c->frame_bytes_max);
		if (n < 0)
			return client_fail(err, n, "produce: event %u: %s", i, rill_strerror(n));
		end += (size_t)n;
	}
	rill_wire_produce_finish(c->sbuf, (uint32_t)end, count);
	return (int)end;
}

int rill_client_produce_send(struct rill_client *client, const char *topic,
			     const struct rill_record *events, uint32_t count, int acks,
			     uint64_t *request_id, struct rill_client_error *err)
{
	int rc = client_usable(client, err);
	if (rc != 0)
		return rc;
	if (client->sub_count > 0)
		return client_fail(err, -EINVAL, "a subscribed connection only reads events");
	if (client->inflight_count >= client->config.inflight_max)
		return client_fail(err, -EAGAIN, "%u requests in flight already: wait for one",
				   client->inflight_count);
	uint64_t id = client->next_id;
	int bytes = produce_build(client, id, topic, events, count, acks, err);
	if (bytes < 0)
		return bytes;
	/* The server reads no more of a connection past its in-flight budget until ACKs free
	 * room; one request is always taken. */
	if (client->inflight_count > 0 &&
	    client->inflight_bytes + (uint64_t)bytes > client->server_inflight_max)
		return client_fail(err, -EAGAIN,
				   "%llu bytes of requests in flight, the server takes %llu: wait "
				   "for one",
				   (unsigned long long)client->inflight_bytes,
				   (unsigned long long)client->server_inflight_max);
	if (client->corked)
		rc = client_gather(client, (uint32_t)bytes, err);
	else
		rc = send_all(client, client->sbuf, (size_t)bytes,
			      deadline_after(client->config.timeout_ns), err);
	if (rc != 0)
		return rc;
	client->next_id++;
	client->inflight[client->inflight_count++] =
		(struct client_inflight){.request_id = id,
					 .event_count = count,
					 .bytes = (uint32_t)bytes,
					 .acks = (uint8_t)acks};
	client->inflight_bytes += (uint32_t)bytes;
	if (request_id != NULL)
		*request_id = id;
	client_check(client);
	return 0;
}

static int inflight_index(const struct rill_client *c, uint64_t id)
{
	for (uint32_t i = 0; i < c->inflight_count; i++)
		if (c->inflight[i].request_id == id)
			return (int)i;
	return -1;
}

/* The entries of an ACK for in-flight request @f into @acks. */
static int ack_read(struct rill_client *c, const struct rill_wire_header *hdr, const uint8_t *body,
		    const struct client_inflight *f, struct rill_client_ack *acks,
		    uint32_t capacity, uint32_t *count, struct rill_client_error *err)
{
	uint32_t n;
	struct rill_wire_iter it;
	int rc = rill_wire_ack_decode(body, hdr->body_bytes, &n, &it);
	if (rc == 0 && n != f->event_count)
		rc = RILL_E_WIRE_COUNT; /* one entry per event sent */
	if (rc != 0)
		return malformed(c, hdr, rc, err);
	if (n > capacity)
		return client_fail(err, -ENOSPC,
				   "request %llu has %u acknowledgements, room for %u",
				   (unsigned long long)hdr->request_id, n, capacity);
	for (uint32_t i = 0; i < n; i++) {
		struct rill_wire_ack_entry e;
		rc = rill_wire_ack_next(&it, &e);
		if (rc != 1)
			return malformed(c, hdr, rc < 0 ? rc : RILL_E_WIRE_COUNT, err);
		struct rill_client_ack *a = &acks[i];
		a->error = e.error;
		a->partition = e.partition;
		a->offset = f->acks == 0 ? UINT64_MAX : e.offset;
		a->event_count = e.event_count;
		a->duplicate = (e.flags & RILL_WIRE_ACK_F_DUPLICATE) != 0;
		size_t len =
			e.reason_bytes < sizeof(a->reason) ? e.reason_bytes : sizeof(a->reason) - 1;
		if (len > 0)
			memcpy(a->reason, e.reason, len);
		a->reason[len] = '\0';
	}
	struct rill_wire_ack_entry extra; /* the end: bytes past the last entry are trailing */
	rc = rill_wire_ack_next(&it, &extra);
	if (rc != 0)
		return malformed(c, hdr, rc < 0 ? rc : RILL_E_WIRE_COUNT, err);
	*count = n;
	return 0;
}

void rill_client_cork(struct rill_client *client)
{
	client->corked = true;
}

int rill_client_uncork(struct rill_client *client, struct rill_client_error *err)
{
	int rc = client_usable(client, err); /* closed: -ENOTCONN, not a send on fd -1 */
	if (client != NULL)
		client->corked = false;
	return rc != 0 ? rc : client_flush(client, err);
}

int rill_client_fd(const struct rill_client *client)
{
	return client->fd;
}

bool rill_client_buffered(const struct rill_client *client)
{
	if (client->early_head != NULL || client->stash_head != NULL)
		return true; /* read while a send or a SUBSCRIBE waited */
	/* The rest of the EVENTS frame being handed out, in rbuf or moved aside (stash_current,
	 * early_current): rill_client_next hands it out, and the fd has nothing to say of it. */
	if (client->events_active &&
	    (client->events_it.left > 0 || client->events_it.at != client->events_it.end))
		return true;
	uint32_t head = client->rhead + client->rframe, have = client->rtail - head;
	struct rill_wire_header h;
	int rc = rill_wire_header_decode(client->rbuf + head, have, client->recv_bytes_max, &h);
	if (rc != 0)
		return rc != -EAGAIN; /* a bad header: the wait reports it */
	return have - RILL_WIRE_HEADER_BYTES >= h.body_bytes;
}

/*
 * Nothing in flight: what the socket holds can only be the connection's end (the server's
 * close, its fatal ERROR: an idle timeout, a stop) or the late answer of a timed-out call.
 * Read it without waiting, so that an event loop woken by the fd learns of the end (the
 * client closes, its fd turning -1) rather than waking again at once for bytes nobody
 * reads. A subscribed connection is left alone: its frames are rill_client_next's. Returns
 * -ENODATA when nothing ended, or the end's error.
 */
static int produce_idle(struct rill_client *c, struct rill_client_error *err)
{
	while (c->sub_count == 0 && !c->events_active && c->stash_head == NULL) {
		struct rill_wire_header hdr;
		const uint8_t *body = NULL;
		int rc = recv_frame(c, 0, &hdr, &body, err); /* 0: no wait (deadline_after) */
		if (rc == -ETIMEDOUT)
			break;
		if (rc != 0)
			return rc;
		rc = stray(c, &hdr, body, err); /* a late answer is skipped: 0 */
		if (rc != 0)
			return rc;
	}
	return client_fail(err, -ENODATA, "no PRODUCE request in flight");
}

int rill_client_produce_wait(struct rill_client *client, uint64_t *request_id,
			     struct rill_client_ack *acks, uint32_t capacity, uint32_t *count,
			     uint64_t timeout_ns, struct rill_client_error *err)
{
	int rc = client_usable(client, err);
	if (rc != 0)
		return rc;
	if (count != NULL)
		*count = 0;
	/* -ENODATA, not -ENOENT: that is the server's answer to a request for a topic it
	 * does not have, and a loop waiting until "nothing in flight" must tell them apart. */
	if (client->inflight_count == 0)
		return produce_idle(client, err);
	/* Room for the answer to any request in flight, checked before one is taken off the
	 * list: a call with too little room loses nothing, and a larger one can follow. */
	for (uint32_t i = 0; i < client->inflight_count; i++)
		if (client->inflight[i].event_count > capacity)
			return client_fail(err, -ENOSPC,
					   "request %llu has %u acknowledgements to come, room for "
					   "%u",
					   (unsigned long long)client->inflight[i].request_id,
					   client->inflight[i].event_count, capacity);
	rc = client_flush(client, err); /* the answers awaited may be to gathered requests */
	if (rc != 0)
		return rc;
	uint64_t deadline_ns = deadline_after(timeout_ns);
	for (;;) {
		struct rill_wire_header hdr;
		const uint8_t *body;
		rc = recv_frame(client, deadline_ns, &hdr, &body, err);
		if (rc != 0)
			return rc;
		int i = inflight_index(client, hdr.request_id);
		if (i < 0) {
			rc = stray(client, &hdr, body, err);
			if (rc != 0)
				return rc;
			continue;
		}
		struct client_inflight f = client->inflight[i];
		if (hdr.type != RILL_WIRE_ACK && hdr.type != RILL_WIRE_ERROR)
			return unexpected(client, &hdr, err);
		client->inflight[i] = client->inflight[--client->inflight_count];
		client->inflight_bytes -= f.bytes;
		if (request_id != NULL)
			*request_id = f.request_id;
		if (hdr.type == RILL_WIRE_ERROR)
			return server_error(client, &hdr, body, err);
		uint32_t ignored;
		return ack_read(client, &hdr, body, &f, acks, capacity,
				count != NULL ? count : &ignored, err);
	}
}

int rill_client_produce(struct rill_client *client, const char *topic,
			const struct rill_record *events, uint32_t count, int acks,
			struct rill_client_ack *acks_out, struct rill_client_error *err)
{
	int rc = call_ready(client, err);
	if (rc != 0)
		return rc;
	uint64_t deadline_ns = deadline_after(client->config.timeout_ns); /* one for both */
	uint64_t id;
	rc = rill_client_produce_send(client, topic, events, count, acks, &id, err);
	if (rc != 0)
		return rc;
	uint32_t got;
	uint64_t answered, now = rill_clock_now_ns();
	rc = rill_client_produce_wait(client, &answered, acks_out, count, &got,
				      deadline_ns > now ? deadline_ns - now : 0, err);
	if (rc == -ETIMEDOUT) { /* the answer may still come: drop it then */
		client->inflight_count = 0;
		client->inflight_bytes = 0;
		abandon(client, id);
	} else if (rc != 0 && client->inflight_count > 0) {
		/* Its frame never went whole (corked, the flush met a closed server: -EPIPE,
		 * the connection kept for reading): no answer will come, and left in flight
		 * it would make every later call -EBUSY. It was the only one (call_ready). */
		client->inflight_count = 0;
		client->inflight_bytes = 0;
	}
	RILL_ASSERT(rc != 0 || answered == id);
	return rc;
}

/* ---- Consuming ------------------------------------------------------------------------ */

/* Wait for the SUBSCRIBED answering @id, holding any EVENTS of earlier subscriptions. */
static int subscribe_wait(struct rill_client *c, uint64_t id, struct rill_client_partition *parts,
			  uint32_t *part_count, struct rill_client_error *err)
{
	uint64_t deadline_ns = deadline_after(c->config.timeout_ns);
	for (;;) {
		struct rill_wire_header hdr;
		const uint8_t *body;
		int rc = recv_frame(c, deadline_ns, &hdr, &body, err);
		if (rc == -ETIMEDOUT) /* it may open later and send to no one: start over */
			return client_break(c, rc);
		if (rc != 0)
			return rc;
		if ((hdr.type == RILL_WIRE_EVENTS ||
		     (hdr.type == RILL_WIRE_ERROR && !error_fatal(body, hdr.body_bytes))) &&
		    sub_find(c, hdr.request_id) != NULL) {
			rc = stash_frame(c, &hdr, body, err);
			if (rc != 0)
				return client_break(c, rc);
			continue;
		}
		if (hdr.request_id != id) {
			rc = stray(c, &hdr, body, err);
			if (rc != 0)
				return rc;
			continue;
		}
		if (hdr.type == RILL_WIRE_ERROR)
			return server_error(c, &hdr, body, err);
		if (hdr.type != RILL_WIRE_SUBSCRIBED)
			return unexpected(c, &hdr, err);
		uint32_t count;
		struct rill_wire_iter it;
		rc = rill_wire_subscribed_decode(body, hdr.body_bytes, &count, &it);
		if (rc == 0 && count > RILL_CLIENT_PARTITIONS_MAX)
			rc = RILL_E_WIRE_COUNT;
		for (uint32_t i = 0; rc == 0 && i < count; i++) {
			struct rill_wire_subscribed_entry e;
			rc = rill_wire_subscribed_next(&it, &e);
			rc = rc == 1 ? 0 : rc < 0 ? rc : RILL_E_WIRE_COUNT;
			if (rc == 0 && parts != NULL)
				parts[i] = (struct rill_client_partition){
					.partition = e.partition,
					.first_offset = e.first_offset,
					.end_offset = e.end_offset};
		}
		if (rc != 0)
			return malformed(c, &hdr, rc, err);
		*part_count = count;
		return 0;
	}
}

int rill_client_subscribe(struct rill_client *client, const char *topic, uint32_t partition,
			  enum rill_client_from from, uint64_t from_value,
			  struct rill_client_partition *parts, uint32_t *part_count,
			  struct rill_client_error *err)
{
	int rc = client_usable(client, err);
	if (rc != 0)
		return rc;
	if (client->inflight_count > 0)
		return client_fail(err, -EBUSY, "PRODUCE requests are in flight: collect them");
	if (client->sub_count == RILL_CLIENT_SUBSCRIPTIONS_MAX)
		return client_fail(err, -ENOSPC, "%u subscriptions on one connection already",
				   RILL_CLIENT_SUBSCRIPTIONS_MAX);
	size_t topic_bytes = topic != NULL ? strlen(topic) : 0;
	if (topic_bytes == 0 || topic_bytes > RILL_WIRE_TOPIC_BYTES_MAX ||
	    (unsigned)from > RILL_CLIENT_FROM_LATEST)
		return client_fail(err, -EINVAL,
				   "subscribe: a topic of 1 to %u bytes and a "
				   "known starting point",
				   RILL_WIRE_TOPIC_BYTES_MAX);
	struct rill_wire_subscribe s = {.topic = topic,
					.topic_bytes = (uint16_t)topic_bytes,
					.from = (uint8_t)from,
					.partition = partition,
					.from_value = from_value,
					.credit = RILL_CLIENT_CREDIT_EVENTS};
	rc = events_detach(client, err);
	if (rc != 0)
		return rc;
	uint64_t id = client->next_id++;
	int n = rill_wire_subscribe_encode(client->sbuf, client->sbuf_bytes, id, &s);
	if (n < 0)
		return encode_failed(n, "subscription", err);
	rc = send_all(client, client->sbuf, (size_t)n, deadline_after(client->config.timeout_ns),
		      err);
	uint32_t count = 0;
	if (rc == 0)
		rc = subscribe_wait(client, id, parts, &count, err);
	if (rc != 0)
		return rc;
	if (part_count != NULL)
		*part_count = count;
	client->subs[client->sub_count++] = (struct client_sub){.request_id = id, .live = count};
	client_check(client);
	return 0;
}

/* Count an event handed out; grant more credit once half of it is used. */
static int credit_use(struct rill_client *c, struct client_sub *s, struct rill_client_error *err)
{
	if (++s->used < RILL_CLIENT_CREDIT_EVENTS / 2)
		return 0;
	uint8_t frame[RILL_WIRE_HEADER_BYTES + RILL_WIRE_FETCH_BYTES];
	int n = rill_wire_fetch_encode(frame, sizeof(frame), s->request_id, s->used);
	RILL_ASSERT(n == (int)sizeof(frame));
	s->used = 0;
	return send_all(c, frame, (size_t)n, deadline_after(c->config.timeout_ns), err);
}

/* The next event of the current EVENTS frame: 1, 0 at its end, or a fatal error. */
static int events_take(struct rill_client *c, struct rill_client_event *event,
		       struct rill_client_error *err)
{
	if (!c->events_active)
		return 0;
	int rc = rill_wire_events_next(&c->events_it, &event->offset, &event->record);
	if (rc == 0) {
		c->events_active = false;
		stash_release_current(c);
		return 0;
	}
	if (rc < 0) {
		client_break(c, rc);
		return client_fail(err, rc, "a malformed event from the server: %s",
				   rill_strerror(rc));
	}
	event->partition = c->events_partition;
	struct client_sub *s = sub_find(c, c->events_id);
	/* A failed FETCH closes the client; the event in hand is good all the same, and the
	 * next call reports the closed connection. */
	if (s != NULL)
		(void)credit_use(c, s, err);
	return 1;
}

/* Read frames until one starts a batch of events: 0, -ETIMEDOUT, or an error. */
static int events_next_frame(struct rill_client *c, uint64_t deadline_ns,
			     struct rill_client_error *err)
{
	if (c->stash_head != NULL) {
		struct client_stashed *s = c->stash_head;
		c->stash_head = s->next;
		if (c->stash_head == NULL)
			c->stash_tail = NULL;
		c->stash_current = s;
		if (sub_find(c, s->request_id) == NULL) { /* ended since: drop it */
			stash_release_current(c);
			return 0;
		}
		if (s->type == RILL_WIRE_ERROR) {
			struct rill_wire_header hdr = {.body_bytes = s->body_bytes,
						       .type = RILL_WIRE_ERROR,
						       .request_id = s->request_id};
			int rc = sub_partition_ended(c, &hdr, s->body, err);
			stash_release_current(c);
			return rc;
		}
		return events_begin(c, s->request_id, s->body, s->body_bytes, err);
	}
	struct rill_wire_header hdr;
	const uint8_t *body;
	int rc = recv_frame(c, deadline_ns, &hdr, &body, err);
	if (rc != 0)
		return rc;
	if (sub_find(c, hdr.request_id) == NULL)
		return stray(c, &hdr, body, err);
	if (hdr.type == RILL_WIRE_EVENTS)
		return events_begin(c, hdr.request_id, body, hdr.body_bytes, err);
	if (hdr.type != RILL_WIRE_ERROR)
		return unexpected(c, &hdr, err);
	return sub_partition_ended(c, &hdr, body, err);
}

int rill_client_next(struct rill_client *client, struct rill_client_event *event,
		     uint64_t timeout_ns, struct rill_client_error *err)
{
	int rc = client_usable(client, err);
	if (rc != 0)
		return rc;
	if (event == NULL)
		return client_fail(err, -EINVAL, "no place for the event");
	uint64_t deadline_ns = deadline_after(timeout_ns);
	for (uint32_t eventless = 0;; eventless++) {
		rc = events_take(client, event, err);
		if (rc != 0)
			return rc;
		if (client->sub_count == 0 && client->stash_head == NULL)
			return client_fail(err, -ENOENT, "no subscription is open");
		/* The clock is read when a read would block, and also after a run of frames
		 * that brought no event (a server sending empty EVENTS frames without end must
		 * not hold the caller past its timeout); a few such frames between events, as
		 * a healthy server may send, do not cut a call short. */
		if (eventless >= CLIENT_EVENTLESS_FRAMES && rill_clock_now_ns() >= deadline_ns)
			return 0;
		rc = events_next_frame(client, deadline_ns, err);
		if (rc == -ETIMEDOUT)
			return 0;
		if (rc != 0)
			return rc;
	}
}
