/*
 * The server's workers: one per shard, each a hook in its shard's loop (it runs on the
 * shard's thread: an event for the local shard is received, appended, applied and
 * acknowledged without a hand-off between threads, and without a ring: rill_publish
 * takes it at once), with its own io_uring, listener,
 * provided receive buffers, connections and producer handle. This file owns the bytes:
 * accepting, receiving (frames are cut out of the receive buffers in place and handed to
 * server_conn.c), sending (each connection's answers go out in one send per loop turn),
 * closing, timeouts and the stop. Hot path: the worker's turn.
 *
 * A turn (srv_hook_poll, once per turn of the shard's loop): reap completions, deliver
 * the engine's acknowledgements and the control thread's answers, retry what waited for
 * room, feed subscriptions, start the sends, submit. When the shard is idle it sleeps in
 * the worker's io_uring (srv_hook_sleep), woken by a completion, the shard's eventfd, the
 * producer's eventfd (acknowledgements from the other shards), the control thread's
 * eventfd, or a timeout that keeps the timers running.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/atomic.h"
#include "base/clock.h"
#include "io/server_int.h"

static uint64_t srv_udata(enum srv_op op, uint32_t slot, uint32_t gen)
{
	return ((uint64_t)op << 56) | ((uint64_t)(slot & 0xffffffu) << 32) | gen;
}

void srv_conn_mark(struct srv_worker *w, const struct srv_conn *c)
{
	w->ready[c->slot >> 6] |= 1ull << (c->slot & 63u);
}

void srv_conn_wait(struct srv_worker *w, struct srv_conn *c)
{
	w->waiters[c->slot >> 6] |= 1ull << (c->slot & 63u);
}

/* Budget or request slots came back: every waiting connection tries again. */
static void srv_waiters_wake(struct srv_worker *w)
{
	for (uint32_t k = 0; k < w->slot_words; k++) {
		uint64_t bits = w->waiters[k];
		w->waiters[k] = 0;
		w->ready[k] |= bits;
		for (; bits != 0; bits &= bits - 1) {
			struct srv_conn *c = w->conns[k * 64u + (uint32_t)__builtin_ctzll(bits)];
			if (c != NULL)
				c->waiting = false;
		}
	}
}

void srv_stat_add(uint64_t *counter, uint64_t n)
{
	/* The worker's own counter, one writer: no read-modify-write (and no cache line
	 * shared with the other workers); relaxed, since readers want a figure, no order. */
	rill_atomic_store_relaxed_u64(counter, rill_atomic_load_relaxed_u64(counter) + n);
}

void rill_server_config_default(struct rill_server_config *c)
{
	*c = (struct rill_server_config){
		.listen = RILL_SERVER_LISTEN_DEFAULT,
		.frame_bytes_max = 1u << 20,
		.conn_inflight_bytes_max = 8u << 20,
		.server_inflight_bytes_max = 256u << 20,
		.connections_max = 1024,
		.idle_timeout_ns = 300 * SRV_NS_PER_S,
		.handshake_timeout_ns = 5 * SRV_NS_PER_S,
		.send_stall_timeout_ns = 10 * SRV_NS_PER_S,
		.query_wait_ns = SRV_NS_PER_S,
		.subscriptions_max = 64,
	};
}

/* Room an answer may need: the largest frame, with its header. */
uint32_t srv_tx_reserve_bytes(const struct rill_server *s)
{
	return s->config.frame_bytes_max + RILL_WIRE_HEADER_BYTES;
}

/* ---- Output ------------------------------------------------------------------------- */

uint8_t *srv_conn_tx_reserve(struct srv_conn *c, uint32_t bytes)
{
	if (c->closed || bytes > c->tx_cap - c->tx_len)
		return NULL;
	return c->tx + c->tx_len;
}

void srv_conn_send(struct srv_worker *w, struct srv_conn *c, const void *frame, uint32_t bytes)
{
	if (c->closed)
		return;
	/* The stall clock (send_stall_timeout) starts when output starts waiting: a peer
	 * quiet for longer than the timeout has its last send long past, and an answer to
	 * its next frame, in rx the same turn as a timer check, read as a stall. */
	if (c->tx_len == 0)
		c->send_progress_ns = w->now;
	/* S2 keeps room for any answer to a frame read; asynchronous output (ACKs, EVENTS)
	 * checks its room itself, so this cannot overflow. */
	RILL_ASSERT(bytes <= c->tx_cap - c->tx_len);
	if (frame != c->tx + c->tx_len)
		memcpy(c->tx + c->tx_len, frame, bytes);
	c->tx_len += bytes;
}

static void srv_conn_error_v(struct srv_worker *w, struct srv_conn *c, uint64_t request_id,
			     int code, bool fatal, const char *fmt, va_list ap)
	__attribute__((format(printf, 6, 0)));

static void srv_conn_error_v(struct srv_worker *w, struct srv_conn *c, uint64_t request_id,
			     int code, bool fatal, const char *fmt, va_list ap)
{
	char msg[RILL_WIRE_MESSAGE_BYTES_MAX + 1];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (code >= 0)
		code = -EPROTO; /* an ERROR's code is negative (io/wire.h) */
	uint32_t need = RILL_WIRE_HEADER_BYTES + RILL_WIRE_ERROR_BYTES_MIN + (uint32_t)strlen(msg);
	uint8_t *dst = srv_conn_tx_reserve(c, need);
	if (dst != NULL) {
		int n = rill_wire_error_encode(dst, need, request_id, code,
					       fatal ? RILL_WIRE_ERROR_F_FATAL : 0, msg);
		if (n > 0)
			srv_conn_send(w, c, dst, (uint32_t)n);
	}
	if (fatal) {
		fprintf(stderr, "rill: serve: %s: closing: %s\n", c->peer, msg);
		c->closing = true;
		c->fatal = true;
	}
}

void srv_conn_error(struct srv_worker *w, struct srv_conn *c, uint64_t request_id, int code,
		    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	srv_conn_error_v(w, c, request_id, code, false, fmt, ap);
	va_end(ap);
}

void srv_conn_fatal(struct srv_worker *w, struct srv_conn *c, uint64_t request_id, int code,
		    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	srv_conn_error_v(w, c, request_id, code, true, fmt, ap);
	va_end(ap);
}

/* ---- Submissions -------------------------------------------------------------------- */

static struct io_uring_sqe *srv_sqe(struct srv_worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	for (int i = 0; sqe == NULL && i < 1000; i++) {
		/* Full: submit to make room; a busy completion queue (-EBUSY) empties as
		 * the kernel flushes its overflow, so let it run and try again. */
		if (io_uring_submit(&w->ring) < 0) {
			io_uring_get_events(&w->ring);
			sched_yield();
		}
		sqe = io_uring_get_sqe(&w->ring);
	}
	RILL_ASSERT(sqe != NULL); /* the kernel took nothing for a thousand tries */
	return sqe;
}

static void srv_accept_arm(struct srv_worker *w)
{
	struct io_uring_sqe *sqe = srv_sqe(w);
	io_uring_prep_multishot_accept(sqe, w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, srv_udata(SRV_OP_ACCEPT, 0, 0));
	w->accept_armed = true;
}

/* A read of eventfd @fd into @buf, completing as @op. */
static void srv_efd_arm(struct srv_worker *w, int fd, uint64_t *buf, enum srv_op op)
{
	struct io_uring_sqe *sqe = srv_sqe(w);
	io_uring_prep_read(sqe, fd, buf, sizeof(*buf), 0);
	io_uring_sqe_set_data64(sqe, srv_udata(op, 0, 0));
}

/*
 * One receive of one provided buffer (S6; a length of 0: the buffer's). Single-shot, not
 * multishot: a multishot recv keeps taking buffers until its cancel lands, and one turn's
 * enter gave a connection that had just stalled 92 of the ring's 128 (5.9 MB), all of it
 * copied into its input buffer. A receive armed again only while the connection may read
 * leaves the rest in the socket, where TCP's window holds it back. It costs a submission
 * per buffer, which the turn's one enter carries with the sends.
 */
static void srv_recv_arm(struct srv_worker *w, struct srv_conn *c)
{
	struct io_uring_sqe *sqe = srv_sqe(w);
	io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = SRV_BGID;
	io_uring_sqe_set_data64(sqe, srv_udata(SRV_OP_RECV, c->slot, c->gen));
	c->recv_armed = true;
	c->recv_paused = false;
	c->ops++;
}

/* Stop the receive in flight (the connection is closing): a buffer it took already still
 * arrives. */
static void srv_recv_cancel(struct srv_worker *w, struct srv_conn *c)
{
	struct io_uring_sqe *sqe = srv_sqe(w);
	io_uring_prep_cancel64(sqe, srv_udata(SRV_OP_RECV, c->slot, c->gen), 0);
	io_uring_sqe_set_data64(sqe, srv_udata(SRV_OP_CANCEL, c->slot, c->gen));
	c->ops++;
}

