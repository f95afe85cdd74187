/*
 * Schemas in the engine's unit tests (tests/engine/test_schema.c, test_projection.c,
 * test_partition.c): an error text preset to a sentinel, so that a test sees whether a call
 * wrote it (refusals must, successes must not), and a registration that must succeed.
 */
#ifndef RILL_TEST_SCHEMA_CHECK_H
#define RILL_TEST_SCHEMA_CHECK_H

#include "tests/common/test_util.h"

#include <string.h>

#include "rill/schema.h"

#define ERR_SENTINEL "untouched" /* the message of an error no call has written */

static inline void err_reset(struct rill_schema_error *err)
{
	memset(err, 0, sizeof(*err));
	strcpy(err->message, ERR_SENTINEL);
}

/* Register @json (with the type's own compatibility mode) in @reg; it must be accepted. */
static inline const struct rill_schema *schema_reg_ok(struct rill_schema_registry *reg,
						      const char *json)
{
	const struct rill_schema *out = NULL;
	struct rill_schema_error err;
	err_reset(&err);
	int rc = rill_schema_register(reg, json, strlen(json), -1, &out, &err);
	if (rc != 0)
		fail_msg("register refused (%d) %s: %s", rc, err.message, json);
	assert_non_null(out);
	return out;
}

#endif /* RILL_TEST_SCHEMA_CHECK_H */
