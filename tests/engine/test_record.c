/*
 * Unit tests of the event record codec (include/rill/record.h): round trips with random
 * fields and sizes, the CRC32C check value, and every malformed-input class: each
 * truncation, oversized and inconsistent length fields, every single bit flip, unknown
 * version, reserved bits, over-long keys, and encoding into a short buffer. Buffers are
 * heap-allocated to the exact size so AddressSanitizer catches any read past the end.
 */
#include "tests/common/test_util.h"

#include <string.h>

#include <xxhash.h>

#include "rill/record.h"
#include "tests/common/record_check.h"

static uint8_t *make_record(struct test_rng *rng, uint16_t key_bytes, uint32_t payload_bytes,
			    struct rill_record *rec, uint8_t **key, uint8_t **payload, int *length)
{
	*key = malloc(key_bytes + 1u);
	*payload = malloc(payload_bytes + 1u);
	for (uint32_t i = 0; i < key_bytes; i++)
		(*key)[i] = (uint8_t)test_rng_next(rng);
	for (uint32_t i = 0; i < payload_bytes; i++)
		(*payload)[i] = (uint8_t)test_rng_next(rng);
	*rec = (struct rill_record){
		.timestamp_ns = test_rng_next(rng),
		.producer_id = test_rng_next(rng),
		.sequence = test_rng_next(rng),
		.correlation_id = test_rng_next(rng),
		.causation_id = test_rng_next(rng),
		.type_id = (uint32_t)test_rng_next(rng),
		.schema_version = (uint16_t)test_rng_next(rng),
		.key_bytes = key_bytes,
		.payload_bytes = payload_bytes,
		.key = *key,
		.payload = *payload,
	};
	uint32_t bytes = rill_record_bytes(key_bytes, payload_bytes);
	assert_int_not_equal(bytes, 0);
	uint8_t *buf = malloc(bytes);
	*length = rill_record_encode(buf, bytes, rec);
	assert_int_equal(*length, (int)bytes);
	return buf;
}

static void test_crc32c_check_value(void **state)
{
	(void)state;
	/* The standard CRC-32C check value (RFC 3720 family, "123456789"). */
	assert_int_equal(rill_crc32c("123456789", 9), 0xE3069283u);
	assert_int_equal(rill_crc32c("", 0), 0);
	/* 32 zero bytes: the iSCSI test vector of RFC 3720 B.4. */
	uint8_t zeros[32] = {0};
	assert_int_equal(rill_crc32c(zeros, sizeof(zeros)), 0x8A9136AAu);
}

static void test_key_hash_is_xxh3(void **state)
{
	(void)state;
	assert_int_equal(rill_key_hash("", 0), XXH3_64bits("", 0));
	assert_int_equal(rill_key_hash("order-42", 8), XXH3_64bits("order-42", 8));
	assert_int_not_equal(rill_key_hash("order-42", 8), rill_key_hash("order-43", 8));
}

static void test_round_trip_random(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 1);
	for (int i = 0; i < 2000; i++) {
		uint16_t key_bytes = (uint16_t)test_rng_below(&rng, 64);
		uint32_t payload_bytes = (uint32_t)test_rng_below(&rng, 2048);
		if (i % 100 == 0) {
			key_bytes = (uint16_t)(i % 200 == 0 ? RILL_KEY_BYTES_MAX : 0);
			payload_bytes = i % 300 == 0 ? RILL_PAYLOAD_BYTES_MAX - key_bytes : 0;
		}
		struct rill_record rec, out;
		uint8_t *key, *payload;
		int length;
		uint8_t *buf =
			make_record(&rng, key_bytes, payload_bytes, &rec, &key, &payload, &length);
		assert_int_equal(rill_record_decode(buf, (size_t)length, &out, 0), length);
		assert_int_equal(out.record_bytes, (uint32_t)length);
		assert_same_record(&rec, &out);
		assert_ptr_equal(out.key, buf + RILL_RECORD_HEADER_BYTES);
		free(buf);
		free(key);
		free(payload);
	}
}

