/*
 * `rill produce`: JSON lines on stdin to events on a server, one JSON line out per event in
 * input order. Lines already waiting on stdin are batched into one PRODUCE request (up to
 * --batch events or a frame), several requests are kept in flight, and the answers, which
 * may come out of order, are printed in input order as they complete. Main thread;
 * blocking; allocates at start, and when it fetches the server's schemas again (see
 * line_schema).
 *
 * The requests sent and not yet printed sit in a ring of slots, oldest at ring_head; the
 * batch being filled is the slot just after them:
 *
 *    ring_head            ring_head + ring_count (the batch being filled)
 *    v                    v
 *    [sent][sent][answered][building][free]...      ring_count <= inflight
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/assert.h"
#include "base/clock.h"
#include "cli.h"
#include "io/wire.h"
#include "rill/client.h"
#include "rill/schema.h"

#define PRODUCE_BATCH_DEFAULT   256u
#define PRODUCE_BATCH_MAX       65535u                        /* events in one PRODUCE */
#define PRODUCE_INFLIGHT        16u                           /* requests in flight */
#define PRODUCE_LINE_BYTES_MAX  (4u * RILL_PAYLOAD_BYTES_MAX) /* one input line */
#define PRODUCE_WHY_BYTES       1024u
#define PRODUCE_INPUT_BYTES_MIN (64u << 10)
#define PRODUCE_ACK_TIMEOUT_NS  (60ull * 1000000000u) /* then the server counts as lost */
/* A line without "version" takes the latest of a list at most this old: fetched again. */
#define PRODUCE_SCHEMAS_FRESH_NS (1000ull * 1000000u)

#define PRODUCE_USAGE                                                                              \
	"usage: rill produce [--connect HOST:PORT] --topic T [--acks none|applied|durable] "       \
	"[--batch N]\n"                                                                            \
	"  stdin: one JSON object a line: {\"key\":\"...\",\"type\":\"TypeName\",\"version\":V?,"  \
	"\"data\":{...},\"correlation_id\":N?,\"causation_id\":N?,\"timestamp_ns\":N?}\n"          \
	"  stdout: {\"key\",\"partition\",\"offset\"} per event in input order "                   \
	"(\"duplicate\":true "                                                                     \
	"for a retry; {\"key\",\"accepted\":true} with --acks none).\n"                            \
	"  A refused event is reported on stderr with its line and produce goes on; a malformed "  \
	"line\n  or a refused request stops the input there (what came before is still sent). "    \
	"Exit 1 if any."

/* stdin, read by hand so that we know whether a whole line is waiting. */
struct input {
	char *buf;
	size_t cap, head, tail; /* bytes: unread data is [head, tail) */
	bool eof;
};

/* One PRODUCE request's events, by input line. */
struct slot {
	uint64_t request_id;
	uint32_t count;
	bool answered;
	int error; /* the whole request's, 0 when it was acknowledged */
	char message[RILL_CLIENT_ERROR_BYTES];
	unsigned long *lines;         /* input line numbers */
	json_t **keys;                /* the keys as given, for the output */
	struct rill_client_ack *acks; /* swapped in from producer.acks when it is answered */
};

struct producer {
	struct rill_client *c;
	const char *address, *topic;
	uint32_t batch_max;
	uint32_t budget_bytes; /* record bytes one frame takes after the PRODUCE fixed part */
	struct cli_schemas *schemas;
	uint64_t schemas_ns; /* when they were fetched (rill_clock_now_ns) */
	struct slot ring[PRODUCE_INFLIGHT + 1];
	uint32_t ring_head, ring_count;
	struct rill_record *events; /* the batch being filled: batch_max of them */
	uint8_t *arena;             /* its keys and payloads: budget_bytes */
	uint32_t arena_used, frame_used;
	uint8_t *payload;             /* one payload being encoded */
	struct rill_client_ack *acks; /* the next answer goes here */
	int acks_level;               /* 0 none, 1 applied, 2 durable */
	bool stop;                    /* no more input: a bad line, or a refused request */
	bool out_failed;              /* writing stdout failed (said once) */
	int status;                   /* the exit status */
	uint64_t busy_ns; /* the connection's last request or answer: pinged when idle since */
};

