/*
 * The engine's internals, shared by engine.c (open, close, topics, projections, queries:
 * the control path on host threads), shard.c (the shard threads: the data path) and
 * producer.c (the producer handles of host threads).
 *
 *   host thread                                  shard s (one thread, pinned)
 *   -----------                                  ----------------------------
 *   rill_publish ──► events ring (producer, s) ──► write model → log → projections
 *   rill_producer_poll ◄── acks ring (s, producer) ◄── applied / durable / refused
 *   rill_topic_create, rill_query, ... ──► control mailbox of s (mutex; off the data path)
 *
 * Ownership: a shard's partitions, projection instances, durable queues and counters are
 * touched by its thread only. Host threads reach them only through the control mailbox,
 * whose requests the shard runs between bursts. Topic and projection descriptions are
 * written once, before they are published (release) to other threads, and never change.
 */
#ifndef RILL_ENGINE_ENGINE_INT_H
#define RILL_ENGINE_ENGINE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc/arena.h"
#include "base/hist.h"
#include "base/thread.h"
#include "engine/io.h"
#include "engine/partition.h"
#include "engine/projection.h"
#include "engine/ring.h"
#include "rill/rill.h"

/* Ring slot size of both rings: an acknowledgement without a reason takes one slot. */
#define ENGINE_RING_SLOT_BYTES  64u
#define ENGINE_REASON_BYTES_MAX 256u  /* a refusal's reason, as sent back (truncated) */
#define ENGINE_BURST_MAX        64u   /* events taken from one ring per round (STYLE rule 19) */
#define ENGINE_TURN_EVENTS_MAX  1024u /* events a turn drains, in rounds over the rings */
_Static_assert(ENGINE_TURN_EVENTS_MAX >= ENGINE_BURST_MAX, "a turn takes at least a burst");

/* An event on a producer → shard ring: this header, the key, then the payload. */
struct engine_event_msg {
	uint64_t ingress_ns; /* monotonic: when the event entered (latency starts here) */
	uint64_t cookie;
	uint64_t timestamp_ns;
	uint64_t producer_id;
	uint64_t sequence;
	uint64_t correlation_id;
	uint64_t causation_id;
	uint32_t topic_index;
	uint32_t partition;
	uint32_t type_id;
	uint32_t payload_bytes;
	uint16_t version;
	uint16_t key_bytes;
	uint8_t acks; /* enum rill_acks */
	uint8_t reserved[3];
};
_Static_assert(sizeof(struct engine_event_msg) == 80, "event header layout");
_Static_assert(sizeof(struct engine_event_msg) - RILL_RECORD_HEADER_BYTES + RILL_RECORD_BYTES_MAX <=
		       RILL_RING_RESERVE_BYTES_MAX,
	       "every record the log takes can be published: its message fits a reservation");
_Static_assert(RILL_ENGINE_SHARDS_MAX <= 64, "rill_producer.wake_owed: one bit per shard");

/* An acknowledgement on a shard → producer ring: this header, then reason_bytes of text. */
struct engine_ack_msg {
	uint64_t cookie;
	uint64_t offset;
	uint64_t ingress_ns;
	uint64_t done_ns;
	uint32_t partition;
	int32_t error;
	uint8_t level; /* enum rill_acks */
	uint8_t duplicate;
	uint16_t reason_bytes;
	/* Acknowledgements owed that this one settles (0, 1 or 2). 2 with error 0: applied
	 * and durable at once (level durable), which the producer reports as two, in that
	 * order; 2 with an error: a refusal of both, reported once. */
	uint8_t settles;
	uint8_t event_count; /* events appended for it (a command's) */
	uint8_t lost;        /* with an error: its partition's log failed (rill_ack.lost) */
	uint8_t reserved;
};
_Static_assert(RILL_COMMAND_EVENTS_MAX <= RILL_PARTITION_GROUP_MAX,
	       "a handler's events fit one group of the partition");
