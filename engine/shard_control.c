/*
 * The shard's side of the control path: the requests host threads leave in its mailbox
 * (engine_int.h, struct shard_req), run on the shard's thread between bursts. Opening a
 * partition or defining a projection reads the log and blocks the shard meanwhile; that is
 * the price of touching the shard's state without locks, and it is paid at set-up.
 * Not the hot path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/assert.h"
#include "base/atomic.h"
#include "base/clock.h"
#include "engine/engine_int.h"

/* The time a sleeping shard waits before looking at a batch that has a delay. */
#define SHARD_SLEEP_DIRTY_NS_MAX 1000000u /* completions wake it earlier (eventfd) */
#define SHARD_SLEEP_NO_NOTIFY_NS 50000u   /* a backend that cannot signal completions */
/* A durability-none topic's batch delay when it sets none: its acknowledgements never wait
 * for the disk, so its log writes and syncs at most this often instead of whenever the
 * disk is free. The price: its subscribers see an event up to this much later (they read
 * what is synced), and a power cut may take this much more. Measured on 2 vCPUs
 * (scripts/bench-peers.sh): against a sync after every finished sync, 1 ms gave +12%
 * events/s (50 connections); for one unpipelined connection the syncs' kernel work, on
 * the CPUs the shards and the client share, set the round trip's p99: 55-68 us with 1 ms,
 * 36-50 us with 10 ms, 33-40 us with 20 ms (p99.9 rising to 150 us). */
#define SHARD_NONE_BATCH_DELAY_NS 10000000u

static int shard_part_open(struct shard *s, struct shard_req *r)
{
	struct rill_engine *e = s->engine;
	struct engine_topic *t = r->topic;
	struct shard_part *sp = calloc(1, sizeof(*sp));
	char dir[4400];
	int rc = -ENOMEM;
	if (sp == NULL)
		return engine_error(r->err, rc, "out of memory");
	sp->topic = t;
	sp->partition = r->partition;
	sp->waits = calloc(RILL_ENGINE_DURABLE_PENDING_MAX, sizeof(*sp->waits));
	struct shard_part **parts = realloc(s->parts, (s->part_count + 1) * sizeof(*parts));
	if (parts != NULL)
		s->parts = parts; /* moved or not, the old block is gone */
	if (sp->waits == NULL || parts == NULL) {
		engine_error(r->err, rc, "out of memory");
		goto out_free;
	}
	rc = rill_io_mux_view(s->mux, &sp->io);
	if (rc < 0) {
		engine_error(r->err, rc, "out of memory");
		goto out_free;
	}
	snprintf(dir, sizeof(dir), "%s/topics/%s/%u", e->data_dir, t->name, r->partition);
	struct rill_partition_config pc;
	rill_partition_config_default(&pc);
	pc.io = sp->io;
	pc.dir = dir;
	pc.schemas = e->schemas;
	pc.producers_max = e->config.producers_max;
	pc.snapshots = !e->config.snapshots_off;
	pc.snapshots_kept = e->config.snapshots_kept;
	pc.log.durability = t->config.durability;
	pc.log.retention_bytes = t->config.retention_bytes;
	pc.log.retention_age_ns = t->config.retention_age_ns;
	if (t->config.segment_bytes_max > 0)
		pc.log.segment_bytes_max = t->config.segment_bytes_max;
	if (t->config.batch_bytes_max > 0)
		pc.log.batch_bytes_max = t->config.batch_bytes_max;
	pc.log.batch_delay_ns = t->config.batch_delay_ns;
	pc.log.buffered_io = e->config.log_buffered_io;
	pc.log.fixed_batches = e->config.log_fixed_batches;
	pc.log.must_exist = r->must_exist;
	if (pc.log.batch_delay_ns == 0 && t->config.durability == RILL_DURABILITY_NONE)
		pc.log.batch_delay_ns = SHARD_NONE_BATCH_DELAY_NS;
	struct rill_log_recovery report = {0};
	rc = rill_partition_open(&sp->part, &pc, &report);
	if (rc < 0) {
		engine_error(r->err, rc, "topic %s partition %u (%s): %s%s%s", t->name,
			     r->partition, dir, rill_strerror(rc), report.message[0] ? ": " : "",
			     report.message);
		goto out_view;
	}
	if (report.message[0] != '\0') /* a torn tail cut, an empty torn segment removed */
		fprintf(stderr, "rill: topic %s partition %u: %s\n", t->name, r->partition,
			report.message);
	sp->durable_sent = rill_partition_durable_offset(sp->part);
	sp->snap_offset = rill_partition_snapshot_offset(sp->part);
	sp->snap_ns = rill_clock_now_ns();
	s->parts[s->part_count++] = sp;
	t->parts[r->partition].sp = sp;
	uint64_t bound =
		pc.log.batch_delay_ns > 0 ? pc.log.batch_delay_ns : SHARD_SLEEP_DIRTY_NS_MAX;
	if (!s->notify_ok && bound > SHARD_SLEEP_NO_NOTIFY_NS)
		bound = SHARD_SLEEP_NO_NOTIFY_NS;
	if (bound < s->delay_ns_min)
		s->delay_ns_min = bound;
	return 0;
out_view:
	rill_io_destroy(sp->io);
out_free:
	free(sp->waits);
	free(sp);
	return rc;
}

