/*
 * A shard: one thread, pinned, owning its partitions (logs, write models, projections),
 * its jemalloc arena and one I/O backend (one io_uring shared by its logs through a mux).
 * Hot path. The loop, each turn:
 *
 *   1. runs the control requests waiting in its mailbox (topics, projections, producers
 *      attaching, queries, statistics): rare, and the only place a lock is taken;
 *   2. drains the producers' events rings in rounds, at most ENGINE_BURST_MAX events per
 *      ring per round, until each is empty or stalled or the turn has taken
 *      ENGINE_TURN_EVENTS_MAX or more (checked between rounds): write
 *      model, append, projections, "applied" acknowledgement. Rounds keep producers fair;
 *      several per turn keep a burst that arrived at once (a server turn's frames) from
 *      waiting a whole turn (the hooks' syscalls) per ENGINE_BURST_MAX events;
 *   3. polls each partition's log (group commit) and sends the "durable" acknowledgements
 *      its durable offset now covers;
 *   4. calls its hooks (rill_engine_shard_hook_add: the server's worker, DPDK's queue);
 *   5. when a turn found nothing to do: spins (busy mode), or spins up to idle_spin_ns and
 *      then sleeps on its eventfd (adaptive mode), which producers and io_uring completions
 *      signal; a hook with a sleep function does that waiting, in its own io_uring. A hook
 *      with neither a sleep nor a nap_ns keeps it spinning; one with a nap_ns caps each
 *      sleep at it, and after a nap that lasted the shard naps again without spinning.
 *
 * Every SHARD_SNAPSHOT_TURNS turns, and after each sleep, it looks at the snapshot
 * intervals and, once a second, at every partition's retention (shard_expire), so that an
 * idle partition's records expire too.
 *
 * Invariants:
 *   I1. An event is taken from its ring only when the producer's ack ring has room for
 *       every acknowledgement it may cause: sending one never fails, and the shard never
 *       blocks on a slow producer; the producer's events ring fills instead (backpressure).
 *   I2. acks_reserved counts the durable acknowledgements owed to a producer (one slot
 *       each); ack ring space beyond them is what immediate acknowledgements may use.
 *   I3. Durable acknowledgements are sent only once the partition's durable offset is past
 *       the event's offset; a log that fails sends every owed one with its error.
 *   I4. An event leaves its ring only after it was refused or written: a stop drains the
 *       rings first, so nothing a producer put in is dropped.
 *
 * Sleeping (adaptive mode) is a store-then-check handshake between the shard and the
 * producers, each side with a full fence between its store and its check:
 *   shard:    sleeping = 1; fence (W0); any ring non-empty? -> stay awake; else sleep
 *   producer: commit (head, release); fence (W1); sleeping? -> clear it, write the eventfd
 * W0 pairs with W1: either the shard sees the new event, or the producer sees the flag.
 * Both sides wake once per burst, not per message: a wake_batched producer does its W1
 * after its burst (rill_producer_wake, and always before it may sleep); a shard wakes a
 * producer after each burst of acknowledgements (shard_ack_wake at the end of shard_drain,
 * shard_acks_wake after the durable ones, every turn, so before the shard may sleep).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/atomic.h"
#include "base/clock.h"
#include "base/thread.h"
#include "engine/engine_int.h"

/* Ack ring slots one immediate acknowledgement may take, the worst padding included. */
static uint64_t shard_ack_slots_immediate(const struct rill_ring *acks)
{
	uint64_t slots = rill_ring_record_slots(acks, sizeof(struct engine_ack_msg) +
							      ENGINE_REASON_BYTES_MAX);
	return 2 * slots - 1;
}

/* Ack ring slots that must be free before an event is taken (I1): the durable acks owed,
 * room for two immediate records with the worst padding (an event sends one: a refusal,
 * an applied acknowledgement, or an applied and durable pair; two are kept, as when the
 * pair took two records), and a durable one. */
static uint64_t shard_ack_room_needed(const struct shard_producer *p)
{
	return p->acks_reserved + shard_ack_slots_immediate(p->acks) * 2 + 1;
}

/* Send one acknowledgement; room was checked before (I1). */
static void shard_ack_send(struct shard *s, uint32_t slot, struct engine_ack_msg *m,
			   const char *reason)
{
	struct shard_producer *p = &s->producers[slot];
	size_t reason_bytes = reason != NULL ? strnlen(reason, ENGINE_REASON_BYTES_MAX) : 0;
	m->reason_bytes = (uint16_t)reason_bytes;
	uint8_t *dst = rill_ring_reserve(p->acks, (uint32_t)(sizeof(*m) + reason_bytes));
	RILL_ASSERT(dst != NULL); /* I1 */
	memcpy(dst, m, sizeof(*m));
	if (reason_bytes > 0)
		memcpy(dst + sizeof(*m), reason, reason_bytes);
	rill_ring_commit(p->acks, (uint32_t)(sizeof(*m) + reason_bytes));
	p->wake_owed = true; /* woken once per burst: shard_ack_wake */
}

