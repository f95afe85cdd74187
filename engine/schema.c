/*
 * Schema definitions: parsing the JSON definition (with jansson), checking every key, and
 * laying the version out (field offsets, block length, builder slots, the default block).
 * Control path only: it allocates, and runs when a version is registered or loaded, never
 * per event. Any thread; a schema is immutable once built.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/compiler.h"
#include "base/hex.h"
#include "engine/schema_int.h"

static const char *const field_type_names[] = {
	[RILL_FIELD_I64] = "i64",
	[RILL_FIELD_U64] = "u64",
	[RILL_FIELD_F64] = "f64",
	[RILL_FIELD_BOOL] = "bool",
	[RILL_FIELD_TIMESTAMP] = "timestamp",
	[RILL_FIELD_STRING] = "string",
	[RILL_FIELD_BYTES] = "bytes",
	[RILL_FIELD_ENUM] = "enum",
};

const char *schema_field_type_name(enum rill_field_type type)
{
	if ((unsigned)type < RILL_ARRAY_COUNT(field_type_names) && field_type_names[type] != NULL)
		return field_type_names[type];
	return "?";
}

uint32_t schema_field_size(enum rill_field_type type)
{
	switch (type) {
	case RILL_FIELD_BOOL:
		return 1;
	case RILL_FIELD_ENUM:
		return 2;
	default:
		return 8; /* the 8-byte numbers, and the (offset, length) pair */
	}
}

/* Natural alignment: 4 for the pair of two u32, else the size. */
static uint32_t field_align(enum rill_field_type type)
{
	return schema_type_is_var(type) ? 4 : schema_field_size(type);
}

