/*
 * What fuzz_projection_snapshot and its seed generator share: one event type and a
 * projection definition per kind, made the same way on both sides so that the seeds are
 * snapshots the target's projections accept.
 */
#ifndef RILL_TESTS_PROJECTION_FUZZ_H
#define RILL_TESTS_PROJECTION_FUZZ_H

#include <stdlib.h>
#include <string.h>

#include "engine/projection.h"

static const char projection_fuzz_type[] =
	"{\"type\": \"Acct\", \"version\": 1, \"fields\": [{\"name\": \"amount\", \"type\": "
	"\"i64\"}, {\"name\": \"units\", \"type\": \"u64\"}, {\"name\": \"rate\", \"type\": "
	"\"f64\"}]}";

/* Kinds 1..8 over fields chosen to cover the three numeric types. */
#define PROJECTION_FUZZ_KINDS 8u

static inline void projection_fuzz_config(unsigned index, struct rill_projection_config *c)
{
	static const char *const fields[] = {"amount", "units", "rate"};
	memset(c, 0, sizeof(*c));
	c->name = "fuzz";
	c->type = "Acct";
	c->kind = (enum rill_projection_kind)(index % PROJECTION_FUZZ_KINDS + 1);
	c->field = fields[index % 3];
	c->window_ns = 1000;
	c->keys_max = 64;
	c->key_store_bytes = 4096;
}

/* A memory registry with the type; aborts on failure (the harness cannot go on). */
static inline struct rill_schema_registry *projection_fuzz_registry(void)
{
	struct rill_schema_registry *reg;
	if (rill_schema_registry_open(&reg, NULL, NULL, NULL) != 0 ||
	    rill_schema_register(reg, projection_fuzz_type, strlen(projection_fuzz_type), -1, NULL,
				 NULL) != 0)
		abort();
	return reg;
}

#endif /* RILL_TESTS_PROJECTION_FUZZ_H */
