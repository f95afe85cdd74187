/*
 * Schema benchmarks, in operations per second (scripts/bench-micro.sh turns them into ns per
 * operation). Every case works on one event type of 10 fields (i64, u64, timestamp, i64, f64,
 * bool, enum, two strings of 8 to 16 bytes and a bytes value) in a memory registry, and
 * cycles through 1024 distinct payloads built in setup, so no work can be hoisted:
 *   schema/field_read             one i64 read through a resolved rill_field_ref (target:
 *                                 2 ns or less), the payload reached through a pointer array
 *   schema/validate               rill_schema_validate of a whole payload
 *   schema/upcast                 rill_schema_reader_read of a v1 payload as v2, which
 *                                 inserts a field with a default in the middle and drops
 *                                 one (the copy path); the payload is validated first
 *   schema/upcast_trusted         the same, trusted (no validation)
 *   schema/read_in_place          rill_schema_reader_read at the payload's own version (the
 *                                 input pointer back), validated first, to set beside upcast
 *   schema/read_in_place_trusted  the same, trusted: the reader's own cost alone
 *   schema/json_encode            rill_schema_json_encode of a JSON object text (~230 bytes)
 *   schema/json_decode            rill_schema_json_decode of a payload into a text
 * Setup checks every operation once per payload and skips the case with the reason when a
 * result is wrong, so the timed loops abort only on the impossible. Bench thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/compiler.h"
#include "bench/cases.h"
#include "rill/schema.h"

#define SCHEMA_PAYLOAD_COUNT 1024u /* distinct payloads; a power of two (index mask) */
#define SCHEMA_PAYLOAD_MASK  (SCHEMA_PAYLOAD_COUNT - 1)
#define SCHEMA_TEXT_BYTES    512u /* one event's JSON text, NUL included */
#define SCHEMA_TYPE          "BenchOrder"
#define SCHEMA_BLOB_BYTES    16u /* the bytes value's longest, as set here */

_Static_assert((SCHEMA_PAYLOAD_COUNT & SCHEMA_PAYLOAD_MASK) == 0, "a power of two");

/* Field indexes of version 1, in declared order. */
enum { F_ID, F_ACCOUNT, F_TS, F_QTY, F_PRICE, F_ACTIVE, F_SIDE, F_SKU, F_VENUE, F_BLOB };

static const char schema_v1_json[] =
	"{\"type\": \"" SCHEMA_TYPE "\", \"version\": 1, \"fields\": ["
	"{\"name\": \"id\", \"type\": \"i64\"},"
	"{\"name\": \"account\", \"type\": \"u64\"},"
	"{\"name\": \"ts\", \"type\": \"timestamp\"},"
	"{\"name\": \"qty\", \"type\": \"i64\"},"
	"{\"name\": \"price\", \"type\": \"f64\"},"
	"{\"name\": \"active\", \"type\": \"bool\"},"
	"{\"name\": \"side\", \"type\": \"enum\", \"symbols\": [\"BUY\", \"SELL\"]},"
	"{\"name\": \"sku\", \"type\": \"string\", \"max_length\": 16},"
	"{\"name\": \"venue\", \"type\": \"string\", \"max_length\": 16},"
	"{\"name\": \"blob\", \"type\": \"bytes\", \"max_length\": 32}]}";

/* Version 2: "fee" (with a default) inserted after "ts", "active" dropped: BACKWARD. */
static const char schema_v2_json[] =
	"{\"type\": \"" SCHEMA_TYPE "\", \"version\": 2, \"fields\": ["
	"{\"name\": \"id\", \"type\": \"i64\"},"
	"{\"name\": \"account\", \"type\": \"u64\"},"
	"{\"name\": \"ts\", \"type\": \"timestamp\"},"
	"{\"name\": \"fee\", \"type\": \"i64\", \"default\": 7},"
	"{\"name\": \"qty\", \"type\": \"i64\"},"
	"{\"name\": \"price\", \"type\": \"f64\"},"
	"{\"name\": \"side\", \"type\": \"enum\", \"symbols\": [\"BUY\", \"SELL\"]},"
	"{\"name\": \"sku\", \"type\": \"string\", \"max_length\": 16},"
	"{\"name\": \"venue\", \"type\": \"string\", \"max_length\": 16},"
	"{\"name\": \"blob\", \"type\": \"bytes\", \"max_length\": 32}]}";
