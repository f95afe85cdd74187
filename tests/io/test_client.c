/*
 * Unit tests of the C client (io/client.c) without a rill server: address parsing, a
 * refused connection, and a scripted fake server on a loopback socket, in a thread of its
 * own, that speaks the protocol through io/wire.h: handshakes (good, wrong version, not
 * rill at all), produce and its acknowledgements, server ERROR frames (one request's, and
 * fatal), malformed frames, pipelined requests answered out of order, a timed-out call
 * whose late answer is skipped, and a subscription with its credit top-up. Last, `rill
 * produce` (the binary, argv[1]) against a server that resets the connection while it sends.
 *
 * The fake server never calls cmocka (its asserts jump across threads): it counts what it
 * found wrong in fake.failures, which the test checks after joining it.
 */
#define _GNU_SOURCE
#include "tests/common/test_util.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "io/wire.h"
#include "rill/client.h"
#include "tests/common/test_dir.h"

#define FAKE_FRAME_BYTES (1u << 20)
#define FAKE_BUF_BYTES   (FAKE_FRAME_BYTES + RILL_WIRE_HEADER_BYTES)

struct fake;
typedef void fake_script_fn(struct fake *f, int fd);

struct fake {
	int listen_fd;
	char address[64];
	pthread_t thread;
	fake_script_fn *script;
	uint8_t *in, *out; /* FAKE_BUF_BYTES each */
	int failures;
	uint32_t fetch_credit; /* what the client's FETCH granted */
	bool closed;           /* the script closed the connection */
};

#define FAKE_CHECK(f, cond)                                                                        \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fake server: %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
			(f)->failures++;                                                           \
		}                                                                                  \
	} while (0)

/* ---- The fake server ------------------------------------------------------------------ */

static bool recv_all(int fd, void *buf, size_t bytes)
{
	uint8_t *p = buf;
	while (bytes > 0) {
		ssize_t n = recv(fd, p, bytes, 0);
		if (n <= 0)
			return false;
		p += n;
		bytes -= (size_t)n;
	}
	return true;
}

static void send_raw(int fd, const void *buf, size_t bytes)
{
	const uint8_t *p = buf;
	while (bytes > 0) {
		ssize_t n = send(fd, p, bytes, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p += n;
		bytes -= (size_t)n;
	}
}

/* The next frame from the client into f->in: its header, body at f->in + 16. */
static bool fake_read(struct fake *f, int fd, struct rill_wire_header *hdr)
{
	if (!recv_all(fd, f->in, RILL_WIRE_HEADER_BYTES))
		return false;
	int rc = rill_wire_header_decode(f->in, RILL_WIRE_HEADER_BYTES, FAKE_FRAME_BYTES, hdr);
	FAKE_CHECK(f, rc == 0);
	return rc == 0 && recv_all(fd, f->in + RILL_WIRE_HEADER_BYTES, hdr->body_bytes);
}

static const uint8_t *body_of(const struct fake *f)
{
	return f->in + RILL_WIRE_HEADER_BYTES;
}

/* Read a frame that must be of @type; its request id (0 when it was not). */
static uint64_t fake_expect(struct fake *f, int fd, uint16_t type)
{
	struct rill_wire_header hdr;
	if (!fake_read(f, fd, &hdr)) {
		f->failures++;
		return 0;
	}
	FAKE_CHECK(f, hdr.type == type);
	return hdr.type == type ? hdr.request_id : 0;
}

static void fake_hello(struct fake *f, int fd)
{
	struct rill_wire_header hdr;
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_HELLO);
	struct rill_wire_hello hello;
	FAKE_CHECK(f, rill_wire_hello_decode(body_of(f), hdr.body_bytes, &hello) == 0);
	FAKE_CHECK(f, hello.version_min <= RILL_WIRE_VERSION);
	FAKE_CHECK(f, hello.version_max >= RILL_WIRE_VERSION);
	struct rill_wire_hello_ok ok = {.version = RILL_WIRE_VERSION,
					.shards = 3,
					.frame_bytes_max = FAKE_FRAME_BYTES,
					.inflight_bytes_max = 64u << 20};
	int n = rill_wire_hello_ok_encode(f->out, FAKE_BUF_BYTES, hdr.request_id, &ok);
	send_raw(fd, f->out, (size_t)n);
}

static void fake_error(struct fake *f, int fd, uint64_t id, int32_t code, uint16_t flags,
		       const char *message)
{
	int n = rill_wire_error_encode(f->out, FAKE_BUF_BYTES, id, code, flags, message);
	send_raw(fd, f->out, (size_t)n);
}

static void fake_pong(struct fake *f, int fd, uint64_t id)
{
	int n = rill_wire_empty_encode(f->out, FAKE_BUF_BYTES, RILL_WIRE_PONG, id);
	send_raw(fd, f->out, (size_t)n);
}

/* Read a PRODUCE (checking its records) and answer each event: offsets from @base; the
 * second event a duplicate, the third refused. Returns the request id. */
static uint64_t fake_produce_ack(struct fake *f, int fd, uint64_t base, bool send_now)
{
	struct rill_wire_header hdr;
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_PRODUCE);
	struct rill_wire_produce p;
	FAKE_CHECK(f, rill_wire_produce_decode(body_of(f), hdr.body_bytes, &p, NULL) == 0);
	int at = rill_wire_ack_begin(f->out, FAKE_BUF_BYTES, hdr.request_id);
	for (uint32_t i = 0; i < p.event_count; i++) {
		struct rill_wire_ack_entry e = {
			.partition = 1, .offset = base + i, .event_count = 1};
		if (i == 1)
			e.flags = RILL_WIRE_ACK_F_DUPLICATE;
		if (i == 2) {
			e.error = RILL_E_WRITE_UNKNOWN_TYPE;
			e.reason = "type 9 is not registered";
			e.reason_bytes = (uint16_t)strlen(e.reason);
		}
		at = rill_wire_ack_entry(f->out, FAKE_BUF_BYTES, (size_t)at, &e);
	}
	rill_wire_ack_finish(f->out, (uint32_t)at, p.event_count);
	if (send_now)
		send_raw(fd, f->out, (size_t)at);
	return hdr.request_id;
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->listen_fd, NULL, NULL);
	if (fd < 0) {
		f->failures++;
		return NULL;
	}
	f->script(f, fd);
	if (f->closed)
		return NULL; /* the script closed it itself */
	/* Hold the connection until the client closes it, so that it sees no reset early. */
	uint8_t drain[256];
	while (recv(fd, drain, sizeof(drain), 0) > 0)
		;
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, fake_script_fn *script)
{
	memset(f, 0, sizeof(*f));
	f->script = script;
	f->in = malloc(FAKE_BUF_BYTES);
	f->out = malloc(FAKE_BUF_BYTES);
	assert_non_null(f->in);
	assert_non_null(f->out);
	f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->listen_fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(f->listen_fd, 1), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&a, &len), 0);
	snprintf(f->address, sizeof(f->address), "127.0.0.1:%u", ntohs(a.sin_port));
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_join(struct fake *f)
{
	pthread_join(f->thread, NULL);
	close(f->listen_fd);
	free(f->in);
	free(f->out);
	assert_int_equal(f->failures, 0);
}

static struct rill_client *connect_ok(struct fake *f, const struct rill_client_config *config)
{
	struct rill_client *c = NULL;
	struct rill_client_error err = {{0}};
	int rc = rill_client_connect(&c, f->address, config, &err);
	if (rc != 0)
		fprintf(stderr, "connect: %s\n", err.message);
	assert_int_equal(rc, 0);
	assert_non_null(c);
	return c;
}

static const char event_key[] = "order-1";
static const uint8_t event_payload[16] = {1, 2, 3};

static void make_events(struct rill_record *ev, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		ev[i] = (struct rill_record){.type_id = 1,
					     .schema_version = 1,
					     .correlation_id = i,
					     .key = event_key,
					     .key_bytes = sizeof(event_key) - 1,
					     .payload = event_payload,
					     .payload_bytes = sizeof(event_payload)};
}

/* ---- Addresses and connections -------------------------------------------------------- */

static void test_address_errors(void **state)
{
	(void)state;
	static const char *const bad[] = {"localhost",  "localhost:", ":7400",    "host:0",
					  "host:65536", "host:12ab",  "::1:7400", "[::1]7400",
					  "[::1:7400",  "host:-1",    "[]:7400",  "host:99999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rill_client *c = (struct rill_client *)&c;
		struct rill_client_error err = {{0}};
		assert_int_equal(rill_client_connect(&c, bad[i], NULL, &err), -EINVAL);
		assert_null(c);
		assert_non_null(strstr(err.message, bad[i]));
	}
	struct rill_client *c;
	assert_int_equal(rill_client_connect(&c, NULL, NULL, NULL), -EINVAL);
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.inflight_max = 1u << 20;
	assert_int_equal(rill_client_connect(&c, "127.0.0.1:7400", &config, NULL), -EINVAL);
}

static void test_connect_refused(void **state)
{
	(void)state;
	/* A port nobody listens on: bound, then closed, without listen. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	char address[64];
	snprintf(address, sizeof(address), "127.0.0.1:%u", ntohs(a.sin_port));
	struct rill_client *c;
	struct rill_client_error err = {{0}};
	assert_int_equal(rill_client_connect(&c, address, NULL, &err), -ECONNREFUSED);
	assert_non_null(strstr(err.message, address));
	/* A name that does not resolve is not a bad address, and says so. */
	assert_int_not_equal(rill_client_connect(&c, "no-such-host.invalid:7400", NULL, &err),
			     -EINVAL);
	assert_non_null(strstr(err.message, "no-such-host.invalid"));
}

/* ---- Keepalive ------------------------------------------------------------------------ */

static int sockopt_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);
	assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
	return v;
}

static void script_hello_only(struct fake *f, int fd)
{
	fake_hello(f, fd);
}

/*
 * A client's socket gives up on a silent server: keepalive probes when idle, and a user
 * timeout for bytes unacknowledged, both from the config (defaults 10 s, 5 s, 3: 25 s).
 * Without them a subscriber, which sends nothing while it waits, waited for good on a
 * server whose host was gone (tests/integration/test_host_lost.sh shows it through a veth
 * pair).
 */
static void test_keepalive_options(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_hello_only);
	struct rill_client *c = connect_ok(&f, NULL);
	int fd = rill_client_fd(c);
	assert_int_equal(sockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
	assert_int_equal(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 10);
	assert_int_equal(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
	assert_int_equal(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
	assert_int_equal(sockopt_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 0); /* see below */
	rill_client_close(c);
	fake_join(&f);

	/* Set: in whole seconds, rounded up. */
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.keepalive_idle_ns = 1500000000ull;
	config.keepalive_interval_ns = 1000000000ull;
	config.keepalive_count = 2;
	fake_start(&f, script_hello_only);
	c = connect_ok(&f, &config);
	fd = rill_client_fd(c);
	assert_int_equal(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 2);
	assert_int_equal(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), 1);
	assert_int_equal(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPCNT), 2);
	rill_client_close(c);
	fake_join(&f);

	/* Past the kernel's limits: refused before connecting, saying which. */
	struct rill_client_error err = {{0}};
	config.keepalive_count = 128;
	assert_int_equal(rill_client_connect(&c, "127.0.0.1:7400", &config, &err), -EINVAL);
	assert_non_null(strstr(err.message, "keepalive"));
	config.keepalive_count = 127;
	config.keepalive_interval_ns = 32767ull * 1000000000u;
	assert_int_equal(rill_client_connect(&c, "127.0.0.1:7400", &config, &err), -EINVAL);
	assert_non_null(strstr(err.message, "keepalive"));
}

