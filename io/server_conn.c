/*
 * The server's frames: what each request does once server.c has cut it out of the
 * receive buffer. PRODUCE publishes every event of the frame through the worker's
 * producer handle (rings to the owner shards) and answers with one ACK frame once every
 * event has its acknowledgement at the level asked; SUBSCRIBE's feeds go out as EVENTS
 * frames as the client's credit allows. What waits for shards (QUERY, ADMIN, opening and
 * closing subscriptions) is checked here and handed to the control thread
 * (server_ctl.c). Runs on the connection's worker, on its shard's thread; PRODUCE, ACK
 * and EVENTS are the hot path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/atomic.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "io/server_int.h"

#define SRV_REASON_BYTES_MAX 256u /* a refusal's reason, as kept for its ACK */

/* Copy a name from the wire into @out (NUL-terminated). */
void srv_name(char *out, const char *name, uint16_t bytes)
{
	RILL_ASSERT(bytes <= RILL_WIRE_NAME_BYTES_MAX);
	memcpy(out, name, bytes);
	out[bytes] = '\0';
}

static struct srv_conn *srv_preq_conn(struct srv_worker *w, const struct srv_preq *r)
{
	if (r->conn_slot == UINT32_MAX)
		return NULL;
	struct srv_conn *c = w->conns[r->conn_slot];
	return c != NULL && c->gen == r->conn_gen ? c : NULL;
}

void srv_preq_release(struct srv_worker *w, struct srv_preq *r)
{
	struct srv_conn *c = srv_preq_conn(w, r);
	if (c != NULL) {
		RILL_ASSERT(c->preqs > 0 && c->inflight_bytes >= r->frame_bytes);
		c->preqs--;
		c->inflight_bytes -= r->frame_bytes;
		c->waiting = false;  /* room again: retry the frame that waited for it */
		srv_conn_mark(w, c); /* that, or free it if it closed (S4) */
	}
	srv_inflight_give(w->server, r->frame_bytes);
	srv_preq_results_free(r);
	*r = (struct srv_preq){.index = r->index, .next = w->preq_free};
	w->preq_free = r;
	/* A connection may wait for a slot or budget (any one); a closed one is freed by the
	 * turn once its preqs is 0 (S4). */
	w->slots_freed = true;
}

/* Every event answered: queue the ACK on the connection, or drop it if it is gone. */
static void srv_preq_done(struct srv_worker *w, struct srv_preq *r)
{
	struct srv_conn *c = srv_preq_conn(w, r);
	if (c == NULL || c->closed) {
		srv_preq_release(w, r);
		return;
	}
	r->next = NULL;
	if (c->done_tail != NULL)
		c->done_tail->next = r;
	else
		c->done_head = r;
	c->done_tail = r;
	srv_conn_mark(w, c); /* its ACK goes out in the next turn */
}

void srv_ack_cb(void *arg, const struct rill_ack *ack)
{
	struct srv_worker *w = arg;
	if (ack->cookie == UINT64_MAX)
		return; /* acks none: a refusal nobody asked to hear about */
	uint32_t index = (uint32_t)(ack->cookie >> 32), event = (uint32_t)ack->cookie;
	RILL_ASSERT(index < SRV_PREQS_MAX);
	struct srv_preq *r = &w->preqs[index];
	RILL_ASSERT(event < r->count && r->left > 0);
	if (ack->error == 0 && (int)ack->level != r->acks)
		return; /* the applied one of a durable request: wait for the durable one */
	struct srv_ack *a = &r->results[event];
	a->error = ack->error;
	a->partition = ack->token.partition;
	a->offset = ack->error == 0 ? ack->token.offset : UINT64_MAX;
	a->event_count = ack->event_count;
	a->flags = ack->duplicate ? RILL_WIRE_ACK_F_DUPLICATE : 0;
	if (ack->error != 0 && ack->reason != NULL && ack->reason[0] != '\0')
		a->reason = strndup(ack->reason, SRV_REASON_BYTES_MAX);
	r->left--;
	if (r->left == 0 && r->published == r->count)
		srv_preq_done(w, r);
}

