/*
 * CRC fix-ups for fuzz targets whose input holds event records (layout in
 * include/rill/record.h and docs/FORMAT.md): a mutation inside a record almost always
 * breaks its CRC, so without a fix-up the fuzzer's changes stop at the CRC check and never
 * reach what reads a record's fields (the write model, the schemas, the projections). The
 * targets fix them only when a bit of their input asks, so that bad CRCs stay fuzzed too.
 */
#ifndef RILL_TESTS_CRC_FIX_H
#define RILL_TESTS_CRC_FIX_H

#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"
#include "rill/record.h"

/*
 * The CRC of each record in @p (@bytes) made right: records one after another, each
 * behind @gap bytes (the 8-byte offset of an EVENTS entry; 0 for PRODUCE), as far as
 * whole records with a sane length field go. Any byte but the CRCs is left as it came.
 */
static inline void crc_fix_records(uint8_t *p, size_t bytes, size_t gap)
{
	size_t at = 0;
	while (bytes - at >= gap + RILL_RECORD_HEADER_BYTES) {
		uint8_t *r = p + at + gap;
		uint32_t length = rill_ld32(r);
		if (length < RILL_RECORD_HEADER_BYTES || length > bytes - at - gap)
			return;
		rill_st32(r + 4, rill_crc32c(r + 8, length - 8u)); /* covers all past itself */
		at += gap + length;
	}
}

/*
 * The same for the records of a PRODUCE frame at @frame (@bytes: its 16-byte header and
 * its body as far as given): acks u8, reserved u8, topic_bytes u16, event_count u32, the
 * topic, then the records (docs/PROTOCOL.md).
 */
static inline void crc_fix_produce(uint8_t *frame, size_t bytes)
{
	const size_t body = 16, topic = 8;
	if (bytes < body + topic)
		return;
	size_t records = body + topic + rill_ld16(frame + body + 2);
	if (records <= bytes)
		crc_fix_records(frame + records, bytes - records, 0);
}

#endif /* RILL_TESTS_CRC_FIX_H */
