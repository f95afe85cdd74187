/*
 * libFuzzer target for the TCP server's handling of a connection's bytes (io/server*.c):
 * the handshake, the frame limit, in-flight budgets, PRODUCE into the engine and its ACKs,
 * SUBSCRIBE, FETCH and UNSUBSCRIBE with their credit, QUERY, every ADMIN op, PING, and the
 * fatal ERROR that closes the connection. The server runs in this process, as `rill
 * serve` runs it, in front of a live engine (tests/fuzz/server_fuzz.h), on an ephemeral
 * loopback port; each input is one connection: its bytes (layout in server_fuzz.h) go out
 * cut into sends as the input asks, everything the server sends is read as it comes, and
 * then the connection is half-closed (or reset) and read to its end. The server's workers
 * are inseparable from their io_uring and shard threads: real sockets are the seam, with
 * no change to the server.
 *
 * Asserted, beyond the sanitizers and the server's own assertions (-Ddasserts=true):
 *   - the server closes the connection once the input is sent (it never hangs: a
 *     connection where no byte moves either way for FUZZ_STALL_NS fails), and never
 *     closes it early without a fatal ERROR;
 *   - what it sends is a stream of whole frames (a frame cut short only where the
 *     connection was reset): server frame types only, each body decoding whole with
 *     io/wire.h (ACK entries, SUBSCRIBED entries, EVENTS records with their CRCs, ADMIN_OK
 *     JSON that parses as an object), HELLO_OK first and only once, with this server's
 *     shards and limits;
 *   - a fatal ERROR is the last frame: nothing follows it but the close; an ERROR before
 *     HELLO_OK is fatal, and every ERROR's code is negative;
 *   - every answer carries the request id of a frame the input sent (0 too, for an ERROR),
 *     of a type it answers: an ACK a PRODUCE that decoded, with one entry per event, a
 *     SUBSCRIBED or EVENTS a SUBSCRIBE, a RESULT a QUERY, an ADMIN_OK an ADMIN, a PONG a
 *     PING;
 *   - EVENTS never exceed the credit the input's SUBSCRIBE and FETCH frames gave, and a
 *     subscription's offsets rise;
 *   - the engine's logs take events only from PRODUCE frames that decode: the events its
 *     shards appended, over the run, never exceed the events of those frames sent.
 * ADMIN ops that make things for good would grow the engine without bound over a long run,
 * so the harness lets few through: at most FUZZ_MAKES_PER_INPUT per input, while fewer
 * than made_max[op] things were made (made_count), and a TOPIC_CREATE only for a small
 * topic that keeps little (topic_small); the rest go out as TOPIC_INFO (GROUP_COMMIT as
 * GROUP_FETCH). The engine's state carries over from input to input (its logs, what ADMIN
 * made), as it does for a real server. The engine's directory is removed at a normal exit;
 * a run stopped by a crash leaves it in /tmp (a few MiB at most: retention). To see what
 * an input does, replay it with RILL_FUZZ_TRACE=1: every frame the server sends is printed.
 * Built with clang -fsanitize=fuzzer,address,undefined when meson's `fuzzing` option is on.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "io/wire.h"
#include "tests/fuzz/crc_fix.h"
#include "tests/fuzz/server_fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_INPUT_BYTES_MAX (256u << 10) /* longer inputs are skipped */
/* The input's stream, a HELLO frame before it and a PING after it. */
#define FUZZ_STREAM_BYTES_MAX                                                                      \
	(FUZZ_INPUT_BYTES_MAX + 2u * RILL_WIRE_HEADER_BYTES + RILL_WIRE_HELLO_BYTES)
#define FUZZ_FRAMES_MAX (FUZZ_STREAM_BYTES_MAX / RILL_WIRE_HEADER_BYTES + 1u)
#define FUZZ_PIECES_MAX 256u /* SERVER_FUZZ_CUT_PIECES: the rest goes in one send */
#define FUZZ_CUTS_MAX   (2u * FUZZ_FRAMES_MAX + FUZZ_PIECES_MAX + 2u)
#define FUZZ_OUT_BYTES  (2u * (SERVER_FUZZ_FRAME_BYTES + RILL_WIRE_HEADER_BYTES)) /* 2 frames */
/* No byte either way this long, the connection open: the server hangs. Not a bound on the
 * whole connection: a stream of token queries, each waiting for its token, takes long. */
#define FUZZ_STALL_NS        (10ull * 1000000000u)
#define FUZZ_HELLO_ID        0x48454c4c4f000000ull /* the HELLO the harness sends first */
#define FUZZ_SYNC_ID         0x53594e4300000000ull /* the PING of SERVER_FUZZ_SYNC */
#define FUZZ_FEEDS_MAX       64u                   /* subscriptions whose offsets are tracked */
#define FUZZ_MAKES_PER_INPUT 4u
/* A topic ADMIN may make: this small, keeping this little (topic_small). */
#define FUZZ_TOPIC_PARTITIONS_MAX 4
#define FUZZ_TOPIC_BYTES_MAX      (1 << 20) /* retention_bytes and segment_bytes */
#define FUZZ_TOPIC_DELAY_US_MAX   10000     /* batch_delay_us: durable ACKs come soon */

