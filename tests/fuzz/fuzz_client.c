/*
 * libFuzzer target for the C client (io/client.c) against a hostile server: what lies past
 * the frame decoders that fuzz_wire covers, namely the handshake, late answers to abandoned
 * requests, the early queue of frames read while a send waited, the stash of events that
 * come while a SUBSCRIBE waits, ACK reading, events iteration, corking and a server that
 * hangs up. The client is included whole and connects with rill_client_connect to one end
 * of a socketpair: socket, connect, TCP_NODELAY and name resolution are replaced below, and
 * send can be made to find the socket full once (a server that stopped reading), which is
 * the way into the early queue. The input (tests/fuzz/client_fuzz.h) is a config byte, a
 * script of 16 ops (the application's calls and the server's moves: send its next chunk,
 * block the client's next send, hang up), then the chunks the server sends.
 *
 * Asserted, beyond the sanitizers and the client's own invariants (client_check, compiled
 * in with -Ddasserts=true):
 *   - every call returns 0 (or 1 with an event, from next) or an error with a message:
 *     one the client gives itself (client.h), or the code of an ERROR frame the server
 *     sent; once an error has closed the client, every call returns -ENOTCONN and
 *     rill_client_fd -1. (The message may be empty where the server sent an ERROR whose
 *     message starts with a NUL: a known gap of server_error, left to its own fix);
 *   - produce_wait answers only requests in flight, with one acknowledgement per event
 *     sent, and rill_client_inflight counts what was sent and not answered;
 *   - events, admin answers and acknowledgements handed out are readable (AddressSanitizer
 *     sees a stale pointer);
 *   - every frame the client sends decodes, the HELLO first, new requests' ids rising,
 *     FETCH only for a subscription asked for; a frame cut short only by a closed client;
 *   - rill_client_close closes the socket and frees everything (LeakSanitizer).
 * Built with clang -fsanitize=fuzzer,address,undefined when meson's `fuzzing` option is on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- The system calls the client makes, replaced ---------------------------------------- */

static int fuzz_client_fd = -1;        /* the client's end of the socketpair */
static bool fuzz_send_blocked = false; /* the client's next send finds no room */

static int fuzz_socket(int domain, int type, int protocol)
{
	(void)domain;
	(void)type;
	(void)protocol;
	return fuzz_client_fd;
}

static int fuzz_connect(int fd, const struct sockaddr *address, socklen_t address_bytes)
{
	(void)fd;
	(void)address;
	(void)address_bytes;
	return 0; /* a socketpair is connected from birth */
}

static int fuzz_setsockopt(int fd, int level, int name, const void *value, socklen_t bytes)
{
	if (level == IPPROTO_TCP)
		return 0; /* TCP_NODELAY: a socketpair has no Nagle to turn off */
	return setsockopt(fd, level, name, value, bytes);
}

static int fuzz_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
			    struct addrinfo **out)
{
	static struct sockaddr_un address = {.sun_family = AF_UNIX};
	static struct addrinfo info = {.ai_family = AF_UNIX,
				       .ai_socktype = SOCK_STREAM,
				       .ai_addrlen = sizeof(address),
				       .ai_addr = (struct sockaddr *)&address};
	(void)node;
	(void)service;
	(void)hints;
	*out = &info;
	return 0;
}

static void fuzz_freeaddrinfo(struct addrinfo *info)
{
	(void)info; /* static */
}

static ssize_t fuzz_send(int fd, const void *buf, size_t bytes, int flags)
{
	if (fuzz_send_blocked) {
		fuzz_send_blocked = false;
		errno = EAGAIN;
		return -1;
	}
	return send(fd, buf, bytes, flags);
}

#define socket       fuzz_socket
#define connect      fuzz_connect
#define setsockopt   fuzz_setsockopt
#define getaddrinfo  fuzz_getaddrinfo
#define freeaddrinfo fuzz_freeaddrinfo
#define send         fuzz_send
#include "io/client.c"
#undef socket
#undef connect
#undef setsockopt
#undef getaddrinfo
#undef freeaddrinfo
#undef send

#include "tests/fuzz/client_fuzz.h"

/* ---- The run ----------------------------------------------------------------------------- */

