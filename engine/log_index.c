/*
 * The sparse index files of sealed segments (.idx: batch base offset -> file position,
 * .tix: running maximum timestamp -> batch base offset), saved when a segment is sealed
 * and loaded at open so that only the tail segment needs the verifying scan. They can
 * always be rebuilt from their segment, so they are written without fsync (temp file and
 * rename): after a power cut one may be missing or damaged, its CRC says so, and the
 * segment is scanned instead. Owner thread; cold path (roll and open).
 *
 *   | magic u32 | version u32 | count u64 | entries: count x (key u64, value u64) |
 *   | end_offset u64 | bytes u64 | timestamp_max u64 | crc32c u32 | zero u32 |
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log_int.h"

struct index_trailer {
	uint64_t end_offset;    /* the segment's next offset */
	uint64_t bytes;         /* the segment file's size */
	uint64_t timestamp_max; /* running maximum timestamp at the segment's end */
	uint32_t crc32c;        /* of everything before it */
	uint32_t zero;
};

#define INDEX_ENTRIES_MAX (RILL_LOG_BATCH_BYTES_MAX) /* far above any real segment's */

static int index_save_one(struct rill_log *log, const struct log_segment *seg,
			  const struct log_index *index, uint32_t magic, const char *suffix)
{
	size_t bytes = RILL_INDEX_HEADER_BYTES + (size_t)index->count * sizeof(*index->entries) +
		       sizeof(struct index_trailer);
	uint8_t *buf = malloc(bytes);
	if (buf == NULL)
		return -ENOMEM;
	uint32_t version = RILL_LOG_FORMAT_VERSION;
	uint64_t count = index->count;
	memcpy(buf, &magic, 4);
	memcpy(buf + 4, &version, 4);
	memcpy(buf + 8, &count, 8);
	if (count > 0) /* a segment of no batch has no entries, and entries may be NULL */
		memcpy(buf + RILL_INDEX_HEADER_BYTES, index->entries,
		       count * sizeof(*index->entries));
	struct index_trailer t = {.end_offset = seg->end_offset,
				  .bytes = seg->bytes,
				  .timestamp_max = log->ts_running_max};
	size_t before_crc = bytes - sizeof(t) + offsetof(struct index_trailer, crc32c);
	memcpy(buf + bytes - sizeof(t), &t, sizeof(t));
	t.crc32c = rill_crc32c(buf, before_crc);
	memcpy(buf + bytes - sizeof(t), &t, sizeof(t));

	char tmp[LOG_PATH_BYTES + 48], path[LOG_PATH_BYTES + 32];
	log_segment_path(log, seg->base_offset, suffix, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* A failed save removes its NNN.idx.tmp: nothing else would until the next open. */
	int rc = rill_io_replace_file_unsynced(log->io, tmp, path, buf, bytes);
	free(buf);
	return rc;
}

int log_index_save(struct rill_log *log, const struct log_segment *seg)
{
	int rc = index_save_one(log, seg, &seg->idx, RILL_INDEX_MAGIC, "idx");
	if (rc == 0)
		rc = index_save_one(log, seg, &seg->tix, RILL_TINDEX_MAGIC, "tix");
	return rc;
}

/* Load one index file; 1 when it is whole and describes this segment, 0 if not, <0. */
static int index_load_one(struct rill_log *log, struct log_segment *seg, struct log_index *out,
			  uint32_t magic, const char *suffix, uint64_t end_offset, uint64_t size,
			  uint64_t *timestamp_max)
{
	char path[LOG_PATH_BYTES + 32];
	log_segment_path(log, seg->base_offset, suffix, path, sizeof(path));
	struct rill_io *io = log->io;
	int handle;
	int rc = io->ops->open(io, path, RILL_IO_RDONLY, &handle);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	uint64_t file_bytes = 0;
	rc = io->ops->size(io, handle, &file_bytes);
	uint64_t fixed = RILL_INDEX_HEADER_BYTES + sizeof(struct index_trailer);
	uint64_t count = file_bytes >= fixed ? (file_bytes - fixed) / sizeof(*out->entries) : 0;
	if (rc < 0 || file_bytes < fixed || file_bytes != fixed + count * sizeof(*out->entries) ||
	    count > INDEX_ENTRIES_MAX) {
		io->ops->close(io, handle);
		return rc < 0 ? rc : 0;
	}
	uint8_t *buf = malloc(file_bytes);
	size_t got = 0;
	rc = buf ? io->ops->pread(io, handle, buf, file_bytes, 0, &got) : -ENOMEM;
	io->ops->close(io, handle);
	struct index_trailer t;
	uint32_t file_magic = 0, version = 0;
	uint64_t file_count = 0;
	int loaded = 0;
	if (rc == 0 && got == file_bytes) {
		memcpy(&t, buf + file_bytes - sizeof(t), sizeof(t));
		memcpy(&file_magic, buf, 4);
		memcpy(&version, buf + 4, 4);
		memcpy(&file_count, buf + 8, 8);
		size_t before_crc = file_bytes - sizeof(t) + offsetof(struct index_trailer, crc32c);
		loaded = file_magic == magic && version == RILL_LOG_FORMAT_VERSION &&
			 file_count == count && t.crc32c == rill_crc32c(buf, before_crc) &&
			 t.end_offset == end_offset && t.bytes == size && count > 0;
	}
	if (loaded) {
		out->entries = malloc(count * sizeof(*out->entries));
		if (out->entries == NULL) {
			rc = -ENOMEM;
			loaded = 0;
		} else {
			memcpy(out->entries, buf + RILL_INDEX_HEADER_BYTES,
			       count * sizeof(*out->entries));
			out->count = out->capacity = (uint32_t)count;
			*timestamp_max = t.timestamp_max;
		}
	}
	free(buf);
	return rc < 0 ? rc : loaded;
}

/*
 * The entries of a pair of loaded index files describe a segment of @end_offset and @size:
 * the .idx starts at the segment's first batch (always indexed), its offsets and positions
 * rise, sector-aligned, within the segment; the .tix has an entry for each .idx entry, of
 * the same batch, its running maximum never falling. A CRC only says the file is as
 * written: a file copied from another partition, or written by a buggy rill, passes it,
 * and a read would then start at the wrong batch. Such files are rebuilt by a scan.
 */
static bool index_entries_sound(const struct log_segment *seg, const struct log_index *idx,
				const struct log_index *tix, uint64_t end_offset, uint64_t size)
{
	if (idx->count != tix->count || idx->entries[0].key != seg->base_offset ||
	    idx->entries[0].value != RILL_SEGMENT_DATA_START)
		return false;
	for (uint32_t i = 0; i < idx->count; i++) {
		const struct rill_index_entry *e = &idx->entries[i];
		if (e->key >= end_offset || e->value >= size ||
		    e->value % RILL_LOG_SECTOR_BYTES != 0 || tix->entries[i].value != e->key)
			return false;
		if (i > 0 && (e->key <= e[-1].key || e->value <= e[-1].value ||
			      tix->entries[i].key < tix->entries[i - 1].key))
			return false;
	}
	return true;
}

int log_index_load(struct rill_log *log, struct log_segment *seg, uint64_t end_offset,
		   uint64_t size)
{
	uint64_t ts_idx = 0, ts_tix = 0;
	int rc = index_load_one(log, seg, &seg->idx, RILL_INDEX_MAGIC, "idx", end_offset, size,
				&ts_idx);
	if (rc == 1)
		rc = index_load_one(log, seg, &seg->tix, RILL_TINDEX_MAGIC, "tix", end_offset, size,
				    &ts_tix);
	if (rc == 1 && !index_entries_sound(seg, &seg->idx, &seg->tix, end_offset, size))
		rc = 0;
	if (rc != 1) {
		log_index_free(&seg->idx);
		log_index_free(&seg->tix);
		return rc;
	}
	seg->end_offset = end_offset;
	seg->bytes = size;
	seg->indexed_pos = seg->idx.entries[seg->idx.count - 1].value;
	if (ts_tix > log->ts_running_max)
		log->ts_running_max = ts_tix;
	return 1;
}