_Static_assert(RILL_WIRE_TYPE_LAST <= 32 && RILL_WIRE_ADMIN_OP_LAST <= 32,
	       "frame types and admin ops are bits of a u32 (struct fuzz_req)");

/* How many things each ADMIN op that makes something may make over the run. */
#define FUZZ_MADE_MAX       256u
#define FUZZ_MADE_KEY_BYTES 160u /* what made_count keeps of an answer: a name and version */
static const uint32_t made_max[RILL_WIRE_ADMIN_OP_LAST] = {
	[RILL_WIRE_ADMIN_TOPIC_CREATE] = 16,
	[RILL_WIRE_ADMIN_SCHEMA_REGISTER] = 64,
	[RILL_WIRE_ADMIN_PROJECTION_CREATE] = 16,
	[RILL_WIRE_ADMIN_GROUP_COMMIT] = 256,
};

static struct server_fuzz_env env;
static bool trace;           /* RILL_FUZZ_TRACE=1: each frame the server sends, on stderr */
static uint64_t events_sent; /* in PRODUCE frames that decoded, run */
static uint32_t made[RILL_WIRE_ADMIN_OP_LAST]; /* things made, by op, over the run */
static char made_keys[RILL_WIRE_ADMIN_OP_LAST][FUZZ_MADE_MAX][FUZZ_MADE_KEY_BYTES];
static uint64_t inputs, resets, fatals, eofs_clean; /* what the run saw (printed at exit) */

/* What the input sent under one request id. */
struct fuzz_req {
	uint64_t id;
	uint32_t types;         /* bit per frame type sent with it; bit 0: a bad header */
	uint32_t admin_ops;     /* bit per ADMIN op (as sent, after admission) */
	uint32_t produce_count; /* events of a PRODUCE that decoded */
	bool produce_mixed;     /* several PRODUCEs that decoded, of different counts */
	uint32_t subscribes;    /* SUBSCRIBE frames that decoded */
};

/* The stream the input makes, and what the harness knows of it. */
static struct {
	uint8_t flags;
	uint8_t bytes[FUZZ_STREAM_BYTES_MAX];
	uint32_t len;
	uint32_t frame_at[FUZZ_FRAMES_MAX]; /* where each whole frame starts */
	uint32_t frame_count;
	bool clean; /* every header good, and the stream ends at a frame's end */
	struct fuzz_req reqs[FUZZ_FRAMES_MAX + 1];
	uint32_t req_count;
	uint64_t events;              /* in the PRODUCE frames that decode */
	uint64_t credit;              /* given by the SUBSCRIBE and FETCH frames that decode */
	uint32_t makes;               /* ADMIN frames that make something, let through */
	uint32_t cuts[FUZZ_CUTS_MAX]; /* where each send ends, rising */
	uint32_t cut_count;
	bool sync; /* the PING of SERVER_FUZZ_SYNC ends the stream */
} in;

/* What came back. */
static struct {
	uint32_t len;   /* of buf */
	uint64_t bytes; /* received */
	uint32_t frames;
	bool hello_ok, fatal, pong;
	uint64_t events;
	struct fuzz_feed {
		uint64_t id;
		uint32_t partition;
		uint64_t next; /* the least offset its next event may have */
	} feeds[FUZZ_FEEDS_MAX];
	uint32_t feed_count;
	uint8_t buf[FUZZ_OUT_BYTES]; /* last: not cleared for each input */
} out;

static void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fuzz_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fuzz_server: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr,
		" (input flags 0x%02x, stream of %u bytes, %u whole frames; %u frames "
		"back)\n",
		in.flags, in.len, in.frame_count, out.frames);
	abort();
}