/* A server that stops reading for SLOW_READER_S (backpressure: a slow fdatasync, a stalled
 * shard), then reads the PRODUCE and answers it. */
#define SLOW_READER_S 6u
static void script_slow_reader(struct fake *f, int fd)
{
	fake_hello(f, fd);
	sleep(SLOW_READER_S); /* the client's bytes fill the receive window meanwhile */
	fake_produce_ack(f, fd, 0, true);
}

/*
 * A live server that stops reading is waited for. The client's sockets had a TCP user
 * timeout of the keepalive's silence, and Linux applies it to the probes of a closed
 * receive window too, though the server's kernel answers each: a server applying
 * backpressure for longer than that (25 s by default, 2 s here) was given up on as gone,
 * -ECONNABORTED, and rill produce called every line in flight "outcome unknown".
 */
static void test_server_stops_reading(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_slow_reader);
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.keepalive_idle_ns = 1000000000ull; /* a silence of 2 s */
	config.keepalive_interval_ns = 1000000000ull;
	config.keepalive_count = 1;
	struct rill_client *c = connect_ok(&f, &config);
	/* Three events of 250 KB: far more than an unread socket's receive window. */
	static uint8_t big[250000];
	struct rill_record ev[3];
	make_events(ev, 3);
	for (uint32_t i = 0; i < 3; i++) {
		ev[i].payload = big;
		ev[i].payload_bytes = sizeof(big);
	}
	struct rill_client_error err = {{0}};
	uint64_t id = 0, answered = 0;
	int rc = rill_client_produce_send(c, "orders", ev, 3, 1, &id, &err);
	if (rc != 0)
		fail_msg("produce_send: %s: %s", rill_strerror(rc), err.message);
	struct rill_client_ack acks[3];
	uint32_t count = 0;
	rc = rill_client_produce_wait(c, &answered, acks, 3, &count,
				      (SLOW_READER_S + 10) * 1000000000ull, &err);
	if (rc != 0)
		fail_msg("produce_wait: %s: %s", rill_strerror(rc), err.message);
	assert_int_equal(answered, id);
	assert_int_equal(count, 3);
	rill_client_close(c);
	fake_join(&f);
}

/* ---- Name resolution ------------------------------------------------------------------ */

/*
 * The resolver the client calls, interposed (the test links the client's objects, whose
 * getaddrinfo binds to this one): a name ending in ".rill.test" is answered here, a
 * "slow." one after RESOLVE_SLOW_MS with a failure, as a resolver whose nameservers do not
 * answer, the others as 127.0.0.1; anything else goes to libc's. The calls that may reach
 * a nameserver (those without AI_NUMERICHOST) are counted.
 */
#define RESOLVE_SLOW_MS 1500u
static atomic_int resolver_calls;
static atomic_int resolver_slow_done;
static int (*resolver_real)(const char *, const char *, const struct addrinfo *,
			    struct addrinfo **);
static pthread_once_t resolver_once = PTHREAD_ONCE_INIT;

static void resolver_find(void)
{
	*(void **)&resolver_real = dlsym(RTLD_NEXT, "getaddrinfo"); /* ISO C: no cast to it */
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	pthread_once(&resolver_once, resolver_find);
	if (hints != NULL && (hints->ai_flags & AI_NUMERICHOST) != 0)
		return resolver_real(node, service, hints, res); /* a name: EAI_NONAME */
	atomic_fetch_add(&resolver_calls, 1);
	static const char test_domain[] = ".rill.test";
	size_t n = node != NULL ? strlen(node) : 0, suffix = sizeof(test_domain) - 1;
	if (hints == NULL || n <= suffix || strcmp(node + n - suffix, test_domain) != 0)
		return resolver_real(node, service, hints, res);
	if (strncmp(node, "slow.", 5) == 0) {
		usleep(RESOLVE_SLOW_MS * 1000u);
		atomic_fetch_add(&resolver_slow_done, 1);
		return EAI_AGAIN;
	}
	struct addrinfo numeric = *hints;
	numeric.ai_flags |= AI_NUMERICHOST;
	return resolver_real("127.0.0.1", service, &numeric, res);
}

/*
 * The connect's timeout bounds a name's resolution too: getaddrinfo, which takes no
 * deadline, took 6.15 s of a 2 s connect with an unreachable nameserver (the resolver's
 * own timeouts, resolv.conf's timeout x attempts). A numeric address never reaches the
 * resolver; a name does, on a thread the connect stops waiting for at its deadline.
 */
static void test_resolve_within_the_timeout(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_hello_only);
	int before = atomic_load(&resolver_calls);
	struct rill_client *c = connect_ok(&f, NULL);
	assert_int_equal(atomic_load(&resolver_calls), before); /* 127.0.0.1: not resolved */
	rill_client_close(c);
	fake_join(&f);

	/* A name, resolved in time. */
	fake_start(&f, script_hello_only);
	char address[96];
	snprintf(address, sizeof(address), "fake.rill.test%s", strrchr(f.address, ':'));
	struct rill_client_error err = {{0}};
	int rc = rill_client_connect(&c, address, NULL, &err);
	if (rc != 0)
		fail_msg("connect %s: %d (%s): %s", address, rc, rill_strerror(rc), err.message);
	assert_int_equal(atomic_load(&resolver_calls), before + 1);
	rill_client_close(c);
	fake_join(&f);

	/* One whose resolver does not answer in time: the connect's deadline holds. */
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.timeout_ns = 300000000ull;
	atomic_store(&resolver_slow_done, 0);
	uint64_t start = rill_clock_now_ns();
	rc = rill_client_connect(&c, "slow.rill.test:7400", &config, &err);
	uint64_t took_ns = rill_clock_now_ns() - start;
	if (rc != -ETIMEDOUT || took_ns > 1000000000ull)
		fail_msg("connect slow.rill.test: %d (%s) in %llu ms: %s", rc, rill_strerror(rc),
			 (unsigned long long)(took_ns / 1000000u), err.message);
	assert_null(c);
	assert_non_null(strstr(err.message, "resolving 'slow.rill.test' took longer"));
	/* The resolution ends alone and frees what it holds (ASan would see it otherwise). */
	while (atomic_load(&resolver_slow_done) == 0)
		usleep(10000);
	usleep(100000);
}

/* ---- Handshakes ----------------------------------------------------------------------- */

static void script_wrong_version(struct fake *f, int fd)
{
	struct rill_wire_header hdr;
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_HELLO);
	fake_error(f, fd, hdr.request_id, RILL_E_WIRE_VERSION, RILL_WIRE_ERROR_F_FATAL,
		   "this server speaks versions 2 to 3");
}

static void script_not_rill(struct fake *f, int fd)
{
	struct rill_wire_header hdr;
	FAKE_CHECK(f, fake_read(f, fd, &hdr));
	static const char http[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
	send_raw(fd, http, sizeof(http) - 1);
}

static void test_handshake_refused(void **state)
{
	(void)state;
	struct fake f;
	struct rill_client *c;
	struct rill_client_error err = {{0}};
	fake_start(&f, script_wrong_version);
	assert_int_equal(rill_client_connect(&c, f.address, NULL, &err), RILL_E_WIRE_VERSION);
	assert_non_null(strstr(err.message, "versions 2 to 3"));
	fake_join(&f);

	fake_start(&f, script_not_rill);
	assert_int_equal(rill_client_connect(&c, f.address, NULL, &err), RILL_E_WIRE_MAGIC);
	assert_non_null(strstr(err.message, "not a rill server"));
	fake_join(&f);
}

/* The handshake and one PRODUCE, answered. */
static void script_one_produce(struct fake *f, int fd)
{
	fake_hello(f, fd);
	fake_produce_ack(f, fd, 0, true);
}

/*
 * rill_client_frame_bytes_max is the limit in force on the connection, the smaller of the
 * config's and the server's (its comment called it the server's, which it is only when the
 * config sets none or a larger one): what a PRODUCE must fit in, as `rill produce` sizes its
 * batches by it.
 */
static void test_frame_limit_in_force(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_one_produce);
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.frame_bytes_max = 65536;
	struct rill_client *c = connect_ok(&f, &config);
	assert_int_equal(rill_client_frame_bytes_max(c), 65536); /* the server's is 1 MiB */
	static uint8_t payload[65536];
	struct rill_record ev;
	make_events(&ev, 1);
	ev.payload = payload;
	ev.payload_bytes = sizeof(payload);
	struct rill_client_error err = {{0}};
	struct rill_client_ack ack;
	assert_int_equal(rill_client_produce(c, "t", &ev, 1, 1, &ack, &err), -EMSGSIZE);
	ev.payload_bytes = 65536 - 256; /* room for the request's header and the record's */
	assert_int_equal(rill_client_produce(c, "t", &ev, 1, 1, &ack, &err), 0);
	rill_client_close(c);
	fake_join(&f);
}

/* ---- Requests ------------------------------------------------------------------------- */

static void script_requests(struct fake *f, int fd)
{
	fake_hello(f, fd);
	fake_produce_ack(f, fd, 100, true);
	fake_pong(f, fd, fake_expect(f, fd, RILL_WIRE_PING));

	struct rill_wire_header hdr;
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_ADMIN);
	struct rill_wire_admin a;
	FAKE_CHECK(f, rill_wire_admin_decode(body_of(f), hdr.body_bytes, &a) == 0);
	FAKE_CHECK(f, a.op == RILL_WIRE_ADMIN_STAT && a.json_bytes == 2);
	static const char answer[] = "{\"shards\":[]}";
	int n = rill_wire_admin_ok_encode(f->out, FAKE_BUF_BYTES, hdr.request_id, answer,
					  sizeof(answer) - 1);
	send_raw(fd, f->out, (size_t)n);

	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_QUERY);
	struct rill_wire_query q;
	FAKE_CHECK(f, rill_wire_query_decode(body_of(f), hdr.body_bytes, &q) == 0);
	FAKE_CHECK(f, q.key_bytes == 3 && memcmp(q.key, "k-1", 3) == 0);
	FAKE_CHECK(f, q.flags == (RILL_WIRE_QUERY_F_AS_OF_OFFSET | RILL_WIRE_QUERY_F_TOKEN));
	FAKE_CHECK(f, q.as_of == 7 && q.token_partition == 2 && q.token_offset == 9);
	struct rill_projection_value v = {.count = 5, .i64 = -12, .u64 = 3, .offset = 7};
	n = rill_wire_result_encode(f->out, FAKE_BUF_BYTES, hdr.request_id, &v);
	send_raw(fd, f->out, (size_t)n);

	/* A query whose projection does not exist: the request's error only. */
	uint64_t id = fake_expect(f, fd, RILL_WIRE_QUERY);
	fake_error(f, fd, id, -ENOENT, 0, "no projection named 'nope'");
	fake_pong(f, fd, fake_expect(f, fd, RILL_WIRE_PING));
}