_Static_assert(RILL_COMMAND_EVENTS_MAX <= UINT8_MAX, "event_count fits the acknowledgement");
_Static_assert(sizeof(struct engine_ack_msg) + 8u <= ENGINE_RING_SLOT_BYTES,
	       "an acknowledgement without a reason takes one ring slot");

/* A durable acknowledgement owed, queued per partition in offset order. */
struct engine_durable_wait {
	uint64_t cookie;
	uint64_t offset;     /* durable once the durable offset is past this (a command's last
			      * event) */
	uint64_t ack_offset; /* what the acknowledgement says (a command's first event) */
	uint64_t ingress_ns;
	uint32_t producer_slot;
	uint32_t event_count;
	bool duplicate; /* a retry, acknowledged as the duplicate it is */
};

struct engine_topic;

/* A partition on its owner shard. */
struct shard_part {
	struct engine_topic *topic;
	uint32_t partition;
	struct rill_io *io; /* a view of the shard's mux */
	struct rill_partition *part;
	/* Durable acknowledgements owed: a FIFO of RILL_ENGINE_DURABLE_PENDING_MAX. */
	struct engine_durable_wait *waits;
	uint32_t waits_head, waits_count;
	uint64_t durable_sent; /* the durable offset acknowledgements were last sent up to */
	struct rill_projection *projs[RILL_ENGINE_PROJECTIONS_MAX]; /* by projection index */
	struct shard_handler {
		uint32_t type_id;
		rill_command_fn fn; /* NULL: free */
		void *arg;
	} handlers[RILL_COMMAND_HANDLERS_MAX];
	uint32_t handler_count; /* used entries (some may be free) */
	uint64_t snap_offset;   /* the newest snapshot's offset */
	uint64_t snap_ns;       /* when it was taken (or the partition opened) */
	uint64_t snap_retry_ns; /* after a failure: no periodic try before this */
	int error;              /* the log's fail-stop error, once met */
};

/* Where a partition lives. */
struct engine_part_ref {
	uint32_t shard;
	struct shard_part *sp; /* the owner shard's; only that thread dereferences it */
};

struct engine_topic {
	struct rill_engine *engine;
	uint32_t index;
	char name[RILL_ENGINE_NAME_BYTES_MAX + 1];
	struct rill_topic_config config; /* config.name points at name */
	struct engine_part_ref *parts;   /* [config.partitions] */
};

struct engine_projection {
	uint32_t index;
	char name[RILL_ENGINE_NAME_BYTES_MAX + 1];
	char type[RILL_SCHEMA_NAME_BYTES_MAX + 1];
	char field[RILL_SCHEMA_NAME_BYTES_MAX + 1];
	struct rill_projection_def def; /* strings point at the arrays here */
	struct engine_topic *topic;
	const struct rill_projection_ops *ops; /* custom projections: the application's */
	void *ops_arg;
};

/* A producer handle as one shard sees it. */
struct shard_producer {
	struct rill_ring *events; /* consumer: this shard */
	struct rill_ring *acks;   /* producer: this shard */
	uint64_t acks_reserved;   /* ack ring slots promised to durable acks owed */
	bool attached;
	bool waits_for_log;  /* its next event waits for the log (buffers or durable queue):
			      * an io_uring completion, which wakes the shard, will free it */
	bool waits_for_acks; /* its next event waits for room in the acks ring: the
			      * producer's poll frees it (and wakes the shard, W1) */
	uint64_t *sleeping;  /* the producer's flag (wake_fd handles; else NULL), P0/P1 */
	int wake_fd;
	bool wake_owed; /* acknowledgements sent since its last wake-up (shard_acks_wake) */
};

/* A subscription as its shard sees it: a log iterator feeding a ring to the consumer. */
struct shard_sub {
	bool attached;
	bool ended;    /* an error was sent: nothing more follows */
	bool held;     /* `rec` is read from the log but not yet in the ring (it was full) */
	int end_error; /* the error to end with, once the ring has room for it */
	struct rill_ring *ring; /* producer: this shard */
	struct shard_part *sp;
	struct rill_log_iter it;
	struct rill_record rec; /* the held record (points into it.buf) */
	uint64_t rec_offset;
	uint64_t *sleeping; /* rill_subscribe_notify: the producer's wake flag and fd */
	int wake_fd;
};

