/*
 * Payloads of a schema version: the validator (the write model's check of every event a
 * producer sends) and the builder (payloads made by the C API, the JSON encoder and the
 * upcasting reader). Both are on the per-event path: no allocation, no locks, any thread
 * (a builder belongs to its caller's thread).
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "base/assert.h"
#include "base/compiler.h"
#include "engine/schema_int.h"

static uint32_t load_u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* The field just past byte @pos of the block, to name in a padding complaint. */
static const char *field_after(const struct rill_schema *s, uint32_t pos)
{
	for (uint32_t i = 0; i < s->field_count; i++)
		if (s->fields[i].offset > pos)
			return s->fields[i].name;
	return "(end of block)";
}

/* Reserved and padding bytes must be zero: one AND per 8 bytes of block. */
static int check_padding(const struct rill_schema *s, const uint8_t *p,
			 struct rill_schema_error *err)
{
	uint64_t any = 0;
	for (uint32_t w = 0; w < s->block_bytes / 8; w++) {
		uint64_t v;
		memcpy(&v, p + 8 * w, sizeof(v));
		any |= v & s->pad_mask[w];
	}
	if (rill_likely(any == 0))
		return 0;
	const uint8_t *mask = (const uint8_t *)s->pad_mask;
	uint32_t pos = 0;
	while (pos < s->block_bytes && !(p[pos] & mask[pos]))
		pos++;
	return schema_fail(err, RILL_E_PAYLOAD_INVALID,
			   "%s v%u: byte %u of the block is reserved or padding (before field "
			   "'%s') and not zero",
			   s->type_name, s->version, pos, field_after(s, pos));
}

/* One field's value, at its place; @tail is where the next variable value must start. */
static int validate_field(const struct rill_schema_field_info *f, const uint8_t *p,
			  uint32_t payload_bytes, uint32_t *tail, struct rill_schema_error *err)
{
	const uint8_t *v = p + f->offset;
	switch (f->type) {
	case RILL_FIELD_I64:
	case RILL_FIELD_U64:
	case RILL_FIELD_TIMESTAMP:
		return 0;
	case RILL_FIELD_F64: {
		double d;
		memcpy(&d, v, sizeof(d));
		if (rill_unlikely(!isfinite(d)))
			return schema_fail(err, RILL_E_PAYLOAD_INVALID,
					   "field '%s': f64 is not finite", f->name);
		return 0;
	}
	case RILL_FIELD_BOOL:
		if (rill_unlikely(*v > 1))
			return schema_fail(err, RILL_E_PAYLOAD_INVALID,
					   "field '%s': bool byte is %u, not 0 or 1", f->name, *v);
		return 0;
	case RILL_FIELD_ENUM: {
		uint16_t sym;
		memcpy(&sym, v, sizeof(sym));
		if (rill_unlikely(sym >= f->symbol_count))
			return schema_fail(err, RILL_E_PAYLOAD_INVALID,
					   "field '%s': enum index %u, past its %u symbols",
					   f->name, sym, f->symbol_count);
		return 0;
	}
	case RILL_FIELD_STRING:
	case RILL_FIELD_BYTES: {
		uint32_t off = load_u32(v), len = load_u32(v + 4);
		if (rill_unlikely(off != *tail))
			return schema_fail(err, RILL_E_PAYLOAD_INVALID,
					   "field '%s': value at offset %u, expected at %u (values "
					   "lie back to back in the tail)",
					   f->name, off, *tail);
		if (rill_unlikely(len > f->max_length))
			return schema_fail(err, RILL_E_PAYLOAD_INVALID,
					   "field '%s': %u bytes, over its max_length of %u",
					   f->name, len, f->max_length);
		if (rill_unlikely(len > payload_bytes - off))
			return schema_fail(err, RILL_E_PAYLOAD_INVALID,
					   "field '%s': %u bytes at offset %u run past the "
					   "%u-byte payload",
					   f->name, len, off, payload_bytes);
		if (f->type == RILL_FIELD_STRING && rill_unlikely(!schema_utf8_valid(p + off, len)))
			return schema_fail(err, RILL_E_PAYLOAD_INVALID,
					   "field '%s': string is not valid UTF-8", f->name);
		*tail = off + len;
		return 0;
	}
	}
	RILL_ASSERT(!"unknown field type");
	return RILL_E_PAYLOAD_INVALID;
}

int rill_schema_validate(const struct rill_schema *s, const void *payload, uint32_t payload_bytes,
			 struct rill_schema_error *err)
{
	const uint8_t *p = payload;
	if (rill_unlikely(payload_bytes < s->block_bytes))
		return schema_fail(err, RILL_E_PAYLOAD_INVALID,
				   "%s v%u: payload of %u bytes is shorter than its %u-byte block",
				   s->type_name, s->version, payload_bytes, s->block_bytes);
	uint32_t block = load_u32(p);
	if (rill_unlikely(block != s->block_bytes))
		return schema_fail(err, RILL_E_PAYLOAD_INVALID,
				   "%s v%u: block_bytes is %u, the version's block is %u",
				   s->type_name, s->version, block, s->block_bytes);
	int rc = check_padding(s, p, err);
	if (rill_unlikely(rc != 0))
		return rc;
	uint32_t tail = s->block_bytes;
	for (uint32_t i = 0; i < s->checked_count; i++) {
		rc = validate_field(&s->fields[s->checked[i]], p, payload_bytes, &tail, err);
		if (rill_unlikely(rc != 0))
			return rc;
	}
	if (rill_unlikely(tail != payload_bytes))
		return schema_fail(err, RILL_E_PAYLOAD_INVALID,
				   "%s v%u: %u bytes follow the last value", s->type_name,
				   s->version, payload_bytes - tail);
	return 0;
}

