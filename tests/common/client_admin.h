/*
 * ADMIN requests through the public client (rill/client.h) in the tests against a server in
 * process (tests/integration/test_server_client.c, test_server_ctl.c): an op that must
 * succeed, its answer parsed as a JSON object (jansson) for the test to look into. Blocks
 * until the server answers or the client's timeout passes; a failure fails the test.
 */
#ifndef RILL_TEST_CLIENT_ADMIN_H
#define RILL_TEST_CLIENT_ADMIN_H

#include "tests/common/test_util.h"

#include <jansson.h>

#include "rill/client.h"
#include "rill/error.h"

/* ADMIN @op (enum rill_admin_op) with @json on @c; its answer, a JSON object the caller
 * releases with json_decref. @what names the request in a failure. */
static inline json_t *client_admin_json(struct rill_client *c, uint16_t op, const char *json,
					const char *what)
{
	char *answer = NULL;
	struct rill_client_error err = {{0}};
	int rc = rill_client_admin(c, op, json, &answer, &err);
	if (rc != 0)
		fail_msg("%s: ADMIN %u %s: %d (%s): %s", what, op, json, rc, rill_strerror(rc),
			 err.message);
	assert_non_null(answer);
	json_error_t jerr;
	json_t *j = json_loads(answer, 0, &jerr);
	if (!json_is_object(j))
		fail_msg("%s: the answer is not a JSON object (%s): %s", what,
			 j == NULL ? jerr.text : "another value", answer);
	free(answer);
	return j;
}

#endif /* RILL_TEST_CLIENT_ADMIN_H */
