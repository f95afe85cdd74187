/*
 * libFuzzer target for the schema definition parser (rill_schema_parse), which takes
 * untrusted JSON. The input is the definition text. It must be refused with
 * RILL_E_SCHEMA_INVALID and a message, or give a schema whose canonical JSON
 * (rill_schema_to_json) parses again to the same canonical JSON, whose layout keeps the
 * promises of schema.h (aligned fields inside a block that is a multiple of 8, no overlaps,
 * names found by index), and whose builder makes, from the defaults and a minimal value for
 * every other field, a payload that validates and goes through JSON and back unchanged.
 * Anything else aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill/schema.h"
#include "tests/fuzz/schema_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *detail, int rc)
{
	fprintf(stderr, "fuzz_schema_parse: %s: %s (%s)\n", what, rill_strerror(rc), detail);
	abort();
}

static uint32_t fixed_bytes(enum rill_field_type type)
{
	switch (type) {
	case RILL_FIELD_BOOL:
		return 1;
	case RILL_FIELD_ENUM:
		return 2;
	case RILL_FIELD_I64:
	case RILL_FIELD_U64:
	case RILL_FIELD_F64:
	case RILL_FIELD_TIMESTAMP:
	case RILL_FIELD_STRING:
	case RILL_FIELD_BYTES:
		return 8;
	}
	die("field of an unknown type", "", (int)type);
	return 0;
}

/* The layout promises of schema.h, field by field. */
static void check_layout(const struct rill_schema *s)
{
	uint32_t count = rill_schema_field_count(s);
	uint32_t block = rill_schema_block_bytes(s);
	if (count > RILL_SCHEMA_FIELDS_MAX || block % 8 != 0 || block < 8 ||
	    rill_schema_payload_bytes_max(s) < block ||
	    rill_schema_payload_bytes_max(s) > RILL_PAYLOAD_BYTES_MAX)
		die("schema sizes", rill_schema_type_name(s), 0);
	if (rill_schema_field(s, count) != NULL || rill_schema_type_id(s) != 0)
		die("field past the last, or a type id outside a registry", "", 0);
	uint32_t end = 8, var_total = 0;
	for (uint32_t i = 0; i < count; i++) {
		const struct rill_schema_field_info *f = rill_schema_field(s, i);
		if (f == NULL || f->name == NULL)
			die("field missing", "", (int)i);
		uint32_t bytes = fixed_bytes(f->type);
		bool var = f->type == RILL_FIELD_STRING || f->type == RILL_FIELD_BYTES;
		uint32_t align = var ? 4 : bytes; /* natural: a pair of u32 for var fields */
		if (f->offset % align != 0 || f->offset < end || f->offset + bytes > block)
			die("field misplaced (unaligned, overlapping or outside the block)",
			    f->name, (int)f->offset);
		end = f->offset + bytes;
		if (rill_schema_field_index(s, f->name) != (int)i)
			die("field_index does not find the field", f->name, 0);
		struct rill_field_ref ref;
		if (rill_schema_field_ref(s, f->name, &ref) != 0 || ref.offset != f->offset ||
		    ref.type != f->type)
			die("field_ref disagrees with the field", f->name, 0);
		if (var != (f->max_length > 0))
			die("max_length on the wrong type", f->name, 0);
		if (f->type == RILL_FIELD_ENUM &&
		    (f->symbol_count == 0 || f->symbol_count > RILL_SCHEMA_SYMBOLS_MAX ||
		     (f->has_default && f->default_value.symbol >= f->symbol_count)))
			die("enum symbols", f->name, 0);
		var_total += f->max_length;
	}
	if (rill_schema_payload_bytes_max(s) < block + var_total)
		die("payload_bytes_max below block + every max_length", "", 0);
}

