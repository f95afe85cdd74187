/*
 * Reading the log: batch checks (shared with recovery and the offline tools), segment
 * paths, the sparse indexes, the iterator and the timestamp lookup. Runs on the log's
 * owner thread; the iterator reads through file handles of its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/compiler.h"
#include "log_int.h"

void log_segment_path(const struct rill_log *log, uint64_t base_offset, const char *suffix,
		      char *out, size_t out_bytes)
{
	int n = snprintf(out, out_bytes, "%s/%020" PRIu64 ".%s", log->dir, base_offset, suffix);
	RILL_ASSERT(n > 0 && (size_t)n < out_bytes); /* dir length is checked at open */
}

int log_index_add(struct log_index *index, uint64_t key, uint64_t value)
{
	if (index->count == index->capacity) {
		uint32_t capacity = index->capacity ? index->capacity * 2 : 64;
		struct rill_index_entry *grown =
			realloc(index->entries, (size_t)capacity * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		index->entries = grown;
		index->capacity = capacity;
	}
	index->entries[index->count++] = (struct rill_index_entry){.key = key, .value = value};
	return 0;
}

void log_index_free(struct log_index *index)
{
	free(index->entries);
	memset(index, 0, sizeof(*index));
}

const char *log_batch_check_header(const struct rill_batch_header *h, uint64_t bytes_available)
{
	if (h->magic != RILL_BATCH_MAGIC)
		return "bad batch magic";
	if (h->version != RILL_LOG_FORMAT_VERSION)
		return "unknown batch format version";
	if (h->batch_bytes < RILL_BATCH_HEADER_BYTES || h->batch_bytes > RILL_LOG_BATCH_BYTES_MAX)
		return "batch length out of range";
	if (h->batch_bytes > bytes_available)
		return "batch runs past the end of the file";
	if (h->flags != 0)
		return "unknown batch flags";
	return NULL;
}

bool log_batch_crc_held(const uint8_t *p)
{
	struct rill_batch_header h;
	memcpy(&h, p, sizeof(h));
	return rill_crc32c(p + 12, h.batch_bytes - 12u) == h.crc32c;
}

const char *log_batch_check(const uint8_t *p, struct log_batch_info *info)
{
	struct rill_batch_header h;
	memcpy(&h, p, sizeof(h));
	if (!log_batch_crc_held(p))
		return "batch CRC32C mismatch";
	if (h.reserved != 0 || h.reserved2 != 0)
		return "batch reserved fields set";
	if (h.record_count == 0)
		return "batch holds no records";
	if (h.durable_offset > h.base_offset)
		return "batch claims durability past its own first offset";
	uint32_t pos = RILL_BATCH_HEADER_BYTES;
	for (uint32_t i = 0; i < h.record_count; i++) {
		struct rill_record rec;
		int rc = rill_record_decode(p + pos, h.batch_bytes - pos, &rec,
					    RILL_RECORD_F_TRUSTED_CRC);
		if (rc < 0)
			return rill_strerror(rc);
		pos += (uint32_t)rc;
	}
	if (pos != h.batch_bytes)
		return "batch has bytes after its last record";
	*info = (struct log_batch_info){.batch_bytes = h.batch_bytes,
					.record_count = h.record_count,
					.base_offset = h.base_offset,
					.timestamp_max_ns = h.timestamp_max_ns,
					.durable_offset = h.durable_offset};
	return NULL;
}

/* The index of the segment holding @offset (the last one whose base is <= it). */
static uint32_t log_segment_find(const struct rill_log *log, uint64_t offset)
{
	uint32_t lo = 0, hi = log->segment_count;
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (log->segments[mid].base_offset <= offset)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* The file position of the last indexed batch starting at or before @offset. */
static uint64_t log_index_lookup(const struct log_index *idx, uint64_t offset)
{
	uint64_t pos = RILL_SEGMENT_DATA_START;
	uint32_t lo = 0, hi = idx->count;
	while (lo < hi) { /* first entry with key > offset */
		uint32_t mid = lo + (hi - lo) / 2;
		if (idx->entries[mid].key <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0)
		pos = idx->entries[lo - 1].value;
	return pos;
}

int rill_log_iter_init(struct rill_log_iter *it, struct rill_log *log, uint64_t offset)
{
	memset(it, 0, sizeof(*it));
	it->handle = -1;
	it->log = log;
	if (offset > log->next_offset)
		return -ERANGE;
	uint64_t start = rill_log_start_offset(log);
	it->offset = offset < start ? start : offset;
	it->buf_bytes = RILL_LOG_BATCH_BYTES_MAX;
	it->buf = malloc(it->buf_bytes);
	if (it->buf == NULL)
		return -ENOMEM;
	it->segment_base = UINT64_MAX; /* positioned by the first load */
	return 0;
}

void rill_log_iter_fini(struct rill_log_iter *it)
{
	if (it->handle >= 0)
		it->log->io->ops->close(it->log->io, it->handle);
	free(it->buf);
	memset(it, 0, sizeof(*it));
	it->handle = -1;
}

/*
 * Find the segment the iterator reads, by base offset: retention may have shifted the
 * segment array since the last call. Returns its index, or -ERANGE when the records the
 * iterator is at were deleted meanwhile.
 */
static int iter_segment(struct rill_log_iter *it)
{
	struct rill_log *log = it->log;
	if (log->segment_count == 0)
		return -ENOENT;
	if (it->offset < rill_log_start_offset(log))
		return -ERANGE;
	uint32_t i = log_segment_find(log, it->offset);
	if (it->segment_base != log->segments[i].base_offset) {
		/* The first load, or the segment went: seek afresh. */
		if (it->handle >= 0)
			log->io->ops->close(log->io, it->handle);
		it->handle = -1;
		it->segment_base = log->segments[i].base_offset;
		it->file_pos = log_index_lookup(&log->segments[i].idx, it->offset);
	}
	return (int)i;
}

/* Read and check the batch at it->file_pos. Returns 1, 0 at the end of durable data, <0. */
static int iter_load_batch(struct rill_log_iter *it)
{
	struct rill_log *log = it->log;
	struct rill_io *io = log->io;
	for (;;) {
		int index = iter_segment(it);
		if (index == -ENOENT)
			return 0; /* an empty log */
		if (index < 0)
			return index;
		const struct log_segment *seg = &log->segments[index];
		bool active = (uint32_t)index + 1 == log->segment_count;
		/* Only written and durable bytes are read: a batch in flight is not complete. */
		uint64_t limit = seg->bytes;
		if (active && it->offset >= log->durable_offset)
			return 0;
		if (it->file_pos >= limit) {
			if (active)
				return 0;
			/* On to the next segment, which starts where this one ends. */
			if (it->handle >= 0)
				io->ops->close(io, it->handle);
			it->handle = -1;
			it->segment_base = seg[1].base_offset;
			it->file_pos = RILL_SEGMENT_DATA_START;
			continue;
		}
		if (it->handle < 0) {
			char path[LOG_PATH_BYTES + 32];
			log_segment_path(log, seg->base_offset, "log", path, sizeof(path));
			int rc = io->ops->open(io, path, RILL_IO_RDONLY, &it->handle);
			if (rc < 0)
				return rc;
		}
		size_t got = 0;
		int rc = io->ops->pread(io, it->handle, it->buf, RILL_BATCH_HEADER_BYTES,
					it->file_pos, &got);
		if (rc < 0)
			return rc;
		struct rill_batch_header h;
		memcpy(&h, it->buf, sizeof(h));
		if (got < sizeof(h) || log_batch_check_header(&h, limit - it->file_pos) != NULL)
			return RILL_E_LOG_CORRUPT;
		rc = io->ops->pread(io, it->handle, it->buf + sizeof(h), h.batch_bytes - sizeof(h),
				    it->file_pos + sizeof(h), &got);
		if (rc < 0)
			return rc;
		struct log_batch_info info;
		if (got != h.batch_bytes - sizeof(h) || log_batch_check(it->buf, &info) != NULL)
			return RILL_E_LOG_CORRUPT;
		it->file_pos += rill_align_up(info.batch_bytes, RILL_LOG_SECTOR_BYTES);
		if (info.record_count == 0 || info.base_offset + info.record_count <= it->offset)
			continue; /* wholly before the offset asked for */
		if (info.base_offset > it->offset)
			return RILL_E_LOG_CORRUPT; /* offsets missing: a log's run without a gap, so
						    * the index placed the read past them */
		it->batch_bytes = info.batch_bytes;
		it->batch_pos = RILL_BATCH_HEADER_BYTES;
		it->batch_offset = info.base_offset;
		return 1;
	}
}

int rill_log_iter_next(struct rill_log_iter *it, struct rill_record *record, uint64_t *offset)
{
	for (;;) {
		if (it->batch_bytes == 0 || it->batch_pos == it->batch_bytes) {
			it->batch_bytes = 0;
			int rc = iter_load_batch(it);
			if (rc <= 0)
				return rc;
		}
		/* The batch CRC covered every byte: no second CRC per record. */
		int rc =
			rill_record_decode(it->buf + it->batch_pos, it->batch_bytes - it->batch_pos,
					   record, RILL_RECORD_F_TRUSTED_CRC);
		RILL_ASSERT(rc > 0); /* log_batch_check decoded every record already */
		it->batch_pos += (uint32_t)rc;
		uint64_t this_offset = it->batch_offset++;
		if (this_offset < it->offset)
			continue;
		if (this_offset >= it->log->durable_offset) {
			it->batch_offset--;
			it->batch_pos -= (uint32_t)rc;
			return 0;
		}
		it->offset = this_offset + 1;
		*offset = this_offset;
		return 1;
	}
}

int rill_log_find_time(struct rill_log *log, uint64_t timestamp_ns, uint64_t *offset)
{
	/*
	 * Time index entries are (K, O): every record before offset O has a timestamp <= K
	 * (K is the running maximum). The last entry with K < target is a safe place to start;
	 * from there the records are read until one reaches the target.
	 */
	uint64_t start = rill_log_start_offset(log);
	for (uint32_t s = 0; s < log->segment_count; s++) {
		const struct log_index *tix = &log->segments[s].tix;
		for (uint32_t i = 0; i < tix->count && tix->entries[i].key < timestamp_ns; i++)
			start = tix->entries[i].value;
	}
	struct rill_log_iter it;
	int rc = rill_log_iter_init(&it, log, start);
	if (rc < 0)
		return rc;
	struct rill_record rec;
	uint64_t at;
	while ((rc = rill_log_iter_next(&it, &rec, &at)) == 1) {
		if (rec.timestamp_ns >= timestamp_ns) {
			*offset = at;
			rill_log_iter_fini(&it);
			return 0;
		}
	}
	rill_log_iter_fini(&it);
	if (rc < 0)
		return rc;
	*offset = log->durable_offset; /* nothing durable that late yet */
	return 0;
}