static void test_requests(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_requests);
	struct rill_client *c = connect_ok(&f, NULL);
	assert_int_equal(rill_client_server_shards(c), 3);
	assert_int_equal(rill_client_frame_bytes_max(c), FAKE_FRAME_BYTES);

	struct rill_record ev[3];
	struct rill_client_ack acks[3];
	struct rill_client_error err = {{0}};
	make_events(ev, 3);
	assert_int_equal(rill_client_produce(c, "orders", ev, 3, 1, acks, &err), 0);
	assert_int_equal(acks[0].error, 0);
	assert_int_equal(acks[0].partition, 1);
	assert_int_equal(acks[0].offset, 100);
	assert_false(acks[0].duplicate);
	assert_true(acks[1].duplicate);
	assert_int_equal(acks[2].error, RILL_E_WRITE_UNKNOWN_TYPE);
	assert_string_equal(acks[2].reason, "type 9 is not registered");
	assert_int_equal(rill_client_inflight(c), 0);

	assert_int_equal(rill_client_ping(c, &err), 0);
	char *answer = NULL;
	assert_int_equal(rill_client_admin(c, RILL_WIRE_ADMIN_STAT, NULL, &answer, &err), 0);
	assert_string_equal(answer, "{\"shards\":[]}");
	free(answer);

	struct rill_client_query_options q = {.as_of_offset = true,
					      .as_of = 7,
					      .has_token = true,
					      .token_partition = 2,
					      .token_offset = 9};
	struct rill_projection_value v;
	assert_int_equal(rill_client_query(c, "totals", "k-1", 3, &q, &v, &err), 0);
	assert_int_equal(v.count, 5);
	assert_int_equal(v.i64, -12);
	assert_int_equal(v.offset, 7);
	assert_int_equal(rill_client_query(c, "nope", "k-1", 3, NULL, &v, &err), -ENOENT);
	assert_string_equal(err.message, "no projection named 'nope'");
	/* Bad arguments never reach the server. */
	q.as_of_timestamp = true;
	assert_int_equal(rill_client_query(c, "totals", "k", 1, &q, &v, &err), -EINVAL);
	assert_int_equal(rill_client_admin(c, 0, "{}", NULL, &err), -EINVAL);
	assert_int_equal(rill_client_produce(c, "", ev, 1, 1, acks, &err), -EINVAL);
	assert_int_equal(rill_client_produce(c, "t", ev, 0, 1, acks, &err), -EINVAL);
	assert_int_equal(rill_client_produce(c, "t", ev, 1, 3, acks, &err), -EINVAL);
	/* After a request's own error the connection goes on. */
	assert_int_equal(rill_client_ping(c, &err), 0);
	rill_client_close(c);
	fake_join(&f);
}

/* ---- Errors that close ---------------------------------------------------------------- */

static void script_fatal(struct fake *f, int fd)
{
	fake_hello(f, fd);
	uint64_t id = fake_produce_ack(f, fd, 0, false);
	fake_error(f, fd, id, RILL_E_WIRE_COUNT, RILL_WIRE_ERROR_F_FATAL,
		   "event 2 of 3 is not what the count says");
}

static void script_malformed(struct fake *f, int fd)
{
	fake_hello(f, fd);
	uint64_t id = fake_expect(f, fd, RILL_WIRE_PING);
	uint8_t bad[RILL_WIRE_HEADER_BYTES];
	rill_wire_header_encode(bad, RILL_WIRE_PONG, id, 0);
	bad[4] = 99; /* an unknown frame type */
	send_raw(fd, bad, sizeof(bad));
}

static void script_short_ack(struct fake *f, int fd)
{
	fake_hello(f, fd);
	struct rill_wire_header hdr;
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_PRODUCE);
	/* One entry for three events. */
	int at = rill_wire_ack_begin(f->out, FAKE_BUF_BYTES, hdr.request_id);
	struct rill_wire_ack_entry e = {.partition = 0, .offset = 1, .event_count = 1};
	at = rill_wire_ack_entry(f->out, FAKE_BUF_BYTES, (size_t)at, &e);
	rill_wire_ack_finish(f->out, (uint32_t)at, 1);
	send_raw(fd, f->out, (size_t)at);
}

static void script_closes(struct fake *f, int fd)
{
	fake_hello(f, fd);
	(void)fake_expect(f, fd, RILL_WIRE_PING);
	shutdown(fd, SHUT_RDWR);
}

/* After @rc from the first call, every call reports a closed connection. */
static void check_closed(struct rill_client *c)
{
	struct rill_client_error err = {{0}};
	struct rill_record ev[1];
	struct rill_client_ack ack[1];
	make_events(ev, 1);
	assert_int_equal(rill_client_ping(c, &err), -ENOTCONN);
	assert_int_equal(rill_client_produce(c, "t", ev, 1, 1, ack, &err), -ENOTCONN);
	assert_int_equal(
		rill_client_subscribe(c, "t", 0, RILL_CLIENT_FROM_EARLIEST, 0, NULL, NULL, &err),
		-ENOTCONN);
}

static void test_fatal_and_malformed(void **state)
{
	(void)state;
	struct fake f;
	struct rill_client_error err = {{0}};
	struct rill_record ev[3];
	struct rill_client_ack acks[3];
	make_events(ev, 3);

	fake_start(&f, script_fatal);
	struct rill_client *c = connect_ok(&f, NULL);
	assert_int_equal(rill_client_produce(c, "orders", ev, 3, 2, acks, &err), RILL_E_WIRE_COUNT);
	assert_non_null(strstr(err.message, "not what the count says"));
	check_closed(c);
	rill_client_close(c);
	fake_join(&f);

	fake_start(&f, script_malformed);
	c = connect_ok(&f, NULL);
	assert_int_equal(rill_client_ping(c, &err), RILL_E_WIRE_TYPE);
	check_closed(c);
	rill_client_close(c);
	fake_join(&f);

	fake_start(&f, script_short_ack);
	c = connect_ok(&f, NULL);
	assert_int_equal(rill_client_produce(c, "orders", ev, 3, 1, acks, &err), RILL_E_WIRE_COUNT);
	check_closed(c);
	rill_client_close(c);
	fake_join(&f);

	fake_start(&f, script_closes);
	c = connect_ok(&f, NULL);
	assert_int_equal(rill_client_ping(c, &err), -ECONNRESET);
	check_closed(c);
	rill_client_close(c);
	fake_join(&f);
}

/* ---- Pipelining ----------------------------------------------------------------------- */

/* Four requests in, answered 3, 1, 4, 2 (the second with the request's error). */
static void script_pipelined(struct fake *f, int fd)
{
	fake_hello(f, fd);
	static uint8_t held[4][4096];
	size_t held_bytes[4];
	uint64_t ids[4];
	for (int i = 0; i < 4; i++) {
		ids[i] = fake_produce_ack(f, fd, 10u * (unsigned)i, false);
		held_bytes[i] = RILL_WIRE_HEADER_BYTES + (f->out[0] | f->out[1] << 8);
		FAKE_CHECK(f, held_bytes[i] <= sizeof(held[i]));
		memcpy(held[i], f->out, held_bytes[i]);
	}
	send_raw(fd, held[2], held_bytes[2]);
	send_raw(fd, held[0], held_bytes[0]);
	send_raw(fd, held[3], held_bytes[3]);
	fake_error(f, fd, ids[1], -ENOENT, 0, "no topic 'orders'");
}

static void test_pipelined(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_pipelined);
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.inflight_max = 4;
	struct rill_client *c = connect_ok(&f, &config);
	struct rill_record ev[3];
	make_events(ev, 3);
	struct rill_client_error err = {{0}};
	uint64_t ids[4];
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(rill_client_produce_send(c, "orders", ev, i + 1 < 4 ? 3 : 2, 1,
							  &ids[i], &err),
				 0);
	for (int i = 1; i < 4; i++)
		assert_true(ids[i] > ids[i - 1]);
	assert_int_equal(rill_client_inflight(c), 4);
	uint64_t extra;
	assert_int_equal(rill_client_produce_send(c, "orders", ev, 1, 1, &extra, &err), -EAGAIN);
	/* Blocking calls wait until the pipeline is drained. */
	assert_int_equal(rill_client_ping(c, &err), -EBUSY);

	/* Too little room for some answer to come: refused before anything is read or
	 * taken off the list, so the call with room gets every answer. */
	struct rill_client_ack small[2];
	uint32_t none = 99;
	assert_int_equal(rill_client_produce_wait(c, &extra, small, 2, &none, 0, &err), -ENOSPC);
	assert_int_equal(rill_client_inflight(c), 4);
	static const int order[4] = {2, 0, 3, 1};
	for (int k = 0; k < 4; k++) {
		struct rill_client_ack acks[3];
		uint32_t count = 99;
		uint64_t id = 0;
		int rc = rill_client_produce_wait(c, &id, acks, 3, &count, 5000000000ull, &err);
		assert_int_equal(id, ids[order[k]]);
		if (order[k] == 1) {
			assert_int_equal(rc, -ENOENT);
			assert_string_equal(err.message, "no topic 'orders'");
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(count, order[k] == 3 ? 2 : 3);
		assert_int_equal(acks[0].offset, 10u * (unsigned)order[k]);
	}
	assert_int_equal(rill_client_inflight(c), 0);
	uint32_t count;
	assert_int_equal(rill_client_produce_wait(c, &extra, NULL, 0, &count, 0, &err), -ENODATA);
	rill_client_close(c);
	fake_join(&f);
}

/* ---- Timeouts ------------------------------------------------------------------------- */

static void script_late(struct fake *f, int fd)
{
	fake_hello(f, fd);
	uint64_t late = fake_expect(f, fd, RILL_WIRE_PING);
	uint64_t next = fake_expect(f, fd, RILL_WIRE_PING); /* sent after the first timed out */
	fake_pong(f, fd, late);
	fake_pong(f, fd, next);
}

/* A fake server running @script, and a client of it whose calls wait 100 ms at most. */
static struct rill_client *connect_short(struct fake *f, fake_script_fn *script)
{
	fake_start(f, script);
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.timeout_ns = 100000000; /* 100 ms */
	return connect_ok(f, &config);
}

static void test_timeout(void **state)
{
	(void)state;
	struct fake f;
	struct rill_client *c = connect_short(&f, script_late);
	struct rill_client_error err = {{0}};
	assert_int_equal(rill_client_ping(c, &err), -ETIMEDOUT);
	/* The late PONG of the first is skipped; the second gets its own. */
	assert_int_equal(rill_client_ping(c, &err), 0);
	rill_client_close(c);
	fake_join(&f);
}

/* The server ends the connection with a fatal ERROR naming a request that timed out. */
static void script_late_fatal(struct fake *f, int fd)
{
	fake_hello(f, fd);
	uint64_t late = fake_expect(f, fd, RILL_WIRE_PING);
	uint64_t next = fake_expect(f, fd, RILL_WIRE_PING);
	(void)next;
	fake_error(f, fd, late, RILL_E_WIRE_VALUE, RILL_WIRE_ERROR_F_FATAL, "your ping was bad");
}

