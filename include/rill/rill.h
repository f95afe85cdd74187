/*
 * rill: an event stream engine to embed. This is the one header an embedding application
 * includes: error codes, limits, the event record codec, event schemas, and the engine.
 *
 * The engine in one paragraph. rill_engine_open starts one thread per shard, pinned, over a
 * data directory. Topics have partitions; an event's partition is XXH3(key) mod
 * partitions, and each partition belongs to one shard, which validates every event against
 * the write model (registered type, valid payload, producer idempotence), appends it to the
 * partition's log, folds it into the projections bound to the topic, and acknowledges it.
 * A host thread publishes through a producer handle of its own (one SPSC ring to each
 * shard, one back for acknowledgements); acknowledgements come back by callback, run by
 * rill_producer_poll on the producer's thread. Queries go to the shard that owns the key.
 *
 *   struct rill_engine_config cfg;
 *   rill_engine_config_default(&cfg);
 *   cfg.data_dir = "/var/lib/rill";
 *   rill_engine_open(&engine, &cfg, &err);
 *   rill_schema_register(rill_engine_schemas(engine), json, strlen(json), -1, &schema, &serr);
 *   rill_topic_create(engine, &topic_cfg, &topic, &err);
 *   rill_projection_define(engine, &proj_cfg, &err);
 *   rill_producer_open(engine, &prod_cfg, &producer);
 *   rill_publish(producer, topic, &event, RILL_ACKS_APPLIED, cookie);   (-EAGAIN: poll, retry)
 *   rill_producer_poll(producer, 0);                                   (runs the callbacks)
 *   rill_query(engine, "orders_total", key, key_bytes, &token, timeout_ns, &value);
 *   rill_producer_close(producer);
 *   rill_engine_close(engine);                                          (drain, final sync)
 */
#ifndef RILL_RILL_H
#define RILL_RILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rill/error.h"
#include "rill/limits.h"
#include "rill/projection.h"
#include "rill/record.h"
#include "rill/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

/* rill_version - the library's version, "MAJOR.MINOR.PATCH". Any thread. */
const char *rill_version(void);

/* A message saying what went wrong and where, filled by calls that take one. */
struct rill_error_text {
	char message[512];
};

/*
 * When an event may be acknowledged as stored, per topic. The log writes and syncs every
 * batch the same way in both modes; the mode says which of the two points counts.
 */
enum rill_durability {
	RILL_DURABILITY_NONE = 0,  /* acknowledged once appended in memory */
	RILL_DURABILITY_GROUP = 1, /* acknowledged after the covering fdatasync */
};

/* How a shard waits for work. */
enum rill_poll_mode {
	RILL_POLL_ADAPTIVE = 0, /* spin briefly, then sleep until woken (eventfd): the default */
	RILL_POLL_BUSY = 1,     /* never sleep: for cores of their own (isolcpus) */
};

/*
 * Where a pinned shard's io_uring workers run (io-wq: the kernel threads that run every
 * fdatasync of its logs and every write it cannot issue at once). Measured on the
 * project's 2-CPU VM, one shard and the load generator on the other CPU
 * (docs/ARCHITECTURE.md, "Shards"): SHARD gave more durable events/s with four
 * partitions (321-416 k against 312-353 k), fewer without durability (1.36-1.46 M
 * against 1.40-1.68 M) and a worse round-trip p99 (94-100 µs against 73-82).
 */
enum rill_io_workers {
	/* On the CPUs no shard has (every CPU when there is none): a sync never preempts
	 * its shard. The default: right when those CPUs have room, as housekeeping cores
	 * do. */
	RILL_IO_WORKERS_SPARE = 0,
	/* On the shard's own CPU: a sync runs while its shard waits for it, or preempts it.
	 * For shards that mostly wait for the disk while the other CPUs are busy (durable
	 * topics on a small machine beside their clients). */
	RILL_IO_WORKERS_SHARD = 1,
};

/* What a publisher asks to hear back about an event (a refusal is always reported). */
enum rill_acks {
	RILL_ACKS_NONE = 0,    /* nothing, unless the event is refused */
	RILL_ACKS_APPLIED = 1, /* once appended and folded into the projections (a projection
				* whose key table is full folds no new key: rill_query) */
	RILL_ACKS_DURABLE = 2, /* applied, then again once its fdatasync completed (on a topic
				* of durability none, at once: that topic promises memory) */
};

/* Engine limits. */
#define RILL_ENGINE_SHARDS_MAX            64u
#define RILL_ENGINE_TOPICS_MAX            1024u
#define RILL_ENGINE_PARTITIONS_MAX        1024u /* per topic */
#define RILL_ENGINE_PROJECTIONS_MAX       256u
#define RILL_ENGINE_TOPIC_PROJECTIONS_MAX 64u    /* per topic: each binds to all its partitions */
#define RILL_ENGINE_PRODUCERS_MAX         256u   /* handles open at once (rill_producer_open) */
#define RILL_ENGINE_SUBSCRIPTIONS_MAX     1024u  /* subscriptions_per_shard, at most */
#define RILL_ENGINE_GROUPS_MAX            65536u /* groups_max, at most */
#define RILL_ENGINE_NAME_BYTES_MAX        128u   /* topic and projection names */
#define RILL_ENGINE_RING_BYTES_MAX        (256u << 20)
#define RILL_ENGINE_DURABLE_PENDING_MAX   (1u << 16) /* durable acks waiting, per partition */

/* The per partition limits of struct rill_engine_config, at most (see there). */
#define RILL_ENGINE_PARTITION_PRODUCERS_MAX  (1u << 20)   /* producers_max */
#define RILL_ENGINE_PROJECTION_KEYS_MAX      (1u << 24)   /* projection_keys_max */
#define RILL_ENGINE_PROJECTION_KEY_STORE_MAX (1ull << 32) /* projection_key_store_bytes */

struct rill_engine;
struct rill_topic;
struct rill_producer;
struct rill_subscription;

