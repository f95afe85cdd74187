/*
 * Producer handles: how a host thread publishes into the engine. Each handle owns, per
 * shard, an events ring (this thread → the shard) and an acks ring (the shard → this
 * thread), both SPSC and bounded. rill_publish encodes the event once, in place, into the
 * ring of the shard that owns its partition; rill_producer_poll reads acknowledgements
 * and runs the callback. Hot path (publish and poll); runs on the handle's thread only,
 * except open and close, which also talk to the shards through their mailboxes.
 *
 * Back-pressure: a full events ring makes rill_publish return -EAGAIN (counted); the shard
 * leaves events in the ring while the acks ring lacks room for their acknowledgements, so a
 * producer that stops polling is stopped in turn, and nothing is ever dropped.
 *
 * Nested polls. A callback may poll or flush its own handle (rill_ack_fn): to wait for
 * room after rill_publish's -EAGAIN, or for what it published. Delivering from there would
 * run the next callback inside this one, one level deeper per acknowledgement waiting
 * (tens of thousands in a large acks ring: the stack overflows). So callbacks never nest:
 *   N1. While a callback of the handle runs (in_on_ack > 0), a poll or flush of the handle
 *       runs no callback. It moves what waits in the acks rings to the handle's held
 *       FIFO, which frees the rings: the shards, which take an event only with room for
 *       its acknowledgements (shard.c, I1), go on taking events, so a publish that met a
 *       full ring succeeds once retried. Without the move, a callback that polls until its
 *       publish succeeds would wait for ever on a shard waiting for its poll.
 *   N2. Held acknowledgements are older than those still in the rings (each was taken
 *       from a ring's head), so the poll running the callbacks delivers every held one
 *       before the next one of a ring: each shard's acknowledgements keep their order.
 *   N3. Nothing is held when no callback of the handle runs: the outer poll delivers what
 *       its callbacks' nested calls held before it returns.
 *   N4. held grows (realloc) only as nested calls fill it, up to the acknowledgements in
 *       flight: while a callback waits for room it publishes nothing, so it can hold no
 *       more than the rings held and the events in the events rings cause. A handle whose
 *       callbacks never poll it never allocates it; close frees it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/atomic.h"
#include "base/clock.h"
#include "engine/engine_int.h"

#define PRODUCER_IDLE_SLEEP_NS  20000u      /* poll with a wait: nap between looks */
#define PRODUCER_HELD_BYTES_MIN (64u << 10) /* held's first allocation (N4) */
/*
 * Handles: a server on every shard (one each) beside the DPDK ingress on every shard (one
 * per RX queue) must fit, with some left for the host. A handle costs two rings per shard:
 * a page of each is touched at open (some 512 KiB resident on 64 shards, whatever the
 * ring size) and each is a mapping of its own (rill_ring_create), which the kernel
 * usually merges with its neighbours; were none merged, all of them open would take
 * 2 x 64 x 256 = 32,768, half of Linux's default vm.max_map_count (65,530), the other half
 * left to the engine's files and the host.
 */
_Static_assert(RILL_ENGINE_PRODUCERS_MAX >= 2u * RILL_ENGINE_SHARDS_MAX + 64u,
	       "a server and DPDK on every shard, and handles of the host's");
_Static_assert(2u * RILL_ENGINE_SHARDS_MAX * RILL_ENGINE_PRODUCERS_MAX <= 32768u,
	       "every ring of every handle unmerged: half the default vm.max_map_count");
/* Key and payload of the largest record, which rill_publish checks (rill_record_bytes). */
#define PRODUCER_EVENT_BYTES_MAX (RILL_RECORD_BYTES_MAX - RILL_RECORD_HEADER_BYTES)
_Static_assert(PRODUCER_EVENT_BYTES_MAX == RILL_PAYLOAD_BYTES_MAX,
	       "an event without a key may be as large as a payload may");