/* That fatal ERROR reaches the caller with its code and message, though its request was
 * given up: it was skipped as a late answer, and the caller saw only the reset after. */
static void test_timeout_then_fatal(void **state)
{
	(void)state;
	struct fake f;
	struct rill_client *c = connect_short(&f, script_late_fatal);
	struct rill_client_error err = {{0}};
	assert_int_equal(rill_client_ping(c, &err), -ETIMEDOUT);
	assert_int_equal(rill_client_ping(c, &err), RILL_E_WIRE_VALUE);
	assert_string_equal(err.message, "your ping was bad");
	assert_int_equal(rill_client_ping(c, &err), -ENOTCONN);
	rill_client_close(c);
	fake_join(&f);
}

/* ---- Subscriptions -------------------------------------------------------------------- */

#define SUB_EVENTS 600u /* over half the client's credit: it must send a FETCH */

static void fake_events(struct fake *f, int fd, uint64_t id, uint32_t partition, uint64_t first,
			uint32_t count)
{
	uint8_t record[256];
	struct rill_record r;
	make_events(&r, 1);
	int bytes = rill_record_encode(record, sizeof(record), &r);
	FAKE_CHECK(f, bytes > 0);
	int at = rill_wire_events_begin(f->out, FAKE_BUF_BYTES, id, partition);
	for (uint32_t i = 0; i < count; i++)
		at = rill_wire_events_add(f->out, FAKE_BUF_BYTES, (size_t)at, first + i, record,
					  (uint32_t)bytes);
	rill_wire_events_finish(f->out, (uint32_t)at, count);
	send_raw(fd, f->out, (size_t)at);
}

static void script_subscribe(struct fake *f, int fd)
{
	fake_hello(f, fd);
	struct rill_wire_header hdr;
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_SUBSCRIBE);
	struct rill_wire_subscribe s;
	FAKE_CHECK(f, rill_wire_subscribe_decode(body_of(f), hdr.body_bytes, &s) == 0);
	FAKE_CHECK(f, s.partition == 0 && s.from == RILL_WIRE_FROM_EARLIEST && s.credit >= 600);
	uint64_t first = hdr.request_id;
	struct rill_wire_subscribed_entry e = {.partition = 0, .first_offset = 0, .end_offset = 4};
	int n = rill_wire_subscribed_encode(f->out, FAKE_BUF_BYTES, first, &e, 1);
	send_raw(fd, f->out, (size_t)n);
	/* Events of the first subscription before the second is answered: the client keeps
	 * them for later. */
	fake_events(f, fd, first, 0, 0, 4);
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_SUBSCRIBE);
	uint64_t second = hdr.request_id;
	e = (struct rill_wire_subscribed_entry){
		.partition = 1, .first_offset = 50, .end_offset = 50 + SUB_EVENTS};
	n = rill_wire_subscribed_encode(f->out, FAKE_BUF_BYTES, second, &e, 1);
	send_raw(fd, f->out, (size_t)n);
	fake_events(f, fd, second, 1, 50, SUB_EVENTS / 2);
	fake_events(f, fd, second, 1, 50 + SUB_EVENTS / 2, SUB_EVENTS / 2);
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_FETCH);
	FAKE_CHECK(f, hdr.request_id == second);
	FAKE_CHECK(f, rill_wire_fetch_decode(body_of(f), hdr.body_bytes, &f->fetch_credit) == 0);
	fake_error(f, fd, first, -ENOENT, 0, "topic 'orders' was deleted");
}

static void test_subscribe(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_subscribe);
	struct rill_client *c = connect_ok(&f, NULL);
	struct rill_client_error err = {{0}};
	static struct rill_client_partition parts[RILL_CLIENT_PARTITIONS_MAX];
	uint32_t count = 0;
	assert_int_equal(rill_client_subscribe(c, "orders", 0, RILL_CLIENT_FROM_EARLIEST, 0, parts,
					       &count, &err),
			 0);
	assert_int_equal(count, 1);
	assert_int_equal(parts[0].end_offset, 4);
	assert_int_equal(rill_client_subscribe(c, "orders", 1, RILL_CLIENT_FROM_OFFSET, 50, parts,
					       &count, &err),
			 0);
	assert_int_equal(parts[0].first_offset, 50);
	/* A subscribed connection only reads events. */
	assert_int_equal(rill_client_ping(c, &err), -EINVAL);

	struct rill_client_event ev;
	for (uint64_t i = 0; i < 4; i++) {
		assert_int_equal(rill_client_next(c, &ev, 5000000000ull, &err), 1);
		assert_int_equal(ev.partition, 0);
		assert_int_equal(ev.offset, i);
		assert_memory_equal(ev.record.key, event_key, sizeof(event_key) - 1);
	}
	for (uint64_t i = 0; i < SUB_EVENTS; i++) {
		assert_int_equal(rill_client_next(c, &ev, 5000000000ull, &err), 1);
		assert_int_equal(ev.partition, 1);
		assert_int_equal(ev.offset, 50 + i);
	}
	/* The server ends the first subscription; the second stays open. */
	assert_int_equal(rill_client_next(c, &ev, 5000000000ull, &err), -ENOENT);
	assert_string_equal(err.message, "topic 'orders' was deleted");
	assert_int_equal(rill_client_next(c, &ev, 0, &err), 0);
	rill_client_close(c);
	fake_join(&f);
	assert_int_equal(f.fetch_credit, 512);
}

#define BIG_EVENTS 800u /* some 100 KiB in one EVENTS frame: past a 64 KiB client limit */

static void script_big_frame(struct fake *f, int fd)
{
	fake_hello(f, fd); /* the server's limit: 1 MiB */
	struct rill_wire_header hdr;
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_SUBSCRIBE);
	uint64_t id = hdr.request_id;
	struct rill_wire_subscribed_entry e = {
		.partition = 0, .first_offset = 0, .end_offset = BIG_EVENTS};
	int n = rill_wire_subscribed_encode(f->out, FAKE_BUF_BYTES, id, &e, 1);
	send_raw(fd, f->out, (size_t)n);
	fake_events(f, fd, id, 0, 0, BIG_EVENTS);
	fake_error(f, fd, id, -EIO, 0, ""); /* no message: the client says the code's */
}

/*
 * The client's own frame_bytes_max bounds what it sends, not what it takes: the server
 * fills EVENTS frames to its own limit, which HELLO carries no word of the client's (the
 * client used to size its receive buffer by its own, refuse the first larger frame and
 * close). An ERROR without a message gets its code's text.
 */
static void test_subscribe_large_frames(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_big_frame);
	struct rill_client_config cfg;
	rill_client_config_default(&cfg);
	cfg.frame_bytes_max = RILL_WIRE_FRAME_BYTES_MIN;
	struct rill_client *c = connect_ok(&f, &cfg);
	assert_int_equal(rill_client_frame_bytes_max(c), RILL_WIRE_FRAME_BYTES_MIN);
	struct rill_client_error err = {{0}};
	static struct rill_client_partition parts[RILL_CLIENT_PARTITIONS_MAX];
	uint32_t count = 0;
	assert_int_equal(rill_client_subscribe(c, "orders", 0, RILL_CLIENT_FROM_EARLIEST, 0, parts,
					       &count, &err),
			 0);
	struct rill_client_event ev;
	for (uint64_t i = 0; i < BIG_EVENTS; i++) {
		int rc = rill_client_next(c, &ev, 5000000000ull, &err);
		if (rc != 1)
			fail_msg("event %llu: %d: %s", (unsigned long long)i, rc, err.message);
		assert_int_equal(ev.offset, i);
	}
	assert_int_equal(rill_client_next(c, &ev, 5000000000ull, &err), -EIO);
	assert_string_equal(err.message, rill_strerror(-EIO));
	rill_client_close(c);
	fake_join(&f);
}

/* An ACK of one entry with 8 bytes after it. */
static void script_ack_trailing(struct fake *f, int fd)
{
	fake_hello(f, fd);
	struct rill_wire_header hdr;
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_PRODUCE);
	int at = rill_wire_ack_begin(f->out, FAKE_BUF_BYTES, hdr.request_id);
	struct rill_wire_ack_entry e = {.partition = 1, .offset = 7, .event_count = 1};
	at = rill_wire_ack_entry(f->out, FAKE_BUF_BYTES, (size_t)at, &e);
	rill_wire_ack_finish(f->out, (uint32_t)at, 1);
	memset(f->out + at, 0, 8);
	rill_wire_header_encode(f->out, RILL_WIRE_ACK, hdr.request_id,
				(uint32_t)at + 8 - RILL_WIRE_HEADER_BYTES);
	send_raw(fd, f->out, (size_t)at + 8);
}

/* Bytes after an ACK's last entry mean the streams are out of step (PROTOCOL.md): refused
 * as trailing, and the connection closed (they used to pass unseen). Uncorking the closed
 * client says so. */
static void test_ack_trailing_bytes(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_ack_trailing);
	struct rill_client *c = connect_ok(&f, NULL);
	struct rill_record ev[1];
	make_events(ev, 1);
	struct rill_client_ack acks[1];
	struct rill_client_error err = {{0}};
	assert_int_equal(rill_client_produce(c, "orders", ev, 1, 1, acks, &err),
			 RILL_E_WIRE_TRAILING);
	assert_int_equal(rill_client_fd(c), -1);                  /* closed */
	assert_int_equal(rill_client_uncork(c, &err), -ENOTCONN); /* said, not sent on fd -1 */
	rill_client_close(c);
	fake_join(&f);
}

/*
 * The server ends one partition of a two-partition subscription (an ERROR with the
 * SUBSCRIBE's id): the other goes on. Once while the client waits for a second
 * SUBSCRIBE's answer (the ERROR is held, with the events around it, in arrival order),
 * then once more outside it, which ends the first subscription's last partition.
 */
static void script_partition_error(struct fake *f, int fd)
{
	fake_hello(f, fd);
	struct rill_wire_header hdr;
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_SUBSCRIBE);
	uint64_t first = hdr.request_id;
	struct rill_wire_subscribed_entry e[2] = {
		{.partition = 0, .first_offset = 0, .end_offset = 4},
		{.partition = 1, .first_offset = 0, .end_offset = 4}};
	int n = rill_wire_subscribed_encode(f->out, FAKE_BUF_BYTES, first, e, 2);
	send_raw(fd, f->out, (size_t)n);
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_SUBSCRIBE);
	uint64_t second = hdr.request_id;
	fake_events(f, fd, first, 0, 0, 2);
	fake_error(f, fd, first, -EMSGSIZE, 0, "partition 1: offset 0: too large");
	fake_events(f, fd, first, 0, 2, 2);
	e[0] = (struct rill_wire_subscribed_entry){.partition = 5, .end_offset = 1};
	n = rill_wire_subscribed_encode(f->out, FAKE_BUF_BYTES, second, e, 1);
	send_raw(fd, f->out, (size_t)n);
	fake_events(f, fd, second, 5, 0, 1);
	fake_error(f, fd, first, -EIO, 0, "partition 0: read failed");
	fake_events(f, fd, second, 5, 1, 1);
}