/* Close a partition of a topic whose creation failed: never published, so idle. */
static int shard_part_close(struct shard *s, struct shard_req *r)
{
	struct shard_part *sp = r->topic->parts[r->partition].sp;
	for (uint32_t i = 0; i < s->part_count; i++) {
		if (s->parts[i] != sp)
			continue;
		s->parts[i] = s->parts[--s->part_count];
		break;
	}
	RILL_ASSERT(sp->waits_count == 0);
	int rc = rill_partition_close(sp->part);
	rill_io_destroy(sp->io);
	free(sp->waits);
	free(sp);
	r->topic->parts[r->partition].sp = NULL;
	return rc;
}

/* A fresh instance of projection @ep (in this shard's arena). A built-in one's refusal
 * says why in @serr (zeroed by the caller: left empty where nothing was said). */
static int shard_projection_make(struct shard *s, const struct engine_projection *ep,
				 uint32_t partition, struct rill_projection **out,
				 struct rill_schema_error *serr)
{
	if (ep->ops != NULL)
		return rill_projection_create_custom(out, ep->name, ep->ops, ep->ops_arg,
						     partition);
	struct rill_projection_config pc;
	rill_projection_config_default(&pc);
	pc.name = ep->def.name;
	pc.type = ep->def.type;
	pc.version = ep->def.version;
	pc.kind = ep->def.kind;
	pc.field = ep->def.field;
	pc.window_ns = ep->def.window_ns;
	pc.keys_max = s->engine->config.projection_keys_max;
	pc.key_store_bytes = s->engine->config.projection_key_store_bytes;
	return rill_projection_create(out, s->engine->schemas, &pc, serr);
}