/* ---- Input ---------------------------------------------------------------------------- */

/*
 * The next line into @line/@len (NUL-terminated in place, without its newline): 1, 0 when
 * no whole line is waiting (with @block false) or at the end, -EMSGSIZE for a line over
 * the limit, -errno for a read error.
 */
static int input_line(struct input *in, char **line, size_t *len, bool block)
{
	for (;;) {
		char *nl = memchr(in->buf + in->head, '\n', in->tail - in->head);
		if (nl != NULL || (in->eof && in->tail > in->head)) {
			size_t end = nl != NULL ? (size_t)(nl - in->buf) : in->tail;
			*line = in->buf + in->head;
			*len = end - in->head;
			in->buf[end] = '\0'; /* the newline, or the spare byte past tail */
			in->head = nl != NULL ? end + 1 : end;
			return 1;
		}
		if (in->eof)
			return 0;
		memmove(in->buf, in->buf + in->head, in->tail - in->head);
		in->tail -= in->head;
		in->head = 0;
		if (in->tail == in->cap - 1) { /* room for the NUL always */
			if (in->cap > PRODUCE_LINE_BYTES_MAX)
				return -EMSGSIZE;
			char *grown = realloc(in->buf, in->cap * 2);
			if (grown == NULL)
				return -ENOMEM;
			in->buf = grown;
			in->cap *= 2;
		}
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		if (!block && poll(&p, 1, 0) == 0)
			return 0;
		ssize_t n = read(STDIN_FILENO, in->buf + in->tail, in->cap - 1 - in->tail);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n == 0)
			in->eof = true;
		if (n > 0)
			in->tail += (size_t)n;
	}
}

/* ---- One line to one event ------------------------------------------------------------ */

/* An optional u64 member: an integer, or decimal digits in a string. 0 or -EINVAL. */
static int member_u64(json_t *o, const char *name, uint64_t *out, char *why)
{
	json_t *v = json_object_get(o, name);
	*out = 0;
	if (v == NULL)
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	/* The line may hold \u0000 (JSON_ALLOW_NUL): "5\u0000junk" is not 5. */
	if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v) &&
	    cli_parse_u64(json_string_value(v), out) == 0)
		return 0;
	snprintf(why, PRODUCE_WHY_BYTES,
		 "\"%s\" must be an unsigned integer, or a string of its decimal digits", name);
	return -EINVAL;
}

static const char *const line_keys[] = {
	"key", "type", "version", "data", "correlation_id", "causation_id", "timestamp_ns"};

static int check_members(json_t *o, char *why)
{
	const char *name;
	json_t *v;
	json_object_foreach(o, name, v)
	{
		bool known = false;
		for (size_t i = 0; i < sizeof(line_keys) / sizeof(line_keys[0]); i++)
			known = known || strcmp(name, line_keys[i]) == 0;
		if (!known) {
			snprintf(why, PRODUCE_WHY_BYTES,
				 "unknown member \"%.64s\" (key, type, version, data, "
				 "correlation_id, causation_id, timestamp_ns)",
				 name);
			return -EINVAL;
		}
	}
	return 0;
}

static const struct rill_schema *line_schema(struct producer *p, json_t *o, struct rill_record *rec,
					     char *why);