/* ---- PRODUCE ------------------------------------------------------------------------ */

/*
 * Publish the request's events from r->published on, the first at r->next_at in @frame
 * (its header first). 0 when all are out, -EAGAIN when a ring is full (the connection
 * stalls until it has room; next_at keeps where to resume). The frame was checked whole
 * when it came (S7): its records are walked, not checked again.
 */
static int srv_publish(struct srv_worker *w, struct srv_preq *r, const uint8_t *frame,
		       uint64_t ingress_ns)
{
	RILL_ASSERT(r->next_at <= r->frame_bytes);
	/* The rest of the decoded PRODUCE, as rill_wire_produce_decode would have set it. */
	struct rill_wire_produce rest = {.records = frame + r->next_at,
					 .records_bytes = r->frame_bytes - r->next_at,
					 .event_count = r->count - r->published};
	struct rill_wire_iter it;
	struct rill_record rec;
	rill_wire_produce_iter(&rest, &it);
	uint32_t record_max = rill_wire_events_record_max(w->server->config.frame_bytes_max);
	while (r->published < r->count) {
		const uint8_t *at = it.at;
		int got = rill_wire_produce_next(&it, &rec);
		RILL_ASSERT(got == 1); /* the frame was checked whole */
		uint32_t i = r->published;
		int rc;
		char *reason = NULL;
		if (rill_unlikely(rec.record_bytes > record_max)) {
			/* A PRODUCE frame holds a few bytes more of record than an EVENTS frame:
			 * taken, such an event would stop every subscriber of its partition. */
			rc = RILL_E_RECORD_TOO_LARGE;
			reason = malloc(SRV_REASON_BYTES_MAX);
			if (reason != NULL)
				snprintf(reason, SRV_REASON_BYTES_MAX,
					 "a record of %" PRIu32
					 " bytes: subscribers receive at most "
					 "%" PRIu32 " under this server's frame limit",
					 rec.record_bytes, record_max);
		} else {
			/* Unstamped events share the turn's one wall-clock read (w->wall_ns). */
			struct rill_event ev = rill_wire_event(&rec, ingress_ns, &w->wall_ns);
			uint64_t cookie = r->acks == RILL_ACKS_NONE
						  ? UINT64_MAX
						  : ((uint64_t)r->index << 32) | i;
			rc = rill_publish(w->producer, r->topic, &ev, (enum rill_acks)r->acks,
					  cookie);
			if (rc == -EAGAIN) {
				r->next_at = (uint32_t)(at - frame); /* this one again, first */
				srv_stat_add(&w->stats.backpressure, 1);
				return -EAGAIN;
			}
			if (rc == -EMSGSIZE && (reason = malloc(SRV_REASON_BYTES_MAX)) != NULL)
				snprintf(reason, SRV_REASON_BYTES_MAX,
					 "an event of %" PRIu32
					 " bytes of key and payload: the engine's rings take "
					 "at most %" PRIu32
					 " (about half of [engine] ring_bytes: raise it)",
					 (uint32_t)ev.key_bytes + ev.payload_bytes,
					 rill_producer_event_bytes_max(w->producer));
		}
		r->published++;
		if (rc < 0 || r->acks == RILL_ACKS_NONE) {
			r->results[i] = (struct srv_ack){
				.error = rc, .offset = UINT64_MAX, .reason = reason};
			r->left--; /* no acknowledgement will come for it */
		}
	}
	srv_stat_add(&w->stats.events, r->count);
	if (r->left == 0)
		srv_preq_done(w, r);
	return 0;
}