/* Create this shard's instance of a projection and fold its partitions' logs into it. */
static int shard_projection_add(struct shard *s, struct shard_req *r)
{
	struct engine_projection *ep = r->proj;
	/* One instance per partition: a partition's read model travels with it (snapshots
	 * are per partition, whichever shard runs it). */
	for (uint32_t i = 0; i < s->part_count; i++) {
		struct shard_part *sp = s->parts[i];
		if (sp->topic != ep->topic)
			continue;
		struct rill_projection *inst;
		struct rill_schema_error serr = {{0}};
		int rc = shard_projection_make(s, ep, sp->partition, &inst, &serr);
		if (rc < 0 && serr.message[0] != '\0') /* it names the projection and the cause */
			return engine_error(r->err, rc, "%s", serr.message);
		if (rc < 0)
			return engine_error(r->err, rc, "projection %s: %s", ep->name,
					    rill_strerror(rc));
		/* From the partition's snapshot if it holds this projection, else from the first
		 * event retention kept: a projection reflects the log it has. */
		char why[400];
		rc = rill_partition_projection_bind(sp->part, inst, why, sizeof(why));
		if (rc < 0) {
			rill_projection_destroy(inst);
			if (why[0] != '\0') /* a snapshot beyond the projection limits */
				return engine_error(r->err, rc, "topic %s partition %u: %s",
						    sp->topic->name, sp->partition, why);
			return engine_error(
				r->err, rc,
				"projection %s: rebuilding from topic %s partition %u: %s",
				ep->name, sp->topic->name, sp->partition, rill_strerror(rc));
		}
		if (why[0] != '\0') /* bound, but sealed (no new key), or partial: said */
			fprintf(stderr, "rill: topic %s partition %u: %s\n", sp->topic->name,
				sp->partition, why);
		sp->projs[ep->index] = inst;
		/* Defined while running: its state goes into a snapshot at once, so that no
		 * restart rebuilds it from a log retention trimmed since; also when nothing came
		 * since the last one, which lacks it (rewritten at the same offset). An empty
		 * partition needs none: a rebuild from offset 0 is exact. */
		if (s->opened && !s->engine->config.snapshots_off &&
		    rill_partition_next_offset(sp->part) > 0 &&
		    rill_partition_snapshot(sp->part, s->engine->config.snapshots_kept) == 0) {
			sp->snap_offset = rill_partition_snapshot_offset(sp->part);
			s->snapshots++;
		}
	}
	return 0;
}

/* A key @inst does not hold: never seen (-ENOENT), or perhaps one of the new keys it
 * refused once its table or key store was full (-ENOSPC): their events were appended and
 * acknowledged, but not folded, and an answer of "never seen" would be a wrong one. */
static int shard_key_absent(const struct rill_projection *inst)
{
	struct rill_projection_stats st;
	rill_projection_stats(inst, &st);
	return st.refused_full > 0 ? -ENOSPC : -ENOENT;
}

/*
 * True once @sp's log has stopped (fail-stop). The events of the batches it could not make
 * durable were applied all the same, and their producers told they were refused: from then
 * on the partition's projections hold events a restart will not have, and answer nothing.
 */
static bool shard_part_stopped(const struct shard_part *sp)
{
	return sp->error != 0 || rill_log_error(rill_partition_log(sp->part)) != 0;
}

static int shard_query(struct shard *s, struct shard_req *r)
{
	struct engine_topic *t = r->proj->topic;
	RILL_ASSERT(t->parts[r->partition].shard == s->index);
	if (shard_part_stopped(t->parts[r->partition].sp))
		return RILL_E_LOG_STOPPED;
	if (r->key == NULL) {
		/* Only the token's check: is its offset applied? */
		struct shard_part *sp = t->parts[r->partition].sp;
		/* UINT64_MAX: a duplicate's token whose offset is no longer known, but which
		 * was applied before its producer's last 8 were. */
		return r->min_offset == UINT64_MAX ||
				       rill_partition_next_offset(sp->part) > r->min_offset
			       ? 0
			       : RILL_E_QUERY_STALE;
	}
	struct rill_projection *inst = t->parts[r->partition].sp->projs[r->proj->index];
	if (inst == NULL)
		return -ENOENT;
	if (r->proj->ops != NULL) {
		r->out_len =
			rill_projection_query(inst, r->key, r->key_bytes, r->out, r->out_bytes);
		return r->out_len < 0 ? (int)r->out_len : 0;
	}
	return rill_projection_get(inst, r->key, r->key_bytes, r->value) ? 0
									 : shard_key_absent(inst);
}

static int shard_query_as_of(struct shard *s, struct shard_req *r)
{
	struct engine_topic *t = r->proj->topic;
	RILL_ASSERT(t->parts[r->partition].shard == s->index);
	struct shard_part *sp = t->parts[r->partition].sp;
	if (shard_part_stopped(sp))
		return RILL_E_LOG_STOPPED; /* its log is not what its state says */
	uint64_t offset = r->as_of_offset;
	int rc = 0;
	if (offset == UINT64_MAX)
		rc = rill_partition_offset_at(sp->part, r->as_of_ns, &offset);
	if (rc < 0)
		return rc;
	if (offset == UINT64_MAX)
		return -ENOENT; /* nothing was written by then */
	struct rill_projection *inst = NULL;
	struct rill_schema_error serr = {{0}}; /* as-of answers carry a code, not a text */
	rc = shard_projection_make(s, r->proj, r->partition, &inst, &serr);
	if (rc == 0)
		rc = rill_partition_as_of(sp->part, inst, offset);
	if (rc == 0 && !rill_projection_get(inst, r->key, r->key_bytes, r->value))
		rc = shard_key_absent(inst);
	rill_projection_destroy(inst);
	return rc;
}