/* The line's data encoded into p->payload; its size into @bytes. 0 or an error. */
static int line_payload(struct producer *p, json_t *o, const struct rill_schema *s, uint32_t *bytes,
			char *why)
{
	json_t *data = json_object_get(o, "data");
	if (data != NULL && !json_is_object(data)) {
		snprintf(why, PRODUCE_WHY_BYTES, "\"data\" must be an object");
		return -EINVAL;
	}
	char *text = data != NULL ? json_dumps(data, JSON_COMPACT) : strdup("{}");
	if (text == NULL) {
		snprintf(why, PRODUCE_WHY_BYTES, "out of memory");
		return -ENOMEM;
	}
	struct rill_schema_error err = {{0}};
	int rc = rill_schema_json_encode(s, text, strlen(text), p->payload, RILL_PAYLOAD_BYTES_MAX,
					 bytes, &err);
	free(text);
	if (rc != 0)
		snprintf(why, PRODUCE_WHY_BYTES, "%s",
			 err.message[0] ? err.message : rill_strerror(rc));
	return rc;
}

/*
 * Parse line @text into @rec (key and payload still in p->payload and @key), checking all
 * but room. 0 or an error with @why.
 */
static int line_parse(struct producer *p, json_t *o, struct rill_record *rec, uint32_t *bytes,
		      char *why)
{
	if (!json_is_object(o)) {
		snprintf(why, PRODUCE_WHY_BYTES, "not a JSON object");
		return -EINVAL;
	}
	json_t *key = json_object_get(o, "key");
	int rc = check_members(o, why);
	if (rc != 0)
		return rc;
	if (!json_is_string(key) || json_string_length(key) > RILL_KEY_BYTES_MAX) {
		snprintf(why, PRODUCE_WHY_BYTES, "\"key\" must be a string of at most %u bytes",
			 RILL_KEY_BYTES_MAX);
		return -EINVAL;
	}
	memset(rec, 0, sizeof(*rec));
	rec->key = json_string_value(key);
	rec->key_bytes = (uint16_t)json_string_length(key);
	if (member_u64(o, "correlation_id", &rec->correlation_id, why) != 0 ||
	    member_u64(o, "causation_id", &rec->causation_id, why) != 0 ||
	    member_u64(o, "timestamp_ns", &rec->timestamp_ns, why) != 0)
		return -EINVAL;
	const struct rill_schema *s = line_schema(p, o, rec, why);
	if (s == NULL)
		return -ENOENT;
	rc = line_payload(p, o, s, &rec->payload_bytes, why);
	if (rc != 0)
		return rc;
	*bytes = rill_record_bytes(rec->key_bytes, rec->payload_bytes);
	if (*bytes > p->budget_bytes) {
		snprintf(why, PRODUCE_WHY_BYTES,
			 "the event takes %u bytes, over the %u a frame has", *bytes,
			 p->budget_bytes);
		return -EMSGSIZE;
	}
	return 0;
}

/* ---- Requests and answers ------------------------------------------------------------- */

static struct slot *building(struct producer *p)
{
	return &p->ring[(p->ring_head + p->ring_count) % (PRODUCE_INFLIGHT + 1)];
}

static void print_event(struct producer *p, const struct slot *s, uint32_t i)
{
	const struct rill_client_ack *a = &s->acks[i];
	if (s->error != 0 || a->error != 0) {
		const char *why = s->error != 0 ? s->message : rill_strerror(a->error);
		/* After the lines before it, when stdout and stderr go to the same place. */
		fflush(stdout);
		fprintf(stderr, "rill: produce: line %lu: refused: %s%s%s\n", s->lines[i], why,
			s->error == 0 && a->reason[0] ? ": " : "", s->error == 0 ? a->reason : "");
		p->status = 1;
		return;
	}
	json_t *o = json_object();
	json_object_set(o, "key", s->keys[i]);
	if (p->acks_level == 0) {
		json_object_set_new(o, "accepted", json_true());
	} else {
		json_object_set_new(o, "partition", json_integer(a->partition));
		json_object_set_new(o, "offset", cli_json_u64(a->offset));
		if (a->duplicate)
			json_object_set_new(o, "duplicate", json_true());
	}
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (line != NULL)
		puts(line);
	free(line);
	json_decref(o);
}

