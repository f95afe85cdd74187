/*
 * The engine's control path (include/rill/rill.h): open and close, topics, projections,
 * queries and statistics. Runs on host threads; changes are serialised by the engine's
 * mutex and carried out on the shards through their mailboxes (shard_control.c). Topic and
 * projection descriptions are complete before they are published with a release store of
 * their count, so lookups (rill_topic_find, rill_query) take no lock. Not the hot path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/atomic.h"
#include "base/clock.h"
#include "base/thread.h"
#include "engine/engine_int.h"

#define ENGINE_RING_BYTES_DEFAULT    (1u << 20)
#define ENGINE_RING_BYTES_MIN        (64u << 10)
#define ENGINE_IDLE_SPIN_NS          50000u
#define ENGINE_SUBSCRIPTIONS_DEFAULT 64u   /* per shard: 256 MiB of rings at most */
#define ENGINE_GROUPS_DEFAULT        4096u /* a file each under DATA/groups */
#define ENGINE_QUERY_NAP_NS          20000u

_Static_assert(RILL_ENGINE_SHARDS_MAX *RILL_ENGINE_PRODUCERS_MAX <= 65536u,
	       "rings per engine stay countable");
_Static_assert(RILL_ENGINE_RING_BYTES_MAX / ENGINE_RING_SLOT_BYTES <= RILL_RING_SLOTS_MAX,
	       "the largest ring fits the ring's slot limit");
/* rill.h names the per partition maxima that the partition and projection code enforce. */
_Static_assert(RILL_ENGINE_PARTITION_PRODUCERS_MAX == RILL_PARTITION_PRODUCERS_MAX,
	       "producers_max: the public maximum is the partition's");
_Static_assert(RILL_ENGINE_PROJECTION_KEYS_MAX == RILL_PROJECTION_KEYS_MAX,
	       "projection_keys_max: the public maximum is the projection's");
_Static_assert(RILL_ENGINE_PROJECTION_KEY_STORE_MAX == RILL_PROJECTION_KEY_STORE_MAX,
	       "projection_key_store_bytes: the public maximum is the projection's");
/* A projection binds to every partition of its topic: the partition's limit is the topic's. */
_Static_assert(RILL_ENGINE_TOPIC_PROJECTIONS_MAX == RILL_PARTITION_PROJECTIONS_MAX,
	       "projections per topic: the public maximum is the partition's");
_Static_assert(RILL_ENGINE_TOPIC_PROJECTIONS_MAX <= RILL_ENGINE_PROJECTIONS_MAX,
	       "a topic's projections fit the engine's");

