/*
 * Unit tests of event schemas (include/rill/schema.h): the payload layout and the inline
 * field loads, every class of malformed definition, the compatibility rules in both
 * directions and under each registry mode (printed as a table), registry versioning,
 * upcasting chains through readers, JSON encoding and decoding, the payload validator
 * (against a reference validator written here, under seeded random mutations) and the
 * payload builder. JSON in this file is written with single quotes and converted before
 * use, to stay readable. Payloads handed to the validator are heap copies of their exact
 * size, so AddressSanitizer catches a read past the end.
 */
#include "tests/common/test_util.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "rill/schema.h"
#include "tests/common/schema_check.h"

/* ---- Helpers -------------------------------------------------------------------------- */

/* @s with every ' turned into ", in a new string to free. */
static char *dq(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(n + 1);
	assert_non_null(out);
	for (size_t i = 0; i <= n; i++)
		out[i] = s[i] == '\'' ? '"' : s[i];
	return out;
}

/* Whether @message contains one of the '|'-separated alternatives of @needles. */
static bool mentions(const char *message, const char *needles)
{
	char word[256];
	const char *p = needles;
	while (*p != '\0') {
		const char *bar = strchr(p, '|');
		size_t n = bar != NULL ? (size_t)(bar - p) : strlen(p);
		assert_true(n < sizeof(word));
		memcpy(word, p, n);
		word[n] = '\0';
		if (n > 0 && strstr(message, word) != NULL)
			return true;
		p += n;
		if (*p == '|')
			p++;
	}
	return false;
}

static void assert_mentions(const struct rill_schema_error *err, const char *needles,
			    const char *what)
{
	if (!mentions(err->message, needles))
		fail_msg("%s: message \"%s\" names none of \"%s\"", what, err->message, needles);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Parse the single-quoted definition @quoted; it must be accepted. */
static struct rill_schema *parse_q(const char *quoted)
{
	char *json = dq(quoted);
	struct rill_schema *s = NULL;
	struct rill_schema_error err;
	err_reset(&err);
	int rc = rill_schema_parse(&s, json, strlen(json), &err);
	if (rc != 0)
		fail_msg("parse refused (%d) %s: %s", rc, err.message, json);
	assert_non_null(s);
	assert_string_equal(err.message, ERR_SENTINEL); /* untouched on success */
	free(json);
	return s;
}

static uint32_t idx(const struct rill_schema *s, const char *name)
{
	int i = rill_schema_field_index(s, name);
	if (i < 0)
		fail_msg("no field %s", name);
	return (uint32_t)i;
}

static struct rill_field_ref ref_of(const struct rill_schema *s, const char *name)
{
	struct rill_field_ref ref;
	if (rill_schema_field_ref(s, name, &ref) != 0)
		fail_msg("no ref for field %s", name);
	return ref;
}

/* Whether the string or bytes field @name of @payload holds exactly @data. */
static bool var_is(const struct rill_schema *s, const void *payload, const char *name,
		   const void *data, uint32_t bytes)
{
	uint32_t got;
	const void *p = rill_field_var(payload, ref_of(s, name), &got);
	return got == bytes && memcmp(p, data, bytes) == 0;
}

static void assert_var(const struct rill_schema *s, const void *payload, const char *name,
		       const char *text)
{
	uint32_t got;
	const char *p = rill_field_var(payload, ref_of(s, name), &got);
	if (got != strlen(text) || memcmp(p, text, got) != 0)
		fail_msg("field %s: \"%.*s\", expected \"%s\"", name, (int)got, p, text);
}

static int reg_q(struct rill_schema_registry *reg, const char *quoted, int compat,
		 const struct rill_schema **out, struct rill_schema_error *err)
{
	char *json = dq(quoted);
	int rc = rill_schema_register(reg, json, strlen(json), compat, out, err);
	free(json);
	return rc;
}

static const struct rill_schema *reg_ok(struct rill_schema_registry *reg, const char *quoted,
					int compat)
{
	const struct rill_schema *out = NULL;
	struct rill_schema_error err;
	err_reset(&err);
	int rc = reg_q(reg, quoted, compat, &out, &err);
	if (rc != 0)
		fail_msg("register refused (%d) %s: %s", rc, err.message, quoted);
	assert_non_null(out);
	return out;
}

static int check_q(struct rill_schema_registry *reg, const char *quoted, int compat,
		   struct rill_schema_error *err)
{
	char *json = dq(quoted);
	int rc = rill_schema_check(reg, json, strlen(json), compat, err);
	free(json);
	return rc;
}

static struct rill_schema_registry *mem_registry(void)
{
	struct rill_schema_registry *reg = NULL;
	struct rill_schema_error err;
	err_reset(&err);
	assert_int_equal(rill_schema_registry_open(&reg, NULL, NULL, &err), 0);
	assert_non_null(reg);
	return reg;
}

/* A heap copy of @bytes bytes of @p, exactly that size (one byte when empty). */
static uint8_t *exact_copy(const void *p, uint32_t bytes)
{
	uint8_t *c = malloc(bytes > 0 ? bytes : 1);
	assert_non_null(c);
	if (bytes > 0)
		memcpy(c, p, bytes);
	return c;
}

/* ---- 1. Layout ------------------------------------------------------------------------ */

struct layout_field {
	const char *name;
	enum rill_field_type type;
	uint32_t offset;
};

struct layout_case {
	const char *json;
	uint32_t block_bytes;
	uint32_t payload_bytes_max;
	struct layout_field fields[12]; /* ends at a NULL name */
};

#define L1_JSON                                                                                    \
	"{'type':'L1','version':1,'fields':["                                                      \
	"{'name':'flag','type':'bool'},{'name':'amount','type':'i64'},"                            \
	"{'name':'side','type':'enum','symbols':['BUY','SELL']},"                                  \
	"{'name':'sku','type':'string','max_length':16},{'name':'ok','type':'bool'},"              \
	"{'name':'price','type':'f64'},{'name':'blob','type':'bytes','max_length':5},"             \
	"{'name':'n','type':'u64'},{'name':'ts','type':'timestamp'},"                              \
	"{'name':'e2','type':'enum','symbols':['A']}"
#define L1_V2_JSON                                                                                 \
	"{'type':'L1','version':2,'fields':["                                                      \
	"{'name':'flag','type':'bool'},{'name':'amount','type':'i64'},"                            \
	"{'name':'side','type':'enum','symbols':['BUY','SELL']},"                                  \
	"{'name':'sku','type':'string','max_length':16},{'name':'ok','type':'bool'},"              \
	"{'name':'price','type':'f64'},{'name':'blob','type':'bytes','max_length':5},"             \
	"{'name':'n','type':'u64'},{'name':'ts','type':'timestamp'},"                              \
	"{'name':'e2','type':'enum','symbols':['A']},"                                             \
	"{'name':'extra','type':'i64','default':7},"                                               \
	"{'name':'note','type':'string','max_length':8,'default':'hi'}]}"

static const struct layout_case layout_cases[] = {
	{L1_JSON "]}",
	 80,
	 80 + 16 + 5,
	 {{"flag", RILL_FIELD_BOOL, 8},
	  {"amount", RILL_FIELD_I64, 16},
	  {"side", RILL_FIELD_ENUM, 24},
	  {"sku", RILL_FIELD_STRING, 28},
	  {"ok", RILL_FIELD_BOOL, 36},
	  {"price", RILL_FIELD_F64, 40},
	  {"blob", RILL_FIELD_BYTES, 48},
	  {"n", RILL_FIELD_U64, 56},
	  {"ts", RILL_FIELD_TIMESTAMP, 64},
	  {"e2", RILL_FIELD_ENUM, 72}}},
	{L1_V2_JSON,
	 96,
	 96 + 16 + 5 + 8,
	 {{"flag", RILL_FIELD_BOOL, 8},
	  {"amount", RILL_FIELD_I64, 16},
	  {"side", RILL_FIELD_ENUM, 24},
	  {"sku", RILL_FIELD_STRING, 28},
	  {"ok", RILL_FIELD_BOOL, 36},
	  {"price", RILL_FIELD_F64, 40},
	  {"blob", RILL_FIELD_BYTES, 48},
	  {"n", RILL_FIELD_U64, 56},
	  {"ts", RILL_FIELD_TIMESTAMP, 64},
	  {"e2", RILL_FIELD_ENUM, 72},
	  {"extra", RILL_FIELD_I64, 80},
	  {"note", RILL_FIELD_STRING, 88}}},
	{"{'type':'L2','version':1,'fields':[]}", 8, 8, {{NULL, 0, 0}}},
	{"{'type':'L3','version':1,'fields':[{'name':'a','type':'bool'},"
	 "{'name':'b','type':'enum','symbols':['X','Y','Z']},{'name':'c','type':'bool'},"
	 "{'name':'d','type':'string','max_length':3}]}",
	 24,
	 27,
	 {{"a", RILL_FIELD_BOOL, 8},
	  {"b", RILL_FIELD_ENUM, 10},
	  {"c", RILL_FIELD_BOOL, 12},
	  {"d", RILL_FIELD_STRING, 16}}},
	{"{'type':'L4','version':1,'fields':[{'name':'a','type':'enum','symbols':['X']},"
	 "{'name':'s','type':'string','max_length':1},{'name':'b','type':'bool'}]}",
	 24,
	 25,
	 {{"a", RILL_FIELD_ENUM, 8}, {"s", RILL_FIELD_STRING, 12}, {"b", RILL_FIELD_BOOL, 20}}},
	{"{'type':'L5','version':1,'fields':[{'name':'x','type':'bool'},"
	 "{'name':'y','type':'bytes','max_length':7},{'name':'z','type':'i64'}]}",
	 32,
	 39,
	 {{"x", RILL_FIELD_BOOL, 8}, {"y", RILL_FIELD_BYTES, 12}, {"z", RILL_FIELD_I64, 24}}},
	{"{'type':'L6','version':1,'fields':[{'name':'p','type':'bool'},"
	 "{'name':'q','type':'bool'},{'name':'r','type':'bool'}]}",
	 16,
	 16,
	 {{"p", RILL_FIELD_BOOL, 8}, {"q", RILL_FIELD_BOOL, 9}, {"r", RILL_FIELD_BOOL, 10}}},
	{"{'type':'L7','version':1,'fields':[{'name':'t','type':'timestamp'},"
	 "{'name':'u','type':'u64'},{'name':'e','type':'enum','symbols':['X']}]}",
	 32,
	 32,
	 {{"t", RILL_FIELD_TIMESTAMP, 8}, {"u", RILL_FIELD_U64, 16}, {"e", RILL_FIELD_ENUM, 24}}},
	{"{'type':'L8','version':1,'fields':[{'name':'e','type':'enum','symbols':['X']},"
	 "{'name':'b','type':'bool'},{'name':'e2','type':'enum','symbols':['X']},"
	 "{'name':'f','type':'f64'}]}",
	 24,
	 24,
	 {{"e", RILL_FIELD_ENUM, 8},
	  {"b", RILL_FIELD_BOOL, 10},
	  {"e2", RILL_FIELD_ENUM, 12},
	  {"f", RILL_FIELD_F64, 16}}},
};

static void test_layout_offsets(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(layout_cases) / sizeof(layout_cases[0]); c++) {
		const struct layout_case *lc = &layout_cases[c];
		struct rill_schema *s = parse_q(lc->json);
		uint32_t count = 0;
		while (count < 12 && lc->fields[count].name != NULL)
			count++;
		assert_int_equal(rill_schema_field_count(s), count);
		for (uint32_t i = 0; i < count; i++) {
			const struct layout_field *want = &lc->fields[i];
			const struct rill_schema_field_info *f = rill_schema_field(s, i);
			assert_non_null(f);
			assert_string_equal(f->name, want->name);
			if (f->type != want->type || f->offset != want->offset)
				fail_msg("%s field %s: type %d offset %u, expected type %d offset "
					 "%u",
					 rill_schema_type_name(s), want->name, (int)f->type,
					 f->offset, (int)want->type, want->offset);
			assert_int_equal(rill_schema_field_index(s, want->name), (int)i);
			struct rill_field_ref ref = ref_of(s, want->name);
			assert_int_equal(ref.offset, want->offset);
			assert_int_equal(ref.type, want->type);
		}
		assert_null(rill_schema_field(s, count));
		if (rill_schema_block_bytes(s) != lc->block_bytes ||
		    rill_schema_payload_bytes_max(s) != lc->payload_bytes_max)
			fail_msg("%s: block %u max %u, expected block %u max %u",
				 rill_schema_type_name(s), rill_schema_block_bytes(s),
				 rill_schema_payload_bytes_max(s), lc->block_bytes,
				 lc->payload_bytes_max);
		assert_int_equal(rill_schema_block_bytes(s) % 8, 0);
		assert_int_equal(rill_schema_field_index(s, "nope"), -ENOENT);
		struct rill_field_ref ref;
		assert_int_equal(rill_schema_field_ref(s, "nope", &ref), -ENOENT);
		assert_int_equal(rill_schema_type_id(s), 0);
		rill_schema_free(s);
	}
}

static void test_layout_field_info(void **state)
{
	(void)state;
	struct rill_schema *s = parse_q(L1_JSON "]}");
	assert_string_equal(rill_schema_type_name(s), "L1");
	assert_int_equal(rill_schema_version(s), 1);
	const struct rill_schema_field_info *side = rill_schema_field(s, idx(s, "side"));
	assert_int_equal(side->symbol_count, 2);
	assert_string_equal(side->symbols[0], "BUY");
	assert_string_equal(side->symbols[1], "SELL");
	assert_int_equal(side->max_length, 0);
	assert_false(side->has_default);
	assert_null(side->doc);
	assert_int_equal(rill_schema_field(s, idx(s, "sku"))->max_length, 16);
	assert_int_equal(rill_schema_field(s, idx(s, "blob"))->max_length, 5);
	assert_int_equal(rill_schema_field(s, idx(s, "amount"))->max_length, 0);
	rill_schema_free(s);
}

/* Build an L1 payload, read it back with refs and check the bytes where FORMAT puts them. */
static void test_layout_loads_and_tail(void **state)
{
	(void)state;
	struct rill_schema *s = parse_q(L1_JSON "]}");
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *buf = malloc(max);
	memset(buf, 0xa5, max); /* garbage: the builder must write every byte it keeps */
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, s, buf, max), 0);
	const uint8_t blob[5] = {0x00, 0x01, 0x02, 0xff, 0xfe};
	assert_int_equal(rill_payload_set_bool(&b, idx(s, "flag"), true), 0);
	assert_int_equal(rill_payload_set_i64(&b, idx(s, "amount"), -12345), 0);
	assert_int_equal(rill_payload_set_enum(&b, idx(s, "side"), 1), 0);
	assert_int_equal(rill_payload_set_var(&b, idx(s, "sku"), "ABC", 3), 0);
	assert_int_equal(rill_payload_set_bool(&b, idx(s, "ok"), false), 0);
	assert_int_equal(rill_payload_set_f64(&b, idx(s, "price"), 2.5), 0);
	assert_int_equal(rill_payload_set_var(&b, idx(s, "blob"), blob, 5), 0);
	assert_int_equal(rill_payload_set_u64(&b, idx(s, "n"), UINT64_MAX), 0);
	assert_int_equal(rill_payload_set_i64(&b, idx(s, "ts"), 1700000000123456789), 0);
	assert_int_equal(rill_payload_set_enum(&b, idx(s, "e2"), 0), 0);
	uint32_t bytes = 0;
	struct rill_schema_error err;
	err_reset(&err);
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, &err), 0);
	assert_string_equal(err.message, ERR_SENTINEL);
	assert_int_equal(bytes, 80 + 3 + 5);
	assert_int_equal(rill_schema_validate(s, buf, bytes, &err), 0);

	assert_true(rill_field_bool(buf, ref_of(s, "flag")));
	assert_int_equal(rill_field_i64(buf, ref_of(s, "amount")), -12345);
	assert_int_equal(rill_field_enum(buf, ref_of(s, "side")), 1);
	assert_false(rill_field_bool(buf, ref_of(s, "ok")));
	assert_true(rill_field_f64(buf, ref_of(s, "price")) == 2.5);
	assert_true(rill_field_u64(buf, ref_of(s, "n")) == UINT64_MAX);
	assert_int_equal(rill_field_i64(buf, ref_of(s, "ts")), 1700000000123456789);
	assert_int_equal(rill_field_enum(buf, ref_of(s, "e2")), 0);
	assert_var(s, buf, "sku", "ABC");
	assert_true(var_is(s, buf, "blob", blob, 5));

	/* The bytes themselves: header, the pairs, the tail back to back in field order. */
	assert_int_equal(get32(buf), 80);
	assert_int_equal(get32(buf + 4), 0);
	assert_int_equal(buf[8], 1);
	for (int i = 9; i < 16; i++)
		assert_int_equal(buf[i], 0); /* padding after the bool */
	assert_int_equal(get16(buf + 24), 1);
	assert_int_equal(buf[26], 0);
	assert_int_equal(buf[27], 0);
	assert_int_equal(get32(buf + 28), 80);
	assert_int_equal(get32(buf + 32), 3);
	assert_int_equal(buf[36], 0);
	assert_int_equal(get32(buf + 48), 83);
	assert_int_equal(get32(buf + 52), 5);
	assert_int_equal(get16(buf + 72), 0);
	for (int i = 74; i < 80; i++)
		assert_int_equal(buf[i], 0);
	assert_memory_equal(buf + 80, "ABC", 3);
	assert_memory_equal(buf + 83, blob, 5);
	free(buf);
	rill_schema_free(s);
}

/* A version that appends fields keeps the older ones in place; its tail follows its block. */
static void test_layout_append_keeps_offsets(void **state)
{
	(void)state;
	struct rill_schema *v1 = parse_q(L1_JSON "]}");
	struct rill_schema *v2 = parse_q(L1_V2_JSON);
	for (uint32_t i = 0; i < rill_schema_field_count(v1); i++) {
		const struct rill_schema_field_info *f1 = rill_schema_field(v1, i);
		const struct rill_schema_field_info *f2 = rill_schema_field(v2, i);
		assert_string_equal(f1->name, f2->name);
		assert_int_equal(f1->offset, f2->offset);
	}
	uint32_t max = rill_schema_payload_bytes_max(v2);
	uint8_t *buf = malloc(max);
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, v2, buf, max), 0);
	assert_int_equal(rill_payload_set_bool(&b, idx(v2, "flag"), false), 0);
	assert_int_equal(rill_payload_set_i64(&b, idx(v2, "amount"), 1), 0);
	assert_int_equal(rill_payload_set_enum(&b, idx(v2, "side"), 0), 0);
	assert_int_equal(rill_payload_set_var(&b, idx(v2, "sku"), "XYZ", 3), 0);
	assert_int_equal(rill_payload_set_bool(&b, idx(v2, "ok"), true), 0);
	assert_int_equal(rill_payload_set_f64(&b, idx(v2, "price"), -0.5), 0);
	assert_int_equal(rill_payload_set_var(&b, idx(v2, "blob"), "\x01\x02\x03\x04\x05", 5), 0);
	assert_int_equal(rill_payload_set_u64(&b, idx(v2, "n"), 3), 0);
	assert_int_equal(rill_payload_set_i64(&b, idx(v2, "ts"), -1), 0);
	assert_int_equal(rill_payload_set_enum(&b, idx(v2, "e2"), 0), 0);
	uint32_t bytes = 0;
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
	assert_int_equal(bytes, 96 + 3 + 5 + 2);
	assert_int_equal(get32(buf), 96);
	assert_int_equal(rill_field_i64(buf, ref_of(v2, "extra")), 7); /* the default */
	assert_var(v2, buf, "note", "hi");
	assert_int_equal(get32(buf + 28), 96);  /* sku */
	assert_int_equal(get32(buf + 48), 99);  /* blob */
	assert_int_equal(get32(buf + 88), 104); /* note */
	assert_int_equal(get32(buf + 92), 2);
	/* v1's refs read the v2 payload as it stands. */
	assert_var(v1, buf, "sku", "XYZ");
	assert_true(rill_field_bool(buf, ref_of(v1, "ok")));
	assert_true(rill_field_f64(buf, ref_of(v1, "price")) == -0.5);
	assert_int_equal(rill_field_i64(buf, ref_of(v1, "ts")), -1);
	assert_int_equal(rill_schema_validate(v2, buf, bytes, NULL), 0);
	assert_int_equal(rill_schema_validate(v1, buf, bytes, NULL), RILL_E_PAYLOAD_INVALID);
	free(buf);
	rill_schema_free(v1);
	rill_schema_free(v2);
}

/* ---- 2. Definitions ------------------------------------------------------------------- */

struct bad_case {
	const char *name;
	const char *json;   /* single-quoted */
	const char *needle; /* '|'-separated; the message must contain one */
};

#define F1(fields) "{'type':'T','version':1,'fields':[" fields "]}"

/* A JSON syntax error must say where: a line or column number. */
#define POSITION "line|column|:"

