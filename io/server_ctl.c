/*
 * The server's control thread: the work a worker may not do on its shard's thread because
 * it waits for shards (a shard waiting for itself never returns), and that would stall
 * every connection of the worker if it did. QUERY (a shard answers, a read-your-writes
 * token may wait), ADMIN (topics, schemas and projections are made on every shard),
 * SUBSCRIBE (the shard attaches the feed) and closing subscriptions.
 *
 * A worker hands a connection's job (struct srv_job, embedded in the connection) over
 * with srv_job_post and reads no further frame from that connection until the answer is
 * written (S5). The thread runs the jobs in order, one at a time, builds each answer as a
 * whole frame, puts the job on its worker's done list and writes the worker's eventfd;
 * the worker takes it back in its loop (srv_jobs_collect) and writes the answer when its
 * output has room (srv_job_finish). The queue is bounded by the connections: one job
 * each.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/atomic.h"
#include "base/clock.h"
#include "io/server_int.h"

#define CTL_RETRY_NS 50000 /* a token query waiting: tried again this often */

/* Stopping: queued frames are dropped (their answers would be), closes still run. */
static bool ctl_stopping(const struct rill_server *s)
{
	return rill_atomic_load_acquire_u64(&s->ctl_stop) != 0; /* pairs with C */
}

/* The job's answer: @bytes of frame, copied; false when out of memory. */
static bool job_answer_alloc(struct srv_job *j, uint32_t bytes)
{
	free(j->answer);
	j->answer = malloc(bytes);
	j->answer_bytes = j->answer != NULL ? bytes : 0;
	return j->answer != NULL;
}