static void srv_send_start(struct srv_worker *w, struct srv_conn *c)
{
	if (c->tx_sending > 0 || c->tx_len == 0 || c->closed)
		return;
	struct io_uring_sqe *sqe = srv_sqe(w);
	io_uring_prep_send(sqe, c->fd, c->tx, c->tx_len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, srv_udata(SRV_OP_SEND, c->slot, c->gen));
	c->tx_sending = c->tx_len;
	c->ops++;
}

/* ---- Connections -------------------------------------------------------------------- */

/* Count @delta bytes more (or, negative, fewer) of input buffers in the server's gauge. */
static void srv_input_count(struct rill_server *s, int64_t delta)
{
	/* Statistics, as the in-flight peak: relaxed is enough. */
	uint64_t total = rill_atomic_fetch_add_relaxed_u64(&s->input_bytes, (uint64_t)delta) +
			 (uint64_t)delta;
	if (delta > 0)
		rill_atomic_max_relaxed_u64(&s->input_bytes_peak, total);
}

/* Make room at the end of rx for @bytes more. 0 or -ENOMEM. */
static int srv_rx_room(struct srv_worker *w, struct srv_conn *c, uint32_t bytes)
{
	if (c->rx_cap - c->rx_at - c->rx_len >= bytes)
		return 0;
	if (c->rx_at > 0) { /* what is left of the frames handled: moved once, here */
		memmove(c->rx, c->rx + c->rx_at, c->rx_len);
		c->rx_at = 0;
		if (c->rx_cap - c->rx_len >= bytes)
			return 0;
	}
	uint64_t max = srv_rx_bytes_max(w->server);
	uint64_t want = (uint64_t)c->rx_len + bytes;
	RILL_DASSERT(want <= max); /* S6: past it, the connection fails, the bound holds */
	if (want > max)
		return -ENOMEM;
	uint64_t cap = c->rx_cap > 0 ? 2 * (uint64_t)c->rx_cap : SRV_BUF_BYTES;
	cap = cap < want ? want : cap > max ? max : cap;
	uint8_t *rx = realloc(c->rx, cap);
	if (rx == NULL)
		return -ENOMEM;
	srv_input_count(w->server, (int64_t)cap - (int64_t)c->rx_cap);
	c->rx = rx;
	c->rx_cap = (uint32_t)cap;
	return 0;
}

/* Free the input buffer if it is empty (S6): a connection idle after a burst holds none. */
static void srv_rx_release(struct srv_worker *w, struct srv_conn *c)
{
	if (c->rx == NULL || c->rx_len > 0)
		return;
	free(c->rx);
	c->rx = NULL;
	srv_input_count(w->server, -(int64_t)c->rx_cap);
	c->rx_at = c->rx_cap = 0;
}

static void srv_conn_free(struct srv_worker *w, struct srv_conn *c)
{
	RILL_ASSERT(c->ops == 0 && c->preqs == 0 && !c->ctl_busy); /* S4 */
	w->conns[c->slot] = NULL;
	w->ready[c->slot >> 6] &= ~(1ull << (c->slot & 63u));
	w->waiters[c->slot >> 6] &= ~(1ull << (c->slot & 63u));
	w->conn_count--;
	w->live[c->live_index] = w->live[w->conn_count]; /* the last takes its place */
	w->live[c->live_index]->live_index = c->live_index;
	rill_atomic_fetch_sub_relaxed_u64(&w->server->connections, 1); /* a count */
	if (c->rx_reserved > 0)
		srv_inflight_give(w->server, c->rx_reserved);
	c->rx_len = 0; /* what it held goes too */
	srv_rx_release(w, c);
	free(c->tx);
	free(c->subs);
	free(c->job.body); /* a job taken back at the stop, never run or never answered */
	free(c->job.answer);
	free(c);
}

/* Close the socket now (output is dropped); freed once its operations are done. */
static void srv_conn_close(struct srv_worker *w, struct srv_conn *c)
{
	if (!c->closed) {
		c->closed = true;
		if (c->ctl_busy && c->job.done) { /* an answer that waited for room: dropped */
			free(c->job.answer);
			c->job.answer = NULL;
			c->ctl_busy = false;
		}
		srv_subs_release(w, c);     /* a job still out does it when it comes back */
		shutdown(c->fd, SHUT_RDWR); /* ends a receive in flight and any send */
		close(c->fd);
		c->fd = -1;
		/* Answers not written yet are dropped: hand their budget back (S3). */
		while (c->done_head != NULL) {
			struct srv_preq *r = c->done_head;
			c->done_head = r->next;
			srv_preq_release(w, r);
		}
		c->done_tail = NULL;
	}
	if (c->ops == 0 && c->preqs == 0 && !c->ctl_busy)
		srv_conn_free(w, c);
}

/* The soft RLIMIT_NOFILE: descriptors this process may hold (UINT64_MAX: no limit). */
static uint64_t srv_fds_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return UINT64_MAX;
	return rl.rlim_cur;
}

/* Descriptors open in this process now: /proc/self/fd's entries, or, without /proc (or
 * without a descriptor to read it with), a probe of each below @limit (at most 1 Mi). */
static uint64_t srv_fds_open(uint64_t limit)
{
	uint64_t n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (d != NULL) {
		for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
			n += e->d_name[0] != '.';
		closedir(d);
		return n > 0 ? n - 1 : 0; /* the directory's own */
	}
	for (uint64_t fd = 0; fd < limit && fd < (1u << 20); fd++)
		n += fcntl((int)fd, F_GETFD) >= 0;
	return n;
}

/*
 * Whether a new connection may keep descriptor @fd: not one of the top
 * RILL_SERVER_FDS_RESERVED under the limit (server.h). The kernel gives the lowest free
 * descriptor, so @fd there means every one below it is taken, by connections and files
 * alike: the engine, which needs a descriptor for every segment roll, finds the reserved
 * ones whatever it opened since the start. Before this, idle connections up to the limit
 * made the next roll fail with EMFILE and stopped its partition until a restart. The
 * limit is read each time (a syscall per connection, off the event path): a host may
 * change it while the server runs.
 *
 * A limit lowered below the one at the start (prlimit) breaks the reckoning by number:
 * descriptors taken before may sit above the new limit's reserve, or fill it, while a
 * connection closed low down leaves a hole that a new one takes, fd + reserve far under
 * the limit, with nothing free above. So below the start's limit the descriptors open are
 * counted (a read of /proc/self/fd per connection, on the worker's thread: only while
 * the limit is lowered), and a connection is kept only if the reserve stays free beside
 * it. A limit as high as the start's, or higher, needs no count: what the host checked at
 * the start (rill_server_fds_check) still holds. Says so on stderr at the 1st, 2nd, 4th...
 * refusal.
 */
static bool srv_fd_room(struct rill_server *s, int fd)
{
	uint64_t limit = srv_fds_limit();
	bool room = (uint64_t)fd + RILL_SERVER_FDS_RESERVED < limit;
	if (room && limit < s->fds_limit_start) /* @fd is counted among those open */
		room = srv_fds_open(limit) + RILL_SERVER_FDS_RESERVED <= limit;
	if (room)
		return true;
	char lowered[64] = "";
	if (limit < s->fds_limit_start)
		snprintf(lowered, sizeof(lowered), " (lowered from %llu since the start)",
			 (unsigned long long)s->fds_limit_start);
	uint64_t n = rill_atomic_fetch_add_relaxed_u64(&s->fds_refused, 1) + 1; /* a count */
	if ((n & (n - 1)) == 0)
		fprintf(stderr,
			"rill: serve: a connection refused: the open-file limit (RLIMIT_NOFILE) "
			"is %llu%s and %u descriptors under it are kept for the engine's files "
			"(%llu refused so far); raise the limit (LimitNOFILE=, ulimit -n)\n",
			(unsigned long long)limit, lowered, RILL_SERVER_FDS_RESERVED,
			(unsigned long long)n);
	return false;
}

/*
 * TCP keepalive on every connection. A client whose host vanished (power lost, network
 * gone: no FIN, no RST) would otherwise keep its connection, and the shards' subscription
 * slots its subscriptions hold, for good: a subscribed connection has no idle timeout, and
 * a quiet topic sends nothing that could stall. Probes after SRV_KEEPALIVE_IDLE_S of
 * silence, every SRV_KEEPALIVE_INTERVAL_S; SRV_KEEPALIVE_COUNT unanswered end it (the
 * receive fails with ETIMEDOUT, and the connection closes as on any socket error). A
 * failure leaves the connection without it, as TCP_NODELAY's does: nothing else depends
 * on it.
 */
static void srv_keepalive_set(int fd)
{
	int on = 1, idle = SRV_KEEPALIVE_IDLE_S, interval = SRV_KEEPALIVE_INTERVAL_S,
	    count = SRV_KEEPALIVE_COUNT;
	(void)(setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) == 0 &&
	       setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval)) == 0 &&
	       setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count)) == 0 &&
	       setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == 0);
}

/*
 * Close a connection the server has no room for, telling the client why, best effort and
 * never blocking the worker: one non-blocking send of a fatal ERROR for request 0 (the
 * HELLO's: the client library reports it in place of HELLO_OK), lost if the peer is gone.
 * Then a FIN after it, and what the client sent already (its HELLO) read and dropped:
 * Linux closes a socket with unread input by a reset, after which the client saw only
 * "Connection reset by peer" (and a peer's stack may discard the ERROR it had not read).
 * A HELLO that comes after the close still draws a reset, but behind the ERROR and the
 * FIN, which the client reads first.
 */
