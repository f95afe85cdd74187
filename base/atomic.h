/*
 * Explicit-order atomic helpers (STYLE rule 17). Every shared access in rill goes through
 * one of these, so the order is visible at the call site; callers label each acquire and
 * release with the access it pairs with and say why a relaxed access is enough. Thin
 * wrappers over the GCC/Clang __atomic builtins, which compile to plain moves on x86-64.
 */
#ifndef RILL_BASE_ATOMIC_H
#define RILL_BASE_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

static inline uint64_t rill_atomic_load_acquire_u64(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline uint64_t rill_atomic_load_relaxed_u64(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void rill_atomic_store_release_u64(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline void rill_atomic_store_relaxed_u64(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline uint64_t rill_atomic_fetch_add_relaxed_u64(uint64_t *p, uint64_t v)
{
	return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static inline uint64_t rill_atomic_fetch_sub_relaxed_u64(uint64_t *p, uint64_t v)
{
	return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED);
}

/* If *@p is *@expected, store @desired and return true; otherwise load *@p into
 * *@expected and return false (it may also fail spuriously: loop). Relaxed. */
static inline bool rill_atomic_cas_relaxed_u64(uint64_t *p, uint64_t *expected, uint64_t desired)
{
	return __atomic_compare_exchange_n(p, expected, desired, true, __ATOMIC_RELAXED,
					   __ATOMIC_RELAXED);
}

/* Raise *@p to @v if it is below (a high-water mark); relaxed: a statistic. */
static inline void rill_atomic_max_relaxed_u64(uint64_t *p, uint64_t v)
{
	uint64_t seen = __atomic_load_n(p, __ATOMIC_RELAXED);
	while (seen < v && !rill_atomic_cas_relaxed_u64(p, &seen, v))
		; /* seen now holds the newer value: try again only if still below */
}

/* Exchange with acquire and release: the one winner of a race sees and publishes. */
static inline uint64_t rill_atomic_exchange_acq_rel_u64(uint64_t *p, uint64_t v)
{
	return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL);
}

/*
 * A full fence: orders every store before it against every load after it, which acquire
 * and release alone never do (the "store flag, then check the other side" handshake of a
 * sleeper and its waker).
 */
#if defined(__SANITIZE_THREAD__)
#define RILL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RILL_TSAN 1
#endif
#endif

static inline void rill_atomic_fence_seq_cst(void)
{
#ifdef RILL_TSAN
	/* ThreadSanitizer does not model fences (gcc warns: -Wtsan). A sequentially
	 * consistent read-modify-write stands in, which x86 runs as a full barrier too. */
	static __thread uint64_t stand_in;
	__atomic_fetch_add(&stand_in, 0, __ATOMIC_SEQ_CST);
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/* Pointers published to other threads: the pointee is fully written before the release. */
static inline void *rill_atomic_load_acquire_ptr(void *const *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void rill_atomic_store_release_ptr(void **p, void *v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Spin-wait hint: tells the core this is a busy loop (PAUSE on x86, YIELD on arm64). */
static inline void rill_cpu_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

/*
 * rill_cpu_prefetch_write - ask for the cache line of @p in a writable state ahead of the
 * stores to it (PREFETCHW on x86; the compiler's write prefetch elsewhere). A hint with no
 * effect on the program's meaning. x86: only where rill_cpu_has_prefetch_write said so
 * (CPUs without it may fault on the instruction); callers keep that answer.
 */
static inline void rill_cpu_prefetch_write(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("prefetchw %0" ::"m"(*(const char *)p));
#else
	__builtin_prefetch(p, 1, 3); /* the compiler's write prefetch, where it has one */
#endif
}

/* rill_cpu_has_prefetch_write - whether rill_cpu_prefetch_write may run here. Cold: ask
 * once at setup (a CPUID on x86). */
bool rill_cpu_has_prefetch_write(void);

#endif /* RILL_BASE_ATOMIC_H */
