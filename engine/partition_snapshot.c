/*
 * Partition snapshots (partition.h; layout in docs/FORMAT.md, "Partition snapshots"): the
 * dedup table and every bound projection's state, as of an offset, in one file per
 * snapshot, DIR/snapshots/<20-digit offset>.snap, written to a temporary name, synced,
 * renamed and the directory synced. They make restarts cheap (load, then replay only what
 * follows), keep producer idempotence beyond retention (W4 in partition.c), and bound the
 * cost of as-of reads. Owner shard's thread; blocking; not on the per-event path.
 *
 *   header (64 bytes)   magic "RPN1", version 1, offset, history_from, created_ns,
 *                       producer_count, projection_count, total_bytes, timestamp_max,
 *                       flags (bit 0: timestamp_max is known; 0 in older files)
 *   producers           producer_count dedup entries (88 bytes each)
 *   projections         each: name_bytes (u32), 0 (u32), state_bytes (u64), the name and
 *                       the state (rill_projection_snapshot), each padded to 8 bytes
 *   trailer (8 bytes)   CRC32C of everything before it, then 0 (u32)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/clock.h"
#include "engine/partition_int.h"

#define SNAP_MAGIC   0x314e5052u /* "RPN1" */
#define SNAP_VERSION 1u
#define SNAP_SUFFIX  ".snap"

struct snap_header {
	uint32_t magic;
	uint32_t version;
	uint64_t offset;
	uint64_t history_from;
	uint64_t created_ns;
	uint32_t producer_count;
	uint32_t projection_count;
	uint64_t total_bytes;
	uint64_t timestamp_max; /* the highest record timestamp below offset, if known */
	uint64_t flags;         /* SNAP_F_*: anything else refuses the file */
};

#define SNAP_F_TIMESTAMP_MAX 1u /* timestamp_max holds (else it is 0) */
_Static_assert(sizeof(struct snap_header) == 64, "snapshot header layout");
_Static_assert(sizeof(struct dedup_entry) == 88, "snapshot producer entry layout");

struct snap_proj_header {
	uint32_t name_bytes;
	uint32_t reserved;
	uint64_t state_bytes;
};

static uint64_t snap_pad8(uint64_t n)
{
	return (n + 7u) & ~7ull;
}

/* The partition's snapshots/ folder. */
static void snap_dir(const struct rill_partition *part, char *out, size_t bytes)
{
	snprintf(out, bytes, "%s/snapshots", part->dir);
}

static void snap_path(const struct rill_partition *part, uint64_t offset, char *out, size_t bytes)
{
	snprintf(out, bytes, "%s/snapshots/%020" PRIu64 SNAP_SUFFIX, part->dir, offset);
}

/* The snapshots in the directory, by offset, ascending. */
struct snap_list {
	uint64_t offsets[RILL_PARTITION_SNAPSHOTS_MAX * 2];
	uint32_t count;
	uint32_t dropped; /* entries beyond the array */
};

static int snap_list_entry(void *arg, const char *name)
{
	struct snap_list *l = arg;
	size_t n = strlen(name);
	if (n != 20 + strlen(SNAP_SUFFIX) || strcmp(name + 20, SNAP_SUFFIX) != 0)
		return 0; /* temporary files and anything else */
	uint64_t offset = 0;
	for (int i = 0; i < 20; i++) {
		uint64_t digit = (uint64_t)(name[i] - '0');
		if (name[i] < '0' || name[i] > '9' || offset > (UINT64_MAX - digit) / 10)
			return 0; /* not ours, or an offset no log reaches */
		offset = offset * 10 + digit;
	}
	if (l->count == RILL_ARRAY_COUNT(l->offsets)) {
		l->dropped++; /* more than twice what is ever kept: the caller says so */
		return 0;
	}
	l->offsets[l->count++] = offset;
	return 0;
}

static int snap_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int snap_list(struct rill_partition *part, struct snap_list *l)
{
	char dir[4200];
	snap_dir(part, dir, sizeof(dir));
	l->count = 0;
	l->dropped = 0;
	int rc = part->io->ops->list(part->io, dir, snap_list_entry, l);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (l->count > 1)
		qsort(l->offsets, l->count, sizeof(l->offsets[0]), snap_cmp);
	return 0;
}

/* Read the snapshot of @offset whole. */
static int snap_read(struct rill_partition *part, uint64_t offset, uint8_t **out, uint64_t *bytes)
{
	char path[4300];
	snap_path(part, offset, path, sizeof(path));
	int handle;
	int rc = part->io->ops->open(part->io, path, RILL_IO_RDONLY, &handle);
	if (rc < 0)
		return rc;
	uint64_t size = 0;
	rc = part->io->ops->size(part->io, handle, &size);
	uint8_t *buf = NULL;
	size_t got = 0;
	if (rc == 0 &&
	    (size < sizeof(struct snap_header) + 8 || size > RILL_PARTITION_SNAPSHOT_BYTES_MAX))
		rc = RILL_E_PROJECTION_SNAPSHOT;
	if (rc == 0 && (buf = malloc(size)) == NULL)
		rc = -ENOMEM;
	if (rc == 0)
		rc = part->io->ops->pread(part->io, handle, buf, size, 0, &got);
	part->io->ops->close(part->io, handle);
	if (rc == 0 && got != size)
		rc = RILL_E_PROJECTION_SNAPSHOT;
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*bytes = size;
	return 0;
}