static void env_close(void)
{
	int rc = server_fuzz_close(&env, 2ull * 1000000000u);
	fprintf(stderr,
		"fuzz_server: %llu inputs: %llu fatal ERRORs, %llu closed after the end of "
		"stream, %llu reset; %llu events sent in PRODUCE frames that decode; ADMIN "
		"made %u topics, %u schemas, %u projections, %u group commits\n",
		(unsigned long long)inputs, (unsigned long long)fatals,
		(unsigned long long)eofs_clean, (unsigned long long)resets,
		(unsigned long long)events_sent, made[RILL_WIRE_ADMIN_TOPIC_CREATE],
		made[RILL_WIRE_ADMIN_SCHEMA_REGISTER], made[RILL_WIRE_ADMIN_PROJECTION_CREATE],
		made[RILL_WIRE_ADMIN_GROUP_COMMIT]);
	if (rc != 0) {
		fprintf(stderr,
			"fuzz_server: the server did not drain its connections at the "
			"stop: %s\n",
			rill_strerror(rc));
		abort();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	server_fuzz_open(&env);
	struct rill_error_text err = {{0}};
	int rc = server_fuzz_serve(&env, &err);
	if (rc != 0 && strstr(err.message, "io_uring") != NULL) {
		/* As the server's own tests (tests/common/server_start.h): nothing to fuzz. */
		fprintf(stderr, "fuzz_server: skipped: the server cannot run on this kernel: %s\n",
			err.message);
		server_fuzz_close(&env, 0);
		exit(77); /* meson's "skipped" */
	}
	if (rc != 0)
		server_fuzz_die("server", rc, err.message);
	atexit(env_close);
	const char *t = getenv("RILL_FUZZ_TRACE");
	trace = t != NULL && strcmp(t, "1") == 0;
	return 0;
}

/* ---- The stream ------------------------------------------------------------------------ */

/* The input's bytes as the stream to send: a HELLO first if asked, pieces made frames. */
static void stream_build(const uint8_t *data, size_t size)
{
	in.flags = data[0];
	in.len = 0;
	if (in.flags & SERVER_FUZZ_HELLO) {
		struct rill_wire_hello hello = {.version_min = 1, .version_max = RILL_WIRE_VERSION};
		int n = rill_wire_hello_encode(in.bytes, sizeof(in.bytes), FUZZ_HELLO_ID, &hello);
		if (n <= 0)
			fuzz_fail("HELLO encode: %d", n);
		in.len = (uint32_t)n;
	}
	const uint8_t *s = data + SERVER_FUZZ_INPUT_BYTES;
	size_t n = size - SERVER_FUZZ_INPUT_BYTES;
	if (!(in.flags & SERVER_FUZZ_FRAMED)) {
		memcpy(in.bytes + in.len, s, n);
		in.len += (uint32_t)n;
		return;
	}
	for (size_t at = 0; n - at >= 2;) {
		size_t piece = rill_ld16(s + at);
		at += 2;
		if (piece > n - at)
			piece = n - at;
		uint8_t *frame = in.bytes + in.len;
		memcpy(frame, s + at, piece);
		if (piece >= RILL_WIRE_HEADER_BYTES)
			rill_st32(frame, (uint32_t)(piece - RILL_WIRE_HEADER_BYTES));
		in.len += (uint32_t)piece;
		at += piece;
	}
}

static struct fuzz_req *req_add(uint64_t id, uint32_t type_bit)
{
	struct fuzz_req *r = &in.reqs[in.req_count++];
	*r = (struct fuzz_req){.id = id, .types = type_bit};
	return r;
}

/* Whether a TOPIC_CREATE's JSON, if the server takes it, makes a small topic that keeps
 * little on disk and answers durable ACKs soon. Not an object: the server refuses it. */
static bool topic_small(const char *json, uint32_t bytes)
{
	json_error_t jerr;
	json_t *j = json_loadb(json, bytes, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(j)) {
		json_decref(j);
		return true;
	}
	json_t *parts = json_object_get(j, "partitions");
	json_t *retention = json_object_get(j, "retention_bytes");
	json_t *segment = json_object_get(j, "segment_bytes");
	json_t *delay = json_object_get(j, "batch_delay_us");
	bool ok = (parts == NULL || (json_is_integer(parts) &&
				     json_integer_value(parts) <= FUZZ_TOPIC_PARTITIONS_MAX)) &&
		  json_is_integer(retention) && json_integer_value(retention) > 0 &&
		  json_integer_value(retention) <= FUZZ_TOPIC_BYTES_MAX &&
		  json_is_integer(segment) && json_integer_value(segment) > 0 &&
		  json_integer_value(segment) <= FUZZ_TOPIC_BYTES_MAX &&
		  (delay == NULL || (json_is_integer(delay) &&
				     json_integer_value(delay) <= FUZZ_TOPIC_DELAY_US_MAX));
	json_decref(j);
	return ok;
}

/* An ADMIN frame that decoded: let an op that makes something through, or send it as one
 * that reads (its op rewritten in the body, which still decodes). The op it goes as. */
static uint16_t admin_admit(uint8_t *body, const struct rill_wire_admin *a)
{
	uint16_t op = a->op;
	if (op >= RILL_WIRE_ADMIN_OP_LAST || made_max[op] == 0)
		return op;
	if (in.makes < FUZZ_MAKES_PER_INPUT && made[op] < made_max[op] &&
	    (op != RILL_WIRE_ADMIN_TOPIC_CREATE || topic_small(a->json, a->json_bytes))) {
		in.makes++;
		return op;
	}
	op = op == RILL_WIRE_ADMIN_GROUP_COMMIT ? RILL_WIRE_ADMIN_GROUP_FETCH
						: RILL_WIRE_ADMIN_TOPIC_INFO;
	rill_st16(body, op); /* the op is the body's first field (io/wire.h) */
	return op;
}

/* A whole frame at @frame: fix, admit and account for it. */
static void frame_scan(uint8_t *frame, const struct rill_wire_header *h, struct fuzz_req *r)
{
	uint8_t *body = frame + RILL_WIRE_HEADER_BYTES;
	if (h->type == RILL_WIRE_PRODUCE) {
		if (in.flags & SERVER_FUZZ_FIX_CRC)
			crc_fix_produce(frame, RILL_WIRE_HEADER_BYTES + h->body_bytes);
		struct rill_wire_produce p;
		if (rill_wire_produce_decode(body, h->body_bytes, &p, NULL) == 0) {
			in.events += p.event_count;
			r->produce_count = p.event_count;
		}
	} else if (h->type == RILL_WIRE_SUBSCRIBE) {
		struct rill_wire_subscribe s;
		if (rill_wire_subscribe_decode(body, h->body_bytes, &s) == 0) {
			in.credit += s.credit;
			r->subscribes = 1;
		}
	} else if (h->type == RILL_WIRE_FETCH) {
		uint32_t credit = 0;
		if (rill_wire_fetch_decode(body, h->body_bytes, &credit) == 0)
			in.credit += credit;
	} else if (h->type == RILL_WIRE_ADMIN) {
		struct rill_wire_admin a;
		if (rill_wire_admin_decode(body, h->body_bytes, &a) == 0) /* op < ADMIN_OP_LAST */
			r->admin_ops = 1u << admin_admit(body, &a);
	}
}

/*
 * Cut the stream into frames as the server does (the same header decoder and limit), up
 * to the first bad header or the partial frame at the end, and note every request id.
 * Every frame the server may take is among those seen here, so what is counted here
 * bounds what the server may do.
 */
static void stream_scan(void)
{
	uint32_t at = 0;
	in.frame_count = in.req_count = in.makes = 0;
	in.events = in.credit = 0;
	in.clean = false;
	while (in.len - at >= RILL_WIRE_HEADER_BYTES) {
		struct rill_wire_header h = {0};
		int rc = rill_wire_header_decode(in.bytes + at, in.len - at,
						 SERVER_FUZZ_FRAME_BYTES, &h);
		/* The decoder fills the header even when it refuses it: the ERROR carries its
		 * request id. */
		struct fuzz_req *r = req_add(h.request_id, rc == 0 ? 1u << h.type : 1u);
		if (rc < 0)
			return;
		uint32_t frame = RILL_WIRE_HEADER_BYTES + h.body_bytes;
		if (in.len - at < frame)
			return;
		in.frame_at[in.frame_count++] = at;
		frame_scan(in.bytes + at, &h, r);
		at += frame;
	}
	in.clean = at == in.len;
}

static int req_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct fuzz_req *)a)->id, y = ((const struct fuzz_req *)b)->id;
	return x < y ? -1 : x > y;
}