static const struct bad_case bad_cases[] = {
	{"truncated text", "{'type': 'T', 'version': 1", POSITION},
	{"empty text", "", POSITION},
	{"trailing garbage", F1("") " x", POSITION},
	{"array at top", "[]", "object|'{'"},
	{"string at top", "'T'", "object|'{'"},
	{"missing type", "{'version':1,'fields':[]}", "type"},
	{"missing version", "{'type':'T','fields':[]}", "version"},
	{"missing fields", "{'type':'T','version':1}", "fields"},
	{"version 0", "{'type':'T','version':0,'fields':[]}", "version"},
	{"version 65536", "{'type':'T','version':65536,'fields':[]}", "version"},
	{"version -3", "{'type':'T','version':-3,'fields':[]}", "version"},
	{"version 1.5", "{'type':'T','version':1.5,'fields':[]}", "version"},
	{"version string", "{'type':'T','version':'1','fields':[]}", "version"},
	{"version true", "{'type':'T','version':true,'fields':[]}", "version"},
	{"type empty", "{'type':'','version':1,'fields':[]}", "type"},
	{"type digit first", "{'type':'9lives','version':1,'fields':[]}", "type|9lives"},
	{"type dash", "{'type':'a-b','version':1,'fields':[]}", "type|a-b"},
	{"type space", "{'type':'a b','version':1,'fields':[]}", "type|a b"},
	{"type number", "{'type':7,'version':1,'fields':[]}", "type"},
	{"fields object", "{'type':'T','version':1,'fields':{}}", "fields"},
	{"field not object", F1("5"), "field"},
	{"duplicate field", F1("{'name':'qty','type':'i64'},{'name':'qty','type':'u64'}"), "qty"},
	{"field name digit first", F1("{'name':'2fast','type':'i64'}"), "2fast|name"},
	{"field name dash", F1("{'name':'has-dash','type':'i64'}"), "has-dash|name"},
	{"field name dot", F1("{'name':'a.b','type':'i64'}"), "a.b|name"},
	{"field name empty", F1("{'name':'','type':'i64'}"), "name"},
	{"field name missing", F1("{'type':'i64'}"), "name"},
	{"field name number", F1("{'name':3,'type':'i64'}"), "name"},
	{"unknown field type", F1("{'name':'cnt','type':'int32'}"), "cnt|int32"},
	{"field type missing", F1("{'name':'cnt2'}"), "cnt2"},
	{"field type number", F1("{'name':'tnum','type':5}"), "tnum"},
	{"string without max_length", F1("{'name':'sku','type':'string'}"), "sku"},
	{"bytes without max_length", F1("{'name':'raw','type':'bytes'}"), "raw"},
	{"max_length 0", F1("{'name':'sku0','type':'string','max_length':0}"), "sku0"},
	{"max_length -1", F1("{'name':'sku1','type':'string','max_length':-1}"), "sku1"},
	{"max_length string", F1("{'name':'sku2','type':'string','max_length':'16'}"), "sku2"},
	{"max_length 1.5", F1("{'name':'sku3','type':'bytes','max_length':1.5}"), "sku3"},
	{"enum without symbols", F1("{'name':'side','type':'enum'}"), "side"},
	{"enum empty symbols", F1("{'name':'side2','type':'enum','symbols':[]}"), "side2"},
	{"enum duplicate symbols", F1("{'name':'side3','type':'enum','symbols':['BUY','BUY']}"),
	 "side3|BUY"},
	{"enum symbols numbers", F1("{'name':'side4','type':'enum','symbols':[1,2]}"), "side4"},
	{"enum symbols string", F1("{'name':'side5','type':'enum','symbols':'BUY'}"), "side5"},
	{"enum empty symbol", F1("{'name':'side6','type':'enum','symbols':['A','']}"), "side6"},
	{"i64 default string", F1("{'name':'fee','type':'i64','default':'5'}"), "fee"},
	{"i64 default real", F1("{'name':'fee2','type':'i64','default':1.5}"), "fee2"},
	{"u64 default negative", F1("{'name':'cnt3','type':'u64','default':-1}"), "cnt3"},
	{"bool default integer", F1("{'name':'on','type':'bool','default':1}"), "on"},
	{"f64 default string", F1("{'name':'ratio','type':'f64','default':'NaN'}"), "ratio"},
	{"f64 default bool", F1("{'name':'ratio2','type':'f64','default':true}"), "ratio2"},
	{"timestamp default text", F1("{'name':'when','type':'timestamp','default':'2020-01-01'}"),
	 "when"},
	{"string default too long",
	 F1("{'name':'label','type':'string','max_length':4,'default':'hello'}"), "label"},
	{"string default number",
	 F1("{'name':'label2','type':'string','max_length':4,'default':5}"), "label2"},
	{"enum default unknown",
	 F1("{'name':'side7','type':'enum','symbols':['A','B'],'default':'C'}"), "side7"},
	{"enum default index", F1("{'name':'side8','type':'enum','symbols':['A','B'],'default':0}"),
	 "side8"},
	{"bytes default not hex",
	 F1("{'name':'blob','type':'bytes','max_length':4,'default':'zz'}"), "blob"},
	{"bytes default odd hex",
	 F1("{'name':'blob2','type':'bytes','max_length':4,'default':'abc'}"), "blob2"},
	{"bytes default too long",
	 F1("{'name':'blob3','type':'bytes','max_length':2,'default':'000102'}"), "blob3"},
	{"unknown field key", F1("{'name':'sku9','type':'string','max_length':8,'maxlength':8}"),
	 "maxlength"},
	{"max_length on i64", F1("{'name':'qty2','type':'i64','max_length':8}"), "qty2|max_length"},
	{"symbols on string", F1("{'name':'sku4','type':'string','max_length':8,'symbols':['A']}"),
	 "sku4|symbols"},
	{"unknown top-level key", "{'type':'T','version':1,'namespace':'x','fields':[]}",
	 "namespace"},
	{"doc number", "{'type':'T','version':1,'doc':5,'fields':[]}", "doc"},
	{"field doc number", F1("{'name':'fdoc','type':'i64','doc':5}"), "fdoc|doc"},
};

/* Definitions too big to write out: built here. */
enum big_bad {
	BIG_TYPE_NAME,
	BIG_FIELD_NAME,
	BIG_FIELDS,
	BIG_ONE_STRING,
	BIG_TWO_STRINGS,
	BIG_SYMBOLS,
	BIG_DOC,
	BIG_SYMBOL_NAME,
	BIG_COUNT,
};

/* Append to a growing string. */
struct sbuf {
	char *p;
	size_t n, cap;
};