/* Check a snapshot's framing: header, CRC, producer and projection entries in bounds, and
 * at most @producers_max producers (UINT32_MAX where its dedup table is not loaded). */
static bool snap_verify(uint64_t producers_max, const uint8_t *buf, uint64_t bytes, uint64_t offset,
			struct snap_header *h)
{
	memcpy(h, buf, sizeof(*h));
	if (h->magic != SNAP_MAGIC || h->version != SNAP_VERSION || h->total_bytes != bytes ||
	    h->offset != offset || h->history_from > h->offset ||
	    (h->flags & ~(uint64_t)SNAP_F_TIMESTAMP_MAX) != 0 ||
	    (!(h->flags & SNAP_F_TIMESTAMP_MAX) && h->timestamp_max != 0) ||
	    h->producer_count > producers_max ||
	    h->projection_count > RILL_PARTITION_PROJECTIONS_MAX)
		return false;
	uint32_t crc, zero;
	memcpy(&crc, buf + bytes - 8, 4);
	memcpy(&zero, buf + bytes - 4, 4);
	if (zero != 0 || crc != rill_crc32c(buf, bytes - 8))
		return false;
	uint64_t pos = sizeof(*h) + (uint64_t)h->producer_count * sizeof(struct dedup_entry);
	for (uint32_t i = 0; i < h->projection_count; i++) {
		struct snap_proj_header ph;
		if (pos + sizeof(ph) > bytes - 8)
			return false;
		memcpy(&ph, buf + pos, sizeof(ph));
		pos += sizeof(ph);
		if (ph.name_bytes == 0 || ph.name_bytes > RILL_PROJECTION_NAME_BYTES_MAX ||
		    ph.reserved != 0 || ph.state_bytes > bytes)
			return false;
		pos += snap_pad8(ph.name_bytes) + snap_pad8(ph.state_bytes);
	}
	return pos == bytes - 8;
}

/* The state stored for projection @name, or NULL. The snapshot is verified. */
/* A projection's entry in a checked snapshot. */
struct snap_entry {
	const uint8_t *name;
	uint32_t name_bytes;
	const uint8_t *state;
	uint64_t state_bytes;
};

/* Where a checked snapshot's first projection entry starts. */
static uint64_t snap_entries_pos(const struct snap_header *h)
{
	return sizeof(*h) + (uint64_t)h->producer_count * sizeof(struct dedup_entry);
}

/* The entry at *@pos of checked snapshot @buf; *@pos moves to the next. */
static void snap_entry_next(const uint8_t *buf, uint64_t *pos, struct snap_entry *e)
{
	struct snap_proj_header ph;
	memcpy(&ph, buf + *pos, sizeof(ph));
	*pos += sizeof(ph);
	*e = (struct snap_entry){.name = buf + *pos,
				 .name_bytes = ph.name_bytes,
				 .state = buf + *pos + snap_pad8(ph.name_bytes),
				 .state_bytes = ph.state_bytes};
	*pos += snap_pad8(ph.name_bytes) + snap_pad8(ph.state_bytes);
}

static const uint8_t *snap_find(const uint8_t *buf, const struct snap_header *h, const char *name,
				uint64_t *state_bytes)
{
	uint64_t pos = snap_entries_pos(h);
	size_t n = strlen(name);
	for (uint32_t i = 0; i < h->projection_count; i++) {
		struct snap_entry e;
		snap_entry_next(buf, &pos, &e);
		if (e.name_bytes == n && memcmp(e.name, name, n) == 0) {
			*state_bytes = e.state_bytes;
			return e.state;
		}
	}
	return NULL;
}

/* Whether a projection named so is bound to @part. */
static bool snap_bound(const struct rill_partition *part, const struct snap_entry *e)
{
	for (uint32_t i = 0; i < part->projection_count; i++) {
		const char *name = rill_projection_name(part->projections[i]);
		if (strlen(name) == e->name_bytes && memcmp(name, e->name, e->name_bytes) == 0)
			return true;
	}
	return false;
}

/* Whether the snapshot loaded at open holds a projection not bound (again) yet. */
static bool snap_holds_unbound(const struct rill_partition *part)
{
	if (part->snap.buf == NULL)
		return false;
	struct snap_header h;
	memcpy(&h, part->snap.buf, sizeof(h));
	uint64_t pos = snap_entries_pos(&h);
	for (uint32_t i = 0; i < h.projection_count; i++) {
		struct snap_entry e;
		snap_entry_next(part->snap.buf, &pos, &e);
		if (!snap_bound(part, &e))
			return true;
	}
	return false;
}