/* Take a request's share of the in-flight budgets (S3). false: wait for room. */
static bool srv_budget_take(struct srv_worker *w, struct srv_conn *c, uint32_t bytes)
{
	struct rill_server *s = w->server;
	if (c->preqs >= SRV_CONN_PREQS_MAX || w->preq_free == NULL ||
	    (c->inflight_bytes > 0 &&
	     c->inflight_bytes + bytes > s->config.conn_inflight_bytes_max))
		return false;
	/* The frame may be the one whose bytes srv_rx_reserve held before its body came:
	 * those become the request's, rather than being counted twice until it returns. */
	uint64_t reserved = c->rx_reserved < bytes ? c->rx_reserved : bytes;
	if (bytes > reserved && !srv_inflight_take(s, c->inflight_bytes, bytes - reserved))
		return false;
	c->rx_reserved -= (uint32_t)reserved;
	c->inflight_bytes += bytes;
	return true;
}

/* The topic @p names, through the connection's one-entry cache; NULL if there is none
 * (@topic then holds its name, for the error). */
static struct rill_topic *srv_topic(struct srv_worker *w, struct srv_conn *c,
				    const struct rill_wire_produce *p, char *topic)
{
	if (c->topic_last != NULL && p->topic_bytes == c->topic_last_bytes &&
	    memcmp(p->topic, c->topic_last_name, p->topic_bytes) == 0)
		return c->topic_last;
	srv_name(topic, p->topic, p->topic_bytes);
	struct rill_topic *t = rill_topic_find(w->server->engine, topic);
	if (t != NULL) {
		RILL_ASSERT(p->topic_bytes <= sizeof(c->topic_last_name)); /* wire.c checks */
		memcpy(c->topic_last_name, p->topic, p->topic_bytes);
		c->topic_last_bytes = p->topic_bytes;
		c->topic_last = t;
	}
	return t;
}

static int srv_produce(struct srv_worker *w, struct srv_conn *c, const struct rill_wire_header *h,
		       const uint8_t *body)
{
	uint32_t frame_bytes = RILL_WIRE_HEADER_BYTES + h->body_bytes;
	if (!srv_budget_take(w, c, frame_bytes)) {
		c->waiting = true;
		srv_conn_wait(w, c);
		srv_stat_add(&w->stats.backpressure, 1);
		return -EAGAIN;
	}
	struct rill_wire_produce p;
	uint32_t bad = 0;
	int rc = rill_wire_produce_decode(body, h->body_bytes, &p, &bad); /* once (S7) */
	if (rc == 0)
		srv_stat_add(&w->records_checked, p.event_count);
	struct rill_topic *t = NULL;
	char topic[RILL_WIRE_TOPIC_BYTES_MAX + 1];
	if (rc == 0)
		t = srv_topic(w, c, &p, topic);
	struct srv_preq *r = w->preq_free;
	struct srv_ack *results = NULL;
	if (rc == 0 && t != NULL)
		results = p.event_count == 1 ? &r->one : calloc(p.event_count, sizeof(*results));
	if (results == NULL) {
		c->inflight_bytes -= frame_bytes;
		srv_inflight_give(w->server, frame_bytes);
		if (rc < 0) {
			srv_stat_add(&w->stats.bad_frames, 1);
			srv_conn_fatal(w, c, h->request_id, rc, "PRODUCE: event %u: %s", bad,
				       rill_strerror(rc));
			return -EPROTO;
		}
		if (t == NULL)
			srv_conn_error(w, c, h->request_id, -ENOENT, "no topic '%s'", topic);
		else
			srv_conn_error(w, c, h->request_id, -ENOMEM, "out of memory");
		return 0;
	}
	w->preq_free = r->next;
	const uint8_t *frame = body - RILL_WIRE_HEADER_BYTES;
	*r = (struct srv_preq){.index = r->index,
			       .conn_slot = c->slot,
			       .conn_gen = c->gen,
			       .request_id = h->request_id,
			       .count = p.event_count,
			       .left = p.event_count,
			       .frame_bytes = frame_bytes,
			       .next_at = (uint32_t)(p.records - frame),
			       .acks = p.acks,
			       .topic = t,
			       .results = results};
	c->preqs++;
	if (srv_publish(w, r, frame, w->now) == -EAGAIN) {
		c->stalled = r; /* the frame stays in rx until every event is out */
		return -EAGAIN;
	}
	return 0;
}

