/*
 * Internals of the schema module shared by its files (engine/schema*.c): the schema object
 * with its precomputed layout, the builder's slot arithmetic, the JSON value conversion
 * shared by definitions (defaults) and payload encoding, and the registry's lookups used by
 * readers. Not for use outside engine/schema*.c.
 */
#ifndef RILL_ENGINE_SCHEMA_INT_H
#define RILL_ENGINE_SCHEMA_INT_H

#include <jansson.h>
#include <stdarg.h>

#include "rill/schema.h"

/*
 * One version of one type, immutable once built. The builder keeps each string or bytes
 * value, while the payload is under construction, at a slot of its own past the fixed
 * block (slot = block_bytes + the max_length of every earlier variable field), so setters
 * may come in any order; finish moves the values down to lie back to back.
 *
 *   0             block_bytes                                      payload_bytes_max
 *   | fixed block | slot of var field a (max_length a) | slot of b | ... |
 */
struct rill_schema {
	char *type_name;
	char *doc; /* NULL when none */
	uint16_t version;
	uint32_t type_id; /* set when a registry adopts it */
	uint32_t field_count;
	struct rill_schema_field_info *fields;
	uint32_t *slot;             /* per field: the builder's slot (var fields), else 0 */
	uint32_t block_bytes;       /* fixed block, header included, multiple of 8 */
	uint32_t payload_bytes_max; /* block_bytes + every max_length */
	uint8_t *block_template;    /* the fixed block as a builder starts it: defaults set */
	uint64_t default_set[(RILL_SCHEMA_FIELDS_MAX + 63) / 64]; /* fields with a default */
	uint64_t all_set[(RILL_SCHEMA_FIELDS_MAX + 63) / 64];     /* every field */
	/*
	 * For the validator: the block's reserved and padding bytes as a mask (0xff per byte
	 * that must be zero), one word per 8 bytes of block; and the fields whose values need
	 * a check (all but the plain 8-byte integers), in order.
	 */
	uint64_t *pad_mask;
	uint32_t *checked;
	uint32_t checked_count;
	uint32_t *var_fields; /* the string and bytes fields, in order */
	uint32_t var_count;
	char *json; /* canonical definition */
};

/* Payload header: the block length, then 4 reserved bytes. */
#define SCHEMA_HEADER_BYTES 8u

/* Fixed bytes of a field of @type in the block (the pair, for string and bytes). */
uint32_t schema_field_size(enum rill_field_type type);
const char *schema_field_type_name(enum rill_field_type type);
static inline bool schema_type_is_var(enum rill_field_type type)
{
	return type == RILL_FIELD_STRING || type == RILL_FIELD_BYTES;
}

/* Whether a writer's @from field reads as a reader's @to field (rule C2, schema_compat.c). */
bool schema_promotable(enum rill_field_type from, enum rill_field_type to);

/* Fill @err with a printf-style message (no-op for NULL). Always returns @code. */
int schema_fail(struct rill_schema_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* rill_schema_parse on an already parsed JSON value; @err prefixes are the caller's. */
int schema_from_json(struct rill_schema **out, json_t *root, struct rill_schema_error *err);

/*
 * schema_json_value - convert JSON @value to field @f's type, in the payload encoding
 * rules of rill_schema_json_encode. A string or bytes value goes to @var (at least
 * f->max_length bytes) and its length to value->var.bytes. Returns 0, or -1 with @why set.
 */
int schema_json_value(const struct rill_schema_field_info *f, json_t *value,
		      union rill_field_value *out, uint8_t *var, char *why, size_t why_bytes);

/* schema_value_json - the JSON for a value of field @f (NULL on -ENOMEM or a bad value). */
json_t *schema_value_json(const struct rill_schema_field_info *f, const union rill_field_value *v);

/* schema_utf8_valid - whether @bytes bytes at @s are well-formed UTF-8. */
bool schema_utf8_valid(const uint8_t *s, uint32_t bytes);

/* Builder internals for conversions that write a value in place. */
static inline uint8_t *schema_builder_slot(struct rill_payload_builder *b, uint32_t field)
{
	return b->buf + b->schema->slot[field];
}
/* Record that field @field's slot holds @bytes bytes of value. */
void schema_builder_var_done(struct rill_payload_builder *b, uint32_t field, uint32_t bytes);
static inline void schema_builder_mark(struct rill_payload_builder *b, uint32_t field)
{
	b->set[field / 64] |= 1ull << (field % 64);
}

/* The upcaster for step @from_version -> +1 of type @type_id, or NULL. Any thread. */
struct schema_upcaster {
	rill_schema_upcast_fn *fn;
	void *arg;
};
const struct schema_upcaster *schema_registry_upcaster(struct rill_schema_registry *reg,
						       uint32_t type_id, uint16_t from_version);
/* Changes whenever an upcaster is added: readers rebuild their routes. */
uint64_t schema_registry_generation(struct rill_schema_registry *reg);
/* The type id of @name, or 0. */
uint32_t schema_registry_type_id(struct rill_schema_registry *reg, const char *name);

#endif /* RILL_ENGINE_SCHEMA_INT_H */