/* Wake producer @slot if acknowledgements went to it since its last wake-up: after each
 * burst rather than each acknowledgement (a full fence, and an eventfd write when it
 * sleeps). */
static void shard_ack_wake(struct shard *s, uint32_t slot)
{
	struct shard_producer *p = &s->producers[slot];
	if (p->wake_owed) {
		p->wake_owed = false;
		shard_notify(p->sleeping, p->wake_fd);
	}
}

/* shard_ack_wake for every attached producer: after the durable acknowledgements, and
 * before the shard may sleep. */
static void shard_acks_wake(struct shard *s)
{
	for (uint32_t a = 0; a < s->active_count; a++)
		shard_ack_wake(s, s->active[a]);
}

void shard_notify(uint64_t *sleeping, int wake_fd)
{
	if (sleeping == NULL)
		return;
	/* P1: the fence orders the ring's commit before the flag's load; pairs with P0 in
	 * rill_producer_sleep_begin. One of the two sides sees the other. */
	rill_atomic_fence_seq_cst();
	if (rill_atomic_load_relaxed_u64(sleeping) != 0 &&
	    rill_atomic_exchange_acq_rel_u64(sleeping, 0) != 0) {
		uint64_t one = 1;
		ssize_t n = write(wake_fd, &one, sizeof(one));
		(void)n; /* a full counter already means "wake up" */
	}
}

static void shard_latency(struct rill_hist *h, uint64_t from_ns, uint64_t to_ns)
{
	rill_hist_record(h, to_ns > from_ns ? to_ns - from_ns : 0);
}

/* Send every durable acknowledgement the partition's durable offset covers (I3). */
static unsigned shard_part_durable(struct shard *s, struct shard_part *sp)
{
	if (sp->waits_count == 0)
		return 0;
	uint64_t durable = rill_partition_durable_offset(sp->part);
	if (durable == sp->durable_sent && sp->error == 0)
		return 0;
	sp->durable_sent = durable;
	uint64_t now = rill_clock_now_ns();
	unsigned sent = 0;
	while (sp->waits_count > 0) {
		struct engine_durable_wait *w = &sp->waits[sp->waits_head];
		if (sp->error == 0 && w->offset >= durable)
			break;
		struct engine_ack_msg m = {.cookie = w->cookie,
					   .offset = w->ack_offset,
					   .ingress_ns = w->ingress_ns,
					   .event_count = (uint8_t)w->event_count,
					   .duplicate = w->duplicate,
					   .done_ns = now,
					   .partition = sp->partition,
					   .error = w->offset < durable ? 0 : sp->error,
					   .level = RILL_ACKS_DURABLE,
					   .settles = 1,
					   .lost = w->offset >= durable};
		struct shard_producer *p = &s->producers[w->producer_slot];
		RILL_ASSERT(p->acks_reserved > 0); /* I2 */
		p->acks_reserved--;
		shard_ack_send(s, w->producer_slot, &m, NULL);
		if (m.error == 0)
			shard_latency(s->hist_durable, w->ingress_ns, now);
		sp->waits_head = (sp->waits_head + 1) % RILL_ENGINE_DURABLE_PENDING_MAX;
		sp->waits_count--;
		sent++;
	}
	return sent;
}

static void shard_durable_wait_push(struct shard *s, struct shard_part *sp, uint32_t slot,
				    const struct engine_event_msg *m,
				    const struct rill_partition_write *res, uint32_t count)
{
	RILL_ASSERT(sp->waits_count < RILL_ENGINE_DURABLE_PENDING_MAX);
	uint32_t tail = (sp->waits_head + sp->waits_count) % RILL_ENGINE_DURABLE_PENDING_MAX;
	sp->waits[tail] = (struct engine_durable_wait){.cookie = m->cookie,
						       .offset = res->sync_offset,
						       .ack_offset = res->offset,
						       .ingress_ns = m->ingress_ns,
						       .producer_slot = slot,
						       .event_count = count,
						       .duplicate = res->duplicate};
	sp->waits_count++;
	s->producers[slot].acks_reserved++; /* I2 */
}