static void sb_add(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_add(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int need = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(need >= 0);
	if (sb->n + (size_t)need + 1 > sb->cap) {
		sb->cap = (sb->n + (size_t)need + 1) * 2;
		sb->p = realloc(sb->p, sb->cap);
		assert_non_null(sb->p);
	}
	va_start(ap, fmt);
	vsnprintf(sb->p + sb->n, sb->cap - sb->n, fmt, ap);
	va_end(ap);
	sb->n += (size_t)need;
}

static void sb_repeat(struct sbuf *sb, char c, size_t count)
{
	for (size_t i = 0; i < count; i++)
		sb_add(sb, "%c", c);
}

/*
 * Definition @which at the limit (@over false: must be accepted) or one past it (refused);
 * @needle gets what the refusal must name. Single-quoted; free the result.
 */
static char *big_definition(enum big_bad which, bool over, const char **needle)
{
	struct sbuf sb = {0};
	size_t extra = over ? 1 : 0;
	switch (which) {
	case BIG_TYPE_NAME:
		sb_add(&sb, "{'type':'");
		sb_repeat(&sb, 't', RILL_SCHEMA_NAME_BYTES_MAX + extra);
		sb_add(&sb, "','version':1,'fields':[]}");
		*needle = "type";
		break;
	case BIG_FIELD_NAME:
		sb_add(&sb, "{'type':'T','version':1,'fields':[{'name':'");
		sb_repeat(&sb, 'n', RILL_SCHEMA_NAME_BYTES_MAX + extra);
		sb_add(&sb, "','type':'i64'}]}");
		*needle = "name|nnnnnnnn";
		break;
	case BIG_FIELDS:
		sb_add(&sb, "{'type':'T','version':1,'fields':[");
		for (size_t i = 0; i < RILL_SCHEMA_FIELDS_MAX + extra; i++)
			sb_add(&sb, "%s{'name':'f%zu','type':'i64'}", i > 0 ? "," : "", i);
		sb_add(&sb, "]}");
		*needle = "fields|256|257";
		break;
	case BIG_ONE_STRING:
		/* block 16 + max_length: exactly the payload limit, or one past. */
		sb_add(&sb,
		       "{'type':'T','version':1,'fields':[{'name':'huge','type':'string',"
		       "'max_length':%zu}]}",
		       (size_t)RILL_PAYLOAD_BYTES_MAX - 16 + extra);
		*needle = "huge|max_length|payload";
		break;
	case BIG_TWO_STRINGS:
		sb_add(&sb,
		       "{'type':'T','version':1,'fields':[{'name':'big1','type':'string',"
		       "'max_length':%zu},{'name':'big2','type':'bytes','max_length':%zu}]}",
		       (size_t)600000, (size_t)RILL_PAYLOAD_BYTES_MAX - 24 - 600000 + extra);
		*needle = "big1|big2|max_length|payload";
		break;
	case BIG_SYMBOLS:
		sb_add(&sb, "{'type':'T','version':1,'fields':[{'name':'many','type':'enum',"
			    "'symbols':[");
		for (size_t i = 0; i < RILL_SCHEMA_SYMBOLS_MAX + extra; i++)
			sb_add(&sb, "%s'S%zu'", i > 0 ? "," : "", i);
		sb_add(&sb, "]}]}");
		*needle = "many";
		break;
	case BIG_DOC:
		sb_add(&sb, "{'type':'T','version':1,'doc':'");
		sb_repeat(&sb, 'd', RILL_SCHEMA_DOC_BYTES_MAX + extra);
		sb_add(&sb, "','fields':[]}");
		*needle = "doc";
		break;
	case BIG_SYMBOL_NAME:
		sb_add(&sb, "{'type':'T','version':1,'fields':[{'name':'sym','type':'enum',"
			    "'symbols':['");
		sb_repeat(&sb, 's', RILL_SCHEMA_NAME_BYTES_MAX + extra);
		sb_add(&sb, "']}]}");
		*needle = "sym";
		break;
	default:
		fail();
	}
	return sb.p;
}

/* Parse @quoted, which must be refused naming @needle; a mismatch is noted in @log. */
static void expect_invalid(struct sbuf *log, const char *name, const char *quoted,
			   const char *needle)
{
	char *json = dq(quoted);
	struct rill_schema *s = NULL;
	struct rill_schema_error err;
	err_reset(&err);
	int rc = rill_schema_parse(&s, json, strlen(json), &err);
	if (rc != RILL_E_SCHEMA_INVALID) {
		sb_add(log, "  %s: parse returned %d (%s), expected RILL_E_SCHEMA_INVALID\n", name,
		       rc, rc == 0 ? "accepted" : err.message);
		if (rc == 0)
			rill_schema_free(s);
	} else if (strcmp(err.message, ERR_SENTINEL) == 0 || err.message[0] == '\0') {
		sb_add(log, "  %s: no message\n", name);
	} else if (!mentions(err.message, needle)) {
		sb_add(log, "  %s: message \"%s\" names none of \"%s\"\n", name, err.message,
		       needle);
	}
	free(json);
}

static void test_definitions_malformed(void **state)
{
	(void)state;
	struct sbuf log = {0};
	sb_add(&log, "%s", "");
	size_t count = sizeof(bad_cases) / sizeof(bad_cases[0]);
	for (size_t i = 0; i < count; i++)
		expect_invalid(&log, bad_cases[i].name, bad_cases[i].json, bad_cases[i].needle);
	for (int which = 0; which < BIG_COUNT; which++) {
		const char *needle;
		char *quoted = big_definition((enum big_bad)which, true, &needle);
		char name[32];
		snprintf(name, sizeof(name), "limit case %d over", which);
		expect_invalid(&log, name, quoted, needle);
		free(quoted);
		quoted = big_definition((enum big_bad)which, false, &needle);
		struct rill_schema *s = parse_q(quoted);
		rill_schema_free(s);
		free(quoted);
	}
	print_message("%zu malformed definitions\n", count + BIG_COUNT);
	if (log.n > 0)
		fail_msg("malformed definitions not refused as expected:\n%s", log.p);
	free(log.p);
}

/* A syntax error on line 3 must say so. */
static void test_definitions_json_position(void **state)
{
	(void)state;
	const char *text = "{\"type\": \"T\",\n \"version\": 1,\n \"fields\": [}\n";
	struct rill_schema *s = NULL;
	struct rill_schema_error err;
	err_reset(&err);
	assert_int_equal(rill_schema_parse(&s, text, strlen(text), &err), RILL_E_SCHEMA_INVALID);
	if (!mentions(err.message, "line|column|:") || strchr(err.message, '3') == NULL)
		fail_msg("syntax error message \"%s\" does not give line 3", err.message);
	/* json_bytes bounds the text: a valid prefix of a longer buffer parses. */
	const char *two = "{\"type\":\"T\",\"version\":1,\"fields\":[]}garbage";
	assert_int_equal(rill_schema_parse(&s, two, strlen(two) - 7, &err), 0);
	rill_schema_free(s);
}

#define EVERY_TYPE_JSON                                                                            \
	"{'type':'Every.Type_1','version':3,'doc':'all of them','fields':["                        \
	"{'name':'i','type':'i64','default':-7,'doc':'an integer'},"                               \
	"{'name':'u','type':'u64','default':42},"                                                  \
	"{'name':'f','type':'f64','default':2.5},"                                                 \
	"{'name':'fi','type':'f64','default':3},"                                                  \
	"{'name':'b','type':'bool','default':true},"                                               \
	"{'name':'t','type':'timestamp','default':1700000000000000000},"                           \
	"{'name':'s','type':'string','max_length':8,'default':'h\xc3\xa9llo'},"                    \
	"{'name':'y','type':'bytes','max_length':4,'default':'00ff'},"                             \
	"{'name':'e','type':'enum','symbols':['LOW','HIGH'],'default':'HIGH'},"                    \
	"{'name':'_plain','type':'i64'}]}"

static void test_definitions_valid(void **state)
{
	(void)state;
	struct rill_schema *s = parse_q(EVERY_TYPE_JSON);
	assert_string_equal(rill_schema_type_name(s), "Every.Type_1");
	assert_int_equal(rill_schema_version(s), 3);
	assert_int_equal(rill_schema_field_count(s), 10);
	const struct rill_schema_field_info *f = rill_schema_field(s, 0);
	assert_true(f->has_default);
	assert_int_equal(f->default_value.i64, -7);
	assert_non_null(f->doc);
	assert_string_equal(f->doc, "an integer");
	f = rill_schema_field(s, 1);
	assert_true(f->has_default && f->default_value.u64 == 42);
	f = rill_schema_field(s, 2);
	assert_true(f->has_default && f->default_value.f64 == 2.5);
	f = rill_schema_field(s, 3);
	assert_true(f->has_default && f->default_value.f64 == 3.0);
	f = rill_schema_field(s, 4);
	assert_true(f->has_default && f->default_value.boolean);
	f = rill_schema_field(s, 5);
	assert_true(f->has_default && f->default_value.i64 == 1700000000000000000);
	assert_int_equal(f->type, RILL_FIELD_TIMESTAMP);
	f = rill_schema_field(s, 6);
	assert_true(f->has_default);
	assert_int_equal(f->default_value.var.bytes, 6);
	assert_memory_equal(f->default_value.var.data, "h\xc3\xa9llo", 6);
	f = rill_schema_field(s, 7);
	assert_true(f->has_default);
	assert_int_equal(f->default_value.var.bytes, 2);
	assert_memory_equal(f->default_value.var.data, "\x00\xff", 2);
	f = rill_schema_field(s, 8);
	assert_true(f->has_default);
	assert_int_equal(f->default_value.symbol, 1);
	f = rill_schema_field(s, 9);
	assert_false(f->has_default);
	assert_null(f->doc);

	/* The canonical JSON parses back to the same schema and the same text. */
	char *canon = rill_schema_to_json(s);
	assert_non_null(canon);
	struct rill_schema *again = NULL;
	assert_int_equal(rill_schema_parse(&again, canon, strlen(canon), NULL), 0);
	char *canon2 = rill_schema_to_json(again);
	assert_string_equal(canon, canon2);
	assert_int_equal(rill_schema_field_count(again), 10);
	for (uint32_t i = 0; i < 10; i++) {
		const struct rill_schema_field_info *a = rill_schema_field(s, i);
		const struct rill_schema_field_info *b = rill_schema_field(again, i);
		assert_string_equal(a->name, b->name);
		assert_int_equal(a->type, b->type);
		assert_int_equal(a->offset, b->offset);
		assert_int_equal(a->has_default, b->has_default);
	}
	assert_true(rill_schema_field(again, 2)->default_value.f64 == 2.5);
	assert_true(rill_schema_field(again, 0)->default_value.i64 == -7);
	assert_memory_equal(rill_schema_field(again, 7)->default_value.var.data, "\x00\xff", 2);
	assert_non_null(strstr(canon, "all of them"));
	free(canon);
	free(canon2);
	rill_schema_free(again);
	rill_schema_free(s);

	const char *good[] = {
		"{'type':'Empty','version':1,'fields':[]}",
		"{'type':'_x','version':65535,'fields':[]}",
		"{'type':'a.b.c_9','version':1,'doc':'','fields':[{'name':'_','type':'i64'}]}",
		"{'fields':[{'type':'bool','name':'on'}],'version':2,'type':'KeysAnyOrder'}",
		"{'type':'T','version':1,'fields':[{'name':'s','type':'string','max_length':1,"
		"'default':''}]}",
		"{'type':'T','version':1,'fields':[{'name':'y','type':'bytes','max_length':3,"
		"'default':'ABcdEf'}]}",
		"{'type':'T','version':1,'fields':[{'name':'e','type':'enum','symbols':['ONLY']}]}",
		"{'type':'T','version':1,'fields':[{'name':'f','type':'f64','default':-1e300}]}",
		"{'type':'T','version':1,'fields':[{'name':'i','type':'i64',"
		"'default':-9223372036854775808}]}",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		s = parse_q(good[i]);
		assert_int_equal(rill_schema_type_id(s), 0);
		rill_schema_free(s);
	}
	s = parse_q(good[0]);
	assert_int_equal(rill_schema_field_count(s), 0);
	assert_int_equal(rill_schema_block_bytes(s), 8);
	assert_int_equal(rill_schema_payload_bytes_max(s), 8);
	assert_null(rill_schema_field(s, 0));
	rill_schema_free(s);
	s = parse_q(good[5]);
	assert_memory_equal(rill_schema_field(s, 0)->default_value.var.data, "\xab\xcd\xef", 3);
	rill_schema_free(s);
	/* A NULL err is allowed. */
	assert_int_equal(rill_schema_parse(&s, "{}", 2, NULL), RILL_E_SCHEMA_INVALID);
}

/*
 * \u0000 in a definition: a string default is a payload value in the JSON encoding, which
 * takes it (as rill produce and rill_schema_json_encode do); names and docs are C strings,
 * so a NUL would cut them short: refused, saying which, and never with jansson's own
 * words (JSON_ALLOW_NUL means nothing to a user).
 */
static void test_definitions_nul(void **state)
{
	(void)state;
	struct rill_schema *s =
		parse_q(F1("{'name':'s','type':'string','max_length':8,'default':'a\\u0000b'}"));
	const struct rill_schema_field_info *f = rill_schema_field(s, 0);
	assert_true(f->has_default);
	assert_int_equal(f->default_value.var.bytes, 3);
	assert_memory_equal(f->default_value.var.data, "a\0b", 3);
	char *canon = rill_schema_to_json(s);
	assert_non_null(strstr(canon, "a\\u0000b"));
	struct rill_schema *again = NULL;
	assert_int_equal(rill_schema_parse(&again, canon, strlen(canon), NULL), 0);
	assert_int_equal(rill_schema_field(again, 0)->default_value.var.bytes, 3);
	assert_memory_equal(rill_schema_field(again, 0)->default_value.var.data, "a\0b", 3);
	free(canon);
	rill_schema_free(again);
	rill_schema_free(s);

	static const struct bad_case nul_cases[] = {
		{"type name", "{'type':'T\\u0000x','version':1,'fields':[]}", "\"type\""},
		{"field name", F1("{'name':'a\\u0000b','type':'i64'}"), "\"name\""},
		{"field type", F1("{'name':'ft','type':'i64\\u0000x'}"), "ft"},
		{"enum symbol", F1("{'name':'sy','type':'enum','symbols':['A\\u0000B']}"), "sy"},
		{"enum default",
		 F1("{'name':'sd','type':'enum','symbols':['A'],'default':'A\\u0000'}"), "sd"},
		{"u64 default", F1("{'name':'ud','type':'u64','default':'5\\u0000'}"), "ud"},
		{"bytes default",
		 F1("{'name':'bd','type':'bytes','max_length':4,'default':'00\\u0000'}"), "bd"},
		{"doc", "{'type':'T','version':1,'doc':'d\\u0000x','fields':[]}", "doc"},
		{"field doc", F1("{'name':'fd','type':'i64','doc':'d\\u0000x'}"), "fd"},
		{"member name", F1("{'name':'mn','type':'i64','na\\u0000me':1}"), "NUL|\\u0000"},
	};
	struct sbuf log = {0};
	sb_add(&log, "%s", "");
	for (size_t i = 0; i < sizeof(nul_cases) / sizeof(nul_cases[0]); i++) {
		expect_invalid(&log, nul_cases[i].name, nul_cases[i].json, nul_cases[i].needle);
		char *json = dq(nul_cases[i].json);
		struct rill_schema_error err;
		err_reset(&err);
		if (rill_schema_parse(&s, json, strlen(json), &err) != 0 &&
		    strstr(err.message, "JSON_ALLOW_NUL") != NULL)
			sb_add(&log, "  %s: \"%s\" names a jansson flag\n", nul_cases[i].name,
			       err.message);
		free(json);
	}
	if (log.n > 0)
		fail_msg("definitions with \\u0000 not handled as expected:\n%s", log.p);
	free(log.p);
}

/* ---- 3. Compatibility ----------------------------------------------------------------- */

#define MODE_COUNT 7

static const char *const mode_short[MODE_COUNT] = {"NONE",  "BACK", "BACK_T", "FWD",
						   "FWD_T", "FULL", "FULL_T"};

/*
 * One evolution: the field lists of two or three versions of type Evo. Two versions give
 * the expected answer of rill_schema_compatible in both directions (backward: the new
 * reads the old's data; forward: the old reads the new's), from which each mode's follows.
 * Three versions give each mode's answer for registering v3 after v1 and v2, as a string
 * indexed by mode: '+' accepted, '-' refused.
 */
struct compat_case {
	const char *name;
	const char *v1, *v2, *v3;
	bool backward, forward;
	const char *modes;
	const char *needle; /* what a refusal must name */
};

#define ID "{'name':'id','type':'u64'}"
#define TWO(name, v1, v2, b, f, needle)                                                            \
	{                                                                                          \
		name, v1, v2, NULL, b, f, NULL, needle                                             \
	}
#define THREE(name, v1, v2, v3, modes, needle)                                                     \
	{                                                                                          \
		name, v1, v2, v3, false, false, modes, needle                                      \
	}
#define I64(n)         "{'name':'" n "','type':'i64'}"
#define I64D(n, d)     "{'name':'" n "','type':'i64','default':" d "}"
#define TYPED(n, t)    "{'name':'" n "','type':'" t "'}"
#define VAR(n, t, max) "{'name':'" n "','type':'" t "','max_length':" max "}"
#define SIDE(syms)     "{'name':'side','type':'enum','symbols':[" syms "]}"
#define SIDED(syms, d) "{'name':'side','type':'enum','symbols':[" syms "],'default':'" d "'}"

static const struct compat_case compat_cases[] = {
	TWO("identical", ID "," I64("amount"), ID "," I64("amount"), true, true, "amount"),
	TWO("add field with default", ID, ID "," I64D("fee", "0"), true, true, "fee"),
	TWO("add field without default", ID, ID "," I64("fee"), false, true, "fee"),
	TWO("drop field with default", ID "," I64D("fee", "0"), ID, true, true, "fee"),
	TWO("drop field without default", ID "," I64("fee"), ID, true, false, "fee"),
	TWO("reorder fields", ID "," I64("amount") "," I64("fee"),
	    I64("fee") "," I64("amount") "," ID, true, true, "fee|amount"),
	TWO("rename, no defaults", ID "," I64("qty"), ID "," I64("quantity"), false, false,
	    "qty|quantity"),
	TWO("rename, both defaulted", ID "," I64D("qty", "0"), ID "," I64D("quantity", "0"), true,
	    true, "qty|quantity"),
	TWO("i64 to f64", I64("amount"), TYPED("amount", "f64"), true, false, "amount"),
	TWO("u64 to f64", TYPED("amount", "u64"), TYPED("amount", "f64"), true, false, "amount"),
	TWO("i64 to timestamp", I64("when"), TYPED("when", "timestamp"), true, true, "when"),
	TWO("timestamp to i64", TYPED("when", "timestamp"), I64("when"), true, true, "when"),
	TWO("string to bytes", VAR("sku", "string", "16"), VAR("sku", "bytes", "16"), true, false,
	    "sku"),
	TWO("bytes to string", VAR("sku", "bytes", "16"), VAR("sku", "string", "16"), false, true,
	    "sku"),
	TWO("i64 to u64", I64("amount"), TYPED("amount", "u64"), false, false, "amount"),
	TWO("u64 to i64", TYPED("amount", "u64"), I64("amount"), false, false, "amount"),
	TWO("i64 to string", I64("amount"), VAR("amount", "string", "8"), false, false, "amount"),
	TWO("bool to i64", TYPED("amount", "bool"), I64("amount"), false, false, "amount"),
	TWO("f64 to i64", TYPED("amount", "f64"), I64("amount"), false, true, "amount"),
	TWO("timestamp to f64", TYPED("when", "timestamp"), TYPED("when", "f64"), false, false,
	    "when"),
	TWO("u64 to timestamp", TYPED("when", "u64"), TYPED("when", "timestamp"), false, false,
	    "when"),
	TWO("enum to string", SIDE("'BUY','SELL'"), VAR("side", "string", "8"), false, false,
	    "side"),
	TWO("max_length grows", VAR("sku", "string", "16"), VAR("sku", "string", "32"), true, false,
	    "sku"),
	TWO("max_length shrinks", VAR("sku", "string", "32"), VAR("sku", "string", "16"), false,
	    true, "sku"),
	TWO("string to longer bytes", VAR("sku", "string", "16"), VAR("sku", "bytes", "32"), true,
	    false, "sku"),
	TWO("string to shorter bytes", VAR("sku", "string", "32"), VAR("sku", "bytes", "16"), false,
	    false, "sku"),
	TWO("enum adds a symbol", SIDE("'BUY','SELL'"), SIDE("'BUY','SELL','HOLD'"), true, false,
	    "side"),
	TWO("enum adds a symbol, both defaulted", SIDED("'BUY','SELL'", "BUY"),
	    SIDED("'BUY','SELL','HOLD'", "BUY"), true, true, "side"),
	TWO("enum adds a symbol, new defaulted", SIDE("'BUY','SELL'"),
	    SIDED("'BUY','SELL','HOLD'", "BUY"), true, false, "side"),
	TWO("enum drops a symbol", SIDE("'BUY','SELL','HOLD'"), SIDE("'BUY','SELL'"), false, true,
	    "side"),
	TWO("enum drops a symbol, new defaulted", SIDE("'BUY','SELL','HOLD'"),
	    SIDED("'BUY','SELL'", "BUY"), true, true, "side"),
	TWO("enum reorders symbols", SIDE("'BUY','SELL'"), SIDE("'SELL','BUY'"), true, true,
	    "side"),
	TWO("add a default", ID "," I64("fee"), ID "," I64D("fee", "1"), true, true, "fee"),
	TWO("remove a default", ID "," I64D("fee", "1"), ID "," I64("fee"), true, true, "fee"),
	TWO("change a default", ID "," I64D("fee", "1"), ID "," I64D("fee", "2"), true, true,
	    "fee"),
	TWO("add enum with default", ID, ID "," SIDED("'BUY','SELL'", "SELL"), true, true, "side"),
	TWO("add string without default", ID, ID "," VAR("note", "string", "8"), false, true,
	    "note"),
	TWO("drop every field", ID "," I64("amount"), "", true, false, "id|amount"),
	THREE("re-add with another type", ID "," VAR("note", "string", "16"), ID,
	      ID "," I64D("note", "0"), "++-+-+-", "note"),
	THREE("max_length swings", VAR("label", "string", "64"), VAR("label", "string", "16"),
	      VAR("label", "string", "32"), "++-----", "label"),
	THREE("default gone with the field", ID "," I64("qty"), ID "," I64D("qty", "0"), ID,
	      "++++-+-", "qty"),
	THREE("enum symbol swap", SIDE("'A','B'"), SIDED("'A'", "A"), SIDE("'A','C'"), "++-+-+-",
	      "side"),
	THREE("promotion chain", TYPED("when", "u64"), I64("when"), TYPED("when", "timestamp"),
	      "++-+-+-", "when"),
	THREE("re-add without default", ID "," I64("extra"), ID, ID "," I64("extra"), "+--++--",
	      "extra"),
	THREE("re-add with default", ID "," I64("extra"), ID, ID "," I64D("extra", "0"), "+++++++",
	      "extra"),
	THREE("string, bytes, bytes", VAR("sku", "string", "8"), VAR("sku", "bytes", "8"),
	      VAR("sku", "bytes", "8"), "++++-+-", "sku"),
};

static char *evo_def(int version, const char *fields)
{
	struct sbuf sb = {0};
	sb_add(&sb, "{'type':'Evo','version':%d,'fields':[%s]}", version, fields);
	return sb.p;
}

static bool mode_expected(const struct compat_case *cc, int mode)
{
	if (cc->v3 != NULL)
		return cc->modes[mode] == '+';
	switch (mode) {
	case RILL_COMPAT_NONE:
		return true;
	case RILL_COMPAT_BACKWARD:
	case RILL_COMPAT_BACKWARD_TRANSITIVE:
		return cc->backward;
	case RILL_COMPAT_FORWARD:
	case RILL_COMPAT_FORWARD_TRANSITIVE:
		return cc->forward;
	default:
		return cc->backward && cc->forward;
	}
}

/* Note a mismatch in @log: @rc should be 0 (@want_ok) or INCOMPATIBLE naming @needle. */
static bool compat_verify(struct sbuf *log, const struct compat_case *cc, const char *what, int rc,
			  bool want_ok, const struct rill_schema_error *err)
{
	int want = want_ok ? 0 : RILL_E_SCHEMA_INCOMPATIBLE;
	if (rc != want) {
		sb_add(log, "  %s / %s: got %d (%s), expected %s\n", cc->name, what, rc,
		       rc == 0 ? "ok" : err->message, want_ok ? "ok" : "INCOMPATIBLE");
		return false;
	}
	if (!want_ok && !mentions(err->message, cc->needle)) {
		sb_add(log, "  %s / %s: message \"%s\" names none of \"%s\"\n", cc->name, what,
		       err->message, cc->needle);
		return false;
	}
	return true;
}

static void compat_direct(struct sbuf *log, const struct compat_case *cc, const char *old_q,
			  const char *new_q)
{
	struct rill_schema *old = parse_q(old_q);
	struct rill_schema *new = parse_q(new_q);
	struct rill_schema_error err;
	err_reset(&err);
	bool b = rill_schema_compatible(new, old, &err);
	compat_verify(log, cc, "compatible(new, old)", b ? 0 : RILL_E_SCHEMA_INCOMPATIBLE,
		      cc->backward, &err);
	if (b && strcmp(err.message, ERR_SENTINEL) != 0)
		sb_add(log, "  %s: compatible() wrote a message on success\n", cc->name);
	err_reset(&err);
	bool f = rill_schema_compatible(old, new, &err);
	compat_verify(log, cc, "compatible(old, new)", f ? 0 : RILL_E_SCHEMA_INCOMPATIBLE,
		      cc->forward, &err);
	assert_true(rill_schema_compatible(old, old, NULL));
	assert_true(rill_schema_compatible(new, new, NULL));
	rill_schema_free(old);
	rill_schema_free(new);
}

/* Register the earlier versions under NONE, then check and register the last under @mode. */
static bool compat_in_registry(struct sbuf *log, const struct compat_case *cc, char **defs,
			       int count, int mode)
{
	char what[64];
	struct rill_schema_error err;
	bool want = mode_expected(cc, mode);
	struct rill_schema_registry *reg = mem_registry();
	for (int v = 0; v < count - 1; v++)
		reg_ok(reg, defs[v], RILL_COMPAT_NONE);
	err_reset(&err);
	snprintf(what, sizeof(what), "check under %s", rill_schema_compat_name(mode));
	compat_verify(log, cc, what, check_q(reg, defs[count - 1], mode, &err), want, &err);
	assert_int_equal(rill_schema_version(rill_schema_get(reg, "Evo", 0)), count - 1);

	assert_int_equal(rill_schema_set_compat(reg, "Evo", (enum rill_schema_compat)mode), 0);
	const struct rill_schema *out = NULL;
	err_reset(&err);
	int rc = reg_q(reg, defs[count - 1], -1, &out, &err);
	snprintf(what, sizeof(what), "register under %s", rill_schema_compat_name(mode));
	compat_verify(log, cc, what, rc, want, &err);
	const struct rill_schema *latest = rill_schema_get(reg, "Evo", 0);
	assert_int_equal(rill_schema_version(latest), rc == 0 ? count : count - 1);
	if (rc == 0)
		assert_ptr_equal(out, latest);
	else
		assert_null(rill_schema_get(reg, "Evo", (uint16_t)count));
	assert_int_equal(rill_schema_registry_close(reg), 0);

	if (count == 2) {
		/* The mode given with the first version, for a new type. */
		reg = mem_registry();
		reg_ok(reg, defs[0], mode);
		err_reset(&err);
		int rc2 = reg_q(reg, defs[1], -1, NULL, &err);
		snprintf(what, sizeof(what), "register after v1 under %s",
			 rill_schema_compat_name(mode));
		compat_verify(log, cc, what, rc2, want, &err);
		assert_int_equal(rill_schema_registry_close(reg), 0);
	}
	return rc == 0;
}

static void test_compat_table(void **state)
{
	(void)state;
	size_t n = sizeof(compat_cases) / sizeof(compat_cases[0]);
	struct sbuf log = {0}, table = {0};
	sb_add(&log, "%s", "");
	sb_add(&table, "%-36s %-5s %-5s", "case (old -> new)", "B-dir", "F-dir");
	for (int m = 0; m < MODE_COUNT; m++)
		sb_add(&table, " %-8s", mode_short[m]);
	sb_add(&table, "\n");
	for (size_t c = 0; c < n; c++) {
		const struct compat_case *cc = &compat_cases[c];
		int count = cc->v3 != NULL ? 3 : 2;
		char *defs[3] = {evo_def(1, cc->v1), evo_def(2, cc->v2),
				 cc->v3 != NULL ? evo_def(3, cc->v3) : NULL};
		if (count == 2)
			compat_direct(&log, cc, defs[0], defs[1]);
		if (count == 2)
			sb_add(&table, "%-36s %-5s %-5s", cc->name, cc->backward ? "ok" : "no",
			       cc->forward ? "ok" : "no");
		else
			sb_add(&table, "%-36s %-11s", cc->name, "(3 vers.)");
		for (int m = 0; m < MODE_COUNT; m++) {
			bool got = compat_in_registry(&log, cc, defs, count, m);
			bool want = mode_expected(cc, m);
			sb_add(&table, " %-8s",
			       got == want ? (got ? "ok" : "refused") : (got ? "ok!" : "refused!"));
		}
		sb_add(&table, "\n");
		for (int v = 0; v < 3; v++)
			free(defs[v]);
	}
	/* Row by row: print_message truncates long texts. */
	print_message("compatibility (B-dir: new reads old; F-dir: old reads new; "
		      "'!' marks a mode whose answer differs from the expected one)\n");
	for (char *line = table.p, *end; *line != '\0'; line = end + 1) {
		end = strchr(line, '\n');
		*end = '\0';
		print_message("%s\n", line);
	}
	if (log.n > 0)
		fail_msg("compatibility mismatches:\n%s", log.p);
	free(table.p);
	free(log.p);
}

static void test_compat_names(void **state)
{
	(void)state;
	static const char *const names[MODE_COUNT] = {
		"NONE", "BACKWARD",       "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
		"FULL", "FULL_TRANSITIVE"};
	for (int m = 0; m < MODE_COUNT; m++) {
		const char *name = rill_schema_compat_name((enum rill_schema_compat)m);
		assert_non_null(name);
		assert_string_equal(name, names[m]);
		enum rill_schema_compat parsed = (enum rill_schema_compat) - 1;
		assert_int_equal(rill_schema_compat_parse(name, &parsed), 0);
		assert_int_equal(parsed, m);
		char lower[32];
		size_t i = 0;
		for (; name[i] != '\0'; i++)
			lower[i] =
				(char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
		lower[i] = '\0';
		parsed = (enum rill_schema_compat) - 1;
		assert_int_equal(rill_schema_compat_parse(lower, &parsed), 0);
		assert_int_equal(parsed, m);
	}
	enum rill_schema_compat parsed;
	assert_int_equal(rill_schema_compat_parse("SIDEWAYS", &parsed), -EINVAL);
	assert_int_equal(rill_schema_compat_parse("", &parsed), -EINVAL);
	assert_int_equal(rill_schema_compat_parse("FULL_", &parsed), -EINVAL);
	assert_int_equal(rill_schema_compat_parse("BACKWARDS", &parsed), -EINVAL);
	assert_int_equal(RILL_COMPAT_DEFAULT, RILL_COMPAT_BACKWARD);
}

/* ---- Registry ------------------------------------------------------------------------- */

struct listed {
	int count;
	int stop_after;
	struct rill_schema_type_info info[8];
	char names[8][16];
};

static int list_collect(void *arg, const struct rill_schema_type_info *info)
{
	struct listed *l = arg;
	assert_true(l->count < 8);
	l->info[l->count] = *info;
	snprintf(l->names[l->count], sizeof(l->names[0]), "%s", info->name);
	l->count++;
	return l->stop_after > 0 && l->count == l->stop_after ? 7 : 0;
}

#define REG_A1 "{'type':'A','version':1,'fields':[" ID "]}"
#define REG_A2 "{'type':'A','version':2,'fields':[" ID "," I64D("fee", "0") "]}"
#define REG_B1 "{'type':'B','version':1,'fields':[" ID "]}"
#define REG_C1 "{'type':'C','version':1,'fields':[" I64("x") "]}"

static void test_registry_versions(void **state)
{
	(void)state;
	struct rill_schema_registry *reg = mem_registry();
	struct rill_schema_error err;
	const struct rill_schema *a1 = reg_ok(reg, REG_A1, -1);
	const struct rill_schema *b1 = reg_ok(reg, REG_B1, -1);
	const struct rill_schema *a2 = reg_ok(reg, REG_A2, -1);
	const struct rill_schema *c1 = reg_ok(reg, REG_C1, RILL_COMPAT_FULL);
	assert_int_equal(rill_schema_type_id(a1), 1);
	assert_int_equal(rill_schema_type_id(a2), 1);
	assert_int_equal(rill_schema_type_id(b1), 2);
	assert_int_equal(rill_schema_type_id(c1), 3);
	assert_string_equal(rill_schema_type_name(a2), "A");
	assert_int_equal(rill_schema_version(a2), 2);

	assert_ptr_equal(rill_schema_get(reg, "A", 0), a2);
	assert_ptr_equal(rill_schema_get(reg, "A", 1), a1);
	assert_ptr_equal(rill_schema_get(reg, "A", 2), a2);
	assert_null(rill_schema_get(reg, "A", 3));
	assert_null(rill_schema_get(reg, "Z", 0));
	assert_ptr_equal(rill_schema_get(reg, "B", 0), b1);
	assert_ptr_equal(rill_schema_get_id(reg, 1, 0), a2);
	assert_ptr_equal(rill_schema_get_id(reg, 1, 1), a1);
	assert_ptr_equal(rill_schema_get_id(reg, 3, 1), c1);
	assert_null(rill_schema_get_id(reg, 1, 3));
	assert_null(rill_schema_get_id(reg, 0, 1));
	assert_null(rill_schema_get_id(reg, 4, 1));
	assert_null(rill_schema_get_id(reg, 99999, 0));

	/* Versions out of order, and a new type that does not start at 1. */
	err_reset(&err);
	assert_int_equal(reg_q(reg, "{'type':'A','version':4,'fields':[" ID "]}", -1, NULL, &err),
			 RILL_E_SCHEMA_CONFLICT);
	assert_int_equal(reg_q(reg, "{'type':'B','version':3,'fields':[" ID "]}", -1, NULL, &err),
			 RILL_E_SCHEMA_CONFLICT);
	assert_int_equal(reg_q(reg, "{'type':'D','version':2,'fields':[]}", -1, NULL, &err),
			 RILL_E_SCHEMA_CONFLICT);
	assert_null(rill_schema_get(reg, "D", 0));
	err_reset(&err);
	assert_int_equal(check_q(reg, "{'type':'A','version':4,'fields':[" ID "]}", -1, &err),
			 RILL_E_SCHEMA_CONFLICT);
	/* The same definition again: the existing schema, latest or not. */
	const struct rill_schema *again = NULL;
	assert_int_equal(reg_q(reg, REG_A2, -1, &again, NULL), 0);
	assert_ptr_equal(again, a2);
	again = NULL;
	assert_int_equal(reg_q(reg, REG_A1, -1, &again, NULL), 0);
	assert_ptr_equal(again, a1);
	/* Another definition under a taken version. */
	err_reset(&err);
	assert_int_equal(reg_q(reg,
			       "{'type':'A','version':2,'fields':[" ID "," I64D("fee", "1") "]}",
			       -1, NULL, &err),
			 RILL_E_SCHEMA_CONFLICT);
	assert_int_equal(reg_q(reg, "{'type':'A','version':1,'fields':[]}", -1, NULL, &err),
			 RILL_E_SCHEMA_CONFLICT);
	assert_ptr_equal(rill_schema_get(reg, "A", 1), a1);
	assert_ptr_equal(rill_schema_get(reg, "A", 0), a2);
	/* Malformed definitions go through the parser's checks. */
	err_reset(&err);
	assert_int_equal(reg_q(reg,
			       "{'type':'E','version':1,'fields':[{'name':'s','type':'string'}]}",
			       -1, NULL, &err),
			 RILL_E_SCHEMA_INVALID);
	assert_mentions(&err, "s", "register invalid");
	assert_int_equal(reg_q(reg, "not json", -1, NULL, NULL), RILL_E_SCHEMA_INVALID);
	/* Nothing refused took a type id: the next type gets 4. */
	const struct rill_schema *e1 = reg_ok(reg, "{'type':'E','version':1,'fields':[]}", -1);
	assert_int_equal(rill_schema_type_id(e1), 4);

	struct listed l = {0};
	assert_int_equal(rill_schema_list(reg, list_collect, &l), 0);
	assert_int_equal(l.count, 4);
	const char *want_names[] = {"A", "B", "C", "E"};
	const uint16_t want_latest[] = {2, 1, 1, 1};
	const int want_compat[] = {RILL_COMPAT_BACKWARD, RILL_COMPAT_BACKWARD, RILL_COMPAT_FULL,
				   RILL_COMPAT_BACKWARD};
	for (int i = 0; i < 4; i++) {
		assert_string_equal(l.names[i], want_names[i]);
		assert_int_equal(l.info[i].type_id, (uint32_t)i + 1);
		assert_int_equal(l.info[i].latest_version, want_latest[i]);
		assert_int_equal(l.info[i].compat, want_compat[i]);
	}
	struct listed stop = {.stop_after = 2};
	assert_int_equal(rill_schema_list(reg, list_collect, &stop), 7);
	assert_int_equal(stop.count, 2);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

/* The registry's limits: versions per type and types per registry. */
static void test_registry_limits(void **state)
{
	(void)state;
	struct rill_schema_registry *reg = mem_registry();
	char def[128];
	for (uint32_t v = 1; v <= RILL_SCHEMA_VERSIONS_MAX; v++) {
		snprintf(def, sizeof(def), "{'type':'Many','version':%u,'fields':[]}", v);
		reg_ok(reg, def, -1);
	}
	snprintf(def, sizeof(def), "{'type':'Many','version':%u,'fields':[]}",
		 RILL_SCHEMA_VERSIONS_MAX + 1);
	assert_int_equal(reg_q(reg, def, -1, NULL, NULL), -ENOSPC);
	assert_int_equal(rill_schema_version(rill_schema_get(reg, "Many", 0)),
			 RILL_SCHEMA_VERSIONS_MAX);
	for (uint32_t t = 2; t <= RILL_SCHEMA_TYPES_MAX; t++) {
		snprintf(def, sizeof(def), "{'type':'T%u','version':1,'fields':[]}", t);
		assert_int_equal(rill_schema_type_id(reg_ok(reg, def, -1)), t);
	}
	assert_int_equal(
		reg_q(reg, "{'type':'OneTooMany','version':1,'fields':[]}", -1, NULL, NULL),
		-ENOSPC);
	assert_null(rill_schema_get(reg, "OneTooMany", 0));
	assert_non_null(rill_schema_get_id(reg, RILL_SCHEMA_TYPES_MAX, 1));
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

static int compat_of(struct rill_schema_registry *reg, const char *type)
{
	struct listed l = {0};
	assert_int_equal(rill_schema_list(reg, list_collect, &l), 0);
	for (int i = 0; i < l.count; i++)
		if (strcmp(l.names[i], type) == 0)
			return (int)l.info[i].compat;
	fail_msg("type %s not listed", type);
	return -1;
}

#define REG_B2_NEEDS "{'type':'B','version':2,'fields':[" ID "," I64("needed") "]}"

static void test_registry_set_compat(void **state)
{
	(void)state;
	struct rill_schema_registry *reg = mem_registry();
	struct rill_schema_error err;
	reg_ok(reg, REG_B1, -1);
	assert_int_equal(compat_of(reg, "B"), RILL_COMPAT_DEFAULT);
	assert_int_equal(rill_schema_set_compat(reg, "Nope", RILL_COMPAT_NONE), -ENOENT);

	/* v2 adds a field without a default: BACKWARD refuses, FORWARD and NONE accept. */
	err_reset(&err);
	assert_int_equal(check_q(reg, REG_B2_NEEDS, -1, &err), RILL_E_SCHEMA_INCOMPATIBLE);
	assert_mentions(&err, "needed", "BACKWARD check");
	err_reset(&err);
	assert_int_equal(check_q(reg, REG_B2_NEEDS, RILL_COMPAT_FORWARD, &err), 0);
	assert_string_equal(err.message, ERR_SENTINEL);
	/* A check with its own mode leaves the type's mode as it was. */
	assert_int_equal(compat_of(reg, "B"), RILL_COMPAT_BACKWARD);
	assert_int_equal(rill_schema_set_compat(reg, "B", RILL_COMPAT_NONE), 0);
	assert_int_equal(compat_of(reg, "B"), RILL_COMPAT_NONE);
	assert_int_equal(check_q(reg, REG_B2_NEEDS, -1, &err), 0);
	assert_int_equal(rill_schema_set_compat(reg, "B", RILL_COMPAT_FULL), 0);
	err_reset(&err);
	assert_int_equal(reg_q(reg, REG_B2_NEEDS, -1, NULL, &err), RILL_E_SCHEMA_INCOMPATIBLE);
	assert_mentions(&err, "needed", "FULL register");
	assert_null(rill_schema_get(reg, "B", 2));
	/* A mode given with the registration is set first, and stays. */
	assert_int_equal(reg_q(reg, REG_B2_NEEDS, RILL_COMPAT_FORWARD, NULL, NULL), 0);
	assert_int_equal(compat_of(reg, "B"), RILL_COMPAT_FORWARD);
	assert_int_equal(rill_schema_version(rill_schema_get(reg, "B", 0)), 2);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

/* ---- 4. Upcasting --------------------------------------------------------------------- */

#define ORDER_V1_FIELDS                                                                            \
	"{'name':'id','type':'u64'},{'name':'name','type':'string','max_length':32},"              \
	"{'name':'price','type':'i64','doc':'cents'},{'name':'qty','type':'i64'}"
#define ORDER_V1 "{'type':'Order','version':1,'fields':[" ORDER_V1_FIELDS "]}"
#define ORDER_V2                                                                                   \
	"{'type':'Order','version':2,'fields':[" ORDER_V1_FIELDS                                   \
	",{'name':'channel','type':'string','max_length':8,'default':'web'}]}"
#define ORDER_V3                                                                                   \
	"{'type':'Order','version':3,'fields':[{'name':'id','type':'u64'},"                        \
	"{'name':'first','type':'string','max_length':32,'default':''},"                           \
	"{'name':'last','type':'string','max_length':32,'default':''},"                            \
	"{'name':'price','type':'f64','default':0.0,'doc':'units'},"                               \
	"{'name':'quantity','type':'i64','default':0},"                                            \
	"{'name':'channel','type':'string','max_length':8,'default':'web'}]}"

struct order {
	uint64_t id;
	const char *name;
	int64_t price_cents;
	int64_t qty;
	const char *channel; /* v2 only; NULL: the default */
};

/* An Order event of v1 or v2 in a new buffer of its exact size. */
static uint8_t *order_event(const struct rill_schema *s, const struct order *o, uint32_t *bytes)
{
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *buf = malloc(max);
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, s, buf, max), 0);
	assert_int_equal(rill_payload_set_u64(&b, idx(s, "id"), o->id), 0);
	assert_int_equal(
		rill_payload_set_var(&b, idx(s, "name"), o->name, (uint32_t)strlen(o->name)), 0);
	assert_int_equal(rill_payload_set_i64(&b, idx(s, "price"), o->price_cents), 0);
	assert_int_equal(rill_payload_set_i64(&b, idx(s, "qty"), o->qty), 0);
	if (o->channel != NULL)
		assert_int_equal(rill_payload_set_var(&b, idx(s, "channel"), o->channel,
						      (uint32_t)strlen(o->channel)),
				 0);
	assert_int_equal(rill_payload_builder_finish(&b, bytes, NULL), 0);
	uint8_t *exact = exact_copy(buf, *bytes);
	free(buf);
	return exact;
}

struct upcast_log {
	int calls_12;
	int calls_23;
	int fail_with; /* the 2 -> 3 step returns this when not 0 */
};

static int order_1_to_2(void *arg, const struct rill_schema *from, const void *payload,
			uint32_t payload_bytes, struct rill_payload_builder *to)
{
	struct upcast_log *log = arg;
	log->calls_12++;
	assert_int_equal(rill_schema_version(from), 1);
	assert_int_equal(rill_schema_version(to->schema), 2);
	assert_int_equal(rill_schema_validate(from, payload, payload_bytes, NULL), 0);
	return rill_payload_set_var(to, idx(to->schema, "channel"), "legacy", 6);
}

/* The rename (qty -> quantity), the split (name -> first, last), cents -> f64 units. */
static int order_2_to_3(void *arg, const struct rill_schema *from, const void *payload,
			uint32_t payload_bytes, struct rill_payload_builder *to)
{
	struct upcast_log *log = arg;
	log->calls_23++;
	assert_int_equal(rill_schema_version(from), 2);
	assert_int_equal(rill_schema_version(to->schema), 3);
	assert_int_equal(rill_schema_validate(from, payload, payload_bytes, NULL), 0);
	if (log->fail_with != 0)
		return log->fail_with;
	const struct rill_schema *s = to->schema;
	uint32_t n;
	const char *name = rill_field_var(payload, ref_of(from, "name"), &n);
	const char *space = memchr(name, ' ', n);
	uint32_t first = space != NULL ? (uint32_t)(space - name) : n;
	int rc = rill_payload_set_var(to, idx(s, "first"), name, first);
	if (rc == 0 && space != NULL)
		rc = rill_payload_set_var(to, idx(s, "last"), space + 1, n - first - 1);
	if (rc == 0)
		rc = rill_payload_set_f64(to, idx(s, "price"),
					  (double)rill_field_i64(payload, ref_of(from, "price")) /
						  100.0);
	if (rc == 0)
		rc = rill_payload_set_i64(to, idx(s, "quantity"),
					  rill_field_i64(payload, ref_of(from, "qty")));
	return rc;
}

static struct rill_schema_registry *order_registry(const struct rill_schema *s[3])
{
	struct rill_schema_registry *reg = mem_registry();
	/* Under the default mode, BACKWARD: every step must be accepted. */
	s[0] = reg_ok(reg, ORDER_V1, -1);
	s[1] = reg_ok(reg, ORDER_V2, -1);
	s[2] = reg_ok(reg, ORDER_V3, -1);
	return reg;
}

static uint8_t *order_v3_event(const struct rill_schema *s, uint32_t *bytes)
{
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *buf = malloc(max);
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, s, buf, max), 0);
	assert_int_equal(rill_payload_set_u64(&b, idx(s, "id"), 7), 0);
	assert_int_equal(rill_payload_set_var(&b, idx(s, "first"), "Grace", 5), 0);
	assert_int_equal(rill_payload_set_var(&b, idx(s, "last"), "Hopper", 6), 0);
	assert_int_equal(rill_payload_set_f64(&b, idx(s, "price"), 4.25), 0);
	assert_int_equal(rill_payload_builder_finish(&b, bytes, NULL), 0);
	uint8_t *exact = exact_copy(buf, *bytes);
	free(buf);
	return exact;
}

static void read_ok(struct rill_schema_reader *r, uint16_t from, const void *p, uint32_t n,
		    const void **out, uint32_t *out_bytes)
{
	struct rill_schema_error err;
	err_reset(&err);
	int rc = rill_schema_reader_read(r, from, p, n, false, out, out_bytes, &err);
	if (rc != 0)
		fail_msg("read as v%u of a v%u event: %d %s",
			 rill_schema_version(rill_schema_reader_schema(r)), from, rc, err.message);
	assert_string_equal(err.message, ERR_SENTINEL);
	assert_non_null(*out);
}

static void test_upcast_chain(void **state)
{
	(void)state;
	const struct rill_schema *s[3];
	struct rill_schema_registry *reg = order_registry(s);
	struct upcast_log log = {0};
	assert_int_equal(rill_schema_upcaster_add(reg, "Order", 2, order_2_to_3, &log), 0);
	assert_int_equal(rill_schema_upcaster_add(reg, "Order", 2, order_2_to_3, &log), -EEXIST);
	assert_int_equal(rill_schema_upcaster_add(reg, "Nope", 1, order_2_to_3, &log), -ENOENT);
	assert_int_equal(rill_schema_upcaster_add(reg, "Order", 0, order_2_to_3, &log), -EINVAL);
	assert_int_equal(rill_schema_upcaster_add(reg, "Order", 1, NULL, &log), -EINVAL);

	struct rill_schema_reader *r3 = NULL, *r2 = NULL, *r1 = NULL, *bad = NULL;
	assert_int_equal(rill_schema_reader_create(&bad, reg, "Nope", 1), -ENOENT);
	assert_int_equal(rill_schema_reader_create(&bad, reg, "Order", 4), -ENOENT);
	assert_int_equal(rill_schema_reader_create(&r3, reg, "Order", 3), 0);
	assert_int_equal(rill_schema_reader_create(&r2, reg, "Order", 2), 0);
	assert_int_equal(rill_schema_reader_create(&r1, reg, "Order", 1), 0);
	assert_ptr_equal(rill_schema_reader_schema(r3), s[2]);
	assert_ptr_equal(rill_schema_reader_schema(r1), s[0]);

	/* v1 -> v2 by the default mapping (channel's default), v2 -> v3 by the upcaster. */
	struct order o1 = {42, "Ada Lovelace", 1999, 3, NULL};
	uint32_t n1;
	uint8_t *p1 = order_event(s[0], &o1, &n1);
	const void *out;
	uint32_t out_bytes;
	read_ok(r3, 1, p1, n1, &out, &out_bytes);
	assert_ptr_not_equal(out, p1);
	assert_int_equal(log.calls_23, 1);
	assert_int_equal(rill_schema_validate(s[2], out, out_bytes, NULL), 0);
	assert_int_equal(rill_field_u64(out, ref_of(s[2], "id")), 42);
	assert_var(s[2], out, "first", "Ada");
	assert_var(s[2], out, "last", "Lovelace");
	assert_true(rill_field_f64(out, ref_of(s[2], "price")) == 1999 / 100.0);
	assert_int_equal(rill_field_i64(out, ref_of(s[2], "quantity")), 3);
	assert_var(s[2], out, "channel", "web");
	/* Trusted: the same answer without the validation. */
	read_ok(r3, 1, p1, n1, &out, &out_bytes);
	assert_int_equal(rill_schema_reader_read(r3, 1, p1, n1, true, &out, &out_bytes, NULL), 0);
	assert_var(s[2], out, "last", "Lovelace");

	/* A v2 event keeps its channel through the 2 -> 3 step (shared by name and type). */
	struct order o2 = {43, "Alan", 250, -4, "app"};
	uint32_t n2;
	uint8_t *p2 = order_event(s[1], &o2, &n2);
	int calls = log.calls_23;
	read_ok(r3, 2, p2, n2, &out, &out_bytes);
	assert_int_equal(log.calls_23, calls + 1);
	assert_int_equal(rill_schema_validate(s[2], out, out_bytes, NULL), 0);
	assert_var(s[2], out, "first", "Alan");
	assert_var(s[2], out, "last", "");
	assert_var(s[2], out, "channel", "app");
	assert_int_equal(rill_field_i64(out, ref_of(s[2], "quantity")), -4);
	assert_true(rill_field_f64(out, ref_of(s[2], "price")) == 2.5);

	/* Same version: in place, no upcaster. */
	uint32_t n3;
	uint8_t *p3 = order_v3_event(s[2], &n3);
	calls = log.calls_23;
	read_ok(r3, 3, p3, n3, &out, &out_bytes);
	assert_ptr_equal(out, p3);
	assert_int_equal(out_bytes, n3);
	assert_int_equal(log.calls_23, calls);
	read_ok(r1, 1, p1, n1, &out, &out_bytes);
	assert_ptr_equal(out, p1);

	/* v2 only appended to v1: a v1 reader reads a v2 event in place. */
	read_ok(r1, 2, p2, n2, &out, &out_bytes);
	assert_ptr_equal(out, p2);
	assert_int_equal(out_bytes, n2);
	assert_int_equal(rill_field_u64(out, ref_of(s[0], "id")), 43);
	assert_var(s[0], out, "name", "Alan");
	assert_int_equal(rill_field_i64(out, ref_of(s[0], "price")), 250);
	assert_int_equal(rill_field_i64(out, ref_of(s[0], "qty")), -4);

	/* A v2 reader gets v1 events with channel's default. */
	read_ok(r2, 1, p1, n1, &out, &out_bytes);
	assert_ptr_not_equal(out, p1);
	assert_int_equal(rill_schema_validate(s[1], out, out_bytes, NULL), 0);
	assert_var(s[1], out, "channel", "web");
	assert_var(s[1], out, "name", "Ada Lovelace");
	assert_int_equal(rill_field_i64(out, ref_of(s[1], "qty")), 3);

	/* A v1 reader cannot read a v3 event: name and qty are gone and have no default. */
	struct rill_schema_error err;
	err_reset(&err);
	assert_int_equal(rill_schema_reader_read(r1, 3, p3, n3, false, &out, &out_bytes, &err),
			 RILL_E_SCHEMA_UPCAST);
	assert_mentions(&err, "name|qty|price", "v1 reader of a v3 event");

	/* Unknown versions and damaged payloads. */
	assert_int_equal(rill_schema_reader_read(r3, 9, p1, n1, false, &out, &out_bytes, NULL),
			 -ENOENT);
	uint8_t *dmg = exact_copy(p1, n1);
	dmg[4] = 1; /* reserved */
	err_reset(&err);
	assert_int_equal(rill_schema_reader_read(r3, 1, dmg, n1, false, &out, &out_bytes, &err),
			 RILL_E_PAYLOAD_INVALID);
	free(dmg);
	dmg = exact_copy(p3, n3);
	dmg[n3 - 1] = 0xff; /* last byte of a string: not UTF-8 */
	assert_int_equal(rill_schema_reader_read(r3, 3, dmg, n3, false, &out, &out_bytes, NULL),
			 RILL_E_PAYLOAD_INVALID);
	free(dmg);
	assert_int_equal(rill_schema_reader_read(r3, 1, p1, 7, false, &out, &out_bytes, NULL),
			 RILL_E_PAYLOAD_INVALID);

	rill_schema_reader_destroy(r1);
	rill_schema_reader_destroy(r2);
	rill_schema_reader_destroy(r3);
	free(p1);
	free(p2);
	free(p3);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

/* With an upcaster on each step, a v1 event goes through both. */
static void test_upcast_both_steps(void **state)
{
	(void)state;
	const struct rill_schema *s[3];
	struct rill_schema_registry *reg = order_registry(s);
	struct upcast_log log = {0};
	assert_int_equal(rill_schema_upcaster_add(reg, "Order", 1, order_1_to_2, &log), 0);
	assert_int_equal(rill_schema_upcaster_add(reg, "Order", 2, order_2_to_3, &log), 0);
	/* A step to a version that does not exist yet may have its upcaster. */
	assert_int_equal(rill_schema_upcaster_add(reg, "Order", 3, order_2_to_3, &log), 0);
	struct rill_schema_reader *r3 = NULL;
	assert_int_equal(rill_schema_reader_create(&r3, reg, "Order", 3), 0);
	struct order o1 = {1, "Edsger Wybe Dijkstra", 5, 1, NULL};
	uint32_t n1;
	uint8_t *p1 = order_event(s[0], &o1, &n1);
	const void *out;
	uint32_t out_bytes;
	read_ok(r3, 1, p1, n1, &out, &out_bytes);
	assert_int_equal(log.calls_12, 1);
	assert_int_equal(log.calls_23, 1);
	assert_int_equal(rill_schema_validate(s[2], out, out_bytes, NULL), 0);
	assert_var(s[2], out, "channel", "legacy");
	assert_var(s[2], out, "first", "Edsger");
	assert_var(s[2], out, "last", "Wybe Dijkstra");
	assert_true(rill_field_f64(out, ref_of(s[2], "price")) == 0.05);

	struct order o2 = {2, "Barbara", 5, 1, "app"};
	uint32_t n2;
	uint8_t *p2 = order_event(s[1], &o2, &n2);
	read_ok(r3, 2, p2, n2, &out, &out_bytes);
	assert_int_equal(log.calls_12, 1);
	assert_int_equal(log.calls_23, 2);
	assert_var(s[2], out, "channel", "app");

	/* An upcaster's error fails the read with that error. */
	log.fail_with = -EPROTO;
	assert_int_equal(rill_schema_reader_read(r3, 1, p1, n1, false, &out, &out_bytes, NULL),
			 -EPROTO);
	assert_int_equal(rill_schema_reader_read(r3, 2, p2, n2, false, &out, &out_bytes, NULL),
			 -EPROTO);
	rill_schema_reader_destroy(r3);
	free(p1);
	free(p2);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

#define BARE_V1 "{'type':'Bare','version':1,'fields':[" ID "]}"
#define BARE_V2                                                                                    \
	"{'type':'Bare','version':2,'fields':[" ID                                                 \
	",{'name':'tag','type':'string','max_length':8,'default':'none'}]}"
#define BARE_V3                                                                                    \
	"{'type':'Bare','version':3,'fields':[" ID                                                 \
	",{'name':'tag','type':'string','max_length':8,'default':'none'},"                         \
	"{'name':'must','type':'i64'}]}"

static int bare_2_to_3(void *arg, const struct rill_schema *from, const void *payload,
		       uint32_t payload_bytes, struct rill_payload_builder *to)
{
	(void)arg;
	(void)payload_bytes;
	int64_t id = (int64_t)rill_field_u64(payload, ref_of(from, "id"));
	return rill_payload_set_i64(to, idx(to->schema, "must"), id * 2);
}

static uint8_t *bare_event(const struct rill_schema *s, uint64_t id, const char *tag,
			   uint32_t *bytes)
{
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *buf = malloc(max);
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, s, buf, max), 0);
	assert_int_equal(rill_payload_set_u64(&b, 0, id), 0);
	if (tag != NULL)
		assert_int_equal(rill_payload_set_var(&b, 1, tag, (uint32_t)strlen(tag)), 0);
	assert_int_equal(rill_payload_builder_finish(&b, bytes, NULL), 0);
	uint8_t *exact = exact_copy(buf, *bytes);
	free(buf);
	return exact;
}

/* v3 adds a field without a default (allowed under NONE): no way up without an upcaster. */
static void test_upcast_missing(void **state)
{
	(void)state;
	struct rill_schema_registry *reg = mem_registry();
	const struct rill_schema *b1 = reg_ok(reg, BARE_V1, RILL_COMPAT_NONE);
	const struct rill_schema *b2 = reg_ok(reg, BARE_V2, -1);
	const struct rill_schema *b3 = reg_ok(reg, BARE_V3, -1);
	uint32_t n1, n2;
	uint8_t *p1 = bare_event(b1, 5, NULL, &n1);
	uint8_t *p2 = bare_event(b2, 6, "x", &n2);
	struct rill_schema_reader *r = NULL;
	assert_int_equal(rill_schema_reader_create(&r, reg, "Bare", 3), 0);
	const void *out;
	uint32_t out_bytes;
	struct rill_schema_error err;
	err_reset(&err);
	assert_int_equal(rill_schema_reader_read(r, 1, p1, n1, false, &out, &out_bytes, &err),
			 RILL_E_SCHEMA_UPCAST);
	assert_mentions(&err, "must", "v3 reader of a v1 event");
	err_reset(&err);
	assert_int_equal(rill_schema_reader_read(r, 2, p2, n2, false, &out, &out_bytes, &err),
			 RILL_E_SCHEMA_UPCAST);
	assert_mentions(&err, "must", "v3 reader of a v2 event");
	rill_schema_reader_destroy(r);

	assert_int_equal(rill_schema_upcaster_add(reg, "Bare", 2, bare_2_to_3, NULL), 0);
	assert_int_equal(rill_schema_reader_create(&r, reg, "Bare", 3), 0);
	read_ok(r, 1, p1, n1, &out, &out_bytes);
	assert_int_equal(rill_schema_validate(b3, out, out_bytes, NULL), 0);
	assert_int_equal(rill_field_i64(out, ref_of(b3, "must")), 10);
	assert_var(b3, out, "tag", "none");
	read_ok(r, 2, p2, n2, &out, &out_bytes);
	assert_int_equal(rill_field_i64(out, ref_of(b3, "must")), 12);
	assert_var(b3, out, "tag", "x");
	rill_schema_reader_destroy(r);
	free(p1);
	free(p2);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

#define EVT_V1                                                                                     \
	"{'type':'Evt','version':1,'fields':[{'name':'a','type':'i64'},"                           \
	"{'name':'s','type':'string','max_length':8,'default':'x'}]}"
#define EVT_V2                                                                                     \
	"{'type':'Evt','version':2,'fields':["                                                     \
	"{'name':'z','type':'string','max_length':16,'default':'zz'},"                             \
	"{'name':'a','type':'i64'},{'name':'s','type':'string','max_length':8,'default':'x'},"     \
	"{'name':'extra','type':'i64','default':5}]}"

/* A newer event read by an older reader made before the newer version existed. */
static void test_upcast_newer_event(void **state)
{
	(void)state;
	struct rill_schema_registry *reg = mem_registry();
	const struct rill_schema *e1 = reg_ok(reg, EVT_V1, -1);
	struct rill_schema_reader *r = NULL;
	assert_int_equal(rill_schema_reader_create(&r, reg, "Evt", 1), 0);
	const void *out;
	uint32_t out_bytes;
	assert_int_equal(rill_schema_reader_read(r, 2, "", 0, false, &out, &out_bytes, NULL),
			 -ENOENT);
	const struct rill_schema *e2 = reg_ok(reg, EVT_V2, -1);
	uint32_t max = rill_schema_payload_bytes_max(e2);
	uint8_t *buf = malloc(max);
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, e2, buf, max), 0);
	assert_int_equal(rill_payload_set_var(&b, idx(e2, "z"), "zzz", 3), 0);
	assert_int_equal(rill_payload_set_i64(&b, idx(e2, "a"), 11), 0);
	assert_int_equal(rill_payload_set_var(&b, idx(e2, "s"), "ss", 2), 0);
	assert_int_equal(rill_payload_set_i64(&b, idx(e2, "extra"), 9), 0);
	uint32_t n;
	assert_int_equal(rill_payload_builder_finish(&b, &n, NULL), 0);
	uint8_t *p = exact_copy(buf, n);
	free(buf);

	read_ok(r, 2, p, n, &out, &out_bytes);
	assert_ptr_not_equal(out, p);
	assert_int_equal(out_bytes, 24 + 2);
	assert_int_equal(rill_schema_validate(e1, out, out_bytes, NULL), 0);
	assert_int_equal(rill_field_i64(out, ref_of(e1, "a")), 11);
	assert_var(e1, out, "s", "ss");
	char text[128];
	size_t text_bytes;
	assert_int_equal(
		rill_schema_json_decode(e1, out, out_bytes, text, sizeof(text), &text_bytes, NULL),
		0);
	assert_string_equal(text, "{\"a\":11,\"s\":\"ss\"}");
	/* And the older event as the newer version: defaults for z and extra. */
	struct rill_schema_reader *r2 = NULL;
	assert_int_equal(rill_schema_reader_create(&r2, reg, "Evt", 2), 0);
	uint8_t old[32];
	assert_int_equal(rill_payload_builder_init(&b, e1, old, sizeof(old)), 0);
	assert_int_equal(rill_payload_set_i64(&b, 0, -1), 0);
	assert_int_equal(rill_payload_builder_finish(&b, &n, NULL), 0);
	read_ok(r2, 1, old, n, &out, &out_bytes);
	assert_int_equal(rill_schema_validate(e2, out, out_bytes, NULL), 0);
	assert_var(e2, out, "z", "zz");
	assert_var(e2, out, "s", "x");
	assert_int_equal(rill_field_i64(out, ref_of(e2, "a")), -1);
	assert_int_equal(rill_field_i64(out, ref_of(e2, "extra")), 5);
	rill_schema_reader_destroy(r);
	rill_schema_reader_destroy(r2);
	free(p);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

#define SWAP_V1                                                                                    \
	"{'type':'Swap','version':1,'fields':["                                                    \
	"{'name':'side','type':'enum','symbols':['BUY','SELL']},"                                  \
	"{'name':'amount','type':'i64'},{'name':'big','type':'u64'},"                              \
	"{'name':'when','type':'i64'},{'name':'sku','type':'string','max_length':8}]}"
#define SWAP_V2                                                                                    \
	"{'type':'Swap','version':2,'fields':["                                                    \
	"{'name':'sku','type':'bytes','max_length':12},"                                           \
	"{'name':'side','type':'enum','symbols':['SELL','BUY','HOLD']},"                           \
	"{'name':'when','type':'timestamp'},{'name':'big','type':'f64'},"                          \
	"{'name':'amount','type':'f64'}]}"

/* Reads by name: enum symbols through their names, promotions on the way up. */
static void test_upcast_by_name(void **state)
{
	(void)state;
	struct rill_schema_registry *reg = mem_registry();
	const struct rill_schema *v1 = reg_ok(reg, SWAP_V1, -1);
	const struct rill_schema *v2 = reg_ok(reg, SWAP_V2, -1); /* BACKWARD holds */
	struct rill_schema_reader *r1 = NULL, *r2 = NULL;
	assert_int_equal(rill_schema_reader_create(&r1, reg, "Swap", 1), 0);
	assert_int_equal(rill_schema_reader_create(&r2, reg, "Swap", 2), 0);
	uint8_t buf[128];
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, v1, buf, sizeof(buf)), 0);
	assert_int_equal(rill_payload_set_enum(&b, 0, 0), 0); /* BUY */
	assert_int_equal(rill_payload_set_i64(&b, 1, -3), 0);
	assert_int_equal(rill_payload_set_u64(&b, 2, UINT64_MAX), 0);
	assert_int_equal(rill_payload_set_i64(&b, 3, -99), 0);
	assert_int_equal(rill_payload_set_var(&b, 4, "abc", 3), 0);
	uint32_t n;
	assert_int_equal(rill_payload_builder_finish(&b, &n, NULL), 0);
	const void *out;
	uint32_t out_bytes;
	read_ok(r2, 1, buf, n, &out, &out_bytes);
	assert_int_equal(rill_schema_validate(v2, out, out_bytes, NULL), 0);
	assert_int_equal(rill_field_enum(out, ref_of(v2, "side")), 1); /* BUY in v2 */
	assert_true(rill_field_f64(out, ref_of(v2, "amount")) == -3.0);
	assert_true(rill_field_f64(out, ref_of(v2, "big")) == (double)UINT64_MAX);
	assert_int_equal(rill_field_i64(out, ref_of(v2, "when")), -99);
	assert_var(v2, out, "sku", "abc");

	/* v2 events as v1: SELL maps back; HOLD has no match and side no default. */
	uint8_t *buf2 = malloc(rill_schema_payload_bytes_max(v2));
	assert_int_equal(rill_payload_builder_init(&b, v2, buf2, rill_schema_payload_bytes_max(v2)),
			 0);
	assert_int_equal(rill_payload_set_var(&b, 0, "xyz", 3), 0);
	assert_int_equal(rill_payload_set_enum(&b, 1, 0), 0); /* SELL */
	assert_int_equal(rill_payload_set_i64(&b, 2, 5), 0);
	assert_int_equal(rill_payload_set_f64(&b, 3, 1.0), 0);
	assert_int_equal(rill_payload_set_f64(&b, 4, 2.0), 0);
	assert_int_equal(rill_payload_builder_finish(&b, &n, NULL), 0);
	struct rill_schema_error err;
	err_reset(&err);
	/* amount is f64 in v2 and i64 in v1: no promotion back, no default. */
	assert_int_equal(rill_schema_reader_read(r1, 2, buf2, n, false, &out, &out_bytes, &err),
			 RILL_E_SCHEMA_UPCAST);
	assert_mentions(&err, "amount|big|sku", "v1 reader of a v2 event");
	free(buf2);
	rill_schema_reader_destroy(r1);
	rill_schema_reader_destroy(r2);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