void srv_produce_abandon(struct srv_worker *w, struct srv_conn *c, int error)
{
	struct srv_preq *r = c->stalled;
	c->stalled = NULL;
	for (uint32_t i = r->published; i < r->count; i++) {
		r->results[i] = (struct srv_ack){.error = error, .offset = UINT64_MAX};
		r->left--;
	}
	r->published = r->count;
	if (r->left == 0)
		srv_preq_done(w, r);
}

/* A stalled PRODUCE (at the head of rx): publish the rest, from where it stopped (S7).
 * 0 once done, -EAGAIN. */
int srv_produce_resume(struct srv_worker *w, struct srv_conn *c)
{
	struct srv_preq *r = c->stalled;
	RILL_ASSERT(r != NULL && c->rx_len >= r->frame_bytes);
	RILL_DASSERT(rill_ld32(srv_rx_data(c)) + RILL_WIRE_HEADER_BYTES == r->frame_bytes);
	if (srv_publish(w, r, srv_rx_data(c), w->now) == -EAGAIN)
		return -EAGAIN;
	c->stalled = NULL;
	srv_rx_consume(c, r->frame_bytes);
	srv_stat_add(&w->stats.frames, 1);
	return 0;
}

/* The ACK frame of @r: its size, reasons cut where the frame limit would be passed. */
static uint32_t srv_ack_size(const struct rill_server *s, const struct srv_preq *r)
{
	uint64_t bytes = RILL_WIRE_HEADER_BYTES + RILL_WIRE_ACK_BYTES_MIN +
			 (uint64_t)r->count * RILL_WIRE_ACK_ENTRY_BYTES;
	for (uint32_t i = 0; i < r->count; i++) {
		const char *reason = r->results[i].reason;
		size_t len = reason != NULL ? strlen(reason) : 0;
		if (bytes + len <= RILL_WIRE_HEADER_BYTES + s->config.frame_bytes_max)
			bytes += len;
	}
	return (uint32_t)bytes;
}

static void srv_ack_write(struct srv_worker *w, struct srv_conn *c, struct srv_preq *r,
			  uint32_t size)
{
	uint8_t *buf = c->tx + c->tx_len;
	int at = rill_wire_ack_begin(buf, size, r->request_id);
	RILL_ASSERT(at > 0);
	uint64_t room = size - RILL_WIRE_ACK_BYTES_MIN - RILL_WIRE_HEADER_BYTES -
			(uint64_t)r->count * RILL_WIRE_ACK_ENTRY_BYTES;
	for (uint32_t i = 0; i < r->count; i++) {
		const struct srv_ack *a = &r->results[i];
		size_t len = a->reason != NULL ? strlen(a->reason) : 0;
		if (len > room)
			len = 0; /* cut: the frame limit (srv_ack_size counted the same way) */
		room -= len;
		struct rill_wire_ack_entry e = {.error = a->error,
						.partition = a->partition,
						.offset = a->offset,
						.event_count = a->event_count,
						.flags = a->flags,
						.reason = a->reason,
						.reason_bytes = (uint16_t)len};
		at = rill_wire_ack_entry(buf, size, (size_t)at, &e);
		RILL_ASSERT(at > 0);
	}
	rill_wire_ack_finish(buf, (uint32_t)at, r->count);
	srv_conn_send(w, c, buf, (uint32_t)at);
}

/* Write the ACKs of answered requests, in the order they were answered, while there is
 * room; the rest wait for the sends to drain. */
void srv_acks_flush(struct srv_worker *w, struct srv_conn *c)
{
	while (c->done_head != NULL) {
		struct srv_preq *r = c->done_head;
		if (!c->dead && !c->fatal) { /* after a fatal ERROR, nothing (docs/PROTOCOL.md) */
			uint32_t size = srv_ack_size(w->server, r);
			if (srv_conn_tx_reserve(c, size) == NULL)
				return;
			srv_ack_write(w, c, r, size);
			srv_stat_add(&w->stats.acks, 1);
		}
		c->done_head = r->next;
		if (c->done_head == NULL)
			c->done_tail = NULL;
		srv_preq_release(w, r);
	}
}