int rill_payload_builder_init(struct rill_payload_builder *b, const struct rill_schema *s,
			      void *buf, uint32_t buf_bytes)
{
	if (buf_bytes < s->payload_bytes_max)
		return -ENOSPC;
	b->schema = s;
	b->buf = buf;
	memcpy(b->buf, s->block_template, s->block_bytes);
	memcpy(b->set, s->default_set, sizeof(b->set));
	for (uint32_t k = 0; k < s->var_count; k++) {
		const struct rill_schema_field_info *f = &s->fields[s->var_fields[k]];
		if (f->has_default)
			memcpy(b->buf + s->slot[s->var_fields[k]], f->default_value.var.data,
			       f->default_value.var.bytes);
	}
	return 0;
}

/*
 * Write the @bytes at @value into fixed field @field, which must be of @type (timestamp
 * fields take i64). 0, or -EINVAL for no such field or another type.
 */
static int set_fixed(struct rill_payload_builder *b, uint32_t field, enum rill_field_type type,
		     const void *value, size_t bytes)
{
	if (field >= b->schema->field_count)
		return -EINVAL;
	enum rill_field_type t = b->schema->fields[field].type;
	if (t != type && !(type == RILL_FIELD_I64 && t == RILL_FIELD_TIMESTAMP))
		return -EINVAL;
	memcpy(b->buf + b->schema->fields[field].offset, value, bytes);
	schema_builder_mark(b, field);
	return 0;
}

int rill_payload_set_i64(struct rill_payload_builder *b, uint32_t field, int64_t value)
{
	return set_fixed(b, field, RILL_FIELD_I64, &value, sizeof(value));
}

int rill_payload_set_u64(struct rill_payload_builder *b, uint32_t field, uint64_t value)
{
	return set_fixed(b, field, RILL_FIELD_U64, &value, sizeof(value));
}

int rill_payload_set_f64(struct rill_payload_builder *b, uint32_t field, double value)
{
	if (field < b->schema->field_count && b->schema->fields[field].type == RILL_FIELD_F64 &&
	    !isfinite(value))
		return -EDOM;
	return set_fixed(b, field, RILL_FIELD_F64, &value, sizeof(value));
}

int rill_payload_set_bool(struct rill_payload_builder *b, uint32_t field, bool value)
{
	uint8_t byte = value ? 1 : 0;
	return set_fixed(b, field, RILL_FIELD_BOOL, &byte, sizeof(byte));
}

int rill_payload_set_enum(struct rill_payload_builder *b, uint32_t field, uint16_t symbol)
{
	if (field < b->schema->field_count && b->schema->fields[field].type == RILL_FIELD_ENUM &&
	    symbol >= b->schema->fields[field].symbol_count)
		return -EDOM;
	return set_fixed(b, field, RILL_FIELD_ENUM, &symbol, sizeof(symbol));
}

void schema_builder_var_done(struct rill_payload_builder *b, uint32_t field, uint32_t bytes)
{
	const struct rill_schema *s = b->schema;
	RILL_DASSERT(field < s->field_count);
	RILL_DASSERT(schema_type_is_var(s->fields[field].type));
	RILL_DASSERT(bytes <= s->fields[field].max_length);
	uint32_t pair[2] = {s->slot[field], bytes};
	memcpy(b->buf + s->fields[field].offset, pair, sizeof(pair));
	schema_builder_mark(b, field);
}

int rill_payload_set_var(struct rill_payload_builder *b, uint32_t field, const void *data,
			 uint32_t bytes)
{
	const struct rill_schema *s = b->schema;
	if (field >= s->field_count || !schema_type_is_var(s->fields[field].type))
		return -EINVAL;
	if (bytes > s->fields[field].max_length)
		return -EMSGSIZE;
	if (s->fields[field].type == RILL_FIELD_STRING && !schema_utf8_valid(data, bytes))
		return -EDOM;
	/* memmove: the value may come from this very buffer (an upcaster moving a field). */
	memmove(schema_builder_slot(b, field), data, bytes);
	schema_builder_var_done(b, field, bytes);
	return 0;
}

int rill_payload_builder_finish(struct rill_payload_builder *b, uint32_t *payload_bytes,
				struct rill_schema_error *err)
{
	const struct rill_schema *s = b->schema;
	for (uint32_t w = 0; w < RILL_ARRAY_COUNT(b->set); w++) {
		uint64_t missing = s->all_set[w] & ~b->set[w];
		if (rill_unlikely(missing != 0))
			return schema_fail(
				err, RILL_E_PAYLOAD_INVALID,
				"field '%s': required (no default) and not set",
				s->fields[w * 64 + (uint32_t)__builtin_ctzll(missing)].name);
	}
	/*
	 * Move the values down from their slots to lie back to back. Each value moves
	 * towards the block (its slot is at or past the running end, as the slots sum the
	 * max_lengths), and in field order, so no move overwrites a value not yet moved.
	 */
	uint32_t pos = s->block_bytes;
	for (uint32_t k = 0; k < s->var_count; k++) {
		const struct rill_schema_field_info *f = &s->fields[s->var_fields[k]];
		uint32_t pair[2];
		memcpy(pair, b->buf + f->offset, sizeof(pair));
		RILL_DASSERT(pair[0] == s->slot[s->var_fields[k]] && pair[0] >= pos);
		if (pair[0] != pos)
			memmove(b->buf + pos, b->buf + pair[0], pair[1]);
		pair[0] = pos;
		memcpy(b->buf + f->offset, pair, sizeof(pair));
		pos += pair[1];
	}
	*payload_bytes = pos;
	return 0;
}