#define GAP_V1 "{'type':'Gap','version':1,'fields':[" ID ",{'name':'x','type':'i64'}]}"
#define GAP_V2 "{'type':'Gap','version':2,'fields':[" ID "]}"
#define GAP_V3 "{'type':'Gap','version':3,'fields':[" ID ",{'name':'x','type':'i64','default':-1}]}"

/*
 * Between steps without upcasters the header says the reader takes "the direct mapping":
 * a v1 event read as v3 maps v1 to v3 by name, so x, dropped by v2 and added again by v3,
 * keeps its v1 value. (docs/SCHEMAS.md says "one version at a time", which would give x
 * its default instead; this test follows the header and the implementation.) An upcaster
 * on step 1 -> 2 makes the route go through v2, and x takes its default.
 */
static int gap_1_to_2(void *arg, const struct rill_schema *from, const void *payload,
		      uint32_t payload_bytes, struct rill_payload_builder *to)
{
	(void)from;
	(void)payload;
	(void)payload_bytes;
	(void)to;
	(*(int *)arg)++;
	return 0;
}

static void test_upcast_direct_mapping(void **state)
{
	(void)state;
	struct rill_schema_registry *reg = mem_registry();
	const struct rill_schema *v1 = reg_ok(reg, GAP_V1, -1);
	reg_ok(reg, GAP_V2, -1);
	const struct rill_schema *v3 = reg_ok(reg, GAP_V3, -1);
	uint8_t e[64];
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, v1, e, sizeof(e)), 0);
	assert_int_equal(rill_payload_set_u64(&b, 0, 9), 0);
	assert_int_equal(rill_payload_set_i64(&b, 1, 1234), 0);
	uint32_t n;
	assert_int_equal(rill_payload_builder_finish(&b, &n, NULL), 0);
	struct rill_schema_reader *r = NULL;
	assert_int_equal(rill_schema_reader_create(&r, reg, "Gap", 3), 0);
	const void *out;
	uint32_t out_bytes;
	read_ok(r, 1, e, n, &out, &out_bytes);
	assert_int_equal(rill_field_i64(out, ref_of(v3, "x")), 1234);
	int calls = 0;
	assert_int_equal(rill_schema_upcaster_add(reg, "Gap", 1, gap_1_to_2, &calls), 0);
	read_ok(r, 1, e, n, &out, &out_bytes); /* the same reader sees the new upcaster */
	assert_int_equal(calls, 1);
	assert_int_equal(rill_field_i64(out, ref_of(v3, "x")), -1);
	assert_int_equal(rill_field_u64(out, ref_of(v3, "id")), 9);
	rill_schema_reader_destroy(r);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