/* Print the answered requests at the head of the ring, in order, and free their slots. */
static void print_ready(struct producer *p)
{
	while (p->ring_count > 0 && p->ring[p->ring_head].answered) {
		struct slot *s = &p->ring[p->ring_head];
		for (uint32_t i = 0; i < s->count; i++) {
			print_event(p, s, i);
			json_decref(s->keys[i]);
		}
		s->count = 0;
		s->answered = false;
		p->ring_head = (p->ring_head + 1) % (PRODUCE_INFLIGHT + 1);
		p->ring_count--;
	}
	/* An acknowledgement that cannot be written out is as good as lost to the caller: a
	 * full disk or a closed pipe ends the run with status 1. */
	if (!p->out_failed && (fflush(stdout) != 0 || ferror(stdout))) {
		fprintf(stderr, "rill: produce: writing the acknowledgements out failed: %s\n",
			strerror(errno));
		p->out_failed = true;
		p->status = 1;
		p->stop = true;
	}
}

static struct slot *slot_of(struct producer *p, uint64_t id)
{
	for (uint32_t i = 0; i < p->ring_count; i++) {
		struct slot *s = &p->ring[(p->ring_head + i) % (PRODUCE_INFLIGHT + 1)];
		if (s->request_id == id && !s->answered)
			return s;
	}
	return NULL;
}

/* The connection is gone: every request still waiting fails with @err's message. */
static void fail_waiting(struct producer *p, int rc, const struct rill_client_error *err)
{
	for (uint32_t i = 0; i < p->ring_count; i++) {
		struct slot *s = &p->ring[(p->ring_head + i) % (PRODUCE_INFLIGHT + 1)];
		if (s->answered)
			continue;
		s->answered = true;
		s->error = rc;
		snprintf(s->message, sizeof(s->message), "%.200s: %.780s (the outcome is unknown)",
			 p->address, err->message[0] ? err->message : rill_strerror(rc));
	}
	p->stop = true;
}

/* Requests sent and not answered: the client's in-flight count while it is connected. */
static uint32_t unanswered(const struct producer *p)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < p->ring_count; i++)
		n += !p->ring[(p->ring_head + i) % (PRODUCE_INFLIGHT + 1)].answered;
	return n;
}

/*
 * Collect one answer; with @wait, up to PRODUCE_ACK_TIMEOUT_NS (then the connection counts
 * as lost), else only one already here. 0, -ETIMEDOUT (nothing yet, without @wait), or the
 * connection's error (every request waiting is then failed and printed).
 */
static int collect(struct producer *p, bool wait)
{
	uint64_t id = 0;
	uint32_t count = 0;
	struct rill_client_error err = {{0}};
	/* Checked here: -ENOENT from the wait may also be a request's own error. */
	if (rill_client_inflight(p->c) == 0)
		return -ENOENT;
	int rc = rill_client_produce_wait(p->c, &id, p->acks, p->batch_max, &count,
					  wait ? PRODUCE_ACK_TIMEOUT_NS : 0, &err);
	if (rc == -ETIMEDOUT && !wait)
		return rc;
	p->busy_ns = rill_clock_now_ns();
	struct slot *s = id != 0 ? slot_of(p, id) : NULL;
	if (s != NULL) {
		s->answered = true;
		s->error = rc;
		if (rc != 0) {
			snprintf(s->message, sizeof(s->message), "%s", err.message);
			p->stop = true; /* a refused request: the next would fare no better */
		} else {                /* swap the answer in: the slot's array is the next spare */
			struct rill_client_ack *spare = s->acks;
			s->acks = p->acks;
			p->acks = spare;
		}
	}
	/* An error that closed the connection leaves the other requests without answers. */
	if (s == NULL || unanswered(p) != rill_client_inflight(p->c)) {
		if (rc == -ETIMEDOUT)
			snprintf(err.message, sizeof(err.message), "no answer in %llu s",
				 (unsigned long long)(PRODUCE_ACK_TIMEOUT_NS / 1000000000u));
		fail_waiting(p, rc != 0 ? rc : -ENOTCONN, &err);
		print_ready(p);
		return rc != 0 && rc != -ETIMEDOUT ? rc : -ECONNABORTED;
	}
	print_ready(p);
	return 0;
}