static void test_subscribe_partition_error(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_partition_error);
	struct rill_client *c = connect_ok(&f, NULL);
	struct rill_client_error err = {{0}};
	uint32_t count = 0;
	assert_int_equal(rill_client_subscribe(c, "orders", UINT32_MAX, RILL_CLIENT_FROM_EARLIEST,
					       0, NULL, &count, &err),
			 0);
	assert_int_equal(count, 2);
	assert_int_equal(rill_client_subscribe(c, "other", 5, RILL_CLIENT_FROM_EARLIEST, 0, NULL,
					       &count, &err),
			 0);
	assert_int_equal(count, 1);
	struct rill_client_event ev;
	const uint32_t want_partition[] = {0, 0, UINT32_MAX, 0, 0, 5, UINT32_MAX, 5};
	const uint64_t want_offset[] = {0, 1, 0, 2, 3, 0, 0, 1};
	for (size_t i = 0; i < sizeof(want_offset) / sizeof(want_offset[0]); i++) {
		int rc = rill_client_next(c, &ev, 5000000000ull, &err);
		if (want_partition[i] == UINT32_MAX) { /* a partition ended: the rest go on */
			assert_int_equal(rc, i == 2 ? -EMSGSIZE : -EIO);
			assert_non_null(
				strstr(err.message, i == 2 ? "partition 1" : "partition 0"));
			continue;
		}
		if (rc != 1)
			fail_msg("step %zu: %d (%s)", i, rc, err.message);
		assert_int_equal(ev.partition, want_partition[i]);
		assert_int_equal(ev.offset, want_offset[i]);
	}
	assert_int_equal(rill_client_next(c, &ev, 0, &err), 0);
	rill_client_close(c);
	fake_join(&f);
}

/* ---- A server that answers, then goes away ------------------------------------------- */

/*
 * A server that answers before it reads on (its output full of answers the client does
 * not read, a real server stops reading): after reading half the requests it writes their
 * answers, megabytes, and only then reads the rest. The client's sends must
 * read those answers while they wait for the socket, or both sides wait for good (the
 * sends then timed out and the connection broke, every answer lost).
 */
#define EARLY_REQUESTS 48u
#define EARLY_EVENTS   10000u /* a frame of about 870 KB; an ACK of 240 KB */

/* Answer requests [first, first + n) of EARLY_EVENTS events each. */
static void early_acks(struct fake *f, int fd, uint64_t first, uint32_t n)
{
	for (uint64_t id = first; id < first + n; id++) {
		int at = rill_wire_ack_begin(f->out, FAKE_BUF_BYTES, id);
		for (uint32_t i = 0; i < EARLY_EVENTS; i++) {
			struct rill_wire_ack_entry e = {
				.partition = 0, .offset = id * EARLY_EVENTS + i, .event_count = 1};
			at = rill_wire_ack_entry(f->out, FAKE_BUF_BYTES, (size_t)at, &e);
		}
		FAKE_CHECK(f, at > 0);
		rill_wire_ack_finish(f->out, (uint32_t)at, EARLY_EVENTS);
		send_raw(fd, f->out, (size_t)at);
	}
}

static void script_answers_first(struct fake *f, int fd)
{
	/* Bounded both ways (no autotuning): its answers back up at once, and so do the
	 * client's requests while it writes them. */
	int small = 64 << 10, bounded = 256 << 10;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bounded, sizeof(bounded));
	fake_hello(f, fd);
	uint64_t first = 0;
	for (uint32_t r = 0; r < EARLY_REQUESTS / 2; r++) {
		uint64_t id = fake_expect(f, fd, RILL_WIRE_PRODUCE);
		first = r == 0 ? id : first;
		FAKE_CHECK(f, id == first + r);
	}
	early_acks(f, fd, first, EARLY_REQUESTS / 2); /* megabytes, before reading on */
	for (uint32_t r = EARLY_REQUESTS / 2; r < EARLY_REQUESTS; r++)
		FAKE_CHECK(f, fake_expect(f, fd, RILL_WIRE_PRODUCE) == first + r);
	early_acks(f, fd, first + EARLY_REQUESTS / 2, EARLY_REQUESTS / 2);
}

static void test_sends_read_answers_meanwhile(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_answers_first);
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.inflight_max = EARLY_REQUESTS;
	config.timeout_ns = 5000000000ull;
	struct rill_client *c = connect_ok(&f, &config);
	static struct rill_record ev[EARLY_EVENTS];
	make_events(ev, EARLY_EVENTS);
	struct rill_client_error err = {{0}};
	uint64_t ids[EARLY_REQUESTS];
	for (uint32_t r = 0; r < EARLY_REQUESTS; r++) {
		int rc = rill_client_produce_send(c, "orders", ev, EARLY_EVENTS, 1, &ids[r], &err);
		if (rc != 0)
			fail_msg("send %u: %d (%s): %s", r, rc, rill_strerror(rc), err.message);
	}
	assert_true(rill_client_buffered(c)); /* read while sending: the fd may not say so */
	static struct rill_client_ack acks[EARLY_EVENTS];
	for (uint32_t r = 0; r < EARLY_REQUESTS; r++) {
		uint64_t id = 0;
		uint32_t count = 0;
		int rc = rill_client_produce_wait(c, &id, acks, EARLY_EVENTS, &count, 5000000000ull,
						  &err);
		if (rc != 0)
			fail_msg("wait %u: %d (%s): %s", r, rc, rill_strerror(rc), err.message);
		assert_int_equal(id, ids[r]);
		assert_int_equal(count, EARLY_EVENTS);
		assert_int_equal(acks[EARLY_EVENTS - 1].offset,
				 id * EARLY_EVENTS + EARLY_EVENTS - 1);
	}
	assert_false(rill_client_buffered(c));
	rill_client_close(c);
	fake_join(&f);
}

/* A fatal ERROR soon after the handshake, with a long message, then a pause before the
 * server reads: the client's sends read it while they wait. */
#define FATAL_MESSAGE_BYTES 300u

static void script_fatal_while_sending(struct fake *f, int fd)
{
	int bounded = 256 << 10; /* no autotuning: the client's sends wait soon */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bounded, sizeof(bounded));
	fake_hello(f, fd);
	char message[FATAL_MESSAGE_BYTES + 1];
	memset(message, 'm', FATAL_MESSAGE_BYTES);
	message[FATAL_MESSAGE_BYTES] = '\0';
	usleep(50000); /* the client is sending by now, not reading HELLO_OK with it */
	fake_error(f, fd, 0, RILL_E_WIRE_VALUE, RILL_WIRE_ERROR_F_FATAL, message);
	usleep(300000);
	static uint8_t sink[64 << 10];
	while (recv(fd, sink, sizeof(sink), 0) > 0)
		;
	close(fd);
	f->closed = true;
}

/* That ERROR comes back whole from the queue it was read into: its message was read from
 * the frame after a fatal ERROR's close had freed it (ASan saw it). */
static void test_fatal_read_while_sending(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_fatal_while_sending);
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.inflight_max = EARLY_REQUESTS;
	struct rill_client *c = connect_ok(&f, &config);
	static struct rill_record ev[EARLY_EVENTS];
	make_events(ev, EARLY_EVENTS);
	struct rill_client_error err = {{0}};
	uint32_t sent = 0;
	uint64_t id;
	while (sent < EARLY_REQUESTS &&
	       rill_client_produce_send(c, "orders", ev, EARLY_EVENTS, 1, &id, &err) == 0)
		sent++;
	static struct rill_client_ack acks[EARLY_EVENTS];
	uint32_t count = 0;
	int rc = rill_client_produce_wait(c, &id, acks, EARLY_EVENTS, &count, 5000000000ull, &err);
	if (rc != RILL_E_WIRE_VALUE)
		fail_msg("after %u sends: %d (%s): %s; expected the fatal ERROR", sent, rc,
			 rill_strerror(rc), err.message);
	char want[FATAL_MESSAGE_BYTES + 1];
	memset(want, 'm', FATAL_MESSAGE_BYTES);
	want[FATAL_MESSAGE_BYTES] = '\0';
	assert_string_equal(err.message, want); /* not the bytes of a freed frame */
	assert_int_equal(rill_client_produce_wait(c, &id, acks, EARLY_EVENTS, &count, 0, &err),
			 -ENOTCONN);
	rill_client_close(c);
	fake_join(&f);
}

/*
 * Events read while a send waited, then handed out from the early queue: a second
 * SUBSCRIBE moves their frame to the stash. It used to take them for a frame of the receive
 * buffer (of length 0 - 16: 4 GiB copied), a crash any server could cause. The server
 * answers the first SUBSCRIBE before reading it, behind bytes the client's socket cannot
 * send yet (PINGs the test writes raw, which the server skips once it reads again).
 */
static atomic_int early_phase; /* 1: the ping gave up; 2: the answers are out */

static void script_early_events(struct fake *f, int fd)
{
	fake_hello(f, fd);
	uint64_t ping = fake_expect(f, fd, RILL_WIRE_PING); /* never answered */
	while (atomic_load(&early_phase) < 1)
		usleep(1000);
	uint64_t first = ping + 1;
	struct rill_wire_subscribed_entry e = {.partition = 0, .first_offset = 0, .end_offset = 2};
	int n = rill_wire_subscribed_encode(f->out, FAKE_BUF_BYTES, first, &e, 1);
	send_raw(fd, f->out, (size_t)n);
	fake_events(f, fd, first, 0, 0, 2);
	atomic_store(&early_phase, 2);
	usleep(200000); /* the client fills its socket and sends its SUBSCRIBE meanwhile */
	struct rill_wire_header hdr;
	while (fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_PING)
		; /* the raw PINGs */
	FAKE_CHECK(f, hdr.type == RILL_WIRE_SUBSCRIBE && hdr.request_id == first);
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_SUBSCRIBE);
	uint64_t second = hdr.request_id;
	e = (struct rill_wire_subscribed_entry){.partition = 1, .first_offset = 0, .end_offset = 3};
	n = rill_wire_subscribed_encode(f->out, FAKE_BUF_BYTES, second, &e, 1);
	send_raw(fd, f->out, (size_t)n);
	fake_events(f, fd, second, 1, 0, 3);
}