/* The handler for @type_id on @sp, or NULL. */
static const struct shard_handler *shard_handler_find(const struct shard_part *sp, uint32_t type_id)
{
	for (uint32_t i = 0; i < sp->handler_count; i++) {
		if (sp->handlers[i].fn != NULL && sp->handlers[i].type_id == type_id)
			return &sp->handlers[i];
	}
	return NULL;
}

/*
 * The write model with a command handler in front (rill.h, "Command handlers"): the
 * command's own checks first (a duplicate or a refusal never reaches the handler), then
 * its verdict. @count gets the events appended. Returns as rill_partition_write. A
 * handler may run again for the same command when the log pushes back (-EAGAIN).
 */
static int shard_command(struct shard *s, struct shard_part *sp, const struct rill_record *rec,
			 struct rill_partition_write *res, struct rill_schema_error *serr,
			 uint32_t *count)
{
	const struct shard_handler *h = shard_handler_find(sp, rec->type_id);
	if (h == NULL)
		return rill_partition_write(sp->part, rec, res, serr);
	int rc = rill_partition_check(sp->part, rec, res, serr);
	if (rc < 0 || res->duplicate)
		return rc;
	struct rill_command_result *out = s->command;
	out->reason[0] = '\0';
	out->event_count = 0;
	enum rill_command_verdict verdict = h->fn(h->arg, rec, sp->partition, out);
	if (verdict == RILL_COMMAND_ACCEPT)
		return rill_partition_write(sp->part, rec, res, serr);
	if (verdict != RILL_COMMAND_EMIT && verdict != RILL_COMMAND_REFUSE) {
		/* A handler's bug, not a decision: say so, rather than pass off whatever its
		 * reason buffer holds as a refusal's reason. */
		snprintf(serr->message, sizeof(serr->message),
			 "the command handler returned %d, not a verdict (ACCEPT, REFUSE or EMIT)",
			 (int)verdict);
		return RILL_E_COMMAND_REFUSED;
	}
	if (verdict == RILL_COMMAND_REFUSE) {
		out->reason[sizeof(out->reason) - 1] = '\0';
		snprintf(serr->message, sizeof(serr->message), "%s",
			 out->reason[0] ? out->reason : "refused by the command handler");
		return RILL_E_COMMAND_REFUSED;
	}
	if (out->event_count == 0 || out->event_count > RILL_COMMAND_EVENTS_MAX) {
		snprintf(serr->message, sizeof(serr->message),
			 "the command handler emitted %u events (1 to %u)", out->event_count,
			 RILL_COMMAND_EVENTS_MAX);
		return RILL_E_COMMAND_REFUSED;
	}
	struct rill_record events[RILL_COMMAND_EVENTS_MAX];
	for (uint32_t i = 0; i < out->event_count; i++) {
		const struct rill_command_event *ev = &out->events[i];
		if (ev->payload == NULL && ev->payload_bytes > 0) {
			snprintf(serr->message, sizeof(serr->message),
				 "the command handler emitted event %u without its payload", i);
			return RILL_E_COMMAND_REFUSED;
		}
		events[i] = (struct rill_record){.timestamp_ns = ev->timestamp_ns,
						 .type_id = ev->type_id,
						 .schema_version = ev->version,
						 .payload = ev->payload,
						 .payload_bytes = ev->payload_bytes,
						 .causation_id = rec->causation_id};
	}
	rc = rill_partition_write_group(sp->part, rec, events, out->event_count, res, serr);
	if (rc == 0 && !res->duplicate)
		*count = out->event_count;
	return rc;
}

/* What became of an event offered to the shard. */
enum shard_take {
	SHARD_TAKEN,      /* refused or written: it may leave the ring */
	SHARD_STALL_ACKS, /* the producer's acks ring lacks room: it must poll */
	SHARD_STALL_LOG,  /* the log's buffers or the durable queue are full: the disk must
			   * catch up */
};

/*
 * Take one event: the write model, append, projections (rill_partition_write), then its
 * acknowledgements. Anything but SHARD_TAKEN leaves the event in its ring for later.
 * @key and @payload are read during the call only (the log and the projections copy what
 * they keep): they may be the ring's bytes or, from shard_take_local, the publisher's.
 * @taken_ns: when the shard took it from the ring; 0 when it came with no ring.
 */
