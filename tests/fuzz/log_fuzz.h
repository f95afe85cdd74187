/*
 * What fuzz_log and its seed generator share: the log's configuration (tests/engine's small
 * one: 8 KiB batches, 64 KiB segments, an index entry per KiB, through the page cache),
 * the folder in the simulated file system (tests/common/io_sim.h), and the layout of an
 * input:
 *
 *   | mode u8 | file | file | ... |    up to LOG_FUZZ_FILES_MAX files
 *   file: | kind u8 | length u32, little-endian | that many bytes |
 *
 * kind, bits 0-1: LOG_FUZZ_SEGMENT (a .log file), LOG_FUZZ_IDX or LOG_FUZZ_TIX (the index
 * files of the last segment before them, or of base 0), LOG_FUZZ_CHECKPOINT. A segment is
 * named by the base offset its header gives (0 if it has none) plus kind's bits 2-7, so
 * that a name and its header agree unless the input says otherwise. A length past the
 * input's end takes what is left; a later file of the same name replaces an earlier one.
 *
 * mode: LOG_FUZZ_FIX_CRC rewrites the CRCs of the segment header, of every batch whose
 * header frames one (latest first, so an enclosing batch covers the fixed ones) and of
 * the checkpoint, so that the checks behind them are reached; LOG_FUZZ_READ_ONLY and
 * LOG_FUZZ_REPAIR set the config's read_only and repair.
 */
#ifndef RILL_TESTS_LOG_FUZZ_H
#define RILL_TESTS_LOG_FUZZ_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/log.h"

#define LOG_FUZZ_DIR        "/fuzz/log"
#define LOG_FUZZ_FILES_MAX  16u
#define LOG_FUZZ_FILE_HEAD  5u /* kind, length */
#define LOG_FUZZ_FIX_CRC    0x01u
#define LOG_FUZZ_READ_ONLY  0x02u
#define LOG_FUZZ_REPAIR     0x04u
#define LOG_FUZZ_SEGMENT    0u
#define LOG_FUZZ_IDX        1u
#define LOG_FUZZ_TIX        2u
#define LOG_FUZZ_CHECKPOINT 3u
#define LOG_FUZZ_KIND_MASK  0x03u

static inline struct rill_log_config log_fuzz_config(uint8_t mode)
{
	struct rill_log_config c;
	rill_log_config_default(&c);
	c.batch_bytes_max = 8192;
	c.segment_bytes_max = 64u << 10;
	c.index_interval_bytes = 1024;
	c.buffered_io = true;
	c.read_only = (mode & LOG_FUZZ_READ_ONLY) != 0;
	c.repair = (mode & LOG_FUZZ_REPAIR) != 0;
	return c;
}

#endif /* RILL_TESTS_LOG_FUZZ_H */