static void srv_conn_turn_away(int fd, int code, const char *msg)
{
	uint8_t frame[RILL_WIRE_HEADER_BYTES + RILL_WIRE_ERROR_BYTES_MIN + 256];
	int n = rill_wire_error_encode(frame, sizeof(frame), 0, code, RILL_WIRE_ERROR_F_FATAL, msg);
	if (n > 0)
		(void)send(fd, frame, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)shutdown(fd, SHUT_WR);
	uint8_t sink[512]; /* a HELLO frame is 32 bytes; a peer that sent more is no client */
	for (int i = 0; i < 4 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
}

/* A connection past connections_max: said to the client, and on stderr at the 1st, 2nd,
 * 4th... refusal (a flood of them must not flood the log). */
static void srv_conn_refuse_full(struct rill_server *s, int fd)
{
	uint32_t max = s->config.connections_max;
	char msg[160];
	snprintf(msg, sizeof(msg),
		 "the server holds connections_max = %u connections already: try again later, "
		 "or raise connections_max ([server])",
		 max);
	srv_conn_turn_away(fd, -ENOSPC, msg);
	uint64_t n = rill_atomic_fetch_add_relaxed_u64(&s->conns_refused, 1) + 1; /* a count */
	if ((n & (n - 1)) == 0)
		fprintf(stderr,
			"rill: serve: a connection refused: connections_max = %u connections "
			"are open (%llu refused so far); raise connections_max in [server] for "
			"more\n",
			max, (unsigned long long)n);
}

static void srv_conn_new(struct srv_worker *w, int fd)
{
	struct rill_server *s = w->server;
	if (!srv_fd_room(s, fd)) {
		srv_stat_add(&w->stats.refused, 1);
		srv_conn_turn_away(fd, -EMFILE,
				   "the server's open-file limit leaves no descriptor for another "
				   "connection: try again later");
		return;
	}
	uint64_t n = rill_atomic_fetch_add_relaxed_u64(&s->connections, 1); /* a count */
	uint32_t slot = 0;
	while (slot < s->config.connections_max && w->conns[slot] != NULL)
		slot++;
	struct srv_conn *c = NULL;
	if (n < s->config.connections_max && slot < s->config.connections_max)
		c = calloc(1, sizeof(*c));
	if (c != NULL) {
		c->tx_cap = 2 * srv_tx_reserve_bytes(s);
		c->tx = malloc(c->tx_cap);
	}
	if (c == NULL || c->tx == NULL) {
		bool full = n >= s->config.connections_max || slot >= s->config.connections_max;
		if (c != NULL)
			free(c);
		rill_atomic_fetch_sub_relaxed_u64(&s->connections, 1);
		srv_stat_add(&w->stats.refused, 1);
		if (full) /* refused at once */
			srv_conn_refuse_full(s, fd);
		else
			srv_conn_turn_away(fd, -ENOMEM, "the server is out of memory");
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	srv_keepalive_set(fd);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(c->peer, sizeof(c->peer), "%s:%s", host, port);
	c->fd = fd;
	c->slot = slot;
	c->gen = ++w->gen_next;
	c->opened_ns = c->active_ns = c->send_progress_ns = w->now;
	w->conns[slot] = c;
	if (slot / 64u + 1u > w->slot_words)
		w->slot_words = slot / 64u + 1u;
	srv_conn_mark(w, c);
	c->live_index = w->conn_count;
	w->live[w->conn_count++] = c;
	srv_stat_add(&w->stats.accepted, 1);
	srv_recv_arm(w, c);
}

/* May the connection take another frame now? (S2) */
static bool srv_conn_can_read(const struct rill_server *s, const struct srv_conn *c)
{
	return !c->closing && !c->closed && c->stalled == NULL && !c->waiting && !c->ctl_busy &&
	       c->tx_cap - c->tx_len >= srv_tx_reserve_bytes(s);
}

/*
 * Cut frames out of @data (@bytes) and handle them; returns the bytes consumed. Stops at
 * a partial frame, when the connection may not read on, or when it failed.
 */
static uint32_t srv_frames(struct srv_worker *w, struct srv_conn *c, const uint8_t *data,
			   uint32_t bytes)
{
	struct rill_server *s = w->server;
	uint32_t at = 0;
	while (srv_conn_can_read(s, c) && bytes - at >= RILL_WIRE_HEADER_BYTES) {
		struct rill_wire_header h = {0};
		int rc = rill_wire_header_decode(data + at, bytes - at, s->config.frame_bytes_max,
						 &h);
		if (rc < 0) {
			/* The decoder fills the header even when it refuses it: the ERROR answers
			 * the request id the peer gave. */
			srv_stat_add(&w->stats.bad_frames, 1);
			srv_conn_fatal(w, c, h.request_id, rc, "bad frame header: %s",
				       rill_strerror(rc));
			return bytes;
		}
		if (!c->hello && h.type != RILL_WIRE_HELLO) {
			srv_stat_add(&w->stats.bad_frames, 1);
			srv_conn_fatal(w, c, h.request_id, RILL_E_WIRE_TYPE,
				       "the first frame must be HELLO, not %s",
				       rill_wire_type_name(h.type));
			return bytes;
		}
		/* A frame of one size claiming another is refused at its header, so that no
		 * budget is reserved (srv_rx_reserve) nor memory grown for a body that cannot
		 * be valid: before HELLO a peer may send nothing else. */
		rc = rill_wire_body_check(&h);
		if (rc < 0) {
			srv_stat_add(&w->stats.bad_frames, 1);
			srv_conn_fatal(w, c, h.request_id, rc, "%s: %s",
				       rill_wire_type_name(h.type), rill_strerror(rc));
			return bytes;
		}
		uint32_t frame = RILL_WIRE_HEADER_BYTES + h.body_bytes;
		if (bytes - at < frame)
			break; /* the body is still coming */
		rc = srv_frame(w, c, &h, data + at + RILL_WIRE_HEADER_BYTES);
		if (rc == -EAGAIN)
			break; /* keep it: retried when there is room */
		srv_stat_add(&w->stats.frames, 1);
		at += frame;
		if (rc < 0)
			return bytes;
	}
	return at;
}

/*
 * The budget for the frame whose header starts rx (S3): reserve its size before reading
 * its body, so that a length field alone can never make the server hold memory it did not
 * agree to. false: no room now (the connection pauses).
 */
static bool srv_rx_reserve(struct srv_worker *w, struct srv_conn *c)
{
	struct rill_server *s = w->server;
	if (c->rx_len < RILL_WIRE_HEADER_BYTES)
		return true;
	struct rill_wire_header h;
	if (rill_wire_header_decode(srv_rx_data(c), c->rx_len, s->config.frame_bytes_max, &h) < 0)
		return true; /* srv_frames reports it */
	uint32_t need = RILL_WIRE_HEADER_BYTES + h.body_bytes;
	if (c->rx_len >= need)
		return false; /* whole, and not handled yet: nothing more until it is, or a
			       * peer pipelining faster than its ACKs free room fills rx */
	if (c->rx_reserved >= need)
		return true; /* held already: its body is still coming */
	if (!srv_inflight_take(s, c->inflight_bytes + c->rx_reserved, need - c->rx_reserved)) {
		srv_stat_add(&w->stats.backpressure, 1);
		srv_conn_wait(w, c);
		return false;
	}
	c->rx_reserved = need;
	/* Room for the frame and for the rest of the receive buffer that ends it (S6): the
	 * buffer is not grown again, nor doubled past what it may hold. */
	return srv_rx_room(w, c, need - c->rx_len + SRV_BUF_BYTES) == 0;
}

/* Handle what rx holds; keep the rest. */
static void srv_rx_process(struct srv_worker *w, struct srv_conn *c)
{
	uint32_t used = srv_frames(w, c, srv_rx_data(c), c->rx_len);
	if (used > 0) {
		srv_rx_consume(c, used);
		if (c->rx_reserved > 0) { /* what no PRODUCE took over (srv_budget_take) */
			srv_inflight_give(w->server, c->rx_reserved);
			c->rx_reserved = 0;
		}
	}
}

/* Bytes arrived in a provided buffer: parse in place what is whole, keep the rest. */
static void srv_conn_input(struct srv_worker *w, struct srv_conn *c, const uint8_t *data,
			   uint32_t bytes)
{
	c->active_ns = w->now;
	srv_stat_add(&w->stats.bytes_in, bytes);
	uint32_t used = 0;
	if (c->rx_len == 0)
		used = srv_frames(w, c, data, bytes); /* the common case: no copy */
	if (c->closing || c->closed)
		return;
	if (used < bytes) {
		if (srv_rx_room(w, c, bytes - used) < 0) {
			if (c->stalled != NULL)
				srv_produce_abandon(w, c, -ENOMEM); /* its frame cannot be kept */
			srv_conn_fatal(w, c, 0, -ENOMEM, "out of memory for input");
			return;
		}
		memcpy(srv_rx_data(c) + c->rx_len, data + used, bytes - used);
		c->rx_len += bytes - used;
		srv_rx_process(w, c);
	}
}

/* ---- Completions -------------------------------------------------------------------- */

static void srv_buf_return(struct srv_worker *w, uint32_t bid)
{
	io_uring_buf_ring_add(w->bufs, w->buf_mem + (size_t)bid * SRV_BUF_BYTES, SRV_BUF_BYTES,
			      (unsigned short)bid, io_uring_buf_ring_mask(SRV_BUF_COUNT), 0);
	io_uring_buf_ring_advance(w->bufs, 1);
}

/* A receive completed (single-shot, S6: the turn's tick arms the next one). */
static void srv_on_recv(struct srv_worker *w, struct srv_conn *c, struct io_uring_cqe *cqe)
{
	RILL_DASSERT(!(cqe->flags & IORING_CQE_F_MORE));
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		RILL_ASSERT(bid < SRV_BUF_COUNT);
		if (cqe->res > 0 && !c->closed)
			srv_conn_input(w, c, w->buf_mem + (size_t)bid * SRV_BUF_BYTES,
				       (uint32_t)cqe->res);
		srv_buf_return(w, bid);
	}
	c->ops--;
	c->recv_armed = false;
	c->recv_paused = false; /* a cancel asked for is done with it */
	if (cqe->res == 0)
		c->eof = true; /* it sent all it will: its frames kept in rx are still answered */
	else if (cqe->res < 0 && cqe->res != -ENOBUFS && cqe->res != -ECANCELED)
		c->closing = true; /* the socket failed */
}

/* Whether rx starts with a whole frame (srv_frames takes it once the connection may read;
 * a bad header counts: srv_frames answers it). */
static bool srv_rx_whole(const struct rill_server *s, const struct srv_conn *c)
{
	struct rill_wire_header h;
	if (c->rx_len < RILL_WIRE_HEADER_BYTES)
		return false;
	if (rill_wire_header_decode(srv_rx_data(c), c->rx_len, s->config.frame_bytes_max, &h) < 0)
		return true;
	return c->rx_len - RILL_WIRE_HEADER_BYTES >= h.body_bytes;
}

static void srv_on_send(struct srv_worker *w, struct srv_conn *c, int res)
{
	c->ops--;
	uint32_t sent = c->tx_sending;
	c->tx_sending = 0;
	if (c->closed)
		return;
	if (c->dead) {
		c->tx_len = 0; /* given up: what was still to go is dropped */
		return;
	}
	if (res <= 0) {
		c->closing = true;
		c->tx_len = 0; /* the peer is gone: nothing more can go */
		return;
	}
	RILL_ASSERT((uint32_t)res <= sent);
	memmove(c->tx, c->tx + res, c->tx_len - (uint32_t)res);
	c->tx_len -= (uint32_t)res;
	c->send_progress_ns = w->now;
	srv_stat_add(&w->stats.bytes_out, (uint64_t)res);
}

static void srv_on_accept(struct srv_worker *w, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		w->accept_armed = false;
	if (cqe->res < 0 && cqe->res != -ECANCELED && !w->accept_armed)
		w->accept_after_ns = w->now + SRV_TIMER_NS; /* EMFILE and the like: back off */
	if (cqe->res >= 0) {
		if (w->stopping)
			close(cqe->res);
		else
			srv_conn_new(w, cqe->res);
	}
}

static void srv_complete(struct srv_worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	enum srv_op op = (enum srv_op)(ud >> 56);
	if (op == SRV_OP_ACCEPT) {
		srv_on_accept(w, cqe);
		return;
	}
	if (op == SRV_OP_WAKE) {
		if (cqe->res != -ECANCELED) /* woken: the turn polls the acknowledgements */
			srv_efd_arm(w, rill_producer_wake_fd(w->producer), &w->wake_buf,
				    SRV_OP_WAKE);
		return;
	}
	if (op == SRV_OP_CTL) {
		if (cqe->res != -ECANCELED) /* the turn collects the answers */
			srv_efd_arm(w, w->ctl_fd, &w->ctl_buf, SRV_OP_CTL);
		return;
	}
	if (op == SRV_OP_SHARD_WAKE) {
		w->shard_wake_armed = false; /* armed again when the shard next sleeps */
		return;
	}
	uint32_t slot = (uint32_t)(ud >> 32) & 0xffffffu, gen = (uint32_t)ud;
	struct srv_conn *c = slot < w->server->config.connections_max ? w->conns[slot] : NULL;
	RILL_ASSERT(c != NULL && c->gen == gen); /* S4: a connection outlives its operations */
	srv_conn_mark(w, c);
	if (op == SRV_OP_RECV) {
		srv_on_recv(w, c, cqe);
	} else if (op == SRV_OP_SEND) {
		srv_on_send(w, c, cqe->res);
	} else {
		c->ops--; /* a cancel's own completion */
	}
	if (c->closed)
		srv_conn_close(w, c);
}

static unsigned srv_reap(struct srv_worker *w)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&w->ring, head, cqe)
	{
		srv_complete(w, cqe);
		n++;
	}
	io_uring_cq_advance(&w->ring, n);
	return n;
}

