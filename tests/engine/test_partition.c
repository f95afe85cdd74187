/*
 * Tests of the partition's write model (engine/partition.h) over the simulated file system
 * (tests/common/io_sim.c). Every write goes through one oracle that predicts, from a model
 * of what the log holds, whether the partition must append it (and at which offset),
 * acknowledge it again as a duplicate (with the original offset) or refuse it (and why);
 * the model is checked against the log read back, byte for byte. Covered: each refusal of
 * the write model with nothing appended; producer idempotence (retries inside the window,
 * sequences too old, gaps, producer 0, first sequences, many producers interleaved, the
 * producer limit); idempotence across a clean close, kill -9 and power cuts; projections
 * of every kind folded after append, bound late, snapshot + replay == rebuild, all equal
 * to a reference fold over the events the log holds; a seeded power-cut loop
 * (RILL_PARTITION_ROUNDS); I/O errors injected at every operation of a workload
 * (RILL_PARTITION_IO_ERROR_STRIDE) and of the rebuild at open: fail-stop, nothing durable
 * lost, no half-rebuilt state.
 */
#include "tests/common/test_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "engine/log.h"
#include "engine/partition.h"
#include "engine/projection.h"
#include "rill/error.h"
#include "rill/record.h"
#include "rill/schema.h"
#include "tests/common/io_sim.h"
#include "tests/common/projection_snapshot.h"
#include "tests/common/schema_check.h"
#include "tests/engine/log_check.h"

#define DIR_SIM "/sim/p0"
#define WINDOW  RILL_PARTITION_DEDUP_WINDOW

#define KEYS        10u
#define PRODUCERS   8u    /* producer slots of the random workloads; slot 0 is id 0 */
#define PAYLOAD_MAX 64u   /* largest Order or Ping payload the tests build */
#define WIN_NS      1000u /* window of the windowed projections */
#define JITTER_NS   1500u /* event time may lag the clock by this much: late events */
#define BAD_TYPE_ID 999u  /* never registered */
#define BAD_VERSION 77u   /* Order has versions 1 to 3 */
#define PROJ_KEYS   64u   /* keys_max of the projections */

/* Three versions of Order, each appending a field with a default (BACKWARD compatible). */
#define ORDER_FIELDS_V1                                                                            \
	"{\"name\":\"amount\",\"type\":\"i64\"},"                                                  \
	"{\"name\":\"note\",\"type\":\"string\",\"max_length\":8}"
#define ORDER_V1 "{\"type\":\"Order\",\"version\":1,\"fields\":[" ORDER_FIELDS_V1 "]}"
#define ORDER_V2                                                                                   \
	"{\"type\":\"Order\",\"version\":2,\"fields\":[" ORDER_FIELDS_V1                           \
	",{\"name\":\"fee\",\"type\":\"i64\",\"default\":5}]}"
#define ORDER_V3                                                                                   \
	"{\"type\":\"Order\",\"version\":3,\"fields\":[" ORDER_FIELDS_V1                           \
	",{\"name\":\"fee\",\"type\":\"i64\",\"default\":5},"                                      \
	"{\"name\":\"price\",\"type\":\"f64\",\"default\":1.5}]}"
#define PING_V1       "{\"type\":\"Ping\",\"version\":1,\"fields\":[{\"name\":\"n\",\"type\":\"u64\"}]}"
#define FEE_DEFAULT   5
#define PRICE_DEFAULT 1.5

static const char *const key_text[KEYS] = {"",   "alpha", "beta", "gamma", "delta",
					   "k5", "k6",    "k7",   "k8",    "a-longer-key-9"};

/* ---- The world: a disk, the schemas, a partition and the model of its log -------------- */

/* One event the log holds (or is expected to), as the test wrote it. */
struct mev {
	uint64_t producer, seq, ts, corr;
	uint32_t type_id;
	uint16_t version;
	uint16_t key;
	int64_t amount, fee; /* fee as an Order v2 reader sees it (the default for v1) */
	double price;        /* as a v3 reader sees it */
	uint32_t payload_bytes;
	uint8_t payload[PAYLOAD_MAX];
};

/* What the partition should know of one producer: what the model's log says. */
struct prod {
	uint64_t id;
	bool known;
	uint64_t start, last; /* first and last sequence the log holds from it */
};

struct world {
	struct io_sim *sim;
	struct rill_schema_registry *reg;
	const struct rill_schema *order[4]; /* [1..3] */
	const struct rill_schema *ping;
	struct rill_partition_config config;
	struct rill_partition *part;
	struct mev *ev; /* by offset: what the log holds */
	uint64_t ev_count, ev_cap;
	struct prod prod[256];
	uint32_t prod_count;
	uint64_t clock_ns;
	/* Counters of what the oracle expected, to compare with the partition's stats. */
	uint64_t appended, duplicates, refused;
};

static void world_init(struct world *w, uint64_t sim_seed)
{
	memset(w, 0, sizeof(*w));
	assert_int_equal(io_sim_create(&w->sim, sim_seed), 0);
	assert_int_equal(rill_schema_registry_open(&w->reg, NULL, NULL, NULL), 0);
	w->order[1] = schema_reg_ok(w->reg, ORDER_V1);
	w->order[2] = schema_reg_ok(w->reg, ORDER_V2);
	w->order[3] = schema_reg_ok(w->reg, ORDER_V3);
	w->ping = schema_reg_ok(w->reg, PING_V1);
	assert_int_not_equal(rill_schema_type_id(w->order[1]), rill_schema_type_id(w->ping));
	assert_int_not_equal(rill_schema_type_id(w->order[1]), BAD_TYPE_ID);
	rill_partition_config_default(&w->config);
	assert_int_equal(w->config.producers_max, 4096);
	w->config.io = io_sim_io(w->sim);
	w->config.dir = DIR_SIM;
	w->config.schemas = w->reg;
	w->config.log = log_check_small_config();
	w->clock_ns = 1000000;
}

static void world_fini(struct world *w)
{
	assert_null(w->part); /* closed or dropped by the test */
	free(w->ev);
	assert_int_equal(rill_schema_registry_close(w->reg), 0);
	io_sim_destroy(w->sim);
}

/* A fresh disk: the model forgets everything. */
static void world_new_disk(struct world *w, uint64_t sim_seed)
{
	io_sim_destroy(w->sim);
	assert_int_equal(io_sim_create(&w->sim, sim_seed), 0);
	w->config.io = io_sim_io(w->sim);
	w->ev_count = 0;
	w->prod_count = 0;
}

static uint32_t order_type(const struct world *w)
{
	return rill_schema_type_id(w->order[1]);
}

static struct rill_log *wlog(struct world *w)
{
	return rill_partition_log(w->part);
}

static void part_open(struct world *w, struct rill_log_recovery *report)
{
	struct rill_log_recovery local;
	if (report == NULL)
		report = &local;
	memset(report, 0, sizeof(*report));
	int rc = rill_partition_open(&w->part, &w->config, report);
	if (rc != 0)
		fail_msg("partition open refused: %s (%s)", rill_strerror(rc), report->message);
	assert_non_null(w->part);
}

static void part_close(struct world *w)
{
	assert_int_equal(rill_partition_close(w->part), 0);
	w->part = NULL;
}

static void part_drop(struct world *w)
{
	rill_partition_drop(w->part);
	w->part = NULL;
}

/* ---- Producers ------------------------------------------------------------------------ */

/* Producer slot @i's id: spread out, so a table keyed by id cannot get by on small ids. */
static uint64_t prod_id(uint32_t i)
{
	return i == 0 ? 0 : (uint64_t)i * 0x100000001b3ull + ((uint64_t)i << 56);
}

static struct prod *prod_get(struct world *w, uint64_t id)
{
	for (uint32_t i = 0; i < w->prod_count; i++)
		if (w->prod[i].id == id)
			return &w->prod[i];
	assert_true(w->prod_count < sizeof(w->prod) / sizeof(w->prod[0]));
	struct prod *p = &w->prod[w->prod_count++];
	memset(p, 0, sizeof(*p));
	p->id = id;
	return p;
}

static uint32_t prods_known(const struct world *w)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < w->prod_count; i++)
		n += w->prod[i].known;
	return n;
}

/* What the producers' state must be, from the model's log alone (as replay sees it). */
static void prods_rebuild(struct world *w)
{
	for (uint32_t i = 0; i < w->prod_count; i++)
		w->prod[i].known = false;
	for (uint64_t o = 0; o < w->ev_count; o++) {
		const struct mev *m = &w->ev[o];
		if (m->producer == 0)
			continue;
		struct prod *p = prod_get(w, m->producer);
		if (!p->known) {
			p->known = true;
			p->start = m->seq;
		} else if (m->seq != p->last + 1) {
			fail_msg("the log holds producer %llx seq %llu after %llu (offset %llu)",
				 (unsigned long long)m->producer, (unsigned long long)m->seq,
				 (unsigned long long)p->last, (unsigned long long)o);
		}
		p->last = m->seq;
	}
}

/* The offset the model's log holds (@producer, @seq) at, or UINT64_MAX. */
static uint64_t model_find(const struct world *w, uint64_t producer, uint64_t seq)
{
	for (uint64_t o = w->ev_count; o-- > 0;)
		if (w->ev[o].producer == producer && w->ev[o].seq == seq)
			return o;
	return UINT64_MAX;
}

/* ---- Events --------------------------------------------------------------------------- */

enum fault { FAULT_NONE, FAULT_PAYLOAD, FAULT_VERSION, FAULT_TYPE };

struct evspec {
	uint64_t producer, seq;
	uint32_t key;
	bool ping;
	uint16_t version; /* Order's version (1 to 3) */
	enum fault fault;
	int64_t amount, fee;
	double price;
	uint32_t note_bytes;
};

/* An encodable event and the buffers its pointers use. */
struct wbuf {
	struct rill_record rec;
	struct mev m; /* what the log must hold if it is appended */
};

static uint32_t fidx(const struct rill_schema *s, const char *name)
{
	int i = rill_schema_field_index(s, name);
	if (i < 0)
		fail_msg("no field %s", name);
	return (uint32_t)i;
}

static void build_event(struct world *w, const struct evspec *s, struct wbuf *b)
{
	struct mev *m = &b->m;
	memset(b, 0, sizeof(*b));
	w->clock_ns += 1 + (s->amount & 0xff); /* deterministic from the spec */
	m->producer = s->producer;
	m->seq = s->seq;
	m->ts = w->clock_ns - (uint64_t)((s->amount * 7 + 1000000) % JITTER_NS);
	m->corr = s->seq * 31 + s->producer;
	m->key = (uint16_t)s->key;
	uint8_t buf[PAYLOAD_MAX];
	struct rill_payload_builder pb;
	if (s->ping) {
		m->type_id = rill_schema_type_id(w->ping);
		m->version = 1;
		assert_int_equal(rill_payload_builder_init(&pb, w->ping, buf, sizeof(buf)), 0);
		assert_int_equal(rill_payload_set_u64(&pb, 0, (uint64_t)s->amount), 0);
	} else {
		const struct rill_schema *sc = w->order[s->version];
		assert_true(rill_schema_payload_bytes_max(sc) <= PAYLOAD_MAX);
		m->type_id = order_type(w);
		m->version = s->version;
		assert_int_equal(rill_payload_builder_init(&pb, sc, buf, sizeof(buf)), 0);
		assert_int_equal(rill_payload_set_i64(&pb, fidx(sc, "amount"), s->amount), 0);
		assert_int_equal(
			rill_payload_set_var(&pb, fidx(sc, "note"), "abcdefgh", s->note_bytes), 0);
		m->amount = s->amount;
		m->fee = FEE_DEFAULT;
		m->price = PRICE_DEFAULT;
		if (s->version >= 2) {
			assert_int_equal(rill_payload_set_i64(&pb, fidx(sc, "fee"), s->fee), 0);
			m->fee = s->fee;
		}
		if (s->version >= 3) {
			assert_int_equal(rill_payload_set_f64(&pb, fidx(sc, "price"), s->price), 0);
			m->price = s->price;
		}
	}
	assert_int_equal(rill_payload_builder_finish(&pb, &m->payload_bytes, NULL), 0);
	memcpy(m->payload, buf, m->payload_bytes);
	if (s->fault == FAULT_PAYLOAD) {
		uint32_t block;
		memcpy(&block, m->payload, sizeof(block));
		block += 8; /* a block_bytes the version does not have */
		memcpy(m->payload, &block, sizeof(block));
	} else if (s->fault == FAULT_VERSION) {
		m->version = BAD_VERSION;
	} else if (s->fault == FAULT_TYPE) {
		m->type_id = BAD_TYPE_ID;
	}
	b->rec = (struct rill_record){.timestamp_ns = m->ts,
				      .producer_id = m->producer,
				      .sequence = m->seq,
				      .correlation_id = m->corr,
				      .causation_id = m->seq ^ 0x55,
				      .type_id = m->type_id,
				      .schema_version = m->version,
				      .key_bytes = (uint16_t)strlen(key_text[m->key]),
				      .payload_bytes = m->payload_bytes,
				      .key = key_text[m->key],
				      .payload = m->payload};
}

/* The record the model holds at @o (pointers into the model). */
static struct rill_record model_record(const struct world *w, uint64_t o)
{
	const struct mev *m = &w->ev[o];
	return (struct rill_record){.timestamp_ns = m->ts,
				    .producer_id = m->producer,
				    .sequence = m->seq,
				    .correlation_id = m->corr,
				    .causation_id = m->seq ^ 0x55,
				    .type_id = m->type_id,
				    .schema_version = m->version,
				    .key_bytes = (uint16_t)strlen(key_text[m->key]),
				    .payload_bytes = m->payload_bytes,
				    .key = key_text[m->key],
				    .payload = m->payload};
}