static int shard_part_info(struct shard *s, struct shard_req *r)
{
	RILL_ASSERT(r->topic->parts[r->partition].shard == s->index);
	struct shard_part *sp = r->topic->parts[r->partition].sp;
	struct rill_partition *part = sp->part;
	struct rill_log *log = rill_partition_log(part);
	bool stopped = shard_part_stopped(sp);
	r->info->first_offset = rill_log_start_offset(log);
	r->info->durable_offset = rill_partition_durable_offset(part);
	/* A stopped log ends at its durable point: what it held past it is lost (a restart
	 * writes the next event there), and its durable part can still be read. */
	r->info->next_offset = stopped ? r->info->durable_offset : rill_partition_next_offset(part);
	r->as_of_offset = r->info->next_offset;
	if (r->as_of_ns == UINT64_MAX || r->info->next_offset == r->info->first_offset)
		return 0;
	/* The time index and readers see durable batches only: with events past the durable
	 * point, "none that late" would otherwise answer the durable offset, and a
	 * subscription from there would start with events stamped earlier. */
	int rc = r->info->durable_offset < r->info->next_offset ? rill_log_sync(log) : 0;
	if (rc < 0)
		return rc;
	r->info->durable_offset = rill_partition_durable_offset(part);
	rc = rill_log_find_time(log, r->as_of_ns, &r->as_of_offset);
	return rc == -ENOENT ? 0 : rc; /* nothing that late: the end */
}

static void shard_latency_fill(struct rill_latency *out, const struct rill_hist *h)
{
	*out = (struct rill_latency){.count = h->count,
				     .p50_ns = rill_hist_percentile(h, 50.0),
				     .p99_ns = rill_hist_percentile(h, 99.0),
				     .p999_ns = rill_hist_percentile(h, 99.9),
				     .p9999_ns = rill_hist_percentile(h, 99.99),
				     .max_ns = h->count > 0 ? h->max : 0};
}

static int shard_stats(struct shard *s, struct rill_shard_stats *out)
{
	*out = (struct rill_shard_stats){.partitions = s->part_count,
					 .events = s->events,
					 .duplicates = s->duplicates,
					 .refused = s->refused,
					 .lost = s->lost,
					 .stalls = s->stalls,
					 .local = s->local,
					 .sleeps = s->sleeps,
					 .snapshots = s->snapshots,
					 .snapshot_errors = s->snapshot_errors};
	shard_latency_fill(&out->ring, s->hist_ring);
	shard_latency_fill(&out->apply, s->hist_apply);
	shard_latency_fill(&out->applied, s->hist_applied);
	shard_latency_fill(&out->durable, s->hist_durable);
	/* A merge per partition per read (stats are rare; see ARCHITECTURE.md, "Latency
	 * tracing", for the cost), rather than a shared histogram the logs would record into. */
	rill_hist_init(s->hist_sync);
	for (uint32_t i = 0; i < s->part_count; i++)
		rill_hist_merge(s->hist_sync,
				rill_log_sync_hist(rill_partition_log(s->parts[i]->part)));
	shard_latency_fill(&out->sync, s->hist_sync);
	for (uint32_t i = 0; i < s->part_count; i++) {
		struct rill_partition_stats ps;
		rill_partition_stats(s->parts[i]->part, &ps);
		out->projection_errors += ps.projection_errors;
		out->projection_late += ps.projection_late;
		out->snapshots_skipped += ps.snapshots_skipped;
		out->partitions_stopped += shard_part_stopped(s->parts[i]) ? 1u : 0u;
	}
	struct rusage ru;
	if (getrusage(RUSAGE_THREAD, &ru) == 0) /* this runs on the shard's thread */
		out->preempted = (uint64_t)ru.ru_nivcsw;
	return 0;
}