struct rill_engine_config {
	const char *data_dir; /* default "./data"; created if missing */
	uint32_t shards;      /* default: one per CPU this process may use */
	const int *cpus; /* CPU of each shard (shards entries, shards set); NULL: ours in turn */
	bool pin;        /* pin shard threads to their CPUs (default true) */
	enum rill_poll_mode poll; /* default adaptive */
	uint64_t idle_spin_ns;    /* adaptive: spin this long idle before sleeping (50 µs) */
	/* Ring sizes, each a power of two from 64 KiB to RILL_ENGINE_RING_BYTES_MAX. */
	uint32_t ring_bytes;     /* each producer → shard ring (default 1 MiB) */
	uint32_t ack_ring_bytes; /* each shard → producer ring (default 1 MiB) */
	/* Per partition limits on state that is never dropped: past one, a new producer or
	 * key is refused (-ENOSPC) and what is held goes on. Lowered below what a partition
	 * holds, they refuse its open, and so rill_engine_open, with -ENOSPC and a message
	 * naming the topic, partition (projection), setting and value to open with:
	 * producers_max below the producers of its newest snapshot or its log, the projection
	 * limits below the keys or key bytes of a projection's state in its snapshot. Nothing
	 * is cut down to fit, and the snapshot is not skipped: once retention has deleted the
	 * log before it, it alone holds those producers (their retries would go in twice) and
	 * those keys' counts. (A projection rebuilt from the log folds under the limits given.)
	 * Raised after a projection refused keys: a restart folds it again from offset 0 while
	 * the log still starts there, so that every key it now has room for counts in full;
	 * once retention has deleted the log's start it takes no new key (those it refused
	 * lack events no longer kept), its unknown keys answer -ENOSPC, and the open says so
	 * on stderr. Each has a maximum (RILL_ENGINE_PARTITION_PRODUCERS_MAX, 2^20;
	 * RILL_ENGINE_PROJECTION_KEYS_MAX, 2^24; RILL_ENGINE_PROJECTION_KEY_STORE_MAX, 4 GiB):
	 * past one, rill_engine_open refuses the config with -EINVAL naming the setting. */
	uint32_t producers_max;       /* idempotent producers per partition (default 4,096) */
	uint32_t projection_keys_max; /* keys per projection per partition (default 16,384) */
	uint64_t projection_key_store_bytes; /* key bytes per projection per partition (4 MiB) */
	/* Snapshots of each partition (dedup table and projections): taken when this many
	 * events came since the last one (default 1,000,000; 0: never), or when this much
	 * time passed and any came (default 60 s; 0: not by time); the newest kept ones
	 * (default 3) serve restarts and as-of queries. Retention keeps every event after
	 * the oldest kept snapshot (so a partition holds at least about snapshots_kept
	 * intervals), and with periodic snapshots on deletes nothing before the first. With
	 * both intervals 0 (snapshots_off) no snapshot holds retention back, not even one
	 * asked for (rill_engine_snapshot): a restart whose snapshot retention passed
	 * rebuilds the projections and the dedup table from what the log keeps.
	 * snapshots_kept lowered: each partition's older ones go at the next open (an idle
	 * partition takes no new snapshot that would delete them), and retention with them. */
	uint64_t snapshot_interval_events;
	uint64_t snapshot_interval_ns;
	uint32_t snapshots_kept;
	bool snapshots_off; /* no snapshots at all */
	/* Topics' logs write their batches through the page cache instead of O_DIRECT
	 * (default false: O_DIRECT where the file system takes it; docs/ARCHITECTURE.md,
	 * "Direct writes"). */
	bool log_buffered_io;
	/* Topics' logs keep every batch within its batch_bytes_max, even behind a sync in
	 * flight, and push back there (default false: a batch grows behind a slow sync;
	 * docs/ARCHITECTURE.md, "Group commit"). For benchmarks at a fixed write size and
	 * for tests of the log's backpressure. */
	bool log_fixed_batches;
	/* With pin: where the shards' io_uring workers run (default spare; see above). */
	enum rill_io_workers io_workers;
	/*
	 * Called by rill_engine_open on its own thread once the schema registry is loaded,
	 * before any topic or projection is reopened: the place to add upcasters
	 * (rill_schema_upcaster_add). They are code, not stored, and the projections are
	 * rebuilt from the logs during the open: added after it, they come too late for
	 * that rebuild, which reads older events with the plain mapping (defaults where a
	 * field was renamed) and says nothing. Returns 0, or an error that fails the open.
	 * NULL (the default): none.
	 */
	int (*on_schemas)(void *arg, struct rill_schema_registry *schemas);
	void *on_schemas_arg;
	/* Subscriptions open at once on one shard, one per partition subscribed, whoever
	 * opened them (default 64, at most RILL_ENGINE_SUBSCRIPTIONS_MAX): one consumer of
	 * a whole topic takes one per partition the shard owns. Each holds a 4 MiB ring while
	 * open. Past it rill_subscribe returns -ENOSPC. */
	uint32_t subscriptions_per_shard;
	/* Consumer groups stored at once (DATA/groups: a file each; default 4,096, at most
	 * RILL_ENGINE_GROUPS_MAX). A commit that would make one more is refused with RILL_E_GROUPS_FULL
	 * (rill_group_commit); commits to existing groups go on, and rill_group_delete makes
	 * room. Groups already on disk past it (a limit lowered since) are loaded and usable
	 * all the same: only new ones are refused while the count is at or over it. */
	uint32_t groups_max;
};

/* rill_engine_config_default - the defaults above. */
void rill_engine_config_default(struct rill_engine_config *config);

/*
 * rill_engine_open - lock the data directory (one engine per directory), load the schema
 * registry, reopen every topic (recovering its logs) and projection (rebuilding it from the
 * logs), and start the shards.
 * Returns 0, or -EINVAL (a bad config; with pin, a CPU of config->cpus no thread can be
 * pinned to, isolated CPUs being fine), -EBUSY (another engine has the directory),
 * -EDEADLK (on a shard's thread), -ENOSPC (producers_max, projection_keys_max or
 * projection_key_store_bytes below what a partition holds: see there), a log or schema
 * error, or -errno, with @err (optional) saying what and where. Blocks.
 * A data directory that lost a folder of its own (DATA/schemas, topics, projections or
 * groups: docs/FORMAT.md, "Engine metadata"), or the topic.json of a topic holding events,
 * is refused (-ENOENT, naming it), never made anew empty.
 * Under a file size limit (RLIMIT_FSIZE) a write past it raises SIGXFSZ, whose default
 * action ends the process. The shards, which write the logs and snapshots, block it: the
 * write fails with EFBIG and that log stops. Topic, projection, group and schema files
 * are written on the calling thread: a host under such a limit should ignore SIGXFSZ
 * (rill serve does).
 */
int rill_engine_open(struct rill_engine **out, const struct rill_engine_config *config,
		     struct rill_error_text *err);