/* One entry per request id, sorted, what was sent under it merged. */
static void reqs_merge(void)
{
	qsort(in.reqs, in.req_count, sizeof(in.reqs[0]), req_cmp);
	uint32_t k = 0;
	for (uint32_t i = 0; i < in.req_count; i++) {
		struct fuzz_req *r = &in.reqs[i], *m = &in.reqs[k > 0 ? k - 1 : 0];
		if (k == 0 || m->id != r->id) {
			in.reqs[k++] = *r;
			continue;
		}
		m->types |= r->types;
		m->admin_ops |= r->admin_ops;
		m->subscribes += r->subscribes;
		if (r->produce_count != 0) {
			if (m->produce_count != 0 && m->produce_count != r->produce_count)
				m->produce_mixed = true;
			m->produce_count = r->produce_count;
		}
	}
	in.req_count = k;
}

/*
 * An ADMIN_OK answering an op that makes something: count it against made_max if it made
 * something new. What the answer names (a topic's or projection's name, a schema's type
 * and version) is new unless an earlier answer named it: making it again is a no-op the
 * fuzzer finds often (it mutates the seeds' ops), and it keeps the path open. An answer
 * that names nothing (GROUP_COMMIT's, or a STAT's under the same request id) counts.
 */
static void made_count(uint16_t op, json_t *answer)
{
	char key[FUZZ_MADE_KEY_BYTES] = "";
	json_t *name =
		json_object_get(answer, op == RILL_WIRE_ADMIN_SCHEMA_REGISTER ? "type" : "name");
	if (json_is_string(name) && op != RILL_WIRE_ADMIN_GROUP_COMMIT)
		snprintf(key, sizeof(key), "%s/%lld", json_string_value(name),
			 (long long)json_integer_value(json_object_get(answer, "version")));
	for (uint32_t i = 0; key[0] != '\0' && i < made[op]; i++)
		if (strcmp(made_keys[op][i], key) == 0)
			return;
	if (made[op] < FUZZ_MADE_MAX)
		memcpy(made_keys[op][made[op]], key, sizeof(key));
	made[op]++;
}

static const struct fuzz_req *req_find(uint64_t id)
{
	struct fuzz_req key = {.id = id};
	return bsearch(&key, in.reqs, in.req_count, sizeof(in.reqs[0]), req_cmp);
}