/* ---- The loop ----------------------------------------------------------------------- */

/* A connection may close once nothing it took in is still owed an answer. */
static bool srv_conn_drained(const struct srv_conn *c)
{
	return c->preqs == 0 && c->stalled == NULL && c->done_head == NULL && !c->ctl_busy &&
	       (c->tx_len == 0 || c->dead);
}

static void srv_conn_timers(struct srv_worker *w, struct srv_conn *c, uint64_t now)
{
	const struct rill_server_config *cfg = &w->server->config;
	const char *why = NULL;
	if (c->closing) {
		/* Closing: only a peer that stops reading what is left can hold it open. */
		if (c->tx_len > 0 && now - c->send_progress_ns > cfg->send_stall_timeout_ns)
			c->dead = true;
		return;
	}
	if (!c->hello && now - c->opened_ns > cfg->handshake_timeout_ns)
		why = "no HELLO within the handshake timeout";
	else if (cfg->idle_timeout_ns > 0 && now - c->active_ns > cfg->idle_timeout_ns &&
		 c->sub_count == 0 && c->preqs == 0 && c->tx_len == 0 && !c->ctl_busy)
		why = "idle past the idle timeout";
	else if (c->tx_len > 0 && now - c->send_progress_ns > cfg->send_stall_timeout_ns)
		why = "the peer reads nothing of its full output buffer (a slow subscriber?)";
	if (why == NULL)
		return;
	srv_stat_add(&w->stats.cut_off, 1);
	fprintf(stderr, "rill: serve: %s: cut off: %s\n", c->peer, why);
	c->closing = true;
	c->dead = c->tx_len > 0; /* a stalled reader takes no goodbye */
}

/* Handle the frames rx holds if the connection may take them; true when it took any. */
static bool srv_rx_handle(struct srv_worker *w, struct srv_conn *c)
{
	if (c->stalled != NULL || c->rx_len < RILL_WIRE_HEADER_BYTES ||
	    !srv_conn_can_read(w->server, c))
		return false;
	uint32_t before = c->rx_len;
	srv_rx_process(w, c);
	return c->rx_len != before;
}

/* One turn for one connection; true when it did something. */
static bool srv_conn_tick(struct srv_worker *w, struct srv_conn *c)
{
	struct rill_server *s = w->server;
	uint32_t tx_before = c->tx_len;
	bool work = false;
	if (c->stalled != NULL && srv_produce_resume(w, c) == 0)
		work = true;
	if (c->ctl_busy && srv_job_finish(w, c))
		work = true;
	work |= srv_rx_handle(w, c);
	/* After the peer's end of stream, once no whole frame is left to answer (the rest of
	 * a frame cut short never comes), the connection closes as it would on a close. */
	if (c->eof && !c->closing && !srv_rx_whole(s, c))
		c->closing = true;
	srv_acks_flush(w, c);
	work |= srv_rx_handle(w, c); /* in the room the ACKs just gave back */
	if (c->sub_count > 0 && !c->closing)
		work |= srv_subs_poll(w, c);
	/* Backpressure is a receive not armed again (S6): the one in flight, if any, brings
	 * a buffer at most. Only a closing connection cancels it, to close. */
	bool want = !c->closing && !c->eof && !w->stopping && srv_conn_can_read(s, c) &&
		    srv_rx_reserve(w, c);
	if (want && !c->recv_armed) {
		srv_recv_arm(w, c);
	} else if (c->closing && c->recv_armed && !c->recv_paused) {
		srv_recv_cancel(w, c);
		c->recv_paused = true;
	}
	if (c->dead && c->tx_sending == 0)
		c->tx_len = 0; /* never under a send in flight: srv_on_send drops it then */
	srv_send_start(w, c);
	if (c->closing && srv_conn_drained(c) && !c->recv_armed) {
		srv_conn_close(w, c);
		return true;
	}
	return work || c->tx_len != tx_before;
}