/*
 * Fetch the server's schemas again. An ADMIN call needs a connection with nothing in
 * flight: the requests sent are answered (and printed) first, and the batch being filled
 * waits for the next send. 0, or the error (said on stderr, or as the requests' outcome).
 */
static int schemas_refresh(struct producer *p)
{
	int rc = 0;
	while (rc == 0 && rill_client_inflight(p->c) > 0)
		rc = collect(p, true);
	if (rc != 0)
		return rc;
	/* Idle a while: the server's idle timeout may have closed the connection. */
	if (rill_clock_now_ns() - p->busy_ns >= CLI_IDLE_PING_NS &&
	    (rc = cli_client_revive("produce", p->address, PRODUCE_INFLIGHT, &p->c)) != 0)
		return rc;
	rc = cli_schemas_refetch("produce", p->address, p->c, &p->schemas);
	p->busy_ns = rill_clock_now_ns();
	if (rc == 0)
		p->schemas_ns = p->busy_ns;
	return rc;
}

/*
 * The schema a line names ("type", "version"), with its type id into @rec. The schemas
 * are fetched again for a type or version they lack, which may have been registered since
 * (only once: a line still refused then stops the input, so a run of unknown types cannot
 * fetch for each), and for a line without "version" when they are over
 * PRODUCE_SCHEMAS_FRESH_NS old, so that it takes a latest version registered since.
 */
static const struct rill_schema *line_schema(struct producer *p, json_t *o, struct rill_record *rec,
					     char *why)
{
	json_t *type = json_object_get(o, "type"), *version = json_object_get(o, "version");
	/* A NUL inside would cut the name short: "Order\u0000x" must not find Order. */
	if (!json_is_string(type) || strlen(json_string_value(type)) != json_string_length(type)) {
		snprintf(why, PRODUCE_WHY_BYTES, "\"type\" must be a type name");
		return NULL;
	}
	json_int_t v =
		version != NULL && json_is_integer(version) ? json_integer_value(version) : 0;
	if (version != NULL && (v < 1 || v > 0xffff)) {
		snprintf(why, PRODUCE_WHY_BYTES, "\"version\" must be an integer from 1 to 65535");
		return NULL;
	}
	const char *name = json_string_value(type);
	bool stale = v == 0 && rill_clock_now_ns() - p->schemas_ns >= PRODUCE_SCHEMAS_FRESH_NS;
	const struct rill_schema *s =
		stale ? NULL : cli_schemas_find(p->schemas, name, (uint16_t)v, &rec->type_id);
	if (s == NULL) {
		int rc = schemas_refresh(p);
		if (rc != 0) {
			snprintf(why, PRODUCE_WHY_BYTES,
				 "not sent: the server's schemas could not be fetched again (%s)",
				 rill_strerror(rc));
			return NULL;
		}
		s = cli_schemas_find(p->schemas, name, (uint16_t)v, &rec->type_id);
	}
	if (s != NULL) {
		rec->schema_version = rill_schema_version(s);
		return s;
	}
	/* Written as an older version, the event would not be what the line meant. */
	uint16_t big = cli_schemas_too_large(p->schemas, name, (uint16_t)v);
	if (big != 0 && v == 0)
		snprintf(why, PRODUCE_WHY_BYTES,
			 "the latest version of type '%.128s', v%u, is too large for this server's "
			 "frames (frame_bytes_max): its events cannot be encoded here (give "
			 "\"version\" for an older one)",
			 name, big);
	else if (big != 0)
		snprintf(why, PRODUCE_WHY_BYTES,
			 "version %u of type '%.128s' is too large for this server's frames "
			 "(frame_bytes_max): its events cannot be encoded here",
			 big, name);
	else if (v == 0)
		snprintf(why, PRODUCE_WHY_BYTES, "the server has no schema for type '%.128s'",
			 name);
	else
		snprintf(why, PRODUCE_WHY_BYTES, "the server has no version %d of type '%.128s'",
			 (int)v, name);
	return NULL;
}

