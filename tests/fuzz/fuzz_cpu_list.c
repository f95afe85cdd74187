/*
 * libFuzzer target for the CPU list parser (base/thread.h: `cpus` in rill serve's config
 * file and --cpus): any byte string must be refused with -EINVAL and a reason, or parse
 * into 1 to 64 CPUs, each below CPU_SETSIZE, that parse back the same when written out
 * one by one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/thread.h"

#define FUZZ_CPUS_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[4096];
	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0'; /* the parser takes C strings: a NUL inside ends it early */
	int cpus[FUZZ_CPUS_MAX], again[FUZZ_CPUS_MAX];
	const char *why = NULL;
	int n = rill_cpu_list_parse(text, cpus, FUZZ_CPUS_MAX, &why);
	if (n < 0) {
		if (n != -EINVAL || why == NULL || why[0] == '\0')
			abort();
		return 0;
	}
	if (n == 0 || n > FUZZ_CPUS_MAX)
		abort();
	char out[FUZZ_CPUS_MAX * 8];
	size_t at = 0;
	for (int i = 0; i < n; i++) {
		if (cpus[i] < 0 || cpus[i] >= CPU_SETSIZE)
			abort();
		at += (size_t)snprintf(out + at, sizeof(out) - at, "%s%d", i ? "," : "", cpus[i]);
	}
	if (rill_cpu_list_parse(out, again, FUZZ_CPUS_MAX, &why) != n ||
	    memcmp(cpus, again, (size_t)n * sizeof(cpus[0])) != 0)
		abort();
	return 0;
}