/* Load the dedup table from a verified snapshot into the (empty) table. */
static bool snap_load_dedup(struct rill_partition *part, const uint8_t *buf,
			    const struct snap_header *h)
{
	const uint8_t *p = buf + sizeof(*h);
	for (uint32_t i = 0; i < h->producer_count; i++, p += sizeof(struct dedup_entry)) {
		struct dedup_entry in;
		memcpy(&in, p, sizeof(in));
		if (in.producer_id == 0 || in.first_seq > in.last_seq)
			return false;
		struct dedup_entry *e = dedup_slot(part, in.producer_id);
		if (e->producer_id != 0)
			return false; /* listed twice */
		for (uint32_t w = 0; w < RILL_PARTITION_DEDUP_WINDOW; w++) {
			uint64_t seq = in.last_seq - w;
			if (seq < in.first_seq || seq > in.last_seq)
				break; /* below its first: no offset to check */
			if (in.offsets[seq % RILL_PARTITION_DEDUP_WINDOW] >= h->offset)
				return false; /* an offset the snapshot does not cover */
		}
		*e = in;
		part->stats.producers++;
	}
	return true;
}

void partition_dedup_clear(struct rill_partition *part)
{
	memset(part->dedup, 0, (part->dedup_mask + 1) * sizeof(*part->dedup));
	part->stats.producers = 0;
}

int partition_snapshot_check(struct rill_partition *part, const uint8_t *buf, uint64_t bytes,
			     uint64_t offset)
{
	struct snap_header h;
	if (bytes < sizeof(h) + 8 || !snap_verify(part->producers_max, buf, bytes, offset, &h) ||
	    !snap_load_dedup(part, buf, &h)) {
		partition_dedup_clear(part);
		return RILL_E_PROJECTION_SNAPSHOT;
	}
	return 0;
}

const uint8_t *partition_snapshot_state(const uint8_t *buf, const char *name, uint64_t *state_bytes)
{
	struct snap_header h;
	memcpy(&h, buf, sizeof(h));
	return snap_find(buf, &h, name, state_bytes);
}

void partition_snap_free(struct partition_snap *snap)
{
	free(snap->buf);
	*snap = (struct partition_snap){0};
}

/* The offset retention must keep from: the oldest snapshot the log can still continue
 * (so that each kept one stays usable, for restarts and as-of reads), 0 with none. */
static uint64_t snap_floor(const struct rill_partition *part, const struct snap_list *l)
{
	uint64_t start = rill_log_start_offset(part->log);
	uint64_t next = rill_log_next_offset(part->log);
	for (uint32_t i = 0; i < l->count; i++) {
		if (l->offsets[i] >= start && l->offsets[i] <= next)
			return l->offsets[i];
	}
	return 0;
}

/*
 * Keep the newest @keep of @l's first @count snapshots (ascending), deleting the older
 * ones but @protect's (UINT64_MAX: none); the entries from @count on are left alone. One
 * whose deletion fails stays, listed (it still holds the floor). Not synced: a power cut
 * that undoes a deletion brings back a snapshot older than every one kept, never used
 * while they load, and deleted again by the next pruning.
 */
static void snap_prune(struct rill_partition *part, struct snap_list *l, uint32_t count,
		       uint32_t keep, uint64_t protect)
{
	RILL_ASSERT(count <= l->count);
	uint32_t drop = count > keep ? count - keep : 0, kept = 0;
	for (uint32_t i = 0; i < l->count; i++) {
		if (i < drop && l->offsets[i] != protect) {
			char path[4300];
			snap_path(part, l->offsets[i], path, sizeof(path));
			int rc = part->io->ops->unlink(part->io, path);
			if (rc == 0 || rc == -ENOENT)
				continue;
		}
		l->offsets[kept++] = l->offsets[i];
	}
	l->count = kept;
}

/*
 * True if @buf is a sound snapshot but for holding more producers than @part's table
 * takes: written under a larger producers_max. Skipping it as if damaged would lose what
 * only it still knows, once retention has deleted the log before it: its producers (their
 * retries would be appended twice) and its projections' states. *@count: how many.
 */
static bool snap_too_many_producers(const struct rill_partition *part, const uint8_t *buf,
				    uint64_t bytes, uint64_t offset, uint32_t *count)
{
	struct snap_header h;
	if (bytes < sizeof(h) + 8 || !snap_verify(UINT32_MAX, buf, bytes, offset, &h) ||
	    h.producer_count <= part->producers_max)
		return false;
	*count = h.producer_count;
	return true;
}

