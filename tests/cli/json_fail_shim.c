/*
 * An LD_PRELOAD shim for tests/cli/test_consume_group.sh: jansson's json_dumps fails (NULL,
 * as when it cannot allocate) for an object whose "offset" is RILL_TEST_JSON_FAIL_OFFSET
 * dumped with JSON_PRESERVE_ORDER, as `rill consume` prints the event at that offset (its
 * commits, of the same offset, go without the flag); every other call is jansson's own.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

#include <jansson.h>

char *json_dumps(const json_t *json, size_t flags)
{
	static char *(*real)(const json_t *, size_t);
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "json_dumps"); /* ISO C: no cast to it */
	const char *fail = getenv("RILL_TEST_JSON_FAIL_OFFSET");
	json_t *offset = json_object_get(json, "offset");
	if (fail != NULL && (flags & JSON_PRESERVE_ORDER) && json_is_integer(offset) &&
	    json_integer_value(offset) == atoll(fail))
		return NULL;
	return real(json, flags);
}