#define SCHEMA_V2_FEE_DEFAULT 7

static const char *const schema_side_names[] = {"BUY", "SELL"};
static const char *const schema_venues[] = {"xnas-main", "xnys-floor-01", "bats-europe",
					    "arca-dark-pool-7"};

enum schema_kind {
	K_FIELD_READ,
	K_VALIDATE,
	K_UPCAST,
	K_UPCAST_TRUSTED,
	K_IN_PLACE,
	K_IN_PLACE_TRUSTED,
	K_JSON_ENCODE,
	K_JSON_DECODE,
};

/* The values of event @i, from which its payload and its JSON text are both made. */
struct schema_event {
	int64_t id;
	uint64_t account;
	int64_t ts_ns;
	int64_t qty;
	double price;
	bool active;
	uint16_t side;
	char sku[24];
	uint32_t sku_bytes;
	const char *venue;
	uint8_t blob[SCHEMA_BLOB_BYTES];
	uint32_t blob_bytes;
};

struct schema_ctx {
	enum schema_kind kind;
	bool trusted;
	struct rill_schema_registry *reg;
	const struct rill_schema *v1;
	const struct rill_schema *v2;
	struct rill_schema_reader *reader; /* as v2 (upcast) or v1 (in place) */
	struct rill_field_ref qty_ref;     /* of v1 */
	uint32_t stride_bytes;             /* v1's payload_bytes_max, rounded up to 8 */
	uint32_t out_bytes;                /* capacity of out */
	uint32_t next;                     /* the next payload, modulo the count */
	uint8_t *area;                     /* the payloads, one per stride, 8-byte aligned */
	char *texts;                       /* the JSON texts, SCHEMA_TEXT_BYTES apart */
	uint8_t *out;                      /* json_encode's payload, json_decode's text */
	const uint8_t *payload[SCHEMA_PAYLOAD_COUNT];
	uint32_t payload_bytes[SCHEMA_PAYLOAD_COUNT];
	uint32_t text_bytes[SCHEMA_PAYLOAD_COUNT];
};

static char schema_skip_message[RILL_SCHEMA_MESSAGE_BYTES + 160];

static void schema_teardown(void *ctx)
{
	struct schema_ctx *c = ctx;
	if (c->reader != NULL)
		rill_schema_reader_destroy(c->reader);
	if (c->reg != NULL)
		rill_schema_registry_close(c->reg);
	free(c->area);
	free(c->texts);
	free(c->out);
	free(c);
}

/* Skip the case: say what failed, with the code and the error's message, and free @c. */
static void *schema_skip(struct schema_ctx *c, const char *what, uint32_t event, int rc,
			 const struct rill_schema_error *err)
{
	snprintf(schema_skip_message, sizeof(schema_skip_message),
		 "%s (event %" PRIu32 "): %s (%d)%s%s", what, event,
		 rc != 0 ? rill_strerror(rc) : "wrong result", rc,
		 err != NULL && err->message[0] != '\0' ? ": " : "",
		 err != NULL ? err->message : "");
	rill_bench_skip_reason = schema_skip_message;
	schema_teardown(c);
	return NULL;
}

static void schema_event_make(uint32_t i, struct schema_event *e)
{
	e->id = (int64_t)i * 7919 + 1;
	e->account = 0x9e3779b97f4a7c15ull * (i + 1) >> 2; /* below 2^63: a JSON integer */
	e->ts_ns = INT64_C(1700000000000000000) + (int64_t)i * 1000003;
	e->qty = (int64_t)(i % 500) + 1;
	e->price = 100.25 + (double)i * 0.125;
	e->active = (i & 1) != 0;
	e->side = (uint16_t)(i % 2);
	/* 8 to 16 bytes: "SKU-" and 4 to 12 digits. */
	e->sku_bytes =
		(uint32_t)snprintf(e->sku, sizeof(e->sku), "SKU-%0*" PRIu32, (int)(4 + i % 9), i);
	e->venue = schema_venues[i % RILL_ARRAY_COUNT(schema_venues)];
	e->blob_bytes = 8 + i % (SCHEMA_BLOB_BYTES - 7);
	for (uint32_t k = 0; k < e->blob_bytes; k++)
		e->blob[k] = (uint8_t)(i * 13 + k * 7);
}