static void test_early_events_detached(void **state)
{
	(void)state;
	struct fake f;
	atomic_store(&early_phase, 0);
	fake_start(&f, script_early_events);
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.timeout_ns = 1000000000ull; /* the fake server pauses 200 ms within it */
	struct rill_client *c = connect_ok(&f, &config);
	struct rill_client_error err = {{0}};
	assert_int_equal(rill_client_ping(c, &err), -ETIMEDOUT); /* its answer may come */
	atomic_store(&early_phase, 1);
	while (atomic_load(&early_phase) < 2)
		usleep(1000);
	usleep(20000); /* the answers are in the client's socket */
	/* Fill the socket with whole PINGs the server will skip: the SUBSCRIBE must wait. */
	int fd = rill_client_fd(c);
	int small = 4096;
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	uint8_t ping[RILL_WIRE_HEADER_BYTES];
	assert_int_equal(rill_wire_empty_encode(ping, sizeof(ping), RILL_WIRE_PING, 1u << 30),
			 (int)sizeof(ping));
	uint32_t pings = 0;
	for (;;) {
		ssize_t k = send(fd, ping, sizeof(ping), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k < 0)
			break;
		assert_int_equal(k, sizeof(ping)); /* a whole one or none, at this size */
		pings++;
	}
	assert_true(pings > 0);
	static struct rill_client_partition parts[RILL_CLIENT_PARTITIONS_MAX];
	uint32_t count = 0;
	int rc = rill_client_subscribe(c, "orders", 0, RILL_CLIENT_FROM_EARLIEST, 0, parts, &count,
				       &err);
	if (rc != 0)
		fail_msg("subscribe: %d (%s): %s", rc, rill_strerror(rc), err.message);
	assert_true(rill_client_buffered(c)); /* the EVENTS, read while the SUBSCRIBE waited */
	struct rill_client_event ev;
	assert_int_equal(rill_client_next(c, &ev, 5000000000ull, &err), 1);
	assert_int_equal(ev.offset, 0);
	rc = rill_client_subscribe(c, "orders", 1, RILL_CLIENT_FROM_EARLIEST, 0, parts, &count,
				   &err);
	if (rc != 0)
		fail_msg("second subscribe: %d (%s): %s", rc, rill_strerror(rc), err.message);
	assert_int_equal(rill_client_next(c, &ev, 5000000000ull, &err), 1);
	assert_int_equal(ev.partition, 0);
	assert_int_equal(ev.offset, 1);
	assert_memory_equal(ev.record.key, event_key, sizeof(event_key) - 1);
	for (uint64_t i = 0; i < 3; i++) {
		assert_int_equal(rill_client_next(c, &ev, 5000000000ull, &err), 1);
		assert_int_equal(ev.partition, 1);
		assert_int_equal(ev.offset, i);
	}
	rill_client_close(c);
	fake_join(&f);
}

/* An ERROR whose message starts with a NUL byte (no rill server sends one; a broken or
 * hostile one may): the caller still gets words, the code's own (it got "" before). */
static void script_nul_message(struct fake *f, int fd)
{
	fake_hello(f, fd);
	uint64_t id = fake_expect(f, fd, RILL_WIRE_PING);
	int n = rill_wire_error_encode(f->out, FAKE_BUF_BYTES, id, -ENOENT, 0, "xyz");
	FAKE_CHECK(f, n > 3);
	f->out[n - 3] = '\0'; /* the message is the frame's last bytes */
	send_raw(fd, f->out, (size_t)n);
}

static void test_error_message_nul(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_nul_message);
	struct rill_client *c = connect_ok(&f, NULL);
	struct rill_client_error err = {{0}};
	assert_int_equal(rill_client_ping(c, &err), -ENOENT);
	assert_string_equal(err.message, rill_strerror(-ENOENT));
	rill_client_close(c);
	fake_join(&f);
}

/* The server resets the connection after the handshake (SO_LINGER 0). */
static void script_reset(struct fake *f, int fd)
{
	fake_hello(f, fd);
	struct linger l = {.l_onoff = 1, .l_linger = 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
	f->closed = true;
}

/*
 * Corked, a blocking produce whose flush meets a server that is gone fails (-ECONNRESET or
 * -EPIPE), and its request, whose frame never went, is not left in flight: it was, and
 * every later call said "-EBUSY: PRODUCE requests are in flight" (found by fuzz_client).
 */
static void test_corked_produce_to_gone_server(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_reset);
	struct rill_client *c = connect_ok(&f, NULL);
	fake_join(&f); /* the reset is sent */
	usleep(50000); /* and has arrived */
	rill_client_cork(c);
	struct rill_record ev;
	make_events(&ev, 1);
	struct rill_client_ack ack;
	struct rill_client_error err = {{0}};
	int rc = rill_client_produce(c, "orders", &ev, 1, 1, &ack, &err);
	if (rc != -ECONNRESET && rc != -EPIPE)
		fail_msg("produce to a reset connection: %d (%s): %s", rc, rill_strerror(rc),
			 err.message);
	assert_int_equal(rill_client_inflight(c), 0);
	rc = rill_client_ping(c, &err);
	if (rc == -EBUSY || rc == 0)
		fail_msg("ping after it: %d (%s): %s", rc, rill_strerror(rc), err.message);
	rill_client_close(c);
}

/* Answer two PRODUCEs with one write, then close with the client's next bytes unread (a
 * reset): the client's later sends fail, but both answers are already on their way. */
static void script_answers_then_closes(struct fake *f, int fd)
{
	fake_hello(f, fd);
	uint8_t both[2 * 4096];
	size_t at = 0;
	for (int i = 0; i < 2; i++) {
		struct rill_wire_header hdr;
		FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_PRODUCE);
		int n = rill_wire_ack_begin(both + at, sizeof(both) - at, hdr.request_id);
		struct rill_wire_ack_entry e = {
			.partition = 0, .offset = (uint64_t)i, .event_count = 1};
		n = rill_wire_ack_entry(both + at, sizeof(both) - at, (size_t)n, &e);
		rill_wire_ack_finish(both + at, (uint32_t)n, 1);
		at += (size_t)n;
	}
	send_raw(fd, both, at);
	struct timespec ts = {0, 50000000}; /* let the client send more: the close resets */
	nanosleep(&ts, NULL);
	close(fd);
	f->closed = true;
}

static void test_answers_survive_a_failed_send(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f, script_answers_then_closes);
	struct rill_client *c = connect_ok(&f, NULL);
	struct rill_client_error err = {{0}};
	struct rill_record ev[1];
	struct rill_client_ack acks[1];
	make_events(ev, 1);
	uint64_t a = 0, b = 0, id = 0;
	uint32_t count = 0;
	assert_int_equal(rill_client_produce_send(c, "t", ev, 1, 1, &a, &err), 0);
	assert_int_equal(rill_client_produce_send(c, "t", ev, 1, 1, &b, &err), 0);
	/* The first answer is read, and the second, sent with it, comes into the buffer. */
	assert_int_equal(rill_client_produce_wait(c, &id, acks, 1, &count, 5000000000ull, &err), 0);
	assert_true(id == a);
	/* The server is gone: sends fail within a few tries (the first may still be taken). */
	int rc = 0;
	for (int i = 0; i < 50 && rc == 0; i++) {
		struct timespec ts = {0, 20000000};
		nanosleep(&ts, NULL);
		rc = rill_client_produce_send(c, "t", ev, 1, 1, NULL, &err);
	}
	assert_true(rc == -EPIPE || rc == -ECONNRESET);
	/* The answer already received is still handed out. */
	assert_int_equal(rill_client_produce_wait(c, &id, acks, 1, &count, 5000000000ull, &err), 0);
	assert_true(id == b);
	assert_int_equal(count, 1);
	assert_int_equal(acks[0].offset, 1);
	/* Then the end of the stream: the connection is closed for good. */
	rc = rill_client_produce_wait(c, &id, acks, 1, &count, 5000000000ull, &err);
	assert_true(rc < 0);
	assert_int_equal(rill_client_ping(c, &err), -ENOTCONN);
	rill_client_close(c);
	fake_join(&f);
}

/* Acknowledge request @id of one event at @offset. */
static void fake_ack1(struct fake *f, int fd, uint64_t id, uint64_t offset)
{
	int n = rill_wire_ack_begin(f->out, FAKE_BUF_BYTES, id);
	struct rill_wire_ack_entry e = {.partition = 0, .offset = offset, .event_count = 1};
	n = rill_wire_ack_entry(f->out, FAKE_BUF_BYTES, (size_t)n, &e);
	rill_wire_ack_finish(f->out, (uint32_t)n, 1);
	send_raw(fd, f->out, (size_t)n);
}

#define CUT_SMALL      3u
#define CUT_BIG_BYTES  900000u /* an event: the server's receive window takes a few */
#define CUT_BIG_MAX    32u
#define CUT_TIMEOUT_NS 500000000ull
static atomic_int cut_phase; /* 1: the client's send was cut off by its deadline */

/* Acknowledge three PRODUCEs, then read nothing until the client's send is cut off; then
 * read on to the end of the client's stream, acknowledging each whole frame but the last,
 * and close: that one's answer never comes. */
static void script_ack_then_stall(struct fake *f, int fd)
{
	int bounded = 256 << 10; /* no autotuning: the client's sends wait soon */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bounded, sizeof(bounded));
	fake_hello(f, fd);
	uint64_t ids[CUT_SMALL];
	for (uint32_t i = 0; i < CUT_SMALL; i++)
		ids[i] = fake_expect(f, fd, RILL_WIRE_PRODUCE);
	for (uint32_t i = 0; i < CUT_SMALL; i++)
		fake_ack1(f, fd, ids[i], i);
	while (atomic_load(&cut_phase) < 1)
		usleep(1000);
	struct rill_wire_header hdr;
	uint64_t offset = CUT_SMALL, held = 0;
	while (fake_read(f, fd, &hdr)) { /* the last frame is cut short: the end then */
		FAKE_CHECK(f, hdr.type == RILL_WIRE_PRODUCE);
		if (held != 0)
			fake_ack1(f, fd, held, offset++);
		held = hdr.request_id;
	}
	FAKE_CHECK(f, held != 0);
	close(fd); /* the client shut its side, so the end came: the server closes */
	f->closed = true;
}

/*
 * A send cut off by its deadline (the server does not read) ends sending, not reading: the
 * answers the client had read while it waited, and those the server sends afterwards to the
 * requests that went whole, are handed out, then the end of the stream. The client closed at
 * once and threw them away (rill_client_inflight 0, -ENOTCONN), though the server had
 * acknowledged three requests, unlike after -EPIPE or -ECONNRESET.
 */
