/*
 * Unit tests of the UDP ingress (io/udp_ingress.h), no DPDK needed. First the pure frame
 * functions: rill_udp_frame_build then rill_udp_frame_ipv4 round trip (plain, with an
 * 802.1Q tag put in by hand, with Ethernet padding), -ENOENT for what is not ours (ARP,
 * IPv6, TCP, another UDP port) and -EINVAL for every broken length (IP total length past
 * the frame, ihl < 5, UDP length past IP or under 8, fragments, each truncation of a
 * frame). Then the ingress over an engine of two shards (topics of 4 partitions, one
 * schema) in a temporary directory: valid datagrams reach the log (read back through
 * subscriptions), malformed ones (a bad CRC inside, a count mismatch, a wrong frame type,
 * a body length other than the datagram's, request_id 0, every truncation) are counted
 * and never reach it, unknown topics are counted, per-source gaps and reordering are
 * counted per source, and with acknowledgements on: ACK frames addressed to the source
 * carry the highest contiguous durable sequence, stop at a gap until it fills, answer a
 * retransmission without publishing it, and the 64-datagram window drops what is past it;
 * a datagram that back-pressure let in only in part is not acknowledged until its
 * retransmission goes in whole; refused events settle their datagram; past
 * RILL_UDP_SOURCES_MAX sources the next is untracked (and, with acks on, dropped), until
 * sources idle for RILL_UDP_SOURCE_IDLE_NS with nothing in flight are forgotten for it.
 *
 * Random payload sizes come from the test seed (RILL_TEST_SEED replays a run).
 */
#include "tests/common/test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#include "base/bytes.h"
#include "io/udp_ingress.h"
#include "io/wire.h"
#include "rill/rill.h"
#include "tests/common/udp_events.h"

#define UT_SHARDS     2u
#define UT_FRAME_MAX  (46u + UE_DATAGRAM_BYTES)
#define UT_ETH        14u /* Ethernet header */
#define UT_IP         20u /* IPv4 header without options */
#define UT_UDP        8u
#define UT_HEADERS    (UT_ETH + UT_IP + UT_UDP) /* 42: what rill_udp_frame_build puts first */
#define UT_WINDOW_SEQ 4u                        /* the durable point when the window is tried */

static struct test_rng rng;
static struct ue_env env;

/* The ingress as seen from two senders (a, b: another port of the same host) and a third
 * address that sends only malformed datagrams. */
static const struct rill_udp_peer peer_a = {.ip = 0x0a000002u, /* 10.0.0.2 */
					    .port = 40001,
					    .mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02},
					    .local_ip = 0x0a000001u,
					    .local_port = RILL_UDP_PORT};
static const struct rill_udp_peer peer_b = {.ip = 0x0a000002u,
					    .port = 40002,
					    .mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02},
					    .local_ip = 0x0a000001u,
					    .local_port = RILL_UDP_PORT};
static const struct rill_udp_peer peer_c = {.ip = 0x0a000003u, /* another host */
					    .port = 40001,
					    .mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x03},
					    .local_ip = 0x0a000001u,
					    .local_port = RILL_UDP_PORT};
static const struct rill_udp_peer peer_d = {.ip = 0x0a000004u, /* a third host */
					    .port = 40001,
					    .mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x04},
					    .local_ip = 0x0a000001u,
					    .local_port = RILL_UDP_PORT};
static const struct rill_udp_peer peer_bad = {.ip = 0x0a0000eeu,
					      .port = 666,
					      .mac = {0x02, 0, 0, 0, 0, 0xee},
					      .local_ip = 0x0a000001u,
					      .local_port = RILL_UDP_PORT};
static const uint8_t our_mac[6] = {0x02, 0x52, 0x49, 0x4c, 0x4c, 0x01};

static void put16be(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16be(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* ---- Frames ----------------------------------------------------------------------------- */

/* The frame a sender at @from sends to the ingress (rill_udp_frame_build sees it the other
 * way round: its "to" is the ingress, its local side the sender). */
static uint32_t frame_to_ingress(uint8_t *frame, const struct rill_udp_peer *from,
				 const void *payload, uint32_t bytes)
{
	struct rill_udp_peer to = {.ip = from->local_ip,
				   .port = from->local_port,
				   .local_ip = from->ip,
				   .local_port = from->port};
	memcpy(to.mac, our_mac, 6);
	return rill_udp_frame_build(frame, from->mac, &to, payload, bytes);
}

/* The ones' complement sum of the IPv4 header at @ip: 0xffff when its checksum is right. */
static uint16_t ip_sum(const uint8_t *ip)
{
	uint32_t sum = 0;
	for (uint32_t i = 0; i < UT_IP; i += 2)
		sum += get16be(ip + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* rill_udp_frame_ipv4 must find @payload (@bytes) at @at in @frame, from @from. */
static void expect_parsed(const uint8_t *frame, uint32_t n, uint32_t at, const void *payload,
			  uint32_t bytes, const struct rill_udp_peer *from)
{
	const uint8_t *got = NULL;
	uint32_t got_bytes = 0;
	struct rill_udp_peer p;
	memset(&p, 0xa5, sizeof(p));
	int rc = rill_udp_frame_ipv4(frame, n, RILL_UDP_PORT, &got, &got_bytes, &p);
	if (rc != 0)
		fail_msg("a %u-byte frame with a %u-byte payload at %u: %d, expected 0", n, bytes,
			 at, rc);
	assert_ptr_equal(got, frame + at);
	assert_int_equal(got_bytes, bytes);
	assert_memory_equal(got, payload, bytes);
	assert_int_equal(p.ip, from->ip);
	assert_int_equal(p.port, from->port);
	assert_memory_equal(p.mac, from->mac, 6);
	assert_int_equal(p.local_ip, from->local_ip);
	assert_int_equal(p.local_port, from->local_port);
	assert_int_equal(p.vlan, from->vlan);
	assert_int_equal(p.vlan_tci, from->vlan_tci);
}

/* Parse a heap copy of exactly @n bytes of @frame. */
static int frame_parse(const uint8_t *frame, uint32_t n)
{
	const uint8_t *payload;
	uint32_t bytes;
	struct rill_udp_peer p;
	uint8_t *copy = test_exact_copy(frame, n);
	int rc = rill_udp_frame_ipv4(copy, n, RILL_UDP_PORT, &payload, &bytes, &p);
	free(copy);
	return rc;
}

static void expect_frame_rc(const uint8_t *frame, uint32_t n, int want, const char *what)
{
	int rc = frame_parse(frame, n);
	if (rc != want)
		fail_msg("%s (%u bytes): %d (%s), expected %d (%s)", what, n, rc, strerror(-rc),
			 want, strerror(-want));
}

/* @frame with an 802.1Q tag (VLAN 42) put in after the addresses, into @out; its length. */
static uint32_t frame_tag(uint8_t *out, const uint8_t *frame, uint32_t n)
{
	memcpy(out, frame, 12);
	put16be(out + 12, 0x8100);
	put16be(out + 14, 42); /* priority 0, VLAN 42 */
	memcpy(out + 16, frame + 12, n - 12);
	return n + 4;
}

static void test_frame_round_trip(void **state)
{
	(void)state;
	static uint8_t frame[UT_FRAME_MAX + 24], tagged[UT_FRAME_MAX + 4],
		rebuilt[UT_FRAME_MAX + 4], payload[UE_DATAGRAM_BYTES];
	for (uint32_t round = 0; round < 200; round++) {
		uint32_t bytes =
			round < 3 ? round : (uint32_t)test_rng_below(&rng, sizeof(payload) + 1);
		for (uint32_t i = 0; i < bytes; i++)
			payload[i] = (uint8_t)test_rng_next(&rng);
		const struct rill_udp_peer *from = round % 2 ? &peer_a : &peer_c;
		uint32_t n = frame_to_ingress(frame, from, payload, bytes);
		assert_int_equal(n, UT_HEADERS + bytes);
		/* What the builder wrote, byte by byte where it matters. */
		assert_memory_equal(frame, our_mac, 6);
		assert_memory_equal(frame + 6, from->mac, 6);
		assert_int_equal(get16be(frame + 12), 0x0800);
		assert_int_equal(frame[UT_ETH], 0x45);
		assert_int_equal(get16be(frame + UT_ETH + 2), UT_IP + UT_UDP + bytes);
		assert_int_equal(frame[UT_ETH + 9], 17);
		assert_int_equal(ip_sum(frame + UT_ETH), 0xffff); /* the checksum is right */
		uint32_t src;
		memcpy(&src, frame + UT_ETH + 12, 4);
		assert_int_equal(ntohl(src), from->ip);
		assert_int_equal(get16be(frame + UT_ETH + UT_IP + 4), UT_UDP + bytes);
		expect_parsed(frame, n, UT_HEADERS, payload, bytes, from);
		/* The same with an 802.1Q tag added by hand; an answer to that source goes back
		 * with the same tag, the rest byte for byte as the untagged frame. */
		uint32_t tn = frame_tag(tagged, frame, n);
		struct rill_udp_peer tagged_from = *from;
		tagged_from.vlan = true;
		tagged_from.vlan_tci = 42;
		expect_parsed(tagged, tn, UT_HEADERS + 4, payload, bytes, &tagged_from);
		struct rill_udp_peer plain_to = {.ip = from->local_ip, /* as frame_to_ingress */
						 .port = from->local_port,
						 .local_ip = from->ip,
						 .local_port = from->port};
		memcpy(plain_to.mac, our_mac, 6);
		struct rill_udp_peer tagged_to = plain_to;
		tagged_to.vlan = true;
		tagged_to.vlan_tci = 42;
		assert_int_equal(rill_udp_frame_headers(&tagged_to), UT_HEADERS + 4);
		assert_int_equal(
			rill_udp_frame_build(rebuilt, from->mac, &tagged_to, payload, bytes), tn);
		assert_memory_equal(rebuilt, tagged, tn);
		assert_int_equal(rill_udp_frame_headers(&plain_to), UT_HEADERS);
		/* Bytes after the IP packet (Ethernet's padding to 60 bytes, a trailer) are not
		 * the payload's. */
		memset(frame + n, 0, 24);
		expect_parsed(frame, n + 24, UT_HEADERS, payload, bytes, from);
	}
}

static void test_frame_not_ours(void **state)
{
	(void)state;
	uint8_t frame[128], tagged[132], payload[16] = "0123456789abcdef";
	uint32_t n = frame_to_ingress(frame, &peer_a, payload, sizeof(payload));
	uint8_t *ip = frame + UT_ETH;

	put16be(frame + 12, 0x0806); /* ARP */
	expect_frame_rc(frame, n, -ENOENT, "ARP");
	expect_frame_rc(frame, 42, -ENOENT, "an ARP frame of 42 bytes");
	expect_frame_rc(tagged, frame_tag(tagged, frame, n), -ENOENT, "ARP with an 802.1Q tag");
	put16be(frame + 12, 0x86dd); /* IPv6 */
	expect_frame_rc(frame, n, -ENOENT, "IPv6");
	put16be(frame + 12, 0x0800);
	expect_frame_rc(frame, n, 0, "the frame again");

	ip[9] = 6; /* TCP */
	expect_frame_rc(frame, n, -ENOENT, "TCP");
	ip[9] = 1; /* ICMP */
	expect_frame_rc(frame, n, -ENOENT, "ICMP");
	ip[9] = 17;
	put16be(ip + UT_IP + 2, RILL_UDP_PORT + 1);
	expect_frame_rc(frame, n, -ENOENT, "UDP to another port");
	expect_frame_rc(tagged, frame_tag(tagged, frame, n), -ENOENT,
			"UDP to another port with an 802.1Q tag");
	put16be(ip + UT_IP + 2, 53);
	expect_frame_rc(frame, n, -ENOENT, "DNS");
	/* Another port asked for: the same frame is then ours, and 7401 is not. */
	const uint8_t *p;
	uint32_t bytes;
	struct rill_udp_peer from;
	assert_int_equal(rill_udp_frame_ipv4(frame, n, 53, &p, &bytes, &from), 0);
	assert_int_equal(from.local_port, 53);
	assert_int_equal(bytes, sizeof(payload));
}

/* Every broken length: -EINVAL. */
static void test_frame_broken(void **state)
{
	(void)state;
	uint8_t good[128], frame[128], tagged[132], payload[20] = "event datagram bytes";
	uint32_t n = frame_to_ingress(good, &peer_a, payload, sizeof(payload));
	uint8_t *ip = frame + UT_ETH, *udp = frame + UT_ETH + UT_IP;
	uint16_t total = (uint16_t)(UT_IP + UT_UDP + sizeof(payload));

	memcpy(frame, good, n);
	put16be(ip + 2, (uint16_t)(total + 1));
	expect_frame_rc(frame, n, -EINVAL, "IP total length one past the frame");
	put16be(ip + 2, 0xffff);
	expect_frame_rc(frame, n, -EINVAL, "IP total length 65535");
	put16be(ip + 2, UT_IP + UT_UDP - 1);
	expect_frame_rc(frame, n, -EINVAL, "IP total length shorter than IP + UDP headers");
	put16be(ip + 2, 0);
	expect_frame_rc(frame, n, -EINVAL, "IP total length 0");

	for (uint8_t ihl = 0; ihl < 5; ihl++) {
		memcpy(frame, good, n);
		ip[0] = (uint8_t)(0x40 | ihl);
		expect_frame_rc(frame, n, -EINVAL, "ihl < 5");
	}
	memcpy(frame, good, n);
	ip[0] = 0x4f; /* 60 bytes of IP header: the UDP header would be past the total */
	expect_frame_rc(frame, n, -EINVAL, "ihl 15 in a 48-byte IP packet");
	memcpy(frame, good, n);
	ip[0] = 0x65; /* version 6 behind an IPv4 ethertype */
	expect_frame_rc(frame, n, -EINVAL, "IP version 6 as IPv4");

	memcpy(frame, good, n);
	put16be(udp + 4, (uint16_t)(UT_UDP + sizeof(payload) + 1));
	expect_frame_rc(frame, n, -EINVAL, "UDP length one past the IP packet");
	put16be(udp + 4, 0xffff);
	expect_frame_rc(frame, n, -EINVAL, "UDP length 65535");
	for (uint16_t ulen = 0; ulen < UT_UDP; ulen++) {
		put16be(udp + 4, ulen);
		expect_frame_rc(frame, n, -EINVAL, "UDP length under its header");
	}

	memcpy(frame, good, n);
	put16be(ip + 6, 0x2000); /* more fragments */
	expect_frame_rc(frame, n, -EINVAL, "a first fragment (MF)");
	put16be(ip + 6, 0x0001); /* offset 8 */
	expect_frame_rc(frame, n, -EINVAL, "a later fragment");
	put16be(ip + 6, 0x6001); /* DF with an offset: still a fragment */
	expect_frame_rc(frame, n, -EINVAL, "a fragment with DF and an offset");
	put16be(ip + 6, 0x4000); /* DF alone: whole */
	expect_frame_rc(frame, n, 0, "DF alone");

	/* Every truncation of the headers, plain and tagged, and every cut into the payload
	 * (the IP total length then runs past the frame). */
	uint32_t tn = frame_tag(tagged, good, n);
	for (uint32_t len = 0; len < n; len++) {
		char what[64];
		snprintf(what, sizeof(what), "the frame cut at %u of %u bytes", len, n);
		expect_frame_rc(good, len, -EINVAL, what);
	}
	for (uint32_t len = 0; len < tn; len++) {
		char what[64];
		snprintf(what, sizeof(what), "the tagged frame cut at %u of %u bytes", len, tn);
		expect_frame_rc(tagged, len, -EINVAL, what);
	}
	expect_frame_rc(good, n, 0, "the whole frame");
	expect_frame_rc(tagged, tn, 0, "the whole tagged frame");
}

/* ---- The ingress ------------------------------------------------------------------------ */

/* The file size limit as the tests found it, and whether test_lost_not_acked lowered it. */
static struct rlimit fsize_saved;
static bool fsize_lowered;

static void fsize_restore(void)
{
	if (!fsize_lowered)
		return;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &fsize_saved), 0);
	signal(SIGXFSZ, SIG_DFL);
	fsize_lowered = false;
}

static int ut_setup(void **state)
{
	(void)state;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &fsize_saved), 0);
	ue_open(&env, "udp-ingress", UT_SHARDS, 0);
	return 0;
}