/*
 * rill_engine_close - stop: every shard processes what its rings hold, syncs its logs and
 * sends the durable acknowledgements, then the threads exit and everything is freed.
 * Every producer and subscription must be closed first (-EBUSY otherwise, and nothing is
 * done). Returns 0 or the first error met, among them a partition's log that failed at
 * the final sync or before (what it held past its durable offset is lost: on a topic
 * with durability none, the events since its last batch). The engine is freed all the
 * same. Blocks. Not on a shard's thread (-EDEADLK).
 *
 * Other threads: close first marks the engine closing, in the same step as its check for
 * open handles, so a rill_producer_open or rill_subscribe on another thread either counts
 * before it (close returns -EBUSY) or returns -ESHUTDOWN. The other blocking calls
 * (topics, projections, queries, partition information, groups, command handlers, hooks,
 * snapshots, statistics) that begin from then on return -ESHUTDOWN at once; those already
 * running finish (a query waiting for its token gives up with -ESHUTDOWN), and close
 * waits for them before it stops the shards. None waits for a stopped shard or reads
 * freed memory. But no call may begin after rill_engine_close has returned: the engine is
 * freed, and stopping the threads that call it stays the caller's duty. The calls that
 * never block (rill_topic_find, rill_engine_schemas and the other accessors, and the
 * topics, schemas and registry they give) are not tracked: none may run during the close.
 */
int rill_engine_close(struct rill_engine *engine);

/* The engine's schema registry (include/rill/schema.h): register types before use. */
struct rill_schema_registry *rill_engine_schemas(struct rill_engine *engine);

/* The number of shards running. */
uint32_t rill_engine_shards(const struct rill_engine *engine);

/*
 * A shard hook: code that runs inside a shard's loop, on its thread, so that an ingress
 * and the shard that applies its events share one thread and no hand-off between threads
 * (the TCP server's workers, DPDK's queues).
 *
 * poll:  called on every turn of the loop, between bursts; returns how much work it did
 *        (0: none). It may publish through a producer handle of its own (used on the
 *        shard's thread only while the hook is set) and poll it, but must not block.
 *        The engine calls that wait for a shard (a shard waiting for itself, or for one
 *        that waits for it, never returns) return -EDEADLK on any shard's thread, in a
 *        hook or in a callback it runs: opening and closing the engine, producers and
 *        subscriptions, rill_producer_flush, queries, partition information, groups,
 *        topics, projections, command handlers, hooks, snapshots and statistics.
 * sleep: optional; it must not publish (the shard computed its wait before calling it).
 *        When the shard is idle (adaptive mode) it calls this instead of
 *        waiting on its own: the hook waits until @wake_fd (an eventfd: the shard's
 *        producers and disk completions) is readable, its own events arrive, or
 *        @timeout_ns passes (never later: the shard's group commit may be due), and
 *        reads @wake_fd when it fired. A sleep that returns without waiting makes the
 *        shard spin. At most one hook per shard may sleep.
 * nap_ns: for a hook with no sleep (a polled device has no wake-up). 0: while it is set
 *        the shard never sleeps; it spins, yielding the CPU when nothing has work. Above
 *        0: when idle, the shard still sleeps (adaptive mode), but for at most this long
 *        at a time, so the hook is polled at least that often: less CPU when nothing
 *        comes, at most that much more latency for what comes first after a pause.
 */
struct rill_shard_hook {
	unsigned (*poll)(void *arg);
	void (*sleep)(void *arg, int wake_fd, uint64_t timeout_ns);
	void *arg; /* also the hook's name for rill_engine_shard_hook_remove */
	uint64_t nap_ns;
};

#define RILL_SHARD_HOOKS_MAX 4

/*
 * rill_engine_shard_hook_add - add @hook to shard @shard's loop (copied).
 * Returns 0, -EINVAL, -ENOSPC (RILL_SHARD_HOOKS_MAX set already), -EBUSY (a second hook
 * with a sleep), -EEXIST (a hook with this arg is set). Any thread but a shard's (from
 * inside a hook: -EDEADLK); blocks briefly: once it returns, the shard calls the hook.
 */
int rill_engine_shard_hook_add(struct rill_engine *engine, uint32_t shard,
			       const struct rill_shard_hook *hook);

/*
 * rill_engine_shard_hook_remove - remove the hook whose arg is @arg. Returns 0 or -ENOENT.
 * Any thread but a shard's (from inside a hook: -EDEADLK); blocks briefly: once it
 * returns, the shard no longer calls it.
 */
int rill_engine_shard_hook_remove(struct rill_engine *engine, uint32_t shard, void *arg);

/* rill_engine_shard_cpu - the CPU shard @shard is pinned to, or -1 (not pinned). */
int rill_engine_shard_cpu(const struct rill_engine *engine, uint32_t shard);

/*
 * rill_engine_spare_cpus - the CPUs the thread that opened @engine may run on that no shard
 * is pinned to, ascending, the lowest @max of them into @cpus (1024, glibc's CPU_SETSIZE,
 * hold any): where a host's own busy threads (a publisher, a load generator) stay off the
 * shards' CPUs. Returns how many were written: 0 when the shards have every CPU, are not
 * pinned, or the opening thread's CPUs could not be read. Any thread.
 */
unsigned rill_engine_spare_cpus(const struct rill_engine *engine, int *cpus, unsigned max);

/* Topics. */
struct rill_topic_config {
	const char *name;                /* [A-Za-z0-9_.-], 1 to 128 bytes */
	uint32_t partitions;             /* 1 .. RILL_ENGINE_PARTITIONS_MAX */
	enum rill_durability durability; /* default none */
	uint64_t retention_bytes;        /* per partition; 0: keep all */
	uint64_t retention_age_ns;       /* 0: keep all; else an event goes at most about
					  * twice this after it came (docs/FORMAT.md,
					  * "Retention"; snapshots may hold it longer) */
	uint64_t segment_bytes_max;      /* 0: the log's default (1 GiB) */
	uint32_t batch_bytes_max;        /* group commit: 0: the log's default (256 KiB);
					  * behind a sync in flight a batch grows past it,
					  * up to its buffer (1 MiB unless this is larger)
					  * and within its segment (ARCHITECTURE.md, "Group
					  * commit") */
	uint64_t batch_delay_ns;         /* group commit: 0: the default: submit when the
					  * disk is free (group), every 10 ms at most (none) */
};