/* True while the shards owe acknowledgements: a stopping worker waits for them. */
static bool srv_pending(struct srv_worker *w)
{
	return rill_producer_acks_owed(w->producer) > 0;
}

static void srv_wait(struct srv_worker *w, uint64_t wait_ns)
{
	struct __kernel_timespec ts = {.tv_sec = (long long)(wait_ns / SRV_NS_PER_S),
				       .tv_nsec = (long long)(wait_ns % SRV_NS_PER_S)};
	struct io_uring_cqe *cqe = NULL;
	int rc = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
	RILL_ASSERT(rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EBUSY || rc == -EAGAIN);
}

/* Submit what the turn prepared and, in one system call, let the kernel post the
 * completions it deferred to this thread (DEFER_TASKRUN): the next turn reaps them. With
 * the TASKRUN flag the kernel says when there are some; without it, ask every turn. */
static void srv_submit(struct srv_worker *w)
{
	if (w->server->config.sqpoll) {
		/* The kernel's thread submits and completes: a system call only to wake it. */
		(void)io_uring_submit(&w->ring);
		return;
	}
	bool deferred = !w->taskrun_flag ||
			(IO_URING_READ_ONCE(*w->ring.sq.kflags) & IORING_SQ_TASKRUN) != 0;
	if (io_uring_sq_ready(&w->ring) > 0 || deferred)
		(void)io_uring_submit_and_get_events(&w->ring); /* errors: retried next turn */
}

static bool srv_turn(struct srv_worker *w)
{
	uint64_t now = rill_clock_now_ns();
	w->now = now; /* the arrival time of what this turn reaps */
	w->wall_ns = 0;
	bool work = srv_reap(w) > 0;
	if (rill_producer_poll(w->producer, 0) > 0)
		work = true;
	if (srv_jobs_collect(w))
		work = true;
	bool timers = now - w->timer_ns >= SRV_TIMER_NS;
	if (timers) {
		w->timer_ns = now;
		for (uint32_t i = 0; i < w->conn_count; i++)
			srv_conn_mark(w, w->live[i]); /* every one, now and then: the timeouts */
	}
	if (w->slots_freed || timers) { /* timers: room the other workers gave back */
		w->slots_freed = false;
		srv_waiters_wake(w);
	}
	w->subs_active = 0;
	w->stalled = 0;
	for (uint32_t k = 0; k < w->slot_words; k++) {
		uint64_t bits = w->ready[k];
		w->ready[k] = 0; /* what the ticks mark goes to the next turn */
		for (; bits != 0; bits &= bits - 1) {
			uint32_t slot = k * 64u + (uint32_t)__builtin_ctzll(bits);
			struct srv_conn *c = w->conns[slot];
			if (c == NULL)
				continue;
			if (c->closed) {
				if (c->ops == 0 && c->preqs == 0 && !c->ctl_busy)
					srv_conn_free(w, c); /* its last request answered (S4) */
				continue;
			}
			if (timers && !c->dead)
				srv_conn_timers(w, c, now);
			if (timers) /* empty now: idle since the last pass, or between frames */
				srv_rx_release(w, c);
			bool did = srv_conn_tick(w, c);
			work |= did;
			if (w->conns[slot] != c)
				continue; /* closed and freed */
			bool subs = c->sub_count > 0 && c->credit > 0;
			w->subs_active += subs;
			w->stalled += c->stalled != NULL;
			/* Again next turn while it may progress with no event to say so: a frame
			 * waiting for ring room, subscriptions to feed, a drain, or work just
			 * done (what it made possible). */
			if (did || subs || c->stalled != NULL || c->closing)
				srv_conn_mark(w, c);
		}
	}
	if (!w->accept_armed && !w->stopping && w->listen_fd >= 0 && now >= w->accept_after_ns)
		srv_accept_arm(w);
	rill_producer_wake(w->producer); /* what the ticks published (wake_batched) */
	srv_submit(w);
	return work;
}

static void srv_worker_stop(struct srv_worker *w)
{
	w->stopping = true;
	if (w->listen_fd >= 0) {
		shutdown(w->listen_fd, SHUT_RDWR); /* ends the multishot accept */
		close(w->listen_fd);
		w->listen_fd = -1;
	}
	uint32_t max = w->server->config.connections_max;
	for (uint32_t i = 0; i < max; i++) {
		if (w->conns[i] != NULL) {
			w->conns[i]->closing = true; /* drain: stop reading, answer, close */
			srv_conn_mark(w, w->conns[i]);
		}
	}
}

/* ---- Workers ------------------------------------------------------------------------ */

/* The ring, with the best flags this kernel takes. */
static int srv_ring_init(struct srv_worker *w)
{
	struct io_uring_params p;
	const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int rc = -EINVAL;
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]) && rc < 0; i++) {
		memset(&p, 0, sizeof(p));
		p.flags = w->server->config.sqpoll ? IORING_SETUP_SQPOLL : tries[i];
		p.sq_thread_idle = 100; /* ms: SQPOLL's thread sleeps after this long idle */
		rc = io_uring_queue_init_params(SRV_RING_ENTRIES, &w->ring, &p);
		if (w->server->config.sqpoll && rc < 0)
			break;
	}
	if (rc < 0) {
		snprintf(w->start_err, sizeof(w->start_err), "io_uring_queue_init: %s",
			 strerror(-rc));
		return rc;
	}
	w->taskrun_flag = (p.flags & IORING_SETUP_TASKRUN_FLAG) != 0;
	w->ring_ok = true;
	return 0;
}

/* The provided buffers the connections' receives fill (S6). */
static int srv_bufs_init(struct srv_worker *w)
{
	size_t ring_bytes = SRV_BUF_COUNT * sizeof(struct io_uring_buf);
	w->bufs =
		mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	w->buf_mem = malloc((size_t)SRV_BUF_COUNT * SRV_BUF_BYTES);
	if (w->bufs == MAP_FAILED || w->buf_mem == NULL) {
		if (w->bufs == MAP_FAILED)
			w->bufs = NULL;
		snprintf(w->start_err, sizeof(w->start_err), "no memory for receive buffers");
		return -ENOMEM;
	}
	struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)w->bufs,
				       .ring_entries = SRV_BUF_COUNT,
				       .bgid = SRV_BGID};
	int rc = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (rc < 0) {
		snprintf(w->start_err, sizeof(w->start_err),
			 "io_uring_register_buf_ring: %s (needs Linux 5.19)", strerror(-rc));
		return rc;
	}
	io_uring_buf_ring_init(w->bufs);
	for (uint32_t i = 0; i < SRV_BUF_COUNT; i++)
		io_uring_buf_ring_add(w->bufs, w->buf_mem + (size_t)i * SRV_BUF_BYTES,
				      SRV_BUF_BYTES, (unsigned short)i,
				      io_uring_buf_ring_mask(SRV_BUF_COUNT), (int)i);
	io_uring_buf_ring_advance(w->bufs, SRV_BUF_COUNT);
	return 0;
}

/* What can be made on the starting thread: memory, the producer handle, the eventfd.
 * 0, or -errno with @err saying what failed. */
static int srv_worker_prepare(struct srv_worker *w, struct rill_error_text *err)
{
	struct rill_server *s = w->server;
	w->conns = calloc(s->config.connections_max, sizeof(*w->conns));
	w->live = calloc(s->config.connections_max, sizeof(*w->live));
	w->preqs = calloc(SRV_PREQS_MAX, sizeof(*w->preqs));
	size_t words = (s->config.connections_max + 63u) / 64u;
	w->ready = calloc(words, sizeof(*w->ready));
	w->waiters = calloc(words, sizeof(*w->waiters));
	int rc = 0;
	if (w->conns == NULL || w->live == NULL || w->preqs == NULL || w->ready == NULL ||
	    w->waiters == NULL)
		rc = -ENOMEM;
	for (uint32_t i = SRV_PREQS_MAX; rc == 0 && i-- > 0;) {
		w->preqs[i].index = i;
		w->preqs[i].next = w->preq_free;
		w->preq_free = &w->preqs[i];
	}
	if (rc == 0) {
		w->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->ctl_fd < 0)
			rc = -errno;
	}
	if (rc < 0) {
		snprintf(err->message, sizeof(err->message), "worker %u: %s", w->index,
			 rill_strerror(rc));
		return rc;
	}
	/* wake_batched: a turn publishes a burst, then polls (one wake-up per shard). */
	struct rill_producer_config pc = {
		.on_ack = srv_ack_cb, .arg = w, .wake_fd = true, .wake_batched = true};
	rc = rill_producer_open(s->engine, &pc, &w->producer);
	if (rc == -ENOSPC) /* an operator must know whose handles to count */
		snprintf(err->message, sizeof(err->message),
			 "worker %u: no producer handle left: the engine has its "
			 "RILL_ENGINE_PRODUCERS_MAX (%u) open (the server takes one per shard, "
			 "the DPDK ingress one per RX queue, the host the others)",
			 w->index, RILL_ENGINE_PRODUCERS_MAX);
	else if (rc < 0)
		snprintf(err->message, sizeof(err->message), "worker %u: producer handle: %s",
			 w->index, rill_strerror(rc));
	return rc;
}

