/*
 * UDP ingress (io/udp_ingress.h): datagram payloads to events, with per-source sequence
 * accounting and, on demand, durable acknowledgements per source. Runs on one receiving
 * thread (a DPDK poll loop, or a kernel socket reader); hot path: rill_udp_ingress_datagram.
 *
 * Sources (a source is an address and port that sent to us) live in a fixed array of
 * RILL_UDP_SOURCES_MAX, found through an open-addressed table of their indexes (linear
 * probing, deletion by backward shift). An index stays the source's while it is tracked:
 * ACK cookies, the due list and the worst list hold it, so a table entry may move but a
 * source never does. A full array forgets (evicts) sources silent for
 * RILL_UDP_SOURCE_IDLE_NS with nothing in flight and no ACK due (U3); a sweep over the
 * array finds them, at most once per UDP_SWEEP_NS, so a flood of new addresses costs one
 * pass a second. With acknowledgements on, each source keeps a window of RILL_UDP_WINDOW
 * datagrams past its durable point, indexed by sequence modulo the window:
 *
 *    durable_contig   durable_contig + 1 ............ durable_contig + WINDOW
 *         |           [ slot: events still owed, 0 = all durable or not received ]
 *
 * U1. Every sequence <= durable_contig is durable (or refused for good: it will never
 *     be; a producer-sequence gap is not for good, so it holds the window too). An
 *     event lost to its partition's failed log is neither: its datagram holds the
 *     window, so no ACK ever covers it (the sender keeps it, and keeps retrying).
 * U2. A datagram is published only when its sequence is inside the window and not
 *     already there; the rest are dropped (a retransmission will bring them).
 * U3. A source is evicted only with no event of its window owed by the shards and no ACK
 *     due: no acknowledgement from the shards can still name its index. Durable
 *     datagrams past a hole keep it for longer (RILL_UDP_SOURCE_HOLE_IDLE_NS), not for
 *     good: a sender that lost one and left would hold its slot forever.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "io/udp_ingress.h"
#include "io/wire.h"

#define UDP_TABLE_SLOTS (2 * RILL_UDP_SOURCES_MAX) /* load at most one half */
#define UDP_SWEEP_NS    (1000ull * 1000 * 1000)    /* sweeps for idle sources: at most 1/s */

_Static_assert((UDP_TABLE_SLOTS & (UDP_TABLE_SLOTS - 1)) == 0, "the table is a power of two");
_Static_assert((RILL_UDP_WINDOW & (RILL_UDP_WINDOW - 1)) == 0, "the window is a power of two");

struct udp_source {
	uint64_t key;              /* (ip << 16 | port) + 1; 0: not tracked */
	uint64_t last_ns;          /* its latest datagram's ingress time */
	struct rill_udp_peer peer; /* as it last sent: where its ACKs go */
	bool ack_due;
	uint64_t highest; /* the highest sequence seen; 0: none */
	uint64_t datagrams, gaps, reordered;
	uint64_t durable_contig; /* U1 */
	uint32_t owed[RILL_UDP_WINDOW];
	bool present[RILL_UDP_WINDOW];
	bool partial[RILL_UDP_WINDOW]; /* only some of its events went: a retry must come */
};

struct rill_udp_ingress {
	struct rill_engine *engine;
	struct rill_producer *producer;
	bool acks;
	struct rill_udp_stats stats;
	struct udp_source *sources; /* [RILL_UDP_SOURCES_MAX] */
	uint32_t *table;            /* [UDP_TABLE_SLOTS]: a source's index + 1; 0: empty */
	uint32_t *free;             /* [RILL_UDP_SOURCES_MAX]: indexes not tracking a source */
	uint32_t free_count;
	uint32_t source_count;
	uint64_t sweep_ns; /* no sweep for idle sources before this */
	uint32_t *due;     /* sources with an ACK due: indexes into sources */
	uint32_t due_count;
	uint32_t worst[RILL_UDP_WORST_MAX]; /* indexes into sources: most gaps + reordered first */
	uint32_t worst_count;
	char topic_name[RILL_WIRE_TOPIC_BYTES_MAX + 1]; /* the last topic looked up */
	struct rill_topic *topic;
};

static void udp_ack_cb(void *arg, const struct rill_ack *ack);

