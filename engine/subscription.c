/*
 * Subscriptions (include/rill/rill.h): a consumer reads one partition from any offset. The
 * partition's log may be read only on its owner shard's thread, so the shard runs a log
 * iterator per subscription and copies each durable record, encoded as on disk, into a
 * bounded SPSC ring to the subscriber, at most SUB_BURST_MAX records per subscription per
 * turn; the subscriber decodes in place from the ring. A full ring holds the record read
 * ahead (`held`) until there is room: a slow subscriber stops its own feed, nothing else.
 *
 * Threads: the shard side (shard_subs_*) on the shard's thread; rill_subscribe, _next and
 * _close on the subscriber's. Hot path for both sides.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/assert.h"
#include "base/atomic.h"
#include "base/clock.h"
#include "engine/engine_int.h"

#define SUB_BURST_MAX  64u        /* records per subscription per shard turn */
#define SUB_RING_BYTES (4u << 20) /* each subscription's ring: room for a whole record */
#define SUB_NAP_NS     20000u     /* the subscriber's nap while waiting */

_Static_assert(SUB_RING_BYTES / 2 >= RILL_RECORD_BYTES_MAX + 64u,
	       "a ring reservation takes up to half the ring: the largest record must fit");
/* A reservation is also capped at RILL_RING_RESERVE_BYTES_MAX: a record above what fits
 * with its header ends the subscription (sub_push) rather than abort in the ring. */
#define SUB_RECORD_BYTES_MAX (RILL_RING_RESERVE_BYTES_MAX - sizeof(struct engine_sub_msg))

struct rill_subscription {
	struct rill_engine *engine;
	struct shard *shard;
	uint32_t slot;
	struct rill_ring *ring;       /* consumer: the subscriber */
	bool peeked;                  /* a record is peeked, to be released by the next call */
	int error;                    /* the error that ended it */
	struct rill_producer *notify; /* wakes through its wake_fd, or NULL */
	uint64_t start;               /* where the shard's iterator began */
};

static bool sub_end(struct shard_sub *sub, int error);

/* Put the held record in the ring; false when the ring is full. */
static bool sub_push(struct shard_sub *sub)
{
	uint32_t bytes = rill_record_bytes(sub->rec.key_bytes, sub->rec.payload_bytes);
	if (bytes == 0 || bytes > SUB_RECORD_BYTES_MAX) {
		/* Written by another path with larger limits: say so, and stop. */
		sub->held = false;
		sub->end_error = RILL_E_RECORD_TOO_LARGE;
		return sub_end(sub, sub->end_error);
	}
	uint8_t *dst =
		rill_ring_reserve(sub->ring, (uint32_t)sizeof(struct engine_sub_msg) + bytes);
	if (dst == NULL)
		return false;
	struct engine_sub_msg m = {.offset = sub->rec_offset, .record_bytes = bytes};
	memcpy(dst, &m, sizeof(m));
	int rc = rill_record_encode(dst + sizeof(m), bytes, &sub->rec);
	RILL_ASSERT(rc == (int)bytes); /* a record read from the log encodes again */
	rill_ring_commit(sub->ring, (uint32_t)sizeof(m) + bytes);
	sub->held = false;
	return true;
}

/* Send the error that ends the subscription; false when the ring is full. */
static bool sub_end(struct shard_sub *sub, int error)
{
	uint8_t *dst = rill_ring_reserve(sub->ring, sizeof(struct engine_sub_msg));
	if (dst == NULL)
		return false;
	struct engine_sub_msg m = {.offset = sub->it.offset, .error = error};
	memcpy(dst, &m, sizeof(m));
	rill_ring_commit(sub->ring, sizeof(m));
	sub->ended = true;
	sub->end_error = 0;
	return true;
}

static unsigned sub_feed_burst(struct shard_sub *sub)
{
	unsigned n = 0;
	while (n < SUB_BURST_MAX && !sub->ended) {
		if (sub->end_error != 0) {
			sub_end(sub,
				sub->end_error); /* retried each turn until the ring has room */
			break;
		}
		if (sub->held) {
			if (!sub_push(sub))
				break;
			n++;
			continue;
		}
		if (sub->it.offset >= rill_partition_durable_offset(sub->sp->part)) {
			/* A stopped log's durable part is read to its end before the feed
			 * ends with the log's error: it is all there, and stays. */
			if (sub->sp->error == 0)
				break; /* nothing durable past it yet: no read at all */
			sub->end_error = sub->sp->error;
			continue;
		}
		int rc = rill_log_iter_next(&sub->it, &sub->rec, &sub->rec_offset);
		if (rc == 0)
			break;
		if (rc < 0) {
			sub->end_error = rc;
			continue;
		}
		sub->held = true;
	}
	return n;
}