#define SIDE_V1                                                                                    \
	"{'type':'Side','version':1,'fields':[{'name':'id','type':'u64'},"                         \
	"{'name':'side','type':'enum','symbols':['BUY','SELL']}]}"
#define SIDE_V2                                                                                    \
	"{'type':'Side','version':2,'fields':[{'name':'id','type':'u64'},"                         \
	"{'name':'side','type':'enum','symbols':['SELL','BUY','HOLD']}]}"
#define SIDE_V3                                                                                    \
	"{'type':'Side','version':3,'fields':[{'name':'id','type':'u64'},"                         \
	"{'name':'side','type':'enum','symbols':['BUY','SELL'],'default':'SELL'}]}"

static uint32_t side_event(const struct rill_schema *s, uint16_t symbol, uint8_t *buf)
{
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, s, buf, 64), 0);
	assert_int_equal(rill_payload_set_u64(&b, 0, 1), 0);
	assert_int_equal(rill_payload_set_enum(&b, 1, symbol), 0);
	uint32_t n;
	assert_int_equal(rill_payload_builder_finish(&b, &n, NULL), 0);
	return n;
}

/* Enum indexes follow the names across versions; an unknown symbol takes the default. */
static void test_upcast_enum_symbols(void **state)
{
	(void)state;
	struct rill_schema_registry *reg = mem_registry();
	const struct rill_schema *v1 = reg_ok(reg, SIDE_V1, RILL_COMPAT_NONE);
	const struct rill_schema *v2 = reg_ok(reg, SIDE_V2, -1);
	const struct rill_schema *v3 = reg_ok(reg, SIDE_V3, -1);
	struct rill_schema_reader *r1 = NULL, *r2 = NULL, *r3 = NULL;
	assert_int_equal(rill_schema_reader_create(&r1, reg, "Side", 1), 0);
	assert_int_equal(rill_schema_reader_create(&r2, reg, "Side", 2), 0);
	assert_int_equal(rill_schema_reader_create(&r3, reg, "Side", 3), 0);
	uint8_t e[64];
	const void *out;
	uint32_t out_bytes, n;
	struct rill_field_ref side1 = ref_of(v1, "side"), side2 = ref_of(v2, "side");
	struct rill_field_ref side3 = ref_of(v3, "side");
	n = side_event(v1, 0, e); /* BUY */
	read_ok(r2, 1, e, n, &out, &out_bytes);
	assert_int_equal(rill_field_enum(out, side2), 1);
	n = side_event(v2, 0, e); /* SELL */
	read_ok(r1, 2, e, n, &out, &out_bytes);
	assert_ptr_not_equal(out, e); /* same place, other symbols: not in place */
	assert_int_equal(rill_field_enum(out, side1), 1);
	read_ok(r3, 2, e, n, &out, &out_bytes);
	assert_int_equal(rill_field_enum(out, side3), 1);
	n = side_event(v2, 2, e); /* HOLD */
	struct rill_schema_error err;
	err_reset(&err);
	assert_int_equal(rill_schema_reader_read(r1, 2, e, n, false, &out, &out_bytes, &err),
			 RILL_E_SCHEMA_UPCAST);
	assert_mentions(&err, "side", "HOLD read as v1");
	read_ok(r3, 2, e, n, &out, &out_bytes); /* v3 has a default for it */
	assert_int_equal(rill_field_enum(out, side3), 1);
	assert_int_equal(rill_schema_validate(v3, out, out_bytes, NULL), 0);
	/* v3 has v1's symbols in v1's order: v1 events are read in place. */
	n = side_event(v1, 1, e);
	read_ok(r3, 1, e, n, &out, &out_bytes);
	assert_ptr_equal(out, e);
	assert_int_equal(rill_field_enum(out, side3), 1);
	rill_schema_reader_destroy(r1);
	rill_schema_reader_destroy(r2);
	rill_schema_reader_destroy(r3);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

#define SKIP_V1                                                                                    \
	"{'type':'Skip','version':1,'fields':[" ID                                                 \
	",{'name':'k','type':'enum','symbols':['A','B','C']}]}"
#define SKIP_V2                                                                                    \
	"{'type':'Skip','version':2,'fields':[" ID                                                 \
	",{'name':'k','type':'enum','symbols':['A','B'],"                                          \
	"'default':'A'},{'name':'b','type':'i64','default':1}]}"
#define SKIP_V3                                                                                    \
	"{'type':'Skip','version':3,'fields':[" ID                                                 \
	",{'name':'k','type':'enum','symbols':['A','B']},"                                         \
	"{'name':'b','type':'i64'}]}"

/*
 * Under BACKWARD each version is checked against the one before only: v3 drops the
 * defaults v2 gave b and k, so a straight map v1 -> v3 has no value for b (and none for
 * k's C). The reader then crosses v2, whose defaults fill in: b = 1, C read as A.
 */
static void test_upcast_skipped_defaults(void **state)
{
	(void)state;
	struct rill_schema_registry *reg = mem_registry();
	const struct rill_schema *v1 = reg_ok(reg, SKIP_V1, -1);
	reg_ok(reg, SKIP_V2, -1);
	const struct rill_schema *v3 = reg_ok(reg, SKIP_V3, -1);
	struct rill_schema_reader *r = NULL;
	assert_int_equal(rill_schema_reader_create(&r, reg, "Skip", 3), 0);
	for (uint16_t sym = 0; sym < 3; sym++) {
		uint8_t e[64];
		struct rill_payload_builder b;
		assert_int_equal(rill_payload_builder_init(&b, v1, e, sizeof(e)), 0);
		assert_int_equal(rill_payload_set_u64(&b, 0, 40 + sym), 0);
		assert_int_equal(rill_payload_set_enum(&b, 1, sym), 0);
		uint32_t n;
		assert_int_equal(rill_payload_builder_finish(&b, &n, NULL), 0);
		const void *out;
		uint32_t out_bytes;
		read_ok(r, 1, e, n, &out, &out_bytes);
		assert_int_equal(rill_schema_validate(v3, out, out_bytes, NULL), 0);
		assert_int_equal(rill_field_u64(out, ref_of(v3, "id")), 40 + sym);
		assert_int_equal(rill_field_i64(out, ref_of(v3, "b")), 1);
		assert_int_equal(rill_field_enum(out, ref_of(v3, "k")), sym == 1 ? 1 : 0);
	}
	rill_schema_reader_destroy(r);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

#define DROP_V1                                                                                    \
	"{'type':'Drop','version':1,'fields':[" ID ",{'name':'k','type':'enum','symbols':"         \
	"['A','B','C'],'default':'A'}]}"
#define DROP_V2 "{'type':'Drop','version':2,'fields':[" ID "]}"
#define DROP_V3                                                                                    \
	"{'type':'Drop','version':3,'fields':[" ID                                                 \
	",{'name':'k','type':'enum','symbols':['A','B']}]}"

/*
 * Single steps only where each gives every field a value: v2 dropped k and v3 brought it
 * back without a default, so v2 -> v3 can set k for no event. The straight map v1 -> v3
 * stays: it reads A and B, and fails C only (single steps would fail every event).
 */
static void test_upcast_partial_steps(void **state)
{
	(void)state;
	struct rill_schema_registry *reg = mem_registry();
	const struct rill_schema *v1 = reg_ok(reg, DROP_V1, RILL_COMPAT_NONE);
	reg_ok(reg, DROP_V2, -1);
	const struct rill_schema *v3 = reg_ok(reg, DROP_V3, -1);
	struct rill_schema_reader *r = NULL;
	assert_int_equal(rill_schema_reader_create(&r, reg, "Drop", 3), 0);
	for (uint16_t sym = 0; sym < 3; sym++) {
		uint8_t e[64];
		struct rill_payload_builder b;
		assert_int_equal(rill_payload_builder_init(&b, v1, e, sizeof(e)), 0);
		assert_int_equal(rill_payload_set_u64(&b, 0, 7), 0);
		assert_int_equal(rill_payload_set_enum(&b, 1, sym), 0);
		uint32_t n;
		assert_int_equal(rill_payload_builder_finish(&b, &n, NULL), 0);
		const void *out;
		uint32_t out_bytes;
		struct rill_schema_error err;
		err_reset(&err);
		int rc = rill_schema_reader_read(r, 1, e, n, false, &out, &out_bytes, &err);
		if (sym == 2) {
			assert_int_equal(rc, RILL_E_SCHEMA_UPCAST);
			continue;
		}
		if (rc != 0)
			fail_msg("symbol %u read as v3: %d: %s", sym, rc, err.message);
		assert_int_equal(rill_field_enum(out, ref_of(v3, "k")), sym);
	}
	rill_schema_reader_destroy(r);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

#define TICK_V1                                                                                    \
	"{'type':'Tick','version':1,'fields':[" ID ",{'name':'side','type':'enum','symbols':"      \
	"['BUY','SELL']},{'name':'venue','type':'string','max_length':16}]}"
#define TICK_V2                                                                                    \
	"{'type':'Tick','version':2,'fields':[" ID ",{'name':'side','type':'enum','symbols':"      \
	"['B','S']},{'name':'venue','type':'string','max_length':4,'default':'none'}]}"

struct tick_upcast {
	int calls;
	bool set_side, set_venue;
};

/* Tick v1 -> v2: BUY/SELL become B/S, the venue is cut to 4 bytes (each when asked). */
static int tick_1_to_2(void *arg, const struct rill_schema *from, const void *payload,
		       uint32_t payload_bytes, struct rill_payload_builder *to)
{
	(void)payload_bytes;
	struct tick_upcast *u = arg;
	u->calls++;
	int rc = 0;
	if (u->set_side)
		rc = rill_payload_set_enum(to, 1, rill_field_enum(payload, ref_of(from, "side")));
	if (rc == 0 && u->set_venue) {
		uint32_t bytes;
		const void *v = rill_field_var(payload, ref_of(from, "venue"), &bytes);
		rc = rill_payload_set_var(to, 2, v, bytes < 4 ? bytes : 4);
	}
	return rc;
}

/*
 * A value the default mapping cannot carry (a symbol v2 renamed, a string longer than v2's
 * max_length) is the upcaster's to set: the read fails only if it does not, and then v2's
 * default does not stand in for the value the event had.
 */
static void test_upcast_sets_unmappable(void **state)
{
	(void)state;
	struct rill_schema_registry *reg = mem_registry();
	const struct rill_schema *v1 = reg_ok(reg, TICK_V1, RILL_COMPAT_NONE);
	const struct rill_schema *v2 = reg_ok(reg, TICK_V2, -1);
	struct tick_upcast u = {0};
	assert_int_equal(rill_schema_upcaster_add(reg, "Tick", 1, tick_1_to_2, &u), 0);
	struct rill_schema_reader *r = NULL;
	assert_int_equal(rill_schema_reader_create(&r, reg, "Tick", 2), 0);
	uint8_t e[64];
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, v1, e, sizeof(e)), 0);
	assert_int_equal(rill_payload_set_u64(&b, 0, 5), 0);
	assert_int_equal(rill_payload_set_enum(&b, 1, 1), 0); /* SELL */
	assert_int_equal(rill_payload_set_var(&b, 2, "NASDAQ", 6), 0);
	uint32_t n;
	assert_int_equal(rill_payload_builder_finish(&b, &n, NULL), 0);
	const void *out;
	uint32_t out_bytes;
	struct rill_schema_error err;
	for (int round = 0; round < 3; round++) {
		u.set_side = round != 0;
		u.set_venue = round == 2;
		err_reset(&err);
		int rc = rill_schema_reader_read(r, 1, e, n, false, &out, &out_bytes, &err);
		if (round < 2) {
			assert_int_equal(rc, RILL_E_SCHEMA_UPCAST);
			assert_mentions(&err, round == 0 ? "side" : "venue", "a field left unset");
			continue;
		}
		assert_int_equal(rc, 0);
	}
	assert_int_equal(u.calls, 3);
	assert_int_equal(rill_schema_validate(v2, out, out_bytes, NULL), 0);
	assert_int_equal(rill_field_u64(out, ref_of(v2, "id")), 5);
	assert_int_equal(rill_field_enum(out, ref_of(v2, "side")), 1);
	uint32_t bytes;
	const void *venue = rill_field_var(out, ref_of(v2, "venue"), &bytes);
	assert_int_equal(bytes, 4);
	assert_memory_equal(venue, "NASD", 4);
	rill_schema_reader_destroy(r);
	assert_int_equal(rill_schema_registry_close(reg), 0);
}

/* ---- 5. JSON <-> binary --------------------------------------------------------------- */

#define J_JSON                                                                                     \
	"{'type':'J','version':1,'fields':["                                                       \
	"{'name':'count','type':'i64'},{'name':'big','type':'u64'},"                               \
	"{'name':'ratio','type':'f64'},{'name':'flag','type':'bool'},"                             \
	"{'name':'when','type':'timestamp'},"                                                      \
	"{'name':'label','type':'string','max_length':16},"                                        \
	"{'name':'blob','type':'bytes','max_length':8},"                                           \
	"{'name':'color','type':'enum','symbols':['RED','GREEN','BLUE']},"                         \
	"{'name':'fee','type':'i64','default':5},"                                                 \
	"{'name':'note','type':'string','max_length':8,'default':'hi'},"                           \
	"{'name':'shade','type':'enum','symbols':['A','B'],'default':'B'}]}"

/* The required fields of J with valid values, single-quoted. */
static const char *const j_base[][2] = {
	{"count", "-9223372036854775808"},
	{"big", "'18446744073709551615'"},
	{"ratio", "0.1"},
	{"flag", "true"},
	{"when", "1700000000123456789"},
	{"label", "'h\\u00e9llo \\'q\\''"},
	{"blob", "'00ff10AB'"},
	{"color", "'BLUE'"},
};
#define J_BASE_COUNT (sizeof(j_base) / sizeof(j_base[0]))

/* J's base object with @key set to @value (added if new; dropped if @value is NULL). */
static char *j_object(const char *key, const char *value)
{
	struct sbuf sb = {0};
	bool seen = false;
	sb_add(&sb, "{");
	const char *sep = "";
	for (size_t i = 0; i < J_BASE_COUNT; i++) {
		const char *v = j_base[i][1];
		if (key != NULL && strcmp(key, j_base[i][0]) == 0) {
			seen = true;
			v = value;
		}
		if (v == NULL)
			continue;
		sb_add(&sb, "%s'%s':%s", sep, j_base[i][0], v);
		sep = ",";
	}
	if (key != NULL && !seen && value != NULL)
		sb_add(&sb, "%s'%s':%s", sep, key, value);
	sb_add(&sb, "}");
	char *out = dq(sb.p);
	free(sb.p);
	return out;
}

static int j_encode(const struct rill_schema *s, const char *json, uint8_t *buf, uint32_t cap,
		    uint32_t *bytes, struct rill_schema_error *err)
{
	return rill_schema_json_encode(s, json, strlen(json), buf, cap, bytes, err);
}

static void test_json_round_trip(void **state)
{
	(void)state;
	struct rill_schema *s = parse_q(J_JSON);
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *buf = malloc(max);
	char *json = j_object(NULL, NULL);
	uint32_t bytes = 0;
	struct rill_schema_error err;
	err_reset(&err);
	int rc = j_encode(s, json, buf, max, &bytes, &err);
	if (rc != 0)
		fail_msg("encode %s: %d %s", json, rc, err.message);
	assert_string_equal(err.message, ERR_SENTINEL);
	assert_int_equal(rill_schema_validate(s, buf, bytes, NULL), 0);
	assert_true(rill_field_i64(buf, ref_of(s, "count")) == INT64_MIN);
	assert_true(rill_field_u64(buf, ref_of(s, "big")) == UINT64_MAX);
	assert_true(rill_field_f64(buf, ref_of(s, "ratio")) == 0.1);
	assert_true(rill_field_bool(buf, ref_of(s, "flag")));
	assert_int_equal(rill_field_i64(buf, ref_of(s, "when")), 1700000000123456789);
	assert_var(s, buf, "label", "h\xc3\xa9llo \"q\"");
	assert_true(var_is(s, buf, "blob", "\x00\xff\x10\xab", 4));
	assert_int_equal(rill_field_enum(buf, ref_of(s, "color")), 2);
	assert_int_equal(rill_field_i64(buf, ref_of(s, "fee")), 5);
	assert_var(s, buf, "note", "hi");
	assert_int_equal(rill_field_enum(buf, ref_of(s, "shade")), 1);

	char text[1024];
	size_t text_bytes = 0;
	rc = rill_schema_json_decode(s, buf, bytes, text, sizeof(text), &text_bytes, &err);
	if (rc != 0)
		fail_msg("decode: %d %s", rc, err.message);
	assert_int_equal(text_bytes, strlen(text));
	assert_null(strchr(text, '\n'));
	/* Fields in declared order. */
	const char *order[] = {
		"\"count\":", "\"big\":",   "\"ratio\":", "\"flag\":", "\"when\":", "\"label\":",
		"\"blob\":",  "\"color\":", "\"fee\":",   "\"note\":", "\"shade\":"};
	const char *last = text;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const char *at = strstr(text, order[i]);
		if (at == NULL || at < last)
			fail_msg("decode %s: %s missing or out of order", text, order[i]);
		last = at;
	}
	json_error_t jerr;
	json_t *root = json_loads(text, 0, &jerr);
	if (root == NULL)
		fail_msg("decode gave invalid JSON %s: %s", text, jerr.text);
	assert_true(json_is_object(root));
	assert_int_equal(json_object_size(root), 11);
	assert_true(json_integer_value(json_object_get(root, "count")) == INT64_MIN);
	assert_true(json_is_string(json_object_get(root, "big")));
	assert_string_equal(json_string_value(json_object_get(root, "big")),
			    "18446744073709551615");
	assert_true(json_is_real(json_object_get(root, "ratio")));
	assert_true(json_real_value(json_object_get(root, "ratio")) == 0.1);
	assert_true(json_is_true(json_object_get(root, "flag")));
	assert_true(json_is_integer(json_object_get(root, "when")));
	assert_true(json_integer_value(json_object_get(root, "when")) == 1700000000123456789);
	assert_string_equal(json_string_value(json_object_get(root, "label")),
			    "h\xc3\xa9llo \"q\"");
	assert_true(strcasecmp(json_string_value(json_object_get(root, "blob")), "00ff10ab") == 0);
	assert_string_equal(json_string_value(json_object_get(root, "color")), "BLUE");
	assert_true(json_integer_value(json_object_get(root, "fee")) == 5);
	assert_string_equal(json_string_value(json_object_get(root, "note")), "hi");
	assert_string_equal(json_string_value(json_object_get(root, "shade")), "B");
	json_decref(root);

	/* Decoded text encodes back to the very same bytes. */
	uint8_t *again = malloc(max);
	uint32_t again_bytes = 0;
	assert_int_equal(j_encode(s, text, again, max, &again_bytes, NULL), 0);
	assert_int_equal(again_bytes, bytes);
	assert_memory_equal(again, buf, bytes);

	/* The text buffer must hold the NUL too. */
	char *tight = malloc(text_bytes + 1);
	size_t tight_bytes = 0;
	assert_int_equal(
		rill_schema_json_decode(s, buf, bytes, tight, text_bytes + 1, &tight_bytes, NULL),
		0);
	assert_string_equal(tight, text);
	assert_int_equal(
		rill_schema_json_decode(s, buf, bytes, tight, text_bytes, &tight_bytes, NULL),
		-ENOSPC);
	assert_int_equal(rill_schema_json_decode(s, buf, bytes, tight, 1, &tight_bytes, NULL),
			 -ENOSPC);
	free(tight);
	/* A decode of a damaged payload is refused. */
	buf[4] = 1;
	assert_int_equal(
		rill_schema_json_decode(s, buf, bytes, text, sizeof(text), &text_bytes, NULL),
		RILL_E_PAYLOAD_INVALID);
	buf[4] = 0;
	/* An encode into a buffer too small. */
	uint8_t tiny[4];
	assert_int_equal(j_encode(s, json, tiny, sizeof(tiny), &again_bytes, NULL), -ENOSPC);
	free(json);

	/* Other accepted spellings: u64 as an integer, f64 as an integer, the boundaries. */
	static const char *const accepted[][3] = {
		{"big", "7", NULL},
		{"big", "9223372036854775807", NULL},
		{"big", "'9223372036854775808'", NULL},
		{"ratio", "3", NULL},
		{"ratio", "-1e300", NULL},
		{"count", "9223372036854775807", NULL},
		{"flag", "false", NULL},
		{"label", "''", NULL},
		{"label", "'0123456789abcdef'", NULL},
		{"blob", "''", NULL},
		{"blob", "'0011223344556677'", NULL},
		{"color", "'RED'", NULL},
		{"fee", "-1", NULL},
		{"note", "'12345678'", NULL},
		{"shade", "'A'", NULL},
		{"when", "-1", NULL},
	};
	for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
		json = j_object(accepted[i][0], accepted[i][1]);
		err_reset(&err);
		rc = j_encode(s, json, buf, max, &bytes, &err);
		if (rc != 0)
			fail_msg("encode %s: %d %s", json, rc, err.message);
		rc = rill_schema_json_decode(s, buf, bytes, text, sizeof(text), &text_bytes, &err);
		if (rc != 0)
			fail_msg("decode of %s: %d %s", json, rc, err.message);
		assert_int_equal(j_encode(s, text, again, max, &again_bytes, NULL), 0);
		assert_int_equal(again_bytes, bytes);
		assert_memory_equal(again, buf, bytes);
		free(json);
	}
	json = j_object("big", "'9223372036854775808'");
	assert_int_equal(j_encode(s, json, buf, max, &bytes, NULL), 0);
	assert_true(rill_field_u64(buf, ref_of(s, "big")) == 9223372036854775808ull);
	free(json);
	json = j_object("ratio", "3");
	assert_int_equal(j_encode(s, json, buf, max, &bytes, NULL), 0);
	assert_true(rill_field_f64(buf, ref_of(s, "ratio")) == 3.0);
	free(json);
	free(again);
	free(buf);
	rill_schema_free(s);
}

