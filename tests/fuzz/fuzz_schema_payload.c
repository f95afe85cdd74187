/*
 * libFuzzer target for the payload validator and the reader (rill_schema_validate,
 * rill_schema_reader_read). The first input byte picks a writer schema (a version of the
 * evolving type of schema_fuzz.h, or one of its standalone schemas) and, for the evolving
 * type, the version to read as; the rest is the payload. Checked:
 *   - validate says 0 or RILL_E_PAYLOAD_INVALID with a message;
 *   - a valid payload decodes to JSON (rill_schema_json_decode) that encodes back to the
 *     same bytes;
 *   - the reader never crashes on untrusted bytes, refuses what validate refused, and what
 *     it returns validates against the reader's version (or, read in place from a later
 *     version, holds every reader field in place and within its rules); trusted and
 *     untrusted reads of a valid payload give the same bytes.
 * Anything else aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill/schema.h"
#include "tests/fuzz/schema_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WRITERS (FUZZ_EVOLVING_VERSIONS + FUZZ_SCHEMA_COUNT)

static struct rill_schema_registry *reg;
static const struct rill_schema *writers[WRITERS];
static struct rill_schema_reader *readers[FUZZ_EVOLVING_VERSIONS];
static struct rill_schema *standalone[FUZZ_SCHEMA_COUNT];

static void die(const char *what, const char *detail, int rc)
{
	fprintf(stderr, "fuzz_schema_payload: %s: %s (%s)\n", what, rill_strerror(rc), detail);
	abort();
}

static void setup(void)
{
	struct rill_schema_error err = {{0}};
	int rc = fuzz_evolving_registry(&reg, &err);
	if (rc != 0)
		die("the evolving registry", err.message, rc);
	for (unsigned v = 0; v < FUZZ_EVOLVING_VERSIONS; v++) {
		writers[v] = rill_schema_get(reg, "Evolving", (uint16_t)(v + 1));
		rc = rill_schema_reader_create(&readers[v], reg, "Evolving", (uint16_t)(v + 1));
		if (writers[v] == NULL || rc != 0)
			die("reader", "Evolving", rc);
	}
	for (unsigned i = 0; i < FUZZ_SCHEMA_COUNT; i++) {
		rc = rill_schema_parse(&standalone[i], fuzz_schema_defs[i],
				       strlen(fuzz_schema_defs[i]), &err);
		if (rc != 0)
			die("parse", err.message, rc);
		writers[FUZZ_EVOLVING_VERSIONS + i] = standalone[i];
	}
}

/* A valid payload decodes, and the text encodes back to the very bytes. */
static void check_json_round_trip(const struct rill_schema *s, const uint8_t *payload,
				  uint32_t payload_bytes)
{
	struct rill_schema_error err = {{0}};
	size_t json_bytes;
	int rc;
	char *text = fuzz_json_decode(s, payload, payload_bytes, &json_bytes, &rc, &err);
	if (text == NULL)
		die("decode of a valid payload", err.message, rc);
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *again = malloc(max);
	if (again == NULL)
		abort();
	uint32_t again_bytes = UINT32_MAX;
	rc = rill_schema_json_encode(s, text, json_bytes, again, max, &again_bytes, &err);
	if (rc != 0) {
		fprintf(stderr, "decoded: %s\n", text);
		die("encode of decoded text", err.message, rc);
	}
	if (again_bytes != payload_bytes || memcmp(again, payload, payload_bytes) != 0) {
		fprintf(stderr, "decoded: %s\n", text);
		die("decoded text encodes to other bytes", "", 0);
	}
	free(again);
	free(text);
}

/*
 * An event of a later version that only appended fields is read in place: @out is the
 * writer's payload, whose block is longer than the reader's, so it is no payload of the
 * reader's version for rill_schema_validate. What the reader promises is that each of its
 * fields reads right at its place: inside the payload, and within the field's rules (each
 * value is one the reader's builder takes).
 */