static int ut_teardown(void **state)
{
	(void)state;
	fsize_restore();
	return ue_close(&env) == 0 ? 0 : -1;
}

static void stats_of(struct rill_udp_ingress *ing, struct rill_udp_stats *st)
{
	memset(st, 0xa5, sizeof(*st));
	rill_udp_ingress_stats(ing, st);
}

/* Poll until every acknowledgement asked for has come (bounded). */
static void ing_settle(struct rill_udp_ingress *ing)
{
	struct rill_producer *p = rill_udp_ingress_producer(ing);
	uint64_t deadline = rill_clock_now_ns() + UE_WAIT_NS;
	while (rill_producer_acks_owed(p) > 0 && rill_clock_now_ns() < deadline) {
		rill_udp_ingress_poll(ing);
		ue_sleep_ns(200000);
	}
	rill_udp_ingress_poll(ing);
	if (rill_producer_acks_owed(p) != 0)
		fail_msg("%llu acknowledgements still owed after %llu s",
			 (unsigned long long)rill_producer_acks_owed(p),
			 (unsigned long long)(UE_WAIT_NS / 1000000000u));
}

/* Decode an ACK datagram: it must be an ACK frame with no entries; its request_id. */
static uint64_t ack_decode(const uint8_t *frame, uint32_t bytes)
{
	struct rill_wire_header h;
	assert_int_equal(bytes, RILL_WIRE_HEADER_BYTES + RILL_WIRE_ACK_BYTES_MIN);
	assert_int_equal(rill_wire_header_decode(frame, bytes, RILL_WIRE_FRAME_BYTES_MAX, &h), 0);
	assert_int_equal(h.type, RILL_WIRE_ACK);
	assert_int_equal(h.body_bytes, RILL_WIRE_ACK_BYTES_MIN);
	uint32_t count = 99;
	struct rill_wire_iter it;
	assert_int_equal(
		rill_wire_ack_decode(frame + RILL_WIRE_HEADER_BYTES, h.body_bytes, &count, &it), 0);
	assert_int_equal(count, 0);
	return h.request_id;
}

static void expect_peer(const struct rill_udp_peer *got, const struct rill_udp_peer *want)
{
	assert_int_equal(got->ip, want->ip);
	assert_int_equal(got->port, want->port);
	assert_memory_equal(got->mac, want->mac, 6);
	assert_int_equal(got->local_ip, want->local_ip);
	assert_int_equal(got->local_port, want->local_port);
}

/*
 * The next ACK due (no poll): 1 with its sequence in @seq and its destination checked
 * against @to, or 0 when none is due.
 */
static int ack_next(struct rill_udp_ingress *ing, const struct rill_udp_peer *to, uint64_t *seq)
{
	uint8_t frame[RILL_WIRE_HEADER_BYTES + RILL_WIRE_ACK_BYTES_MIN + 16];
	uint32_t bytes = 0;
	struct rill_udp_peer dest;
	int rc = rill_udp_ingress_next_ack(ing, &dest, frame, &bytes);
	assert_true(rc == 0 || rc == 1);
	if (rc == 1) {
		*seq = ack_decode(frame, bytes);
		expect_peer(&dest, to);
	}
	return rc;
}

/* Poll until @from's ACK says @want; every ACK before says less (and only @from is owed
 * any). */
static void ack_wait(struct rill_udp_ingress *ing, const struct rill_udp_peer *from, uint64_t want)
{
	uint64_t deadline = rill_clock_now_ns() + UE_WAIT_NS, last = 0, seq = 0;
	bool any = false;
	while (rill_clock_now_ns() < deadline) {
		rill_udp_ingress_poll(ing);
		while (ack_next(ing, from, &seq) == 1) {
			if (seq > want)
				fail_msg("an ACK for %llu, beyond the %llu expected",
					 (unsigned long long)seq, (unsigned long long)want);
			if (any && seq < last)
				fail_msg("the ACKs went back from %llu to %llu",
					 (unsigned long long)last, (unsigned long long)seq);
			last = seq;
			any = true;
			if (seq == want)
				return;
		}
		ue_sleep_ns(200000);
	}
	struct rill_udp_source_stats ss;
	assert_int_equal(rill_udp_ingress_source(ing, from->ip, from->port, &ss), 0);
	fail_msg("no ACK for %llu in time (last %llu%s; durable_contig %llu)",
		 (unsigned long long)want, (unsigned long long)last, any ? "" : ", none at all",
		 (unsigned long long)ss.durable_contig);
}

