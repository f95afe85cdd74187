/*
 * Thread placement: pinning the calling thread to one CPU, as every shard does at start.
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

#endif /* RILL_BASE_THREAD_H */