static void test_two_records_back_to_back(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 2);
	struct rill_record a, b, out;
	uint8_t *ka, *pa, *kb, *pb;
	int la, lb;
	uint8_t *ba = make_record(&rng, 5, 100, &a, &ka, &pa, &la);
	uint8_t *bb = make_record(&rng, 0, 7, &b, &kb, &pb, &lb);
	uint8_t *both = malloc((size_t)(la + lb));
	memcpy(both, ba, (size_t)la);
	memcpy(both + la, bb, (size_t)lb);
	assert_int_equal(rill_record_decode(both, (size_t)(la + lb), &out, 0), la);
	assert_same_record(&a, &out);
	assert_int_equal(rill_record_decode(both + la, (size_t)lb, &out, 0), lb);
	assert_same_record(&b, &out);
	free(both);
	free(ba);
	free(bb);
	free(ka);
	free(pa);
	free(kb);
	free(pb);
}

static void test_every_truncation_is_refused(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 3);
	struct rill_record rec, out;
	uint8_t *key, *payload;
	int length;
	uint8_t *buf = make_record(&rng, 9, 300, &rec, &key, &payload, &length);
	for (int cut = 0; cut < length; cut++) {
		uint8_t *part =
			malloc(cut > 0 ? (size_t)cut : 1); /* exact: ASan sees an over-read */
		memcpy(part, buf, (size_t)cut);
		assert_int_equal(rill_record_decode(part, (size_t)cut, &out, 0),
				 RILL_E_RECORD_TRUNCATED);
		free(part);
	}
	free(buf);
	free(key);
	free(payload);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void test_length_fields_are_not_trusted(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 4);
	struct rill_record rec, out;
	uint8_t *key, *payload;
	int length;
	uint8_t *buf = make_record(&rng, 4, 60, &rec, &key, &payload, &length);
	uint8_t *copy = malloc((size_t)length);

	memcpy(copy, buf, (size_t)length);
	put32(copy, RILL_RECORD_BYTES_MAX + 1); /* oversized */
	assert_int_equal(rill_record_decode(copy, (size_t)length, &out, 0),
			 RILL_E_RECORD_TOO_LARGE);
	put32(copy, 0xffffffffu);
	assert_int_equal(rill_record_decode(copy, (size_t)length, &out, 0),
			 RILL_E_RECORD_TOO_LARGE);
	put32(copy, 10); /* shorter than the header */
	assert_int_equal(rill_record_decode(copy, (size_t)length, &out, 0), RILL_E_RECORD_LENGTH);
	put32(copy, (uint32_t)length - 1); /* disagrees with key + payload */
	assert_int_equal(rill_record_decode(copy, (size_t)length, &out, 0), RILL_E_RECORD_LENGTH);
	put32(copy, (uint32_t)length + 1); /* claims more than is there and than it holds */
	assert_int_equal(rill_record_decode(copy, (size_t)length, &out, 0), RILL_E_RECORD_LENGTH);

	memcpy(copy, buf, (size_t)length);
	put32(copy + 12, 0xfffffff0u); /* payload_bytes huge: no overflow into a valid sum */
	assert_int_equal(rill_record_decode(copy, (size_t)length, &out, 0),
			 RILL_E_RECORD_PAYLOAD_TOO_LONG);
	memcpy(copy, buf, (size_t)length);
	put16(copy + 10, RILL_KEY_BYTES_MAX + 1);
	assert_int_equal(rill_record_decode(copy, (size_t)length, &out, 0),
			 RILL_E_RECORD_KEY_TOO_LONG);
	memcpy(copy, buf, (size_t)length);
	put16(copy + 10, 5); /* key one longer, payload as before: the sum no longer matches */
	assert_int_equal(rill_record_decode(copy, (size_t)length, &out, 0), RILL_E_RECORD_LENGTH);
	free(copy);
	free(buf);
	free(key);
	free(payload);
}