/* Send the datagram @seq of @from with @count events (amounts from @first) to @topic;
 * the ingress's return value. */
/* One datagram of @count events from @from, taken in at @now_ns. */
static int send_dgram_at(struct rill_udp_ingress *ing, const struct rill_udp_peer *from,
			 const char *topic, uint64_t seq, uint32_t count, int64_t first,
			 uint64_t now_ns)
{
	static uint8_t buf[64u << 10];
	uint32_t n = ue_datagram(&env, buf, sizeof(buf), topic, seq, count, first);
	return rill_udp_ingress_datagram(ing, from, buf, n, now_ns);
}

static int send_dgram(struct rill_udp_ingress *ing, const struct rill_udp_peer *from,
		      const char *topic, uint64_t seq, uint32_t count, int64_t first)
{
	return send_dgram_at(ing, from, topic, seq, count, first, rill_clock_now_ns());
}

/* Amounts: source s, sequence q, event i: unique over a test. */
static int64_t amount_of(uint32_t source, uint64_t seq)
{
	return (int64_t)source * 1000000 + (int64_t)seq * 100;
}

static void expected_add(int64_t *expected, uint32_t *n, int64_t first, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		assert_true(*n < UE_EVENTS_MAX);
		expected[(*n)++] = first + i;
	}
}

static void test_valid_datagrams(void **state)
{
	(void)state;
	static int64_t expected[UE_EVENTS_MAX];
	uint32_t n = 0;
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, false), 0);
	assert_non_null(rill_udp_ingress_producer(ing));
	struct rill_udp_stats st;
	stats_of(ing, &st);
	assert_int_equal(st.datagrams, 0);
	assert_int_equal(st.events, 0);
	uint64_t events = 0;
	for (uint64_t seq = 1; seq <= 40; seq++) {
		const struct rill_udp_peer *from = seq % 2 ? &peer_a : &peer_c;
		uint32_t count = 1 + (uint32_t)test_rng_below(&rng, 8);
		int64_t first = amount_of(seq % 2 ? 1 : 3, (seq + 1) / 2);
		int rc = send_dgram(ing, from, UE_TOPIC, (seq + 1) / 2, count, first);
		assert_int_equal(rc, (int)count);
		expected_add(expected, &n, first, count);
		events += count;
		if (seq % 8 == 0)
			rill_udp_ingress_poll(ing);
	}
	stats_of(ing, &st);
	assert_int_equal(st.datagrams, 40);
	assert_int_equal(st.events, events);
	assert_int_equal(st.malformed, 0);
	assert_int_equal(st.unknown_topic, 0);
	assert_int_equal(st.dropped, 0);
	assert_int_equal(st.gaps, 0);
	assert_int_equal(st.reordered, 0);
	assert_int_equal(st.untracked, 0);
	assert_int_equal(st.acks, 0);
	struct rill_udp_source_stats ss;
	assert_int_equal(rill_udp_ingress_source(ing, peer_a.ip, peer_a.port, &ss), 0);
	assert_int_equal(ss.datagrams, 20);
	assert_int_equal(ss.highest, 20);
	assert_int_equal(ss.gaps, 0);
	assert_int_equal(ss.reordered, 0);
	assert_int_equal(rill_udp_ingress_source(ing, peer_c.ip, peer_c.port, &ss), 0);
	assert_int_equal(ss.datagrams, 20);
	assert_int_equal(rill_udp_ingress_source(ing, peer_b.ip, peer_b.port, &ss), -ENOENT);
	/* No ACKs with acknowledgements off. */
	uint64_t seq;
	rill_udp_ingress_poll(ing);
	assert_int_equal(ack_next(ing, &peer_a, &seq), 0);
	rill_udp_ingress_destroy(ing); /* flushes */
	ue_events_settle(&env, events);
	ue_log_check(&env, env.topic, expected, n);
}

/* @buf (@bytes) from peer_bad must be counted malformed, with a RILL_E_WIRE_* or
 * RILL_E_RECORD_* code (@code unless 0), and publish nothing. */
static void expect_malformed(struct rill_udp_ingress *ing, const void *buf, uint32_t bytes,
			     int code, const char *what)
{
	struct rill_udp_stats before, after;
	stats_of(ing, &before);
	uint8_t *copy = test_exact_copy(buf, bytes);
	int rc = rill_udp_ingress_datagram(ing, &peer_bad, copy, bytes, rill_clock_now_ns());
	free(copy);
	stats_of(ing, &after);
	if (rc >= 0 || rc > RILL_E_RECORD_TRUNCATED || rc <= RILL_E_LAST)
		fail_msg("%s (%u bytes): %d (%s), expected a RILL_E_WIRE_* or RILL_E_RECORD_* "
			 "code",
			 what, bytes, rc, rill_strerror(rc));
	if (code != 0 && rc != code)
		fail_msg("%s: %d (%s), expected %d (%s)", what, rc, rill_strerror(rc), code,
			 rill_strerror(code));
	if (after.malformed != before.malformed + 1 || after.datagrams != before.datagrams + 1 ||
	    after.events != before.events || after.dropped != before.dropped ||
	    after.unknown_topic != before.unknown_topic)
		fail_msg("%s: counted as datagrams +%llu, malformed +%llu, events +%llu, dropped "
			 "+%llu; expected one malformed datagram",
			 what, (unsigned long long)(after.datagrams - before.datagrams),
			 (unsigned long long)(after.malformed - before.malformed),
			 (unsigned long long)(after.events - before.events),
			 (unsigned long long)(after.dropped - before.dropped));
}

static void test_malformed(void **state)
{
	(void)state;
	static uint8_t good[UE_DATAGRAM_BYTES * 2], bad[UE_DATAGRAM_BYTES * 2 + 64];
	static int64_t expected[UE_EVENTS_MAX];
	uint32_t ne = 0;
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, false), 0);
	/* A valid datagram first and last: the log must hold those and nothing else. */
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC, 1, 3, amount_of(1, 1)), 3);
	expected_add(expected, &ne, amount_of(1, 1), 3);

	uint32_t n = ue_datagram(&env, good, sizeof(good), UE_TOPIC, 7, 3, UE_POISON);
	uint32_t body = RILL_WIRE_HEADER_BYTES;
	uint32_t rec0 = body + RILL_WIRE_PRODUCE_BYTES_MIN + (uint32_t)strlen(UE_TOPIC);
	uint32_t rec_bytes = (n - rec0) / 3;

	/* A bad CRC inside: a payload byte of the second record flipped, then its CRC. */
	memcpy(bad, good, n);
	bad[rec0 + rec_bytes + rec_bytes - 1] ^= 0x01;
	expect_malformed(ing, bad, n, RILL_E_RECORD_CRC, "a record's payload byte flipped");
	memcpy(bad, good, n);
	bad[rec0 + 2 * rec_bytes + 4] ^= 0x80;
	expect_malformed(ing, bad, n, RILL_E_RECORD_CRC, "the third record's CRC flipped");
	/* Every single bit of every record flipped: never accepted. */
	for (uint32_t at = rec0; at < n; at++) {
		memcpy(bad, good, n);
		bad[at] ^= (uint8_t)(1u << (at % 8));
		char what[64];
		snprintf(what, sizeof(what), "bit %u of byte %u flipped", at % 8, at);
		expect_malformed(ing, bad, n, 0, what);
	}

	/* Count mismatches: 2 and 4 events said for 3 records, and 0. */
	uint32_t counts[] = {2, 4, 0, UINT32_MAX};
	for (uint32_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		memcpy(bad, good, n);
		rill_st32(bad + body + 4, counts[i]);
		char what[64];
		snprintf(what, sizeof(what), "event_count %u for 3 records", counts[i]);
		expect_malformed(ing, bad, n, RILL_E_WIRE_COUNT, what);
	}

	/* Wrong frame types: known ones that are not PRODUCE, and unknown ones. */
	uint16_t types[] = {RILL_WIRE_HELLO,     RILL_WIRE_ACK,   RILL_WIRE_EVENTS,
			    RILL_WIRE_PING,      RILL_WIRE_ADMIN, 0,
			    RILL_WIRE_TYPE_LAST, 0xffff};
	for (uint32_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		memcpy(bad, good, n);
		rill_st16(bad + 4, types[i]);
		char what[64];
		snprintf(what, sizeof(what), "frame type %u", types[i]);
		expect_malformed(ing, bad, n, RILL_E_WIRE_TYPE, what);
	}
	/* A well-formed frame of another type: a PING. */
	uint8_t ping[RILL_WIRE_HEADER_BYTES];
	assert_int_equal(rill_wire_empty_encode(ping, sizeof(ping), RILL_WIRE_PING, 9),
			 RILL_WIRE_HEADER_BYTES);
	expect_malformed(ing, ping, sizeof(ping), RILL_E_WIRE_TYPE, "a PING datagram");
	memcpy(bad, good, n);
	rill_st16(bad + 6, 1);
	expect_malformed(ing, bad, n, 0, "header flags set");

	/* The header's body length other than the datagram's, both ways. */
	memcpy(bad, good, n);
	bad[n] = 0;
	expect_malformed(ing, bad, n + 1, 0, "a byte after the frame");
	memset(bad + n, 0, 64);
	expect_malformed(ing, bad, n + 64, 0, "64 bytes after the frame");
	rill_st32(bad, n - RILL_WIRE_HEADER_BYTES + 1);
	expect_malformed(ing, bad, n, 0, "body_bytes one more than the datagram holds");
	rill_st32(bad, n - RILL_WIRE_HEADER_BYTES - 1);
	expect_malformed(ing, bad, n, 0, "body_bytes one less than the datagram holds");
	rill_st32(bad, 0xffffffffu);
	expect_malformed(ing, bad, n, 0, "body_bytes 4 GiB");
	/* A datagram of two frames: the second is not read as more events. */
	memcpy(bad, good, n);
	memcpy(bad + n, good, n);
	expect_malformed(ing, bad, 2 * n, 0, "two PRODUCE frames in one datagram");

	/* request_id 0: sequences start at 1. */
	memcpy(bad, good, n);
	rill_st64(bad + 8, 0);
	expect_malformed(ing, bad, n, 0, "request_id 0");

	/* Fields of the PRODUCE body out of range. */
	memcpy(bad, good, n);
	bad[body] = 3;
	expect_malformed(ing, bad, n, 0, "acks 3");
	memcpy(bad, good, n);
	bad[body + 1] = 1;
	expect_malformed(ing, bad, n, 0, "the PRODUCE's reserved byte set");
	memcpy(bad, good, n);
	rill_st16(bad + body + 2, 0);
	expect_malformed(ing, bad, n, 0, "topic_bytes 0");
	memcpy(bad, good, n);
	rill_st16(bad + body + 2, (uint16_t)(n - body));
	expect_malformed(ing, bad, n, 0, "topic_bytes past the body");

	/* Every truncation, the empty datagram included, each with a header that agrees with
	 * the datagram's length from 16 bytes on (so the body is what is cut short). */
	for (uint32_t len = 0; len < n; len++) {
		char what[128];
		snprintf(what, sizeof(what), "the datagram cut at %u of %u bytes", len, n);
		memcpy(bad, good, len);
		expect_malformed(ing, bad, len, 0, what);
		if (len >= RILL_WIRE_HEADER_BYTES) {
			rill_st32(bad, len - RILL_WIRE_HEADER_BYTES);
			snprintf(what, sizeof(what), "a frame of body %u cut at %u of %u bytes",
				 len - RILL_WIRE_HEADER_BYTES, len, n);
			expect_malformed(ing, bad, len, 0, what);
		}
	}
	/* Random garbage. */
	for (uint32_t round = 0; round < 200; round++) {
		uint32_t len = (uint32_t)test_rng_below(&rng, UE_DATAGRAM_BYTES);
		for (uint32_t i = 0; i < len; i++)
			bad[i] = (uint8_t)test_rng_next(&rng);
		expect_malformed(ing, bad, len, 0, "random bytes");
	}

	struct rill_udp_source_stats ss;
	assert_int_equal(rill_udp_ingress_source(ing, peer_bad.ip, peer_bad.port, &ss), -ENOENT);
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC, 2, 4, amount_of(1, 2)), 4);
	expected_add(expected, &ne, amount_of(1, 2), 4);
	/* The buffer the damage was done in still makes a valid datagram. */
	uint32_t m = ue_datagram(&env, bad, sizeof(bad), UE_TOPIC, 3, 2, amount_of(1, 3));
	assert_int_equal(rill_udp_ingress_datagram(ing, &peer_a, bad, m, rill_clock_now_ns()), 2);
	expected_add(expected, &ne, amount_of(1, 3), 2);
	struct rill_udp_stats st;
	stats_of(ing, &st);
	assert_int_equal(st.events, 9);
	assert_int_equal(st.gaps, 0);
	assert_int_equal(st.reordered, 0);
	rill_udp_ingress_destroy(ing);
	ue_events_settle(&env, 9);
	ue_log_check(&env, env.topic, expected, ne);
}