/*
 * After a store the shard may be waiting for (an event committed, ack ring space freed):
 * wake it if it sleeps. W1: the fence pairs with W0 in shard_sleep.
 */
static void producer_wake(struct rill_engine *e, struct shard *s)
{
	if (e->config.poll != RILL_POLL_ADAPTIVE)
		return; /* busy shards never sleep */
	rill_atomic_fence_seq_cst();
	if (rill_atomic_load_relaxed_u64(&s->sleeping) != 0 &&
	    rill_atomic_exchange_acq_rel_u64(&s->sleeping, 0) != 0)
		shard_wake(s);
}

/* rill_producer_open, between engine_call_begin and _end. */
static int producer_open(struct rill_engine *e, const struct rill_producer_config *config,
			 struct rill_producer **out)
{
	struct rill_producer *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->engine = e;
	if (config != NULL)
		p->config = *config;
	int rc = 0;
	p->wake_fd = -1;
	if (p->config.wake_fd) {
		p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->wake_fd < 0)
			rc = -errno;
	}
	for (uint32_t i = 0; i < e->shard_count && rc == 0; i++) {
		rc = rill_ring_create(&p->events[i], e->config.ring_bytes / ENGINE_RING_SLOT_BYTES,
				      ENGINE_RING_SLOT_BYTES, RILL_RING_F_VARIABLE);
		if (rc == 0)
			rc = rill_ring_create(&p->acks[i],
					      e->config.ack_ring_bytes / ENGINE_RING_SLOT_BYTES,
					      ENGINE_RING_SLOT_BYTES, RILL_RING_F_VARIABLE);
	}
	if (rc < 0)
		goto out_free;
	pthread_mutex_lock(&e->lock);
	if (e->closing) {
		/* rill_engine_close found no producer before this one counted: it goes on. */
		pthread_mutex_unlock(&e->lock);
		rc = -ESHUTDOWN;
		goto out_free;
	}
	uint32_t slot = 0;
	while (slot < RILL_ENGINE_PRODUCERS_MAX && e->producers[slot] != NULL)
		slot++;
	if (slot == RILL_ENGINE_PRODUCERS_MAX) {
		pthread_mutex_unlock(&e->lock);
		rc = -ENOSPC;
		goto out_free;
	}
	e->producers[slot] = p;
	e->producer_count++;
	pthread_mutex_unlock(&e->lock);
	p->slot = slot;
	for (uint32_t i = 0; i < e->shard_count; i++) {
		struct shard_req req = {.kind = SHARD_REQ_PRODUCER_ATTACH,
					.producer_slot = slot,
					.events = p->events[i],
					.acks = p->acks[i],
					.sleeping = p->wake_fd >= 0 ? &p->sleeping : NULL,
					.wake_fd = p->wake_fd};
		rc = shard_call(&e->shards[i], &req);
		RILL_ASSERT(rc == 0);
	}
	*out = p;
	return 0;
out_free:
	for (uint32_t i = 0; i < e->shard_count; i++) {
		rill_ring_destroy(p->events[i]);
		rill_ring_destroy(p->acks[i]);
	}
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	free(p);
	return rc;
}

int rill_producer_open(struct rill_engine *e, const struct rill_producer_config *config,
		       struct rill_producer **out)
{
	int rc = engine_call_begin(e, NULL);
	if (rc < 0)
		return rc;
	rc = producer_open(e, config, out);
	engine_call_end(e);
	return rc;
}

uint32_t rill_topic_partition(const struct rill_topic *topic, const void *key, size_t key_bytes)
{
	const struct engine_topic *t = (const struct engine_topic *)topic;
	return (uint32_t)(rill_key_hash(key, key_bytes) % t->config.partitions);
}

