/*
 * The server's internals, shared by server.c (workers, io_uring, connections' bytes),
 * server_conn.c (frames: produce, subscribe, fetch), server_ctl.c (the control thread:
 * query, admin, opening and closing subscriptions) and server_admin.c (ADMIN's JSON). A
 * worker is a hook in its shard's loop (rill_engine_shard_hook_add) and runs on the
 * shard's thread. A connection belongs to one worker and is touched by that worker alone,
 * but for its job (struct srv_job), which the control thread holds while it runs; the
 * only other state shared between workers is the server's atomic counters and budgets.
 *
 * Invariants, asserted where they matter:
 *  S1. conn->tx_len <= conn->tx_cap; a send in flight covers tx[0, tx_sending).
 *  S2. A frame is read from the connection only while the output buffer has room for the
 *      largest answer (SRV_TX_RESERVE) and the connection is not stalled.
 *  S3. A produce request holds its frame's bytes in the connection's and the server's
 *      in-flight budgets from its header until its ACK is queued for sending.
 *  S4. A connection is freed only when no io_uring operation refers to it (ops == 0),
 *      no produce request points to it and its job is not out (ctl_busy false).
 *  S5. While its job is out, a connection reads no further frame: the answer to a QUERY,
 *      ADMIN or SUBSCRIBE comes before the answer to any frame after it (a PRODUCE's ACK
 *      may still come after frames sent later, when its events wait for a shard), and at
 *      most one job per connection is ever queued.
 *  S6. A connection has at most one receive in flight, of one provided buffer, and it is
 *      armed only while the connection may read and its input buffer holds no whole frame
 *      (a single-shot recv: a multishot one, cancelled, still brought up to every buffer
 *      of the worker's ring, and a connection that stalled held megabytes). So conn->rx
 *      holds at most the frame at its head, whose size the budgets took before its body
 *      was read (S3), and one receive buffer more: rx_cap <= srv_rx_bytes_max; and it is
 *      freed once empty (srv_rx_release), so an idle connection holds none.
 *  S7. A PRODUCE frame's records are checked whole (CRCs, lengths, count) once, when it
 *      arrives. A frame that stalls stays where it is, at the head of rx, and its request
 *      keeps the byte offset of its first unpublished record (next_at): a retry resumes
 *      there, checking nothing again, so it costs only the events it publishes (a frame
 *      decoded whole on every retry, every turn while its ring was full, cost a stalled
 *      worker 70% of its time in CRCs).
 */
#ifndef RILL_IO_SERVER_INT_H
#define RILL_IO_SERVER_INT_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rill/server.h"
#include "base/assert.h"
#include "io/wire.h"

#define SRV_NS_PER_S       1000000000ull
#define SRV_BUF_COUNT      128u        /* provided receive buffers per worker */
#define SRV_BUF_BYTES      (64u << 10) /* each */
#define SRV_BGID           1u          /* their buffer group */
#define SRV_RING_ENTRIES   1024u
#define SRV_PREQS_MAX      4096u /* produce requests in flight per worker */
#define SRV_CONN_PREQS_MAX 256u  /* ... per connection: its pipeline depth */
#define SRV_SUB_PARTS_MAX  RILL_SERVER_SUBSCRIPTIONS_MAX /* partitions one SUBSCRIBE may cover */
#define SRV_WAIT_SOON_NS   1000000u   /* frames wait for ring room, or stopping: look this often */
#define SRV_WAIT_IDLE_NS   50000000u  /* nothing pending: wake this often for timers */
#define SRV_TIMER_NS       100000000u /* timeouts are checked this often */
#define SRV_CREDIT_MAX     (1u << 20) /* events of credit a subscription may hold */
/* TCP keepalive of every connection (srv_keepalive_set): a vanished peer goes in ~90 s. */
#define SRV_KEEPALIVE_IDLE_S     60
#define SRV_KEEPALIVE_INTERVAL_S 10
#define SRV_KEEPALIVE_COUNT      3

