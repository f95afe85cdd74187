/*
 * The log's on-disk format (docs/FORMAT.md has it byte by byte). A partition directory
 * holds segments named by their first offset:
 *
 *   00000000000000000000.log   segment header, then record batches
 *   00000000000000000000.idx   sparse offset -> file position (sealed segments; log_index.c)
 *   00000000000000000000.tix   sparse timestamp -> offset (sealed segments; log_index.c)
 *   checkpoint                 the offset known durable at the last clean close
 *
 *   .log:  | segment header (64) | zeros to 512 | batch | pad | batch | pad | ... |
 *   batch: | batch header (64) | record | record | ... |     records: include/rill/record.h
 *
 * Every batch starts on a 512-byte boundary and is followed by zeros up to the next one, so
 * a write never rewrites a sector an earlier, synced batch lies in: a torn write can only
 * damage the batch being written.
 *
 * Integers little-endian. Every header carries a CRC32C; a batch's CRC covers the rest of
 * its header and all its records, so records inside a verified batch are decoded with
 * RILL_RECORD_F_TRUSTED_CRC.
 */
#ifndef RILL_ENGINE_LOG_FORMAT_H
#define RILL_ENGINE_LOG_FORMAT_H

#include <stdint.h>

#define RILL_LOG_FORMAT_VERSION 1u

#define RILL_SEGMENT_MAGIC        0x314753454c4c4952ull /* the bytes "RILLESG1" */
#define RILL_SEGMENT_HEADER_BYTES 64u
#define RILL_LOG_SECTOR_BYTES     512u                  /* batch alignment */
#define RILL_SEGMENT_DATA_START   RILL_LOG_SECTOR_BYTES /* the first batch's position */
#define RILL_BATCH_MAGIC          0x31544252u           /* "RBT1" */
#define RILL_BATCH_HEADER_BYTES   64u
#define RILL_INDEX_MAGIC          0x31584449u /* "IDX1" */
#define RILL_TINDEX_MAGIC         0x31584954u /* "TIX1" */

#define RILL_CHECKPOINT_MAGIC 0x314b4843u /* "CHK1" */
#define RILL_CHECKPOINT_NAME  "checkpoint"

struct rill_segment_header {
	uint64_t magic;        /* RILL_SEGMENT_MAGIC */
	uint32_t version;      /* RILL_LOG_FORMAT_VERSION */
	uint32_t header_bytes; /* RILL_SEGMENT_HEADER_BYTES */
	uint64_t base_offset;  /* offset of the first record in the segment */
	uint64_t created_ns;   /* wall clock (CLOCK_REALTIME) at creation: age and retention */
	uint8_t reserved[28];  /* zero */
	uint32_t crc32c;       /* of the 60 bytes before it */
};

struct rill_batch_header {
	uint32_t magic;            /* RILL_BATCH_MAGIC */
	uint32_t batch_bytes;      /* header and records */
	uint32_t crc32c;           /* of bytes [12, batch_bytes) */
	uint16_t version;          /* RILL_LOG_FORMAT_VERSION */
	uint16_t flags;            /* none defined: zero */
	uint64_t base_offset;      /* offset of the first record */
	uint32_t record_count;     /* 1 or more */
	uint32_t reserved;         /* zero */
	uint64_t timestamp_min_ns; /* smallest record timestamp */
	uint64_t timestamp_max_ns; /* largest record timestamp */
	uint64_t durable_offset;   /* every offset below it was durable when this was written */
	uint64_t reserved2;        /* zero */
};

/*
 * The checkpoint file: a lower bound of what is durable, written (temp file, fsync, rename,
 * directory fsync) at every clean close. Recovery refuses damage below it, and a
 * log that ends before it, instead of taking them for a torn write: batches alone cannot
 * tell a torn last batch from a damaged one that had been acknowledged.
 */
struct rill_checkpoint {
	uint32_t magic;          /* RILL_CHECKPOINT_MAGIC */
	uint32_t version;        /* RILL_LOG_FORMAT_VERSION */
	uint64_t durable_offset; /* every offset below it was durable */
	uint64_t written_ns;     /* wall clock */
	uint32_t reserved;       /* zero */
	uint32_t crc32c;         /* of the 28 bytes before it */
};

/* One entry of a .idx (offset -> position) or .tix (timestamp -> offset) file. */
struct rill_index_entry {
	uint64_t key;   /* .idx: batch base offset; .tix: batch timestamp_max_ns */
	uint64_t value; /* .idx: file position of the batch; .tix: batch base offset */
};

/* .idx / .tix file: | magic u32 | version u32 | count u64 | entries... | trailer (32) |
 * (the trailer, with its CRC, is defined in log_index.c) */
#define RILL_INDEX_HEADER_BYTES 16u

_Static_assert(sizeof(struct rill_segment_header) == RILL_SEGMENT_HEADER_BYTES, "segment header");
_Static_assert(sizeof(struct rill_batch_header) == RILL_BATCH_HEADER_BYTES, "batch header");
_Static_assert(sizeof(struct rill_index_entry) == 16, "index entry");
_Static_assert(sizeof(struct rill_checkpoint) == 32, "checkpoint");

#endif /* RILL_ENGINE_LOG_FORMAT_H */