/* Set (or, with a NULL handler, remove) a command handler on the topic's partitions here. */
static int shard_handler_set(struct shard *s, struct shard_req *r)
{
	for (uint32_t i = 0; i < s->part_count; i++) {
		struct shard_part *sp = s->parts[i];
		if (sp->topic != r->topic)
			continue;
		struct shard_handler *free_entry = NULL, *found = NULL;
		for (uint32_t j = 0; j < sp->handler_count; j++) {
			struct shard_handler *h = &sp->handlers[j];
			if (h->fn != NULL && h->type_id == r->type_id)
				found = h;
			else if (h->fn == NULL && free_entry == NULL)
				free_entry = h;
		}
		if (found == NULL && r->handler == NULL)
			continue;
		if (found == NULL) {
			if (free_entry == NULL && sp->handler_count == RILL_COMMAND_HANDLERS_MAX)
				return -ENOSPC; /* the same on every partition: none changed */
			found = free_entry != NULL ? free_entry
						   : &sp->handlers[sp->handler_count++];
		}
		*found = (struct shard_handler){
			.type_id = r->type_id, .fn = r->handler, .arg = r->handler_arg};
	}
	return 0;
}

/* From the hooks set: does any forbid sleeping, and the longest nap the others allow. */
static void shard_hooks_sleep_rules(struct shard *s)
{
	s->hooks_sleepless = 0;
	s->nap_ns = 0;
	for (uint32_t i = 0; i < s->hook_count; i++) {
		const struct rill_shard_hook *h = &s->hooks[i];
		if (h->sleep != NULL)
			continue; /* it waits for its own events */
		if (h->nap_ns == 0)
			s->hooks_sleepless++;
		else if (s->nap_ns == 0 || h->nap_ns < s->nap_ns)
			s->nap_ns = h->nap_ns;
	}
}

static int shard_hook_add(struct shard *s, const struct rill_shard_hook *h)
{
	if (s->hook_count == RILL_SHARD_HOOKS_MAX)
		return -ENOSPC;
	for (uint32_t i = 0; i < s->hook_count; i++)
		if (s->hooks[i].arg == h->arg)
			return -EEXIST; /* removal finds a hook by its arg */
	for (uint32_t i = 0; h->sleep != NULL && i < s->hook_count; i++)
		if (s->hooks[i].sleep != NULL)
			return -EBUSY; /* one waits for the shard, or none */
	s->hooks[s->hook_count++] = *h;
	shard_hooks_sleep_rules(s);
	return 0;
}

static int shard_hook_remove(struct shard *s, void *arg)
{
	for (uint32_t i = 0; i < s->hook_count; i++) {
		if (s->hooks[i].arg != arg)
			continue;
		s->hooks[i] = s->hooks[--s->hook_count];
		shard_hooks_sleep_rules(s);
		return 0;
	}
	return -ENOENT;
}

