/*
 * Record codec benchmarks, in bytes per second of whole records:
 *   codec/encode/N   encode a record of N bytes (8-byte key), CRC32C included
 *   codec/decode/N   decode and verify the CRC of a record of N bytes
 *   codec/crc32c/N   ISA-L's CRC32C alone over N bytes
 *   codec/encode_wide/N  encode as above, with a 64 KiB CRC32C every 1024 records (as a
 *                    log batch's CRC comes between records): that CRC takes ISA-L's
 *                    AVX-512 path, and the encodes after it show whether the vector state
 *                    it leaves costs them (see rill_crc32c)
 *   codec/key_hash/16  XXH3 of a 16-byte key (items per second)
 */
#include <stdlib.h>
#include <string.h>

#include "base/compiler.h"
#include "bench/cases.h"
#include "rill/record.h"

#define CODEC_KEY_BYTES  8u
#define CODEC_WIDE_BYTES 65536u
#define CODEC_WIDE_EVERY 1024u

struct codec_ctx {
	uint32_t record_bytes;
	struct rill_record rec;
	uint8_t key[16];
	uint8_t *payload;
	uint8_t *buf;
	uint8_t *wide; /* CODEC_WIDE_BYTES */
};

static void *codec_setup(const struct rill_bench_case *bc)
{
	struct codec_ctx *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->record_bytes = (uint32_t)bc->arg;
	uint32_t payload_bytes = c->record_bytes - RILL_RECORD_HEADER_BYTES - CODEC_KEY_BYTES;
	c->payload = malloc(payload_bytes + 1);
	c->buf = malloc(c->record_bytes);
	c->wide = calloc(1, CODEC_WIDE_BYTES);
	if (c->payload == NULL || c->buf == NULL || c->wide == NULL) {
		free(c->payload);
		free(c->buf);
		free(c->wide);
		free(c);
		return NULL;
	}
	for (uint32_t i = 0; i < payload_bytes; i++)
		c->payload[i] = (uint8_t)(i * 31);
	memcpy(c->key, "order-0000000042", 16);
	c->rec = (struct rill_record){.timestamp_ns = 1,
				      .producer_id = 2,
				      .sequence = 3,
				      .correlation_id = 4,
				      .causation_id = 5,
				      .type_id = 6,
				      .schema_version = 1,
				      .key_bytes = CODEC_KEY_BYTES,
				      .payload_bytes = payload_bytes,
				      .key = c->key,
				      .payload = c->payload};
	if (rill_record_encode(c->buf, c->record_bytes, &c->rec) != (int)c->record_bytes)
		abort();
	return c;
}

static void codec_teardown(void *ctx)
{
	struct codec_ctx *c = ctx;
	free(c->payload);
	free(c->buf);
	free(c->wide);
	free(c);
}

static void run_encode(void *ctx, uint64_t items)
{
	struct codec_ctx *c = ctx;
	for (uint64_t i = 0; i < items; i++) {
		c->rec.sequence = i;
		if (rill_record_encode(c->buf, c->record_bytes, &c->rec) <= 0)
			abort();
		rill_bench_escape(c->buf);
	}
}

static void run_encode_wide(void *ctx, uint64_t items)
{
	struct codec_ctx *c = ctx;
	for (uint64_t i = 0; i < items; i++) {
		if (i % CODEC_WIDE_EVERY == 0) {
			uint32_t crc = rill_crc32c(c->wide, CODEC_WIDE_BYTES);
			rill_bench_escape(&crc);
		}
		/* A copy of the record, as the engine's callers make: gcc copies structs
		 * with SSE moves, the instructions that pay for a dirty vector state. */
		struct rill_record rec = c->rec;
		rill_bench_escape(&rec);
		rec.sequence = i;
		if (rill_record_encode(c->buf, c->record_bytes, &rec) <= 0)
			abort();
		rill_bench_escape(c->buf);
	}
}

static void run_decode(void *ctx, uint64_t items)
{
	struct codec_ctx *c = ctx;
	struct rill_record out;
	for (uint64_t i = 0; i < items; i++) {
		if (rill_record_decode(c->buf, c->record_bytes, &out, 0) <= 0)
			abort();
		rill_bench_escape(&out);
	}
}

static void run_crc(void *ctx, uint64_t items)
{
	struct codec_ctx *c = ctx;
	for (uint64_t i = 0; i < items; i++) {
		uint32_t crc = rill_crc32c(c->buf, c->record_bytes);
		rill_bench_escape(&crc);
	}
}

static void run_key_hash(void *ctx, uint64_t items)
{
	struct codec_ctx *c = ctx;
	for (uint64_t i = 0; i < items; i++) {
		c->key[0] = (uint8_t)i;
		uint64_t h = rill_key_hash(c->key, 16);
		rill_bench_escape(&h);
	}
}

#define CODEC_CASE(name, fn, bytes, counted)                                                       \
	{                                                                                          \
		name, 256, counted, codec_setup, fn, codec_teardown, bytes                         \
	}

const struct rill_bench_case rill_bench_codec_cases[] = {
	CODEC_CASE("codec/encode/128", run_encode, 128, 128),
	CODEC_CASE("codec/encode_wide/128", run_encode_wide, 128, 128),
	CODEC_CASE("codec/decode/128", run_decode, 128, 128),
	CODEC_CASE("codec/encode/4096", run_encode, 4096, 4096),
	CODEC_CASE("codec/decode/4096", run_decode, 4096, 4096),
	CODEC_CASE("codec/crc32c/4096", run_crc, 4096, 4096),
	CODEC_CASE("codec/key_hash/16", run_key_hash, 128, 0),
};
const size_t rill_bench_codec_case_count = RILL_ARRAY_COUNT(rill_bench_codec_cases);