static void model_push(struct world *w, const struct mev *m)
{
	if (w->ev_count == w->ev_cap) {
		w->ev_cap = w->ev_cap ? w->ev_cap * 2 : 1024;
		w->ev = realloc(w->ev, w->ev_cap * sizeof(*w->ev));
		assert_non_null(w->ev);
	}
	w->ev[w->ev_count++] = *m;
}

/* ---- The oracle and the write ---------------------------------------------------------- */

struct expect {
	int rc;
	bool dup;
	uint64_t offset;
};

/* What the partition must do with @s, from the header's rules and the model. */
static struct expect oracle(struct world *w, const struct evspec *s)
{
	struct expect e = {0, false, w->ev_count};
	if (s->fault == FAULT_TYPE || s->fault == FAULT_VERSION)
		return (struct expect){RILL_E_WRITE_UNKNOWN_TYPE, false, 0};
	if (s->fault == FAULT_PAYLOAD)
		return (struct expect){RILL_E_PAYLOAD_INVALID, false, 0};
	if (s->producer == 0)
		return e; /* never deduplicated */
	struct prod *p = prod_get(w, s->producer);
	if (!p->known) { /* its first sequence here: 0, or a gap */
		if (prods_known(w) >= w->config.producers_max)
			return (struct expect){-ENOSPC, false, 0};
		return s->seq == 0 ? e : (struct expect){RILL_E_WRITE_SEQUENCE_GAP, false, 0};
	}
	if (s->seq == p->last + 1)
		return e;
	if (s->seq > p->last + 1)
		return (struct expect){RILL_E_WRITE_SEQUENCE_GAP, false, 0};
	if (s->seq < p->start)
		return (struct expect){RILL_E_WRITE_SEQUENCE, false, 0};
	if (p->last - s->seq >= WINDOW) /* written, where no longer known */
		return (struct expect){0, true, UINT64_MAX};
	uint64_t o = model_find(w, s->producer, s->seq);
	assert_true(o != UINT64_MAX);
	return (struct expect){0, true, o};
}

static bool msg_has(const char *msg, const char *needle)
{
	size_t n = strlen(needle);
	for (const char *p = msg; *p != '\0'; p++) {
		size_t i = 0;
		while (i < n && p[i] != '\0' &&
		       tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i]))
			i++;
		if (i == n)
			return true;
	}
	return false;
}

static const char *fault_name(enum fault f)
{
	static const char *const names[] = {"none", "payload", "version", "type"};
	return names[f];
}

static void spec_describe(const struct evspec *s, char *out, size_t bytes)
{
	snprintf(out, bytes, "producer %llx seq %llu %s v%u key %u fault %s",
		 (unsigned long long)s->producer, (unsigned long long)s->seq,
		 s->ping ? "Ping" : "Order", s->version, s->key, fault_name(s->fault));
}

/* rill_partition_write, polling while the log pushes back. */
static int write_retry(struct rill_partition *part, const struct rill_record *rec,
		       struct rill_partition_write *res, struct rill_schema_error *err)
{
	int rc;
	while ((rc = rill_partition_write(part, rec, res, err)) == -EAGAIN) {
		int prc = rill_partition_poll(part, 1000000);
		if (prc < 0)
			return prc;
	}
	return rc;
}

/* A refusal's message must say why. */
static void check_refusal_message(const struct evspec *s, int rc, const char *msg, const char *what)
{
	if (strcmp(msg, ERR_SENTINEL) == 0 || msg[0] == '\0')
		fail_msg("%s: refused (%s) with no message", what, rill_strerror(rc));
	const char *needle = NULL;
	char num[32];
	if (s->fault == FAULT_TYPE) {
		snprintf(num, sizeof(num), "%u", BAD_TYPE_ID);
		needle = num;
	} else if (s->fault == FAULT_VERSION) {
		snprintf(num, sizeof(num), "%u", BAD_VERSION);
		needle = num;
	} else if (s->fault == FAULT_PAYLOAD) {
		needle = "block_bytes";
	} else if (rc == RILL_E_WRITE_SEQUENCE || rc == RILL_E_WRITE_SEQUENCE_GAP) {
		needle = "sequence";
	} else if (rc == -ENOSPC) {
		needle = "producer";
	}
	if (needle != NULL && !msg_has(msg, needle))
		fail_msg("%s: refused (%s), but the message does not name the reason (\"%s\"): %s",
			 what, rill_strerror(rc), needle, msg);
}

/*
 * Write @s and check the partition did what the oracle says; the model follows. With
 * @log_error_ok, a log failure is returned instead of failing the test. Returns the rc.
 */
static int do_write_ex(struct world *w, const struct evspec *s, bool log_error_ok)
{
	char what[160];
	spec_describe(s, what, sizeof(what));
	struct expect e = oracle(w, s);
	struct wbuf b;
	build_event(w, s, &b);
	struct rill_schema_error err;
	err_reset(&err);
	struct rill_partition_write res = {.offset = 0xdeadbeef, .duplicate = true};
	uint64_t before = rill_partition_next_offset(w->part);
	if (before != w->ev_count)
		fail_msg("%s: next offset %llu, the model holds %llu", what,
			 (unsigned long long)before, (unsigned long long)w->ev_count);
	int rc = write_retry(w->part, &b.rec, &res, &err);
	if (rc != e.rc && log_error_ok && rc < 0 && rc == rill_log_error(wlog(w)))
		return rc;
	if (rc != e.rc)
		fail_msg("%s: write returned %d (%s: %s), expected %d (%s)", what, rc,
			 rill_strerror(rc), rc ? err.message : "-", e.rc, rill_strerror(e.rc));
	uint64_t after = rill_partition_next_offset(w->part);
	if (rc != 0) {
		if (after != before)
			fail_msg("%s: refused (%s) but next offset went %llu -> %llu", what,
				 rill_strerror(rc), (unsigned long long)before,
				 (unsigned long long)after);
		check_refusal_message(s, rc, err.message, what);
		w->refused++;
		return rc;
	}
	if (res.duplicate != e.dup || res.offset != e.offset)
		fail_msg("%s: acknowledged duplicate=%d offset %llu, expected duplicate=%d offset "
			 "%llu",
			 what, res.duplicate, (unsigned long long)res.offset, e.dup,
			 (unsigned long long)e.offset);
	if (after != before + (e.dup ? 0 : 1))
		fail_msg("%s: next offset went %llu -> %llu (duplicate=%d)", what,
			 (unsigned long long)before, (unsigned long long)after, e.dup);
	if (e.dup) {
		w->duplicates++;
		return 0;
	}
	model_push(w, &b.m);
	w->appended++;
	if (s->producer != 0) {
		struct prod *p = prod_get(w, s->producer);
		if (!p->known)
			p->start = s->seq;
		p->known = true;
		p->last = s->seq;
	}
	return 0;
}

static int do_write(struct world *w, const struct evspec *s)
{
	return do_write_ex(w, s, false);
}

/* A valid Order v1 event. */
static struct evspec spec_order(uint64_t producer, uint64_t seq, uint32_t key, int64_t amount)
{
	return (struct evspec){.producer = producer,
			       .seq = seq,
			       .key = key,
			       .version = 1,
			       .amount = amount,
			       .note_bytes = 3};
}

/*
 * A random event of the workload: mostly the producer's next sequence, with retries,
 * gaps, sequences too old, producer 0, Pings, three versions and (with @faults) events the
 * write model must refuse.
 */
static struct evspec gen_spec(struct world *w, struct test_rng *rng, bool faults)
{
	struct evspec s = {0};
	uint32_t slot = (uint32_t)test_rng_below(rng, PRODUCERS);
	s.producer = prod_id(slot);
	s.key = (uint32_t)test_rng_below(rng, KEYS);
	s.ping = test_rng_below(rng, 10) == 0;
	s.version = (uint16_t)(s.ping ? 1 : 1 + test_rng_below(rng, 3));
	s.amount = (int64_t)test_rng_below(rng, 2001) - 1000;
	s.fee = (int64_t)test_rng_below(rng, 100);
	s.price = (double)test_rng_below(rng, 64) / 4.0;
	s.note_bytes = (uint32_t)test_rng_below(rng, 9);
	if (s.producer == 0) {
		s.seq = test_rng_below(rng, 4); /* anything: never deduplicated */
	} else {
		struct prod *p = prod_get(w, s.producer);
		uint64_t r = test_rng_below(rng, 100);
		if (!p->known) {
			s.seq = test_rng_below(rng, 3) != 0 ? 0 : test_rng_below(rng, 1000);
		} else if (r < 75) {
			s.seq = p->last + 1;
		} else if (r < 87) {
			uint64_t span = p->last - p->start + 1;
			s.seq = p->last - test_rng_below(rng, span < WINDOW ? span : WINDOW);
		} else if (r < 93) {
			s.seq = p->last + 2 + test_rng_below(rng, 4);
		} else if (p->last - p->start >= WINDOW) {
			s.seq = p->last - WINDOW -
				test_rng_below(rng, p->last - p->start - WINDOW + 1);
		} else if (p->start > 0) {
			s.seq = p->start - 1 - test_rng_below(rng, p->start < 3 ? p->start : 3);
		} else {
			s.seq = p->last + 1;
		}
		if (faults && p->known && s.seq != p->last + 1)
			return s; /* refusals only on sequences that would be appended */
	}
	if (faults) {
		uint64_t r = test_rng_below(rng, 60);
		s.fault = r == 0   ? FAULT_PAYLOAD
			  : r == 1 ? FAULT_VERSION
			  : r == 2 ? FAULT_TYPE
				   : FAULT_NONE;
	}
	return s;
}

/* ---- Reading the log back ------------------------------------------------------------- */

static bool record_matches(const struct rill_record *got, const struct rill_record *want)
{
	return got->timestamp_ns == want->timestamp_ns && got->producer_id == want->producer_id &&
	       got->sequence == want->sequence && got->correlation_id == want->correlation_id &&
	       got->causation_id == want->causation_id && got->type_id == want->type_id &&
	       got->schema_version == want->schema_version && got->key_bytes == want->key_bytes &&
	       got->payload_bytes == want->payload_bytes &&
	       memcmp(got->key, want->key, got->key_bytes) == 0 &&
	       memcmp(got->payload, want->payload, got->payload_bytes) == 0;
}

/*
 * Read the whole log: every record must be the model's at its offset, at least
 * @durable_min of them, and as many as the partition's next offset. The model is cut to
 * what the log holds (a crash may lose what was not durable) and the producers rebuilt.
 */
static void check_log_is_model(struct world *w, uint64_t durable_min, const char *what)
{
	struct rill_log *log = wlog(w);
	uint64_t next = rill_partition_next_offset(w->part);
	assert_int_equal(rill_log_next_offset(log), next);
	struct rill_log_iter it;
	assert_int_equal(rill_log_iter_init(&it, log, 0), 0);
	struct rill_record rec;
	uint64_t offset, expect = 0;
	int rc;
	while ((rc = rill_log_iter_next(&it, &rec, &offset)) == 1) {
		if (offset != expect)
			fail_msg("%s: the log reads offset %llu where %llu was expected", what,
				 (unsigned long long)offset, (unsigned long long)expect);
		if (offset >= w->ev_count)
			fail_msg("%s: the log holds offset %llu, past the %llu events written",
				 what, (unsigned long long)offset, (unsigned long long)w->ev_count);
		struct rill_record want = model_record(w, offset);
		if (!record_matches(&rec, &want))
			fail_msg("%s: offset %llu is not the event written there (producer %llx "
				 "seq %llu; expected producer %llx seq %llu)",
				 what, (unsigned long long)offset,
				 (unsigned long long)rec.producer_id,
				 (unsigned long long)rec.sequence,
				 (unsigned long long)want.producer_id,
				 (unsigned long long)want.sequence);
		expect++;
	}
	rill_log_iter_fini(&it);
	if (rc != 0)
		fail_msg("%s: reading the log failed at %llu: %s", what, (unsigned long long)expect,
			 rill_strerror(rc));
	if (expect < durable_min)
		fail_msg("%s: the log holds %llu events, %llu were durable: acknowledged events "
			 "lost",
			 what, (unsigned long long)expect, (unsigned long long)durable_min);
	if (expect != next)
		fail_msg("%s: the log reads %llu events, next offset is %llu", what,
			 (unsigned long long)expect, (unsigned long long)next);
	w->ev_count = expect;
	prods_rebuild(w);
}

/*
 * The dedup state must be what the log says: every producer's last WINDOW sequences are
 * duplicates with their offsets, the one before them a duplicate whose offset is no longer
 * known, a gap is refused. Appends nothing.
 */
static void check_dedup_is_log(struct world *w)
{
	for (uint32_t i = 0; i < w->prod_count; i++) {
		struct prod p = w->prod[i];
		if (!p.known)
			continue;
		uint64_t span = p.last - p.start + 1;
		for (uint64_t d = 0; d < span && d < WINDOW; d++) {
			struct evspec s = spec_order(p.id, p.last - d, 1, 1);
			assert_int_equal(do_write(w, &s), 0);
		}
		if (span > WINDOW) {
			struct evspec s = spec_order(p.id, p.last - WINDOW, 1, 1);
			assert_int_equal(do_write(w, &s), 0);
		}
		struct evspec gap = spec_order(p.id, p.last + 2, 1, 1);
		assert_int_equal(do_write(w, &gap), RILL_E_WRITE_SEQUENCE_GAP);
	}
}

/* ---- Projections and their reference fold ---------------------------------------------- */

enum value_of { V_NONE, V_AMOUNT, V_FEE, V_PRICE };

struct pcase {
	const char *name;
	enum rill_projection_kind kind;
	const char *field;
	uint16_t version;
	uint64_t window_ns;
	enum value_of value;
};