int partition_snapshot_load(struct rill_partition *part, char *why, size_t why_bytes)
{
	struct snap_list l;
	int rc = snap_list(part, &l);
	if (rc < 0)
		return rc;
	part->stats.snapshots_skipped += l.dropped;
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s/snapshots/.snapshot.tmp", part->dir);
	(void)part->io->ops->unlink(part->io, tmp); /* an interrupted write's */
	uint64_t start = rill_log_start_offset(part->log);
	uint64_t next = rill_log_next_offset(part->log);
	/* A snapshot past the log's end describes events the log no longer has (a repair cut
	 * them): once the log grew past it again, it would be taken for the new ones. So it
	 * goes, and for good before anything is appended: a power cut must not bring it
	 * back (a failure to delete it refuses the open rather than risk that). */
	bool cut = false;
	while (l.count > 0 && l.offsets[l.count - 1] > next) {
		char path[4300];
		snap_path(part, l.offsets[--l.count], path, sizeof(path));
		rc = part->io->ops->unlink(part->io, path);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		part->stats.snapshots_skipped++;
		cut = true;
	}
	if (cut) {
		char dir[4200];
		snap_dir(part, dir, sizeof(dir));
		rc = part->io->ops->fsync_dir(part->io, dir);
		if (rc < 0)
			return rc;
	}
	for (uint32_t i = l.count; i-- > 0;) {
		uint64_t offset = l.offsets[i];
		uint8_t *buf;
		uint64_t bytes;
		struct snap_header h;
		if (offset < start) {
			part->stats.snapshots_skipped++; /* the log cannot continue from it */
			continue;
		}
		rc = snap_read(part, offset, &buf, &bytes);
		if (rc == -ENOMEM)
			return rc;
		uint32_t count;
		if (rc == 0 && snap_too_many_producers(part, buf, bytes, offset, &count)) {
			free(buf);
			snprintf(why, why_bytes,
				 "snapshot %020" PRIu64 " holds %" PRIu32 " idempotent producers, "
				 "more than producers_max (%" PRIu32 "): open with producers_max "
				 "%" PRIu32 " or more",
				 offset, count, part->producers_max, count);
			return -ENOSPC;
		}
		if (rc == 0 && partition_snapshot_check(part, buf, bytes, offset) != 0) {
			free(buf);
			rc = RILL_E_PROJECTION_SNAPSHOT;
		}
		if (rc < 0) {
			/* Said, as the log says a damaged index: an operator learns why the open
			 * replayed more than usual, and which file to look at. */
			part->stats.snapshots_skipped++;
			fprintf(stderr,
				"rill: %s/snapshots/%020" PRIu64
				".snap: skipped (%s); the partition "
				"rebuilds from an older snapshot or the log\n",
				part->dir, offset, rill_strerror(rc));
			continue;
		}
		memcpy(&h, buf, sizeof(h));
		part->snap_timestamp_max = h.timestamp_max;
		part->timestamp_max_known = (h.flags & SNAP_F_TIMESTAMP_MAX) || start == 0;
		part->snap = (struct partition_snap){.buf = buf, .bytes = bytes, .offset = offset};
		part->snapshot_offset = offset;
		/* snapshots_kept now, not at the next snapshot: a partition that gets no event
		 * takes none, and the ones a larger count kept would hold retention back for
		 * as long as it stays idle. This one and the older ones count; newer ones that
		 * failed to load are left to the next snapshot's pruning (a read error may have
		 * been passing). */
		if (part->snapshots_kept > 0)
			snap_prune(part, &l, i + 1, part->snapshots_kept, offset);
		part->snapshot_floor = snap_floor(part, &l);
		part->history_from = h.history_from; /* W4: what the table knew, then */
		return 0;
	}
	part->snapshot_offset = 0; /* none usable: the whole log is the only truth */
	part->snapshot_floor = 0;
	part->timestamp_max_known = start == 0;
	return 0;
}