/*
 * rill_topic_create - create the topic (stored under DATA/topics/NAME) and open its
 * partitions on their shards; creating it again with the same partitions and durability
 * returns the existing topic. Returns 0, -EINVAL, -EEXIST (exists, otherwise defined),
 * -ENOSPC past RILL_ENGINE_TOPICS_MAX, or a log error, with @err saying why. Any host
 * thread; blocks.
 */
int rill_topic_create(struct rill_engine *engine, const struct rill_topic_config *config,
		      struct rill_topic **out, struct rill_error_text *err);

/* rill_topic_find - the topic named @name, or NULL. Any thread; never blocks. */
struct rill_topic *rill_topic_find(struct rill_engine *engine, const char *name);

uint32_t rill_topic_partitions(const struct rill_topic *topic);

/* rill_topic_partition - the partition @key goes to: XXH3(key) mod partitions. */
uint32_t rill_topic_partition(const struct rill_topic *topic, const void *key, size_t key_bytes);

/* rill_topic_config_get - the topic's settings (name included: valid while it exists). */
const struct rill_topic_config *rill_topic_config_get(const struct rill_topic *topic);

typedef int rill_topic_each_fn(void *arg, struct rill_topic *topic);

/*
 * rill_topic_each - call @fn for every topic, in the order they were made (those found at
 * open first, in the order they were loaded); a non-zero return stops the walk and is
 * returned. Returns 0 otherwise. Topics are never removed, so an operator's listing can
 * page through them by name. A topic made meanwhile may or may not be seen. Any thread;
 * never blocks (as rill_topic_find).
 */
int rill_topic_each(struct rill_engine *engine, rill_topic_each_fn *fn, void *arg);

/* Where a partition's log stands. */
struct rill_partition_info {
	uint64_t first_offset;   /* the first offset retention keeps */
	uint64_t durable_offset; /* every offset below it is durable */
	uint64_t next_offset;    /* the offset the next event gets (a stopped log: its
				  * durable offset, where it ends; RILL_E_LOG_STOPPED) */
};

/*
 * rill_partition_info_get - where @partition of @topic stands; with @timestamp_ns not
 * UINT64_MAX, also the offset of its first event (in log order) stamped at or after
 * @timestamp_ns into @at (next_offset when none is; with events not yet durable, as on a
 * topic of durability none, this syncs the partition first). Returns 0, -EINVAL, or a log
 * error. Any host thread; blocks briefly (the owner shard answers).
 */
int rill_partition_info_get(struct rill_engine *engine, struct rill_topic *topic,
			    uint32_t partition, uint64_t timestamp_ns,
			    struct rill_partition_info *out, uint64_t *at);

/* Projections: a built-in read model over one event type of one topic. */
struct rill_projection_def {
	const char *name;  /* [A-Za-z_][A-Za-z0-9_.-]*, at most 128 bytes */
	const char *topic; /* an existing topic */
	const char *type;  /* a registered event type */
	uint16_t version;  /* read events as this version (0: the latest now) */
	enum rill_projection_kind kind;
	const char *field;  /* the numeric field (not for count kinds) */
	uint64_t window_ns; /* window kinds: the tumbling window's length */
};

/*
 * rill_projection_define - define the projection (stored under DATA/projections), build
 * it from everything the topic's logs hold, and keep it up to date from then on. Defining
 * it again the same way is a no-op. Returns 0, -EINVAL, -ENOENT (no such topic, type or
 * field), -EEXIST (exists, otherwise defined), -ENOSPC (the engine holds
 * RILL_ENGINE_PROJECTIONS_MAX, or the topic RILL_ENGINE_TOPIC_PROJECTIONS_MAX, already), or a
 * log error, with @err. Blocks (replays the logs).
 */
int rill_projection_define(struct rill_engine *engine, const struct rill_projection_def *def,
			   struct rill_error_text *err);

/*
 * rill_projection_define_custom - a projection of the application's own (@ops, in
 * rill/projection.h) over every event of topic @topic, one state per partition, folded on
 * the owner shards right after append. Its states go into the partitions' snapshots, but
 * its code cannot be stored: define it again after every rill_engine_open, before
 * publishing, and it starts from its state in the newest snapshot holding it (else from
 * what the log keeps). Until every custom projection of the snapshot loaded at open is
 * defined again, that snapshot stays (in memory, its file and the log after it on disk),
 * so defining them one by one loses none, up to the first periodic snapshot after open
 * (with snapshots off, not at all): one defined later, or never, starts from what the log
 * keeps, and its saved state is lost. @ops and @arg must stay valid until rill_engine_close. ops->snapshot
 * called with a NULL buffer must give the exact length the real call writes.
 * Defining it again with the same ops, arg and topic is a no-op. Returns 0, -EINVAL,
 * -ENOENT (no such topic), -EEXIST (the name is taken), -ENOSPC (as rill_projection_define),
 * -ENOMEM, or a log error, with @err. Blocks (builds the states).
 */
int rill_projection_define_custom(struct rill_engine *engine, const char *name, const char *topic,
				  const struct rill_projection_ops *ops, void *arg,
				  struct rill_error_text *err);

/* Projection kinds by name: "count", "sum", "min", "max", "last", "avg", "window_count",
 * "window_sum". _name returns NULL for an unknown kind; _parse returns 0 or -EINVAL. */
const char *rill_projection_kind_name(enum rill_projection_kind kind);

/* rill_projection_topic - the topic projection @name folds, or NULL (no such projection).
 * Any thread; does not block. */
struct rill_topic *rill_projection_topic(struct rill_engine *engine, const char *name);
int rill_projection_kind_parse(const char *name, enum rill_projection_kind *out);

/* @def: the projection as defined, a built-in one's version resolved (never 0); a custom
 * projection has only its name and topic (type and field NULL, kind and version 0).
 * Valid during the call. */
typedef int rill_projection_each_fn(void *arg, const struct rill_projection_def *def);

/*
 * rill_projection_each - call @fn for every projection, built-in and custom, in the order
 * they were defined (those found at open first); a non-zero return stops the walk and is
 * returned. Returns 0 otherwise. Projections are never removed; one defined meanwhile may
 * or may not be seen. Any thread; never blocks (as rill_projection_topic).
 */
int rill_projection_each(struct rill_engine *engine, rill_projection_each_fn *fn, void *arg);