int rill_publish(struct rill_producer *p, struct rill_topic *topic, const struct rill_event *ev,
		 enum rill_acks acks, uint64_t cookie)
{
	struct engine_topic *t = (struct engine_topic *)topic;
	if (rill_unlikely(t == NULL || ev == NULL))
		return -EINVAL;
	if (rill_unlikely(ev->key_bytes > RILL_KEY_BYTES_MAX ||
			  ev->payload_bytes > RILL_PAYLOAD_BYTES_MAX || (unsigned)acks > 2 ||
			  (ev->key_bytes > 0 && ev->key == NULL) ||
			  (ev->payload_bytes > 0 && ev->payload == NULL)))
		return -EINVAL;
	uint32_t partition = rill_topic_partition(topic, ev->key, ev->key_bytes);
	uint32_t shard = t->parts[partition].shard;
	uint64_t producer_id = ev->producer_id != 0 ? ev->producer_id : p->config.producer_id;
	struct rill_ring *ring = p->events[shard];
	if (rill_unlikely(rill_record_bytes(ev->key_bytes, ev->payload_bytes) == 0))
		return -EINVAL; /* key and payload together past RILL_RECORD_BYTES_MAX */
	uint64_t bytes = sizeof(struct engine_event_msg) + ev->key_bytes + ev->payload_bytes;
	if (rill_unlikely(bytes > rill_ring_reserve_bytes_max(ring)))
		return -EMSGSIZE; /* the ring is smaller than this event: config.ring_bytes */
	struct engine_event_msg m = {
		.ingress_ns = ev->ingress_ns != 0 ? ev->ingress_ns : rill_clock_now_ns(),
		.cookie = cookie,
		.timestamp_ns = ev->timestamp_ns != 0 ? ev->timestamp_ns : rill_clock_wall_ns(),
		.producer_id = producer_id,
		.sequence = producer_id != 0 ? ev->sequence : 0,
		.correlation_id = ev->correlation_id,
		.causation_id = ev->causation_id,
		.topic_index = t->index,
		.partition = partition,
		.type_id = ev->type_id,
		.payload_bytes = ev->payload_bytes,
		.version = ev->version,
		.key_bytes = (uint16_t)ev->key_bytes,
		.acks = (uint8_t)acks};
	struct shard *s = &p->engine->shards[shard];
	/*
	 * On the owner shard's own thread (a hook: the server's worker, DPDK) with nothing of
	 * ours waiting in the ring, the shard takes the event now: no copy into the ring and
	 * out again, no wake-up. Otherwise, or when the shard must stall it, the ring.
	 */
	if (shard_self == s && rill_ring_count(ring) == 0 &&
	    shard_take_local(s, p->slot, &m, ev->key, ev->payload)) {
		p->acks_owed += (uint64_t)acks;
		p->published++;
		return 0;
	}
	uint8_t *dst = rill_ring_reserve(ring, (uint32_t)bytes);
	if (dst == NULL) {
		rill_atomic_fetch_add_relaxed_u64(&p->engine->backpressure, 1); /* a counter */
		/* A full ring: its shard must run, whatever the caller does next (wake_batched). */
		rill_producer_wake(p);
		return -EAGAIN;
	}
	memcpy(dst, &m, sizeof(m));
	if (ev->key_bytes > 0)
		memcpy(dst + sizeof(m), ev->key, ev->key_bytes);
	if (ev->payload_bytes > 0)
		memcpy(dst + sizeof(m) + ev->key_bytes, ev->payload, ev->payload_bytes);
	rill_ring_commit(ring, (uint32_t)bytes);
	p->acks_owed += (uint64_t)acks; /* applied: one; durable: applied, then durable */
	p->published++;
	if (p->config.wake_batched)
		p->wake_owed |= 1ull << shard; /* rill_producer_wake */
	else
		producer_wake(p->engine, &p->engine->shards[shard]);
	return 0;
}

void rill_producer_wake(struct rill_producer *p)
{
	for (uint64_t owed = p->wake_owed; owed != 0; owed &= owed - 1)
		producer_wake(p->engine, &p->engine->shards[__builtin_ctzll(owed)]);
	p->wake_owed = 0;
}