static void test_answers_survive_a_cut_send(void **state)
{
	(void)state;
	struct fake f;
	atomic_store(&cut_phase, 0);
	fake_start(&f, script_ack_then_stall);
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.timeout_ns = CUT_TIMEOUT_NS;
	struct rill_client *c = connect_ok(&f, &config);
	struct rill_client_error err = {{0}};
	struct rill_record ev;
	make_events(&ev, 1);
	uint64_t ids[CUT_SMALL + CUT_BIG_MAX];
	for (uint32_t i = 0; i < CUT_SMALL; i++)
		assert_int_equal(rill_client_produce_send(c, "t", &ev, 1, 2, &ids[i], &err), 0);
	static uint8_t big[CUT_BIG_BYTES];
	ev.payload = big;
	ev.payload_bytes = sizeof(big);
	uint32_t sent = CUT_SMALL;
	int rc = 0;
	while (sent < CUT_SMALL + CUT_BIG_MAX &&
	       (rc = rill_client_produce_send(c, "t", &ev, 1, 2, &ids[sent], &err)) == 0)
		sent++;
	atomic_store(&cut_phase, 1);
	if (rc != -ETIMEDOUT)
		fail_msg("after %u sends: %d (%s): %s; expected the deadline", sent, rc,
			 rill_strerror(rc), err.message);
	assert_non_null(strstr(err.message, "does not read"));
	assert_int_equal(rill_client_inflight(c), sent);
	assert_true(rill_client_fd(c) >= 0);
	assert_true(rill_client_buffered(c)); /* the three answers, read while it waited */
	/* Nothing more goes: the cut frame's rest would be taken for a new one. */
	make_events(&ev, 1);
	assert_int_equal(rill_client_produce_send(c, "t", &ev, 1, 2, NULL, &err), -EPIPE);
	assert_non_null(strstr(err.message, "cut off"));
	/* The requests the server answered are handed out, in order, then the end of the
	 * stream, which takes the last one with it (its outcome is unknown). */
	struct rill_client_ack ack;
	for (uint32_t i = 0; i + 1 < sent; i++) {
		uint64_t id = 0;
		uint32_t count = 0;
		rc = rill_client_produce_wait(c, &id, &ack, 1, &count, 5000000000ull, &err);
		if (rc != 0)
			fail_msg("answer %u of %u: %d (%s): %s", i, sent, rc, rill_strerror(rc),
				 err.message);
		assert_int_equal(id, ids[i]);
		assert_int_equal(count, 1);
		assert_int_equal(ack.offset, i);
	}
	uint64_t id = 0;
	uint32_t count = 0;
	assert_int_equal(rill_client_inflight(c), 1);
	assert_int_equal(rill_client_produce_wait(c, &id, &ack, 1, &count, 5000000000ull, &err),
			 -ECONNRESET);
	assert_int_equal(rill_client_inflight(c), 0);
	assert_int_equal(rill_client_fd(c), -1);
	assert_int_equal(rill_client_produce_wait(c, &id, &ack, 1, &count, 0, &err), -ENOTCONN);
	rill_client_close(c);
	fake_join(&f);
}

/* ---- An event loop's producer, with nothing in flight ---------------------------------- */

static void script_close_idle(struct fake *f, int fd)
{
	fake_hello(f, fd);
	close(fd); /* as `rill serve` does past its idle_timeout_s */
	f->closed = true;
}

static void script_fatal_idle(struct fake *f, int fd)
{
	fake_hello(f, fd);
	fake_error(f, fd, 0, -ENOMEM, RILL_WIRE_ERROR_F_FATAL, "out of memory for input");
	close(fd);
	f->closed = true;
}

static atomic_int late_phase; /* 1: the client's ping gave up */

/* Answer a PING only after the client gave up on it, then the next one at once. */
static void script_late_pong(struct fake *f, int fd)
{
	fake_hello(f, fd);
	uint64_t id = fake_expect(f, fd, RILL_WIRE_PING);
	while (atomic_load(&late_phase) < 1)
		usleep(1000);
	fake_pong(f, fd, id);
	fake_pong(f, fd, fake_expect(f, fd, RILL_WIRE_PING));
}

/* What an event loop does when the producer's fd turns readable (client.h): wait with a
 * timeout of 0. */
static int idle_wake(struct rill_client *c, struct rill_client_error *err)
{
	struct pollfd p = {.fd = rill_client_fd(c), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 5000), 1);
	uint64_t id;
	struct rill_client_ack ack;
	uint32_t count;
	return rill_client_produce_wait(c, &id, &ack, 1, &count, 0, err);
}

/*
 * A producer with nothing in flight, in an event loop, whose server closes the connection
 * (`rill serve`'s idle timeout) or ends it with a fatal ERROR: the fd turns readable and
 * produce_wait reports the end, the client closing (fd -1). It answered -ENODATA without
 * reading, so the fd stayed readable: the loop woke 1.3 million times in 4 s, never learnt
 * of the end, and the next send "succeeded" on the dead connection. A late answer to a
 * timed-out call is read and skipped, the fd quiet again.
 */
static void test_idle_producer_sees_the_end(void **state)
{
	(void)state;
	struct fake f;
	struct rill_client_error err = {{0}};
	struct rill_record ev;
	make_events(&ev, 1);
	fake_start(&f, script_close_idle);
	struct rill_client *c = connect_ok(&f, NULL);
	assert_int_equal(idle_wake(c, &err), -ECONNRESET);
	assert_non_null(strstr(err.message, "closed"));
	assert_int_equal(rill_client_fd(c), -1);
	assert_int_equal(rill_client_produce_send(c, "t", &ev, 1, 1, NULL, &err), -ENOTCONN);
	rill_client_close(c);
	fake_join(&f);

	fake_start(&f, script_fatal_idle);
	c = connect_ok(&f, NULL);
	assert_int_equal(idle_wake(c, &err), -ENOMEM);
	assert_string_equal(err.message, "out of memory for input");
	assert_int_equal(rill_client_fd(c), -1);
	rill_client_close(c);
	fake_join(&f);

	atomic_store(&late_phase, 0);
	fake_start(&f, script_late_pong);
	struct rill_client_config config;
	rill_client_config_default(&config);
	config.timeout_ns = 200000000ull;
	c = connect_ok(&f, &config);
	assert_int_equal(rill_client_ping(c, &err), -ETIMEDOUT);
	atomic_store(&late_phase, 1);
	assert_int_equal(idle_wake(c, &err), -ENODATA);
	struct pollfd p = {.fd = rill_client_fd(c), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 0), 0); /* nothing left to wake the loop */
	assert_false(rill_client_buffered(c));
	assert_int_equal(rill_client_ping(c, &err), 0);
	rill_client_close(c);
	fake_join(&f);
}

/* ---- Events waiting in the client ------------------------------------------------------ */

#define HELD_EVENTS 100u
static atomic_int held_phase; /* 1: the client has read the held events */

/* One subscription with HELD_EVENTS events at once, a second one quiet; later, three
 * events for the second in one frame. */
static void script_events_held(struct fake *f, int fd)
{
	fake_hello(f, fd);
	uint64_t first = fake_expect(f, fd, RILL_WIRE_SUBSCRIBE);
	struct rill_wire_subscribed_entry e = {
		.partition = 0, .first_offset = 0, .end_offset = HELD_EVENTS};
	int n = rill_wire_subscribed_encode(f->out, FAKE_BUF_BYTES, first, &e, 1);
	send_raw(fd, f->out, (size_t)n);
	fake_events(f, fd, first, 0, 0, HELD_EVENTS);
	uint64_t second = fake_expect(f, fd, RILL_WIRE_SUBSCRIBE);
	e = (struct rill_wire_subscribed_entry){.partition = 1, .first_offset = 7, .end_offset = 7};
	n = rill_wire_subscribed_encode(f->out, FAKE_BUF_BYTES, second, &e, 1);
	send_raw(fd, f->out, (size_t)n);
	while (atomic_load(&held_phase) < 1)
		usleep(1000);
	fake_events(f, fd, second, 1, 7, 3);
}

/*
 * rill_client_buffered counts the events read and not yet handed out: those a SUBSCRIBE's
 * wait set aside, and the rest of the frame being handed out. It said false with a hundred
 * events in the client and the fd quiet, so an event loop following client.h slept on
 * them.
 */
static void test_buffered_counts_events(void **state)
{
	(void)state;
	struct fake f;
	atomic_store(&held_phase, 0);
	fake_start(&f, script_events_held);
	struct rill_client *c = connect_ok(&f, NULL);
	struct rill_client_error err = {{0}};
	uint32_t count = 0;
	assert_int_equal(rill_client_subscribe(c, "orders", 0, RILL_CLIENT_FROM_EARLIEST, 0, NULL,
					       &count, &err),
			 0);
	usleep(100000); /* the events are in the client's socket */
	assert_int_equal(rill_client_subscribe(c, "orders", 1, RILL_CLIENT_FROM_LATEST, 0, NULL,
					       &count, &err),
			 0);
	struct pollfd p = {.fd = rill_client_fd(c), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 0), 0); /* the SUBSCRIBE's wait read them all */
	assert_true(rill_client_buffered(c));
	struct rill_client_event ev;
	for (uint64_t i = 0; i < HELD_EVENTS; i++) {
		assert_true(rill_client_buffered(c));
		assert_int_equal(rill_client_next(c, &ev, 0, &err), 1);
		assert_int_equal(ev.partition, 0);
		assert_int_equal(ev.offset, i);
	}
	assert_false(rill_client_buffered(c));
	assert_int_equal(rill_client_next(c, &ev, 0, &err), 0);
	/* The rest of a frame read in place. */
	atomic_store(&held_phase, 1);
	assert_int_equal(rill_client_next(c, &ev, 5000000000ull, &err), 1);
	assert_int_equal(ev.offset, 7);
	for (uint64_t i = 8; i < 10; i++) {
		assert_true(rill_client_buffered(c));
		assert_int_equal(rill_client_next(c, &ev, 0, &err), 1);
		assert_int_equal(ev.partition, 1);
		assert_int_equal(ev.offset, i);
	}
	assert_false(rill_client_buffered(c));
	rill_client_close(c);
	fake_join(&f);
}

/* ---- `rill produce` against the fake server ------------------------------------------- */

static const char *rill_binary; /* argv[1]: the rill command (tests/meson.build passes it) */

#define PRODUCE_CLI_LINES       120u
#define PRODUCE_CLI_BATCH       8u
#define PRODUCE_CLI_VALUE_BYTES 100000u /* one event's string: a request of 800 KB */

_Static_assert((PRODUCE_CLI_VALUE_BYTES + 256u) * PRODUCE_CLI_BATCH <= FAKE_FRAME_BYTES,
	       "a batch fits the fake server's frame");

/* Answer the SCHEMAS request a command makes at start: one type, Big, of one string. */
static void fake_schemas(struct fake *f, int fd)
{
	static const char answer[] =
		"{\"schemas\":[{\"type_id\":1,\"definition\":{\"type\":\"Big\",\"version\":1,"
		"\"fields\":[{\"name\":\"s\",\"type\":\"string\",\"max_length\":200000}]}}],"
		"\"more\":false}";
	struct rill_wire_header hdr;
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_ADMIN);
	int n = rill_wire_admin_ok_encode(f->out, FAKE_BUF_BYTES, hdr.request_id, answer,
					  sizeof(answer) - 1);
	send_raw(fd, f->out, (size_t)n);
}

/*
 * Take two PRODUCEs and read no more, so that the command's sends soon wait for the socket
 * (megabytes unread); then acknowledge the first, which the waiting send reads into the
 * client's early queue, and reset the connection: that send fails (-EPIPE or -ECONNRESET)
 * with the answer already in the client.
 */
static void script_ack_then_reset(struct fake *f, int fd)
{
	int bounded = 64 << 10;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bounded, sizeof(bounded));
	fake_hello(f, fd);
	fake_schemas(f, fd);
	struct rill_wire_header hdr;
	struct rill_wire_produce p = {0};
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_PRODUCE);
	FAKE_CHECK(f, rill_wire_produce_decode(body_of(f), hdr.body_bytes, &p, NULL) == 0);
	FAKE_CHECK(f, p.event_count == PRODUCE_CLI_BATCH);
	uint64_t first = hdr.request_id;
	FAKE_CHECK(f, fake_expect(f, fd, RILL_WIRE_PRODUCE) == first + 1);
	usleep(500000); /* the command's sends wait by now */
	int at = rill_wire_ack_begin(f->out, FAKE_BUF_BYTES, first);
	for (uint32_t i = 0; i < PRODUCE_CLI_BATCH; i++) {
		struct rill_wire_ack_entry e = {.partition = 0, .offset = i, .event_count = 1};
		at = rill_wire_ack_entry(f->out, FAKE_BUF_BYTES, (size_t)at, &e);
	}
	rill_wire_ack_finish(f->out, (uint32_t)at, PRODUCE_CLI_BATCH);
	send_raw(fd, f->out, (size_t)at);
	usleep(100000); /* read by the waiting send */
	struct linger l = {.l_onoff = 1, .l_linger = 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
	f->closed = true;
}