static void check_in_place(const struct rill_schema *rs, const uint8_t *out, uint32_t out_bytes)
{
	uint32_t max = rill_schema_payload_bytes_max(rs);
	uint8_t *buf = malloc(max);
	if (buf == NULL)
		abort();
	struct rill_payload_builder b;
	if (rill_payload_builder_init(&b, rs, buf, max) != 0)
		die("builder_init", "", 0);
	for (uint32_t i = 0; i < rill_schema_field_count(rs); i++) {
		const struct rill_schema_field_info *f = rill_schema_field(rs, i);
		struct rill_field_ref ref = {.offset = f->offset, .type = f->type};
		uint32_t size = f->type == RILL_FIELD_BOOL ? 1 : f->type == RILL_FIELD_ENUM ? 2 : 8;
		if ((uint64_t)f->offset + size > out_bytes)
			die("in-place read: a field lies past the payload", f->name, 0);
		int rc = -EINVAL;
		uint32_t bytes;
		const uint8_t *var;
		switch (f->type) {
		case RILL_FIELD_I64:
		case RILL_FIELD_TIMESTAMP:
			rc = rill_payload_set_i64(&b, i, rill_field_i64(out, ref));
			break;
		case RILL_FIELD_U64:
			rc = rill_payload_set_u64(&b, i, rill_field_u64(out, ref));
			break;
		case RILL_FIELD_F64:
			rc = rill_payload_set_f64(&b, i, rill_field_f64(out, ref));
			break;
		case RILL_FIELD_BOOL:
			rc = out[f->offset] > 1 ? -EDOM
						: rill_payload_set_bool(&b, i, out[f->offset] != 0);
			break;
		case RILL_FIELD_ENUM:
			rc = rill_payload_set_enum(&b, i, rill_field_enum(out, ref));
			break;
		case RILL_FIELD_STRING:
		case RILL_FIELD_BYTES:
			var = rill_field_var(out, ref, &bytes);
			if (var < out || (uint64_t)(var - out) + bytes > out_bytes)
				die("in-place read: a value lies past the payload", f->name, 0);
			rc = rill_payload_set_var(&b, i, var, bytes);
			break;
		}
		if (rc != 0)
			die("in-place read: a field breaks the reader's rules", f->name, rc);
	}
	struct rill_schema_error err = {{0}};
	uint32_t bytes;
	if (rill_payload_builder_finish(&b, &bytes, &err) != 0)
		die("in-place read: the reader's fields make no payload", err.message, 0);
	free(buf);
}

/* Read @payload (written as @from_version, @valid or not) as readers[@as]. */
static void check_read(unsigned as, uint16_t from_version, const uint8_t *payload,
		       uint32_t payload_bytes, bool valid)
{
	struct rill_schema_reader *r = readers[as];
	const struct rill_schema *rs = rill_schema_reader_schema(r);
	struct rill_schema_error err = {{0}};
	const void *out = NULL;
	uint32_t out_bytes = 0;
	int rc = rill_schema_reader_read(r, from_version, payload, payload_bytes, false, &out,
					 &out_bytes, &err);
	if (!valid) {
		if (rc != RILL_E_PAYLOAD_INVALID)
			die("reader accepted or misnamed a payload validate refused", err.message,
			    rc);
		return;
	}
	if (rc != 0) {
		/* The mapping may not exist (a field without a default), or the upcaster
		 * refuses; the payload itself was valid. */
		if (rc == RILL_E_PAYLOAD_INVALID || rc >= 0 || err.message[0] == '\0')
			die("reader refused a valid payload", err.message, rc);
		return;
	}
	if (out == NULL)
		die("reader returned 0 without output", "", 0);
	bool in_place = out == (const void *)payload;
	if (in_place && from_version > rill_schema_version(rs)) {
		check_in_place(rs, out, out_bytes);
		return;
	}
	rc = rill_schema_validate(rs, out, out_bytes, &err);
	if (rc != 0) {
		char what[96];
		snprintf(what, sizeof(what), "reader v%u output of a v%u payload (%s) is invalid",
			 rill_schema_version(rs), from_version,
			 in_place ? "in place" : "converted");
		die(what, err.message, rc);
	}
	uint8_t *copy = malloc(out_bytes ? out_bytes : 1);
	if (copy == NULL)
		abort();
	memcpy(copy, out, out_bytes);
	const void *trusted_out = NULL;
	uint32_t trusted_bytes = 0;
	rc = rill_schema_reader_read(r, from_version, payload, payload_bytes, true, &trusted_out,
				     &trusted_bytes, &err);
	if (rc != 0 || trusted_bytes != out_bytes || memcmp(trusted_out, copy, out_bytes) != 0)
		die("trusted and untrusted reads differ", err.message, rc);
	free(copy);
	check_json_round_trip(rs, out, out_bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (reg == NULL)
		setup();
	if (size < 1 || size - 1 > UINT32_MAX)
		return 0;
	unsigned w = data[0] % WRITERS;
	const struct rill_schema *s = writers[w];
	/* The payload right at the end of the fuzzer's buffer: reading past it is caught. It
	 * is unaligned when the buffer is: payloads in records are, so that must work. */
	const uint8_t *payload = data + 1;
	uint32_t payload_bytes = (uint32_t)(size - 1);
	struct rill_schema_error err = {{0}};
	int rc = rill_schema_validate(s, payload, payload_bytes, &err);
	if (rc != 0 && (rc != RILL_E_PAYLOAD_INVALID || err.message[0] == '\0'))
		die("validate: unexpected code or no message", err.message, rc);
	if (rc == 0)
		check_json_round_trip(s, payload, payload_bytes);
	if (w < FUZZ_EVOLVING_VERSIONS) {
		unsigned as = (data[0] / WRITERS) % FUZZ_EVOLVING_VERSIONS;
		check_read(as, (uint16_t)(w + 1), payload, payload_bytes, rc == 0);
	}
	return 0;
}