static int shard_req_run(struct shard *s, struct shard_req *r)
{
	/* A producer's, for the producer requests only: a subscription's slot (the same
	 * field) may be past the producers' array. */
	struct shard_producer *p = NULL;
	if (r->kind == SHARD_REQ_PRODUCER_ATTACH || r->kind == SHARD_REQ_PRODUCER_DETACH) {
		RILL_ASSERT(r->producer_slot < RILL_ENGINE_PRODUCERS_MAX);
		p = &s->producers[r->producer_slot];
	}
	switch (r->kind) {
	case SHARD_REQ_PART_OPEN:
		return shard_part_open(s, r);
	case SHARD_REQ_PART_CLOSE:
		return shard_part_close(s, r);
	case SHARD_REQ_PROJECTION_ADD:
		return shard_projection_add(s, r);
	case SHARD_REQ_PROJECTION_DROP:
		/* A definition that failed on some partition: none keeps a part of it. */
		for (uint32_t i = 0; i < s->part_count; i++) {
			struct shard_part *sp = s->parts[i];
			struct rill_projection *inst = sp->projs[r->proj->index];
			if (inst == NULL)
				continue;
			rill_partition_projection_remove(sp->part, inst);
			rill_projection_destroy(inst);
			sp->projs[r->proj->index] = NULL;
		}
		return 0;
	case SHARD_REQ_PRODUCER_ATTACH:
		RILL_ASSERT(!p->attached && s->active_count < RILL_ENGINE_PRODUCERS_MAX);
		*p = (struct shard_producer){.events = r->events,
					     .acks = r->acks,
					     .attached = true,
					     .sleeping = r->sleeping,
					     .wake_fd = r->wake_fd};
		s->active[s->active_count++] = r->producer_slot;
		return 0;
	case SHARD_REQ_PRODUCER_DETACH:
		/* The producer flushed: nothing left in its ring, nothing owed to it. */
		RILL_ASSERT(p->attached && rill_ring_count(p->events) == 0);
		RILL_ASSERT(p->acks_reserved == 0);
		*p = (struct shard_producer){0};
		for (uint32_t a = 0; a < s->active_count; a++) {
			if (s->active[a] == r->producer_slot) {
				s->active[a] = s->active[--s->active_count];
				break;
			}
		}
		return 0;
	case SHARD_REQ_SUB_ATTACH:
		return shard_sub_attach(s, r);
	case SHARD_REQ_SUB_DETACH:
		shard_sub_detach(s, r->producer_slot);
		return 0;
	case SHARD_REQ_QUERY:
		return shard_query(s, r);
	case SHARD_REQ_QUERY_AS_OF:
		return shard_query_as_of(s, r);
	case SHARD_REQ_HANDLER_SET:
		return shard_handler_set(s, r);
	case SHARD_REQ_SNAPSHOT:
		return shard_snapshots(s, true);
	case SHARD_REQ_OPENED:
		for (uint32_t i = 0; i < s->part_count; i++)
			rill_partition_snapshot_release(s->parts[i]->part);
		s->opened = true;
		return 0;
	case SHARD_REQ_STATS:
		return shard_stats(s, r->stats);
	case SHARD_REQ_PART_INFO:
		return shard_part_info(s, r);
	case SHARD_REQ_HOOK_ADD:
		return shard_hook_add(s, &r->hook);
	case SHARD_REQ_HOOK_REMOVE:
		return shard_hook_remove(s, r->hook.arg);
	case SHARD_REQ_STOP:
		s->stopping = true;
		pthread_mutex_lock(&s->lock);
		s->stopped = true; /* from now on shard_call refuses instead of queueing */
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	RILL_ASSERT(0 && "unknown request");
	return -EINVAL;
}

unsigned shard_control_run(struct shard *s)
{
	pthread_mutex_lock(&s->lock);
	struct shard_req *list = s->reqs;
	s->reqs = NULL;
	rill_atomic_store_relaxed_u64(&s->reqs_pending, 0); /* under the lock: no lost request */
	pthread_mutex_unlock(&s->lock);
	/* The list is newest first: turn it round so requests run in the order made. */
	struct shard_req *fifo = NULL;
	while (list != NULL) {
		struct shard_req *next = list->next;
		list->next = fifo;
		fifo = list;
		list = next;
	}
	unsigned n = 0;
	while (fifo != NULL) {
		struct shard_req *next = fifo->next; /* the caller frees fifo once it is done */
		int rc = shard_req_run(s, fifo);
		pthread_mutex_lock(&s->lock);
		fifo->result = rc;
		fifo->done = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		fifo = next;
		n++;
	}
	return n;
}

void shard_control_refuse(struct shard *s)
{
	pthread_mutex_lock(&s->lock);
	RILL_ASSERT(s->stopped); /* or more could come */
	for (struct shard_req *r = s->reqs; r != NULL; r = r->next) {
		r->result = -ESHUTDOWN;
		r->done = true; /* its caller looks under the lock: after this loop */
	}
	s->reqs = NULL;
	rill_atomic_store_relaxed_u64(&s->reqs_pending, 0); /* under the lock, as above */
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}
