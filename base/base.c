/*
 * The few out-of-line pieces of base/: the assertion handler, rill_strerror(), thread
 * pinning and a CPU feature question. Cold code, any thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "rill/error.h"
#include "assert.h"
#include "atomic.h"
#include "thread.h"

_Noreturn void rill_assert_fail(const char *expr, const char *file, int line, const char *func)
{
	fprintf(stderr, "rill: %s:%d: %s: assertion `%s' failed\n", file, line, func, expr);
	fflush(stderr);
	abort();
}

/* Indexed by -code - RILL_E_BASE; slot 0 is unused. */
static const char *const rill_error_texts[] = {
	[1] = "record truncated: the buffer ends before the record",
	[2] = "record too large: length field above the record limit",
	[3] = "record length field disagrees with its key and payload sizes",
	[4] = "record CRC32C mismatch",
	[5] = "unknown record format version",
	[6] = "record has reserved bits set",
	[7] = "record key longer than the key limit",
	[8] = "output buffer too small for the record",
	[9] = "record payload longer than the payload limit",
	[10] = "log damaged beyond what recovery may repair",
	[11] = "unknown log format version",
	[12] = "invalid schema definition",
	[13] = "schema incompatible with the type's compatibility mode",
	[14] = "schema version conflicts with the registry",
	[15] = "event cannot be read as the requested schema version",
	[16] = "payload does not follow its schema",
	[17] = "JSON does not fit the schema",
	[18] = "not a sound snapshot of this projection",
	[19] = "event type or version not registered",
	[20] = "producer sequence cannot be checked (below the producer's first here, or its "
	       "history was deleted)",
	[21] = "stale: the offset asked for was not applied in time",
	[22] = "refused by the command handler",
	[23] = "frame truncated: shorter than its own lengths say",
	[24] = "frame larger than the frame limit",
	[25] = "unknown or unexpected frame type",
	[26] = "frame has a reserved field or flag set",
	[27] = "frame field out of its range",
	[28] = "not a rill client: bad magic in HELLO",
	[29] = "frame event count disagrees with its body",
	[30] = "frame has bytes after its contents",
	[31] = "no protocol version in common",
	[32] = "producer sequence gap: an earlier sequence of this producer is not written yet",
	[33] = "the partition's log stopped after an I/O error: what it held past its durable "
	       "point is lost (restart the engine to recover)",
	[34] = "the engine holds groups_max consumer groups: a new one is refused (delete one, "
	       "or raise groups_max)",
};
_Static_assert(RILL_ARRAY_COUNT(rill_error_texts) == -(RILL_E_LAST + RILL_E_BASE),
	       "every rill error code needs a text");

const char *rill_strerror(int code)
{
	if (code == 0)
		return "success";
	if (code > -RILL_E_BASE) {
		/* strerrordesc_np returns a static string: thread-safe, unlike strerror. */
		const char *text = strerrordesc_np(-code);
		return text != NULL ? text : "unknown error";
	}
	if (code <= RILL_E_LAST) /* also keeps -code below from overflowing at INT_MIN */
		return "unknown rill error";
	int index = -code - RILL_E_BASE;
	if (index < (int)RILL_ARRAY_COUNT(rill_error_texts) && rill_error_texts[index] != NULL)
		return rill_error_texts[index];
	return "unknown rill error";
}

int rill_cpu_count(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	int count = CPU_COUNT(&set);
	return count > 0 ? count : 1;
}

int rill_cpu_nth(int n)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) == 0)
		return 0;
	int want = n % CPU_COUNT(&set);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, &set) && want-- == 0)
			return cpu;
	}
	return 0;
}

_Static_assert(RILL_CPUS_MAX == CPU_SETSIZE, "one bound for CPU numbers");

int rill_cpu_others(const int *taken, unsigned count, int out[RILL_CPUS_MAX])
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 0;
	for (unsigned i = 0; i < count; i++)
		if (taken[i] >= 0 && taken[i] < CPU_SETSIZE)
			CPU_CLR(taken[i], &set);
	int n = 0;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set))
			out[n++] = cpu;
	return n;
}

int rill_thread_pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	/* pid 0: the calling thread, not the whole process. */
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		return -errno;
	return 0;
}

struct cpu_probe {
	const int *cpus;
	unsigned count, bad;
	int rc;
};

static void *cpu_probe_main(void *arg)
{
	struct cpu_probe *p = arg;
	for (p->bad = 0; p->bad < p->count; p->bad++)
		if ((p->rc = rill_thread_pin(p->cpus[p->bad])) < 0)
			break;
	return NULL;
}

int rill_cpu_probe(const int *cpus, unsigned count, unsigned *bad)
{
	struct cpu_probe p = {.cpus = cpus, .count = count};
	pthread_t t;
	int rc = pthread_create(&t, NULL, cpu_probe_main, &p);
	*bad = count; /* no CPU at fault: the probe itself could not run */
	if (rc != 0)
		return -rc;
	pthread_join(t, NULL);
	*bad = p.bad;
	return p.rc;
}

/* One CPU number of a list at *p: 0 to CPU_SETSIZE - 1, digits only; advances *p. */
static int cpu_number(const char **p, const char **why)
{
	if (**p < '0' || **p > '9') {
		*why = "a CPU number expected";
		return -EINVAL;
	}
	int cpu = 0;
	for (; **p >= '0' && **p <= '9'; (*p)++) {
		cpu = cpu * 10 + (**p - '0');
		if (cpu >= CPU_SETSIZE) {
			*why = "a CPU number past the kernel's limit (CPU_SETSIZE)";
			return -EINVAL;
		}
	}
	return cpu;
}

/*
 * By hand: none of rill's packaged dependencies parses a CPU list outside DPDK (which rill
 * builds without) and libnuma (numa_parse_cpustring), and a dependency for these few
 * lines, which take digits, '-' and ',' only, would cost more than it saves.
 */
int rill_cpu_list_parse(const char *text, int *cpus, int max, const char **why)
{
	const char *p = text;
	int n = 0;
	if (*p == '\0') {
		*why = "an empty CPU list";
		return -EINVAL;
	}
	for (;;) {
		int first = cpu_number(&p, why), last = first;
		if (first < 0)
			return first;
		if (*p == '-') {
			p++;
			if ((last = cpu_number(&p, why)) < 0)
				return last;
			if (last < first) {
				*why = "a range that goes down";
				return -EINVAL;
			}
		}
		for (int cpu = first; cpu <= last; cpu++) {
			if (n >= max) {
				*why = "more CPUs than the list may hold";
				return -EINVAL;
			}
			cpus[n++] = cpu;
		}
		if (*p == '\0')
			return n;
		if (*p++ != ',' || *p == '\0') {
			*why = "CPUs and ranges are separated by single commas";
			return -EINVAL;
		}
	}
}

bool rill_cpu_has_prefetch_write(void)
{
#if defined(__x86_64__) || defined(__i386__)
	/* PREFETCHW: CPUID 0x80000001, ECX bit 8 ("3dnowprefetch" in /proc/cpuinfo). */
	unsigned eax, ebx, ecx, edx;
	return __get_cpuid(0x80000001u, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 8)) != 0;
#else
	return true; /* __builtin_prefetch: a no-op where the target has no prefetch */
#endif
}