_Static_assert((SRV_BUF_COUNT & (SRV_BUF_COUNT - 1)) == 0, "a buffer ring is a power of two");
_Static_assert(SRV_BUF_BYTES >= RILL_WIRE_HEADER_BYTES, "a header fits in a buffer");
_Static_assert(SRV_CONN_PREQS_MAX <= SRV_PREQS_MAX, "a connection's pipeline fits a worker's");
_Static_assert((uint64_t)RILL_WIRE_FRAME_BYTES_MAX + RILL_WIRE_HEADER_BYTES + SRV_BUF_BYTES <=
		       UINT32_MAX,
	       "an input buffer's size (srv_rx_bytes_max) fits its u32 fields");

/* io_uring user_data: the operation in the top byte, the connection's slot and generation
 * below, so that a completion for a closed connection is recognised and dropped. */
enum srv_op {
	SRV_OP_ACCEPT = 1,
	SRV_OP_RECV = 2,
	SRV_OP_SEND = 3,
	SRV_OP_CANCEL = 4,
	SRV_OP_WAKE = 5,       /* the producer's eventfd: acknowledgements were posted */
	SRV_OP_SHARD_WAKE = 6, /* the shard's eventfd, read while the shard sleeps in here */
	SRV_OP_CTL = 7,        /* the worker's eventfd: the control thread answered */
};

struct srv_worker;

/* One event's outcome, kept until its request's ACK is written. */
struct srv_ack {
	int32_t error;
	uint32_t partition;
	uint64_t offset;
	uint32_t event_count;
	uint16_t flags;
	char *reason; /* malloc'ed, refusals only */
};

/* A PRODUCE request between its frame and its ACK frame. */
struct srv_preq {
	struct srv_preq *next; /* the connection's list of done requests, or the free list */
	uint32_t index;        /* in the worker's table: the cookie's high half */
	uint32_t conn_slot;    /* UINT32_MAX once the connection is gone */
	uint32_t conn_gen;
	uint64_t request_id;
	uint32_t count;       /* events */
	uint32_t published;   /* events handed to the shards so far */
	uint32_t next_at;     /* the frame's bytes (header included) before event published:
			       * where a retry resumes (S7) */
	uint32_t left;        /* acknowledgements still to come */
	uint32_t frame_bytes; /* its share of the in-flight budgets */
	uint8_t acks;         /* enum rill_acks */
	struct rill_topic *topic;
	struct srv_ack *results; /* [count]: &one for a single event, else malloc'ed */
	struct srv_ack one;      /* a one-event request's result: no allocation */
};

/* One partition a connection reads. */
struct srv_sub {
	struct rill_subscription *sub;
	uint64_t request_id; /* the SUBSCRIBE's */
	uint32_t partition;
	bool failed;
	bool held;              /* rec and offset were taken but did not fit the last frame */
	struct rill_record rec; /* valid until the next rill_subscription_next */
	uint64_t offset;
};

/*
 * Work the worker may not do on its shard's thread, because it waits for shards (a shard
 * waiting for itself never returns): QUERY, ADMIN and SUBSCRIBE frames, and closing
 * subscriptions. Each connection has one, embedded (no allocation can fail on the close
 * path); the control thread runs it and hands it back through the worker's done list.
 */
enum srv_job_kind {
	SRV_JOB_FRAME = 1, /* answer the frame in h and body */
	SRV_JOB_CLOSE = 2, /* close subs[0, sub_count) */
};

struct srv_job {
	struct srv_job *next; /* the control queue, then the worker's done list */
	enum srv_job_kind kind;
	struct srv_worker *worker;
	struct srv_conn *conn;
	struct rill_wire_header h;
	uint8_t *body;      /* a copy of the frame's body (malloc'ed) */
	uint32_t conn_subs; /* SUBSCRIBE: the connection's subscriptions before it */
	/* What comes back. */
	uint8_t *answer; /* a whole frame, malloc'ed; NULL: nothing to send */
	uint32_t answer_bytes;
	struct srv_sub *subs; /* SUBSCRIBE: those opened; CLOSE: those to close */
	uint32_t sub_count;
	bool subs_owned;      /* subs is the job's own array (freed when it comes back) */
	uint64_t credit;      /* SUBSCRIBE: the credit it brings */
	uint64_t deadline_ns; /* QUERY with a token: when its wait runs out (monotonic) */
	bool done;            /* back from the control thread */
};