/* Read as v1 (newer events by name), v2 (v1 events get fee's default) and v3. */
static const struct pcase pcases[] = {
	{"count", RILL_PROJECTION_COUNT, NULL, 1, 0, V_NONE},
	{"sum", RILL_PROJECTION_SUM, "amount", 1, 0, V_AMOUNT},
	{"min", RILL_PROJECTION_MIN, "amount", 1, 0, V_AMOUNT},
	{"max", RILL_PROJECTION_MAX, "amount", 2, 0, V_AMOUNT},
	{"last", RILL_PROJECTION_LAST, "amount", 3, 0, V_AMOUNT},
	{"avg", RILL_PROJECTION_AVG, "amount", 1, 0, V_AMOUNT},
	{"wcount", RILL_PROJECTION_WINDOW_COUNT, NULL, 1, WIN_NS, V_NONE},
	{"wsum", RILL_PROJECTION_WINDOW_SUM, "amount", 1, WIN_NS, V_AMOUNT},
	{"fee_sum", RILL_PROJECTION_SUM, "fee", 2, 0, V_FEE},
	{"price_last", RILL_PROJECTION_LAST, "price", 3, 0, V_PRICE},
	{"price_max", RILL_PROJECTION_MAX, "price", 3, 0, V_PRICE},
};
#define PCASES (sizeof(pcases) / sizeof(pcases[0]))

static bool pcase_windowed(const struct pcase *pc)
{
	return pc->window_ns != 0;
}

static struct rill_projection *proj_new(struct world *w, const struct pcase *pc)
{
	struct rill_projection_config c;
	memset(&c, 0, sizeof(c));
	c.name = pc->name;
	c.type = "Order";
	c.version = pc->version;
	c.kind = pc->kind;
	c.field = pc->field;
	c.window_ns = pc->window_ns;
	c.keys_max = PROJ_KEYS;
	c.key_store_bytes = 4096;
	struct rill_projection *p = NULL;
	struct rill_schema_error err;
	err_reset(&err);
	int rc = rill_projection_create(&p, w->reg, &c, &err);
	if (rc != 0)
		fail_msg("projection %s refused (%d): %s", pc->name, rc, err.message);
	return p;
}

struct rkey {
	uint64_t count, offset;
	int64_t isum, imin, imax, ilast;
	double fmin, fmax, flast;
	bool seen;
	uint64_t win_start, win_count, prev_count, win_offset;
	int64_t win_sum, prev_sum;
};

struct rfold {
	struct rkey key[KEYS];
	uint64_t typed, ignored, late;
};

static int64_t ival(const struct mev *m, enum value_of v)
{
	return v == V_FEE ? m->fee : m->amount;
}

static void rfold_window(struct rfold *r, struct rkey *k, const struct mev *m, uint64_t o,
			 const struct pcase *pc)
{
	uint64_t wn = pc->window_ns;
	uint64_t start = m->ts / wn * wn;
	int64_t v = ival(m, pc->value);
	if (!k->seen || start > k->win_start) {
		bool adjacent = k->seen && start - k->win_start == wn;
		k->prev_count = adjacent ? k->win_count : 0;
		k->prev_sum = adjacent ? k->win_sum : 0;
		k->win_start = start;
		k->win_count = 0;
		k->win_sum = 0;
	}
	k->seen = true;
	if (start == k->win_start) {
		k->win_count++;
		k->win_sum += v;
	} else if (start + wn == k->win_start) {
		k->prev_count++;
		k->prev_sum += v;
	} else {
		r->late++;
		return;
	}
	k->win_offset = o;
}

/* The reference fold of @pc over the model's events (which the log has been shown to hold). */
static void rfold_run(const struct world *w, const struct pcase *pc, struct rfold *r)
{
	memset(r, 0, sizeof(*r));
	for (uint64_t o = 0; o < w->ev_count; o++) {
		const struct mev *m = &w->ev[o];
		if (m->type_id != order_type(w)) {
			r->ignored++;
			continue;
		}
		r->typed++;
		struct rkey *k = &r->key[m->key];
		if (pcase_windowed(pc)) {
			rfold_window(r, k, m, o, pc);
			continue;
		}
		int64_t v = ival(m, pc->value);
		double f = m->price;
		if (k->count == 0 || v < k->imin)
			k->imin = v;
		if (k->count == 0 || v > k->imax)
			k->imax = v;
		if (k->count == 0 || f < k->fmin)
			k->fmin = f;
		if (k->count == 0 || f > k->fmax)
			k->fmax = f;
		k->ilast = v;
		k->flast = f;
		k->isum += v;
		k->count++;
		k->offset = o;
	}
}

static bool near(double got, double want)
{
	double d = got > want ? got - want : want - got;
	double a = got < 0 ? -got : got, b = want < 0 ? -want : want;
	return d <= 1e-12 * (a > b ? a : b); /* no libm: the log test's dependencies */
}

static void check_proj_key(const struct rill_projection *p, const struct pcase *pc,
			   const struct rkey *rk, uint32_t k, const char *what)
{
	struct rill_projection_value v;
	memset(&v, 0x5a, sizeof(v));
	const char *key = key_text[k];
	bool found = rill_projection_get(p, key, (uint32_t)strlen(key), &v);
	bool want = pcase_windowed(pc) ? rk->seen : rk->count > 0;
	if (found != want)
		fail_msg("%s %s key \"%s\": get says %d, expected %d", what, pc->name, key, found,
			 want);
	if (!found)
		return;
	if (pcase_windowed(pc)) {
		if (v.count != rk->win_count || v.window_start_ns != rk->win_start ||
		    v.offset != rk->win_offset)
			fail_msg("%s %s key \"%s\": window %llu count %llu offset %llu, expected "
				 "%llu %llu %llu",
				 what, pc->name, key, (unsigned long long)v.window_start_ns,
				 (unsigned long long)v.count, (unsigned long long)v.offset,
				 (unsigned long long)rk->win_start,
				 (unsigned long long)rk->win_count,
				 (unsigned long long)rk->win_offset);
		if (pc->kind == RILL_PROJECTION_WINDOW_SUM && v.i64 != rk->win_sum)
			fail_msg("%s %s key \"%s\": window sum %lld, expected %lld", what, pc->name,
				 key, (long long)v.i64, (long long)rk->win_sum);
		return;
	}
	if (v.count != rk->count || v.offset != rk->offset)
		fail_msg("%s %s key \"%s\": count %llu offset %llu, expected %llu %llu", what,
			 pc->name, key, (unsigned long long)v.count, (unsigned long long)v.offset,
			 (unsigned long long)rk->count, (unsigned long long)rk->offset);
	bool fl = pc->value == V_PRICE;
	bool ok = true;
	switch (pc->kind) {
	case RILL_PROJECTION_SUM:
		ok = v.i64 == rk->isum && !v.sum_overflow;
		break;
	case RILL_PROJECTION_MIN:
		ok = fl ? v.f64 == rk->fmin : v.i64 == rk->imin;
		break;
	case RILL_PROJECTION_MAX:
		ok = fl ? v.f64 == rk->fmax : v.i64 == rk->imax;
		break;
	case RILL_PROJECTION_LAST:
		ok = fl ? v.f64 == rk->flast : v.i64 == rk->ilast;
		break;
	case RILL_PROJECTION_AVG:
		ok = near(v.avg, (double)rk->isum / (double)rk->count);
		break;
	default:
		break;
	}
	if (!ok)
		fail_msg("%s %s key \"%s\": i64 %lld f64 %g avg %g; expected sum %lld min %lld max "
			 "%lld last %lld (f64 min %g max %g last %g)",
			 what, pc->name, key, (long long)v.i64, v.f64, v.avg, (long long)rk->isum,
			 (long long)rk->imin, (long long)rk->imax, (long long)rk->ilast, rk->fmin,
			 rk->fmax, rk->flast);
}

static void assert_same_snapshot(const struct rill_projection *a, const struct rill_projection *b,
				 const char *what)
{
	size_t na, nb;
	uint8_t *sa = snapshot_of(a, &na);
	uint8_t *sb = snapshot_of(b, &nb);
	if (na != nb || memcmp(sa, sb, na) != 0) {
		size_t at = 0;
		while (at < na && at < nb && sa[at] == sb[at])
			at++;
		fail_msg("%s %s: snapshots differ (%zu and %zu bytes, first at byte %zu)", what,
			 rill_projection_name(a), na, nb, at);
	}
	free(sa);
	free(sb);
}

/*
 * @p must equal the reference fold of @pc over the log (the model, checked against it),
 * key by key, in its stats (unless @restored: a restore does not carry them), and to the
 * byte in its snapshot against a twin fed the same events directly.
 */
static void check_proj(struct world *w, const struct rill_projection *p, const struct pcase *pc,
		       bool restored, const char *what)
{
	struct rfold r;
	rfold_run(w, pc, &r);
	for (uint32_t k = 0; k < KEYS; k++)
		check_proj_key(p, pc, &r.key[k], k, what);
	if (!restored) {
		struct rill_projection_stats st;
		rill_projection_stats(p, &st);
		uint64_t late = pcase_windowed(pc) ? r.late : 0;
		if (st.applied != r.typed - late || st.ignored != r.ignored || st.late != late ||
		    st.errors != 0 || st.refused_full != 0)
			fail_msg("%s %s: stats applied %llu ignored %llu late %llu errors %llu, "
				 "expected %llu %llu %llu 0",
				 what, pc->name, (unsigned long long)st.applied,
				 (unsigned long long)st.ignored, (unsigned long long)st.late,
				 (unsigned long long)st.errors,
				 (unsigned long long)(r.typed - late),
				 (unsigned long long)r.ignored, (unsigned long long)late);
	}
	struct rill_projection *twin = proj_new(w, pc);
	for (uint64_t o = 0; o < w->ev_count; o++) {
		struct rill_record rec = model_record(w, o);
		assert_int_equal(rill_projection_apply(twin, &rec, o), 0);
	}
	assert_same_snapshot(p, twin, what);
	rill_projection_destroy(twin);
}

/* @p folded exactly the model's events: its snapshot is a twin's fed them directly. */
static void check_proj_twin_only(struct world *w, const struct rill_projection *p)
{
	const struct pcase *pc = NULL;
	for (size_t i = 0; i < PCASES && pc == NULL; i++)
		if (strcmp(pcases[i].name, rill_projection_name(p)) == 0)
			pc = &pcases[i];
	assert_non_null(pc);
	struct rill_projection *twin = proj_new(w, pc);
	for (uint64_t o = 0; o < w->ev_count; o++) {
		struct rill_record rec = model_record(w, o);
		assert_int_equal(rill_projection_apply(twin, &rec, o), 0);
	}
	assert_same_snapshot(p, twin, "folded vs appended");
	rill_projection_destroy(twin);
}

static void projs_bind(struct world *w, struct rill_projection **ps)
{
	for (size_t i = 0; i < PCASES; i++) {
		ps[i] = proj_new(w, &pcases[i]);
		int rc = rill_partition_projection_add(w->part, ps[i], 0);
		if (rc != 0)
			fail_msg("projection_add %s: %s", pcases[i].name, rill_strerror(rc));
	}
}

static void projs_check(struct world *w, struct rill_projection **ps, const char *what)
{
	for (size_t i = 0; i < PCASES; i++)
		check_proj(w, ps[i], &pcases[i], false, what);
}

static void projs_destroy(struct rill_projection **ps)
{
	for (size_t i = 0; i < PCASES; i++)
		rill_projection_destroy(ps[i]);
}

/* ---- 1. Refusals ----------------------------------------------------------------------- */