/* An acknowledgement copied out of its ring message, with its reason NUL-terminated. */
struct producer_ack {
	struct engine_ack_msg m;
	char reason[ENGINE_REASON_BYTES_MAX + 1];
};

/* Copy the ring message @msg of @bytes (an acks ring's, or held's) into @a. */
static void producer_ack_read(struct producer_ack *a, const uint8_t *msg, uint32_t bytes)
{
	RILL_ASSERT(bytes >= sizeof(a->m));
	memcpy(&a->m, msg, sizeof(a->m));
	RILL_ASSERT(bytes == sizeof(a->m) + a->m.reason_bytes); /* paired with shard_ack_send */
	RILL_ASSERT(a->m.reason_bytes <= ENGINE_REASON_BYTES_MAX);
	memcpy(a->reason, msg + sizeof(a->m), a->m.reason_bytes);
	a->reason[a->m.reason_bytes] = '\0';
}

/* Settle @a and run the callback for it. Returns the deliveries it counts for. */
static int producer_deliver(struct rill_producer *p, const struct producer_ack *a)
{
	const struct engine_ack_msg *m = &a->m;
	RILL_ASSERT(p->acks_owed >= m->settles);
	p->acks_owed -= m->settles;
	/* Applied and durable at once (shard.c): two callbacks, two delivered. */
	bool pair = m->settles == 2 && m->error == 0;
	RILL_DASSERT(!pair || m->level == RILL_ACKS_DURABLE);
	if (p->config.on_ack != NULL) {
		struct rill_ack ack = {.cookie = m->cookie,
				       .level = (enum rill_acks)m->level,
				       .error = m->error,
				       .reason = a->reason,
				       .token = {.partition = m->partition, .offset = m->offset},
				       .duplicate = m->duplicate != 0,
				       .event_count = m->event_count,
				       .ingress_ns = m->ingress_ns,
				       .done_ns = m->done_ns,
				       .lost = m->lost != 0};
		/* rill_producer_close refuses meanwhile; a poll or flush nests (N1). */
		p->in_on_ack++;
		if (pair) {
			ack.level = RILL_ACKS_APPLIED;
			p->config.on_ack(p->config.arg, &ack);
			ack.level = RILL_ACKS_DURABLE;
		}
		p->config.on_ack(p->config.arg, &ack);
		p->in_on_ack--;
	}
	return pair ? 2 : 1;
}

/* Take the oldest held acknowledgement into @a: false when none is held. */
static bool producer_held_take(struct rill_producer *p, struct producer_ack *a)
{
	if (p->held_head == p->held_tail)
		return false;
	const uint8_t *msg = p->held + p->held_head;
	struct engine_ack_msg m;
	RILL_ASSERT(p->held_tail - p->held_head >= sizeof(m));
	memcpy(&m, msg, sizeof(m));
	uint32_t bytes = (uint32_t)sizeof(m) + m.reason_bytes;
	RILL_ASSERT(p->held_tail - p->held_head >= bytes);
	/* Copied out before the callback runs: its nested calls may move or grow held. */
	producer_ack_read(a, msg, bytes);
	p->held_head += bytes;
	if (p->held_head == p->held_tail)
		p->held_head = p->held_tail = 0;
	RILL_ASSERT(p->held_settles >= m.settles);
	p->held_settles -= m.settles;
	return true;
}

/* Room for @bytes more at held's tail (N4): false when memory ran out. */
static bool producer_held_room(struct rill_producer *p, size_t bytes)
{
	if (p->held_cap - p->held_tail >= bytes)
		return true;
	if (p->held_head > 0) { /* the delivered front goes first */
		memmove(p->held, p->held + p->held_head, p->held_tail - p->held_head);
		p->held_tail -= p->held_head;
		p->held_head = 0;
		if (p->held_cap - p->held_tail >= bytes)
			return true;
	}
	size_t cap = p->held_cap > 0 ? p->held_cap : PRODUCER_HELD_BYTES_MIN;
	while (cap - p->held_tail < bytes)
		cap *= 2;
	uint8_t *held = realloc(p->held, cap);
	if (held == NULL)
		return false;
	p->held = held;
	p->held_cap = cap;
	return true;
}

