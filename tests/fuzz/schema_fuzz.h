/*
 * What the schema fuzz targets and their seed generators share: four standalone schemas
 * that between them hold every field type with and without defaults, odd alignments and
 * long values; five versions of one type that evolves by appending, renaming (through an
 * upcaster), adding enum symbols and promoting types; and a JSON decode into a buffer that
 * grows until the text fits.
 */
#ifndef RILL_TEST_FUZZ_SCHEMA_FUZZ_H
#define RILL_TEST_FUZZ_SCHEMA_FUZZ_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill/schema.h"

static const char *const fuzz_schema_defs[] = {
	"{\"type\": \"AllRequired\", \"version\": 1, \"fields\": ["
	"{\"name\": \"a\", \"type\": \"i64\"}, {\"name\": \"b\", \"type\": \"u64\"}, "
	"{\"name\": \"c\", \"type\": \"f64\"}, {\"name\": \"d\", \"type\": \"bool\"}, "
	"{\"name\": \"e\", \"type\": \"timestamp\"}, "
	"{\"name\": \"s\", \"type\": \"string\", \"max_length\": 16}, "
	"{\"name\": \"y\", \"type\": \"bytes\", \"max_length\": 8}, "
	"{\"name\": \"k\", \"type\": \"enum\", \"symbols\": [\"X\", \"Y\", \"Z\"]}]}",

	"{\"type\": \"AllDefaults\", \"version\": 1, \"doc\": \"every type with a default\", "
	"\"fields\": ["
	"{\"name\": \"a\", \"type\": \"i64\", \"default\": -9223372036854775808}, "
	"{\"name\": \"b\", \"type\": \"u64\", \"default\": \"18446744073709551615\"}, "
	"{\"name\": \"c\", \"type\": \"f64\", \"default\": -0.1}, "
	"{\"name\": \"d\", \"type\": \"bool\", \"default\": true}, "
	"{\"name\": \"e\", \"type\": \"timestamp\", \"default\": 1700000000000000000}, "
	"{\"name\": \"s\", \"type\": \"string\", \"max_length\": 12, \"default\": "
	"\"h\\u00e9llo\"}, "
	"{\"name\": \"y\", \"type\": \"bytes\", \"max_length\": 4, \"default\": \"beef\"}, "
	"{\"name\": \"k\", \"type\": \"enum\", \"symbols\": [\"X\", \"Y\", \"Z\"], "
	"\"default\": \"Z\"}]}",

	"{\"type\": \"Mixed\", \"version\": 3, \"fields\": ["
	"{\"name\": \"on\", \"type\": \"bool\"}, "
	"{\"name\": \"n\", \"type\": \"i64\", \"default\": 0}, "
	"{\"name\": \"k\", \"type\": \"enum\", \"symbols\": [\"ONE\"]}, "
	"{\"name\": \"off\", \"type\": \"bool\", \"default\": false}, "
	"{\"name\": \"s\", \"type\": \"string\", \"max_length\": 1}, "
	"{\"name\": \"y\", \"type\": \"bytes\", \"max_length\": 1, \"default\": \"\"}, "
	"{\"name\": \"u\", \"type\": \"u64\"}]}",

	"{\"type\": \"Wide\", \"version\": 1, \"fields\": ["
	"{\"name\": \"text\", \"type\": \"string\", \"max_length\": 300}, "
	"{\"name\": \"blob\", \"type\": \"bytes\", \"max_length\": 64}, "
	"{\"name\": \"x\", \"type\": \"f64\", \"doc\": \"any finite number\"}, "
	"{\"name\": \"t\", \"type\": \"string\", \"max_length\": 5, \"default\": \"\"}]}",
};
#define FUZZ_SCHEMA_COUNT (sizeof(fuzz_schema_defs) / sizeof(fuzz_schema_defs[0]))