int engine_error(struct rill_error_text *err, int code, const char *fmt, ...)
{
	if (err != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return code;
}

void rill_engine_config_default(struct rill_engine_config *c)
{
	memset(c, 0, sizeof(*c));
	c->pin = true;
	c->poll = RILL_POLL_ADAPTIVE;
	c->idle_spin_ns = ENGINE_IDLE_SPIN_NS;
	c->ring_bytes = ENGINE_RING_BYTES_DEFAULT;
	c->ack_ring_bytes = ENGINE_RING_BYTES_DEFAULT;
	c->snapshot_interval_events = 1000000;
	c->snapshot_interval_ns = 60ull * 1000000000u;
	c->snapshots_kept = 3;
	c->subscriptions_per_shard = ENGINE_SUBSCRIPTIONS_DEFAULT;
	c->groups_max = ENGINE_GROUPS_DEFAULT;
}

static bool engine_ring_bytes_ok(uint32_t bytes)
{
	return bytes >= ENGINE_RING_BYTES_MIN && bytes <= RILL_ENGINE_RING_BYTES_MAX &&
	       (bytes & (bytes - 1)) == 0;
}

/* The per partition limits: refused here, naming the setting, rather than later by each
 * topic's or projection's open with a bare -EINVAL that blames the topic or projection (a
 * restart with such a config failed on its first one). 0 takes the default downstream. */
static int engine_config_check_partition(struct rill_engine_config *c, struct rill_error_text *err)
{
	if (c->producers_max == 0)
		c->producers_max = 4096;
	if (c->producers_max > RILL_ENGINE_PARTITION_PRODUCERS_MAX)
		return engine_error(err, -EINVAL, "producers_max: %u is more than the %u allowed",
				    c->producers_max, RILL_ENGINE_PARTITION_PRODUCERS_MAX);
	if (c->projection_keys_max > RILL_ENGINE_PROJECTION_KEYS_MAX)
		return engine_error(err, -EINVAL,
				    "projection_keys_max: %u is more than the %u allowed",
				    c->projection_keys_max, RILL_ENGINE_PROJECTION_KEYS_MAX);
	if (c->projection_key_store_bytes > RILL_ENGINE_PROJECTION_KEY_STORE_MAX)
		return engine_error(err, -EINVAL,
				    "projection_key_store_bytes: %" PRIu64
				    " is more than the %llu allowed",
				    c->projection_key_store_bytes,
				    (unsigned long long)RILL_ENGINE_PROJECTION_KEY_STORE_MAX);
	return 0;
}

static int engine_config_check(struct rill_engine_config *c, struct rill_error_text *err)
{
	if (c->data_dir == NULL)
		c->data_dir = "./data";
	/* The list's length is shards: with shards left to the CPU count, where it ends is
	 * not known, and reading on would pin to whatever follows it. */
	if (c->cpus != NULL && c->shards == 0)
		return engine_error(err, -EINVAL, "cpus needs shards: the number of CPUs listed");
	if (c->shards == 0) {
		c->shards = (uint32_t)rill_cpu_count();
		if (c->shards > RILL_ENGINE_SHARDS_MAX)
			c->shards = RILL_ENGINE_SHARDS_MAX;
	}
	if (c->shards > RILL_ENGINE_SHARDS_MAX)
		return engine_error(err, -EINVAL, "shards: %u is more than the %u allowed",
				    c->shards, RILL_ENGINE_SHARDS_MAX);
	if (!engine_ring_bytes_ok(c->ring_bytes) || !engine_ring_bytes_ok(c->ack_ring_bytes))
		return engine_error(err, -EINVAL,
				    "ring_bytes and ack_ring_bytes: powers of two from %u to %u",
				    ENGINE_RING_BYTES_MIN, RILL_ENGINE_RING_BYTES_MAX);
	if (c->poll != RILL_POLL_ADAPTIVE && c->poll != RILL_POLL_BUSY)
		return engine_error(err, -EINVAL, "poll: adaptive or busy");
	if (c->io_workers != RILL_IO_WORKERS_SPARE && c->io_workers != RILL_IO_WORKERS_SHARD)
		return engine_error(err, -EINVAL, "io_workers: spare or shard");
	unsigned bad = 0;
	int rc = c->cpus != NULL && c->pin ? rill_cpu_probe(c->cpus, c->shards, &bad) : 0;
	if (rc < 0 && bad == c->shards)
		return engine_error(err, rc, "cpus: no thread to check them: %s",
				    rill_strerror(rc));
	if (rc < 0) /* CPUs named on purpose: fail now rather than run unpinned */
		return engine_error(err, rc, "cpus: shard %u cannot be pinned to CPU %d: %s", bad,
				    c->cpus[bad], rill_strerror(rc));
	if (strlen(c->data_dir) + 512 > sizeof(((struct rill_engine *)0)->data_dir))
		return engine_error(err, -EINVAL, "data_dir: path too long");
	rc = engine_config_check_partition(c, err);
	if (rc < 0)
		return rc;
	if (c->subscriptions_per_shard == 0)
		c->subscriptions_per_shard = ENGINE_SUBSCRIPTIONS_DEFAULT;
	if (c->subscriptions_per_shard > RILL_ENGINE_SUBSCRIPTIONS_MAX)
		return engine_error(err, -EINVAL,
				    "subscriptions_per_shard: %u is more than the %u "
				    "allowed",
				    c->subscriptions_per_shard, RILL_ENGINE_SUBSCRIPTIONS_MAX);
	if (c->groups_max == 0)
		c->groups_max = ENGINE_GROUPS_DEFAULT;
	if (c->groups_max > RILL_ENGINE_GROUPS_MAX)
		return engine_error(err, -EINVAL, "groups_max: %u is more than the %u allowed",
				    c->groups_max, RILL_ENGINE_GROUPS_MAX);
	if (c->snapshots_kept == 0 || c->snapshots_kept > RILL_PARTITION_SNAPSHOTS_MAX)
		return engine_error(err, -EINVAL, "snapshots_kept: 1 to %u",
				    RILL_PARTITION_SNAPSHOTS_MAX);
	if (c->snapshot_interval_events == 0 && c->snapshot_interval_ns == 0)
		c->snapshots_off = true;
	return 0;
}

/* The CPUs pinned shard @s's I/O workers may use (config.io_workers): how many, at
 * *@cpus. */
static unsigned shard_worker_cpus(const struct shard *s, const int **cpus)
{
	const struct rill_engine *e = s->engine;
	if (e->config.io_workers == RILL_IO_WORKERS_SHARD) {
		*cpus = &s->cpu;
		return 1;
	}
	*cpus = e->io_cpus;
	return e->io_cpu_count;
}

int (*engine_meta_io_create)(struct rill_io **io);

static void *shard_thread(void *arg)
{
	struct shard *s = arg;
	/* A write past the file size limit (RLIMIT_FSIZE: ulimit -f, systemd's LimitFSIZE=)
	 * raises SIGXFSZ at the writing thread, and its default action ends the process. The
	 * shards write every log and snapshot (a short io_uring write's rest too, to learn its
	 * cause): blocked here, such a write fails with EFBIG, and only its log stops. */
	sigset_t xfsz;
	sigemptyset(&xfsz);
	sigaddset(&xfsz, SIGXFSZ);
	pthread_sigmask(SIG_BLOCK, &xfsz, NULL);
	/* "rill-shard3" in top -H, perf, gdb and /proc/PID/task/TID/comm (15 bytes at most). */
	char name[16];
	snprintf(name, sizeof(name), "rill-shard%u", s->index);
	(void)pthread_setname_np(pthread_self(), name); /* a name is a nicety: never fatal */
	struct rill_engine *e = s->engine;
	if (e->config.pin) {
		int rc = rill_thread_pin(s->cpu);
		if (rc < 0)
			fprintf(stderr,
				"rill: shard %u: cannot pin to CPU %d (%s); running unpinned\n",
				s->index, s->cpu, rill_strerror(rc));
		/* Its I/O workers (every fdatasync) would get its CPU alone, inherited. */
		else if (s->io->ops->worker_cpus != NULL && e->io_cpu_count > 0) {
			const int *cpus;
			unsigned n = shard_worker_cpus(s, &cpus);
			rc = s->io->ops->worker_cpus(s->io, cpus, n);
			if (rc < 0)
				fprintf(stderr,
					"rill: shard %u: cannot place its io_uring workers (%s); "
					"they stay on its CPU %d\n",
					s->index, rill_strerror(rc), s->cpu);
		}
	}
	bool arena = rill_arena_init(&s->arena) == 0 && rill_arena_bind(&s->arena) == 0;
	shard_main(s);
	if (arena)
		rill_arena_destroy(&s->arena);
	return NULL;
}

static int shard_cpu(const struct rill_engine *e, uint32_t index)
{
	return e->config.cpus != NULL ? e->config.cpus[index] : rill_cpu_nth((int)index);
}

/* e->io_cpus: before any shard starts, from the opening thread's affinity. */
static void engine_io_cpus(struct rill_engine *e)
{
	int taken[RILL_ENGINE_SHARDS_MAX];
	for (uint32_t i = 0; i < e->shard_count; i++)
		taken[i] = shard_cpu(e, i);
	int n = e->config.pin ? rill_cpu_others(taken, e->shard_count, e->io_cpus) : 0;
	e->spare_cpu_count = (unsigned)n;
	if (n == 0) /* the shards have every CPU: let the scheduler place workers among them */
		n = rill_cpu_others(NULL, 0, e->io_cpus);
	e->io_cpu_count = (unsigned)n;
}

static int shard_init(struct rill_engine *e, uint32_t index, struct rill_error_text *err)
{
	struct shard *s = &e->shards[index];
	s->engine = e;
	s->index = index;
	s->cpu = shard_cpu(e, index);
	s->delay_ns_min = UINT64_MAX;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->inited = true;
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->wake_fd < 0)
		return engine_error(err, -errno, "shard %u: eventfd: %s", index, strerror(errno));
	int rc = rill_io_uring_create(&s->io);
	if (rc < 0) {
		fprintf(stderr, "rill: shard %u: io_uring refused (%s); using plain system calls\n",
			index, rill_strerror(rc));
		rc = rill_io_posix_create(&s->io);
		if (rc < 0)
			return engine_error(err, rc, "shard %u: out of memory", index);
	}
	s->notify_ok = s->io->ops->notify != NULL && s->io->ops->notify(s->io, s->wake_fd) == 0;
	rc = rill_io_mux_create(&s->mux, s->io);
	s->command = calloc(1, sizeof(*s->command));
	if (s->command == NULL)
		rc = -ENOMEM;
	struct rill_hist **hists[] = {&s->hist_ring, &s->hist_apply, &s->hist_applied,
				      &s->hist_durable, &s->hist_sync};
	for (unsigned i = 0; i < RILL_ARRAY_COUNT(hists) && rc == 0; i++) {
		*hists[i] = malloc(sizeof(struct rill_hist));
		if (*hists[i] == NULL)
			rc = -ENOMEM;
		else
			rill_hist_init(*hists[i]);
	}
	if (rc < 0)
		return engine_error(err, rc, "shard %u: out of memory", index);
	rc = pthread_create(&s->thread, NULL, shard_thread, s);
	if (rc != 0)
		return engine_error(err, -rc, "shard %u: cannot start its thread: %s", index,
				    strerror(rc));
	s->started = true;
	return 0;
}

/* Stop shard @s (if it runs) and free what it holds. Returns its first error. */
static int shard_fini(struct shard *s)
{
	int rc = 0;
	if (!s->inited)
		return 0;
	if (s->started) {
		struct shard_req req = {.kind = SHARD_REQ_STOP};
		shard_call(s, &req);
		pthread_join(s->thread, NULL);
		rc = s->error;
		/* A caller refused or answered by the stop may not have left shard_call yet. */
		pthread_mutex_lock(&s->lock);
		while (s->callers > 0)
			pthread_cond_wait(&s->cond, &s->lock);
		pthread_mutex_unlock(&s->lock);
	}
	free(s->hist_ring);
	free(s->hist_apply);
	free(s->hist_applied);
	free(s->hist_durable);
	free(s->hist_sync);
	free(s->command);
	rill_io_mux_destroy(s->mux);
	rill_io_destroy(s->io);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	return rc;
}

static int engine_topic_load(struct rill_engine *e, const struct rill_topic_config *c,
			     struct rill_error_text *err);
static int engine_projection_open(struct rill_engine *e, const struct rill_projection_def *d,
				  struct rill_error_text *err);