struct srv_conn {
	int fd;
	uint32_t slot, gen;
	uint32_t live_index; /* in the worker's live list */
	uint32_t ops;        /* io_uring operations in flight (S4) */
	uint32_t preqs;      /* produce requests not yet answered (S4) */
	bool hello;          /* handshake done */
	bool recv_armed, recv_paused, closing, closed;
	bool dead;  /* sending failed or was given up: output is dropped */
	bool eof;   /* the peer shut its sending side: what it sent is handled, then closing */
	bool fatal; /* a fatal ERROR is queued: it is the last frame the peer gets */
	uint64_t opened_ns, active_ns, send_progress_ns; /* monotonic */
	char peer[64];

	/* Input: a partial frame, or a frame kept while the connection is stalled, and what
	 * came after it in the same receive buffer (S6). NULL while empty, now and then.
	 *
	 *   rx: [ handled | rx_len bytes still to handle | room ]
	 *       0         rx_at                                  rx_cap
	 *
	 * Handled frames are dropped by moving rx_at (srv_rx_consume), not the bytes after
	 * them: those move down only when the end needs room (srv_rx_room). */
	uint8_t *rx;
	uint32_t rx_at, rx_len, rx_cap; /* bytes */
	uint32_t rx_reserved;     /* in-flight budget reserved for the frame being read (S3) */
	struct srv_preq *stalled; /* a PRODUCE waiting for ring room */
	bool waiting;             /* a frame waits for in-flight budget (S3) */

	/* Output (S1). */
	uint8_t *tx;
	uint32_t tx_len, tx_cap, tx_sending;

	uint64_t inflight_bytes;                /* S3 */
	struct srv_preq *done_head, *done_tail; /* answered, ACK not yet written */
	/* The topic its last PRODUCE named, as sent (topics are never removed, so the pointer
	 * stays valid): a pipeline to one topic looks it up once. */
	struct rill_topic *topic_last;
	uint16_t topic_last_bytes;
	char topic_last_name[RILL_WIRE_TOPIC_BYTES_MAX];

	struct srv_sub *subs; /* [subscriptions_max] once it first subscribes */
	uint32_t sub_count;
	uint32_t sub_next; /* where the next feed starts: every partition gets its turn */
	uint64_t credit;   /* events the peer will take */

	struct srv_job job; /* S4, S5 */
	bool ctl_busy;      /* the job is out, or its answer waits for room in tx */
};

struct srv_worker {
	struct rill_server *server;
	uint32_t index;
	struct io_uring ring;
	bool ring_ok;
	bool taskrun_flag; /* the kernel flags deferred completions (IORING_SQ_TASKRUN) */
	bool inited;       /* its first turn on the shard's thread made the ring */
	bool finished;     /* stopped: drained (or past the deadline); under start_lock */
	int listen_fd;
	bool accept_armed;
	struct rill_producer *producer;
	uint64_t wake_buf; /* the eventfd's counter, read by SRV_OP_WAKE */
	uint64_t shard_wake_buf;
	bool shard_wake_armed;
	int ctl_fd;               /* eventfd: the control thread answered */
	uint64_t ctl_buf;         /* ... read by SRV_OP_CTL */
	struct srv_job *ctl_done; /* answered jobs, under the server's ctl_lock */
	uint64_t ctl_ready;       /* atomic: ctl_done is not empty (a hint) */
	struct io_uring_buf_ring *bufs;
	uint8_t *buf_mem;
	struct srv_conn **conns; /* [connections_max], by slot */
	struct srv_conn **live;  /* [conn_count]: the open ones, packed */
	uint32_t conn_count;
	/* Bits by slot: the connections the next turn looks at (srv_conn_mark), and those
	 * waiting for budget or request slots, looked at when some come back. A turn costs
	 * what its busy connections need, however many sit idle. */
	uint64_t *ready, *waiters;
	uint32_t slot_words; /* words of each bitmap in use: up to the highest slot taken */
	uint64_t now;        /* monotonic, read once per loop turn */
	uint64_t wall_ns;    /* the wall clock for this turn's events, 0 until one needs it */
	uint32_t gen_next;
	struct srv_preq *preqs; /* [SRV_PREQS_MAX] */
	struct srv_preq *preq_free;
	uint64_t timer_ns;
	uint32_t subs_active;     /* connections with subscriptions and credit, last turn */
	uint32_t stalled;         /* connections with a frame waiting for ring room, last turn */
	bool slots_freed;         /* a produce request was released: wake the waiting */
	uint64_t accept_after_ns; /* an accept error: re-arm no sooner */
	/* Its counters, written by it alone (srv_stat_add), summed by rill_server_stats_get. */
	_Alignas(64) struct rill_server_stats stats;
	uint64_t records_checked;    /* records of PRODUCE frames checked whole: each once (S7) */
	_Alignas(64) char stats_end; /* the next worker's fields start on a line of their own */
	bool stopping;
	int start_rc;
	char start_err[256];
};

