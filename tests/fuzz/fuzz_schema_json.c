/*
 * libFuzzer target for the JSON payload encoder (rill_schema_json_encode). The first input
 * byte picks one of the schemas of schema_fuzz.h, the rest is the JSON text. The encoder
 * must refuse the text with RILL_E_JSON_INVALID and a message, or produce a payload that
 * rill_schema_validate accepts, that rill_schema_json_decode turns into text, and that this
 * text encodes back to byte for byte. Anything else aborts. Built with clang
 * -fsanitize=fuzzer,address,undefined when meson's `fuzzing` option is on.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill/schema.h"
#include "tests/fuzz/schema_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rill_schema *schemas[FUZZ_SCHEMA_COUNT];

static void die(const char *what, unsigned index, int rc, const char *message)
{
	fprintf(stderr, "fuzz_schema_json: schema %u: %s: %s (%s)\n", index, what,
		rill_strerror(rc), message);
	abort();
}

static void setup(void)
{
	for (unsigned i = 0; i < FUZZ_SCHEMA_COUNT; i++) {
		struct rill_schema_error err = {{0}};
		int rc = rill_schema_parse(&schemas[i], fuzz_schema_defs[i],
					   strlen(fuzz_schema_defs[i]), &err);
		if (rc != 0)
			die("parse", i, rc, err.message);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (schemas[0] == NULL)
		setup();
	if (size < 1)
		return 0;
	unsigned index = data[0] % FUZZ_SCHEMA_COUNT;
	const struct rill_schema *s = schemas[index];
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *payload = malloc(max);
	uint8_t *again = malloc(max);
	if (payload == NULL || again == NULL)
		abort();
	/* The text right at the end of the fuzzer's buffer: reading past it is caught. */
	struct rill_schema_error err = {{0}};
	uint32_t payload_bytes = UINT32_MAX;
	int rc = rill_schema_json_encode(s, (const char *)data + 1, size - 1, payload, max,
					 &payload_bytes, &err);
	if (rc != 0) {
		if (rc != RILL_E_JSON_INVALID)
			die("encode: unexpected code", index, rc, err.message);
		if (err.message[0] == '\0')
			die("encode refused without a message", index, rc, "");
		goto out;
	}
	if (payload_bytes > max || payload_bytes < rill_schema_block_bytes(s))
		die("encode: payload size out of bounds", index, 0, "");
	rc = rill_schema_validate(s, payload, payload_bytes, &err);
	if (rc != 0)
		die("validate of an encoded payload", index, rc, err.message);
	size_t json_bytes;
	char *text = fuzz_json_decode(s, payload, payload_bytes, &json_bytes, &rc, &err);
	if (text == NULL)
		die("decode of a valid payload", index, rc, err.message);
	uint32_t again_bytes = UINT32_MAX;
	rc = rill_schema_json_encode(s, text, json_bytes, again, max, &again_bytes, &err);
	if (rc != 0) {
		fprintf(stderr, "decoded: %s\n", text);
		die("encode of decoded text", index, rc, err.message);
	}
	if (again_bytes != payload_bytes || memcmp(again, payload, payload_bytes) != 0) {
		fprintf(stderr, "decoded: %s\n", text);
		die("decoded text encodes to other bytes", index, 0, "");
	}
	free(text);
out:
	free(again);
	free(payload);
	return 0;
}