/* Build the snapshot of the present state (everything below next_offset). */
static int snap_build(struct rill_partition *part, uint8_t **out, uint64_t *bytes_out)
{
	uint64_t producers = 0;
	for (uint64_t i = 0; i <= part->dedup_mask; i++)
		producers += part->dedup[i].producer_id != 0;
	uint64_t bytes = sizeof(struct snap_header) + producers * sizeof(struct dedup_entry) + 8;
	for (uint32_t i = 0; i < part->projection_count; i++)
		bytes += sizeof(struct snap_proj_header) +
			 snap_pad8(strlen(rill_projection_name(part->projections[i]))) +
			 snap_pad8(rill_projection_snapshot_bytes(part->projections[i]));
	/* At the loaded snapshot's own offset, the states of its projections not bound again
	 * yet are exact: they go in too, or this file would replace theirs (same name). */
	uint64_t offset = rill_log_next_offset(part->log);
	struct snap_header loaded = {0};
	uint32_t carried = 0;
	if (part->snap.buf != NULL && part->snap.offset == offset) {
		memcpy(&loaded, part->snap.buf, sizeof(loaded));
		uint64_t pos = snap_entries_pos(&loaded);
		for (uint32_t i = 0; i < loaded.projection_count; i++) {
			struct snap_entry e;
			snap_entry_next(part->snap.buf, &pos, &e);
			if (snap_bound(part, &e))
				continue;
			bytes += sizeof(struct snap_proj_header) + snap_pad8(e.name_bytes) +
				 snap_pad8(e.state_bytes);
			carried++;
		}
	}
	if (bytes > RILL_PARTITION_SNAPSHOT_BYTES_MAX)
		return -EFBIG;
	uint8_t *buf = calloc(1, bytes);
	if (buf == NULL)
		return -ENOMEM;
	struct snap_header h = {.magic = SNAP_MAGIC,
				.version = SNAP_VERSION,
				.offset = offset,
				.history_from = part->history_from,
				.created_ns = rill_clock_wall_ns(),
				.producer_count = (uint32_t)producers,
				.projection_count = part->projection_count + carried,
				.total_bytes = bytes};
	if (part->timestamp_max_known) { /* W5: the log's own, with the loaded snapshot's */
		uint64_t ts = rill_log_timestamp_max(part->log);
		h.timestamp_max = ts > part->snap_timestamp_max ? ts : part->snap_timestamp_max;
		h.flags = SNAP_F_TIMESTAMP_MAX;
	}
	memcpy(buf, &h, sizeof(h));
	uint64_t pos = sizeof(h);
	for (uint64_t i = 0; i <= part->dedup_mask; i++) {
		if (part->dedup[i].producer_id == 0)
			continue;
		memcpy(buf + pos, &part->dedup[i], sizeof(part->dedup[i]));
		pos += sizeof(part->dedup[i]);
	}
	for (uint32_t i = 0; i < part->projection_count; i++) {
		const struct rill_projection *p = part->projections[i];
		const char *name = rill_projection_name(p);
		struct snap_proj_header ph = {.name_bytes = (uint32_t)strlen(name),
					      .state_bytes = rill_projection_snapshot_bytes(p)};
		memcpy(buf + pos, &ph, sizeof(ph));
		pos += sizeof(ph);
		memcpy(buf + pos, name, ph.name_bytes);
		pos += snap_pad8(ph.name_bytes);
		int64_t n = rill_projection_snapshot(p, buf + pos, ph.state_bytes);
		if (n != (int64_t)ph.state_bytes) {
			/* A custom projection whose snapshot failed, or whose size-only answer
			 * was not exact: no snapshot this time (the previous ones stay). Named,
			 * or the error would read as the disk's. */
			if (n == -EPROTO) /* rill_projection_snapshot: past the buffer */
				snprintf(
					part->snap_error, sizeof(part->snap_error),
					"projection %s: its snapshot gave more than the %llu bytes "
					"its size-only call said",
					name, (unsigned long long)ph.state_bytes);
			else if (n < 0)
				snprintf(part->snap_error, sizeof(part->snap_error),
					 "projection %s: its snapshot failed", name);
			else
				snprintf(part->snap_error, sizeof(part->snap_error),
					 "projection %s: its snapshot gave %lld bytes, its "
					 "size-only "
					 "call %llu",
					 name, (long long)n, (unsigned long long)ph.state_bytes);
			free(buf);
			return n < 0 ? (int)n : -EPROTO;
		}
		pos += snap_pad8(ph.state_bytes);
	}
	uint64_t from = snap_entries_pos(&loaded);
	for (uint32_t i = 0; i < loaded.projection_count && carried > 0; i++) {
		struct snap_entry e;
		snap_entry_next(part->snap.buf, &from, &e);
		if (snap_bound(part, &e))
			continue;
		struct snap_proj_header ph = {.name_bytes = e.name_bytes,
					      .state_bytes = e.state_bytes};
		memcpy(buf + pos, &ph, sizeof(ph));
		pos += sizeof(ph);
		memcpy(buf + pos, e.name, e.name_bytes);
		pos += snap_pad8(e.name_bytes);
		memcpy(buf + pos, e.state, e.state_bytes);
		pos += snap_pad8(e.state_bytes);
	}
	RILL_ASSERT(pos == bytes - 8);
	uint32_t crc = rill_crc32c(buf, bytes - 8);
	memcpy(buf + pos, &crc, sizeof(crc));
	*out = buf;
	*bytes_out = bytes;
	return 0;
}

/* Write @buf as the snapshot of @offset: temporary file, sync, rename, directory sync. */
static int snap_write(struct rill_partition *part, uint64_t offset, const uint8_t *buf,
		      uint64_t bytes)
{
	struct rill_io *io = part->io;
	char dir[4200], tmp[4300], path[4300];
	snap_dir(part, dir, sizeof(dir));
	snprintf(tmp, sizeof(tmp), "%s/.snapshot.tmp", dir);
	snap_path(part, offset, path, sizeof(path));
	int rc = 0;
	if (!part->snap_dir_made) {
		rc = io->ops->mkdir(io, dir);
		if (rc == 0)
			rc = io->ops->fsync_dir(io, part->dir); /* the folder's own entry */
		part->snap_dir_made = rc == 0;
	}
	return rc == 0 ? rill_io_replace_file(io, dir, tmp, path, buf, bytes) : rc;
}

const char *rill_partition_snapshot_error(const struct rill_partition *part)
{
	return part->snap_error;
}

int rill_partition_snapshot(struct rill_partition *part, uint32_t keep)
{
	if (keep == 0 || keep > RILL_PARTITION_SNAPSHOTS_MAX)
		return -EINVAL;
	part->snap_error[0] = '\0';
	int rc = rill_log_sync(part->log); /* a snapshot covers durable events only */
	uint8_t *buf = NULL;
	uint64_t bytes = 0, offset = rill_log_next_offset(part->log);
	if (rc == 0)
		rc = snap_build(part, &buf, &bytes); /* at offset: the log is synced, idle */
	if (rc == 0)
		rc = snap_write(part, offset, buf, bytes);
	free(buf);
	if (rc < 0)
		return rc;
	part->snapshot_offset = offset;
	part->stats.snapshots++;
	/* Keep the newest @keep; older ones go (a failure here loses nothing), but for the one
	 * loaded at open while it holds projections not bound again yet. */
	struct snap_list l;
	if (snap_list(part, &l) == 0) {
		snap_prune(part, &l, l.count, keep,
			   part->snap.kept ? part->snap.offset : UINT64_MAX);
		part->snapshot_floor = snap_floor(part, &l);
	}
	/* With periodic snapshots, the log keeps what the oldest kept one needs. Without them
	 * (config.snapshots off) a snapshot asked for holds nothing back: no later one would
	 * move the floor, and retention would stop for good. */
	if (part->snapshots)
		rill_log_retain_floor(part->log, part->snapshot_floor);
	return 0;
}