static void job_error(struct srv_job *j, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The answer is a (non-fatal) ERROR. */
static void job_error(struct srv_job *j, int code, const char *fmt, ...)
{
	char msg[RILL_WIRE_MESSAGE_BYTES_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (code >= 0)
		code = -EPROTO; /* an ERROR's code is negative (io/wire.h) */
	uint32_t need = RILL_WIRE_HEADER_BYTES + RILL_WIRE_ERROR_BYTES_MIN + (uint32_t)strlen(msg);
	if (!job_answer_alloc(j, need))
		return; /* nothing to say it with: the peer's request gets no answer */
	int n = rill_wire_error_encode(j->answer, need, j->h.request_id, code, 0, msg);
	RILL_ASSERT(n > 0);
	j->answer_bytes = (uint32_t)n;
}

/* Answer a QUERY; false when its token is not applied yet and its wait has time left:
 * tried again later (ctl_main), the thread meanwhile free for other jobs. */
static bool job_query(struct rill_server *s, struct srv_job *j)
{
	struct rill_wire_query q;
	int rc = rill_wire_query_decode(j->body, j->h.body_bytes, &q);
	RILL_ASSERT(rc == 0); /* the worker decoded it before posting */
	char name[RILL_WIRE_NAME_BYTES_MAX + 1];
	srv_name(name, q.name, q.name_bytes);
	struct rill_projection_value v;
	if (q.flags & (RILL_WIRE_QUERY_F_AS_OF_OFFSET | RILL_WIRE_QUERY_F_AS_OF_TIMESTAMP)) {
		bool by_offset = (q.flags & RILL_WIRE_QUERY_F_AS_OF_OFFSET) != 0;
		/* UINT64_MAX is the C API's "by time": as an offset it is past the end, as
		 * every offset there is (the value now). */
		uint64_t offset = !by_offset              ? UINT64_MAX
				  : q.as_of == UINT64_MAX ? UINT64_MAX - 1
							  : q.as_of;
		rc = rill_query_as_of(s->engine, name, q.key, q.key_bytes, offset,
				      by_offset ? 0 : q.as_of, &v);
	} else {
		struct rill_token token = {.partition = q.token_partition,
					   .offset = q.token_offset};
		bool by_token = (q.flags & RILL_WIRE_QUERY_F_TOKEN) != 0;
		uint64_t now = rill_clock_now_ns();
		if (by_token && j->deadline_ns == 0) {
			/* The client's wait, never past the server's. */
			uint64_t wait = s->config.query_wait_ns;
			if (q.timeout_ms > 0 && q.timeout_ms * 1000000ull < wait)
				wait = q.timeout_ms * 1000000ull;
			j->deadline_ns = wait > UINT64_MAX - now ? UINT64_MAX : now + wait;
		}
		rc = rill_query(s->engine, name, q.key, q.key_bytes, by_token ? &token : NULL, 0,
				&v);
		if (rc == RILL_E_QUERY_STALE && now < j->deadline_ns && !ctl_stopping(s))
			return false;
	}
	if (rc < 0) {
		job_error(j, rc, "projection '%s': %s", name,
			  rc == -ENOENT   ? "no such projection, or no value for the key"
			  : rc == -ENOSPC ? "no value for the key, and the projection is full "
					    "(projection_keys_max or its key store): it may be one "
					    "of the keys refused"
			  : rc == -ERANGE
				  ? "as of a point retention no longer reaches: events it "
				    "needs were deleted and no snapshot kept holds the state "
				    "there (as of a time: a deleted event may be stamped "
				    "later)"
				  : rill_strerror(rc));
		return true;
	}
	if (!job_answer_alloc(j, RILL_WIRE_HEADER_BYTES + RILL_WIRE_RESULT_BYTES))
		return true;
	int bytes = rill_wire_result_encode(j->answer, j->answer_bytes, j->h.request_id, &v);
	RILL_ASSERT(bytes > 0);
	j->answer_bytes = (uint32_t)bytes;
	return true;
}

static void job_admin(struct rill_server *s, struct srv_job *j)
{
	struct rill_wire_admin a;
	int rc = rill_wire_admin_decode(j->body, j->h.body_bytes, &a);
	RILL_ASSERT(rc == 0); /* the worker decoded it before posting */
	char *answer = NULL;
	char msg[RILL_WIRE_MESSAGE_BYTES_MAX];
	rc = srv_admin(s, a.op, a.json, a.json_bytes, &answer, msg, sizeof(msg));
	uint32_t len = answer != NULL ? (uint32_t)strlen(answer) : 0;
	if (rc == 0 && len > s->config.frame_bytes_max - RILL_WIRE_ADMIN_OK_BYTES_MIN) {
		rc = -EMSGSIZE;
		snprintf(msg, sizeof(msg), "the answer is larger than a frame");
	}
	if (rc < 0) {
		job_error(j, rc, "%s", msg);
	} else if (job_answer_alloc(j,
				    RILL_WIRE_HEADER_BYTES + RILL_WIRE_ADMIN_OK_BYTES_MIN + len)) {
		int bytes = rill_wire_admin_ok_encode(j->answer, j->answer_bytes, j->h.request_id,
						      answer, len);
		RILL_ASSERT(bytes > 0);
		j->answer_bytes = (uint32_t)bytes;
	}
	free(answer);
}

/* Where partition @p's feed starts; -ERANGE for an offset past a single partition's end. */
static int job_sub_start(struct rill_server *s, struct rill_topic *t, uint32_t p,
			 const struct rill_wire_subscribe *ws, struct rill_wire_subscribed_entry *e)
{
	struct rill_partition_info info;
	uint64_t at = 0;
	bool by_time = ws->from == RILL_WIRE_FROM_TIMESTAMP;
	int rc = rill_partition_info_get(s->engine, t, p, by_time ? ws->from_value : UINT64_MAX,
					 &info, &at);
	if (rc < 0)
		return rc;
	uint64_t start = info.first_offset;
	if (ws->from == RILL_WIRE_FROM_LATEST)
		start = info.next_offset;
	else if (by_time)
		start = at;
	else if (ws->from == RILL_WIRE_FROM_OFFSET) {
		if (ws->from_value > info.next_offset && ws->partition != RILL_WIRE_PARTITION_ALL) {
			e->end_offset = info.next_offset; /* for the error's text */
			return -ERANGE;
		}
		start = ws->from_value < info.next_offset ? ws->from_value : info.next_offset;
	}
	if (start < info.first_offset)
		start = info.first_offset; /* retention took what came before */
	*e = (struct rill_wire_subscribed_entry){
		.partition = p, .first_offset = start, .end_offset = info.next_offset};
	return 0;
}

/* Open the partitions SUBSCRIBE asks for; answers SUBSCRIBED, or an ERROR with nothing
 * opened. */
static void job_subscribe(struct rill_server *s, struct srv_job *j)
{
	struct rill_wire_subscribe ws;
	int rc = rill_wire_subscribe_decode(j->body, j->h.body_bytes, &ws);
	RILL_ASSERT(rc == 0); /* the worker decoded it before posting */
	char topic[RILL_WIRE_TOPIC_BYTES_MAX + 1];
	srv_name(topic, ws.topic, ws.topic_bytes);
	struct rill_topic *t = rill_topic_find(s->engine, topic);
	if (t == NULL) {
		job_error(j, -ENOENT, "no topic '%s'", topic);
		return;
	}
	uint32_t parts = rill_topic_partitions(t);
	if (ws.partition != RILL_WIRE_PARTITION_ALL && ws.partition >= parts) {
		job_error(j, -EINVAL, "topic '%s' has no partition %u", topic, ws.partition);
		return;
	}
	uint32_t first = ws.partition == RILL_WIRE_PARTITION_ALL ? 0 : ws.partition;
	uint32_t n = ws.partition == RILL_WIRE_PARTITION_ALL ? parts : 1;
	if (j->conn_subs + n > s->config.subscriptions_max) { /* named: which key to raise */
		if (ws.partition == RILL_WIRE_PARTITION_ALL)
			job_error(j, -ENOSPC,
				  "topic '%s' has %u partitions and %u subscribed already on this "
				  "connection: more than subscriptions_max = %u, the most one "
				  "connection may subscribe ([server], at most %u); raise it, or "
				  "subscribe to fewer partitions at a time",
				  topic, parts, j->conn_subs, s->config.subscriptions_max,
				  RILL_SERVER_SUBSCRIPTIONS_MAX);
		else
			job_error(j, -ENOSPC,
				  "topic '%s' partition %u: %u subscribed already on this "
				  "connection: subscriptions_max = %u, the most one connection may "
				  "subscribe ([server], at most %u)",
				  topic, ws.partition, j->conn_subs, s->config.subscriptions_max,
				  RILL_SERVER_SUBSCRIPTIONS_MAX);
		return;
	}
	struct rill_wire_subscribed_entry *entries = calloc(n, sizeof(*entries));
	j->subs = calloc(n, sizeof(*j->subs));
	j->subs_owned = true;
	rc = entries == NULL || j->subs == NULL ? -ENOMEM : 0;
	uint32_t opened = 0;
	for (; rc == 0 && opened < n; opened++) {
		uint32_t p = first + opened;
		struct srv_sub *sub = &j->subs[opened];
		*sub = (struct srv_sub){.request_id = j->h.request_id, .partition = p};
		rc = job_sub_start(s, t, p, &ws, &entries[opened]);
		if (rc == 0)
			rc = rill_subscribe_notify(s->engine, t, p, entries[opened].first_offset,
						   j->worker->producer, &sub->sub);
		if (rc < 0)
			break;
		/* Retention may have moved on between the two shard calls: say where the
		 * feed really starts, or a consumer misses the events skipped unawares. */
		entries[opened].first_offset = rill_subscription_start(sub->sub);
	}
	uint32_t size = RILL_WIRE_HEADER_BYTES + RILL_WIRE_SUBSCRIBED_BYTES +
			n * RILL_WIRE_SUBSCRIBED_ENTRY;
	if (rc == 0 && !job_answer_alloc(j, size)) {
		rc = -ENOMEM;
		opened = n; /* every one opened: the answer found no memory */
	}
	if (rc < 0) {
		srv_subs_close_now(j->subs, opened);
		if (opened < n && rc == -ENOSPC)
			job_error(j, rc,
				  "subscribe to partition %u: its shard has all its subscriptions "
				  "open ([engine] subscriptions_per_shard)",
				  first + opened);
		else if (opened < n && rc == -ERANGE)
			job_error(j, rc,
				  "subscribe to partition %u: offset %" PRIu64 " is past its end "
				  "(its next offset is %" PRIu64 ")",
				  first + opened, ws.from_value, entries[opened].end_offset);
		else if (opened < n)
			job_error(j, rc, "subscribe to partition %u: %s", first + opened,
				  rill_strerror(rc));
		else
			job_error(j, rc, "subscribe: %s", rill_strerror(rc));
		free(entries);
		return;
	}
	int bytes = rill_wire_subscribed_encode(j->answer, size, j->h.request_id, entries, n);
	RILL_ASSERT(bytes > 0); /* a 1,024-partition answer is far below a frame */
	j->answer_bytes = (uint32_t)bytes;
	j->sub_count = n;
	j->credit = ws.credit;
	free(entries);
}

void srv_subs_close_now(struct srv_sub *subs, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		rill_subscription_close(subs[i].sub);
}

/* Run @j; false when it is a token query to try again later (job_query). */
static bool job_run(struct rill_server *s, struct srv_job *j)
{
	if (j->kind == SRV_JOB_CLOSE) {
		srv_subs_close_now(j->subs, j->sub_count);
		j->sub_count = 0;
		return true;
	}
	if (ctl_stopping(s))
		return true; /* stopping: its answer would be dropped; it does nothing */
	switch (j->h.type) {
	case RILL_WIRE_QUERY:
		return job_query(s, j);
	case RILL_WIRE_ADMIN:
		job_admin(s, j);
		return true;
	case RILL_WIRE_SUBSCRIBE:
		job_subscribe(s, j);
		return true;
	default:
		RILL_ASSERT(0 && "a frame the control thread does not take");
	}
	return true;
}

/* Back to its worker, which collects it in its next turn. */
static void job_return(struct rill_server *s, struct srv_job *j)
{
	struct srv_worker *w = j->worker;
	pthread_mutex_lock(&s->ctl_lock);
	j->next = w->ctl_done;
	w->ctl_done = j;
	rill_atomic_store_release_u64(&w->ctl_ready, 1); /* a hint; the list is locked */
	pthread_mutex_unlock(&s->ctl_lock);
	uint64_t one = 1;
	ssize_t put = write(w->ctl_fd, &one, sizeof(one));
	(void)put; /* EAGAIN: the counter is saturated, so the worker wakes anyway */
}

/* The partitions a retry round has looked at: one call to a shard each, however many
 * queries wait on it. */
struct ctl_seen {
	struct rill_topic *topic;
	uint32_t partition;
	uint64_t next_offset;
};

#define CTL_SEEN_MAX 64

/* False only when @j's token is surely not applied yet and its wait has time left: then
 * it waits on without a query of its own. True: worth a query (or an answer). */
static bool ctl_token_due(struct rill_server *s, const struct srv_job *j, struct ctl_seen *seen,
			  uint32_t *seen_count)
{
	struct rill_wire_query q;
	if (ctl_stopping(s) || rill_clock_now_ns() >= j->deadline_ns ||
	    rill_wire_query_decode(j->body, j->h.body_bytes, &q) != 0 ||
	    !(q.flags & RILL_WIRE_QUERY_F_TOKEN))
		return true;
	char name[RILL_WIRE_NAME_BYTES_MAX + 1];
	srv_name(name, q.name, q.name_bytes);
	struct rill_topic *t = rill_projection_topic(s->engine, name);
	if (t == NULL || q.token_partition >= rill_topic_partitions(t))
		return true; /* the query says what is wrong */
	if (q.token_offset == UINT64_MAX)
		return true; /* a duplicate's, its offset no longer known: applied long ago */
	for (uint32_t i = 0; i < *seen_count; i++)
		if (seen[i].topic == t && seen[i].partition == q.token_partition)
			return q.token_offset < seen[i].next_offset;
	struct rill_partition_info info;
	uint64_t at;
	if (*seen_count == CTL_SEEN_MAX ||
	    rill_partition_info_get(s->engine, t, q.token_partition, UINT64_MAX, &info, &at) != 0)
		return true;
	seen[(*seen_count)++] = (struct ctl_seen){
		.topic = t, .partition = q.token_partition, .next_offset = info.next_offset};
	return q.token_offset < info.next_offset;
}

/* Try the token queries waiting again; those answered (or out of time) go back. */
static struct srv_job *ctl_retry(struct rill_server *s, struct srv_job *waiting)
{
	struct srv_job *keep = NULL;
	struct ctl_seen seen[CTL_SEEN_MAX];
	uint32_t seen_count = 0;
	while (waiting != NULL) {
		struct srv_job *j = waiting;
		waiting = j->next;
		if (!ctl_token_due(s, j, seen, &seen_count)) {
			j->next = keep;
			keep = j;
		} else if (job_run(s, j)) {
			job_return(s, j);
		} else {
			j->next = keep;
			keep = j;
		}
	}
	return keep;
}

/*
 * The thread: jobs in the order queued, one at a time. A query waiting for a token does
 * not hold the thread: it is tried, set aside, and tried again every CTL_RETRY_NS until
 * its offset is applied or its wait runs out, between the other jobs.
 */
static void *ctl_main(void *arg)
{
	struct rill_server *s = arg;
	struct srv_job *waiting = NULL; /* this thread's own */
	uint64_t retry_ns = 0;          /* when the waiting ones are tried next */
	pthread_mutex_lock(&s->ctl_lock);
	for (;;) {
		if (s->ctl_head == NULL && !ctl_stopping(s)) {
			if (waiting == NULL) {
				pthread_cond_wait(&s->ctl_cond, &s->ctl_lock);
			} else {
				uint64_t now = rill_clock_now_ns();
				uint64_t at = retry_ns > now ? retry_ns : now;
				struct timespec ts = {.tv_sec = (time_t)(at / 1000000000u),
						      .tv_nsec = (long)(at % 1000000000u)};
				/* CLOCK_MONOTONIC: the condition's clock (srv_ctl_init). */
				pthread_cond_timedwait(&s->ctl_cond, &s->ctl_lock, &ts);
			}
		}
		struct srv_job *j = s->ctl_head;
		if (j != NULL) {
			s->ctl_head = j->next;
			if (s->ctl_head == NULL)
				s->ctl_tail = NULL;
		} else if (ctl_stopping(s) && waiting == NULL) {
			break; /* stopping, and nothing is left */
		}
		pthread_mutex_unlock(&s->ctl_lock);
		if (j != NULL) {
			if (job_run(s, j)) {
				job_return(s, j);
			} else {
				j->next = waiting;
				waiting = j;
			}
		}
		/* Every CTL_RETRY_NS, not after every job: each try is a call to a shard. */
		uint64_t now = rill_clock_now_ns();
		if (waiting != NULL && (now >= retry_ns || ctl_stopping(s))) {
			waiting = ctl_retry(s, waiting); /* stopping: each goes back unanswered */
			retry_ns = now + CTL_RETRY_NS;
		}
		pthread_mutex_lock(&s->ctl_lock);
	}
	pthread_mutex_unlock(&s->ctl_lock);
	return NULL;
}

int srv_ctl_init(struct rill_server *s)
{
	pthread_condattr_t attr;
	int rc = -pthread_condattr_init(&attr);
	if (rc == 0)
		rc = -pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* the deadlines' clock */
	if (rc == 0)
		rc = -pthread_cond_init(&s->ctl_cond, &attr);
	pthread_condattr_destroy(&attr);
	if (rc == 0)
		rc = -pthread_mutex_init(&s->ctl_lock, NULL);
	return rc;
}

int srv_ctl_start(struct rill_server *s)
{
	int rc = -pthread_create(&s->ctl_thread, NULL, ctl_main, s);
	if (rc == 0) {
		pthread_setname_np(s->ctl_thread, "rill-ctl");
		s->ctl_started = true;
	}
	return rc;
}

void srv_ctl_stop(struct rill_server *s)
{
	if (!s->ctl_started)
		return;
	pthread_mutex_lock(&s->ctl_lock);
	rill_atomic_store_release_u64(&s->ctl_stop, 1); /* C: pairs with ctl_stopping */
	pthread_cond_signal(&s->ctl_cond);
	pthread_mutex_unlock(&s->ctl_lock);
	pthread_join(s->ctl_thread, NULL);
	s->ctl_started = false;
	s->ctl_gone = true;
}

void srv_job_post(struct srv_worker *w, struct srv_conn *c)
{
	struct rill_server *s = w->server;
	struct srv_job *j = &c->job;
	RILL_ASSERT(!c->ctl_busy); /* S5: one at a time */
	c->ctl_busy = true;
	j->worker = w;
	j->conn = c;
	j->done = false;
	j->next = NULL;
	pthread_mutex_lock(&s->ctl_lock);
	if (s->ctl_tail != NULL)
		s->ctl_tail->next = j;
	else
		s->ctl_head = j;
	s->ctl_tail = j;
	pthread_cond_signal(&s->ctl_cond);
	pthread_mutex_unlock(&s->ctl_lock);
}

bool srv_job_frame(struct srv_worker *w, struct srv_conn *c, const struct rill_wire_header *h,
		   const uint8_t *body)
{
	struct srv_job *j = &c->job;
	*j = (struct srv_job){.kind = SRV_JOB_FRAME, .h = *h, .conn_subs = c->sub_count};
	j->body = malloc(h->body_bytes > 0 ? h->body_bytes : 1);
	if (j->body == NULL) {
		srv_conn_error(w, c, h->request_id, -ENOMEM, "%s: out of memory",
			       rill_wire_type_name(h->type));
		return false;
	}
	memcpy(j->body, body, h->body_bytes);
	srv_job_post(w, c);
	return true;
}

bool srv_jobs_collect(struct srv_worker *w)
{
	struct rill_server *s = w->server;
	if (rill_atomic_load_acquire_u64(&w->ctl_ready) == 0)
		return false;
	pthread_mutex_lock(&s->ctl_lock);
	struct srv_job *list = w->ctl_done;
	w->ctl_done = NULL;
	rill_atomic_store_relaxed_u64(&w->ctl_ready, 0);
	pthread_mutex_unlock(&s->ctl_lock);
	bool any = list != NULL;
	while (list != NULL) {
		struct srv_job *j = list;
		list = j->next;
		struct srv_conn *c = j->conn;
		srv_conn_mark(w, c); /* its answer goes out, or it is freed, in this turn */
		j->done = true;
		free(j->body);
		j->body = NULL;
		if (j->sub_count > 0 && j->kind == SRV_JOB_FRAME) {
			/* Opened: the connection's now, even if it closed meanwhile (its close
			 * then closes them). Room: the limit was checked against conn_subs. */
			RILL_ASSERT(c->subs != NULL &&
				    c->sub_count + j->sub_count <= s->config.subscriptions_max);
			memcpy(&c->subs[c->sub_count], j->subs, j->sub_count * sizeof(*j->subs));
			c->sub_count += j->sub_count;
			c->credit += j->credit;
			if (c->credit > SRV_CREDIT_MAX)
				c->credit = SRV_CREDIT_MAX;
			j->sub_count = 0;
		}
		if (j->subs_owned)
			free(j->subs);
		j->subs = NULL;
		j->subs_owned = false;
		if (c->closed) {
			free(j->answer);
			j->answer = NULL;
			c->ctl_busy = false;
			srv_subs_release(w, c); /* what it opened, or what was left */
		} else if (j->answer == NULL) {
			c->ctl_busy = false; /* a CLOSE, or an answer that found no memory */
		}
	}
	return any;
}

bool srv_job_finish(struct srv_worker *w, struct srv_conn *c)
{
	struct srv_job *j = &c->job;
	if (!c->ctl_busy || !j->done)
		return false;
	/* A dead connection (cut off: its peer reads nothing) sends nothing more; waiting
	 * for room there would keep it open, with its descriptor and slot, for as long as
	 * the peer keeps its end. */
	if (!c->dead) {
		uint8_t *dst = srv_conn_tx_reserve(c, j->answer_bytes);
		if (dst == NULL)
			return false; /* acknowledgements or events took the room: next turn */
		srv_conn_send(w, c, j->answer, j->answer_bytes);
	}
	free(j->answer);
	j->answer = NULL;
	c->ctl_busy = false;
	return true;
}