static enum shard_take shard_event(struct shard *s, uint32_t slot, const struct engine_event_msg *m,
				   const void *key, const void *payload, uint64_t taken_ns)
{
	struct shard_producer *p = &s->producers[slot];
	struct rill_engine *e = s->engine;
	RILL_ASSERT(m->topic_index < RILL_ENGINE_TOPICS_MAX);
	struct engine_topic *t = e->topics[m->topic_index];
	RILL_ASSERT(t != NULL && m->partition < t->config.partitions);
	RILL_DASSERT(t->parts[m->partition].shard == s->index); /* paired with producer.c */
	struct shard_part *sp = t->parts[m->partition].sp;
	bool wants_durable =
		m->acks == RILL_ACKS_DURABLE && t->config.durability == RILL_DURABILITY_GROUP;
	uint64_t need = shard_ack_room_needed(p);
	if (rill_ring_free_count_producer(p->acks, p->acks->head, need) < need)
		return SHARD_STALL_ACKS; /* I1 */
	if (wants_durable && sp->waits_count == RILL_ENGINE_DURABLE_PENDING_MAX)
		return SHARD_STALL_LOG;

	struct rill_record rec = {.timestamp_ns = m->timestamp_ns,
				  .producer_id = m->producer_id,
				  .sequence = m->sequence,
				  .correlation_id = m->correlation_id,
				  .causation_id = m->causation_id,
				  .type_id = m->type_id,
				  .payload_bytes = m->payload_bytes,
				  .schema_version = m->version,
				  .key_bytes = m->key_bytes,
				  .key = key,
				  .payload = payload};
	struct rill_partition_write res = {0};
	struct rill_schema_error serr;
	serr.message[0] = '\0';
	uint32_t count = 1; /* events appended */
	int rc = sp->error;
	if (rc == 0 && sp->handler_count > 0)
		rc = shard_command(s, sp, &rec, &res, &serr, &count);
	else if (rc == 0)
		rc = rill_partition_write(sp->part, &rec, &res, &serr);
	if (rc == -EAGAIN)
		return SHARD_STALL_LOG; /* both batch buffers busy: the log's own backpressure */
	uint64_t now = rill_clock_now_ns();
	s->done_ns = now;
	struct engine_ack_msg ack = {.cookie = m->cookie,
				     .offset = res.offset,
				     .ingress_ns = m->ingress_ns,
				     .done_ns = now,
				     .partition = m->partition,
				     .error = rc,
				     .level = m->acks == RILL_ACKS_NONE ? RILL_ACKS_APPLIED
									: m->acks,
				     .duplicate = res.duplicate,
				     .settles = 1,
				     .event_count = (uint8_t)count};
	if (rc < 0) {
		/* A refusal settles everything the publisher asked for, and is always sent. An
		 * event the partition's failed log could not take is lost rather than refused
		 * (the log's error is the first thing a write checks): counted apart, and its
		 * reason says so and where, since a client may meet it hours after the fault
		 * (rill_partition_write says it only when it ran, not once sp->error is set). */
		ack.level = m->acks;
		ack.settles = m->acks;
		ack.lost = sp->error != 0 || rill_log_error(rill_partition_log(sp->part)) != 0;
		if (ack.lost) {
			s->lost++;
			snprintf(serr.message, sizeof(serr.message),
				 "topic %s partition %" PRIu32 ": its log stopped after an I/O "
				 "error; it takes no event until the engine restarts",
				 t->name, m->partition);
		} else {
			s->refused++;
		}
		shard_ack_send(s, slot, &ack, serr.message[0] ? serr.message : rill_strerror(rc));
		return SHARD_TAKEN;
	}
	if (res.duplicate)
		s->duplicates++;
	else
		s->events += count; /* a command may have appended several */
	if (taken_ns != 0) {        /* 0: taken at once, with no ring (shard_take_local) */
		shard_latency(s->hist_ring, m->ingress_ns, taken_ns);
		shard_latency(s->hist_apply, taken_ns, now);
	}
	shard_latency(s->hist_applied, m->ingress_ns, now);
	if (m->acks == RILL_ACKS_NONE)
		return SHARD_TAKEN;
	ack.level = RILL_ACKS_APPLIED;
	if (m->acks == RILL_ACKS_DURABLE &&
	    (!wants_durable || res.sync_offset < rill_partition_durable_offset(sp->part))) {
		/* A topic of durability none promises memory only; or a retry of an event
		 * durable already. Either way the durable acknowledgement is due now: it rides
		 * on the applied one, one ring record for both (engine_ack_msg.settles). Only
		 * the retry is a durable stage sample: the other reached no disk, and would
		 * pull the stage's percentiles down to the applied ones. */
		ack.level = RILL_ACKS_DURABLE;
		ack.settles = 2;
		shard_ack_send(s, slot, &ack, NULL);
		if (wants_durable)
			shard_latency(s->hist_durable, m->ingress_ns, now);
		return SHARD_TAKEN;
	}
	shard_ack_send(s, slot, &ack, NULL);
	if (m->acks == RILL_ACKS_DURABLE)
		shard_durable_wait_push(s, sp, slot, m, &res, count);
	return SHARD_TAKEN;
}