int rill_engine_open(struct rill_engine **out, const struct rill_engine_config *config,
		     struct rill_error_text *err)
{
	if (shard_self != NULL) /* its shards' requests would be refused half-way */
		return engine_error(err, -EDEADLK, "rill_engine_open on a shard's thread (a hook)");
	struct rill_engine *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return engine_error(err, -ENOMEM, "out of memory");
	if (config != NULL)
		e->config = *config;
	else
		rill_engine_config_default(&e->config);
	e->lock_handle = -1;
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->calls_lock, NULL);
	pthread_cond_init(&e->calls_cond, NULL);
	int rc = engine_config_check(&e->config, err);
	if (rc < 0)
		goto out_free;
	snprintf(e->data_dir, sizeof(e->data_dir), "%s", e->config.data_dir);
	e->config.data_dir = e->data_dir;
	rc = engine_meta_io_create != NULL ? engine_meta_io_create(&e->io)
					   : rill_io_posix_create(&e->io);
	if (rc == 0)
		rc = rill_io_posix_create(&e->schema_io);
	if (rc < 0) {
		engine_error(err, rc, "out of memory");
		goto out_free;
	}
	rc = engine_meta_init(e, err); /* lock, DATA/meta, folders */
	if (rc == 0)
		rc = engine_meta_groups_count(e, err);
	if (rc < 0)
		goto out_free;
	char path[4200];
	snprintf(path, sizeof(path), "%s/schemas", e->data_dir);
	struct rill_schema_error serr;
	rc = rill_schema_registry_open(&e->schemas, e->schema_io, path, &serr);
	if (rc < 0) {
		engine_error(err, rc, "schema registry %s: %s", path, serr.message);
		goto out_free;
	}
	if (e->config.on_schemas != NULL) { /* upcasters, before projections are rebuilt */
		rc = e->config.on_schemas(e->config.on_schemas_arg, e->schemas);
		if (rc != 0) {
			rc = engine_error(err, rc < 0 ? rc : -EINVAL,
					  "config.on_schemas failed: %s", rill_strerror(rc));
			goto out_free;
		}
	}
	e->shard_count = e->config.shards;
	e->shards = aligned_alloc(_Alignof(struct shard), e->shard_count * sizeof(struct shard));
	if (e->shards == NULL) {
		rc = engine_error(err, -ENOMEM, "out of memory");
		goto out_free;
	}
	memset(e->shards, 0, e->shard_count * sizeof(struct shard));
	for (uint32_t i = 0; i < e->shard_count; i++)
		e->shards[i].wake_fd = -1;
	engine_io_cpus(e);
	for (uint32_t i = 0; i < e->shard_count; i++) {
		rc = shard_init(e, i, err);
		if (rc < 0)
			goto out_free;
	}
	rc = engine_meta_topics_load(e, engine_topic_load, err);
	if (rc == 0)
		rc = engine_meta_projections_load(e, engine_projection_open, err);
	if (rc < 0)
		goto out_free;
	for (uint32_t i = 0; i < e->shard_count; i++) {
		/* Every projection is bound: the snapshots loaded at open are done with. */
		struct shard_req req = {.kind = SHARD_REQ_OPENED};
		shard_call(&e->shards[i], &req);
	}
	*out = e;
	return 0;
out_free:
	rill_engine_close(e);
	return rc;
}

int engine_call_begin(struct rill_engine *e, struct rill_error_text *err)
{
	if (shard_self != NULL)
		return engine_error(err, -EDEADLK,
				    "called on a shard's thread (a hook, or a callback run there): "
				    "it would wait for a shard, which waits for it");
	pthread_mutex_lock(&e->calls_lock);
	bool closing = e->closing;
	if (!closing)
		e->calls_active++;
	pthread_mutex_unlock(&e->calls_lock);
	if (closing)
		return engine_error(err, -ESHUTDOWN,
				    "the engine is closing (rill_engine_close): nothing may start");
	return 0;
}

void engine_call_end(struct rill_engine *e)
{
	pthread_mutex_lock(&e->calls_lock);
	RILL_ASSERT(e->calls_active > 0);
	e->calls_active--;
	if (e->calls_active == 0 && e->closing)
		pthread_cond_broadcast(&e->calls_cond); /* rill_engine_close waits for this */
	pthread_mutex_unlock(&e->calls_lock);
}

bool engine_closing(struct rill_engine *e)
{
	pthread_mutex_lock(&e->calls_lock);
	bool closing = e->closing;
	pthread_mutex_unlock(&e->calls_lock);
	return closing;
}

int rill_engine_close(struct rill_engine *e)
{
	if (e == NULL)
		return 0;
	if (shard_self != NULL)
		return -EDEADLK; /* it would stop and join its own thread */
	/* One critical section for the check and the mark: a producer or subscription that
	 * opens on another thread either counts before it (then -EBUSY here) or meets
	 * closing (then -ESHUTDOWN there). */
	pthread_mutex_lock(&e->lock);
	uint32_t open = e->producer_count + e->subscription_count;
	if (open == 0) {
		pthread_mutex_lock(&e->calls_lock);
		e->closing = true;
		pthread_mutex_unlock(&e->calls_lock);
	}
	pthread_mutex_unlock(&e->lock);
	if (open > 0)
		return -EBUSY;
	/* The blocking calls begun before: the shards answer them (a token wait gives up).
	 * Once none is left, none reaches a shard or reads what is freed below. */
	pthread_mutex_lock(&e->calls_lock);
	while (e->calls_active > 0)
		pthread_cond_wait(&e->calls_cond, &e->calls_lock);
	pthread_mutex_unlock(&e->calls_lock);
	int first = 0;
	for (uint32_t i = 0; e->shards != NULL && i < e->shard_count; i++) {
		int rc = shard_fini(&e->shards[i]);
		if (rc < 0 && first == 0)
			first = rc;
	}
	free(e->shards);
	for (uint32_t i = 0; i < RILL_ENGINE_PROJECTIONS_MAX; i++)
		free(e->projections[i]);
	for (uint32_t i = 0; i < RILL_ENGINE_TOPICS_MAX; i++) {
		if (e->topics[i] != NULL)
			free(e->topics[i]->parts);
		free(e->topics[i]);
	}
	if (e->schemas != NULL) {
		int rc = rill_schema_registry_close(e->schemas);
		if (rc < 0 && first == 0)
			first = rc;
	}
	if (e->lock_handle >= 0)
		e->io->ops->close(e->io, e->lock_handle);
	rill_io_destroy(e->schema_io);
	rill_io_destroy(e->io);
	pthread_cond_destroy(&e->calls_cond);
	pthread_mutex_destroy(&e->calls_lock);
	pthread_mutex_destroy(&e->lock);
	free(e);
	return first;
}

struct rill_schema_registry *rill_engine_schemas(struct rill_engine *e)
{
	return e->schemas;
}

uint32_t rill_engine_shards(const struct rill_engine *e)
{
	return e->shard_count;
}

int rill_engine_shard_hook_add(struct rill_engine *e, uint32_t shard,
			       const struct rill_shard_hook *hook)
{
	if (shard >= e->shard_count || hook == NULL || hook->poll == NULL)
		return -EINVAL;
	int rc = engine_call_begin(e, NULL);
	if (rc < 0)
		return rc;
	struct shard_req req = {.kind = SHARD_REQ_HOOK_ADD, .hook = *hook};
	rc = shard_call(&e->shards[shard], &req);
	engine_call_end(e);
	return rc;
}

int rill_engine_shard_hook_remove(struct rill_engine *e, uint32_t shard, void *arg)
{
	if (shard >= e->shard_count)
		return -EINVAL;
	int rc = engine_call_begin(e, NULL);
	if (rc < 0)
		return rc;
	struct shard_req req = {.kind = SHARD_REQ_HOOK_REMOVE, .hook = {.arg = arg}};
	rc = shard_call(&e->shards[shard], &req);
	engine_call_end(e);
	return rc;
}

int rill_engine_shard_cpu(const struct rill_engine *e, uint32_t shard)
{
	if (shard >= e->shard_count || !e->config.pin)
		return -1;
	return e->shards[shard].cpu;
}

unsigned rill_engine_spare_cpus(const struct rill_engine *e, int *cpus, unsigned max)
{
	unsigned n = e->spare_cpu_count < max ? e->spare_cpu_count : max;
	if (n > 0)
		memcpy(cpus, e->io_cpus, n * sizeof(*cpus)); /* the spare ones, when any */
	return n;
}

uint64_t rill_engine_backpressure(const struct rill_engine *e)
{
	return rill_atomic_load_relaxed_u64(&e->backpressure); /* a counter: any recent value */
}