/* A message on a subscription's ring: this header, then the encoded record. */
struct engine_sub_msg {
	uint64_t offset;
	int32_t error; /* non-zero: the subscription ended with this error; no record */
	uint32_t record_bytes;
};
_Static_assert(sizeof(struct engine_sub_msg) + RILL_RECORD_BYTES_MAX <= RILL_RING_RESERVE_BYTES_MAX,
	       "every record the log holds can be sent to a subscriber");

enum shard_req_kind {
	SHARD_REQ_SUB_ATTACH,
	SHARD_REQ_SUB_DETACH,
	SHARD_REQ_PART_OPEN,
	SHARD_REQ_PART_CLOSE,
	SHARD_REQ_PROJECTION_ADD,
	SHARD_REQ_PROJECTION_DROP,
	SHARD_REQ_PRODUCER_ATTACH,
	SHARD_REQ_PRODUCER_DETACH,
	SHARD_REQ_QUERY,
	SHARD_REQ_QUERY_AS_OF,
	SHARD_REQ_OPENED,
	SHARD_REQ_SNAPSHOT,
	SHARD_REQ_HANDLER_SET,
	SHARD_REQ_STATS,
	SHARD_REQ_PART_INFO,
	SHARD_REQ_HOOK_ADD,
	SHARD_REQ_HOOK_REMOVE,
	SHARD_REQ_STOP,
};

/* A control request, run by the shard between bursts; the caller waits for done. */
struct shard_req {
	enum shard_req_kind kind;
	struct shard_req *next;
	bool done;
	int result;
	struct engine_topic *topic;
	uint32_t partition;
	bool must_exist; /* PART_OPEN: a stored topic's partition (its folder must be there) */
	struct engine_projection *proj;
	uint32_t producer_slot; /* or the subscription's slot */
	struct rill_ring *events, *acks;
	uint64_t *sleeping; /* PRODUCER_ATTACH: the wake flag and fd (wake_fd handles) */
	int wake_fd;
	uint64_t from_offset; /* subscriptions */
	const void *key;
	uint32_t key_bytes;
	uint64_t min_offset; /* query without a key: is this offset of partition applied? */
	uint64_t as_of_offset, as_of_ns; /* as-of queries */
	uint32_t type_id;                /* command handlers */
	rill_command_fn handler;
	void *handler_arg;
	struct rill_shard_hook hook; /* HOOK_ADD, HOOK_REMOVE (by its arg) */
	struct rill_projection_value *value;
	void *out; /* custom queries: the answer's buffer, its size, its length */
	size_t out_bytes;
	int64_t out_len;
	struct rill_shard_stats *stats;
	struct rill_partition_info *info; /* PART_INFO; as_of_ns and as_of_offset: the lookup */
	struct rill_error_text *err;
};

struct shard {
	struct rill_engine *engine;
	uint32_t index;
	int cpu;
	pthread_t thread;
	bool inited; /* lock, cond and eventfd made */
	bool started;
	struct rill_arena arena;
	struct rill_io *io; /* the shard's backend: io_uring, or POSIX where refused */
	struct rill_io_mux *mux;
	int wake_fd;    /* eventfd: producers and the backend's completions wake a sleeping shard */
	bool notify_ok; /* the backend signals wake_fd when a write completes */

	/* Written by the shard, read by producers (pairs in shard.c, labels W0/W1). */
	_Alignas(RILL_CACHE_GUARD_BYTES) uint64_t sleeping; /* 1 while asleep or about to */

	/* Control mailbox. */
	_Alignas(RILL_CACHE_GUARD_BYTES) pthread_mutex_t lock;
	pthread_cond_t cond;
	struct shard_req *reqs;
	uint64_t reqs_pending; /* requests waiting: the shard's cheap check */
	bool stopped;          /* STOP has run: shard_call refuses (lock) */
	uint32_t callers;      /* threads waiting in shard_call (lock): shard_fini waits */