/* Drain up to ENGINE_BURST_MAX events from producer @slot's ring. Returns events taken. */
static unsigned shard_drain(struct shard *s, uint32_t slot)
{
	struct shard_producer *p = &s->producers[slot];
	unsigned n = 0;
	uint64_t taken_ns = 0;
	while (n < ENGINE_BURST_MAX) {
		uint32_t bytes;
		const uint8_t *msg = rill_ring_peek(p->events, &bytes);
		if (msg == NULL)
			break;
		struct engine_event_msg m;
		RILL_ASSERT(bytes >= sizeof(m));
		memcpy(&m, msg, sizeof(m));
		/* When the shard took it: a clock read for the burst's first event; for the next
		 * ones, the end of the event before (the shard took this one then, so its wait
		 * behind the burst is ring time, not apply time), unless it was published later
		 * than that: then the clock again, never a take before the event existed. */
		if (taken_ns == 0 || m.ingress_ns > taken_ns)
			taken_ns = rill_clock_now_ns();
		RILL_ASSERT(bytes == sizeof(m) + m.key_bytes + m.payload_bytes); /* producer.c */
		const uint8_t *key = msg + sizeof(m);
		s->taking = true;
		enum shard_take took = shard_event(s, slot, &m, key, key + m.key_bytes, taken_ns);
		s->taking = false;
		p->waits_for_log = took == SHARD_STALL_LOG;
		p->waits_for_acks = took == SHARD_STALL_ACKS;
		if (took != SHARD_TAKEN) {
			s->stalls++;
			rill_ring_unpeek(p->events); /* left for a later turn */
			break;
		}
		rill_ring_release(p->events);
		n++;
		taken_ns = s->done_ns;
	}
	shard_ack_wake(s, slot);
	return n;
}

__thread struct shard *shard_self;

bool shard_take_local(struct shard *s, uint32_t slot, const struct engine_event_msg *m,
		      const void *key, const void *payload)
{
	RILL_DASSERT(shard_self == s);
	if (s->taking)
		return false; /* published from inside an event's own processing (a callback):
			       * the ring, after it */
	/* Taken when published: no ring stage, and no apply stage apart from applied (the
	 * publisher's own work since ingress, a server turn's parsing, is not the shard's). */
	s->taking = true;
	enum shard_take took = shard_event(s, slot, m, key, payload, 0);
	s->taking = false;
	if (took != SHARD_TAKEN)
		return false;
	s->local++;
	return true; /* its acknowledgements wake the producer with the turn's (shard_acks_wake) */
}

/* Step 2 of the loop: rounds over the producers' rings. A ring is visited again only if
 * its last round took a whole burst: one that emptied or stalled (its stall counted once)
 * waits for the next turn. Returns events taken. */
static unsigned shard_drain_all(struct shard *s)
{
	bool more[RILL_ENGINE_PRODUCERS_MAX];
	for (uint32_t a = 0; a < s->active_count; a++)
		more[a] = true;
	unsigned total = 0, round;
	do {
		round = 0;
		for (uint32_t a = 0; a < s->active_count; a++) {
			if (!more[a])
				continue;
			unsigned n = shard_drain(s, s->active[a]);
			more[a] = n == ENGINE_BURST_MAX;
			round += n;
		}
		total += round;
	} while (round > 0 && total < ENGINE_TURN_EVENTS_MAX);
	return total;
}

/* True if @sp's log has something for rill_partition_poll: a write in flight to reap, a
 * filling batch whose delay has run out, or a failure to report (an append's submit can
 * fail the log). @now: the turn's clock, read at the first partition that needs it (0
 * until then): one read per turn, not one per partition. */
static bool shard_part_poll_due(struct shard_part *sp, uint64_t *now)
{
	const struct rill_log *log = rill_partition_log(sp->part);
	if (rill_log_in_flight(log) || rill_log_error(log) != 0)
		return true;
	uint64_t due = rill_log_submit_due_ns(log);
	if (due == UINT64_MAX)
		return false;
	if (*now == 0)
		*now = rill_clock_now_ns();
	return due <= *now;
}