/* A name of [A-Za-z0-9_.-], 1 to RILL_ENGINE_NAME_BYTES_MAX bytes, not starting with a
 * dot (no "." or "..", and names with a leading dot are the metadata's temporary files). */
static bool engine_name_ok(const char *name)
{
	size_t n = name != NULL ? strnlen(name, RILL_ENGINE_NAME_BYTES_MAX + 1) : 0;
	if (n == 0 || n > RILL_ENGINE_NAME_BYTES_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
		if (!ok)
			return false;
	}
	return true;
}

bool rill_group_name_valid(const char *name)
{
	return engine_name_ok(name);
}

static struct engine_topic *engine_topic_find(struct rill_engine *e, const char *name)
{
	uint32_t n = (uint32_t)rill_atomic_load_acquire_u64((const uint64_t *)&e->topic_count_pub);
	for (uint32_t i = 0; i < n; i++) {
		if (strcmp(e->topics[i]->name, name) == 0)
			return e->topics[i];
	}
	return NULL;
}

struct rill_topic *rill_topic_find(struct rill_engine *e, const char *name)
{
	return name != NULL ? (struct rill_topic *)engine_topic_find(e, name) : NULL;
}

uint32_t rill_topic_partitions(const struct rill_topic *topic)
{
	return ((const struct engine_topic *)topic)->config.partitions;
}

const struct rill_topic_config *rill_topic_config_get(const struct rill_topic *topic)
{
	return &((const struct engine_topic *)topic)->config;
}

int rill_topic_each(struct rill_engine *e, rill_topic_each_fn *fn, void *arg)
{
	RILL_ASSERT(fn != NULL);
	/* R4: pairs with the release in engine_topic_open; the topics below it are complete,
	 * and a published topic is never removed or changed. */
	uint32_t n = (uint32_t)rill_atomic_load_acquire_u64((const uint64_t *)&e->topic_count_pub);
	RILL_ASSERT(n <= RILL_ENGINE_TOPICS_MAX);
	for (uint32_t i = 0; i < n; i++) {
		int rc = fn(arg, (struct rill_topic *)e->topics[i]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int rill_partition_info_get(struct rill_engine *e, struct rill_topic *topic, uint32_t partition,
			    uint64_t timestamp_ns, struct rill_partition_info *out, uint64_t *at)
{
	struct engine_topic *t = (struct engine_topic *)topic;
	if (t == NULL || out == NULL || partition >= t->config.partitions ||
	    (timestamp_ns != UINT64_MAX && at == NULL))
		return -EINVAL;
	int rc = engine_call_begin(e, NULL);
	if (rc < 0)
		return rc;
	struct shard_req req = {.kind = SHARD_REQ_PART_INFO,
				.topic = t,
				.partition = partition,
				.as_of_ns = timestamp_ns,
				.info = out};
	rc = shard_call(&e->shards[t->parts[partition].shard], &req);
	engine_call_end(e);
	if (rc == 0 && at != NULL)
		*at = req.as_of_offset;
	return rc;
}

/* The arguments of rill_group_commit and rill_group_offset: 0, or -EINVAL saying which. */
static int engine_group_check(const char *group, const struct engine_topic *t, uint32_t partition,
			      struct rill_error_text *err)
{
	if (group == NULL || !engine_name_ok(group))
		return engine_error(err, -EINVAL,
				    "group name: 1 to %u characters of A-Z a-z 0-9 _ . -, not "
				    "starting with a dot",
				    RILL_ENGINE_NAME_BYTES_MAX);
	if (t == NULL)
		return engine_error(err, -EINVAL, "no topic");
	if (partition >= t->config.partitions)
		return engine_error(err, -EINVAL, "topic %s has no partition %u", t->name,
				    partition);
	return 0;
}

/*
 * The positions of a rill_group_commit_many, before anything is asked of a shard: their
 * count (1 to the topic's partitions), each partition one the topic has and given once,
 * each offset up to 2^63 - 1 (the group file's JSON integers). 0, or -EINVAL saying which.
 * With one position, the texts are rill_group_commit's as they always were.
 */
static int engine_group_positions_check(const struct engine_topic *t,
					const struct rill_group_position *pos, uint32_t count,
					struct rill_error_text *err)
{
	if (pos == NULL || count == 0)
		return engine_error(err, -EINVAL, "no positions to commit for topic %s", t->name);
	if (count > t->config.partitions)
		return engine_error(err, -EINVAL,
				    "%u positions for topic %s of %u partitions: one each at most",
				    count, t->name, t->config.partitions);
	uint64_t seen[RILL_ENGINE_PARTITIONS_MAX / 64] = {0};
	_Static_assert(RILL_ENGINE_PARTITIONS_MAX % 64 == 0, "a bit for every partition");
	for (uint32_t i = 0; i < count; i++) {
		uint32_t p = pos[i].partition;
		if (p >= t->config.partitions)
			return engine_error(err, -EINVAL, "topic %s has no partition %u", t->name,
					    p);
		RILL_ASSERT(p < RILL_ENGINE_PARTITIONS_MAX);
		if (seen[p / 64] & (1ull << (p % 64)))
			return engine_error(err, -EINVAL,
					    "topic %s partition %u: given twice (one position "
					    "each)",
					    t->name, p);
		seen[p / 64] |= 1ull << (p % 64);
		if (pos[i].next_offset > INT64_MAX && count == 1)
			return engine_error(err, -EINVAL, "offset %" PRIu64 " past 2^63 - 1",
					    pos[i].next_offset);
		if (pos[i].next_offset > INT64_MAX)
			return engine_error(err, -EINVAL,
					    "topic %s partition %u: offset %" PRIu64
					    " past 2^63 - 1",
					    t->name, p, pos[i].next_offset);
	}
	return 0;
}

/* Each position up to its partition's durable offset: 0, -ERANGE naming the first past it
 * (a crash could take the log back below it), or the error asking its shard. */
static int engine_group_positions_durable(struct rill_engine *e, struct engine_topic *t,
					  const struct rill_group_position *pos, uint32_t count,
					  struct rill_error_text *err)
{
	for (uint32_t i = 0; i < count; i++) {
		uint32_t p = pos[i].partition;
		struct rill_partition_info info;
		int rc = rill_partition_info_get(e, (struct rill_topic *)t, p, UINT64_MAX, &info,
						 NULL);
		if (rc < 0)
			return engine_error(err, rc, "topic %s partition %u: %s", t->name, p,
					    rill_strerror(rc));
		if (pos[i].next_offset > info.durable_offset)
			return engine_error(err, -ERANGE,
					    "offset %" PRIu64 " is past topic %s partition %u's "
					    "durable offset %" PRIu64,
					    pos[i].next_offset, t->name, p, info.durable_offset);
	}
	return 0;
}

int rill_group_commit_many(struct rill_engine *e, const char *group, struct rill_topic *topic,
			   const struct rill_group_position *positions, uint32_t count,
			   struct rill_error_text *err)
{
	struct engine_topic *t = (struct engine_topic *)topic;
	int rc = engine_group_check(group, t, 0, err); /* every topic has a partition 0 */
	if (rc == 0)
		rc = engine_group_positions_check(t, positions, count, err);
	if (rc == 0)
		rc = engine_group_positions_durable(e, t, positions, count, err);
	if (rc < 0)
		return rc;
	rc = engine_call_begin(e, err);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&e->lock);
	rc = engine_meta_group_commit(e, group, t->name, positions, count, err);
	pthread_mutex_unlock(&e->lock);
	engine_call_end(e);
	return rc;
}

int rill_group_commit(struct rill_engine *e, const char *group, struct rill_topic *topic,
		      uint32_t partition, uint64_t next_offset, struct rill_error_text *err)
{
	const struct rill_group_position one = {.partition = partition, .next_offset = next_offset};
	return rill_group_commit_many(e, group, topic, &one, 1, err);
}

int rill_group_offset(struct rill_engine *e, const char *group, struct rill_topic *topic,
		      uint32_t partition, uint64_t *next_offset, struct rill_error_text *err)
{
	const struct engine_topic *t = (const struct engine_topic *)topic;
	int rc = engine_group_check(group, t, partition, err);
	if (rc == 0 && next_offset == NULL)
		rc = engine_error(err, -EINVAL, "no next_offset");
	if (rc < 0)
		return rc;
	rc = engine_call_begin(e, err);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&e->lock);
	rc = engine_meta_group_offset(e, group, t->name, partition, next_offset, err);
	pthread_mutex_unlock(&e->lock);
	engine_call_end(e);
	return rc;
}

int rill_group_delete(struct rill_engine *e, const char *group)
{
	if (group == NULL || !engine_name_ok(group))
		return -EINVAL;
	int rc = engine_call_begin(e, NULL);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&e->lock);
	rc = engine_meta_group_delete(e, group);
	pthread_mutex_unlock(&e->lock);
	engine_call_end(e);
	return rc;
}