static unsigned sub_feed(struct shard_sub *sub)
{
	bool ended = sub->ended;
	unsigned n = sub_feed_burst(sub);
	if (n > 0 || sub->ended != ended)
		shard_notify(sub->sleeping, sub->wake_fd); /* once per burst */
	return n;
}

unsigned shard_subs_feed(struct shard *s)
{
	unsigned n = 0;
	if (s->sub_count == 0)
		return 0; /* the common case: no slot to look at */
	for (uint32_t i = 0; i < s->sub_high; i++) {
		if (s->subs[i].attached)
			n += sub_feed(&s->subs[i]);
	}
	return n;
}

/* True if some subscription has something to send and room to send it. */
bool shard_subs_ready(struct shard *s)
{
	if (s->sub_count == 0)
		return false;
	for (uint32_t i = 0; i < s->sub_high; i++) {
		struct shard_sub *sub = &s->subs[i];
		if (!sub->attached || sub->ended)
			continue;
		bool more = sub->held || sub->end_error != 0 ||
			    sub->it.offset < rill_partition_durable_offset(sub->sp->part);
		if (more && rill_ring_count(sub->ring) < sub->ring->slot_count / 2)
			return true;
	}
	return false;
}

int shard_sub_attach(struct shard *s, struct shard_req *r)
{
	struct shard_sub *sub = &s->subs[r->producer_slot];
	RILL_ASSERT(!sub->attached);
	struct shard_part *sp = r->topic->parts[r->partition].sp;
	int rc = rill_log_iter_init(&sub->it, rill_partition_log(sp->part), r->from_offset);
	if (rc < 0)
		return rc;
	r->from_offset = sub->it.offset; /* clamped to what retention kept: the caller's */
	sub->sp = sp;
	sub->ring = r->events;
	sub->sleeping = r->sleeping;
	sub->wake_fd = r->wake_fd;
	sub->held = sub->ended = false;
	sub->attached = true;
	s->sub_count++;
	if (r->producer_slot >= s->sub_high)
		s->sub_high = r->producer_slot + 1;
	return 0;
}

void shard_sub_detach(struct shard *s, uint32_t slot)
{
	struct shard_sub *sub = &s->subs[slot];
	RILL_ASSERT(sub->attached);
	rill_log_iter_fini(&sub->it);
	*sub = (struct shard_sub){0};
	s->sub_count--;
	while (s->sub_high > 0 && !s->subs[s->sub_high - 1].attached)
		s->sub_high--;
}

int rill_subscribe(struct rill_engine *e, struct rill_topic *topic, uint32_t partition,
		   uint64_t from_offset, struct rill_subscription **out)
{
	return rill_subscribe_notify(e, topic, partition, from_offset, NULL, out);
}

/* rill_subscribe_notify, between engine_call_begin and _end. */
static int sub_open(struct rill_engine *e, struct rill_topic *topic, uint32_t partition,
		    uint64_t from_offset, struct rill_producer *notify,
		    struct rill_subscription **out)
{
	struct engine_topic *t = (struct engine_topic *)topic;
	if (t == NULL || partition >= t->config.partitions || out == NULL ||
	    (notify != NULL && notify->wake_fd < 0))
		return -EINVAL;
	struct rill_subscription *sub = calloc(1, sizeof(*sub));
	if (sub == NULL)
		return -ENOMEM;
	int rc = rill_ring_create(&sub->ring, SUB_RING_BYTES / ENGINE_RING_SLOT_BYTES,
				  ENGINE_RING_SLOT_BYTES, RILL_RING_F_VARIABLE);
	if (rc < 0) {
		free(sub);
		return rc;
	}
	sub->engine = e;
	sub->shard = &e->shards[t->parts[partition].shard];
	pthread_mutex_lock(&e->lock);
	uint32_t slot = 0;
	uint8_t *used = e->sub_slots[sub->shard->index];
	uint32_t slots = e->config.subscriptions_per_shard;
	while (slot < slots && used[slot])
		slot++;
	bool closing = e->closing; /* close found none before this one counted: it goes on */
	if (slot < slots && !closing) {
		used[slot] = 1;
		e->subscription_count++;
		if (notify != NULL)
			notify->notified_subs++; /* its close waits for this one's */
	}
	pthread_mutex_unlock(&e->lock);
	if (slot == slots || closing) {
		rill_ring_destroy(sub->ring);
		free(sub);
		return closing ? -ESHUTDOWN : -ENOSPC;
	}
	sub->slot = slot;
	sub->notify = notify;
	struct shard_req req = {.kind = SHARD_REQ_SUB_ATTACH,
				.topic = t,
				.partition = partition,
				.producer_slot = slot,
				.events = sub->ring,
				.from_offset = from_offset,
				.sleeping = notify != NULL ? &notify->sleeping : NULL,
				.wake_fd = notify != NULL ? notify->wake_fd : -1};
	rc = shard_call(sub->shard, &req);
	if (rc < 0) {
		pthread_mutex_lock(&e->lock);
		used[slot] = 0;
		e->subscription_count--;
		if (notify != NULL)
			notify->notified_subs--;
		pthread_mutex_unlock(&e->lock);
		rill_ring_destroy(sub->ring);
		free(sub);
		return rc;
	}
	sub->start = req.from_offset;
	*out = sub;
	return 0;
}

