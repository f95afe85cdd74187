/*
 * Thread placement: pinning the calling thread to one CPU, as every shard does at start;
 * the CPUs this process may use; CPU lists as configured, and whether a thread can be
 * pinned to each.
 */
#ifndef RILL_BASE_THREAD_H
#define RILL_BASE_THREAD_H

/*
 * rill_thread_pin - pin the calling thread to CPU @cpu.
 * Returns 0, -EINVAL if @cpu is out of range or not in the allowed set, or another -errno
 * from sched_setaffinity. Any thread; does not block.
 */
int rill_thread_pin(int cpu);

/* rill_cpu_count - the number of CPUs this process may run on (at least 1). */
int rill_cpu_count(void);

/* rill_cpu_nth - the @n-th CPU (from 0, modulo their count) this process may run on. */
int rill_cpu_nth(int n);

/* CPU numbers run from 0 to RILL_CPUS_MAX - 1 (glibc's CPU_SETSIZE). */
#define RILL_CPUS_MAX 1024

/*
 * rill_cpu_others - the CPUs the calling thread may run on, less each of @taken (@count
 * entries), into @out in ascending order. Returns how many: 0 when @taken covers them all
 * or the thread's CPUs cannot be read. Any thread; does not block.
 */
int rill_cpu_others(const int *taken, unsigned count, int out[RILL_CPUS_MAX]);

/*
 * rill_cpu_list_parse - a CPU list as Linux writes them ("0-3,8,10-11": CPUs and
 * inclusive ranges, comma-separated, no blanks) into @cpus, in the order written, at most
 * @max entries (a CPU listed twice is there twice: two shards then share it). Returns how
 * many, or -EINVAL with @why (a static text): an empty or malformed list, a CPU at or past
 * CPU_SETSIZE, a range that goes down, more than @max CPUs. Pure.
 */
int rill_cpu_list_parse(const char *text, int *cpus, int max, const char **why);

/*
 * rill_cpu_probe - can a thread be pinned to each of @cpus (@count of them)? A thread made
 * for the question tries each in turn, so the caller's own placement never changes, and an
 * isolated CPU (isolcpus: out of the default affinity, yet pinnable) passes. Returns 0, or
 * -errno with *@bad the index of the first CPU that failed (-EINVAL: offline, absent or
 * outside the process's cpuset), or @count when the probe thread could not start. Blocks
 * for a thread's start and end.
 */
int rill_cpu_probe(const int *cpus, unsigned count, unsigned *bad);

#endif /* RILL_BASE_THREAD_H */