/*
 * Consumer groups: a group's committed position in each partition (the next offset to
 * read), stored under DATA/groups. rill_group_commit stores it durably (blocks: the owner
 * shard's answer, a file write and syncs); a position past the partition's durable offset
 * is refused with -ERANGE (once the log grew past it, after a crash say, the events in
 * between would be skipped unseen; subscribers read durable events only), and a group's
 * first commit with RILL_E_GROUPS_FULL once the engine holds config.groups_max groups
 * (rill_group_count). rill_group_offset reads it: 0, -ENOENT (never committed), -EINVAL
 * (a bad name: [A-Za-z0-9_.-], 1 to 128 bytes, not starting with a dot), or an I/O error.
 * Both return RILL_E_JSON_INVALID (or -EFBIG) for a group file that does not load (damaged:
 * cut short, edited), and change nothing: restore it, or rill_group_delete the group.
 * @err (optional) says why either failed, for a damaged file its path and where (line,
 * column, or the topic and partition) it went wrong; it is left alone by -ENOENT.
 * Any host thread, not a shard's (a hook: -EDEADLK).
 */
int rill_group_commit(struct rill_engine *engine, const char *group, struct rill_topic *topic,
		      uint32_t partition, uint64_t next_offset, struct rill_error_text *err);
int rill_group_offset(struct rill_engine *engine, const char *group, struct rill_topic *topic,
		      uint32_t partition, uint64_t *next_offset, struct rill_error_text *err);

/* A partition's position, as rill_group_commit_many takes them. */
struct rill_group_position {
	uint32_t partition;   /* < the topic's partitions */
	uint64_t next_offset; /* the next offset to read there */
};

/*
 * rill_group_commit_many - rill_group_commit of @count positions of @topic at once, all or
 * nothing: each is checked first (a partition the topic has, given once, an offset up to
 * 2^63 - 1 and up to that partition's durable offset), and only then is the group's file
 * written, once (a file write and two syncs, where rill_group_commit of each would take
 * @count). @count is 1 to the topic's partitions. Returns what rill_group_commit returns,
 * with @err naming the partition refused (-EINVAL, -ERANGE). A refusal changes nothing; an
 * I/O error leaves every position as before or (the file replaced, a sync failing after)
 * every one committed, never some. rill_group_commit is the case of one position. Any
 * host thread, not a shard's (a hook: -EDEADLK); blocks (a call to each position's shard,
 * then the write).
 */
int rill_group_commit_many(struct rill_engine *engine, const char *group, struct rill_topic *topic,
			   const struct rill_group_position *positions, uint32_t count,
			   struct rill_error_text *err);

/*
 * rill_group_delete - forget group @group: its file and every position in it (each topic's,
 * each partition's), durably (blocks: an unlink and a directory sync). A consumer still
 * committing as @group makes it again, from nothing, at its next commit. Returns 0,
 * -ENOENT (no such group), -EINVAL (a bad name), -ESHUTDOWN (the engine is closing), or an
 * I/O error. Any host thread, not a shard's (a hook: -EDEADLK).
 */
int rill_group_delete(struct rill_engine *engine, const char *group);

/* rill_group_name_valid - whether @name is a group name the engine takes: [A-Za-z0-9_.-],
 * 1 to 128 bytes, not starting with a dot (the rule of topic names). A client can check
 * it before consuming as the group. Any thread; does not block. */
bool rill_group_name_valid(const char *name);

/* rill_group_count - the consumer groups the engine holds (those found at open, counted
 * even past config.groups_max, and those made since, less those deleted). Any host thread
 * but a shard's own (it takes the engine's lock); blocks briefly. */
uint32_t rill_group_count(struct rill_engine *engine);

/* A read-your-writes token: an acknowledgement's (partition, offset). */
struct rill_token {
	uint32_t partition;
	uint64_t offset;
};

/*
 * rill_query - the value of projection @name for @key. With @after (optional, from an
 * acknowledgement of the same topic), waits up to @timeout_ns until the offset is applied
 * (a duplicate's token of offset UINT64_MAX, older than its producer's last 8, is).
 * Returns 0 with @out filled, -ENOENT (no such projection, or the key was never seen),
 * -ENOSPC (the key is not held, and the projection has refused new keys in its partition
 * since it reached projection_keys_max or projection_key_store_bytes: the key may be one
 * of them, whose events were appended and acknowledged but not folded), RILL_E_QUERY_STALE
 * (the token's offset not applied in time), RILL_E_LOG_STOPPED (the key's partition's log
 * stopped after an I/O error: its projections hold events that were refused to their
 * producers and that a restart will not have, so they answer nothing; as-of and custom
 * queries too), -EINVAL, -ESHUTDOWN (the engine is closing: rill_engine_close has
 * begun; a wait for the token ends with it too). Any host thread; blocks until the owner
 * shard answers.
 */
int rill_query(struct rill_engine *engine, const char *name, const void *key, size_t key_bytes,
	       const struct rill_token *after, uint64_t timeout_ns,
	       struct rill_projection_value *out);

/*
 * rill_query_custom - a custom projection's answer for @key (its ops->query, run on the
 * owner shard) into @out; with @after, waits as rill_query does. Returns the answer's
 * length, -ENOENT, -ENOSPC (@out too small), RILL_E_QUERY_STALE, -EINVAL, or the error
 * its query returned. Any host thread; blocks until the owner shard answers.
 */
int64_t rill_query_custom(struct rill_engine *engine, const char *name, const void *key,
			  size_t key_bytes, const struct rill_token *after, uint64_t timeout_ns,
			  void *out, size_t out_bytes);

/*
 * rill_query_as_of - the value projection @name had for @key at an earlier point of the
 * key's partition: after its event at @offset (inclusive; its last event, or an offset the
 * partition has not reached yet, gives the value now, as the wire protocol's AS_OF_OFFSET
 * does, whatever retention deleted), or, with @offset UINT64_MAX,
 * as of the time @timestamp_ns: after every event of the partition's log before its first
 * event (in log order) stamped later than @timestamp_ns. With stamps in log order (the
 * usual case: the engine stamps events at ingress) those are the events stamped at or
 * before it; an event stamped later than the ones after it (a producer's own timestamp_ns
 * ahead of its time) ends that prefix early: the events after it count only for times at
 * or after its stamp. This keeps the cost bounded (below). The owner shard restores the
 * nearest snapshot at or before that point and replays the log from there: the cost is
 * bounded by the snapshot interval, and the shard serves nothing else meanwhile (its other
 * partitions wait: a replay of a million events takes tens of milliseconds). Built-in
 * projections only. Returns 0, -ENOENT (no such projection, or the key had no value then),
 * -ENOSPC (as rill_query), -ERANGE (what is kept does not reach back that far: by time,
 * also when the deleted events may hold one stamped later, which the oldest snapshot kept
 * from the log's start on tells, as it records the highest stamp below it: with none they
 * may; a time past every event deleted, at a kept snapshot at the log's start, is answered
 * from it), -EINVAL.
 * Any host thread; blocks.
 */