/* N1: move every acknowledgement waiting in the acks ring of @shard to held, in order.
 * Returns how many moved. */
static int producer_hold(struct rill_producer *p, uint32_t shard)
{
	struct rill_ring *ring = p->acks[shard];
	int n = 0;
	for (;;) {
		uint32_t bytes;
		const uint8_t *msg = rill_ring_peek(ring, &bytes);
		if (msg == NULL)
			break;
		if (!producer_held_room(p, bytes)) {
			/* Out of memory: it waits in the ring, as for a handle nobody polls. */
			rill_ring_unpeek(ring);
			break;
		}
		struct engine_ack_msg m;
		RILL_ASSERT(bytes >= sizeof(m));
		memcpy(&m, msg, sizeof(m));
		RILL_ASSERT(bytes == sizeof(m) + m.reason_bytes); /* paired with shard_ack_send */
		memcpy(p->held + p->held_tail, msg, bytes);
		p->held_tail += bytes;
		p->held_settles += m.settles;
		rill_ring_release(ring);
		n++;
	}
	return n;
}

/* Deliver every acknowledgement waiting in the acks ring of @shard, and before each, every
 * held one (N2): its callbacks' nested calls may hold more meanwhile. */
static int producer_drain(struct rill_producer *p, uint32_t shard)
{
	struct rill_ring *ring = p->acks[shard];
	struct producer_ack a;
	int n = 0;
	for (;;) {
		if (producer_held_take(p, &a)) {
			n += producer_deliver(p, &a);
			continue;
		}
		uint32_t bytes;
		const uint8_t *msg = rill_ring_peek(ring, &bytes);
		if (msg == NULL)
			break;
		producer_ack_read(&a, msg, bytes);
		rill_ring_release(ring);
		n += producer_deliver(p, &a);
	}
	return n;
}

static void producer_nap(void)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = PRODUCER_IDLE_SLEEP_NS};
	nanosleep(&ts, NULL);
}

int rill_producer_poll(struct rill_producer *p, uint64_t wait_ns)
{
	/* No clock for a look without a wait: event loops call this every turn. */
	uint64_t now = wait_ns > 0 ? rill_clock_now_ns() : 0;
	uint64_t deadline = wait_ns > UINT64_MAX - now ? UINT64_MAX : now + wait_ns;
	bool nested = p->in_on_ack > 0; /* inside a callback of this handle: N1 */
	rill_producer_wake(p);          /* acknowledgements come only for events the shards see */
	for (;;) {
		int n = 0;
		for (uint32_t i = 0; i < p->engine->shard_count; i++) {
			int got = nested ? producer_hold(p, i) : producer_drain(p, i);
			if (got > 0) /* room in its acks ring: a shard may wait for it */
				producer_wake(p->engine, &p->engine->shards[i]);
			n += got;
		}
		RILL_ASSERT(nested || p->held_head == p->held_tail); /* N3 */
		if (n > 0 || wait_ns == 0 || rill_clock_now_ns() >= deadline)
			return nested ? 0 : n; /* held ones are delivered by the outer poll */
		producer_nap();
	}
}

uint64_t rill_producer_acks_owed(const struct rill_producer *p)
{
	return p->acks_owed;
}

/* True once every event put in a ring has been taken out of it (processed). */
static bool producer_rings_empty(const struct rill_producer *p)
{
	for (uint32_t i = 0; i < p->engine->shard_count; i++) {
		if (rill_ring_count(p->events[i]) > 0)
			return false;
	}
	return true;
}