	/* The shard thread's own. */
	_Alignas(RILL_CACHE_GUARD_BYTES) struct shard_part **parts;
	uint32_t part_count;
	struct shard_producer producers[RILL_ENGINE_PRODUCERS_MAX];
	uint32_t active[RILL_ENGINE_PRODUCERS_MAX]; /* the attached slots, for the loop */
	uint32_t active_count;
	struct shard_sub subs[RILL_ENGINE_SUBSCRIPTIONS_MAX];
	uint32_t sub_count; /* attached: the loop skips the slots when there are none */
	uint32_t sub_high;  /* slots the loop looks at: every attached one is below it */
	uint64_t events, duplicates, refused, stalls, sleeps, snapshots, snapshot_errors;
	uint64_t lost;    /* events a stopped partition could not take (not refused) */
	uint64_t done_ns; /* the end of the last event shard_event took: the next one's take */
	uint64_t local;   /* events taken straight from a publisher on this thread (no ring) */
	bool taking; /* inside shard_event: a publish from a callback goes to the ring, after it */
	uint64_t turns;          /* loop turns: snapshots are looked at every so many */
	uint64_t expire_next_ns; /* monotonic: the next look at retention (shard_expire) */
	uint64_t delay_ns_min;   /* the smallest batch delay of its topics (sleep bound) */
	bool stopping;
	struct rill_shard_hook hooks[RILL_SHARD_HOOKS_MAX]; /* rill_engine_shard_hook_add */
	uint32_t hook_count;
	uint32_t hooks_sleepless; /* hooks without a sleep or a nap: the shard never sleeps */
	uint64_t nap_ns;          /* > 0: a hook naps: the longest sleep (the least of theirs) */
	bool opened;              /* the engine finished opening: periodic snapshots may start */
	int error;                /* the first fatal error (reported at close) */
	struct rill_hist *hist_ring, *hist_apply, *hist_applied, *hist_durable;
	struct rill_hist *hist_sync; /* scratch: the logs' sync times, merged per stats read */
	struct rill_command_result *command; /* the handlers' scratch (one at a time) */
};

struct rill_engine {
	struct rill_engine_config config;
	char data_dir[4096];
	struct rill_io *io;        /* control path: metadata files (POSIX) */
	struct rill_io *schema_io; /* the registry's log (its changes hold its own lock) */
	int lock_handle;
	struct rill_schema_registry *schemas;
	uint32_t shard_count;
	struct shard *shards;
	/* Where the shards' kernel I/O workers run (pinned shards only): the CPUs the
	 * opening thread may use that no shard is pinned to (the first spare_cpu_count, all
	 * of them: rill_engine_spare_cpus), or all its CPUs when none is spare. */
	int io_cpus[RILL_CPUS_MAX];
	unsigned io_cpu_count, spare_cpu_count;

	pthread_mutex_t lock; /* serialises topic, projection and producer changes */
	struct engine_topic *topics[RILL_ENGINE_TOPICS_MAX];
	uint32_t topic_count;     /* topics made (under lock) */
	uint64_t topic_count_pub; /* topics complete: published with release (R4) */
	struct engine_projection *projections[RILL_ENGINE_PROJECTIONS_MAX];
	uint32_t projection_count;                         /* likewise */
	uint64_t projection_count_pub;                     /* (R5) */
	uint32_t shard_partitions[RILL_ENGINE_SHARDS_MAX]; /* partitions each shard owns */
	struct rill_producer *producers[RILL_ENGINE_PRODUCERS_MAX];
	uint32_t producer_count;
	uint32_t subscription_count; /* subscriptions open */
	uint32_t group_count;        /* consumer groups stored (under lock; may pass
				      * config.groups_max: those found at open) */
	uint8_t sub_slots[RILL_ENGINE_SHARDS_MAX][RILL_ENGINE_SUBSCRIPTIONS_MAX]; /* in use */
	uint64_t backpressure; /* rill_publish's -EAGAIN, relaxed adds */