static void cut_add(uint32_t at)
{
	if (at > in.len || (in.cut_count > 0 && at <= in.cuts[in.cut_count - 1]))
		return;
	in.cuts[in.cut_count++] = at;
}

/* Where each send ends (byte 1 and bits 5-6 of the flags). */
static void cuts_make(uint8_t piece)
{
	in.cut_count = 0;
	uint32_t mode = (in.flags >> SERVER_FUZZ_CUT_SHIFT) & 3u;
	for (uint32_t i = 0; mode == SERVER_FUZZ_CUT_PIECES && i < FUZZ_PIECES_MAX; i++)
		cut_add((i + 1) * ((uint32_t)piece + 1));
	for (uint32_t i = 0; mode == SERVER_FUZZ_CUT_FRAMES || mode == SERVER_FUZZ_CUT_HEADS; i++) {
		if (i == in.frame_count)
			break;
		uint32_t at = in.frame_at[i];
		if (mode == SERVER_FUZZ_CUT_HEADS)
			cut_add(at + RILL_WIRE_HEADER_BYTES);
		cut_add(at + RILL_WIRE_HEADER_BYTES + rill_ld32(in.bytes + at));
	}
	cut_add(in.len);
}

/* SERVER_FUZZ_SYNC, on a stream that ends at a frame's end: a PING after it. */
static void sync_add(void)
{
	in.sync = false;
	if (!(in.flags & SERVER_FUZZ_SYNC) || !in.clean)
		return;
	int n = rill_wire_empty_encode(in.bytes + in.len, sizeof(in.bytes) - in.len, RILL_WIRE_PING,
				       FUZZ_SYNC_ID);
	if (n != RILL_WIRE_HEADER_BYTES)
		fuzz_fail("PING encode: %d", n);
	in.len += RILL_WIRE_HEADER_BYTES;
	req_add(FUZZ_SYNC_ID, 1u << RILL_WIRE_PING);
	in.sync = true;
}

/* ---- What comes back ----------------------------------------------------------------- */

/* The request @h answers: sent under its id with one of @types (bits), or fail. */
static const struct fuzz_req *answers(const struct rill_wire_header *h, uint32_t types)
{
	const struct fuzz_req *r = req_find(h->request_id);
	if (r == NULL || (r->types & types) == 0)
		fuzz_fail("%s answers request %llu: the input sent nothing it answers under "
			  "that id",
			  rill_wire_type_name(h->type), (unsigned long long)h->request_id);
	return r;
}

/* Iterators end exactly after their count: 0 from the next call. */
static void iter_done(int rc, const char *what)
{
	if (rc != 0)
		fuzz_fail("%s: %d (%s) after its last entry", what, rc, rill_strerror(rc));
}

static void ack_check(const struct rill_wire_header *h, const uint8_t *body)
{
	const struct fuzz_req *r = answers(h, 1u << RILL_WIRE_PRODUCE);
	uint32_t count = 0;
	struct rill_wire_iter it;
	int rc = rill_wire_ack_decode(body, h->body_bytes, &count, &it);
	if (rc != 0)
		fuzz_fail("ACK: %s", rill_strerror(rc));
	if (r->produce_count == 0 || (!r->produce_mixed && count != r->produce_count))
		fuzz_fail("an ACK of %u entries answers a PRODUCE of %u events", count,
			  r->produce_count);
	struct rill_wire_ack_entry e;
	for (uint32_t i = 0; i < count; i++) {
		if ((rc = rill_wire_ack_next(&it, &e)) != 1)
			fuzz_fail("ACK entry %u: %d (%s)", i, rc, rill_strerror(rc));
		if (e.error > 0)
			fuzz_fail("ACK entry %u: error %d", i, e.error);
	}
	iter_done(rill_wire_ack_next(&it, &e), "ACK");
}

static void subscribed_check(const struct rill_wire_header *h, const uint8_t *body)
{
	(void)answers(h, 1u << RILL_WIRE_SUBSCRIBE);
	uint32_t count = 0;
	struct rill_wire_iter it;
	int rc = rill_wire_subscribed_decode(body, h->body_bytes, &count, &it);
	if (rc != 0)
		fuzz_fail("SUBSCRIBED: %s", rill_strerror(rc));
	if (count == 0 || count > SERVER_FUZZ_SUBS)
		fuzz_fail("SUBSCRIBED: %u partitions, past subscriptions_max %u", count,
			  SERVER_FUZZ_SUBS);
	struct rill_wire_subscribed_entry e;
	for (uint32_t i = 0; i < count; i++)
		if ((rc = rill_wire_subscribed_next(&it, &e)) != 1)
			fuzz_fail("SUBSCRIBED entry %u: %d (%s)", i, rc, rill_strerror(rc));
	iter_done(rill_wire_subscribed_next(&it, &e), "SUBSCRIBED");
}