/* Answers are in the socket before a call asks for them, or never come: waits are short. */
#define FUZZ_TIMEOUT_NS 50000u
#define FUZZ_INPUT_MAX  (1u << 20)
#define FUZZ_OUT_BYTES  (1u << 20) /* what the client sent, not parsed yet */
#define FUZZ_CODES_MAX  64u
#define FUZZ_EVENTS_MAX 4u
#define FUZZ_ACKS_MAX   8u
#define FUZZ_LARGE_MAX  (16u * CLIENT_FUZZ_LARGE_STEP_BYTES)

_Static_assert(FUZZ_EVENTS_MAX <= FUZZ_ACKS_MAX, "a blocking produce has room for its acks");

struct fuzz_sent {
	uint64_t id;
	uint32_t events;
	int acks;
};

struct fuzz_run {
	struct rill_client *c;
	bool closed;           /* an error closed the client: every call is -ENOTCONN from now on */
	int server_fd;         /* the server's end; -1 once it hung up */
	const uint8_t *chunks; /* the chunks not sent yet */
	size_t chunks_bytes;
	bool stalled; /* a chunk did not fit the socket: the server sends no more */
	/* The codes of the ERROR frames in the server's stream (a code that is not an error
	 * arrives as -EPROTO); the client may pass any of them on. */
	int codes[FUZZ_CODES_MAX];
	uint32_t code_count;
	bool codes_any; /* more than codes holds */
	/* PRODUCE requests sent and not answered. */
	struct fuzz_sent sent[CLIENT_FUZZ_OPS];
	uint32_t sent_count;
	/* What the client sent, as the server reads it. */
	uint8_t *out;
	size_t out_bytes;
	bool hello_seen;
	uint64_t request_id_last; /* of the last new request */
	uint64_t subscribe_ids[CLIENT_FUZZ_OPS];
	uint32_t subscribe_count;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* Read @bytes at @p, so that AddressSanitizer checks they are all there. */
static void fuzz_touch(const void *p, size_t bytes)
{
	static uint8_t seen[RILL_RECORD_BYTES_MAX];
	check(bytes <= sizeof(seen));
	check(p != NULL || bytes == 0);
	if (bytes > 0)
		memcpy(seen, p, bytes);
}

/* ---- The server's side ------------------------------------------------------------------- */

/* One chunk's bytes and length, taken off the front of *@at. */
static const uint8_t *fuzz_chunk_take(const uint8_t **at, size_t *left, size_t *bytes)
{
	if (*left < 2) {
		*bytes = 0;
		return NULL;
	}
	size_t n = (size_t)(*at)[0] | (size_t)(*at)[1] << 8;
	const uint8_t *chunk = *at + 2;
	*left -= 2;
	if (n > *left)
		n = *left;
	*at += 2 + n;
	*left -= n;
	*bytes = n;
	return chunk;
}

/* The codes of the ERROR frames the server's chunks hold, as the client will read them. */
static void fuzz_server_codes(struct fuzz_run *run)
{
	static uint8_t stream[FUZZ_INPUT_MAX];
	const uint8_t *at = run->chunks;
	size_t left = run->chunks_bytes, bytes, stream_bytes = 0;
	const uint8_t *chunk;
	while ((chunk = fuzz_chunk_take(&at, &left, &bytes)) != NULL) {
		memcpy(stream + stream_bytes, chunk, bytes);
		stream_bytes += bytes;
	}
	for (size_t pos = 0;;) {
		struct rill_wire_header h;
		struct rill_wire_error e;
		if (rill_wire_header_decode(stream + pos, stream_bytes - pos,
					    RILL_WIRE_FRAME_BYTES_MAX, &h) != 0 ||
		    stream_bytes - pos - RILL_WIRE_HEADER_BYTES < h.body_bytes)
			return; /* the client reads no frame past this one */
		const uint8_t *body = stream + pos + RILL_WIRE_HEADER_BYTES;
		if (h.type == RILL_WIRE_ERROR &&
		    rill_wire_error_decode(body, h.body_bytes, &e) == 0) {
			if (run->code_count == FUZZ_CODES_MAX)
				run->codes_any = true;
			else
				run->codes[run->code_count++] = e.code < 0 ? e.code : -EPROTO;
		}
		pos += RILL_WIRE_HEADER_BYTES + h.body_bytes;
	}
}

/* The server sends its next chunk: all of it, or (the socket full) a part and then nothing
 * more, so that what the client reads is always a prefix of the stream. */
static void fuzz_server_send(struct fuzz_run *run)
{
	size_t bytes;
	const uint8_t *chunk = fuzz_chunk_take(&run->chunks, &run->chunks_bytes, &bytes);
	if (chunk == NULL || run->server_fd < 0 || run->stalled)
		return;
	for (size_t at = 0; at < bytes;) {
		ssize_t n =
			send(run->server_fd, chunk + at, bytes - at, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n <= 0) {
			run->stalled = true;
			return;
		}
		at += (size_t)n;
	}
}

static void fuzz_request_new(struct fuzz_run *run, uint64_t id)
{
	check(id > run->request_id_last); /* ids rise: the client never reuses one */
	run->request_id_last = id;
}

static void fuzz_check_produce(struct fuzz_run *run, const struct rill_wire_header *h,
			       const uint8_t *body)
{
	struct rill_wire_produce p;
	struct rill_wire_iter it;
	struct rill_record rec;
	check(rill_wire_produce_decode(body, h->body_bytes, &p, NULL) == 0);
	rill_wire_produce_iter(&p, &it);
	uint32_t count = 0;
	while (rill_wire_produce_next(&it, &rec) == 1)
		count++;
	check(count == p.event_count);
	fuzz_request_new(run, h->request_id);
}

static void fuzz_check_fetch(const struct fuzz_run *run, const struct rill_wire_header *h,
			     const uint8_t *body)
{
	uint32_t credit;
	check(rill_wire_fetch_decode(body, h->body_bytes, &credit) == 0 && credit > 0);
	bool known = false;
	for (uint32_t i = 0; i < run->subscribe_count; i++)
		known = known || run->subscribe_ids[i] == h->request_id;
	check(known);
}

/* One frame the client sent: it must decode, as a server would read it. */
static void fuzz_check_client_frame(struct fuzz_run *run, const struct rill_wire_header *h,
				    const uint8_t *body)
{
	struct rill_wire_hello hello;
	struct rill_wire_subscribe sub;
	struct rill_wire_query query;
	struct rill_wire_admin admin;
	check(run->hello_seen || h->type == RILL_WIRE_HELLO);
	switch (h->type) {
	case RILL_WIRE_HELLO:
		check(!run->hello_seen && h->request_id == 0);
		check(rill_wire_hello_decode(body, h->body_bytes, &hello) == 0);
		run->hello_seen = true;
		return;
	case RILL_WIRE_PRODUCE:
		fuzz_check_produce(run, h, body);
		return;
	case RILL_WIRE_FETCH:
		fuzz_check_fetch(run, h, body);
		return;
	case RILL_WIRE_SUBSCRIBE:
		check(rill_wire_subscribe_decode(body, h->body_bytes, &sub) == 0);
		check(run->subscribe_count < CLIENT_FUZZ_OPS);
		run->subscribe_ids[run->subscribe_count++] = h->request_id;
		break;
	case RILL_WIRE_QUERY:
		check(rill_wire_query_decode(body, h->body_bytes, &query) == 0);
		break;
	case RILL_WIRE_ADMIN:
		check(rill_wire_admin_decode(body, h->body_bytes, &admin) == 0);
		break;
	case RILL_WIRE_PING:
		check(rill_wire_empty_decode(h->body_bytes) == 0);
		break;
	default:
		abort(); /* a frame only a server sends */
	}
	fuzz_request_new(run, h->request_id);
}

/* Read what the client sent and check each whole frame; a partial one waits for the rest. */
static void fuzz_server_read(struct fuzz_run *run)
{
	if (run->server_fd < 0)
		return;
	for (;;) {
		ssize_t n = recv(run->server_fd, run->out + run->out_bytes,
				 FUZZ_OUT_BYTES - run->out_bytes, MSG_DONTWAIT);
		if (n <= 0)
			break;
		run->out_bytes += (size_t)n;
		size_t at = 0;
		for (;;) {
			struct rill_wire_header h;
			int rc = rill_wire_header_decode(run->out + at, run->out_bytes - at,
							 FUZZ_OUT_BYTES - RILL_WIRE_HEADER_BYTES,
							 &h);
			check(rc == 0 || rc == -EAGAIN);
			if (rc != 0 || run->out_bytes - at - RILL_WIRE_HEADER_BYTES < h.body_bytes)
				break;
			fuzz_check_client_frame(run, &h, run->out + at + RILL_WIRE_HEADER_BYTES);
			at += RILL_WIRE_HEADER_BYTES + h.body_bytes;
		}
		memmove(run->out, run->out + at, run->out_bytes - at);
		run->out_bytes -= at;
	}
	/* Half a frame stays only where the client can send no more: closed, or the server
	 * gone. A connected client that stopped mid-frame would have the streams out of step. */
	check(run->out_bytes == 0 || run->closed || run->c == NULL || run->c->send_dead);
}

/* ---- The client's side ------------------------------------------------------------------- */

static bool fuzz_code_known(const struct fuzz_run *run, int rc)
{
	switch (rc) {
	case -EINVAL:     /* a call the connection's state does not allow */
	case -ENOTCONN:   /* closed */
	case -ENOMEM:     /* out of memory */
	case -EAGAIN:     /* inflight_max, or the server's in-flight bytes */
	case -EBUSY:      /* requests in flight */
	case -ENOSPC:     /* too little room for the acknowledgements */
	case -ENODATA:    /* nothing in flight */
	case -ENOENT:     /* no subscription */
	case -ETIMEDOUT:  /* no answer in time, or no room to send */
	case -EMSGSIZE:   /* an event past the frame limit */
	case -EPIPE:      /* the server closed */
	case -ECONNRESET: /* the server closed */
	case -ENOBUFS:    /* more frames than answers owed, or events while subscribing */
		return true;
	default:
		break;
	}
	if (rc <= RILL_E_WIRE_TRUNCATED && rc >= RILL_E_WIRE_VERSION)
		return true; /* a malformed or unexpected frame */
	if (rc <= RILL_E_RECORD_TRUNCATED && rc >= RILL_E_RECORD_PAYLOAD_TOO_LONG &&
	    rc != RILL_E_RECORD_NO_SPACE)
		return true; /* an event that does not decode */
	for (uint32_t i = 0; i < run->code_count; i++)
		if (run->codes[i] == rc)
			return true;
	return run->codes_any;
}

/* What a call returned: 0, 1 where @one may be, or an error the client may give. */
static void fuzz_check_rc(const struct fuzz_run *run, int rc, const struct rill_client_error *err,
			  bool one)
{
	if (run->closed) {
		check(rc == -ENOTCONN);
		return;
	}
	if (rc == 0 || (rc == 1 && one))
		return;
	check(rc < 0);
	check(err->message[0] != '\0');
	check(memchr(err->message, '\0', sizeof(err->message)) != NULL);
	check(fuzz_code_known(run, rc));
}

static const struct rill_record *fuzz_events(void)
{
	static struct rill_record events[FUZZ_EVENTS_MAX];
	static const char *const keys[FUZZ_EVENTS_MAX] = {"k0", "k1", "k2", "k3"};
	for (uint32_t i = 0; i < FUZZ_EVENTS_MAX; i++)
		events[i] = (struct rill_record){.type_id = 1,
						 .schema_version = 1,
						 .key = keys[i],
						 .key_bytes = 2,
						 .payload = "{\"amount\":42}",
						 .payload_bytes = 13};
	return events;
}

static void fuzz_sent_add(struct fuzz_run *run, uint64_t id, uint32_t events, int acks)
{
	check(run->sent_count < CLIENT_FUZZ_OPS);
	run->sent[run->sent_count++] = (struct fuzz_sent){.id = id, .events = events, .acks = acks};
}

static void fuzz_produce_send(struct fuzz_run *run, uint32_t count, int acks,
			      const struct rill_record *events)
{
	struct rill_client_error err = {{0}};
	uint64_t id = UINT64_MAX;
	int rc = rill_client_produce_send(run->c, "fuzz", events, count, acks, &id, &err);
	fuzz_check_rc(run, rc, &err, false);
	if (rc == 0)
		fuzz_sent_add(run, id, count, acks);
}

static void fuzz_produce_large(struct fuzz_run *run, unsigned arg)
{
	static const uint8_t payload[FUZZ_LARGE_MAX];
	struct rill_record rec = {.key = "large",
				  .key_bytes = 5,
				  .payload = payload,
				  .payload_bytes = (arg + 1) * CLIENT_FUZZ_LARGE_STEP_BYTES};
	fuzz_produce_send(run, 1, 1, &rec);
}

/* The acknowledgements of a request answered: one per event, as its acks level gives. */
static void fuzz_check_acks(const struct fuzz_sent *s, const struct rill_client_ack *acks,
			    uint32_t count)
{
	check(count == s->events);
	for (uint32_t i = 0; i < count; i++) {
		check(memchr(acks[i].reason, '\0', sizeof(acks[i].reason)) != NULL);
		check(s->acks != 0 || acks[i].offset == UINT64_MAX);
	}
}

static void fuzz_produce_wait(struct fuzz_run *run, unsigned arg)
{
	static struct rill_client_ack acks[FUZZ_ACKS_MAX];
	struct rill_client_error err = {{0}};
	uint64_t id = UINT64_MAX;
	uint32_t count = UINT32_MAX;
	int rc = rill_client_produce_wait(run->c, &id, acks, arg & 7, &count,
					  (arg & 8) ? 0 : FUZZ_TIMEOUT_NS, &err);
	fuzz_check_rc(run, rc, &err, false);
	if (id == UINT64_MAX) { /* no answer taken */
		check(rc != 0);
		return;
	}
	uint32_t i = 0;
	while (i < run->sent_count && run->sent[i].id != id)
		i++;
	check(i < run->sent_count); /* an answer to a request in flight */
	if (rc == 0)
		fuzz_check_acks(&run->sent[i], acks, count);
	run->sent[i] = run->sent[--run->sent_count];
}

static void fuzz_next(struct fuzz_run *run, unsigned arg)
{
	uint32_t want = arg == CLIENT_FUZZ_NEXT_MANY ? CLIENT_FUZZ_NEXT_MANY_COUNT : arg + 1;
	for (uint32_t i = 0; i < want; i++) {
		struct rill_client_error err = {{0}};
		struct rill_client_event ev;
		int rc = rill_client_next(run->c, &ev, FUZZ_TIMEOUT_NS, &err);
		fuzz_check_rc(run, rc, &err, true);
		if (rc != 1)
			return;
		const struct rill_record *r = &ev.record;
		check(r->record_bytes == rill_record_bytes(r->key_bytes, r->payload_bytes));
		fuzz_touch(r->key, r->key_bytes);
		fuzz_touch(r->payload, r->payload_bytes);
	}
}

static void fuzz_blocking(struct fuzz_run *run, enum client_fuzz_op op, unsigned arg)
{
	static struct rill_client_ack acks[FUZZ_ACKS_MAX];
	static struct rill_client_partition parts[RILL_CLIENT_PARTITIONS_MAX];
	struct rill_client_error err = {{0}};
	struct rill_projection_value value;
	char *answer = NULL;
	uint32_t count = 0;
	int rc;
	switch (op) {
	case CLIENT_FUZZ_PING:
		rc = rill_client_ping(run->c, &err);
		break;
	case CLIENT_FUZZ_ADMIN:
		rc = rill_client_admin(run->c, (uint16_t)(1 + (arg & 7)), "{}", &answer, &err);
		check((rc == 0) == (answer != NULL));
		if (answer != NULL)
			fuzz_touch(answer, strlen(answer) + 1);
		free(answer);
		break;
	case CLIENT_FUZZ_QUERY:
		rc = rill_client_query(run->c, "fuzz", "k0", 2, NULL, &value, &err);
		break;
	case CLIENT_FUZZ_PRODUCE:
		count = 1 + (arg & 3);
		rc = rill_client_produce(run->c, "fuzz", fuzz_events(), count, (int)(arg >> 2) % 3,
					 acks, &err);
		break;
	default: /* CLIENT_FUZZ_SUBSCRIBE */
		rc = rill_client_subscribe(run->c, "fuzz", (arg & 1) ? 0 : UINT32_MAX,
					   (enum rill_client_from)((arg >> 1) & 3), 0, parts,
					   &count, &err);
		check(rc != 0 || count <= RILL_CLIENT_PARTITIONS_MAX);
		break;
	}
	fuzz_check_rc(run, rc, &err, false);
}

static void fuzz_observe(const struct fuzz_run *run)
{
	(void)rill_client_buffered(run->c);
	check(rill_client_inflight(run->c) == run->sent_count);
	check((rill_client_fd(run->c) < 0) == run->closed);
}

static void fuzz_op(struct fuzz_run *run, uint8_t byte)
{
	enum client_fuzz_op op = (enum client_fuzz_op)(byte & 15);
	unsigned arg = byte >> 4;
	struct rill_client_error err = {{0}};
	switch (op) {
	case CLIENT_FUZZ_PRODUCE_SEND:
		fuzz_produce_send(run, 1 + (arg & 3), (int)(arg >> 2) % 3, fuzz_events());
		break;
	case CLIENT_FUZZ_PRODUCE_LARGE:
		fuzz_produce_large(run, arg);
		break;
	case CLIENT_FUZZ_PRODUCE_WAIT:
		fuzz_produce_wait(run, arg);
		break;
	case CLIENT_FUZZ_NEXT:
		fuzz_next(run, arg);
		break;
	case CLIENT_FUZZ_CORK:
		rill_client_cork(run->c);
		break;
	case CLIENT_FUZZ_UNCORK:
		fuzz_check_rc(run, rill_client_uncork(run->c, &err), &err, false);
		break;
	case CLIENT_FUZZ_BUFFERED:
		fuzz_observe(run);
		break;
	case CLIENT_FUZZ_BLOCK_SEND:
		fuzz_send_blocked = true;
		break;
	case CLIENT_FUZZ_RELEASE:
		fuzz_server_send(run);
		break;
	case CLIENT_FUZZ_HANG_UP:
		if (run->server_fd >= 0)
			close(run->server_fd);
		run->server_fd = -1;
		break;
	case CLIENT_FUZZ_NOP:
		break;
	default:
		fuzz_blocking(run, op, arg);
		break;
	}
}

/* After each op: the client's invariants, and what it sent. */
static void fuzz_after_op(struct fuzz_run *run)
{
	client_check(run->c);
	if (!run->c->connected) {
		run->closed = true;
		run->sent_count = 0; /* their answers can never come */
	}
	fuzz_observe(run);
	fuzz_server_read(run);
}

static void fuzz_connect_and_run(struct fuzz_run *run, const uint8_t *data)
{
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.timeout_ns = FUZZ_TIMEOUT_NS;
	config.inflight_max = 1 + (data[0] & CLIENT_FUZZ_CONFIG_INFLIGHT);
	if (data[0] & CLIENT_FUZZ_CONFIG_SMALL_FRAMES)
		config.frame_bytes_max = RILL_WIRE_FRAME_BYTES_MIN;
	fuzz_server_send(run); /* the answer to the HELLO */
	struct rill_client_error err = {{0}};
	int rc = rill_client_connect(&run->c, "fuzz:7400", &config, &err);
	fuzz_check_rc(run, rc, &err, false);
	check((rc == 0) == (run->c != NULL));
	fuzz_server_read(run);
	if (rc != 0)
		return;
	check(rill_client_frame_bytes_max(run->c) <= RILL_WIRE_FRAME_BYTES_MAX);
	for (uint32_t i = 0; i < CLIENT_FUZZ_OPS; i++) {
		fuzz_op(run, data[1 + i]);
		fuzz_after_op(run);
	}
	rill_client_close(run->c);
	run->c = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[FUZZ_OUT_BYTES];
	if (size < CLIENT_FUZZ_HEAD_BYTES || size > FUZZ_INPUT_MAX)
		return 0;
	int sv[2];
	check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	struct fuzz_run run = {.server_fd = sv[1],
			       .chunks = data + CLIENT_FUZZ_HEAD_BYTES,
			       .chunks_bytes = size - CLIENT_FUZZ_HEAD_BYTES,
			       .out = out};
	fuzz_client_fd = sv[0];
	fuzz_send_blocked = false;
	fuzz_server_codes(&run);
	fuzz_connect_and_run(&run, data);
	/* The client closed its socket, whichever way it went: nothing opened it since. */
	check(fcntl(sv[0], F_GETFD) < 0 && errno == EBADF);
	if (run.server_fd >= 0)
		close(run.server_fd);
	return 0;
}