/* ---- SUBSCRIBE, FETCH, UNSUBSCRIBE -------------------------------------------------- */

/* Hand the connection's subscriptions to the control thread to close (closing waits for
 * their shards). A job already out closes them when it comes back (srv_jobs_collect). */
void srv_subs_release(struct srv_worker *w, struct srv_conn *c)
{
	if (c->sub_count == 0 || c->ctl_busy)
		return;
	if (w->server->ctl_gone) { /* the server stopping, on a thread that may block */
		srv_subs_close_now(c->subs, c->sub_count);
		c->sub_count = 0;
		return;
	}
	c->job =
		(struct srv_job){.kind = SRV_JOB_CLOSE, .subs = c->subs, .sub_count = c->sub_count};
	c->sub_count = 0;
	srv_job_post(w, c);
}

static int srv_subscribe(struct srv_worker *w, struct srv_conn *c, const struct rill_wire_header *h,
			 const uint8_t *body)
{
	struct rill_wire_subscribe ws;
	int rc = rill_wire_subscribe_decode(body, h->body_bytes, &ws);
	if (rc < 0) {
		srv_stat_add(&w->stats.bad_frames, 1);
		srv_conn_fatal(w, c, h->request_id, rc, "SUBSCRIBE: %s", rill_strerror(rc));
		return -EPROTO;
	}
	if (c->subs == NULL) {
		/* Room for the most it may hold: what the control thread opens lands here. */
		c->subs = calloc(w->server->config.subscriptions_max, sizeof(*c->subs));
		if (c->subs == NULL) {
			srv_conn_error(w, c, h->request_id, -ENOMEM, "SUBSCRIBE: out of memory");
			return 0;
		}
	}
	(void)srv_job_frame(w, c, h, body); /* the control thread opens them (server_ctl.c) */
	return 0;
}

/* Stop the subscriptions SUBSCRIBE @request_id opened; they close on the control thread. */
static int srv_unsubscribe(struct srv_worker *w, struct srv_conn *c, uint64_t request_id)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < c->sub_count; i++)
		n += c->subs[i].request_id == request_id;
	if (n == 0)
		return -ENOENT;
	struct srv_sub *gone = malloc(n * sizeof(*gone));
	if (gone == NULL)
		return -ENOMEM;
	uint32_t kept = 0, k = 0;
	for (uint32_t i = 0; i < c->sub_count; i++) {
		if (c->subs[i].request_id == request_id)
			gone[k++] = c->subs[i];
		else
			c->subs[kept++] = c->subs[i];
	}
	c->sub_count = kept;
	c->sub_next = 0;
	c->job = (struct srv_job){
		.kind = SRV_JOB_CLOSE, .subs = gone, .sub_count = n, .subs_owned = true};
	srv_job_post(w, c);
	return 0;
}

/* The next event of @sub, held until it fits a frame: 1, 0 (none now) or an error. */
static int srv_sub_peek(struct srv_sub *sub)
{
	if (sub->held)
		return 1;
	int rc = rill_subscription_next(sub->sub, &sub->rec, &sub->offset, 0);
	sub->held = rc == 1;
	return rc;
}