static int schema_event_build(const struct schema_ctx *c, const struct schema_event *e,
			      uint8_t *buf, uint32_t *bytes, struct rill_schema_error *err)
{
	struct rill_payload_builder b;
	int rc = rill_payload_builder_init(&b, c->v1, buf, c->stride_bytes);
	if (rc == 0)
		rc = rill_payload_set_i64(&b, F_ID, e->id);
	if (rc == 0)
		rc = rill_payload_set_u64(&b, F_ACCOUNT, e->account);
	if (rc == 0)
		rc = rill_payload_set_i64(&b, F_TS, e->ts_ns);
	if (rc == 0)
		rc = rill_payload_set_i64(&b, F_QTY, e->qty);
	if (rc == 0)
		rc = rill_payload_set_f64(&b, F_PRICE, e->price);
	if (rc == 0)
		rc = rill_payload_set_bool(&b, F_ACTIVE, e->active);
	if (rc == 0)
		rc = rill_payload_set_enum(&b, F_SIDE, e->side);
	if (rc == 0)
		rc = rill_payload_set_var(&b, F_SKU, e->sku, e->sku_bytes);
	if (rc == 0)
		rc = rill_payload_set_var(&b, F_VENUE, e->venue, (uint32_t)strlen(e->venue));
	if (rc == 0)
		rc = rill_payload_set_var(&b, F_BLOB, e->blob, e->blob_bytes);
	if (rc == 0)
		rc = rill_payload_builder_finish(&b, bytes, err);
	return rc;
}

/* The JSON object text of @e into @text; its length, or 0 when it does not fit. */
static uint32_t schema_event_json(const struct schema_event *e, char *text, size_t text_bytes)
{
	char hex[2 * SCHEMA_BLOB_BYTES + 1];
	for (uint32_t k = 0; k < e->blob_bytes; k++)
		snprintf(hex + 2 * k, 3, "%02x", e->blob[k]);
	hex[2 * e->blob_bytes] = '\0';
	int n = snprintf(text, text_bytes,
			 "{\"id\": %" PRId64 ", \"account\": %" PRIu64 ", \"ts\": %" PRId64
			 ", \"qty\": %" PRId64 ", \"price\": %.17g, \"active\": %s, "
			 "\"side\": \"%s\", \"sku\": \"%s\", \"venue\": \"%s\", \"blob\": \"%s\"}",
			 e->id, e->account, e->ts_ns, e->qty, e->price,
			 e->active ? "true" : "false", schema_side_names[e->side], e->sku, e->venue,
			 hex);
	return n > 0 && (size_t)n < text_bytes ? (uint32_t)n : 0;
}