static void test_refusals(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 1);
	w.config.producers_max = 4;
	part_open(&w, NULL);
	struct evspec s = spec_order(0, 0, 1, 10);
	assert_int_equal(do_write(&w, &s), 0);

	/* Each refusal appends nothing (do_write checks next offset and the message). */
	s.fault = FAULT_TYPE;
	assert_int_equal(do_write(&w, &s), RILL_E_WRITE_UNKNOWN_TYPE);
	s.fault = FAULT_VERSION;
	assert_int_equal(do_write(&w, &s), RILL_E_WRITE_UNKNOWN_TYPE);
	s.fault = FAULT_PAYLOAD;
	assert_int_equal(do_write(&w, &s), RILL_E_PAYLOAD_INVALID);
	s.version = 3; /* every version is checked against its own schema */
	assert_int_equal(do_write(&w, &s), RILL_E_PAYLOAD_INVALID);
	/* A Ping's payload is not an Order's: an Order type id over a Ping payload. */
	struct evspec ping = s;
	ping.fault = FAULT_NONE;
	ping.ping = true;
	struct wbuf b;
	build_event(&w, &ping, &b);
	b.rec.type_id = order_type(&w);
	struct rill_schema_error err;
	err_reset(&err);
	struct rill_partition_write res;
	assert_int_equal(write_retry(w.part, &b.rec, &res, &err), RILL_E_PAYLOAD_INVALID);
	assert_string_not_equal(err.message, ERR_SENTINEL);
	w.refused++;
	/* A key over the limit: a record error, nothing appended, and the producer's sequence
	 * not taken (below, p1 starts at 0). */
	static char long_key[RILL_KEY_BYTES_MAX + 1];
	memset(long_key, 'k', sizeof(long_key));
	build_event(&w, &(struct evspec){.producer = prod_id(1), .version = 1, .amount = 3}, &b);
	b.rec.key = long_key;
	b.rec.key_bytes = RILL_KEY_BYTES_MAX + 1;
	err_reset(&err);
	int rc = write_retry(w.part, &b.rec, &res, &err);
	assert_int_equal(rc, RILL_E_RECORD_KEY_TOO_LONG);
	assert_int_equal(rill_partition_next_offset(w.part), w.ev_count);
	w.refused++;

	/* A gap: refused, and the producer's state unchanged. */
	const uint64_t p1 = prod_id(1), p2 = prod_id(2), p3 = prod_id(3), p4 = prod_id(4);
	s = spec_order(p1, 0, 2, 20);
	assert_int_equal(do_write(&w, &s), 0);
	s.seq = 2;
	assert_int_equal(do_write(&w, &s), RILL_E_WRITE_SEQUENCE_GAP);
	s.seq = 5;
	assert_int_equal(do_write(&w, &s), RILL_E_WRITE_SEQUENCE_GAP);
	s.seq = 1;
	assert_int_equal(do_write(&w, &s), 0);
	/* A refused event of the next sequence does not take it. */
	s.seq = 2;
	s.fault = FAULT_PAYLOAD;
	assert_int_equal(do_write(&w, &s), RILL_E_PAYLOAD_INVALID);
	s.fault = FAULT_VERSION;
	assert_int_equal(do_write(&w, &s), RILL_E_WRITE_UNKNOWN_TYPE);
	s.fault = FAULT_NONE;
	assert_int_equal(do_write(&w, &s), 0);

	/* The producer limit (4): a refused event of a new producer takes no slot. */
	s = spec_order(prod_id(9), 0, 3, 1);
	s.fault = FAULT_PAYLOAD;
	assert_int_equal(do_write(&w, &s), RILL_E_PAYLOAD_INVALID);
	uint64_t news[] = {p2, p3, p4};
	for (int i = 0; i < 3; i++) {
		s = spec_order(news[i], 0, 3, i);
		assert_int_equal(do_write(&w, &s), 0);
	}
	struct rill_partition_stats st;
	rill_partition_stats(w.part, &st);
	assert_int_equal(st.producers, 4);
	for (uint32_t i = 5; i < 9; i++) {
		s = spec_order(prod_id(i), 0, 4, 1);
		assert_int_equal(do_write(&w, &s), -ENOSPC);
	}
	/* Known producers go on, duplicates included, and producer 0 needs no slot. */
	s = spec_order(p1, 3, 5, 7);
	assert_int_equal(do_write(&w, &s), 0);
	s = spec_order(p3, 1, 5, 7);
	assert_int_equal(do_write(&w, &s), 0);
	s = spec_order(p2, 0, 5, 7);
	assert_int_equal(do_write(&w, &s), 0); /* duplicate */
	s = spec_order(0, 0, 5, 7);
	assert_int_equal(do_write(&w, &s), 0);
	rill_partition_stats(w.part, &st);
	assert_int_equal(st.producers, 4);
	assert_int_equal(st.written, w.appended);
	assert_int_equal(st.duplicates, w.duplicates);
	/* The key error is the record's rather than the write model's: either count will do. */
	assert_true(st.refused == w.refused || st.refused == w.refused - 1);
	assert_int_equal(rill_partition_sync(w.part), 0);
	check_log_is_model(&w, w.ev_count, "refusals");
	part_close(&w);
	/* Reopened, the limit still holds: the four producers are rebuilt from the log. */
	part_open(&w, NULL);
	rill_partition_stats(w.part, &st);
	assert_int_equal(st.producers, 4);
	s = spec_order(prod_id(7), 0, 4, 1);
	assert_int_equal(do_write(&w, &s), -ENOSPC);
	s = spec_order(p4, 1, 4, 1);
	assert_int_equal(do_write(&w, &s), 0);
	part_close(&w);
	/* Under a smaller limit the log's four producers do not fit: dropping one from the
	 * table would let its retries in twice, so the open is refused. */
	w.config.producers_max = 3;
	struct rill_partition *smaller = NULL;
	assert_int_equal(rill_partition_open(&smaller, &w.config, NULL), -ENOSPC);
	assert_null(smaller);
	w.config.producers_max = 4;
	world_fini(&w);
}

/* A bad config is refused. */
static void test_bad_config(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 2);
	struct rill_partition_config c = w.config;
	struct rill_partition *part = NULL;
	c.schemas = NULL;
	assert_int_equal(rill_partition_open(&part, &c, NULL), -EINVAL);
	c = w.config;
	c.io = NULL;
	assert_int_equal(rill_partition_open(&part, &c, NULL), -EINVAL);
	c = w.config;
	c.dir = NULL;
	assert_int_equal(rill_partition_open(&part, &c, NULL), -EINVAL);
	c = w.config;
	c.log.batch_bytes_max = 100; /* the log's own check */
	assert_int_equal(rill_partition_open(&part, &c, NULL), -EINVAL);
	world_fini(&w);
}

/* ---- 2. Idempotence -------------------------------------------------------------------- */

static void test_idempotence(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 3);
	part_open(&w, NULL);
	const uint64_t p = prod_id(1);
	uint64_t offsets[20];
	for (uint64_t q = 0; q < 20; q++) {
		struct evspec s = spec_order(p, q, (uint32_t)(q % KEYS), (int64_t)q);
		assert_int_equal(do_write(&w, &s), 0);
		offsets[q] = w.ev_count - 1;
		/* Producer 0 in between: offsets of p are not consecutive. */
		s = spec_order(0, q, 0, 1);
		assert_int_equal(do_write(&w, &s), 0);
	}
	/* Retries of the last WINDOW: the original offsets, nothing appended. */
	for (uint64_t q = 20 - WINDOW; q < 20; q++) {
		struct evspec s = spec_order(p, q, 3, 999); /* even with other content */
		struct wbuf b;
		build_event(&w, &s, &b);
		struct rill_partition_write res;
		uint64_t next = rill_partition_next_offset(w.part);
		assert_int_equal(write_retry(w.part, &b.rec, &res, NULL), 0);
		assert_true(res.duplicate);
		assert_int_equal(res.offset, offsets[q]);
		assert_int_equal(rill_partition_next_offset(w.part), next);
		w.duplicates++;
	}
	/* Older than the window: still a duplicate, nothing appended, its offset no longer
	 * known (a pipelining producer retries many more than the window holds). */
	for (uint64_t q = 0; q < 20 - WINDOW; q++) {
		struct evspec s = spec_order(p, q, 3, 1);
		uint64_t next = rill_partition_next_offset(w.part);
		assert_int_equal(do_write(&w, &s), 0);
		assert_int_equal(rill_partition_next_offset(w.part), next);
	}
	/* Producer 0 is never deduplicated: the same sequence twice is two events. */
	struct evspec z = spec_order(0, 5, 2, 1);
	assert_int_equal(do_write(&w, &z), 0);
	uint64_t first = w.ev_count - 1;
	assert_int_equal(do_write(&w, &z), 0);
	assert_int_equal(w.ev_count - 1, first + 1);
	/* An unknown producer starts at 0: its 1 is a gap until 0 came (sequence 0 overtaken
	 * by 1, as datagrams can be, must not be refused for good below a start of 1). */
	const uint64_t q = prod_id(2);
	struct evspec s = spec_order(q, 1, 1, 1);
	assert_int_equal(do_write(&w, &s), RILL_E_WRITE_SEQUENCE_GAP);
	s.seq = 1000;
	assert_int_equal(do_write(&w, &s), RILL_E_WRITE_SEQUENCE_GAP);
	s.seq = 0;
	assert_int_equal(do_write(&w, &s), 0);
	s.seq = 1;
	assert_int_equal(do_write(&w, &s), 0);
	s.seq = 0;
	assert_int_equal(do_write(&w, &s), 0); /* duplicate */
	s.seq = 3;
	assert_int_equal(do_write(&w, &s), RILL_E_WRITE_SEQUENCE_GAP);
	s.seq = 2;
	assert_int_equal(do_write(&w, &s), 0);
	/* Sequences at the top of the range: gaps, for a new producer and a known one. */
	s = spec_order(prod_id(3), UINT64_MAX, 1, 1);
	assert_int_equal(do_write(&w, &s), RILL_E_WRITE_SEQUENCE_GAP);
	s = spec_order(q, UINT64_MAX, 1, 1);
	assert_int_equal(do_write(&w, &s), RILL_E_WRITE_SEQUENCE_GAP);
	/* The largest producer id. */
	s = spec_order(UINT64_MAX, 0, 1, 1);
	assert_int_equal(do_write(&w, &s), 0);
	assert_int_equal(do_write(&w, &s), 0);

	/* Many producers interleaved, at random, with retries, gaps and old sequences. */
	struct test_rng rng;
	test_rng_init(&rng, 3);
	for (int i = 0; i < 4000; i++) {
		struct evspec r = gen_spec(&w, &rng, false);
		r.producer = r.producer == 0 ? 0 : prod_id(10 + (uint32_t)(r.producer % 37));
		if (r.producer != 0) { /* regenerate the sequence for the remapped producer */
			struct prod *pp = prod_get(&w, r.producer);
			uint64_t k = test_rng_below(&rng, 10);
			if (!pp->known)
				r.seq = k < 8 ? 0 : test_rng_below(&rng, 1000); /* its first: 0 */
			else if (k < 6)
				r.seq = pp->last + 1;
			else if (k < 8)
				r.seq = pp->last - test_rng_below(&rng, WINDOW + 2);
			else
				r.seq = pp->last + 2;
		}
		(void)do_write(&w, &r);
		if (i % 50 == 0)
			assert_int_equal(rill_partition_poll(w.part, 0), 0);
	}
	struct rill_partition_stats st;
	rill_partition_stats(w.part, &st);
	assert_int_equal(st.written, w.appended);
	assert_int_equal(st.duplicates, w.duplicates);
	assert_int_equal(st.refused, w.refused);
	assert_int_equal(st.producers, prods_known(&w));
	assert_int_equal(st.replayed, 0);
	assert_int_equal(rill_partition_sync(w.part), 0);
	check_log_is_model(&w, w.ev_count, "idempotence");
	check_dedup_is_log(&w);
	part_close(&w);
	world_fini(&w);
}

/*
 * Backpressure: with both batch buffers busy, a write returns -EAGAIN and must leave no
 * trace; the same event written again after a poll is appended, not taken for a duplicate.
 */
static void test_backpressure(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 31);
	/* Writes finish only at a poll that waits: otherwise io_sim completes them at the
	 * log's first look, and it would never push back. */
	io_sim_slow_writes(w.sim, true);
	w.config.log.fixed_batches = true; /* and batches that never grow behind them */
	part_open(&w, NULL);
	const uint64_t p = prod_id(1);
	uint64_t eagain = 0;
	for (uint64_t q = 0; q < 2000; q++) {
		struct evspec s = spec_order(q % 3 == 0 ? 0 : p, q, (uint32_t)(q % KEYS), 1);
		if (s.producer != 0)
			s.seq = prod_get(&w, p)->known ? prod_get(&w, p)->last + 1 : 0;
		s.note_bytes = 8;
		struct wbuf b;
		build_event(&w, &s, &b);
		struct rill_partition_write res;
		struct rill_partition_stats before, after;
		rill_partition_stats(w.part, &before);
		uint64_t next = rill_partition_next_offset(w.part);
		int rc = rill_partition_write(w.part, &b.rec, &res, NULL);
		if (rc == -EAGAIN) {
			eagain++;
			rill_partition_stats(w.part, &after);
			assert_int_equal(rill_partition_next_offset(w.part), next);
			assert_int_equal(after.written, before.written);
			assert_int_equal(after.duplicates, before.duplicates);
			assert_int_equal(after.producers, before.producers);
			assert_int_equal(rill_partition_poll(w.part, 1000000), 0);
			w.clock_ns -= 1 + ((uint64_t)s.amount & 0xff); /* the same event again */
			assert_int_equal(do_write(&w, &s), 0);
		} else {
			assert_int_equal(rc, 0);
			assert_false(res.duplicate);
			assert_int_equal(res.offset, w.ev_count);
			model_push(&w, &b.m);
			w.appended++;
			if (s.producer != 0) {
				struct prod *pp = prod_get(&w, p);
				pp->start = pp->known ? pp->start : s.seq;
				pp->known = true;
				pp->last = s.seq;
			}
		}
		if (s.producer != 0) /* a retry of it now is a duplicate */
			assert_int_equal(do_write(&w, &s), 0);
		if (q % 500 == 499)
			assert_int_equal(rill_partition_poll(w.part, 0), 0);
	}
	assert_true(eagain > 0); /* the log pushed back */
	assert_int_equal(rill_partition_sync(w.part), 0);
	check_log_is_model(&w, w.ev_count, "backpressure");
	part_close(&w);
	world_fini(&w);
}

/* ---- 3. Idempotence across restarts -------------------------------------------------------- */

enum ending { END_CLOSE, END_CRASH, END_POWER_CUT };

static void restart_case(enum ending ending)
{
	static const char *const names[] = {"close", "kill -9", "power cut"};
	struct world w;
	world_init(&w, 40 + (uint64_t)ending);
	part_open(&w, NULL);
	struct test_rng rng;
	test_rng_init(&rng, 40 + (uint64_t)ending);
	for (int i = 0; i < 3000; i++) {
		struct evspec s = gen_spec(&w, &rng, true);
		(void)do_write(&w, &s);
		if (i % 16 == 0)
			assert_int_equal(rill_partition_poll(w.part, 0), 0);
	}
	assert_int_equal(rill_partition_sync(w.part), 0);
	uint64_t durable = rill_partition_durable_offset(w.part);
	assert_int_equal(durable, w.ev_count);
	assert_true(durable > 1500);
	/* A few more, not synced: they may or may not survive a crash. */
	for (int i = 0; i < 30; i++) {
		struct evspec s = gen_spec(&w, &rng, false);
		(void)do_write(&w, &s);
	}
	if (ending == END_CLOSE) {
		part_close(&w);
		durable = w.ev_count; /* close syncs */
	} else if (ending == END_CRASH) {
		io_sim_crash(w.sim);
		part_drop(&w);
		io_sim_restart(w.sim);
	} else {
		io_sim_crash(w.sim);
		part_drop(&w);
		io_sim_power_cut(w.sim);
	}
	for (int reopen = 0; reopen < 2; reopen++) {
		part_open(&w, NULL);
		check_log_is_model(&w, durable, names[ending]);
		struct rill_partition_stats st;
		rill_partition_stats(w.part, &st);
		if (st.replayed != w.ev_count)
			fail_msg("%s: replayed %llu, the log holds %llu", names[ending],
				 (unsigned long long)st.replayed, (unsigned long long)w.ev_count);
		assert_int_equal(st.producers, prods_known(&w));
		assert_int_equal(st.written, 0);
		check_dedup_is_log(&w);
		/* Each producer's next sequence continues its run. */
		for (uint32_t i = 0; i < w.prod_count; i++) {
			if (!w.prod[i].known)
				continue;
			struct evspec s = spec_order(w.prod[i].id, w.prod[i].last + 1, i % KEYS, 5);
			assert_int_equal(do_write(&w, &s), 0);
		}
		durable = w.ev_count;
		part_close(&w);
	}
	world_fini(&w);
}