/* The first turn, on the shard's thread: the ring is made by the thread that uses it
 * (SINGLE_ISSUER, DEFER_TASKRUN). */
static void srv_worker_begin(struct srv_worker *w)
{
	struct rill_server *s = w->server;
	int rc = srv_ring_init(w);
	if (rc == 0)
		rc = srv_bufs_init(w);
	if (rc == 0) {
		w->timer_ns = rill_clock_now_ns();
		srv_accept_arm(w);
		srv_efd_arm(w, rill_producer_wake_fd(w->producer), &w->wake_buf, SRV_OP_WAKE);
		srv_efd_arm(w, w->ctl_fd, &w->ctl_buf, SRV_OP_CTL);
		io_uring_submit(&w->ring);
	}
	pthread_mutex_lock(&s->start_lock);
	w->start_rc = rc;
	w->inited = true;
	s->started++;
	pthread_cond_broadcast(&s->start_cond);
	pthread_mutex_unlock(&s->start_lock);
}

/* The shard hook's poll: one turn of the worker. */
static unsigned srv_hook_poll(void *arg)
{
	struct srv_worker *w = arg;
	struct rill_server *s = w->server;
	if (!w->inited) {
		srv_worker_begin(w);
		return 1;
	}
	if (w->start_rc < 0)
		return 0;
	if (!w->stopping && rill_atomic_load_acquire_u64(&s->stop) != 0) /* A: pairs with R
									  * in srv_shutdown */
		srv_worker_stop(w);
	/* Finished too, until its hook is removed: what still completes is reaped, so the
	 * shard's sleep in this ring keeps blocking. */
	bool work = srv_turn(w);
	if (w->stopping && !w->finished &&
	    ((w->conn_count == 0 && !srv_pending(w)) ||
	     rill_clock_now_ns() > s->drain_deadline_ns)) {
		pthread_mutex_lock(&s->start_lock);
		w->finished = true;
		pthread_cond_broadcast(&s->start_cond);
		pthread_mutex_unlock(&s->start_lock);
	}
	return work ? 1u : 0u;
}

/* True if a subscription has events for a connection that can take them now. The shards
 * wake the worker when they feed one (rill_subscribe_notify): this is the check after
 * rill_producer_sleep_begin that makes that wake-up certain. */
static bool srv_subs_ready(struct srv_worker *w)
{
	uint32_t frame_max = RILL_WIRE_HEADER_BYTES + w->server->config.frame_bytes_max;
	for (uint32_t i = 0; i < w->conn_count; i++) {
		struct srv_conn *c = w->live[i];
		if (c->closed || c->closing || c->credit == 0 || c->sub_count == 0 ||
		    srv_conn_tx_reserve(c, frame_max) == NULL)
			continue; /* a full output buffer waits for its send's completion */
		for (uint32_t k = 0; k < c->sub_count; k++) {
			struct srv_sub *sub = &c->subs[k];
			if (!sub->failed && (sub->held || rill_subscription_ready(sub->sub)))
				return true;
		}
	}
	return false;
}

/* The shard hook's sleep: wait in the worker's ring for its completions, the shard's
 * eventfd, the acknowledgements (the producer's eventfd), the control thread's answers,
 * or the timers. */
static void srv_hook_sleep(void *arg, int wake_fd, uint64_t timeout_ns)
{
	struct srv_worker *w = arg;
	if (!w->inited || w->start_rc < 0) {
		struct pollfd pfd = {.fd = wake_fd, .events = POLLIN};
		uint64_t wait_ns = timeout_ns < SRV_WAIT_SOON_NS ? timeout_ns : SRV_WAIT_SOON_NS;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait_ns};
		if (ppoll(&pfd, 1, &ts, NULL) > 0) {
			uint64_t count;
			ssize_t got = read(wake_fd, &count, sizeof(count));
			(void)got;
		}
		return;
	}
	if (!w->shard_wake_armed) {
		srv_efd_arm(w, wake_fd, &w->shard_wake_buf, SRV_OP_SHARD_WAKE);
		w->shard_wake_armed = true;
	}
	if (w->slots_freed || rill_atomic_load_acquire_u64(&w->ctl_ready) != 0 ||
	    !rill_producer_sleep_begin(w->producer)) {
		srv_submit(w); /* answers or acknowledgements are in: the next turn */
		return;
	}
	if (w->subs_active > 0 && srv_subs_ready(w)) { /* after sleep_begin: see its doc */
		rill_producer_sleep_end(w->producer);
		return;
	}
	/* Frames waiting for room in a ring (acks none: no acknowledgement will wake us)
	 * have no wake-up: look often. */
	bool soon = w->stopping || w->stalled > 0;
	uint64_t wait_ns = soon ? SRV_WAIT_SOON_NS : SRV_WAIT_IDLE_NS;
	srv_wait(w, timeout_ns < wait_ns ? timeout_ns : wait_ns);
	rill_producer_sleep_end(w->producer);
}

/* After the hook is gone and the control thread stopped: free everything. */
static void srv_worker_fini(struct srv_worker *w)
{
	(void)srv_jobs_collect(w); /* every job is back: the control thread has stopped */
	uint32_t max = w->server->config.connections_max;
	for (uint32_t i = 0; w->conns != NULL && i < max; i++) {
		struct srv_conn *c = w->conns[i];
		if (c == NULL)
			continue;
		c->ctl_busy = false; /* its answer is dropped with it */
		srv_conn_close(w, c);
		if (w->conns[i] != NULL) { /* operations or requests still out: stopping anyway */
			c->ops = 0;
			c->preqs = 0;
			srv_conn_free(w, c);
		}
	}
	if (w->ring_ok)
		io_uring_queue_exit(&w->ring); /* first: its reads of the eventfds end */
	if (w->producer != NULL)
		rill_producer_close(w->producer); /* waits for the shards' last answers (past
						   * a drain deadline: a sync still owed).
						   * Their requests' connections are gone, so
						   * they are released (srv_preq_done) */
	for (uint32_t i = 0; w->preqs != NULL && i < SRV_PREQS_MAX; i++) {
		if (w->preqs[i].results != NULL) /* never done: stalled, not all published */
			srv_preq_results_free(&w->preqs[i]);
	}
	if (w->bufs != NULL)
		munmap(w->bufs, SRV_BUF_COUNT * sizeof(struct io_uring_buf));
	if (w->ctl_fd >= 0)
		close(w->ctl_fd);
	free(w->buf_mem);
	free(w->preqs);
	free(w->conns);
	free(w->live);
	free(w->ready);
	free(w->waiters);
	if (w->listen_fd >= 0)
		close(w->listen_fd);
}

/* ---- Start and stop ----------------------------------------------------------------- */

/* Split "HOST:PORT" ("[v6]:PORT" too) and resolve it. */
static int srv_resolve(const char *listen, struct addrinfo **res, struct rill_error_text *err)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	size_t hlen = colon != NULL ? (size_t)(colon - listen) : 0;
	if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	uint64_t port = 0;
	if (colon == NULL || hlen == 0 || hlen >= sizeof(host) || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    (port = strtoull(colon + 1, NULL, 10)) > 65535) {
		snprintf(err->message, sizeof(err->message),
			 "listen address '%s': expected HOST:PORT (port 0 to 65535)", listen);
		return -EINVAL;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	int rc = getaddrinfo(host, colon + 1, &hints, res);
	if (rc != 0) {
		snprintf(err->message, sizeof(err->message), "listen address '%s': %s", listen,
			 gai_strerror(rc));
		return -EINVAL;
	}
	return 0;
}