/* The registry, both versions, and the payloads of events 0 .. count - 1. */
static void *schema_setup_common(struct schema_ctx *c)
{
	struct rill_schema_error err = {{0}};
	int rc = rill_schema_registry_open(&c->reg, NULL, NULL, &err);
	if (rc != 0)
		return schema_skip(c, "rill_schema_registry_open", 0, rc, &err);
	rc = rill_schema_register(c->reg, schema_v1_json, sizeof(schema_v1_json) - 1,
				  RILL_COMPAT_BACKWARD, &c->v1, &err);
	if (rc != 0)
		return schema_skip(c, "rill_schema_register v1", 0, rc, &err);
	rc = rill_schema_register(c->reg, schema_v2_json, sizeof(schema_v2_json) - 1, -1, &c->v2,
				  &err);
	if (rc != 0)
		return schema_skip(c, "rill_schema_register v2", 0, rc, &err);
	c->stride_bytes = (uint32_t)rill_align_up(rill_schema_payload_bytes_max(c->v1), 8);
	uint32_t v2_max = rill_schema_payload_bytes_max(c->v2);
	c->out_bytes =
		(uint32_t)rill_align_up(v2_max > c->stride_bytes ? v2_max : c->stride_bytes, 8);
	if (c->out_bytes < 4096)
		c->out_bytes = 4096; /* json_decode's text */
	c->area = aligned_alloc(64, (size_t)c->stride_bytes * SCHEMA_PAYLOAD_COUNT);
	c->texts = malloc((size_t)SCHEMA_TEXT_BYTES * SCHEMA_PAYLOAD_COUNT);
	c->out = aligned_alloc(64, c->out_bytes);
	if (c->area == NULL || c->texts == NULL || c->out == NULL)
		return schema_skip(c, "allocating the payloads", 0, -ENOMEM, NULL);
	memset(c->area, 0, (size_t)c->stride_bytes * SCHEMA_PAYLOAD_COUNT);
	for (uint32_t i = 0; i < SCHEMA_PAYLOAD_COUNT; i++) {
		struct schema_event e;
		schema_event_make(i, &e);
		uint8_t *p = c->area + (size_t)i * c->stride_bytes;
		rc = schema_event_build(c, &e, p, &c->payload_bytes[i], &err);
		if (rc != 0)
			return schema_skip(c, "building a payload", i, rc, &err);
		c->payload[i] = p;
		char *t = c->texts + (size_t)i * SCHEMA_TEXT_BYTES;
		c->text_bytes[i] = schema_event_json(&e, t, SCHEMA_TEXT_BYTES);
		if (c->text_bytes[i] == 0)
			return schema_skip(c, "the JSON text does not fit", i, 0, NULL);
	}
	return c;
}

static void *schema_check_field_read(struct schema_ctx *c)
{
	int rc = rill_schema_field_ref(c->v1, "qty", &c->qty_ref);
	if (rc != 0)
		return schema_skip(c, "rill_schema_field_ref qty", 0, rc, NULL);
	if (c->qty_ref.type != RILL_FIELD_I64)
		return schema_skip(c, "the ref of qty is not an i64", 0, 0, NULL);
	for (uint32_t i = 0; i < SCHEMA_PAYLOAD_COUNT; i++) {
		struct schema_event e;
		schema_event_make(i, &e);
		if (rill_field_i64(c->payload[i], c->qty_ref) != e.qty)
			return schema_skip(c, "rill_field_i64 reads another qty", i, 0, NULL);
	}
	return c;
}

static void *schema_check_validate(struct schema_ctx *c)
{
	struct rill_schema_error err = {{0}};
	for (uint32_t i = 0; i < SCHEMA_PAYLOAD_COUNT; i++) {
		int rc = rill_schema_validate(c->v1, c->payload[i], c->payload_bytes[i], &err);
		if (rc != 0)
			return schema_skip(c, "rill_schema_validate of a built payload", i, rc,
					   &err);
	}
	/* A validator that accepts anything would be fast: check one that it must refuse. */
	struct rill_field_ref active;
	if (rill_schema_field_ref(c->v1, "active", &active) != 0)
		return schema_skip(c, "rill_schema_field_ref active", 0, -ENOENT, NULL);
	memcpy(c->out, c->payload[0], c->payload_bytes[0]);
	c->out[active.offset] = 2;
	if (rill_schema_validate(c->v1, c->out, c->payload_bytes[0], NULL) !=
	    RILL_E_PAYLOAD_INVALID)
		return schema_skip(c, "rill_schema_validate accepts a bool of 2", 0, 0, NULL);
	return c;
}

/* Whether @out (a payload of v2) holds event @i's values with fee at its default. */
static bool schema_upcast_ok(const struct schema_ctx *c, uint32_t i, const void *out)
{
	struct rill_field_ref qty, fee, sku, blob;
	if (rill_schema_field_ref(c->v2, "qty", &qty) != 0 ||
	    rill_schema_field_ref(c->v2, "fee", &fee) != 0 ||
	    rill_schema_field_ref(c->v2, "sku", &sku) != 0 ||
	    rill_schema_field_ref(c->v2, "blob", &blob) != 0)
		return false;
	struct schema_event e;
	schema_event_make(i, &e);
	uint32_t sku_bytes, blob_bytes;
	const void *sku_data = rill_field_var(out, sku, &sku_bytes);
	const void *blob_data = rill_field_var(out, blob, &blob_bytes);
	return rill_field_i64(out, qty) == e.qty &&
	       rill_field_i64(out, fee) == SCHEMA_V2_FEE_DEFAULT && sku_bytes == e.sku_bytes &&
	       memcmp(sku_data, e.sku, sku_bytes) == 0 && blob_bytes == e.blob_bytes &&
	       memcmp(blob_data, e.blob, blob_bytes) == 0;
}