static void test_restart_close(void **state)
{
	(void)state;
	restart_case(END_CLOSE);
}

static void test_restart_crash(void **state)
{
	(void)state;
	restart_case(END_CRASH);
}

static void test_restart_power_cut(void **state)
{
	(void)state;
	restart_case(END_POWER_CUT);
}

/* ---- 4. Projections -------------------------------------------------------------------- */

/*
 * Projections bound before the first write fold every event appended, and nothing else;
 * one bound after many writes (not synced) catches up; a snapshot restored and replayed
 * from its offset equals a rebuild from 0; all equal the reference fold of the log.
 */
static void test_projections(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 5);
	part_open(&w, NULL);
	struct rill_projection *early[PCASES];
	projs_bind(&w, early);
	/* One whose key table is too small: what it cannot fold, the partition counts. */
	struct rill_projection_config tc;
	memset(&tc, 0, sizeof(tc));
	tc.name = "tiny";
	tc.type = "Order";
	tc.kind = RILL_PROJECTION_COUNT;
	tc.keys_max = 2;
	tc.key_store_bytes = 64;
	struct rill_projection *tiny = NULL;
	assert_int_equal(rill_projection_create(&tiny, w.reg, &tc, NULL), 0);
	assert_int_equal(rill_partition_projection_add(w.part, tiny, 0), 0);
	struct test_rng rng;
	test_rng_init(&rng, 5);
	uint8_t *snap[PCASES];
	size_t snap_bytes[PCASES];
	uint64_t snap_next = 0;
	for (int i = 0; i < 6000; i++) {
		struct evspec s = gen_spec(&w, &rng, true);
		(void)do_write(&w, &s);
		if (i % 20 == 0)
			assert_int_equal(rill_partition_poll(w.part, 0), 0);
		if (i == 2500) {
			snap_next = rill_partition_next_offset(w.part);
			for (size_t p = 0; p < PCASES; p++)
				snap[p] = snapshot_of(early[p], &snap_bytes[p]);
		}
	}
	struct rill_partition_stats st;
	rill_partition_stats(w.part, &st);
	struct rill_projection_stats tst;
	rill_projection_stats(tiny, &tst);
	assert_true(tst.refused_full > 0);
	assert_int_equal(st.projection_errors, tst.refused_full);
	/* Bound late, before any sync: it must still reflect the whole log. */
	struct rill_projection *late[PCASES];
	projs_bind(&w, late);
	/* Restored from the snapshot at snap_next, caught up from there. */
	struct rill_projection *restored[PCASES];
	for (size_t p = 0; p < PCASES; p++) {
		restored[p] = proj_new(&w, &pcases[p]);
		struct rill_schema_error err;
		err_reset(&err);
		assert_int_equal(rill_projection_restore(restored[p], snap[p], snap_bytes[p], &err),
				 0);
		assert_int_equal(rill_partition_projection_add(w.part, restored[p], snap_next), 0);
		free(snap[p]);
	}
	/* All three keep folding the same events from here on. */
	for (int i = 0; i < 1500; i++) {
		struct evspec s = gen_spec(&w, &rng, true);
		(void)do_write(&w, &s);
	}
	assert_int_equal(rill_partition_sync(w.part), 0);
	check_log_is_model(&w, w.ev_count, "projections");
	projs_check(&w, early, "bound before writing");
	projs_check(&w, late, "bound after writing");
	for (size_t p = 0; p < PCASES; p++) {
		check_proj(&w, restored[p], &pcases[p], true, "snapshot + replay");
		assert_same_snapshot(restored[p], early[p], "snapshot + replay vs bound");
	}
	/* And a projection rebuilt from 0 at the end, after the sync. */
	struct rill_projection *rebuilt[PCASES];
	projs_bind(&w, rebuilt);
	for (size_t p = 0; p < PCASES; p++)
		assert_same_snapshot(rebuilt[p], restored[p], "rebuild vs snapshot + replay");
	rill_partition_stats(w.part, &st);
	rill_projection_stats(tiny, &tst);
	assert_int_equal(st.projection_errors, tst.refused_full); /* the others: none */
	part_close(&w);
	rill_projection_destroy(tiny);

	/* Reopened: projections bound to the new partition are rebuilt from the log. */
	part_open(&w, NULL);
	struct rill_projection *reopened[PCASES];
	projs_bind(&w, reopened);
	projs_check(&w, reopened, "after reopen");
	part_close(&w);
	projs_destroy(early);
	projs_destroy(late);
	projs_destroy(restored);
	projs_destroy(rebuilt);
	projs_destroy(reopened);
	world_fini(&w);
}

/* A partition binds at most RILL_PARTITION_PROJECTIONS_MAX; a projection needing events
 * retention deleted is refused with -ERANGE. */
static void test_projection_limits(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 6);
	w.config.log.retention_bytes = 200u << 10;
	part_open(&w, NULL);
	struct rill_projection *ps[RILL_PARTITION_PROJECTIONS_MAX + 1];
	for (uint32_t i = 0; i <= RILL_PARTITION_PROJECTIONS_MAX; i++) {
		ps[i] = proj_new(&w, &pcases[0]);
		int rc = rill_partition_projection_add(w.part, ps[i], 0);
		assert_int_equal(rc, i < RILL_PARTITION_PROJECTIONS_MAX ? 0 : -ENOSPC);
	}
	/* Events past retention: the 64 bound fold each one; a new one cannot rebuild. */
	struct test_rng rng;
	test_rng_init(&rng, 6);
	for (int i = 0; i < 6000; i++) {
		struct evspec s = gen_spec(&w, &rng, false);
		s.note_bytes = 8;
		(void)do_write(&w, &s);
	}
	assert_int_equal(rill_partition_sync(w.part), 0);
	uint64_t start = rill_log_start_offset(wlog(&w));
	assert_true(start > 0);
	/* The bound ones saw every event: count = the Orders written. */
	uint64_t orders = 0;
	for (uint64_t o = 0; o < w.ev_count; o++)
		orders += w.ev[o].type_id == order_type(&w);
	for (uint32_t i = 0; i < RILL_PARTITION_PROJECTIONS_MAX; i += 9) {
		struct rill_projection_stats pst;
		rill_projection_stats(ps[i], &pst);
		assert_int_equal(pst.applied, orders);
	}
	part_close(&w);
	/* Reopened past retention: replay reads what is held, dedup of recent ones stands. */
	part_open(&w, NULL);
	struct rill_partition_stats st;
	rill_partition_stats(w.part, &st);
	assert_int_equal(st.replayed, rill_partition_next_offset(w.part) - start);
	/* Retention ran at the open too, after the replay: the segments the active one
	 * grew past the limit by since the last roll went then. */
	assert_true(rill_log_start_offset(wlog(&w)) >= start);
	start = rill_log_start_offset(wlog(&w));
	/* A projection from 0 needs events retention deleted; from the start it may bind. */
	struct rill_projection *fresh = proj_new(&w, &pcases[1]);
	assert_int_equal(rill_partition_projection_add(w.part, fresh, 0), -ERANGE);
	rill_projection_destroy(fresh);
	fresh = proj_new(&w, &pcases[0]);
	assert_int_equal(rill_partition_projection_add(w.part, fresh, start), 0);
	struct rill_projection_stats pst;
	rill_projection_stats(fresh, &pst);
	uint64_t held = 0;
	for (uint64_t o = start; o < w.ev_count; o++)
		held += w.ev[o].type_id == order_type(&w);
	assert_int_equal(pst.applied, held);
	for (uint32_t i = 0; i < w.prod_count; i++) {
		if (!w.prod[i].known)
			continue;
		struct evspec s = spec_order(w.prod[i].id, w.prod[i].last, 1, 1);
		assert_int_equal(do_write(&w, &s), 0); /* the model keeps it: a duplicate */
	}
	part_close(&w);
	rill_projection_destroy(fresh);
	for (uint32_t i = 0; i <= RILL_PARTITION_PROJECTIONS_MAX; i++)
		rill_projection_destroy(ps[i]);
	world_fini(&w);
}

/* ---- 5. Power cuts and kill -9 ----------------------------------------------------------- */

static void test_crash_loop(void **state)
{
	(void)state;
	uint64_t rounds = test_env_u64("RILL_PARTITION_ROUNDS", 300);
	struct test_rng rng;
	test_rng_init(&rng, 7);
	struct world w;
	world_init(&w, test_rng_next(&rng));
	uint64_t acked = 0, kills = 0, cuts = 0, lost = 0, fresh = 0;
	for (uint64_t round = 0; round < rounds; round++) {
		if (test_rng_below(&rng, 40) == 0) {
			world_new_disk(&w, test_rng_next(&rng));
			acked = 0;
			fresh++;
		}
		char what[64];
		snprintf(what, sizeof(what), "round %llu", (unsigned long long)round);
		uint64_t written = w.ev_count;
		part_open(&w, NULL);
		check_log_is_model(&w, acked, what);
		lost += written - w.ev_count;
		struct rill_partition_stats st;
		rill_partition_stats(w.part, &st);
		if (st.replayed != w.ev_count)
			fail_msg("%s: replayed %llu, the log holds %llu", what,
				 (unsigned long long)st.replayed, (unsigned long long)w.ev_count);
		if (st.producers != prods_known(&w))
			fail_msg("%s: %llu producers rebuilt, the log has %u", what,
				 (unsigned long long)st.producers, prods_known(&w));
		check_dedup_is_log(&w);
		struct rill_projection *ps[PCASES];
		projs_bind(&w, ps);
		projs_check(&w, ps, what);
		acked = rill_partition_durable_offset(w.part);
		assert_int_equal(acked, w.ev_count); /* what the reopened log holds is durable */
		uint64_t steps = test_rng_below(&rng, 80);
		for (uint64_t s = 0; s < steps; s++) {
			struct evspec sp = gen_spec(&w, &rng, true);
			(void)do_write(&w, &sp);
			if (test_rng_below(&rng, 4) == 0)
				assert_int_equal(rill_partition_poll(w.part, 0), 0);
			if (test_rng_below(&rng, 25) == 0)
				assert_int_equal(rill_partition_sync(w.part), 0);
			if (rill_partition_durable_offset(w.part) > acked)
				acked = rill_partition_durable_offset(w.part);
		}
		assert_true(rill_partition_durable_offset(w.part) <= w.ev_count);
		if (round % 8 == 0) { /* folded after append: compared with the model's fold */
			for (size_t i = 0; i < PCASES; i++)
				check_proj(&w, ps[i], &pcases[i], false, what);
		}
		uint64_t ending = test_rng_below(&rng, 10);
		if (ending == 0) {
			part_close(&w);
			acked = w.ev_count;
			io_sim_power_cut(w.sim);
		} else if (ending <= 3) {
			io_sim_crash(w.sim);
			part_drop(&w);
			io_sim_restart(w.sim);
			kills++;
		} else {
			io_sim_crash(w.sim);
			part_drop(&w);
			io_sim_power_cut(w.sim);
			cuts++;
		}
		projs_destroy(ps);
	}
	fprintf(stderr,
		"crash loop: %llu rounds (%llu kill -9, %llu power cuts), %llu events lost "
		"unacknowledged, %llu fresh disks\n",
		(unsigned long long)rounds, (unsigned long long)kills, (unsigned long long)cuts,
		(unsigned long long)lost, (unsigned long long)fresh);
	world_fini(&w);
}

/* ---- 6. I/O errors ------------------------------------------------------------------------- */

#define FAULT_EVENTS 400

/*
 * The fault workload: producers 1 to 3 and 0, a projection, polls, a sync half way, a sync
 * and a close at the end. A failure must stop the partition: from then on every write
 * returns the log's error and nothing more becomes durable. Returns 0 or the error.
 */