int rill_udp_ingress_create(struct rill_udp_ingress **out, struct rill_engine *engine, bool acks)
{
	struct rill_udp_ingress *ing = calloc(1, sizeof(*ing));
	if (ing == NULL)
		return -ENOMEM;
	ing->engine = engine;
	ing->acks = acks;
	ing->sources = calloc(RILL_UDP_SOURCES_MAX, sizeof(*ing->sources));
	ing->table = calloc(UDP_TABLE_SLOTS, sizeof(*ing->table));
	ing->free = calloc(RILL_UDP_SOURCES_MAX, sizeof(*ing->free));
	ing->due = calloc(RILL_UDP_SOURCES_MAX, sizeof(*ing->due));
	/* wake_batched: udp_publish wakes the shards once per datagram, not once per event. */
	struct rill_producer_config pc = {
		.on_ack = udp_ack_cb, .arg = ing, .wake_fd = true, .wake_batched = true};
	int rc = ing->sources == NULL || ing->table == NULL || ing->free == NULL || ing->due == NULL
			 ? -ENOMEM
			 : rill_producer_open(engine, &pc, &ing->producer);
	if (rc < 0) {
		free(ing->sources);
		free(ing->table);
		free(ing->free);
		free(ing->due);
		free(ing);
		return rc;
	}
	for (uint32_t i = 0; i < RILL_UDP_SOURCES_MAX; i++) /* index 0 is taken first */
		ing->free[i] = RILL_UDP_SOURCES_MAX - 1 - i;
	ing->free_count = RILL_UDP_SOURCES_MAX;
	*out = ing;
	return 0;
}

void rill_udp_ingress_destroy(struct rill_udp_ingress *ing)
{
	if (ing == NULL)
		return;
	rill_producer_close(ing->producer);
	free(ing->sources);
	free(ing->table);
	free(ing->free);
	free(ing->due);
	free(ing);
}

struct rill_producer *rill_udp_ingress_producer(struct rill_udp_ingress *ing)
{
	return ing->producer;
}

static uint32_t udp_hash(uint64_t key)
{
	/* A multiplicative mix (Fibonacci hashing): keys are addresses and ports, not
	 * adversarial-resistant needs, and the table is bounded whatever they are. */
	return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 40) & (UDP_TABLE_SLOTS - 1);
}

/* @key's table slot, or the empty slot where it would go (the table is never full). */
static uint32_t udp_slot(const struct rill_udp_ingress *ing, uint64_t key)
{
	uint32_t i = udp_hash(key);
	while (ing->table[i] != 0 && ing->sources[ing->table[i] - 1].key != key)
		i = (i + 1) & (UDP_TABLE_SLOTS - 1);
	return i;
}

/* Take the entry at table slot @i out: backward shift, so that every entry after it stays
 * reachable from its home slot with no tombstones. */
static void udp_slot_clear(struct rill_udp_ingress *ing, uint32_t i)
{
	for (uint32_t j = i;;) {
		j = (j + 1) & (UDP_TABLE_SLOTS - 1);
		if (ing->table[j] == 0)
			break;
		uint32_t home = udp_hash(ing->sources[ing->table[j] - 1].key);
		/* The entry at j stays where it is when its home lies cyclically in (i, j]. */
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (!stays) {
			ing->table[i] = ing->table[j];
			i = j;
		}
	}
	ing->table[i] = 0;
}

static void udp_worst_remove(struct rill_udp_ingress *ing, uint32_t index)
{
	for (uint32_t at = 0; at < ing->worst_count; at++) {
		if (ing->worst[at] != index)
			continue;
		memmove(&ing->worst[at], &ing->worst[at + 1],
			(ing->worst_count - at - 1) * sizeof(ing->worst[0]));
		ing->worst_count--;
		return;
	}
}

static uint64_t udp_trouble(const struct udp_source *s);
static void udp_worst_update(struct rill_udp_ingress *ing, uint32_t index);

/* True if @s may be forgotten at @now_ns (U3): silent long enough, no ACK due, no event of
 * its window owed by the shards; with durable datagrams past a hole, silent for longer. */
static bool udp_forgettable(const struct udp_source *s, uint64_t now_ns)
{
	if (s->key == 0 || s->ack_due || s->last_ns > now_ns)
		return false;
	uint64_t idle = now_ns - s->last_ns;
	if (idle < RILL_UDP_SOURCE_IDLE_NS)
		return false;
	bool holds = false;
	for (uint32_t slot = 0; slot < RILL_UDP_WINDOW; slot++) {
		if (s->owed[slot] != 0)
			return false; /* the shards will name its index */
		holds |= s->present[slot];
	}
	return !holds || idle >= RILL_UDP_SOURCE_HOLE_IDLE_NS;
}