static void *schema_check_reader(struct schema_ctx *c)
{
	bool upcast = c->kind == K_UPCAST || c->kind == K_UPCAST_TRUSTED;
	int rc = rill_schema_reader_create(&c->reader, c->reg, SCHEMA_TYPE, upcast ? 2 : 1);
	if (rc != 0)
		return schema_skip(c, "rill_schema_reader_create", 0, rc, NULL);
	struct rill_schema_error err = {{0}};
	for (uint32_t i = 0; i < SCHEMA_PAYLOAD_COUNT; i++) {
		const void *out;
		uint32_t out_bytes;
		rc = rill_schema_reader_read(c->reader, 1, c->payload[i], c->payload_bytes[i],
					     c->trusted, &out, &out_bytes, &err);
		if (rc != 0)
			return schema_skip(c, "rill_schema_reader_read", i, rc, &err);
		if (!upcast) {
			if (out != c->payload[i] || out_bytes != c->payload_bytes[i])
				return schema_skip(c, "a same-version read is not in place", i, 0,
						   NULL);
			continue;
		}
		if (out == c->payload[i])
			return schema_skip(c, "the v1 to v2 read took no copy", i, 0, NULL);
		rc = rill_schema_validate(c->v2, out, out_bytes, &err);
		if (rc != 0)
			return schema_skip(c, "the v2 payload read does not validate", i, rc, &err);
		if (!schema_upcast_ok(c, i, out))
			return schema_skip(c, "the v2 payload read has other values", i, 0, NULL);
	}
	return c;
}

static void *schema_check_json_encode(struct schema_ctx *c)
{
	struct rill_schema_error err = {{0}};
	for (uint32_t i = 0; i < SCHEMA_PAYLOAD_COUNT; i++) {
		uint32_t bytes;
		int rc = rill_schema_json_encode(c->v1, c->texts + (size_t)i * SCHEMA_TEXT_BYTES,
						 c->text_bytes[i], c->out, c->out_bytes, &bytes,
						 &err);
		if (rc != 0)
			return schema_skip(c, "rill_schema_json_encode", i, rc, &err);
		if (bytes != c->payload_bytes[i] || memcmp(c->out, c->payload[i], bytes) != 0)
			return schema_skip(c, "json_encode and the builder disagree", i, 0, NULL);
	}
	return c;
}

/* Decode each payload, encode the text back, and expect the same payload. */
static void *schema_check_json_decode(struct schema_ctx *c)
{
	struct rill_schema_error err = {{0}};
	uint8_t *back = malloc(c->stride_bytes);
	if (back == NULL)
		return schema_skip(c, "allocating", 0, -ENOMEM, NULL);
	for (uint32_t i = 0; i < SCHEMA_PAYLOAD_COUNT; i++) {
		size_t json_bytes;
		uint32_t bytes;
		int rc = rill_schema_json_decode(c->v1, c->payload[i], c->payload_bytes[i],
						 (char *)c->out, c->out_bytes, &json_bytes, &err);
		if (rc == 0)
			rc = rill_schema_json_encode(c->v1, (const char *)c->out, json_bytes, back,
						     c->stride_bytes, &bytes, &err);
		if (rc == 0 &&
		    (bytes != c->payload_bytes[i] || memcmp(back, c->payload[i], bytes) != 0))
			rc = 1;
		if (rc != 0) {
			free(back);
			return schema_skip(c,
					   rc == 1 ? "json_decode then json_encode differs"
						   : "rill_schema_json_decode then _encode",
					   i, rc == 1 ? 0 : rc, &err);
		}
	}
	free(back);
	return c;
}

