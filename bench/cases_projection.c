/*
 * Projection benchmarks, in events per second: one event folded into a built-in
 * projection (engine/projection.h), as a shard does right after append. The type has 10
 * fields; events cycle over 1024 keys and 1024 distinct payloads so nothing hoists.
 *   projection/apply_sum        sum of an i64 field, events of the projection's version
 *                               (read in place)
 *   projection/apply_sum_upcast the same with v1 events into a v2 projection (copied)
 *   projection/apply_window     window_sum over 1-second windows of event time
 * Setup checks the fold once and skips with the reason when a result is wrong. Bench
 * thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/compiler.h"
#include "bench/cases.h"
#include "engine/projection.h"

#define PROJ_EVENTS 1024u
#define PROJ_MASK   (PROJ_EVENTS - 1)

static const char proj_v1[] =
	"{\"type\": \"Trade\", \"version\": 1, \"fields\": ["
	"{\"name\": \"id\", \"type\": \"i64\"}, {\"name\": \"account\", \"type\": \"u64\"},"
	"{\"name\": \"ts\", \"type\": \"timestamp\"}, {\"name\": \"qty\", \"type\": \"i64\"},"
	"{\"name\": \"price\", \"type\": \"f64\"}, {\"name\": \"active\", \"type\": \"bool\"},"
	"{\"name\": \"side\", \"type\": \"enum\", \"symbols\": [\"BUY\", \"SELL\"]},"
	"{\"name\": \"sku\", \"type\": \"string\", \"max_length\": 16},"
	"{\"name\": \"venue\", \"type\": \"string\", \"max_length\": 16},"
	"{\"name\": \"blob\", \"type\": \"bytes\", \"max_length\": 16}]}";
/* v2 inserts "fee" with a default after "ts": v1 events are copied to be read as v2. */
static const char proj_v2[] =
	"{\"type\": \"Trade\", \"version\": 2, \"fields\": ["
	"{\"name\": \"id\", \"type\": \"i64\"}, {\"name\": \"account\", \"type\": \"u64\"},"
	"{\"name\": \"ts\", \"type\": \"timestamp\"}, {\"name\": \"fee\", \"type\": \"i64\", "
	"\"default\": 1}, {\"name\": \"qty\", \"type\": \"i64\"},"
	"{\"name\": \"price\", \"type\": \"f64\"}, {\"name\": \"active\", \"type\": \"bool\"},"
	"{\"name\": \"side\", \"type\": \"enum\", \"symbols\": [\"BUY\", \"SELL\"]},"
	"{\"name\": \"sku\", \"type\": \"string\", \"max_length\": 16},"
	"{\"name\": \"venue\", \"type\": \"string\", \"max_length\": 16},"
	"{\"name\": \"blob\", \"type\": \"bytes\", \"max_length\": 16}]}";

struct proj_ctx {
	struct rill_schema_registry *reg;
	struct rill_projection *proj;
	uint32_t next;
	uint64_t offset;
	struct rill_record recs[PROJ_EVENTS];
	char keys[PROJ_EVENTS][16];
	uint8_t payloads[PROJ_EVENTS][256];
};

enum { PROJ_SUM = 0, PROJ_SUM_UPCAST = 1, PROJ_WINDOW = 2 };

static char proj_skip_message[RILL_SCHEMA_MESSAGE_BYTES + 64];

static void *proj_fail(struct proj_ctx *c, const char *what, const char *why)
{
	snprintf(proj_skip_message, sizeof(proj_skip_message), "%s: %s", what, why);
	rill_bench_skip_reason = proj_skip_message;
	rill_projection_destroy(c->proj);
	rill_schema_registry_close(c->reg);
	free(c);
	return NULL;
}