/* Every source udp_forgettable at @now_ns is forgotten; at most one sweep per
 * UDP_SWEEP_NS. */
static void udp_sweep(struct rill_udp_ingress *ing, uint64_t now_ns)
{
	if (now_ns < ing->sweep_ns)
		return;
	ing->sweep_ns = now_ns + UDP_SWEEP_NS;
	uint32_t listed = ing->worst_count;
	for (uint32_t index = 0; index < RILL_UDP_SOURCES_MAX; index++) {
		struct udp_source *s = &ing->sources[index];
		if (!udp_forgettable(s, now_ns))
			continue;
		uint32_t slot = udp_slot(ing, s->key);
		RILL_ASSERT(ing->table[slot] == index + 1);
		udp_slot_clear(ing, slot);
		udp_worst_remove(ing, index);
		s->key = 0;
		ing->free[ing->free_count++] = index;
		ing->source_count--;
		ing->stats.evicted++;
	}
	ing->stats.sources = ing->source_count;
	/* Listed sources went: the worst of those kept, never listed or pushed out before,
	 * take their places (udp_worst_update lists a source only as its figures change). */
	if (ing->worst_count < listed) {
		for (uint32_t index = 0; index < RILL_UDP_SOURCES_MAX; index++)
			if (ing->sources[index].key != 0 && udp_trouble(&ing->sources[index]) > 0)
				udp_worst_update(ing, index);
	}
}

/* The source from @ip and @port, made if new and @make (at @now_ns) when there is room or
 * a sweep makes some; NULL otherwise. */
static struct udp_source *udp_source(struct rill_udp_ingress *ing, uint32_t ip, uint16_t port,
				     bool make, uint64_t now_ns, uint32_t *index)
{
	uint64_t key = (((uint64_t)ip << 16) | port) + 1;
	uint32_t slot = udp_slot(ing, key);
	if (ing->table[slot] != 0) {
		*index = ing->table[slot] - 1;
		return &ing->sources[*index];
	}
	if (!make)
		return NULL;
	if (ing->free_count == 0) {
		udp_sweep(ing, now_ns);
		if (ing->free_count == 0)
			return NULL;
		slot = udp_slot(ing, key); /* the sweep moved entries */
	}
	*index = ing->free[--ing->free_count];
	ing->table[slot] = *index + 1;
	ing->sources[*index] = (struct udp_source){.key = key, .last_ns = now_ns};
	ing->source_count++;
	ing->stats.sources = ing->source_count;
	return &ing->sources[*index];
}

static uint64_t udp_trouble(const struct udp_source *s)
{
	return rill_udp_trouble(s->gaps, s->reordered);
}

/* The source at @index has more trouble than before: place it in the worst list, which
 * stays sorted (most first; ties in the order they got there). */
static void udp_worst_update(struct rill_udp_ingress *ing, uint32_t index)
{
	uint32_t at = 0;
	while (at < ing->worst_count && ing->worst[at] != index)
		at++;
	if (at == ing->worst_count) { /* not listed yet */
		if (ing->worst_count < RILL_UDP_WORST_MAX)
			ing->worst_count++;
		else if (udp_trouble(&ing->sources[index]) <=
			 udp_trouble(&ing->sources[ing->worst[--at]]))
			return; /* no worse than the last listed */
		ing->worst[at] = index;
	}
	for (; at > 0 && udp_trouble(&ing->sources[ing->worst[at]]) >
				 udp_trouble(&ing->sources[ing->worst[at - 1]]);
	     at--) {
		uint32_t up = ing->worst[at];
		ing->worst[at] = ing->worst[at - 1];
		ing->worst[at - 1] = up;
	}
}