uint64_t rill_partition_snapshot_offset(const struct rill_partition *part)
{
	return part->snapshot_offset;
}

static int as_of_restore(struct rill_partition *part, struct rill_projection *proj, uint64_t lowest,
			 uint64_t end, uint64_t *from, char *why, size_t why_bytes, int *refused);

/*
 * @proj's limits refused its state in the snapshot of @offset (@state): why, and what to
 * open with, into @why. Returns -ENOSPC.
 */
static int bind_beyond_limits(const struct rill_projection *proj, uint64_t offset,
			      const uint8_t *state, uint64_t state_bytes, char *why,
			      size_t why_bytes)
{
	uint32_t keys = 0, keys_max;
	uint64_t key_bytes = 0, store_bytes;
	(void)rill_projection_snapshot_keys(state, state_bytes, &keys, &key_bytes); /* sound */
	rill_projection_limits(proj, &keys_max, &store_bytes);
	const char *name = rill_projection_name(proj);
	if (keys > keys_max && key_bytes > store_bytes)
		snprintf(why, why_bytes,
			 "snapshot %020" PRIu64 " holds %" PRIu32
			 " keys of projection %s in %" PRIu64
			 " bytes, more than projection_keys_max (%" PRIu32
			 ") and projection_key_store_bytes (%" PRIu64 "): open with "
			 "projection_keys_max %" PRIu32 " and projection_key_store_bytes %" PRIu64
			 " or more",
			 offset, keys, name, key_bytes, keys_max, store_bytes, keys, key_bytes);
	else if (keys > keys_max)
		snprintf(why, why_bytes,
			 "snapshot %020" PRIu64 " holds %" PRIu32 " keys of projection %s, more "
			 "than projection_keys_max (%" PRIu32 "): open with projection_keys_max "
			 "%" PRIu32 " or more",
			 offset, keys, name, keys_max, keys);
	else
		snprintf(why, why_bytes,
			 "snapshot %020" PRIu64 " holds %" PRIu64
			 " bytes of keys of projection %s, "
			 "more than projection_key_store_bytes (%" PRIu64 "): open with "
			 "projection_key_store_bytes %" PRIu64 " or more",
			 offset, key_bytes, name, store_bytes, key_bytes);
	return -ENOSPC;
}

int rill_partition_projection_bind(struct rill_partition *part, struct rill_projection *proj,
				   char *why, size_t why_bytes)
{
	char why_none[1];
	if (why == NULL) { /* not NULL below: as_of_restore tells a bind by it */
		why = why_none;
		why_bytes = sizeof(why_none);
	}
	if (why_bytes > 0)
		why[0] = '\0';
	uint64_t start = rill_log_start_offset(part->log);
	uint64_t from = start;
	bool restored = false;
	int refused = 0; /* a restore that refused a state found for it (a custom one's) */
	/* The loaded snapshot, if the log still continues from it (with snapshots off no floor
	 * holds retention back, which may have passed it since). */
	if (part->snap.buf != NULL && part->snap.offset >= start) {
		struct snap_header h;
		memcpy(&h, part->snap.buf, sizeof(h));
		uint64_t state_bytes;
		const uint8_t *state =
			snap_find(part->snap.buf, &h, rill_projection_name(proj), &state_bytes);
		struct rill_schema_error err;
		int rc = state != NULL ? rill_projection_restore(proj, state, state_bytes, &err)
				       : -ENOENT;
		if (rc == -ENOMEM)
			return rc;
		/* Written under larger limits: refused, like a dedup table past producers_max
		 * (snap_too_many_producers), not skipped as if damaged. */
		if (rc == -ENOSPC)
			return bind_beyond_limits(proj, part->snap.offset, state, state_bytes, why,
						  why_bytes);
		restored = rc == 0;
		if (restored)
			from = part->snap.offset;
		else if (state != NULL)
			refused = rc;
	}
	if (!restored) {
		/* Not in the loaded snapshot (a new projection), refused by it (the failed
		 * restore left it empty), or none loaded: from the newest kept one holding
		 * it, if any the log can continue; else rebuilt from the log. */
		uint64_t snap_from;
		int rc = as_of_restore(part, proj, start, rill_log_next_offset(part->log),
				       &snap_from, why, why_bytes, &refused);
		if (rc < 0)
			return rc;
		restored = snap_from > 0;
		if (restored)
			from = snap_from;
	}
	if (!restored && start > 0 && refused != 0) {
		/* Its own restore refused its state (a custom projection's, say), as for a
		 * skipped snapshot below: said, since its answers now miss events. */
		snprintf(why, why_bytes,
			 "projection %s: its restore refused its state in the snapshots (%s) and "
			 "the log before offset %" PRIu64
			 " is gone: folded from there, its answers "
			 "miss the events before",
			 rill_projection_name(proj), rill_strerror(refused), start);
	} else if (!restored && start > 0 && part->stats.snapshots_skipped > 0) {
		/* Its state may have been in one of them: rebuilt from what retention kept, it
		 * misses the events before. Said, not refused: the snapshots may come back from
		 * a backup (this open wrote nothing over them yet), and an operator may prefer
		 * the partial answers to no server. */
		snprintf(why, why_bytes,
			 "projection %s: no snapshot restored it (%" PRIu64
			 " found unusable) and the log before offset %" PRIu64
			 " is gone: folded from there, its answers miss the events before (restore "
			 "the snapshots from a backup before the next snapshot replaces them)",
			 rill_projection_name(proj), part->stats.snapshots_skipped, start);
	}
	if (restored && rill_projection_refused_with_room(proj)) {
		if (start == 0) {
			/* The whole log is there: folded again, every key it now has room for
			 * counted in full. */
			rill_projection_reset(proj);
			from = 0;
		} else {
			rill_projection_seal(proj);
			struct rill_projection_stats st;
			rill_projection_stats(proj, &st);
			snprintf(why, why_bytes,
				 "projection %s: its state in snapshot %020" PRIu64
				 " refused %" PRIu64
				 " events of new keys for lack of room, and the log before it is "
				 "gone: it takes no new key (keys it lacks answer -ENOSPC)",
				 rill_projection_name(proj), from, st.refused_full);
		}
	}
	int rc = rill_partition_projection_add(part, proj, from);
	if (rc < 0 && why_bytes > 0)
		why[0] = '\0'; /* the note above is moot: the caller reports the fold's error */
	if (rc == 0 && part->snap.kept && !snap_holds_unbound(part))
		partition_snap_free(&part->snap); /* every projection it held is back */
	return rc;
}