/* Where the events of a subscription (a SUBSCRIBE sent once under its id) may go on. */
static uint64_t *feed_next(uint64_t id, uint32_t partition)
{
	for (uint32_t i = 0; i < out.feed_count; i++)
		if (out.feeds[i].id == id && out.feeds[i].partition == partition)
			return &out.feeds[i].next;
	if (out.feed_count == FUZZ_FEEDS_MAX)
		return NULL;
	out.feeds[out.feed_count] = (struct fuzz_feed){.id = id, .partition = partition};
	return &out.feeds[out.feed_count++].next;
}

static void events_check(const struct rill_wire_header *h, const uint8_t *body)
{
	const struct fuzz_req *r = answers(h, 1u << RILL_WIRE_SUBSCRIBE);
	uint32_t partition = 0, count = 0;
	struct rill_wire_iter it;
	int rc = rill_wire_events_decode(body, h->body_bytes, &partition, &count, &it);
	if (rc != 0)
		fuzz_fail("EVENTS: %s", rill_strerror(rc));
	if (count == 0)
		fuzz_fail("EVENTS with no event");
	out.events += count;
	if (out.events > in.credit)
		fuzz_fail("%llu events sent for %llu of credit given",
			  (unsigned long long)out.events, (unsigned long long)in.credit);
	/* A subscription's offsets rise; with one SUBSCRIBE under the id, across frames. */
	uint64_t *next = r->subscribes == 1 ? feed_next(h->request_id, partition) : NULL;
	uint64_t least = next != NULL ? *next : 0;
	uint64_t offset;
	struct rill_record rec;
	for (uint32_t i = 0; i < count; i++) {
		if ((rc = rill_wire_events_next(&it, &offset, &rec)) != 1)
			fuzz_fail("EVENTS entry %u: %d (%s)", i, rc, rill_strerror(rc));
		if (offset < least)
			fuzz_fail("EVENTS of partition %u: offset %llu after %llu", partition,
				  (unsigned long long)offset, (unsigned long long)least - 1);
		least = offset + 1;
	}
	iter_done(rill_wire_events_next(&it, &offset, &rec), "EVENTS");
	if (next != NULL)
		*next = least;
}

static void admin_ok_check(const struct rill_wire_header *h, const uint8_t *body)
{
	const struct fuzz_req *r = answers(h, 1u << RILL_WIRE_ADMIN);
	const char *json = NULL;
	uint32_t json_bytes = 0;
	int rc = rill_wire_admin_ok_decode(body, h->body_bytes, &json, &json_bytes);
	if (rc != 0)
		fuzz_fail("ADMIN_OK: %s", rill_strerror(rc));
	json_error_t jerr;
	json_t *j = json_loadb(json, json_bytes, 0, &jerr);
	if (!json_is_object(j))
		fuzz_fail("ADMIN_OK: not a JSON object: %.*s", (int)json_bytes, json);
	/* What was made counts against made_max. */
	for (uint16_t op = 0; op < RILL_WIRE_ADMIN_OP_LAST; op++)
		if ((r->admin_ops & (1u << op)) && made_max[op] > 0)
			made_count(op, j);
	json_decref(j);
}

static void error_check(const struct rill_wire_header *h, const uint8_t *body)
{
	struct rill_wire_error e;
	int rc = rill_wire_error_decode(body, h->body_bytes, &e);
	if (rc != 0)
		fuzz_fail("ERROR: %s", rill_strerror(rc));
	if (h->request_id != 0)
		(void)answers(h, UINT32_MAX);
	if (e.code >= 0)
		fuzz_fail("an ERROR with code %d: %.*s", e.code, (int)e.message_bytes, e.message);
	if (!(e.flags & RILL_WIRE_ERROR_F_FATAL) && !out.hello_ok)
		fuzz_fail("a non-fatal ERROR before HELLO_OK: %.*s", (int)e.message_bytes,
			  e.message);
	out.fatal = (e.flags & RILL_WIRE_ERROR_F_FATAL) != 0;
}

static void answer_trace(const struct rill_wire_header *h, const uint8_t *body)
{
	struct rill_wire_error e = {0};
	const char *json = NULL;
	uint32_t json_bytes = 0;
	if (h->type == RILL_WIRE_ERROR && rill_wire_error_decode(body, h->body_bytes, &e) == 0)
		json = e.message, json_bytes = e.message_bytes;
	if (h->type == RILL_WIRE_ADMIN_OK)
		(void)rill_wire_admin_ok_decode(body, h->body_bytes, &json, &json_bytes);
	uint32_t count = 0;
	struct rill_wire_iter it;
	struct rill_wire_ack_entry a;
	if (h->type == RILL_WIRE_ACK &&
	    rill_wire_ack_decode(body, h->body_bytes, &count, &it) == 0 &&
	    rill_wire_ack_next(&it, &a) == 1 && a.error != 0)
		json = a.reason != NULL ? a.reason : rill_strerror(a.error),
		json_bytes = a.reason != NULL ? a.reason_bytes : (uint32_t)strlen(json);
	fprintf(stderr, "fuzz_server: %s for %llu, %u bytes%s%.*s\n", rill_wire_type_name(h->type),
		(unsigned long long)h->request_id, h->body_bytes, json != NULL ? ": " : "",
		json_bytes > 200 ? 200 : (int)json_bytes, json != NULL ? json : "");
}

