/*
 * libFuzzer target for UDP ingress (io/udp_ingress.h), which reads whatever arrives on a
 * UDP port or, through DPDK, on the wire. The input (layout in udp_fuzz.h) is one Ethernet
 * frame or a stream of datagrams from a few sources; they go to two ingresses of a live
 * engine, one with ACK datagrams on. Every call is checked against its contract, and the
 * run aborts on any departure:
 *   - rill_udp_frame_ipv4: 0, -ENOENT or -EINVAL; a payload inside the frame; a frame
 *     built again from what it found parses to the same payload and addresses;
 *   - rill_udp_ingress_datagram: events published (>= 0), -ENOENT, -EAGAIN, or a wire or
 *     record error, each counted where the header says and nowhere else;
 *   - every ACK datagram offered is an ACK frame with no entries, to a source that sent
 *     a datagram the ingress took, for a sequence no higher than the highest it took
 *     from that source and no lower than the last one acknowledged to it.
 * Each input gets fresh ingresses (closed at its end, which waits for the shard), so the
 * sources' sequence state is the input's own. With at most 8 sources per input, the
 * paths past RILL_UDP_SOURCES_MAX are not reached here (test_udp_ingress's
 * test_sources_max covers them). The engine's directory is removed at a normal exit;
 * a run stopped by a crash leaves it in /tmp (a few MiB at most: retention). Built with
 * clang -fsanitize=fuzzer,address,undefined when meson's `fuzzing` option is on.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "io/wire.h"
#include "tests/fuzz/crc_fix.h"
#include "tests/fuzz/udp_fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct udp_fuzz_env env;

/* An ingress, and what the harness saw of each source it took a datagram from. */
struct fuzz_ingress {
	struct rill_udp_ingress *ing;
	struct fuzz_source {
		uint32_t ip;
		uint16_t port;
		uint64_t taken_max; /* the highest sequence of a datagram it took */
		uint64_t acked;     /* the last sequence acknowledged to the source */
	} sources[UDP_FUZZ_SOURCES + 1];
	unsigned source_count;
};

static struct fuzz_source *source_find(struct fuzz_ingress *fi, uint32_t ip, uint16_t port,
				       bool add)
{
	for (unsigned i = 0; i < fi->source_count; i++)
		if (fi->sources[i].ip == ip && fi->sources[i].port == port)
			return &fi->sources[i];
	if (!add || fi->source_count == sizeof(fi->sources) / sizeof(fi->sources[0]))
		return NULL;
	fi->sources[fi->source_count] = (struct fuzz_source){.ip = ip, .port = port};
	return &fi->sources[fi->source_count++];
}

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void env_close(void)
{
	udp_fuzz_close(&env);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	udp_fuzz_open(&env);
	atexit(env_close);
	return 0;
}

static bool malformed_code(int rc)
{
	bool record = rc <= RILL_E_RECORD_TRUNCATED && rc >= RILL_E_RECORD_PAYLOAD_TOO_LONG &&
		      rc != RILL_E_RECORD_NO_SPACE;
	bool wire = rc <= RILL_E_WIRE_TRUNCATED && rc >= RILL_E_WIRE_VERSION;
	return record || wire;
}

/* Every ACK datagram due: a bare ACK frame for a tracked source's durable point. */
static void acks_check(struct fuzz_ingress *fi)
{
	struct rill_udp_ingress *ing = fi->ing;
	rill_udp_ingress_poll(ing);
	struct rill_udp_peer to;
	uint8_t frame[RILL_WIRE_HEADER_BYTES + RILL_WIRE_ACK_BYTES_MIN];
	uint32_t bytes = 0;
	while (rill_udp_ingress_next_ack(ing, &to, frame, &bytes) == 1) {
		check(bytes == sizeof(frame));
		struct rill_wire_header h;
		check(rill_wire_header_decode(frame, bytes, RILL_WIRE_FRAME_BYTES_MAX, &h) == 0);
		check(h.type == RILL_WIRE_ACK && h.body_bytes == bytes - RILL_WIRE_HEADER_BYTES);
		uint32_t count = 1;
		struct rill_wire_iter it;
		check(rill_wire_ack_decode(frame + RILL_WIRE_HEADER_BYTES, h.body_bytes, &count,
					   &it) == 0);
		check(count == 0);
		struct rill_udp_source_stats st;
		check(rill_udp_ingress_source(ing, to.ip, to.port, &st) == 0);
		check(st.durable_contig <= st.highest);
		struct fuzz_source *src = source_find(fi, to.ip, to.port, false);
		check(src != NULL); /* never one that sent nothing the ingress took */
		check(h.request_id >= 1 && h.request_id <= src->taken_max &&
		      h.request_id >= src->acked);
		src->acked = h.request_id;
	}
}

/* One datagram, from an exact-size heap copy (AddressSanitizer sees a read past it); with
 * @fix, its records' CRCs made right first, so that changes inside them go on to the
 * write model. */