void rill_partition_snapshot_release(struct rill_partition *part)
{
	/* Kept for custom projections the application has yet to define; only with periodic
	 * snapshots, which it holds retention for (and the first of which releases it). */
	if (part->snapshots && snap_holds_unbound(part))
		part->snap.kept = true;
	else
		partition_snap_free(&part->snap);
}

void rill_partition_snapshot_forget_loaded(struct rill_partition *part)
{
	if (part->snap.kept)
		partition_snap_free(&part->snap);
}

/* Restore @proj from the newest snapshot from @lowest to @end holding its state: *@from
 * gets its offset, or 0 with none. With @why (a bind), a state beyond @proj's limits
 * refuses (bind_beyond_limits); without (an as-of read), an older snapshot is tried. */
static int as_of_restore(struct rill_partition *part, struct rill_projection *proj, uint64_t lowest,
			 uint64_t end, uint64_t *from, char *why, size_t why_bytes, int *refused)
{
	struct snap_list l;
	int rc = snap_list(part, &l);
	if (rc < 0)
		return rc;
	for (uint32_t i = l.count; i-- > 0;) {
		if (l.offsets[i] > end || l.offsets[i] < lowest)
			continue;
		uint8_t *buf;
		uint64_t bytes, state_bytes;
		struct snap_header h;
		if (snap_read(part, l.offsets[i], &buf, &bytes) < 0)
			continue;
		const uint8_t *state = NULL;
		if (snap_verify(UINT32_MAX, buf, bytes, l.offsets[i], &h))
			state = snap_find(buf, &h, rill_projection_name(proj), &state_bytes);
		struct rill_schema_error err;
		int restored = state != NULL
				       ? rill_projection_restore(proj, state, state_bytes, &err)
				       : -ENOENT;
		if (restored == -ENOSPC && why != NULL)
			restored = bind_beyond_limits(proj, l.offsets[i], state, state_bytes, why,
						      why_bytes);
		free(buf);
		if (restored == -ENOMEM || (restored == -ENOSPC && why != NULL))
			return restored;
		if (state != NULL && restored != 0 && refused != NULL)
			*refused = restored;
		if (restored == 0) {
			*from = l.offsets[i];
			return 0;
		}
	}
	*from = 0; /* no snapshot: from the log's beginning, if it still has it */
	return 0;
}

/* The projection bound to @part under @name, or NULL. */
static const struct rill_projection *bound_named(const struct rill_partition *part,
						 const char *name)
{
	for (uint32_t i = 0; i < part->projection_count; i++) {
		if (strcmp(rill_projection_name(part->projections[i]), name) == 0)
			return part->projections[i];
	}
	return NULL;
}

/*
 * Fresh @proj gets @live's state: every event below next_offset (W3), made durable first
 * (readers see durable events only). That is the value now, also once retention deleted
 * the log's start and no snapshot holds the projection, when no replay could rebuild it.
 */
static int as_of_live(struct rill_partition *part, struct rill_projection *proj,
		      const struct rill_projection *live)
{
	int rc = 0;
	if (rill_log_durable_offset(part->log) < rill_log_next_offset(part->log) &&
	    (rc = rill_log_sync(part->log)) < 0)
		return rc;
	size_t bytes = rill_projection_snapshot_bytes(live);
	uint8_t *buf = malloc(bytes > 0 ? bytes : 1);
	if (buf == NULL)
		return -ENOMEM;
	int64_t n = rill_projection_snapshot(live, buf, bytes);
	struct rill_schema_error err;
	rc = n < 0 ? (int)n : rill_projection_restore(proj, buf, (size_t)n, &err);
	free(buf);
	return rc;
}

