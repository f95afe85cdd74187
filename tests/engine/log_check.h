/*
 * Helpers for the log tests: a small log configuration, a deterministic record per offset
 * (so any record read back can be checked without keeping copies) and a check that a
 * reopened log holds exactly those.
 */
#ifndef RILL_TEST_LOG_CHECK_H
#define RILL_TEST_LOG_CHECK_H

#include <stdio.h>
#include <string.h>

#include "engine/log.h"

#define LOG_CHECK_PAYLOAD_MAX 600u

/* A log that batches, rolls and indexes often (8 KiB batches, 64 KiB segments, an index
 * entry per KiB), so that short tests cross every boundary. */
static inline struct rill_log_config log_check_small_config(void)
{
	struct rill_log_config c;
	rill_log_config_default(&c);
	c.batch_bytes_max = 8192;
	c.segment_bytes_max = 64u << 10;
	c.index_interval_bytes = 1024;
	return c;
}

struct log_check_record {
	struct rill_record rec;
	char key[24];
	uint8_t payload[LOG_CHECK_PAYLOAD_MAX];
};

/* The record expected at @offset: sizes, key, payload and fields all derive from it. */
static inline void log_check_make(struct log_check_record *r, uint64_t offset)
{
	uint64_t h = offset * 0x9E3779B97F4A7C15ull + 7;
	int key_bytes =
		snprintf(r->key, sizeof(r->key), "k%llu", (unsigned long long)(offset % 97));
	uint32_t payload_bytes = (uint32_t)(h >> 40) % LOG_CHECK_PAYLOAD_MAX;
	/* A fill byte and the offset up front: cheap to make and check, and distinct. */
	memset(r->payload, (int)(h >> 56), payload_bytes);
	memcpy(r->payload, &offset, payload_bytes < 8 ? payload_bytes : 8);
	r->rec = (struct rill_record){.timestamp_ns = 1000000 + offset * 10,
				      .producer_id = 1,
				      .sequence = offset,
				      .correlation_id = h,
				      .causation_id = offset,
				      .type_id = 3,
				      .schema_version = 1,
				      .key_bytes = (uint16_t)key_bytes,
				      .payload_bytes = payload_bytes,
				      .key = r->key,
				      .payload = r->payload};
}

/* Whether @got is exactly the record for @offset. */
static inline bool log_check_matches(const struct rill_record *got, uint64_t offset)
{
	struct log_check_record want;
	log_check_make(&want, offset);
	return got->timestamp_ns == want.rec.timestamp_ns && got->sequence == offset &&
	       got->correlation_id == want.rec.correlation_id &&
	       got->key_bytes == want.rec.key_bytes &&
	       got->payload_bytes == want.rec.payload_bytes &&
	       memcmp(got->key, want.key, got->key_bytes) == 0 &&
	       memcmp(got->payload, want.payload, got->payload_bytes) == 0;
}

/*
 * Read the whole log from its start: every offset present, in order, each the expected
 * record, and at least @durable_min of them. Returns the count read, or -1 with a message.
 */
static inline int64_t log_check_all(struct rill_log *log, uint64_t durable_min)
{
	struct rill_log_iter it;
	if (rill_log_iter_init(&it, log, 0) != 0)
		return -1;
	struct rill_record rec;
	uint64_t offset, expect = rill_log_start_offset(log);
	int rc;
	while ((rc = rill_log_iter_next(&it, &rec, &offset)) == 1) {
		if (offset != expect || !log_check_matches(&rec, offset)) {
			fprintf(stderr, "log_check: offset %llu: wrong record (expected %llu)\n",
				(unsigned long long)offset, (unsigned long long)expect);
			rill_log_iter_fini(&it);
			return -1;
		}
		expect++;
	}
	rill_log_iter_fini(&it);
	if (rc < 0 || expect < durable_min) {
		fprintf(stderr, "log_check: read to %llu of %llu acknowledged (rc %d)\n",
			(unsigned long long)expect, (unsigned long long)durable_min, rc);
		return -1;
	}
	return (int64_t)expect;
}

#endif /* RILL_TEST_LOG_CHECK_H */