/* Count the sequence @seq of @s (at @index): gaps and reordering. */
static void udp_sequence(struct rill_udp_ingress *ing, struct udp_source *s, uint32_t index,
			 uint64_t seq)
{
	if (seq > s->highest) {
		uint64_t skipped = seq - s->highest - 1;
		s->gaps += skipped;
		/* Saturated: sequences are the senders' (2^63 apart from two of them would
		 * wrap it); a source's own count cannot pass its highest sequence. */
		ing->stats.gaps = ing->stats.gaps + skipped < ing->stats.gaps
					  ? UINT64_MAX
					  : ing->stats.gaps + skipped;
		s->highest = seq;
		if (skipped > 0)
			udp_worst_update(ing, index);
	} else {
		s->reordered++;
		ing->stats.reordered++;
		udp_worst_update(ing, index);
	}
}

static struct rill_topic *udp_topic(struct rill_udp_ingress *ing, const char *name, uint16_t bytes)
{
	if (ing->topic != NULL && strlen(ing->topic_name) == bytes &&
	    memcmp(ing->topic_name, name, bytes) == 0)
		return ing->topic;
	memcpy(ing->topic_name, name, bytes);
	ing->topic_name[bytes] = '\0';
	ing->topic = rill_topic_find(ing->engine, ing->topic_name);
	return ing->topic;
}

static void udp_ack_due(struct rill_udp_ingress *ing, struct udp_source *s, uint32_t index)
{
	if (!s->ack_due) {
		s->ack_due = true;
		ing->due[ing->due_count++] = index; /* at most one entry per source */
	}
}

/* Acks on: may @seq be published now (U2)? */
static int udp_window_take(struct rill_udp_ingress *ing, struct udp_source *s, uint32_t index,
			   uint64_t seq, uint32_t events)
{
	if (seq <= s->durable_contig) {
		udp_ack_due(ing, s, index); /* a retransmission of what is durable: say so */
		return -EALREADY;
	}
	uint32_t slot = (uint32_t)(seq & (RILL_UDP_WINDOW - 1));
	if (seq > s->durable_contig + RILL_UDP_WINDOW || s->present[slot])
		return -EAGAIN; /* past the window, or already in flight */
	s->present[slot] = true;
	s->owed[slot] = events;
	return 0;
}

static int udp_publish(struct rill_udp_ingress *ing, const struct rill_wire_produce *p,
		       struct rill_topic *t, uint64_t cookie_base, uint64_t ingress_ns)
{
	struct rill_wire_iter it;
	struct rill_record rec;
	rill_wire_produce_iter(p, &it);
	enum rill_acks acks = ing->acks ? RILL_ACKS_DURABLE : RILL_ACKS_NONE;
	uint32_t i = 0;
	uint64_t wall_ns = 0; /* one wall-clock read per datagram, not per event */
	while (rill_wire_produce_next(&it, &rec) == 1) {
		struct rill_event ev = rill_wire_event(&rec, ingress_ns, &wall_ns);
		int rc = rill_publish(ing->producer, t, &ev, acks, cookie_base);
		if (rc < 0) {
			rill_producer_wake(ing->producer);
			return i == 0 ? rc : (int)i; /* -EAGAIN: the rest of it is lost */
		}
		i++;
	}
	rill_producer_wake(ing->producer);
	return (int)i;
}

