/*
 * Compatibility between two versions of a type: can a reader of one read what the other
 * wrote? The rules (docs/SCHEMAS.md), applied to every field of the reader, matched by name:
 *
 *   C1. A field the writer lacks must have a default in the reader.
 *   C2. A field in both keeps its type, or is promoted writer -> reader:
 *       i64 -> f64, u64 -> f64, i64 -> timestamp, timestamp -> i64, string -> bytes.
 *   C3. A string or bytes field never has a smaller max_length in the reader.
 *   C4. An enum reader knows every symbol of the writer, or has a default to read
 *       unknown ones as.
 *
 * Fields the reader lacks are skipped (no rule). Control path; any thread.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "engine/schema_int.h"

static const struct rill_schema_field_info *find_field(const struct rill_schema *s,
						       const char *name)
{
	int i = rill_schema_field_index(s, name);
	return i < 0 ? NULL : &s->fields[i];
}

bool schema_promotable(enum rill_field_type from, enum rill_field_type to)
{
	if (from == to)
		return true;
	switch (to) {
	case RILL_FIELD_F64:
		return from == RILL_FIELD_I64 || from == RILL_FIELD_U64;
	case RILL_FIELD_TIMESTAMP:
		return from == RILL_FIELD_I64;
	case RILL_FIELD_I64:
		return from == RILL_FIELD_TIMESTAMP;
	case RILL_FIELD_BYTES:
		return from == RILL_FIELD_STRING;
	default:
		return false;
	}
}

static bool has_symbol(const struct rill_schema_field_info *f, const char *symbol)
{
	for (uint32_t i = 0; i < f->symbol_count; i++)
		if (strcmp(f->symbols[i], symbol) == 0)
			return true;
	return false;
}

bool rill_schema_compatible(const struct rill_schema *reader, const struct rill_schema *writer,
			    struct rill_schema_error *err)
{
	unsigned rv = reader->version, wv = writer->version;
	for (uint32_t i = 0; i < reader->field_count; i++) {
		const struct rill_schema_field_info *r = &reader->fields[i];
		const struct rill_schema_field_info *w = find_field(writer, r->name);
		if (w == NULL) {
			if (r->has_default)
				continue;
			schema_fail(err, 0,
				    "field '%s': in version %u, not in version %u, and without a "
				    "default: a field one side lacks needs a default to be read",
				    r->name, rv, wv);
			return false;
		}
		if (!schema_promotable(w->type, r->type)) {
			schema_fail(err, 0,
				    "field '%s': %s in version %u, %s in version %u: a type may "
				    "change only by promotion (i64 or u64 to f64, i64 to and from "
				    "timestamp, string to bytes)",
				    r->name, schema_field_type_name(w->type), wv,
				    schema_field_type_name(r->type), rv);
			return false;
		}
		if (schema_type_is_var(r->type) && r->max_length < w->max_length) {
			schema_fail(err, 0,
				    "field '%s': max_length %u in version %u, %u in version %u: a "
				    "reader's max_length may not be smaller than the writer's",
				    r->name, w->max_length, wv, r->max_length, rv);
			return false;
		}
		if (r->type == RILL_FIELD_ENUM && !r->has_default) {
			for (uint32_t k = 0; k < w->symbol_count; k++) {
				if (has_symbol(r, w->symbols[k]))
					continue;
				schema_fail(err, 0,
					    "field '%s': symbol '%s' of version %u is unknown to "
					    "version %u, which has no default for it",
					    r->name, w->symbols[k], wv, rv);
				return false;
			}
		}
	}
	return true;
}

static const char *const compat_names[] = {
	[RILL_COMPAT_NONE] = "NONE",
	[RILL_COMPAT_BACKWARD] = "BACKWARD",
	[RILL_COMPAT_BACKWARD_TRANSITIVE] = "BACKWARD_TRANSITIVE",
	[RILL_COMPAT_FORWARD] = "FORWARD",
	[RILL_COMPAT_FORWARD_TRANSITIVE] = "FORWARD_TRANSITIVE",
	[RILL_COMPAT_FULL] = "FULL",
	[RILL_COMPAT_FULL_TRANSITIVE] = "FULL_TRANSITIVE",
};

const char *rill_schema_compat_name(enum rill_schema_compat compat)
{
	if ((unsigned)compat < sizeof(compat_names) / sizeof(compat_names[0]))
		return compat_names[compat];
	return "?";
}

int rill_schema_compat_parse(const char *name, enum rill_schema_compat *compat)
{
	for (unsigned i = 0; i < sizeof(compat_names) / sizeof(compat_names[0]); i++) {
		if (strcasecmp(name, compat_names[i]) == 0) {
			*compat = (enum rill_schema_compat)i;
			return 0;
		}
	}
	return -EINVAL;
}