/* One whole frame from the server. */
static void answer_check(const struct rill_wire_header *h, const uint8_t *body)
{
	if (trace)
		answer_trace(h, body);
	if (out.fatal)
		fuzz_fail("%s after a fatal ERROR", rill_wire_type_name(h->type));
	out.frames++;
	if (out.frames == 1 && h->type != RILL_WIRE_HELLO_OK && h->type != RILL_WIRE_ERROR)
		fuzz_fail("the first frame is %s, not HELLO_OK", rill_wire_type_name(h->type));
	int rc = 0;
	switch (h->type) {
	case RILL_WIRE_HELLO_OK: {
		(void)answers(h, 1u << RILL_WIRE_HELLO);
		struct rill_wire_hello_ok ok;
		rc = rill_wire_hello_ok_decode(body, h->body_bytes, &ok);
		if (rc != 0 || out.frames != 1 || ok.version != RILL_WIRE_VERSION ||
		    ok.shards != SERVER_FUZZ_SHARDS ||
		    ok.frame_bytes_max != SERVER_FUZZ_FRAME_BYTES ||
		    ok.inflight_bytes_max != SERVER_FUZZ_CONN_INFLIGHT)
			fuzz_fail("HELLO_OK as frame %u: %d, version %u, %u shards, frames of %u, "
				  "%u in flight",
				  out.frames, rc, ok.version, ok.shards, ok.frame_bytes_max,
				  ok.inflight_bytes_max);
		out.hello_ok = true;
		return;
	}
	case RILL_WIRE_ACK:
		ack_check(h, body);
		return;
	case RILL_WIRE_SUBSCRIBED:
		subscribed_check(h, body);
		return;
	case RILL_WIRE_EVENTS:
		events_check(h, body);
		return;
	case RILL_WIRE_RESULT: {
		(void)answers(h, 1u << RILL_WIRE_QUERY);
		struct rill_projection_value v;
		rc = rill_wire_result_decode(body, h->body_bytes, &v);
		break;
	}
	case RILL_WIRE_ADMIN_OK:
		admin_ok_check(h, body);
		return;
	case RILL_WIRE_ERROR:
		error_check(h, body);
		return;
	case RILL_WIRE_PONG:
		(void)answers(h, 1u << RILL_WIRE_PING);
		rc = rill_wire_empty_decode(h->body_bytes);
		out.pong |= h->request_id == FUZZ_SYNC_ID;
		break;
	default:
		fuzz_fail("the server sent %s, a client's frame", rill_wire_type_name(h->type));
	}
	if (rc != 0)
		fuzz_fail("%s: %s", rill_wire_type_name(h->type), rill_strerror(rc));
}

/* Check the whole frames received; keep a partial one at the start of the buffer. */
static void out_parse(void)
{
	uint32_t at = 0;
	while (out.len - at >= RILL_WIRE_HEADER_BYTES) {
		struct rill_wire_header h;
		int rc = rill_wire_header_decode(out.buf + at, out.len - at,
						 SERVER_FUZZ_FRAME_BYTES, &h);
		if (rc != 0)
			fuzz_fail("a bad frame header from the server: %s", rill_strerror(rc));
		uint32_t frame = RILL_WIRE_HEADER_BYTES + h.body_bytes;
		if (out.len - at < frame)
			break;
		answer_check(&h, out.buf + at + RILL_WIRE_HEADER_BYTES);
		at += frame;
	}
	memmove(out.buf, out.buf + at, out.len - at);
	out.len -= at;
}

/* ---- The connection ------------------------------------------------------------------ */

/* How a connection ended. */
enum fuzz_end {
	FUZZ_OPEN = 0,
	FUZZ_EOF = 1,   /* the server closed it */
	FUZZ_RESET = 2, /* reset: what was not sent yet may be lost */
};

static int conn_open(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		fuzz_fail("socket: %s", strerror(errno));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* each send leaves as cut */
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(env.port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS &&
	    errno != EINTR)
		fuzz_fail("connect to 127.0.0.1:%u: %s", env.port, strerror(errno));
	return fd; /* the first POLLOUT says it is connected */
}