static int fault_workload(struct world *w, uint64_t *acked)
{
	int rc = rill_partition_open(&w->part, &w->config, NULL);
	if (rc != 0)
		return rc;
	struct rill_projection *proj = proj_new(w, &pcases[1]);
	rc = rill_partition_projection_add(w->part, proj, 0);
	struct test_rng rng = {.state = 0x1234567};
	for (int i = 0; i < FAULT_EVENTS && rc == 0; i++) {
		uint32_t slot = (uint32_t)test_rng_below(&rng, 4);
		struct prod *p = prod_get(w, prod_id(slot));
		struct evspec s = spec_order(prod_id(slot), p->known ? p->last + 1 : 0,
					     (uint32_t)test_rng_below(&rng, KEYS), i);
		s.note_bytes = 8;
		if (slot != 0 && p->known && i % 13 == 0)
			s.seq = p->last; /* a retry */
		rc = do_write_ex(w, &s, true);
		if (rc == 0 && i % 10 == 9)
			rc = rill_partition_poll(w->part, 0);
		if (rc == 0 && i == FAULT_EVENTS / 2)
			rc = rill_partition_sync(w->part);
		if (rill_partition_durable_offset(w->part) > *acked)
			*acked = rill_partition_durable_offset(w->part);
	}
	if (rc == 0)
		rc = rill_partition_sync(w->part);
	if (rill_partition_durable_offset(w->part) > *acked)
		*acked = rill_partition_durable_offset(w->part);
	if (rc == 0) {
		/* What was appended, and only that, was folded. */
		check_proj_twin_only(w, proj);
		rc = rill_partition_close(w->part);
		w->part = NULL;
		rill_projection_destroy(proj);
		return rc;
	}
	/* Fail-stop: every later write returns the log's error and appends nothing. */
	int failed = rill_log_error(wlog(w));
	if (failed == 0)
		fail_msg("an error (%s) but the log is not failed", rill_strerror(rc));
	uint64_t durable = rill_partition_durable_offset(w->part);
	uint64_t next = rill_partition_next_offset(w->part);
	for (uint32_t slot = 0; slot < 4; slot++) {
		struct prod *p = prod_get(w, prod_id(slot));
		struct evspec s = spec_order(prod_id(slot), p->known ? p->last + 1 : 0, 1, 1);
		struct wbuf b;
		build_event(w, &s, &b);
		struct rill_partition_write res;
		int again = rill_partition_write(w->part, &b.rec, &res, NULL);
		if (again != failed)
			fail_msg("after the log failed (%s), a write of producer %u returned %s",
				 rill_strerror(failed), slot, rill_strerror(again));
	}
	if (rill_partition_sync(w->part) == 0 || rill_partition_poll(w->part, 0) == 0)
		fail_msg("the partition carried on after %s", rill_strerror(failed));
	if (rill_partition_durable_offset(w->part) != durable ||
	    rill_partition_next_offset(w->part) != next)
		fail_msg("after %s: durable %llu -> %llu, next %llu -> %llu", rill_strerror(failed),
			 (unsigned long long)durable,
			 (unsigned long long)rill_partition_durable_offset(w->part),
			 (unsigned long long)next,
			 (unsigned long long)rill_partition_next_offset(w->part));
	check_proj_twin_only(w, proj);
	part_drop(w);
	rill_projection_destroy(proj);
	return rc;
}

/*
 * SQLite's I/O-error loop: fail the Nth operation of the workload, for every N, once and
 * for good, with EIO and ENOSPC; then cut the power and reopen without faults. Every
 * event acknowledged durable must be there as written, the dedup state must match the log.
 */
static void test_io_error_loop(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 8);
	uint64_t acked = 0;
	assert_int_equal(fault_workload(&w, &acked), 0);
	uint64_t total_ops = io_sim_ops(w.sim);
	assert_int_equal(acked, w.ev_count);
	world_fini(&w);

	static const int errors[] = {EIO, ENOSPC};
	uint64_t stride = test_env_u64("RILL_PARTITION_IO_ERROR_STRIDE", 1);
	if (stride == 0)
		stride = 1;
	uint64_t runs = 0, stopped = 0;
	for (uint64_t index = 0; index < total_ops; index += stride) {
		for (int always = 0; always < 2; always++) {
			for (size_t e = 0; e < 2; e++) {
				char what[96];
				snprintf(what, sizeof(what), "op %llu (%s, %s)",
					 (unsigned long long)index, strerror(errors[e]),
					 always ? "always" : "once");
				world_init(&w, index * 4 + (uint64_t)always * 2 + e);
				io_sim_fail_at(w.sim, index, errors[e], always);
				acked = 0;
				int rc = fault_workload(&w, &acked);
				stopped += rc != 0;
				io_sim_power_cut(w.sim); /* also clears the fault */
				struct rill_log_recovery report;
				rc = rill_partition_open(&w.part, &w.config, &report);
				if (rc != 0)
					fail_msg("%s: reopen refused: %s (%s)", what,
						 rill_strerror(rc), report.message);
				check_log_is_model(&w, acked, what);
				struct rill_partition_stats st;
				rill_partition_stats(w.part, &st);
				if (st.replayed != w.ev_count)
					fail_msg("%s: replayed %llu of %llu", what,
						 (unsigned long long)st.replayed,
						 (unsigned long long)w.ev_count);
				check_dedup_is_log(&w);
				part_drop(&w);
				world_fini(&w);
				runs++;
			}
		}
	}
	fprintf(stderr, "io error loop: %llu operations, %llu runs, %llu stopped by the fault\n",
		(unsigned long long)total_ops, (unsigned long long)runs,
		(unsigned long long)stopped);
	assert_true(stopped > runs / 2); /* the faults did land */
}

/* A log of producers' events, closed cleanly; the model knows it. */
static void build_closed(struct world *w, uint64_t events)
{
	part_open(w, NULL);
	struct test_rng rng = {.state = 0xabcdef};
	for (uint64_t i = 0; i < events; i++) {
		struct evspec s = gen_spec(w, &rng, false);
		s.note_bytes = 8;
		(void)do_write(w, &s);
	}
	part_close(w);
	io_sim_sync_all(w->sim);
}

/* A world (@seed) of @events closed cleanly, then reopened, snapshotted and closed again;
 * returns the snapshot's offset (every event). */
static uint64_t build_snapshotted(struct world *w, uint64_t seed, uint64_t events)
{
	world_init(w, seed);
	build_closed(w, events);
	part_open(w, NULL);
	assert_int_equal(rill_partition_snapshot(w->part, 2), 0);
	uint64_t offset = rill_partition_snapshot_offset(w->part);
	assert_int_equal(offset, w->ev_count);
	part_close(w);
	return offset;
}

/*
 * The rebuild at open and at projection_add, with an I/O error at each of their
 * operations: each either fails or gives the whole state, never a partition that forgot
 * part of the log's producers or a projection that missed events.
 */
static void test_rebuild_io_errors(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 9);
	build_closed(&w, 1500);
	uint64_t before = io_sim_ops(w.sim);
	part_open(&w, NULL);
	uint64_t open_ops = io_sim_ops(w.sim) - before;
	struct rill_projection *p = proj_new(&w, &pcases[7]);
	before = io_sim_ops(w.sim);
	assert_int_equal(rill_partition_projection_add(w.part, p, 0), 0);
	uint64_t add_ops = io_sim_ops(w.sim) - before;
	rill_projection_destroy(p);
	part_close(&w);
	world_fini(&w);
	assert_true(open_ops > 0);

	uint64_t failed_opens = 0, failed_adds = 0;
	for (uint64_t i = 0; i < open_ops + add_ops; i++) {
		char what[64];
		snprintf(what, sizeof(what), "rebuild, op %llu", (unsigned long long)i);
		world_init(&w, 9);
		build_closed(&w, 1500);
		uint64_t base = io_sim_ops(w.sim);
		if (i < open_ops) {
			io_sim_fail_at(w.sim, base + i, EIO, false);
			struct rill_partition *part = NULL;
			int rc = rill_partition_open(&part, &w.config, NULL);
			io_sim_fail_at(w.sim, UINT64_MAX, 0, false);
			if (rc != 0) {
				failed_opens++;
				part_open(&w, NULL); /* a clean retry */
			} else {
				w.part = part;
			}
		} else {
			part_open(&w, NULL);
		}
		check_log_is_model(&w, w.ev_count, what);
		struct rill_partition_stats st;
		rill_partition_stats(w.part, &st);
		if (st.replayed != w.ev_count || st.producers != prods_known(&w))
			fail_msg("%s: opened having replayed %llu of %llu events, %llu of %u "
				 "producers",
				 what, (unsigned long long)st.replayed,
				 (unsigned long long)w.ev_count, (unsigned long long)st.producers,
				 prods_known(&w));
		check_dedup_is_log(&w);
		p = proj_new(&w, &pcases[7]);
		if (i >= open_ops)
			io_sim_fail_at(w.sim, io_sim_ops(w.sim) + (i - open_ops), EIO, false);
		int rc = rill_partition_projection_add(w.part, p, 0);
		io_sim_fail_at(w.sim, UINT64_MAX, 0, false);
		if (rc != 0) {
			failed_adds++;
			rill_projection_destroy(p);
			p = proj_new(&w, &pcases[7]);
			rc = rill_partition_projection_add(w.part, p, 0);
			if (rc != 0)
				fail_msg("%s: projection_add after a failed one: %s", what,
					 rill_strerror(rc));
		}
		check_proj(&w, p, &pcases[7], false, what);
		/* The partition goes on. */
		struct evspec s = spec_order(0, 0, 1, 1);
		assert_int_equal(do_write(&w, &s), 0);
		part_close(&w);
		rill_projection_destroy(p);
		world_fini(&w);
	}
	fprintf(stderr,
		"rebuild io errors: %llu + %llu operations, %llu opens and %llu adds failed\n",
		(unsigned long long)open_ops, (unsigned long long)add_ops,
		(unsigned long long)failed_opens, (unsigned long long)failed_adds);
}

/*
 * Snapshots under faults: an I/O error (EIO, or ENOSPC) at each operation of
 * rill_partition_snapshot, then a power cut, then a reopen. A failed snapshot leaves no
 * .snapshot.tmp: on a full disk it held the space the log needed, which stopped appending
 * until a restart. Whatever the snapshot got to (nothing, a rename not made durable), the
 * reopened partition's dedup table and a projection bound from the snapshot equal the log;
 * and a snapshot that completed is the one loaded.
 */
static void test_snapshot_faults(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 11);
	build_closed(&w, 1500);
	part_open(&w, NULL);
	struct rill_projection *p = proj_new(&w, &pcases[7]);
	assert_int_equal(rill_partition_projection_bind(w.part, p, NULL, 0), 0);
	uint64_t before = io_sim_ops(w.sim);
	assert_int_equal(rill_partition_snapshot(w.part, 2), 0);
	uint64_t snap_ops = io_sim_ops(w.sim) - before;
	uint64_t offset = rill_partition_snapshot_offset(w.part);
	assert_int_equal(offset, w.ev_count);
	part_close(&w);
	rill_projection_destroy(p);
	/* Reopened: loaded from the snapshot, nothing replayed before it. */
	part_open(&w, NULL);
	struct rill_partition_stats st;
	rill_partition_stats(w.part, &st);
	assert_int_equal(st.replayed, 0);
	assert_int_equal(st.snapshots_skipped, 0);
	check_dedup_is_log(&w);
	p = proj_new(&w, &pcases[7]);
	assert_int_equal(rill_partition_projection_bind(w.part, p, NULL, 0), 0);
	check_proj(&w, p, &pcases[7], false, "from a snapshot");
	rill_projection_destroy(p);
	part_close(&w);
	world_fini(&w);
	assert_true(snap_ops > 4);

	uint64_t failed = 0, loaded = 0;
	for (uint64_t i = 0; i <= snap_ops; i++) { /* the last round: no fault */
		char what[64];
		snprintf(what, sizeof(what), "snapshot, op %llu", (unsigned long long)i);
		world_init(&w, 11 + i);
		build_closed(&w, 1500);
		part_open(&w, NULL);
		p = proj_new(&w, &pcases[7]);
		assert_int_equal(rill_partition_projection_bind(w.part, p, NULL, 0), 0);
		for (int k = 0; k < 50; k++) { /* events the snapshot covers */
			struct evspec sp = spec_order(0, 0, (uint32_t)(k % KEYS), k);
			assert_int_equal(do_write(&w, &sp), 0);
		}
		if (i < snap_ops) /* a failing disk, or a full one */
			io_sim_fail_at(w.sim, io_sim_ops(w.sim) + i, i % 2 ? ENOSPC : EIO, false);
		int rc = rill_partition_snapshot(w.part, 2);
		io_sim_fail_at(w.sim, UINT64_MAX, 0, false);
		failed += rc != 0;
		uint64_t tmp_bytes = 0;
		if (io_sim_file_data(w.sim, DIR_SIM "/snapshots/.snapshot.tmp", &tmp_bytes) != NULL)
			fail_msg("%s: %s, and .snapshot.tmp left behind (%llu bytes)", what,
				 rill_strerror(rc), (unsigned long long)tmp_bytes);
		if (i == snap_ops)
			assert_int_equal(rc, 0);
		part_drop(&w);
		rill_projection_destroy(p);
		io_sim_power_cut(w.sim);
		/* What the power cut kept of the log is the model's durable prefix. */
		struct rill_log_recovery report;
		part_open(&w, &report);
		w.ev_count = rill_log_next_offset(wlog(&w));
		prods_rebuild(&w);
		rill_partition_stats(w.part, &st);
		loaded += st.replayed < w.ev_count;
		if (i == snap_ops && st.replayed != 0)
			fail_msg("a completed snapshot did not survive the power cut (%llu "
				 "replayed)",
				 (unsigned long long)st.replayed);
		check_dedup_is_log(&w);
		p = proj_new(&w, &pcases[7]);
		assert_int_equal(rill_partition_projection_bind(w.part, p, NULL, 0), 0);
		check_proj(&w, p, &pcases[7], false, what);
		rill_projection_destroy(p);
		part_close(&w);
		world_fini(&w);
	}
	fprintf(stderr, "snapshot faults: %llu operations, %llu failed, %llu reopened from one\n",
		(unsigned long long)snap_ops, (unsigned long long)failed,
		(unsigned long long)loaded);
	assert_int_equal(failed, snap_ops); /* every operation of it matters */
}

/*
 * A snapshot whose bytes rotted where only its CRC can tell (created_ns; a producer's
 * last_seq in the dedup table): skipped and counted, the log replayed whole, and the dedup
 * table what the log says. Loaded, the rotted last_seq would take the producer's next
 * sequence for a duplicate and acknowledge it unwritten. The CRC check was otherwise
 * untested: damage elsewhere fell on fields other checks refuse.
 */
