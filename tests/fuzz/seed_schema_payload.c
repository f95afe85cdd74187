/*
 * Writes a seed corpus for fuzz_schema_payload into the folder given: valid payloads made
 * with the builder, two per writer schema of schema_fuzz.h (small values with defaults
 * left alone, and values set everywhere up to the max_lengths), each evolving version
 * paired with every version to read it as. The first byte picks writer and reader as the
 * fuzz target reads it.
 */
#include <stdio.h>
#include <string.h>

#include "tests/fuzz/schema_fuzz.h"

#define WRITERS (FUZZ_EVOLVING_VERSIONS + FUZZ_SCHEMA_COUNT)

static int write_seed(const char *dir, int index, uint8_t selector, const void *payload,
		      uint32_t bytes)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%03d", dir, index);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(&selector, 1, 1, f) != 1 || fwrite(payload, 1, bytes, f) != bytes) {
		perror(path);
		if (f != NULL)
			fclose(f);
		return 1;
	}
	return fclose(f) != 0;
}

/* Field @i's value in @variant (0: small, 1: large); 0 or the setter's error. */
static int set_value(struct rill_payload_builder *b, uint32_t i,
		     const struct rill_schema_field_info *f, int variant)
{
	static const char text[] = "h\xc3\xa9llo, w\xc3\xb6rld: the quick brown fox jumps";
	static const uint8_t blob[] = {0x00, 0xff, 0x10, 0x7f, 0x80, 0xde, 0xad, 0xbe,
				       0xef, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
	uint32_t n;
	switch (f->type) {
	case RILL_FIELD_I64:
	case RILL_FIELD_TIMESTAMP:
		return rill_payload_set_i64(b, i, variant ? -1234567890123ll : 42);
	case RILL_FIELD_U64:
		return rill_payload_set_u64(b, i, variant ? UINT64_MAX : 7);
	case RILL_FIELD_F64:
		return rill_payload_set_f64(b, i, variant ? 0.1 : -2.5);
	case RILL_FIELD_BOOL:
		return rill_payload_set_bool(b, i, variant != 0);
	case RILL_FIELD_ENUM:
		return rill_payload_set_enum(b, i, (uint16_t)((uint32_t)variant % f->symbol_count));
	case RILL_FIELD_STRING:
		n = variant ? (uint32_t)sizeof(text) - 1 : 2;
		n = n > f->max_length ? f->max_length : n;
		while (n > 0 && (text[n] & 0xc0) == 0x80)
			n--; /* never cut a character in two */
		return rill_payload_set_var(b, i, text, n);
	case RILL_FIELD_BYTES:
		n = variant ? (uint32_t)sizeof(blob) : 1;
		return rill_payload_set_var(b, i, blob, n > f->max_length ? f->max_length : n);
	}
	return -EINVAL;
}

/* A payload of @s in @buf (at least its payload_bytes_max); its size, or 0 on failure. */
static uint32_t build(const struct rill_schema *s, uint8_t *buf, int variant)
{
	struct rill_payload_builder b;
	if (rill_payload_builder_init(&b, s, buf, rill_schema_payload_bytes_max(s)) != 0)
		return 0;
	for (uint32_t i = 0; i < rill_schema_field_count(s); i++) {
		const struct rill_schema_field_info *f = rill_schema_field(s, i);
		if (variant == 0 && f->has_default)
			continue;
		if (set_value(&b, i, f, variant) != 0) {
			fprintf(stderr, "seed_schema_payload: %s: field %s refused\n",
				rill_schema_type_name(s), f->name);
			return 0;
		}
	}
	struct rill_schema_error err = {{0}};
	uint32_t bytes;
	if (rill_payload_builder_finish(&b, &bytes, &err) != 0) {
		fprintf(stderr, "seed_schema_payload: %s: %s\n", rill_schema_type_name(s),
			err.message);
		return 0;
	}
	return bytes;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seed_schema_payload DIR\n");
		return 2;
	}
	struct rill_schema_registry *reg;
	struct rill_schema_error err = {{0}};
	if (fuzz_evolving_registry(&reg, &err) != 0) {
		fprintf(stderr, "seed_schema_payload: %s\n", err.message);
		return 1;
	}
	static uint8_t buf[RILL_PAYLOAD_BYTES_MAX];
	int index = 0;
	for (unsigned w = 0; w < WRITERS; w++) {
		struct rill_schema *parsed = NULL;
		const struct rill_schema *s;
		if (w < FUZZ_EVOLVING_VERSIONS) {
			s = rill_schema_get(reg, "Evolving", (uint16_t)(w + 1));
		} else {
			const char *def = fuzz_schema_defs[w - FUZZ_EVOLVING_VERSIONS];
			if (rill_schema_parse(&parsed, def, strlen(def), &err) != 0) {
				fprintf(stderr, "seed_schema_payload: %s\n", err.message);
				return 1;
			}
			s = parsed;
		}
		unsigned readers = w < FUZZ_EVOLVING_VERSIONS ? FUZZ_EVOLVING_VERSIONS : 1;
		for (int variant = 0; variant < 2; variant++) {
			uint32_t bytes = s != NULL ? build(s, buf, variant) : 0;
			if (bytes == 0)
				return 1;
			for (unsigned as = 0; as < readers; as++)
				if (write_seed(argv[1], index++, (uint8_t)(w + WRITERS * as), buf,
					       bytes) != 0)
					return 1;
		}
		if (parsed != NULL)
			rill_schema_free(parsed);
	}
	rill_schema_registry_close(reg);
	return 0;
}