/* Send the batch being filled, first making room in the ring. 0 or a connection error. */
static int send_batch(struct producer *p)
{
	struct slot *s = building(p);
	if (s->count == 0)
		return 0;
	while (p->ring_count >= PRODUCE_INFLIGHT) {
		int rc = collect(p, true);
		if (rc != 0)
			return rc;
	}
	s = building(p); /* the same slot: collecting only frees older ones */
	struct rill_client_error err = {{0}};
	int rc = 0;
	/* Idle a while (input came slowly): the server's idle timeout may have closed the
	 * connection; with nothing in flight, a new one loses nothing. */
	if (rill_client_inflight(p->c) == 0 &&
	    rill_clock_now_ns() - p->busy_ns >= CLI_IDLE_PING_NS &&
	    (rc = cli_client_revive("produce", p->address, PRODUCE_INFLIGHT, &p->c)) != 0)
		snprintf(err.message, sizeof(err.message), "cannot connect again");
	/* Past the bytes the server holds for a connection: an answer first, which frees
	 * room (the client says -EAGAIN; one request always goes). */
	while (rc == 0 &&
	       (rc = rill_client_produce_send(p->c, p->topic, p->events, s->count, p->acks_level,
					      &s->request_id, &err)) == -EAGAIN &&
	       rill_client_inflight(p->c) > 0) {
		rc = collect(p, true);
		if (rc != 0) /* err still says why it waited, not why this batch never went */
			snprintf(err.message, sizeof(err.message),
				 "not sent: the connection failed while waiting for room (%s)",
				 rill_strerror(rc));
	}
	p->busy_ns = rill_clock_now_ns();
	if (rc == -EPIPE || rc == -ECONNRESET || rc == -ECONNABORTED || rc == -ETIMEDOUT) {
		/* The server closed (or stopped answering: the client's keepalive; or stopped
		 * reading past the client's timeout, when the client shuts its side) while this
		 * frame went out: it never went whole, so none of its events can have been
		 * written. The requests before it may have been answered already (the client
		 * reads while a send waits, and keeps those answers): collect them to the end
		 * of the stream, which fails only the ones left unanswered. */
		s->answered = true;
		s->error = rc;
		snprintf(s->message, sizeof(s->message), "%.200s: not sent: %s", p->address,
			 rc == -ECONNABORTED ? "the server stopped answering"
			 : rc == -ETIMEDOUT  ? "the server did not read it in time"
					     : "the server closed the connection");
		p->ring_count++;
		while (rill_client_inflight(p->c) > 0 && collect(p, true) == 0)
			;
		fail_waiting(p, rc, &err); /* stops the input (nothing is left unanswered) */
		print_ready(p);
		return rc;
	}
	if (rc != 0) {
		s->answered = true;
		s->error = rc;
		snprintf(s->message, sizeof(s->message), "%.200s: %.800s", p->address, err.message);
		p->ring_count++;
		fail_waiting(p, rc, &err);
		print_ready(p);
		return rc;
	}
	p->ring_count++;
	p->arena_used = 0;
	p->frame_used = 0;
	return 0;
}

/*
 * Add line @number to the batch, sending the batch first when the event would not fit. A
 * bad line is reported and stops the input; so does a lost connection.
 */