/* Versions 1..5 of "Evolving", with the mode each is registered under. */
static const struct {
	const char *json;
	int compat;
} fuzz_evolving_defs[] = {
	{"{\"type\": \"Evolving\", \"version\": 1, \"fields\": ["
	 "{\"name\": \"id\", \"type\": \"i64\"}, "
	 "{\"name\": \"name\", \"type\": \"string\", \"max_length\": 16}, "
	 "{\"name\": \"flag\", \"type\": \"bool\"}]}",
	 -1},
	/* appends fields with defaults */
	{"{\"type\": \"Evolving\", \"version\": 2, \"fields\": ["
	 "{\"name\": \"id\", \"type\": \"i64\"}, "
	 "{\"name\": \"name\", \"type\": \"string\", \"max_length\": 16}, "
	 "{\"name\": \"flag\", \"type\": \"bool\"}, "
	 "{\"name\": \"amount\", \"type\": \"f64\", \"default\": 0}, "
	 "{\"name\": \"side\", \"type\": \"enum\", \"symbols\": [\"BUY\", \"SELL\"], "
	 "\"default\": \"BUY\"}, "
	 "{\"name\": \"at\", \"type\": \"timestamp\", \"default\": 0}]}",
	 -1},
	/* renames name to label (the upcaster's job), drops flag, adds blob */
	{"{\"type\": \"Evolving\", \"version\": 3, \"fields\": ["
	 "{\"name\": \"id\", \"type\": \"i64\"}, "
	 "{\"name\": \"label\", \"type\": \"string\", \"max_length\": 32}, "
	 "{\"name\": \"amount\", \"type\": \"f64\", \"default\": 0}, "
	 "{\"name\": \"side\", \"type\": \"enum\", \"symbols\": [\"BUY\", \"SELL\"], "
	 "\"default\": \"BUY\"}, "
	 "{\"name\": \"at\", \"type\": \"timestamp\", \"default\": 0}, "
	 "{\"name\": \"blob\", \"type\": \"bytes\", \"max_length\": 8, \"default\": \"\"}]}",
	 RILL_COMPAT_NONE},
	/* appends a field and an enum symbol */
	{"{\"type\": \"Evolving\", \"version\": 4, \"fields\": ["
	 "{\"name\": \"id\", \"type\": \"i64\"}, "
	 "{\"name\": \"label\", \"type\": \"string\", \"max_length\": 32}, "
	 "{\"name\": \"amount\", \"type\": \"f64\", \"default\": 0}, "
	 "{\"name\": \"side\", \"type\": \"enum\", \"symbols\": [\"BUY\", \"SELL\", \"HOLD\"], "
	 "\"default\": \"BUY\"}, "
	 "{\"name\": \"at\", \"type\": \"timestamp\", \"default\": 0}, "
	 "{\"name\": \"blob\", \"type\": \"bytes\", \"max_length\": 8, \"default\": \"\"}, "
	 "{\"name\": \"count\", \"type\": \"u64\", \"default\": 7}]}",
	 RILL_COMPAT_BACKWARD},
	/* promotes: id to f64, label to bytes, at to i64 */
	{"{\"type\": \"Evolving\", \"version\": 5, \"fields\": ["
	 "{\"name\": \"id\", \"type\": \"f64\"}, "
	 "{\"name\": \"label\", \"type\": \"bytes\", \"max_length\": 40}, "
	 "{\"name\": \"amount\", \"type\": \"f64\", \"default\": 0}, "
	 "{\"name\": \"side\", \"type\": \"enum\", \"symbols\": [\"BUY\", \"SELL\", \"HOLD\"], "
	 "\"default\": \"BUY\"}, "
	 "{\"name\": \"at\", \"type\": \"i64\", \"default\": 0}, "
	 "{\"name\": \"blob\", \"type\": \"bytes\", \"max_length\": 8, \"default\": \"\"}, "
	 "{\"name\": \"count\", \"type\": \"u64\", \"default\": 7}]}",
	 RILL_COMPAT_BACKWARD},
};
#define FUZZ_EVOLVING_VERSIONS (sizeof(fuzz_evolving_defs) / sizeof(fuzz_evolving_defs[0]))

/* The upcaster of Evolving 2 -> 3: label takes name. */
static inline int fuzz_upcast_2_3(void *arg, const struct rill_schema *from, const void *payload,
				  uint32_t payload_bytes, struct rill_payload_builder *to)
{
	(void)arg;
	(void)payload_bytes;
	struct rill_field_ref name;
	int label = rill_schema_field_index(to->schema, "label");
	if (rill_schema_field_ref(from, "name", &name) != 0 || label < 0)
		return -EINVAL;
	uint32_t bytes;
	const void *data = rill_field_var(payload, name, &bytes);
	return rill_payload_set_var(to, (uint32_t)label, data, bytes);
}

/*
 * A memory registry holding Evolving 1..5 and the 2 -> 3 upcaster. Returns 0 or the first
 * error (its text in @err).
 */
static inline int fuzz_evolving_registry(struct rill_schema_registry **out,
					 struct rill_schema_error *err)
{
	struct rill_schema_registry *reg;
	int rc = rill_schema_registry_open(&reg, NULL, NULL, err);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < FUZZ_EVOLVING_VERSIONS && rc == 0; i++)
		rc = rill_schema_register(reg, fuzz_evolving_defs[i].json,
					  strlen(fuzz_evolving_defs[i].json),
					  fuzz_evolving_defs[i].compat, NULL, err);
	if (rc == 0)
		rc = rill_schema_upcaster_add(reg, "Evolving", 2, fuzz_upcast_2_3, NULL);
	if (rc != 0) {
		rill_schema_registry_close(reg);
		return rc;
	}
	*out = reg;
	return 0;
}

/*
 * rill_schema_json_decode into a malloc'ed buffer, grown while the text does not fit.
 * Returns the text (free it) with its length in *json_bytes, or NULL with *rc set when
 * decode refuses. Aborts when the text says a length it does not have.
 */
static inline char *fuzz_json_decode(const struct rill_schema *s, const void *payload,
				     uint32_t payload_bytes, size_t *json_bytes, int *rc,
				     struct rill_schema_error *err)
{
	size_t text_bytes = 4 * (size_t)payload_bytes + 1024;
	for (;;) {
		char *text = malloc(text_bytes);
		if (text == NULL)
			abort();
		*json_bytes = SIZE_MAX;
		*rc = rill_schema_json_decode(s, payload, payload_bytes, text, text_bytes,
					      json_bytes, err);
		if (*rc == 0) {
			if (*json_bytes >= text_bytes || text[*json_bytes] != '\0' ||
			    strlen(text) != *json_bytes) {
				fprintf(stderr, "json_decode: length %zu, NUL disagrees\n",
					*json_bytes);
				abort();
			}
			return text;
		}
		free(text);
		if (*rc != -ENOSPC || text_bytes > (256u << 20))
			return NULL;
		text_bytes *= 4;
	}
}

#endif /* RILL_TEST_FUZZ_SCHEMA_FUZZ_H */