int schema_fail(struct rill_schema_error *err, int code, const char *fmt, ...)
{
	if (err != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return code;
}

/*
 * UTF-8 well-formedness (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF).
 * Written by hand: jansson checks UTF-8 only inside its parser and does not export the
 * check, and no other library rill depends on offers one.
 */
bool schema_utf8_valid(const uint8_t *s, uint32_t bytes)
{
	uint32_t i = 0;
	while (i < bytes) {
		uint64_t word;
		if (bytes - i >= 8 &&
		    (memcpy(&word, s + i, 8), (word & 0x8080808080808080ull) == 0)) {
			i += 8; /* eight ASCII bytes at once: the common case */
			continue;
		}
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		uint32_t n;
		uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			if (c == 0xf4)
				hi = 0x8f; /* past U+10FFFF */
		} else {
			return false;
		}
		if (bytes - i <= n)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (uint32_t k = 2; k <= n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += n + 1;
	}
	return true;
}

/* [A-Za-z_][A-Za-z0-9_]* (and dots for type names), at most the name limit. */
static bool name_valid(const char *name, size_t bytes, bool dots)
{
	if (bytes == 0 || bytes > RILL_SCHEMA_NAME_BYTES_MAX)
		return false;
	for (size_t i = 0; i < bytes; i++) {
		char c = name[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		bool digit = c >= '0' && c <= '9';
		if (!(alpha || (i > 0 && (digit || (dots && c == '.')))))
			return false;
	}
	return true;
}

/* A JSON string as a name: NULL (with @why) when it is not one. */
static const char *json_name(json_t *v, bool dots, const char **why)
{
	if (v == NULL) {
		*why = "is missing";
		return NULL;
	}
	if (!json_is_string(v)) {
		*why = "must be a string";
		return NULL;
	}
	const char *name = json_string_value(v);
	if (!name_valid(name, json_string_length(v), dots)) {
		*why = dots ? "must match [A-Za-z_][A-Za-z0-9_.]* and be at most 128 bytes"
			    : "must match [A-Za-z_][A-Za-z0-9_]* and be at most 128 bytes";
		return NULL;
	}
	return name;
}

static int parse_type(const char *name, enum rill_field_type *type)
{
	for (unsigned t = 1; t < RILL_ARRAY_COUNT(field_type_names); t++) {
		if (strcmp(name, field_type_names[t]) == 0) {
			*type = (enum rill_field_type)t;
			return 0;
		}
	}
	return -1;
}

/*
 * Decimal text to u64. strtoull alone accepts signs, spaces and wraps silently on some
 * inputs; the digits are checked first so that only plain decimal gets through.
 */
static int parse_u64_text(const char *s, size_t bytes, uint64_t *out)
{
	if (bytes == 0 || bytes > 20)
		return -1;
	for (size_t i = 0; i < bytes; i++)
		if (s[i] < '0' || s[i] > '9')
			return -1;
	errno = 0;
	unsigned long long v = strtoull(s, NULL, 10);
	if (errno != 0)
		return -1;
	*out = v;
	return 0;
}

static int json_var_value(const struct rill_schema_field_info *f, json_t *value,
			  union rill_field_value *out, uint8_t *var, char *why, size_t why_bytes)
{
	if (!json_is_string(value)) {
		snprintf(why, why_bytes, "expected a %s string",
			 f->type == RILL_FIELD_BYTES ? "hex" : "JSON");
		return -1;
	}
	const char *s = json_string_value(value);
	size_t n = json_string_length(value);
	if (f->type == RILL_FIELD_STRING) {
		if (n > f->max_length) {
			snprintf(why, why_bytes, "%zu bytes, over its max_length of %u", n,
				 f->max_length);
			return -1;
		}
		memcpy(var, s, n);
		out->var.data = var;
		out->var.bytes = (uint32_t)n;
		return 0;
	}
	if (n % 2 != 0) {
		snprintf(why, why_bytes, "hex string of odd length %zu", n);
		return -1;
	}
	if (n / 2 > f->max_length) {
		snprintf(why, why_bytes, "%zu bytes, over its max_length of %u", n / 2,
			 f->max_length);
		return -1;
	}
	size_t bad = rill_hex_decode(s, n, var);
	if (bad != n) {
		snprintf(why, why_bytes, "not a hex digit at character %zu", bad);
		return -1;
	}
	out->var.data = var;
	out->var.bytes = (uint32_t)(n / 2);
	return 0;
}

int schema_json_value(const struct rill_schema_field_info *f, json_t *value,
		      union rill_field_value *out, uint8_t *var, char *why, size_t why_bytes)
{
	switch (f->type) {
	case RILL_FIELD_I64:
	case RILL_FIELD_TIMESTAMP:
		if (!json_is_integer(value)) {
			snprintf(why, why_bytes, "expected an integer");
			return -1;
		}
		out->i64 = (int64_t)json_integer_value(value);
		return 0;
	case RILL_FIELD_U64:
		if (json_is_integer(value)) {
			if (json_integer_value(value) < 0) {
				snprintf(why, why_bytes, "%lld is out of range for u64",
					 (long long)json_integer_value(value));
				return -1;
			}
			out->u64 = (uint64_t)json_integer_value(value);
			return 0;
		}
		if (json_is_string(value) &&
		    parse_u64_text(json_string_value(value), json_string_length(value),
				   &out->u64) == 0)
			return 0;
		snprintf(why, why_bytes,
			 "expected an integer from 0 to 2^64-1 (above 2^63-1 as a decimal string)");
		return -1;
	case RILL_FIELD_F64:
		if (!json_is_number(value) || !isfinite(json_number_value(value))) {
			snprintf(why, why_bytes, "expected a number");
			return -1;
		}
		out->f64 = json_number_value(value);
		return 0;
	case RILL_FIELD_BOOL:
		if (!json_is_boolean(value)) {
			snprintf(why, why_bytes, "expected true or false");
			return -1;
		}
		out->boolean = json_is_true(value);
		return 0;
	case RILL_FIELD_ENUM:
		if (json_is_string(value)) {
			/* By length too: the text may hold a NUL (JSON_ALLOW_NUL), and
			 * "SELL\u0000junk" is not SELL. */
			size_t n = json_string_length(value);
			for (uint32_t i = 0; i < f->symbol_count; i++) {
				if (strlen(f->symbols[i]) == n &&
				    memcmp(f->symbols[i], json_string_value(value), n) == 0) {
					out->symbol = (uint16_t)i;
					return 0;
				}
			}
			snprintf(why, why_bytes, "'%.64s' is not one of its symbols",
				 json_string_value(value));
			return -1;
		}
		snprintf(why, why_bytes, "expected one of its symbols, as a string");
		return -1;
	case RILL_FIELD_STRING:
	case RILL_FIELD_BYTES:
		return json_var_value(f, value, out, var, why, why_bytes);
	}
	snprintf(why, why_bytes, "unknown field type");
	return -1;
}

json_t *schema_value_json(const struct rill_schema_field_info *f, const union rill_field_value *v)
{
	static const char hex[] = "0123456789abcdef";
	switch (f->type) {
	case RILL_FIELD_I64:
	case RILL_FIELD_TIMESTAMP:
		return json_integer((json_int_t)v->i64);
	case RILL_FIELD_U64:
		if (v->u64 <= (uint64_t)INT64_MAX)
			return json_integer((json_int_t)v->u64);
		char digits[24];
		snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v->u64);
		return json_string(digits);
	case RILL_FIELD_F64:
		return json_real(v->f64); /* NULL for a non-finite value */
	case RILL_FIELD_BOOL:
		return json_boolean(v->boolean);
	case RILL_FIELD_ENUM:
		return v->symbol < f->symbol_count ? json_string(f->symbols[v->symbol]) : NULL;
	case RILL_FIELD_STRING:
		return json_stringn(v->var.data, v->var.bytes);
	case RILL_FIELD_BYTES: {
		char *text = malloc((size_t)v->var.bytes * 2 + 1);
		if (text == NULL)
			return NULL;
		const uint8_t *p = v->var.data;
		for (uint32_t i = 0; i < v->var.bytes; i++) {
			text[2 * i] = hex[p[i] >> 4];
			text[2 * i + 1] = hex[p[i] & 15];
		}
		json_t *s = json_stringn(text, (size_t)v->var.bytes * 2);
		free(text);
		return s;
	}
	}
	return NULL;
}

void rill_schema_free(struct rill_schema *s)
{
	if (s == NULL)
		return;
	for (uint32_t i = 0; i < s->field_count; i++) {
		struct rill_schema_field_info *f = &s->fields[i];
		free((char *)f->name);
		free((char *)f->doc);
		for (uint32_t k = 0; k < f->symbol_count; k++)
			free((char *)f->symbols[k]);
		free(f->symbols);
		if (schema_type_is_var(f->type))
			free((void *)f->default_value.var.data);
	}
	free(s->fields);
	free(s->slot);
	free(s->pad_mask);
	free(s->checked);
	free(s->var_fields);
	free(s->block_template);
	free(s->type_name);
	free(s->doc);
	free(s->json);
	free(s);
}

static int parse_symbols(struct rill_schema_field_info *f, json_t *symbols, const char *where,
			 struct rill_schema_error *err)
{
	if (!json_is_array(symbols) || json_array_size(symbols) == 0 ||
	    json_array_size(symbols) > RILL_SCHEMA_SYMBOLS_MAX)
		return schema_fail(err, RILL_E_SCHEMA_INVALID,
				   "%s: \"symbols\" must be an array of 1 to %u names", where,
				   RILL_SCHEMA_SYMBOLS_MAX);
	f->symbols = calloc(json_array_size(symbols), sizeof(*f->symbols));
	if (f->symbols == NULL)
		return -ENOMEM;
	size_t i;
	json_t *sym;
	json_array_foreach(symbols, i, sym)
	{
		const char *why;
		const char *name = json_name(sym, false, &why);
		if (name == NULL)
			return schema_fail(err, RILL_E_SCHEMA_INVALID, "%s: symbol %zu %s", where,
					   i, why);
		for (size_t k = 0; k < i; k++)
			if (strcmp(f->symbols[k], name) == 0)
				return schema_fail(err, RILL_E_SCHEMA_INVALID,
						   "%s: symbol '%s' appears twice", where, name);
		f->symbols[i] = strdup(name);
		if (f->symbols[i] == NULL)
			return -ENOMEM;
		f->symbol_count = (uint32_t)i + 1;
	}
	return 0;
}

static int parse_default(struct rill_schema_field_info *f, json_t *value, const char *where,
			 struct rill_schema_error *err)
{
	uint8_t *var = NULL;
	if (schema_type_is_var(f->type)) {
		var = malloc(f->max_length > 0 ? f->max_length : 1);
		if (var == NULL)
			return -ENOMEM;
	}
	char why[160];
	if (schema_json_value(f, value, &f->default_value, var, why, sizeof(why)) != 0) {
		free(var);
		return schema_fail(err, RILL_E_SCHEMA_INVALID, "%s: bad \"default\": %s", where,
				   why);
	}
	f->has_default = true;
	return 0;
}

static const char *const field_keys[] = {"name", "type", "max_length", "symbols", "default", "doc"};

static int check_keys(json_t *obj, const char *const *keys, size_t count, const char *where,
		      struct rill_schema_error *err)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		size_t i = 0;
		while (i < count && strcmp(key, keys[i]) != 0)
			i++;
		if (i == count)
			return schema_fail(err, RILL_E_SCHEMA_INVALID, "%s: unknown key \"%.64s\"",
					   where, key);
	}
	return 0;
}