	/*
	 * Closing. rill_engine_close sets closing under lock, in the critical section that
	 * finds no producer or subscription open (so that producer open and subscribe, which
	 * look at it there, either count before it or are refused), and under calls_lock too:
	 * either lock reads it. The other blocking calls go between engine_call_begin and
	 * engine_call_end, counted in calls_active; close waits for none to be left before it
	 * stops the shards and frees what they read.
	 */
	bool closing;
	pthread_mutex_t calls_lock;
	pthread_cond_t calls_cond; /* broadcast when calls_active falls to 0 while closing */
	uint32_t calls_active;     /* blocking calls begun and not ended (calls_lock) */
};

struct rill_producer {
	struct rill_engine *engine;
	uint32_t slot;
	struct rill_producer_config config;
	uint64_t acks_owed; /* acknowledgements asked for, not yet seen */
	uint64_t published; /* events rill_publish took (ring or local): flush's witness */
	struct rill_ring *events[RILL_ENGINE_SHARDS_MAX];
	struct rill_ring *acks[RILL_ENGINE_SHARDS_MAX];
	int wake_fd;            /* eventfd, or -1 */
	uint32_t notified_subs; /* subscriptions that wake through wake_fd (engine lock) */
	uint64_t wake_owed;     /* config.wake_batched: bit i, shard i has events not woken for */
	uint32_t in_on_ack;     /* on_ack calls running: > 0, a poll or flush is nested */
	/* Acknowledgements a nested poll or flush took off the acks rings, kept for the
	 * outer poll to deliver (producer.c, "Nested polls"): a FIFO of ring messages as they
	 * came (struct engine_ack_msg, then its reason), bytes [held_head, held_tail) of
	 * held, which has held_cap bytes; allocated on first use, freed at close. */
	uint8_t *held;
	size_t held_head, held_tail, held_cap;
	uint64_t held_settles; /* acks_owed the held ones settle */
	/* Written by the handle's thread, read by shards (P0/P1 in producer.c). */
	_Alignas(RILL_CACHE_GUARD_BYTES) uint64_t sleeping;
};

/* shard.c */
void *shard_main(void *arg);
int shard_call(struct shard *s, struct shard_req *req);
/* subscription.c: feed every subscription of @s (shard thread); returns records sent. */
unsigned shard_subs_feed(struct shard *s);
bool shard_subs_ready(struct shard *s);
int shard_sub_attach(struct shard *s, struct shard_req *r);
void shard_sub_detach(struct shard *s, uint32_t slot);
/* shard.c: snapshot the partitions due (@all: every one with new events). 0 or the first
 * error. */
int shard_snapshots(struct shard *s, bool all);
/* shard_control.c: run the requests in @s's mailbox (shard thread). Returns how many. */
unsigned shard_control_run(struct shard *s);
void shard_wake(struct shard *s);
/* The shard whose loop runs on the calling thread, or NULL. */
extern __thread struct shard *shard_self;
/*
 * shard.c: on @s's own thread (a hook publishing), take the event of producer @slot now,
 * as the loop would take it from the ring: true once refused or written (its
 * acknowledgements are in the producer's ring), false when the shard must stall it (the
 * caller puts it in the ring instead). The caller checks that the producer's ring to @s is
 * empty, so events stay in order.
 */
bool shard_take_local(struct shard *s, uint32_t slot, const struct engine_event_msg *m,
		      const void *key, const void *payload);
/* After a commit to a ring whose consumer sleeps on @wake_fd while *@sleeping is 1: wake
 * it (the P1 half of the producer's sleep handshake). Nothing when @sleeping is NULL. */
void shard_notify(uint64_t *sleeping, int wake_fd);

