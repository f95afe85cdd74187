/*
 * The write model of one partition (engine/partition.h): check, deduplicate, append,
 * project. Runs on the owner shard's thread, once per event: no locks, no allocation after
 * open (the dedup table is sized by producers_max).
 *
 * Dedup table: open addressing with linear probing over a power-of-two capacity of at
 * least twice producers_max, keyed by producer id (never 0). Per producer: the highest
 * sequence written and the offsets of the last RILL_PARTITION_DEDUP_WINDOW sequences, in a
 * ring indexed by sequence.
 *
 * Invariants:
 *   W1. A producer's sequences in the log are contiguous from its first one: the write
 *       model refuses gaps, and replay at open sees the same sequence of writes. The
 *       events a command turned into (write_group) share its sequence, in one batch, one
 *       after the other: replay counts the sequence once, at the first.
 *   W2. offsets[seq % WINDOW] is the offset of seq for every seq in
 *       (last_seq - WINDOW, last_seq] the producer has written.
 *   W3. Every projection bound has folded every event of the log below next_offset, and
 *       nothing else (from its snapshot's state, or from the first offset it was bound at).
 *   W4. The dedup table holds every producer that wrote at or after history_from: 0 when
 *       the log was replayed whole, else the first offset retention kept, or what the
 *       snapshot it was loaded from recorded (snapshots keep producers retention deleted).
 *   W5. With timestamp_max_known, no record the partition ever held, deleted or kept, is
 *       stamped above max(snap_timestamp_max, the log's rill_log_timestamp_max): known from
 *       a log replayed whole, or from a snapshot that knew it (its timestamp_max covers
 *       every record below it; the log, every record kept). So is each snapshot's
 *       timestamp_max: the oldest one at or past the log's start bounds the stamps of
 *       the records retention deleted, which an as-of read by time must know.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/clock.h"
#include "base/compiler.h"
#include "engine/partition.h"
#include "engine/partition_int.h"
#include "engine/schema_int.h"

#define PARTITION_PRODUCERS_DEFAULT 4096u

void rill_partition_config_default(struct rill_partition_config *c)
{
	memset(c, 0, sizeof(*c));
	rill_log_config_default(&c->log);
	c->producers_max = PARTITION_PRODUCERS_DEFAULT;
}

/* The entry of @producer_id, or the empty slot where it would go. */
struct dedup_entry *dedup_slot(const struct rill_partition *part, uint64_t producer_id)
{
	/* Fibonacci hashing: the product's top bits, as dense ids would collide in the low. */
	uint64_t h = producer_id * 0x9e3779b97f4a7c15ull;
	for (uint64_t i = h >> part->dedup_shift;; i++) {
		struct dedup_entry *e = &part->dedup[i & part->dedup_mask];
		if (e->producer_id == producer_id || e->producer_id == 0)
			return e;
	}
}

/* Record that @producer_id wrote @seq at @offset (a slot from dedup_slot). */
void dedup_record(struct rill_partition *part, struct dedup_entry *e, uint64_t producer_id,
		  uint64_t seq, uint64_t offset)
{
	if (e->producer_id == 0) {
		e->producer_id = producer_id;
		e->first_seq = seq;
		part->stats.producers++;
	}
	e->last_seq = seq;
	e->offsets[seq % RILL_PARTITION_DEDUP_WINDOW] = offset;
}

/* Fold the event at @offset into every projection; errors are the projections' to count. */
static void project(struct rill_partition *part, const struct rill_record *rec, uint64_t offset)
{
	for (uint32_t i = 0; i < part->projection_count; i++)
		if (rill_unlikely(rill_projection_apply(part->projections[i], rec, offset) != 0))
			part->stats.projection_errors++;
}

/*
 * Walk the log from @from_offset: rebuild the dedup table (@dedup) and fold into @proj
 * (when not NULL). Makes everything written durable first: iterators read durable data.
 */
int partition_replay(struct rill_partition *part, uint64_t from_offset, bool dedup,
		     struct rill_projection *proj)
{
	int rc = rill_log_sync(part->log);
	struct rill_log_iter it;
	if (rc == 0)
		rc = rill_log_iter_init(&it, part->log, from_offset);
	if (rc != 0)
		return rc;
	if (it.offset != from_offset && proj != NULL) {
		rill_log_iter_fini(&it);
		return -ERANGE; /* retention deleted events the projection needs */
	}
	struct rill_record rec;
	uint64_t offset;
	while ((rc = rill_log_iter_next(&it, &rec, &offset)) == 1) {
		if (dedup && rec.producer_id != 0) {
			struct dedup_entry *e = dedup_slot(part, rec.producer_id);
			if (e->producer_id == 0 && part->stats.producers >= part->producers_max) {
				rc = -ENOSPC; /* written under a larger limit */
				break;
			}
			/* A command's events share its sequence: the first one is its offset. */
			if (e->producer_id == 0 || rec.sequence != e->last_seq)
				dedup_record(part, e, rec.producer_id, rec.sequence, offset);
		}
		if (dedup)
			part->stats.replayed++;
		if (proj != NULL && rill_projection_apply(proj, &rec, offset) != 0)
			part->stats.projection_errors++;
	}
	rill_log_iter_fini(&it);
	return rc;
}