uint32_t rill_group_count(struct rill_engine *e)
{
	pthread_mutex_lock(&e->lock);
	uint32_t n = e->group_count;
	pthread_mutex_unlock(&e->lock);
	return n;
}

static int engine_topic_check(const struct rill_topic_config *c, struct rill_error_text *err)
{
	if (!engine_name_ok(c->name))
		return engine_error(err, -EINVAL,
				    "topic name: 1 to %u characters of A-Z a-z 0-9 _ . -, not "
				    "starting with a dot",
				    RILL_ENGINE_NAME_BYTES_MAX);
	if (c->partitions == 0 || c->partitions > RILL_ENGINE_PARTITIONS_MAX)
		return engine_error(err, -EINVAL, "topic %s: partitions: 1 to %u", c->name,
				    RILL_ENGINE_PARTITIONS_MAX);
	if (c->durability != RILL_DURABILITY_NONE && c->durability != RILL_DURABILITY_GROUP)
		return engine_error(err, -EINVAL, "topic %s: durability: none or group", c->name);
	/* The log's own limits (engine/log.c), checked here so that a definition the log
	 * would refuse is never stored. */
	if (c->batch_bytes_max != 0 &&
	    (c->batch_bytes_max < 4096 || c->batch_bytes_max > RILL_LOG_BATCH_BYTES_MAX / 2))
		return engine_error(err, -EINVAL, "topic %s: batch_bytes_max: 0 or 4096 to %u",
				    c->name, RILL_LOG_BATCH_BYTES_MAX / 2);
	if (c->segment_bytes_max != 0 && c->segment_bytes_max < (64u << 10))
		return engine_error(err, -EINVAL,
				    "topic %s: segment_bytes_max: 0 or at least 65536", c->name);
	if (c->batch_delay_ns > 10ull * 1000000000u)
		return engine_error(err, -EINVAL, "topic %s: batch_delay_ns: at most 10 s",
				    c->name);
	/* topic.json holds JSON integers (signed 64-bit): a larger value would be stored
	 * negative and refused at the next open. 0 is "no limit". */
	if (c->retention_bytes > INT64_MAX || c->retention_age_ns > INT64_MAX ||
	    c->segment_bytes_max > INT64_MAX)
		return engine_error(err, -EINVAL,
				    "topic %s: retention_bytes, retention_age_ns and "
				    "segment_bytes_max: at most 2^63 - 1 (0: no limit)",
				    c->name);
	return 0;
}

/*
 * The shard partition p of the topic with index @index goes to, given what each owns
 * (@load): the one owning fewest, ties to the first from (index + p) mod shards. Placed
 * so, partitions never crowd a shard while another has room: topics that fit in the order
 * they were made fit in any other (a reopen loads them in name order), whereas a fixed
 * (index + p) rotation could put a 65th on one shard at reopen and refuse the open.
 */
static uint32_t engine_topic_place(const struct rill_engine *e, const uint32_t *load,
				   uint32_t index, uint32_t p)
{
	uint32_t n = e->shard_count, best = (index + p) % n;
	for (uint32_t k = 1; k < n; k++) {
		uint32_t s = (index + p + k) % n;
		if (load[s] < load[best])
			best = s;
	}
	return best;
}

/* The checks engine_topic_open would fail, made before anything is stored. */
static int engine_topic_fits(struct rill_engine *e, const struct rill_topic_config *c,
			     struct rill_error_text *err)
{
	int rc = engine_topic_check(c, err);
	if (rc < 0)
		return rc;
	uint32_t index = e->topic_count;
	if (index == RILL_ENGINE_TOPICS_MAX)
		return engine_error(err, -ENOSPC, "topic %s: the engine holds %u topics already",
				    c->name, RILL_ENGINE_TOPICS_MAX);
	/* Every shard's logs share its backend, whose calls in flight are bounded: placed as
	 * engine_topic_open will. */
	uint32_t load[RILL_ENGINE_SHARDS_MAX];
	memcpy(load, e->shard_partitions, sizeof(load));
	for (uint32_t p = 0; p < c->partitions; p++) {
		uint32_t s = engine_topic_place(e, load, index, p);
		if (load[s] == RILL_IO_INFLIGHT_MAX) {
			uint64_t held = 0;
			for (uint32_t i = 0; i < e->shard_count; i++)
				held += e->shard_partitions[i];
			uint64_t all = held + c->partitions;
			return engine_error(
				err, -ENOSPC,
				"topic %s: its %u partitions do not fit beside the %" PRIu64
				" the engine holds (%" PRIu64 " in all): %u shard%s of %u "
				"partitions each at most: at least %" PRIu64 " shards are needed",
				c->name, c->partitions, held, all, e->shard_count,
				e->shard_count == 1 ? "" : "s", RILL_IO_INFLIGHT_MAX,
				(all + RILL_IO_INFLIGHT_MAX - 1) / RILL_IO_INFLIGHT_MAX);
		}
		load[s]++;
	}
	return 0;
}

/* Close the first @opened partitions of @t (never published) and forget it. */
static void engine_topic_undo(struct rill_engine *e, struct engine_topic *t, uint32_t opened)
{
	for (uint32_t p = 0; p < opened; p++) {
		struct shard_req req = {.kind = SHARD_REQ_PART_CLOSE, .topic = t, .partition = p};
		(void)shard_call(&e->shards[t->parts[p].shard], &req); /* errors: logged there */
		e->shard_partitions[t->parts[p].shard]--;
	}
	e->topics[t->index] = NULL;
	e->topic_count = t->index;
	free(t->parts);
	free(t);
}

/*
 * Open topic @c on the shards and publish it. Under e->lock, or at open. @create: a new
 * topic, whose definition is stored once its partitions' folders are made (so that a
 * stored topic whose folder is missing has lost it: its load refuses, rather than make
 * it anew, empty, with offsets from 0 again); otherwise a stored topic's load.
 */
static int engine_topic_open(struct rill_engine *e, const struct rill_topic_config *c, bool create,
			     struct rill_error_text *err)
{
	int rc = engine_topic_fits(e, c, err);
	if (rc < 0)
		return rc;
	uint32_t index = e->topic_count;
	struct engine_topic *t = calloc(1, sizeof(*t));
	if (t == NULL || (t->parts = calloc(c->partitions, sizeof(*t->parts))) == NULL) {
		free(t);
		return engine_error(err, -ENOMEM, "out of memory");
	}
	t->engine = e;
	t->index = index;
	snprintf(t->name, sizeof(t->name), "%s", c->name);
	t->config = *c;
	t->config.name = t->name;
	e->topics[index] = t; /* visible to shards through the requests below; not yet found */
	e->topic_count = index + 1;
	for (uint32_t p = 0; p < c->partitions; p++) {
		uint32_t s = engine_topic_place(e, e->shard_partitions, index, p); /* as fits */
		t->parts[p].shard = s;
		struct shard_req req = {.kind = SHARD_REQ_PART_OPEN,
					.topic = t,
					.partition = p,
					.must_exist = !create,
					.err = err};
		rc = shard_call(&e->shards[s], &req);
		if (rc < 0) {
			engine_topic_undo(e, t, p);
			return rc;
		}
		e->shard_partitions[s]++;
	}
	rc = create ? engine_meta_topic_write(e, c) : 0;
	if (rc < 0) {
		engine_error(err, rc, "topic %s: storing its definition: %s", c->name,
			     rill_strerror(rc));
		engine_topic_undo(e, t, c->partitions);
		return rc;
	}
	/* R4: pairs with the acquires in engine_topic_find and rill_topic_each; the topic is
	 * complete. */
	rill_atomic_store_release_u64(&e->topic_count_pub, index + 1);
	return 0;
}

