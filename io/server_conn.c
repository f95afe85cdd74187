/*
 * The server's frames: what each request does once server.c has cut it out of the
 * receive buffer. PRODUCE publishes every event of the frame through the worker's
 * producer handle (rings to the owner shards) and answers with one ACK frame once every
 * event has its acknowledgement at the level asked; SUBSCRIBE opens engine subscriptions
 * and feeds EVENTS frames as the client's credit allows; QUERY and ADMIN call the engine
 * (they block the worker briefly: the owner shard answers a query in microseconds, admin
 * work may sync files). Runs on the connection's worker thread; PRODUCE, ACK and EVENTS
 * are the hot path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/atomic.h"
#include "base/clock.h"
#include "io/server_int.h"

#define SRV_REASON_BYTES_MAX 256u /* a refusal's reason, as kept for its ACK */

/* Copy a name from the wire into @out (NUL-terminated). */
static void srv_name(char *out, const char *name, uint16_t bytes)
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
		c->waiting = false; /* room again: retry the frame that waited for it */
	}
	rill_atomic_fetch_sub_relaxed_u64(&w->server->inflight_bytes, r->frame_bytes);
	for (uint32_t i = 0; i < r->count; i++)
		free(r->results[i].reason);
	free(r->results);
	*r = (struct srv_preq){.index = r->index, .next = w->preq_free};
	w->preq_free = r;
	w->slots_freed = true;
	/* a connection may wait for a slot or budget (any one) */ /* a closed connection is freed by the loop once preqs is 0 (S4) */
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

/* Publish the request's events from r->published on. 0 when all are out, -EAGAIN when a
 * ring is full (the connection stalls until it has room). */