/* Group commit of every partition, then the durable acknowledgements it allows. */
static unsigned shard_poll_logs(struct shard *s)
{
	unsigned work = 0;
	uint64_t now = 0;
	for (uint32_t i = 0; i < s->part_count; i++) {
		struct shard_part *sp = s->parts[i];
		if (sp->error == 0 && shard_part_poll_due(sp, &now)) {
			int rc = rill_partition_poll(sp->part, 0);
			if (rc < 0) {
				sp->error =
					rc; /* fail-stop: owed acks go out with the error (I3) */
				if (s->error == 0)
					s->error = rc;
				fprintf(stderr, "rill: shard %u: topic %s partition %u: %s\n",
					s->index, sp->topic->name, sp->partition,
					rill_strerror(rc));
			}
		}
		work += shard_part_durable(s, sp);
	}
	shard_acks_wake(s);
	return work;
}

/* True if some partition holds appended events not yet durable. */
static bool shard_dirty(const struct shard *s)
{
	for (uint32_t i = 0; i < s->part_count; i++) {
		const struct shard_part *sp = s->parts[i];
		if (sp->error == 0 &&
		    rill_partition_durable_offset(sp->part) < rill_partition_next_offset(sp->part))
			return true;
	}
	return false;
}

static bool shard_has_input(struct shard *s)
{
	if (rill_atomic_load_acquire_u64(&s->reqs_pending)) /* pairs with R3 in shard_call */
		return true;
	if (shard_subs_ready(s) || rill_io_mux_queued(s->mux) > 0)
		return true; /* a log's completion reaped through another log's poll */
	for (uint32_t a = 0; a < s->active_count; a++) {
		struct shard_producer *p = &s->producers[s->active[a]];
		if (rill_ring_count(p->events) == 0)
			continue;
		/* A ring whose next event waits for the disk is no reason to stay awake when
		 * the disk's completion will wake the shard: spinning would only take the CPU
		 * from the kernel threads doing the write. One waiting for room in its acks
		 * ring is input once the room is there: the producer frees it, then looks at
		 * `sleeping` (W1), while this reads the ring's tail after W0. */
		if (p->waits_for_log && s->notify_ok)
			continue;
		if (p->waits_for_acks) {
			uint64_t need = shard_ack_room_needed(p);
			if (rill_ring_free_count_producer(p->acks, p->acks->head, need) < need)
				continue;
		}
		return true;
	}
	return false;
}

/* The earliest time a partition's filling batch is due, or UINT64_MAX. */
static uint64_t shard_submit_due_ns(const struct shard *s)
{
	uint64_t due = UINT64_MAX;
	for (uint32_t i = 0; i < s->part_count; i++) {
		const struct shard_part *sp = s->parts[i];
		if (sp->error != 0)
			continue;
		uint64_t d = rill_log_submit_due_ns(rill_partition_log(sp->part));
		if (d < due)
			due = d;
	}
	return due;
}

/*
 * Adaptive mode, idle: sleep on the eventfd until woken or the next group commit is due,
 * or for a hook's nap at most (s->nap_ns). Returns true when the sleep was such a nap and
 * lasted (half of it at least: a wait that returned at once is no nap).
 */
static bool shard_sleep(struct shard *s)
{
	rill_atomic_store_relaxed_u64(&s->sleeping, 1);
	rill_atomic_fence_seq_cst(); /* W0: pairs with W1 in shard_wake's callers */
	if (shard_has_input(s)) {
		rill_atomic_store_relaxed_u64(&s->sleeping, 0);
		return false;
	}
	uint64_t wait_ns = 100u * 1000000u;
	if (shard_dirty(s)) {
		/* Until the first batch is due, not a whole delay from now: a batch that
		 * started filling before this sleep would otherwise wait up to twice its
		 * delay. delay_ns_min bounds it (a backend that signals no completion). */
		wait_ns = s->delay_ns_min;
		uint64_t now = rill_clock_now_ns(), due = shard_submit_due_ns(s);
		if (due <= now) {
			rill_atomic_store_relaxed_u64(&s->sleeping, 0);
			return false; /* due now: the next turn's poll submits it */
		}
		if (due - now < wait_ns)
			wait_ns = due - now;
	}
	bool nap = s->nap_ns != 0 && s->nap_ns <= wait_ns;
	if (nap)
		wait_ns = s->nap_ns; /* a hook polls a device: back by then */
	uint64_t start = nap ? rill_clock_now_ns() : 0;
	struct timespec ts = {.tv_sec = (time_t)(wait_ns / 1000000000u),
			      .tv_nsec = (long)(wait_ns % 1000000000u)};
	s->sleeps++;
	bool hooked = false;
	for (uint32_t h = 0; h < s->hook_count && !hooked; h++) {
		if (s->hooks[h].sleep != NULL) {
			/* The hook waits for its own events and for wake_fd at once. */
			s->hooks[h].sleep(s->hooks[h].arg, s->wake_fd, wait_ns);
			hooked = true;
		}
	}
	struct pollfd pfd = {.fd = s->wake_fd, .events = POLLIN};
	if (!hooked && ppoll(&pfd, 1, &ts, NULL) > 0) {
		uint64_t count;
		ssize_t got = read(s->wake_fd, &count, sizeof(count));
		(void)got; /* drained; a spurious wake-up costs one turn */
	}
	/* Relaxed: the flag is only a hint to producers; a stale 1 costs one eventfd write. */
	rill_atomic_store_relaxed_u64(&s->sleeping, 0);
	return nap && rill_clock_now_ns() - start >= wait_ns / 2;
}