static int parse_doc(json_t *doc, char **out, const char *where, struct rill_schema_error *err)
{
	if (doc == NULL)
		return 0;
	/* A doc is kept as a C string: a \u0000 would cut it short, unseen. */
	if (!json_is_string(doc) || json_string_length(doc) > RILL_SCHEMA_DOC_BYTES_MAX ||
	    strlen(json_string_value(doc)) != json_string_length(doc))
		return schema_fail(err, RILL_E_SCHEMA_INVALID,
				   "%s: \"doc\" must be a string of at most %u bytes, without "
				   "\\u0000",
				   where, RILL_SCHEMA_DOC_BYTES_MAX);
	*out = strdup(json_string_value(doc));
	return *out == NULL ? -ENOMEM : 0;
}

static int parse_field(struct rill_schema *s, uint32_t index, json_t *jf,
		       struct rill_schema_error *err)
{
	struct rill_schema_field_info *f = &s->fields[index];
	char where[200];
	snprintf(where, sizeof(where), "field %u", index);
	if (!json_is_object(jf))
		return schema_fail(err, RILL_E_SCHEMA_INVALID, "%s: must be an object", where);
	const char *why;
	const char *name = json_name(json_object_get(jf, "name"), false, &why);
	if (name == NULL)
		return schema_fail(err, RILL_E_SCHEMA_INVALID, "%s: \"name\" %s", where, why);
	snprintf(where, sizeof(where), "field %u ('%s')", index, name);
	for (uint32_t i = 0; i < index; i++)
		if (strcmp(s->fields[i].name, name) == 0)
			return schema_fail(err, RILL_E_SCHEMA_INVALID,
					   "%s: the name is already used by field %u", where, i);
	f->name = strdup(name);
	if (f->name == NULL)
		return -ENOMEM;
	int rc = check_keys(jf, field_keys, RILL_ARRAY_COUNT(field_keys), where, err);
	if (rc != 0)
		return rc;
	json_t *type = json_object_get(jf, "type");
	/* By length too: "i64\u0000x" is not i64. */
	if (!json_is_string(type) || strlen(json_string_value(type)) != json_string_length(type) ||
	    parse_type(json_string_value(type), &f->type) != 0)
		return schema_fail(err, RILL_E_SCHEMA_INVALID,
				   "%s: \"type\" must be one of i64, u64, f64, bool, timestamp, "
				   "string, bytes, enum",
				   where);
	json_t *max_length = json_object_get(jf, "max_length");
	if (schema_type_is_var(f->type)) {
		if (!json_is_integer(max_length) || json_integer_value(max_length) < 1 ||
		    json_integer_value(max_length) > RILL_PAYLOAD_BYTES_MAX)
			return schema_fail(err, RILL_E_SCHEMA_INVALID,
					   "%s: %s needs \"max_length\" from 1 to %u", where,
					   schema_field_type_name(f->type), RILL_PAYLOAD_BYTES_MAX);
		f->max_length = (uint32_t)json_integer_value(max_length);
	} else if (max_length != NULL) {
		return schema_fail(err, RILL_E_SCHEMA_INVALID,
				   "%s: \"max_length\" applies to string and bytes only", where);
	}
	json_t *symbols = json_object_get(jf, "symbols");
	if (f->type == RILL_FIELD_ENUM) {
		rc = parse_symbols(f, symbols, where, err);
		if (rc != 0)
			return rc;
	} else if (symbols != NULL) {
		return schema_fail(err, RILL_E_SCHEMA_INVALID,
				   "%s: \"symbols\" applies to enum only", where);
	}
	json_t *def = json_object_get(jf, "default");
	if (def != NULL) {
		rc = parse_default(f, def, where, err);
		if (rc != 0)
			return rc;
	}
	return parse_doc(json_object_get(jf, "doc"), (char **)&f->doc, where, err);
}