/* Read what is there; how the connection ended, if it did. */
static enum fuzz_end conn_read(int fd)
{
	for (;;) {
		if (out.len == sizeof(out.buf))
			fuzz_fail(
				"a frame larger than the server's limit"); /* out_parse takes it */
		ssize_t n = recv(fd, out.buf + out.len, sizeof(out.buf) - out.len, 0);
		if (n > 0) {
			if (out.fatal)
				fuzz_fail("%zd bytes after a fatal ERROR", n);
			out.len += (uint32_t)n;
			out.bytes += (uint64_t)n;
			out_parse();
		} else if (n == 0) {
			return FUZZ_EOF;
		} else if (errno == ECONNRESET || errno == EPIPE) {
			return FUZZ_RESET;
		} else if (errno == EAGAIN) {
			return FUZZ_OPEN;
		} else if (errno != EINTR) {
			fuzz_fail("recv: %s", strerror(errno));
		}
	}
}

/* Send up to the next cut; false once everything went (or the server closed). */
static bool conn_send(int fd, uint32_t *sent, uint32_t *cut)
{
	while (*sent < in.len) {
		while (in.cuts[*cut] <= *sent)
			(*cut)++;
		ssize_t n = send(fd, in.bytes + *sent, in.cuts[*cut] - *sent, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return false; /* closed: what is left is not read */
		if (n <= 0)
			fuzz_fail("send: %s", n < 0 ? strerror(errno) : "nothing sent");
		*sent += (uint32_t)n;
		if (*sent == in.cuts[*cut])
			return *sent < in.len; /* the next piece in a send of its own */
	}
	return false;
}

/* Reset the connection: the server learns of it with requests perhaps in flight. */
static void conn_reset(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	resets++;
}

static const char *conn_stage(bool sending, bool shut)
{
	return sending ? "taking the input" : !shut ? "answering the PING" : "closing";
}

/* Send the stream, read everything back, half-close (or reset) and read to the end. */
static void conn_run(void)
{
	int fd = conn_open();
	uint64_t deadline = rill_clock_now_ns() + FUZZ_STALL_NS;
	uint32_t sent = 0, cut = 0;
	bool sending = true, shut = false;
	enum fuzz_end end = FUZZ_OPEN;
	while (end == FUZZ_OPEN) {
		if (!sending && !shut && (!in.sync || out.pong || out.fatal)) {
			if (in.flags & SERVER_FUZZ_RESET) {
				conn_reset(fd);
				return;
			}
			shutdown(fd, SHUT_WR); /* the end of the stream (fails if reset: fine) */
			shut = true;
		}
		uint64_t now = rill_clock_now_ns();
		if (now >= deadline)
			fuzz_fail("the server hangs: no byte moved for %llu ms, the connection "
				  "open, %s",
				  (unsigned long long)(FUZZ_STALL_NS / 1000000u),
				  conn_stage(sending, shut));
		struct pollfd p = {.fd = fd, .events = (short)(POLLIN | (sending ? POLLOUT : 0))};
		int n = poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
		if (n < 0 && errno != EINTR)
			fuzz_fail("poll: %s", strerror(errno));
		if (n <= 0)
			continue;
		uint64_t moved = sent + out.bytes;
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			end = conn_read(fd);
		if (end == FUZZ_OPEN && sending && (p.revents & POLLOUT))
			sending = conn_send(fd, &sent, &cut);
		if (end == FUZZ_OPEN && (p.revents & POLLERR) && !(p.revents & POLLIN))
			end = FUZZ_RESET;
		if (sent + out.bytes != moved)
			deadline = rill_clock_now_ns() + FUZZ_STALL_NS;
	}
	close(fd);
	if (end == FUZZ_RESET) {
		resets++;
		return; /* what was still to come may be lost with the reset */
	}
	if (out.len != 0)
		fuzz_fail("the connection closed inside a frame (%u bytes of it)", out.len);
	if (!shut && !out.fatal)
		fuzz_fail("the server closed the connection, %s, with no fatal ERROR",
			  conn_stage(sending, shut));
	if ((in.flags & SERVER_FUZZ_HELLO) && !out.hello_ok)
		fuzz_fail("the HELLO sent first got no HELLO_OK");
	fatals += out.fatal;
	eofs_clean += !out.fatal;
}

/* The engine's shards appended no more events than the PRODUCE frames that decode held. */
static void appended_check(void)
{
	uint64_t appended = 0;
	for (uint32_t i = 0; i < SERVER_FUZZ_SHARDS; i++) {
		struct rill_shard_stats st;
		int rc = rill_engine_shard_stats(env.engine, i, &st);
		if (rc != 0)
			fuzz_fail("shard %u stats: %s", i, rill_strerror(rc));
		appended += st.events;
	}
	if (appended > events_sent)
		fuzz_fail("the shards appended %llu events; PRODUCE frames that decode held %llu",
			  (unsigned long long)appended, (unsigned long long)events_sent);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < SERVER_FUZZ_INPUT_BYTES || size > FUZZ_INPUT_BYTES_MAX)
		return 0;
	inputs++;
	memset(&out, 0, offsetof(__typeof__(out), buf));
	stream_build(data, size);
	stream_scan();
	sync_add();
	reqs_merge();
	cuts_make(data[1]);
	events_sent += in.events; /* before sending: the shards may append them at once */
	conn_run();
	appended_check();
	return 0;
}