int rill_subscribe_notify(struct rill_engine *e, struct rill_topic *topic, uint32_t partition,
			  uint64_t from_offset, struct rill_producer *notify,
			  struct rill_subscription **out)
{
	int rc = engine_call_begin(e, NULL);
	if (rc < 0)
		return rc;
	rc = sub_open(e, topic, partition, from_offset, notify, out);
	engine_call_end(e);
	return rc;
}

uint64_t rill_subscription_start(const struct rill_subscription *sub)
{
	return sub->start;
}

/* After freeing ring space: a shard asleep with this feed held must hear of it. */
static void sub_wake(struct rill_subscription *sub)
{
	struct shard *s = sub->shard;
	rill_atomic_fence_seq_cst(); /* W1: pairs with W0 in shard_sleep */
	if (rill_atomic_load_relaxed_u64(&s->sleeping) != 0 &&
	    rill_atomic_exchange_acq_rel_u64(&s->sleeping, 0) != 0)
		shard_wake(s);
}

int rill_subscription_next(struct rill_subscription *sub, struct rill_record *event,
			   uint64_t *offset, uint64_t wait_ns)
{
	if (sub->peeked) {
		rill_ring_release(sub->ring);
		sub->peeked = false;
		sub_wake(sub);
	}
	if (sub->error != 0)
		return sub->error;
	uint64_t now = rill_clock_now_ns();
	uint64_t deadline = wait_ns > UINT64_MAX - now ? UINT64_MAX : now + wait_ns;
	for (;;) {
		uint32_t bytes;
		const uint8_t *msg = rill_ring_peek(sub->ring, &bytes);
		if (msg != NULL) {
			struct engine_sub_msg m;
			RILL_ASSERT(bytes >= sizeof(m));
			memcpy(&m, msg, sizeof(m));
			RILL_ASSERT(bytes == sizeof(m) + m.record_bytes); /* paired with sub_push */
			if (m.error != 0) {
				rill_ring_release(sub->ring);
				sub->error = m.error;
				return m.error;
			}
			int rc = rill_record_decode(msg + sizeof(m), m.record_bytes, event,
						    RILL_RECORD_F_TRUSTED_CRC);
			RILL_ASSERT(rc == (int)m.record_bytes); /* the shard encoded it */
			*offset = m.offset;
			sub->peeked = true;
			return 1;
		}
		if (wait_ns == 0 || rill_clock_now_ns() >= deadline)
			return 0;
		struct timespec nap = {.tv_sec = 0, .tv_nsec = SUB_NAP_NS};
		nanosleep(&nap, NULL);
	}
}

bool rill_subscription_ready(struct rill_subscription *sub)
{
	if (sub->peeked) {
		rill_ring_release(sub->ring);
		sub->peeked = false;
		sub_wake(sub);
	}
	if (sub->error != 0)
		return true;
	uint32_t bytes;
	if (rill_ring_peek(sub->ring, &bytes) == NULL)
		return false;
	rill_ring_unpeek(sub->ring); /* a look only: rill_subscription_next takes it */
	return true;
}

int rill_subscription_close(struct rill_subscription *sub)
{
	if (sub == NULL)
		return 0;
	if (shard_self != NULL)
		return -EDEADLK; /* the detach waits for the shard */
	struct rill_engine *e = sub->engine;
	struct shard_req req = {.kind = SHARD_REQ_SUB_DETACH, .producer_slot = sub->slot};
	int rc = shard_call(sub->shard, &req);
	RILL_ASSERT(rc == 0);
	pthread_mutex_lock(&e->lock);
	e->sub_slots[sub->shard->index][sub->slot] = 0;
	e->subscription_count--;
	if (sub->notify != NULL)
		sub->notify->notified_subs--;
	pthread_mutex_unlock(&e->lock);
	rill_ring_destroy(sub->ring);
	free(sub);
	return 0;
}