/* The validator's padding mask and field lists, and the builder's every-field mask. */
static int lay_out_checks(struct rill_schema *s)
{
	s->pad_mask = malloc(s->block_bytes);
	s->checked = calloc(s->field_count + 1, sizeof(*s->checked));
	s->var_fields = calloc(s->field_count + 1, sizeof(*s->var_fields));
	if (s->pad_mask == NULL || s->checked == NULL || s->var_fields == NULL)
		return -ENOMEM;
	uint8_t *mask = (uint8_t *)s->pad_mask;
	memset(mask, 0, s->block_bytes);
	memset(mask + 4, 0xff, s->block_bytes - 4); /* all but block_bytes, then unmask */
	for (uint32_t i = 0; i < s->field_count; i++) {
		const struct rill_schema_field_info *f = &s->fields[i];
		memset(mask + f->offset, 0, schema_field_size(f->type));
		s->all_set[i / 64] |= 1ull << (i % 64);
		if (f->type != RILL_FIELD_I64 && f->type != RILL_FIELD_U64 &&
		    f->type != RILL_FIELD_TIMESTAMP)
			s->checked[s->checked_count++] = i;
		if (schema_type_is_var(f->type))
			s->var_fields[s->var_count++] = i;
	}
	return 0;
}

/* Offsets, block length and slots. */
static int lay_out_offsets(struct rill_schema *s, struct rill_schema_error *err)
{
	uint64_t pos = SCHEMA_HEADER_BYTES;
	for (uint32_t i = 0; i < s->field_count; i++) {
		struct rill_schema_field_info *f = &s->fields[i];
		pos = rill_align_up(pos, field_align(f->type));
		f->offset = (uint32_t)pos;
		pos += schema_field_size(f->type);
	}
	s->block_bytes = (uint32_t)rill_align_up(pos, 8);
	uint64_t slot = s->block_bytes;
	s->slot = calloc(s->field_count + 1, sizeof(*s->slot));
	if (s->slot == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->field_count; i++) {
		if (schema_type_is_var(s->fields[i].type)) {
			s->slot[i] = (uint32_t)slot;
			slot += s->fields[i].max_length;
			if (slot > RILL_PAYLOAD_BYTES_MAX)
				return schema_fail(err, RILL_E_SCHEMA_INVALID,
						   "field %u ('%s'): the payload could reach %llu "
						   "bytes, over the %u-byte payload limit",
						   i, s->fields[i].name, (unsigned long long)slot,
						   RILL_PAYLOAD_BYTES_MAX);
		}
	}
	s->payload_bytes_max = (uint32_t)slot;
	return lay_out_checks(s);
}