static void test_unknown_topic(void **state)
{
	(void)state;
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, false), 0);
	assert_int_equal(send_dgram(ing, &peer_a, "nosuch", 1, 2, UE_POISON), -ENOENT);
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC, 1, 2, 100), 2);
	assert_int_equal(send_dgram(ing, &peer_a, "orders2", 2, 2, UE_POISON), -ENOENT);
	assert_int_equal(send_dgram(ing, &peer_a, "order", 2, 2, UE_POISON), -ENOENT);
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC, 2, 2, 200), 2);
	struct rill_udp_stats st;
	stats_of(ing, &st);
	assert_int_equal(st.datagrams, 5);
	assert_int_equal(st.unknown_topic, 3);
	assert_int_equal(st.malformed, 0);
	assert_int_equal(st.events, 4);
	rill_udp_ingress_destroy(ing);
	int64_t expected[] = {100, 101, 200, 201};
	ue_events_settle(&env, 4);
	ue_log_check(&env, env.topic, expected, 4);
}

static void expect_source(struct rill_udp_ingress *ing, const struct rill_udp_peer *p,
			  uint64_t datagrams, uint64_t gaps, uint64_t reordered, uint64_t highest)
{
	struct rill_udp_source_stats ss;
	assert_int_equal(rill_udp_ingress_source(ing, p->ip, p->port, &ss), 0);
	if (ss.datagrams != datagrams || ss.gaps != gaps || ss.reordered != reordered ||
	    ss.highest != highest)
		fail_msg("source %08x:%u: datagrams %llu gaps %llu reordered %llu highest %llu; "
			 "expected %llu %llu %llu %llu",
			 p->ip, p->port, (unsigned long long)ss.datagrams,
			 (unsigned long long)ss.gaps, (unsigned long long)ss.reordered,
			 (unsigned long long)ss.highest, (unsigned long long)datagrams,
			 (unsigned long long)gaps, (unsigned long long)reordered,
			 (unsigned long long)highest);
}

/* rill_udp_ingress_worst must list exactly @peers (@count of them), in that order. */
static void expect_worst(struct rill_udp_ingress *ing, const struct rill_udp_peer *peers,
			 uint32_t count)
{
	struct rill_udp_source_report worst[RILL_UDP_WORST_MAX];
	uint32_t n = rill_udp_ingress_worst(ing, worst);
	if (n != count)
		fail_msg("the worst sources: %u listed, expected %u", n, count);
	for (uint32_t i = 0; i < count; i++) {
		struct rill_udp_source_stats ss;
		assert_int_equal(rill_udp_ingress_source(ing, peers[i].ip, peers[i].port, &ss), 0);
		if (worst[i].ip != peers[i].ip || worst[i].port != peers[i].port ||
		    memcmp(&worst[i].stats, &ss, sizeof(ss)) != 0)
			fail_msg("the worst sources, #%u: %08x:%u (%llu gaps, %llu reordered), "
				 "expected %08x:%u (%llu gaps, %llu reordered)",
				 i, worst[i].ip, worst[i].port,
				 (unsigned long long)worst[i].stats.gaps,
				 (unsigned long long)worst[i].stats.reordered, peers[i].ip,
				 peers[i].port, (unsigned long long)ss.gaps,
				 (unsigned long long)ss.reordered);
	}
}

/* A report for the merge test: address @ip, @gaps gaps and @reordered reordered. */
static struct rill_udp_source_report report_of(uint32_t ip, uint64_t gaps, uint64_t reordered)
{
	return (struct rill_udp_source_report){
		.ip = ip, .port = 7, .stats = {.gaps = gaps, .reordered = reordered}};
}

/* rill_udp_worst_insert, as rill_dpdk_worst_sources merges queues' lists with it: sorted,
 * ties in arrival order, at most RILL_UDP_WORST_MAX, saturating sums. */
static void test_worst_merge(void **state)
{
	(void)state;
	struct rill_udp_source_report list[RILL_UDP_WORST_MAX];
	uint32_t n = 0;
	/* Queue 1's list, then queue 2's, each sorted, as the queues hold them. */
	const struct rill_udp_source_report q1[] = {report_of(1, 9, 0), report_of(2, 5, 0),
						    report_of(3, 1, 1)};
	const struct rill_udp_source_report q2[] = {
		report_of(4, UINT64_MAX, 3), report_of(5, 5, 0), report_of(6, 0, 2),
		report_of(7, 0, 2),          report_of(8, 1, 0), report_of(9, 1, 0)};
	for (size_t i = 0; i < 3; i++)
		n = rill_udp_worst_insert(list, n, &q1[i]);
	for (size_t i = 0; i < 6; i++)
		n = rill_udp_worst_insert(list, n, &q2[i]);
	/* 9 entries: the last of equal trouble (9, 1) does not fit; (4) saturates and leads. */
	const uint32_t want[RILL_UDP_WORST_MAX] = {4, 1, 2, 5, 3, 6, 7, 8};
	assert_int_equal(n, RILL_UDP_WORST_MAX);
	for (uint32_t i = 0; i < n; i++)
		if (list[i].ip != want[i])
			fail_msg("merged list #%u: source %u, expected %u", i, list[i].ip, want[i]);
	/* A worse one still gets in at its place and the last drops out. */
	const struct rill_udp_source_report late = report_of(10, 4, 0);
	n = rill_udp_worst_insert(list, n, &late);
	const uint32_t want2[RILL_UDP_WORST_MAX] = {4, 1, 2, 5, 10, 3, 6, 7};
	for (uint32_t i = 0; i < n; i++)
		if (list[i].ip != want2[i])
			fail_msg("after a late one, #%u: source %u, expected %u", i, list[i].ip,
				 want2[i]);
	assert_int_equal(rill_udp_trouble(UINT64_MAX - 1, 5), UINT64_MAX);
	assert_int_equal(rill_udp_trouble(2, 3), 5);
}