int rill_query_as_of(struct rill_engine *engine, const char *name, const void *key,
		     size_t key_bytes, uint64_t offset, uint64_t timestamp_ns,
		     struct rill_projection_value *out);

/*
 * Command handlers: the write model's hook for application rules. An event of a type that
 * has a handler on its topic is a command: on the owner shard, after its own schema check
 * and its producer-sequence check (a duplicate never reaches the handler), the handler
 * decides. ACCEPT appends it as it is; REFUSE refuses it with out->reason (the publisher
 * gets RILL_E_COMMAND_REFUSED and the reason; any other value is refused too, its reason
 * saying the handler returned no verdict); EMIT appends instead the out->event_count
 * events the handler put in out->events (their payloads may live in out->scratch): with
 * the command's key, producer, sequence and correlation id, each checked against its own
 * schema, all in one batch, so that a crash keeps all of them or none. Their
 * acknowledgement carries the first one's offset and event_count.
 *
 * The handler runs on the shard's thread, between other events: it must not block, must
 * not call the engine, and sees @command's pointers only during the call. The same handler
 * runs on every shard that owns a partition of the topic, at once. It must decide from the
 * command (and what it reads) alone: it may be called again for the same command when the
 * log pushes back, and events it emits may still be refused (a schema, the batch limit, a
 * failed log), the command with them. Handlers are not stored: set them again after every
 * rill_engine_open, before publishing (until then commands are appended unchecked). @fn and
 * @arg must stay valid until rill_engine_close. The acknowledgement of an emitting command
 * carries its first event's offset and event_count (1 for a duplicate).
 */
#define RILL_COMMAND_EVENTS_MAX    16u /* at most RILL_PARTITION_GROUP_MAX (engine) */
#define RILL_COMMAND_SCRATCH_BYTES (64u << 10)
#define RILL_COMMAND_HANDLERS_MAX  16u /* per topic */

enum rill_command_verdict {
	RILL_COMMAND_ACCEPT = 0,
	RILL_COMMAND_REFUSE = 1,
	RILL_COMMAND_EMIT = 2,
};

struct rill_command_event {
	uint32_t type_id;
	uint16_t version;
	const void *payload;
	uint32_t payload_bytes;
	uint64_t timestamp_ns; /* 0: the command's */
};

struct rill_command_result {
	char reason[256];                                          /* REFUSE */
	uint32_t event_count;                                      /* EMIT */
	struct rill_command_event events[RILL_COMMAND_EVENTS_MAX]; /* EMIT */
	uint8_t scratch[RILL_COMMAND_SCRATCH_BYTES]; /* room for the events' payloads */
};

typedef enum rill_command_verdict (*rill_command_fn)(void *arg, const struct rill_record *command,
						     uint32_t partition,
						     struct rill_command_result *out);

/*
 * rill_command_handler_set - handle events of type @type_id on @topic with @fn (NULL
 * removes the handler). Returns 0, -EINVAL, -ENOSPC past RILL_COMMAND_HANDLERS_MAX. Any
 * host thread; blocks briefly (every shard of the topic takes it between two events).
 */
int rill_command_handler_set(struct rill_engine *engine, struct rill_topic *topic, uint32_t type_id,
			     rill_command_fn fn, void *arg);

/* Publishing. */
struct rill_event {
	const void *key; /* 0 .. RILL_KEY_BYTES_MAX bytes: picks the partition */
	uint32_t key_bytes;
	uint32_t type_id; /* rill_schema_type_id(rill_schema_get(schemas, "OrderPlaced", 0)) */
	uint16_t version; /* the payload's schema version */
	const void *payload;
	uint32_t payload_bytes;
	uint64_t sequence;       /* idempotent producers: 0, 1, 2, ... per partition */
	uint64_t producer_id;    /* non-zero: publish as this idempotent producer instead of
				  * the handle's (a server publishing for its clients) */
	uint64_t timestamp_ns;   /* event time, wall clock; 0: now */
	uint64_t correlation_id; /* tracing: the conversation it belongs to */
	uint64_t causation_id;   /* tracing: the event that caused it */
	uint64_t ingress_ns;     /* latency counts from here (monotonic clock); 0: now */
};

/* An acknowledgement, as the callback receives it (valid during the call only). */
struct rill_ack {
	uint64_t cookie;         /* what rill_publish was given */
	enum rill_acks level;    /* APPLIED or DURABLE, or the level refused at */
	int error;               /* 0, or why the event was refused or lost (rill_strerror) */
	const char *reason;      /* a refusal's reason in words ("" when none) */
	struct rill_token token; /* where the event is (valid when error is 0) */
	/* A retry of an event already written: token.offset is its first offset, or
	 * UINT64_MAX when older than the last 8 of its producer (written, where no longer
	 * known). */
	bool duplicate;
	uint32_t event_count; /* events appended for it: 1, or what a command emitted */
	uint64_t ingress_ns;  /* the event's ingress time */
	uint64_t done_ns;     /* when it was applied, or became durable (monotonic) */
	/* With an error: not refused for what it is, but lost to its partition's failed log
	 * (a write or sync error: the log stopped). Nothing of it is durable, and a retry
	 * fares no better until an operator mends the disk and restarts. */
	bool lost;
};

/*
 * Called inside rill_producer_poll and rill_producer_flush (rill_producer_close flushes),
 * on the thread that called them: the handle's own, which for a handle a shard hook uses
 * is that shard's thread. rill_publish never runs it. It may publish and poll, with this
 * handle or others. On a host thread it may also flush and query and make the other
 * blocking engine calls; on a shard's thread it may not: rill_query, rill_producer_flush,
 * rill_producer_close and every call that waits for a shard return -EDEADLK there (see
 * struct rill_shard_hook). It may not close its own handle (rill_producer_close returns
 * -EBUSY from inside it). Callbacks of a handle never nest: a poll or flush of this same
 * handle from inside one runs no callback. It takes the acknowledgements that have
 * arrived off the rings (so the shards go on taking events, and a publish that met
 * -EAGAIN succeeds once retried: "publish; on -EAGAIN poll; retry" makes progress) and
 * keeps them, in order, for the poll or flush running this callback to deliver once it
 * returns (see rill_producer_poll and rill_producer_flush).
 */