/* The default block: the fixed block as every builder starts it. */
static int lay_out_template(struct rill_schema *s)
{
	s->block_template = calloc(1, s->block_bytes);
	if (s->block_template == NULL)
		return -ENOMEM;
	uint8_t *t = s->block_template;
	memcpy(t, &s->block_bytes, 4);
	for (uint32_t i = 0; i < s->field_count; i++) {
		const struct rill_schema_field_info *f = &s->fields[i];
		if (f->has_default)
			s->default_set[i / 64] |= 1ull << (i % 64);
		if (schema_type_is_var(f->type)) {
			uint32_t pair[2] = {s->slot[i],
					    f->has_default ? f->default_value.var.bytes : 0};
			memcpy(t + f->offset, pair, sizeof(pair));
		} else if (f->has_default) {
			const union rill_field_value *v = &f->default_value;
			if (f->type == RILL_FIELD_BOOL)
				t[f->offset] = v->boolean;
			else if (f->type == RILL_FIELD_ENUM)
				memcpy(t + f->offset, &v->symbol, 2);
			else
				memcpy(t + f->offset, &v->u64, 8);
		}
	}
	return 0;
}

static int lay_out(struct rill_schema *s, struct rill_schema_error *err)
{
	int rc = lay_out_offsets(s, err);
	return rc != 0 ? rc : lay_out_template(s);
}