static int engine_topic_load(struct rill_engine *e, const struct rill_topic_config *c,
			     struct rill_error_text *err)
{
	return engine_topic_open(e, c, false, err);
}

int rill_topic_create(struct rill_engine *e, const struct rill_topic_config *config,
		      struct rill_topic **out, struct rill_error_text *err)
{
	if (config == NULL)
		return engine_error(err, -EINVAL, "topic: no config");
	int rc = engine_topic_check(config, err);
	if (rc == 0)
		rc = engine_call_begin(e, err);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&e->lock);
	struct engine_topic *t = engine_topic_find(e, config->name);
	if (t != NULL) {
		if (t->config.partitions != config->partitions ||
		    t->config.durability != config->durability)
			rc = engine_error(
				err, -EEXIST, "topic %s exists with %u partitions, durability %s",
				t->name, t->config.partitions,
				t->config.durability == RILL_DURABILITY_GROUP ? "group" : "none");
		goto out_unlock;
	}
	RILL_ASSERT(e->topic_count == (uint32_t)e->topic_count_pub); /* failures undo */
	rc = engine_topic_fits(e, config, err);
	if (rc < 0)
		goto out_unlock;
	rc = engine_meta_topic_dir(e, config->name);
	if (rc < 0) {
		engine_error(err, rc, "topic %s: making its folder: %s", config->name,
			     rill_strerror(rc));
		goto out_unlock;
	}
	rc = engine_topic_open(e, config, true, err);
	if (rc == 0)
		t = e->topics[e->topic_count - 1];
	else
		engine_meta_topic_remove(e, config->name); /* a later open must not meet it */
out_unlock:
	pthread_mutex_unlock(&e->lock);
	engine_call_end(e);
	if (rc == 0 && out != NULL)
		*out = (struct rill_topic *)t;
	return rc;
}

static struct engine_projection *engine_projection_find(struct rill_engine *e, const char *name)
{
	uint32_t n = (uint32_t)rill_atomic_load_acquire_u64(&e->projection_count_pub);
	for (uint32_t i = 0; i < n; i++) {
		if (strcmp(e->projections[i]->name, name) == 0)
			return e->projections[i];
	}
	return NULL;
}

struct rill_topic *rill_projection_topic(struct rill_engine *e, const char *name)
{
	struct engine_projection *ep = name != NULL ? engine_projection_find(e, name) : NULL;
	return ep != NULL ? (struct rill_topic *)ep->topic : NULL;
}