struct rill_server {
	struct rill_engine *engine;
	struct rill_server_config config;
	char address[80];
	uint16_t port;
	uint32_t worker_count;
	struct srv_worker *workers;
	pthread_mutex_t stat_lock; /* the stat source: held while it runs */
	char stat_name[32];
	rill_server_stat_fn stat_fn;
	void *stat_arg;
	pthread_mutex_t start_lock; /* workers' inited, start_rc and finished */
	pthread_cond_t start_cond;
	uint32_t started;
	uint32_t hooked;              /* workers whose hooks are in their shards */
	uint64_t stop;                /* atomic: 1 once stopping */
	uint64_t drain_deadline_ns;   /* set before stop */
	uint64_t inflight_bytes;      /* atomic: S3 over every connection */
	uint64_t inflight_bytes_peak; /* atomic: the most inflight_bytes has held */
	uint64_t input_bytes;         /* atomic: every connection's input buffer (rx_cap, S6) */
	uint64_t input_bytes_peak;    /* atomic: the most input_bytes has held */
	uint64_t connections;         /* atomic */
	uint64_t fds_refused;         /* atomic: connections refused a reserved descriptor */
	uint64_t conns_refused;       /* atomic: connections refused past connections_max */
	uint64_t fds_limit_start;     /* the soft RLIMIT_NOFILE at the start (srv_fd_room) */
	/* The open-file budget a TOPIC_CREATE keeps to (rill_server_fds_budget): set by a
	 * host thread, read by the control thread, under fds_lock. */
	pthread_mutex_t fds_lock; /* also held across a TOPIC_CREATE, checked and made */
	bool fds_budget;          /* set: TOPIC_CREATE is checked against it */
	uint64_t fds_files;       /* descriptors open when the budget was set */
	uint64_t fds_partitions;  /* partitions the engine held then, counted in fds_files */
	uint64_t fds_later;       /* the host's fds_later: subscribers' readers */

	/* The control thread and its queue (server_ctl.c). */
	pthread_t ctl_thread;
	bool ctl_started;
	pthread_mutex_t ctl_lock;
	pthread_cond_t ctl_cond;
	struct srv_job *ctl_head, *ctl_tail;
	uint64_t ctl_stop;      /* atomic: 1 once stopping */
	bool ctl_gone;          /* stopped: subscriptions close on the stopping thread */
	uint64_t group_commits; /* GROUP_COMMIT requests (STAT): the control thread's alone */
};

/* server.c */
/* Whether @partitions more, for topic @name, fit the open-file budget: 0, or -EMFILE with
 * what to do in @msg. 0 without a budget. The caller holds s->fds_lock. */
int srv_fds_topic_check(struct rill_server *s, const char *name, uint32_t partitions, char *msg,
			size_t msg_bytes);