int rill_partition_open(struct rill_partition **out, const struct rill_partition_config *config,
			struct rill_log_recovery *report)
{
	if (config->io == NULL || config->dir == NULL || config->schemas == NULL ||
	    config->producers_max == 0 || config->producers_max > RILL_PARTITION_PRODUCERS_MAX ||
	    config->snapshots_kept > RILL_PARTITION_SNAPSHOTS_MAX)
		return -EINVAL;
	struct rill_partition *part = calloc(1, sizeof(*part));
	if (part == NULL)
		return -ENOMEM;
	part->schemas = config->schemas;
	part->producers_max = config->producers_max;
	part->snapshots_kept = config->snapshots_kept;
	part->io = config->io;
	part->snapshots = config->snapshots;
	snprintf(part->dir, sizeof(part->dir), "%s", config->dir);
	uint64_t capacity = 1;
	while (capacity < 2ull * config->producers_max)
		capacity <<= 1;
	part->dedup_mask = capacity - 1;
	part->dedup_shift = 64u - (unsigned)__builtin_ctzll(capacity);
	part->dedup = calloc(capacity, sizeof(*part->dedup));
	int rc = part->dedup == NULL ? -ENOMEM : 0;
	if (rc == 0)
		rc = rill_log_open(&part->log, config->io, config->dir, &config->log, report);
	if (rc == 0) {
		/* From the newest snapshot, or the whole log that is left (W4). */
		part->history_from = rill_log_start_offset(part->log);
		char *why = report != NULL ? report->message : NULL;
		size_t why_bytes = report != NULL ? sizeof(report->message) : 0;
		rc = partition_snapshot_load(part, why, why_bytes);
		if (rc == 0) {
			rc = partition_replay(part, part->snap.offset, true, NULL);
			if (rc == -ENOSPC && why != NULL)
				snprintf(why, why_bytes,
					 "the log holds more idempotent producers than "
					 "producers_max (%" PRIu32 "): open with a larger one",
					 part->producers_max);
		}
		/* With periodic snapshots, retention keeps what they need: the oldest usable
		 * one's log, or everything until the first. Without, nothing is held back
		 * (no later snapshot would move the floor). */
		if (rc == 0 && part->snapshots)
			rill_log_retain_floor(part->log, part->snapshot_floor);
		/* Retention at open, once the floor is known (the log's own open cannot know
		 * it): what expired while the engine was down goes now, not at the next roll
		 * (an idle partition's may never come). After the replay, so that W4 holds:
		 * the table knows more producers than the log then keeps, never fewer. */
		if (rc == 0)
			rc = rill_log_expire(part->log, rill_clock_wall_ns());
	}
	if (rc != 0) {
		partition_snap_free(&part->snap);
		if (part->log != NULL)
			rill_log_drop(part->log);
		free(part->dedup);
		free(part);
		return rc;
	}
	*out = part;
	return 0;
}

static void partition_free(struct rill_partition *part)
{
	partition_snap_free(&part->snap);
	free(part->dedup);
	free(part);
}

int rill_partition_close(struct rill_partition *part)
{
	int rc = rill_log_close(part->log);
	partition_free(part);
	return rc;
}

void rill_partition_drop(struct rill_partition *part)
{
	rill_log_drop(part->log);
	partition_free(part);
}

int rill_partition_projection_add(struct rill_partition *part, struct rill_projection *proj,
				  uint64_t from_offset)
{
	for (uint32_t i = 0; i < part->projection_count; i++)
		if (part->projections[i] == proj)
			return -EEXIST; /* it would fold every event twice */
	if (part->projection_count == RILL_PARTITION_PROJECTIONS_MAX)
		return -ENOSPC;
	if (from_offset > rill_log_next_offset(part->log))
		return -EINVAL;
	int rc = partition_replay(part, from_offset, false, proj); /* W3 */
	if (rc != 0)
		return rc;
	part->projections[part->projection_count++] = proj;
	return 0;
}