static void test_snapshot_crc_guards(void **state)
{
	(void)state;
	static const struct {
		uint64_t at;
		uint8_t bit;
	} rot[] = {{24, 0x01}, {64 + 16, 0x10}}; /* created_ns; entry 0's last_seq */
	for (size_t r = 0; r < sizeof(rot) / sizeof(rot[0]); r++) {
		struct world w;
		uint64_t offset = build_snapshotted(&w, 21 + r, 1500);
		io_sim_sync_all(w.sim);
		char path[128];
		snprintf(path, sizeof(path), "%s/snapshots/%020llu.snap", DIR_SIM,
			 (unsigned long long)offset);
		uint64_t size = 0;
		uint8_t *data = io_sim_file_data(w.sim, path, &size);
		assert_non_null(data);
		assert_true(size > 64 + 88); /* a producer entry at least */
		data[rot[r].at] ^= rot[r].bit;
		io_sim_sync_all(w.sim);
		part_open(&w, NULL);
		struct rill_partition_stats st;
		rill_partition_stats(w.part, &st);
		if (st.snapshots_skipped != 1 || st.replayed != w.ev_count)
			fail_msg("byte %llu rotted: %llu snapshots skipped, %llu of %llu events "
				 "replayed",
				 (unsigned long long)rot[r].at,
				 (unsigned long long)st.snapshots_skipped,
				 (unsigned long long)st.replayed, (unsigned long long)w.ev_count);
		check_dedup_is_log(&w);
		part_close(&w);
		world_fini(&w);
	}
}

/* Names in a folder, for sim_remove_all. */
struct name_list {
	char names[32][64];
	unsigned count;
};

static int name_list_add(void *arg, const char *name)
{
	struct name_list *l = arg;
	assert_true(l->count < 32 && strlen(name) < sizeof(l->names[0]));
	snprintf(l->names[l->count++], sizeof(l->names[0]), "%s", name);
	return 0;
}

/* Remove every file directly in @dir, durably: a log cut to nothing (snapshots/ stays). */
static void sim_remove_all(struct rill_io *io, const char *dir)
{
	struct name_list l = {.count = 0};
	assert_int_equal(io->ops->list(io, dir, name_list_add, &l), 0);
	assert_true(l.count > 0);
	for (unsigned i = 0; i < l.count; i++) {
		char path[256];
		snprintf(path, sizeof(path), "%s/%s", dir, l.names[i]);
		assert_int_equal(io->ops->unlink(io, path), 0);
	}
	assert_int_equal(io->ops->fsync_dir(io, dir), 0);
}

/*
 * A snapshot past the log's end (a repair cut the events it covers) is deleted at open, and
 * for good: once the log has grown past it again, a power cut must not bring it back, or
 * the next open would take its producers and projection values for the new events'. The
 * simulator undoes an unsynced deletion half the time, so 16 rounds all but prove it.
 */
static void test_snapshot_past_end_stays_deleted(void **state)
{
	(void)state;
	for (uint64_t round = 0; round < 16; round++) {
		struct world w;
		uint64_t old = build_snapshotted(&w, 500 + round, 200);
		sim_remove_all(w.config.io, DIR_SIM);
		w.ev_count = 0;
		prods_rebuild(&w);

		part_open(&w, NULL);
		assert_int_equal(rill_partition_snapshot_offset(w.part), 0);
		struct rill_partition_stats st;
		rill_partition_stats(w.part, &st);
		assert_int_equal(st.snapshots_skipped, 1);
		struct test_rng rng = {.state = 0x5eed + round};
		while (w.ev_count <= old + 10) {
			struct evspec sp = gen_spec(&w, &rng, false);
			(void)do_write(&w, &sp);
		}
		assert_int_equal(rill_log_sync(wlog(&w)), 0);
		part_drop(&w);
		io_sim_power_cut(w.sim);

		part_open(&w, NULL);
		assert_int_equal(rill_log_next_offset(wlog(&w)), w.ev_count); /* synced: all kept */
		if (rill_partition_snapshot_offset(w.part) != 0)
			fail_msg(
				"round %llu: the deleted snapshot at %llu came back and was loaded",
				(unsigned long long)round,
				(unsigned long long)rill_partition_snapshot_offset(w.part));
		prods_rebuild(&w);
		check_dedup_is_log(&w);
		struct rill_projection *p = proj_new(&w, &pcases[7]);
		assert_int_equal(rill_partition_projection_bind(w.part, p, NULL, 0), 0);
		check_proj(&w, p, &pcases[7], false, "after the cut and a power cut");
		rill_projection_destroy(p);
		part_close(&w);
		world_fini(&w);
	}
}

/*
 * Idempotence across retention: once retention has deleted a producer's events and the
 * partition reopens, a retry of one of them must not go in again. A producer unknown to a
 * partition whose log lost its start must begin at 0; producers still in the log go on.
 * Also: binding one projection twice is refused (it would fold every event twice).
 */
static void test_retention_and_unknown_producers(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 41);
	w.config.log.retention_bytes = 96u << 10; /* keeps the newest segments */
	part_open(&w, NULL);
	struct rill_schema_error err;
	struct rill_partition_write res;
	uint64_t early = prod_id(1), late = prod_id(2);
	struct wbuf b;
	struct evspec sp = spec_order(early, 0, 1, 5);
	build_event(&w, &sp, &b);
	assert_int_equal(write_retry(w.part, &b.rec, &res, &err), 0);
	uint64_t seq = 0;
	while (rill_log_start_offset(rill_partition_log(w.part)) == 0) { /* roll until pruned */
		sp = spec_order(late, seq++, 2, 7);
		build_event(&w, &sp, &b);
		assert_int_equal(write_retry(w.part, &b.rec, &res, &err), 0);
		assert_int_equal(rill_partition_poll(w.part, 0), 0);
		assert_true(seq < 100000);
	}
	assert_int_equal(rill_partition_sync(w.part), 0);
	/* Still open: the table remembers the early producer, its retry is a duplicate. */
	sp = spec_order(early, 0, 1, 5);
	build_event(&w, &sp, &b);
	assert_int_equal(write_retry(w.part, &b.rec, &res, &err), 0);
	assert_true(res.duplicate);
	assert_int_equal(res.offset, 0);
	part_close(&w);

	part_open(&w, NULL);
	uint64_t next = rill_partition_next_offset(w.part);
	sp = spec_order(early, 5, 1, 5); /* its history is gone: a retry of 5 cannot be told */
	build_event(&w, &sp, &b);
	err_reset(&err);
	assert_int_equal(write_retry(w.part, &b.rec, &res, &err), RILL_E_WRITE_SEQUENCE);
	assert_non_null(strstr(err.message, "deleted"));
	assert_int_equal(rill_partition_next_offset(w.part), next);
	/* A start at 0 is taken: the documented gap until snapshots keep the dedup table. */
	sp = spec_order(early, 0, 1, 5);
	build_event(&w, &sp, &b);
	assert_int_equal(write_retry(w.part, &b.rec, &res, &err), 0);
	assert_false(res.duplicate);
	assert_int_equal(res.offset, next);
	sp = spec_order(late, seq, 2, 7); /* still in the log: goes on */
	build_event(&w, &sp, &b);
	assert_int_equal(write_retry(w.part, &b.rec, &res, &err), 0);
	assert_false(res.duplicate);

	struct rill_projection_config pc = {
		.name = "n", .type = "Order", .kind = RILL_PROJECTION_COUNT};
	struct rill_projection *proj;
	assert_int_equal(rill_projection_create(&proj, w.reg, &pc, NULL), 0);
	uint64_t start = rill_log_start_offset(rill_partition_log(w.part));
	assert_int_equal(rill_partition_projection_add(w.part, proj, start), 0);
	assert_int_equal(rill_partition_projection_add(w.part, proj, start), -EEXIST);
	part_close(&w);
	rill_projection_destroy(proj);
	world_fini(&w);
}

/* Events of the generator, written to the open partition (their outcome is the model's). */
static void write_some(struct world *w, struct test_rng *rng, uint64_t events)
{
	for (uint64_t i = 0; i < events; i++) {
		struct evspec s = gen_spec(w, rng, false);
		s.note_bytes = 8;
		(void)do_write(w, &s);
	}
}

/*
 * Retention at open: segments that expired while the partition was closed go when it
 * opens (it used to wait for the next roll, which an idle partition may never see), but
 * never one holding an event at or above the oldest kept snapshot's offset (the floor is
 * set before, or the snapshot could not be continued). Here the age limit is 1 ns.
 */
static void test_retention_at_open(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 53);
	struct test_rng rng = {.state = 0x5eed};
	part_open(&w, NULL);
	write_some(&w, &rng, 1500);
	w.config.snapshots = true; /* as the engine's periodic snapshots */
	assert_int_equal(rill_partition_snapshot(w.part, 2), 0);
	uint64_t snap = rill_partition_snapshot_offset(w.part);
	assert_true(snap > 0);
	write_some(&w, &rng, 1500);
	uint64_t next = rill_partition_next_offset(w.part);
	struct rill_log_stats st;
	rill_log_stats(wlog(&w), &st);
	assert_true(st.segments > 4); /* 64 KiB segments: several below the snapshot */
	part_close(&w);

	w.config.log.retention_age_ns = 1;
	part_open(&w, NULL);
	uint64_t start = rill_log_start_offset(wlog(&w));
	if (start == 0 || start > snap)
		fail_msg("reopened with the snapshot at %llu: the log starts at %llu",
			 (unsigned long long)snap, (unsigned long long)start);
	assert_int_equal(rill_partition_next_offset(w.part), next);
	part_close(&w);

	/* Without periodic snapshots nothing holds it back: every event expired, and the
	 * last open rolled the segment that was active, so only an empty one is left. */
	w.config.snapshots = false;
	part_open(&w, NULL);
	assert_int_equal(rill_log_start_offset(wlog(&w)), next);
	rill_log_stats(wlog(&w), &st);
	assert_int_equal(st.segments, 1);
	assert_int_equal(rill_partition_next_offset(w.part), next);
	part_close(&w);
	world_fini(&w);
}

/*
 * A snapshot written under a larger producers_max, once retention deleted the log before
 * it, is the only record of its producers and its projections' states. Reopened under a
 * smaller limit it used to be skipped as if damaged, with nothing said: the partition
 * opened, rebuilt from what was left, and a producer's retry of an event already in went
 * in twice. The open is refused instead, naming the limit; the old limit takes it again.
 */
static void test_snapshot_more_producers_than_max(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 59);
	part_open(&w, NULL);
	struct rill_schema_error err;
	struct rill_partition_write res;
	struct wbuf b;
	struct evspec sp;
	for (uint32_t p = 1; p <= 10; p++) { /* offsets 0..9 */
		sp = spec_order(prod_id(p), 0, 1, 5);
		build_event(&w, &sp, &b);
		assert_int_equal(write_retry(w.part, &b.rec, &res, &err), 0);
	}
	for (uint64_t seq = 0; seq < 3000; seq++) { /* several 64 KiB segments */
		sp = spec_order(prod_id(20), seq, 2, 7);
		build_event(&w, &sp, &b);
		assert_int_equal(write_retry(w.part, &b.rec, &res, &err), 0);
	}
	w.config.snapshots = true; /* as the engine's periodic snapshots */
	assert_int_equal(rill_partition_snapshot(w.part, 2), 0);
	part_close(&w);
	w.config.log.retention_age_ns = 1; /* every segment below the snapshot goes */
	part_open(&w, NULL);
	assert_true(rill_log_start_offset(wlog(&w)) > 10); /* the ten producers' events too */
	part_close(&w);

	w.config.producers_max = 5;
	struct rill_partition *smaller = NULL;
	struct rill_log_recovery report;
	assert_int_equal(rill_partition_open(&smaller, &w.config, &report), -ENOSPC);
	assert_null(smaller);
	if (strstr(report.message, "producers_max (5)") == NULL)
		fail_msg("refusal: %s", report.message);
	w.config.producers_max = 4096;
	part_open(&w, NULL);
	sp = spec_order(prod_id(1), 0, 1, 5); /* a retry of the first event: known still */
	build_event(&w, &sp, &b);
	assert_int_equal(write_retry(w.part, &b.rec, &res, &err), 0);
	assert_true(res.duplicate);
	assert_int_equal(res.offset, 0);
	part_close(&w);
	world_fini(&w);
}

/* ---- Limits lowered between opens ------------------------------------------------------ */

#define LIM_KEYS  20u   /* keys "key-0" .. "key-19": 10 of 5 bytes, 10 of 6 */
#define LIM_BYTES 110u  /* their text */
#define LIM_FILL  3000u /* events after the first of each key: several 64 KiB segments */

/* A COUNT projection of Orders, "cnt", with these limits. */
static struct rill_projection *count_new(struct world *w, uint32_t keys_max,
					 uint64_t key_store_bytes)
{
	struct rill_projection_config c = {.name = "cnt",
					   .type = "Order",
					   .kind = RILL_PROJECTION_COUNT,
					   .keys_max = keys_max,
					   .key_store_bytes = key_store_bytes};
	struct rill_projection *p = NULL;
	struct rill_schema_error err;
	err_reset(&err);
	int rc = rill_projection_create(&p, w->reg, &c, &err);
	if (rc != 0)
		fail_msg("projection cnt refused (%d): %s", rc, err.message);
	return p;
}

/* An Order of producer 0 under key "key-@k" (outside the model: these tests count). */
static void write_key(struct world *w, uint32_t k)
{
	char key[16];
	snprintf(key, sizeof(key), "key-%u", (unsigned)k);
	struct evspec sp = spec_order(0, 0, 0, 1);
	struct wbuf b;
	build_event(w, &sp, &b);
	b.rec.key = key;
	b.rec.key_bytes = (uint16_t)strlen(key);
	struct rill_partition_write res;
	struct rill_schema_error err;
	assert_int_equal(write_retry(w->part, &b.rec, &res, &err), 0);
}