static void add_line(struct producer *p, char *text, size_t len, unsigned long number)
{
	char why[PRODUCE_WHY_BYTES] = "";
	json_error_t jerr;
	/* As strict as rill_schema_json_encode (a member given twice is an error) and as
	 * lenient as what consume prints (a string may hold \u0000). */
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	struct rill_record rec;
	uint32_t bytes = 0;
	int rc = o == NULL ? -EINVAL : line_parse(p, o, &rec, &bytes, why);
	if (o == NULL)
		snprintf(why, sizeof(why), "not JSON: %s (column %d)", jerr.text, jerr.column);
	if (rc != 0) {
		fprintf(stderr, "rill: produce: line %lu: %s\n", number, why);
		p->status = 1;
		p->stop = true;
		json_decref(o);
		return;
	}
	if (p->frame_used + bytes > p->budget_bytes && send_batch(p) != 0) {
		json_decref(o);
		return;
	}
	struct slot *s = building(p);
	RILL_ASSERT(s->count < p->batch_max);
	memcpy(p->arena + p->arena_used, rec.key, rec.key_bytes);
	rec.key = p->arena + p->arena_used;
	memcpy(p->arena + p->arena_used + rec.key_bytes, p->payload, rec.payload_bytes);
	rec.payload = p->arena + p->arena_used + rec.key_bytes;
	p->arena_used += rec.key_bytes + rec.payload_bytes;
	p->frame_used += bytes;
	p->events[s->count] = rec;
	s->lines[s->count] = number;
	s->keys[s->count] = json_incref(json_object_get(o, "key"));
	s->count++;
	json_decref(o);
}

/* ---- The loop ------------------------------------------------------------------------- */