/* One SO_REUSEPORT listener on @addr (with @port when not 0). -errno. */
static int srv_listen_one(const struct addrinfo *ai, uint16_t port, int *out)
{
	struct sockaddr_storage ss;
	memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
	if (port != 0) {
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

/*
 * Whether anyone listens on @ai's address already. The listeners below share their port
 * through SO_REUSEPORT, which would just as well let them join another server's group
 * (any of the same user: a second rill serve, or an old one still draining) and take
 * half of its connections. A socket bound without SO_REUSEPORT cannot join such a group:
 * its bind fails while the group stands. 0, -EADDRINUSE or -errno. A port of 0 needs no
 * probe: the kernel picks a free one.
 */
static int srv_listen_probe(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	int rc = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static uint16_t srv_addr_port(const struct addrinfo *ai)
{
	const struct sockaddr *sa = ai->ai_addr;
	return ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
					      : ((const struct sockaddr_in6 *)sa)->sin6_port);
}

/* Resolve @listen into *@res and, for a port of its own, see that it is free. */
static int srv_listen_resolve(const char *listen, struct addrinfo **res,
			      struct rill_error_text *err)
{
	int rc = srv_resolve(listen, res, err);
	if (rc < 0 || srv_addr_port(*res) == 0)
		return rc;
	rc = srv_listen_probe(*res);
	if (rc < 0) {
		snprintf(err->message, sizeof(err->message), "listen on %s: %s%s", listen,
			 strerror(-rc), rc == -EADDRINUSE ? " (another server listens there)" : "");
		freeaddrinfo(*res);
		*res = NULL;
	}
	return rc;
}

static int srv_listen(struct rill_server *s, struct rill_error_text *err)
{
	struct addrinfo *res = NULL;
	int rc = srv_listen_resolve(s->config.listen, &res, err);
	if (rc < 0)
		return rc;
	uint16_t port = 0;
	for (uint32_t i = 0; i < s->worker_count && rc == 0; i++) {
		rc = srv_listen_one(res, port, &s->workers[i].listen_fd);
		if (rc == 0 && i == 0) {
			struct sockaddr_storage ss;
			socklen_t len = sizeof(ss);
			getsockname(s->workers[0].listen_fd, (struct sockaddr *)&ss, &len);
			port = ntohs(ss.ss_family == AF_INET
					     ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port);
			char host[INET6_ADDRSTRLEN];
			getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), NULL, 0,
				    NI_NUMERICHOST);
			snprintf(s->address, sizeof(s->address),
				 ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
			s->port = port;
		}
	}
	freeaddrinfo(res);
	if (rc < 0)
		snprintf(err->message, sizeof(err->message), "listen on %s: %s", s->config.listen,
			 strerror(-rc));
	return rc;
}

static int srv_config_check(const struct rill_server_config *c, struct rill_error_text *err)
{
	const char *bad = NULL;
	if (c->listen == NULL)
		bad = "listen address missing";
	else if (c->frame_bytes_max < RILL_WIRE_FRAME_BYTES_MIN ||
		 c->frame_bytes_max > RILL_WIRE_FRAME_BYTES_MAX)
		bad = "frame_bytes_max must be 64 KiB to 16 MiB";
	else if (c->conn_inflight_bytes_max < c->frame_bytes_max + RILL_WIRE_HEADER_BYTES)
		bad = "conn_inflight_bytes_max must hold one frame";
	else if (c->server_inflight_bytes_max < c->conn_inflight_bytes_max)
		bad = "server_inflight_bytes_max must be at least conn_inflight_bytes_max";
	else if (c->connections_max == 0 || c->connections_max > RILL_SERVER_CONNECTIONS_MAX)
		bad = "connections_max must be 1 to 65,536";
	else if (c->handshake_timeout_ns == 0 || c->send_stall_timeout_ns == 0)
		bad = "handshake and send-stall timeouts must be above 0";
	else if (c->subscriptions_max == 0 || c->subscriptions_max > SRV_SUB_PARTS_MAX)
		bad = "subscriptions_max must be 1 to 1,024";
	if (bad == NULL)
		return 0;
	snprintf(err->message, sizeof(err->message), "server config: %s", bad);
	return -EINVAL;
}

/* @a + @b, saturated: sums of counted descriptors and a host's figures, never wrapped. */
static uint64_t srv_fds_add(uint64_t a, uint64_t b)
{
	return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

/*
 * The sum every open-file check makes (rill_server_fds_check at the start, TOPIC_CREATE
 * under a budget): besides connections_max, the @open descriptors held (counted, or
 * counted once and reckoned since), the host's @fds_later and the reserve. Whether
 * @limit holds it; the sum in @need and, in @fit, the connections_max that would fit
 * beside the rest (0: none).
 */
static bool srv_fds_fits(uint64_t limit, uint32_t connections_max, uint64_t open,
			 uint64_t fds_later, uint64_t *need, uint64_t *fit)
{
	uint64_t files = srv_fds_add(srv_fds_add(open, RILL_SERVER_FDS_RESERVED), fds_later);
	*need = srv_fds_add(files, connections_max);
	*fit = limit > files ? limit - files : 0;
	return *need <= limit;
}

/* rill_server_fds_check's sum with @open descriptors held, said in @err when too much. */
static int srv_fds_say(const struct rill_server_config *config, uint64_t open, uint64_t fds_later,
		       struct rill_error_text *err)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return 0;
	uint64_t limit = rl.rlim_cur, need = 0, room = 0;
	if (srv_fds_fits(limit, config->connections_max, open, fds_later, &need, &room))
		return 0;
	char hard[32] = "unlimited", fit[64] = "", later[64] = "";
	if (rl.rlim_max != RLIM_INFINITY)
		snprintf(hard, sizeof(hard), "%llu", (unsigned long long)rl.rlim_max);
	if (room > 0)
		snprintf(fit, sizeof(fit), ", or lower connections_max to %llu",
			 (unsigned long long)room);
	if (fds_later > 0)
		snprintf(later, sizeof(later), ", %llu more to be opened later",
			 (unsigned long long)fds_later);
	snprintf(err->message, sizeof(err->message),
		 "the open-file limit (RLIMIT_NOFILE) is %llu (hard limit %s), but "
		 "connections_max %u, the %llu descriptors open now%s and %u kept for the "
		 "engine's files need %llu: raise the limit%s",
		 (unsigned long long)limit, hard, config->connections_max, (unsigned long long)open,
		 later, RILL_SERVER_FDS_RESERVED, (unsigned long long)need, fit);
	return -EMFILE;
}

int rill_server_fds_check(const struct rill_server_config *config, uint64_t fds_later,
			  struct rill_error_text *err)
{
	struct rill_error_text scratch;
	if (err == NULL)
		err = &scratch;
	struct rill_server_config dflt;
	rill_server_config_default(&dflt);
	if (config == NULL)
		config = &dflt;
	return srv_fds_say(config, srv_fds_open(srv_fds_limit()), fds_later, err);
}

static int srv_partitions_add(void *arg, struct rill_topic *t)
{
	*(uint64_t *)arg += rill_topic_partitions(t);
	return 0;
}

/* The partitions of every topic the engine holds now. */
static uint64_t srv_partitions_held(struct rill_engine *engine)
{
	uint64_t n = 0;
	(void)rill_topic_each(engine, srv_partitions_add, &n);
	return n;
}

int rill_server_fds_budget(struct rill_server *s, uint64_t fds_later, struct rill_error_text *err)
{
	struct rill_error_text scratch;
	if (err == NULL)
		err = &scratch;
	RILL_ASSERT(s != NULL);
	/* Under the lock no TOPIC_CREATE of the server's is half made. The partitions are
	 * counted first: a host's own create in between is then counted in the files and
	 * again as made since, stricter, never short. */
	pthread_mutex_lock(&s->fds_lock);
	s->fds_partitions = srv_partitions_held(s->engine);
	s->fds_files = srv_fds_open(srv_fds_limit());
	s->fds_later = fds_later;
	s->fds_budget = true;
	uint64_t open = s->fds_files;
	pthread_mutex_unlock(&s->fds_lock);
	return srv_fds_say(&s->config, open, fds_later, err);
}

int srv_fds_topic_check(struct rill_server *s, const char *name, uint32_t partitions, char *msg,
			size_t msg_bytes)
{
	uint64_t limit = srv_fds_limit();
	if (!s->fds_budget || limit == UINT64_MAX || partitions == 0)
		return 0;
	/* The files held now, reckoned as a restart's check counts them: those counted at
	 * the budget, three for each partition made since; then this topic's. */
	uint64_t held = srv_partitions_held(s->engine);
	uint64_t since = held > s->fds_partitions ? held - s->fds_partitions : 0;
	uint64_t open = srv_fds_add(s->fds_files, since * RILL_SERVER_FDS_PER_PARTITION);
	uint64_t more = (uint64_t)partitions * RILL_SERVER_FDS_PER_PARTITION;
	uint32_t conns = s->config.connections_max;
	uint64_t need = 0, fit = 0;
	if (srv_fds_fits(limit, conns, srv_fds_add(open, more), s->fds_later, &need, &fit))
		return 0;
	/* What would fit: partitions in the room left now beside connections_max. */
	uint64_t need_now = 0, room = 0;
	(void)srv_fds_fits(limit, conns, open, s->fds_later, &need_now, &room);
	uint64_t parts_fit = room > conns ? (room - conns) / RILL_SERVER_FDS_PER_PARTITION : 0;
	char lower[64] = "";
	if (fit > 0)
		snprintf(lower, sizeof(lower), " (to %llu)", (unsigned long long)fit);
	snprintf(msg, msg_bytes,
		 "topic '%s': its %u partition%s would hold %llu descriptors for good (%u each), "
		 "and the open-file limit (RLIMIT_NOFILE) of %llu does not hold them beside "
		 "connections_max %u, the %llu descriptors held now, %llu for subscribers' readers "
		 "(shards x subscriptions_per_shard) and the %u kept for the engine's files: "
		 "%llu in all, more than a restart would take; %llu more partitions fit. Raise "
		 "the limit (LimitNOFILE= in the systemd unit, ulimit -n in a shell), or lower "
		 "connections_max%s or [engine] subscriptions_per_shard, and restart the "
		 "server. Nothing was made",
		 name, partitions, partitions == 1 ? "" : "s", (unsigned long long)more,
		 RILL_SERVER_FDS_PER_PARTITION, (unsigned long long)limit, conns,
		 (unsigned long long)open, (unsigned long long)s->fds_later,
		 RILL_SERVER_FDS_RESERVED, (unsigned long long)need, (unsigned long long)parts_fit,
		 lower);
	return -EMFILE;
}

int rill_server_config_check(const struct rill_server_config *config, struct rill_error_text *err)
{
	struct rill_error_text scratch;
	if (err == NULL)
		err = &scratch;
	int rc = srv_config_check(config, err);
	struct addrinfo *res = NULL;
	if (rc == 0)
		rc = srv_listen_resolve(config->listen, &res, err);
	if (res != NULL)
		freeaddrinfo(res);
	return rc;
}

static void srv_free(struct rill_server *s)
{
	pthread_mutex_destroy(&s->fds_lock);
	pthread_mutex_destroy(&s->start_lock);
	pthread_cond_destroy(&s->start_cond);
	pthread_mutex_destroy(&s->stat_lock);
	pthread_mutex_destroy(&s->ctl_lock);
	pthread_cond_destroy(&s->ctl_cond);
	free(s->workers);
	free(s);
}

/* Stop the workers (drain until @drain_ns from now), take them off their shards, stop the
 * control thread and free everything. 0, or -ETIMEDOUT when the drain ran out of time. */
static int srv_shutdown(struct rill_server *s, uint64_t drain_ns)
{
	uint64_t now = rill_clock_now_ns();
	s->drain_deadline_ns = drain_ns > UINT64_MAX - now ? UINT64_MAX : now + drain_ns;
	rill_atomic_store_release_u64(&s->stop, 1); /* R: pairs with A in srv_hook_poll */
	for (uint32_t i = 0; i < s->hooked; i++) {
		uint64_t one = 1;
		ssize_t put = write(s->workers[i].ctl_fd, &one, sizeof(one)); /* wake it */
		(void)put;
	}
	pthread_mutex_lock(&s->start_lock);
	for (uint32_t i = 0; i < s->hooked; i++) {
		struct srv_worker *w = &s->workers[i];
		while (!w->inited || (w->start_rc == 0 && !w->finished))
			pthread_cond_wait(&s->start_cond, &s->start_lock);
	}
	pthread_mutex_unlock(&s->start_lock);
	int rc = rill_clock_now_ns() > s->drain_deadline_ns ? -ETIMEDOUT : 0;
	for (uint32_t i = 0; i < s->hooked; i++)
		(void)rill_engine_shard_hook_remove(s->engine, i, &s->workers[i]);
	srv_ctl_stop(s); /* after the workers: they hand it jobs until they finish */
	for (uint32_t i = 0; i < s->worker_count; i++)
		srv_worker_fini(&s->workers[i]);
	srv_free(s);
	return rc;
}

int rill_server_start(struct rill_server **out, struct rill_engine *engine,
		      const struct rill_server_config *config, struct rill_error_text *err)
{
	struct rill_error_text scratch;
	if (err == NULL)
		err = &scratch;
	struct rill_server_config dflt;
	rill_server_config_default(&dflt);
	if (config == NULL)
		config = &dflt;
	int rc = srv_config_check(config, err);
	if (rc < 0)
		return rc;
	struct rill_server *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->engine = engine;
	s->config = *config;
	s->worker_count = rill_engine_shards(engine);
	s->fds_limit_start = srv_fds_limit();
	/* Aligned as its type asks: each worker's counters on cache lines of their own. */
	size_t workers_bytes = s->worker_count * sizeof(*s->workers);
	s->workers = aligned_alloc(_Alignof(struct srv_worker), workers_bytes);
	if (s->workers != NULL)
		memset(s->workers, 0, workers_bytes);
	pthread_mutex_init(&s->start_lock, NULL);
	pthread_cond_init(&s->start_cond, NULL);
	pthread_mutex_init(&s->stat_lock, NULL);
	pthread_mutex_init(&s->fds_lock, NULL);
	if (srv_ctl_init(s) != 0 || s->workers == NULL) {
		srv_free(s);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->worker_count; i++)
		s->workers[i] =
			(struct srv_worker){.server = s, .index = i, .listen_fd = -1, .ctl_fd = -1};
	rc = srv_listen(s, err);
	if (rc == 0) {
		rc = srv_ctl_start(s);
		if (rc < 0)
			snprintf(err->message, sizeof(err->message), "control thread: %s",
				 strerror(-rc));
	}
	for (; rc == 0 && s->hooked < s->worker_count; s->hooked++) {
		struct srv_worker *w = &s->workers[s->hooked];
		rc = srv_worker_prepare(w, err);
		if (rc < 0)
			break;
		struct rill_shard_hook hook = {
			.poll = srv_hook_poll, .sleep = srv_hook_sleep, .arg = w};
		rc = rill_engine_shard_hook_add(engine, w->index, &hook);
		if (rc < 0) {
			snprintf(err->message, sizeof(err->message), "worker %u: %s", w->index,
				 rc == -EBUSY ? "its shard has a sleeping hook already"
				 : rc == -ENOSPC
					 ? "its shard has RILL_SHARD_HOOKS_MAX hooks already"
					 : rill_strerror(rc));
			break;
		}
	}
	/* Each worker makes its ring on its shard's thread, in its first turn. */
	pthread_mutex_lock(&s->start_lock);
	while (s->started < s->hooked)
		pthread_cond_wait(&s->start_cond, &s->start_lock);
	pthread_mutex_unlock(&s->start_lock);
	for (uint32_t i = 0; i < s->hooked && rc == 0; i++) {
		if (s->workers[i].start_rc < 0) {
			rc = s->workers[i].start_rc;
			snprintf(err->message, sizeof(err->message), "worker %u: %s", i,
				 s->workers[i].start_err);
		}
	}
	if (rc < 0) {
		(void)srv_shutdown(s, 0);
		return rc;
	}
	*out = s;
	return 0;
}

uint16_t rill_server_port(const struct rill_server *s)
{
	return s->port;
}

const char *rill_server_address(const struct rill_server *s)
{
	return s->address;
}

bool srv_inflight_take(struct rill_server *s, uint64_t held, uint64_t bytes)
{
	/* Compare and swap, not add and undo: a refused take never shows, not even for a
	 * moment to another worker's check or to the high-water mark. */
	uint64_t now = rill_atomic_load_relaxed_u64(&s->inflight_bytes), total;
	do {
		total = now + bytes;
		if (held > 0 && total > s->config.server_inflight_bytes_max)
			return false;
	} while (!rill_atomic_cas_relaxed_u64(&s->inflight_bytes, &now, total));
	rill_atomic_max_relaxed_u64(&s->inflight_bytes_peak, total);
	return true;
}

void srv_inflight_give(struct rill_server *s, uint64_t bytes)
{
	rill_atomic_fetch_sub_relaxed_u64(&s->inflight_bytes, bytes);
}

void rill_server_stats_get(struct rill_server *s, struct rill_server_stats *out)
{
	/* Each counter read alone and summed over the workers: a statistic, relaxed is
	 * enough. */
	memset(out, 0, sizeof(*out));
	uint64_t *dst = (uint64_t *)out;
	for (uint32_t w = 0; w < s->worker_count; w++) {
		uint64_t *src = (uint64_t *)&s->workers[w].stats;
		for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
			dst[i] += rill_atomic_load_relaxed_u64(&src[i]);
	}
	out->connections = rill_atomic_load_relaxed_u64(&s->connections);
	out->inflight_bytes = rill_atomic_load_relaxed_u64(&s->inflight_bytes);
	out->inflight_bytes_peak = rill_atomic_load_relaxed_u64(&s->inflight_bytes_peak);
	if (out->inflight_bytes_peak < out->inflight_bytes) /* read between a take's steps */
		out->inflight_bytes_peak = out->inflight_bytes;
	out->input_bytes = rill_atomic_load_relaxed_u64(&s->input_bytes);
	out->input_bytes_peak = rill_atomic_load_relaxed_u64(&s->input_bytes_peak);
	if (out->input_bytes_peak < out->input_bytes) /* read between an add and its max */
		out->input_bytes_peak = out->input_bytes;
}

int rill_server_stat_source(struct rill_server *s, const char *name, rill_server_stat_fn fn,
			    void *arg)
{
	size_t len = name != NULL ? strlen(name) : 0;
	if (len == 0 || len >= sizeof(s->stat_name) ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz_") != len)
		return -EINVAL;
	if (strcmp(name, "shards") == 0 || strcmp(name, "server") == 0 ||
	    strcmp(name, "engine_backpressure") == 0)
		return -EINVAL; /* STAT's own keys */
	int rc = 0;
	pthread_mutex_lock(&s->stat_lock); /* waits for a call in progress */
	if (fn != NULL && s->stat_fn != NULL) {
		rc = -EBUSY;
	} else if (fn == NULL && (s->stat_fn == NULL || strcmp(name, s->stat_name) != 0)) {
		rc = -ENOENT;
	} else {
		memcpy(s->stat_name, name, len + 1);
		s->stat_fn = fn;
		s->stat_arg = arg;
	}
	pthread_mutex_unlock(&s->stat_lock);
	return rc;
}

int rill_server_stop(struct rill_server *s, uint64_t drain_ns)
{
	return srv_shutdown(s, drain_ns);
}