/* Feed one partition into one EVENTS frame; true when it sent something. */
static bool srv_sub_feed(struct srv_worker *w, struct srv_conn *c, struct srv_sub *sub)
{
	uint32_t frame_max = RILL_WIRE_HEADER_BYTES + w->server->config.frame_bytes_max;
	uint8_t *buf = srv_conn_tx_reserve(c, frame_max);
	if (buf == NULL)
		return false; /* the output buffer is full: the peer reads slowly */
	int at = -1;
	uint32_t count = 0;
	int rc;
	while (c->credit > 0 && (rc = srv_sub_peek(sub)) == 1) {
		const uint8_t *record = (const uint8_t *)sub->rec.key - RILL_RECORD_HEADER_BYTES;
		if (at < 0)
			at = rill_wire_events_begin(buf, frame_max, sub->request_id,
						    sub->partition);
		int end = rill_wire_events_add(buf, frame_max, (size_t)at, sub->offset, record,
					       sub->rec.record_bytes);
		if (end < 0) {
			if (count > 0)
				break; /* the next frame takes it */
			rc = -EMSGSIZE;
			break;
		}
		at = end;
		count++;
		c->credit--;
		sub->held = false;
	}
	if (count > 0) {
		rill_wire_events_finish(buf, (uint32_t)at, count);
		srv_conn_send(w, c, buf, (uint32_t)at);
		return true;
	}
	if (rc == -EMSGSIZE) {
		/* Appended in process or under a larger frame limit: it can reach subscribers
		 * once the limit is raised (frame_bytes_max, up to 16 MiB). */
		sub->failed = true;
		srv_conn_error(w, c, sub->request_id, rc,
			       "partition %u: offset %" PRIu64 ": a record of %" PRIu32 " bytes, "
			       "more than a frame carries (%" PRIu32 " under this server's "
			       "frame_bytes_max)",
			       sub->partition, sub->offset, sub->rec.record_bytes,
			       rill_wire_events_record_max(w->server->config.frame_bytes_max));
	} else if (rc == -ERANGE) {
		sub->failed = true;
		srv_conn_error(w, c, sub->request_id, rc,
			       "partition %u: retention deleted the events the feed was at before "
			       "they were sent; subscribe again from the oldest event kept",
			       sub->partition);
	} else if (rc < 0) {
		sub->failed = true;
		srv_conn_error(w, c, sub->request_id, rc, "partition %u: %s", sub->partition,
			       rill_strerror(rc));
	}
	return false;
}

bool srv_subs_poll(struct srv_worker *w, struct srv_conn *c)
{
	bool work = false;
	uint32_t n = c->sub_count;
	for (uint32_t k = 0; k < n && c->credit > 0; k++) {
		struct srv_sub *sub = &c->subs[(c->sub_next + k) % n];
		if (!sub->failed)
			work |= srv_sub_feed(w, c, sub);
	}
	c->sub_next = n > 0 ? (c->sub_next + 1) % n : 0; /* each partition leads in turn */
	return work;
}

/* ---- QUERY, ADMIN ------------------------------------------------------------------- */

/* QUERY and ADMIN: checked here, answered by the control thread (server_ctl.c). */
static int srv_ctl_frame(struct srv_worker *w, struct srv_conn *c, const struct rill_wire_header *h,
			 const uint8_t *body)
{
	int rc;
	if (h->type == RILL_WIRE_QUERY) {
		struct rill_wire_query q;
		rc = rill_wire_query_decode(body, h->body_bytes, &q);
	} else {
		struct rill_wire_admin a;
		rc = rill_wire_admin_decode(body, h->body_bytes, &a);
	}
	if (rc < 0) {
		srv_stat_add(&w->stats.bad_frames, 1);
		srv_conn_fatal(w, c, h->request_id, rc, "%s: %s", rill_wire_type_name(h->type),
			       rill_strerror(rc));
		return -EPROTO;
	}
	(void)srv_job_frame(w, c, h, body);
	return 0;
}

/* ---- Dispatch ----------------------------------------------------------------------- */

