/*
 * Field-by-field equality of two events (include/rill/record.h), for the tests that encode
 * records and decode them back (tests/engine/test_record.c, tests/io/test_wire.c): the
 * first field that differs fails the test (cmocka).
 */
#ifndef RILL_TEST_RECORD_CHECK_H
#define RILL_TEST_RECORD_CHECK_H

#include "tests/common/test_util.h"

#include "rill/record.h"

static inline void assert_same_record(const struct rill_record *a, const struct rill_record *b)
{
	assert_int_equal(a->timestamp_ns, b->timestamp_ns);
	assert_int_equal(a->producer_id, b->producer_id);
	assert_int_equal(a->sequence, b->sequence);
	assert_int_equal(a->correlation_id, b->correlation_id);
	assert_int_equal(a->causation_id, b->causation_id);
	assert_int_equal(a->type_id, b->type_id);
	assert_int_equal(a->schema_version, b->schema_version);
	assert_int_equal(a->key_bytes, b->key_bytes);
	assert_int_equal(a->payload_bytes, b->payload_bytes);
	assert_memory_equal(a->key, b->key, a->key_bytes);
	assert_memory_equal(a->payload, b->payload, a->payload_bytes);
}

#endif /* RILL_TEST_RECORD_CHECK_H */