/* A minimal value for field @i, which has no default. */
static int set_minimal(struct rill_payload_builder *b, uint32_t i,
		       const struct rill_schema_field_info *f)
{
	switch (f->type) {
	case RILL_FIELD_I64:
	case RILL_FIELD_TIMESTAMP:
		return rill_payload_set_i64(b, i, INT64_MIN);
	case RILL_FIELD_U64:
		return rill_payload_set_u64(b, i, UINT64_MAX);
	case RILL_FIELD_F64:
		return rill_payload_set_f64(b, i, -0.0);
	case RILL_FIELD_BOOL:
		return rill_payload_set_bool(b, i, true);
	case RILL_FIELD_ENUM:
		return rill_payload_set_enum(b, i, (uint16_t)(f->symbol_count - 1));
	case RILL_FIELD_STRING:
		return rill_payload_set_var(b, i, "\xc3\xa9", f->max_length >= 2 ? 2 : 0);
	case RILL_FIELD_BYTES:
		return rill_payload_set_var(b, i, "\x00\xff", f->max_length >= 2 ? 2 : 1);
	}
	return -EINVAL;
}

/* Build a payload from defaults and minimal values; it must validate and round-trip. */
static void check_builder(const struct rill_schema *s)
{
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *buf = malloc(max), *again = malloc(max);
	if (buf == NULL || again == NULL)
		abort();
	struct rill_payload_builder b;
	int rc = rill_payload_builder_init(&b, s, buf, max);
	if (rc != 0)
		die("builder_init with payload_bytes_max", "", rc);
	for (uint32_t i = 0; i < rill_schema_field_count(s); i++) {
		const struct rill_schema_field_info *f = rill_schema_field(s, i);
		if (f->has_default && (i % 2 == 0))
			continue; /* half of them keep their default */
		rc = set_minimal(&b, i, f);
		if (rc != 0)
			die("setter refused a value within the field's rules", f->name, rc);
	}
	struct rill_schema_error err = {{0}};
	uint32_t bytes = UINT32_MAX;
	rc = rill_payload_builder_finish(&b, &bytes, &err);
	if (rc != 0 || bytes > max || bytes < rill_schema_block_bytes(s))
		die("builder_finish", err.message, rc);
	rc = rill_schema_validate(s, buf, bytes, &err);
	if (rc != 0)
		die("a built payload does not validate", err.message, rc);
	size_t json_bytes;
	char *text = fuzz_json_decode(s, buf, bytes, &json_bytes, &rc, &err);
	if (text == NULL)
		die("decode of a built payload", err.message, rc);
	uint32_t again_bytes = UINT32_MAX;
	rc = rill_schema_json_encode(s, text, json_bytes, again, max, &again_bytes, &err);
	if (rc != 0 || again_bytes != bytes || memcmp(again, buf, bytes) != 0) {
		fprintf(stderr, "decoded: %s\n", text);
		die("a built payload does not go through JSON and back", err.message, rc);
	}
	free(text);
	free(again);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rill_schema *s;
	struct rill_schema_error err = {{0}};
	/* The text right at the end of the fuzzer's buffer: reading past it is caught. */
	int rc = rill_schema_parse(&s, (const char *)data, size, &err);
	if (rc != 0) {
		if ((rc != RILL_E_SCHEMA_INVALID && rc != -ENOMEM) || err.message[0] == '\0')
			die("parse: unexpected code or no message", err.message, rc);
		return 0;
	}
	char *json = rill_schema_to_json(s);
	if (json == NULL)
		die("to_json", "", -ENOMEM);
	struct rill_schema *again;
	rc = rill_schema_parse(&again, json, strlen(json), &err);
	if (rc != 0) {
		fprintf(stderr, "canonical: %s\n", json);
		die("the canonical JSON does not parse", err.message, rc);
	}
	char *json_again = rill_schema_to_json(again);
	if (json_again == NULL || strcmp(json, json_again) != 0) {
		fprintf(stderr, "canonical: %s\nagain:     %s\n", json,
			json_again ? json_again : "(null)");
		die("the canonical JSON changes when parsed again", "", 0);
	}
	if (rill_schema_version(again) != rill_schema_version(s) ||
	    strcmp(rill_schema_type_name(again), rill_schema_type_name(s)) != 0 ||
	    rill_schema_block_bytes(again) != rill_schema_block_bytes(s) ||
	    rill_schema_payload_bytes_max(again) != rill_schema_payload_bytes_max(s))
		die("the canonical JSON gives another layout", json, 0);
	check_layout(s);
	check_builder(s);
	free(json_again);
	free(json);
	rill_schema_free(again);
	rill_schema_free(s);
	return 0;
}