static void test_gaps_reordering(void **state)
{
	(void)state;
	static int64_t expected[UE_EVENTS_MAX];
	uint32_t ne = 0;
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, false), 0);
	const uint64_t seq_a[] = {1, 2, 5, 4, 6};
	for (uint32_t i = 0; i < 5; i++) {
		assert_int_equal(
			send_dgram(ing, &peer_a, UE_TOPIC, seq_a[i], 2, amount_of(1, seq_a[i])), 2);
		expected_add(expected, &ne, amount_of(1, seq_a[i]), 2);
		/* Another port of the same host, in order, in between: a source of its own. */
		assert_int_equal(send_dgram(ing, &peer_b, UE_TOPIC, i + 1, 1, amount_of(2, i + 1)),
				 1);
		expected_add(expected, &ne, amount_of(2, i + 1), 1);
	}
	expect_source(ing, &peer_a, 5, 2, 1, 6);
	expect_source(ing, &peer_b, 5, 0, 0, 5);
	/* A third source from another host: 3, 1 (reordered), 2 (reordered), 10 (6 gaps). */
	const uint64_t seq_c[] = {3, 1, 2, 10};
	for (uint32_t i = 0; i < 4; i++) {
		assert_int_equal(
			send_dgram(ing, &peer_c, UE_TOPIC, seq_c[i], 1, amount_of(3, seq_c[i])), 1);
		expected_add(expected, &ne, amount_of(3, seq_c[i]), 1);
	}
	expect_source(ing, &peer_c, 4, 2 + 6, 2, 10);
	expect_source(ing, &peer_a, 5, 2, 1, 6);
	/* The same sequence again (at most once: published again, counted as reordered). */
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC, 6, 1, amount_of(1, 60)), 1);
	expected_add(expected, &ne, amount_of(1, 60), 1);
	expect_source(ing, &peer_a, 6, 2, 2, 6);
	/* The worst first: c (8 gaps, 2 reordered; it passed a on its way), then a (2 and 2);
	 * b, in order all along, is not listed. */
	expect_worst(ing, (struct rill_udp_peer[]){peer_c, peer_a}, 2);
	/* A sender's sequence numbers can make its gaps as large as it likes: d jumps to
	 * UINT64_MAX, then goes back twice. Its trouble saturates, so it stays first, and c's
	 * next reordering does not pass it (a sum that wrapped to 0 would let it). */
	const uint64_t seq_d[] = {UINT64_MAX, 5, 6};
	for (uint32_t i = 0; i < 3; i++) {
		assert_int_equal(send_dgram(ing, &peer_d, UE_TOPIC, seq_d[i], 1, amount_of(4, i)),
				 1);
		expected_add(expected, &ne, amount_of(4, i), 1);
	}
	assert_int_equal(send_dgram(ing, &peer_c, UE_TOPIC, 1, 1, amount_of(3, 11)), 1);
	expected_add(expected, &ne, amount_of(3, 11), 1);
	expect_source(ing, &peer_d, 3, UINT64_MAX - 1, 2, UINT64_MAX);
	expect_worst(ing, (struct rill_udp_peer[]){peer_d, peer_c, peer_a}, 3);
	struct rill_udp_stats st;
	stats_of(ing, &st);
	assert_int_equal(st.sources, 4);
	assert_true(st.gaps == UINT64_MAX); /* 2 + 0 + 8 + (UINT64_MAX - 1): saturated */
	assert_int_equal(st.reordered, 1 + 2 + 1 + 2 + 1);
	assert_int_equal(st.datagrams, 19);
	assert_int_equal(st.dropped, 0);
	rill_udp_ingress_destroy(ing);
	ue_events_settle(&env, ne);
	ue_log_check(&env, env.topic, expected, ne);
}

/* Acks on, on a topic of durability group. */
static void test_acks(void **state)
{
	(void)state;
	static int64_t expected[UE_EVENTS_MAX];
	uint32_t ne = 0;
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, true), 0);
	uint64_t seq = 0;
	assert_int_equal(ack_next(ing, &peer_a, &seq), 0); /* nothing due yet */

	for (uint64_t s = 1; s <= 2; s++) {
		assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC_DURABLE, s, 3, amount_of(1, s)),
				 3);
		expected_add(expected, &ne, amount_of(1, s), 3);
	}
	ack_wait(ing, &peer_a, 2);
	struct rill_udp_source_stats ss;
	assert_int_equal(rill_udp_ingress_source(ing, peer_a.ip, peer_a.port, &ss), 0);
	assert_int_equal(ss.durable_contig, 2);

	/* A gap: 4 durable but 3 missing: nothing new to say. */
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC_DURABLE, 4, 2, amount_of(1, 4)), 2);
	expected_add(expected, &ne, amount_of(1, 4), 2);
	ing_settle(ing);
	while (ack_next(ing, &peer_a, &seq) == 1)
		if (seq != 2)
			fail_msg("an ACK for %llu with 3 missing", (unsigned long long)seq);
	assert_int_equal(rill_udp_ingress_source(ing, peer_a.ip, peer_a.port, &ss), 0);
	assert_int_equal(ss.durable_contig, 2);
	assert_int_equal(ss.gaps, 1);
	/* 3 comes: the ACK jumps to 4. */
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC_DURABLE, 3, 1, amount_of(1, 3)), 1);
	expected_add(expected, &ne, amount_of(1, 3), 1);
	ack_wait(ing, &peer_a, 4);
	assert_int_equal(rill_udp_ingress_source(ing, peer_a.ip, peer_a.port, &ss), 0);
	assert_int_equal(ss.durable_contig, 4);
	assert_int_equal(ss.reordered, 1);

	/* A retransmission of what is durable: nothing published, the ACK offered again at
	 * once (no poll), saying 4. */
	struct rill_udp_stats before, after;
	stats_of(ing, &before);
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC_DURABLE, 2, 3, UE_POISON), 0);
	stats_of(ing, &after);
	assert_int_equal(after.events, before.events);
	assert_int_equal(after.dropped, before.dropped);
	assert_int_equal(after.malformed, before.malformed);
	assert_int_equal(ack_next(ing, &peer_a, &seq), 1);
	assert_int_equal(seq, 4);
	stats_of(ing, &after);
	assert_int_equal(after.acks, before.acks + 1);
	assert_int_equal(ack_next(ing, &peer_a, &seq), 0);

	/* The window: 4 + 64 is the last sequence it takes; 4 + 65 is dropped, unseen by the
	 * gap and reordering counts (a corrupt sequence would make all after it reordered). */
	stats_of(ing, &before);
	struct rill_udp_source_stats ss_before;
	assert_int_equal(rill_udp_ingress_source(ing, peer_a.ip, peer_a.port, &ss_before), 0);
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC_DURABLE,
				    UT_WINDOW_SEQ + RILL_UDP_WINDOW + 1, 2, UE_POISON),
			 -EAGAIN);
	stats_of(ing, &after);
	assert_int_equal(after.dropped, before.dropped + 1);
	assert_int_equal(after.events, before.events);
	assert_int_equal(after.gaps, before.gaps);
	assert_int_equal(rill_udp_ingress_source(ing, peer_a.ip, peer_a.port, &ss), 0);
	assert_int_equal(ss.datagrams, ss_before.datagrams + 1);
	assert_int_equal(ss.highest, ss_before.highest);
	assert_int_equal(ss.gaps, ss_before.gaps);
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC_DURABLE, UT_WINDOW_SEQ + RILL_UDP_WINDOW,
				    2, amount_of(1, 68)),
			 2);
	expected_add(expected, &ne, amount_of(1, 68), 2);
	/* A datagram in flight sent again before it is durable: dropped, not doubled. */
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC_DURABLE, 5, 1, amount_of(1, 5)), 1);
	expected_add(expected, &ne, amount_of(1, 5), 1);
	stats_of(ing, &before);
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC_DURABLE, 5, 1, UE_POISON), -EAGAIN);
	stats_of(ing, &after);
	assert_int_equal(after.dropped, before.dropped + 1);
	ack_wait(ing, &peer_a, 5);

	/* Two sources apart: peer_b's ACKs go to peer_b and follow its own sequences. */
	for (uint64_t s = 1; s <= 3; s++) {
		assert_int_equal(send_dgram(ing, &peer_b, UE_TOPIC_DURABLE, s, 1, amount_of(2, s)),
				 1);
		expected_add(expected, &ne, amount_of(2, s), 1);
	}
	ack_wait(ing, &peer_b, 3);
	assert_int_equal(rill_udp_ingress_source(ing, peer_a.ip, peer_a.port, &ss), 0);
	assert_int_equal(ss.durable_contig, 5);
	assert_int_equal(rill_udp_ingress_source(ing, peer_b.ip, peer_b.port, &ss), 0);
	assert_int_equal(ss.durable_contig, 3);
	stats_of(ing, &after);
	assert_int_equal(after.refused, 0);
	assert_int_equal(after.malformed, 0);
	rill_udp_ingress_destroy(ing);
	ue_events_settle(&env, ne);
	ue_log_check(&env, env.topic_durable, expected, ne);
}

/*
 * Acks on over a topic of durability none (durable at once: the ACK follows the applied
 * point). A source is its IPv4 address and UDP port: when it sends from another MAC, to
 * another local address, its ACK goes where it last sent from.
 */
static void test_acks_follow_peer(void **state)
{
	(void)state;
	static int64_t expected[UE_EVENTS_MAX];
	uint32_t ne = 0;
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, true), 0);
	assert_int_equal(send_dgram(ing, &peer_c, UE_TOPIC, 1, 2, amount_of(3, 1)), 2);
	expected_add(expected, &ne, amount_of(3, 1), 2);
	ack_wait(ing, &peer_c, 1);
	struct rill_udp_peer moved = peer_c;
	moved.mac[5] = 0x33;
	moved.local_ip = 0x0a000009u;
	assert_int_equal(send_dgram(ing, &moved, UE_TOPIC, 2, 2, amount_of(3, 2)), 2);
	expected_add(expected, &ne, amount_of(3, 2), 2);
	ack_wait(ing, &moved, 2);
	rill_udp_ingress_destroy(ing);
	ue_events_settle(&env, ne);
	ue_log_check(&env, env.topic, expected, ne);
}

/*
 * Back-pressure with acks on: 64 KiB rings both ways and no polling fill the rings (the
 * shards stall once their acknowledgement rings are full) until a datagram goes in part or not at all.
 * Its sequence must then not be acknowledged (what went of it settles without moving the
 * durable point); its retransmission, once the rings have room, goes in whole and the ACK
 * reaches it. At least once: the events of the part that went are in the log twice.
 */