struct json_bad {
	const char *key;
	const char *value; /* NULL: the key left out */
	const char *needle;
};

static const struct json_bad json_bad_cases[] = {
	{"count", NULL, "count"},
	{"color", NULL, "color"},
	{"color", "'BLUE\\u0000junk'", "color"}, /* a symbol, then a NUL and more */
	{"bogus", "1", "bogus"},
	{"count", "'5'", "count"},
	{"count", "1.5", "count"},
	{"count", "1.0", "count"},
	{"count", "true", "count"},
	{"count", "null", "count"},
	{"count", "[1]", "count"},
	{"big", "-1", "big"},
	{"big", "'-1'", "big"},
	{"big", "'18446744073709551616'", "big"},
	{"big", "'99999999999999999999999'", "big"},
	{"big", "'12a'", "big"},
	{"big", "''", "big"},
	{"big", "1.0", "big"},
	{"ratio", "'1.5'", "ratio"},
	{"ratio", "true", "ratio"},
	{"ratio", "null", "ratio"},
	{"flag", "1", "flag"},
	{"flag", "'true'", "flag"},
	{"when", "1.5", "when"},
	{"when", "'2020-01-01'", "when"},
	{"label", "'0123456789abcdefg'", "label"},
	{"label", "'\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9'", "label"},
	{"label", "5", "label"},
	{"blob", "'zz'", "blob"},
	{"blob", "'abc'", "blob"},
	{"blob", "'0x00'", "blob"},
	{"blob", "'001122334455667788'", "blob"},
	{"blob", "12", "blob"},
	{"color", "'PURPLE'", "color"},
	{"color", "'blue'", "color"},
	{"color", "1", "color"},
	{"shade", "'C'", "shade"},
	{"note", "'123456789'", "note"},
	{"fee", "'5'", "fee"},
};

static void test_json_encode_errors(void **state)
{
	(void)state;
	struct rill_schema *s = parse_q(J_JSON);
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *buf = malloc(max);
	uint32_t bytes;
	struct rill_schema_error err;
	for (size_t i = 0; i < sizeof(json_bad_cases) / sizeof(json_bad_cases[0]); i++) {
		const struct json_bad *c = &json_bad_cases[i];
		char *json = j_object(c->key, c->value);
		err_reset(&err);
		int rc = j_encode(s, json, buf, max, &bytes, &err);
		if (rc != RILL_E_JSON_INVALID)
			fail_msg("encode %s: %d, expected RILL_E_JSON_INVALID", json, rc);
		char what[160];
		snprintf(what, sizeof(what), "encode %s", json);
		assert_mentions(&err, c->needle, what);
		free(json);
	}
	/* Not an object, or not JSON at all; numbers beyond what JSON parsing holds. */
	const char *texts[] = {
		"[1,2]",
		"5",
		"\"x\"",
		"null",
		"",
		"{\"count\": ",
		"{\"count\":1,}",
		"{\"count\":9223372036854775808}",
		"{\"ratio\":1e400}",
		"{\"label\":\"\xff\"}",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		err_reset(&err);
		int rc = rill_schema_json_encode(s, texts[i], strlen(texts[i]), buf, max, &bytes,
						 &err);
		if (rc != RILL_E_JSON_INVALID)
			fail_msg("encode '%s': %d, expected RILL_E_JSON_INVALID", texts[i], rc);
		assert_string_not_equal(err.message, ERR_SENTINEL);
	}
	free(buf);
	rill_schema_free(s);
}

/* Valid UTF-8 of up to @max bytes, with quotes, backslashes and control characters. */
static uint32_t random_utf8(struct test_rng *rng, char *out, uint32_t max)
{
	static const char *const pieces[] = {"a",
					     "Z",
					     "\"",
					     "\\",
					     "\x01",
					     "\x1f",
					     "\t",
					     "/",
					     "\x7f",
					     "\xc3\xa9",
					     "\xdf\xbf",
					     "\xe2\x82\xac",
					     "\xef\xbf\xbf",
					     "\xf0\x9f\x98\x80",
					     "\xf4\x8f\xbf\xbf"};
	uint32_t n = 0;
	uint32_t want = (uint32_t)test_rng_below(rng, max + 1);
	while (n < want) {
		const char *p = pieces[test_rng_below(rng, sizeof(pieces) / sizeof(pieces[0]))];
		uint32_t len = (uint32_t)strlen(p);
		if (n + len > max)
			break;
		memcpy(out + n, p, len);
		n += len;
	}
	return n;
}

static double random_f64(struct test_rng *rng)
{
	static const double specials[] = {0.0,      -0.0, DBL_MIN, -DBL_MAX,    DBL_MAX,
					  4.9e-324, 0.1,  1e21,    123456789.0, -2.5};
	if (test_rng_below(rng, 4) == 0)
		return specials[test_rng_below(rng, sizeof(specials) / sizeof(specials[0]))];
	for (;;) {
		uint64_t bits = test_rng_next(rng);
		double d;
		memcpy(&d, &bits, sizeof(d));
		if (isfinite(d))
			return d;
	}
}

/* A random payload of J built with the builder. */
static uint32_t random_j_payload(struct test_rng *rng, const struct rill_schema *s, uint8_t *buf,
				 uint32_t cap)
{
	struct rill_payload_builder b;
	char text[16];
	uint8_t raw[8];
	assert_int_equal(rill_payload_builder_init(&b, s, buf, cap), 0);
	uint64_t x = test_rng_next(rng);
	if (test_rng_below(rng, 8) == 0)
		x = test_rng_below(rng, 3) == 0 ? 0 : (uint64_t)INT64_MAX + test_rng_below(rng, 3);
	assert_int_equal(rill_payload_set_i64(&b, idx(s, "count"), (int64_t)x), 0);
	assert_int_equal(rill_payload_set_u64(&b, idx(s, "big"),
					      test_rng_next(rng) >> test_rng_below(rng, 64)),
			 0);
	assert_int_equal(rill_payload_set_f64(&b, idx(s, "ratio"), random_f64(rng)), 0);
	assert_int_equal(rill_payload_set_bool(&b, idx(s, "flag"), test_rng_below(rng, 2)), 0);
	assert_int_equal(rill_payload_set_i64(&b, idx(s, "when"), (int64_t)test_rng_next(rng)), 0);
	uint32_t n = random_utf8(rng, text, 16);
	assert_int_equal(rill_payload_set_var(&b, idx(s, "label"), text, n), 0);
	n = (uint32_t)test_rng_below(rng, 9);
	for (uint32_t i = 0; i < n; i++)
		raw[i] = (uint8_t)test_rng_next(rng);
	assert_int_equal(rill_payload_set_var(&b, idx(s, "blob"), raw, n), 0);
	assert_int_equal(
		rill_payload_set_enum(&b, idx(s, "color"), (uint16_t)test_rng_below(rng, 3)), 0);
	if (test_rng_below(rng, 2))
		assert_int_equal(
			rill_payload_set_i64(&b, idx(s, "fee"), (int64_t)test_rng_next(rng)), 0);
	if (test_rng_below(rng, 2)) {
		n = random_utf8(rng, text, 8);
		assert_int_equal(rill_payload_set_var(&b, idx(s, "note"), text, n), 0);
	}
	if (test_rng_below(rng, 2))
		assert_int_equal(rill_payload_set_enum(&b, idx(s, "shade"),
						       (uint16_t)test_rng_below(rng, 2)),
				 0);
	uint32_t bytes;
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
	return bytes;
}

/* Random payloads: decode, encode the text, get the very same bytes. */
static void test_json_random_round_trip(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 50);
	struct rill_schema *s = parse_q(J_JSON);
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *buf = malloc(max), *again = malloc(max);
	char text[2048];
	for (int i = 0; i < 3000; i++) {
		uint32_t bytes = random_j_payload(&rng, s, buf, max);
		assert_int_equal(rill_schema_validate(s, buf, bytes, NULL), 0);
		size_t text_bytes;
		struct rill_schema_error err;
		err_reset(&err);
		int rc = rill_schema_json_decode(s, buf, bytes, text, sizeof(text), &text_bytes,
						 &err);
		if (rc != 0)
			fail_msg("round %d: decode %d %s", i, rc, err.message);
		uint32_t again_bytes = 0;
		rc = j_encode(s, text, again, max, &again_bytes, &err);
		if (rc != 0)
			fail_msg("round %d: encode of decoded %s: %d %s", i, text, rc, err.message);
		if (again_bytes != bytes || memcmp(again, buf, bytes) != 0)
			fail_msg("round %d: %s does not encode back to the same payload", i, text);
	}
	free(buf);
	free(again);
	rill_schema_free(s);
}

/* ---- 6. Validator --------------------------------------------------------------------- */

#define V_JSON                                                                                     \
	"{'type':'V','version':1,'fields':[{'name':'flag','type':'bool'},"                         \
	"{'name':'color','type':'enum','symbols':['RED','GREEN','BLUE']},"                         \
	"{'name':'count','type':'i64'},{'name':'ratio','type':'f64'},"                             \
	"{'name':'label','type':'string','max_length':16},"                                        \
	"{'name':'blob','type':'bytes','max_length':8},"                                           \
	"{'name':'big','type':'u64'},{'name':'when','type':'timestamp'}]}"

/* V's layout, as the header's rules give it. */
enum {
	V_FLAG = 8,
	V_COLOR = 10,
	V_COUNT = 16,
	V_RATIO = 24,
	V_LABEL = 32,
	V_BLOB = 40,
	V_BIG = 48,
	V_WHEN = 56,
	V_BLOCK = 64,
};

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A V payload written by hand into @p (room for 64 + both values); returns its size. */
static uint32_t v_craft(uint8_t *p, const void *label, uint32_t label_bytes, const void *blob,
			uint32_t blob_bytes)
{
	memset(p, 0, V_BLOCK);
	put32(p, V_BLOCK);
	p[V_FLAG] = 1;
	p[V_COLOR] = 2;
	put64(p + V_COUNT, (uint64_t)-5);
	double ratio = 1.25;
	uint64_t bits;
	memcpy(&bits, &ratio, sizeof(bits));
	put64(p + V_RATIO, bits);
	put32(p + V_LABEL, V_BLOCK);
	put32(p + V_LABEL + 4, label_bytes);
	put32(p + V_BLOB, V_BLOCK + label_bytes);
	put32(p + V_BLOB + 4, blob_bytes);
	put64(p + V_BIG, UINT64_MAX - 1);
	put64(p + V_WHEN, 1234567890123456789ull);
	memcpy(p + V_BLOCK, label, label_bytes);
	memcpy(p + V_BLOCK + label_bytes, blob, blob_bytes);
	return V_BLOCK + label_bytes + blob_bytes;
}