int rill_udp_ingress_datagram(struct rill_udp_ingress *ing, const struct rill_udp_peer *from,
			      const void *payload, uint32_t bytes, uint64_t ingress_ns)
{
	ing->stats.datagrams++;
	struct rill_wire_header h;
	int rc = rill_wire_header_decode(payload, bytes, RILL_WIRE_FRAME_BYTES_MAX, &h);
	if (rc == 0 &&
	    (h.type != RILL_WIRE_PRODUCE || h.body_bytes != bytes - RILL_WIRE_HEADER_BYTES))
		rc = h.type != RILL_WIRE_PRODUCE ? RILL_E_WIRE_TYPE : RILL_E_WIRE_TRUNCATED;
	if (rc == -EAGAIN || (rc == 0 && h.request_id == 0))
		rc = RILL_E_WIRE_VALUE; /* shorter than a header; sequences start at 1 */
	struct rill_wire_produce p;
	if (rc == 0)
		rc = rill_wire_produce_decode((const uint8_t *)payload + RILL_WIRE_HEADER_BYTES,
					      h.body_bytes, &p, NULL);
	struct rill_topic *t = rc == 0 ? udp_topic(ing, p.topic, p.topic_bytes) : NULL;
	uint32_t index = 0;
	if (t == NULL) {
		/* A tracked source that sends is not silent, whatever it sends: forgotten
		 * (U3), it would lose its window and durable point while it waits for its
		 * topic. An untracked one is not made for a datagram nothing is taken from. */
		struct udp_source *s = udp_source(ing, from->ip, from->port, false, 0, &index);
		if (s != NULL)
			s->last_ns = ingress_ns;
		if (rc < 0) {
			ing->stats.malformed++;
			return rc;
		}
		ing->stats.unknown_topic++;
		return -ENOENT;
	}
	struct udp_source *s = udp_source(ing, from->ip, from->port, true, ingress_ns, &index);
	if (s == NULL) {
		ing->stats.untracked++;
	} else {
		s->peer = *from;
		s->last_ns = ingress_ns;
		s->datagrams++;
		/* With ACKs on, a sequence past the window is dropped unseen: it moves neither
		 * the highest sequence nor the gaps (a corrupt request_id would otherwise
		 * make every datagram after it "reordered"); its retransmission counts. */
		if (!ing->acks || h.request_id <= s->durable_contig + RILL_UDP_WINDOW)
			udp_sequence(ing, s, index, h.request_id);
	}
	if (ing->acks) {
		if (s == NULL) {
			ing->stats.dropped++; /* no window to track it in: a retry may find room */
			return -EAGAIN;
		}
		rc = udp_window_take(ing, s, index, h.request_id, p.event_count);
		if (rc == -EALREADY)
			return 0;
		if (rc < 0) {
			ing->stats.dropped++;
			return rc;
		}
	}
	/* The cookie: the source's index and the sequence's low 32 bits. */
	uint64_t cookie = ((uint64_t)index << 32) | (uint32_t)h.request_id;
	rc = udp_publish(ing, &p, t, cookie, ingress_ns);
	if (rc < (int)p.event_count) {
		ing->stats.dropped++;
		uint32_t slot = (uint32_t)(h.request_id & (RILL_UDP_WINDOW - 1));
		if (ing->acks && s != NULL && rc <= 0) { /* none went: free it for a retry */
			s->present[slot] = false;
		} else if (ing->acks && s != NULL) {
			/* Some went: the datagram is not durable whole, ever; once those
			 * are settled its slot frees without advancing, and the sender's
			 * retry appends it all (again, for those: at least once). */
			s->owed[slot] = (uint32_t)rc;
			s->partial[slot] = true;
		}
		if (rc <= 0)
			return -EAGAIN;
	}
	ing->stats.events += (uint64_t)rc;
	return rc;
}

/* Advance @s's durable point over every datagram now wholly durable (U1). */
static void udp_advance(struct rill_udp_ingress *ing, struct udp_source *s, uint32_t index)
{
	bool moved = false;
	for (;;) {
		uint32_t slot = (uint32_t)((s->durable_contig + 1) & (RILL_UDP_WINDOW - 1));
		if (!s->present[slot] || s->owed[slot] != 0)
			break;
		s->present[slot] = false;
		s->durable_contig++;
		moved = true;
	}
	if (moved)
		udp_ack_due(ing, s, index);
}

static void udp_ack_cb(void *arg, const struct rill_ack *ack)
{
	struct rill_udp_ingress *ing = arg;
	if (ack->error != 0 && ack->lost)
		ing->stats.lost++;
	else if (ack->error != 0)
		ing->stats.refused++;
	if (!ing->acks || (ack->error == 0 && ack->level != RILL_ACKS_DURABLE))
		return; /* acks off: refusals only; the applied one of a durable event */
	uint32_t index = (uint32_t)(ack->cookie >> 32);
	RILL_ASSERT(index < RILL_UDP_SOURCES_MAX);
	struct udp_source *s = &ing->sources[index];
	RILL_ASSERT(s->key != 0); /* U3 */
	uint32_t slot = (uint32_t)ack->cookie & (RILL_UDP_WINDOW - 1);
	RILL_ASSERT(s->present[slot] && s->owed[slot] > 0);
	if (ack->error != 0 && ack->lost)
		return; /* U1: never durable here, and no ACK may say it is */
	/* A refused event is settled too: it will never be durable. Except for a sequence
	 * gap, which only says that an earlier datagram has not come yet (overtaken, or
	 * dropped under backpressure): that one and this one must both come again, so the
	 * datagram is left unacknowledged, as a partial one is (U2). */
	if (ack->error == RILL_E_WRITE_SEQUENCE_GAP)
		s->partial[slot] = true;
	s->owed[slot]--;
	if (s->owed[slot] > 0)
		return;
	if (s->partial[slot]) {
		s->partial[slot] = false;
		s->present[slot] = false; /* the retry takes the slot again (U2) */
		return;
	}
	udp_advance(ing, s, index);
}