static void test_backpressure_acks(void **state)
{
	(void)state;
	static int64_t expected[UE_EVENTS_MAX];
	uint32_t ne = 0;
	const uint32_t k = 200; /* events per datagram */
	assert_int_equal(ue_close(&env), 0);
	ue_open(&env, "udp-ingress-bp", UT_SHARDS, 64u << 10);
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, true), 0);
	uint64_t seq = 0;
	int rc = (int)k;
	while (rc == (int)k) {
		seq++;
		if (seq > RILL_UDP_WINDOW)
			fail_msg("%u datagrams of %u events went in whole with 64 KiB rings and no "
				 "polling",
				 RILL_UDP_WINDOW, k);
		struct rill_udp_stats before, after;
		stats_of(ing, &before);
		rc = send_dgram(ing, &peer_a, UE_TOPIC_DURABLE, seq, k, amount_of(1, seq));
		stats_of(ing, &after);
		if (rc == (int)k) {
			assert_int_equal(after.dropped, before.dropped);
			expected_add(expected, &ne, amount_of(1, seq), k);
			continue;
		}
		if (rc != -EAGAIN && (rc <= 0 || rc >= (int)k))
			fail_msg("datagram %llu under back-pressure: %d", (unsigned long long)seq,
				 rc);
		assert_int_equal(after.dropped, before.dropped + 1);
		assert_int_equal(after.events, before.events + (rc > 0 ? (uint64_t)rc : 0));
		if (rc > 0)
			expected_add(expected, &ne, amount_of(1, seq), (uint32_t)rc); /* the part */
	}
	print_message("datagram %llu of %u events: %d went\n", (unsigned long long)seq, k, rc);
	ing_settle(ing);
	uint64_t ack = 0;
	while (ack_next(ing, &peer_a, &ack) == 1)
		if (ack >= seq)
			fail_msg("datagram %llu went %s, yet an ACK says %llu",
				 (unsigned long long)seq, rc > 0 ? "in part" : "not at all",
				 (unsigned long long)ack);
	struct rill_udp_source_stats ss;
	assert_int_equal(rill_udp_ingress_source(ing, peer_a.ip, peer_a.port, &ss), 0);
	if (ss.durable_contig != seq - 1)
		fail_msg("durable_contig %llu after datagram %llu went %s (everything before it "
			 "durable)",
			 (unsigned long long)ss.durable_contig, (unsigned long long)seq,
			 rc > 0 ? "in part" : "not at all");
	/* The retransmission, into empty rings. */
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC_DURABLE, seq, k, amount_of(1, seq)),
			 (int)k);
	expected_add(expected, &ne, amount_of(1, seq), k);
	ack_wait(ing, &peer_a, seq);
	rill_udp_ingress_destroy(ing);
	ue_events_settle(&env, ne);
	ue_log_check(&env, env.topic_durable, expected, ne);
}

/* A datagram of @count events of a type the registry does not have (the write model
 * refuses them); its length. */
static uint32_t unknown_type_dgram(uint8_t *buf, size_t cap, const char *topic, uint64_t seq,
				   uint32_t count)
{
	int at = rill_wire_produce_begin(buf, cap, seq, 0, topic, strlen(topic));
	assert_true(at > 0);
	for (uint32_t i = 0; i < count; i++) {
		/* A valid payload of the schema, under a type id nobody registered. */
		uint32_t n = ue_record(&env, buf + at, cap - (size_t)at, "refused", UE_POISON);
		struct rill_record rec;
		uint8_t copy[512];
		assert_true(n <= sizeof(copy));
		memcpy(copy, buf + at, n);
		assert_int_equal(rill_record_decode(copy, n, &rec, 0), (int)n);
		rec.type_id = 999;
		assert_int_equal(rill_record_encode(buf + at, cap - (size_t)at, &rec), (int)n);
		at += (int)n;
	}
	rill_wire_produce_finish(buf, (uint32_t)at, count);
	return (uint32_t)at;
}

/* Wait (bounded) until the ingress has counted @refused refusals, polling. */
static void refused_wait(struct rill_udp_ingress *ing, uint64_t refused)
{
	struct rill_udp_stats st;
	uint64_t deadline = rill_clock_now_ns() + UE_WAIT_NS;
	do {
		rill_udp_ingress_poll(ing);
		stats_of(ing, &st);
		if (st.refused >= refused)
			break;
		ue_sleep_ns(200000);
	} while (rill_clock_now_ns() < deadline);
	assert_int_equal(st.refused, refused);
}

/*
 * Events the write model refuses (an unregistered type) are counted as refused, acks off
 * and on; with acks on a refused datagram is settled (it will never be durable, U1) so the
 * ACK moves past it, and its events are not in the log.
 */
static void test_refused(void **state)
{
	(void)state;
	static uint8_t buf[UE_DATAGRAM_BYTES * 2];
	int64_t expected[] = {amount_of(1, 1), amount_of(1, 3), amount_of(1, 3) + 1,
			      amount_of(2, 1)};
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, true), 0);
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC_DURABLE, 1, 1, amount_of(1, 1)), 1);
	uint32_t n = unknown_type_dgram(buf, sizeof(buf), UE_TOPIC_DURABLE, 2, 3);
	assert_int_equal(rill_udp_ingress_datagram(ing, &peer_a, buf, n, rill_clock_now_ns()), 3);
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC_DURABLE, 3, 2, amount_of(1, 3)), 2);
	ack_wait(ing, &peer_a, 3);
	refused_wait(ing, 3);
	rill_udp_ingress_destroy(ing);

	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, false), 0);
	n = unknown_type_dgram(buf, sizeof(buf), UE_TOPIC_DURABLE, 1, 2);
	assert_int_equal(rill_udp_ingress_datagram(ing, &peer_b, buf, n, rill_clock_now_ns()), 2);
	assert_int_equal(send_dgram(ing, &peer_b, UE_TOPIC_DURABLE, 2, 1, amount_of(2, 1)), 1);
	refused_wait(ing, 2);
	rill_udp_ingress_destroy(ing);
	ue_events_settle(&env, 4);
	ue_log_check(&env, env.topic_durable, expected, 4);
}

/* Datagram @seq holding one event of idempotent producer @producer, its sequence @pseq,
 * amount @amount, all under one key (one partition). Its length. */
static uint32_t idem_dgram(uint8_t *buf, size_t cap, uint64_t seq, uint64_t producer, uint64_t pseq,
			   int64_t amount)
{
	int at = rill_wire_produce_begin(buf, cap, seq, 0, UE_TOPIC_DURABLE,
					 strlen(UE_TOPIC_DURABLE));
	assert_true(at > 0);
	at += (int)ue_record_of(&env, buf + at, cap - (size_t)at, "idem", amount, producer, pseq);
	rill_wire_produce_finish(buf, (uint32_t)at, 1);
	return (uint32_t)at;
}

/*
 * ACKs on, an idempotent producer behind the datagrams: one datagram overtaking another
 * makes the partition refuse the overtaking one as a sequence gap. That refusal is not
 * final: no ACK may cover the datagram until it came again and went in, or the sender
 * would drop events that were never written (and every later one would be a gap too).
 */
static void test_idempotent_overtaken(void **state)
{
	(void)state;
	static uint8_t buf[UE_DATAGRAM_BYTES];
	const uint64_t producer = 0x1de3;
	int64_t expected[4];
	for (uint64_t s = 1; s <= 4; s++)
		expected[s - 1] = amount_of(5, s);
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, true), 0);
	uint64_t order[] = {1, 3, 2, 4}; /* 3 overtakes 2; 4 then follows a refused 3 */
	for (int i = 0; i < 4; i++) {
		uint64_t s = order[i];
		uint32_t n = idem_dgram(buf, sizeof(buf), s, producer, s - 1, amount_of(5, s));
		assert_int_equal(
			rill_udp_ingress_datagram(ing, &peer_c, buf, n, rill_clock_now_ns()), 1);
	}
	ack_wait(ing, &peer_c, 2);
	refused_wait(ing, 2);
	uint64_t seq = 0;
	while (ack_next(ing, &peer_c, &seq) == 1)
		if (seq != 2)
			fail_msg("an ACK for %llu: datagram 3 was refused as a gap, never written",
				 (unsigned long long)seq);
	struct rill_udp_source_stats ss;
	assert_int_equal(rill_udp_ingress_source(ing, peer_c.ip, peer_c.port, &ss), 0);
	assert_int_equal(ss.durable_contig, 2);
	/* The sender's retransmissions go in, and the ACK reaches 4. */
	for (uint64_t s = 3; s <= 4; s++) {
		uint32_t n = idem_dgram(buf, sizeof(buf), s, producer, s - 1, amount_of(5, s));
		assert_int_equal(
			rill_udp_ingress_datagram(ing, &peer_c, buf, n, rill_clock_now_ns()), 1);
	}
	ack_wait(ing, &peer_c, 4);
	rill_udp_ingress_destroy(ing);
	ue_events_settle(&env, 4);
	ue_log_check(&env, env.topic_durable, expected, 4);
}

/* Sequence numbers are the senders': two jumping past 2^63 leave the total gap count at
 * its maximum rather than wrapped to a small number. */
static void test_gaps_saturate(void **state)
{
	(void)state;
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, false), 0);
	assert_int_equal(send_dgram(ing, &peer_a, UE_TOPIC, (1ull << 63) + 1, 1, 1), 1);
	assert_int_equal(send_dgram(ing, &peer_b, UE_TOPIC, (1ull << 63) + 1, 1, 2), 1);
	struct rill_udp_stats st;
	stats_of(ing, &st);
	assert_true(st.gaps == UINT64_MAX);
	rill_udp_ingress_destroy(ing);
	ue_events_settle(&env, 2);
}

/*
 * An event its partition's log could not take (the disk failed it: here the file size
 * limit, RLIMIT_FSIZE, which fails each log's writes past a few KiB with EFBIG) is lost,
 * not refused: no ACK may cover its datagram, since the sender would drop what is not on
 * disk. A fresh engine of one shard; 64 datagrams of 10 events, all inside the window; the
 * highest ACK must stay below the last, every event it covers must be in the log when the
 * engine opens again, and the losses are counted.
 */
static void test_lost_not_acked(void **state)
{
	(void)state;
	enum { DATAGRAMS = RILL_UDP_WINDOW, EVENTS = 10 };
	struct ue_env e2;
	ue_open(&e2, "udp-lost", 1, 0);
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, e2.engine, true), 0);
	struct rlimit low = fsize_saved;
	low.rlim_cur = 12u << 10;
	fsize_lowered = true;     /* ut_teardown restores it, should an assertion stop this */
	signal(SIGXFSZ, SIG_IGN); /* the write's EFBIG is enough */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
	static uint8_t buf[64u << 10];
	for (uint64_t seq = 1; seq <= DATAGRAMS; seq++) {
		uint32_t n = ue_datagram(&e2, buf, sizeof(buf), UE_TOPIC_DURABLE, seq, EVENTS,
					 amount_of(1, seq));
		int rc;
		while ((rc = rill_udp_ingress_datagram(ing, &peer_a, buf, n,
						       rill_clock_now_ns())) == -EAGAIN) {
			rill_udp_ingress_poll(ing);
			ue_sleep_ns(100000);
		}
		assert_int_equal(rc, EVENTS);
	}
	ing_settle(ing);
	fsize_restore();
	uint64_t seq = 0, highest = 0;
	while (ack_next(ing, &peer_a, &seq) == 1)
		highest = seq > highest ? seq : highest;
	struct rill_udp_stats st;
	stats_of(ing, &st);
	if (st.lost == 0)
		fail_msg("no event lost: the logs never reached the %llu-byte limit",
			 (unsigned long long)low.rlim_cur);
	if (highest >= DATAGRAMS)
		fail_msg("ACKed up to %llu of %u datagrams with %llu events lost",
			 (unsigned long long)highest, DATAGRAMS, (unsigned long long)st.lost);
	rill_udp_ingress_destroy(ing);
	(void)rill_engine_close(e2.engine); /* its logs failed: an error, expected */
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = e2.dir;
	cfg.shards = 1;
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&e2.engine, &cfg, &err);
	if (rc != 0)
		fail_msg("reopening %s: %s: %s", e2.dir, rill_strerror(rc), err.message);
	struct rill_topic *t = rill_topic_find(e2.engine, UE_TOPIC_DURABLE);
	assert_non_null(t);
	uint64_t held = 0;
	for (uint32_t p = 0; p < UE_PARTITIONS; p++) {
		struct rill_partition_info info;
		assert_int_equal(rill_partition_info_get(e2.engine, t, p, UINT64_MAX, &info, NULL),
				 0);
		held += info.durable_offset;
	}
	if (held < highest * EVENTS)
		fail_msg("ACKed %llu datagrams (%llu events), the log holds %llu events",
			 (unsigned long long)highest, (unsigned long long)(highest * EVENTS),
			 (unsigned long long)held);
	assert_int_equal(ue_close(&e2), 0);
}