static bool utf8_valid(const uint8_t *p, uint32_t n)
{
	uint32_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		uint32_t len, cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2, cp = c & 0x1fu, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, cp = c & 0x0fu, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, cp = c & 0x07u, min = 0x10000;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (uint32_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* The header's validation rules, written out plainly, for any schema. */
static bool ref_validate(const struct rill_schema *s, const uint8_t *p, uint32_t n)
{
	static uint8_t covered[8 + 8 * RILL_SCHEMA_FIELDS_MAX];
	uint32_t block = rill_schema_block_bytes(s);
	if (n < 8 || get32(p) != block || get32(p + 4) != 0 || n < block)
		return false;
	memset(covered, 0, block);
	uint32_t cursor = block;
	for (uint32_t i = 0; i < rill_schema_field_count(s); i++) {
		const struct rill_schema_field_info *f = rill_schema_field(s, i);
		const uint8_t *v = p + f->offset;
		uint32_t size = 8;
		double d;
		switch (f->type) {
		case RILL_FIELD_BOOL:
			size = 1;
			if (*v > 1)
				return false;
			break;
		case RILL_FIELD_ENUM:
			size = 2;
			if (get16(v) >= f->symbol_count)
				return false;
			break;
		case RILL_FIELD_F64:
			memcpy(&d, v, sizeof(d));
			if (!isfinite(d))
				return false;
			break;
		case RILL_FIELD_STRING:
		case RILL_FIELD_BYTES: {
			uint32_t off = get32(v), len = get32(v + 4);
			if (off != cursor || len > f->max_length || len > n - cursor)
				return false;
			if (f->type == RILL_FIELD_STRING && !utf8_valid(p + off, len))
				return false;
			cursor += len;
			break;
		}
		default:
			break;
		}
		memset(covered + f->offset, 1, size);
	}
	if (cursor != n)
		return false;
	for (uint32_t i = 8; i < block; i++)
		if (covered[i] == 0 && p[i] != 0)
			return false;
	return true;
}

static void expect_payload_invalid(const struct rill_schema *s, const uint8_t *p, uint32_t n,
				   const char *needle, const char *name)
{
	uint8_t *c = exact_copy(p, n);
	struct rill_schema_error err;
	err_reset(&err);
	int rc = rill_schema_validate(s, c, n, &err);
	if (rc != RILL_E_PAYLOAD_INVALID)
		fail_msg("%s: validate returned %d, expected RILL_E_PAYLOAD_INVALID", name, rc);
	if (strcmp(err.message, ERR_SENTINEL) == 0)
		fail_msg("%s: no message", name);
	if (needle != NULL)
		assert_mentions(&err, needle, name);
	assert_false(ref_validate(s, c, n));
	free(c);
}

static void expect_payload_valid(const struct rill_schema *s, const uint8_t *p, uint32_t n,
				 const char *name)
{
	uint8_t *c = exact_copy(p, n);
	struct rill_schema_error err;
	err_reset(&err);
	int rc = rill_schema_validate(s, c, n, &err);
	if (rc != 0)
		fail_msg("%s: validate refused: %d %s", name, rc, err.message);
	assert_string_equal(err.message, ERR_SENTINEL);
	assert_true(ref_validate(s, c, n));
	free(c);
}

static void test_validate_corruptions(void **state)
{
	(void)state;
	struct rill_schema *s = parse_q(V_JSON);
	assert_int_equal(rill_schema_block_bytes(s), V_BLOCK);
	uint8_t good[128], p[128];
	uint32_t n = v_craft(good, "hello", 5, "\x01\x02\x03", 3);
	assert_int_equal(n, 72);
	expect_payload_valid(s, good, n, "hand-made payload");

	/* The builder writes the very same bytes. */
	uint8_t *built = malloc(rill_schema_payload_bytes_max(s));
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, s, built, rill_schema_payload_bytes_max(s)),
			 0);
	assert_int_equal(rill_payload_set_bool(&b, idx(s, "flag"), true), 0);
	assert_int_equal(rill_payload_set_enum(&b, idx(s, "color"), 2), 0);
	assert_int_equal(rill_payload_set_i64(&b, idx(s, "count"), -5), 0);
	assert_int_equal(rill_payload_set_f64(&b, idx(s, "ratio"), 1.25), 0);
	assert_int_equal(rill_payload_set_var(&b, idx(s, "blob"), "\x01\x02\x03", 3), 0);
	assert_int_equal(rill_payload_set_var(&b, idx(s, "label"), "hello", 5), 0);
	assert_int_equal(rill_payload_set_u64(&b, idx(s, "big"), UINT64_MAX - 1), 0);
	assert_int_equal(rill_payload_set_i64(&b, idx(s, "when"), 1234567890123456789), 0);
	uint32_t built_bytes;
	assert_int_equal(rill_payload_builder_finish(&b, &built_bytes, NULL), 0);
	assert_int_equal(built_bytes, n);
	assert_memory_equal(built, good, n);
	free(built);

#define CORRUPT(name, needle, len, edit)                                                           \
	do {                                                                                       \
		memcpy(p, good, sizeof(good));                                                     \
		edit;                                                                              \
		expect_payload_invalid(s, p, len, needle, name);                                   \
	} while (0)
	double nan_ = NAN, inf = INFINITY, ninf = -INFINITY;
	CORRUPT("empty", NULL, 0, (void)0);
	CORRUPT("4 bytes", NULL, 4, (void)0);
	CORRUPT("7 bytes", NULL, 7, (void)0);
	CORRUPT("shorter than the block", NULL, 40, (void)0);
	CORRUPT("block 56", NULL, n, put32(p, 56));
	CORRUPT("block 72", NULL, n, put32(p, 72));
	CORRUPT("block 65", NULL, n, put32(p, 65));
	CORRUPT("block 0", NULL, n, put32(p, 0));
	CORRUPT("block huge", NULL, n, put32(p, 0xffffffffu));
	CORRUPT("reserved low", NULL, n, p[4] = 1);
	CORRUPT("reserved high", NULL, n, p[7] = 0x80);
	CORRUPT("padding after bool", NULL, n, p[9] = 1);
	CORRUPT("padding after enum", NULL, n, p[12] = 1);
	CORRUPT("padding end", NULL, n, p[15] = 0x40);
	CORRUPT("bool 2", "flag", n, p[V_FLAG] = 2);
	CORRUPT("bool 255", "flag", n, p[V_FLAG] = 0xff);
	CORRUPT("enum 3", "color", n, p[V_COLOR] = 3);
	CORRUPT("enum 0xffff", "color", n, (p[V_COLOR] = 0xff, p[V_COLOR + 1] = 0xff));
	CORRUPT("f64 NaN", "ratio", n, memcpy(p + V_RATIO, &nan_, 8));
	CORRUPT("f64 +inf", "ratio", n, memcpy(p + V_RATIO, &inf, 8));
	CORRUPT("f64 -inf", "ratio", n, memcpy(p + V_RATIO, &ninf, 8));
	CORRUPT("string offset outside", "label", n, put32(p + V_LABEL, 1000));
	CORRUPT("string length outside", "label|blob", n, put32(p + V_LABEL + 4, 100));
	CORRUPT("string offset wraps", "label|blob", n,
		(put32(p + V_LABEL, 0xfffffff0u), put32(p + V_LABEL + 4, 0x20)));
	CORRUPT("string in the block", "label|blob", n, put32(p + V_LABEL, 8));
	CORRUPT("bytes offset outside", "blob", n, put32(p + V_BLOB, 0x7fffffffu));
	CORRUPT("bytes length outside", "blob", n, put32(p + V_BLOB + 4, 4));
	CORRUPT("gap before the first value", "label|blob", n,
		(put32(p + V_LABEL, 65), put32(p + V_LABEL + 4, 4)));
	CORRUPT("overlap", "label|blob", n - 1, put32(p + V_BLOB, 68));
	CORRUPT("values out of field order", "label|blob", n,
		(put32(p + V_LABEL, 67), put32(p + V_BLOB, 64)));
	CORRUPT("byte after the tail", NULL, n + 1, p[n] = 0);
	CORRUPT("tail cut short", NULL, n - 1, (void)0);
	CORRUPT("block only", NULL, V_BLOCK, (void)0);
#undef CORRUPT

	/* Over max_length, and strings that are not UTF-8. */
	n = v_craft(p, "0123456789abcdefg", 17, "", 0);
	expect_payload_invalid(s, p, n, "label", "string over max_length");
	n = v_craft(p, "", 0, "012345678", 9);
	expect_payload_invalid(s, p, n, "blob", "bytes over max_length");
	static const char *const not_utf8[] = {
		"\xff",
		"\x80",
		"\xc3",
		"\xc0\x80",
		"\xc1\xbf",
		"\xe0\x80\x80",
		"\xed\xa0\x80",
		"ab\xe2\x82",
		"\xf4\x90\x80\x80",
		"\xf8\x88\x80\x80\x80",
		"\xe2\x28\xa1",
		"\xf0\x9f\x98",
	};
	for (size_t i = 0; i < sizeof(not_utf8) / sizeof(not_utf8[0]); i++) {
		char name[48];
		snprintf(name, sizeof(name), "not UTF-8 #%zu", i);
		n = v_craft(p, not_utf8[i], (uint32_t)strlen(not_utf8[i]), "", 0);
		expect_payload_invalid(s, p, n, "label", name);
	}
	static const char *const utf8[] = {"",
					   "h\xc3\xa9",
					   "\xf0\x9f\x98\x80",
					   "\xef\xbf\xbf",
					   "\xf4\x8f\xbf\xbf",
					   "\xe2\x82\xac\x7f"};
	for (size_t i = 0; i < sizeof(utf8) / sizeof(utf8[0]); i++) {
		n = v_craft(p, utf8[i], (uint32_t)strlen(utf8[i]), "\xff\xfe\x00", 3);
		expect_payload_valid(s, p, n, utf8[i]);
	}
	n = v_craft(p, "0123456789abcdef", 16, "01234567", 8);
	assert_int_equal(n, rill_schema_payload_bytes_max(s));
	expect_payload_valid(s, p, n, "both at max_length");
	rill_schema_free(s);
}

static void dump_hex(struct sbuf *sb, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		sb_add(sb, "%02x%s", p[i], i % 16 == 15 ? "\n" : " ");
}

/* A random valid V payload. */
static uint32_t random_v_payload(struct test_rng *rng, const struct rill_schema *s, uint8_t *buf,
				 uint32_t cap)
{
	struct rill_payload_builder b;
	char text[16];
	uint8_t raw[8];
	assert_int_equal(rill_payload_builder_init(&b, s, buf, cap), 0);
	assert_int_equal(rill_payload_set_bool(&b, 0, test_rng_below(rng, 2)), 0);
	assert_int_equal(rill_payload_set_enum(&b, 1, (uint16_t)test_rng_below(rng, 3)), 0);
	assert_int_equal(rill_payload_set_i64(&b, 2, (int64_t)test_rng_next(rng)), 0);
	assert_int_equal(rill_payload_set_f64(&b, 3, random_f64(rng)), 0);
	uint32_t n = random_utf8(rng, text, 16);
	assert_int_equal(rill_payload_set_var(&b, 4, text, n), 0);
	n = (uint32_t)test_rng_below(rng, 9);
	for (uint32_t i = 0; i < n; i++)
		raw[i] = (uint8_t)test_rng_next(rng);
	assert_int_equal(rill_payload_set_var(&b, 5, raw, n), 0);
	assert_int_equal(rill_payload_set_u64(&b, 6, test_rng_next(rng)), 0);
	assert_int_equal(rill_payload_set_i64(&b, 7, (int64_t)test_rng_next(rng)), 0);
	uint32_t bytes;
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
	return bytes;
}

/*
 * Flip bytes of valid payloads, sometimes change their length: the validator must agree
 * with the reference, and what it accepts must decode to JSON.
 */
static void test_validate_random_mutations(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 60);
	struct rill_schema *s = parse_q(V_JSON);
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *base = malloc(max);
	uint8_t work[256];
	char text[1024];
	uint64_t rounds = test_env_u64("RILL_SCHEMA_MUTATIONS", 50000), accepted = 0;
	uint32_t base_bytes = 0;
	for (uint64_t i = 0; i < rounds; i++) {
		if (i % 64 == 0)
			base_bytes = random_v_payload(&rng, s, base, max);
		uint32_t n = base_bytes;
		memcpy(work, base, n);
		uint32_t changes = 1 + (uint32_t)test_rng_below(&rng, 3);
		for (uint32_t k = 0; k < changes; k++) {
			uint32_t at = test_rng_below(&rng, 4) != 0
					      ? (uint32_t)test_rng_below(&rng, 64)
					      : (uint32_t)test_rng_below(&rng, n);
			switch (test_rng_below(&rng, 4)) {
			case 0:
				work[at] = (uint8_t)test_rng_next(&rng);
				break;
			case 1:
				work[at] = (uint8_t)(work[at] + 1);
				break;
			case 2:
				work[at] = (uint8_t)(work[at] - 1);
				break;
			default:
				work[at] ^= (uint8_t)(1u << test_rng_below(&rng, 8));
				break;
			}
		}
		if (test_rng_below(&rng, 10) == 0) {
			if (test_rng_below(&rng, 2) == 0 && n > 3)
				n -= 1 + (uint32_t)test_rng_below(&rng, 3);
			else
				work[n++] = (uint8_t)test_rng_below(&rng, 2);
		}
		uint8_t *c = exact_copy(work, n);
		struct rill_schema_error err;
		err_reset(&err);
		int rc = rill_schema_validate(s, c, n, &err);
		bool want = ref_validate(s, c, n);
		if ((rc == 0) != want || (rc != 0 && rc != RILL_E_PAYLOAD_INVALID)) {
			struct sbuf sb = {0};
			dump_hex(&sb, c, n);
			fail_msg("mutation %llu: validate %d (%s), the reference %s; %u bytes:\n%s",
				 (unsigned long long)i, rc, rc == 0 ? "accepted" : err.message,
				 want ? "accepts" : "refuses", n, sb.p);
		}
		if (rc == 0) {
			accepted++;
			size_t text_bytes;
			rc = rill_schema_json_decode(s, c, n, text, sizeof(text), &text_bytes,
						     &err);
			if (rc != 0)
				fail_msg("mutation %llu: accepted but decode %d %s",
					 (unsigned long long)i, rc, err.message);
		}
		free(c);
	}
	print_message("%llu mutations, %llu accepted\n", (unsigned long long)rounds,
		      (unsigned long long)accepted);
	free(base);
	rill_schema_free(s);
}

/*
 * Random schemas: the layout follows the header's rules (computed here independently), and
 * random payloads of each round-trip through JSON and agree with the reference validator
 * under mutation.
 */
struct rand_schema {
	struct sbuf json;
	uint32_t offset[64];
	uint32_t block_bytes;
	uint32_t payload_bytes_max;
	uint32_t count;
};

static void random_schema(struct test_rng *rng, struct rand_schema *rs)
{
	static const char *const types[] = {"i64",       "u64",    "f64",   "bool",
					    "timestamp", "string", "bytes", "enum"};
	static const uint32_t align[] = {8, 8, 8, 1, 8, 4, 4, 2};
	static const uint32_t size[] = {8, 8, 8, 1, 8, 8, 8, 2};
	memset(rs, 0, sizeof(*rs));
	rs->count = (uint32_t)test_rng_below(rng, 41);
	sb_add(&rs->json, "{'type':'R','version':1,'fields':[");
	uint32_t at = 8, tail = 0;
	for (uint32_t i = 0; i < rs->count; i++) {
		uint32_t t = (uint32_t)test_rng_below(rng, 8);
		at = (at + align[t] - 1) / align[t] * align[t];
		rs->offset[i] = at;
		at += size[t];
		bool dflt = test_rng_below(rng, 3) == 0;
		sb_add(&rs->json, "%s{'name':'f%u','type':'%s'", i > 0 ? "," : "", i, types[t]);
		if (t == 5 || t == 6) {
			uint32_t max = 1 + (uint32_t)test_rng_below(rng, 40);
			tail += max;
			sb_add(&rs->json, ",'max_length':%u", max);
			if (dflt)
				sb_add(&rs->json, ",'default':'%s'", t == 5 ? "d" : "0a");
		} else if (t == 7) {
			uint32_t n = 1 + (uint32_t)test_rng_below(rng, 5);
			sb_add(&rs->json, ",'symbols':[");
			for (uint32_t k = 0; k < n; k++)
				sb_add(&rs->json, "%s'S%u'", k > 0 ? "," : "", k);
			sb_add(&rs->json, "]");
			if (dflt)
				sb_add(&rs->json, ",'default':'S%u'", n - 1);
		} else if (dflt) {
			sb_add(&rs->json, ",'default':%s", t == 3 ? "true" : t == 2 ? "0.5" : "1");
		}
		sb_add(&rs->json, "}");
	}
	sb_add(&rs->json, "]}");
	rs->block_bytes = (at + 7) / 8 * 8;
	rs->payload_bytes_max = rs->block_bytes + tail;
}

/* Set each field of @s at random (every required one); returns the payload's size. */
static uint32_t random_payload(struct test_rng *rng, const struct rill_schema *s, uint8_t *buf,
			       uint32_t cap)
{
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, s, buf, cap), 0);
	char text[64];
	for (uint32_t i = 0; i < rill_schema_field_count(s); i++) {
		const struct rill_schema_field_info *f = rill_schema_field(s, i);
		if (f->has_default && test_rng_below(rng, 2) == 0)
			continue;
		int rc = 0;
		uint32_t n;
		switch (f->type) {
		case RILL_FIELD_I64:
		case RILL_FIELD_TIMESTAMP:
			rc = rill_payload_set_i64(&b, i, (int64_t)test_rng_next(rng));
			break;
		case RILL_FIELD_U64:
			rc = rill_payload_set_u64(&b, i, test_rng_next(rng));
			break;
		case RILL_FIELD_F64:
			rc = rill_payload_set_f64(&b, i, random_f64(rng));
			break;
		case RILL_FIELD_BOOL:
			rc = rill_payload_set_bool(&b, i, test_rng_below(rng, 2));
			break;
		case RILL_FIELD_ENUM:
			rc = rill_payload_set_enum(&b, i,
						   (uint16_t)test_rng_below(rng, f->symbol_count));
			break;
		case RILL_FIELD_STRING:
			n = random_utf8(rng, text, f->max_length);
			rc = rill_payload_set_var(&b, i, text, n);
			break;
		case RILL_FIELD_BYTES:
			n = (uint32_t)test_rng_below(rng, f->max_length + 1);
			for (uint32_t k = 0; k < n; k++)
				text[k] = (char)test_rng_next(rng);
			rc = rill_payload_set_var(&b, i, text, n);
			break;
		}
		assert_int_equal(rc, 0);
	}
	uint32_t bytes;
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
	return bytes;
}

static void test_random_schemas(void **state)
{
	(void)state;
	struct test_rng rng;
	test_rng_init(&rng, 70);
	static char text[16384];
	for (int round = 0; round < 300; round++) {
		struct rand_schema rs;
		random_schema(&rng, &rs);
		struct rill_schema *s = parse_q(rs.json.p);
		assert_int_equal(rill_schema_field_count(s), rs.count);
		for (uint32_t i = 0; i < rs.count; i++)
			if (rill_schema_field(s, i)->offset != rs.offset[i])
				fail_msg("%s: field %u at %u, expected %u", rs.json.p, i,
					 rill_schema_field(s, i)->offset, rs.offset[i]);
		if (rill_schema_block_bytes(s) != rs.block_bytes ||
		    rill_schema_payload_bytes_max(s) != rs.payload_bytes_max)
			fail_msg("%s: block %u max %u, expected %u and %u", rs.json.p,
				 rill_schema_block_bytes(s), rill_schema_payload_bytes_max(s),
				 rs.block_bytes, rs.payload_bytes_max);
		uint32_t max = rill_schema_payload_bytes_max(s);
		uint8_t *buf = malloc(max), *again = malloc(max);
		for (int k = 0; k < 20; k++) {
			memset(buf, (int)test_rng_next(&rng), max);
			uint32_t bytes = random_payload(&rng, s, buf, max);
			expect_payload_valid(s, buf, bytes, rs.json.p);
			size_t text_bytes;
			struct rill_schema_error err;
			err_reset(&err);
			int rc = rill_schema_json_decode(s, buf, bytes, text, sizeof(text),
							 &text_bytes, &err);
			if (rc != 0)
				fail_msg("%s: decode %d %s", rs.json.p, rc, err.message);
			uint32_t again_bytes;
			rc = j_encode(s, text, again, max, &again_bytes, &err);
			if (rc != 0 || again_bytes != bytes || memcmp(again, buf, bytes) != 0)
				fail_msg("%s: %s does not encode back (%d %s)", rs.json.p, text, rc,
					 rc != 0 ? err.message : "other bytes");
			/* A few mutations, judged against the reference. */
			for (int m = 0; m < 20; m++) {
				uint8_t *c = exact_copy(buf, bytes);
				uint32_t at = (uint32_t)test_rng_below(&rng, bytes);
				c[at] ^= (uint8_t)(1u << test_rng_below(&rng, 8));
				bool want = ref_validate(s, c, bytes);
				rc = rill_schema_validate(s, c, bytes, NULL);
				if ((rc == 0) != want)
					fail_msg("%s: flip of byte %u: validate %d, reference %s",
						 rs.json.p, at, rc, want ? "accepts" : "refuses");
				free(c);
			}
		}
		free(buf);
		free(again);
		free(rs.json.p);
		rill_schema_free(s);
	}
}

/* ---- 7. Builder ----------------------------------------------------------------------- */