int rill_udp_ingress_poll(struct rill_udp_ingress *ing)
{
	return rill_producer_poll(ing->producer, 0);
}

int rill_udp_ingress_flush(struct rill_udp_ingress *ing, uint64_t timeout_ns)
{
	return rill_producer_flush(ing->producer, timeout_ns);
}

uint32_t rill_udp_ingress_acks_due(const struct rill_udp_ingress *ing)
{
	return ing->due_count;
}

int rill_udp_ingress_next_ack(struct rill_udp_ingress *ing, struct rill_udp_peer *to,
			      uint8_t *frame, uint32_t *frame_bytes)
{
	if (ing->due_count == 0)
		return 0;
	struct udp_source *s = &ing->sources[ing->due[--ing->due_count]];
	s->ack_due = false;
	int at = rill_wire_ack_begin(frame, RILL_WIRE_HEADER_BYTES + RILL_WIRE_ACK_BYTES_MIN,
				     s->durable_contig);
	RILL_ASSERT(at > 0);
	rill_wire_ack_finish(frame, (uint32_t)at, 0);
	*frame_bytes = (uint32_t)at;
	*to = s->peer;
	ing->stats.acks++;
	return 1;
}

void rill_udp_ingress_stats(const struct rill_udp_ingress *ing, struct rill_udp_stats *out)
{
	*out = ing->stats;
}

static struct rill_udp_source_stats udp_source_stats(const struct udp_source *s)
{
	return (struct rill_udp_source_stats){.datagrams = s->datagrams,
					      .gaps = s->gaps,
					      .reordered = s->reordered,
					      .highest = s->highest,
					      .durable_contig = s->durable_contig};
}

int rill_udp_ingress_source(const struct rill_udp_ingress *ing, uint32_t ip, uint16_t port,
			    struct rill_udp_source_stats *out)
{
	uint32_t index;
	struct udp_source *s =
		udp_source((struct rill_udp_ingress *)ing, ip, port, false, 0, &index);
	if (s == NULL)
		return -ENOENT;
	*out = udp_source_stats(s);
	return 0;
}

uint32_t rill_udp_ingress_worst(const struct rill_udp_ingress *ing,
				struct rill_udp_source_report out[RILL_UDP_WORST_MAX])
{
	for (uint32_t i = 0; i < ing->worst_count; i++) {
		const struct udp_source *s = &ing->sources[ing->worst[i]];
		uint64_t addr = s->key - 1; /* udp_source's key: (ip << 16 | port) + 1 */
		out[i] = (struct rill_udp_source_report){.ip = (uint32_t)(addr >> 16),
							 .port = (uint16_t)addr,
							 .stats = udp_source_stats(s)};
	}
	return ing->worst_count;
}

uint32_t rill_udp_worst_insert(struct rill_udp_source_report list[RILL_UDP_WORST_MAX],
			       uint32_t count, const struct rill_udp_source_report *r)
{
	RILL_ASSERT(count <= RILL_UDP_WORST_MAX);
	uint64_t trouble = rill_udp_trouble(r->stats.gaps, r->stats.reordered);
	uint32_t at = count;
	while (at > 0 &&
	       rill_udp_trouble(list[at - 1].stats.gaps, list[at - 1].stats.reordered) < trouble)
		at--;
	if (at == RILL_UDP_WORST_MAX)
		return count; /* the list is full of worse or equal ones */
	uint32_t last = count < RILL_UDP_WORST_MAX ? count++ : count - 1; /* the slot filled */
	memmove(&list[at + 1], &list[at], (last - at) * sizeof(list[0]));
	list[at] = *r;
	return count;
}