int rill_partition_as_of(struct rill_partition *part, struct rill_projection *proj, uint64_t offset)
{
	uint64_t next = rill_log_next_offset(part->log);
	uint64_t end = offset >= next ? next : offset + 1; /* events below end are folded */
	const struct rill_projection *live =
		end == next ? bound_named(part, rill_projection_name(proj)) : NULL;
	if (live != NULL)
		return as_of_live(part, proj, live); /* at or past the last event: the value now */
	uint64_t from;
	int rc = as_of_restore(part, proj, 0, end, &from, NULL, 0, NULL);
	if (rc < 0)
		return rc;
	if (from < end && from < rill_log_start_offset(part->log))
		return -ERANGE; /* retention deleted events between the snapshot and the target */
	if (rill_log_durable_offset(part->log) < end && (rc = rill_log_sync(part->log)) < 0)
		return rc; /* readers see durable events only */
	struct rill_log_iter it;
	rc = rill_log_iter_init(&it, part->log, from);
	if (rc < 0)
		return rc;
	struct rill_record rec;
	uint64_t at;
	while (it.offset < end && (rc = rill_log_iter_next(&it, &rec, &at)) == 1) {
		if (at < end)
			(void)rill_projection_apply(proj, &rec,
						    at); /* errors: its stats count them */
	}
	rill_log_iter_fini(&it);
	return rc < 0 ? rc : 0;
}

/*
 * An upper bound on the stamps of the records retention deleted (those below @start):
 * the timestamp_max of the oldest kept snapshot at or past @start that has one (W5: it
 * covers every record below its offset, deleted or kept). 1 with *@ts_max set, 0 with no
 * such snapshot, or -ENOMEM. The bound also covers the kept records between @start and
 * that snapshot, so it may be above every deleted stamp, but only where the read could
 * not be answered anyway: a prefix ending before that snapshot needs one at or after
 * @start and below it, and there is none (it is the oldest; an older rill's, which record
 * no timestamp_max, are passed over, and such prefixes answer -ERANGE). Cached until the
 * start passes it (no later snapshot lies below it): the files are read once per move of
 * the start, not at each read.
 */
static int snap_gone_timestamp_max(struct rill_partition *part, uint64_t start, uint64_t *ts_max)
{
	if (part->gone_cached && part->gone_snap_offset >= start) {
		*ts_max = part->gone_timestamp_max;
		return 1;
	}
	part->gone_cached = false;
	struct snap_list l;
	if (snap_list(part, &l) < 0)
		return 0; /* none known: as if it had none */
	for (uint32_t i = 0; i < l.count; i++) {
		if (l.offsets[i] < start)
			continue;
		uint8_t *buf;
		uint64_t bytes;
		int rc = snap_read(part, l.offsets[i], &buf, &bytes);
		if (rc == -ENOMEM)
			return rc;
		if (rc < 0)
			continue;
		struct snap_header h;
		bool known = snap_verify(UINT32_MAX, buf, bytes, l.offsets[i], &h) &&
			     (h.flags & SNAP_F_TIMESTAMP_MAX);
		free(buf);
		if (!known)
			continue;
		part->gone_cached = true;
		part->gone_snap_offset = l.offsets[i];
		part->gone_timestamp_max = h.timestamp_max;
		*ts_max = h.timestamp_max;
		return 1;
	}
	return 0;
}

int rill_partition_offset_at(struct rill_partition *part, uint64_t timestamp_ns, uint64_t *offset)
{
	int rc = rill_log_sync(part->log);
	if (rc < 0)
		return rc;
	/* W5: no record, deleted or kept, is stamped later: the whole log, without a read
	 * (and rill_partition_as_of gives its last event's state, the value now). */
	uint64_t next = rill_log_next_offset(part->log);
	if (part->timestamp_max_known && part->snap_timestamp_max <= timestamp_ns &&
	    rill_log_timestamp_max(part->log) <= timestamp_ns) {
		*offset = next > 0 ? next - 1 : UINT64_MAX;
		return 0;
	}
	/* With records deleted, the prefix is known only if none of them is stamped later:
	 * else it ends in what retention deleted. Checked first, which also spares the read
	 * below: a deleted stamp ahead raises every time index key after it, and the read
	 * would start at the log's start. */
	uint64_t start = rill_log_start_offset(part->log);
	if (start > 0) {
		uint64_t gone_ts_max = 0;
		rc = snap_gone_timestamp_max(part, start, &gone_ts_max);
		if (rc < 0)
			return rc;
		if (rc == 0 || gone_ts_max > timestamp_ns)
			return -ERANGE;
	}
	uint64_t first = 0;
	rc = rill_log_find_time(part->log, timestamp_ns, &first);
	struct rill_log_iter it;
	if (rc == 0)
		rc = rill_log_iter_init(&it, part->log, first);
	if (rc < 0)
		return rc;
	/* Batches before `first` hold only earlier events; from there, read in log order
	 * up to the first event stamped later. */
	uint64_t last = first > 0 ? first - 1 : UINT64_MAX;
	struct rill_record rec;
	uint64_t at;
	while ((rc = rill_log_iter_next(&it, &rec, &at)) == 1) {
		if (rec.timestamp_ns > timestamp_ns)
			break;
		last = at;
	}
	rill_log_iter_fini(&it);
	if (rc < 0)
		return rc;
	/* From the start on (first is), or just before it: then no deleted record is stamped
	 * later, and rill_partition_as_of answers from a snapshot at the start, if any. */
	RILL_ASSERT(first >= start);
	*offset = last;
	return 0;
}