/* How many events of "key-@k" projection @p holds (0: none, the key not held). */
static uint64_t key_count(const struct rill_projection *p, uint32_t k)
{
	char key[16];
	snprintf(key, sizeof(key), "key-%u", (unsigned)k);
	struct rill_projection_value v;
	return rill_projection_get(p, key, (uint32_t)strlen(key), &v) ? v.count : 0;
}

/*
 * Every key's first event, then LIM_FILL more over them all, folded into "cnt" (at most
 * @keys_max keys), snapshotted (*@snap: its offset), closed; with @expire, reopened once
 * with every segment before the snapshot expired (the first event of every key gone).
 * @counts: the events of each key.
 */
static void build_limited(struct world *w, uint64_t seed, uint32_t keys_max, bool expire,
			  uint64_t *counts, uint64_t *snap)
{
	world_init(w, seed);
	part_open(w, NULL);
	struct rill_projection *p = count_new(w, keys_max, 4096);
	assert_int_equal(rill_partition_projection_bind(w->part, p, NULL, 0), 0);
	for (uint32_t k = 0; k < LIM_KEYS; k++) {
		write_key(w, k);
		counts[k] = 1;
	}
	for (uint32_t i = 0; i < LIM_FILL; i++) {
		write_key(w, i % LIM_KEYS);
		counts[i % LIM_KEYS]++;
	}
	w->config.snapshots = true; /* as the engine's periodic snapshots */
	assert_int_equal(rill_partition_snapshot(w->part, 2), 0);
	*snap = rill_partition_snapshot_offset(w->part);
	assert_int_equal(*snap, LIM_KEYS + LIM_FILL);
	part_close(w);
	rill_projection_destroy(p);
	if (!expire)
		return;
	w->config.log.retention_age_ns = 1; /* every segment below the snapshot goes */
	part_open(w, NULL);
	assert_true(rill_log_start_offset(wlog(w)) > LIM_KEYS);
	part_close(w);
}

/* Bind "cnt" with these limits to the reopened partition: refused with -ENOSPC, @why
 * naming each of @needles. */
static void bind_refused(struct world *w, uint32_t keys_max, uint64_t key_store_bytes,
			 const char *const *needles)
{
	part_open(w, NULL);
	struct rill_projection *p = count_new(w, keys_max, key_store_bytes);
	char why[400] = "";
	int rc = rill_partition_projection_bind(w->part, p, why, sizeof(why));
	if (rc != -ENOSPC)
		fail_msg("keys_max %u, key store %llu: bind %d (%s), not refused; key-0 counts "
			 "%llu",
			 (unsigned)keys_max, (unsigned long long)key_store_bytes, rc,
			 rill_strerror(rc), (unsigned long long)key_count(p, 0));
	for (const char *const *n = needles; *n != NULL; n++)
		if (strstr(why, *n) == NULL)
			fail_msg("refusal without '%s': %s", *n, why);
	rill_projection_destroy(p);
	part_close(w);
}

/*
 * A snapshot of a projection written under larger key limits, once retention deleted the
 * log before it, is all that still knows its keys' counts. Reopened with a lower
 * projection_keys_max or projection_key_store_bytes it used to be skipped as if damaged,
 * with nothing said, and the projection rebuilt from what the log kept: keys known only
 * from the snapshot answered "never seen", the others counted from the log's start, and
 * the next snapshot made the loss permanent. The bind is refused instead, naming the
 * setting, what the snapshot holds and what to open with; the old limits take it again.
 */
static void test_snapshot_more_keys_than_max(void **state)
{
	(void)state;
	struct world w;
	uint64_t counts[LIM_KEYS], snap;
	build_limited(&w, 61, 64, true, counts, &snap);
	char want[64];
	snprintf(want, sizeof(want), "snapshot %020llu", (unsigned long long)snap);
	const char *const keys_max[] = {want,
					"projection cnt",
					"holds 20 keys",
					"projection_keys_max (10)",
					"projection_keys_max 20 or more",
					NULL};
	bind_refused(&w, 10, 4096, keys_max);
	const char *const store[] = {want,
				     "projection cnt",
				     "holds 110 bytes",
				     "projection_key_store_bytes (100)",
				     "projection_key_store_bytes 110 or more",
				     NULL};
	bind_refused(&w, 64, 100, store);
	const char *const both[] = {"projection_keys_max (19)", "projection_key_store_bytes (109)",
				    NULL};
	bind_refused(&w, 19, 109, both);

	part_open(&w, NULL); /* the old limits: every key, every event */
	struct rill_projection *p = count_new(&w, LIM_KEYS, LIM_BYTES); /* exactly enough */
	char why[400];
	assert_int_equal(rill_partition_projection_bind(w.part, p, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	for (uint32_t k = 0; k < LIM_KEYS; k++)
		assert_int_equal(key_count(p, k), counts[k]);
	part_close(&w);
	rill_projection_destroy(p);
	world_fini(&w);
}

/*
 * Every snapshot that held a projection damaged, and the log before it deleted: the
 * projection can only be folded from what retention kept, and its answers miss the events
 * before. That used to happen without a word (the next snapshot then made it permanent);
 * the bind still succeeds (partial answers rather than no server) but says so, naming the
 * projection, the skipped snapshots and where the fold began.
 */
static void test_snapshot_damaged_log_gone(void **state)
{
	(void)state;
	struct world w;
	uint64_t counts[LIM_KEYS], snap;
	build_limited(&w, 71, 64, true, counts, &snap);
	io_sim_sync_all(w.sim);
	char path[128];
	snprintf(path, sizeof(path), "%s/snapshots/%020llu.snap", DIR_SIM,
		 (unsigned long long)snap);
	uint64_t size = 0;
	uint8_t *data = io_sim_file_data(w.sim, path, &size);
	assert_non_null(data);
	assert_true(size > 64);
	data[size - 12] ^= 0x40; /* inside the last state: its CRC no longer holds */
	io_sim_sync_all(w.sim);
	part_open(&w, NULL);
	uint64_t start = rill_log_start_offset(wlog(&w));
	assert_true(start > 0);
	struct rill_projection *p = count_new(&w, 64, 4096);
	char why[400] = "";
	assert_int_equal(rill_partition_projection_bind(w.part, p, why, sizeof(why)), 0);
	char at[64];
	snprintf(at, sizeof(at), "before offset %llu is gone", (unsigned long long)start);
	if (strstr(why, "projection cnt") == NULL ||
	    strstr(why, "no snapshot restored it") == NULL || strstr(why, at) == NULL)
		fail_msg("a partial rebuild without a word: '%s'", why);
	uint64_t folded = 0;
	for (uint32_t k = 0; k < LIM_KEYS; k++)
		folded += key_count(p, k);
	assert_true(folded < LIM_KEYS + LIM_FILL); /* what the log kept, less than all */
	part_close(&w);
	rill_projection_destroy(p);
	part_open(&w, NULL);
	/* The bind failing at each of its I/O calls in turn, the fold's reads among them: its
	 * error is the caller's to report, with no note that the fold went on. */
	int rc;
	uint64_t k = 0;
	do {
		p = count_new(&w, 64, 4096);
		io_sim_fail_at(w.sim, io_sim_ops(w.sim) + k, EIO, true);
		strcpy(why, "left over");
		rc = rill_partition_projection_bind(w.part, p, why, sizeof(why));
		io_sim_fail_at(w.sim, UINT64_MAX, 0, false);
		if (rc < 0 && why[0] != '\0')
			fail_msg("the bind failed at its call %llu (%s), yet said: '%s'",
				 (unsigned long long)k, rill_strerror(rc), why);
		rill_projection_destroy(p);
		k++;
	} while (rc < 0 && k < 1000);
	assert_int_equal(rc, 0);
	assert_true(k > 1); /* some call failed it */
	part_close(&w);
	world_fini(&w);
}

/*
 * A projection that refused keys for lack of room (refused_full), snapshotted, then given
 * larger limits. Folding on from the snapshot would take a refused key at its next event,
 * its count missing the events of before: a wrong answer where -ENOSPC ("perhaps refused")
 * was right. With the log whole from offset 0 the projection is folded again from there,
 * exact under the new limits; with its start deleted it takes no new key, and says so.
 */
static void test_snapshot_refused_keys_limit_raised(void **state)
{
	(void)state;
	struct world w;
	uint64_t counts[LIM_KEYS], snap;
	build_limited(&w, 67, 10, false, counts, &snap); /* key-10 .. key-19 refused */
	part_open(&w, NULL);
	struct rill_projection *p = count_new(&w, 64, 4096);
	char why[400];
	assert_int_equal(rill_partition_projection_bind(w.part, p, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	for (uint32_t k = 0; k < LIM_KEYS; k++)
		assert_int_equal(key_count(p, k), counts[k]);
	struct rill_projection_stats st;
	rill_projection_stats(p, &st);
	assert_int_equal(st.refused_full, 0);
	part_close(&w);
	rill_projection_destroy(p);
	world_fini(&w);

	build_limited(&w, 67, 10, true, counts, &snap); /* the same, the log's start gone */
	part_open(&w, NULL);
	p = count_new(&w, 64, 4096);
	assert_int_equal(rill_partition_projection_bind(w.part, p, why, sizeof(why)), 0);
	if (strstr(why, "takes no new key") == NULL || strstr(why, "projection cnt") == NULL)
		fail_msg("sealed without a word: '%s'", why);
	for (uint32_t k = 0; k < LIM_KEYS; k++)
		assert_int_equal(key_count(p, k), k < 10 ? counts[k] : 0);
	rill_projection_stats(p, &st);
	assert_true(st.refused_full > 0); /* the keys it lacks answer -ENOSPC, not -ENOENT */
	uint64_t refused = st.refused_full;
	write_key(&w, 15); /* once refused: counted now, it would miss its 151 of before */
	write_key(&w, 3);
	assert_int_equal(key_count(p, 15), 0);
	assert_int_equal(key_count(p, 3), counts[3] + 1);
	rill_projection_stats(p, &st);
	assert_int_equal(st.refused_full, refused + 1);
	part_close(&w);
	rill_projection_destroy(p);
	world_fini(&w);
}

/* The .snap files in the partition's snapshots/ folder. */
static unsigned snap_files(struct world *w)
{
	struct name_list l = {.count = 0};
	assert_int_equal(
		w->config.io->ops->list(w->config.io, DIR_SIM "/snapshots", name_list_add, &l), 0);
	unsigned n = 0;
	for (unsigned i = 0; i < l.count; i++) {
		size_t len = strlen(l.names[i]);
		n += len > 5 && strcmp(l.names[i] + len - 5, ".snap") == 0;
	}
	return n;
}

/*
 * snapshots_kept lowered between opens: the snapshots past it used to go only when the
 * partition took its next one, which an idle partition never does. Meanwhile the oldest
 * held retention back: every segment after it stayed for as long as the partition got no
 * event. They go at open now, and retention runs from the newest.
 */
static void test_snapshots_kept_lowered_at_open(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 71);
	part_open(&w, NULL);
	struct rill_projection *p = count_new(&w, 64, 4096);
	assert_int_equal(rill_partition_projection_bind(w.part, p, NULL, 0), 0);
	w.config.snapshots = true; /* as the engine's periodic snapshots */
	uint64_t offsets[4];
	for (uint32_t s = 0; s < 4; s++) {
		for (uint32_t i = 0; i < LIM_FILL; i++)
			write_key(&w, i % LIM_KEYS);
		assert_int_equal(rill_partition_snapshot(w.part, 4), 0);
		offsets[s] = rill_partition_snapshot_offset(w.part);
	}
	part_close(&w);
	rill_projection_destroy(p);
	assert_int_equal(snap_files(&w), 4);

	w.config.snapshots_kept = 1;
	w.config.log.retention_age_ns = 1;
	part_open(&w, NULL); /* no event from here on */
	assert_int_equal(rill_partition_snapshot_offset(w.part), offsets[3]);
	assert_int_equal(snap_files(&w), 1);
	assert_int_equal(rill_log_expire(wlog(&w), rill_clock_wall_ns()), 0);
	uint64_t start = rill_log_start_offset(wlog(&w));
	if (start <= offsets[2] || start > offsets[3])
		fail_msg("snapshots at %llu, %llu kept, log start %llu",
			 (unsigned long long)offsets[2], (unsigned long long)offsets[3],
			 (unsigned long long)start);
	p = count_new(&w, 64, 4096); /* restored from the one kept */
	assert_int_equal(rill_partition_projection_bind(w.part, p, NULL, 0), 0);
	assert_int_equal(key_count(p, 7), 4 * LIM_FILL / LIM_KEYS);
	part_close(&w);
	rill_projection_destroy(p);
	world_fini(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_idempotence),
		cmocka_unit_test(test_backpressure),
		cmocka_unit_test(test_restart_close),
		cmocka_unit_test(test_restart_crash),
		cmocka_unit_test(test_restart_power_cut),
		cmocka_unit_test(test_projections),
		cmocka_unit_test(test_projection_limits),
		cmocka_unit_test(test_crash_loop),
		cmocka_unit_test(test_io_error_loop),
		cmocka_unit_test(test_rebuild_io_errors),
		cmocka_unit_test(test_retention_and_unknown_producers),
		cmocka_unit_test(test_retention_at_open),
		cmocka_unit_test(test_snapshot_faults),
		cmocka_unit_test(test_snapshot_crc_guards),
		cmocka_unit_test(test_snapshot_past_end_stays_deleted),
		cmocka_unit_test(test_snapshot_more_producers_than_max),
		cmocka_unit_test(test_snapshot_more_keys_than_max),
		cmocka_unit_test(test_snapshot_refused_keys_limit_raised),
		cmocka_unit_test(test_snapshot_damaged_log_gone),
		cmocka_unit_test(test_snapshots_kept_lowered_at_open),
	};
	test_seed();
	return cmocka_run_group_tests_name("partition", tests, NULL, NULL);
}