/* Steps 1 and 2: the event's schema, then its producer's sequence. */
static int admit(struct rill_partition *part, const struct rill_record *rec,
		 struct dedup_entry **entry, struct rill_partition_write *result,
		 struct rill_schema_error *err)
{
	const struct rill_schema *s =
		rec->schema_version == 0
			? NULL
			: rill_schema_get_id(part->schemas, rec->type_id, rec->schema_version);
	if (rill_unlikely(s == NULL))
		return schema_fail(err, RILL_E_WRITE_UNKNOWN_TYPE,
				   "event type %u version %u is not registered", rec->type_id,
				   rec->schema_version);
	int rc = rill_schema_validate(s, rec->payload, rec->payload_bytes, err);
	if (rill_unlikely(rc != 0))
		return rc;
	*entry = NULL;
	if (rec->producer_id == 0)
		return 0;
	struct dedup_entry *e = dedup_slot(part, rec->producer_id);
	*entry = e;
	if (e->producer_id == 0) {
		if (rill_unlikely(part->stats.producers >= part->producers_max))
			return schema_fail(err, -ENOSPC,
					   "producer %llu: this partition tracks %u producers "
					   "already",
					   (unsigned long long)rec->producer_id,
					   part->producers_max);
		/*
		 * A producer new here starts at 0. Other sequences are gaps, except where
		 * retention deleted part of the log: the producer may have written there, and
		 * a retry of one of those events would go in twice.
		 */
		uint64_t start = part->history_from; /* W4 */
		if (rill_unlikely(rec->sequence != 0 && start > 0))
			return schema_fail(
				err, RILL_E_WRITE_SEQUENCE,
				"producer %llu: unknown here, and the log before offset "
				"%llu was deleted, so sequence %llu cannot be checked; a "
				"new producer starts at 0",
				(unsigned long long)rec->producer_id, (unsigned long long)start,
				(unsigned long long)rec->sequence);
		/* Not "wherever it starts": sequence 0 overtaken by 1 (a datagram) would
		 * then be refused for good, below the start 1 set. */
		if (rill_unlikely(rec->sequence != 0))
			return schema_fail(err, RILL_E_WRITE_SEQUENCE_GAP,
					   "producer %llu: new here, so its first sequence is 0, "
					   "not %llu; send the ones before it first",
					   (unsigned long long)rec->producer_id,
					   (unsigned long long)rec->sequence);
		return 0;
	}
	uint64_t seq = rec->sequence;
	if (seq > e->last_seq) {
		if (rill_unlikely(seq != e->last_seq + 1))
			return schema_fail(err, RILL_E_WRITE_SEQUENCE_GAP,
					   "producer %llu: sequence %llu after %llu leaves a gap; "
					   "send %llu first",
					   (unsigned long long)rec->producer_id,
					   (unsigned long long)seq, (unsigned long long)e->last_seq,
					   (unsigned long long)e->last_seq + 1);
		return 0;
	}
	if (rill_unlikely(seq < e->first_seq))
		return schema_fail(err, RILL_E_WRITE_SEQUENCE,
				   "producer %llu: sequence %llu is below its first here (%llu)",
				   (unsigned long long)rec->producer_id, (unsigned long long)seq,
				   (unsigned long long)e->first_seq);
	result->duplicate = true;
	if (e->last_seq - seq < RILL_PARTITION_DEDUP_WINDOW) {
		result->offset = e->offsets[seq % RILL_PARTITION_DEDUP_WINDOW];
		result->sync_offset = result->offset;
		return 0;
	}
	/* Written, since a producer's sequences go in without gaps from its first; where, the
	 * window no longer says. It is durable once the oldest one kept is. */
	result->offset = UINT64_MAX;
	result->sync_offset = e->offsets[(e->last_seq - RILL_PARTITION_DEDUP_WINDOW + 1) %
					 RILL_PARTITION_DEDUP_WINDOW];
	return 0;
}

int rill_partition_write(struct rill_partition *part, const struct rill_record *rec,
			 struct rill_partition_write *result, struct rill_schema_error *err)
{
	struct dedup_entry *e = NULL;
	result->duplicate = false;
	int rc = rill_log_error(part->log);
	if (rill_unlikely(rc != 0)) /* fail-stop: not even a duplicate is acknowledged */
		return schema_fail(err, rc, "the log has stopped: %s", rill_strerror(rc));
	rc = admit(part, rec, &e, result, err);
	if (rill_unlikely(rc != 0)) {
		part->stats.refused++;
		return rc;
	}
	if (result->duplicate) {
		part->stats.duplicates++;
		return 0;
	}
	uint64_t offset;
	rc = rill_log_append(part->log, rec, &offset);
	if (rill_unlikely(rc != 0)) {
		if (rc <= RILL_E_RECORD_TRUNCATED && rc >= RILL_E_RECORD_PAYLOAD_TOO_LONG)
			part->stats.refused++; /* the record itself is over a limit */
		return schema_fail(err, rc, "append: %s", rill_strerror(rc));
	}
	if (e != NULL)
		dedup_record(part, e, rec->producer_id, rec->sequence, offset);
	project(part, rec, offset);
	part->stats.written++;
	result->offset = offset;
	result->sync_offset = offset;
	return 0;
}