typedef void (*rill_ack_fn)(void *arg, const struct rill_ack *ack);

struct rill_producer_config {
	uint64_t producer_id; /* non-zero: idempotent, with sequences per partition */
	rill_ack_fn on_ack;   /* optional */
	void *arg;
	bool wake_fd;      /* give the handle an eventfd the shards signal when they post
			       * acknowledgements to it while it sleeps (see
			       * rill_producer_sleep_begin): for event loops that wait in
			       * poll, epoll or io_uring rather than in rill_producer_poll */
	bool wake_batched; /* rill_publish does not wake the shard it hands an event to: the
			    * handle wakes every shard it published to at its next
			    * rill_producer_wake, rill_producer_poll, rill_producer_flush or
			    * rill_producer_sleep_begin. One wake-up (a full fence, and an
			    * eventfd write for a sleeping shard) per burst instead of one per
			    * event; for loops that publish a burst and then poll */
};

/*
 * rill_producer_open - a producer handle for the calling thread: rings to and from every
 * shard. Use it from one thread at a time. Returns 0, -ENOSPC past
 * RILL_ENGINE_PRODUCERS_MAX handles open, -ENOMEM, -ESHUTDOWN (the engine is closing:
 * rill_engine_close has begun). Blocks briefly (the shards attach it). Those a server and
 * the DPDK ingress hold count: a server takes one per shard (worker), the ingress one per
 * RX queue (one per shard by default), so the largest of both, on 64 shards, takes 128 and
 * leaves the host as many.
 */
int rill_producer_open(struct rill_engine *engine, const struct rill_producer_config *config,
		       struct rill_producer **out);

/*
 * rill_publish - hand @event to the shard owning its partition of @topic. Returns 0 once
 * it is in the ring (not yet checked: a refusal comes back as an acknowledgement with an
 * error), -EAGAIN when the ring to that shard is full (backpressure: poll acknowledgements,
 * retry; counted), -EINVAL for a key or payload over the limits (together, a record
 * over RILL_RECORD_BYTES_MAX) or a bad argument, -EMSGSIZE for an event larger than half
 * the ring (raise config.ring_bytes). Never blocks. With config.wake_batched the shard is woken later (rill_producer_wake), except
 * on -EAGAIN, which wakes the shards at once. On a shard's own thread (a hook) an event
 * for that shard is taken at once when nothing of the handle's waits in its ring.
 */
int rill_publish(struct rill_producer *producer, struct rill_topic *topic,
		 const struct rill_event *event, enum rill_acks acks, uint64_t cookie);

/*
 * rill_producer_event_bytes_max - the largest key + payload rill_publish takes through
 * @producer: about half of config.ring_bytes, less a header (past it: -EMSGSIZE), so some
 * 512 KiB by default; from a ring of 4 MiB on, RILL_RECORD_BYTES_MAX -
 * RILL_RECORD_HEADER_BYTES (past it: -EINVAL, a record too large for the log). Any
 * thread. Never blocks.
 */
uint32_t rill_producer_event_bytes_max(const struct rill_producer *producer);

/*
 * rill_producer_wake - wake the shards this handle published to since its last wake-up
 * (config.wake_batched; without it rill_publish wakes them itself and this does nothing).
 * The handle's thread only. Never blocks.
 */
void rill_producer_wake(struct rill_producer *producer);

/*
 * rill_producer_poll - run the callback for every acknowledgement that has arrived,
 * waiting up to @wait_ns for the first. Returns how many were delivered: one per
 * callback run (counted the same without a callback). An applied and a durable
 * acknowledgement are two; a refusal is one, whatever it settles. Those that the
 * callbacks' own nested polls and flushes took in are delivered by this poll too, before
 * it returns, each shard's in the order they came.
 * Inside a callback of this same handle (nested) it runs no callback and returns 0: it
 * takes what has arrived (waiting up to @wait_ns for something) off the rings, which the
 * shards need room in to go on, and keeps it, with its memory allocated as needed and
 * freed at close, for the outer poll to deliver after the callback returns.
 */
int rill_producer_poll(struct rill_producer *producer, uint64_t wait_ns);

/*
 * rill_producer_flush - poll until every event published has been processed and every
 * acknowledgement asked for has been delivered (a refusal included), or @timeout_ns
 * passes; events the callbacks publish meanwhile count too, so a callback that publishes
 * for every acknowledgement keeps it going until the timeout. Returns 0, -ETIMEDOUT, or
 * -EDEADLK on a shard's thread (a hook, where its shard cannot take events meanwhile).
 * Inside a callback of this same handle (nested) it delivers nothing, as a nested poll:
 * it waits until every event published has been processed and every acknowledgement
 * asked for has arrived, then returns 0 when none is left to deliver, or -EINPROGRESS
 * when some are kept for the outer poll, which delivers them after the callback returns
 * (they would never come while it waited). rill_producer_acks_owed counts those still.
 */
int rill_producer_flush(struct rill_producer *producer, uint64_t timeout_ns);

/*
 * Waiting for acknowledgements in one's own event loop (config.wake_fd): watch
 * rill_producer_wake_fd (readable: read its 8 bytes and poll). Before blocking, call
 * rill_producer_sleep_begin: false means acknowledgements are waiting already (poll them
 * instead of blocking); after waking, rill_producer_sleep_end. Without the pair a shard
 * never signals the fd. The handle's thread only; never block.
 */
int rill_producer_wake_fd(const struct rill_producer *producer); /* -1 without wake_fd */
bool rill_producer_sleep_begin(struct rill_producer *producer);
void rill_producer_sleep_end(struct rill_producer *producer);

/* rill_producer_acks_owed - acknowledgements asked for and not yet delivered. */
uint64_t rill_producer_acks_owed(const struct rill_producer *producer);

/*
 * rill_producer_close - flush (without a time limit), detach from the shards, free.
 * -EBUSY, with nothing done, while subscriptions opened with it as their @notify
 * (rill_subscribe_notify) are open: close them first; and from inside its own on_ack
 * callback (the delivery loop running it still reads the handle): close it after the poll.
 * -EDEADLK, with nothing done, on a shard's thread (a hook): close it from a host thread.
 */
int rill_producer_close(struct rill_producer *producer);