static json_t *field_to_json(const struct rill_schema_field_info *f)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	int rc = json_object_set_new(o, "name", json_string(f->name));
	rc |= json_object_set_new(o, "type", json_string(schema_field_type_name(f->type)));
	if (schema_type_is_var(f->type))
		rc |= json_object_set_new(o, "max_length", json_integer(f->max_length));
	if (f->type == RILL_FIELD_ENUM) {
		json_t *a = json_array();
		for (uint32_t k = 0; a != NULL && k < f->symbol_count; k++)
			rc |= json_array_append_new(a, json_string(f->symbols[k]));
		rc |= json_object_set_new(o, "symbols", a);
	}
	if (f->has_default)
		rc |= json_object_set_new(o, "default", schema_value_json(f, &f->default_value));
	if (f->doc != NULL)
		rc |= json_object_set_new(o, "doc", json_string(f->doc));
	if (rc != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static char *canonical_json(const struct rill_schema *s)
{
	json_t *root = json_object();
	json_t *fields = json_array();
	int rc = root == NULL || fields == NULL;
	rc |= json_object_set_new(root, "type", json_string(s->type_name));
	rc |= json_object_set_new(root, "version", json_integer(s->version));
	if (s->doc != NULL)
		rc |= json_object_set_new(root, "doc", json_string(s->doc));
	for (uint32_t i = 0; i < s->field_count; i++)
		rc |= json_array_append_new(fields, field_to_json(&s->fields[i]));
	rc |= json_object_set_new(root, "fields", fields);
	char *text = rc == 0 ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(root);
	return text;
}

static const char *const top_keys[] = {"type", "version", "fields", "doc"};

static int parse_top(struct rill_schema *s, json_t *root, struct rill_schema_error *err)
{
	if (!json_is_object(root))
		return schema_fail(err, RILL_E_SCHEMA_INVALID, "a schema must be a JSON object");
	int rc = check_keys(root, top_keys, RILL_ARRAY_COUNT(top_keys), "schema", err);
	if (rc != 0)
		return rc;
	const char *why;
	const char *name = json_name(json_object_get(root, "type"), true, &why);
	if (name == NULL)
		return schema_fail(err, RILL_E_SCHEMA_INVALID, "schema: \"type\" %s", why);
	s->type_name = strdup(name);
	if (s->type_name == NULL)
		return -ENOMEM;
	json_t *version = json_object_get(root, "version");
	if (!json_is_integer(version) || json_integer_value(version) < 1 ||
	    json_integer_value(version) > 0xffff)
		return schema_fail(err, RILL_E_SCHEMA_INVALID,
				   "schema %s: \"version\" must be an integer from 1 to 65535",
				   name);
	s->version = (uint16_t)json_integer_value(version);
	rc = parse_doc(json_object_get(root, "doc"), &s->doc, "schema", err);
	if (rc != 0)
		return rc;
	json_t *fields = json_object_get(root, "fields");
	if (!json_is_array(fields) || json_array_size(fields) > RILL_SCHEMA_FIELDS_MAX)
		return schema_fail(err, RILL_E_SCHEMA_INVALID,
				   "schema %s: \"fields\" must be an array of at most %u fields",
				   name, RILL_SCHEMA_FIELDS_MAX);
	s->fields = calloc(json_array_size(fields) + 1, sizeof(*s->fields));
	if (s->fields == NULL)
		return -ENOMEM;
	size_t i;
	json_t *jf;
	json_array_foreach(fields, i, jf)
	{
		s->field_count = (uint32_t)i + 1; /* so that free sees what parse_field made */
		rc = parse_field(s, (uint32_t)i, jf, err);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int schema_from_json(struct rill_schema **out, json_t *root, struct rill_schema_error *err)
{
	struct rill_schema *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	int rc = parse_top(s, root, err);
	if (rc == 0)
		rc = lay_out(s, err);
	if (rc == 0) {
		s->json = canonical_json(s);
		if (s->json == NULL)
			rc = -ENOMEM;
		/* The registry stores the canonical text and parses it again at open. */
		else if (strlen(s->json) > RILL_SCHEMA_JSON_BYTES_MAX)
			rc = schema_fail(err, RILL_E_SCHEMA_INVALID,
					 "schema %s: its canonical form takes %zu bytes, over the "
					 "%u a definition may have",
					 s->type_name, strlen(s->json), RILL_SCHEMA_JSON_BYTES_MAX);
	}
	if (rc != 0) {
		rill_schema_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

int rill_schema_parse(struct rill_schema **out, const char *json, size_t json_bytes,
		      struct rill_schema_error *err)
{
	if (json == NULL || json_bytes > RILL_SCHEMA_JSON_BYTES_MAX)
		return schema_fail(err, RILL_E_SCHEMA_INVALID,
				   "a schema definition is at most %u bytes of JSON",
				   RILL_SCHEMA_JSON_BYTES_MAX);
	json_error_t jerr;
	/* A default is a value in the JSON encoding, which takes \u0000 in a string (as
	 * schema_json.c does); names and docs are checked by their whole length, so that a
	 * NUL in one is refused rather than cut short. */
	json_t *root = json_loadb(json, json_bytes, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (root == NULL)
		return schema_fail(err, RILL_E_SCHEMA_INVALID, "line %d, column %d: %s", jerr.line,
				   jerr.column, jerr.text);
	int rc = schema_from_json(out, root, err);
	json_decref(root);
	return rc;
}

const char *rill_schema_type_name(const struct rill_schema *s)
{
	return s->type_name;
}

const char *rill_schema_definition(const struct rill_schema *schema)
{
	RILL_ASSERT(schema != NULL);
	return schema->json;
}

uint16_t rill_schema_version(const struct rill_schema *s)
{
	return s->version;
}

uint32_t rill_schema_type_id(const struct rill_schema *s)
{
	return s->type_id;
}

uint32_t rill_schema_field_count(const struct rill_schema *s)
{
	return s->field_count;
}

const struct rill_schema_field_info *rill_schema_field(const struct rill_schema *s, uint32_t index)
{
	return index < s->field_count ? &s->fields[index] : NULL;
}

int rill_schema_field_index(const struct rill_schema *s, const char *name)
{
	for (uint32_t i = 0; i < s->field_count; i++)
		if (strcmp(s->fields[i].name, name) == 0)
			return (int)i;
	return -ENOENT;
}

int rill_schema_field_ref(const struct rill_schema *s, const char *name, struct rill_field_ref *ref)
{
	int i = rill_schema_field_index(s, name);
	if (i < 0)
		return i;
	ref->offset = s->fields[i].offset;
	ref->type = s->fields[i].type;
	return 0;
}

uint32_t rill_schema_block_bytes(const struct rill_schema *s)
{
	return s->block_bytes;
}

uint32_t rill_schema_payload_bytes_max(const struct rill_schema *s)
{
	return s->payload_bytes_max;
}

char *rill_schema_to_json(const struct rill_schema *s)
{
	return strdup(s->json);
}