static int srv_hello(struct srv_worker *w, struct srv_conn *c, const struct rill_wire_header *h,
		     const uint8_t *body)
{
	struct rill_wire_hello hello;
	int rc = c->hello ? RILL_E_WIRE_TYPE : rill_wire_hello_decode(body, h->body_bytes, &hello);
	if (rc == 0 && (hello.version_min > RILL_WIRE_VERSION || hello.version_max < 1))
		rc = RILL_E_WIRE_VERSION;
	if (rc < 0) {
		srv_stat_add(&w->stats.bad_frames, 1);
		srv_conn_fatal(w, c, h->request_id, rc, "HELLO: %s", rill_strerror(rc));
		return -EPROTO;
	}
	struct rill_server *s = w->server;
	struct rill_wire_hello_ok ok = {
		.version = RILL_WIRE_VERSION,
		.shards = (uint16_t)rill_engine_shards(s->engine),
		.frame_bytes_max = s->config.frame_bytes_max,
		.inflight_bytes_max = (uint32_t)(s->config.conn_inflight_bytes_max > UINT32_MAX
							 ? UINT32_MAX
							 : s->config.conn_inflight_bytes_max)};
	uint8_t *dst = srv_conn_tx_reserve(c, RILL_WIRE_HEADER_BYTES + RILL_WIRE_HELLO_OK_BYTES);
	int bytes = rill_wire_hello_ok_encode(
		dst, RILL_WIRE_HEADER_BYTES + RILL_WIRE_HELLO_OK_BYTES, h->request_id, &ok);
	RILL_ASSERT(bytes > 0);
	srv_conn_send(w, c, dst, (uint32_t)bytes);
	c->hello = true;
	return 0;
}

/* FETCH, UNSUBSCRIBE and PING: the small ones. */
static int srv_small(struct srv_worker *w, struct srv_conn *c, const struct rill_wire_header *h,
		     const uint8_t *body)
{
	uint32_t credit = 0;
	int rc = h->type == RILL_WIRE_FETCH ? rill_wire_fetch_decode(body, h->body_bytes, &credit)
					    : rill_wire_empty_decode(h->body_bytes);
	if (rc < 0) {
		srv_stat_add(&w->stats.bad_frames, 1);
		srv_conn_fatal(w, c, h->request_id, rc, "%s: %s", rill_wire_type_name(h->type),
			       rill_strerror(rc));
		return -EPROTO;
	}
	if (h->type == RILL_WIRE_PING) {
		uint8_t *dst = srv_conn_tx_reserve(c, RILL_WIRE_HEADER_BYTES);
		rill_wire_empty_encode(dst, RILL_WIRE_HEADER_BYTES, RILL_WIRE_PONG, h->request_id);
		srv_conn_send(w, c, dst, RILL_WIRE_HEADER_BYTES);
	} else if (h->type == RILL_WIRE_UNSUBSCRIBE) {
		rc = srv_unsubscribe(w, c, h->request_id);
		if (rc < 0)
			srv_conn_error(w, c, h->request_id, rc, "%s",
				       rc == -ENOENT ? "no such subscription" : "out of memory");
	} else {
		/* Credit is the connection's, shared by its subscriptions (docs/PROTOCOL.md). */
		c->credit += credit;
		if (c->credit > SRV_CREDIT_MAX)
			c->credit = SRV_CREDIT_MAX;
	}
	return 0;
}

int srv_frame(struct srv_worker *w, struct srv_conn *c, const struct rill_wire_header *h,
	      const uint8_t *body)
{
	switch (h->type) {
	case RILL_WIRE_HELLO:
		return srv_hello(w, c, h, body);
	case RILL_WIRE_PRODUCE:
		return srv_produce(w, c, h, body);
	case RILL_WIRE_SUBSCRIBE:
		return srv_subscribe(w, c, h, body);
	case RILL_WIRE_QUERY:
	case RILL_WIRE_ADMIN:
		return srv_ctl_frame(w, c, h, body);
	case RILL_WIRE_FETCH:
	case RILL_WIRE_UNSUBSCRIBE:
	case RILL_WIRE_PING:
		return srv_small(w, c, h, body);
	default:
		break;
	}
	srv_stat_add(&w->stats.bad_frames, 1);
	srv_conn_fatal(w, c, h->request_id, RILL_E_WIRE_TYPE, "a client may not send %s",
		       rill_wire_type_name(h->type));
	return -EPROTO;
}