int rill_udp_frame_ipv4(const uint8_t *f, uint32_t n, uint16_t udp_port, const uint8_t **payload,
			uint32_t *bytes, struct rill_udp_peer *from)
{
	uint32_t at = 12;
	if (n < 14)
		return -EINVAL;
	uint16_t type = (uint16_t)(f[at] << 8 | f[at + 1]);
	at += 2;
	bool vlan = type == 0x8100;
	uint16_t tci = 0;
	if (vlan) { /* an 802.1Q tag: the real type follows it */
		if (n < at + 4)
			return -EINVAL;
		tci = (uint16_t)(f[at] << 8 | f[at + 1]);
		type = (uint16_t)(f[at + 2] << 8 | f[at + 3]);
		at += 4;
	}
	if (type != 0x0800)
		return -ENOENT; /* not IPv4 */
	if (n < at + 20 || (f[at] >> 4) != 4)
		return -EINVAL;
	uint32_t ihl = (uint32_t)(f[at] & 0xf) * 4;
	uint32_t total = (uint32_t)(f[at + 2] << 8 | f[at + 3]);
	uint16_t frag = (uint16_t)((f[at + 6] << 8 | f[at + 7]) & 0x3fff); /* MF and offset */
	if (ihl < 20 || total < ihl + 8 || n < at + total)
		return -EINVAL;
	if (f[at + 9] != 17)
		return -ENOENT; /* not UDP */
	if (frag != 0)
		return -EINVAL; /* fragments are not reassembled: an event datagram fits a frame */
	uint32_t src, dst;
	memcpy(&src, f + at + 12, 4);
	memcpy(&dst, f + at + 16, 4);
	const uint8_t *u = f + at + ihl;
	uint16_t dport = (uint16_t)(u[2] << 8 | u[3]);
	uint32_t ulen = (uint32_t)(u[4] << 8 | u[5]);
	if (dport != udp_port)
		return -ENOENT;
	if (ulen < 8 || ulen > total - ihl)
		return -EINVAL;
	*payload = u + 8;
	*bytes = ulen - 8;
	*from = (struct rill_udp_peer){.ip = ntohl(src),
				       .port = (uint16_t)(u[0] << 8 | u[1]),
				       .local_ip = ntohl(dst),
				       .local_port = dport,
				       .vlan = vlan,
				       .vlan_tci = tci};
	memcpy(from->mac, f + 6, 6);
	return 0;
}

/* The IPv4 header checksum (RFC 791): the ones' complement of the ones' complement sum of
 * its 16-bit words. Written here for 20 bytes: DPDK's rte_ipv4_cksum would tie this file
 * to DPDK, and the kernel path and tests use it too. */
static uint16_t udp_ip_checksum(const uint8_t *h)
{
	uint32_t sum = 0;
	for (int i = 0; i < 20; i += 2)
		sum += (uint32_t)(h[i] << 8 | h[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void udp_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void udp_put32(uint8_t *p, uint32_t v)
{
	udp_put16(p, (uint16_t)(v >> 16));
	udp_put16(p + 2, (uint16_t)v);
}

uint32_t rill_udp_frame_headers(const struct rill_udp_peer *to)
{
	return (to->vlan ? 4u : 0u) + 14 + 20 + 8;
}

uint32_t rill_udp_frame_build(uint8_t *f, const uint8_t src_mac[6], const struct rill_udp_peer *to,
			      const void *payload, uint32_t bytes)
{
	memcpy(f, to->mac, 6);
	memcpy(f + 6, src_mac, 6);
	uint32_t at = 12;
	if (to->vlan) { /* back on the VLAN it came from: the sender's link may carry no other */
		udp_put16(f + at, 0x8100);
		udp_put16(f + at + 2, to->vlan_tci);
		at += 4;
	}
	udp_put16(f + at, 0x0800);
	uint8_t *ip = f + at + 2;
	memset(ip, 0, 20);
	ip[0] = 0x45; /* version 4, 5 words */
	udp_put16(ip + 2, (uint16_t)(20 + 8 + bytes));
	ip[6] = 0x40; /* don't fragment */
	ip[8] = 64;   /* TTL */
	ip[9] = 17;   /* UDP */
	udp_put32(ip + 12, to->local_ip);
	udp_put32(ip + 16, to->ip);
	udp_put16(ip + 10, udp_ip_checksum(ip));
	uint8_t *u = ip + 20;
	udp_put16(u, to->local_port);
	udp_put16(u + 2, to->port);
	udp_put16(u + 4, (uint16_t)(8 + bytes));
	udp_put16(u + 6, 0); /* no UDP checksum: allowed over IPv4; the records carry CRCs */
	memcpy(u + 8, payload, bytes);
	return rill_udp_frame_headers(to) + bytes;
}