int rill_projection_each(struct rill_engine *e, rill_projection_each_fn *fn, void *arg)
{
	RILL_ASSERT(fn != NULL);
	/* R5: pairs with the release in engine_projection_build; as rill_topic_each. */
	uint32_t n = (uint32_t)rill_atomic_load_acquire_u64(&e->projection_count_pub);
	RILL_ASSERT(n <= RILL_ENGINE_PROJECTIONS_MAX);
	for (uint32_t i = 0; i < n; i++) {
		int rc = fn(arg, &e->projections[i]->def);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static bool engine_projection_same(const struct rill_projection_def *a,
				   const struct rill_projection_def *b)
{
	return strcmp(a->topic, b->topic) == 0 && strcmp(a->type, b->type) == 0 &&
	       (b->version == 0 || a->version == b->version) && a->kind == b->kind &&
	       strcmp(a->field != NULL ? a->field : "", b->field != NULL ? b->field : "") == 0 &&
	       a->window_ns == b->window_ns;
}

/* Check @d against the registry and resolve its version (0: the latest now). */
static int engine_projection_check(struct rill_engine *e, struct rill_projection_def *d,
				   struct rill_error_text *err)
{
	if (d->name == NULL || d->topic == NULL || d->type == NULL)
		return engine_error(err, -EINVAL, "projection: name, topic and type are needed");
	if (engine_topic_find(e, d->topic) == NULL)
		return engine_error(err, -ENOENT, "projection %s: no topic %s", d->name, d->topic);
	const struct rill_schema *schema = rill_schema_get(e->schemas, d->type, d->version);
	if (schema == NULL)
		return engine_error(err, -ENOENT,
				    "projection %s: type %s version %u not registered", d->name,
				    d->type, d->version);
	d->version = rill_schema_version(schema);
	/* A trial instance checks name, kind, field and window the way the shards will. */
	struct rill_projection_config pc;
	rill_projection_config_default(&pc);
	pc.name = d->name;
	pc.type = d->type;
	pc.version = d->version;
	pc.kind = d->kind;
	pc.field = d->field;
	pc.window_ns = d->window_ns;
	pc.keys_max = 16;
	pc.key_store_bytes = 4096;
	struct rill_schema_error serr;
	struct rill_projection *trial;
	int rc = rill_projection_create(&trial, e->schemas, &pc, &serr);
	if (rc < 0)
		return engine_error(err, rc, "projection %s: %s", d->name, serr.message);
	rill_projection_destroy(trial);
	return 0;
}

static int engine_projection_build(struct rill_engine *e, struct engine_projection *ep,
				   struct rill_error_text *err);
static void engine_projection_publish(struct rill_engine *e, struct engine_projection *ep);

/* Whether a new projection @name on @t fits both the engine's and the topic's limit, checked
 * before anything is stored or built: past the topic's, each partition's bind would refuse
 * it with a bare -ENOSPC halfway through the build. Under e->lock, or at open. */
static int engine_projection_room(const struct rill_engine *e, const struct engine_topic *t,
				  const char *name, struct rill_error_text *err)
{
	if (e->projection_count == RILL_ENGINE_PROJECTIONS_MAX)
		return engine_error(err, -ENOSPC, "projection %s: the engine holds %u already",
				    name, RILL_ENGINE_PROJECTIONS_MAX);
	uint32_t on_topic = 0;
	for (uint32_t i = 0; i < e->projection_count; i++)
		on_topic += e->projections[i]->topic == t;
	if (on_topic >= RILL_ENGINE_TOPIC_PROJECTIONS_MAX)
		return engine_error(err, -ENOSPC,
				    "projection %s: topic %s holds %u projections already, the "
				    "most a topic may have",
				    name, t->name, RILL_ENGINE_TOPIC_PROJECTIONS_MAX);
	return 0;
}

/* Check @d and build it on the shards into *@out, the next projection, not yet published:
 * the caller publishes it (engine_projection_publish) or undoes it. */
static int engine_projection_make(struct rill_engine *e, const struct rill_projection_def *d,
				  struct engine_projection **out, struct rill_error_text *err)
{
	struct rill_projection_def def = *d;
	int rc = engine_projection_check(e, &def, err);
	if (rc < 0)
		return rc;
	struct engine_topic *t = engine_topic_find(e, def.topic);
	rc = engine_projection_room(e, t, def.name, err);
	if (rc < 0)
		return rc;
	struct engine_projection *ep = calloc(1, sizeof(*ep));
	if (ep == NULL)
		return engine_error(err, -ENOMEM, "out of memory");
	snprintf(ep->name, sizeof(ep->name), "%s", def.name);
	snprintf(ep->type, sizeof(ep->type), "%s", def.type);
	snprintf(ep->field, sizeof(ep->field), "%s", def.field != NULL ? def.field : "");
	ep->topic = t;
	ep->def = def;
	ep->def.name = ep->name;
	ep->def.topic = ep->topic->name;
	ep->def.type = ep->type;
	ep->def.field = def.field != NULL ? ep->field : NULL;
	rc = engine_projection_build(e, ep, err); /* frees @ep on failure */
	if (rc == 0)
		*out = ep;
	return rc;
}

/* A stored definition, at open: made and published. */
static int engine_projection_open(struct rill_engine *e, const struct rill_projection_def *d,
				  struct rill_error_text *err)
{
	struct engine_projection *ep;
	int rc = engine_projection_make(e, d, &ep, err);
	if (rc == 0)
		engine_projection_publish(e, ep);
	return rc;
}

/* Undo a projection whose build failed: no shard keeps an instance, the slot is free. */
static void engine_projection_undo(struct rill_engine *e, struct engine_projection *ep)
{
	for (uint32_t s = 0; s < e->shard_count; s++) {
		struct shard_req req = {.kind = SHARD_REQ_PROJECTION_DROP, .proj = ep};
		(void)shard_call(&e->shards[s], &req);
	}
	RILL_ASSERT(e->projection_count == ep->index + 1);
	e->projections[ep->index] = NULL;
	e->projection_count = ep->index;
	free(ep);
}

/* Make @ep (complete but for its instances) the next projection: build it on every shard
 * that owns a partition of its topic, unpublished (found by no lookup) until
 * engine_projection_publish; undone on failure. Under e->lock, or at open. */
static int engine_projection_build(struct rill_engine *e, struct engine_projection *ep,
				   struct rill_error_text *err)
{
	uint32_t index = e->projection_count;
	RILL_ASSERT(index < RILL_ENGINE_PROJECTIONS_MAX); /* checked by the callers */
	ep->index = index;
	e->projections[index] = ep;
	e->projection_count = index + 1;
	for (uint32_t s = 0; s < e->shard_count; s++) {
		bool owns = false;
		for (uint32_t p = 0; p < ep->topic->config.partitions && !owns; p++)
			owns = ep->topic->parts[p].shard == s;
		if (!owns)
			continue;
		struct shard_req req = {.kind = SHARD_REQ_PROJECTION_ADD, .proj = ep, .err = err};
		int rc = shard_call(&e->shards[s], &req);
		if (rc < 0) {
			engine_projection_undo(e, ep);
			return rc;
		}
	}
	return 0;
}

/* @ep, built, found by lookups from now on. Under e->lock, or at open. */
static void engine_projection_publish(struct rill_engine *e, struct engine_projection *ep)
{
	RILL_ASSERT(e->projection_count == ep->index + 1);
	/* R5: pairs with the acquires in engine_projection_find and rill_projection_each; the
	 * projection is complete. */
	rill_atomic_store_release_u64(&e->projection_count_pub, ep->index + 1);
}

int rill_projection_define_custom(struct rill_engine *e, const char *name, const char *topic,
				  const struct rill_projection_ops *ops, void *arg,
				  struct rill_error_text *err)
{
	if (ops == NULL || ops->init == NULL || ops->apply == NULL || ops->query == NULL ||
	    ops->snapshot == NULL || ops->restore == NULL || ops->destroy == NULL)
		return engine_error(err, -EINVAL, "custom projection: every operation is needed");
	if (!rill_projection_name_valid(name) || topic == NULL)
		return engine_error(
			err, -EINVAL,
			"custom projection: a topic and a name of [A-Za-z_][A-Za-z0-9_.-]*, "
			"1 to %u characters, are needed",
			RILL_PROJECTION_NAME_BYTES_MAX);
	int rc = engine_call_begin(e, err);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&e->lock);
	struct engine_topic *t = engine_topic_find(e, topic);
	struct engine_projection *ep = engine_projection_find(e, name);
	if (t == NULL)
		rc = engine_error(err, -ENOENT, "custom projection %s: no topic %s", name, topic);
	else if (ep != NULL && (ep->ops != ops || ep->ops_arg != arg || ep->topic != t))
		rc = engine_error(err, -EEXIST, "projection %s exists, otherwise defined", name);
	else if (ep == NULL && e->projection_count != (uint32_t)e->projection_count_pub)
		rc = engine_error(err, -EIO,
				  "an earlier projection failed to build: reopen the engine");
	else if (ep == NULL)
		rc = engine_projection_room(e, t, name, err);
	if (rc == 0 && ep == NULL) {
		ep = calloc(1, sizeof(*ep));
		if (ep == NULL) {
			rc = engine_error(err, -ENOMEM, "out of memory");
		} else {
			snprintf(ep->name, sizeof(ep->name), "%s", name);
			ep->topic = t;
			ep->ops = ops;
			ep->ops_arg = arg;
			ep->def = (struct rill_projection_def){.name = ep->name, .topic = t->name};
			rc = engine_projection_build(e, ep, err);
			if (rc == 0)
				engine_projection_publish(e, ep);
		}
	}
	pthread_mutex_unlock(&e->lock);
	engine_call_end(e);
	return rc;
}

int rill_projection_define(struct rill_engine *e, const struct rill_projection_def *def,
			   struct rill_error_text *err)
{
	if (def == NULL)
		return engine_error(err, -EINVAL, "projection: no definition");
	struct rill_projection_def d = *def;
	int rc = engine_call_begin(e, err);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&e->lock);
	rc = engine_projection_check(e, &d, err);
	if (rc < 0)
		goto out_unlock;
	struct engine_projection *ep = engine_projection_find(e, d.name);
	if (ep != NULL) {
		struct rill_projection_def asked = d;
		asked.version = def->version; /* 0: whatever it resolved to then */
		if (ep->ops != NULL || !engine_projection_same(&ep->def, &asked))
			rc = engine_error(err, -EEXIST, "projection %s exists, otherwise defined",
					  d.name);
		goto out_unlock;
	}
	/* A field or a window the kind does not use would be ignored without a word: refused
	 * for a new projection (one stored before this check still loads, and defining it
	 * again as it was stays a no-op). */
	bool counts = d.kind == RILL_PROJECTION_COUNT || d.kind == RILL_PROJECTION_WINDOW_COUNT;
	bool windowed =
		d.kind == RILL_PROJECTION_WINDOW_COUNT || d.kind == RILL_PROJECTION_WINDOW_SUM;
	if (counts && d.field != NULL) {
		rc = engine_error(err, -EINVAL, "projection %s: kind %s takes no field", d.name,
				  rill_projection_kind_name(d.kind));
		goto out_unlock;
	}
	if (d.window_ns > INT64_MAX) { /* stored as a JSON integer (signed 64-bit) */
		rc = engine_error(err, -EINVAL, "projection %s: window_ns: at most 2^63 - 1",
				  d.name);
		goto out_unlock;
	}
	if (!windowed && d.window_ns != 0) {
		rc = engine_error(err, -EINVAL,
				  "projection %s: a window applies to window_count and window_sum "
				  "only",
				  d.name);
		goto out_unlock;
	}
	if (e->projection_count != (uint32_t)e->projection_count_pub) {
		rc = engine_error(err, -EIO,
				  "an earlier projection failed to build: reopen the engine");
		goto out_unlock;
	}
	rc = engine_projection_room(e, engine_topic_find(e, d.topic), d.name, err);
	if (rc < 0)
		goto out_unlock;
	/* M4 (engine_meta.c): stored as pending, built, then named NAME.json, then answered;
	 * a crash before the rename leaves a pending file the next open removes. Stored first
	 * so that a full disk refuses before the build's work. */
	rc = engine_meta_projection_stage(e, &d);
	if (rc < 0) {
		engine_error(err, rc, "projection %s: storing its definition: %s", d.name,
			     rill_strerror(rc));
		goto out_unlock;
	}
	struct engine_projection *made = NULL;
	rc = engine_projection_make(e, &d, &made, err);
	if (rc < 0) {
		engine_meta_projection_discard(e, d.name);
		goto out_unlock;
	}
	rc = engine_meta_projection_commit(e, d.name);
	if (rc < 0) {
		/* Not stored: undone, so that it answers nothing a restart would not have. */
		engine_projection_undo(e, made);
		engine_error(err, rc, "projection %s: storing its definition: %s", d.name,
			     rill_strerror(rc));
		goto out_unlock;
	}
	engine_projection_publish(e, made);
out_unlock:
	pthread_mutex_unlock(&e->lock);
	engine_call_end(e);
	return rc;
}