void shard_wake(struct shard *s)
{
	uint64_t one = 1;
	ssize_t put = write(s->wake_fd, &one, sizeof(one));
	(void)put; /* EAGAIN: the counter is saturated, so the shard is awake anyway */
}

/* Stop: drain what the rings still hold (I4), sync, close every partition. */
static void shard_finish(struct shard *s)
{
	for (;;) {
		unsigned work = 0;
		bool left = false;
		for (uint32_t a = 0; a < s->active_count; a++) {
			uint32_t i = s->active[a];
			work += shard_drain(s, i);
			left |= rill_ring_count(s->producers[i].events) > 0;
		}
		work += shard_poll_logs(s);
		if (!left)
			break;
		if (work == 0) {
			struct timespec nap = {.tv_sec = 0, .tv_nsec = 50000}; /* the disk's turn */
			nanosleep(&nap, NULL);
		}
	}
	for (uint32_t i = 0; i < s->part_count; i++) {
		struct shard_part *sp = s->parts[i];
		int rc = sp->error == 0 ? rill_partition_sync(sp->part) : sp->error;
		if (rc < 0 && sp->error == 0)
			sp->error = rc;
		shard_part_durable(s, sp);
		shard_acks_wake(s);
		/* A failed log (now or before) is an error of the close: on a durability none
		 * topic the final sync is the only durability point its events get. */
		if (sp->error != 0 && s->error == 0)
			s->error = sp->error;
		rc = sp->error == 0 ? rill_partition_close(sp->part)
				    : (rill_partition_drop(sp->part), 0);
		if (rc < 0 && s->error == 0)
			s->error = rc;
		rill_io_destroy(sp->io);
		for (uint32_t j = 0; j < RILL_ENGINE_PROJECTIONS_MAX; j++)
			rill_projection_destroy(sp->projs[j]); /* made here, in this arena */
		free(sp->waits);
		free(sp);
	}
	free(s->parts);
	s->parts = NULL;
	s->part_count = 0;
}

#define SHARD_SNAPSHOT_TURNS    1024u /* turns between looks at the snapshot intervals */
#define SHARD_SNAPSHOT_RETRY_NS (10ull * 1000000000u) /* after a failed snapshot */

/* Snapshot every partition whose interval has passed, or with @all every one that has
 * events its newest snapshot lacks (blocks: a sync and a write). 0 or the first error. */
int shard_snapshots(struct shard *s, bool all)
{
	const struct rill_engine_config *c = &s->engine->config;
	/* Not before every projection is bound (engine open): a snapshot without their states
	 * would become the newest, and retention would trim what their rebuild needs. */
	if (!all && (c->snapshots_off || !s->opened))
		return 0;
	uint64_t now = rill_clock_now_ns();
	int first = 0;
	for (uint32_t i = 0; i < s->part_count; i++) {
		struct shard_part *sp = s->parts[i];
		uint64_t next = rill_partition_next_offset(sp->part);
		if (sp->error != 0 || next == sp->snap_offset || (!all && now < sp->snap_retry_ns))
			continue;
		bool by_count = c->snapshot_interval_events != 0 &&
				next - sp->snap_offset >= c->snapshot_interval_events;
		bool by_time = c->snapshot_interval_ns != 0 &&
			       now - sp->snap_ns >= c->snapshot_interval_ns;
		if (!all && !by_count && !by_time)
			continue;
		if (!all) /* the application had an interval to define its projections again */
			rill_partition_snapshot_forget_loaded(sp->part);
		int rc = rill_partition_snapshot(sp->part, c->snapshots_kept);
		sp->snap_ns = now;
		if (rc < 0) {
			/* Retried later, not every turn: each try syncs and writes the state. */
			sp->snap_retry_ns = now + SHARD_SNAPSHOT_RETRY_NS;
			s->snapshot_errors++;
			if (first == 0)
				first = rc;
			const char *why = rill_partition_snapshot_error(sp->part);
			fprintf(stderr, "rill: shard %u: topic %s partition %u: snapshot: %s%s%s\n",
				s->index, sp->topic->name, sp->partition, why, why[0] ? ": " : "",
				rill_strerror(rc));
			continue;
		}
		sp->snap_offset = rill_partition_snapshot_offset(sp->part);
		s->snapshots++;
	}
	return first;
}

