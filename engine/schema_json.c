/*
 * JSON <-> payload for the CLI and tools: a JSON object (keys: field names) encoded as the
 * flat payload of a schema version, and back. Not the per-event path of the engine, which
 * takes binary payloads; the CLI and tools call it once per input line. Any thread.
 */
#include <errno.h>
#include <string.h>

#include "engine/schema_int.h"

static int set_value(struct rill_payload_builder *b, uint32_t index,
		     const union rill_field_value *v)
{
	switch (b->schema->fields[index].type) {
	case RILL_FIELD_I64:
	case RILL_FIELD_TIMESTAMP:
		return rill_payload_set_i64(b, index, v->i64);
	case RILL_FIELD_U64:
		return rill_payload_set_u64(b, index, v->u64);
	case RILL_FIELD_F64:
		return rill_payload_set_f64(b, index, v->f64);
	case RILL_FIELD_BOOL:
		return rill_payload_set_bool(b, index, v->boolean);
	case RILL_FIELD_ENUM:
		return rill_payload_set_enum(b, index, v->symbol);
	case RILL_FIELD_STRING:
	case RILL_FIELD_BYTES:
		/* The value was decoded straight into the field's slot. */
		schema_builder_var_done(b, index, v->var.bytes);
		return 0;
	}
	return -EINVAL;
}

static int encode_object(const struct rill_schema *s, json_t *root, struct rill_payload_builder *b,
			 uint32_t *payload_bytes, struct rill_schema_error *err)
{
	const char *key;
	json_t *value;
	json_object_foreach(root, key, value)
	{
		int index = rill_schema_field_index(s, key);
		if (index < 0)
			return schema_fail(err, RILL_E_JSON_INVALID,
					   "field '%.128s': %s v%u has no such field", key,
					   s->type_name, s->version);
		const struct rill_schema_field_info *f = &s->fields[index];
		uint8_t *var = schema_type_is_var(f->type) ? schema_builder_slot(b, index) : NULL;
		union rill_field_value v;
		char why[160];
		if (schema_json_value(f, value, &v, var, why, sizeof(why)) != 0)
			return schema_fail(err, RILL_E_JSON_INVALID, "field '%s': %s", f->name,
					   why);
		if (set_value(b, (uint32_t)index, &v) != 0)
			return schema_fail(err, RILL_E_JSON_INVALID, "field '%s': bad value",
					   f->name);
	}
	for (uint32_t i = 0; i < s->field_count; i++)
		if (!(b->set[i / 64] & (1ull << (i % 64))))
			return schema_fail(err, RILL_E_JSON_INVALID,
					   "field '%s': missing, and it has no default",
					   s->fields[i].name);
	return rill_payload_builder_finish(b, payload_bytes, err);
}

int rill_schema_json_encode(const struct rill_schema *s, const char *json, size_t json_bytes,
			    void *buf, uint32_t buf_bytes, uint32_t *payload_bytes,
			    struct rill_schema_error *err)
{
	struct rill_payload_builder b;
	if (rill_payload_builder_init(&b, s, buf, buf_bytes) != 0)
		return schema_fail(err, -ENOSPC,
				   "%s v%u: a buffer of %u bytes is below the %u the version needs",
				   s->type_name, s->version, buf_bytes, s->payload_bytes_max);
	json_error_t jerr;
	/* NUL is a valid character of a string value: decode writes it as \u0000. */
	json_t *root = json_loadb(json, json_bytes, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (root == NULL)
		return schema_fail(err, RILL_E_JSON_INVALID, "line %d, column %d: %s", jerr.line,
				   jerr.column, jerr.text);
	int rc;
	if (!json_is_object(root))
		rc = schema_fail(err, RILL_E_JSON_INVALID, "%s v%u: expected a JSON object",
				 s->type_name, s->version);
	else
		rc = encode_object(s, root, &b, payload_bytes, err);
	json_decref(root);
	return rc;
}

/* The value of field @f in a validated payload. */
static void payload_value(const struct rill_schema_field_info *f, const uint8_t *p,
			  union rill_field_value *v)
{
	struct rill_field_ref ref = {.offset = f->offset, .type = f->type};
	switch (f->type) {
	case RILL_FIELD_BOOL:
		v->boolean = rill_field_bool(p, ref);
		break;
	case RILL_FIELD_ENUM:
		v->symbol = rill_field_enum(p, ref);
		break;
	case RILL_FIELD_STRING:
	case RILL_FIELD_BYTES:
		v->var.data = rill_field_var(p, ref, &v->var.bytes);
		break;
	default:
		v->u64 = rill_field_u64(p, ref); /* the 8-byte numbers, bit for bit */
		break;
	}
}

int rill_schema_json_decode(const struct rill_schema *s, const void *payload,
			    uint32_t payload_bytes, char *text, size_t text_bytes,
			    size_t *json_bytes, struct rill_schema_error *err)
{
	int rc = rill_schema_validate(s, payload, payload_bytes, err);
	if (rc != 0)
		return rc;
	json_t *root = json_object();
	if (root == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->field_count; i++) {
		union rill_field_value v;
		payload_value(&s->fields[i], payload, &v);
		if (json_object_set_new(root, s->fields[i].name,
					schema_value_json(&s->fields[i], &v)) != 0) {
			json_decref(root);
			return -ENOMEM;
		}
	}
	size_t need = json_dumpb(root, text, text_bytes, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (need == 0)
		return -ENOMEM;
	if (need >= text_bytes) {
		*json_bytes = need;
		return schema_fail(err, -ENOSPC, "%s v%u: the JSON needs %zu bytes, %zu given",
				   s->type_name, s->version, need + 1, text_bytes);
	}
	text[need] = '\0';
	*json_bytes = need;
	return 0;
}