int rill_partition_poll(struct rill_partition *part, uint64_t wait_ns)
{
	return rill_log_poll(part->log, wait_ns);
}

int rill_partition_sync(struct rill_partition *part)
{
	return rill_log_sync(part->log);
}

uint64_t rill_partition_durable_offset(const struct rill_partition *part)
{
	return rill_log_durable_offset(part->log);
}

uint64_t rill_partition_next_offset(const struct rill_partition *part)
{
	return rill_log_next_offset(part->log);
}

struct rill_log *rill_partition_log(struct rill_partition *part)
{
	return part->log;
}

void rill_partition_stats(const struct rill_partition *part, struct rill_partition_stats *out)
{
	*out = part->stats;
	/* Late events are a fold's outcome, kept (and snapshotted) by each projection. */
	out->projection_late = 0;
	for (uint32_t i = 0; i < part->projection_count; i++) {
		struct rill_projection_stats ps;
		rill_projection_stats(part->projections[i], &ps);
		out->projection_late += ps.late;
	}
}

int rill_partition_check(struct rill_partition *part, const struct rill_record *rec,
			 struct rill_partition_write *result, struct rill_schema_error *err)
{
	struct dedup_entry *e = NULL;
	result->duplicate = false;
	int rc = rill_log_error(part->log);
	if (rill_unlikely(rc != 0))
		return schema_fail(err, rc, "the log has stopped: %s", rill_strerror(rc));
	rc = admit(part, rec, &e, result, err);
	if (rc != 0)
		part->stats.refused++;
	else if (result->duplicate)
		part->stats.duplicates++;
	return rc;
}

int rill_partition_write_group(struct rill_partition *part, const struct rill_record *cmd,
			       struct rill_record *events, uint32_t count,
			       struct rill_partition_write *result, struct rill_schema_error *err)
{
	if (count == 0 || count > RILL_PARTITION_GROUP_MAX)
		return schema_fail(err, -EINVAL, "a command makes 1 to %u events, not %u",
				   RILL_PARTITION_GROUP_MAX, count);
	struct dedup_entry *e = NULL;
	result->duplicate = false;
	int rc = rill_log_error(part->log);
	if (rill_unlikely(rc != 0))
		return schema_fail(err, rc, "the log has stopped: %s", rill_strerror(rc));
	rc = admit(part, cmd, &e, result, err); /* the command's sequence */
	if (rc != 0 || result->duplicate) {
		part->stats.refused += rc != 0;
		part->stats.duplicates += rc == 0;
		return rc;
	}
	for (uint32_t i = 0; i < count; i++) {
		/* Each event: the command's key, producer, sequence and tracing ids. */
		events[i].key = cmd->key;
		events[i].key_bytes = cmd->key_bytes;
		events[i].producer_id = cmd->producer_id;
		events[i].sequence = cmd->sequence;
		events[i].correlation_id = cmd->correlation_id;
		if (events[i].timestamp_ns == 0)
			events[i].timestamp_ns = cmd->timestamp_ns;
		struct rill_partition_write ignored;
		struct dedup_entry *unused;
		struct rill_record anon = events[i];
		anon.producer_id = 0; /* the schema checks only; the sequence was checked above */
		rc = admit(part, &anon, &unused, &ignored, err);
		if (rc != 0) {
			part->stats.refused++;
			char inner[sizeof(err->message)];
			memcpy(inner, err->message, sizeof(inner));
			inner[sizeof(inner) - 1] = '\0';
			return schema_fail(err, rc, "event %u of the command: %.400s", i, inner);
		}
	}
	uint64_t first;
	rc = rill_log_append_group(part->log, events, count, &first);
	if (rill_unlikely(rc != 0)) {
		if (rc == -EMSGSIZE)
			part->stats.refused++;
		return schema_fail(err, rc, "append: %s", rill_strerror(rc));
	}
	if (e != NULL)
		dedup_record(part, e, cmd->producer_id, cmd->sequence, first);
	for (uint32_t i = 0; i < count; i++)
		project(part, &events[i], first + i);
	part->stats.written += count;
	result->offset = first;
	result->sync_offset = first + count - 1;
	return 0;
}

void rill_partition_projection_remove(struct rill_partition *part, struct rill_projection *proj)
{
	for (uint32_t i = 0; i < part->projection_count; i++) {
		if (part->projections[i] != proj)
			continue;
		memmove(&part->projections[i], &part->projections[i + 1],
			(part->projection_count - i - 1) * sizeof(part->projections[0]));
		part->projection_count--;
		return;
	}
}