#define SHARD_EXPIRE_INTERVAL_NS 1000000000ull /* between looks at its logs' retention */

/*
 * Retention on time (rill_log_expire) for every partition, idle ones included (no append
 * or poll runs for those), at most once a second. Called every SHARD_SNAPSHOT_TURNS turns
 * and after each sleep, so the clock is read at most that often, never on the append path;
 * the wall clock once per pass, for all the partitions. A log a roll failed is stopped, and
 * its error reported by the next turn's poll (shard_part_poll_due sees it).
 */
static void shard_expire(struct shard *s)
{
	uint64_t now = rill_clock_now_ns();
	if (now < s->expire_next_ns)
		return;
	s->expire_next_ns = now + SHARD_EXPIRE_INTERVAL_NS;
	uint64_t wall_ns = rill_clock_wall_ns();
	for (uint32_t i = 0; i < s->part_count; i++) {
		struct shard_part *sp = s->parts[i];
		if (sp->error == 0)
			(void)rill_log_expire(rill_partition_log(sp->part), wall_ns);
	}
}

void *shard_main(void *arg)
{
	struct shard *s = arg;
	struct rill_engine *e = s->engine;
	uint64_t idle_since = 0;
	shard_self = s; /* rill_publish from this thread (a hook) may take events directly */
	while (!s->stopping) {
		unsigned work = 0;
		if (rill_atomic_load_relaxed_u64(&s->reqs_pending)) /* a hint; shard_control_run
								     * takes the lock */
			work += shard_control_run(s);
		work += shard_drain_all(s);
		work += shard_poll_logs(s);
		work += shard_subs_feed(s);
		for (uint32_t h = 0; h < s->hook_count; h++)
			work += s->hooks[h].poll(s->hooks[h].arg); /* server, DPDK */
		if (++s->turns % SHARD_SNAPSHOT_TURNS == 0) {
			(void)shard_snapshots(s, false); /* errors: counted and reported */
			shard_expire(s);
		}
		if (work > 0) {
			idle_since = 0;
			continue;
		}
		if (e->config.poll == RILL_POLL_BUSY) {
			rill_cpu_pause();
			continue;
		}
		uint64_t now = rill_clock_now_ns();
		if (idle_since == 0)
			idle_since = now;
		if (now - idle_since < e->config.idle_spin_ns || s->hooks_sleepless > 0) {
			/* Yield, not pause: a thread sharing the CPU (a client, a host
			 * thread) gets it while there is nothing to do here. */
			sched_yield();
			continue;
		}
		bool napped = shard_sleep(s);
		(void)shard_snapshots(s, false); /* a sleep (or a nap) per look: cheap enough */
		shard_expire(s);
		/* After a nap that lasted, nap again at once, unless the device has something
		 * now (work > 0 restarts the spin), rather than spin idle_spin_ns after each. */
		if (!napped)
			idle_since = 0;
	}
	shard_control_refuse(s); /* those queued after STOP's turn took the mailbox */
	shard_finish(s);
	shard_self = NULL;
	return NULL;
}

int shard_call(struct shard *s, struct shard_req *req)
{
	/* From a shard's thread (a hook, or a callback it runs) it would wait for an answer
	 * that thread, or a shard waiting for it, never gives: refused, not a hang. */
	if (shard_self != NULL)
		return -EDEADLK;
	req->done = false;
	pthread_mutex_lock(&s->lock);
	if (s->stopped) {
		/* The loop has ended, or ends after this turn: nobody would answer. */
		pthread_mutex_unlock(&s->lock);
		return -ESHUTDOWN;
	}
	req->next = s->reqs;
	s->reqs = req;
	s->callers++;
	rill_atomic_store_release_u64(&s->reqs_pending, 1); /* R3: pairs with shard_has_input */
	pthread_mutex_unlock(&s->lock);
	shard_wake(s);
	pthread_mutex_lock(&s->lock);
	/* Answered by the loop, or refused by its stop (shard_control_refuse): never left. */
	while (!req->done)
		pthread_cond_wait(&s->cond, &s->lock);
	s->callers--;
	if (s->callers == 0 && s->stopped)
		pthread_cond_broadcast(&s->cond); /* shard_fini may destroy the lock now */
	pthread_mutex_unlock(&s->lock);
	return req->result;
}