/* The address of source @i of many: 10.1.x.y, port 5000 + i % 7. */
static struct rill_udp_peer many_peer(uint32_t i)
{
	struct rill_udp_peer p = peer_a;
	p.ip = 0x0a010000u + i;
	p.port = (uint16_t)(5000 + i % 7);
	return p;
}

/*
 * RILL_UDP_SOURCES_MAX sources are tracked; the next is counted as untracked: acks off,
 * its events still go in (at most once needs no window); acks on, it is dropped (no
 * window to track it in). Every tracked one keeps its own figures.
 */
static void test_sources_max(void **state)
{
	(void)state;
	static int64_t expected[UE_EVENTS_MAX];
	uint32_t ne = 0;
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, false), 0);
	for (uint32_t i = 0; i <= RILL_UDP_SOURCES_MAX; i++) {
		struct rill_udp_peer p = many_peer(i);
		assert_int_equal(send_dgram(ing, &p, UE_TOPIC, 1 + i % 3, 1, amount_of(10, i)), 1);
		expected_add(expected, &ne, amount_of(10, i), 1);
		if (i % 256 == 0)
			rill_udp_ingress_poll(ing);
	}
	struct rill_udp_stats st;
	stats_of(ing, &st);
	assert_int_equal(st.untracked, 1);
	assert_int_equal(st.events, RILL_UDP_SOURCES_MAX + 1);
	uint64_t gaps = 0; /* source i sent only sequence 1 + i % 3 */
	for (uint32_t i = 0; i < RILL_UDP_SOURCES_MAX; i++)
		gaps += i % 3;
	assert_int_equal(st.gaps, gaps);
	for (uint32_t i = 0; i <= RILL_UDP_SOURCES_MAX; i++) {
		struct rill_udp_peer p = many_peer(i);
		struct rill_udp_source_stats ss;
		int rc = rill_udp_ingress_source(ing, p.ip, p.port, &ss);
		if (i == RILL_UDP_SOURCES_MAX) {
			assert_int_equal(rc, -ENOENT);
			continue;
		}
		assert_int_equal(rc, 0);
		if (ss.datagrams != 1 || ss.highest != 1 + i % 3 || ss.gaps != i % 3)
			fail_msg("source %u: datagrams %llu highest %llu gaps %llu", i,
				 (unsigned long long)ss.datagrams, (unsigned long long)ss.highest,
				 (unsigned long long)ss.gaps);
	}
	assert_int_equal(st.sources, RILL_UDP_SOURCES_MAX);
	/* The worst list holds the first RILL_UDP_WORST_MAX sources with 2 gaps (2, 5, 8, ...):
	 * ties keep their order. Source 0 then repeats its sequence: one or two reorderings
	 * tie at best and change nothing; a third puts it first, and 23 drops out. */
	struct rill_udp_peer worst[RILL_UDP_WORST_MAX + 1];
	worst[0] = many_peer(0);
	for (uint32_t i = 0; i < RILL_UDP_WORST_MAX; i++)
		worst[i + 1] = many_peer(2 + 3 * i);
	expect_worst(ing, worst + 1, RILL_UDP_WORST_MAX);
	for (uint32_t r = 1; r <= 3; r++) {
		assert_int_equal(send_dgram(ing, &worst[0], UE_TOPIC, 1, 1, amount_of(12, r)), 1);
		expected_add(expected, &ne, amount_of(12, r), 1);
		expect_worst(ing, r < 3 ? worst + 1 : worst, RILL_UDP_WORST_MAX);
	}
	rill_udp_ingress_destroy(ing);

	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, true), 0);
	for (uint32_t i = 0; i < RILL_UDP_SOURCES_MAX; i++) {
		struct rill_udp_peer p = many_peer(i);
		assert_int_equal(send_dgram(ing, &p, UE_TOPIC, 1, 1, amount_of(11, i)), 1);
		expected_add(expected, &ne, amount_of(11, i), 1);
		if (i % 256 == 0)
			rill_udp_ingress_poll(ing);
	}
	struct rill_udp_peer last = many_peer(RILL_UDP_SOURCES_MAX);
	assert_int_equal(send_dgram(ing, &last, UE_TOPIC, 1, 1, UE_POISON), -EAGAIN);
	stats_of(ing, &st);
	assert_int_equal(st.untracked, 1);
	assert_int_equal(st.dropped, 1);
	/* Every tracked source gets its ACK: 4096 of them due at once. */
	ing_settle(ing);
	uint64_t acks = 0, seq = 0;
	uint8_t frame[64];
	uint32_t bytes = 0;
	struct rill_udp_peer to;
	while (rill_udp_ingress_next_ack(ing, &to, frame, &bytes) == 1) {
		seq = ack_decode(frame, bytes);
		assert_int_equal(seq, 1);
		acks++;
	}
	assert_int_equal(acks, RILL_UDP_SOURCES_MAX);
	rill_udp_ingress_destroy(ing);
	ue_events_settle(&env, ne);
	ue_log_check(&env, env.topic, expected, ne);
}

/* Send and drain every ACK due: how many there were. */
static uint32_t acks_drain(struct rill_udp_ingress *ing)
{
	uint8_t frame[64];
	uint32_t bytes = 0, n = 0;
	struct rill_udp_peer to;
	while (rill_udp_ingress_next_ack(ing, &to, frame, &bytes) == 1)
		n++;
	return n;
}

/* Source @i of many: its datagrams, highest sequence and durable point. */
static void expect_many(struct rill_udp_ingress *ing, uint32_t i, uint64_t datagrams,
			uint64_t highest, uint64_t durable_contig)
{
	struct rill_udp_peer p = many_peer(i);
	struct rill_udp_source_stats ss;
	assert_int_equal(rill_udp_ingress_source(ing, p.ip, p.port, &ss), 0);
	if (ss.datagrams != datagrams || ss.highest != highest ||
	    ss.durable_contig != durable_contig)
		fail_msg("source %u: datagrams %llu highest %llu durable %llu, expected %llu %llu "
			 "%llu",
			 i, (unsigned long long)ss.datagrams, (unsigned long long)ss.highest,
			 (unsigned long long)ss.durable_contig, (unsigned long long)datagrams,
			 (unsigned long long)highest, (unsigned long long)durable_contig);
}

/*
 * A full table makes room (acks on): when a new source comes, the sources silent for
 * RILL_UDP_SOURCE_IDLE_NS with nothing in their window and no ACK due are forgotten, at
 * most one sweep a second. One waiting on a gap, one with an ACK due and one heard from
 * lately stay, with their state; after the table's entries moved, every source left is
 * found, the gap fills and its ACK comes, and the room made takes new sources.
 */