void srv_conn_mark(struct srv_worker *w, const struct srv_conn *c); /* look at it next turn */
void srv_conn_wait(struct srv_worker *w, struct srv_conn *c);       /* ... once room comes back */
void srv_conn_send(struct srv_worker *w, struct srv_conn *c, const void *frame, uint32_t bytes);
void srv_conn_fatal(struct srv_worker *w, struct srv_conn *c, uint64_t request_id, int code,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void srv_conn_error(struct srv_worker *w, struct srv_conn *c, uint64_t request_id, int code,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
uint8_t *srv_conn_tx_reserve(struct srv_conn *c, uint32_t bytes);
void srv_stat_add(uint64_t *counter, uint64_t n); /* a worker's own counter */
/* Take @bytes of the server's in-flight budget (S3) for a connection holding @held bytes:
 * false, nothing taken, past server_inflight_bytes_max, unless @held is 0 (a connection
 * holding nothing may always take one frame). srv_inflight_give returns them. */
bool srv_inflight_take(struct rill_server *s, uint64_t held, uint64_t bytes);
void srv_inflight_give(struct rill_server *s, uint64_t bytes);

/* server_conn.c */
void srv_name(char *out, const char *name, uint16_t bytes); /* NUL-terminated copy */
/* Handle the frame; 0, -EAGAIN (keep it: retry later), or -EPROTO (the connection was
 * failed). */
int srv_frame(struct srv_worker *w, struct srv_conn *c, const struct rill_wire_header *h,
	      const uint8_t *body);
int srv_produce_resume(struct srv_worker *w, struct srv_conn *c);
/* Give up the stalled PRODUCE: its unpublished events get @error. */
void srv_produce_abandon(struct srv_worker *w, struct srv_conn *c, int error);
void srv_ack_cb(void *arg, const struct rill_ack *ack);
void srv_acks_flush(struct srv_worker *w, struct srv_conn *c);
bool srv_subs_poll(struct srv_worker *w, struct srv_conn *c);
void srv_subs_release(struct srv_worker *w, struct srv_conn *c);
void srv_preq_release(struct srv_worker *w, struct srv_preq *r);

/* Free @r's results: the refusals' reasons, and the array unless it is the inline one. */
static inline void srv_preq_results_free(struct srv_preq *r)
{
	for (uint32_t i = 0; i < r->count; i++)
		free(r->results[i].reason);
	if (r->results != &r->one)
		free(r->results);
}
uint32_t srv_tx_reserve_bytes(const struct rill_server *s);

/* What rx holds still to handle: rx_len bytes from here. */
static inline uint8_t *srv_rx_data(const struct srv_conn *c)
{
	return c->rx + c->rx_at;
}

/* Drop @bytes handled from the head of rx: no copy (see struct srv_conn). */
static inline void srv_rx_consume(struct srv_conn *c, uint32_t bytes)
{
	RILL_DASSERT(bytes <= c->rx_len);
	c->rx_len -= bytes;
	c->rx_at = c->rx_len == 0 ? 0 : c->rx_at + bytes; /* empty: start over at 0 */
}

/* The most a connection's input buffer holds (S6): the largest frame, and a receive buffer
 * more. */
static inline uint32_t srv_rx_bytes_max(const struct rill_server *s)
{
	return s->config.frame_bytes_max + RILL_WIRE_HEADER_BYTES + SRV_BUF_BYTES;
}

/* server_ctl.c */
int srv_ctl_init(struct rill_server *s); /* its lock and its (monotonic) condition */
int srv_ctl_start(struct rill_server *s);
void srv_ctl_stop(struct rill_server *s); /* closes run; queued frames go unanswered */
/* Hand @c's job to the control thread (S5); kind, h, body and the rest are set. */
void srv_job_post(struct srv_worker *w, struct srv_conn *c);
/* Post a FRAME job for the frame; false (an ERROR was sent) when out of memory. */
bool srv_job_frame(struct srv_worker *w, struct srv_conn *c, const struct rill_wire_header *h,
		   const uint8_t *body);
/* Take back what the control thread answered (worker); true if something came. */
bool srv_jobs_collect(struct srv_worker *w);
/* Write a collected job's answer when tx has room; true when the job is over. */
bool srv_job_finish(struct srv_worker *w, struct srv_conn *c);
/* Close subscriptions now, on a thread that may block (the server stopping). */
void srv_subs_close_now(struct srv_sub *subs, uint32_t n);

/* server_admin.c: the answer's JSON (malloc'ed) or an error with @msg. */
int srv_admin(struct rill_server *s, uint16_t op, const char *json, uint32_t json_bytes,
	      char **answer, char *msg, size_t msg_bytes);

#endif /* RILL_IO_SERVER_INT_H */