/* engine_meta.c: the metadata files under DATA (docs/FORMAT.md, "Engine metadata"). */
/*
 * Tests only (tests/engine/test_engine_meta.c): when set, makes the I/O layer of the
 * engine's own files (DATA/meta, its folders, topic.json, projection definitions, group
 * files: e->io) in place of the POSIX one, so that faults can be injected there. Set it
 * before rill_engine_open, with no engine open; NULL (the default): POSIX.
 */
extern int (*engine_meta_io_create)(struct rill_io **io);

int engine_meta_init(struct rill_engine *e, struct rill_error_text *err);
/* DATA/topics/NAME made (and synced into its parent): before its partitions' folders. */
int engine_meta_topic_dir(struct rill_engine *e, const char *name);
/* DATA/topics/NAME/topic.json written: once its partitions' folders are made. */
int engine_meta_topic_write(struct rill_engine *e, const struct rill_topic_config *c);
void engine_meta_topic_remove(struct rill_engine *e, const char *name);
/* A projection's create (M4 in engine_meta.c): its definition written to
 * DATA/projections/.NAME.json.pending and synced (stage), before its build; renamed to
 * NAME.json and the folder synced (commit) once built, before it is published and the
 * create answered; or, the build failed, the pending file removed (discard). Stage and
 * commit return 0 or -errno, and on failure leave neither name (best effort: the next
 * open removes a pending file left). */
int engine_meta_projection_stage(struct rill_engine *e, const struct rill_projection_def *d);
int engine_meta_projection_commit(struct rill_engine *e, const char *name);
void engine_meta_projection_discard(struct rill_engine *e, const char *name);
/* e->group_count from DATA/groups, at open. */
int engine_meta_groups_count(struct rill_engine *e, struct rill_error_text *err);
/* @count @positions of @topic (checked by the caller: valid, each partition once) into
 * @group's file, in one write: every one stored, or (on any failure) none. RILL_E_GROUPS_FULL
 * for a group not stored yet once e->group_count reaches groups_max.
 * Both say in @err (optional) why they failed: a group file that does not load (damaged)
 * with its path and what to do (RILL_E_JSON_INVALID, -EFBIG), or an I/O error. */
int engine_meta_group_commit(struct rill_engine *e, const char *group, const char *topic,
			     const struct rill_group_position *positions, uint32_t count,
			     struct rill_error_text *err);
int engine_meta_group_offset(struct rill_engine *e, const char *group, const char *topic,
			     uint32_t partition, uint64_t *offset, struct rill_error_text *err);
/* DATA/groups/GROUP.json removed (and its directory synced). 0, -ENOENT or an I/O error. */
int engine_meta_group_delete(struct rill_engine *e, const char *group);
/* Calls back for each stored topic / projection (the config's strings are temporary). */
int engine_meta_topics_load(struct rill_engine *e,
			    int (*fn)(struct rill_engine *, const struct rill_topic_config *,
				      struct rill_error_text *),
			    struct rill_error_text *err);
int engine_meta_projections_load(struct rill_engine *e,
				 int (*fn)(struct rill_engine *, const struct rill_projection_def *,
					   struct rill_error_text *),
				 struct rill_error_text *err);

/*
 * engine.c: a blocking call on @e begins (one that asks the shards, or reads or writes the
 * data directory): 0, or -ESHUTDOWN (with @err, when not NULL, saying why) once
 * rill_engine_close has begun, and then the call does nothing more. After 0 the call ends
 * with engine_call_end once it no longer touches @e: close waits for that.
 */
int engine_call_begin(struct rill_engine *e, struct rill_error_text *err);
void engine_call_end(struct rill_engine *e);
/* True once rill_engine_close has begun: a call that waits (a token) gives up. */
bool engine_closing(struct rill_engine *e);
/* shard_control.c: after the loop ended, answer every request left in the mailbox with
 * -ESHUTDOWN (none comes after: s->stopped). */
void shard_control_refuse(struct shard *s);

/* Formats into @err (when not NULL) and returns @code. */
int engine_error(struct rill_error_text *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* RILL_ENGINE_ENGINE_INT_H */