static void test_sources_evicted(void **state)
{
	(void)state;
	static int64_t expected[UE_EVENTS_MAX];
	uint32_t ne = 0;
	const uint32_t gap = 7, due = 11, recent = 13, unknown = 17, malformed = 19,
		       first_new = RILL_UDP_SOURCES_MAX;
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, true), 0);
	uint64_t t0 = rill_clock_now_ns();
	for (uint32_t i = 0; i < RILL_UDP_SOURCES_MAX; i++) {
		struct rill_udp_peer p = many_peer(i);
		uint64_t seq = i == gap ? 2 : 1; /* the gap source's 1 comes late */
		assert_int_equal(send_dgram_at(ing, &p, UE_TOPIC, seq, 1, amount_of(14, i), t0), 1);
		expected_add(expected, &ne, amount_of(14, i), 1);
		if (i % 256 == 0)
			rill_udp_ingress_poll(ing);
	}
	ing_settle(ing);
	assert_int_equal(acks_drain(ing), RILL_UDP_SOURCES_MAX - 1);
	struct rill_udp_peer p = many_peer(recent);
	uint64_t t_recent = t0 + RILL_UDP_SOURCE_IDLE_NS / 2;
	assert_int_equal(send_dgram_at(ing, &p, UE_TOPIC, 2, 1, amount_of(15, recent), t_recent),
			 1);
	expected_add(expected, &ne, amount_of(15, recent), 1);
	ing_settle(ing);
	assert_int_equal(acks_drain(ing), 1);
	p = many_peer(due); /* a retransmission of what is durable: its ACK is due again */
	assert_int_equal(send_dgram_at(ing, &p, UE_TOPIC, 1, 1, UE_POISON, t0), 0);
	/* Two that send lately, to a topic not made yet and a malformed datagram: sending,
	 * not silent, they keep their state. */
	p = many_peer(unknown);
	assert_int_equal(send_dgram_at(ing, &p, "not-yet", 2, 1, UE_POISON, t_recent), -ENOENT);
	p = many_peer(malformed);
	static const uint8_t junk[5] = {1, 2, 3, 4, 5};
	assert_true(rill_udp_ingress_datagram(ing, &p, junk, sizeof(junk), t_recent) < 0);

	/* Nobody idle long enough yet; then idle enough, but within the sweep's second. */
	struct rill_udp_peer newcomer = many_peer(first_new);
	uint64_t t_sweep = t0 + RILL_UDP_SOURCE_IDLE_NS - 1;
	struct rill_udp_stats st;
	assert_int_equal(send_dgram_at(ing, &newcomer, UE_TOPIC, 1, 1, UE_POISON, t_sweep),
			 -EAGAIN);
	assert_int_equal(send_dgram_at(ing, &newcomer, UE_TOPIC, 1, 1, UE_POISON,
				       t0 + RILL_UDP_SOURCE_IDLE_NS + 1),
			 -EAGAIN);
	stats_of(ing, &st);
	assert_int_equal(st.untracked, 2);
	assert_int_equal(st.evicted, 0);
	assert_int_equal(st.sources, RILL_UDP_SOURCES_MAX);

	uint64_t t1 = t_sweep + 1000000000u;
	assert_int_equal(send_dgram_at(ing, &newcomer, UE_TOPIC, 1, 1, amount_of(16, 0), t1), 1);
	expected_add(expected, &ne, amount_of(16, 0), 1);
	stats_of(ing, &st);
	assert_int_equal(st.untracked, 2);
	assert_int_equal(st.evicted, RILL_UDP_SOURCES_MAX - 5);
	assert_int_equal(st.sources, 6);
	for (uint32_t i = 0; i < RILL_UDP_SOURCES_MAX; i++) {
		struct rill_udp_source_stats ss;
		p = many_peer(i);
		int rc = rill_udp_ingress_source(ing, p.ip, p.port, &ss);
		bool kept = i == gap || i == due || i == recent || i == unknown || i == malformed;
		if (rc != (kept ? 0 : -ENOENT))
			fail_msg("source %u: %d after the sweep", i, rc);
	}
	expect_many(ing, gap, 1, 2, 0);
	expect_many(ing, due, 2, 1, 1);
	expect_many(ing, recent, 2, 2, 2);
	expect_many(ing, unknown, 1, 1, 1);
	expect_many(ing, malformed, 1, 1, 1);
	expect_many(ing, first_new, 1, 1, 0); /* untracked twice */

	/* The gap fills: its source's ACK covers both; the new source's comes; the due one's
	 * goes too. */
	p = many_peer(gap);
	assert_int_equal(send_dgram_at(ing, &p, UE_TOPIC, 1, 1, amount_of(14, 100000), t1), 1);
	expected_add(expected, &ne, amount_of(14, 100000), 1);
	ing_settle(ing);
	expect_many(ing, gap, 2, 2, 2);
	expect_many(ing, first_new, 1, 1, 1);
	assert_int_equal(acks_drain(ing), 3);

	/* The room made takes as many new sources, then the table is full again. */
	for (uint32_t i = first_new + 1; i < first_new + RILL_UDP_SOURCES_MAX - 5; i++) {
		p = many_peer(i);
		assert_int_equal(send_dgram_at(ing, &p, UE_TOPIC, 1, 1, amount_of(17, i), t1), 1);
		expected_add(expected, &ne, amount_of(17, i), 1);
		if (i % 256 == 0)
			rill_udp_ingress_poll(ing);
	}
	p = many_peer(first_new + RILL_UDP_SOURCES_MAX);
	assert_int_equal(send_dgram_at(ing, &p, UE_TOPIC, 1, 1, UE_POISON, t1), -EAGAIN);
	ing_settle(ing);
	for (uint32_t i = first_new + 1; i < first_new + RILL_UDP_SOURCES_MAX - 5; i++)
		expect_many(ing, i, 1, 1, 1);
	stats_of(ing, &st);
	assert_int_equal(st.sources, RILL_UDP_SOURCES_MAX);
	assert_int_equal(st.untracked, 3);
	assert_int_equal(acks_drain(ing), RILL_UDP_SOURCES_MAX - 6);
	rill_udp_ingress_destroy(ing);
	ue_events_settle(&env, ne);
	ue_log_check(&env, env.topic, expected, ne);
}

/*
 * Sources that lost a datagram on the wire and then left (acks on): their windows hold
 * durable datagrams past a hole. Silent for the idle time, they are still kept (the hole
 * may yet be retransmitted); silent for RILL_UDP_SOURCE_HOLE_IDLE_NS, they are forgotten,
 * and new sources get their room: before, they held their slots for the server's life,
 * and every new source was dropped. One whose events the shards still owe is kept
 * whatever its silence (U3).
 */
static void test_sources_evicted_past_hole(void **state)
{
	(void)state;
	static int64_t expected[UE_EVENTS_MAX];
	uint32_t ne = 0;
	const uint32_t owing = 23, first_new = RILL_UDP_SOURCES_MAX;
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, true), 0);
	uint64_t t0 = rill_clock_now_ns();
	for (uint32_t i = 0; i < RILL_UDP_SOURCES_MAX; i++) {
		if (i == owing)
			continue; /* sends last, its acknowledgement left unpolled */
		struct rill_udp_peer p = many_peer(i);
		/* 1 and 3 arrive, 2 is lost: 3 is durable past the hole. */
		assert_int_equal(send_dgram_at(ing, &p, UE_TOPIC, 1, 1, amount_of(20, i), t0), 1);
		assert_int_equal(send_dgram_at(ing, &p, UE_TOPIC, 3, 1, amount_of(21, i), t0), 1);
		expected_add(expected, &ne, amount_of(20, i), 1);
		expected_add(expected, &ne, amount_of(21, i), 1);
		if (i % 256 == 0)
			rill_udp_ingress_poll(ing);
	}
	ing_settle(ing);
	assert_int_equal(acks_drain(ing), RILL_UDP_SOURCES_MAX - 1);
	expect_many(ing, 0, 2, 3, 1);
	struct rill_udp_peer p = many_peer(owing);
	assert_int_equal(send_dgram_at(ing, &p, UE_TOPIC, 1, 1, amount_of(22, 0), t0), 1);
	expected_add(expected, &ne, amount_of(22, 0), 1);

	/* Silent past the idle time: the holes may still fill, so nobody goes yet. */
	struct rill_udp_peer newcomer = many_peer(first_new);
	struct rill_udp_stats st;
	assert_int_equal(send_dgram_at(ing, &newcomer, UE_TOPIC, 1, 1, UE_POISON,
				       t0 + RILL_UDP_SOURCE_IDLE_NS + 1000000000u),
			 -EAGAIN);
	stats_of(ing, &st);
	assert_int_equal(st.evicted, 0);
	assert_int_equal(st.sources, RILL_UDP_SOURCES_MAX);

	/* Silent past the longer time: every one goes but the source still owed. */
	uint64_t t1 = t0 + RILL_UDP_SOURCE_HOLE_IDLE_NS + 2000000000u;
	assert_int_equal(send_dgram_at(ing, &newcomer, UE_TOPIC, 1, 1, amount_of(23, 0), t1), 1);
	expected_add(expected, &ne, amount_of(23, 0), 1);
	stats_of(ing, &st);
	assert_int_equal(st.evicted, RILL_UDP_SOURCES_MAX - 1);
	assert_int_equal(st.sources, 2);
	expect_many(ing, owing, 1, 1, 0);
	ing_settle(ing);
	expect_many(ing, owing, 1, 1, 1);
	expect_many(ing, first_new, 1, 1, 1); /* dropped once untracked, then taken */
	assert_int_equal(acks_drain(ing), 2);
	rill_udp_ingress_destroy(ing);
	ue_events_settle(&env, ne);
	ue_log_check(&env, env.topic, expected, ne);
}

/*
 * The worst-sources list after an eviction: the listed sources that went leave their
 * places to the worst of those kept, also one that had never made the list (it listed a
 * source only as its figures changed, so the list stayed short until then).
 */
static void test_worst_after_eviction(void **state)
{
	(void)state;
	struct rill_udp_ingress *ing;
	assert_int_equal(rill_udp_ingress_create(&ing, env.engine, false), 0);
	uint64_t t0 = rill_clock_now_ns();
	/* Sources 0..7 with 100..107 gaps fill the list; source 8, with 5, stays off it. */
	for (uint32_t i = 0; i < RILL_UDP_SOURCES_MAX; i++) {
		struct rill_udp_peer p = many_peer(i);
		uint64_t seq = i < 8 ? 101 + i : i == 8 ? 6 : 1;
		assert_int_equal(send_dgram_at(ing, &p, UE_TOPIC, seq, 1, amount_of(18, i), t0), 1);
		if (i % 256 == 0)
			rill_udp_ingress_poll(ing);
	}
	struct rill_udp_source_report worst[RILL_UDP_WORST_MAX];
	assert_int_equal(rill_udp_ingress_worst(ing, worst), RILL_UDP_WORST_MAX);
	/* Source 8 goes on (recent); every other goes idle, and a newcomer's sweep evicts. */
	struct rill_udp_peer keep = many_peer(8);
	uint64_t t_recent = t0 + RILL_UDP_SOURCE_IDLE_NS / 2;
	assert_int_equal(send_dgram_at(ing, &keep, UE_TOPIC, 7, 1, amount_of(19, 8), t_recent), 1);
	struct rill_udp_peer newcomer = many_peer(RILL_UDP_SOURCES_MAX);
	uint64_t t1 = t0 + RILL_UDP_SOURCE_IDLE_NS + 2000000000u;
	assert_int_equal(send_dgram_at(ing, &newcomer, UE_TOPIC, 1, 1, amount_of(19, 0), t1), 1);
	struct rill_udp_stats st;
	stats_of(ing, &st);
	assert_true(st.evicted > 0);
	expect_worst(ing, &keep, 1);
	ing_settle(ing);
	rill_udp_ingress_destroy(ing);
}

int main(void)
{
	test_rng_init(&rng, 7401);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_round_trip),
		cmocka_unit_test(test_frame_not_ours),
		cmocka_unit_test(test_frame_broken),
		cmocka_unit_test(test_worst_merge),
		cmocka_unit_test_setup_teardown(test_valid_datagrams, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_malformed, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_topic, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_gaps_reordering, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_acks, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_acks_follow_peer, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_backpressure_acks, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_refused, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_idempotent_overtaken, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_lost_not_acked, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_gaps_saturate, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_sources_max, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_sources_evicted, ut_setup, ut_teardown),
		cmocka_unit_test_setup_teardown(test_sources_evicted_past_hole, ut_setup,
						ut_teardown),
		cmocka_unit_test_setup_teardown(test_worst_after_eviction, ut_setup, ut_teardown),
	};
	return cmocka_run_group_tests_name("udp_ingress", tests, NULL, NULL);
}