/*
 * Subscriptions: read one partition of a topic in order, from any offset, as its events
 * become durable (a consumer never sees an event a crash could take back). The owner shard
 * reads the log and feeds a bounded ring to the subscriber; a subscriber that does not
 * keep up only stops its own feed. Independent subscribers each keep their own offset.
 */

/*
 * rill_subscribe - a subscription to @partition of @topic from @from_offset (clamped to
 * the first offset retention kept). Returns 0, -EINVAL, -ERANGE for an offset past the
 * partition's end, -ENOSPC past config.subscriptions_per_shard on that shard, -ENOMEM,
 * -ESHUTDOWN (the engine is closing: rill_engine_close has begun). Any host thread;
 * blocks briefly. Use the subscription from one thread at a time.
 */
int rill_subscribe(struct rill_engine *engine, struct rill_topic *topic, uint32_t partition,
		   uint64_t from_offset, struct rill_subscription **out);

/*
 * rill_subscription_next - the next event, waiting up to @wait_ns for it. Returns 1 with
 * @event (its pointers valid until the next call) and @offset filled, 0 when none came in
 * time, or the error that ended the subscription (the log's, or -ERANGE when retention
 * deleted the events it was at); after an error, close it.
 */
int rill_subscription_next(struct rill_subscription *sub, struct rill_record *event,
			   uint64_t *offset, uint64_t wait_ns);

/*
 * rill_subscribe_notify - rill_subscribe, and the shard also wakes @notify's owner when it
 * puts events (or the end) in the subscription's ring: through the producer's wake_fd,
 * with the same handshake as its acknowledgements (rill_producer_sleep_begin). A thread
 * that sleeps on its producer's eventfd then hears of its subscriptions too; it must look
 * at them (rill_subscription_ready) after rill_producer_sleep_begin returned true and
 * before it sleeps. @notify was opened with wake_fd and outlives the subscription (its
 * rill_producer_close returns -EBUSY until then).
 */
int rill_subscribe_notify(struct rill_engine *engine, struct rill_topic *topic, uint32_t partition,
			  uint64_t from_offset, struct rill_producer *notify,
			  struct rill_subscription **out);

/*
 * rill_subscription_ready - true if rill_subscription_next would return at once (an event
 * or the end). Releases the event the last call returned: its pointers are no longer valid.
 */
bool rill_subscription_ready(struct rill_subscription *sub);

/*
 * rill_subscription_start - the offset of the first event the subscription delivers: its
 * from_offset, or the first offset retention kept if that was later when it opened (what
 * came before is gone: a consumer that asked for less can say how much it skipped).
 */
uint64_t rill_subscription_start(const struct rill_subscription *sub);

/* rill_subscription_close - stop and free. 0, or -EDEADLK (nothing done) on a shard's
 * thread. Blocks briefly. */
int rill_subscription_close(struct rill_subscription *sub);

/* Latency of one stage, from a log-linear histogram (relative error under 1%). */
struct rill_latency {
	uint64_t count;
	uint64_t p50_ns, p99_ns, p999_ns, p9999_ns, max_ns;
};

/* A shard's counters and stage latencies, read while it runs. */
struct rill_shard_stats {
	uint32_t partitions;
	uint64_t events;             /* appended */
	uint64_t duplicates;         /* retries acknowledged with their first offset */
	uint64_t refused;            /* refused by the write model */
	uint64_t stalls;             /* times a producer's ring was left full: log, ack ring or
				* durable queue busy (backpressure inside the shard) */
	uint64_t sleeps;             /* adaptive mode: times the shard slept (naps included) */
	uint64_t snapshots;          /* partition snapshots written */
	uint64_t snapshot_errors;    /* snapshots that failed (the previous ones stay) */
	struct rill_latency ring;    /* ingress → taken from the ring (an event of a burst is
				      * taken when the one before it is done) */
	struct rill_latency apply;   /* taken from the ring → applied: its own work */
	struct rill_latency applied; /* ingress → applied */
	struct rill_latency durable; /* ingress → durable: events of group topics only (a
				      * none topic's durable acknowledgement is its applied one) */
	uint64_t local; /* events published on the shard's own thread (a hook: the server,
			 * DPDK) and taken at once, with no ring: they have no ring and apply
			 * stage samples, only applied and durable */
	/* The disk, as the shard saw it: each batch of its partitions' logs (every durability)
	 * from its write's submission to the shard reaping its fdatasync, since they opened. */
	struct rill_latency sync;
	/* Times the kernel took the CPU from the shard's thread while it could run (its
	 * involuntary context switches since it started): another thread on its CPU, e.g. a
	 * shard's io_uring workers, which rill keeps off pinned shards' CPUs where it can. */
	uint64_t preempted;
	/* Events appended that a projection of their topic could not fold (their version
	 * lacks the projection's field or made it a type that does not promote to the
	 * projection's, an upcaster failed, ...): its value leaves them out. */
	uint64_t projection_errors;
	/* Its partitions whose log stopped after an I/O error (fail-stop): they take no
	 * event and answer no query (RILL_E_LOG_STOPPED) until the engine restarts. */
	uint32_t partitions_stopped;
	/* Events such a partition could not take: acknowledged with the log's error and
	 * rill_ack.lost, never appended, and not counted in refused. */
	uint64_t lost;
	/* Events a window projection (window_count, window_sum) of its partitions left out as
	 * late: stamped before both windows it keeps for their key (the current one and the
	 * one before). Part of the projections' state: counted again by a rebuild, kept by
	 * their snapshots. Disordered event time shows here. */
	uint64_t projection_late;
	/* Snapshots its partitions found at open and could not use (damaged, or made under
	 * settings they no longer fit, or older than what retention kept): each partition
	 * then rebuilt from an older one or the log; a damaged one is named on stderr. */
	uint64_t snapshots_skipped;
};

/*
 * rill_engine_snapshot - snapshot now every partition that has events its newest snapshot
 * lacks (as the periodic ones do: a sync, then the file), e.g. before a backup. Returns 0
 * or the first error (the other partitions are still snapshotted). Blocks.
 */
int rill_engine_snapshot(struct rill_engine *engine);

/* rill_engine_shard_stats - shard @shard's counters. 0 or -EINVAL. Blocks briefly. */
int rill_engine_shard_stats(struct rill_engine *engine, uint32_t shard,
			    struct rill_shard_stats *out);

/* rill_engine_backpressure - times rill_publish returned -EAGAIN, over all producers. */
uint64_t rill_engine_backpressure(const struct rill_engine *engine);

#ifdef __cplusplus
}
#endif
#endif /* RILL_RILL_H */