/* Read one line if one is waiting (or, with @block, until one comes); false when none. */
static bool read_one(struct producer *p, struct input *in, unsigned long *number, bool block)
{
	char *line = NULL;
	size_t len = 0;
	int got = input_line(in, &line, &len, block);
	if (got == 0)
		return false;
	++*number;
	if (got < 0) {
		fprintf(stderr, "rill: produce: line %lu: %s\n", *number,
			got == -EMSGSIZE ? "longer than a line may be" : rill_strerror(got));
		p->status = 1;
		p->stop = true;
		return false;
	}
	while (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	size_t blank = strspn(line, " \t\r"); /* JSON's whitespace (a line has no \n) */
	if (blank < len)
		add_line(p, line, len, *number);
	return true;
}

static int run(struct producer *p)
{
	struct input in = {.cap = PRODUCE_INPUT_BYTES_MIN};
	in.buf = malloc(in.cap);
	if (in.buf == NULL)
		return -ENOMEM;
	unsigned long number = 0;
	int rc = 0;
	while (rc == 0 || rc == -ETIMEDOUT) {
		rc = 0;
		while (rc == 0 && rill_client_inflight(p->c) > 0)
			rc = collect(p, false); /* the answers already here */
		if (rc != 0 && rc != -ETIMEDOUT)
			break;
		/* Block on stdin only with nothing else to do; else take what is waiting. */
		while (!p->stop && building(p)->count < p->batch_max &&
		       read_one(p, &in, &number,
				building(p)->count == 0 && rill_client_inflight(p->c) == 0))
			;
		if (building(p)->count > 0)
			rc = send_batch(p);
		else if (rill_client_inflight(p->c) > 0)
			rc = collect(p, true);
		else if (p->stop || in.eof)
			break;
	}
	free(in.buf);
	return rc == -ETIMEDOUT ? 0 : rc;
}

/* ---- The command ---------------------------------------------------------------------- */

static int parse_args(int argc, char **argv, struct producer *p)
{
	const char *acks = "applied", *batch = NULL;
	p->address = CLI_CONNECT_DEFAULT;
	if (cli_help(argc, argv, PRODUCE_USAGE))
		return -1;
	for (int i = 0; i < argc; i++) {
		if (!cli_opt(argc, argv, &i, "--connect", &p->address) &&
		    !cli_opt(argc, argv, &i, "--topic", &p->topic) &&
		    !cli_opt(argc, argv, &i, "--acks", &acks) &&
		    !cli_opt(argc, argv, &i, "--batch", &batch))
			return cli_usage_error("produce", PRODUCE_USAGE);
	}
	if (p->topic == NULL)
		return cli_usage_error("produce", "needs --topic");
	p->acks_level = strcmp(acks, "none") == 0      ? 0
			: strcmp(acks, "applied") == 0 ? 1
			: strcmp(acks, "durable") == 0 ? 2
						       : -1;
	if (p->acks_level < 0)
		return cli_usage_error("produce", "--acks takes none, applied or durable");
	uint64_t n = PRODUCE_BATCH_DEFAULT;
	if (batch != NULL && (cli_parse_u64(batch, &n) != 0 || n == 0 || n > PRODUCE_BATCH_MAX))
		return cli_usage_error("produce", "--batch takes 1 to 65535");
	p->batch_max = (uint32_t)n;
	return 0;
}

static int allocate(struct producer *p)
{
	p->events = calloc(p->batch_max, sizeof(*p->events));
	p->arena = malloc(p->budget_bytes);
	p->payload = malloc(RILL_PAYLOAD_BYTES_MAX);
	p->acks = calloc(p->batch_max, sizeof(*p->acks));
	if (p->events == NULL || p->arena == NULL || p->payload == NULL || p->acks == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i <= PRODUCE_INFLIGHT; i++) {
		struct slot *s = &p->ring[i];
		s->lines = calloc(p->batch_max, sizeof(*s->lines));
		s->keys = calloc(p->batch_max, sizeof(*s->keys));
		s->acks = calloc(p->batch_max, sizeof(*s->acks));
		if (s->lines == NULL || s->keys == NULL || s->acks == NULL)
			return -ENOMEM;
	}
	return 0;
}

static void release(struct producer *p)
{
	for (uint32_t i = 0; i <= PRODUCE_INFLIGHT; i++) {
		struct slot *s = &p->ring[i];
		for (uint32_t k = 0; k < s->count; k++)
			json_decref(s->keys[k]);
		free(s->lines);
		free(s->keys);
		free(s->acks);
	}
	free(p->events);
	free(p->arena);
	free(p->payload);
	free(p->acks);
	cli_schemas_free(p->schemas);
	rill_client_close(p->c);
}

int cli_produce(int argc, char **argv)
{
	struct producer p = {0};
	int status = parse_args(argc, argv, &p);
	if (status != 0)
		return status < 0 ? 0 : status; /* -1: --help */
	if (strlen(p.topic) == 0 || strlen(p.topic) > RILL_WIRE_TOPIC_BYTES_MAX)
		return cli_usage_error("produce", "--topic takes a name of 1 to 128 bytes");
	/* A closed pipe on stdout (`| head`) is a write error print_ready says, ending with
	 * status 1 once the requests in flight are answered, not a death by SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (cli_connect("produce", p.address, PRODUCE_INFLIGHT, &p.c) != 0)
		return 1;
	/* After the PRODUCE fixed part and the topic, the frame is the events'. */
	p.budget_bytes = rill_client_frame_bytes_max(p.c) - RILL_WIRE_PRODUCE_BYTES_MIN -
			 (uint32_t)strlen(p.topic);
	int rc = cli_schemas_fetch("produce", p.address, p.c, &p.schemas);
	p.busy_ns = rill_clock_now_ns();
	p.schemas_ns = p.busy_ns;
	if (rc == 0 && (rc = allocate(&p)) != 0)
		fprintf(stderr, "rill: produce: out of memory\n");
	if (rc == 0)
		rc = run(&p);
	status = rc != 0 ? 1 : p.status;
	release(&p);
	return status;
}