static int srv_publish(struct srv_worker *w, struct srv_preq *r, const struct rill_wire_produce *p,
		       uint64_t ingress_ns)
{
	struct rill_wire_iter it;
	struct rill_record rec;
	rill_wire_produce_iter(p, &it);
	for (uint32_t i = 0; i < r->published; i++)
		rill_wire_produce_next(&it, &rec);
	while (r->published < r->count) {
		int got = rill_wire_produce_next(&it, &rec);
		RILL_ASSERT(got == 1); /* the frame was checked whole */
		struct rill_event ev = rill_wire_event(&rec, ingress_ns);
		uint32_t i = r->published;
		uint64_t cookie =
			r->acks == RILL_ACKS_NONE ? UINT64_MAX : ((uint64_t)r->index << 32) | i;
		int rc = rill_publish(w->producer, r->topic, &ev, (enum rill_acks)r->acks, cookie);
		if (rc == -EAGAIN) {
			srv_stat_add(&w->stats.backpressure, 1);
			return -EAGAIN;
		}
		r->published++;
		if (rc < 0 || r->acks == RILL_ACKS_NONE) {
			r->results[i] = (struct srv_ack){.error = rc, .offset = UINT64_MAX};
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
	uint64_t total = rill_atomic_fetch_add_relaxed_u64(&s->inflight_bytes, bytes) + bytes;
	if (c->inflight_bytes > 0 && total > s->config.server_inflight_bytes_max) {
		rill_atomic_fetch_sub_relaxed_u64(&s->inflight_bytes, bytes);
		return false;
	}
	c->inflight_bytes += bytes;
	return true;
}

static int srv_produce(struct srv_worker *w, struct srv_conn *c, const struct rill_wire_header *h,
		       const uint8_t *body)
{
	uint32_t frame_bytes = RILL_WIRE_HEADER_BYTES + h->body_bytes;
	if (!srv_budget_take(w, c, frame_bytes)) {
		c->waiting = true;
		srv_stat_add(&w->stats.backpressure, 1);
		return -EAGAIN;
	}
	struct rill_wire_produce p;
	uint32_t bad = 0;
	int rc = rill_wire_produce_decode(body, h->body_bytes, &p, &bad);
	struct rill_topic *t = NULL;
	char topic[RILL_WIRE_TOPIC_BYTES_MAX + 1];
	if (rc == 0) {
		srv_name(topic, p.topic, p.topic_bytes);
		t = rill_topic_find(w->server->engine, topic);
	}
	struct srv_preq *r = w->preq_free;
	struct srv_ack *results =
		rc == 0 && t != NULL ? calloc(p.event_count, sizeof(*results)) : NULL;
	if (results == NULL) {
		c->inflight_bytes -= frame_bytes;
		rill_atomic_fetch_sub_relaxed_u64(&w->server->inflight_bytes, frame_bytes);
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
	*r = (struct srv_preq){.index = r->index,
			       .conn_slot = c->slot,
			       .conn_gen = c->gen,
			       .request_id = h->request_id,
			       .count = p.event_count,
			       .left = p.event_count,
			       .frame_bytes = frame_bytes,
			       .acks = p.acks,
			       .topic = t,
			       .results = results};
	c->preqs++;
	if (srv_publish(w, r, &p, w->now) == -EAGAIN) {
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

/* A stalled PRODUCE (at the head of rx): publish the rest. 0 once done, -EAGAIN. */
int srv_produce_resume(struct srv_worker *w, struct srv_conn *c)
{
	struct srv_preq *r = c->stalled;
	RILL_ASSERT(r != NULL && c->rx_len >= r->frame_bytes);
	struct rill_wire_produce p;
	int rc = rill_wire_produce_decode(c->rx + RILL_WIRE_HEADER_BYTES,
					  r->frame_bytes - RILL_WIRE_HEADER_BYTES, &p, NULL);
	RILL_ASSERT(rc == 0); /* checked when it came */
	if (srv_publish(w, r, &p, w->now) == -EAGAIN)
		return -EAGAIN;
	c->stalled = NULL;
	memmove(c->rx, c->rx + r->frame_bytes, c->rx_len - r->frame_bytes);
	c->rx_len -= r->frame_bytes;
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

void srv_subs_close(struct srv_conn *c)
{
	for (uint32_t i = 0; i < c->sub_count; i++)
		rill_subscription_close(c->subs[i].sub);
	c->sub_count = 0;
}

/* Where partition @p's feed starts; -ERANGE for an offset past a single partition's end. */
static int srv_sub_start(struct rill_server *s, struct rill_topic *t, uint32_t p,
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
		if (ws->from_value > info.next_offset && ws->partition != RILL_WIRE_PARTITION_ALL)
			return -ERANGE;
		start = ws->from_value < info.next_offset ? ws->from_value : info.next_offset;
	}
	if (start < info.first_offset)
		start = info.first_offset; /* retention took what came before */
	*e = (struct rill_wire_subscribed_entry){
		.partition = p, .first_offset = start, .end_offset = info.next_offset};
	return 0;
}

/* Open the partitions of @ws; answers SUBSCRIBED, or an ERROR with nothing opened. */
static bool srv_sub_open(struct srv_worker *w, struct srv_conn *c, uint64_t request_id,
			 const struct rill_wire_subscribe *ws, struct rill_topic *t)
{
	struct rill_server *s = w->server;
	uint32_t parts = rill_topic_partitions(t);
	uint32_t first = ws->partition == RILL_WIRE_PARTITION_ALL ? 0 : ws->partition;
	uint32_t n = ws->partition == RILL_WIRE_PARTITION_ALL ? parts : 1;
	if (c->sub_count + n > s->config.subscriptions_max) {
		srv_conn_error(w, c, request_id, -ENOSPC,
			       "more than %u partitions subscribed on one connection",
			       s->config.subscriptions_max);
		return false;
	}
	struct rill_wire_subscribed_entry *entries = calloc(n, sizeof(*entries));
	struct srv_sub *subs = realloc(c->subs, (c->sub_count + n) * sizeof(*subs));
	if (subs != NULL)
		c->subs = subs;
	int rc = entries == NULL || subs == NULL ? -ENOMEM : 0;
	uint32_t opened = 0;
	for (; rc == 0 && opened < n; opened++) {
		uint32_t p = first + opened;
		struct srv_sub *sub = &c->subs[c->sub_count + opened];
		*sub = (struct srv_sub){.request_id = request_id, .partition = p};
		rc = srv_sub_start(s, t, p, ws, &entries[opened]);
		if (rc == 0)
			rc = rill_subscribe(s->engine, t, p, entries[opened].first_offset,
					    &sub->sub);
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		for (uint32_t i = 0; i < opened; i++)
			rill_subscription_close(c->subs[c->sub_count + i].sub);
		srv_conn_error(w, c, request_id, rc, "subscribe to partition %u: %s",
			       first + opened, rill_strerror(rc));
		free(entries);
		return false;
	}
	c->sub_count += n;
	uint32_t size = RILL_WIRE_HEADER_BYTES + RILL_WIRE_SUBSCRIBED_BYTES +
			n * RILL_WIRE_SUBSCRIBED_ENTRY;
	uint8_t *dst = srv_conn_tx_reserve(c, size);
	RILL_ASSERT(dst != NULL); /* S2: a 1,024-partition answer is far below a frame */
	int bytes = rill_wire_subscribed_encode(dst, size, request_id, entries, n);
	RILL_ASSERT(bytes > 0);
	srv_conn_send(w, c, dst, (uint32_t)bytes);
	free(entries);
	return true;
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
	char topic[RILL_WIRE_TOPIC_BYTES_MAX + 1];
	srv_name(topic, ws.topic, ws.topic_bytes);
	struct rill_topic *t = rill_topic_find(w->server->engine, topic);
	if (t == NULL) {
		srv_conn_error(w, c, h->request_id, -ENOENT, "no topic '%s'", topic);
		return 0;
	}
	if (ws.partition != RILL_WIRE_PARTITION_ALL && ws.partition >= rill_topic_partitions(t)) {
		srv_conn_error(w, c, h->request_id, -EINVAL, "topic '%s' has no partition %u",
			       topic, ws.partition);
		return 0;
	}
	if (!srv_sub_open(w, c, h->request_id, &ws, t))
		return 0;
	c->credit += ws.credit;
	if (c->credit > SRV_CREDIT_MAX)
		c->credit = SRV_CREDIT_MAX;
	return 0;
}

static int srv_unsubscribe(struct srv_conn *c, uint64_t request_id)
{
	uint32_t kept = 0;
	for (uint32_t i = 0; i < c->sub_count; i++) {
		if (c->subs[i].request_id == request_id)
			rill_subscription_close(c->subs[i].sub);
		else
			c->subs[kept++] = c->subs[i];
	}
	int found = kept < c->sub_count;
	c->sub_count = kept;
	return found ? 0 : -ENOENT;
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
	if (rc < 0) {
		sub->failed = true;
		srv_conn_error(w, c, sub->request_id, rc, "partition %u: %s", sub->partition,
			       rc == -EMSGSIZE ? "an event larger than a frame"
					       : rill_strerror(rc));
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

static int srv_query(struct srv_worker *w, struct srv_conn *c, const struct rill_wire_header *h,
		     const uint8_t *body)
{
	struct rill_wire_query q;
	int rc = rill_wire_query_decode(body, h->body_bytes, &q);
	if (rc < 0) {
		srv_stat_add(&w->stats.bad_frames, 1);
		srv_conn_fatal(w, c, h->request_id, rc, "QUERY: %s", rill_strerror(rc));
		return -EPROTO;
	}
	char name[RILL_WIRE_NAME_BYTES_MAX + 1];
	srv_name(name, q.name, q.name_bytes);
	struct rill_projection_value v;
	struct rill_engine *e = w->server->engine;
	if (q.flags & (RILL_WIRE_QUERY_F_AS_OF_OFFSET | RILL_WIRE_QUERY_F_AS_OF_TIMESTAMP)) {
		bool by_offset = (q.flags & RILL_WIRE_QUERY_F_AS_OF_OFFSET) != 0;
		rc = rill_query_as_of(e, name, q.key, q.key_bytes, by_offset ? q.as_of : UINT64_MAX,
				      by_offset ? 0 : q.as_of, &v);
	} else {
		struct rill_token token = {.partition = q.token_partition,
					   .offset = q.token_offset};
		/* The client's wait, never past the server's: the worker blocks meanwhile. */
		uint64_t wait = w->server->config.query_wait_ns;
		if (q.timeout_ms > 0 && q.timeout_ms * 1000000ull < wait)
			wait = q.timeout_ms * 1000000ull;
		rc = rill_query(e, name, q.key, q.key_bytes,
				(q.flags & RILL_WIRE_QUERY_F_TOKEN) ? &token : NULL, wait, &v);
	}
	if (rc < 0) {
		srv_conn_error(w, c, h->request_id, rc, "projection '%s': %s", name,
			       rc == -ENOENT ? "no such projection, or no value for the key"
					     : rill_strerror(rc));
		return 0;
	}
	uint8_t *dst = srv_conn_tx_reserve(c, RILL_WIRE_HEADER_BYTES + RILL_WIRE_RESULT_BYTES);
	int bytes = rill_wire_result_encode(dst, RILL_WIRE_HEADER_BYTES + RILL_WIRE_RESULT_BYTES,
					    h->request_id, &v);
	RILL_ASSERT(bytes > 0);
	srv_conn_send(w, c, dst, (uint32_t)bytes);
	return 0;
}

static int srv_admin_frame(struct srv_worker *w, struct srv_conn *c,
			   const struct rill_wire_header *h, const uint8_t *body)
{
	struct rill_wire_admin a;
	int rc = rill_wire_admin_decode(body, h->body_bytes, &a);
	if (rc < 0) {
		srv_stat_add(&w->stats.bad_frames, 1);
		srv_conn_fatal(w, c, h->request_id, rc, "ADMIN: %s", rill_strerror(rc));
		return -EPROTO;
	}
	char *answer = NULL;
	char msg[RILL_WIRE_MESSAGE_BYTES_MAX];
	rc = srv_admin(w->server, a.op, a.json, a.json_bytes, &answer, msg, sizeof(msg));
	uint32_t len = answer != NULL ? (uint32_t)strlen(answer) : 0;
	if (rc == 0 && len > w->server->config.frame_bytes_max - RILL_WIRE_ADMIN_OK_BYTES_MIN) {
		rc = -EMSGSIZE;
		snprintf(msg, sizeof(msg), "the answer is larger than a frame");
	}
	if (rc < 0) {
		srv_conn_error(w, c, h->request_id, rc, "%s", msg);
	} else {
		uint32_t size = RILL_WIRE_HEADER_BYTES + RILL_WIRE_ADMIN_OK_BYTES_MIN + len;
		uint8_t *dst = srv_conn_tx_reserve(c, size);
		int bytes = rill_wire_admin_ok_encode(dst, size, h->request_id, answer, len);
		RILL_ASSERT(bytes > 0);
		srv_conn_send(w, c, dst, (uint32_t)bytes);
	}
	free(answer);
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
		if (srv_unsubscribe(c, h->request_id) < 0)
			srv_conn_error(w, c, h->request_id, -ENOENT, "no such subscription");
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
		return srv_query(w, c, h, body);
	case RILL_WIRE_ADMIN:
		return srv_admin_frame(w, c, h, body);
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