static void engine_nap(void)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = ENGINE_QUERY_NAP_NS};
	nanosleep(&ts, NULL);
}

/* Check a query's arguments and find its projection and the key's partition. */
static int engine_query_target(struct rill_engine *e, const char *name, const void *key,
			       size_t key_bytes, struct engine_projection **ep, uint32_t *partition)
{
	if (name == NULL || key_bytes > RILL_KEY_BYTES_MAX || (key == NULL && key_bytes > 0))
		return -EINVAL;
	*ep = engine_projection_find(e, name);
	if (*ep == NULL)
		return -ENOENT;
	*partition = rill_topic_partition((struct rill_topic *)(*ep)->topic, key, key_bytes);
	return 0;
}

static const uint8_t engine_empty_key[1]; /* a query's key when it has none */

/* Send query @req (its kind and answer fields set) for @key to the owner shard of
 * partition @p of @ep's topic; returns the shard's answer. */
static int engine_query_send(struct rill_engine *e, struct shard_req *req,
			     struct engine_projection *ep, uint32_t p, const void *key,
			     size_t key_bytes)
{
	req->proj = ep;
	req->partition = p;
	req->key = key != NULL ? key : engine_empty_key;
	req->key_bytes = (uint32_t)key_bytes;
	return shard_call(&e->shards[ep->topic->parts[p].shard], req);
}

/* With a token: wait until its offset is applied, or until @timeout_ns passes. */
static int engine_token_wait(struct rill_engine *e, struct engine_projection *ep,
			     const struct rill_token *after, uint64_t timeout_ns)
{
	struct engine_topic *t = ep->topic;
	if (after->partition >= t->config.partitions)
		return -EINVAL;
	uint64_t now = rill_clock_now_ns();
	uint64_t deadline = timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
	for (;;) {
		struct shard_req req = {.kind = SHARD_REQ_QUERY,
					.proj = ep,
					.partition = after->partition,
					.min_offset = after->offset};
		int rc = shard_call(&e->shards[t->parts[after->partition].shard], &req);
		if (rc != RILL_E_QUERY_STALE)
			return rc;
		if (rill_clock_now_ns() >= deadline)
			return RILL_E_QUERY_STALE;
		if (engine_closing(e))
			return -ESHUTDOWN; /* rill_engine_close waits for this call */
		engine_nap();
	}
}

static int engine_query(struct rill_engine *e, const char *name, const void *key, size_t key_bytes,
			const struct rill_token *after, uint64_t timeout_ns,
			struct rill_projection_value *out)
{
	struct engine_projection *ep;
	uint32_t p;
	int rc = out == NULL ? -EINVAL : engine_query_target(e, name, key, key_bytes, &ep, &p);
	if (rc == 0 && ep->ops != NULL)
		rc = -EINVAL; /* a custom projection: rill_query_custom */
	if (rc == 0 && after != NULL)
		rc = engine_token_wait(e, ep, after, timeout_ns);
	if (rc < 0)
		return rc;
	struct shard_req req = {.kind = SHARD_REQ_QUERY, .value = out};
	return engine_query_send(e, &req, ep, p, key, key_bytes);
}

int rill_query(struct rill_engine *e, const char *name, const void *key, size_t key_bytes,
	       const struct rill_token *after, uint64_t timeout_ns,
	       struct rill_projection_value *out)
{
	int rc = engine_call_begin(e, NULL);
	if (rc < 0)
		return rc;
	rc = engine_query(e, name, key, key_bytes, after, timeout_ns, out);
	engine_call_end(e);
	return rc;
}

static int64_t engine_query_custom(struct rill_engine *e, const char *name, const void *key,
				   size_t key_bytes, const struct rill_token *after,
				   uint64_t timeout_ns, void *out, size_t out_bytes)
{
	struct engine_projection *ep;
	uint32_t p;
	int rc = out == NULL && out_bytes > 0
			 ? -EINVAL
			 : engine_query_target(e, name, key, key_bytes, &ep, &p);
	if (rc == 0 && ep->ops == NULL)
		rc = -EINVAL; /* a built-in projection: rill_query */
	if (rc == 0 && after != NULL)
		rc = engine_token_wait(e, ep, after, timeout_ns);
	if (rc < 0)
		return rc;
	struct shard_req req = {.kind = SHARD_REQ_QUERY, .out = out, .out_bytes = out_bytes};
	rc = engine_query_send(e, &req, ep, p, key, key_bytes);
	return rc < 0 ? rc : req.out_len;
}

int64_t rill_query_custom(struct rill_engine *e, const char *name, const void *key,
			  size_t key_bytes, const struct rill_token *after, uint64_t timeout_ns,
			  void *out, size_t out_bytes)
{
	int rc = engine_call_begin(e, NULL);
	if (rc < 0)
		return rc;
	int64_t len =
		engine_query_custom(e, name, key, key_bytes, after, timeout_ns, out, out_bytes);
	engine_call_end(e);
	return len;
}

int rill_query_as_of(struct rill_engine *e, const char *name, const void *key, size_t key_bytes,
		     uint64_t offset, uint64_t timestamp_ns, struct rill_projection_value *out)
{
	int rc = engine_call_begin(e, NULL);
	if (rc < 0)
		return rc;
	struct engine_projection *ep;
	uint32_t p;
	rc = out == NULL ? -EINVAL : engine_query_target(e, name, key, key_bytes, &ep, &p);
	if (rc == 0 && ep->ops != NULL)
		rc = -EINVAL; /* built-in projections only */
	struct shard_req req = {.kind = SHARD_REQ_QUERY_AS_OF,
				.as_of_offset = offset,
				.as_of_ns = timestamp_ns,
				.value = out};
	if (rc == 0)
		rc = engine_query_send(e, &req, ep, p, key, key_bytes);
	engine_call_end(e);
	return rc;
}

int rill_command_handler_set(struct rill_engine *e, struct rill_topic *topic, uint32_t type_id,
			     rill_command_fn fn, void *arg)
{
	struct engine_topic *t = (struct engine_topic *)topic;
	if (t == NULL)
		return -EINVAL;
	int rc = engine_call_begin(e, NULL);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&e->lock); /* one change at a time: every shard sees the same */
	for (uint32_t i = 0; i < e->shard_count && rc == 0; i++) {
		struct shard_req req = {.kind = SHARD_REQ_HANDLER_SET,
					.topic = t,
					.type_id = type_id,
					.handler = fn,
					.handler_arg = arg};
		rc = shard_call(&e->shards[i], &req);
	}
	pthread_mutex_unlock(&e->lock);
	engine_call_end(e);
	return rc;
}

int rill_engine_snapshot(struct rill_engine *e)
{
	int first = engine_call_begin(e, NULL);
	if (first < 0)
		return first;
	for (uint32_t i = 0; i < e->shard_count; i++) {
		struct shard_req req = {.kind = SHARD_REQ_SNAPSHOT};
		int rc = shard_call(&e->shards[i], &req);
		if (rc < 0 && first == 0)
			first = rc;
	}
	engine_call_end(e);
	return first;
}

int rill_engine_shard_stats(struct rill_engine *e, uint32_t shard, struct rill_shard_stats *out)
{
	if (shard >= e->shard_count || out == NULL)
		return -EINVAL;
	int rc = engine_call_begin(e, NULL);
	if (rc < 0)
		return rc;
	struct shard_req req = {.kind = SHARD_REQ_STATS, .stats = out};
	rc = shard_call(&e->shards[shard], &req);
	engine_call_end(e);
	return rc;
}