int rill_producer_flush(struct rill_producer *p, uint64_t timeout_ns)
{
	if (shard_self != NULL)
		return -EDEADLK; /* its shard cannot take the events while it waits here */
	uint64_t deadline = rill_clock_now_ns() + timeout_ns;
	if (deadline < timeout_ns)
		deadline = UINT64_MAX;
	for (;;) {
		/* Rings first: a shard sends an event's refusal before releasing it. The poll
		 * runs callbacks, which may publish: an event of RILL_ACKS_NONE owes nothing,
		 * so only the count of events published says the rings were not empty after
		 * all. Done after a pass that started empty, owed nothing but what is held and
		 * published nothing. Held acknowledgements (a flush inside a callback of the
		 * handle, N1) are the outer poll's to deliver, after this callback returns:
		 * waiting for them here would never end. */
		bool empty = producer_rings_empty(p);
		uint64_t published = p->published;
		rill_producer_poll(p, 0);
		if (empty && p->acks_owed == p->held_settles && p->published == published)
			return p->held_head == p->held_tail ? 0 : -EINPROGRESS;
		if (rill_clock_now_ns() >= deadline)
			return -ETIMEDOUT;
		producer_nap();
	}
}

uint32_t rill_producer_event_bytes_max(const struct rill_producer *p)
{
	/* Every ring of the handle has the size config.ring_bytes gave it. From 4 MiB on, its
	 * reservation limit is past the record's, which rill_publish refuses (-EINVAL). */
	uint64_t room = rill_ring_reserve_bytes_max(p->events[0]);
	uint64_t header = sizeof(struct engine_event_msg);
	uint64_t max = room > header ? room - header : 0;
	return max < PRODUCER_EVENT_BYTES_MAX ? (uint32_t)max : PRODUCER_EVENT_BYTES_MAX;
}

int rill_producer_close(struct rill_producer *p)
{
	if (p == NULL)
		return 0;
	if (shard_self != NULL)
		return -EDEADLK; /* it flushes and detaches: waits for the shards */
	if (p->in_on_ack > 0)
		return -EBUSY; /* the loop delivering it goes on reading p and its rings */
	struct rill_engine *e = p->engine;
	pthread_mutex_lock(&e->lock);
	uint32_t notified = p->notified_subs;
	pthread_mutex_unlock(&e->lock);
	if (notified != 0)
		return -EBUSY; /* their shards would signal a closed (maybe reused) fd */
	int rc = rill_producer_flush(p, UINT64_MAX);
	for (uint32_t i = 0; i < e->shard_count; i++) {
		struct shard_req req = {.kind = SHARD_REQ_PRODUCER_DETACH,
					.producer_slot = p->slot};
		int drc = shard_call(&e->shards[i], &req);
		RILL_ASSERT(drc == 0);
		rill_ring_destroy(p->events[i]);
		rill_ring_destroy(p->acks[i]);
	}
	pthread_mutex_lock(&e->lock);
	e->producers[p->slot] = NULL;
	e->producer_count--;
	pthread_mutex_unlock(&e->lock);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	RILL_ASSERT(p->held_head == p->held_tail); /* N3: no callback runs */
	free(p->held);
	free(p);
	return rc;
}

int rill_producer_wake_fd(const struct rill_producer *p)
{
	return p->wake_fd;
}

bool rill_producer_sleep_begin(struct rill_producer *p)
{
	rill_producer_wake(p); /* before sleeping, or a shard may sleep on our events */
	if (p->wake_fd < 0)
		return true;
	rill_atomic_store_relaxed_u64(&p->sleeping, 1);
	rill_atomic_fence_seq_cst(); /* P0: pairs with P1 in shard_notify (shard_ack_wake) */
	for (uint32_t i = 0; i < p->engine->shard_count; i++) {
		if (rill_ring_count(p->acks[i]) > 0) {
			rill_atomic_store_relaxed_u64(&p->sleeping, 0);
			return false;
		}
	}
	return true;
}

void rill_producer_sleep_end(struct rill_producer *p)
{
	/* Relaxed: a shard that still sees 1 only writes the eventfd once more. */
	rill_atomic_store_relaxed_u64(&p->sleeping, 0);
}