static void test_builder_errors(void **state)
{
	(void)state;
	struct rill_schema *s = parse_q(V_JSON);
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *buf = malloc(max);
	struct rill_payload_builder b;
	assert_int_equal(rill_payload_builder_init(&b, s, buf, max - 1), -ENOSPC);
	assert_int_equal(rill_payload_builder_init(&b, s, buf, 0), -ENOSPC);
	assert_int_equal(rill_payload_builder_init(&b, s, buf, max), 0);

	uint32_t flag = idx(s, "flag"), color = idx(s, "color"), count = idx(s, "count");
	uint32_t ratio = idx(s, "ratio"), label = idx(s, "label"), blob = idx(s, "blob");
	uint32_t big = idx(s, "big"), when = idx(s, "when");
	/* Wrong type or no such field. */
	assert_int_equal(rill_payload_set_i64(&b, flag, 1), -EINVAL);
	assert_int_equal(rill_payload_set_i64(&b, 999, 1), -EINVAL);
	assert_int_equal(rill_payload_set_i64(&b, rill_schema_field_count(s), 1), -EINVAL);
	assert_int_equal(rill_payload_set_i64(&b, big, 1), -EINVAL);
	assert_int_equal(rill_payload_set_i64(&b, ratio, 1), -EINVAL);
	assert_int_equal(rill_payload_set_u64(&b, count, 1), -EINVAL);
	assert_int_equal(rill_payload_set_u64(&b, when, 1), -EINVAL);
	assert_int_equal(rill_payload_set_u64(&b, 999, 1), -EINVAL);
	assert_int_equal(rill_payload_set_f64(&b, count, 1.0), -EINVAL);
	assert_int_equal(rill_payload_set_f64(&b, 999, 1.0), -EINVAL);
	assert_int_equal(rill_payload_set_bool(&b, color, true), -EINVAL);
	assert_int_equal(rill_payload_set_bool(&b, 999, true), -EINVAL);
	assert_int_equal(rill_payload_set_enum(&b, count, 0), -EINVAL);
	assert_int_equal(rill_payload_set_enum(&b, flag, 0), -EINVAL);
	assert_int_equal(rill_payload_set_enum(&b, 999, 0), -EINVAL);
	assert_int_equal(rill_payload_set_var(&b, count, "x", 1), -EINVAL);
	assert_int_equal(rill_payload_set_var(&b, 999, "x", 1), -EINVAL);
	/* Too long, out of domain. */
	assert_int_equal(rill_payload_set_var(&b, label, "ok", 2), 0);
	assert_int_equal(rill_payload_set_var(&b, label, "0123456789abcdefg", 17), -EMSGSIZE);
	assert_int_equal(rill_payload_set_var(&b, blob, "012345678", 9), -EMSGSIZE);
	assert_int_equal(rill_payload_set_f64(&b, ratio, NAN), -EDOM);
	assert_int_equal(rill_payload_set_f64(&b, ratio, INFINITY), -EDOM);
	assert_int_equal(rill_payload_set_f64(&b, ratio, -INFINITY), -EDOM);
	assert_int_equal(rill_payload_set_enum(&b, color, 3), -EDOM);
	assert_int_equal(rill_payload_set_enum(&b, color, 0xffff), -EDOM);
	assert_int_equal(rill_payload_set_var(&b, label, "\xff", 1), -EDOM);
	assert_int_equal(rill_payload_set_var(&b, label, "\xc0\x80", 2), -EDOM);
	assert_int_equal(rill_payload_set_var(&b, label, "\xed\xa0\x80", 3), -EDOM);
	assert_int_equal(rill_payload_set_var(&b, blob, "\xff\xfe", 2), 0);
	assert_int_equal(rill_payload_set_i64(&b, when, -7), 0);

	/* Fields without a default never set: finish names one. */
	assert_int_equal(rill_payload_set_bool(&b, flag, true), 0);
	assert_int_equal(rill_payload_set_enum(&b, color, 1), 0);
	assert_int_equal(rill_payload_set_f64(&b, ratio, 0.5), 0);
	assert_int_equal(rill_payload_set_u64(&b, big, 9), 0);
	uint32_t bytes = 0;
	struct rill_schema_error err;
	err_reset(&err);
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, &err), RILL_E_PAYLOAD_INVALID);
	assert_mentions(&err, "count", "finish without count");
	/* Set it; the refused setters left the earlier values. */
	assert_int_equal(rill_payload_set_i64(&b, count, 3), 0);
	err_reset(&err);
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, &err), 0);
	assert_string_equal(err.message, ERR_SENTINEL);
	assert_int_equal(bytes, V_BLOCK + 2 + 2);
	assert_int_equal(rill_schema_validate(s, buf, bytes, NULL), 0);
	assert_var(s, buf, "label", "ok");
	assert_true(var_is(s, buf, "blob", "\xff\xfe", 2));
	assert_int_equal(rill_field_enum(buf, ref_of(s, "color")), 1);
	assert_true(rill_field_f64(buf, ref_of(s, "ratio")) == 0.5);
	assert_int_equal(rill_field_i64(buf, ref_of(s, "when")), -7);

	/* Nothing set at all: a field is named. */
	assert_int_equal(rill_payload_builder_init(&b, s, buf, max), 0);
	err_reset(&err);
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, &err), RILL_E_PAYLOAD_INVALID);
	assert_mentions(&err, "flag|color|count|ratio|label|blob|big|when", "empty finish");
	free(buf);
	rill_schema_free(s);
}

static void set_all_v(struct rill_payload_builder *b)
{
	assert_int_equal(rill_payload_set_bool(b, 0, false), 0);
	assert_int_equal(rill_payload_set_enum(b, 1, 0), 0);
	assert_int_equal(rill_payload_set_i64(b, 2, 0), 0);
	assert_int_equal(rill_payload_set_f64(b, 3, 0.0), 0);
	assert_int_equal(rill_payload_set_u64(b, 6, 0), 0);
	assert_int_equal(rill_payload_set_i64(b, 7, 0), 0);
}

static void test_builder_overwrite(void **state)
{
	(void)state;
	struct rill_schema *s = parse_q(V_JSON);
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *buf = malloc(max);
	memset(buf, 0xaa, max);
	struct rill_payload_builder b;
	uint32_t bytes;

	/* Longer, then shorter: the tail is compact and in field order. */
	assert_int_equal(rill_payload_builder_init(&b, s, buf, max), 0);
	set_all_v(&b);
	assert_int_equal(rill_payload_set_var(&b, 4, "hello world", 11), 0);
	assert_int_equal(rill_payload_set_var(&b, 5, "abc", 3), 0);
	assert_int_equal(rill_payload_set_var(&b, 4, "hi", 2), 0);
	assert_int_equal(rill_payload_set_bool(&b, 0, true), 0); /* overwrite a fixed field */
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
	assert_int_equal(bytes, V_BLOCK + 2 + 3);
	expect_payload_valid(s, buf, bytes, "overwritten shorter");
	assert_int_equal(get32(buf + V_LABEL), V_BLOCK);
	assert_int_equal(get32(buf + V_LABEL + 4), 2);
	assert_int_equal(get32(buf + V_BLOB), V_BLOCK + 2);
	assert_memory_equal(buf + V_BLOCK, "hiabc", 5);
	assert_true(rill_field_bool(buf, ref_of(s, "flag")));

	/* Shorter, then longer; bytes set before the string. */
	memset(buf, 0x55, max);
	assert_int_equal(rill_payload_builder_init(&b, s, buf, max), 0);
	set_all_v(&b);
	assert_int_equal(rill_payload_set_var(&b, 5, "xy", 2), 0);
	assert_int_equal(rill_payload_set_var(&b, 4, "a", 1), 0);
	assert_int_equal(rill_payload_set_var(&b, 4, "0123456789abcdef", 16), 0);
	assert_int_equal(rill_payload_set_var(&b, 5, "", 0), 0);
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
	assert_int_equal(bytes, V_BLOCK + 16);
	expect_payload_valid(s, buf, bytes, "overwritten longer");
	assert_var(s, buf, "label", "0123456789abcdef");
	assert_true(var_is(s, buf, "blob", "", 0));

	/* Both at max_length: exactly payload_bytes_max, in a buffer of that size. */
	assert_int_equal(rill_payload_builder_init(&b, s, buf, max), 0);
	set_all_v(&b);
	assert_int_equal(rill_payload_set_var(&b, 4, "0123456789abcdef", 16), 0);
	assert_int_equal(rill_payload_set_var(&b, 5, "01234567", 8), 0);
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
	assert_int_equal(bytes, max);
	expect_payload_valid(s, buf, bytes, "at max");
	free(buf);
	rill_schema_free(s);
}

#define D_JSON                                                                                     \
	"{'type':'D','version':1,'fields':[{'name':'a','type':'i64','default':3},"                 \
	"{'name':'s','type':'string','max_length':8,'default':'dflt'},"                            \
	"{'name':'e','type':'enum','symbols':['X','Y'],'default':'Y'},"                            \
	"{'name':'b','type':'bool','default':true},{'name':'f','type':'f64','default':1.5},"       \
	"{'name':'y','type':'bytes','max_length':4,'default':'beef'},"                             \
	"{'name':'u','type':'u64','default':9},"                                                   \
	"{'name':'t','type':'timestamp','default':-2}]}"

static void test_builder_defaults(void **state)
{
	(void)state;
	struct rill_schema *s = parse_q(D_JSON);
	uint32_t max = rill_schema_payload_bytes_max(s);
	uint8_t *buf = malloc(max);
	memset(buf, 0xcc, max);
	struct rill_payload_builder b;
	uint32_t bytes;
	assert_int_equal(rill_payload_builder_init(&b, s, buf, max), 0);
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
	uint32_t block = rill_schema_block_bytes(s);
	assert_int_equal(bytes, block + 4 + 2);
	expect_payload_valid(s, buf, bytes, "all defaults");
	assert_int_equal(rill_field_i64(buf, ref_of(s, "a")), 3);
	assert_var(s, buf, "s", "dflt");
	assert_int_equal(rill_field_enum(buf, ref_of(s, "e")), 1);
	assert_true(rill_field_bool(buf, ref_of(s, "b")));
	assert_true(rill_field_f64(buf, ref_of(s, "f")) == 1.5);
	assert_true(var_is(s, buf, "y", "\xbe\xef", 2));
	assert_true(rill_field_u64(buf, ref_of(s, "u")) == 9);
	assert_int_equal(rill_field_i64(buf, ref_of(s, "t")), -2);
	char text[256];
	size_t text_bytes;
	assert_int_equal(
		rill_schema_json_decode(s, buf, bytes, text, sizeof(text), &text_bytes, NULL), 0);
	/* An empty JSON object encodes to the same payload. */
	uint8_t *enc = malloc(max);
	uint32_t enc_bytes;
	assert_int_equal(rill_schema_json_encode(s, "{}", 2, enc, max, &enc_bytes, NULL), 0);
	assert_int_equal(enc_bytes, bytes);
	assert_memory_equal(enc, buf, bytes);

	/* A default overwritten with an empty value shrinks the tail. */
	assert_int_equal(rill_payload_builder_init(&b, s, buf, max), 0);
	assert_int_equal(rill_payload_set_var(&b, idx(s, "s"), "", 0), 0);
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
	assert_int_equal(bytes, block + 2);
	expect_payload_valid(s, buf, bytes, "empty string over the default");
	assert_true(var_is(s, buf, "y", "\xbe\xef", 2));
	free(enc);
	free(buf);
	rill_schema_free(s);
}

/* ---- Review findings ------------------------------------------------------------------ */

/*
 * The registry stores a definition's canonical text and parses it again at open, so the
 * canonical form must fit the definition limit too: f64 defaults grow when written back
 * ("1e300" becomes "1.0000000000000001e+300"). A definition just under the limit whose
 * canonical form is over it is refused at parse, not accepted and left unloadable.
 */
static void test_canonical_form_within_limit(void **state)
{
	(void)state;
	size_t cap = RILL_SCHEMA_JSON_BYTES_MAX + 4096;
	char *json = malloc(cap);
	assert_non_null(json);
	size_t n = (size_t)snprintf(json, cap, "{\"type\":\"Big\",\"version\":1,\"fields\":[");
	unsigned fields = 64;
	size_t doc_bytes = (RILL_SCHEMA_JSON_BYTES_MAX - 200) / fields - 64;
	assert_true(doc_bytes <= RILL_SCHEMA_DOC_BYTES_MAX);
	for (unsigned i = 0; i < fields; i++) {
		n += (size_t)snprintf(json + n, cap - n,
				      "%s{\"name\":\"f%03u\",\"type\":\"f64\",\"default\":1e300,"
				      "\"doc\":\"",
				      i ? "," : "", i);
		memset(json + n, 'd', doc_bytes);
		n += doc_bytes;
		n += (size_t)snprintf(json + n, cap - n, "\"}");
	}
	n += (size_t)snprintf(json + n, cap - n, "]}");
	assert_true(n <= RILL_SCHEMA_JSON_BYTES_MAX);
	struct rill_schema *s = NULL;
	struct rill_schema_error err = {{0}};
	int rc = rill_schema_parse(&s, json, n, &err);
	assert_int_equal(rc, RILL_E_SCHEMA_INVALID);
	assert_non_null(strstr(err.message, "canonical"));
	free(json);
}

/* Decode's -ENOSPC says how much it needs, so a caller can grow its buffer and retry. */
static void test_json_decode_reports_needed(void **state)
{
	(void)state;
	char *def = dq("{'type': 'T', 'version': 1, 'fields': [{'name': "
		       "'a_rather_long_field_name_that_makes_the_json_long', 'type': 'bool'}]}");
	struct rill_schema *s;
	assert_int_equal(rill_schema_parse(&s, def, strlen(def), NULL), 0);
	uint8_t payload[64];
	uint32_t payload_bytes;
	char *in = dq("{'a_rather_long_field_name_that_makes_the_json_long': true}");
	assert_int_equal(rill_schema_json_encode(s, in, strlen(in), payload, sizeof(payload),
						 &payload_bytes, NULL),
			 0);
	char small[16];
	size_t need = 0;
	assert_int_equal(rill_schema_json_decode(s, payload, payload_bytes, small, sizeof(small),
						 &need, NULL),
			 -ENOSPC);
	assert_int_equal(need, strlen(in) - 1); /* compact: no space after the colon */
	char *text = malloc(need + 1);
	size_t got;
	assert_int_equal(
		rill_schema_json_decode(s, payload, payload_bytes, text, need + 1, &got, NULL), 0);
	assert_int_equal(got, need);
	free(text);
	free(in);
	free(def);
	rill_schema_free(s);
}

/* A NUL inside a string is a valid value: decode writes \u0000 and encode takes it back. */
static void test_json_nul_in_string(void **state)
{
	(void)state;
	char *def = dq("{'type': 'T', 'version': 1, 'fields': [{'name': 's', 'type': 'string', "
		       "'max_length': 8}]}");
	struct rill_schema *s;
	assert_int_equal(rill_schema_parse(&s, def, strlen(def), NULL), 0);
	struct rill_payload_builder b;
	uint8_t payload[64], again[64];
	assert_int_equal(rill_payload_builder_init(&b, s, payload, sizeof(payload)), 0);
	assert_int_equal(rill_payload_set_var(&b, 0, "a\0b", 3), 0);
	uint32_t bytes, again_bytes;
	assert_int_equal(rill_payload_builder_finish(&b, &bytes, NULL), 0);
	char text[64];
	size_t text_bytes;
	assert_int_equal(
		rill_schema_json_decode(s, payload, bytes, text, sizeof(text), &text_bytes, NULL),
		0);
	assert_string_equal(text, "{\"s\":\"a\\u0000b\"}");
	struct rill_schema_error err = {{0}};
	assert_int_equal(rill_schema_json_encode(s, text, text_bytes, again, sizeof(again),
						 &again_bytes, &err),
			 0);
	assert_int_equal(again_bytes, bytes);
	assert_memory_equal(again, payload, bytes);
	free(def);
	rill_schema_free(s);
}

/* ---- Lookups during registration ------------------------------------------------------ */

#define RACE_VERSIONS 120u
#define RACE_TYPES    40u

struct race {
	struct rill_schema_registry *reg;
	int done; /* set by the writer when it has registered everything (atomic builtins) */
};

/* Version @v of "Race": fields f1..fv, each added with a default (BACKWARD). */
static char *race_definition(const char *type, unsigned v)
{
	size_t cap = 128 + 64 * (size_t)v;
	char *json = malloc(cap);
	assert_non_null(json);
	int n = snprintf(json, cap, "{\"type\": \"%s\", \"version\": %u, \"fields\": [", type, v);
	for (unsigned f = 1; f <= v; f++)
		n += snprintf(json + n, cap - (size_t)n,
			      "%s{\"name\": \"f%u\", \"type\": \"i64\", \"default\": %u}",
			      f > 1 ? "," : "", f, f);
	snprintf(json + n, cap - (size_t)n, "]}");
	return json;
}

static void *race_writer(void *arg)
{
	struct race *r = arg;
	char type[32];
	for (unsigned v = 1; v <= RACE_VERSIONS; v++) {
		char *json = race_definition("Race", v);
		struct rill_schema_error err;
		if (rill_schema_register(r->reg, json, strlen(json), -1, NULL, &err) != 0)
			fail_msg("register Race v%u: %s", v, err.message);
		free(json);
		if (v <= RACE_TYPES) {
			snprintf(type, sizeof(type), "Other%u", v);
			json = race_definition(type, 1);
			if (rill_schema_register(r->reg, json, strlen(json), -1, NULL, &err) != 0)
				fail_msg("register %s: %s", type, err.message);
			free(json);
		}
	}
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* What a lookup sees must be whole: version v has fields f1..fv with their defaults. */
static void race_check(const struct rill_schema *s)
{
	unsigned v = rill_schema_version(s);
	assert_int_equal(rill_schema_field_count(s), v);
	const struct rill_schema_field_info *last = rill_schema_field(s, v - 1);
	assert_non_null(last);
	assert_true(last->has_default);
	assert_int_equal(last->default_value.i64, (int64_t)v);
}

/*
 * Lookups take no lock (schema.h, "Threading"): one thread registers versions and types
 * while this one reads through get, get_id, list and a reader, and must only ever see
 * whole versions. Run under ThreadSanitizer in CI.
 */
static void test_registry_concurrent_lookups(void **state)
{
	(void)state;
	struct race r = {0};
	assert_int_equal(rill_schema_registry_open(&r.reg, NULL, NULL, NULL), 0);
	char *v1 = race_definition("Race", 1);
	assert_int_equal(rill_schema_register(r.reg, v1, strlen(v1), -1, NULL, NULL), 0);
	struct rill_schema_reader *reader;
	assert_int_equal(rill_schema_reader_create(&reader, r.reg, "Race", 1), 0);
	uint8_t payload[64];
	uint32_t payload_bytes;
	assert_int_equal(rill_schema_json_encode(rill_schema_get(r.reg, "Race", 1), "{}", 2,
						 payload, sizeof(payload), &payload_bytes, NULL),
			 0);
	free(v1);
	pthread_t writer;
	assert_int_equal(pthread_create(&writer, NULL, race_writer, &r), 0);
	unsigned seen_max = 0, lookups = 0;
	bool done = false;
	while (!done) {
		done = __atomic_load_n(&r.done, __ATOMIC_ACQUIRE) != 0;
		const struct rill_schema *latest = rill_schema_get(r.reg, "Race", 0);
		assert_non_null(latest);
		race_check(latest);
		unsigned v = rill_schema_version(latest);
		assert_true(v >= seen_max); /* versions only ever appear */
		seen_max = v;
		const struct rill_schema *by_id = rill_schema_get_id(r.reg, 1, (uint16_t)v);
		assert_ptr_equal(by_id, latest);
		race_check(rill_schema_get_id(r.reg, 1, (uint16_t)(1 + lookups % v)));
		/* A newer event read by the v1 reader: in place (v only appends fields). */
		struct rill_payload_builder b;
		uint8_t newer[RACE_VERSIONS * 8 + 16];
		assert_int_equal(rill_payload_builder_init(&b, latest, newer, sizeof(newer)), 0);
		uint32_t newer_bytes;
		assert_int_equal(rill_payload_builder_finish(&b, &newer_bytes, NULL), 0);
		const void *out;
		uint32_t out_bytes;
		assert_int_equal(rill_schema_reader_read(reader, (uint16_t)v, newer, newer_bytes,
							 false, &out, &out_bytes, NULL),
				 0);
		assert_ptr_equal(out, newer);
		lookups++;
	}
	assert_int_equal(pthread_join(writer, NULL), 0);
	assert_int_equal(rill_schema_version(rill_schema_get(r.reg, "Race", 0)), RACE_VERSIONS);
	assert_non_null(rill_schema_get(r.reg, "Other40", 1));
	rill_schema_reader_destroy(reader);
	assert_int_equal(rill_schema_registry_close(r.reg), 0);
	print_message("concurrent lookups: %u while %u versions and %u types were registered\n",
		      lookups, RACE_VERSIONS, RACE_TYPES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_offsets),
		cmocka_unit_test(test_layout_field_info),
		cmocka_unit_test(test_layout_loads_and_tail),
		cmocka_unit_test(test_layout_append_keeps_offsets),
		cmocka_unit_test(test_definitions_malformed),
		cmocka_unit_test(test_definitions_json_position),
		cmocka_unit_test(test_definitions_valid),
		cmocka_unit_test(test_definitions_nul),
		cmocka_unit_test(test_compat_table),
		cmocka_unit_test(test_compat_names),
		cmocka_unit_test(test_registry_versions),
		cmocka_unit_test(test_registry_set_compat),
		cmocka_unit_test(test_registry_limits),
		cmocka_unit_test(test_upcast_chain),
		cmocka_unit_test(test_upcast_both_steps),
		cmocka_unit_test(test_upcast_missing),
		cmocka_unit_test(test_upcast_newer_event),
		cmocka_unit_test(test_upcast_by_name),
		cmocka_unit_test(test_upcast_enum_symbols),
		cmocka_unit_test(test_upcast_skipped_defaults),
		cmocka_unit_test(test_upcast_partial_steps),
		cmocka_unit_test(test_upcast_sets_unmappable),
		cmocka_unit_test(test_upcast_direct_mapping),
		cmocka_unit_test(test_json_round_trip),
		cmocka_unit_test(test_json_encode_errors),
		cmocka_unit_test(test_json_random_round_trip),
		cmocka_unit_test(test_validate_corruptions),
		cmocka_unit_test(test_validate_random_mutations),
		cmocka_unit_test(test_random_schemas),
		cmocka_unit_test(test_builder_errors),
		cmocka_unit_test(test_builder_overwrite),
		cmocka_unit_test(test_builder_defaults),
		cmocka_unit_test(test_registry_concurrent_lookups),
		cmocka_unit_test(test_canonical_form_within_limit),
		cmocka_unit_test(test_json_decode_reports_needed),
		cmocka_unit_test(test_json_nul_in_string),
	};
	test_seed();
	return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}
