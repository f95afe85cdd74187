/*
 * Raw TCP connections to a server in process on the loopback interface, for the tests that
 * send what the client library never would (malformed frames, requests pipelined in one
 * write: tests/integration/test_server_bad.c, test_server_ctl.c) and read the frames that
 * answer them (decoded with io/wire.h). Every call blocks, bounded by the socket's
 * timeouts; failures the test cannot go on from fail it (cmocka).
 */
#ifndef RILL_TEST_RAW_SOCKET_H
#define RILL_TEST_RAW_SOCKET_H

#include "tests/common/test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "io/wire.h"
#include "rill/error.h"

/* A connection to 127.0.0.1:@port with send and receive timeouts of @timeout_ms and Nagle
 * off (each send leaves as written); its descriptor. A refused connect fails the test. */
static inline int raw_connect(uint16_t port, uint32_t timeout_ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000),
			     .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
	if (rc == EINTR) {
		/* Interrupted: with a send timeout set, the kernel reports any pending
		 * notification (a signal, io_uring task work for this thread) as EINTR instead
		 * of restarting. The handshake goes on: wait for it, then ask how it ended. */
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int n;
		while ((n = poll(&p, 1, (int)timeout_ms)) < 0 && errno == EINTR)
			;
		socklen_t len = sizeof(rc);
		if (n == 0)
			rc = ETIMEDOUT;
		else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &len) != 0)
			rc = errno;
	}
	if (rc != 0)
		fail_msg("connect to 127.0.0.1:%u: %s", port, strerror(rc));
	return fd;
}

/* All @bytes of @buf, however many sends it takes; an error fails the test. */
static inline void raw_send_all(int fd, const void *buf, size_t bytes)
{
	const uint8_t *p = buf;
	while (bytes > 0) {
		ssize_t n = send(fd, p, bytes, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail_msg("send: %s", n < 0 ? strerror(errno) : "nothing sent");
		p += n;
		bytes -= (size_t)n;
	}
}

/* @bytes bytes into @buf: 1; 0 at a clean end of the stream before any byte; -EPROTO at
 * an end after some; -errno (-EAGAIN: the receive timeout passed; -ECONNRESET: the peer
 * reset). */
static inline int raw_recv_exact(int fd, void *buf, size_t bytes)
{
	uint8_t *p = buf;
	size_t got = 0;
	while (got < bytes) {
		ssize_t n = recv(fd, p + got, bytes - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return got == 0 ? 0 : -EPROTO;
		got += (size_t)n;
	}
	return 1;
}

/* What raw_recv_exact's @rc (not 1) means, for a failure message. */
static inline const char *raw_recv_outcome(int rc)
{
	return rc == 0         ? "the connection closed"
	       : rc == -EPROTO ? "the connection closed inside a frame"
	       : rc == -EAGAIN ? "no answer in time"
			       : strerror(-rc);
}

/*
 * The next frame: its header into @h, its body into @body (@body_bytes_max at most). 1, or
 * what raw_recv_exact returned for the header (0: the stream ended between frames). A bad
 * header, a body larger than @body, or a frame cut short fails the test, naming @what.
 */
static inline int raw_frame_recv(int fd, struct rill_wire_header *h, uint8_t *body,
				 size_t body_bytes_max, const char *what)
{
	uint8_t head[RILL_WIRE_HEADER_BYTES];
	int rc = raw_recv_exact(fd, head, sizeof(head));
	if (rc <= 0)
		return rc;
	rc = rill_wire_header_decode(head, sizeof(head), RILL_WIRE_FRAME_BYTES_MAX, h);
	if (rc != 0)
		fail_msg("%s: the server sent a bad header: %s", what, rill_strerror(rc));
	if (h->body_bytes > body_bytes_max)
		fail_msg("%s: the server sent a %u-byte body", what, h->body_bytes);
	if (h->body_bytes > 0 && (rc = raw_recv_exact(fd, body, h->body_bytes)) != 1)
		fail_msg("%s: the server's %s frame ended early: %s", what,
			 rill_wire_type_name(h->type), raw_recv_outcome(rc));
	return 1;
}

#endif /* RILL_TEST_RAW_SOCKET_H */