/* One v1 or v2 payload per event, built field by field. */
static int proj_build(struct proj_ctx *c, const struct rill_schema *s, uint32_t i)
{
	struct rill_payload_builder b;
	if (rill_payload_builder_init(&b, s, c->payloads[i], sizeof(c->payloads[i])) != 0)
		return -1;
	int shift = rill_schema_version(s) == 2; /* v2 has "fee" at index 3 */
	int rc = rill_payload_set_i64(&b, 0, i) | rill_payload_set_u64(&b, 1, i * 7u) |
		 rill_payload_set_i64(&b, 2, 1000) | rill_payload_set_i64(&b, 3 + shift, i % 97) |
		 rill_payload_set_f64(&b, 4 + shift, 1.5 * i) |
		 rill_payload_set_bool(&b, 5 + shift, i & 1) |
		 rill_payload_set_enum(&b, 6 + shift, i & 1) |
		 rill_payload_set_var(&b, 7 + shift, "SKU-123456", 10) |
		 rill_payload_set_var(&b, 8 + shift, "xnas", 4) |
		 rill_payload_set_var(&b, 9 + shift, "\x01\x02\x03", 3);
	uint32_t bytes;
	if (rc != 0 || rill_payload_builder_finish(&b, &bytes, NULL) != 0)
		return -1;
	c->recs[i] = (struct rill_record){.type_id = rill_schema_type_id(s),
					  .schema_version = rill_schema_version(s),
					  .timestamp_ns = (uint64_t)i * 10000000u,
					  .key = c->keys[i],
					  .key_bytes = (uint16_t)strlen(c->keys[i]),
					  .payload = c->payloads[i],
					  .payload_bytes = bytes};
	return 0;
}

static void *proj_setup(const struct rill_bench_case *bc)
{
	struct proj_ctx *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	const struct rill_schema *v1, *v2;
	if (rill_schema_registry_open(&c->reg, NULL, NULL, NULL) != 0 ||
	    rill_schema_register(c->reg, proj_v1, strlen(proj_v1), -1, &v1, NULL) != 0 ||
	    rill_schema_register(c->reg, proj_v2, strlen(proj_v2), -1, &v2, NULL) != 0)
		return proj_fail(c, "setup", "registry");
	struct rill_projection_config pc = {.name = "bench",
					    .type = "Trade",
					    .version = 2,
					    .kind = RILL_PROJECTION_SUM,
					    .field = "qty"};
	if (bc->arg == PROJ_WINDOW) {
		pc.kind = RILL_PROJECTION_WINDOW_SUM;
		pc.window_ns = 1000000000u;
	}
	struct rill_schema_error err;
	if (rill_projection_create(&c->proj, c->reg, &pc, &err) != 0)
		return proj_fail(c, "create", err.message);
	for (uint32_t i = 0; i < PROJ_EVENTS; i++) {
		snprintf(c->keys[i], sizeof(c->keys[i]), "acct-%u", i % 1024u);
		if (proj_build(c, bc->arg == PROJ_SUM_UPCAST ? v1 : v2, i) != 0)
			return proj_fail(c, "setup", "payload");
	}
	/* One pass, checked: each key's sum is its qty. */
	for (uint32_t i = 0; i < PROJ_EVENTS; i++)
		if (rill_projection_apply(c->proj, &c->recs[i], i) != 0)
			return proj_fail(c, "apply", "refused");
	struct rill_projection_value v;
	if (!rill_projection_get(c->proj, "acct-5", 6, &v) || v.i64 != 5 || v.count != 1)
		return proj_fail(c, "check", "acct-5 does not sum to its qty");
	return c;
}

static void proj_run(void *ctx, uint64_t items)
{
	struct proj_ctx *c = ctx;
	for (uint64_t n = 0; n < items; n++) {
		const struct rill_record *r = &c->recs[c->next++ & PROJ_MASK];
		if (rill_unlikely(rill_projection_apply(c->proj, r, c->offset++) != 0))
			abort();
	}
}

static void proj_teardown(void *ctx)
{
	struct proj_ctx *c = ctx;
	rill_projection_destroy(c->proj);
	rill_schema_registry_close(c->reg);
	free(c);
}

const struct rill_bench_case rill_bench_projection_cases[] = {
	{"projection/apply_sum", 1024, 0, proj_setup, proj_run, proj_teardown, PROJ_SUM},
	{"projection/apply_sum_upcast", 1024, 0, proj_setup, proj_run, proj_teardown,
	 PROJ_SUM_UPCAST},
	{"projection/apply_window", 1024, 0, proj_setup, proj_run, proj_teardown, PROJ_WINDOW},
};
const size_t rill_bench_projection_case_count = RILL_ARRAY_COUNT(rill_bench_projection_cases);