static void *schema_setup(const struct rill_bench_case *bc)
{
	struct schema_ctx *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->kind = (enum schema_kind)bc->arg;
	c->trusted = c->kind == K_UPCAST_TRUSTED || c->kind == K_IN_PLACE_TRUSTED;
	if (schema_setup_common(c) == NULL)
		return NULL;
	switch (c->kind) {
	case K_FIELD_READ:
		return schema_check_field_read(c);
	case K_VALIDATE:
		return schema_check_validate(c);
	case K_JSON_ENCODE:
		return schema_check_json_encode(c);
	case K_JSON_DECODE:
		return schema_check_json_decode(c);
	default:
		return schema_check_reader(c);
	}
}

/* A field read per item: one pointer load, one 8-byte load, one add. */
static void run_field_read(void *ctx, uint64_t items)
{
	const struct schema_ctx *c = ctx;
	const struct rill_field_ref ref = c->qty_ref;
	int64_t sum = 0;
	for (uint64_t i = 0; i < items; i++)
		sum += rill_field_i64(c->payload[i & SCHEMA_PAYLOAD_MASK], ref);
	int64_t result = sum; /* escape a copy: sum itself stays in a register */
	rill_bench_escape(&result);
}

static void run_validate(void *ctx, uint64_t items)
{
	struct schema_ctx *c = ctx;
	for (uint64_t i = 0; i < items; i++) {
		uint32_t k = c->next++ & SCHEMA_PAYLOAD_MASK;
		if (rill_schema_validate(c->v1, c->payload[k], c->payload_bytes[k], NULL) != 0)
			abort();
	}
}

static void run_read(void *ctx, uint64_t items)
{
	struct schema_ctx *c = ctx;
	for (uint64_t i = 0; i < items; i++) {
		uint32_t k = c->next++ & SCHEMA_PAYLOAD_MASK;
		const void *out;
		uint32_t out_bytes;
		if (rill_schema_reader_read(c->reader, 1, c->payload[k], c->payload_bytes[k],
					    c->trusted, &out, &out_bytes, NULL) != 0)
			abort();
		rill_bench_escape(out);
	}
}

static void run_json_encode(void *ctx, uint64_t items)
{
	struct schema_ctx *c = ctx;
	for (uint64_t i = 0; i < items; i++) {
		uint32_t k = c->next++ & SCHEMA_PAYLOAD_MASK;
		uint32_t bytes;
		if (rill_schema_json_encode(c->v1, c->texts + (size_t)k * SCHEMA_TEXT_BYTES,
					    c->text_bytes[k], c->out, c->out_bytes, &bytes,
					    NULL) != 0)
			abort();
		rill_bench_escape(c->out);
	}
}

static void run_json_decode(void *ctx, uint64_t items)
{
	struct schema_ctx *c = ctx;
	for (uint64_t i = 0; i < items; i++) {
		uint32_t k = c->next++ & SCHEMA_PAYLOAD_MASK;
		size_t json_bytes;
		if (rill_schema_json_decode(c->v1, c->payload[k], c->payload_bytes[k],
					    (char *)c->out, c->out_bytes, &json_bytes, NULL) != 0)
			abort();
		rill_bench_escape(c->out);
	}
}

#define SCHEMA_CASE(name, fn, batch, kind)                                                         \
	{                                                                                          \
		name, batch, 0, schema_setup, fn, schema_teardown, kind                            \
	}

const struct rill_bench_case rill_bench_schema_cases[] = {
	SCHEMA_CASE("schema/field_read", run_field_read, SCHEMA_PAYLOAD_COUNT, K_FIELD_READ),
	SCHEMA_CASE("schema/validate", run_validate, 64, K_VALIDATE),
	SCHEMA_CASE("schema/upcast", run_read, 64, K_UPCAST),
	SCHEMA_CASE("schema/upcast_trusted", run_read, 64, K_UPCAST_TRUSTED),
	SCHEMA_CASE("schema/read_in_place", run_read, 64, K_IN_PLACE),
	SCHEMA_CASE("schema/read_in_place_trusted", run_read, 64, K_IN_PLACE_TRUSTED),
	SCHEMA_CASE("schema/json_encode", run_json_encode, 16, K_JSON_ENCODE),
	SCHEMA_CASE("schema/json_decode", run_json_decode, 16, K_JSON_DECODE),
};
const size_t rill_bench_schema_case_count = RILL_ARRAY_COUNT(rill_bench_schema_cases);