/*
 * As script_ack_then_reset, but stay silent past the client's timeout (10 s) without
 * reading: the waiting send fails with -ETIMEDOUT and the client shuts its side; then read
 * to the end of its stream, answer the second request (its frame went whole), and close.
 */
static void script_ack_then_silence(struct fake *f, int fd)
{
	int bounded = 64 << 10;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bounded, sizeof(bounded));
	fake_hello(f, fd);
	fake_schemas(f, fd);
	struct rill_wire_header hdr;
	FAKE_CHECK(f, fake_read(f, fd, &hdr) && hdr.type == RILL_WIRE_PRODUCE);
	uint64_t first = hdr.request_id;
	FAKE_CHECK(f, fake_expect(f, fd, RILL_WIRE_PRODUCE) == first + 1);
	int at = rill_wire_ack_begin(f->out, FAKE_BUF_BYTES, first);
	for (uint32_t i = 0; i < PRODUCE_CLI_BATCH; i++) {
		struct rill_wire_ack_entry e = {.partition = 0, .offset = i, .event_count = 1};
		at = rill_wire_ack_entry(f->out, FAKE_BUF_BYTES, (size_t)at, &e);
	}
	rill_wire_ack_finish(f->out, (uint32_t)at, PRODUCE_CLI_BATCH);
	send_raw(fd, f->out, (size_t)at);
	sleep(12); /* past the client's 10 s: its waiting send gives up */
	char sink[65536];
	for (int i = 0; i < 100000 && recv(fd, sink, sizeof(sink), 0) > 0; i++)
		; /* to its shutdown */
	/* Then the second request's answer, late: its frame went whole. */
	at = rill_wire_ack_begin(f->out, FAKE_BUF_BYTES, first + 1);
	for (uint32_t i = 0; i < PRODUCE_CLI_BATCH; i++) {
		struct rill_wire_ack_entry e = {
			.partition = 0, .offset = PRODUCE_CLI_BATCH + i, .event_count = 1};
		at = rill_wire_ack_entry(f->out, FAKE_BUF_BYTES, (size_t)at, &e);
	}
	rill_wire_ack_finish(f->out, (uint32_t)at, PRODUCE_CLI_BATCH);
	send_raw(fd, f->out, (size_t)at);
	close(fd);
	f->closed = true;
}

/* Run `rill produce --batch 8` against @address, stdin from @in, stdout and stderr into
 * @out and @errs: its exit status. */
static int produce_cli_run(const char *address, const char *in, const char *out, const char *errs)
{
	posix_spawn_file_actions_t fa;
	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, in, O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out, O_WRONLY | O_CREAT | O_TRUNC,
					 0600);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, errs, O_WRONLY | O_CREAT | O_TRUNC,
					 0600);
	char batch[16];
	snprintf(batch, sizeof(batch), "%u", PRODUCE_CLI_BATCH);
	char *argv[] = {"rill",    "produce", "--connect", (char *)address, "--topic", "big",
			"--batch", batch,     NULL};
	extern char **environ;
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, rill_binary, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* The first line number on stderr's line @text ("rill: produce: line N: ..."), or 0. */
static unsigned long error_line_number(const char *text)
{
	const char *at = strstr(text, "line ");
	return at != NULL ? strtoul(at + 5, NULL, 10) : 0;
}

/* The files of a `rill produce` run in a new folder @name: @in holds PRODUCE_CLI_LINES
 * lines of Big events, k1 on, each PRODUCE_CLI_VALUE_BYTES long. */
struct produce_cli_files {
	char dir[128], in[192], out[192], errs[192];
};

static void produce_cli_files_make(struct produce_cli_files *pf, const char *name)
{
	assert_int_equal(test_dir_make(pf->dir, sizeof(pf->dir), name), 0);
	snprintf(pf->in, sizeof(pf->in), "%s/in.jsonl", pf->dir);
	snprintf(pf->out, sizeof(pf->out), "%s/out.jsonl", pf->dir);
	snprintf(pf->errs, sizeof(pf->errs), "%s/err.txt", pf->dir);
	FILE *fin = fopen(pf->in, "w");
	assert_non_null(fin);
	char *value = malloc(PRODUCE_CLI_VALUE_BYTES + 1);
	assert_non_null(value);
	memset(value, 'v', PRODUCE_CLI_VALUE_BYTES);
	value[PRODUCE_CLI_VALUE_BYTES] = '\0';
	for (uint32_t i = 1; i <= PRODUCE_CLI_LINES; i++)
		fprintf(fin, "{\"key\":\"k%u\",\"type\":\"Big\",\"data\":{\"s\":\"%s\"}}\n", i,
			value);
	free(value);
	assert_int_equal(fclose(fin), 0);
}

/* The acknowledgements printed on @out: each k<n> at offset n - 1, in order. Their count. */
static uint32_t produce_cli_acks(const char *out)
{
	FILE *fo = fopen(out, "r");
	assert_non_null(fo);
	char line[4096];
	uint32_t acked = 0;
	while (fgets(line, sizeof(line), fo) != NULL) {
		char want[128];
		snprintf(want, sizeof(want), "{\"key\":\"k%u\",\"partition\":0,\"offset\":%u}\n",
			 acked + 1, acked);
		assert_string_equal(line, want);
		acked++;
	}
	fclose(fo);
	return acked;
}

/*
 * A server that acknowledges a request and then resets the connection while `rill produce`
 * is sending: the acknowledgement, already in the client, is printed, and stderr names only
 * the lines whose outcome is truly unknown (sent, unanswered) and, last, the batch whose
 * frame never went whole as not sent. It reported every line in flight, the acknowledged
 * ones too, as "refused ... (the outcome is unknown)": users who sent those again wrote
 * them twice.
 */
static void test_produce_cli_keeps_answers_after_a_failed_send(void **state)
{
	(void)state;
	if (rill_binary == NULL)
		skip(); /* run by hand without the rill command: nothing to test */
	struct produce_cli_files pf;
	produce_cli_files_make(&pf, "client-produce");

	struct fake f;
	fake_start(&f, script_ack_then_reset);
	int status = produce_cli_run(f.address, pf.in, pf.out, pf.errs);
	fake_join(&f);
	assert_int_equal(status, 1);

	/* stdout: the first batch's acknowledgements, k1 to k8 at offsets 0 to 7. */
	assert_int_equal(produce_cli_acks(pf.out), PRODUCE_CLI_BATCH);

	/* stderr: lines 9 on, in order, each unknown; the last batch not sent. */
	char line[4096];
	FILE *fe = fopen(pf.errs, "r");
	assert_non_null(fe);
	unsigned long expect = PRODUCE_CLI_BATCH + 1, unknown = 0, not_sent = 0;
	while (fgets(line, sizeof(line), fe) != NULL) {
		bool is_not_sent = strstr(line, "not sent") != NULL;
		/* In order from line 9, each unknown, then the batch not sent. */
		if (error_line_number(line) != expect++ || (!is_not_sent && not_sent > 0) ||
		    (!is_not_sent && strstr(line, "the outcome is unknown") == NULL))
			fail_msg("stderr of rill produce, line %lu expected: %s", expect - 1, line);
		not_sent += is_not_sent;
		unknown += !is_not_sent;
	}
	fclose(fe);
	assert_true(unknown >= PRODUCE_CLI_BATCH); /* the second request at least */
	assert_int_equal(not_sent, PRODUCE_CLI_BATCH);
	assert_int_equal(test_dir_remove(pf.dir), 0);
}

/*
 * A server that acknowledges a request, reads nothing past the client's timeout, then
 * answers the second request after the client shut its side: both batches' answers are
 * printed; the batch whose send timed out is "not sent", saying the server did not read
 * it in time. rill produce failed every line in flight on that -ETIMEDOUT as "the outcome
 * is unknown", the second batch too, whose answer was yet to come.
 */
static void test_produce_cli_keeps_answers_after_a_send_timeout(void **state)
{
	(void)state;
	if (rill_binary == NULL)
		skip();
	struct produce_cli_files pf;
	produce_cli_files_make(&pf, "client-produce-stall");

	struct fake f;
	fake_start(&f, script_ack_then_silence);
	int status = produce_cli_run(f.address, pf.in, pf.out, pf.errs);
	fake_join(&f);
	assert_int_equal(status, 1);

	uint32_t acked = produce_cli_acks(pf.out);
	if (acked != 2 * PRODUCE_CLI_BATCH)
		fail_msg("%u acknowledgements printed, want the first two batches' %u", acked,
			 2 * PRODUCE_CLI_BATCH);

	char line[4096];
	FILE *fe = fopen(pf.errs, "r");
	assert_non_null(fe);
	unsigned long not_sent = 0;
	while (fgets(line, sizeof(line), fe) != NULL) {
		if (error_line_number(line) <= 2 * PRODUCE_CLI_BATCH)
			fail_msg("an acknowledged line reported on stderr: %s", line);
		not_sent += strstr(line, "not sent: the server did not read it in time") != NULL;
	}
	fclose(fe);
	assert_int_equal(not_sent, PRODUCE_CLI_BATCH);
	assert_int_equal(test_dir_remove(pf.dir), 0);
}

int main(int argc, char **argv)
{
	rill_binary = argc > 1 ? argv[1] : NULL;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_errors),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_resolve_within_the_timeout),
		cmocka_unit_test(test_keepalive_options),
		cmocka_unit_test(test_server_stops_reading),
		cmocka_unit_test(test_handshake_refused),
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_frame_limit_in_force),
		cmocka_unit_test(test_fatal_and_malformed),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_timeout_then_fatal),
		cmocka_unit_test(test_subscribe),
		cmocka_unit_test(test_subscribe_large_frames),
		cmocka_unit_test(test_ack_trailing_bytes),
		cmocka_unit_test(test_subscribe_partition_error),
		cmocka_unit_test(test_answers_survive_a_failed_send),
		cmocka_unit_test(test_answers_survive_a_cut_send),
		cmocka_unit_test(test_idle_producer_sees_the_end),
		cmocka_unit_test(test_buffered_counts_events),
		cmocka_unit_test(test_sends_read_answers_meanwhile),
		cmocka_unit_test(test_fatal_read_while_sending),
		cmocka_unit_test(test_early_events_detached),
		cmocka_unit_test(test_error_message_nul),
		cmocka_unit_test(test_corked_produce_to_gone_server),
		cmocka_unit_test(test_produce_cli_keeps_answers_after_a_failed_send),
		cmocka_unit_test(test_produce_cli_keeps_answers_after_a_send_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