static void feed(struct fuzz_ingress *fi, const struct rill_udp_peer *from, const uint8_t *bytes,
		 uint32_t n, bool fix)
{
	struct rill_udp_ingress *ing = fi->ing;
	uint8_t *copy = malloc(n > 0 ? n : 1);
	check(copy != NULL);
	memcpy(copy, bytes, n);
	if (fix)
		crc_fix_produce(copy, n);
	struct rill_udp_stats a, b;
	rill_udp_ingress_stats(ing, &a);
	int rc = rill_udp_ingress_datagram(ing, from, copy, n, rill_clock_now_ns());
	rill_udp_ingress_stats(ing, &b);
	if (rc >= 0) { /* taken: a whole PRODUCE frame, its sequence in the header */
		struct rill_wire_header h;
		check(rill_wire_header_decode(copy, n, RILL_WIRE_FRAME_BYTES_MAX, &h) == 0);
		struct fuzz_source *src = source_find(fi, from->ip, from->port, true);
		check(src != NULL);
		if (h.request_id > src->taken_max)
			src->taken_max = h.request_id;
	}
	free(copy);
	check(b.datagrams == a.datagrams + 1);
	uint64_t malformed = 0, unknown = 0, dropped_min = 0, dropped_max = 0, events = 0;
	if (rc >= 0) {
		events = (uint64_t)rc;
		dropped_max = 1; /* some of its events went, not all */
	} else if (rc == -ENOENT) {
		unknown = 1;
	} else if (rc == -EAGAIN) {
		dropped_min = dropped_max = 1;
	} else {
		check(malformed_code(rc));
		malformed = 1;
	}
	check(b.malformed == a.malformed + malformed);
	check(b.unknown_topic == a.unknown_topic + unknown);
	check(b.dropped >= a.dropped + dropped_min && b.dropped <= a.dropped + dropped_max);
	check(b.events == a.events + events);
	acks_check(fi);
}

/* The input as an Ethernet frame; what it carries for us goes on as a datagram. */
static void frame(struct fuzz_ingress *fi, const uint8_t *data, uint32_t n, bool fix)
{
	uint8_t *copy = malloc(n > 0 ? n : 1);
	check(copy != NULL);
	memcpy(copy, data, n);
	const uint8_t *payload = NULL;
	uint32_t bytes = 0;
	struct rill_udp_peer from;
	int rc = rill_udp_frame_ipv4(copy, n, UDP_FUZZ_PORT, &payload, &bytes, &from);
	check(rc == 0 || rc == -ENOENT || rc == -EINVAL);
	if (rc == 0) {
		check(payload >= copy && bytes <= n && (size_t)(payload - copy) <= n - bytes);
		check(from.local_port == UDP_FUZZ_PORT);
		/* Built again from what was found, the frame says the same. */
		struct rill_udp_peer to = {.ip = from.local_ip,
					   .port = from.local_port,
					   .local_ip = from.ip,
					   .local_port = from.port,
					   .vlan = from.vlan,
					   .vlan_tci = from.vlan_tci};
		memcpy(to.mac, copy, sizeof(to.mac)); /* the frame's destination */
		uint8_t *again = malloc(rill_udp_frame_headers(&to) + bytes);
		check(again != NULL);
		uint32_t m = rill_udp_frame_build(again, from.mac, &to, payload, bytes);
		check(m == rill_udp_frame_headers(&to) + bytes &&
		      m == 42u + 4u * from.vlan + bytes);
		const uint8_t *payload2 = NULL;
		uint32_t bytes2 = 0;
		struct rill_udp_peer from2;
		check(rill_udp_frame_ipv4(again, m, UDP_FUZZ_PORT, &payload2, &bytes2, &from2) ==
		      0);
		check(bytes2 == bytes && memcmp(payload2, payload, bytes) == 0);
		check(from2.ip == from.ip && from2.port == from.port &&
		      from2.local_ip == from.local_ip && from2.local_port == from.local_port &&
		      memcmp(from2.mac, from.mac, sizeof(from.mac)) == 0 &&
		      from2.vlan == from.vlan && from2.vlan_tci == from.vlan_tci);
		free(again);
		feed(fi, &from, payload, bytes, fix);
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > (1u << 20))
		return 0;
	static struct fuzz_ingress ing[2];
	memset(ing, 0, sizeof(ing));
	check(rill_udp_ingress_create(&ing[0].ing, env.engine, false) == 0);
	check(rill_udp_ingress_create(&ing[1].ing, env.engine, true) == 0);
	if (data[0] & UDP_FUZZ_FRAME_MODE) {
		frame(&ing[(data[0] & UDP_FUZZ_ACKS_BIT) != 0], data + 1, (uint32_t)(size - 1),
		      (data[0] & UDP_FUZZ_FIX_CRC) != 0);
	} else {
		size_t at = 1;
		for (uint32_t i = 0; i < UDP_FUZZ_DATAGRAMS && at + 3 <= size; i++) {
			uint8_t source = data[at];
			size_t n = (size_t)data[at + 1] | (size_t)data[at + 2] << 8;
			at += 3;
			if (n > size - at)
				n = size - at;
			struct rill_udp_peer from = udp_fuzz_source(source);
			feed(&ing[(source & UDP_FUZZ_ACKS_BIT) != 0], &from, data + at, (uint32_t)n,
			     (source & UDP_FUZZ_FIX_CRC) != 0);
			at += n;
		}
	}
	rill_udp_ingress_destroy(ing[0].ing);
	rill_udp_ingress_destroy(ing[1].ing);
	return 0;
}