static void test_version_and_reserved(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 5);
	struct rill_record rec, out;
	uint8_t *key, *payload;
	int length;
	uint8_t *buf = make_record(&rng, 3, 10, &rec, &key, &payload, &length);
	uint8_t *copy = malloc((size_t)length);
	memcpy(copy, buf, (size_t)length);
	copy[8] = RILL_RECORD_VERSION + 1;
	assert_int_equal(rill_record_decode(copy, (size_t)length, &out, 0), RILL_E_RECORD_VERSION);
	memcpy(copy, buf, (size_t)length);
	copy[9] = 0x80;
	assert_int_equal(rill_record_decode(copy, (size_t)length, &out, 0), RILL_E_RECORD_RESERVED);
	memcpy(copy, buf, (size_t)length);
	copy[23] = 1;
	assert_int_equal(rill_record_decode(copy, (size_t)length, &out, 0), RILL_E_RECORD_RESERVED);
	free(copy);
	free(buf);
	free(key);
	free(payload);
}

/* CRC32C detects every single-bit error; the structural checks catch some first. */
static void test_every_bit_flip_is_refused(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 6);
	struct rill_record rec, out;
	uint8_t *key, *payload;
	int length;
	uint8_t *buf = make_record(&rng, 16, 240, &rec, &key, &payload, &length);
	uint8_t *copy = malloc((size_t)length);
	for (int bit = 0; bit < length * 8; bit++) {
		memcpy(copy, buf, (size_t)length);
		copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int rc = rill_record_decode(copy, (size_t)length, &out, 0);
		assert_true(rc < 0);
		if (bit >= 8 * 8 && bit / 8 != 8 && bit / 8 != 9 &&
		    !(bit / 8 >= 10 && bit / 8 < 16) && bit / 8 != 22 && bit / 8 != 23)
			assert_int_equal(rc,
					 RILL_E_RECORD_CRC); /* fields no structural check reads */
	}
	/* The trusted flag skips only the CRC: a flipped payload bit then passes. */
	memcpy(copy, buf, (size_t)length);
	copy[length - 1] ^= 1;
	assert_int_equal(rill_record_decode(copy, (size_t)length, &out, RILL_RECORD_F_TRUSTED_CRC),
			 length);
	free(copy);
	free(buf);
	free(key);
	free(payload);
}

static void test_encode_limits(void **state)
{
	(void)state;
	uint8_t small[RILL_RECORD_HEADER_BYTES + 4];
	uint8_t key[RILL_KEY_BYTES_MAX + 1] = {0};
	struct rill_record rec = {.key = key, .key_bytes = 5, .payload = key, .payload_bytes = 0};
	assert_int_equal(rill_record_encode(small, sizeof(small), &rec), RILL_E_RECORD_NO_SPACE);
	rec.key_bytes = 4;
	assert_int_equal(rill_record_encode(small, sizeof(small), &rec), (int)sizeof(small));
	rec.key_bytes = (uint16_t)(RILL_KEY_BYTES_MAX + 1);
	assert_int_equal(rill_record_encode(small, sizeof(small), &rec),
			 RILL_E_RECORD_KEY_TOO_LONG);
	rec.key_bytes = 0;
	rec.payload_bytes = RILL_PAYLOAD_BYTES_MAX + 1;
	assert_int_equal(rill_record_encode(small, sizeof(small), &rec),
			 RILL_E_RECORD_PAYLOAD_TOO_LONG);
	assert_int_equal(rill_record_bytes(RILL_KEY_BYTES_MAX + 1, 0), 0);
	assert_int_equal(rill_record_bytes(0, RILL_PAYLOAD_BYTES_MAX), RILL_RECORD_BYTES_MAX);
	assert_int_equal(rill_record_bytes(1, RILL_PAYLOAD_BYTES_MAX), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_check_value),
		cmocka_unit_test(test_key_hash_is_xxh3),
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_two_records_back_to_back),
		cmocka_unit_test(test_every_truncation_is_refused),
		cmocka_unit_test(test_length_fields_are_not_trusted),
		cmocka_unit_test(test_version_and_reserved),
		cmocka_unit_test(test_every_bit_flip_is_refused),
		cmocka_unit_test(test_encode_limits),
	};
	test_seed();
	return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
